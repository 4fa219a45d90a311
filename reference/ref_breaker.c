/* Per-worker circuit breaker (see ref_breaker.h).
 *
 * Every state change goes through transition(), which takes a fresh ticket
 * value (epoch) from a counter: the breaker's own for a standalone breaker,
 * the set's for a breaker in a set. A trial grant and an abandoned trial
 * take a fresh epoch as well, so at any moment exactly the tickets of the
 * current phase are accepted. */
#include "ref_breaker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_time.h"
#include "ref_sorted.h"
#include "ref_strmap.h"

/* --- time ----------------------------------------------------------------- */

static int64_t cool_down_end(const ref_breaker *b)
{
    return cap_sat_add(b->opened_at, b->cfg.cool_down_ns);
}

static int cool_down_elapsed(const ref_breaker *b, int64_t now)
{
    return b->state == REF_BREAKER_OPEN && now >= cool_down_end(b);
}

/* --- config --------------------------------------------------------------- */

ref_breaker_config ref_breaker_config_default(void)
{
    ref_breaker_config c = {
        .failure_threshold = REF_BREAKER_DEFAULT_FAILURE_THRESHOLD,
        .cool_down_ns = REF_BREAKER_DEFAULT_COOL_DOWN_NS,
    };
    return c;
}

int ref_breaker_config_check(const ref_breaker_config *cfg)
{
    if (!cfg || cfg->failure_threshold == 0 || cfg->cool_down_ns < 0)
        return CAP_EINVAL;
    return CAP_OK;
}

/* --- names ---------------------------------------------------------------- */

const char *ref_breaker_state_name(ref_breaker_state s)
{
    switch (s) {
    case REF_BREAKER_CLOSED: return "closed";
    case REF_BREAKER_OPEN: return "open";
    case REF_BREAKER_HALF_OPEN: return "half_open";
    }
    return "unknown";
}

const char *ref_breaker_reason_name(ref_breaker_reason r)
{
    switch (r) {
    case REF_BREAKER_REASON_NONE: return "none";
    case REF_BREAKER_REASON_FAILURES: return "failures";
    case REF_BREAKER_REASON_COOL_DOWN: return "cool_down_elapsed";
    case REF_BREAKER_REASON_TRIAL_SUCCEEDED: return "trial_succeeded";
    case REF_BREAKER_REASON_TRIAL_FAILED: return "trial_failed";
    case REF_BREAKER_REASON_RESET: return "reset";
    }
    return "unknown";
}

const char *ref_breaker_outcome_name(ref_breaker_outcome o)
{
    switch (o) {
    case REF_BREAKER_SUCCESS: return "success";
    case REF_BREAKER_FAILURE: return "failure";
    case REF_BREAKER_TIMEOUT: return "timeout";
    case REF_BREAKER_ABANDONED: return "abandoned";
    }
    return "unknown";
}

static int outcome_valid(ref_breaker_outcome o)
{
    return o == REF_BREAKER_SUCCESS || o == REF_BREAKER_FAILURE || o == REF_BREAKER_TIMEOUT ||
           o == REF_BREAKER_ABANDONED;
}

/* --- the state machine ---------------------------------------------------- */

static void event_clear(ref_breaker_event *ev)
{
    if (ev)
        memset(ev, 0, sizeof *ev);
}

/* Moves b to `to` and reports it in *ev (which may be NULL). */
static void transition(ref_breaker *b, ref_breaker_state to, ref_breaker_reason reason,
                       ref_breaker_outcome outcome, int64_t now, uint64_t *epochs,
                       ref_breaker_event *ev)
{
    ref_breaker_state from = b->state;
    b->state = to;
    b->epoch = ++*epochs;
    b->trial_in_flight = 0;
    if (to == REF_BREAKER_OPEN)
        b->opened_at = now;
    if (to == REF_BREAKER_CLOSED)
        b->failures = 0;
    if (!ev)
        return;
    ev->changed = 1;
    ev->from = from;
    ev->to = to;
    ev->reason = reason;
    ev->at = now;
    ev->failures = b->failures;
    ev->outcome = outcome;
    ev->half_open_at = to == REF_BREAKER_OPEN ? cool_down_end(b) : 0;
}

static int core_advance(ref_breaker *b, int64_t now, uint64_t *epochs, ref_breaker_event *ev)
{
    if (!cool_down_elapsed(b, now))
        return 0;
    transition(b, REF_BREAKER_HALF_OPEN, REF_BREAKER_REASON_COOL_DOWN, REF_BREAKER_SUCCESS, now,
               epochs, ev);
    return 1;
}

static int core_acquire(ref_breaker *b, int64_t now, uint64_t *epochs, uint64_t *ticket,
                        ref_breaker_event *ev)
{
    core_advance(b, now, epochs, ev);
    switch (b->state) {
    case REF_BREAKER_CLOSED:
        *ticket = b->epoch;
        return REF_BREAKER_ADMIT;
    case REF_BREAKER_HALF_OPEN:
        if (b->trial_in_flight)
            break;
        b->trial_in_flight = 1;
        b->epoch = ++*epochs;
        *ticket = b->epoch;
        return REF_BREAKER_ADMIT_TRIAL;
    case REF_BREAKER_OPEN:
        break;
    }
    *ticket = 0;
    return REF_BREAKER_REFUSE;
}

static void count_failure(ref_breaker *b)
{
    if (b->failures < UINT32_MAX)
        b->failures++;
}

static int core_record(ref_breaker *b, int64_t now, uint64_t ticket, ref_breaker_outcome outcome,
                       uint64_t *epochs, ref_breaker_event *ev)
{
    core_advance(b, now, epochs, ev);
    if (ticket == 0 || ticket != b->epoch)
        return 0;
    int failed = outcome == REF_BREAKER_FAILURE || outcome == REF_BREAKER_TIMEOUT;
    switch (b->state) {
    case REF_BREAKER_CLOSED:
        if (outcome == REF_BREAKER_SUCCESS)
            b->failures = 0;
        if (!failed)
            return 1;
        count_failure(b);
        if (b->failures >= b->cfg.failure_threshold)
            transition(b, REF_BREAKER_OPEN, REF_BREAKER_REASON_FAILURES, outcome, now, epochs, ev);
        return 1;
    case REF_BREAKER_HALF_OPEN:
        if (!b->trial_in_flight)
            return 0;
        if (outcome == REF_BREAKER_SUCCESS) {
            transition(b, REF_BREAKER_CLOSED, REF_BREAKER_REASON_TRIAL_SUCCEEDED, outcome, now,
                       epochs, ev);
        } else if (failed) {
            count_failure(b);
            transition(b, REF_BREAKER_OPEN, REF_BREAKER_REASON_TRIAL_FAILED, outcome, now, epochs,
                       ev);
        } else {
            /* Abandoned: the slot is free again and this ticket is spent. */
            b->trial_in_flight = 0;
            b->epoch = ++*epochs;
        }
        return 1;
    case REF_BREAKER_OPEN:
        break;
    }
    return 0;
}

static int core_reset(ref_breaker *b, int64_t now, uint64_t *epochs, ref_breaker_event *ev)
{
    if (b->state == REF_BREAKER_CLOSED) {
        b->failures = 0;
        return 0;
    }
    transition(b, REF_BREAKER_CLOSED, REF_BREAKER_REASON_RESET, REF_BREAKER_SUCCESS, now, epochs,
               ev);
    return 1;
}

static void breaker_init(ref_breaker *b, const ref_breaker_config *cfg, uint64_t epoch)
{
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    b->state = REF_BREAKER_CLOSED;
    b->epoch = epoch;
}

/* --- standalone breaker --------------------------------------------------- */

int ref_breaker_init(ref_breaker *b, const ref_breaker_config *cfg)
{
    ref_breaker_config def = ref_breaker_config_default();
    if (!cfg)
        cfg = &def;
    if (!b || ref_breaker_config_check(cfg) != CAP_OK)
        return CAP_EINVAL;
    breaker_init(b, cfg, 1);
    b->epochs_issued = 1;
    return CAP_OK;
}

ref_breaker_state ref_breaker_state_at(const ref_breaker *b, int64_t now)
{
    return cool_down_elapsed(b, now) ? REF_BREAKER_HALF_OPEN : b->state;
}

int ref_breaker_can_dispatch(const ref_breaker *b, int64_t now)
{
    if (!b)
        return 0;
    switch (ref_breaker_state_at(b, now)) {
    case REF_BREAKER_CLOSED: return 1;
    case REF_BREAKER_HALF_OPEN:
        /* An open breaker never has a trial in flight, so one whose
         * cool-down has just elapsed admits the trial. */
        return !b->trial_in_flight;
    case REF_BREAKER_OPEN: return 0;
    }
    return 0;
}

int ref_breaker_acquire(ref_breaker *b, int64_t now, uint64_t *ticket, ref_breaker_event *ev)
{
    event_clear(ev);
    if (!b || !ticket)
        return CAP_EINVAL;
    return core_acquire(b, now, &b->epochs_issued, ticket, ev);
}

int ref_breaker_record(ref_breaker *b, int64_t now, uint64_t ticket, ref_breaker_outcome outcome,
                       ref_breaker_event *ev)
{
    event_clear(ev);
    if (!b || !outcome_valid(outcome))
        return CAP_EINVAL;
    return core_record(b, now, ticket, outcome, &b->epochs_issued, ev);
}

int ref_breaker_advance(ref_breaker *b, int64_t now, ref_breaker_event *ev)
{
    event_clear(ev);
    if (!b)
        return CAP_EINVAL;
    return core_advance(b, now, &b->epochs_issued, ev);
}

int ref_breaker_deadline(const ref_breaker *b, int64_t *at)
{
    if (!b || !at || b->state != REF_BREAKER_OPEN)
        return 0;
    *at = cool_down_end(b);
    return 1;
}

int ref_breaker_reset(ref_breaker *b, int64_t now, ref_breaker_event *ev)
{
    event_clear(ev);
    if (!b)
        return CAP_EINVAL;
    return core_reset(b, now, &b->epochs_issued, ev);
}

/* --- breaker set ---------------------------------------------------------- */

typedef struct {
    char *worker; /* malloc'd copy, stable while the entry lives */
    uint64_t serial; /* this entry's number (ref_breaker_memo) */
    ref_breaker b;
} set_entry;

struct ref_breaker_set {
    ref_breaker_config cfg;
    set_entry *v; /* sorted by worker id, bytewise */
    size_t n, cap, max;
    size_t n_open;   /* entries in state OPEN: the only ones with a deadline */
    size_t n_unclosed; /* entries not CLOSED: with none, every worker may
                        * be dispatched to (no lookup needed to say so) */
    /* worker -> entry index + 1, for lookups without a binary search; kept
     * while by_worker_ok (out of memory drops it: the binary search
     * answers alone then). */
    ref_strmap by_worker;
    int by_worker_ok;
    uint64_t epochs; /* the last ticket value handed out in this set */
    uint64_t serials; /* the last entry number handed out */
};

/* Keeps n_open and n_unclosed right across a call that may move e's
 * breaker out of state `was`. */
static void open_count(ref_breaker_set *s, ref_breaker_state was, const set_entry *e)
{
    ref_breaker_state is = e->b.state;
    s->n_open += (is == REF_BREAKER_OPEN) - (was == REF_BREAKER_OPEN);
    s->n_unclosed += (is != REF_BREAKER_CLOSED) - (was != REF_BREAKER_CLOSED);
}

/* Length of a valid worker id, or 0 when it is NULL, empty or too long. */
static size_t worker_len(const char *w)
{
    if (!w)
        return 0;
    size_t n = 0;
    while (n <= REF_BREAKER_WORKER_ID_MAX && w[n])
        n++;
    return n > REF_BREAKER_WORKER_ID_MAX ? 0 : n;
}

/* Binary search: 1 and *pos = its index when found, else 0 and *pos = the
 * insertion point. */
static const char *entry_key(const void *base, size_t i)
{
    return ((const set_entry *)base)[i].worker;
}

static int set_search(const ref_breaker_set *s, const char *worker, size_t *pos)
{
    if (s->by_worker_ok) {
        void *v = ref_strmap_get(&s->by_worker, worker);
        if (v) {
            *pos = (size_t)((uintptr_t)v - 1);
            return 1;
        }
    }
    return ref_sorted_find(s->v, s->n, entry_key, worker, 0, pos);
}

/* The entries from index `from` on moved (or are new): their index
 * entries follow. */
static void index_from(ref_breaker_set *s, size_t from)
{
    for (size_t i = from; i < s->n && s->by_worker_ok; i++)
        if (ref_strmap_put(&s->by_worker, s->v[i].worker, (void *)(uintptr_t)(i + 1))) {
            s->by_worker_ok = 0;
            ref_strmap_free(&s->by_worker);
        }
}

static set_entry *set_lookup(const ref_breaker_set *s, const char *worker)
{
    size_t pos = 0;
    if (!s || !worker_len(worker) || !set_search(s, worker, &pos))
        return NULL;
    return &s->v[pos];
}

/* The entry a memo names, when it still holds (the caller passes the id
 * the memo was made with, which was valid then), else NULL. */
static set_entry *memo_entry(const ref_breaker_set *s, const ref_breaker_memo *m)
{
    if (s && m && m->serial && m->at < s->n && s->v[m->at].serial == m->serial)
        return &s->v[m->at];
    return NULL;
}

/* Remembers entry e in m (m may be NULL). */
static void memo_keep(const ref_breaker_set *s, ref_breaker_memo *m, const set_entry *e)
{
    if (m && e) {
        m->at = (size_t)(e - s->v);
        m->serial = e->serial;
    }
}


int ref_breaker_set_new(const ref_breaker_config *cfg, size_t max_workers, ref_breaker_set **out)
{
    ref_breaker_config def = ref_breaker_config_default();
    if (!cfg)
        cfg = &def;
    if (!out)
        return CAP_EINVAL;
    *out = NULL;
    if (ref_breaker_config_check(cfg) != CAP_OK || max_workers > SIZE_MAX / sizeof(set_entry))
        return CAP_EINVAL;
    ref_breaker_set *s = calloc(1, sizeof *s);
    if (!s)
        return CAP_ENOMEM;
    s->cfg = *cfg;
    s->max = max_workers ? max_workers : REF_BREAKER_DEFAULT_MAX_WORKERS;
    ref_strmap_init(&s->by_worker);
    s->by_worker_ok = 1;
    *out = s;
    return CAP_OK;
}

void ref_breaker_set_free(ref_breaker_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].worker);
    free(s->v);
    ref_strmap_free(&s->by_worker);
    free(s);
}

size_t ref_breaker_set_count(const ref_breaker_set *s)
{
    return s ? s->n : 0;
}

size_t ref_breaker_set_max(const ref_breaker_set *s)
{
    return s ? s->max : 0;
}

const ref_breaker *ref_breaker_set_find(const ref_breaker_set *s, const char *worker)
{
    set_entry *e = set_lookup(s, worker);
    return e ? &e->b : NULL;
}

int ref_breaker_set_at(const ref_breaker_set *s, size_t i, const char **worker,
                       const ref_breaker **b)
{
    if (!s || i >= s->n || !worker || !b)
        return CAP_EINVAL;
    *worker = s->v[i].worker;
    *b = &s->v[i].b;
    return CAP_OK;
}

int ref_breaker_set_can_dispatch(const ref_breaker_set *s, const char *worker, int64_t now)
{
    return ref_breaker_set_can_dispatch_memo(s, worker, NULL, now);
}

int ref_breaker_set_can_dispatch_memo(const ref_breaker_set *s, const char *worker,
                                      ref_breaker_memo *m, int64_t now)
{
    if (!s)
        return 0;
    set_entry *e = memo_entry(s, m); /* found: the id is a valid one */
    if (!e && !worker_len(worker))
        return 0;
    if (!s->n_unclosed) /* every breaker closed (or none yet): all may */
        return 1;
    if (!e) {
        e = set_lookup(s, worker);
        memo_keep(s, m, e);
    }
    return e ? ref_breaker_can_dispatch(&e->b, now) : 1;
}

/* The entry of a worker, created closed when missing. */
static int set_get_or_add(ref_breaker_set *s, const char *worker, size_t len, set_entry **out)
{
    size_t pos = 0;
    if (set_search(s, worker, &pos)) {
        *out = &s->v[pos];
        return CAP_OK;
    }
    if (s->n >= s->max)
        return CAP_EFULL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        if (cap > s->max)
            cap = s->max;
        set_entry *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return CAP_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return CAP_ENOMEM;
    memcpy(copy, worker, len + 1);
    memmove(&s->v[pos + 1], &s->v[pos], (s->n - pos) * sizeof *s->v);
    s->v[pos].worker = copy;
    s->v[pos].serial = ++s->serials;
    breaker_init(&s->v[pos].b, &s->cfg, ++s->epochs);
    s->n++;
    index_from(s, pos);
    *out = &s->v[pos];
    return CAP_OK;
}

static void name_event(ref_breaker_event *ev, const set_entry *e)
{
    if (ev && ev->changed)
        ev->worker = e->worker;
}

int ref_breaker_set_acquire(ref_breaker_set *s, const char *worker, int64_t now, uint64_t *ticket,
                            ref_breaker_event *ev)
{
    return ref_breaker_set_acquire_memo(s, worker, NULL, now, ticket, ev);
}

int ref_breaker_set_acquire_memo(ref_breaker_set *s, const char *worker, ref_breaker_memo *m,
                                 int64_t now, uint64_t *ticket, ref_breaker_event *ev)
{
    event_clear(ev);
    if (ticket)
        *ticket = 0;
    set_entry *e = memo_entry(s, m); /* found: the id is a valid one */
    if (!s || !ticket || (!e && !worker_len(worker)))
        return CAP_EINVAL;
    if (!e) {
        int rc = set_get_or_add(s, worker, worker_len(worker), &e);
        if (rc != CAP_OK)
            return rc;
        memo_keep(s, m, e);
    }
    ref_breaker_state was = e->b.state;
    int rc = core_acquire(&e->b, now, &s->epochs, ticket, ev);
    open_count(s, was, e);
    name_event(ev, e);
    return rc;
}

int ref_breaker_set_record(ref_breaker_set *s, const char *worker, int64_t now, uint64_t ticket,
                           ref_breaker_outcome outcome, ref_breaker_event *ev)
{
    return ref_breaker_set_record_memo(s, worker, NULL, now, ticket, outcome, ev);
}

int ref_breaker_set_record_memo(ref_breaker_set *s, const char *worker, ref_breaker_memo *m,
                                int64_t now, uint64_t ticket, ref_breaker_outcome outcome,
                                ref_breaker_event *ev)
{
    event_clear(ev);
    set_entry *e = memo_entry(s, m); /* found: the id is a valid one */
    if (!s || (!e && !worker_len(worker)) || !outcome_valid(outcome))
        return CAP_EINVAL;
    if (!e) {
        e = set_lookup(s, worker);
        memo_keep(s, m, e);
    }
    if (!e)
        return 0;
    ref_breaker_state was = e->b.state;
    int rc = core_record(&e->b, now, ticket, outcome, &s->epochs, ev);
    open_count(s, was, e);
    name_event(ev, e);
    return rc;
}

int ref_breaker_set_reset(ref_breaker_set *s, const char *worker, int64_t now,
                          ref_breaker_event *ev)
{
    event_clear(ev);
    if (!s || !worker_len(worker))
        return CAP_EINVAL;
    set_entry *e = set_lookup(s, worker);
    if (!e)
        return 0;
    ref_breaker_state was = e->b.state;
    int rc = core_reset(&e->b, now, &s->epochs, ev);
    open_count(s, was, e);
    name_event(ev, e);
    return rc;
}

int ref_breaker_set_remove(ref_breaker_set *s, const char *worker)
{
    size_t pos = 0;
    if (!s || !worker_len(worker))
        return CAP_EINVAL;
    if (!set_search(s, worker, &pos))
        return 0;
    if (s->v[pos].b.state == REF_BREAKER_OPEN)
        s->n_open--;
    if (s->v[pos].b.state != REF_BREAKER_CLOSED)
        s->n_unclosed--;
    if (s->by_worker_ok)
        ref_strmap_del(&s->by_worker, s->v[pos].worker);
    free(s->v[pos].worker);
    memmove(&s->v[pos], &s->v[pos + 1], (s->n - pos - 1) * sizeof *s->v);
    s->n--;
    index_from(s, pos);
    return 1;
}

int ref_breaker_set_advance(ref_breaker_set *s, int64_t now, ref_breaker_event *evs, size_t cap)
{
    if (!s || (!evs && cap) || cap > INT32_MAX)
        return CAP_EINVAL;
    if (!s->n_open) /* only an open breaker can advance */
        return 0;
    size_t k = 0;
    for (size_t i = 0; i < s->n && k < cap; i++) {
        set_entry *e = &s->v[i];
        if (!cool_down_elapsed(&e->b, now))
            continue;
        event_clear(&evs[k]);
        core_advance(&e->b, now, &s->epochs, &evs[k]); /* OPEN -> HALF_OPEN */
        open_count(s, REF_BREAKER_OPEN, e);
        name_event(&evs[k], e);
        k++;
    }
    return (int)k;
}

int ref_breaker_set_deadline(const ref_breaker_set *s, int64_t *at)
{
    if (!s || !at || !s->n_open) /* no breaker is open: none has a deadline */
        return 0;
    int found = 0;
    int64_t best = 0;
    for (size_t i = 0; i < s->n; i++) {
        int64_t t = 0;
        if (ref_breaker_deadline(&s->v[i].b, &t) && (!found || t < best)) {
            best = t;
            found = 1;
        }
    }
    if (found)
        *at = best;
    return found;
}

/* --- SystemAlert ---------------------------------------------------------- */

/* snprintf that reports truncation as CAP_EINVAL. */
static int put(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int put(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return (w < 0 || (size_t)w >= n) ? CAP_EINVAL : CAP_OK;
}

/* Why, in words, for the message line. */
static int alert_message(ref_breaker_alert *a, const ref_breaker_event *ev, const char *worker)
{
    const char *from = ref_breaker_state_name(ev->from), *to = ref_breaker_state_name(ev->to);
    const size_t n = sizeof a->message;
    switch (ev->reason) {
    case REF_BREAKER_REASON_FAILURES:
        return put(a->message, n,
                   "worker %s: circuit breaker %s -> %s after %u consecutive failures "
                   "(last: %s); half-open at %lld ns",
                   worker, from, to, (unsigned)ev->failures, ref_breaker_outcome_name(ev->outcome),
                   (long long)ev->half_open_at);
    case REF_BREAKER_REASON_COOL_DOWN:
        return put(a->message, n,
                   "worker %s: circuit breaker %s -> %s: cool-down elapsed, one trial dispatch "
                   "allowed",
                   worker, from, to);
    case REF_BREAKER_REASON_TRIAL_SUCCEEDED:
        return put(a->message, n, "worker %s: circuit breaker %s -> %s: trial dispatch succeeded",
                   worker, from, to);
    case REF_BREAKER_REASON_TRIAL_FAILED:
        return put(a->message, n,
                   "worker %s: circuit breaker %s -> %s: trial dispatch ended in %s; half-open "
                   "at %lld ns",
                   worker, from, to, ref_breaker_outcome_name(ev->outcome),
                   (long long)ev->half_open_at);
    default:
        return put(a->message, n, "worker %s: circuit breaker %s -> %s: %s", worker, from, to,
                   ref_breaker_reason_name(ev->reason));
    }
}

int ref_breaker_alert_fill(ref_breaker_alert *a, const ref_breaker_event *ev,
                           const char *source_component)
{
    if (!a || !ev || !ev->changed)
        return CAP_EINVAL;
    const char *worker = ev->worker ? ev->worker : "";
    const char *source = source_component ? source_component : "scheduler";
    if (strlen(worker) > REF_BREAKER_WORKER_ID_MAX || strlen(source) > REF_BREAKER_SOURCE_MAX)
        return CAP_EINVAL;

    /* The generated initialiser, not the INIT macro: the macro names the
     * deprecated fields, which clang reports. */
    memset(a, 0, sizeof *a);
    cordum__agent__v1__system_alert__init(&a->alert);

    /* Keys in ascending order: the canonical order of a map. */
    const char *keys[REF_BREAKER_ALERT_DETAILS] = {"consecutive_failures", "from", "reason", "to",
                                                   "worker"};
    int rc = put(a->value[0], sizeof a->value[0], "%u", (unsigned)ev->failures);
    if (rc == CAP_OK)
        rc = put(a->value[1], sizeof a->value[1], "%s", ref_breaker_state_name(ev->from));
    if (rc == CAP_OK)
        rc = put(a->value[2], sizeof a->value[2], "%s", ref_breaker_reason_name(ev->reason));
    if (rc == CAP_OK)
        rc = put(a->value[3], sizeof a->value[3], "%s", ref_breaker_state_name(ev->to));
    if (rc == CAP_OK)
        rc = put(a->value[4], sizeof a->value[4], "%s", worker);
    for (size_t i = 0; rc == CAP_OK && i < REF_BREAKER_ALERT_DETAILS; i++) {
        rc = put(a->key[i], sizeof a->key[i], "%s", keys[i]);
        cordum__agent__v1__system_alert__details_entry__init(&a->entry[i]);
        a->entry[i].key = a->key[i];
        a->entry[i].value = a->value[i];
        a->entries[i] = &a->entry[i];
    }
    if (rc == CAP_OK)
        rc = put(a->source, sizeof a->source, "%s", source);
    if (rc == CAP_OK)
        rc = alert_message(a, ev, worker);
    if (rc != CAP_OK) {
        memset(a, 0, sizeof *a);
        return rc;
    }

    int opened = ev->to == REF_BREAKER_OPEN;
    a->alert.severity = opened ? CORDUM__AGENT__V1__ALERT_SEVERITY__ALERT_SEVERITY_WARNING
                               : CORDUM__AGENT__V1__ALERT_SEVERITY__ALERT_SEVERITY_INFO;
    a->alert.error_code_enum = opened
                                   ? CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_WORKER_UNAVAILABLE
                                   : CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_UNSPECIFIED;
    a->alert.source_component = a->source;
    a->alert.message = a->message;
    a->alert.n_details = REF_BREAKER_ALERT_DETAILS;
    a->alert.details = a->entries;
    a->alert.trace_id = a->empty;
    return CAP_OK;
}
