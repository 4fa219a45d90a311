/* The trace matcher (conformance/conf_match.c): binding, per-job order,
 * time window, first-divergence text. */
#include "testutil.h"

#include "cap_decode.h"
#include "cap_encode.h"
#include "conf_match.h"
#include "ref_effect.h"

#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)
#define START (INT64_C(1700000000) * SEC)

typedef struct {
    uint8_t *b;
    size_t n;
} bytes;

static bytes enc(cap_packet *p)
{
    bytes r = {0};
    assert_int_equal(cap_encode(&p->base, &r.b, &r.n), CAP_OK);
    cap_packet_free(p);
    return r;
}

static Cordum__Agent__V1__DispatchIdentity *dispatch(const char *id, uint64_t attempt, const char *w)
{
    Cordum__Agent__V1__DispatchIdentity *d = malloc(sizeof *d);
    assert_non_null(d);
    cordum__agent__v1__dispatch_identity__init(d);
    int ok = 1;
    d->dispatch_id = ref_pb_strdup(id, &ok);
    d->attempt = attempt;
    d->assigned_worker_id = ref_pb_strdup(w, &ok);
    assert_true(ok);
    return d;
}

/* A JobRequest from sender; with did, dispatched to worker w; with wf, step
 * `step` of that workflow. */
static bytes request(const char *sender, const char *job, const char *did, const char *w,
                     const char *wf, int step)
{
    cap_packet *p = ref_packet_new("trace-1", sender, 5 * SEC);
    Cordum__Agent__V1__JobRequest *r = malloc(sizeof *r);
    assert_non_null(r);
    cordum__agent__v1__job_request__init(r);
    int ok = 1;
    r->job_id = ref_pb_strdup(job, &ok);
    r->topic = ref_pb_strdup("job.conf", &ok);
    if (wf) {
        r->workflow_id = ref_pb_strdup(wf, &ok);
        r->step_index = step;
    }
    if (did)
        r->dispatch = dispatch(did, 1, w);
    assert_true(ok);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    p->job_request = r;
    return enc(p);
}

static bytes req(const char *sender, const char *job, const char *did, const char *w)
{
    return request(sender, job, did, w, NULL, 0);
}

static bytes res(const char *sender, const char *job, int status, const char *did, int64_t exec_ms)
{
    cap_packet *p = ref_packet_new("trace-1", sender, 7 * SEC);
    Cordum__Agent__V1__JobResult *r = malloc(sizeof *r);
    assert_non_null(r);
    cordum__agent__v1__job_result__init(r);
    int ok = 1;
    r->job_id = ref_pb_strdup(job, &ok);
    r->status = (Cordum__Agent__V1__JobStatus)status;
    r->worker_id = ref_pb_strdup(sender, &ok);
    r->execution_ms = exec_ms;
    if (did)
        r->dispatch = dispatch(did, 1, sender);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
    p->job_result = r;
    return enc(p);
}

static bytes progress(const char *sender, const char *job, const char *did)
{
    cap_packet *p = ref_packet_new("trace-1", sender, 6 * SEC);
    Cordum__Agent__V1__JobProgress *r = malloc(sizeof *r);
    assert_non_null(r);
    cordum__agent__v1__job_progress__init(r);
    int ok = 1;
    r->job_id = ref_pb_strdup(job, &ok);
    r->status = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING;
    r->dispatch = dispatch(did, 1, sender);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS;
    p->job_progress = r;
    return enc(p);
}

static bytes heartbeat(const char *sender, const char *pool, int active)
{
    cap_packet *p = ref_packet_new("hb", sender, 1 * SEC);
    Cordum__Agent__V1__Heartbeat *h = malloc(sizeof *h);
    assert_non_null(h);
    cordum__agent__v1__heartbeat__init(h);
    int ok = 1;
    h->worker_id = ref_pb_strdup(sender, &ok);
    h->pool = ref_pb_strdup(pool, &ok);
    h->active_jobs = active;
    h->max_parallel_jobs = 1;
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
    p->heartbeat = h;
    return enc(p);
}

static void add(conf_match *m, int64_t t, const char *subject, const char *sender, bytes b)
{
    cap_diag d;
    assert_int_equal(conf_match_add_golden(m, t, subject, sender, b.b, b.n, &d), CAP_OK);
    free(b.b);
}

static int observe(conf_match *m, int64_t t, const char *subject, bytes b)
{
    int rc = conf_match_observe(m, t, subject, b.b, b.n);
    free(b.b);
    return rc;
}

static conf_match *new_matcher(const char *iut, int64_t window)
{
    conf_match *m = NULL;
    const char *senders[] = {iut};
    conf_match_config c = {.window_ns = window, .iut_senders = senders, .n_iut_senders = 1};
    assert_int_equal(conf_match_new(&c, &m), CAP_OK);
    return m;
}

/* Plays every due record at `now` (as the harness would) and returns how
 * many; the last rendered packet is decoded into *last when not NULL. */
static int play_due(conf_match *m, int64_t now, cap_packet **last, char *last_subject)
{
    size_t idx;
    int64_t next;
    int n = 0;
    while (conf_match_next_play(m, now, &idx, &next) == 1) {
        char *subject;
        uint8_t *b;
        size_t len;
        assert_int_equal(conf_match_render(m, idx, now, &subject, &b, &len), CAP_OK);
        if (last) {
            cap_packet_free(*last);
            cap_bounds bd = cap_bounds_default();
            cap_diag d;
            assert_int_equal(cap_packet_decode(b, len, &bd, CAP_DECODE_LENIENT, last, &d), CAP_OK);
            strcpy(last_subject, subject);
        }
        free(subject);
        free(b);
        conf_match_played(m, idx, now);
        n++;
    }
    return n;
}

/* The scheduler is under test: its dispatch id is bound on first sight and
 * substituted into the worker's result that the harness plays; a second
 * packet that disagrees with the binding diverges. */
static void test_binding_consistency(void **state)
{
    (void)state;
    conf_match *m = new_matcher("scheduler", 2 * SEC);
    add(m, 0, "sys.heartbeat", "w-1", heartbeat("w-1", "job.conf", 0));
    add(m, 500 * MS, "sys.job.submit", "gateway", req("gateway", "job-1", NULL, NULL));
    add(m, 501 * MS, "worker.w-1.jobs", "scheduler", req("scheduler", "job-1", "golden-d1", "w-1"));
    add(m, 600 * MS, "sys.job.result", "w-1", res("w-1", "job-1", 5, "golden-d1", 99));
    add(m, 601 * MS, "sys.job.dlq", "scheduler", res("scheduler", "job-1", 5, "golden-d1", 0));
    assert_int_equal(conf_match_expected_count(m), 2);
    conf_match_start(m, START);

    /* t=0: the heartbeat; t=500ms: the submission; nothing else is due */
    assert_int_equal(play_due(m, START, NULL, NULL), 1);
    assert_int_equal(play_due(m, START + 500 * MS, NULL, NULL), 1);
    assert_int_equal(play_due(m, START + 900 * MS, NULL, NULL), 0);

    /* the scheduler's own dispatch id binds */
    assert_int_equal(observe(m, START + 510 * MS, "worker.w-1.jobs", req("scheduler", "job-1", "real-77", "w-1")), 0);
    assert_string_equal(conf_match_binding(m, "golden-d1"), "real-77");
    assert_string_equal(conf_match_binding(m, "job-1"), "job-1");

    /* the played result carries the bound id, 99 ms after the dispatch was seen */
    cap_packet *p = NULL;
    char subject[256];
    assert_int_equal(play_due(m, START + 608 * MS, &p, subject), 0);
    assert_int_equal(play_due(m, START + 609 * MS, &p, subject), 1);
    assert_string_equal(subject, "sys.job.result");
    assert_string_equal(p->job_result->dispatch->dispatch_id, "real-77");
    assert_int_equal(p->created_at->seconds, 1700000000);
    cap_packet_free(p);

    /* a DLQ entry naming another dispatch id breaks the binding */
    assert_int_equal(observe(m, START + 700 * MS, "sys.job.dlq", res("scheduler", "job-1", 5, "other-1", 0)), 1);
    const char *v = conf_match_verdict(m);
    assert_non_null(v);
    assert_non_null(strstr(v, "mismatch for job job-1"));
    assert_non_null(strstr(v, "$.jobResult.dispatch.dispatchId: \"real-77\" (bound earlier, golden \"golden-d1\") → \"other-1\""));
    conf_match_free(m);
}

/* A fresh identifier may not reuse one already bound to another golden value. */
static void test_binding_is_one_to_one(void **state)
{
    (void)state;
    conf_match *m = new_matcher("scheduler", 2 * SEC);
    add(m, 0, "sys.job.submit", "gateway", req("gateway", "job-1", NULL, NULL));
    add(m, 0, "sys.job.submit", "gateway", req("gateway", "job-2", NULL, NULL));
    add(m, 1 * MS, "worker.w-1.jobs", "scheduler", req("scheduler", "job-1", "g-a", "w-1"));
    add(m, 2 * MS, "worker.w-1.jobs", "scheduler", req("scheduler", "job-2", "g-b", "w-1"));
    conf_match_start(m, START);
    assert_int_equal(play_due(m, START, NULL, NULL), 2);
    assert_int_equal(observe(m, START + 1 * MS, "worker.w-1.jobs", req("scheduler", "job-1", "same", "w-1")), 0);
    assert_int_equal(observe(m, START + 2 * MS, "worker.w-1.jobs", req("scheduler", "job-2", "same", "w-1")), 1);
    assert_non_null(strstr(conf_match_verdict(m), "already bound to golden \"g-a\""));
    conf_match_free(m);
}

/* Two independent jobs may interleave; within one job the golden order holds. */
static void test_per_job_order_with_interleaving(void **state)
{
    (void)state;
    conf_match *m = new_matcher("w-1", 2 * SEC);
    add(m, 0, "worker.w-1.jobs", "scheduler", req("scheduler", "job-a", "da", "w-1"));
    add(m, 0, "worker.w-1.jobs", "scheduler", req("scheduler", "job-b", "db", "w-1"));
    add(m, 1 * MS, "sys.job.progress", "w-1", progress("w-1", "job-a", "da"));
    add(m, 100 * MS, "sys.job.result", "w-1", res("w-1", "job-a", 5, "da", 99));
    add(m, 200 * MS, "sys.job.result", "w-1", res("w-1", "job-b", 5, "db", 200));
    conf_match_start(m, START);
    assert_int_equal(play_due(m, START, NULL, NULL), 2);
    /* job-b first, then job-a: interleaving across jobs is fine */
    assert_int_equal(observe(m, START + 190 * MS, "sys.job.result", res("w-1", "job-b", 5, "db", 3)), 0);
    assert_int_equal(observe(m, START + 195 * MS, "sys.job.progress", progress("w-1", "job-a", "da")), 0);
    assert_false(conf_match_complete(m));
    assert_int_equal(observe(m, START + 300 * MS, "sys.job.result", res("w-1", "job-a", 5, "da", 7)), 0);
    assert_true(conf_match_complete(m));
    assert_int_equal(conf_match_finish(m, START + 400 * MS), 0);
    assert_null(conf_match_verdict(m));
    conf_match_free(m);

    /* within job-a, the result may not come before its progress */
    m = new_matcher("w-1", 2 * SEC);
    add(m, 0, "worker.w-1.jobs", "scheduler", req("scheduler", "job-a", "da", "w-1"));
    add(m, 1 * MS, "sys.job.progress", "w-1", progress("w-1", "job-a", "da"));
    add(m, 100 * MS, "sys.job.result", "w-1", res("w-1", "job-a", 5, "da", 99));
    conf_match_start(m, START);
    assert_int_equal(play_due(m, START, NULL, NULL), 1);
    assert_int_equal(observe(m, START + 100 * MS, "sys.job.result", res("w-1", "job-a", 5, "da", 99)), 1);
    const char *v = conf_match_verdict(m);
    assert_non_null(strstr(v, "mismatch for job job-a: golden record 2 (JobProgress from w-1 on sys.job.progress"));
    assert_non_null(strstr(v, "    subject: \"sys.job.progress\" → \"sys.job.result\""));
    assert_non_null(strstr(v, "$.jobProgress: {"));
    assert_non_null(strstr(v, " → (absent)"));
    conf_match_free(m);
}

/* A gateway's submission of step `step` of workflow wf (on sys.job.submit),
 * or the scheduler's dispatch of it to w-1 when did is not NULL. */
static bytes wf_req(const char *sender, const char *job, const char *wf, int step, const char *did)
{
    return request(sender, job, did, "w-1", wf, step);
}

/* A workflow's next step is submitted when the previous step has ended:
 * the harness plays step 2's submission the golden gap after it observes
 * step 1's result, not at its golden time, so an implementation slower
 * than the golden run never gets step 2 while still busy with step 1. A
 * dispatch naming the same workflow and step (a compensation) keeps its
 * golden time. */
static void test_next_step_waits_for_previous_result(void **state)
{
    (void)state;
    conf_match *m = new_matcher("w-1", 2 * SEC);
    add(m, 500 * MS, "sys.job.submit", "gateway", wf_req("gateway", "wf-s1", "wf", 1, NULL));
    add(m, 501 * MS, "worker.w-1.jobs", "scheduler", wf_req("scheduler", "wf-s1", "wf", 1, "d1"));
    add(m, 602 * MS, "sys.job.result", "w-1", res("w-1", "wf-s1", 5, "d1", 100));
    add(m, 603 * MS, "sys.job.submit", "gateway", wf_req("gateway", "wf-s2", "wf", 2, NULL));
    add(m, 604 * MS, "worker.w-1.jobs", "scheduler", wf_req("scheduler", "wf-s2", "wf", 2, "d2"));
    add(m, 700 * MS, "worker.u-1.jobs", "scheduler", wf_req("scheduler", "comp-s2", "wf", 2, "c2"));
    conf_match_start(m, START);
    assert_int_equal(play_due(m, START + 500 * MS, NULL, NULL), 1); /* s1 submit */
    assert_int_equal(play_due(m, START + 501 * MS, NULL, NULL), 1); /* s1 dispatch */
    /* past step 2's golden time, step 1's result not seen yet: nothing */
    assert_int_equal(play_due(m, START + 650 * MS, NULL, NULL), 0);
    assert_int_equal(observe(m, START + 690 * MS, "sys.job.result", res("w-1", "wf-s1", 5, "d1", 180)), 0);
    /* the compensation dispatch (not a submission) is due at its golden time */
    assert_int_equal(play_due(m, START + 690 * MS, NULL, NULL), 0);
    size_t idx;
    int64_t next;
    assert_int_equal(conf_match_next_play(m, START + 690 * MS, &idx, &next), 0);
    assert_int_equal(next, START + 691 * MS); /* 1 ms after the observed result */
    assert_int_equal(play_due(m, START + 691 * MS, NULL, NULL), 1); /* s2 submit */
    assert_int_equal(play_due(m, START + 692 * MS, NULL, NULL), 1); /* s2 dispatch */
    assert_int_equal(play_due(m, START + 699 * MS, NULL, NULL), 0);
    assert_int_equal(play_due(m, START + 700 * MS, NULL, NULL), 1); /* compensation */
    conf_match_free(m);
}

/* Times: an expected packet outside the window of its due time diverges;
 * one that never comes is reported missing with what was awaited. */
static void test_time_window(void **state)
{
    (void)state;
    conf_match *m = new_matcher("w-1", 1 * SEC);
    add(m, 0, "worker.w-1.jobs", "scheduler", req("scheduler", "job-1", "d1", "w-1"));
    add(m, 100 * MS, "sys.job.result", "w-1", res("w-1", "job-1", 5, "d1", 99));
    conf_match_start(m, START);
    assert_int_equal(play_due(m, START, NULL, NULL), 1);
    /* within the window: 900 ms late is fine */
    conf_match *ok = new_matcher("w-1", 1 * SEC);
    add(ok, 0, "worker.w-1.jobs", "scheduler", req("scheduler", "job-1", "d1", "w-1"));
    add(ok, 100 * MS, "sys.job.result", "w-1", res("w-1", "job-1", 5, "d1", 99));
    conf_match_start(ok, START);
    assert_int_equal(play_due(ok, START, NULL, NULL), 1);
    assert_int_equal(observe(ok, START + 1000 * MS, "sys.job.result", res("w-1", "job-1", 5, "d1", 1)), 0);
    conf_match_free(ok);
    /* 1.4 s late is not */
    assert_int_equal(observe(m, START + 1500 * MS, "sys.job.result", res("w-1", "job-1", 5, "d1", 1)), 1);
    const char *v = conf_match_verdict(m);
    assert_non_null(strstr(v, "timing: observed at +1.500s, due at +0.100s within a window of 1.000s"));
    conf_match_free(m);

    m = new_matcher("w-1", 1 * SEC);
    add(m, 0, "worker.w-1.jobs", "scheduler", req("scheduler", "job-1", "d1", "w-1"));
    add(m, 100 * MS, "sys.job.result", "w-1", res("w-1", "job-1", 5, "d1", 99));
    conf_match_start(m, START);
    assert_int_equal(play_due(m, START, NULL, NULL), 1);
    assert_int_equal(conf_match_check_missing(m, START + 1000 * MS), 0);
    assert_int_equal(conf_match_check_missing(m, START + 1200 * MS), 1);
    v = conf_match_verdict(m);
    assert_non_null(strstr(v, "missing packet for job job-1: awaited golden record 2 (JobResult from w-1 on "
                              "sys.job.result) for 1.200s, due at +0.100s within a window of 1.000s"));
    assert_non_null(strstr(v, "expected: {"));
    conf_match_free(m);
}

/* The first divergence names the expected and observed packets and the
 * differing fields, PATH: expected → observed; free text is ignored. */
static void test_first_divergence_diff_text(void **state)
{
    (void)state;
    conf_match *m = new_matcher("w-1", 2 * SEC);
    add(m, 0, "worker.w-1.jobs", "scheduler", req("scheduler", "job-1", "d1", "w-1"));
    add(m, 100 * MS, "sys.job.result", "w-1", res("w-1", "job-1", 5, "d1", 99));
    add(m, 200 * MS, "sys.job.result", "w-1", res("w-1", "job-1", 5, "d1", 99));
    conf_match_start(m, START);
    assert_int_equal(play_due(m, START, NULL, NULL), 1);
    /* executionMs differs: ignored */
    assert_int_equal(observe(m, START + 100 * MS, "sys.job.result", res("w-1", "job-1", 5, "d1", 12345)), 0);
    /* the status differs: the divergence */
    assert_int_equal(observe(m, START + 200 * MS, "sys.job.result", res("w-1", "job-1", 6, "d1", 99)), 1);
    /* later packets change nothing */
    assert_int_equal(observe(m, START + 300 * MS, "sys.job.result", res("w-1", "job-1", 7, "d1", 99)), 1);
    const char *v = conf_match_verdict(m);
    assert_non_null(strstr(v, "mismatch for job job-1: golden record 3 (JobResult from w-1 on sys.job.result at +0.200s)"));
    assert_non_null(strstr(v, "  expected: {\"traceId\":\"trace-1\""));
    assert_non_null(strstr(v, "  observed: {\"traceId\":\"trace-1\""));
    assert_non_null(strstr(v, "differences (path: expected → observed):\n"
                              "    $.jobResult.status: \"JOB_STATUS_SUCCEEDED\" → \"JOB_STATUS_FAILED\"\n"));
    assert_null(strstr(strstr(v, "differences"), "executionMs"));
    conf_match_free(m);
}

/* Heartbeats: checked for consistency (not count), load figures ignored;
 * none at all from the IUT is missing at the end. */
static void test_heartbeats(void **state)
{
    (void)state;
    conf_match *m = new_matcher("w-1", 2 * SEC);
    add(m, 0, "sys.heartbeat", "w-1", heartbeat("w-1", "job.conf", 0));
    add(m, 1 * SEC, "sys.heartbeat", "w-1", heartbeat("w-1", "job.conf", 0));
    conf_match_start(m, START);
    assert_int_equal(conf_match_finish(m, START + 3 * SEC), 1);
    assert_non_null(strstr(conf_match_verdict(m), "missing heartbeats"));
    conf_match_free(m);

    m = new_matcher("w-1", 2 * SEC);
    add(m, 0, "sys.heartbeat", "w-1", heartbeat("w-1", "job.conf", 0));
    conf_match_start(m, START);
    for (int i = 0; i < 5; i++)
        assert_int_equal(observe(m, START + i * SEC, "sys.heartbeat", heartbeat("w-1", "job.conf", i)), 0);
    assert_int_equal(conf_match_finish(m, START + 6 * SEC), 0);
    assert_int_equal(observe(m, START + 7 * SEC, "sys.heartbeat", heartbeat("w-1", "job.other", 0)), 1);
    assert_non_null(strstr(conf_match_verdict(m), "inconsistent heartbeat"));
    assert_non_null(strstr(conf_match_verdict(m), "$.heartbeat.pool: \"job.conf\" → \"job.other\""));
    conf_match_free(m);
}

/* The activeJobs of played heartbeat idx when rendered now. */
static int played_load(conf_match *m, size_t idx, int64_t now)
{
    char *subject;
    uint8_t *b;
    size_t len;
    assert_int_equal(conf_match_render(m, idx, now, &subject, &b, &len), CAP_OK);
    cap_bounds bd = cap_bounds_default();
    cap_diag d;
    cap_packet *p = NULL;
    assert_int_equal(cap_packet_decode(b, len, &bd, CAP_DECODE_LENIENT, &p, &d), CAP_OK);
    assert_non_null(p->heartbeat);
    int n = p->heartbeat->active_jobs;
    cap_packet_free(p);
    free(subject);
    free(b);
    return n;
}

/* A heartbeat the harness plays reports the jobs its worker holds in this
 * run (from its first progress report on a job to its result), not the
 * golden figure: a scheduler that dispatches later than the golden run
 * must not hear the worker call itself busy with the job it has not yet
 * given it. A worker that holds nothing in the golden trace keeps its
 * golden figures. */
static void test_played_heartbeats_report_live_load(void **state)
{
    (void)state;
    conf_match *m = new_matcher("scheduler", 2 * SEC);
    add(m, 0, "sys.heartbeat", "w-9", heartbeat("w-9", "job.conf", 1));              /* 0 */
    add(m, 500 * MS, "sys.job.submit", "gateway", req("gateway", "j1", NULL, NULL));   /* 1 */
    add(m, 501 * MS, "worker.w-1.jobs", "scheduler", req("scheduler", "j1", "d1", "w-1"));
    add(m, 502 * MS, "sys.job.progress", "w-1", progress("w-1", "j1", "d1"));          /* 3 */
    add(m, 1 * SEC, "sys.heartbeat", "w-1", heartbeat("w-1", "job.conf", 1));          /* 4 */
    add(m, 1502 * MS, "sys.job.result", "w-1", res("w-1", "j1", 5, "d1", 1000));        /* 5 */
    add(m, 2 * SEC, "sys.heartbeat", "w-1", heartbeat("w-1", "job.conf", 0));          /* 6 */
    conf_match_start(m, START);
    assert_int_equal(played_load(m, 0, START), 1); /* w-9 holds no job: golden figure */
    assert_int_equal(play_due(m, START + 500 * MS, NULL, NULL), 2); /* w-9 hb, submit */
    /* the dispatch is late: at the heartbeat's golden time w-1 holds nothing */
    assert_int_equal(played_load(m, 4, START + 1 * SEC), 0);
    assert_int_equal(observe(m, START + 1100 * MS, "worker.w-1.jobs", req("scheduler", "j1", "d1", "w-1")), 0);
    assert_int_equal(played_load(m, 4, START + 1100 * MS), 0); /* given, not yet reported */
    assert_int_equal(play_due(m, START + 1101 * MS, NULL, NULL), 2); /* progress (and the hb) */
    assert_int_equal(played_load(m, 4, START + 1101 * MS), 1);
    assert_int_equal(played_load(m, 6, START + 1101 * MS), 1); /* busy until its result */
    assert_int_equal(play_due(m, START + 2101 * MS, NULL, NULL), 2); /* result, hb */
    assert_int_equal(played_load(m, 6, START + 2101 * MS), 0);
    conf_match_free(m);
}

/* Bytes that do not decode are a divergence naming the decoder's error. */
static void test_undecodable(void **state)
{
    (void)state;
    conf_match *m = new_matcher("w-1", 2 * SEC);
    add(m, 0, "sys.heartbeat", "w-1", heartbeat("w-1", "job.conf", 0));
    conf_match_start(m, START);
    const uint8_t junk[] = {0x0a, 0x05, 'a'};
    assert_int_equal(conf_match_observe(m, START, "sys.job.result", junk, sizeof junk), 1);
    assert_non_null(strstr(conf_match_verdict(m), "undecodable packet from the implementation on sys.job.result"));
    assert_non_null(strstr(conf_match_verdict(m), "(101)"));
    cap_diag d;
    assert_int_equal(conf_match_add_golden(m, 0, "x", "w-1", junk, sizeof junk, &d), CAP_EMALFORMED);
    conf_match_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binding_consistency),
        cmocka_unit_test(test_binding_is_one_to_one),
        cmocka_unit_test(test_per_job_order_with_interleaving),
        cmocka_unit_test(test_next_step_waits_for_previous_result),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_first_divergence_diff_text),
        cmocka_unit_test(test_heartbeats),
        cmocka_unit_test(test_played_heartbeats_report_live_load),
        cmocka_unit_test(test_undecodable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
