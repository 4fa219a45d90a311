/* The reference worker: run once, replay, fencing, cancel, heartbeats,
 * capacity, bounds, determinism. */
#include "testutil.h"

#include <inttypes.h>

#include "cap_encode.h"
#include "cap_schema.h"
#include "ref_effect.h"
#include "ref_jobstate.h"
#include "ref_worker.h"

#define SEC INT64_C(1000000000)
#define T0 (INT64_C(1704164645) * SEC)
#define HB (5 * SEC)
#define NS_PER_MS_TEST INT64_C(1000000)

/* ---- handler ------------------------------------------------------------ */

typedef struct {
    ref_work_outcome outcome;
    const char *text;
    int64_t service_ns;
    int calls;
    char last_job[64];
} fake_handler;

static void handler(void *ctx, const Cordum__Agent__V1__JobRequest *req, int64_t now,
                    ref_work *out)
{
    (void)now;
    fake_handler *h = ctx;
    h->calls++;
    snprintf(h->last_job, sizeof h->last_job, "%s", req->job_id);
    out->outcome = h->outcome;
    out->text = h->text;
    out->service_ns = h->service_ns;
}

typedef struct {
    fake_handler h;
    ref_worker *w;
    ref_effects fx;
} fixture;

static const char *caps[] = {"text", "vision"};
static const ref_worker_label labels[] = {{"region", "eu-1"}, {"tier", "gold"}};

static void setup_config(fixture *f, int32_t par, size_t max_jobs, int strict, int64_t window,
                         int no_journal)
{
    memset(f, 0, sizeof *f);
    f->h.outcome = REF_WORK_SUCCEEDED;
    f->h.text = "file:///out/1";
    f->h.service_ns = 2 * SEC;
    ref_worker_config c = {0};
    c.worker_id = "wrk-1";
    c.pool = "default";
    c.max_parallel_jobs = par;
    c.heartbeat_interval_ns = HB;
    c.max_jobs = max_jobs;
    c.capabilities = caps;
    c.n_capabilities = 2;
    c.labels = labels;
    c.n_labels = 2;
    c.strict_first_attempt = strict;
    c.done_window_ns = window;
    c.no_journal = no_journal;
    c.handler = handler;
    c.handler_ctx = &f->h;
    assert_int_equal(ref_worker_init(&c, &f->w), CAP_OK);
    assert_int_equal(ref_effects_init(&f->fx, 0), CAP_OK);
}

static void setup_window(fixture *f, int32_t par, size_t max_jobs, int strict, int64_t window)
{
    setup_config(f, par, max_jobs, strict, window, 0);
}

static void setup_with(fixture *f, int32_t par, size_t max_jobs, int strict)
{
    setup_window(f, par, max_jobs, strict, 0);
}

static void teardown(fixture *f)
{
    ref_effects_free(&f->fx);
    ref_worker_free(f->w);
}

/* ---- packets ------------------------------------------------------------ */

static char *sdup(const char *s)
{
    int ok = 1;
    char *c = ref_pb_strdup(s, &ok);
    assert_int_equal(ok, 1);
    return c;
}

static Cordum__Agent__V1__DispatchIdentity *mk_dispatch(const char *id, uint64_t attempt,
                                                       const char *worker)
{
    Cordum__Agent__V1__DispatchIdentity *d = malloc(sizeof *d);
    assert_non_null(d);
    cordum__agent__v1__dispatch_identity__init(d);
    d->dispatch_id = sdup(id);
    d->attempt = attempt;
    d->assigned_worker_id = sdup(worker);
    return d;
}

static cap_packet *mk_request(const char *job, const char *dsp, uint64_t attempt,
                              const char *worker)
{
    cap_packet *p = ref_packet_new("trace-job", "scheduler", T0);
    assert_non_null(p);
    Cordum__Agent__V1__JobRequest *r = malloc(sizeof *r);
    assert_non_null(r);
    cordum__agent__v1__job_request__init(r);
    r->job_id = sdup(job);
    r->topic = sdup("job.default");
    if (dsp)
        r->dispatch = mk_dispatch(dsp, attempt, worker);
    Cordum__Agent__V1__IdentityBinding *ib = malloc(sizeof *ib);
    assert_non_null(ib);
    cordum__agent__v1__identity_binding__init(ib);
    ib->tenant_id = sdup("tenant-a");
    ib->principal_id = sdup("alice");
    r->identity = ib;
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    p->job_request = r;
    return p;
}

static cap_packet *mk_cancel(const char *job, const char *dsp, uint64_t attempt,
                             const char *worker)
{
    cap_packet *p = ref_packet_new("trace-cancel", "scheduler", T0);
    assert_non_null(p);
    Cordum__Agent__V1__JobCancel *c = malloc(sizeof *c);
    assert_non_null(c);
    cordum__agent__v1__job_cancel__init(c);
    c->job_id = sdup(job);
    c->reason = sdup("user asked");
    if (dsp)
        c->dispatch = mk_dispatch(dsp, attempt, worker);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL;
    p->job_cancel = c;
    return p;
}

/* Clears the effects, then delivers a request on the pool subject. */
static void dispatch(fixture *f, int64_t now, const char *job, const char *dsp,
                     uint64_t attempt, const char *worker)
{
    ref_effects_clear(&f->fx);
    cap_packet *p = mk_request(job, dsp, attempt, worker);
    assert_int_equal(ref_worker_on_packet(f->w, "job.default", p, now, &f->fx), CAP_OK);
    cap_packet_free(p);
}

static void cancel(fixture *f, int64_t now, const char *job, const char *dsp, uint64_t attempt,
                   const char *worker)
{
    ref_effects_clear(&f->fx);
    cap_packet *p = mk_cancel(job, dsp, attempt, worker);
    assert_int_equal(ref_worker_on_packet(f->w, "sys.job.cancel", p, now, &f->fx), CAP_OK);
    cap_packet_free(p);
}

static void fire(fixture *f, uint64_t id, int64_t now)
{
    ref_effects_clear(&f->fx);
    assert_int_equal(ref_worker_on_timer(f->w, id, now, &f->fx), CAP_OK);
}

/* ---- effect queries ----------------------------------------------------- */

static size_t count_kind(const ref_effects *fx, ref_effect_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < ref_effects_count(fx); i++)
        n += ref_effects_at(fx, i)->kind == k;
    return n;
}

static size_t count_on(const ref_effects *fx, const char *subject)
{
    size_t n = 0;
    for (size_t i = 0; i < ref_effects_count(fx); i++) {
        const ref_effect *e = ref_effects_at(fx, i);
        n += e->kind == REF_EFFECT_PUBLISH && strcmp(e->subject, subject) == 0;
    }
    return n;
}

static const cap_packet *first_on(const ref_effects *fx, const char *subject)
{
    for (size_t i = 0; i < ref_effects_count(fx); i++) {
        const ref_effect *e = ref_effects_at(fx, i);
        if (e->kind == REF_EFFECT_PUBLISH && strcmp(e->subject, subject) == 0)
            return e->packet;
    }
    fail_msg("nothing published on %s", subject);
    return NULL;
}

/* The one completion timer set (id != heartbeat); fails if none. */
static const ref_effect *job_timer(const ref_effects *fx)
{
    for (size_t i = 0; i < ref_effects_count(fx); i++) {
        const ref_effect *e = ref_effects_at(fx, i);
        if (e->kind == REF_EFFECT_TIMER_SET && e->timer_id != REF_WORKER_TIMER_HEARTBEAT)
            return e;
    }
    fail_msg("no completion timer set");
    return NULL;
}

static int journal_has(const ref_effects *fx, const char *needle)
{
    for (size_t i = 0; i < ref_effects_count(fx); i++) {
        const ref_effect *e = ref_effects_at(fx, i);
        if (e->kind == REF_EFFECT_JOURNAL && strstr(e->record, needle))
            return 1;
    }
    return 0;
}

static const Cordum__Agent__V1__JobResult *result_of(const ref_effects *fx)
{
    const cap_packet *p = first_on(fx, REF_WORKER_SUBJECT_RESULT);
    assert_int_equal(p->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT);
    return p->job_result;
}

static uint8_t *encode(const cap_packet *p, size_t *len)
{
    uint8_t *b = NULL;
    assert_int_equal(cap_encode(&p->base, &b, len), CAP_OK);
    return b;
}

/* A journal line is the JSON the worker has always written: the values
 * escaped, the time and the attempt in decimal at their extremes. */
static void test_journal_line_text(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 1, 0, 0);
    const char *job = "j\"b\\c\n\x01";
    dispatch(&f, INT64_C(-5), job, "dsp-1", UINT64_C(18446744073709551615), "wrk-1");
    const char *want = "{\"at\":-5,\"worker\":\"wrk-1\",\"event\":\"run\","
                       "\"job_id\":\"j\\\"b\\\\c\\u000a\\u0001\",\"dispatch_id\":\"dsp-1\","
                       "\"attempt\":18446744073709551615,\"detail\":\"";
    const char *line = NULL;
    for (size_t i = 0; i < ref_effects_count(&f.fx); i++) {
        const ref_effect *e = ref_effects_at(&f.fx, i);
        if (e->kind == REF_EFFECT_JOURNAL && strstr(e->record, "\"event\":\"run\""))
            line = e->record;
    }
    assert_non_null(line);
    assert_memory_equal(line, want, strlen(want));
    size_t n = strlen(line);
    assert_true(n > strlen(want) + 2 && strcmp(line + n - 2, "\"}") == 0);
    teardown(&f);
}

/* A rejected dispatch: no handler call, nothing published, no timer, the
 * active attempt unchanged, one journal line naming the reason. */
static void assert_rejected(fixture *f, int calls_before, const char *job, uint64_t active,
                            const char *reason)
{
    assert_int_equal(f->h.calls, calls_before);
    assert_int_equal(count_kind(&f->fx, REF_EFFECT_PUBLISH), 0);
    assert_int_equal(count_kind(&f->fx, REF_EFFECT_TIMER_SET), 0);
    assert_int_equal(count_kind(&f->fx, REF_EFFECT_JOURNAL), 1);
    assert_true(journal_has(&f->fx, "\"event\":\"reject-dispatch\""));
    assert_true(journal_has(&f->fx, reason));
    assert_true(ref_worker_active_attempt(f->w, job, NULL) == active);
}

/* Runs job through to its result with the current handler settings;
 * returns the completion time. */
static int64_t run_to_end(fixture *f, int64_t now, const char *job, const char *dsp,
                          uint64_t attempt)
{
    dispatch(f, now, job, dsp, attempt, "wrk-1");
    const ref_effect *t = job_timer(&f->fx);
    uint64_t id = t->timer_id;
    int64_t at = t->at;
    fire(f, id, at);
    assert_int_equal(count_on(&f->fx, REF_WORKER_SUBJECT_RESULT), 1);
    return at;
}

/* ---- tests -------------------------------------------------------------- */

static void test_runs_once_result_at_service_time(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    dispatch(&f, T0 + SEC, "job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(f.h.calls, 1);
    assert_string_equal(f.h.last_job, "job-1");
    assert_int_equal(ref_worker_active_jobs(f.w), 1);
    /* JobProgress RUNNING at once, no result yet. */
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_PROGRESS), 1);
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_RESULT), 0);
    const cap_packet *pp = first_on(&f.fx, REF_WORKER_SUBJECT_PROGRESS);
    assert_int_equal(pp->job_progress->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING);
    assert_string_equal(pp->job_progress->job_id, "job-1");
    assert_string_equal(pp->job_progress->dispatch->dispatch_id, "dsp-1");
    assert_true(pp->job_progress->dispatch->attempt == 1);
    assert_string_equal(pp->trace_id, "trace-job");
    assert_string_equal(pp->sender_id, "wrk-1");
    const ref_effect *t = job_timer(&f.fx);
    assert_true(t->at == T0 + 3 * SEC);
    uint64_t id = t->timer_id;
    int st = 0;
    assert_true(ref_worker_active_attempt(f.w, "job-1", &st) == 1);
    assert_int_equal(st, REF_JOB_RUNNING);

    fire(&f, id, T0 + 3 * SEC);
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_RESULT), 1);
    const cap_packet *rp = first_on(&f.fx, REF_WORKER_SUBJECT_RESULT);
    const Cordum__Agent__V1__JobResult *r = rp->job_result;
    assert_int_equal(r->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED);
    assert_string_equal(r->job_id, "job-1");
    assert_string_equal(r->result_ptr, "file:///out/1");
    assert_string_equal(r->worker_id, "wrk-1");
    assert_true(r->execution_ms == 2000);
    assert_string_equal(r->dispatch->dispatch_id, "dsp-1");
    assert_string_equal(r->dispatch->assigned_worker_id, "wrk-1");
    assert_string_equal(r->identity->tenant_id, "tenant-a");
    assert_string_equal(r->identity->principal_id, "alice");
    assert_string_equal(rp->trace_id, "trace-job");
    assert_true(rp->created_at->seconds == T0 / SEC + 3);
    assert_int_equal(ref_worker_active_jobs(f.w), 0);
    assert_true(ref_worker_active_attempt(f.w, "job-1", &st) == 1);
    assert_int_equal(st, REF_JOB_SUCCEEDED);

    /* The same timer again (a driver race) does nothing. */
    fire(&f, id, T0 + 4 * SEC);
    assert_int_equal(ref_effects_count(&f.fx), 0);
    fire(&f, 999, T0 + 4 * SEC);
    assert_int_equal(ref_effects_count(&f.fx), 0);
    assert_int_equal(f.h.calls, 1);
    teardown(&f);
}

static void test_redelivery_replays_without_second_call(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    dispatch(&f, T0, "job-1", "dsp-1", 1, "wrk-1");
    uint64_t id = job_timer(&f.fx)->timer_id;
    /* A redelivery while the attempt runs: nothing, the result comes later. */
    dispatch(&f, T0 + SEC, "job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(f.h.calls, 1);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_PUBLISH), 0);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_TIMER_SET), 0);
    assert_true(journal_has(&f.fx, "duplicate-running"));

    fire(&f, id, T0 + 2 * SEC);
    size_t n1 = 0;
    uint8_t *b1 = encode(first_on(&f.fx, REF_WORKER_SUBJECT_RESULT), &n1);

    /* Two more deliveries: each replays the recorded result, byte for byte. */
    for (int i = 0; i < 2; i++) {
        dispatch(&f, T0 + (10 + i) * SEC, "job-1", "dsp-1", 1, "wrk-1");
        assert_int_equal(f.h.calls, 1);
        assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_RESULT), 1);
        assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_PROGRESS), 0);
        assert_int_equal(count_kind(&f.fx, REF_EFFECT_TIMER_SET), 0);
        assert_true(journal_has(&f.fx, "\"event\":\"replay\""));
        size_t n2 = 0;
        uint8_t *b2 = encode(first_on(&f.fx, REF_WORKER_SUBJECT_RESULT), &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(b1, b2, n1);
        free(b2);
    }
    free(b1);

    /* A distinct dispatch_id of another job is not suppressed. */
    dispatch(&f, T0 + 20 * SEC, "job-2", "dsp-2", 1, "wrk-1");
    assert_int_equal(f.h.calls, 2);
    teardown(&f);
}

static void test_fencing_rejects_stale_future_wrong_worker(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    /* Active attempt 1 fails retryably; attempt 2 is invoked exactly once
     * (retries/worker-new-attempt-invokes-once). */
    f.h.outcome = REF_WORK_FAILED_RETRYABLE;
    f.h.text = "transient";
    run_to_end(&f, T0, "job-1", "dsp-1", 1);
    f.h.outcome = REF_WORK_HANG;
    dispatch(&f, T0 + 5 * SEC, "job-1", "dsp-1", 2, "wrk-1");
    assert_int_equal(f.h.calls, 2);
    assert_true(ref_worker_active_attempt(f.w, "job-1", NULL) == 2);

    /* retries/worker-rejects-stale-attempt: attempt 1 with active 2. */
    dispatch(&f, T0 + 6 * SEC, "job-1", "dsp-1", 1, "wrk-1");
    assert_rejected(&f, 2, "job-1", 2, "stale-attempt");
    /* retries/worker-rejects-future-attempt: attempt 9 with active 2. */
    dispatch(&f, T0 + 6 * SEC, "job-1", "dsp-1", 9, "wrk-1");
    assert_rejected(&f, 2, "job-1", 2, "future-attempt");
    /* retries/worker-rejects-wrong-worker-attempt: attempt 3 for wrk-other. */
    dispatch(&f, T0 + 6 * SEC, "job-1", "dsp-1", 3, "wrk-other");
    assert_rejected(&f, 2, "job-1", 2, "wrong-worker");
    /* Same attempt, another dispatch_id: not a redelivery, not a new attempt. */
    dispatch(&f, T0 + 6 * SEC, "job-1", "dsp-x", 2, "wrk-1");
    assert_rejected(&f, 2, "job-1", 2, "dispatch-mismatch");
    /* No DispatchIdentity at all, or an empty assigned worker. */
    dispatch(&f, T0 + 6 * SEC, "job-1", NULL, 0, NULL);
    assert_rejected(&f, 2, "job-1", 2, "missing-dispatch-identity");
    dispatch(&f, T0 + 6 * SEC, "job-1", "dsp-1", 3, "");
    assert_rejected(&f, 2, "job-1", 2, "wrong-worker");
    /* The running attempt is untouched. */
    assert_int_equal(ref_worker_active_jobs(f.w), 1);
    /* And attempt 3 for us is still accepted after all those rejections. */
    f.h.outcome = REF_WORK_SUCCEEDED;
    dispatch(&f, T0 + 7 * SEC, "job-1", "dsp-3", 3, "wrk-1");
    assert_int_equal(f.h.calls, 3);
    assert_true(ref_worker_active_attempt(f.w, "job-1", NULL) == 3);
    teardown(&f);
}

static void test_retry_after_retryable_failure_runs(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 1, 16, 0);
    f.h.outcome = REF_WORK_FAILED_RETRYABLE;
    f.h.text = "disk busy";
    int64_t at = run_to_end(&f, T0, "job-1", "dsp-1", 1);
    const Cordum__Agent__V1__JobResult *r = result_of(&f.fx);
    assert_int_equal(r->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_RETRYABLE);
    assert_string_equal(r->error_message, "disk busy");
    assert_string_equal(r->result_ptr, "");

    f.h.outcome = REF_WORK_SUCCEEDED;
    f.h.text = "s3://bucket/out";
    run_to_end(&f, at + SEC, "job-1", "dsp-2", 2);
    r = result_of(&f.fx);
    assert_int_equal(r->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED);
    assert_string_equal(r->result_ptr, "s3://bucket/out");
    assert_string_equal(r->dispatch->dispatch_id, "dsp-2");
    assert_true(r->dispatch->attempt == 2);
    assert_int_equal(f.h.calls, 2);

    /* A fatal failure is reported as such. */
    f.h.outcome = REF_WORK_FAILED_FATAL;
    f.h.text = "bad input";
    run_to_end(&f, at + 10 * SEC, "job-2", "dsp-9", 1);
    r = result_of(&f.fx);
    assert_int_equal(r->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_FATAL);
    assert_string_equal(r->error_message, "bad input");
    teardown(&f);
}

static void test_newer_attempt_supersedes_running_one(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 1, 16, 0);
    f.h.service_ns = 10 * SEC;
    dispatch(&f, T0, "job-1", "dsp-1", 1, "wrk-1");
    uint64_t old = job_timer(&f.fx)->timer_id;
    f.h.service_ns = SEC;
    dispatch(&f, T0 + SEC, "job-1", "dsp-2", 2, "wrk-1");
    assert_int_equal(f.h.calls, 2);
    /* The old completion timer is cancelled; one slot is still in use. */
    int cancelled = 0;
    for (size_t i = 0; i < ref_effects_count(&f.fx); i++) {
        const ref_effect *e = ref_effects_at(&f.fx, i);
        cancelled += e->kind == REF_EFFECT_TIMER_CANCEL && e->timer_id == old;
    }
    assert_int_equal(cancelled, 1);
    assert_true(journal_has(&f.fx, "superseded"));
    assert_int_equal(ref_worker_active_jobs(f.w), 1);
    uint64_t cur = job_timer(&f.fx)->timer_id;
    fire(&f, old, T0 + 10 * SEC);
    assert_int_equal(ref_effects_count(&f.fx), 0);
    fire(&f, cur, T0 + 2 * SEC);
    assert_true(result_of(&f.fx)->dispatch->attempt == 2);
    assert_int_equal(ref_worker_active_jobs(f.w), 0);
    teardown(&f);
}

/* A crash keeps the records: the attempt that was running ends
 * FAILED_RETRYABLE without a publish, and after the restart a redelivery of
 * either job replays its recorded result instead of running the handler
 * again; a newer attempt runs. */
static void test_crash_keeps_records(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    dispatch(&f, T0, "job-1", "dsp-1", 1, "wrk-1");
    fire(&f, job_timer(&f.fx)->timer_id, T0 + 2 * SEC);
    f.h.service_ns = 60 * SEC;
    dispatch(&f, T0 + 3 * SEC, "job-2", "dsp-2", 1, "wrk-1");
    assert_int_equal(ref_worker_active_jobs(f.w), 1);
    assert_int_equal(f.h.calls, 2);

    ref_effects_clear(&f.fx);
    assert_int_equal(ref_worker_crash(f.w, T0 + 5 * SEC, &f.fx), CAP_OK);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_PUBLISH), 0);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_TIMER_CANCEL), 0);
    assert_true(journal_has(&f.fx, "\"event\":\"crash\",\"job_id\":\"job-2\""));
    assert_false(journal_has(&f.fx, "\"job_id\":\"job-1\""));
    assert_int_equal(ref_worker_active_jobs(f.w), 0);
    int st = 0;
    assert_int_equal(ref_worker_active_attempt(f.w, "job-2", &st), 1);
    assert_int_equal(st, REF_JOB_FAILED_RETRYABLE);

    ref_effects_clear(&f.fx);
    assert_int_equal(ref_worker_start(f.w, T0 + 9 * SEC, &f.fx), CAP_OK);
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_HEARTBEAT), 1);

    dispatch(&f, T0 + 10 * SEC, "job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(result_of(&f.fx)->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED);
    dispatch(&f, T0 + 11 * SEC, "job-2", "dsp-2", 1, "wrk-1");
    const Cordum__Agent__V1__JobResult *r = result_of(&f.fx);
    assert_int_equal(r->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_RETRYABLE);
    assert_string_equal(r->error_message, REF_WORKER_CRASH_TEXT);
    assert_int_equal(f.h.calls, 2); /* no handler ran again */

    dispatch(&f, T0 + 12 * SEC, "job-2", "dsp-3", 2, "wrk-1");
    assert_int_equal(f.h.calls, 3);
    assert_int_equal(ref_worker_active_jobs(f.w), 1);
    teardown(&f);
}

static void test_cancel_while_running(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    f.h.service_ns = 10 * SEC;
    dispatch(&f, T0, "job-1", "dsp-1", 1, "wrk-1");
    uint64_t id = job_timer(&f.fx)->timer_id;
    /* retries/worker-honors-active-cancel: attempt == active. */
    cancel(&f, T0 + 4 * SEC, "job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_TIMER_CANCEL), 1);
    assert_true(ref_effects_at(&f.fx, 0)->timer_id == id);
    const Cordum__Agent__V1__JobResult *r = result_of(&f.fx);
    assert_int_equal(r->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_CANCELLED);
    assert_string_equal(r->error_message, "user asked");
    assert_true(r->execution_ms == 4000);
    assert_int_equal(ref_worker_active_jobs(f.w), 0);
    int st = 0;
    ref_worker_active_attempt(f.w, "job-1", &st);
    assert_int_equal(st, REF_JOB_CANCELLED);
    /* The cancelled timer firing anyway changes nothing. */
    fire(&f, id, T0 + 10 * SEC);
    assert_int_equal(ref_effects_count(&f.fx), 0);
    /* A redelivery replays CANCELLED. */
    dispatch(&f, T0 + 11 * SEC, "job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(result_of(&f.fx)->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_CANCELLED);
    assert_int_equal(f.h.calls, 1);

    /* A hung job ends only by cancel; a cancel without dispatch identity
     * (core profile) targets the active attempt. */
    f.h.outcome = REF_WORK_HANG;
    dispatch(&f, T0 + 12 * SEC, "job-2", "dsp-2", 1, "wrk-1");
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_TIMER_SET), 0);
    assert_int_equal(ref_worker_active_jobs(f.w), 1);
    cancel(&f, T0 + 20 * SEC, "job-2", NULL, 0, NULL);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_TIMER_CANCEL), 0);
    assert_int_equal(result_of(&f.fx)->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_CANCELLED);
    assert_int_equal(ref_worker_active_jobs(f.w), 0);
    teardown(&f);
}

static void test_cancel_after_finish_ignored(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    int64_t at = run_to_end(&f, T0, "job-1", "dsp-1", 1);
    cancel(&f, at + SEC, "job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_PUBLISH), 0);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_TIMER_CANCEL), 0);
    assert_true(journal_has(&f.fx, "already finished"));
    int st = 0;
    ref_worker_active_attempt(f.w, "job-1", &st);
    assert_int_equal(st, REF_JOB_SUCCEEDED);
    /* A cancel for an unknown job is ignored too. */
    cancel(&f, at + SEC, "job-404", "dsp-1", 1, "wrk-1");
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_PUBLISH), 0);
    assert_true(journal_has(&f.fx, "unknown job"));
    /* The replay is still SUCCEEDED. */
    dispatch(&f, at + 2 * SEC, "job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(result_of(&f.fx)->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED);
    teardown(&f);
}

static void test_stale_cancel_ignored(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    f.h.outcome = REF_WORK_FAILED_RETRYABLE;
    run_to_end(&f, T0, "job-1", "dsp-1", 1);
    f.h.outcome = REF_WORK_SUCCEEDED;
    f.h.service_ns = 10 * SEC;
    dispatch(&f, T0 + 5 * SEC, "job-1", "dsp-2", 2, "wrk-1");
    uint64_t id = job_timer(&f.fx)->timer_id;

    /* retries/worker-rejects-stale-cancel: attempt 1 with active 2. */
    cancel(&f, T0 + 6 * SEC, "job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_PUBLISH), 0);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_TIMER_CANCEL), 0);
    assert_true(journal_has(&f.fx, "stale-attempt"));
    /* retries/worker-rejects-wrong-worker-cancel. */
    cancel(&f, T0 + 6 * SEC, "job-1", "dsp-2", 2, "wrk-other");
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_PUBLISH), 0);
    assert_true(journal_has(&f.fx, "wrong-worker"));
    /* Right attempt, wrong dispatch_id; and a future attempt. */
    cancel(&f, T0 + 6 * SEC, "job-1", "dsp-1", 2, "wrk-1");
    assert_true(journal_has(&f.fx, "dispatch-mismatch"));
    cancel(&f, T0 + 6 * SEC, "job-1", "dsp-2", 3, "wrk-1");
    assert_true(journal_has(&f.fx, "future-attempt"));
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_PUBLISH), 0);
    assert_int_equal(ref_worker_active_jobs(f.w), 1);

    /* The attempt runs on to its own result. */
    fire(&f, id, T0 + 15 * SEC);
    assert_int_equal(result_of(&f.fx)->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED);
    teardown(&f);
}

static void assert_heartbeat(const ref_effects *fx, int64_t at, int32_t active, int32_t pct)
{
    assert_int_equal(count_on(fx, REF_WORKER_SUBJECT_HEARTBEAT), 1);
    const cap_packet *p = first_on(fx, REF_WORKER_SUBJECT_HEARTBEAT);
    const Cordum__Agent__V1__Heartbeat *hb = p->heartbeat;
    assert_int_equal(p->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT);
    assert_true(p->created_at->seconds == at / SEC);
    assert_string_equal(hb->worker_id, "wrk-1");
    assert_string_equal(hb->pool, "default");
    assert_int_equal(hb->active_jobs, active);
    assert_int_equal(hb->max_parallel_jobs, 2);
    assert_int_equal(hb->progress_pct, pct);
    assert_int_equal(hb->n_capabilities, 2);
    assert_string_equal(hb->capabilities[0], "text");
    assert_string_equal(hb->capabilities[1], "vision");
    assert_int_equal(hb->n_labels, 2);
    assert_string_equal(hb->labels[0]->key, "region");
    assert_string_equal(hb->labels[0]->value, "eu-1");
    assert_string_equal(hb->labels[1]->key, "tier");
    assert_string_equal(hb->auth_token, "");
    /* The next heartbeat is armed one interval later. */
    int armed = 0;
    for (size_t i = 0; i < ref_effects_count(fx); i++) {
        const ref_effect *e = ref_effects_at(fx, i);
        if (e->kind == REF_EFFECT_TIMER_SET && e->timer_id == REF_WORKER_TIMER_HEARTBEAT) {
            assert_true(e->at == at + HB);
            armed++;
        }
    }
    assert_int_equal(armed, 1);
}

static void test_heartbeats_every_interval(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    assert_int_equal(ref_worker_start(f.w, T0, &f.fx), CAP_OK);
    assert_heartbeat(&f.fx, T0, 0, 0);
    assert_string_equal(first_on(&f.fx, REF_WORKER_SUBJECT_HEARTBEAT)->heartbeat->last_memo, "");
    /* Idle: one heartbeat at every interval. */
    for (int k = 1; k <= 4; k++) {
        fire(&f, REF_WORKER_TIMER_HEARTBEAT, T0 + k * HB);
        assert_heartbeat(&f.fx, T0 + k * HB, 0, 0);
    }
    /* Busy: a job half done shows in active_jobs and progress_pct. */
    f.h.service_ns = 4 * SEC;
    dispatch(&f, T0 + 4 * HB + SEC, "job-1", "dsp-1", 1, "wrk-1");
    uint64_t id = job_timer(&f.fx)->timer_id;
    fire(&f, REF_WORKER_TIMER_HEARTBEAT, T0 + 4 * HB + 3 * SEC);
    assert_heartbeat(&f.fx, T0 + 4 * HB + 3 * SEC, 1, 50);
    assert_string_equal(first_on(&f.fx, REF_WORKER_SUBJECT_HEARTBEAT)->heartbeat->last_memo,
                        "started job-1");
    fire(&f, id, T0 + 4 * HB + 5 * SEC);
    fire(&f, REF_WORKER_TIMER_HEARTBEAT, T0 + 6 * HB);
    assert_heartbeat(&f.fx, T0 + 6 * HB, 0, 0);
    assert_string_equal(first_on(&f.fx, REF_WORKER_SUBJECT_HEARTBEAT)->heartbeat->last_memo,
                        "SUCCEEDED job-1");
    /* A long job id: the memo is cut at 159 bytes, as snprintf would cut it. */
    char long_id[201], want[160];
    memset(long_id, 'j', 200);
    long_id[200] = 0;
    memcpy(want, "started ", 8);
    memset(want + 8, 'j', 151);
    want[159] = 0;
    dispatch(&f, T0 + 6 * HB + SEC, long_id, "dsp-2", 1, "wrk-1");
    fire(&f, REF_WORKER_TIMER_HEARTBEAT, T0 + 7 * HB);
    assert_string_equal(first_on(&f.fx, REF_WORKER_SUBJECT_HEARTBEAT)->heartbeat->last_memo, want);
    teardown(&f);
}

/* The heartbeat's progress_pct is the mean over the attempts still
 * running, whatever the finished records kept beside them: checked against
 * a model through starts, completions, cancels, supersedes, hangs, record
 * reuse and table growth. */
typedef struct {
    char job[16];
    uint64_t attempt;
    int running, hang;
    int64_t start, service;
    uint64_t timer;
} model_job;

static int32_t model_pct(const model_job *m, size_t n, int64_t now)
{
    int64_t sum = 0;
    int live = 0;
    for (size_t i = 0; i < n; i++) {
        if (!m[i].running)
            continue;
        live++;
        if (m[i].hang)
            continue;
        int64_t el = now - m[i].start, pct = 100;
        if (m[i].service > 0)
            pct = el >= m[i].service ? 100
                                     : (int64_t)((double)el * 100.0 / (double)m[i].service);
        sum += pct;
    }
    return live ? (int32_t)(sum / live) : 0;
}

static void test_progress_over_running_attempts(void **state)
{
    (void)state;
    enum { PAR = 6, JOBS = 1000 };
    fixture f;
    setup_window(&f, PAR, 40, 0, 30 * SEC);
    static model_job m[JOBS];
    memset(m, 0, sizeof m);
    size_t n = 0;
    int running = 0;
    uint64_t x = 12345;
    int64_t now = T0;
    for (int step = 0; step < 3000; step++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned r = (unsigned)(x >> 33);
        now += (int64_t)(r % 300) * NS_PER_MS_TEST;
        size_t pick = n ? (r >> 8) % n : 0;
        char dsp[32];
        if ((r % 3 == 0 || running == 0) && running < PAR && n < JOBS) { /* a new job */
            model_job *j = &m[n++];
            snprintf(j->job, sizeof j->job, "job-%zu", n);
            j->attempt = 1;
            j->hang = (r >> 4) % 7 == 0;
            j->service = (int64_t)((r >> 12) % 5000) * NS_PER_MS_TEST;
            f.h.outcome = j->hang ? REF_WORK_HANG : REF_WORK_SUCCEEDED;
            f.h.service_ns = j->service;
            snprintf(dsp, sizeof dsp, "%s-a1", j->job);
            dispatch(&f, now, j->job, dsp, 1, "wrk-1");
            j->start = now;
            j->running = 1;
            j->timer = j->hang ? 0 : job_timer(&f.fx)->timer_id;
            running++;
        } else if (m[pick].running && r % 4 == 1 && !m[pick].hang) { /* completes */
            fire(&f, m[pick].timer, now);
            assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_RESULT), 1);
            m[pick].running = 0;
            running--;
        } else if (m[pick].running && r % 4 == 2) { /* cancelled */
            snprintf(dsp, sizeof dsp, "%s-a%llu", m[pick].job, (unsigned long long)m[pick].attempt);
            cancel(&f, now, m[pick].job, dsp, m[pick].attempt, "wrk-1");
            assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_RESULT), 1);
            m[pick].running = 0;
            running--;
        } else if (m[pick].running && r % 4 == 3) { /* a newer attempt supersedes */
            model_job *j = &m[pick];
            j->attempt++;
            j->hang = 0;
            j->service = (int64_t)((r >> 12) % 3000) * NS_PER_MS_TEST;
            f.h.outcome = REF_WORK_SUCCEEDED;
            f.h.service_ns = j->service;
            snprintf(dsp, sizeof dsp, "%s-a%llu", j->job, (unsigned long long)j->attempt);
            dispatch(&f, now, j->job, dsp, j->attempt, "wrk-1");
            j->start = now;
            j->timer = job_timer(&f.fx)->timer_id;
        }
        assert_int_equal(ref_worker_active_jobs(f.w), running);
        fire(&f, REF_WORKER_TIMER_HEARTBEAT, now);
        const Cordum__Agent__V1__Heartbeat *hb =
            first_on(&f.fx, REF_WORKER_SUBJECT_HEARTBEAT)->heartbeat;
        assert_int_equal(hb->active_jobs, running);
        assert_int_equal(hb->progress_pct, model_pct(m, n, now));
    }
    assert_true(n > 100);                            /* records were reused */
    assert_true(ref_worker_tracked_jobs(f.w) > 16);  /* the table grew */
    assert_true(ref_worker_tracked_jobs(f.w) <= 40); /* within the bound */
    teardown(&f);
}

static void test_max_parallel_jobs(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    f.h.service_ns = 10 * SEC;
    dispatch(&f, T0, "job-1", "dsp-1", 1, "wrk-1");
    uint64_t id1 = job_timer(&f.fx)->timer_id;
    dispatch(&f, T0, "job-2", "dsp-2", 1, "wrk-1");
    assert_int_equal(ref_worker_active_jobs(f.w), 2);
    /* A third job while both slots are busy: refused without a handler call. */
    dispatch(&f, T0 + SEC, "job-3", "dsp-3", 1, "wrk-1");
    assert_int_equal(f.h.calls, 2);
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_PROGRESS), 0);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_TIMER_SET), 0);
    const Cordum__Agent__V1__JobResult *r = result_of(&f.fx);
    assert_int_equal(r->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_RETRYABLE);
    assert_int_equal(r->error_code_enum,
                     CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_RESOURCE_EXHAUSTED);
    assert_int_equal(r->error_code_enum, 201);
    assert_string_equal(r->error_code, "ERROR_CODE_JOB_RESOURCE_EXHAUSTED");
    assert_int_equal(ref_worker_active_jobs(f.w), 2);
    /* Its redelivery replays the refusal, still without a handler call. */
    dispatch(&f, T0 + 2 * SEC, "job-3", "dsp-3", 1, "wrk-1");
    assert_int_equal(f.h.calls, 2);
    assert_int_equal(result_of(&f.fx)->error_code_enum, 201);
    /* A slot frees up; the retry (attempt 2) runs. */
    fire(&f, id1, T0 + 10 * SEC);
    dispatch(&f, T0 + 11 * SEC, "job-3", "dsp-4", 2, "wrk-1");
    assert_int_equal(f.h.calls, 3);
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_PROGRESS), 1);
    assert_int_equal(ref_worker_active_jobs(f.w), 2);
    teardown(&f);
}

static void test_bounds_evict_oldest_finished(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 3, 0);
    /* j1 long, j2 short: j2 finishes first although j1 arrived first. */
    f.h.service_ns = 10 * SEC;
    dispatch(&f, T0, "j1", "d1", 1, "wrk-1");
    uint64_t t1 = job_timer(&f.fx)->timer_id;
    f.h.service_ns = SEC;
    run_to_end(&f, T0, "j2", "d2", 1);
    run_to_end(&f, T0 + 2 * SEC, "j3", "d3", 1);
    fire(&f, t1, T0 + 10 * SEC);
    assert_int_equal(ref_worker_tracked_jobs(f.w), 3);

    dispatch(&f, T0 + 11 * SEC, "j4", "d4", 1, "wrk-1");
    assert_true(journal_has(&f.fx, "\"event\":\"evict\",\"job_id\":\"j2\""));
    assert_int_equal(ref_worker_tracked_jobs(f.w), 3);
    assert_true(ref_worker_active_attempt(f.w, "j2", NULL) == 0);
    assert_true(ref_worker_active_attempt(f.w, "j1", NULL) == 1);
    assert_true(ref_worker_active_attempt(f.w, "j3", NULL) == 1);
    assert_true(ref_worker_active_attempt(f.w, "j4", NULL) == 1);

    /* Running records are never evicted: with j4 running and j5 hung, j6
     * evicts the only finished candidate left in order (j3, then j1). */
    f.h.outcome = REF_WORK_HANG;
    dispatch(&f, T0 + 12 * SEC, "j5", "d5", 1, "wrk-1");
    assert_true(journal_has(&f.fx, "\"job_id\":\"j3\""));
    assert_int_equal(ref_worker_active_jobs(f.w), 2);
    dispatch(&f, T0 + 13 * SEC, "j6", "d6", 1, "wrk-1");
    assert_true(journal_has(&f.fx, "\"event\":\"evict\",\"job_id\":\"j1\""));
    /* j6 found both slots busy: recorded as a refusal, not run. */
    assert_int_equal(result_of(&f.fx)->error_code_enum, 201);
    assert_true(ref_worker_active_attempt(f.w, "j4", NULL) == 1);
    assert_true(ref_worker_active_attempt(f.w, "j5", NULL) == 1);
    assert_int_equal(ref_worker_tracked_jobs(f.w), 3);
    teardown(&f);
}

/* The worker's packets (built in one block each) encode to the bytes of
 * the same packets built field by field on the heap; a handler text longer
 * than the record keeps inline is recorded and replayed whole. */
static void test_packet_bytes_and_long_text(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 0, 0);
    char text[200];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = 0;
    for (int round = 0; round < 2; round++) {
        f.h.text = round ? text : "file:///out/1";
        const char *job = round ? "job-long" : "job-short";
        dispatch(&f, T0, job, "dsp-7", 3, "wrk-1");
        int ok = 1;
        Cordum__Agent__V1__DispatchIdentity *d = mk_dispatch("dsp-7", 3, "wrk-1");
        Cordum__Agent__V1__IdentityBinding *ib = malloc(sizeof *ib);
        assert_non_null(ib);
        cordum__agent__v1__identity_binding__init(ib);
        ib->tenant_id = sdup("tenant-a");
        ib->principal_id = sdup("alice");
        cap_packet *want = ref_packet_new("trace-job", "wrk-1", T0);
        Cordum__Agent__V1__JobProgress *pr = malloc(sizeof *pr);
        assert_non_null(pr);
        cordum__agent__v1__job_progress__init(pr);
        pr->job_id = ref_pb_strdup(job, &ok);
        pr->message = ref_pb_strdup("started", &ok);
        pr->status = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING;
        pr->dispatch = d;
        pr->identity = ib;
        want->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS;
        want->job_progress = pr;
        size_t na, nb;
        uint8_t *ea = encode(want, &na);
        uint8_t *eb = encode(first_on(&f.fx, REF_WORKER_SUBJECT_PROGRESS), &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(ea, eb, na);
        free(ea);
        free(eb);

        /* The result: the same envelope and identity, the handler's text. */
        const ref_effect *t = job_timer(&f.fx);
        int64_t at = t->at;
        fire(&f, t->timer_id, at);
        Cordum__Agent__V1__JobResult *res = malloc(sizeof *res);
        assert_non_null(res);
        cordum__agent__v1__job_result__init(res);
        res->job_id = ref_pb_strdup(job, &ok);
        res->status = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED;
        res->worker_id = ref_pb_strdup("wrk-1", &ok);
        res->result_ptr = ref_pb_strdup(f.h.text, &ok);
        res->execution_ms = 2000;
        pr->dispatch = NULL;
        pr->identity = NULL;
        res->dispatch = d;
        res->identity = ib;
        cap_packet_free(want);
        want = ref_packet_new("trace-job", "wrk-1", at);
        want->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
        want->job_result = res;
        ea = encode(want, &na);
        eb = encode(first_on(&f.fx, REF_WORKER_SUBJECT_RESULT), &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(ea, eb, na);
        free(eb);
        /* A redelivery replays the very bytes. */
        dispatch(&f, at + SEC, job, "dsp-7", 3, "wrk-1");
        eb = encode(first_on(&f.fx, REF_WORKER_SUBJECT_RESULT), &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(ea, eb, na);
        assert_string_equal(result_of(&f.fx)->result_ptr, f.h.text);
        free(ea);
        free(eb);
        cap_packet_free(want);
        assert_int_equal(ok, 1);
    }

    /* A cancel reason longer than the record keeps inline. */
    f.h.outcome = REF_WORK_HANG;
    dispatch(&f, T0 + 10 * SEC, "job-hang", "dsp-8", 1, "wrk-1");
    ref_effects_clear(&f.fx);
    cap_packet *c = mk_cancel("job-hang", "dsp-8", 1, "wrk-1");
    free(c->job_cancel->reason);
    c->job_cancel->reason = sdup(text);
    assert_int_equal(ref_worker_on_packet(f.w, "sys.job.cancel", c, T0 + 11 * SEC, &f.fx), CAP_OK);
    cap_packet_free(c);
    assert_string_equal(result_of(&f.fx)->error_message, text);
    teardown(&f);
}

/* Replays a finished job's recorded result and checks it is `want`'s
 * bytes (want NULL: records them in *keep for a later call). */
static void replay_same(fixture *f, int64_t now, const char *job, const char *dsp,
                        uint64_t attempt, uint8_t **keep, size_t *keep_n)
{
    int calls = f->h.calls;
    dispatch(f, now, job, dsp, attempt, "wrk-1");
    assert_int_equal(f->h.calls, calls);
    assert_true(journal_has(&f->fx, "\"event\":\"replay\""));
    size_t n;
    uint8_t *b = encode(first_on(&f->fx, REF_WORKER_SUBJECT_RESULT), &n);
    if (!*keep) {
        *keep = b;
        *keep_n = n;
        return;
    }
    assert_int_equal(n, *keep_n);
    assert_memory_equal(b, *keep, n);
    free(b);
}

/* A record keeps an attempt's strings in itself when they fit, else in
 * one heap area, and moves them when a text no longer fits: job ids long
 * enough to be held by pointer in the job index are still found after
 * every move (a redelivery replays the same bytes, the active attempt is
 * known, an eviction names the job), whatever mix of sizes comes. */
static void test_long_strings_move_with_record(void **state)
{
    (void)state;
    char long_job[80], long_dsp[48], long_text[300];
    memset(long_job, 'j', sizeof long_job - 1);
    long_job[sizeof long_job - 1] = 0;
    memset(long_dsp, 'd', sizeof long_dsp - 1);
    long_dsp[sizeof long_dsp - 1] = 0;
    memset(long_text, 't', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = 0;
    const char *mid_job = "job-with-a-twenty-char-id"; /* over a map slot's inline key */

    fixture f;
    setup_with(&f, 1, 3, 0);
    /* Too long for the record from the start. */
    uint8_t *bytes = NULL;
    size_t n = 0;
    run_to_end(&f, T0, long_job, long_dsp, 1);
    replay_same(&f, T0 + 5 * SEC, long_job, long_dsp, 1, &bytes, &n);
    assert_string_equal(result_of(&f.fx)->job_id, long_job);
    assert_string_equal(result_of(&f.fx)->dispatch->dispatch_id, long_dsp);
    replay_same(&f, T0 + 6 * SEC, long_job, long_dsp, 1, &bytes, &n);
    free(bytes);
    bytes = NULL;

    /* Short strings, then a text that does not fit: the strings move. */
    f.h.text = long_text;
    f.h.outcome = REF_WORK_FAILED_RETRYABLE;
    run_to_end(&f, T0 + 10 * SEC, mid_job, "dsp-1", 1);
    assert_true(ref_worker_active_attempt(f.w, mid_job, NULL) == 1);
    replay_same(&f, T0 + 11 * SEC, mid_job, "dsp-1", 1, &bytes, &n);
    assert_string_equal(result_of(&f.fx)->error_message, long_text);
    replay_same(&f, T0 + 12 * SEC, mid_job, "dsp-1", 1, &bytes, &n);
    free(bytes);
    bytes = NULL;

    /* The next attempt of that job fits the record again (back from the
     * heap); then a cancel reason too long moves it out once more. */
    f.h.text = "ok";
    f.h.outcome = REF_WORK_HANG;
    dispatch(&f, T0 + 13 * SEC, mid_job, "dsp-2", 2, "wrk-1");
    int st = 0;
    assert_true(ref_worker_active_attempt(f.w, mid_job, &st) == 2);
    assert_int_equal(st, REF_JOB_RUNNING);
    ref_effects_clear(&f.fx);
    cap_packet *c = mk_cancel(mid_job, "dsp-2", 2, "wrk-1");
    free(c->job_cancel->reason);
    c->job_cancel->reason = sdup(long_text);
    assert_int_equal(ref_worker_on_packet(f.w, "sys.job.cancel", c, T0 + 14 * SEC, &f.fx), CAP_OK);
    cap_packet_free(c);
    assert_string_equal(result_of(&f.fx)->error_message, long_text);
    assert_true(ref_worker_active_attempt(f.w, mid_job, &st) == 2);
    assert_int_equal(st, REF_JOB_CANCELLED);
    replay_same(&f, T0 + 15 * SEC, mid_job, "dsp-2", 2, &bytes, &n);
    replay_same(&f, T0 + 16 * SEC, mid_job, "dsp-2", 2, &bytes, &n);
    free(bytes);

    /* A third job fills the table; a fourth evicts the first to finish,
     * named in full, and the others are still found. */
    f.h.outcome = REF_WORK_SUCCEEDED;
    run_to_end(&f, T0 + 20 * SEC, "j3", "d3", 1);
    dispatch(&f, T0 + 30 * SEC, "j4", "d4", 1, "wrk-1");
    char want[128];
    snprintf(want, sizeof want, "\"event\":\"evict\",\"job_id\":\"%s\"", long_job);
    assert_true(journal_has(&f.fx, want));
    assert_true(ref_worker_active_attempt(f.w, long_job, NULL) == 0);
    assert_true(ref_worker_active_attempt(f.w, mid_job, NULL) == 2);
    assert_true(ref_worker_active_attempt(f.w, "j3", NULL) == 1);
    assert_true(ref_worker_active_attempt(f.w, "j4", NULL) == 1);
    teardown(&f);
}

/* A completion timer's id names its record and is never used again: a
 * slot reused by another job does not answer the old job's timer, a timer
 * that fired does nothing a second time, and ids the worker never armed
 * (the heartbeat's among them) complete nothing. */
static void test_timer_ids_name_records_once(void **state)
{
    (void)state;
    fixture f;
    setup_window(&f, 1, 4, 0, SEC);
    f.h.service_ns = SEC;
    dispatch(&f, T0, "j1", "d1", 1, "wrk-1");
    uint64_t t1 = job_timer(&f.fx)->timer_id;
    assert_true(t1 >= (UINT64_C(1) << 20));
    fire(&f, t1, T0 + SEC);
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_RESULT), 1);
    fire(&f, t1, T0 + SEC); /* fired already */
    assert_int_equal(ref_effects_count(&f.fx), 0);
    /* j2 arrives after j1's window: it takes j1's slot (same index). */
    dispatch(&f, T0 + 5 * SEC, "j2", "d2", 1, "wrk-1");
    assert_true(journal_has(&f.fx, "\"event\":\"evict\",\"job_id\":\"j1\""));
    uint64_t t2 = job_timer(&f.fx)->timer_id;
    assert_true(t2 != t1);
    assert_true((t2 & ((UINT64_C(1) << 20) - 1)) == (t1 & ((UINT64_C(1) << 20) - 1)));
    fire(&f, t1, T0 + 6 * SEC); /* the old job's timer: not j2's */
    assert_int_equal(ref_effects_count(&f.fx), 0);
    assert_int_equal(ref_worker_active_jobs(f.w), 1);
    const uint64_t never[] = {0, UINT64_C(1) << 20, t2 + (UINT64_C(1) << 20), t2 + 1,
                              UINT64_MAX};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        fire(&f, never[i], T0 + 6 * SEC);
        assert_int_equal(ref_effects_count(&f.fx), 0);
    }
    assert_int_equal(ref_worker_active_jobs(f.w), 1);
    fire(&f, t2, T0 + 6 * SEC);
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_RESULT), 1);
    assert_string_equal(result_of(&f.fx)->job_id, "j2");
    /* The heartbeat's id only ever heartbeats. */
    fire(&f, REF_WORKER_TIMER_HEARTBEAT, T0 + 7 * SEC);
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_HEARTBEAT), 1);
    assert_int_equal(count_on(&f.fx, REF_WORKER_SUBJECT_RESULT), 0);
    teardown(&f);
}

/* The table grows in chunks: with max_jobs 150 (two full chunks and part
 * of a third) every record is found again, the eviction order is the
 * order the records finished in across chunks, and a record that ran a
 * newer attempt moves to the end of that order. */
static void test_bounds_across_chunks(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 1, 150, 0);
    f.h.service_ns = SEC;
    char job[16], dsp[16];
    for (int i = 0; i < 150; i++) {
        snprintf(job, sizeof job, "j%d", i);
        snprintf(dsp, sizeof dsp, "d%d", i);
        run_to_end(&f, T0 + (int64_t)i * 2 * SEC, job, dsp, 1);
    }
    assert_int_equal(ref_worker_tracked_jobs(f.w), 150);
    for (int i = 0; i < 150; i++) {
        snprintf(job, sizeof job, "j%d", i);
        assert_true(ref_worker_active_attempt(f.w, job, NULL) == 1);
    }
    /* j10 runs attempt 2: it now finished last. */
    run_to_end(&f, T0 + 400 * SEC, "j10", "d10b", 2);
    int calls = f.h.calls;
    dispatch(&f, T0 + 402 * SEC, "j130", "d130", 1, "wrk-1"); /* a third-chunk record replays */
    assert_int_equal(f.h.calls, calls);
    assert_true(journal_has(&f.fx, "\"event\":\"replay\""));
    /* New jobs evict j0..j9, then j11 (j10 is younger now), ..., and j10
     * only after every other old record. */
    const int order[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        snprintf(job, sizeof job, "n%zu", k);
        snprintf(dsp, sizeof dsp, "e%zu", k);
        int64_t at = T0 + 500 * SEC + (int64_t)k * 2 * SEC;
        dispatch(&f, at, job, dsp, 1, "wrk-1");
        char want[64];
        snprintf(want, sizeof want, "\"event\":\"evict\",\"job_id\":\"j%d\"", order[k]);
        assert_true(journal_has(&f.fx, want));
        assert_true(journal_has(&f.fx, "oldest finished record"));
        fire(&f, job_timer(&f.fx)->timer_id, at + SEC);
        assert_true(ref_worker_active_attempt(f.w, job, NULL) == 1);
    }
    assert_int_equal(ref_worker_tracked_jobs(f.w), 150);
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        snprintf(job, sizeof job, "j%d", order[k]);
        assert_true(ref_worker_active_attempt(f.w, job, NULL) == 0);
    }
    assert_true(ref_worker_active_attempt(f.w, "j10", NULL) == 2);
    assert_true(ref_worker_active_attempt(f.w, "j13", NULL) == 1);
    teardown(&f);
}

/* The job id the request just handled evicted (into out, "" when none);
 * fails when it evicted more than one. */
static void evicted_id(const ref_effects *fx, char *out, size_t cap)
{
    static const char key[] = "\"event\":\"evict\",\"job_id\":\"";
    out[0] = 0;
    int n = 0;
    for (size_t i = 0; i < ref_effects_count(fx); i++) {
        const ref_effect *e = ref_effects_at(fx, i);
        const char *at = e->kind == REF_EFFECT_JOURNAL ? strstr(e->record, key) : NULL;
        if (!at)
            continue;
        at += sizeof key - 1;
        size_t len = strcspn(at, "\"");
        assert_true(len < cap);
        memcpy(out, at, len);
        out[len] = 0;
        n++;
    }
    assert_true(n <= 1);
}

/* A job of the model below: what the worker should hold for it. */
typedef struct {
    char id[128];
    uint64_t attempt; /* active attempt; 0 when the worker holds no record */
    uint64_t fin_seq; /* when it finished, in finish order */
    int64_t fin_at;
} held_job;

/* Job n's id: lengths from 1 to 100 characters (short ids, ids of a word
 * and more, ids too long for a record's inline strings). */
static void held_id(char *out, size_t cap, int n)
{
    int len = 1 + (n * 7) % 100, o = snprintf(out, cap, "%d", n);
    for (; o < len && (size_t)o + 1 < cap; o++)
        out[o] = (char)('a' + (n + o) % 26);
    out[o] = 0;
}

/* A long random run of new jobs, new attempts of held jobs and
 * redeliveries against a model of the table: every job is found while
 * held and forgotten once evicted, and each eviction takes the record
 * that finished first (held jobs that ran again many times in a row
 * leave the finish order with their newer finish). The table grows
 * through several chunks and its window and its bound both evict. */
static void test_bounds_model(void **state)
{
    (void)state;
    enum { MAX_JOBS = 200, N_JOBS = 1400 };
    const int64_t window = 1000 * SEC;
    fixture f;
    setup_window(&f, 1, MAX_JOBS, 0, window);
    f.h.service_ns = SEC;
    held_job *jobs = calloc(N_JOBS, sizeof *jobs);
    assert_non_null(jobs);
    int n_jobs = 0, held = 0;
    uint64_t seq = 0, rnd = 12345;
    int64_t now = T0;
    char dsp[64], got[128];
    for (int step = 0; step < 4000; step++) {
        rnd = rnd * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        unsigned r = (unsigned)(rnd >> 33);
        /* The first long stretch: one held job runs attempt after
         * attempt, many more times than the table has slots. */
        int burst = step >= 1000 && step < 1600;
        now += (int64_t)(r % 4) * SEC;
        if (step == 2000 || step == 2400)
            now += 900 * SEC; /* then most of the window's records go at once */
        held_job *j = NULL;
        if (burst || (held && r % 10 < 4)) { /* a held job: a new attempt or a redelivery */
            int k = burst ? 0 : (int)((r >> 8) % (unsigned)n_jobs);
            while (!jobs[k].attempt)
                k = (k + 1) % n_jobs;
            j = &jobs[k];
            if (!burst && r % 10 == 0) { /* a redelivery replays */
                int calls = f.h.calls;
                snprintf(dsp, sizeof dsp, "d-%d-%" PRIu64, k, j->attempt);
                dispatch(&f, now, j->id, dsp, j->attempt, "wrk-1");
                assert_int_equal(f.h.calls, calls);
                assert_true(journal_has(&f.fx, "\"event\":\"replay\""));
                continue;
            }
            j->attempt++;
            snprintf(dsp, sizeof dsp, "d-%d-%" PRIu64, k, j->attempt);
            dispatch(&f, now, j->id, dsp, j->attempt, "wrk-1");
            evicted_id(&f.fx, got, sizeof got);
            assert_string_equal(got, ""); /* a held job keeps its slot */
        } else if (n_jobs < N_JOBS) { /* a new job */
            j = &jobs[n_jobs];
            held_id(j->id, sizeof j->id, n_jobs);
            snprintf(dsp, sizeof dsp, "d-%d-1", n_jobs);
            n_jobs++;
            /* The one the worker must evict: the held job that finished
             * first, when out of the window or when the table is full. */
            held_job *oldest = NULL;
            for (int k = 0; k < n_jobs - 1; k++)
                if (jobs[k].attempt && (!oldest || jobs[k].fin_seq < oldest->fin_seq))
                    oldest = &jobs[k];
            int evicts = oldest && (now > oldest->fin_at + window || held == MAX_JOBS);
            j->attempt = 1;
            dispatch(&f, now, j->id, dsp, 1, "wrk-1");
            evicted_id(&f.fx, got, sizeof got);
            assert_string_equal(got, evicts ? oldest->id : "");
            if (evicts)
                oldest->attempt = 0;
            else
                held++;
        } else {
            break;
        }
        const ref_effect *t = job_timer(&f.fx);
        now = t->at;
        fire(&f, t->timer_id, now);
        j->fin_seq = ++seq;
        j->fin_at = now;
        assert_int_equal(ref_worker_tracked_jobs(f.w), (size_t)held);
        if (step % 50 == 0 || burst)
            for (int k = 0; k < n_jobs; k++) {
                int st = -1;
                assert_true(ref_worker_active_attempt(f.w, jobs[k].id, &st) == jobs[k].attempt);
                assert_int_equal(st, jobs[k].attempt ? REF_JOB_SUCCEEDED : REF_JOB_NONE);
            }
    }
    assert_int_equal(n_jobs, N_JOBS); /* the run went through all its jobs */
    free(jobs);
    teardown(&f);
}

/* A finished record older than the window gives its slot to a new job
 * before the table grows, so the table's size follows the job rate. */
static void test_bounds_window_reuses_old_records(void **state)
{
    (void)state;
    fixture f;
    setup_window(&f, 1, 64, 0, 60 * SEC);
    f.h.service_ns = SEC;
    run_to_end(&f, T0, "j1", "d1", 1);              /* finished at T0 + 1 s */
    run_to_end(&f, T0 + 30 * SEC, "j2", "d2", 1);   /* finished at T0 + 31 s */
    /* Within the window: j3 gets a new slot, j1 is kept. */
    dispatch(&f, T0 + 61 * SEC, "j3", "d3", 1, "wrk-1");
    assert_false(journal_has(&f.fx, "\"event\":\"evict\""));
    assert_int_equal(ref_worker_tracked_jobs(f.w), 3);
    fire(&f, job_timer(&f.fx)->timer_id, T0 + 62 * SEC);
    /* j1 finished more than 60 s before j4 arrives: its slot is reused. */
    dispatch(&f, T0 + 62 * SEC, "j4", "d4", 1, "wrk-1");
    assert_true(journal_has(&f.fx, "\"event\":\"evict\",\"job_id\":\"j1\""));
    assert_true(journal_has(&f.fx, "finished longer ago than the window"));
    assert_int_equal(ref_worker_tracked_jobs(f.w), 3);
    assert_true(ref_worker_active_attempt(f.w, "j1", NULL) == 0);
    assert_true(ref_worker_active_attempt(f.w, "j2", NULL) == 1);
    /* A redelivery of the forgotten j1 now runs as a job never seen; one
     * of j2 (still in the window) replays without a handler call. */
    int calls = f.h.calls;
    dispatch(&f, T0 + 63 * SEC, "j2", "d2", 1, "wrk-1");
    assert_int_equal(f.h.calls, calls);
    assert_true(journal_has(&f.fx, "\"event\":\"replay\""));
    teardown(&f);

    /* Steady load for far longer than the window: the table stays at the
     * window's worth of records (one job every 10 s, 60 s window). */
    setup_window(&f, 1, 1024, 0, 60 * SEC);
    f.h.service_ns = SEC;
    for (int i = 0; i < 500; i++) {
        char job[16], dsp[16];
        snprintf(job, sizeof job, "j%d", i);
        snprintf(dsp, sizeof dsp, "d%d", i);
        run_to_end(&f, T0 + (int64_t)i * 10 * SEC, job, dsp, 1);
    }
    assert_true(ref_worker_tracked_jobs(f.w) <= 8);
    teardown(&f);

    ref_worker_config bad = {0};
    ref_worker *w = NULL;
    bad.worker_id = "wrk-1";
    bad.pool = "default";
    bad.handler = handler;
    bad.done_window_ns = -1;
    assert_int_equal(ref_worker_init(&bad, &w), CAP_EINVAL);
}

static void test_first_attempt_policy(void **state)
{
    (void)state;
    fixture f;
    /* Default: a job never seen is adopted at its attempt (a retry that
     * lands on another worker). */
    setup_with(&f, 2, 16, 0);
    dispatch(&f, T0, "job-1", "dsp-5", 5, "wrk-1");
    assert_int_equal(f.h.calls, 1);
    assert_true(ref_worker_active_attempt(f.w, "job-1", NULL) == 5);
    teardown(&f);
    /* strict_first_attempt: only attempt 1 starts a job. */
    setup_with(&f, 2, 16, 1);
    dispatch(&f, T0, "job-1", "dsp-5", 5, "wrk-1");
    assert_rejected(&f, 0, "job-1", 0, "future-attempt");
    dispatch(&f, T0, "job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(f.h.calls, 1);
    teardown(&f);
}

static void test_other_subjects_and_payloads_ignored(void **state)
{
    (void)state;
    fixture f;
    setup_with(&f, 2, 16, 0);
    ref_effects_clear(&f.fx);
    cap_packet *p = mk_request("job-1", "dsp-1", 1, "wrk-1");
    assert_int_equal(ref_worker_on_packet(f.w, "job.other", p, T0, &f.fx), CAP_OK);
    assert_int_equal(f.h.calls, 0);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_PUBLISH), 0);
    assert_true(journal_has(&f.fx, "ignore-packet"));
    /* The direct subject is served. */
    assert_string_equal(ref_worker_direct_subject(f.w), "worker.wrk-1.jobs");
    assert_string_equal(ref_worker_pool_subject(f.w), "job.default");
    assert_int_equal(ref_worker_on_packet(f.w, "worker.wrk-1.jobs", p, T0, &f.fx), CAP_OK);
    assert_int_equal(f.h.calls, 1);
    assert_int_equal(ref_worker_on_packet(f.w, NULL, p, T0, &f.fx), CAP_EINVAL);
    cap_packet_free(p);
    /* A heartbeat from someone else is not for the worker. */
    ref_effects_clear(&f.fx);
    cap_packet *hb = ref_packet_new("t", "wrk-2", T0);
    Cordum__Agent__V1__Heartbeat *h = malloc(sizeof *h);
    cordum__agent__v1__heartbeat__init(h);
    hb->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
    hb->heartbeat = h;
    assert_int_equal(ref_worker_on_packet(f.w, "sys.heartbeat", hb, T0, &f.fx), CAP_OK);
    assert_int_equal(count_kind(&f.fx, REF_EFFECT_PUBLISH), 0);
    assert_true(journal_has(&f.fx, "heartbeat"));
    cap_packet_free(hb);
    teardown(&f);
}

static void test_config_validation(void **state)
{
    (void)state;
    fake_handler h = {0};
    ref_worker *w = NULL;
    ref_worker_config c = {0};
    c.worker_id = "wrk-1";
    c.pool = "default";
    c.handler = handler;
    c.handler_ctx = &h;
    assert_int_equal(ref_worker_init(&c, &w), CAP_OK);
    ref_worker_free(w);
    ref_worker_config bad = c;
    bad.worker_id = "";
    assert_int_equal(ref_worker_init(&bad, &w), CAP_EINVAL);
    bad = c;
    bad.handler = NULL;
    assert_int_equal(ref_worker_init(&bad, &w), CAP_EINVAL);
    bad = c;
    bad.max_parallel_jobs = 4;
    bad.max_jobs = 4; /* must exceed max_parallel_jobs */
    assert_int_equal(ref_worker_init(&bad, &w), CAP_EINVAL);
    bad = c;
    bad.heartbeat_interval_ns = -1;
    assert_int_equal(ref_worker_init(&bad, &w), CAP_EINVAL);
    const ref_worker_label unsorted[] = {{"b", "1"}, {"a", "2"}};
    const ref_worker_label dup[] = {{"a", "1"}, {"a", "2"}};
    bad = c;
    bad.labels = unsorted;
    bad.n_labels = 2;
    assert_int_equal(ref_worker_init(&bad, &w), CAP_EINVAL);
    bad.labels = dup;
    assert_int_equal(ref_worker_init(&bad, &w), CAP_EINVAL);
    const char *empty_cap[] = {""};
    bad = c;
    bad.capabilities = empty_cap;
    bad.n_capabilities = 1;
    assert_int_equal(ref_worker_init(&bad, &w), CAP_EINVAL);
    assert_int_equal(ref_worker_init(NULL, &w), CAP_EINVAL);
}

/* The same inputs give byte-identical effects. */
/* Runs a fixed script and serialises every effect it produced; journal
 * effects are left out with skip_journal (*journals counts them). */
static void script_effects(fixture *f, int skip_journal, size_t *journals, uint8_t **out,
                           size_t *len)
{
    size_t cap = 0, n = 0;
    uint8_t *buf = NULL;
    assert_int_equal(ref_worker_start(f->w, T0, &f->fx), CAP_OK);
    for (int step = 0; step < 6; step++) {
        char job[16], dsp[16];
        snprintf(job, sizeof job, "job-%d", step % 3);
        snprintf(dsp, sizeof dsp, "dsp-%d", step);
        cap_packet *p = mk_request(job, dsp, (uint64_t)(step / 3 + 1), "wrk-1");
        assert_int_equal(ref_worker_on_packet(f->w, "job.default", p, T0 + step * SEC, &f->fx),
                         CAP_OK);
        cap_packet_free(p);
        assert_int_equal(ref_worker_on_timer(f->w, REF_WORKER_TIMER_HEARTBEAT, T0 + step * HB,
                                             &f->fx), CAP_OK);
        for (uint64_t t = 2; t < 10; t++)
            assert_int_equal(ref_worker_on_timer(f->w, t, T0 + (step + 3) * SEC, &f->fx), CAP_OK);
    }
    for (size_t i = 0; i < ref_effects_count(&f->fx); i++) {
        const ref_effect *e = ref_effects_at(&f->fx, i);
        size_t m = 0;
        uint8_t *b = NULL;
        *journals += e->kind == REF_EFFECT_JOURNAL;
        if (e->kind == REF_EFFECT_JOURNAL && skip_journal)
            continue;
        if (e->kind == REF_EFFECT_PUBLISH) {
            b = encode(e->packet, &m);
        } else if (e->kind == REF_EFFECT_JOURNAL) {
            m = strlen(e->record);
            b = malloc(m + 1);
            memcpy(b, e->record, m + 1);
        } else {
            m = 2 * sizeof(uint64_t);
            b = malloc(m);
            memcpy(b, &e->timer_id, sizeof(uint64_t));
            memcpy(b + 8, &e->at, sizeof(uint64_t));
        }
        if (n + m + 1 > cap) {
            cap = (n + m + 1) * 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        memcpy(buf + n, b, m);
        n += m;
        buf[n++] = (uint8_t)e->kind;
        free(b);
    }
    *out = buf;
    *len = n;
}

/* Runs the script on a and on b and checks that they produced the same
 * effects (a's journal effects left out with skip_a_journal) and handler
 * calls; *ja and *jb count their journal effects. Tears both down. */
static void same_script_effects(fixture *a, fixture *b, int skip_a_journal, size_t *ja, size_t *jb)
{
    uint8_t *ba, *bb;
    size_t na, nb;
    script_effects(a, skip_a_journal, ja, &ba, &na);
    script_effects(b, 0, jb, &bb, &nb);
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    assert_int_equal(a->h.calls, b->h.calls);
    free(ba);
    free(bb);
    teardown(a);
    teardown(b);
}

/* no_journal: not one journal effect, and every other effect the same, in
 * the same order, as with the journal on. */
static void test_no_journal_same_other_effects(void **state)
{
    (void)state;
    fixture a, b;
    setup_config(&a, 2, 4, 0, 0, 0);
    setup_config(&b, 2, 4, 0, 0, 1);
    size_t ja = 0, jb = 0;
    same_script_effects(&a, &b, 1, &ja, &jb);
    assert_true(ja > 0);
    assert_int_equal(jb, 0);
}

static void test_deterministic(void **state)
{
    (void)state;
    fixture a, b;
    setup_with(&a, 2, 4, 0);
    setup_with(&b, 2, 4, 0);
    size_t ja = 0, jb = 0;
    same_script_effects(&a, &b, 0, &ja, &jb);
    assert_int_equal(ja, jb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_once_result_at_service_time),
        cmocka_unit_test(test_journal_line_text),
        cmocka_unit_test(test_no_journal_same_other_effects),
        cmocka_unit_test(test_redelivery_replays_without_second_call),
        cmocka_unit_test(test_fencing_rejects_stale_future_wrong_worker),
        cmocka_unit_test(test_retry_after_retryable_failure_runs),
        cmocka_unit_test(test_newer_attempt_supersedes_running_one),
        cmocka_unit_test(test_crash_keeps_records),
        cmocka_unit_test(test_cancel_while_running),
        cmocka_unit_test(test_cancel_after_finish_ignored),
        cmocka_unit_test(test_stale_cancel_ignored),
        cmocka_unit_test(test_heartbeats_every_interval),
        cmocka_unit_test(test_progress_over_running_attempts),
        cmocka_unit_test(test_max_parallel_jobs),
        cmocka_unit_test(test_bounds_evict_oldest_finished),
        cmocka_unit_test(test_bounds_across_chunks),
        cmocka_unit_test(test_timer_ids_name_records_once),
        cmocka_unit_test(test_packet_bytes_and_long_text),
        cmocka_unit_test(test_long_strings_move_with_record),
        cmocka_unit_test(test_bounds_window_reuses_old_records),
        cmocka_unit_test(test_bounds_model),
        cmocka_unit_test(test_first_attempt_policy),
        cmocka_unit_test(test_other_subjects_and_payloads_ignored),
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
