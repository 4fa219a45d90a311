/* Effects: what a reference component asks its driver to do.
 *
 * Every reference component is a sans-I/O state machine: it is handed an
 * input (a packet that arrived on a subject, a timer that fired) and the
 * current time, and it appends effects to a ref_effects list. The driver
 * (the simulator, the harness, a real transport) then carries them out in
 * list order: publish a packet on a subject, arm or disarm a timer, append
 * a record to the journal. The list is the whole interface between a
 * component and the world, so the same component runs unchanged on a
 * virtual clock or a real one.
 *
 * Ownership. The list owns everything in it: a published packet (freed
 * with cap_packet_free), its subject string and every journal record
 * string. ref_effects_clear frees them all and keeps the list's storage for
 * reuse; ref_effects_free frees the storage too. A driver that wants to
 * keep a packet beyond the next clear takes it with ref_effects_take_packet.
 *
 * Bounds. A list holds at most `max` effects (ref_effects_init); an append
 * past the bound returns CAP_EFULL and an append whose allocation fails
 * returns CAP_ENOMEM. In both cases the list is left exactly as it was
 * (nothing half-appended) and the append's own arguments are released as
 * documented per function, so a caller never leaks on an error path.
 *
 * Time is int64 nanoseconds on the caller's clock (Unix epoch on a real
 * clock, virtual in the simulator). Timer ids are chosen by the component
 * that sets them; they are opaque to the driver, which hands the id back
 * when the timer fires. Setting a timer id that is already armed re-arms
 * it at the new time; cancelling an id that is not armed is a no-op.
 *
 * No clock, no randomness, no I/O: randomness reaches a component only
 * through a ref_rand it is given. */
#ifndef REF_EFFECT_H
#define REF_EFFECT_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"
#include "cap_schema.h"

typedef enum {
    REF_EFFECT_PUBLISH = 1,      /* publish `packet` on `subject` */
    REF_EFFECT_TIMER_SET = 2,    /* arm timer `timer_id` to fire at `at` */
    REF_EFFECT_TIMER_CANCEL = 3, /* disarm timer `timer_id` */
    REF_EFFECT_JOURNAL = 4,      /* append `record` (one line, no newline) */
    /* a journal record in its writer's compact form, for a driver that
     * reads the journal in-process and persists none of it: record and
     * record_len are bytes only the writer's own reader interprets (for
     * the scheduler, ref_sched_view_read), not a line of text */
    REF_EFFECT_JOURNAL_VIEW = 5,
} ref_effect_kind;

typedef struct {
    ref_effect_kind kind;
    char *subject;      /* PUBLISH: owned by the list (its text buffer), NUL-terminated */
    cap_packet *packet; /* PUBLISH: owned by the list (NULL once taken) */
    uint64_t timer_id;  /* TIMER_SET, TIMER_CANCEL */
    int64_t at;         /* TIMER_SET: absolute time in ns */
    char *record;       /* JOURNAL: owned by the list (its text buffer), NUL-terminated;
                           valid until the list is cleared (JOURNAL_VIEW: its bytes) */
    size_t record_len;  /* JOURNAL: strlen(record) (JOURNAL_VIEW: its byte count) */
    int packet_block;   /* PUBLISH: 1 when `packet` is one allocation (ref_effects_publish_block) */
} ref_effect;

/* Default and largest accepted bound on the number of effects in a list. */
#define REF_EFFECTS_DEFAULT_MAX ((size_t)4096)
#define REF_EFFECTS_MAX_LIMIT ((size_t)1 << 20)

typedef struct {
    ref_effect *items; /* owned; `len` valid entries */
    size_t len;
    size_t cap;
    size_t max;
    /* The subjects and journal records of the effects, one after another
     * (each NUL-terminated): one buffer reused from batch to batch instead
     * of an allocation per string. Effects point into it. */
    char *text;
    size_t text_len, text_cap;
} ref_effects;

/* Initialises an empty list holding at most `max` effects (0: the
 * default). Allocates nothing until the first append. CAP_EINVAL when
 * l is NULL or max is over REF_EFFECTS_MAX_LIMIT. */
int ref_effects_init(ref_effects *l, size_t max);

/* Frees every effect's owned content and empties the list; the storage is
 * kept for reuse. NULL is accepted. */
void ref_effects_clear(ref_effects *l);

/* Clears the list and frees its storage; the list may be initialised
 * again. NULL is accepted. */
void ref_effects_free(ref_effects *l);

/* Appends a publish of `packet` on `subject` (copied). The list takes
 * ownership of `packet` whatever the outcome: on an error it has already
 * been freed. CAP_EINVAL for a NULL or empty subject or a NULL packet. */
int ref_effects_publish(ref_effects *l, const char *subject, cap_packet *packet);

/* The same for a packet built in one allocation: the packet struct comes
 * first and every string, byte array, sub-message and array it reaches
 * lies inside the same block (or is a static default such as
 * protobuf_c_empty_string), so one free() releases it. A component that
 * builds a packet in one piece saves an allocation and a free per field.
 * Ownership and errors as for ref_effects_publish (on an error the block
 * has been freed). */
int ref_effects_publish_block(ref_effects *l, const char *subject, cap_packet *packet);

/* Appends "arm timer `id` at `at`". */
int ref_effects_timer_set(ref_effects *l, uint64_t id, int64_t at);

/* Appends "disarm timer `id`". */
int ref_effects_timer_cancel(ref_effects *l, uint64_t id);

/* Appends a journal record (copied). CAP_EINVAL for NULL. */
int ref_effects_journal(ref_effects *l, const char *record);

/* The same for a record whose length the caller knows: the len bytes at
 * record, which hold no NUL (the copy is NUL-terminated). Saves measuring
 * it, here and for whoever reads the effect's record_len. */
int ref_effects_journal_n(ref_effects *l, const char *record, size_t len);

/* Writing a journal record in place, straight into the list's text
 * storage, rather than building it elsewhere and copying it in.
 * ref_effects_record_room gives the start of the record being written
 * (the first free byte of the storage) with room for used + n bytes from
 * there, the `used` bytes the writer has already put there kept when the
 * storage moves (a pointer into it from an earlier call is then stale);
 * *room (when not NULL) is the room there is from the start. NULL when out
 * of memory (nothing changed). ref_effects_record_commit then appends the
 * record: the len bytes at its start, NUL-terminated there (len + 1 bytes
 * of room must have been asked for), as ref_effects_journal_n would
 * append a copy of them. CAP_EINVAL when that room was not there,
 * CAP_EFULL or CAP_ENOMEM as for any append (the record is then
 * dropped). Nothing written is part of the list before the commit, and
 * any other append in between writes over it. */
char *ref_effects_record_room_grow(ref_effects *l, size_t used, size_t n, size_t *room);
static inline char *ref_effects_record_room(ref_effects *l, size_t used, size_t n, size_t *room)
{
    /* inline when the room is there already (most records), else the
     * storage grows out of line */
    size_t have = l && l->text ? l->text_cap - l->text_len : 0;
    if (used > have || n > have - used)
        return ref_effects_record_room_grow(l, used, n, room);
    if (room)
        *room = have;
    return l->text + l->text_len;
}
/* The commit itself, once the room and a free slot are known to be there. */
static inline void ref_effects_record_put_(ref_effects *l, size_t len, ref_effect_kind kind)
{
    char *r = l->text + l->text_len;
    r[len] = 0;
    l->text_len += len + 1;
    l->items[l->len++] = (ref_effect){.kind = kind, .record = r, .record_len = len};
}
int ref_effects_record_commit_kind_slow(ref_effects *l, size_t len, ref_effect_kind kind);
static inline int ref_effects_record_commit_kind(ref_effects *l, size_t len, ref_effect_kind kind)
{
    /* inline when the room and a free slot are there (most records); any
     * other case, an error among them, out of line */
    if (!l || !l->text || len >= l->text_cap - l->text_len || l->len >= l->cap ||
        l->len >= l->max)
        return ref_effects_record_commit_kind_slow(l, len, kind);
    ref_effects_record_put_(l, len, kind);
    return CAP_OK;
}
static inline int ref_effects_record_commit(ref_effects *l, size_t len)
{
    return ref_effects_record_commit_kind(l, len, REF_EFFECT_JOURNAL);
}

/* The same for a record in its writer's compact form (a JOURNAL_VIEW
 * effect): the len bytes at the start of the room, which may hold NULs. */
static inline int ref_effects_view_commit(ref_effects *l, size_t len)
{
    return ref_effects_record_commit_kind(l, len, REF_EFFECT_JOURNAL_VIEW);
}

/* Number of effects in the list, and the i-th one (NULL when i is out of
 * range). The pointer is valid until the next append, clear or free. */
static inline size_t ref_effects_count(const ref_effects *l)
{
    return l ? l->len : 0;
}
static inline const ref_effect *ref_effects_at(const ref_effects *l, size_t i)
{
    return (l && i < l->len) ? &l->items[i] : NULL;
}

/* Takes the packet of publish effect i out of the list: the caller owns it
 * (cap_packet_free) and the effect keeps its subject with a NULL packet.
 * A packet published in one block is handed over as an ordinary heap copy
 * (the block is freed). NULL when i is not a publish effect, its packet
 * was already taken, or the copy could not be allocated (the packet then
 * stays in the list). */
cap_packet *ref_effects_take_packet(ref_effects *l, size_t i);

/* A BusPacket with the envelope every reference component sets and no
 * payload yet: trace_id and sender_id (copied; NULL or "" leaves the field
 * empty), created_at = now (int64 ns since the epoch, split into
 * Timestamp seconds and nanos in [0, 1e9) with the floor, so negative
 * times are valid Timestamps) and protocol_version = CAP_PROTOCOL_VERSION.
 * Every sub-object is heap-allocated, so the packet is freed with
 * cap_packet_free; a payload set by the caller must be too. Returns the
 * packet, or NULL when an allocation fails. */
cap_packet *ref_packet_new(const char *trace_id, const char *sender_id, int64_t now);

/* A heap copy of p (cap_packet_free), made through the wire form, so it
 * holds what a receiver would decode; p is left alone (a packet built in
 * one block, for one). NULL for NULL or when out of memory. */
cap_packet *ref_packet_heap_copy(const cap_packet *p);

/* A heap copy of s for a packet field: NULL or "" gives the protobuf-c
 * empty string (never freed), anything else a malloc'd copy. Sets *ok to 0
 * when the allocation fails (and leaves it alone otherwise). */
char *ref_pb_strdup(const char *s, int *ok);

/* Building a packet in one block, for ref_effects_publish_block: the
 * builder adds up what its pieces take (ref_block_size for a struct or
 * array, ref_block_str_size for a string), allocates once with
 * ref_block_new, and carves the pieces in the same order from the start of
 * the block, the packet first, so the block's address is the packet's.
 * Every piece is aligned to REF_BLOCK_ALIGN. A piece that does not fit (a
 * builder whose sum and carving disagree) is refused and marks the block
 * `bad`: the builder checks that once, at the end. */
#define REF_BLOCK_ALIGN ((size_t)8)

typedef struct {
    char *next;  /* where the next piece goes */
    size_t left; /* bytes of block after next */
    int bad;     /* a piece did not fit */
} ref_block;

/* What a piece of n bytes takes of a block (n rounded up to the alignment). */
size_t ref_block_size(size_t n);

/* What ref_block_str takes for s: 0 for NULL or "". */
size_t ref_block_str_size(const char *s);
/* The same for a string of n characters (its length, known to the caller). */
size_t ref_block_str_size_n(size_t n);

/* Allocates a block of `total` bytes for b and returns it (free() releases
 * it), or NULL when out of memory. */
void *ref_block_new(ref_block *b, size_t total);

/* The next n bytes of the block, zeroed; NULL (and b->bad set) when they
 * do not fit. */
void *ref_block_take(ref_block *b, size_t n);

/* The same, left as the block holds it (not zeroed): for a piece the
 * caller sets whole at once, such as a message its protobuf-c __init
 * fills, which saves writing it twice. */
void *ref_block_take_raw(ref_block *b, size_t n);

/* A copy of s in the block for a packet field, as ref_pb_strdup gives it:
 * NULL or "" is the protobuf-c empty string (takes nothing); when the copy
 * does not fit, the empty string and b->bad set. */
char *ref_block_str(ref_block *b, const char *s);
/* The same for s of n characters (n == strlen(s), known to the caller). */
char *ref_block_str_n(ref_block *b, const char *s, size_t n);

/* ref_packet_new's envelope in the block: the packet (the block's first
 * piece) and its created_at Timestamp, then trace_id and sender_id.
 * ref_block_envelope_size(trace_id, sender_id) is what it takes. */
cap_packet *ref_block_envelope(ref_block *b, const char *trace_id, const char *sender_id,
                               int64_t now);
size_t ref_block_envelope_size(const char *trace_id, const char *sender_id);
/* The same with the ids' lengths known to the caller. */
cap_packet *ref_block_envelope_n(ref_block *b, const char *trace_id, size_t trace_len,
                                 const char *sender_id, size_t sender_len, int64_t now);
size_t ref_block_envelope_size_n(size_t trace_len, size_t sender_len);

/* Injected randomness. A component that needs random numbers is given a
 * ref_rand and calls ref_rand_next; it never calls rand() or reads the
 * OS. The simulator supplies a seeded generator, so one seed gives one
 * run. `next` must not be NULL when the component draws. */
typedef uint64_t (*ref_rand_fn)(void *ctx);
typedef struct {
    ref_rand_fn next;
    void *ctx; /* borrowed: owned by whoever built the ref_rand */
} ref_rand;

/* The next 64 random bits from r. */
uint64_t ref_rand_next(const ref_rand *r);

/* A uniform value in [0, n) without modulo bias (0 when n is 0). */
uint64_t ref_rand_below(const ref_rand *r, uint64_t n);

/* A ready seeded generator (SplitMix64): ctx is a uint64_t state the
 * caller owns and seeds; each call advances it. */
uint64_t ref_rand_splitmix64(void *ctx);

#endif
