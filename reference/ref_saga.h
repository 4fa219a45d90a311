/* Saga rollback bookkeeping (cordum-ref 11, cap-spec 07 L53 and 08).
 *
 * A pure data structure the scheduler drives: no I/O, no clock, no
 * randomness. Per workflow (JobRequest.workflow_id) it keeps the stack of
 * compensations recorded from successful jobs and, once a FAILED_FATAL
 * starts a rollback, hands the compensations out newest first, one at a
 * time, as new JobRequests.
 *
 * Recording. ref_saga_record is called with a job's request and its
 * terminal status. The request is pushed when the status is SUCCEEDED, it
 * carries a Compensation, and it has a non-empty workflow_id and job_id.
 * What is stored is a deep copy: the canonical encoding (cap_encode) of the
 * parent request with its DispatchIdentity removed; the caller keeps its
 * request. A job_id already recorded in the workflow is not pushed again.
 *
 * Phases of a workflow: IDLE (recording), ROLLING_BACK, DONE.
 *   - ref_saga_trigger with FAILED_FATAL moves IDLE (or an unknown
 *     workflow, which is then created with an empty stack) to ROLLING_BACK.
 *     A second trigger is reported (ALREADY_RUNNING / ALREADY_DONE) and
 *     nothing is queued (cordum-ref 13.9).
 *   - A success recorded during ROLLING_BACK is pushed and, being the
 *     newest, is compensated next. A success arriving in DONE is not
 *     recorded: REF_SAGA_REC_LATE tells the caller to handle it (DLQ).
 *   - ref_saga_next yields the newest pending compensation and marks it in
 *     flight; called again before its outcome is reported it yields the same
 *     request again (same job_id and idempotency key, so a re-publish after
 *     a crash deduplicates). ref_saga_report records the outcome;
 *     FAILED and DENIED are kept for the DLQ and the rollback goes on. When
 *     nothing is pending or in flight, ref_saga_next returns
 *     REF_SAGA_NEXT_COMPLETE and the workflow is DONE.
 *
 * The compensation request (see docs/reference-saga.md for the full table):
 *   - every Compensation field that is set overrides, every unset one is
 *     inherited from the parent request. Unset means: a string that is NULL
 *     or ""; priority JOB_PRIORITY_UNSPECIFIED (0); a message pointer that
 *     is NULL (a present message, even an empty one, is set and replaces the
 *     parent's whole, with no field-by-field merge). Maps (env, labels) are
 *     merged key by key: the parent's entries, each overridden or extended
 *     by the Compensation's entries (so an empty map inherits everything);
 *     within one map a repeated key keeps its last value;
 *   - job_id = ref_saga_comp_job_id(workflow_id, job_id);
 *   - parent_job_id = the compensated job's id; workflow_id and step_index
 *     are the parent's;
 *   - meta.idempotency_key = the Compensation's own meta.idempotency_key
 *     when it sets one, else ref_saga_idempotency_key(workflow_id, job_id);
 *     the parent's key is never reused. meta is therefore always present;
 *   - compensation and dispatch are never set: no DispatchIdentity is
 *     copied from the parent or from the Compensation (the scheduler assigns
 *     a fresh, fenced one when it dispatches).
 *
 * Bounds: at most max_workflows workflows and max_depth recorded jobs per
 * workflow (compensated ones included); beyond them CAP_EFULL and nothing
 * changes. Workflow ids and job ids are at most REF_SAGA_MAX_ID_LEN bytes.
 * Storage is a sorted array of workflows (bytewise by id) and, per
 * workflow, an array in recording order: no hash order anywhere.
 *
 * Ownership: every string passed in is copied; pointers returned in
 * ref_saga_entry_info borrow from the saga and stay valid until the next
 * call that modifies it. A JobRequest returned by ref_saga_next belongs to
 * the caller and is freed with ref_saga_request_free (or cap_message_free).
 * The JSON text from ref_saga_serialize is freed with free(). */
#ifndef REF_SAGA_H
#define REF_SAGA_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"
#include "cap_schema.h"

#define REF_SAGA_DEFAULT_MAX_WORKFLOWS ((size_t)1024)
#define REF_SAGA_DEFAULT_MAX_DEPTH ((size_t)256)
/* The largest values ref_saga_config_check accepts. */
#define REF_SAGA_MAX_WORKFLOWS_LIMIT ((size_t)1 << 20)
#define REF_SAGA_MAX_DEPTH_LIMIT ((size_t)1 << 16)
/* Longest workflow_id or job_id, in bytes. */
#define REF_SAGA_MAX_ID_LEN ((size_t)512)
/* Longest JSON text ref_saga_restore reads. */
#define REF_SAGA_MAX_JSON ((size_t)256 << 20)
/* The version written into and required from the JSON state. */
#define REF_SAGA_STATE_VERSION 1

typedef struct {
    size_t max_workflows; /* 1..REF_SAGA_MAX_WORKFLOWS_LIMIT (default 1024) */
    size_t max_depth;     /* 1..REF_SAGA_MAX_DEPTH_LIMIT (default 256) */
} ref_saga_config;

ref_saga_config ref_saga_config_default(void);

/* CAP_OK or CAP_EINVAL. */
int ref_saga_config_check(const ref_saga_config *cfg);

typedef enum {
    REF_SAGA_IDLE = 0,         /* recording successes */
    REF_SAGA_ROLLING_BACK = 1, /* a rollback is running */
    REF_SAGA_DONE = 2,         /* the rollback finished */
} ref_saga_phase;

/* Results of ref_saga_record (>= 0). */
typedef enum {
    REF_SAGA_REC_PUSHED = 0,          /* recorded on the stack */
    REF_SAGA_REC_NOT_SUCCEEDED = 1,   /* status is not SUCCEEDED */
    REF_SAGA_REC_NO_COMPENSATION = 2, /* the request has no Compensation */
    REF_SAGA_REC_NO_WORKFLOW = 3,     /* workflow_id is empty */
    REF_SAGA_REC_DUPLICATE = 4,       /* this job_id is already recorded */
    REF_SAGA_REC_LATE = 5,            /* the workflow's rollback is DONE */
} ref_saga_record_result;

/* Results of ref_saga_trigger (>= 0). */
typedef enum {
    REF_SAGA_STARTED = 0,         /* a rollback starts now */
    REF_SAGA_NOT_FATAL = 1,       /* status is not FAILED_FATAL: nothing */
    REF_SAGA_ALREADY_RUNNING = 2, /* refused: one is running */
    REF_SAGA_ALREADY_DONE = 3,    /* refused: one has finished */
} ref_saga_trigger_result;

/* Results of ref_saga_next (>= 0). */
typedef enum {
    REF_SAGA_NEXT_COMPLETE = 0, /* nothing left: the rollback is DONE */
    REF_SAGA_NEXT_JOB = 1,      /* *out holds the next compensation */
} ref_saga_next_result;

/* The outcome of one compensation job. */
typedef enum {
    REF_SAGA_OUT_NONE = 0, /* not terminal yet */
    REF_SAGA_OUT_SUCCEEDED = 1,
    REF_SAGA_OUT_FAILED = 2,
    REF_SAGA_OUT_DENIED = 3,
} ref_saga_outcome;

/* State of one recorded job. */
typedef enum {
    REF_SAGA_ENTRY_PENDING = 0,   /* on the stack */
    REF_SAGA_ENTRY_IN_FLIGHT = 1, /* yielded, outcome not reported */
    REF_SAGA_ENTRY_SUCCEEDED = 2,
    REF_SAGA_ENTRY_FAILED = 3,
    REF_SAGA_ENTRY_DENIED = 4,
} ref_saga_entry_state;

typedef struct {
    const char *job_id;         /* the compensated job (borrowed) */
    ref_saga_entry_state state;
    uint32_t rollback_seq;      /* 1, 2, ... in the order yielded; 0 while pending */
} ref_saga_entry_info;

typedef struct {
    ref_saga_phase phase;
    size_t recorded;  /* jobs recorded, whatever their state */
    size_t pending;   /* still on the stack */
    size_t in_flight; /* 0 or 1 */
    size_t succeeded, failed, denied;
} ref_saga_summary;

typedef struct ref_saga ref_saga;

/* A saga store with cfg (NULL: the defaults). Freed with ref_saga_free.
 * CAP_OK, CAP_EINVAL, CAP_ENOMEM. */
int ref_saga_new(const ref_saga_config *cfg, ref_saga **out);
void ref_saga_free(ref_saga *s);

/* Records a job that reached status. Returns a ref_saga_record_result, or
 * CAP_EINVAL (NULL arguments; an empty job_id, or an id over
 * REF_SAGA_MAX_ID_LEN, on a request that would be pushed), CAP_EFULL (the
 * workflow's stack, or the workflow table, is full), CAP_ENOMEM. On an
 * error nothing changes. */
int ref_saga_record(ref_saga *s, const Cordum__Agent__V1__JobRequest *req,
                    Cordum__Agent__V1__JobStatus status);

/* A job of workflow_id ended with status. Returns a
 * ref_saga_trigger_result, or CAP_EINVAL (NULL, empty or too long id),
 * CAP_EFULL (an unknown workflow and no free slot), CAP_ENOMEM. */
int ref_saga_trigger(ref_saga *s, const char *workflow_id, Cordum__Agent__V1__JobStatus status);

/* The next compensation of a running rollback (see above). REF_SAGA_NEXT_JOB
 * with *out, or REF_SAGA_NEXT_COMPLETE with *out = NULL (also when asked
 * again after completion). CAP_EINVAL: unknown workflow, or no rollback was
 * ever started; CAP_ENOMEM (nothing changes). */
int ref_saga_next(ref_saga *s, const char *workflow_id, Cordum__Agent__V1__JobRequest **out);

/* Reports the outcome of the compensation in flight, named by its own
 * job_id (the one ref_saga_next set, i.e. JobResult.job_id). CAP_OK, or
 * CAP_EINVAL: unknown workflow, nothing in flight, another job_id, or
 * outcome REF_SAGA_OUT_NONE / out of range. */
int ref_saga_report(ref_saga *s, const char *workflow_id, const char *comp_job_id,
                    ref_saga_outcome outcome);

/* The outcome a compensation's terminal JobStatus means: SUCCEEDED ->
 * SUCCEEDED; DENIED -> DENIED; FAILED, FAILED_FATAL, FAILED_RETRYABLE,
 * TIMEOUT, CANCELLED -> FAILED; anything else -> NONE. */
ref_saga_outcome ref_saga_outcome_of_status(Cordum__Agent__V1__JobStatus status);

/* Counts for a workflow. CAP_OK, or CAP_EINVAL for an unknown one. */
int ref_saga_summary_get(const ref_saga *s, const char *workflow_id, ref_saga_summary *out);

/* The i-th recorded job of a workflow, in recording order: 1 and *out, or
 * 0 when i is past the end; CAP_EINVAL for an unknown workflow. */
int ref_saga_entry(const ref_saga *s, const char *workflow_id, size_t i, ref_saga_entry_info *out);

/* The i-th FAILED or DENIED compensation of a workflow, in the order the
 * rollback yielded them: 1 and *out, or 0 past the end; CAP_EINVAL. */
int ref_saga_failure(const ref_saga *s, const char *workflow_id, size_t i,
                     ref_saga_entry_info *out);

/* Drops a workflow that is IDLE (it succeeded; its stack is discarded) or
 * DONE, freeing its slot; a later use of the id starts afresh. 1 when
 * removed, 0 when unknown, CAP_EINVAL while its rollback is running. */
int ref_saga_forget(ref_saga *s, const char *workflow_id);

/* Workflows held, and the i-th workflow id in ascending bytewise order
 * (NULL past the end; borrowed). */
size_t ref_saga_workflow_count(const ref_saga *s);
const char *ref_saga_workflow_at(const ref_saga *s, size_t i);

/* The deterministic compensation job_id and idempotency key of job_id in
 * workflow_id, written with a NUL into buf[0..n):
 *   job_id          "comp-job:<len>:<workflow_id>:<job_id>"
 *   idempotency key "comp:<len>:<workflow_id>:<job_id>"
 * where <len> is the decimal byte length of workflow_id (so no two
 * (workflow_id, job_id) pairs give the same string). Return the string's
 * length, or CAP_EINVAL (NULL, or buf too small). */
int ref_saga_comp_job_id(const char *workflow_id, const char *job_id, char *buf, size_t n);
int ref_saga_idempotency_key(const char *workflow_id, const char *job_id, char *buf, size_t n);

/* Frees a request from ref_saga_next; NULL is fine. */
void ref_saga_request_free(Cordum__Agent__V1__JobRequest *req);

/* The whole state as compact JSON (format in docs/reference-saga.md),
 * deterministic: the same state always gives the same text. *json is
 * freed with free(). CAP_OK, CAP_EINVAL, CAP_ENOMEM. */
int ref_saga_serialize(const ref_saga *s, char **json);

/* A new store with cfg (NULL: defaults) holding the state in json[0..len).
 * All or nothing: CAP_OK and *out, or CAP_EJSON (not the format, or an
 * inconsistent state: unsorted or repeated ids, a phase that does not fit
 * its entries, undecodable requests), CAP_EFULL (over cfg's bounds),
 * CAP_EINVAL, CAP_ENOMEM. */
int ref_saga_restore(const ref_saga_config *cfg, const char *json, size_t len, ref_saga **out);

/* "idle", "rolling_back", "done"; "unknown" otherwise. */
const char *ref_saga_phase_name(ref_saga_phase p);
/* "pending", "in_flight", "succeeded", "failed", "denied"; "unknown". */
const char *ref_saga_entry_state_name(ref_saga_entry_state st);

#endif
