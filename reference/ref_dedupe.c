/* Replay and duplicate guard (see ref_dedupe.h).
 *
 * Storage: a slot array of fixed-size entries that grows by doubling up to
 * max_entries, a doubly linked list through the slots in recording order
 * (head = oldest, the next to evict), a free list of slots, and an
 * open-addressing index (linear probing, backward-shift deletion) from each
 * 32-byte key to its slot. Keys are SHA-256 outputs, so their first eight
 * bytes serve as the hash; each index cell keeps 32 bits of that hash next
 * to its reference, and a parallel byte array one more key byte per cell
 * (see icell), so a probe run is walked (and a miss decided) in the small
 * byte array, without touching cells or entries. The index is sized by the
 * keys it holds (about half full), not by the slots, since most packets
 * have fewer than REF_DEDUPE_MAX_KEYS keys. The index answers "is this
 * exact key held?" and nothing else; every order that can reach a caller
 * comes from the list, i.e. from sequence numbers.
 *
 * Memory traffic. A full store is far larger than the CPU caches, and each
 * admission of a new packet touches cold lines: the index cells of its
 * keys, the oldest entry (evicted) and the index cells of that entry's
 * keys. Those addresses are known early, so they are prefetched: a
 * probe's tags and cells as each key is computed, and the next victim's
 * entry and cells at the end of the admission before (warm_eviction), so
 * that the loads overlap other work instead of stalling one after another.
 * Prefetching never changes what is read or written. */
#include "ref_dedupe.h"

#include <stdlib.h>
#include <string.h>

#include "cap_sha256.h"
#include "cap_sign.h"
#include "cap_time.h"

#define NIL UINT32_MAX
#define MIN_SLOTS 64u
#define MIN_CELLS 256u
#define KEY_DOMAIN "cap-dedupe-key-v1"

/* What eviction and lookups read comes first; first_seen, tag and the body
 * digest are read only on a match. Fields past n_keys are not kept. */
typedef struct {
    uint64_t seq;        /* 0: a free slot */
    int64_t expires;     /* retention ends: the entry counts while now < expires */
    uint32_t prev, next; /* recording order; `next` also chains free slots */
    uint8_t kind[REF_DEDUPE_MAX_KEYS];
    uint8_t n_keys;
    uint8_t key[REF_DEDUPE_MAX_KEYS][32];
    int64_t first_seen;
    uint64_t tag;
    uint8_t body_digest[32];
} entry;

/* An index cell: ref 0 is empty, else slot * REF_DEDUPE_MAX_KEYS + key
 * number + 1; hash is key_hash_of the key (the index never has more than
 * 2^32 cells, so it also gives the home cell). Beside the cells, a byte per
 * cell (tags: 0 empty, else key_tag_of the key) is all that a lookup reads
 * until a tag agrees: the tag array is an eighth of the cells' size, so it
 * stays in cache far better, and most lookups (of new keys) end there. */
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
    icell *index;    /* index_mask + 1 cells, or NULL before the first record */
    uint8_t *tags;   /* index_mask + 1 tags, in the same block */
    size_t index_mask;
    size_t n_indexed; /* keys in the index */
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

/* --- the index's hash ----------------------------------------------------- */

/* The low 32 bits of the key's first eight bytes read big-endian, i.e. its
 * bytes 4..7 (the index never has more than 2^32 cells). */
static uint32_t key_hash_of(const uint8_t id[32])
{
    return (uint32_t)id[4] << 24 | (uint32_t)id[5] << 16 | (uint32_t)id[6] << 8 | id[7];
}

/* The byte kept for a key in the index's tag array: key byte 8 (not part
 * of key_hash_of), never 0, which marks an empty cell. */
static uint8_t key_tag_of(const uint8_t id[32])
{
    return id[8] ? id[8] : 1;
}

/* Starts loading what admitting key id touches (no effect but on timing):
 * its home tag, which the lookup reads, and its home cell, which a FIRST
 * writes (a store to a line not in cache, or not in the TLB, holds up the
 * pipeline too). */
static void warm_key(const ref_dedupe *d, const uint8_t id[32])
{
    if (d && d->index) {
        size_t i = key_hash_of(id) & d->index_mask;
        __builtin_prefetch(&d->tags[i]);
        __builtin_prefetch(&d->index[i], 1);
    }
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

/* v as 8 bytes, big-endian (written out so that it compiles to one
 * byte swap and store). */
static void kh_u64(key_hash *h, uint64_t v)
{
    uint8_t b[8] = {(uint8_t)(v >> 56), (uint8_t)(v >> 48), (uint8_t)(v >> 40),
                    (uint8_t)(v >> 32), (uint8_t)(v >> 24), (uint8_t)(v >> 16),
                    (uint8_t)(v >> 8),  (uint8_t)v};
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

/* Finishes a key; warm (may be NULL) is the store it is about to be looked
 * up in, whose index cell for it is prefetched now. */
static void kh_end(key_hash *h, ref_dedupe_probe *out, ref_dedupe_key_kind kind,
                   const ref_dedupe *warm)
{
    ref_dedupe_key *k = &out->keys[out->n_keys];
    kh_flush(h);
    cap_sha256_final(&h->c, k->id);
    k->kind = kind;
    out->n_keys++;
    warm_key(warm, k->id);
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

static void logical_key(key_hash *h, const cap_packet *p, ref_dedupe_probe *out,
                        const ref_dedupe *warm)
{
    if (p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST && p->job_request &&
        p->job_request->job_id && p->job_request->job_id[0]) {
        const Cordum__Agent__V1__JobRequest *r = p->job_request;
        kh_begin(h, REF_DEDUPE_KEY_JOB_REQUEST);
        kh_str(h, r->job_id);
        dispatch_parts(h, r->dispatch);
        kh_str(h, request_label(r, REF_DEDUPE_BUS_MSG_ID_LABEL));
        kh_end(h, out, REF_DEDUPE_KEY_JOB_REQUEST, warm);
    } else if (p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT &&
               p->job_result && p->job_result->job_id && p->job_result->job_id[0]) {
        const Cordum__Agent__V1__JobResult *r = p->job_result;
        kh_begin(h, REF_DEDUPE_KEY_JOB_RESULT);
        kh_str(h, r->job_id);
        dispatch_parts(h, r->dispatch);
        kh_u64(h, (uint64_t)(int64_t)r->status);
        kh_end(h, out, REF_DEDUPE_KEY_JOB_RESULT, warm);
    }
}

/* ref_dedupe_probe_digest, prefetching each key's index tag and cell in
 * warm (NULL: none). */
static int probe_digest(const cap_packet *p, const uint8_t body_digest[32], ref_dedupe_probe *out,
                        const ref_dedupe *warm)
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

    /* BODY is the signed-body digest itself: the body holds sender_id
     * (field 2), so the digest already tells senders apart, and hashing
     * the pair again would only cost two more SHA-256 blocks a packet. */
    ref_dedupe_key *body = &out->keys[out->n_keys++];
    memcpy(body->id, body_digest, 32);
    body->kind = REF_DEDUPE_KEY_BODY;
    warm_key(warm, body->id);

    key_hash h;
    if (md && md->message_id.len > 0) {
        kh_begin(&h, REF_DEDUPE_KEY_MESSAGE_ID);
        kh_str(&h, p->identity ? p->identity->tenant_id : NULL);
        kh_str(&h, md->audience);
        kh_str(&h, p->sender_id);
        kh_bytes(&h, md->message_id.data, md->message_id.len);
        kh_end(&h, out, REF_DEDUPE_KEY_MESSAGE_ID, warm);
    }
    logical_key(&h, p, out, warm);
    return CAP_OK;
}

int ref_dedupe_probe_digest(const cap_packet *p, const uint8_t body_digest[32],
                            ref_dedupe_probe *out)
{
    return probe_digest(p, body_digest, out, NULL);
}

/* ref_dedupe_probe_packet, prefetching into warm (may be NULL). The signed
 * body is hashed in its two pieces around field 14, never copied. */
static int probe_packet(const cap_packet *p, const uint8_t *wire, size_t len,
                        ref_dedupe_probe *out, const ref_dedupe *warm)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!p || !wire || !len || !out)
        return CAP_EINVAL;
    uint8_t digest[32];
    cap_wire_span sig;
    int rc = cap_production_find(wire, len, &sig, NULL);
    if (rc == CAP_OK) {
        cap_sha256_ctx c;
        cap_sha256_init(&c);
        cap_sha256_update(&c, wire, sig.start);
        cap_sha256_update(&c, wire + sig.end, len - sig.end);
        cap_sha256_final(&c, digest);
    } else if (rc == CAP_ESIG_MISSING) {
        cap_sha256(wire, len, digest); /* unsigned: the whole packet is the body */
    } else {
        return rc;
    }
    return probe_digest(p, digest, out, warm);
}

int ref_dedupe_probe_packet(const cap_packet *p, const uint8_t *wire, size_t len,
                            ref_dedupe_probe *out)
{
    return probe_packet(p, wire, len, out, NULL);
}

int ref_dedupe_probe_packet_warm(const ref_dedupe *d, const cap_packet *p, const uint8_t *wire,
                                 size_t len, ref_dedupe_probe *out)
{
    return probe_packet(p, wire, len, out, d);
}

/* --- the index ------------------------------------------------------------ */

static uint32_t ref_of(uint32_t slot, unsigned k)
{
    return slot * REF_DEDUPE_MAX_KEYS + k + 1;
}

static const uint8_t *ref_key(const ref_dedupe *d, uint32_t ref)
{
    uint32_t r = ref - 1;
    return d->e[r / REF_DEDUPE_MAX_KEYS].key[r % REF_DEDUPE_MAX_KEYS];
}

/* Adds ref; the caller has made room (index_reserve). The free cell is
 * found from the tags alone: the cell itself is only written. */
static void index_insert(ref_dedupe *d, uint32_t ref)
{
    const uint8_t *id = ref_key(d, ref);
    uint32_t h = key_hash_of(id);
    size_t i = h & d->index_mask;
    while (d->tags[i])
        i = (i + 1) & d->index_mask;
    d->tags[i] = key_tag_of(id);
    d->index[i] = (icell){ref, h};
    d->n_indexed++;
}

/* The ref holding key id, or 0. */
static uint32_t index_find(const ref_dedupe *d, const uint8_t id[32])
{
    if (!d->index)
        return 0;
    uint32_t h = key_hash_of(id);
    uint8_t tag = key_tag_of(id);
    size_t i = h & d->index_mask;
    while (d->tags[i]) {
        if (d->tags[i] == tag && d->index[i].hash == h &&
            memcmp(ref_key(d, d->index[i].ref), id, 32) == 0)
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
        if (!d->tags[j])
            break;
        size_t home = d->index[j].hash & m;
        /* The element at j may fill the hole at i unless its home lies
         * cyclically in (i, j]. */
        int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            d->index[i] = d->index[j];
            d->tags[i] = d->tags[j];
            i = j;
        }
    }
    d->index[i] = (icell){0, 0};
    d->tags[i] = 0;
    d->n_indexed--;
}

/* Makes sure `more` (at most REF_DEDUPE_MAX_KEYS) keys can be added with
 * the index about half full: if not, a fresh index of at least twice the
 * size is built from the live entries. It is called before a full store
 * makes room, so the slack of REF_DEDUPE_MAX_KEYS over one half stands for
 * the keys the eviction is about to free (a store full of two-key entries
 * must not double its index for that). The index never shrinks; it is
 * bounded by the keys max_entries entries can hold. CAP_OK or CAP_ENOMEM
 * (index unchanged). */
static int index_reserve(ref_dedupe *d, size_t more)
{
    size_t want = d->n_indexed + more;
    if (d->index && want <= (d->index_mask + 1) / 2 + REF_DEDUPE_MAX_KEYS)
        return CAP_OK;
    size_t size = MIN_CELLS;
    while (size < want * 2)
        size <<= 1;
    icell *idx = calloc(size, sizeof *idx + 1); /* the cells, then the tags */
    if (!idx)
        return CAP_ENOMEM;
    free(d->index);
    d->index = idx;
    d->tags = (uint8_t *)(idx + size);
    d->index_mask = size - 1;
    d->n_indexed = 0;
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
    e->seq = 0; /* free: stale handles no longer match */
    e->n_keys = 0;
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
    /* The index grows first, while a failure still leaves every entry in
     * place; slot_alloc only grows when make_room has not evicted. */
    int rc = index_reserve(d, pr->n_keys);
    uint32_t s = 0;
    if (rc == CAP_OK)
        rc = make_room(d, now, res);
    if (rc == CAP_OK)
        rc = slot_alloc(d, &s);
    if (rc != CAP_OK)
        return rc;
    entry *e = &d->e[s]; /* every field is set below (keys up to n_keys) */
    e->seq = ++d->seq;
    e->first_seen = now;
    e->tag = 0;
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

/* Prefetches what the next admission will touch when it evicts (a FIRST on
 * a full store evicts the head): the head's index cells and tags, found
 * from the head entry, which was itself prefetched at the end of the
 * admission before as the then head's successor; and the head's
 * successor, the victim after it. Only a hint: a purge or a forget in
 * between just makes it miss. */
static void warm_eviction(const ref_dedupe *d)
{
    if (d->head == NIL || d->count < d->cfg.max_entries || !d->index)
        return;
    const entry *h = &d->e[d->head];
    for (unsigned k = 0; k < h->n_keys; k++) {
        size_t i = key_hash_of(h->key[k]) & d->index_mask;
        __builtin_prefetch(&d->index[i], 1);
        __builtin_prefetch(&d->tags[i], 1);
    }
    if (h->next != NIL) {
        const char *n = (const char *)&d->e[h->next];
        for (size_t off = 0; off < sizeof(entry); off += 64)
            __builtin_prefetch(n + off, 1);
        __builtin_prefetch(n + sizeof(entry) - 1, 1);
    }
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
    /* The index tags and cells of the probe's keys, and the oldest entry
     * (the one a full store evicts), are most likely not in cache: ask for
     * them all now (again, for a caller that probed without the store), so
     * that the misses overlap instead of following one another. */
    for (size_t k = 0; k < probe->n_keys; k++)
        warm_key(d, probe->keys[k].id);
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
    warm_eviction(d);
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
    int rc = probe_packet(p, wire, len, probe, d);
    if (rc != CAP_OK)
        return rc;
    return ref_dedupe_admit(d, probe, now, res);
}

int ref_dedupe_check(ref_dedupe *d, const cap_packet *p, const uint8_t *wire, size_t len,
                     int64_t now, ref_dedupe_result *res)
{
    return ref_dedupe_check_probe(d, p, wire, len, now, res, NULL);
}
