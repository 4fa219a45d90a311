/* Per-worker circuit breaker: a pure state machine.
 *
 *   CLOSED    --N consecutive failures/timeouts-->  OPEN
 *   OPEN      --cool-down elapsed (now >= opened_at + cool_down)-->  HALF_OPEN
 *   HALF_OPEN --the one trial succeeds-->  CLOSED
 *   HALF_OPEN --the one trial fails or times out-->  OPEN (a new cool-down)
 *   any state --ref_breaker_reset (operator command)-->  CLOSED
 *
 * Dispatch is admitted in CLOSED; never in OPEN; in HALF_OPEN exactly one
 * trial dispatch is admitted and every other is refused until the trial's
 * outcome is known. Defaults: 3 consecutive failures, 30 s cool-down (the
 * Cordum safety-client breaker's FailThreshold and OpenDuration,
 * cordum-ref 8.4). See docs/reference-breaker.md.
 *
 * Sans-I/O: nothing here reads a clock. Every call that depends on time takes
 * `now`, int64 nanoseconds on the caller's clock (virtual in the simulator);
 * the cool-down is measured on that clock only. Time that goes backwards is
 * tolerated: an open breaker simply stays open until `now` reaches
 * opened_at + cool_down.
 *
 * Tickets. Every admitted dispatch receives a ticket (uint64) which the
 * caller hands back with the dispatch's outcome. An outcome counts only if
 * its ticket is current: a ticket is invalidated by every state change and
 * by every trial grant, so a late result of a dispatch made before the
 * breaker opened can neither close a half-open breaker nor re-open it, and
 * only the trial's own outcome decides a half-open breaker.
 *
 * Events. Every state change is reported through a ref_breaker_event out
 * parameter (from, to, worker, reason, time), so that the caller can publish
 * a SystemAlert on sys.alert (ref_breaker_alert_fill). A call changes the
 * state at most once. */
#ifndef REF_BREAKER_H
#define REF_BREAKER_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"
#include "cap_schema.h"

#define REF_BREAKER_DEFAULT_FAILURE_THRESHOLD 3u
#define REF_BREAKER_DEFAULT_COOL_DOWN_NS (INT64_C(30) * INT64_C(1000000000))
#define REF_BREAKER_DEFAULT_MAX_WORKERS ((size_t)4096)
/* Longest worker id a breaker set accepts, in bytes (no NUL counted). */
#define REF_BREAKER_WORKER_ID_MAX 255

typedef enum {
    REF_BREAKER_CLOSED = 0,
    REF_BREAKER_OPEN = 1,
    REF_BREAKER_HALF_OPEN = 2,
} ref_breaker_state;

/* What the caller learnt about one admitted dispatch. */
typedef enum {
    REF_BREAKER_SUCCESS = 0,   /* the worker completed the job (any terminal result it sent) */
    REF_BREAKER_FAILURE = 1,   /* the worker failed it, or the publish to it failed */
    REF_BREAKER_TIMEOUT = 2,   /* no result within the caller's dispatch timeout */
    REF_BREAKER_ABANDONED = 3, /* the dispatch never reached the worker (e.g. cancelled before
                                * publish): counts neither way; frees a half-open trial slot */
} ref_breaker_outcome;

typedef enum {
    REF_BREAKER_REASON_NONE = 0,
    REF_BREAKER_REASON_FAILURES = 1,        /* CLOSED -> OPEN: the threshold was reached */
    REF_BREAKER_REASON_COOL_DOWN = 2,       /* OPEN -> HALF_OPEN */
    REF_BREAKER_REASON_TRIAL_SUCCEEDED = 3, /* HALF_OPEN -> CLOSED */
    REF_BREAKER_REASON_TRIAL_FAILED = 4,    /* HALF_OPEN -> OPEN (failure or timeout) */
    REF_BREAKER_REASON_RESET = 5,           /* any -> CLOSED by ref_breaker_reset */
} ref_breaker_reason;

/* Verdicts of ref_breaker_acquire (non-negative; errors are negative). */
enum {
    REF_BREAKER_ADMIT = 0,       /* closed: dispatch */
    REF_BREAKER_ADMIT_TRIAL = 1, /* half-open: this dispatch is the one trial */
    REF_BREAKER_REFUSE = 2,      /* open, or half-open with the trial in flight: do not dispatch */
};

typedef struct {
    uint32_t failure_threshold; /* consecutive failures/timeouts that open it; >= 1 (default 3) */
    int64_t cool_down_ns;       /* OPEN -> HALF_OPEN after this long; >= 0 (default 30 s) */
} ref_breaker_config;

/* The defaults above. */
ref_breaker_config ref_breaker_config_default(void);

/* CAP_OK, or CAP_EINVAL for a threshold of 0 or a negative cool-down. */
int ref_breaker_config_check(const ref_breaker_config *cfg);

/* One state change. `changed` is 0 (and every other field zero) when the
 * call changed nothing. */
typedef struct {
    int changed;
    ref_breaker_state from, to;
    ref_breaker_reason reason;
    /* The worker id. Breaker-set calls point it at the set's own copy of the
     * id, valid until that worker is removed or the set is freed; standalone
     * breakers leave it NULL (the caller may set it before filling an alert). */
    const char *worker;
    int64_t at;                    /* the `now` of the call that made the change */
    uint32_t failures;             /* consecutive failures/timeouts counted when it opened */
    ref_breaker_outcome outcome;   /* the outcome that caused FAILURES/TRIAL_* changes */
    int64_t half_open_at;          /* to == OPEN: when the cool-down ends; otherwise 0 */
} ref_breaker_event;

/* One breaker. A plain value the caller owns (embed it, no allocation);
 * read the fields, change them only through the functions below. */
typedef struct {
    ref_breaker_config cfg;
    ref_breaker_state state;   /* as of the last call; see ref_breaker_state_at */
    uint32_t failures;         /* CLOSED: consecutive failures/timeouts so far */
    int64_t opened_at;         /* OPEN: when it (re-)opened */
    int trial_in_flight;       /* HALF_OPEN: the trial has been handed out */
    uint64_t epoch;            /* the current ticket value */
    uint64_t epochs_issued;    /* standalone breakers: the last epoch handed out */
} ref_breaker;

/* A closed breaker. cfg NULL: the defaults. CAP_OK or CAP_EINVAL. */
int ref_breaker_init(ref_breaker *b, const ref_breaker_config *cfg);

/* The state as of now, counting an elapsed cool-down as HALF_OPEN, without
 * changing anything. */
ref_breaker_state ref_breaker_state_at(const ref_breaker *b, int64_t now);

/* 1 when a dispatch would be admitted at now (CLOSED; OPEN with the
 * cool-down elapsed; HALF_OPEN with no trial in flight), else 0. Changes
 * nothing: use it to filter candidates, then ref_breaker_acquire the one
 * chosen. A NULL breaker gives 0. */
int ref_breaker_can_dispatch(const ref_breaker *b, int64_t now);

/* Asks to dispatch at now. Applies an elapsed cool-down first (OPEN ->
 * HALF_OPEN, reported in *ev). Returns REF_BREAKER_ADMIT or
 * REF_BREAKER_ADMIT_TRIAL with *ticket set, REF_BREAKER_REFUSE (*ticket 0),
 * or CAP_EINVAL. ev may be NULL. */
int ref_breaker_acquire(ref_breaker *b, int64_t now, uint64_t *ticket, ref_breaker_event *ev);

/* Reports the outcome of the dispatch that received `ticket`. Applies an
 * elapsed cool-down first. Returns 1 when the ticket was current and the
 * outcome was applied, 0 when it was stale and ignored, or CAP_EINVAL.
 *   CLOSED:    SUCCESS resets the count; FAILURE/TIMEOUT add one, and the
 *              threshold opens the breaker (cool-down from now).
 *   HALF_OPEN: the trial: SUCCESS closes, FAILURE/TIMEOUT re-open (a new
 *              cool-down from now), ABANDONED frees the trial slot.
 * ev may be NULL. */
int ref_breaker_record(ref_breaker *b, int64_t now, uint64_t ticket, ref_breaker_outcome outcome,
                       ref_breaker_event *ev);

/* Applies an elapsed cool-down (OPEN -> HALF_OPEN) and nothing else: call it
 * when the timer set from ref_breaker_deadline fires, so that the change is
 * reported at the exact time. Returns 1 when it changed the state, 0 when
 * not, or CAP_EINVAL. ev may be NULL. */
int ref_breaker_advance(ref_breaker *b, int64_t now, ref_breaker_event *ev);

/* OPEN: *at = the end of the cool-down and 1. Otherwise 0 (*at untouched). */
int ref_breaker_deadline(const ref_breaker *b, int64_t *at);

/* Operator command: back to CLOSED with a zero count. From OPEN or
 * HALF_OPEN that is a state change (every outstanding ticket becomes stale)
 * and 1 is returned; on a CLOSED breaker only the count is cleared (tickets
 * stay valid) and 0 is returned. CAP_EINVAL for a NULL breaker. */
int ref_breaker_reset(ref_breaker *b, int64_t now, ref_breaker_event *ev);

/* "closed", "open", "half_open"; "unknown" for anything else. */
const char *ref_breaker_state_name(ref_breaker_state s);
/* "failures", "cool_down_elapsed", "trial_succeeded", "trial_failed",
 * "reset", "none"; "unknown" for anything else. */
const char *ref_breaker_reason_name(ref_breaker_reason r);
/* "success", "failure", "timeout", "abandoned"; "unknown" otherwise. */
const char *ref_breaker_outcome_name(ref_breaker_outcome o);

/* --- a set of breakers keyed by worker id --------------------------------- */

/* Breakers in one array sorted by worker id (bytewise), so lookups are a
 * binary search and every walk over the set is in ascending id order: no
 * hash or pointer order reaches a result. Tickets are unique across the
 * whole set, so a worker removed and added again never accepts a ticket of
 * its earlier life. */
typedef struct ref_breaker_set ref_breaker_set;

/* A set holding at most max_workers breakers (0: REF_BREAKER_DEFAULT_MAX_WORKERS),
 * all with cfg (NULL: the defaults). *out is freed with ref_breaker_set_free.
 * CAP_OK, CAP_EINVAL or CAP_ENOMEM. */
int ref_breaker_set_new(const ref_breaker_config *cfg, size_t max_workers, ref_breaker_set **out);
void ref_breaker_set_free(ref_breaker_set *s);

size_t ref_breaker_set_count(const ref_breaker_set *s);
size_t ref_breaker_set_max(const ref_breaker_set *s);

/* The breaker of a worker, or NULL when the set has none (a worker with no
 * breaker is CLOSED with no failures). The pointer is valid until the next
 * call that adds or removes a worker. */
const ref_breaker *ref_breaker_set_find(const ref_breaker_set *s, const char *worker);

/* The i-th breaker in ascending worker-id order (0 <= i < count): *worker
 * points at the set's copy of the id, *b at the breaker; both valid until
 * the next add or remove. CAP_OK or CAP_EINVAL. */
int ref_breaker_set_at(const ref_breaker_set *s, size_t i, const char **worker,
                       const ref_breaker **b);

/* ref_breaker_can_dispatch for a worker: 1 or 0. A worker with no breaker
 * yet gives 1; a NULL, empty or over-long id gives 0. */
int ref_breaker_set_can_dispatch(const ref_breaker_set *s, const char *worker, int64_t now);

/* ref_breaker_acquire for a worker. A worker with no breaker gets a closed
 * one first; when the set already holds max_workers breakers that fails
 * with CAP_EFULL and nothing changes (remove departed workers with
 * ref_breaker_set_remove). CAP_EINVAL for a NULL, empty or over-long id
 * (more than REF_BREAKER_WORKER_ID_MAX bytes); CAP_ENOMEM. */
int ref_breaker_set_acquire(ref_breaker_set *s, const char *worker, int64_t now, uint64_t *ticket,
                            ref_breaker_event *ev);

/* ref_breaker_record for a worker. A worker with no breaker: the ticket is
 * stale by definition, 0 is returned and nothing is created. */
int ref_breaker_set_record(ref_breaker_set *s, const char *worker, int64_t now, uint64_t ticket,
                           ref_breaker_outcome outcome, ref_breaker_event *ev);

/* Where a worker's breaker was last found in the set, kept by a caller
 * that acts on the same worker again and again, so that a later call
 * skips the lookup by id. Start it zeroed and pass it only with the worker
 * id it was first used with. Every breaker the set creates has its own
 * serial number (never reused), so a memo that no longer holds (the entry
 * moved, or was removed and made again) is noticed and refreshed by a
 * lookup by id: any memo gives the same results as none. */
typedef struct {
    size_t at;
    uint64_t serial; /* 0: nothing remembered */
} ref_breaker_memo;

/* ref_breaker_set_can_dispatch, ref_breaker_set_acquire and
 * ref_breaker_set_record through a memo (m may be NULL): same results. */
int ref_breaker_set_can_dispatch_memo(const ref_breaker_set *s, const char *worker,
                                      ref_breaker_memo *m, int64_t now);
int ref_breaker_set_acquire_memo(ref_breaker_set *s, const char *worker, ref_breaker_memo *m,
                                 int64_t now, uint64_t *ticket, ref_breaker_event *ev);
int ref_breaker_set_record_memo(ref_breaker_set *s, const char *worker, ref_breaker_memo *m,
                                int64_t now, uint64_t ticket, ref_breaker_outcome outcome,
                                ref_breaker_event *ev);

/* ref_breaker_reset for a worker (0 when it has no breaker). */
int ref_breaker_set_reset(ref_breaker_set *s, const char *worker, int64_t now,
                          ref_breaker_event *ev);

/* Drops a worker's breaker (its outstanding tickets die with it). Returns 1
 * when there was one, 0 when not, or CAP_EINVAL. */
int ref_breaker_set_remove(ref_breaker_set *s, const char *worker);

/* Applies every elapsed cool-down, in ascending worker-id order, writing
 * one event per change into evs (at most cap of them). Returns the number
 * written; when it equals cap, call again for the rest. CAP_EINVAL for
 * bad arguments (evs may be NULL only with cap 0, which does nothing). */
int ref_breaker_set_advance(ref_breaker_set *s, int64_t now, ref_breaker_event *evs, size_t cap);

/* The earliest cool-down end among open breakers: *at and 1, or 0 when none
 * is open. Set the caller's timer to it and call ref_breaker_set_advance. */
int ref_breaker_set_deadline(const ref_breaker_set *s, int64_t *at);

/* --- SystemAlert for sys.alert -------------------------------------------- */

#define REF_BREAKER_ALERT_DETAILS 5
#define REF_BREAKER_SOURCE_MAX 63

/* Caller-owned storage for one SystemAlert. After ref_breaker_alert_fill,
 * `alert` and everything it points to live inside this struct (no heap, no
 * pointer into the event or the set; only the deprecated string fields keep
 * protobuf-c's static empty string): it is valid while the struct lives and
 * is not refilled. Do not pass it to a protobuf-c free function, and do not
 * copy the struct by value (the copy's pointers would still point into the
 * original). To publish it, point a BusPacket's `alert` at &storage.alert. */
typedef struct {
    Cordum__Agent__V1__SystemAlert alert;
    Cordum__Agent__V1__SystemAlert__DetailsEntry entry[REF_BREAKER_ALERT_DETAILS];
    Cordum__Agent__V1__SystemAlert__DetailsEntry *entries[REF_BREAKER_ALERT_DETAILS];
    char key[REF_BREAKER_ALERT_DETAILS][24];
    char value[REF_BREAKER_ALERT_DETAILS][REF_BREAKER_WORKER_ID_MAX + 1];
    char source[REF_BREAKER_SOURCE_MAX + 1];
    char message[REF_BREAKER_WORKER_ID_MAX + 192];
    char empty[1];
} ref_breaker_alert;

/* Fills a SystemAlert for a state change:
 *   severity          WARNING when it opens (from CLOSED or HALF_OPEN),
 *                     INFO when it goes half-open or closes;
 *   error_code_enum   ERROR_CODE_JOB_WORKER_UNAVAILABLE (206) when it opens,
 *                     UNSPECIFIED otherwise;
 *   source_component  `source_component` (NULL: "scheduler");
 *   message           one line: worker, from -> to, and why;
 *   details           consecutive_failures, from, reason, to, worker
 *                     (sorted by key; state and reason names as above; a
 *                     NULL ev->worker is written as "");
 *   trace_id and the deprecated string fields empty.
 * CAP_OK, or CAP_EINVAL when ev reports no change, a name is over its bound
 * (worker REF_BREAKER_WORKER_ID_MAX, source REF_BREAKER_SOURCE_MAX bytes)
 * or a pointer is NULL. */
int ref_breaker_alert_fill(ref_breaker_alert *a, const ref_breaker_event *ev,
                           const char *source_component);

#endif
