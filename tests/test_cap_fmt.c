/* Decimal text of cap_fmt.h against printf's, over edge values and a
 * pseudo-random spread of every length. */
#include "testutil.h"

#include <inttypes.h>

#include "cap_fmt.h"

static void check_u64(uint64_t v)
{
    char buf[32], want[32];
    char *p = cap_fmt_u64(buf + sizeof buf, v);
    snprintf(want, sizeof want, "%" PRIu64, v);
    assert_int_equal((size_t)(buf + sizeof buf - p), strlen(want));
    assert_memory_equal(p, want, strlen(want));
}

static void check_i64(int64_t v)
{
    char buf[32], want[32];
    char *p = cap_fmt_i64(buf + sizeof buf, v);
    snprintf(want, sizeof want, "%" PRId64, v);
    assert_int_equal((size_t)(buf + sizeof buf - p), strlen(want));
    assert_memory_equal(p, want, strlen(want));
}

static void test_edges(void **state)
{
    (void)state;
    uint64_t p10 = 1;
    for (int i = 0; i < 20; i++) { /* each power of ten and its neighbours */
        check_u64(p10 - 1);
        check_u64(p10);
        check_u64(p10 + 1);
        check_i64((int64_t)(p10 - 1));
        check_i64(-(int64_t)(p10 - 1));
        if (i < 19) {
            check_i64((int64_t)p10);
            check_i64(-(int64_t)p10);
        }
        p10 *= 10;
    }
    check_u64(UINT64_MAX);
    check_i64(INT64_MAX);
    check_i64(INT64_MIN);
    check_i64(-1);
}

static void test_spread(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        check_u64(x >> (x & 63)); /* every magnitude */
        check_i64((int64_t)x >> (x % 61));
    }
}

static void test_ends_at_end(void **state)
{
    (void)state;
    /* nothing is written at or past `end`, nor before the returned start */
    char buf[40];
    memset(buf, '#', sizeof buf);
    char *p = cap_fmt_i64(buf + 30, -1234567);
    assert_ptr_equal(p, buf + 22);
    assert_memory_equal(p, "-1234567", 8);
    for (int i = 0; i < 22; i++)
        assert_int_equal(buf[i], '#');
    for (int i = 30; i < 40; i++)
        assert_int_equal(buf[i], '#');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_ends_at_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
