/* One simulated run: see sim_world.h and docs/simulator.md. */
#include "sim_world.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cap_encode.h"
#include "cap_fmt.h"
#include "cap_sign.h"
#include "cap_time.h"
#include "cap_trace.h"
#include "ref_bugs.h"
#include "ref_conformance.h"
#include "ref_effect.h"
#include "ref_jobstate.h"
#include "ref_safety.h"
#include "ref_saga.h"
#include "ref_scheduler.h"
#include "ref_strmap.h"
#include "ref_u64map.h"
#include "ref_worker.h"
#include "sim_bus.h"
#include "sim_hist.h"
#include "sim_jview.h"
#include "sim_queue.h"
#include "sim_rng.h"
#include "sim_story.h"

#define SEC INT64_C(1000000000)

typedef Cordum__Agent__V1__JobRequest job_request;

/* Event kinds in the queue (bus deliveries use SIM_BUS_EVENT_KIND = 1). */
enum { EV_DELIVERY = SIM_BUS_EVENT_KIND, EV_TIMER, EV_ARRIVAL, EV_SCRIPT, EV_TIMELINE,
       EV_APPROVE, EV_CRASH_WORKER, EV_RESTART_WORKER, EV_NEXT_STEP, EV_PROGRESS, EV_TWIN };

enum { A_GATEWAY, A_SCHEDULER, A_WORKER, A_APPROVER, A_OPERATOR };

typedef struct world world;

#define ACTOR_TIMERS_INLINE 4

/* The members a timer or a delivery reads first (alive, type, worker, the
 * inline timers) lead, so that they share as few cache lines of a cold
 * actor as they can; the name comes last. */
typedef struct {
    int type;
    int alive;
    ref_worker *worker;
    /* This incarnation's timers: timer id -> the queued event's handle.
     * The first ACTOR_TIMERS_INLINE live in the actor itself, since a
     * worker has its heartbeat and one completion timer a running job
     * (its own memory is at hand; a table of its own would be one more
     * cache miss per timer set, fired or cancelled); the scheduler's many
     * go on to the map. A handle is never 0, so 0 marks a free place. */
    uint64_t timer_id[ACTOR_TIMERS_INLINE], timer_handle[ACTOR_TIMERS_INLINE];
    uint32_t bus_id;
    int running;                 /* handler jobs in flight (for utilisation) */
    uint64_t incarnation;
    world *w;
    ref_u64map timers;
    sim_rng rng;
    const sim_worker_spec *spec; /* workers */
    int64_t busy_since;
    int64_t busy_ns;
    int64_t clock_max; /* the latest time its clock has shown (local_time) */
    sim_rng hb_rng;    /* workers: slow or missing heartbeats (heartbeat_faults) */
    int hb_late;       /* the heartbeat timer now armed is a late one: it sends */
    char name[160];
} actor;

/* A handler-once key, "dispatch_id#attempt", kept with the job it ran for
 * (or on the world's orphan list); the handler_seen map borrows its text.
 * A job's first key, when it fits, is kept in the job's entry instead
 * (seen0): no block of its own to allocate, and none to visit (a cache
 * miss, minutes after the dispatch) when the job is forgotten. */
typedef struct hkey {
    struct hkey *next;
    char key[];
} hkey;

/* What the checker and the gateway know about one job. The members every
 * journal record of the job reads come first, so checking a record
 * touches as few cache lines of a cold entry as it can; the request hash
 * (read only for a job that was parked) comes last. */
typedef struct jinfo {
    char *job_id;                /* points just past the struct (one allocation) */
    uint64_t num;                /* n of an id "job-<n>" (job_num), else 0 */
    int state;
    int terminal;
    int parked_once;
    int gateway;                 /* submitted by the gateway (not a compensation) */
    int client;                  /* closed loop: the client that waits for it; -1 none */
    uint32_t step, steps;        /* workflow step (1-based) and count */
    size_t topic;                /* index into the latency table; (size_t)-1 none */
    int64_t submit_at;
    uint64_t fatal_attempt;      /* attempt + 1 of a FAILED_FATAL result it was given; 0 none */
    struct twin *twin;           /* a `conflict` twin to send once the scheduler admits it */
    size_t jidx;                 /* its compacted journal entry's index + 1; 0 none */
    char *wf;                    /* workflow id of a gateway workflow */
    struct hkey *seen;           /* handler-once keys of this job but seen0, newest first */
    char seen0[48];              /* its first handler-once key ("" none) */
    size_t list_idx;             /* its place in job_list */
    int64_t parked_at;
    size_t mix;
    int approver_tries;
    int pooled;                  /* its block has JINFO_ID_ROOM for the id (jinfo_new) */
    char hash[65];               /* hash of the request as submitted ("" unknown or not
                                  * computed yet: see gateway_request_hash) */
    char **memos;                /* the checkpoints its attempts reported (invariant
                                  * checkpoint); at most SIM_MAX_CHECKPOINTS an attempt */
    size_t n_memos, cap_memos;
    struct jinfo *next_free;     /* on the world's free list, once retired */
} jinfo;

/* Room for the id in an entry's block. Entries whose id fits have one
 * size, so a retired one goes on a free list and the next job takes it:
 * an entry retired a moment ago is warm in cache, where malloc's free of
 * an entry last touched minutes earlier visits cold neighbours. */
#define JINFO_ID_ROOM 24 /* "job-" and 19 digits with the NUL */

/* A conflicting twin (the `conflict` timeline action): another job,
 * signed under the message_id of a submit the scheduler admitted. */
typedef struct twin {
    uint8_t mid[16];   /* the admitted submit's message_id */
    int64_t after;     /* sent this long after the admission */
    size_t mix;        /* the admitted job's mix entry */
    char *of;          /* the admitted job's id */
    int landed;        /* the scheduler has been handed it */
} twin;

/* The scheduler's journal, compacted: per job its first record (with the
 * request) and its latest; saga records in order. */
typedef struct {
    jinfo *owner;      /* the job (its jidx names this entry) */
    char *first, *latest;
    size_t cap_latest; /* bytes allocated at latest */
    int gone;
} jentry;

/* A job state's name with its state, as ref_jobstate_from_name reads it. */
#define STATE_SLOTS 32
typedef struct {
    const char *name; /* NULL: a free place */
    size_t len;
    int state;
} state_name;

struct world {
    sim_jview_reader jreader;    /* reads the scheduler's journal records */
    const sim_run_config *cfg;
    const sim_scenario *scn;
    sim_result *res;
    cap_diag *d;
    sim_queue q;
    sim_bus *bus;
    ref_safety *safety;
    ref_sched *sched;
    sim_rng sched_rng, gw_rng, appr_rng;
    actor *actors;
    size_t n_actors;
    actor *gateway, *scheduler, *approver;
    uint32_t *actor_of_bus;      /* bus id -> index + 1 into actors (0: not an actor) */
    size_t n_actor_of_bus;
    ref_effects fx;
    int64_t now;
    int64_t end_load, end_run;
    /* job_id -> jinfo: an id "job-<n>" (the gateway's) at by_num[n mod
     * JOB_SLOTS] when that place is free, any other id in the map; an id
     * is in one of the two, never both (see job_add). */
    jinfo **by_num;              /* JOB_SLOTS places, allocated with the first such id */
    ref_strmap jobs;
    jinfo *last_job;             /* the entry job_get found last (NULL once retired) */
    jinfo *jinfo_pool;           /* retired entries to reuse (see JINFO_ID_ROOM) */
    jinfo **job_list;            /* in submit order */
    size_t n_jobs, cap_jobs;
    size_t open_jobs;            /* not terminal and not parked */
    ref_sched_stats carried;     /* the counts of the schedulers that crashed */
    size_t n_retired_slots;      /* NULL entries in job_list (jobs retired) */
    sim_result retired;          /* terminal states of retired jobs */
    size_t pending_answers;      /* approver answers in the queue: the run waits for them */
    uint64_t next_job, next_wf, gw_submitted;
    /* The compacted journal (each job's first and latest records, the
     * replay records) exists only to restart the scheduler from: kept when
     * the timeline restarts it. */
    int keep_journal;
    jentry *journal;
    size_t n_journal, cap_journal, n_journal_gone;
    char **saga_log;
    size_t n_saga, cap_saga;
    /* The replay guard's "replay" records, oldest first, with when each
     * was kept; [replay_head, n_replay) are live (see keep_replay). */
    char **replay_log;
    int64_t *replay_at;
    size_t replay_head, n_replay, cap_replay, cap_replay_at;
    sim_event *held;             /* deliveries held for a crashed scheduler */
    size_t n_held, cap_held;
    state_name state_names[STATE_SLOTS]; /* job states by name: see state_of */
    ref_strmap handler_seen;     /* "dispatch_id#attempt" -> its hkey (keys borrowed) */
    hkey *orphan_keys;           /* keys of handler runs for jobs the checker does not know */
    ref_strmap saga_stack;       /* wf -> stack text (job ids, '\n'-separated) */
    /* `conflict` actions: signed submits still to pick as the source of a
     * twin, and the twins sent (job id -> the twin; the guard must refuse
     * every one of them, so none may ever reach the journal). */
    uint64_t twins_wanted;
    int64_t twin_after;
    size_t twins_pending;        /* picked, not yet handed to the scheduler: the run waits */
    ref_strmap twins;
    twin **twin_list;
    size_t n_twins, cap_twins;
    cap_trace_writer *tw_bin, *tw_jsonl;
    const cap_packet *worker_pkt; /* the packet a worker is handling (conformance plans) */
    ref_registry_config reg_cfg;  /* the scheduler's registry, when worker_grace is set */
    sim_hist lat[32];            /* latency (submit to terminal) per topic */
    char topic_name[32][128];
    size_t n_topics;
    /* Signing (scn->gateway.sign): the gateway's key, its message-id
     * stream, and the replay copies the loop has taken out of the queue. */
    cap_key *sign_key;
    sim_rng sign_rng;
    uint64_t replays_popped;
    sim_story *story;            /* --history: the watched job's story, else NULL */
    int stop;
    int err;
};

#define SIGN_KEY_ID "gateway-key-1"
#define SIGN_MESSAGE_ID_LEN 16 /* == sizeof ((twin *)0)->mid */

/* ---- small helpers ------------------------------------------------------- */

/* A copy of s (NULL copies as ""). */
static char *xdup(const char *s) { return strdup(s ? s : ""); }

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return CAP_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *g = realloc(*arr, nc * elem);
    if (!g)
        return CAP_ENOMEM;
    *arr = g;
    *cap = nc;
    return CAP_OK;
}

static void violation(world *w, const char *inv, const char *job, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void violation(world *w, const char *inv, const char *job, const char *fmt, ...)
{
    if (w->res->violated)
        return;
    w->res->violated = 1;
    snprintf(w->res->invariant, sizeof w->res->invariant, "%s", inv);
    snprintf(w->res->job_id, sizeof w->res->job_id, "%s", job ? job : "");
    w->res->at = w->now;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->res->detail, sizeof w->res->detail, fmt, ap);
    va_end(ap);
    w->stop = 1;
    sim_story_say(w->story, w->now, "checker", "violation", "%s (job %s): %s", inv,
                  job ? job : "-", w->res->detail);
}

static int inv_on(const world *w, unsigned bit)
{
    return !w->cfg->checks_off && (w->scn->invariants & bit) != 0;
}

static actor *actor_by_name(world *w, const char *name)
{
    for (size_t i = 0; i < w->n_actors; i++)
        if (strcmp(w->actors[i].name, name) == 0)
            return &w->actors[i];
    return NULL;
}

static actor *actor_by_bus(world *w, uint32_t id)
{
    size_t i = id < w->n_actor_of_bus ? w->actor_of_bus[id] : 0;
    return i ? &w->actors[i - 1] : NULL;
}

/* The actor's clock: virtual time plus its skew, except that it never runs
 * backwards. A skew that sets the clock back holds it still until virtual
 * time has caught up; the components take a `now` that never decreases
 * (the registry refuses one that does), as a monotonic clock would give. */
static int64_t local_time(const world *w, actor *a)
{
    int64_t t = sim_bus_local_time(w->bus, a->bus_id, w->now);
    if (t < a->clock_max)
        return a->clock_max;
    a->clock_max = t;
    return t;
}

/* The checker's jobs are found by id many times a job (its records, its
 * handler run, its submit's answer). The gateway names its jobs
 * "job-<n>" with n counting up, so those are reached through n, an index
 * into a table of JOB_SLOTS places, instead of hashing the id: the live
 * jobs' numbers lie close together (the scheduler keeps at most 65 536
 * jobs), so their places rarely clash, and neighbours share cache lines.
 * An id of another form, or one whose place is taken, goes to the map. */
#define JOB_SLOTS ((size_t)1 << 17)

/* n of an id "job-<n>" written as the gateway writes it (n from 1, no
 * leading zero, at most 18 digits: one id, one n), else 0. */
static uint64_t job_num(const char *id)
{
    if (id[0] != 'j' || id[1] != 'o' || id[2] != 'b' || id[3] != '-' || id[4] < '1' || id[4] > '9')
        return 0;
    uint64_t n = 0;
    const char *p = id + 4, *end = id + 4 + 18;
    for (unsigned d; p < end && (d = (unsigned)((unsigned char)*p - '0')) <= 9; p++)
        n = n * 10 + d;
    return *p ? 0 : n; /* a byte that is no digit, or a 19th digit */
}

/* The place of job n (n != 0) in by_num, NULL before the table exists. */
static jinfo **job_slot(const world *w, uint64_t n)
{
    return w->by_num ? &w->by_num[n & (JOB_SLOTS - 1)] : NULL;
}

/* The job's entry, or NULL. The entry found last is kept at hand: a job's
 * records come in runs (an admission writes two or three at once). */
static jinfo *job_get(world *w, const char *id)
{
    if (w->last_job && strcmp(w->last_job->job_id, id) == 0)
        return w->last_job;
    uint64_t n = job_num(id);
    jinfo **slot = n ? job_slot(w, n) : NULL;
    jinfo *j = slot && *slot && (*slot)->num == n ? *slot
               : ref_strmap_len(&w->jobs)          ? ref_strmap_get(&w->jobs, id)
                                                   : NULL;
    if (j)
        w->last_job = j;
    return j;
}

/* Asks for the entry of job id (when the gateway named it) ahead of use:
 * a packet about a job is handed to the scheduler first, and the checker
 * reads the job's entry only for the records that causes, so the entry
 * (cold: a job's records are seconds apart) arrives meanwhile. A hint
 * only: nothing depends on it. */
static void job_prefetch(const world *w, const char *id)
{
#if defined(__GNUC__)
    uint64_t n = id ? job_num(id) : 0;
    jinfo **slot = n ? job_slot(w, n) : NULL;
    if (slot && *slot)
        __builtin_prefetch(*slot);
#else
    (void)w;
    (void)id;
#endif
}

/* Files j under its id, replacing an entry of the same id (as a map put
 * does): at its place in by_num when that place holds the same id, or is
 * free while the map does not hold the id; in the map otherwise. */
static int job_index(world *w, jinfo *j)
{
    if (j->num && !w->by_num && !(w->by_num = calloc(JOB_SLOTS, sizeof *w->by_num)))
        return CAP_ENOMEM;
    jinfo **slot = j->num ? job_slot(w, j->num) : NULL;
    if (slot && ((*slot && (*slot)->num == j->num) ||
                 (!*slot && !(ref_strmap_len(&w->jobs) && ref_strmap_get(&w->jobs, j->job_id))))) {
        *slot = j;
        return CAP_OK;
    }
    return ref_strmap_put(&w->jobs, j->job_id, j);
}

/* Forgets the entry filed under id (as a map delete does). */
static void job_unindex(world *w, const char *id)
{
    uint64_t n = job_num(id);
    jinfo **slot = n ? job_slot(w, n) : NULL;
    if (slot && *slot && (*slot)->num == n)
        *slot = NULL;
    else
        ref_strmap_del(&w->jobs, id);
}

/* A zeroed entry with room for an id of n bytes (with its NUL) after it. */
static jinfo *jinfo_new(world *w, size_t n)
{
    jinfo *j;
    if (n <= JINFO_ID_ROOM && w->jinfo_pool) {
        j = w->jinfo_pool;
        w->jinfo_pool = j->next_free;
        memset(j, 0, sizeof *j + JINFO_ID_ROOM);
    } else {
        j = calloc(1, sizeof *j + (n <= JINFO_ID_ROOM ? JINFO_ID_ROOM : n));
    }
    if (j)
        j->pooled = n <= JINFO_ID_ROOM;
    return j;
}

static jinfo *job_add(world *w, const char *id)
{
    size_t n = strlen(id) + 1;
    jinfo *j = jinfo_new(w, n); /* the id lives in the same block */
    if (j) {
        j->job_id = memcpy((char *)(j + 1), id, n);
        j->num = job_num(id);
    }
    if (!j || grow((void **)&w->job_list, &w->cap_jobs, w->n_jobs + 1, sizeof *w->job_list) ||
        job_index(w, j)) {
        free(j);
        w->err = CAP_ENOMEM;
        return NULL;
    }
    j->state = REF_JOB_NONE;
    j->topic = (size_t)-1;
    j->client = -1;
    j->list_idx = w->n_jobs;
    w->job_list[w->n_jobs++] = j;
    w->open_jobs++;
    w->last_job = j; /* the id names this entry now, not one it replaced */
    return j;
}

/* Counts a job's state into r (the summary's jobs by state). */
static void count_state(sim_result *r, const jinfo *j)
{
    switch (j->state) {
    case REF_JOB_SUCCEEDED: r->succeeded++; break;
    case REF_JOB_FAILED: r->failed++; break;
    case REF_JOB_FAILED_FATAL: r->failed_fatal++; break;
    case REF_JOB_CANCELLED: r->cancelled++; break;
    case REF_JOB_DENIED: r->denied++; break;
    case REF_JOB_TIMEOUT: r->timed_out++; break;
    case REF_JOB_APPROVAL_REQUIRED: r->parked++; break;
    default: r->unfinished += !j->terminal; break; /* terminal: answered as a duplicate */
    }
}

static void handler_keys_drop(world *w, jinfo *j);

static void twin_free(twin *t)
{
    if (t)
        free(t->of);
    free(t);
}

/* Frees what the entry holds, and the entry itself, or keeps it for reuse
 * when w is given and its block has the pooled size. */
static void jinfo_free(world *w, jinfo *j)
{
    for (size_t i = 0; i < j->n_memos; i++)
        free(j->memos[i]);
    free(j->memos);
    free(j->wf);
    twin_free(j->twin);
    if (w && j->pooled) {
        j->next_free = w->jinfo_pool;
        w->jinfo_pool = j;
    } else {
        free(j);
    }
}

/* Asks the cache for what retiring the jobs after job n will read. The
 * scheduler evicts its oldest terminal job first and the gateway numbers
 * jobs in submission order, so jobs n + 1 and n + 2 are most likely the
 * next to go, minutes after anything last touched them: the entry of
 * n + 2 now, and the handler-once key slot of n + 1, whose entry the
 * retirement before this one asked for. A hint only: nothing depends on
 * it, and a guess that is wrong costs two loads. */
static void retire_prefetch(const world *w, uint64_t n)
{
#if defined(__GNUC__)
    jinfo **next = n ? job_slot(w, n + 1) : NULL;
    if (next && *next && (*next)->seen0[0])
        ref_strmap_prefetch(&w->handler_seen, (*next)->seen0);
    jinfo **after = n ? job_slot(w, n + 2) : NULL;
    if (after && *after)
        __builtin_prefetch(*after);
#else
    (void)w;
    (void)n;
#endif
}

/* The scheduler evicted a terminal job: the checker forgets it too (its
 * state is counted), so memory follows the live jobs, not the run length. */
static void job_retire(world *w, jinfo *j)
{
    if (!j || !j->terminal)
        return;
    retire_prefetch(w, j->num);
    count_state(&w->retired, j);
    handler_keys_drop(w, j);
    job_unindex(w, j->job_id);
    if (w->last_job == j)
        w->last_job = NULL;
    w->job_list[j->list_idx] = NULL;
    w->n_retired_slots++;
    jinfo_free(w, j);
    if (w->n_retired_slots > 1024 && w->n_retired_slots * 2 > w->n_jobs) {
        size_t n = 0;
        for (size_t i = 0; i < w->n_jobs; i++)
            if (w->job_list[i]) {
                w->job_list[i]->list_idx = n;
                w->job_list[n++] = w->job_list[i];
            }
        w->n_jobs = n;
        w->n_retired_slots = 0;
    }
}

static size_t topic_index(world *w, const char *topic)
{
    for (size_t i = 0; i < w->n_topics; i++)
        if (strcmp(w->topic_name[i], topic) == 0)
            return i;
    if (w->n_topics >= 32)
        return (size_t)-1;
    snprintf(w->topic_name[w->n_topics], sizeof w->topic_name[0], "%s", topic);
    return w->n_topics++;
}

/* ---- trace ---------------------------------------------------------------- */

/* The bus hands over the strings' lengths: the writer need not measure them. */
static void on_publish(void *ctx, int64_t now, const sim_publish_strings *s, const uint8_t *bytes,
                       size_t len)
{
    world *w = ctx;
    cap_trace_record r = {.time = now, .kind = CAP_TRACE_PUBLISH, .subject = s->subject,
                          .sender = s->from, .reply = s->reply, .bytes = bytes, .len = len};
    const size_t n[CAP_TRACE_NSTR] = {s->subject_len, s->from_len, 0, s->reply_len, 0};
    cap_diag d;
    if (w->tw_bin && cap_trace_write_n(w->tw_bin, &r, n, &d) < 0)
        w->err = CAP_EIO;
    if (w->tw_jsonl && cap_trace_write_n(w->tw_jsonl, &r, n, &d) < 0)
        w->err = CAP_EIO;
    w->res->trace_records++;
    if (w->story)
        sim_story_publish(w->story, now, s->msg_id, s->from, s->subject, bytes, len);
}

/* Set only with a story: a dropped copy of one of the job's packets. */
static void on_drop(void *ctx, int64_t now, uint64_t msg_id, const char *from, const char *to,
                    const char *subject, sim_drop_reason reason)
{
    world *w = ctx;
    if (sim_story_follows(w->story, msg_id))
        sim_story_say(w->story, now, "bus", "drop", "#%llu on %s from %s to %s: %s",
                      (unsigned long long)msg_id, subject, from, to ? to : "nobody",
                      sim_drop_reason_name(reason));
}

/* ---- timers --------------------------------------------------------------- */

/* An actor's timer is one queued event; the actor keeps the timer's id
 * with that event's queue handle (in its own places, then its map).
 * Re-arming or cancelling removes the queued event at once, so the queue
 * holds only timers that will fire (its size follows the live timers,
 * not how many were ever set). */

/* The handle of timer id of a, 0 when it is not armed. */
static uint64_t timer_handle(const actor *a, uint64_t id)
{
    for (int i = 0; i < ACTOR_TIMERS_INLINE; i++)
        if (a->timer_handle[i] && a->timer_id[i] == id)
            return a->timer_handle[i];
    return a->timers.len ? (uintptr_t)ref_u64map_get(&a->timers, id) : 0;
}

/* Records handle (not 0) for timer id: where the id is already, else in
 * a free place of the actor, else in the map. CAP_ENOMEM (nothing
 * changed) when the map cannot grow. */
static int timer_keep(actor *a, uint64_t id, uint64_t handle)
{
    for (int i = 0; i < ACTOR_TIMERS_INLINE; i++)
        if (a->timer_handle[i] && a->timer_id[i] == id) {
            a->timer_handle[i] = handle;
            return CAP_OK;
        }
    if (!a->timers.len || !ref_u64map_get(&a->timers, id))
        for (int i = 0; i < ACTOR_TIMERS_INLINE; i++)
            if (!a->timer_handle[i]) {
                a->timer_id[i] = id;
                a->timer_handle[i] = handle;
                return CAP_OK;
            }
    return ref_u64map_put(&a->timers, id, (void *)(uintptr_t)handle);
}

/* Forgets timer id of a (when armed). */
static void timer_forget(actor *a, uint64_t id)
{
    for (int i = 0; i < ACTOR_TIMERS_INLINE; i++)
        if (a->timer_handle[i] && a->timer_id[i] == id) {
            a->timer_handle[i] = 0;
            return;
        }
    if (a->timers.len)
        ref_u64map_del(&a->timers, id);
}

static int set_timer(world *w, actor *a, uint64_t id, int64_t local_at)
{
    /* back to virtual time: when the clock, running again, reaches local_at */
    int64_t at = local_at - (sim_bus_local_time(w->bus, a->bus_id, w->now) - w->now);
    if (at < w->now)
        at = w->now;
    uint64_t old = timer_handle(a, id);
    if (old)
        sim_queue_cancel(&w->q, old, NULL);
    sim_event ev = {.time = at, .kind = EV_TIMER, .actor = a->bus_id, .id = id};
    uint64_t handle = 0;
    int rc = sim_queue_push(&w->q, &ev, &handle);
    if (rc) {
        timer_forget(a, id);
        return rc;
    }
    return timer_keep(a, id, handle);
}

static void cancel_timer(world *w, actor *a, uint64_t id)
{
    uint64_t old = timer_handle(a, id);
    if (old) {
        sim_queue_cancel(&w->q, old, NULL);
        timer_forget(a, id);
    }
}

/* The actor crashed: its armed timers die with this incarnation. Their
 * events stay queued and are ignored when they fire (no handle of the new
 * incarnation matches them). */
static void new_incarnation(actor *a)
{
    a->incarnation++;
    memset(a->timer_handle, 0, sizeof a->timer_handle);
    ref_u64map_free(&a->timers);
}

/* ---- the checker: the scheduler's journal, record by record ---------------- */

static void check_compensation_order(world *w, const char *op, const char *wf, const char *job)
{
    char *stack = ref_strmap_get(&w->saga_stack, wf);
    if (strcmp(op, "record") == 0) {
        size_t n = strlen(stack ? stack : "") + strlen(job) + 2;
        char *ns = malloc(n);
        if (!ns) {
            w->err = CAP_ENOMEM;
            return;
        }
        snprintf(ns, n, "%s%s\n", stack ? stack : "", job);
        free(stack);
        if (ref_strmap_put(&w->saga_stack, wf, ns)) {
            free(ns);
            w->err = CAP_ENOMEM;
        }
        return;
    }
    if (strcmp(op, "next") != 0 || !job[0] || !inv_on(w, SIM_INV_COMPENSATION))
        return;
    /* The compensation handed out must be that of the newest job not yet
     * compensated: the last line of the stack. */
    size_t len = stack ? strlen(stack) : 0;
    if (!len) {
        violation(w, "compensation", job, "compensation %s with nothing recorded in %s", job, wf);
        return;
    }
    stack[len - 1] = 0;
    char *last = strrchr(stack, '\n');
    const char *top = last ? last + 1 : stack;
    char want[600];
    ref_saga_comp_job_id(wf, top, want, sizeof want);
    if (strcmp(want, job) != 0) {
        violation(w, "compensation", job,
                  "workflow %s: compensation %s handed out while the newest success is %s "
                  "(newest first, cap-spec 08)",
                  wf, job, top);
        return;
    }
    if (last)
        last[1] = 0;
    else
        stack[0] = 0;
}

static void approver_schedule(world *w, jinfo *j);

/* The job a "job" record is about (NULL for a record without a job id,
 * state or event): the one the checker knows, or a compensation the
 * scheduler admitted, which the checker learns of here. */
static jinfo *record_job(world *w, const sim_jview *o)
{
    if (!o->job_id || !o->state || !o->ev)
        return NULL;
    jinfo *j = job_get(w, o->job_id);
    const twin *t = j ? NULL : ref_strmap_get(&w->twins, o->job_id);
    if (t) {
        /* The replay guard let through a body signed under a message_id it
         * had admitted with another body (cap-spec 19: rejected). */
        if (inv_on(w, SIM_INV_CONFLICT_REFUSED))
            violation(w, "conflict-refused", o->job_id,
                      "admitted (%s), though signed under the message_id of %s's submit, which "
                      "the scheduler had admitted with another body",
                      o->state, t->of);
        return NULL;
    }
    if (!j && (j = job_add(w, o->job_id))) {
        j->submit_at = w->now;
        w->res->compensations++;
    }
    return j;
}

static cap_packet *build_submit(world *w, size_t m, const char *job_id, const char *wf,
                                uint32_t step);

/* Fills j->hash, the hash of the request the gateway submitted, when it is
 * needed (a parked job is dispatched) rather than for every submit: the
 * request is built again from what made it (mix entry, job id, workflow
 * step), which gives the same request. Compensations keep "" (unknown). */
static void gateway_request_hash(world *w, jinfo *j)
{
    if (!j->gateway || j->hash[0])
        return;
    cap_packet *p = build_submit(w, j->mix, j->job_id, j->wf, j->step);
    if (!p) {
        w->err = CAP_ENOMEM;
        return;
    }
    ref_sched_request_hash(p->job_request, j->hash);
    free(p); /* build_submit: one block */
}

/* The place of a state name of len bytes (len >= 2) among state_names:
 * the states' names (ref_jobstate.c) all have places of their own. */
static size_t state_slot(const char *name, size_t len)
{
    return (4 * len + 3 * (unsigned char)name[0] + (unsigned char)name[1]) & (STATE_SLOTS - 1);
}

/* Files the states' names (and the one of REF_JOB_NONE) for state_of, each
 * with the state ref_jobstate_from_name gives for it; a name whose place
 * is taken is left out (state_of then asks ref_jobstate_from_name). */
static void state_names_init(world *w)
{
    for (int i = -1; i < REF_JOBSTATE_COUNT; i++) {
        const char *name = ref_jobstate_name(i < 0 ? REF_JOB_NONE : ref_jobstate_list[i]);
        size_t len = strlen(name);
        state_name *e = len >= 2 ? &w->state_names[state_slot(name, len)] : NULL;
        if (e && !e->name)
            *e = (state_name){name, len, ref_jobstate_from_name(name)};
    }
}

/* ref_jobstate_from_name(name) for a name of len bytes, without comparing
 * it with every state's name: a journal record's state is one of the
 * names filed by state_names_init, found by its place and one compare. */
static int state_of(const world *w, const char *name, size_t len)
{
    if (len >= 2) {
        const state_name *e = &w->state_names[state_slot(name, len)];
        if (e->name && e->len == len && memcmp(e->name, name, len) == 0)
            return e->state;
    }
    return ref_jobstate_from_name(name);
}

static void check_job_record(world *w, const sim_jview *o, jinfo *j)
{
    int to = state_of(w, o->state, o->state_len);
    int from = j->state;
    ref_js_outcome oc = ref_jobstate_check(from, to);
    if (from != REF_JOB_NONE || to != REF_JOB_PENDING) {
        if (j->terminal && to != from && inv_on(w, SIM_INV_ONE_TERMINAL))
            violation(w, "one-terminal", j->job_id, "%s after terminal %s", ref_jobstate_name(to),
                      ref_jobstate_name(from));
        else if (ref_js_outcome_is_reject(oc) && inv_on(w, SIM_INV_NO_BACKWARD))
            violation(w, "no-backward", j->job_id, "%s -> %s (%s)", ref_jobstate_name(from),
                      ref_jobstate_name(to), ref_jobstate_rule(from, to));
    }
    /* A FAILED_FATAL result the scheduler took for the current attempt is
     * final (cap-spec 07): the job may end no other way. */
    if (to != REF_JOB_FAILED_FATAL && to != from &&
        (from == REF_JOB_DISPATCHED || from == REF_JOB_RUNNING) && inv_on(w, SIM_INV_ONE_TERMINAL)) {
        uint64_t fatal = j->fatal_attempt;
        double a = !fatal ? 0 : o->attempt_str ? strtod(o->attempt_str, NULL) : o->attempt_num;
        if (fatal && (double)(fatal - 1) == a)
            violation(w, "one-terminal", j->job_id,
                      "%s after a FAILED_FATAL result for attempt %.0f (a final status)",
                      ref_jobstate_name(to), a);
    }
    if (o->ev[0] == 'd' && strcmp(o->ev, "dispatch") == 0) {
        const char *snap = o->snapshot;
        const ref_policy *p = ref_safety_policy(w->safety);
        int d = o->has_decision ? (int)o->decision : 0;
        int allow = d == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW ||
                    d == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS;
        if (inv_on(w, SIM_INV_DISPATCH_ALLOWED) &&
            (!allow || !snap || !p || strcmp(snap, p->snapshot) != 0))
            violation(w, "dispatch-allowed", j->job_id,
                      "dispatched with decision %d under snapshot %s; current snapshot %s", d,
                      snap ? snap : "?", p ? p->snapshot : "none");
        if (j->parked_once && inv_on(w, SIM_INV_APPROVAL_BOUND)) {
            const char *hash = o->hash, *asnap = o->appr_snapshot;
            gateway_request_hash(w, j);
            int ok = o->has_appr && (int)o->appr == 2 && hash && asnap && p &&
                     strcmp(asnap, p->snapshot) == 0 && (!j->hash[0] || strcmp(hash, j->hash) == 0);
            if (!ok)
                violation(w, "approval-bound", j->job_id,
                          "a job that needed a human was dispatched without an approval bound "
                          "to its request hash and the current snapshot");
        }
    }
    if (ref_js_outcome_applies(oc) || from == REF_JOB_NONE) {
        if (to == REF_JOB_APPROVAL_REQUIRED && from != REF_JOB_APPROVAL_REQUIRED) {
            j->parked_once = 1;
            j->parked_at = w->now;
            w->open_jobs--;
            approver_schedule(w, j);
        } else if (from == REF_JOB_APPROVAL_REQUIRED && to != REF_JOB_APPROVAL_REQUIRED) {
            w->res->approval_wait_ns += w->now - j->parked_at;
            if (!ref_jobstate_is_terminal(to))
                w->open_jobs++;
        }
        j->state = to;
        if (ref_jobstate_is_terminal(to) && !j->terminal) {
            j->terminal = 1;
            if (from != REF_JOB_APPROVAL_REQUIRED)
                w->open_jobs--;
            size_t t = j->topic;
            if (t != (size_t)-1 && sim_hist_add(&w->lat[t], w->now - j->submit_at))
                w->err = CAP_ENOMEM;
            /* the gateway's next move */
            sim_event ne = {.time = w->now, .kind = EV_NEXT_STEP, .data = NULL};
            ne.id = 0;
            ne.actor = 0;
            if (j->gateway && (j->client >= 0 || (j->wf && to == REF_JOB_SUCCEEDED && j->step < j->steps))) {
                ne.data = xdup(j->job_id);
                if (!ne.data || sim_queue_push(&w->q, &ne, NULL))
                    w->err = CAP_ENOMEM;
            }
        }
    }
    if (to == REF_JOB_APPROVAL_REQUIRED && strcmp(o->ev, "approval-stale") == 0) {
        w->res->approvals_stale++;
        approver_schedule(w, j); /* a human looks again under the new policy */
    }
}

/* An evicted job's journal entry: its records are dropped, and the table
 * is compacted once half of it is gone. */
static void journal_gone(world *w, size_t i)
{
    jentry *e = &w->journal[i];
    if (e->gone)
        return;
    e->gone = 1;
    free(e->first);
    free(e->latest);
    e->first = e->latest = NULL;
    if (++w->n_journal_gone <= 1024 || w->n_journal_gone * 2 <= w->n_journal)
        return;
    size_t n = 0;
    for (size_t k = 0; k < w->n_journal; k++) {
        jentry *x = &w->journal[k];
        if (x->gone)
            continue;
        w->journal[n] = *x;
        x = &w->journal[n++];
        if (x->owner)
            x->owner->jidx = n;
    }
    w->n_journal = n;
    w->n_journal_gone = 0;
}

/* How long a "replay" record is kept for a restart: at least as long as
 * the guard could retain its entry, max(first seen + ttl, expires_at +
 * skew), where expires_at is at most the longest signature lifetime plus
 * the skew past the first sighting (the guard refuses a later one).
 * Keeping one longer is harmless: the restored entry counts as absent. */
#define REPLAY_KEEP_NS \
    (REF_DEDUPE_DEFAULT_TTL_NS + SIM_SIGN_MAX_LIFETIME_NS + 2 * REF_DEDUPE_DEFAULT_SKEW_NS)

/* Keeps a "replay" record; drops the ones kept longer than REPLAY_KEEP_NS
 * ago (a FIFO: they were kept in time order). */
static void keep_replay(world *w, const char *line)
{
    while (w->replay_head < w->n_replay && w->replay_at[w->replay_head] + REPLAY_KEEP_NS < w->now)
        free(w->replay_log[w->replay_head++]);
    if (w->replay_head > 1024 && w->replay_head * 2 > w->n_replay) { /* slide down */
        size_t live = w->n_replay - w->replay_head;
        memmove(w->replay_log, w->replay_log + w->replay_head, live * sizeof *w->replay_log);
        memmove(w->replay_at, w->replay_at + w->replay_head, live * sizeof *w->replay_at);
        w->n_replay = live;
        w->replay_head = 0;
    }
    if (grow((void **)&w->replay_log, &w->cap_replay, w->n_replay + 1, sizeof *w->replay_log) ||
        grow((void **)&w->replay_at, &w->cap_replay_at, w->n_replay + 1, sizeof *w->replay_at) ||
        !(w->replay_log[w->n_replay] = xdup(line))) {
        w->err = CAP_ENOMEM;
        return;
    }
    w->replay_at[w->n_replay++] = w->now;
}

/* A journal record's kind ("k"), named once per record. */
enum { REC_NONE, REC_JOB, REC_EVICT, REC_SAGA, REC_REPLAY, REC_NOTE, REC_OTHER };

static int record_kind(const char *k)
{
    if (!k)
        return REC_NONE;
    if (k[0] == 'j' && k[1] == 'o' && k[2] == 'b' && !k[3]) /* most records */
        return REC_JOB;
    return strcmp(k, "evict") == 0    ? REC_EVICT
           : strcmp(k, "saga") == 0   ? REC_SAGA
           : strcmp(k, "replay") == 0 ? REC_REPLAY
           : strcmp(k, "note") == 0   ? REC_NOTE
                                      : REC_OTHER;
}

/* Keeps a record of kind kind in the compacted journal; j is the job a
 * "job" or "evict" record is about (NULL when the checker does not know
 * it). */
static void journal_keep(world *w, const char *line, const sim_jview *o, int kind, jinfo *j)
{
    if (kind == REC_NONE || kind == REC_NOTE)
        return;
    if (kind == REC_REPLAY) {
        if (w->keep_journal)
            keep_replay(w, line);
        return;
    }
    if (kind == REC_SAGA) {
        if (grow((void **)&w->saga_log, &w->cap_saga, w->n_saga + 1, sizeof *w->saga_log) ||
            !(w->saga_log[w->n_saga] = xdup(line))) {
            w->err = CAP_ENOMEM;
            return;
        }
        w->n_saga++;
        return;
    }
    if (!o->job_id)
        return;
    size_t idx = j ? j->jidx : 0;
    if (kind == REC_EVICT) {
        if (j)
            j->jidx = 0;
        job_retire(w, j);
        if (idx)
            journal_gone(w, idx - 1);
        return;
    }
    if (!w->keep_journal)
        return;
    size_t n = strlen(line) + 1;
    if (idx) {
        jentry *e = &w->journal[idx - 1];
        if (e->latest && n <= e->cap_latest) { /* reuse the buffer */
            memcpy(e->latest, line, n);
            return;
        }
        char *c = malloc(n);
        if (!c) {
            w->err = CAP_ENOMEM;
            return;
        }
        memcpy(c, line, n);
        free(e->latest);
        e->latest = c;
        e->cap_latest = n;
        return;
    }
    char *copy = malloc(n);
    if (!copy || grow((void **)&w->journal, &w->cap_journal, w->n_journal + 1, sizeof *w->journal)) {
        free(copy);
        w->err = CAP_ENOMEM;
        return;
    }
    memcpy(copy, line, n);
    jentry *e = &w->journal[w->n_journal++];
    memset(e, 0, sizeof *e);
    e->owner = j;
    e->first = copy;
    if (j)
        j->jidx = w->n_journal;
}

/* The scheduler admitted j, whose submit was picked for a twin: the twin
 * goes out `after` later (EV_TWIN). */
static void send_twin_later(world *w, jinfo *j)
{
    twin *t = j->twin;
    sim_event ev = {.time = w->now + t->after, .kind = EV_TWIN, .data = t};
    if (!(t->of = xdup(j->job_id)) || sim_queue_push(&w->q, &ev, NULL)) {
        w->err = CAP_ENOMEM;
        return;
    }
    j->twin = NULL; /* the event owns it now */
    w->twins_pending++;
}

/* A journal record, read into v: line is its text (NULL for a view,
 * which is never kept). */
static void on_record(world *w, const char *line, const sim_jview *vp)
{
    const sim_jview v = *vp;
    /* The story parses a record whole; only its job's records are worth
     * it (v holds the same "job_id" member the story reads). */
    if (w->story && (!v.job_id || strcmp(v.job_id, sim_story_job(w->story)) == 0))
        sim_story_journal(w->story, w->now, line);
    int kind = record_kind(v.k);
    jinfo *j = kind == REC_JOB                  ? record_job(w, &v)
               : kind == REC_EVICT && v.job_id ? job_get(w, v.job_id)
                                                : NULL;
    journal_keep(w, line, &v, kind, j);
    if (kind == REC_JOB) {
        if (j)
            check_job_record(w, &v, j);
        if (j && j->twin && !w->err)
            send_twin_later(w, j);
    } else if (kind == REC_SAGA) {
        const char *op = v.op;
        const char *wf = v.wf;
        const char *job = v.job_id;
        if (op && wf && job) {
            if (strcmp(op, "trigger") == 0)
                w->res->rollbacks++;
            check_compensation_order(w, op, wf, job);
        }
    }
}

static void on_journal(world *w, const char *line, size_t len)
{
    sim_jview v;
    if (!sim_jview_read_n(&w->jreader, line, len, &v)) {
        violation(w, "journal", NULL, "the scheduler wrote a record that is not a JSON object");
        return;
    }
    on_record(w, line, &v);
}

/* The view record of a job or an eviction, as sim_jview_read gives the
 * same record's text (ref_sched_view names the members it holds). */
static void view_as_jview(const ref_sched_view *sv, sim_jview *v)
{
    memset(v, 0, sizeof *v);
    v->attempt_num = NAN;
    v->job_id = sv->job_id;
    if (sv->kind == REF_SCHED_VIEW_EVICT) {
        v->k = "evict";
        return;
    }
    v->k = "job";
    v->ev = sv->ev;
    v->state = sv->state;
    v->state_len = sv->state_len;
    v->snapshot = sv->snapshot;
    v->hash = sv->hash;
    v->appr_snapshot = sv->appr_snapshot;
    v->has_decision = v->has_appr = 1; /* "attempt" is a string in the text: no has_attempt */
    v->decision = sv->decision;
    v->appr = sv->appr;
    v->attempt_num = (double)sv->attempt;
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The first member the checker reads in which two views of one record
 * differ, or NULL when they agree. */
static const char *jview_differs(const sim_jview *a, const sim_jview *b)
{
    double at = a->attempt_str ? strtod(a->attempt_str, NULL) : a->attempt_num;
    double bt = b->attempt_str ? strtod(b->attempt_str, NULL) : b->attempt_num;
    return !same_str(a->k, b->k)                         ? "k"
           : !same_str(a->job_id, b->job_id)             ? "job_id"
           : !same_str(a->ev, b->ev)                     ? "ev"
           : !same_str(a->state, b->state)               ? "state"
           : !same_str(a->snapshot, b->snapshot)         ? "snapshot"
           : !same_str(a->hash, b->hash)                 ? "hash"
           : !same_str(a->appr_snapshot, b->appr_snapshot) ? "appr_snapshot"
           : !same_str(a->op, b->op) || !same_str(a->wf, b->wf) ? "op"
           : a->has_decision != b->has_decision || (a->has_decision && a->decision != b->decision)
               ? "decision"
           : a->has_appr != b->has_appr || (a->has_appr && a->appr != b->appr) ? "appr"
           : at != bt && !(isnan(at) && isnan(bt)) ? "attempt"
               : NULL;
}

/* A view record of the scheduler's. prev is the effect before it: with
 * journal_check on, the same record as text, already checked; the view
 * must then agree with it, and is not checked again. */
static void on_journal_view(world *w, const ref_effect *e, const ref_effect *prev)
{
    ref_sched_view sv;
    sim_jview v;
    if (ref_sched_view_read(e->record, e->record_len, &sv) != CAP_OK) {
        violation(w, "journal", NULL, "the scheduler wrote a view record that does not read");
        return;
    }
    view_as_jview(&sv, &v);
    if (!w->cfg->journal_check) {
        on_record(w, NULL, &v);
        return;
    }
    sim_jview t;
    if (!prev || prev->kind != REF_EFFECT_JOURNAL ||
        !sim_jview_read_n(&w->jreader, prev->record, prev->record_len, &t)) {
        violation(w, "journal", sv.job_id, "a view record without its text record before it");
        return;
    }
    const char *m = jview_differs(&t, &v);
    if (m)
        violation(w, "journal", sv.job_id, "the view of a record differs from its text in \"%s\": %s",
                  m, prev->record);
}

/* ---- effects -------------------------------------------------------------- */

static void apply_effects(world *w, actor *a)
{
    for (size_t i = 0; i < ref_effects_count(&w->fx) && !w->err; i++) {
        const ref_effect *e = ref_effects_at(&w->fx, i);
        switch (e->kind) {
        case REF_EFFECT_PUBLISH: {
            int rc = sim_bus_publish(w->bus, a->bus_id, e->subject, NULL, e->packet, w->now, &w->q);
            if (rc < 0 && rc != CAP_EINVAL)
                w->err = rc;
            if (e->packet->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_ALERT &&
                e->packet->alert->error_code_enum == 206)
                w->res->breaker_openings++;
            break;
        }
        case REF_EFFECT_TIMER_SET:
            if (set_timer(w, a, e->timer_id, e->at))
                w->err = CAP_ENOMEM;
            break;
        case REF_EFFECT_TIMER_CANCEL: cancel_timer(w, a, e->timer_id); break;
        case REF_EFFECT_JOURNAL:
            if (a->type == A_SCHEDULER)
                on_journal(w, e->record, e->record_len);
            break;
        case REF_EFFECT_JOURNAL_VIEW:
            if (a->type == A_SCHEDULER)
                on_journal_view(w, e, i ? ref_effects_at(&w->fx, i - 1) : NULL);
            break;
        }
    }
    ref_effects_clear(&w->fx);
}

/* ---- workers ---------------------------------------------------------------- */

/* A job carrying cap.conformance.* labels follows that plan instead of the
 * behaviour model (ref_conformance.h): no draws from the actor's stream, no
 * crash; its progress reports are EV_PROGRESS events holding the packet,
 * published only while the attempt still runs on this incarnation. A
 * malformed plan fails the job for good. Returns 1 when it answered. */
static int conformance_handler(world *w, actor *a, const job_request *req, int64_t now,
                               ref_work *out)
{
    ref_conformance_plan plan;
    uint64_t attempt = req->dispatch ? req->dispatch->attempt : 1;
    if (ref_conformance_plan(req, attempt, &plan, NULL) != CAP_OK) {
        out->outcome = REF_WORK_FAILED_FATAL;
        out->text = "conformance: malformed cap.conformance label";
        out->service_ns = 0;
    } else if (!plan.has_contract) {
        return 0;
    } else {
        ref_conformance_work(&plan, out);
        const char *trace = w->worker_pkt ? w->worker_pkt->trace_id : NULL;
        for (uint32_t k = 1; k <= plan.progress_steps && !w->err; k++) {
            int64_t off = ref_conformance_progress_at(&plan, 0, k);
            cap_packet *p = ref_conformance_progress_packet(req, trace, a->name, k,
                                                            plan.progress_steps, now + off);
            sim_event ev = {.time = w->now + off, .kind = EV_PROGRESS, .actor = a->bus_id,
                            .id = a->incarnation, .data = p};
            if (!p)
                w->err = CAP_ENOMEM;
            else if (sim_queue_push(&w->q, &ev, NULL)) {
                cap_packet_free(p);
                w->err = CAP_EFULL;
            }
        }
    }
    if (a->running++ == 0)
        a->busy_since = w->now;
    return 1;
}

/* Frees a list of handler-once keys, taking each out of handler_seen
 * first (the map borrows their text; at teardown it is freed first). */
static void hkeys_free(world *w, hkey *k)
{
    while (k) {
        hkey *next = k->next;
        if (ref_strmap_len(&w->handler_seen))
            ref_strmap_del(&w->handler_seen, k->key);
        free(k);
        k = next;
    }
}

static void handler_keys_drop(world *w, jinfo *j)
{
    if (j->seen0[0] && ref_strmap_len(&w->handler_seen))
        ref_strmap_del(&w->handler_seen, j->seen0);
    j->seen0[0] = 0;
    hkeys_free(w, j->seen);
    j->seen = NULL;
}

/* The handler-once key of (dispatch_id, attempt) is "<dispatch_id>#<attempt>":
 * hkey_len gives its size with the NUL, hkey_write writes it to key (which
 * has that much room). */
static size_t hkey_len(const char *dispatch_id, uint64_t attempt)
{
    size_t digits = 1;
    for (uint64_t v = attempt; v >= 10; v /= 10)
        digits++;
    return strlen(dispatch_id) + 1 + digits + 1;
}

static void hkey_write(char *key, const char *dispatch_id, uint64_t attempt)
{
    char num[24], *end = num + sizeof num;
    char *d = cap_fmt_u64(end, attempt);
    size_t dl = strlen(dispatch_id), nl = (size_t)(end - d);
    memcpy(key, dispatch_id, dl);
    key[dl] = '#';
    memcpy(key + dl + 1, d, nl);
    key[dl + 1 + nl] = 0;
}

/* Asks the cache for what handler_once will read for a dispatch the worker
 * is about to take (its job's entry and its key's place in the map), so
 * that those cold lines arrive while the worker checks the dispatch. A
 * hint only: nothing depends on it. */
static void handler_once_prefetch(world *w, const cap_packet *p)
{
    const Cordum__Agent__V1__JobRequest *req =
        p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST ? p->job_request : NULL;
    if (!req || !req->dispatch || !req->dispatch->dispatch_id || !inv_on(w, SIM_INV_HANDLER_ONCE))
        return;
    char key[160];
    if (hkey_len(req->dispatch->dispatch_id, req->dispatch->attempt) > sizeof key)
        return;
    hkey_write(key, req->dispatch->dispatch_id, req->dispatch->attempt);
    ref_strmap_prefetch(&w->handler_seen, key);
    if (req->job_id)
        job_prefetch(w, req->job_id);
}

/* Notes that the handler ran for (dispatch_id, attempt) of job_id: a
 * second run is a handler-once violation. The key is kept with its job,
 * to drop it when the job is retired. */
static void handler_once(world *w, const char *job_id, const char *dispatch_id,
                         uint64_t attempt, const char *worker)
{
    size_t n = hkey_len(dispatch_id, attempt);
    jinfo *j = job_id ? job_get(w, job_id) : NULL;
    hkey *k = NULL; /* NULL: the key is the job's seen0 */
    char *key;
    if (j && !j->seen0[0] && n <= sizeof j->seen0) {
        key = j->seen0;
    } else if ((k = malloc(sizeof *k + n))) {
        key = k->key;
    } else {
        w->err = CAP_ENOMEM;
        return;
    }
    hkey_write(key, dispatch_id, attempt);
    void *seen = NULL;
    int rc = ref_strmap_put_new(&w->handler_seen, key, k ? (void *)k : (void *)j, &seen);
    if (rc || seen) {
        if (rc)
            w->err = CAP_ENOMEM;
        else
            violation(w, "handler-once", job_id,
                      "the handler ran twice for dispatch %s attempt %llu (on %s)", dispatch_id,
                      (unsigned long long)attempt, worker);
        if (k)
            free(k);
        else
            j->seen0[0] = 0; /* not kept */
        return;
    }
    if (!k)
        return;
    hkey **list = j ? &j->seen : &w->orphan_keys;
    k->next = *list;
    *list = k;
}

/* ---- checkpoints (worker spec `checkpoints`) ---------------------------- */

/* The text of checkpoint k of n of an attempt, as a JobProgress result_ptr
 * (the memo the scheduler hands to the next attempt). */
static void checkpoint_memo(char *buf, size_t len, uint32_t k, uint32_t n, uint64_t attempt,
                            const char *job_id)
{
    snprintf(buf, len, "checkpoint %" PRIu32 " of %" PRIu32 ", attempt %" PRIu64 ", job %s", k, n,
             attempt, job_id);
}

/* Reads a memo checkpoint_memo wrote for job_id: 1 with *k, *n, *attempt. */
static int checkpoint_parse(const char *memo, const char *job_id, uint32_t *k, uint32_t *n,
                            uint64_t *attempt)
{
    unsigned kk, nn;
    unsigned long long at;
    int pos = -1;
    if (sscanf(memo, "checkpoint %u of %u, attempt %llu, job %n", &kk, &nn, &at, &pos) != 3 ||
        pos < 0 || strcmp(memo + pos, job_id) != 0 || kk < 1 || kk > nn ||
        nn > SIM_MAX_CHECKPOINTS)
        return 0;
    *k = kk;
    *n = nn;
    *attempt = at;
    return 1;
}

static const char *env_value(const job_request *req, const char *key)
{
    for (size_t i = 0; i < req->n_env; i++)
        if (req->env[i] && strcmp(req->env[i]->key, key) == 0)
            return req->env[i]->value;
    return NULL;
}

/* Invariant checkpoint: the memo an attempt is handed is a checkpoint its
 * own job reported, in an earlier attempt. */
static void checkpoint_check(world *w, const job_request *req, const char *memo)
{
    jinfo *j = job_get(w, req->job_id);
    uint64_t attempt = req->dispatch ? req->dispatch->attempt : 0;
    for (size_t i = 0; j && i < j->n_memos; i++)
        if (strcmp(j->memos[i], memo) == 0) {
            uint32_t k, n;
            uint64_t from;
            if (checkpoint_parse(memo, req->job_id, &k, &n, &from) && from >= attempt)
                violation(w, "checkpoint", req->job_id,
                          "attempt %" PRIu64 " was handed a checkpoint of attempt %" PRIu64
                          " (\"%s\")",
                          attempt, from, memo);
            return;
        }
    violation(w, "checkpoint", req->job_id,
              "attempt %" PRIu64 " was handed \"%s\" as its checkpoint, which the job never "
              "reported",
              attempt, memo);
}

/* The checkpoints of an attempt whose whole work takes `full` ns, resumed
 * from `done` (the fraction a handed checkpoint had reached, 0 when none):
 * the spec's checkpoints past `done`, each a JobProgress queued as an
 * EV_PROGRESS event (published only while the attempt still runs), at
 * its share of the work. */
static void checkpoint_schedule(world *w, actor *a, const job_request *req, int64_t full,
                                double done)
{
    uint32_t n = a->spec->checkpoints;
    uint64_t attempt = req->dispatch ? req->dispatch->attempt : 0;
    const char *trace = w->worker_pkt ? w->worker_pkt->trace_id : NULL;
    for (uint32_t k = 1; k <= n && !w->err; k++) {
        double at = (double)k / (double)(n + 1);
        if (at <= done)
            continue;
        int64_t off = (int64_t)((double)full * (at - done));
        char memo[REF_SCHED_ID_MAX + 96]; /* job ids are at most REF_SCHED_ID_MAX bytes */
        checkpoint_memo(memo, sizeof memo, k, n, attempt, req->job_id);
        cap_packet *p = ref_worker_progress_packet(trace, a->name, req->job_id,
                                                   (int32_t)(100.0 * at), "checkpoint",
                                                   req->dispatch, req->identity, w->now + off);
        char *ptr = p ? strdup(memo) : NULL;
        if (!ptr) {
            cap_packet_free(p);
            w->err = CAP_ENOMEM;
            return;
        }
        p->job_progress->result_ptr = ptr;
        sim_event ev = {.time = w->now + off, .kind = EV_PROGRESS, .actor = a->bus_id,
                        .id = a->incarnation, .data = p};
        if (sim_queue_push(&w->q, &ev, NULL)) {
            cap_packet_free(p);
            w->err = CAP_EFULL;
        }
    }
}

static void worker_handler(void *ctx, const job_request *req, int64_t now, ref_work *out)
{
    actor *a = ctx;
    world *w = a->w;
    (void)now;
    const sim_worker_spec *sp = a->spec;
    w->res->handler_calls++;
    if (req->dispatch && inv_on(w, SIM_INV_HANDLER_ONCE))
        handler_once(w, req->job_id, req->dispatch->dispatch_id, req->dispatch->attempt, a->name);
    const char *memo = env_value(req, REF_SCHED_ENV_LAST_MEMO);
    if (memo && memo[0] && inv_on(w, SIM_INV_CHECKPOINT))
        checkpoint_check(w, req, memo);
    if (conformance_handler(w, a, req, now, out)) {
        if (w->story && req->job_id && strcmp(req->job_id, sim_story_job(w->story)) == 0)
            sim_story_say(w->story, w->now, a->name, "handler",
                          "runs dispatch %s attempt %llu: follows its conformance plan",
                          req->dispatch ? req->dispatch->dispatch_id : "-",
                          (unsigned long long)(req->dispatch ? req->dispatch->attempt : 0));
        return;
    }
    double u = sim_rng_double(&a->rng);
    int64_t full = sim_dist_draw(&sp->service, &a->rng);
    /* a handed checkpoint of this job: only the rest of the work is left */
    uint32_t ck, cn;
    uint64_t cfrom;
    double done = 0;
    if (memo && req->job_id && checkpoint_parse(memo, req->job_id, &ck, &cn, &cfrom)) {
        done = (double)ck / (double)(cn + 1);
        w->res->checkpoint_resumes++;
    }
    int64_t service = full - (int64_t)((double)full * done);
    out->service_ns = service;
    if (sp->checkpoints)
        checkpoint_schedule(w, a, req, full, done);
    if (u < sp->p_retryable) {
        out->outcome = REF_WORK_FAILED_RETRYABLE;
        out->text = "transient failure (simulated)";
    } else if (u < sp->p_retryable + sp->p_fatal) {
        out->outcome = REF_WORK_FAILED_FATAL;
        out->text = "fatal failure (simulated)";
    } else if (u < sp->p_retryable + sp->p_fatal + sp->p_hang) {
        out->outcome = REF_WORK_HANG;
        out->text = "hangs (simulated)";
    } else {
        out->outcome = REF_WORK_SUCCEEDED;
        out->text = "result://simulated";
    }
    int crash = sp->p_crash > 0 && sim_rng_bernoulli(&a->rng, sp->p_crash);
    if (crash) {
        sim_event ev = {.time = w->now + service / 2, .kind = EV_CRASH_WORKER, .actor = a->bus_id,
                        .id = a->incarnation};
        if (sim_queue_push(&w->q, &ev, NULL))
            w->err = CAP_EFULL;
    }
    if (w->story && req->job_id && strcmp(req->job_id, sim_story_job(w->story)) == 0)
        sim_story_say(w->story, w->now, a->name, "handler",
                      "runs dispatch %s attempt %llu%s%s: %s (\"%s\") after %.3f ms%s",
                      req->dispatch ? req->dispatch->dispatch_id : "-",
                      (unsigned long long)(req->dispatch ? req->dispatch->attempt : 0),
                      done > 0 ? ", resumed from " : "", done > 0 ? memo : "",
                      ref_work_outcome_name(out->outcome), out->text, (double)service / 1e6,
                      crash ? "; the worker crashes halfway" : "");
    if (a->running++ == 0)
        a->busy_since = w->now;
}

static int label_cmp(const void *x, const void *y)
{
    return strcmp(((const ref_worker_label *)x)->key, ((const ref_worker_label *)y)->key);
}

static int worker_boot(world *w, actor *a)
{
    const sim_worker_spec *sp = a->spec;
    a->hb_late = 0; /* a late heartbeat of the last incarnation is not this one's */
    ref_worker_label labels[SIM_SCENARIO_MAX_KV];
    size_t nl = sp->n_labels < SIM_SCENARIO_MAX_KV ? sp->n_labels : SIM_SCENARIO_MAX_KV;
    for (size_t i = 0; i < nl; i++)
        labels[i] = (ref_worker_label){sp->labels[i].key, sp->labels[i].value};
    qsort(labels, nl, sizeof *labels, label_cmp);
    ref_worker_config c = {0};
    c.worker_id = a->name;
    c.pool = sp->pool;
    c.max_parallel_jobs = sp->max_parallel > 0 ? sp->max_parallel : 1;
    c.heartbeat_interval_ns = sp->heartbeat_ns;
    c.capabilities = (const char *const *)sp->capabilities;
    c.n_capabilities = sp->n_capabilities;
    c.labels = labels;
    c.n_labels = nl;
    c.handler = worker_handler;
    c.handler_ctx = a;
    c.no_journal = 1; /* the checker reads the scheduler's journal only */
    /* A restart keeps the records of the process that died (worker_stop) */
    int rc = a->worker ? CAP_OK : ref_worker_init(&c, &a->worker);
    if (rc)
        return rc;
    a->alive = 1;
    a->running = 0;
    rc = ref_worker_start(a->worker, local_time(w, a), &w->fx);
    if (rc < 0)
        return rc;
    apply_effects(w, a);
    return CAP_OK;
}

static void worker_stop(world *w, actor *a)
{
    if (!a->alive)
        return;
    if (a->running > 0)
        a->busy_ns += w->now - a->busy_since;
    a->running = 0;
    a->alive = 0;
    new_incarnation(a); /* its timers die with it */
    if (ref_worker_crash(a->worker, local_time(w, a), &w->fx) < 0)
        w->err = CAP_ENOMEM;
    ref_effects_clear(&w->fx); /* journal lines only (none: no_journal) */
}

/* ---- the scheduler -------------------------------------------------------- */

static int sched_config(world *w, ref_sched_config *c, ref_breaker_config *bc)
{
    const sim_scenario *s = w->scn;
    *c = ref_sched_config_default();
    c->safety = w->safety;
    c->rand = sim_rng_as_ref(&w->sched_rng);
    if (s->dispatch_timeout_ns)
        c->dispatch_timeout_ns = s->dispatch_timeout_ns;
    if (s->running_timeout_ns)
        c->running_timeout_ns = s->running_timeout_ns;
    if (s->no_worker_wait_ns)
        c->no_worker_wait_ns = s->no_worker_wait_ns;
    if (s->max_retries_set) {
        c->max_retries = s->max_retries;
        c->max_retries_set = 1;
    }
    if (s->worker_grace_ns) {
        w->reg_cfg = ref_registry_config_default();
        w->reg_cfg.heartbeat_interval_ns = s->worker_grace_ns;
        w->reg_cfg.grace_multiplier = 1;
        c->registry = &w->reg_cfg;
    }
    *bc = ref_breaker_config_default();
    if (s->breaker_threshold)
        bc->failure_threshold = s->breaker_threshold;
    if (s->breaker_cool_down_ns)
        bc->cool_down_ns = s->breaker_cool_down_ns;
    c->breaker = bc;
    /* a story reads the records' text */
    c->journal_form = w->cfg->journal_check            ? REF_SCHED_JOURNAL_BOTH
                      : w->keep_journal || w->story ? REF_SCHED_JOURNAL_TEXT
                                                       : REF_SCHED_JOURNAL_VIEW;
    return CAP_OK;
}

static int sched_boot(world *w)
{
    ref_sched_config c;
    ref_breaker_config bc;
    sched_config(w, &c, &bc);
    int rc = ref_sched_new(&c, &w->sched, w->d);
    if (rc)
        return rc;
    w->scheduler->alive = 1;
    rc = ref_sched_start(w->sched, local_time(w, w->scheduler), &w->fx);
    if (rc < 0)
        return rc;
    apply_effects(w, w->scheduler);
    return CAP_OK;
}

static void sched_crash(world *w)
{
    if (!w->scheduler->alive)
        return;
    /* A restored scheduler counts from zero: the summary adds up every
     * incarnation's counts. */
    ref_sched_stats st = ref_sched_stats_get(w->sched);
    w->carried.retries += st.retries;
    w->carried.dlq += st.dlq;
    w->carried.duplicates += st.duplicates;
    ref_sched_free(w->sched);
    w->sched = NULL;
    w->scheduler->alive = 0;
    new_incarnation(w->scheduler);
}

static void deliver_to_sched(world *w, const char *subject, const cap_packet *p, const sim_delivery *dl);
static void checkpoint_told(world *w, const char *job_id, const char *memo);
static void story_delivery(world *w, const sim_delivery *dl, const actor *a, int held, int rc,
                           const cap_diag *d);

static int sched_restart(world *w)
{
    sched_crash(w);
    /* The compacted journal: the replay guard's entries, each live job's
     * first and latest record, then the saga steps in order. */
    size_t n = 0;
    const char **recs =
        malloc((w->n_replay + 2 * w->n_journal + w->n_saga + 1) * sizeof *recs);
    if (!recs)
        return CAP_ENOMEM;
    for (size_t i = w->replay_head; i < w->n_replay; i++)
        recs[n++] = w->replay_log[i];
    for (size_t i = 0; i < w->n_journal; i++) {
        if (w->journal[i].gone)
            continue;
        recs[n++] = w->journal[i].first;
        if (w->journal[i].latest)
            recs[n++] = w->journal[i].latest;
    }
    for (size_t i = 0; i < w->n_saga; i++)
        recs[n++] = w->saga_log[i];
    ref_sched_config c;
    ref_breaker_config bc;
    sched_config(w, &c, &bc);
    int rc = ref_sched_new(&c, &w->sched, w->d);
    if (!rc)
        rc = ref_sched_restore(w->sched, recs, n, local_time(w, w->scheduler), &w->fx, w->d);
    free(recs);
    if (rc < 0) {
        violation(w, "restart", NULL, "the scheduler did not restore from its journal: %s",
                  w->d->reason);
        return CAP_OK;
    }
    w->scheduler->alive = 1;
    apply_effects(w, w->scheduler);
    /* Nothing lost: every job the checker knows is there, in its state. */
    if (inv_on(w, SIM_INV_RESTART))
        for (size_t i = 0; i < w->n_jobs && !w->stop; i++) {
            jinfo *j = w->job_list[i];
            if (!j)
                continue;
            ref_sched_job_info info;
            if (j->state == REF_JOB_NONE)
                continue;
            if (ref_sched_job(w->sched, j->job_id, &info) != CAP_OK) {
                if (j->jidx) /* an evicted job may be gone; a journaled one may not */
                    violation(w, "restart", j->job_id, "job lost by the restart");
            } else if (info.state != j->state) {
                violation(w, "restart", j->job_id, "state %s before the crash, %s after",
                          ref_jobstate_name(j->state), ref_jobstate_name(info.state));
            }
        }
    /* JetStream: what arrived while it was down is delivered now. */
    for (size_t i = 0; i < w->n_held; i++) { /* after a violation: only freed */
        sim_msg msg;
        cap_diag d;
        sim_event *ev = &w->held[i];
        if (w->stop) {
            sim_delivery_free(ev->data);
            continue;
        }
        int drc = sim_bus_deliver(w->bus, ev, w->now, &msg, &d);
        const sim_delivery *dl = ev->data;
        if (w->story && sim_story_follows(w->story, dl->msg_id))
            story_delivery(w, dl, w->scheduler, 0, drc, &d);
        if (drc == CAP_OK) {
            deliver_to_sched(w, msg.d->subject, msg.packet, msg.d);
            sim_bus_release(w->bus, &msg);
        }
        sim_delivery_free(ev->data);
    }
    w->n_held = 0;
    return CAP_OK;
}

static void deliver_to_sched(world *w, const char *subject, const cap_packet *p, const sim_delivery *dl)
{
    /* With signing on, what the replay guard answered to a signed submit:
     * a duplicate, or a refusal the scheduler counts by verdict. */
    int signed_submit = w->sign_key && p->signature_metadata &&
                        p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    ref_sched_stats before = signed_submit ? ref_sched_stats_get(w->sched) : (ref_sched_stats){0};
    switch (p->payload_case) {
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT: job_prefetch(w, p->job_result->job_id); break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS:
        job_prefetch(w, p->job_progress->job_id);
        if (p->job_progress->result_ptr[0])
            checkpoint_told(w, p->job_progress->job_id, p->job_progress->result_ptr);
        break;
    default: break;
    }
    int rc = ref_sched_on_packet(w->sched, subject, p, dl->bytes, dl->len,
                                 local_time(w, w->scheduler), &w->fx);
    if (rc == REF_SCHED_STALE)
        w->res->stale++;
    if (signed_submit && w->n_twins) {
        twin *t = ref_strmap_get(&w->twins, p->job_request->job_id ? p->job_request->job_id : "");
        if (t && !t->landed) {
            t->landed = 1;
            w->twins_pending--;
        }
    }
    if (signed_submit) {
        ref_sched_stats after = ref_sched_stats_get(w->sched);
        w->res->signed_duplicates += rc == REF_SCHED_DUPLICATE;
        w->res->signed_expired += after.replays_expired - before.replays_expired;
        w->res->signed_conflicts += after.replays_conflicting - before.replays_conflicting;
    }
    if (rc < 0)
        w->err = rc;
    /* The checker learns of a FAILED_FATAL result the scheduler took in
     * before it reads the journal records that result caused. */
    const Cordum__Agent__V1__JobResult *jr =
        p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT ? p->job_result : NULL;
    jinfo *fj = rc == REF_SCHED_APPLIED && jr && jr->job_id && jr->dispatch &&
                        (int)jr->status == REF_JOB_FAILED_FATAL
                    ? job_get(w, jr->job_id)
                    : NULL;
    if (fj)
        fj->fatal_attempt = jr->dispatch->attempt + 1;
    apply_effects(w, w->scheduler);
    /* A submission answered as a duplicate of another job (its job_id or
     * idempotency key is known) creates no job of its own: it ends here. So
     * does one the scheduler refused (a full job table, no topic, the
     * replay guard): it was answered FAILED and holds no place. */
    jinfo *j = (rc == REF_SCHED_APPLIED || rc == REF_SCHED_DUPLICATE ||
                rc == REF_SCHED_REJECTED) && w->sched &&
                       p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST &&
                       p->job_request->job_id
                   ? job_get(w, p->job_request->job_id)
                   : NULL;
    ref_sched_job_info info;
    if (j && j->state == REF_JOB_NONE && !j->terminal &&
        ref_sched_job(w->sched, j->job_id, &info) != CAP_OK) {
        j->terminal = 1;
        w->open_jobs--;
        sim_event ne = {.time = w->now, .kind = EV_NEXT_STEP, .data = NULL};
        if (j->gateway && j->client >= 0 &&
            (!(ne.data = xdup(j->job_id)) || sim_queue_push(&w->q, &ne, NULL)))
            w->err = CAP_ENOMEM;
    }
}

/* ---- the gateway ------------------------------------------------------------ */

/* The submit's label entries (JobRequest and JobMetadata labels share the
 * entry layout: key 1, value 2) in a ref_block: kv_size is what kv_take
 * carves for n pairs. */
typedef Cordum__Agent__V1__JobRequest__LabelsEntry label_entry;

static size_t kv_size(const sim_kv *kv, size_t n)
{
    size_t s = n ? ref_block_size(n * sizeof(label_entry *)) : 0;
    for (size_t i = 0; i < n; i++)
        s += ref_block_size(sizeof(label_entry)) + ref_block_str_size(kv[i].key) +
             ref_block_str_size(kv[i].value);
    return s;
}

static label_entry **kv_take(ref_block *b, const sim_kv *kv, size_t n)
{
    if (!n)
        return NULL;
    label_entry **arr = ref_block_take(b, n * sizeof *arr);
    for (size_t i = 0; arr && i < n; i++) {
        label_entry *e = ref_block_take(b, sizeof *e);
        if (!e)
            return arr; /* b->bad is set: the builder gives up */
        cordum__agent__v1__job_request__labels_entry__init(e);
        e->key = ref_block_str(b, kv[i].key);
        e->value = ref_block_str(b, kv[i].value);
        arr[i] = e;
    }
    return arr;
}

/* The next message_id from the gateway's "gateway.sign" stream. */
static void draw_message_id(world *w, uint8_t mid[SIGN_MESSAGE_ID_LEN])
{
    for (size_t i = 0; i < SIGN_MESSAGE_ID_LEN; i += 8) {
        uint64_t x = sim_rng_u64(&w->sign_rng);
        for (size_t k = 0; k < 8; k++)
            mid[i + k] = (uint8_t)(x >> (56 - 8 * k));
    }
}

/* Adds the CAP-PRODUCTION signature metadata with message_id `id` to a
 * submit and signs it (cap_production_sign): *wire is the signed packet,
 * to be put on the bus as it is. The metadata lives on this stack frame:
 * p points to it only while it is signed (the submit is one block). */
static int sign_submit(world *w, cap_packet *p, const uint8_t id[SIGN_MESSAGE_ID_LEN],
                       uint8_t **wire, size_t *len)
{
    Cordum__Agent__V1__SignatureMetadata md;
    Google__Protobuf__Timestamp exp;
    uint8_t mid[SIGN_MESSAGE_ID_LEN];
    cordum__agent__v1__signature_metadata__init(&md);
    google__protobuf__timestamp__init(&exp);
    md.expires_at = &exp;
    memcpy(mid, id, SIGN_MESSAGE_ID_LEN);
    md.message_id.data = mid;
    md.message_id.len = SIGN_MESSAGE_ID_LEN;
    md.profile_version = (char *)CAP_PRODUCTION_PROFILE;
    md.algorithm = (char *)CAP_PRODUCTION_ALGORITHM;
    md.audience = (char *)REF_SCHED_SUBJECT_SUBMIT;
    md.key_id = (char *)SIGN_KEY_ID;
    cap_timestamp_from_nanos(
        cap_sat_add(local_time(w, w->gateway), w->scn->gateway.signature_lifetime_ns), &exp);
    p->signature_metadata = &md;
    int rc = cap_production_sign(p, w->sign_key, wire, len, w->d);
    p->signature_metadata = NULL;
    if (rc == CAP_OK && w->res->signed_submits == 0) {
        /* Once per run: the signed form passes production admission
         * (cap-spec 19) on the gateway's own clock, so what the scheduler
         * sees is what a production receiver would admit. */
        cap_production_trust t = {.audience = REF_SCHED_SUBJECT_SUBMIT, .key_id = SIGN_KEY_ID,
                                  .key = w->sign_key,
                                  .now_unix_nanos = local_time(w, w->gateway)};
        cap_bounds b = cap_bounds_default();
        rc = cap_production_verify(*wire, *len, &b, &t, NULL, NULL, w->d);
    }
    return rc;
}

/* Signs submit p with message_id `id` and publishes the signed bytes as
 * they are (never re-encoded). */
static int publish_signed(world *w, cap_packet *p, const uint8_t id[SIGN_MESSAGE_ID_LEN])
{
    uint8_t *wire = NULL;
    size_t len = 0;
    int rc = sign_submit(w, p, id, &wire, &len);
    if (rc == CAP_OK)
        rc = sim_bus_publish_bytes(w->bus, w->gateway->bus_id, REF_SCHED_SUBJECT_SUBMIT, NULL,
                                   wire, len, w->now, &w->q);
    free(wire);
    return rc;
}

/* The gateway's signing key: a private scalar drawn from the seed's
 * "gateway.key" stream (below 2^255, so below the group order, and odd,
 * so not 0), and the message-id stream "gateway.sign". */
static int sign_setup(world *w)
{
    sim_rng kr;
    sim_rng_stream(&kr, w->cfg->seed, "gateway.key");
    uint8_t d[32];
    for (size_t i = 0; i < 32; i += 8) {
        uint64_t x = sim_rng_u64(&kr);
        for (size_t k = 0; k < 8; k++)
            d[i + k] = (uint8_t)(x >> (56 - 8 * k));
    }
    d[0] &= 0x7f;
    d[31] |= 1;
    sim_rng_stream(&w->sign_rng, w->cfg->seed, "gateway.sign");
    return cap_key_from_scalar(d, &w->sign_key);
}

/* The submit packet of one job of mix entry m (step `step` of workflow
 * wf when wf is not NULL), in one block (ref_block: free() releases it,
 * never cap_packet_free); NULL when memory ran out. */
static cap_packet *build_submit(world *w, size_t m, const char *job_id, const char *wf,
                                uint32_t step)
{
    const sim_job_spec *js = &w->scn->workload.mix[m];
    char trace[300]; /* "trace-<job id>", cut to fit as snprintf would */
    size_t idn = strlen(job_id);
    if (idn > sizeof trace - 7)
        idn = sizeof trace - 7;
    memcpy(trace, "trace-", 6);
    memcpy(trace + 6, job_id, idn);
    trace[6 + idn] = '\0';
    const char *gw = w->gateway->name;
    int comp = wf && js->compensation_topic && js->compensation_topic[0];
    size_t n = ref_block_envelope_size(trace, gw) + ref_block_size(sizeof(job_request)) +
               ref_block_size(sizeof(Cordum__Agent__V1__JobMetadata)) +
               ref_block_str_size(job_id) + ref_block_str_size(js->topic) +
               2 * ref_block_str_size(js->tenant) + ref_block_str_size("client-1") +
               kv_size(js->labels, js->n_labels) + kv_size(js->meta_labels, js->n_meta_labels) +
               ref_block_str_size(js->idempotency_key) +
               (js->n_risk_tags ? ref_block_size(js->n_risk_tags * sizeof(char *)) : 0) +
               (wf ? ref_block_str_size(wf) : 0) +
               (comp ? ref_block_size(sizeof(Cordum__Agent__V1__Compensation)) +
                           ref_block_str_size(js->compensation_topic)
                     : 0);
    for (size_t i = 0; i < js->n_risk_tags; i++)
        n += ref_block_str_size(js->risk_tags[i]);
    ref_block b;
    void *blk = ref_block_new(&b, n);
    if (!blk)
        return NULL;
    cap_packet *p = ref_block_envelope(&b, trace, gw, local_time(w, w->gateway));
    job_request *r = ref_block_take(&b, sizeof *r);
    Cordum__Agent__V1__JobMetadata *meta = ref_block_take(&b, sizeof *meta);
    if (p && r && meta) {
        cordum__agent__v1__job_request__init(r);
        cordum__agent__v1__job_metadata__init(meta);
        p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
        p->job_request = r;
        r->meta = meta;
        r->job_id = ref_block_str(&b, job_id);
        r->topic = ref_block_str(&b, js->topic);
        r->priority = (Cordum__Agent__V1__JobPriority)js->priority;
        r->tenant_id = ref_block_str(&b, js->tenant);
        r->principal_id = ref_block_str(&b, "client-1");
        r->labels = kv_take(&b, js->labels, js->n_labels);
        r->n_labels = js->n_labels;
        meta->tenant_id = ref_block_str(&b, js->tenant);
        meta->labels = (Cordum__Agent__V1__JobMetadata__LabelsEntry **)kv_take(
            &b, js->meta_labels, js->n_meta_labels);
        meta->n_labels = js->n_meta_labels;
        meta->idempotency_key = ref_block_str(&b, js->idempotency_key);
        if (js->n_risk_tags) {
            meta->risk_tags = ref_block_take(&b, js->n_risk_tags * sizeof *meta->risk_tags);
            for (size_t i = 0; meta->risk_tags && i < js->n_risk_tags; i++)
                meta->risk_tags[i] = ref_block_str(&b, js->risk_tags[i]);
            meta->n_risk_tags = js->n_risk_tags;
        }
        if (wf) {
            r->workflow_id = ref_block_str(&b, wf);
            r->step_index = (int32_t)step;
            if (comp) {
                Cordum__Agent__V1__Compensation *c = ref_block_take(&b, sizeof *c);
                if (c) {
                    cordum__agent__v1__compensation__init(c);
                    c->topic = ref_block_str(&b, js->compensation_topic);
                    r->compensation = c;
                }
            }
        }
    }
    if (b.bad || !p || !r || !meta) {
        free(blk);
        return NULL;
    }
    return p;
}

static void client_next(world *w, int client);

/* Builds and publishes one job of mix entry m. A job id the checker
 * already follows (a script naming an id the gateway also gives, or the
 * reverse) is that job submitted again, which the scheduler answers as a
 * duplicate: the submit goes out and counts as submitted, but it is no job
 * of its own. A closed-loop client that sent it waits for that job to end,
 * or goes on at once when it has ended or another client waits for it. */
static int submit_job(world *w, size_t m, const char *job_id, const char *wf, uint32_t step,
                      int client)
{
    const sim_job_spec *js = &w->scn->workload.mix[m];
    cap_packet *p = build_submit(w, m, job_id, wf, step);
    if (!p)
        return CAP_ENOMEM;
    jinfo *known = job_get(w, job_id);
    if (known && known->terminal && known->state == REF_JOB_NONE)
        known = NULL; /* it ended as a duplicate answer, never a job: the id is free again */
    jinfo *j = known ? NULL : job_add(w, job_id);
    if (!known && !j) {
        free(p);
        return CAP_ENOMEM;
    }
    if (j) {
        j->gateway = 1;
        j->submit_at = w->now;
        j->topic = topic_index(w, js->topic);
        j->client = client;
        j->mix = m;
        if (wf) {
            j->wf = xdup(wf);
            j->step = step;
            j->steps = js->workflow_steps;
        }
    } else if (client >= 0) {
        if (!known->terminal && known->client < 0)
            known->client = client;
        else
            client_next(w, client);
    }
    w->res->submitted++;
    w->gw_submitted++;
    int rc;
    if (w->sign_key) {
        uint8_t mid[SIGN_MESSAGE_ID_LEN];
        draw_message_id(w, mid);
        if (j && w->twins_wanted) { /* a `conflict` action picks this submit */
            if (!(j->twin = calloc(1, sizeof *j->twin))) {
                free(p);
                return CAP_ENOMEM;
            }
            memcpy(j->twin->mid, mid, SIGN_MESSAGE_ID_LEN);
            j->twin->after = w->twin_after;
            j->twin->mix = m;
            w->twins_wanted--;
        }
        rc = publish_signed(w, p, mid);
        w->res->signed_submits += rc == CAP_OK;
    } else {
        rc = sim_bus_publish(w->bus, w->gateway->bus_id, REF_SCHED_SUBJECT_SUBMIT, NULL, p, w->now,
                             &w->q);
    }
    free(p);
    return rc;
}

/* EV_TWIN: the twin of an admitted submit goes out, signed under that
 * submit's message_id with another body (its own job id). The scheduler's
 * replay guard must refuse it; the checker knows its job id, so one that
 * reaches the journal breaks conflict-refused. */
static int send_twin(world *w, twin *t)
{
    char id[300];
    snprintf(id, sizeof id, "%s-twin", t->of);
    if (grow((void **)&w->twin_list, &w->cap_twins, w->n_twins + 1, sizeof *w->twin_list) ||
        ref_strmap_put(&w->twins, id, t)) {
        twin_free(t);
        return CAP_ENOMEM;
    }
    w->twin_list[w->n_twins++] = t; /* owned here from now on */
    cap_packet *p = build_submit(w, t->mix, id, NULL, 0);
    if (!p)
        return CAP_ENOMEM;
    int rc = publish_signed(w, p, t->mid);
    free(p);
    w->res->twins_sent += rc == CAP_OK;
    return rc;
}

static size_t pick_mix(world *w)
{
    const sim_workload_spec *wl = &w->scn->workload;
    double total = 0;
    for (size_t i = 0; i < wl->n_mix; i++)
        total += wl->mix[i].weight;
    double u = sim_rng_double(&w->gw_rng) * total;
    for (size_t i = 0; i < wl->n_mix; i++) {
        if (u < wl->mix[i].weight)
            return i;
        u -= wl->mix[i].weight;
    }
    return wl->n_mix - 1;
}

static uint64_t job_budget(const world *w)
{
    return w->cfg->max_jobs ? w->cfg->max_jobs : w->scn->workload.max_jobs;
}

static int can_submit(const world *w)
{
    uint64_t max = job_budget(w);
    return w->now < w->end_load && (!max || w->gw_submitted < max);
}

/* One new arrival: a plain job, or the first step of a workflow. */
static int arrival(world *w, int client)
{
    size_t m = pick_mix(w);
    const sim_job_spec *js = &w->scn->workload.mix[m];
    char id[64];
    if (js->workflow_steps > 0) {
        char wf[48];
        snprintf(wf, sizeof wf, "wf-%llu", (unsigned long long)++w->next_wf);
        snprintf(id, sizeof id, "%s-s1", wf);
        return submit_job(w, m, id, wf, 1, client);
    }
    /* "job-<n>" without printf: one per arrival */
    char digits[24], *end = digits + sizeof digits, *d = cap_fmt_u64(end, ++w->next_job);
    memcpy(id, "job-", 4);
    memcpy(id + 4, d, (size_t)(end - d));
    id[4 + (end - d)] = '\0';
    return submit_job(w, m, id, NULL, 0, client);
}

static int64_t draw_interarrival(world *w)
{
    double mean = (double)SEC / w->scn->workload.rate;
    int64_t d = (int64_t)sim_rng_exponential(&w->gw_rng, mean);
    return d < 1 ? 1 : d;
}

static void on_arrival_tick(world *w)
{
    const sim_workload_spec *wl = &w->scn->workload;
    if (!can_submit(w))
        return;
    sim_event ev = {.kind = EV_ARRIVAL};
    if (wl->kind == SIM_LOAD_POISSON) {
        w->err = arrival(w, -1);
        ev.time = w->now + draw_interarrival(w);
    } else if (wl->kind == SIM_LOAD_BURST) {
        for (uint32_t i = 0; i < wl->burst_size && can_submit(w) && !w->err; i++)
            w->err = arrival(w, -1);
        ev.time = w->now + wl->burst_every_ns;
    } else {
        return;
    }
    if (!w->err && sim_queue_push(&w->q, &ev, NULL))
        w->err = CAP_EFULL;
}

static void on_next_step(world *w, const char *job_id)
{
    jinfo *j = job_get(w, job_id);
    if (!j)
        return;
    if (j->wf && j->state == REF_JOB_SUCCEEDED && j->step < j->steps) {
        char id[96];
        snprintf(id, sizeof id, "%s-s%u", j->wf, j->step + 1);
        if (!job_get(w, id))
            w->err = submit_job(w, j->mix, id, j->wf, j->step + 1, j->client);
        return;
    }
    client_next(w, j->client);
}

/* A closed-loop client's next submission, after its think time (none when
 * the client is -1 or the load is over). */
static void client_next(world *w, int client)
{
    if (client >= 0 && can_submit(w)) {
        sim_event ev = {.time = w->now + w->scn->workload.think_ns, .kind = EV_ARRIVAL,
                        .id = (uint64_t)client + 1};
        if (sim_queue_push(&w->q, &ev, NULL))
            w->err = CAP_EFULL;
    }
}

/* ---- the approver ---------------------------------------------------------- */

static void approver_schedule(world *w, jinfo *j)
{
    if (!w->approver || j->approver_tries >= 3)
        return;
    j->approver_tries++;
    int64_t delay = sim_dist_draw(&w->scn->approver.delay, &w->appr_rng);
    int approve = sim_rng_bernoulli(&w->appr_rng, w->scn->approver.p_approve);
    sim_event ev = {.time = w->now + delay, .kind = EV_APPROVE, .id = (uint64_t)approve,
                    .data = xdup(j->job_id)};
    if (!ev.data || sim_queue_push(&w->q, &ev, NULL)) {
        free(ev.data);
        w->err = CAP_ENOMEM;
        return;
    }
    w->pending_answers++;
}

static void on_approve(world *w, const char *job_id, int approve)
{
    if (!w->scheduler->alive) {
        jinfo *j = job_get(w, job_id);
        if (j && j->approver_tries > 0)
            j->approver_tries--;
        if (j)
            approver_schedule(w, j); /* the scheduler is down: try again later */
        return;
    }
    const char *who = w->scn->approver.name ? w->scn->approver.name : "approver-1";
    if (w->story && strcmp(job_id, sim_story_job(w->story)) == 0)
        sim_story_say(w->story, w->now, who, "approver", "%s the job",
                      approve ? "approves" : "rejects");
    /* The answer is taken in by the scheduler, on its own clock: with the
     * scheduler's clock skewed, the approver's would be a time the
     * scheduler has already left behind. */
    int64_t now = local_time(w, w->scheduler);
    int rc;
    if (approve) {
        char why[REF_REASON_MAX + 1];
        rc = ref_sched_approve(w->sched, job_id, who, "simulated approval", now, &w->fx, why);
        if (rc == REF_SCHED_OK)
            w->res->approvals++;
    } else {
        rc = ref_sched_reject(w->sched, job_id, who, "simulated rejection", now, &w->fx);
        if (rc == REF_SCHED_OK)
            w->res->rejections++;
    }
    if (rc < 0)
        w->err = rc;
    apply_effects(w, w->scheduler);
}

/* ---- the operator (fault timeline) ------------------------------------------ */

static int each_named(world *w, const char *name, actor **out, size_t max)
{
    size_t n = 0;
    if (strncmp(name, "pool:", 5) == 0) {
        for (size_t i = 0; i < w->n_actors && n < max; i++)
            if (w->actors[i].type == A_WORKER && strcmp(w->actors[i].spec->pool, name + 5) == 0)
                out[n++] = &w->actors[i];
        return (int)n;
    }
    actor *a = actor_by_name(w, name);
    if (a && max)
        out[n++] = a;
    return (int)n;
}

static void on_timeline(world *w, const sim_timeline_event *e)
{
    actor *as[SIM_SCENARIO_MAX_WORKERS * 4], *bs[SIM_SCENARIO_MAX_WORKERS * 4];
    size_t cap = sizeof as / sizeof as[0];
    sim_story_timeline(w->story, w->now, e);
    switch (e->kind) {
    case SIM_EV_CRASH:
    case SIM_EV_RESTART: {
        actor *a = actor_by_name(w, e->a);
        if (!a)
            return;
        if (a->type == A_SCHEDULER) {
            if (e->kind == SIM_EV_CRASH)
                sched_crash(w);
            else
                w->err = sched_restart(w);
        } else if (a->type == A_WORKER) {
            worker_stop(w, a);
            if (e->kind == SIM_EV_RESTART)
                w->err = worker_boot(w, a);
        }
        return;
    }
    case SIM_EV_PARTITION:
    case SIM_EV_HEAL: {
        int na = each_named(w, e->a, as, cap);
        int nb = e->b && e->b[0] ? each_named(w, e->b, bs, cap) : 0;
        for (int i = 0; i < na; i++) {
            if (!(e->b && e->b[0])) {
                if (e->kind == SIM_EV_PARTITION)
                    sim_bus_partition(w->bus, as[i]->name, NULL, w->now, SIM_FOREVER, NULL);
                else
                    sim_bus_heal(w->bus, as[i]->name, NULL, w->now);
                continue;
            }
            for (int k = 0; k < nb; k++) {
                if (e->kind == SIM_EV_PARTITION)
                    sim_bus_partition(w->bus, as[i]->name, bs[k]->name, w->now, SIM_FOREVER, NULL);
                else
                    sim_bus_heal(w->bus, as[i]->name, bs[k]->name, w->now);
            }
        }
        return;
    }
    case SIM_EV_FAULT:
        if (sim_bus_add_fault(w->bus, &e->fault, NULL) < 0)
            w->err = CAP_EINVAL;
        return;
    case SIM_EV_SKEW: {
        actor *a = actor_by_name(w, e->a);
        if (a)
            sim_bus_set_skew(w->bus, a->bus_id, e->skew_ns);
        return;
    }
    case SIM_EV_POLICY: {
        FILE *f = fopen(e->policy_path, "rb");
        char *text = f ? malloc(SIM_SCENARIO_MAX_BYTES + 1) : NULL;
        size_t n = text ? fread(text, 1, SIM_SCENARIO_MAX_BYTES, f) : 0;
        if (f)
            fclose(f);
        cap_yaml_diag yd;
        if (!text || ref_safety_load(w->safety, text, n, &yd) < 0) {
            cap_diag_set(w->d, CAP_EPOLICY, -1, e->policy_path, "policy change at %lld ns failed",
                         (long long)e->at);
            w->err = CAP_EPOLICY;
        }
        free(text);
        return;
    }
    case SIM_EV_CONFLICT: /* picks the next `count` signed submits (see send_twin) */
        w->twins_wanted += e->count;
        w->twin_after = e->after_ns;
        return;
    case SIM_EV_CANCEL:
        if (w->scheduler->alive) {
            if (ref_sched_cancel(w->sched, e->a, "operator cancel", "operator",
                                 local_time(w, w->scheduler), &w->fx) < 0)
                w->err = CAP_ENOMEM;
            apply_effects(w, w->scheduler);
        }
        return;
    }
}

/* ---- deliveries and timers -------------------------------------------------- */

static int durable_subject(const char *s)
{
    return strcmp(s, REF_SCHED_SUBJECT_SUBMIT) == 0 || strcmp(s, REF_SCHED_SUBJECT_RESULT) == 0;
}

/* The story's line for a copy of one of its job's packets reaching its
 * receiver a (rc: sim_bus_deliver's answer; drops are told by on_drop). */
static void story_delivery(world *w, const sim_delivery *dl, const actor *a, int held, int rc,
                           const cap_diag *d)
{
    const char *to = sim_bus_actor_name(w->bus, dl->to);
    const char *copy = dl->replay ? " (a replayed copy)" : dl->duplicate ? " (a duplicate copy)" : "";
    unsigned long long id = (unsigned long long)dl->msg_id;
    if (held)
        sim_story_say(w->story, w->now, to, "deliver",
                      "#%llu on %s%s: held, the scheduler is down (redelivered when it restarts)",
                      id, dl->subject, copy);
    else if (rc == CAP_OK)
        sim_story_say(w->story, w->now, to, "deliver", "#%llu on %s%s%s%s", id, dl->subject, copy,
                      dl->corrupted ? " (corrupted, and it still decodes)" : "",
                      a && a->alive ? "" : ": lost, the receiver is down");
    else if (rc != SIM_BUS_DROPPED)
        sim_story_say(w->story, w->now, to, "refuse", "#%llu on %s%s%s: %s", id, dl->subject, copy,
                      dl->corrupted ? " (corrupted)" : "", d->reason);
}

static void on_delivery(world *w, sim_event *ev)
{
    sim_delivery *dl = ev->data;
    w->replays_popped += (uint64_t)dl->replay;
    actor *a = actor_by_bus(w, dl->to);
    if (a && a->type == A_SCHEDULER && !a->alive && durable_subject(dl->subject)) {
        if (grow((void **)&w->held, &w->cap_held, w->n_held + 1, sizeof *w->held))
            w->err = CAP_ENOMEM;
        else
            w->held[w->n_held++] = *ev; /* keeps the delivery for the restart */
        if (w->story && sim_story_follows(w->story, dl->msg_id))
            story_delivery(w, dl, a, 1, CAP_OK, NULL);
        return;
    }
    sim_msg msg;
    cap_diag d;
    int rc = sim_bus_deliver(w->bus, ev, w->now, &msg, &d);
    if (w->story && sim_story_follows(w->story, dl->msg_id))
        story_delivery(w, dl, a, 0, rc, &d);
    if (rc == CAP_OK && a && a->alive) {
        if (a->type == A_SCHEDULER) {
            deliver_to_sched(w, dl->subject, msg.packet, dl);
        } else if (a->type == A_WORKER) {
            handler_once_prefetch(w, msg.packet);
            w->worker_pkt = msg.packet;
            if (ref_worker_on_packet(a->worker, dl->subject, msg.packet, local_time(w, a), &w->fx) < 0)
                w->err = CAP_ENOMEM;
            w->worker_pkt = NULL;
            apply_effects(w, a);
        }
    }
    if (rc == CAP_OK)
        sim_bus_release(w->bus, &msg);
    sim_delivery_free(dl);
}

/* A worker's heartbeat is due (worker spec p_heartbeat_miss and
 * heartbeat_delay). 1 when it is not sent now: left out (the next one is
 * due an interval later) or put off by a drawn delay (its timer re-armed,
 * and that firing sends it). */
static int heartbeat_faults(world *w, actor *a)
{
    const sim_worker_spec *sp = a->spec;
    if (a->hb_late) {
        a->hb_late = 0;
        return 0;
    }
    int64_t later = 0;
    if (sp->p_heartbeat_miss > 0 && sim_rng_bernoulli(&a->hb_rng, sp->p_heartbeat_miss)) {
        w->res->heartbeats_missed++;
        later = sp->heartbeat_ns;
    } else {
        later = sim_dist_draw(&sp->heartbeat_delay, &a->hb_rng);
        if (later > 0) {
            w->res->heartbeats_late++;
            a->hb_late = 1;
        }
    }
    if (later <= 0)
        return 0;
    if (set_timer(w, a, REF_WORKER_TIMER_HEARTBEAT, local_time(w, a) + later))
        w->err = CAP_ENOMEM;
    return 1;
}

static void on_timer_event(world *w, const sim_event *ev)
{
    actor *a = actor_by_bus(w, ev->actor);
    if (!a || !a->alive)
        return;
    if (timer_handle(a, ev->id) != ev->handle)
        return; /* re-armed since, or set by an earlier incarnation of the actor */
    timer_forget(a, ev->id);
    if (a->type == A_WORKER && ev->id == REF_WORKER_TIMER_HEARTBEAT &&
        sim_worker_heartbeat_faults(a->spec) && heartbeat_faults(w, a))
        return;
    int rc;
    if (a->type == A_SCHEDULER) {
        rc = ref_sched_on_timer(w->sched, ev->id, local_time(w, a), &w->fx);
    } else {
        int before = ref_worker_active_jobs(a->worker);
        rc = ref_worker_on_timer(a->worker, ev->id, local_time(w, a), &w->fx);
        int after = ref_worker_active_jobs(a->worker);
        if (after < before && a->running > 0) {
            a->running -= before - after;
            if (a->running <= 0) {
                a->running = 0;
                a->busy_ns += w->now - a->busy_since;
            }
        }
    }
    if (rc < 0)
        w->err = rc;
    apply_effects(w, a);
}

/* ---- set-up, loop, summary ---------------------------------------------- */

static int add_actor(world *w, int type, const char *name, const sim_worker_spec *spec)
{
    actor *a = &w->actors[w->n_actors];
    memset(a, 0, sizeof *a);
    a->w = w;
    a->type = type;
    snprintf(a->name, sizeof a->name, "%s", name);
    a->spec = spec;
    char stream[200];
    snprintf(stream, sizeof stream, "actor.%s", name);
    sim_rng_stream(&a->rng, w->cfg->seed, stream);
    snprintf(stream, sizeof stream, "actor.%s.heartbeat", name);
    sim_rng_stream(&a->hb_rng, w->cfg->seed, stream);
    int rc = sim_bus_actor(w->bus, name, &a->bus_id);
    if (rc)
        return rc;
    if (a->bus_id >= w->n_actor_of_bus) {
        size_t n = (size_t)a->bus_id + 1;
        uint32_t *t = realloc(w->actor_of_bus, n * sizeof *t);
        if (!t)
            return CAP_ENOMEM;
        memset(t + w->n_actor_of_bus, 0, (n - w->n_actor_of_bus) * sizeof *t);
        w->actor_of_bus = t;
        w->n_actor_of_bus = n;
    }
    w->actor_of_bus[a->bus_id] = (uint32_t)++w->n_actors; /* index + 1 */
    return CAP_OK;
}

static int subscribe(world *w, actor *a, const char *pattern, const char *group)
{
    return sim_bus_subscribe(w->bus, a->bus_id, pattern, group, 0, NULL);
}

static int build(world *w)
{
    const sim_scenario *s = w->scn;
    size_t n_workers = 0;
    for (size_t i = 0; i < s->n_workers; i++) {
        uint32_t c = s->workers[i].count ? s->workers[i].count : 1;
        if (w->cfg->workers_limit && c > w->cfg->workers_limit)
            c = w->cfg->workers_limit;
        n_workers += c;
    }
    w->actors = calloc(n_workers + 4, sizeof *w->actors);
    if (!w->actors)
        return CAP_ENOMEM;
    sim_bus_config bc;
    sim_bus_config_default(&bc);
    bc.seed = w->cfg->seed;
    bc.latency = s->latency;
    bc.on_publish = on_publish;
    if (w->story)
        bc.on_drop = on_drop;
    bc.ctx = w;
    int rc = sim_bus_new(&bc, &w->bus);
    if (rc)
        return rc;
    if ((rc = add_actor(w, A_GATEWAY, "gateway", NULL)) || (rc = add_actor(w, A_SCHEDULER, "scheduler", NULL)))
        return rc;
    w->gateway = &w->actors[0];
    w->scheduler = &w->actors[1];
    if (s->approver.present) {
        if ((rc = add_actor(w, A_APPROVER, s->approver.name ? s->approver.name : "approver", NULL)))
            return rc;
        w->approver = &w->actors[2];
    }
    for (size_t i = 0; i < s->n_workers; i++) {
        uint32_t c = s->workers[i].count ? s->workers[i].count : 1;
        if (w->cfg->workers_limit && c > w->cfg->workers_limit)
            c = w->cfg->workers_limit;
        for (uint32_t k = 0; k < c; k++) {
            char name[160];
            if ((s->workers[i].count ? s->workers[i].count : 1) > 1)
                snprintf(name, sizeof name, "%s-%u", s->workers[i].id, k + 1);
            else
                snprintf(name, sizeof name, "%s", s->workers[i].id);
            if ((rc = add_actor(w, A_WORKER, name, &s->workers[i])))
                return rc;
        }
    }
    sim_rng_stream(&w->sched_rng, w->cfg->seed, "scheduler");
    sim_rng_stream(&w->gw_rng, w->cfg->seed, "gateway");
    sim_rng_stream(&w->appr_rng, w->cfg->seed, "approver");
    if (s->gateway.sign && (rc = sign_setup(w)))
        return rc;
    /* Subscriptions (cap-spec 09). */
    actor *sch = w->scheduler;
    if ((rc = subscribe(w, sch, REF_SCHED_SUBJECT_SUBMIT, "cordum-scheduler")) ||
        (rc = subscribe(w, sch, REF_SCHED_SUBJECT_RESULT, "cordum-scheduler")) ||
        (rc = subscribe(w, sch, REF_SCHED_SUBJECT_PROGRESS, "cordum-scheduler")) ||
        (rc = subscribe(w, sch, REF_SCHED_SUBJECT_CANCEL, NULL)) ||
        (rc = subscribe(w, sch, REF_SCHED_SUBJECT_HEARTBEAT, NULL)) ||
        (rc = subscribe(w, sch, REF_SCHED_SUBJECT_HANDSHAKE, NULL)))
        return rc;
    for (size_t i = 0; i < w->n_actors; i++) {
        actor *a = &w->actors[i];
        if (a->type != A_WORKER)
            continue;
        char direct[220];
        snprintf(direct, sizeof direct, "worker.%s.jobs", a->name);
        if ((rc = subscribe(w, a, direct, NULL)) ||
            (rc = subscribe(w, a, REF_WORKER_SUBJECT_CANCEL, NULL)))
            return rc;
    }
    w->safety = ref_safety_new();
    if (!w->safety)
        return CAP_ENOMEM;
    cap_yaml_diag yd;
    if (ref_safety_load(w->safety, s->policy_text, s->policy_len, &yd) < 0)
        return cap_diag_set(w->d, CAP_EPOLICY, -1, s->policy_path, "%s", yd.reason);
    return CAP_OK;
}

/* Whether the timeline restarts the scheduler: its journal is then kept
 * (journal_keep), as text. */
static int restart_scheduled(world *w)
{
    const sim_scenario *s = w->scn;
    for (size_t i = 0; i < s->n_timeline; i++) {
        const sim_timeline_event *e = &s->timeline[i];
        if ((!w->cfg->skip_event || !w->cfg->skip_event[i]) && e->at <= w->end_load &&
            e->kind == SIM_EV_RESTART && actor_by_name(w, e->a) == w->scheduler)
            return 1;
    }
    return 0;
}

static int start(world *w)
{
    const sim_scenario *s = w->scn;
    w->keep_journal = restart_scheduled(w);
    int rc = sched_boot(w);
    if (rc)
        return rc;
    for (size_t i = 0; i < w->n_actors; i++)
        if (w->actors[i].type == A_WORKER && (rc = worker_boot(w, &w->actors[i])))
            return rc;
    const sim_workload_spec *wl = &s->workload;
    sim_event ev = {.time = 0, .kind = EV_ARRIVAL};
    if (wl->kind == SIM_LOAD_POISSON) {
        ev.time = draw_interarrival(w);
        if ((rc = sim_queue_push(&w->q, &ev, NULL)))
            return rc;
    } else if (wl->kind == SIM_LOAD_BURST) {
        if ((rc = sim_queue_push(&w->q, &ev, NULL)))
            return rc;
    } else if (wl->kind == SIM_LOAD_CLOSED) {
        for (uint32_t c = 0; c < wl->concurrency; c++) {
            ev.id = c + 1;
            if ((rc = sim_queue_push(&w->q, &ev, NULL)))
                return rc;
        }
    }
    for (size_t i = 0; i < wl->n_script; i++) {
        sim_event se = {.time = wl->script[i].at, .kind = EV_SCRIPT, .id = i};
        if ((rc = sim_queue_push(&w->q, &se, NULL)))
            return rc;
    }
    for (size_t i = 0; i < s->n_timeline; i++) {
        if (w->cfg->skip_event && w->cfg->skip_event[i])
            continue;
        if (s->timeline[i].at > w->end_load)
            continue;
        sim_event te = {.time = s->timeline[i].at, .kind = EV_TIMELINE, .id = i};
        if ((rc = sim_queue_push(&w->q, &te, NULL)))
            return rc;
    }
    return CAP_OK;
}

/* A conformance plan's progress report is due: published when the worker
 * incarnation that ran the attempt is alive and the attempt still runs. */
/* The scheduler is told memo as a checkpoint of job_id (a JobProgress of
 * the job reaches it): the checker keeps it, since a retry may be handed
 * only a checkpoint its job reported. Kept as the scheduler received it:
 * a corrupted copy that still decodes says what it says, and no control
 * plane could tell. */
static void checkpoint_told(world *w, const char *job_id, const char *memo)
{
    jinfo *j = job_get(w, job_id);
    if (!j)
        return;
    if (j->n_memos == j->cap_memos &&
        grow((void **)&j->memos, &j->cap_memos, j->n_memos + 1, sizeof *j->memos)) {
        w->err = CAP_ENOMEM;
        return;
    }
    if (!(j->memos[j->n_memos] = strdup(memo)))
        w->err = CAP_ENOMEM;
    else
        j->n_memos++;
}

static void on_progress_event(world *w, sim_event *ev)
{
    cap_packet *p = ev->data;
    actor *a = actor_by_bus(w, ev->actor);
    const Cordum__Agent__V1__JobProgress *pr = p->job_progress;
    int state = 0;
    if (a && a->alive && a->incarnation == ev->id && a->worker &&
        ref_worker_active_attempt(a->worker, pr->job_id, &state) ==
            (pr->dispatch ? pr->dispatch->attempt : 0) &&
        state == REF_JOB_RUNNING) {
        int rc = sim_bus_publish(w->bus, a->bus_id, REF_WORKER_SUBJECT_PROGRESS, NULL, p, w->now,
                                 &w->q);
        if (rc < 0 && rc != CAP_EINVAL)
            w->err = rc;
        else if (pr->result_ptr && pr->result_ptr[0])
            w->res->checkpoints_reported++;
    }
    cap_packet_free(p);
}

static void release(sim_event *ev, void *ctx)
{
    world *w = ctx;
    if (ev->kind == EV_DELIVERY)
        sim_delivery_free(ev->data);
    else if (ev->kind == EV_PROGRESS)
        cap_packet_free(ev->data);
    else if (ev->kind == EV_APPROVE || ev->kind == EV_NEXT_STEP)
        free(ev->data);
    else if (ev->kind == EV_TWIN)
        twin_free(ev->data);
    (void)w;
}

/* ---- the stall guard ---------------------------------------------------------
 * Virtual time moves on only when every event due now is handled. Steps that
 * take no time (zero latency, service, think time or backoff) can feed one
 * another for ever at one instant, and the run would never end: so the
 * number of events at one instant is bounded (the scenario's
 * max_events_per_instant). The last STALL_SAMPLE events before the bound are
 * tallied by what they were, and the error names the commonest, so the loop
 * can be found; the tally costs nothing until the bound is near. */
#define STALL_SAMPLE 1024
#define STALL_KINDS 8

typedef struct {
    char what[96]; /* "delivery on sys.job.submit", "timer", ... */
    unsigned n;
} stall_kind;

typedef struct {
    stall_kind k[STALL_KINDS]; /* kinds past the table's room are not tallied */
    size_t n;
} stall_tally;

static const char *event_kind_name(int kind)
{
    switch (kind) {
    case EV_TIMER: return "timer";
    case EV_ARRIVAL: return "arrival";
    case EV_SCRIPT: return "scripted submission";
    case EV_TIMELINE: return "fault timeline step";
    case EV_APPROVE: return "approval answer";
    case EV_CRASH_WORKER: return "worker crash";
    case EV_RESTART_WORKER: return "worker restart";
    case EV_NEXT_STEP: return "gateway next step";
    case EV_PROGRESS: return "progress report";
    case EV_TWIN: return "twin submission";
    default: return "event";
    }
}

static void stall_note(stall_tally *t, const sim_event *ev)
{
    char what[96];
    if (ev->kind == EV_DELIVERY)
        snprintf(what, sizeof what, "delivery on %.48s", ((const sim_delivery *)ev->data)->subject);
    else
        snprintf(what, sizeof what, "%s", event_kind_name(ev->kind));
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->k[i].what, what)) {
            t->k[i].n++;
            return;
        }
    if (t->n == STALL_KINDS)
        return;
    memcpy(t->k[t->n].what, what, sizeof what);
    t->k[t->n++].n = 1;
}

/* Stops the run: CAP_ESTALLED, with the instant, the bound and the tally
 * (the commonest kinds first, as many as fit the diagnostic; equal counts
 * in the order first seen). */
static void stall_stop(world *w, uint64_t events, const stall_tally *t)
{
    char mix[104] = "";
    size_t used = 0;
    unsigned done[STALL_KINDS] = {0};
    for (size_t shown = 0; shown < t->n; shown++) {
        size_t best = t->n;
        for (size_t i = 0; i < t->n; i++)
            if (!done[i] && (best == t->n || t->k[i].n > t->k[best].n))
                best = i;
        done[best] = 1;
        char one[112];
        int m = snprintf(one, sizeof one, "%s%u %s", shown ? ", " : "", t->k[best].n,
                         t->k[best].what);
        if (m < 0 || (size_t)m >= sizeof mix - used)
            break;
        memcpy(mix + used, one, (size_t)m + 1);
        used += (size_t)m;
    }
    cap_diag_set(w->d, CAP_ESTALLED, -1, "max_events_per_instant",
                 "stood still at %.6fs: %llu events at one instant (last %u: %s); zero-time "
                 "steps feed one another: give them time or raise max_events_per_instant",
                 (double)w->now / SEC, (unsigned long long)events,
                 events < STALL_SAMPLE ? (unsigned)events : (unsigned)STALL_SAMPLE, mix);
    w->err = CAP_ESTALLED;
}

static void loop(world *w)
{
    sim_event ev;
    uint64_t limit = w->scn->max_events_per_instant ? w->scn->max_events_per_instant
                                                    : SIM_DEFAULT_EVENTS_PER_INSTANT;
    uint64_t at_instant = 0; /* events handled at w->now so far */
    uint64_t tally_from = limit > STALL_SAMPLE ? limit - STALL_SAMPLE : 0;
    stall_tally tally;
    while (!w->stop && !w->err && sim_queue_pop(&w->q, &ev) == 1) {
        w->res->events++;
        if (ev.time > w->end_run) {
            release(&ev, w);
            break;
        }
        if (ev.time != w->now) {
            at_instant = 0;
        } else if (at_instant >= tally_from) { /* rarely: the bound is near */
            if (at_instant == tally_from)
                memset(&tally, 0, sizeof tally);
            stall_note(&tally, &ev);
            if (at_instant + 1 == limit) {
                release(&ev, w);
                stall_stop(w, limit, &tally);
                break;
            }
        }
        at_instant++;
        w->now = ev.time;
        switch (ev.kind) {
        case EV_DELIVERY: on_delivery(w, &ev); break;
        case EV_TIMER: on_timer_event(w, &ev); break;
        case EV_ARRIVAL:
            if (ev.id) { /* a closed-loop client */
                if (can_submit(w))
                    w->err = arrival(w, (int)ev.id - 1);
            } else {
                on_arrival_tick(w);
            }
            break;
        case EV_SCRIPT: {
            const sim_script_entry *se = &w->scn->workload.script[ev.id];
            char id[300];
            if (se->job_id && se->job_id[0])
                snprintf(id, sizeof id, "%s", se->job_id);
            else
                snprintf(id, sizeof id, "job-%llu", (unsigned long long)++w->next_job);
            uint64_t max = job_budget(w);
            if (!max || w->gw_submitted < max) {
                if (w->scn->workload.mix[se->mix].workflow_steps > 0) {
                    char wf[48];
                    snprintf(wf, sizeof wf, "wf-%llu", (unsigned long long)++w->next_wf);
                    char sid[96];
                    snprintf(sid, sizeof sid, "%s-s1", wf);
                    w->err = submit_job(w, se->mix, sid, wf, 1, -1);
                } else {
                    w->err = submit_job(w, se->mix, id, NULL, 0, -1);
                }
            }
            break;
        }
        case EV_TIMELINE: on_timeline(w, &w->scn->timeline[ev.id]); break;
        case EV_APPROVE:
            w->pending_answers--;
            on_approve(w, ev.data, (int)ev.id);
            free(ev.data);
            break;
        case EV_NEXT_STEP: on_next_step(w, ev.data); free(ev.data); break;
        case EV_TWIN: w->err = send_twin(w, ev.data); break;
        case EV_PROGRESS: on_progress_event(w, &ev); break;
        case EV_CRASH_WORKER: {
            actor *a = actor_by_bus(w, ev.actor);
            if (a && a->alive && a->incarnation == ev.id) {
                worker_stop(w, a);
                if (a->spec->restart_after_ns > 0) {
                    sim_event re = {.time = w->now + a->spec->restart_after_ns,
                                    .kind = EV_RESTART_WORKER, .actor = a->bus_id};
                    if (sim_queue_push(&w->q, &re, NULL))
                        w->err = CAP_EFULL;
                }
            }
            break;
        }
        case EV_RESTART_WORKER: {
            actor *a = actor_by_bus(w, ev.actor);
            if (a && !a->alive)
                w->err = worker_boot(w, a);
            break;
        }
        default: release(&ev, w); break;
        }
        /* Drained: the load is over and every job is terminal or parked. */
        if (w->now >= w->end_load && w->open_jobs == 0 && !w->n_held && !w->pending_answers &&
            w->replays_popped == sim_bus_get_stats(w->bus)->replayed && !w->twins_pending)
            break; /* (a replay or twin still in flight is part of the scenario: waited for) */
    }
}

static void summarise(world *w)
{
    sim_result *r = w->res;
    r->end_time = w->now;
    r->succeeded = w->retired.succeeded;
    r->failed = w->retired.failed;
    r->failed_fatal = w->retired.failed_fatal;
    r->cancelled = w->retired.cancelled;
    r->denied = w->retired.denied;
    r->timed_out = w->retired.timed_out;
    for (size_t i = 0; i < w->n_jobs; i++)
        if (w->job_list[i])
            count_state(r, w->job_list[i]);
    if (!r->violated && inv_on(w, SIM_INV_LIVENESS) && !w->err)
        for (size_t i = 0; i < w->n_jobs; i++) {
            const jinfo *j = w->job_list[i];
            if (j && !j->terminal && j->state != REF_JOB_APPROVAL_REQUIRED) {
                w->now = r->end_time;
                violation(w, "liveness", j->job_id,
                          "still %s when the run drained (load ended at %.3fs, drain bound %.3fs)",
                          ref_jobstate_name(j->state), (double)w->end_load / SEC,
                          (double)w->scn->drain_ns / SEC);
                break;
            }
        }
    r->retries = w->carried.retries;
    r->dlq = w->carried.dlq;
    r->duplicates = w->carried.duplicates;
    if (w->sched) {
        ref_sched_stats st = ref_sched_stats_get(w->sched);
        r->retries += st.retries;
        r->dlq += st.dlq;
        r->duplicates += st.duplicates;
    }
    int64_t busy = 0, avail = 0;
    for (size_t i = 0; i < w->n_actors; i++) {
        actor *a = &w->actors[i];
        if (a->type != A_WORKER)
            continue;
        if (a->alive && a->running > 0)
            a->busy_ns += w->now - a->busy_since;
        busy += a->busy_ns;
        avail += r->end_time * (a->spec->max_parallel > 0 ? a->spec->max_parallel : 1);
    }
    r->utilisation = avail > 0 ? (double)busy / (double)avail : 0;
    uint64_t done = r->succeeded + r->failed + r->failed_fatal + r->cancelled + r->denied + r->timed_out;
    r->throughput = r->end_time > 0 ? (double)done / ((double)r->end_time / SEC) : 0;
    for (size_t t = 0; t < w->n_topics; t++) {
        sim_topic_latency *tl = &r->topics[r->n_topics++];
        snprintf(tl->topic, sizeof tl->topic, "%s", w->topic_name[t]);
        tl->n = w->lat[t].n;
        tl->p50 = sim_hist_percentile(&w->lat[t], 50);
        tl->p95 = sim_hist_percentile(&w->lat[t], 95);
        tl->p99 = sim_hist_percentile(&w->lat[t], 99);
    }
    const sim_bus_stats *bs = sim_bus_get_stats(w->bus);
    r->bus_published = bs->published;
    r->bus_delivered = bs->delivered;
    r->bus_duplicated = bs->duplicated;
    r->bus_corrupted = bs->corrupted;
    r->bus_decode_failures = bs->decode_failures;
    r->bus_replayed = bs->replayed;
    for (int k = 0; k < SIM_DROP__COUNT; k++)
        r->bus_dropped += bs->dropped[k];
}

static void teardown(world *w)
{
    w->res->history_lines = sim_story_lines_about(w->story);
    sim_story_free(w->story);
    if (w->q.slots || w->q.len)
        sim_queue_free(&w->q, release, w);
    for (size_t i = 0; i < w->n_held; i++)
        sim_delivery_free(w->held[i].data);
    free(w->held);
    for (size_t i = 0; i < w->n_actors; i++) {
        ref_worker_free(w->actors[i].worker);
        ref_u64map_free(&w->actors[i].timers);
    }
    free(w->actors);
    free(w->actor_of_bus);
    sim_jview_reader_free(&w->jreader);
    ref_sched_free(w->sched);
    ref_safety_free(w->safety);
    cap_key_free(w->sign_key);
    sim_bus_free(w->bus);
    ref_effects_free(&w->fx);
    ref_strmap_free(&w->handler_seen); /* first: its keys then go without a delete each */
    for (size_t i = 0; i < w->n_jobs; i++)
        if (w->job_list[i]) {
            handler_keys_drop(w, w->job_list[i]);
            jinfo_free(NULL, w->job_list[i]);
        }
    while (w->jinfo_pool) {
        jinfo *next = w->jinfo_pool->next_free;
        free(w->jinfo_pool);
        w->jinfo_pool = next;
    }
    free(w->job_list);
    free(w->by_num);
    ref_strmap_free(&w->jobs);
    hkeys_free(w, w->orphan_keys);
    for (size_t i = 0; i < w->n_journal; i++) {
        free(w->journal[i].first);
        free(w->journal[i].latest);
    }
    free(w->journal);
    for (size_t i = 0; i < w->n_saga; i++)
        free(w->saga_log[i]);
    free(w->saga_log);
    for (size_t i = w->replay_head; i < w->n_replay; i++)
        free(w->replay_log[i]);
    free(w->replay_log);
    free(w->replay_at);
    for (size_t t = 0; t < 32; t++)
        sim_hist_free(&w->lat[t]);
}

int sim_run(const sim_run_config *cfg, sim_result *res, cap_diag *d)
{
    if (!cfg || !cfg->scn || !res)
        return CAP_EINVAL;
    memset(res, 0, sizeof *res);
    world *w = calloc(1, sizeof *w);
    if (!w)
        return CAP_ENOMEM;
    cap_diag local;
    w->cfg = cfg;
    w->scn = cfg->scn;
    w->res = res;
    w->d = d ? d : &local;
    memset(w->d, 0, sizeof *w->d);
    w->end_load = cfg->duration_ns ? cfg->duration_ns : cfg->scn->duration_ns;
    if (cfg->scn->workload.stop_at_ns && cfg->scn->workload.stop_at_ns < w->end_load)
        w->end_load = cfg->scn->workload.stop_at_ns;
    w->end_run = w->end_load + cfg->scn->drain_ns;
    ref_strmap_init_borrowed(&w->jobs); /* keys: the entries' own ids */
    ref_strmap_init_borrowed(&w->handler_seen);
    state_names_init(w);
    ref_strmap_init(&w->saga_stack);
    ref_strmap_init(&w->twins);
    int rc = sim_queue_init(&w->q, (size_t)1 << 22);
    if (!rc)
        rc = ref_effects_init(&w->fx, REF_EFFECTS_MAX_LIMIT);
    if (!rc)
        rc = cap_trace_writer_open(cfg->trace_bin, CAP_TRACE_BINARY, &w->tw_bin);
    if (!rc && cfg->trace_jsonl)
        rc = cap_trace_writer_open(cfg->trace_jsonl, CAP_TRACE_JSONL, &w->tw_jsonl);
    if (!rc && cfg->history_job)
        rc = sim_story_new(cfg->history_job, cfg->history_out ? cfg->history_out : stdout,
                           &w->story);
    if (!rc)
        rc = build(w);
    if (!rc)
        rc = start(w);
    if (!rc && !w->err)
        loop(w);
    if (!rc && w->err) {
        rc = w->err;
        /* a step that fails sets w->err without a reason of its own: say
         * when the run stopped, and why in the project's words */
        if (!w->d->reason[0])
            cap_diag_set(w->d, rc, -1, "run", "the run stopped at %.6fs: %s", (double)w->now / SEC,
                         cap_strerror(rc));
    }
    if (!rc)
        summarise(w);
    if (w->tw_bin && cap_trace_writer_close(w->tw_bin, res->trace_hash) < 0 && !rc)
        rc = CAP_EIO;
    if (w->tw_jsonl) {
        char other[65];
        if (cap_trace_writer_close(w->tw_jsonl, other) < 0 && !rc)
            rc = CAP_EIO;
    }
    /* free the saga stack strings: they are the map's values */
    for (size_t i = 0; i < w->n_saga; i++) {
        cJSON *o = cJSON_Parse(w->saga_log[i]);
        const char *wf = o ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "wf")) : NULL;
        if (wf) {
            char *st = ref_strmap_get(&w->saga_stack, wf);
            if (st) {
                free(st);
                ref_strmap_del(&w->saga_stack, wf);
            }
        }
        cJSON_Delete(o);
    }
    ref_strmap_free(&w->saga_stack);
    ref_strmap_free(&w->twins);
    for (size_t i = 0; i < w->n_twins; i++)
        twin_free(w->twin_list[i]);
    free(w->twin_list);
    teardown(w);
    free(w);
    return rc;
}

/* ---- report ---------------------------------------------------------------- */

void sim_duration_text(int64_t ns, char *buf, size_t n)
{
    if (ns >= SEC)
        snprintf(buf, n, "%.3fs", (double)ns / SEC);
    else
        snprintf(buf, n, "%.3fms", (double)ns / 1e6);
}

size_t sim_seed_streams(const sim_run_config *cfg, sim_seed_stream out[SIM_SEED_STREAMS_MAX])
{
    static const char *const plain[] = {"gateway", "scheduler", "approver", "bus.route",
                                        "bus.latency"};
    static const char *const sign[] = {"gateway.key", "gateway.sign"}; /* made only when signing */
    size_t n = 0;
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        out[n++].name = plain[i];
    for (size_t i = 0; cfg->scn->gateway.sign && i < sizeof sign / sizeof sign[0]; i++)
        out[n++].name = sign[i];
    for (size_t i = 0; i < n; i++) {
        sim_rng g;
        sim_rng_stream(&g, cfg->seed, out[i].name);
        out[i].first = sim_rng_u64(&g);
    }
    return n;
}

void sim_result_print(const sim_run_config *cfg, const sim_result *r, FILE *out)
{
    const sim_scenario *s = cfg->scn;
    fprintf(out, "scenario: %s (%s)\n", s->name ? s->name : "?", s->path ? s->path : "?");
    for (size_t i = 0; i < s->n_sets; i++) /* overrides are part of what the run is */
        fprintf(out, "set: %s\n", s->sets[i]);
    fprintf(out, "seed: %llu\n", (unsigned long long)cfg->seed);
    /* Everything derived from the seed: the first state word of each stream. */
    sim_seed_stream st[SIM_SEED_STREAMS_MAX];
    size_t n_st = sim_seed_streams(cfg, st);
    fprintf(out, "streams:");
    for (size_t i = 0; i < n_st; i++)
        fprintf(out, " %s=%016llx", st[i].name, (unsigned long long)st[i].first);
    fprintf(out, "\n");
    char t[32];
    sim_duration_text(r->end_time, t, sizeof t);
    fprintf(out, "virtual time: %s\n", t);
    fprintf(out,
            "jobs: submitted %llu (+%llu compensations); succeeded %llu, failed %llu, failed_fatal "
            "%llu, cancelled %llu, denied %llu, timeout %llu, parked %llu, unfinished %llu\n",
            (unsigned long long)r->submitted, (unsigned long long)r->compensations,
            (unsigned long long)r->succeeded, (unsigned long long)r->failed,
            (unsigned long long)r->failed_fatal, (unsigned long long)r->cancelled,
            (unsigned long long)r->denied, (unsigned long long)r->timed_out,
            (unsigned long long)r->parked, (unsigned long long)r->unfinished);
    char aw[32];
    sim_duration_text(r->approvals + r->rejections ? r->approval_wait_ns / (int64_t)(r->approvals + r->rejections) : 0,
            aw, sizeof aw);
    fprintf(out,
            "retries %llu, rollbacks %llu, breaker openings %llu, dlq %llu, duplicates answered "
            "%llu, stale ignored %llu, approvals %llu, rejections %llu, stale approvals %llu, "
            "mean approval wait %s\n",
            (unsigned long long)r->retries, (unsigned long long)r->rollbacks,
            (unsigned long long)r->breaker_openings, (unsigned long long)r->dlq,
            (unsigned long long)r->duplicates, (unsigned long long)r->stale,
            (unsigned long long)r->approvals, (unsigned long long)r->rejections,
            (unsigned long long)r->approvals_stale, aw);
    for (size_t i = 0; i < r->n_topics; i++) {
        char a[32], b[32], c[32];
        sim_duration_text(r->topics[i].p50, a, sizeof a);
        sim_duration_text(r->topics[i].p95, b, sizeof b);
        sim_duration_text(r->topics[i].p99, c, sizeof c);
        fprintf(out, "latency %s: n=%llu p50=%s p95=%s p99=%s\n", r->topics[i].topic,
                (unsigned long long)r->topics[i].n, a, b, c);
    }
    fprintf(out, "worker utilisation %.1f%%, throughput %.3f jobs/s, handler calls %llu\n",
            100.0 * r->utilisation, r->throughput, (unsigned long long)r->handler_calls);
    /* shown when a worker spec reports checkpoints (other reports unchanged) */
    for (size_t i = 0; i < s->n_workers; i++)
        if (s->workers[i].checkpoints) {
            fprintf(out, "checkpoints: reported %llu, resumed from %llu\n",
                    (unsigned long long)r->checkpoints_reported,
                    (unsigned long long)r->checkpoint_resumes);
            break;
        }
    /* shown when a worker spec has slow or missing heartbeats (other reports unchanged) */
    for (size_t i = 0; i < s->n_workers; i++)
        if (sim_worker_heartbeat_faults(&s->workers[i])) {
            fprintf(out, "heartbeats: missed %llu, late %llu\n",
                    (unsigned long long)r->heartbeats_missed, (unsigned long long)r->heartbeats_late);
            break;
        }
    /* replays: shown when the scenario has a replay fault (other reports unchanged) */
    char replayed[48] = "";
    for (size_t i = 0; i < s->n_timeline; i++)
        if (s->timeline[i].kind == SIM_EV_FAULT && s->timeline[i].fault.kind == SIM_FAULT_REPLAY) {
            snprintf(replayed, sizeof replayed, ", replayed %llu",
                     (unsigned long long)r->bus_replayed);
            break;
        }
    fprintf(out,
            "bus: published %llu, delivered %llu, dropped %llu, duplicated %llu, corrupted %llu, "
            "decode failures %llu%s\n",
            (unsigned long long)r->bus_published, (unsigned long long)r->bus_delivered,
            (unsigned long long)r->bus_dropped, (unsigned long long)r->bus_duplicated,
            (unsigned long long)r->bus_corrupted, (unsigned long long)r->bus_decode_failures,
            replayed);
    /* twins: shown when the scenario has a conflict action (other reports unchanged) */
    char twins[48] = "";
    for (size_t i = 0; i < s->n_timeline; i++)
        if (s->timeline[i].kind == SIM_EV_CONFLICT)
            snprintf(twins, sizeof twins, ", conflicting twins sent %llu",
                     (unsigned long long)r->twins_sent);
    if (s->gateway.sign)
        fprintf(out,
                "signing: signed submits %llu%s; signed replays answered as duplicates %llu, "
                "refused as expired %llu, refused as conflicting %llu\n",
                (unsigned long long)r->signed_submits, twins, (unsigned long long)r->signed_duplicates,
                (unsigned long long)r->signed_expired, (unsigned long long)r->signed_conflicts);
    if (r->violated)
        fprintf(out, "VIOLATION %s: job %s at %.6fs (seed %llu): %s\n", r->invariant,
                r->job_id[0] ? r->job_id : "-", (double)r->at / SEC,
                (unsigned long long)cfg->seed, r->detail);
    else
        fprintf(out, "invariants: all held\n");
    fprintf(out, "trace: %llu records, sha256 %s\n", (unsigned long long)r->trace_records,
            r->trace_hash);
}
