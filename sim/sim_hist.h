/* Latency percentiles in bounded memory whatever the run's length.
 *
 * The first SIM_HIST_EXACT values are also kept as they are, and while
 * there are no more than that the percentiles are exact. Past that the
 * samples are dropped and the percentiles come from the histogram.
 *
 * Log-linear buckets: values below 256 have a bucket each; above, every
 * power of two [2^e, 2^(e+1)) is cut into 256 equal buckets, so a bucket
 * is at most 1/256 (0.4%) of its values wide. The table is fixed
 * (SIM_HIST_BUCKETS counters, 112 KiB), allocated at the first value.
 *
 * A percentile is the k-th smallest value for k = round(p/100 * (n-1))
 * (0-based nearest rank). From the histogram it is reported as the top of
 * the k-th value's bucket clamped to the largest value seen: never below
 * the exact value and at most 0.4% above it. */
#ifndef SIM_HIST_H
#define SIM_HIST_H

#include <stddef.h>
#include <stdint.h>

#define SIM_HIST_SUB_BITS 8
#define SIM_HIST_BUCKETS ((64 - SIM_HIST_SUB_BITS) << SIM_HIST_SUB_BITS)
#define SIM_HIST_EXACT 65536u

typedef struct {
    uint64_t *counts; /* SIM_HIST_BUCKETS counters; NULL until the first value */
    uint64_t n;
    int64_t min, max;
    int64_t *samples; /* the values while n <= SIM_HIST_EXACT, else NULL */
    size_t cap_samples;
    int sorted;       /* samples are in order */
} sim_hist;

void sim_hist_init(sim_hist *h);
void sim_hist_free(sim_hist *h);

/* Counts v (a negative v counts as 0). CAP_OK or CAP_ENOMEM. */
int sim_hist_add(sim_hist *h, int64_t v);

/* The p-th percentile (p is clamped to 0..100) as described above; 0 when
 * empty. May sort the kept samples. */
int64_t sim_hist_percentile(sim_hist *h, int p);

#endif
