/* String-keyed exact-lookup map: see ref_strmap.h. */
#include "ref_strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"

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

void ref_strmap_init_borrowed(ref_strmap *m)
{
    ref_strmap_init(m);
    m->borrowed = 1;
}

void ref_strmap_free(ref_strmap *m)
{
    if (!m)
        return;
    int borrowed = m->borrowed;
    for (size_t i = 0; i < m->cap && !borrowed; i++)
        free(m->slots[i].key);
    free(m->slots);
    ref_strmap_init(m);
    m->borrowed = borrowed;
}

/* The slot holding key (whose hash is h), or (size_t)-1. */
static size_t find_slot(const ref_strmap *m, const char *key, uint64_t h)
{
    if (!m->cap || !key)
        return (size_t)-1;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const ref_strmap_slot *s = &m->slots[i];
        if (!s->key)
            return (size_t)-1;
        if (s->hash == h && strcmp(s->key, key) == 0)
            return i;
    }
}

void *ref_strmap_get(const ref_strmap *m, const char *key)
{
    if (!m || !m->cap || !key)
        return NULL;
    size_t i = find_slot(m, key, fnv1a(key));
    return i == (size_t)-1 ? NULL : m->slots[i].value;
}

/* The first empty slot of h's probe run in a table known to have one. */
static size_t free_slot(const ref_strmap_slot *slots, size_t cap, uint64_t h)
{
    size_t mask = cap - 1, i = (size_t)h & mask;
    while (slots[i].key)
        i = (i + 1) & mask;
    return i;
}

static int grow(ref_strmap *m)
{
    size_t nc = m->cap ? m->cap * 2 : 16;
    ref_strmap_slot *slots = calloc(nc, sizeof *slots);
    if (!slots)
        return CAP_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            slots[free_slot(slots, nc, m->slots[i].hash)] = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = nc;
    return CAP_OK;
}

int ref_strmap_put(ref_strmap *m, const char *key, void *value)
{
    if (!m || !key || !value)
        return CAP_EINVAL;
    uint64_t h = fnv1a(key);
    size_t i = find_slot(m, key, h);
    if (i != (size_t)-1) {
        m->slots[i].value = value;
        if (m->borrowed)
            m->slots[i].key = (char *)key;
        return CAP_OK;
    }
    /* Keep the load under 1/2: short probe runs. */
    if ((m->len + 1) * 2 > m->cap) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    char *copy = (char *)key;
    if (!m->borrowed) {
        size_t n = strlen(key) + 1;
        if (!(copy = malloc(n)))
            return CAP_ENOMEM;
        memcpy(copy, key, n);
    }
    m->slots[free_slot(m->slots, m->cap, h)] = (ref_strmap_slot){h, copy, value};
    m->len++;
    return CAP_OK;
}

int ref_strmap_put_new(ref_strmap *m, const char *key, void *value, void **found)
{
    *found = NULL;
    if (!m || !key || !value)
        return CAP_EINVAL;
    uint64_t h = fnv1a(key);
    size_t i = (size_t)-1;
    if (m->cap) { /* h's probe run: the key, or the empty slot that ends it */
        size_t mask = m->cap - 1;
        for (i = (size_t)h & mask; m->slots[i].key; i = (i + 1) & mask)
            if (m->slots[i].hash == h && strcmp(m->slots[i].key, key) == 0) {
                *found = m->slots[i].value;
                return CAP_OK;
            }
    }
    if ((m->len + 1) * 2 > m->cap) { /* as put: the load stays under 1/2 */
        int rc = grow(m);
        if (rc)
            return rc;
        i = free_slot(m->slots, m->cap, h);
    }
    char *copy = (char *)key;
    if (!m->borrowed) {
        size_t n = strlen(key) + 1;
        if (!(copy = malloc(n)))
            return CAP_ENOMEM;
        memcpy(copy, key, n);
    }
    m->slots[i] = (ref_strmap_slot){h, copy, value};
    m->len++;
    return CAP_OK;
}

int ref_strmap_del(ref_strmap *m, const char *key)
{
    size_t i = m && key ? find_slot(m, key, fnv1a(key)) : (size_t)-1;
    if (i == (size_t)-1)
        return 0;
    if (!m->borrowed)
        free(m->slots[i].key);
    /* Backward shift: move each later entry of the run whose home slot is
     * not between the hole and it into the hole, so every remaining key
     * stays reachable from its home slot without a tombstone. */
    size_t mask = m->cap - 1;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (ref_strmap_slot){0, NULL, NULL};
    m->len--;
    return 1;
}

size_t ref_strmap_len(const ref_strmap *m)
{
    return m ? m->len : 0;
}
