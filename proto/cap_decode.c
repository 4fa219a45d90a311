/* Strict CAP packet decoder: a schema-driven wire scan, then a table-driven
 * unpack into protobuf-c's structures, then the envelope rules. See
 * cap_decode.h. */
#include "cap_decode.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_arena.h"
#include "cap_copy.h"
#include "cap_swar.h"
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

/* --- scan tables ----------------------------------------------------------
 * What the scan needs to know about each field (its wire type, how its
 * value is checked, map-ness, its oneof, ...) is derived from the protobuf-c
 * descriptors once, for every message reachable from BusPacket, so that the
 * per-field work of a scan is a table look-up instead of descriptor walks
 * and string compares. */

/* How a field's value is checked. */
typedef enum {
    KIND_ANY_VARINT, /* int64, uint64, sint64: every value fits */
    KIND_INT32,      /* int32, enum */
    KIND_UINT32,     /* uint32, sint32 */
    KIND_BOOL,
    KIND_TS_SECONDS, /* google.protobuf.Timestamp.seconds */
    KIND_TS_NANOS,   /* google.protobuf.Timestamp.nanos */
    KIND_FIXED,      /* 32- and 64-bit scalars: framing only */
    KIND_STRING,
    KIND_BYTES,
    KIND_MESSAGE,
} value_kind;

typedef struct scan_msg scan_msg;

typedef struct {
    const ProtobufCFieldDescriptor *desc;
    const scan_msg *sub; /* message fields: the table of the message type */
    uint8_t index;       /* in desc's message */
    uint8_t kind;        /* value_kind */
    uint8_t wire_type;   /* the schema's (packing aside) */
    uint8_t repeated;
    uint8_t packable;    /* repeated scalar: a packed run is accepted too */
    uint8_t is_map;      /* repeated map entries */
    uint8_t oneof;       /* 0, or 1 + the index of its oneof in the message */
    uint8_t payload;     /* oneof member numbered >= PAYLOAD_MIN_FIELD */
    uint8_t trust;       /* BusPacket's trust payloads: always scanned strictly */
    uint8_t elem_size;   /* repeated: bytes of one array element (as protobuf-c lays it out) */
    uint8_t type;        /* desc->type, and desc's offsets: where a value is stored */
    uint8_t has_flag;    /* an optional scalar with a has_ member at quantifier_offset */
    /* Outside any oneof, without a has_ member, not repeated and not a
     * map entry's key: a string (1) or a varint scalar (2), which
     * scan_fields takes on a shorter path; else 0. */
    uint8_t plain;
    uint8_t present;     /* a oneof member or has_flag: storing it marks it present */
    /* A varint the scan accepted is stored as its low 4 bytes (int32,
     * uint32, enum, bool: in range, and a bool 0 or 1), or as 8 bytes
     * (int64, uint64): 4 or 8; else (zigzag) 0, by store_varint. */
    uint8_t vstore;
    uint32_t id;         /* desc->id */
    uint64_t bit;        /* 1 << index: the field's bit in a frame's seen */
    uint64_t once;       /* bit for a singular field, 0 for a repeated one */
    uint32_t offset, quantifier_offset;
} field_info;

/* field_info.plain */
#define PLAIN_STRING 1
#define PLAIN_VARINT 2

/* fi->plain when a value of wire type wt takes its shorter path, else 0. */
static unsigned plain_kind(const field_info *fi, unsigned wt)
{
    if (fi->plain == PLAIN_STRING && wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
        return PLAIN_STRING;
    if (fi->plain == PLAIN_VARINT && wt == PROTOBUF_C_WIRE_TYPE_VARINT)
        return PLAIN_VARINT;
    return 0;
}

/* Wire types 0, 1, 2 and 5, as a bit set. */
#define VALID_WIRE_TYPES 0x27u

/* Direct look-up of field numbers below this; higher ones go through the
 * descriptor's ranges. Every CAP field number is far below it. */
#define DIRECT_NUMBERS 64

struct scan_msg {
    const ProtobufCMessageDescriptor *desc;
    const field_info *fields;   /* by field index */
    const uint8_t *by_number;   /* field number -> 1 + field index, 0: unknown */
    unsigned n_direct;          /* numbers 0 .. n_direct-1 are in by_number */
    uint64_t rep_mask;          /* bit i: field i is repeated */
    uint64_t key_bit;           /* the bit of the field numbered 1 (a map entry's key), or 0 */
    int leaf;                   /* every field plain (field_info.plain): see scan_leaf */
    /* Set when the message has more fields or oneofs than a scan can
     * track: scanning it then fails. */
    const char *unsupported; /* "fields", "oneofs" */
    int unsupported_limit;
    /* By one-byte tag (field number below 16): its field, NULL when the
     * number is unknown or the wire type not one of 0, 1, 2, 5; and the
     * field's plain kind when the wire type is that kind's, else 0 (see
     * field_info.plain). Kept in the table itself: one load finds each. */
    const field_info *tag_field[128];
    uint8_t tag_plain[128];
};

/* Room for the CAP schema (29 message types reachable from BusPacket, some
 * 200 fields) four times over; should it ever not fit, every scan fails
 * with CAP_EINVAL. */
#define MAX_MESSAGES 128
#define MAX_FIELD_INFOS 1024

static struct {
    scan_msg msgs[MAX_MESSAGES];
    field_info infos[MAX_FIELD_INFOS];
    uint8_t numbers[MAX_MESSAGES * DIRECT_NUMBERS];
    unsigned n_msgs, n_infos, n_numbers;
    const scan_msg *root; /* BusPacket's; NULL when the tables did not fit */
} tables;

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

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

static value_kind kind_of(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f)
{
    if (cap_desc_is_timestamp(d) && f->id == 1)
        return KIND_TS_SECONDS;
    if (cap_desc_is_timestamp(d) && f->id == 2)
        return KIND_TS_NANOS;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM: return KIND_INT32;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_SINT32: return KIND_UINT32;
    case PROTOBUF_C_TYPE_BOOL: return KIND_BOOL;
    case PROTOBUF_C_TYPE_STRING: return KIND_STRING;
    case PROTOBUF_C_TYPE_BYTES: return KIND_BYTES;
    case PROTOBUF_C_TYPE_MESSAGE: return KIND_MESSAGE;
    default:
        return cap_wire_type_of(f->type) == PROTOBUF_C_WIRE_TYPE_VARINT ? KIND_ANY_VARINT
                                                                        : KIND_FIXED;
    }
}

static const scan_msg *table_for(const ProtobufCMessageDescriptor *d);

/* The oneofs of one message, told apart by the case member their fields
 * share: returns 1 + the index of the oneof of case offset off, 0 when the
 * message has more than MAX_ONEOFS. */
typedef struct {
    unsigned case_offset[MAX_ONEOFS];
    unsigned n;
} oneof_set;

static unsigned oneof_slot(oneof_set *s, unsigned off)
{
    for (unsigned o = 0; o < s->n; o++)
        if (s->case_offset[o] == off)
            return o + 1;
    if (s->n == MAX_ONEOFS)
        return 0;
    s->case_offset[s->n++] = off;
    return s->n;
}

/* Fills the info of field i of m; 0 when the tables are full. */
static int fill_field(scan_msg *m, oneof_set *oneofs, field_info *fi, unsigned i)
{
    const ProtobufCMessageDescriptor *d = m->desc;
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    fi->desc = f;
    fi->index = (uint8_t)i;
    fi->kind = (uint8_t)kind_of(d, f);
    fi->wire_type = (uint8_t)cap_wire_type_of(f->type);
    fi->repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    fi->packable = fi->repeated && fi->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    fi->sub = NULL;
    fi->is_map = 0;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        fi->is_map = fi->repeated && cap_desc_is_map_entry(f->descriptor);
        fi->sub = table_for(f->descriptor);
        if (!fi->sub)
            return 0;
    }
    fi->oneof = 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        fi->oneof = (uint8_t)oneof_slot(oneofs, f->quantifier_offset);
        if (!fi->oneof) {
            m->unsupported = "oneofs";
            m->unsupported_limit = MAX_ONEOFS;
        }
    }
    fi->payload = fi->oneof && f->id >= PAYLOAD_MIN_FIELD;
    fi->trust = d == CAP_PACKET_DESC && f->id >= TRUST_MIN_FIELD && f->id <= TRUST_MAX_FIELD;
    fi->elem_size = (uint8_t)cap_field_elem_size(f->type);
    fi->type = (uint8_t)f->type;
    fi->offset = f->offset;
    fi->quantifier_offset = f->quantifier_offset;
    fi->id = f->id;
    fi->bit = 1ULL << i;
    fi->once = fi->repeated ? 0 : fi->bit;
    fi->has_flag = !fi->oneof && f->quantifier_offset && f->label == PROTOBUF_C_LABEL_OPTIONAL;
    fi->present = fi->oneof || fi->has_flag;
    fi->plain = 0;
    int key = f->id == 1 && cap_desc_is_map_entry(d);
    if (!fi->present && !fi->repeated && !key && fi->kind == KIND_STRING)
        fi->plain = PLAIN_STRING;
    else if (!fi->present && !fi->repeated && !key &&
             fi->wire_type == PROTOBUF_C_WIRE_TYPE_VARINT)
        fi->plain = PLAIN_VARINT;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_BOOL: fi->vstore = 4; break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64: fi->vstore = 8; break;
    default: fi->vstore = 0; break;
    }
    if (fi->repeated)
        m->rep_mask |= 1ULL << i;
    return 1;
}

/* The table of message type d, built on first use (a message is registered
 * before its fields, so recursive types end). NULL when the tables are full. */
static const scan_msg *table_for(const ProtobufCMessageDescriptor *d)
{
    for (unsigned i = 0; i < tables.n_msgs; i++)
        if (tables.msgs[i].desc == d)
            return &tables.msgs[i];
    if (tables.n_msgs == MAX_MESSAGES)
        return NULL;
    scan_msg *m = &tables.msgs[tables.n_msgs++];
    m->desc = d;
    if (d->n_fields > MAX_FIELDS) {
        m->unsupported = "fields";
        m->unsupported_limit = MAX_FIELDS;
        return m;
    }
    if (tables.n_infos + d->n_fields > MAX_FIELD_INFOS)
        return NULL;
    field_info *infos = &tables.infos[tables.n_infos];
    tables.n_infos += d->n_fields;
    m->fields = infos;

    unsigned max_num = 0;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id > max_num)
            max_num = d->fields[i].id;
    m->n_direct = max_num < DIRECT_NUMBERS ? max_num + 1 : DIRECT_NUMBERS;
    uint8_t *numbers = &tables.numbers[tables.n_numbers];
    tables.n_numbers += m->n_direct;
    m->by_number = numbers;
    oneof_set oneofs = {.n = 0};
    m->leaf = 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (!fill_field(m, &oneofs, &infos[i], i))
            return NULL;
        m->leaf &= infos[i].plain != 0;
        unsigned id = d->fields[i].id;
        if (id == 1)
            m->key_bit = 1ULL << i;
        if (id < m->n_direct)
            numbers[id] = (uint8_t)(i + 1);
        if (id < 16)
            for (unsigned wt = 0; wt < 8; wt++)
                if ((VALID_WIRE_TYPES >> wt) & 1) {
                    m->tag_field[id << 3 | wt] = &infos[i];
                    m->tag_plain[id << 3 | wt] = (uint8_t)plain_kind(&infos[i], wt);
                }
    }
    return m;
}

static void build_tables(void)
{
    tables.root = table_for(CAP_PACKET_DESC);
}

static inline __attribute__((always_inline)) const field_info *lookup_field(const scan_msg *m,
                                                                             uint64_t num)
{
    if (num < m->n_direct) {
        unsigned slot = m->by_number[num];
        return slot ? &m->fields[slot - 1] : NULL;
    }
    const ProtobufCFieldDescriptor *f = find_field(m->desc, num);
    return f ? &m->fields[f - m->desc->fields] : NULL;
}

/* --- the scan ------------------------------------------------------------- */

#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LIKELY(x) __builtin_expect(!!(x), 1)

/* The scan builds the packet as it goes (see wire_scan), with the
 * unpack's blocks, defined with the unpack below. */
#define UNPACK_UNSUPPORTED 1 /* an unknown field, or bytes the scan refuses */

typedef struct {
    const uint8_t *buf;
    ProtobufCAllocator *alloc; /* NULL: malloc and free, protobuf-c's default */
    cap_arena *arena;          /* alloc's arena when it is one: allocated from inline */
} unpack_ctx;

static inline void *u_alloc(unpack_ctx *u, size_t n);
static void u_free(const unpack_ctx *u, void *p);
static inline void store_scanned_varint(const field_info *fi, uint64_t v, void *dst);
static inline void store_fixed(uint32_t wt, const uint8_t *p, void *dst);
static inline int copy_string(unpack_ctx *u, size_t at, size_t n, void *dst);
static inline int copy_bytes(unpack_ctx *u, size_t at, size_t n, void *dst);
static inline void mark_present(const field_info *fi, ProtobufCMessage *msg);
static inline int new_message(unpack_ctx *u, const scan_msg *m, ProtobufCMessage **out);
static int new_array(unpack_ctx *u, const field_info *fi, ProtobufCMessage *msg, size_t n);

/* The key of one map entry: its encoded value bytes, which compare equal
 * exactly when the keys are equal, since encodings are held minimal. */
typedef struct {
    unsigned field;  /* index of the map field in its message */
    size_t off, len; /* key bytes in the input (len 0: the default key) */
} map_key;

/* An entry of a repeated field, built before its message's arrays are:
 * those are allocated with exactly the room of their entries (as
 * protobuf-c allocates them) when the message ends, and its entries moved
 * there. */
typedef struct {
    const field_info *fi;
    union {
        void *p; /* a string, a submessage */
        ProtobufCBinaryData bytes;
        unsigned char value[16]; /* elem_size bytes, as the array holds it */
    } u;
} pending;

/* Entries the scan holds at once (those of the messages being built);
 * a packet with more is built by the byte walk instead. */
#define PENDING_MAX 64

typedef struct {
    const uint8_t *buf;
    const cap_bounds *bounds;
    size_t max_string;    /* bounds->max_string */
    unsigned depth_limit; /* bounds->max_depth, at most CAP_MAX_DEPTH_LIMIT */
    cap_diag *diag;
    /* Building (see wire_scan): while `build` is set, each value accepted
     * is stored into the packet at `root` (NULL until allocated), or into
     * pend[0..n_pend) for a repeated field. Building stops for good
     * (stop_building) on an unknown field, an allocation failure
     * (build_failed CAP_ENOMEM) or bytes the decoder does not build itself
     * (UNPACK_UNSUPPORTED); the scan goes on. */
    unpack_ctx u;
    int build;
    int build_failed;
    ProtobufCMessage *root;
    size_t n_pend;
    pending pend[PENDING_MAX];
    /* The fields being scanned, outermost first: the path of an error is
     * built from stack[0..top) only when there is an error. A message at
     * depth d sets stack[d] and top = d + 1 for each known field, and sets
     * top back to d only on the rare paths that can fail outside a field
     * (a tag read over several bytes, a bad tag, an unknown field); a
     * submessage sets top back to its field's when it ends. */
    const field_info *stack[CAP_MAX_DEPTH_LIMIT];
    unsigned top;
    /* Keys of the map entries of the messages being scanned, to refuse
     * duplicates (protobuf would silently keep the last); innermost message
     * last, each drops its own when it ends. */
    map_key *keys;
    size_t n_keys, cap_keys;
    map_key local_keys[32];
    /* Top level only. */
    uint32_t payload_field;          /* known payload member seen */
    uint32_t unknown_payload_field;  /* first unknown LEN field >= 10 */
    long first_unknown_offset;       /* first unknown top-level field */
    uint32_t first_unknown_field;
    int saw_unknown;                 /* an unknown field at any depth */
} scan_ctx;

/* One message being scanned. */
typedef struct {
    const scan_msg *m;
    unsigned depth;
    int strict;
    uint64_t seen;                    /* bit i: field index i has appeared */
    size_t counts[MAX_FIELDS];        /* entries of repeated field i, once seen */
    unsigned oneofs_seen;             /* bit o: a member of oneof o has appeared */
    uint8_t oneof_member[MAX_ONEOFS]; /* its field index */
    size_t keys_base;                 /* this message's keys: keys[keys_base..n_keys) */
    int keys_unsorted;                /* sorted keys are checked in one pass */
    map_key *entry_key;               /* a map entry: where its key goes, else NULL */
    uint64_t key_bit;                 /* a map entry: its key field's bit (m->key_bit), else 0 */
    /* While building: the message its values go to, and its first
     * pending entry (of its repeated fields). */
    ProtobufCMessage *msg;
    size_t pend_base;
} frame;

/* Errors are rare: kept out of the scan's hot paths. */
static int fail(scan_ctx *c, int err, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), cold, noinline));

/* Writes "BusPacket.a.b" for the first n entries of a field stack. */
static void format_path(char *out, size_t cap, const field_info *const *stack, unsigned n)
{
    size_t len = (size_t)snprintf(out, cap, "BusPacket");
    for (unsigned i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, ".%s", stack[i]->desc->name);
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

/* Stops building for good: frees what was built, notes why (CAP_ENOMEM,
 * or UNPACK_UNSUPPORTED for an unknown field or bytes the decoder does not
 * build). Every value stored after this tests c->build first. */
static void __attribute__((cold, noinline)) stop_building(scan_ctx *c, int why)
{
    if (!c->build)
        return;
    c->build = 0;
    c->build_failed = why;
    for (size_t i = 0; i < c->n_pend; i++) {
        const pending *e = &c->pend[i];
        switch (e->fi->kind) {
        case KIND_STRING: u_free(&c->u, e->u.p); break;
        case KIND_BYTES: u_free(&c->u, e->u.bytes.data); break;
        case KIND_MESSAGE:
            protobuf_c_message_free_unpacked(e->u.p, c->u.alloc);
            break;
        default: break;
        }
    }
    c->n_pend = 0;
    if (c->root)
        protobuf_c_message_free_unpacked(c->root, c->u.alloc);
    c->root = NULL;
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

/* Tags, lengths and small values are one byte: that case stays inline.
 * Longer varints of up to nine bytes (timestamps' seconds and nanos, 63
 * bits at most) that end inside the buffer with a nonzero last byte are
 * read inline too: every such encoding is one cap_varint_read accepts,
 * with the same value. Anything else (ten bytes, truncation, a zero last
 * byte) goes to cap_varint_read, which accepts or names the error. */
static inline int read_varint(scan_ctx *c, size_t *pos, size_t end, uint64_t *v, const char *what)
{
    size_t p = *pos;
    if (p < end && c->buf[p] < 0x80) {
        *v = c->buf[p];
        *pos = p + 1;
        return CAP_OK;
    }
    size_t stop = end - p > 9 ? p + 9 : end;
    uint64_t x = 0;
    for (unsigned shift = 0; p < stop; shift += 7) {
        uint8_t b = c->buf[p++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            if (b == 0)
                break; /* not minimal: the slow path says so */
            *v = x;
            *pos = p;
            return CAP_OK;
        }
    }
    return read_varint_slow(c, pos, end, v, what);
}

/* Checks a varint value against its field: the C type's range, and the
 * Timestamp limits of the JSON mapping (0001-01-01 to 9999-12-31, nanos
 * 0..999999999). */
static inline int check_varint_value(scan_ctx *c, value_kind kind, uint64_t v, size_t off)
{
    int64_t sv = (int64_t)v;
    switch (kind) {
    case KIND_INT32:
    case KIND_TS_NANOS:
        if (UNLIKELY(sv < INT32_MIN || sv > INT32_MAX))
            return fail(c, CAP_EMALFORMED, off, "value %lld does not fit int32", (long long)sv);
        if (UNLIKELY(kind == KIND_TS_NANOS && (sv < 0 || sv > 999999999)))
            return fail(c, CAP_EMALFORMED, off, "timestamp nanos %lld outside 0..999999999",
                        (long long)sv);
        return CAP_OK;
    case KIND_UINT32:
        if (UNLIKELY(v > UINT32_MAX))
            return fail(c, CAP_EMALFORMED, off, "value %llu does not fit 32 bits",
                        (unsigned long long)v);
        return CAP_OK;
    case KIND_BOOL:
        if (UNLIKELY(v > 1))
            return fail(c, CAP_EMALFORMED, off, "bool encoded as %llu (must be 0 or 1)",
                        (unsigned long long)v);
        return CAP_OK;
    case KIND_TS_SECONDS:
        if (UNLIKELY(sv < -62135596800LL || sv > 253402300799LL))
            return fail(c, CAP_EMALFORMED, off,
                        "timestamp seconds %lld outside 0001-01-01..9999-12-31", (long long)sv);
        return CAP_OK;
    default: return CAP_OK;
    }
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

/* True when buf[pos..pos+n) is ASCII without NUL, which is valid text;
 * false means "not known", and the full UTF-8 check decides. Eight bytes at
 * a time, the flags of all the words gathered and tested once: the words
 * from the string's start, the last one ending at its end (it overlaps the
 * one before unless n is a multiple of 8; bytes tested twice change
 * nothing). A string under 8 bytes is tested in the word that ends at its
 * end and starts earlier in the packet, its leading bytes (checked
 * already, or not part of the string) masked off; such strings within the
 * packet's first 8 bytes take the full check. */
static inline int plain_ascii_text(const uint8_t *buf, size_t pos, size_t n)
{
    uint64_t w, flags;
    if (n >= 8) {
        const uint8_t *s = buf + pos, *last = buf + pos + n - 8;
        /* A high bit set, or a zero byte (its flag is exact; a borrow can
         * only flag more bytes of the same word, which errs towards the
         * full check). */
        flags = 0;
        for (; s < last; s += 8) {
            memcpy(&w, s, 8);
            flags |= cap_swar_high_or_zero(w);
        }
        memcpy(&w, last, 8);
        flags |= cap_swar_high_or_zero(w);
        return (flags & CAP_SWAR_HIGHS) == 0;
    }
    if (n == 0)
        return 1;
    if (pos + n < 8)
        return 0;
    memcpy(&w, buf + pos + n - 8, 8);
    flags = cap_swar_high_or_zero(w) & CAP_SWAR_HIGHS;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    flags &= UINT64_MAX >> (8 * (8 - n)); /* leading bytes are the high ones */
#else
    flags &= UINT64_MAX << (8 * (8 - n)); /* leading bytes are the low ones */
#endif
    return flags == 0;
}

/* The full check of a string that is not plain ASCII. protobuf-c holds
 * strings as C strings: a NUL would silently cut the value, so the packet
 * could not be re-encoded faithfully. */
static int __attribute__((noinline)) check_text(scan_ctx *c, size_t pos, size_t n)
{
    size_t bad = cap_utf8_check_text(c->buf + pos, n);
    if (bad != CAP_UTF8_VALID)
        return fail(c, CAP_EMALFORMED, pos + bad, "%s",
                    c->buf[pos + bad] ? "string is not valid UTF-8" : "string contains a NUL byte");
    return CAP_OK;
}

/* Where the next entry of repeated field fi goes while building: a new
 * pending entry (no block in it yet), or NULL when there is no room
 * (building stops). */
static inline void *pend_entry(scan_ctx *c, const field_info *fi)
{
    if (UNLIKELY(c->n_pend == PENDING_MAX)) {
        stop_building(c, UNPACK_UNSUPPORTED);
        return NULL;
    }
    pending *e = &c->pend[c->n_pend++];
    e->fi = fi;
    memset(&e->u, 0, sizeof e->u);
    return &e->u;
}

/* Scans (and while building, stores) a packed run of scalars; returns the
 * number of elements in *count. */
static int scan_packed(scan_ctx *c, const field_info *fi, size_t pos, size_t end, size_t *count)
{
    size_t n = 0;
    void *slot;
    if (fi->wire_type != PROTOBUF_C_WIRE_TYPE_VARINT) {
        size_t w = fi->wire_type == PROTOBUF_C_WIRE_TYPE_32BIT ? 4 : 8;
        if ((end - pos) % w)
            return fail(c, CAP_EMALFORMED, pos, "packed run of %zu bytes is not a multiple of %zu",
                        end - pos, w);
        *count = (end - pos) / w;
        for (; pos < end && c->build && (slot = pend_entry(c, fi)); pos += w)
            store_fixed(fi->wire_type, c->buf + pos, slot);
        return CAP_OK;
    }
    while (pos < end) {
        uint64_t v;
        size_t at = pos;
        int rc = read_varint(c, &pos, end, &v, "packed element");
        if (rc)
            return rc;
        rc = check_varint_value(c, fi->kind, v, at);
        if (rc)
            return rc;
        if (c->build && (slot = pend_entry(c, fi)))
            store_scanned_varint(fi, v, slot);
        n++;
    }
    *count = n;
    return CAP_OK;
}

static int key_cmp(const uint8_t *buf, const map_key *a, const map_key *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int r = n ? memcmp(buf + a->off, buf + b->off, n) : 0;
    return r ? r : (a->len > b->len) - (a->len < b->len);
}

/* Notes the key (field 1) of the map entry being scanned: its value bytes
 * at [pos, end). */
static void note_entry_key(const uint8_t *buf, map_key *k, uint32_t wt, size_t pos, size_t end)
{
    k->off = pos;
    k->len = end - pos;
    /* A written zero and an absent key are the same key. */
    if (wt != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
        size_t z = 0;
        while (z < k->len && buf[pos + z] == 0)
            z++;
        if (z == k->len)
            k->len = 0;
    }
}

/* Adds the key of a map entry just scanned to its message's keys, noting
 * whether the keys of that map are still in increasing order. */
static int record_key(scan_ctx *c, frame *fr, const map_key *k, size_t pos)
{
    if (c->n_keys == c->cap_keys) {
        size_t cap = 2 * c->cap_keys;
        map_key *nk = malloc(cap * sizeof *nk);
        if (!nk)
            return fail(c, CAP_ENOMEM, pos, "out of memory");
        memcpy(nk, c->keys, c->n_keys * sizeof *nk);
        if (c->keys != c->local_keys)
            free(c->keys);
        c->keys = nk;
        c->cap_keys = cap;
    }
    for (size_t i = c->n_keys; i-- > fr->keys_base;) {
        if (c->keys[i].field != k->field)
            continue;
        if (key_cmp(c->buf, &c->keys[i], k) >= 0)
            fr->keys_unsorted = 1;
        break;
    }
    c->keys[c->n_keys++] = *k;
    return CAP_OK;
}

/* Out-of-order keys: compare every pair of the same map (bounded by
 * max_entries per map). */
static int check_duplicate_keys(scan_ctx *c, const frame *fr)
{
    const map_key *keys = c->keys;
    for (size_t i = fr->keys_base; i < c->n_keys; i++)
        for (size_t j = i + 1; j < c->n_keys; j++) {
            const map_key *a = &keys[i], *b = &keys[j];
            if (a->field != b->field || key_cmp(c->buf, a, b) != 0)
                continue;
            c->stack[fr->depth] = &fr->m->fields[a->field];
            c->top = fr->depth + 1;
            return fail(c, CAP_EMALFORMED, b->off, "duplicate map key \"%.*s\"",
                        (int)(b->len < 64 ? b->len : 64), (const char *)c->buf + b->off);
        }
    return CAP_OK;
}

static int scan_message(scan_ctx *c, const scan_msg *m, size_t pos, size_t end, unsigned depth,
                        int strict, map_key *entry_key, ProtobufCMessage **out);
static int scan_leaf(scan_ctx *c, const scan_msg *m, size_t pos, size_t end, unsigned depth,
                     int strict, ProtobufCMessage **out);

/* Scans the message value of field fi at [pos, end), built (while
 * building) into *out; a map entry's key is recorded in its map's message. */
static int scan_submessage(scan_ctx *c, frame *fr, const field_info *fi, size_t pos, size_t end,
                           ProtobufCMessage **out)
{
    unsigned depth = fr->depth + 1;
    if (depth >= c->depth_limit)
        return fail(c, CAP_EMALFORMED, pos, "messages nested deeper than %u",
                    c->bounds->max_depth);
    /* Trust payloads are always held to the strict rules. */
    int strict = fr->strict || (fr->depth == 0 && fi->trust);
    int rc;
    if (!fi->is_map) {
        rc = fi->sub->leaf ? scan_leaf(c, fi->sub, pos, end, depth, strict, out)
                           : scan_message(c, fi->sub, pos, end, depth, strict, NULL, out);
        c->top = depth; /* this field's path again (see scan_ctx.stack) */
        return rc;
    }
    /* Absent, the key is the default one, placed at the entry. */
    map_key k = {.field = fi->index, .off = pos, .len = 0};
    rc = scan_message(c, fi->sub, pos, end, depth, strict, &k, out);
    c->top = depth;
    return rc ? rc : record_key(c, fr, &k, pos);
}

/* Scans a length-delimited value of a known field at [pos, end), stored
 * at dst while building (a packed run finds its elements itself);
 * *elements is how many entries it adds to a repeated field. */
static inline int scan_len_value(scan_ctx *c, frame *fr, const field_info *fi, size_t pos,
                                 size_t end, void *dst, size_t *elements)
{
    size_t n = end - pos;
    int rc;
    *elements = 1;
    switch (fi->kind) {
    case KIND_STRING:
        if (UNLIKELY(n > c->max_string))
            return fail(c, CAP_EMALFORMED, pos, "string of %zu bytes, over the bound of %zu", n,
                        c->bounds->max_string);
        rc = plain_ascii_text(c->buf, pos, n) ? CAP_OK : check_text(c, pos, n);
        if (!rc && c->build && copy_string(&c->u, pos, n, dst))
            stop_building(c, CAP_ENOMEM);
        return rc;
    case KIND_BYTES:
        if (UNLIKELY(n > c->max_string))
            return fail(c, CAP_EMALFORMED, pos, "bytes field of %zu bytes, over the bound of %zu",
                        n, c->bounds->max_string);
        if (c->build && copy_bytes(&c->u, pos, n, dst))
            stop_building(c, CAP_ENOMEM);
        return CAP_OK;
    case KIND_MESSAGE: return scan_submessage(c, fr, fi, pos, end, dst);
    default:
        /* A packed run of a repeated scalar. */
        return scan_packed(c, fi, pos, end, elements);
    }
}

/* Records a oneof member; fails if another member of the same oneof was seen. */
static int tally_oneof(scan_ctx *c, frame *fr, const field_info *fi, size_t off)
{
    unsigned o = fi->oneof - 1u;
    if (!(fr->oneofs_seen & (1u << o))) {
        fr->oneofs_seen |= 1u << o;
        fr->oneof_member[o] = fi->index;
        return CAP_OK;
    }
    if (fr->oneof_member[o] == fi->index)
        return CAP_OK; /* the same member twice: caught as a repeat */
    const ProtobufCFieldDescriptor *g = fr->m->fields[fr->oneof_member[o]].desc;
    return fail(c, CAP_EMALFORMED, off, "two members of one oneof: %s (%u) and %s (%u)", g->name,
                g->id, fi->desc->name, fi->desc->id);
}

static int __attribute__((noinline))
scan_unknown(scan_ctx *c, const frame *fr, uint32_t num, uint32_t wt, size_t tag_off, size_t *pos,
             size_t end)
{
    if (fr->strict && fr->depth > 0)
        return fail(c, CAP_EMALFORMED, tag_off, "unknown field %u (strict mode)", num);
    c->saw_unknown = 1;
    stop_building(c, UNPACK_UNSUPPORTED); /* protobuf-c keeps it in unknown_fields */
    int rc = skip_value(c, wt, pos, end);
    if (rc || fr->depth > 0)
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

/* Counts the entries of a repeated field against max_entries. */
static int count_entries(scan_ctx *c, frame *fr, const field_info *fi, size_t elements,
                         size_t tag_off)
{
    size_t n = elements;
    if (fr->seen & (1ULL << fi->index))
        n += fr->counts[fi->index];
    fr->counts[fi->index] = n;
    if (n > c->bounds->max_entries)
        return fail(c, CAP_EMALFORMED, tag_off, "%s %s has more than %zu entries",
                    fi->is_map ? "map" : "repeated field", fi->desc->name,
                    c->bounds->max_entries);
    return CAP_OK;
}

/* Scans the value of known field fi, whose tag (wire type wt) was at
 * tag_off; *pos is just past the tag. While building, the value is stored
 * once the scan has accepted it. */
static inline int scan_field(scan_ctx *c, frame *fr, const field_info *fi, uint32_t wt,
                             size_t tag_off, size_t *pos, size_t end)
{
    if (UNLIKELY(wt != fi->wire_type) &&
        !(fi->packable && wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED))
        return fail(c, CAP_EMALFORMED, tag_off, "wire type %u, the schema says %u", wt,
                    fi->wire_type);
    if (UNLIKELY(fr->seen & fi->once))
        return fail(c, CAP_EMALFORMED, tag_off, "field %u appears twice", fi->id);
    if (fi->oneof) {
        int rc = tally_oneof(c, fr, fi, tag_off);
        if (rc)
            return rc;
        if (fr->depth == 0 && fi->payload)
            c->payload_field = fi->id;
    }
    /* Where the value goes while building: the member, or a pending
     * entry (a packed run, the one way a wire type differs from the
     * schema's here, takes its entries itself). The member is marked
     * present first: should the value fail, it is still the zero of
     * message_init, which free_unpacked skips. */
    void *dst = NULL;
    if (c->build) {
        if (!fi->repeated) {
            if (fi->present)
                mark_present(fi, fr->msg);
            dst = (char *)fr->msg + fi->offset;
        } else if (wt == fi->wire_type) {
            dst = pend_entry(c, fi);
        }
    }
    size_t elements = 1;
    size_t vstart = *pos;
    int rc;
    if (wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
        uint64_t n;
        rc = read_varint(c, pos, end, &n, "length");
        if (rc)
            return rc;
        if (UNLIKELY(n > end - *pos))
            return fail(c, CAP_EMALFORMED, vstart, "length %llu runs past the end (%zu bytes left)",
                        (unsigned long long)n, end - *pos);
        vstart = *pos;
        *pos += (size_t)n;
        rc = scan_len_value(c, fr, fi, vstart, *pos, dst, &elements);
    } else if (wt == PROTOBUF_C_WIRE_TYPE_VARINT) {
        uint64_t v;
        rc = read_varint(c, pos, end, &v, "value");
        if (!rc)
            rc = check_varint_value(c, fi->kind, v, vstart);
        if (!rc && c->build)
            store_scanned_varint(fi, v, dst);
    } else {
        rc = skip_value(c, wt, pos, end);
        if (!rc && c->build)
            store_fixed(wt, c->buf + vstart, dst);
    }
    if (rc)
        return rc;
    if (UNLIKELY(fr->key_bit & fi->bit))
        note_entry_key(c->buf, fr->entry_key, wt, vstart, *pos);
    if (fi->repeated) {
        rc = count_entries(c, fr, fi, elements, tag_off);
        if (rc)
            return rc;
    }
    fr->seen |= fi->bit;
    return CAP_OK;
}

/* The most common field, a string outside any oneof given once, with a
 * one-byte length, within the bounds and plain ASCII: scanned and built
 * (into msg) here as scan_field would (fi->plain is PLAIN_STRING, the
 * caller checked the wire type and that the field is not seen, and marks
 * it seen), with nothing written unless all of that holds. Returns 0
 * otherwise, and scan_field then scans it (and names what is wrong, if
 * anything is). */
static inline __attribute__((always_inline)) int
scan_plain_string(scan_ctx *c, ProtobufCMessage *msg, const field_info *fi, size_t *pos,
                  size_t end)
{
    size_t p = *pos;
    if (p >= end || c->buf[p] >= 0x80)
        return 0;
    size_t n = c->buf[p++];
    if (n > end - p || n > c->max_string)
        return 0;
    /* Used while building only (msg is NULL otherwise: formed as an
     * integer, not as an offset from a null pointer). */
    void *dst = (void *)((uintptr_t)msg + fi->offset);
    if (n - 8 <= 8) {
        /* 8 to 16 bytes, most strings: checked as plain_ascii_text checks
         * them, in its first and last word, and copied from the same two
         * words. */
        uint64_t a, b;
        memcpy(&a, c->buf + p, 8);
        memcpy(&b, c->buf + p + n - 8, 8);
        if ((cap_swar_high_or_zero(a) | cap_swar_high_or_zero(b)) & CAP_SWAR_HIGHS)
            return 0;
        if (c->build) {
            char *d = u_alloc(&c->u, n + 1);
            if (d) {
                memcpy(d, &a, 8);
                memcpy(d + n - 8, &b, 8);
                d[n] = '\0';
                *(char **)dst = d;
            } else {
                stop_building(c, CAP_ENOMEM);
            }
        }
    } else {
        if (!plain_ascii_text(c->buf, p, n))
            return 0;
        if (c->build && copy_string(&c->u, p, n, dst))
            stop_building(c, CAP_ENOMEM);
    }
    *pos = p + n;
    return 1;
}

/* A varint scalar outside any oneof given once (fi->plain is
 * PLAIN_VARINT, the caller checked the wire type and that the field is
 * not seen, set the error path, and marks it seen): what scan_field does
 * for it, without the tests that cannot apply, in the same order, so that
 * an error is named as scan_field names it. Built into msg. */
static inline __attribute__((always_inline)) int
scan_plain_varint(scan_ctx *c, ProtobufCMessage *msg, const field_info *fi, size_t *pos,
                  size_t end)
{
    size_t vstart = *pos;
    uint64_t v;
    int rc = read_varint(c, pos, end, &v, "value");
    /* Values below 128, most of them, fit every kind but bool. */
    if (!rc && (v >= 0x80 || fi->kind == KIND_BOOL))
        rc = check_varint_value(c, fi->kind, v, vstart);
    if (rc)
        return rc;
    if (c->build)
        store_scanned_varint(fi, v, (char *)msg + fi->offset);
    return CAP_OK;
}

/* The tag errors, in the order they are checked. */
static int bad_tag(scan_ctx *c, uint64_t num, uint32_t wt, size_t tag_off)
{
    if (num == 0 || num > 0x1FFFFFFF)
        return fail(c, CAP_EMALFORMED, tag_off, "invalid field number %llu",
                    (unsigned long long)num);
    /* 3 and 4 are the deprecated group markers; 6 and 7 do not exist. */
    if (wt == 3 || wt == 4)
        return fail(c, CAP_EMALFORMED, tag_off, "field %llu: groups are not allowed",
                    (unsigned long long)num);
    return fail(c, CAP_EMALFORMED, tag_off, "field %llu: invalid wire type %u",
                (unsigned long long)num, wt);
}

static int scan_fields(scan_ctx *c, frame *fr, size_t pos, size_t end)
{
    unsigned depth = fr->depth;
    while (pos < end) {
        size_t tag_off = pos;
        uint64_t tag;
        uint32_t wt;
        int rc;
        const field_info *fi;
        unsigned plain;
        /* The common case, a one-byte tag of a known field with a valid
         * wire type, in one look-up. */
        unsigned tag0 = c->buf[pos];
        fi = tag0 < 0x80 ? fr->m->tag_field[tag0] : NULL;
        if (LIKELY(fi)) {
            wt = tag0 & 7u;
            pos++;
            plain = fr->m->tag_plain[tag0];
        } else {
            c->top = depth;
            rc = read_varint(c, &pos, end, &tag, "tag");
            if (rc)
                return rc;
            uint64_t num = tag >> 3;
            wt = (uint32_t)(tag & 7);
            if (UNLIKELY(num == 0 || num > 0x1FFFFFFF || !((VALID_WIRE_TYPES >> wt) & 1)))
                return bad_tag(c, num, wt, tag_off);
            fi = lookup_field(fr->m, num);
            if (!fi) {
                rc = scan_unknown(c, fr, (uint32_t)num, wt, tag_off, &pos, end);
                if (rc)
                    return rc;
                continue;
            }
            plain = plain_kind(fi, wt);
        }
        /* The shorter paths for the plain fields; the error path is set
         * only where something can fail (scan_plain_string cannot). */
        if (plain && !(fr->seen & fi->bit)) {
            if (plain == PLAIN_STRING) {
                if (scan_plain_string(c, fr->msg, fi, &pos, end)) {
                    fr->seen |= fi->bit;
                    continue;
                }
            } else {
                c->stack[depth] = fi;
                c->top = depth + 1;
                rc = scan_plain_varint(c, fr->msg, fi, &pos, end);
                if (rc)
                    return rc;
                fr->seen |= fi->bit;
                continue;
            }
        }
        c->stack[depth] = fi;
        c->top = depth + 1;
        rc = scan_field(c, fr, fi, wt, tag_off, &pos, end);
        if (rc)
            return rc;
    }
    return fr->keys_unsorted ? check_duplicate_keys(c, fr) : CAP_OK;
}

/* A message whose fields are all plain (scan_msg.leaf; a map entry's
 * never is), scanned as scan_message scans it but without a frame of its
 * own, for as long as each field is one scan_fields takes on a shorter
 * path: a one-byte tag of a plain field not seen yet, of the plain kind's
 * wire type, and a value that path accepts. At anything else, the message
 * is scanned again from its start by scan_message, what was built of it
 * freed first (the scan of the fields before changed nothing else). */
static int scan_leaf(scan_ctx *c, const scan_msg *m, size_t start, size_t end, unsigned depth,
                     int strict, ProtobufCMessage **out)
{
    ProtobufCMessage *msg = NULL;
    if (c->build) {
        int rc = new_message(&c->u, m, out);
        if (UNLIKELY(rc))
            stop_building(c, rc); /* which may free *out's message */
        else
            msg = *out;
    }
    uint64_t seen = 0;
    for (size_t pos = start; pos < end;) {
        unsigned tag0 = c->buf[pos];
        const field_info *fi = tag0 < 0x80 ? m->tag_field[tag0] : NULL;
        if (!fi || !m->tag_plain[tag0] || (seen & fi->bit))
            goto again;
        size_t p = pos + 1;
        if (m->tag_plain[tag0] == PLAIN_STRING) {
            if (!scan_plain_string(c, msg, fi, &p, end))
                goto again;
        } else {
            c->stack[depth] = fi;
            c->top = depth + 1;
            int rc = scan_plain_varint(c, msg, fi, &p, end);
            if (rc)
                return rc;
        }
        seen |= fi->bit;
        pos = p;
    }
    return CAP_OK;
again:
    if (c->build && msg) {
        protobuf_c_message_free_unpacked(msg, c->u.alloc);
        *out = NULL;
    }
    return scan_message(c, m, start, end, depth, strict, NULL, out);
}

/* The arrays of the repeated fields of the message fr built, each with
 * the room of its entries (counted by the scan), which are moved there
 * from pending. */
static void finish_arrays(scan_ctx *c, const frame *fr)
{
    const scan_msg *m = fr->m;
    ProtobufCMessage *msg = fr->msg;
    /* Every array first: should one fail, each entry is still pending
     * only, and freed from there. */
    for (uint64_t bits = m->rep_mask & fr->seen; bits; bits &= bits - 1) {
        unsigned i = (unsigned)__builtin_ctzll(bits);
        int rc = fr->counts[i] ? new_array(&c->u, &m->fields[i], msg, fr->counts[i]) : CAP_OK;
        if (rc) {
            stop_building(c, rc);
            return;
        }
    }
    for (size_t k = fr->pend_base; k < c->n_pend; k++) {
        const pending *e = &c->pend[k];
        const field_info *fi = e->fi;
        size_t *n = (size_t *)((char *)msg + fi->quantifier_offset);
        memcpy(*(char **)((char *)msg + fi->offset) + *n * fi->elem_size, &e->u, fi->elem_size);
        ++*n;
    }
    c->n_pend = fr->pend_base;
}

/* Scans one message at [pos, end), built (while building) into a new
 * *out; for a map entry, its key goes to *entry_key. */
static int scan_message(scan_ctx *c, const scan_msg *m, size_t pos, size_t end, unsigned depth,
                        int strict, map_key *entry_key, ProtobufCMessage **out)
{
    if (m->unsupported)
        return fail(c, CAP_EINVAL, pos, "message %s has more than %d %s", m->desc->name,
                    m->unsupported_limit, m->unsupported);
    /* counts[] and oneof_member[] are read only where seen and oneofs_seen
     * say they were written, so they need no clearing. */
    frame fr;
    fr.m = m;
    fr.depth = depth;
    fr.strict = strict;
    fr.seen = 0;
    fr.oneofs_seen = 0;
    fr.keys_base = c->n_keys;
    fr.keys_unsorted = 0;
    fr.entry_key = entry_key;
    fr.key_bit = entry_key ? m->key_bit : 0;
    fr.msg = NULL;
    if (c->build) {
        int rc = new_message(&c->u, m, out);
        if (UNLIKELY(rc))
            stop_building(c, rc); /* which may free *out's message */
        else
            fr.msg = *out;
        fr.pend_base = c->n_pend;
    }
    int rc = scan_fields(c, &fr, pos, end);
    c->n_keys = fr.keys_base;
    if (!rc && c->build && m->rep_mask)
        finish_arrays(c, &fr);
    return rc;
}

/* What wire_scan found besides its verdict. */
typedef struct {
    int saw_unknown; /* an unknown field was skipped */
    /* Asked to build: the packet (NULL when building stopped), and why it
     * stopped (see scan_ctx). */
    ProtobufCMessage *packet;
    int build_failed;
} scan_result;

/* cap_wire_scan; with `build` (the bytes and allocator), it also builds
 * the packet as it scans, as far as it can (see scan_result). */
static int wire_scan(const uint8_t *buf, size_t len, const cap_bounds *bounds,
                     cap_decode_mode mode, uint32_t *payload_field, const unpack_ctx *build,
                     scan_result *res, cap_diag *diag)
{
    cap_bounds defaults;
    if (!bounds) {
        defaults = cap_bounds_default();
        bounds = &defaults;
    }
    /* Only the members a scan reads before writing them are set: the field
     * stack, the key array and the pending entries are large. */
    scan_ctx c;
    c.buf = buf;
    c.bounds = bounds;
    c.max_string = c.bounds->max_string;
    c.depth_limit = c.bounds->max_depth < CAP_MAX_DEPTH_LIMIT ? c.bounds->max_depth
                                                               : CAP_MAX_DEPTH_LIMIT;
    c.diag = diag;
    c.build = build != NULL;
    if (build)
        c.u = *build;
    c.build_failed = 0;
    c.root = NULL;
    c.n_pend = 0;
    c.top = 0;
    c.keys = c.local_keys;
    c.n_keys = 0;
    c.cap_keys = sizeof c.local_keys / sizeof c.local_keys[0];
    c.payload_field = 0;
    c.unknown_payload_field = 0;
    c.first_unknown_offset = -1;
    c.first_unknown_field = 0;
    c.saw_unknown = 0;
    res->saw_unknown = 0;
    res->packet = NULL;
    res->build_failed = 0;
    cap_diag_clear(diag);
    if (payload_field)
        *payload_field = 0;
    if (len > c.bounds->max_packet)
        return fail(&c, CAP_EMALFORMED, 0, "packet of %zu bytes, over the bound of %zu", len,
                    c.bounds->max_packet);
    pthread_once(&tables_once, build_tables);
    if (!tables.root)
        return fail(&c, CAP_EINVAL, 0, "the schema does not fit the decoder's tables");
    int strict = mode == CAP_DECODE_STRICT;
    int rc = scan_message(&c, tables.root, 0, len, 0, strict, NULL, &c.root);
    if (c.keys != c.local_keys)
        free(c.keys);
    if (!rc) {
        c.top = 0;
        uint32_t payload = c.payload_field;
        int trust = payload >= TRUST_MIN_FIELD && payload <= TRUST_MAX_FIELD;
        if (trust && len > c.bounds->max_trust_packet) {
            rc = fail(&c, CAP_EMALFORMED, 0, "trust packet of %zu bytes, over the bound of %zu",
                      len, c.bounds->max_trust_packet);
        } else {
            if (payload_field)
                *payload_field = payload ? payload : c.unknown_payload_field;
            if (payload && (strict || trust) && c.first_unknown_offset >= 0)
                rc = fail(&c, CAP_EMALFORMED, (size_t)c.first_unknown_offset,
                          "unknown field %u (strict mode)", c.first_unknown_field);
        }
    }
    if (rc) {
        stop_building(&c, UNPACK_UNSUPPORTED);
        return rc;
    }
    res->saw_unknown = c.saw_unknown;
    res->packet = c.root;
    res->build_failed = c.build_failed;
    return CAP_OK;
}

int cap_wire_scan(const uint8_t *buf, size_t len, const cap_bounds *bounds,
                  cap_decode_mode mode, uint32_t *payload_field, cap_diag *diag)
{
    scan_result res;
    return wire_scan(buf, len, bounds, mode, payload_field, NULL, &res, diag);
}

/* --- the unpack ------------------------------------------------------------
 * Builds, from bytes the scan accepted, the very structure
 * protobuf_c_message_unpack would build, with the scan's tables instead of
 * protobuf-c's generic walk (which lists every field it meets on the side,
 * then looks each one up in the descriptor): the scan itself, as it goes
 * (see wire_scan), or cap_packet_unpack, walking each message once more
 * (see unpack_message). Every block is allocated the way protobuf-c
 * allocates it, so protobuf_c_message_free_unpacked frees the result with
 * the same allocator: each message, each string (length + 1,
 * NUL-terminated), each non-empty bytes value and each non-empty repeated
 * array is a block of its own.
 *
 * The scan has refused every input on which the two could differ: a
 * singular field or a oneof given twice (protobuf-c keeps the last value,
 * merges submessages), wrong wire types, truncation. Bytes holding an
 * unknown field are not built here: protobuf-c keeps those fields in
 * unknown_fields, and such packets go to protobuf_c_message_unpack. The
 * walk checks bounds and wire types itself, so bytes that were not scanned
 * cannot make it read outside the buffer; it refuses them (UNPACK_UNSUPPORTED)
 * where it notices. */

static inline void *u_alloc(unpack_ctx *u, size_t n)
{
    if (u->arena)
        return cap_arena_alloc_inline(u->arena, n);
    return u->alloc ? u->alloc->alloc(u->alloc->allocator_data, n) : malloc(n);
}

/* A varint, minimal or not (the scan has held it minimal); 0 when the
 * bytes end inside it or it runs over ten bytes. */
static inline int u_varint(const uint8_t *buf, size_t *pos, size_t end, uint64_t *out)
{
    size_t p = *pos;
    if (p < end && buf[p] < 0x80) {
        *out = buf[p];
        *pos = p + 1;
        return 1;
    }
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && p < end; shift += 7) {
        uint8_t b = buf[p++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *out = v;
            *pos = p;
            return 1;
        }
    }
    return 0;
}

/* A length prefix at *pos: the value is [*pos, *pos + *n) after it. */
static inline int u_length(const uint8_t *buf, size_t *pos, size_t end, size_t *n)
{
    uint64_t v;
    if (!u_varint(buf, pos, end, &v) || v > end - *pos)
        return 0;
    *n = (size_t)v;
    return 1;
}

static int u_skip(const uint8_t *buf, uint32_t wt, size_t *pos, size_t end)
{
    uint64_t v;
    size_t n;
    switch (wt) {
    case PROTOBUF_C_WIRE_TYPE_VARINT: return u_varint(buf, pos, end, &v);
    case PROTOBUF_C_WIRE_TYPE_64BIT: n = 8; break;
    case PROTOBUF_C_WIRE_TYPE_32BIT: n = 4; break;
    case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
        if (!u_length(buf, pos, end, &n))
            return 0;
        break;
    default: return 0;
    }
    if (n > end - *pos)
        return 0;
    *pos += n;
    return 1;
}

static uint64_t load_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

/* Stores varint value v of a field of type t into dst as protobuf-c stores
 * it: the low 32 bits for 32-bit varints, zigzag undone for sint32/sint64,
 * bools as protobuf_c_boolean, enums as int. */
static inline void store_varint(unsigned t, uint64_t v, void *dst)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_UINT32: {
        uint32_t x = (uint32_t)v;
        memcpy(dst, &x, 4);
        return;
    }
    case PROTOBUF_C_TYPE_SINT32: {
        uint32_t x = (uint32_t)v;
        int32_t y = (x & 1) ? -(int32_t)(x >> 1) - 1 : (int32_t)(x >> 1);
        memcpy(dst, &y, 4);
        return;
    }
    case PROTOBUF_C_TYPE_SINT64: {
        int64_t y = (v & 1) ? -(int64_t)(v >> 1) - 1 : (int64_t)(v >> 1);
        memcpy(dst, &y, 8);
        return;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean b = v != 0;
        memcpy(dst, &b, sizeof b);
        return;
    }
    default: /* int64, uint64 */
        memcpy(dst, &v, 8);
        return;
    }
}

_Static_assert(sizeof(protobuf_c_boolean) == 4, "a bool is stored as 4 bytes (vstore)");

/* store_varint for a value the scan accepted for field fi (see
 * field_info.vstore), without store_varint's dispatch for most types. */
static inline void store_scanned_varint(const field_info *fi, uint64_t v, void *dst)
{
    if (fi->vstore == 4) {
        uint32_t x = (uint32_t)v;
        memcpy(dst, &x, 4);
    } else if (fi->vstore == 8) {
        memcpy(dst, &v, 8);
    } else {
        store_varint(fi->type, v, dst);
    }
}

/* Stores the 4 or 8 bytes at p (wire type wt) into dst. */
static inline void store_fixed(uint32_t wt, const uint8_t *p, void *dst)
{
    if (wt == PROTOBUF_C_WIRE_TYPE_32BIT) {
        uint32_t x = (uint32_t)load_le(p, 4);
        memcpy(dst, &x, 4);
    } else {
        uint64_t v = load_le(p, 8);
        memcpy(dst, &v, 8);
    }
}

/* Reads one scalar of field fi (wire type wt, the schema's) into dst. */
static inline int read_scalar(const field_info *fi, uint32_t wt, const uint8_t *buf, size_t *pos,
                              size_t end, void *dst)
{
    if (wt == PROTOBUF_C_WIRE_TYPE_VARINT) {
        uint64_t v;
        if (!u_varint(buf, pos, end, &v))
            return 0;
        store_varint(fi->type, v, dst);
        return 1;
    }
    unsigned n = wt == PROTOBUF_C_WIRE_TYPE_32BIT ? 4 : 8;
    if (end - *pos < n)
        return 0;
    store_fixed(wt, buf + *pos, dst);
    *pos += n;
    return 1;
}

/* Elements of a packed run of field fi of n bytes at p (as protobuf-c
 * counts them: for varints, the bytes that end one). */
static size_t count_packed(const field_info *fi, const uint8_t *p, size_t n)
{
    if (fi->wire_type == PROTOBUF_C_WIRE_TYPE_32BIT)
        return n / 4;
    if (fi->wire_type == PROTOBUF_C_WIRE_TYPE_64BIT)
        return n / 8;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += p[i] < 0x80;
    return count;
}

/* Adds the entries of m's repeated fields in [pos, end) to counts[] (by
 * field index). */
static int count_repeated(unpack_ctx *u, const scan_msg *m, size_t pos, size_t end,
                          size_t *counts)
{
    const uint8_t *buf = u->buf;
    while (pos < end) {
        uint64_t tag;
        if (!u_varint(buf, &pos, end, &tag))
            return UNPACK_UNSUPPORTED;
        uint32_t wt = (uint32_t)(tag & 7);
        const field_info *fi = lookup_field(m, tag >> 3);
        if (!fi)
            return UNPACK_UNSUPPORTED;
        size_t start = pos;
        if (!u_skip(buf, wt, &pos, end))
            return UNPACK_UNSUPPORTED;
        if (!fi->repeated)
            continue;
        if (wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED && fi->packable) {
            size_t n = 0;
            u_length(buf, &start, end, &n); /* read already by u_skip */
            counts[fi->index] += count_packed(fi, buf + start, n);
        } else {
            counts[fi->index]++;
        }
    }
    return CAP_OK;
}

static int unpack_message(unpack_ctx *u, const scan_msg *m, size_t pos, size_t end,
                          unsigned depth, ProtobufCMessage **out);


/* A string value of n bytes at buf[at], as protobuf-c holds it: a block of
 * its own, NUL-terminated. */
static inline int copy_string(unpack_ctx *u, size_t at, size_t n, void *dst)
{
    char *s = u_alloc(u, n + 1);
    if (!s)
        return CAP_ENOMEM;
    cap_copy_short(s, u->buf + at, n);
    s[n] = '\0';
    *(char **)dst = s;
    return CAP_OK;
}

/* A bytes value: empty ones without a block, as protobuf-c leaves them. */
static inline int copy_bytes(unpack_ctx *u, size_t at, size_t n, void *dst)
{
    ProtobufCBinaryData *bd = dst;
    bd->data = NULL;
    if (n) {
        bd->data = u_alloc(u, n);
        if (!bd->data)
            return CAP_ENOMEM;
        cap_copy_short(bd->data, u->buf + at, n);
    }
    bd->len = n;
    return CAP_OK;
}

/* Unpacks one value of field fi (tag wire type wt) at *pos into dst: the
 * member itself, or an element of its array. Inlined into unpack_field:
 * strings and scalars, most of the fields, then cost no call. */
static inline __attribute__((always_inline)) int unpack_value(unpack_ctx *u, const field_info *fi, uint32_t wt, size_t *pos,
                        size_t end, void *dst, unsigned depth)
{
    if (wt != fi->wire_type)
        return UNPACK_UNSUPPORTED;
    if (wt != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
        return read_scalar(fi, wt, u->buf, pos, end, dst) ? CAP_OK : UNPACK_UNSUPPORTED;
    size_t n;
    if (!u_length(u->buf, pos, end, &n))
        return UNPACK_UNSUPPORTED;
    size_t at = *pos;
    *pos += n;
    switch (fi->kind) {
    case KIND_STRING: return copy_string(u, at, n, dst);
    case KIND_BYTES: return copy_bytes(u, at, n, dst);
    default: /* KIND_MESSAGE */
        return unpack_message(u, fi->sub, at, at + n, depth + 1, (ProtobufCMessage **)dst);
    }
}

/* Notes singular field fi present in msg. The case is set before the
 * value: should the value fail, the member is still the zero of
 * message_init, which free_unpacked skips. */
static inline void mark_present(const field_info *fi, ProtobufCMessage *msg)
{
    if (fi->oneof)
        *(uint32_t *)((char *)msg + fi->quantifier_offset) = fi->id;
    else if (fi->has_flag)
        *(protobuf_c_boolean *)((char *)msg + fi->quantifier_offset) = 1;
}

/* The array element the next entry of repeated field fi of msg goes to,
 * or NULL when the array (caps[] holds each one's room) is full. */
static inline void *next_element(const field_info *fi, ProtobufCMessage *msg, const size_t *caps)
{
    size_t n = *(size_t *)((char *)msg + fi->quantifier_offset);
    if (n >= caps[fi->index])
        return NULL;
    void *slot = *(char **)((char *)msg + fi->offset) + n * fi->elem_size;
    if (fi->kind == KIND_MESSAGE)
        *(ProtobufCMessage **)slot = NULL;
    return slot;
}

/* Counts the element next_element gave once its value is in. A
 * submessage that failed half-way is counted, so that freeing the whole
 * releases it too. */
static inline void count_element(const field_info *fi, ProtobufCMessage *msg, const void *slot,
                                 int rc)
{
    if (rc == CAP_OK || (fi->kind == KIND_MESSAGE && *(ProtobufCMessage *const *)slot))
        (*(size_t *)((char *)msg + fi->quantifier_offset))++;
}

/* The elements of a packed run of field fi at [p, q). */
static int unpack_packed(unpack_ctx *u, const field_info *fi, ProtobufCMessage *msg,
                         const size_t *caps, size_t p, size_t q)
{
    while (p < q) {
        void *slot = next_element(fi, msg, caps);
        if (!slot || !read_scalar(fi, fi->wire_type, u->buf, &p, q, slot))
            return UNPACK_UNSUPPORTED;
        count_element(fi, msg, slot, CAP_OK);
    }
    return CAP_OK;
}

/* Unpacks one occurrence of field fi of msg. */
static int unpack_field(unpack_ctx *u, const field_info *fi, ProtobufCMessage *msg,
                        uint32_t wt, size_t *pos, size_t end, const size_t *caps,
                        unsigned depth)
{
    if (!fi->repeated) {
        mark_present(fi, msg);
        return unpack_value(u, fi, wt, pos, end, (char *)msg + fi->offset, depth);
    }
    if (wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED && fi->packable) {
        size_t n;
        if (!u_length(u->buf, pos, end, &n))
            return UNPACK_UNSUPPORTED;
        size_t p = *pos;
        *pos = p + n;
        return unpack_packed(u, fi, msg, caps, p, p + n);
    }
    void *slot = next_element(fi, msg, caps);
    if (!slot)
        return UNPACK_UNSUPPORTED;
    int rc = unpack_value(u, fi, wt, pos, end, slot, depth);
    count_element(fi, msg, slot, rc);
    return rc;
}

/* u_alloc's block p back to the allocator (NULL accepted). */
static void u_free(const unpack_ctx *u, void *p)
{
    if (!p)
        return;
    if (u->alloc)
        u->alloc->free(u->alloc->allocator_data, p);
    else
        free(p);
}

/* Allocates message m into *out, initialised (*out is set as soon as it
 * is allocated, so that a failure part-way leaves something free_unpacked
 * can release). The caller has checked that m is supported and not nested
 * too deep. */
static inline int new_message(unpack_ctx *u, const scan_msg *m, ProtobufCMessage **out)
{
    const ProtobufCMessageDescriptor *d = m->desc;
    ProtobufCMessage *msg = u_alloc(u, d->sizeof_message);
    if (!msg)
        return CAP_ENOMEM;
    d->message_init(msg);
    *out = msg;
    return CAP_OK;
}

/* The array of repeated field fi of msg, with room for n > 0 entries (as
 * protobuf-c allocates it: exactly their room); its count stays 0. */
static int new_array(unpack_ctx *u, const field_info *fi, ProtobufCMessage *msg, size_t n)
{
    if (n > SIZE_MAX / fi->elem_size)
        return UNPACK_UNSUPPORTED;
    void *arr = u_alloc(u, n * fi->elem_size);
    if (!arr)
        return CAP_ENOMEM;
    *(void **)((char *)msg + fi->offset) = arr;
    return CAP_OK;
}

/* Allocates message m, whose bytes are [pos, end), into *out
 * (new_message), and the arrays of its repeated fields, their room in
 * caps[] (their entries counted in the bytes first). */
static int begin_message(unpack_ctx *u, const scan_msg *m, size_t pos, size_t end, unsigned depth,
                         ProtobufCMessage **out, size_t *caps)
{
    if (m->unsupported || depth >= CAP_MAX_DEPTH_LIMIT)
        return UNPACK_UNSUPPORTED;
    int rc = new_message(u, m, out);
    if (rc || !m->rep_mask)
        return rc;
    /* Their counts start at 0 and grow as entries are filled in. */
    for (uint64_t bits = m->rep_mask; bits; bits &= bits - 1)
        caps[__builtin_ctzll(bits)] = 0;
    rc = count_repeated(u, m, pos, end, caps);
    for (uint64_t bits = m->rep_mask; bits && !rc; bits &= bits - 1) {
        unsigned i = (unsigned)__builtin_ctzll(bits);
        if (caps[i])
            rc = new_array(u, &m->fields[i], *out, caps[i]);
    }
    return rc;
}

/* Unpacks message m at [pos, end) into a new *out, walking its bytes. */
static int unpack_message(unpack_ctx *u, const scan_msg *m, size_t pos, size_t end,
                          unsigned depth, ProtobufCMessage **out)
{
    size_t caps[MAX_FIELDS]; /* read for repeated fields only */
    int rc = begin_message(u, m, pos, end, depth, out, caps);
    if (rc)
        return rc;
    ProtobufCMessage *msg = *out;
    while (pos < end) {
        uint64_t tag;
        if (!u_varint(u->buf, &pos, end, &tag))
            return UNPACK_UNSUPPORTED;
        const field_info *fi = lookup_field(m, tag >> 3);
        if (!fi)
            return UNPACK_UNSUPPORTED;
        rc = unpack_field(u, fi, msg, (uint32_t)(tag & 7), &pos, end, caps, depth);
        if (rc)
            return rc;
    }
    return CAP_OK;
}

/* cap_packet_unpack once the tables are built. */
static int unpack_packet(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                         cap_packet **out)
{
    *out = NULL;
    if (!tables.root)
        return CAP_EINVAL;
    unpack_ctx u = {.buf = buf, .alloc = alloc, .arena = cap_arena_of(alloc)};
    ProtobufCMessage *m = NULL;
    int rc = unpack_message(&u, tables.root, 0, len, 0, &m);
    if (rc) {
        if (m)
            protobuf_c_message_free_unpacked(m, alloc);
        return rc == UNPACK_UNSUPPORTED ? CAP_EINVAL : rc;
    }
    *out = (cap_packet *)m;
    return CAP_OK;
}

int cap_packet_unpack(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                      cap_packet **out)
{
    pthread_once(&tables_once, build_tables);
    return unpack_packet(buf, len, alloc, out);
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

int cap_packet_decode_in(const uint8_t *buf, size_t len, const cap_bounds *bounds,
                         cap_decode_mode mode, ProtobufCAllocator *alloc, cap_packet **out,
                         cap_diag *diag)
{
    uint32_t payload = 0;
    *out = NULL;
    /* The scan builds the packet as it goes into an arena or onto the C
     * heap. Any other allocator sees the calls it always saw: the byte
     * walk's after the scan (or protobuf-c's), none for bytes the scan
     * refuses, so that one failing on purpose fails at the same block. */
    const unpack_ctx build = {.buf = buf, .alloc = alloc, .arena = cap_arena_of(alloc)};
    scan_result res;
    int rc = wire_scan(buf, len, bounds, mode, &payload, alloc && !build.arena ? NULL : &build,
                       &res, diag);
    if (rc)
        return rc;
    /* The packet the scan built; else (another allocator, or building
     * stopped: more repeated entries at once than it holds pending, bytes
     * it does not build, which the scan should already have refused) the
     * byte walk builds it, unless memory ran out. */
    cap_packet *p = (cap_packet *)res.packet;
    if (!p && !res.saw_unknown)
        rc = res.build_failed == CAP_ENOMEM ? CAP_ENOMEM : unpack_packet(buf, len, alloc, &p);
    if (rc == CAP_ENOMEM)
        return cap_diag_set(diag, CAP_ENOMEM, -1, "BusPacket", "cannot unpack: out of memory");
    /* Unknown fields (lenient mode) are kept by protobuf-c in unknown_fields,
     * which the decoder does not build: protobuf-c unpacks those packets
     * (and anything the byte walk refused, which the scan should already
     * have). */
    if (!p)
        p = (cap_packet *)protobuf_c_message_unpack(CAP_PACKET_DESC, alloc, len, buf);
    if (!p)
        return cap_diag_set(diag, CAP_ENOMEM, -1, "BusPacket", "cannot unpack: out of memory");
    /* Version first: a packet of another version is not interpreted further. */
    if (p->protocol_version == CAP_PROTOCOL_VERSION &&
        p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD__NOT_SET && payload) {
        protobuf_c_message_free_unpacked(&p->base, alloc);
        return cap_diag_set(diag, CAP_EUNKNOWN_PAYLOAD, -1, "BusPacket.payload",
                            "unknown payload field %u", payload);
    }
    rc = cap_packet_validate(p, diag);
    if (rc) {
        protobuf_c_message_free_unpacked(&p->base, alloc);
        return rc;
    }
    *out = p;
    return CAP_OK;
}

int cap_packet_decode(const uint8_t *buf, size_t len, const cap_bounds *bounds,
                      cap_decode_mode mode, cap_packet **out, cap_diag *diag)
{
    return cap_packet_decode_in(buf, len, bounds, mode, NULL, out, diag);
}
