/* The CAP job state machine (cap-spec 07), as one table.
 *
 * Every component that moves or judges a job's state asks this module:
 * the reference scheduler and worker before they change a state, the
 * simulator's invariant checker on every transition it observes, and the
 * offline trace checker on a vendor's trace. docs/reference-jobstate.md
 * prints the whole table with the reason for every cell.
 *
 * States are plain ints so that a decoded JobStatus (JobResult.status,
 * JobProgress.status) can be passed as it is. Their values are the wire
 * values of cordum.agent.v1.JobStatus, plus one local state,
 * REF_JOB_APPROVAL_REQUIRED, which never goes on the wire.
 *
 * Pure functions over constant data: no allocation, no state, thread-safe.
 * Every returned string is a static constant (never NULL, never freed). */
#ifndef REF_JOBSTATE_H
#define REF_JOBSTATE_H

#include <stddef.h>

#include "cordum/agent/v1/job.pb-c.h"

enum {
    /* JOB_STATUS_UNSPECIFIED. As the `from` of a check it means "the job
     * has no state yet" (the [*] of the 07 diagram); it is never a target. */
    REF_JOB_NONE = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_UNSPECIFIED,
    REF_JOB_PENDING = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_PENDING,
    REF_JOB_SCHEDULED = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SCHEDULED,
    REF_JOB_DISPATCHED = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_DISPATCHED,
    REF_JOB_RUNNING = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING,
    REF_JOB_SUCCEEDED = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED,
    REF_JOB_FAILED = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED,
    REF_JOB_CANCELLED = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_CANCELLED,
    REF_JOB_DENIED = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_DENIED,
    REF_JOB_TIMEOUT = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_TIMEOUT,
    REF_JOB_FAILED_RETRYABLE = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_RETRYABLE,
    REF_JOB_FAILED_FATAL = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_FATAL,
    /* Local state, not a CAP JobStatus: the safety kernel answered
     * REQUIRE_HUMAN and the job waits for an out-of-band approval
     * (cap-spec 06 L24; Cordum's APPROVAL_REQUIRED, cordum-ref 1 and 9).
     * It is a parked SCHEDULED job: ref_jobstate_wire() reports it as
     * JOB_STATUS_SCHEDULED. The value is far above the wire enum so that
     * a JobStatus appended upstream can never collide with it. */
    REF_JOB_APPROVAL_REQUIRED = 1000,
};

/* Number of states (everything above except REF_JOB_NONE). */
#define REF_JOBSTATE_COUNT 12

/* The states in table order: PENDING .. FAILED_FATAL, then
 * APPROVAL_REQUIRED. REF_JOBSTATE_COUNT entries. */
extern const int ref_jobstate_list[REF_JOBSTATE_COUNT];

/* What a requested transition `from -> to` does. */
typedef enum {
    /* Legal step: an edge drawn in cap-spec 07 (L21-L32, with cancel per
     * L50), or one of the three edge groups this project pins where 07 is
     * silent (parking for approval, resuming or ending a parked job, and
     * the FAILED_RETRYABLE -> SCHEDULED retry). The job moves to `to`. */
    REF_JS_ACCEPT = 0,
    /* Forward jump over states that were not seen (PENDING -> RUNNING,
     * DISPATCHED -> SUCCEEDED): not a drawn edge, but not backwards
     * either, so it is accepted (cap-spec 07 L48 forbids only backward
     * moves; cap-tck 4.1 accepts every forward move; Cordum's table allows
     * such jumps). The job moves to `to`. A component that wants to flag
     * its own skipped steps can tell this apart from REF_JS_ACCEPT. */
    REF_JS_SKIP,
    /* from == to: accepted, and nothing changes (07 L47, idempotency). */
    REF_JS_REPEAT,
    /* The job is terminal and `to` is a different terminal other than
     * CANCELLED: the conflicting report is logged and ignored; the first
     * terminal stands (07 L49). Not an error. */
    REF_JS_IGNORE,
    /* Backward transition: rejected (07 L48). This includes every move
     * out of a terminal state to a non-terminal one. */
    REF_JS_REJECT_BACKWARD,
    /* CANCELLED requested for a job that is already terminal: rejected
     * (07 L50: cancel only from a non-terminal state). */
    REF_JS_REJECT_CANCEL,
    /* Neither backward nor allowed: a first state other than PENDING
     * (07 L21), or leaving APPROVAL_REQUIRED other than by resume,
     * rejection, cancel or timeout (06 L24: no dispatch before approval). */
    REF_JS_REJECT_ILLEGAL,
    /* `from` or `to` is not a job state (an out-of-range value, or
     * JOB_STATUS_UNSPECIFIED as a target). */
    REF_JS_REJECT_UNKNOWN,
} ref_js_outcome;

/* The outcome of moving a job from `from` to `to`. Total: defined for
 * every pair of ints. */
ref_js_outcome ref_jobstate_check(int from, int to);

/* The spec clause that decides `from -> to`, for diagnostics and
 * reports ("cap-spec 07 L48 (backward transition)"). */
const char *ref_jobstate_rule(int from, int to);

/* 1 when the job's state becomes `to` (REF_JS_ACCEPT, REF_JS_SKIP),
 * else 0 (a repeat, an ignored terminal and every rejection leave the
 * state unchanged). */
int ref_js_outcome_applies(ref_js_outcome o);

/* 1 for the REF_JS_REJECT_* outcomes: the transition is a protocol
 * violation by whoever asked for it. */
int ref_js_outcome_is_reject(ref_js_outcome o);

/* "accept", "skip", "repeat", "ignore", "reject-backward",
 * "reject-cancel", "reject-illegal", "reject-unknown"; "?" otherwise. */
const char *ref_js_outcome_name(ref_js_outcome o);

/* The upstream kit's verdict word for an outcome (cap-tck 4.1 "order"):
 * "accept" (ACCEPT, SKIP, REPEAT), "ignore" (IGNORE) or "reject". */
const char *ref_js_outcome_tck(ref_js_outcome o);

/* 1 when s is a job state: PENDING .. FAILED_FATAL or APPROVAL_REQUIRED. */
int ref_jobstate_is_valid(int s);

/* 1 for SUCCEEDED, FAILED, FAILED_FATAL, CANCELLED, DENIED, TIMEOUT
 * (07 L33-L37, L53). FAILED_RETRYABLE is not terminal (07 L52). */
int ref_jobstate_is_terminal(int s);

/* 1 when a cancel may be applied: s is a state and not terminal (07 L50). */
int ref_jobstate_can_cancel(int s);

/* The JobStatus to publish for state s: s itself for wire states,
 * JOB_STATUS_SCHEDULED for APPROVAL_REQUIRED, JOB_STATUS_UNSPECIFIED (0)
 * for anything that is not a state. */
int ref_jobstate_wire(int s);

/* "PENDING", ..., "FAILED_FATAL", "APPROVAL_REQUIRED"; "UNSPECIFIED" for
 * REF_JOB_NONE; "UNKNOWN" for any other value. */
const char *ref_jobstate_name(int s);

/* Parses a state name as the kit's suites spell it ("RUNNING") or as the
 * proto enum does ("JOB_STATUS_RUNNING"); case-sensitive. "UNSPECIFIED"
 * gives REF_JOB_NONE. Returns the state, or CAP_EINVAL (negative). */
int ref_jobstate_from_name(const char *name);

#endif
