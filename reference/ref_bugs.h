/* Known bugs that can be switched into the reference, one at a time.
 *
 * The simulator's invariants and the conformance harness are only worth
 * something if they catch real mistakes. Each entry below is a mistake a
 * CAP implementation plausibly makes; a component checks
 * ref_bug_active(REF_BUG_...) at the one place where the mistake would
 * live and, when it is switched on, behaves wrongly on purpose. A test
 * then shows which scenario or suite case catches it (the mutant is
 * "killed").
 *
 * The switch is process-wide: a mutant run is one process (the simulator
 * runs each seed in its own process, the harness starts one adapter
 * process per mutant). It is off (REF_BUG_NONE) unless a tool sets it, so
 * production paths pay one load and compare. Not thread-safe to change
 * while components run; set it once at start-up. */
#ifndef REF_BUGS_H
#define REF_BUGS_H

typedef enum {
    REF_BUG_NONE = 0,
    REF_BUG_ACCEPT_BACKWARD,       /* the state table accepts a backward move */
    REF_BUG_DISPATCH_ON_THROTTLE,  /* THROTTLE is treated as an allow */
    REF_BUG_HANDLER_TWICE,         /* a redelivered dispatch runs the handler again */
    REF_BUG_ACCEPT_STALE_ATTEMPT,  /* fencing forgotten: a stale dispatch identity applies */
    REF_BUG_ACCEPT_MALFORMED,      /* a packet the strict decoder rejects is processed */
    REF_BUG_LOWEST_VERSION,        /* negotiation picks the lowest common version */
    REF_BUG_RETRY_FATAL,           /* FAILED_FATAL is retried like FAILED_RETRYABLE */
    REF_BUG_LOSE_JOURNAL_TAIL,     /* the journal's last record is lost on restart */
    REF_BUG_ROLLBACK_OLDEST_FIRST, /* compensations run oldest first */
    REF_BUG_ACCEPT_CONFLICT,       /* the replay guard's CONFLICT verdict is ignored */
    REF_BUG_FORGET_REPLAY_STORE,   /* a restart does not restore the replay guard's entries */
    REF_BUG_CHECKPOINT_FROM_HEARTBEAT, /* a heartbeat's last_memo becomes its worker's job's checkpoint */
    REF_BUG_COUNT
} ref_bug;

/* Switches bug b on (REF_BUG_NONE switches every bug off). */
void ref_bug_set(ref_bug b);

/* The bug switched on, REF_BUG_NONE when none is. */
ref_bug ref_bug_current(void);

/* 1 when bug b is the one switched on. */
int ref_bug_active(ref_bug b);

/* The bug's name as tools spell it ("accept-backward", ...; "none"), and
 * a one-line description. Static strings; "?" for an out-of-range value. */
const char *ref_bug_name(ref_bug b);
const char *ref_bug_describe(ref_bug b);

/* The name of the bug switched on, or NULL when none is. */
const char *ref_bug_current_name(void);

/* Parses a name as ref_bug_name spells it. Returns the bug, or CAP_EINVAL
 * (negative) for an unknown name. */
int ref_bug_from_name(const char *name);

#endif
