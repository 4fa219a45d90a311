/* The journal record reader: a record in the scheduler's form gives the
 * members the checker reads; values of every length, with quotes,
 * backslashes, control characters and UTF-8 at every offset, read back as
 * written whether the single pass or the full parser takes the record;
 * duplicate members, numbers where strings are read and the reverse; and
 * anything but a JSON object is refused. */
#include "testutil.h"

#include <math.h>

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
    assert_false(v.has_decision);
    assert_true(isnan(v.attempt_num));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheduler_record),
        cmocka_unit_test(test_values_read_back_at_every_offset),
        cmocka_unit_test(test_duplicates_and_types),
        cmocka_unit_test(test_refuses_non_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
