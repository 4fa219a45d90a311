/* The simulator's seeded random source.
 *
 * Generator: xoshiro256** 1.0 (David Blackman and Sebastiano Vigna,
 * "Scrambled linear pseudorandom number generators", ACM TOMS 2021; the
 * algorithm published at prng.di.unimi.it). 256 bits of state, period
 * 2^256 - 1, every output a 64-bit word.
 *
 * Seeding: the four state words are four successive outputs of SplitMix64
 * (Steele, Lea, Flood, "Fast splittable pseudorandom number generators",
 * OOPSLA 2014), as the xoshiro authors recommend.
 *
 *   sim_rng_seed(r, seed)            SplitMix64 started at `seed`
 *   sim_rng_stream(r, seed, name)    SplitMix64 started at
 *                                    mix64(seed) XOR fnv1a64(name)
 *
 * mix64 is the SplitMix64 output function (a bijection of 64-bit words)
 * and fnv1a64 the 64-bit FNV-1a hash of the name's bytes (offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3). A stream depends on nothing
 * but (seed, name): creating, drawing from or removing any other stream
 * never changes its draws, so adding an actor to a scenario leaves every
 * other actor's randomness as it was.
 *
 * Arithmetic. The integer draws are pure 64-bit integer arithmetic. The
 * real-valued draws use IEEE-754 binary64 +, -, *, / and square root only
 * (no libm): the logarithm and exponential they need (and the ziggurat
 * tables built from them) are computed here by fixed series with a fixed
 * number of steps, so the same seed gives the
 * same bits on every machine whose C compiler does IEEE double arithmetic
 * without excess precision or contraction (x86-64 SSE2, AArch64; GCC with
 * -std=c11 does not contract a*b+c into an FMA). They are accurate to a few
 * ulp, which is plenty for shaping distributions; event ordering never
 * depends on them beyond the integer nanoseconds they are rounded to, and
 * ties are broken by sequence numbers (sim_queue.h), not by reals.
 *
 * A sim_rng is a plain value: copy it to fork a stream, no allocation, no
 * global state. */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "ref_effect.h"

typedef struct {
    uint64_t s[4];
} sim_rng;

/* One SplitMix64 step: advances *state and returns the next output. */
uint64_t sim_splitmix64(uint64_t *state);

/* The SplitMix64 output function alone (a bijection). */
uint64_t sim_mix64(uint64_t x);

/* 64-bit FNV-1a of a NUL-terminated string (NULL hashes as ""). */
uint64_t sim_fnv1a64(const char *s);

/* Seeds r from a 64-bit seed (see above). */
void sim_rng_seed(sim_rng *r, uint64_t seed);

/* Seeds r as the stream `name` of `seed` (see above). NULL name is "". */
void sim_rng_stream(sim_rng *r, uint64_t seed, const char *name);

/* Sets the raw state (for cross-checks against the published algorithm).
 * An all-zero state is the one state xoshiro cannot leave; it is replaced
 * by the state sim_rng_seed(r, 0) gives. */
void sim_rng_set_state(sim_rng *r, const uint64_t s[4]);

/* The next 64 random bits. */
uint64_t sim_rng_u64(sim_rng *r);

/* A uniform integer in [0, n), without modulo bias (draws that fall in the
 * top partial block of 2^64 are redrawn). 0 when n is 0. */
uint64_t sim_rng_below(sim_rng *r, uint64_t n);

/* A uniform integer in [lo, hi] (inclusive); lo when hi <= lo. */
int64_t sim_rng_range(sim_rng *r, int64_t lo, int64_t hi);

/* A uniform double in [0, 1): the top 53 bits of one draw times 2^-53. */
double sim_rng_double(sim_rng *r);

/* 1 with probability p, else 0. p <= 0 never draws-true and p >= 1 always
 * (both still consume one draw, so a probability change does not shift
 * the stream). NaN counts as 0. */
int sim_rng_bernoulli(sim_rng *r, double p);

/* Exponential with the given mean (mean <= 0 gives 0, after the same
 * draws): mean times a standard exponential drawn by the ziggurat method
 * (sim_rng.c). Usually one draw; a draw outside the ziggurat's rectangles
 * (about 1 in 100) takes more. */
double sim_rng_exponential(sim_rng *r, double mean);

/* Normal(mean, stddev): mean + stddev times a standard normal drawn by the
 * ziggurat method, as above. */
double sim_rng_normal(sim_rng *r, double mean, double stddev);

/* Lognormal: exp(Normal(mu, sigma)). */
double sim_rng_lognormal(sim_rng *r, double mu, double sigma);

/* A ref_rand that draws from r (borrowed: r must outlive it). */
ref_rand sim_rng_as_ref(sim_rng *r);

/* The deterministic math the draws use (exposed for tests and for other
 * sim_ modules that shape distributions). sim_log: x <= 0 gives -inf,
 * NaN/inf pass through. sim_exp: over/underflow gives inf/0. sim_sqrt:
 * x < 0 gives NaN. */
double sim_log(double x);
double sim_exp(double x);
double sim_sqrt(double x);

#endif
