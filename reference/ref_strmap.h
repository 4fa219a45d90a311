/* A string-keyed map for exact lookups: key -> caller's pointer.
 *
 * Open addressing with linear probing over 64-bit hashes (a short key's
 * from its two words, a longer key's a word at a time); a delete
 * shifts the following entries back (no tombstones: probe runs stay short
 * however many keys come and go). It answers "which value has this key"
 * and nothing else: it has no iteration, so no hash order can ever reach
 * a caller's output (components that need to walk their entries keep
 * their own ordered list beside the map).
 *
 * A key of at most REF_STRMAP_INLINE characters (a job id, a worker id, a
 * topic) is kept inside its slot, padded with NULs, and a lookup compares
 * it there as two words: finding it reads the slot and nothing else. A
 * longer key is kept by pointer beside 32 bits of its hash, so a probe
 * compares strings only when those agree.
 *
 * Ownership: the map copies every key (in the slot, or a heap copy for a
 * long key) and frees the copies; values are borrowed (the map never
 * frees or dereferences them). A map made with ref_strmap_init_borrowed
 * keeps the caller's pointer for a long key instead: for a key that lives
 * inside its value (a job's id in the job), which saves the copy. The
 * caller must then delete an entry before its key goes away, and a put
 * that replaces a value takes the new key pointer. */
#ifndef REF_STRMAP_H
#define REF_STRMAP_H

#include <stddef.h>
#include <stdint.h>

/* The longest key kept inside its slot. */
#define REF_STRMAP_INLINE 14

typedef struct {
    void *value; /* borrowed; NULL = empty slot */
    union {
        /* A key of at most REF_STRMAP_INLINE characters, NUL-padded (so
         * in[15] is 0). */
        char in[16];
        struct {
            char *key;     /* owned copy (or the caller's, borrowed) */
            uint32_t hash; /* the low 32 bits of the key's hash */
            char pad[3];
            char tag;      /* 1: overlays in[15], which is 0 for an inline key */
        } out;
    } k;
} ref_strmap_slot;

typedef struct {
    ref_strmap_slot *slots; /* cap slots */
    size_t cap;             /* a power of two, or 0 before the first insert */
    size_t len;             /* live entries */
    int borrowed;           /* long keys are the caller's (ref_strmap_init_borrowed) */
} ref_strmap;

/* An empty map (no allocation until the first put). */
void ref_strmap_init(ref_strmap *m);

/* An empty map that keeps the caller's key pointers (see above). */
void ref_strmap_init_borrowed(ref_strmap *m);

/* Frees the keys and the table; values are untouched. The map may be
 * initialised again. NULL is accepted. */
void ref_strmap_free(ref_strmap *m);

/* The value stored under key, or NULL. */
void *ref_strmap_get(const ref_strmap *m, const char *key);

/* Stores value under key (replacing an earlier value). CAP_OK, CAP_EINVAL
 * for a NULL key or value, CAP_ENOMEM (the map is unchanged). */
int ref_strmap_put(ref_strmap *m, const char *key, void *value);

/* Stores value under key unless the key is there already: CAP_OK with
 * *found = NULL when it stored, CAP_OK with *found = the value already
 * stored when the key was there (the map is unchanged); CAP_EINVAL for a
 * NULL key or value, CAP_ENOMEM (the map is unchanged). The same as a get
 * and, when it misses, a put, for one hash and one probe. */
int ref_strmap_put_new(ref_strmap *m, const char *key, void *value, void **found);

/* Removes key. 1 when it was there, 0 when not. */
int ref_strmap_del(ref_strmap *m, const char *key);
/* Asks the cache for the slot where a lookup of key starts, ahead of a
 * get or put of the same key. A hint only: it changes nothing. */
void ref_strmap_prefetch(const ref_strmap *m, const char *key);

/* Live entries. */
size_t ref_strmap_len(const ref_strmap *m);

#endif
