/* An integer-keyed map for exact lookups: uint64 key -> caller's pointer.
 *
 * The same shape as ref_strmap (open addressing, linear probing, load
 * under 1/2, backward-shift delete with no tombstones) for tables whose
 * natural key is a number (a job's admission sequence, an actor's timer
 * id): no key copy to allocate, no string to hash or compare, and a slot
 * is 16 bytes. Keys are spread by a 64-bit finaliser before probing, so
 * sequential keys do not cluster. Like ref_strmap it has no iteration, so
 * no table order can reach a caller's output.
 *
 * Values are borrowed (never freed or dereferenced) and may not be NULL:
 * NULL is what a lookup of a missing key returns. */
#ifndef REF_U64MAP_H
#define REF_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t key;
    void *value; /* NULL = empty slot */
} ref_u64map_slot;

typedef struct {
    ref_u64map_slot *slots; /* cap slots */
    size_t cap;             /* a power of two, or 0 before the first insert */
    size_t len;             /* live entries */
} ref_u64map;

/* An empty map (no allocation until the first put). */
void ref_u64map_init(ref_u64map *m);

/* Frees the table; values are untouched. The map may be initialised
 * again. NULL is accepted. */
void ref_u64map_free(ref_u64map *m);

/* The value stored under key, or NULL. */
void *ref_u64map_get(const ref_u64map *m, uint64_t key);

/* Stores value under key (replacing an earlier value). CAP_OK, CAP_EINVAL
 * for a NULL map or value, CAP_ENOMEM (the map is unchanged). */
int ref_u64map_put(ref_u64map *m, uint64_t key, void *value);

/* Removes key. 1 when it was there, 0 when not. */
int ref_u64map_del(ref_u64map *m, uint64_t key);

/* Live entries. */
size_t ref_u64map_len(const ref_u64map *m);

#endif
