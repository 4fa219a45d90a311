/* A job's story (sim_story): a publish is told when its packet names the
 * job, and its copies are followed by bus number; journal records of the
 * job are told with their telling members, other jobs' and malformed ones
 * not at all; timeline steps are told but not counted as the job's; bad
 * job ids are refused. */
#include "testutil.h"

#include "cap_encode.h"
#include "cap_error.h"
#include "ref_effect.h"
#include "sim_story.h"

/* The encoded bytes of a JobResult for job_id from w-1. */
static uint8_t *result_bytes(const char *job_id, size_t *len)
{
    cap_packet *p = ref_packet_new("trace-1", "w-1", 0);
    assert_non_null(p);
    Cordum__Agent__V1__JobResult *r = malloc(sizeof *r);
    assert_non_null(r);
    cordum__agent__v1__job_result__init(r);
    int ok = 1;
    r->job_id = ref_pb_strdup(job_id, &ok);
    r->worker_id = ref_pb_strdup("w-1", &ok);
    assert_true(ok);
    r->status = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_RETRYABLE;
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
    p->job_result = r;
    uint8_t *out = NULL;
    assert_int_equal(cap_encode(&p->base, &out, len), CAP_OK);
    cap_packet_free(p);
    return out;
}

/* What the story wrote to f so far (a static buffer). */
static const char *text_of(FILE *f)
{
    static char buf[8192];
    fflush(f);
    long n = ftell(f);
    assert_true(n >= 0 && (size_t)n < sizeof buf);
    rewind(f);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    return buf;
}

static void test_packets_of_the_job(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    sim_story *st;
    assert_int_equal(sim_story_new("job-7", f, &st), CAP_OK);
    size_t n;
    uint8_t *mine = result_bytes("job-7", &n);
    sim_story_publish(st, 1500000000, 41, "w-1", "sys.job.result", mine, n);
    uint8_t *other = result_bytes("job-70", &n);
    sim_story_publish(st, 1600000000, 42, "w-1", "sys.job.result", other, n);
    sim_story_publish(st, 1700000000, 43, "w-1", "sys.job.result", (const uint8_t *)"\xff\xff", 2);
    assert_true(sim_story_follows(st, 41));
    assert_false(sim_story_follows(st, 42));
    assert_false(sim_story_follows(st, 43));
    assert_int_equal(sim_story_lines(st), 1);
    const char *t = text_of(f);
    assert_non_null(strstr(t, "1.500000s"));
    assert_non_null(strstr(t, "publish"));
    assert_non_null(strstr(t, "#41 on sys.job.result: result JOB_STATUS_FAILED_RETRYABLE from w-1"));
    assert_null(strstr(t, "#42"));
    free(mine);
    free(other);
    sim_story_free(st);
    fclose(f);
}

static void test_journal_records(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    sim_story *st;
    assert_int_equal(sim_story_new("job-7", f, &st), CAP_OK);
    sim_story_journal(st, 5, "{\"k\":\"job\",\"job_id\":\"job-7\",\"ev\":\"dispatch\","
                             "\"state\":\"DISPATCHED\",\"attempt\":\"2\",\"worker\":\"w-3\","
                             "\"decision\":1,\"rule\":\"\",\"reason\":\"ok\"}");
    sim_story_journal(st, 6, "{\"k\":\"job\",\"job_id\":\"job-8\",\"state\":\"PENDING\"}");
    sim_story_journal(st, 7, "not json");
    sim_story_journal(st, 8, "{\"k\":\"saga\",\"op\":\"trigger\",\"wf\":\"wf-1\",\"job_id\":\"job-7\"}");
    assert_int_equal(sim_story_lines(st), 2);
    const char *t = text_of(f);
    assert_non_null(strstr(t, "DISPATCHED after dispatch, attempt 2, worker w-3, "
                              "decision DECISION_TYPE_ALLOW, reason ok"));
    assert_null(strstr(t, "rule")); /* an empty member says nothing */
    assert_null(strstr(t, "PENDING"));
    assert_non_null(strstr(t, "saga, op trigger, wf wf-1"));
    sim_story_free(st);
    fclose(f);
}

static void test_timeline_and_counts(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    sim_story *st;
    assert_int_equal(sim_story_new("job-7", f, &st), CAP_OK);
    sim_timeline_event e;
    memset(&e, 0, sizeof e);
    e.kind = SIM_EV_PARTITION;
    e.a = "scheduler";
    e.b = "pool:job.tools";
    sim_story_timeline(st, 20000000000, &e);
    e.kind = SIM_EV_FAULT;
    e.fault.kind = SIM_FAULT_DUPLICATE;
    e.fault.subject = "worker.*.jobs";
    e.line = 12;
    sim_story_timeline(st, 20000000000, &e);
    assert_int_equal(sim_story_lines(st), 2);
    assert_int_equal(sim_story_lines_about(st), 0);
    sim_story_say(st, 21000000000, "w-1", "handler", "runs %s", "it");
    assert_int_equal(sim_story_lines_about(st), 1);
    const char *t = text_of(f);
    assert_non_null(strstr(t, "partition scheduler from pool:job.tools"));
    assert_non_null(strstr(t, "bus fault: duplicate on worker.*.jobs (scenario line 12)"));
    assert_non_null(strstr(t, "w-1          handler   runs it"));
    sim_story_free(st);
    fclose(f);
}

static void test_bad_ids_refused(void **state)
{
    (void)state;
    sim_story *st = (sim_story *)1;
    char long_id[SIM_STORY_MAX_ID + 2];
    memset(long_id, 'j', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    assert_int_equal(sim_story_new("", stdout, &st), CAP_EINVAL);
    assert_null(st);
    assert_int_equal(sim_story_new(NULL, stdout, &st), CAP_EINVAL);
    assert_int_equal(sim_story_new("job\n1", stdout, &st), CAP_EINVAL);
    assert_int_equal(sim_story_new(long_id, stdout, &st), CAP_EINVAL);
    assert_int_equal(sim_story_new("job-1", NULL, &st), CAP_EINVAL);
    long_id[SIM_STORY_MAX_ID] = 0;
    assert_int_equal(sim_story_new(long_id, stdout, &st), CAP_OK);
    sim_story_free(st);
    /* a NULL story is a no-op everywhere */
    sim_story_say(NULL, 0, "a", "b", "c");
    assert_false(sim_story_follows(NULL, 1));
    assert_int_equal(sim_story_lines(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packets_of_the_job),
        cmocka_unit_test(test_journal_records),
        cmocka_unit_test(test_timeline_and_counts),
        cmocka_unit_test(test_bad_ids_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
