/* Many seeds and shrinking: see sim_seeds.h. */
#define _DEFAULT_SOURCE
#include "sim_seeds.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "proc_pool.h"
#include "ref_bugs.h"
#include "sim_scenario_write.h"
#include "sim_shrink.h"

int seeds_parse_range(const char *s, uint64_t *a, uint64_t *b)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || strncmp(end, "..", 2) != 0)
        return -1;
    const char *t = end + 2;
    unsigned long long y = strtoull(t, &end, 10);
    if (errno || end == t || *end || y < x || y - x >= 10000000)
        return -1;
    *a = x;
    *b = y;
    return 0;
}

/* A seed's outcome as its process leaves it, in a mapping shared with the
 * parent: the processes end in any order, the parent reads the slots in
 * seed order. done is written last. */
typedef struct {
    char trace_hash[65];
    uint8_t violated;
    uint8_t done;
} seed_slot;

/* The child's side: runs the seed, fills its slot, prints its --each line
 * (one write, so that lines of parallel seeds do not mix) and exits 0
 * held, 1 violated, 2 not run. */
static void child(seeds_run_fn run, void *ctx, uint64_t seed, int each, seed_slot *slot)
{
    sim_result *res = malloc(sizeof *res);
    cap_diag d;
    memset(&d, 0, sizeof d);
    int rc = res ? run(ctx, seed, res, &d) : CAP_ENOMEM; /* the parent reports a failure */
    if (rc == CAP_OK) {
        memcpy(slot->trace_hash, res->trace_hash, sizeof slot->trace_hash);
        slot->violated = res->violated != 0;
        slot->done = 1;
    }
    if (each && rc == CAP_OK) {
        char line[200];
        int n = snprintf(line, sizeof line, "seed %" PRIu64 ": %s%s, trace sha256 %s\n", seed,
                         res->violated ? "VIOLATION " : "held", res->violated ? res->invariant : "",
                         res->trace_hash);
        if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0)
            rc = CAP_EIO;
    }
    _exit(rc != CAP_OK ? 2 : res->violated ? 1 : 0);
}

typedef struct {
    seeds_run_fn run;
    void *ctx;
    uint64_t a;
    int each, violated, broken;
    seed_slot *slots; /* one per seed of the range, shared with the children */
} seeds_pool;

static void seed_task(void *ctx, size_t i)
{
    const seeds_pool *sp = ctx;
    child(sp->run, sp->ctx, sp->a + i, sp->each, &sp->slots[i]);
}

/* A seed's process ended: 0 held, 1 violated, anything else not run. The
 * first violation stops the starting of seeds. */
static int seed_finished(void *ctx, size_t i, int status)
{
    (void)i;
    seeds_pool *sp = ctx;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 2;
    sp->violated |= code == 1;
    sp->broken |= code != 0 && code != 1;
    return sp->violated || sp->broken;
}

static void add_run(seed_runs *runs, uint64_t seed, int violated, const char *hash)
{
    if (!runs)
        return;
    seed_run *r = &runs->v[runs->n++];
    r->seed = seed;
    r->violated = violated;
    memcpy(r->trace_hash, hash, sizeof r->trace_hash);
    r->trace_hash[sizeof r->trace_hash - 1] = 0;
}

int seeds_run(const char *cmd, seeds_run_fn run, void *ctx, uint64_t a, uint64_t b, long jobs,
              int each, uint64_t *failed, sim_result *res, uint64_t *ran, seed_runs *runs)
{
    uint64_t total = b - a + 1;
    if (runs)
        *runs = (seed_runs){NULL, 0};
    /* Pages are only committed as seeds fill them (at most 10 million
     * slots of 67 bytes are reserved for the largest range). */
    size_t map_len = (size_t)total * sizeof(seed_slot);
    seed_slot *slots = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (slots == MAP_FAILED) {
        cli_error(cmd, "cannot map the outcomes of %" PRIu64 " seeds: %s", total, strerror(errno));
        return -1;
    }
    seeds_pool sp = {run, ctx, a, each, 0, 0, slots};
    proc_pool pool = {&sp, NULL, seed_task, NULL, seed_finished};
    long started = proc_pool_run(cmd, &pool, (size_t)total, jobs);
    int violated = sp.violated, broken = sp.broken || started < 0;
    uint64_t next = a + (started < 0 ? 0 : (uint64_t)started);
    if (ran)
        *ran = next - a;
    int rc = -1;
    if (runs && !(runs->v = calloc(next - a ? next - a : 1, sizeof *runs->v))) {
        cli_error(cmd, "%s", cap_strerror(CAP_ENOMEM));
        goto out;
    }
    if (!violated && !broken) {
        for (uint64_t s = a; s < next; s++) {
            const seed_slot *sl = &slots[s - a];
            if (!sl->done || sl->violated) {
                cli_error(cmd, "seed %" PRIu64 " ended without its outcome", s);
                goto out;
            }
            add_run(runs, s, 0, sl->trace_hash);
        }
        printf("%" PRIu64 " seeds (%" PRIu64 "..%" PRIu64 "): every invariant held\n", total, a, b);
        rc = 0;
        goto out;
    }
    /* The smallest failing seed among those started, found in order here:
     * which child finished first is not deterministic, this is. */
    for (uint64_t s = a; s < next; s++) {
        cap_diag d;
        memset(&d, 0, sizeof d);
        int r = run(ctx, s, res, &d);
        if (r != CAP_OK) {
            char why[640];
            cli_error(cmd, "seed %" PRIu64 " could not be run: %s", s,
                      d.err ? cap_diag_format(&d, why, sizeof why) : cap_strerror(r));
            goto out;
        }
        const seed_slot *sl = &slots[s - a];
        if (sl->done && (strcmp(sl->trace_hash, res->trace_hash) != 0 ||
                         sl->violated != (res->violated != 0))) {
            cli_error(cmd,
                      "seed %" PRIu64 " is not deterministic: trace sha256 %s in its process, "
                      "%s run again",
                      s, sl->trace_hash, res->trace_hash);
            goto out;
        }
        add_run(runs, s, res->violated != 0, res->trace_hash);
        if (res->violated) {
            *failed = s;
            printf("%" PRIu64 " seeds run; seed %" PRIu64 " breaks %s: job %s at %.6fs: %s\n",
                   next - a, s, res->invariant, res->job_id[0] ? res->job_id : "-",
                   (double)res->at / 1e9, res->detail);
            rc = 1;
            goto out;
        }
    }
    cli_error(cmd, "a seed could not be run");
out:
    munmap(slots, map_len);
    if (rc < 0 && runs) {
        free(runs->v);
        *runs = (seed_runs){NULL, 0};
    }
    return rc;
}

/* s as one shell word: single-quoted unless it is plain. */
static void shell_word(const char *s, FILE *out)
{
    if (s[0] && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/=+:,") ==
                    strlen(s)) {
        fputs(s, out);
        return;
    }
    fputc('\'', out);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", out);
        else
            fputc(*s, out);
    fputc('\'', out);
}

void seeds_reproduce_command(const char *path, uint64_t seed, const char *bug,
                             char *const *sets, size_t n_sets, FILE *out)
{
    fputs("capsim sim ", out);
    shell_word(path, out);
    fprintf(out, " --seed %" PRIu64, seed);
    if (bug)
        fprintf(out, " --bug %s", bug);
    for (size_t i = 0; i < n_sets; i++) {
        fputs(" --set ", out);
        shell_word(sets[i], out);
    }
}

int seeds_tell_story(const char *cmd, const sim_run_config *c, const sim_result *first, int rc)
{
    sim_run_config again_cfg = *c;
    again_cfg.trace_bin = again_cfg.trace_jsonl = NULL;
    again_cfg.history_job = first->job_id;
    again_cfg.history_out = stdout;
    sim_result *again = malloc(sizeof *again);
    if (!again)
        return CLI_USAGE;
    printf("\nhistory of %s, the job of the violation (the same run again with --history %s):\n",
           first->job_id, first->job_id);
    fflush(stdout);
    cap_diag d;
    memset(&d, 0, sizeof d);
    if (sim_run(&again_cfg, again, &d) != CAP_OK) {
        cli_diag(cmd, c->scn->path, &d);
        rc = CLI_USAGE;
    } else if (!again->violated || strcmp(again->invariant, first->invariant) != 0) {
        /* a run is a function of its scenario and seed: this is a bug */
        cli_error(cmd, "the run again did not break %s: the simulator is not deterministic",
                  first->invariant);
        rc = CLI_USAGE;
    }
    free(again);
    return rc;
}

int seeds_shrink(const char *cmd, const sim_scenario *scn, const sim_run_config *knobs,
                 uint64_t seed, const sim_result *first, const char *out)
{
    sim_shrink_result *sr = malloc(sizeof *sr);
    if (!sr)
        return CLI_USAGE;
    cap_diag d;
    memset(&d, 0, sizeof d);
    int rc = sim_shrink(scn, knobs, seed, first->invariant, out, 0, sr, &d);
    if (rc != CAP_OK) {
        cli_diag(cmd, scn->path, &d);
        free(sr);
        return CLI_USAGE;
    }
    const char *bug = ref_bug_current_name();
    char *comment = NULL;
    size_t clen = 0;
    FILE *m = open_memstream(&comment, &clen);
    if (m) {
        fprintf(m,
                "A minimal reproduction written by capsim %s: invariant %s breaks with seed %" PRIu64
                "%s%s.\n"
                "Shrunk from %s (scenario \"%s\") in %d runs.\n"
                "Reproduce: capsim sim %s --seed %" PRIu64 "%s%s\n"
                "The violation: job %s at %.6fs: %s\n",
                cmd, first->invariant, seed, bug ? " with the injected bug " : "", bug ? bug : "",
                scn->path, scn->name ? scn->name : "", sr->runs, out, seed, bug ? " --bug " : "",
                bug ? bug : "", sr->last.job_id[0] ? sr->last.job_id : "-",
                (double)sr->last.at / 1e9, sr->last.detail);
        /* The overrides are already in the values below; named for the record. */
        for (size_t i = 0; i < scn->n_sets; i++)
            fprintf(m, "%s--set %s%s", i ? " " : "The original run had ", scn->sets[i],
                    i + 1 == scn->n_sets ? ".\n" : "");
        fclose(m);
    }
    cli_output o;
    int wrc = CAP_ENOMEM;
    if (comment && cli_output_open(cmd, out, &o) == 0) {
        wrc = sim_scenario_write(sr->scn, comment, o.f);
        if (cli_output_close(cmd, &o, wrc == CAP_OK) != 0 && wrc == CAP_OK)
            wrc = CAP_EIO;
    }
    free(comment);
    sim_scenario_free(sr->scn);
    if (wrc != CAP_OK) {
        cli_error(cmd, "cannot write the shrunk scenario %s: %s", out, cap_strerror(wrc));
        free(sr);
        return CLI_USAGE;
    }
    printf("shrunk after %d runs to %s; reproduce with:\n  capsim sim %s --seed %" PRIu64 "%s%s"
           " --no-shrink\n",
           sr->runs, out, out, seed, bug ? " --bug " : "", bug ? bug : "");
    free(sr);
    return CLI_REJECTED;
}
