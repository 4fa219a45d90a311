/* The simulator's event queue: a min-heap (four children a node) ordered by
 * (time, seq), where time is int64 virtual nanoseconds and seq a uint64
 * assigned at insertion (0, 1, 2, ... per queue, never reused). Two events
 * at the same time leave in the order they were pushed; nothing depends on
 * pointer values or hash order, so one sequence of pushes and pops always
 * gives one sequence of events.
 *
 * Bounded: at most `max` pending events (sim_queue_init); a push past the
 * bound returns CAP_EFULL and changes nothing (not even the next seq).
 * Storage grows on demand up to the bound.
 *
 * Cancel: every push returns a handle; sim_queue_cancel removes that event
 * at once (O(log n), no lazy tombstones) and hands it back so the caller
 * can free its data. A handle of an event already popped or cancelled is
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

/* A heap entry: the ordering key of a pending event and its slot. */
typedef struct {
    int64_t time;
    uint64_t seq;
    uint32_t slot;
} sim_queue_entry;

typedef struct {
    sim_queue_slot *slots; /* owned */
    sim_queue_entry *heap; /* owned: pending events' keys, heap-ordered */
    uint32_t *pos;         /* owned: a pending event's index in heap, by slot (apart
                            * from the slots: every move in the heap writes it, and
                            * 4 bytes a slot keep those writes within few cache lines) */
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
