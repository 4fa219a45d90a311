/* The reference CAP scheduler, as a sans-I/O state machine.
 *
 * It ties the reference components together: the job state table
 * (ref_jobstate), the safety kernel (ref_safety, borrowed), the worker
 * registry (ref_registry), per-worker circuit breakers (ref_breaker), the
 * replay guard (ref_dedupe) and saga rollback (ref_saga). Inputs: a decoded
 * packet that arrived on a subject, a timer that fired, an operator command
 * (approve, reject, cancel), and `now`. Outputs: effects (ref_effect.h).
 * No clock, no I/O; randomness (dispatch ids, jitter) comes from the
 * injected ref_rand. docs/reference-scheduler.md has the whole story; in
 * short:
 *
 * Subjects in: sys.job.submit (JobRequest), sys.job.result (JobResult),
 * sys.job.progress (JobProgress), sys.job.cancel (JobCancel),
 * sys.heartbeat (Heartbeat), sys.handshake (Handshake). Packets the
 * scheduler sent itself (sender_id == scheduler_id) are ignored.
 * Subjects out: worker.<id>.jobs (the dispatch: the scheduler picks the
 * worker, so it addresses it, cordum-ref 4.8) or job.<pool> (config
 * `dispatch_on_pool`), sys.job.result (results the scheduler decides:
 * DENIED, TIMEOUT, FAILED, CANCELLED, and duplicate answers),
 * sys.job.cancel (JobCancel to a worker), sys.job.dlq (JobResult DLQ
 * entries), sys.alert (SystemAlert on every breaker change).
 *
 * Pipeline of one job: submit -> PENDING -> SCHEDULED -> safety decision
 * -> DISPATCHED (fresh DispatchIdentity: 128-bit random dispatch_id,
 * attempt, assigned worker) -> RUNNING on the first progress (or a
 * heartbeat checkpoint) -> terminal on the result.
 *   DENY: DENIED, JobResult(DENIED, 300) on sys.job.result, DLQ entry.
 *   REQUIRE_HUMAN: parked (APPROVAL_REQUIRED) with an approval record bound
 *     to (request hash, policy snapshot); see ref_sched_approve.
 *   THROTTLE: stays SCHEDULED, re-checked after a backoff.
 *   ALLOW / ALLOW_WITH_CONSTRAINTS: dispatched; budgets.max_runtime_ms is
 *     the running timeout, max_retries the retry cap, max_concurrent_jobs
 *     a cap on the tenant's active jobs.
 *   No worker: the job waits (priority order CRITICAL, INTERACTIVE, BATCH,
 *     then submit order), is tried again when a worker comes online or
 *     frees a slot and every `no_worker_retry_ns`, and after
 *     `no_worker_wait_ns` ends FAILED with the selection's error code
 *     (206, or 100 when only the wire version stood in the way).
 *   FAILED_RETRYABLE result, or the worker lost: re-dispatched as attempt
 *     + 1 after exponential backoff with jitter, at most max_retries times
 *     (default 3), then FAILED + DLQ. FAILED_FATAL: terminal, DLQ, and the
 *     workflow's saga rollback.
 *   Dispatch timeout (DISPATCHED too long) and running timeout (RUNNING too
 *     long): TIMEOUT, JobResult(TIMEOUT, 200), JobCancel to the worker, DLQ.
 * Fencing: a result, progress or cancel whose DispatchIdentity is not the
 * job's current one is ignored; so is a result for a terminal job.
 * Duplicates: an exact redelivery is ignored (replay guard); a different
 * request with a known job_id, or with a known (tenant,
 * meta.idempotency_key), creates no job and is answered with a JobResult
 * of the existing job (its current status, error 205).
 *
 * Journal: every change to a job is one JSON record (kind "job") holding
 * the job's whole durable state; saga steps are records of kind "saga";
 * diagnostics are kind "note" (restore skips them). ref_sched_restore
 * rebuilds a scheduler from the records and re-arms its timers, so that
 * it continues where the journal ends. The registry, breakers and replay
 * guard are soft state: they are rebuilt from the traffic that follows.
 *
 * Ownership: the config's pointers are borrowed during ref_sched_new only,
 * except `safety` and `rand.ctx`, which must outlive the scheduler. */
#ifndef REF_SCHEDULER_H
#define REF_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"
#include "cap_schema.h"
#include "ref_breaker.h"
#include "ref_dedupe.h"
#include "ref_effect.h"
#include "ref_registry.h"
#include "ref_safety.h"
#include "ref_saga.h"

#define REF_SCHED_SUBJECT_SUBMIT "sys.job.submit"
#define REF_SCHED_SUBJECT_RESULT "sys.job.result"
#define REF_SCHED_SUBJECT_PROGRESS "sys.job.progress"
#define REF_SCHED_SUBJECT_CANCEL "sys.job.cancel"
#define REF_SCHED_SUBJECT_HEARTBEAT "sys.heartbeat"
#define REF_SCHED_SUBJECT_HANDSHAKE "sys.handshake"
#define REF_SCHED_SUBJECT_DLQ "sys.job.dlq"
#define REF_SCHED_SUBJECT_ALERT "sys.alert"

/* The env key that carries a worker's last checkpoint to the next attempt. */
#define REF_SCHED_ENV_LAST_MEMO "CORDUM_LAST_MEMO"

/* Timer ids the scheduler uses for itself; job timers use ids >= 8. */
#define REF_SCHED_TIMER_REGISTRY UINT64_C(1) /* the next worker loss */
#define REF_SCHED_TIMER_BREAKER UINT64_C(2)  /* the next breaker cool-down end */

#define REF_SCHED_DEFAULT_MAX_JOBS ((size_t)65536)
#define REF_SCHED_MAX_JOBS_LIMIT ((size_t)1 << 24)
#define REF_SCHED_ID_MAX 255

/* A timeout override for one pool or one tenant (0 keeps the default). */
typedef struct {
    const char *name;
    int64_t dispatch_timeout_ns;
    int64_t running_timeout_ns;
} ref_sched_timeouts;

/* Topic routing: jobs whose topic is `topic` may go to these pools. A topic
 * without a route goes to the pool named like the topic (cordum-ref 4.1). */
typedef struct {
    const char *topic;
    const char *const *pools;
    size_t n_pools;
} ref_sched_route;

/* How the scheduler writes its "job" and "evict" journal records (the
 * other kinds are always text).
 *   TEXT  JSON lines (docs/reference-scheduler.md), the durable form that
 *         ref_sched_restore reads: the default.
 *   VIEW  compact views (REF_EFFECT_JOURNAL_VIEW effects, read with
 *         ref_sched_view_read) holding only what a driver reading the
 *         journal in-process looks at. For a driver that keeps none of the
 *         journal (the simulator when no restart of the scheduler is
 *         scheduled): writing and reading back thirty JSON members per state
 *         change costs more than anything else a record does, and such
 *         records cannot restore a scheduler.
 *   BOTH  each such record as text and then as a view, in two effects: for
 *         checking that the two agree (tests). */
typedef enum {
    REF_SCHED_JOURNAL_TEXT = 0,
    REF_SCHED_JOURNAL_VIEW = 1,
    REF_SCHED_JOURNAL_BOTH = 2,
} ref_sched_journal_form;

/* A view record's kind: a job record ("k":"job") or an eviction ("k":"evict"). */
typedef enum {
    REF_SCHED_VIEW_JOB = 1,
    REF_SCHED_VIEW_EVICT = 2,
} ref_sched_view_kind;

/* A view record's members: each the same as the text record's member of
 * that name ("ev", "job_id", "state", "snapshot", "hash", "appr_snapshot",
 * "decision", "appr", "attempt"). Strings are NUL-terminated and point into
 * the record; an eviction has only kind and job_id (the rest NULL or 0). */
typedef struct {
    ref_sched_view_kind kind;
    const char *ev, *job_id, *state, *snapshot, *hash, *appr_snapshot;
    size_t job_id_len, state_len;
    int decision, appr;
    uint64_t attempt;
} ref_sched_view;

/* Reads the view record of a JOURNAL_VIEW effect (its record and
 * record_len) into *v. CAP_OK, or CAP_EINVAL when the bytes are not a
 * whole view record (*v then zeroed). */
int ref_sched_view_read(const char *rec, size_t len, ref_sched_view *v);

typedef struct {
    const char *scheduler_id;   /* sender_id of every packet; default "scheduler" */
    ref_safety *safety;         /* required; borrowed for the scheduler's life */
    ref_rand rand;              /* required (next != NULL) */
    const ref_registry_config *registry; /* NULL: ref_registry_config_default() */
    const ref_breaker_config *breaker;   /* NULL: ref_breaker_config_default() */
    const ref_dedupe_config *dedupe;     /* NULL: ref_dedupe_config_default() */
    const ref_saga_config *saga;         /* NULL: ref_saga_config_default() */
    size_t max_jobs;            /* jobs held (terminal ones evicted oldest first); 0: default */
    uint32_t max_retries;       /* re-dispatches after a retryable failure; default 3 */
    int max_retries_set;        /* 1: use max_retries even when 0 */
    int64_t retry_base_ns;      /* backoff: min(base << n, max) + U[0, jitter); default 1 s */
    int64_t retry_max_ns;       /* default 30 s */
    int64_t retry_jitter_ns;    /* default 500 ms */
    int64_t throttle_base_ns;   /* THROTTLE re-check backoff base; default 5 s (max retry_max) */
    int64_t tenant_limit_delay_ns; /* max_concurrent_jobs wait; default 2 s */
    int64_t no_worker_retry_ns; /* default 2 s */
    int64_t no_worker_wait_ns;  /* default 300 s */
    int64_t dispatch_timeout_ns; /* default 300 s */
    int64_t running_timeout_ns;  /* default 9000 s */
    const ref_sched_timeouts *pool_timeouts;   /* by pool name */
    size_t n_pool_timeouts;
    const ref_sched_timeouts *tenant_timeouts; /* by tenant; wins over the pool's */
    size_t n_tenant_timeouts;
    const ref_sched_route *routes;
    size_t n_routes;
    int dispatch_on_pool;       /* 1: publish dispatches on job.<pool>, not worker.<id>.jobs */
    int journal_form;           /* a ref_sched_journal_form; 0: REF_SCHED_JOURNAL_TEXT */
} ref_sched_config;

/* Every field zero except the defaults named above. */
ref_sched_config ref_sched_config_default(void);

typedef struct ref_sched ref_sched;

/* A scheduler (free with ref_sched_free). CAP_OK; CAP_EINVAL with d naming
 * the bad field; CAP_ENOMEM. */
int ref_sched_new(const ref_sched_config *cfg, ref_sched **out, cap_diag *d);
void ref_sched_free(ref_sched *s);

/* What an input did (the return value of the input functions, >= 0). */
typedef enum {
    REF_SCHED_APPLIED = 0,   /* it changed something, or was answered */
    REF_SCHED_DUPLICATE = 1, /* an exact redelivery: no second side effect */
    REF_SCHED_STALE = 2,     /* fencing: a dispatch identity that is not the current one */
    REF_SCHED_IGNORED = 3,   /* nothing to do: unknown or terminal job, own packet, ... */
    REF_SCHED_REJECTED = 4,  /* invalid input, or refused by the replay guard */
} ref_sched_verdict;

const char *ref_sched_verdict_name(ref_sched_verdict v);

/* A packet arrived on `subject`. wire/len: the bytes it was decoded from
 * (for the replay guard's body digest); NULL: the packet is encoded
 * instead. Returns a ref_sched_verdict, or a negative error (CAP_EINVAL
 * for NULL arguments, CAP_ENOMEM, CAP_EFULL when fx is full; the
 * scheduler's state then is as of the last complete step). */
int ref_sched_on_packet(ref_sched *s, const char *subject, const cap_packet *p,
                        const uint8_t *wire, size_t len, int64_t now, ref_effects *fx);

/* A timer the scheduler set has fired. */
int ref_sched_on_timer(ref_sched *s, uint64_t id, int64_t now, ref_effects *fx);

/* Arms the scheduler's housekeeping timers; call once after ref_sched_new
 * (ref_sched_restore does it itself). */
int ref_sched_start(ref_sched *s, int64_t now, ref_effects *fx);

/* Answers to operator commands. */
typedef enum {
    REF_SCHED_OK = 0,
    REF_SCHED_NOT_FOUND,        /* no such job */
    REF_SCHED_NOT_ACTIONABLE,   /* the job is not in a state the command applies to */
    REF_SCHED_ALREADY_APPROVED, /* approve of a job approved earlier */
    REF_SCHED_ALREADY_REJECTED, /* reject of a job rejected earlier */
    REF_SCHED_SELF_APPROVAL,    /* the approver is the job's own principal or actor */
    REF_SCHED_STALE_REQUEST,    /* the request no longer hashes to the bound hash */
    REF_SCHED_STALE_SNAPSHOT,   /* the policy changed and the new one does not allow it */
} ref_sched_answer;

const char *ref_sched_answer_name(ref_sched_answer a);

/* Approves a parked job as `by` with a note (both copied, bounded to 512
 * bytes). When the policy snapshot is still the one the approval was
 * asked under, the job resumes (SCHEDULED, then dispatch). When it
 * changed, the request is re-evaluated under the current policy: an
 * allow-class decision rebinds the approval to the new snapshot and
 * resumes the job; anything else leaves it parked (REQUIRE_HUMAN rebinds
 * it, so that an approval under the new snapshot can follow) and answers
 * REF_SCHED_STALE_SNAPSHOT with the reason in `why` (may be NULL, else
 * REF_REASON_MAX + 1 bytes). Returns the answer (>= 0) or an error. */
int ref_sched_approve(ref_sched *s, const char *job_id, const char *by, const char *note,
                      int64_t now, ref_effects *fx, char *why);

/* Rejects a parked job: DENIED, JobResult(DENIED, 300, "approval_rejected")
 * on sys.job.result, DLQ entry. */
int ref_sched_reject(ref_sched *s, const char *job_id, const char *by, const char *note,
                     int64_t now, ref_effects *fx);

/* Cancels a job from any non-terminal state (operator or client): the
 * worker is told (JobCancel with the current identity), a JobResult
 * CANCELLED goes on sys.job.result, and every non-terminal job whose
 * parent_job_id is this job is cancelled too, recursively. */
int ref_sched_cancel(ref_sched *s, const char *job_id, const char *reason, const char *by,
                     int64_t now, ref_effects *fx);

/* Rebuilds state from journal records (the JOURNAL effects of an earlier
 * scheduler, in order) into s, which must be new (nothing submitted yet),
 * and arms every timer the restored jobs need. A record that is not valid
 * JSON of a known kind is an error naming its index in d; nothing is
 * restored then (s must be freed). */
int ref_sched_restore(ref_sched *s, const char *const *records, size_t n, int64_t now,
                      ref_effects *fx, cap_diag *d);

/* ---- queries ---- */

typedef struct {
    int state;                  /* ref_jobstate value */
    uint64_t attempt;           /* 0 before the first dispatch */
    const char *dispatch_id;    /* "" before the first dispatch */
    const char *worker_id;      /* "" before the first dispatch */
    uint32_t retries;           /* re-dispatches used */
    int decision;               /* the last safety decision (DecisionType), 0 none */
    const char *policy_snapshot;/* the snapshot of that decision */
    int approval;               /* 0 none, 1 pending, 2 approved, 3 rejected */
    const char *approval_hash;  /* hex SHA-256 the approval is bound to, or "" */
    const char *approval_snapshot;
    const char *last_memo;
    int waiting;                /* 1: waiting for a worker */
} ref_sched_job_info;

/* The job's state: CAP_OK with *out filled (pointers valid until the next
 * input), or CAP_EINVAL when the job is unknown. */
int ref_sched_job(const ref_sched *s, const char *job_id, ref_sched_job_info *out);

typedef struct {
    uint64_t submitted, duplicates, dispatched, retries, throttled, parked;
    uint64_t succeeded, failed, failed_fatal, denied, timed_out, cancelled;
    uint64_t stale, dlq, breaker_changes, rollbacks_started, compensations;
    uint64_t replays_expired, replays_conflicting; /* packets the replay guard refused */
    size_t jobs, waiting;
} ref_sched_stats;

ref_sched_stats ref_sched_stats_get(const ref_sched *s);

/* The components, for inspection and operator actions (policy reloads go
 * through the borrowed ref_safety). Owned by the scheduler. */
const ref_registry *ref_sched_registry(const ref_sched *s);
const ref_saga *ref_sched_saga(const ref_sched *s);

/* The hex SHA-256 an approval is bound to: the canonical encoding of the
 * request without its dispatch identity, without labels starting with
 * "approval_" (any case) or named cordum.bus_msg_id, and without the env
 * keys CORDUM_EFFECTIVE_CONFIG and CORDUM_LAST_MEMO (cordum-ref 9). out has
 * 65 bytes. CAP_OK, CAP_ENOMEM. */
int ref_sched_request_hash(const Cordum__Agent__V1__JobRequest *req, char out[65]);

/* The backoff before retry number n (0-based): min(base << min(n, 10), max)
 * plus a uniform jitter in [0, jitter), all capped at max. */
int64_t ref_sched_backoff(int64_t base, int64_t max, int64_t jitter, uint32_t n, const ref_rand *r);

/* Self-check for tests, process-wide. A scheduler trying its waiting jobs
 * reuses a selection that found no worker for the next job it must give
 * the same answer (plain jobs of one topic, nothing changed in between:
 * see sel_miss in ref_scheduler.c). With the check on, each reuse also
 * selects afresh and goes on with the fresh answer, counting the reuses
 * checked and those whose outcome was not the fresh one (which must stay
 * 0). */
void ref_sched_check_reuse(int on);
uint64_t ref_sched_reuses_checked(void);
uint64_t ref_sched_reuses_wrong(void);

#endif
