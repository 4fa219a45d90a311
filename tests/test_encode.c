/* The canonical encoder: number order, sorted maps with key and value
 * always written, proto3 defaults omitted, and encode(decode(x)) == x. */
#include "testutil.h"

#include "cap_decode.h"
#include "cap_encode.h"

static const char *const FIXTURES[] = {
    "conformance/fixtures/buspacket_job_request.bin", "conformance/fixtures/buspacket_job_result.bin",
    "conformance/fixtures/buspacket_heartbeat.bin",   "conformance/fixtures/buspacket_job_progress.bin",
    "conformance/fixtures/buspacket_job_cancel.bin",  "conformance/fixtures/buspacket_alert.bin",
    "conformance/fixtures/buspacket_alert_enhanced.bin", "conformance/fixtures/buspacket_handshake.bin",
};

/* Reads fixture i into *in (its bytes) and returns it strictly decoded. */
static cap_packet *load_fixture(size_t i, uint8_t **in, size_t *len)
{
    *in = tu_read_file(FIXTURES[i], len);
    cap_packet *p;
    cap_diag d;
    assert_int_equal(cap_packet_decode(*in, *len, NULL, CAP_DECODE_STRICT, &p, &d), CAP_OK);
    return p;
}

static void test_round_trip_of_every_fixture(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) {
        size_t len;
        uint8_t *in;
        cap_packet *p = load_fixture(i, &in, &len);
        uint8_t *out;
        size_t n;
        assert_int_equal(cap_encode(&p->base, &out, &n), CAP_OK);
        assert_int_equal(n, cap_encoded_size(&p->base));
        assert_int_equal(n, len);
        assert_memory_equal(out, in, len);
        free(out);
        cap_packet_free(p);
        free(in);
    }
}

/* cap_encode_to into one kept buffer: the same bytes as cap_encode for
 * every fixture, the buffer grown only when a packet does not fit, and
 * never moved for one that does. */
static void test_encode_to_reuses_buffer(void **state)
{
    (void)state;
    uint8_t *buf = NULL;
    size_t cap = 0, largest = 0;
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) {
            size_t len;
            uint8_t *in;
            cap_packet *p = load_fixture(i, &in, &len);
            uint8_t *before = buf;
            size_t cap_before = cap, n = 0;
            assert_int_equal(cap_encode_to(&p->base, &buf, &cap, &n), CAP_OK);
            assert_int_equal(n, len);
            assert_memory_equal(buf, in, len);
            assert_true(cap >= n);
            if (before && len <= cap_before) { /* it fitted: kept as it was */
                assert_ptr_equal(buf, before);
                assert_true(cap == cap_before);
            }
            if (len > largest)
                largest = len;
            assert_true(cap == largest); /* grown to the largest so far, no more */
            cap_packet_free(p);
            free(in);
        }
    free(buf);
}

/* cap_encode_to writes from the end of the buffer it is given: a roomy
 * buffer holding stale bytes gives the same encoding at its start and keeps
 * its size; a non-empty buffer too small for the packet is grown to exactly
 * its size; one of exactly the packet's size is used as it is. */
static void test_encode_to_buffer_sizes(void **state)
{
    (void)state;
    size_t len;
    uint8_t *in;
    cap_packet *p = load_fixture(0, &in, &len);
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    memset(buf, 0xA5, cap);
    assert_int_equal(cap_encode_to(&p->base, &buf, &cap, &n), CAP_OK);
    assert_int_equal(n, len);
    assert_int_equal(cap, 65536);
    assert_memory_equal(buf, in, len);
    free(buf);

    cap = 1;
    buf = malloc(cap);
    assert_non_null(buf);
    assert_int_equal(cap_encode_to(&p->base, &buf, &cap, &n), CAP_OK);
    assert_int_equal(n, len);
    assert_int_equal(cap, len);
    assert_memory_equal(buf, in, len);
    uint8_t *same = buf;
    memset(buf, 0, cap);
    assert_int_equal(cap_encode_to(&p->base, &buf, &cap, &n), CAP_OK);
    assert_ptr_equal(buf, same);
    assert_int_equal(cap, len);
    assert_memory_equal(buf, in, len);
    free(buf);
    cap_packet_free(p);
    free(in);
}

/* Builds a packet with a job_request whose env entries are given unsorted. */
typedef struct {
    cap_packet p;
    Google__Protobuf__Timestamp ts;
    Cordum__Agent__V1__JobRequest req;
    Cordum__Agent__V1__JobRequest__EnvEntry e[3];
    Cordum__Agent__V1__JobRequest__EnvEntry *ep[3];
} sample;

static void sample_init(sample *s)
{
    cordum__agent__v1__bus_packet__init(&s->p);
    google__protobuf__timestamp__init(&s->ts);
    cordum__agent__v1__job_request__init(&s->req);
    s->ts.seconds = 1;
    s->p.trace_id = "t";
    s->p.sender_id = "s";
    s->p.created_at = &s->ts;
    s->p.protocol_version = 1;
    s->p.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    s->p.job_request = &s->req;
    s->req.job_id = "j";
    static const char *keys[] = {"zeta", "alpha", "mid"};
    for (int i = 0; i < 3; i++) {
        cordum__agent__v1__job_request__env_entry__init(&s->e[i]);
        s->e[i].key = (char *)keys[i];
        s->e[i].value = "";
        s->ep[i] = &s->e[i];
    }
    s->req.n_env = 3;
    s->req.env = s->ep;
}

static const uint8_t *find(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return hay + i;
    return NULL;
}

static void test_maps_sorted_with_key_and_value(void **state)
{
    (void)state;
    sample s;
    sample_init(&s);
    uint8_t *out;
    size_t n;
    assert_int_equal(cap_encode(&s.p.base, &out, &n), CAP_OK);
    const uint8_t *a = find(out, n, "alpha"), *m = find(out, n, "mid"), *z = find(out, n, "zeta");
    assert_non_null(a);
    assert_true(a < m && m < z);
    /* entry = 0a len key 12 00: the empty value is written, as Go/C++ do */
    assert_int_equal(a[5], 0x12);
    assert_int_equal(a[6], 0x00);
    /* the input array is untouched */
    assert_string_equal(s.req.env[0]->key, "zeta");
    /* the decoder accepts the result and re-encoding is stable */
    cap_packet *p;
    cap_diag d;
    assert_int_equal(cap_packet_decode(out, n, NULL, CAP_DECODE_STRICT, &p, &d), CAP_OK);
    assert_string_equal(p->job_request->env[0]->key, "alpha");
    uint8_t *again;
    size_t n2;
    assert_int_equal(cap_encode(&p->base, &again, &n2), CAP_OK);
    assert_int_equal(n, n2);
    assert_memory_equal(out, again, n);
    free(again);
    cap_packet_free(p);
    free(out);
}

static void test_large_map_sorted(void **state)
{
    (void)state;
    /* over the 64-entry stack buffer: the heap path sorts too */
    enum { N = 200 };
    sample s;
    sample_init(&s);
    Cordum__Agent__V1__JobRequest__EnvEntry *e = calloc(N, sizeof *e);
    Cordum__Agent__V1__JobRequest__EnvEntry **ep = calloc(N, sizeof *ep);
    char(*keys)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        cordum__agent__v1__job_request__env_entry__init(&e[i]);
        snprintf(keys[i], 16, "k%03d", N - 1 - i);
        e[i].key = keys[i];
        e[i].value = "v";
        ep[i] = &e[i];
    }
    s.req.n_env = N;
    s.req.env = ep;
    uint8_t *out;
    size_t n;
    assert_int_equal(cap_encode(&s.p.base, &out, &n), CAP_OK);
    const uint8_t *prev = find(out, n, "k000");
    for (int i = 1; i < N; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        const uint8_t *at = find(out, n, k);
        assert_true(at > prev);
        prev = at;
    }
    free(out);
    free(keys);
    free(ep);
    free(e);
}

static void test_defaults_and_floats(void **state)
{
    (void)state;
    Cordum__Agent__V1__Heartbeat h;
    cordum__agent__v1__heartbeat__init(&h);
    uint8_t buf[64];
    assert_int_equal(cap_encoded_size(&h.base), 0); /* all defaults: nothing */
    h.cpu_load = -0.0f;                             /* bits set: kept, as in Go */
    assert_int_equal(cap_encode_into(&h.base, buf), 5);
    const uint8_t negzero[] = {0x25, 0x00, 0x00, 0x00, 0x80};
    assert_memory_equal(buf, negzero, 5);
    h.cpu_load = 0.0f;
    h.active_jobs = -1; /* negative int32: ten-byte varint */
    assert_int_equal(cap_encode_into(&h.base, buf), 11);
    assert_int_equal(buf[0], 0x30);
    assert_int_equal(buf[10], 0x01);
}

static void test_packed_and_oneof_default(void **state)
{
    (void)state;
    Cordum__Agent__V1__Handshake hs;
    cordum__agent__v1__handshake__init(&hs);
    int32_t versions[] = {1, 2, 300};
    hs.supported_versions = versions;
    hs.n_supported_versions = 3;
    uint8_t buf[32];
    size_t n = cap_encode_into(&hs.base, buf);
    const uint8_t packed[] = {0x1a, 0x04, 0x01, 0x02, 0xac, 0x02};
    assert_int_equal(n, sizeof packed);
    assert_memory_equal(buf, packed, sizeof packed);
    /* a set oneof member is written even when its message is empty */
    sample s;
    sample_init(&s);
    Cordum__Agent__V1__JobCancel c;
    cordum__agent__v1__job_cancel__init(&c);
    s.p.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL;
    s.p.job_cancel = &c;
    uint8_t *out;
    size_t len;
    assert_int_equal(cap_encode(&s.p.base, &out, &len), CAP_OK);
    assert_int_equal(out[len - 3], 0x82); /* tag 16, wire type 2 ... */
    assert_int_equal(out[len - 2], 0x01);
    assert_int_equal(out[len - 1], 0x00); /* ... and an empty body */
    free(out);
}

static void test_unknown_fields_kept_last(void **state)
{
    (void)state;
    size_t len;
    uint8_t *in = tu_read_file("conformance/fixtures/buspacket_job_cancel.bin", &len);
    uint8_t *ext = malloc(len + 3);
    memcpy(ext, in, len);
    memcpy(ext + len, "\x38\x2a", 2); /* field 7, varint 42: unknown to v1 */
    cap_packet *p;
    cap_diag d;
    assert_int_equal(cap_packet_decode(ext, len + 2, NULL, CAP_DECODE_LENIENT, &p, &d), CAP_OK);
    uint8_t *out;
    size_t n;
    assert_int_equal(cap_encode(&p->base, &out, &n), CAP_OK);
    assert_int_equal(n, len + 2);
    assert_memory_equal(out, ext, n);
    free(out);
    cap_packet_free(p);
    free(ext);
    free(in);
}

/* Many nested messages, each with a nested message of its own, in a
 * repeated field, more bytes than the encoder's stack scratch holds: every
 * length prefix is right and the bytes are those protobuf-c packs (no maps,
 * so the canonical and the plain encodings agree), by every entry point. */
static void test_many_nested_messages(void **state)
{
    (void)state;
    enum { N = 200 };
    static Cordum__Agent__V1__ResourceRef refs[N];
    static Cordum__Agent__V1__ResourceRef *rp[N];
    static Google__Protobuf__Timestamp ts[N];
    static char uris[N][32];
    Cordum__Agent__V1__JobResult res;
    cordum__agent__v1__job_result__init(&res);
    res.job_id = "job-1";
    res.status = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED;
    for (int i = 0; i < N; i++) {
        cordum__agent__v1__resource_ref__init(&refs[i]);
        google__protobuf__timestamp__init(&ts[i]);
        snprintf(uris[i], sizeof uris[i], "file:///out/%d", i * 7919);
        refs[i].uri = uris[i];
        refs[i].size_bytes = (uint64_t)i * 300;
        ts[i].seconds = 1700000000 + i;
        ts[i].nanos = i;
        refs[i].expires_at = i % 3 ? &ts[i] : NULL;
        rp[i] = &refs[i];
    }
    res.n_artifact_refs = N;
    res.artifact_refs = rp;
    Google__Protobuf__Timestamp created;
    google__protobuf__timestamp__init(&created);
    created.seconds = 5;
    cap_packet p;
    cordum__agent__v1__bus_packet__init(&p);
    p.trace_id = "t";
    p.sender_id = "w";
    p.created_at = &created;
    p.protocol_version = 1;
    p.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
    p.job_result = &res;

    size_t want = protobuf_c_message_get_packed_size(&p.base);
    assert_true(want > 4096); /* more than the encoder's stack scratch */
    uint8_t *plain = malloc(want);
    assert_non_null(plain);
    assert_int_equal(protobuf_c_message_pack(&p.base, plain), want);
    uint8_t *out;
    size_t n;
    assert_int_equal(cap_encode(&p.base, &out, &n), CAP_OK);
    assert_int_equal(n, want);
    assert_int_equal(cap_encoded_size(&p.base), want);
    assert_memory_equal(out, plain, want);
    memset(out, 0, n);
    assert_int_equal(cap_encode_into(&p.base, out), want);
    assert_memory_equal(out, plain, want);
    uint8_t *kept = malloc(64);
    size_t cap = 64;
    assert_non_null(kept);
    assert_int_equal(cap_encode_to(&p.base, &kept, &cap, &n), CAP_OK);
    assert_int_equal(n, want);
    assert_int_equal(cap, want);
    assert_memory_equal(kept, plain, want);
    free(kept);
    free(out);
    free(plain);
}

/* Without maps or unknown fields, canonical bytes are protobuf-c's: the
 * same proto3 defaults are omitted, in a BusPacket payload (Heartbeat) as
 * in types the packet never carries (PolicyCheckResponse, PolicyConstraints). */
static void assert_same_as_pack(const ProtobufCMessage *m)
{
    uint8_t a[512], b[512];
    size_t n = cap_encode_into(m, a);
    assert_true(n <= sizeof a);
    assert_int_equal(n, cap_encoded_size(m));
    assert_int_equal(protobuf_c_message_get_packed_size(m), n);
    assert_int_equal(protobuf_c_message_pack(m, b), n);
    assert_memory_equal(a, b, n);
}

static void test_same_bytes_as_protobuf_c_without_maps(void **state)
{
    (void)state;
    Cordum__Agent__V1__Heartbeat h;
    cordum__agent__v1__heartbeat__init(&h);
    assert_same_as_pack(&h.base);
    h.worker_id = "w1";
    h.region = ""; /* proto3 default: omitted */
    h.active_jobs = 3;
    char *caps[] = {"a", "", "b"}; /* repeated: every entry, empty ones too */
    h.capabilities = caps;
    h.n_capabilities = 3;
    assert_same_as_pack(&h.base);

    Cordum__Agent__V1__PolicyCheckResponse r;
    cordum__agent__v1__policy_check_response__init(&r);
    Cordum__Agent__V1__PolicyConstraints pc;
    cordum__agent__v1__policy_constraints__init(&pc);
    assert_int_equal(cap_encoded_size(&r.base), 0);
    r.decision = CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY;
    r.reason = "no";
    r.rule_id = "";
    r.approval_required = 1;
    r.constraints = &pc; /* present, though empty */
    assert_same_as_pack(&r.base);
    pc.redaction_level = "strict";
    assert_same_as_pack(&r.base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_of_every_fixture),
        cmocka_unit_test(test_encode_to_reuses_buffer),
        cmocka_unit_test(test_encode_to_buffer_sizes),
        cmocka_unit_test(test_maps_sorted_with_key_and_value),
        cmocka_unit_test(test_large_map_sorted),
        cmocka_unit_test(test_defaults_and_floats),
        cmocka_unit_test(test_packed_and_oneof_default),
        cmocka_unit_test(test_unknown_fields_kept_last),
        cmocka_unit_test(test_many_nested_messages),
        cmocka_unit_test(test_same_bytes_as_protobuf_c_without_maps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
