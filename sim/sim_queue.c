/* Event queue: (time, seq) order with cancel by handle, in three tiers.
 *
 * Every pending event is in exactly one tier, by the bucket of its time key
 * (key >> SIM_QUEUE_BUCKET_BITS) and the span (key >> SIM_QUEUE_SPAN_BITS):
 *   near heap  bucket < next_bucket: the events due soonest, in a 4-ary
 *              min-heap; the earliest pending event is its root;
 *   ring       span == q->span and bucket >= next_bucket: one unsorted,
 *              doubly linked list a bucket, a bit a bucket for the ones
 *              that hold events;
 *   far heap   span > q->span: a second 4-ary min-heap.
 * So near < ring < far in time, and the near heap's root is the earliest
 * event. When the near heap runs empty (and events remain), the ring's
 * first non-empty bucket moves into it whole and next_bucket passes it;
 * when the ring is empty too, the far heap's earliest span becomes the
 * ring's (its events go to their buckets). The near heap is never empty
 * while events are pending, so peek reads its root.
 *
 * Why: a run keeps many timers pending seconds ahead while most events
 * (bus deliveries) are due within milliseconds. In one heap every pop
 * sifts through all of them; here a pop sifts through the near heap only,
 * pushing a later event is a list insertion, and cancelling it (a re-armed
 * timer) an unlink. The pop order is fixed by (time, seq), a total order,
 * so it does not depend on which tier an event waited in.
 *
 * Heaps: four children a node (half the levels of a binary heap). A heap
 * is two arrays indexed alike, the keys (16 bytes each, placed so that a
 * node's four children share one 64-byte line) and the slot of each entry;
 * by slot, q->pos holds the entry's heap index (for cancel; every move
 * writes it). Past the last entry the key array holds the greatest key
 * (all bits set), up to three places beyond the bound of the slots, so a
 * node's four children can always be compared as four, without testing
 * how many exist. Those filler keys never win: the real entries come first
 * in a group and a tie keeps the earlier one (and a real key equals the
 * filler only with seq 2^64-1). */
#include "sim_queue.h"

#include <stdlib.h>
#include <string.h>

/* Functions off the common path (growth, refills, the far heap), kept out
 * of line so the code of every push and pop stays small. */
#if defined(__GNUC__)
#define OFF_PATH __attribute__((noinline, cold))
#else
#define OFF_PATH
#endif

/* Where a slot's event waits. */
enum { AT_NONE = 0, AT_NEAR, AT_RING, AT_FAR };

/* A handle is (generation << 32) | slot. Generations start at 1, so 0 is
 * never a valid handle, and grow on every reuse of the slot. */
struct sim_queue_slot {
    sim_event ev;
    uint32_t gen;
    int at; /* AT_*; AT_NONE when not pending */
};

#define ARITY 4
/* Keys before keys[0] in their block, so that keys[1], the first of a
 * group of four children, starts a 64-byte line. */
#define KEY_LEAD 3
/* Filler keys after the last possible entry (a group's last three). */
#define KEY_TAIL 3
#define KEY_LINE 64
#define NO_SLOT UINT32_MAX
#define RING_WORDS (SIM_QUEUE_RING / 64)
_Static_assert(SIM_QUEUE_RING % 64 == 0, "the ring's bits fill whole words");

static const sim_queue_key KEY_FILL = {UINT64_MAX, UINT64_MAX};

/* The key's hi word: the time with its sign bit flipped, so that unsigned
 * order is time order. */
static inline uint64_t time_key(int64_t time)
{
    return (uint64_t)time ^ (UINT64_C(1) << 63);
}

/* Key (hi, lo) before key (yh, yl) in (time, seq) order; computed without
 * branches, since which of two keys is less is what a sift cannot predict.
 * The keys are read as two words each (not as a 16-byte struct, which
 * compilers tend to move through vector registers). */
#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 key_wide;
static inline int less(uint64_t hi, uint64_t lo, uint64_t yh, uint64_t yl)
{
    return (((key_wide)hi << 64) | lo) < (((key_wide)yh << 64) | yl);
}
#else
static inline int less(uint64_t hi, uint64_t lo, uint64_t yh, uint64_t yl)
{
    return (hi < yh) | ((hi == yh) & (lo < yl));
}
#endif

static inline int before(const sim_queue_key *x, const sim_queue_key *y)
{
    return less(x->hi, x->lo, y->hi, y->lo);
}

/* ---- heaps ------------------------------------------------------------------ */

/* The least of the four keys from index f (the earliest on a tie). */
static inline size_t least_of4(const sim_queue_key *k, size_t f)
{
    size_t a = f + (size_t)before(&k[f + 1], &k[f]);
    size_t b = f + 2 + (size_t)before(&k[f + 3], &k[f + 2]);
    return before(&k[b], &k[a]) ? b : a;
}

static inline void place(uint32_t *pos, sim_queue_heap *h, size_t i, uint64_t hi, uint64_t lo,
                         uint32_t slot)
{
    h->keys[i].hi = hi;
    h->keys[i].lo = lo;
    h->slot[i] = slot;
    pos[slot] = (uint32_t)i;
}

/* Puts key (hi, lo) of slot at index i or above, moving later parents
 * down. */
static inline void sift_up(uint32_t *pos, sim_queue_heap *h, size_t i, uint64_t hi, uint64_t lo,
                           uint32_t slot)
{
    while (i > 0) {
        size_t parent = (i - 1) / ARITY;
        const sim_queue_key *p = &h->keys[parent];
        if (!less(hi, lo, p->hi, p->lo))
            break;
        place(pos, h, i, p->hi, p->lo, h->slot[parent]);
        i = parent;
    }
    place(pos, h, i, hi, lo, slot);
}

static inline void heap_push(uint32_t *pos, sim_queue_heap *h, uint64_t hi, uint64_t lo,
                             uint32_t slot)
{
    sift_up(pos, h, h->len++, hi, lo, slot);
}

/* Removes the entry at index i. The entry that takes its place is placed
 * bottom-up: unless it belongs above i, the hole at i goes down to a leaf
 * along the earliest children (the least of four, a level), then the
 * last entry is put there and sifted up. */
static void heap_remove(uint32_t *pos, sim_queue_heap *h, size_t i)
{
    size_t len = --h->len;
    sim_queue_key last = h->keys[len];
    uint32_t last_slot = h->slot[len];
    h->keys[len] = KEY_FILL;
    if (i == len)
        return;
    size_t hole = i;
    if (i == 0 || !before(&last, &h->keys[(i - 1) / ARITY]))
        for (size_t first; (first = ARITY * hole + 1) < len;) {
            size_t c = least_of4(h->keys, first);
            place(pos, h, hole, h->keys[c].hi, h->keys[c].lo, h->slot[c]);
            hole = c;
        }
    sift_up(pos, h, hole, last.hi, last.lo, last_slot);
}

/* Storage for ncap entries: the key block aligned so keys[1] starts a
 * line, the first len keys kept, the rest filler. */
static int heap_grow(sim_queue_heap *h, size_t ncap)
{
    uint32_t *slot = realloc(h->slot, ncap * sizeof *slot);
    if (!slot)
        return CAP_ENOMEM;
    h->slot = slot;
    size_t n = KEY_LEAD + ncap + KEY_TAIL;
    size_t bytes = (n * sizeof(sim_queue_key) + KEY_LINE - 1) / KEY_LINE * KEY_LINE;
    sim_queue_key *mem = aligned_alloc(KEY_LINE, bytes);
    if (!mem)
        return CAP_ENOMEM;
    sim_queue_key *keys = mem + KEY_LEAD;
    if (h->len)
        memcpy(keys, h->keys, h->len * sizeof *keys);
    for (size_t i = h->len; i < ncap + KEY_TAIL; i++)
        keys[i] = KEY_FILL;
    free(h->keys_mem);
    h->keys_mem = mem;
    h->keys = keys;
    return CAP_OK;
}

static void heap_free(sim_queue_heap *h)
{
    free(h->keys_mem);
    free(h->slot);
    memset(h, 0, sizeof *h);
}

/* ---- the ring ----------------------------------------------------------------- */

/* Index of the lowest set bit of x (not 0). */
static inline size_t lowest_bit(uint64_t x)
{
#if defined(__GNUC__)
    return (size_t)__builtin_ctzll(x);
#else
    size_t i = 0;
    while (!(x & 1)) {
        x >>= 1;
        i++;
    }
    return i;
#endif
}

static inline size_t ring_index(uint64_t hi)
{
    return (size_t)(hi >> SIM_QUEUE_BUCKET_BITS) & (SIM_QUEUE_RING - 1);
}

static void ring_insert(sim_queue *q, uint32_t s, uint64_t hi)
{
    size_t b = ring_index(hi);
    uint32_t head = q->ring_head[b];
    if (!(q->ring_bits[b / 64] & (UINT64_C(1) << (b % 64)))) {
        q->ring_bits[b / 64] |= UINT64_C(1) << (b % 64);
        head = NO_SLOT;
    }
    q->link_next[s] = head;
    q->link_prev[s] = NO_SLOT;
    if (head != NO_SLOT)
        q->link_prev[head] = s;
    q->ring_head[b] = s;
    q->slots[s].at = AT_RING;
}

static void ring_unlink(sim_queue *q, uint32_t s)
{
    uint32_t nx = q->link_next[s], pv = q->link_prev[s];
    if (nx != NO_SLOT)
        q->link_prev[nx] = pv;
    if (pv != NO_SLOT) {
        q->link_next[pv] = nx;
    } else {
        size_t b = ring_index(time_key(q->slots[s].ev.time));
        q->ring_head[b] = nx;
        if (nx == NO_SLOT)
            q->ring_bits[b / 64] &= ~(UINT64_C(1) << (b % 64));
    }
}

static OFF_PATH void far_push(sim_queue *q, uint32_t s, uint64_t hi, uint64_t seq)
{
    q->slots[s].at = AT_FAR;
    heap_push(q->pos, &q->far, hi, seq, s);
}

/* Adds a new pending event of slot s to its tier. */
static void enter(sim_queue *q, uint32_t s)
{
    const sim_event *ev = &q->slots[s].ev;
    uint64_t hi = time_key(ev->time);
    uint64_t bucket = hi >> SIM_QUEUE_BUCKET_BITS;
    if (bucket < q->next_bucket) {
        q->slots[s].at = AT_NEAR;
        heap_push(q->pos, &q->near, hi, ev->seq, s);
    } else if (hi >> SIM_QUEUE_SPAN_BITS == q->span) {
        ring_insert(q, s, hi);
    } else {
        far_push(q, s, hi, ev->seq);
    }
}

/* The near heap is empty and events are pending: moves the earliest
 * non-empty bucket into it, first taking the far heap's earliest span
 * into the ring when the ring is empty. */
static OFF_PATH void refill(sim_queue *q)
{
    for (;;) {
        /* Buckets before next_bucket's place in the ring are empty. */
        size_t from = (size_t)q->next_bucket & (SIM_QUEUE_RING - 1);
        if (q->next_bucket >> SIM_QUEUE_RING_BITS != q->span)
            from = SIM_QUEUE_RING; /* the ring's span is used up */
        for (size_t w = from / 64; w < RING_WORDS; w++) {
            uint64_t bits = q->ring_bits[w];
            if (w == from / 64)
                bits &= ~UINT64_C(0) << (from % 64);
            if (!bits)
                continue;
            size_t b = w * 64 + lowest_bit(bits);
            q->next_bucket = (q->span << SIM_QUEUE_RING_BITS) + b + 1;
            q->ring_bits[w] &= ~(UINT64_C(1) << (b % 64));
            for (uint32_t s = q->ring_head[b]; s != NO_SLOT; s = q->link_next[s]) {
                sim_queue_slot *sl = &q->slots[s];
                sl->at = AT_NEAR;
                heap_push(q->pos, &q->near, time_key(sl->ev.time), sl->ev.seq, s);
            }
            return;
        }
        /* The ring is empty: the far heap holds every pending event. */
        q->span = q->far.keys[0].hi >> SIM_QUEUE_SPAN_BITS;
        q->next_bucket = q->span << SIM_QUEUE_RING_BITS;
        while (q->far.len && q->far.keys[0].hi >> SIM_QUEUE_SPAN_BITS == q->span) {
            uint32_t s = q->far.slot[0];
            uint64_t hi = q->far.keys[0].hi;
            heap_remove(q->pos, &q->far, 0);
            ring_insert(q, s, hi);
        }
    }
}

/* ---- the queue ------------------------------------------------------------------ */

int sim_queue_init(sim_queue *q, size_t max)
{
    if (!q || max > SIM_QUEUE_MAX_LIMIT)
        return CAP_EINVAL;
    memset(q, 0, sizeof *q);
    q->max = max ? max : SIM_QUEUE_DEFAULT_MAX;
    return CAP_OK;
}

static OFF_PATH int grow(sim_queue *q)
{
    if (!q->ring_head && !(q->ring_head = malloc(SIM_QUEUE_RING * sizeof *q->ring_head)))
        return CAP_ENOMEM;
    if (!q->ring_bits && !(q->ring_bits = calloc(RING_WORDS, sizeof *q->ring_bits)))
        return CAP_ENOMEM;
    size_t ncap = q->cap ? q->cap * 2 : 64;
    if (ncap > q->max)
        ncap = q->max;
    sim_queue_slot *slots = realloc(q->slots, ncap * sizeof *slots);
    if (!slots)
        return CAP_ENOMEM;
    q->slots = slots;
    if (heap_grow(&q->near, ncap) != CAP_OK || heap_grow(&q->far, ncap) != CAP_OK)
        return CAP_ENOMEM;
    uint32_t **arrays[] = {&q->pos, &q->link_next, &q->link_prev, &q->free_list};
    for (size_t k = 0; k < sizeof arrays / sizeof *arrays; k++) {
        uint32_t *a = realloc(*arrays[k], ncap * sizeof *a);
        if (!a)
            return CAP_ENOMEM;
        *arrays[k] = a;
    }
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
    enter(q, s);
    q->len++;
    if (q->near.len == 0)
        refill(q);
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
    return &q->slots[q->near.slot[0]].ev;
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

/* Hands the event of slot s (already out of its tier) to *out and frees
 * the slot; keeps the near heap filled. */
static void release_slot(sim_queue *q, uint32_t s, sim_event *out)
{
    sim_queue_slot *sl = &q->slots[s];
    if (out)
        *out = sl->ev;
    sl->at = AT_NONE;
    q->free_list[q->nfree++] = s;
    q->len--;
    if (q->near.len == 0 && q->len)
        refill(q);
}

int sim_queue_pop(sim_queue *q, sim_event *out)
{
    if (!q || q->len == 0)
        return 0;
    uint32_t s = q->near.slot[0];
    heap_remove(q->pos, &q->near, 0);
    release_slot(q, s, out);
#if defined(__GNUC__)
    /* The next event's slot was written when it was pushed, long ago, and
     * is read at the next pop: asked for now, it arrives while the caller
     * handles this event (a hint only; nothing depends on it). */
    if (q->len) {
        const sim_event *next = &q->slots[q->near.slot[0]].ev;
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
    if (sl->at == AT_NONE || sl->gen != gen)
        return 0;
    if (sl->at == AT_RING)
        ring_unlink(q, (uint32_t)s);
    else
        heap_remove(q->pos, sl->at == AT_NEAR ? &q->near : &q->far, q->pos[s]);
    release_slot(q, (uint32_t)s, out);
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
    heap_free(&q->near);
    heap_free(&q->far);
    free(q->pos);
    free(q->link_next);
    free(q->link_prev);
    free(q->ring_head);
    free(q->ring_bits);
    free(q->free_list);
    size_t max = q->max;
    memset(q, 0, sizeof *q);
    q->max = max;
}
