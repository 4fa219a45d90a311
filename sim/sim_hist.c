/* Log-linear latency histogram: see sim_hist.h. */
#include "sim_hist.h"

#include <stdlib.h>
#include <string.h>

#include "cap_error.h"

#define SUB ((uint64_t)1 << SIM_HIST_SUB_BITS)

void sim_hist_init(sim_hist *h)
{
    memset(h, 0, sizeof *h);
}

void sim_hist_free(sim_hist *h)
{
    if (!h)
        return;
    free(h->counts);
    free(h->samples);
    sim_hist_init(h);
}

static int top_bit(uint64_t v) /* floor(log2 v), v > 0 */
{
    return 63 - __builtin_clzll(v);
}

/* Values below SUB are their own bucket. From 2^e up (e >= SUB_BITS) the
 * bucket is the value's top SUB_BITS + 1 bits, placed after the buckets
 * of the smaller powers of two. */
static size_t bucket_of(uint64_t v)
{
    if (v < SUB)
        return (size_t)v;
    int shift = top_bit(v) - SIM_HIST_SUB_BITS;
    return (size_t)((uint64_t)(shift + 1) * SUB + (v >> shift) - SUB);
}

/* The largest value that falls in bucket i. */
static uint64_t bucket_top(size_t i)
{
    if (i < SUB)
        return i;
    int shift = (int)(i / SUB) - 1;
    uint64_t lead = SUB + i % SUB; /* the top SUB_BITS + 1 bits */
    return ((lead + 1) << shift) - 1;
}

int sim_hist_add(sim_hist *h, int64_t v)
{
    if (v < 0)
        v = 0;
    if (!h->counts && !(h->counts = calloc(SIM_HIST_BUCKETS, sizeof *h->counts)))
        return CAP_ENOMEM;
    if (h->n < SIM_HIST_EXACT) {
        if (h->n == h->cap_samples) {
            size_t cap = h->cap_samples ? 2 * h->cap_samples : 256;
            int64_t *s = realloc(h->samples, cap * sizeof *s);
            if (!s)
                return CAP_ENOMEM;
            h->samples = s;
            h->cap_samples = cap;
        }
        h->samples[h->n] = v;
        h->sorted = 0;
    } else if (h->samples) { /* past the exact range: the buckets alone */
        free(h->samples);
        h->samples = NULL;
        h->cap_samples = 0;
    }
    h->counts[bucket_of((uint64_t)v)]++;
    if (!h->n || v < h->min)
        h->min = v;
    if (!h->n || v > h->max)
        h->max = v;
    h->n++;
    return CAP_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int64_t sim_hist_percentile(sim_hist *h, int p)
{
    if (!h || !h->n)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    uint64_t k = ((uint64_t)p * (h->n - 1) + 50) / 100; /* 0-based rank */
    if (h->samples) {
        if (!h->sorted)
            qsort(h->samples, (size_t)h->n, sizeof *h->samples, cmp_i64);
        h->sorted = 1;
        return h->samples[k];
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < SIM_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > k) {
            uint64_t top = bucket_top(i);
            if (top > (uint64_t)h->max)
                return h->max;
            return top < (uint64_t)h->min ? h->min : (int64_t)top;
        }
    }
    return h->max; /* not reached: the counts add up to n */
}
