/* Binary search by string key. */
#include "ref_sorted.h"

#include <string.h>
#include <strings.h>

int ref_sorted_find(const void *base, size_t n, ref_sorted_key_fn key_of, const char *key,
                    int case_fold, size_t *pos)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k = key_of(base, mid);
        int c = case_fold ? strcasecmp(k, key) : strcmp(k, key);
        if (c == 0) {
            *pos = mid;
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return 0;
}
