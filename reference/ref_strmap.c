/* String-keyed exact-lookup map: see ref_strmap.h. */
#include "ref_strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "ref_mix.h"

_Static_assert(sizeof(ref_strmap_slot) == 24, "a slot is a value and 16 bytes of key");
_Static_assert(offsetof(ref_strmap_slot, k.out.tag) == offsetof(ref_strmap_slot, k.in) + 15,
               "a long key's tag overlays the last byte of an inline key");

/* A key as an operation looks for it: its hash, its length and, when it
 * is kept inline, its NUL-padded image as two words. */
typedef struct {
    const char *s;
    uint64_t hash;
    size_t len;
    uint64_t img[2];
} probe_key;

/* The hash of a longer key of n bytes (n > REF_STRMAP_INLINE, so at
 * least one word), a word at a time; a last part word is read as the key's
 * last 8 bytes (overlapping the word before: a read within the key, no
 * copy of the tail). Hashes only place keys in the table (nothing
 * iterates it), so the words' byte order is of no consequence. */
static uint64_t hash_long(const char *s, size_t n)
{
    uint64_t h = ref_mix64(n ^ UINT64_C(0x2545f4914f6cdd1d)), w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        h = ref_mix64(h ^ w);
    }
    if (i < n) {
        memcpy(&w, s + n - 8, 8);
        h = ref_mix64(h ^ w);
    }
    return h;
}

#if defined(__GNUC__) && defined(__SIZEOF_INT128__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ALWAYS_INLINE __attribute__((always_inline)) inline

/* The hash of an inline key, from its image (which the key alone
 * determines: no key holds a NUL): the two halves of the 128-bit product
 * of the words, each offset by a constant, folded together (one multiply;
 * the high half carries every input bit down into the low bits that pick
 * a home). Neither factor can be 0: the first constant's low byte is 0,
 * which a first word's is only for the empty key, whose word is then 0
 * and unlike the constant; the second constant's top byte is not 0, and
 * an image's last byte always is. */
static inline uint64_t hash_image(uint64_t a, uint64_t b)
{
    unsigned __int128 p = (unsigned __int128)(a ^ UINT64_C(0xe7037ed1a0b42800)) *
                          (b ^ UINT64_C(0x8ebc6af09c88c6e3));
    return (uint64_t)p ^ (uint64_t)(p >> 64);
}

#else
#define ALWAYS_INLINE inline

/* The hash of an inline key, from its image. */
static inline uint64_t hash_image(uint64_t a, uint64_t b)
{
    return ref_mix64(a ^ ref_mix64(b ^ UINT64_C(0x9e3779b97f4a7c15)));
}

#endif

/* Inlined into each operation so the probe key stays in registers. */
static ALWAYS_INLINE void key_of(const char *s, probe_key *k)
{
    k->s = s;
    size_t n = strlen(s);
    k->len = n;
    k->img[0] = k->img[1] = 0;
    if (n <= REF_STRMAP_INLINE) {
        memcpy(k->img, s, n);
        k->hash = hash_image(k->img[0], k->img[1]);
    } else {
        k->hash = hash_long(s, n);
    }
}

static int is_long(const ref_strmap_slot *s)
{
    return s->k.out.tag == 1;
}

/* Whether slot s (not empty) holds key k. An inline key is compared as
 * its image; a long one by its hash bits, then as a string. */
static inline int slot_holds(const ref_strmap_slot *s, const probe_key *k)
{
    if (k->len <= REF_STRMAP_INLINE) {
        uint64_t w[2];
        memcpy(w, s->k.in, sizeof w);
        return w[0] == k->img[0] && w[1] == k->img[1]; /* a long key's tag never matches */
    }
    return is_long(s) && s->k.out.hash == (uint32_t)k->hash && strcmp(s->k.out.key, k->s) == 0;
}

/* The 32 hash bits that place slot s's key (its home is these & mask:
 * tables stay within 2^32 slots). */
static uint32_t slot_hash(const ref_strmap_slot *s)
{
    if (is_long(s))
        return s->k.out.hash;
    uint64_t w[2];
    memcpy(w, s->k.in, sizeof w);
    return (uint32_t)hash_image(w[0], w[1]);
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
        if (m->slots[i].value && is_long(&m->slots[i]))
            free(m->slots[i].k.out.key);
    free(m->slots);
    ref_strmap_init(m);
    m->borrowed = borrowed;
}

/* The slot holding k, or (size_t)-1. One loop per kind of key, so a
 * probe step tests only what that kind needs. */
static inline size_t find_slot(const ref_strmap *m, const probe_key *k)
{
    if (!m->cap)
        return (size_t)-1;
    size_t mask = m->cap - 1;
    const ref_strmap_slot *slots = m->slots;
    size_t i = (uint32_t)k->hash & mask;
    if (k->len <= REF_STRMAP_INLINE) {
        for (;; i = (i + 1) & mask) {
            if (!slots[i].value)
                return (size_t)-1;
            uint64_t w[2];
            memcpy(w, slots[i].k.in, sizeof w); /* a long key's tag never matches */
            if (w[0] == k->img[0] && w[1] == k->img[1])
                return i;
        }
    }
    for (;; i = (i + 1) & mask) {
        if (!slots[i].value)
            return (size_t)-1;
        if (slot_holds(&slots[i], k))
            return i;
    }
}

void *ref_strmap_get(const ref_strmap *m, const char *key)
{
    if (!m || !m->cap || !key)
        return NULL;
    probe_key k;
    key_of(key, &k);
    size_t i = find_slot(m, &k);
    return i == (size_t)-1 ? NULL : m->slots[i].value;
}

/* The first empty slot of the run from home slot h in a table known to
 * have one. */
static size_t free_slot(const ref_strmap_slot *slots, size_t cap, uint32_t h)
{
    size_t mask = cap - 1, i = h & mask;
    while (slots[i].value)
        i = (i + 1) & mask;
    return i;
}

static int grow(ref_strmap *m)
{
    size_t nc = m->cap ? m->cap * 2 : 16;
    if (nc > ((size_t)1 << 32) || nc > SIZE_MAX / sizeof(ref_strmap_slot))
        return CAP_ENOMEM; /* homes are taken from 32 hash bits */
    ref_strmap_slot *slots = calloc(nc, sizeof *slots);
    if (!slots)
        return CAP_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].value)
            slots[free_slot(slots, nc, slot_hash(&m->slots[i]))] = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = nc;
    return CAP_OK;
}

/* Fills the empty slot s with key k and value: the key inline, or a
 * pointer to it (a copy unless the map borrows keys). CAP_ENOMEM leaves
 * the slot empty. */
static int fill(ref_strmap *m, ref_strmap_slot *s, const probe_key *k, void *value)
{
    memset(s, 0, sizeof *s);
    if (k->len <= REF_STRMAP_INLINE) {
        memcpy(s->k.in, k->img, sizeof s->k.in);
    } else {
        char *copy = (char *)k->s;
        if (!m->borrowed) {
            if (!(copy = malloc(k->len + 1)))
                return CAP_ENOMEM;
            memcpy(copy, k->s, k->len + 1);
        }
        s->k.out.key = copy;
        s->k.out.hash = (uint32_t)k->hash;
        s->k.out.tag = 1;
    }
    s->value = value;
    m->len++;
    return CAP_OK;
}

/* Replaces the value of slot i, which holds k. */
static void replace(ref_strmap *m, size_t i, const probe_key *k, void *value)
{
    m->slots[i].value = value;
    if (m->borrowed && is_long(&m->slots[i]))
        m->slots[i].k.out.key = (char *)k->s;
}

int ref_strmap_put(ref_strmap *m, const char *key, void *value)
{
    if (!m || !key || !value)
        return CAP_EINVAL;
    probe_key k;
    key_of(key, &k);
    size_t i = find_slot(m, &k);
    if (i != (size_t)-1) {
        replace(m, i, &k, value);
        return CAP_OK;
    }
    /* Keep the load under 1/2: short probe runs. */
    if ((m->len + 1) * 2 > m->cap) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    return fill(m, &m->slots[free_slot(m->slots, m->cap, (uint32_t)k.hash)], &k, value);
}

int ref_strmap_put_new(ref_strmap *m, const char *key, void *value, void **found)
{
    *found = NULL;
    if (!m || !key || !value)
        return CAP_EINVAL;
    probe_key k;
    key_of(key, &k);
    size_t i = (size_t)-1;
    if (m->cap) { /* k's probe run: the key, or the empty slot that ends it */
        size_t mask = m->cap - 1;
        for (i = (uint32_t)k.hash & mask; m->slots[i].value; i = (i + 1) & mask)
            if (slot_holds(&m->slots[i], &k)) {
                *found = m->slots[i].value;
                return CAP_OK;
            }
    }
    if ((m->len + 1) * 2 > m->cap) { /* as put: the load stays under 1/2 */
        int rc = grow(m);
        if (rc)
            return rc;
        i = free_slot(m->slots, m->cap, (uint32_t)k.hash);
    }
    return fill(m, &m->slots[i], &k, value);
}

void ref_strmap_prefetch(const ref_strmap *m, const char *key)
{
#if defined(__GNUC__)
    if (!m || !m->cap || !key)
        return;
    probe_key k;
    key_of(key, &k);
    __builtin_prefetch(&m->slots[(uint32_t)k.hash & (m->cap - 1)]);
#else
    (void)m;
    (void)key;
#endif
}

int ref_strmap_del(ref_strmap *m, const char *key)
{
    if (!m || !key || !m->cap)
        return 0;
    probe_key k;
    key_of(key, &k);
    size_t i = find_slot(m, &k);
    if (i == (size_t)-1)
        return 0;
    if (!m->borrowed && is_long(&m->slots[i]))
        free(m->slots[i].k.out.key);
    /* Backward shift: move each later entry of the run whose home slot is
     * not between the hole and it into the hole, so every remaining key
     * stays reachable from its home slot without a tombstone. */
    size_t mask = m->cap - 1;
    for (size_t j = (i + 1) & mask; m->slots[j].value; j = (j + 1) & mask) {
        size_t home = slot_hash(&m->slots[j]) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    memset(&m->slots[i], 0, sizeof m->slots[i]);
    m->len--;
    return 1;
}

size_t ref_strmap_len(const ref_strmap *m)
{
    return m ? m->len : 0;
}
