/* The simulator's event queue, ordered by (time, seq), where time is int64
 * virtual nanoseconds and seq a uint64 assigned at insertion (0, 1, 2, ...
 * per queue, never reused). Two events at the same time leave in the order
 * they were pushed; nothing depends on pointer values or hash order, so one
 * sequence of pushes and pops always gives one sequence of events.
 *
 * Inside, three tiers by time (see sim_queue.c): a small min-heap for the
 * events of the buckets already reached, a ring of time buckets (unsorted
 * lists) for the rest of the current span of 2^SIM_QUEUE_SPAN_BITS ns, and
 * a second min-heap for later spans. A bucket goes into the near heap whole when
 * the heap runs empty. The tiers only change the cost; the order is the
 * (time, seq) order whatever tier an event waits in.
 *
 * Bounded: at most `max` pending events (sim_queue_init); a push past the
 * bound returns CAP_EFULL and changes nothing (not even the next seq).
 * Storage grows on demand up to the bound.
 *
 * Cancel: every push returns a handle; sim_queue_cancel removes that event
 * at once (O(1) from a bucket, O(log n) from a heap; no lazy tombstones)
 * and hands it back so the caller can free its data. A handle of an event already popped or cancelled is
 * simply not found (slot generations make a stale handle harmless).
 *
 * Ownership: the queue stores sim_event values. `data` is the caller's
 * pointer; the queue never dereferences or frees it, except through the
 * release callback the caller gives to sim_queue_free / sim_queue_clear. */
#ifndef SIM_QUEUE_H
#define SIM_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"

/* Default and largest accepted bound on pending events. */
#define SIM_QUEUE_DEFAULT_MAX ((size_t)1 << 16)
#define SIM_QUEUE_MAX_LIMIT ((size_t)1 << 24)

typedef struct {
    int64_t time;    /* when the event fires (virtual ns) */
    uint64_t seq;    /* set by the queue at push: the tie-breaker */
    uint64_t handle; /* set by the queue at push: for sim_queue_cancel */
    int kind;        /* caller-defined (timer, bus delivery, scenario step...) */
    uint32_t actor;  /* caller-defined */
    uint64_t id;     /* caller-defined (a timer id, ...) */
    void *data;      /* caller-owned payload, or NULL */
} sim_event;

typedef struct sim_queue_slot sim_queue_slot; /* private */

/* The ordering key of a pending event: hi is its time with the sign bit
 * flipped (so unsigned order is time order), lo its seq. */
typedef struct {
    uint64_t hi;
    uint64_t lo;
} sim_queue_key;

/* A 4-ary min-heap of keys; the keys array holds, from len on, the
 * greatest key (see sim_queue.c). */
typedef struct {
    sim_queue_key *keys; /* heap-ordered */
    void *keys_mem;      /* owned: the block keys points into */
    uint32_t *slot;      /* owned: the slot of the event at each heap index */
    size_t len;
} sim_queue_heap;

/* The bucket ring: 2^SIM_QUEUE_BUCKET_BITS ns a bucket, 2^SIM_QUEUE_RING_BITS
 * buckets, so a ring spans 2^SIM_QUEUE_SPAN_BITS ns (about 17 s). */
#define SIM_QUEUE_BUCKET_BITS 22
#define SIM_QUEUE_RING_BITS 12
#define SIM_QUEUE_SPAN_BITS (SIM_QUEUE_BUCKET_BITS + SIM_QUEUE_RING_BITS)
#define SIM_QUEUE_RING ((size_t)1 << SIM_QUEUE_RING_BITS)

typedef struct {
    sim_queue_slot *slots; /* owned */
    sim_queue_heap near;   /* events in buckets before next_bucket */
    sim_queue_heap far;    /* events in spans after span */
    uint32_t *pos;         /* owned: a heap event's index in its heap, by slot */
    uint32_t *link_next;   /* owned: a bucket event's neighbours, by slot */
    uint32_t *link_prev;
    uint32_t *ring_head;   /* owned: first event of each bucket of the ring */
    uint64_t *ring_bits;   /* owned: one bit a bucket, set when it holds events */
    uint64_t next_bucket;  /* the first bucket (time key >> BUCKET_BITS) not in near */
    uint64_t span;         /* the span (time key >> SPAN_BITS) the ring holds */
    uint32_t *free_list;   /* owned: unused slot indices */
    size_t len;            /* pending events */
    size_t nfree;
    size_t cap;            /* slots allocated */
    size_t max;
    uint64_t next_seq;
} sim_queue;

/* Called for each pending event by sim_queue_clear / sim_queue_free. */
typedef void (*sim_event_release_fn)(sim_event *ev, void *ctx);

/* An empty queue holding at most max events (0: the default). Allocates
 * nothing yet. CAP_EINVAL for NULL q or max over SIM_QUEUE_MAX_LIMIT. */
int sim_queue_init(sim_queue *q, size_t max);

/* Pushes an event (its seq and handle are overwritten). On success stores
 * the handle in *handle (if not NULL). CAP_EFULL at the bound, CAP_ENOMEM,
 * CAP_EINVAL for NULL arguments. */
int sim_queue_push(sim_queue *q, const sim_event *ev, uint64_t *handle);

/* Number of pending events, and how many more may be pushed. */
size_t sim_queue_len(const sim_queue *q);
size_t sim_queue_space(const sim_queue *q);

/* The earliest pending event, without removing it (NULL when empty). The
 * pointer is valid until the next push, pop, cancel or clear. */
const sim_event *sim_queue_peek(const sim_queue *q);

/* Time of the earliest pending event in *t; 0 if there is one, CAP_EINVAL
 * when the queue is empty. */
int sim_queue_peek_time(const sim_queue *q, int64_t *t);

/* Removes the earliest event into *out. 1 if an event was popped, 0 when
 * the queue is empty. */
int sim_queue_pop(sim_queue *q, sim_event *out);

/* Removes the pending event with this handle into *out (if not NULL).
 * 1 if it was pending, 0 if not (already popped, cancelled or unknown). */
int sim_queue_cancel(sim_queue *q, uint64_t handle, sim_event *out);

/* Removes every pending event, calling release (if not NULL) on each in
 * (time, seq) order. Keeps the storage and the seq counter. */
void sim_queue_clear(sim_queue *q, sim_event_release_fn release, void *ctx);

/* sim_queue_clear, then frees the storage. NULL q is accepted. */
void sim_queue_free(sim_queue *q, sim_event_release_fn release, void *ctx);

#endif
