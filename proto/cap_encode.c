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
 * byte. The writer walks a plan per message type worked out once from the
 * descriptors (see "per-message plans" below); the sizing walk reads the
 * descriptors directly, since it runs only for packets that do not fit. */
#include "cap_encode.h"

#include <pthread.h>
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

/* n <= 32 bytes from src to dst without a call: two moves of a power of
 * two that overlap in the middle (most strings of a packet are this short). */
static inline void copy_short(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (n >= 16) {
        uint8_t a[16], b[16];
        memcpy(a, src, 16);
        memcpy(b, src + n - 16, 16);
        memcpy(dst, a, 16);
        memcpy(dst + n - 16, b, 16);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n) {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

static inline void put_bytes(rwriter *w, const void *src, size_t n)
{
    if (n > room(w)) {
        w->full = 1;
        return;
    }
    w->p -= n;
    if (n <= 32)
        copy_short(w->p, src, n);
    else
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
static inline void put_le(rwriter *w, uint64_t v, unsigned n)
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

/* --- per-message plans --------------------------------------------------
 * What the writer needs to know about each field (where its value is, how
 * its presence is told, how it is written, its tag's bytes) is worked out
 * from the descriptors once, for every message type reachable from
 * BusPacket, so that writing a message is one pass over a short table of
 * its fields instead of descriptor walks. The members of a oneof are not in
 * that table: the oneof's case is read once and only the member it names is
 * written, in its place among the other fields. A message type outside the
 * plans (or beyond their room) is written from entries worked out field by
 * field as it is written, by the same code. */

/* How a field's value is stored and written. */
enum {
    K_STRING,     /* present when non-empty */
    K_OPT_STRING, /* proto2/proto3 optional string: present when not NULL */
    K_BYTES,
    K_MESSAGE,
    K_INT32, /* int32, enum: sign-extended to 64 bits */
    K_UINT32,
    K_SINT32,
    K_INT64, /* int64, uint64 */
    K_SINT64,
    K_BOOL,
    K_FIXED32, /* fixed32, sfixed32, float: four bytes little-endian */
    K_FIXED64, /* fixed64, sfixed64, double */
};

/* When a singular field is written. */
enum {
    G_VALUE,  /* when its value is not the default (bits all zero, empty, NULL) */
    G_CASE,   /* a oneof member: when the oneof's case is its number */
    G_HAS,    /* an optional scalar: when its has_ flag is set */
    G_ALWAYS, /* required fields, map entries' key and value */
};

/* How a field repeats. */
enum { R_NONE, R_PLAIN, R_PACKED, R_MAP };

/* What the writer does first with a field: how its presence is told, by
 * its gate and kind together, so that an absent field costs one dispatch
 * and one or two loads. */
enum {
    OP_STRING,  /* G_VALUE K_STRING: written when non-empty */
    OP_MESSAGE, /* G_VALUE K_MESSAGE: written when not NULL */
    OP_NONNULL, /* G_VALUE K_OPT_STRING */
    OP_BYTES,   /* G_VALUE K_BYTES: written when not empty */
    OP_NZ4,     /* G_VALUE 4-byte scalars: written when a bit is set */
    OP_NZ8,     /* G_VALUE 8-byte scalars */
    OP_CASE,    /* G_CASE */
    OP_HAS,     /* G_HAS */
    OP_ALWAYS,  /* G_ALWAYS */
    OP_REPEATED,
};

typedef struct enc_plan enc_plan;

typedef struct {
    uint32_t offset, qoffset; /* the value; the case, has_ flag or count */
    uint32_t id;
    uint8_t op, kind, rep;
    uint8_t tag_len;     /* bytes of tag */
    uint8_t tag[5];      /* the tag as written (wire type 2 for packed and map fields) */
    uint8_t elem_size;   /* repeated: bytes of one array element */
    const enc_plan *sub; /* message values and map entries: their type's plan, or NULL */
} enc_field;

/* A oneof's members, written when the case names them. */
typedef struct {
    uint32_t qoffset;
    const enc_field *members; /* ascending numbers */
    unsigned n;
} enc_oneof;

/* Oneofs of one message taken by their case; a message with more has its
 * members tested one by one (G_CASE), like a message without a plan. */
#define MAX_GROUPED_ONEOFS 4

struct enc_plan {
    const ProtobufCMessageDescriptor *desc;
    int entry;                /* written as a map entry: every field always */
    const enc_field *fields;  /* outside grouped oneofs, ascending numbers */
    unsigned n_fields;
    const enc_oneof *oneofs;
    unsigned n_oneofs;
};

/* Room for the CAP schema (some 35 message types, some 250 fields) several
 * times over. */
#define MAX_PLANS 128
#define MAX_PLAN_FIELDS 1024
#define MAX_PLAN_ONEOFS 64
#define PLAN_SLOTS 256 /* descriptor -> plan hash, a power of two */

static struct {
    enc_plan plans[MAX_PLANS];
    enc_field fields[MAX_PLAN_FIELDS];
    enc_oneof oneofs[MAX_PLAN_ONEOFS];
    unsigned n_plans, n_fields, n_oneofs;
    const enc_plan *slots[PLAN_SLOTS]; /* by descriptor and entry-ness */
} plans;

static pthread_once_t plans_once = PTHREAD_ONCE_INIT;

static inline unsigned plan_slot(const ProtobufCMessageDescriptor *d)
{
    return (unsigned)(((uintptr_t)d * UINT64_C(0x9E3779B97F4A7C15)) >> 56) & (PLAN_SLOTS - 1);
}

/* The plan of messages of type d (written as map entries when `entry`),
 * or NULL. */
static inline const enc_plan *plan_of(const ProtobufCMessageDescriptor *d, int entry)
{
    for (unsigned i = plan_slot(d);; i = (i + 1) & (PLAN_SLOTS - 1)) {
        const enc_plan *p = plans.slots[i];
        if (!p || (p->desc == d && p->entry == entry))
            return p;
    }
}

static uint8_t kind_of(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return f->label == PROTOBUF_C_LABEL_OPTIONAL ? K_OPT_STRING : K_STRING;
    case PROTOBUF_C_TYPE_BYTES: return K_BYTES;
    case PROTOBUF_C_TYPE_MESSAGE: return K_MESSAGE;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM: return K_INT32;
    case PROTOBUF_C_TYPE_UINT32: return K_UINT32;
    case PROTOBUF_C_TYPE_SINT32: return K_SINT32;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64: return K_INT64;
    case PROTOBUF_C_TYPE_SINT64: return K_SINT64;
    case PROTOBUF_C_TYPE_BOOL: return K_BOOL;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return K_FIXED32;
    default: return K_FIXED64; /* sfixed64, fixed64, double */
    }
}

static uint8_t op_of(int rep, int gate, int kind)
{
    if (rep)
        return OP_REPEATED;
    switch (gate) {
    case G_CASE: return OP_CASE;
    case G_HAS: return OP_HAS;
    case G_ALWAYS: return OP_ALWAYS;
    default: break;
    }
    switch (kind) {
    case K_STRING: return OP_STRING;
    case K_MESSAGE: return OP_MESSAGE;
    case K_OPT_STRING: return OP_NONNULL;
    case K_BYTES: return OP_BYTES;
    case K_INT64:
    case K_SINT64:
    case K_FIXED64: return OP_NZ8;
    default: return OP_NZ4; /* 32-bit integers, float, bool, enum */
    }
}

/* The entry of field f (of a map entry message when `entry`); its sub
 * plan is left NULL. */
static void fill_field(enc_field *e, const ProtobufCFieldDescriptor *f, int entry)
{
    memset(e, 0, sizeof *e);
    int gate = G_VALUE;
    e->offset = f->offset;
    e->qoffset = f->quantifier_offset;
    e->id = f->id;
    e->kind = kind_of(f);
    ProtobufCWireType wt = cap_wire_type_of(f->type);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        e->rep = is_map_field(f) ? R_MAP : is_packable(f) ? R_PACKED : R_PLAIN;
        e->elem_size = (uint8_t)cap_field_elem_size(f->type);
        if (e->rep != R_PLAIN)
            wt = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    } else if (entry || f->label == PROTOBUF_C_LABEL_REQUIRED) {
        gate = G_ALWAYS;
    } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        gate = G_CASE;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
               f->type != PROTOBUF_C_TYPE_STRING) {
        gate = G_HAS;
    }
    e->op = op_of(e->rep, gate, e->kind);
    e->tag_len = (uint8_t)cap_varint_write(e->tag, ((uint64_t)f->id << 3) | (uint64_t)wt);
}

/* The plan of d (for map entries when `entry`), built on first use; a plan
 * is registered before its fields are filled, so recursive types end. NULL
 * when the room is full. Runs once, from build_plans. */
static const enc_plan *build_plan(const ProtobufCMessageDescriptor *d, int entry)
{
    for (unsigned i = 0; i < plans.n_plans; i++)
        if (plans.plans[i].desc == d && plans.plans[i].entry == entry)
            return &plans.plans[i];
    if (plans.n_plans == MAX_PLANS || plans.n_fields + d->n_fields > MAX_PLAN_FIELDS)
        return NULL;
    /* Which oneofs are taken by their case: the first few. */
    unsigned n_oneofs = 0;
    uint32_t oneof_q[MAX_GROUPED_ONEOFS];
    unsigned n_members[MAX_GROUPED_ONEOFS] = {0};
    for (unsigned i = 0; i < d->n_fields && !entry; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        unsigned k = 0;
        while (k < n_oneofs && oneof_q[k] != f->quantifier_offset)
            k++;
        if (k == n_oneofs) {
            if (n_oneofs == MAX_GROUPED_ONEOFS ||
                plans.n_oneofs + n_oneofs == MAX_PLAN_ONEOFS)
                continue;
            oneof_q[n_oneofs++] = f->quantifier_offset;
        }
        n_members[k]++;
    }
    enc_plan *p = &plans.plans[plans.n_plans++];
    p->desc = d;
    p->entry = entry;
    /* Fields outside grouped oneofs first, then each grouped oneof's
     * members, all in ascending number order. */
    enc_field *fields = &plans.fields[plans.n_fields];
    plans.n_fields += d->n_fields;
    enc_oneof *oneofs = &plans.oneofs[plans.n_oneofs];
    plans.n_oneofs += n_oneofs;
    unsigned at = 0;
    for (unsigned k = 0; k < n_oneofs; k++)
        at += n_members[k];
    p->fields = fields;
    p->n_fields = d->n_fields - at;
    p->oneofs = oneofs;
    p->n_oneofs = n_oneofs;
    unsigned next = 0, member_at = p->n_fields;
    for (unsigned k = 0; k < n_oneofs; k++) {
        oneofs[k].qoffset = oneof_q[k];
        oneofs[k].members = &fields[member_at];
        oneofs[k].n = 0;
        member_at += n_members[k];
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        enc_field *e = &fields[next];
        unsigned k = n_oneofs;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            for (k = 0; k < n_oneofs && oneof_q[k] != f->quantifier_offset; k++)
                ;
        if (k < n_oneofs)
            e = (enc_field *)&oneofs[k].members[oneofs[k].n++];
        else
            next++;
        fill_field(e, f, entry);
        if (k < n_oneofs)
            e->op = OP_ALWAYS; /* written once its case is read */
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            e->sub = build_plan(f->descriptor, e->rep == R_MAP);
    }
    return p;
}

static void build_plans(void)
{
    build_plan(CAP_PACKET_DESC, 0);
    for (unsigned i = 0; i < plans.n_plans; i++) {
        const enc_plan *p = &plans.plans[i];
        unsigned s = plan_slot(p->desc);
        while (plans.slots[s])
            s = (s + 1) & (PLAN_SLOTS - 1);
        plans.slots[s] = p;
    }
}

/* --- writing a message ---------------------------------------------------- */

static void put_msg(rwriter *w, const ProtobufCMessage *m, const enc_plan *plan);
static inline __attribute__((always_inline)) void put_fields(rwriter *w, const ProtobufCMessage *m,
                                                              const enc_plan *plan, int entry);

static inline void put_tag_of(rwriter *w, const enc_field *e)
{
    if (e->tag_len > room(w)) {
        w->full = 1;
        return;
    }
    w->p -= e->tag_len;
    if (e->tag_len == 1)
        *w->p = e->tag[0];
    else
        memcpy(w->p, e->tag, e->tag_len);
}

/* A varint (a value or a length) and then, when `tagged`, e's tag before
 * it; the common case, both one byte, in one step. */
static inline __attribute__((always_inline)) void put_varint_tag(rwriter *w, uint64_t v,
                                                                  const enc_field *e, int tagged)
{
    if (tagged && v < 0x80 && e->tag_len == 1 && room(w) >= 2) {
        w->p -= 2;
        w->p[0] = e->tag[0];
        w->p[1] = (uint8_t)v;
        return;
    }
    put_varint(w, v);
    if (tagged)
        put_tag_of(w, e);
}

static inline __attribute__((always_inline)) void put_string(rwriter *w, const char *s,
                                                              const enc_field *e, int tagged)
{
    size_t n = s ? strlen(s) : 0;
    put_bytes(w, s, n);
    put_varint_tag(w, n, e, tagged);
}

/* A nested message with its length prefix; e's plan is the one of its
 * type (NULL when sub may be NULL: then it is empty). */
static inline __attribute__((always_inline)) void put_sub(rwriter *w, const ProtobufCMessage *sub,
                                                           const enc_field *e, int tagged)
{
    const uint8_t *end = w->p;
    const enc_plan *plan = e->sub;
    if (sub)
        put_msg(w, sub, plan && plan->desc == sub->descriptor ? plan : plan_of(sub->descriptor, 0));
    put_varint_tag(w, since(w, end), e, tagged);
}

/* One element's payload (with the length prefix for length-delimited
 * kinds), and then its tag when `tagged`; p points at the value. */
static inline __attribute__((always_inline)) void put_value(rwriter *w, const enc_field *e,
                                                             const void *p, int tagged)
{
    switch (e->kind) {
    case K_STRING:
    case K_OPT_STRING: put_string(w, *(char *const *)p, e, tagged); return;
    case K_BYTES: {
        const ProtobufCBinaryData *b = p;
        put_bytes(w, b->data, b->len);
        put_varint_tag(w, b->len, e, tagged);
        return;
    }
    case K_MESSAGE: put_sub(w, *(ProtobufCMessage *const *)p, e, tagged); return;
    case K_INT32: put_varint_tag(w, (uint64_t)(int64_t)*(const int32_t *)p, e, tagged); return;
    case K_UINT32: put_varint_tag(w, *(const uint32_t *)p, e, tagged); return;
    case K_SINT32: put_varint_tag(w, zigzag32(*(const int32_t *)p), e, tagged); return;
    case K_INT64: put_varint_tag(w, *(const uint64_t *)p, e, tagged); return;
    case K_SINT64: put_varint_tag(w, zigzag64(*(const int64_t *)p), e, tagged); return;
    case K_BOOL: put_varint_tag(w, *(const protobuf_c_boolean *)p ? 1 : 0, e, tagged); return;
    case K_FIXED32: {
        uint32_t v;
        memcpy(&v, p, 4);
        put_le(w, v, 4);
        break;
    }
    default: {
        uint64_t v;
        memcpy(&v, p, 8);
        put_le(w, v, 8);
        break;
    }
    }
    if (tagged)
        put_tag_of(w, e);
}

/* One map entry of map field e: key and value always written, the entry's
 * own unknown fields not. */
static void put_entry(rwriter *w, const enc_field *e, const ProtobufCMessage *entry)
{
    const uint8_t *end = w->p;
    const enc_plan *plan = e->sub;
    if (!plan || plan->desc != entry->descriptor)
        plan = plan_of(entry->descriptor, 1);
    put_fields(w, entry, plan, 1);
    put_varint_tag(w, since(w, end), e, 1);
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
static void put_map(rwriter *w, const enc_field *e, ProtobufCMessage *const *arr, size_t n)
{
    if (n == 1) { /* the common map of one entry: nothing to sort */
        put_entry(w, e, arr[0]);
        return;
    }
    const ProtobufCMessage *stackbuf[64];
    const ProtobufCMessage **v = n > 64 ? malloc(n * sizeof *v) : stackbuf;
    if (!v) {
        const ProtobufCMessage *next = NULL;
        for (size_t i = prev_entry(arr, n, NULL); i < n; i = prev_entry(arr, n, next)) {
            put_entry(w, e, arr[i]);
            next = arr[i];
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = arr[i];
    sort_entries(v, n);
    for (size_t i = n; i-- > 0;)
        put_entry(w, e, v[i]);
    if (v != stackbuf)
        free(v);
}

static void put_repeated(rwriter *w, const enc_field *e, const void *arr, size_t n)
{
    if (e->rep == R_MAP) {
        put_map(w, e, arr, n);
        return;
    }
    if (e->rep == R_PACKED) {
        const uint8_t *end = w->p;
        for (size_t i = n; i-- > 0;)
            put_value(w, e, (const char *)arr + i * e->elem_size, 0);
        put_varint_tag(w, since(w, end), e, 1);
        return;
    }
    for (size_t i = n; i-- > 0;) {
        put_value(w, e, (const char *)arr + i * e->elem_size, 1);
    }
}

/* Field e of m, when it is written. A G_VALUE field is omitted when its
 * value is the default: empty, NULL, or all bits zero (so a float -0.0 is
 * kept, as in Go). */
static inline __attribute__((always_inline)) void put_field(rwriter *w, const char *m,
                                                             const enc_field *e)
{
    const void *p = m + e->offset;
    /* Strings and messages, most fields, are tested before the dispatch. */
    if (e->op == OP_STRING) {
        const char *s = *(char *const *)p;
        if (s && s[0])
            put_string(w, s, e, 1);
        return;
    }
    if (e->op == OP_MESSAGE) {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub)
            put_sub(w, sub, e, 1);
        return;
    }
    switch (e->op) {
    case OP_NONNULL:
        if (!*(void *const *)p)
            return;
        break;
    case OP_BYTES:
        if (!((const ProtobufCBinaryData *)p)->len)
            return;
        break;
    case OP_NZ4: {
        uint32_t v;
        memcpy(&v, p, 4);
        if (!v)
            return;
        /* The common kind written from the value at hand, without
         * put_value's second dispatch. */
        if (e->kind == K_INT32) {
            put_varint_tag(w, (uint64_t)(int64_t)(int32_t)v, e, 1);
            return;
        }
        break;
    }
    case OP_NZ8: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (!v)
            return;
        if (e->kind == K_INT64) {
            put_varint_tag(w, v, e, 1);
            return;
        }
        break;
    }
    case OP_CASE:
        if (MEMBER(m, e->qoffset, uint32_t) != e->id)
            return;
        break;
    case OP_HAS:
        if (!MEMBER(m, e->qoffset, protobuf_c_boolean))
            return;
        break;
    case OP_ALWAYS: break;
    default: { /* OP_REPEATED */
        size_t n = MEMBER(m, e->qoffset, size_t);
        if (n)
            put_repeated(w, e, *(void *const *)p, n);
        return;
    }
    }
    put_value(w, e, p, 1);
}

/* m's fields in descending order (a map entry's: key and value always).
 * Without a plan, each field's entry is worked out as it is written.
 * The plan's table is held in a local: the bytes written could be the
 * plan's, for all the compiler knows, so it would load it again after
 * every field. */
static inline __attribute__((always_inline)) void put_fields(rwriter *w, const ProtobufCMessage *m,
                                                              const enc_plan *plan, int entry)
{
    const char *mp = (const char *)m;
    if (!plan) {
        const ProtobufCMessageDescriptor *d = m->descriptor;
        for (unsigned i = d->n_fields; i-- > 0;) {
            enc_field e;
            fill_field(&e, &d->fields[i], entry);
            put_field(w, mp, &e);
        }
        return;
    }
    /* The members the grouped oneofs' cases name, highest number first. */
    const enc_field *set[MAX_GROUPED_ONEOFS];
    unsigned n_set = 0;
    for (unsigned k = 0; k < plan->n_oneofs; k++) {
        const enc_oneof *o = &plan->oneofs[k];
        uint32_t c = MEMBER(mp, o->qoffset, uint32_t);
        for (unsigned j = 0; j < o->n; j++)
            if (o->members[j].id == c) {
                unsigned at = n_set++;
                for (; at > 0 && set[at - 1]->id < c; at--)
                    set[at] = set[at - 1];
                set[at] = &o->members[j];
                break;
            }
    }
    /* A write that does not fit sets w->full and writes nothing, so the
     * walk need not stop early: the result is thrown away. */
    const enc_field *const first = plan->fields;
    const enc_field *e = first + plan->n_fields;
    for (unsigned taken = 0; taken < n_set; taken++) {
        const enc_field *member = set[taken];
        for (; e != first && e[-1].id > member->id; e--)
            put_field(w, mp, &e[-1]);
        put_field(w, mp, member);
    }
    for (; e != first; e--)
        put_field(w, mp, &e[-1]);
}

/* m: its unknown fields first, last one first, then its fields in
 * descending order, so that the bytes read fields ascending, then the
 * unknown fields in received order. plan is m's (or NULL). */
static void put_msg(rwriter *w, const ProtobufCMessage *m, const enc_plan *plan)
{
    for (unsigned i = m->n_unknown_fields; i-- > 0;) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
        put_bytes(w, u->data, u->len);
        put_tag(w, u->tag, u->wire_type);
    }
    put_fields(w, m, plan, 0);
}

/* Writes m at the end of [buf, buf + cap); returns where its bytes start,
 * or NULL when they do not fit. */
static uint8_t *write_back(const ProtobufCMessage *m, uint8_t *buf, size_t cap)
{
    pthread_once(&plans_once, build_plans);
    rwriter w = {buf, buf + cap, 0};
    put_msg(&w, m, plan_of(m->descriptor, 0));
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
