/* Scenario files: a full scenario read back field by field, the defaults,
 * durations, every class of bad input with its line, column and key path,
 * policy files (resolved against the scenario, errors pointing into them),
 * actor names, the timeline's stable time order, and overrides (--set). */
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#include "cap_error.h"
#include "sim_scenario.h"

#define EX_POLICY "../reference/policies/example.yaml"
#define SCN_PATH "tests/scn.yaml" /* policy paths resolve against tests/ */

static sim_scenario *load(const char *yaml)
{
    sim_scenario *s = NULL;
    cap_yaml_diag d;
    int rc = sim_scenario_parse(SCN_PATH, yaml, strlen(yaml), &s, &d);
    if (rc) {
        char buf[600];
        fail_msg("scenario did not load (%d): %s", rc, cap_yaml_diag_format(&d, SCN_PATH, buf, sizeof buf));
    }
    return s;
}

/* ---- a full scenario, every field ---- */

static const char FULL[] =
    "name: worker-timeout-redispatch\n"
    "description: a worker dies mid-job; the scheduler re-dispatches it elsewhere\n"
    "seed: 18446744073709551615\n"
    "duration: 120s\n"
    "drain: 5m\n"
    "policy: " EX_POLICY "\n"
    "scheduler: {dispatch_timeout: 30s, running_timeout: 60s, no_worker_wait: 1m, max_retries: 3,\n"
    "            breaker_threshold: 4, breaker_cool_down: 1.5s}\n"
    "bus: {latency: {dist: lognormal, median: 2ms, sigma: 0.5}}\n"
    "workers:\n"
    "  - {id: w, count: 3, pool: job.tools, max_parallel: 2, heartbeat: 5s,\n"
    "     service: {dist: exponential, mean: 2s}, p_retryable: 0.1, p_fatal: 0.2, p_hang: 0.3,\n"
    "     p_crash: 0.05, restart_after: 10s, p_heartbeat_miss: 0.25, checkpoints: 3,\n"
    "     heartbeat_delay: {dist: uniform, min: 1s, max: 3s},\n"
    "     labels: {zone: a, gpu: 'yes'}, capabilities: [git, sh]}\n"
    "  - {id: solo, pool: job.batch, service: {dist: uniform, min: 1ms, max: 5ms}}\n"
    "  - {id: fx, pool: job.batch, service: 250ms}\n"
    "approver: {delay: {dist: fixed, value: 30s}, p_approve: 0.9, name: alice}\n"
    "workload:\n"
    "  kind: poisson\n"
    "  rate: 2.5\n"
    "  max_jobs: 200\n"
    "  stop_at: 100s\n"
    "  mix:\n"
    "    - {topic: job.tools, weight: 3, tenant: tenant-b, priority: critical,\n"
    "       meta_labels: {mcp.action: read}, risk_tags: [prod], labels: {zone: a},\n"
    "       workflow_steps: 2, compensation_topic: job.undo, idempotency_key: k-1}\n"
    "    - {topic: job.batch.x, priority: JOB_PRIORITY_BATCH, idempotency_key: ''}\n"
    "  script:\n"
    "    - {at: 3s, mix: 1, job_id: job-2}\n"
    "    - {at: 1s, job_id: job-1}\n"
    "    - {at: 2s, mix: 0}\n"
    "faults:\n"
    "  - {at: 30s, crash: w-2}\n"
    "  - {at: 60s, restart: w-2}\n"
    "  - {at: 40s, restart: scheduler}\n"
    "  - {at: 10s, partition: [scheduler, \"pool:job.tools\"]}\n"
    "  - {at: 20s, heal: [scheduler]}\n"
    "  - {at: 5s, duplicate: {subject: sys.job.result, count: 5}}\n"
    "  - {at: 5s, duration: 10s, loss: {subject: \"job.>\", p: 0.2, from: gateway}}\n"
    "  - {at: 5s, duration: 10s, latency: {subject: \"sys.>\", dist: fixed, value: 50ms}, to: w-1}\n"
    "  - {at: 5s, duration: 10s, reorder: {subject: sys.job.result, window: 20ms}}\n"
    "  - {at: 5s, duration: 10s, corrupt: {subject: sys.job.result, p: 0.01}}\n"
    "  - {at: 5s, skew: {actor: w-1, by: \"-2s\"}}\n"
    "  - {at: 50s, policy: ../reference/policies/tenants.yaml}\n"
    "  - {at: 12s, cancel: job-1}\n"
    "  - {at: 13s, partition: approver}\n"
    "invariants: [no-backward, liveness, restart]\n";

static void test_full_scenario_every_field(void **state)
{
    (void)state;
    sim_scenario *s = load(FULL);
    assert_string_equal(s->path, SCN_PATH);
    assert_string_equal(s->name, "worker-timeout-redispatch");
    assert_string_equal(s->description,
                        "a worker dies mid-job; the scheduler re-dispatches it elsewhere");
    assert_true(s->seed == UINT64_MAX);
    assert_int_equal(s->duration_ns, INT64_C(120000000000));
    assert_int_equal(s->drain_ns, INT64_C(300000000000));
    assert_true(s->max_events_per_instant == SIM_DEFAULT_EVENTS_PER_INSTANT);
    assert_string_equal(s->policy_path, "tests/" EX_POLICY);
    size_t plen;
    uint8_t *ptext = tu_read_file("reference/policies/example.yaml", &plen);
    assert_int_equal(s->policy_len, plen);
    assert_memory_equal(s->policy_text, ptext, plen);
    free(ptext);

    assert_int_equal(s->dispatch_timeout_ns, INT64_C(30000000000));
    assert_int_equal(s->running_timeout_ns, INT64_C(60000000000));
    assert_int_equal(s->no_worker_wait_ns, INT64_C(60000000000));
    assert_int_equal(s->max_retries, 3);
    assert_int_equal(s->max_retries_set, 1);
    assert_int_equal(s->breaker_threshold, 4);
    assert_int_equal(s->breaker_cool_down_ns, INT64_C(1500000000));
    assert_int_equal(s->latency.kind, SIM_DIST_LOGNORMAL);
    assert_true(s->latency.a == 2e6 && s->latency.b == 0.5);

    assert_int_equal(s->n_workers, 3);
    const sim_worker_spec *w = &s->workers[0];
    assert_string_equal(w->id, "w");
    assert_string_equal(w->pool, "job.tools");
    assert_int_equal(w->count, 3);
    assert_int_equal(w->max_parallel, 2);
    assert_int_equal(w->heartbeat_ns, INT64_C(5000000000));
    assert_int_equal(w->service.kind, SIM_DIST_EXPONENTIAL);
    assert_true(w->service.a == 2e9);
    assert_true(w->p_retryable == 0.1 && w->p_fatal == 0.2 && w->p_hang == 0.3);
    assert_true(w->p_crash == 0.05);
    assert_int_equal(w->restart_after_ns, INT64_C(10000000000));
    assert_true(w->p_heartbeat_miss == 0.25);
    assert_int_equal(w->heartbeat_delay.kind, SIM_DIST_UNIFORM);
    assert_true(w->heartbeat_delay.a == 1e9 && w->heartbeat_delay.b == 3e9);
    assert_true(sim_worker_heartbeat_faults(w));
    assert_int_equal(w->checkpoints, 3);
    assert_int_equal(w->n_labels, 2);
    assert_string_equal(w->labels[0].key, "zone");
    assert_string_equal(w->labels[0].value, "a");
    assert_string_equal(w->labels[1].key, "gpu");
    assert_string_equal(w->labels[1].value, "yes");
    assert_int_equal(w->n_capabilities, 2);
    assert_string_equal(w->capabilities[0], "git");
    assert_string_equal(w->capabilities[1], "sh");
    w = &s->workers[1];
    assert_string_equal(w->id, "solo");
    assert_int_equal(w->count, 1);
    assert_int_equal(w->service.kind, SIM_DIST_UNIFORM);
    assert_true(w->service.a == 1e6 && w->service.b == 5e6);
    assert_int_equal(s->workers[2].service.kind, SIM_DIST_FIXED);
    assert_true(s->workers[2].service.a == 250e6);

    assert_int_equal(s->approver.present, 1);
    assert_int_equal(s->approver.delay.kind, SIM_DIST_FIXED);
    assert_true(s->approver.delay.a == 30e9);
    assert_true(s->approver.p_approve == 0.9);
    assert_string_equal(s->approver.name, "alice");

    const sim_workload_spec *wl = &s->workload;
    assert_int_equal(wl->kind, SIM_LOAD_POISSON);
    assert_true(wl->rate == 2.5);
    assert_int_equal(wl->max_jobs, 200);
    assert_int_equal(wl->stop_at_ns, INT64_C(100000000000));
    assert_int_equal(wl->n_mix, 2);
    const sim_job_spec *j = &wl->mix[0];
    assert_string_equal(j->topic, "job.tools");
    assert_true(j->weight == 3.0);
    assert_string_equal(j->tenant, "tenant-b");
    assert_int_equal(j->priority, 3);
    assert_int_equal(j->n_meta_labels, 1);
    assert_string_equal(j->meta_labels[0].key, "mcp.action");
    assert_string_equal(j->meta_labels[0].value, "read");
    assert_int_equal(j->n_risk_tags, 1);
    assert_string_equal(j->risk_tags[0], "prod");
    assert_int_equal(j->n_labels, 1);
    assert_string_equal(j->labels[0].value, "a");
    assert_int_equal(j->workflow_steps, 2);
    assert_string_equal(j->compensation_topic, "job.undo");
    assert_string_equal(j->idempotency_key, "k-1");
    j = &wl->mix[1];
    assert_int_equal(j->priority, 2);
    assert_true(j->weight == 1.0);
    assert_string_equal(j->tenant, "tenant-a");
    assert_null(j->compensation_topic);
    assert_null(j->idempotency_key);
    /* The script, in time order. */
    assert_int_equal(wl->n_script, 3);
    assert_int_equal(wl->script[0].at, INT64_C(1000000000));
    assert_string_equal(wl->script[0].job_id, "job-1");
    assert_int_equal(wl->script[0].mix, 0);
    assert_int_equal(wl->script[1].at, INT64_C(2000000000));
    assert_string_equal(wl->script[1].job_id, "");
    assert_int_equal(wl->script[2].mix, 1);
    assert_string_equal(wl->script[2].job_id, "job-2");

    /* The timeline, sorted by time (stable): 5s x6, 10s, 12s, 13s, 20s, 30s, 40s, 50s, 60s. */
    assert_int_equal(s->n_timeline, 14);
    const sim_timeline_event *e = s->timeline;
    static const int64_t at_s[] = {5, 5, 5, 5, 5, 5, 10, 12, 13, 20, 30, 40, 50, 60};
    for (size_t i = 0; i < 14; i++)
        assert_int_equal(e[i].at, at_s[i] * INT64_C(1000000000));
    assert_int_equal(e[0].kind, SIM_EV_FAULT);
    assert_int_equal(e[0].fault.kind, SIM_FAULT_DUPLICATE);
    assert_string_equal(e[0].fault.subject, "sys.job.result");
    assert_int_equal(e[0].fault.count, 5);
    assert_int_equal(e[0].fault.start, INT64_C(5000000000));
    assert_true(e[0].fault.end == SIM_FOREVER);
    assert_int_equal(e[0].line, 39);
    assert_int_equal(e[1].fault.kind, SIM_FAULT_LOSS);
    assert_string_equal(e[1].fault.subject, "job.>");
    assert_true(e[1].fault.p == 0.2);
    assert_string_equal(e[1].fault.from, "gateway");
    assert_null(e[1].fault.to);
    assert_int_equal(e[1].fault.end, INT64_C(15000000000));
    assert_int_equal(e[2].fault.kind, SIM_FAULT_LATENCY);
    assert_int_equal(e[2].fault.latency.kind, SIM_DIST_FIXED);
    assert_true(e[2].fault.latency.a == 50e6);
    assert_string_equal(e[2].fault.to, "w-1");
    assert_int_equal(e[3].fault.kind, SIM_FAULT_REORDER);
    assert_int_equal(e[3].fault.window, INT64_C(20000000));
    assert_int_equal(e[4].fault.kind, SIM_FAULT_CORRUPT);
    assert_true(e[4].fault.p == 0.01);
    assert_int_equal(e[5].kind, SIM_EV_SKEW);
    assert_string_equal(e[5].a, "w-1");
    assert_int_equal(e[5].skew_ns, INT64_C(-2000000000));
    assert_int_equal(e[6].kind, SIM_EV_PARTITION);
    assert_string_equal(e[6].a, "scheduler");
    assert_string_equal(e[6].b, "pool:job.tools");
    assert_int_equal(e[7].kind, SIM_EV_CANCEL);
    assert_string_equal(e[7].a, "job-1");
    assert_int_equal(e[8].kind, SIM_EV_PARTITION);
    assert_string_equal(e[8].a, "approver");
    assert_string_equal(e[8].b, "");
    assert_int_equal(e[9].kind, SIM_EV_HEAL);
    assert_string_equal(e[9].a, "scheduler");
    assert_string_equal(e[9].b, "");
    assert_int_equal(e[10].kind, SIM_EV_CRASH);
    assert_string_equal(e[10].a, "w-2");
    assert_int_equal(e[11].kind, SIM_EV_RESTART);
    assert_string_equal(e[11].a, "scheduler");
    assert_int_equal(e[12].kind, SIM_EV_POLICY);
    assert_string_equal(e[12].policy_path, "tests/../reference/policies/tenants.yaml");
    assert_int_equal(e[13].kind, SIM_EV_RESTART);
    assert_string_equal(e[13].a, "w-2");
    assert_int_equal(e[13].line, 35);

    assert_int_equal(s->invariants, SIM_INV_NO_BACKWARD | SIM_INV_LIVENESS | SIM_INV_RESTART);
    sim_scenario_free(s);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    sim_scenario *s = load("name: n\nduration: 1\npolicy: " EX_POLICY "\n"
                           "workers: [{id: w, pool: job.tools}]\n"
                           "workload: {kind: closed, concurrency: 2, mix: [{topic: job.tools}]}\n");
    assert_int_equal(s->seed, 0);
    assert_string_equal(s->description, "");
    assert_int_equal(s->duration_ns, INT64_C(1000000000));
    assert_int_equal(s->drain_ns, INT64_C(600000000000));
    assert_int_equal(s->dispatch_timeout_ns, 0);
    assert_int_equal(s->running_timeout_ns, 0);
    assert_int_equal(s->no_worker_wait_ns, 0);
    assert_int_equal(s->max_retries_set, 0);
    assert_int_equal(s->breaker_threshold, 0);
    assert_int_equal(s->breaker_cool_down_ns, 0);
    assert_int_equal(s->latency.kind, SIM_DIST_FIXED);
    assert_true(s->latency.a == 1e6);
    const sim_worker_spec *w = &s->workers[0];
    assert_int_equal(w->count, 1);
    assert_int_equal(w->max_parallel, 1);
    assert_int_equal(w->heartbeat_ns, INT64_C(5000000000));
    assert_int_equal(w->service.kind, SIM_DIST_FIXED);
    assert_true(w->service.a == 1e9);
    assert_true(w->p_retryable == 0 && w->p_fatal == 0 && w->p_hang == 0 && w->p_crash == 0);
    assert_int_equal(w->restart_after_ns, 0);
    assert_true(w->p_heartbeat_miss == 0);
    assert_int_equal(w->heartbeat_delay.kind, SIM_DIST_FIXED);
    assert_true(w->heartbeat_delay.a == 0);
    assert_false(sim_worker_heartbeat_faults(w));
    assert_int_equal(w->checkpoints, 0);
    assert_int_equal(w->n_labels, 0);
    assert_int_equal(w->n_capabilities, 0);
    assert_int_equal(s->gateway.sign, 0);
    assert_int_equal(s->gateway.signature_lifetime_ns, SIM_SIGN_DEFAULT_LIFETIME_NS);
    assert_int_equal(s->approver.present, 0);
    assert_int_equal(s->approver.delay.kind, SIM_DIST_FIXED);
    assert_true(s->approver.delay.a == 30e9);
    assert_true(s->approver.p_approve == 1.0);
    assert_string_equal(s->approver.name, "approver-1");
    assert_int_equal(s->workload.kind, SIM_LOAD_CLOSED);
    assert_int_equal(s->workload.concurrency, 2);
    assert_int_equal(s->workload.think_ns, 0);
    assert_int_equal(s->workload.max_jobs, 0);
    assert_int_equal(s->workload.stop_at_ns, 0);
    const sim_job_spec *j = &s->workload.mix[0];
    assert_true(j->weight == 1.0);
    assert_string_equal(j->tenant, "tenant-a");
    assert_int_equal(j->priority, 1);
    assert_int_equal(j->workflow_steps, 0);
    assert_null(j->compensation_topic);
    assert_null(j->idempotency_key);
    assert_int_equal(s->n_timeline, 0);
    assert_int_equal(s->invariants, SIM_INV_ALL);
    sim_scenario_free(s);

    /* No workers, no workload: kind none; an approver written as {} is present. */
    s = load("name: n\nduration: 1h\npolicy: " EX_POLICY "\napprover: {}\n"
             "workload: {kind: burst, burst: {size: 5, every: 2s}, mix: [{topic: job.x}]}\n"
             "invariants: [all]\n");
    assert_int_equal(s->n_workers, 0);
    assert_int_equal(s->approver.present, 1);
    assert_int_equal(s->workload.kind, SIM_LOAD_BURST);
    assert_int_equal(s->workload.burst_size, 5);
    assert_int_equal(s->workload.burst_every_ns, INT64_C(2000000000));
    assert_int_equal(s->invariants, SIM_INV_ALL);
    sim_scenario_free(s);

    s = load("name: n\nduration: 1h\npolicy: " EX_POLICY "\ninvariants: []\n");
    assert_int_equal(s->workload.kind, SIM_LOAD_NONE);
    assert_int_equal(s->invariants, 0);
    sim_scenario_free(s);
}

/* ---- durations ---- */

/* ---- signing submits and replaying packets ---- */

static void test_gateway_signing_and_replay(void **state)
{
    (void)state;
    sim_scenario *s = load("name: n\nduration: 60s\npolicy: " EX_POLICY "\n"
                           "gateway: {sign: true, signature_lifetime: 90s}\n"
                           "workers: [{id: w, count: 2, pool: job.tools}]\n"
                           "faults:\n"
                           "  - {at: 20s, replay: {subject: sys.job.submit, count: 5, after: 4m}}\n"
                           "  - {at: 5s, duration: 10s, replay: {count: 1, after: 1ns, from: gateway},"
                           " to: scheduler}\n"
                           "  - {at: 6s, replay: {subject: \"worker.*.jobs\", count: 2, after: 1.5s,"
                           " to: w-2}}\n");
    assert_int_equal(s->gateway.sign, 1);
    assert_int_equal(s->gateway.signature_lifetime_ns, INT64_C(90000000000));
    assert_int_equal(s->n_timeline, 3);
    const sim_timeline_event *e = s->timeline; /* in time order */
    assert_int_equal(e[0].kind, SIM_EV_FAULT);
    assert_int_equal(e[0].fault.kind, SIM_FAULT_REPLAY);
    assert_int_equal(e[0].at, INT64_C(5000000000));
    assert_int_equal(e[0].fault.start, INT64_C(5000000000));
    assert_int_equal(e[0].fault.end, INT64_C(15000000000));
    assert_null(e[0].fault.subject);
    assert_string_equal(e[0].fault.from, "gateway");
    assert_string_equal(e[0].fault.to, "scheduler");
    assert_true(e[0].fault.count == 1);
    assert_int_equal(e[0].fault.after, 1);
    assert_int_equal(e[1].fault.kind, SIM_FAULT_REPLAY);
    assert_string_equal(e[1].fault.subject, "worker.*.jobs");
    assert_string_equal(e[1].fault.to, "w-2");
    assert_true(e[1].fault.count == 2);
    assert_int_equal(e[1].fault.after, INT64_C(1500000000));
    assert_int_equal(e[2].fault.kind, SIM_FAULT_REPLAY);
    assert_string_equal(e[2].fault.subject, "sys.job.submit");
    assert_null(e[2].fault.from);
    assert_null(e[2].fault.to);
    assert_true(e[2].fault.count == 5);
    assert_int_equal(e[2].fault.after, INT64_C(240000000000));
    assert_int_equal(e[2].fault.end, SIM_FOREVER);
    sim_scenario_free(s);

    /* conflict: needs signing; after is at most half the lifetime (45 s here) */
    s = load("name: n\nduration: 60s\npolicy: " EX_POLICY "\n"
             "gateway: {sign: true, signature_lifetime: 90s}\n"
             "faults:\n  - {at: 30s, conflict: {count: 4, after: 45s}}\n");
    assert_int_equal(s->n_timeline, 1);
    assert_int_equal(s->timeline[0].kind, SIM_EV_CONFLICT);
    assert_int_equal(s->timeline[0].at, INT64_C(30000000000));
    assert_true(s->timeline[0].count == 4);
    assert_int_equal(s->timeline[0].after_ns, INT64_C(45000000000));
    sim_scenario_free(s);

    /* sign: false is the default written out; the lifetime keeps its default */
    s = load("name: n\nduration: 1s\npolicy: " EX_POLICY "\ngateway: {sign: false}\n");
    assert_int_equal(s->gateway.sign, 0);
    assert_int_equal(s->gateway.signature_lifetime_ns, SIM_SIGN_DEFAULT_LIFETIME_NS);
    sim_scenario_free(s);
    /* the longest lifetime production admission accepts is allowed */
    s = load("name: n\nduration: 1s\npolicy: " EX_POLICY "\ngateway: {sign: true, "
             "signature_lifetime: 5m}\n");
    assert_int_equal(s->gateway.signature_lifetime_ns, SIM_SIGN_MAX_LIFETIME_NS);
    sim_scenario_free(s);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ns;
    } good[] = {
        {"0", 0},
        {"7", INT64_C(7000000000)},
        {"1.5", INT64_C(1500000000)},
        {"10ns", 10},
        {"100us", 100000},
        {"250ms", 250000000},
        {"30s", INT64_C(30000000000)},
        {"1.5s", INT64_C(1500000000)},
        {"0.000000001s", 1},
        {"5m", INT64_C(300000000000)},
        {"1.25m", INT64_C(75000000000)},
        {"1h", INT64_C(3600000000000)},
        {"0.5h", INT64_C(1800000000000)},
        {"2.5us", 2500},
        {"1.000ns", 1},
        {"-2s", INT64_C(-2000000000)},
        {"007ms", 7000000},
        {"9223372036854775807ns", INT64_MAX},
        {"9223372036.854775807s", INT64_MAX},
        {"2562047h", INT64_C(2562047) * INT64_C(3600000000000)},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ns = -42;
        if (sim_parse_duration(good[i].text, &ns) != CAP_OK || ns != good[i].ns)
            fail_msg("%s: got %lld", good[i].text, (long long)ns);
    }
    static const char *const bad[] = {
        "", "s", "ms", "1x", "1 s", " 1s", "1s ", "1.s", ".5s", "1.5.5s", "1e3s", "+1s", "--1s",
        "1sec", "1S", "0x10s", "1.5ns", "0.0000000001s", "9223372036854775808ns",
        "9223372036.854775808s", "2562048h", "99999999999999999999999s", "1,5s", "inf", "nan",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ns = -42;
        if (sim_parse_duration(bad[i], &ns) != CAP_EINVAL || ns != -42)
            fail_msg("\"%s\" was accepted as %lld", bad[i], (long long)ns);
    }
    assert_int_equal(sim_parse_duration(NULL, NULL), CAP_EINVAL);
}

/* ---- bad input ---- */

#define HEAD "name: t\nduration: 60s\npolicy: " EX_POLICY "\n" /* 3 lines */
#define W2 "workers:\n- {id: w, count: 2, pool: job.tools}\n"  /* lines 4, 5 */

static void test_every_bad_input_class(void **state)
{
    (void)state;
    static const struct {
        const char *name, *yaml;
        int err, line, column;
        const char *path, *needle;
    } cases[] = {
        {"bad YAML", HEAD "workers: [\n", CAP_EYAML, 5, 1, "", "flow node"},
        {"not a mapping", "- a\n", CAP_EINVAL, 1, 1, "", "must be a mapping"},
        {"empty", "", CAP_EINVAL, 0, 0, "", "empty"},
        {"unknown top key", HEAD "seeds: 3\n", CAP_EINVAL, 4, 1, "seeds",
         "unknown key \"seeds\" (known: name, description, seed, duration, drain, "
         "max_events_per_instant, policy, "
         "scheduler, bus, workers, approver, gateway, workload, faults, invariants)"},
        {"unknown worker key", HEAD "workers:\n- {id: w, pool: job.tools, speed: 3}\n", CAP_EINVAL,
         5, 28, "workers[0].speed", "unknown key \"speed\" (known: id, count, pool,"},
        {"unknown fault key", HEAD W2 "faults:\n- {at: 1s, crsh: w-1}\n", CAP_EINVAL, 7, 12,
         "faults[0].crsh", "known: at, duration, from, to, crash, restart"},
        {"unknown scheduler key", HEAD "scheduler: {timeout: 1s}\n", CAP_EINVAL, 4, 13,
         "scheduler.timeout", "unknown key"},
        {"missing policy", "name: t\nduration: 60s\n", CAP_EINVAL, 1, 1, "", "missing \"policy\""},
        {"missing duration", "name: t\npolicy: x\n", CAP_EINVAL, 1, 1, "", "missing \"duration\""},
        {"list where a sequence is wanted", HEAD "workers: {id: w}\n", CAP_EYAML, 4, 10, "workers",
         "expected a sequence"},
        {"list where a string goes", "name: [a]\nduration: 1s\npolicy: x\n", CAP_EYAML, 1, 7,
         "name", "expected a string"},
        {"text where a number goes", HEAD "workers:\n- {id: w, pool: job.tools, p_fatal: high}\n",
         CAP_EYAML, 5, 37, "workers[0].p_fatal", "expected a number"},
        {"too many checkpoints", HEAD "workers:\n- {id: w, pool: job.tools, checkpoints: 101}\n",
         CAP_EYAML, 5, 41, "workers[0].checkpoints", "outside [0, 100]"},
        {"heartbeat miss over 1", HEAD "workers:\n- {id: w, pool: job.tools, p_heartbeat_miss: 1.5}\n",
         CAP_EINVAL, 5, 46, "workers[0].p_heartbeat_miss", "probability"},
        {"bad heartbeat delay",
         HEAD "workers:\n- {id: w, pool: job.tools, heartbeat_delay: {dist: fixed, value: -1s}}\n",
         CAP_EINVAL, 5, 66, "workers[0].heartbeat_delay.value", "out of range"},
        {"text where an integer goes", HEAD "workers:\n- {id: w, pool: job.tools, count: 2.5}\n",
         CAP_EYAML, 5, 35, "workers[0].count", "integer"},
        {"bad duration", HEAD "drain: 5x\n", CAP_EINVAL, 4, 8, "drain",
         "bad duration \"5x\" (a number with a unit: ns, us, ms, s, m, h)"},
        {"duration overflow", HEAD "drain: 99999999999h\n", CAP_EINVAL, 4, 8, "drain",
         "bad duration"},
        {"zero duration", "name: t\nduration: 0s\npolicy: x\n", CAP_EINVAL, 2, 11, "duration",
         "out of range (must be > 0 and at most 30 days)"},
        {"duration over 30 days", "name: t\nduration: 721h\npolicy: x\n", CAP_EINVAL, 2, 11,
         "duration", "out of range"},
        {"negative drain", HEAD "drain: -1s\n", CAP_EINVAL, 4, 8, "drain", "out of range"},
        {"events per instant under the floor", HEAD "max_events_per_instant: 999\n", CAP_EYAML, 4,
         25, "max_events_per_instant", "outside [1000, 1000000000]"},
        {"events per instant not an integer", HEAD "max_events_per_instant: 1e6\n", CAP_EYAML, 4,
         25, "max_events_per_instant", "integer"},
        {"bad seed", HEAD "seed: -1\n", CAP_EINVAL, 4, 7, "seed", "not an integer"},
        {"empty name", "name: ''\nduration: 1s\npolicy: " EX_POLICY "\n", CAP_EINVAL, 1, 7, "name",
         "empty name"},
        {"unknown actor: crash", HEAD W2 "faults:\n- {at: 1s, crash: w-9}\n", CAP_EINVAL, 7, 19,
         "faults[0].crash", "unknown actor \"w-9\" (actors: gateway, scheduler, w-1, w-2)"},
        {"bare id of a counted worker", HEAD W2 "faults:\n- {at: 1s, crash: w}\n", CAP_EINVAL, 7,
         19, "faults[0].crash", "unknown actor \"w\""},
        {"unknown actor: restart", HEAD W2 "faults:\n- {at: 1s, restart: w-3}\n", CAP_EINVAL, 7,
         21, "faults[0].restart", "unknown actor \"w-3\""},
        {"unknown actor: partition",
         HEAD W2 "faults:\n- {at: 1s, partition: [scheduler, \"pool:job.nope\"]}\n", CAP_EINVAL,
         7, 35, "faults[0].partition[1]",
         "unknown actor \"pool:job.nope\" (actors: gateway, scheduler, w-1, w-2, pool:job.tools)"},
        {"unknown actor: heal", HEAD W2 "faults:\n- {at: 1s, heal: [gw]}\n", CAP_EINVAL, 7, 19,
         "faults[0].heal[0]", "unknown actor \"gw\""},
        {"unknown actor: skew", HEAD W2 "faults:\n- {at: 1s, skew: {actor: w-3, by: 1s}}\n",
         CAP_EINVAL, 7, 26, "faults[0].skew.actor", "unknown actor \"w-3\""},
        {"unknown actor: from",
         HEAD W2 "faults:\n- {at: 1s, loss: {subject: job.>, p: 0.5, from: nobody}}\n",
         CAP_EINVAL, 7, 49, "faults[0].loss.from", "unknown actor \"nobody\""},
        {"unknown actor: to", HEAD W2 "faults:\n- {at: 1s, to: nobody, corrupt: {p: 0.1}}\n",
         CAP_EINVAL, 7, 16, "faults[0].to", "unknown actor \"nobody\""},
        {"approver without an approver", HEAD W2 "faults:\n- {at: 1s, skew: {actor: approver, by: 1s}}\n",
         CAP_EINVAL, 7, 26, "faults[0].skew.actor", "unknown actor \"approver\""},
        {"a pool where a worker goes", HEAD W2 "faults:\n- {at: 1s, crash: \"pool:job.tools\"}\n",
         CAP_EINVAL, 7, 19, "faults[0].crash", "is a pool"},
        {"crash the gateway", HEAD W2 "faults:\n- {at: 1s, crash: gateway}\n", CAP_EINVAL, 7, 19,
         "faults[0].crash", "cannot crash or restart"},
        {"partition with itself", HEAD W2 "faults:\n- {at: 1s, partition: [w-1, w-1]}\n",
         CAP_EINVAL, 7, 29, "faults[0].partition[1]", "both sides"},
        {"two actions", HEAD W2 "faults:\n- {at: 1s, crash: w-1, restart: w-1}\n", CAP_EINVAL, 7,
         24, "faults[0].restart", "two actions (crash and restart)"},
        {"no action", HEAD W2 "faults:\n- {at: 1s}\n", CAP_EINVAL, 7, 3, "faults[0]",
         "no action"},
        {"fault without at", HEAD W2 "faults:\n- {cancel: j}\n", CAP_EINVAL, 7, 3, "faults[0]",
         "needs \"at\""},
        {"fault after the run", HEAD W2 "faults:\n- {at: 61s, cancel: job-1}\n", CAP_EINVAL, 7, 8,
         "faults[0].at", "out of range"},
        {"duration on a crash", HEAD W2 "faults:\n- {at: 1s, duration: 2s, crash: w-1}\n",
         CAP_EINVAL, 7, 12, "faults[0].duration", "applies to duplicate, loss"},
        {"from given twice",
         HEAD W2 "faults:\n- {at: 1s, from: w-1, loss: {p: 0.1, from: w-2}}\n", CAP_EINVAL, 7, 18,
         "faults[0].from", "also given in loss"},
        {"duplicate worker id", HEAD W2 "- {id: w-2, pool: job.x}\n", CAP_EINVAL, 6, 8,
         "workers[1].id", "worker name \"w-2\" is already taken by workers[0]"},
        {"duplicate expanded name", HEAD "workers:\n- {id: w-1, pool: job.x}\n- {id: w, count: 2, pool: job.x}\n",
         CAP_EINVAL, 6, 8, "workers[1].id", "worker name \"w-1\" is already taken by workers[0]"},
        {"reserved worker id", HEAD "workers:\n- {id: scheduler, pool: job.x}\n", CAP_EINVAL, 5, 8,
         "workers[0].id", "reserved"},
        {"bad worker id", HEAD "workers:\n- {id: 'a b', pool: job.x}\n", CAP_EINVAL, 5, 8,
         "workers[0].id", "only letters"},
        {"worker without pool", HEAD "workers:\n- {id: w}\n", CAP_EINVAL, 5, 3, "workers[0]",
         "missing \"pool\""},
        {"bad pool", HEAD "workers:\n- {id: w, pool: job.*}\n", CAP_EINVAL, 5, 17,
         "workers[0].pool", "bad pool subject"},
        {"too many workers", HEAD "workers:\n- {id: w, pool: job.x, count: 4000}\n- {id: v, pool: job.x, count: 97}\n",
         CAP_EINVAL, 6, 3, "workers[1]", "4097 workers in all (at most 4096)"},
        {"count over the cap", HEAD "workers:\n- {id: w, pool: job.x, count: 4097}\n", CAP_EYAML,
         5, 31, "workers[0].count", "4097 is outside [1, 4096]"},
        {"probability over 1", HEAD "workers:\n- {id: w, pool: job.tools, p_fatal: 1.5}\n",
         CAP_EINVAL, 5, 37, "workers[0].p_fatal", "probability 1.5 is outside [0, 1]"},
        {"negative probability", HEAD "approver: {p_approve: -0.1}\n", CAP_EINVAL, 4, 23,
         "approver.p_approve", "outside [0, 1]"},
        {"probabilities sum over 1",
         HEAD "workers:\n- {id: w, pool: job.tools, p_fatal: 0.6, p_hang: 0.6}\n", CAP_EINVAL, 5,
         3, "workers[0]", "p_retryable + p_fatal + p_hang is 1.2 (at most 1)"},
        {"loss p over 1", HEAD "faults:\n- {at: 1s, loss: {p: 2}}\n", CAP_EINVAL, 5, 22,
         "faults[0].loss.p", "outside [0, 1]"},
        {"bad subject pattern", HEAD "faults:\n- {at: 1s, loss: {subject: \"job..x\", p: 0.1}}\n",
         CAP_EINVAL, 5, 28, "faults[0].loss.subject", "bad subject pattern \"job..x\""},
        {"bad subject: > not last", HEAD "faults:\n- {at: 1s, corrupt: {subject: \">.x\", p: 0.1}}\n",
         CAP_EINVAL, 5, 31, "faults[0].corrupt.subject", "bad subject pattern"},
        {"duplicate without count or p", HEAD "faults:\n- {at: 1s, duplicate: {subject: a}}\n",
         CAP_EINVAL, 5, 23, "faults[0].duplicate", "count > 0 or p > 0"},
        {"reorder without window", HEAD "faults:\n- {at: 1s, reorder: {}}\n", CAP_EINVAL, 5, 21,
         "faults[0].reorder", "needs \"window\""},
        {"conflict without signing", HEAD "faults:\n- {at: 1s, conflict: {count: 1, after: 1s}}\n",
         CAP_EINVAL, 5, 22, "faults[0].conflict", "needs gateway: {sign: true}"},
        {"conflict after over half the lifetime",
         HEAD "gateway: {sign: true}\nfaults:\n- {at: 1s, conflict: {count: 1, after: 61s}}\n",
         CAP_EINVAL, 6, 40, "faults[0].conflict.after",
         "must be > 0 and at most half of gateway.signature_lifetime"},
        {"conflict count 0",
         HEAD "gateway: {sign: true}\nfaults:\n- {at: 1s, conflict: {count: 0, after: 1s}}\n",
         CAP_EYAML, 6, 30, "faults[0].conflict.count", ""},
        {"conflict without after",
         HEAD "gateway: {sign: true}\nfaults:\n- {at: 1s, conflict: {count: 2}}\n", CAP_EINVAL, 6,
         22, "faults[0].conflict", "conflict needs \"after\""},
        {"conflict unknown key",
         HEAD "gateway: {sign: true}\nfaults:\n- {at: 1s, conflict: {count: 2, after: 1s, p: 1}}\n",
         CAP_EINVAL, 6, 44, "faults[0].conflict.p", "unknown key \"p\" (known: count, after)"},
        {"replay without count", HEAD "faults:\n- {at: 1s, replay: {after: 30s}}\n", CAP_EINVAL, 5,
         20, "faults[0].replay", "replay needs \"count\""},
        {"replay without after", HEAD "faults:\n- {at: 1s, replay: {count: 3}}\n", CAP_EINVAL, 5,
         20, "faults[0].replay", "replay needs \"after\""},
        {"replay count 0", HEAD "faults:\n- {at: 1s, replay: {count: 0, after: 30s}}\n",
         CAP_EYAML, 5, 28, "faults[0].replay.count", ""},
        {"replay count not an integer", HEAD "faults:\n- {at: 1s, replay: {count: many, after: 1s}}\n",
         CAP_EYAML, 5, 28, "faults[0].replay.count", "integer"},
        {"replay after 0", HEAD "faults:\n- {at: 1s, replay: {count: 1, after: 0s}}\n", CAP_EINVAL,
         5, 38, "faults[0].replay.after", "out of range (must be > 0 and at most 1e15ns)"},
        {"replay after too long", HEAD "faults:\n- {at: 1s, replay: {count: 1, after: 300h}}\n",
         CAP_EINVAL, 5, 38, "faults[0].replay.after", "out of range"},
        {"replay after a bad duration", HEAD "faults:\n- {at: 1s, replay: {count: 1, after: soon}}\n",
         CAP_EINVAL, 5, 38, "faults[0].replay.after", "bad duration \"soon\""},
        {"replay with p", HEAD "faults:\n- {at: 1s, replay: {count: 1, after: 1s, p: 0.5}}\n",
         CAP_EINVAL, 5, 42, "faults[0].replay.p",
         "unknown key \"p\" (known: subject, from, to, count, after)"},
        {"replay bad subject", HEAD "faults:\n- {at: 1s, replay: {subject: \"a..b\", count: 1, after: 1s}}\n",
         CAP_EINVAL, 5, 30, "faults[0].replay.subject", "bad subject pattern"},
        {"replay unknown actor", HEAD W2 "faults:\n- {at: 1s, replay: {count: 1, after: 1s, to: w-7}}\n",
         CAP_EINVAL, 7, 46, "faults[0].replay.to", "unknown actor \"w-7\""},
        {"gateway not a mapping", HEAD "gateway: [sign]\n", CAP_EYAML, 4, 10, "gateway",
         "expected a mapping"},
        {"gateway unknown key", HEAD "gateway: {sign: true, key: k1}\n", CAP_EINVAL, 4, 23,
         "gateway.key", "unknown key \"key\" (known: sign, signature_lifetime)"},
        {"gateway sign not a boolean", HEAD "gateway: {sign: sometimes}\n", CAP_EYAML, 4, 17,
         "gateway.sign", ""},
        {"signature_lifetime 0", HEAD "gateway: {sign: true, signature_lifetime: 0s}\n", CAP_EINVAL,
         4, 43, "gateway.signature_lifetime", "out of range (must be > 0 and at most 5m"},
        {"signature_lifetime over 5m", HEAD "gateway: {sign: true, signature_lifetime: 301s}\n",
         CAP_EINVAL, 4, 43, "gateway.signature_lifetime", "out of range"},
        {"signature_lifetime bad duration", HEAD "gateway: {sign: true, signature_lifetime: long}\n",
         CAP_EINVAL, 4, 43, "gateway.signature_lifetime", "bad duration \"long\""},
        {"signature_lifetime without signing", HEAD "gateway: {signature_lifetime: 1m}\n",
         CAP_EINVAL, 4, 11, "gateway.signature_lifetime", "applies only with sign: true"},
        {"skew by a bad duration", HEAD "faults:\n- {at: 1s, skew: {actor: scheduler, by: -x}}\n",
         CAP_EINVAL, 5, 41, "faults[0].skew.by", "bad duration \"-x\""},
        {"unknown distribution", HEAD "bus: {latency: {dist: pareto}}\n", CAP_EINVAL, 4, 23,
         "bus.latency.dist", "unknown distribution \"pareto\""},
        {"distribution key of another kind", HEAD "bus: {latency: {dist: fixed, mean: 1ms}}\n",
         CAP_EINVAL, 4, 30, "bus.latency.mean", "unknown key \"mean\" (known: dist, value)"},
        {"uniform min over max", HEAD "bus: {latency: {dist: uniform, min: 5ms, max: 1ms}}\n",
         CAP_EINVAL, 4, 47, "bus.latency.max", "max is less than min"},
        {"lognormal without median", HEAD "bus: {latency: {dist: lognormal, sigma: 1}}\n",
         CAP_EINVAL, 4, 16, "bus.latency", "needs \"median\""},
        {"negative latency", HEAD "bus: {latency: -1ms}\n", CAP_EINVAL, 4, 16, "bus.latency",
         "out of range"},
        {"poisson without rate", HEAD "workload: {kind: poisson, mix: [{topic: job.x}]}\n",
         CAP_EINVAL, 4, 11, "workload", "kind poisson needs \"rate\""},
        {"rate 0", HEAD "workload: {kind: poisson, rate: 0, mix: [{topic: job.x}]}\n", CAP_EINVAL,
         4, 33, "workload.rate", "out of range"},
        {"closed with concurrency 0",
         HEAD "workload: {kind: closed, concurrency: 0, mix: [{topic: job.x}]}\n", CAP_EYAML, 4,
         39, "workload.concurrency", ""},
        {"rate under kind closed",
         HEAD "workload: {kind: closed, concurrency: 1, rate: 2, mix: [{topic: job.x}]}\n",
         CAP_EINVAL, 4, 42, "workload.rate", "applies to kind poisson only"},
        {"unknown workload kind", HEAD "workload: {kind: open}\n", CAP_EINVAL, 4, 18,
         "workload.kind", "unknown kind \"open\""},
        {"mix weight 0", HEAD "workload: {kind: none, mix: [{topic: job.x, weight: 0}]}\n",
         CAP_EINVAL, 4, 53, "workload.mix[0].weight", "out of range"},
        {"mix topic with a wildcard", HEAD "workload: {kind: none, mix: [{topic: job.*}]}\n",
         CAP_EINVAL, 4, 38, "workload.mix[0].topic", "bad topic"},
        {"bad priority", HEAD "workload: {kind: none, mix: [{topic: job.tools, priority: urgent}]}\n",
         CAP_EINVAL, 4, 59, "workload.mix[0].priority", "unknown priority \"urgent\""},
        {"compensation without steps",
         HEAD "workload: {kind: none, mix: [{topic: job.x, compensation_topic: job.u}]}\n",
         CAP_EINVAL, 4, 65, "workload.mix[0].compensation_topic", "needs workflow_steps > 0"},
        {"script mix index out of range",
         HEAD "workload:\n  kind: none\n  mix: [{topic: job.tools}]\n  script: [{at: 1s, mix: 1}]\n",
         CAP_EINVAL, 7, 26, "workload.script[0].mix", "mix entry 1 does not exist (the mix has 1)"},
        {"script without a mix", HEAD "workload:\n  script: [{at: 1s}]\n", CAP_EINVAL, 5, 12,
         "workload.script[0].mix", "mix entry 0 does not exist (the mix has 0)"},
        {"empty mix (absent)", HEAD "workload: {kind: poisson, rate: 1}\n", CAP_EINVAL, 4, 11,
         "workload.mix", "empty mix"},
        {"empty mix (written)", HEAD "workload: {kind: poisson, rate: 1, mix: []}\n", CAP_EINVAL, 4,
         41, "workload.mix", "empty mix"},
        {"stop_at after the run", HEAD "workload: {stop_at: 2m}\n", CAP_EINVAL, 4, 21,
         "workload.stop_at", "out of range"},
        {"unknown invariant", HEAD "invariants: [liveness, safety]\n", CAP_EINVAL, 4, 24,
         "invariants[1]", "unknown invariant \"safety\""},
        {"labels not a map", HEAD "workers:\n- {id: w, pool: job.x, labels: [a]}\n", CAP_EYAML, 5,
         32, "workers[0].labels", "expected a mapping"},
        {"missing policy file", "name: t\nduration: 1s\npolicy: no/such.yaml\n", CAP_EIO, 3, 9,
         "policy", "cannot read policy file tests/no/such.yaml: No such file or directory"},
        {"missing policy file in a fault", HEAD "faults:\n- {at: 1s, policy: nope.yaml}\n",
         CAP_EIO, 5, 20, "faults[0].policy", "cannot read policy file tests/nope.yaml"},
        {"empty policy path", "name: t\nduration: 1s\npolicy: ''\n", CAP_EINVAL, 3, 9, "policy",
         "empty policy path"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_scenario *s = (sim_scenario *)1;
        cap_yaml_diag d;
        int rc = sim_scenario_parse(SCN_PATH, cases[i].yaml, strlen(cases[i].yaml), &s, &d);
        if (rc != cases[i].err || s != NULL || d.line != cases[i].line ||
            d.column != cases[i].column || strcmp(d.path, cases[i].path) != 0 ||
            !strstr(d.reason, cases[i].needle)) {
            print_error("%s: got rc %d at %d:%d path \"%s\": %s\n", cases[i].name, rc, d.line,
                        d.column, d.path, d.reason);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* ---- policy files: resolved against the scenario, errors point into them ---- */

typedef struct {
    char dir[64];
    char scn[96], pol[96], sub[96], subpol[128];
} tmpfiles;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void test_bad_policy_file_points_into_it(void **state)
{
    (void)state;
    tmpfiles t;
    snprintf(t.dir, sizeof t.dir, "/tmp/capsim-scn-XXXXXX");
    assert_non_null(mkdtemp(t.dir));
    snprintf(t.scn, sizeof t.scn, "%s/scn.yaml", t.dir);
    snprintf(t.pol, sizeof t.pol, "%s/bad.yaml", t.dir);
    write_file(t.pol, "version: v1\nrules:\n- id: a\n  decision: alow\n");
    write_file(t.scn, "name: t\nduration: 1s\npolicy: bad.yaml\n");
    sim_scenario *s = (sim_scenario *)1;
    cap_yaml_diag d;
    assert_int_equal(sim_scenario_load(t.scn, &s, &d), CAP_EPOLICY);
    assert_null(s);
    /* Where the scenario names the policy ... */
    assert_int_equal(d.line, 3);
    assert_int_equal(d.column, 9);
    assert_string_equal(d.path, "policy");
    /* ... and, in the reason, the policy file's own FILE:LINE:COLUMN: PATH. */
    char want[256];
    snprintf(want, sizeof want, "%s:4:13: rules[0].decision: ", t.pol);
    if (strncmp(d.reason, want, strlen(want)) != 0)
        fail_msg("reason: %s", d.reason);
    char line[600];
    cap_yaml_diag_format(&d, t.scn, line, sizeof line);
    snprintf(want, sizeof want, "%s:3:9: policy: %s:4:13: rules[0].decision: ", t.scn, t.pol);
    if (strncmp(line, want, strlen(want)) != 0)
        fail_msg("formatted: %s", line);

    /* A policy YAML syntax error is a bad policy too, and a policy event's. */
    write_file(t.pol, "rules: [\n");
    write_file(t.scn, "name: t\nduration: 1s\npolicy: bad.yaml\n");
    assert_int_equal(sim_scenario_load(t.scn, &s, &d), CAP_EPOLICY);
    snprintf(want, sizeof want, "%s:2:1: ", t.pol);
    if (strncmp(d.reason, want, strlen(want)) != 0)
        fail_msg("reason: %s", d.reason);

    /* The good policy, relative to the scenario, in the top key and in an event. */
    write_file(t.pol, "version: v1\ndefault_decision: allow\n");
    snprintf(t.sub, sizeof t.sub, "%s/sub", t.dir);
    assert_int_equal(mkdir(t.sub, 0700), 0);
    snprintf(t.subpol, sizeof t.subpol, "%s/sub/next.yaml", t.dir);
    write_file(t.subpol, "version: v1\nrules:\n- {id: r, decision: deny}\n  bad: indent\n");
    write_file(t.scn, "name: t\nduration: 1m\npolicy: bad.yaml\n"
                      "faults:\n- {at: 30s, policy: sub/next.yaml}\n");
    assert_int_equal(sim_scenario_load(t.scn, &s, &d), CAP_EPOLICY);
    assert_int_equal(d.line, 5);
    assert_int_equal(d.column, 21);
    assert_string_equal(d.path, "faults[0].policy");
    snprintf(want, sizeof want, "%s:", t.subpol);
    if (strncmp(d.reason, want, strlen(want)) != 0)
        fail_msg("reason: %s", d.reason);

    write_file(t.subpol, "version: v9\n");
    assert_int_equal(sim_scenario_load(t.scn, &s, &d), CAP_OK);
    assert_string_equal(s->policy_path, t.pol);
    assert_string_equal(s->policy_text, "version: v1\ndefault_decision: allow\n");
    assert_int_equal(s->policy_len, strlen(s->policy_text));
    assert_int_equal(s->n_timeline, 1);
    assert_string_equal(s->timeline[0].policy_path, t.subpol);
    assert_string_equal(s->path, t.scn);
    sim_scenario_free(s);

    /* An absolute policy path is taken as it is. */
    char text[300];
    snprintf(text, sizeof text, "name: t\nduration: 1m\npolicy: %s\n", t.subpol);
    s = load(text);
    assert_string_equal(s->policy_path, t.subpol);
    sim_scenario_free(s);

    /* Unreadable scenario file. */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none.yaml", t.dir);
    s = (sim_scenario *)1;
    assert_int_equal(sim_scenario_load(missing, &s, &d), CAP_EIO);
    assert_null(s);
    assert_non_null(strstr(d.reason, "No such file"));
    /* A directory is not a policy file. */
    write_file(t.scn, "name: t\nduration: 1m\npolicy: sub\n");
    assert_int_equal(sim_scenario_load(t.scn, &s, &d), CAP_EIO);

    unlink(t.subpol);
    rmdir(t.sub);
    unlink(t.pol);
    unlink(t.scn);
    rmdir(t.dir);
}

/* ---- the timeline: sorted by time, stable ---- */

static void test_timeline_sorted_stably(void **state)
{
    (void)state;
    /* 40 events at times 3,1,2,0,3,1,... with a cancel id saying the order written. */
    char yaml[8192];
    size_t n = (size_t)snprintf(yaml, sizeof yaml, HEAD "faults:\n");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(yaml + n, sizeof yaml - n, "- {at: %ds, cancel: j%02d}\n",
                              (i * 7 + 3) % 4, i);
    sim_scenario *s = load(yaml);
    assert_int_equal(s->n_timeline, 40);
    for (size_t i = 1; i < 40; i++) {
        const sim_timeline_event *a = &s->timeline[i - 1], *b = &s->timeline[i];
        assert_true(a->at <= b->at);
        if (a->at == b->at) {
            assert_true(strcmp(a->a, b->a) < 0); /* written order kept */
            assert_true(a->line < b->line);
        }
    }
    /* The line says where each was written: line 5 holds j00. */
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(s->timeline[i].line, 5 + atoi(s->timeline[i].a + 1));
    sim_scenario_free(s);

    /* The same for the script. */
    n = (size_t)snprintf(yaml, sizeof yaml, HEAD "workload:\n  mix: [{topic: job.x}]\n  script:\n");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(yaml + n, sizeof yaml - n, "  - {at: %dms, job_id: j%02d}\n",
                              (i * 5) % 3, i);
    s = load(yaml);
    assert_int_equal(s->workload.n_script, 30);
    for (size_t i = 1; i < 30; i++) {
        const sim_script_entry *a = &s->workload.script[i - 1], *b = &s->workload.script[i];
        assert_true(a->at < b->at || (a->at == b->at && strcmp(a->job_id, b->job_id) < 0));
    }
    sim_scenario_free(s);
}

/* ---- actors and invariant names ---- */

static void test_actors(void **state)
{
    (void)state;
    sim_scenario *s = load(HEAD "workers:\n- {id: w, count: 12, pool: job.tools}\n"
                                "- {id: solo, pool: job.batch}\napprover: {}\n");
    static const char *const yes[] = {"gateway", "scheduler", "approver", "w-1", "w-9", "w-10",
                                      "w-12", "solo", "pool:job.tools", "pool:job.batch"};
    static const char *const no[] = {"w", "w-0", "w-13", "w-01", "w-1x", "w-", "solo-1",
                                     "pool:job", "pool:", "", "Gateway", "w-99999999999999999999"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!sim_scenario_has_actor(s, yes[i]))
            fail_msg("%s is an actor", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (sim_scenario_has_actor(s, no[i]))
            fail_msg("%s is not an actor", no[i]);
    assert_false(sim_scenario_has_actor(NULL, "gateway"));
    assert_false(sim_scenario_has_actor(s, NULL));
    sim_scenario_free(s);
    s = load(HEAD);
    assert_false(sim_scenario_has_actor(s, "approver"));
    sim_scenario_free(s);

    /* A long actor list is cut with "...". */
    cap_yaml_diag d;
    const char *y = HEAD "workers: [{id: worker-with-a-long-name, count: 40, pool: job.x}]\n"
                         "faults: [{at: 1s, crash: nobody}]\n";
    assert_int_equal(sim_scenario_parse(SCN_PATH, y, strlen(y), &s, &d), CAP_EINVAL);
    assert_non_null(strstr(d.reason, "(actors: gateway, scheduler, worker-with-a-long-name-1, "));
    assert_non_null(strstr(d.reason, ", ...)"));

    assert_string_equal(sim_invariant_name(SIM_INV_NO_BACKWARD), "no-backward");
    assert_string_equal(sim_invariant_name(SIM_INV_ONE_TERMINAL), "one-terminal");
    assert_string_equal(sim_invariant_name(SIM_INV_DISPATCH_ALLOWED), "dispatch-allowed");
    assert_string_equal(sim_invariant_name(SIM_INV_APPROVAL_BOUND), "approval-bound");
    assert_string_equal(sim_invariant_name(SIM_INV_HANDLER_ONCE), "handler-once");
    assert_string_equal(sim_invariant_name(SIM_INV_LIVENESS), "liveness");
    assert_string_equal(sim_invariant_name(SIM_INV_COMPENSATION), "compensation");
    assert_string_equal(sim_invariant_name(SIM_INV_RESTART), "restart");
    assert_string_equal(sim_invariant_name(SIM_INV_CONFLICT_REFUSED), "conflict-refused");
    assert_string_equal(sim_invariant_name(SIM_INV_CHECKPOINT), "checkpoint");
    assert_null(sim_invariant_name(0));
    assert_null(sim_invariant_name(SIM_INV_ALL));
    assert_null(sim_invariant_name(1u << 10));
}

/* The docs' full example loads. */
/* The cap on workers is 4096 in all: the benchmark's 1000 workers load,
 * and so do 4096 (three specs). */
static void test_large_worker_counts_load(void **state)
{
    (void)state;
    sim_scenario *s = NULL;
    cap_yaml_diag d;
    assert_int_equal(sim_scenario_load("bench/sim-large.yaml", &s, &d), CAP_OK);
    assert_int_equal(s->n_workers, 1);
    assert_int_equal(s->workers[0].count, 1000);
    assert_true(s->workload.rate == 500.0);
    sim_scenario_free(s);
    static const char text[] =
        "name: big\nduration: 1s\npolicy: ../reference/policies/example.yaml\nworkers:\n"
        "- {id: a, pool: job.x, count: 4000}\n- {id: b, pool: job.x, count: 95}\n"
        "- {id: c, pool: job.x}\n";
    s = NULL;
    assert_int_equal(sim_scenario_parse("bench/big.yaml", text, sizeof text - 1, &s, &d), CAP_OK);
    assert_int_equal(s->workers[0].count + s->workers[1].count + s->workers[2].count, 4096);
    sim_scenario_free(s);
}

static void test_docs_example_loads(void **state)
{
    (void)state;
    size_t len;
    char *md = (char *)tu_read_file("docs/scenarios.md", &len);
    const char *start = strstr(md, "```yaml\n");
    assert_non_null(start);
    start += 8;
    const char *end = strstr(start, "```");
    assert_non_null(end);
    sim_scenario *s = NULL;
    cap_yaml_diag d;
    /* As if the example were docs/example.yaml: its policy path is relative to docs/. */
    int rc = sim_scenario_parse("docs/example.yaml", start, (size_t)(end - start), &s, &d);
    if (rc) {
        char buf[600];
        fail_msg("%s", cap_yaml_diag_format(&d, "docs example", buf, sizeof buf));
    }
    assert_true(s->n_timeline > 0);
    sim_scenario_free(s);
    free(md);
}

/* Overrides (capsim sim --set): applied to the file's YAML before it is
 * validated, so a value set is read exactly as the file's own; relative
 * policy paths still resolve against the file; an override's error names
 * its origin; the scenario keeps the overrides for its reports. */
static void test_overrides(void **state)
{
    (void)state;
    const char *sets[] = {"workload.rate=40", "workers[0].count=7", "scheduler.max_retries=9",
                          "bus.latency={dist: fixed, value: 3ms}", "workers[1].labels.zone=b",
                          "policy=" EX_POLICY};
    sim_scenario *s = NULL;
    cap_yaml_diag d;
    int rc = sim_scenario_parse_with(SCN_PATH, FULL, strlen(FULL), sets, 6, &s, &d);
    if (rc)
        fail_msg("did not load (%d): %s: %s", rc, d.path, d.reason);
    assert_true(s->workload.rate == 40);
    assert_int_equal(s->workers[0].count, 7);
    assert_int_equal(s->max_retries, 9);
    assert_int_equal(s->latency.kind, SIM_DIST_FIXED);
    assert_true(s->latency.a == 3e6);
    assert_string_equal(s->policy_path, "tests/" EX_POLICY);
    int zone = 0;
    for (size_t i = 0; i < s->workers[1].n_labels; i++)
        zone |= strcmp(s->workers[1].labels[i].key, "zone") == 0 &&
                strcmp(s->workers[1].labels[i].value, "b") == 0;
    assert_true(zone);
    assert_int_equal(s->n_sets, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(s->sets[i], sets[i]);
    /* Everything not overridden is the file's. */
    sim_scenario *plain = load(FULL);
    assert_int_equal(s->workers[0].max_parallel, plain->workers[0].max_parallel);
    assert_int_equal(s->n_timeline, plain->n_timeline);
    assert_int_equal(s->duration_ns, plain->duration_ns);
    assert_int_equal(plain->n_sets, 0);
    sim_scenario_free(plain);
    sim_scenario_free(s);

    /* A bad value set is reported as the file's would be, with the
     * override's number; a bad path, with its number too. */
    const char *bad[] = {"seed=1", "workload.rate=-1"};
    s = (sim_scenario *)1;
    assert_int_equal(sim_scenario_parse_with(SCN_PATH, FULL, strlen(FULL), bad, 2, &s, &d), CAP_EINVAL);
    assert_null(s);
    assert_int_equal(d.origin, 2);
    assert_string_equal(d.path, "workload.rate");
    const char *bad_path[] = {"workers[5].count=1"};
    assert_int_equal(sim_scenario_parse_with(SCN_PATH, FULL, strlen(FULL), bad_path, 1, &s, &d),
                     CAP_EYAML);
    assert_int_equal(d.origin, 1);
    assert_string_equal(d.path, "workers");
    /* An override's unknown key, and an actor it renames away, are caught
     * as the file's would be. */
    const char *unknown[] = {"workload.rte=1"};
    assert_int_equal(sim_scenario_parse_with(SCN_PATH, FULL, strlen(FULL), unknown, 1, &s, &d),
                     CAP_EINVAL);
    assert_int_equal(d.origin, 1);
    assert_non_null(strstr(d.reason, "unknown key \"rte\""));
    const char *renamed[] = {"workers[0].count=1"}; /* w-1 and w-2 become plain w */
    assert_int_equal(sim_scenario_parse_with(SCN_PATH, FULL, strlen(FULL), renamed, 1, &s, &d),
                     CAP_EINVAL);
    assert_int_equal(d.origin, 0); /* the file's reference to w-2 is what breaks */
    assert_non_null(strstr(d.reason, "w-2"));
    const char *too_many[SIM_SCENARIO_MAX_SETS + 1];
    for (size_t i = 0; i <= SIM_SCENARIO_MAX_SETS; i++)
        too_many[i] = "seed=1";
    assert_int_equal(sim_scenario_parse_with(SCN_PATH, FULL, strlen(FULL), too_many,
                                             SIM_SCENARIO_MAX_SETS + 1, &s, &d),
                     CAP_EINVAL);
    assert_int_equal(sim_scenario_parse_with(SCN_PATH, FULL, strlen(FULL), too_many,
                                             SIM_SCENARIO_MAX_SETS, &s, &d),
                     CAP_OK);
    assert_int_equal(s->n_sets, SIM_SCENARIO_MAX_SETS);
    sim_scenario_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_scenario_every_field),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_gateway_signing_and_replay),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_every_bad_input_class),
        cmocka_unit_test(test_bad_policy_file_points_into_it),
        cmocka_unit_test(test_timeline_sorted_stably),
        cmocka_unit_test(test_actors),
        cmocka_unit_test(test_docs_example_loads),
        cmocka_unit_test(test_large_worker_counts_load),
        cmocka_unit_test(test_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
