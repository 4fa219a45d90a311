/* Golden-trace cases (conformance/conf_golden.h): loading, diffing,
 * checking a committed case. Runs from the repository root. */
#define _DEFAULT_SOURCE /* mkdtemp, realpath */
#include "testutil.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_golden.h"
#include "sim_scenario.h"

static char tmpdir[256];
static char scenario_abs[PATH_MAX];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/capsim-golden-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    if (!realpath("conformance/cases/lifecycle-happy-path/scenario.yaml", scenario_abs))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes <tmpdir>/<id>/case.yaml with text (%s = the scenario path). */
static void write_case(const char *id, const char *fmt)
{
    char dir[400], path[450];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, id);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/case.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, fmt, scenario_abs);
    fclose(f);
}

/* A case.yaml text with the id and the scenario path filled in later. */
static void write_good(const char *id, const char *extra)
{
    char fmt[1024];
    snprintf(fmt, sizeof fmt,
             "id: %s\ntitle: a title\nclauses: [\"cap-spec 07 L47\", \"cap-spec 09 ~L31\"]\n"
             "roles: [worker, scheduler]\nscenario: %%s\nseed: 3\nwindow: 1500ms\n%s",
             id, extra);
    write_case(id, fmt);
}

static int load(const char *id, conf_golden_case **c, cap_yaml_diag *d)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, id);
    char *cp = NULL;
    int rc = conf_golden_load(dir, c, &cp, d);
    free(cp);
    return rc;
}

static void test_load_good(void **state)
{
    (void)state;
    write_good("good-case", "description: text\niut: {worker.id: w-1, scheduler.max_retries: \"2\"}\n");
    conf_golden_case *c = NULL;
    cap_yaml_diag d;
    assert_int_equal(load("good-case", &c, &d), CAP_OK);
    assert_string_equal(c->id, "good-case");
    assert_string_equal(c->title, "a title");
    assert_string_equal(c->description, "text");
    assert_int_equal(c->n_clauses, 2);
    assert_string_equal(c->clauses[1], "cap-spec 09 ~L31");
    assert_int_equal(c->roles, CONF_GOLDEN_ROLE_WORKER | CONF_GOLDEN_ROLE_SCHEDULER);
    assert_int_equal(c->seed, 3);
    assert_int_equal(c->window_ns, INT64_C(1500000000));
    assert_string_equal(c->scenario_path, scenario_abs);
    assert_true(c->dir[0] == '/');
    assert_non_null(strstr(c->golden_path, "/good-case/golden.jsonl"));
    assert_int_equal(c->n_iut, 2);
    assert_string_equal(c->iut[0].key, "worker.id");
    assert_string_equal(c->iut[0].value, "w-1");
    assert_string_equal(c->iut[1].value, "2");
    char buf[64];
    assert_string_equal(conf_golden_roles_text(c->roles, buf, sizeof buf), "worker,scheduler");
    conf_golden_free(c);
}

/* Each broken case.yaml fails with its error code, the key path and the
 * line of the offending node. */
static void test_load_errors(void **state)
{
    (void)state;
    static const struct {
        const char *id, *text, *path;
        int err, line;
    } bad[] = {
        {"no-title", "id: no-title\nclauses: [\"cap-spec 07\"]\nroles: [worker]\nscenario: %s\n"
                     "seed: 1\nwindow: 2s\n",
         "title", CAP_EINVAL, 1},
        {"bad-role", "id: bad-role\ntitle: t\nclauses: [\"cap-spec 07\"]\nroles: [worker, gateway]\n"
                     "scenario: %s\nseed: 1\nwindow: 2s\n",
         "roles[1]", CAP_EINVAL, 4},
        {"bad-window", "id: bad-window\ntitle: t\nclauses: [\"cap-spec 07\"]\nroles: [worker]\n"
                       "scenario: %s\nseed: 1\nwindow: soon\n",
         "window", CAP_EINVAL, 7},
        {"zero-window", "id: zero-window\ntitle: t\nclauses: [\"cap-spec 07\"]\nroles: [worker]\n"
                        "scenario: %s\nseed: 1\nwindow: 0s\n",
         "window", CAP_EINVAL, 7},
        {"unknown-key", "id: unknown-key\ntitle: t\nclauses: [\"cap-spec 07\"]\nroles: [worker]\n"
                        "scenario: %s\nseed: 1\nwindow: 2s\ntimeout: 3s\n",
         "timeout", CAP_EINVAL, 8},
        {"id-mismatch", "id: other\ntitle: t\nclauses: [\"cap-spec 07\"]\nroles: [worker]\n"
                        "scenario: %s\nseed: 1\nwindow: 2s\n",
         "id", CAP_EINVAL, 1},
        {"bad-clause", "id: bad-clause\ntitle: t\nclauses: [\"section seven\"]\nroles: [worker]\n"
                       "scenario: %s\nseed: 1\nwindow: 2s\n",
         "clauses[0]", CAP_EINVAL, 3},
        {"no-roles", "id: no-roles\ntitle: t\nclauses: [\"cap-spec 07\"]\nroles: []\n"
                     "scenario: %s\nseed: 1\nwindow: 2s\n",
         "roles", CAP_EINVAL, 4},
        {"bad-seed", "id: bad-seed\ntitle: t\nclauses: [\"cap-spec 07\"]\nroles: [worker]\n"
                     "scenario: %s\nseed: -1\nwindow: 2s\n",
         "seed", CAP_EYAML, 6},
        {"no-scenario-file", "id: no-scenario-file\ntitle: t\nclauses: [\"cap-spec 07\"]\n"
                             "roles: [worker]\nscenario: missing.yaml\nseed: 1\nwindow: 2s\n# %s\n",
         "scenario", CAP_EINVAL, 5},
        {"not-yaml", "id: [unclosed\n# %s\n", "", CAP_EYAML, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_case(bad[i].id, bad[i].text);
        conf_golden_case *c = NULL;
        cap_yaml_diag d;
        int rc = load(bad[i].id, &c, &d);
        if (rc != bad[i].err)
            fail_msg("%s: rc %d, want %d (%s: %s)", bad[i].id, rc, bad[i].err, d.path, d.reason);
        assert_null(c);
        if (bad[i].path[0])
            assert_string_equal(d.path, bad[i].path);
        if (bad[i].line)
            assert_int_equal(d.line, bad[i].line);
        char buf[600];
        const char *msg = cap_yaml_diag_format(&d, "case.yaml", buf, sizeof buf);
        assert_non_null(strstr(msg, "case.yaml:"));
    }
    /* a missing directory */
    conf_golden_case *c = NULL;
    cap_yaml_diag d;
    assert_int_equal(load("does-not-exist", &c, &d), CAP_EIO);
}

static void test_load_dir_sorted(void **state)
{
    (void)state;
    char sub[300];
    snprintf(sub, sizeof sub, "%s/set", tmpdir);
    mkdir(sub, 0755);
    const char *ids[] = {"zeta", "alpha", "mid-1"};
    for (size_t i = 0; i < 3; i++) {
        char dir[400], path[450];
        snprintf(dir, sizeof dir, "%s/%s", sub, ids[i]);
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/case.yaml", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f,
                "id: %s\ntitle: t\nclauses: [\"cap-spec 07\"]\nroles: [scheduler]\nscenario: %s\n"
                "seed: 1\nwindow: 2s\n",
                ids[i], scenario_abs);
        fclose(f);
    }
    /* a directory without case.yaml is not a case */
    char other[400];
    snprintf(other, sizeof other, "%s/notes", sub);
    mkdir(other, 0755);
    conf_golden_case **cs = NULL;
    size_t n = 0;
    char *bad = NULL;
    cap_yaml_diag d;
    assert_int_equal(conf_golden_load_dir(sub, &cs, &n, &bad, &d), CAP_OK);
    assert_int_equal(n, 3);
    assert_string_equal(cs[0]->id, "alpha");
    assert_string_equal(cs[1]->id, "mid-1");
    assert_string_equal(cs[2]->id, "zeta");
    assert_int_equal(cs[0]->roles, CONF_GOLDEN_ROLE_SCHEDULER);
    conf_golden_free_all(cs, n);
    /* one bad case fails the directory and names its file */
    char path[450];
    snprintf(path, sizeof path, "%s/zeta/case.yaml", sub);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "id: zeta\ntitle: t\nclauses: [\"cap-spec 07\"]\nroles: [pilot]\nscenario: %s\n"
               "seed: 1\nwindow: 2s\n", scenario_abs);
    fclose(f);
    assert_int_equal(conf_golden_load_dir(sub, &cs, &n, &bad, &d), CAP_EINVAL);
    assert_non_null(bad);
    assert_non_null(strstr(bad, "zeta/case.yaml"));
    assert_string_equal(d.path, "roles[0]");
    free(bad);
}

static conf_golden_record rec(int64_t t, const char *sender, const char *subject,
                              const char *json)
{
    conf_golden_record r;
    memset(&r, 0, sizeof r);
    r.time = t;
    r.sender = (char *)sender;
    r.subject = (char *)subject;
    r.json = (char *)json;
    r.bytes = (uint8_t *)json;
    r.len = strlen(json);
    return r;
}

static void test_diff(void **state)
{
    (void)state;
    const char *j1 = "{\"jobResult\":{\"jobId\":\"job-1\",\"status\":\"JOB_STATUS_SUCCEEDED\"}}";
    const char *j2 = "{\"jobResult\":{\"jobId\":\"job-1\",\"status\":\"JOB_STATUS_FAILED\","
                     "\"errorMessage\":\"x\"}}";
    conf_golden_record a[2] = {rec(1, "gateway", "sys.job.submit", "{\"a\":1}"),
                               rec(5, "w-1", "sys.job.result", j1)};
    conf_golden_record b[3] = {rec(1, "gateway", "sys.job.submit", "{\"a\":1}"),
                               rec(5, "w-1", "sys.job.result", j2),
                               rec(9, "w-1", "sys.heartbeat", "{}")};
    conf_golden_result r;
    memset(&r, 0, sizeof r);
    /* identical */
    assert_int_equal(conf_golden_diff(a, 2, a, 2, &r), CAP_OK);
    assert_int_equal(r.first_diff, -1);
    assert_int_equal(r.n_diffs, 0);
    /* a field changed: one diff per leaf, with the JSON path */
    assert_int_equal(conf_golden_diff(a, 2, b, 2, &r), CAP_OK);
    assert_int_equal(r.first_diff, 1);
    assert_int_equal(r.n_diffs, 2);
    assert_string_equal(r.diffs[0].path, "$.jobResult.status");
    assert_string_equal(r.diffs[0].expected, "\"JOB_STATUS_SUCCEEDED\"");
    assert_string_equal(r.diffs[0].observed, "\"JOB_STATUS_FAILED\"");
    assert_string_equal(r.diffs[1].path, "$.jobResult.errorMessage");
    assert_string_equal(r.diffs[1].expected, "absent");
    assert_string_equal(r.diffs[1].observed, "\"x\"");
    conf_golden_result_free(&r);
    /* an extra record at the end */
    assert_int_equal(conf_golden_diff(b, 2, b, 3, &r), CAP_OK);
    assert_int_equal(r.first_diff, 2);
    assert_int_equal(r.n_diffs, 1);
    assert_string_equal(r.diffs[0].path, "record");
    assert_string_equal(r.diffs[0].expected, "absent");
    conf_golden_result_free(&r);
    /* time, sender and subject */
    conf_golden_record c = rec(6, "w-2", "sys.job.progress", j1);
    assert_int_equal(conf_golden_diff(&a[1], 1, &c, 1, &r), CAP_OK);
    assert_int_equal(r.first_diff, 0);
    assert_int_equal(r.n_diffs, 3);
    assert_string_equal(r.diffs[0].path, "time");
    assert_string_equal(r.diffs[0].expected, "5");
    assert_string_equal(r.diffs[0].observed, "6");
    assert_string_equal(r.diffs[1].path, "sender");
    assert_string_equal(r.diffs[2].path, "subject");
    assert_string_equal(r.diffs[2].observed, "\"sys.job.progress\"");
    conf_golden_result_free(&r);
}

/* The scenario key the cases use for a short worker grace window. */
static void test_scenario_worker_grace(void **state)
{
    (void)state;
    char pol[PATH_MAX];
    assert_non_null(realpath("reference/policies/example.yaml", pol));
    static const struct {
        const char *value;
        int err;
        int64_t ns;
    } v[] = {{"2500ms", CAP_OK, INT64_C(2500000000)}, {"0s", CAP_OK, 0},
             {"-1s", CAP_EINVAL, 0}, {"soon", CAP_EINVAL, 0}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s/grace-%zu.yaml", tmpdir, i);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "name: g\nduration: 1s\npolicy: %s\nscheduler: {worker_grace: %s}\n", pol,
                v[i].value);
        fclose(f);
        sim_scenario *s = NULL;
        cap_yaml_diag d;
        int rc = sim_scenario_load(path, &s, &d);
        if (rc != v[i].err)
            fail_msg("worker_grace %s: rc %d (%s: %s)", v[i].value, rc, d.path, d.reason);
        if (rc == CAP_OK) {
            assert_int_equal(s->worker_grace_ns, v[i].ns);
            sim_scenario_free(s);
        } else {
            assert_string_equal(d.path, "scheduler.worker_grace");
            assert_int_equal(d.line, 4);
        }
    }
}

/* The committed case passes; its records carry labels for a report. */
static void test_check_committed_case(void **state)
{
    (void)state;
    conf_golden_case *c = NULL;
    cap_yaml_diag d;
    assert_int_equal(conf_golden_load("conformance/cases/lifecycle-happy-path", &c, NULL, &d),
                     CAP_OK);
    conf_golden_result r;
    cap_diag cd;
    assert_int_equal(conf_golden_check(c, &r, &d, &cd), CAP_OK);
    assert_int_equal(r.first_diff, -1);
    assert_true(r.n_expected > 5);
    assert_int_equal(r.n_expected, r.n_observed);
    assert_string_equal(r.expected_hash, r.observed_hash);
    int saw_result = 0;
    for (size_t i = 0; i < r.n_expected; i++)
        if (strcmp(r.expected[i].label, "JobResult SUCCEEDED job-1 attempt 1") == 0) {
            saw_result = 1;
            assert_string_equal(r.expected[i].sender, "w-1");
            assert_string_equal(r.expected[i].subject, "sys.job.result");
            assert_non_null(r.expected[i].json);
        }
    assert_true(saw_result);
    conf_golden_result_free(&r);
    conf_golden_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_good),       cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_dir_sorted), cmocka_unit_test(test_diff),
        cmocka_unit_test(test_check_committed_case), cmocka_unit_test(test_scenario_worker_grace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
