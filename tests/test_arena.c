/* The decode arena: aligned bump allocation, reuse after a reset, the
 * bound on what a reset keeps, and strict decoding into it giving the same
 * packet as decoding onto the heap. */
#include "testutil.h"

#include "cap_arena.h"
#include "cap_decode.h"
#include "cap_encode.h"

static void test_alloc_aligned_and_distinct(void **state)
{
    (void)state;
    cap_arena a;
    cap_arena_init(&a, 1 << 16);
    assert_true(cap_arena_held(&a) == 0);
    unsigned char *prev = NULL;
    for (size_t n = 0; n < 200; n++) {
        unsigned char *p = cap_arena_alloc(&a, n);
        assert_non_null(p);
        assert_true((uintptr_t)p % CAP_ARENA_ALIGN == 0);
        if (prev)
            assert_true(p != prev);
        memset(p, (int)n, n); /* writable over its whole length */
        prev = p;
    }
    assert_true(cap_arena_held(&a) > 0);
    assert_null(cap_arena_alloc(&a, SIZE_MAX));
    cap_arena_free(&a);
    assert_true(cap_arena_held(&a) == 0);
    cap_arena_free(NULL);
}

/* Allocations survive until the reset; after it the same block serves the
 * next cycle from its start (no new block). */
static void test_reset_reuses_block(void **state)
{
    (void)state;
    cap_arena a;
    cap_arena_init(&a, 1 << 16);
    char *s = cap_arena_alloc(&a, 6);
    memcpy(s, "hello", 6);
    int *v = cap_arena_alloc(&a, 100 * sizeof *v);
    for (int i = 0; i < 100; i++)
        v[i] = i * i;
    assert_string_equal(s, "hello");
    assert_int_equal(v[99], 99 * 99);
    size_t held = cap_arena_held(&a);
    cap_arena_reset(&a);
    assert_true(cap_arena_held(&a) == held);
    char *t = cap_arena_alloc(&a, 6);
    assert_ptr_equal(t, s);
    cap_arena_free(&a);
}

/* A cycle that needs several blocks, or more than the bound, gives them
 * all back at the reset; the next cycle starts with one block as large as
 * the last one needed, within the bound, and keeps it. */
static void test_reset_bound(void **state)
{
    (void)state;
    const size_t keep = 32 << 10;
    cap_arena a;
    cap_arena_init(&a, keep);
    for (int i = 0; i < 100; i++) /* about 20 KiB over several blocks */
        assert_non_null(cap_arena_alloc(&a, 200));
    cap_arena_reset(&a);
    assert_true(cap_arena_held(&a) == 0);
    assert_non_null(cap_arena_alloc(&a, 8));
    size_t one = cap_arena_held(&a);
    assert_true(one >= 100 * 208 && one <= keep); /* all of the last cycle in one block */
    for (int i = 1; i < 100; i++)
        assert_non_null(cap_arena_alloc(&a, 200));
    assert_true(cap_arena_held(&a) == one); /* it fitted */
    cap_arena_reset(&a);
    assert_true(cap_arena_held(&a) == one); /* kept */

    /* One huge cycle: freed at its reset, and the next block is capped. */
    assert_non_null(cap_arena_alloc(&a, 1 << 20));
    assert_true(cap_arena_held(&a) > (1 << 20));
    cap_arena_reset(&a);
    assert_true(cap_arena_held(&a) == 0);
    assert_non_null(cap_arena_alloc(&a, 8));
    assert_true(cap_arena_held(&a) == keep);
    cap_arena_reset(&a);
    assert_true(cap_arena_held(&a) == keep);

    /* keep 0: nothing survives a reset. */
    cap_arena_free(&a);
    cap_arena_init(&a, 0);
    assert_non_null(cap_arena_alloc(&a, 8));
    assert_true(cap_arena_held(&a) > 0);
    cap_arena_reset(&a);
    assert_true(cap_arena_held(&a) == 0);
    cap_arena_free(&a);
}

/* Every golden fixture decodes into the arena exactly as onto the heap:
 * the same canonical bytes back, cycle after cycle of resets. */
static void test_decode_into_arena(void **state)
{
    (void)state;
    static const char *const fixtures[] = {
        "conformance/fixtures/buspacket_job_request.bin",
        "conformance/fixtures/buspacket_job_result.bin",
        "conformance/fixtures/buspacket_heartbeat.bin",
    };
    cap_arena a;
    cap_arena_init(&a, 1 << 16);
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
            size_t len;
            uint8_t *buf = tu_read_file(REPO_PATH(fixtures[i]), &len);
            cap_packet *heap = NULL, *ar = NULL;
            cap_diag d;
            assert_int_equal(cap_packet_decode(buf, len, NULL, CAP_DECODE_STRICT, &heap, &d), CAP_OK);
            assert_int_equal(cap_packet_decode_in(buf, len, NULL, CAP_DECODE_STRICT, &a.allocator,
                                                  &ar, &d),
                             CAP_OK);
            uint8_t *e1, *e2;
            size_t n1, n2;
            assert_int_equal(cap_encode(&heap->base, &e1, &n1), CAP_OK);
            assert_int_equal(cap_encode(&ar->base, &e2, &n2), CAP_OK);
            assert_true(n1 == n2);
            assert_memory_equal(e1, e2, n1);
            assert_true(n1 == len); /* the fixtures are canonical */
            assert_memory_equal(e1, buf, len);
            free(e1);
            free(e2);
            cap_packet_free(heap);
            cap_arena_reset(&a);
            free(buf);
        }
    /* A rejected packet leaves nothing to release but the arena itself. */
    const uint8_t junk[] = {0x08, 0x01}; /* version 1 and nothing else */
    cap_packet *p = (cap_packet *)1;
    cap_diag d;
    assert_int_equal(cap_packet_decode_in(junk, sizeof junk, NULL, CAP_DECODE_STRICT, &a.allocator,
                                          &p, &d),
                     CAP_EMALFORMED);
    assert_null(p);
    cap_arena_free(&a);
}

/* The allocator view leads back to its arena; the inline allocation and
 * the out-of-line one share the same blocks and never overlap. */
static void test_arena_of_and_inline(void **state)
{
    (void)state;
    cap_arena a;
    cap_arena_init(&a, 1 << 16);
    ProtobufCAllocator heap = {.alloc = NULL, .free = NULL, .allocator_data = NULL};
    assert_ptr_equal(cap_arena_of(&a.allocator), &a);
    assert_null(cap_arena_of(&heap));
    assert_null(cap_arena_of(NULL));
    unsigned char *prev = NULL;
    size_t prev_n = 0;
    for (size_t n = 0; n < 3000; n += 7) {
        unsigned char *p = n % 2 ? cap_arena_alloc_inline(&a, n) : cap_arena_alloc(&a, n);
        assert_non_null(p);
        assert_true((uintptr_t)p % CAP_ARENA_ALIGN == 0);
        memset(p, 0xA5, n);
        if (prev && p > prev)
            assert_true(p >= prev + prev_n); /* after the previous block in the same arena block */
        prev = p;
        prev_n = n;
    }
    assert_null(cap_arena_alloc_inline(&a, SIZE_MAX));
    size_t held = cap_arena_held(&a);
    cap_arena_reset(&a);
    assert_true(cap_arena_held(&a) <= held);
    assert_non_null(cap_arena_alloc_inline(&a, 10));
    cap_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_aligned_and_distinct),
        cmocka_unit_test(test_reset_reuses_block),
        cmocka_unit_test(test_reset_bound),
        cmocka_unit_test(test_decode_into_arena),
        cmocka_unit_test(test_arena_of_and_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
