/* A compact index from string ids to record numbers, for a caller that
 * keeps its records in numbered storage and the id in each record.
 *
 * Each cell is 8 bytes: 32 bits of the id's hash and the record's 32-bit
 * number (plus one; 0 marks an empty cell). The index never holds the id
 * itself: a lookup walks the cells whose hash bits agree with the id's
 * and hands the caller their record numbers, and the caller compares the
 * id on the record it is about to read anyway. A third of the size of a
 * map that keeps the key in its slot, so more of it stays in cache, and
 * no key copies.
 *
 * Open addressing with linear probing, the load kept at most 3/4; a
 * delete shifts the following cells back (no tombstones). A cell's home
 * is its hash bits masked by the table's size, so the table never holds
 * more than 2^31 cells. Nothing iterates the table: no hash order can
 * reach a caller's output.
 *
 * Usage:
 *     uint64_t h = ref_idindex_hash(id, n);
 *     ref_idindex_walk w;
 *     for (uint32_t r = ref_idindex_first(x, h, &w); r != REF_IDINDEX_NONE;
 *          r = ref_idindex_next(&w))
 *         if (record r holds id) ...
 * The caller keeps ids unique: put adds a cell even when one with the
 * same id is there, and del removes the cell of one record number. */
#ifndef REF_IDINDEX_H
#define REF_IDINDEX_H

#include <stddef.h>
#include <stdint.h>

/* No record (a walk's end). */
#define REF_IDINDEX_NONE UINT32_MAX

typedef struct {
    uint64_t *cells; /* cap cells: hash bits << 32 | (record + 1); 0 = empty */
    uint32_t cap;    /* a power of two, or 0 before the first put */
    uint32_t len;    /* cells in use */
} ref_idindex;

/* A lookup in progress (ref_idindex_first / ref_idindex_next). */
typedef struct {
    const uint64_t *cells;
    uint32_t mask, at, tag;
} ref_idindex_walk;

/* An empty index (no allocation until the first put). */
void ref_idindex_init(ref_idindex *x);

/* Frees the table; the index may be initialised again. NULL is accepted. */
void ref_idindex_free(ref_idindex *x);

/* The hash of the n bytes at id, as the index expects it. */
uint64_t ref_idindex_hash(const char *id, size_t n);

/* Adds record rec (< REF_IDINDEX_NONE) under hash. CAP_OK, CAP_EINVAL
 * for a rec out of range, CAP_ENOMEM (the index is unchanged). */
int ref_idindex_put(ref_idindex *x, uint64_t hash, uint32_t rec);

/* Removes the cell of record rec under hash: 1 when it was there, 0 when
 * not. */
int ref_idindex_del(ref_idindex *x, uint64_t hash, uint32_t rec);

/* Cells in use. */
static inline uint32_t ref_idindex_len(const ref_idindex *x) { return x->len; }

/* Asks the cache for the cell a lookup of hash reads first (a hint: no
 * effect on the result), so a lookup made a little later finds it there. */
static inline void ref_idindex_prefetch(const ref_idindex *x, uint64_t hash)
{
    if (x->cap)
        __builtin_prefetch(&x->cells[(uint32_t)(hash >> 32) & (x->cap - 1)]);
}

/* The next record whose cell's hash bits agree with the walk's, or
 * REF_IDINDEX_NONE at the end of the probe run. */
static inline uint32_t ref_idindex_next(ref_idindex_walk *w)
{
    for (;;) {
        uint64_t c = w->cells[w->at];
        if (!c)
            return REF_IDINDEX_NONE;
        w->at = (w->at + 1) & w->mask;
        if ((uint32_t)(c >> 32) == w->tag)
            return (uint32_t)c - 1;
    }
}

/* Starts a lookup of hash: its first candidate record, or
 * REF_IDINDEX_NONE. */
static inline uint32_t ref_idindex_first(const ref_idindex *x, uint64_t hash, ref_idindex_walk *w)
{
    static const uint64_t empty = 0;
    w->tag = (uint32_t)(hash >> 32);
    if (!x->cap) {
        w->cells = &empty;
        w->mask = 0;
        w->at = 0;
    } else {
        w->cells = x->cells;
        w->mask = x->cap - 1;
        w->at = w->tag & w->mask;
    }
    return ref_idindex_next(w);
}

#endif
