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

static sim_scenario *load(const char *yaml)
{
    sim_scenario *s = NULL;
    cap_yaml_diag d;
    int rc = sim_scenario_parse(SCN_PATH, yaml, strlen(yaml), &s, &d);
    if (rc) {
        char buf[700];
        fail_msg("scenario did not load (%d): %s\n%s", rc,
                 cap_yaml_diag_format(&d, SCN_PATH, buf, sizeof buf), yaml);
    }
    return s;
}

static int run(const sim_scenario *s, sim_result *res, cap_diag *d)
{
    sim_run_config c = {0};
    c.scn = s;
    c.seed = 7;
    return sim_run(&c, res, d);
}

static void test_zero_time_loop_stops(void **state)
{
    (void)state;
    sim_scenario *s = load(ZERO_TIME "max_events_per_instant: 1000\n"
                                     "workload:\n"
                                     "  kind: closed\n"
                                     "  concurrency: 3\n"
                                     "  mix: [{topic: job.tools, meta_labels: {mcp.action: read}}]\n");
    sim_result *res = malloc(sizeof *res);
    cap_diag d;
    assert_int_equal(run(s, res, &d), CAP_ESTALLED);
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
    sim_scenario_free(s);
    s = load(ZERO_TIME "workload:\n"
                       "  kind: closed\n"
                       "  concurrency: 3\n"
                       "  mix: [{topic: job.tools, meta_labels: {mcp.action: read}}]\n");
    assert_int_equal(run(s, res, &d), CAP_ESTALLED);
    assert_true(res->events == SIM_DEFAULT_EVENTS_PER_INSTANT);
    sim_scenario_free(s);
    free(res);
}

/* The same loop with a think time moves the clock on: no stall, however
 * many events the run has in all. */
static void test_time_moving_on_is_no_stall(void **state)
{
    (void)state;
    sim_scenario *s = load(ZERO_TIME "max_events_per_instant: 1000\n"
                                     "workload:\n"
                                     "  kind: closed\n"
                                     "  concurrency: 3\n"
                                     "  think: 1ms\n"
                                     "  mix: [{topic: job.tools, meta_labels: {mcp.action: read}}]\n");
    sim_result *res = malloc(sizeof *res);
    cap_diag d;
    assert_int_equal(run(s, res, &d), CAP_OK);
    assert_true(res->events > 10000);
    assert_int_equal(res->violated, 0);
    sim_scenario_free(s);
    free(res);
}

/* A finite pile-up at a later instant: a scripted 1000-step workflow at
 * 2.5 s, every step taking no time, is over 1000 events at 2.5 s. The bound
 * stops it there; raised, the run completes, and its trace is the one the
 * default bound gives. */
static void test_bound_is_per_instant_and_changes_nothing_below_it(void **state)
{
    (void)state;
    static const char body[] = "workload:\n"
                               "  kind: none\n"
                               "  mix: [{topic: job.tools, meta_labels: {mcp.action: read},\n"
                               "         workflow_steps: 1000}]\n"
                               "  script: [{at: 2500ms}]\n";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%smax_events_per_instant: 1000\n%s", ZERO_TIME, body);
    sim_scenario *s = load(yaml);
    sim_result *res = malloc(sizeof *res);
    cap_diag d;
    assert_int_equal(run(s, res, &d), CAP_ESTALLED);
    assert_non_null(strstr(d.reason, "stood still at 2.500000s: 1000 events at one instant"));
    sim_scenario_free(s);

    snprintf(yaml, sizeof yaml, "%smax_events_per_instant: 100000\n%s", ZERO_TIME, body);
    s = load(yaml);
    assert_int_equal(run(s, res, &d), CAP_OK);
    assert_true(res->events > 1000);
    assert_true(res->succeeded == 1000);
    char raised[65];
    memcpy(raised, res->trace_hash, sizeof raised);
    sim_scenario_free(s);

    snprintf(yaml, sizeof yaml, "%s%s", ZERO_TIME, body);
    s = load(yaml);
    assert_int_equal(run(s, res, &d), CAP_OK);
    assert_string_equal(res->trace_hash, raised);
    sim_scenario_free(s);
    free(res);
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
