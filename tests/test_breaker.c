/* Circuit breaker: the state machine, tickets, events, the breaker set and
 * the SystemAlert it fills. */
#include "testutil.h"

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_schema.h"
#include "ref_breaker.h"

#define SEC INT64_C(1000000000)
#define COOL (30 * SEC)
#define T0 (INT64_C(1704164645) * SEC)

static ref_breaker fresh(void)
{
    ref_breaker b;
    assert_int_equal(ref_breaker_init(&b, NULL), CAP_OK);
    return b;
}

/* Admits one dispatch in CLOSED and reports its outcome; returns the
 * record() result and leaves the event in *ev. */
static int dispatch(ref_breaker *b, int64_t now, ref_breaker_outcome o, ref_breaker_event *ev)
{
    uint64_t t = 0;
    assert_int_equal(ref_breaker_acquire(b, now, &t, NULL), REF_BREAKER_ADMIT);
    assert_true(t != 0);
    return ref_breaker_record(b, now, t, o, ev);
}

static void assert_event(const ref_breaker_event *ev, ref_breaker_state from, ref_breaker_state to,
                         ref_breaker_reason reason, int64_t at)
{
    assert_int_equal(ev->changed, 1);
    assert_int_equal(ev->from, from);
    assert_int_equal(ev->to, to);
    assert_int_equal(ev->reason, reason);
    assert_true(ev->at == at);
}

static void assert_no_event(const ref_breaker_event *ev)
{
    assert_int_equal(ev->changed, 0);
    assert_int_equal(ev->from, 0);
    assert_int_equal(ev->to, 0);
    assert_int_equal(ev->reason, REF_BREAKER_REASON_NONE);
    assert_null(ev->worker);
}

/* Opens a fresh breaker at `at` with three failures. */
static ref_breaker opened_at(int64_t at)
{
    ref_breaker b = fresh();
    ref_breaker_event ev;
    for (int i = 0; i < 3; i++)
        assert_int_equal(dispatch(&b, at, REF_BREAKER_FAILURE, &ev), 1);
    assert_event(&ev, REF_BREAKER_CLOSED, REF_BREAKER_OPEN, REF_BREAKER_REASON_FAILURES, at);
    return b;
}

/* --- config --------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    ref_breaker_config c = ref_breaker_config_default();
    assert_int_equal(c.failure_threshold, 3);
    assert_true(c.cool_down_ns == 30 * SEC);
    assert_int_equal(ref_breaker_config_check(&c), CAP_OK);
    assert_int_equal(ref_breaker_config_check(NULL), CAP_EINVAL);

    ref_breaker b;
    c.failure_threshold = 0;
    assert_int_equal(ref_breaker_config_check(&c), CAP_EINVAL);
    assert_int_equal(ref_breaker_init(&b, &c), CAP_EINVAL);
    c = ref_breaker_config_default();
    c.cool_down_ns = -1;
    assert_int_equal(ref_breaker_init(&b, &c), CAP_EINVAL);
    assert_int_equal(ref_breaker_init(NULL, NULL), CAP_EINVAL);

    b = fresh();
    assert_int_equal(b.state, REF_BREAKER_CLOSED);
    assert_int_equal(b.cfg.failure_threshold, 3);
    assert_true(b.cfg.cool_down_ns == COOL);
    assert_int_equal(b.failures, 0);

    assert_string_equal(ref_breaker_state_name(REF_BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(ref_breaker_state_name((ref_breaker_state)9), "unknown");
    assert_string_equal(ref_breaker_reason_name(REF_BREAKER_REASON_COOL_DOWN), "cool_down_elapsed");
    assert_string_equal(ref_breaker_outcome_name(REF_BREAKER_TIMEOUT), "timeout");
}

/* --- closed -> open ------------------------------------------------------- */

static void test_opens_after_threshold(void **state)
{
    (void)state;
    ref_breaker b = fresh();
    ref_breaker_event ev;
    assert_int_equal(dispatch(&b, T0, REF_BREAKER_FAILURE, &ev), 1);
    assert_no_event(&ev);
    assert_int_equal(dispatch(&b, T0 + 1, REF_BREAKER_FAILURE, &ev), 1);
    assert_no_event(&ev);
    assert_int_equal(b.state, REF_BREAKER_CLOSED);
    assert_int_equal(b.failures, 2);
    assert_int_equal(ref_breaker_can_dispatch(&b, T0 + 2), 1);

    assert_int_equal(dispatch(&b, T0 + 2, REF_BREAKER_FAILURE, &ev), 1);
    assert_event(&ev, REF_BREAKER_CLOSED, REF_BREAKER_OPEN, REF_BREAKER_REASON_FAILURES, T0 + 2);
    assert_int_equal(ev.failures, 3);
    assert_int_equal(ev.outcome, REF_BREAKER_FAILURE);
    assert_true(ev.half_open_at == T0 + 2 + COOL);
    assert_null(ev.worker);
    assert_int_equal(b.state, REF_BREAKER_OPEN);
    assert_true(b.opened_at == T0 + 2);
}

static void test_success_resets_and_timeouts_count(void **state)
{
    (void)state;
    ref_breaker b = fresh();
    ref_breaker_event ev;
    /* F F S F F: never three in a row. */
    assert_int_equal(dispatch(&b, T0, REF_BREAKER_FAILURE, &ev), 1);
    assert_int_equal(dispatch(&b, T0, REF_BREAKER_FAILURE, &ev), 1);
    assert_int_equal(dispatch(&b, T0, REF_BREAKER_SUCCESS, &ev), 1);
    assert_int_equal(b.failures, 0);
    assert_int_equal(dispatch(&b, T0, REF_BREAKER_FAILURE, &ev), 1);
    assert_int_equal(dispatch(&b, T0, REF_BREAKER_TIMEOUT, &ev), 1);
    assert_no_event(&ev);
    assert_int_equal(b.state, REF_BREAKER_CLOSED);
    /* An abandoned dispatch counts neither way. */
    assert_int_equal(dispatch(&b, T0, REF_BREAKER_ABANDONED, &ev), 1);
    assert_int_equal(b.failures, 2);
    /* A timeout is the third consecutive failure. */
    assert_int_equal(dispatch(&b, T0 + 5, REF_BREAKER_TIMEOUT, &ev), 1);
    assert_event(&ev, REF_BREAKER_CLOSED, REF_BREAKER_OPEN, REF_BREAKER_REASON_FAILURES, T0 + 5);
    assert_int_equal(ev.outcome, REF_BREAKER_TIMEOUT);

    /* A threshold of 1 opens on the first failure. */
    ref_breaker_config c = {.failure_threshold = 1, .cool_down_ns = SEC};
    assert_int_equal(ref_breaker_init(&b, &c), CAP_OK);
    assert_int_equal(dispatch(&b, T0, REF_BREAKER_FAILURE, &ev), 1);
    assert_event(&ev, REF_BREAKER_CLOSED, REF_BREAKER_OPEN, REF_BREAKER_REASON_FAILURES, T0);
    assert_true(ev.half_open_at == T0 + SEC);
}

/* --- open ----------------------------------------------------------------- */

static void test_no_dispatch_while_open(void **state)
{
    (void)state;
    ref_breaker b = opened_at(T0);
    ref_breaker_event ev;
    uint64_t t = 99;
    const int64_t times[] = {T0, T0 + 1, T0 + COOL / 2, T0 + COOL - 1};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        assert_int_equal(ref_breaker_can_dispatch(&b, times[i]), 0);
        assert_int_equal(ref_breaker_state_at(&b, times[i]), REF_BREAKER_OPEN);
        assert_int_equal(ref_breaker_acquire(&b, times[i], &t, &ev), REF_BREAKER_REFUSE);
        assert_true(t == 0);
        assert_no_event(&ev);
        assert_int_equal(b.state, REF_BREAKER_OPEN);
    }
    /* Time going backwards keeps it open. */
    assert_int_equal(ref_breaker_acquire(&b, T0 - 10 * COOL, &t, &ev), REF_BREAKER_REFUSE);
    assert_int_equal(b.state, REF_BREAKER_OPEN);
    /* An outcome while open has no current ticket to match. */
    assert_int_equal(ref_breaker_record(&b, T0 + 1, b.epoch, REF_BREAKER_SUCCESS, &ev), 0);
    assert_int_equal(b.state, REF_BREAKER_OPEN);
    assert_no_event(&ev);
}

static void test_half_open_after_exact_cool_down(void **state)
{
    (void)state;
    ref_breaker b = opened_at(T0);
    ref_breaker_event ev;
    int64_t at = 0;
    assert_int_equal(ref_breaker_deadline(&b, &at), 1);
    assert_true(at == T0 + COOL);

    assert_int_equal(ref_breaker_advance(&b, T0 + COOL - 1, &ev), 0);
    assert_no_event(&ev);
    assert_int_equal(b.state, REF_BREAKER_OPEN);
    assert_int_equal(ref_breaker_state_at(&b, T0 + COOL - 1), REF_BREAKER_OPEN);
    assert_int_equal(ref_breaker_state_at(&b, T0 + COOL), REF_BREAKER_HALF_OPEN);
    assert_int_equal(ref_breaker_can_dispatch(&b, T0 + COOL), 1);
    assert_int_equal(b.state, REF_BREAKER_OPEN); /* the queries changed nothing */

    assert_int_equal(ref_breaker_advance(&b, T0 + COOL, &ev), 1);
    assert_event(&ev, REF_BREAKER_OPEN, REF_BREAKER_HALF_OPEN, REF_BREAKER_REASON_COOL_DOWN,
                 T0 + COOL);
    assert_true(ev.half_open_at == 0);
    assert_int_equal(b.state, REF_BREAKER_HALF_OPEN);
    assert_int_equal(ref_breaker_deadline(&b, &at), 0);
    assert_int_equal(ref_breaker_advance(&b, T0 + COOL + 1, &ev), 0);
    assert_no_event(&ev);

    /* Without a timer: the first acquire at the end of the cool-down makes
     * the change itself, reports it and gets the trial. */
    ref_breaker c = opened_at(T0);
    uint64_t t = 0;
    assert_int_equal(ref_breaker_acquire(&c, T0 + COOL, &t, &ev), REF_BREAKER_ADMIT_TRIAL);
    assert_event(&ev, REF_BREAKER_OPEN, REF_BREAKER_HALF_OPEN, REF_BREAKER_REASON_COOL_DOWN,
                 T0 + COOL);
    assert_true(t != 0);

    /* A zero cool-down is half-open at once. */
    ref_breaker_config cfg = {.failure_threshold = 1, .cool_down_ns = 0};
    assert_int_equal(ref_breaker_init(&c, &cfg), CAP_OK);
    assert_int_equal(dispatch(&c, T0, REF_BREAKER_FAILURE, &ev), 1);
    assert_int_equal(ref_breaker_state_at(&c, T0), REF_BREAKER_HALF_OPEN);
}

/* --- half-open ------------------------------------------------------------ */

static void test_only_one_trial(void **state)
{
    (void)state;
    ref_breaker b = opened_at(T0);
    ref_breaker_event ev;
    uint64_t trial = 0, t = 0;
    assert_int_equal(ref_breaker_acquire(&b, T0 + COOL, &trial, &ev), REF_BREAKER_ADMIT_TRIAL);
    assert_int_equal(b.trial_in_flight, 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ref_breaker_can_dispatch(&b, T0 + COOL + i), 0);
        assert_int_equal(ref_breaker_acquire(&b, T0 + COOL + i, &t, &ev), REF_BREAKER_REFUSE);
        assert_true(t == 0);
        assert_no_event(&ev);
    }
    /* Still refused long after: the trial's outcome is what decides. */
    assert_int_equal(ref_breaker_acquire(&b, T0 + 100 * COOL, &t, &ev), REF_BREAKER_REFUSE);
    assert_int_equal(b.state, REF_BREAKER_HALF_OPEN);
}

static void test_trial_success_closes(void **state)
{
    (void)state;
    ref_breaker b = opened_at(T0);
    ref_breaker_event ev;
    uint64_t trial = 0, t = 0;
    assert_int_equal(ref_breaker_acquire(&b, T0 + COOL, &trial, &ev), REF_BREAKER_ADMIT_TRIAL);
    assert_int_equal(ref_breaker_record(&b, T0 + COOL + 7, trial, REF_BREAKER_SUCCESS, &ev), 1);
    assert_event(&ev, REF_BREAKER_HALF_OPEN, REF_BREAKER_CLOSED, REF_BREAKER_REASON_TRIAL_SUCCEEDED,
                 T0 + COOL + 7);
    assert_int_equal(ev.failures, 0);
    assert_int_equal(b.state, REF_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    /* Closed again: every dispatch admitted, and the count starts over. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ref_breaker_acquire(&b, T0 + COOL + 8, &t, NULL), REF_BREAKER_ADMIT);
    assert_int_equal(dispatch(&b, T0 + COOL + 9, REF_BREAKER_FAILURE, &ev), 1);
    assert_int_equal(dispatch(&b, T0 + COOL + 9, REF_BREAKER_FAILURE, &ev), 1);
    assert_no_event(&ev);
    assert_int_equal(b.state, REF_BREAKER_CLOSED);
}

static void test_trial_failure_reopens(void **state)
{
    (void)state;
    const ref_breaker_outcome outcomes[] = {REF_BREAKER_FAILURE, REF_BREAKER_TIMEOUT};
    for (size_t i = 0; i < 2; i++) {
        ref_breaker b = opened_at(T0);
        ref_breaker_event ev;
        uint64_t trial = 0, t = 0;
        int64_t t1 = T0 + COOL + 500;
        assert_int_equal(ref_breaker_acquire(&b, T0 + COOL, &trial, NULL), REF_BREAKER_ADMIT_TRIAL);
        assert_int_equal(ref_breaker_record(&b, t1, trial, outcomes[i], &ev), 1);
        assert_event(&ev, REF_BREAKER_HALF_OPEN, REF_BREAKER_OPEN, REF_BREAKER_REASON_TRIAL_FAILED,
                     t1);
        assert_int_equal(ev.outcome, outcomes[i]);
        assert_int_equal(ev.failures, 4);
        assert_true(ev.half_open_at == t1 + COOL);
        /* A new, full cool-down from the trial's failure. */
        assert_int_equal(ref_breaker_acquire(&b, t1 + COOL - 1, &t, &ev), REF_BREAKER_REFUSE);
        assert_no_event(&ev);
        assert_int_equal(ref_breaker_acquire(&b, t1 + COOL, &t, &ev), REF_BREAKER_ADMIT_TRIAL);
        assert_event(&ev, REF_BREAKER_OPEN, REF_BREAKER_HALF_OPEN, REF_BREAKER_REASON_COOL_DOWN,
                     t1 + COOL);
        /* The old trial ticket is spent. */
        assert_int_equal(ref_breaker_record(&b, t1 + COOL, trial, REF_BREAKER_SUCCESS, &ev), 0);
        assert_int_equal(b.state, REF_BREAKER_HALF_OPEN);
    }
}

/* --- tickets -------------------------------------------------------------- */

static void test_stale_outcomes_are_ignored(void **state)
{
    (void)state;
    ref_breaker b = fresh();
    ref_breaker_event ev;
    uint64_t early[3], late = 0, trial = 0;
    /* Five dispatches in flight; three fail and open it. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ref_breaker_acquire(&b, T0, &early[i], NULL), REF_BREAKER_ADMIT);
    assert_int_equal(ref_breaker_acquire(&b, T0, &late, NULL), REF_BREAKER_ADMIT);
    assert_true(late == early[0]); /* one phase, one ticket value */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ref_breaker_record(&b, T0 + 1, early[i], REF_BREAKER_FAILURE, &ev), 1);
    assert_int_equal(ev.changed, 1);
    assert_int_equal(b.state, REF_BREAKER_OPEN);

    /* A late result from before the opening: ignored while open... */
    assert_int_equal(ref_breaker_record(&b, T0 + 2, late, REF_BREAKER_SUCCESS, &ev), 0);
    assert_no_event(&ev);
    assert_int_equal(b.state, REF_BREAKER_OPEN);
    /* ...and while half-open it neither closes nor re-opens. */
    assert_int_equal(ref_breaker_acquire(&b, T0 + 1 + COOL, &trial, NULL), REF_BREAKER_ADMIT_TRIAL);
    assert_true(trial != late);
    assert_int_equal(ref_breaker_record(&b, T0 + 1 + COOL, late, REF_BREAKER_SUCCESS, &ev), 0);
    assert_int_equal(ref_breaker_record(&b, T0 + 1 + COOL, late, REF_BREAKER_FAILURE, &ev), 0);
    assert_int_equal(ref_breaker_record(&b, T0 + 1 + COOL, 0, REF_BREAKER_SUCCESS, &ev), 0);
    assert_no_event(&ev);
    assert_int_equal(b.state, REF_BREAKER_HALF_OPEN);
    assert_int_equal(b.trial_in_flight, 1);

    /* The cool-down applied by a record() is reported even when the
     * outcome itself is stale. */
    ref_breaker c = opened_at(T0);
    assert_int_equal(ref_breaker_record(&c, T0 + COOL, early[0], REF_BREAKER_FAILURE, &ev), 0);
    assert_event(&ev, REF_BREAKER_OPEN, REF_BREAKER_HALF_OPEN, REF_BREAKER_REASON_COOL_DOWN,
                 T0 + COOL);

    assert_int_equal(ref_breaker_record(&c, T0, 1, (ref_breaker_outcome)7, &ev), CAP_EINVAL);
    assert_int_equal(ref_breaker_record(NULL, T0, 1, REF_BREAKER_SUCCESS, &ev), CAP_EINVAL);
    assert_int_equal(ref_breaker_acquire(&c, T0, NULL, &ev), CAP_EINVAL);
    assert_int_equal(ref_breaker_can_dispatch(NULL, T0), 0);
}

static void test_abandoned_trial(void **state)
{
    (void)state;
    ref_breaker b = opened_at(T0);
    ref_breaker_event ev;
    uint64_t trial = 0, again = 0;
    assert_int_equal(ref_breaker_acquire(&b, T0 + COOL, &trial, NULL), REF_BREAKER_ADMIT_TRIAL);
    assert_int_equal(ref_breaker_record(&b, T0 + COOL, trial, REF_BREAKER_ABANDONED, &ev), 1);
    assert_no_event(&ev);
    assert_int_equal(b.state, REF_BREAKER_HALF_OPEN);
    assert_int_equal(b.trial_in_flight, 0);
    assert_int_equal(ref_breaker_can_dispatch(&b, T0 + COOL), 1);
    /* The abandoned ticket is spent; the next trial gets a new one. */
    assert_int_equal(ref_breaker_record(&b, T0 + COOL, trial, REF_BREAKER_SUCCESS, &ev), 0);
    assert_int_equal(ref_breaker_acquire(&b, T0 + COOL, &again, NULL), REF_BREAKER_ADMIT_TRIAL);
    assert_true(again != trial);
    assert_int_equal(ref_breaker_record(&b, T0 + COOL, trial, REF_BREAKER_SUCCESS, &ev), 0);
    assert_int_equal(ref_breaker_record(&b, T0 + COOL, again, REF_BREAKER_SUCCESS, &ev), 1);
    assert_int_equal(b.state, REF_BREAKER_CLOSED);
}

static void test_reset(void **state)
{
    (void)state;
    ref_breaker b = opened_at(T0);
    ref_breaker_event ev;
    uint64_t t = 0;
    assert_int_equal(ref_breaker_reset(&b, T0 + 3, &ev), 1);
    assert_event(&ev, REF_BREAKER_OPEN, REF_BREAKER_CLOSED, REF_BREAKER_REASON_RESET, T0 + 3);
    assert_int_equal(ref_breaker_acquire(&b, T0 + 3, &t, NULL), REF_BREAKER_ADMIT);

    ref_breaker c = fresh();
    assert_int_equal(dispatch(&c, T0, REF_BREAKER_FAILURE, &ev), 1);
    assert_int_equal(ref_breaker_reset(&c, T0, &ev), 0);
    assert_no_event(&ev);
    assert_int_equal(c.failures, 0);
    assert_int_equal(ref_breaker_reset(NULL, T0, &ev), CAP_EINVAL);
}

/* The whole cycle, with every change reported exactly once and in order. */
static void test_event_sequence(void **state)
{
    (void)state;
    ref_breaker b = fresh();
    ref_breaker_event evs[16], ev;
    size_t n = 0;
    uint64_t t = 0;
    int64_t now = T0;
    for (int i = 0; i < 3; i++) {
        dispatch(&b, now, REF_BREAKER_FAILURE, &ev);
        if (ev.changed)
            evs[n++] = ev;
    }
    now += COOL;
    ref_breaker_acquire(&b, now, &t, &ev);
    if (ev.changed)
        evs[n++] = ev;
    ref_breaker_record(&b, now + 1, t, REF_BREAKER_TIMEOUT, &ev);
    if (ev.changed)
        evs[n++] = ev;
    now += 1 + COOL;
    ref_breaker_advance(&b, now, &ev);
    if (ev.changed)
        evs[n++] = ev;
    ref_breaker_acquire(&b, now, &t, &ev);
    assert_no_event(&ev);
    ref_breaker_record(&b, now + 2, t, REF_BREAKER_SUCCESS, &ev);
    if (ev.changed)
        evs[n++] = ev;

    assert_int_equal(n, 5);
    assert_event(&evs[0], REF_BREAKER_CLOSED, REF_BREAKER_OPEN, REF_BREAKER_REASON_FAILURES, T0);
    assert_event(&evs[1], REF_BREAKER_OPEN, REF_BREAKER_HALF_OPEN, REF_BREAKER_REASON_COOL_DOWN,
                 T0 + COOL);
    assert_event(&evs[2], REF_BREAKER_HALF_OPEN, REF_BREAKER_OPEN, REF_BREAKER_REASON_TRIAL_FAILED,
                 T0 + COOL + 1);
    assert_event(&evs[3], REF_BREAKER_OPEN, REF_BREAKER_HALF_OPEN, REF_BREAKER_REASON_COOL_DOWN,
                 T0 + 2 * COOL + 1);
    assert_event(&evs[4], REF_BREAKER_HALF_OPEN, REF_BREAKER_CLOSED,
                 REF_BREAKER_REASON_TRIAL_SUCCEEDED, T0 + 2 * COOL + 3);
}

/* --- the set -------------------------------------------------------------- */

static ref_breaker_set *new_set(size_t max)
{
    ref_breaker_set *s = NULL;
    assert_int_equal(ref_breaker_set_new(NULL, max, &s), CAP_OK);
    assert_non_null(s);
    return s;
}

/* Opens a worker's breaker in a set at `at`. */
static void set_open(ref_breaker_set *s, const char *w, int64_t at)
{
    ref_breaker_event ev;
    for (int i = 0; i < 3; i++) {
        uint64_t t = 0;
        assert_int_equal(ref_breaker_set_acquire(s, w, at, &t, NULL), REF_BREAKER_ADMIT);
        assert_int_equal(ref_breaker_set_record(s, w, at, t, REF_BREAKER_FAILURE, &ev), 1);
    }
    assert_event(&ev, REF_BREAKER_CLOSED, REF_BREAKER_OPEN, REF_BREAKER_REASON_FAILURES, at);
    assert_string_equal(ev.worker, w);
}

static void test_set_sorted_and_independent(void **state)
{
    (void)state;
    ref_breaker_set *s = new_set(0);
    assert_int_equal(ref_breaker_set_max(s), REF_BREAKER_DEFAULT_MAX_WORKERS);
    const char *ids[] = {"wrk-3", "wrk-1", "wrk-20", "wrk-2"};
    uint64_t t = 0;
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(ref_breaker_set_acquire(s, ids[i], T0, &t, NULL), REF_BREAKER_ADMIT);
    assert_int_equal(ref_breaker_set_count(s), 4);
    const char *want[] = {"wrk-1", "wrk-2", "wrk-20", "wrk-3"};
    for (size_t i = 0; i < 4; i++) {
        const char *w = NULL;
        const ref_breaker *b = NULL;
        assert_int_equal(ref_breaker_set_at(s, i, &w, &b), CAP_OK);
        assert_string_equal(w, want[i]);
        assert_ptr_equal(ref_breaker_set_find(s, want[i]), b);
    }
    const char *w = NULL;
    const ref_breaker *b = NULL;
    assert_int_equal(ref_breaker_set_at(s, 4, &w, &b), CAP_EINVAL);

    /* One worker failing leaves the others alone. */
    set_open(s, "wrk-2", T0);
    assert_int_equal(ref_breaker_set_can_dispatch(s, "wrk-2", T0 + 1), 0);
    assert_int_equal(ref_breaker_set_can_dispatch(s, "wrk-1", T0 + 1), 1);
    assert_int_equal(ref_breaker_set_can_dispatch(s, "wrk-20", T0 + 1), 1);
    assert_int_equal(ref_breaker_set_find(s, "wrk-1")->state, REF_BREAKER_CLOSED);
    assert_int_equal(ref_breaker_set_acquire(s, "wrk-2", T0 + 1, &t, NULL), REF_BREAKER_REFUSE);

    /* An unknown worker is closed, and an outcome for it creates nothing. */
    assert_null(ref_breaker_set_find(s, "wrk-9"));
    assert_int_equal(ref_breaker_set_can_dispatch(s, "wrk-9", T0), 1);
    ref_breaker_event ev;
    assert_int_equal(ref_breaker_set_record(s, "wrk-9", T0, 5, REF_BREAKER_FAILURE, &ev), 0);
    assert_int_equal(ref_breaker_set_reset(s, "wrk-9", T0, &ev), 0);
    assert_int_equal(ref_breaker_set_count(s), 4);

    /* The event names the worker with the set's own copy. */
    char id[] = "wrk-7";
    set_open(s, id, T0);
    assert_int_equal(ref_breaker_set_reset(s, id, T0 + 1, &ev), 1);
    assert_ptr_not_equal(ev.worker, id);
    id[4] = 'x';
    assert_string_equal(ev.worker, "wrk-7");
    assert_event(&ev, REF_BREAKER_OPEN, REF_BREAKER_CLOSED, REF_BREAKER_REASON_RESET, T0 + 1);
    ref_breaker_set_free(s);
}

static void test_set_bounds(void **state)
{
    (void)state;
    ref_breaker_set *s = new_set(2);
    uint64_t t = 0;
    ref_breaker_event ev;
    assert_int_equal(ref_breaker_set_acquire(s, "a", T0, &t, NULL), REF_BREAKER_ADMIT);
    assert_int_equal(ref_breaker_set_acquire(s, "b", T0, &t, NULL), REF_BREAKER_ADMIT);
    assert_int_equal(ref_breaker_set_acquire(s, "c", T0, &t, &ev), CAP_EFULL);
    assert_true(t == 0);
    assert_no_event(&ev);
    assert_int_equal(ref_breaker_set_count(s), 2);
    assert_null(ref_breaker_set_find(s, "c"));
    /* Known workers are still served when full. */
    assert_int_equal(ref_breaker_set_acquire(s, "a", T0, &t, NULL), REF_BREAKER_ADMIT);
    /* Removing one makes room. */
    assert_int_equal(ref_breaker_set_remove(s, "a"), 1);
    assert_int_equal(ref_breaker_set_remove(s, "a"), 0);
    assert_int_equal(ref_breaker_set_acquire(s, "c", T0, &t, NULL), REF_BREAKER_ADMIT);
    assert_int_equal(ref_breaker_set_count(s), 2);

    /* Worker ids: non-empty, at most REF_BREAKER_WORKER_ID_MAX bytes. */
    char longest[REF_BREAKER_WORKER_ID_MAX + 2];
    memset(longest, 'w', sizeof longest);
    longest[REF_BREAKER_WORKER_ID_MAX + 1] = '\0';
    assert_int_equal(ref_breaker_set_acquire(s, longest, T0, &t, NULL), CAP_EINVAL);
    assert_int_equal(ref_breaker_set_can_dispatch(s, longest, T0), 0);
    assert_int_equal(ref_breaker_set_acquire(s, "", T0, &t, NULL), CAP_EINVAL);
    assert_int_equal(ref_breaker_set_acquire(s, NULL, T0, &t, NULL), CAP_EINVAL);
    assert_int_equal(ref_breaker_set_can_dispatch(s, NULL, T0), 0);
    assert_int_equal(ref_breaker_set_remove(s, ""), CAP_EINVAL);
    assert_int_equal(ref_breaker_set_record(s, "", T0, 1, REF_BREAKER_SUCCESS, NULL), CAP_EINVAL);
    assert_int_equal(ref_breaker_set_remove(s, "b"), 1);
    longest[REF_BREAKER_WORKER_ID_MAX] = '\0';
    assert_int_equal(ref_breaker_set_acquire(s, longest, T0, &t, NULL), REF_BREAKER_ADMIT);
    ref_breaker_set_free(s);

    ref_breaker_config bad = {.failure_threshold = 0, .cool_down_ns = 1};
    assert_int_equal(ref_breaker_set_new(&bad, 4, &s), CAP_EINVAL);
    assert_null(s);
    assert_int_equal(ref_breaker_set_new(NULL, 4, NULL), CAP_EINVAL);
    ref_breaker_set_free(NULL);
}

static void test_set_tickets_unique(void **state)
{
    (void)state;
    ref_breaker_config c = {.failure_threshold = 1, .cool_down_ns = COOL};
    ref_breaker_set *s = NULL;
    assert_int_equal(ref_breaker_set_new(&c, 8, &s), CAP_OK);
    uint64_t ta = 0, tb = 0, old = 0, now_t = 0;
    assert_int_equal(ref_breaker_set_acquire(s, "a", T0, &ta, NULL), REF_BREAKER_ADMIT);
    assert_int_equal(ref_breaker_set_acquire(s, "b", T0, &tb, NULL), REF_BREAKER_ADMIT);
    assert_true(ta != tb);
    /* One worker's ticket means nothing to another. */
    assert_int_equal(ref_breaker_set_record(s, "a", T0, tb, REF_BREAKER_FAILURE, NULL), 0);
    assert_int_equal(ref_breaker_set_find(s, "a")->state, REF_BREAKER_CLOSED);

    /* A worker removed and added again ignores its earlier life's tickets. */
    old = ta;
    assert_int_equal(ref_breaker_set_remove(s, "a"), 1);
    assert_int_equal(ref_breaker_set_acquire(s, "a", T0, &now_t, NULL), REF_BREAKER_ADMIT);
    assert_true(now_t != old);
    assert_int_equal(ref_breaker_set_record(s, "a", T0, old, REF_BREAKER_FAILURE, NULL), 0);
    assert_int_equal(ref_breaker_set_find(s, "a")->state, REF_BREAKER_CLOSED);
    assert_int_equal(ref_breaker_set_record(s, "a", T0, now_t, REF_BREAKER_FAILURE, NULL), 1);
    assert_int_equal(ref_breaker_set_find(s, "a")->state, REF_BREAKER_OPEN);
    ref_breaker_set_free(s);
}

static void test_set_advance_and_deadline(void **state)
{
    (void)state;
    ref_breaker_set *s = new_set(8);
    int64_t at = 0;
    assert_int_equal(ref_breaker_set_deadline(s, &at), 0);
    set_open(s, "w3", T0);
    set_open(s, "w1", T0 + 5 * SEC);
    set_open(s, "w2", T0 + 10 * SEC);
    assert_int_equal(ref_breaker_set_deadline(s, &at), 1);
    assert_true(at == T0 + COOL);

    ref_breaker_event evs[4];
    assert_int_equal(ref_breaker_set_advance(s, T0 + COOL - 1, evs, 4), 0);
    /* At T0+36s w3 and w1 are due, w2 not yet; one event per call here,
     * in ascending worker order. */
    assert_int_equal(ref_breaker_set_advance(s, T0 + 36 * SEC, evs, 1), 1);
    assert_event(&evs[0], REF_BREAKER_OPEN, REF_BREAKER_HALF_OPEN, REF_BREAKER_REASON_COOL_DOWN,
                 T0 + 36 * SEC);
    assert_string_equal(evs[0].worker, "w1");
    assert_int_equal(ref_breaker_set_advance(s, T0 + 36 * SEC, evs, 1), 1);
    assert_string_equal(evs[0].worker, "w3");
    assert_int_equal(ref_breaker_set_advance(s, T0 + 36 * SEC, evs, 1), 0);
    assert_int_equal(ref_breaker_set_deadline(s, &at), 1);
    assert_true(at == T0 + 40 * SEC);
    assert_int_equal(ref_breaker_set_advance(s, T0 + 40 * SEC, evs, 4), 1);
    assert_string_equal(evs[0].worker, "w2");
    assert_int_equal(ref_breaker_set_deadline(s, &at), 0);

    assert_int_equal(ref_breaker_set_advance(s, T0, NULL, 1), CAP_EINVAL);
    assert_int_equal(ref_breaker_set_advance(s, T0, NULL, 0), 0);
    ref_breaker_set_free(s);
}

/* Lookups by worker stay right while workers are added in any order and
 * removed: checked against a model after every step (each worker's
 * breaker keeps its own failure count, so a lookup that lands on another
 * worker's entry shows). */
static void test_set_find_follows_adds_and_removes(void **state)
{
    (void)state;
    ref_breaker_set *s = new_set(64);
    enum { N = 30 };
    char ids[N][8];
    int held[N] = {0};
    uint32_t fails[N] = {0};
    for (int i = 0; i < N; i++)
        snprintf(ids[i], sizeof ids[i], "w%02d", (i * 7) % N);
    uint64_t x = 99;
    for (int step = 0; step < 1500; step++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int i = (int)((x >> 33) % N), op = (int)((x >> 20) % 4);
        if (op < 3) {
            uint64_t t = 0;
            int v = ref_breaker_set_acquire(s, ids[i], T0, &t, NULL);
            assert_true(v == REF_BREAKER_ADMIT);
            if (!held[i])
                fails[i] = 0;
            held[i] = 1;
            /* one failure, below the threshold once reset by a success */
            ref_breaker_outcome o = fails[i] < 2 ? REF_BREAKER_FAILURE : REF_BREAKER_SUCCESS;
            assert_int_equal(ref_breaker_set_record(s, ids[i], T0, t, o, NULL), 1);
            fails[i] = o == REF_BREAKER_FAILURE ? fails[i] + 1 : 0;
        } else {
            assert_int_equal(ref_breaker_set_remove(s, ids[i]), held[i]);
            held[i] = 0;
        }
        size_t count = 0;
        for (int m = 0; m < N; m++) {
            const ref_breaker *b = ref_breaker_set_find(s, ids[m]);
            if (held[m]) {
                assert_non_null(b);
                assert_int_equal(b->failures, fails[m]);
                count++;
            } else {
                assert_null(b);
            }
        }
        assert_int_equal(ref_breaker_set_count(s), count);
    }
    ref_breaker_set_free(s);
}

/* The set's deadline (and advance) follow every way a breaker enters or
 * leaves OPEN: failures, reset, removal, a cool-down ended by acquire or
 * by advance, a failed trial that re-opens it, a trial that closes it. */
static void test_set_deadline_follows_open_breakers(void **state)
{
    (void)state;
    ref_breaker_set *s = new_set(8);
    ref_breaker_event ev, evs[4];
    int64_t at = 0;
    uint64_t t = 0;

    set_open(s, "a", T0);
    assert_int_equal(ref_breaker_set_reset(s, "a", T0 + 1, &ev), 1);
    assert_int_equal(ref_breaker_set_deadline(s, &at), 0);
    assert_int_equal(ref_breaker_set_advance(s, T0 + 2 * COOL, evs, 4), 0);

    set_open(s, "b", T0);
    assert_int_equal(ref_breaker_set_remove(s, "b"), 1);
    assert_int_equal(ref_breaker_set_deadline(s, &at), 0);

    /* The cool-down ends inside acquire: HALF_OPEN, no deadline. */
    set_open(s, "c", T0);
    assert_int_equal(ref_breaker_set_acquire(s, "c", T0 + COOL, &t, &ev), REF_BREAKER_ADMIT_TRIAL);
    assert_int_equal(ref_breaker_set_deadline(s, &at), 0);
    /* The trial fails: open again, with the new cool-down's end. */
    assert_int_equal(ref_breaker_set_record(s, "c", T0 + COOL + 1, t, REF_BREAKER_FAILURE, &ev), 1);
    assert_int_equal(ref_breaker_set_deadline(s, &at), 1);
    assert_true(at == T0 + 2 * COOL + 1);
    /* The cool-down ends in advance, then the trial succeeds: closed. */
    assert_int_equal(ref_breaker_set_advance(s, T0 + 2 * COOL + 1, evs, 4), 1);
    assert_int_equal(ref_breaker_set_deadline(s, &at), 0);
    assert_int_equal(ref_breaker_set_acquire(s, "c", T0 + 2 * COOL + 2, &t, &ev),
                     REF_BREAKER_ADMIT_TRIAL);
    assert_int_equal(ref_breaker_set_record(s, "c", T0 + 2 * COOL + 3, t, REF_BREAKER_SUCCESS, &ev), 1);
    assert_int_equal(ref_breaker_state_at(ref_breaker_set_find(s, "c"), T0 + 2 * COOL + 3),
                     REF_BREAKER_CLOSED);
    assert_int_equal(ref_breaker_set_deadline(s, &at), 0);

    /* Two open, one removed: the other's deadline remains. */
    set_open(s, "d", T0 + 10 * SEC);
    set_open(s, "e", T0 + 20 * SEC);
    assert_int_equal(ref_breaker_set_remove(s, "d"), 1);
    assert_int_equal(ref_breaker_set_deadline(s, &at), 1);
    assert_true(at == T0 + 20 * SEC + COOL);
    ref_breaker_set_free(s);
}

/* The set answers "can dispatch" without a lookup while every breaker is
 * closed: whatever a random run of acquires, results, resets, advances and
 * removes does, its answer for every worker must stay that of the worker's
 * own breaker (1 for a worker without one). */
static void test_set_can_dispatch_matches_breakers(void **state)
{
    (void)state;
    static const char *const ids[] = {"w0", "w1", "w2", "w3", "w4", "w5"};
    enum { N = sizeof ids / sizeof *ids };
    ref_breaker_set *s = new_set(N);
    uint64_t ticket[N] = {0}, x = 12345;
    int64_t now = T0;
    int saw_refusal = 0, saw_all_closed_after_open = 0, was_refusing = 0;
    ref_breaker_event ev, evs[N];
    for (int step = 0; step < 4000; step++) {
        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        unsigned r = (unsigned)(x >> 33), i = r % N, what = (r / N) % 12;
        now += (int64_t)((r >> 8) % 4) * (COOL / 3);
        if (what < 4) {
            uint64_t t = 0;
            if (ref_breaker_set_acquire(s, ids[i], now, &t, &ev) >= 0 && t)
                ticket[i] = t;
        } else if (what < 9) {
            ref_breaker_outcome o = what < 6 ? REF_BREAKER_FAILURE
                                    : what < 8 ? REF_BREAKER_TIMEOUT
                                               : REF_BREAKER_SUCCESS;
            assert_true(ref_breaker_set_record(s, ids[i], now, ticket[i], o, &ev) >= 0);
        } else if (what == 9) {
            assert_true(ref_breaker_set_reset(s, ids[i], now, &ev) >= 0);
        } else if (what == 10) {
            assert_true(ref_breaker_set_advance(s, now, evs, N) >= 0);
        } else {
            assert_true(ref_breaker_set_remove(s, ids[i]) >= 0);
        }
        int refusing = 0;
        for (int k = 0; k < N; k++) {
            const ref_breaker *b = ref_breaker_set_find(s, ids[k]);
            int want = b ? ref_breaker_can_dispatch(b, now) : 1;
            assert_int_equal(ref_breaker_set_can_dispatch(s, ids[k], now), want);
            refusing |= !want;
        }
        saw_refusal |= refusing;
        saw_all_closed_after_open |= was_refusing && !refusing;
        was_refusing = refusing;
    }
    /* the run went through both regimes */
    assert_true(saw_refusal);
    assert_true(saw_all_closed_after_open);
    assert_int_equal(ref_breaker_set_can_dispatch(s, "", now), 0);
    ref_breaker_set_free(s);
}

/* Calls through a memo answer exactly as calls by id: two sets run the
 * same random acquires, results, resets, advances and removes (which
 * move other workers' entries and end a worker's entry, to be made again
 * later), one by id only and one with a memo per worker, and every
 * answer, ticket and event must agree. */
static void test_set_memo_matches_lookup(void **state)
{
    (void)state;
    static const char *const ids[] = {"w3", "w0", "w5", "w1", "w4", "w2", "w6", "w7"};
    enum { N = sizeof ids / sizeof *ids };
    ref_breaker_set *a = new_set(N), *b = new_set(N);
    ref_breaker_memo memo[N];
    memset(memo, 0, sizeof memo);
    uint64_t ticket[N] = {0}, x = 777;
    int64_t now = T0;
    int removed = 0, memo_moved = 0;
    for (int step = 0; step < 6000; step++) {
        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        unsigned r = (unsigned)(x >> 33), i = r % N, what = (r / N) % 12;
        now += (int64_t)((r >> 8) % 4) * (COOL / 3);
        ref_breaker_event ea, eb;
        ref_breaker_memo before = memo[i];
        if (what < 4) {
            uint64_t ta = 0, tb = 0;
            int va = ref_breaker_set_acquire(a, ids[i], now, &ta, &ea);
            int vb = ref_breaker_set_acquire_memo(b, ids[i], &memo[i], now, &tb, &eb);
            assert_int_equal(va, vb);
            assert_true(ta == tb);
            assert_int_equal(ea.changed, eb.changed);
            if (ta)
                ticket[i] = ta;
        } else if (what < 9) {
            ref_breaker_outcome o = what < 6 ? REF_BREAKER_FAILURE
                                    : what < 8 ? REF_BREAKER_TIMEOUT
                                               : REF_BREAKER_SUCCESS;
            int va = ref_breaker_set_record(a, ids[i], now, ticket[i], o, &ea);
            int vb = ref_breaker_set_record_memo(b, ids[i], &memo[i], now, ticket[i], o, &eb);
            assert_int_equal(va, vb);
            assert_int_equal(ea.changed, eb.changed);
            if (ea.changed) {
                assert_int_equal(ea.to, eb.to);
                assert_string_equal(ea.worker, eb.worker);
            }
        } else if (what == 9) {
            assert_int_equal(ref_breaker_set_reset(a, ids[i], now, &ea),
                             ref_breaker_set_reset(b, ids[i], now, &eb));
        } else if (what == 10) {
            ref_breaker_event evs[N];
            assert_int_equal(ref_breaker_set_advance(a, now, evs, N),
                             ref_breaker_set_advance(b, now, evs, N));
        } else {
            int va = ref_breaker_set_remove(a, ids[i]);
            assert_int_equal(va, ref_breaker_set_remove(b, ids[i]));
            removed += va == 1;
        }
        memo_moved |= before.serial && memo[i].serial == before.serial && memo[i].at != before.at;
        for (int k = 0; k < N; k++)
            assert_int_equal(ref_breaker_set_can_dispatch(a, ids[k], now),
                             ref_breaker_set_can_dispatch_memo(b, ids[k], &memo[k], now));
    }
    assert_true(removed > 0);  /* the run ended entries ... */
    assert_true(memo_moved);   /* ... and a memo followed its entry to a new place */
    ref_breaker_set_free(a);
    ref_breaker_set_free(b);
}

/* A memo of a worker whose breaker was removed and made again does not
 * reach the new breaker's state through the old entry: the old life's
 * ticket stays stale, the new one counts. */
static void test_set_memo_after_remove(void **state)
{
    (void)state;
    ref_breaker_set *s = new_set(4);
    ref_breaker_memo m;
    memset(&m, 0, sizeof m);
    uint64_t old = 0, t = 0;
    assert_int_equal(ref_breaker_set_acquire_memo(s, "b", &m, T0, &old, NULL), REF_BREAKER_ADMIT);
    assert_true(m.serial != 0);
    ref_breaker_memo kept = m;
    assert_int_equal(ref_breaker_set_remove(s, "b"), 1);
    /* another worker now sits where b was */
    assert_int_equal(ref_breaker_set_acquire(s, "c", T0, &t, NULL), REF_BREAKER_ADMIT);
    assert_int_equal(ref_breaker_set_record_memo(s, "b", &m, T0, old, REF_BREAKER_FAILURE, NULL), 0);
    assert_null(ref_breaker_set_find(s, "b"));
    assert_int_equal(ref_breaker_set_find(s, "c")->failures, 0);
    assert_int_equal(ref_breaker_set_acquire_memo(s, "b", &m, T0, &t, NULL), REF_BREAKER_ADMIT);
    assert_true(m.serial != kept.serial);
    assert_int_equal(ref_breaker_set_record_memo(s, "b", &m, T0, old, REF_BREAKER_FAILURE, NULL), 0);
    assert_int_equal(ref_breaker_set_record_memo(s, "b", &m, T0, t, REF_BREAKER_FAILURE, NULL), 1);
    assert_int_equal(ref_breaker_set_find(s, "b")->failures, 1);
    assert_int_equal(ref_breaker_set_find(s, "c")->failures, 0);
    /* a bad id with no memo is refused as by the plain calls */
    ref_breaker_memo none;
    memset(&none, 0, sizeof none);
    assert_int_equal(ref_breaker_set_acquire_memo(s, "", &none, T0, &t, NULL), CAP_EINVAL);
    assert_int_equal(ref_breaker_set_can_dispatch_memo(s, NULL, &none, T0), 0);
    ref_breaker_set_free(s);
}

/* --- SystemAlert ---------------------------------------------------------- */

static const char *detail(const Cordum__Agent__V1__SystemAlert *a, size_t i, const char *key)
{
    assert_true(i < a->n_details);
    assert_string_equal(a->details[i]->key, key);
    return a->details[i]->value;
}

static void test_alert_open(void **state)
{
    (void)state;
    ref_breaker_set *s = new_set(4);
    ref_breaker_event ev;
    for (int i = 0; i < 3; i++) {
        uint64_t t = 0;
        ref_breaker_set_acquire(s, "wrk-1", T0, &t, NULL);
        ref_breaker_set_record(s, "wrk-1", T0, t, REF_BREAKER_FAILURE, &ev);
    }
    ref_breaker_alert a;
    assert_int_equal(ref_breaker_alert_fill(&a, &ev, NULL), CAP_OK);
    ref_breaker_set_free(s); /* the alert owns copies of everything */

    assert_int_equal(a.alert.severity, CORDUM__AGENT__V1__ALERT_SEVERITY__ALERT_SEVERITY_WARNING);
    assert_int_equal(a.alert.error_code_enum,
                     CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_WORKER_UNAVAILABLE);
    assert_string_equal(a.alert.source_component, "scheduler");
    assert_string_equal(a.alert.trace_id, "");
    assert_non_null(strstr(a.alert.message, "wrk-1"));
    assert_non_null(strstr(a.alert.message, "closed -> open"));
    assert_non_null(strstr(a.alert.message, "3 consecutive failures"));
    assert_int_equal(a.alert.n_details, 5);
    assert_string_equal(detail(&a.alert, 0, "consecutive_failures"), "3");
    assert_string_equal(detail(&a.alert, 1, "from"), "closed");
    assert_string_equal(detail(&a.alert, 2, "reason"), "failures");
    assert_string_equal(detail(&a.alert, 3, "to"), "open");
    assert_string_equal(detail(&a.alert, 4, "worker"), "wrk-1");

    /* It is a valid sys.alert packet: encode, strict decode, compare. */
    cap_packet pkt = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = T0 / SEC;
    pkt.trace_id = "trace-breaker";
    pkt.sender_id = "scheduler";
    pkt.created_at = &ts;
    pkt.protocol_version = 1;
    pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_ALERT;
    pkt.alert = &a.alert;
    uint8_t *wire = NULL;
    size_t len = 0;
    assert_int_equal(cap_encode(&pkt.base, &wire, &len), CAP_OK);
    cap_packet *back = NULL;
    cap_diag diag;
    assert_int_equal(cap_packet_decode(wire, len, NULL, CAP_DECODE_STRICT, &back, &diag), CAP_OK);
    assert_int_equal(back->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_ALERT);
    assert_string_equal(back->alert->message, a.alert.message);
    assert_int_equal(back->alert->severity, a.alert.severity);
    assert_int_equal(back->alert->error_code_enum, 206);
    assert_int_equal(back->alert->n_details, 5);
    assert_string_equal(detail(back->alert, 4, "worker"), "wrk-1");
    assert_string_equal(detail(back->alert, 3, "to"), "open");
    cap_packet_free(back);
    free(wire);
}

static void test_alert_recovery_and_errors(void **state)
{
    (void)state;
    ref_breaker b = opened_at(T0);
    ref_breaker_event ev;
    ref_breaker_alert a;
    assert_int_equal(ref_breaker_advance(&b, T0 + COOL, &ev), 1);
    ev.worker = "safety-kernel"; /* a standalone breaker names itself */
    assert_int_equal(ref_breaker_alert_fill(&a, &ev, "scheduler/safety-client"), CAP_OK);
    assert_int_equal(a.alert.severity, CORDUM__AGENT__V1__ALERT_SEVERITY__ALERT_SEVERITY_INFO);
    assert_int_equal(a.alert.error_code_enum, CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_UNSPECIFIED);
    assert_string_equal(a.alert.source_component, "scheduler/safety-client");
    assert_non_null(strstr(a.alert.message, "open -> half_open"));
    assert_string_equal(detail(&a.alert, 1, "from"), "open");
    assert_string_equal(detail(&a.alert, 2, "reason"), "cool_down_elapsed");
    assert_string_equal(detail(&a.alert, 3, "to"), "half_open");
    assert_string_equal(detail(&a.alert, 4, "worker"), "safety-kernel");

    /* A re-open after a failed trial is a warning again. */
    uint64_t t = 0;
    ref_breaker_acquire(&b, T0 + COOL, &t, NULL);
    ref_breaker_record(&b, T0 + COOL + 1, t, REF_BREAKER_TIMEOUT, &ev);
    assert_int_equal(ref_breaker_alert_fill(&a, &ev, NULL), CAP_OK);
    assert_int_equal(a.alert.severity, CORDUM__AGENT__V1__ALERT_SEVERITY__ALERT_SEVERITY_WARNING);
    assert_non_null(strstr(a.alert.message, "half_open -> open"));
    assert_non_null(strstr(a.alert.message, "timeout"));
    assert_string_equal(detail(&a.alert, 2, "reason"), "trial_failed");
    assert_string_equal(detail(&a.alert, 4, "worker"), "");

    /* Errors. */
    ref_breaker_event none;
    memset(&none, 0, sizeof none);
    assert_int_equal(ref_breaker_alert_fill(&a, &none, NULL), CAP_EINVAL);
    assert_int_equal(ref_breaker_alert_fill(&a, NULL, NULL), CAP_EINVAL);
    assert_int_equal(ref_breaker_alert_fill(NULL, &ev, NULL), CAP_EINVAL);
    char source[REF_BREAKER_SOURCE_MAX + 2];
    memset(source, 's', sizeof source);
    source[REF_BREAKER_SOURCE_MAX + 1] = '\0';
    assert_int_equal(ref_breaker_alert_fill(&a, &ev, source), CAP_EINVAL);
    char worker[REF_BREAKER_WORKER_ID_MAX + 2];
    memset(worker, 'w', sizeof worker);
    worker[REF_BREAKER_WORKER_ID_MAX + 1] = '\0';
    ev.worker = worker;
    assert_int_equal(ref_breaker_alert_fill(&a, &ev, NULL), CAP_EINVAL);
    /* The longest worker id fits, message included. */
    worker[REF_BREAKER_WORKER_ID_MAX] = '\0';
    source[REF_BREAKER_SOURCE_MAX] = '\0';
    assert_int_equal(ref_breaker_alert_fill(&a, &ev, source), CAP_OK);
    assert_string_equal(detail(&a.alert, 4, "worker"), worker);
    assert_non_null(strstr(a.alert.message, worker));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_opens_after_threshold),
        cmocka_unit_test(test_success_resets_and_timeouts_count),
        cmocka_unit_test(test_no_dispatch_while_open),
        cmocka_unit_test(test_half_open_after_exact_cool_down),
        cmocka_unit_test(test_only_one_trial),
        cmocka_unit_test(test_trial_success_closes),
        cmocka_unit_test(test_trial_failure_reopens),
        cmocka_unit_test(test_stale_outcomes_are_ignored),
        cmocka_unit_test(test_abandoned_trial),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_event_sequence),
        cmocka_unit_test(test_set_sorted_and_independent),
        cmocka_unit_test(test_set_bounds),
        cmocka_unit_test(test_set_tickets_unique),
        cmocka_unit_test(test_set_advance_and_deadline),
        cmocka_unit_test(test_set_deadline_follows_open_breakers),
        cmocka_unit_test(test_set_can_dispatch_matches_breakers),
        cmocka_unit_test(test_set_find_follows_adds_and_removes),
        cmocka_unit_test(test_set_memo_matches_lookup),
        cmocka_unit_test(test_set_memo_after_remove),
        cmocka_unit_test(test_alert_open),
        cmocka_unit_test(test_alert_recovery_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
