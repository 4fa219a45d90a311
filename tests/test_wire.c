/* Varints, UTF-8, and the strict decoder: every rejection carries its CAP
 * code, and the reason names the field and offset. */
#include "testutil.h"

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_utf8.h"
#include "cap_varint.h"

/* --- a tiny wire writer for hand-made packets -------------------------- */

typedef struct {
    uint8_t b[1 << 17];
    size_t n;
} wbuf;

static void w_raw(wbuf *w, const void *p, size_t n)
{
    assert_true(w->n + n <= sizeof w->b);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void w_varint(wbuf *w, uint64_t v) { w->n += cap_varint_write(w->b + w->n, v); }
static void w_tag(wbuf *w, uint32_t f, unsigned wt) { w_varint(w, ((uint64_t)f << 3) | wt); }
static void w_str(wbuf *w, uint32_t f, const char *s)
{
    w_tag(w, f, 2);
    w_varint(w, strlen(s));
    w_raw(w, s, strlen(s));
}
static void w_sub(wbuf *w, uint32_t f, const wbuf *sub)
{
    w_tag(w, f, 2);
    w_varint(w, sub->n);
    w_raw(w, sub->b, sub->n);
}
static void w_uint(wbuf *w, uint32_t f, uint64_t v)
{
    w_tag(w, f, 0);
    w_varint(w, v);
}

static wbuf *new_wbuf(void)
{
    wbuf *w = calloc(1, sizeof *w);
    assert_non_null(w);
    return w;
}

/* trace_id, sender_id, created_at and (optionally) protocol_version. */
static void w_envelope(wbuf *w, int version)
{
    wbuf ts = {.n = 0};
    w_str(w, 1, "trace-1");
    w_str(w, 2, "sender-1");
    w_uint(&ts, 1, 1704164645);
    w_sub(w, 3, &ts);
    if (version >= 0)
        w_uint(w, 4, (uint64_t)version);
}

static void w_cancel(wbuf *w, uint32_t field)
{
    wbuf c = {.n = 0};
    w_str(&c, 1, "job-1");
    w_sub(w, field, &c);
}

static int decode(const wbuf *w, cap_decode_mode mode, cap_diag *d)
{
    cap_packet *p = NULL;
    int rc = cap_packet_decode(w->b, w->n, NULL, mode, &p, d);
    if (rc == CAP_OK) {
        assert_non_null(p);
        cap_packet_free(p);
    } else {
        assert_null(p);
    }
    return rc;
}

/* Asserts the error, and that path and reason contain the given words. */
static void expect(const wbuf *w, cap_decode_mode mode, int err, const char *path_part,
                   const char *reason_part)
{
    cap_diag d;
    int rc = decode(w, mode, &d);
    char line[640];
    if (rc != err)
        fail_msg("expected %d, got %d: %s", err, rc, rc ? cap_diag_format(&d, line, sizeof line) : "ok");
    if (err == CAP_OK)
        return;
    if (path_part && !strstr(d.path, path_part))
        fail_msg("path \"%s\" lacks \"%s\"", d.path, path_part);
    if (reason_part && !strstr(d.reason, reason_part))
        fail_msg("reason \"%s\" lacks \"%s\"", d.reason, reason_part);
}

/* --- varints and UTF-8 ------------------------------------------------- */

static void test_varint_minimal_only(void **state)
{
    (void)state;
    uint64_t v;
    size_t pos = 0;
    const uint8_t one[] = {0x01}, nonmin[] = {0x81, 0x00}, trunc[] = {0x81},
                  max[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
                  over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
                  zero[] = {0x00};
    assert_int_equal(cap_varint_read(one, 1, &pos, &v), CAP_VARINT_OK);
    assert_int_equal(v, 1);
    assert_int_equal(pos, 1);
    pos = 0;
    assert_int_equal(cap_varint_read(zero, 1, &pos, &v), CAP_VARINT_OK);
    assert_int_equal(v, 0);
    pos = 0;
    assert_int_equal(cap_varint_read(nonmin, 2, &pos, &v), CAP_VARINT_NONMINIMAL);
    assert_int_equal(pos, 0);
    assert_int_equal(cap_varint_read(trunc, 1, &pos, &v), CAP_VARINT_TRUNCATED);
    assert_int_equal(cap_varint_read(max, 10, &pos, &v), CAP_VARINT_OK);
    assert_true(v == UINT64_MAX);
    pos = 0;
    assert_int_equal(cap_varint_read(over, 10, &pos, &v), CAP_VARINT_OVERLONG);
    uint8_t buf[10];
    assert_int_equal(cap_varint_write(buf, 300), 2);
    assert_int_equal(cap_varint_size(300), 2);
    assert_int_equal(cap_varint_size(UINT64_MAX), 10);
    /* On both sides of every length boundary (2^(7k)), and for 0: the size
     * is the bytes written, and they read back as the value, minimal. */
    for (unsigned k = 0; k <= 9; k++)
        for (int d = -1; d <= 1; d++) {
            uint64_t x = k == 0 ? (uint64_t)(d + 1) : (UINT64_C(1) << (7 * k)) + (uint64_t)(int64_t)d;
            size_t n = cap_varint_write(buf, x);
            size_t want = k == 0 || d < 0 ? (k == 0 ? 1 : k) : k + 1;
            assert_int_equal(n, want);
            assert_int_equal(cap_varint_size(x), n);
            pos = 0;
            assert_int_equal(cap_varint_read(buf, n, &pos, &v), CAP_VARINT_OK);
            assert_true(v == x);
            assert_int_equal(pos, n);
        }
}

static void test_utf8(void **state)
{
    (void)state;
    const char *good = "plain ascii and caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end";
    assert_true(cap_utf8_check((const uint8_t *)good, strlen(good)) == CAP_UTF8_VALID);
    struct {
        const char *s;
        size_t len, bad;
    } cases[] = {
        {"ab\xc0\x80", 4, 2},          /* overlong NUL */
        {"\xed\xa0\x80", 3, 0},        /* surrogate */
        {"x\xf4\x90\x80\x80", 5, 1},   /* above U+10FFFF */
        {"abcdefgh\xe2\x82", 10, 8},   /* truncated sequence after an ASCII run */
        {"\x80", 1, 0},                /* lone continuation byte */
        {"\xff", 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(cap_utf8_check((const uint8_t *)cases[i].s, cases[i].len), cases[i].bad);
        assert_int_equal(cap_utf8_check_text((const uint8_t *)cases[i].s, cases[i].len),
                         cases[i].bad);
    }
    /* NUL: valid UTF-8, but not text a C string can hold */
    const uint8_t nul_late[] = "0123456789abcdef\0x", nul_early[] = "ab\0";
    assert_true(cap_utf8_check(nul_late, 18) == CAP_UTF8_VALID);
    assert_int_equal(cap_utf8_check_text(nul_late, 18), 16);
    assert_int_equal(cap_utf8_check_text(nul_early, 3), 2);
    assert_true(cap_utf8_check_text((const uint8_t *)good, strlen(good)) == CAP_UTF8_VALID);
}

/* --- the decoder ------------------------------------------------------- */

static void test_valid_minimal_packet(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    w_envelope(w, 1);
    w_cancel(w, 16);
    cap_packet *p;
    cap_diag d;
    assert_int_equal(cap_packet_decode(w->b, w->n, NULL, CAP_DECODE_STRICT, &p, &d), CAP_OK);
    assert_string_equal(p->trace_id, "trace-1");
    assert_int_equal(p->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL);
    assert_string_equal(p->job_cancel->job_id, "job-1");
    assert_int_equal(p->created_at->seconds, 1704164645);
    cap_packet_free(p);
    free(w);
}

/* A packet whose created_at.seconds is the varint bytes v[0..n) as they
 * are (minimal or not), inside a Timestamp of exactly those bytes. */
static void w_seconds_packet(wbuf *w, const uint8_t *v, size_t n)
{
    wbuf ts = {.n = 0};
    w->n = 0;
    w_str(w, 1, "trace-1");
    w_str(w, 2, "sender-1");
    w_tag(&ts, 1, 0);
    w_raw(&ts, v, n);
    w_sub(w, 3, &ts);
    w_uint(w, 4, 1);
    w_cancel(w, 16);
}

/* Multi-byte varints in the scan: the short ones it reads inline and the
 * ones it hands to cap_varint_read give the same values and the same
 * errors. */
static void test_long_varints(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    cap_packet *p;
    cap_diag d;
    struct {
        int64_t seconds;
    } ok[] = {{0x7f}, {0x80}, {1704164645}, {253402300799LL}, {-1}, {-62135596800LL}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint8_t v[10];
        size_t n = cap_varint_write(v, (uint64_t)ok[i].seconds);
        w_seconds_packet(w, v, n);
        assert_int_equal(cap_packet_decode(w->b, w->n, NULL, CAP_DECODE_STRICT, &p, &d), CAP_OK);
        assert_true(p->created_at->seconds == ok[i].seconds);
        cap_packet_free(p);
    }
    const uint8_t nonmin2[] = {0x85, 0x00}, nonmin6[] = {0xa5, 0x80, 0x80, 0x80, 0x80, 0x00};
    w_seconds_packet(w, nonmin2, sizeof nonmin2);
    expect(w, CAP_DECODE_STRICT, CAP_EMALFORMED, "BusPacket.created_at", "non-minimal varint");
    w_seconds_packet(w, nonmin6, sizeof nonmin6);
    expect(w, CAP_DECODE_STRICT, CAP_EMALFORMED, "BusPacket.created_at", "non-minimal varint");
    const uint8_t cut[] = {0xa5, 0x80, 0x80}; /* the Timestamp ends inside the varint */
    w_seconds_packet(w, cut, sizeof cut);
    expect(w, CAP_DECODE_STRICT, CAP_EMALFORMED, "BusPacket.created_at", "truncated varint");
    const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    w_seconds_packet(w, over, sizeof over);
    expect(w, CAP_DECODE_STRICT, CAP_EMALFORMED, "BusPacket.created_at", "over 64 bits");
    /* A non-minimal length prefix (trace_id's, two bytes for 7). */
    w->n = 0;
    w_tag(w, 1, 2);
    w_raw(w, "\x87\x00trace-1", 9);
    expect(w, CAP_DECODE_STRICT, CAP_EMALFORMED, "BusPacket", "non-minimal varint");
    free(w);
}

static void test_truncated(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    w_envelope(w, 1);
    w_cancel(w, 16);
    w->n -= 3;
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "BusPacket.job_cancel", "runs past the end");
    w->n = 1; /* inside the first tag's value */
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "BusPacket", "truncated varint");
    free(w);
}

static void test_over_size_bound(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    w_envelope(w, 1);
    w_cancel(w, 16);
    cap_bounds b = cap_bounds_default();
    b.max_packet = w->n - 1;
    cap_packet *p;
    cap_diag d;
    assert_int_equal(cap_packet_decode(w->b, w->n, &b, CAP_DECODE_LENIENT, &p, &d), CAP_EMALFORMED);
    assert_non_null(strstr(d.reason, "over the bound"));
    b.max_packet = w->n;
    assert_int_equal(cap_packet_decode(w->b, w->n, &b, CAP_DECODE_LENIENT, &p, &d), CAP_OK);
    cap_packet_free(p);
    free(w);
}

static void test_non_minimal_everywhere(void **state)
{
    (void)state;
    /* a non-minimal value */
    wbuf *w = new_wbuf();
    w_envelope(w, -1);
    w_tag(w, 4, 0);
    w_raw(w, "\x81\x00", 2);
    w_cancel(w, 16);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "protocol_version", "non-minimal varint");
    /* a non-minimal tag (field 1 as 0x8a 0x00) */
    w->n = 0;
    w_raw(w, "\x8a\x00\x01x", 4);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "BusPacket", "tag: non-minimal varint");
    /* a non-minimal length */
    w->n = 0;
    w_envelope(w, 1);
    w_tag(w, 16, 2);
    w_raw(w, "\x87\x00\x0a\x05job-1", 9);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "job_cancel", "length: non-minimal varint");
    free(w);
}

static void test_offsets_are_exact(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    w_envelope(w, -1);
    size_t at = w->n + 1; /* the value after the one-byte tag */
    w_tag(w, 4, 0);
    w_raw(w, "\x81\x00", 2);
    cap_diag d;
    assert_int_equal(decode(w, CAP_DECODE_LENIENT, &d), CAP_EMALFORMED);
    assert_int_equal(d.offset, (long)at);
    free(w);
}

static void test_duplicate_oneof_and_repeats(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    w_envelope(w, 1);
    w_cancel(w, 16);
    w_cancel(w, 11); /* a job_result too */
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "job_result", "two members of one oneof");
    w->n = 0;
    w_envelope(w, 1);
    w_cancel(w, 16);
    w_cancel(w, 16); /* the same member twice */
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "job_cancel", "appears twice");
    w->n = 0;
    w_envelope(w, 1);
    w_str(w, 1, "again"); /* trace_id twice */
    w_cancel(w, 16);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "trace_id", "appears twice");
    free(w);
}

static void test_envelope_rules(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    w_envelope(w, 1);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "payload", "no payload");
    w->n = 0;
    w_envelope(w, 2);
    w_cancel(w, 16);
    expect(w, CAP_DECODE_LENIENT, CAP_EVERSION, "protocol_version", "protocol_version 2");
    w->n = 0;
    w_envelope(w, -1); /* absent = 0 */
    w_cancel(w, 16);
    expect(w, CAP_DECODE_LENIENT, CAP_EVERSION, "protocol_version", "protocol_version 0");
    w->n = 0;
    w_envelope(w, 1);
    w_cancel(w, 23); /* reserved for a future payload */
    expect(w, CAP_DECODE_LENIENT, CAP_EUNKNOWN_PAYLOAD, "payload", "unknown payload field 23");
    expect(w, CAP_DECODE_STRICT, CAP_EUNKNOWN_PAYLOAD, "payload", "23");
    /* missing trace_id, sender_id, created_at */
    wbuf ts = {.n = 0};
    w_uint(&ts, 1, 5);
    w->n = 0;
    w_str(w, 2, "s");
    w_sub(w, 3, &ts);
    w_uint(w, 4, 1);
    w_cancel(w, 16);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "trace_id", "missing trace_id");
    w->n = 0;
    w_str(w, 1, "t");
    w_sub(w, 3, &ts);
    w_uint(w, 4, 1);
    w_cancel(w, 16);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "sender_id", "missing sender_id");
    w->n = 0;
    w_str(w, 1, "t");
    w_str(w, 2, "s");
    w_uint(w, 4, 1);
    w_cancel(w, 16);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "created_at", "missing created_at");
    free(w);
}

static void test_unknown_fields_by_mode(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    w_envelope(w, 1);
    w_cancel(w, 16);
    w_uint(w, 7, 42); /* unknown top-level, not a payload */
    expect(w, CAP_DECODE_LENIENT, CAP_OK, NULL, NULL);
    expect(w, CAP_DECODE_STRICT, CAP_EMALFORMED, "BusPacket", "unknown field 7");
    /* unknown nested field */
    wbuf c = {.n = 0};
    w->n = 0;
    w_envelope(w, 1);
    w_str(&c, 1, "job-1");
    w_uint(&c, 99, 1);
    w_sub(w, 16, &c);
    expect(w, CAP_DECODE_LENIENT, CAP_OK, NULL, NULL);
    expect(w, CAP_DECODE_STRICT, CAP_EMALFORMED, "job_cancel", "unknown field 99");
    free(w);
}

static void test_trust_payloads_always_strict(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    wbuf req = {.n = 0};
    w_str(&req, 1, "req-1");
    w_uint(&req, 1000, 1); /* cap-tck 11: unknown field 1000 -> rejected */
    w_envelope(w, 1);
    w_sub(w, 19, &req);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "worker_handshake_challenge_request",
           "unknown field 1000");
    /* an unknown top-level field beside a trust payload */
    req.n = 0;
    w_str(&req, 1, "req-1");
    w->n = 0;
    w_envelope(w, 1);
    w_sub(w, 19, &req);
    w_uint(w, 7, 1);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "BusPacket", "unknown field 7");
    /* trust packets are bounded at 64 KiB before anything else */
    w->n = 0;
    w_envelope(w, 1);
    req.n = 0;
    w_str(&req, 1, "req-1");
    w_sub(w, 19, &req);
    cap_bounds b = cap_bounds_default();
    b.max_trust_packet = w->n - 1;
    cap_packet *p;
    cap_diag d;
    assert_int_equal(cap_packet_decode(w->b, w->n, &b, CAP_DECODE_LENIENT, &p, &d), CAP_EMALFORMED);
    assert_non_null(strstr(d.reason, "trust packet"));
    free(w);
}

static void test_string_bounds_and_utf8(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    w_envelope(w, 1);
    wbuf *c = new_wbuf();
    w_str(c, 1, "job-1");
    char *big = malloc(64 * 1024 + 2);
    memset(big, 'x', 64 * 1024 + 1);
    big[64 * 1024 + 1] = 0;
    w_str(c, 2, big);
    w_sub(w, 16, c);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "job_cancel.reason", "over the bound of 65536");
    free(big);
    /* bounds come from the struct: a small max_string rejects "trace-1" */
    cap_bounds b = cap_bounds_default();
    b.max_string = 4;
    cap_packet *p;
    cap_diag d;
    w->n = 0;
    w_envelope(w, 1);
    w_cancel(w, 16);
    assert_int_equal(cap_packet_decode(w->b, w->n, &b, CAP_DECODE_LENIENT, &p, &d), CAP_EMALFORMED);
    assert_string_equal(d.path, "BusPacket.trace_id");
    /* invalid UTF-8, offset of the bad byte */
    w->n = 0;
    w_str(w, 1, "ok\xc3(");
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "trace_id", "not valid UTF-8");
    cap_packet_decode(w->b, w->n, NULL, CAP_DECODE_LENIENT, &p, &d);
    assert_int_equal(d.offset, 4);
    /* an embedded NUL cannot survive protobuf-c's C strings: rejected */
    w->n = 0;
    w_tag(w, 1, 2);
    w_varint(w, 3);
    w_raw(w, "a\0b", 3);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "trace_id", "NUL byte");
    free(c);
    free(w);
}

/* A packet whose trace_id is s[0..n), after a sender_id of `pad` bytes
 * (none: the sender comes after it), so that the string starts at every
 * alignment and both inside and past the packet's first 8 bytes; *at is
 * the offset of its first byte. */
static void w_trace_packet(wbuf *w, size_t pad, const uint8_t *s, size_t n, size_t *at)
{
    wbuf ts = {.n = 0};
    char sender[32];
    assert_true(pad < sizeof sender);
    memset(sender, 's', pad);
    w->n = 0;
    if (pad) {
        w_tag(w, 2, 2);
        w_varint(w, pad);
        w_raw(w, sender, pad);
    }
    w_tag(w, 1, 2);
    w_varint(w, n);
    *at = w->n;
    w_raw(w, s, n);
    if (!pad)
        w_str(w, 2, "sender-1");
    w_uint(&ts, 1, 1704164645);
    w_sub(w, 3, &ts);
    w_uint(w, 4, 1);
    w_cancel(w, 16);
}

/* The decoder's text check (eight bytes at a time for plain ASCII, the full
 * UTF-8 check otherwise) against cap_utf8_check_text, the reference: every
 * length up to 40, a NUL, a stray continuation byte, a truncated sequence
 * or a valid two-byte character at every position, every alignment. The
 * verdict, the offset and the reason must be the reference's; accepted
 * strings must come back unchanged. */
static void test_string_check_every_position(void **state)
{
    (void)state;
    static const uint8_t bad[][2] = {{0x00, 0}, {0x80, 0}, {0xE2, 0}, {0xC3, 0xA9}};
    static const size_t pads[] = {0, 1, 3, 6, 9};
    wbuf *w = new_wbuf();
    uint8_t s[48];
    for (size_t pi = 0; pi < sizeof pads / sizeof pads[0]; pi++)
        for (size_t n = 1; n <= 40; n++)
            for (size_t k = 0; k <= n; k++) /* k == n: plain ASCII */
                for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
                    for (size_t i = 0; i < n; i++)
                        s[i] = (uint8_t)('a' + i % 26);
                    if (k < n) {
                        s[k] = bad[b][0];
                        if (bad[b][1] && k + 1 < n)
                            s[k + 1] = bad[b][1];
                    }
                    size_t at;
                    w_trace_packet(w, pads[pi], s, n, &at);
                    size_t ref = cap_utf8_check_text(s, n);
                    cap_packet *p = NULL;
                    cap_diag d;
                    int rc = cap_packet_decode(w->b, w->n, NULL, CAP_DECODE_STRICT, &p, &d);
                    if (ref == CAP_UTF8_VALID) {
                        assert_int_equal(rc, CAP_OK);
                        assert_int_equal(strlen(p->trace_id), n);
                        assert_memory_equal(p->trace_id, s, n);
                        cap_packet_free(p);
                        continue;
                    }
                    assert_int_equal(rc, CAP_EMALFORMED);
                    assert_null(p);
                    assert_string_equal(d.path, "BusPacket.trace_id");
                    assert_int_equal(d.offset, (long)(at + ref));
                    assert_non_null(strstr(d.reason, s[ref] ? "not valid UTF-8" : "NUL byte"));
                }
    free(w);
}

static void test_entry_bounds(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    wbuf *r = new_wbuf();
    w_envelope(w, 1);
    w_str(r, 1, "job-1");
    for (int i = 0; i < 1001; i++) {
        wbuf e = {.n = 0};
        char key[16];
        snprintf(key, sizeof key, "k%04d", i);
        w_str(&e, 1, key);
        w_str(&e, 2, "v");
        w_sub(r, 6, &e);
    }
    w_sub(w, 10, r);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "job_request.env", "map env has more than 1000");
    /* repeated strings */
    w->n = 0;
    r->n = 0;
    w_envelope(w, 1);
    for (int i = 0; i < 1001; i++)
        w_str(r, 7, "cap");
    w_sub(w, 12, r);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "heartbeat.capabilities", "more than 1000");
    /* a packed run counts each element */
    w->n = 0;
    r->n = 0;
    w_envelope(w, 1);
    w_tag(r, 3, 2);
    w_varint(r, 1001);
    for (int i = 0; i < 1001; i++)
        w_varint(r, 1);
    w_sub(w, 17, r);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "handshake.supported_versions", "more than 1000");
    free(r);
    free(w);
}

static void test_structural_rejections(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    /* trace_id sent as a varint */
    w_uint(w, 1, 5);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "trace_id", "wire type 0");
    /* a group */
    w->n = 0;
    w_envelope(w, 1);
    w_tag(w, 30, 3);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "BusPacket", "groups");
    /* field number 0 */
    w->n = 0;
    w_raw(w, "\x02\x00", 2);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "BusPacket", "field number 0");
    /* wire type 7 */
    w->n = 0;
    w_raw(w, "\x0f", 1);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "BusPacket", "invalid wire type 7");
    /* bool encoded as 2 */
    wbuf h = {.n = 0};
    w->n = 0;
    w_envelope(w, 1);
    w_uint(&h, 2, 2);
    w_sub(w, 22, &h);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "accepted", "bool encoded as 2");
    /* int32 out of range */
    w->n = 0;
    w_uint(w, 4, (uint64_t)1 << 40);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "protocol_version", "does not fit int32");
    free(w);
}

static void test_duplicate_map_key_and_timestamp(void **state)
{
    (void)state;
    wbuf *w = new_wbuf();
    wbuf *r = new_wbuf();
    w_envelope(w, 1);
    w_str(r, 1, "job-1");
    for (int i = 0; i < 2; i++) {
        wbuf e = {.n = 0};
        w_str(&e, 1, "region");
        w_str(&e, 2, i ? "b" : "a");
        w_sub(r, 6, &e);
    }
    w_sub(w, 10, r);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "job_request.env", "duplicate map key \"region\"");
    /* nanos out of range */
    wbuf ts = {.n = 0};
    w->n = 0;
    w_str(w, 1, "t");
    w_str(w, 2, "s");
    w_uint(&ts, 1, 5);
    w_uint(&ts, 2, 1000000000);
    w_sub(w, 3, &ts);
    w_uint(w, 4, 1);
    w_cancel(w, 16);
    expect(w, CAP_DECODE_LENIENT, CAP_EMALFORMED, "created_at", "nanos");
    free(r);
    free(w);
}

static void test_depth_bound(void **state)
{
    (void)state;
    /* BusPacket > worker_handshake_result > challenge > issued_at: depth 3 */
    wbuf *w = new_wbuf();
    wbuf ts = {.n = 0}, ch = {.n = 0}, res = {.n = 0};
    w_uint(&ts, 1, 5);
    w_str(&ch, 1, "req");
    w_sub(&ch, 16, &ts);
    w_sub(&res, 1, &ch);
    w_envelope(w, 1);
    w_sub(w, 22, &res);
    cap_bounds b = cap_bounds_default();
    cap_packet *p;
    cap_diag d;
    assert_int_equal(cap_packet_decode(w->b, w->n, &b, CAP_DECODE_STRICT, &p, &d), CAP_OK);
    cap_packet_free(p);
    b.max_depth = 3;
    assert_int_equal(cap_packet_decode(w->b, w->n, &b, CAP_DECODE_STRICT, &p, &d), CAP_EMALFORMED);
    assert_non_null(strstr(d.reason, "nested deeper than 3"));
    free(w);
}

static void test_diag_format(void **state)
{
    (void)state;
    cap_diag d;
    char line[640];
    cap_diag_set(&d, CAP_EMALFORMED, 12, "BusPacket.trace_id", "string is not valid UTF-8");
    assert_string_equal(cap_diag_format(&d, line, sizeof line),
                        "ERROR_CODE_PROTOCOL_MALFORMED_PACKET (101): BusPacket.trace_id at offset "
                        "12: string is not valid UTF-8");
    assert_int_equal(cap_err_protocol_code(CAP_EVERSION), 100);
    assert_int_equal(cap_err_protocol_code(CAP_ENOMEM), 0);
    assert_null(cap_err_protocol_name(CAP_EJSON));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_minimal_only),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_valid_minimal_packet),
        cmocka_unit_test(test_long_varints),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_over_size_bound),
        cmocka_unit_test(test_non_minimal_everywhere),
        cmocka_unit_test(test_offsets_are_exact),
        cmocka_unit_test(test_duplicate_oneof_and_repeats),
        cmocka_unit_test(test_envelope_rules),
        cmocka_unit_test(test_unknown_fields_by_mode),
        cmocka_unit_test(test_trust_payloads_always_strict),
        cmocka_unit_test(test_string_bounds_and_utf8),
        cmocka_unit_test(test_string_check_every_position),
        cmocka_unit_test(test_entry_bounds),
        cmocka_unit_test(test_structural_rejections),
        cmocka_unit_test(test_duplicate_map_key_and_timestamp),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_diag_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
