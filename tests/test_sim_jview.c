/* The journal record reader: a record in the scheduler's form gives the
 * members the checker reads; values of every length, with quotes,
 * backslashes, control characters and UTF-8 at every offset, read back as
 * written whether the single pass or the full parser takes the record;
 * duplicate members, numbers where strings are read and the reverse; and
 * anything but a JSON object is refused. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_jview.h"

static void test_scheduler_record(void **state)
{
    (void)state;
    sim_jview_reader r = {0};
    sim_jview v;
    const char *rec = "{\"k\":\"job\",\"t\":1500,\"ev\":\"dispatch\",\"job_id\":\"job-7\",\"seq\":7,"
                      "\"state\":\"DISPATCHED\",\"decision\":1,\"snapshot\":\"snap-a\","
                      "\"appr\":2,\"hash\":\"abc\",\"appr_snapshot\":\"snap-a\",\"attempt\":3,"
                      "\"wait_since\":-1,\"memo\":\"\"}";
    assert_int_equal(sim_jview_read(&r, rec, &v), 1);
    assert_string_equal(v.k, "job");
    assert_string_equal(v.ev, "dispatch");
    assert_string_equal(v.job_id, "job-7");
    assert_string_equal(v.state, "DISPATCHED");
    assert_int_equal(v.state_len, strlen("DISPATCHED"));
    assert_string_equal(v.snapshot, "snap-a");
    assert_string_equal(v.hash, "abc");
    assert_string_equal(v.appr_snapshot, "snap-a");
    assert_null(v.op);
    assert_null(v.wf);
    assert_true(v.has_decision && v.decision == 1);
    assert_true(v.has_appr && v.appr == 2);
    assert_null(v.attempt_str);
    assert_true(v.attempt_num == 3);
    /* a saga record */
    assert_int_equal(sim_jview_read(&r, "{\"k\":\"saga\",\"op\":\"trigger\",\"wf\":\"wf-1\",\"job_id\":\"j\"}", &v), 1);
    assert_string_equal(v.op, "trigger");
    assert_string_equal(v.wf, "wf-1");
    assert_null(v.state);
    assert_int_equal(v.state_len, 0);
    assert_false(v.has_decision);
    assert_true(isnan(v.attempt_num));
    sim_jview_reader_free(&r);
}

/* A job record as the scheduler writes it, with the runs of members it
 * writes as one literal (their values read as members), and with a member
 * of a run given earlier (the first counts). */
static void test_scheduler_runs(void **state)
{
    (void)state;
    sim_jview_reader r = {0};
    sim_jview v;
    const char *rec =
        "{\"k\":\"job\",\"t\":\"5\",\"ev\":\"dispatch\",\"job_id\":\"job-9\",\"seq\":3,"
        "\"state\":\"DISPATCHED\",\"decision\":1,\"snapshot\":\"s\","
        "\"max_runtime_ns\":\"0\",\"max_retries\":-1,\"max_concurrent\":0,\"throttles\":0,"
        "\"appr\":0,\"hash\":\"\",\"appr_snapshot\":\"\",\"appr_by\":\"\",\"appr_note\":\"\","
        "\"attempt\":2,\"wait_since\":\"-1\",\"waiting\":0,\"wake_at\":\"0\","
        "\"memo\":\"\",\"saga_wf\":\"\"}";
    assert_int_equal(sim_jview_read(&r, rec, &v), 1);
    assert_string_equal(v.job_id, "job-9");
    assert_true(v.has_appr && v.appr == 0);
    assert_string_equal(v.hash, "");
    assert_string_equal(v.appr_snapshot, "");
    assert_true(v.attempt_num == 2);
    assert_true(v.has_decision && v.decision == 1);
    /* hash given before the run: that one counts */
    const char *dup = "{\"hash\":\"h1\",\"appr\":\"no\","
                      "\"appr\":0,\"hash\":\"\",\"appr_snapshot\":\"\",\"appr_by\":\"\",\"appr_note\":\"\"}";
    assert_int_equal(sim_jview_read(&r, dup, &v), 1);
    assert_string_equal(v.hash, "h1");
    assert_false(v.has_appr); /* the first "appr" is a string */
    assert_string_equal(v.appr_snapshot, "");
    /* a run cut short, or followed by something else, is no record */
    assert_int_equal(sim_jview_read(&r, "{\"k\":\"job\",\"memo\":\"\",\"saga_wf\":\"\"x}", &v), 0);
    assert_int_equal(sim_jview_read(&r, "{\"k\":\"job\",\"memo\":\"\",\"saga_wf\":\"\",}", &v), 0);
    assert_int_equal(sim_jview_read(&r, "{\"k\":\"job\",\"memo\":\"\",\"saga_wf\":\"\"", &v), 0);
    sim_jview_reader_free(&r);
}

/* Writes s as a JSON string (with quotes) at out. */
static size_t json_string(char *out, const char *s)
{
    size_t n = 0;
    out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 32) {
            n += (size_t)sprintf(out + n, "\\u%04x", *p);
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n++] = '"';
    out[n] = 0;
    return n;
}

static void test_values_read_back_at_every_offset(void **state)
{
    (void)state;
    static const char *specials[] = {"\"", "\\", "\n", "\x01", "\xc3\xa9", "x"};
    sim_jview_reader r = {0};
    sim_jview v;
    char value[64], rec[1024], a[160], b[160];
    for (size_t len = 0; len <= 40; len++)
        for (size_t at = 0; at <= len; at++)
            for (size_t sp = 0; sp < sizeof specials / sizeof *specials; sp++) {
                size_t n = 0;
                for (size_t i = 0; i < len; i++)
                    value[n++] = (char)('a' + i % 26);
                value[n] = 0;
                /* the special character goes in at offset `at` */
                char tail[64];
                snprintf(tail, sizeof tail, "%s", value + at);
                snprintf(value + at, sizeof value - at, "%s%s", specials[sp], tail);
                json_string(a, value);
                json_string(b, value + len / 2);
                snprintf(rec, sizeof rec, "{\"k\":\"job\",\"memo\":%s,\"job_id\":%s,\"seq\":%zu,\"hash\":%s}",
                         b, a, len, a);
                assert_int_equal(sim_jview_read(&r, rec, &v), 1);
                assert_string_equal(v.k, "job");
                assert_string_equal(v.job_id, value);
                assert_string_equal(v.hash, value);
                /* given its length, the record reads the same */
                memset(&v, 0, sizeof v);
                assert_int_equal(sim_jview_read_n(&r, rec, strlen(rec), &v), 1);
                assert_string_equal(v.k, "job");
                assert_string_equal(v.job_id, value);
                assert_string_equal(v.hash, value);
            }
    sim_jview_reader_free(&r);
}

static void test_duplicates_and_types(void **state)
{
    (void)state;
    sim_jview_reader r = {0};
    sim_jview v;
    /* the first of duplicate members counts, both ways of reading */
    assert_int_equal(sim_jview_read(&r, "{\"job_id\":\"first\",\"job_id\":\"second\"}", &v), 1);
    assert_string_equal(v.job_id, "first");
    assert_int_equal(sim_jview_read(&r, "{\"job_id\":\"fi\\\"rst\",\"job_id\":\"second\"}", &v), 1);
    assert_string_equal(v.job_id, "fi\"rst");
    /* a number where a string is read is no string; a string where a
     * number is read is no number */
    assert_int_equal(sim_jview_read(&r, "{\"state\":5,\"decision\":\"1\",\"attempt\":\"2\"}", &v), 1);
    assert_null(v.state);
    assert_int_equal(v.state_len, 0);
    assert_false(v.has_decision);
    assert_string_equal(v.attempt_str, "2");
    assert_true(isnan(v.attempt_num));
    /* white space, fractions, nesting: not the scheduler's form, still read */
    assert_int_equal(sim_jview_read(&r, "{ \"k\" : \"job\", \"decision\": 1.5, \"x\": {\"job_id\": \"in\"} }", &v), 1);
    assert_string_equal(v.k, "job");
    assert_true(v.has_decision && v.decision == 1.5);
    assert_null(v.job_id);
    sim_jview_reader_free(&r);
}

static void test_refuses_non_objects(void **state)
{
    (void)state;
    sim_jview_reader r = {0};
    sim_jview v;
    static const char *bad[] = {"", "{", "{\"k\":\"job\"", "{\"k\":\"job\"}x", "[1,2]", "\"job\"",
                                "42", "null", "{\"k\":}", "{k:\"job\"}", "{\"k\":\"job\",}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sim_jview_read(&r, bad[i], &v), 0);
    assert_int_equal(sim_jview_read(&r, "{}", &v), 1);
    assert_null(v.k);
    sim_jview_reader_free(&r);
    sim_jview_reader_free(NULL);
}

/* What the view must hold for a line: cJSON's reading of it, member by
 * member (the documented contract of sim_jview_read). */
typedef struct {
    int ok;
    char *str[9];
    int has_decision, has_appr;
    double decision, appr, attempt_num;
    char *attempt_str;
} expected_view;

static char *opt_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void expect_from_cjson(const char *line, expected_view *e)
{
    static const char *names[9] = {"k", "job_id", "state", "ev", "snapshot", "hash",
                                   "appr_snapshot", "op", "wf"};
    memset(e, 0, sizeof *e);
    cJSON *o = cJSON_ParseWithOpts(line, NULL, 1);
    e->ok = cJSON_IsObject(o);
    if (e->ok) {
        for (int i = 0; i < 9; i++)
            e->str[i] = opt_dup(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, names[i])));
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "decision");
        if ((e->has_decision = cJSON_IsNumber(x) != 0))
            e->decision = x->valuedouble;
        x = cJSON_GetObjectItemCaseSensitive(o, "appr");
        if ((e->has_appr = cJSON_IsNumber(x) != 0))
            e->appr = x->valuedouble;
        x = cJSON_GetObjectItemCaseSensitive(o, "attempt");
        e->attempt_str = opt_dup(cJSON_IsString(x) ? x->valuestring : NULL);
        e->attempt_num = cJSON_GetNumberValue(x);
    }
    cJSON_Delete(o);
}

static void assert_same_str(const char *want, const char *got)
{
    if (!want)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

static void assert_view(const expected_view *e, int ok, const sim_jview *v)
{
    assert_int_equal(ok, e->ok);
    if (!ok)
        return;
    const char *got[9] = {v->k, v->job_id, v->state, v->ev, v->snapshot, v->hash,
                          v->appr_snapshot, v->op, v->wf};
    for (int i = 0; i < 9; i++)
        assert_same_str(e->str[i], got[i]);
    assert_int_equal(v->state_len, v->state ? strlen(v->state) : 0);
    assert_int_equal(v->has_decision, e->has_decision);
    assert_int_equal(v->has_appr, e->has_appr);
    if (e->has_decision)
        assert_true(v->decision == e->decision);
    if (e->has_appr)
        assert_true(v->appr == e->appr);
    assert_same_str(e->attempt_str, v->attempt_str);
    assert_true(isnan(e->attempt_num) ? isnan(v->attempt_num) : v->attempt_num == e->attempt_num);
}

static void expected_free(expected_view *e)
{
    for (int i = 0; i < 9; i++)
        free(e->str[i]);
    free(e->attempt_str);
}

static uint64_t rnd_state = 88172645463325252u;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Edits the NUL-terminated line of n bytes at a random place: how 0
 * deletes a byte, 1 inserts c, 2 overwrites a byte with c. The new
 * length. */
static size_t mutate_byte(char *line, size_t n, int how, char c)
{
    size_t at = (size_t)(rnd() % n);
    if (how == 0) {
        memmove(line + at, line + at + 1, n - at);
        return n - 1;
    }
    if (how == 1) {
        memmove(line + at + 1, line + at, n - at + 1);
        line[at] = c;
        return n + 1;
    }
    line[at] = c;
    return n;
}

/* Random records in (and near) the scheduler's form: the members the
 * checker reads and others, in any order, duplicated, with strings and
 * numbers of every shape; then, for most of them, one byte deleted,
 * inserted or changed. Every one reads as cJSON reads it. */
static void test_random_records_read_as_cjson_does(void **state)
{
    (void)state;
    static const char *keys[] = {"k", "job_id", "state", "ev", "snapshot", "hash",
                                 "appr_snapshot", "op", "wf", "attempt", "decision", "appr",
                                 "t", "seq", "req", "memo", "state_at", "kk", "e", "hash2",
                                 "snapshoT", "decisio", "appr_snapshots", ""};
    static const char *nums[] = {"0", "7", "-3", "123456789012345", "1234567890123456", "-0",
                                 "01", "1.5", "1e3", "-", "2", "99"};
    /* the scheduler's literal runs, without their leading ',' */
    static const char *runs[] = {
        "\"max_runtime_ns\":\"0\",\"max_retries\":-1,\"max_concurrent\":0,\"throttles\":0",
        "\"appr\":0,\"hash\":\"\",\"appr_snapshot\":\"\",\"appr_by\":\"\",\"appr_note\":\"\"",
        "\"wait_since\":\"-1\",\"waiting\":0,\"wake_at\":\"0\"",
        "\"memo\":\"\",\"saga_wf\":\"\"",
        "\"appr\":0,\"hash\":\"\",\"appr_snapshot\":\"x\",\"appr_by\":\"\",\"appr_note\":\"\"",
    };
    static const char alphabet[] = "abcXYZ09-_:{},[] #\"\\\x01\x1f\x7f\xc3\xa9";
    sim_jview_reader r = {0};
    sim_jview v;
    char line[2048];
    for (int iter = 0; iter < 40000; iter++) {
        size_t n = 0;
        line[n++] = '{';
        int members = (int)(rnd() % 8);
        for (int m = 0; m < members; m++) {
            if (m)
                line[n++] = ',';
            if (rnd() % 4 == 0) { /* a run the scheduler writes whole, maybe cut short */
                const char *run = runs[rnd() % (sizeof runs / sizeof *runs)];
                size_t len = strlen(run) - (rnd() % 3 == 0 ? rnd() % 6 : 0);
                memcpy(line + n, run, len);
                n += len;
                continue;
            }
            n += (size_t)sprintf(line + n, "\"%s\":", keys[rnd() % (sizeof keys / sizeof *keys)]);
            if (rnd() % 3 == 0) {
                n += (size_t)sprintf(line + n, "%s", nums[rnd() % (sizeof nums / sizeof *nums)]);
            } else {
                line[n++] = '"';
                int len = (int)(rnd() % 24);
                for (int i = 0; i < len; i++)
                    line[n++] = rnd() % 8 ? (char)('a' + rnd() % 26)
                                          : alphabet[rnd() % (sizeof alphabet - 1)];
                line[n++] = '"';
            }
        }
        line[n++] = '}';
        line[n] = 0;
        int mutate = (int)(rnd() % 4);
        if (mutate && n > 1)
            n = mutate_byte(line, n, mutate - 1, alphabet[rnd() % (sizeof alphabet - 1)]);
        expected_view e;
        expect_from_cjson(line, &e);
        assert_view(&e, sim_jview_read(&r, line, &v), &v);
        assert_view(&e, sim_jview_read_n(&r, line, strlen(line), &v), &v); /* the same given the length */
        expected_free(&e);
    }
    sim_jview_reader_free(&r);
}

/* Records in the job record's layout (the scheduler's member order, read
 * by names compared where they are expected): each member with its
 * default, another value of either type, or left out; members swapped,
 * repeated or added; trace_id and req at the end or not; then, for many,
 * one byte deleted, inserted or changed. Every one reads as cJSON reads
 * it, and one in the scheduler's form is read without cJSON. */
static void test_job_layout_records_read_as_cjson_does(void **state)
{
    (void)state;
    static const struct {
        const char *name, *dflt;
    } layout[] = {
        {"k", "\"job\""}, {"t", "\"15\""}, {"ev", "\"dispatch\""}, {"job_id", "\"job-7\""},
        {"seq", "\"7\""}, {"state", "\"DISPATCHED\""}, {"state_at", "\"15\""}, {"decision", "1"},
        {"rule", "\"allow\""}, {"snapshot", "\"v1:ab\""}, {"reason", "\"ok\""},
        {"max_runtime_ns", "\"0\""}, {"max_retries", "-1"}, {"max_concurrent", "0"},
        {"throttles", "0"}, {"appr", "0"}, {"hash", "\"\""}, {"appr_snapshot", "\"\""},
        {"appr_by", "\"\""}, {"appr_note", "\"\""}, {"attempt", "\"1\""},
        {"dispatch_id", "\"d1\""}, {"worker", "\"w-1\""}, {"pool", "\"p\""}, {"done", "0"},
        {"counted", "1"}, {"retries", "0"}, {"wait_since", "\"-1\""}, {"waiting", "0"},
        {"wake_at", "\"0\""}, {"watch_at", "\"0\""}, {"memo", "\"\""}, {"saga_wf", "\"\""},
        {"trace_id", "\"tr\""}, {"req", "\"Cgdq\""}};
    enum { N_LAYOUT = sizeof layout / sizeof *layout };
    static const char *others[] = {"\"\"", "\"x\"", "\"-1\"", "\"0\"", "0", "-1", "-12", "10",
                                   "2", "\"a\\\"b\"", "1.5", "01", "\"snap\"", "\"0\"x"};
    static const char alphabet[] = "abc09-_:{},[] #\"\\\x01";
    sim_jview_reader r = {0};
    sim_jview v;
    char line[4096];
    int fast_seen = 0;
    for (int iter = 0; iter < 30000; iter++) {
        size_t n = 0;
        int plain = rnd() % 4 == 0; /* exactly the scheduler's form */
        size_t count = plain ? N_LAYOUT - 2 * (rnd() % 2) : N_LAYOUT;
        line[n++] = '{';
        for (size_t i = 0; i < count; i++) {
            size_t at = i;
            if (!plain) {
                int what = (int)(rnd() % 40);
                if (what == 0)
                    continue; /* left out */
                if (what == 1 && i + 1 < count)
                    at = i + 1; /* another member where this one is expected */
                if (what == 2)
                    at = rnd() % N_LAYOUT; /* any member, maybe a repeat */
            }
            if (n > 1)
                line[n++] = ',';
            const char *val = plain || rnd() % 4 ? layout[at].dflt : others[rnd() % (sizeof others / sizeof *others)];
            n += (size_t)sprintf(line + n, "\"%s\":%s", layout[at].name, val);
        }
        line[n++] = '}';
        line[n] = 0;
        if (!plain && rnd() % 3 == 0 && n > 1) {
            char c = alphabet[rnd() % (sizeof alphabet - 1)];
            n = mutate_byte(line, n, (int)(rnd() % 3), c);
        }
        expected_view e;
        expect_from_cjson(line, &e);
        assert_view(&e, sim_jview_read_n(&r, line, strlen(line), &v), &v);
        if (plain) {
            assert_null(r.parsed); /* the scheduler's form never goes to cJSON */
            fast_seen++;
        }
        assert_view(&e, sim_jview_read(&r, line, &v), &v);
        expected_free(&e);
    }
    assert_true(fast_seen > 1000);
    /* the scheduler's form cut after each member (a default value last
     * included): read without cJSON, as cJSON reads it */
    for (size_t count = 1; count <= N_LAYOUT; count++) {
        size_t n = 0;
        line[n++] = '{';
        for (size_t i = 0; i < count; i++)
            n += (size_t)sprintf(line + n, "%s\"%s\":%s", i ? "," : "", layout[i].name,
                                 layout[i].dflt);
        line[n++] = '}';
        line[n] = 0;
        expected_view e;
        expect_from_cjson(line, &e);
        assert_view(&e, sim_jview_read_n(&r, line, n, &v), &v);
        assert_null(r.parsed);
        expected_free(&e);
    }
    sim_jview_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheduler_record),
        cmocka_unit_test(test_scheduler_runs),
        cmocka_unit_test(test_values_read_back_at_every_offset),
        cmocka_unit_test(test_duplicates_and_types),
        cmocka_unit_test(test_refuses_non_objects),
        cmocka_unit_test(test_random_records_read_as_cjson_does),
        cmocka_unit_test(test_job_layout_records_read_as_cjson_does),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
