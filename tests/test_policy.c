/* Policy files: every decision spelling, constraints (max_runtime_sec
 * included), snapshot stability and change, every bad-input class with
 * its line, column and key, lint warnings, and topic globs. */
#include "testutil.h"

#include "cap_error.h"
#include "ref_glob.h"
#include "ref_lint.h"
#include "ref_policy.h"

static ref_policy *load(const char *yaml)
{
    ref_policy *p = NULL;
    cap_yaml_diag d;
    int rc = ref_policy_parse(yaml, strlen(yaml), &p, &d);
    if (rc)
        fail_msg("policy did not load: %d:%d: %s: %s", d.line, d.column, d.path, d.reason);
    return p;
}

/* ---- decision words ---- */

static void test_every_decision_spelling(void **state)
{
    (void)state;
    static const struct {
        const char *word;
        Cordum__Agent__V1__DecisionType decision;
    } cases[] = {
        {"allow", CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW},
        {"permit", CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW},
        {"ALLOW", CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW},
        {"deny", CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY},
        {"block", CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY},
        {"require_approval", CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REQUIRE_HUMAN},
        {"require-approval", CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REQUIRE_HUMAN},
        {"require_human", CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REQUIRE_HUMAN},
        {"throttle", CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_THROTTLE},
        {"allow_with_constraints",
         CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[200];
        snprintf(yaml, sizeof yaml, "rules:\n- id: r\n  decision: %s\n", cases[i].word);
        ref_policy *p = load(yaml);
        assert_int_equal(p->n_rules, 1);
        if (p->rules[0].decision != cases[i].decision)
            fail_msg("%s gave %s", cases[i].word, ref_decision_name(p->rules[0].decision));
        ref_policy_free(p);
    }
    assert_int_equal(ref_word_parse(" deny\t"), REF_WORD_DENY);
    assert_int_equal(ref_word_parse("alow"), REF_WORD_NONE);
    assert_int_equal(ref_word_parse(""), REF_WORD_NONE);
}

static void test_allow_with_constraints_becomes_awc(void **state)
{
    (void)state;
    ref_policy *p = load("rules:\n- id: a\n  decision: allow\n  constraints: {max_retries: 2}\n"
                         "- id: b\n  decision: allow\n  constraints: {}\n");
    assert_int_equal(p->rules[0].decision,
                     CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS);
    assert_int_equal(p->rules[0].constraints->budgets->max_retries, 2);
    /* Empty constraints are no constraints. */
    assert_null(p->rules[1].constraints);
    assert_int_equal(p->rules[1].decision, CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW);
    ref_policy_free(p);
}

static void test_default_decision_reading(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        ref_word word;
        int misspelled;
    } cases[] = {
        {"", REF_WORD_DENY, 0},
        {"default_decision: deny\n", REF_WORD_DENY, 0},
        {"default_decision: block\n", REF_WORD_DENY, 0},
        {"default_decision: allow\n", REF_WORD_ALLOW, 0},
        {"default_decision: permit\n", REF_WORD_ALLOW, 0},
        {"default_decision: alow\n", REF_WORD_DENY, 1},
        {"default_decision: throttle\n", REF_WORD_DENY, 1},
        {"default_decision: ''\n", REF_WORD_DENY, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[200];
        snprintf(yaml, sizeof yaml, "version: v1\n%s", cases[i].line);
        ref_policy *p = load(yaml);
        assert_int_equal(p->default_word, cases[i].word);
        assert_int_equal(p->default_misspelled, cases[i].misspelled);
        ref_policy_free(p);
    }
}

/* ---- constraints ---- */

static void test_constraints_all_kinds(void **state)
{
    (void)state;
    ref_policy *p = load("rules:\n"
                         "- id: c\n"
                         "  decision: allow_with_constraints\n"
                         "  constraints:\n"
                         "    budgets: {max_runtime_ms: 5000, max_artifact_bytes: 1048576,\n"
                         "              max_concurrent_jobs: 4}\n"
                         "    max_retries: 3\n"
                         "    sandbox: {isolated: true, network_allowlist: [a.example, b.example],\n"
                         "              fs_read_only: [/etc], fs_read_write: [/tmp]}\n"
                         "    toolchain: {allowed_tools: [git], allowed_commands: [ls, cat]}\n"
                         "    diff: {max_files: 10, max_lines: 500, deny_path_globs: ['*.pem']}\n"
                         "    redaction_level: strict\n"
                         "  remediations:\n"
                         "  - {id: m1, title: Use read, replacement_topic: job.tools.read,\n"
                         "     add_labels: {mode: ro}, remove_labels: [danger]}\n");
    const Cordum__Agent__V1__PolicyConstraints *c = p->rules[0].constraints;
    assert_non_null(c);
    assert_int_equal(c->budgets->max_runtime_ms, 5000);
    assert_int_equal(c->budgets->max_artifact_bytes, 1048576);
    assert_int_equal(c->budgets->max_concurrent_jobs, 4);
    assert_int_equal(c->budgets->max_retries, 3);
    assert_true(c->sandbox->isolated);
    assert_int_equal(c->sandbox->n_network_allowlist, 2);
    assert_string_equal(c->sandbox->fs_read_write[0], "/tmp");
    assert_int_equal(c->toolchain->n_allowed_commands, 2);
    assert_int_equal(c->diff->max_lines, 500);
    assert_string_equal(c->diff->deny_path_globs[0], "*.pem");
    assert_string_equal(c->redaction_level, "strict");
    assert_int_equal(p->rules[0].n_remediations, 1);
    const Cordum__Agent__V1__PolicyRemediation *m = p->rules[0].remediations[0];
    assert_string_equal(m->replacement_topic, "job.tools.read");
    assert_int_equal(m->n_add_labels, 1);
    assert_string_equal(m->add_labels[0]->value, "ro");
    assert_string_equal(m->remove_labels[0], "danger");
    ref_policy_free(p);
}

static void test_max_runtime_sec_is_seconds(void **state)
{
    (void)state;
    ref_policy *a = load("rules:\n- id: c\n  decision: allow_with_constraints\n"
                         "  constraints: {max_runtime_sec: 120, max_retries: 1}\n");
    assert_int_equal(a->rules[0].constraints->budgets->max_runtime_ms, 120000);
    ref_policy *b = load("rules:\n- id: c\n  decision: allow_with_constraints\n"
                         "  constraints: {budgets: {max_runtime_ms: 120000, max_retries: 1}}\n");
    /* The same budget written two ways is the same policy. */
    assert_string_equal(ref_policy_snapshot(a), ref_policy_snapshot(b));
    ref_policy_free(a);
    ref_policy_free(b);
}

/* ---- snapshots ---- */

static const char BASE[] =
    "version: v1\n"
    "default_decision: deny\n"
    "rules:\n"
    "- id: read\n"
    "  match: {labels: {mcp.action: read}, risk_tags: [a, b]}\n"
    "  decision: allow\n"
    "  reason: reads\n"
    "- id: batch\n"
    "  match: {topics: [job.batch.*, job.etl.*]}\n"
    "  decision: allow_with_constraints\n"
    "  constraints: {max_runtime_sec: 60}\n";

static void test_snapshot_ignores_form(void **state)
{
    (void)state;
    static const char *const same[] = {
        /* comments, spacing, key order, block style, set order, synonyms,
         * an explicit default that equals the implicit one */
        "# header comment\n"
        "rules:\n"
        "  - reason: reads   # trailing comment\n"
        "    decision: permit\n"
        "    id: read\n"
        "    match:\n"
        "      risk_tags: [b, a, a]\n"
        "      labels:\n"
        "        mcp.action: \"read\"\n"
        "  - id: batch\n"
        "    decision: allow_with_constraints\n"
        "    match: {topics: [job.etl.*, job.batch.*]}\n"
        "    constraints: {budgets: {max_runtime_ms: 60000}}\n"
        "version: v1\n",
        "version: 'v1'\ndefault_decision: block\ndefault_tenant: default\ntenants: {}\n"
        "rules: [{id: read, decision: allow, reason: reads, match: {labels: {mcp.action: read},"
        " risk_tags: [a, b], tenants: []}}, {id: batch, decision: allow_with_constraints,"
        " match: {topics: [job.batch.*, job.etl.*]}, constraints: {max_runtime_ms: 60000}}]\n",
    };
    ref_policy *base = load(BASE);
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        ref_policy *p = load(same[i]);
        if (strcmp(ref_policy_snapshot(p), ref_policy_snapshot(base)) != 0)
            fail_msg("variant %zu changed the snapshot:\n%s\n%s", i, ref_policy_canonical(p),
                     ref_policy_canonical(base));
        ref_policy_free(p);
    }
    assert_int_equal(strncmp(ref_policy_snapshot(base), "v1:", 3), 0);
    assert_int_equal(strlen(ref_policy_snapshot(base)), 3 + 64);
    ref_policy_free(base);
}

/* Replaces the first occurrence of from in BASE by to. */
static ref_policy *load_edited(const char *from, const char *to)
{
    const char *at = strstr(BASE, from);
    assert_non_null(at);
    char buf[2048];
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - BASE), BASE, to, at + strlen(from));
    return load(buf);
}

static void test_snapshot_changes_with_meaning(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to;
    } edits[] = {
        {"reason: reads", "reason: reading"},
        {"mcp.action: read", "mcp.action: Read"},
        {"risk_tags: [a, b]", "risk_tags: [a]"},
        {"decision: allow\n", "decision: deny\n"},
        {"max_runtime_sec: 60", "max_runtime_sec: 61"},
        {"default_decision: deny", "default_decision: allow"},
        {"version: v1", "version: v2"},
        {"job.etl.*", "job.etl.?"},
        {"rules:\n", "default_tenant: acme\nrules:\n"},
        {"rules:\n", "tenants: {acme: {max_concurrent_jobs: 3}}\nrules:\n"},
        {"  constraints: {max_runtime_sec: 60}\n",
         "  constraints: {max_runtime_sec: 60}\n  velocity: {max_requests: 5, window_seconds: 1}\n"},
        /* rule order is meaning: first match wins */
        {"- id: read\n  match: {labels: {mcp.action: read}, risk_tags: [a, b]}\n  decision: allow\n"
         "  reason: reads\n- id: batch\n  match: {topics: [job.batch.*, job.etl.*]}\n"
         "  decision: allow_with_constraints\n  constraints: {max_runtime_sec: 60}\n",
         "- id: batch\n  match: {topics: [job.batch.*, job.etl.*]}\n"
         "  decision: allow_with_constraints\n  constraints: {max_runtime_sec: 60}\n"
         "- id: read\n  match: {labels: {mcp.action: read}, risk_tags: [a, b]}\n  decision: allow\n"
         "  reason: reads\n"},
    };
    ref_policy *base = load(BASE);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        ref_policy *p = load_edited(edits[i].from, edits[i].to);
        if (strcmp(ref_policy_snapshot(p), ref_policy_snapshot(base)) == 0)
            fail_msg("edit %zu (%s -> %s) kept the snapshot", i, edits[i].from, edits[i].to);
        ref_policy_free(p);
    }
    ref_policy_free(base);
    char buf[64];
    assert_string_equal(ref_snapshot_base("v1:abc|cfg:def", buf, sizeof buf), "v1:abc");
    assert_string_equal(ref_snapshot_base("v1:abc", buf, sizeof buf), "v1:abc");
}

/* ---- bad input: one clear error, nothing loaded ---- */

static void test_every_bad_input_class(void **state)
{
    (void)state;
    static const struct {
        const char *name, *yaml;
        int err, line, column;
        const char *path, *needle;
    } cases[] = {
        {"bad YAML", "rules:\n- id: a\n  decision: [deny\n", CAP_EYAML, 4, 1, "", "flow sequence"},
        {"unknown top key", "version: v1\nrulez: []\n", CAP_EPOLICY, 2, 1, "rulez", "unknown key \"rulez\""},
        {"unknown rule key", "rules:\n- id: a\n  decison: deny\n", CAP_EPOLICY, 3, 3, "rules[0].decison",
         "unknown key"},
        {"unknown match key", "rules:\n- id: a\n  decision: deny\n  match: {topic: [job.x]}\n",
         CAP_EPOLICY, 4, 11, "rules[0].match.topic", "known: topics"},
        {"unknown constraint key", "rules:\n- id: a\n  decision: allow\n  constraints: {max_runtime: 5}\n",
         CAP_EPOLICY, 4, 17, "rules[0].constraints.max_runtime", "unknown key"},
        {"unknown sandbox key", "rules:\n- id: a\n  decision: allow\n  constraints: {sandbox: {net: 1}}\n",
         CAP_EPOLICY, 4, 27, "rules[0].constraints.sandbox.net", "known: isolated"},
        {"cordum-only key", "input_rules: []\n", CAP_EPOLICY, 1, 1, "input_rules", "does not evaluate"},
        {"bad decision word", "rules:\n- id: a\n  decision: alow\n", CAP_EPOLICY, 3, 13,
         "rules[0].decision", "\"alow\" is not a decision"},
        {"missing decision", "rules:\n- id: a\n  reason: x\n", CAP_EPOLICY, 2, 3, "rules[0]", "no decision"},
        {"missing id", "rules:\n- decision: deny\n", CAP_EPOLICY, 2, 3, "rules[0]", "no id"},
        {"duplicate rule id", "rules:\n- {id: a, decision: deny}\n- {id: a, decision: allow}\n",
         CAP_EPOLICY, 3, 8, "rules[1].id", "duplicate rule id \"a\" (first at line 2)"},
        {"list where a string goes", "version: [1]\n", CAP_EPOLICY, 1, 10, "version", "expected a string"},
        {"string where a list goes", "rules:\n- id: a\n  decision: deny\n  match: {topics: job.x}\n",
         CAP_EPOLICY, 4, 19, "rules[0].match.topics", "expected a sequence"},
        {"text where a number goes", "rules:\n- id: a\n  decision: allow\n  constraints: {max_retries: many}\n",
         CAP_EPOLICY, 4, 30, "rules[0].constraints.max_retries", "expected an integer"},
        {"negative budget", "rules:\n- id: a\n  decision: allow\n  constraints: {max_runtime_ms: -1}\n",
         CAP_EPOLICY, 4, 33, "rules[0].constraints.max_runtime_ms", "outside"},
        {"budget given twice", "rules:\n- id: a\n  decision: allow\n"
         "  constraints: {max_runtime_sec: 1, budgets: {max_runtime_ms: 5}}\n",
         CAP_EPOLICY, 4, 47, "rules[0].constraints.budgets.max_runtime_ms", "already set by max_runtime_sec"},
        {"bad glob", "rules:\n- id: a\n  decision: deny\n  match: {topics: ['job.[x']}\n",
         CAP_EPOLICY, 4, 20, "rules[0].match.topics[0]", "malformed"},
        {"bad actor type", "rules:\n- id: a\n  decision: deny\n  match: {actor_types: [robot]}\n",
         CAP_EPOLICY, 4, 24, "rules[0].match.actor_types", "not human or service"},
        {"bad velocity key", "rules:\n- id: a\n  decision: throttle\n"
         "  velocity: {max_requests: 1, window_seconds: 1, key: color}\n",
         CAP_EPOLICY, 4, 55, "rules[0].velocity.key", "not tenant"},
        {"velocity without window", "rules:\n- id: a\n  decision: throttle\n  velocity: {max_requests: 1}\n",
         CAP_EPOLICY, 4, 13, "rules[0].velocity", "needs max_requests and window_seconds"},
        {"duplicate tenant", "tenants: {Acme: {}, acme: {}}\n", CAP_EPOLICY, 1, 21, "tenants.acme",
         "case-insensitive"},
        {"duplicate YAML key", "version: v1\nversion: v2\n", CAP_EYAML, 2, 1, "", "duplicate key"},
        {"not a mapping", "- a\n- b\n", CAP_EPOLICY, 1, 1, "", "must be a mapping"},
        {"empty", "", CAP_EPOLICY, 0, 0, "", "empty"},
        {"empty list value", "rules:\n- id: a\n  decision: deny\n  match: {risk_tags: ['']}\n",
         CAP_EPOLICY, 4, 23, "rules[0].match.risk_tags[0]", "empty value"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ref_policy *p = (ref_policy *)1;
        cap_yaml_diag d;
        int rc = ref_policy_parse(cases[i].yaml, strlen(cases[i].yaml), &p, &d);
        if (rc != cases[i].err || p != NULL || d.line != cases[i].line ||
            d.column != cases[i].column || strcmp(d.path, cases[i].path) != 0 ||
            !strstr(d.reason, cases[i].needle)) {
            print_error("%s: got rc %d at %d:%d path \"%s\": %s\n", cases[i].name, rc, d.line,
                        d.column, d.path, d.reason);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* ---- tenants and derived rules ---- */

static void test_tenant_lists_become_rules_without_rules(void **state)
{
    (void)state;
    ref_policy *p = load("tenants:\n"
                         "  zeta: {allow_topics: [job.z.*]}\n"
                         "  Acme: {deny_topics: [job.secret.*], allow_topics: [job.*],\n"
                         "         max_concurrent_jobs: 2}\n");
    /* All deny rules first, tenants in name order. */
    assert_int_equal(p->n_rules, 3);
    assert_string_equal(p->rules[0].id, "tenant:acme:deny_topics");
    assert_string_equal(p->rules[1].id, "tenant:acme:allow_topics");
    assert_string_equal(p->rules[2].id, "tenant:zeta:allow_topics");
    assert_int_equal(p->rules[0].decision, CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY);
    assert_non_null(ref_policy_tenant(p, "ACME"));
    assert_int_equal(ref_policy_tenant(p, "acme")->max_concurrent_jobs, 2);
    assert_null(ref_policy_tenant(p, "other"));
    /* Derived rules are not part of the canonical form twice. */
    assert_null(strstr(ref_policy_canonical(p), "tenant:acme"));
    ref_policy_free(p);
}

/* ---- lint ---- */

static int has_item(const ref_lint_item *items, size_t n, const char *code, int line)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].code, code) == 0 && (!line || items[i].line == line))
            return 1;
    return 0;
}

static void test_lint_warnings(void **state)
{
    (void)state;
    ref_policy *p = load("default_decision: alow\n"                               /* 1 */
                         "rules:\n"                                               /* 2 */
                         "- id: wide\n"                                           /* 3 */
                         "  match: {topics: ['job.tools.*'], risk_tags: [a, b]}\n"
                         "  decision: deny\n"
                         "  constraints: {max_retries: 1}\n"
                         "- id: narrow\n"                                         /* 7 */
                         "  match: {topics: [job.tools.read], risk_tags: [a], labels: {x: y}}\n"
                         "  decision: allow\n"
                         "- id: other-topic\n"                                    /* 10 */
                         "  match: {topics: [job.other.*], risk_tags: [a]}\n"
                         "  decision: allow\n"
                         "- id: sys\n"                                            /* 13 */
                         "  match: {topics: ['sys.*']}\n"
                         "  decision: allow\n"
                         "- id: awc\n"                                            /* 16 */
                         "  decision: allow_with_constraints\n"
                         "  match: {tenants: [t]}\n"
                         "- id: all\n"                                            /* 19 */
                         "  decision: allow\n"
                         "- id: after\n"                                          /* 21 */
                         "  decision: deny\n"
                         "  match: {tenants: [q]}\n");
    ref_lint_item *items;
    size_t n;
    assert_int_equal(ref_policy_lint(p, &items, &n), 0);
    assert_true(has_item(items, n, "default-misspelled", 1));
    assert_true(has_item(items, n, "unused-constraints", 3));
    assert_true(has_item(items, n, "shadowed", 7));
    assert_false(has_item(items, n, "shadowed", 10));
    assert_true(has_item(items, n, "unreachable-topic", 13));
    assert_true(has_item(items, n, "empty-constraints", 16));
    assert_true(has_item(items, n, "unreachable-default", 19));
    assert_true(has_item(items, n, "shadowed", 21));
    free(items);
    ref_policy_free(p);

    p = load("rules:\n- {id: a, decision: deny, match: {labels: {k: v}}}\n");
    assert_int_equal(ref_policy_lint(p, &items, &n), 0);
    assert_int_equal(n, 0);
    free(items);
    ref_policy_free(p);

    p = load("version: v1\n");
    assert_int_equal(ref_policy_lint(p, &items, &n), 0);
    assert_true(has_item(items, n, "no-rules", 0));
    free(items);
    ref_policy_free(p);
}

static void test_velocity_rule_does_not_shadow(void **state)
{
    (void)state;
    ref_policy *p = load("rules:\n"
                         "- id: burst\n"
                         "  decision: throttle\n"
                         "  velocity: {max_requests: 10, window_seconds: 60, key: labels.user}\n"
                         "- id: rest\n"
                         "  decision: allow\n");
    ref_lint_item *items;
    size_t n;
    assert_int_equal(ref_policy_lint(p, &items, &n), 0);
    assert_false(has_item(items, n, "shadowed", 0));
    /* The catch-all after it does make the default unreachable. */
    assert_false(has_item(items, n, "unreachable-default", 2));
    assert_true(has_item(items, n, "unreachable-default", 5));
    assert_int_equal(p->rules[0].velocity.key, REF_VKEY_LABEL);
    assert_string_equal(p->rules[0].velocity.label, "user");
    free(items);
    ref_policy_free(p);
}

/* ---- globs ---- */

static void test_globs(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *name;
        int match;
    } cases[] = {
        {"job.batch.*", "job.batch.nightly", 1},
        {"job.batch.*", "job.batch.", 1},
        {"job.batch.*", "job.batch.a.b", 1},  /* '*' crosses dots */
        {"job.batch.*", "job.batchx", 0},
        {"job.*", "job/x", 0},                /* but never '/' */
        {"job.?", "job.a", 1},
        {"job.?", "job.ab", 0},
        {"job.?", "job.é", 1},                /* '?' is one character, not one byte */
        {"job.[a-c]x", "job.bx", 1},
        {"job.[^a-c]x", "job.bx", 0},
        {"job.[^a-c]x", "job.dx", 1},
        {"job.\\*", "job.*", 1},
        {"job.\\*", "job.a", 0},
        {"*.read", "job.tools.read", 1},
        {"*.read", "job.tools.write", 0},
        {"job.*.read", "job.a.b.read", 1},
        {"job.*.re*d", "job.a.reXXd", 1},
        {"job.*a", "job.aba", 1},             /* the last chunk must end the name */
        {"job.*a", "job.bab", 0},
        {"*", "", 1},
        {"", "", 1},
        {"", "x", 0},
        {"job.a]", "job.a]", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why;
        assert_int_equal(ref_glob_check(cases[i].pattern, &why), 0);
        if (ref_glob_match(cases[i].pattern, cases[i].name) != cases[i].match)
            fail_msg("%s vs %s: expected %d", cases[i].pattern, cases[i].name, cases[i].match);
    }
    const char *why;
    assert_int_equal(ref_glob_check("job.[", &why), -1);
    assert_int_equal(ref_glob_check("job.[]", &why), -1);
    assert_int_equal(ref_glob_check("job.\\", &why), -1);
    assert_int_equal(ref_glob_check("job.[a-]", &why), -1);
    assert_int_equal(ref_glob_literal_prefix("job.batch.*"), 10);
    assert_true(ref_glob_is_literal("job.x"));
    assert_false(ref_glob_is_literal("job.?"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_decision_spelling),
        cmocka_unit_test(test_allow_with_constraints_becomes_awc),
        cmocka_unit_test(test_default_decision_reading),
        cmocka_unit_test(test_constraints_all_kinds),
        cmocka_unit_test(test_max_runtime_sec_is_seconds),
        cmocka_unit_test(test_snapshot_ignores_form),
        cmocka_unit_test(test_snapshot_changes_with_meaning),
        cmocka_unit_test(test_every_bad_input_class),
        cmocka_unit_test(test_tenant_lists_become_rules_without_rules),
        cmocka_unit_test(test_lint_warnings),
        cmocka_unit_test(test_velocity_rule_does_not_shadow),
        cmocka_unit_test(test_globs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
