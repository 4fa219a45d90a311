/* Replay and duplicate guard (see ref_dedupe.h).
 *
 * Storage: a slot array of fixed-size entries that grows by doubling up to
 * max_entries, a doubly linked list through the slots in recording order
 * (head = oldest, the next to evict), a free list of slots, and an
 * open-addressing index (linear probing, backward-shift deletion) from each
 * 32-byte key to its slot. Keys are SHA-256 outputs, so their first eight
 * bytes serve as the hash; each index cell keeps 32 bits of that hash next
 * to its reference, so a probe run is walked (and a miss decided) without
 * touching the entries. The index answers "is this exact key held?" and
 * nothing else; every order that can reach a caller comes from the list,
 * i.e. from sequence numbers. */
#include "ref_dedupe.h"

#include <stdlib.h>
#include <string.h>

#include "cap_sha256.h"
#include "cap_sign.h"
#include "cap_time.h"

#define NIL UINT32_MAX
#define MIN_SLOTS 64u
#define KEY_DOMAIN "cap-dedupe-key-v1"

typedef struct {
    uint64_t seq; /* 0: a free slot */
    int64_t first_seen;
    int64_t expires; /* retention ends: the entry counts while now < expires */
    uint64_t tag;
    uint8_t body_digest[32];
    uint8_t key[REF_DEDUPE_MAX_KEYS][32];
    uint8_t kind[REF_DEDUPE_MAX_KEYS];
    uint8_t n_keys;
    uint32_t prev, next; /* recording order; `next` also chains free slots */
} entry;

/* An index cell: ref 0 is empty, else slot * REF_DEDUPE_MAX_KEYS + key
 * number + 1; hash is the low 32 bits of the key's hash (the index never
 * has more than 2^32 cells, so it also gives the home cell). */
typedef struct {
    uint32_t ref;
    uint32_t hash;
} icell;

struct ref_dedupe {
    ref_dedupe_config cfg;
    entry *e;
    uint32_t cap;       /* slots allocated */
    uint32_t used;      /* slots ever handed out (the rest are fresh) */
    uint32_t free_head; /* released slots */
    uint32_t head, tail;
    size_t count;
    icell *index;    /* index_mask + 1 cells */
    size_t index_mask;
    uint64_t seq;
    /* No entry expires before this (a lower bound, so a full sweep that
     * would find nothing is skipped); INT64_MIN: unknown. */
    int64_t expiry_lb;
    ref_dedupe_stats st;
};

/* --- small helpers -------------------------------------------------------- */

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

const char *ref_dedupe_verdict_name(ref_dedupe_verdict v)
{
    switch (v) {
    case REF_DEDUPE_FIRST: return "first";
    case REF_DEDUPE_DUPLICATE: return "duplicate";
    case REF_DEDUPE_EXPIRED: return "expired";
    case REF_DEDUPE_CONFLICT: return "conflict";
    }
    return "unknown";
}

const char *ref_dedupe_key_kind_name(ref_dedupe_key_kind k)
{
    switch (k) {
    case REF_DEDUPE_KEY_BODY: return "body";
    case REF_DEDUPE_KEY_MESSAGE_ID: return "message_id";
    case REF_DEDUPE_KEY_JOB_REQUEST: return "job_request";
    case REF_DEDUPE_KEY_JOB_RESULT: return "job_result";
    }
    return "unknown";
}

/* --- config --------------------------------------------------------------- */

ref_dedupe_config ref_dedupe_config_default(void)
{
    ref_dedupe_config c = {
        .ttl_ns = REF_DEDUPE_DEFAULT_TTL_NS,
        .max_entries = REF_DEDUPE_DEFAULT_MAX_ENTRIES,
        .skew_ns = REF_DEDUPE_DEFAULT_SKEW_NS,
        .on_full = REF_DEDUPE_EVICT_OLDEST,
    };
    return c;
}

int ref_dedupe_config_check(const ref_dedupe_config *cfg)
{
    if (!cfg || cfg->ttl_ns <= 0 || cfg->skew_ns < 0 || cfg->max_entries == 0 ||
        cfg->max_entries > REF_DEDUPE_MAX_ENTRIES_LIMIT ||
        (cfg->on_full != REF_DEDUPE_EVICT_OLDEST && cfg->on_full != REF_DEDUPE_REFUSE))
        return CAP_EINVAL;
    return CAP_OK;
}

/* --- keys ----------------------------------------------------------------- */

/* SHA-256 over KEY_DOMAIN, NUL, the kind, then each part as an 8-byte
 * big-endian length (or value) followed by its bytes: no two different
 * part lists share an encoding. The parts are gathered in buf and handed
 * to the digest in one piece (or in buf-sized pieces for long parts). */
typedef struct {
    cap_sha256_ctx c;
    size_t n; /* bytes waiting in buf */
    uint8_t buf[512];
} key_hash;

static void kh_flush(key_hash *h)
{
    cap_sha256_update(&h->c, h->buf, h->n);
    h->n = 0;
}

static void kh_raw(key_hash *h, const void *p, size_t n)
{
    if (n > sizeof h->buf - h->n) {
        kh_flush(h);
        if (n > sizeof h->buf) {
            cap_sha256_update(&h->c, p, n);
            return;
        }
    }
    memcpy(h->buf + h->n, p, n);
    h->n += n;
}

static void kh_u64(key_hash *h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
    kh_raw(h, b, sizeof b);
}

static void kh_bytes(key_hash *h, const void *p, size_t n)
{
    kh_u64(h, n);
    kh_raw(h, p, n);
}

static void kh_str(key_hash *h, const char *s)
{
    s = str_or_empty(s);
    kh_bytes(h, s, strlen(s));
}

static void kh_begin(key_hash *h, ref_dedupe_key_kind kind)
{
    static const char domain[] = KEY_DOMAIN; /* with its NUL */
    uint8_t k = (uint8_t)kind;
    cap_sha256_init(&h->c);
    h->n = 0;
    kh_raw(h, domain, sizeof domain);
    kh_raw(h, &k, 1);
}

static void kh_end(key_hash *h, ref_dedupe_probe *out, ref_dedupe_key_kind kind)
{
    ref_dedupe_key *k = &out->keys[out->n_keys];
    kh_flush(h);
    cap_sha256_final(&h->c, k->id);
    k->kind = kind;
    out->n_keys++;
}

static void dispatch_parts(key_hash *h, const Cordum__Agent__V1__DispatchIdentity *d)
{
    kh_str(h, d ? d->dispatch_id : NULL);
    kh_u64(h, d ? d->attempt : 0);
}

/* The value of a label, the last one when repeated (proto3 map semantics). */
static const char *request_label(const Cordum__Agent__V1__JobRequest *r, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < r->n_labels; i++)
        if (r->labels[i] && r->labels[i]->key && strcmp(r->labels[i]->key, key) == 0)
            v = r->labels[i]->value;
    return v;
}

static void logical_key(key_hash *h, const cap_packet *p, ref_dedupe_probe *out)
{
    if (p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST && p->job_request &&
        p->job_request->job_id && p->job_request->job_id[0]) {
        const Cordum__Agent__V1__JobRequest *r = p->job_request;
        kh_begin(h, REF_DEDUPE_KEY_JOB_REQUEST);
        kh_str(h, r->job_id);
        dispatch_parts(h, r->dispatch);
        kh_str(h, request_label(r, REF_DEDUPE_BUS_MSG_ID_LABEL));
        kh_end(h, out, REF_DEDUPE_KEY_JOB_REQUEST);
    } else if (p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT &&
               p->job_result && p->job_result->job_id && p->job_result->job_id[0]) {
        const Cordum__Agent__V1__JobResult *r = p->job_result;
        kh_begin(h, REF_DEDUPE_KEY_JOB_RESULT);
        kh_str(h, r->job_id);
        dispatch_parts(h, r->dispatch);
        kh_u64(h, (uint64_t)(int64_t)r->status);
        kh_end(h, out, REF_DEDUPE_KEY_JOB_RESULT);
    }
}

int ref_dedupe_probe_digest(const cap_packet *p, const uint8_t body_digest[32],
                            ref_dedupe_probe *out)
{
    if (!out)
        return CAP_EINVAL;
    memset(out, 0, sizeof *out);
    if (!p || !body_digest)
        return CAP_EINVAL;
    memcpy(out->body_digest, body_digest, 32);
    const Cordum__Agent__V1__SignatureMetadata *md = p->signature_metadata;
    if (md && md->expires_at) {
        out->has_expiry = 1;
        out->expires_at = cap_timestamp_nanos(md->expires_at);
    }

    key_hash h;
    kh_begin(&h, REF_DEDUPE_KEY_BODY);
    kh_str(&h, p->sender_id);
    kh_bytes(&h, body_digest, 32);
    kh_end(&h, out, REF_DEDUPE_KEY_BODY);
    if (md && md->message_id.len > 0) {
        kh_begin(&h, REF_DEDUPE_KEY_MESSAGE_ID);
        kh_str(&h, p->identity ? p->identity->tenant_id : NULL);
        kh_str(&h, md->audience);
        kh_str(&h, p->sender_id);
        kh_bytes(&h, md->message_id.data, md->message_id.len);
        kh_end(&h, out, REF_DEDUPE_KEY_MESSAGE_ID);
    }
    logical_key(&h, p, out);
    return CAP_OK;
}

int ref_dedupe_probe_packet(const cap_packet *p, const uint8_t *wire, size_t len,
                            ref_dedupe_probe *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!p || !wire || !len || !out)
        return CAP_EINVAL;
    uint8_t *body = NULL, digest[32];
    size_t body_len = 0, sig_len = 0;
    const uint8_t *sig = NULL;
    int rc = cap_production_split(wire, len, &body, &body_len, &sig, &sig_len, NULL);
    if (rc == CAP_OK)
        cap_sha256(body, body_len, digest);
    else if (rc == CAP_ESIG_MISSING)
        cap_sha256(wire, len, digest); /* unsigned: the whole packet is the body */
    free(body);
    if (rc != CAP_OK && rc != CAP_ESIG_MISSING)
        return rc;
    return ref_dedupe_probe_digest(p, digest, out);
}

/* --- the index ------------------------------------------------------------ */

static uint32_t key_hash_of(const uint8_t id[32])
{
    uint64_t h = 0;
    for (int i = 0; i < 8; i++)
        h = (h << 8) | id[i];
    return (uint32_t)h;
}

static uint32_t ref_of(uint32_t slot, unsigned k)
{
    return slot * REF_DEDUPE_MAX_KEYS + k + 1;
}

static const uint8_t *ref_key(const ref_dedupe *d, uint32_t ref)
{
    uint32_t r = ref - 1;
    return d->e[r / REF_DEDUPE_MAX_KEYS].key[r % REF_DEDUPE_MAX_KEYS];
}

static void index_insert(ref_dedupe *d, uint32_t ref)
{
    uint32_t h = key_hash_of(ref_key(d, ref));
    size_t i = h & d->index_mask;
    while (d->index[i].ref)
        i = (i + 1) & d->index_mask;
    d->index[i] = (icell){ref, h};
}

/* The ref holding key id, or 0. */
static uint32_t index_find(const ref_dedupe *d, const uint8_t id[32])
{
    if (!d->index)
        return 0;
    uint32_t h = key_hash_of(id);
    size_t i = h & d->index_mask;
    while (d->index[i].ref) {
        if (d->index[i].hash == h && memcmp(ref_key(d, d->index[i].ref), id, 32) == 0)
            return d->index[i].ref;
        i = (i + 1) & d->index_mask;
    }
    return 0;
}

/* Removes ref, shifting back the probe run behind it so that lookups never
 * stop early. */
static void index_delete(ref_dedupe *d, uint32_t ref)
{
    size_t m = d->index_mask;
    size_t i = key_hash_of(ref_key(d, ref)) & m;
    while (d->index[i].ref != ref)
        i = (i + 1) & m;
    size_t j = i;
    for (;;) {
        j = (j + 1) & m;
        if (!d->index[j].ref)
            break;
        size_t home = d->index[j].hash & m;
        /* The element at j may fill the hole at i unless its home lies
         * cyclically in (i, j]. */
        int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            d->index[i] = d->index[j];
            i = j;
        }
    }
    d->index[i] = (icell){0, 0};
}

/* A fresh index sized for cap slots (load at most one half), holding every
 * live entry. */
static int index_rebuild(ref_dedupe *d, uint32_t cap)
{
    size_t want = (size_t)cap * REF_DEDUPE_MAX_KEYS * 2, size = 1;
    while (size < want)
        size <<= 1;
    icell *idx = calloc(size, sizeof *idx);
    if (!idx)
        return CAP_ENOMEM;
    free(d->index);
    d->index = idx;
    d->index_mask = size - 1;
    for (uint32_t s = d->head; s != NIL; s = d->e[s].next)
        for (unsigned k = 0; k < d->e[s].n_keys; k++)
            index_insert(d, ref_of(s, k));
    return CAP_OK;
}

/* --- entries -------------------------------------------------------------- */

static void entry_remove(ref_dedupe *d, uint32_t s)
{
    entry *e = &d->e[s];
    for (unsigned k = 0; k < e->n_keys; k++)
        index_delete(d, ref_of(s, k));
    if (e->prev != NIL)
        d->e[e->prev].next = e->next;
    else
        d->head = e->next;
    if (e->next != NIL)
        d->e[e->next].prev = e->prev;
    else
        d->tail = e->prev;
    memset(e, 0, sizeof *e);
    e->prev = NIL;
    e->next = d->free_head;
    d->free_head = s;
    d->count--;
}

/* A slot for a new entry; the caller has made sure count < max_entries. */
static int slot_alloc(ref_dedupe *d, uint32_t *out)
{
    if (d->free_head != NIL) {
        *out = d->free_head;
        d->free_head = d->e[*out].next;
        return CAP_OK;
    }
    if (d->used == d->cap) {
        uint32_t max = (uint32_t)d->cfg.max_entries;
        uint32_t cap = d->cap ? d->cap * 2 : MIN_SLOTS;
        if (cap > max || cap < d->cap)
            cap = max;
        entry *e = realloc(d->e, (size_t)cap * sizeof *e);
        if (!e)
            return CAP_ENOMEM;
        d->e = e;
        if (index_rebuild(d, cap) != CAP_OK)
            return CAP_ENOMEM; /* the larger array is kept; cap grows next time */
        d->cap = cap;
    }
    *out = d->used++;
    return CAP_OK;
}

static int live(const entry *e, int64_t now)
{
    return now < e->expires;
}

/* Drops expired entries from the oldest end: cheap, and keeps a store fed
 * at a steady rate from filling up with dead entries. */
static void purge_head(ref_dedupe *d, int64_t now)
{
    while (d->head != NIL && !live(&d->e[d->head], now)) {
        entry_remove(d, d->head);
        d->st.purged++;
    }
}

size_t ref_dedupe_expire(ref_dedupe *d, int64_t now)
{
    if (!d)
        return 0;
    size_t n = 0;
    int64_t lb = INT64_MAX;
    for (uint32_t s = d->head; s != NIL;) {
        uint32_t next = d->e[s].next;
        if (!live(&d->e[s], now)) {
            entry_remove(d, s);
            n++;
        } else if (d->e[s].expires < lb) {
            lb = d->e[s].expires;
        }
        s = next;
    }
    d->expiry_lb = lb;
    d->st.purged += n;
    return n;
}

/* --- the store ------------------------------------------------------------ */

int ref_dedupe_new(const ref_dedupe_config *cfg, ref_dedupe **out)
{
    ref_dedupe_config def = ref_dedupe_config_default();
    if (!cfg)
        cfg = &def;
    if (!out)
        return CAP_EINVAL;
    *out = NULL;
    if (ref_dedupe_config_check(cfg) != CAP_OK)
        return CAP_EINVAL;
    ref_dedupe *d = calloc(1, sizeof *d);
    if (!d)
        return CAP_ENOMEM;
    d->cfg = *cfg;
    d->free_head = d->head = d->tail = NIL;
    d->expiry_lb = INT64_MIN;
    *out = d;
    return CAP_OK;
}

void ref_dedupe_free(ref_dedupe *d)
{
    if (!d)
        return;
    free(d->index);
    free(d->e);
    free(d);
}

size_t ref_dedupe_count(const ref_dedupe *d)
{
    return d ? d->count : 0;
}

ref_dedupe_stats ref_dedupe_stats_get(const ref_dedupe *d)
{
    ref_dedupe_stats zero = {0};
    return d ? d->st : zero;
}

int ref_dedupe_next_expiry(const ref_dedupe *d, int64_t *at)
{
    if (!d || !at || d->head == NIL)
        return 0;
    int64_t best = INT64_MAX;
    for (uint32_t s = d->head; s != NIL; s = d->e[s].next)
        if (d->e[s].expires < best)
            best = d->e[s].expires;
    *at = best;
    return 1;
}

int ref_dedupe_oldest(const ref_dedupe *d, ref_dedupe_entry *e)
{
    if (!d || !e || d->head == NIL)
        return 0;
    e->seq = d->e[d->head].seq;
    e->slot = d->head;
    return 1;
}

static entry *entry_of(ref_dedupe *d, ref_dedupe_entry h)
{
    if (!d || h.seq == 0 || h.slot >= d->used || d->e[h.slot].seq != h.seq)
        return NULL;
    return &d->e[h.slot];
}

int ref_dedupe_set_tag(ref_dedupe *d, ref_dedupe_entry h, uint64_t tag)
{
    entry *e = entry_of(d, h);
    if (!e)
        return CAP_EINVAL;
    e->tag = tag;
    return CAP_OK;
}

int ref_dedupe_forget(ref_dedupe *d, ref_dedupe_entry h)
{
    if (!d)
        return CAP_EINVAL;
    if (!entry_of(d, h))
        return 0;
    entry_remove(d, h.slot);
    d->st.forgotten++;
    return 1;
}

static void describe(const ref_dedupe *d, uint32_t s, ref_dedupe_result *res)
{
    const entry *e = &d->e[s];
    res->entry.seq = e->seq;
    res->entry.slot = s;
    res->first_seen = e->first_seen;
    res->retained_until = e->expires;
    res->tag = e->tag;
}

/* Looks the probe's keys up in order. Returns the verdict and fills res on
 * a live match; FIRST when nothing matched. Expired matches are purged. */
static ref_dedupe_verdict lookup(ref_dedupe *d, const ref_dedupe_probe *pr, int64_t now,
                                 ref_dedupe_result *res)
{
    for (size_t k = 0; k < pr->n_keys; k++) {
        uint32_t ref = index_find(d, pr->keys[k].id);
        if (!ref)
            continue;
        uint32_t s = (ref - 1) / REF_DEDUPE_MAX_KEYS;
        if (!live(&d->e[s], now)) {
            entry_remove(d, s);
            d->st.purged++;
            continue;
        }
        describe(d, s, res);
        res->matched = pr->keys[k].kind;
        if (pr->keys[k].kind == REF_DEDUPE_KEY_MESSAGE_ID &&
            memcmp(d->e[s].body_digest, pr->body_digest, 32) != 0)
            return REF_DEDUPE_CONFLICT;
        return REF_DEDUPE_DUPLICATE;
    }
    return REF_DEDUPE_FIRST;
}

/* Makes room for one more entry: purge, then the full policy. */
static int make_room(ref_dedupe *d, int64_t now, ref_dedupe_result *res)
{
    if (d->count < d->cfg.max_entries)
        return CAP_OK;
    if (now >= d->expiry_lb) /* else nothing has expired: the sweep would find nothing */
        ref_dedupe_expire(d, now);
    if (d->count < d->cfg.max_entries)
        return CAP_OK;
    if (d->cfg.on_full == REF_DEDUPE_REFUSE) {
        d->st.refused++;
        return CAP_EFULL;
    }
    res->evicted = 1;
    res->evicted_seq = d->e[d->head].seq;
    entry_remove(d, d->head);
    d->st.evicted++;
    return CAP_OK;
}

static int record(ref_dedupe *d, const ref_dedupe_probe *pr, int64_t now, ref_dedupe_result *res)
{
    int rc = make_room(d, now, res);
    uint32_t s = 0;
    if (rc == CAP_OK)
        rc = slot_alloc(d, &s);
    if (rc != CAP_OK)
        return rc;
    entry *e = &d->e[s];
    memset(e, 0, sizeof *e);
    e->seq = ++d->seq;
    e->first_seen = now;
    e->expires = cap_sat_add(now, d->cfg.ttl_ns);
    if (pr->has_expiry) {
        int64_t signed_until = cap_sat_add(pr->expires_at, d->cfg.skew_ns);
        if (signed_until > e->expires)
            e->expires = signed_until;
    }
    if (e->expires < d->expiry_lb)
        d->expiry_lb = e->expires;
    memcpy(e->body_digest, pr->body_digest, 32);
    e->n_keys = (uint8_t)pr->n_keys;
    for (size_t k = 0; k < pr->n_keys; k++) {
        memcpy(e->key[k], pr->keys[k].id, 32);
        e->kind[k] = (uint8_t)pr->keys[k].kind;
    }
    e->prev = d->tail;
    e->next = NIL;
    if (d->tail != NIL)
        d->e[d->tail].next = s;
    else
        d->head = s;
    d->tail = s;
    d->count++;
    for (unsigned k = 0; k < e->n_keys; k++)
        index_insert(d, ref_of(s, k));
    describe(d, s, res);
    return CAP_OK;
}

int ref_dedupe_admit(ref_dedupe *d, const ref_dedupe_probe *probe, int64_t now,
                     ref_dedupe_result *res)
{
    ref_dedupe_result scratch;
    if (!res)
        res = &scratch;
    memset(res, 0, sizeof *res);
    if (!d || !probe || probe->n_keys == 0 || probe->n_keys > REF_DEDUPE_MAX_KEYS)
        return CAP_EINVAL;

    if (probe->has_expiry && probe->expires_at <= cap_sat_add(now, -d->cfg.skew_ns)) {
        res->verdict = REF_DEDUPE_EXPIRED;
        d->st.expired++;
        return REF_DEDUPE_EXPIRED;
    }
    /* The index cells of the probe's keys, and the oldest entry (the one
     * a full store evicts), are most likely not in cache: ask for them all
     * now, so that the misses overlap instead of following one another. */
    if (d->index)
        for (size_t k = 0; k < probe->n_keys; k++)
            __builtin_prefetch(&d->index[key_hash_of(probe->keys[k].id) & d->index_mask]);
    if (d->head != NIL)
        __builtin_prefetch(&d->e[d->head]);
    purge_head(d, now);
    ref_dedupe_verdict v = lookup(d, probe, now, res);
    if (v == REF_DEDUPE_FIRST) {
        int rc = record(d, probe, now, res);
        if (rc != CAP_OK) {
            memset(res, 0, sizeof *res);
            return rc;
        }
        d->st.first++;
    } else if (v == REF_DEDUPE_DUPLICATE) {
        d->st.duplicate++;
    } else {
        d->st.conflict++;
    }
    res->verdict = v;
    return (int)v;
}

int ref_dedupe_check_probe(ref_dedupe *d, const cap_packet *p, const uint8_t *wire, size_t len,
                           int64_t now, ref_dedupe_result *res, ref_dedupe_probe *probe)
{
    ref_dedupe_probe scratch;
    if (!probe)
        probe = &scratch;
    if (res)
        memset(res, 0, sizeof *res);
    if (!d) {
        memset(probe, 0, sizeof *probe);
        return CAP_EINVAL;
    }
    int rc = ref_dedupe_probe_packet(p, wire, len, probe);
    if (rc != CAP_OK)
        return rc;
    return ref_dedupe_admit(d, probe, now, res);
}

int ref_dedupe_check(ref_dedupe *d, const cap_packet *p, const uint8_t *wire, size_t len,
                     int64_t now, ref_dedupe_result *res)
{
    return ref_dedupe_check_probe(d, p, wire, len, now, res, NULL);
}
