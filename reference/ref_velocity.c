/* Velocity windows: a sorted array of windows (binary search by key), each
 * a ring of request times, oldest first. */
#include "ref_velocity.h"

#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "ref_sorted.h"

typedef struct {
    char *key;        /* rule_id '\x1f' key value */
    int64_t *ts;      /* ring of times, oldest at head */
    size_t cap, head, n;
    int64_t last_hit; /* for least-recently-hit eviction */
} window;

struct ref_velocity_store {
    window **w;       /* sorted by key */
    size_t n, cap;
    size_t max_keys, max_stamps, stamps;
};

ref_velocity_store *ref_velocity_store_new(size_t max_keys, size_t max_stamps)
{
    ref_velocity_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->max_keys = max_keys ? max_keys : 65536;
    s->max_stamps = max_stamps ? max_stamps : (size_t)1 << 20;
    return s;
}

static void window_free(window *w)
{
    free(w->key);
    free(w->ts);
    free(w);
}

void ref_velocity_store_free(ref_velocity_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        window_free(s->w[i]);
    free(s->w);
    free(s);
}

size_t ref_velocity_store_size(const ref_velocity_store *s)
{
    return s->n;
}

/* Index of key, or of where it would go (*found says which). */
static const char *window_key(const void *base, size_t i)
{
    return ((window *const *)base)[i]->key;
}

static size_t find(const ref_velocity_store *s, const char *key, int *found)
{
    size_t at;
    *found = ref_sorted_find(s->w, s->n, window_key, key, 0, &at);
    return at;
}

static void remove_at(ref_velocity_store *s, size_t i)
{
    s->stamps -= s->w[i]->cap;
    window_free(s->w[i]);
    memmove(&s->w[i], &s->w[i + 1], (s->n - i - 1) * sizeof *s->w);
    s->n--;
}

/* Drops the least recently hit window other than keep (NULL: none).
 * Returns 0 when nothing could be dropped. */
static int evict_one(ref_velocity_store *s, const window *keep)
{
    size_t victim = s->n;
    for (size_t i = 0; i < s->n; i++) {
        if (s->w[i] == keep)
            continue;
        if (victim == s->n || s->w[i]->last_hit < s->w[victim]->last_hit)
            victim = i;  /* equal times keep the earlier, i.e. smaller, key */
    }
    if (victim == s->n)
        return 0;
    remove_at(s, victim);
    return 1;
}

static window *insert(ref_velocity_store *s, const char *key)
{
    while (s->n >= s->max_keys && evict_one(s, NULL)) {
    }
    int found;
    size_t at = find(s, key, &found);
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        window **nw = realloc(s->w, nc * sizeof *nw);
        if (!nw)
            return NULL;
        s->w = nw;
        s->cap = nc;
    }
    window *w = calloc(1, sizeof *w);
    if (!w || !(w->key = strdup(key))) {
        free(w);
        return NULL;
    }
    memmove(&s->w[at + 1], &s->w[at], (s->n - at) * sizeof *s->w);
    s->w[at] = w;
    s->n++;
    return w;
}

/* Makes room for one more time in w (at most limit kept). */
static int ring_reserve(ref_velocity_store *s, window *w, size_t limit)
{
    if (w->n < w->cap || w->cap >= limit)
        return 0;
    size_t nc = w->cap ? w->cap * 2 : 4;
    if (nc > limit)
        nc = limit;
    while (s->stamps + (nc - w->cap) > s->max_stamps && evict_one(s, w)) {
    }
    if (s->stamps + (nc - w->cap) > s->max_stamps)
        return 0;  /* cannot grow: the ring keeps its newest times */
    int64_t *nt = malloc(nc * sizeof *nt);
    if (!nt)
        return CAP_ENOMEM;
    for (size_t i = 0; i < w->n; i++)
        nt[i] = w->ts[(w->head + i) % w->cap];
    free(w->ts);
    s->stamps += nc - w->cap;
    w->ts = nt;
    w->cap = nc;
    w->head = 0;
    return 0;
}

int64_t ref_velocity_hit(ref_velocity_store *s, const char *rule_id, const char *key,
                         int64_t window_ns, int64_t max_requests, int64_t now, int record)
{
    size_t rl = strlen(rule_id), kl = strlen(key);
    char stack_buf[256];
    char *full = rl + kl + 2 <= sizeof stack_buf ? stack_buf : malloc(rl + kl + 2);
    if (!full)
        return CAP_ENOMEM;
    memcpy(full, rule_id, rl);
    full[rl] = '\x1f';
    memcpy(full + rl + 1, key, kl + 1);

    int found;
    size_t at = find(s, full, &found);
    window *w = found ? s->w[at] : NULL;
    if (w && w->n && now < w->ts[(w->head + w->n - 1) % w->cap])
        now = w->ts[(w->head + w->n - 1) % w->cap];
    /* Forget times that have left the window. */
    while (w && w->n && w->ts[w->head] <= now - window_ns) {
        w->head = (w->head + 1) % w->cap;
        w->n--;
    }
    int64_t count = (w ? (int64_t)w->n : 0) + 1;
    if (record) {
        if (!w && !(w = insert(s, full))) {
            if (full != stack_buf)
                free(full);
            return CAP_ENOMEM;
        }
        size_t limit = (size_t)max_requests + 1;
        if (ring_reserve(s, w, limit) == CAP_ENOMEM) {
            if (full != stack_buf)
                free(full);
            return CAP_ENOMEM;
        }
        if (w->cap == 0) {
            /* No room at all: count, but cannot remember. */
        } else if (w->n == w->cap) {
            w->ts[w->head] = now;  /* overwrite the oldest */
            w->head = (w->head + 1) % w->cap;
        } else {
            w->ts[(w->head + w->n) % w->cap] = now;
            w->n++;
        }
        w->last_hit = now;
    }
    if (full != stack_buf)
        free(full);
    return count > max_requests + 1 ? max_requests + 1 : count;
}
