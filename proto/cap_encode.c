/* Canonical protobuf encoder, driven by protobuf-c descriptors.
 * See cap_encode.h for the canonical form.
 *
 * The bytes are written back to front, in one pass: a message's fields in
 * descending order, each value before its length prefix and tag, so that
 * a nested message's length is known (it is the bytes just written) when
 * its prefix goes in. Nothing is sized twice, no string is measured twice.
 * The writer fills a buffer from its end; when the buffer is too small it
 * stops and says so, and the caller sizes the message (msg_size, the one
 * other walk, which cap_encoded_size also uses) and writes again into a
 * buffer of exactly that size, where the bytes then start at its first
 * byte. */
#include "cap_encode.h"

#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "cap_schema.h"
#include "cap_varint.h"

#define MEMBER(msg, off, type) (*(type *)((const char *)(msg) + (off)))
#define MEMBER_PTR(msg, off) ((const void *)((const char *)(msg) + (off)))

/* Varints: the one-byte case (tags, lengths, small values) inline. */
static inline size_t vsize(uint64_t v)
{
    return v < 0x80 ? 1 : cap_varint_size(v);
}

static uint64_t zigzag32(int32_t v) { return (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)); }
static uint64_t zigzag64(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

/* The varint value of a varint-typed element at p. */
static uint64_t varint_value(ProtobufCType t, const void *p)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32: return (uint64_t)(int64_t)*(const int32_t *)p;
    case PROTOBUF_C_TYPE_ENUM: return (uint64_t)(int64_t)*(const int *)p;
    case PROTOBUF_C_TYPE_UINT32: return *(const uint32_t *)p;
    case PROTOBUF_C_TYPE_SINT32: return zigzag32(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_INT64: return (uint64_t)*(const int64_t *)p;
    case PROTOBUF_C_TYPE_UINT64: return *(const uint64_t *)p;
    case PROTOBUF_C_TYPE_SINT64: return zigzag64(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)p ? 1 : 0;
    default: return 0;
    }
}

static inline size_t tag_size(uint32_t id) { return vsize((uint64_t)id << 3); }

/* Is a singular (LABEL_NONE or OPTIONAL) field present? Floats count as
 * present unless all their bits are zero, so -0.0 survives (as in Go). */
static inline int singular_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const void *p = MEMBER_PTR(m, f->offset);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return MEMBER(m, f->quantifier_offset, uint32_t) == f->id;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED)
        return 1;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
        f->type != PROTOBUF_C_TYPE_STRING)
        return MEMBER(m, f->quantifier_offset, protobuf_c_boolean) != 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s && (f->label == PROTOBUF_C_LABEL_OPTIONAL || s[0] != '\0');
    }
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len != 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(ProtobufCMessage *const *)p != NULL;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v != 0;
    }
    default: { /* the 4-byte scalars: 32-bit integers, float, bool, enum */
        uint32_t v;
        memcpy(&v, p, 4);
        return v != 0;
    }
    }
}

/* Is field f of m written at all (a repeated field: has it entries)? */
static inline int field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return MEMBER(m, f->quantifier_offset, size_t) != 0;
    return singular_present(m, f);
}

static int is_packable(const ProtobufCFieldDescriptor *f)
{
    return (f->flags & PROTOBUF_C_FIELD_FLAG_PACKED) &&
           cap_wire_type_of(f->type) != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
}

static int is_map_field(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_MESSAGE &&
           cap_desc_is_map_entry(f->descriptor);
}

/* Map entries in key order: insertion sort of entry pointers (maps are
 * bounded, 1000 entries by default, and almost always arrive sorted, where
 * this is linear). */
static void sort_entries(const ProtobufCMessage **v, size_t n)
{
    if (n < 2)
        return;
    const ProtobufCFieldDescriptor *kf = &v[0]->descriptor->fields[0];
    for (size_t i = 1; i < n; i++) {
        const ProtobufCMessage *x = v[i];
        size_t j = i;
        while (j > 0 && cap_map_key_cmp(kf, MEMBER_PTR(v[j - 1], kf->offset),
                                MEMBER_PTR(x, kf->offset)) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* --- sizes ------------------------------------------------------------- */

static size_t msg_size(const ProtobufCMessage *m);

/* Payload size of one element (without tag; with the length prefix for
 * length-delimited types). */
static size_t elem_payload_size(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return 4;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        size_t n = s ? strlen(s) : 0;
        return vsize(n) + n;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        size_t n = ((const ProtobufCBinaryData *)p)->len;
        return vsize(n) + n;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        size_t n = m ? msg_size(m) : 0;
        return vsize(n) + n;
    }
    default: return vsize(varint_value(f->type, p));
    }
}

/* Size of a map entry's body: key and value both always written. */
static size_t map_entry_body_size(const ProtobufCMessage *e)
{
    const ProtobufCMessageDescriptor *d = e->descriptor;
    size_t n = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        n += tag_size(f->id) + elem_payload_size(f, MEMBER_PTR(e, f->offset));
    }
    return n;
}

static size_t repeated_size(const ProtobufCFieldDescriptor *f, const void *arr, size_t n)
{
    size_t es = cap_field_elem_size(f->type), body = 0;
    if (is_map_field(f)) {
        ProtobufCMessage *const *v = arr;
        for (size_t i = 0; i < n; i++) {
            size_t b = map_entry_body_size(v[i]);
            body += tag_size(f->id) + vsize(b) + b;
        }
        return body;
    }
    for (size_t i = 0; i < n; i++)
        body += elem_payload_size(f, (const char *)arr + i * es);
    if (is_packable(f))
        return tag_size(f->id) + vsize(body) + body;
    return body + n * tag_size(f->id);
}

/* m's encoded size. */
static size_t msg_size(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    size_t size = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!field_present(m, f))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            size += repeated_size(f, MEMBER(m, f->offset, void *),
                                  MEMBER(m, f->quantifier_offset, size_t));
        else
            size += tag_size(f->id) + elem_payload_size(f, MEMBER_PTR(m, f->offset));
    }
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        size += tag_size(m->unknown_fields[i].tag) + m->unknown_fields[i].len;
    return size;
}

/* --- the back-to-front writer ------------------------------------------ */

/* Bytes go in just before p, down to start; a write that does not fit
 * sets `full` and writes nothing (the result is then thrown away). */
typedef struct {
    uint8_t *start;
    uint8_t *p;
    int full;
} rwriter;

static inline size_t room(const rwriter *w) { return (size_t)(w->p - w->start); }

static inline void put_bytes(rwriter *w, const void *src, size_t n)
{
    if (n > room(w)) {
        w->full = 1;
        return;
    }
    w->p -= n;
    if (n)
        memcpy(w->p, src, n);
}

static inline void put_varint(rwriter *w, uint64_t v)
{
    if (v < 0x80 && room(w)) {
        *--w->p = (uint8_t)v;
        return;
    }
    size_t n = vsize(v);
    if (n > room(w)) {
        w->full = 1;
        return;
    }
    w->p -= n;
    cap_varint_write(w->p, v);
}

static inline void put_tag(rwriter *w, uint32_t id, ProtobufCWireType wt)
{
    put_varint(w, ((uint64_t)id << 3) | (uint64_t)wt);
}

/* n bytes little-endian (fixed32/64, float, double). */
static void put_le(rwriter *w, uint64_t v, unsigned n)
{
    if (n > room(w)) {
        w->full = 1;
        return;
    }
    w->p -= n;
    for (unsigned i = 0; i < n; i++)
        w->p[i] = (uint8_t)(v >> (8 * i));
}

/* Bytes written since the writer stood at `end`. */
static inline size_t since(const rwriter *w, const uint8_t *end) { return (size_t)(end - w->p); }

static void put_msg(rwriter *w, const ProtobufCMessage *m);

/* One element's payload (with the length prefix for length-delimited
 * types, without the tag). */
static inline __attribute__((always_inline)) void put_elem(rwriter *w,
                                                            const ProtobufCFieldDescriptor *f,
                                                            const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: {
        uint32_t v;
        memcpy(&v, p, 4);
        put_le(w, v, 4);
        return;
    }
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: {
        uint64_t v;
        memcpy(&v, p, 8);
        put_le(w, v, 8);
        return;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        size_t n = s ? strlen(s) : 0;
        put_bytes(w, s, n);
        put_varint(w, n);
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        put_bytes(w, b->data, b->len);
        put_varint(w, b->len);
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        const uint8_t *end = w->p;
        if (m)
            put_msg(w, m);
        put_varint(w, since(w, end));
        return;
    }
    default: put_varint(w, varint_value(f->type, p)); return;
    }
}

/* One map entry of map field f: key and value always written. */
static void put_entry(rwriter *w, const ProtobufCFieldDescriptor *f, const ProtobufCMessage *e)
{
    const ProtobufCMessageDescriptor *d = e->descriptor;
    const uint8_t *end = w->p;
    for (unsigned i = d->n_fields; i-- > 0;) {
        const ProtobufCFieldDescriptor *ef = &d->fields[i];
        put_elem(w, ef, MEMBER_PTR(e, ef->offset));
        put_tag(w, ef->id, cap_wire_type_of(ef->type));
    }
    put_varint(w, since(w, end));
    put_tag(w, f->id, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
}

/* The entry whose key is the greatest one less than `before` (the
 * greatest, when before is NULL); its index, or n when there is none. Used
 * only when there is no memory to sort: quadratic, but allocation-free, so
 * the output stays canonical. */
static size_t prev_entry(ProtobufCMessage *const *arr, size_t n, const ProtobufCMessage *before)
{
    const ProtobufCFieldDescriptor *kf = &arr[0]->descriptor->fields[0];
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        const void *key = MEMBER_PTR(arr[i], kf->offset);
        if (before && cap_map_key_cmp(kf, key, MEMBER_PTR(before, kf->offset)) >= 0)
            continue;
        if (best == n || cap_map_key_cmp(kf, key, MEMBER_PTR(arr[best], kf->offset)) > 0)
            best = i;
    }
    return best;
}

/* A map field's entries, in key order (so written last entry first). */
static void put_map(rwriter *w, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *arr,
                    size_t n)
{
    const ProtobufCMessage *stackbuf[64];
    const ProtobufCMessage **v = n > 64 ? malloc(n * sizeof *v) : stackbuf;
    if (!v) {
        const ProtobufCMessage *next = NULL;
        for (size_t i = prev_entry(arr, n, NULL); i < n; i = prev_entry(arr, n, next)) {
            put_entry(w, f, arr[i]);
            next = arr[i];
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = arr[i];
    sort_entries(v, n);
    for (size_t i = n; i-- > 0;)
        put_entry(w, f, v[i]);
    if (v != stackbuf)
        free(v);
}

static void put_repeated(rwriter *w, const ProtobufCFieldDescriptor *f, const void *arr, size_t n)
{
    if (is_map_field(f)) {
        put_map(w, f, arr, n);
        return;
    }
    size_t es = cap_field_elem_size(f->type);
    if (is_packable(f)) {
        const uint8_t *end = w->p;
        for (size_t i = n; i-- > 0;)
            put_elem(w, f, (const char *)arr + i * es);
        put_varint(w, since(w, end));
        put_tag(w, f->id, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
        return;
    }
    ProtobufCWireType wt = cap_wire_type_of(f->type);
    for (size_t i = n; i-- > 0;) {
        put_elem(w, f, (const char *)arr + i * es);
        put_tag(w, f->id, wt);
    }
}

/* m: its unknown fields first, last one first, then its fields in
 * descending order, so that the bytes read fields ascending, then the
 * unknown fields in received order. */
static void put_msg(rwriter *w, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = m->n_unknown_fields; i-- > 0;) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
        put_bytes(w, u->data, u->len);
        put_tag(w, u->tag, u->wire_type);
    }
    for (unsigned i = d->n_fields; i-- > 0 && !w->full;) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!field_present(m, f))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            put_repeated(w, f, MEMBER(m, f->offset, void *),
                         MEMBER(m, f->quantifier_offset, size_t));
        } else {
            put_elem(w, f, MEMBER_PTR(m, f->offset));
            put_tag(w, f->id, cap_wire_type_of(f->type));
        }
    }
}

/* Writes m at the end of [buf, buf + cap); returns where its bytes start,
 * or NULL when they do not fit. */
static uint8_t *write_back(const ProtobufCMessage *m, uint8_t *buf, size_t cap)
{
    rwriter w = {buf, buf + cap, 0};
    put_msg(&w, m);
    return w.full ? NULL : w.p;
}

/* --- entry points ------------------------------------------------------ */

size_t cap_encoded_size(const ProtobufCMessage *m)
{
    return msg_size(m);
}

/* Most messages fit this much stack: written there in one pass, they are
 * then copied where they belong; bigger ones are sized first. */
#define SCRATCH 4096

/* m's size; *at is where its bytes start in scratch, or NULL when they did
 * not fit there (then nothing useful is in scratch). */
static size_t encode_scratch(const ProtobufCMessage *m, uint8_t scratch[SCRATCH],
                             const uint8_t **at)
{
    *at = write_back(m, scratch, SCRATCH);
    return *at ? (size_t)(scratch + SCRATCH - *at) : msg_size(m);
}

size_t cap_encode_into(const ProtobufCMessage *m, uint8_t *buf)
{
    uint8_t scratch[SCRATCH];
    const uint8_t *at;
    size_t n = encode_scratch(m, scratch, &at);
    if (at)
        memcpy(buf, at, n);
    else
        write_back(m, buf, n); /* exactly n bytes: they start at buf */
    return n;
}

int cap_encode_to(const ProtobufCMessage *m, uint8_t **buf, size_t *cap, size_t *len)
{
    if (*buf) {
        const uint8_t *at = write_back(m, *buf, *cap);
        if (at) {
            size_t n = (size_t)(*buf + *cap - at);
            memmove(*buf, at, n);
            *len = n;
            return CAP_OK;
        }
    }
    /* Does not fit (or no buffer yet): grow to the exact size. */
    size_t n = msg_size(m);
    uint8_t *g = realloc(*buf, n ? n : 1);
    if (!g)
        return CAP_ENOMEM;
    *buf = g;
    *cap = n ? n : 1;
    write_back(m, g, n);
    *len = n;
    return CAP_OK;
}

int cap_encode(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
    uint8_t scratch[SCRATCH];
    const uint8_t *at;
    size_t n = encode_scratch(m, scratch, &at);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        *out = NULL;
        return CAP_ENOMEM;
    }
    if (at)
        memcpy(buf, at, n);
    else
        write_back(m, buf, n);
    *out = buf;
    *len = n;
    return CAP_OK;
}
