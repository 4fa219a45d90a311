/* Trace files: binary and JSONL encodings, streaming writer and reader,
 * running SHA-256 over the binary form. Format: docs/trace.md. */
#include "cap_trace.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cap_base64.h"
#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_json.h"
#include "cap_schema.h"
#include "cap_sha256.h"
#include "cap_utf8.h"

/* Body: kind u8, time i64, five u16-length strings, u32-length packet. */
#define BODY_FIXED (1 + 8 + 5 * 2 + 4)
#define NSTR CAP_TRACE_NSTR

static const char *const KIND_NAMES[] = {NULL, "publish", "deliver", "drop", "reject"};

const char *cap_trace_kind_name(cap_trace_kind k)
{
    return (k >= CAP_TRACE_PUBLISH && k <= CAP_TRACE_REJECT) ? KIND_NAMES[k] : NULL;
}

static int kind_from_name(const char *s)
{
    for (int k = CAP_TRACE_PUBLISH; k <= CAP_TRACE_REJECT; k++)
        if (strcmp(s, KIND_NAMES[k]) == 0)
            return k;
    return 0;
}

/* ---- shared: growable buffer, binary body, hashing ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} tbuf;

static int tbuf_reserve(tbuf *b, size_t n)
{
    if (n <= b->cap)
        return CAP_OK;
    size_t c = b->cap ? b->cap : 256;
    while (c < n)
        c *= 2;
    uint8_t *p = realloc(b->p, c);
    if (!p)
        return CAP_ENOMEM;
    b->p = p;
    b->cap = c;
    return CAP_OK;
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* A record's strings (NULL read as empty) and their lengths, in body order. */
typedef struct {
    const char *s[NSTR];
    size_t n[NSTR];
    size_t longest; /* the largest n */
    int ascii;      /* 1 when no string has a byte over 0x7f */
} rec_strings;

/* The OR of the n bytes at s, read eight (or four) at a time: bit 7 of
 * each byte of the result says whether some byte has it. Loads stay
 * within the n bytes (the last word overlaps the one before). */
static uint64_t or_bytes(const unsigned char *s, size_t n)
{
    uint64_t acc = 0, w;
    if (n >= 8) {
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&w, s + i, 8);
            acc |= w;
        }
        memcpy(&w, s + n - 8, 8);
        return acc | w;
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        return a | b;
    }
    for (size_t i = 0; i < n; i++)
        acc |= s[i];
    return acc;
}

/* Each string's length (known[i] when known is not NULL, else the
 * library's strlen), and whether any byte is not ASCII (a NUL-free ASCII
 * string is valid text, so only the others need the full UTF-8 check),
 * tested a word at a time. The loops over the strings here and in
 * encode_record are unrolled: the five arrays' members then live in
 * registers. */
static inline __attribute__((always_inline)) void record_strings(const cap_trace_record *rec,
                                                                 const size_t *known,
                                                                 rec_strings *rs)
{
    const char *vals[NSTR] = {rec->subject, rec->sender, rec->receiver, rec->reply, rec->note};
    uint64_t acc = 0;
    size_t longest = 0;
#pragma GCC unroll 5
    for (int i = 0; i < NSTR; i++) {
        const char *s = nz(vals[i]);
        size_t n = known ? known[i] : s[0] ? strlen(s) : 0;
        if (n) /* most records have empty strings: no call for those */
            acc |= or_bytes((const unsigned char *)s, n);
        longest = n > longest ? n : longest;
        rs->s[i] = s;
        rs->n[i] = n;
    }
    rs->longest = longest;
    rs->ascii = (acc & UINT64_C(0x8080808080808080)) == 0;
}

/* Checks a record against the bounds; CAP_EINVAL with diag. Fills *rs
 * (the strings' lengths from known when it is not NULL). */
static inline __attribute__((always_inline)) int check_record(const cap_trace_record *rec,
                                                              const size_t *known,
                                                              rec_strings *rs, cap_diag *diag)
{
    if (!rec)
        return cap_diag_set(diag, CAP_EINVAL, -1, "record", "NULL record");
    if (!cap_trace_kind_name(rec->kind))
        return cap_diag_set(diag, CAP_EINVAL, -1, "record.kind", "unknown kind %d", (int)rec->kind);
    if (!rec->subject || !rec->subject[0])
        return cap_diag_set(diag, CAP_EINVAL, -1, "record.subject", "missing subject");
    static const char *const names[NSTR] = {"subject", "sender", "receiver", "reply", "note"};
    record_strings(rec, known, rs);
    /* String by string (for the first one at fault) only when one is. */
    int suspect = rs->longest > CAP_TRACE_MAX_STRING || !rs->ascii;
    for (int i = 0; suspect && i < NSTR; i++) {
        size_t n = rs->n[i];
        if (n > CAP_TRACE_MAX_STRING)
            return cap_diag_set(diag, CAP_EINVAL, -1, names[i], "%zu bytes, over the bound of %zu",
                                n, CAP_TRACE_MAX_STRING);
        if (!rs->ascii &&
            cap_utf8_check_text((const uint8_t *)rs->s[i], n) != CAP_UTF8_VALID)
            return cap_diag_set(diag, CAP_EINVAL, -1, names[i], "not valid UTF-8");
    }
    if (rec->len > CAP_TRACE_MAX_PACKET_LIMIT)
        return cap_diag_set(diag, CAP_EINVAL, -1, "record.bytes", "%zu bytes, over the limit of %zu",
                            rec->len, CAP_TRACE_MAX_PACKET_LIMIT);
    if (rec->len && !rec->bytes)
        return cap_diag_set(diag, CAP_EINVAL, -1, "record.bytes", "NULL bytes with a length");
    return CAP_OK;
}

/* Little-endian stores of fixed width: one store on a little-endian
 * machine, byte by byte elsewhere. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PUT_LE(p, v, type)                                                                         \
    do {                                                                                           \
        type v_ = (type)(v);                                                                       \
        memcpy((p), &v_, sizeof v_);                                                               \
    } while (0)
#else
#define PUT_LE(p, v, type)                                                                         \
    do {                                                                                           \
        uint64_t v_ = (uint64_t)(v);                                                               \
        for (size_t i_ = 0; i_ < sizeof(type); i_++)                                               \
            (p)[i_] = (uint8_t)(v_ >> (8 * i_));                                                   \
    } while (0)
#endif

static void put_le16(uint8_t *p, uint64_t v)
{
    PUT_LE(p, v, uint16_t);
}

static void put_le32(uint8_t *p, uint64_t v)
{
    PUT_LE(p, v, uint32_t);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    PUT_LE(p, v, uint64_t);
}

/* The binary form of one (checked) record, whose strings are rs, length
 * prefix included, into b. */
static int encode_record(tbuf *b, const cap_trace_record *rec, const rec_strings *rs)
{
    size_t body = BODY_FIXED + rec->len;
#pragma GCC unroll 5
    for (int i = 0; i < NSTR; i++)
        body += rs->n[i];
    if (4 + body > b->cap && tbuf_reserve(b, 4 + body) != CAP_OK)
        return CAP_ENOMEM;
    uint8_t *p = b->p;
    put_le32(p, body);
    p[4] = (uint8_t)rec->kind;
    put_le64(p + 5, (uint64_t)rec->time);
    p += 13;
#pragma GCC unroll 5
    for (int i = 0; i < NSTR; i++) {
        size_t n = rs->n[i];
        put_le16(p, n);
        if (n) /* most records have empty strings: no call for those */
            memcpy(p + 2, rs->s[i], n);
        p += 2 + n;
    }
    put_le32(p, rec->len);
    p += 4;
    if (rec->len)
        memcpy(p, rec->bytes, rec->len);
    b->len = 4 + body;
    return CAP_OK;
}

static void header_bytes(uint8_t h[CAP_TRACE_HEADER_LEN])
{
    memcpy(h, CAP_TRACE_MAGIC, 8);
    put_le32(h + 8, CAP_TRACE_VERSION);
}

/* The digest so far, in hex; the running hash goes on. */
static void hash_hex(const cap_sha256_ctx *md, char hex[65])
{
    unsigned char d[CAP_SHA256_LEN];
    cap_sha256_ctx c = *md;
    cap_sha256_final(&c, d);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}

static void hash_start(cap_sha256_ctx *md)
{
    uint8_t h[CAP_TRACE_HEADER_LEN];
    header_bytes(h);
    cap_sha256_init(md);
    cap_sha256_update(md, h, sizeof h);
}

/* ---- writer ---- */

struct cap_trace_writer {
    FILE *f;
    cap_trace_format fmt;
    cap_sha256_ctx md;
    tbuf buf;
    uint64_t count;
    int io_failed;
};

int cap_trace_writer_open(FILE *f, cap_trace_format fmt, cap_trace_writer **out)
{
    if (!out || (fmt != CAP_TRACE_BINARY && fmt != CAP_TRACE_JSONL))
        return CAP_EINVAL;
    *out = NULL;
    cap_trace_writer *w = calloc(1, sizeof *w);
    if (!w)
        return CAP_ENOMEM;
    w->f = f;
    w->fmt = fmt;
    hash_start(&w->md);
    if (f) {
        int ok;
        if (fmt == CAP_TRACE_BINARY) {
            uint8_t h[CAP_TRACE_HEADER_LEN];
            header_bytes(h);
            ok = fwrite(h, 1, sizeof h, f) == sizeof h;
        } else {
            ok = fprintf(f, "{\"captrace\":%d}\n", CAP_TRACE_VERSION) > 0;
        }
        if (!ok) {
            free(w);
            return CAP_EIO;
        }
    }
    *out = w;
    return CAP_OK;
}

/* The packet's JSON form, when the bytes decode (leniently) and have one;
 * NULL otherwise (or when out of memory: the line still carries bytes). */
static char *packet_json(const uint8_t *bytes, size_t len)
{
    if (len == 0)
        return NULL;
    cap_bounds bounds = cap_bounds_default();
    if (bounds.max_packet < len)
        bounds.max_packet = len;
    cap_packet *p = NULL;
    if (cap_packet_decode(bytes, len, &bounds, CAP_DECODE_LENIENT, &p, NULL) != CAP_OK)
        return NULL;
    char *json = NULL;
    if (!cap_message_has_unknown_fields(&p->base))
        (void)cap_json_from_message(&p->base, 0, &json);
    cap_packet_free(p);
    return json;
}

static int write_jsonl(cap_trace_writer *w, const cap_trace_record *rec)
{
    cJSON *o = cJSON_CreateObject();
    char tbufs[32];
    snprintf(tbufs, sizeof tbufs, "%" PRId64, rec->time);
    int ok = o && cJSON_AddStringToObject(o, "time", tbufs) &&
             cJSON_AddStringToObject(o, "kind", cap_trace_kind_name(rec->kind)) &&
             cJSON_AddStringToObject(o, "subject", rec->subject);
    const char *keys[4] = {"sender", "receiver", "reply", "note"};
    const char *vals[4] = {rec->sender, rec->receiver, rec->reply, rec->note};
    for (int i = 0; ok && i < 4; i++)
        if (vals[i] && vals[i][0])
            ok = cJSON_AddStringToObject(o, keys[i], vals[i]) != NULL;
    char *pj = ok ? packet_json(rec->bytes, rec->len) : NULL;
    if (ok && pj)
        ok = cJSON_AddRawToObject(o, "packet", pj) != NULL;
    free(pj);
    char *b64 = NULL;
    if (ok) {
        b64 = malloc(cap_base64_encoded_len(rec->len) + 1);
        ok = b64 != NULL;
        if (ok) {
            cap_base64_encode(rec->bytes ? rec->bytes : (const uint8_t *)"", rec->len, b64);
            ok = cJSON_AddStringToObject(o, "bytes", b64) != NULL;
        }
    }
    free(b64);
    char *line = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!line)
        return CAP_ENOMEM;
    int rc = fputs(line, w->f) >= 0 && fputc('\n', w->f) != EOF ? CAP_OK : CAP_EIO;
    cJSON_free(line);
    return rc;
}

/* cap_trace_write; known: the strings' lengths, or NULL to measure them. */
static inline __attribute__((always_inline)) int write_record(cap_trace_writer *w,
                                                              const cap_trace_record *rec,
                                                              const size_t *known, cap_diag *diag)
{
    if (!w)
        return cap_diag_set(diag, CAP_EINVAL, -1, "", "NULL writer");
    if (w->io_failed)
        return cap_diag_set(diag, CAP_EIO, -1, "", "an earlier write failed");
    rec_strings rs;
    int rc = check_record(rec, known, &rs, diag);
    if (rc != CAP_OK)
        return rc;
    if (encode_record(&w->buf, rec, &rs) != CAP_OK)
        return cap_diag_set(diag, CAP_ENOMEM, -1, "", "out of memory");
    if (w->f) {
        if (w->fmt == CAP_TRACE_BINARY)
            rc = fwrite(w->buf.p, 1, w->buf.len, w->f) == w->buf.len ? CAP_OK : CAP_EIO;
        else
            rc = write_jsonl(w, rec);
        if (rc == CAP_ENOMEM)
            return cap_diag_set(diag, rc, -1, "", "out of memory");
        if (rc != CAP_OK) {
            w->io_failed = 1;
            return cap_diag_set(diag, rc, -1, "", "write failed: %s", strerror(errno));
        }
    }
    cap_sha256_update(&w->md, w->buf.p, w->buf.len);
    w->count++;
    return CAP_OK;
}

int cap_trace_write(cap_trace_writer *w, const cap_trace_record *rec, cap_diag *diag)
{
    return write_record(w, rec, NULL, diag);
}

int cap_trace_write_n(cap_trace_writer *w, const cap_trace_record *rec,
                      const size_t n[CAP_TRACE_NSTR], cap_diag *diag)
{
    return write_record(w, rec, n, diag);
}

uint64_t cap_trace_writer_count(const cap_trace_writer *w)
{
    return w ? w->count : 0;
}

int cap_trace_writer_close(cap_trace_writer *w, char hex[65])
{
    if (!w)
        return CAP_OK;
    int rc = w->io_failed ? CAP_EIO : CAP_OK;
    if (w->f && fflush(w->f) != 0)
        rc = CAP_EIO;
    if (hex)
        hash_hex(&w->md, hex);
    free(w->buf.p);
    free(w);
    return rc;
}

/* ---- reader ---- */

struct cap_trace_reader {
    FILE *f;
    cap_trace_format fmt;
    size_t max_packet;
    size_t max_line;
    cap_sha256_ctx md;
    uint8_t pre[8]; /* bytes read while detecting the format */
    size_t pre_len, pre_pos;
    long offset;    /* bytes consumed so far */
    uint64_t index; /* records read so far */
    unsigned long line;
    tbuf body;      /* binary: the current record body; JSONL: the line */
    tbuf pkt;       /* JSONL: the current packet bytes */
    tbuf enc;       /* JSONL: the binary form, for the hash */
    char str[NSTR][CAP_TRACE_MAX_STRING + 1];
    int err;        /* sticky error */
    cap_diag err_diag;
};

static size_t rd(cap_trace_reader *r, void *dst, size_t n)
{
    uint8_t *d = dst;
    size_t got = 0;
    while (got < n && r->pre_pos < r->pre_len)
        d[got++] = r->pre[r->pre_pos++];
    if (got < n)
        got += fread(d + got, 1, n - got, r->f);
    r->offset += (long)got;
    return got;
}

static int rd_char(cap_trace_reader *r)
{
    if (r->pre_pos < r->pre_len) {
        r->offset++;
        return r->pre[r->pre_pos++];
    }
    int c = getc(r->f);
    if (c != EOF)
        r->offset++;
    return c;
}

static int sticky(cap_trace_reader *r, int rc, cap_diag *diag)
{
    r->err = rc;
    if (diag)
        r->err_diag = *diag;
    return rc;
}

int cap_trace_reader_open(FILE *f, cap_trace_format fmt, const cap_trace_limits *lim,
                          cap_trace_reader **out, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (!f || !out || (fmt != CAP_TRACE_AUTO && fmt != CAP_TRACE_BINARY && fmt != CAP_TRACE_JSONL))
        return cap_diag_set(diag, CAP_EINVAL, -1, "", "bad arguments");
    *out = NULL;
    size_t maxp = lim && lim->max_packet ? lim->max_packet : CAP_TRACE_DEFAULT_MAX_PACKET;
    if (maxp > CAP_TRACE_MAX_PACKET_LIMIT)
        return cap_diag_set(diag, CAP_EINVAL, -1, "", "max_packet over %zu", CAP_TRACE_MAX_PACKET_LIMIT);
    cap_trace_reader *r = calloc(1, sizeof *r);
    if (!r)
        return cap_diag_set(diag, CAP_ENOMEM, -1, "", "out of memory");
    r->f = f;
    r->max_packet = maxp;
    /* base64 (4/3) of the packet, its JSON form (at most ~6x for escapes
     * and base64 inside), the strings escaped (6x) and the keys. */
    r->max_line = 8 * maxp + NSTR * 6 * CAP_TRACE_MAX_STRING + 4096;
    hash_start(&r->md);
    int rc = CAP_OK;
    if (fmt != CAP_TRACE_JSONL) {
        uint8_t h[CAP_TRACE_HEADER_LEN];
        size_t got = rd(r, h, 8);
        int magic = got == 8 && memcmp(h, CAP_TRACE_MAGIC, 8) == 0;
        if (fmt == CAP_TRACE_AUTO && !magic && got > 0 && h[0] == '{') {
            memcpy(r->pre, h, got); /* JSONL: hand the bytes back */
            r->pre_len = got;
            r->offset = 0;
            fmt = CAP_TRACE_JSONL;
        } else if (!magic) {
            if (got < 8 && (got == 0 || memcmp(h, CAP_TRACE_MAGIC, got) == 0))
                rc = cap_diag_set(diag, CAP_ETRACE, (long)got, "header",
                                  "truncated header: %zu of %d bytes", got, CAP_TRACE_HEADER_LEN);
            else
                rc = cap_diag_set(diag, CAP_ETRACE, 0, "header",
                                  "bad magic: not a CAPTRACE file%s",
                                  fmt == CAP_TRACE_AUTO ? " nor a JSONL trace" : "");
            goto fail;
        } else {
            got = rd(r, h + 8, 4);
            if (got < 4) {
                rc = cap_diag_set(diag, CAP_ETRACE, 8 + (long)got, "header",
                                  "truncated header: %zu of %d bytes", 8 + got, CAP_TRACE_HEADER_LEN);
                goto fail;
            }
            uint64_t v = get_le(h + 8, 4);
            if (v != CAP_TRACE_VERSION) {
                rc = cap_diag_set(diag, CAP_ETRACE, 8, "header",
                                  "unsupported format version %" PRIu64 " (this reader knows %d)",
                                  v, CAP_TRACE_VERSION);
                goto fail;
            }
            fmt = CAP_TRACE_BINARY;
        }
    }
    r->fmt = fmt;
    if (fmt == CAP_TRACE_JSONL) {
        cap_trace_record dummy;
        rc = cap_trace_read(r, &dummy, diag); /* line 1: the header */
        if (rc == 0)
            rc = cap_diag_set(diag, CAP_ETRACE, 0, "header", "truncated header: empty file");
        if (rc < 0)
            goto fail;
    }
    *out = r;
    return CAP_OK;
fail:
    cap_trace_reader_close(r);
    return rc;
}

cap_trace_format cap_trace_reader_format(const cap_trace_reader *r)
{
    return r ? r->fmt : CAP_TRACE_AUTO;
}

int cap_trace_reader_hash(const cap_trace_reader *r, char hex[65])
{
    if (!r || !hex)
        return CAP_EINVAL;
    hash_hex(&r->md, hex);
    return CAP_OK;
}

void cap_trace_reader_close(cap_trace_reader *r)
{
    if (!r)
        return;
    free(r->body.p);
    free(r->pkt.p);
    free(r->enc.p);
    free(r);
}

/* -- binary -- */

static int read_binary(cap_trace_reader *r, cap_trace_record *rec, cap_diag *diag)
{
    char path[48];
    snprintf(path, sizeof path, "record %" PRIu64, r->index);
    long start = r->offset;
    uint8_t lb[4];
    size_t got = rd(r, lb, 4);
    if (got == 0) {
        if (ferror(r->f))
            return cap_diag_set(diag, CAP_EIO, start, path, "read failed");
        return 0;
    }
    if (got < 4)
        return cap_diag_set(diag, CAP_ETRACE, start, path,
                            "truncated record: length field has %zu of 4 bytes", got);
    uint64_t body = get_le(lb, 4);
    uint64_t max_body = BODY_FIXED + NSTR * CAP_TRACE_MAX_STRING + r->max_packet;
    if (body < BODY_FIXED || body > max_body)
        return cap_diag_set(diag, CAP_ETRACE, start, path,
                            "record length %" PRIu64 " outside [%d, %" PRIu64 "]", body,
                            BODY_FIXED, max_body);
    if (tbuf_reserve(&r->body, 4 + (size_t)body) != CAP_OK)
        return cap_diag_set(diag, CAP_ENOMEM, start, path, "out of memory");
    memcpy(r->body.p, lb, 4);
    uint8_t *p = r->body.p + 4;
    got = rd(r, p, (size_t)body);
    if (got < body)
        return cap_diag_set(diag, ferror(r->f) ? CAP_EIO : CAP_ETRACE, start, path,
                            "truncated record: %zu of %" PRIu64 " body bytes", got, body);
    const uint8_t *end = p + body;
    int kind = *p++;
    if (!cap_trace_kind_name((cap_trace_kind)kind))
        return cap_diag_set(diag, CAP_ETRACE, start + 4, path, "unknown kind %d", kind);
    rec->kind = (cap_trace_kind)kind;
    rec->time = (int64_t)get_le(p, 8);
    p += 8;
    static const char *const names[NSTR] = {"subject", "sender", "receiver", "reply", "note"};
    for (int i = 0; i < NSTR; i++) {
        long foff = start + 4 + (long)(p - (r->body.p + 4));
        if (end - p < 2)
            return cap_diag_set(diag, CAP_ETRACE, foff, path, "%s: lengths overrun the record", names[i]);
        size_t n = (size_t)get_le(p, 2);
        p += 2;
        if (n > CAP_TRACE_MAX_STRING)
            return cap_diag_set(diag, CAP_ETRACE, foff, path, "%s: %zu bytes, over the bound of %zu",
                                names[i], n, CAP_TRACE_MAX_STRING);
        if ((size_t)(end - p) < n + 4 * (i == NSTR - 1))
            return cap_diag_set(diag, CAP_ETRACE, foff, path, "%s: lengths overrun the record", names[i]);
        if (cap_utf8_check_text(p, n) != CAP_UTF8_VALID)
            return cap_diag_set(diag, CAP_ETRACE, foff, path, "%s: not valid UTF-8", names[i]);
        memcpy(r->str[i], p, n);
        r->str[i][n] = '\0';
        p += n;
    }
    long poff = start + 4 + (long)(p - (r->body.p + 4));
    if (end - p < 4)
        return cap_diag_set(diag, CAP_ETRACE, poff, path, "packet: lengths overrun the record");
    uint64_t plen = get_le(p, 4);
    p += 4;
    if (plen > r->max_packet)
        return cap_diag_set(diag, CAP_ETRACE, poff, path,
                            "packet: %" PRIu64 " bytes, over the bound of %zu", plen, r->max_packet);
    if (plen != (uint64_t)(end - p))
        return cap_diag_set(diag, CAP_ETRACE, poff, path,
                            "packet: length %" PRIu64 " does not match the %zu bytes left in the record",
                            plen, (size_t)(end - p));
    if (!r->str[0][0])
        return cap_diag_set(diag, CAP_ETRACE, start, path, "missing subject");
    rec->subject = r->str[0];
    rec->sender = r->str[1];
    rec->receiver = r->str[2];
    rec->reply = r->str[3];
    rec->note = r->str[4];
    rec->bytes = p;
    rec->len = (size_t)plen;
    cap_sha256_update(&r->md, r->body.p, 4 + (size_t)body);
    return 1;
}

/* -- JSONL -- */

/* Reads one line (without its '\n') into r->body, NUL-terminated.
 * 1 line read, 0 clean end of file, negative error. */
static int read_line(cap_trace_reader *r, char *path, cap_diag *diag)
{
    size_t n = 0;
    for (;;) {
        int c = rd_char(r);
        if (c == EOF) {
            if (ferror(r->f))
                return cap_diag_set(diag, CAP_EIO, -1, path, "read failed");
            if (n == 0)
                return 0;
            return cap_diag_set(diag, CAP_ETRACE, -1, path,
                                "truncated line: no newline at the end of the file");
        }
        if (c == '\n')
            break;
        if (n >= r->max_line)
            return cap_diag_set(diag, CAP_ETRACE, -1, path, "line longer than %zu bytes", r->max_line);
        if (tbuf_reserve(&r->body, n + 2) != CAP_OK)
            return cap_diag_set(diag, CAP_ENOMEM, -1, path, "out of memory");
        r->body.p[n++] = (uint8_t)c;
    }
    if (tbuf_reserve(&r->body, n + 1) != CAP_OK)
        return cap_diag_set(diag, CAP_ENOMEM, -1, path, "out of memory");
    r->body.p[n] = '\0';
    r->body.len = n;
    return 1;
}

static int json_fail(cap_diag *diag, int err, unsigned long line, const char *key, const char *fmt,
                     const char *detail)
{
    char path[96];
    snprintf(path, sizeof path, "line %lu: $%s%s", line, key ? "." : "", key ? key : "");
    return cap_diag_set(diag, err, -1, path, fmt, detail);
}

static int parse_time(const cJSON *v, int64_t *t)
{
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (!s[0] || (s[0] == '-' ? !s[1] : 0))
            return -1;
        for (const char *q = s + (s[0] == '-'); *q; q++)
            if (*q < '0' || *q > '9')
                return -1;
        errno = 0;
        char *e;
        long long x = strtoll(s, &e, 10);
        if (errno || *e)
            return -1;
        *t = (int64_t)x;
        return 0;
    }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(int64_t)d)
            return -1;
        *t = (int64_t)d;
        return 0;
    }
    return -1;
}

/* Canonical bytes of a JSON-form packet into r->pkt. */
static int packet_from_json(cap_trace_reader *r, const cJSON *v, cap_diag *diag)
{
    char path[96];
    snprintf(path, sizeof path, "line %lu: $.packet", r->line);
    char *text = cJSON_PrintUnformatted(v);
    if (!text)
        return cap_diag_set(diag, CAP_ENOMEM, -1, path, "out of memory");
    ProtobufCMessage *m = NULL;
    cap_diag jd;
    cap_diag_clear(&jd);
    int rc = cap_json_to_message(CAP_PACKET_DESC, text, strlen(text), r->max_line, &m, &jd);
    cJSON_free(text);
    if (rc != CAP_OK) {
        char p2[192];
        snprintf(p2, sizeof p2, "line %lu: $.packet%.150s", r->line, jd.path[0] == 0x24 ? jd.path + 1 : "");
        return cap_diag_set(diag, rc, -1, p2, "%s", jd.reason);
    }
    size_t n = cap_encoded_size(m);
    if (n > r->max_packet) {
        cap_message_free(m);
        return cap_diag_set(diag, CAP_ETRACE, -1, path, "%zu bytes, over the bound of %zu", n,
                            r->max_packet);
    }
    if (tbuf_reserve(&r->pkt, n + 1) != CAP_OK) {
        cap_message_free(m);
        return cap_diag_set(diag, CAP_ENOMEM, -1, path, "out of memory");
    }
    r->pkt.len = cap_encode_into(m, r->pkt.p);
    cap_message_free(m);
    return CAP_OK;
}

/* Canonical re-encoding of exact bytes (to compare with a JSON form);
 * *out malloc'd, or NULL when the bytes do not decode. */
static uint8_t *canonical_of(const uint8_t *b, size_t len, size_t *n)
{
    cap_bounds bounds = cap_bounds_default();
    if (bounds.max_packet < len)
        bounds.max_packet = len;
    cap_packet *p = NULL;
    if (cap_packet_decode(b, len, &bounds, CAP_DECODE_LENIENT, &p, NULL) != CAP_OK)
        return NULL;
    uint8_t *out = NULL;
    if (cap_encode(&p->base, &out, n) != CAP_OK)
        out = NULL;
    cap_packet_free(p);
    return out;
}

static int read_jsonl(cap_trace_reader *r, cap_trace_record *rec, cap_diag *diag)
{
    char path[48];
    snprintf(path, sizeof path, "line %lu", r->line + 1);
    int rc = read_line(r, path, diag);
    if (rc <= 0)
        return rc;
    r->line++;
    unsigned long ln = r->line;
    const char *endp = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts((const char *)r->body.p, r->body.len, &endp, 0);
    if (!o || (size_t)(endp - (const char *)r->body.p) != r->body.len) {
        long col = endp ? (long)(endp - (const char *)r->body.p) + 1 : -1;
        cJSON_Delete(o);
        char msg[64];
        snprintf(msg, sizeof msg, "column %ld", col);
        return json_fail(diag, CAP_EJSON, ln, NULL, "not a JSON value (%s)", msg);
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return json_fail(diag, CAP_ETRACE, ln, NULL, "%s", "not a JSON object");
    }
    /* Duplicate or unknown keys. */
    static const char *const keys[] = {"time", "kind", "subject", "sender", "receiver",
                                       "reply", "note", "packet", "bytes", "captrace"};
    enum { K_TIME, K_KIND, K_SUBJECT, K_SENDER, K_RECEIVER, K_REPLY, K_NOTE, K_PACKET, K_BYTES,
           K_CAPTRACE, K_N };
    const cJSON *v[K_N] = {0};
    for (const cJSON *c = o->child; c; c = c->next) {
        int k = 0;
        while (k < K_N && strcmp(c->string, keys[k]) != 0)
            k++;
        if (ln == 1 && k != K_CAPTRACE) {
            rc = json_fail(diag, CAP_ETRACE, ln, NULL, "%s",
                           "bad header: the first line must be {\"captrace\":1}");
            goto out;
        }
        if (k == K_N || (k == K_CAPTRACE && ln != 1)) {
            rc = json_fail(diag, CAP_ETRACE, ln, c->string, "%s",
                           k == K_CAPTRACE ? "header key outside the header line" : "unknown key");
            goto out;
        }
        if (v[k]) {
            rc = json_fail(diag, CAP_ETRACE, ln, c->string, "%s", "duplicate key");
            goto out;
        }
        v[k] = c;
    }
    if (ln == 1) { /* the header line */
        if (!v[K_CAPTRACE]) {
            rc = json_fail(diag, CAP_ETRACE, ln, NULL, "%s",
                           "bad header: the first line must be {\"captrace\":1}");
            goto out;
        }
        if (!cJSON_IsNumber(v[K_CAPTRACE]) || v[K_CAPTRACE]->valuedouble != CAP_TRACE_VERSION) {
            rc = json_fail(diag, CAP_ETRACE, ln, "captrace", "%s", "unsupported format version");
            goto out;
        }
        rc = 1;
        goto out;
    }
    if (!v[K_TIME] || parse_time(v[K_TIME], &rec->time) != 0) {
        rc = json_fail(diag, CAP_ETRACE, ln, "time", "%s",
                       v[K_TIME] ? "not an int64 (a decimal string, or an exact integer)" : "missing");
        goto out;
    }
    if (!v[K_KIND] || !cJSON_IsString(v[K_KIND]) || !kind_from_name(v[K_KIND]->valuestring)) {
        rc = json_fail(diag, CAP_ETRACE, ln, "kind", "%s",
                       v[K_KIND] ? "not one of publish, deliver, drop, reject" : "missing");
        goto out;
    }
    rec->kind = (cap_trace_kind)kind_from_name(v[K_KIND]->valuestring);
    const int sk[NSTR] = {K_SUBJECT, K_SENDER, K_RECEIVER, K_REPLY, K_NOTE};
    for (int i = 0; i < NSTR; i++) {
        const cJSON *s = v[sk[i]];
        r->str[i][0] = '\0';
        if (!s)
            continue;
        if (!cJSON_IsString(s)) {
            rc = json_fail(diag, CAP_ETRACE, ln, keys[sk[i]], "%s", "not a string");
            goto out;
        }
        size_t n = strlen(s->valuestring);
        if (n > CAP_TRACE_MAX_STRING || cap_utf8_check_text((const uint8_t *)s->valuestring, n) !=
                                            CAP_UTF8_VALID) {
            rc = json_fail(diag, CAP_ETRACE, ln, keys[sk[i]], "%s",
                           n > CAP_TRACE_MAX_STRING ? "longer than 1024 bytes" : "not valid UTF-8");
            goto out;
        }
        memcpy(r->str[i], s->valuestring, n + 1);
    }
    if (!r->str[0][0]) {
        rc = json_fail(diag, CAP_ETRACE, ln, "subject", "%s", "missing or empty");
        goto out;
    }
    if (!v[K_BYTES] && !v[K_PACKET]) {
        rc = json_fail(diag, CAP_ETRACE, ln, NULL, "%s", "neither bytes nor packet");
        goto out;
    }
    if (v[K_BYTES]) {
        const cJSON *b = v[K_BYTES];
        if (!cJSON_IsString(b)) {
            rc = json_fail(diag, CAP_ETRACE, ln, "bytes", "%s", "not a string");
            goto out;
        }
        size_t sl = strlen(b->valuestring);
        size_t maxd = cap_base64_decoded_max(sl);
        if (maxd > r->max_packet + 3) {
            rc = json_fail(diag, CAP_ETRACE, ln, "bytes", "%s", "packet over the bound");
            goto out;
        }
        if (tbuf_reserve(&r->pkt, maxd + 1) != CAP_OK) {
            rc = json_fail(diag, CAP_ENOMEM, ln, "bytes", "%s", "out of memory");
            goto out;
        }
        size_t n = 0;
        if (cap_base64_decode(b->valuestring, sl, r->pkt.p, &n) != 0) {
            rc = json_fail(diag, CAP_ETRACE, ln, "bytes", "%s", "not valid base64");
            goto out;
        }
        if (n > r->max_packet) {
            rc = json_fail(diag, CAP_ETRACE, ln, "bytes", "%s", "packet over the bound");
            goto out;
        }
        r->pkt.len = n;
        if (v[K_PACKET]) { /* both: they must say the same thing */
            size_t cn = 0;
            uint8_t *canon = canonical_of(r->pkt.p, n, &cn);
            if (!canon) {
                rc = json_fail(diag, CAP_ETRACE, ln, "packet", "%s",
                               "given, but bytes do not decode to a packet");
                goto out;
            }
            tbuf keep = r->pkt;
            r->pkt = (tbuf){0};
            rc = packet_from_json(r, v[K_PACKET], diag);
            int same = rc == CAP_OK && r->pkt.len == cn && memcmp(r->pkt.p, canon, cn) == 0;
            free(canon);
            free(r->pkt.p);
            r->pkt = keep;
            if (rc != CAP_OK)
                goto out;
            if (!same) {
                rc = json_fail(diag, CAP_ETRACE, ln, "packet", "%s",
                               "does not match bytes (they must be the same packet)");
                goto out;
            }
        }
    } else {
        rc = packet_from_json(r, v[K_PACKET], diag);
        if (rc != CAP_OK)
            goto out;
    }
    rec->subject = r->str[0];
    rec->sender = r->str[1];
    rec->receiver = r->str[2];
    rec->reply = r->str[3];
    rec->note = r->str[4];
    rec->bytes = r->pkt.p;
    rec->len = r->pkt.len;
    rec_strings rs;
    record_strings(rec, NULL, &rs);
    if (encode_record(&r->enc, rec, &rs) != CAP_OK) {
        rc = json_fail(diag, CAP_ENOMEM, ln, NULL, "%s", "out of memory");
        goto out;
    }
    cap_sha256_update(&r->md, r->enc.p, r->enc.len);
    r->index++;
    rc = 1;
out:
    cJSON_Delete(o);
    return rc;
}

int cap_trace_read(cap_trace_reader *r, cap_trace_record *rec, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (!r || !rec)
        return cap_diag_set(diag, CAP_EINVAL, -1, "", "bad arguments");
    if (r->err) {
        if (diag)
            *diag = r->err_diag;
        return r->err;
    }
    memset(rec, 0, sizeof *rec);
    cap_diag local;
    cap_diag_clear(&local);
    int rc;
    if (r->fmt == CAP_TRACE_BINARY) {
        rc = read_binary(r, rec, &local);
        if (rc == 1)
            r->index++;
    } else {
        rc = read_jsonl(r, rec, &local);
    }
    if (rc < 0) {
        if (diag)
            *diag = local;
        return sticky(r, rc, &local);
    }
    return rc;
}
