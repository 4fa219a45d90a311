/* The decoder's one-pass unpack builds exactly what protobuf-c's unpack
 * builds, and the decoder's verdicts are those of the scan + protobuf-c
 * pipeline it replaced: checked on every packet the repository holds
 * (fixtures, golden traces, fuzz regressions), on schema-driven random
 * packets and on random mutations of all of them (seeded: the same packets
 * on every run). Also: every block comes from the caller's allocator and
 * goes back to it, also when an allocation fails part-way; packets with
 * unknown fields are unpacked by protobuf-c (which keeps them). */
#include "testutil.h"

#include <dirent.h>

#include "cap_arena.h"
#include "cap_base64.h"
#include "cap_decode.h"
#include "cap_schema.h"
#include "cap_varint.h"
#include "unpack_diff.h"

/* --- packets --------------------------------------------------------------- */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} gbuf;

static void g_reserve(gbuf *w, size_t more)
{
    if (w->n + more <= w->cap)
        return;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->n + more)
        cap *= 2;
    w->b = realloc(w->b, cap);
    assert_non_null(w->b);
    w->cap = cap;
}
static void g_raw(gbuf *w, const void *p, size_t n)
{
    g_reserve(w, n);
    if (n)
        memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void g_varint(gbuf *w, uint64_t v)
{
    g_reserve(w, CAP_VARINT_MAX);
    w->n += cap_varint_write(w->b + w->n, v);
}
static void g_tag(gbuf *w, uint32_t f, unsigned wt) { g_varint(w, ((uint64_t)f << 3) | wt); }
static void g_len(gbuf *w, uint32_t f, const void *p, size_t n)
{
    g_tag(w, f, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
    g_varint(w, n);
    g_raw(w, p, n);
}

typedef struct {
    gbuf *items;
    size_t n, cap;
} corpus;

static void corpus_add(corpus *c, const uint8_t *p, size_t n)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->items = realloc(c->items, c->cap * sizeof c->items[0]);
        assert_non_null(c->items);
    }
    gbuf *g = &c->items[c->n++];
    memset(g, 0, sizeof *g);
    g_raw(g, p, n);
}

static void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->items[i].b);
    free(c->items);
}

/* Every .bin file of a directory. */
static void add_bin_dir(corpus *c, const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[256];
    size_t nn = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".bin") == 0 && nn < 256)
            names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < nn; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        uint8_t *b = tu_read_file(path, &len);
        corpus_add(c, b, len);
        free(b);
        free(names[i]);
    }
}

/* The "bytes" of every record of every golden trace. */
static void add_golden_packets(corpus *c)
{
    const char *root = REPO_PATH("conformance/cases");
    DIR *d = opendir(root);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s/golden.jsonl", root, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            const char *k = strstr(line, "\"bytes\":\"");
            if (!k)
                continue;
            k += strlen("\"bytes\":\"");
            const char *q = strchr(k, '"');
            assert_non_null(q);
            uint8_t *b = malloc(cap_base64_decoded_max((size_t)(q - k)) + 1);
            size_t n;
            assert_int_equal(cap_base64_decode(k, (size_t)(q - k), b, &n), 0);
            corpus_add(c, b, n);
            free(b);
        }
        free(line);
        fclose(f);
    }
    closedir(d);
}

/* --- seeded randomness ---------------------------------------------------- */

typedef struct {
    uint64_t s;
} rng;

static uint64_t rnd(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}
static uint32_t below(rng *r, uint32_t n) { return (uint32_t)(rnd(r) % n); }

/* --- schema-driven random packets ------------------------------------------
 * Mostly what the scan accepts (each singular field and oneof at most once,
 * values in range), with now and then what it refuses (a repeat, a second
 * oneof member, an out-of-range value, bad UTF-8) and fields the schema
 * does not know. Repeated scalars come packed or one by one. */

static void gen_message(rng *r, gbuf *w, const ProtobufCMessageDescriptor *d, unsigned depth,
                        int root);

static void gen_string(rng *r, gbuf *w, uint32_t id)
{
    char s[24];
    size_t n = below(r, 12);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)(0x20 + below(r, 95));
    if (n && below(r, 10) == 0) { /* "é" */
        s[n++] = (char)0xC3;
        s[n++] = (char)0xA9;
    }
    if (n && below(r, 60) == 0)
        s[below(r, (uint32_t)n)] = below(r, 2) ? (char)0xFF : '\0';
    g_len(w, id, s, n);
}

static uint64_t gen_varint_value(rng *r, const ProtobufCMessageDescriptor *d,
                                 const ProtobufCFieldDescriptor *f)
{
    if (below(r, 40) == 0)
        return rnd(r); /* usually out of range */
    if (cap_desc_is_timestamp(d))
        return f->id == 1 ? (uint64_t)(int64_t)((int64_t)(rnd(r) % 300000000000ULL) - 62135596800LL)
                          : (uint64_t)below(r, 1000000000);
    static const int32_t small[] = {0, 1, -1, 2, 127, 128, 300, INT32_MAX, INT32_MIN};
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL: return below(r, 2);
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM:
        return (uint64_t)(int64_t)(below(r, 2) ? small[below(r, 9)] : (int32_t)rnd(r));
    case PROTOBUF_C_TYPE_UINT32: return (uint32_t)rnd(r);
    case PROTOBUF_C_TYPE_SINT32: {
        int32_t v = (int32_t)rnd(r);
        return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
    }
    default: return below(r, 2) ? rnd(r) : (uint64_t)(int64_t)small[below(r, 9)];
    }
}

static void gen_scalar(rng *r, gbuf *w, const ProtobufCMessageDescriptor *d,
                       const ProtobufCFieldDescriptor *f)
{
    unsigned wt = cap_wire_type_of(f->type);
    if (wt == PROTOBUF_C_WIRE_TYPE_VARINT) {
        g_varint(w, gen_varint_value(r, d, f));
    } else {
        uint64_t v = rnd(r);
        g_raw(w, &v, wt == PROTOBUF_C_WIRE_TYPE_32BIT ? 4 : 8);
    }
}

static void gen_field(rng *r, gbuf *w, const ProtobufCMessageDescriptor *d,
                      const ProtobufCFieldDescriptor *f, unsigned depth)
{
    unsigned wt = cap_wire_type_of(f->type);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        gbuf sub = {0};
        if (depth < 6)
            gen_message(r, &sub, f->descriptor, depth + 1, 0);
        g_len(w, f->id, sub.b, sub.n);
        free(sub.b);
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
        gen_string(r, w, f->id);
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        uint8_t b[8];
        size_t n = below(r, 9);
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)rnd(r);
        g_len(w, f->id, b, n);
    } else if (f->label == PROTOBUF_C_LABEL_REPEATED && below(r, 2)) {
        gbuf run = {0}; /* a packed run, possibly empty */
        for (unsigned k = below(r, 5); k > 0; k--)
            gen_scalar(r, &run, d, f);
        g_len(w, f->id, run.b, run.n);
        free(run.b);
    } else {
        g_tag(w, f->id, wt);
        gen_scalar(r, w, d, f);
    }
}

static void gen_unknown(rng *r, gbuf *w, const ProtobufCMessageDescriptor *d)
{
    uint32_t num = 1;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id >= num)
            num = d->fields[i].id + 1;
    num += below(r, 40);
    static const unsigned wts[] = {0, 1, 2, 5};
    unsigned wt = wts[below(r, 4)];
    g_tag(w, num, wt);
    if (wt == 0)
        g_varint(w, rnd(r) >> below(r, 64));
    else if (wt == 2) {
        uint8_t b[2] = {(uint8_t)rnd(r), (uint8_t)rnd(r)};
        g_varint(w, 2);
        g_raw(w, b, 2);
    } else {
        uint64_t v = rnd(r);
        g_raw(w, &v, wt == 1 ? 8 : 4);
    }
}

static void gen_message(rng *r, gbuf *w, const ProtobufCMessageDescriptor *d, unsigned depth,
                        int root)
{
    uint64_t used = 0;
    unsigned oneof_off[8], n_oneofs = 0;
    if (root) {
        /* The envelope, mostly valid. */
        static const char *ids[] = {"trace-1", "sender-1"};
        for (uint32_t id = 1; id <= 2; id++)
            if (below(r, 30))
                g_len(w, id, ids[id - 1], strlen(ids[id - 1]));
        if (below(r, 30)) {
            gbuf ts = {0};
            g_tag(&ts, 1, 0);
            g_varint(&ts, 1704164645);
            g_len(w, 3, ts.b, ts.n);
            free(ts.b);
        }
        if (below(r, 8)) {
            g_tag(w, 4, 0);
            g_varint(w, 1);
        }
        used = 0xF;
    }
    unsigned nf = below(r, d->n_fields + 3);
    if (root && nf == 0)
        nf = 1;
    for (unsigned k = 0; k < nf; k++) {
        if (below(r, 60) == 0) {
            gen_unknown(r, w, d);
            continue;
        }
        unsigned i = below(r, d->n_fields);
        /* At the top, a payload first, so that most packets have one. */
        if (root && k == 0)
            for (i = 0; d->fields[i].id < 10 || d->fields[i].id == 14 || d->fields[i].id == 18;)
                i = below(r, d->n_fields);
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED && (used >> i & 1) && below(r, 30))
            continue;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            unsigned o = 0;
            while (o < n_oneofs && oneof_off[o] != f->quantifier_offset)
                o++;
            if (o < n_oneofs && below(r, 30))
                continue;
            if (o == n_oneofs && n_oneofs < 8)
                oneof_off[n_oneofs++] = f->quantifier_offset;
        }
        used |= 1ULL << i;
        gen_field(r, w, d, f, depth);
    }
}

/* 1 to 3 random edits: a flipped bit, a byte set, a range deleted, random
 * bytes inserted, a truncation, a range copied elsewhere. */
static void mutate(rng *r, gbuf *w)
{
    for (unsigned k = 1 + below(r, 3); k > 0; k--) {
        size_t n = w->n;
        unsigned op = below(r, 6);
        if (n == 0)
            op = 3;
        size_t at = n ? below(r, (uint32_t)n) : 0;
        size_t span = 1 + below(r, 8);
        switch (op) {
        case 0: w->b[at] ^= (uint8_t)(1u << below(r, 8)); break;
        case 1: w->b[at] = (uint8_t)rnd(r); break;
        case 2:
            if (span > n - at)
                span = n - at;
            memmove(w->b + at, w->b + at + span, n - at - span);
            w->n -= span;
            break;
        case 3: {
            g_reserve(w, span);
            memmove(w->b + at + span, w->b + at, n - at);
            for (size_t i = 0; i < span; i++)
                w->b[at + i] = (uint8_t)rnd(r);
            w->n += span;
            break;
        }
        case 4: w->n = at; break;
        default: {
            size_t from = below(r, (uint32_t)n);
            if (span > n - from)
                span = n - from;
            uint8_t copy[8];
            memcpy(copy, w->b + from, span);
            g_reserve(w, span);
            memmove(w->b + at + span, w->b + at, n - at);
            memcpy(w->b + at, copy, span);
            w->n += span;
        }
        }
    }
}

/* --- the checks ------------------------------------------------------------ */

typedef struct {
    size_t refused, equal, fallback;
} tally;

static void check_one(const uint8_t *b, size_t n, tally *t, const char *what, size_t index)
{
    char why[512];
    int rc = ud_check_unpack(b, n, why, sizeof why);
    if (rc == UD_DIFFERENT)
        fail_msg("%s #%zu (%zu bytes): %s", what, index, n, why);
    if (ud_check_verdicts(b, n, why, sizeof why))
        fail_msg("%s #%zu (%zu bytes): %s", what, index, n, why);
    if (rc == UD_REFUSED)
        t->refused++;
    else if (rc == UD_EQUAL)
        t->equal++;
    else
        t->fallback++;
}

static void check_corpus(const corpus *c, tally *t, const char *what)
{
    for (size_t i = 0; i < c->n; i++)
        check_one(c->items[i].b, c->items[i].n, t, what, i);
}

static void repo_corpus(corpus *c)
{
    add_bin_dir(c, REPO_PATH("conformance/fixtures"));
    add_bin_dir(c, REPO_PATH("conformance/fixtures/malformed"));
    add_bin_dir(c, REPO_PATH("fuzz/regressions/fuzz_decode"));
    add_golden_packets(c);
}

static void test_repository_packets(void **state)
{
    (void)state;
    corpus c = {0};
    repo_corpus(&c);
    tally t = {0};
    check_corpus(&c, &t, "repository packet");
    print_message("%zu packets: %zu built alike, %zu refused by the scan, %zu with unknown fields\n",
                  c.n, t.equal, t.refused, t.fallback);
    /* 8 valid fixtures and every golden packet are built by the one pass. */
    assert_true(c.n > 50);
    assert_true(t.equal >= c.n - 12);
    corpus_free(&c);
}

static void test_generated_packets(void **state)
{
    (void)state;
    rng r = {0x9E3779B97F4A7C15ULL};
    tally t = {0};
    for (size_t i = 0; i < 50000; i++) {
        gbuf w = {0};
        gen_message(&r, &w, CAP_PACKET_DESC, 0, 1);
        check_one(w.b, w.n, &t, "generated packet", i);
        free(w.b);
    }
    print_message("generated: %zu built alike, %zu refused, %zu with unknown fields\n", t.equal,
                  t.refused, t.fallback);
    assert_true(t.equal > 5000);
    assert_true(t.fallback > 100);
    assert_true(t.refused > 100);
}

static void test_mutated_packets(void **state)
{
    (void)state;
    corpus c = {0};
    repo_corpus(&c);
    rng r = {0xD1B54A32D192ED03ULL};
    for (size_t i = 0; i < 300; i++) { /* generated seeds too */
        gbuf w = {0};
        gen_message(&r, &w, CAP_PACKET_DESC, 0, 1);
        corpus_add(&c, w.b, w.n);
        free(w.b);
    }
    tally t = {0};
    for (size_t i = 0; i < 100000; i++) {
        const gbuf *seed = &c.items[below(&r, (uint32_t)c.n)];
        gbuf w = {0};
        g_raw(&w, seed->b, seed->n);
        mutate(&r, &w);
        check_one(w.b, w.n, &t, "mutated packet", i);
        free(w.b);
    }
    print_message("mutated: %zu built alike, %zu refused, %zu with unknown fields\n", t.equal,
                  t.refused, t.fallback);
    assert_true(t.equal > 1000);
    assert_true(t.refused > 1000);
    corpus_free(&c);
}

/* Packed and unpacked runs of one repeated field join in wire order; map
 * entries stay in wire order; an empty bytes value has no block. */
static void test_repeated_and_maps(void **state)
{
    (void)state;
    gbuf hs = {0}, run = {0}, e1 = {0}, e2 = {0}, w = {0};
    g_tag(&hs, 3, 0);
    g_varint(&hs, 1);
    g_varint(&run, 2);
    g_varint(&run, 300);
    g_len(&hs, 3, run.b, run.n);
    g_len(&hs, 6, "b", 1);
    g_len(&e1, 1, "zeta", 4);
    g_tag(&e1, 2, 0);
    g_varint(&e1, 1);
    g_len(&hs, 4, e1.b, e1.n);
    g_len(&e2, 1, "alpha", 5);
    g_len(&hs, 4, e2.b, e2.n);
    g_tag(&hs, 3, 0);
    g_varint(&hs, (uint64_t)(int64_t)-5);
    g_len(&hs, 6, "a", 1);
    g_len(&w, 1, "t", 1);
    g_len(&w, 2, "s", 1);
    gbuf ts = {0};
    g_tag(&ts, 1, 0);
    g_varint(&ts, 5);
    g_len(&w, 3, ts.b, ts.n);
    g_tag(&w, 4, 0);
    g_varint(&w, 1);
    g_len(&w, 14, NULL, 0); /* signature: empty bytes */
    g_len(&w, 17, hs.b, hs.n);

    cap_packet *p = NULL;
    assert_int_equal(cap_packet_unpack(w.b, w.n, NULL, &p), CAP_OK);
    Cordum__Agent__V1__Handshake *h = p->handshake;
    assert_int_equal(p->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HANDSHAKE);
    assert_int_equal(h->n_supported_versions, 4);
    assert_int_equal(h->supported_versions[0], 1);
    assert_int_equal(h->supported_versions[1], 2);
    assert_int_equal(h->supported_versions[2], 300);
    assert_int_equal(h->supported_versions[3], -5);
    assert_int_equal(h->n_ready_topics, 2);
    assert_string_equal(h->ready_topics[0], "b");
    assert_string_equal(h->ready_topics[1], "a");
    assert_int_equal(h->n_capabilities, 2);
    assert_string_equal(h->capabilities[0]->key, "zeta");
    assert_true(h->capabilities[0]->value);
    assert_string_equal(h->capabilities[1]->key, "alpha");
    assert_false(h->capabilities[1]->value);
    assert_null(p->signature.data);
    assert_int_equal(p->signature.len, 0);
    assert_string_equal(h->sdk_version, ""); /* absent: message_init's default */
    char why[256];
    assert_int_equal(ud_check_unpack(w.b, w.n, why, sizeof why), UD_EQUAL);
    cap_packet_free(p);
    free(hs.b), free(run.b), free(e1.b), free(e2.b), free(w.b), free(ts.b);
}

/* An allocator that counts live blocks and can fail its k-th call. */
typedef struct {
    size_t calls, live, fail_at;
} track;

static void *track_alloc(void *data, size_t n)
{
    track *t = data;
    if (t->calls++ == t->fail_at)
        return NULL;
    void *p = malloc(n);
    if (p)
        t->live++;
    return p;
}
static void track_free(void *data, void *p)
{
    track *t = data;
    if (p) {
        assert_true(t->live > 0);
        t->live--;
        free(p);
    }
}

/* Every block of a decoded packet comes from the caller's allocator and
 * free_unpacked gives each one back; a failure at any allocation gives
 * CAP_ENOMEM with nothing left allocated. */
static void test_allocator_blocks(void **state)
{
    (void)state;
    corpus c = {0};
    add_bin_dir(&c, REPO_PATH("conformance/fixtures"));
    size_t checked = 0;
    for (size_t i = 0; i < c.n; i++) {
        track t = {.fail_at = SIZE_MAX};
        ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
        cap_packet *p = NULL;
        if (cap_packet_decode_in(c.items[i].b, c.items[i].n, NULL, CAP_DECODE_STRICT, &a, &p,
                                 NULL) != CAP_OK)
            continue;
        size_t calls = t.calls;
        assert_true(calls > 3);
        protobuf_c_message_free_unpacked(&p->base, &a);
        assert_int_equal(t.live, 0);
        for (size_t k = 0; k < calls; k++) {
            track f = {.fail_at = k};
            ProtobufCAllocator fa = {.alloc = track_alloc, .free = track_free,
                                     .allocator_data = &f};
            cap_diag d;
            assert_int_equal(cap_packet_decode_in(c.items[i].b, c.items[i].n, NULL,
                                                  CAP_DECODE_STRICT, &fa, &p, &d),
                             CAP_ENOMEM);
            assert_null(p);
            assert_int_equal(f.live, 0);
        }
        checked++;
    }
    assert_true(checked >= 8);
    corpus_free(&c);
}

/* Unknown fields (lenient mode) are kept, as protobuf-c keeps them: such a
 * packet is not built by the one pass. */
static void test_unknown_fields_kept(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = tu_read_file(REPO_PATH("conformance/fixtures/buspacket_job_request.bin"), &len);
    gbuf w = {0};
    g_raw(&w, b, len);
    g_tag(&w, 9, 0); /* below the payload range: ignored by lenient consumers */
    g_varint(&w, 77);
    cap_packet *p = NULL;
    assert_int_equal(cap_packet_unpack(w.b, w.n, NULL, &p), CAP_EINVAL);
    assert_null(p);
    assert_int_equal(cap_packet_decode(w.b, w.n, NULL, CAP_DECODE_LENIENT, &p, NULL), CAP_OK);
    assert_int_equal(p->base.n_unknown_fields, 1);
    assert_int_equal(p->base.unknown_fields[0].tag, 9);
    cap_packet_free(p);
    /* The same bytes without the extra field: built by the one pass. */
    assert_int_equal(cap_packet_unpack(b, len, NULL, &p), CAP_OK);
    assert_int_equal(p->base.n_unknown_fields, 0);
    cap_packet_free(p);
    free(b);
    free(w.b);
}

/* Into an arena, as the simulated bus decodes: the same packet as on the
 * heap, arena after arena. */
static void test_arena_same_as_heap(void **state)
{
    (void)state;
    corpus c = {0};
    add_bin_dir(&c, REPO_PATH("conformance/fixtures"));
    cap_arena arena;
    cap_arena_init(&arena, 1 << 16);
    for (size_t i = 0; i < c.n; i++) {
        cap_packet *h = NULL, *a = NULL;
        int rh = cap_packet_decode(c.items[i].b, c.items[i].n, NULL, CAP_DECODE_STRICT, &h, NULL);
        int ra = cap_packet_decode_in(c.items[i].b, c.items[i].n, NULL, CAP_DECODE_STRICT,
                                      &arena.allocator, &a, NULL);
        assert_int_equal(rh, ra);
        if (rh == CAP_OK) {
            char why[256];
            if (ud_compare(&h->base, &a->base, why, sizeof why))
                fail_msg("fixture #%zu: %s", i, why);
            cap_packet_free(h);
        }
        cap_arena_reset(&arena);
    }
    cap_arena_free(&arena);
    corpus_free(&c);
}

/* Job requests with ever more map entries: the decoder builds a packet as
 * its scan goes while the entries fit the room it holds them in, and walks
 * the bytes again past it; both give protobuf-c's packet, on the heap and
 * in an arena. */
static void test_built_and_walked_alike(void **state)
{
    (void)state;
    cap_arena arena;
    cap_arena_init(&arena, 1 << 16);
    for (unsigned entries = 0; entries <= 120; entries += 5) {
        gbuf jr = {0}, w = {0}, ts = {0};
        g_len(&jr, 1, "job-1", 5);
        for (unsigned k = 0; k < entries; k++) {
            gbuf e = {0};
            char key[16], val[40];
            int kn = snprintf(key, sizeof key, "k%u", k);
            int vn = snprintf(val, sizeof val, "value number %u of the env map", k * 7919u);
            g_len(&e, 1, key, (size_t)kn);
            g_len(&e, 2, val, (size_t)vn);
            g_len(&jr, 6, e.b, e.n);
            free(e.b);
        }
        g_tag(&jr, 9, 0);
        g_varint(&jr, entries);
        g_len(&w, 1, "t", 1);
        g_len(&w, 2, "s", 1);
        g_tag(&ts, 1, 0);
        g_varint(&ts, 1700000000);
        g_tag(&ts, 2, 0);
        g_varint(&ts, 5);
        g_len(&w, 3, ts.b, ts.n);
        g_tag(&w, 4, 0);
        g_varint(&w, 1);
        g_len(&w, 10, jr.b, jr.n);

        char why[256];
        assert_int_equal(ud_check_unpack(w.b, w.n, why, sizeof why), UD_EQUAL);
        cap_packet *h = NULL, *a = NULL;
        assert_int_equal(cap_packet_decode(w.b, w.n, NULL, CAP_DECODE_STRICT, &h, NULL), CAP_OK);
        assert_int_equal(cap_packet_decode_in(w.b, w.n, NULL, CAP_DECODE_STRICT, &arena.allocator,
                                              &a, NULL),
                         CAP_OK);
        if (ud_compare(&h->base, &a->base, why, sizeof why))
            fail_msg("%u entries: %s", entries, why);
        assert_int_equal(a->job_request->n_env, entries);
        assert_int_equal(a->job_request->step_index, (int32_t)entries);
        assert_int_equal(a->created_at->nanos, 5);
        cap_packet_free(h);
        cap_arena_reset(&arena);
        free(jr.b), free(w.b), free(ts.b);
    }
    cap_arena_free(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repository_packets),
        cmocka_unit_test(test_generated_packets),
        cmocka_unit_test(test_mutated_packets),
        cmocka_unit_test(test_repeated_and_maps),
        cmocka_unit_test(test_allocator_blocks),
        cmocka_unit_test(test_unknown_fields_kept),
        cmocka_unit_test(test_arena_same_as_heap),
        cmocka_unit_test(test_built_and_walked_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
