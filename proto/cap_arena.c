/* Bump allocator for decoded packets. See cap_arena.h. */
#include "cap_arena.h"

#include <stdint.h>
#include <stdlib.h>

#ifdef CAP_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The smallest block: a typical CAP packet unpacks into well under this. */
#define MIN_BLOCK ((size_t)4096)

struct cap_arena_block {
    cap_arena_block *prev; /* the block filled before this one */
    size_t size, used;     /* bytes of data, bytes handed out (the head's: see cur) */
    max_align_t data[];    /* aligned for anything */
};

_Static_assert(CAP_ARENA_ALIGN % _Alignof(max_align_t) == 0,
               "CAP_ARENA_ALIGN must be a multiple of max_align_t's alignment");

static void *pb_alloc(void *arena, size_t n)
{
    return cap_arena_alloc(arena, n);
}

static void pb_free(void *arena, void *p)
{
    (void)arena; /* released all at once by cap_arena_reset */
    (void)p;
}

void cap_arena_init(cap_arena *a, size_t keep)
{
    a->allocator.alloc = pb_alloc;
    a->allocator.free = pb_free;
    a->allocator.allocator_data = a;
    a->head = NULL;
    a->cur = a->lim = NULL;
    a->keep = keep;
    a->next_size = 0;
}

cap_arena *cap_arena_of(const ProtobufCAllocator *alloc)
{
    return alloc && alloc->alloc == pb_alloc ? alloc->allocator_data : NULL;
}

static size_t round_up(size_t n)
{
    return (n + (CAP_ARENA_ALIGN - 1)) & ~(size_t)(CAP_ARENA_ALIGN - 1);
}

/* A new head block with room for `want` bytes, and the first n of them.
 * Out of line: the common case, room in the head block, then needs no
 * saved registers (the decoder allocates every string and message here). */
static void *__attribute__((noinline)) alloc_in_new_block(cap_arena *a, size_t n, size_t want)
{
    cap_arena_block *b = a->head;
    if (b)
        b->used = (size_t)(a->cur - (unsigned char *)b->data);
    size_t size = b ? 2 * b->size : a->next_size;
    if (size < MIN_BLOCK)
        size = MIN_BLOCK;
    if (size < want)
        size = want;
    if (size > SIZE_MAX - sizeof *b)
        return NULL;
    cap_arena_block *nb = malloc(sizeof *nb + size);
    if (!nb)
        return NULL;
    nb->prev = b;
    nb->size = size;
    nb->used = want;
    POISON(nb->data, size);
    a->head = nb;
    a->cur = (unsigned char *)nb->data + want;
    a->lim = (unsigned char *)nb->data + size;
    UNPOISON(nb->data, n);
    return nb->data;
}

void *cap_arena_alloc(cap_arena *a, size_t n)
{
    if (n > SIZE_MAX / 2)
        return NULL;
    size_t want = round_up(n ? n : 1);
    if (__builtin_expect(want > (size_t)((uintptr_t)a->lim - (uintptr_t)a->cur), 0))
        return alloc_in_new_block(a, n, want);
    unsigned char *p = a->cur;
    a->cur += want;
    UNPOISON(p, n);
    return p;
}

static void free_blocks(cap_arena *a)
{
    for (cap_arena_block *b = a->head, *prev; b; b = prev) {
        prev = b->prev;
        UNPOISON(b->data, b->size);
        free(b);
    }
    a->head = NULL;
    a->cur = a->lim = NULL;
}

void cap_arena_reset(cap_arena *a)
{
    cap_arena_block *b = a->head;
    if (!b)
        return;
    b->used = (size_t)(a->cur - (unsigned char *)b->data);
    if (!b->prev && b->size <= a->keep) {
        b->used = 0;
        a->cur = (unsigned char *)b->data;
        POISON(b->data, b->size);
        return;
    }
    /* Several blocks, or one over the bound: free them all, and let the
     * next first block hold what this cycle used, within the bound. */
    size_t used = 0;
    for (; b; b = b->prev)
        used += b->used;
    a->next_size = used < a->keep ? used : a->keep;
    free_blocks(a);
}

void cap_arena_free(cap_arena *a)
{
    if (!a)
        return;
    free_blocks(a);
    a->next_size = 0;
}

size_t cap_arena_held(const cap_arena *a)
{
    size_t n = 0;
    for (const cap_arena_block *b = a->head; b; b = b->prev)
        n += b->size;
    return n;
}
