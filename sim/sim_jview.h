/* Reads the members of a scheduler journal record that the simulator's
 * checker looks at (docs/reference-scheduler.md has the record format).
 *
 * The scheduler writes each record as one flat JSON object of
 * "key":"string" and "key":integer members with no white space and no
 * escape; such a record is read by a single pass over a copy of it (which
 * compares each member's name where a job record has it, finds the end
 * of each string a block of bytes at a time, and reads a record of
 * another layout member by member). Any other record is parsed with cJSON.
 * Both ways fill the view identically: a string member is NULL when
 * missing or not a string, the first of duplicate members counts, has_*
 * says a number member is a number. */
#ifndef SIM_JVIEW_H
#define SIM_JVIEW_H

#include <stddef.h>

typedef struct {
    const char *k, *job_id, *state, *ev, *snapshot, *hash, *appr_snapshot, *op, *wf;
    size_t state_len;        /* strlen(state) when state is not NULL, else 0 */
    const char *attempt_str; /* "attempt" as a string, else NULL */
    double attempt_num;      /* "attempt" as a number, else NAN */
    int has_decision, has_appr, has_attempt;
    double decision, appr;
    unsigned seen; /* used while reading: a bit per member met (view_clear in
                    * sim_jview.c sets every member: a new one goes there too) */
} sim_jview;

/* What a view's strings point into; zero-initialised before first use. */
typedef struct {
    char *scratch; /* the copy of the record read by the single pass */
    size_t cap;
    void *parsed; /* the cJSON tree of the record read the slow way, or NULL */
} sim_jview_reader;

/* Reads line into *v. 1 when line is a JSON object (v's strings stay valid
 * until the next read or sim_jview_reader_free), 0 when it is not JSON or
 * memory ran out. */
int sim_jview_read(sim_jview_reader *r, const char *line, sim_jview *v);

/* The same for a line whose length is known: len must be strlen(line)
 * (the journal effect's record_len), which saves measuring it again. */
int sim_jview_read_n(sim_jview_reader *r, const char *line, size_t len, sim_jview *v);

/* Frees what the reader holds. NULL is accepted. */
void sim_jview_reader_free(sim_jview_reader *r);

#endif
