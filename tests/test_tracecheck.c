/* The offline trace checker: hand-built traces, one per rule, each with a
 * clean counterpart, plus signatures, eviction and the file driver. */
#include "testutil.h"

#include "cap_encode.h"
#include "cap_schema.h"
#include "cap_sign.h"
#include "cap_trace.h"
#include "conf_tracecheck.h"
#include "ref_effect.h"
#include "ref_jobstate.h"

#define SEC INT64_C(1000000000)
#define MAX_V 64

typedef struct {
    size_t n;
    char rule[MAX_V][32];
    char job[MAX_V][32];
    uint64_t record[MAX_V];
} seen;

static void sink(void *ctx, const conf_tc_violation *v)
{
    seen *s = ctx;
    assert_non_null(v->what);
    assert_non_null(v->expect);
    assert_true(strstr(v->clause, "cap-spec") != NULL);
    if (s->n < MAX_V) {
        snprintf(s->rule[s->n], sizeof s->rule[0], "%s", v->rule);
        snprintf(s->job[s->n], sizeof s->job[0], "%s", v->job_id);
        s->record[s->n] = v->record;
    }
    s->n++;
}

static size_t count_rule(const seen *s, const char *rule)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n && i < MAX_V; i++)
        k += strcmp(s->rule[i], rule) == 0;
    return k;
}

/* ---- packet builders ------------------------------------------------------ */

typedef Cordum__Agent__V1__DispatchIdentity ident;

static ident *mk_ident(const char *did, uint64_t attempt, const char *worker)
{
    ident *d = malloc(sizeof *d);
    assert_non_null(d);
    cordum__agent__v1__dispatch_identity__init(d);
    int ok = 1;
    d->dispatch_id = ref_pb_strdup(did, &ok);
    d->assigned_worker_id = ref_pb_strdup(worker, &ok);
    d->attempt = attempt;
    assert_true(ok);
    return d;
}

static cap_packet *pkt_request(const char *sender, const char *job, const ident *src)
{
    cap_packet *p = ref_packet_new("trace-1", sender, 5 * SEC);
    assert_non_null(p);
    Cordum__Agent__V1__JobRequest *r = malloc(sizeof *r);
    assert_non_null(r);
    cordum__agent__v1__job_request__init(r);
    int ok = 1;
    r->job_id = ref_pb_strdup(job, &ok);
    r->topic = ref_pb_strdup("job.tools", &ok);
    assert_true(ok);
    if (src)
        r->dispatch = mk_ident(src->dispatch_id, src->attempt, src->assigned_worker_id);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    p->job_request = r;
    return p;
}

static cap_packet *pkt_result(const char *sender, const char *job, int status, const char *code,
                              const ident *src)
{
    cap_packet *p = ref_packet_new("trace-1", sender, 5 * SEC);
    assert_non_null(p);
    Cordum__Agent__V1__JobResult *r = malloc(sizeof *r);
    assert_non_null(r);
    cordum__agent__v1__job_result__init(r);
    int ok = 1;
    r->job_id = ref_pb_strdup(job, &ok);
    r->worker_id = ref_pb_strdup(sender, &ok);
    r->error_code = ref_pb_strdup(code, &ok);
    r->status = (Cordum__Agent__V1__JobStatus)status;
    assert_true(ok);
    if (src)
        r->dispatch = mk_ident(src->dispatch_id, src->attempt, src->assigned_worker_id);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
    p->job_result = r;
    return p;
}

static cap_packet *pkt_progress(const char *sender, const char *job, const ident *src)
{
    cap_packet *p = ref_packet_new("trace-1", sender, 5 * SEC);
    assert_non_null(p);
    Cordum__Agent__V1__JobProgress *r = malloc(sizeof *r);
    assert_non_null(r);
    cordum__agent__v1__job_progress__init(r);
    int ok = 1;
    r->job_id = ref_pb_strdup(job, &ok);
    assert_true(ok);
    r->status = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING;
    r->dispatch = mk_ident(src->dispatch_id, src->attempt, src->assigned_worker_id);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS;
    p->job_progress = r;
    return p;
}

static cap_packet *pkt_cancel(const char *sender, const char *job, const ident *src)
{
    cap_packet *p = ref_packet_new("trace-1", sender, 5 * SEC);
    assert_non_null(p);
    Cordum__Agent__V1__JobCancel *c = malloc(sizeof *c);
    assert_non_null(c);
    cordum__agent__v1__job_cancel__init(c);
    int ok = 1;
    c->job_id = ref_pb_strdup(job, &ok);
    assert_true(ok);
    c->dispatch = mk_ident(src->dispatch_id, src->attempt, src->assigned_worker_id);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL;
    p->job_cancel = c;
    return p;
}

/* A trace under construction: written to a memory file in one format. */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
    cap_trace_writer *w;
    int64_t t;
} tb;

static void tb_open(tb *b, cap_trace_format fmt)
{
    memset(b, 0, sizeof *b);
    b->f = open_memstream(&b->buf, &b->len);
    assert_non_null(b->f);
    assert_int_equal(cap_trace_writer_open(b->f, fmt, &b->w), CAP_OK);
}

static void tb_raw(tb *b, const char *subject, const char *sender, const uint8_t *bytes, size_t len)
{
    b->t += SEC;
    cap_trace_record r = {.time = b->t, .kind = CAP_TRACE_PUBLISH, .subject = subject,
                          .sender = sender, .bytes = bytes, .len = len};
    cap_diag d;
    assert_int_equal(cap_trace_write(b->w, &r, &d), CAP_OK);
}

/* Encodes and records p (freed). */
static void tb_put(tb *b, const char *subject, cap_packet *p)
{
    uint8_t *bytes;
    size_t len;
    assert_int_equal(cap_encode(&p->base, &bytes, &len), CAP_OK);
    tb_raw(b, subject, p->sender_id, bytes, len);
    free(bytes);
    cap_packet_free(p);
}

static void tb_close(tb *b)
{
    assert_int_equal(cap_trace_writer_close(b->w, NULL), CAP_OK);
    fclose(b->f);
}

/* Checks the trace b holds; returns the checker's result code. */
static int tb_check(tb *b, const conf_tc_options *o, seen *s, conf_tc_stats *st)
{
    memset(s, 0, sizeof *s);
    FILE *f = fmemopen(b->buf, b->len, "rb");
    assert_non_null(f);
    cap_diag d;
    int rc = conf_tc_check_file(f, CAP_TRACE_AUTO, NULL, o, sink, s, st, &d);
    fclose(f);
    return rc;
}

static const ident ID1 = {.dispatch_id = "d-1", .attempt = 1, .assigned_worker_id = "w-1"};
static const ident ID2 = {.dispatch_id = "d-2", .attempt = 2, .assigned_worker_id = "w-1"};
static const ident ID2B = {.dispatch_id = "d-2", .attempt = 2, .assigned_worker_id = "w-2"};

/* submit + dispatch of attempt 1 to w-1 */
static void start_job(tb *b, const char *job, const ident *id)
{
    tb_put(b, "sys.job.submit", pkt_request("gateway", job, NULL));
    tb_put(b, "worker.w-1.jobs", pkt_request("scheduler", job, id));
}

/* ---- tests ------------------------------------------------------------------ */

static void test_clean_lifecycle(void **state)
{
    (void)state;
    for (int fmt = CAP_TRACE_BINARY; fmt <= CAP_TRACE_JSONL; fmt++) {
        tb b;
        tb_open(&b, (cap_trace_format)fmt);
        start_job(&b, "job-1", &ID1);
        tb_put(&b, "sys.job.progress", pkt_progress("w-1", "job-1", &ID1));
        tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_SUCCEEDED, "", &ID1));
        /* an exact replay of the same result (a redelivered dispatch) is fine */
        tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_SUCCEEDED, "", &ID1));
        /* a duplicate submit is tolerated */
        tb_put(&b, "sys.job.submit", pkt_request("gateway", "job-1", NULL));
        tb_close(&b);
        seen s;
        conf_tc_stats st;
        assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
        assert_int_equal(s.n, 0);
        assert_int_equal(st.violations, 0);
        assert_int_equal(st.records, 6);
        assert_int_equal(st.jobs_seen, 1);
        free(b.buf);
    }
}

static void test_retry_after_fatal_is_backward(void **state)
{
    (void)state;
    tb b;
    tb_open(&b, CAP_TRACE_BINARY);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_FAILED_FATAL, "boom", &ID1));
    tb_put(&b, "worker.w-1.jobs", pkt_request("scheduler", "job-1", &ID2)); /* record 3 */
    tb_close(&b);
    seen s;
    conf_tc_stats st;
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rule[0], "state-backward");
    assert_string_equal(s.job[0], "job-1");
    assert_int_equal(s.record[0], 3);
    free(b.buf);

    /* the same after FAILED_RETRYABLE is a retry, not a violation */
    tb_open(&b, CAP_TRACE_BINARY);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_FAILED_RETRYABLE, "", &ID1));
    tb_put(&b, "worker.w-1.jobs", pkt_request("scheduler", "job-1", &ID2));
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_SUCCEEDED, "", &ID2));
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 0);
    free(b.buf);
}

static void test_dispatch_after_deny(void **state)
{
    (void)state;
    tb b;
    tb_open(&b, CAP_TRACE_BINARY);
    tb_put(&b, "sys.job.submit", pkt_request("gateway", "job-9", NULL));
    tb_put(&b, "sys.job.result", pkt_result("scheduler", "job-9", REF_JOB_DENIED, "safety_denied", NULL));
    tb_put(&b, "worker.w-1.jobs", pkt_request("scheduler", "job-9", &ID1));
    tb_close(&b);
    seen s;
    conf_tc_stats st;
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rule[0], "dispatch-denied");
    assert_int_equal(s.record[0], 2);
    free(b.buf);
}

static void test_one_terminal_and_cancel_release(void **state)
{
    (void)state;
    tb b;
    seen s;
    conf_tc_stats st;
    /* the control plane reports TIMEOUT, then FAILED */
    tb_open(&b, CAP_TRACE_JSONL);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "sys.job.result", pkt_result("scheduler", "job-1", REF_JOB_TIMEOUT, "t", &ID1));
    tb_put(&b, "sys.job.result", pkt_result("scheduler", "job-1", REF_JOB_FAILED, "f", &ID1));
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rule[0], "one-terminal");
    free(b.buf);

    /* the worker's SUCCEEDED never reached the control plane, which
     * cancelled the attempt first and then timed it out: no violation */
    tb_open(&b, CAP_TRACE_JSONL);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_SUCCEEDED, "", &ID1));
    tb_put(&b, "sys.job.cancel", pkt_cancel("scheduler", "job-1", &ID1));
    tb_put(&b, "sys.job.result", pkt_result("scheduler", "job-1", REF_JOB_TIMEOUT, "t", &ID1));
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 0);
    free(b.buf);

    /* the same for a job first seen mid-life (the capture started late) */
    tb_open(&b, CAP_TRACE_JSONL);
    tb_put(&b, "sys.job.progress", pkt_progress("w-1", "job-1", &ID1));
    tb_put(&b, "sys.job.cancel", pkt_cancel("scheduler", "job-1", &ID1));
    tb_put(&b, "sys.job.result", pkt_result("scheduler", "job-1", REF_JOB_TIMEOUT, "t", &ID1));
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_SUCCEEDED, "", &ID1));
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 0);
    free(b.buf);

    /* without the cancel, the control plane contradicts a received result */
    tb_open(&b, CAP_TRACE_JSONL);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_SUCCEEDED, "", &ID1));
    tb_put(&b, "sys.job.result", pkt_result("scheduler", "job-1", REF_JOB_TIMEOUT, "t", &ID1));
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rule[0], "one-terminal");
    free(b.buf);
}

static void test_stale_attempt(void **state)
{
    (void)state;
    tb b;
    seen s;
    conf_tc_stats st;
    /* w-1 took attempt 2, then acts on attempt 1 */
    tb_open(&b, CAP_TRACE_BINARY);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_FAILED_RETRYABLE, "", &ID1));
    tb_put(&b, "worker.w-1.jobs", pkt_request("scheduler", "job-1", &ID2));
    tb_put(&b, "sys.job.progress", pkt_progress("w-1", "job-1", &ID2));
    tb_put(&b, "sys.job.progress", pkt_progress("w-1", "job-1", &ID1)); /* record 5 */
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rule[0], "stale-attempt");
    assert_int_equal(s.record[0], 5);
    assert_int_equal(st.stale_ignored, 1);
    free(b.buf);

    /* a late result of the old attempt from the old worker is merely stale
     * (fenced, not a violation) ... */
    tb_open(&b, CAP_TRACE_BINARY);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "worker.w-2.jobs", pkt_request("scheduler", "job-1", &ID2B));
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_FAILED_FATAL, "old", &ID1));
    tb_put(&b, "sys.job.result", pkt_result("w-2", "job-1", REF_JOB_SUCCEEDED, "", &ID2B));
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(st.stale_ignored, 1);
    free(b.buf);

    /* ... unless the control plane applies it: a DLQ entry with its outcome */
    tb_open(&b, CAP_TRACE_BINARY);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "worker.w-2.jobs", pkt_request("scheduler", "job-1", &ID2B));
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_FAILED_FATAL, "old", &ID1));
    tb_put(&b, "sys.job.dlq", pkt_result("scheduler", "job-1", REF_JOB_FAILED_FATAL, "old", &ID2B));
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rule[0], "stale-attempt");
    assert_int_equal(s.record[0], 4);
    free(b.buf);
}

static void test_attempt_order(void **state)
{
    (void)state;
    tb b;
    seen s;
    conf_tc_stats st;
    static const ident OTHER1 = {.dispatch_id = "d-x", .attempt = 1, .assigned_worker_id = "w-1"};
    tb_open(&b, CAP_TRACE_BINARY);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "worker.w-1.jobs", pkt_request("scheduler", "job-1", &ID1)); /* redelivery: fine */
    tb_put(&b, "worker.w-1.jobs", pkt_request("scheduler", "job-1", &OTHER1));
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rule[0], "attempt-order");
    assert_int_equal(s.record[0], 3);
    free(b.buf);
}

static void test_duplicate_side_effect(void **state)
{
    (void)state;
    tb b;
    seen s;
    conf_tc_stats st;
    tb_open(&b, CAP_TRACE_BINARY);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "sys.job.progress", pkt_progress("w-1", "job-1", &ID1));
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_FAILED_RETRYABLE, "", &ID1));
    tb_put(&b, "sys.job.progress", pkt_progress("w-1", "job-1", &ID1));                      /* 4 */
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_SUCCEEDED, "", &ID1)); /* 5 */
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.rule[0], "duplicate-side-effect");
    assert_int_equal(s.record[0], 4);
    assert_string_equal(s.rule[1], "duplicate-side-effect");
    assert_int_equal(s.record[1], 5);
    free(b.buf);
}

static void test_undecodable(void **state)
{
    (void)state;
    tb b;
    seen s;
    conf_tc_stats st;
    static const uint8_t junk[] = {0x0a, 0x05, 'a'}; /* truncated string */
    tb_open(&b, CAP_TRACE_BINARY);
    tb_raw(&b, "sys.job.result", "w-1", junk, sizeof junk);
    tb_raw(&b, "sys.job.result", "w-1", NULL, 0);
    tb_close(&b);
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(count_rule(&s, "undecodable"), 2);
    free(b.buf);
}

static cap_key *test_key(uint8_t seed)
{
    uint8_t d[32] = {0};
    d[31] = seed;
    d[0] = 0x11;
    cap_key *k;
    assert_int_equal(cap_key_from_scalar(d, &k), CAP_OK);
    return k;
}

static void test_signatures(void **state)
{
    (void)state;
    cap_key *k = test_key(7), *other = test_key(9);
    tb b;
    seen s;
    conf_tc_stats st;
    tb_open(&b, CAP_TRACE_BINARY);
    /* 0: signed and intact */
    cap_packet *p = pkt_request("gateway", "job-1", NULL);
    assert_int_equal(cap_packet_sign(p, k, NULL), CAP_OK);
    tb_put(&b, "sys.job.submit", p);
    /* 1: signed, then tampered with (the job id changed after signing) */
    p = pkt_request("gateway", "job-2", NULL);
    assert_int_equal(cap_packet_sign(p, k, NULL), CAP_OK);
    p->job_request->job_id[4] = '3';
    tb_put(&b, "sys.job.submit", p);
    /* 2: signed with another key */
    p = pkt_request("gateway", "job-4", NULL);
    assert_int_equal(cap_packet_sign(p, other, NULL), CAP_OK);
    tb_put(&b, "sys.job.submit", p);
    /* 3: unsigned */
    tb_put(&b, "sys.job.submit", pkt_request("gateway", "job-5", NULL));
    /* 4: CAP-PRODUCTION signed, intact; 5: the same bytes with one changed */
    p = pkt_request("gateway", "job-6", NULL);
    Cordum__Agent__V1__SignatureMetadata *m = malloc(sizeof *m);
    assert_non_null(m);
    cordum__agent__v1__signature_metadata__init(m);
    int ok = 1;
    m->profile_version = ref_pb_strdup(CAP_PRODUCTION_PROFILE, &ok);
    m->algorithm = ref_pb_strdup(CAP_PRODUCTION_ALGORITHM, &ok);
    m->audience = ref_pb_strdup("sys.job.submit", &ok);
    m->key_id = ref_pb_strdup("k1", &ok);
    assert_true(ok);
    m->message_id.data = calloc(1, 16);
    assert_non_null(m->message_id.data);
    m->message_id.len = 16;
    p->signature_metadata = m;
    uint8_t *wire;
    size_t wire_len;
    assert_int_equal(cap_production_sign(p, k, &wire, &wire_len, NULL), CAP_OK);
    cap_packet_free(p);
    tb_raw(&b, "sys.job.submit", "gateway", wire, wire_len);
    /* change a byte of the job id "job-6" inside the body */
    uint8_t *hit = NULL;
    for (size_t i = 0; i + 5 <= wire_len; i++)
        if (memcmp(wire + i, "job-6", 5) == 0)
            hit = wire + i;
    assert_non_null(hit);
    hit[4] = '7';
    tb_raw(&b, "sys.job.submit", "gateway", wire, wire_len);
    free(wire);
    tb_close(&b);

    /* with the key: 1, 2 and 5 do not verify */
    conf_tc_options o = {0};
    const cap_key *keys[1] = {k};
    o.keys = keys;
    o.n_keys = 1;
    assert_int_equal(tb_check(&b, &o, &s, &st), CAP_OK);
    assert_int_equal(count_rule(&s, "bad-signature"), 3);
    assert_int_equal(s.record[0], 1);
    assert_int_equal(s.record[1], 2);
    assert_int_equal(s.record[2], 5);
    assert_int_equal(st.signatures_checked, 5);

    /* with both keys: only the tampered ones */
    const cap_key *both[2] = {k, other};
    o.keys = both;
    o.n_keys = 2;
    assert_int_equal(tb_check(&b, &o, &s, &st), CAP_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(count_rule(&s, "bad-signature"), 2);

    /* required: the unsigned one is flagged too */
    o.require_signatures = 1;
    assert_int_equal(tb_check(&b, &o, &s, &st), CAP_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(count_rule(&s, "missing-signature"), 1);

    /* no key, not required: signatures are not judged */
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_OK);
    assert_int_equal(s.n, 0);
    free(b.buf);
    cap_key_free(k);
    cap_key_free(other);
}

static void test_eviction_bounds_memory(void **state)
{
    (void)state;
    tb b;
    seen s;
    conf_tc_stats st;
    tb_open(&b, CAP_TRACE_BINARY);
    char job[32];
    for (int i = 0; i < 200; i++) {
        snprintf(job, sizeof job, "job-%d", i);
        start_job(&b, job, &ID1);
        tb_put(&b, "sys.job.result", pkt_result("w-1", job, REF_JOB_SUCCEEDED, "", &ID1));
    }
    tb_close(&b);
    conf_tc_options o = {.evict_after = 10};
    assert_int_equal(tb_check(&b, &o, &s, &st), CAP_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(st.jobs_seen, 200);
    assert_true(st.jobs_live <= 5);
    assert_true(st.evicted >= 195);

    /* a hard cap on live jobs drops the oldest */
    o.evict_after = 0;
    o.max_jobs = 8;
    assert_int_equal(tb_check(&b, &o, &s, &st), CAP_OK);
    assert_true(st.jobs_live <= 8);
    assert_int_equal(st.evicted + st.evicted_live + st.jobs_live, 200);
    free(b.buf);

    /* a terminal job is remembered while it is recent: a re-dispatch is caught */
    tb_open(&b, CAP_TRACE_BINARY);
    start_job(&b, "job-x", &ID1);
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-x", REF_JOB_SUCCEEDED, "", &ID1));
    tb_put(&b, "worker.w-1.jobs", pkt_request("scheduler", "job-x", &ID2));
    tb_close(&b);
    o.max_jobs = 0;
    o.evict_after = 10;
    assert_int_equal(tb_check(&b, &o, &s, &st), CAP_OK);
    assert_int_equal(s.n, 1);
    free(b.buf);
}

static void test_truncated_trace(void **state)
{
    (void)state;
    tb b;
    seen s;
    conf_tc_stats st;
    tb_open(&b, CAP_TRACE_BINARY);
    start_job(&b, "job-1", &ID1);
    tb_put(&b, "sys.job.result", pkt_result("w-1", "job-1", REF_JOB_FAILED_FATAL, "x", &ID1));
    tb_put(&b, "worker.w-1.jobs", pkt_request("scheduler", "job-1", &ID2));
    tb_put(&b, "sys.job.submit", pkt_request("gateway", "job-2", NULL));
    tb_close(&b);
    b.len -= 5; /* cut the last record */
    assert_int_equal(tb_check(&b, NULL, &s, &st), CAP_ETRACE);
    assert_int_equal(s.n, 1); /* the records before the cut were judged */
    assert_int_equal(st.records, 4);
    free(b.buf);

    /* not a trace at all */
    char junk[] = "hello";
    FILE *f = fmemopen(junk, 5, "rb");
    cap_diag d;
    assert_int_equal(conf_tc_check_file(f, CAP_TRACE_AUTO, NULL, NULL, NULL, NULL, &st, &d),
                     CAP_ETRACE);
    fclose(f);
}

static void test_options(void **state)
{
    (void)state;
    conf_tc *c;
    conf_tc_options o = {.n_keys = CONF_TC_MAX_KEYS + 1};
    assert_int_equal(conf_tc_new(&o, NULL, NULL, &c), CAP_EINVAL);
    assert_null(c);
    assert_int_equal(conf_tc_new(NULL, NULL, NULL, &c), CAP_OK);
    /* non-publish records are counted and skipped */
    cap_trace_record r = {.time = 1, .kind = CAP_TRACE_DROP, .subject = "x", .note = "loss"};
    assert_int_equal(conf_tc_feed(c, &r), CAP_OK);
    conf_tc_stats st;
    conf_tc_get_stats(c, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.packets, 0);
    conf_tc_free(c);
    conf_tc_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_lifecycle),
        cmocka_unit_test(test_retry_after_fatal_is_backward),
        cmocka_unit_test(test_dispatch_after_deny),
        cmocka_unit_test(test_one_terminal_and_cancel_release),
        cmocka_unit_test(test_stale_attempt),
        cmocka_unit_test(test_attempt_order),
        cmocka_unit_test(test_duplicate_side_effect),
        cmocka_unit_test(test_undecodable),
        cmocka_unit_test(test_signatures),
        cmocka_unit_test(test_eviction_bounds_memory),
        cmocka_unit_test(test_truncated_trace),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
