/* Integer-keyed exact-lookup map: see ref_u64map.h. */
#include "ref_u64map.h"

#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "ref_mix.h"

void ref_u64map_init(ref_u64map *m)
{
    memset(m, 0, sizeof *m);
}

void ref_u64map_free(ref_u64map *m)
{
    if (!m)
        return;
    free(m->slots);
    ref_u64map_init(m);
}

/* The slot holding key, or (size_t)-1. */
static size_t find_slot(const ref_u64map *m, uint64_t key)
{
    if (!m->cap)
        return (size_t)-1;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)ref_mix64(key) & mask;; i = (i + 1) & mask) {
        const ref_u64map_slot *s = &m->slots[i];
        if (!s->value)
            return (size_t)-1;
        if (s->key == key)
            return i;
    }
}

void *ref_u64map_get(const ref_u64map *m, uint64_t key)
{
    if (!m)
        return NULL;
    size_t i = find_slot(m, key);
    return i == (size_t)-1 ? NULL : m->slots[i].value;
}

/* The first empty slot of key's probe run in a table known to have one. */
static size_t free_slot(const ref_u64map_slot *slots, size_t cap, uint64_t key)
{
    size_t mask = cap - 1, i = (size_t)ref_mix64(key) & mask;
    while (slots[i].value)
        i = (i + 1) & mask;
    return i;
}

static int grow(ref_u64map *m)
{
    size_t nc = m->cap ? m->cap * 2 : 16;
    ref_u64map_slot *slots = calloc(nc, sizeof *slots);
    if (!slots)
        return CAP_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].value)
            slots[free_slot(slots, nc, m->slots[i].key)] = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = nc;
    return CAP_OK;
}

int ref_u64map_put(ref_u64map *m, uint64_t key, void *value)
{
    if (!m || !value)
        return CAP_EINVAL;
    size_t i = find_slot(m, key);
    if (i != (size_t)-1) {
        m->slots[i].value = value;
        return CAP_OK;
    }
    if ((m->len + 1) * 2 > m->cap) { /* keep the load under 1/2 */
        int rc = grow(m);
        if (rc)
            return rc;
    }
    m->slots[free_slot(m->slots, m->cap, key)] = (ref_u64map_slot){key, value};
    m->len++;
    return CAP_OK;
}

int ref_u64map_del(ref_u64map *m, uint64_t key)
{
    size_t i = m ? find_slot(m, key) : (size_t)-1;
    if (i == (size_t)-1)
        return 0;
    /* Backward shift, as in ref_strmap: a later entry of the run moves into
     * the hole unless its home slot lies between the hole and it. */
    size_t mask = m->cap - 1;
    for (size_t j = (i + 1) & mask; m->slots[j].value; j = (j + 1) & mask) {
        size_t home = (size_t)ref_mix64(m->slots[j].key) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (ref_u64map_slot){0, NULL};
    m->len--;
    return 1;
}

size_t ref_u64map_len(const ref_u64map *m)
{
    return m ? m->len : 0;
}
