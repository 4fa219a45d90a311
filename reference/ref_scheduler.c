/* The reference scheduler: see ref_scheduler.h and
 * docs/reference-scheduler.md. */
#include "ref_scheduler.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cap_base64.h"
#include "cap_copy.h"
#include "cap_encode.h"
#include "cap_fmt.h"
#include "cap_sha256.h"
#include "cap_swar.h"
#include "cap_time.h"
#include "ref_bugs.h"
#include "ref_idindex.h"
#include "ref_jobstate.h"
#include "ref_strmap.h"
#include "ref_u64map.h"

typedef Cordum__Agent__V1__JobRequest job_request;
typedef Cordum__Agent__V1__JobResult job_result;
typedef Cordum__Agent__V1__JobProgress job_progress;
typedef Cordum__Agent__V1__JobCancel job_cancel;
typedef Cordum__Agent__V1__DispatchIdentity dispatch_identity;

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_SEC INT64_C(1000000000)
#define TEXT_MAX 512 /* approver, note, reason, memo: longest kept */

/* Job timer kinds: the timer id is seq * 8 + kind. */
enum { TK_WAKE = 1, TK_WATCH = 2 };

/* Approval record status. */
enum { APPR_NONE = 0, APPR_PENDING = 1, APPR_APPROVED = 2, APPR_REJECTED = 3 };

/* Priority rank: lower dispatches first when capacity is short. */
static int rank_of(int priority)
{
    switch (priority) {
    case CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_CRITICAL: return 0;
    case CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_BATCH: return 2;
    default: return 1; /* INTERACTIVE, and UNSPECIFIED read as the default class */
    }
}

typedef struct job job;
/* Room in a job record for its job_id, trace_id, tenant and idempotency
 * key (each with its NUL): sized so a record is 512 bytes (asserted after
 * the struct). */
#define JOB_TEXT_IN 80
/* The members evicting a terminal job reads (make_room, unlink_job,
 * job_free: the walk's state and links, the keys it is indexed by, what
 * it may own) come first, together in under three cache lines: an evicted
 * job was last touched minutes before, so each line read is a miss. */
struct job {
    uint64_t seq;          /* 1, 2, ... in admission order */
    job *prev, *next;      /* live jobs in seq order */
    int state;
    int id_plain;          /* 1: job_id is known to hold nothing a JSON string escapes */
    char *job_id;          /* job_id, trace_id, tenant, idem: in text, or in a heap block of
                            * their own when they do not fit there (job_new) */
    size_t id_len;         /* strlen(job_id) */
    uint64_t id_hash;      /* ref_idindex_hash(job_id): its index cell (link_job, unlink_job) */
    char *idem;            /* idempotency index key, or NULL */
    uint32_t rec;          /* the record's number in the job store (job_at) */
    int text_heap;         /* job_id's block is a heap block, not text */
    /* Right after the first line: a lookup by id compares the id here. */
    char text[JOB_TEXT_IN];
    job_request *req;      /* owned; as submitted, without a dispatch identity;
                            * NULL once the job is terminal (finish releases it) */
    size_t req_block;      /* req's size when it is one block (keep_request), else 0 */
    /* the last safety decision (rule_id, reason: NULL once terminal) */
    char *rule_id, *snapshot, *reason;
    char *worker, *pool;    /* pool: NULL once terminal */
    char *appr_snapshot, *appr_by, *appr_note;
    char *memo;
    char *saga_wf;          /* a compensation: the workflow it compensates */
    uint32_t req_rel;      /* the pointers in req's block (relocate) */
    uint32_t req_cap;      /* the size req's block was allocated with (>= req_block) */
    int in_wf;             /* the request names a workflow_id (saga_after_terminal) */
    int waiting;           /* in the waiting queue (beside in_wf: no padding) */
    /* The request's topic, a shared string, while the request has no
     * labels or required capabilities and a topic of at most 4096 bytes
     * (else NULL): what a worker selection for the job reads of the
     * request (sel_miss), held on the job so that a drain's pass over the
     * waiting jobs reads the job alone. NULL once terminal. */
    char *sel_topic;
    char *trace_id;
    char *tenant;          /* effective tenant ("" when none is named) */
    int rank;
    int trace_plain;       /* 1: trace_id is known to hold nothing a JSON string escapes */
    int64_t state_at;
    int decision;
    uint32_t trace_len;    /* strlen(trace_id) (job_new refuses a longer one) */
    int64_t max_runtime_ns; /* 0: none */
    int32_t max_retries;    /* < 0: none (the scheduler's default applies) */
    int32_t max_concurrent; /* 0: none */
    uint32_t throttles;     /* consecutive THROTTLE answers */
    /* approval */
    int appr;
    char hash[65];
    /* dispatch */
    uint64_t attempt;
    char dispatch_id[33];
    /* these three and retries fill the padding after dispatch_id */
    uint8_t dispatch_len;   /* strlen(dispatch_id) */
    uint8_t dispatch_plain; /* dispatch_id holds nothing a JSON string escapes */
    uint8_t holds_slot;     /* counted in the worker's in-flight list */
    uint32_t retries;
    uint64_t ticket;        /* breaker ticket of the current attempt (soft state) */
    /* The in-flight list of the worker the job was last placed in, kept
     * after it leaves the list; it is j->worker's list exactly when its
     * worker_id is the same shared string as j->worker (ws_of). */
    struct worker_slots *ws;
    int done;               /* the current attempt's result has been applied */
    int counted;            /* counted active in the safety kernel */
    int64_t wait_since;     /* waiting for a worker since; -1 when not */
    int64_t wake_at, watch_at; /* armed timers; 0 when not armed */
    /* Workers that ran an attempt of the job before the last one (shared
     * strings, a reference each): a worker takes only the attempt after
     * the one it last saw of a job (cap-tck 4, "worker-rejects-future-
     * attempt"), so the next attempt goes to none of them. Soft state: a
     * restored job starts with none. NULL while there are none (one
     * pointer: the record's size is bounded, below). */
    struct passed_workers *passed;
};

struct passed_workers {
    uint32_t n, cap;
    char *id[];
};

/* The jobs a worker holds from this scheduler. Made on the worker's first
 * dispatch and kept until the scheduler is freed (so a pointer to it
 * stays good), with where the registry and the breaker set last had the
 * worker, which spares them a lookup by id on the next call. */
typedef struct worker_slots {
    char *worker_id; /* a shared string (intern_set), one reference */
    job **jobs;
    size_t n, cap;
    ref_registry_memo reg;
    ref_breaker_memo brk;
} worker_slots;

/* A job in the waiting queue. quiet_topic, when set, says that the job's
 * last try ended in a failed selection of a plain job (sel_miss) and left
 * it waiting with its wake timer armed (still); with quiet_snap (its
 * snapshot then) and give_up, it lets a drain's pass tell from this entry
 * alone that trying the job again would change nothing: the same topic as
 * a failed selection it may reuse, the same snapshot as now, before its
 * give-up. Such a job is passed over without reading its record, which a
 * pass over a backlog would otherwise read for every waiting job at every
 * heartbeat and freed slot. The pointers are the job's own shared strings
 * (its references keep them alive while it waits) and are only compared.
 * Set by wait_quiet, cleared by a try that may change the job. */
typedef struct {
    struct job *j;
    uint64_t seq;
    char *quiet_topic, *quiet_snap;
    int64_t give_up;
    /* 0 while the job waits; once it leaves, the entry stays in place (a
     * tombstone, until waitq_compact) and this holds the queue's removal
     * count then (ref_sched.wq_ops), so that a pass tells the entries that
     * left before it began (not its to try) from those that left since
     * (tried as a copy taken at its start would have them). */
    uint64_t dead_at;
    int rank;      /* the job's, for ordering without reading the job */
    uint32_t era;  /* == ref_sched.wq_era: counted in wq_counted */
} wentry;

/* How deep drains may run one inside another. A job tried by a drain can
 * end (it gives up waiting for a worker, or is denied), and its end drains
 * the queue again, from inside the first drain: when thousands of waiting
 * jobs give up at one instant, that recursion was thousands deep and
 * overflowed the stack. Up to this depth drains nest as before; a drain
 * asked for at this depth is run after the current pass of the deepest
 * one instead (one more pass, however many were asked for). */
#define DRAIN_NEST_MAX 32

/* A drain's pass over the waiting queue (drain_pass). It goes over the
 * entries as they were when it began, [0, end), tried in order. It reads
 * them in place while none of those it has yet to reach has changed;
 * before a change that would (an entry moved or marked past `cur`), the
 * rest is copied into `batch` (waitq_touch), from which the pass goes on.
 * Removing an entry changes nothing a pass reads (it only marks it). */
typedef struct {
    size_t cur, end;  /* the entry being tried; the entries the pass began with */
    wentry *batch;    /* NULL, or entries base .. end - 1 as they were */
    size_t base;
    uint64_t ops_at;  /* wq_ops when the pass began */
    int min_checked;  /* waitq_all_quiet computed wq_min_give_up afresh */
} wpass;

/* The last worker selection that found no worker. A selection is a
 * function of the job's topic (which gives its pools), its placement
 * labels, required capabilities and excluded workers, of what sel_epoch
 * counts, and of `now`; for a plain job (no labels, requirements or
 * exclusions) it is a function of the topic alone. Time changes its answer
 * only at two kinds of instants: a worker's heartbeat grace runs out (it
 * is lost: the outcome may change, say from all overloaded to no
 * workers), and an open breaker's cool-down ends (its worker may take a
 * job again). So the next plain job of the same topic, tried at the same
 * instant or later but before the earliest of those (`until`), gets the
 * same outcome without the walk over every worker, as long as sel_epoch
 * has not moved. The outcome is the only part of the answer a failed
 * selection passes on (wait_for_worker). Without this, a backlog of n jobs
 * behind m busy workers cost n * m filter checks at every freed slot and
 * heartbeat, and each waiting job's wake timer an m-worker walk. */
typedef struct {
    int valid;
    uint64_t epoch;
    int64_t now, until; /* reused at now..until-1 (at `now` alone when until <= now) */
    char *topic;        /* the jobs' sel_topic, a reference held */
    ref_sel_outcome outcome;
} sel_miss;

struct ref_sched {
    /* Counts the changes to what a worker selection reads (the registry,
     * the breakers, the in-flight lists); see sel_miss. */
    uint64_t sel_epoch;
    char *id;
    size_t id_len; /* strlen(id) */
    ref_safety *safety;
    ref_rand rand;
    ref_registry *registry;
    ref_breaker_set *breakers;
    ref_dedupe *dedupe;
    ref_saga *saga;
    size_t max_jobs;
    uint32_t max_retries;
    int64_t retry_base, retry_max, retry_jitter, throttle_base, tenant_delay;
    int64_t nw_retry, nw_wait, dispatch_to, running_to;
    ref_sched_timeouts *pool_to, *tenant_to;
    size_t n_pool_to, n_tenant_to;
    ref_sched_route *routes;
    size_t n_routes;
    int on_pool;

    ref_idindex by_id; /* job id -> record number (find_job compares the id on the record) */
    ref_strmap by_idem;
    /* The job store: records JOB_CHUNK to a chunk, numbered in the order
     * they were first made, never moved (pointers to them stay good); a
     * released record goes on the free list and the next job takes it. */
    char **chunks;
    size_t n_chunks, cap_chunks;
    uint32_t n_recs; /* records made */
    job *free_jobs;  /* released records, linked through next */
    ref_strmap strs; /* shared job strings (intern_set): text -> istr */
    struct istr *icache[6]; /* the last shared string per kind (IK_*), one reference each */
    /* The origin (ref_safety_decision) of the decision whose rule, snapshot
     * and reason are icache's IK_RULE, IK_SNAPSHOT and IK_REASON strings
     * (keep_decision); 0 when none is known to be. */
    uint64_t icache_origin;
    job **ring;        /* jobs by seq (seq_put): ring_cap places, a power of two */
    size_t ring_cap;
    ref_u64map by_seq; /* the seqs whose ring place another job holds */
    job *head, *tail;
    unsigned drain_depth; /* drains under way, one inside another (drain) */
    int drain_again;      /* a drain was asked for at the deepest level */
    /* Where make_room's walk for the oldest terminal job starts: every
     * linked job before it is not terminal (NULL: from the head). Without
     * it a full table of live jobs (a flood, long or hung jobs at the
     * head) made each admission walk the whole table. */
    job *evict_from;
    /* The terminal jobs by seq (a min-heap, entries checked when read:
     * evicted and reused records drop out), for make_room when its walk
     * from evict_from runs long: with old jobs ending among many live ones
     * (a full table, priorities mixed), each eviction would walk past them
     * all. Exact while the list is in seq order (list_unordered: a journal
     * restored jobs out of that order, and the walk alone is used). */
    struct term_entry {
        uint64_t seq;
        uint32_t rec;
    } *term;
    size_t n_term, cap_term;
    int list_unordered;
    size_t n_jobs;
    uint64_t next_seq;
    wentry *waitq; /* sorted by (rank, seq), tombstones among them (wentry) */
    size_t n_wait;  /* jobs waiting: entries not dead */
    size_t wq_len, cap_wait; /* entries, dead ones included; room */
    /* Every entry before this one is dead. Jobs mostly leave the queue from
     * its front, so that is where tombstones gather between compactions. */
    size_t wq_head;
    ref_strmap slots_by_worker; /* worker id -> worker_slots (lookups only) */
    worker_slots **slots;       /* every worker_slots, in creation order (to free them) */
    size_t n_slots, cap_slots;
    int64_t reg_timer, brk_timer; /* armed housekeeping timers; 0 when not */
    int restoring;               /* 1 while ref_sched_restore runs: no journal */
    int journal_form;            /* ref_sched_journal_form */
    ref_sched_stats st;
    /* the journal record being written, in place in the effects list's
     * text storage (ref_effects_record_room): its start, length so far,
     * the room there is from its start, and the list */
    char *jbuf;
    size_t jlen, jcap;
    int jn, jerr;
    ref_effects *jfx;
    /* a job's first record: its request's encoding (reused, grown to the
     * largest request written) */
    uint8_t *rbuf;
    size_t rcap;
    /* keep_request's scratch block and pointer offsets (reused, grown to
     * the largest request kept) */
    char *kbuf;
    size_t kcap;
    uint32_t *krel;
    size_t krel_cap;
    /* request blocks let go of (request_free), most recent last, for
     * keep_request to take again: one request's block is about as big as
     * the next one's, and a block reused costs no malloc and no free */
    struct spare_block {
        char *p;
        uint32_t cap;
    } spare[16];
    size_t n_spare;
    /* keep_request's copy plans, one per message type met (plan_of) */
    struct copy_plan **plans;
    size_t n_plans;
    /* the last job record's time as written ("t", quoted): the records of
     * one input share it */
    int64_t t_at;
    char t_text[24];
    size_t t_len; /* 0: none yet */
    /* the names of the job states 0 .. N_STATE_NAMES-1 and their lengths,
     * looked up once (every job record names its state) */
    const char *state_name[16];
    size_t state_len[16];
    sel_miss miss; /* the last failed selection */
    /* The drain passes under way, innermost last, and the queue's removals
     * so far (wentry.dead_at). */
    wpass passes[DRAIN_NEST_MAX];
    unsigned n_passes;
    uint64_t wq_ops;
    /* The waiting entries marked quiet with one topic and snapshot,
     * (wq_topic, wq_snap): their number, and a lower bound on their
     * give-up times (INT64_MAX when there are none). When every waiting
     * entry is one of them, a pass can tell in one look that none of the
     * entries left would move (waitq_all_quiet). wq_era tells the counted
     * entries (wentry.era) from ones marked under an earlier pair. */
    uint32_t wq_era;
    size_t wq_counted;
    char *wq_topic, *wq_snap; /* compared only, never read */
    int64_t wq_min_give_up;
};
#define N_STATE_NAMES 16

/* ---- small helpers -------------------------------------------------- */

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int try_rc_ = (x);                                                                         \
        if (try_rc_ < 0)                                                                           \
            return try_rc_;                                                                        \
    } while (0)

static const char *nz(const char *s) { return s ? s : ""; }

static char *dupn(const char *s, size_t max)
{
    size_t n = strlen(nz(s));
    if (n > max)
        n = max;
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, nz(s), n);
        c[n] = 0;
    }
    return c;
}

static char *dup(const char *s) { return dupn(s, (size_t)-1 / 2); }

/* Replaces *dst with a copy of src (at most max bytes); CAP_ENOMEM leaves
 * *dst as it was. */
static int set_strn(char **dst, const char *src, size_t max)
{
    char *c = dupn(src, max);
    if (!c)
        return CAP_ENOMEM;
    free(*dst);
    *dst = c;
    return CAP_OK;
}

static int set_str(char **dst, const char *src)
{
    char *c = dupn(src, 4096);
    if (!c)
        return CAP_ENOMEM;
    free(*dst);
    *dst = c;
    return CAP_OK;
}

/* Shared job strings. The decision's rule, snapshot and reason, and the
 * worker and pool of a dispatch, repeat from job to job: a job points at
 * one reference-counted copy per distinct text, which stays in cache
 * while many jobs use it, instead of a copy of its own that is cold by
 * the time the job is written to the journal or evicted. A copy lives as
 * long as a job points at it, so the table holds at most five strings
 * per job. Lookups only: no order of the table reaches anything. */
typedef struct istr {
    size_t refs;
    size_t len;
    int plain; /* nothing in it that a JSON string escapes (jw_shared) */
    char s[];  /* the text */
} istr;

/* The kinds of shared string: each remembers the last one it used, which
 * the next job most often uses too (the same rule, snapshot, reason and
 * pool), so that most intern_set calls need no table lookup. */
enum { IK_RULE, IK_SNAPSHOT, IK_REASON, IK_WORKER, IK_POOL, IK_TOPIC };

static istr *istr_of(char *p) { return (istr *)(p - offsetof(istr, s)); }

/* 1 when the n bytes at p hold nothing a JSON string escapes. */
static int json_plain(const char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* eight bytes a step (cap_swar.h) */
        uint64_t x;
        memcpy(&x, p + i, 8);
        if (cap_swar_json_special(x))
            return 0;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 32 || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

/* Lets go of one reference (p NULL: nothing). */
static void intern_drop(ref_sched *s, char *p)
{
    if (!p)
        return;
    istr *e = istr_of(p);
    if (--e->refs == 0) {
        ref_strmap_del(&s->strs, e->s);
        free(e);
    }
}

/* The shared copy of src (n = strnlen(src, 4097); over 4096: src is cut
 * to 4096 bytes) found in or added to the table, without a reference
 * taken; NULL when out of memory. */
static istr *intern_find(ref_sched *s, const char *src, size_t n);

/* set_str for a shared string field of kind `kind` (IK_*): *dst becomes
 * the shared copy of src (NULL as "", cut to 4096 bytes like set_str);
 * CAP_ENOMEM leaves *dst as it was. */
static int intern_set(ref_sched *s, int kind, char **dst, const char *src)
{
    src = nz(src);
    size_t n = strnlen(src, 4097);
    istr *e = s->icache[kind]; /* its len is at most 4096: n is the whole text */
    if (!e || e->len != n || memcmp(e->s, src, n) != 0) {
        e = intern_find(s, src, n);
        if (!e)
            return CAP_ENOMEM;
        e->refs++; /* the kind's reference */
        if (s->icache[kind])
            intern_drop(s, s->icache[kind]->s);
        s->icache[kind] = e;
        if (kind <= IK_REASON)
            s->icache_origin = 0; /* a decision's string changed */
    }
    e->refs++;
    intern_drop(s, *dst);
    *dst = e->s;
    return CAP_OK;
}

/* *dst becomes the shared string p (which some holder keeps alive), with
 * a reference of its own: what intern_set with p's text gives, without
 * the table lookup. */
static void intern_ref(ref_sched *s, char **dst, char *p)
{
    istr_of(p)->refs++;
    intern_drop(s, *dst);
    *dst = p;
}

/* intern_set for a text held in a buffer of size bytes (NUL-terminated
 * there): the kind's last string is confirmed by one compare of its bytes
 * and NUL with the buffer's, without measuring the text first. */
static int intern_set_buf(ref_sched *s, int kind, char **dst, const char *buf, size_t size)
{
    istr *e = s->icache[kind];
    if (e && e->len < size && memcmp(e->s, buf, e->len + 1) == 0) {
        intern_ref(s, dst, e->s);
        return CAP_OK;
    }
    return intern_set(s, kind, dst, buf);
}

static istr *intern_find(ref_sched *s, const char *src, size_t n)
{
    char *cut = NULL;
    if (n > 4096) { /* the key is the text as kept */
        if (!(cut = dupn(src, 4096)))
            return NULL;
        src = cut;
        n = 4096;
    }
    istr *e = ref_strmap_get(&s->strs, src);
    if (!e) {
        e = malloc(sizeof *e + n + 1);
        if (!e) {
            free(cut);
            return NULL;
        }
        e->refs = 0;
        e->len = n;
        e->plain = json_plain(src, n);
        memcpy(e->s, src, n + 1);
        if (ref_strmap_put(&s->strs, e->s, e)) {
            free(e);
            free(cut);
            return NULL;
        }
    }
    free(cut);
    return e;
}

static int is_allow(int d)
{
    return d == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW ||
           d == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS;
}

static const char *decision_name(int d)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&cordum__agent__v1__decision_type__descriptor, d);
    return v ? v->name : "DECISION_TYPE_UNKNOWN";
}

static const char *error_code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&cordum__agent__v1__error_code__descriptor, code);
    return v ? v->name : "";
}

static const char *current_snapshot(const ref_sched *s)
{
    const ref_policy *p = ref_safety_policy(s->safety);
    return p ? p->snapshot : "";
}

int64_t ref_sched_backoff(int64_t base, int64_t max, int64_t jitter, uint32_t n, const ref_rand *r)
{
    if (base < 0)
        base = 0;
    uint32_t shift = n > 10 ? 10 : n;
    int64_t d = base;
    for (uint32_t i = 0; i < shift && d < max; i++)
        d = cap_sat_add(d, d);
    if (d > max)
        d = max;
    if (jitter > 0 && r && r->next)
        d = cap_sat_add(d, (int64_t)ref_rand_below(r, (uint64_t)jitter));
    return d > max ? max : d;
}

/* ---- the request: copies, hash, map edits ---------------------------- */

static ProtobufCMessage *clone_message(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    return c;
}

/* Where a copy's pieces come from: NULL, one malloc each (the copy is
 * freed with cap_message_free); else carved one after another from a
 * block, the top message first (a piece that does not fit fails the copy
 * with CAP_ENOMEM). A block copy also notes where in the block each
 * pointer to one of its pieces lies (every piece but the top message has
 * exactly one), so that a byte copy of the block can be pointed at itself
 * by moving just those (relocate). */
typedef struct {
    char *next;
    size_t left;
    char *base;    /* the block */
    uint32_t *rel; /* room for max_rel pointer offsets; n_rel noted */
    size_t n_rel, max_rel;
    ref_sched *plans; /* whose copy plans to follow (copy_planned), or NULL */
} bump;

/* Notes that slot (in b's block) now points at one of its pieces. */
static void rel_note(bump *b, const void *slot)
{
    if (!b)
        return;
    if (b->n_rel < b->max_rel)
        b->rel[b->n_rel] = (uint32_t)((const char *)slot - b->base);
    b->n_rel++; /* past max_rel: the caller grows the table and copies again */
}

#define PIECE_ALIGN ((size_t)8)
static size_t piece_size(size_t n) { return (n + PIECE_ALIGN - 1) & ~(PIECE_ALIGN - 1); }

static void *piece(bump *b, size_t n, int zero)
{
    if (!b)
        return zero ? calloc(1, n) : malloc(n);
    n = piece_size(n);
    if (n > b->left)
        return NULL; /* no room: the copy fails with CAP_ENOMEM */
    void *p = b->next;
    b->next += n;
    b->left -= n;
    if (zero)
        memset(p, 0, n);
    return p;
}

/* A deep copy of a message, equal to what clone_message gives, without
 * the encode and decode: strings, bytes, sub-messages and arrays copied,
 * scalars as they are, an empty string or bytes left at the message's
 * default (as unpacking gives it). Shapes where a copy could differ from
 * the round trip (unknown fields, proto2 labels and defaults, oneofs,
 * floating point, NULL array elements) are refused with 1, for the
 * caller to fall back on clone_message. 0, 1, or CAP_ENOMEM (*out is
 * then freed, unless it came from a block, and NULL). */
static int copy_message(const ProtobufCMessage *src, ProtobufCMessage **out, bump *b);

/* The bytes a field of type t takes in a message (0: float and double,
 * which copy_message refuses). A table: copy_message asks per field. */
static inline size_t field_size(ProtobufCType t)
{
    static const unsigned char size[] = {
        [PROTOBUF_C_TYPE_INT32] = 4,
        [PROTOBUF_C_TYPE_SINT32] = 4,
        [PROTOBUF_C_TYPE_SFIXED32] = 4,
        [PROTOBUF_C_TYPE_UINT32] = 4,
        [PROTOBUF_C_TYPE_FIXED32] = 4,
        [PROTOBUF_C_TYPE_ENUM] = 4,
        [PROTOBUF_C_TYPE_INT64] = 8,
        [PROTOBUF_C_TYPE_SINT64] = 8,
        [PROTOBUF_C_TYPE_SFIXED64] = 8,
        [PROTOBUF_C_TYPE_UINT64] = 8,
        [PROTOBUF_C_TYPE_FIXED64] = 8,
        [PROTOBUF_C_TYPE_BOOL] = sizeof(protobuf_c_boolean),
        [PROTOBUF_C_TYPE_STRING] = sizeof(char *),
        [PROTOBUF_C_TYPE_BYTES] = sizeof(ProtobufCBinaryData),
        [PROTOBUF_C_TYPE_MESSAGE] = sizeof(ProtobufCMessage *),
    };
    return (unsigned)t < sizeof size ? size[t] : 0;
}

/* One value of type t from s to d (d holds the default or zero). */
static int copy_value(const ProtobufCFieldDescriptor *f, const void *s, void *d, int element,
                      bump *b)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *v = *(char *const *)s;
        if (!v)
            return element ? 1 : 0;
        if (!v[0] && !element)
            return 0;
        size_t n = strlen(v) + 1;
        char *c = piece(b, n, 0);
        if (!c)
            return CAP_ENOMEM;
        memcpy(c, v, n);
        *(char **)d = c;
        rel_note(b, d);
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *v = s;
        if (!v->len)
            return 0;
        if (!v->data)
            return 1;
        uint8_t *c = piece(b, v->len, 0);
        if (!c)
            return CAP_ENOMEM;
        memcpy(c, v->data, v->len);
        *(ProtobufCBinaryData *)d = (ProtobufCBinaryData){v->len, c};
        rel_note(b, &((ProtobufCBinaryData *)d)->data);
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *v = *(ProtobufCMessage *const *)s;
        if (!v)
            return element ? 1 : 0;
        int rc = copy_message(v, (ProtobufCMessage **)d, b);
        if (!rc)
            rel_note(b, d);
        return rc;
    }
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)d = *(const protobuf_c_boolean *)s ? 1 : 0;
        return 0;
    default:
        memcpy(d, s, field_size(f->type));
        return 0;
    }
}

/* Whether copy_message refuses field f (see above). */
static int copy_refuses(const ProtobufCFieldDescriptor *f)
{
    /* proto3 gives strings the empty string as default and nothing else
     * a default */
    int plain_default = !f->default_value || (f->type == PROTOBUF_C_TYPE_STRING &&
                                              f->default_value == &protobuf_c_empty_string);
    return !field_size(f->type) || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || !plain_default ||
           (f->label != PROTOBUF_C_LABEL_NONE && f->label != PROTOBUF_C_LABEL_REPEATED);
}

/* A copy plan: copy_message's walk of one message type worked out once. A
 * request has some thirty fields, most of them empty or scalars; the
 * planned copy (copy_planned) copies the message's bytes whole and then
 * visits only the fields that hold more than their bytes (strings, bytes,
 * sub-messages, arrays) or need a fix (bools), leaving each at the type's
 * default (tmpl) unless copy_message would copy it. Singular strings and
 * sub-messages, most of the visits, are steps of their own (the field's
 * place, its default, the sub-message's plan) that the copy takes without
 * looking at the field's descriptor, each kind in a tight loop of its own
 * (the steps are in kind order: the strings, the sub-messages, then the
 * rest, which go the general way but for arrays of messages, map entries
 * mostly, copied with their elements' plan). */
enum { STEP_STR, STEP_MSG, STEP_FIELD };
typedef struct copy_step {
    unsigned kind;                      /* STEP_* */
    unsigned off;                       /* the field's offset in the message */
    void *dflt;                         /* STEP_STR, STEP_MSG, an array: the default (tmpl's) */
    struct copy_plan *sub;              /* a sub-message's or an array element's plan, once
                                         * looked up */
    const ProtobufCFieldDescriptor *f;  /* the field */
} copy_step;

typedef struct copy_plan {
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *tmpl; /* message_init'd: the defaults a copy leaves */
    int refuses;            /* some field's shape is refused (copy_refuses) */
    unsigned n_fix, n_str, n_msg; /* steps; of them, STEP_STR and STEP_MSG */
    copy_step fix[];              /* by kind, each kind in field order */
} copy_plan;

/* s's plan for desc, made on first use; NULL when out of memory (the
 * copy then takes the plain walk, which gives the same copy). */
static copy_plan *plan_of(ref_sched *s, const ProtobufCMessageDescriptor *desc)
{
    for (size_t i = 0; i < s->n_plans; i++)
        if (s->plans[i]->desc == desc)
            return s->plans[i];
    copy_plan **g = realloc(s->plans, (s->n_plans + 1) * sizeof *g);
    if (!g)
        return NULL;
    s->plans = g;
    copy_plan *pl = malloc(sizeof *pl + desc->n_fields * sizeof pl->fix[0]);
    ProtobufCMessage *tmpl = malloc(desc->sizeof_message);
    if (!pl || !tmpl) {
        free(pl);
        free(tmpl);
        return NULL;
    }
    desc->message_init(tmpl);
    pl->desc = desc;
    pl->tmpl = tmpl;
    pl->refuses = 0;
    pl->n_fix = pl->n_str = pl->n_msg = 0;
    for (unsigned kind = STEP_STR; kind <= STEP_FIELD; kind++) /* one pass per kind */
        for (unsigned i = 0; i < desc->n_fields; i++) {
            const ProtobufCFieldDescriptor *f = &desc->fields[i];
            int singular = f->label != PROTOBUF_C_LABEL_REPEATED;
            unsigned k = singular && f->type == PROTOBUF_C_TYPE_STRING    ? STEP_STR
                         : singular && f->type == PROTOBUF_C_TYPE_MESSAGE ? STEP_MSG
                                                                          : STEP_FIELD;
            if (copy_refuses(f))
                pl->refuses = 1;
            else if (k == kind && (!singular || f->type == PROTOBUF_C_TYPE_STRING ||
                                   f->type == PROTOBUF_C_TYPE_BYTES ||
                                   f->type == PROTOBUF_C_TYPE_MESSAGE ||
                                   f->type == PROTOBUF_C_TYPE_BOOL)) {
                copy_step *st = &pl->fix[pl->n_fix++];
                st->kind = k;
                st->off = f->offset;
                st->dflt = k != STEP_FIELD || !singular ? *(void **)((char *)tmpl + f->offset)
                                                        : NULL;
                st->sub = NULL;
                st->f = f;
                pl->n_str += k == STEP_STR;
                pl->n_msg += k == STEP_MSG;
            }
        }
    s->plans[s->n_plans++] = pl;
    return pl;
}

static void plans_free(ref_sched *s)
{
    for (size_t i = 0; i < s->n_plans; i++) {
        free(s->plans[i]->tmpl);
        free(s->plans[i]);
    }
    free(s->plans);
}

static int copy_repeated(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *src,
                         ProtobufCMessage *c, bump *b);
static int copy_planned(copy_plan *pl, const ProtobufCMessage *src, ProtobufCMessage **out,
                        bump *b);

/* A sub-message v (not NULL) copied into *dp, with st->sub, its type's
 * plan, when v is of that type: copy_value's copy of it, less the look-up
 * of its plan. */
static int copy_sub(copy_step *st, const ProtobufCMessage *v, ProtobufCMessage **dp, bump *b)
{
    const ProtobufCMessageDescriptor *sd = st->f->descriptor;
    if (!st->sub)
        st->sub = plan_of(b->plans, sd);
    int rc = st->sub && v->descriptor == sd && !v->n_unknown_fields
                 ? copy_planned(st->sub, v, dp, b)
                 : copy_message(v, dp, b);
    if (!rc)
        rel_note(b, dp);
    return rc;
}

/* copy_repeated for a non-empty array of messages (step st): each element
 * as copy_value copies it. The array's count came with the message's
 * bytes. */
static int copy_msgs(copy_step *st, const ProtobufCMessage *src, ProtobufCMessage *c, bump *b)
{
    const ProtobufCFieldDescriptor *f = st->f;
    size_t n = *(const size_t *)((const char *)src + f->quantifier_offset);
    ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)((const char *)src + st->off);
    ProtobufCMessage **copy = piece(b, n * sizeof *copy, 0); /* every element is set */
    if (!copy)
        return CAP_ENOMEM;
    char *dp = (char *)c + st->off;
    *(void **)dp = copy;
    rel_note(b, dp);
    for (size_t k = 0; k < n; k++) {
        if (!arr[k])
            return 1; /* copy_value refuses a NULL element */
        int rc = copy_sub(st, arr[k], &copy[k], b);
        if (rc)
            return rc;
    }
    return 0;
}

/* copy_message for a block with a plan: the same copy. The message's
 * scalars come with its bytes (copy_value copies them as they are); every
 * field in pl->fix is set back to its default, then copied as
 * copy_message copies it. */
static int copy_planned(copy_plan *pl, const ProtobufCMessage *src, ProtobufCMessage **out,
                        bump *b)
{
    const ProtobufCMessageDescriptor *desc = src->descriptor;
    if (pl->refuses)
        return 1;
    ProtobufCMessage *c = piece(b, desc->sizeof_message, 0);
    if (!c)
        return CAP_ENOMEM;
    memcpy(c, src, desc->sizeof_message);
    c->n_unknown_fields = 0; /* as src's */
    c->unknown_fields = pl->tmpl->unknown_fields;
    copy_step *st = pl->fix, *end = st + pl->n_str;
    for (; st < end; st++) { /* copy_value's string copy */
        const char *v = *(const char *const *)((const char *)src + st->off);
        char *dp = (char *)c + st->off;
        if (!v || !v[0]) { /* an empty string keeps the default */
            *(void **)dp = st->dflt;
            continue;
        }
        size_t n = strlen(v) + 1;
        char *p = piece(b, n, 0);
        if (!p)
            return CAP_ENOMEM;
        *(char **)dp = memcpy(p, v, n);
        rel_note(b, dp);
    }
    for (end += pl->n_msg; st < end; st++) { /* copy_value's sub-message copy */
        const ProtobufCMessage *v = *(const ProtobufCMessage *const *)((const char *)src + st->off);
        char *dp = (char *)c + st->off;
        *(void **)dp = st->dflt;
        if (!v)
            continue; /* an absent message keeps the default */
        int rc = copy_sub(st, v, (ProtobufCMessage **)dp, b);
        if (rc)
            return rc;
    }
    for (end = pl->fix + pl->n_fix; st < end; st++) {
        const char *sp = (const char *)src + st->off;
        char *dp = (char *)c + st->off;
        /* arrays, bytes and bools */
        const ProtobufCFieldDescriptor *f = st->f;
        int rc;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            *(void **)dp = st->dflt;
            if (!*(const size_t *)((const char *)src + f->quantifier_offset))
                continue; /* empty (its count, 0, came with the bytes) */
            rc = f->type == PROTOBUF_C_TYPE_MESSAGE ? copy_msgs(st, src, c, b)
                                                    : copy_repeated(f, src, c, b);
        } else {
            const char *tp = (const char *)pl->tmpl + f->offset; /* the default */
            if (f->type == PROTOBUF_C_TYPE_BYTES)
                *(ProtobufCBinaryData *)dp = *(const ProtobufCBinaryData *)tp;
            else /* bool */
                *(protobuf_c_boolean *)dp = *(const protobuf_c_boolean *)tp;
            rc = copy_value(f, sp, dp, 0, b);
        }
        if (rc)
            return rc;
    }
    *out = c;
    return 0;
}

static int copy_message(const ProtobufCMessage *src, ProtobufCMessage **out, bump *b)
{
    const ProtobufCMessageDescriptor *desc = src->descriptor;
    *out = NULL;
    if (src->n_unknown_fields)
        return 1;
    copy_plan *pl = b && b->plans ? plan_of(b->plans, desc) : NULL;
    if (pl)
        return copy_planned(pl, src, out, b);
    ProtobufCMessage *c = piece(b, desc->sizeof_message, 0);
    if (!c)
        return CAP_ENOMEM;
    desc->message_init(c);
    int rc = 0;
    for (unsigned i = 0; i < desc->n_fields && !rc; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const char *sp = (const char *)src + f->offset;
        char *dp = (char *)c + f->offset;
        if (copy_refuses(f)) {
            rc = 1;
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            rc = copy_repeated(f, src, c, b);
        } else {
            rc = copy_value(f, sp, dp, 0, b);
        }
    }
    if (rc) {
        if (!b)
            cap_message_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* A repeated field f of src copied into c (where it holds no array
 * yet). */
static int copy_repeated(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *src,
                         ProtobufCMessage *c, bump *b)
{
    size_t n = *(const size_t *)((const char *)src + f->quantifier_offset);
    if (!n)
        return 0;
    size_t size = field_size(f->type);
    const char *arr = *(char *const *)((const char *)src + f->offset);
    char *copy = b ? piece(b, n * size, 1) : calloc(n, size);
    if (!copy)
        return CAP_ENOMEM;
    char *dp = (char *)c + f->offset;
    *(void **)dp = copy;
    rel_note(b, dp);
    *(size_t *)((char *)c + f->quantifier_offset) = n;
    int rc = 0;
    for (size_t k = 0; k < n && !rc; k++)
        rc = copy_value(f, arr + k * size, copy + k * size, 1, b);
    return rc;
}

/* A heap copy of a request (the caller may edit it; cap_message_free). */
static job_request *clone_request(const job_request *r)
{
    ProtobufCMessage *c = NULL;
    int rc = copy_message(&r->base, &c, NULL);
    if (rc == 1)
        return (job_request *)clone_message(&r->base);
    return (job_request *)c;
}

/* Points `to`, a byte copy of the block `from`, at itself: each pointer
 * at the n_rel offsets `rel` moves by the distance between the two. */
static void relocate(void *to, const void *from, const uint32_t *rel, size_t n_rel)
{
    uintptr_t delta = (uintptr_t)to - (uintptr_t)from;
    for (size_t k = 0; k < n_rel; k++) {
        char *slot = (char *)to + rel[k];
        uintptr_t v;
        memcpy(&v, slot, sizeof v);
        v += delta;
        memcpy(slot, &v, sizeof v);
    }
}

/* A read-only copy of a request, kept by a job: one block when it can be
 * (*block = the size of its pieces: one free() releases it all, and its
 * pieces sit together), else a heap copy (*block = 0). After the pieces
 * the block holds the offsets of its *n_rel pointers to them, for a byte
 * copy to be pointed at itself (relocate). The copy is made in the
 * most recent spare block (request_free) when there is one and it fits;
 * else in the scheduler's scratch block (grown until it fits), then moved
 * to a new block of about its size (*cap_out: the size allocated): one
 * walk of the request, not one to size the block and one to copy. NULL
 * when out of memory. */
static job_request *keep_request(ref_sched *s, const job_request *r, size_t *block,
                                 uint32_t *n_rel, uint32_t *cap_out)
{
    *block = 0;
    *n_rel = 0;
    *cap_out = 0;
    if (s->n_spare) {
        struct spare_block *sp = &s->spare[--s->n_spare];
        bump b = {sp->p, sp->cap, sp->p, s->krel, 0, s->krel_cap, s};
        ProtobufCMessage *c = NULL;
        int rc = copy_message(&r->base, &c, &b);
        size_t n = sp->cap - b.left;
        if (rc == 0 && b.n_rel <= b.max_rel && n + b.n_rel * sizeof(uint32_t) <= sp->cap) {
            memcpy(sp->p + n, s->krel, b.n_rel * sizeof(uint32_t)); /* c == sp->p */
            *block = n;
            *n_rel = (uint32_t)b.n_rel;
            *cap_out = sp->cap;
            return (job_request *)sp->p;
        }
        free(sp->p); /* too small (or a shape left to clone_request, found again below) */
    }
    for (;;) {
        bump b = {s->kbuf, s->kcap, s->kbuf, s->krel, 0, s->krel_cap, s};
        ProtobufCMessage *c = NULL;
        int rc = s->kbuf ? copy_message(&r->base, &c, &b) : CAP_ENOMEM;
        if (rc == 1)
            break; /* a shape the copy leaves to clone_request */
        if (rc == 0 && b.n_rel <= b.max_rel) {
            size_t n = s->kcap - b.left;
            /* some slack, so that the block taken again as a spare
             * holds a request a little longer than this one */
            size_t cap = (n + b.n_rel * sizeof(uint32_t) + 64) & ~(size_t)63;
            char *blk = cap <= UINT32_MAX ? malloc(cap) : NULL;
            if (!blk)
                return NULL;
            *cap_out = (uint32_t)cap;
            memcpy(blk, s->kbuf, n); /* c == s->kbuf: the first piece */
            relocate(blk, s->kbuf, s->krel, b.n_rel);
            memcpy(blk + n, s->krel, b.n_rel * sizeof(uint32_t));
            *block = n;
            *n_rel = (uint32_t)b.n_rel;
            return (job_request *)blk;
        }
        /* out of room (a block copy fails only so) or of offsets: grow */
        if (rc) {
            size_t cap = s->kcap ? s->kcap * 2 : 4096;
            char *g = cap <= UINT32_MAX ? malloc(cap) : NULL; /* offsets are 32-bit */
            if (!g)
                break;
            free(s->kbuf);
            s->kbuf = g;
            s->kcap = cap;
        }
        if (b.n_rel > b.max_rel) {
            uint32_t *g = malloc(b.n_rel * 2 * sizeof *g);
            if (!g)
                break;
            free(s->krel);
            s->krel = g;
            s->krel_cap = b.n_rel * 2;
        }
    }
    return clone_request(r);
}

/* Lets go of a kept request (block, cap: as keep_request set them; r
 * NULL: none, as a terminal job's); a block goes to the spares while
 * there is room. */
static void request_free(ref_sched *s, job_request *r, size_t block, uint32_t cap)
{
    if (!r)
        return;
    if (!block) {
        cap_message_free(&r->base);
    } else if (s->n_spare < sizeof s->spare / sizeof s->spare[0]) {
        s->spare[s->n_spare].p = (char *)r;
        s->spare[s->n_spare++].cap = cap;
    } else {
        free(r);
    }
}

/* Sets key = value in a map field (an array of entry messages) of a
 * message unpacked onto the heap, replacing an existing key's value. */
static int map_set(void ***entries, size_t *n, const ProtobufCMessageDescriptor *entry_desc,
                   const char *key, const char *value)
{
    size_t koff = entry_desc->fields[0].offset, voff = entry_desc->fields[1].offset;
    for (size_t i = 0; i < *n; i++) {
        char **k = (char **)((char *)(*entries)[i] + koff);
        if (strcmp(nz(*k), key) == 0) {
            char **v = (char **)((char *)(*entries)[i] + voff);
            int ok = 1;
            char *nv = ref_pb_strdup(value, &ok);
            if (!ok)
                return CAP_ENOMEM;
            if (*v && *v != (char *)protobuf_c_empty_string)
                free(*v);
            *v = nv;
            return CAP_OK;
        }
    }
    void **grown = realloc(*entries, (*n + 1) * sizeof *grown);
    if (!grown)
        return CAP_ENOMEM;
    *entries = grown;
    ProtobufCMessage *e = malloc(entry_desc->sizeof_message);
    if (!e)
        return CAP_ENOMEM;
    entry_desc->message_init(e);
    int ok = 1;
    *(char **)((char *)e + koff) = ref_pb_strdup(key, &ok);
    *(char **)((char *)e + voff) = ref_pb_strdup(value, &ok);
    grown[(*n)++] = e;
    if (!ok) {
        (*n)--;
        cap_message_free(e);
        return CAP_ENOMEM;
    }
    return CAP_OK;
}

#define ENV_SET(req, k, v)                                                                         \
    map_set((void ***)&(req)->env, &(req)->n_env,                                                  \
            &cordum__agent__v1__job_request__env_entry__descriptor, (k), (v))
#define LABEL_SET(req, k, v)                                                                       \
    map_set((void ***)&(req)->labels, &(req)->n_labels,                                            \
            &cordum__agent__v1__job_request__labels_entry__descriptor, (k), (v))

static int hash_drops_label(const char *k)
{
    return strncasecmp(k, "approval_", 9) == 0 || strcmp(k, REF_DEDUPE_BUS_MSG_ID_LABEL) == 0;
}

static int hash_drops_env(const char *k)
{
    return strcmp(k, "CORDUM_EFFECTIVE_CONFIG") == 0 || strcmp(k, REF_SCHED_ENV_LAST_MEMO) == 0;
}

/* The request is encoded through a shallow view of it: the same fields,
 * the label and env arrays without the dropped entries, no dispatch
 * identity; nothing is copied. */
int ref_sched_request_hash(const job_request *req, char out[65])
{
    if (!req)
        return CAP_EINVAL;
    job_request v = *req;
    size_t n_ptrs = req->n_labels + req->n_env;
    void **ptrs = n_ptrs ? malloc(n_ptrs * sizeof *ptrs) : NULL;
    if (n_ptrs && !ptrs)
        return CAP_ENOMEM;
    v.labels = (Cordum__Agent__V1__JobRequest__LabelsEntry **)ptrs;
    v.n_labels = 0;
    for (size_t i = 0; i < req->n_labels; i++)
        if (!hash_drops_label(nz(req->labels[i]->key)))
            v.labels[v.n_labels++] = req->labels[i];
    v.env = (Cordum__Agent__V1__JobRequest__EnvEntry **)(ptrs ? ptrs + req->n_labels : NULL);
    v.n_env = 0;
    for (size_t i = 0; i < req->n_env; i++)
        if (!hash_drops_env(nz(req->env[i]->key)))
            v.env[v.n_env++] = req->env[i];
    v.dispatch = NULL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = cap_encode(&v.base, &bytes, &len);
    free(ptrs);
    if (rc)
        return rc;
    uint8_t md[CAP_SHA256_LEN];
    cap_sha256(bytes, len, md);
    free(bytes);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < CAP_SHA256_LEN; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = 0;
    return CAP_OK;
}


static const char *effective_tenant(const job_request *r)
{
    if (r->tenant_id && r->tenant_id[0])
        return r->tenant_id;
    if (r->meta && r->meta->tenant_id && r->meta->tenant_id[0])
        return r->meta->tenant_id;
    if (r->identity && r->identity->tenant_id && r->identity->tenant_id[0])
        return r->identity->tenant_id;
    return "";
}

/* ---- journal -------------------------------------------------------- */

/* Journal records are flat JSON objects written straight into s->jbuf (the
 * effects list's text storage, where the record stays: no copy),
 * byte for byte what cJSON_PrintUnformatted gives for the same members
 * added in the same order: no spaces; strings escaped as cJSON does
 * (\" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx, every
 * other byte as is); a NULL string leaves its member out; integers in
 * plain decimal (what "%1.15g" prints for an integer below 1e15). */

/* Room for n more bytes and the NUL; 0, or -1 with jerr set. */
static int jw_grow(ref_sched *s, size_t n)
{
    if (s->jerr)
        return -1;
    if (s->jlen + n + 1 <= s->jcap)
        return 0;
    char *b = ref_effects_record_room(s->jfx, s->jlen, n + 1, &s->jcap);
    if (!b) {
        s->jerr = 1;
        return -1;
    }
    s->jbuf = b;
    return 0;
}

static __attribute__((noinline)) void jw_put_slow(ref_sched *s, const char *p, size_t n)
{
    if (jw_grow(s, n))
        return;
    memcpy(s->jbuf + s->jlen, p, n);
    s->jlen += n;
}

/* Inlined everywhere (a record writes dozens of pieces; the call would
 * cost more than the copy); the growing path stays out of line. */
static inline __attribute__((always_inline)) void jw_put(ref_sched *s, const char *p, size_t n)
{
    if (s->jlen + n + 1 > s->jcap) {
        jw_put_slow(s, p, n);
        return;
    }
    memcpy(s->jbuf + s->jlen, p, n);
    s->jlen += n;
}

/* A record to be written into fx: no room yet (the first write asks). */
static void jw_start(ref_sched *s, ref_effects *fx)
{
    s->jfx = fx;
    s->jbuf = NULL;
    s->jcap = 0;
    s->jlen = 0;
    s->jn = 0;
    s->jerr = 0;
}

static void jw_begin(ref_sched *s, ref_effects *fx)
{
    jw_start(s, fx);
    jw_put(s, "{", 1);
}

/* A member's key. lit is `,"key":` (the jw_str, jw_num and jw_i64 macros
 * build it from a literal at compile time); the first member of a record
 * leaves the comma out. */
/* The member writers are inlined into each record writer, so that every
 * key is a constant-size copy. */
#define JW_INLINE static inline __attribute__((always_inline))

JW_INLINE void jw_key_lit(ref_sched *s, const char *lit, size_t n)
{
    if (s->jn++)
        jw_put(s, lit, n);
    else
        jw_put(s, lit + 1, n - 1);
}

/* A string's text after its opening quote: the runs that need no escape
 * copied as they are (scanned 8 bytes at a time), then the closing
 * quote. */
static __attribute__((noinline)) void jw_strval(ref_sched *s, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(v), i = 0, run = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t x;
            memcpy(&x, v + i, 8);
            if (!cap_swar_json_special(x)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = (unsigned char)v[i];
        if (c >= 32 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        jw_put(s, v + run, i - run); /* the run that needs no escape */
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
            break;
        }
        jw_put(s, esc, len);
        run = ++i;
    }
    jw_put(s, v + run, n - run);
    jw_put(s, "\"", 1);
}

/* A string member; lit is `,"key":"` (the key and the opening quote). */
JW_INLINE void jw_str_lit(ref_sched *s, const char *lit, size_t n, const char *v)
{
    if (!v)
        return;
    jw_key_lit(s, lit, n);
    if (v[0])
        jw_strval(s, v);
    else
        jw_put(s, "\"", 1);
}

/* An integer member (a JSON number). */
JW_INLINE void jw_num_lit(ref_sched *s, const char *lit, size_t n, int64_t v)
{
    jw_key_lit(s, lit, n);
    if ((uint64_t)v < 10) { /* most are: flags, counts, small enums */
        char c = (char)('0' + v);
        jw_put(s, &c, 1);
        return;
    }
    char buf[24];
    char *p = cap_fmt_i64(buf + sizeof buf, v);
    jw_put(s, p, (size_t)(buf + sizeof buf - p));
}

/* A 64-bit integer member, as a string (exact beyond 2^53). */
JW_INLINE void jw_i64_lit(ref_sched *s, const char *lit, size_t n, int64_t v)
{
    char buf[24];
    buf[sizeof buf - 1] = '"';
    char *p = cap_fmt_i64(buf + sizeof buf - 1, v);
    *--p = '"';
    jw_key_lit(s, lit, n);
    jw_put(s, p, (size_t)(buf + sizeof buf - p));
}

/* Members by key literal: jw_str (a string; NULL leaves the member out),
 * jw_num (a number), jw_i64 (a 64-bit integer as a string). JW_LIT gives
 * the `,"key":` text (plus tail) and its length. */
#define JW_LIT(k, tail) ",\"" k "\":" tail, sizeof(",\"" k "\":" tail) - 1
#define jw_str(s, k, v) jw_str_lit((s), JW_LIT(k, "\""), (v))
#define jw_num(s, k, v) jw_num_lit((s), JW_LIT(k, ""), (v))
#define jw_i64(s, k, v) jw_i64_lit((s), JW_LIT(k, ""), (v))

/* Members written as one literal: text `,"key":value,...`, or without
 * the leading comma for the record's first member. */
#define JW_RAW(text) text, sizeof(text) - 1
JW_INLINE void jw_lit(ref_sched *s, const char *text, size_t n)
{
    s->jn++;
    jw_put(s, text, n);
}

/* A string member whose length and plainness (json_plain) are known. */
#define jw_known(s, k, v, n, plain) jw_known_lit((s), JW_LIT(k, "\""), (v), (n), (plain))
JW_INLINE void jw_known_lit(ref_sched *s, const char *lit, size_t n, const char *v, size_t len,
                            int plain)
{
    if (!plain) {
        jw_str_lit(s, lit, n, v);
        return;
    }
    jw_key_lit(s, lit, n);
    jw_put(s, v, len);
    jw_put(s, "\"", 1);
}

/* Ends the record and appends it to its list, where it was written. */
static int jw_emit(ref_sched *s)
{
    jw_put(s, "}", 1);
    if (s->jerr)
        return CAP_ENOMEM;
    return s->restoring ? CAP_OK : ref_effects_record_commit(s->jfx, s->jlen);
}

/* A diagnostic line (kind "note"): what happened and why, for people and
 * trace tools; restore skips it. */
static int note(ref_sched *s, ref_effects *fx, int64_t now, const char *event, const char *job_id,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int note(ref_sched *s, ref_effects *fx, int64_t now, const char *event, const char *job_id,
                const char *fmt, ...)
{
    if (s->restoring)
        return CAP_OK;
    char detail[REF_REASON_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    jw_begin(s, fx);
    jw_str(s, "k", "note");
    jw_i64(s, "t", now);
    jw_str(s, "ev", event);
    jw_str(s, "job_id", nz(job_id));
    jw_str(s, "detail", detail);
    return jw_emit(s);
}

/* The replay guard admitted a signed packet (kind "replay"): the store
 * entry, so that a restart restores it. cap-spec 19 keeps (message_id,
 * digest) until expiry + skew; a guard that forgot them on a restart
 * would admit the same message_id with another body. Members: "t" when,
 * "exp" the signature's expires_at, "digest" the signed-body digest (hex),
 * "keys" each key as <kind>:<hex>, comma-separated, in probe order. */
static int replay_rec(ref_sched *s, const ref_dedupe_probe *pr, int64_t now, ref_effects *fx)
{
    if (s->restoring)
        return CAP_OK;
    char digest[2 * 32 + 1], keys[REF_DEDUPE_MAX_KEYS * (2 + 2 * 32 + 1)];
    cap_fmt_hex(digest, pr->body_digest, sizeof pr->body_digest);
    size_t o = 0;
    for (size_t i = 0; i < pr->n_keys && i < REF_DEDUPE_MAX_KEYS; i++) {
        if (i)
            keys[o++] = ',';
        keys[o++] = (char)('0' + pr->keys[i].kind);
        keys[o++] = ':';
        cap_fmt_hex(keys + o, pr->keys[i].id, sizeof pr->keys[i].id);
        o += 2 * sizeof pr->keys[i].id;
    }
    keys[o] = 0;
    jw_begin(s, fx);
    jw_str(s, "k", "replay");
    jw_i64(s, "t", now);
    jw_i64(s, "exp", pr->expires_at);
    jw_str(s, "digest", digest);
    jw_str(s, "keys", keys);
    return jw_emit(s);
}

/* ---- the job record's writer ------------------------------------------
 * A job record has some thirty members and every change of every job
 * writes one, so it is written through a cursor (a local pointer into
 * s->jbuf) after one reservation of room for the whole record, rather
 * than by the checked appends above, each of which reloads and stores the
 * buffer's length. The text is the same as those writers give (the
 * literals below are theirs). The room: JREC_FIXED for every key,
 * number and punctuation of the record, plus each string at its longest
 * escaped form (6 bytes a byte: \u00xx). */
#define JREC_FIXED 2048

/* An empty record with room for n bytes: the cursor at its start, or NULL
 * when memory ran out. */
static char *jc_begin(ref_sched *s, ref_effects *fx, size_t n)
{
    jw_start(s, fx);
    s->jbuf = ref_effects_record_room(fx, 0, n + 1, &s->jcap); /* inline when there is room */
    s->jerr = !s->jbuf;
    return s->jbuf;
}

/* Room for n more bytes past the cursor o: the cursor (the buffer may have
 * moved), or NULL when memory ran out. */
static char *jc_room(ref_sched *s, char *o, size_t n)
{
    s->jlen = (size_t)(o - s->jbuf);
    return jw_grow(s, n) ? NULL : s->jbuf + s->jlen;
}

/* Literal text (a string literal) at the cursor. */
#define JC_LIT(o, text) ((o) = (char *)memcpy((o), (text), sizeof(text) - 1) + sizeof(text) - 1)

JW_INLINE char *jc_put(char *o, const char *p, size_t n)
{
    memcpy(o, p, n);
    return o + n;
}

/* A string value that may need escapes (after its opening quote, with
 * its closing quote): jw_strval at the cursor. */
static char *jc_strval(ref_sched *s, char *o, const char *v)
{
    s->jlen = (size_t)(o - s->jbuf);
    if (v[0])
        jw_strval(s, v);
    else
        jw_put(s, "\"", 1);
    return s->jbuf + s->jlen;
}

/* The value of a string member (its key written) whose length and
 * plainness are known, as jw_known writes it. */
JW_INLINE char *jc_known(ref_sched *s, char *o, const char *v, size_t len, int plain)
{
    if (!plain)
        return jc_strval(s, o, v);
    o = jc_put(o, v, len);
    *o++ = '"';
    return o;
}

/* The value of a shared string member (intern_set; NULL as ""): its
 * length and whether it needs escapes were found once, when it was
 * shared. */
JW_INLINE char *jc_shared(ref_sched *s, char *o, char *v)
{
    if (!v) {
        *o++ = '"';
        return o;
    }
    const istr *e = istr_of(v);
    return jc_known(s, o, v, e->len, e->plain);
}

/* A number member's value, as jw_num. */
JW_INLINE char *jc_num(char *o, int64_t v)
{
    if ((uint64_t)v < 10) {
        *o++ = (char)('0' + v);
        return o;
    }
    char buf[24];
    char *p = cap_fmt_i64(buf + sizeof buf, v);
    return jc_put(o, p, (size_t)(buf + sizeof buf - p));
}

/* Copies the n <= 24 bytes at p, reading and writing 24 (a fixed-size
 * copy is a few moves where a variable one is a call): p must have 24
 * readable bytes, and the bytes written past n are rewritten by what
 * follows (the record's room covers them). */
JW_INLINE char *jc_put24(char *o, const char *p, size_t n)
{
    memcpy(o, p, 24);
    return o + n;
}

/* A 64-bit integer member's value, as a string (jw_i64). */
JW_INLINE char *jc_i64(char *o, int64_t v)
{
    char buf[48]; /* the text ends at buf + 24: 24 bytes from its start are in buf */
    buf[23] = '"';
    char *p = cap_fmt_i64(buf + 23, v);
    *--p = '"';
    return jc_put24(o, p, (size_t)(buf + 24 - p));
}

/* The room a shared string's value may take. */
static size_t shared_room(char *v) { return v ? 6 * istr_of(v)->len + 1 : 1; }

/* ---- view records (REF_SCHED_JOURNAL_VIEW) ------------------------------
 * A view record is this head, copied in as bytes (the record need not be
 * aligned), then its strings in the order of the VS_ names below, each followed by a
 * NUL; an eviction has the job id only. */
enum { VS_EV, VS_JOB_ID, VS_STATE, VS_SNAPSHOT, VS_HASH, VS_APPR_SNAPSHOT, VIEW_STRINGS };

typedef struct {
    uint64_t attempt;
    int32_t kind, decision, appr;
    uint32_t len[VIEW_STRINGS]; /* each string's length without its NUL */
} view_head;

/* Copies the n bytes at p to o and a NUL after them; returns the byte
 * after the NUL. A record's strings are short (event, job id, state,
 * snapshot): copied without a call. */
static inline __attribute__((always_inline)) char *view_str(char *o, const char *p, size_t n)
{
    cap_copy_short(o, p, n);
    o[n] = 0;
    return o + n + 1;
}

/* Appends a view record with head h and the strings str (h->len set).
 * Inlined into its two callers, where most lengths are known. */
static inline __attribute__((always_inline)) int view_emit(ref_effects *fx, view_head *h,
                                                           const char *const str[VIEW_STRINGS])
{
    size_t n = sizeof *h;
#pragma GCC unroll 6 /* the strings one after another: no arrays on the stack */
    for (int i = 0; i < VIEW_STRINGS; i++)
        n += h->len[i] + 1;
    char *o = ref_effects_record_room(fx, 0, n + 1, NULL);
    if (!o)
        return CAP_ENOMEM;
    memcpy(o, h, sizeof *h);
    char *p = o + sizeof *h;
#pragma GCC unroll 6
    for (int i = 0; i < VIEW_STRINGS; i++)
        p = view_str(p, str[i], h->len[i]);
    return ref_effects_view_commit(fx, n);
}

/* The view of j's job record after event. The approval's hash and
 * snapshot, empty but for a job that needed a human, are measured only
 * then. */
static int view_job(ref_effects *fx, const job *j, const char *event, size_t n_event,
                    const char *state, size_t n_state)
{
    const char *asnap = j->appr_snapshot;
    view_head h = {.attempt = j->attempt,
                   .kind = REF_SCHED_VIEW_JOB,
                   .decision = j->decision,
                   .appr = j->appr,
                   .len = {(uint32_t)n_event, (uint32_t)j->id_len, (uint32_t)n_state,
                           (uint32_t)(j->snapshot ? istr_of(j->snapshot)->len : 0)}};
    if (__builtin_expect(j->hash[0] || (asnap && asnap[0]), 0)) {
        h.len[VS_HASH] = (uint32_t)strlen(j->hash);
        h.len[VS_APPR_SNAPSHOT] = asnap ? (uint32_t)strlen(asnap) : 0;
    }
    const char *str[VIEW_STRINGS] = {event, j->job_id, state, j->snapshot, j->hash, asnap};
    return view_emit(fx, &h, str);
}

/* The view of the record of j's eviction. */
static int view_evict(ref_effects *fx, const job *j)
{
    view_head h = {.kind = REF_SCHED_VIEW_EVICT};
    const char *str[VIEW_STRINGS] = {"", j->job_id, "", "", "", ""};
    h.len[VS_JOB_ID] = (uint32_t)j->id_len;
    return view_emit(fx, &h, str);
}

int ref_sched_view_read(const char *rec, size_t len, ref_sched_view *v)
{
    if (!v)
        return CAP_EINVAL;
    memset(v, 0, sizeof *v);
    view_head h;
    if (!rec || len < sizeof h)
        return CAP_EINVAL;
    memcpy(&h, rec, sizeof h);
    if (h.kind != REF_SCHED_VIEW_JOB && h.kind != REF_SCHED_VIEW_EVICT)
        return CAP_EINVAL;
    const char *str[VIEW_STRINGS];
    size_t at = sizeof h;
#pragma GCC unroll 6
    for (int i = 0; i < VIEW_STRINGS; i++) { /* each string in the record, NUL where its length says */
        if (h.len[i] >= len - at || rec[at + h.len[i]] != 0)
            return CAP_EINVAL;
        str[i] = rec + at;
        at += h.len[i] + 1;
    }
    if (at != len)
        return CAP_EINVAL;
    v->kind = (ref_sched_view_kind)h.kind;
    v->job_id = str[VS_JOB_ID];
    v->job_id_len = h.len[VS_JOB_ID];
    if (h.kind == REF_SCHED_VIEW_EVICT)
        return CAP_OK;
    v->ev = str[VS_EV];
    v->state = str[VS_STATE];
    v->state_len = h.len[VS_STATE];
    v->snapshot = str[VS_SNAPSHOT];
    v->hash = str[VS_HASH];
    v->appr_snapshot = str[VS_APPR_SNAPSHOT];
    v->decision = h.decision;
    v->appr = h.appr;
    v->attempt = h.attempt;
    return CAP_OK;
}

/* The name of state st and its length (*n). */
static inline const char *state_name(const ref_sched *s, int st, size_t *n)
{
    if ((unsigned)st < N_STATE_NAMES) {
        *n = s->state_len[st];
        return s->state_name[st];
    }
    const char *name = ref_jobstate_name(st);
    *n = strlen(name);
    return name;
}

/* The job record: the job's whole durable state, after an event, as text
 * (REF_SCHED_JOURNAL_TEXT), or as text and as a view (BOTH). The request
 * goes only into the first record of a job (with_req). */
static int jrec_n(ref_sched *s, job *j, int64_t now, ref_effects *fx, const char *event,
                  size_t n_event, int with_req)
{
    if (s->restoring)
        return CAP_OK;
    size_t n_state;
    const char *state = state_name(s, j->state, &n_state);
    /* "t" is formatted once per time: the records of one input share it,
     * and "state_at" is often the same time */
    if (!s->t_len || s->t_at != now) {
        char *end = s->t_text + sizeof s->t_text - 1;
        *end = '"';
        char *t = cap_fmt_i64(end, now);
        *--t = '"';
        s->t_len = (size_t)(s->t_text + sizeof s->t_text - t);
        memmove(s->t_text, t, s->t_len);
        s->t_at = now;
    }
    const char *t = s->t_text;
    size_t tlen = s->t_len;
    char *o = jc_begin(s, fx,
                       JREC_FIXED + n_event + n_state + 6 * (j->id_len + sizeof j->dispatch_id) +
                           shared_room(j->rule_id) + shared_room(j->snapshot) +
                           shared_room(j->reason) + shared_room(j->worker) + shared_room(j->pool));
    if (!o)
        return CAP_ENOMEM;
    JC_LIT(o, "{\"k\":\"job\",\"t\":");
    o = jc_put24(o, t, tlen); /* t is s->t_text, 24 bytes */
    JC_LIT(o, ",\"ev\":\"");
    o = jc_put(o, event, n_event);
    JC_LIT(o, "\",\"job_id\":\"");
    o = jc_known(s, o, j->job_id, j->id_len, j->id_plain);
    JC_LIT(o, ",\"seq\":");
    o = jc_i64(o, (int64_t)j->seq);
    JC_LIT(o, ",\"state\":\"");
    o = jc_put(o, state, n_state);
    JC_LIT(o, "\",\"state_at\":");
    o = j->state_at == now ? jc_put24(o, t, tlen) : jc_i64(o, j->state_at);
    JC_LIT(o, ",\"decision\":");
    o = jc_num(o, j->decision);
    JC_LIT(o, ",\"rule\":\"");
    o = jc_shared(s, o, j->rule_id);
    JC_LIT(o, ",\"snapshot\":\"");
    o = jc_shared(s, o, j->snapshot);
    JC_LIT(o, ",\"reason\":\"");
    o = jc_shared(s, o, j->reason);
    /* Runs of members most records hold at their defaults are written as
     * one literal: the same text the member writers give for them. */
    if (!j->max_runtime_ns && j->max_retries == -1 && !j->max_concurrent && !j->throttles) {
        JC_LIT(o, ",\"max_runtime_ns\":\"0\",\"max_retries\":-1,\"max_concurrent\":0,"
                  "\"throttles\":0");
    } else {
        JC_LIT(o, ",\"max_runtime_ns\":");
        o = jc_i64(o, j->max_runtime_ns);
        JC_LIT(o, ",\"max_retries\":");
        o = jc_num(o, j->max_retries);
        JC_LIT(o, ",\"max_concurrent\":");
        o = jc_num(o, j->max_concurrent);
        JC_LIT(o, ",\"throttles\":");
        o = jc_num(o, j->throttles);
    }
    if (!j->appr && !j->hash[0] && !nz(j->appr_snapshot)[0] && !nz(j->appr_by)[0] &&
        !nz(j->appr_note)[0]) {
        JC_LIT(o, ",\"appr\":0,\"hash\":\"\",\"appr_snapshot\":\"\",\"appr_by\":\"\","
                  "\"appr_note\":\"\"");
    } else {
        /* the hash is hex (64 digits at most), the rest any text */
        o = jc_room(s, o, JREC_FIXED + 6 * (sizeof j->hash + strlen(nz(j->appr_snapshot)) +
                                            strlen(nz(j->appr_by)) + strlen(nz(j->appr_note))));
        if (!o)
            return CAP_ENOMEM;
        JC_LIT(o, ",\"appr\":");
        o = jc_num(o, j->appr);
        JC_LIT(o, ",\"hash\":\"");
        o = jc_strval(s, o, j->hash);
        JC_LIT(o, ",\"appr_snapshot\":\"");
        o = jc_strval(s, o, nz(j->appr_snapshot));
        JC_LIT(o, ",\"appr_by\":\"");
        o = jc_strval(s, o, nz(j->appr_by));
        JC_LIT(o, ",\"appr_note\":\"");
        o = jc_strval(s, o, nz(j->appr_note));
    }
    JC_LIT(o, ",\"attempt\":");
    o = jc_i64(o, (int64_t)j->attempt);
    JC_LIT(o, ",\"dispatch_id\":\"");
    size_t n_did = j->dispatch_len;
    if (j->dispatch_plain) { /* a fixed-size copy: the id's array holds 33 bytes */
        memcpy(o, j->dispatch_id, sizeof j->dispatch_id - 1);
        o += n_did;
        *o++ = '"';
    } else {
        o = jc_strval(s, o, j->dispatch_id);
    }
    JC_LIT(o, ",\"worker\":\"");
    o = jc_shared(s, o, j->worker);
    JC_LIT(o, ",\"pool\":\"");
    o = jc_shared(s, o, j->pool);
    JC_LIT(o, ",\"done\":");
    o = jc_num(o, j->done);
    JC_LIT(o, ",\"counted\":");
    o = jc_num(o, j->counted);
    JC_LIT(o, ",\"retries\":");
    o = jc_num(o, j->retries);
    if (j->wait_since == -1 && !j->waiting && !j->wake_at) {
        JC_LIT(o, ",\"wait_since\":\"-1\",\"waiting\":0,\"wake_at\":\"0\"");
    } else {
        JC_LIT(o, ",\"wait_since\":");
        o = jc_i64(o, j->wait_since);
        JC_LIT(o, ",\"waiting\":");
        o = jc_num(o, j->waiting);
        JC_LIT(o, ",\"wake_at\":");
        o = jc_i64(o, j->wake_at);
    }
    JC_LIT(o, ",\"watch_at\":");
    o = jc_i64(o, j->watch_at);
    if (!nz(j->memo)[0] && !nz(j->saga_wf)[0]) {
        JC_LIT(o, ",\"memo\":\"\",\"saga_wf\":\"\"");
    } else {
        o = jc_room(s, o, JREC_FIXED + 6 * (strlen(nz(j->memo)) + strlen(nz(j->saga_wf))));
        if (!o)
            return CAP_ENOMEM;
        JC_LIT(o, ",\"memo\":\"");
        o = jc_strval(s, o, nz(j->memo));
        JC_LIT(o, ",\"saga_wf\":\"");
        o = jc_strval(s, o, nz(j->saga_wf));
    }
    if (with_req) {
        size_t len = 0;
        TRY(cap_encode_to(&j->req->base, &s->rbuf, &s->rcap, &len));
        o = jc_room(s, o, JREC_FIXED + 6 * (size_t)j->trace_len + cap_base64_encoded_len(len));
        if (!o)
            return CAP_ENOMEM;
        JC_LIT(o, ",\"trace_id\":\"");
        o = jc_known(s, o, j->trace_id, j->trace_len, j->trace_plain);
        /* base64 needs no JSON escape: encoded straight into the record */
        JC_LIT(o, ",\"req\":\"");
        o += cap_base64_encode(s->rbuf, len, o);
        *o++ = '"';
    }
    s->jlen = (size_t)(o - s->jbuf);
    s->jn = 1;
    TRY(jw_emit(s));
    return s->journal_form == REF_SCHED_JOURNAL_BOTH ? view_job(fx, j, event, n_event, state, n_state)
                                                     : CAP_OK;
}

/* A job record (jrec_n), in the form the journal keeps; the view alone
 * (REF_SCHED_JOURNAL_VIEW) is written here, without the text writer. */
static inline int jrec_at(ref_sched *s, job *j, int64_t now, ref_effects *fx, const char *event,
                          size_t n_event, int with_req)
{
    if (s->journal_form != REF_SCHED_JOURNAL_VIEW || s->restoring)
        return jrec_n(s, j, now, fx, event, n_event, with_req);
    size_t n_state;
    const char *state = state_name(s, j->state, &n_state);
    return view_job(fx, j, event, n_event, state, n_state);
}

/* jrec_at with the event's length taken where the event is named (for a
 * literal, at compile time). */
#define jrec(s, j, now, fx, event, with_req)                                                       \
    jrec_at((s), (j), (now), (fx), (event), strlen(event), (with_req))

static int saga_rec(ref_sched *s, int64_t now, ref_effects *fx, const char *op, const char *wf,
                    const char *job_id, int outcome)
{
    if (s->restoring)
        return CAP_OK;
    jw_begin(s, fx);
    jw_str(s, "k", "saga");
    jw_i64(s, "t", now);
    jw_str(s, "op", op);
    jw_str(s, "wf", nz(wf));
    jw_str(s, "job_id", nz(job_id));
    jw_num(s, "outcome", outcome);
    return jw_emit(s);
}

/* ---- packets -------------------------------------------------------- */

/* The length of j's worker id (a shared string; NULL before the first
 * dispatch). */
static size_t worker_len(const job *j)
{
    return j->worker ? istr_of(j->worker)->len : 0;
}

/* The current attempt's DispatchIdentity (NULL before the first), on the
 * heap (b NULL) or in the block b (identity_size(j) of it). */
static dispatch_identity *mk_identity(const job *j, int *ok, ref_block *b)
{
    if (!j->attempt)
        return NULL;
    dispatch_identity *d = b ? ref_block_take(b, sizeof *d) : malloc(sizeof *d);
    if (!d) {
        *ok = 0;
        return NULL;
    }
    cordum__agent__v1__dispatch_identity__init(d);
    d->dispatch_id = b ? ref_block_str_n(b, j->dispatch_id, j->dispatch_len)
                       : ref_pb_strdup(j->dispatch_id, ok);
    d->attempt = j->attempt;
    d->assigned_worker_id = b ? ref_block_str_n(b, j->worker, worker_len(j))
                              : ref_pb_strdup(j->worker, ok);
    return d;
}

static size_t identity_size(const job *j)
{
    return j->attempt ? ref_block_size(sizeof(dispatch_identity)) +
                            ref_block_str_size_n(j->dispatch_len) +
                            ref_block_str_size_n(worker_len(j))
                      : 0;
}

/* A JobResult about job j from the scheduler (worker_id = scheduler id). */
static cap_packet *mk_result(const ref_sched *s, const job *j, const char *trace_id, int status,
                             int code_enum, const char *code, const char *msg, int64_t now,
                             int with_identity)
{
    cap_packet *p = ref_packet_new(trace_id, s->id, now);
    job_result *r = p ? malloc(sizeof *r) : NULL;
    if (!r) {
        cap_packet_free(p);
        return NULL;
    }
    cordum__agent__v1__job_result__init(r);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
    p->job_result = r;
    int ok = 1;
    r->job_id = ref_pb_strdup(j->job_id, &ok);
    r->status = (Cordum__Agent__V1__JobStatus)status;
    r->worker_id = ref_pb_strdup(s->id, &ok);
    r->error_code_enum = (Cordum__Agent__V1__ErrorCode)code_enum;
    r->error_code = ref_pb_strdup(code, &ok);
    r->error_message = ref_pb_strdup(msg, &ok);
    r->dispatch = with_identity ? mk_identity(j, &ok, NULL) : NULL;
    if (!ok) {
        cap_packet_free(p);
        return NULL;
    }
    return p;
}

static int publish_result(ref_sched *s, const job *j, int status, int code_enum, const char *code,
                          const char *msg, int64_t now, ref_effects *fx)
{
    cap_packet *p = mk_result(s, j, j->trace_id, status, code_enum, code, msg, now, 1);
    if (!p)
        return CAP_ENOMEM;
    return ref_effects_publish(fx, REF_SCHED_SUBJECT_RESULT, p);
}

/* A DLQ entry (cordum-ref 7): a JobResult on sys.job.dlq. */
static int publish_dlq(ref_sched *s, const job *j, int status, int code_enum, const char *code,
                       const char *msg, int64_t now, ref_effects *fx)
{
    cap_packet *p = mk_result(s, j, j->trace_id, status, code_enum, code, msg, now, 1);
    if (!p)
        return CAP_ENOMEM;
    s->st.dlq++;
    return ref_effects_publish(fx, REF_SCHED_SUBJECT_DLQ, p);
}

/* JobCancel to the worker of the current attempt, with its identity. */
static int publish_cancel(ref_sched *s, const job *j, const char *reason, const char *by,
                          int64_t now, ref_effects *fx)
{
    cap_packet *p = ref_packet_new(j->trace_id, s->id, now);
    job_cancel *c = p ? malloc(sizeof *c) : NULL;
    if (!c) {
        cap_packet_free(p);
        return CAP_ENOMEM;
    }
    cordum__agent__v1__job_cancel__init(c);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL;
    p->job_cancel = c;
    int ok = 1;
    c->job_id = ref_pb_strdup(j->job_id, &ok);
    c->reason = ref_pb_strdup(reason, &ok);
    c->requested_by = ref_pb_strdup(by && by[0] ? by : s->id, &ok);
    c->dispatch = mk_identity(j, &ok, NULL);
    if (!ok) {
        cap_packet_free(p);
        return CAP_ENOMEM;
    }
    return ref_effects_publish(fx, REF_SCHED_SUBJECT_CANCEL, p);
}

static int publish_alert(ref_sched *s, const ref_breaker_event *ev, int64_t now, ref_effects *fx)
{
    if (!ev->changed)
        return CAP_OK;
    s->st.breaker_changes++;
    ref_breaker_alert a;
    TRY(ref_breaker_alert_fill(&a, ev, s->id));
    char tid[300]; /* the envelope needs a trace_id (cap-spec 02); a breaker has no offender's */
    snprintf(tid, sizeof tid, "breaker-%s", nz(ev->worker));
    cap_packet *p = ref_packet_new(tid, s->id, now);
    if (!p)
        return CAP_ENOMEM;
    p->alert = (Cordum__Agent__V1__SystemAlert *)clone_message(&a.alert.base);
    if (!p->alert) {
        cap_packet_free(p);
        return CAP_ENOMEM;
    }
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_ALERT;
    TRY(note(s, fx, now, "breaker", "", "worker %s: %s -> %s (%s)", nz(ev->worker),
             ref_breaker_state_name(ev->from), ref_breaker_state_name(ev->to),
             ref_breaker_reason_name(ev->reason)));
    return ref_effects_publish(fx, REF_SCHED_SUBJECT_ALERT, p);
}

/* ---- timers --------------------------------------------------------- */

static int arm(ref_sched *s, job *j, int kind, int64_t at, ref_effects *fx)
{
    (void)s;
    if (kind == TK_WAKE)
        j->wake_at = at;
    else
        j->watch_at = at;
    return ref_effects_timer_set(fx, j->seq * 8 + (uint64_t)kind, at);
}

static int disarm(job *j, int kind, ref_effects *fx)
{
    int64_t *at = kind == TK_WAKE ? &j->wake_at : &j->watch_at;
    if (!*at)
        return CAP_OK;
    *at = 0;
    return ref_effects_timer_cancel(fx, j->seq * 8 + (uint64_t)kind);
}

static int arm_housekeeping(ref_sched *s, ref_effects *fx)
{
    int64_t at;
    if (ref_registry_next_expiry(s->registry, &at) == 1) {
        at = cap_sat_add(at, 1); /* lost means strictly past the grace window */
        if (at != s->reg_timer) {
            s->reg_timer = at;
            TRY(ref_effects_timer_set(fx, REF_SCHED_TIMER_REGISTRY, at));
        }
    }
    if (ref_breaker_set_deadline(s->breakers, &at) == 1 && at != s->brk_timer) {
        s->brk_timer = at;
        TRY(ref_effects_timer_set(fx, REF_SCHED_TIMER_BREAKER, at));
    }
    return CAP_OK;
}

/* ---- job table ------------------------------------------------------ */

/* ---- job store ------------------------------------------------------ */

_Static_assert(sizeof(job) <= 512, "a job record is eight cache lines");

#define JOB_CHUNK_SHIFT 8
#define JOB_CHUNK ((uint32_t)1 << JOB_CHUNK_SHIFT)
/* A record's place in its chunk: whole cache lines apart. */
#define JOB_STRIDE ((sizeof(job) + 63) & ~(size_t)63)

static job *job_at(const ref_sched *s, uint32_t rec)
{
    return (job *)(s->chunks[rec >> JOB_CHUNK_SHIFT] + (size_t)(rec & (JOB_CHUNK - 1)) * JOB_STRIDE);
}

/* A zeroed record from the free list, or a new one; NULL when out of
 * memory. */
static job *job_take(ref_sched *s)
{
    job *j = s->free_jobs;
    uint32_t rec;
    if (j) {
        s->free_jobs = j->next;
        rec = j->rec;
    } else {
        if (s->n_recs >= REF_IDINDEX_NONE - JOB_CHUNK)
            return NULL;
        if (s->n_recs == s->n_chunks * JOB_CHUNK) {
            if (s->n_chunks == s->cap_chunks) {
                size_t cap = s->cap_chunks ? s->cap_chunks * 2 : 8;
                char **g = realloc(s->chunks, cap * sizeof *g);
                if (!g)
                    return NULL;
                s->chunks = g;
                s->cap_chunks = cap;
            }
            char *c = aligned_alloc(64, JOB_CHUNK * JOB_STRIDE);
            if (!c)
                return NULL;
            s->chunks[s->n_chunks++] = c;
        }
        rec = s->n_recs++;
        j = job_at(s, rec);
    }
    memset(j, 0, sizeof *j);
    j->rec = rec;
    return j;
}

/* Frees what j owns and gives its record back to the store. */
static void job_free(ref_sched *s, job *j)
{
    if (!j)
        return;
    /* job_id, trace_id, tenant and idem live in j->text, or in one heap
     * block that job_id starts */
    if (j->text_heap)
        free(j->job_id);
    request_free(s, j->req, j->req_block, j->req_cap);
    intern_drop(s, j->rule_id);
    intern_drop(s, j->snapshot);
    intern_drop(s, j->reason);
    intern_drop(s, j->worker);
    intern_drop(s, j->pool);
    intern_drop(s, j->sel_topic);
    free(j->appr_snapshot);
    free(j->appr_by);
    free(j->appr_note);
    free(j->memo);
    free(j->saga_wf);
    for (uint32_t i = 0; j->passed && i < j->passed->n; i++)
        intern_drop(s, j->passed->id[i]);
    free(j->passed);
    j->seq = 0; /* no job's: a drain holding the record finds it gone */
    j->next = s->free_jobs;
    s->free_jobs = j;
}

/* Whether the n bytes at a and at b are the same: an id of 8 to 16 bytes
 * (most are) in two overlapping 8-byte compares, without a call. */
static inline int same_bytes(const char *a, const char *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t x, y, u, v;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        memcpy(&u, a + n - 8, 8);
        memcpy(&v, b + n - 8, 8);
        return ((x ^ y) | (u ^ v)) == 0;
    }
    return memcmp(a, b, n) == 0;
}

/* The linked job of id job_id (n bytes, hash h = ref_idindex_hash). */
static job *find_job_h(const ref_sched *s, const char *job_id, size_t n, uint64_t h)
{
    ref_idindex_walk w;
    for (uint32_t r = ref_idindex_first(&s->by_id, h, &w); r != REF_IDINDEX_NONE;
         r = ref_idindex_next(&w)) {
        job *j = job_at(s, r);
        if (j->id_len == n && same_bytes(j->job_id, job_id, n))
            return j;
    }
    return NULL;
}

/* A job id with its length and index hash, worked out once for both the
 * look-up and a new job's links. */
typedef struct {
    const char *id;
    size_t n;
    uint64_t h; /* ref_idindex_hash */
} id_key;

static id_key key_of(const char *id)
{
    size_t n = strlen(id);
    return (id_key){id, n, ref_idindex_hash(id, n)};
}

static job *find_job(const ref_sched *s, const char *job_id)
{
    if (!job_id)
        return NULL;
    id_key k = key_of(job_id);
    return find_job_h(s, k.id, k.n, k.h);
}

/* ---- jobs by seq ----------------------------------------------------
 * A job's place is seq modulo the ring's size. Seqs are handed out in
 * order and jobs mostly leave oldest first, so jobs close in time sit
 * close in memory: an insert or delete touches a warm cache line, where a
 * hashed table puts each on a cold one. A seq whose place another job
 * holds (an old job still live, a parked one) goes to the by_seq map. A
 * seq is in one of the two at most, and the ring keeps at least twice as
 * many places as there are jobs. */

static job *find_seq(const ref_sched *s, uint64_t seq)
{
    job *j = s->ring_cap ? s->ring[seq & (s->ring_cap - 1)] : NULL;
    if (j && j->seq == seq)
        return j;
    return ref_u64map_len(&s->by_seq) ? ref_u64map_get(&s->by_seq, seq) : NULL;
}

/* A ring twice the size, holding what the index holds now: the linked
 * jobs that find_seq finds (of a restored journal's jobs that share a
 * seq, the one indexed last). */
static int seq_grow(ref_sched *s)
{
    size_t cap = s->ring_cap ? s->ring_cap * 2 : 64;
    job **ring = calloc(cap, sizeof *ring);
    if (!ring)
        return CAP_ENOMEM;
    ref_u64map over;
    ref_u64map_init(&over);
    for (job *k = s->head; k; k = k->next) {
        if (find_seq(s, k->seq) != k)
            continue;
        job **at = &ring[k->seq & (cap - 1)];
        if (!*at) {
            *at = k;
        } else if (ref_u64map_put(&over, k->seq, k)) {
            free(ring);
            ref_u64map_free(&over);
            return CAP_ENOMEM;
        }
    }
    free(s->ring);
    ref_u64map_free(&s->by_seq);
    s->ring = ring;
    s->ring_cap = cap;
    s->by_seq = over;
    return CAP_OK;
}

/* Indexes j (not yet counted in n_jobs) by its seq, in place of a job
 * indexed under the same seq. */
static int seq_put(ref_sched *s, job *j)
{
    if ((s->n_jobs + 1) * 2 > s->ring_cap)
        TRY(seq_grow(s));
    job **at = &s->ring[j->seq & (s->ring_cap - 1)];
    if ((*at && (*at)->seq == j->seq) ||
        (!*at && !(ref_u64map_len(&s->by_seq) && ref_u64map_get(&s->by_seq, j->seq)))) {
        *at = j;
        return CAP_OK;
    }
    return ref_u64map_put(&s->by_seq, j->seq, j);
}

/* Drops whatever job is indexed under seq. */
static void seq_del(ref_sched *s, uint64_t seq)
{
    job **at = s->ring_cap ? &s->ring[seq & (s->ring_cap - 1)] : NULL;
    if (at && *at && (*at)->seq == seq)
        *at = NULL;
    else
        ref_u64map_del(&s->by_seq, seq);
}

static int is_terminal(const job *j) { return ref_jobstate_is_terminal(j->state); }

static void unlink_job(ref_sched *s, job *j)
{
    if (s->evict_from == j)
        s->evict_from = j->next; /* the jobs before j are still not terminal */
    seq_del(s, j->seq);
    ref_idindex_del(&s->by_id, j->id_hash, j->rec);
    if (j->idem && ref_strmap_get(&s->by_idem, j->idem) == j)
        ref_strmap_del(&s->by_idem, j->idem);
    if (j->prev)
        j->prev->next = j->next;
    else
        s->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        s->tail = j->prev;
    s->n_jobs--;
}

/* Links j (from job_new; no linked job has its id: callers look first). */
static int link_job(ref_sched *s, job *j)
{
    uint64_t h = j->id_hash;
    int rc = ref_idindex_put(&s->by_id, h, j->rec);
    if (!rc)
        rc = seq_put(s, j);
    if (!rc && j->idem && !ref_strmap_get(&s->by_idem, j->idem))
        rc = ref_strmap_put(&s->by_idem, j->idem, j);
    if (rc) {
        ref_idindex_del(&s->by_id, h, j->rec);
        seq_del(s, j->seq);
        return rc;
    }
    if (s->tail && j->seq <= s->tail->seq)
        s->list_unordered = 1;
    j->prev = s->tail;
    j->next = NULL;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->n_jobs++;
    if (j->seq >= s->next_seq)
        s->next_seq = j->seq + 1;
    return CAP_OK;
}

/* When the table is full, asks the cache for the lines of the oldest
 * job's record that evicting it reads (make_room, unlink_job, job_free):
 * it is most likely the one make_room evicts, last touched minutes ago,
 * and a new job is built (job_new) before room is made, time enough for
 * them to arrive. A hint only: nothing changes. */
static void prefetch_victim(const ref_sched *s)
{
    if (s->n_jobs < s->max_jobs || !s->head)
        return;
    const char *p = (const char *)s->head;
    for (size_t off = 0; off <= offsetof(job, saga_wf); off += 64)
        __builtin_prefetch(p + off);
}

/* The entry at heap index i still names a terminal job: that job. */
static job *term_job(const ref_sched *s, size_t i)
{
    job *j = job_at(s, s->term[i].rec);
    return j->seq == s->term[i].seq && is_terminal(j) ? j : NULL;
}

static int term_before(const struct term_entry *a, const struct term_entry *b)
{
    return a->seq < b->seq;
}

static void term_down(ref_sched *s, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_term)
            return;
        if (c + 1 < s->n_term && term_before(&s->term[c + 1], &s->term[c]))
            c++;
        if (!term_before(&s->term[c], &s->term[i]))
            return;
        struct term_entry t = s->term[i];
        s->term[i] = s->term[c];
        s->term[c] = t;
        i = c;
    }
}

/* Drops the entries of jobs evicted (or records reused) since, when they
 * outnumber the jobs held: each eviction by the walk leaves one. */
static void term_sweep(ref_sched *s)
{
    if (s->n_term < 2 * s->n_jobs + 64)
        return;
    size_t n = 0;
    for (size_t i = 0; i < s->n_term; i++)
        if (term_job(s, i))
            s->term[n++] = s->term[i];
    s->n_term = n;
    for (size_t i = n / 2; i-- > 0;)
        term_down(s, i);
}

/* Files terminal job j; a full heap that cannot grow is given up (the
 * walk alone is used from then on, which finds the same job). */
static void term_add(ref_sched *s, job *j)
{
    if (s->list_unordered)
        return;
    term_sweep(s);
    if (s->n_term == s->cap_term) {
        size_t nc = s->cap_term ? 2 * s->cap_term : 256;
        struct term_entry *g = realloc(s->term, nc * sizeof *g);
        if (!g) {
            s->list_unordered = 1;
            return;
        }
        s->term = g;
        s->cap_term = nc;
    }
    size_t i = s->n_term++;
    s->term[i] = (struct term_entry){j->seq, j->rec};
    while (i && term_before(&s->term[i], &s->term[(i - 1) / 2])) {
        struct term_entry t = s->term[i];
        s->term[i] = s->term[(i - 1) / 2];
        s->term[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/* The oldest terminal job, or NULL when none is: the heap's least entry
 * that still names one (the others go). */
static job *term_oldest(ref_sched *s)
{
    while (s->n_term) {
        job *j = term_job(s, 0);
        if (j)
            return j;
        s->term[0] = s->term[--s->n_term];
        term_down(s, 0);
    }
    return NULL;
}

/* How far make_room walks from evict_from before it asks the heap. */
#define EVICT_WALK_MAX 64

/* Makes room for one more job: evicts the oldest terminal job. 0 when a
 * job was evicted or there was room, CAP_EFULL when every job is live. */
static int make_room(ref_sched *s, int64_t now, ref_effects *fx)
{
    if (s->n_jobs < s->max_jobs)
        return CAP_OK;
    size_t steps = 0;
    job *j = s->evict_from ? s->evict_from : s->head;
    for (; j && !is_terminal(j); j = j->next)
        if (++steps == EVICT_WALK_MAX && !s->list_unordered) {
            /* In seq order, the heap's oldest terminal job is the first
             * the walk would come to. */
            j = term_oldest(s);
            break;
        }
    if (!j) {
        s->evict_from = s->tail; /* none is terminal: the next walk starts at the newest */
        return CAP_EFULL;
    }
    s->evict_from = j; /* no job before j is terminal (unlink_job moves on from j) */
    /* unlink_job's index cell and the count of the job's worker's shared
     * id (job_free), asked for while the record is written */
    ref_idindex_prefetch(&s->by_id, j->id_hash);
    if (j->worker)
        __builtin_prefetch(istr_of(j->worker));
    if (!s->restoring && s->journal_form != REF_SCHED_JOURNAL_VIEW) {
        jw_begin(s, fx);
        jw_lit(s, JW_RAW("\"k\":\"evict\""));
        jw_i64(s, "t", now);
        jw_known(s, "job_id", j->job_id, j->id_len, j->id_plain);
        TRY(jw_emit(s));
    }
    if (!s->restoring && s->journal_form != REF_SCHED_JOURNAL_TEXT)
        TRY(view_evict(fx, j));
    unlink_job(s, j);
    job_free(s, j);
    return CAP_OK;
}

/* Linked job j has just become terminal: when it lies before the start of
 * make_room's walk, the walk starts at j. List order is seq order, but
 * jobs restored from a journal may share a seq: on a tie the walk starts
 * from the head (exact, and rare). */
static void note_terminal(ref_sched *s, job *j)
{
    term_add(s, j);
    job *from = s->evict_from;
    if (!from || !(j->prev || s->head == j))
        return; /* from the head already; or j is not linked */
    if (j->seq < from->seq)
        s->evict_from = j;
    else if (j->seq == from->seq && j != from)
        s->evict_from = NULL;
}

/* Copies n bytes of s and a NUL to *at; returns the copy, *at moved past it. */
static char *put_str(char **at, const char *s, size_t n)
{
    char *c = *at;
    memcpy(c, s, n);
    c[n] = 0;
    *at += n + 1;
    return c;
}

/* A new job from a request (copied), not yet linked; k: the key of its
 * job id when the caller has it, else NULL. The strings it keeps for its
 * whole life (job_id, trace_id, tenant, idem) are in its record when they
 * fit, else in one heap block. */
static job *job_new(ref_sched *s, const job_request *req, const id_key *k, const char *trace_id,
                    uint64_t seq)
{
    id_key own = k ? *k : key_of(nz(req->job_id));
    const char *id = own.id, *tenant = effective_tenant(req);
    const char *key = req->meta ? nz(req->meta->idempotency_key) : "";
    trace_id = nz(trace_id);
    size_t n_id = own.n, n_trace = strlen(trace_id), n_tenant = strlen(tenant);
    size_t n_key = strlen(key);
    if (n_trace > UINT32_MAX) /* beyond any packet; trace_len is 32-bit */
        return NULL;
    size_t size = n_id + n_trace + n_tenant + 3 + (n_key ? n_tenant + n_key + 2 : 0);
    job *j = job_take(s);
    if (!j)
        return NULL;
    char *at = j->text;
    if (size > sizeof j->text) {
        at = malloc(size);
        if (!at) {
            job_free(s, j);
            return NULL;
        }
        j->text_heap = 1;
    }
    /* plain: only the text journal asks (0, "not known to be plain", is
     * escaped the same way, only slower) */
    int text = s->journal_form != REF_SCHED_JOURNAL_VIEW;
    j->job_id = put_str(&at, id, n_id);
    j->id_len = n_id;
    j->id_hash = own.h;
    j->id_plain = text && json_plain(id, n_id);
    j->dispatch_plain = 1; /* "" until the first dispatch */
    j->trace_id = put_str(&at, trace_id, n_trace);
    j->trace_len = (uint32_t)n_trace;
    j->trace_plain = text && json_plain(trace_id, n_trace);
    j->tenant = put_str(&at, tenant, n_tenant);
    if (n_key) { /* the idempotency index key: tenant, 0x1f, key */
        j->idem = at;
        memcpy(at, tenant, n_tenant);
        at[n_tenant] = '\x1f';
        memcpy(at + n_tenant + 1, key, n_key + 1);
    }
    j->seq = seq;
    j->max_retries = -1;
    j->wait_since = -1;
    j->rank = rank_of(req->priority);
    j->in_wf = req->workflow_id && req->workflow_id[0];
    job_request view = *req; /* kept without its dispatch identity */
    view.dispatch = NULL;
    j->req = keep_request(s, &view, &j->req_block, &j->req_rel, &j->req_cap);
    if (!j->req) {
        job_free(s, j);
        return NULL;
    }
    const char *topic = nz(req->topic);
    const Cordum__Agent__V1__JobMetadata *m = req->meta;
    if (!req->n_labels && (!m || !m->n_requires) && strnlen(topic, 4097) <= 4096 &&
        intern_set(s, IK_TOPIC, &j->sel_topic, topic) != CAP_OK) {
        job_free(s, j);
        return NULL;
    }
    return j;
}

/* ---- worker slots (this scheduler's own in-flight count per worker) -- */

static worker_slots *slots_find(const ref_sched *s, const char *worker)
{
    return ref_strmap_get(&s->slots_by_worker, worker);
}

/* The in-flight list of a worker, made when it has none; NULL when out of
 * memory. tag: what the registry keeps for the worker (ref_worker_info.
 * tag: this very list, set by slot_take and slot_release), or NULL. */
static worker_slots *slots_get(ref_sched *s, const char *worker, void *tag)
{
    worker_slots *w = tag ? tag : slots_find(s, worker);
    if (w)
        return w;
    if (s->n_slots == s->cap_slots) {
        size_t nc = s->cap_slots ? s->cap_slots * 2 : 8;
        worker_slots **g = realloc(s->slots, nc * sizeof *g);
        if (!g)
            return NULL;
        s->slots = g;
        s->cap_slots = nc;
    }
    w = calloc(1, sizeof *w);
    if (!w || intern_set(s, IK_WORKER, &w->worker_id, worker) ||
        ref_strmap_put(&s->slots_by_worker, w->worker_id, w)) {
        if (w)
            intern_drop(s, w->worker_id);
        free(w);
        return NULL;
    }
    s->slots[s->n_slots++] = w;
    return w;
}

/* j->worker's in-flight list when j->ws is it (no lookup), else NULL. */
static worker_slots *ws_of(const job *j)
{
    return j->ws && j->worker && j->ws->worker_id == j->worker ? j->ws : NULL;
}

/* Counts j in its worker's list: w (NULL: looked up or made by
 * j->worker). */
static int slot_take(ref_sched *s, job *j, worker_slots *w)
{
    if (!w && !(w = slots_get(s, j->worker, NULL)))
        return CAP_ENOMEM;
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 4;
        job **g = realloc(w->jobs, nc * sizeof *g);
        if (!g)
            return CAP_ENOMEM;
        w->jobs = g;
        w->cap = nc;
    }
    w->jobs[w->n++] = j;
    j->holds_slot = 1;
    j->ws = w;
    ref_registry_set_inflight_memo(s->registry, w->worker_id, &w->reg, (uint32_t)w->n, w);
    s->sel_epoch++;
    return CAP_OK;
}

static void slot_release(ref_sched *s, job *j)
{
    if (!j->holds_slot)
        return;
    j->holds_slot = 0;
    /* The list the job went into, unless its worker changed since. */
    worker_slots *w = ws_of(j);
    if (!w)
        w = slots_find(s, j->worker);
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        if (w->jobs[i] == j) {
            if (i + 1 < w->n) /* not the last (a worker holds one job, mostly) */
                memmove(&w->jobs[i], &w->jobs[i + 1], (w->n - i - 1) * sizeof *w->jobs);
            w->n--;
            ref_registry_set_inflight_memo(s->registry, w->worker_id, &w->reg, (uint32_t)w->n,
                                           w);
            s->sel_epoch++;
            break;
        }
}

/* Selection filter: the worker's breaker refuses, or it already holds as
 * many of our dispatches as it declared it can run. The registry only
 * knows the load heartbeats report (cordum-ref 4.9); counting our own
 * dispatches keeps a burst from piling onto one worker and makes the
 * priority order mean something when capacity is short. */
typedef struct {
    ref_sched *s;
    int64_t now;
} exclude_ctx;

static int exclude_worker(void *ctx, const ref_worker_info *w)
{
    exclude_ctx *c = ctx;
    worker_slots *sl = w->tag; /* the worker's list, when the registry has it */
    if (!ref_breaker_set_can_dispatch_memo(c->s->breakers, w->worker_id, sl ? &sl->brk : NULL,
                                           c->now))
        return 1;
    if (w->max_parallel_jobs <= 0) /* no declared limit: no count to look up */
        return 0;
    if (!sl)
        sl = slots_find(c->s, w->worker_id);
    return sl && sl->n >= (size_t)w->max_parallel_jobs;
}

/* ---- the waiting queue ---------------------------------------------- */

/* Whether entry e sorts before a job of (rank, seq). */
static int entry_before(const wentry *e, int rank, uint64_t seq)
{
    return e->rank != rank ? e->rank < rank : e->seq < seq;
}

/* Where j is, or would go, in the waiting queue. */
static size_t waitq_pos(const ref_sched *s, const job *j)
{
    size_t lo = 0, hi = s->wq_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (entry_before(&s->waitq[mid], j->rank, j->seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* j's entry (j is waiting), or NULL. Jobs restored from a journal may
 * share a seq, and a job that left and came back has its tombstone beside
 * its entry: j's is the live one among the entries of its (rank, seq). */
static wentry *waitq_entry(ref_sched *s, const job *j)
{
    for (size_t i = waitq_pos(s, j);
         i < s->wq_len && s->waitq[i].rank == j->rank && s->waitq[i].seq == j->seq; i++)
        if (s->waitq[i].j == j && !s->waitq[i].dead_at)
            return &s->waitq[i];
    return NULL;
}

/* Before the entries from index i on change (structural: they move;
 * else only entry i changes): each pass under way that reads them in
 * place and has yet to reach one of them copies the rest it has to go,
 * as they are now, which is as they were when it began (wpass). */
static int waitq_touch(ref_sched *s, size_t i, int structural)
{
    for (unsigned k = 0; k < s->n_passes; k++) {
        wpass *p = &s->passes[k];
        size_t from = p->cur + 1; /* the entry being tried was read already */
        if (p->batch || from >= p->end || (structural ? i >= p->end : i < from))
            continue;
        p->batch = malloc((p->end - from) * sizeof *p->batch);
        if (!p->batch)
            return CAP_ENOMEM;
        memcpy(p->batch, &s->waitq[from], (p->end - from) * sizeof *p->batch);
        p->base = from;
    }
    return CAP_OK;
}

/* Entry e no longer counted among the quiet ones (wq_counted). */
static void wq_uncount(ref_sched *s, wentry *e)
{
    if (e->era != s->wq_era)
        return;
    e->era = 0;
    if (--s->wq_counted == 0)
        s->wq_min_give_up = INT64_MAX;
}

/* Drops the tombstones, when no pass is under way and they are at least
 * as many as the waiting entries. */
static void waitq_compact(ref_sched *s)
{
    size_t dead = s->wq_len - s->n_wait;
    if (s->n_passes || dead < 64 || dead < s->n_wait)
        return;
    size_t n = 0;
    for (size_t i = s->wq_head; i < s->wq_len; i++)
        if (!s->waitq[i].dead_at)
            s->waitq[n++] = s->waitq[i];
    s->wq_len = n;
    s->wq_head = 0;
}

/* Puts e, whose place is at index lo, into the dead front instead of
 * moving every entry from lo on back one place, when that moves fewer
 * entries: a job of a high rank joining a long queue of lower-ranked ones
 * goes near the front, and moving the whole queue behind it for each such
 * job made an overloaded run's cost per job grow with its backlog. The
 * live entries between the dead front and lo move down one place, onto
 * the tombstone before the first of them, and e takes the place freed
 * just before lo; the order is kept. Only when no pass is under way, since
 * a pass reads entries by index (wpass). Returns whether it did. */
static int waitq_add_in_front(ref_sched *s, size_t lo, wentry e)
{
    if (s->n_passes || lo == 0 || s->wq_head == 0)
        return 0;
    if (lo <= s->wq_head) { /* entry lo - 1 is a tombstone: e takes it */
        s->waitq[lo - 1] = e;
        s->wq_head = lo - 1;
        return 1;
    }
    size_t ahead = lo - s->wq_head;
    if (ahead > s->wq_len - lo)
        return 0;
    memmove(&s->waitq[s->wq_head - 1], &s->waitq[s->wq_head], ahead * sizeof *s->waitq);
    s->waitq[lo - 1] = e;
    s->wq_head--;
    return 1;
}

static int waitq_add(ref_sched *s, job *j)
{
    if (j->waiting)
        return CAP_OK;
    waitq_compact(s);
    if (s->wq_len == s->cap_wait) {
        size_t nc = s->cap_wait ? s->cap_wait * 2 : 16;
        wentry *g = realloc(s->waitq, nc * sizeof *g);
        if (!g)
            return CAP_ENOMEM;
        s->waitq = g;
        s->cap_wait = nc;
    }
    size_t lo = waitq_pos(s, j);
    const wentry add = {.j = j, .seq = j->seq, .rank = j->rank};
    if (!waitq_add_in_front(s, lo, add)) {
        TRY(waitq_touch(s, lo, 1));
        memmove(&s->waitq[lo + 1], &s->waitq[lo], (s->wq_len - lo) * sizeof *s->waitq);
        s->waitq[lo] = add;
        s->wq_len++;
        if (lo < s->wq_head)
            s->wq_head = lo;
    }
    s->n_wait++;
    j->waiting = 1;
    return CAP_OK;
}

/* j leaves the queue: its entry becomes a tombstone, in place. */
static void waitq_remove(ref_sched *s, job *j)
{
    if (!j->waiting)
        return;
    j->waiting = 0;
    wentry *e = waitq_entry(s, j);
    if (e) {
        wq_uncount(s, e);
        e->dead_at = ++s->wq_ops;
        s->n_wait--;
        while (s->wq_head < s->wq_len && s->waitq[s->wq_head].dead_at)
            s->wq_head++;
    }
}

/* j's try ended in a failed selection of a plain job and left it waiting
 * (wentry). */
static int wait_quiet(ref_sched *s, job *j)
{
    wentry *e = j->waiting && j->wake_at && is_allow(j->decision) ? waitq_entry(s, j) : NULL;
    if (!e)
        return CAP_OK;
    TRY(waitq_touch(s, (size_t)(e - s->waitq), 0));
    wq_uncount(s, e);
    e->quiet_topic = j->sel_topic;
    e->quiet_snap = j->snapshot;
    e->give_up = cap_sat_add(j->wait_since, s->nw_wait);
    if (!e->quiet_topic)
        return CAP_OK;
    if (!s->wq_counted && (e->quiet_topic != s->wq_topic || e->quiet_snap != s->wq_snap)) {
        /* A new pair. No entry holds the old era (none is counted), so
         * entries hold 0 or the current one, and a wrap is harmless. */
        if (++s->wq_era == 0)
            s->wq_era = 1;
        s->wq_topic = e->quiet_topic;
        s->wq_snap = e->quiet_snap;
    }
    if (e->quiet_topic == s->wq_topic && e->quiet_snap == s->wq_snap) {
        e->era = s->wq_era;
        s->wq_counted++;
        if (e->give_up < s->wq_min_give_up)
            s->wq_min_give_up = e->give_up;
    }
    return CAP_OK;
}

static int wait_unquiet(ref_sched *s, job *j)
{
    wentry *e = j->waiting ? waitq_entry(s, j) : NULL;
    if (!e || !e->quiet_topic)
        return CAP_OK;
    TRY(waitq_touch(s, (size_t)(e - s->waitq), 0));
    wq_uncount(s, e);
    e->quiet_topic = NULL;
    return CAP_OK;
}

/* ---- state changes -------------------------------------------------- */

/* Moves j to `to` through the state table; a move the table refuses is a
 * bug in the scheduler, reported as CAP_EINVAL (unless the accept-backward
 * bug is switched on, in which case the table itself accepts it). */
static int set_state(job *j, int to, int64_t now)
{
    ref_js_outcome o = ref_jobstate_check(j->state, to);
    if (o == REF_JS_REPEAT)
        return CAP_OK;
    if (!ref_js_outcome_applies(o))
        return CAP_EINVAL;
    j->state = to;
    j->state_at = now;
    return CAP_OK;
}

static inline int timeouts_for(const ref_sched *s, const job *j, int64_t *dispatch_to,
                               int64_t *running_to)
{
    *dispatch_to = s->dispatch_to;
    *running_to = s->running_to;
    for (size_t i = 0; i < s->n_pool_to; i++)
        if (strcmp(s->pool_to[i].name, nz(j->pool)) == 0) {
            if (s->pool_to[i].dispatch_timeout_ns)
                *dispatch_to = s->pool_to[i].dispatch_timeout_ns;
            if (s->pool_to[i].running_timeout_ns)
                *running_to = s->pool_to[i].running_timeout_ns;
        }
    for (size_t i = 0; i < s->n_tenant_to; i++)
        if (strcmp(s->tenant_to[i].name, j->tenant) == 0) {
            if (s->tenant_to[i].dispatch_timeout_ns)
                *dispatch_to = s->tenant_to[i].dispatch_timeout_ns;
            if (s->tenant_to[i].running_timeout_ns)
                *running_to = s->tenant_to[i].running_timeout_ns;
        }
    if (j->max_runtime_ns > 0 && j->max_runtime_ns < *running_to)
        *running_to = j->max_runtime_ns;
    return CAP_OK;
}

static int saga_after_terminal(ref_sched *s, job *j, const job_request *req, int64_t now,
                               ref_effects *fx);
static int drain(ref_sched *s, int64_t now, ref_effects *fx);

/* The job reached terminal state `status` (already decided): timers off,
 * out of the queue, its worker slot and tenant count given back, then the
 * saga hooks and a drain of the waiting queue (a slot may have freed). */
static int finish(ref_sched *s, job *j, int status, int64_t now, ref_effects *fx,
                  const char *event)
{
    TRY(set_state(j, status, now));
    note_terminal(s, j);
    TRY(disarm(j, TK_WAKE, fx));
    TRY(disarm(j, TK_WATCH, fx));
    waitq_remove(s, j);
    j->wait_since = -1;
    j->done = 1;
    int freed = j->holds_slot;
    slot_release(s, j);
    if (j->counted) {
        ref_safety_job_ended(s->safety, j->tenant);
        j->counted = 0;
    }
    switch (status) {
    case REF_JOB_SUCCEEDED: s->st.succeeded++; break;
    case REF_JOB_FAILED: s->st.failed++; break;
    case REF_JOB_FAILED_FATAL: s->st.failed_fatal++; break;
    case REF_JOB_DENIED: s->st.denied++; break;
    case REF_JOB_TIMEOUT: s->st.timed_out++; break;
    case REF_JOB_CANCELLED: s->st.cancelled++; break;
    default: break;
    }
    TRY(jrec(s, j, now, fx, event, 0));
    /* A terminal job's request has no reader left but the saga hooks
     * below: it is released now rather than held until the job is evicted
     * minutes later (a table of terminal jobs holds no requests), and so
     * are the strings only its job records use. What a terminal job still
     * answers (duplicate submits, status queries, the journal's evict
     * record) is kept.
     * Detached first: the hooks may admit a compensation, which may evict
     * j itself. */
    job_request *req = j->req;
    size_t block = j->req_block;
    uint32_t block_cap = j->req_cap;
    j->req = NULL;
    /* Only the job records write these; the last one is written. */
    intern_drop(s, j->rule_id);
    intern_drop(s, j->reason);
    intern_drop(s, j->pool);
    intern_drop(s, j->sel_topic);
    j->rule_id = j->reason = j->pool = j->sel_topic = NULL;
    int rc = saga_after_terminal(s, j, req, now, fx);
    request_free(s, req, block, block_cap);
    TRY(rc);
    return freed || s->n_wait ? drain(s, now, fx) : CAP_OK;
}

/* A terminal the scheduler decides: the state, the JobResult on
 * sys.job.result, and (dlq_code non-NULL) the DLQ entry. */
static int conclude(ref_sched *s, job *j, int status, int code_enum, const char *dlq_code,
                    const char *msg, int64_t now, ref_effects *fx, const char *event)
{
    TRY(publish_result(s, j, status, code_enum, dlq_code ? dlq_code : error_code_name(code_enum),
                       msg, now, fx));
    if (dlq_code)
        TRY(publish_dlq(s, j, status, code_enum, dlq_code, msg, now, fx));
    return finish(s, j, status, now, fx, event);
}

/* ---- dispatch ------------------------------------------------------- */

static void route_pools(const ref_sched *s, const job *j, const char *const **pools, size_t *n)
{
    const char *topic = nz(j->req->topic);
    for (size_t i = 0; i < s->n_routes; i++)
        if (strcmp(s->routes[i].topic, topic) == 0) {
            *pools = s->routes[i].pools;
            *n = s->routes[i].n_pools;
            return;
        }
    *pools = (const char *const *)&j->req->topic;
    *n = 1;
}

/* The runtime cap as the dispatched request's deadline: a request
 * without a budget gets `fresh` (set up here; NULL: the caller ran out of
 * memory and fails), and a deadline that is unset or later than the cap
 * is lowered to it. */
static void cap_deadline(job_request *r, const job *j, Cordum__Agent__V1__Budget *fresh)
{
    int64_t ms = j->max_runtime_ns / NS_PER_MS;
    if (!r->budget) {
        if (!fresh)
            return;
        cordum__agent__v1__budget__init(fresh);
        r->budget = fresh;
    }
    if (r->budget->deadline_ms <= 0 || r->budget->deadline_ms > ms)
        r->budget->deadline_ms = ms;
}

/* The dispatched copy of the request: its DispatchIdentity, the worker's
 * last checkpoint, the approval labels, and the runtime cap as deadline. */
static job_request *dispatch_request(const job *j, int *ok)
{
    job_request *r = clone_request(j->req);
    if (!r) {
        *ok = 0;
        return NULL;
    }
    r->dispatch = mk_identity(j, ok, NULL);
    if (j->memo && j->memo[0] && ENV_SET(r, REF_SCHED_ENV_LAST_MEMO, j->memo))
        *ok = 0;
    if (j->appr == APPR_APPROVED) {
        if (LABEL_SET(r, "approval_granted", "true") ||
            LABEL_SET(r, "approval_snapshot", nz(j->appr_snapshot)))
            *ok = 0;
    }
    if (j->max_runtime_ns > 0) {
        Cordum__Agent__V1__Budget *fresh = r->budget ? NULL : malloc(sizeof *fresh);
        if (r->budget || fresh)
            cap_deadline(r, j, fresh);
        else
            *ok = 0;
    }
    return r;
}

/* The dispatch packet (envelope as ref_packet_new builds it, payload as
 * dispatch_request) in one block for ref_effects_publish_block: no
 * allocation per string, sub-message and array, and one free. It covers
 * the usual dispatch, a job whose request is one block with no memo or
 * approval labels to merge into its maps; NULL for the rest (and when
 * memory runs out), which take the heap path. */
static cap_packet *dispatch_packet_block(const ref_sched *s, const job *j, int64_t now)
{
    if (!j->req_block || (j->memo && j->memo[0]) || j->appr == APPR_APPROVED)
        return NULL;
    int fresh_budget = j->max_runtime_ns > 0 && !j->req->budget;
    ref_block b;
    void *blk = ref_block_new(&b, ref_block_envelope_size_n(j->trace_len, s->id_len) + j->req_block +
                                      identity_size(j) +
                                      (fresh_budget ? ref_block_size(sizeof(Cordum__Agent__V1__Budget))
                                                    : 0));
    if (!blk)
        return NULL;
    /* the block's start */
    cap_packet *p = ref_block_envelope_n(&b, j->trace_id, j->trace_len, s->id, s->id_len, now);
    /* the request: its block copied as it is, then pointed at itself */
    job_request *r = ref_block_take(&b, j->req_block);
    if (r) {
        memcpy(r, j->req, j->req_block);
        relocate(r, j->req, (const uint32_t *)((const char *)j->req + j->req_block), j->req_rel);
        int ok = 1; /* in a block a piece that does not fit sets b.bad */
        r->dispatch = mk_identity(j, &ok, &b);
        if (j->max_runtime_ns > 0)
            cap_deadline(r, j,
                         fresh_budget ? ref_block_take(&b, sizeof(Cordum__Agent__V1__Budget)) : NULL);
    }
    if (b.bad) { /* cannot happen: the block was sized for every piece */
        free(blk);
        return NULL;
    }
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    p->job_request = r;
    return p;
}

/* Two hex digits per byte value, for random_hex. */
static const char hex_pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/* 32 hex digits from two draws, the most significant digit first. */
static int random_hex(const ref_sched *s, char out[33])
{
    for (int half = 0; half < 2; half++) {
        uint64_t v = ref_rand_next(&s->rand);
#pragma GCC unroll 8 /* a load and a store per byte, no loop */
        for (int i = 0; i < 8; i++)
            memcpy(out + half * 16 + 2 * i, hex_pairs + 2 * ((v >> (56 - 8 * i)) & 255), 2);
    }
    out[32] = 0;
    return CAP_OK;
}

/* The job's last worker is about to run no longer its last attempt: it
 * joins the workers the next attempts avoid (once). */
static int pass_worker(ref_sched *s, job *j)
{
    struct passed_workers *p = j->passed;
    for (uint32_t i = 0; p && i < p->n; i++)
        if (p->id[i] == j->worker)
            return CAP_OK;
    if (!p || p->n == p->cap) {
        uint32_t nc = p ? p->cap * 2 : 2;
        struct passed_workers *g = realloc(p, sizeof *g + nc * sizeof g->id[0]);
        if (!g)
            return CAP_ENOMEM;
        if (!p)
            g->n = 0;
        g->cap = nc;
        j->passed = p = g;
    }
    p->id[p->n] = NULL;
    intern_ref(s, &p->id[p->n], j->worker);
    p->n++;
    return CAP_OK;
}

static int do_dispatch(ref_sched *s, job *j, const ref_sel_result *sel, int64_t now,
                       ref_effects *fx)
{
    uint64_t ticket = 0;
    ref_breaker_event ev;
    /* The worker's list (the selection names a worker that has one by it
     * alone: id_by_tag); its worker_id is the worker's id. */
    worker_slots *ws = slots_get(s, sel->worker_id, sel->tag);
    if (!ws)
        return CAP_ENOMEM;
    const char *worker = ws->worker_id;
    int v = ref_breaker_set_acquire_memo(s->breakers, worker, &ws->brk, now, &ticket, &ev);
    s->sel_epoch++;
    TRY(v);
    TRY(publish_alert(s, &ev, now, fx));
    if (v == REF_BREAKER_REFUSE)
        return CAP_EINVAL; /* excluded by the selection filter; cannot happen */
    if (j->attempt && j->worker && j->worker != ws->worker_id)
        TRY(pass_worker(s, j));
    intern_ref(s, &j->worker, ws->worker_id);
    TRY(intern_set_buf(s, IK_POOL, &j->pool, sel->pool, sizeof sel->pool));
    j->attempt++;
    random_hex(s, j->dispatch_id);
    j->dispatch_plain = 1; /* hex digits */
    j->dispatch_len = 32;
    j->ticket = ticket;
    j->done = 0;
    j->throttles = 0;
    TRY(set_state(j, REF_JOB_DISPATCHED, now));
    waitq_remove(s, j);
    j->wait_since = -1;
    TRY(disarm(j, TK_WAKE, fx));
    TRY(slot_take(s, j, ws));
    if (!j->counted) {
        TRY(ref_safety_job_started(s->safety, j->tenant));
        j->counted = 1;
    }
    int64_t dto, rto;
    timeouts_for(s, j, &dto, &rto);
    TRY(arm(s, j, TK_WATCH, cap_sat_add(now, dto), fx));
    s->st.dispatched++;
    TRY(jrec(s, j, now, fx, "dispatch", 0));

    cap_packet *p = dispatch_packet_block(s, j, now);
    int block = p != NULL;
    if (!p) {
        int ok = 1;
        job_request *r = dispatch_request(j, &ok);
        p = ok ? ref_packet_new(j->trace_id, s->id, now) : NULL;
        if (!p) {
            cap_message_free(r ? &r->base : NULL);
            return CAP_ENOMEM;
        }
        p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
        p->job_request = r;
    }
    const char *subject = sel->pool;
    char buf[REF_REGISTRY_ID_MAX + 32]; /* worker.<id>.jobs; ids are at most ID_MAX bytes */
    if (!s->on_pool) {
        size_t n = istr_of(ws->worker_id)->len; /* the worker's id, a shared string */
        if (n > REF_REGISTRY_ID_MAX)
            n = REF_REGISTRY_ID_MAX;
        memcpy(buf, "worker.", 7);
        memcpy(buf + 7, worker, n);
        memcpy(buf + 7 + n, ".jobs", 6);
        subject = buf;
    }
    return block ? ref_effects_publish_block(fx, subject, p) : ref_effects_publish(fx, subject, p);
}

/* No worker now: wait (queue + wake timer), or give up after the bounded
 * wait with the selection's error code. still: the try changed nothing on
 * j, which was already waiting with its wake timer armed (tried_still). */
static int wait_for_worker(ref_sched *s, job *j, ref_sel_outcome outcome, int64_t now,
                           ref_effects *fx, int still)
{
    int code = ref_sel_outcome_error_code(outcome);
    if (j->wait_since < 0) {
        j->wait_since = now;
        still = 0;
    }
    int64_t give_up = cap_sat_add(j->wait_since, s->nw_wait);
    if (now >= give_up) {
        char msg[160];
        snprintf(msg, sizeof msg, "no worker for %.80s after %llds (%s)", nz(j->req->topic),
                 (long long)(s->nw_wait / NS_PER_SEC), ref_sel_outcome_name(outcome));
        return conclude(s, j, REF_JOB_FAILED, code, ref_sel_outcome_name(outcome), msg, now,
                        fx, "no-worker");
    }
    /* A job still waiting keeps its wake timer, due at most nw_retry after
     * it was armed and never past the give-up, and needs no record: its
     * state is the one on record. Re-armed and recorded at every try, each
     * drain cost O(waiting jobs) timer moves and journal records, and a
     * backlog made every heartbeat and freed slot that much dearer. */
    if (still)
        return CAP_OK;
    int was_waiting = j->waiting;
    TRY(waitq_add(s, j));
    int64_t at = cap_sat_add(now, s->nw_retry);
    if (at > give_up)
        at = give_up;
    TRY(arm(s, j, TK_WAKE, at, fx));
    if (!was_waiting)
        TRY(note(s, fx, now, "wait", j->job_id, "no worker (%s): waiting, give up at %lld",
                 ref_sel_outcome_name(outcome), (long long)give_up));
    return jrec(s, j, now, fx, "wait", 0);
}

/* Keeps the decision on the job. Its rule, snapshot and reason are those
 * of the decision kept last when it has the same origin (most jobs meet
 * the same rule): then no text is compared. */
static int keep_decision(ref_sched *s, job *j, const ref_safety_decision *d)
{
    j->decision = d->decision;
    if (d->origin && d->origin == s->icache_origin) {
        intern_ref(s, &j->rule_id, s->icache[IK_RULE]->s);
        intern_ref(s, &j->snapshot, s->icache[IK_SNAPSHOT]->s);
        intern_ref(s, &j->reason, s->icache[IK_REASON]->s);
    } else {
        TRY(intern_set(s, IK_RULE, &j->rule_id, d->rule_id));
        TRY(intern_set(s, IK_SNAPSHOT, &j->snapshot, d->policy_snapshot));
        TRY(intern_set(s, IK_REASON, &j->reason, d->reason));
        s->icache_origin = d->origin;
    }
    j->max_runtime_ns = 0;
    j->max_retries = -1;
    j->max_concurrent = 0;
    const Cordum__Agent__V1__BudgetConstraints *b = d->constraints ? d->constraints->budgets : NULL;
    if (b) {
        if (b->max_runtime_ms > 0)
            j->max_runtime_ns = b->max_runtime_ms > INT64_MAX / NS_PER_MS
                                    ? INT64_MAX
                                    : b->max_runtime_ms * NS_PER_MS;
        if (b->max_retries > 0)
            j->max_retries = b->max_retries;
        if (b->max_concurrent_jobs > 0)
            j->max_concurrent = b->max_concurrent_jobs;
    }
    return CAP_OK;
}

/* Asks the safety kernel about j (the full check; the approval fast path
 * is the caller's). The request is a view of j->req (unpacked, so no NULL
 * strings): no copy per check. */
static int kernel_check(ref_sched *s, const job *j, int64_t now, ref_safety_decision *d)
{
    Cordum__Agent__V1__PolicyCheckRequest pr;
    ref_safety_request_view(j->req, &pr);
    return ref_safety_check(s->safety, &pr, now, d);
}

static int park(ref_sched *s, job *j, int64_t now, ref_effects *fx)
{
    if (!j->hash[0]) /* the first hash stands across re-checks (cordum-ref 9) */
        TRY(ref_sched_request_hash(j->req, j->hash));
    TRY(set_str(&j->appr_snapshot, j->snapshot));
    j->appr = APPR_PENDING;
    TRY(set_state(j, REF_JOB_APPROVAL_REQUIRED, now));
    waitq_remove(s, j);
    j->wait_since = -1;
    TRY(disarm(j, TK_WAKE, fx));
    s->st.parked++;
    return jrec(s, j, now, fx, "park", 0);
}

static int check_reuse;
static uint64_t reuses_checked, reuses_wrong;

void ref_sched_check_reuse(int on)
{
    check_reuse = on;
}

uint64_t ref_sched_reuses_checked(void)
{
    return reuses_checked;
}

uint64_t ref_sched_reuses_wrong(void)
{
    return reuses_wrong;
}

static int plain_job(const job *j)
{
    return j->sel_topic && (!j->passed || !j->passed->n);
}

static int try_dispatch_m(ref_sched *s, job *j, int64_t now, ref_effects *fx, const char *snap_i);

static int try_dispatch(ref_sched *s, job *j, int64_t now, ref_effects *fx)
{
    return try_dispatch_m(s, j, now, fx, NULL);
}

/* The first instant after now at which time alone may change a failed
 * selection's answer (sel_miss): a registered worker's grace runs out, or
 * an open breaker's cool-down ends. INT64_MAX when neither can happen. */
static int64_t miss_until(const ref_sched *s)
{
    int64_t until = INT64_MAX, at;
    if (ref_registry_next_expiry(s->registry, &at) == 1 && at < until)
        until = at;
    if (ref_breaker_set_deadline(s->breakers, &at) == 1 && at < until)
        until = at;
    return until;
}

/* j is waiting in SCHEDULED with its wake timer armed: a try that keeps
 * its decision and finds it no worker (or its tenant still full) changes
 * nothing on it, so it is neither re-armed nor recorded. */
static int tried_still(const job *j)
{
    return j->state == REF_JOB_SCHEDULED && j->waiting && j->wake_at != 0;
}

/* Tries to move j (PENDING, SCHEDULED or FAILED_RETRYABLE) to a dispatch;
 * snap_i (may be NULL): the current snapshot as a shared string, which a
 * drain looks up once for its pass. */
static int try_dispatch_m(ref_sched *s, job *j, int64_t now, ref_effects *fx, const char *snap_i)
{
    int still = tried_still(j);
    if (j->state == REF_JOB_PENDING || j->state == REF_JOB_FAILED_RETRYABLE) {
        TRY(set_state(j, REF_JOB_SCHEDULED, now));
        TRY(jrec(s, j, now, fx, "schedule", 0)); /* every state change is a record */
    }
    if (j->state != REF_JOB_SCHEDULED)
        return CAP_OK;

    /* A decision is reused only while it is an allow under the current
     * snapshot (a job waiting for a worker keeps its allow, so its velocity
     * window counts it once); anything else asks again. */
    const char *snap = current_snapshot(s);
    int current = snap_i && j->snapshot ? j->snapshot == snap_i
                                        : strcmp(nz(j->snapshot), snap) == 0;
    if (!(is_allow(j->decision) && current)) {
        ref_safety_decision d;
        still = 0; /* judged again: the decision on record changes */
        if (j->appr == APPR_APPROVED && strcmp(nz(j->appr_snapshot), snap) == 0) {
            /* Approval fast path (cordum-ref 9): bound to the hash and the
             * snapshot; the decision is the one approved. */
            char h[65];
            TRY(ref_sched_request_hash(j->req, h));
            if (strcmp(h, j->hash) == 0) {
                j->decision = CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW;
                TRY(intern_set(s, IK_REASON, &j->reason, "approval granted"));
                TRY(intern_set(s, IK_SNAPSHOT, &j->snapshot, snap));
                goto allowed;
            }
        }
        TRY(kernel_check(s, j, now, &d));
        TRY(keep_decision(s, j, &d));
        int dec = d.decision;
        if (dec == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_THROTTLE &&
            ref_bug_active(REF_BUG_DISPATCH_ON_THROTTLE)) /* injected bug (ref_bugs.h): the */
            goto allowed; /* job goes on with its THROTTLE decision on record */
        if (dec == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REQUIRE_HUMAN ||
            (d.approval_required && is_allow(dec)))
            return park(s, j, now, fx);
        if (dec == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_THROTTLE) {
            /* Out of the worker queue until the backoff is over: left in it, the
             * job would be checked again at every heartbeat and freed slot, each
             * check counting in the rule's velocity window, which then never
             * empties while jobs wait. */
            waitq_remove(s, j);
            j->wait_since = -1;
            j->throttles++;
            s->st.throttled++;
            int64_t at = cap_sat_add(now, ref_sched_backoff(s->throttle_base, s->retry_max,
                                                            s->retry_jitter, j->throttles - 1,
                                                            &s->rand));
            TRY(arm(s, j, TK_WAKE, at, fx));
            TRY(note(s, fx, now, "throttle", j->job_id, "%s; re-check at %lld", j->reason,
                     (long long)at));
            return jrec(s, j, now, fx, "throttle", 0);
        }
        if (!is_allow(dec)) {
            /* DENY, and any decision outside the known five (cordum-ref 8.4). */
            int unknown = dec != CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY;
            char msg[REF_REASON_MAX + 64];
            snprintf(msg, sizeof msg, "%s: %s", decision_name(dec), nz(j->reason));
            return conclude(s, j, REF_JOB_DENIED, CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_SAFETY_DENIED,
                            unknown ? "safety_unknown" : "safety_denied", msg, now, fx, "deny");
        }
        /* An approved job judged again under a new snapshot (a retry after
         * a policy change) and allowed: its approval is rebound to that
         * snapshot, as ref_sched_approve rebinds one, so that a dispatch
         * always names the snapshot its approval stands under. */
        if (j->appr == APPR_APPROVED && strcmp(nz(j->appr_snapshot), snap) != 0)
            TRY(set_str(&j->appr_snapshot, snap));
    }
allowed:
    if (!still)
        TRY(wait_unquiet(s, j)); /* this try may change j: its entry says nothing now */
    /* The tenant's max_concurrent_jobs constraint (ALLOW_WITH_CONSTRAINTS). */
    if (j->max_concurrent > 0 && !j->counted &&
        ref_safety_active_jobs(s->safety, j->tenant) >= j->max_concurrent) {
        if (still)
            return CAP_OK; /* as wait_for_worker: its wake timer stands */
        TRY(waitq_add(s, j));
        TRY(arm(s, j, TK_WAKE, cap_sat_add(now, s->tenant_delay), fx));
        TRY(note(s, fx, now, "tenant-limit", j->job_id, "tenant %s at max_concurrent_jobs %d",
                 j->tenant, j->max_concurrent));
        return jrec(s, j, now, fx, "tenant-limit", 0);
    }
    sel_miss *miss = &s->miss;
    int plain = plain_job(j);
    int reuse = plain && miss->valid && miss->epoch == s->sel_epoch && now >= miss->now &&
                (now == miss->now || now < miss->until) &&
                miss->topic == j->sel_topic; /* shared strings: the same text, the same pointer */
    if (reuse && !check_reuse) {
        TRY(wait_for_worker(s, j, miss->outcome, now, fx, still));
        if (!still)
            TRY(wait_quiet(s, j));
        return CAP_OK;
    }
    ref_sel_result sel;
    const char *const *pools;
    size_t n_pools;
    route_pools(s, j, &pools, &n_pools);
    exclude_ctx ec = {s, now};
    ref_sel_request sr = {.job = j->req, .pools = pools, .n_pools = n_pools,
                          .exclude = j->passed ? (const char *const *)j->passed->id : NULL,
                          .n_exclude = j->passed ? j->passed->n : 0,
                          .exclude_fn = exclude_worker, .exclude_ctx = &ec, .first_fit = 1,
                          .id_by_tag = 1};
    TRY(ref_registry_select(s->registry, now, &sr, &sel));
    if (reuse) { /* check_reuse: the outcome reused must be this one (which is used) */
        reuses_checked++;
        reuses_wrong += sel.outcome != miss->outcome;
    }
    if (sel.outcome != REF_SEL_OK) {
        if (plain) {
            miss->valid = 1;
            miss->epoch = s->sel_epoch;
            miss->now = now;
            miss->until = miss_until(s);
            intern_ref(s, &miss->topic, j->sel_topic);
            miss->outcome = sel.outcome;
        }
        TRY(wait_for_worker(s, j, sel.outcome, now, fx, still));
        if (plain && !still)
            TRY(wait_quiet(s, j));
        return CAP_OK;
    }
    return do_dispatch(s, j, &sel, now, fx);
}

static int drain_pass(ref_sched *s, int64_t now, ref_effects *fx);

/* Tries every waiting job, in priority order, once. */
static int drain(ref_sched *s, int64_t now, ref_effects *fx)
{
    if (s->drain_depth == DRAIN_NEST_MAX) {
        s->drain_again = 1;
        return CAP_OK;
    }
    s->drain_depth++;
    int rc;
    do {
        s->drain_again = 0;
        rc = drain_pass(s, now, fx);
    } while (rc >= 0 && s->drain_again);
    s->drain_depth--;
    return rc;
}

/* Whether a try of the job of e at now would change nothing (wentry):
 * its last try failed a plain selection that the failed selection on
 * hand answers (try_dispatch_m's reuse), under the current snapshot, and
 * it is not yet time to give up. */
static int quiet_now(const ref_sched *s, const wentry *e, const char *snap_i, int64_t now)
{
    const sel_miss *m = &s->miss;
    return e->quiet_topic && e->quiet_topic == m->topic && m->valid && snap_i &&
           e->quiet_snap == snap_i && now < e->give_up && m->epoch == s->sel_epoch &&
           now >= m->now && (now == m->now || now < m->until);
}

/* Whether entry a, read by a pass that began at removal count ops_at, is
 * entry b as the pass began (its removal since aside). */
static int same_entry(const wentry *a, const wentry *b, uint64_t ops_at)
{
    return a->j == b->j && a->seq == b->seq && a->rank == b->rank &&
           a->quiet_topic == b->quiet_topic && a->quiet_snap == b->quiet_snap &&
           a->give_up == b->give_up && (a->dead_at && a->dead_at <= ops_at) == (b->dead_at != 0);
}

/* Whether no entry the pass p has yet to reach would move if tried: every
 * waiting entry is marked quiet with the pair (wq_topic, wq_snap), which
 * the failed selection on hand answers under the current snapshot, and
 * none has reached its give-up (quiet_now, for all of them at once). The
 * entries the pass has left are then waiting ones, or tombstones of jobs
 * no longer waiting, as p reads them in place (waitq_touch). When only the
 * lower bound on the give-ups stands in the way, it is worked out afresh,
 * once a pass. */
static int waitq_all_quiet(ref_sched *s, wpass *p, const char *snap_i, int64_t now)
{
    const sel_miss *m = &s->miss;
    if (!s->wq_counted || s->wq_counted != s->n_wait || !m->valid || m->topic != s->wq_topic ||
        !snap_i || s->wq_snap != snap_i || m->epoch != s->sel_epoch || now < m->now ||
        (now != m->now && now >= m->until))
        return 0;
    if (now < s->wq_min_give_up)
        return 1;
    if (p->min_checked)
        return 0;
    p->min_checked = 1;
    int64_t lo = INT64_MAX;
    for (size_t i = 0; i < s->wq_len; i++) {
        const wentry *e = &s->waitq[i];
        if (!e->dead_at && e->era == s->wq_era && e->give_up < lo)
            lo = e->give_up;
    }
    s->wq_min_give_up = lo;
    return now < lo;
}

/* One pass of drain over the entries the queue held when it began, in
 * order (wpass). */
static int drain_pass(ref_sched *s, int64_t now, ref_effects *fx)
{
    if (!s->n_wait)
        return CAP_OK;
    waitq_compact(s);
    int rc = CAP_OK;
    char *snap_i = NULL;
    /* The snapshot is looked up once for the pass (not as IK_SNAPSHOT,
     * whose cached string keep_decision reads): each job's is then one
     * pointer compare. A text over 4096 bytes would be cut: compared. */
    const char *cur = current_snapshot(s);
    size_t n_cur = strnlen(cur, 4097);
    if (n_cur <= 4096) {
        istr *e = intern_find(s, cur, n_cur);
        if (!e)
            return CAP_ENOMEM;
        e->refs++;
        snap_i = e->s;
    }
    wpass *p = &s->passes[s->n_passes++]; /* drain nests at most DRAIN_NEST_MAX deep */
    *p = (wpass){.end = s->wq_len, .ops_at = s->wq_ops};
    /* The self-check keeps the copy the pass would take were it not
     * reading in place, and every entry read must be as in that copy. It
     * passes over nothing unread (the dead front, the quiet rest): it tries
     * what the pass would not, and counts it wrong if one of those moves. */
    wentry *start = NULL;
    if (check_reuse) {
        start = malloc(p->end * sizeof *start);
        if (!start)
            rc = CAP_ENOMEM;
        else
            memcpy(start, s->waitq, p->end * sizeof *start);
    }
    int all_quiet = 0; /* the self-check: waitq_all_quiet said so at some entry */
    for (size_t i = 0; i < p->end && rc >= 0; i++) {
        /* Read in place, the entries before wq_head are dead, and none has
         * come back (that would have moved them): none to try. */
        int dead_front = !p->batch && i < s->wq_head;
        if (dead_front && !check_reuse) {
            if ((i = s->wq_head) >= p->end)
                break;
            dead_front = 0;
        }
        p->cur = i;
        /* Nothing past here would move: the pass is over. */
        if (!p->batch && !all_quiet && waitq_all_quiet(s, p, snap_i, now)) {
            if (!check_reuse)
                break;
            all_quiet = 1;
        }
        const wentry e = p->batch ? p->batch[i - p->base] : s->waitq[i];
        if (start) {
            reuses_checked++;
            reuses_wrong += !same_entry(&e, &start[i], p->ops_at);
        }
        if (e.dead_at && e.dead_at <= p->ops_at)
            continue; /* it had left before the pass began */
        /* A job whose try would change nothing is passed over unread;
         * with the self-check on, it is tried and must change nothing. */
        int quiet = quiet_now(s, &e, snap_i, now);
        if (quiet && !check_reuse)
            continue;
        /* Records never move or go back to the allocator while the
         * scheduler lives, and a freed one has seq 0 (job_free): the same
         * seq is the same job. */
        job *j = e.j;
        if (j->seq == e.seq && j->waiting && !is_terminal(j)) {
            size_t before = ref_effects_count(fx);
            int64_t wake = j->wake_at;
            int state = j->state;
            if (dead_front || all_quiet) { /* the pass would not have tried it */
                reuses_checked++;
                reuses_wrong += dead_front || !quiet;
            }
            rc = try_dispatch_m(s, j, now, fx, snap_i);
            if (quiet) {
                reuses_checked++;
                reuses_wrong += ref_effects_count(fx) != before || j->wake_at != wake ||
                                j->state != state || !j->waiting;
            }
        }
    }
    free(start);
    free(p->batch);
    s->n_passes--;
    intern_drop(s, snap_i);
    return rc;
}

/* ---- retries and timeouts ------------------------------------------- */

/* The current attempt failed in a way worth retrying (FAILED_RETRYABLE,
 * the worker lost): attempt + 1 after a backoff, or FAILED when the retry
 * cap is spent. */
static int retry_or_fail(ref_sched *s, job *j, int code_enum, const char *why, int64_t now,
                         ref_effects *fx)
{
    j->done = 1;
    slot_release(s, j);
    /* A tenant's active jobs are those with an attempt in flight: a job
     * waiting for its next attempt gives its place back and takes one again
     * when it is dispatched. Were the waiting jobs counted, enough of them
     * would fill the tenant's max_concurrent_jobs and throttle one another
     * for ever, nothing left running to free a place. */
    if (j->counted) {
        ref_safety_job_ended(s->safety, j->tenant);
        j->counted = 0;
    }
    TRY(disarm(j, TK_WATCH, fx));
    TRY(set_state(j, REF_JOB_FAILED_RETRYABLE, now));
    uint32_t cap = j->max_retries >= 0 ? (uint32_t)j->max_retries : s->max_retries;
    if (j->retries < cap) {
        j->retries++;
        s->st.retries++;
        int64_t at = cap_sat_add(now, ref_sched_backoff(s->retry_base, s->retry_max, s->retry_jitter,
                                                        j->retries - 1, &s->rand));
        TRY(arm(s, j, TK_WAKE, at, fx));
        TRY(note(s, fx, now, "retry", j->job_id, "%s; attempt %llu at %lld (retry %u of %u)", why,
                 (unsigned long long)j->attempt + 1, (long long)at, j->retries, cap));
        TRY(jrec(s, j, now, fx, "retry", 0));
        return drain(s, now, fx);
    }
    char msg[REF_REASON_MAX + 64];
    snprintf(msg, sizeof msg, "%s; %u retr%s spent", why, cap, cap == 1 ? "y" : "ies");
    return conclude(s, j, REF_JOB_FAILED, code_enum ? code_enum
                                                    : CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_RESOURCE_EXHAUSTED,
                    "max_retries_exceeded", msg, now, fx, "retries-exhausted");
}

static int breaker_record(ref_sched *s, job *j, ref_breaker_outcome o, int64_t now, ref_effects *fx)
{
    if (!j->worker || !j->worker[0])
        return CAP_OK;
    ref_breaker_event ev;
    worker_slots *ws = ws_of(j);
    s->sel_epoch++;
    TRY(ref_breaker_set_record_memo(s->breakers, j->worker, ws ? &ws->brk : NULL, now, j->ticket,
                                    o, &ev));
    TRY(publish_alert(s, &ev, now, fx));
    return arm_housekeeping(s, fx);
}

static int on_watch(ref_sched *s, job *j, int64_t now, ref_effects *fx)
{
    j->watch_at = 0;
    if (j->state != REF_JOB_DISPATCHED && j->state != REF_JOB_RUNNING)
        return REF_SCHED_IGNORED;
    int dispatched = j->state == REF_JOB_DISPATCHED;
    int64_t dto, rto;
    timeouts_for(s, j, &dto, &rto);
    char msg[160];
    snprintf(msg, sizeof msg, "timeout: %s > %llds", dispatched ? "DISPATCHED" : "RUNNING",
             (long long)((dispatched ? dto : rto) / NS_PER_SEC));
    TRY(breaker_record(s, j, REF_BREAKER_TIMEOUT, now, fx));
    TRY(publish_cancel(s, j, msg, s->id, now, fx));
    TRY(conclude(s, j, REF_JOB_TIMEOUT, CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_TIMEOUT,
                 dispatched ? "dispatch_timeout" : "running_timeout", msg, now, fx, "timeout"));
    return REF_SCHED_APPLIED;
}

static int on_wake(ref_sched *s, job *j, int64_t now, ref_effects *fx)
{
    j->wake_at = 0;
    if (is_terminal(j) || j->state == REF_JOB_APPROVAL_REQUIRED)
        return REF_SCHED_IGNORED;
    TRY(try_dispatch(s, j, now, fx));
    return REF_SCHED_APPLIED;
}

/* ---- saga ----------------------------------------------------------- */

/* Admits a new job (a submit, or a compensation) and runs it; k: the key
 * of its job id, or NULL (job_new). */
static int admit(ref_sched *s, const job_request *req, const id_key *k, const char *trace_id,
                 const char *saga_wf, int64_t now, ref_effects *fx);

/* Hands out the workflow's next compensation, or closes the rollback. */
static int saga_step(ref_sched *s, const char *wf, const char *trace_id, int64_t now,
                     ref_effects *fx)
{
    job_request *comp = NULL;
    int r = ref_saga_next(s->saga, wf, &comp);
    TRY(r);
    TRY(saga_rec(s, now, fx, "next", wf, comp ? comp->job_id : "", 0));
    if (r == REF_SAGA_NEXT_COMPLETE) {
        ref_saga_summary sum;
        if (ref_saga_summary_get(s->saga, wf, &sum) == CAP_OK)
            TRY(note(s, fx, now, "rollback-done", "",
                     "workflow %s: %zu compensated, %zu failed, %zu denied", wf, sum.succeeded,
                     sum.failed, sum.denied));
        return CAP_OK;
    }
    s->st.compensations++;
    int rc = CAP_OK;
    if (!find_job(s, comp->job_id)) /* handed out again after a restart: already admitted */
        rc = admit(s, comp, NULL, trace_id, wf, now, fx);
    cap_message_free(&comp->base);
    return rc;
}

/* The saga hooks of a job that just ended; req is its request (already
 * detached from j). */
static int saga_after_terminal(ref_sched *s, job *j, const job_request *req, int64_t now,
                               ref_effects *fx)
{
    if (!j->in_wf && !(j->saga_wf && j->saga_wf[0]))
        return CAP_OK; /* nothing to do, known without reading the request */
    const char *wf = req ? nz(req->workflow_id) : "";
    if (j->saga_wf && j->saga_wf[0]) {
        ref_saga_outcome o = ref_saga_outcome_of_status((Cordum__Agent__V1__JobStatus)j->state);
        TRY(ref_saga_report(s->saga, j->saga_wf, j->job_id, o));
        TRY(saga_rec(s, now, fx, "report", j->saga_wf, j->job_id, (int)o));
        return saga_step(s, j->saga_wf, j->trace_id, now, fx);
    }
    if (!wf[0])
        return CAP_OK;
    if (j->state == REF_JOB_SUCCEEDED) {
        int r = ref_saga_record(s->saga, req, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED);
        TRY(r);
        if (r == REF_SAGA_REC_PUSHED)
            TRY(saga_rec(s, now, fx, "record", wf, j->job_id, 0));
        else if (r == REF_SAGA_REC_LATE)
            TRY(publish_dlq(s, j, REF_JOB_SUCCEEDED, 0, "saga_late_success",
                            "succeeded after its workflow's rollback finished; not compensated",
                            now, fx));
        return CAP_OK;
    }
    if (j->state == REF_JOB_FAILED_FATAL) {
        int r = ref_saga_trigger(s->saga, wf, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_FATAL);
        TRY(r);
        if (r != REF_SAGA_STARTED)
            return note(s, fx, now, "rollback-skipped", j->job_id,
                        "workflow %s: a rollback already %s", wf,
                        r == REF_SAGA_ALREADY_RUNNING ? "runs" : "ran");
        s->st.rollbacks_started++;
        TRY(saga_rec(s, now, fx, "trigger", wf, j->job_id, 0));
        return saga_step(s, wf, j->trace_id, now, fx);
    }
    return CAP_OK;
}

/* ---- inputs --------------------------------------------------------- */

static int admit(ref_sched *s, const job_request *req, const id_key *k, const char *trace_id,
                 const char *saga_wf, int64_t now, ref_effects *fx)
{
    /* The job takes its copies before room is made: trace_id and saga_wf
     * may belong to the terminal job that make_room evicts (a compensation
     * admitted as the job it follows ends). */
    prefetch_victim(s);
    job *j = job_new(s, req, k, trace_id, s->next_seq);
    if (!j)
        return CAP_ENOMEM;
    if (saga_wf && set_str(&j->saga_wf, saga_wf)) {
        job_free(s, j);
        return CAP_ENOMEM;
    }
    int rc = make_room(s, now, fx);
    if (!rc)
        rc = link_job(s, j);
    if (rc) {
        job_free(s, j);
        return rc;
    }
    TRY(set_state(j, REF_JOB_PENDING, now));
    s->st.submitted++;
    TRY(jrec(s, j, now, fx, saga_wf ? "compensation" : "submit", 1));
    return try_dispatch(s, j, now, fx);
}

/* The answer to a duplicate submit: the existing job's current status,
 * error 205, on the duplicate's trace. */
static int answer_duplicate(ref_sched *s, const job *existing, const char *trace_id,
                            const char *dup_job_id, const char *why, int64_t now, ref_effects *fx)
{
    char msg[REF_SCHED_ID_MAX * 2 + 96];
    snprintf(msg, sizeof msg, "duplicate %s: submitted as %.255s, existing job %.255s", why,
             dup_job_id, existing->job_id);
    cap_packet *p = mk_result(s, existing, trace_id, ref_jobstate_wire(existing->state),
                              CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_DUPLICATE,
                              "ERROR_CODE_JOB_DUPLICATE", msg, now, 0);
    if (!p)
        return CAP_ENOMEM;
    s->st.duplicates++;
    TRY(note(s, fx, now, "duplicate", existing->job_id, "%s", msg));
    TRY(ref_effects_publish(fx, REF_SCHED_SUBJECT_RESULT, p));
    return REF_SCHED_APPLIED;
}

static int on_submit(ref_sched *s, const cap_packet *p, const ref_dedupe_result *dd, int64_t now,
                     ref_effects *fx)
{
    const job_request *req = p->job_request;
    const char *job_id = nz(req->job_id);
    id_key k = key_of(job_id); /* for the look-up and the new job alike */
    if (!k.n || k.n > REF_SCHED_ID_MAX) {
        TRY(note(s, fx, now, "reject", "", "submit without a job_id, or one over %d bytes",
                 REF_SCHED_ID_MAX));
        return REF_SCHED_REJECTED;
    }
    job *existing = find_job_h(s, k.id, k.n, k.h);
    if (existing)
        return answer_duplicate(s, existing, p->trace_id, job_id, "job_id", now, fx);
    if (dd && dd->verdict == REF_DEDUPE_DUPLICATE) /* same logical request, evicted job */
        return REF_SCHED_DUPLICATE;
    if (req->meta && req->meta->idempotency_key && req->meta->idempotency_key[0]) {
        size_t n = strlen(effective_tenant(req)) + strlen(req->meta->idempotency_key) + 2;
        char *key = malloc(n);
        if (!key)
            return CAP_ENOMEM;
        snprintf(key, n, "%s\x1f%s", effective_tenant(req), req->meta->idempotency_key);
        job *same = ref_strmap_get(&s->by_idem, key);
        free(key);
        if (same)
            return answer_duplicate(s, same, p->trace_id, job_id, "idempotency_key", now, fx);
    }
    if (!req->topic || !req->topic[0]) {
        /* No job: the answer names the defect (cordum-ref 3 step 0). */
        job tmp = {.job_id = (char *)job_id, .trace_id = p->trace_id};
        cap_packet *r = mk_result(s, &tmp, p->trace_id, REF_JOB_FAILED,
                                  CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_INVALID_INPUT,
                                  "invalid_request", "job request without a topic", now, 0);
        if (!r)
            return CAP_ENOMEM;
        TRY(ref_effects_publish(fx, REF_SCHED_SUBJECT_RESULT, r));
        return REF_SCHED_REJECTED;
    }
    int rc = admit(s, req, &k, p->trace_id, NULL, now, fx);
    if (rc == CAP_EFULL) {
        job tmp = {.job_id = (char *)job_id, .trace_id = p->trace_id};
        cap_packet *r = mk_result(s, &tmp, p->trace_id, REF_JOB_FAILED,
                                  CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_RESOURCE_EXHAUSTED,
                                  "job_table_full", "every job slot holds a live job", now, 0);
        if (!r)
            return CAP_ENOMEM;
        TRY(ref_effects_publish(fx, REF_SCHED_SUBJECT_RESULT, r));
        return REF_SCHED_REJECTED;
    }
    TRY(rc);
    return REF_SCHED_APPLIED;
}

/* Fencing: 1 when a packet about j carries the current dispatch identity
 * (or, without one, comes from the assigned worker) and the current
 * attempt is still open. */
static int current_attempt(const job *j, const dispatch_identity *d, const char *worker_id)
{
    if (!j->attempt || j->done || (j->state != REF_JOB_DISPATCHED && j->state != REF_JOB_RUNNING))
        return 0;
    if (ref_bug_active(REF_BUG_ACCEPT_STALE_ATTEMPT)) /* injected bug (ref_bugs.h) */
        return 1;
    if (d)
        return strcmp(nz(d->dispatch_id), j->dispatch_id) == 0 && d->attempt == j->attempt &&
               (!d->assigned_worker_id || !d->assigned_worker_id[0] ||
                strcmp(d->assigned_worker_id, nz(j->worker)) == 0);
    return worker_id && strcmp(worker_id, nz(j->worker)) == 0;
}

static int stale(ref_sched *s, const job *j, const char *what, const dispatch_identity *d,
                 int64_t now, ref_effects *fx)
{
    s->st.stale++;
    TRY(note(s, fx, now, "stale", j->job_id,
             "%s for attempt %llu (%s) ignored: current attempt %llu, state %s", what,
             d ? (unsigned long long)d->attempt : 0ULL, d ? nz(d->dispatch_id) : "no identity",
             (unsigned long long)j->attempt, ref_jobstate_name(j->state)));
    return REF_SCHED_STALE;
}

/* A result about job j (NULL: none of that id). */
static int on_result(ref_sched *s, job *j, const job_result *r, int64_t now, ref_effects *fx)
{
    if (!j)
        return REF_SCHED_IGNORED;
    if (is_terminal(j)) {
        TRY(note(s, fx, now, "late-result", j->job_id, "result %d for a %s job ignored (07 L49)",
                 r->status, ref_jobstate_name(j->state)));
        return REF_SCHED_IGNORED;
    }
    if (!current_attempt(j, r->dispatch, r->worker_id))
        return stale(s, j, "result", r->dispatch, now, fx);
    int status = r->status;
    if (status == REF_JOB_FAILED_FATAL && ref_bug_active(REF_BUG_RETRY_FATAL)) /* injected bug */
        status = REF_JOB_FAILED_RETRYABLE;
    if (!ref_jobstate_is_terminal(status) && status != REF_JOB_FAILED_RETRYABLE) {
        TRY(note(s, fx, now, "reject", j->job_id, "result with non-final status %d", r->status));
        return REF_SCHED_REJECTED;
    }
    const char *msg = nz(r->error_message);
    switch (status) {
    case REF_JOB_SUCCEEDED:
        TRY(breaker_record(s, j, REF_BREAKER_SUCCESS, now, fx));
        TRY(finish(s, j, REF_JOB_SUCCEEDED, now, fx, "result"));
        break;
    case REF_JOB_FAILED_RETRYABLE: {
        /* A worker refusing for capacity (201) is not a failing worker. */
        int busy = r->error_code_enum == CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_RESOURCE_EXHAUSTED;
        TRY(breaker_record(s, j, busy ? REF_BREAKER_ABANDONED : REF_BREAKER_FAILURE, now, fx));
        char why[REF_REASON_MAX];
        snprintf(why, sizeof why, "FAILED_RETRYABLE from %s: %.300s", nz(j->worker), msg);
        TRY(retry_or_fail(s, j, r->error_code_enum, why, now, fx));
        break;
    }
    default: {
        ref_breaker_outcome o = status == REF_JOB_CANCELLED ? REF_BREAKER_ABANDONED
                                : status == REF_JOB_TIMEOUT ? REF_BREAKER_TIMEOUT
                                                            : REF_BREAKER_FAILURE;
        TRY(breaker_record(s, j, o, now, fx));
        const char *code = r->error_code && r->error_code[0] ? r->error_code
                                                             : ref_jobstate_name(status);
        TRY(publish_dlq(s, j, status, r->error_code_enum, code, msg, now, fx));
        TRY(finish(s, j, status, now, fx, "result"));
        break;
    }
    }
    return REF_SCHED_APPLIED;
}

static int on_progress(ref_sched *s, job *j, const job_progress *pr, int64_t now, ref_effects *fx)
{
    if (!j || is_terminal(j))
        return REF_SCHED_IGNORED;
    if (!current_attempt(j, pr->dispatch, NULL) &&
        !(pr->dispatch == NULL && j->attempt && !j->done &&
          (j->state == REF_JOB_DISPATCHED || j->state == REF_JOB_RUNNING)))
        return stale(s, j, "progress", pr->dispatch, now, fx);
    if (pr->result_ptr && pr->result_ptr[0])
        TRY(set_str(&j->memo, pr->result_ptr));
    if (j->state == REF_JOB_DISPATCHED) {
        TRY(set_state(j, REF_JOB_RUNNING, now));
        int64_t dto, rto;
        timeouts_for(s, j, &dto, &rto);
        TRY(arm(s, j, TK_WATCH, cap_sat_add(now, rto), fx));
        TRY(jrec(s, j, now, fx, "running", 0));
    } else if (pr->result_ptr && pr->result_ptr[0]) {
        TRY(jrec(s, j, now, fx, "checkpoint", 0));
    }
    return REF_SCHED_APPLIED;
}

static int do_cancel(ref_sched *s, job *j, const char *reason, const char *by, int64_t now,
                     ref_effects *fx, int depth)
{
    if (!ref_jobstate_can_cancel(j->state))
        return REF_SCHED_IGNORED;
    char msg[REF_REASON_MAX];
    snprintf(msg, sizeof msg, "cancelled by %.120s: %.300s", by && by[0] ? by : "operator",
             nz(reason));
    if (j->holds_slot && (j->state == REF_JOB_DISPATCHED || j->state == REF_JOB_RUNNING)) {
        TRY(publish_cancel(s, j, reason, by, now, fx));
        TRY(breaker_record(s, j, REF_BREAKER_ABANDONED, now, fx));
    }
    TRY(publish_result(s, j, REF_JOB_CANCELLED, 0, "cancelled", msg, now, fx));
    /* What the cascade needs of j, taken first: finishing j may admit the
     * next compensation of its workflow, and that may evict j. */
    uint64_t from = j->seq + 1;
    char *id = strdup(j->job_id);
    if (!id)
        return CAP_ENOMEM;
    int rc = finish(s, j, REF_JOB_CANCELLED, now, fx, "cancel");
    /* Cascade to the active children (cap-spec 08), in admission order.
     * Depth is bounded by the job count; the guard only stops a cycle of
     * parent ids from recursing without end. */
    if (rc >= 0 && depth <= 64) {
        char parent_msg[REF_SCHED_ID_MAX + 32];
        snprintf(parent_msg, sizeof parent_msg, "parent %.255s cancelled", id);
        uint64_t upto = s->next_seq;
        for (uint64_t seq = from; seq < upto && rc >= 0; seq++) {
            job *c = find_seq(s, seq);
            if (c && !is_terminal(c) && strcmp(nz(c->req->parent_job_id), id) == 0)
                rc = do_cancel(s, c, parent_msg, by, now, fx, depth + 1);
        }
    }
    free(id);
    return rc < 0 ? rc : REF_SCHED_APPLIED;
}

static int on_cancel(ref_sched *s, job *j, const job_cancel *c, int64_t now, ref_effects *fx)
{
    if (!j)
        return REF_SCHED_IGNORED;
    if (!ref_jobstate_can_cancel(j->state)) {
        TRY(note(s, fx, now, "cancel-refused", j->job_id, "job is %s (07 L50)",
                 ref_jobstate_name(j->state)));
        return REF_SCHED_IGNORED;
    }
    if (c->dispatch && !current_attempt(j, c->dispatch, NULL))
        return stale(s, j, "cancel", c->dispatch, now, fx);
    return do_cancel(s, j, c->reason, c->requested_by, now, fx, 0);
}

static int on_heartbeat(ref_sched *s, const Cordum__Agent__V1__Heartbeat *hb, int64_t now,
                        ref_effects *fx)
{
    cap_diag d;
    void *tag = NULL; /* the worker's in-flight list, when the registry has it */
    int r = ref_registry_heartbeat_tag(s->registry, now, hb, &tag, &d);
    s->sel_epoch++;
    if (r < 0) {
        if (r == CAP_ENOMEM)
            return r;
        TRY(note(s, fx, now, "heartbeat-refused", "", "%s", d.reason));
        return REF_SCHED_REJECTED;
    }
    TRY(arm_housekeeping(s, fx));
    /* A heartbeat from a worker holding exactly one of our jobs counts as
     * that job's start. Its last_memo is not taken as the job's checkpoint:
     * a heartbeat names no job and carries no dispatch identity, and the
     * worker's last memo may be about a job it finished before (the
     * simulator's `checkpoint` invariant caught that memo of another job
     * handed to a retry). A checkpoint comes only in a JobProgress of the
     * job, past the fencing compare (on_progress). */
    worker_slots *w = tag ? tag : slots_find(s, hb->worker_id);
    if (w && w->n == 1 && hb->active_jobs > 0) {
        job *j = w->jobs[0];
        int changed = 0;
        if (ref_bug_active(REF_BUG_CHECKPOINT_FROM_HEARTBEAT) /* injected bug (ref_bugs.h) */ &&
            hb->last_memo && hb->last_memo[0] && strcmp(nz(j->memo), hb->last_memo) != 0) {
            TRY(set_str(&j->memo, hb->last_memo));
            changed = 1;
        }
        if (j->state == REF_JOB_DISPATCHED && !j->done) {
            TRY(set_state(j, REF_JOB_RUNNING, now));
            int64_t dto, rto;
            timeouts_for(s, j, &dto, &rto);
            TRY(arm(s, j, TK_WATCH, cap_sat_add(now, rto), fx));
            changed = 1;
        }
        if (changed)
            TRY(jrec(s, j, now, fx, "checkpoint", 0));
    }
    TRY(drain(s, now, fx));
    return REF_SCHED_APPLIED;
}

static int on_handshake(ref_sched *s, const cap_packet *p, int64_t now, ref_effects *fx)
{
    cap_diag d;
    int32_t version = 0;
    int r = ref_registry_handshake(s->registry, now, p->sender_id, p->handshake, &version, &d);
    s->sel_epoch++;
    if (r == CAP_ENOMEM)
        return r;
    if (r < 0) {
        TRY(note(s, fx, now, "handshake-refused", "", "%s: %s", nz(p->sender_id),
                 r == CAP_EVERSION ? "no wire version in common" : d.reason));
        return REF_SCHED_REJECTED;
    }
    TRY(arm_housekeeping(s, fx));
    TRY(drain(s, now, fx));
    return REF_SCHED_APPLIED;
}

/* Workers past their grace window: their open attempts are retried. */
static int on_registry_timer(ref_sched *s, int64_t now, ref_effects *fx)
{
    s->reg_timer = 0;
    ref_registry_lost lost[16];
    int n;
    while ((n = ref_registry_expire(s->registry, now, lost, 16)) > 0) {
        s->sel_epoch++;
        for (int i = 0; i < n; i++) {
            TRY(note(s, fx, now, "worker-lost", "", "worker %s: no heartbeat since %lld",
                     lost[i].worker_id, (long long)lost[i].last_seen));
            ref_breaker_set_remove(s->breakers, lost[i].worker_id);
            worker_slots *w = slots_find(s, lost[i].worker_id);
            while (w && w->n > 0) {
                job *j = w->jobs[0];
                TRY(publish_cancel(s, j, "worker lost", s->id, now, fx));
                char why[300];
                snprintf(why, sizeof why, "worker %.255s lost", lost[i].worker_id);
                TRY(retry_or_fail(s, j, CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_WORKER_UNAVAILABLE,
                                  why, now, fx));
                w = slots_find(s, lost[i].worker_id);
            }
        }
        if (n < 16)
            break;
    }
    TRY(n);
    TRY(arm_housekeeping(s, fx));
    return REF_SCHED_APPLIED;
}

static int on_breaker_timer(ref_sched *s, int64_t now, ref_effects *fx)
{
    s->brk_timer = 0;
    ref_breaker_event evs[16];
    int n;
    while ((n = ref_breaker_set_advance(s->breakers, now, evs, 16)) > 0) {
        s->sel_epoch++;
        for (int i = 0; i < n; i++)
            TRY(publish_alert(s, &evs[i], now, fx));
        if (n < 16)
            break;
    }
    TRY(n);
    TRY(arm_housekeeping(s, fx));
    TRY(drain(s, now, fx));
    return REF_SCHED_APPLIED;
}

int ref_sched_on_packet(ref_sched *s, const char *subject, const cap_packet *p,
                        const uint8_t *wire, size_t len, int64_t now, ref_effects *fx)
{
    if (!s || !subject || !p || !fx)
        return CAP_EINVAL;
    /* our own publish, seen on a subject we listen to (another sender's id
     * mostly differs at its first byte: no call then) */
    if (p->sender_id && p->sender_id[0] == s->id[0] && strcmp(p->sender_id, s->id) == 0)
        return REF_SCHED_IGNORED;
    switch (p->payload_case) {
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT:
        return strcmp(subject, REF_SCHED_SUBJECT_HEARTBEAT) == 0 ? on_heartbeat(s, p->heartbeat, now, fx)
                                                                 : REF_SCHED_IGNORED;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HANDSHAKE:
        return on_handshake(s, p, now, fx);
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST:
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT:
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS:
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL:
        break;
    default:
        return REF_SCHED_IGNORED;
    }
    int is_submit = p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    if (is_submit && strcmp(subject, REF_SCHED_SUBJECT_SUBMIT) != 0)
        return REF_SCHED_IGNORED; /* a dispatch on a worker subject is not ours to take */
    /* The job a result, progress or cancel is about (or the id a submit
     * names): its cell in the id index is asked of the cache first, and
     * the job found once the replay guard has worked out the packet's
     * keys, then its record asked for while the guard decides. The guard
     * leaves the job table as it is, so the order changes nothing else. */
    const char *about = p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT
                            ? p->job_result->job_id
                        : p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS
                            ? p->job_progress->job_id
                        : p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL
                            ? p->job_cancel->job_id
                            : NULL;
    const char *named = about ? about : is_submit ? p->job_request->job_id : NULL;
    id_key ak = named ? key_of(named) : (id_key){NULL, 0, 0};
    if (named)
        ref_idindex_prefetch(&s->by_id, ak.h);

    /* The replay guard (cap-spec 19): an exact redelivery has no second
     * side effect; an expired or conflicting signed packet is refused. */
    uint8_t *own = NULL;
    if (!wire || !len) {
        TRY(cap_encode(&p->base, &own, &len));
        wire = own;
    }
    ref_dedupe_probe probe;
    int v = ref_dedupe_probe_packet_warm(s->dedupe, p, wire, len, &probe);
    free(own);
    TRY(v);
    job *j = NULL;
    if (about) {
        j = find_job_h(s, ak.id, ak.n, ak.h);
        if (j) {
#pragma GCC unroll 16 /* a prefetch per line, no loop */
            for (size_t off = 0; off < sizeof *j; off += 64)
                __builtin_prefetch((const char *)j + off);
        }
    }
    ref_dedupe_result dd;
    v = ref_dedupe_admit(s->dedupe, &probe, now, &dd);
    TRY(v);
    if (v == REF_DEDUPE_FIRST && probe.has_expiry)
        TRY(replay_rec(s, &probe, now, fx));
    if (v == REF_DEDUPE_CONFLICT && ref_bug_active(REF_BUG_ACCEPT_CONFLICT))
        v = REF_DEDUPE_FIRST; /* injected bug (ref_bugs.h): the guard's refusal ignored */
    if (v == REF_DEDUPE_EXPIRED || v == REF_DEDUPE_CONFLICT) {
        if (v == REF_DEDUPE_EXPIRED)
            s->st.replays_expired++;
        else
            s->st.replays_conflicting++;
        TRY(note(s, fx, now, "replay-refused", "", "%s packet from %s: %s", cap_packet_payload_name(p),
                 nz(p->sender_id), ref_dedupe_verdict_name(v)));
        return REF_SCHED_REJECTED;
    }
    if (v == REF_DEDUPE_DUPLICATE && !(is_submit && dd.matched == REF_DEDUPE_KEY_JOB_REQUEST))
        return REF_SCHED_DUPLICATE;

    if (is_submit)
        return on_submit(s, p, v == REF_DEDUPE_DUPLICATE ? &dd : NULL, now, fx);
    switch (p->payload_case) {
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT:
        return on_result(s, j, p->job_result, now, fx);
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS:
        return on_progress(s, j, p->job_progress, now, fx);
    default:
        return on_cancel(s, j, p->job_cancel, now, fx);
    }
}

int ref_sched_on_timer(ref_sched *s, uint64_t id, int64_t now, ref_effects *fx)
{
    if (!s || !fx)
        return CAP_EINVAL;
    if (id == REF_SCHED_TIMER_REGISTRY)
        return on_registry_timer(s, now, fx);
    if (id == REF_SCHED_TIMER_BREAKER)
        return on_breaker_timer(s, now, fx);
    job *j = id >= 8 ? find_seq(s, id / 8) : NULL;
    if (!j)
        return REF_SCHED_IGNORED;
    switch (id % 8) {
    case TK_WAKE: return on_wake(s, j, now, fx);
    case TK_WATCH: return on_watch(s, j, now, fx);
    default: return REF_SCHED_IGNORED;
    }
}

int ref_sched_start(ref_sched *s, int64_t now, ref_effects *fx)
{
    (void)now;
    return s && fx ? arm_housekeeping(s, fx) : CAP_EINVAL;
}

/* ---- operator commands ---------------------------------------------- */

static int is_requester(const job_request *r, const char *by)
{
    if (!by || !by[0])
        return 0;
    if (r->principal_id && strcmp(r->principal_id, by) == 0)
        return 1;
    if (r->meta && r->meta->actor_id && strcmp(r->meta->actor_id, by) == 0)
        return 1;
    return r->identity && r->identity->actor_id && strcmp(r->identity->actor_id, by) == 0;
}

int ref_sched_approve(ref_sched *s, const char *job_id, const char *by, const char *note_text,
                      int64_t now, ref_effects *fx, char *why)
{
    if (!s || !fx)
        return CAP_EINVAL;
    if (why)
        why[0] = 0;
    job *j = find_job(s, job_id);
    if (!j)
        return REF_SCHED_NOT_FOUND;
    if (j->state != REF_JOB_APPROVAL_REQUIRED)
        return j->appr == APPR_APPROVED ? REF_SCHED_ALREADY_APPROVED : REF_SCHED_NOT_ACTIONABLE;
    if (is_requester(j->req, by))
        return REF_SCHED_SELF_APPROVAL;
    char h[65];
    TRY(ref_sched_request_hash(j->req, h));
    if (strcmp(h, j->hash) != 0)
        return REF_SCHED_STALE_REQUEST;
    const char *snap = current_snapshot(s);
    if (strcmp(nz(j->appr_snapshot), snap) != 0) {
        /* The policy changed since approval was asked: judge again. */
        ref_safety_decision d;
        TRY(kernel_check(s, j, now, &d));
        TRY(keep_decision(s, j, &d));
        if (!is_allow(d.decision) || d.approval_required) {
            int again = d.decision == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REQUIRE_HUMAN ||
                        d.approval_required;
            if (again) /* rebind, so an approval under the new snapshot can follow */
                TRY(set_str(&j->appr_snapshot, snap));
            if (why)
                snprintf(why, REF_REASON_MAX + 1, "policy %.100s now says %s: %.300s", snap,
                         decision_name(d.decision), d.reason);
            TRY(note(s, fx, now, "approval-stale", j->job_id, "policy %s now says %s: %s", snap,
                     decision_name(d.decision), d.reason));
            TRY(jrec(s, j, now, fx, "approval-stale", 0));
            return REF_SCHED_STALE_SNAPSHOT;
        }
        TRY(set_str(&j->appr_snapshot, snap));
    }
    j->appr = APPR_APPROVED;
    TRY(set_strn(&j->appr_by, by, TEXT_MAX));
    TRY(set_strn(&j->appr_note, note_text, TEXT_MAX));
    j->decision = 0; /* the fast path decides at dispatch */
    TRY(set_state(j, REF_JOB_SCHEDULED, now));
    TRY(jrec(s, j, now, fx, "approve", 0));
    TRY(try_dispatch(s, j, now, fx));
    return REF_SCHED_OK;
}

int ref_sched_reject(ref_sched *s, const char *job_id, const char *by, const char *note_text,
                     int64_t now, ref_effects *fx)
{
    if (!s || !fx)
        return CAP_EINVAL;
    job *j = find_job(s, job_id);
    if (!j)
        return REF_SCHED_NOT_FOUND;
    if (j->state != REF_JOB_APPROVAL_REQUIRED)
        return j->appr == APPR_REJECTED ? REF_SCHED_ALREADY_REJECTED : REF_SCHED_NOT_ACTIONABLE;
    j->appr = APPR_REJECTED;
    TRY(set_strn(&j->appr_by, by, TEXT_MAX));
    TRY(set_strn(&j->appr_note, note_text, TEXT_MAX));
    char msg[TEXT_MAX + 64];
    snprintf(msg, sizeof msg, "approval rejected by %.200s: %.250s", nz(by), nz(note_text));
    TRY(conclude(s, j, REF_JOB_DENIED, CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_SAFETY_DENIED,
                 "approval_rejected", msg, now, fx, "reject"));
    return REF_SCHED_OK;
}

int ref_sched_cancel(ref_sched *s, const char *job_id, const char *reason, const char *by,
                     int64_t now, ref_effects *fx)
{
    if (!s || !fx)
        return CAP_EINVAL;
    job *j = find_job(s, job_id);
    if (!j)
        return REF_SCHED_NOT_FOUND;
    int r = do_cancel(s, j, reason, by, now, fx, 0);
    TRY(r);
    return r == REF_SCHED_APPLIED ? REF_SCHED_OK : REF_SCHED_NOT_ACTIONABLE;
}

/* ---- restore -------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jint(const cJSON *o, const char *k, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

static int ji64(const cJSON *o, const char *k, int64_t *out)
{
    const char *s = jstr(o, k);
    if (!s || !s[0])
        return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end)
        return 0;
    *out = v;
    return 1;
}

#define NEED(cond, what)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return cap_diag_set(d, CAP_EJSON, (long)idx, "journal", "record %zu: %s", idx, what); \
    } while (0)

static int restore_job(ref_sched *s, const cJSON *o, size_t idx, cap_diag *d)
{
    const char *job_id = jstr(o, "job_id");
    NEED(job_id && job_id[0], "job record without a job_id");
    job *j = find_job(s, job_id);
    if (!j) {
        const char *b64 = jstr(o, "req");
        int64_t seq;
        NEED(b64 && ji64(o, "seq", &seq) && seq > 0, "first record of a job without req/seq");
        size_t blen = strlen(b64), n = 0;
        uint8_t *bytes = malloc(cap_base64_decoded_max(blen) + 1);
        if (!bytes)
            return CAP_ENOMEM;
        int rc = cap_base64_decode(b64, blen, bytes, &n);
        job_request *req =
            rc ? NULL : (job_request *)protobuf_c_message_unpack(&cordum__agent__v1__job_request__descriptor,
                                                                 NULL, n, bytes);
        free(bytes);
        NEED(req, "req is not a base64 JobRequest");
        j = job_new(s, req, NULL, nz(jstr(o, "trace_id")), (uint64_t)seq);
        cap_message_free(&req->base);
        if (!j)
            return CAP_ENOMEM;
        rc = make_room(s, 0, NULL);
        if (!rc)
            rc = link_job(s, j);
        if (rc) {
            job_free(s, j);
            return rc;
        }
    }
    const char *state = jstr(o, "state");
    int st = state ? ref_jobstate_from_name(state) : CAP_EINVAL;
    NEED(st >= 0 && ref_jobstate_is_valid(st), "bad state");
    j->state = st;
    if (is_terminal(j))
        note_terminal(s, j);
    int iv;
    int64_t lv;
    NEED(ji64(o, "state_at", &j->state_at), "bad state_at");
    NEED(jint(o, "decision", &j->decision), "bad decision");
    NEED(!intern_set(s, IK_RULE, &j->rule_id, jstr(o, "rule")), "out of memory");
    NEED(!intern_set(s, IK_SNAPSHOT, &j->snapshot, jstr(o, "snapshot")), "out of memory");
    NEED(!intern_set(s, IK_REASON, &j->reason, jstr(o, "reason")), "out of memory");
    NEED(ji64(o, "max_runtime_ns", &j->max_runtime_ns), "bad max_runtime_ns");
    NEED(jint(o, "max_retries", &iv), "bad max_retries");
    j->max_retries = iv;
    NEED(jint(o, "max_concurrent", &iv), "bad max_concurrent");
    j->max_concurrent = iv;
    NEED(jint(o, "throttles", &iv) && iv >= 0, "bad throttles");
    j->throttles = (uint32_t)iv;
    NEED(jint(o, "appr", &j->appr), "bad appr");
    const char *hash = jstr(o, "hash");
    NEED(hash && strlen(hash) <= 64, "bad hash");
    memcpy(j->hash, hash, strlen(hash) + 1);
    NEED(!set_str(&j->appr_snapshot, nz(jstr(o, "appr_snapshot"))), "out of memory");
    NEED(!set_str(&j->appr_by, nz(jstr(o, "appr_by"))), "out of memory");
    NEED(!set_str(&j->appr_note, nz(jstr(o, "appr_note"))), "out of memory");
    NEED(ji64(o, "attempt", &lv) && lv >= 0, "bad attempt");
    j->attempt = (uint64_t)lv;
    const char *did = jstr(o, "dispatch_id");
    NEED(did && strlen(did) <= 32, "bad dispatch_id");
    j->dispatch_len = (uint8_t)strlen(did); /* at most 32, checked above */
    memcpy(j->dispatch_id, did, j->dispatch_len + 1);
    j->dispatch_plain = json_plain(did, j->dispatch_len);
    NEED(!intern_set(s, IK_WORKER, &j->worker, jstr(o, "worker")), "out of memory");
    NEED(!intern_set(s, IK_POOL, &j->pool, jstr(o, "pool")), "out of memory");
    NEED(jint(o, "done", &j->done), "bad done");
    NEED(jint(o, "counted", &j->counted), "bad counted");
    NEED(jint(o, "retries", &iv) && iv >= 0, "bad retries");
    j->retries = (uint32_t)iv;
    NEED(ji64(o, "wait_since", &j->wait_since), "bad wait_since");
    NEED(jint(o, "waiting", &j->waiting), "bad waiting");
    NEED(ji64(o, "wake_at", &j->wake_at), "bad wake_at");
    NEED(ji64(o, "watch_at", &j->watch_at), "bad watch_at");
    NEED(!set_str(&j->memo, nz(jstr(o, "memo"))), "out of memory");
    const char *wf = nz(jstr(o, "saga_wf"));
    NEED(!set_str(&j->saga_wf, wf), "out of memory");
    return CAP_OK;
}

/* A "replay" record (replay_rec): the entry goes back into the guard as
 * admitted at its time "t"; one whose retention has ended by now counts
 * as absent there (ref_dedupe.h), so keeping old records is harmless. */
static int restore_replay(ref_sched *s, const cJSON *o, size_t idx, cap_diag *d)
{
    ref_dedupe_probe pr;
    memset(&pr, 0, sizeof pr);
    int64_t t = 0;
    const char *digest = jstr(o, "digest"), *keys = jstr(o, "keys");
    NEED(ji64(o, "t", &t) && ji64(o, "exp", &pr.expires_at), "replay record without t or exp");
    NEED(digest && strlen(digest) == 2 * sizeof pr.body_digest &&
             cap_hex_read(digest, pr.body_digest, sizeof pr.body_digest),
         "replay record with a bad digest");
    pr.has_expiry = 1;
    const size_t klen = 2 + 2 * sizeof pr.keys[0].id; /* "<kind>:<hex>" */
    for (const char *k = keys; k && *k; k += klen + (k[klen] == ',')) {
        NEED(pr.n_keys < REF_DEDUPE_MAX_KEYS && strlen(k) >= klen && k[0] >= '0' &&
                 k[0] <= '0' + REF_DEDUPE_KEY_JOB_RESULT && k[1] == ':' &&
                 (k[klen] == 0 || (k[klen] == ',' && k[klen + 1])) &&
                 cap_hex_read(k + 2, pr.keys[pr.n_keys].id, sizeof pr.keys[0].id),
             "replay record with a bad key list");
        pr.keys[pr.n_keys++].kind = (ref_dedupe_key_kind)(k[0] - '0');
    }
    NEED(pr.n_keys > 0, "replay record without keys");
    int v = ref_dedupe_admit(s->dedupe, &pr, t, NULL);
    return v < 0 ? v : CAP_OK;
}

static int restore_saga(ref_sched *s, const cJSON *o, size_t idx, cap_diag *d)
{
    const char *op = jstr(o, "op"), *wf = jstr(o, "wf"), *job_id = jstr(o, "job_id");
    int outcome = 0;
    NEED(op && wf && job_id && jint(o, "outcome", &outcome), "saga record without op/wf/job_id");
    int r;
    if (strcmp(op, "record") == 0) {
        job *j = find_job(s, job_id);
        NEED(j, "saga record of an unknown job");
        r = ref_saga_record(s->saga, j->req, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED);
    } else if (strcmp(op, "trigger") == 0) {
        r = ref_saga_trigger(s->saga, wf, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_FATAL);
    } else if (strcmp(op, "next") == 0) {
        job_request *comp = NULL;
        r = ref_saga_next(s->saga, wf, &comp);
        cap_message_free(comp ? &comp->base : NULL);
    } else if (strcmp(op, "report") == 0) {
        r = ref_saga_report(s->saga, wf, job_id, (ref_saga_outcome)outcome);
    } else {
        NEED(0, "unknown saga op");
    }
    NEED(r >= 0, "saga step does not apply to the restored saga");
    return CAP_OK;
}

int ref_sched_restore(ref_sched *s, const char *const *records, size_t n, int64_t now,
                      ref_effects *fx, cap_diag *d)
{
    if (!s || (!records && n) || !fx || s->n_jobs || s->next_seq != 1)
        return CAP_EINVAL;
    if (n && ref_bug_active(REF_BUG_LOSE_JOURNAL_TAIL)) /* injected bug (ref_bugs.h) */
        n--;
    s->restoring = 1;
    int rc = CAP_OK;
    for (size_t idx = 0; idx < n && rc == CAP_OK; idx++) {
        cJSON *o = records[idx] ? cJSON_Parse(records[idx]) : NULL;
        const char *k = o ? jstr(o, "k") : NULL;
        if (!k)
            rc = cap_diag_set(d, CAP_EJSON, (long)idx, "journal",
                              "record %zu: not a JSON object with a \"k\" kind", idx);
        else if (strcmp(k, "job") == 0)
            rc = restore_job(s, o, idx, d);
        else if (strcmp(k, "saga") == 0)
            rc = restore_saga(s, o, idx, d);
        else if (strcmp(k, "replay") == 0)
            rc = ref_bug_active(REF_BUG_FORGET_REPLAY_STORE) /* injected bug (ref_bugs.h) */
                     ? CAP_OK
                     : restore_replay(s, o, idx, d);
        else if (strcmp(k, "evict") == 0) {
            job *j = find_job(s, jstr(o, "job_id"));
            if (j) {
                unlink_job(s, j);
                job_free(s, j);
            }
        } else if (strcmp(k, "note") != 0)
            rc = cap_diag_set(d, CAP_EJSON, (long)idx, "journal", "record %zu: unknown kind \"%s\"",
                              idx, k);
        cJSON_Delete(o);
    }
    s->restoring = 0;
    TRY(rc);
    /* Derived state: tenant counts, worker slots, the queue, the timers. */
    ref_safety_reset_active(s->safety);
    for (job *j = s->head; j; j = j->next) {
        if (j->counted)
            TRY(ref_safety_job_started(s->safety, j->tenant));
        if (!j->done && j->worker && j->worker[0] &&
            (j->state == REF_JOB_DISPATCHED || j->state == REF_JOB_RUNNING))
            TRY(slot_take(s, j, NULL));
        if (j->waiting) {
            j->waiting = 0;
            TRY(waitq_add(s, j));
        }
        if (j->wake_at)
            TRY(ref_effects_timer_set(fx, j->seq * 8 + TK_WAKE, j->wake_at));
        if (j->watch_at)
            TRY(ref_effects_timer_set(fx, j->seq * 8 + TK_WATCH, j->watch_at));
    }
    TRY(note(s, fx, now, "restored", "", "%zu records, %zu jobs, %zu waiting", n, s->n_jobs,
             s->n_wait));
    return arm_housekeeping(s, fx);
}

/* ---- life cycle and queries ----------------------------------------- */

ref_sched_config ref_sched_config_default(void)
{
    ref_sched_config c;
    memset(&c, 0, sizeof c);
    c.scheduler_id = "scheduler";
    c.max_jobs = REF_SCHED_DEFAULT_MAX_JOBS;
    c.max_retries = 3;
    c.retry_base_ns = NS_PER_SEC;
    c.retry_max_ns = 30 * NS_PER_SEC;
    c.retry_jitter_ns = 500 * NS_PER_MS;
    c.throttle_base_ns = 5 * NS_PER_SEC;
    c.tenant_limit_delay_ns = 2 * NS_PER_SEC;
    c.no_worker_retry_ns = 2 * NS_PER_SEC;
    c.no_worker_wait_ns = 300 * NS_PER_SEC;
    c.dispatch_timeout_ns = 300 * NS_PER_SEC;
    c.running_timeout_ns = 9000 * NS_PER_SEC;
    return c;
}

static int64_t or_default(int64_t v, int64_t def) { return v > 0 ? v : def; }

static int copy_timeouts(const ref_sched_timeouts *src, size_t n, ref_sched_timeouts **out,
                         const char *what, cap_diag *d)
{
    *out = NULL;
    if (!n)
        return CAP_OK;
    ref_sched_timeouts *t = calloc(n, sizeof *t);
    if (!t)
        return CAP_ENOMEM;
    *out = t;
    for (size_t i = 0; i < n; i++) {
        if (!src[i].name || !src[i].name[0] || src[i].dispatch_timeout_ns < 0 ||
            src[i].running_timeout_ns < 0)
            return cap_diag_set(d, CAP_EINVAL, -1, what, "entry %zu: a name and timeouts >= 0", i);
        t[i] = src[i];
        t[i].name = dup(src[i].name);
        if (!t[i].name)
            return CAP_ENOMEM;
    }
    return CAP_OK;
}

static void free_timeouts(ref_sched_timeouts *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free((char *)t[i].name);
    free(t);
}

static void free_routes(ref_sched_route *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free((char *)r[i].topic);
        for (size_t k = 0; r[i].pools && k < r[i].n_pools; k++)
            free((char *)r[i].pools[k]);
        free((void *)r[i].pools);
    }
    free(r);
}

static int copy_routes(ref_sched *s, const ref_sched_config *cfg, cap_diag *d)
{
    if (!cfg->n_routes)
        return CAP_OK;
    s->routes = calloc(cfg->n_routes, sizeof *s->routes);
    if (!s->routes)
        return CAP_ENOMEM;
    s->n_routes = cfg->n_routes;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const ref_sched_route *r = &cfg->routes[i];
        if (!r->topic || !r->topic[0] || !r->n_pools || !r->pools)
            return cap_diag_set(d, CAP_EINVAL, -1, "routes", "route %zu: a topic and >= 1 pool", i);
        s->routes[i].topic = dup(r->topic);
        const char **pools = calloc(r->n_pools, sizeof *pools);
        s->routes[i].pools = pools;
        if (!s->routes[i].topic || !pools)
            return CAP_ENOMEM;
        s->routes[i].n_pools = r->n_pools;
        for (size_t k = 0; k < r->n_pools; k++) {
            if (!r->pools[k] || !r->pools[k][0])
                return cap_diag_set(d, CAP_EINVAL, -1, "routes", "route %zu: empty pool name", i);
            pools[k] = dup(r->pools[k]);
            if (!pools[k])
                return CAP_ENOMEM;
        }
    }
    return CAP_OK;
}

int ref_sched_new(const ref_sched_config *cfg, ref_sched **out, cap_diag *d)
{
    if (!cfg || !out)
        return CAP_EINVAL;
    *out = NULL;
    if (!cfg->safety)
        return cap_diag_set(d, CAP_EINVAL, -1, "safety", "a safety kernel is required");
    if (!cfg->rand.next)
        return cap_diag_set(d, CAP_EINVAL, -1, "rand", "a random source is required");
    if (cfg->max_jobs > REF_SCHED_MAX_JOBS_LIMIT)
        return cap_diag_set(d, CAP_EINVAL, -1, "max_jobs", "over %zu", REF_SCHED_MAX_JOBS_LIMIT);
    if (cfg->journal_form < REF_SCHED_JOURNAL_TEXT || cfg->journal_form > REF_SCHED_JOURNAL_BOTH)
        return cap_diag_set(d, CAP_EINVAL, -1, "journal_form", "not a ref_sched_journal_form");
    const char *id = cfg->scheduler_id && cfg->scheduler_id[0] ? cfg->scheduler_id : "scheduler";
    if (strlen(id) > REF_SCHED_ID_MAX)
        return cap_diag_set(d, CAP_EINVAL, -1, "scheduler_id", "over %d bytes", REF_SCHED_ID_MAX);
    ref_sched_config def = ref_sched_config_default();
    ref_sched *s = calloc(1, sizeof *s);
    if (!s)
        return CAP_ENOMEM;
    s->safety = cfg->safety;
    s->rand = cfg->rand;
    s->wq_era = 1; /* 0: an entry counted under no pair */
    s->wq_min_give_up = INT64_MAX;
    s->max_jobs = cfg->max_jobs ? cfg->max_jobs : def.max_jobs;
    s->max_retries = cfg->max_retries || cfg->max_retries_set ? cfg->max_retries : def.max_retries;
    s->retry_base = or_default(cfg->retry_base_ns, def.retry_base_ns);
    s->retry_max = or_default(cfg->retry_max_ns, def.retry_max_ns);
    s->retry_jitter = cfg->retry_jitter_ns < 0 ? 0 : or_default(cfg->retry_jitter_ns, def.retry_jitter_ns);
    s->throttle_base = or_default(cfg->throttle_base_ns, def.throttle_base_ns);
    s->tenant_delay = or_default(cfg->tenant_limit_delay_ns, def.tenant_limit_delay_ns);
    s->nw_retry = or_default(cfg->no_worker_retry_ns, def.no_worker_retry_ns);
    s->nw_wait = or_default(cfg->no_worker_wait_ns, def.no_worker_wait_ns);
    s->dispatch_to = or_default(cfg->dispatch_timeout_ns, def.dispatch_timeout_ns);
    s->running_to = or_default(cfg->running_timeout_ns, def.running_timeout_ns);
    s->on_pool = cfg->dispatch_on_pool;
    s->journal_form = cfg->journal_form;
    s->next_seq = 1;
    for (int i = 0; i < N_STATE_NAMES; i++) {
        s->state_name[i] = ref_jobstate_name(i);
        s->state_len[i] = strlen(s->state_name[i]);
    }
    ref_idindex_init(&s->by_id);
    ref_u64map_init(&s->by_seq);
    ref_strmap_init_borrowed(&s->by_idem); /* keys: the jobs' own idempotency keys */
    ref_strmap_init(&s->slots_by_worker);
    ref_strmap_init(&s->strs);
    int rc = CAP_ENOMEM;
    if (!(s->id = dup(id)))
        goto fail;
    s->id_len = strlen(s->id);
    if ((rc = copy_timeouts(cfg->pool_timeouts, cfg->n_pool_timeouts, &s->pool_to, "pool_timeouts", d)))
        goto fail;
    s->n_pool_to = cfg->n_pool_timeouts;
    if ((rc = copy_timeouts(cfg->tenant_timeouts, cfg->n_tenant_timeouts, &s->tenant_to,
                            "tenant_timeouts", d)))
        goto fail;
    s->n_tenant_to = cfg->n_tenant_timeouts;
    if ((rc = copy_routes(s, cfg, d)))
        goto fail;
    if ((rc = ref_registry_new(cfg->registry, &s->registry, d)))
        goto fail;
    if ((rc = ref_breaker_set_new(cfg->breaker, 0, &s->breakers)))
        goto fail;
    if ((rc = ref_dedupe_new(cfg->dedupe, &s->dedupe)))
        goto fail;
    if ((rc = ref_saga_new(cfg->saga, &s->saga)))
        goto fail;
    *out = s;
    return CAP_OK;
fail:
    ref_sched_free(s);
    return rc;
}

void ref_sched_free(ref_sched *s)
{
    if (!s)
        return;
    for (job *j = s->head; j;) {
        job *next = j->next;
        job_free(s, j);
        j = next;
    }
    for (size_t i = 0; i < s->n_slots; i++) {
        intern_drop(s, s->slots[i]->worker_id);
        free(s->slots[i]->jobs);
        free(s->slots[i]);
    }
    free(s->slots);
    ref_strmap_free(&s->slots_by_worker);
    for (size_t k = 0; k < sizeof s->icache / sizeof s->icache[0]; k++)
        intern_drop(s, s->icache[k] ? s->icache[k]->s : NULL);
    intern_drop(s, s->miss.topic);
    ref_strmap_free(&s->strs); /* empty now: every job and list let go of its strings */
    ref_idindex_free(&s->by_id);
    for (size_t i = 0; i < s->n_chunks; i++)
        free(s->chunks[i]);
    free(s->chunks);
    ref_u64map_free(&s->by_seq);
    free(s->ring);
    ref_strmap_free(&s->by_idem);
    free(s->rbuf);
    free(s->kbuf);
    free(s->krel);
    for (size_t i = 0; i < s->n_spare; i++)
        free(s->spare[i].p);
    plans_free(s);
    free(s->waitq);
    free(s->term);
    free_timeouts(s->pool_to, s->n_pool_to);
    free_timeouts(s->tenant_to, s->n_tenant_to);
    free_routes(s->routes, s->n_routes);
    ref_registry_free(s->registry);
    ref_breaker_set_free(s->breakers);
    ref_dedupe_free(s->dedupe);
    ref_saga_free(s->saga);
    free(s->id);
    free(s);
}

int ref_sched_job(const ref_sched *s, const char *job_id, ref_sched_job_info *out)
{
    const job *j = s && out ? find_job(s, job_id) : NULL;
    if (!j)
        return CAP_EINVAL;
    out->state = j->state;
    out->attempt = j->attempt;
    out->dispatch_id = j->dispatch_id;
    out->worker_id = nz(j->worker);
    out->retries = j->retries;
    out->decision = j->decision;
    out->policy_snapshot = nz(j->snapshot);
    out->approval = j->appr;
    out->approval_hash = j->hash;
    out->approval_snapshot = nz(j->appr_snapshot);
    out->last_memo = nz(j->memo);
    out->waiting = j->waiting;
    return CAP_OK;
}

ref_sched_stats ref_sched_stats_get(const ref_sched *s)
{
    ref_sched_stats st;
    memset(&st, 0, sizeof st);
    if (!s)
        return st;
    st = s->st;
    st.jobs = s->n_jobs;
    st.waiting = s->n_wait;
    return st;
}

const ref_registry *ref_sched_registry(const ref_sched *s) { return s ? s->registry : NULL; }
const ref_saga *ref_sched_saga(const ref_sched *s) { return s ? s->saga : NULL; }

const char *ref_sched_verdict_name(ref_sched_verdict v)
{
    switch (v) {
    case REF_SCHED_APPLIED: return "applied";
    case REF_SCHED_DUPLICATE: return "duplicate";
    case REF_SCHED_STALE: return "stale";
    case REF_SCHED_IGNORED: return "ignored";
    case REF_SCHED_REJECTED: return "rejected";
    }
    return "?";
}

const char *ref_sched_answer_name(ref_sched_answer a)
{
    switch (a) {
    case REF_SCHED_OK: return "ok";
    case REF_SCHED_NOT_FOUND: return "not_found";
    case REF_SCHED_NOT_ACTIONABLE: return "not_actionable";
    case REF_SCHED_ALREADY_APPROVED: return "already_approved";
    case REF_SCHED_ALREADY_REJECTED: return "already_rejected";
    case REF_SCHED_SELF_APPROVAL: return "self_approval_denied";
    case REF_SCHED_STALE_REQUEST: return "stale_request";
    case REF_SCHED_STALE_SNAPSHOT: return "stale_snapshot";
    }
    return "?";
}
