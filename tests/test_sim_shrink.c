/* Writing scenarios back (sim_scenario_write) and shrinking a failing run
 * to a minimal scenario (sim_shrink): every key survives a write and a
 * read, the written text is stable, policy paths are absolute, a copy runs
 * to the same trace hash; an injected bug's violation shrinks to a smaller
 * scenario that still breaks the same invariant when loaded from the file
 * written from it, and holds without the bug. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "testutil.h"

#include <unistd.h>

#include "cap_error.h"
#include "ref_bugs.h"
#include "sim_scenario.h"
#include "sim_scenario_write.h"
#include "sim_shrink.h"
#include "sim_world.h"

#define SCN_PATH "tests/scn.yaml" /* policy paths resolve against tests/ */

static sim_scenario *parse(const char *path, const char *yaml, size_t len)
{
    sim_scenario *s = NULL;
    cap_yaml_diag d;
    int rc = sim_scenario_parse(path, yaml, len, &s, &d);
    if (rc) {
        char buf[700];
        fail_msg("scenario did not load (%d): %s\n%s", rc,
                 cap_yaml_diag_format(&d, path, buf, sizeof buf), yaml);
    }
    return s;
}

/* Every kind of key, with values that are not the defaults. */
static const char FULL[] =
    "name: \"round \\\"trip\\\"\"\n"
    "description: every key\n"
    "seed: 18446744073709551615\n"
    "duration: 90s\n"
    "drain: 1500ms\n"
    "max_events_per_instant: 5000\n"
    "policy: ../reference/policies/example.yaml\n"
    "scheduler: {dispatch_timeout: 30s, running_timeout: 1m, no_worker_wait: 250us, max_retries: 0,\n"
    "            breaker_threshold: 4, breaker_cool_down: 1.5s, worker_grace: 12s}\n"
    "bus: {latency: {dist: lognormal, median: 2ms, sigma: 0.3}}\n"
    "workers:\n"
    "  - {id: w, count: 3, pool: job.tools, max_parallel: 2, heartbeat: 7s,\n"
    "     service: {dist: exponential, mean: 2s}, p_retryable: 0.1, p_fatal: 0.2, p_hang: 0.3,\n"
    "     p_crash: 0.05, restart_after: 10s, labels: {zone: a, 'odd key': \"x\\ty\"},\n"
    "     capabilities: [git, sh]}\n"
    "  - {id: solo, pool: job.batch, service: {dist: uniform, min: 1ms, max: 5ms}}\n"
    "approver: {delay: {dist: fixed, value: 30s}, p_approve: 0.9, name: alice}\n"
    "gateway: {sign: true, signature_lifetime: 90s}\n"
    "workload:\n"
    "  kind: closed\n"
    "  concurrency: 4\n"
    "  think: 3ns\n"
    "  max_jobs: 200\n"
    "  stop_at: 80s\n"
    "  mix:\n"
    "    - {topic: job.tools, weight: 3.25, tenant: tenant-b, priority: critical,\n"
    "       meta_labels: {mcp.action: read}, risk_tags: [prod], labels: {zone: a},\n"
    "       workflow_steps: 2, compensation_topic: job.undo, idempotency_key: k-1}\n"
    "    - {topic: job.batch.x, priority: batch}\n"
    "  script:\n"
    "    - {at: 3s, mix: 1, job_id: job-2}\n"
    "    - {at: 1s}\n"
    "faults:\n"
    "  - {at: 30s, crash: w-2}\n"
    "  - {at: 60s, restart: w-2}\n"
    "  - {at: 10s, partition: [scheduler, \"pool:job.tools\"]}\n"
    "  - {at: 11s, partition: solo}\n"
    "  - {at: 20s, heal: [scheduler]}\n"
    "  - {at: 5s, duplicate: {subject: sys.job.result, count: 5}}\n"
    "  - {at: 5s, duration: 10s, loss: {subject: \"job.>\", p: 0.2}}\n"
    "  - {at: 5s, duration: 10s, latency: {subject: \"sys.>\", dist: uniform, min: 1ms, max: 2ms}}\n"
    "  - {at: 5s, duration: 10s, reorder: {subject: sys.job.result, window: 20ms}, from: w-1}\n"
    "  - {at: 5s, corrupt: {p: 0.01, to: scheduler}}\n"
    "  - {at: 6s, duration: 3s, replay: {subject: sys.job.submit, count: 7, after: 4m}, to: scheduler}\n"
    "  - {at: 7s, replay: {count: 2, after: 1500ms, from: gateway}}\n"
    "  - {at: 8s, conflict: {count: 3, after: 20s}}\n"
    "  - {at: 5s, skew: {actor: w-1, by: \"-2s\"}}\n"
    "  - {at: 50s, policy: ../reference/policies/tenants.yaml}\n"
    "  - {at: 12s, cancel: job-1}\n"
    "invariants: [no-backward, liveness, restart]\n";

static void same_dist(const sim_dist *a, const sim_dist *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_true(a->a == b->a);
    assert_true(a->b == b->b);
}

static void same_str(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void same_kv(const sim_kv *a, size_t na, const sim_kv *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(a[i].key, b[i].key);
        assert_string_equal(a[i].value, b[i].value);
    }
}

static void same_strs(char *const *a, size_t na, char *const *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_string_equal(a[i], b[i]);
}

/* Field by field (the policy path may differ in spelling, not in file). */
static void same_scenario(const sim_scenario *a, const sim_scenario *b)
{
    assert_string_equal(a->name, b->name);
    same_str(a->description, b->description);
    assert_true(a->seed == b->seed);
    assert_true(a->duration_ns == b->duration_ns);
    assert_true(a->drain_ns == b->drain_ns);
    assert_true(a->max_events_per_instant == b->max_events_per_instant);
    assert_int_equal(a->policy_len, b->policy_len);
    assert_memory_equal(a->policy_text, b->policy_text, a->policy_len);
    assert_true(a->dispatch_timeout_ns == b->dispatch_timeout_ns);
    assert_true(a->running_timeout_ns == b->running_timeout_ns);
    assert_true(a->no_worker_wait_ns == b->no_worker_wait_ns);
    assert_int_equal(a->max_retries, b->max_retries);
    assert_int_equal(a->max_retries_set, b->max_retries_set);
    assert_int_equal(a->breaker_threshold, b->breaker_threshold);
    assert_true(a->breaker_cool_down_ns == b->breaker_cool_down_ns);
    assert_true(a->worker_grace_ns == b->worker_grace_ns);
    same_dist(&a->latency, &b->latency);
    assert_int_equal(a->n_workers, b->n_workers);
    for (size_t i = 0; i < a->n_workers; i++) {
        const sim_worker_spec *x = &a->workers[i], *y = &b->workers[i];
        assert_string_equal(x->id, y->id);
        assert_string_equal(x->pool, y->pool);
        assert_int_equal(x->count ? x->count : 1, y->count ? y->count : 1);
        assert_int_equal(x->max_parallel, y->max_parallel);
        assert_true(x->heartbeat_ns == y->heartbeat_ns);
        same_dist(&x->service, &y->service);
        assert_true(x->p_retryable == y->p_retryable && x->p_fatal == y->p_fatal);
        assert_true(x->p_hang == y->p_hang && x->p_crash == y->p_crash);
        assert_true(x->restart_after_ns == y->restart_after_ns);
        same_kv(x->labels, x->n_labels, y->labels, y->n_labels);
        same_strs(x->capabilities, x->n_capabilities, y->capabilities, y->n_capabilities);
    }
    assert_int_equal(a->approver.present, b->approver.present);
    if (a->approver.present) {
        same_dist(&a->approver.delay, &b->approver.delay);
        assert_true(a->approver.p_approve == b->approver.p_approve);
        same_str(a->approver.name, b->approver.name);
    }
    assert_int_equal(a->gateway.sign, b->gateway.sign);
    assert_true(a->gateway.signature_lifetime_ns == b->gateway.signature_lifetime_ns);
    const sim_workload_spec *u = &a->workload, *v = &b->workload;
    assert_int_equal(u->kind, v->kind);
    assert_true(u->rate == v->rate);
    assert_int_equal(u->concurrency, v->concurrency);
    assert_true(u->think_ns == v->think_ns);
    assert_int_equal(u->burst_size, v->burst_size);
    assert_true(u->burst_every_ns == v->burst_every_ns);
    assert_true(u->max_jobs == v->max_jobs);
    assert_true(u->stop_at_ns == v->stop_at_ns);
    assert_int_equal(u->n_mix, v->n_mix);
    for (size_t i = 0; i < u->n_mix; i++) {
        const sim_job_spec *x = &u->mix[i], *y = &v->mix[i];
        assert_string_equal(x->topic, y->topic);
        assert_true(x->weight == y->weight);
        same_str(x->tenant, y->tenant);
        assert_int_equal(x->priority, y->priority);
        same_kv(x->labels, x->n_labels, y->labels, y->n_labels);
        same_kv(x->meta_labels, x->n_meta_labels, y->meta_labels, y->n_meta_labels);
        same_strs(x->risk_tags, x->n_risk_tags, y->risk_tags, y->n_risk_tags);
        assert_int_equal(x->workflow_steps, y->workflow_steps);
        same_str(x->compensation_topic, y->compensation_topic);
        same_str(x->idempotency_key, y->idempotency_key);
    }
    assert_int_equal(u->n_script, v->n_script);
    for (size_t i = 0; i < u->n_script; i++) {
        assert_true(u->script[i].at == v->script[i].at);
        assert_int_equal(u->script[i].mix, v->script[i].mix);
        same_str(u->script[i].job_id, v->script[i].job_id);
    }
    assert_int_equal(a->n_timeline, b->n_timeline);
    for (size_t i = 0; i < a->n_timeline; i++) {
        const sim_timeline_event *x = &a->timeline[i], *y = &b->timeline[i];
        assert_true(x->at == y->at);
        assert_int_equal(x->kind, y->kind);
        same_str(x->a, y->a);
        same_str(x->b, y->b);
        assert_true(x->skew_ns == y->skew_ns);
        assert_true(x->count == y->count && x->after_ns == y->after_ns);
        if (x->kind == SIM_EV_FAULT) {
            assert_int_equal(x->fault.kind, y->fault.kind);
            same_str(x->fault.subject, y->fault.subject);
            same_str(x->fault.from, y->fault.from);
            same_str(x->fault.to, y->fault.to);
            assert_true(x->fault.start == y->fault.start && x->fault.end == y->fault.end);
            same_dist(&x->fault.latency, &y->fault.latency);
            assert_true(x->fault.p == y->fault.p);
            assert_true(x->fault.count == y->fault.count);
            assert_true(x->fault.window == y->fault.window);
            assert_true(x->fault.after == y->fault.after);
        }
        if (x->kind == SIM_EV_POLICY) {
            char pa[4096], pb[4096];
            assert_non_null(realpath(x->policy_path, pa));
            assert_non_null(realpath(y->policy_path, pb));
            assert_string_equal(pa, pb);
        }
    }
    assert_int_equal(a->invariants, b->invariants);
}

static void test_round_trip(void **state)
{
    (void)state;
    sim_scenario *a = parse(SCN_PATH, FULL, strlen(FULL));
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sim_scenario_write_text(a, "first line\n\nthird", &text, &len), CAP_OK);
    assert_int_equal(strlen(text), len);
    /* the comment, each line marked; absolute policy paths */
    assert_non_null(strstr(text, "# first line\n#\n# third\n"));
    const char *pol = strstr(text, "\npolicy: \"/");
    assert_non_null(pol);
    assert_non_null(strstr(text, "policies/tenants.yaml\""));
    /* the signing gateway and the replays are written (and read back below) */
    assert_non_null(strstr(text, "\ngateway: {sign: true, signature_lifetime: 90s}\n"));
    assert_non_null(strstr(text, "replay: {count: 7, after: 4m, subject: \"sys.job.submit\""));
    assert_non_null(strstr(text, "replay: {count: 2, after: 1500ms, from: \"gateway\"}"));
    assert_non_null(strstr(text, "{at: 8s, conflict: {count: 3, after: 20s}}"));
    assert_non_null(strstr(text, "\nmax_events_per_instant: 5000\n"));
    /* read back from another directory's point of view: same values */
    sim_scenario *b = parse("/nonexistent/dir/x.yaml", text, len);
    same_scenario(a, b);
    /* and the text is a fixed point */
    char *again = NULL;
    size_t len2 = 0;
    assert_int_equal(sim_scenario_write_text(b, "first line\n\nthird", &again, &len2), CAP_OK);
    assert_int_equal(len, len2);
    assert_string_equal(text, again);
    free(again);
    free(text);
    sim_scenario_free(b);
    sim_scenario_free(a);
}

static void test_clone_and_files(void **state)
{
    (void)state;
    sim_scenario *a = NULL, *c = NULL;
    cap_yaml_diag d;
    assert_int_equal(sim_scenario_load("sim/scenarios/approval-flow.yaml", &a, &d), CAP_OK);
    assert_int_equal(sim_scenario_clone(a, "copy.yaml", &c, &d), CAP_OK);
    assert_string_equal(c->path, "copy.yaml");
    same_scenario(a, c);
    /* the copy runs to the same trace */
    sim_result *r1 = malloc(sizeof *r1), *r2 = malloc(sizeof *r2);
    assert_non_null(r1);
    assert_non_null(r2);
    sim_run_config rc = {.scn = a, .seed = 3};
    assert_int_equal(sim_run(&rc, r1, NULL), CAP_OK);
    rc.scn = c;
    assert_int_equal(sim_run(&rc, r2, NULL), CAP_OK);
    assert_string_equal(r1->trace_hash, r2->trace_hash);
    assert_true(r1->submitted > 0);
    /* a written file loads with sim_scenario_load */
    char path[] = "/tmp/capsim-shrink-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(sim_scenario_write(a, NULL, f), CAP_OK);
    assert_int_equal(fclose(f), 0);
    sim_scenario *l = NULL;
    assert_int_equal(sim_scenario_load(path, &l, &d), CAP_OK);
    same_scenario(a, l);
    unlink(path);
    /* bad arguments */
    assert_int_equal(sim_scenario_write(NULL, NULL, stdout), CAP_EINVAL);
    assert_int_equal(sim_scenario_write(a, NULL, NULL), CAP_EINVAL);
    free(r1);
    free(r2);
    sim_scenario_free(l);
    sim_scenario_free(c);
    sim_scenario_free(a);
}

/* A workload with things to remove (signing among them): a fatal failure
 * is retried under the retry-fatal bug, which the checker reports as
 * one-terminal. */
static const char FATAL[] =
    "name: fatal\n"
    "duration: 60s\n"
    "drain: 5m\n"
    "gateway: {sign: true}\n"
    "policy: ../reference/policies/example.yaml\n"
    "scheduler: {max_retries: 2, breaker_threshold: 1000}\n"
    "workers:\n"
    "  - {id: w, count: 4, pool: job.tools, max_parallel: 4, service: 500ms, p_fatal: 0.2}\n"
    "  - {id: idle, count: 2, pool: job.other}\n"
    "workload:\n"
    "  kind: poisson\n"
    "  rate: 4\n"
    "  max_jobs: 120\n"
    "  mix:\n"
    "    - {topic: job.tools, meta_labels: {mcp.action: read}}\n"
    "    - {topic: job.tools, weight: 2, meta_labels: {mcp.action: read}, workflow_steps: 4}\n"
    "  script:\n"
    "    - {at: 2s, mix: 1}\n"
    "faults:\n"
    "  - {at: 5s, duplicate: {subject: sys.job.submit, count: 3}}\n"
    "  - {at: 9s, skew: {actor: idle-1, by: 1s}}\n"
    "  - {at: 4s, conflict: {count: 2, after: 5s}}\n";

static void test_shrink(void **state)
{
    (void)state;
    sim_scenario *s = parse(SCN_PATH, FATAL, strlen(FATAL));
    sim_result *r = malloc(sizeof *r);
    sim_shrink_result *sr = malloc(sizeof *sr);
    assert_non_null(r);
    assert_non_null(sr);
    /* The reference holds; with the bug, seed 1 breaks one-terminal. */
    sim_run_config rc = {.scn = s, .seed = 1};
    assert_int_equal(sim_run(&rc, r, NULL), CAP_OK);
    assert_false(r->violated);
    ref_bug_set(REF_BUG_RETRY_FATAL);
    assert_int_equal(sim_run(&rc, r, NULL), CAP_OK);
    assert_true(r->violated);
    assert_string_equal(r->invariant, "one-terminal");

    cap_diag d;
    assert_int_equal(sim_shrink(s, NULL, 1, "one-terminal", "out.yaml", 0, sr, &d), CAP_OK);
    sim_scenario *m = sr->scn;
    assert_non_null(m);
    assert_true(sr->runs > 1 && sr->runs <= SIM_SHRINK_DEFAULT_RUNS + 4);
    assert_true(sr->last.violated);
    assert_string_equal(sr->last.invariant, "one-terminal");
    assert_true(m->seed == 1);
    /* smaller: the faults, workers, a mix entry and the script go */
    assert_int_equal(m->n_timeline, 0);
    uint32_t workers = 0;
    for (size_t i = 0; i < m->n_workers; i++)
        workers += m->workers[i].count;
    assert_true(workers < 6);
    assert_int_equal(m->workload.n_mix, 1);
    assert_int_equal(m->workload.n_script, 0);
    assert_true(m->workload.max_jobs >= 1 && m->workload.max_jobs < 120);
    assert_true(m->workload.rate < 4);
    assert_true(m->duration_ns < s->duration_ns);
    assert_int_equal(m->gateway.sign, 0); /* signing has nothing to do with it */

    /* The written file reproduces on its own, and holds without the bug. */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sim_scenario_write_text(m, "shrunk", &text, &len), CAP_OK);
    sim_scenario *back = parse("/elsewhere/out.yaml", text, len);
    rc.scn = back;
    rc.seed = back->seed;
    assert_int_equal(sim_run(&rc, r, NULL), CAP_OK);
    assert_true(r->violated);
    assert_string_equal(r->invariant, "one-terminal");
    assert_string_equal(r->trace_hash, sr->last.trace_hash);
    ref_bug_set(REF_BUG_NONE);
    assert_int_equal(sim_run(&rc, r, NULL), CAP_OK);
    assert_false(r->violated);

    /* A violation that does not happen cannot be shrunk. */
    assert_int_equal(sim_shrink(s, NULL, 1, "one-terminal", NULL, 0, sr, &d), CAP_EINVAL);
    assert_null(sr->scn);
    assert_int_equal(sim_shrink(NULL, NULL, 1, "x", NULL, 0, sr, &d), CAP_EINVAL);

    free(text);
    sim_scenario_free(back);
    sim_scenario_free(m);
    sim_scenario_free(s);
    free(sr);
    free(r);
}

/* Run knobs become plain values: a skipped event is gone from the file,
 * the job budget and the duration are those of the failing run. */
static void test_shrink_knobs(void **state)
{
    (void)state;
    sim_scenario *s = parse(SCN_PATH, FATAL, strlen(FATAL));
    sim_shrink_result *sr = malloc(sizeof *sr);
    assert_non_null(sr);
    unsigned char skip[3] = {0, 0, 1}; /* in time order: conflict, duplicate, skew */
    sim_run_config k = {.max_jobs = 40, .duration_ns = INT64_C(30000000000), .skip_event = skip};
    ref_bug_set(REF_BUG_RETRY_FATAL);
    cap_diag d;
    assert_int_equal(sim_shrink(s, &k, 2, "one-terminal", NULL, 3, sr, &d), CAP_OK);
    ref_bug_set(REF_BUG_NONE);
    /* with a budget of 3 runs only the knobs are applied */
    assert_true(sr->runs <= 4);
    assert_true(sr->scn->workload.max_jobs <= 40);
    assert_true(sr->scn->duration_ns <= INT64_C(30000000000));
    for (size_t i = 0; i < sr->scn->n_timeline; i++)
        assert_int_not_equal(sr->scn->timeline[i].kind, SIM_EV_SKEW);
    sim_scenario_free(sr->scn);
    free(sr);
    sim_scenario_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_clone_and_files),
        cmocka_unit_test(test_shrink),
        cmocka_unit_test(test_shrink_knobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
