/* The adapter-v1 runner's pieces: suite loader, JSONL message codec,
 * verdict rule, report renderings, adapter spec and durations, and the
 * reference adapter's case logic. */
#include "testutil.h"

#include "cap_error.h"
#include "conf_adapter.h"
#include "conf_json.h"
#include "conf_msg.h"
#include "conf_refcases.h"
#include "conf_report.h"
#include "conf_suite.h"
#include "ref_bugs.h"

#define TCK_DIR "../shared/tck/"

/* ---- suite loader ---- */

static void suite_rejects(const char *text, const char *want)
{
    conf_suite *s = NULL;
    char err[600];
    int rc = conf_suite_parse(text, strlen(text), "s.json", &s, err, sizeof err);
    assert_int_equal(rc, CAP_EJSON);
    assert_null(s);
    assert_string_equal(err, want);
}

static void test_suite_rejections(void **state)
{
    (void)state;
    suite_rejects("{\"version\":1,\"scenarios\":[],\"extra\":1}", "s.json: unknown field \"extra\"");
    suite_rejects("{\"scenarios\":[]}", "s.json: version: missing");
    suite_rejects("{\"version\":0,\"scenarios\":[]}", "s.json: version: not an integer >= 1");
    suite_rejects("{\"version\":1.5,\"scenarios\":[]}", "s.json: version: not an integer >= 1");
    suite_rejects("{\"version\":1}", "s.json: scenarios: missing");
    suite_rejects("{\"version\":1,\"scenarios\":[{\"id\":\"\",\"role\":\"worker\",\"profile\":\"core\"}]}",
                  "s.json: scenarios[0]: empty id");
    suite_rejects("{\"version\":1,\"scenarios\":[{\"id\":\"a\",\"role\":\"gateway\",\"profile\":\"core\"}]}",
                  "s.json: scenario \"a\": role \"gateway\" is not worker or control-plane");
    suite_rejects("{\"version\":1,\"scenarios\":[{\"id\":\"a\",\"role\":\"worker\",\"profile\":\"\"}]}",
                  "s.json: scenario \"a\": empty profile");
    suite_rejects("{\"version\":1,\"scenarios\":[{\"id\":\"a\",\"role\":\"worker\",\"profile\":\"core\","
                  "\"colour\":\"red\"}]}",
                  "s.json: scenarios[0]: unknown field \"colour\"");
    suite_rejects("{\"version\":1,\"scenarios\":[{\"id\":\"a\",\"role\":\"worker\",\"profile\":\"core\"},"
                  "{\"id\":\"a\",\"role\":\"worker\",\"profile\":\"core\"}]}",
                  "s.json: duplicate scenario id \"a\"");
    suite_rejects("{\"version\":1,\"scenarios\":[{\"id\":\"a\",\"role\":\"worker\",\"profile\":\"core\","
                  "\"params\":{\"n\":1}}]}",
                  "s.json: scenario \"a\": params.n: not a string");
    suite_rejects("{\"version\":1,\"scenarios\":[{\"id\":\"a\",\"role\":\"worker\",\"profile\":\"core\","
                  "\"required\":\"yes\"}]}",
                  "s.json: scenario \"a\": required: not a boolean");
    suite_rejects("{\"version\":1,\"version\":2,\"scenarios\":[]}", "s.json: duplicate key \"version\" at $");
    suite_rejects("{\"version\":1,\"scenarios\":[]} x", "s.json: unexpected trailing data at offset 29");
    suite_rejects("[1]", "s.json: not a JSON object");
    /* An id written with escapes stays one line in the reason. */
    suite_rejects("{\"version\":1,\"scenarios\":[{\"id\":\"a\\nb\",\"role\":\"gateway\","
                  "\"profile\":\"core\"}]}",
                  "s.json: scenario \"a\\x0Ab\": role \"gateway\" is not worker or control-plane");
}

static void test_suite_sorted_and_selected(void **state)
{
    (void)state;
    const char *text = "{\"version\":1,\"scenarios\":["
                       "{\"id\":\"b\",\"role\":\"worker\",\"profile\":\"core\",\"required\":true,"
                       "\"params\":{\"z\":\"1\",\"a\":\"2\"}},"
                       "{\"id\":\"a\",\"role\":\"control-plane\",\"profile\":\"cap-production\"}]}";
    conf_suite *s = NULL;
    char err[300];
    assert_int_equal(conf_suite_parse(text, strlen(text), "x", &s, err, sizeof err), CAP_OK);
    assert_int_equal(s->n, 2);
    assert_string_equal(s->scenarios[0].id, "a");
    assert_int_equal(s->scenarios[0].required, 0);
    assert_string_equal(s->scenarios[1].id, "b");
    assert_int_equal(s->scenarios[1].required, 1);
    assert_string_equal(s->scenarios[1].params[0].key, "a");
    assert_true(conf_suite_selects(&s->scenarios[0], "cap-production"));
    assert_false(conf_suite_selects(&s->scenarios[0], "core"));
    assert_true(conf_suite_selects(&s->scenarios[0], NULL));
    conf_suite_free(s);
}

static void test_upstream_suites_load(void **state)
{
    (void)state;
    static const char *files[] = {"core-lifecycle.json", "core-cancellation.json", "core-negotiation.json",
                                  "core-malformed.json", "core-safety.json",       "core-duplicates.json",
                                  "core-retries.json"};
    static const size_t counts[] = {12, 4, 5, 10, 4, 4, 10};
    size_t total = 0;
    for (size_t i = 0; i < 7; i++) {
        char path[256];
        snprintf(path, sizeof path, TCK_DIR "%s", files[i]);
        conf_suite *s = NULL;
        char err[600];
        int rc = conf_suite_load(path, &s, err, sizeof err);
        if (rc)
            fail_msg("%s", err);
        assert_int_equal(s->n, counts[i]);
        for (size_t k = 1; k < s->n; k++)
            assert_true(strcmp(s->scenarios[k - 1].id, s->scenarios[k].id) < 0);
        total += s->n;
        conf_suite_free(s);
    }
    assert_int_equal(total, 49);
    conf_suite *s = NULL;
    char err[600];
    assert_int_equal(conf_suite_load("no/such/suite.json", &s, err, sizeof err), CAP_EIO);
    assert_non_null(strstr(err, "no/such/suite.json: cannot open"));
}

/* ---- message codec ---- */

static void msg_rejects(const char *line, const char *want)
{
    conf_msg m;
    char err[300];
    assert_int_equal(conf_msg_decode(line, strlen(line), &m, err, sizeof err), CAP_EJSON);
    if (!strstr(err, want))
        fail_msg("\"%s\": got \"%s\", want \"%s\"", line, err, want);
}

static void test_msg_rejections(void **state)
{
    (void)state;
    msg_rejects("{\"type\":\"result\",\"id\":\"a\",\"status\":\"PASS\",\"extra\":1}", "unknown field \"extra\"");
    msg_rejects("{\"type\":\"result\",\"id\":\"a\",\"id\":\"b\",\"status\":\"PASS\"}", "duplicate key \"id\"");
    msg_rejects("{\"type\":\"result\",\"id\":\"a\",\"status\":\"PASS\"} {}", "unexpected trailing data");
    msg_rejects("{\"type\":\"result\",\"id\":\"a\",\"status\":\"MAYBE\"}", "status: \"MAYBE\" is not one of");
    msg_rejects("{\"type\":\"result\",\"id\":\"a\"}", "result without status");
    msg_rejects("{\"type\":\"result\",\"id\":\"\",\"status\":\"PASS\"}", "result with an empty id");
    msg_rejects("{\"type\":\"run\",\"id\":\"\",\"scenario\":\"s\"}", "run with an empty id");
    msg_rejects("{\"type\":\"run\",\"id\":\"a\",\"scenario\":\"\"}", "run with an empty scenario");
    msg_rejects("{\"type\":\"handshake\",\"role\":\"worker\"}", "handshake without protocolVersion");
    msg_rejects("{\"type\":\"handshake\",\"protocolVersion\":1,\"role\":\"gateway\"}", "role: \"gateway\"");
    msg_rejects("{\"type\":\"handshake\",\"protocolVersion\":1.5,\"role\":\"worker\"}", "not an integer");
    msg_rejects("{\"type\":\"shout\"}", "type: \"shout\" is not one of");
    msg_rejects("{\"id\":\"x\"}", "missing field \"type\"");
    msg_rejects("{\"type\":\"result\",\"id\":\"a\",\"status\":\"PASS\",\"evidence\":{\"k\":1}}",
                "evidence.k: not a string");
    msg_rejects("not json", "invalid JSON");
    msg_rejects("[]", "not a JSON object");
    msg_rejects("{\"type\":\"run\",\"id\":\"\xff\"}", "invalid UTF-8");
    /* Nesting beyond the bound is refused before cJSON recurses. */
    char deep[200] = "{\"type\":\"hello\",\"params\":";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    msg_rejects(deep, "nested deeper than the bound");
    /* What cJSON alone would take: a raw control character in a string,
     * and \u0000, at which cJSON would cut the string. */
    msg_rejects("{\"type\":\"run\",\"id\":\"a\nb\",\"scenario\":\"s\"}",
                "unescaped control character in a string at offset 21");
    msg_rejects("{\"type\":\"run\",\"id\":\"a\\u0000b\",\"scenario\":\"s\"}",
                "\\u0000 is not allowed in a string at offset 21");
    /* A key or value quoted in the reason stays one line of valid UTF-8,
     * whatever escapes it was written with. */
    msg_rejects("{\"type\":\"hello\",\"pr\\notocol\\u001b[2J\":1}",
                "unknown field \"pr\\x0Aotocol\\x1B[2J\"");
    msg_rejects("{\"type\":\"result\",\"id\":\"a\",\"status\":\"\\r\\u007f\"}",
                "status: \"\\x0D\\x7F\" is not one of");
}

/* conf_errf: one line of valid UTF-8, cut with "..." within its buffer. */
static void test_errf_one_line(void **state)
{
    (void)state;
    char err[16];
    conf_errf(err, sizeof err, "%s", "a\tb\xc3\xa9\xff");
    assert_string_equal(err, "a\\x09b\xc3\xa9\\xFF");
    /* A multi-byte character cut by the message's own bound is escaped,
     * never left half. */
    conf_errf(err, sizeof err, "%.3s", "ab\xc3\xa9");
    assert_string_equal(err, "ab\\xC3");
    /* Too long for the buffer: cut with "...", NUL-terminated. */
    conf_errf(err, sizeof err, "%s", "0123456789abcdefghij");
    assert_string_equal(err, "0123456789ab...");
    assert_true(strlen(err) < sizeof err);
    conf_errf(err, 4, "%s", "\n\n\n");
    assert_true(strlen(err) < 4 && !strchr(err, '\n'));
}

static void test_msg_line_bound(void **state)
{
    (void)state;
    /* A result whose detail makes the line exactly the bound (with its
     * newline) is accepted; one byte more is not. */
    const char *head = "{\"type\":\"result\",\"id\":\"a\",\"status\":\"PASS\",\"detail\":\"";
    size_t fixed = strlen(head) + 2 /* "} */ + 1 /* \n */;
    size_t dl = CONF_MSG_MAX_LINE - fixed;
    char *line = malloc(CONF_MSG_MAX_LINE + 2);
    assert_non_null(line);
    strcpy(line, head);
    memset(line + strlen(head), 'd', dl);
    strcpy(line + strlen(head) + dl, "\"}\n");
    size_t len = strlen(line);
    assert_int_equal(len, CONF_MSG_MAX_LINE);
    conf_msg m;
    char err[300];
    assert_int_equal(conf_msg_decode(line, len, &m, err, sizeof err), CAP_OK);
    assert_int_equal(strlen(m.detail), dl);
    /* Re-encoding gives the same line, and one more byte is over. */
    char *enc = NULL;
    size_t el = 0;
    assert_int_equal(conf_msg_encode(&m, &enc, &el), CAP_OK);
    assert_int_equal(el, len);
    assert_memory_equal(enc, line, len);
    free(enc);
    char *grown = realloc(m.detail, dl + 2);
    assert_non_null(grown);
    m.detail = grown;
    strcat(m.detail, "d");
    assert_int_equal(conf_msg_encode(&m, &enc, &el), CAP_EINVAL);
    conf_msg_free(&m);
    memmove(line + 1, line, len + 1);
    line[0] = ' ';
    assert_int_equal(conf_msg_decode(line, len + 1, &m, err, sizeof err), CAP_EJSON);
    assert_non_null(strstr(err, "exceeds the 1048576-byte bound"));
    free(line);
}

static void test_msg_roundtrip(void **state)
{
    (void)state;
    const char *line = "{\"type\":\"handshake\",\"protocolVersion\":1,\"role\":\"worker\",\"profiles\":"
                       "[\"core\",\"cap-production\"],\"features\":[\"cancel\"],\"sdk\":\"go\",\"transport\":"
                       "\"nats\"}\n";
    conf_msg m;
    char err[300];
    assert_int_equal(conf_msg_decode(line, strlen(line), &m, err, sizeof err), CAP_OK);
    assert_int_equal(m.type, CONF_MSG_HANDSHAKE);
    assert_int_equal(m.protocol_version, 1);
    assert_int_equal(m.n_profiles, 2);
    char *enc = NULL;
    size_t len = 0;
    assert_int_equal(conf_msg_encode(&m, &enc, &len), CAP_OK);
    assert_string_equal(enc, line);
    free(enc);
    conf_msg_free(&m);
    /* A run: params sorted by key; Go-style escapes of <, >, &. */
    conf_kv params[2] = {{"a", "x<y>&z"}, {"b", "\n"}};
    conf_msg run = {0};
    run.type = CONF_MSG_RUN;
    run.id = run.scenario = "lifecycle/x";
    run.params = params;
    run.n_params = 2;
    assert_int_equal(conf_msg_encode(&run, &enc, &len), CAP_OK);
    assert_string_equal(enc, "{\"type\":\"run\",\"id\":\"lifecycle/x\",\"scenario\":\"lifecycle/x\",\"params\":"
                             "{\"a\":\"x\\u003cy\\u003e\\u0026z\",\"b\":\"\\n\"}}\n");
    free(enc);
    assert_true(conf_msg_blank(" \t\r\n", 4));
    assert_false(conf_msg_blank(" x", 2));
}

/* ---- verdict and reports ---- */

static conf_report *sample_report(void)
{
    conf_report *r = conf_report_new("ref", "core", CONF_TOOL_VERSION);
    assert_non_null(r);
    assert_int_equal(conf_report_set_handshake(r, "capsim-reference", "worker", "none"), CAP_OK);
    conf_kv ev[2] = {{"z", "1"}, {"a", "<2>"}};
    assert_int_equal(conf_report_add(r, "a/one", "core", "worker", 1, 1, CONF_ST_PASS, NULL, 3, ev, 2), CAP_OK);
    assert_int_equal(conf_report_add(r, "a/two", "core", "control-plane", 1, 0, CONF_ST_NA,
                                     "adapter role \"worker\" does not own scenario role \"control-plane\"", 0,
                                     NULL, 0),
                     CAP_OK);
    return r;
}

static void test_verdict(void **state)
{
    (void)state;
    conf_summary s;
    conf_report *r = conf_report_new("x", "core", NULL);
    conf_report_summarize(r, &s);
    assert_int_equal(s.total, 0);
    assert_false(s.conformant); /* nothing checked: not conformant */
    conf_report_add(r, "n/a", "core", "worker", 1, 0, CONF_ST_NA, "", 0, NULL, 0);
    conf_report_summarize(r, &s);
    assert_false(s.conformant); /* still zero applicable */
    conf_report_add(r, "ok", "core", "worker", 1, 1, CONF_ST_PASS, "", 0, NULL, 0);
    conf_report_summarize(r, &s);
    assert_true(s.conformant);
    conf_report_add(r, "opt", "core", "worker", 0, 1, CONF_ST_FAIL, "", 0, NULL, 0);
    conf_report_summarize(r, &s);
    assert_true(s.conformant); /* an optional case may fail */
    conf_report_add(r, "adapter-na", "core", "worker", 1, 1, CONF_ST_NA, "", 0, NULL, 0);
    conf_report_summarize(r, &s);
    assert_false(s.conformant); /* adapter-reported N/A on a required case */
    assert_int_equal(s.total, 4);
    assert_int_equal(s.na, 2);
    assert_int_equal(s.applicable, 3);
    conf_report_free(r);
    static const conf_status bad[] = {CONF_ST_FAIL, CONF_ST_ERROR, CONF_ST_UNSUPPORTED};
    for (size_t i = 0; i < 3; i++) {
        r = conf_report_new("x", "core", NULL);
        conf_report_add(r, "ok", "core", "worker", 1, 1, CONF_ST_PASS, "", 0, NULL, 0);
        conf_report_add(r, "bad", "core", "worker", 1, 1, bad[i], "", 0, NULL, 0);
        conf_report_summarize(r, &s);
        assert_false(s.conformant);
        conf_report_free(r);
    }
}

static void test_report_json_shape(void **state)
{
    (void)state;
    conf_report *r = sample_report();
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(conf_report_json(r, &out, &len), CAP_OK);
    const char *want =
        "{\n"
        "  \"adapter\": \"ref\",\n"
        "  \"sdk\": \"capsim-reference\",\n"
        "  \"role\": \"worker\",\n"
        "  \"profile\": \"core\",\n"
        "  \"transport\": \"none\",\n"
        "  \"toolVersion\": \"capsim-tck/1\",\n"
        "  \"summary\": {\n"
        "    \"total\": 2,\n"
        "    \"pass\": 1,\n"
        "    \"fail\": 0,\n"
        "    \"error\": 0,\n"
        "    \"unsupported\": 0,\n"
        "    \"na\": 1,\n"
        "    \"conformant\": true\n"
        "  },\n"
        "  \"cases\": [\n"
        "    {\n"
        "      \"id\": \"a/one\",\n"
        "      \"profile\": \"core\",\n"
        "      \"role\": \"worker\",\n"
        "      \"required\": true,\n"
        "      \"applicable\": true,\n"
        "      \"status\": \"PASS\",\n"
        "      \"durationMs\": 3,\n"
        "      \"evidence\": {\n"
        "        \"a\": \"\\u003c2\\u003e\",\n"
        "        \"z\": \"1\"\n"
        "      }\n"
        "    },\n"
        "    {\n"
        "      \"id\": \"a/two\",\n"
        "      \"profile\": \"core\",\n"
        "      \"role\": \"control-plane\",\n"
        "      \"required\": true,\n"
        "      \"applicable\": false,\n"
        "      \"status\": \"N/A\",\n"
        "      \"detail\": \"adapter role \\\"worker\\\" does not own scenario role \\\"control-plane\\\"\",\n"
        "      \"durationMs\": 0\n"
        "    }\n"
        "  ]\n"
        "}\n";
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    /* It parses back as strict JSON. */
    cJSON *j = NULL;
    char err[200];
    assert_int_equal(conf_json_parse(out, len, &j, err, sizeof err), CAP_OK);
    cJSON_Delete(j);
    free(out);
    conf_report_free(r);
    /* Empty: "cases": [] and no sdk/transport. */
    r = conf_report_new("e", "core", CONF_TOOL_VERSION);
    assert_int_equal(conf_report_json(r, &out, &len), CAP_OK);
    assert_non_null(strstr(out, "\"cases\": []\n}"));
    assert_null(strstr(out, "\"sdk\""));
    assert_non_null(strstr(out, "\"role\": \"\""));
    assert_non_null(strstr(out, "\"conformant\": false"));
    free(out);
    conf_report_free(r);
}

static void test_report_junit_and_summary(void **state)
{
    (void)state;
    conf_report *r = sample_report();
    conf_report_add(r, "a/three", "core", "worker", 1, 1, CONF_ST_ERROR, "adapter fault: \"x\" & <y>", 1500,
                    NULL, 0);
    conf_report_add(r, "a/four", "core", "worker", 1, 1, CONF_ST_UNSUPPORTED, "nope", 0, NULL, 0);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(conf_report_junit(r, &out, &len), CAP_OK);
    const char *want =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<testsuite name=\"cap-tck.core\" tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\">\n"
        "  <testcase name=\"a/one\" classname=\"core\" time=\"0.003\"></testcase>\n"
        "  <testcase name=\"a/two\" classname=\"core\" time=\"0.000\">\n"
        "    <skipped message=\"N/A\"></skipped>\n"
        "  </testcase>\n"
        "  <testcase name=\"a/three\" classname=\"core\" time=\"1.500\">\n"
        "    <error message=\"adapter fault: &#34;x&#34; &amp; &lt;y&gt;\" type=\"ERROR\"></error>\n"
        "  </testcase>\n"
        "  <testcase name=\"a/four\" classname=\"core\" time=\"0.000\">\n"
        "    <failure message=\"nope\" type=\"UNSUPPORTED\"></failure>\n"
        "  </testcase>\n"
        "</testsuite>\n";
    assert_string_equal(out, want);
    free(out);
    assert_int_equal(conf_report_summary_line(r, &out), CAP_OK);
    assert_string_equal(out, "ref [core] NON-CONFORMANT: 4 cases  pass=1 fail=0 error=1 unsupported=1 na=1\n");
    free(out);
    conf_report_free(r);
}

/* ---- adapter spec, durations ---- */

static void test_adapter_spec(void **state)
{
    (void)state;
    conf_adapter_spec s;
    char err[300];
    assert_int_equal(conf_adapter_spec_parse("go=bin/adapter|--role|worker|", &s, err, sizeof err), CAP_OK);
    assert_string_equal(s.label, "go");
    assert_int_equal(s.argc, 4);
    assert_string_equal(s.argv[0], "bin/adapter");
    assert_string_equal(s.argv[2], "worker");
    assert_string_equal(s.argv[3], "");
    assert_null(s.argv[4]);
    conf_adapter_spec_free(&s);
    assert_int_equal(conf_adapter_spec_parse("a=b c=d", &s, err, sizeof err), CAP_OK);
    assert_string_equal(s.argv[0], "b c=d"); /* no word splitting */
    conf_adapter_spec_free(&s);
    assert_int_equal(conf_adapter_spec_parse("=x", &s, err, sizeof err), CAP_EINVAL);
    conf_adapter_spec_free(&s);
    assert_int_equal(conf_adapter_spec_parse("noequals", &s, err, sizeof err), CAP_EINVAL);
    conf_adapter_spec_free(&s);
    assert_int_equal(conf_adapter_spec_parse("l=", &s, err, sizeof err), CAP_EINVAL);
    assert_non_null(strstr(err, "empty argv0"));
    conf_adapter_spec_free(&s);
    assert_int_equal(conf_adapter_spec_parse("l=|x", &s, err, sizeof err), CAP_EINVAL);
    conf_adapter_spec_free(&s);
}

static void test_durations(void **state)
{
    (void)state;
    uint64_t ms = 0;
    assert_int_equal(conf_duration_parse("30s", &ms), CAP_OK);
    assert_int_equal(ms, 30000);
    assert_int_equal(conf_duration_parse("500ms", &ms), CAP_OK);
    assert_int_equal(ms, 500);
    assert_int_equal(conf_duration_parse("5m", &ms), CAP_OK);
    assert_int_equal(ms, 300000);
    assert_int_equal(conf_duration_parse("1m30s", &ms), CAP_OK);
    assert_int_equal(ms, 90000);
    assert_int_equal(conf_duration_parse("1.5s", &ms), CAP_OK);
    assert_int_equal(ms, 1500);
    assert_int_equal(conf_duration_parse("1h", &ms), CAP_OK);
    assert_int_equal(ms, 3600000);
    assert_int_equal(conf_duration_parse("0s", &ms), CAP_EINVAL);
    assert_int_equal(conf_duration_parse("30", &ms), CAP_EINVAL);
    assert_int_equal(conf_duration_parse("s", &ms), CAP_EINVAL);
    assert_int_equal(conf_duration_parse("-1s", &ms), CAP_EINVAL);
    assert_int_equal(conf_duration_parse("10x", &ms), CAP_EINVAL);
    assert_int_equal(conf_duration_parse("", &ms), CAP_EINVAL);
    assert_int_equal(conf_duration_parse("99999999999999999999h", &ms), CAP_EINVAL);
    char buf[32];
    assert_string_equal(conf_duration_format(30000, buf, sizeof buf), "30s");
    assert_string_equal(conf_duration_format(500, buf, sizeof buf), "500ms");
    assert_string_equal(conf_duration_format(300000, buf, sizeof buf), "5m0s");
    assert_string_equal(conf_duration_format(1500, buf, sizeof buf), "1.5s");
    assert_string_equal(conf_duration_format(3600000, buf, sizeof buf), "1h0m0s");
    assert_string_equal(conf_duration_format(0, buf, sizeof buf), "0s");
}

/* ---- the reference adapter's case logic ---- */

static conf_status answer(const char *role, const char *id, conf_kv *p, size_t n, conf_ref_answer *a)
{
    conf_kv_sort(p, n);
    conf_ref_answer_case(role, id, p, n, a);
    return a->status;
}

static void test_refcases_grade_from_inputs(void **state)
{
    (void)state;
    conf_ref_answer a;
    conf_kv back[] = {{"from", "SUCCEEDED"}, {"to", "RUNNING"}, {"expect", "reject"}};
    assert_int_equal(answer("worker", "lifecycle/x", back, 3, &a), CONF_ST_PASS);
    /* A wrong expectation is a FAIL: the answer is computed, not copied. */
    conf_kv lie[] = {{"from", "SUCCEEDED"}, {"to", "RUNNING"}, {"expect", "accept"}};
    assert_int_equal(answer("worker", "lifecycle/x", lie, 3, &a), CONF_ST_FAIL);
    assert_non_null(strstr(a.detail, "computed \"reject\""));
    conf_kv neg[] = {{"cpVersions", "1,2,3"}, {"workerVersions", "2,3"}, {"expect", "2"}};
    assert_int_equal(answer("control-plane", "negotiation/v", neg, 3, &a), CONF_ST_FAIL);
    conf_kv safety[] = {{"decision", "THROTTLE"}, {"expect", "no-dispatch"}};
    assert_int_equal(answer("control-plane", "safety/t", safety, 2, &a), CONF_ST_PASS);
    ref_bug_set(REF_BUG_DISPATCH_ON_THROTTLE);
    assert_int_equal(answer("control-plane", "safety/t", safety, 2, &a), CONF_ST_FAIL);
    ref_bug_set(REF_BUG_NONE);
    conf_kv none[] = {{"x", "y"}};
    assert_int_equal(answer("worker", "mystery/case", none, 1, &a), CONF_ST_UNSUPPORTED);
    conf_kv mal[] = {{"expect", "drop"}};
    assert_int_equal(answer("worker", "malformed/oversize-map", mal, 1, &a), CONF_ST_PASS);
    ref_bug_set(REF_BUG_ACCEPT_MALFORMED);
    assert_int_equal(answer("worker", "malformed/oversize-map", mal, 1, &a), CONF_ST_FAIL);
    ref_bug_set(REF_BUG_NONE);
    assert_non_null(conf_ref_family(0, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite_rejections),
        cmocka_unit_test(test_suite_sorted_and_selected),
        cmocka_unit_test(test_upstream_suites_load),
        cmocka_unit_test(test_msg_rejections),
        cmocka_unit_test(test_errf_one_line),
        cmocka_unit_test(test_msg_line_bound),
        cmocka_unit_test(test_msg_roundtrip),
        cmocka_unit_test(test_verdict),
        cmocka_unit_test(test_report_json_shape),
        cmocka_unit_test(test_report_junit_and_summary),
        cmocka_unit_test(test_adapter_spec),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_refcases_grade_from_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
