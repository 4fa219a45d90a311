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

static void check_both(uint64_t v)
{
    check_u64(v);
    check_i64((int64_t)v);
    check_i64((int64_t)((uint64_t)0 - v));
}

/* Values of more than eight digits are cut into chunks of eight digits:
 * the edges of each chunk, zeros inside and at the ends of a chunk, and
 * every digit count with every leading digit. */
static void test_chunks(void **state)
{
    (void)state;
    const uint64_t e8 = 100000000u, e16 = e8 * e8;
    const uint64_t edges[] = {
        e8 - 1,          e8,          e8 + 1,          2 * e8 - 1,     e8 * 99999999u,
        e8 * e8 - 1,     e16,         e16 + 1,         e16 + e8,       e16 + e8 - 1,
        e16 - e8,        e16 * 10 - 1, e16 * 10,       e16 * 1844,     e16 * 1845 - 1,
        1000000010000000u, 9999999900000000u, 9000000000000000009u, 1000000000000000001u,
        1763000000123456789u, 1234567800000000u, 100000000000000000u, 99999999999999999u,
        UINT64_MAX - 1,  UINT64_MAX,  (uint64_t)INT64_MAX + 1, (uint64_t)INT64_MAX,
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        check_both(edges[i]);
    check_i64(INT64_MIN + 1);
    check_i64(INT64_MIN);

    uint64_t p10 = 1;
    for (int n = 1; n <= 20; n++) { /* p10 = 10^(n-1): n digits */
        for (uint64_t d = 1; d <= 9; d++) {
            if (n == 20 && d > 1)
                break; /* 2*10^19 and above do not fit */
            check_both(d * p10);          /* d then zeros */
            check_both(d * p10 + 1);      /* d, zeros, 1 */
            if (d * p10 <= UINT64_MAX - (p10 - 1))
                check_both(d * p10 + (p10 - 1)); /* d then nines */
            check_both(d * p10 + p10 / 2);   /* d, 5, zeros */
        }
        if (n < 20)
            p10 *= 10;
    }
    /* each digit position with each value, the rest zeros and nines */
    p10 = 1;
    for (int k = 0; k < 19; k++, p10 *= 10)
        for (uint64_t d = 0; d <= 9; d++) {
            check_both(d * p10);
            check_both(e16 * 9 + d * p10);
            check_both(UINT64_MAX - d * p10);
        }
}

/* Every u < 10^8, alone (its digits without leading zeros) and as the last
 * chunk of 10^8 + u (eight digits with leading zeros), and on a sample as
 * the last chunk of 10^16 + 7 * 10^8 + u, against a decimal counter stepped
 * alongside. */
static void test_every_chunk(void **state)
{
    (void)state;
    const uint64_t e8 = 100000000u;
    char ref[8] = "00000000", buf[32], *end = buf + sizeof buf;
    int first = 7; /* ref's first significant digit */
    for (uint64_t u = 0; u < e8; u++) {
        char *p = cap_fmt_u64(end, u);
        if (end - p != 8 - first || memcmp(p, ref + first, (size_t)(8 - first)))
            fail_msg("%" PRIu64 " as \"%.*s\"", u, (int)(end - p), p);
        p = cap_fmt_u64(end, e8 + u);
        if (end - p != 9 || p[0] != '1' || memcmp(p + 1, ref, 8))
            fail_msg("%" PRIu64 " as \"%.*s\"", e8 + u, (int)(end - p), p);
        if (u % 9973 == 0) { /* the high chunk's path too, on a sample */
            p = cap_fmt_u64(end, e8 * e8 + e8 * 7 + u);
            if (end - p != 17 || memcmp(p, "100000007", 9) || memcmp(p + 9, ref, 8))
                fail_msg("%" PRIu64 " as \"%.*s\"", e8 * e8 + e8 * 7 + u, (int)(end - p), p);
        }
        int i = 7; /* step the counter */
        while (i >= 0 && ref[i] == '9')
            ref[i--] = '0';
        if (i >= 0) {
            ref[i]++;
            if (i < first)
                first = i;
        }
    }
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

static void test_longest_fit(void **state)
{
    (void)state;
    /* the longest texts, 20 digits and a sign with 19, end at `end` and start
     * exactly their length before it */
    char buf[24];
    memset(buf, '#', sizeof buf);
    char *p = cap_fmt_u64(buf + 22, UINT64_MAX);
    assert_ptr_equal(p, buf + 2);
    assert_memory_equal(p, "18446744073709551615", 20);
    assert_memory_equal(buf, "##", 2);
    assert_memory_equal(buf + 22, "##", 2);
    memset(buf, '#', sizeof buf);
    p = cap_fmt_i64(buf + 22, INT64_MIN);
    assert_ptr_equal(p, buf + 2);
    assert_memory_equal(p, "-9223372036854775808", 20);
    assert_memory_equal(buf, "##", 2);
    assert_memory_equal(buf + 22, "##", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_every_chunk),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_longest_fit),
        cmocka_unit_test(test_ends_at_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
