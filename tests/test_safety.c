/* The safety kernel: the example policy, every criterion, first match,
 * default deny and the topic rule, velocity windows, tenant caps and
 * topic lists, atomic reload, explain, and the wire shapes. */
#include "testutil.h"

#include "cap_error.h"
#include "cap_json.h"
#include "cap_schema.h"
#include "ref_safety.h"

#define SEC 1000000000ll
#define ALLOW CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW
#define DENY CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY
#define HUMAN CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REQUIRE_HUMAN
#define THROTTLE CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_THROTTLE
#define AWC CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS

static const char EXAMPLE[] =
    "version: v1\n"
    "rules:\n"
    "- id: allow-read-path\n"
    "  match: {labels: {mcp.action: \"read\"}}\n"
    "  decision: allow\n"
    "  reason: \"Read operations are allowed\"\n"
    "- id: approval-prod-write\n"
    "  match: {labels: {mcp.action: \"write\"}, risk_tags: [\"prod\"]}\n"
    "  decision: require_approval\n"
    "  reason: \"Production writes require human review\"\n"
    "- id: deny-destructive\n"
    "  match: {labels: {mcp.action: \"delete\"}}\n"
    "  decision: deny\n"
    "  reason: \"Destructive actions blocked\"\n"
    "- id: constrain-heavy-jobs\n"
    "  match: {topics: [\"job.batch.*\"]}\n"
    "  decision: allow_with_constraints\n"
    "  constraints: {max_runtime_sec: 120, max_retries: 1}\n";

static ref_safety *kernel(const char *yaml)
{
    ref_safety *k = ref_safety_new();
    assert_non_null(k);
    cap_yaml_diag d;
    int rc = ref_safety_load(k, yaml, strlen(yaml), &d);
    if (rc)
        fail_msg("policy did not load: %d:%d %s: %s", d.line, d.column, d.path, d.reason);
    return k;
}

/* A PolicyCheckRequest from its JSON form. */
static Cordum__Agent__V1__PolicyCheckRequest *req(const char *json)
{
    ProtobufCMessage *m = NULL;
    cap_diag d;
    if (cap_json_to_message(&cordum__agent__v1__policy_check_request__descriptor, json,
                            strlen(json), 0, &m, &d))
        fail_msg("bad request JSON %s: %s %s", json, d.path, d.reason);
    return (Cordum__Agent__V1__PolicyCheckRequest *)m;
}

static ref_safety_decision check_at(ref_safety *k, const char *json, int64_t now)
{
    Cordum__Agent__V1__PolicyCheckRequest *r = req(json);
    ref_safety_decision d;
    assert_int_equal(ref_safety_check(k, r, now, &d), 0);
    /* Pointers into the request must not be used after this: keep the
     * decision only for its enum and policy-owned fields. */
    d.approval_ref = d.approval_required ? "(job)" : "";
    d.tenant = "";
    cap_message_free(&r->base);
    return d;
}

static ref_safety_decision check(ref_safety *k, const char *json)
{
    return check_at(k, json, 0);
}

static void test_example_policy_behaves_as_written(void **state)
{
    (void)state;
    ref_safety *k = kernel(EXAMPLE);
    Cordum__Agent__V1__PolicyCheckRequest *r;
    ref_safety_decision d;

    d = check(k, "{\"jobId\":\"j1\",\"topic\":\"job.tools.fs\",\"labels\":{\"mcp.action\":\"read\"}}");
    assert_int_equal(d.decision, ALLOW);
    assert_string_equal(d.rule_id, "allow-read-path");
    assert_string_equal(d.reason, "Read operations are allowed");
    assert_false(d.approval_required);

    r = req("{\"jobId\":\"j2\",\"topic\":\"job.tools.fs\",\"labels\":{\"mcp.action\":\"write\"},"
            "\"meta\":{\"riskTags\":[\"prod\"]}}");
    assert_int_equal(ref_safety_check(k, r, 0, &d), 0);
    assert_int_equal(d.decision, HUMAN);
    assert_string_equal(d.rule_id, "approval-prod-write");
    assert_true(d.approval_required);
    assert_string_equal(d.approval_ref, "j2");
    assert_string_equal(d.policy_snapshot, ref_policy_snapshot(ref_safety_policy(k)));
    cap_message_free(&r->base);

    /* A write without the prod tag is not caught by the approval rule. */
    d = check(k, "{\"topic\":\"job.tools.fs\",\"labels\":{\"mcp.action\":\"write\"}}");
    assert_int_equal(d.decision, DENY);
    assert_string_equal(d.rule_id, "");

    d = check(k, "{\"topic\":\"job.tools.fs\",\"labels\":{\"mcp.action\":\"delete\"}}");
    assert_int_equal(d.decision, DENY);
    assert_string_equal(d.rule_id, "deny-destructive");
    assert_string_equal(d.reason, "Destructive actions blocked");

    d = check(k, "{\"topic\":\"job.batch.nightly\"}");
    assert_int_equal(d.decision, AWC);
    assert_string_equal(d.rule_id, "constrain-heavy-jobs");
    assert_non_null(d.constraints);
    assert_int_equal(d.constraints->budgets->max_runtime_ms, 120000);
    assert_int_equal(d.constraints->budgets->max_retries, 1);

    d = check(k, "{\"topic\":\"job.other.thing\",\"labels\":{\"mcp.action\":\"list\"}}");
    assert_int_equal(d.decision, DENY);
    assert_string_equal(d.rule_id, "");
    assert_non_null(strstr(d.reason, "default_decision deny"));
    ref_safety_free(k);
}

static void test_every_criterion(void **state)
{
    (void)state;
    static const struct {
        const char *match, *request;
        int matches;
    } cases[] = {
        {"{topics: [job.a.*]}", "{\"topic\":\"job.a.b\"}", 1},
        {"{topics: [job.a.*]}", "{\"topic\":\"job.b.a\"}", 0},
        {"{labels: {k: v, x: y}}", "{\"topic\":\"job.a\",\"labels\":{\"k\":\"v\",\"x\":\"y\",\"z\":\"1\"}}", 1},
        {"{labels: {k: v, x: y}}", "{\"topic\":\"job.a\",\"labels\":{\"k\":\"v\",\"x\":\"n\"}}", 0},
        {"{labels: {k: v}}", "{\"topic\":\"job.a\"}", 0},
        {"{labels: {k: v}}", "{\"topic\":\"job.a\",\"meta\":{\"labels\":{\"k\":\"v\"}}}", 1},
        /* the request's own label wins over meta's */
        {"{labels: {k: v}}", "{\"topic\":\"job.a\",\"labels\":{\"k\":\"w\"},\"meta\":{\"labels\":{\"k\":\"v\"}}}", 0},
        {"{labels: {k: V}}", "{\"topic\":\"job.a\",\"labels\":{\"k\":\"v\"}}", 0},  /* values are exact */
        {"{risk_tags: [a, b]}", "{\"topic\":\"job.a\",\"meta\":{\"riskTags\":[\"z\",\"b\"]}}", 1},
        {"{risk_tags: [a, b]}", "{\"topic\":\"job.a\",\"meta\":{\"riskTags\":[\"z\"]}}", 0},
        {"{requires: [gpu, net]}", "{\"topic\":\"job.a\",\"meta\":{\"requires\":[\"net\",\"gpu\",\"x\"]}}", 1},
        {"{requires: [gpu, net]}", "{\"topic\":\"job.a\",\"meta\":{\"requires\":[\"gpu\"]}}", 0},
        {"{tenants: [Acme]}", "{\"topic\":\"job.a\",\"tenant\":\"ACME\"}", 1},
        {"{tenants: [acme]}", "{\"topic\":\"job.a\",\"tenant\":\"other\"}", 0},
        {"{tenants: [acme]}", "{\"topic\":\"job.a\",\"meta\":{\"tenantId\":\"acme\"}}", 1},
        {"{tenants: [acme]}", "{\"topic\":\"job.a\",\"identity\":{\"tenantId\":\"acme\"}}", 1},
        {"{tenants: [default]}", "{\"topic\":\"job.a\"}", 1},
        {"{capabilities: [Shell]}", "{\"topic\":\"job.a\",\"meta\":{\"capability\":\"shell\"}}", 1},
        {"{capabilities: [shell]}", "{\"topic\":\"job.a\"}", 0},
        {"{actor_ids: [u1]}", "{\"topic\":\"job.a\",\"meta\":{\"actorId\":\"U1\"}}", 1},
        {"{actor_ids: [u1]}", "{\"topic\":\"job.a\",\"identity\":{\"actorId\":\"u1\"}}", 1},
        {"{actor_ids: [u1]}", "{\"topic\":\"job.a\"}", 0},
        {"{actor_types: [HUMAN]}", "{\"topic\":\"job.a\",\"meta\":{\"actorType\":\"ACTOR_TYPE_HUMAN\"}}", 1},
        {"{actor_types: [actor_type_service]}", "{\"topic\":\"job.a\",\"meta\":{\"actorType\":\"ACTOR_TYPE_SERVICE\"}}", 1},
        {"{actor_types: [human]}", "{\"topic\":\"job.a\",\"meta\":{\"actorType\":\"ACTOR_TYPE_SERVICE\"}}", 0},
        {"{actor_types: [human]}", "{\"topic\":\"job.a\"}", 0},
        {"{pack_ids: [p1]}", "{\"topic\":\"job.a\",\"meta\":{\"packId\":\"p1\"}}", 1},
        {"{pack_ids: [p1]}", "{\"topic\":\"job.a\"}", 0},
        {"{label_allowlist: {env: [dev, test]}}", "{\"topic\":\"job.a\",\"labels\":{\"env\":\"prod\"}}", 1},
        {"{label_allowlist: {env: [dev, test]}}", "{\"topic\":\"job.a\",\"labels\":{\"env\":\"dev\"}}", 0},
        {"{label_allowlist: {env: [dev, test]}}", "{\"topic\":\"job.a\"}", 0},
        {"{label_threshold: {cost: 10}}", "{\"topic\":\"job.a\",\"labels\":{\"cost\":\"10.5\"}}", 1},
        {"{label_threshold: {cost: 10}}", "{\"topic\":\"job.a\",\"labels\":{\"cost\":\"10\"}}", 0},
        {"{label_threshold: {cost: 10}}", "{\"topic\":\"job.a\",\"labels\":{\"cost\":\"lots\"}}", 0},
        {"{secrets_present: true}", "{\"topic\":\"job.a\",\"labels\":{\"secrets_present\":\"true\"}}", 1},
        {"{secrets_present: true}", "{\"topic\":\"job.a\",\"meta\":{\"riskTags\":[\"secrets\"]}}", 1},
        {"{secrets_present: true}", "{\"topic\":\"job.a\"}", 0},
        {"{secrets_present: false}", "{\"topic\":\"job.a\"}", 1},
        /* criteria AND together */
        {"{topics: [job.a], labels: {k: v}}", "{\"topic\":\"job.a\",\"labels\":{\"k\":\"v\"}}", 1},
        {"{topics: [job.a], labels: {k: v}}", "{\"topic\":\"job.a\",\"labels\":{\"k\":\"w\"}}", 0},
        {"{topics: [job.a], labels: {k: v}}", "{\"topic\":\"job.b\",\"labels\":{\"k\":\"v\"}}", 0},
        /* an empty match matches everything */
        {"{}", "{\"topic\":\"job.anything\"}", 1},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "rules:\n- id: r\n  decision: allow\n  match: %s\n",
                 cases[i].match);
        ref_safety *k = kernel(yaml);
        ref_safety_decision d = check(k, cases[i].request);
        int got = d.decision == ALLOW;
        if (got != cases[i].matches) {
            print_error("match %s, request %s: expected %s, got %s (%s)\n", cases[i].match,
                        cases[i].request, cases[i].matches ? "match" : "no match",
                        ref_decision_name(d.decision), d.reason);
            bad++;
        }
        ref_safety_free(k);
    }
    assert_int_equal(bad, 0);
}

static void test_first_match_wins(void **state)
{
    (void)state;
    ref_safety *k = kernel("rules:\n"
                           "- {id: one, decision: throttle, match: {topics: [job.a.*]}}\n"
                           "- {id: two, decision: deny, match: {topics: [job.a.b]}}\n");
    ref_safety_decision d = check(k, "{\"topic\":\"job.a.b\"}");
    assert_string_equal(d.rule_id, "one");
    assert_int_equal(d.decision, THROTTLE);
    ref_safety_free(k);
    k = kernel("rules:\n"
               "- {id: two, decision: deny, match: {topics: [job.a.b]}}\n"
               "- {id: one, decision: throttle, match: {topics: [job.a.*]}}\n");
    d = check(k, "{\"topic\":\"job.a.b\"}");
    assert_string_equal(d.rule_id, "two");
    assert_int_equal(d.decision, DENY);
    d = check(k, "{\"topic\":\"job.a.c\"}");
    assert_string_equal(d.rule_id, "one");
    ref_safety_free(k);
}

static void test_default_and_topic_rules(void **state)
{
    (void)state;
    ref_safety *none = ref_safety_new();
    ref_safety_decision d = check(none, "{\"topic\":\"job.a\"}");
    assert_int_equal(d.decision, DENY);
    assert_non_null(strstr(d.reason, "no safety policy"));
    assert_string_equal(d.policy_snapshot, "");
    ref_safety_free(none);

    static const struct {
        const char *policy;
        Cordum__Agent__V1__DecisionType expect;
    } defaults[] = {
        {"version: v1\n", DENY},
        {"default_decision: allow\n", ALLOW},
        {"default_decision: permit\n", ALLOW},
        {"default_decision: deny\n", DENY},
        {"default_decision: alow\n", DENY},  /* a typo fails closed */
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        ref_safety *k = kernel(defaults[i].policy);
        d = check(k, "{\"topic\":\"job.a\"}");
        assert_int_equal(d.decision, defaults[i].expect);
        ref_safety_free(k);
    }
    ref_safety *k = kernel("default_decision: allow\nrules:\n- {id: all, decision: allow}\n");
    d = check(k, "{\"topic\":\"sys.job.submit\"}");
    assert_int_equal(d.decision, DENY);
    assert_non_null(strstr(d.reason, "unsupported topic"));
    d = check(k, "{\"topic\":\"jobs.x\"}");
    assert_int_equal(d.decision, DENY);
    d = check(k, "{\"jobId\":\"j\"}");
    assert_int_equal(d.decision, DENY);
    assert_string_equal(d.reason, "missing topic");
    ref_safety_free(k);
}

static void test_velocity_window(void **state)
{
    (void)state;
    ref_safety *k = kernel("rules:\n"
                           "- id: burst\n"
                           "  decision: throttle\n"
                           "  reason: too fast\n"
                           "  velocity: {max_requests: 2, window_seconds: 10, key: tenant}\n"
                           "- {id: ok, decision: allow}\n");
    const char *a = "{\"topic\":\"job.a\",\"tenant\":\"a\"}";
    const char *b = "{\"topic\":\"job.a\",\"tenant\":\"b\"}";
    assert_string_equal(check_at(k, a, 0).rule_id, "ok");
    assert_string_equal(check_at(k, a, 1 * SEC).rule_id, "ok");
    ref_safety_decision d = check_at(k, a, 2 * SEC);
    assert_int_equal(d.decision, THROTTLE);
    assert_string_equal(d.rule_id, "burst");
    assert_string_equal(d.reason, "too fast");
    /* Another key has its own window. */
    assert_string_equal(check_at(k, b, 2 * SEC).rule_id, "ok");
    /* Explain is a dry run: it sees the window but does not add to it. */
    Cordum__Agent__V1__PolicyCheckRequest *r = req(b);
    ref_explain e;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ref_safety_explain(k, r, 2 * SEC, &e), 0);
        assert_int_equal(e.decision.decision, ALLOW);
        ref_explain_free(&e);
    }
    cap_message_free(&r->base);
    assert_string_equal(check_at(k, b, 3 * SEC).rule_id, "ok");
    /* Times at or before now - window leave it: at 10.5 s the request at 0
     * is gone, but 1 s and 2 s (the throttled one counts) remain. */
    assert_string_equal(check_at(k, a, 10 * SEC + SEC / 2).rule_id, "burst");
    assert_string_equal(check_at(k, a, 12 * SEC + SEC / 2).rule_id, "ok");
    /* Exactly at the boundary: the request at 10.5 s leaves at 20.5 s. */
    assert_string_equal(check_at(k, a, 20 * SEC + SEC / 2).rule_id, "ok");
    ref_safety_free(k);
}

static void test_velocity_keys(void **state)
{
    (void)state;
    ref_safety *k = kernel("rules:\n"
                           "- id: per-user\n"
                           "  decision: throttle\n"
                           "  match: {topics: [job.x.*]}\n"
                           "  velocity: {max_requests: 1, window_seconds: 60, key: labels.user}\n"
                           "- {id: ok, decision: allow}\n");
    assert_string_equal(check(k, "{\"topic\":\"job.x.1\",\"labels\":{\"user\":\"u1\"}}").rule_id, "ok");
    assert_string_equal(check(k, "{\"topic\":\"job.x.2\",\"labels\":{\"user\":\"u2\"}}").rule_id, "ok");
    assert_string_equal(check(k, "{\"topic\":\"job.x.3\",\"labels\":{\"user\":\"u1\"}}").rule_id, "per-user");
    /* Requests the rule's criteria do not match are not counted. */
    assert_string_equal(check(k, "{\"topic\":\"job.y\",\"labels\":{\"user\":\"u2\"}}").rule_id, "ok");
    assert_string_equal(check(k, "{\"topic\":\"job.y\",\"labels\":{\"user\":\"u2\"}}").rule_id, "ok");
    ref_safety_free(k);
}

static void test_tenant_concurrency_cap(void **state)
{
    (void)state;
    ref_safety *k = kernel("tenants: {Acme: {max_concurrent_jobs: 2}}\n"
                           "rules:\n"
                           "- {id: no-rm, decision: deny, match: {topics: [job.rm]}}\n"
                           "- {id: ok, decision: allow}\n");
    const char *job = "{\"topic\":\"job.a\",\"tenant\":\"acme\"}";
    assert_int_equal(check(k, job).decision, ALLOW);
    assert_int_equal(ref_safety_job_started(k, "ACME"), 0);
    assert_int_equal(ref_safety_job_started(k, "acme"), 0);
    assert_int_equal(ref_safety_active_jobs(k, "Acme"), 2);
    ref_safety_decision d = check(k, job);
    assert_int_equal(d.decision, THROTTLE);
    assert_non_null(strstr(d.reason, "max_concurrent_jobs of 2"));
    /* A deny stays a deny at the cap. */
    assert_int_equal(check(k, "{\"topic\":\"job.rm\",\"tenant\":\"acme\"}").decision, DENY);
    /* Other tenants are not capped. */
    assert_int_equal(check(k, "{\"topic\":\"job.a\",\"tenant\":\"other\"}").decision, ALLOW);
    ref_safety_job_ended(k, "acme");
    assert_int_equal(check(k, job).decision, ALLOW);
    ref_safety_job_ended(k, "acme");
    ref_safety_job_ended(k, "acme");  /* never below zero */
    assert_int_equal(ref_safety_active_jobs(k, "acme"), 0);
    ref_safety_free(k);
}

static void test_tenant_topic_lists(void **state)
{
    (void)state;
    ref_safety *k = kernel("tenants:\n"
                           "  acme: {deny_topics: [job.secret.*], allow_topics: [job.ok.*, job.secret.*]}\n"
                           "rules:\n- {id: ok, decision: allow}\n");
    assert_int_equal(check(k, "{\"topic\":\"job.ok.1\",\"tenant\":\"acme\"}").decision, ALLOW);
    ref_safety_decision d = check(k, "{\"topic\":\"job.secret.1\",\"tenant\":\"acme\"}");
    assert_int_equal(d.decision, DENY);
    assert_non_null(strstr(d.reason, "deny_topics"));
    d = check(k, "{\"topic\":\"job.other\",\"tenant\":\"acme\"}");
    assert_int_equal(d.decision, DENY);
    assert_non_null(strstr(d.reason, "allow_topics"));
    assert_int_equal(check(k, "{\"topic\":\"job.other\",\"tenant\":\"zed\"}").decision, ALLOW);
    ref_safety_free(k);
    /* No rules: the lists are the rules, and the default covers the rest. */
    k = kernel("tenants:\n  acme: {deny_topics: [job.secret.*], allow_topics: [job.*]}\n");
    assert_int_equal(check(k, "{\"topic\":\"job.a\",\"tenant\":\"acme\"}").decision, ALLOW);
    d = check(k, "{\"topic\":\"job.secret.a\",\"tenant\":\"acme\"}");
    assert_int_equal(d.decision, DENY);
    assert_string_equal(d.rule_id, "tenant:acme:deny_topics");
    assert_int_equal(check(k, "{\"topic\":\"job.a\",\"tenant\":\"zed\"}").decision, DENY);
    ref_safety_free(k);
}

static void test_default_tenant(void **state)
{
    (void)state;
    ref_safety *k = kernel("default_tenant: Acme\n"
                           "rules:\n- {id: acme, decision: allow, match: {tenants: [acme]}}\n");
    ref_safety_decision d = check(k, "{\"topic\":\"job.a\"}");
    assert_string_equal(d.rule_id, "acme");
    ref_safety_free(k);
}

static void test_atomic_reload(void **state)
{
    (void)state;
    const char *v1 = "version: v1\nrules:\n- {id: r, decision: allow}\n";
    const char *v2 = "version: v2\nrules:\n- {id: r, decision: deny}\n";
    ref_safety *k = kernel(v1);
    char snap1[96];
    snprintf(snap1, sizeof snap1, "%s", ref_policy_snapshot(ref_safety_policy(k)));
    const ref_policy *before = ref_safety_policy(k);

    static const char *const bad[] = {
        "version: v2\nrules:\n- {id: r, decision: maybe}\n",
        "version: v2\nrules: [\n",
        "version: v2\nrules:\n- {id: r, decision: deny}\n- {id: r, decision: allow}\n",
        "version: v2\nnope: 1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cap_yaml_diag d;
        assert_true(ref_safety_load(k, bad[i], strlen(bad[i]), &d) < 0);
        assert_ptr_equal(ref_safety_policy(k), before);
        assert_string_equal(ref_policy_snapshot(ref_safety_policy(k)), snap1);
        assert_int_equal(check(k, "{\"topic\":\"job.a\"}").decision, ALLOW);
    }
    cap_yaml_diag d;
    assert_int_equal(ref_safety_load(k, v2, strlen(v2), &d), 0);
    assert_int_equal(check(k, "{\"topic\":\"job.a\"}").decision, DENY);
    /* The same policy again (any spelling) is not a swap. */
    const char *v2b = "rules: [{decision: block, id: r}]\nversion: v2\n";
    assert_int_equal(ref_safety_load(k, v2b, strlen(v2b), &d), 1);
    const char *snaps[10];
    assert_int_equal(ref_safety_snapshots(k, snaps, 10), 2);
    assert_string_equal(snaps[1], snap1);
    assert_int_equal(strncmp(snaps[0], "v2:", 3), 0);
    /* The history keeps the newest 10. */
    for (int i = 0; i < 12; i++) {
        char yaml[64];
        snprintf(yaml, sizeof yaml, "version: n%d\n", i);
        assert_int_equal(ref_safety_load(k, yaml, strlen(yaml), &d), 0);
    }
    assert_int_equal(ref_safety_snapshots(k, snaps, 10), 10);
    assert_int_equal(strncmp(snaps[0], "n11:", 4), 0);
    assert_int_equal(strncmp(snaps[9], "n2:", 3), 0);
    ref_safety_free(k);
}

static void test_explain_records_every_rule(void **state)
{
    (void)state;
    ref_safety *k = kernel(EXAMPLE);
    Cordum__Agent__V1__PolicyCheckRequest *r =
        req("{\"jobId\":\"j\",\"topic\":\"job.batch.x\",\"labels\":{\"mcp.action\":\"write\"},"
            "\"meta\":{\"riskTags\":[\"prod\"]}}");
    ref_explain e;
    assert_int_equal(ref_safety_explain(k, r, 0, &e), 0);
    assert_int_equal(e.decision.decision, HUMAN);
    assert_string_equal(e.stage, "rule");
    assert_int_equal(e.n_rules, 4);
    assert_int_equal(e.rules[0].outcome, REF_RULE_NO_MATCH);
    assert_int_equal(e.rules[1].outcome, REF_RULE_FIRED);
    assert_int_equal(e.rules[1].n_criteria, 2);
    assert_true(e.rules[1].criteria[0].matched);
    assert_int_equal(e.rules[2].outcome, REF_RULE_NOT_REACHED);
    assert_false(e.rules[2].would_match);
    /* The batch rule would have matched too, had it been reached. */
    assert_int_equal(e.rules[3].outcome, REF_RULE_NOT_REACHED);
    assert_true(e.rules[3].would_match);
    assert_string_equal(e.rules[0].criteria[0].criterion, "labels");
    assert_false(e.rules[0].criteria[0].matched);
    assert_non_null(strstr(e.rules[0].criteria[0].why, "\"write\" (rule wants \"read\")"));
    ref_explain_free(&e);
    cap_message_free(&r->base);

    r = req("{\"topic\":\"job.zzz\"}");
    assert_int_equal(ref_safety_explain(k, r, 0, &e), 0);
    assert_string_equal(e.stage, "default");
    ref_explain_free(&e);
    cap_message_free(&r->base);
    r = req("{\"topic\":\"ops.zzz\"}");
    assert_int_equal(ref_safety_explain(k, r, 0, &e), 0);
    assert_string_equal(e.stage, "topic");
    assert_non_null(strstr(e.topic_check, "DENY"));
    ref_explain_free(&e);
    cap_message_free(&r->base);
    ref_safety_free(k);
}

static void test_explain_agrees_with_check(void **state)
{
    (void)state;
    static const char *const requests[] = {
        "{\"topic\":\"job.tools.x\",\"labels\":{\"mcp.action\":\"read\"}}",
        "{\"topic\":\"job.tools.x\",\"labels\":{\"mcp.action\":\"write\"},\"meta\":{\"riskTags\":[\"prod\"]}}",
        "{\"topic\":\"job.tools.x\",\"labels\":{\"mcp.action\":\"delete\"}}",
        "{\"topic\":\"job.batch.x\"}",
        "{\"topic\":\"job.none\"}",
        "{\"topic\":\"nope\"}",
    };
    ref_safety *k = kernel(EXAMPLE);
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        Cordum__Agent__V1__PolicyCheckRequest *r = req(requests[i]);
        ref_explain e;
        ref_safety_decision d;
        assert_int_equal(ref_safety_explain(k, r, 0, &e), 0);
        assert_int_equal(ref_safety_check(k, r, 0, &d), 0);
        assert_int_equal(e.decision.decision, d.decision);
        assert_string_equal(e.decision.rule_id, d.rule_id);
        assert_string_equal(e.decision.reason, d.reason);
        ref_explain_free(&e);
        cap_message_free(&r->base);
    }
    ref_safety_free(k);
}

static void test_response_and_request_shapes(void **state)
{
    (void)state;
    ref_safety *k = kernel(EXAMPLE);
    ProtobufCMessage *m = NULL;
    cap_diag cd;
    const char *job_json =
        "{\"jobId\":\"j9\",\"topic\":\"job.tools.fs\",\"tenantId\":\"acme\",\"priority\":\"JOB_PRIORITY_BATCH\","
        "\"labels\":{\"mcp.action\":\"write\"},\"meta\":{\"riskTags\":[\"prod\"],\"actorId\":\"u\"}}";
    assert_int_equal(cap_json_to_message(&cordum__agent__v1__job_request__descriptor, job_json,
                                         strlen(job_json), 0, &m, &cd), 0);
    Cordum__Agent__V1__PolicyCheckRequest *r =
        ref_safety_request_from_job((Cordum__Agent__V1__JobRequest *)m);
    cap_message_free(m);
    assert_non_null(r);
    assert_string_equal(r->job_id, "j9");
    assert_string_equal(r->tenant, "acme");
    assert_int_equal(r->priority, CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_BATCH);
    assert_int_equal(r->n_labels, 1);
    assert_ptr_equal(r->labels[0]->base.descriptor,
                     &cordum__agent__v1__policy_check_request__labels_entry__descriptor);
    assert_string_equal(r->meta->actor_id, "u");

    ref_safety_decision d;
    assert_int_equal(ref_safety_check(k, r, 0, &d), 0);
    Cordum__Agent__V1__PolicyCheckResponse resp;
    ref_safety_response(&d, &resp);
    char *json = NULL;
    assert_int_equal(cap_json_from_message(&resp.base, 0, &json), 0);
    assert_non_null(strstr(json, "\"decision\":\"DECISION_TYPE_REQUIRE_HUMAN\""));
    assert_non_null(strstr(json, "\"ruleId\":\"approval-prod-write\""));
    assert_non_null(strstr(json, "\"approvalRequired\":true"));
    assert_non_null(strstr(json, "\"approvalRef\":\"j9\""));
    assert_non_null(strstr(json, "\"policySnapshot\":\"v1:"));
    free(json);
    ref_safety_response_release(&resp);
    assert_null(resp.constraints);
    cap_message_free(&r->base);
    ref_safety_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_policy_behaves_as_written),
        cmocka_unit_test(test_every_criterion),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_default_and_topic_rules),
        cmocka_unit_test(test_velocity_window),
        cmocka_unit_test(test_velocity_keys),
        cmocka_unit_test(test_tenant_concurrency_cap),
        cmocka_unit_test(test_tenant_topic_lists),
        cmocka_unit_test(test_default_tenant),
        cmocka_unit_test(test_atomic_reload),
        cmocka_unit_test(test_explain_records_every_rule),
        cmocka_unit_test(test_explain_agrees_with_check),
        cmocka_unit_test(test_response_and_request_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
