/* Simulated NATS bus: routing, queue groups, request/reply, faults, and
 * the encode/strict-decode round trip of every packet. */
#include "sim_bus.h"

#include <math.h> /* isfinite: a macro, no libm call */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_arena.h"
#include "cap_encode.h"

typedef struct {
    char *name;
    size_t name_len; /* strlen(name), handed to the publish observer */
    int64_t skew;
} bus_actor;

typedef struct {
    uint32_t actor;
    char *pattern;
    char *group; /* NULL: plain */
    uint64_t max_msgs, routed;
    int active;  /* routable */
    int removed; /* explicitly unsubscribed: in-flight deliveries dropped */
} bus_sub;

typedef struct {
    sim_fault f; /* strings owned (copies) */
    sim_rng rng;
    uint64_t fired_msg; /* DUPLICATE, REPLAY count: the msg_id it consumed a unit for */
} bus_fault;

/* The subscriptions of one literal pattern (no wildcard token), in
 * subscription order. One block holds the bucket and its own copy of the
 * pattern, and the first ids live in the bucket: a publish that finds its
 * subject reads one block, not a bucket, a pattern and an id array in
 * three places. */
#define LIT_LOCAL_IDS 2
typedef struct {
    uint32_t *ids; /* ids_local until it outgrows it */
    size_t n, cap;
    uint32_t ids_local[LIT_LOCAL_IDS];
    size_t len;    /* of pattern */
    char pattern[];
} lit_bucket;

/* A slot of the literal table: the bucket and its pattern's hash, so a
 * probe that passes another bucket's slot does not read that bucket. */
typedef struct {
    uint64_t hash;
    lit_bucket *lb; /* NULL: empty */
} lit_slot;

/* A subject published before and what routing found for it: its length
 * and its literal bucket. A publish whose subject is one of these skips
 * the subject's scan, hash and probe (one string comparison instead):
 * the text is a valid subject, and a pattern's bucket, once made, stays
 * the same (its ids are read at each publish). An entry that found no
 * bucket is dropped when a bucket is made. Only routing reads the memos:
 * nothing seen outside depends on them. */
#define ROUTE_MEMOS 4         /* kept subjects */
#define ROUTE_MEMO_LEN 31     /* longest subject kept */
typedef struct {
    size_t len;               /* 0: unused */
    lit_bucket *lb;           /* NULL: no literal subscription */
    char text[ROUTE_MEMO_LEN + 1];
} route_memo;

/* Delivery blocks of DELIVERY_BLOCK bytes (struct, subject, reply and
 * bytes of most packets) are reused: sim_delivery_free puts one back on
 * the pool's free list (at most DELIVERY_KEEP kept), and push_copy takes
 * from it before calling malloc. Larger deliveries are plain blocks. The
 * pool outlives its bus while deliveries are out: sim_bus_free marks it
 * and the last delivery back frees it. */
#define DELIVERY_BLOCK 384
#define DELIVERY_KEEP 256
typedef struct free_block {
    struct free_block *next;
} free_block;

struct sim_delivery_pool {
    free_block *free_list;
    size_t nfree;
    size_t out;   /* pooled blocks handed out, not back */
    int bus_gone; /* the bus was freed */
};

struct sim_bus {
    sim_bus_config cfg;
    sim_rng route_rng, latency_rng;
    bus_actor *actors;
    size_t nactors, cap_actors;
    uint32_t *actor_slots;        /* actor id + 1 by name hash, open addressing (0: empty) */
    size_t cap_actor_slots;       /* a power of two, over twice nactors */
    bus_sub *subs;
    size_t nsubs, cap_subs;
    /* Routing index: literal patterns by hash (open addressing over
     * lit_slots), wildcard patterns in one list; both in subscription
     * order, so a publish finds its subscriptions without testing every
     * one. */
    lit_bucket **lits;            /* every bucket, in order of creation */
    size_t nlits, cap_lits;
    lit_slot *lit_slots;          /* open addressing over the buckets */
    size_t cap_slots;             /* a power of two */
    uint32_t *wild;               /* subscriptions with a wildcard token */
    size_t nwild, cap_wild;
    uint32_t *scratch;            /* matching subscriptions of one publish */
    size_t cap_scratch;
    /* Route memos: a subject enters `trial` when routed the long way and
     * moves into `memo` (round robin over next_memo) when it comes again
     * while there, so subjects used once (a worker's own jobs subject) do not
     * push out the ones used all the time. */
    route_memo memo[ROUTE_MEMOS];
    route_memo trial;
    size_t next_memo;
    bus_fault *faults;
    size_t nfaults, cap_faults;
    size_t nreplay;               /* REPLAY rules added (0: no replay work at publish) */
    uint64_t inbox_seq;
    sim_bus_stats stats;
    /* Delivered packets are unpacked here; the arena is reset when the
     * last one handed out is released (sim_bus_release). */
    cap_arena arena;
    size_t unreleased;
    /* sim_bus_publish encodes here (kept within SIM_BUS_ARENA_KEEP bytes). */
    uint8_t *enc;
    size_t cap_enc;
    struct sim_delivery_pool *pool;
};

/* ---- subjects ---- */

/* FNV-1a over a subject's bytes, folded: the routing index's hash. */
#define SUBJECT_HASH_SEED UINT64_C(14695981039346656037)
#define SUBJECT_HASH_STEP(h, c) (((h) ^ (c)) * UINT64_C(1099511628211))
#define SUBJECT_HASH_FOLD(h) ((h) ^ ((h) >> 29))

/* Byte classes of subject text: ordinary, a token's end ('.' or the
 * terminator), or not allowed: space, control characters (0x01-0x1f) and
 * DEL. Bytes from 0x80 up are ordinary. */
enum { SUBJ_ORDINARY = 0, SUBJ_DOT = 1, SUBJ_END = 2, SUBJ_BAD = 3 };

static const unsigned char subject_classes[256] = {
    [0x00] = SUBJ_END, [0x01] = SUBJ_BAD, [0x02] = SUBJ_BAD, [0x03] = SUBJ_BAD, [0x04] = SUBJ_BAD,
    [0x05] = SUBJ_BAD, [0x06] = SUBJ_BAD, [0x07] = SUBJ_BAD, [0x08] = SUBJ_BAD, [0x09] = SUBJ_BAD,
    [0x0a] = SUBJ_BAD, [0x0b] = SUBJ_BAD, [0x0c] = SUBJ_BAD, [0x0d] = SUBJ_BAD, [0x0e] = SUBJ_BAD,
    [0x0f] = SUBJ_BAD, [0x10] = SUBJ_BAD, [0x11] = SUBJ_BAD, [0x12] = SUBJ_BAD, [0x13] = SUBJ_BAD,
    [0x14] = SUBJ_BAD, [0x15] = SUBJ_BAD, [0x16] = SUBJ_BAD, [0x17] = SUBJ_BAD, [0x18] = SUBJ_BAD,
    [0x19] = SUBJ_BAD, [0x1a] = SUBJ_BAD, [0x1b] = SUBJ_BAD, [0x1c] = SUBJ_BAD, [0x1d] = SUBJ_BAD,
    [0x1e] = SUBJ_BAD, [0x1f] = SUBJ_BAD, [0x20] = SUBJ_BAD, ['.'] = SUBJ_DOT, [0x7f] = SUBJ_BAD,
};

/* One pass over the subject, a token at a time: the token's ordinary bytes
 * are hashed in a tight loop, then its end is checked. A valid subject's
 * routing hash and length come out of the same pass (into *hash and *len,
 * either may be NULL), so a publish reads its subject once. */
static int subject_scan(const char *s, int allow_wildcards, uint64_t *hash, size_t *len)
{
    if (!s || !*s)
        return 0;
    uint64_t h = SUBJECT_HASH_SEED;
    const unsigned char *p = (const unsigned char *)s;
    for (;;) {
        const unsigned char *tok = p;
        unsigned cls;
        while ((cls = subject_classes[*p]) == SUBJ_ORDINARY) {
            h = SUBJECT_HASH_STEP(h, *p);
            p++;
        }
        if (cls == SUBJ_BAD || p == tok)
            return 0; /* a byte not allowed, or an empty token */
        if (p - tok == 1 && (tok[0] == '*' || tok[0] == '>')) {
            if (!allow_wildcards)
                return 0;
            if (tok[0] == '>' && cls == SUBJ_DOT) /* '>' only as the last token */
                return 0;
        }
        if (cls == SUBJ_END) {
            size_t n = (size_t)(p - (const unsigned char *)s);
            if (n > SIM_BUS_MAX_SUBJECT)
                return 0;
            if (hash)
                *hash = SUBJECT_HASH_FOLD(h);
            if (len)
                *len = n;
            return 1;
        }
        h = SUBJECT_HASH_STEP(h, '.');
        p++;
    }
}

int sim_subject_valid(const char *s, int allow_wildcards)
{
    return subject_scan(s, allow_wildcards, NULL, NULL);
}

int sim_subject_match(const char *pattern, const char *subject)
{
    const char *p = pattern, *s = subject;
    for (;;) {
        const char *pd = strchr(p, '.'), *sd = strchr(s, '.');
        size_t pl = pd ? (size_t)(pd - p) : strlen(p);
        size_t sl = sd ? (size_t)(sd - s) : strlen(s);
        if (pl == 1 && p[0] == '>')
            return 1; /* s has at least this one token */
        if (!(pl == 1 && p[0] == '*') && (pl != sl || memcmp(p, s, pl) != 0))
            return 0;
        if (!pd || !sd)
            return !pd && !sd;
        p = pd + 1;
        s = sd + 1;
    }
}

/* ---- distributions ---- */

int sim_dist_check(const sim_dist *d)
{
    if (!d || !isfinite(d->a) || !isfinite(d->b) || d->a < 0.0 || d->a > (double)SIM_BUS_MAX_DELAY)
        return CAP_EINVAL;
    switch (d->kind) {
    case SIM_DIST_FIXED:
    case SIM_DIST_EXPONENTIAL: return CAP_OK;
    case SIM_DIST_UNIFORM:
        return d->b >= d->a && d->b <= (double)SIM_BUS_MAX_DELAY ? CAP_OK : CAP_EINVAL;
    case SIM_DIST_LOGNORMAL: return d->a > 0.0 && d->b >= 0.0 && d->b <= 20.0 ? CAP_OK : CAP_EINVAL;
    default: return CAP_EINVAL;
    }
}

static int64_t clamp_ns(double x)
{
    if (!(x > 0.0)) /* also NaN */
        return 0;
    if (x >= (double)SIM_BUS_MAX_DELAY)
        return SIM_BUS_MAX_DELAY;
    return (int64_t)(x + 0.5);
}

int64_t sim_dist_draw(const sim_dist *d, sim_rng *r)
{
    switch (d->kind) {
    case SIM_DIST_FIXED: return clamp_ns(d->a);
    case SIM_DIST_UNIFORM: return sim_rng_range(r, clamp_ns(d->a), clamp_ns(d->b));
    case SIM_DIST_EXPONENTIAL: return clamp_ns(sim_rng_exponential(r, d->a));
    case SIM_DIST_LOGNORMAL: return clamp_ns(d->a * sim_exp(d->b * sim_rng_normal(r, 0.0, 1.0)));
    default: return 0;
    }
}

/* ---- bus ---- */

const char *sim_drop_reason_name(sim_drop_reason r)
{
    switch (r) {
    case SIM_DROP_NO_SUBSCRIBER: return "no_subscriber";
    case SIM_DROP_LOSS: return "loss";
    case SIM_DROP_PARTITION: return "partition";
    case SIM_DROP_UNSUBSCRIBED: return "unsubscribed";
    default: return "unknown";
    }
}

const char *sim_fault_kind_name(sim_fault_kind k)
{
    switch (k) {
    case SIM_FAULT_LATENCY: return "latency";
    case SIM_FAULT_LOSS: return "loss";
    case SIM_FAULT_DUPLICATE: return "duplicate";
    case SIM_FAULT_REORDER: return "reorder";
    case SIM_FAULT_CORRUPT: return "corrupt";
    case SIM_FAULT_PARTITION: return "partition";
    case SIM_FAULT_REPLAY: return "replay";
    }
    return "unknown";
}

void sim_bus_config_default(sim_bus_config *c)
{
    memset(c, 0, sizeof *c);
    c->latency.kind = SIM_DIST_FIXED;
    c->decode_mode = CAP_DECODE_STRICT;
    c->bounds = cap_bounds_default();
    c->event_kind = SIM_BUS_EVENT_KIND;
}

int sim_bus_new(const sim_bus_config *cfg, sim_bus **out)
{
    if (!cfg || !out || sim_dist_check(&cfg->latency) != CAP_OK ||
        (cfg->decode_mode != CAP_DECODE_LENIENT && cfg->decode_mode != CAP_DECODE_STRICT))
        return CAP_EINVAL;
    *out = NULL;
    sim_bus *b = calloc(1, sizeof *b);
    if (!b)
        return CAP_ENOMEM;
    b->cfg = *cfg;
    b->pool = calloc(1, sizeof *b->pool);
    if (!b->pool) {
        free(b);
        return CAP_ENOMEM;
    }
    cap_arena_init(&b->arena, SIM_BUS_ARENA_KEEP);
    sim_rng_stream(&b->route_rng, cfg->seed, "bus.route");
    sim_rng_stream(&b->latency_rng, cfg->seed, "bus.latency");
    *out = b;
    return CAP_OK;
}

/* Frees the pool's free blocks. */
static void pool_drain(struct sim_delivery_pool *pool)
{
    while (pool->free_list) {
        free_block *f = pool->free_list;
        pool->free_list = f->next;
        free(f);
    }
    pool->nfree = 0;
}

static void fault_strings_free(sim_fault *f)
{
    free((char *)f->subject);
    free((char *)f->from);
    free((char *)f->to);
}

void sim_bus_free(sim_bus *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nactors; i++)
        free(b->actors[i].name);
    for (size_t i = 0; i < b->nsubs; i++) {
        free(b->subs[i].pattern);
        free(b->subs[i].group);
    }
    for (size_t i = 0; i < b->nfaults; i++)
        fault_strings_free(&b->faults[i].f);
    for (size_t i = 0; i < b->nlits; i++) {
        if (b->lits[i]->ids != b->lits[i]->ids_local)
            free(b->lits[i]->ids);
        free(b->lits[i]);
    }
    free(b->lits);
    free(b->lit_slots);
    free(b->wild);
    free(b->scratch);
    free(b->actors);
    free(b->actor_slots);
    free(b->subs);
    free(b->faults);
    cap_arena_free(&b->arena);
    free(b->enc);
    pool_drain(b->pool);
    b->pool->bus_gone = 1;
    if (!b->pool->out)
        free(b->pool);
    free(b);
}

/* Grows an array of n elements of size sz to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return CAP_OK;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, c * sz);
    if (!p)
        return CAP_ENOMEM;
    *arr = p;
    *cap = c;
    return CAP_OK;
}

static int name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > SIM_BUS_MAX_NAME)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static uint64_t hash_str(const char *s);

/* The slot of actor `name` (hash h) in actor_slots: its own, or the empty
 * one where it would go. */
static uint32_t *actor_slot(const sim_bus *b, const char *name, uint64_t h)
{
    size_t mask = b->cap_actor_slots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint32_t *sl = &b->actor_slots[i];
        if (!*sl || strcmp(b->actors[*sl - 1].name, name) == 0)
            return sl;
    }
}

/* Refiles every actor in a table of cap slots. */
static int actor_rehash(sim_bus *b, size_t cap)
{
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return CAP_ENOMEM;
    free(b->actor_slots);
    b->actor_slots = slots;
    b->cap_actor_slots = cap;
    for (size_t i = 0; i < b->nactors; i++)
        *actor_slot(b, b->actors[i].name, hash_str(b->actors[i].name)) = (uint32_t)i + 1;
    return CAP_OK;
}

int sim_bus_actor(sim_bus *b, const char *name, uint32_t *id)
{
    if (!b || !name_ok(name))
        return CAP_EINVAL;
    uint64_t h = hash_str(name);
    uint32_t *sl = b->cap_actor_slots ? actor_slot(b, name, h) : NULL;
    if (sl && *sl) {
        if (id)
            *id = *sl - 1;
        return CAP_OK;
    }
    if (b->nactors >= SIM_BUS_MAX_ACTORS)
        return CAP_EFULL;
    if ((b->nactors + 1) * 2 > b->cap_actor_slots &&
        actor_rehash(b, b->cap_actor_slots ? b->cap_actor_slots * 2 : 64) != CAP_OK)
        return CAP_ENOMEM;
    if (grow((void **)&b->actors, &b->cap_actors, b->nactors, sizeof *b->actors) != CAP_OK)
        return CAP_ENOMEM;
    char *copy = strdup(name);
    if (!copy)
        return CAP_ENOMEM;
    b->actors[b->nactors].name = copy;
    b->actors[b->nactors].name_len = strlen(copy);
    b->actors[b->nactors].skew = 0;
    *actor_slot(b, name, h) = (uint32_t)b->nactors + 1;
    if (id)
        *id = (uint32_t)b->nactors;
    b->nactors++;
    return CAP_OK;
}

const char *sim_bus_actor_name(const sim_bus *b, uint32_t id)
{
    return b && id < b->nactors ? b->actors[id].name : NULL;
}

int sim_bus_set_skew(sim_bus *b, uint32_t actor, int64_t skew)
{
    if (!b || actor >= b->nactors)
        return CAP_EINVAL;
    b->actors[actor].skew = skew;
    return CAP_OK;
}

int64_t sim_bus_local_time(const sim_bus *b, uint32_t actor, int64_t now)
{
    if (!b || actor >= b->nactors)
        return now;
    int64_t s = b->actors[actor].skew;
    if (s > 0 && now > INT64_MAX - s)
        return INT64_MAX;
    if (s < 0 && now < INT64_MIN - s)
        return INT64_MIN;
    return now + s;
}

/* ---- routing index ---- */

/* The routing hash of a string (subject_scan's, for any string). */
static uint64_t hash_str(const char *s)
{
    uint64_t h = SUBJECT_HASH_SEED;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = SUBJECT_HASH_STEP(h, *p);
    return SUBJECT_HASH_FOLD(h);
}

static int has_wildcard(const char *pattern)
{
    for (const char *t = pattern; t;) {
        const char *dot = strchr(t, '.');
        size_t tl = dot ? (size_t)(dot - t) : strlen(t);
        if (tl == 1 && (t[0] == '*' || t[0] == '>'))
            return 1;
        t = dot ? dot + 1 : NULL;
    }
    return 0;
}

/* The bucket of a literal subject of length len and hash h, or NULL. */
static lit_bucket *lit_find(const sim_bus *b, const char *subject, size_t len, uint64_t h)
{
    if (!b->cap_slots)
        return NULL;
    size_t mask = b->cap_slots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const lit_slot *sl = &b->lit_slots[i];
        if (!sl->lb)
            return NULL;
        if (sl->hash == h && sl->lb->len == len && memcmp(sl->lb->pattern, subject, len) == 0)
            return sl->lb;
    }
}

/* Files bucket lb (pattern hash h) in a table of cap slots. */
static void lit_place(lit_slot *slots, size_t cap, lit_bucket *lb, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i].lb)
        i = (i + 1) & (cap - 1);
    slots[i].hash = h;
    slots[i].lb = lb;
}

static int lit_rehash(sim_bus *b, size_t cap)
{
    lit_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return CAP_ENOMEM;
    for (size_t i = 0; i < b->cap_slots; i++)
        if (b->lit_slots[i].lb)
            lit_place(slots, cap, b->lit_slots[i].lb, b->lit_slots[i].hash);
    free(b->lit_slots);
    b->lit_slots = slots;
    b->cap_slots = cap;
    return CAP_OK;
}

/* Appends subscription si to lb's ids. */
static int lit_add_id(lit_bucket *lb, uint32_t si)
{
    if (lb->n == lb->cap) {
        uint32_t *ids = malloc(2 * lb->cap * sizeof *ids);
        if (!ids)
            return CAP_ENOMEM;
        memcpy(ids, lb->ids, lb->n * sizeof *ids);
        if (lb->ids != lb->ids_local)
            free(lb->ids);
        lb->ids = ids;
        lb->cap *= 2;
    }
    lb->ids[lb->n++] = si;
    return CAP_OK;
}

static int grow(void **arr, size_t *cap, size_t n, size_t sz);

/* Drops the route memos that found no bucket (a bucket was just made). */
static void memo_forget_unrouted(sim_bus *b)
{
    for (size_t i = 0; i < ROUTE_MEMOS; i++)
        if (!b->memo[i].lb)
            b->memo[i].len = 0;
    if (!b->trial.lb)
        b->trial.len = 0;
}

/* Files subscription si (its pattern already stored) in the index. */
static int index_sub(sim_bus *b, uint32_t si)
{
    const char *pat = b->subs[si].pattern;
    if (has_wildcard(pat)) {
        if (grow((void **)&b->wild, &b->cap_wild, b->nwild, sizeof *b->wild) != CAP_OK)
            return CAP_ENOMEM;
        b->wild[b->nwild++] = si;
        return CAP_OK;
    }
    size_t len = strlen(pat);
    uint64_t h = hash_str(pat);
    lit_bucket *lb = lit_find(b, pat, len, h);
    if (!lb) {
        if ((b->nlits + 1) * 2 > b->cap_slots &&
            lit_rehash(b, b->cap_slots ? b->cap_slots * 2 : 64) != CAP_OK)
            return CAP_ENOMEM;
        if (grow((void **)&b->lits, &b->cap_lits, b->nlits, sizeof *b->lits) != CAP_OK)
            return CAP_ENOMEM;
        lb = malloc(sizeof *lb + len + 1);
        if (!lb)
            return CAP_ENOMEM;
        lb->ids = lb->ids_local;
        lb->n = 0;
        lb->cap = LIT_LOCAL_IDS;
        lb->len = len;
        memcpy(lb->pattern, pat, len + 1);
        b->lits[b->nlits++] = lb;
        lit_place(b->lit_slots, b->cap_slots, lb, h);
        memo_forget_unrouted(b);
    }
    return lit_add_id(lb, si);
}

int sim_bus_subscribe(sim_bus *b, uint32_t actor, const char *pattern, const char *queue_group,
                      uint64_t max_msgs, uint32_t *sub_id)
{
    if (!b || actor >= b->nactors || !sim_subject_valid(pattern, 1))
        return CAP_EINVAL;
    if (queue_group && *queue_group && !name_ok(queue_group))
        return CAP_EINVAL;
    if (b->nsubs >= SIM_BUS_MAX_SUBS)
        return CAP_EFULL;
    if (grow((void **)&b->subs, &b->cap_subs, b->nsubs, sizeof *b->subs) != CAP_OK)
        return CAP_ENOMEM;
    bus_sub s = {0};
    s.actor = actor;
    s.pattern = strdup(pattern);
    s.group = queue_group && *queue_group ? strdup(queue_group) : NULL;
    if (!s.pattern || (queue_group && *queue_group && !s.group)) {
        free(s.pattern);
        free(s.group);
        return CAP_ENOMEM;
    }
    s.max_msgs = max_msgs;
    s.active = 1;
    b->subs[b->nsubs] = s;
    if (index_sub(b, (uint32_t)b->nsubs) != CAP_OK) {
        free(s.pattern);
        free(s.group);
        return CAP_ENOMEM;
    }
    if (sub_id)
        *sub_id = (uint32_t)b->nsubs;
    b->nsubs++;
    return CAP_OK;
}

int sim_bus_unsubscribe(sim_bus *b, uint32_t sub_id)
{
    if (!b || sub_id >= b->nsubs || b->subs[sub_id].removed)
        return CAP_EINVAL;
    b->subs[sub_id].active = 0;
    b->subs[sub_id].removed = 1;
    return CAP_OK;
}

int sim_bus_new_inbox(sim_bus *b, uint32_t actor, char *buf, size_t n)
{
    if (!b || !buf || actor >= b->nactors)
        return CAP_EINVAL;
    int len = snprintf(buf, n, "_INBOX.%u.%llu", (unsigned)actor,
                       (unsigned long long)(b->inbox_seq + 1));
    if (len < 0 || (size_t)len >= n)
        return CAP_EINVAL;
    b->inbox_seq++;
    return CAP_OK;
}

/* ---- faults ---- */

static char *dup_opt(const char *s, int *ok)
{
    if (!s)
        return NULL;
    char *c = strdup(s);
    if (!c)
        *ok = 0;
    return c;
}

int sim_bus_add_fault(sim_bus *b, const sim_fault *f, uint32_t *fault_id)
{
    if (!b || !f || f->start >= f->end)
        return CAP_EINVAL;
    if (f->subject && !sim_subject_valid(f->subject, 1))
        return CAP_EINVAL;
    if ((f->from && !name_ok(f->from)) || (f->to && !name_ok(f->to)))
        return CAP_EINVAL;
    int prob = f->kind == SIM_FAULT_LOSS || f->kind == SIM_FAULT_DUPLICATE ||
               f->kind == SIM_FAULT_CORRUPT;
    if (prob && !(f->p >= 0.0 && f->p <= 1.0))
        return CAP_EINVAL;
    switch (f->kind) {
    case SIM_FAULT_LATENCY:
        if (sim_dist_check(&f->latency) != CAP_OK)
            return CAP_EINVAL;
        break;
    case SIM_FAULT_LOSS:
    case SIM_FAULT_CORRUPT:
    case SIM_FAULT_DUPLICATE: break;
    case SIM_FAULT_REORDER:
        if (f->window < 0 || f->window > SIM_BUS_MAX_DELAY)
            return CAP_EINVAL;
        break;
    case SIM_FAULT_PARTITION:
        if (!f->from)
            return CAP_EINVAL;
        break;
    case SIM_FAULT_REPLAY:
        if (f->count == 0 || f->after <= 0 || f->after > SIM_BUS_MAX_DELAY)
            return CAP_EINVAL;
        break;
    default: return CAP_EINVAL;
    }
    if (b->nfaults >= SIM_BUS_MAX_FAULTS)
        return CAP_EFULL;
    if (grow((void **)&b->faults, &b->cap_faults, b->nfaults, sizeof *b->faults) != CAP_OK)
        return CAP_ENOMEM;
    bus_fault bf = {0};
    bf.f = *f;
    int ok = 1;
    bf.f.subject = dup_opt(f->subject, &ok);
    bf.f.from = dup_opt(f->from, &ok);
    bf.f.to = dup_opt(f->to, &ok);
    if (!ok) {
        fault_strings_free(&bf.f);
        return CAP_ENOMEM;
    }
    char name[40];
    snprintf(name, sizeof name, "bus.fault.%zu", b->nfaults);
    sim_rng_stream(&bf.rng, b->cfg.seed, name);
    b->faults[b->nfaults] = bf;
    if (f->kind == SIM_FAULT_REPLAY)
        b->nreplay++;
    if (fault_id)
        *fault_id = (uint32_t)b->nfaults;
    b->nfaults++;
    return CAP_OK;
}

int sim_bus_end_fault(sim_bus *b, uint32_t fault_id, int64_t now)
{
    if (!b || fault_id >= b->nfaults)
        return CAP_EINVAL;
    if (b->faults[fault_id].f.end > now)
        b->faults[fault_id].f.end = now;
    return CAP_OK;
}

int sim_bus_partition(sim_bus *b, const char *a, const char *other, int64_t start, int64_t end,
                      uint32_t *fault_id)
{
    sim_fault f = {0};
    f.kind = SIM_FAULT_PARTITION;
    f.from = a;
    f.to = other;
    f.start = start;
    f.end = end;
    return sim_bus_add_fault(b, &f, fault_id);
}

static int streq_opt(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

int sim_bus_heal(sim_bus *b, const char *a, const char *other, int64_t now)
{
    if (!b || !a)
        return CAP_EINVAL;
    int n = 0;
    for (size_t i = 0; i < b->nfaults; i++) {
        sim_fault *f = &b->faults[i].f;
        if (f->kind != SIM_FAULT_PARTITION || f->end <= now)
            continue;
        int hit = other ? ((streq_opt(f->from, a) && streq_opt(f->to, other)) ||
                           (streq_opt(f->from, other) && streq_opt(f->to, a)))
                        : (streq_opt(f->from, a) || streq_opt(f->to, a));
        if (hit) {
            f->end = now > f->start ? now : f->start;
            n++;
        }
    }
    return n;
}

static int in_window(const sim_fault *f, int64_t t)
{
    return f->start <= t && t < f->end;
}

/* Does rule f apply to a delivery of `subject` from -> to at t? */
static int fault_applies(const sim_fault *f, const char *subject, const char *from, const char *to,
                         int64_t t)
{
    if (!in_window(f, t))
        return 0;
    if (f->subject && !sim_subject_match(f->subject, subject))
        return 0;
    if (f->kind == SIM_FAULT_PARTITION) {
        if (strcmp(from, to) == 0)
            return 0;
        return (strcmp(f->from, from) == 0 && (!f->to || strcmp(f->to, to) == 0)) ||
               (strcmp(f->from, to) == 0 && (!f->to || strcmp(f->to, from) == 0));
    }
    return (!f->from || strcmp(f->from, from) == 0) && (!f->to || strcmp(f->to, to) == 0);
}

static int partitioned(const sim_bus *b, const char *subject, const char *from, const char *to,
                       int64_t t)
{
    for (size_t i = 0; i < b->nfaults; i++)
        if (b->faults[i].f.kind == SIM_FAULT_PARTITION &&
            fault_applies(&b->faults[i].f, subject, from, to, t))
            return 1;
    return 0;
}

/* ---- publish ---- */

void sim_delivery_free(sim_delivery *d)
{
    /* One block: the struct, then subject, reply and bytes. */
    struct sim_delivery_pool *pool = d ? d->pool : NULL;
    if (!pool) {
        free(d);
        return;
    }
    pool->out--;
    if (pool->bus_gone || pool->nfree >= DELIVERY_KEEP) {
        free(d);
        if (pool->bus_gone && !pool->out)
            free(pool);
        return;
    }
    free_block *f = (free_block *)d;
    f->next = pool->free_list;
    pool->free_list = f;
    pool->nfree++;
}

/* A delivery block of `size` bytes: a pooled one when it fits. */
static sim_delivery *delivery_alloc(sim_bus *b, size_t size)
{
    struct sim_delivery_pool *pool = b->pool;
    if (size > DELIVERY_BLOCK) {
        sim_delivery *d = malloc(size);
        if (d)
            d->pool = NULL;
        return d;
    }
    sim_delivery *d;
    if (pool->free_list) {
        free_block *f = pool->free_list;
        pool->free_list = f->next;
        pool->nfree--;
        d = (sim_delivery *)f;
    } else {
        d = malloc(DELIVERY_BLOCK);
        if (!d)
            return NULL;
    }
    pool->out++;
    d->pool = pool;
    return d;
}

void sim_bus_event_release(sim_event *ev, void *ctx)
{
    const sim_bus *b = ctx;
    if (ev && b && ev->kind == b->cfg.event_kind) {
        sim_delivery_free(ev->data);
        ev->data = NULL;
    }
}

typedef struct {
    uint64_t msg_id;
    uint32_t from;
    const char *subject, *reply;
    const uint8_t *bytes;
    size_t len;
    int64_t now;
    size_t subject_len, reply_len; /* set when routing (push_copy reads them) */
} pub_ctx;

static void drop(sim_bus *b, const pub_ctx *m, const char *to, sim_drop_reason r)
{
    b->stats.dropped[r]++;
    if (b->cfg.on_drop)
        b->cfg.on_drop(b->cfg.ctx, m->now, m->msg_id, b->actors[m->from].name, to, m->subject, r);
}

static int64_t add_sat(int64_t t, int64_t d)
{
    return t > INT64_MAX - d ? INT64_MAX : t + d;
}

/* Copies of one delivery. */
enum { COPY_FIRST = 0, COPY_DUPLICATE = 1, COPY_REPLAY = 2 };

/* Schedules one copy to subscription si; a COPY_REPLAY copy comes `after`
 * ns later than its drawn latency. */
static int push_copy(sim_bus *b, const pub_ctx *m, uint32_t si, int copy, int64_t after,
                     sim_queue *q)
{
    const bus_sub *s = &b->subs[si];
    const char *fromn = b->actors[m->from].name, *ton = b->actors[s->actor].name;
    /* Latency: the last matching LATENCY rule, else the default. */
    int64_t delay = -1;
    for (size_t i = b->nfaults; i-- > 0;) {
        bus_fault *f = &b->faults[i];
        if (f->f.kind == SIM_FAULT_LATENCY && fault_applies(&f->f, m->subject, fromn, ton, m->now)) {
            delay = sim_dist_draw(&f->f.latency, &f->rng);
            break;
        }
    }
    if (delay < 0)
        delay = sim_dist_draw(&b->cfg.latency, &b->latency_rng);
    for (size_t i = 0; i < b->nfaults; i++) {
        bus_fault *f = &b->faults[i];
        if (f->f.kind == SIM_FAULT_REORDER && fault_applies(&f->f, m->subject, fromn, ton, m->now))
            delay = add_sat(delay, sim_rng_range(&f->rng, 0, f->f.window));
    }
    if (copy == COPY_REPLAY)
        delay = add_sat(delay, after);
    size_t sl = m->subject_len, rl = m->reply_len;
    sim_delivery *d = delivery_alloc(b, sizeof *d + sl + 1 + rl + 1 + m->len);
    if (!d)
        return CAP_ENOMEM;
    char *text = (char *)(d + 1);
    *d = (sim_delivery){.msg_id = m->msg_id,
                        .from = m->from,
                        .to = s->actor,
                        .sub_id = si,
                        .sent_at = m->now,
                        .duplicate = copy == COPY_DUPLICATE,
                        .replay = copy == COPY_REPLAY,
                        .subject = text,
                        .reply = text + sl + 1,
                        .bytes = (uint8_t *)text + sl + 1 + rl + 1,
                        .len = m->len,
                        .pool = d->pool};
    memcpy(d->subject, m->subject, sl + 1);
    if (rl) /* most publishes have no reply subject */
        memcpy(d->reply, m->reply, rl);
    d->reply[rl] = '\0';
    if (m->len)
        memcpy(d->bytes, m->bytes, m->len);
    for (size_t i = 0; i < b->nfaults; i++) {
        bus_fault *f = &b->faults[i];
        if (f->f.kind != SIM_FAULT_CORRUPT || !fault_applies(&f->f, m->subject, fromn, ton, m->now))
            continue;
        if (sim_rng_bernoulli(&f->rng, f->f.p) && d->len > 0) {
            uint64_t pos = sim_rng_below(&f->rng, d->len);
            d->bytes[pos] ^= (uint8_t)(1 + sim_rng_below(&f->rng, 255));
            d->corrupted = 1;
        }
    }
    sim_event ev = {0};
    ev.time = add_sat(m->now, delay);
    ev.kind = b->cfg.event_kind;
    ev.actor = s->actor;
    ev.id = m->msg_id;
    ev.data = d;
    int rc = sim_queue_push(q, &ev, NULL);
    if (rc != CAP_OK) {
        sim_delivery_free(d);
        return rc;
    }
    b->stats.routed++;
    if (copy == COPY_DUPLICATE)
        b->stats.duplicated++;
    else if (copy == COPY_REPLAY)
        b->stats.replayed++;
    if (d->corrupted)
        b->stats.corrupted++;
    return CAP_OK;
}

/* Loss, duplication, then the copies, for one target subscription. */
static int route_to(sim_bus *b, const pub_ctx *m, uint32_t si, sim_queue *q)
{
    bus_sub *s = &b->subs[si];
    s->routed++;
    if (s->max_msgs && s->routed >= s->max_msgs)
        s->active = 0;
    const char *fromn = b->actors[m->from].name, *ton = b->actors[s->actor].name;
    if (partitioned(b, m->subject, fromn, ton, m->now)) {
        drop(b, m, ton, SIM_DROP_PARTITION);
        return CAP_OK;
    }
    for (size_t i = 0; i < b->nfaults; i++) {
        bus_fault *f = &b->faults[i];
        if (f->f.kind == SIM_FAULT_LOSS && fault_applies(&f->f, m->subject, fromn, ton, m->now) &&
            sim_rng_bernoulli(&f->rng, f->f.p)) {
            drop(b, m, ton, SIM_DROP_LOSS);
            return CAP_OK;
        }
    }
    int dup = 0;
    for (size_t i = 0; i < b->nfaults; i++) {
        bus_fault *f = &b->faults[i];
        if (f->f.kind != SIM_FAULT_DUPLICATE || !fault_applies(&f->f, m->subject, fromn, ton, m->now))
            continue;
        if (f->fired_msg == m->msg_id)
            dup = 1;
        if (f->f.p > 0.0 && sim_rng_bernoulli(&f->rng, f->f.p))
            dup = 1;
    }
    int rc = push_copy(b, m, si, COPY_FIRST, 0, q);
    if (rc == CAP_OK && dup)
        rc = push_copy(b, m, si, COPY_DUPLICATE, 0, q);
    /* REPLAY: one late copy per rule that took this publish, in rule order. */
    for (size_t i = 0; b->nreplay && i < b->nfaults && rc == CAP_OK; i++) {
        bus_fault *f = &b->faults[i];
        if (f->f.kind == SIM_FAULT_REPLAY && f->fired_msg == m->msg_id &&
            fault_applies(&f->f, m->subject, fromn, ton, m->now))
            rc = push_copy(b, m, si, COPY_REPLAY, f->f.after, q);
    }
    return rc;
}

static int sub_matches(const bus_sub *s, const char *subject)
{
    return s->active && sim_subject_match(s->pattern, subject);
}

/* The memo of subject, or NULL. */
static route_memo *memo_find(sim_bus *b, const char *subject)
{
    for (size_t i = 0; i < ROUTE_MEMOS; i++)
        if (b->memo[i].len && strcmp(b->memo[i].text, subject) == 0)
            return &b->memo[i];
    return NULL;
}

/* Notes that subject (valid, len bytes) routed to bucket lb: a second
 * sighting in a row of trials moves it from the trial to a memo. */
static void memo_note(sim_bus *b, const char *subject, size_t len, lit_bucket *lb)
{
    if (len > ROUTE_MEMO_LEN)
        return;
    route_memo *m = &b->trial;
    if (b->trial.len == len && memcmp(b->trial.text, subject, len) == 0) {
        m = &b->memo[b->next_memo];
        b->next_memo = (b->next_memo + 1) % ROUTE_MEMOS;
        b->trial.len = 0;
    }
    m->len = len;
    m->lb = lb;
    memcpy(m->text, subject, len + 1);
}

/* The active subscriptions matching subject (a valid subject of literal
 * bucket lb, NULL: none), in subscription order, into b->scratch; their
 * count, or -1 when out of memory. */
static long collect_matches(sim_bus *b, const char *subject, const lit_bucket *lb)
{
    size_t need = (lb ? lb->n : 0) + b->nwild;
    if (need > b->cap_scratch) {
        size_t c = b->cap_scratch ? b->cap_scratch : 16;
        while (c < need)
            c *= 2;
        uint32_t *g = realloc(b->scratch, c * sizeof *g);
        if (!g)
            return -1;
        b->scratch = g;
        b->cap_scratch = c;
    }
    /* Merge the literal bucket and the wildcard list (both ascending). */
    size_t n = 0, i = 0, k = 0, nl = lb ? lb->n : 0;
    while (i < nl || k < b->nwild) {
        uint32_t si;
        if (k >= b->nwild || (i < nl && lb->ids[i] < b->wild[k])) {
            si = lb->ids[i++];
            if (!b->subs[si].active)
                continue;
        } else {
            si = b->wild[k++];
            if (!sub_matches(&b->subs[si], subject))
                continue;
        }
        b->scratch[n++] = si;
    }
    return (long)n;
}

/* Does the count of rule f (of kind `kind`) take a publish of subject by
 * actor `from` at now? */
static int count_rule_takes(const sim_bus *b, const bus_fault *f, sim_fault_kind kind,
                            const char *subject, uint32_t from, int64_t now)
{
    return f->f.kind == kind && f->f.count > 0 && in_window(&f->f, now) &&
           (!f->f.subject || sim_subject_match(f->f.subject, subject)) &&
           (!f->f.from || strcmp(f->f.from, b->actors[from].name) == 0);
}

/* Is subscription si in queue group g (not NULL)? */
static int in_group(const sim_bus *b, uint32_t si, const char *g)
{
    const char *sg = b->subs[si].group;
    return sg == g || (sg && strcmp(sg, g) == 0);
}

/* Is match[i] the first of match[0..n) in its queue group? */
static inline int first_in_group(const sim_bus *b, const uint32_t *match, size_t i)
{
    if (i == 0)
        return 1;
    const char *g = b->subs[match[i]].group;
    for (size_t j = 0; j < i; j++)
        if (in_group(b, match[j], g))
            return 0;
    return 1;
}

/* sim_rng_below(r, n) without its divisions when n is 1: the same one
 * draw, and 0. */
static uint64_t draw_below(sim_rng *r, uint64_t n)
{
    if (n == 1) {
        (void)sim_rng_u64(r);
        return 0;
    }
    return sim_rng_below(r, n);
}

int sim_bus_publish_bytes(sim_bus *b, uint32_t from, const char *subject, const char *reply,
                          const uint8_t *bytes, size_t len, int64_t now, sim_queue *q)
{
    if (!b || !q || !subject)
        return CAP_EINVAL;
    /* The subject: a memo's, else scanned, hashed and looked up. */
    const route_memo *memo = memo_find(b, subject);
    size_t subject_len = 0, reply_len = 0;
    lit_bucket *lb = NULL;
    uint64_t hash = 0;
    if (memo) {
        subject_len = memo->len;
        lb = memo->lb;
    } else if (subject_scan(subject, 0, &hash, &subject_len)) {
        lb = lit_find(b, subject, subject_len, hash);
    } else {
        return CAP_EINVAL;
    }
    if (from >= b->nactors || (reply && *reply && !subject_scan(reply, 0, NULL, &reply_len)) ||
        (len && !bytes) || len > SIM_BUS_MAX_BYTES)
        return CAP_EINVAL;
    if (!memo)
        memo_note(b, subject, subject_len, lb);
    long nm = collect_matches(b, subject, lb);
    if (nm < 0)
        return CAP_ENOMEM;
    const uint32_t *match = b->scratch;
    /* Targets: every matching plain subscription, one per matching group. */
    size_t targets = 0;
    for (size_t i = 0; i < (size_t)nm; i++)
        if (!b->subs[match[i]].group || first_in_group(b, match, i))
            targets++;
    size_t per_target = 2; /* the copy and a duplicate */
    for (size_t i = 0; b->nreplay && i < b->nfaults; i++)
        if (count_rule_takes(b, &b->faults[i], SIM_FAULT_REPLAY, subject, from, now))
            per_target++; /* and a replay per rule that will take this publish */
    if (sim_queue_space(q) < per_target * targets)
        return CAP_EFULL;

    /* Decide the targets first (max_msgs may deactivate a subscription as
     * it is routed to; the observer may publish), then route in
     * subscription order. */
    uint32_t chosen_small[16];
    uint32_t *chosen = targets <= 16 ? chosen_small : malloc((targets ? targets : 1) * sizeof *chosen);
    if (!chosen)
        return CAP_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < (size_t)nm; i++) {
        const bus_sub *s = &b->subs[match[i]];
        if (!s->group) {
            chosen[n++] = match[i];
            continue;
        }
        if (!first_in_group(b, match, i))
            continue;
        uint64_t members = 1; /* match[i], then the later ones */
        for (size_t j = i + 1; j < (size_t)nm; j++)
            members += (uint64_t)in_group(b, match[j], s->group);
        uint64_t pick = draw_below(&b->route_rng, members);
        for (size_t j = i; j < (size_t)nm; j++)
            if (in_group(b, match[j], s->group) && pick-- == 0) {
                chosen[n++] = match[j];
                break;
            }
    }
    pub_ctx m = {++b->stats.published, from, subject, reply ? reply : "", bytes, len, now,
                 subject_len, reply_len};
    if (b->cfg.on_publish) {
        const sim_publish_strings ps = {b->actors[from].name,     subject,     m.reply,
                                        b->actors[from].name_len, subject_len, reply_len,
                                        m.msg_id};
        b->cfg.on_publish(b->cfg.ctx, now, &ps, bytes, len);
    }
    for (size_t i = 0; i < b->nfaults; i++) { /* DUPLICATE, REPLAY "next N packets" */
        bus_fault *f = &b->faults[i];
        if (count_rule_takes(b, f, SIM_FAULT_DUPLICATE, subject, from, now) ||
            (b->nreplay && count_rule_takes(b, f, SIM_FAULT_REPLAY, subject, from, now))) {
            f->f.count--;
            f->fired_msg = m.msg_id;
        }
    }
    if (targets == 0) {
        drop(b, &m, NULL, SIM_DROP_NO_SUBSCRIBER);
        if (chosen != chosen_small)
            free(chosen);
        return CAP_OK;
    }
    int rc = CAP_OK;
    for (size_t k = 0; k < n && rc == CAP_OK; k++)
        rc = route_to(b, &m, chosen[k], q);
    if (chosen != chosen_small)
        free(chosen);
    return rc;
}

int sim_bus_publish(sim_bus *b, uint32_t from, const char *subject, const char *reply,
                    const cap_packet *packet, int64_t now, sim_queue *q)
{
    if (!packet)
        return CAP_EINVAL;
    if (!b)
        return CAP_EINVAL;
    size_t len = 0;
    const uint8_t *bytes;
    int rc = cap_encode_back(&packet->base, &b->enc, &b->cap_enc, &bytes, &len);
    if (rc != CAP_OK)
        return rc;
    /* The bytes (at the buffer's end) are copied into each delivery: the
     * buffer is free again once this returns (an observer publishing from
     * its callback encodes after the bytes it was shown were used). */
    uint8_t *buf = b->enc;
    b->enc = NULL;
    size_t cap = b->cap_enc;
    b->cap_enc = 0;
    rc = sim_bus_publish_bytes(b, from, subject, reply, bytes, len, now, q);
    if (!b->enc && cap <= SIM_BUS_ARENA_KEEP) {
        b->enc = buf;
        b->cap_enc = cap;
    } else {
        free(buf);
    }
    return rc;
}

int sim_bus_request(sim_bus *b, uint32_t from, const char *subject, const cap_packet *packet,
                    int64_t now, sim_queue *q, char *inbox)
{
    if (!b || !inbox || !packet || from >= b->nactors || !sim_subject_valid(subject, 0))
        return CAP_EINVAL;
    int rc = sim_bus_new_inbox(b, from, inbox, SIM_BUS_MAX_SUBJECT + 1);
    uint32_t sid = 0;
    if (rc == CAP_OK)
        rc = sim_bus_subscribe(b, from, inbox, NULL, 1, &sid);
    if (rc == CAP_OK) {
        rc = sim_bus_publish(b, from, subject, inbox, packet, now, q);
        if (rc != CAP_OK)
            (void)sim_bus_unsubscribe(b, sid);
    }
    return rc;
}

/* ---- deliver ---- */

static int deliver_decode(sim_bus *b, const sim_delivery *d, sim_msg *msg, cap_diag *diag);

int sim_bus_deliver(sim_bus *b, const sim_event *ev, int64_t now, sim_msg *msg, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (!b || !ev || !msg || ev->kind != b->cfg.event_kind || !ev->data)
        return cap_diag_set(diag, CAP_EINVAL, -1, "", "not a delivery event of this bus");
    const sim_delivery *d = ev->data;
    if (d->from >= b->nactors || d->to >= b->nactors || d->sub_id >= b->nsubs)
        return cap_diag_set(diag, CAP_EINVAL, -1, "", "delivery names an unknown actor");
    memset(msg, 0, sizeof *msg);
    msg->d = d;
    msg->local_time = sim_bus_local_time(b, d->to, now);
    const char *ton = b->actors[d->to].name;
    if (b->subs[d->sub_id].removed)
        msg->reason = SIM_DROP_UNSUBSCRIBED;
    else if (b->nfaults && partitioned(b, d->subject, b->actors[d->from].name, ton, now))
        msg->reason = SIM_DROP_PARTITION;
    else
        return deliver_decode(b, d, msg, diag);
    pub_ctx m = {d->msg_id, d->from, d->subject, d->reply, d->bytes, d->len, now};
    drop(b, &m, ton, msg->reason);
    return SIM_BUS_DROPPED;
}

/* The decode of a delivery that was not dropped (sim_bus_deliver). */
static int deliver_decode(sim_bus *b, const sim_delivery *d, sim_msg *msg, cap_diag *diag)
{
    int rc = cap_packet_decode_in(d->bytes, d->len, &b->cfg.bounds, b->cfg.decode_mode,
                                  &b->arena.allocator, &msg->packet, diag);
    if (rc != CAP_OK) {
        msg->packet = NULL;
        b->stats.decode_failures++;
        if (!b->unreleased) /* what the failed unpack took */
            cap_arena_reset(&b->arena);
        return rc;
    }
    b->unreleased++;
    b->stats.delivered++;
    return CAP_OK;
}

void sim_bus_release(sim_bus *b, sim_msg *msg)
{
    if (!b || !msg || !msg->packet)
        return;
    msg->packet = NULL;
    if (b->unreleased && --b->unreleased == 0)
        cap_arena_reset(&b->arena);
}

size_t sim_bus_held(const sim_bus *b)
{
    return b ? cap_arena_held(&b->arena) + b->cap_enc : 0;
}

const sim_bus_stats *sim_bus_get_stats(const sim_bus *b)
{
    return b ? &b->stats : NULL;
}
