/* Compact id index: see ref_idindex.h. */
#include "ref_idindex.h"

#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "ref_mix.h"

/* The largest table: a cell's home is its 32 hash bits masked. */
#define CAP_MAX (UINT32_C(1) << 31)

void ref_idindex_init(ref_idindex *x)
{
    x->cells = NULL;
    x->cap = 0;
    x->len = 0;
}

void ref_idindex_free(ref_idindex *x)
{
    if (!x)
        return;
    free(x->cells);
    ref_idindex_init(x);
}

/* A word at a time, each folded in by a multiply, then one full mix. A
 * last part word is read as the id's last 8 bytes (overlapping the word
 * before: a read within the id); an id under 8 bytes is read a byte at a
 * time. Only where a cell sits depends on it (nothing iterates the
 * table), so the words' byte order is of no consequence. */
uint64_t ref_idindex_hash(const char *id, size_t n)
{
    const uint64_t k = UINT64_C(0x9e3779b97f4a7c15);
    uint64_t h = (n ^ UINT64_C(0x2545f4914f6cdd1d)) * k, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, id + i, 8);
        h = (h ^ w) * k;
        h ^= h >> 32;
    }
    if (i < n) {
        if (n >= 8) {
            memcpy(&w, id + n - 8, 8);
        } else {
            w = 0;
            for (size_t b = 0; b < n; b++)
                w |= (uint64_t)(unsigned char)id[b] << (8 * b);
        }
        h = (h ^ w) * k;
    }
    return ref_mix64(h);
}

static uint32_t home_of(uint64_t cell, uint32_t mask) { return (uint32_t)(cell >> 32) & mask; }

/* Places a cell in a table known to have room and not to hold it. */
static void place(uint64_t *cells, uint32_t mask, uint64_t cell)
{
    uint32_t at = home_of(cell, mask);
    while (cells[at])
        at = (at + 1) & mask;
    cells[at] = cell;
}

static int grow(ref_idindex *x)
{
    if (x->cap >= CAP_MAX)
        return CAP_ENOMEM;
    uint32_t nc = x->cap ? x->cap * 2 : 64;
    uint64_t *cells = calloc(nc, sizeof *cells);
    if (!cells)
        return CAP_ENOMEM;
    for (uint32_t i = 0; i < x->cap; i++)
        if (x->cells[i])
            place(cells, nc - 1, x->cells[i]);
    free(x->cells);
    x->cells = cells;
    x->cap = nc;
    return CAP_OK;
}

int ref_idindex_put(ref_idindex *x, uint64_t hash, uint32_t rec)
{
    if (!x || rec >= REF_IDINDEX_NONE)
        return CAP_EINVAL;
    /* Keep the load at most 3/4: a probe run rarely leaves its cache line. */
    if (((uint64_t)x->len + 1) * 4 > (uint64_t)x->cap * 3) {
        int rc = grow(x);
        if (rc)
            return rc;
    }
    place(x->cells, x->cap - 1, (hash >> 32) << 32 | ((uint64_t)rec + 1));
    x->len++;
    return CAP_OK;
}

int ref_idindex_del(ref_idindex *x, uint64_t hash, uint32_t rec)
{
    if (!x || !x->cap || rec >= REF_IDINDEX_NONE)
        return 0;
    uint32_t mask = x->cap - 1;
    uint64_t want = (hash >> 32) << 32 | ((uint64_t)rec + 1);
    uint32_t at = home_of(want, mask);
    while (x->cells[at] != want) {
        if (!x->cells[at])
            return 0;
        at = (at + 1) & mask;
    }
    /* Backward shift: a later cell of the run moves into the hole unless
     * its home lies cyclically after the hole (up to the cell itself). */
    uint32_t hole = at;
    for (uint32_t i = (hole + 1) & mask; x->cells[i]; i = (i + 1) & mask) {
        uint32_t h = home_of(x->cells[i], mask);
        if (((i - h) & mask) >= ((i - hole) & mask)) {
            x->cells[hole] = x->cells[i];
            hole = i;
        }
    }
    x->cells[hole] = 0;
    x->len--;
    return 1;
}
