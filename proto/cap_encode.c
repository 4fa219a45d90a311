/* Canonical protobuf encoder, driven by protobuf-c descriptors.
 * See cap_encode.h for the canonical form. Two passes: sizes, then bytes.
 * The size pass notes every nested message's size, and which of its fields
 * are present, in a table, in the order the byte pass meets them
 * (pre-order), so each message is sized and its fields' presence tested
 * once; the byte pass visits only the present fields. Map entries are
 * small and are written in key order, not in the order they were sized:
 * their insides are sized again when written (they take no table slots).
 * Without memory for the table, sizes are simply recomputed: slower, same
 * bytes. */
#include "cap_encode.h"

#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "cap_schema.h"
#include "cap_varint.h"

#define MEMBER(msg, off, type) (*(type *)((const char *)(msg) + (off)))
#define MEMBER_PTR(msg, off) ((const void *)((const char *)(msg) + (off)))

/* What the size pass learns of one message: its encoded size, and which
 * of its first PRESENT_BITS fields (by index) are present. Fields past
 * those (no CAP message has that many) are tested again when written. */
#define PRESENT_BITS 64
typedef struct {
    size_t size;
    uint64_t present;
} msg_info;

/* Nested message infos in pre-order; NULL where they are recomputed. */
typedef struct {
    msg_info *v;
    size_t n, cap;
    size_t pos;   /* the byte pass's next slot */
    int failed;   /* out of memory: the table is incomplete, do not use it */
    msg_info stack[32];
} sizes;

static msg_info msg_size(const ProtobufCMessage *m, sizes *c);
static size_t msg_write(const ProtobufCMessage *m, uint8_t *buf, sizes *c, uint64_t present);

/* Varints: the one-byte case (tags, lengths, small values) inline. */
static inline size_t vsize(uint64_t v)
{
    return v < 0x80 ? 1 : cap_varint_size(v);
}

static inline size_t vwrite(uint8_t *out, uint64_t v)
{
    if (v < 0x80) {
        out[0] = (uint8_t)v;
        return 1;
    }
    return cap_varint_write(out, v);
}

/* Reserves the next slot (SIZE_MAX when the table cannot grow). */
static size_t sizes_reserve(sizes *c)
{
    if (c->n == c->cap) {
        size_t nc = c->cap * 2;
        msg_info *g = c->v == c->stack ? malloc(nc * sizeof *g) : realloc(c->v, nc * sizeof *g);
        if (!g) {
            c->failed = 1;
            return SIZE_MAX;
        }
        if (c->v == c->stack)
            memcpy(g, c->stack, c->n * sizeof *g);
        c->v = g;
        c->cap = nc;
    }
    return c->n++;
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

/* Payload size of one element (without tag; with the length prefix for
 * length-delimited types). */
static size_t elem_payload_size(const ProtobufCFieldDescriptor *f, const void *p, sizes *c)
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
        size_t n = m ? msg_size(m, c).size : 0;
        return vsize(n) + n;
    }
    default: return vsize(varint_value(f->type, p));
    }
}

static inline size_t tag_size(uint32_t id) { return vsize((uint64_t)id << 3); }

static inline size_t write_tag(uint8_t *out, uint32_t id, ProtobufCWireType wt)
{
    return vwrite(out, ((uint64_t)id << 3) | (uint64_t)wt);
}

static size_t write_elem(const ProtobufCFieldDescriptor *f, const void *p, uint8_t *out, sizes *c)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: {
        uint32_t v;
        memcpy(&v, p, 4);
        for (int i = 0; i < 4; i++)
            out[i] = (uint8_t)(v >> (8 * i));
        return 4;
    }
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: {
        uint64_t v;
        memcpy(&v, p, 8);
        for (int i = 0; i < 8; i++)
            out[i] = (uint8_t)(v >> (8 * i));
        return 8;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        size_t n = s ? strlen(s) : 0;
        size_t k = vwrite(out, n);
        if (n)
            memcpy(out + k, s, n);
        return k + n;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        size_t k = vwrite(out, b->len);
        if (b->len)
            memcpy(out + k, b->data, b->len);
        return k + b->len;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        if (!m)
            return vwrite(out, 0);
        msg_info in = c ? c->v[c->pos++] : msg_size(m, NULL);
        size_t k = vwrite(out, in.size);
        msg_write(m, out + k, c, in.present);
        return k + in.size;
    }
    default: return vwrite(out, varint_value(f->type, p));
    }
}

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
    default: {
        size_t n = cap_field_elem_size(f->type);
        static const uint8_t zero[8];
        return memcmp(p, zero, n) != 0;
    }
    }
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

/* --- map entries -------------------------------------------------------- */

/* Size of a map entry's body: key and value both always written. */
static size_t map_entry_body_size(const ProtobufCMessage *e)
{
    const ProtobufCMessageDescriptor *d = e->descriptor;
    size_t n = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        n += tag_size(f->id) + elem_payload_size(f, MEMBER_PTR(e, f->offset), NULL);
    }
    return n;
}

static size_t write_map_entry(const ProtobufCMessage *e, uint8_t *out)
{
    const ProtobufCMessageDescriptor *d = e->descriptor;
    size_t k = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        k += write_tag(out + k, f->id, cap_wire_type_of(f->type));
        k += write_elem(f, MEMBER_PTR(e, f->offset), out + k, NULL);
    }
    return k;
}

/* Insertion sort of entry pointers by key: maps are bounded (1000 entries by
 * default) and almost always arrive sorted, where this is linear. */
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

/* Writes the entry whose key is the smallest one greater than `after`
 * (or the smallest, when after is NULL); returns its index or n. Used only
 * when there is no memory to sort: quadratic, but allocation-free, so the
 * output stays canonical. */
static size_t next_entry(ProtobufCMessage *const *arr, size_t n, const ProtobufCMessage *after)
{
    const ProtobufCFieldDescriptor *kf = &arr[0]->descriptor->fields[0];
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        const void *key = MEMBER_PTR(arr[i], kf->offset);
        if (after && cap_map_key_cmp(kf, key, MEMBER_PTR(after, kf->offset)) <= 0)
            continue;
        if (best == n || cap_map_key_cmp(kf, key, MEMBER_PTR(arr[best], kf->offset)) < 0)
            best = i;
    }
    return best;
}

static size_t write_one_entry(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *e,
                              uint8_t *out)
{
    size_t k = write_tag(out, f->id, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
    k += vwrite(out + k, map_entry_body_size(e));
    return k + write_map_entry(e, out + k);
}

static size_t write_map(const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *arr,
                        size_t n, uint8_t *out)
{
    const ProtobufCMessage *stackbuf[64];
    const ProtobufCMessage **v = n > 64 ? malloc(n * sizeof *v) : stackbuf;
    size_t k = 0;
    if (!v) {
        const ProtobufCMessage *prev = NULL;
        for (size_t i = next_entry(arr, n, NULL); i < n; i = next_entry(arr, n, prev)) {
            k += write_one_entry(f, arr[i], out + k);
            prev = arr[i];
        }
        return k;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = arr[i];
    sort_entries(v, n);
    for (size_t i = 0; i < n; i++)
        k += write_one_entry(f, v[i], out + k);
    if (v != stackbuf)
        free(v);
    return k;
}

/* --- fields ------------------------------------------------------------- */

static size_t repeated_size(const ProtobufCFieldDescriptor *f, const void *arr, size_t n, sizes *c)
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
        body += elem_payload_size(f, (const char *)arr + i * es, c);
    if (is_packable(f))
        return tag_size(f->id) + vsize(body) + body;
    return body + n * tag_size(f->id);
}

static size_t write_repeated(const ProtobufCFieldDescriptor *f, const void *arr, size_t n,
                             uint8_t *out, sizes *c)
{
    size_t es = cap_field_elem_size(f->type), k = 0;
    if (is_map_field(f))
        return write_map(f, arr, n, out);
    if (is_packable(f)) {
        size_t body = 0;
        for (size_t i = 0; i < n; i++) /* packable: scalars only, no slots */
            body += elem_payload_size(f, (const char *)arr + i * es, NULL);
        k += write_tag(out, f->id, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
        k += vwrite(out + k, body);
        for (size_t i = 0; i < n; i++)
            k += write_elem(f, (const char *)arr + i * es, out + k, NULL);
        return k;
    }
    for (size_t i = 0; i < n; i++) {
        k += write_tag(out + k, f->id, cap_wire_type_of(f->type));
        k += write_elem(f, (const char *)arr + i * es, out + k, c);
    }
    return k;
}

static size_t unknown_size(const ProtobufCMessageUnknownField *u)
{
    return tag_size(u->tag) + u->len;
}

/* Is field f of m written at all (a repeated field: has it entries)? */
static inline int field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return MEMBER(m, f->quantifier_offset, size_t) != 0;
    return singular_present(m, f);
}

/* m's encoded size and present fields; with a table, m takes the next
 * slot (before its nested messages take theirs) and they are noted there. */
static msg_info msg_size(const ProtobufCMessage *m, sizes *c)
{
    size_t slot = c ? sizes_reserve(c) : SIZE_MAX;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    msg_info in = {0, 0};
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!field_present(m, f))
            continue;
        if (i < PRESENT_BITS)
            in.present |= UINT64_C(1) << i;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            in.size += repeated_size(f, MEMBER(m, f->offset, void *),
                                     MEMBER(m, f->quantifier_offset, size_t), c);
        else
            in.size += tag_size(f->id) + elem_payload_size(f, MEMBER_PTR(m, f->offset), c);
    }
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        in.size += unknown_size(&m->unknown_fields[i]);
    if (slot != SIZE_MAX)
        c->v[slot] = in;
    return in;
}

/* Writes present field f of m. */
static inline size_t field_write(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                                 uint8_t *buf, sizes *c)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return write_repeated(f, MEMBER(m, f->offset, void *),
                              MEMBER(m, f->quantifier_offset, size_t), buf, c);
    size_t k = write_tag(buf, f->id, cap_wire_type_of(f->type));
    return k + write_elem(f, MEMBER_PTR(m, f->offset), buf + k, c);
}

/* Writes m's fields: those in `present` (from msg_size), in field order,
 * then any past PRESENT_BITS that are present; with a table, nested infos
 * come from its slots. */
static size_t msg_write(const ProtobufCMessage *m, uint8_t *buf, sizes *c, uint64_t present)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    size_t k = 0;
    for (uint64_t bits = present; bits; bits &= bits - 1)
        k += field_write(m, &d->fields[__builtin_ctzll(bits)], buf + k, c);
    for (unsigned i = PRESENT_BITS; i < d->n_fields; i++)
        if (field_present(m, &d->fields[i]))
            k += field_write(m, &d->fields[i], buf + k, c);
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
        k += write_tag(buf + k, u->tag, u->wire_type);
        if (u->len)
            memcpy(buf + k, u->data, u->len);
        k += u->len;
    }
    return k;
}

size_t cap_encoded_size(const ProtobufCMessage *m)
{
    return msg_size(m, NULL).size;
}

/* Sizes m into a fresh table; returns m's info. Falls back to no table
 * (*use = NULL) when memory runs out. */
static msg_info size_with_table(const ProtobufCMessage *m, sizes *c, sizes **use)
{
    c->v = c->stack;
    c->n = 0;
    c->cap = sizeof c->stack / sizeof c->stack[0];
    c->pos = 1; /* slot 0 is m's own info */
    c->failed = 0;
    msg_info in = msg_size(m, c);
    *use = c->failed ? NULL : c;
    return in;
}

static void sizes_free(sizes *c)
{
    if (c->v != c->stack)
        free(c->v);
}

size_t cap_encode_into(const ProtobufCMessage *m, uint8_t *buf)
{
    sizes c, *use;
    msg_info in = size_with_table(m, &c, &use);
    size_t k = msg_write(m, buf, use, in.present);
    sizes_free(&c);
    return k;
}

int cap_encode_to(const ProtobufCMessage *m, uint8_t **buf, size_t *cap, size_t *len)
{
    sizes c, *use;
    msg_info in = size_with_table(m, &c, &use);
    size_t n = in.size;
    if (!*buf || *cap < n) {
        uint8_t *g = realloc(*buf, n ? n : 1);
        if (!g) {
            sizes_free(&c);
            return CAP_ENOMEM;
        }
        *buf = g;
        *cap = n ? n : 1;
    }
    size_t w = msg_write(m, *buf, use, in.present);
    (void)w; /* equals n by construction; tests check it */
    sizes_free(&c);
    *len = n;
    return CAP_OK;
}

int cap_encode(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = cap_encode_to(m, &buf, &cap, len);
    *out = rc == CAP_OK ? buf : NULL;
    return rc;
}
