/* The reference CAP worker: fencing, replay, cancel, capacity, heartbeats.
 * See ref_worker.h and docs/reference-worker.md. */
#include "ref_worker.h"
#include "ref_bugs.h" /* mutant hooks */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cap_fmt.h"
#include "cap_time.h"
#include "ref_idindex.h"
#include "ref_jobstate.h"

#define NS_PER_MS INT64_C(1000000)

typedef Cordum__Agent__V1__JobRequest job_request;
typedef Cordum__Agent__V1__JobCancel job_cancel;
typedef Cordum__Agent__V1__DispatchIdentity dispatch_identity;
typedef Cordum__Agent__V1__IdentityBinding identity_binding;

/* Records are kept in chunks of this many, allocated as the table grows:
 * a record never moves, and growing copies nothing. */
#define REC_CHUNK ((size_t)64)

/* A record's strings, kept back to back in one area, in this order. */
enum { S_JOB, S_DISPATCH, S_TRACE, S_TENANT, S_PRINCIPAL, S_ACTOR, S_DELEGATION, S_TEXT, N_STR };

/* Bytes of strings a record holds in itself: with the fields before them
 * a record is three cache lines (on LP64), enough for a typical attempt
 * (a job id, a 32-character dispatch id, a trace id and a short text). */
#define REC_INLINE 84

/* One job: its active attempt and, once finished, the recorded result.
 * Records are aligned to cache lines and hold their strings: a completion
 * or an eviction reads three adjacent lines and nothing else. */
typedef struct {
    /* The worker's bookkeeping of the slot: kept when the attempt is
     * released. */
    _Alignas(64) uint32_t idx; /* the record's index in the table */
    uint32_t live_pos; /* 1 + its place in the worker's live list, 0 when not there */
    /* The attempt's job id: */
    uint32_t tag;     /* the top half of its hash (ref_idindex_hash), carried by the
                         finish ring for a prefetch of its index cell */
    uint32_t fin_pos; /* while in_fin: the position of its entry in the finish ring */
    /* The attempt. */
    uint64_t attempt;
    uint64_t timer_id; /* completion timer, 0 when none armed */
    int64_t started;
    int64_t finished_at;
    int64_t execution_ns;
    char *heap; /* the strings when they do not fit in `in`, else NULL */
    int32_t error_code_enum;
    uint8_t used;
    uint8_t in_fin; /* finished and in the finish ring */
    uint8_t has_identity;
    uint8_t finished;
    int8_t state;   /* REF_JOB_RUNNING, then the result status */
    int8_t pending; /* the status the completion timer will publish */
    /* String i is the bytes from end[i - 1] (0 for the first) to end[i],
     * its NUL included; an empty string takes no byte. The text (the
     * handler's result_ptr or error_message, or a cancel's reason) is the
     * last, so it changes without moving the others, unless it no longer
     * fits in `in`. The identity strings are empty without identity. */
    uint32_t end[N_STR];
    char in[REC_INLINE];
} job_rec;

_Static_assert(sizeof(void *) != 8 || sizeof(job_rec) == 192, "a record is three cache lines");
_Static_assert(REF_JOB_FAILED_FATAL <= INT8_MAX, "a job status fits a record's state");

/* Live list entries the worker holds in itself (a worker running one job
 * at a time needs two). */
#define LIVE_INLINE 2
/* Chunk pointers the worker holds in itself (enough for the default
 * max_jobs). */
#define CHUNKS_INLINE 16
/* Bytes of names (worker id, pool and the two subjects) the worker holds
 * in itself. */
#define NAMES_INLINE 64

struct ref_worker {
    /* What a request, a completion or a heartbeat reads, from here to the
     * first line of last_memo: a few adjacent cache lines, asked for at
     * once when a packet or a timer comes in (worker_prefetch). */
    _Alignas(64) job_rec **chunks; /* the table: cap_recs slots in chunks of REC_CHUNK, up to max_jobs */
    /* The records of unfinished attempts (used, not finished), by index,
     * in no particular order: what a heartbeat's progress averages over,
     * without walking the finished records kept for the done window.
     * There are at most max_parallel of them, and one more for the moment
     * a request over capacity is loaded and refused: room for that many
     * is set aside at init (in live_in when it is enough), so adding one
     * never fails. */
    uint32_t *live;
    /* job_id -> record index; a lookup compares the id on the record.
     * Eight bytes a record (ref_idindex), so a worker's few hundred
     * records take a few kilobytes and a probe stays in one cache line.
     * It finds records by exact id only: no order is taken from it. */
    ref_idindex by_job;
    /* The finished records in the order they finished, oldest first: the
     * order of reuse and eviction. A ring of fin_mask + 1 entries (a
     * power of two, at least twice cap_recs) at positions fin_head to
     * fin_tail (counters, taken mod the size), each a record's
     * tag << 32 | its index; the entry at position p is live when its
     * record is in_fin with fin_pos p. A record leaving the ring from the
     * middle (a finished job taking a new attempt) leaves a dead entry
     * behind, dropped when it reaches the head or when the ring fills
     * (fin_compact). Appending or taking the oldest touches the ring's
     * ends, not the neighbouring records. */
    uint64_t *fin_ring;
    uint32_t fin_mask; /* 0 while the table has no record slot */
    uint32_t fin_head, fin_tail;
    /* A copy of the head entry (when fin_head != fin_tail), taken when the
     * head last moved: a request asks for the lines of the record it names
     * (and, through its tag, of its index cell) straight from the worker,
     * without first waiting for the ring. A hint only (the entry may have
     * died since). */
    uint64_t fin_hint;
    size_t n_recs, cap_recs;
    size_t free_from; /* every slot below this one is in use */
    uint32_t n_live, cap_live;
    int running;
    int no_journal;
    int32_t max_parallel;
    int strict_first;
    uint64_t timer_seq; /* completion timers armed so far */
    uint64_t handler_calls;
    uint32_t live_in[LIVE_INLINE];
    int64_t done_window; /* a finished record older than this may be reused */
    ref_worker_handler handler;
    void *hctx;
    /* worker_id, pool, "job.<pool>" and "worker.<worker_id>.jobs", back to
     * back in names_in when they fit, else in names_heap. */
    const char *worker_id;
    const char *pool_subject;
    const char *direct_subject;
    size_t worker_len; /* strlen(worker_id) */
    size_t memo_len;   /* strlen(last_memo) */
    char names_in[NAMES_INLINE];
    job_rec *chunks_in[CHUNKS_INLINE];
    char last_memo[160];
    /* Read by heartbeats and lookups only. */
    const char *pool;
    size_t pool_len; /* strlen(pool) */
    char *names_heap;
    int64_t hb_interval;
    size_t max_jobs;
    char **caps;
    size_t n_caps;
    char **label_k;
    char **label_v;
    size_t n_labels;
    uint64_t hb_seq;
};

/* Asks for the lines a request or a completion reads, ahead of their use:
 * they come in together instead of one miss after another. */
static void worker_prefetch(const ref_worker *w)
{
    const char *p = (const char *)w;
    for (size_t o = 0; o < offsetof(ref_worker, last_memo) + 64; o += 64)
        __builtin_prefetch(p + o, 1);
}

/* ---- small helpers ---------------------------------------------------- */

/* A copy of s (NULL copies as ""). */
static char *dup_str(const char *s) { return strdup(s ? s : ""); }

static const char *nz(const char *s)
{
    return s ? s : "";
}

static int name_ok(const char *s)
{
    return s && s[0] && strlen(s) <= REF_WORKER_MAX_NAME;
}

/* Appends s to buf as a JSON string body (no quotes); buf has room for
 * 6 bytes per input byte. */
static size_t json_escape(char *buf, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)nz(s); *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            buf[o++] = '\\';
            buf[o++] = 'u';
            buf[o++] = '0';
            buf[o++] = '0';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = 0;
    return o;
}

/* One journal line:
 * {"at":N,"worker":"..","event":"..","job_id":"..","dispatch_id":"..","attempt":N,"detail":".."} */
static int journal(ref_worker *w, ref_effects *fx, int64_t now, const char *event,
                   const char *job_id, const char *dispatch_id, uint64_t attempt,
                   const char *detail)
{
    if (w->no_journal)
        return CAP_OK;
    const char *parts[5] = {w->worker_id, event, job_id, dispatch_id, detail};
    size_t total = 128; /* the keys, two numbers, quotes and braces */
    for (int i = 0; i < 5; i++)
        total += 6 * strlen(nz(parts[i])); /* \u00XX at worst */
    char *line = malloc(total), num[24];
    if (!line)
        return CAP_ENOMEM;
    char *p = line, *end = num + sizeof num, *d;
#define PUT(lit) (memcpy(p, lit, sizeof lit - 1), p += sizeof lit - 1)
    PUT("{\"at\":");
    d = cap_fmt_i64(end, now);
    memcpy(p, d, (size_t)(end - d));
    p += end - d;
    PUT(",\"worker\":\"");
    p += json_escape(p, parts[0]);
    PUT("\",\"event\":\"");
    p += json_escape(p, parts[1]);
    PUT("\",\"job_id\":\"");
    p += json_escape(p, parts[2]);
    PUT("\",\"dispatch_id\":\"");
    p += json_escape(p, parts[3]);
    PUT("\",\"attempt\":");
    d = cap_fmt_u64(end, attempt);
    memcpy(p, d, (size_t)(end - d));
    p += end - d;
    PUT(",\"detail\":\"");
    p += json_escape(p, parts[4]);
    PUT("\"}");
#undef PUT
    *p = 0;
    int rc = ref_effects_journal_n(fx, line, (size_t)(p - line));
    free(line);
    return rc;
}

/* "<event> <job_id>", cut to fit like snprintf would (it runs per job:
 * no format parsing). */
static void set_memo(ref_worker *w, const char *event, const char *job_id, size_t job_len)
{
    const size_t cap = sizeof w->last_memo - 1;
    size_t o = strnlen(event, cap);
    memcpy(w->last_memo, event, o);
    if (o < cap)
        w->last_memo[o++] = ' ';
    size_t n = job_len < cap - o ? job_len : cap - o;
    memcpy(w->last_memo + o, job_id, n);
    w->last_memo[o + n] = 0;
    w->memo_len = o + n;
}

/* ---- records ------------------------------------------------------------ */

static job_rec *rec_at(const ref_worker *w, size_t idx)
{
    return &w->chunks[idx / REC_CHUNK][idx % REC_CHUNK];
}

/* Asks for a record's three lines at once, ahead of their first use. */
static void rec_prefetch(const job_rec *r)
{
    const char *p = (const char *)r;
    for (size_t o = 0; o < sizeof *r; o += 64)
        __builtin_prefetch(p + o, 1);
}

/* The record's strings' area. */
static const char *rec_base(const job_rec *r)
{
    return r->heap ? r->heap : r->in;
}

static uint32_t str_start(const job_rec *r, int i)
{
    return i ? r->end[i - 1] : 0;
}

/* String i of the record ("" when empty) and its length. */
static const char *rs(const job_rec *r, int i)
{
    uint32_t at = str_start(r, i);
    return r->end[i] == at ? "" : rec_base(r) + at;
}

static size_t rl(const job_rec *r, int i)
{
    uint32_t at = str_start(r, i);
    return r->end[i] == at ? 0 : r->end[i] - at - 1;
}

/* The record that holds job id s (n bytes, hash h = ref_idindex_hash), or
 * NULL. */
static job_rec *rec_find(const ref_worker *w, const char *s, size_t n, uint64_t h)
{
    ref_idindex_walk wk;
    for (uint32_t i = ref_idindex_first(&w->by_job, h, &wk); i != REF_IDINDEX_NONE;
         i = ref_idindex_next(&wk)) {
        job_rec *r = rec_at(w, i);
        if (rl(r, S_JOB) == n && memcmp(rs(r, S_JOB), s, n) == 0)
            return r;
    }
    return NULL;
}

/* Takes r's job out of the index. */
static void index_del(ref_worker *w, const job_rec *r)
{
    ref_idindex_del(&w->by_job, ref_idindex_hash(rs(r, S_JOB), rl(r, S_JOB)), r->idx);
}

/* The record of the finish ring's entry at position p when that entry is
 * live, else NULL. */
static job_rec *fin_live(const ref_worker *w, uint32_t p)
{
    job_rec *r = rec_at(w, (uint32_t)w->fin_ring[p & w->fin_mask]);
    return r->in_fin && r->fin_pos == p ? r : NULL;
}

/* Copies the head entry into fin_hint after the head moved. */
static void fin_head_moved(ref_worker *w)
{
    if (w->fin_head != w->fin_tail)
        w->fin_hint = w->fin_ring[w->fin_head & w->fin_mask];
}

/* Takes r out of the finish ring (when there): it leaves at once from the
 * head, lazily from anywhere else (its entry is dead from now). */
static void fin_unlink(ref_worker *w, job_rec *r)
{
    if (r->in_fin && r->fin_pos == w->fin_head) {
        w->fin_head++;
        fin_head_moved(w);
    }
    r->in_fin = 0;
}

/* Drops the ring's dead entries, keeping the live ones in order from the
 * head (their records learn their new positions). */
static void fin_compact(ref_worker *w)
{
    uint32_t to = w->fin_head;
    for (uint32_t p = w->fin_head; p != w->fin_tail; p++) {
        job_rec *r = fin_live(w, p);
        if (r) {
            w->fin_ring[to & w->fin_mask] = w->fin_ring[p & w->fin_mask];
            r->fin_pos = to++;
        }
    }
    w->fin_tail = to;
    fin_head_moved(w); /* a dead head entry may have gone */
}

/* Appends r, which just finished, to the finish ring. A full ring holds
 * dead entries (live ones are at most the table's slots, half the ring):
 * compacting it makes room. */
static void fin_append(ref_worker *w, job_rec *r)
{
    if (w->fin_tail - w->fin_head > w->fin_mask)
        fin_compact(w);
    w->fin_ring[w->fin_tail & w->fin_mask] = (uint64_t)r->tag << 32 | r->idx;
    r->fin_pos = w->fin_tail++;
    r->in_fin = 1;
    if (w->fin_tail - w->fin_head == 1)
        fin_head_moved(w);
}

/* The record that finished first, or NULL; dead entries at the head are
 * dropped on the way. */
static job_rec *fin_oldest(ref_worker *w)
{
    job_rec *r = NULL;
    uint32_t head = w->fin_head;
    while (w->fin_head != w->fin_tail && !(r = fin_live(w, w->fin_head)))
        w->fin_head++;
    if (w->fin_head != head)
        fin_head_moved(w);
    return r;
}

/* Makes the finish ring hold a table of n_slots record slots: a power of
 * two at least twice n_slots, so dead entries take at most half of it
 * when it fills. CAP_ENOMEM leaves it as it was. */
static int ring_fit(ref_worker *w, size_t n_slots)
{
    size_t cap = w->fin_ring ? (size_t)w->fin_mask + 1 : 16;
    while (cap < 2 * n_slots)
        cap *= 2;
    if (w->fin_ring && cap == (size_t)w->fin_mask + 1)
        return CAP_OK;
    uint64_t *ring = malloc(cap * sizeof *ring);
    if (!ring)
        return CAP_ENOMEM;
    uint32_t mask = (uint32_t)(cap - 1);
    for (uint32_t p = w->fin_head; p != w->fin_tail; p++)
        ring[p & mask] = w->fin_ring[p & w->fin_mask];
    free(w->fin_ring);
    w->fin_ring = ring;
    w->fin_mask = mask;
    return CAP_OK;
}

/* Sets the record's text (the last string) to a copy of s (NULL copies as
 * ""). It is written after the attempt's strings when it fits there;
 * otherwise every string moves to one new heap area. CAP_ENOMEM leaves the
 * text as it was. */
static int text_set(job_rec *r, const char *s)
{
    s = nz(s);
    size_t n = strlen(s), at = str_start(r, S_TEXT), need = at + (n ? n + 1 : 0);
    if (need > UINT32_MAX)
        return CAP_ENOMEM;
    if (!r->heap && need <= sizeof r->in) {
        memcpy(r->in + at, s, n ? n + 1 : 0);
    } else {
        char *h = malloc(need ? need : 1), *old = r->heap;
        if (!h)
            return CAP_ENOMEM;
        memcpy(h, rec_base(r), at);
        memcpy(h + at, s, n ? n + 1 : 0);
        r->heap = h;
        free(old);
    }
    r->end[S_TEXT] = (uint32_t)need;
    return CAP_OK;
}

/* Frees the record's attempt fields and clears them, taking it out of the
 * finish list. Its index and its place in the live list are bookkeeping of
 * the worker, not of the attempt: kept. */
static void rec_clear(job_rec *r)
{
    uint32_t idx = r->idx, live_pos = r->live_pos;
    memset(r, 0, offsetof(job_rec, in)); /* the strings' bytes are dead with end[] zero */
    r->idx = idx;
    r->live_pos = live_pos;
}

static void rec_release(ref_worker *w, job_rec *r)
{
    fin_unlink(w, r);
    free(r->heap);
    rec_clear(r);
}

/* Adds r to the live list (when not there yet). */
static void live_add(ref_worker *w, job_rec *r)
{
    if (r->live_pos || w->n_live == w->cap_live) /* the latter cannot happen */
        return;
    w->live[w->n_live++] = r->idx;
    r->live_pos = w->n_live;
}

/* Takes r out of the live list (when there): the last entry fills its place. */
static void live_del(ref_worker *w, job_rec *r)
{
    if (!r->live_pos)
        return;
    uint32_t at = r->live_pos - 1, last = w->live[--w->n_live];
    w->live[at] = last;
    rec_at(w, last)->live_pos = at + 1;
    r->live_pos = 0;
}

/* A completion timer's id names its record: the timer's sequence number
 * (from 1) above TIMER_IDX_BITS bits of the record's index (max_jobs is at
 * most 2^TIMER_IDX_BITS), so a firing finds its record without a map, and
 * an id is never used twice. */
#define TIMER_IDX_BITS 20
_Static_assert(REF_WORKER_MAX_JOBS_LIMIT <= (size_t)1 << TIMER_IDX_BITS,
               "a record index fits below a timer's sequence number");

static uint64_t timer_id_for(ref_worker *w, const job_rec *r)
{
    return (++w->timer_seq << TIMER_IDX_BITS) | r->idx;
}

/* The record whose completion timer is `id`, or NULL (the heartbeat's id,
 * an id no longer armed). */
static job_rec *rec_by_timer(const ref_worker *w, uint64_t id)
{
    size_t idx = (size_t)(id & ((UINT64_C(1) << TIMER_IDX_BITS) - 1));
    if (!(id >> TIMER_IDX_BITS) || idx >= w->cap_recs)
        return NULL;
    job_rec *r = rec_at(w, idx);
    rec_prefetch(r); /* a completion reads the whole record */
    return r->used && r->timer_id == id ? r : NULL;
}

/* Empties a finished record's slot for reuse; *evicted receives a copy of
 * its job id for the journal (NULL when the worker keeps none). NULL when
 * that copy cannot be made (nothing changed). */
static job_rec *rec_evict(ref_worker *w, job_rec *victim, char **evicted)
{
    if (!w->no_journal && !(*evicted = dup_str(rs(victim, S_JOB))))
        return NULL;
    index_del(w, victim);
    rec_release(w, victim);
    w->n_recs--;
    if (victim->idx < w->free_from)
        w->free_from = victim->idx;
    return victim;
}

/* A free slot for a new job at `now`. The record that finished first is
 * reused when it finished more than done_window_ns ago (so the table stays
 * as large as the window needs, whatever the run's length); otherwise a
 * free slot, a grown table, or, when the table is full, the record that
 * finished first. *evicted receives the evicted job's id when the worker
 * journals (caller frees) or NULL, *why the reason. CAP_EFULL when every
 * record is running, CAP_ENOMEM. */
static int rec_slot(ref_worker *w, int64_t now, job_rec **out, char **evicted, const char **why)
{
    *evicted = NULL;
    job_rec *oldest = fin_oldest(w);
    if (oldest && now > cap_sat_add(oldest->finished_at, w->done_window)) {
        *why = "finished longer ago than the window";
        return (*out = rec_evict(w, oldest, evicted)) ? CAP_OK : CAP_ENOMEM;
    }
    *why = "oldest finished record";
    /* The lowest free slot (one the table grew by, or one a failed load
     * left), searched from the first that may be free. */
    for (size_t i = w->free_from; w->n_recs < w->cap_recs && i < w->cap_recs; i++)
        if (!rec_at(w, i)->used) {
            w->free_from = i;
            *out = rec_at(w, i);
            return CAP_OK;
        }
    if (w->cap_recs < w->max_jobs) { /* room to grow: one more chunk */
        size_t n = w->max_jobs - w->cap_recs;
        n = n < REC_CHUNK ? n : REC_CHUNK;
        job_rec *c = ring_fit(w, w->cap_recs + n) == CAP_OK
                         ? aligned_alloc(_Alignof(job_rec), n * sizeof *c)
                         : NULL;
        if (c) {
            memset(c, 0, n * sizeof *c);
            for (size_t i = 0; i < n; i++)
                c[i].idx = (uint32_t)(w->cap_recs + i);
            w->chunks[w->cap_recs / REC_CHUNK] = c;
            w->cap_recs += n;
            *out = c;
            return CAP_OK;
        }
    }
    /* Full: the record that finished first. */
    if (!oldest)
        return CAP_EFULL;
    return (*out = rec_evict(w, oldest, evicted)) ? CAP_OK : CAP_ENOMEM;
}

/* Replaces the record's attempt fields with those of a new request (the
 * record is free, or holds an earlier attempt of the same job) whose job
 * id is job_len bytes with hash `hash`, and enters a record new to the job
 * in the index; the text is left empty. All allocations happen before
 * anything is replaced. */
static int rec_load(ref_worker *w, job_rec *r, const cap_packet *pkt, const job_request *req,
                    size_t job_len, uint64_t hash)
{
    const dispatch_identity *d = req->dispatch;
    const identity_binding *ib = req->identity;
    /* job_id, dispatch_id, trace_id, then the identity's four strings */
    const char *src[S_TEXT] = {nz(req->job_id), nz(d->dispatch_id), nz(pkt->trace_id), "", "", "",
                               ""};
    if (ib) {
        src[S_TENANT] = nz(ib->tenant_id);
        src[S_PRINCIPAL] = nz(ib->principal_id);
        src[S_ACTOR] = nz(ib->actor_id);
        src[S_DELEGATION] = nz(ib->delegation_id);
    }
    size_t len[S_TEXT], total = 0;
    for (int i = 0; i < S_TEXT; i++) {
        len[i] = i == S_JOB ? job_len : strlen(src[i]);
        total += len[i] ? len[i] + 1 : 0;
    }
    if (total > UINT32_MAX)
        return CAP_ENOMEM;
    char *heap = total > sizeof r->in ? malloc(total) : NULL;
    if (total > sizeof r->in && !heap)
        return CAP_ENOMEM;
    int same_job = r->used && rl(r, S_JOB) == job_len &&
                   memcmp(rs(r, S_JOB), src[S_JOB], job_len) == 0;
    /* A job new to the record enters the index (under the record's index,
     * so a lookup compares the id on the record, loaded below), the
     * job it held, if any, leaves it. */
    if (!same_job && ref_idindex_put(&w->by_job, hash, r->idx) != CAP_OK) {
        free(heap);
        return CAP_ENOMEM;
    }
    if (r->used && !same_job)
        index_del(w, r);
    char *old = r->heap;
    r->heap = NULL; /* freed below */
    fin_unlink(w, r);
    rec_clear(r);
    char *base = heap ? heap : r->in;
    uint32_t off = 0;
    for (int i = 0; i < S_TEXT; i++) {
        if (len[i]) {
            memmove(base + off, src[i], len[i] + 1);
            off += (uint32_t)len[i] + 1;
        }
        r->end[i] = off;
    }
    r->end[S_TEXT] = off;
    r->heap = heap;
    free(old);
    r->used = 1;
    r->tag = (uint32_t)(hash >> 32);
    r->attempt = d->attempt;
    r->has_identity = ib != NULL;
    return CAP_OK;
}

/* ---- packets ------------------------------------------------------------ */

/* The worker builds each packet in one block (ref_block), published with
 * ref_effects_publish_block: one allocation and one free per packet
 * instead of one per field. A builder adds up its pieces, then carves
 * them; the *_size helpers below measure exactly what the matching
 * *_take helpers carve. Strings travel with their lengths (a record and
 * the worker keep them), so nothing is measured twice. */

/* A string and its length. */
typedef struct {
    const char *s;
    size_t n;
} span;

static span span_of(const char *s)
{
    return (span){s, s ? strlen(s) : 0};
}

static span rec_span(const job_rec *r, int i)
{
    return (span){rs(r, i), rl(r, i)};
}

/* A DispatchIdentity {dispatch_id, attempt, assigned_worker_id = worker}. */
static size_t dispatch_size(span dispatch_id, span worker)
{
    return ref_block_size(sizeof(dispatch_identity)) + ref_block_str_size_n(dispatch_id.n) +
           ref_block_str_size_n(worker.n);
}

static dispatch_identity *dispatch_take(ref_block *b, span dispatch_id, uint64_t attempt,
                                        span worker)
{
    dispatch_identity *d = ref_block_take_raw(b, sizeof *d); /* set whole by __init */
    if (!d)
        return NULL;
    cordum__agent__v1__dispatch_identity__init(d);
    d->dispatch_id = ref_block_str_n(b, dispatch_id.s, dispatch_id.n);
    d->attempt = attempt;
    d->assigned_worker_id = ref_block_str_n(b, worker.s, worker.n);
    return d;
}

/* An IdentityBinding of four strings: tenant, principal, actor,
 * delegation (NULL: none, takes nothing). */
static size_t identity_size(const span *id)
{
    if (!id)
        return 0;
    size_t n = ref_block_size(sizeof(identity_binding));
    for (int i = 0; i < 4; i++)
        n += ref_block_str_size_n(id[i].n);
    return n;
}

static identity_binding *identity_take(ref_block *b, const span *id)
{
    identity_binding *ib = id ? ref_block_take_raw(b, sizeof *ib) : NULL; /* set by __init */
    if (!ib)
        return NULL;
    cordum__agent__v1__identity_binding__init(ib);
    ib->tenant_id = ref_block_str_n(b, id[0].s, id[0].n);
    ib->principal_id = ref_block_str_n(b, id[1].s, id[1].n);
    ib->actor_id = ref_block_str_n(b, id[2].s, id[2].n);
    ib->delegation_id = ref_block_str_n(b, id[3].s, id[3].n);
    return ib;
}

/* The record's identity binding in id[4], or NULL when it has none. */
static const span *rec_identity(const job_rec *r, span *id)
{
    if (!r->has_identity)
        return NULL;
    for (int i = 0; i < 4; i++)
        id[i] = rec_span(r, S_TENANT + i);
    return id;
}

/* The packet p carved from blk, or NULL (blk freed) when a piece did not
 * fit: the measure and the carving disagree, which cannot happen. */
static cap_packet *block_done(ref_block *b, void *blk, cap_packet *p)
{
    if (b->bad || !p) {
        free(blk);
        return NULL;
    }
    return p;
}

static const char *error_code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&cordum__agent__v1__error_code__descriptor, code);
    return v ? v->name : "";
}

/* The recorded JobResult of a finished record, in one block; created_at
 * is the finish time, so a replay is the same packet. */
static cap_packet *build_result(const ref_worker *w, const job_rec *r)
{
    span wk = {w->worker_id, w->worker_len}, trace = rec_span(r, S_TRACE),
         job = rec_span(r, S_JOB), text = rec_span(r, S_TEXT), dsp = rec_span(r, S_DISPATCH), id[4];
    const span *idp = rec_identity(r, id);
    span code = span_of(r->error_code_enum ? error_code_name(r->error_code_enum) : NULL);
    size_t n = ref_block_envelope_size_n(trace.n, wk.n) +
               ref_block_size(sizeof(Cordum__Agent__V1__JobResult)) + ref_block_str_size_n(job.n) +
               ref_block_str_size_n(wk.n) + ref_block_str_size_n(text.n) +
               ref_block_str_size_n(code.n) + dispatch_size(dsp, wk) + identity_size(idp);
    ref_block b;
    void *blk = ref_block_new(&b, n);
    if (!blk)
        return NULL;
    cap_packet *p = ref_block_envelope_n(&b, trace.s, trace.n, wk.s, wk.n, r->finished_at);
    Cordum__Agent__V1__JobResult *res = ref_block_take_raw(&b, sizeof *res); /* set by __init */
    if (p && res) {
        cordum__agent__v1__job_result__init(res);
        p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
        p->job_result = res;
        res->job_id = ref_block_str_n(&b, job.s, job.n);
        res->status = (Cordum__Agent__V1__JobStatus)r->state;
        res->worker_id = ref_block_str_n(&b, wk.s, wk.n);
        res->execution_ms = r->execution_ns / NS_PER_MS;
        if (r->state == REF_JOB_SUCCEEDED)
            res->result_ptr = ref_block_str_n(&b, text.s, text.n);
        else
            res->error_message = ref_block_str_n(&b, text.s, text.n);
        if (r->error_code_enum) {
            res->error_code_enum = (Cordum__Agent__V1__ErrorCode)r->error_code_enum;
            res->error_code = ref_block_str_n(&b, code.s, code.n);
        }
        res->dispatch = dispatch_take(&b, dsp, r->attempt, wk);
        res->identity = identity_take(&b, idp);
    }
    return block_done(&b, blk, p);
}

/* A JobProgress {job_id, percent, message, RUNNING, dispatch (when
 * dispatch_id.s is not NULL), identity (when id is not NULL)} in one
 * block. */
static cap_packet *progress_block(span trace_id, span worker, span job_id, int32_t percent,
                                  span message, span dispatch_id, uint64_t attempt, const span *id,
                                  int64_t now)
{
    size_t n = ref_block_envelope_size_n(trace_id.n, worker.n) +
               ref_block_size(sizeof(Cordum__Agent__V1__JobProgress)) +
               ref_block_str_size_n(job_id.n) + ref_block_str_size_n(message.n) +
               (dispatch_id.s ? dispatch_size(dispatch_id, worker) : 0) + identity_size(id);
    ref_block b;
    void *blk = ref_block_new(&b, n);
    if (!blk)
        return NULL;
    cap_packet *p = ref_block_envelope_n(&b, trace_id.s, trace_id.n, worker.s, worker.n, now);
    Cordum__Agent__V1__JobProgress *pr = ref_block_take_raw(&b, sizeof *pr); /* set by __init */
    if (p && pr) {
        cordum__agent__v1__job_progress__init(pr);
        p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS;
        p->job_progress = pr;
        pr->job_id = ref_block_str_n(&b, job_id.s, job_id.n);
        pr->percent = percent;
        pr->message = ref_block_str_n(&b, message.s, message.n);
        pr->status = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING;
        if (dispatch_id.s)
            pr->dispatch = dispatch_take(&b, dispatch_id, attempt, worker);
        pr->identity = identity_take(&b, id);
    }
    return block_done(&b, blk, p);
}

cap_packet *ref_worker_progress_packet(const char *trace_id, const char *worker_id,
                                      const char *job_id, int32_t percent, const char *message,
                                      const dispatch_identity *dispatch,
                                      const identity_binding *identity, int64_t now)
{
    span id[4], dsp = {NULL, 0};
    if (identity) {
        id[0] = span_of(identity->tenant_id);
        id[1] = span_of(identity->principal_id);
        id[2] = span_of(identity->actor_id);
        id[3] = span_of(identity->delegation_id);
    }
    if (dispatch)
        dsp = span_of(nz(dispatch->dispatch_id));
    cap_packet *blk = progress_block(span_of(trace_id), span_of(worker_id), span_of(job_id),
                                     percent, span_of(message), dsp,
                                     dispatch ? dispatch->attempt : 0, identity ? id : NULL, now);
    cap_packet *p = blk ? ref_packet_heap_copy(blk) : NULL;
    free(blk);
    return p;
}

static cap_packet *build_progress(const ref_worker *w, const job_rec *r, int64_t now)
{
    static const char started[] = "started";
    span id[4];
    return progress_block(rec_span(r, S_TRACE), (span){w->worker_id, w->worker_len},
                          rec_span(r, S_JOB), 0, (span){started, sizeof started - 1},
                          rec_span(r, S_DISPATCH), r->attempt, rec_identity(r, id), now);
}

/* Mean completion of the running attempts, 0-100 (a HANG counts as 0). */
static int32_t progress_pct(const ref_worker *w, int64_t now)
{
    int64_t sum = 0;
    int n = 0;
    for (size_t i = 0; i < w->n_live; i++) {
        const job_rec *r = rec_at(w, w->live[i]);
        n++;
        if (!r->timer_id)
            continue;
        int64_t pct = 100;
        if (r->execution_ns > 0) {
            int64_t el = now - r->started;
            el = el < 0 ? 0 : el;
            pct = el >= r->execution_ns ? 100 : (int64_t)((double)el * 100.0 / (double)r->execution_ns);
        }
        sum += pct;
    }
    return n ? (int32_t)(sum / n) : 0;
}

/* The next heartbeat, in one block; its trace id is "hb-<worker_id>-<seq>". */
static cap_packet *build_heartbeat(ref_worker *w, int64_t now)
{
    char trace[REF_WORKER_MAX_NAME + 48], num[24], *end = num + sizeof num;
    char *d = cap_fmt_u64(end, w->hb_seq);
    size_t wl = w->worker_len, dl = (size_t)(end - d);
    memcpy(trace, "hb-", 3);
    memcpy(trace + 3, w->worker_id, wl); /* wl <= REF_WORKER_MAX_NAME */
    trace[3 + wl] = '-';
    memcpy(trace + 4 + wl, d, dl);
    trace[4 + wl + dl] = 0;

    typedef Cordum__Agent__V1__Heartbeat__LabelsEntry label_entry;
    size_t tl = 4 + wl + dl;
    size_t n = ref_block_envelope_size_n(tl, wl) +
               ref_block_size(sizeof(Cordum__Agent__V1__Heartbeat)) + ref_block_str_size_n(wl) +
               ref_block_str_size_n(w->pool_len) + ref_block_str_size_n(w->memo_len);
    if (w->n_caps)
        n += ref_block_size(w->n_caps * sizeof(char *));
    for (size_t i = 0; i < w->n_caps; i++)
        n += ref_block_str_size(w->caps[i]);
    if (w->n_labels)
        n += ref_block_size(w->n_labels * sizeof(label_entry *));
    for (size_t i = 0; i < w->n_labels; i++)
        n += ref_block_size(sizeof(label_entry)) + ref_block_str_size(w->label_k[i]) +
             ref_block_str_size(w->label_v[i]);
    ref_block b;
    void *blk = ref_block_new(&b, n);
    if (!blk)
        return NULL;
    cap_packet *p = ref_block_envelope_n(&b, trace, tl, w->worker_id, wl, now);
    Cordum__Agent__V1__Heartbeat *hb = ref_block_take_raw(&b, sizeof *hb); /* set by __init */
    if (!p || !hb)
        return block_done(&b, blk, NULL);
    cordum__agent__v1__heartbeat__init(hb);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
    p->heartbeat = hb;
    hb->worker_id = ref_block_str_n(&b, w->worker_id, wl);
    hb->pool = ref_block_str_n(&b, w->pool, w->pool_len);
    hb->active_jobs = w->running;
    hb->max_parallel_jobs = w->max_parallel;
    hb->progress_pct = progress_pct(w, now);
    hb->last_memo = ref_block_str_n(&b, w->last_memo, w->memo_len);
    if (w->n_caps && (hb->capabilities = ref_block_take(&b, w->n_caps * sizeof(char *)))) {
        hb->n_capabilities = w->n_caps;
        for (size_t i = 0; i < w->n_caps; i++)
            hb->capabilities[i] = ref_block_str(&b, w->caps[i]);
    }
    if (w->n_labels && (hb->labels = ref_block_take(&b, w->n_labels * sizeof(label_entry *)))) {
        for (size_t i = 0; i < w->n_labels; i++) {
            label_entry *e = ref_block_take_raw(&b, sizeof *e); /* set by __init */
            if (!e)
                break;
            cordum__agent__v1__heartbeat__labels_entry__init(e);
            e->key = ref_block_str(&b, w->label_k[i]);
            e->value = ref_block_str(&b, w->label_v[i]);
            hb->labels[i] = e;
            hb->n_labels = i + 1;
        }
    }
    return block_done(&b, blk, p);
}

/* ---- lifecycle ---------------------------------------------------------- */

void ref_worker_free(ref_worker *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->cap_recs; i++) {
        job_rec *r = rec_at(w, i);
        free(r->heap);
    }
    for (size_t i = 0; i < w->cap_recs; i += REC_CHUNK)
        free(w->chunks[i / REC_CHUNK]);
    if (w->chunks != w->chunks_in)
        free(w->chunks);
    if (w->live != w->live_in)
        free(w->live);
    ref_idindex_free(&w->by_job);
    free(w->fin_ring);
    for (size_t i = 0; i < w->n_caps; i++)
        free(w->caps[i]);
    free(w->caps);
    for (size_t i = 0; i < w->n_labels; i++) {
        free(w->label_k[i]);
        free(w->label_v[i]);
    }
    free(w->label_k);
    free(w->label_v);
    free(w->names_heap);
    free(w);
}

static int config_ok(const ref_worker_config *c)
{
    if (!name_ok(c->worker_id) || !name_ok(c->pool) || !c->handler)
        return 0;
    if (c->max_parallel_jobs < 0 || c->max_parallel_jobs > REF_WORKER_MAX_PARALLEL_LIMIT)
        return 0;
    if (c->heartbeat_interval_ns < 0 || c->max_jobs > REF_WORKER_MAX_JOBS_LIMIT ||
        c->done_window_ns < 0)
        return 0;
    size_t par = c->max_parallel_jobs ? (size_t)c->max_parallel_jobs : 1;
    size_t jobs = c->max_jobs ? c->max_jobs : REF_WORKER_DEFAULT_MAX_JOBS;
    if (jobs <= par)
        return 0;
    if ((c->n_capabilities && !c->capabilities) || (c->n_labels && !c->labels))
        return 0;
    for (size_t i = 0; i < c->n_capabilities; i++)
        if (!name_ok(c->capabilities[i]))
            return 0;
    for (size_t i = 0; i < c->n_labels; i++) {
        const char *v = c->labels[i].value;
        if (!name_ok(c->labels[i].key) || !v || strlen(v) > REF_WORKER_MAX_NAME)
            return 0;
        if (i && strcmp(c->labels[i - 1].key, c->labels[i].key) >= 0)
            return 0; /* unsorted or duplicate */
    }
    return 1;
}

int ref_worker_init(const ref_worker_config *cfg, ref_worker **out)
{
    if (!cfg || !out || !config_ok(cfg))
        return CAP_EINVAL;
    ref_worker *w = aligned_alloc(_Alignof(ref_worker), sizeof *w);
    if (!w)
        return CAP_ENOMEM;
    memset(w, 0, sizeof *w);
    w->max_parallel = cfg->max_parallel_jobs ? cfg->max_parallel_jobs : 1;
    w->hb_interval = cfg->heartbeat_interval_ns ? cfg->heartbeat_interval_ns
                                                : REF_WORKER_DEFAULT_HEARTBEAT_NS;
    w->max_jobs = cfg->max_jobs ? cfg->max_jobs : REF_WORKER_DEFAULT_MAX_JOBS;
    w->done_window = cfg->done_window_ns ? cfg->done_window_ns : REF_WORKER_DEFAULT_DONE_WINDOW_NS;
    w->strict_first = cfg->strict_first_attempt != 0;
    w->no_journal = cfg->no_journal != 0;
    w->handler = cfg->handler;
    w->hctx = cfg->handler_ctx;
    w->worker_len = strlen(cfg->worker_id);
    w->pool_len = strlen(cfg->pool);
    /* worker_id, pool, job.<pool>, worker.<worker_id>.jobs with their NULs */
    size_t names = 2 * w->worker_len + 2 * w->pool_len + 4 + 4 + 12;
    char *nb = names <= sizeof w->names_in ? w->names_in : (w->names_heap = malloc(names));
    if (nb) {
        memcpy(nb, cfg->worker_id, w->worker_len + 1);
        w->worker_id = nb;
        nb += w->worker_len + 1;
        memcpy(nb, cfg->pool, w->pool_len + 1);
        w->pool = nb;
        nb += w->pool_len + 1;
        memcpy(nb, "job.", 4);
        memcpy(nb + 4, cfg->pool, w->pool_len + 1);
        w->pool_subject = nb;
        nb += 4 + w->pool_len + 1;
        memcpy(nb, "worker.", 7);
        memcpy(nb + 7, cfg->worker_id, w->worker_len);
        memcpy(nb + 7 + w->worker_len, ".jobs", 6);
        w->direct_subject = nb;
    }
    w->cap_live = (uint32_t)w->max_parallel + 1;
    w->live = w->cap_live <= LIVE_INLINE ? w->live_in : malloc(w->cap_live * sizeof *w->live);
    size_t n_chunks = (w->max_jobs + REC_CHUNK - 1) / REC_CHUNK;
    w->chunks = n_chunks <= CHUNKS_INLINE ? w->chunks_in : calloc(n_chunks, sizeof *w->chunks);
    int ok = nb && w->live && w->chunks;
    if (ok && cfg->n_capabilities) {
        w->caps = calloc(cfg->n_capabilities, sizeof *w->caps);
        ok = w->caps != NULL;
        for (size_t i = 0; ok && i < cfg->n_capabilities; i++) {
            w->caps[i] = dup_str(cfg->capabilities[i]);
            w->n_caps = i + 1;
            ok = w->caps[i] != NULL;
        }
    }
    if (ok && cfg->n_labels) {
        w->label_k = calloc(cfg->n_labels, sizeof *w->label_k);
        w->label_v = calloc(cfg->n_labels, sizeof *w->label_v);
        ok = w->label_k && w->label_v;
        for (size_t i = 0; ok && i < cfg->n_labels; i++) {
            w->label_k[i] = dup_str(cfg->labels[i].key);
            w->label_v[i] = dup_str(cfg->labels[i].value);
            w->n_labels = i + 1;
            ok = w->label_k[i] && w->label_v[i];
        }
    }
    if (!ok) {
        ref_worker_free(w);
        return CAP_ENOMEM;
    }
    *out = w;
    return CAP_OK;
}

static int heartbeat(ref_worker *w, int64_t now, ref_effects *fx)
{
    cap_packet *p = build_heartbeat(w, now);
    if (!p)
        return CAP_ENOMEM;
    w->hb_seq++;
    int rc = ref_effects_publish_block(fx, REF_WORKER_SUBJECT_HEARTBEAT, p);
    if (rc == CAP_OK)
        rc = ref_effects_timer_set(fx, REF_WORKER_TIMER_HEARTBEAT, now + w->hb_interval);
    return rc;
}

int ref_worker_start(ref_worker *w, int64_t now, ref_effects *fx)
{
    if (!w || !fx)
        return CAP_EINVAL;
    return heartbeat(w, now, fx);
}

/* ---- jobs --------------------------------------------------------------- */

/* Moves a running record to its result status (checked against the job
 * state table) and records it. */
static void finish(ref_worker *w, job_rec *r, int status, int64_t now)
{
    ref_js_outcome o = ref_jobstate_check(r->state, status);
    if (ref_js_outcome_applies(o) || o == REF_JS_REPEAT)
        r->state = status;
    r->finished = 1;
    live_del(w, r);
    r->finished_at = now;
    r->timer_id = 0;
    fin_append(w, r);
}

static int publish_result(ref_worker *w, const job_rec *r, ref_effects *fx)
{
    cap_packet *p = build_result(w, r);
    if (!p)
        return CAP_ENOMEM;
    return ref_effects_publish_block(fx, REF_WORKER_SUBJECT_RESULT, p);
}

static int status_of(ref_work_outcome o)
{
    switch (o) {
    case REF_WORK_SUCCEEDED: return REF_JOB_SUCCEEDED;
    case REF_WORK_FAILED_RETRYABLE: return REF_JOB_FAILED_RETRYABLE;
    case REF_WORK_HANG: return REF_JOB_RUNNING;
    default: return REF_JOB_FAILED_FATAL;
    }
}

static int reject(ref_worker *w, ref_effects *fx, int64_t now, const char *job_id,
                  const dispatch_identity *d, const char *why)
{
    return journal(w, fx, now, "reject-dispatch", job_id, d ? d->dispatch_id : "",
                   d ? d->attempt : 0, why);
}

static int on_request(ref_worker *w, const cap_packet *pkt, const job_request *req, int64_t now,
                      ref_effects *fx)
{
    const dispatch_identity *d = req->dispatch;
    const char *job_id = nz(req->job_id);
    if (!job_id[0])
        return reject(w, fx, now, job_id, d, "missing-job-id");
    /* The lines a new job reads are asked for at once, while the request
     * is checked: the job id's index cell; the record that finished
     * first, whose slot a new job takes once it is old enough, and its
     * cell, which it then leaves; or, while the table fills, a free slot. */
    size_t job_len = strlen(job_id);
    uint64_t hash = ref_idindex_hash(job_id, job_len);
    ref_idindex_prefetch(&w->by_job, hash);
    if (w->fin_head != w->fin_tail) {
        uint64_t e = w->fin_hint; /* the record's tag << 32 | its index */
        rec_prefetch(rec_at(w, (uint32_t)e));
        /* A hash with the tag's bits on top: the index places a cell by
         * those (a hint either way). */
        ref_idindex_prefetch(&w->by_job, e & ~(uint64_t)UINT32_MAX);
        __builtin_prefetch(&w->fin_ring[w->fin_head & w->fin_mask], 1);
    }
    if (w->n_recs < w->cap_recs)
        __builtin_prefetch(rec_at(w, w->free_from), 1);
    if (!d || !nz(d->dispatch_id)[0] || d->attempt == 0)
        return reject(w, fx, now, job_id, d, "missing-dispatch-identity");
    if (strcmp(nz(d->assigned_worker_id), w->worker_id) != 0)
        return reject(w, fx, now, job_id, d, "wrong-worker");

    job_rec *r = rec_find(w, job_id, job_len, hash);
    int rerun = r && r->finished && r->attempt == d->attempt && ref_bug_active(REF_BUG_HANDLER_TWICE); /* mutant handler-twice (ref_bugs.h): a redelivery runs again */
    if (!rerun && r && r->attempt == d->attempt &&
        strcmp(rs(r, S_DISPATCH), nz(d->dispatch_id)) == 0) {
        if (!r->finished)
            return journal(w, fx, now, "duplicate-running", job_id, rs(r, S_DISPATCH), r->attempt,
                           "redelivery while the attempt runs");
        int rc = publish_result(w, r, fx);
        if (rc == CAP_OK)
            rc = journal(w, fx, now, "replay", job_id, rs(r, S_DISPATCH), r->attempt,
                         ref_jobstate_name(r->state));
        return rc;
    }
    uint64_t active = r ? r->attempt : 0;
    if ((r || w->strict_first) && !rerun) {
        if (d->attempt <= active && !ref_bug_active(REF_BUG_ACCEPT_STALE_ATTEMPT)) /* mutant accept-stale-attempt (ref_bugs.h) */
            return reject(w, fx, now, job_id, d,
                          d->attempt == active ? "dispatch-mismatch" : "stale-attempt");
        if (d->attempt > active + 1)
            return reject(w, fx, now, job_id, d, "future-attempt");
    }

    /* Accepted: this becomes the active attempt. */
    int superseded = r && !r->finished;
    int full = !superseded && w->running >= w->max_parallel;
    char *evicted = NULL;
    const char *evict_why = NULL;
    if (!r) {
        int src = rec_slot(w, now, &r, &evicted, &evict_why);
        if (src != CAP_OK)
            return src; /* CAP_EFULL is unreachable: max_jobs > max_parallel_jobs */
    }
    uint64_t old_timer = superseded ? r->timer_id : 0;
    char *old_dispatch = superseded ? dup_str(rs(r, S_DISPATCH)) : NULL;
    uint64_t old_attempt = r->attempt;
    int was_used = r->used;
    if ((superseded && !old_dispatch) || rec_load(w, r, pkt, req, job_len, hash) != CAP_OK) {
        free(old_dispatch);
        free(evicted);
        return CAP_ENOMEM; /* the record is unchanged */
    }
    if (!was_used)
        w->n_recs++;
    live_add(w, r);
    if (superseded)
        w->running--;

    int rc = CAP_OK;
    if (evicted) {
        if (rc == CAP_OK)
            rc = journal(w, fx, now, "evict", evicted, "", 0, evict_why);
        free(evicted);
    }
    if (superseded) {
        if (old_timer && rc == CAP_OK)
            rc = ref_effects_timer_cancel(fx, old_timer);
        if (rc == CAP_OK)
            rc = journal(w, fx, now, "superseded", job_id, old_dispatch, old_attempt,
                         "a newer attempt arrived");
    }
    free(old_dispatch);

    /* Per attempt: the dispatch the worker received, then running. */
    r->state = REF_JOB_DISPATCHED;
    r->started = now;
    if (full) {
        int trc = text_set(r, "max_parallel_jobs reached");
        r->error_code_enum = CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_RESOURCE_EXHAUSTED;
        r->execution_ns = 0;
        finish(w, r, REF_JOB_FAILED_RETRYABLE, now);
        if (trc != CAP_OK)
            return CAP_ENOMEM;
        set_memo(w, "busy", rs(r, S_JOB), rl(r, S_JOB));
        if (rc == CAP_OK)
            rc = publish_result(w, r, fx);
        if (rc == CAP_OK)
            rc = journal(w, fx, now, "busy", job_id, rs(r, S_DISPATCH), r->attempt,
                         "ERROR_CODE_JOB_RESOURCE_EXHAUSTED");
        return rc;
    }

    ref_work work = {REF_WORK_SUCCEEDED, NULL, 0};
    w->handler_calls++;
    w->handler(w->hctx, req, now, &work);
    r->pending = status_of(work.outcome);
    r->error_code_enum = 0;
    r->execution_ns = work.service_ns < 0 ? 0 : work.service_ns;
    ref_js_outcome o = ref_jobstate_check(r->state, REF_JOB_RUNNING);
    if (ref_js_outcome_applies(o))
        r->state = REF_JOB_RUNNING;
    w->running++;
    if (text_set(r, work.text) != CAP_OK) {
        /* Nothing was published for this attempt: end it as a fatal
         * failure so a redelivery replays a result instead of hanging. */
        w->running--;
        finish(w, r, REF_JOB_FAILED_FATAL, now);
        return CAP_ENOMEM;
    }
    if (r->pending != REF_JOB_RUNNING) {
        r->timer_id = timer_id_for(w, r);
    }
    set_memo(w, "started", rs(r, S_JOB), rl(r, S_JOB));
    cap_packet *prog = build_progress(w, r, now);
    if (!prog && rc == CAP_OK)
        rc = CAP_ENOMEM;
    if (prog) {
        int prc = ref_effects_publish_block(fx, REF_WORKER_SUBJECT_PROGRESS, prog);
        if (rc == CAP_OK)
            rc = prc;
    }
    if (r->timer_id) {
        int trc = ref_effects_timer_set(fx, r->timer_id, now + r->execution_ns);
        if (rc == CAP_OK)
            rc = trc;
    }
    int jrc = journal(w, fx, now, "run", job_id, rs(r, S_DISPATCH), r->attempt,
                      r->pending == REF_JOB_RUNNING ? "HANG" : ref_jobstate_name(r->pending));
    return rc == CAP_OK ? jrc : rc;
}

static int on_cancel(ref_worker *w, const job_cancel *c, int64_t now, ref_effects *fx)
{
    const char *job_id = nz(c->job_id);
    const dispatch_identity *d = c->dispatch;
    size_t job_len = strlen(job_id);
    job_rec *r = job_len ? rec_find(w, job_id, job_len, ref_idindex_hash(job_id, job_len)) : NULL;
    if (!r)
        return journal(w, fx, now, "ignore-cancel", job_id, d ? d->dispatch_id : "",
                       d ? d->attempt : 0, "unknown job");
    if (d) {
        const char *why = NULL;
        if (strcmp(nz(d->assigned_worker_id), w->worker_id) != 0)
            why = "wrong-worker";
        else if (d->attempt < r->attempt)
            why = "stale-attempt";
        else if (d->attempt > r->attempt)
            why = "future-attempt";
        else if (strcmp(nz(d->dispatch_id), rs(r, S_DISPATCH)) != 0)
            why = "dispatch-mismatch";
        if (why)
            return journal(w, fx, now, "ignore-cancel", job_id, d->dispatch_id, d->attempt, why);
    }
    if (r->finished)
        return journal(w, fx, now, "ignore-cancel", job_id, rs(r, S_DISPATCH), r->attempt,
                       "attempt already finished");
    if (!ref_jobstate_can_cancel(r->state))
        return journal(w, fx, now, "ignore-cancel", job_id, rs(r, S_DISPATCH), r->attempt,
                       ref_jobstate_name(r->state));
    if (text_set(r, nz(c->reason)[0] ? c->reason : "cancelled") != CAP_OK)
        return CAP_ENOMEM;
    uint64_t timer_id = r->timer_id;
    r->error_code_enum = 0;
    r->execution_ns = now - r->started < 0 ? 0 : now - r->started;
    w->running--;
    finish(w, r, REF_JOB_CANCELLED, now);
    set_memo(w, "cancelled", rs(r, S_JOB), rl(r, S_JOB));
    int rc = CAP_OK;
    if (timer_id)
        rc = ref_effects_timer_cancel(fx, timer_id);
    if (rc == CAP_OK)
        rc = publish_result(w, r, fx);
    if (rc == CAP_OK)
        rc = journal(w, fx, now, "cancel", job_id, rs(r, S_DISPATCH), r->attempt, nz(c->reason));
    return rc;
}

int ref_worker_on_packet(ref_worker *w, const char *subject, const cap_packet *pkt, int64_t now,
                         ref_effects *fx)
{
    if (!w || !subject || !pkt || !fx)
        return CAP_EINVAL;
    worker_prefetch(w);
    if (pkt->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST && pkt->job_request &&
        (strcmp(subject, w->pool_subject) == 0 || strcmp(subject, w->direct_subject) == 0))
        return on_request(w, pkt, pkt->job_request, now, fx);
    if (pkt->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL && pkt->job_cancel &&
        strcmp(subject, REF_WORKER_SUBJECT_CANCEL) == 0)
        return on_cancel(w, pkt->job_cancel, now, fx);
    const char *name = cap_packet_payload_name(pkt);
    return journal(w, fx, now, "ignore-packet", "", "", 0, name ? name : "no payload");
}

int ref_worker_on_timer(ref_worker *w, uint64_t id, int64_t now, ref_effects *fx)
{
    if (!w || !fx)
        return CAP_EINVAL;
    worker_prefetch(w);
    if (id == REF_WORKER_TIMER_HEARTBEAT)
        return heartbeat(w, now, fx);
    job_rec *r = id ? rec_by_timer(w, id) : NULL;
    if (!r || r->finished)
        return CAP_OK;
    w->running--;
    finish(w, r, r->pending, now);
    set_memo(w, ref_jobstate_name(r->state), rs(r, S_JOB), rl(r, S_JOB));
    int rc = publish_result(w, r, fx);
    if (rc == CAP_OK)
        rc = journal(w, fx, now, "result", rs(r, S_JOB), rs(r, S_DISPATCH), r->attempt,
                     ref_jobstate_name(r->state));
    return rc;
}

int ref_worker_crash(ref_worker *w, int64_t now, ref_effects *fx)
{
    if (!w || !fx)
        return CAP_EINVAL;
    int rc = CAP_OK;
    while (w->n_live > 0 && rc == CAP_OK) {
        job_rec *r = rec_at(w, w->live[w->n_live - 1]);
        if (text_set(r, REF_WORKER_CRASH_TEXT) != CAP_OK)
            return CAP_ENOMEM;
        r->error_code_enum = 0;
        r->execution_ns = now - r->started < 0 ? 0 : now - r->started;
        finish(w, r, REF_JOB_FAILED_RETRYABLE, now); /* takes it off the live list */
        rc = journal(w, fx, now, "crash", rs(r, S_JOB), rs(r, S_DISPATCH), r->attempt,
                     REF_WORKER_CRASH_TEXT);
    }
    w->running = 0;
    return rc;
}

const char *ref_work_outcome_name(ref_work_outcome o)
{
    switch (o) {
    case REF_WORK_SUCCEEDED: return "succeeded";
    case REF_WORK_FAILED_RETRYABLE: return "failed_retryable";
    case REF_WORK_FAILED_FATAL: return "failed_fatal";
    case REF_WORK_HANG: return "hang";
    }
    return "unknown";
}

const char *ref_worker_pool_subject(const ref_worker *w)
{
    return w->pool_subject;
}

const char *ref_worker_direct_subject(const ref_worker *w)
{
    return w->direct_subject;
}

int ref_worker_active_jobs(const ref_worker *w)
{
    return w->running;
}

size_t ref_worker_tracked_jobs(const ref_worker *w)
{
    return w->n_recs;
}

uint64_t ref_worker_handler_calls(const ref_worker *w)
{
    return w->handler_calls;
}

uint64_t ref_worker_active_attempt(const ref_worker *w, const char *job_id, int *state)
{
    size_t n = job_id ? strlen(job_id) : 0;
    const job_rec *r = job_id ? rec_find(w, job_id, n, ref_idindex_hash(job_id, n)) : NULL;
    if (state)
        *state = r ? r->state : REF_JOB_NONE;
    return r ? r->attempt : 0;
}
