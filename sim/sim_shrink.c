/* Shrinking a failing run to a minimal scenario: see sim_shrink.h. */
#include "sim_shrink.h"

#include <stdlib.h>
#include <string.h>

#include "sim_scenario_write.h"

typedef struct {
    const char *inv;
    const char *path;
    uint64_t seed;
    int runs, max_runs;
    int err;          /* a run that could not be carried out */
    cap_diag *d;
    sim_result *res;  /* the last run */
} shrinker;

/* Array lengths of a throwaway copy, restored before it is freed: an
 * element is "removed" by rotating it to the end and shortening the count,
 * so the free still sees it. */
typedef struct {
    size_t n_timeline, n_workers, n_mix, n_script;
} counts;

static counts save(const sim_scenario *s)
{
    return (counts){s->n_timeline, s->n_workers, s->workload.n_mix, s->workload.n_script};
}

static void restore(sim_scenario *s, counts c)
{
    s->n_timeline = c.n_timeline;
    s->n_workers = c.n_workers;
    s->workload.n_mix = c.n_mix;
    s->workload.n_script = c.n_script;
}

static void hide(void *arr, size_t *n, size_t elem, size_t i)
{
    unsigned char tmp[512];
    unsigned char *a = arr;
    if (i >= *n || elem > sizeof tmp)
        return;
    memcpy(tmp, a + i * elem, elem);
    memmove(a + i * elem, a + (i + 1) * elem, (*n - i - 1) * elem);
    memcpy(a + (*n - 1) * elem, tmp, elem);
    (*n)--;
}

/* Events and script entries after the load window can never fire; they
 * also would not load once the duration is shorter than their time. */
static void fit_duration(sim_scenario *s)
{
    if (s->workload.stop_at_ns > s->duration_ns)
        s->workload.stop_at_ns = 0;
    for (size_t i = s->n_timeline; i-- > 0;)
        if (s->timeline[i].at > s->duration_ns)
            hide(s->timeline, &s->n_timeline, sizeof *s->timeline, i);
    for (size_t i = s->workload.n_script; i-- > 0;)
        if (s->workload.script[i].at > s->duration_ns)
            hide(s->workload.script, &s->workload.n_script, sizeof *s->workload.script, i);
}

/* Drops mix entry k: script entries for it go, later indices shift. */
static void drop_mix(sim_scenario *s, size_t k)
{
    sim_workload_spec *w = &s->workload;
    for (size_t i = w->n_script; i-- > 0;) {
        if (w->script[i].mix == k)
            hide(w->script, &w->n_script, sizeof *w->script, i);
        else if (w->script[i].mix > k)
            w->script[i].mix--;
    }
    hide(w->mix, &w->n_mix, sizeof *w->mix, k);
}

/* One candidate step. */
typedef enum {
    OP_EVENT, OP_SCRIPT, OP_MIX, OP_WORKER, OP_COUNT, OP_PARALLEL, OP_HEARTBEAT, OP_CHECKPOINTS,
    OP_STEPS, OP_RATE,
    OP_BURST, OP_CLIENTS, OP_UNSIGN, OP_JOBS, OP_DURATION, OP__N
} op_kind;

/* Applies op (on element i) to s. 0 when it changed something. */
static int apply(sim_scenario *s, op_kind op, size_t i, uint64_t submitted)
{
    sim_workload_spec *w = &s->workload;
    switch (op) {
    case OP_EVENT:
        if (i >= s->n_timeline)
            return -1;
        hide(s->timeline, &s->n_timeline, sizeof *s->timeline, i);
        return 0;
    case OP_SCRIPT:
        if (i >= w->n_script)
            return -1;
        hide(w->script, &w->n_script, sizeof *w->script, i);
        return 0;
    case OP_MIX:
        if (i >= w->n_mix || w->n_mix < 2)
            return -1;
        drop_mix(s, i);
        return 0;
    case OP_WORKER:
        if (i >= s->n_workers || s->n_workers < 2)
            return -1;
        hide(s->workers, &s->n_workers, sizeof *s->workers, i);
        return 0;
    case OP_COUNT:
        if (i >= s->n_workers || s->workers[i].count < 2)
            return -1;
        s->workers[i].count /= 2;
        return 0;
    case OP_PARALLEL:
        if (i >= s->n_workers || s->workers[i].max_parallel < 2)
            return -1;
        s->workers[i].max_parallel /= 2;
        return 0;
    case OP_HEARTBEAT: /* steady heartbeats: none missed, none late */
        if (i >= s->n_workers || !sim_worker_heartbeat_faults(&s->workers[i]))
            return -1;
        s->workers[i].p_heartbeat_miss = 0;
        s->workers[i].heartbeat_delay = (sim_dist){SIM_DIST_FIXED, 0, 0};
        return 0;
    case OP_CHECKPOINTS: /* halved, 1 to none */
        if (i >= s->n_workers || !s->workers[i].checkpoints)
            return -1;
        s->workers[i].checkpoints /= 2;
        return 0;
    case OP_STEPS:
        if (i >= w->n_mix || w->mix[i].workflow_steps < 2)
            return -1;
        w->mix[i].workflow_steps /= 2;
        return 0;
    case OP_UNSIGN: /* submits go out unsigned; conflicts need signing, so they go too */
        if (!s->gateway.sign)
            return -1;
        s->gateway.sign = 0;
        for (size_t k = s->n_timeline; k-- > 0;)
            if (s->timeline[k].kind == SIM_EV_CONFLICT)
                hide(s->timeline, &s->n_timeline, sizeof *s->timeline, k);
        return 0;
    case OP_JOBS: {
        uint64_t m = w->max_jobs ? w->max_jobs : submitted;
        if (m < 2)
            return -1;
        w->max_jobs = m / 2;
        return 0;
    }
    case OP_DURATION:
        if (s->duration_ns < 2000000)
            return -1;
        s->duration_ns /= 2;
        fit_duration(s);
        return 0;
    case OP_RATE:
        if (w->kind != SIM_LOAD_POISSON || w->rate <= 0.01)
            return -1;
        w->rate /= 2;
        return 0;
    case OP_BURST:
        if (w->kind != SIM_LOAD_BURST || w->burst_size < 2)
            return -1;
        w->burst_size /= 2;
        return 0;
    case OP_CLIENTS:
        if (w->kind != SIM_LOAD_CLOSED || w->concurrency < 2)
            return -1;
        w->concurrency /= 2;
        return 0;
    default: return -1;
    }
}

/* How many elements op has in s (1 for the scalar ops). */
static size_t op_width(const sim_scenario *s, op_kind op)
{
    switch (op) {
    case OP_EVENT: return s->n_timeline;
    case OP_SCRIPT: return s->workload.n_script;
    case OP_MIX:
    case OP_STEPS: return s->workload.n_mix;
    case OP_WORKER:
    case OP_COUNT:
    case OP_PARALLEL:
    case OP_HEARTBEAT:
    case OP_CHECKPOINTS: return s->n_workers;
    default: return 1;
    }
}

/* 1 when candidate c breaks the invariant with the seed (sh->res holds
 * that run); 0 when not; the run's error when it could not be run. */
static int reproduces(shrinker *sh, const sim_scenario *c)
{
    sim_run_config rc = {0};
    rc.scn = c;
    rc.seed = sh->seed;
    sh->runs++;
    int r = sim_run(&rc, sh->res, sh->d);
    if (r == CAP_ESTALLED) { /* a cut made time stand still: not a reproduction */
        cap_diag_clear(sh->d);
        return 0;
    }
    if (r < 0)
        return r;
    return sh->res->violated && strcmp(sh->res->invariant, sh->inv) == 0;
}

/* Copies cur, lets edit change the copy, and reads the edited copy back
 * as a new scenario. NULL when the edit does not apply or the result does
 * not load (an event naming a worker that is gone, for instance). */
typedef int (*edit_fn)(sim_scenario *s, const void *arg);

static sim_scenario *derive(shrinker *sh, const sim_scenario *cur, edit_fn edit, const void *arg)
{
    sim_scenario *copy = NULL, *out = NULL;
    cap_yaml_diag yd;
    int rc = sim_scenario_clone(cur, sh->path, &copy, &yd);
    if (rc) {
        if (rc == CAP_ENOMEM || rc == CAP_EIO)
            sh->err = rc;
        return NULL;
    }
    counts c = save(copy);
    if (edit(copy, arg) == 0) {
        rc = sim_scenario_clone(copy, sh->path, &out, &yd);
        if (rc == CAP_ENOMEM || rc == CAP_EIO)
            sh->err = rc;
    }
    restore(copy, c);
    sim_scenario_free(copy);
    return out;
}

typedef struct {
    op_kind op;
    size_t i;
    uint64_t submitted;
} op_arg;

static int edit_op(sim_scenario *s, const void *arg)
{
    const op_arg *a = arg;
    return apply(s, a->op, a->i, a->submitted);
}

typedef struct {
    const sim_run_config *k;
    const sim_scenario *orig;
    uint64_t seed, submitted;
    int64_t at;
    int workers;
} bake_arg;

/* The knobs and the failing run's figures as plain scenario values. */
static int edit_bake(sim_scenario *s, const void *arg)
{
    const bake_arg *b = arg;
    s->seed = b->seed;
    if (!b->k)
        return 0;
    sim_workload_spec *w = &s->workload;
    uint64_t mj = b->k->max_jobs ? b->k->max_jobs : w->max_jobs;
    if (b->submitted && (!mj || mj > b->submitted))
        mj = b->submitted;
    w->max_jobs = mj;
    int64_t dur = b->k->duration_ns ? b->k->duration_ns : s->duration_ns;
    if (b->at > 0 && b->at < dur)
        dur = b->at + 1;
    s->duration_ns = dur;
    if (b->workers && b->k->workers_limit)
        for (size_t i = 0; i < s->n_workers; i++)
            if (s->workers[i].count > b->k->workers_limit)
                s->workers[i].count = b->k->workers_limit;
    if (b->k->skip_event)
        for (size_t i = b->orig->n_timeline; i-- > 0;)
            if (b->k->skip_event[i])
                hide(s->timeline, &s->n_timeline, sizeof *s->timeline, i);
    fit_duration(s);
    return 0;
}

int sim_shrink(const sim_scenario *scn, const sim_run_config *knobs, uint64_t seed,
               const char *invariant, const char *path, int max_runs, sim_shrink_result *res,
               cap_diag *d)
{
    if (!scn || !invariant || !res)
        return CAP_EINVAL;
    memset(res, 0, sizeof *res);
    cap_diag local;
    shrinker sh = {.inv = invariant, .path = path ? path : scn->path, .seed = seed,
                   .max_runs = max_runs > 0 ? max_runs : SIM_SHRINK_DEFAULT_RUNS,
                   .d = d ? d : &local, .res = &res->last};
    /* The scenario as it failed: first with every knob as a value, then
     * (when a knob cannot be written as it ran, e.g. a worker limit that
     * renames workers) with fewer of them. */
    sim_scenario *cur = NULL;
    int r = 0;
    sim_run_config none = {0};
    if (!knobs)
        knobs = &none;
    for (int attempt = 0; attempt < 3 && !cur; attempt++) {
        if (attempt == 1 && !knobs->workers_limit)
            continue; /* the same as attempt 0 */
        bake_arg b = {.k = attempt < 2 ? knobs : NULL, .orig = scn, .seed = seed,
                      .workers = attempt == 0};
        if (attempt < 2) {
            /* what the first run submitted and when it broke bound the copy */
            sim_run_config rc = *knobs;
            rc.scn = scn;
            rc.seed = seed;
            rc.trace_bin = rc.trace_jsonl = NULL;
            sh.runs++;
            if ((r = sim_run(&rc, sh.res, sh.d)) < 0)
                return r;
            if (sh.res->violated && !strcmp(sh.res->invariant, invariant)) {
                b.submitted = sh.res->submitted;
                b.at = sh.res->at;
            }
        }
        sim_scenario *c = derive(&sh, scn, edit_bake, &b);
        if (sh.err)
            return sh.err;
        if (!c)
            continue;
        if ((r = reproduces(&sh, c)) < 0) {
            sim_scenario_free(c);
            return r;
        }
        if (r)
            cur = c;
        else
            sim_scenario_free(c);
    }
    if (!cur)
        return cap_diag_set(sh.d, CAP_EINVAL, -1, scn->path,
                            "the %s violation of seed %llu does not reproduce from a written "
                            "scenario",
                            invariant, (unsigned long long)seed);
    uint64_t submitted = sh.res->submitted;
    int progress = 1;
    while (progress && sh.runs < sh.max_runs) {
        progress = 0;
        for (op_kind op = 0; op < OP__N && sh.runs < sh.max_runs; op++) {
            /* Element ops from the last element down, so a removal does not
             * shift the ones still to try; halving ops repeat while they
             * keep the violation. */
            for (size_t i = op_width(cur, op); i-- > 0 && sh.runs < sh.max_runs;) {
                for (;;) {
                    op_arg a = {op, i, submitted};
                    sim_scenario *c = derive(&sh, cur, edit_op, &a);
                    if (sh.err) {
                        sim_scenario_free(cur);
                        return sh.err;
                    }
                    if (!c)
                        break;
                    if ((r = reproduces(&sh, c)) < 0) {
                        sim_scenario_free(c);
                        sim_scenario_free(cur);
                        return r;
                    }
                    if (!r) {
                        sim_scenario_free(c);
                        break;
                    }
                    sim_scenario_free(cur);
                    cur = c;
                    submitted = sh.res->submitted;
                    progress = 1;
                    if (op <= OP_WORKER || sh.runs >= sh.max_runs || i >= op_width(cur, op))
                        break; /* a removal: on to the next element */
                }
            }
        }
    }
    /* The last run may have been a rejected candidate: run the result once
     * more so res->last describes it. */
    if ((r = reproduces(&sh, cur)) <= 0) {
        sim_scenario_free(cur);
        return r < 0 ? r
                     : cap_diag_set(sh.d, CAP_EINVAL, -1, scn->path,
                                    "the shrunk scenario no longer reproduces the violation");
    }
    res->scn = cur;
    res->runs = sh.runs;
    return CAP_OK;
}
