/* The simulator's random source: xoshiro256** against the published
 * algorithm, SplitMix64 seeding, named streams, distributions, the
 * deterministic log/exp/sqrt. */
#include "testutil.h"

#include "sim_rng.h"

#include <math.h> /* the reference CDFs (libm is fine here: tests need no bit-exactness) */

/* Pinned by this implementation (ziggurat draws). A separate rendering of
 * the same algorithm, with libm's exp and log building its tables, gives
 * 648.26444449410405 -1.6896980783296596 1.08865309447629: the same to 15
 * significant digits. */
#define GOLDEN_REALS "648.26444449410337 -1.68969807832966 1.08865309447629"

static double fabs_(double x)
{
    return x < 0 ? -x : x;
}

/* The published xoshiro256** step, written out again independently of
 * sim_rng.c (Blackman & Vigna, prng.di.unimi.it/xoshiro256starstar.c). */
static uint64_t ref_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t ref_next(uint64_t s[4])
{
    const uint64_t result = ref_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return result;
}

static void test_known_state(void **state)
{
    (void)state;
    /* State {1,2,3,4}: values computed by hand / a separate Python
     * implementation of the reference algorithm. */
    const uint64_t s0[4] = {1, 2, 3, 4};
    sim_rng r;
    sim_rng_set_state(&r, s0);
    const uint64_t want[6] = {
        UINT64_C(11520),
        UINT64_C(0),
        UINT64_C(0x5a007080),
        UINT64_C(0x10e0000000009d80),
        UINT64_C(0x10e0b61ce1009d80),
        UINT64_C(0x0870021ce143ad00),
    };
    for (int i = 0; i < 6; i++)
        assert_true(sim_rng_u64(&r) == want[i]);

    /* And 10000 more steps agree with the reference step function. */
    uint64_t ref[4] = {UINT64_C(0x0123456789abcdef), UINT64_C(0xfedcba9876543210),
                       UINT64_C(0xdeadbeefcafebabe), UINT64_C(42)};
    sim_rng_set_state(&r, ref);
    for (int i = 0; i < 10000; i++)
        assert_true(sim_rng_u64(&r) == ref_next(ref));

    /* All-zero state is replaced (xoshiro would output zeros forever). */
    const uint64_t z[4] = {0, 0, 0, 0};
    sim_rng_set_state(&r, z);
    sim_rng r0;
    sim_rng_seed(&r0, 0);
    assert_memory_equal(r.s, r0.s, sizeof r.s);
}

static void test_splitmix_and_fnv(void **state)
{
    (void)state;
    /* SplitMix64 from 0: the widely published first outputs. */
    uint64_t x = 0;
    assert_true(sim_splitmix64(&x) == UINT64_C(0xe220a8397b1dcdaf));
    assert_true(sim_splitmix64(&x) == UINT64_C(0x6e789e6aa1b965f4));
    assert_true(sim_splitmix64(&x) == UINT64_C(0x06c45d188009454f));
    assert_true(sim_splitmix64(&x) == UINT64_C(0xf88bb8a8724c81ec));
    /* FNV-1a 64: the offset basis for "", and the published value of "a". */
    assert_true(sim_fnv1a64("") == UINT64_C(0xcbf29ce484222325));
    assert_true(sim_fnv1a64(NULL) == UINT64_C(0xcbf29ce484222325));
    assert_true(sim_fnv1a64("a") == UINT64_C(0xaf63dc4c8601ec8c));
    assert_true(sim_fnv1a64("scheduler") == UINT64_C(0xa3e66bbb9ba9c7fa));
}

static void test_golden_seed(void **state)
{
    (void)state;
    /* Pinned: seed 0 and seed 42 (also computed by a separate Python
     * implementation of SplitMix64 + xoshiro256**). */
    sim_rng r;
    sim_rng_seed(&r, 0);
    assert_true(sim_rng_u64(&r) == UINT64_C(0x99ec5f36cb75f2b4));
    assert_true(sim_rng_u64(&r) == UINT64_C(0xbf6e1f784956452a));
    assert_true(sim_rng_u64(&r) == UINT64_C(0x1a5f849d4933e6e0));
    sim_rng_seed(&r, 42);
    const uint64_t w42[5] = {UINT64_C(0x15780b2e0c2ec716), UINT64_C(0x6104d9866d113a7e),
                             UINT64_C(0xae17533239e499a1), UINT64_C(0xecb8ad4703b360a1),
                             UINT64_C(0xfde6dc7fe2ec5e64)};
    for (int i = 0; i < 5; i++)
        assert_true(sim_rng_u64(&r) == w42[i]);
    /* Named streams of seed 42. */
    sim_rng_stream(&r, 42, "scheduler");
    assert_true(sim_rng_u64(&r) == UINT64_C(0xa3a55efce0801c4b));
    assert_true(sim_rng_u64(&r) == UINT64_C(0x86e1416f38a20552));
    assert_true(sim_rng_u64(&r) == UINT64_C(0x647a94cf02d3b13c));
    sim_rng_stream(&r, 42, "worker-1");
    assert_true(sim_rng_u64(&r) == UINT64_C(0xbc23d03e61d7b98a));
    assert_true(sim_rng_u64(&r) == UINT64_C(0xd35b66b3fe120eaf));
    assert_true(sim_rng_u64(&r) == UINT64_C(0x716595b69758b850));
}

static void test_stream_independence(void **state)
{
    (void)state;
    /* Run 1: streams a and b, interleaved. Run 2: a, b and a new stream c
     * drawn heavily in between. a's and b's draws are the same. */
    sim_rng a1, b1, a2, b2, c2;
    sim_rng_stream(&a1, 7, "a");
    sim_rng_stream(&b1, 7, "b");
    sim_rng_stream(&a2, 7, "a");
    sim_rng_stream(&c2, 7, "c");
    sim_rng_stream(&b2, 7, "b");
    for (int i = 0; i < 1000; i++) {
        for (int k = 0; k < 3; k++)
            (void)sim_rng_u64(&c2);
        assert_true(sim_rng_u64(&a1) == sim_rng_u64(&a2));
        assert_true(sim_rng_u64(&b1) == sim_rng_u64(&b2));
    }
    /* Different names, different seeds: different streams. */
    sim_rng x, y;
    sim_rng_stream(&x, 7, "a");
    sim_rng_stream(&y, 7, "b");
    assert_true(sim_rng_u64(&x) != sim_rng_u64(&y));
    sim_rng_stream(&x, 7, "a");
    sim_rng_stream(&y, 8, "a");
    assert_true(sim_rng_u64(&x) != sim_rng_u64(&y));
}

static void test_below(void **state)
{
    (void)state;
    sim_rng r;
    sim_rng_seed(&r, 1);
    assert_true(sim_rng_below(&r, 0) == 0);
    assert_true(sim_rng_below(&r, 1) == 0);
    /* Range and rough uniformity: 60000 draws in 6 buckets. */
    unsigned counts[6] = {0};
    for (int i = 0; i < 60000; i++) {
        uint64_t v = sim_rng_below(&r, 6);
        assert_true(v < 6);
        counts[v]++;
    }
    for (int i = 0; i < 6; i++)
        assert_true(counts[i] > 9500 && counts[i] < 10500);
    /* A bound just over 2^63 (half of all draws rejected) stays in range. */
    uint64_t n = (UINT64_C(1) << 63) + 1;
    for (int i = 0; i < 100; i++)
        assert_true(sim_rng_below(&r, n) < n);
    /* range: inclusive, degenerate and full-width. */
    for (int i = 0; i < 1000; i++) {
        int64_t v = sim_rng_range(&r, -3, 3);
        assert_true(v >= -3 && v <= 3);
    }
    assert_true(sim_rng_range(&r, 5, 5) == 5);
    assert_true(sim_rng_range(&r, 5, 4) == 5);
    (void)sim_rng_range(&r, INT64_MIN, INT64_MAX);
}

static void test_double_and_bernoulli(void **state)
{
    (void)state;
    sim_rng r;
    sim_rng_seed(&r, 2);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = sim_rng_double(&r);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_true(sum / 100000 > 0.49 && sum / 100000 < 0.51);
    int hits = 0;
    for (int i = 0; i < 100000; i++)
        hits += sim_rng_bernoulli(&r, 0.3);
    assert_true(hits > 29000 && hits < 31000);
    /* p <= 0 and p >= 1 are exact but still consume one draw. */
    sim_rng a, b;
    sim_rng_seed(&a, 3);
    sim_rng_seed(&b, 3);
    assert_int_equal(sim_rng_bernoulli(&a, 0.0), 0);
    assert_int_equal(sim_rng_bernoulli(&a, 1.0), 1);
    volatile double zero = 0.0;
    assert_int_equal(sim_rng_bernoulli(&a, zero / zero), 0);
    (void)sim_rng_u64(&b);
    (void)sim_rng_u64(&b);
    (void)sim_rng_u64(&b);
    assert_true(sim_rng_u64(&a) == sim_rng_u64(&b));
}

static void test_distributions(void **state)
{
    (void)state;
    sim_rng r;
    sim_rng_seed(&r, 4);
    const int n = 200000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        double v = sim_rng_exponential(&r, 5.0);
        assert_true(v >= 0.0);
        s += v;
    }
    assert_true(s / n > 4.9 && s / n < 5.1);
    assert_true(sim_rng_exponential(&r, 0.0) == 0.0);

    s = 0;
    for (int i = 0; i < n; i++) {
        double v = sim_rng_normal(&r, 10.0, 2.0);
        s += v;
        s2 += v * v;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    assert_true(mean > 9.98 && mean < 10.02);
    assert_true(var > 3.9 && var < 4.1);

    /* Lognormal(mu 0, sigma 0.5): mean exp(0.125) = 1.1331. */
    s = 0;
    for (int i = 0; i < n; i++) {
        double v = sim_rng_lognormal(&r, 0.0, 0.5);
        assert_true(v > 0.0);
        s += v;
    }
    assert_true(s / n > 1.12 && s / n < 1.145);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov distance between the sorted sample v[0..n) and cdf. */
static double ks_distance(double *v, size_t n, double (*cdf)(double))
{
    qsort(v, n, sizeof *v, cmp_double);
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double f = cdf(v[i]);
        double lo = f - (double)i / (double)n, hi = (double)(i + 1) / (double)n - f;
        if (lo > d)
            d = lo;
        if (hi > d)
            d = hi;
    }
    return d;
}

static double normal_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static double exponential_cdf(double x)
{
    return x <= 0 ? 0 : -expm1(-x);
}

/* The ziggurat draws follow their distributions over the whole range and
 * in the tails beyond the base layer (normal: |z| > 3.6541528853610088,
 * exponential: e > 7.697117470131050), which take a separate path. */
static void test_ziggurat_shapes(void **state)
{
    (void)state;
    const size_t n = 1000000;
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    const double rn = 3.6541528853610088, re = 7.697117470131050;

    sim_rng r;
    sim_rng_seed(&r, 11);
    for (size_t i = 0; i < n; i++)
        v[i] = sim_rng_normal(&r, 0.0, 1.0);
    /* The 0.1 % critical value of the KS distance is 1.95 / sqrt(n). */
    assert_true(ks_distance(v, n, normal_cdf) < 1.95 / sqrt((double)n));
    sim_rng_seed(&r, 12);
    for (size_t i = 0; i < n; i++)
        v[i] = sim_rng_exponential(&r, 1.0);
    assert_true(ks_distance(v, n, exponential_cdf) < 1.95 / sqrt((double)n));
    free(v);

    /* The tails, over ten times as many draws: their mass and their mean
     * excess over R, each within 3 standard deviations. */
    const size_t m = 10 * n;
    size_t tail = 0;
    double excess = 0, excess2 = 0;
    for (size_t i = 0; i < m; i++) {
        double z = fabs_(sim_rng_normal(&r, 0.0, 1.0));
        if (z > rn) {
            tail++;
            excess += z - rn;
            excess2 += (z - rn) * (z - rn);
        }
    }
    /* P(|Z| > R) = erfc(R / sqrt 2) = 2.58e-4; mean excess phi(R) / Q(R) - R
     * = 0.2546 (Exp(1) / R instead, the tail without its rejection step,
     * would give 0.2737). */
    double p_tail = erfc(rn / sqrt(2.0));
    assert_true(fabs_((double)tail - p_tail * (double)m) < 3 * sqrt(p_tail * (double)m));
    double mean_excess = exp(-rn * rn / 2) / sqrt(2 * 3.14159265358979323846) / (p_tail / 2) - rn;
    double mean = excess / (double)tail, sd = sqrt(excess2 / (double)tail - mean * mean);
    assert_true(fabs_(mean - mean_excess) < 3 * sd / sqrt((double)tail));

    tail = 0;
    excess = 0;
    for (size_t i = 0; i < m; i++) {
        double e = sim_rng_exponential(&r, 1.0);
        if (e > re) {
            tail++;
            excess += e - re;
        }
    }
    /* P(E > R) = exp(-R) = 4.54e-4; the excess is Exp(1): mean 1, sd 1. */
    double pe = exp(-re);
    assert_true(fabs_((double)tail - pe * (double)m) < 3 * sqrt(pe * (double)m));
    assert_true(fabs_(excess / (double)tail - 1.0) < 3 / sqrt((double)tail));
}

static void test_same_seed_same_draws(void **state)
{
    (void)state;
    sim_rng a, b;
    sim_rng_stream(&a, 99, "x");
    sim_rng_stream(&b, 99, "x");
    for (int i = 0; i < 1000; i++) {
        assert_true(sim_rng_normal(&a, 0, 1) == sim_rng_normal(&b, 0, 1));
        assert_true(sim_rng_exponential(&a, 3) == sim_rng_exponential(&b, 3));
    }
    /* Pinned reals: the same bits on every IEEE-754 machine. */
    sim_rng_seed(&a, 0);
    double e = sim_rng_exponential(&a, 1000.0);
    double g = sim_rng_normal(&a, 0.0, 1.0);
    double l = sim_rng_lognormal(&a, 0.0, 1.0);
    char buf[96];
    snprintf(buf, sizeof buf, "%.17g %.17g %.17g", e, g, l);
    assert_string_equal(buf, GOLDEN_REALS);
}

static void test_math(void **state)
{
    (void)state;
    /* log against exact points and identities. */
    assert_true(sim_log(1.0) == 0.0);
    double ln2 = 0.69314718055994530942;
    assert_true(fabs_(sim_log(2.0) - ln2) < 1e-15);
    assert_true(fabs_(sim_log(0.5) + ln2) < 1e-15);
    assert_true(fabs_(sim_log(10.0) - 2.30258509299404568402) < 1e-14);
    assert_true(fabs_(sim_log(1e-300) + 690.77552789821370) < 1e-11);
    assert_true(fabs_(sim_log(4.9e-324) + 744.44007192138126) < 1e-10); /* subnormal */
    assert_true(sim_log(0.0) < -1e308);
    assert_true(sim_log(-1.0) != sim_log(-1.0)); /* NaN */
    /* exp */
    assert_true(sim_exp(0.0) == 1.0);
    assert_true(fabs_(sim_exp(1.0) - 2.71828182845904523536) < 1e-15);
    assert_true(fabs_(sim_exp(-1.0) - 0.36787944117144233) < 1e-16);
    assert_true(fabs_(sim_exp(100.0) / 2.6881171418161356e43 - 1) < 1e-14);
    assert_true(sim_exp(1000.0) > 1e308);
    assert_true(sim_exp(-1000.0) == 0.0);
    assert_true(sim_exp(-740.0) > 0.0); /* subnormal result */
    for (double x = -20; x < 20; x += 0.37)
        assert_true(fabs_(sim_log(sim_exp(x)) - x) < 1e-13);
    /* exp within a few ulp over the whole normal range: the reference is
     * exp(x) = exp(x/256)^256 in long double, whose error is far below a
     * double's ulp. */
    for (double x = -700; x < 700; x += 0.731) {
        long double t = 1.0L, b = 1.0L, y = (long double)x / 256;
        for (int k = 1; k < 40; k++) { /* Taylor series of exp(x/256) */
            b *= y / k;
            t += b;
        }
        for (int k = 0; k < 8; k++)
            t *= t;
        long double rel = ((long double)sim_exp(x) - t) / t;
        assert_true(rel < 1e-15L && rel > -1e-15L);
    }
    /* sqrt */
    assert_true(sim_sqrt(4.0) == 2.0);
    assert_true(sim_sqrt(0.0) == 0.0);
    assert_true(fabs_(sim_sqrt(2.0) - 1.41421356237309504880) < 1e-15);
    assert_true(fabs_(sim_sqrt(1e-310) / 1e-155 - 1) < 1e-14);
    assert_true(sim_sqrt(-1.0) != sim_sqrt(-1.0));
    for (double x = 0.001; x < 1e6; x *= 1.7) {
        double y = sim_sqrt(x);
        assert_true(fabs_(y * y / x - 1) < 1e-15);
    }
}

static uint64_t draw_through(const ref_rand *rr)
{
    return ref_rand_next(rr);
}

static void test_ref_adapter(void **state)
{
    (void)state;
    sim_rng a, b;
    sim_rng_seed(&a, 5);
    sim_rng_seed(&b, 5);
    ref_rand rr = sim_rng_as_ref(&a);
    for (int i = 0; i < 10; i++)
        assert_true(draw_through(&rr) == sim_rng_u64(&b));
    assert_true(ref_rand_below(&rr, 10) < 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_state),
        cmocka_unit_test(test_splitmix_and_fnv),
        cmocka_unit_test(test_golden_seed),
        cmocka_unit_test(test_stream_independence),
        cmocka_unit_test(test_below),
        cmocka_unit_test(test_double_and_bernoulli),
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_ziggurat_shapes),
        cmocka_unit_test(test_same_seed_same_draws),
        cmocka_unit_test(test_math),
        cmocka_unit_test(test_ref_adapter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
