/* The event queue: (time, seq) order, ties, cancel, the bound. */
#include "testutil.h"

#include <stdlib.h>

#include "sim_queue.h"
#include "sim_rng.h"

static sim_event ev_at(int64_t t, uint64_t id)
{
    sim_event e = {0};
    e.time = t;
    e.id = id;
    return e;
}

static void test_init(void **state)
{
    (void)state;
    sim_queue q;
    assert_int_equal(sim_queue_init(NULL, 0), CAP_EINVAL);
    assert_int_equal(sim_queue_init(&q, SIM_QUEUE_MAX_LIMIT + 1), CAP_EINVAL);
    assert_int_equal(sim_queue_init(&q, 0), CAP_OK);
    assert_int_equal(q.max, SIM_QUEUE_DEFAULT_MAX);
    assert_int_equal(sim_queue_len(&q), 0);
    assert_null(sim_queue_peek(&q));
    int64_t t;
    assert_int_equal(sim_queue_peek_time(&q, &t), CAP_EINVAL);
    sim_event out;
    assert_int_equal(sim_queue_pop(&q, &out), 0);
    assert_int_equal(sim_queue_push(&q, NULL, NULL), CAP_EINVAL);
    sim_queue_free(&q, NULL, NULL);
    sim_queue_free(NULL, NULL, NULL);
}

static void test_time_then_seq(void **state)
{
    (void)state;
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 0), CAP_OK);
    /* Pushed out of order, with ties at t=5 and t=-1. */
    const int64_t times[] = {5, 3, 5, -1, 9, 5, -1, 0};
    for (uint64_t i = 0; i < 8; i++) {
        sim_event e = ev_at(times[i], i);
        assert_int_equal(sim_queue_push(&q, &e, NULL), CAP_OK);
    }
    int64_t t;
    assert_int_equal(sim_queue_peek_time(&q, &t), CAP_OK);
    assert_true(t == -1);
    /* Expected: by time, and at equal times by push order. */
    const uint64_t want[] = {3, 6, 7, 1, 0, 2, 5, 4};
    sim_event out;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(sim_queue_pop(&q, &out), 1);
        assert_true(out.id == want[i]);
        assert_true(out.seq == want[i]); /* seq = push index */
    }
    assert_int_equal(sim_queue_pop(&q, &out), 0);
    sim_queue_free(&q, NULL, NULL);
}

/* Times across the whole int64 range (negative, zero, the extremes),
 * with ties, in random order: popped by time, ties by push order. */
static int by_time_then_id(const void *x, const void *y)
{
    const sim_event *a = x, *b = y;
    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void test_extreme_times(void **state)
{
    (void)state;
    static const int64_t pool[] = {INT64_MIN, INT64_MIN + 1, -(INT64_C(1) << 40), -2, -1, 0, 1, 2,
                                   INT64_C(1) << 40, INT64_MAX - 1, INT64_MAX};
    enum { N = 300 };
    sim_rng r;
    sim_rng_stream(&r, 11, "extreme");
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 0), CAP_OK);
    sim_event want[N];
    for (uint64_t i = 0; i < N; i++) {
        want[i] = ev_at(pool[sim_rng_below(&r, sizeof pool / sizeof *pool)], i);
        assert_int_equal(sim_queue_push(&q, &want[i], NULL), CAP_OK);
    }
    qsort(want, N, sizeof *want, by_time_then_id);
    sim_event out;
    for (int i = 0; i < N; i++) {
        assert_int_equal(sim_queue_pop(&q, &out), 1);
        assert_true(out.time == want[i].time);
        assert_true(out.id == want[i].id);
    }
    assert_int_equal(sim_queue_pop(&q, &out), 0);
    sim_queue_free(&q, NULL, NULL);
}

static void test_many_ties_random(void **state)
{
    (void)state;
    /* 5000 events with times drawn from a small range: popped order is
     * non-decreasing in time, and in seq within one time. */
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 10000), CAP_OK);
    sim_rng r;
    sim_rng_seed(&r, 11);
    for (uint64_t i = 0; i < 5000; i++) {
        sim_event e = ev_at((int64_t)sim_rng_below(&r, 50), i);
        assert_int_equal(sim_queue_push(&q, &e, NULL), CAP_OK);
    }
    sim_event prev, out;
    assert_int_equal(sim_queue_pop(&q, &prev), 1);
    size_t n = 1;
    while (sim_queue_pop(&q, &out)) {
        assert_true(out.time > prev.time || (out.time == prev.time && out.seq > prev.seq));
        prev = out;
        n++;
    }
    assert_int_equal(n, 5000);
    sim_queue_free(&q, NULL, NULL);
}

static void test_cancel(void **state)
{
    (void)state;
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 0), CAP_OK);
    uint64_t h[10];
    for (uint64_t i = 0; i < 10; i++) {
        sim_event e = ev_at((int64_t)(10 - i), i); /* id 9 earliest */
        assert_int_equal(sim_queue_push(&q, &e, &h[i]), CAP_OK);
        assert_true(h[i] != 0);
    }
    sim_event out;
    /* Cancel the earliest, one in the middle and the latest. */
    assert_int_equal(sim_queue_cancel(&q, h[9], &out), 1);
    assert_true(out.id == 9);
    assert_int_equal(sim_queue_cancel(&q, h[4], &out), 1);
    assert_true(out.id == 4);
    assert_int_equal(sim_queue_cancel(&q, h[0], NULL), 1);
    /* Twice, or an unknown handle: not found. */
    assert_int_equal(sim_queue_cancel(&q, h[4], &out), 0);
    assert_int_equal(sim_queue_cancel(&q, 0, &out), 0);
    assert_int_equal(sim_queue_cancel(&q, UINT64_C(0xffffffff00000005), &out), 0);
    assert_int_equal(sim_queue_len(&q), 7);
    const uint64_t want[] = {8, 7, 6, 5, 3, 2, 1};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(sim_queue_pop(&q, &out), 1);
        assert_true(out.id == want[i]);
    }
    /* A popped event's handle is stale even after its slot is reused. */
    sim_event e = ev_at(1, 100);
    uint64_t h2;
    assert_int_equal(sim_queue_push(&q, &e, &h2), CAP_OK);
    for (int i = 0; i < 10; i++)
        assert_int_equal(sim_queue_cancel(&q, h[i], NULL), 0);
    assert_int_equal(sim_queue_cancel(&q, h2, &out), 1);
    assert_true(out.id == 100);
    sim_queue_free(&q, NULL, NULL);
}

static void test_cancel_random_keeps_order(void **state)
{
    (void)state;
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 0), CAP_OK);
    sim_rng r;
    sim_rng_seed(&r, 12);
    uint64_t h[2000];
    int cancelled[2000] = {0};
    for (uint64_t i = 0; i < 2000; i++) {
        sim_event e = ev_at((int64_t)sim_rng_below(&r, 300), i);
        assert_int_equal(sim_queue_push(&q, &e, &h[i]), CAP_OK);
    }
    for (int k = 0; k < 700; k++) {
        uint64_t i = sim_rng_below(&r, 2000);
        int got = sim_queue_cancel(&q, h[i], NULL);
        assert_int_equal(got, !cancelled[i]);
        cancelled[i] = 1;
    }
    sim_event prev = {0}, out;
    int first = 1;
    size_t n = 0;
    while (sim_queue_pop(&q, &out)) {
        assert_false(cancelled[out.id]);
        if (!first)
            assert_true(out.time > prev.time || (out.time == prev.time && out.seq > prev.seq));
        first = 0;
        prev = out;
        n++;
    }
    size_t nc = 0;
    for (int i = 0; i < 2000; i++)
        nc += (size_t)cancelled[i];
    assert_int_equal(n + nc, 2000);
    sim_queue_free(&q, NULL, NULL);
}

/* Pushes, pops and cancels interleaved at random, as a run does them,
 * against a plain list searched for its least (time, seq): every pop and
 * every cancel must agree with the list, whatever the heap's shape. */
#define MODEL_MAX 4096
static void test_interleaved_against_model(void **state)
{
    (void)state;
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 0), CAP_OK);
    sim_rng r;
    sim_rng_seed(&r, 77);
    static struct {
        int64_t time;
        uint64_t seq, id, handle;
    } live[MODEL_MAX];
    size_t n = 0;
    int64_t now = 0;
    uint64_t next_id = 0, next_seq = 0;
    for (int step = 0; step < 60000; step++) {
        uint64_t op = sim_rng_below(&r, 10);
        if ((op < 5 || n == 0) && n < MODEL_MAX) { /* push, often at equal times */
            sim_event e = ev_at(now + (int64_t)sim_rng_below(&r, 50), next_id);
            uint64_t h;
            assert_int_equal(sim_queue_push(&q, &e, &h), CAP_OK);
            live[n].time = e.time;
            live[n].seq = next_seq++;
            live[n].id = next_id++;
            live[n].handle = h;
            n++;
        } else if (op < 8) { /* pop: the least (time, seq) of the list */
            size_t m = 0;
            for (size_t i = 1; i < n; i++)
                if (live[i].time < live[m].time ||
                    (live[i].time == live[m].time && live[i].seq < live[m].seq))
                    m = i;
            sim_event out;
            assert_int_equal(sim_queue_pop(&q, &out), 1);
            assert_int_equal(out.id, live[m].id);
            assert_int_equal(out.seq, live[m].seq);
            now = out.time;
            live[m] = live[--n];
        } else { /* cancel one at random */
            size_t m = (size_t)sim_rng_below(&r, n);
            sim_event out;
            assert_int_equal(sim_queue_cancel(&q, live[m].handle, &out), 1);
            assert_int_equal(out.id, live[m].id);
            assert_int_equal(sim_queue_cancel(&q, live[m].handle, NULL), 0);
            live[m] = live[--n];
        }
        assert_int_equal(sim_queue_len(&q), n);
    }
    sim_queue_free(&q, NULL, NULL);
}

/* The queue keeps events in tiers by how far ahead they are (a near heap,
 * a ring of time buckets, a far heap); the order must not depend on it.
 * Random pushes (due at once, within a bucket, a few buckets ahead,
 * seconds, hours or years ahead, in the past, at the int64 extremes, and
 * many at equal times), pops, cancels and re-arms (a cancel and a push
 * for the same timer), checked against a plain list searched for its
 * least (time, seq): every peek, pop and cancel must agree with it. */
#define TIER_MAX 3000
typedef struct {
    int64_t time;
    uint64_t seq, id, handle;
} model_ev;

static int64_t add_sat(int64_t t, int64_t d)
{
    if (d > 0 && t > INT64_MAX - d)
        return INT64_MAX;
    if (d < 0 && t < INT64_MIN - d)
        return INT64_MIN;
    return t + d;
}

/* A time for a new event, relative to now in most cases. */
static int64_t draw_time(sim_rng *r, int64_t now)
{
    switch (sim_rng_below(r, 12)) {
    case 0: return now;
    case 1: return add_sat(now, (int64_t)sim_rng_below(r, 4));               /* ties */
    case 2: return add_sat(now, (int64_t)sim_rng_below(r, INT64_C(1) << 22)); /* this bucket */
    case 3:
    case 4: return add_sat(now, (int64_t)sim_rng_below(r, INT64_C(1) << 27)); /* a few buckets */
    case 5: return add_sat(now, (int64_t)sim_rng_below(r, INT64_C(1) << 36)); /* seconds: ring, far */
    case 6: return add_sat(now, INT64_C(1) << 34);                           /* a span border */
    case 7: return add_sat(now, (int64_t)sim_rng_below(r, INT64_C(1) << 45)); /* hours */
    case 8: return add_sat(now, (int64_t)(sim_rng_u64(r) >> 2));              /* years or more */
    case 9: return add_sat(now, -(int64_t)sim_rng_below(r, INT64_C(1) << 30)); /* in the past */
    case 10: {
        static const int64_t pool[] = {INT64_MIN, INT64_MIN + 1, -1, 0, INT64_MAX - 1, INT64_MAX};
        return pool[sim_rng_below(r, sizeof pool / sizeof *pool)];
    }
    default: return (int64_t)sim_rng_u64(r); /* anywhere */
    }
}

/* Index in m[0..n) of the least (time, seq). */
static size_t model_least(const model_ev *m, size_t n)
{
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (m[i].time < m[k].time || (m[i].time == m[k].time && m[i].seq < m[k].seq))
            k = i;
    return k;
}

static void run_tiers(int64_t start, uint64_t seed, int steps)
{
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, TIER_MAX), CAP_OK);
    sim_rng r;
    sim_rng_seed(&r, seed);
    static model_ev live[TIER_MAX];
    size_t n = 0;
    int64_t now = start;
    uint64_t next_id = 0, next_seq = 0;
    for (int step = 0; step < steps; step++) {
        /* Phases of 3000 steps that mostly push, then mostly pop, so the
         * queue holds from none to a few thousand events. */
        uint64_t op = sim_rng_below(&r, 20);
        if ((step / 3000) % 2 == 0 && op >= 9 && sim_rng_below(&r, 2))
            op = 0;
        if ((op < 9 || n == 0) && n < TIER_MAX) { /* push */
            sim_event e = ev_at(draw_time(&r, now), next_id);
            uint64_t h = 0;
            assert_int_equal(sim_queue_push(&q, &e, &h), CAP_OK);
            live[n] = (model_ev){e.time, next_seq++, next_id++, h};
            n++;
        } else if (op < 15) { /* pop */
            size_t m = model_least(live, n);
            sim_event out;
            assert_int_equal(sim_queue_pop(&q, &out), 1);
            assert_int_equal(out.id, live[m].id);
            assert_int_equal(out.seq, live[m].seq);
            assert_true(out.time == live[m].time);
            assert_int_equal(sim_queue_cancel(&q, live[m].handle, NULL), 0);
            now = out.time;
            live[m] = live[--n];
        } else if (op < 18) { /* cancel one at random */
            size_t m = (size_t)sim_rng_below(&r, n);
            sim_event out;
            assert_int_equal(sim_queue_cancel(&q, live[m].handle, &out), 1);
            assert_int_equal(out.id, live[m].id);
            assert_true(out.time == live[m].time);
            assert_int_equal(sim_queue_cancel(&q, live[m].handle, NULL), 0);
            live[m] = live[--n];
        } else { /* re-arm one: cancel it, push its id again at a new time */
            size_t m = (size_t)sim_rng_below(&r, n);
            assert_int_equal(sim_queue_cancel(&q, live[m].handle, NULL), 1);
            sim_event e = ev_at(draw_time(&r, now), live[m].id);
            uint64_t h = 0;
            assert_int_equal(sim_queue_push(&q, &e, &h), CAP_OK);
            live[m] = (model_ev){e.time, next_seq++, live[m].id, h};
        }
        assert_int_equal(sim_queue_len(&q), n);
        const sim_event *pe = sim_queue_peek(&q);
        if (n == 0) {
            assert_null(pe);
        } else {
            size_t m = model_least(live, n);
            assert_non_null(pe);
            assert_int_equal(pe->id, live[m].id);
            assert_int_equal(pe->seq, live[m].seq);
        }
    }
    /* Drain: the rest in model order. */
    while (n) {
        size_t m = model_least(live, n);
        sim_event out;
        assert_int_equal(sim_queue_pop(&q, &out), 1);
        assert_int_equal(out.seq, live[m].seq);
        live[m] = live[--n];
    }
    assert_int_equal(sim_queue_pop(&q, NULL), 0);
    sim_queue_free(&q, NULL, NULL);
}

static void test_tiers_against_model(void **state)
{
    (void)state;
    run_tiers(0, 101, 40000);
    run_tiers(INT64_MIN, 102, 20000);          /* from the least time */
    run_tiers(-(INT64_C(1) << 35), 103, 20000); /* across the sign change */
    run_tiers(INT64_MAX - (INT64_C(1) << 40), 104, 20000); /* up to the greatest */
}

/* A run's pattern at scale: deliveries a millisecond or two ahead, timers
 * seconds ahead re-armed before they fire, job timers hours ahead almost
 * always cancelled; popped in (time, seq) order, the queue's size steady. */
static void test_run_pattern(void **state)
{
    (void)state;
    enum { TIMERS = 500 };
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 0), CAP_OK);
    sim_rng r;
    sim_rng_seed(&r, 105);
    uint64_t timer[TIMERS], job[TIMERS];
    int64_t now = 0;
    for (uint64_t i = 0; i < TIMERS; i++) {
        sim_event e = ev_at((int64_t)sim_rng_below(&r, INT64_C(4000000000)), i);
        e.kind = 1;
        assert_int_equal(sim_queue_push(&q, &e, &timer[i]), CAP_OK);
        sim_event j = ev_at(INT64_C(17000000000000) + (int64_t)i, i);
        j.kind = 2;
        assert_int_equal(sim_queue_push(&q, &j, &job[i]), CAP_OK);
    }
    sim_event d = ev_at(1000000, 0);
    assert_int_equal(sim_queue_push(&q, &d, NULL), CAP_OK);
    sim_event prev = {0}, out;
    int first = 1;
    for (int step = 0; step < 200000; step++) {
        assert_int_equal(sim_queue_pop(&q, &out), 1);
        if (!first)
            assert_true(out.time > prev.time || (out.time == prev.time && out.seq > prev.seq));
        first = 0;
        prev = out;
        now = out.time;
        if (out.kind == 0) { /* a delivery: the next one, maybe a re-armed timer */
            sim_event e = ev_at(now + 500000 + (int64_t)sim_rng_below(&r, 1500000), 0);
            assert_int_equal(sim_queue_push(&q, &e, NULL), CAP_OK);
            uint64_t i = sim_rng_below(&r, TIMERS);
            if (sim_rng_below(&r, 4) == 0) {
                assert_int_equal(sim_queue_cancel(&q, timer[i], NULL), 1);
                sim_event t = ev_at(now + INT64_C(3000000000), i);
                t.kind = 1;
                assert_int_equal(sim_queue_push(&q, &t, &timer[i]), CAP_OK);
                assert_int_equal(sim_queue_cancel(&q, job[i], NULL), 1);
                sim_event j = ev_at(now + INT64_C(17000000000000), i);
                j.kind = 2;
                assert_int_equal(sim_queue_push(&q, &j, &job[i]), CAP_OK);
            }
        } else if (out.kind == 1) { /* a timer fired: armed again */
            sim_event t = ev_at(now + INT64_C(3000000000), out.id);
            t.kind = 1;
            assert_int_equal(sim_queue_push(&q, &t, &timer[out.id]), CAP_OK);
        } else {
            fail_msg("a job timer fired at %lld", (long long)now);
        }
        assert_int_equal(sim_queue_len(&q), 2 * TIMERS + 1);
    }
    assert_true(now > INT64_C(100000000000)); /* the run went through many spans */
    sim_queue_free(&q, NULL, NULL);
}

static void test_bound(void **state)
{
    (void)state;
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 3), CAP_OK);
    sim_event e = ev_at(1, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sim_queue_push(&q, &e, NULL), CAP_OK);
    assert_int_equal(sim_queue_space(&q), 0);
    uint64_t seq_before = q.next_seq;
    assert_int_equal(sim_queue_push(&q, &e, NULL), CAP_EFULL);
    assert_true(q.next_seq == seq_before); /* a refused push changes nothing */
    assert_int_equal(sim_queue_len(&q), 3);
    sim_event out;
    assert_int_equal(sim_queue_pop(&q, &out), 1);
    assert_int_equal(sim_queue_push(&q, &e, NULL), CAP_OK);
    sim_queue_free(&q, NULL, NULL);
}

static void release_count(sim_event *ev, void *ctx)
{
    free(ev->data);
    (*(int *)ctx)++;
}

static void test_clear_releases(void **state)
{
    (void)state;
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 0), CAP_OK);
    for (int i = 0; i < 5; i++) {
        sim_event e = ev_at(i, (uint64_t)i);
        e.data = malloc(16);
        assert_non_null(e.data);
        assert_int_equal(sim_queue_push(&q, &e, NULL), CAP_OK);
    }
    int n = 0;
    sim_queue_clear(&q, release_count, &n);
    assert_int_equal(n, 5);
    assert_int_equal(sim_queue_len(&q), 0);
    /* seq keeps counting after a clear */
    sim_event e = ev_at(0, 0);
    assert_int_equal(sim_queue_push(&q, &e, NULL), CAP_OK);
    assert_true(sim_queue_peek(&q)->seq == 5);
    e.data = malloc(8);
    assert_int_equal(sim_queue_push(&q, &e, NULL), CAP_OK);
    n = 0;
    /* free releases what is pending too (event 1 has data, event 0 NULL) */
    sim_queue_free(&q, release_count, &n);
    assert_int_equal(n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_time_then_seq),
        cmocka_unit_test(test_extreme_times),
        cmocka_unit_test(test_many_ties_random),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_cancel_random_keeps_order),
        cmocka_unit_test(test_interleaved_against_model),
        cmocka_unit_test(test_tiers_against_model),
        cmocka_unit_test(test_run_pattern),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_clear_releases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
