/* Event queue: 4-ary min-heap over (time, seq) with cancel by handle.
 *
 * Four children a node rather than two: half the levels, so a pop or a
 * cancel moves half as many entries, and each move also writes the moved
 * event's heap position (for cancel), a write to a random place in the
 * position array (4 bytes a slot, kept apart from the slots' events so it
 * stays small). A node's four children sit side by side (96 bytes), so
 * choosing the least of them reads one or two cache lines. */
#include "sim_queue.h"

#include <stdlib.h>
#include <string.h>

/* A handle is (generation << 32) | slot. Generations start at 1, so 0 is
 * never a valid handle, and grow on every reuse of the slot. */
struct sim_queue_slot {
    sim_event ev;
    uint32_t gen;
    int pending;
};

int sim_queue_init(sim_queue *q, size_t max)
{
    if (!q || max > SIM_QUEUE_MAX_LIMIT)
        return CAP_EINVAL;
    memset(q, 0, sizeof *q);
    q->max = max ? max : SIM_QUEUE_DEFAULT_MAX;
    return CAP_OK;
}

/* Heap entries carry their event's (time, seq), so ordering them never
 * touches the slots: a sift reads one contiguous array. */
static int before(const sim_queue_entry *x, const sim_queue_entry *y)
{
    if (x->time != y->time)
        return x->time < y->time;
    return x->seq < y->seq;
}

static void place(sim_queue *q, size_t i, sim_queue_entry e)
{
    q->heap[i] = e;
    q->pos[e.slot] = (uint32_t)i;
}

#define ARITY 4

static void sift_up(sim_queue *q, size_t i)
{
    sim_queue_entry e = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / ARITY;
        if (!before(&e, &q->heap[parent]))
            break;
        place(q, i, q->heap[parent]);
        i = parent;
    }
    place(q, i, e);
}

static int grow(sim_queue *q)
{
    size_t ncap = q->cap ? q->cap * 2 : 64;
    if (ncap > q->max)
        ncap = q->max;
    sim_queue_slot *slots = realloc(q->slots, ncap * sizeof *slots);
    if (!slots)
        return CAP_ENOMEM;
    q->slots = slots;
    sim_queue_entry *heap = realloc(q->heap, ncap * sizeof *heap);
    if (!heap)
        return CAP_ENOMEM;
    q->heap = heap;
    uint32_t *pos = realloc(q->pos, ncap * sizeof *pos);
    if (!pos)
        return CAP_ENOMEM;
    q->pos = pos;
    uint32_t *fl = realloc(q->free_list, ncap * sizeof *fl);
    if (!fl)
        return CAP_ENOMEM;
    q->free_list = fl;
    /* New slots go on the free list highest first, so they are used in
     * ascending order (only for tidiness: order never depends on it). */
    for (size_t i = ncap; i > q->cap; i--) {
        size_t s = i - 1;
        memset(&q->slots[s], 0, sizeof q->slots[s]);
        q->free_list[q->nfree++] = (uint32_t)s;
    }
    q->cap = ncap;
    return CAP_OK;
}

int sim_queue_push(sim_queue *q, const sim_event *ev, uint64_t *handle)
{
    if (!q || !ev)
        return CAP_EINVAL;
    if (q->len >= q->max)
        return CAP_EFULL;
    if (q->nfree == 0) {
        int rc = grow(q);
        if (rc != CAP_OK)
            return rc;
    }
    uint32_t s = q->free_list[--q->nfree];
    sim_queue_slot *sl = &q->slots[s];
    sl->gen++;
    if (sl->gen == 0)
        sl->gen = 1;
    sl->ev = *ev;
    sl->ev.seq = q->next_seq++;
    sl->ev.handle = ((uint64_t)sl->gen << 32) | s;
    sl->pending = 1;
    q->heap[q->len] = (sim_queue_entry){sl->ev.time, sl->ev.seq, s};
    q->pos[s] = (uint32_t)q->len;
    q->len++;
    sift_up(q, q->len - 1);
    if (handle)
        *handle = sl->ev.handle;
    return CAP_OK;
}

size_t sim_queue_len(const sim_queue *q)
{
    return q ? q->len : 0;
}

size_t sim_queue_space(const sim_queue *q)
{
    return q ? q->max - q->len : 0;
}

const sim_event *sim_queue_peek(const sim_queue *q)
{
    if (!q || q->len == 0)
        return NULL;
    return &q->slots[q->heap[0].slot].ev;
}

int sim_queue_peek_time(const sim_queue *q, int64_t *t)
{
    const sim_event *e = sim_queue_peek(q);
    if (!e)
        return CAP_EINVAL;
    if (t)
        *t = e->time;
    return CAP_OK;
}

/* Removes the heap entry at index i. The entry that takes its place is
 * placed bottom-up: the hole at i goes down to a leaf along the earliest
 * children (the least of up to four, a level), then the last entry is put
 * there and sifted up. The pop order is fixed by (time, seq), a total order, so
 * it does not depend on how the heap is laid out. */
static void remove_at(sim_queue *q, size_t i, sim_event *out)
{
    uint32_t s = q->heap[i].slot;
    if (out)
        *out = q->slots[s].ev;
    q->slots[s].pending = 0;
    q->free_list[q->nfree++] = s;
    q->len--;
    if (i == q->len)
        return;
    sim_queue_entry last = q->heap[q->len];
    /* The moved entry may belong above its new spot. */
    if (i > 0 && before(&last, &q->heap[(i - 1) / ARITY])) {
        place(q, i, last);
        sift_up(q, i);
        return;
    }
    size_t hole = i;
    for (;;) {
        size_t first = ARITY * hole + 1;
        if (first >= q->len)
            break;
        size_t end = first + ARITY < q->len ? first + ARITY : q->len;
        size_t c = first;
        for (size_t k = first + 1; k < end; k++)
            if (before(&q->heap[k], &q->heap[c]))
                c = k;
        place(q, hole, q->heap[c]);
        hole = c;
    }
    place(q, hole, last);
    sift_up(q, hole);
}

int sim_queue_pop(sim_queue *q, sim_event *out)
{
    if (!q || q->len == 0)
        return 0;
    remove_at(q, 0, out);
#if defined(__GNUC__)
    /* The next event's slot was written when it was pushed, long ago, and
     * is read at the next pop: asked for now, it arrives while the caller
     * handles this event (a hint only; nothing depends on it). */
    if (q->len) {
        const sim_event *next = &q->slots[q->heap[0].slot].ev;
        __builtin_prefetch(next);
        __builtin_prefetch((const char *)(next + 1) - 1);
    }
#endif
    return 1;
}

int sim_queue_cancel(sim_queue *q, uint64_t handle, sim_event *out)
{
    if (!q)
        return 0;
    uint64_t s = handle & 0xFFFFFFFFu;
    uint32_t gen = (uint32_t)(handle >> 32);
    if (s >= q->cap)
        return 0;
    sim_queue_slot *sl = &q->slots[s];
    if (!sl->pending || sl->gen != gen)
        return 0;
    remove_at(q, q->pos[s], out);
    return 1;
}

void sim_queue_clear(sim_queue *q, sim_event_release_fn release, void *ctx)
{
    if (!q)
        return;
    sim_event ev;
    while (sim_queue_pop(q, &ev))
        if (release)
            release(&ev, ctx);
}

void sim_queue_free(sim_queue *q, sim_event_release_fn release, void *ctx)
{
    if (!q)
        return;
    sim_queue_clear(q, release, ctx);
    free(q->slots);
    free(q->heap);
    free(q->pos);
    free(q->free_list);
    size_t max = q->max;
    memset(q, 0, sizeof *q);
    q->max = max;
}
