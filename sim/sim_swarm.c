/* Swarm testing: a random scenario per seed. See sim_swarm.h. */
#define _DEFAULT_SOURCE
#include "sim_swarm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "sim_rng.h"

/* The world a swarm draws from: the pools (each also a job topic), the
 * tenants and the values the policies and the mix share, so that rules
 * meet jobs they match. */
static const char *const POOLS[] = {"job.tools", "job.data", "job.batch.etl"};
#define N_POOLS (sizeof POOLS / sizeof *POOLS)
static const char *const TENANTS[] = {"tenant-a", "tenant-b"};
static const char *const ACTIONS[] = {"read", "write", "delete"};
static const char *const RISK_TAGS[] = {"prod", "pii"};
static const char *const ZONES[] = {"a", "b"};

/* Bus subjects a fault may name. The gateway's submits may be duplicated
 * or replayed, never lost or corrupted (see sim_swarm.h). */
static const char *const ANY_SUBJECTS[] = {"sys.job.submit", "sys.job.result", "worker.*.jobs",
                                           "sys.heartbeat", "sys.job.progress"};
static const char *const LOSSY_SUBJECTS[] = {"sys.job.result", "worker.*.jobs", "sys.heartbeat",
                                             "sys.job.progress"};
/* Corruption spares the dispatches too: a corrupted dispatch that still
 * decodes (a byte of its job id changed, say) is another job to the worker,
 * with the same dispatch_id, and it runs; without a signature nothing can
 * tell, so no control plane could keep handler-once. */
static const char *const CORRUPTIBLE_SUBJECTS[] = {"sys.job.result", "sys.heartbeat",
                                                   "sys.job.progress"};

/* How long a run may drain: the liveness bound. A tenant at its cap lets a
 * throttled job in when that job is checked again, at most 30 s later, so
 * at least 2 jobs (the least cap drawn) start every 30.5 s: the 80 jobs at
 * most drawn fit in about 20 minutes, whatever else holds them up. A run
 * ends as soon as it has drained; only a livelock runs to the bound. */
#define SWARM_DRAIN "1h"

#define MAX_WORKER_NAMES 16
#define MAX_MIX 4

typedef struct {
    sim_rng r;
    sim_rng more; /* "swarm.workers": see worker_extras */
    uint64_t seed;
    /* what the scenario has drawn so far, for the parts drawn after it */
    int64_t duration_ms;
    size_t n_pools;          /* the first n_pools of POOLS are in use */
    unsigned served;         /* the pools some worker serves (bit i: POOLS[i]) */
    char workers[MAX_WORKER_NAMES][48];
    size_t n_workers;
    int sign;
    int64_t lifetime_ms;
    int approver;
    uint64_t max_jobs;
    size_t n_policies;
    int failed; /* out of memory on the way */
} gen;

static uint64_t below(gen *g, uint64_t n)
{
    return sim_rng_below(&g->r, n);
}

static int64_t range(gen *g, int64_t lo, int64_t hi)
{
    return sim_rng_range(&g->r, lo, hi);
}

static int chance(gen *g, double p)
{
    return sim_rng_bernoulli(&g->r, p);
}

#define PICK(g, arr) (arr)[below((g), sizeof(arr) / sizeof *(arr))]

/* Every draw is a statement (or an initialiser) of its own, never one of
 * several arguments of a call: C leaves the order in which arguments are
 * evaluated to the compiler, and the same seed must draw the same case
 * whichever compiler built the binary. */

/* A probability in [0, max], in thousandths (written exactly). */
static double prob(gen *g, int max_thousandths)
{
    return (double)range(g, 0, max_thousandths) / 1000.0;
}

/* The same, never 0 (a fault that must do something: a `duplicate` with
 * no count needs p > 0). */
static double prob_some(gen *g, int max_thousandths)
{
    return (double)range(g, 1, max_thousandths) / 1000.0;
}

/* A distribution of times around mean_ms, as a scenario writes it. */
static void dist(gen *g, FILE *f, int64_t mean_ms)
{
    switch (below(g, 4)) {
    case 0: fprintf(f, "%" PRId64 "ms", mean_ms); break;
    case 1: fprintf(f, "{dist: uniform, min: %" PRId64 "ms, max: %" PRId64 "ms}", mean_ms / 2,
                    mean_ms + mean_ms / 2);
        break;
    case 2: fprintf(f, "{dist: exponential, mean: %" PRId64 "ms}", mean_ms); break;
    default:
        fprintf(f, "{dist: lognormal, median: %" PRId64 "ms, sigma: %.2f}", mean_ms,
                (double)range(g, 10, 100) / 100.0);
        break;
    }
}

/* ---- policies ------------------------------------------------------------ */

static void match(gen *g, FILE *f)
{
    fputs("  match: {", f);
    int n = 0;
    if (chance(g, 0.5))
        fprintf(f, "%stopics: [\"%s\"]", n++ ? ", " : "", POOLS[below(g, g->n_pools)]);
    if (chance(g, 0.6))
        fprintf(f, "%slabels: {mcp.action: \"%s\"}", n++ ? ", " : "", PICK(g, ACTIONS));
    if (chance(g, 0.3))
        fprintf(f, "%srisk_tags: [\"%s\"]", n++ ? ", " : "", PICK(g, RISK_TAGS));
    if (chance(g, 0.3))
        fprintf(f, "%stenants: [\"%s\"]", n++ ? ", " : "", PICK(g, TENANTS));
    fputs("}\n", f);
}

/* One policy: tenants with caps now and then, one to five rules, and a
 * default. Decisions never throttle for good: THROTTLE only under a
 * velocity window, which empties once the load is over. */
static void policy(gen *g, FILE *f, size_t k)
{
    fprintf(f, "# swarm seed %" PRIu64 ", policy %zu\nversion: \"swarm-%" PRIu64 "-%zu\"\n",
            g->seed, k, g->seed, k);
    fprintf(f, "default_decision: %s\n", chance(g, 0.7) ? "allow" : "deny");
    if (chance(g, 0.4)) {
        fputs("tenants:\n", f);
        for (size_t t = 0; t < sizeof TENANTS / sizeof *TENANTS; t++)
            if (chance(g, 0.7))
                fprintf(f, "  %s: {max_concurrent_jobs: %" PRId64 "}\n", TENANTS[t], range(g, 2, 6));
            else
                fprintf(f, "  %s: {}\n", TENANTS[t]);
    }
    fputs("rules:\n", f);
    int64_t n = range(g, 1, 5);
    for (int64_t i = 0; i < n; i++) {
        fprintf(f, "- id: r%" PRId64 "\n", i);
        match(g, f);
        uint64_t d = below(g, 20);
        if (d < 7) {
            fputs("  decision: allow\n", f);
        } else if (d < 10) {
            int64_t retries = range(g, 0, 3), runtime = range(g, 5, 120);
            fprintf(f, "  decision: allow_with_constraints\n  constraints: {max_retries: %" PRId64
                       ", max_runtime_sec: %" PRId64 "}\n",
                    retries, runtime);
        } else if (d < 14) {
            fputs("  decision: require_approval\n", f);
        } else if (d < 17) {
            fputs("  decision: deny\n", f);
        } else {
            /* A throttled job is checked again every 5 s, 10 s, 20 s, then
             * 30 s, and every check counts in the window (cordum-ref: a
             * throttle requeues for ever). A window of W seconds therefore
             * sees about one check in 30/W of each waiting job: with more
             * than 30 M / W jobs waiting it stays full for good, a livelock
             * no control plane could end. A window of 1 or 2 s and a limit
             * of at least a tenth of the jobs times W keeps the waiting jobs'
             * checks well under it, so each round of checks lets at least
             * M of them through. */
            static const char *const keys[] = {"tenant", "topic", "tenant:topic"};
            int64_t w = range(g, 1, 2);
            int64_t m = ((int64_t)g->max_jobs + 3) * w / 10 + range(g, 1, 3);
            fprintf(f, "  velocity: {max_requests: %" PRId64 ", window_seconds: %" PRId64
                       ", key: \"%s\"}\n  decision: throttle\n",
                    m, w, PICK(g, keys));
        }
        fprintf(f, "  reason: \"swarm rule %" PRId64 "\"\n", i);
    }
}

/* ---- the scenario -------------------------------------------------------- */

static void scheduler(gen *g, FILE *f)
{
    int64_t dispatch = range(g, 3, 30), running = range(g, 10, 90), no_worker = range(g, 5, 60),
            retries = range(g, 0, 5);
    fprintf(f, "scheduler: {dispatch_timeout: %" PRId64 "s, running_timeout: %" PRId64
               "s, no_worker_wait: %" PRId64 "s, max_retries: %" PRId64,
            dispatch, running, no_worker, retries);
    if (chance(g, 0.5)) {
        int64_t threshold = range(g, 1, 10), cool = range(g, 1, 30);
        fprintf(f, ", breaker_threshold: %" PRId64 ", breaker_cool_down: %" PRId64 "s", threshold,
                cool);
    }
    if (chance(g, 0.3))
        fprintf(f, ", worker_grace: %" PRId64 "s", range(g, 5, 40));
    fputs("}\n", f);
}

/* A worker spec's later features, slow or missing heartbeats and
 * checkpoints, drawn from a stream of their own: they came after the rest
 * of the generator, and drawing them from "swarm" would have changed every
 * later draw of every seed. */
static void worker_extras(gen *g, FILE *f)
{
    gen h = {.r = g->more};
    if (chance(&h, 0.15)) {
        double miss = prob(&h, 600);
        int64_t late_ms = range(&h, 1, 3000);
        fprintf(f, ", p_heartbeat_miss: %.3f, heartbeat_delay: {dist: exponential, mean: %" PRId64
                   "ms}",
                miss, late_ms);
    }
    if (chance(&h, 0.3)) {
        int64_t checkpoints = range(&h, 1, 6);
        fprintf(f, ", checkpoints: %" PRId64, checkpoints);
    }
    g->more = h.r;
}

static void workers(gen *g, FILE *f)
{
    fputs("workers:\n", f);
    int64_t specs = range(g, 1, 3);
    for (int64_t s = 0; s < specs; s++) {
        /* every pool served by the first specs; the rest at random */
        size_t p = s < (int64_t)g->n_pools ? (size_t)s : below(g, g->n_pools);
        const char *pool = POOLS[p];
        g->served |= 1u << p;
        int64_t count = range(g, 1, 4), parallel = range(g, 1, 3), heartbeat = range(g, 500, 10000);
        fprintf(f, "  - {id: w%" PRId64 ", count: %" PRId64 ", pool: %s, max_parallel: %" PRId64
                   ", heartbeat: %" PRId64 "ms, service: ",
                s, count, pool, parallel, heartbeat);
        dist(g, f, range(g, 50, 5000));
        double retryable = chance(g, 0.6) ? prob(g, 300) : 0;
        double fatal = chance(g, 0.4) ? prob(g, 150) : 0;
        double hang = chance(g, 0.25) ? prob(g, 60) : 0;
        fprintf(f, ", p_retryable: %.3f, p_fatal: %.3f, p_hang: %.3f", retryable, fatal, hang);
        if (chance(g, 0.3)) {
            double crash = prob(g, 80);
            int64_t back = range(g, 1, 30);
            fprintf(f, ", p_crash: %.3f, restart_after: %" PRId64 "s", crash, back);
        }
        if (chance(g, 0.3))
            fprintf(f, ", labels: {zone: %s}", PICK(g, ZONES));
        worker_extras(g, f);
        fputs("}\n", f);
        for (int64_t i = 1; i <= count && g->n_workers < MAX_WORKER_NAMES; i++) {
            if (count > 1)
                snprintf(g->workers[g->n_workers++], sizeof g->workers[0], "w%" PRId64 "-%" PRId64,
                         s, i);
            else
                snprintf(g->workers[g->n_workers++], sizeof g->workers[0], "w%" PRId64, s);
        }
    }
}

static void mix_entry(gen *g, FILE *f)
{
    static const char *const prios[] = {"interactive", "batch", "critical"};
    const char *topic = POOLS[below(g, g->n_pools)];
    int64_t weight = range(g, 1, 5);
    const char *tenant = PICK(g, TENANTS);
    const char *prio = PICK(g, prios);
    fprintf(f, "    - {topic: %s, weight: %" PRId64 ", tenant: %s, priority: %s", topic, weight,
            tenant, prio);
    fprintf(f, ", meta_labels: {mcp.action: %s}", PICK(g, ACTIONS));
    if (chance(g, 0.3))
        fprintf(f, ", risk_tags: [%s]", PICK(g, RISK_TAGS));
    if (chance(g, 0.1))
        fprintf(f, ", labels: {zone: %s}", PICK(g, ZONES));
    if (chance(g, 0.3)) {
        fprintf(f, ", workflow_steps: %" PRId64, range(g, 2, 4));
        if (chance(g, 0.7))
            fprintf(f, ", compensation_topic: %s", POOLS[below(g, g->n_pools)]);
    } else if (chance(g, 0.1)) {
        fprintf(f, ", idempotency_key: key-%" PRId64, range(g, 1, 3));
    }
    fputs("}\n", f);
}

static void workload(gen *g, FILE *f)
{
    g->max_jobs = (uint64_t)range(g, 10, 80);
    fputs("workload:\n", f);
    switch (below(g, 3)) {
    case 0: fprintf(f, "  kind: poisson\n  rate: %.2f\n", (double)range(g, 20, 500) / 100.0); break;
    case 1: {
        int64_t clients = range(g, 1, 8), think = range(g, 0, 2000);
        fprintf(f, "  kind: closed\n  concurrency: %" PRId64 "\n  think: %" PRId64 "ms\n", clients,
                think);
        break;
    }
    default: {
        int64_t size = range(g, 3, 30), every = range(g, 5, 30);
        fprintf(f, "  kind: burst\n  burst: {size: %" PRId64 ", every: %" PRId64 "s}\n", size, every);
        break;
    }
    }
    fprintf(f, "  max_jobs: %" PRIu64 "\n  mix:\n", g->max_jobs);
    int64_t n = range(g, 1, MAX_MIX);
    for (int64_t i = 0; i < n; i++)
        mix_entry(g, f);
    if (chance(g, 0.3)) {
        fputs("  script:\n", f);
        int64_t k = range(g, 1, 3);
        for (int64_t i = 0; i < k; i++) {
            int64_t at = range(g, 0, g->duration_ms), m = range(g, 0, n - 1);
            fprintf(f, "    - {at: %" PRId64 "ms, mix: %" PRId64, at, m);
            /* now and then an id of its own, or one the gateway also gives
             * (a second submit of a known job id: answered as a duplicate) */
            uint64_t id = below(g, 3);
            if (id == 1) {
                int64_t x = range(g, 1, 5);
                fprintf(f, ", job_id: scripted-%" PRId64, x);
            } else if (id == 2) {
                int64_t x = range(g, 1, (int64_t)g->max_jobs);
                fprintf(f, ", job_id: job-%" PRId64, x);
            }
            fputs("}\n", f);
        }
    }
}

/* A time in the run, in ms, leaving `room` ms before its end. */
static int64_t when(gen *g, int64_t room)
{
    return range(g, 0, g->duration_ms > room ? g->duration_ms - room : 0);
}

/* A pool some worker serves (the first spec serves POOLS[0]). */
static const char *served_pool(gen *g)
{
    size_t p = below(g, g->n_pools);
    while (!(g->served & (1u << p)))
        p = (p + 1) % g->n_pools;
    return POOLS[p];
}

static const char *worker_name(gen *g)
{
    return g->workers[below(g, g->n_workers)];
}

/* A bus fault of `kind` on `subject`, params the text inside its mapping;
 * now and then only for the deliveries from one sender or to one receiver
 * (the subject's own: the gateway submits, the scheduler dispatches to the
 * workers, the workers publish the rest, which the scheduler receives), and
 * now and then for a while only (`duration`). */
static void bus_fault(gen *g, FILE *f, const char *kind, const char *subject, const char *params)
{
    fprintf(f, "  - {at: %" PRId64 "ms, %s: {subject: \"%s\", %s", when(g, 0), kind, subject,
            params);
    if (chance(g, 0.25)) {
        int dispatch = strcmp(subject, "worker.*.jobs") == 0;
        int submit = strcmp(subject, "sys.job.submit") == 0;
        if (chance(g, 0.5))
            fprintf(f, ", from: %s", submit ? "gateway" : dispatch ? "scheduler" : worker_name(g));
        else
            fprintf(f, ", to: %s", dispatch ? worker_name(g) : "scheduler");
    }
    fputs("}", f);
    if (chance(g, 0.6))
        fprintf(f, ", duration: %" PRId64 "ms", range(g, 1000, g->duration_ms));
    fputs("}\n", f);
}

static void fault(gen *g, FILE *f)
{
    switch (below(g, 13)) {
    case 0: { /* a worker crashes and comes back (or is restarted at once) */
        const char *w = worker_name(g);
        int64_t at = when(g, 1000), back = range(g, at + 1, g->duration_ms);
        if (chance(g, 0.25))
            fprintf(f, "  - {at: %" PRId64 "ms, restart: %s}\n", at, w);
        else
            fprintf(f, "  - {at: %" PRId64 "ms, crash: %s}\n  - {at: %" PRId64 "ms, restart: %s}\n",
                    at, w, back, w);
        break;
    }
    case 1: { /* the scheduler crashes and restarts from its journal (or at once) */
        int64_t at = when(g, 1000), back = at + range(g, 1, 10000);
        if (back > g->duration_ms)
            back = g->duration_ms;
        if (chance(g, 0.25))
            fprintf(f, "  - {at: %" PRId64 "ms, restart: scheduler}\n", at);
        else
            fprintf(f, "  - {at: %" PRId64 "ms, crash: scheduler}\n  - {at: %" PRId64
                       "ms, restart: scheduler}\n",
                    at, back);
        break;
    }
    case 2: { /* the scheduler cut from a pool or from one worker, or a worker from everyone */
        char a[64], b[64];
        uint64_t which = below(g, 3);
        if (which == 0) {
            snprintf(a, sizeof a, "scheduler");
            snprintf(b, sizeof b, "\"pool:%s\"", served_pool(g));
        } else if (which == 1) {
            snprintf(a, sizeof a, "scheduler");
            snprintf(b, sizeof b, "%s", worker_name(g));
        } else {
            snprintf(a, sizeof a, "%s", worker_name(g));
            b[0] = 0;
        }
        int64_t at = when(g, 1000), heal = range(g, at + 1, g->duration_ms);
        fprintf(f, "  - {at: %" PRId64 "ms, partition: [%s%s%s]}\n", at, a, b[0] ? ", " : "", b);
        fprintf(f, "  - {at: %" PRId64 "ms, heal: [%s%s%s]}\n", heal, a, b[0] ? ", " : "", b);
        break;
    }
    case 3: {
        char params[64];
        if (chance(g, 0.5))
            snprintf(params, sizeof params, "count: %" PRId64, range(g, 1, 20));
        else
            snprintf(params, sizeof params, "p: %.3f", prob_some(g, 500));
        bus_fault(g, f, "duplicate", PICK(g, ANY_SUBJECTS), params);
        break;
    }
    case 4: {
        char params[32];
        snprintf(params, sizeof params, "p: %.3f", prob_some(g, 300));
        bus_fault(g, f, "loss", PICK(g, LOSSY_SUBJECTS), params);
        break;
    }
    case 5: {
        char params[64];
        snprintf(params, sizeof params, "dist: exponential, mean: %" PRId64 "ms", range(g, 1, 3000));
        bus_fault(g, f, "latency", PICK(g, ANY_SUBJECTS), params);
        break;
    }
    case 6: {
        char params[32];
        snprintf(params, sizeof params, "window: %" PRId64 "ms", range(g, 1, 5000));
        bus_fault(g, f, "reorder", PICK(g, ANY_SUBJECTS), params);
        break;
    }
    case 7: {
        char params[32];
        snprintf(params, sizeof params, "p: %.3f", prob_some(g, 100));
        bus_fault(g, f, "corrupt", PICK(g, CORRUPTIBLE_SUBJECTS), params);
        break;
    }
    case 8: {
        char params[64];
        int64_t count = range(g, 1, 10), after = range(g, 100, 300000);
        snprintf(params, sizeof params, "count: %" PRId64 ", after: %" PRId64 "ms", count, after);
        bus_fault(g, f, "replay", PICK(g, ANY_SUBJECTS), params);
        break;
    }
    case 9: {
        int64_t at = when(g, 0);
        const char *who = chance(g, 0.3) ? "scheduler" : worker_name(g);
        int64_t by = range(g, -5000, 5000);
        fprintf(f, "  - {at: %" PRId64 "ms, skew: {actor: %s, by: \"%" PRId64 "ms\"}}\n", at, who,
                by);
        break;
    }
    case 10:
        if (g->n_policies > 1) {
            int64_t at = when(g, 0), k = range(g, 1, (int64_t)g->n_policies - 1);
            fprintf(f, "  - {at: %" PRId64 "ms, policy: " SIM_SWARM_POLICY_FILE "}\n", at, (size_t)k);
        }
        break;
    case 11: { /* a job of the gateway's, by the id it gives: job-N, or wf-N-sK for a step */
        int64_t at = when(g, 0), n = range(g, 1, (int64_t)g->max_jobs);
        if (chance(g, 0.5)) {
            fprintf(f, "  - {at: %" PRId64 "ms, cancel: job-%" PRId64 "}\n", at, n);
        } else {
            int64_t step = range(g, 1, 4);
            fprintf(f, "  - {at: %" PRId64 "ms, cancel: wf-%" PRId64 "-s%" PRId64 "}\n", at, n, step);
        }
        break;
    }
    default:
        if (g->sign) {
            int64_t at = when(g, 0), count = range(g, 1, 10),
                    after = range(g, 1, g->lifetime_ms / 2);
            fprintf(f, "  - {at: %" PRId64 "ms, conflict: {count: %" PRId64 ", after: %" PRId64
                       "ms}}\n",
                    at, count, after);
        }
        break;
    }
}

static void scenario(gen *g, FILE *f)
{
    g->duration_ms = range(g, 20, 90) * 1000;
    g->n_pools = (size_t)range(g, 1, N_POOLS);
    g->n_policies = (size_t)range(g, 1, SIM_SWARM_MAX_POLICIES);
    fprintf(f, "# A swarm scenario: everything below was drawn from seed %" PRIu64
               " (capsim swarm).\n",
            g->seed);
    fprintf(f, "name: swarm-%" PRIu64 "\ndescription: drawn by capsim swarm from seed %" PRIu64
               "\nseed: %" PRIu64 "\nduration: %" PRId64 "ms\ndrain: " SWARM_DRAIN "\npolicy: " SIM_SWARM_POLICY_FILE
               "\n",
            g->seed, g->seed, g->seed, g->duration_ms, (size_t)0);
    scheduler(g, f);
    fputs("bus: {latency: ", f);
    dist(g, f, range(g, 1, 20));
    fputs("}\n", f);
    workers(g, f);
    if ((g->approver = chance(g, 0.7))) {
        fputs("approver: {delay: ", f);
        dist(g, f, range(g, 100, 60000));
        fprintf(f, ", p_approve: %.3f}\n", prob(g, 1000));
    }
    if ((g->sign = chance(g, 0.3))) {
        g->lifetime_ms = range(g, 10, 300) * 1000;
        fprintf(f, "gateway: {sign: true, signature_lifetime: %" PRId64 "ms}\n", g->lifetime_ms);
    }
    workload(g, f);
    /* the faults gathered first: a draw may add none (a policy change
     * with one policy, a conflict without signing) */
    char *faults = NULL;
    size_t len = 0;
    FILE *ff = open_memstream(&faults, &len);
    if (ff) {
        int64_t n = range(g, 0, 6);
        for (int64_t i = 0; i < n; i++)
            fault(g, ff);
        if (fclose(ff) != 0) {
            free(faults);
            faults = NULL;
        }
    }
    if (!faults) {
        g->failed = 1;
        return;
    }
    fprintf(f, "faults:%s%s", len ? "\n" : " []\n", faults);
    free(faults);
}

/* ---- the case -------------------------------------------------------------- */

/* Runs draw(g, f, k) into a string. */
static char *text(gen *g, void (*draw)(gen *, FILE *, size_t), size_t k, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    draw(g, f, k);
    if (fclose(f) != 0 || !buf || g->failed) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void draw_scenario(gen *g, FILE *f, size_t k)
{
    (void)k;
    scenario(g, f);
}

void sim_swarm_case_free(sim_swarm_case *c)
{
    if (!c)
        return;
    free(c->scenario);
    for (size_t i = 0; i < SIM_SWARM_MAX_POLICIES; i++)
        free(c->policy[i]);
    memset(c, 0, sizeof *c);
}

int sim_swarm_generate(uint64_t seed, sim_swarm_case *c)
{
    memset(c, 0, sizeof *c);
    gen g;
    memset(&g, 0, sizeof g);
    g.seed = seed;
    sim_rng_stream(&g.r, seed, "swarm");
    sim_rng_stream(&g.more, seed, "swarm.workers");
    /* The scenario first (it fixes the pools and how many policies there
     * are), then the policies, each from the same stream. */
    c->scenario = text(&g, draw_scenario, 0, &c->scenario_len);
    if (!c->scenario)
        goto nomem;
    c->n_policies = g.n_policies;
    for (size_t k = 0; k < g.n_policies; k++)
        if (!(c->policy[k] = text(&g, policy, k, &c->policy_len[k])))
            goto nomem;
    return CAP_OK;
nomem:
    sim_swarm_case_free(c);
    return CAP_ENOMEM;
}
