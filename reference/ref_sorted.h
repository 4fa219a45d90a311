/* Binary search over the sorted arrays the reference components keep
 * instead of hash tables (so no iteration order can depend on hashing or
 * addresses). Each array is sorted by a string key; key_of reads the key of
 * element i, whatever the element type. */
#ifndef REF_SORTED_H
#define REF_SORTED_H

#include <stddef.h>

typedef const char *(*ref_sorted_key_fn)(const void *base, size_t i);

/* Looks key up among n elements sorted by strcmp (by strcasecmp when
 * case_fold is set, which needs keys stored in one case). Returns 1 with
 * *pos its index when found; else 0 with *pos where it would be inserted. */
int ref_sorted_find(const void *base, size_t n, ref_sorted_key_fn key_of, const char *key,
                    int case_fold, size_t *pos);

#endif
