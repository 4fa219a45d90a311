/* xoshiro256** seeded by SplitMix64, named streams, distributions. See
 * sim_rng.h for the algorithms and the arithmetic this file relies on. */
#include "sim_rng.h"

#include <pthread.h>
#include <math.h> /* NAN, INFINITY, isnan, isinf; sqrt (correctly rounded by IEEE 754) */
#include <string.h>

uint64_t sim_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

uint64_t sim_splitmix64(uint64_t *state)
{
    *state += UINT64_C(0x9E3779B97F4A7C15);
    return sim_mix64(*state);
}

uint64_t sim_fnv1a64(const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    if (s)
        for (; *s; s++) {
            h ^= (uint64_t)(unsigned char)*s;
            h *= UINT64_C(0x100000001b3);
        }
    return h;
}

static void seed_from_splitmix(sim_rng *r, uint64_t x)
{
    /* Four distinct SplitMix64 inputs give four distinct outputs, so at
     * most one word is zero and the state is never all zero. */
    for (int i = 0; i < 4; i++)
        r->s[i] = sim_splitmix64(&x);
}

void sim_rng_seed(sim_rng *r, uint64_t seed)
{
    seed_from_splitmix(r, seed);
}

void sim_rng_stream(sim_rng *r, uint64_t seed, const char *name)
{
    seed_from_splitmix(r, sim_mix64(seed) ^ sim_fnv1a64(name));
}

void sim_rng_set_state(sim_rng *r, const uint64_t s[4])
{
    if ((s[0] | s[1] | s[2] | s[3]) == 0) {
        sim_rng_seed(r, 0);
        return;
    }
    memcpy(r->s, s, sizeof r->s);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_u64(sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sim_rng_below(sim_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* 2^64 mod n values at the bottom would favour low residues; the
     * classic fix: accept v only when v >= (2^64 - n) mod n. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t v = sim_rng_u64(r);
        if (v >= threshold)
            return v % n;
    }
}

int64_t sim_rng_range(sim_rng *r, int64_t lo, int64_t hi)
{
    if (hi <= lo)
        return lo;
    uint64_t span = (uint64_t)hi - (uint64_t)lo; /* hi - lo, no overflow */
    uint64_t off = span == UINT64_MAX ? sim_rng_u64(r) : sim_rng_below(r, span + 1);
    return (int64_t)((uint64_t)lo + off);
}

double sim_rng_double(sim_rng *r)
{
    return (double)(sim_rng_u64(r) >> 11) * 0x1.0p-53;
}

int sim_rng_bernoulli(sim_rng *r, double p)
{
    double u = sim_rng_double(r);
    if (isnan(p) || p <= 0.0)
        return 0;
    if (p >= 1.0)
        return 1;
    return u < p;
}

/* ---- deterministic elementary functions (binary64 + - * / only) ---- */

/* ln 2 split so that k * LN2_HI is exact for |k| < 2^11 (fdlibm's split). */
static const double LN2_HI = 6.93147180369123816490e-01;
static const double LN2_LO = 1.90821492927058770002e-10;
static const double INV_LN2 = 1.44269504088896338700e+00;
static const double SQRT2 = 1.41421356237309514547e+00;

static double pow2i(int n) /* 2^n for n in [-1022, 1023] */
{
    uint64_t bits = (uint64_t)(n + 1023) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

double sim_log(double x)
{
    if (isnan(x))
        return x;
    if (x < 0.0)
        return NAN;
    if (x == 0.0)
        return -INFINITY;
    if (isinf(x))
        return x;
    int adj = 0;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    if (((bits >> 52) & 0x7ff) == 0) { /* subnormal: scale into range */
        x *= 0x1.0p54;
        memcpy(&bits, &x, sizeof bits);
        adj = -54;
    }
    int e = (int)((bits >> 52) & 0x7ff) - 1023 + adj;
    bits = (bits & UINT64_C(0x000FFFFFFFFFFFFF)) | UINT64_C(0x3FF0000000000000);
    double m;
    memcpy(&m, &bits, sizeof m); /* m in [1, 2) */
    if (m > SQRT2) {
        m *= 0.5;
        e++;
    }
    /* ln m = 2 atanh(z), z = (m-1)/(m+1), |z| <= 0.1716: the odd series
     * 2 (z + z^3/3 + ... + z^31/31) is below 1e-25 after its last term.
     * The coefficients 1/(2k+1) are correctly rounded constants. */
    static const double inv_odd[16] = {
        1.0 / 1,  1.0 / 3,  1.0 / 5,  1.0 / 7,  1.0 / 9,  1.0 / 11, 1.0 / 13, 1.0 / 15,
        1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23, 1.0 / 25, 1.0 / 27, 1.0 / 29, 1.0 / 31};
    double z = (m - 1.0) / (m + 1.0);
    double z2 = z * z;
    double s = 0.0;
    for (int k = 15; k >= 0; k--)
        s = s * z2 + inv_odd[k];
    double de = (double)e;
    return de * LN2_HI + (2.0 * z * s + de * LN2_LO);
}

double sim_exp(double x)
{
    if (isnan(x))
        return x;
    if (x > 709.782712893383973096)
        return INFINITY;
    if (x < -745.133219101941108420)
        return 0.0;
    double kd = x * INV_LN2;
    int k = (int)(kd + (kd >= 0.0 ? 0.5 : -0.5));
    double r = (x - (double)k * LN2_HI) - (double)k * LN2_LO; /* |r| <= 0.35 */
    /* The Taylor polynomial to r^14/14! in Horner form: the first term
     * left out is below 2^-62 for |r| <= 0.35. Multiplications and
     * additions only; the coefficients 1/n! are correctly rounded
     * constants. */
    static const double inv_fact[15] = {1.0,
                                        1.0,
                                        1.0 / 2,
                                        1.0 / 6,
                                        1.0 / 24,
                                        1.0 / 120,
                                        1.0 / 720,
                                        1.0 / 5040,
                                        1.0 / 40320,
                                        1.0 / 362880,
                                        1.0 / 3628800,
                                        1.0 / 39916800,
                                        1.0 / 479001600,
                                        1.0 / 6227020800.0,
                                        1.0 / 87178291200.0};
    double s = inv_fact[14];
    for (int i = 13; i >= 0; i--)
        s = s * r + inv_fact[i];
    if (k > 1023)
        return s * pow2i(1023) * pow2i(k - 1023);
    if (k < -1022)
        return s * pow2i(-1022) * pow2i(k + 1022);
    return s * pow2i(k);
}

double sim_sqrt(double x)
{
    if (isnan(x) || x == 0.0 || isinf(x))
        return x < 0.0 && isinf(x) ? NAN : x;
    if (x < 0.0)
        return NAN;
    /* IEEE 754 requires the square root to be correctly rounded, like + - *
     * and /, so the hardware's answer is the same on every machine. */
    return sqrt(x);
}

/* ---- ziggurat draws (Marsaglia and Tsang, "The Ziggurat Method for
 * Generating Random Variables", J. Stat. Software 5(8), 2000) ----
 *
 * The area under a decreasing density f on [0, inf) is covered by ZIG_N
 * layers of equal area V: layer 0 is the rectangle [0, R] x [0, f(R)]
 * plus the tail beyond R; layer i >= 1 is the rectangle [0, x[i]] x
 * [f(x[i]), f(x[i+1])], with x[1] = R > x[2] > ... > x[ZIG_N] = 0 and
 * x[0] = V / f(R) (the width that gives layer 0 area V as a rectangle).
 * A draw picks a layer and a point u * x[i] in its width: when the point
 * lies left of x[i+1] it is under the curve whatever its height (about 99%
 * of draws: one 64-bit word, two table reads, a multiplication); otherwise
 * a height is drawn and compared with f, or, in layer 0, the tail is
 * sampled. R and V solve the equal-area conditions for 256 layers (to 20
 * digits); the tables are built from them once, with sim_exp, sim_log and
 * sim_sqrt, so they are the same bits on every machine.
 *
 * One word gives the layer (its low 8 bits), the sign (bit 8, normal only)
 * and u (its top 53 bits), three disjoint sets of bits. */
#define ZIG_N 256
static const double ZIG_NORMAL_R = 3.6541528853610087716;
static const double ZIG_NORMAL_V = 4.9286732339746553474e-3;
static const double ZIG_EXP_R = 7.6971174701310497140;
static const double ZIG_EXP_V = 3.9496598225815572200e-3;

typedef struct {
    double x[ZIG_N + 1]; /* layer widths, x[ZIG_N] = 0 */
    double f[ZIG_N + 1]; /* f(x[i]) */
} zig_table;

static zig_table zig_normal, zig_expo;
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static double normal_f(double x)
{
    return sim_exp(-0.5 * x * x);
}

static double normal_f_inv(double y)
{
    return sim_sqrt(-2.0 * sim_log(y));
}

static double expo_f(double x)
{
    return sim_exp(-x);
}

static double expo_f_inv(double y)
{
    return -sim_log(y);
}

static void zig_build(zig_table *t, double R, double V, double (*f)(double),
                      double (*f_inv)(double))
{
    t->x[0] = V / f(R);
    t->x[1] = R;
    for (int i = 1; i < ZIG_N - 1; i++)
        t->x[i + 1] = f_inv(V / t->x[i] + f(t->x[i]));
    t->x[ZIG_N] = 0.0;
    for (int i = 0; i <= ZIG_N; i++)
        t->f[i] = f(t->x[i]);
}

static void zig_build_all(void)
{
    zig_build(&zig_normal, ZIG_NORMAL_R, ZIG_NORMAL_V, normal_f, normal_f_inv);
    zig_build(&zig_expo, ZIG_EXP_R, ZIG_EXP_V, expo_f, expo_f_inv);
}

/* 1 - U: uniform in (0, 1], safe to take the logarithm of. */
static double open_unit(sim_rng *r)
{
    return 1.0 - sim_rng_double(r);
}

/* The exponential's tail beyond R: memoryless, so R plus a fresh Exp(1). */
static double expo_tail(sim_rng *r)
{
    return ZIG_EXP_R - sim_log(open_unit(r));
}

/* The normal's tail beyond R (Marsaglia 1964). */
static double normal_tail(sim_rng *r)
{
    double a, b;
    do {
        a = -sim_log(open_unit(r)) / ZIG_NORMAL_R;
        b = -sim_log(open_unit(r));
    } while (b + b < a * a);
    return ZIG_NORMAL_R + a;
}

/* One draw from the density f of table t (tail samples beyond R); *negative
 * is bit 8 of the word that gave the value (the normal's sign). */
static double zig_draw(sim_rng *r, const zig_table *t, double (*f)(double),
                       double (*tail)(sim_rng *), int *negative)
{
    (void)pthread_once(&zig_once, zig_build_all);
    for (;;) {
        uint64_t v = sim_rng_u64(r);
        unsigned i = (unsigned)(v & (ZIG_N - 1));
        *negative = (v & ZIG_N) != 0;
        double x = (double)(v >> 11) * 0x1.0p-53 * t->x[i];
        if (x < t->x[i + 1])
            return x;
        if (i == 0)
            return tail(r);
        double y = t->f[i] + sim_rng_double(r) * (t->f[i + 1] - t->f[i]);
        if (y < f(x))
            return x;
    }
}

double sim_rng_exponential(sim_rng *r, double mean)
{
    int unused;
    double e = zig_draw(r, &zig_expo, expo_f, expo_tail, &unused); /* whatever the mean */
    return mean > 0.0 ? mean * e : 0.0;
}

double sim_rng_normal(sim_rng *r, double mean, double stddev)
{
    int negative;
    double z = zig_draw(r, &zig_normal, normal_f, normal_tail, &negative);
    return mean + stddev * (negative ? -z : z);
}

double sim_rng_lognormal(sim_rng *r, double mu, double sigma)
{
    return sim_exp(sim_rng_normal(r, mu, sigma));
}

static uint64_t ref_adapter(void *ctx)
{
    return sim_rng_u64(ctx);
}

ref_rand sim_rng_as_ref(sim_rng *r)
{
    ref_rand rr = {ref_adapter, r};
    return rr;
}
