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

/* cap_encode_back leaves the encoding where it was written, ending at the
 * buffer's end: a roomy buffer is kept, a small one grown to the exact
 * size (then the bytes fill it), and an empty message is empty at the end
 * of its buffer. */
static void test_encode_back(void **state)
{
    (void)state;
    size_t len;
    uint8_t *in;
    cap_packet *p = load_fixture(0, &in, &len);
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap), *kept = buf;
    assert_non_null(buf);
    memset(buf, 0xA5, cap);
    const uint8_t *at;
    assert_int_equal(cap_encode_back(&p->base, &buf, &cap, &at, &n), CAP_OK);
    assert_ptr_equal(buf, kept);
    assert_int_equal(cap, 4096);
    assert_int_equal(n, len);
    assert_ptr_equal(at, buf + cap - len);
    assert_memory_equal(at, in, len);
    cap = 3;
    assert_int_equal(cap_encode_back(&p->base, &buf, &cap, &at, &n), CAP_OK);
    assert_int_equal(cap, len);
    assert_ptr_equal(at, buf);
    assert_memory_equal(at, in, len);
    free(buf);

    Cordum__Agent__V1__Heartbeat h; /* all defaults: no bytes */
    cordum__agent__v1__heartbeat__init(&h);
    buf = NULL;
    cap = 0;
    assert_int_equal(cap_encode_back(&h.base, &buf, &cap, &at, &n), CAP_OK);
    assert_non_null(buf);
    assert_int_equal(n, 0);
    assert_ptr_equal(at, buf + cap);
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
    /* a case that names no member (none set, or a number of no member,
     * below or above the members', or between them): nothing written for
     * the oneof */
    size_t none = len - 3;
    static const uint32_t cases[] = {0, 1, 14, 18, 23, 31, 32, 1000};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *o2;
        size_t n2;
        s.p.payload_case = cases[i];
        assert_int_equal(cap_encode(&s.p.base, &o2, &n2), CAP_OK);
        assert_int_equal(n2, none);
        assert_memory_equal(o2, out, none);
        assert_int_equal(cap_encoded_size(&s.p.base), none);
        free(o2);
    }
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

/* --- random messages of every type ---------------------------------------
 * Schema-driven random messages (seeded, so every run writes the same
 * ones): each field left at its default or set to an ordinary or edge value
 * (empty, 0, -1, INT32_MIN, varints of one to ten bytes, long strings whose
 * length takes two bytes), oneof cases, optional scalars' has_ flags,
 * repeated fields, map entries, nested messages, unknown fields. */

typedef struct {
    uint64_t s;
} trng;

static uint64_t trand(trng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static unsigned tbelow(trng *r, unsigned n) { return (unsigned)(trand(r) % n); }

/* Every block of one random message, freed together. */
#define POOL_BLOCKS 8192
typedef struct {
    void *blocks[POOL_BLOCKS];
    size_t n;
} pool;

static void *palloc(pool *p, size_t n)
{
    assert_true(p->n < POOL_BLOCKS);
    void *b = calloc(1, n ? n : 1);
    assert_non_null(b);
    p->blocks[p->n++] = b;
    return b;
}

static void pfree(pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->blocks[i]);
    p->n = 0;
}

/* pack_like: only values protobuf-c's pack writes as the canonical form
 * does (no NULL strings or messages where a value is written, no -0.0, map
 * entries in key order with non-default key and value). */
typedef struct {
    trng r;
    pool pl;
    int pack_like;
} gen;

static ProtobufCMessage *gen_message(gen *g, const ProtobufCMessageDescriptor *d, unsigned depth);

static char *gen_text(gen *g)
{
    static const char *const words[] = {"", "a", "job-1", "\xc3\xa9t\xc3\xa9", "x.y.z"};
    unsigned k = tbelow(&g->r, 8);
    size_t n = k < 5    ? strlen(words[k])
               : k == 5 ? tbelow(&g->r, 41) /* every short length */
               : k == 6 ? 130 + tbelow(&g->r, 200)
                        : 20000;
    char *s = palloc(&g->pl, n + 1);
    if (k < 5)
        memcpy(s, words[k], n);
    else
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('a' + (i * 7 + k) % 26);
    return s;
}

static uint64_t gen_bits(gen *g)
{
    static const uint64_t edges[] = {0, 1, 127, 128, 300, 16383, 16384, UINT64_MAX,
                                     (uint64_t)INT32_MIN, 0x80000000u, 1ull << 63};
    unsigned k = tbelow(&g->r, 14);
    return k < 11 ? edges[k] : trand(&g->r) >> tbelow(&g->r, 64);
}

/* A random value of field f's type at p; `set`: never a default (non-empty,
 * non-zero, non-NULL). */
static void gen_value(gen *g, const ProtobufCFieldDescriptor *f, void *p, unsigned depth, int set)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char *s = gen_text(g);
        if (set && !s[0])
            s = "set";
        *(char **)p = !g->pack_like && tbelow(&g->r, 8) == 0 ? NULL : s;
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        b->len = tbelow(&g->r, 4) == 0 && !set ? 0 : 1 + tbelow(&g->r, 300);
        b->data = palloc(&g->pl, b->len);
        for (size_t i = 0; i < b->len; i++)
            b->data[i] = (uint8_t)trand(&g->r);
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)p =
            depth < 4 && (set || tbelow(&g->r, 4)) ? gen_message(g, f->descriptor, depth + 1)
            : NULL;
        return;
    case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)p = set || tbelow(&g->r, 2); return;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = tbelow(&g->r, 3) == 0 ? 0.0 : (double)(int64_t)trand(&g->r) / 1e6;
        if (!g->pack_like && tbelow(&g->r, 4) == 0)
            v = -0.0;
        if (set && v == 0.0)
            v = 2.5;
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)p = (float)v;
        else
            *(double *)p = v;
        return;
    }
    default: {
        uint64_t v = gen_bits(g);
        if (set && !v)
            v = 5;
        size_t es = cap_field_elem_size(f->type);
        if (es == 4) {
            uint32_t v32 = (uint32_t)v;
            memcpy(p, &v32, 4);
        } else {
            memcpy(p, &v, 8);
        }
        return;
    }
    }
}

static ProtobufCMessage *gen_message(gen *g, const ProtobufCMessageDescriptor *d, unsigned depth)
{
    ProtobufCMessage *m = palloc(&g->pl, d->sizeof_message);
    d->message_init(m);
    unsigned oneof_seen[64] = {0}; /* members met so far, by case offset / 4 */
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char *member = (char *)m + f->offset;
        if (tbelow(&g->r, 3) == 0)
            continue; /* left at its default */
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = tbelow(&g->r, 4), es = cap_field_elem_size(f->type);
            char *arr = palloc(&g->pl, n * es);
            int map = f->type == PROTOBUF_C_TYPE_MESSAGE && cap_desc_is_map_entry(f->descriptor);
            for (size_t k = 0; k < n; k++) {
                if (!map) {
                    gen_value(g, f, arr + k * es, depth, f->type == PROTOBUF_C_TYPE_MESSAGE);
                    continue;
                }
                const ProtobufCMessageDescriptor *ed = f->descriptor;
                ProtobufCMessage *e = palloc(&g->pl, ed->sizeof_message);
                ed->message_init(e);
                /* Keys: in order and set (pack_like), else in any order,
                 * repeated or empty. */
                const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
                char *key = palloc(&g->pl, 16);
                unsigned kn = g->pack_like ? (unsigned)k : tbelow(&g->r, 3);
                if (kf->type == PROTOBUF_C_TYPE_STRING) {
                    if (g->pack_like || kn)
                        snprintf(key, 16, "k%u", kn);
                    *(char **)((char *)e + kf->offset) = key;
                } else {
                    gen_value(g, kf, (char *)e + kf->offset, depth, g->pack_like);
                }
                gen_value(g, vf, (char *)e + vf->offset, depth, g->pack_like);
                ((ProtobufCMessage **)arr)[k] = e;
            }
            *(size_t *)((char *)m + f->quantifier_offset) = n;
            *(void **)member = arr;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* Each member equally likely to be the one set. */
            assert_true(f->quantifier_offset / 4 < 64);
            if (tbelow(&g->r, ++oneof_seen[f->quantifier_offset / 4]) != 0)
                continue;
            *(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
            gen_value(g, f, member, depth, f->type == PROTOBUF_C_TYPE_MESSAGE && g->pack_like);
        } else {
            if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                f->type != PROTOBUF_C_TYPE_STRING)
                *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = tbelow(&g->r, 2);
            gen_value(g, f, member, depth, 0);
        }
    }
    if (tbelow(&g->r, 4) == 0) { /* unknown fields, kept last in this order */
        unsigned n = 1 + tbelow(&g->r, 2);
        m->unknown_fields = palloc(&g->pl, n * sizeof *m->unknown_fields);
        m->n_unknown_fields = n;
        for (unsigned k = 0; k < n; k++) {
            ProtobufCMessageUnknownField *u = &m->unknown_fields[k];
            u->tag = 900 + tbelow(&g->r, 3);
            u->wire_type = PROTOBUF_C_WIRE_TYPE_VARINT;
            u->len = 1;
            u->data = palloc(&g->pl, 1);
            u->data[0] = (uint8_t)tbelow(&g->r, 128);
        }
    }
    return m;
}

/* Types the tests write as roots: BusPacket and its payloads (planned
 * types), types no packet carries, and a map entry type on its own. */
static const ProtobufCMessageDescriptor *const ROOTS[] = {
    &cordum__agent__v1__bus_packet__descriptor,
    &cordum__agent__v1__job_request__descriptor,
    &cordum__agent__v1__job_result__descriptor,
    &cordum__agent__v1__heartbeat__descriptor,
    &cordum__agent__v1__system_alert__descriptor,
    &cordum__agent__v1__handshake__descriptor,
    &cordum__agent__v1__policy_check_request__descriptor,
    &cordum__agent__v1__policy_check_response__descriptor,
    &cordum__agent__v1__list_snapshots_response__descriptor,
    &cordum__agent__v1__job_request__env_entry__descriptor,
};

/* m's encoding, the same by every entry point; *n its size. */
static uint8_t *encode_all_ways(const ProtobufCMessage *m, size_t *n)
{
    uint8_t *out;
    assert_int_equal(cap_encode(m, &out, n), CAP_OK);
    assert_int_equal(cap_encoded_size(m), *n);
    uint8_t *into = malloc(*n + 1);
    assert_non_null(into);
    assert_int_equal(cap_encode_into(m, into), *n);
    assert_memory_equal(into, out, *n);
    free(into);
    uint8_t *kept = malloc(16); /* too small for most: grown, then reused */
    size_t cap = 16, n2 = 0;
    assert_non_null(kept);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(cap_encode_to(m, &kept, &cap, &n2), CAP_OK);
        assert_int_equal(n2, *n);
        assert_memory_equal(kept, out, *n);
    }
    for (size_t room = *n; room <= *n + 1; room++) { /* exactly, and one byte more */
        uint8_t *back = malloc(room ? room : 1);
        size_t back_cap = room;
        const uint8_t *at;
        assert_non_null(back);
        assert_int_equal(cap_encode_back(m, &back, &back_cap, &at, &n2), CAP_OK);
        assert_int_equal(n2, *n);
        assert_ptr_equal(at + n2, back + back_cap);
        assert_memory_equal(at, out, *n);
        free(back);
    }
    free(kept);
    return out;
}

/* Where protobuf-c's pack writes the canonical form (see gen.pack_like),
 * the encoder writes its bytes exactly, by every entry point. */
static void test_random_messages_same_as_pack(void **state)
{
    (void)state;
    static gen g;
    g.r.s = 0x9E3779B97F4A7C15u;
    g.pack_like = 1;
    for (unsigned round = 0; round < 150; round++)
        for (size_t k = 0; k < sizeof ROOTS / sizeof ROOTS[0]; k++) {
            ProtobufCMessage *m = gen_message(&g, ROOTS[k], 0);
            size_t n;
            uint8_t *out = encode_all_ways(m, &n);
            size_t pn = protobuf_c_message_get_packed_size(m);
            uint8_t *packed = malloc(pn + 1);
            assert_non_null(packed);
            assert_int_equal(protobuf_c_message_pack(m, packed), pn);
            assert_int_equal(n, pn);
            assert_memory_equal(out, packed, n);
            free(packed);
            free(out);
            pfree(&g.pl);
        }
}

/* Any message (NULL strings, -0.0, map keys in any order, repeated or
 * empty): decoding its encoding and encoding again gives the same bytes. */
static void test_random_messages_stable(void **state)
{
    (void)state;
    static gen g;
    g.r.s = 0x2545F4914F6CDD1Du;
    g.pack_like = 0;
    for (unsigned round = 0; round < 150; round++)
        for (size_t k = 0; k < sizeof ROOTS / sizeof ROOTS[0]; k++) {
            ProtobufCMessage *m = gen_message(&g, ROOTS[k], 0);
            size_t n, n2;
            uint8_t *out = encode_all_ways(m, &n);
            ProtobufCMessage *back = protobuf_c_message_unpack(ROOTS[k], NULL, n, out);
            assert_non_null(back);
            uint8_t *again = encode_all_ways(back, &n2);
            assert_int_equal(n2, n);
            assert_memory_equal(again, out, n);
            protobuf_c_message_free_unpacked(back, NULL);
            free(again);
            free(out);
            pfree(&g.pl);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_of_every_fixture),
        cmocka_unit_test(test_encode_to_reuses_buffer),
        cmocka_unit_test(test_encode_to_buffer_sizes),
        cmocka_unit_test(test_encode_back),
        cmocka_unit_test(test_maps_sorted_with_key_and_value),
        cmocka_unit_test(test_large_map_sorted),
        cmocka_unit_test(test_defaults_and_floats),
        cmocka_unit_test(test_packed_and_oneof_default),
        cmocka_unit_test(test_unknown_fields_kept_last),
        cmocka_unit_test(test_many_nested_messages),
        cmocka_unit_test(test_same_bytes_as_protobuf_c_without_maps),
        cmocka_unit_test(test_random_messages_same_as_pack),
        cmocka_unit_test(test_random_messages_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
