/* String-keyed exact-lookup map: see ref_strmap.h. */
#include "ref_strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static uint64_t fnv1a(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= UINT64_C(1099511628211);
    }
    return h;
}

void ref_strmap_init(ref_strmap *m)
{
    memset(m, 0, sizeof *m);
}

void ref_strmap_free(ref_strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] && m->keys[i] != TOMBSTONE)
            free(m->keys[i]);
    free(m->keys);
    free(m->values);
    ref_strmap_init(m);
}

/* The values array holds 2 * cap entries: the values, then each slot's
 * key hash (as a uintptr_t), so that a probe compares strings only when
 * the hashes agree. */
#define HASH_AT(values, cap, i) ((uintptr_t)(values)[(cap) + (i)])

/* The slot holding key (whose hash is h), or (size_t)-1. */
static size_t find_slot(const ref_strmap *m, const char *key, uint64_t h)
{
    if (!m->cap || !key)
        return (size_t)-1;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        char *k = m->keys[i];
        if (!k)
            return (size_t)-1;
        if (k != TOMBSTONE && HASH_AT(m->values, m->cap, i) == (uintptr_t)h && strcmp(k, key) == 0)
            return i;
    }
}

void *ref_strmap_get(const ref_strmap *m, const char *key)
{
    if (!m || !m->cap || !key)
        return NULL;
    size_t i = find_slot(m, key, fnv1a(key));
    return i == (size_t)-1 ? NULL : m->values[i];
}

/* Places an owned key in a table known to have room and not to hold it. */
static void place(char **keys, void **values, size_t cap, char *key, void *value, uintptr_t h)
{
    size_t mask = cap - 1;
    size_t i = (size_t)h & mask;
    while (keys[i] && keys[i] != TOMBSTONE)
        i = (i + 1) & mask;
    keys[i] = key;
    values[i] = value;
    values[cap + i] = (void *)h;
}

static int grow(ref_strmap *m)
{
    size_t nc = m->cap ? m->cap * 2 : 16;
    if (m->cap && m->len * 4 < m->cap)
        nc = m->cap; /* mostly tombstones: rebuild at the same size */
    char **keys = calloc(nc, sizeof *keys);
    void **values = calloc(2 * nc, sizeof *values);
    if (!keys || !values) {
        free(keys);
        free(values);
        return CAP_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] && m->keys[i] != TOMBSTONE)
            place(keys, values, nc, m->keys[i], m->values[i], HASH_AT(m->values, m->cap, i));
    free(m->keys);
    free(m->values);
    m->keys = keys;
    m->values = values;
    m->cap = nc;
    m->used = m->len;
    return CAP_OK;
}

int ref_strmap_put(ref_strmap *m, const char *key, void *value)
{
    if (!m || !key || !value)
        return CAP_EINVAL;
    uint64_t h = fnv1a(key);
    size_t i = find_slot(m, key, h);
    if (i != (size_t)-1) {
        m->values[i] = value;
        return CAP_OK;
    }
    /* Keep the load (live + deleted) under 1/2: short probe runs. */
    if ((m->used + 1) * 2 > m->cap) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    size_t n = strlen(key) + 1;
    char *copy = malloc(n);
    if (!copy)
        return CAP_ENOMEM;
    memcpy(copy, key, n);
    size_t mask = m->cap - 1;
    size_t j = (size_t)h & mask;
    while (m->keys[j] && m->keys[j] != TOMBSTONE)
        j = (j + 1) & mask;
    if (!m->keys[j])
        m->used++;
    m->keys[j] = copy;
    m->values[j] = value;
    m->values[m->cap + j] = (void *)(uintptr_t)h;
    m->len++;
    return CAP_OK;
}

int ref_strmap_del(ref_strmap *m, const char *key)
{
    size_t i = m && key ? find_slot(m, key, fnv1a(key)) : (size_t)-1;
    if (i == (size_t)-1)
        return 0;
    free(m->keys[i]);
    m->keys[i] = TOMBSTONE;
    m->values[i] = NULL;
    m->len--;
    return 1;
}

size_t ref_strmap_len(const ref_strmap *m)
{
    return m ? m->len : 0;
}
