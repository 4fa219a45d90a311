/* Latency percentiles: exact while the values fit the kept samples; past
 * that, from the histogram, checked against the exact nearest-rank
 * percentiles of the same values (never below, at most 1/256 above, exact
 * below 256); extremes; and a fixed size however many values. */
#include "testutil.h"

#include "cap_error.h"
#include "sim_hist.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rnd(uint64_t *s) /* xorshift64*, test-local */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Checks every percentile 0..100 of h against the sorted values v. */
static void check_against_exact(sim_hist *h, int64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_i64);
    for (int p = 0; p <= 100; p++) {
        int64_t exact = v[((size_t)p * (n - 1) + 50) / 100];
        int64_t got = sim_hist_percentile(h, p);
        assert_true(got >= exact);
        assert_true((double)(got - exact) <= (double)exact / 256.0);
    }
}

static void test_matches_exact_percentiles(void **state)
{
    (void)state;
    enum { N = SIM_HIST_EXACT + 40000 };
    int64_t *v = malloc(N * sizeof *v);
    assert_non_null(v);
    uint64_t s = 99;
    /* three shapes: narrow around 1 ms, spread over nine decades, tiny */
    for (int shape = 0; shape < 3; shape++) {
        sim_hist h;
        sim_hist_init(&h);
        for (size_t i = 0; i < N; i++) {
            uint64_t r = rnd(&s);
            if (shape == 0)
                v[i] = 1000000 + (int64_t)(r % 20000);
            else if (shape == 1)
                v[i] = (int64_t)((r >> 20) % ((uint64_t)1 << (r % 40)));
            else
                v[i] = (int64_t)(r % 300);
            assert_int_equal(sim_hist_add(&h, v[i]), CAP_OK);
        }
        assert_int_equal(h.n, N);
        assert_null(h.samples); /* past the exact range */
        check_against_exact(&h, v, N);
        if (shape == 2) /* below 256 every value is its own bucket */
            for (int p = 0; p <= 100; p++) {
                int64_t exact = v[((size_t)p * (N - 1) + 50) / 100];
                if (exact < 256)
                    assert_int_equal(sim_hist_percentile(&h, p), exact);
            }
        sim_hist_free(&h);
    }
    free(v);
}

static void test_exact_while_small(void **state)
{
    (void)state;
    enum { N = SIM_HIST_EXACT };
    int64_t *v = malloc(N * sizeof *v);
    assert_non_null(v);
    uint64_t s = 3;
    sim_hist h;
    sim_hist_init(&h);
    for (size_t i = 0; i < N; i++) {
        v[i] = (int64_t)(rnd(&s) % 1000000007);
        assert_int_equal(sim_hist_add(&h, v[i]), CAP_OK);
    }
    qsort(v, N, sizeof *v, cmp_i64);
    for (int p = 0; p <= 100; p++)
        assert_int_equal(sim_hist_percentile(&h, p), v[((size_t)p * (N - 1) + 50) / 100]);
    /* adding after a percentile was read keeps the answers exact */
    assert_int_equal(sim_hist_add(&h, -1), CAP_OK);
    assert_int_equal(sim_hist_percentile(&h, 0), 0);
    sim_hist_free(&h);
    free(v);
}

static void test_extremes_and_empty(void **state)
{
    (void)state;
    sim_hist h;
    sim_hist_init(&h);
    assert_int_equal(sim_hist_percentile(&h, 50), 0);
    assert_int_equal(sim_hist_add(&h, INT64_MAX), CAP_OK);
    assert_int_equal(sim_hist_add(&h, -5), CAP_OK); /* counted as 0 */
    assert_int_equal(sim_hist_add(&h, 0), CAP_OK);
    assert_int_equal(sim_hist_percentile(&h, 0), 0);
    assert_int_equal(sim_hist_percentile(&h, 50), 0);
    assert_int_equal(sim_hist_percentile(&h, 100), INT64_MAX);
    assert_int_equal(sim_hist_percentile(&h, 400), INT64_MAX); /* p clamped */
    sim_hist_free(&h);
    sim_hist_init(&h);
    assert_int_equal(sim_hist_add(&h, 123456789), CAP_OK); /* one value: itself */
    assert_int_equal(sim_hist_percentile(&h, 1), 123456789);
    assert_int_equal(sim_hist_percentile(&h, 99), 123456789);
    sim_hist_free(&h);
    sim_hist_free(NULL);
}

static void test_size_is_fixed(void **state)
{
    (void)state;
    sim_hist h;
    sim_hist_init(&h);
    uint64_t s = 5;
    uint64_t *table = NULL;
    for (int i = 0; i < 2000000; i++) {
        assert_int_equal(sim_hist_add(&h, (int64_t)(rnd(&s) >> 1)), CAP_OK);
        if (i == 0)
            table = h.counts;
    }
    assert_ptr_equal(h.counts, table); /* never reallocated */
    uint64_t sum = 0;
    for (size_t i = 0; i < SIM_HIST_BUCKETS; i++)
        sum += h.counts[i];
    assert_int_equal(sum, 2000000);
    sim_hist_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_exact_percentiles),
        cmocka_unit_test(test_exact_while_small),
        cmocka_unit_test(test_extremes_and_empty),
        cmocka_unit_test(test_size_is_fixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
