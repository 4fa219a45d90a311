/* Replay and duplicate guard: verdicts, keys, retention, expiry of signed
 * packets, message-id conflicts, bounds and eviction order, and a
 * model check of the store against a plain list. */
#include "testutil.h"

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_schema.h"
#include "cap_sign.h"
#include "cap_sha256.h"
#include "ref_dedupe.h"

#define SEC INT64_C(1000000000)
#define T0_S INT64_C(1704164645)
#define T0 (T0_S * SEC)
#define TTL (15 * 60 * SEC)
#define SKEW (60 * SEC)

/* --- packets -------------------------------------------------------------- */

typedef struct {
    cap_packet pkt;
    Google__Protobuf__Timestamp created_at, expires_at;
    Cordum__Agent__V1__SignatureMetadata md;
    Cordum__Agent__V1__IdentityBinding identity;
    Cordum__Agent__V1__JobRequest req;
    Cordum__Agent__V1__JobResult res;
    Cordum__Agent__V1__Heartbeat hb;
    Cordum__Agent__V1__DispatchIdentity dispatch;
    Cordum__Agent__V1__JobRequest__LabelsEntry label;
    Cordum__Agent__V1__JobRequest__LabelsEntry *labels[1];
    uint8_t message_id[16];
} pk;

static void pk_base(pk *p)
{
    memset(p, 0, sizeof *p);
    cap_packet pkt = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Cordum__Agent__V1__SignatureMetadata md = CORDUM__AGENT__V1__SIGNATURE_METADATA__INIT;
    Cordum__Agent__V1__IdentityBinding id = CORDUM__AGENT__V1__IDENTITY_BINDING__INIT;
    Cordum__Agent__V1__JobRequest req = CORDUM__AGENT__V1__JOB_REQUEST__INIT;
    Cordum__Agent__V1__JobResult res = CORDUM__AGENT__V1__JOB_RESULT__INIT;
    Cordum__Agent__V1__Heartbeat hb = CORDUM__AGENT__V1__HEARTBEAT__INIT;
    Cordum__Agent__V1__DispatchIdentity di = CORDUM__AGENT__V1__DISPATCH_IDENTITY__INIT;
    Cordum__Agent__V1__JobRequest__LabelsEntry le = CORDUM__AGENT__V1__JOB_REQUEST__LABELS_ENTRY__INIT;
    p->pkt = pkt;
    p->created_at = ts;
    p->expires_at = ts;
    p->md = md;
    p->identity = id;
    p->req = req;
    p->res = res;
    p->hb = hb;
    p->dispatch = di;
    p->label = le;
    p->created_at.seconds = T0_S;
    p->pkt.trace_id = "trace-1";
    p->pkt.sender_id = "sched-1";
    p->pkt.created_at = &p->created_at;
    p->pkt.protocol_version = 1;
}

/* A JobRequest; dispatch_id NULL: no DispatchIdentity. */
static void pk_request(pk *p, const char *job, const char *dispatch_id, uint64_t attempt)
{
    pk_base(p);
    p->req.job_id = (char *)job;
    p->req.topic = "job.tools";
    p->req.tenant_id = "tenant-1";
    if (dispatch_id) {
        p->dispatch.dispatch_id = (char *)dispatch_id;
        p->dispatch.attempt = attempt;
        p->dispatch.assigned_worker_id = "wrk-1";
        p->req.dispatch = &p->dispatch;
    }
    p->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    p->pkt.job_request = &p->req;
}

static void pk_result(pk *p, const char *job, const char *dispatch_id, uint64_t attempt,
                      Cordum__Agent__V1__JobStatus status)
{
    pk_base(p);
    p->pkt.sender_id = "wrk-1";
    p->res.job_id = (char *)job;
    p->res.status = status;
    p->res.worker_id = "wrk-1";
    p->dispatch.dispatch_id = (char *)dispatch_id;
    p->dispatch.attempt = attempt;
    p->dispatch.assigned_worker_id = "wrk-1";
    p->res.dispatch = &p->dispatch;
    p->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
    p->pkt.job_result = &p->res;
}

static void pk_heartbeat(pk *p, const char *sender)
{
    pk_base(p);
    p->pkt.sender_id = (char *)sender;
    p->hb.worker_id = (char *)sender;
    p->hb.active_jobs = 2;
    p->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
    p->pkt.heartbeat = &p->hb;
}

/* CAP-PRODUCTION signature metadata expiring at expires_s (Unix seconds). */
static void pk_meta(pk *p, int64_t expires_s, uint8_t mid)
{
    for (int i = 0; i < 16; i++)
        p->message_id[i] = (uint8_t)(mid + i);
    p->expires_at.seconds = expires_s;
    p->md.profile_version = CAP_PRODUCTION_PROFILE;
    p->md.algorithm = CAP_PRODUCTION_ALGORITHM;
    p->md.message_id.data = p->message_id;
    p->md.message_id.len = 16;
    p->md.audience = "sys.job.submit";
    p->md.expires_at = &p->expires_at;
    p->md.key_id = "key-1";
    p->identity.tenant_id = "tenant-1";
    p->pkt.signature_metadata = &p->md;
    p->pkt.identity = &p->identity;
}

static uint8_t *pk_wire(const pk *p, size_t *len)
{
    uint8_t *wire = NULL;
    assert_int_equal(cap_encode(&p->pkt.base, &wire, len), CAP_OK);
    return wire;
}

static cap_key *key_d1(void)
{
    uint8_t d[32] = {0};
    d[31] = 1;
    cap_key *k = NULL;
    assert_int_equal(cap_key_from_scalar(d, &k), CAP_OK);
    return k;
}

/* The CAP-PRODUCTION wire form: canonical body || field 14. */
static uint8_t *pk_signed(const pk *p, size_t *len)
{
    cap_key *k = key_d1();
    uint8_t *wire = NULL;
    assert_int_equal(cap_production_sign(&p->pkt, k, &wire, len, NULL), CAP_OK);
    cap_key_free(k);
    return wire;
}

/* Decodes the bytes as a receiver would and asks the store. */
static int check_wire(ref_dedupe *d, const uint8_t *wire, size_t len, int64_t now,
                      ref_dedupe_result *r)
{
    cap_packet *got = NULL;
    cap_diag diag;
    assert_int_equal(cap_packet_decode(wire, len, NULL, CAP_DECODE_LENIENT, &got, &diag), CAP_OK);
    int v = ref_dedupe_check(d, got, wire, len, now, r);
    cap_packet_free(got);
    return v;
}

static int check_pk(ref_dedupe *d, const pk *p, int64_t now, ref_dedupe_result *r)
{
    size_t len = 0;
    uint8_t *wire = pk_wire(p, &len);
    int v = check_wire(d, wire, len, now, r);
    free(wire);
    return v;
}

static int check_signed(ref_dedupe *d, const pk *p, int64_t now, ref_dedupe_result *r)
{
    size_t len = 0;
    uint8_t *wire = pk_signed(p, &len);
    int v = check_wire(d, wire, len, now, r);
    free(wire);
    return v;
}

static ref_dedupe *store(int64_t ttl, size_t max, ref_dedupe_full_policy on_full)
{
    ref_dedupe_config c = ref_dedupe_config_default();
    c.ttl_ns = ttl;
    c.max_entries = max;
    c.on_full = on_full;
    ref_dedupe *d = NULL;
    assert_int_equal(ref_dedupe_new(&c, &d), CAP_OK);
    assert_non_null(d);
    return d;
}

/* --- config --------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    ref_dedupe_config c = ref_dedupe_config_default();
    assert_true(c.ttl_ns == 15 * 60 * SEC);
    assert_int_equal(c.max_entries, 65536);
    assert_true(c.skew_ns == 60 * SEC);
    assert_int_equal(c.on_full, REF_DEDUPE_EVICT_OLDEST);
    assert_int_equal(ref_dedupe_config_check(&c), CAP_OK);

    ref_dedupe *d = NULL;
    ref_dedupe_config bad = c;
    bad.ttl_ns = 0;
    assert_int_equal(ref_dedupe_new(&bad, &d), CAP_EINVAL);
    assert_null(d);
    bad = c;
    bad.max_entries = 0;
    assert_int_equal(ref_dedupe_config_check(&bad), CAP_EINVAL);
    bad.max_entries = REF_DEDUPE_MAX_ENTRIES_LIMIT + 1;
    assert_int_equal(ref_dedupe_config_check(&bad), CAP_EINVAL);
    bad = c;
    bad.skew_ns = -1;
    assert_int_equal(ref_dedupe_config_check(&bad), CAP_EINVAL);
    bad = c;
    bad.on_full = (ref_dedupe_full_policy)5;
    assert_int_equal(ref_dedupe_config_check(&bad), CAP_EINVAL);
    assert_int_equal(ref_dedupe_config_check(NULL), CAP_EINVAL);
    assert_int_equal(ref_dedupe_new(NULL, NULL), CAP_EINVAL);

    assert_int_equal(ref_dedupe_new(NULL, &d), CAP_OK);
    assert_int_equal(ref_dedupe_count(d), 0);
    ref_dedupe_free(d);
    ref_dedupe_free(NULL);

    assert_string_equal(ref_dedupe_verdict_name(REF_DEDUPE_EXPIRED), "expired");
    assert_string_equal(ref_dedupe_verdict_name((ref_dedupe_verdict)9), "unknown");
    assert_string_equal(ref_dedupe_key_kind_name(REF_DEDUPE_KEY_MESSAGE_ID), "message_id");
}

/* --- first, duplicate, TTL ------------------------------------------------ */

static void test_first_then_duplicate(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 16, REF_DEDUPE_EVICT_OLDEST);
    pk p;
    pk_request(&p, "job-1", NULL, 0);
    ref_dedupe_result r;
    assert_int_equal(check_pk(d, &p, T0, &r), REF_DEDUPE_FIRST);
    assert_int_equal(r.verdict, REF_DEDUPE_FIRST);
    assert_true(r.entry.seq == 1);
    assert_true(r.first_seen == T0);
    assert_true(r.retained_until == T0 + TTL);
    assert_int_equal(r.evicted, 0);
    assert_int_equal(ref_dedupe_count(d), 1);

    assert_int_equal(check_pk(d, &p, T0 + SEC, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(r.matched, REF_DEDUPE_KEY_BODY);
    assert_true(r.entry.seq == 1);
    assert_true(r.first_seen == T0);
    assert_int_equal(ref_dedupe_count(d), 1);
    /* A third and fourth delivery: still the one entry. */
    assert_int_equal(check_pk(d, &p, T0 + 2 * SEC, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(check_pk(d, &p, T0 - SEC, &r), REF_DEDUPE_DUPLICATE); /* clock stepped back */

    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.first == 1 && st.duplicate == 3 && st.expired == 0 && st.conflict == 0);
    ref_dedupe_free(d);
}

static void test_ttl_from_first_sighting(void **state)
{
    (void)state;
    ref_dedupe *d = store(10 * SEC, 16, REF_DEDUPE_EVICT_OLDEST);
    pk p;
    pk_heartbeat(&p, "wrk-1");
    ref_dedupe_result r;
    assert_int_equal(check_pk(d, &p, T0, &r), REF_DEDUPE_FIRST);
    assert_int_equal(check_pk(d, &p, T0 + 5 * SEC, &r), REF_DEDUPE_DUPLICATE);
    /* The duplicate did not extend the window: gone at exactly T0 + TTL. */
    assert_int_equal(check_pk(d, &p, T0 + 10 * SEC - 1, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(check_pk(d, &p, T0 + 10 * SEC, &r), REF_DEDUPE_FIRST);
    assert_true(r.entry.seq == 2);
    assert_true(r.first_seen == T0 + 10 * SEC);
    assert_int_equal(ref_dedupe_count(d), 1);
    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.purged == 1);

    /* expire() and next_expiry() for a caller's timer. */
    int64_t at = 0;
    assert_int_equal(ref_dedupe_next_expiry(d, &at), 1);
    assert_true(at == T0 + 20 * SEC);
    assert_int_equal(ref_dedupe_expire(d, T0 + 20 * SEC - 1), 0);
    assert_int_equal(ref_dedupe_expire(d, T0 + 20 * SEC), 1);
    assert_int_equal(ref_dedupe_count(d), 0);
    assert_int_equal(ref_dedupe_next_expiry(d, &at), 0);
    ref_dedupe_free(d);
}

/* --- logical keys --------------------------------------------------------- */

static void test_job_request_keys(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 64, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    pk p;
    pk_request(&p, "job-7", "dsp-1", 1);
    assert_int_equal(check_pk(d, &p, T0, &r), REF_DEDUPE_FIRST);

    /* A redelivery with other bytes (new trace, later created_at, another
     * sender) but the same job and dispatch identity. */
    pk q;
    pk_request(&q, "job-7", "dsp-1", 1);
    q.pkt.trace_id = "trace-2";
    q.created_at.seconds = T0_S + 30;
    q.pkt.sender_id = "sched-2";
    assert_int_equal(check_pk(d, &q, T0 + SEC, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(r.matched, REF_DEDUPE_KEY_JOB_REQUEST);
    assert_true(r.entry.seq == 1);

    /* A retry: a new dispatch_id, or a new attempt, is a new delivery. */
    pk_request(&q, "job-7", "dsp-2", 1);
    assert_int_equal(check_pk(d, &q, T0 + SEC, &r), REF_DEDUPE_FIRST);
    pk_request(&q, "job-7", "dsp-1", 2);
    assert_int_equal(check_pk(d, &q, T0 + SEC, &r), REF_DEDUPE_FIRST);
    pk_request(&q, "job-8", "dsp-1", 1);
    assert_int_equal(check_pk(d, &q, T0 + SEC, &r), REF_DEDUPE_FIRST);

    /* The submit path (no dispatch): the job id alone... */
    pk_request(&p, "job-9", NULL, 0);
    assert_int_equal(check_pk(d, &p, T0, &r), REF_DEDUPE_FIRST);
    pk_request(&q, "job-9", NULL, 0);
    q.pkt.trace_id = "trace-redelivered";
    assert_int_equal(check_pk(d, &q, T0 + SEC, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(r.matched, REF_DEDUPE_KEY_JOB_REQUEST);
    /* ...unless a re-publish names itself a distinct bus message. */
    q.label.key = REF_DEDUPE_BUS_MSG_ID_LABEL;
    q.label.value = "approval:job-9";
    q.labels[0] = &q.label;
    q.req.n_labels = 1;
    q.req.labels = q.labels;
    assert_int_equal(check_pk(d, &q, T0 + 2 * SEC, &r), REF_DEDUPE_FIRST);
    q.pkt.trace_id = "trace-approval-again";
    assert_int_equal(check_pk(d, &q, T0 + 3 * SEC, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(r.matched, REF_DEDUPE_KEY_JOB_REQUEST);

    /* No job_id: only the body key. */
    pk_request(&p, "", NULL, 0);
    size_t len = 0;
    uint8_t *wire = pk_wire(&p, &len);
    ref_dedupe_probe probe;
    assert_int_equal(ref_dedupe_probe_packet(&p.pkt, wire, len, &probe), CAP_OK);
    assert_int_equal(probe.n_keys, 1);
    assert_int_equal(probe.keys[0].kind, REF_DEDUPE_KEY_BODY);
    assert_int_equal(probe.has_expiry, 0);
    /* Probing with the store's cache warmed gives the same probe, with or
     * without a store, and admitting it later decides as a check does. */
    ref_dedupe_probe warm;
    assert_int_equal(ref_dedupe_probe_packet_warm(d, &p.pkt, wire, len, &warm), CAP_OK);
    assert_memory_equal(&warm, &probe, sizeof probe);
    assert_int_equal(ref_dedupe_probe_packet_warm(NULL, &p.pkt, wire, len, &warm), CAP_OK);
    assert_memory_equal(&warm, &probe, sizeof probe);
    assert_int_equal(ref_dedupe_admit(d, &warm, T0 + 4 * SEC, &r), REF_DEDUPE_FIRST);
    assert_int_equal(ref_dedupe_admit(d, &warm, T0 + 5 * SEC, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(ref_dedupe_probe_packet_warm(d, &p.pkt, wire, 0, &warm), CAP_EINVAL);
    free(wire);
    ref_dedupe_free(d);
}

static void test_job_result_keys(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 64, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    const Cordum__Agent__V1__JobStatus ok = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED;
    const Cordum__Agent__V1__JobStatus failed = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED;
    pk p, q;
    /* TCK duplicates/cp-duplicate-result-applies-once: two deliveries of
     * the result for dsp-1 attempt 1, one side effect. */
    int side_effects = 0;
    pk_result(&p, "job-1", "dsp-1", 1, ok);
    for (int i = 0; i < 2; i++) {
        pk_result(&q, "job-1", "dsp-1", 1, ok);
        q.created_at.seconds = T0_S + i; /* a re-sent copy, other bytes */
        if (check_pk(d, &q, T0 + i * SEC, &r) == REF_DEDUPE_FIRST)
            side_effects++;
    }
    assert_int_equal(side_effects, 1);
    assert_int_equal(r.matched, REF_DEDUPE_KEY_JOB_RESULT);

    /* Another status, attempt or dispatch is another event. */
    pk_result(&q, "job-1", "dsp-1", 1, failed);
    assert_int_equal(check_pk(d, &q, T0, &r), REF_DEDUPE_FIRST);
    pk_result(&q, "job-1", "dsp-1", 2, ok);
    assert_int_equal(check_pk(d, &q, T0, &r), REF_DEDUPE_FIRST);
    pk_result(&q, "job-1", "dsp-2", 1, ok);
    assert_int_equal(check_pk(d, &q, T0, &r), REF_DEDUPE_FIRST);
    /* The body key of the exact first copy still matches first. */
    assert_int_equal(check_pk(d, &p, T0 + 5 * SEC, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(r.matched, REF_DEDUPE_KEY_BODY);
    ref_dedupe_free(d);
}

/* TCK duplicates/worker-exact-redelivery-replays-idempotent-result: the
 * worker tags the entry with its recorded result and replays it. */
static void test_tag_replays_result(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 8, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    pk p;
    pk_request(&p, "job-1", "dsp-1", 1);
    int handler_runs = 0, replays = 0;
    for (int delivery = 0; delivery < 2; delivery++) {
        int v = check_pk(d, &p, T0 + delivery, &r);
        if (v == REF_DEDUPE_FIRST) {
            handler_runs++;
            assert_true(r.tag == 0);
            assert_int_equal(ref_dedupe_set_tag(d, r.entry, 4242), CAP_OK);
        } else {
            assert_int_equal(v, REF_DEDUPE_DUPLICATE);
            assert_true(r.tag == 4242);
            replays++;
        }
    }
    assert_int_equal(handler_runs, 1);
    assert_int_equal(replays, 1);

    /* TCK duplicates/worker-distinct-dispatch-is-not-suppressed. */
    pk_request(&p, "job-1", "dsp-2", 1);
    assert_int_equal(check_pk(d, &p, T0 + 2, &r), REF_DEDUPE_FIRST);
    assert_true(r.tag == 0);

    ref_dedupe_entry stale = {.seq = 99, .slot = 0};
    assert_int_equal(ref_dedupe_set_tag(d, stale, 1), CAP_EINVAL);
    ref_dedupe_entry none = {0, 0};
    assert_int_equal(ref_dedupe_set_tag(d, none, 1), CAP_EINVAL);
    ref_dedupe_free(d);
}

static void test_body_key_is_per_sender(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 8, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    pk p;
    /* A heartbeat has no logical key: its BODY key is the digest of its
     * bytes, which hold sender_id, so the same heartbeat from another
     * sender is another packet. */
    pk_heartbeat(&p, "wrk-1");
    size_t len = 0;
    uint8_t *wire = pk_wire(&p, &len);
    ref_dedupe_probe a;
    assert_int_equal(ref_dedupe_probe_packet(&p.pkt, wire, len, &a), CAP_OK);
    assert_int_equal(a.n_keys, 1);
    assert_int_equal(a.keys[0].kind, REF_DEDUPE_KEY_BODY);
    uint8_t digest[32];
    cap_sha256(wire, len, digest);
    assert_memory_equal(a.keys[0].id, digest, 32);
    assert_memory_equal(a.body_digest, digest, 32);
    assert_int_equal(ref_dedupe_check(d, &p.pkt, wire, len, T0, &r), REF_DEDUPE_FIRST);
    assert_int_equal(ref_dedupe_check(d, &p.pkt, wire, len, T0, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(r.matched, REF_DEDUPE_KEY_BODY);

    pk_heartbeat(&p, "wrk-2");
    p.hb.worker_id = "wrk-1"; /* only the sender differs */
    size_t len2 = 0;
    uint8_t *wire2 = pk_wire(&p, &len2);
    ref_dedupe_probe b;
    assert_int_equal(ref_dedupe_probe_packet(&p.pkt, wire2, len2, &b), CAP_OK);
    assert_memory_not_equal(a.keys[0].id, b.keys[0].id, 32);
    assert_int_equal(ref_dedupe_check(d, &p.pkt, wire2, len2, T0, &r), REF_DEDUPE_FIRST);
    assert_int_equal(ref_dedupe_check(d, &p.pkt, wire2, len2, T0, &r), REF_DEDUPE_DUPLICATE);
    free(wire2);
    free(wire);
    ref_dedupe_free(d);
}

/* ref_dedupe_check_probe hands back exactly the probe the stand-alone
 * probe function computes (the store hashes with its own SHA-256 context)
 * and gives ref_dedupe_check's verdicts. */
static void test_check_hands_back_the_probe(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 8, REF_DEDUPE_EVICT_OLDEST);
    pk p;
    pk_request(&p, "job-1", "dsp-1", 1);
    pk_meta(&p, T0_S + 120, 0x21);
    size_t len = 0;
    uint8_t *wire = pk_signed(&p, &len);
    cap_packet *got = NULL;
    assert_int_equal(cap_packet_decode(wire, len, NULL, CAP_DECODE_LENIENT, &got, NULL), CAP_OK);
    ref_dedupe_probe want, a, b;
    assert_int_equal(ref_dedupe_probe_packet(got, wire, len, &want), CAP_OK);
    assert_int_equal(want.n_keys, 3);
    ref_dedupe_result r;
    memset(&a, 0xab, sizeof a);
    assert_int_equal(ref_dedupe_check_probe(d, got, wire, len, T0, &r, &a), REF_DEDUPE_FIRST);
    assert_memory_equal(&a, &want, sizeof a);
    assert_int_equal(r.verdict, REF_DEDUPE_FIRST);
    /* Again (a second digest in the same reused context): the same probe. */
    assert_int_equal(ref_dedupe_check_probe(d, got, wire, len, T0 + SEC, &r, &b),
                     REF_DEDUPE_DUPLICATE);
    assert_memory_equal(&b, &want, sizeof b);
    assert_int_equal(r.matched, REF_DEDUPE_KEY_BODY);
    assert_int_equal(ref_dedupe_check_probe(d, got, wire, len, T0 + SEC, &r, NULL),
                     REF_DEDUPE_DUPLICATE);
    /* A packet that cannot be probed: the error, and a zeroed probe. */
    memset(&b, 0xab, sizeof b);
    assert_int_equal(ref_dedupe_check_probe(d, got, wire, 0, T0, &r, &b), CAP_EINVAL);
    ref_dedupe_probe zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&b, &zero, sizeof b);
    memset(&b, 0xab, sizeof b);
    assert_int_equal(ref_dedupe_check_probe(NULL, got, wire, len, T0, &r, &b), CAP_EINVAL);
    assert_memory_equal(&b, &zero, sizeof b);
    assert_int_equal(ref_dedupe_count(d), 1);
    cap_packet_free(got);
    free(wire);
    ref_dedupe_free(d);
}

/* --- signed packets: digest, expiry, conflicts ---------------------------- */

static void test_signed_body_digest(void **state)
{
    (void)state;
    pk p;
    pk_request(&p, "job-1", "dsp-1", 1);
    pk_meta(&p, T0_S + 120, 0x10);
    size_t len = 0, plain_len = 0;
    uint8_t *wire = pk_signed(&p, &len), *plain = pk_wire(&p, &plain_len);

    /* The digest is the one CAP-PRODUCTION admission returns. */
    cap_key *k = key_d1();
    cap_production_trust t = {.audience = "sys.job.submit", .tenant_id = "tenant-1",
                              .sender_id = "sched-1", .key_id = "key-1", .key = k,
                              .now_unix_nanos = T0};
    uint8_t digest[32];
    cap_packet *got = NULL;
    assert_int_equal(cap_production_verify(wire, len, NULL, &t, digest, &got, NULL), CAP_OK);
    ref_dedupe_probe a, b, c;
    assert_int_equal(ref_dedupe_probe_packet(got, wire, len, &a), CAP_OK);
    assert_memory_equal(a.body_digest, digest, 32);
    assert_int_equal(a.n_keys, 3);
    assert_int_equal(a.keys[0].kind, REF_DEDUPE_KEY_BODY);
    assert_int_equal(a.keys[1].kind, REF_DEDUPE_KEY_MESSAGE_ID);
    assert_int_equal(a.keys[2].kind, REF_DEDUPE_KEY_JOB_REQUEST);
    assert_int_equal(a.has_expiry, 1);
    assert_true(a.expires_at == T0 + 120 * SEC);
    /* The same probe from the digest alone. */
    assert_int_equal(ref_dedupe_probe_digest(got, digest, &b), CAP_OK);
    assert_memory_equal(&a, &b, sizeof a);
    /* The body is the bytes without field 14: the unsigned encoding of the
     * same packet has the same body digest. */
    assert_int_equal(ref_dedupe_probe_packet(got, plain, plain_len, &c), CAP_OK);
    assert_memory_equal(c.body_digest, digest, 32);
    assert_memory_equal(c.keys[0].id, a.keys[0].id, 32);
    cap_packet_free(got);
    cap_key_free(k);

    /* A malformed field 14 (two of them) is refused. */
    uint8_t *twice = malloc(len + (len - plain_len));
    assert_non_null(twice);
    memcpy(twice, wire, len);
    memcpy(twice + len, wire + plain_len, len - plain_len);
    assert_int_equal(ref_dedupe_probe_packet(&p.pkt, twice, len + (len - plain_len), &c),
                     CAP_EMALFORMED);
    free(twice);
    assert_int_equal(ref_dedupe_probe_packet(&p.pkt, wire, 0, &c), CAP_EINVAL);
    assert_int_equal(ref_dedupe_probe_packet(&p.pkt, NULL, len, &c), CAP_EINVAL);
    assert_int_equal(ref_dedupe_probe_packet(NULL, wire, len, &c), CAP_EINVAL);
    assert_int_equal(ref_dedupe_probe_digest(&p.pkt, NULL, &c), CAP_EINVAL);
    free(plain);
    free(wire);
}

static void test_expired_metadata(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 16, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    pk p;
    pk_request(&p, "job-1", "dsp-1", 1);
    pk_meta(&p, T0_S + 120, 0x20); /* expires 2 minutes after T0 */
    const int64_t exp = T0 + 120 * SEC;

    assert_int_equal(check_signed(d, &p, T0, &r), REF_DEDUPE_FIRST);
    assert_true(r.retained_until == T0 + TTL); /* TTL is longer than expiry + skew */
    /* Replays: duplicates while the metadata is valid (skew included)... */
    assert_int_equal(check_signed(d, &p, exp, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(check_signed(d, &p, exp + SKEW - 1, &r), REF_DEDUPE_DUPLICATE);
    /* ...rejected once it has expired, although the entry is still held. */
    assert_int_equal(check_signed(d, &p, exp + SKEW, &r), REF_DEDUPE_EXPIRED);
    assert_int_equal(r.verdict, REF_DEDUPE_EXPIRED);
    assert_true(r.entry.seq == 0);
    assert_int_equal(check_signed(d, &p, exp + 10 * SKEW, &r), REF_DEDUPE_EXPIRED);
    assert_int_equal(ref_dedupe_count(d), 1);

    /* A first sighting with expired metadata is rejected and not recorded. */
    pk q;
    pk_request(&q, "job-2", "dsp-1", 1);
    pk_meta(&q, T0_S - 61, 0x30);
    assert_int_equal(check_signed(d, &q, T0, &r), REF_DEDUPE_EXPIRED);
    assert_int_equal(ref_dedupe_count(d), 1);
    pk_meta(&q, T0_S - 59, 0x30); /* inside the skew: still acceptable */
    assert_int_equal(check_signed(d, &q, T0, &r), REF_DEDUPE_FIRST);
    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.expired == 3);
    ref_dedupe_free(d);

    /* With a short TTL a signed packet is remembered until expiry + skew. */
    d = store(10 * SEC, 16, REF_DEDUPE_EVICT_OLDEST);
    assert_int_equal(check_signed(d, &p, T0, &r), REF_DEDUPE_FIRST);
    assert_true(r.retained_until == exp + SKEW);
    assert_int_equal(check_signed(d, &p, T0 + 100 * SEC, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(check_signed(d, &p, exp + SKEW - 1, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(check_signed(d, &p, exp + SKEW, &r), REF_DEDUPE_EXPIRED);
    ref_dedupe_free(d);
}

static void test_message_id_conflict(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 16, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    pk p, q;
    pk_request(&p, "job-1", "dsp-1", 1);
    pk_meta(&p, T0_S + 120, 0x40);
    assert_int_equal(check_signed(d, &p, T0, &r), REF_DEDUPE_FIRST);
    uint64_t first = r.entry.seq;

    /* The same message id on another body: rejected, and nothing recorded. */
    pk_request(&q, "job-2", "dsp-9", 1);
    pk_meta(&q, T0_S + 120, 0x40);
    assert_int_equal(check_signed(d, &q, T0 + SEC, &r), REF_DEDUPE_CONFLICT);
    assert_int_equal(r.matched, REF_DEDUPE_KEY_MESSAGE_ID);
    assert_true(r.entry.seq == first);
    assert_int_equal(ref_dedupe_count(d), 1);
    assert_int_equal(check_signed(d, &q, T0 + 2 * SEC, &r), REF_DEDUPE_CONFLICT);

    /* The key is scoped: another sender, tenant or audience may use it. */
    q.pkt.sender_id = "sched-2";
    assert_int_equal(check_signed(d, &q, T0 + SEC, &r), REF_DEDUPE_FIRST);
    pk_request(&q, "job-3", "dsp-8", 1);
    pk_meta(&q, T0_S + 120, 0x40);
    q.identity.tenant_id = "tenant-2";
    assert_int_equal(check_signed(d, &q, T0 + SEC, &r), REF_DEDUPE_FIRST);
    pk_request(&q, "job-4", "dsp-7", 1);
    pk_meta(&q, T0_S + 120, 0x40);
    q.md.audience = "worker.wrk-1.jobs";
    assert_int_equal(check_signed(d, &q, T0 + SEC, &r), REF_DEDUPE_FIRST);

    /* Expiry comes before the conflict check. */
    pk_request(&q, "job-5", "dsp-6", 1);
    pk_meta(&q, T0_S + 120, 0x40);
    assert_int_equal(check_signed(d, &q, T0 + 200 * SEC, &r), REF_DEDUPE_EXPIRED);
    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.conflict == 2);
    ref_dedupe_free(d);
}

/* --- bounds --------------------------------------------------------------- */

static void test_eviction_oldest_first(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 3, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    pk a, b, c, e;
    pk_request(&a, "A", NULL, 0);
    pk_request(&b, "B", NULL, 0);
    pk_request(&c, "C", NULL, 0);
    pk_request(&e, "D", NULL, 0);
    assert_int_equal(check_pk(d, &a, T0, &r), REF_DEDUPE_FIRST);
    assert_int_equal(check_pk(d, &b, T0 + 1, &r), REF_DEDUPE_FIRST);
    assert_int_equal(check_pk(d, &c, T0 + 2, &r), REF_DEDUPE_FIRST);
    /* A duplicate does not refresh A's place in the order. */
    assert_int_equal(check_pk(d, &a, T0 + 3, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(check_pk(d, &e, T0 + 4, &r), REF_DEDUPE_FIRST);
    assert_int_equal(r.evicted, 1);
    assert_true(r.evicted_seq == 1);
    assert_true(r.entry.seq == 4);
    assert_int_equal(ref_dedupe_count(d), 3);
    /* A was evicted: it is new again, and pushes out B. */
    assert_int_equal(check_pk(d, &a, T0 + 5, &r), REF_DEDUPE_FIRST);
    assert_true(r.evicted_seq == 2);
    assert_int_equal(check_pk(d, &c, T0 + 6, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(check_pk(d, &e, T0 + 6, &r), REF_DEDUPE_DUPLICATE);
    ref_dedupe_entry oldest;
    assert_int_equal(ref_dedupe_oldest(d, &oldest), 1);
    assert_true(oldest.seq == 3);
    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.evicted == 2);
    ref_dedupe_free(d);
}

static void test_full_purges_before_evicting(void **state)
{
    (void)state;
    ref_dedupe *d = store(10 * SEC, 3, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    pk s, x, y, z;
    /* S is signed and held until its expiry + skew; X and Y only for the
     * TTL, so at T0+20s the table is full but two entries behind the
     * oldest are dead. */
    pk_request(&s, "S", "dsp-1", 1);
    pk_meta(&s, T0_S + 120, 0x50);
    pk_request(&x, "X", NULL, 0);
    pk_request(&y, "Y", NULL, 0);
    pk_request(&z, "Z", NULL, 0);
    assert_int_equal(check_signed(d, &s, T0, &r), REF_DEDUPE_FIRST);
    assert_int_equal(check_pk(d, &x, T0 + SEC, &r), REF_DEDUPE_FIRST);
    assert_int_equal(check_pk(d, &y, T0 + 2 * SEC, &r), REF_DEDUPE_FIRST);
    assert_int_equal(ref_dedupe_count(d), 3);
    assert_int_equal(check_pk(d, &z, T0 + 20 * SEC, &r), REF_DEDUPE_FIRST);
    assert_int_equal(r.evicted, 0);
    assert_int_equal(ref_dedupe_count(d), 2);
    assert_int_equal(check_signed(d, &s, T0 + 21 * SEC, &r), REF_DEDUPE_DUPLICATE);
    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.evicted == 0 && st.purged == 2);
    ref_dedupe_free(d);
}

static void test_full_refuse(void **state)
{
    (void)state;
    ref_dedupe *d = store(10 * SEC, 2, REF_DEDUPE_REFUSE);
    ref_dedupe_result r;
    pk a, b, c;
    pk_request(&a, "A", NULL, 0);
    pk_request(&b, "B", NULL, 0);
    pk_request(&c, "C", NULL, 0);
    assert_int_equal(check_pk(d, &a, T0, &r), REF_DEDUPE_FIRST);
    assert_int_equal(check_pk(d, &b, T0, &r), REF_DEDUPE_FIRST);
    assert_int_equal(check_pk(d, &c, T0 + SEC, &r), CAP_EFULL);
    assert_true(r.entry.seq == 0);
    assert_int_equal(ref_dedupe_count(d), 2);
    /* Held entries are still recognised, and the refusal recorded nothing. */
    assert_int_equal(check_pk(d, &a, T0 + SEC, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(check_pk(d, &c, T0 + 2 * SEC, &r), CAP_EFULL);
    /* Room comes back when entries expire. */
    assert_int_equal(check_pk(d, &c, T0 + 10 * SEC, &r), REF_DEDUPE_FIRST);
    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.refused == 2 && st.evicted == 0);
    ref_dedupe_free(d);
}

static void test_forget(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 4, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    pk p;
    pk_request(&p, "job-1", NULL, 0);
    assert_int_equal(check_pk(d, &p, T0, &r), REF_DEDUPE_FIRST);
    ref_dedupe_entry e = r.entry;
    /* The first delivery was NAKed before any side effect: forget it. */
    assert_int_equal(ref_dedupe_forget(d, e), 1);
    assert_int_equal(ref_dedupe_forget(d, e), 0);
    assert_int_equal(ref_dedupe_set_tag(d, e, 7), CAP_EINVAL);
    assert_int_equal(ref_dedupe_count(d), 0);
    assert_int_equal(check_pk(d, &p, T0 + 1, &r), REF_DEDUPE_FIRST);
    assert_true(r.entry.seq == 2);
    /* The new entry may reuse the slot; the old handle still names nothing. */
    assert_int_equal(ref_dedupe_forget(d, e), 0);
    assert_int_equal(check_pk(d, &p, T0 + 2, &r), REF_DEDUPE_DUPLICATE);
    assert_int_equal(ref_dedupe_forget(NULL, e), CAP_EINVAL);
    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.forgotten == 1);
    ref_dedupe_free(d);
}

static void test_bound_holds_under_load(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 1000, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_result r;
    char job[32];
    pk p;
    for (int i = 0; i < 5000; i++) {
        snprintf(job, sizeof job, "job-%d", i);
        pk_request(&p, job, NULL, 0);
        assert_int_equal(check_pk(d, &p, T0 + i, &r), REF_DEDUPE_FIRST);
        assert_true(r.entry.seq == (uint64_t)i + 1);
        assert_int_equal(r.evicted, i >= 1000);
        if (i >= 1000)
            assert_true(r.evicted_seq == (uint64_t)i - 999);
        assert_true(ref_dedupe_count(d) <= 1000);
    }
    ref_dedupe_entry oldest;
    assert_int_equal(ref_dedupe_oldest(d, &oldest), 1);
    assert_true(oldest.seq == 4001);
    /* The last 1000 are held, the ones before are not. */
    pk_request(&p, "job-4000", NULL, 0);
    assert_int_equal(check_pk(d, &p, T0 + 5000, &r), REF_DEDUPE_DUPLICATE);
    ref_dedupe_free(d);
}

static void test_admit_errors(void **state)
{
    (void)state;
    ref_dedupe *d = store(TTL, 4, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_probe probe;
    memset(&probe, 0, sizeof probe);
    ref_dedupe_result r;
    assert_int_equal(ref_dedupe_admit(d, &probe, T0, &r), CAP_EINVAL);
    probe.n_keys = REF_DEDUPE_MAX_KEYS + 1;
    assert_int_equal(ref_dedupe_admit(d, &probe, T0, &r), CAP_EINVAL);
    probe.n_keys = 1;
    assert_int_equal(ref_dedupe_admit(NULL, &probe, T0, &r), CAP_EINVAL);
    assert_int_equal(ref_dedupe_admit(d, NULL, T0, &r), CAP_EINVAL);
    assert_int_equal(ref_dedupe_admit(d, &probe, T0, NULL), REF_DEDUPE_FIRST);
    pk p;
    pk_request(&p, "job-1", NULL, 0);
    size_t len = 0;
    uint8_t *wire = pk_wire(&p, &len);
    assert_int_equal(ref_dedupe_check(NULL, &p.pkt, wire, len, T0, &r), CAP_EINVAL);
    free(wire);
    ref_dedupe_stats st = ref_dedupe_stats_get(NULL);
    assert_true(st.first == 0);
    assert_int_equal(ref_dedupe_count(NULL), 0);
    ref_dedupe_free(d);
}

/* --- model check ---------------------------------------------------------- */

/* A plain list with the documented rules, checked against the store over a
 * long seeded run with few distinct keys (so that lookups, expiry, eviction,
 * forgetting and index deletions all happen often), keys crafted so that
 * many share their hash (and their tag byte, key byte 8), and a small
 * bound; then again with a larger bound, under which the index is rebuilt
 * larger while entries are held. */
#define M_CAP 300

typedef struct {
    uint64_t seq;
    int64_t first_seen, expires;
    uint8_t body[32];
    ref_dedupe_key keys[REF_DEDUPE_MAX_KEYS];
    size_t n_keys;
} m_entry;

typedef struct {
    m_entry e[M_CAP];
    size_t n, max;
    uint64_t seq;
} model;

static uint64_t lcg(uint64_t *s)
{
    *s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return *s >> 33;
}

static void m_drop(model *m, size_t i)
{
    memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof m->e[0]);
    m->n--;
}

static int m_admit(model *m, const ref_dedupe_probe *pr, int64_t now, int64_t ttl, int64_t skew,
                   ref_dedupe_result *r)
{
    memset(r, 0, sizeof *r);
    if (pr->has_expiry && pr->expires_at <= now - skew) {
        r->verdict = REF_DEDUPE_EXPIRED;
        return REF_DEDUPE_EXPIRED;
    }
    for (size_t i = 0; i < m->n;)
        if (now >= m->e[i].expires)
            m_drop(m, i);
        else
            i++;
    for (size_t k = 0; k < pr->n_keys; k++)
        for (size_t i = 0; i < m->n; i++)
            for (size_t j = 0; j < m->e[i].n_keys; j++) {
                if (memcmp(m->e[i].keys[j].id, pr->keys[k].id, 32) != 0)
                    continue;
                r->matched = pr->keys[k].kind;
                r->entry.seq = m->e[i].seq;
                r->first_seen = m->e[i].first_seen;
                r->retained_until = m->e[i].expires;
                r->verdict = (pr->keys[k].kind == REF_DEDUPE_KEY_MESSAGE_ID &&
                              memcmp(m->e[i].body, pr->body_digest, 32) != 0)
                                 ? REF_DEDUPE_CONFLICT
                                 : REF_DEDUPE_DUPLICATE;
                return (int)r->verdict;
            }
    if (m->n == m->max) {
        r->evicted = 1;
        r->evicted_seq = m->e[0].seq;
        m_drop(m, 0);
    }
    m_entry *e = &m->e[m->n++];
    memset(e, 0, sizeof *e);
    e->seq = ++m->seq;
    e->first_seen = now;
    e->expires = now + ttl;
    if (pr->has_expiry && pr->expires_at + skew > e->expires)
        e->expires = pr->expires_at + skew;
    memcpy(e->body, pr->body_digest, 32);
    e->n_keys = pr->n_keys;
    memcpy(e->keys, pr->keys, sizeof e->keys);
    r->verdict = REF_DEDUPE_FIRST;
    r->entry.seq = e->seq;
    r->first_seen = now;
    r->retained_until = e->expires;
    return REF_DEDUPE_FIRST;
}

/* A key id: the first eight bytes (the hash) take only four values, so
 * most keys collide in the index and sit in long probe runs. */
static void m_key(ref_dedupe_key *k, ref_dedupe_key_kind kind, unsigned v)
{
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->id[7] = (uint8_t)(v % 4);
    k->id[8] = (uint8_t)kind;
    k->id[9] = (uint8_t)v;
    k->id[10] = (uint8_t)(v >> 8);
}

static void model_run(size_t max, unsigned keyspace, int64_t ttl, uint64_t seed)
{
    const int64_t skew = 5;
    ref_dedupe_config c = {.ttl_ns = ttl, .max_entries = max, .skew_ns = skew,
                           .on_full = REF_DEDUPE_EVICT_OLDEST};
    ref_dedupe *d = NULL;
    assert_int_equal(ref_dedupe_new(&c, &d), CAP_OK);
    static model m;
    memset(&m, 0, sizeof m);
    assert_true(max <= M_CAP);
    m.max = max;
    int64_t now = 1000;
    size_t seen[4] = {0};
    for (int step = 0; step < 40000; step++) {
        now += (int64_t)(lcg(&seed) % 3);
        ref_dedupe_probe pr;
        memset(&pr, 0, sizeof pr);
        unsigned body = (unsigned)(lcg(&seed) % keyspace);
        memset(pr.body_digest, 0, 32);
        pr.body_digest[0] = (uint8_t)body;
        m_key(&pr.keys[pr.n_keys++], REF_DEDUPE_KEY_BODY, body);
        if (lcg(&seed) % 3 == 0)
            m_key(&pr.keys[pr.n_keys++], REF_DEDUPE_KEY_MESSAGE_ID,
                  (unsigned)(lcg(&seed) % (keyspace / 2)));
        if (lcg(&seed) % 2 == 0)
            m_key(&pr.keys[pr.n_keys++], REF_DEDUPE_KEY_JOB_RESULT,
                  (unsigned)(lcg(&seed) % (keyspace / 2)));
        if (lcg(&seed) % 4 == 0) {
            pr.has_expiry = 1;
            pr.expires_at = now + (int64_t)(lcg(&seed) % 120) - 20;
        }
        ref_dedupe_result got, want;
        int vg = ref_dedupe_admit(d, &pr, now, &got);
        int vw = m_admit(&m, &pr, now, ttl, skew, &want);
        if (vg != vw || got.entry.seq != want.entry.seq || got.evicted != want.evicted ||
            got.evicted_seq != want.evicted_seq || got.first_seen != want.first_seen ||
            got.retained_until != want.retained_until ||
            (vg != REF_DEDUPE_FIRST && vg != REF_DEDUPE_EXPIRED && got.matched != want.matched))
            fail_msg("step %d: store %s seq %llu evicted %d/%llu, model %s seq %llu evicted %d/%llu",
                     step, ref_dedupe_verdict_name((ref_dedupe_verdict)vg),
                     (unsigned long long)got.entry.seq, got.evicted,
                     (unsigned long long)got.evicted_seq,
                     ref_dedupe_verdict_name((ref_dedupe_verdict)vw),
                     (unsigned long long)want.entry.seq, want.evicted,
                     (unsigned long long)want.evicted_seq);
        seen[vg]++;
        /* Now and then the caller forgets the entry it just recorded. */
        if (vg == REF_DEDUPE_FIRST && lcg(&seed) % 10 == 0) {
            assert_int_equal(ref_dedupe_forget(d, got.entry), 1);
            m_drop(&m, m.n - 1);
        }
        assert_true(ref_dedupe_count(d) <= max);
    }
    /* Every verdict and eviction actually happened. */
    for (int v = 0; v < 4; v++)
        assert_true(seen[v] > 100);
    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.evicted > 100 && st.purged > 100 && st.forgotten > 100);
    ref_dedupe_free(d);
}

static void test_model_check(void **state)
{
    (void)state;
    model_run(24, 40, 50, 20240601);
    model_run(M_CAP, 1200, 520, 20240602);
}

/* --- many entries ----------------------------------------------------------- */

/* A probe with n distinct pseudo-random keys (kinds BODY, MESSAGE_ID,
 * JOB_RESULT), numbered by i. */
static void big_probe(ref_dedupe_probe *pr, uint32_t i, size_t n)
{
    static const ref_dedupe_key_kind kinds[] = {REF_DEDUPE_KEY_BODY, REF_DEDUPE_KEY_MESSAGE_ID,
                                                REF_DEDUPE_KEY_JOB_RESULT};
    memset(pr, 0, sizeof *pr);
    uint64_t s = i;
    for (size_t k = 0; k < n; k++) {
        pr->keys[k].kind = kinds[k];
        for (size_t b = 0; b < 32; b++)
            pr->keys[k].id[b] = (uint8_t)lcg(&s);
        pr->keys[k].id[31] = (uint8_t)k; /* distinct even if the generator repeated */
        memcpy(pr->keys[k].id + 24, &i, sizeof i);
    }
    pr->n_keys = n;
    memcpy(pr->body_digest, pr->keys[0].id, 32);
}

/* Thousands of entries with one to three keys each: the index is rebuilt
 * larger several times while entries are held, and afterwards every key of
 * every entry is still found, and eviction follows recording order exactly
 * (checked against a counter: entry i is recorded as seq i + 1, and the
 * k-th eviction removes seq k). */
static void test_many_entries_lookup_and_eviction_order(void **state)
{
    (void)state;
    enum { N = 3000 };
    ref_dedupe *d = store(TTL, N, REF_DEDUPE_EVICT_OLDEST);
    ref_dedupe_probe pr;
    ref_dedupe_result r;
    for (uint32_t i = 0; i < N; i++) {
        big_probe(&pr, i, 1 + i % 3);
        assert_int_equal(ref_dedupe_admit(d, &pr, T0, &r), REF_DEDUPE_FIRST);
        assert_true(r.entry.seq == (uint64_t)i + 1);
        assert_int_equal(r.evicted, 0);
    }
    assert_int_equal(ref_dedupe_count(d), N);
    /* Every key of every entry, looked up alone behind a key never seen. */
    for (uint32_t i = 0; i < N; i++) {
        size_t n = 1 + i % 3;
        ref_dedupe_probe full;
        big_probe(&full, i, n);
        for (size_t k = 0; k < n; k++) {
            big_probe(&pr, N + i, 1);
            pr.keys[1] = full.keys[k];
            pr.n_keys = 2;
            memcpy(pr.body_digest, full.body_digest, 32); /* no message-id conflict */
            assert_int_equal(ref_dedupe_admit(d, &pr, T0 + 1, &r), REF_DEDUPE_DUPLICATE);
            assert_true(r.entry.seq == (uint64_t)i + 1);
            assert_int_equal(r.matched, full.keys[k].kind);
        }
    }
    assert_int_equal(ref_dedupe_count(d), N);
    /* New entries evict in recording order. */
    ref_dedupe_entry oldest;
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(ref_dedupe_oldest(d, &oldest), 1);
        assert_true(oldest.seq == (uint64_t)i + 1);
        big_probe(&pr, 10 * N + i, 1 + (i + 1) % 3);
        assert_int_equal(ref_dedupe_admit(d, &pr, T0 + 2, &r), REF_DEDUPE_FIRST);
        assert_int_equal(r.evicted, 1);
        assert_true(r.evicted_seq == (uint64_t)i + 1);
        assert_true(r.entry.seq == (uint64_t)N + i + 1);
    }
    ref_dedupe_stats st = ref_dedupe_stats_get(d);
    assert_true(st.evicted == N && st.first == 2 * N && st.duplicate == N * 2);
    /* The first generation is gone under every key (FIRST means no key of
     * the probe matched), and each re-admission evicts the next oldest of
     * the second generation. */
    for (uint32_t i = 0; i < N; i++) {
        big_probe(&pr, i, 1 + i % 3);
        assert_int_equal(ref_dedupe_admit(d, &pr, T0 + 3, &r), REF_DEDUPE_FIRST);
        assert_true(r.evicted_seq == (uint64_t)N + i + 1);
    }
    ref_dedupe_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_first_then_duplicate),
        cmocka_unit_test(test_ttl_from_first_sighting),
        cmocka_unit_test(test_job_request_keys),
        cmocka_unit_test(test_job_result_keys),
        cmocka_unit_test(test_tag_replays_result),
        cmocka_unit_test(test_body_key_is_per_sender),
        cmocka_unit_test(test_signed_body_digest),
        cmocka_unit_test(test_check_hands_back_the_probe),
        cmocka_unit_test(test_expired_metadata),
        cmocka_unit_test(test_message_id_conflict),
        cmocka_unit_test(test_eviction_oldest_first),
        cmocka_unit_test(test_full_purges_before_evicting),
        cmocka_unit_test(test_full_refuse),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_bound_holds_under_load),
        cmocka_unit_test(test_admit_errors),
        cmocka_unit_test(test_model_check),
        cmocka_unit_test(test_many_entries_lookup_and_eviction_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
