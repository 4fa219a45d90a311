/* Golden-trace cases (docs/golden.md): one directory per case under
 * conformance/cases/<id>/ with case.yaml (what the case checks, which
 * roles it certifies, the scenario and seed, the timing window) and
 * golden.jsonl (the PUBLISH records the reference produces on the
 * scenario in the simulator with that seed).
 *
 * This module loads cases, re-runs a case's scenario in the simulator,
 * re-records its golden trace, and compares an observed trace with the
 * golden one record by record, reporting the first divergence with a
 * field-level diff. The records are plain structs (time, sender, subject,
 * a short label, the packet JSON) so a report can draw a sequence diagram
 * from them.
 *
 * Ownership: every pointer a function hands out is owned by the caller
 * and freed with the matching free function named at the function. */
#ifndef CONF_GOLDEN_H
#define CONF_GOLDEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cap_error.h"
#include "cap_yaml.h"

#define CONF_GOLDEN_ROLE_WORKER 1u
#define CONF_GOLDEN_ROLE_SCHEDULER 2u

#define CONF_GOLDEN_CASE_FILE "case.yaml"
#define CONF_GOLDEN_TRACE_FILE "golden.jsonl"
#define CONF_GOLDEN_MAX_CASES 1024
#define CONF_GOLDEN_MAX_CLAUSES 32
#define CONF_GOLDEN_MAX_IUT 64
#define CONF_GOLDEN_MAX_RECORDS 100000

typedef struct {
    char *key;
    char *value;
} conf_golden_kv;

typedef struct {
    char *id;            /* [a-z0-9-]+, equal to the directory name */
    char *title;
    char *description;   /* "" when absent */
    char **clauses;      /* "cap-spec 07 L47", ... */
    size_t n_clauses;
    unsigned roles;      /* CONF_GOLDEN_ROLE_* bits, at least one */
    uint64_t seed;
    int64_t window_ns;   /* timing tolerance for real-time certification, > 0 */
    char *dir;           /* absolute path of the case directory */
    char *case_path;     /* absolute path of case.yaml */
    char *scenario_path; /* absolute path of the scenario */
    char *golden_path;   /* absolute path of golden.jsonl (may not exist yet) */
    conf_golden_kv *iut; /* optional settings for the implementation under test, in file order */
    size_t n_iut;
} conf_golden_case;

/* Loads the case in directory `case_dir` (its case.yaml). CAP_OK with *out
 * (free with conf_golden_free); otherwise an error with d set: CAP_EIO
 * (unreadable file or directory), CAP_EYAML (bad YAML, a value of the
 * wrong kind), CAP_EINVAL (missing or unknown key, bad id, unknown role,
 * bad window or clause, scenario file missing). d->path is the key path;
 * cap_yaml_diag_format(d, case_path, ...) prints FILE:LINE:COL: PATH: REASON.
 * When case_path_out is not NULL it receives the case.yaml path tried
 * (malloc'd, caller frees) so an error can name the file. */
int conf_golden_load(const char *case_dir, conf_golden_case **out, char **case_path_out,
                     cap_yaml_diag *d);
void conf_golden_free(conf_golden_case *c);

/* Loads every case of `dir` (each subdirectory holding a case.yaml),
 * sorted by id. On error returns it with d set and *bad_path the failing
 * case.yaml (malloc'd; may be NULL). Free the list with conf_golden_free_all. */
int conf_golden_load_dir(const char *dir, conf_golden_case ***out, size_t *n, char **bad_path,
                         cap_yaml_diag *d);
void conf_golden_free_all(conf_golden_case **cases, size_t n);

/* The name of one role bit ("worker", "scheduler"), NULL otherwise; and
 * the roles as text ("worker,scheduler") into buf. */
const char *conf_golden_role_name(unsigned role);
const char *conf_golden_roles_text(unsigned roles, char *buf, size_t n);

/* One PUBLISH record, simplified for display and comparison. */
typedef struct {
    int64_t time;
    char *sender;
    char *subject;
    char label[200]; /* "JobResult SUCCEEDED job-1 attempt 2" */
    char *json;      /* the packet's JSON form (compact), or NULL when the bytes do not decode */
    uint8_t *bytes;  /* exact bytes */
    size_t len;
} conf_golden_record;

/* Reads a trace file (binary or JSONL) keeping its PUBLISH records. *out
 * is freed with conf_golden_records_free. CAP_ETRACE/CAP_EJSON/CAP_EIO with
 * d (path "record N" / "line N: ..."); CAP_EFULL over
 * CONF_GOLDEN_MAX_RECORDS records. hash (may be NULL): the file's trace hash. */
int conf_golden_read_trace(const char *path, conf_golden_record **out, size_t *n, char hash[65],
                           cap_diag *d);
void conf_golden_records_free(conf_golden_record *r, size_t n);

/* Runs the case's scenario in the simulator with the case's seed and
 * writes its JSONL trace to f. CAP_OK, or the error of loading the
 * scenario (yd set; returned as is) or of the run (d set). An invariant
 * violation is not an error here: the trace is what it is. */
int conf_golden_run(const conf_golden_case *c, FILE *f, cap_yaml_diag *yd, cap_diag *d);

/* Runs the case and returns its records (conf_golden_records_free). */
int conf_golden_observe(const conf_golden_case *c, conf_golden_record **out, size_t *n,
                        char hash[65], cap_yaml_diag *yd, cap_diag *d);

/* Re-records golden.jsonl: runs the case into a temporary file in the
 * case directory and renames it over golden.jsonl. */
int conf_golden_update(const conf_golden_case *c, cap_yaml_diag *yd, cap_diag *d);

/* One field that differs: a JSON path ("$.jobResult.status", or "time",
 * "sender", "subject", "record") and both values as JSON text ("absent"
 * when missing). */
typedef struct {
    char path[192];
    char *expected;
    char *observed;
} conf_golden_field_diff;

typedef struct {
    conf_golden_record *expected; /* the golden records */
    size_t n_expected;
    conf_golden_record *observed; /* the records of this run */
    size_t n_observed;
    long first_diff;              /* index of the first differing record; -1: identical */
    conf_golden_field_diff *diffs; /* the fields of that record that differ */
    size_t n_diffs;
    char expected_hash[65], observed_hash[65];
} conf_golden_result;

/* Compares two record lists: fills first_diff and diffs (the records
 * themselves are not copied: expected/observed stay NULL). Two records are
 * equal when time, sender, subject and bytes are. CAP_OK or CAP_ENOMEM. */
int conf_golden_diff(const conf_golden_record *exp, size_t n_exp, const conf_golden_record *obs,
                     size_t n_obs, conf_golden_result *out);

/* Loads the golden trace, re-runs the case and compares: *out owns both
 * record lists and the diff (conf_golden_result_free). Errors: reading
 * golden.jsonl (d), loading the scenario (yd), the run (d). */
int conf_golden_check(const conf_golden_case *c, conf_golden_result *out, cap_yaml_diag *yd,
                      cap_diag *d);
void conf_golden_result_free(conf_golden_result *r);

#endif
