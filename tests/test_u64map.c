/* The integer map: a random mix of put/del/get checked against an array
 * model (keys drawn from a small range, so deletes hit runs that wrap the
 * table), sequential keys as a scheduler's admission numbers arrive, the
 * extreme keys, replacement and bad arguments. */
#include "testutil.h"

#include "cap_error.h"
#include "ref_u64map.h"

#define RANGE 500

static uint64_t step_rand(uint64_t *s) /* xorshift64*, test-local */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static void test_random_ops_follow_model(void **state)
{
    (void)state;
    static char cells[RANGE];
    void *model[RANGE] = {0};
    ref_u64map m;
    ref_u64map_init(&m);
    uint64_t s = 7;
    size_t live = 0;
    for (int n = 0; n < 300000; n++) {
        uint64_t r = step_rand(&s);
        uint64_t k = r % RANGE;
        int op = (int)((r >> 40) % 4);
        if (op == 0 || op == 1) {
            void *v = &cells[(k + (uint64_t)n) % RANGE];
            assert_int_equal(ref_u64map_put(&m, k, v), CAP_OK);
            live += model[k] == NULL;
            model[k] = v;
        } else if (op == 2) {
            assert_int_equal(ref_u64map_del(&m, k), model[k] != NULL);
            live -= model[k] != NULL;
            model[k] = NULL;
        } else {
            assert_ptr_equal(ref_u64map_get(&m, k), model[k]);
        }
        assert_int_equal(ref_u64map_len(&m), live);
    }
    for (uint64_t k = 0; k < RANGE; k++)
        assert_ptr_equal(ref_u64map_get(&m, k), model[k]);
    assert_true(m.cap <= 4 * RANGE); /* no tombstones to grow over */
    ref_u64map_free(&m);
}

static void test_sequential_window(void **state)
{
    (void)state;
    int v = 0;
    ref_u64map m;
    ref_u64map_init(&m);
    /* admission numbers 1..200000 with the oldest leaving after 1000 */
    for (uint64_t seq = 1; seq <= 200000; seq++) {
        assert_int_equal(ref_u64map_put(&m, seq, &v), CAP_OK);
        if (seq > 1000)
            assert_int_equal(ref_u64map_del(&m, seq - 1000), 1);
    }
    assert_int_equal(ref_u64map_len(&m), 1000);
    assert_true(m.cap <= 4096);
    for (uint64_t seq = 1; seq <= 200000; seq++)
        assert_int_equal(ref_u64map_get(&m, seq) != NULL, seq > 199000);
    ref_u64map_free(&m);
}

static void test_edges_and_arguments(void **state)
{
    (void)state;
    int a = 1, b = 2;
    ref_u64map m;
    ref_u64map_init(&m);
    assert_null(ref_u64map_get(&m, 0));
    assert_int_equal(ref_u64map_del(&m, 0), 0);
    assert_int_equal(ref_u64map_put(&m, 0, &a), CAP_OK); /* 0 is a key like any other */
    assert_int_equal(ref_u64map_put(&m, UINT64_MAX, &b), CAP_OK);
    assert_ptr_equal(ref_u64map_get(&m, 0), &a);
    assert_ptr_equal(ref_u64map_get(&m, UINT64_MAX), &b);
    assert_int_equal(ref_u64map_put(&m, 0, &b), CAP_OK);
    assert_ptr_equal(ref_u64map_get(&m, 0), &b);
    assert_int_equal(ref_u64map_len(&m), 2);
    assert_int_equal(ref_u64map_put(&m, 5, NULL), CAP_EINVAL);
    assert_int_equal(ref_u64map_put(NULL, 5, &a), CAP_EINVAL);
    assert_null(ref_u64map_get(NULL, 0));
    assert_int_equal(ref_u64map_del(NULL, 0), 0);
    assert_int_equal(ref_u64map_del(&m, UINT64_MAX), 1);
    assert_null(ref_u64map_get(&m, UINT64_MAX));
    assert_int_equal(ref_u64map_len(&m), 1);
    ref_u64map_free(&m);
    ref_u64map_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_ops_follow_model),
        cmocka_unit_test(test_sequential_window),
        cmocka_unit_test(test_edges_and_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
