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

#include "cap_copy.h"
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

/* Bytes go in just before p, down to start (the buffer's first byte);
 * each write returns the new p. A write that does not fit writes nothing
 * and sets `overflowed` (the result is then thrown away). The position is
 * a plain pointer handed from call to call, never stored: one in memory
 * would be loaded again after every byte written (the bytes could be its
 * own, for all the compiler knows). */
static _Thread_local int overflowed;

static void no_room(void) { overflowed = 1; }

static inline size_t room(const uint8_t *p, const uint8_t *start) { return (size_t)(p - start); }

static inline uint8_t *put_bytes(uint8_t *p, const uint8_t *start, const void *src, size_t n)
{
    if (n > room(p, start)) {
        no_room();
        return p;
    }
    p -= n;
    cap_copy_short(p, src, n);
    return p;
}

static inline uint8_t *put_varint(uint8_t *p, const uint8_t *start, uint64_t v)
{
    if (v < 0x80 && room(p, start)) {
        *--p = (uint8_t)v;
        return p;
    }
    size_t n = vsize(v);
    if (n > room(p, start)) {
        no_room();
        return p;
    }
    p -= n;
    cap_varint_write(p, v);
    return p;
}

/* n bytes little-endian (fixed32/64, float, double). */
static inline uint8_t *put_le(uint8_t *p, const uint8_t *start, uint64_t v, unsigned n)
{
    if (n > room(p, start)) {
        no_room();
        return p;
    }
    p -= n;
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p;
}

/* --- per-message plans --------------------------------------------------
 * What the writer needs to know about each field (where its value is, how
 * its presence is told, how it is written, its tag's bytes) is worked out
 * from the descriptors once, for every message type reachable from
 * BusPacket, so that writing a message is one pass over a short table of
 * its fields, in the order written, instead of descriptor walks. Most
 * fields of a message are absent: each entry starts with a quick test of
 * absence, one masked word of the message compared with a constant, which
 * skips such a field without looking at its kind. The members of a oneof
 * are not in that table: the case is read in their place and only the
 * member it names is written. A message type outside the plans (or beyond
 * their room) is written from entries worked out field by field as it is
 * written, by the same code. */

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
    G_ALWAYS, /* required fields, map entries' key and value, a planned oneof's member */
};

/* What the writer does with a field: how its presence is told, by its
 * gate and kind together. The kinds most messages are made of are written
 * right there; the others by put_tagged, out of the table's loop. */
enum {
    OP_STRING,  /* G_VALUE K_STRING of a one-byte tag (numbers 1 to 15): written when non-empty */
    OP_MESSAGE, /* G_VALUE K_MESSAGE: written when not NULL */
    OP_SUB,     /* G_ALWAYS K_MESSAGE: always written (NULL: empty) */
    OP_INT32,   /* G_VALUE K_INT32: written when not 0 */
    OP_INT64,   /* G_VALUE K_INT64: written when not 0 */
    OP_NZ4,     /* the other G_VALUE 4-byte scalars: written when a bit is set */
    OP_NZ8,     /* the other G_VALUE 8-byte scalars */
    OP_BYTES,   /* G_VALUE K_BYTES: written when not empty */
    OP_NONNULL, /* G_VALUE K_OPT_STRING: written when not NULL */
    OP_STRING_WIDE, /* G_VALUE K_STRING of a longer tag */
    OP_CASE,    /* G_CASE */
    OP_HAS,     /* G_HAS */
    OP_ALWAYS,  /* G_ALWAYS, but for messages */
    OP_ONEOF,   /* a run of a oneof's members: the one the case names, if in the run */
    OP_REPEATED, /* repeated, one tagged element after another */
    OP_PACKED,   /* repeated scalars, packed */
    OP_MAP,      /* map entries, sorted by key */
};

typedef struct enc_plan enc_plan;
typedef struct enc_oneof enc_oneof;

typedef struct {
    /* The quick test of absence, read before anything else: the field is
     * not written when (word & mask) == absent, the word being the 8 bytes
     * at `test` (aligned, in the message); they hold the field's value (or
     * its has_ flag, count or case) as an absent field has it, most often.
     * When the test fails, the field's op tells for sure. */
    uint64_t mask, absent;
    uint32_t test;
    uint32_t offset, qoffset; /* the value; the case, has_ flag or count */
    uint32_t id;              /* the number (OP_ONEOF: the run's highest) */
    uint32_t lo;              /* OP_ONEOF: the run's lowest number */
    uint8_t op, kind;
    uint8_t tag_len;          /* bytes of tag */
    uint8_t tag[5];           /* the tag as written (wire type 2 for packed and map fields) */
    uint8_t elem_size;        /* repeated: bytes of one array element */
    const enc_plan *sub;      /* message values and map entries: their type's plan, or NULL */
    const enc_oneof *oneof;   /* OP_ONEOF: the oneof */
} enc_field;

/* A oneof's members, written when the case names them. */
#define ONEOF_INDEX 32
struct enc_oneof {
    const enc_field *members;
    unsigned n;
    uint8_t index[ONEOF_INDEX]; /* case c below ONEOF_INDEX: members[index[c] - 1], or none (0) */
};

/* A message type's fields in the order written, descending numbers. The
 * members of a oneof are not in that table: in their place, each run of
 * them (between two other fields) has an OP_ONEOF entry, which reads the
 * case and writes the member it names when it is one of the run's. */
struct enc_plan {
    const ProtobufCMessageDescriptor *desc;
    int entry; /* written as a map entry: every field always */
    const enc_field *fields, *end;
};

/* Room for the CAP schema (some 35 message types, some 250 fields) several
 * times over. */
#define MAX_PLANS 128
#define MAX_PLAN_FIELDS 1024
#define MAX_PLAN_ONEOFS 64
#define PLAN_SLOTS 256 /* descriptor -> plan hash, a power of two */

static struct {
    enc_plan plans[MAX_PLANS];
    enc_field fields[MAX_PLAN_FIELDS]; /* the tables, and the oneofs' members */
    enc_oneof oneofs[MAX_PLAN_ONEOFS];
    unsigned n_plans, n_fields, n_oneofs;
    const enc_plan *slots[PLAN_SLOTS]; /* by descriptor and entry-ness */
} plans;

static pthread_once_t plans_once = PTHREAD_ONCE_INIT;
static int plans_built; /* set (release) when build_plans is done: no call once they are */

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

static uint8_t op_of(int gate, int kind)
{
    switch (gate) {
    case G_CASE: return OP_CASE;
    case G_HAS: return OP_HAS;
    case G_ALWAYS: return kind == K_MESSAGE ? OP_SUB : OP_ALWAYS;
    default: break;
    }
    switch (kind) {
    case K_STRING: return OP_STRING;
    case K_MESSAGE: return OP_MESSAGE;
    case K_INT32: return OP_INT32;
    case K_INT64: return OP_INT64;
    case K_OPT_STRING: return OP_NONNULL;
    case K_BYTES: return OP_BYTES;
    case K_SINT64:
    case K_FIXED64: return OP_NZ8;
    default: return OP_NZ4; /* 32-bit integers, float, bool */
    }
}

/* The entry of field f (of a map entry message when `entry`); its sub
 * plan is left NULL. */
static void fill_field(enc_field *e, const ProtobufCFieldDescriptor *f, int entry)
{
    memset(e, 0, sizeof *e);
    e->offset = f->offset;
    e->qoffset = f->quantifier_offset;
    e->id = f->id;
    e->kind = kind_of(f);
    ProtobufCWireType wt = cap_wire_type_of(f->type);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        e->op = is_map_field(f) ? OP_MAP : is_packable(f) ? OP_PACKED : OP_REPEATED;
        e->elem_size = (uint8_t)cap_field_elem_size(f->type);
        if (e->op != OP_REPEATED)
            wt = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    } else {
        int gate = G_VALUE;
        if (entry || f->label == PROTOBUF_C_LABEL_REQUIRED)
            gate = G_ALWAYS;
        else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            gate = G_CASE;
        else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                 f->type != PROTOBUF_C_TYPE_STRING)
            gate = G_HAS;
        e->op = op_of(gate, e->kind);
    }
    e->tag_len = (uint8_t)cap_varint_write(e->tag, ((uint64_t)f->id << 3) | (uint64_t)wt);
    if (e->op == OP_STRING && e->tag_len != 1)
        e->op = OP_STRING_WIDE;
}

/* Sets e's quick test (see enc_field) for a field of a message of `size`
 * bytes: the `width` bytes at `at` hold `absent_value` when the field is
 * not written. No quick test (one that never passes) when there are none
 * or they do not lie in one aligned word of the message. */
static void set_quick_test(enc_field *e, size_t size)
{
    size_t at = e->offset, width = 0;
    const void *absent_value = NULL;
    static const void *const null_ptr = NULL;
    static const uint64_t zero = 0;
    const char *const empty = protobuf_c_empty_string;
    switch (e->op) {
    case OP_STRING: /* as initialised: the library's empty string */
    case OP_STRING_WIDE:
        width = sizeof(char *);
        absent_value = &empty;
        break;
    case OP_MESSAGE:
    case OP_NONNULL:
        width = sizeof(void *);
        absent_value = &null_ptr;
        break;
    case OP_INT32:
    case OP_NZ4: width = 4; break;
    case OP_INT64:
    case OP_NZ8: width = 8; break;
    case OP_BYTES: width = sizeof(size_t); break; /* the length */
    case OP_HAS:
        at = e->qoffset;
        width = sizeof(protobuf_c_boolean);
        break;
    case OP_ONEOF: /* the case: 0 when none is set */
        at = e->qoffset;
        width = 4;
        break;
    case OP_REPEATED:
    case OP_PACKED:
    case OP_MAP:
        at = e->qoffset;
        width = sizeof(size_t);
        break;
    default: break; /* OP_CASE, OP_ALWAYS, OP_SUB */
    }
    e->test = (uint32_t)(at & ~(size_t)7);
    e->mask = 0;
    e->absent = 1; /* never equal to word & 0 */
    if (!width || at - e->test + width > 8 || e->test + 8 > size)
        return;
    e->absent = 0;
    memset((char *)&e->mask + (at - e->test), 0xff, width);
    memcpy((char *)&e->absent + (at - e->test), absent_value ? absent_value : &zero, width);
}

/* The plan of d (for map entries when `entry`), built on first use; a plan
 * is registered before its fields are filled, so recursive types end. NULL
 * when the room is full. Runs once, from build_plans. */
static const enc_plan *build_plan(const ProtobufCMessageDescriptor *d, int entry)
{
    for (unsigned i = 0; i < plans.n_plans; i++)
        if (plans.plans[i].desc == d && plans.plans[i].entry == entry)
            return &plans.plans[i];
    if (plans.n_plans == MAX_PLANS || plans.n_fields + 2 * d->n_fields > MAX_PLAN_FIELDS)
        return NULL;
    /* The oneofs (told apart by their case's offset) and their members;
     * none when there is no room for them (then each member is tested by
     * itself, G_CASE). */
    unsigned n_oneofs = 0, n_members = 0;
    uint32_t oneof_q[MAX_PLAN_ONEOFS];
    for (unsigned i = 0; i < d->n_fields && !entry; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        unsigned k = 0;
        while (k < n_oneofs && oneof_q[k] != f->quantifier_offset)
            k++;
        if (k == n_oneofs) {
            if (plans.n_oneofs + n_oneofs == MAX_PLAN_ONEOFS) {
                n_oneofs = n_members = 0;
                break;
            }
            oneof_q[n_oneofs++] = f->quantifier_offset;
        }
        n_members++;
    }
    enc_plan *p = &plans.plans[plans.n_plans++];
    p->desc = d;
    p->entry = entry;
    /* The table (at most one entry a field) and then the members. */
    enc_field *table = &plans.fields[plans.n_fields], *member = table + d->n_fields;
    plans.n_fields += d->n_fields + n_members;
    enc_oneof *oneofs = &plans.oneofs[plans.n_oneofs];
    plans.n_oneofs += n_oneofs;
    memset(oneofs, 0, n_oneofs * sizeof *oneofs);
    unsigned n = 0;
    for (unsigned i = d->n_fields; i-- > 0;) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        unsigned k = n_oneofs;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            for (k = 0; k < n_oneofs && oneof_q[k] != f->quantifier_offset; k++)
                ;
        enc_field *e;
        if (k < n_oneofs) { /* written once its case is read */
            enc_oneof *o = &oneofs[k];
            if (!o->members)
                o->members = member;
            e = member++;
            if (f->id < ONEOF_INDEX)
                o->index[f->id] = (uint8_t)(o->n + 1);
            o->n++;
            fill_field(e, f, entry);
            e->op = op_of(G_ALWAYS, e->kind);
            enc_field *run = n ? &table[n - 1] : NULL;
            if (run && run->op == OP_ONEOF && run->oneof == o) {
                run->lo = f->id;
            } else {
                run = &table[n++];
                memset(run, 0, sizeof *run);
                run->op = OP_ONEOF;
                run->qoffset = f->quantifier_offset;
                run->id = run->lo = f->id;
                run->oneof = o;
                set_quick_test(run, d->sizeof_message);
            }
        } else {
            e = &table[n++];
            fill_field(e, f, entry);
            set_quick_test(e, d->sizeof_message);
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            e->sub = build_plan(f->descriptor, e->op == OP_MAP);
    }
    p->fields = table;
    p->end = table + n;
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
    __atomic_store_n(&plans_built, 1, __ATOMIC_RELEASE);
}

/* --- writing a message ---------------------------------------------------- */

static uint8_t *put_msg(uint8_t *p, const uint8_t *start, const ProtobufCMessage *m,
                        const enc_plan *plan);
static uint8_t *put_repeated(uint8_t *p, const uint8_t *start, const enc_field *e, const void *arr,
                             size_t n);

static inline uint8_t *put_tag_of(uint8_t *p, const uint8_t *start, const enc_field *e)
{
    if (e->tag_len > room(p, start)) {
        no_room();
        return p;
    }
    p -= e->tag_len;
    /* Byte by byte (tags this long are rare): with a memcpy of a length
     * not known here, gcc steps through the plan's table less well. */
    for (unsigned i = 0; i < e->tag_len; i++)
        p[i] = e->tag[i];
    return p;
}

/* A varint (a value or a length) and then, when `tagged`, e's tag before
 * it; the common case, both one byte, in one step. */
static inline __attribute__((always_inline)) uint8_t *
put_varint_tag(uint8_t *p, const uint8_t *start, uint64_t v, const enc_field *e, int tagged)
{
    if (tagged && v < 0x80 && e->tag_len == 1 && room(p, start) >= 2) {
        p -= 2;
        p[0] = e->tag[0];
        p[1] = (uint8_t)v;
        return p;
    }
    if (tagged && v < 0x80 && e->tag_len == 2 && room(p, start) >= 3) { /* numbers 16 to 2047 */
        p -= 3;
        memcpy(p, e->tag, 2);
        p[2] = (uint8_t)v;
        return p;
    }
    p = put_varint(p, start, v);
    return tagged ? put_tag_of(p, start, e) : p;
}

/* s (n bytes, n <= 32) after a one-byte tag and its length: the common
 * case in one step. The caller has made sure of the room. */
static inline __attribute__((always_inline)) uint8_t *put_short_string(uint8_t *p, uint8_t tag,
                                                                        const char *s, size_t n)
{
    p -= n + 2;
    p[0] = tag;
    p[1] = (uint8_t)n;
    cap_copy_short(p + 2, s, n);
    return p;
}

static inline __attribute__((always_inline)) uint8_t *
put_string(uint8_t *p, const uint8_t *start, const char *s, const enc_field *e, int tagged)
{
    size_t n = s ? strlen(s) : 0;
    if (tagged && n <= 32 && e->tag_len == 1 && n + 2 <= room(p, start))
        return put_short_string(p, e->tag[0], s, n);
    p = put_bytes(p, start, s, n);
    return put_varint_tag(p, start, n, e, tagged);
}

/* A nested message with its length prefix; e's plan is the one of its
 * type (NULL when sub may be NULL: then it is empty). */
static inline __attribute__((always_inline)) uint8_t *
put_sub(uint8_t *p, const uint8_t *start, const ProtobufCMessage *sub, const enc_field *e, int tagged)
{
    uint8_t *end = p;
    const enc_plan *plan = e->sub;
    if (sub)
        p = put_msg(p, start, sub,
                    plan && plan->desc == sub->descriptor ? plan : plan_of(sub->descriptor, 0));
    return put_varint_tag(p, start, (size_t)(end - p), e, tagged);
}

/* One element's payload (with the length prefix for length-delimited
 * kinds), and then its tag when `tagged`; v points at the value. */
static inline __attribute__((always_inline)) uint8_t *
put_value(uint8_t *p, const uint8_t *start, const enc_field *e, const void *v, int tagged)
{
    switch (e->kind) {
    case K_STRING:
    case K_OPT_STRING: return put_string(p, start, *(char *const *)v, e, tagged);
    case K_BYTES: {
        const ProtobufCBinaryData *b = v;
        p = put_bytes(p, start, b->data, b->len);
        return put_varint_tag(p, start, b->len, e, tagged);
    }
    case K_MESSAGE: return put_sub(p, start, *(ProtobufCMessage *const *)v, e, tagged);
    case K_INT32:
        return put_varint_tag(p, start, (uint64_t)(int64_t)*(const int32_t *)v, e, tagged);
    case K_UINT32: return put_varint_tag(p, start, *(const uint32_t *)v, e, tagged);
    case K_SINT32: return put_varint_tag(p, start, zigzag32(*(const int32_t *)v), e, tagged);
    case K_INT64: return put_varint_tag(p, start, *(const uint64_t *)v, e, tagged);
    case K_SINT64: return put_varint_tag(p, start, zigzag64(*(const int64_t *)v), e, tagged);
    case K_BOOL: return put_varint_tag(p, start, *(const protobuf_c_boolean *)v ? 1 : 0, e, tagged);
    case K_FIXED32: {
        uint32_t x;
        memcpy(&x, v, 4);
        p = put_le(p, start, x, 4);
        break;
    }
    default: {
        uint64_t x;
        memcpy(&x, v, 8);
        p = put_le(p, start, x, 8);
        break;
    }
    }
    return tagged ? put_tag_of(p, start, e) : p;
}

/* Field f of map entry mp: always written, but for a repeated one
 * without elements (which an entry does not have). */
static inline __attribute__((always_inline)) uint8_t *
put_entry_field(uint8_t *p, const uint8_t *start, const char *mp, const enc_field *f)
{
    if (f->op < OP_REPEATED)
        return put_value(p, start, f, mp + f->offset, 1);
    size_t n = MEMBER(mp, f->qoffset, size_t);
    return n ? put_repeated(p, start, f, *(void *const *)(mp + f->offset), n) : p;
}

/* One map entry of map field e: key and value always written (in
 * descending order, so value first), the entry's own unknown fields not. */
static inline __attribute__((always_inline)) uint8_t *
put_entry(uint8_t *p, const uint8_t *start, const enc_field *e, const ProtobufCMessage *entry)
{
    uint8_t *end = p;
    const char *mp = (const char *)entry;
    const enc_plan *plan = e->sub;
    if (!plan || plan->desc != entry->descriptor)
        plan = plan_of(entry->descriptor, 1);
    if (plan) {
        for (const enc_field *f = plan->fields, *const last = plan->end; f != last; f++)
            p = put_entry_field(p, start, mp, f);
    } else {
        const ProtobufCMessageDescriptor *d = entry->descriptor;
        for (unsigned i = d->n_fields; i-- > 0;) {
            enc_field f;
            fill_field(&f, &d->fields[i], 1);
            p = put_entry_field(p, start, mp, &f);
        }
    }
    return put_varint_tag(p, start, (size_t)(end - p), e, 1);
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

/* The common map of one entry: nothing to sort. */
static uint8_t *put_map1(uint8_t *p, const uint8_t *start, const enc_field *e,
                         const ProtobufCMessage *entry)
{
    return put_entry(p, start, e, entry);
}

/* A map field's entries, in key order (so written last entry first). */
static uint8_t *put_map(uint8_t *p, const uint8_t *start, const enc_field *e,
                        ProtobufCMessage *const *arr, size_t n)
{
    if (n == 1)
        return put_map1(p, start, e, arr[0]);
    const ProtobufCMessage *stackbuf[64];
    const ProtobufCMessage **v = n > 64 ? malloc(n * sizeof *v) : stackbuf;
    if (!v) {
        const ProtobufCMessage *next = NULL;
        for (size_t i = prev_entry(arr, n, NULL); i < n; i = prev_entry(arr, n, next)) {
            p = put_entry(p, start, e, arr[i]);
            next = arr[i];
        }
        return p;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = arr[i];
    sort_entries(v, n);
    for (size_t i = n; i-- > 0;)
        p = put_entry(p, start, e, v[i]);
    if (v != stackbuf)
        free(v);
    return p;
}

/* Repeated field e's n elements (n > 0). */
static uint8_t *put_repeated(uint8_t *p, const uint8_t *start, const enc_field *e, const void *arr,
                             size_t n)
{
    if (e->op == OP_MAP)
        return put_map(p, start, e, arr, n);
    if (e->op == OP_PACKED) {
        uint8_t *end = p;
        for (size_t i = n; i-- > 0;)
            p = put_value(p, start, e, (const char *)arr + i * e->elem_size, 0);
        return put_varint_tag(p, start, (size_t)(end - p), e, 1);
    }
    for (size_t i = n; i-- > 0;)
        p = put_value(p, start, e, (const char *)arr + i * e->elem_size, 1);
    return p;
}

/* Singular field e's tag and value, v pointing at it: put_value out of
 * the table's loop, for the kinds of field seldom written. */
static uint8_t *put_tagged(uint8_t *p, const uint8_t *start, const enc_field *e, const void *v)
{
    return put_value(p, start, e, v, 1);
}

/* The member of oneof o whose number is c, or NULL. */
static inline const enc_field *member_of(const enc_oneof *o, uint32_t c)
{
    if (c < ONEOF_INDEX)
        return o->index[c] ? &o->members[o->index[c] - 1] : NULL;
    for (unsigned j = 0; j < o->n; j++)
        if (o->members[j].id == c)
            return &o->members[j];
    return NULL;
}

/* Field e of m, when it is written. A G_VALUE field is omitted when its
 * value is the default: empty, NULL, or all bits zero (so a float -0.0 is
 * kept, as in Go). */
static inline __attribute__((always_inline)) uint8_t *
put_field(uint8_t *p, const uint8_t *start, const char *m, const enc_field *e)
{
    const void *v = m + e->offset;
    /* Strings, most fields, are tested before the dispatch. */
    if (e->op == OP_STRING) { /* of a one-byte tag */
        const char *s = *(char *const *)v;
        size_t n = s ? strlen(s) : 0;
        if (!n)
            return p;
        if (n <= 32 && n + 2 <= room(p, start))
            return put_short_string(p, e->tag[0], s, n);
        return put_tagged(p, start, e, v);
    }
    switch (e->op) {
    case OP_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)v;
        return sub ? put_sub(p, start, sub, e, 1) : p;
    }
    case OP_SUB: return put_sub(p, start, *(ProtobufCMessage *const *)v, e, 1);
    case OP_INT32: {
        int32_t x;
        memcpy(&x, v, 4);
        return x ? put_varint_tag(p, start, (uint64_t)(int64_t)x, e, 1) : p;
    }
    case OP_INT64: {
        uint64_t x;
        memcpy(&x, v, 8);
        return x ? put_varint_tag(p, start, x, e, 1) : p;
    }
    case OP_NZ4: {
        uint32_t x;
        memcpy(&x, v, 4);
        if (!x)
            return p;
        break;
    }
    case OP_NZ8: {
        uint64_t x;
        memcpy(&x, v, 8);
        if (!x)
            return p;
        break;
    }
    case OP_BYTES:
        if (!((const ProtobufCBinaryData *)v)->len)
            return p;
        break;
    case OP_NONNULL:
        if (!*(void *const *)v)
            return p;
        break;
    case OP_STRING_WIDE: {
        const char *s = *(char *const *)v;
        if (!s || !s[0])
            return p;
        break;
    }
    case OP_CASE:
        if (MEMBER(m, e->qoffset, uint32_t) != e->id)
            return p;
        break;
    case OP_HAS:
        if (!MEMBER(m, e->qoffset, protobuf_c_boolean))
            return p;
        break;
    case OP_ALWAYS: break;
    case OP_ONEOF: { /* the member named, if in this run: always written */
        uint32_t c = MEMBER(m, e->qoffset, uint32_t);
        const enc_field *f = c >= e->lo && c <= e->id ? member_of(e->oneof, c) : NULL;
        if (!f)
            return p;
        v = m + f->offset;
        if (f->op == OP_SUB)
            return put_sub(p, start, *(ProtobufCMessage *const *)v, f, 1);
        return put_tagged(p, start, f, v);
    }
    default: { /* OP_REPEATED, OP_PACKED, OP_MAP */
        size_t n = MEMBER(m, e->qoffset, size_t);
        if (n == 1 && e->op == OP_MAP)
            return put_map1(p, start, e, **(ProtobufCMessage *const *const *)v);
        return n ? put_repeated(p, start, e, *(void *const *)v, n) : p;
    }
    }
    return put_tagged(p, start, e, v);
}

/* m's fields in descending order. Without a plan, each field's entry is
 * worked out as it is written. */
static inline __attribute__((always_inline)) uint8_t *
put_fields(uint8_t *p, const uint8_t *start, const ProtobufCMessage *m, const enc_plan *plan)
{
    const char *mp = (const char *)m;
    if (!plan) {
        const ProtobufCMessageDescriptor *d = m->descriptor;
        for (unsigned i = d->n_fields; i-- > 0;) {
            enc_field e;
            fill_field(&e, &d->fields[i], 0);
            p = put_field(p, start, mp, &e);
        }
        return p;
    }
    /* A field whose quick test passes is not written, and costs no more.
     * A write that does not fit writes nothing, so the walk need not stop
     * early: the result is thrown away. The table's end is held in a
     * local: the bytes written could be the plan's, for all the compiler
     * knows, so it would load it again after every field. */
    for (const enc_field *e = plan->fields, *const end = plan->end; e != end; e++) {
        uint64_t w;
        memcpy(&w, mp + e->test, 8);
        if ((w & e->mask) != e->absent)
            p = put_field(p, start, mp, e);
    }
    return p;
}

/* m: its unknown fields first, last one first, then its fields in
 * descending order, so that the bytes read fields ascending, then the
 * unknown fields in received order. plan is m's (or NULL). */
static uint8_t *put_msg(uint8_t *p, const uint8_t *start, const ProtobufCMessage *m,
                        const enc_plan *plan)
{
    for (unsigned i = m->n_unknown_fields; i-- > 0;) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
        p = put_bytes(p, start, u->data, u->len);
        p = put_varint(p, start, ((uint64_t)u->tag << 3) | (uint64_t)u->wire_type);
    }
    return put_fields(p, start, m, plan);
}

/* Writes m at the end of [buf, buf + cap); returns where its bytes start,
 * or NULL when they do not fit. */
static inline uint8_t *write_back(const ProtobufCMessage *m, uint8_t *buf, size_t cap)
{
    if (!__atomic_load_n(&plans_built, __ATOMIC_ACQUIRE))
        pthread_once(&plans_once, build_plans);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    /* BusPacket's plan is the first one built. */
    const enc_plan *plan = d == CAP_PACKET_DESC && plans.n_plans ? &plans.plans[0] : plan_of(d, 0);
    overflowed = 0;
    uint8_t *p = put_msg(buf + cap, buf, m, plan);
    return overflowed ? NULL : p;
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

/* cap_encode_back when m does not fit *buf (or there is none): grows it
 * to m's exact size, where the bytes then start at its first byte. */
static __attribute__((noinline)) int encode_grown(const ProtobufCMessage *m, uint8_t **buf,
                                                  size_t *cap, const uint8_t **out, size_t *len)
{
    size_t n = msg_size(m);
    uint8_t *g = realloc(*buf, n ? n : 1);
    if (!g)
        return CAP_ENOMEM;
    *buf = g;
    *cap = n ? n : 1;
    write_back(m, g, n);
    *out = g + *cap - n; /* g, but for an empty m */
    *len = n;
    return CAP_OK;
}

int cap_encode_back(const ProtobufCMessage *m, uint8_t **buf, size_t *cap, const uint8_t **out,
                    size_t *len)
{
    const uint8_t *at = *buf ? write_back(m, *buf, *cap) : NULL;
    if (!at)
        return encode_grown(m, buf, cap, out, len);
    *out = at;
    *len = (size_t)(*buf + *cap - at);
    return CAP_OK;
}

int cap_encode_to(const ProtobufCMessage *m, uint8_t **buf, size_t *cap, size_t *len)
{
    const uint8_t *at;
    int rc = cap_encode_back(m, buf, cap, &at, len);
    if (rc == CAP_OK && at != *buf)
        memmove(*buf, at, *len);
    return rc;
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
