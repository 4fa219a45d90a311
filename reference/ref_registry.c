/* Worker registry; see ref_registry.h and docs/reference-registry.md. */
#include "ref_registry.h"
#include "ref_bugs.h" /* mutant hooks */
#include "ref_sorted.h"
#include "ref_strmap.h"

#include <math.h>
#include <stdalign.h>
#include <stdio.h> /* snprintf only */
#include <stdlib.h>
#include <string.h>

typedef struct {
    ref_worker_info w;
    char *id;       /* the worker id, in a slot_id (slot_id_new) */
    void *hb_block; /* one allocation: every string and array of the heartbeat */
    void *hs_block; /* one allocation: every string and array of the handshake */
    size_t hb_cap, hs_cap; /* their sizes: a later block that fits is built in place */
    uint32_t inflight; /* the caller's in-flight count (first-fit hint) */
    uint32_t order_at; /* where in the first-fit index the walk chose it last (a hint) */
    uint64_t serial;   /* this registration's number (ref_registry_memo) */
} slot;

struct ref_registry {
    size_t max_workers;
    int64_t interval, grace;
    int32_t versions[REF_REGISTRY_VERSIONS_MAX];
    size_t n_versions;
    int speaks_v1;
    int filter_ready_topics;
    int64_t now_max; /* the largest `now` any changing call has seen */
    slot *slots;     /* sorted by id, bytewise */
    size_t n, cap;
    /* full[i]: slot i holds as many of the caller's jobs as it declared it
     * can run (slot_full). Kept beside the slots (same index, same
     * capacity) so that the first-fit walk passes over saturated workers
     * reading one small array instead of each worker's record. */
    uint8_t *full;
    /* score[i]: slot i's ref_registry_score, kept beside the slots like
     * full[] (set where the heartbeat fields it is made of change), for
     * the index's comparisons */
    double *score;
    /* id -> the slot's slot_id (which holds its index), for lookups
     * without a binary search; kept while by_id_ok (out of memory drops it
     * for good: the binary search answers alone then). */
    ref_strmap by_id;
    int by_id_ok;
    /* First-fit index: slot indices sorted by (score, id); rebuilt after a
     * slot is added or removed, kept in place when a heartbeat moves one
     * worker's score. */
    uint32_t *order;
    size_t cap_order;
    int order_dirty;
    /* order[0..full_run) are all full: the first-fit walk starts there
     * rather than passing over them again one by one. Lowered wherever
     * one of them stops being full (full_set) or the index changes before
     * it; raised by the walk itself. */
    size_t full_run;
    /* The smallest last_seen of all slots, when min_ok: kept up to date by
     * heartbeats and handshakes, dropped (min_ok = 0) when a slot is added
     * or removed or the oldest worker is seen again; recomputed by
     * ref_registry_next_expiry. */
    int64_t min_seen;
    int min_ok;
    uint64_t serials; /* the last registration number handed out */
    /* Pool names, one shared copy each (pool_name): text -> pool_name.
     * A worker's pool points at its name's text, so the pool filter
     * compares pointers (select looks the wanted pools up once) and reads
     * nothing of a worker but its slot. */
    ref_strmap pools;
    struct pool_name *pool_last; /* the name a selection found last, or NULL */
};

/* A pool name and how many workers name it; freed with its last worker. */
typedef struct pool_name {
    size_t refs;
    char text[];
} pool_name;

/* ---- helpers ------------------------------------------------------------ */

static const char *nz(const char *s)
{
    return s ? s : "";
}

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int ascii_casecmp_eq(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (;; x++, y++) {
        if (ascii_lower(*x) != ascii_lower(*y))
            return 0;
        if (!*x)
            return 1;
    }
}

/* Checks a string against max bytes; "" for NULL. */
static int check_str(const char *s, size_t max, const char *path, cap_diag *d)
{
    size_t n = strnlen(nz(s), max + 1);
    if (n > max)
        return cap_diag_set(d, CAP_EINVAL, -1, path, "longer than the bound of %zu bytes", max);
    return CAP_OK;
}

static int check_count(size_t n, size_t max, const char *path, cap_diag *d)
{
    if (n > max)
        return cap_diag_set(d, CAP_EINVAL, -1, path, "%zu entries, over the bound of %zu", n,
                            max);
    return CAP_OK;
}

static int check_now(const ref_registry *r, int64_t now, cap_diag *d)
{
    if (now < 0)
        return cap_diag_set(d, CAP_EINVAL, -1, "now", "negative time %lld", (long long)now);
    if (now < r->now_max)
        return cap_diag_set(d, CAP_EINVAL, -1, "now",
                            "time %lld is earlier than an earlier call's %lld", (long long)now,
                            (long long)r->now_max);
    return CAP_OK;
}

/* Space for one block, measured on a first pass (base NULL) and filled on
 * a second. */
typedef struct {
    char *base;
    size_t off;
} arena;

static void *ar_take(arena *a, size_t n, size_t align)
{
    size_t off = (a->off + align - 1) / align * align;
    a->off = off + n;
    return a->base ? a->base + off : NULL;
}

static const char *ar_str(arena *a, const char *s)
{
    size_t n = strlen(nz(s)) + 1;
    char *p = ar_take(a, n, 1);
    if (p)
        memcpy(p, nz(s), n);
    return p ? p : "";
}

/* Builds a block with layout(a, arg, w) twice: once to measure, once to
 * fill *w. The block is `reuse` when that is at least as large (*cap
 * bytes; the layout reads only arg, so the block's old content may be
 * overwritten), else a new one whose size goes to *cap. Returns the
 * block, or NULL when out of memory. */
static void *ar_build(void (*layout)(arena *, const void *, ref_worker_info *), const void *arg,
                      ref_worker_info *w, void *reuse, size_t *cap)
{
    ref_worker_info scratch = *w;
    arena a = {NULL, 0};
    layout(&a, arg, &scratch);
    size_t size = a.off ? a.off : 1;
    if (reuse && *cap >= size) {
        a.base = reuse;
    } else {
        a.base = malloc(size);
        if (!a.base)
            return NULL;
        *cap = size;
    }
    a.off = 0;
    layout(&a, arg, w);
    return a.base;
}

/* Sorts idx[0..n) by key(idx) with a stable insertion sort (n is small and
 * bounded), then drops all but the last of each run of equal keys. Returns
 * the number kept. */
static size_t sort_unique(size_t *idx, size_t n, const char *(*key)(const void *, size_t),
                          const void *arg)
{
    for (size_t i = 1; i < n; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 && strcmp(key(arg, idx[j - 1]), key(arg, v)) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp(key(arg, idx[i]), key(arg, idx[i + 1])) == 0)
            continue;
        idx[k++] = idx[i];
    }
    return k;
}

/* ---- config ------------------------------------------------------------- */

ref_registry_config ref_registry_config_default(void)
{
    ref_registry_config c;
    memset(&c, 0, sizeof c);
    c.max_workers = REF_REGISTRY_DEFAULT_MAX_WORKERS;
    c.heartbeat_interval_ns = REF_REGISTRY_DEFAULT_INTERVAL_NS;
    c.grace_multiplier = REF_REGISTRY_DEFAULT_GRACE_MULTIPLIER;
    c.versions = NULL;
    c.n_versions = 0;
    c.filter_ready_topics = 1;
    return c;
}

int ref_registry_config_check(const ref_registry_config *cfg, cap_diag *d)
{
    if (!cfg)
        return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry_config", "missing");
    if (cfg->max_workers < 1 || cfg->max_workers > REF_REGISTRY_MAX_WORKERS_LIMIT)
        return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry_config.max_workers",
                            "%zu is outside 1..%zu", cfg->max_workers,
                            REF_REGISTRY_MAX_WORKERS_LIMIT);
    if (cfg->heartbeat_interval_ns <= 0)
        return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry_config.heartbeat_interval_ns",
                            "must be positive");
    if (cfg->grace_multiplier < 1)
        return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry_config.grace_multiplier",
                            "must be at least 1");
    if (cfg->heartbeat_interval_ns > INT64_MAX / cfg->grace_multiplier)
        return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry_config.grace_multiplier",
                            "interval x multiplier overflows");
    if (cfg->n_versions > REF_REGISTRY_VERSIONS_MAX)
        return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry_config.versions",
                            "%zu versions, over the bound of %d", cfg->n_versions,
                            REF_REGISTRY_VERSIONS_MAX);
    if (cfg->n_versions && !cfg->versions)
        return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry_config.versions", "missing");
    for (size_t i = 0; i < cfg->n_versions; i++)
        if (cfg->versions[i] <= 0)
            return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry_config.versions",
                                "version %d is not positive", (int)cfg->versions[i]);
    return CAP_OK;
}

int ref_registry_new(const ref_registry_config *cfg, ref_registry **out, cap_diag *d)
{
    ref_registry_config def = ref_registry_config_default();
    if (!out)
        return cap_diag_set(d, CAP_EINVAL, -1, "out", "missing");
    *out = NULL;
    if (!cfg)
        cfg = &def;
    int rc = ref_registry_config_check(cfg, d);
    if (rc)
        return rc;
    ref_registry *r = calloc(1, sizeof *r);
    if (!r)
        return cap_diag_set(d, CAP_ENOMEM, -1, "ref_registry", "out of memory");
    r->max_workers = cfg->max_workers;
    r->interval = cfg->heartbeat_interval_ns;
    r->grace = cfg->heartbeat_interval_ns * cfg->grace_multiplier;
    r->filter_ready_topics = cfg->filter_ready_topics != 0;
    if (cfg->n_versions) {
        memcpy(r->versions, cfg->versions, cfg->n_versions * sizeof *r->versions);
        r->n_versions = cfg->n_versions;
    } else {
        r->versions[0] = CAP_PROTOCOL_VERSION;
        r->n_versions = 1;
    }
    for (size_t i = 0; i < r->n_versions; i++)
        r->speaks_v1 |= r->versions[i] == CAP_PROTOCOL_VERSION;
    ref_strmap_init(&r->by_id);
    r->by_id_ok = 1;
    ref_strmap_init_borrowed(&r->pools);
    *out = r;
    return CAP_OK;
}

/* A worker id kept with the index of its slot: the by_id map points at it,
 * so slots that move along the array (a worker added or removed before
 * them) have a number each rewritten (index_from), not a map entry each
 * (which made registering n workers cost n * n / 2 map updates). */
typedef struct {
    size_t idx;
    char id[];
} slot_id;

static slot_id *slot_id_of(const char *id) { return (slot_id *)(id - offsetof(slot_id, id)); }

/* A new slot_id holding a copy of id (index not yet set), or NULL. */
static char *slot_id_new(const char *id)
{
    size_t n = strlen(id);
    slot_id *c = malloc(sizeof *c + n + 1);
    if (!c)
        return NULL;
    memcpy(c->id, id, n + 1);
    return c->id;
}

/* The shared copy of pool name p (not empty), one more reference taken;
 * NULL when out of memory. */
static const char *pool_take(ref_registry *r, const char *p)
{
    pool_name *e = ref_strmap_get(&r->pools, p);
    if (!e) {
        size_t n = strlen(p);
        e = malloc(sizeof *e + n + 1);
        if (!e)
            return NULL;
        e->refs = 0;
        memcpy(e->text, p, n + 1);
        if (ref_strmap_put(&r->pools, e->text, e)) {
            free(e);
            return NULL;
        }
    }
    e->refs++;
    return e->text;
}

/* Gives back a reference to a worker's pool ("" is no shared name). */
static void pool_drop(ref_registry *r, const char *p)
{
    if (!p[0])
        return;
    pool_name *e = (pool_name *)(p - offsetof(pool_name, text));
    if (--e->refs == 0) {
        if (r->pool_last == e)
            r->pool_last = NULL;
        ref_strmap_del(&r->pools, e->text);
        free(e);
    }
}

static void slot_release(ref_registry *r, slot *s)
{
    pool_drop(r, s->w.pool);
    free(s->id ? slot_id_of(s->id) : NULL);
    free(s->hb_block);
    free(s->hs_block);
}

void ref_registry_free(ref_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        slot_release(r, &r->slots[i]);
    free(r->slots);
    free(r->full);
    free(r->score);
    ref_strmap_free(&r->by_id);
    ref_strmap_free(&r->pools);
    free(r->order);
    free(r);
}

int64_t ref_registry_grace(const ref_registry *r)
{
    return r ? r->grace : 0;
}

/* ---- storage ------------------------------------------------------------ */

/* Index of id, or -(insertion point) - 1. */
static const char *slot_key(const void *base, size_t i)
{
    return ((const slot *)base)[i].id;
}

static ptrdiff_t find_slot(const ref_registry *r, const char *id)
{
    if (r->by_id_ok) {
        const slot_id *v = ref_strmap_get(&r->by_id, id);
        if (v)
            return (ptrdiff_t)v->idx;
    }
    size_t at; /* not held (or no index): the insertion point */
    return ref_sorted_find(r->slots, r->n, slot_key, id, 0, &at) ? (ptrdiff_t)at
                                                                   : -(ptrdiff_t)at - 1;
}

static void worker_blank_heartbeat(ref_worker_info *w)
{
    w->has_heartbeat = 0;
    w->last_heartbeat = 0;
    w->pool = w->region = w->type = w->last_memo = "";
    w->cpu_load = w->gpu_utilization = w->memory_load = 0;
    w->active_jobs = w->max_parallel_jobs = w->progress_pct = 0;
    w->capabilities = NULL;
    w->n_capabilities = 0;
    w->labels = NULL;
    w->n_labels = 0;
}

static void worker_blank_handshake(ref_worker_info *w)
{
    w->has_handshake = 0;
    w->version = 0;
    w->sdk_version = "";
    w->ready_topics = NULL;
    w->n_ready_topics = 0;
    w->hs_capabilities = NULL;
    w->n_hs_capabilities = 0;
}

/* The slots from index `from` on moved (or are new): their indices
 * follow. */
static void index_from(ref_registry *r, size_t from)
{
    for (size_t i = from; i < r->n; i++)
        slot_id_of(r->slots[i].id)->idx = i;
}

/* Indexes the new slot i's id (its index is set, index_from). */
static void index_add(ref_registry *r, size_t i)
{
    if (r->by_id_ok && ref_strmap_put(&r->by_id, r->slots[i].id, slot_id_of(r->slots[i].id))) {
        r->by_id_ok = 0;
        ref_strmap_free(&r->by_id);
    }
}

static void index_drop(ref_registry *r, const char *id)
{
    if (r->by_id_ok)
        ref_strmap_del(&r->by_id, id);
}

static void order_rebuild(ref_registry *r);
static void order_insert(ref_registry *r, size_t pos);

/* A slot's last_seen goes from old to now: keeps the cached minimum. */
static void seen_moves(ref_registry *r, int64_t old, int64_t now)
{
    if (!r->min_ok || now == old)
        return;
    if (old == r->min_seen)
        r->min_ok = 0; /* the oldest moved; another may be as old */
    else if (now < r->min_seen)
        r->min_seen = now;
}

/* Inserts a blank worker at insertion point pos. CAP_EFULL, CAP_ENOMEM. */
static int insert_slot(ref_registry *r, size_t pos, const char *id, cap_diag *d)
{
    if (r->n >= r->max_workers)
        return cap_diag_set(d, CAP_EFULL, -1, "ref_registry",
                            "registry full: %zu workers; worker %s not added", r->max_workers,
                            id);
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        if (nc > r->max_workers)
            nc = r->max_workers;
        slot *ns = realloc(r->slots, nc * sizeof *ns);
        if (!ns)
            return cap_diag_set(d, CAP_ENOMEM, -1, "ref_registry", "out of memory");
        r->slots = ns;
        uint8_t *nf = realloc(r->full, nc);
        if (!nf)
            return cap_diag_set(d, CAP_ENOMEM, -1, "ref_registry", "out of memory");
        r->full = nf;
        double *nsc = realloc(r->score, nc * sizeof *nsc);
        if (!nsc)
            return cap_diag_set(d, CAP_ENOMEM, -1, "ref_registry", "out of memory");
        r->score = nsc;
        r->cap = nc;
    }
    char *copy = slot_id_new(id);
    if (!copy)
        return cap_diag_set(d, CAP_ENOMEM, -1, "ref_registry", "out of memory");
    memmove(&r->slots[pos + 1], &r->slots[pos], (r->n - pos) * sizeof *r->slots);
    memmove(&r->full[pos + 1], &r->full[pos], r->n - pos);
    memmove(&r->score[pos + 1], &r->score[pos], (r->n - pos) * sizeof *r->score);
    r->full[pos] = 0; /* no limit declared yet */
    r->score[pos] = 0; /* no load reported yet (worker_blank_heartbeat) */
    slot *s = &r->slots[pos];
    memset(s, 0, sizeof *s);
    s->id = copy;
    s->serial = ++r->serials;
    s->w.worker_id = copy;
    worker_blank_heartbeat(&s->w);
    worker_blank_handshake(&s->w);
    r->n++;
    index_from(r, pos);
    index_add(r, pos);
    /* the minimum stands: the caller sees the new worker at once, which
     * counts as its last_seen moving from 0 (seen_moves) */
    order_insert(r, pos);
    return CAP_OK;
}

/* Builds a worker's heartbeat block (handshake 0) or handshake block
 * (handshake 1) with layout into *fresh, and stores it in the worker's
 * slot (a new slot at -at - 1 when at < 0): in the block it replaces when
 * that is large enough (a worker's heartbeats are alike: no allocation),
 * else in a new one, the old one freed. The caller then points the
 * worker's fields at *fresh. Returns the slot, or NULL with *rc and d set. */
static slot *store_block(ref_registry *r, ptrdiff_t at, const char *id, int handshake,
                         void (*layout)(arena *, const void *, ref_worker_info *), const void *plan,
                         ref_worker_info *fresh, int *rc, cap_diag *d)
{
    memset(fresh, 0, sizeof *fresh);
    slot *s = at >= 0 ? &r->slots[at] : NULL;
    void **old = s ? (handshake ? &s->hs_block : &s->hb_block) : NULL;
    size_t cap = s ? (handshake ? s->hs_cap : s->hb_cap) : 0;
    void *block = ar_build(layout, plan, fresh, old ? *old : NULL, &cap);
    if (!block) {
        *rc = cap_diag_set(d, CAP_ENOMEM, -1, "ref_registry", "out of memory");
        return NULL;
    }
    if (at < 0) {
        size_t pos = (size_t)(-at - 1);
        if ((*rc = insert_slot(r, pos, id, d))) {
            free(block);
            return NULL;
        }
        s = &r->slots[pos];
        old = handshake ? &s->hs_block : &s->hb_block;
    }
    if (*old != block) {
        free(*old);
        *old = block;
    }
    *(handshake ? &s->hs_cap : &s->hb_cap) = cap;
    return s;
}

static void remove_at(ref_registry *r, size_t i)
{
    index_drop(r, r->slots[i].id);
    slot_release(r, &r->slots[i]);
    memmove(&r->slots[i], &r->slots[i + 1], (r->n - i - 1) * sizeof *r->slots);
    memmove(&r->full[i], &r->full[i + 1], r->n - i - 1);
    memmove(&r->score[i], &r->score[i + 1], (r->n - i - 1) * sizeof *r->score);
    r->n--;
    index_from(r, i);
    r->min_ok = 0;
    order_rebuild(r);
}

/* ---- first-fit index ------------------------------------------------------ */

/* Slot a before slot b in (score, id) order? */
static inline int order_before(const ref_registry *r, uint32_t a, uint32_t b)
{
    double sa = r->score[a], sb = r->score[b];
    if (sa != sb)
        return sa < sb;
    return a < b; /* slots are sorted by id */
}

/* Where slot i goes among order[0..n) (which does not hold it). */
static size_t order_pos(const ref_registry *r, size_t n, uint32_t i)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (order_before(r, r->order[mid], i))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Sorts every slot into the index; out of memory leaves it marked dirty
 * (first fit then falls back to the full scan). */
static void order_rebuild(ref_registry *r)
{
    r->order_dirty = 1;
    r->full_run = 0;
    if (r->cap_order < r->cap) {
        uint32_t *g = realloc(r->order, r->cap * sizeof *g);
        if (!g)
            return;
        r->order = g;
        r->cap_order = r->cap;
    }
    for (size_t i = 0; i < r->n; i++) {
        size_t at = order_pos(r, i, (uint32_t)i);
        memmove(&r->order[at + 1], &r->order[at], (i - at) * sizeof *r->order);
        r->order[at] = (uint32_t)i;
    }
    r->order_dirty = 0;
}

/* Slot pos was just inserted (the slots after it moved up one place).
 * An index in order (not dirty, every score change applied by order_fix)
 * takes it in one binary search: the same order a full sort gives, since
 * (score, slot) is a total order and the shift keeps the others' order. */
static void order_insert(ref_registry *r, size_t pos)
{
    if (r->order_dirty || r->cap_order < r->cap) {
        order_rebuild(r);
        return;
    }
    r->full_run = 0;
    size_t m = r->n - 1; /* the entries the index holds */
    for (size_t k = 0; k < m; k++)
        if (r->order[k] >= pos)
            r->order[k]++;
    size_t at = order_pos(r, m, (uint32_t)pos);
    memmove(&r->order[at + 1], &r->order[at], (m - at) * sizeof *r->order);
    r->order[at] = (uint32_t)pos;
}

/* Slot i's score changed from old: move it to its place. Where it is now
 * is found by a binary search for (old, i): the index is in order by
 * every other slot's score and slot i's old one. */
static void order_fix(ref_registry *r, uint32_t i, double old)
{
    if (r->order_dirty)
        return;
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t o = r->order[mid];
        double so = r->score[o];
        if (o != i && (so < old || (so == old && o < i)))
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t k = lo;
    if (k == r->n || r->order[k] != i) {
        r->order_dirty = 1;
        return;
    }
    /* Only the entries between its old and its new place shift by one. */
    if (k > 0 && order_before(r, i, r->order[k - 1])) { /* it moves left, into [0, k) */
        size_t at = order_pos(r, k, i);
        memmove(&r->order[at + 1], &r->order[at], (k - at) * sizeof *r->order);
        r->order[at] = i;
        if (at < r->full_run)
            r->full_run = at;
    } else if (k + 1 < r->n && order_before(r, r->order[k + 1], i)) { /* right */
        if (k < r->full_run)
            r->full_run = k;
        lo = k + 1;
        hi = r->n;
        while (lo < hi) { /* the first entry after k that i goes before */
            size_t mid = lo + (hi - lo) / 2;
            if (order_before(r, r->order[mid], i))
                lo = mid + 1;
            else
                hi = mid;
        }
        memmove(&r->order[k], &r->order[k + 1], (lo - 1 - k) * sizeof *r->order);
        r->order[lo - 1] = i;
    }
}

/* Does slot s hold as many of the caller's jobs as it declared it can run?
 * What r->full[] caches, updated wherever inflight or the declared limit
 * changes. */
static uint8_t slot_full(const slot *s)
{
    return s->w.max_parallel_jobs > 0 && s->inflight >= (uint32_t)s->w.max_parallel_jobs;
}

/* Slot i's place among order[0..n): tried first where the walk chose it
 * last, or beside it (an index move shifts entries by one place), else
 * found by its (score, index); n when it is not among them. */
static size_t order_place(const ref_registry *r, size_t n, uint32_t i)
{
    size_t p = r->slots[i].order_at;
    for (size_t q = p ? p - 1 : 0; q <= p + 1 && q < n; q++)
        if (r->order[q] == i)
            return q;
    if (!n || order_before(r, r->order[n - 1], i))
        return n; /* every entry there goes before it */
    return order_pos(r, n, i);
}

/* Sets full[at] (slot at's place in the index, when it has one, must be
 * its place for its current score). A slot that stops being full inside
 * the full run cuts the run at its place. */
static void full_set(ref_registry *r, size_t at, uint8_t full)
{
    if (r->full[at] && !full && r->full_run && !r->order_dirty) {
        size_t p = order_place(r, r->full_run, (uint32_t)at);
        if (p < r->full_run)
            r->full_run = p;
    }
    r->full[at] = full;
}

void ref_registry_set_inflight(ref_registry *r, const char *worker_id, uint32_t n)
{
    ptrdiff_t at = r && worker_id ? find_slot(r, worker_id) : -1;
    if (at >= 0) {
        r->slots[at].inflight = n;
        full_set(r, (size_t)at, slot_full(&r->slots[at]));
    }
}

void ref_registry_set_inflight_memo(ref_registry *r, const char *worker_id, ref_registry_memo *m,
                                    uint32_t n, void *tag)
{
    if (!r || !worker_id)
        return;
    ptrdiff_t at;
    if (m && m->serial && m->at < r->n && r->slots[m->at].serial == m->serial) {
        at = (ptrdiff_t)m->at; /* the same registration, still at its place */
    } else {
        at = find_slot(r, worker_id);
        if (at < 0)
            return;
        if (m) {
            m->at = (size_t)at;
            m->serial = r->slots[at].serial;
        }
    }
    slot *s = &r->slots[at];
    s->inflight = n;
    s->w.tag = tag;
    full_set(r, (size_t)at, slot_full(s));
}

static int lost_at(const ref_registry *r, const ref_worker_info *w, int64_t now)
{
    /* now >= 0 and last_seen >= 0, so the difference cannot overflow */
    return now - w->last_seen > r->grace;
}

/* ---- heartbeat ---------------------------------------------------------- */

static int check_pct(float v, const char *path, cap_diag *d)
{
    if (!isfinite(v) || v < 0.0f || v > 100.0f)
        return cap_diag_set(d, CAP_EINVAL, -1, path, "%g is not a number in 0..100", (double)v);
    return CAP_OK;
}

static int check_heartbeat(const Cordum__Agent__V1__Heartbeat *hb, cap_diag *d)
{
    char path[96];
    int rc;
    if (!hb)
        return cap_diag_set(d, CAP_EINVAL, -1, "Heartbeat", "missing");
    if (!*nz(hb->worker_id))
        return cap_diag_set(d, CAP_EINVAL, -1, "Heartbeat.worker_id", "empty");
    if ((rc = check_str(hb->worker_id, REF_REGISTRY_ID_MAX, "Heartbeat.worker_id", d)))
        return rc;
    if (!*nz(hb->pool))
        return cap_diag_set(d, CAP_EINVAL, -1, "Heartbeat.pool", "empty");
    if ((rc = check_str(hb->pool, REF_REGISTRY_ID_MAX, "Heartbeat.pool", d)) ||
        (rc = check_str(hb->region, REF_REGISTRY_STR_MAX, "Heartbeat.region", d)) ||
        (rc = check_str(hb->type, REF_REGISTRY_STR_MAX, "Heartbeat.type", d)) ||
        (rc = check_str(hb->last_memo, REF_REGISTRY_MEMO_MAX, "Heartbeat.last_memo", d)) ||
        (rc = check_pct(hb->cpu_load, "Heartbeat.cpu_load", d)) ||
        (rc = check_pct(hb->gpu_utilization, "Heartbeat.gpu_utilization", d)) ||
        (rc = check_pct(hb->memory_load, "Heartbeat.memory_load", d)))
        return rc;
    if (hb->active_jobs < 0)
        return cap_diag_set(d, CAP_EINVAL, -1, "Heartbeat.active_jobs", "negative (%d)",
                            (int)hb->active_jobs);
    if (hb->max_parallel_jobs < 0)
        return cap_diag_set(d, CAP_EINVAL, -1, "Heartbeat.max_parallel_jobs", "negative (%d)",
                            (int)hb->max_parallel_jobs);
    if (hb->progress_pct < 0 || hb->progress_pct > 100)
        return cap_diag_set(d, CAP_EINVAL, -1, "Heartbeat.progress_pct", "%d is outside 0..100",
                            (int)hb->progress_pct);
    if ((rc = check_count(hb->n_capabilities, REF_REGISTRY_LIST_MAX, "Heartbeat.capabilities",
                          d)) ||
        (rc = check_count(hb->n_labels, REF_REGISTRY_LIST_MAX, "Heartbeat.labels", d)))
        return rc;
    if ((hb->n_capabilities && !hb->capabilities) || (hb->n_labels && !hb->labels))
        return cap_diag_set(d, CAP_EINVAL, -1, "Heartbeat", "list without elements");
    for (size_t i = 0; i < hb->n_capabilities; i++) {
        snprintf(path, sizeof path, "Heartbeat.capabilities[%zu]", i);
        if ((rc = check_str(hb->capabilities[i], REF_REGISTRY_STR_MAX, path, d)))
            return rc;
    }
    for (size_t i = 0; i < hb->n_labels; i++) {
        const Cordum__Agent__V1__Heartbeat__LabelsEntry *e = hb->labels[i];
        snprintf(path, sizeof path, "Heartbeat.labels[%zu]", i);
        if (!e)
            return cap_diag_set(d, CAP_EINVAL, -1, path, "missing entry");
        snprintf(path, sizeof path, "Heartbeat.labels[%zu].key", i);
        if ((rc = check_str(e->key, REF_REGISTRY_STR_MAX, path, d)))
            return rc;
        snprintf(path, sizeof path, "Heartbeat.labels[%zu].value", i);
        if ((rc = check_str(e->value, REF_REGISTRY_STR_MAX, path, d)))
            return rc;
    }
    return CAP_OK;
}

typedef struct {
    const Cordum__Agent__V1__Heartbeat *hb;
    size_t order[REF_REGISTRY_LIST_MAX]; /* label indexes, sorted by key, unique */
    size_t n_order;
} hb_plan;

static const char *hb_label_key(const void *arg, size_t i)
{
    return nz(((const Cordum__Agent__V1__Heartbeat *)arg)->labels[i]->key);
}

static void hb_layout(arena *a, const void *arg, ref_worker_info *w)
{
    const hb_plan *p = arg;
    const Cordum__Agent__V1__Heartbeat *hb = p->hb;
    w->region = ar_str(a, hb->region);
    w->type = ar_str(a, hb->type);
    w->last_memo = ar_str(a, hb->last_memo);
    const char **caps = ar_take(a, hb->n_capabilities * sizeof *caps, alignof(const char *));
    for (size_t i = 0; i < hb->n_capabilities; i++) {
        const char *c = ar_str(a, hb->capabilities[i]);
        if (caps)
            caps[i] = c;
    }
    ref_registry_kv *labels = ar_take(a, p->n_order * sizeof *labels, alignof(ref_registry_kv));
    for (size_t i = 0; i < p->n_order; i++) {
        const Cordum__Agent__V1__Heartbeat__LabelsEntry *e = hb->labels[p->order[i]];
        const char *k = ar_str(a, e->key), *v = ar_str(a, e->value);
        if (labels) {
            labels[i].key = k;
            labels[i].value = v;
        }
    }
    w->capabilities = hb->n_capabilities ? caps : NULL;
    w->n_capabilities = hb->n_capabilities;
    w->labels = p->n_order ? labels : NULL;
    w->n_labels = p->n_order;
}

int ref_registry_heartbeat(ref_registry *r, int64_t now, const Cordum__Agent__V1__Heartbeat *hb,
                           cap_diag *d)
{
    return ref_registry_heartbeat_tag(r, now, hb, NULL, d);
}

int ref_registry_heartbeat_tag(ref_registry *r, int64_t now,
                               const Cordum__Agent__V1__Heartbeat *hb, void **tag, cap_diag *d)
{
    int rc;
    if (tag)
        *tag = NULL;
    if (!r)
        return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry", "missing");
    if ((rc = check_now(r, now, d)) || (rc = check_heartbeat(hb, d)))
        return rc;

    hb_plan plan;
    plan.hb = hb;
    for (size_t i = 0; i < hb->n_labels; i++)
        plan.order[i] = i;
    plan.n_order = sort_unique(plan.order, hb->n_labels, hb_label_key, hb);

    ptrdiff_t at = find_slot(r, hb->worker_id);
    int online;
    if (at < 0) {
        if (r->n >= r->max_workers)
            return cap_diag_set(d, CAP_EFULL, -1, "ref_registry",
                                "registry full: %zu workers; worker %s not added",
                                r->max_workers, hb->worker_id);
        online = 1;
    } else {
        const ref_worker_info *w = &r->slots[at].w;
        online = !w->has_heartbeat || lost_at(r, w, now);
    }

    /* the pool's shared name: the one the worker has when it names the
     * same pool again (the usual case), else a new reference */
    const char *pool = at >= 0 ? r->slots[at].w.pool : "";
    int new_pool = strcmp(pool, hb->pool) != 0;
    if (new_pool && !(pool = pool_take(r, hb->pool)))
        return cap_diag_set(d, CAP_ENOMEM, -1, "ref_registry", "out of memory");
    ref_worker_info fresh;
    slot *s = store_block(r, at, hb->worker_id, 0, hb_layout, &plan, &fresh, &rc, d);
    if (!s) {
        if (new_pool)
            pool_drop(r, pool);
        return rc;
    }
    ref_worker_info *w = &s->w;
    if (new_pool) {
        pool_drop(r, w->pool);
        w->pool = pool;
    }
    double old_score = r->score[s - r->slots];
    w->has_heartbeat = 1;
    w->last_heartbeat = now;
    seen_moves(r, w->last_seen, now);
    w->last_seen = now;
    w->region = fresh.region;
    w->type = fresh.type;
    w->last_memo = fresh.last_memo;
    w->capabilities = fresh.capabilities;
    w->n_capabilities = fresh.n_capabilities;
    w->labels = fresh.labels;
    w->n_labels = fresh.n_labels;
    w->cpu_load = hb->cpu_load;
    w->gpu_utilization = hb->gpu_utilization;
    w->memory_load = hb->memory_load;
    w->active_jobs = hb->active_jobs;
    w->max_parallel_jobs = hb->max_parallel_jobs;
    w->progress_pct = hb->progress_pct;
    r->score[s - r->slots] = ref_registry_score(w);
    if (r->score[s - r->slots] != old_score) /* s's index: a new worker's `at` is negative */
        order_fix(r, (uint32_t)(s - r->slots), old_score);
    full_set(r, (size_t)(s - r->slots), slot_full(s)); /* at its place for its new score */
    r->now_max = now;
    if (tag)
        *tag = w->tag;
    return online ? REF_REGISTRY_ONLINE : REF_REGISTRY_UPDATED;
}

/* ---- handshake ---------------------------------------------------------- */

int ref_registry_negotiate(const int32_t *ours, size_t n_ours, const int32_t *theirs,
                           size_t n_theirs, int32_t *version)
{
    int32_t best = 0;
    for (size_t i = 0; ours && i < n_ours; i++) {
        if (ref_bug_active(REF_BUG_LOWEST_VERSION) ? (ours[i] <= 0 || (best && ours[i] >= best)) : ours[i] <= best) /* mutant lowest-version (ref_bugs.h) */
            continue;
        for (size_t j = 0; theirs && j < n_theirs; j++)
            if (theirs[j] == ours[i]) {
                best = ours[i];
                break;
            }
    }
    if (version)
        *version = best;
    return best > 0 ? CAP_OK : CAP_EVERSION;
}

static int check_handshake(const char *sender_id, const Cordum__Agent__V1__Handshake *hs,
                           cap_diag *d)
{
    char path[96];
    int rc;
    if (!hs)
        return cap_diag_set(d, CAP_EINVAL, -1, "Handshake", "missing");
    if (hs->role != CORDUM__AGENT__V1__COMPONENT_ROLE__COMPONENT_ROLE_WORKER)
        return cap_diag_set(d, CAP_EINVAL, -1, "Handshake.role",
                            "role %d is not COMPONENT_ROLE_WORKER", (int)hs->role);
    if (!*nz(hs->component_id))
        return cap_diag_set(d, CAP_EINVAL, -1, "Handshake.component_id", "empty");
    if ((rc = check_str(hs->component_id, REF_REGISTRY_ID_MAX, "Handshake.component_id", d)))
        return rc;
    if (sender_id && strcmp(sender_id, hs->component_id) != 0)
        return cap_diag_set(d, CAP_EINVAL, -1, "Handshake.component_id",
                            "does not equal the packet's sender_id");
    if ((rc = check_str(hs->sdk_version, REF_REGISTRY_STR_MAX, "Handshake.sdk_version", d)) ||
        (rc = check_count(hs->n_supported_versions, REF_REGISTRY_VERSIONS_MAX,
                          "Handshake.supported_versions", d)) ||
        (rc = check_count(hs->n_ready_topics, REF_REGISTRY_LIST_MAX, "Handshake.ready_topics",
                          d)) ||
        (rc = check_count(hs->n_capabilities, REF_REGISTRY_LIST_MAX, "Handshake.capabilities",
                          d)))
        return rc;
    if ((hs->n_supported_versions && !hs->supported_versions) ||
        (hs->n_ready_topics && !hs->ready_topics) || (hs->n_capabilities && !hs->capabilities))
        return cap_diag_set(d, CAP_EINVAL, -1, "Handshake", "list without elements");
    for (size_t i = 0; i < hs->n_ready_topics; i++) {
        snprintf(path, sizeof path, "Handshake.ready_topics[%zu]", i);
        if ((rc = check_str(hs->ready_topics[i], REF_REGISTRY_STR_MAX, path, d)))
            return rc;
    }
    for (size_t i = 0; i < hs->n_capabilities; i++) {
        snprintf(path, sizeof path, "Handshake.capabilities[%zu]", i);
        if (!hs->capabilities[i])
            return cap_diag_set(d, CAP_EINVAL, -1, path, "missing entry");
        snprintf(path, sizeof path, "Handshake.capabilities[%zu].key", i);
        if ((rc = check_str(hs->capabilities[i]->key, REF_REGISTRY_STR_MAX, path, d)))
            return rc;
    }
    return CAP_OK;
}

typedef struct {
    const Cordum__Agent__V1__Handshake *hs;
    size_t caps[REF_REGISTRY_LIST_MAX]; /* indexes of true keys, sorted, unique */
    size_t n_caps;
} hs_plan;

static const char *hs_cap_key(const void *arg, size_t i)
{
    return nz(((const Cordum__Agent__V1__Handshake *)arg)->capabilities[i]->key);
}

static void hs_layout(arena *a, const void *arg, ref_worker_info *w)
{
    const hs_plan *p = arg;
    const Cordum__Agent__V1__Handshake *hs = p->hs;
    w->sdk_version = ar_str(a, hs->sdk_version);
    const char **topics = ar_take(a, hs->n_ready_topics * sizeof *topics, alignof(const char *));
    for (size_t i = 0; i < hs->n_ready_topics; i++) {
        const char *t = ar_str(a, hs->ready_topics[i]);
        if (topics)
            topics[i] = t;
    }
    const char **caps = ar_take(a, p->n_caps * sizeof *caps, alignof(const char *));
    for (size_t i = 0; i < p->n_caps; i++) {
        const char *c = ar_str(a, hs->capabilities[p->caps[i]]->key);
        if (caps)
            caps[i] = c;
    }
    w->ready_topics = hs->n_ready_topics ? topics : NULL;
    w->n_ready_topics = hs->n_ready_topics;
    w->hs_capabilities = p->n_caps ? caps : NULL;
    w->n_hs_capabilities = p->n_caps;
}

int ref_registry_handshake(ref_registry *r, int64_t now, const char *sender_id,
                           const Cordum__Agent__V1__Handshake *hs, int32_t *version, cap_diag *d)
{
    int rc;
    if (version)
        *version = 0;
    if (!r)
        return cap_diag_set(d, CAP_EINVAL, -1, "ref_registry", "missing");
    if ((rc = check_now(r, now, d)) || (rc = check_handshake(sender_id, hs, d)))
        return rc;

    static const int32_t assumed[] = {CAP_PROTOCOL_VERSION};
    int32_t v = 0;
    int neg = hs->n_supported_versions
                  ? ref_registry_negotiate(r->versions, r->n_versions, hs->supported_versions,
                                           hs->n_supported_versions, &v)
                  : ref_registry_negotiate(r->versions, r->n_versions, assumed, 1, &v);

    hs_plan plan;
    plan.hs = hs;
    plan.n_caps = 0;
    for (size_t i = 0; i < hs->n_capabilities; i++)
        if (hs->capabilities[i]->value)
            plan.caps[plan.n_caps++] = i;
    plan.n_caps = sort_unique(plan.caps, plan.n_caps, hs_cap_key, hs);

    ptrdiff_t at = find_slot(r, hs->component_id);
    if (at < 0 && r->n >= r->max_workers)
        return cap_diag_set(d, CAP_EFULL, -1, "ref_registry",
                            "registry full: %zu workers; worker %s not added", r->max_workers,
                            hs->component_id);
    ref_worker_info fresh;
    slot *s = store_block(r, at, hs->component_id, 1, hs_layout, &plan, &fresh, &rc, d);
    if (!s)
        return rc;
    ref_worker_info *w = &s->w;
    w->has_handshake = 1;
    w->version = v;
    w->sdk_version = fresh.sdk_version;
    w->ready_topics = fresh.ready_topics;
    w->n_ready_topics = fresh.n_ready_topics;
    w->hs_capabilities = fresh.hs_capabilities;
    w->n_hs_capabilities = fresh.n_hs_capabilities;
    if (!w->has_heartbeat) {
        seen_moves(r, w->last_seen, now);
        w->last_seen = now;
    }
    r->now_max = now;
    if (version)
        *version = v;
    if (neg != CAP_OK)
        return cap_diag_set(d, CAP_EVERSION, -1, "Handshake.supported_versions",
                            "no wire version in common with this control plane");
    return CAP_OK;
}

/* ---- expiry ------------------------------------------------------------- */

int ref_registry_expire(ref_registry *r, int64_t now, ref_registry_lost *out, size_t cap)
{
    if (!r || (cap && !out) || check_now(r, now, NULL))
        return CAP_EINVAL;
    r->now_max = now;
    size_t k = 0, keep = 0, moved = SIZE_MAX;
    for (size_t i = 0; i < r->n; i++) {
        slot *s = &r->slots[i];
        if (k < cap && lost_at(r, &s->w, now)) {
            if (moved == SIZE_MAX)
                moved = i;
            index_drop(r, s->id);
            ref_registry_lost *l = &out[k++];
            memset(l, 0, sizeof *l);
            memcpy(l->worker_id, s->id, strlen(s->id) + 1);
            memcpy(l->pool, s->w.pool, strlen(s->w.pool) + 1);
            l->last_seen = s->w.last_seen;
            l->had_heartbeat = s->w.has_heartbeat;
            slot_release(r, s);
            continue;
        }
        if (keep != i) {
            r->slots[keep] = *s;
            r->full[keep] = r->full[i];
            r->score[keep] = r->score[i];
        }
        keep++;
    }
    size_t before = r->n;
    r->n = keep;
    if (keep != before) {
        index_from(r, moved);
        r->min_ok = 0;
        order_rebuild(r);
    }
    return (int)k;
}

int ref_registry_next_expiry(const ref_registry *r, int64_t *at)
{
    if (!r || !r->n)
        return 0;
    int64_t first = r->min_seen;
    if (!r->min_ok) {
        first = r->slots[0].w.last_seen;
        for (size_t i = 1; i < r->n; i++)
            if (r->slots[i].w.last_seen < first)
                first = r->slots[i].w.last_seen;
        /* the cache is not part of the registry's value: r was allocated
         * non-const by ref_registry_new */
        ref_registry *m = (ref_registry *)r;
        m->min_seen = first;
        m->min_ok = 1;
    }
    /* the first instant at which now - last_seen > grace */
    int64_t t = (first > INT64_MAX - r->grace - 1) ? INT64_MAX : first + r->grace + 1;
    if (at)
        *at = t;
    return 1;
}

int ref_registry_remove(ref_registry *r, const char *worker_id)
{
    if (!r || !worker_id)
        return 0;
    ptrdiff_t at = find_slot(r, worker_id);
    if (at < 0)
        return 0;
    remove_at(r, (size_t)at);
    return 1;
}

/* ---- queries ------------------------------------------------------------ */

size_t ref_registry_count(const ref_registry *r)
{
    return r ? r->n : 0;
}

size_t ref_registry_max(const ref_registry *r)
{
    return r ? r->max_workers : 0;
}

const ref_worker_info *ref_registry_find(const ref_registry *r, const char *worker_id)
{
    if (!r || !worker_id)
        return NULL;
    ptrdiff_t at = find_slot(r, worker_id);
    return at < 0 ? NULL : &r->slots[at].w;
}

const ref_worker_info *ref_registry_at(const ref_registry *r, size_t i)
{
    return (r && i < r->n) ? &r->slots[i].w : NULL;
}

int ref_registry_alive(const ref_registry *r, const ref_worker_info *w, int64_t now)
{
    return r && w && !lost_at(r, w, now);
}

int ref_registry_overloaded(const ref_worker_info *w)
{
    if (!w || !w->has_heartbeat)
        return 0;
    if (w->max_parallel_jobs > 0 &&
        (int64_t)w->active_jobs * 10 >= (int64_t)w->max_parallel_jobs * 9)
        return 1;
    return w->cpu_load >= 90.0f || w->gpu_utilization >= 90.0f;
}

double ref_registry_score(const ref_worker_info *w)
{
    return (double)w->active_jobs + (double)w->cpu_load / 100.0 +
           (double)w->gpu_utilization / 100.0;
}

int ref_registry_is_placement_label(const char *key)
{
    static const char *const exempt[] = {"preferred_worker_id", "preferred_pool",
                                         "secrets_present",     "workflow_id",
                                         "run_id",              "step_id",
                                         "node_id",             "worker_id"};
    if (!key)
        return 0;
    for (size_t i = 0; i < sizeof exempt / sizeof exempt[0]; i++)
        if (strcmp(key, exempt[i]) == 0)
            return 0;
    return strncmp(key, "cordum.", 7) != 0 && strncmp(key, "approval_", 9) != 0 &&
           strncmp(key, "cap.conformance.", 16) != 0; /* handler contract, not placement */
}

/* ---- selection ---------------------------------------------------------- */

const char *ref_sel_filter_name(ref_sel_filter f)
{
    switch (f) {
    case REF_SEL_EXCLUDED: return "excluded";
    case REF_SEL_LOST: return "lost";
    case REF_SEL_POOL: return "pool";
    case REF_SEL_VERSION: return "version";
    case REF_SEL_TOPIC: return "topic";
    case REF_SEL_REQUIRES: return "requires";
    case REF_SEL_LABELS: return "labels";
    case REF_SEL_OVERLOADED: return "overloaded";
    default: return "?";
    }
}

const char *ref_sel_outcome_name(ref_sel_outcome o)
{
    switch (o) {
    case REF_SEL_OK: return "ok";
    case REF_SEL_ALL_OVERLOADED: return "all_overloaded";
    case REF_SEL_VERSION_MISMATCH: return "version_mismatch";
    case REF_SEL_NO_WORKERS: return "no_workers";
    }
    return "?";
}

int ref_sel_outcome_error_code(ref_sel_outcome o)
{
    switch (o) {
    case REF_SEL_OK: return 0;
    case REF_SEL_ALL_OVERLOADED:
        return CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_RESOURCE_EXHAUSTED;
    case REF_SEL_VERSION_MISMATCH:
        return CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_PROTOCOL_VERSION_MISMATCH;
    case REF_SEL_NO_WORKERS:
        return CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_WORKER_UNAVAILABLE;
    }
    return CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_WORKER_UNAVAILABLE;
}

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(nz(list[i]), s) == 0)
            return 1;
    return 0;
}

static int has_capability(const ref_worker_info *w, const char *want)
{
    for (size_t i = 0; i < w->n_capabilities; i++)
        if (ascii_casecmp_eq(w->capabilities[i], want))
            return 1;
    for (size_t i = 0; i < w->n_hs_capabilities; i++)
        if (ascii_casecmp_eq(w->hs_capabilities[i], want))
            return 1;
    return 0;
}

static const char *kv_key(const void *base, size_t i)
{
    return ((const ref_registry_kv *)base)[i].key;
}

static const char *worker_label(const ref_worker_info *w, const char *key)
{
    size_t at;
    return ref_sorted_find(w->labels, w->n_labels, kv_key, key, 0, &at) ? w->labels[at].value
                                                                       : NULL;
}

static int requires_ok(const ref_worker_info *w, const Cordum__Agent__V1__JobRequest *job)
{
    const Cordum__Agent__V1__JobMetadata *m = job->meta;
    if (!m)
        return 1;
    for (size_t i = 0; i < m->n_requires; i++)
        if (!has_capability(w, nz(m->requires[i])))
            return 0;
    return 1;
}

static int labels_ok(const ref_worker_info *w, const Cordum__Agent__V1__JobRequest *job)
{
    for (size_t i = 0; i < job->n_labels; i++) {
        const Cordum__Agent__V1__JobRequest__LabelsEntry *e = job->labels[i];
        if (!e || !ref_registry_is_placement_label(nz(e->key)))
            continue;
        const char *have = worker_label(w, nz(e->key));
        if (!have || strcmp(have, nz(e->value)) != 0)
            return 0;
    }
    return 1;
}

static const char *preferred_worker(const Cordum__Agent__V1__JobRequest *job)
{
    const char *p = NULL;
    for (size_t i = 0; i < job->n_labels; i++) {
        const Cordum__Agent__V1__JobRequest__LabelsEntry *e = job->labels[i];
        if (e && strcmp(nz(e->key), "preferred_worker_id") == 0)
            p = nz(e->value);
    }
    return (p && *p) ? p : NULL;
}

/* The most pools a selection looks up as shared names (want_pools); a
 * longer list is compared as strings. */
#define WANT_MAX 16

/* want[i]: the shared name of q->pools[i], or NULL when no worker names
 * it. 1 when done, 0 when the list is longer than WANT_MAX. */
static int want_pools(const ref_registry *r, const ref_sel_request *q, const char **want)
{
    if (q->n_pools > WANT_MAX)
        return 0;
    /* the name found last is tried first: a scheduler asks for the same
     * pool again and again (a cache, not part of the registry's value: r
     * was allocated non-const by ref_registry_new) */
    ref_registry *m = (ref_registry *)r;
    for (size_t i = 0; i < q->n_pools; i++) {
        pool_name *e = m->pool_last;
        if (!e || strcmp(e->text, q->pools[i]) != 0)
            e = ref_strmap_get(&r->pools, q->pools[i]);
        if (e)
            m->pool_last = e;
        want[i] = e ? e->text : NULL;
    }
    return 1;
}

/* Whether w's pool is a wanted one: want (NULL: compare q->pools as
 * strings) holds the wanted names as shared names, so a worker's pool (a
 * shared name, or "" before its first heartbeat) is wanted exactly when it
 * is one of those pointers. */
static int pool_ok(const ref_worker_info *w, const ref_sel_request *q, const char *const *want)
{
    if (!want)
        return in_list(w->pool, q->pools, q->n_pools);
    for (size_t i = 0; i < q->n_pools; i++)
        if (want[i] == w->pool)
            return 1;
    return 0;
}

/* The filters worker w fails. lazy: the exclusion predicate is asked only
 * when nothing but OVERLOADED or VERSION failed yet (first fit: a worker
 * that fails anyway needs no answer from it; the outcome is the same).
 * want: as for pool_ok. */
static unsigned filters_of(const ref_registry *r, const ref_worker_info *w, int64_t now,
                           const ref_sel_request *q, int lazy, const char *const *want)
{
    const Cordum__Agent__V1__JobRequest *job = q->job;
    const char *topic = nz(job->topic);
    unsigned m = 0;
    if (in_list(w->worker_id, q->exclude, q->n_exclude))
        m |= 1u << REF_SEL_EXCLUDED;
    if (lost_at(r, w, now))
        m |= 1u << REF_SEL_LOST;
    if (!w->has_heartbeat || !pool_ok(w, q, want))
        m |= 1u << REF_SEL_POOL;
    if (w->has_handshake ? w->version == 0 : !r->speaks_v1)
        m |= 1u << REF_SEL_VERSION;
    if (r->filter_ready_topics && *topic && w->has_handshake && w->n_ready_topics &&
        !in_list(topic, w->ready_topics, w->n_ready_topics))
        m |= 1u << REF_SEL_TOPIC;
    if (!requires_ok(w, job))
        m |= 1u << REF_SEL_REQUIRES;
    if (!labels_ok(w, job))
        m |= 1u << REF_SEL_LABELS;
    if (ref_registry_overloaded(w))
        m |= 1u << REF_SEL_OVERLOADED;
    const unsigned soft = (1u << REF_SEL_OVERLOADED) | (1u << REF_SEL_VERSION);
    if (q->exclude_fn && !(m & (1u << REF_SEL_EXCLUDED)) && (!lazy || !(m & ~soft)) &&
        q->exclude_fn(q->exclude_ctx, w))
        m |= 1u << REF_SEL_EXCLUDED;
    return m;
}

/* The answer OK with worker s (q->id_by_tag: see there). */
static void pick(const slot *s, const ref_sel_request *q, ref_sel_result *out)
{
    const ref_worker_info *w = &s->w;
    out->outcome = REF_SEL_OK;
    if (!q->id_by_tag || !w->tag)
        memcpy(out->worker_id, w->worker_id, strlen(w->worker_id) + 1);
    memcpy(out->pool, w->pool, strlen(w->pool) + 1);
    out->score = ref_registry_score(w);
    out->tag = w->tag;
}

int ref_registry_select(const ref_registry *r, int64_t now, const ref_sel_request *q,
                        ref_sel_result *out)
{
    if (!out)
        return CAP_EINVAL;
    /* every member zero, its strings "" (their arrays are not cleared) */
    out->outcome = REF_SEL_NO_WORKERS;
    out->worker_id[0] = out->pool[0] = '\0';
    out->score = 0;
    out->tag = NULL;
    out->preferred = 0;
    out->n_workers = out->n_candidates = 0;
    memset(out->filtered, 0, sizeof out->filtered);
    if (!r || !q || !q->job || !q->n_pools || !q->pools || (q->n_exclude && !q->exclude) ||
        check_now(r, now, NULL))
        return CAP_EINVAL;
    for (size_t i = 0; i < q->n_pools; i++)
        if (!q->pools[i] || !*q->pools[i])
            return CAP_EINVAL;

    const unsigned over = 1u << REF_SEL_OVERLOADED, ver = 1u << REF_SEL_VERSION;
    const char *pref = preferred_worker(q->job);
    const char *want_buf[WANT_MAX];
    const char *const *want = want_pools(r, q, want_buf) ? want_buf : NULL;
    int only_over = 0, only_version = 0;
    if (q->first_fit && !pref && !r->order_dirty) {
        out->n_workers = r->n;
        const uint32_t *order = r->order;
        const uint8_t *full = r->full;
        /* the known run of full workers is passed over in one step (the
         * walk counts each of them, as below) */
        size_t k = r->full_run;
        out->filtered[REF_SEL_EXCLUDED] = k;
        for (int first = 1; k < r->n; k++, first = 0) {
            /* Saturated workers (slot_full) are passed over reading one
             * byte each and counted once per run: a store to the count at
             * each of them could alias the registry's fields, which would
             * then be reloaded at each step. */
            size_t run = k;
            while (k < r->n && full[order[k]])
                k++;
            out->filtered[REF_SEL_EXCLUDED] += k - run;
            if (first) /* a hint, not part of the registry's value (r was
                        * allocated non-const by ref_registry_new) */
                ((ref_registry *)r)->full_run = k;
            if (k == r->n)
                break;
            uint32_t i = order[k];
            const ref_worker_info *w = &r->slots[i].w;
            unsigned m = filters_of(r, w, now, q, 1, want);
            for (int f = 0; f < REF_SEL_NFILTERS; f++)
                if (m & (1u << f))
                    out->filtered[f]++;
            if (m == over)
                only_over = 1;
            else if ((m & ~over) == ver)
                only_version = 1;
            if (m)
                continue;
            out->n_candidates = 1;
            r->slots[i].order_at = (uint32_t)k; /* full_set's hint */
            pick(&r->slots[i], q, out);
            return CAP_OK;
        }
        /* No candidate: the outcome from what the walk saw (a passed-over
         * worker is EXCLUDED, so it never makes the answer OVERLOADED or
         * VERSION_MISMATCH, as in the full scan). */
        out->outcome = only_over      ? REF_SEL_ALL_OVERLOADED
                       : only_version ? REF_SEL_VERSION_MISMATCH
                                      : REF_SEL_NO_WORKERS;
        return CAP_OK;
    }
    const ref_worker_info *best = NULL, *preferred = NULL;
    double best_score = 0;
    out->n_workers = r->n;
    for (size_t i = 0; i < r->n; i++) { /* ascending worker id */
        const ref_worker_info *w = &r->slots[i].w;
        unsigned m = filters_of(r, w, now, q, 0, want);
        for (int f = 0; f < REF_SEL_NFILTERS; f++)
            if (m & (1u << f))
                out->filtered[f]++;
        if (m == over)
            only_over = 1;
        else if ((m & ~over) == ver)
            only_version = 1;
        if (m)
            continue;
        out->n_candidates++;
        if (pref && strcmp(w->worker_id, pref) == 0)
            preferred = w;
        double s = ref_registry_score(w);
        if (!best || s < best_score) { /* strict: a tie keeps the smaller id */
            best = w;
            best_score = s;
        }
    }
    if (preferred) {
        best = preferred;
        out->preferred = 1;
    }
    if (best) {
        pick((const slot *)best, q, out); /* w is a slot's first member */
    } else if (only_over) {
        out->outcome = REF_SEL_ALL_OVERLOADED;
    } else if (only_version) {
        out->outcome = REF_SEL_VERSION_MISMATCH;
    }
    return CAP_OK;
}
