/* Velocity windows: counting inside (now - window, now], dry runs, the
 * count cap, clocks that step back, and both memory bounds with their
 * least-recently-hit eviction. */
#include "testutil.h"

#include "ref_velocity.h"

#define W 10  /* window, in the test's time units */

static void test_counts_inside_the_window(void **state)
{
    (void)state;
    ref_velocity_store *s = ref_velocity_store_new(0, 0);
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 0, 1), 1);
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 3, 1), 2);
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 9, 1), 3);
    /* At 10 the time 0 is at now - window: outside. */
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 10, 0), 3);
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 13, 0), 2);
    /* Keys and rules are separate windows. */
    assert_int_equal(ref_velocity_hit(s, "r", "other", W, 5, 13, 1), 1);
    assert_int_equal(ref_velocity_hit(s, "r2", "k", W, 5, 13, 1), 1);
    assert_int_equal(ref_velocity_store_size(s), 3);
    ref_velocity_store_free(s);
}

static void test_dry_run_changes_nothing(void **state)
{
    (void)state;
    ref_velocity_store *s = ref_velocity_store_new(0, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 1, 0), 1);
    assert_int_equal(ref_velocity_store_size(s), 0);
    ref_velocity_hit(s, "r", "k", W, 5, 1, 1);
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 1, 0), 2);
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 1, 0), 2);
    ref_velocity_store_free(s);
}

static void test_count_is_capped_and_ring_keeps_newest(void **state)
{
    (void)state;
    ref_velocity_store *s = ref_velocity_store_new(0, 0);
    int64_t c = 0;
    for (int t = 0; t < 100; t++)
        c = ref_velocity_hit(s, "r", "k", 1000, 3, t, 1);
    assert_int_equal(c, 4);  /* max_requests + 1 */
    /* Only the newest 4 times are kept: at 1096 + window they expire. */
    assert_int_equal(ref_velocity_hit(s, "r", "k", 1000, 3, 1096, 0), 4);
    assert_int_equal(ref_velocity_hit(s, "r", "k", 1000, 3, 1097, 0), 3);
    ref_velocity_store_free(s);
}

static void test_clock_stepping_back_is_clamped(void **state)
{
    (void)state;
    ref_velocity_store *s = ref_velocity_store_new(0, 0);
    ref_velocity_hit(s, "r", "k", W, 5, 100, 1);
    /* An earlier now counts as 100, so nothing is dropped or misordered. */
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 50, 1), 2);
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 109, 0), 3);
    assert_int_equal(ref_velocity_hit(s, "r", "k", W, 5, 110, 0), 1);
    ref_velocity_store_free(s);
}

static void test_key_bound_evicts_least_recently_hit(void **state)
{
    (void)state;
    ref_velocity_store *s = ref_velocity_store_new(3, 0);
    ref_velocity_hit(s, "r", "a", W, 5, 1, 1);
    ref_velocity_hit(s, "r", "b", W, 5, 2, 1);
    ref_velocity_hit(s, "r", "c", W, 5, 3, 1);
    ref_velocity_hit(s, "r", "a", W, 5, 4, 1);  /* a is now the most recent */
    ref_velocity_hit(s, "r", "d", W, 5, 5, 1);  /* evicts b */
    assert_int_equal(ref_velocity_store_size(s), 3);
    assert_int_equal(ref_velocity_hit(s, "r", "a", W, 5, 5, 0), 3);
    assert_int_equal(ref_velocity_hit(s, "r", "b", W, 5, 5, 0), 1);
    assert_int_equal(ref_velocity_hit(s, "r", "c", W, 5, 5, 0), 2);
    ref_velocity_store_free(s);
}

static void test_stamp_bound_evicts_other_windows(void **state)
{
    (void)state;
    /* Rings grow 4, 8, ...: a budget of 8 stored times holds two small rings. */
    ref_velocity_store *s = ref_velocity_store_new(0, 8);
    ref_velocity_hit(s, "r", "a", W, 100, 1, 1);
    ref_velocity_hit(s, "r", "b", W, 100, 2, 1);
    for (int t = 3; t < 8; t++)  /* b grows past 4: a must go */
        ref_velocity_hit(s, "r", "b", W, 100, t, 1);
    assert_int_equal(ref_velocity_hit(s, "r", "a", W, 100, 8, 0), 1);
    assert_int_equal(ref_velocity_hit(s, "r", "b", W, 100, 8, 0), 7);
    /* With the budget exhausted by b alone, b keeps only its newest times. */
    for (int t = 8; t < 20; t++)
        ref_velocity_hit(s, "r", "b", 1000, 100, t, 1);
    assert_int_equal(ref_velocity_hit(s, "r", "b", 1000, 100, 20, 0), 9);
    ref_velocity_store_free(s);
}

static void test_long_keys(void **state)
{
    (void)state;
    ref_velocity_store *s = ref_velocity_store_new(0, 0);
    char key[1000];
    memset(key, 'x', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(ref_velocity_hit(s, "rule", key, W, 2, 1, 1), 1);
    assert_int_equal(ref_velocity_hit(s, "rule", key, W, 2, 2, 1), 2);
    ref_velocity_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_inside_the_window),
        cmocka_unit_test(test_dry_run_changes_nothing),
        cmocka_unit_test(test_count_is_capped_and_ring_keeps_newest),
        cmocka_unit_test(test_clock_stepping_back_is_clamped),
        cmocka_unit_test(test_key_bound_evicts_least_recently_hit),
        cmocka_unit_test(test_stamp_bound_evicts_other_windows),
        cmocka_unit_test(test_long_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
