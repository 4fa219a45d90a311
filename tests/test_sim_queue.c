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
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_clear_releases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
