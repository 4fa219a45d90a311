/* The CAP job state machine as one literal table; see ref_jobstate.h and
 * docs/reference-jobstate.md. */
#include "ref_jobstate.h"
#include "ref_bugs.h" /* mutant hooks */

#include <string.h>

#include "cap_error.h"

/* Why a cell says what it says. */
enum {
    K_UNKNOWN,
    K_L21,
    K_ENTRY_ONLY,
    K_L22,
    K_L23,
    K_L24,
    K_L25,
    K_L26,
    K_L27,
    K_L28,
    K_L29,
    K_L30,
    K_L31,
    K_CANCEL,
    K_REPEAT,
    K_BACK,
    K_SECOND,
    K_CANCEL_TERM,
    K_SKIP,
    K_PARK,
    K_RESUME,
    K_APPROVAL_REJECTED,
    K_APPROVAL_TIMEOUT,
    K_GATE,
    K_RETRY,
    K_COUNT
};

static const char *const rule_text[K_COUNT] = {
    [K_UNKNOWN] = "not a job state (JOB_STATUS_UNSPECIFIED as a target, or out of range)",
    [K_L21] = "cap-spec 07 L21 (the gateway accepts the job: [*] -> PENDING)",
    [K_ENTRY_ONLY] = "cap-spec 07 L21 (a job's first state is PENDING)",
    [K_L22] = "cap-spec 07 L22 (scheduler validation: PENDING -> SCHEDULED)",
    [K_L23] = "cap-spec 07 L23 (safety passed, pool selected: SCHEDULED -> DISPATCHED)",
    [K_L24] = "cap-spec 07 L24 (worker starts: DISPATCHED -> RUNNING)",
    [K_L25] = "cap-spec 07 L25 (RUNNING -> SUCCEEDED)",
    [K_L26] = "cap-spec 07 L26 (RUNNING -> FAILED)",
    [K_L27] = "cap-spec 07 L27 (RUNNING -> FAILED_RETRYABLE)",
    [K_L28] = "cap-spec 07 L28 (RUNNING -> FAILED_FATAL)",
    [K_L29] = "cap-spec 07 L29 (reconciler marks a stale run: RUNNING -> TIMEOUT)",
    [K_L30] = "cap-spec 07 L30 (worker never starts: DISPATCHED -> TIMEOUT)",
    [K_L31] = "cap-spec 07 L31 (safety rejects: SCHEDULED -> DENIED)",
    [K_CANCEL] = "cap-spec 07 L32, L50 (cancel from a non-terminal state)",
    [K_REPEAT] = "cap-spec 07 L47 (same-state repeat accepted, no change)",
    [K_BACK] = "cap-spec 07 L48 (backward transition rejected)",
    [K_SECOND] = "cap-spec 07 L49 (conflicting second terminal logged and ignored)",
    [K_CANCEL_TERM] = "cap-spec 07 L50 (cancel only from a non-terminal state)",
    [K_SKIP] = "cap-spec 07 L48, cap-tck 4.1 order (forward jump over unseen states)",
    [K_PARK] = "cap-spec 06 L24 (REQUIRE_HUMAN pauses dispatch; cordum-ref 3 step 7)",
    [K_RESUME] = "cap-spec 06 L24 (out-of-band approval resumes; cordum-ref 9)",
    [K_APPROVAL_REJECTED] = "cordum-ref 9 (approval rejected: DENIED)",
    [K_APPROVAL_TIMEOUT] = "cordum-ref 6, 9 (job deadline expires while parked)",
    [K_GATE] = "cap-spec 06 L24 (no dispatch until the approval)",
    [K_RETRY] = "cap-spec 07 L52 (FAILED_RETRYABLE is not terminal: a retry re-enters SCHEDULED)",
};

typedef struct {
    unsigned char outcome;
    unsigned char rule;
} cell;

#define A(k) {REF_JS_ACCEPT, K_##k}
#define U {REF_JS_REJECT_UNKNOWN, K_UNKNOWN}
#define R {REF_JS_REPEAT, K_REPEAT}
#define B {REF_JS_REJECT_BACKWARD, K_BACK}
#define G {REF_JS_IGNORE, K_SECOND}
#define X {REF_JS_REJECT_CANCEL, K_CANCEL_TERM}
#define S {REF_JS_SKIP, K_SKIP}
#define CN {REF_JS_ACCEPT, K_CANCEL}
#define E {REF_JS_REJECT_ILLEGAL, K_ENTRY_ONLY}
#define Q {REF_JS_REJECT_ILLEGAL, K_GATE}

#define N_IDX (REF_JOBSTATE_COUNT + 1) /* the states plus NONE */

/* Rows: from. Columns: to. Index order: NONE, PENDING, SCHEDULED,
 * DISPATCHED, RUNNING, SUCCEEDED, FAILED, CANCELLED, DENIED, TIMEOUT,
 * FAILED_RETRYABLE, FAILED_FATAL, APPROVAL_REQUIRED. */
static const cell table[N_IDX][N_IDX] = {
    /*            NONE PEND     SCHED      DISP    RUN     SUCC    FAIL    CANC DEN                   TMO                   F_RETRY F_FATAL APPROVAL */
    /* NONE    */ {U, A(L21), E,         E,      E,      E,      E,      E,  E,                    E,                    E,      E,      E},
    /* PENDING */ {U, R,      A(L22),    S,      S,      S,      S,      CN, S,                    S,                    S,      S,      S},
    /* SCHED   */ {U, B,      R,         A(L23), S,      S,      S,      CN, A(L31),               S,                    S,      S,      A(PARK)},
    /* DISP    */ {U, B,      B,         R,      A(L24), S,      S,      CN, S,                    A(L30),               S,      S,      B},
    /* RUNNING */ {U, B,      B,         B,      R,      A(L25), A(L26), CN, S,                    A(L29),               A(L27), A(L28), B},
    /* SUCC    */ {U, B,      B,         B,      B,      R,      G,      X,  G,                    G,                    B,      G,      B},
    /* FAILED  */ {U, B,      B,         B,      B,      G,      R,      X,  G,                    G,                    B,      G,      B},
    /* CANC    */ {U, B,      B,         B,      B,      G,      G,      R,  G,                    G,                    B,      G,      B},
    /* DENIED  */ {U, B,      B,         B,      B,      G,      G,      X,  R,                    G,                    B,      G,      B},
    /* TIMEOUT */ {U, B,      B,         B,      B,      G,      G,      X,  G,                    R,                    B,      G,      B},
    /* F_RETRY */ {U, B,      A(RETRY),  B,      S,      S,      S,      CN, S,                    S,                    R,      S,      B},
    /* F_FATAL */ {U, B,      B,         B,      B,      G,      G,      X,  G,                    G,                    B,      R,      B},
    /* APPROV  */ {U, B,      A(RESUME), Q,      Q,      Q,      Q,      CN, A(APPROVAL_REJECTED), A(APPROVAL_TIMEOUT), Q,      Q,      R},
};

#undef A
#undef U
#undef R
#undef B
#undef G
#undef X
#undef S
#undef CN
#undef E
#undef Q

_Static_assert(REF_JOB_FAILED_FATAL == 11, "JobStatus values moved; the table assumes 0..11");
_Static_assert(REF_JOB_APPROVAL_REQUIRED > REF_JOB_FAILED_FATAL, "local state must be off the wire range");

const int ref_jobstate_list[REF_JOBSTATE_COUNT] = {
    REF_JOB_PENDING,   REF_JOB_SCHEDULED, REF_JOB_DISPATCHED, REF_JOB_RUNNING,
    REF_JOB_SUCCEEDED, REF_JOB_FAILED,    REF_JOB_CANCELLED,  REF_JOB_DENIED,
    REF_JOB_TIMEOUT,   REF_JOB_FAILED_RETRYABLE, REF_JOB_FAILED_FATAL,
    REF_JOB_APPROVAL_REQUIRED,
};

/* Table index of s (NONE included), or -1. */
static int idx_of(int s)
{
    if (s >= REF_JOB_NONE && s <= REF_JOB_FAILED_FATAL)
        return s;
    if (s == REF_JOB_APPROVAL_REQUIRED)
        return REF_JOBSTATE_COUNT;
    return -1;
}

static const cell *lookup(int from, int to)
{
    static const cell unknown = {REF_JS_REJECT_UNKNOWN, K_UNKNOWN};
    int f = idx_of(from), t = idx_of(to);
    if (f < 0 || t < 0)
        return &unknown;
    return &table[f][t];
}

ref_js_outcome ref_jobstate_check(int from, int to)
{
    ref_js_outcome o = (ref_js_outcome)lookup(from, to)->outcome;
    if (o == REF_JS_REJECT_BACKWARD && ref_bug_active(REF_BUG_ACCEPT_BACKWARD)) return REF_JS_ACCEPT; /* mutant accept-backward (ref_bugs.h) */
    return o;
}

const char *ref_jobstate_rule(int from, int to)
{
    return rule_text[lookup(from, to)->rule];
}

int ref_js_outcome_applies(ref_js_outcome o)
{
    return o == REF_JS_ACCEPT || o == REF_JS_SKIP;
}

int ref_js_outcome_is_reject(ref_js_outcome o)
{
    return o == REF_JS_REJECT_BACKWARD || o == REF_JS_REJECT_CANCEL ||
           o == REF_JS_REJECT_ILLEGAL || o == REF_JS_REJECT_UNKNOWN;
}

const char *ref_js_outcome_name(ref_js_outcome o)
{
    switch (o) {
    case REF_JS_ACCEPT: return "accept";
    case REF_JS_SKIP: return "skip";
    case REF_JS_REPEAT: return "repeat";
    case REF_JS_IGNORE: return "ignore";
    case REF_JS_REJECT_BACKWARD: return "reject-backward";
    case REF_JS_REJECT_CANCEL: return "reject-cancel";
    case REF_JS_REJECT_ILLEGAL: return "reject-illegal";
    case REF_JS_REJECT_UNKNOWN: return "reject-unknown";
    }
    return "?";
}

const char *ref_js_outcome_tck(ref_js_outcome o)
{
    switch (o) {
    case REF_JS_ACCEPT:
    case REF_JS_SKIP:
    case REF_JS_REPEAT: return "accept";
    case REF_JS_IGNORE: return "ignore";
    default: return "reject";
    }
}

int ref_jobstate_is_valid(int s)
{
    return idx_of(s) > 0;
}

int ref_jobstate_is_terminal(int s)
{
    switch (s) {
    case REF_JOB_SUCCEEDED:
    case REF_JOB_FAILED:
    case REF_JOB_FAILED_FATAL:
    case REF_JOB_CANCELLED:
    case REF_JOB_DENIED:
    case REF_JOB_TIMEOUT: return 1;
    default: return 0;
    }
}

int ref_jobstate_can_cancel(int s)
{
    return ref_jobstate_is_valid(s) && !ref_jobstate_is_terminal(s);
}

int ref_jobstate_wire(int s)
{
    if (s == REF_JOB_APPROVAL_REQUIRED)
        return REF_JOB_SCHEDULED;
    return ref_jobstate_is_valid(s) ? s : REF_JOB_NONE;
}

static const char *const names[N_IDX] = {
    "UNSPECIFIED", "PENDING",  "SCHEDULED", "DISPATCHED", "RUNNING",
    "SUCCEEDED",   "FAILED",   "CANCELLED", "DENIED",     "TIMEOUT",
    "FAILED_RETRYABLE", "FAILED_FATAL", "APPROVAL_REQUIRED",
};

const char *ref_jobstate_name(int s)
{
    int i = idx_of(s);
    return i < 0 ? "UNKNOWN" : names[i];
}

int ref_jobstate_from_name(const char *name)
{
    static const char prefix[] = "JOB_STATUS_";
    if (!name)
        return CAP_EINVAL;
    if (name[0] == 'J' && strncmp(name, prefix, sizeof prefix - 1) == 0) {
        name += sizeof prefix - 1;
        /* The local state has no JOB_STATUS_ spelling. */
        if (strcmp(name, names[REF_JOBSTATE_COUNT]) == 0)
            return CAP_EINVAL;
    }
    /* The first letter rules out most names without a call (the simulator's
     * checker parses a state from every journal record). */
    for (int i = 0; i < N_IDX; i++)
        if (names[i][0] == name[0] && strcmp(name, names[i]) == 0)
            return i == REF_JOBSTATE_COUNT ? REF_JOB_APPROVAL_REQUIRED : i;
    return CAP_EINVAL;
}
