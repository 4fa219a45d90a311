/* A bump allocator for short-lived decoded packets.
 *
 * cap_arena_alloc hands out memory from a block by moving a pointer;
 * freeing one allocation does nothing; cap_arena_reset releases every
 * allocation at once. A decoder that unpacks one packet after another into
 * the same arena, resetting it in between, allocates from the C heap only
 * while the arena grows, instead of dozens of times per packet.
 *
 * `allocator` is a ProtobufCAllocator view of the arena, for
 * protobuf_c_message_unpack (and cap_packet_decode_in); its free is a
 * no-op, so protobuf_c_message_free_unpacked on an arena packet is
 * harmless but useless: reset the arena instead.
 *
 * Bounded: a reset keeps at most one block of at most `keep` bytes (the
 * next cycle's first block is sized to what the last cycle used, up to
 * `keep`), so one huge packet does not pin its memory for the rest of a
 * run. Under AddressSanitizer the released memory is poisoned, so a pointer
 * kept into a packet across a reset is reported where it is used. */
#ifndef CAP_ARENA_H
#define CAP_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

typedef struct cap_arena_block cap_arena_block;

/* Defined when AddressSanitizer instruments this build. */
#if defined(__SANITIZE_ADDRESS__)
#define CAP_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CAP_ARENA_ASAN 1
#endif
#endif

typedef struct {
    ProtobufCAllocator allocator; /* alloc/free over this arena; set by cap_arena_init */
    cap_arena_block *head;        /* the block allocations come from; older blocks chained */
    unsigned char *cur, *lim;     /* the head block's free room (NULL, NULL: none) */
    size_t keep;                  /* the most a reset keeps, in bytes of block */
    size_t next_size;             /* size of the first block after a reset freed them all */
} cap_arena;

/* Alignment of every allocation (that of max_align_t). */
#define CAP_ARENA_ALIGN 16

/* An empty arena (allocates nothing until the first allocation) that keeps
 * up to `keep` bytes across resets (0: keeps nothing). The arena must not
 * be moved once `allocator` has been handed out (it points to the arena). */
void cap_arena_init(cap_arena *a, size_t keep);

/* n bytes aligned to CAP_ARENA_ALIGN (n 0 gives a valid unique pointer),
 * valid until the next reset; NULL when out of memory. */
void *cap_arena_alloc(cap_arena *a, size_t n);

/* The arena whose `allocator` alloc is, or NULL when alloc is not an
 * arena's view (NULL accepted): lets a caller that allocates many small
 * blocks use cap_arena_alloc_inline instead of the indirect call. */
cap_arena *cap_arena_of(const ProtobufCAllocator *alloc);

/* cap_arena_alloc with the common case, room in the head block, inline.
 * Under AddressSanitizer it always calls cap_arena_alloc, which unpoisons
 * what it hands out. */
static inline void *cap_arena_alloc_inline(cap_arena *a, size_t n)
{
#ifndef CAP_ARENA_ASAN
    size_t want = (n + CAP_ARENA_ALIGN - 1 + !n) & ~(size_t)(CAP_ARENA_ALIGN - 1);
    size_t room = (size_t)((uintptr_t)a->lim - (uintptr_t)a->cur);
    if (__builtin_expect(n <= (size_t)-1 / 2 && want <= room, 1)) {
        void *p = a->cur;
        a->cur += want;
        return p;
    }
#endif
    return cap_arena_alloc(a, n);
}

/* Releases every allocation; keeps one block within the bound. */
void cap_arena_reset(cap_arena *a);

/* Frees every block; the arena may be initialised again. NULL accepted. */
void cap_arena_free(cap_arena *a);

/* Bytes of block the arena holds now (its blocks' sizes summed). */
size_t cap_arena_held(const cap_arena *a);

#endif
