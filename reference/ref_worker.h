/* The reference CAP worker, as a sans-I/O state machine.
 *
 * Inputs: a packet that arrived on a subject (a dispatched JobRequest on
 * the pool subject `job.<pool>` or the direct subject
 * `worker.<worker_id>.jobs`, a JobCancel on `sys.job.cancel`), a timer
 * that fired, and the current time. Outputs: effects (ref_effect.h):
 * JobProgress on `sys.job.progress`, JobResult on `sys.job.result`,
 * Heartbeat on `sys.heartbeat` (cap-spec 09; cordum-ref 0), timers, and
 * one JSON journal line per decision.
 *
 * Jobs run through a handler callback, called synchronously once per
 * accepted (dispatch_id, attempt). The handler answers with an outcome, a
 * text and a service time; the worker publishes JobProgress RUNNING at
 * once, arms a completion timer at now + service time, and publishes the
 * JobResult when that timer fires (a HANG never completes: it ends only by
 * cancel or by a newer attempt).
 *
 * Fencing (cap-tck 4 "retries", "duplicates"; cap-spec 19 dispatch
 * fencing). Per job_id the worker keeps the active attempt A:
 *  - a request whose DispatchIdentity is missing, has an empty dispatch_id
 *    or attempt 0, or whose assigned_worker_id is not this worker's id, is
 *    rejected;
 *  - the same (dispatch_id, attempt) as the active one is a redelivery:
 *    the recorded JobResult is published again, byte for byte (nothing
 *    while the attempt still runs); the handler is not called;
 *  - attempt == A + 1 runs (a newer attempt supersedes a running older
 *    one: its timer is cancelled and it publishes nothing);
 *  - attempt <= A (stale) or > A + 1 (future) is rejected.
 * A job with no record has A = 0 under `strict_first_attempt`; otherwise
 * (the default) its first request is adopted at whatever attempt it
 * carries, because a retry may be dispatched to a worker that never saw
 * the earlier attempts. A rejection publishes nothing and mutates nothing;
 * it is one journal line with the reason.
 *
 * Cancel. A JobCancel for a running attempt stops it: the completion
 * timer is cancelled and a JobResult CANCELLED is published (and recorded,
 * so a redelivered dispatch replays it). A cancel carrying a
 * DispatchIdentity must match the active attempt exactly (dispatch_id,
 * attempt, assigned_worker_id); a stale or foreign one is ignored. A
 * cancel without DispatchIdentity (core profile) targets the active
 * attempt. A cancel for a finished or unknown job is ignored.
 *
 * Capacity. At most max_parallel_jobs attempts run at once. A request
 * that passes fencing while all slots are busy becomes the active attempt
 * and finishes at once, without a handler call, with JobResult
 * FAILED_RETRYABLE and error_code_enum ERROR_CODE_JOB_RESOURCE_EXHAUSTED
 * (201); the control plane retries it with attempt + 1.
 *
 * Bounds. At most max_jobs job records are kept, and a finished record is
 * kept for at least done_window_ns. A new job_id first takes the slot of
 * the record that finished first if that finished more than the window
 * ago (so the table's size follows the job rate, not the run's length);
 * otherwise a free slot, and when the table is full it evicts the record
 * that finished first (the order records finished in, never an address or
 * a hash); running records are never evicted (max_jobs > max_parallel_jobs
 * guarantees a victim). Each eviction is a journal line.
 *
 * Heartbeats: ref_worker_start publishes one and arms the heartbeat timer;
 * each firing publishes the next one and re-arms, whether jobs run or not.
 *
 * Determinism: the output depends only on the inputs, their order and the
 * handler's answers. Time is int64 ns on the caller's clock.
 * See docs/reference-worker.md. */
#ifndef REF_WORKER_H
#define REF_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"
#include "cap_schema.h"
#include "ref_effect.h"

#define REF_WORKER_SUBJECT_RESULT "sys.job.result"
#define REF_WORKER_SUBJECT_PROGRESS "sys.job.progress"
#define REF_WORKER_SUBJECT_HEARTBEAT "sys.heartbeat"
#define REF_WORKER_SUBJECT_CANCEL "sys.job.cancel"

/* cap-spec 05: heartbeat interval SHOULD be 2-5 s. */
#define REF_WORKER_DEFAULT_HEARTBEAT_NS (INT64_C(5) * INT64_C(1000000000))
#define REF_WORKER_DEFAULT_MAX_JOBS ((size_t)1024)
#define REF_WORKER_MAX_JOBS_LIMIT ((size_t)1 << 20)
/* How long a finished record is surely kept: the scheduler's replay-guard
 * TTL (REF_DEDUPE_DEFAULT_TTL_NS), so a redelivery the guard would still
 * catch is caught here too. */
#define REF_WORKER_DEFAULT_DONE_WINDOW_NS (INT64_C(15) * 60 * INT64_C(1000000000))
#define REF_WORKER_MAX_PARALLEL_LIMIT 65536
/* Longest id, pool, label or capability string accepted in the config. */
#define REF_WORKER_MAX_NAME 256

/* The timer id of the heartbeat. A completion timer's id is
 * (n << 20) | i for its record's index i and the n-th completion timer the
 * worker armed (n from 1): ids are never reused, and none is below 2^20. */
#define REF_WORKER_TIMER_HEARTBEAT UINT64_C(1)

typedef enum {
    REF_WORK_SUCCEEDED = 0,        /* JobResult SUCCEEDED, text = result_ptr */
    REF_WORK_FAILED_RETRYABLE = 1, /* JobResult FAILED_RETRYABLE, text = error_message */
    REF_WORK_FAILED_FATAL = 2,     /* JobResult FAILED_FATAL, text = error_message */
    REF_WORK_HANG = 3,             /* never completes by itself */
} ref_work_outcome;

/* "succeeded", "failed_retryable", "failed_fatal", "hang" (or "unknown"). */
const char *ref_work_outcome_name(ref_work_outcome o);

/* A handler's answer. `text` is borrowed: it must stay valid until the
 * handler call returns to the worker, which copies it. service_ns < 0
 * counts as 0. An outcome outside the enum is treated as FAILED_FATAL. */
typedef struct {
    ref_work_outcome outcome;
    const char *text;
    int64_t service_ns;
} ref_work;

/* Runs one job. `req` and its packet are borrowed for the call only.
 * Must fill *out (it arrives zeroed: SUCCEEDED, no text, 0 ns). */
typedef void (*ref_worker_handler)(void *ctx, const Cordum__Agent__V1__JobRequest *req,
                                   int64_t now, ref_work *out);

typedef struct {
    const char *key;
    const char *value;
} ref_worker_label;

/* Everything borrowed: ref_worker_init copies what it keeps. */
typedef struct {
    const char *worker_id;      /* required, non-empty */
    const char *pool;           /* required, non-empty */
    int32_t max_parallel_jobs;  /* 0: 1 */
    int64_t heartbeat_interval_ns; /* 0: REF_WORKER_DEFAULT_HEARTBEAT_NS; < 0 invalid */
    size_t max_jobs;            /* tracked job records; 0: default; must be > max_parallel_jobs */
    int64_t done_window_ns;     /* finished records older than this are reused first;
                                   0: REF_WORKER_DEFAULT_DONE_WINDOW_NS; < 0 invalid */
    const char *const *capabilities; /* n_capabilities strings, kept in this order */
    size_t n_capabilities;
    const ref_worker_label *labels; /* n_labels; sorted by key; duplicate keys invalid */
    size_t n_labels;
    int strict_first_attempt;   /* 1: an unknown job must arrive with attempt 1 */
    int no_journal;             /* 1: emit no journal effects (for a host that keeps none,
                                   such as the simulator: the lines are never built) */
    ref_worker_handler handler; /* required */
    void *handler_ctx;          /* borrowed, passed to handler */
} ref_worker_config;

typedef struct ref_worker ref_worker;

/* Creates a worker (free with ref_worker_free). CAP_EINVAL for a config
 * outside its documented ranges (NULL ids, empty strings in capabilities or
 * labels, names over REF_WORKER_MAX_NAME, duplicate label keys, limits),
 * CAP_ENOMEM. *out is set only on CAP_OK. */
int ref_worker_init(const ref_worker_config *cfg, ref_worker **out);
void ref_worker_free(ref_worker *w);

/* Publishes the first heartbeat and arms the heartbeat timer at
 * now + interval. Calling it again restarts the heartbeat cycle. */
int ref_worker_start(ref_worker *w, int64_t now, ref_effects *fx);

/* A packet arrived on `subject`. JobRequest is taken on the pool or direct
 * subject, JobCancel on sys.job.cancel; any other payload or subject is
 * ignored (CAP_OK, one journal line). `pkt` is borrowed. */
int ref_worker_on_packet(ref_worker *w, const char *subject, const cap_packet *pkt, int64_t now,
                         ref_effects *fx);

/* Timer `id` fired. An id the worker does not have armed (already
 * cancelled, already fired) is ignored: CAP_OK, no effect. */
int ref_worker_on_timer(ref_worker *w, uint64_t id, int64_t now, ref_effects *fx);

/* The worker's process died. Its job records survive (the exactly-once
 * store a worker keeps where a crash does not reach it, without which a
 * redelivery after a restart would run a handler again, cap-spec 19): every
 * attempt still running ends FAILED_RETRYABLE with the text
 * REF_WORKER_CRASH_TEXT, recorded and not published, so a redelivery of its
 * dispatch replays that result instead of calling the handler. Nothing is
 * published and no timer is cancelled: the host drops the dead process's
 * timers itself; ref_worker_start then starts the new process's heartbeat.
 * Effects: a journal line per ended attempt. */
#define REF_WORKER_CRASH_TEXT "the worker restarted while running this attempt"
int ref_worker_crash(ref_worker *w, int64_t now, ref_effects *fx);

/* A JobProgress packet as worker `worker_id` publishes it at `now` on
 * sys.job.progress: {job_id, percent, message, status RUNNING, dispatch =
 * a copy of `dispatch` with assigned_worker_id = worker_id (NULL: none),
 * identity = a copy of `identity` (NULL: none)}, in an envelope with
 * trace_id and sender worker_id. Arguments are borrowed. NULL when an
 * allocation fails. */
cap_packet *ref_worker_progress_packet(const char *trace_id, const char *worker_id,
                                      const char *job_id, int32_t percent, const char *message,
                                      const Cordum__Agent__V1__DispatchIdentity *dispatch,
                                      const Cordum__Agent__V1__IdentityBinding *identity,
                                      int64_t now);

/* Observations for tests, the simulator and invariant checks. */
/* "job.<pool>" and "worker.<worker_id>.jobs"; owned by the worker. */
const char *ref_worker_pool_subject(const ref_worker *w);
const char *ref_worker_direct_subject(const ref_worker *w);
/* Attempts running now. */
int ref_worker_active_jobs(const ref_worker *w);
/* Job records held (running and finished). */
size_t ref_worker_tracked_jobs(const ref_worker *w);
/* Handler calls so far. */
uint64_t ref_worker_handler_calls(const ref_worker *w);
/* The active attempt of job_id (0 when the worker holds no record) and,
 * when state is not NULL, that attempt's JobStatus (RUNNING while it runs,
 * then its result status). */
uint64_t ref_worker_active_attempt(const ref_worker *w, const char *job_id, int *state);

#endif
