/* The process-wide bug switch: see ref_bugs.h. */
#include "ref_bugs.h"

#include <string.h>

#include "cap_error.h"

static ref_bug current_bug = REF_BUG_NONE;

static const struct {
    const char *name;
    const char *describe;
} BUGS[REF_BUG_COUNT] = {
    [REF_BUG_NONE] = {"none", "no bug: the reference as specified"},
    [REF_BUG_ACCEPT_BACKWARD] = {"accept-backward", "the job state table accepts a backward transition"},
    [REF_BUG_DISPATCH_ON_THROTTLE] = {"dispatch-on-throttle", "a THROTTLE decision dispatches like an allow"},
    [REF_BUG_HANDLER_TWICE] = {"handler-twice", "a redelivered dispatch runs the handler a second time"},
    [REF_BUG_ACCEPT_STALE_ATTEMPT] = {"accept-stale-attempt",
                                      "fencing forgotten: a stale dispatch identity is applied"},
    [REF_BUG_ACCEPT_MALFORMED] = {"accept-malformed", "a packet the strict decoder rejects is processed"},
    [REF_BUG_LOWEST_VERSION] = {"lowest-version", "version negotiation picks the lowest common version"},
    [REF_BUG_RETRY_FATAL] = {"retry-fatal", "FAILED_FATAL is retried like FAILED_RETRYABLE"},
    [REF_BUG_LOSE_JOURNAL_TAIL] = {"lose-journal-tail", "the journal's last record is lost on restart"},
    [REF_BUG_ROLLBACK_OLDEST_FIRST] = {"rollback-oldest-first", "compensations run oldest first"},
    [REF_BUG_ACCEPT_CONFLICT] = {"accept-conflict",
                                 "a signed packet reusing an admitted message_id with another body "
                                 "is admitted"},
    [REF_BUG_FORGET_REPLAY_STORE] = {"forget-replay-store",
                                     "a restart does not restore the replay guard's entries"},
    [REF_BUG_CHECKPOINT_FROM_HEARTBEAT] = {"checkpoint-from-heartbeat",
                                           "a heartbeat's last memo is taken as the checkpoint of "
                                           "the one job its worker holds"},
};

void ref_bug_set(ref_bug b)
{
    current_bug = (b > REF_BUG_NONE && b < REF_BUG_COUNT) ? b : REF_BUG_NONE;
}

ref_bug ref_bug_current(void) { return current_bug; }

int ref_bug_active(ref_bug b) { return b != REF_BUG_NONE && current_bug == b; }

const char *ref_bug_name(ref_bug b)
{
    return (b >= REF_BUG_NONE && b < REF_BUG_COUNT) ? BUGS[b].name : "?";
}

const char *ref_bug_current_name(void)
{
    return current_bug != REF_BUG_NONE ? ref_bug_name(current_bug) : NULL;
}

const char *ref_bug_describe(ref_bug b)
{
    return (b >= REF_BUG_NONE && b < REF_BUG_COUNT) ? BUGS[b].describe : "?";
}

int ref_bug_from_name(const char *name)
{
    if (name)
        for (int b = REF_BUG_NONE; b < REF_BUG_COUNT; b++)
            if (strcmp(BUGS[b].name, name) == 0)
                return b;
    return CAP_EINVAL;
}
