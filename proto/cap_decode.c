/* Strict CAP packet decoder: a schema-driven wire scan, then protobuf-c
 * unpack, then the envelope rules. See cap_decode.h. */
#include "cap_decode.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_utf8.h"
#include "cap_varint.h"

#define MAX_FIELDS 64 /* more than any CAP message has; checked */
#define MAX_ONEOFS 8

/* First field number of the payload oneof's range (cap-spec 1.1). */
#define PAYLOAD_MIN_FIELD 10
/* Trust payloads: worker handshake challenge request .. result. */
#define TRUST_MIN_FIELD 19
#define TRUST_MAX_FIELD 22

cap_bounds cap_bounds_default(void)
{
    cap_bounds b = {
        .max_packet = 1u << 20,
        .max_trust_packet = 65536,
        .max_string = 64u << 10,
        .max_entries = 1000,
        .max_depth = 16,
    };
    return b;
}

typedef struct {
    const uint8_t *buf;
    const cap_bounds *bounds;
    cap_decode_mode mode;
    cap_diag *diag;
    /* The fields being scanned, outermost first: the path of an error is
     * built from them only when there is an error. */
    const ProtobufCFieldDescriptor *stack[CAP_MAX_DEPTH_LIMIT];
    unsigned top;
    /* Top level only. */
    uint32_t payload_field;          /* known payload member seen */
    uint32_t unknown_payload_field;  /* first unknown LEN field >= 10 */
    long first_unknown_offset;       /* first unknown top-level field */
    uint32_t first_unknown_field;
} scan_ctx;

static int fail(scan_ctx *c, int err, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes "BusPacket.a.b" for the first n entries of a field stack. */
static void format_path(char *out, size_t cap, const ProtobufCFieldDescriptor *const *stack,
                        unsigned n)
{
    size_t len = (size_t)snprintf(out, cap, "BusPacket");
    for (unsigned i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, ".%s", stack[i]->name);
}

static int fail(scan_ctx *c, int err, size_t off, const char *fmt, ...)
{
    char reason[256], path[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    format_path(path, sizeof path, c->stack, c->top);
    return cap_diag_set(c->diag, err, (long)off, path, "%s", reason);
}

static int __attribute__((noinline))
read_varint_slow(scan_ctx *c, size_t *pos, size_t end, uint64_t *v, const char *what)
{
    size_t start = *pos;
    cap_varint_status st = cap_varint_read(c->buf, end, pos, v);
    if (st != CAP_VARINT_OK)
        return fail(c, CAP_EMALFORMED, start, "%s: %s", what, cap_varint_strstatus(st));
    return CAP_OK;
}

/* Tags, lengths and small values are one byte: that case stays inline. */
static inline int read_varint(scan_ctx *c, size_t *pos, size_t end, uint64_t *v, const char *what)
{
    if (*pos < end && c->buf[*pos] < 0x80) {
        *v = c->buf[(*pos)++];
        return CAP_OK;
    }
    return read_varint_slow(c, pos, end, v, what);
}

/* The field numbered num, or NULL: the descriptor's ranges map runs of
 * consecutive numbers to field indexes (a few ranges per CAP message). */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  uint64_t num)
{
    const ProtobufCIntRange *r = d->field_ranges;
    for (unsigned i = 0; i < d->n_field_ranges; i++) {
        if (num < (uint64_t)r[i].start_value)
            return NULL;
        uint64_t span = (uint64_t)(r[i + 1].orig_index - r[i].orig_index);
        if (num - (uint64_t)r[i].start_value < span)
            return &d->fields[r[i].orig_index + (int)(num - (uint64_t)r[i].start_value)];
    }
    return NULL;
}

/* Checks that a varint value fits the field's C type. */
static int check_varint_range(scan_ctx *c, const ProtobufCFieldDescriptor *f, uint64_t v,
                              size_t off)
{
    int64_t sv = (int64_t)v;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM:
        if (sv < INT32_MIN || sv > INT32_MAX)
            return fail(c, CAP_EMALFORMED, off, "value %lld does not fit int32", (long long)sv);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_SINT32:
        if (v > UINT32_MAX)
            return fail(c, CAP_EMALFORMED, off, "value %llu does not fit 32 bits",
                        (unsigned long long)v);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (v > 1)
            return fail(c, CAP_EMALFORMED, off, "bool encoded as %llu (must be 0 or 1)",
                        (unsigned long long)v);
        break;
    default: break;
    }
    return CAP_OK;
}

/* Skips one value of wire type wt (validating its framing). */
static int skip_value(scan_ctx *c, uint32_t wt, size_t *pos, size_t end)
{
    uint64_t v;
    switch (wt) {
    case PROTOBUF_C_WIRE_TYPE_VARINT: return read_varint(c, pos, end, &v, "value");
    case PROTOBUF_C_WIRE_TYPE_64BIT:
        if (end - *pos < 8)
            return fail(c, CAP_EMALFORMED, *pos, "truncated 64-bit value");
        *pos += 8;
        return CAP_OK;
    case PROTOBUF_C_WIRE_TYPE_32BIT:
        if (end - *pos < 4)
            return fail(c, CAP_EMALFORMED, *pos, "truncated 32-bit value");
        *pos += 4;
        return CAP_OK;
    case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
        size_t lpos = *pos;
        int rc = read_varint(c, pos, end, &v, "length");
        if (rc)
            return rc;
        if (v > end - *pos)
            return fail(c, CAP_EMALFORMED, lpos, "length %llu runs past the end (%zu bytes left)",
                        (unsigned long long)v, end - *pos);
        *pos += (size_t)v;
        return CAP_OK;
    }
    default: return fail(c, CAP_EMALFORMED, *pos, "invalid wire type %u", wt);
    }
}

static int scan_message(scan_ctx *c, const ProtobufCMessageDescriptor *d, size_t pos,
                        size_t end, unsigned depth, int strict);

/* Scans a packed run of scalars; returns the number of elements in *count. */
static int scan_packed(scan_ctx *c, const ProtobufCFieldDescriptor *f, size_t pos, size_t end,
                       size_t *count)
{
    ProtobufCWireType wt = cap_wire_type_of(f->type);
    size_t n = 0;
    if (wt != PROTOBUF_C_WIRE_TYPE_VARINT) {
        size_t w = wt == PROTOBUF_C_WIRE_TYPE_32BIT ? 4 : 8;
        if ((end - pos) % w)
            return fail(c, CAP_EMALFORMED, pos, "packed run of %zu bytes is not a multiple of %zu",
                        end - pos, w);
        *count = (end - pos) / w;
        return CAP_OK;
    }
    while (pos < end) {
        uint64_t v;
        size_t at = pos;
        int rc = read_varint(c, &pos, end, &v, "packed element");
        if (rc)
            return rc;
        rc = check_varint_range(c, f, v, at);
        if (rc)
            return rc;
        n++;
    }
    *count = n;
    return CAP_OK;
}

/* Scans a length-delimited value of a known field at [pos, end). */
static int scan_len_value(scan_ctx *c, const ProtobufCFieldDescriptor *f, size_t pos,
                          size_t end, unsigned depth, int strict, size_t *elements)
{
    size_t n = end - pos;
    *elements = 1;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        if (n > c->bounds->max_string)
            return fail(c, CAP_EMALFORMED, pos, "string of %zu bytes, over the bound of %zu", n,
                        c->bounds->max_string);
        /* protobuf-c holds strings as C strings: a NUL would silently cut
         * the value, so the packet could not be re-encoded faithfully. */
        size_t bad = cap_utf8_check_text(c->buf + pos, n);
        if (bad != CAP_UTF8_VALID)
            return fail(c, CAP_EMALFORMED, pos + bad, "%s",
                        c->buf[pos + bad] ? "string is not valid UTF-8"
                                          : "string contains a NUL byte");
        return CAP_OK;
    }
    case PROTOBUF_C_TYPE_BYTES:
        if (n > c->bounds->max_string)
            return fail(c, CAP_EMALFORMED, pos, "bytes field of %zu bytes, over the bound of %zu",
                        n, c->bounds->max_string);
        return CAP_OK;
    case PROTOBUF_C_TYPE_MESSAGE:
        if (depth + 1 >= c->bounds->max_depth || depth + 1 >= CAP_MAX_DEPTH_LIMIT)
            return fail(c, CAP_EMALFORMED, pos, "messages nested deeper than %u",
                        c->bounds->max_depth);
        return scan_message(c, f->descriptor, pos, end, depth + 1, strict);
    default:
        /* A packed run of a repeated scalar. */
        return scan_packed(c, f, pos, end, elements);
    }
}

/* The key of one map entry: its encoded value bytes, which compare equal
 * exactly when the keys are equal, since encodings are held minimal. */
typedef struct {
    unsigned field;  /* index of the map field in its message */
    size_t off, len; /* key bytes in the input (len 0: the default key) */
} map_key;

typedef struct {
    size_t counts[MAX_FIELDS];
    unsigned oneof_off[MAX_ONEOFS];
    uint32_t oneof_id[MAX_ONEOFS];
    unsigned n_oneofs;
    /* Keys of this message's map entries, to refuse duplicates (protobuf
     * would silently keep the last). Sorted input is checked in one pass. */
    map_key local_keys[16];
    map_key *keys;
    size_t n_keys, cap_keys;
    int keys_unsorted;
} field_tally;

static int key_cmp(const uint8_t *buf, const map_key *a, const map_key *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int r = n ? memcmp(buf + a->off, buf + b->off, n) : 0;
    return r ? r : (a->len > b->len) - (a->len < b->len);
}

/* Finds the key (field 1) of a map entry already scanned at [pos, end). */
static map_key entry_key(const uint8_t *buf, unsigned field, size_t pos, size_t end)
{
    map_key k = {.field = field, .off = pos, .len = 0};
    while (pos < end) {
        uint64_t tag, n;
        size_t start;
        if (cap_varint_read(buf, end, &pos, &tag) != CAP_VARINT_OK)
            break;
        unsigned wt = (unsigned)(tag & 7);
        start = pos;
        if (wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
            if (cap_varint_read(buf, end, &pos, &n) != CAP_VARINT_OK)
                break;
            start = pos;
            pos += (size_t)n;
        } else if (wt == PROTOBUF_C_WIRE_TYPE_VARINT) {
            if (cap_varint_read(buf, end, &pos, &n) != CAP_VARINT_OK)
                break;
        } else {
            pos += wt == PROTOBUF_C_WIRE_TYPE_32BIT ? 4 : 8;
        }
        if ((tag >> 3) == 1) {
            k.off = start;
            k.len = pos - start;
            /* A written zero and an absent key are the same key. */
            if (wt != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
                size_t z = 0;
                while (z < k.len && buf[start + z] == 0)
                    z++;
                if (z == k.len)
                    k.len = 0;
            }
        }
    }
    return k;
}

static int record_key(scan_ctx *c, field_tally *t, unsigned field, size_t pos, size_t end)
{
    if (t->n_keys == t->cap_keys) {
        size_t cap = t->cap_keys ? 2 * t->cap_keys : 64;
        map_key *nk = malloc(cap * sizeof *nk);
        if (!nk)
            return fail(c, CAP_ENOMEM, pos, "out of memory");
        memcpy(nk, t->keys, t->n_keys * sizeof *nk);
        if (t->keys != t->local_keys)
            free(t->keys);
        t->keys = nk;
        t->cap_keys = cap;
    }
    map_key k = entry_key(c->buf, field, pos, end);
    for (size_t i = t->n_keys; i-- > 0;) {
        if (t->keys[i].field != field)
            continue;
        if (key_cmp(c->buf, &t->keys[i], &k) >= 0)
            t->keys_unsorted = 1;
        break;
    }
    t->keys[t->n_keys++] = k;
    return CAP_OK;
}

/* Out-of-order keys: compare every pair of the same map (bounded by
 * max_entries per map). */
static int check_duplicate_keys(scan_ctx *c, const ProtobufCMessageDescriptor *d,
                                const field_tally *t, unsigned depth)
{
    for (size_t i = 0; i < t->n_keys; i++)
        for (size_t j = i + 1; j < t->n_keys; j++) {
            const map_key *a = &t->keys[i], *b = &t->keys[j];
            if (a->field != b->field || key_cmp(c->buf, a, b) != 0)
                continue;
            c->stack[depth] = &d->fields[a->field];
            c->top = depth + 1;
            return fail(c, CAP_EMALFORMED, b->off, "duplicate map key \"%.*s\"",
                        (int)(b->len < 64 ? b->len : 64), (const char *)c->buf + b->off);
        }
    return CAP_OK;
}

/* google.protobuf.Timestamp limits of the JSON mapping: 0001-01-01 to
 * 9999-12-31, nanos 0..999999999. */
static int check_timestamp_field(scan_ctx *c, const ProtobufCFieldDescriptor *f, uint64_t v,
                                 size_t off)
{
    int64_t sv = (int64_t)v;
    if (f->id == 1 && (sv < -62135596800LL || sv > 253402300799LL))
        return fail(c, CAP_EMALFORMED, off,
                    "timestamp seconds %lld outside 0001-01-01..9999-12-31", (long long)sv);
    if (f->id == 2 && (sv < 0 || sv > 999999999))
        return fail(c, CAP_EMALFORMED, off, "timestamp nanos %lld outside 0..999999999",
                    (long long)sv);
    return CAP_OK;
}

/* Records a oneof member; fails if another member of the same oneof was seen. */
static int tally_oneof(scan_ctx *c, field_tally *t, const ProtobufCMessageDescriptor *d,
                       const ProtobufCFieldDescriptor *f, size_t off)
{
    for (unsigned i = 0; i < t->n_oneofs; i++) {
        if (t->oneof_off[i] != f->quantifier_offset)
            continue;
        if (t->oneof_id[i] == f->id)
            return CAP_OK; /* the same member twice: caught as a repeat */
        const ProtobufCFieldDescriptor *g = protobuf_c_message_descriptor_get_field(d, t->oneof_id[i]);
        return fail(c, CAP_EMALFORMED, off, "two members of one oneof: %s (%u) and %s (%u)",
                    g ? g->name : "?", t->oneof_id[i], f->name, f->id);
    }
    if (t->n_oneofs == MAX_ONEOFS)
        return fail(c, CAP_EMALFORMED, off, "too many oneofs");
    t->oneof_off[t->n_oneofs] = f->quantifier_offset;
    t->oneof_id[t->n_oneofs++] = f->id;
    return CAP_OK;
}

static int scan_unknown(scan_ctx *c, uint32_t num, uint32_t wt, size_t tag_off, size_t *pos,
                        size_t end, unsigned depth, int strict)
{
    if (strict && depth > 0)
        return fail(c, CAP_EMALFORMED, tag_off, "unknown field %u (strict mode)", num);
    int rc = skip_value(c, wt, pos, end);
    if (rc || depth > 0)
        return rc;
    if (c->first_unknown_offset < 0) {
        c->first_unknown_offset = (long)tag_off;
        c->first_unknown_field = num;
    }
    if (num >= PAYLOAD_MIN_FIELD && wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED &&
        !c->unknown_payload_field)
        c->unknown_payload_field = num;
    return CAP_OK;
}

static int scan_field(scan_ctx *c, const ProtobufCMessageDescriptor *d, field_tally *t,
                      const ProtobufCFieldDescriptor *f, uint32_t wt, size_t tag_off,
                      size_t *pos, size_t end, unsigned depth, int strict)
{
    unsigned idx = (unsigned)(f - d->fields);
    ProtobufCWireType want = cap_wire_type_of(f->type);
    int packed = f->label == PROTOBUF_C_LABEL_REPEATED &&
                 want != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED &&
                 wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    if (wt != want && !packed)
        return fail(c, CAP_EMALFORMED, tag_off, "wire type %u, the schema says %u", wt, want);
    if (f->label != PROTOBUF_C_LABEL_REPEATED && t->counts[idx])
        return fail(c, CAP_EMALFORMED, tag_off, "field %u appears twice", f->id);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        int rc = tally_oneof(c, t, d, f, tag_off);
        if (rc)
            return rc;
        if (depth == 0 && f->id >= PAYLOAD_MIN_FIELD)
            c->payload_field = f->id;
    }
    /* Trust payloads are always held to the strict rules. */
    int sub_strict = strict || (depth == 0 && f->id >= TRUST_MIN_FIELD && f->id <= TRUST_MAX_FIELD &&
                                d == CAP_PACKET_DESC);
    size_t elements = 1;
    size_t vstart = *pos;
    int rc;
    if (wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
        uint64_t n;
        rc = read_varint(c, pos, end, &n, "length");
        if (rc)
            return rc;
        if (n > end - *pos)
            return fail(c, CAP_EMALFORMED, vstart, "length %llu runs past the end (%zu bytes left)",
                        (unsigned long long)n, end - *pos);
        size_t s = *pos;
        *pos += (size_t)n;
        rc = scan_len_value(c, f, s, *pos, depth, sub_strict, &elements);
        if (!rc && f->type == PROTOBUF_C_TYPE_MESSAGE && f->label == PROTOBUF_C_LABEL_REPEATED &&
            cap_desc_is_map_entry(f->descriptor))
            rc = record_key(c, t, idx, s, *pos);
    } else if (wt == PROTOBUF_C_WIRE_TYPE_VARINT) {
        uint64_t v;
        rc = read_varint(c, pos, end, &v, "value");
        if (!rc)
            rc = check_varint_range(c, f, v, vstart);
        if (!rc && d == &google__protobuf__timestamp__descriptor)
            rc = check_timestamp_field(c, f, v, vstart);
    } else {
        rc = skip_value(c, wt, pos, end);
    }
    if (rc)
        return rc;
    t->counts[idx] += elements;
    if (f->label == PROTOBUF_C_LABEL_REPEATED && t->counts[idx] > c->bounds->max_entries)
        return fail(c, CAP_EMALFORMED, tag_off, "%s %s has more than %zu entries",
                    (f->type == PROTOBUF_C_TYPE_MESSAGE && cap_desc_is_map_entry(f->descriptor))
                        ? "map" : "repeated field",
                    f->name, c->bounds->max_entries);
    return CAP_OK;
}

static int scan_fields(scan_ctx *c, const ProtobufCMessageDescriptor *d, field_tally *t,
                       size_t pos, size_t end, unsigned depth, int strict)
{
    while (pos < end) {
        size_t tag_off = pos;
        uint64_t tag;
        int rc = read_varint(c, &pos, end, &tag, "tag");
        if (rc)
            return rc;
        uint64_t num = tag >> 3;
        uint32_t wt = (uint32_t)(tag & 7);
        if (num == 0 || num > 0x1FFFFFFF)
            return fail(c, CAP_EMALFORMED, tag_off, "invalid field number %llu",
                        (unsigned long long)num);
        /* 3 and 4 are the deprecated group markers; 6 and 7 do not exist. */
        if (wt == 3 || wt == 4)
            return fail(c, CAP_EMALFORMED, tag_off, "field %llu: groups are not allowed",
                        (unsigned long long)num);
        if (wt > 5)
            return fail(c, CAP_EMALFORMED, tag_off, "field %llu: invalid wire type %u",
                        (unsigned long long)num, wt);
        const ProtobufCFieldDescriptor *f = find_field(d, num);
        c->top = depth;
        if (!f) {
            rc = scan_unknown(c, (uint32_t)num, wt, tag_off, &pos, end, depth, strict);
        } else {
            c->stack[depth] = f;
            c->top = depth + 1;
            rc = scan_field(c, d, t, f, wt, tag_off, &pos, end, depth, strict);
            if (!rc)
                c->top = depth;
        }
        if (rc)
            return rc;
    }
    return t->keys_unsorted ? check_duplicate_keys(c, d, t, depth) : CAP_OK;
}

static int scan_message(scan_ctx *c, const ProtobufCMessageDescriptor *d, size_t pos,
                        size_t end, unsigned depth, int strict)
{
    field_tally t;
    if (d->n_fields > MAX_FIELDS)
        return fail(c, CAP_EINVAL, pos, "message %s has more than %d fields", d->name, MAX_FIELDS);
    memset(t.counts, 0, d->n_fields * sizeof t.counts[0]);
    t.n_oneofs = 0;
    t.keys = t.local_keys;
    t.n_keys = 0;
    t.cap_keys = sizeof t.local_keys / sizeof t.local_keys[0];
    t.keys_unsorted = 0;
    int rc = scan_fields(c, d, &t, pos, end, depth, strict);
    if (t.keys != t.local_keys)
        free(t.keys);
    return rc;
}

int cap_wire_scan(const uint8_t *buf, size_t len, const cap_bounds *bounds,
                  cap_decode_mode mode, uint32_t *payload_field, cap_diag *diag)
{
    cap_bounds defaults = cap_bounds_default();
    scan_ctx c = {.buf = buf, .bounds = bounds ? bounds : &defaults, .mode = mode, .diag = diag,
                  .first_unknown_offset = -1};
    cap_diag_clear(diag);
    if (payload_field)
        *payload_field = 0;
    if (len > c.bounds->max_packet)
        return fail(&c, CAP_EMALFORMED, 0, "packet of %zu bytes, over the bound of %zu", len,
                    c.bounds->max_packet);
    int strict = mode == CAP_DECODE_STRICT;
    int rc = scan_message(&c, CAP_PACKET_DESC, 0, len, 0, strict);
    if (rc)
        return rc;
    c.top = 0;
    uint32_t payload = c.payload_field;
    int trust = payload >= TRUST_MIN_FIELD && payload <= TRUST_MAX_FIELD;
    if (trust && len > c.bounds->max_trust_packet)
        return fail(&c, CAP_EMALFORMED, 0, "trust packet of %zu bytes, over the bound of %zu",
                    len, c.bounds->max_trust_packet);
    if (payload_field)
        *payload_field = payload ? payload : c.unknown_payload_field;
    if (payload && (strict || trust) && c.first_unknown_offset >= 0)
        return fail(&c, CAP_EMALFORMED, (size_t)c.first_unknown_offset,
                    "unknown field %u (strict mode)", c.first_unknown_field);
    return CAP_OK;
}

int cap_packet_validate(const cap_packet *p, cap_diag *diag)
{
    if (p->protocol_version != CAP_PROTOCOL_VERSION)
        return cap_diag_set(diag, CAP_EVERSION, -1, "BusPacket.protocol_version",
                            "protocol_version %d; this consumer speaks only %d",
                            p->protocol_version, CAP_PROTOCOL_VERSION);
    if (p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD__NOT_SET)
        return cap_diag_set(diag, CAP_EMALFORMED, -1, "BusPacket.payload",
                            "no payload: the envelope carries no message");
    if (!p->trace_id || !p->trace_id[0])
        return cap_diag_set(diag, CAP_EMALFORMED, -1, "BusPacket.trace_id", "missing trace_id");
    if (!p->sender_id || !p->sender_id[0])
        return cap_diag_set(diag, CAP_EMALFORMED, -1, "BusPacket.sender_id", "missing sender_id");
    if (!p->created_at)
        return cap_diag_set(diag, CAP_EMALFORMED, -1, "BusPacket.created_at", "missing created_at");
    return CAP_OK;
}

int cap_packet_decode(const uint8_t *buf, size_t len, const cap_bounds *bounds,
                      cap_decode_mode mode, cap_packet **out, cap_diag *diag)
{
    uint32_t payload = 0;
    *out = NULL;
    int rc = cap_wire_scan(buf, len, bounds, mode, &payload, diag);
    if (rc)
        return rc;
    cap_packet *p = (cap_packet *)protobuf_c_message_unpack(CAP_PACKET_DESC, NULL, len, buf);
    if (!p)
        return cap_diag_set(diag, CAP_ENOMEM, -1, "BusPacket", "cannot unpack: out of memory");
    /* Version first: a packet of another version is not interpreted further. */
    if (p->protocol_version == CAP_PROTOCOL_VERSION &&
        p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD__NOT_SET && payload) {
        cap_packet_free(p);
        return cap_diag_set(diag, CAP_EUNKNOWN_PAYLOAD, -1, "BusPacket.payload",
                            "unknown payload field %u", payload);
    }
    rc = cap_packet_validate(p, diag);
    if (rc) {
        cap_packet_free(p);
        return rc;
    }
    *out = p;
    return CAP_OK;
}
