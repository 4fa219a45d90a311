/* The conformance-handler contract: how a JobRequest tells a worker's
 * handler what to do, so that a golden case can ask any worker (the
 * reference one in the simulator, the reference one on a real bus, a
 * vendor's conformance build) for the same behaviour. docs/conformance-handler.md
 * is the vendor-facing description; this module is the reference reading.
 *
 * The plan is carried in JobRequest.labels, keys with the prefix
 * "cap.conformance.":
 *   cap.conformance.outcome        succeed | fail-retryable | fail-fatal | hang
 *                                  (default succeed)
 *   cap.conformance.fail_attempts  N in 0..1000: attempts 1..N fail retryable,
 *                                  later attempts take `outcome` (default 0)
 *   cap.conformance.progress       N in 0..100: JobProgress reports besides the
 *                                  start report, spread over the service time
 *                                  (default 0)
 *   cap.conformance.service        duration, e.g. 200ms: how long the handler
 *                                  works (default 100ms, at most 1h)
 *   cap.conformance.fatal_step     N in 1..1000: a workflow step whose
 *                                  JobRequest.step_index is N fails fatal,
 *                                  whatever the other keys say (absent: none)
 * Any other key under the prefix, or a malformed value, is CAP_EINVAL with
 * the label named in the diagnostic's path. A request without any such
 * label has no contract (has_contract 0): the worker behaves as it would
 * otherwise.
 *
 * Pure functions: no clock, no randomness, no allocation except the
 * progress packet (owned by the caller, freed with cap_packet_free). */
#ifndef REF_CONFORMANCE_H
#define REF_CONFORMANCE_H

#include <stdint.h>

#include "cap_error.h"
#include "cap_schema.h"
#include "ref_worker.h"

#define REF_CONFORMANCE_PREFIX "cap.conformance."
#define REF_CONFORMANCE_LABEL_OUTCOME "cap.conformance.outcome"
#define REF_CONFORMANCE_LABEL_FAIL_ATTEMPTS "cap.conformance.fail_attempts"
#define REF_CONFORMANCE_LABEL_PROGRESS "cap.conformance.progress"
#define REF_CONFORMANCE_LABEL_SERVICE "cap.conformance.service"
#define REF_CONFORMANCE_LABEL_FATAL_STEP "cap.conformance.fatal_step"

#define REF_CONFORMANCE_DEFAULT_SERVICE_NS (INT64_C(100) * INT64_C(1000000))
#define REF_CONFORMANCE_MAX_SERVICE_NS (INT64_C(3600) * INT64_C(1000000000))
#define REF_CONFORMANCE_MAX_PROGRESS 100u
#define REF_CONFORMANCE_MAX_FAIL_ATTEMPTS 1000u

typedef enum {
    REF_CONFORMANCE_SUCCEED = 0,
    REF_CONFORMANCE_FAIL_RETRYABLE = 1,
    REF_CONFORMANCE_FAIL_FATAL = 2,
    REF_CONFORMANCE_HANG = 3,
} ref_conformance_outcome;

/* The plan. The type is ref_conformance_plan; the reading function is
 * ref_conformance_plan_read, also callable as ref_conformance_plan(...)
 * (a function-like macro, which leaves the type name alone). */
typedef struct ref_conformance_plan {
    int has_contract;               /* 0: no cap.conformance.* label */
    ref_conformance_outcome outcome; /* for this attempt (fail_attempts applied) */
    uint32_t progress_steps;        /* JobProgress reports after the start report */
    int64_t service_ns;             /* how long the handler works */
    uint32_t fail_attempts;         /* as written (0 when absent) */
    uint32_t fatal_step;            /* as written (0 when absent) */
} ref_conformance_plan;
typedef ref_conformance_plan ref_conformance_plan_t;

/* Reads the plan of `req` for dispatch attempt `attempt` (1-based; 0 is
 * taken as 1). Fills *out (always: the defaults when there is no
 * contract) and returns CAP_OK; CAP_EINVAL for NULL arguments or a bad
 * label (d: path "labels.<key>", reason naming the value and what is
 * allowed). d may be NULL. */
int ref_conformance_plan_read(const Cordum__Agent__V1__JobRequest *req, uint64_t attempt,
                              ref_conformance_plan *out, cap_diag *d);
#define ref_conformance_plan(req, attempt, out, d)                                                 \
    ref_conformance_plan_read((req), (attempt), (out), (d))

/* "succeed", "fail-retryable", "fail-fatal", "hang"; NULL outside the enum. */
const char *ref_conformance_outcome_name(ref_conformance_outcome o);

/* Parses a contract duration: digits and a unit ns, us, ms, s or m
 * ("200ms", "2s"); the unit is required. 0 on success, -1 when malformed
 * or over REF_CONFORMANCE_MAX_SERVICE_NS. */
int ref_conformance_parse_duration(const char *s, int64_t *out);

/* The ref_worker answer for a plan: the outcome, its text (a static
 * string) and the service time. */
void ref_conformance_work(const ref_conformance_plan *p, ref_work *out);

/* When progress report k (1..steps) of an attempt that started at
 * `started` is due: started + service_ns * k / (steps + 1). */
int64_t ref_conformance_progress_at(const ref_conformance_plan *p, int64_t started, uint32_t k);

/* Progress report k of `steps` for the attempt `req` carries, as worker
 * `worker_id` publishes it at `now` on sys.job.progress: JobProgress
 * {job_id, percent = 100 * k / (steps + 1), message "step k/steps",
 * status RUNNING, dispatch = the request's DispatchIdentity with
 * assigned_worker_id = worker_id, identity = the request's binding}, in
 * an envelope with `trace_id` and sender worker_id. NULL on a bad argument
 * (k outside 1..steps) or when an allocation fails. */
cap_packet *ref_conformance_progress_packet(const Cordum__Agent__V1__JobRequest *req,
                                            const char *trace_id, const char *worker_id,
                                            uint32_t k, uint32_t steps, int64_t now);

#endif
