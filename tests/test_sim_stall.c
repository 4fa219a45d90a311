/* The stall guard (sim_world.c, docs/simulator.md "When time stands
 * still"): steps that take no time can feed one another for ever at one
 * virtual instant; the run stops with CAP_ESTALLED after the scenario's
 * max_events_per_instant events there, naming the instant and what the
 * events were. A run whose instants fit under the bound is not changed by
 * it, to the trace hash. */
#include "testutil.h"

#include "cap_error.h"
#include "sim_scenario.h"
#include "sim_world.h"

#define SCN_PATH "tests/scn.yaml" /* policy paths resolve against tests/ */

/* Zero latency and zero service: each ending job is answered at once by the
 * client's next submission. */
#define ZERO_TIME                                                                                  \
    "name: zero\n"                                                                                 \
    "duration: 10s\n"                                                                              \
    "policy: ../reference/policies/example.yaml\n"                                                 \
    "bus: {latency: 0}\n"                                                                          \
    "workers:\n"                                                                                   \
    "  - {id: w, count: 2, pool: job.tools, service: 0}\n"

/* Loads yaml and runs it with seed 7: the run's return code, *res and *d
 * filled. */
static int run_yaml(const char *yaml, sim_result *res, cap_diag *d)
{
    sim_scenario *s = NULL;
    cap_yaml_diag yd;
    int rc = sim_scenario_parse(SCN_PATH, yaml, strlen(yaml), &s, &yd);
    if (rc) {
        char buf[700];
        fail_msg("scenario did not load (%d): %s\n%s", rc,
                 cap_yaml_diag_format(&yd, SCN_PATH, buf, sizeof buf), yaml);
    }
    sim_run_config c = {0};
    c.scn = s;
    c.seed = 7;
    rc = sim_run(&c, res, d);
    sim_scenario_free(s);
    return rc;
}

#define CLOSED_LOOP                                                                                \
    "workload:\n"                                                                                  \
    "  kind: closed\n"                                                                             \
    "  concurrency: 3\n"                                                                           \
    "  mix: [{topic: job.tools, meta_labels: {mcp.action: read}}]\n"

static void test_zero_time_loop_stops(void **state)
{
    (void)state;
    sim_result *res = malloc(sizeof *res);
    cap_diag d;
    assert_int_equal(run_yaml(ZERO_TIME "max_events_per_instant: 1000\n" CLOSED_LOOP, res, &d),
                     CAP_ESTALLED);
    assert_int_equal(d.err, CAP_ESTALLED);
    assert_string_equal(d.path, "max_events_per_instant");
    assert_non_null(strstr(d.reason, "stood still at 0.000000s: 1000 events at one instant"));
    /* the tally of the last events names what loops, the commonest first */
    assert_non_null(strstr(d.reason, "(last 1000: "));
    assert_non_null(strstr(d.reason, "delivery on sys.job.submit"));
    assert_non_null(strstr(d.reason, " arrival, "));
    assert_non_null(strstr(d.reason, "raise max_events_per_instant"));
    assert_true(res->events == 1000);
    /* the default bound stops it too, later */
    assert_int_equal(run_yaml(ZERO_TIME CLOSED_LOOP, res, &d), CAP_ESTALLED);
    assert_true(res->events == SIM_DEFAULT_EVENTS_PER_INSTANT);
    free(res);
}

/* The same loop with a think time moves the clock on: no stall, however
 * many events the run has in all. */
static void test_time_moving_on_is_no_stall(void **state)
{
    (void)state;
    sim_result *res = malloc(sizeof *res);
    cap_diag d;
    assert_int_equal(
        run_yaml(ZERO_TIME "max_events_per_instant: 1000\n" CLOSED_LOOP "  think: 1ms\n", res, &d),
        CAP_OK);
    assert_true(res->events > 10000);
    assert_int_equal(res->violated, 0);
    free(res);
}

/* A finite pile-up at a later instant: a scripted 1000-step workflow at
 * 2.5 s, every step taking no time, is over 1000 events at 2.5 s. The bound
 * stops it there; raised, the run completes, and its trace is the one the
 * default bound gives. */
static void test_bound_is_per_instant_and_changes_nothing_below_it(void **state)
{
    (void)state;
#define WORKFLOW                                                                                   \
    "workload:\n"                                                                                  \
    "  kind: none\n"                                                                               \
    "  mix: [{topic: job.tools, meta_labels: {mcp.action: read}, workflow_steps: 1000}]\n"          \
    "  script: [{at: 2500ms}]\n"
    sim_result *res = malloc(sizeof *res);
    cap_diag d;
    assert_int_equal(run_yaml(ZERO_TIME "max_events_per_instant: 1000\n" WORKFLOW, res, &d),
                     CAP_ESTALLED);
    assert_non_null(strstr(d.reason, "stood still at 2.500000s: 1000 events at one instant"));

    assert_int_equal(run_yaml(ZERO_TIME "max_events_per_instant: 100000\n" WORKFLOW, res, &d),
                     CAP_OK);
    assert_true(res->events > 1000);
    assert_true(res->succeeded == 1000);
    char raised[65];
    memcpy(raised, res->trace_hash, sizeof raised);

    assert_int_equal(run_yaml(ZERO_TIME WORKFLOW, res, &d), CAP_OK);
    assert_string_equal(res->trace_hash, raised);
    free(res);
#undef WORKFLOW
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_time_loop_stops),
        cmocka_unit_test(test_time_moving_on_is_no_stall),
        cmocka_unit_test(test_bound_is_per_instant_and_changes_nothing_below_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
