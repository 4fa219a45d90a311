/* The scheduler's reuse of a failed worker selection while it tries its
 * waiting jobs (sel_miss in reference/ref_scheduler.c), and a drain's
 * passing over the jobs such a try would not move (wentry): with the
 * self-check on, every reuse is also selected afresh and must agree, and
 * every job passed over is tried and must not change, over
 * every ready scenario and over backlogs that
 * mix plain jobs with placement labels, retries that exclude workers,
 * breakers, crashes and partitions. The check itself must not change a
 * run: the trace hash is the same with it on and off. And the reuse is
 * what makes a backlog affordable: it happens thousands of times there.
 * With the check on, a drain's pass also keeps the copy of the queue it
 * reads in place instead, and every entry it reads must be as there; it
 * tries what it would pass over unread (the dead front, the rest after
 * the point where it would stop) and none of those may move. */
#include "testutil.h"

#include <glob.h>
#include <stdlib.h>

#include "cap_error.h"
#include "ref_scheduler.h"
#include "sim_scenario.h"
#include "sim_world.h"
#include "swarm_case.h"

#define SEC INT64_C(1000000000)

/* Runs scn with seed (duration_ns 0: the scenario's), asserts it held,
 * and returns its trace hash in hash. */
static void run_held(const sim_scenario *scn, uint64_t seed, int64_t duration_ns, char hash[65])
{
    sim_run_config c = {0};
    c.scn = scn;
    c.seed = seed;
    c.duration_ns = duration_ns;
    sim_result *r = calloc(1, sizeof *r);
    assert_non_null(r);
    cap_diag d;
    memset(&d, 0, sizeof d);
    int rc = sim_run(&c, r, &d);
    if (rc != CAP_OK)
        fail_msg("%s seed %llu: sim_run %d: %s", scn->path, (unsigned long long)seed, rc, d.reason);
    if (r->violated)
        fail_msg("%s seed %llu: %s broke: %s", scn->path, (unsigned long long)seed, r->invariant,
                 r->detail);
    memcpy(hash, r->trace_hash, 65);
    free(r);
}

/* The run with the check on; its hash must be the run's without it. The
 * number of reuses checked is returned. */
static uint64_t checked_run(const sim_scenario *scn, uint64_t seed, int64_t duration_ns)
{
    char off[65], on[65];
    ref_sched_check_reuse(0);
    run_held(scn, seed, duration_ns, off);
    uint64_t before = ref_sched_reuses_checked();
    ref_sched_check_reuse(1);
    run_held(scn, seed, duration_ns, on);
    ref_sched_check_reuse(0);
    assert_int_equal(ref_sched_reuses_wrong(), 0);
    assert_string_equal(on, off);
    return ref_sched_reuses_checked() - before;
}

static void test_ready_scenarios(void **state)
{
    (void)state;
    glob_t g;
    assert_int_equal(glob("sim/scenarios/*.yaml", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 10);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        sim_scenario *s = NULL;
        cap_yaml_diag d;
        assert_int_equal(sim_scenario_load(g.gl_pathv[i], &s, &d), CAP_OK);
        for (uint64_t seed = 1; seed <= 3; seed++)
            checked_run(s, seed, 0);
        sim_scenario_free(s);
    }
    globfree(&g);
}

/* The benchmark's workload at 800 jobs/s on 500 workers: a worker that
 * reported itself busy takes nothing until its next heartbeat says
 * otherwise, so a backlog builds and every freed slot tries all of it. */
static void test_backlog_of_plain_jobs(void **state)
{
    (void)state;
    const char *sets[] = {"workload.rate=800", "workers[0].count=500"};
    sim_scenario *s = NULL;
    cap_yaml_diag d;
    assert_int_equal(sim_scenario_load_with("bench/sim-large.yaml", sets, 2, &s, &d), CAP_OK);
    assert_true(checked_run(s, 1, 6 * SEC) > 10000);
    sim_scenario_free(s);
}

/* Plain jobs among jobs that place by label (they are selected afresh
 * every time), retried jobs that exclude the workers that failed them,
 * breakers opening on the failing workers, a crash and a partition, all
 * behind a backlog. */
static const char MIXED[] =
    "name: mixed-backlog\n"
    "seed: 3\n"
    "duration: 40s\n"
    "drain: 30m\n"
    "policy: ../reference/policies/example.yaml\n"
    /* a job on a worker that crashed and came back within the grace is
     * lost to the scheduler until running_timeout (cordum-ref 6): keep
     * it shorter than the drain */
    "scheduler: {max_retries: 4, breaker_threshold: 3, breaker_cool_down: 5s,\n"
    "            running_timeout: 60s}\n"
    "workers:\n"
    "  - {id: a, count: 12, pool: job.tools, max_parallel: 1, heartbeat: 2s,\n"
    "     labels: {zone: a}, service: {dist: exponential, mean: 800ms}, p_retryable: 0.15}\n"
    "  - {id: b, count: 12, pool: job.tools, max_parallel: 2, heartbeat: 3s,\n"
    "     service: {dist: exponential, mean: 1s}, p_retryable: 0.05}\n"
    "  - {id: flaky, pool: job.tools, max_parallel: 1, heartbeat: 1s,\n"
    "     service: 200ms, p_retryable: 0.9}\n"
    "workload:\n"
    "  kind: poisson\n"
    "  rate: 45\n"
    "  mix:\n"
    "    - {topic: job.tools, weight: 6, meta_labels: {mcp.action: read}}\n"
    "    - {topic: job.tools, weight: 2, labels: {zone: a}, meta_labels: {mcp.action: read}}\n"
    "    - {topic: job.tools, weight: 1, priority: batch, meta_labels: {mcp.action: read}}\n"
    "faults:\n"
    "  - {at: 10s, crash: b-3}\n"
    "  - {at: 18s, restart: b-3}\n"
    "  - {at: 12s, partition: [scheduler, a-2]}\n"
    "  - {at: 20s, heal: [scheduler]}\n";

static void test_backlog_of_mixed_jobs(void **state)
{
    (void)state;
    sim_scenario *s = NULL;
    cap_yaml_diag d;
    int rc = sim_scenario_parse("tests/mixed-backlog.yaml", MIXED, strlen(MIXED), &s, &d);
    if (rc)
        fail_msg("did not load: %s: %s", d.path, d.reason);
    uint64_t n = 0;
    for (uint64_t seed = 1; seed <= 4; seed++)
        n += checked_run(s, seed, 0);
    assert_true(n > 1000);
    sim_scenario_free(s);
}

/* The swarm's draws: crashes, restarts, partitions, clock skew, breakers,
 * policy changes and cancels around the waiting jobs. A miss is reused at
 * later instants too (a waiting job's wake timer), until a worker's grace
 * or a breaker's cool-down can change the answer: every reuse is checked. */
static void test_swarm_draws(void **state)
{
    (void)state;
    char dir[] = "/tmp/capsim-sel-reuse-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* Seeds 1 to 120, then two whose drains nest and mark entries that an
     * outer pass has yet to reach, which it must read as they were when
     * it began (wpass in ref_scheduler.c). */
    uint64_t seeds[122];
    for (uint64_t k = 0; k < 120; k++)
        seeds[k] = k + 1;
    seeds[120] = 662;
    seeds[121] = 1334;
    uint64_t n = 0;
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
        uint64_t seed = seeds[k];
        sim_swarm_case c;
        assert_int_equal(sim_swarm_generate(seed, &c), CAP_OK);
        sim_scenario *s = swarm_load_case(dir, &c, seed);
        sim_swarm_case_free(&c);
        n += checked_run(s, seed, 0);
        sim_scenario_free(s);
    }
    swarm_remove_case(dir);
    assert_true(n > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_scenarios),
        cmocka_unit_test(test_backlog_of_plain_jobs),
        cmocka_unit_test(test_backlog_of_mixed_jobs),
        cmocka_unit_test(test_swarm_draws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
