/* The compact id index: a random mix of put/del/lookup over string ids
 * checked against an array model (records numbered from a free list, the
 * id compared on the record as a caller does), ids that share every hash
 * bit (the walk hands out each record, a delete in the middle of a run
 * keeps the rest found), runs that wrap the table's end, and bad
 * arguments. */
#include "testutil.h"

#include "cap_error.h"
#include "ref_idindex.h"

#define RANGE 600

static uint64_t step_rand(uint64_t *s) /* xorshift64*, test-local */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* The record numbers whose cells agree with hash, in walk order. */
static size_t walk_all(const ref_idindex *x, uint64_t hash, uint32_t *out, size_t max)
{
    ref_idindex_walk w;
    size_t n = 0;
    for (uint32_t r = ref_idindex_first(x, hash, &w); r != REF_IDINDEX_NONE; r = ref_idindex_next(&w))
        if (n < max)
            out[n++] = r;
    return n;
}

/* The record holding id, found as a caller finds it: the id compared on
 * each candidate record. */
static uint32_t lookup(const ref_idindex *x, char recs[][16], const char *id)
{
    ref_idindex_walk w;
    uint64_t h = ref_idindex_hash(id, strlen(id));
    for (uint32_t r = ref_idindex_first(x, h, &w); r != REF_IDINDEX_NONE; r = ref_idindex_next(&w))
        if (strcmp(recs[r], id) == 0)
            return r;
    return REF_IDINDEX_NONE;
}

static void test_random_ops_follow_model(void **state)
{
    (void)state;
    static char recs[RANGE][16];   /* record number -> id ("" when free) */
    uint32_t model[RANGE];         /* id number -> record, or NONE */
    uint32_t free_recs[RANGE], n_free = 0;
    for (uint32_t i = 0; i < RANGE; i++) {
        model[i] = REF_IDINDEX_NONE;
        free_recs[n_free++] = RANGE - 1 - i;
    }
    ref_idindex x;
    ref_idindex_init(&x);
    uint64_t s = 11;
    uint32_t live = 0;
    for (int n = 0; n < 300000; n++) {
        uint64_t r = step_rand(&s);
        uint32_t k = (uint32_t)(r % RANGE);
        char id[16];
        snprintf(id, sizeof id, "job-%u", k);
        uint64_t h = ref_idindex_hash(id, strlen(id));
        int op = (int)((r >> 40) % 3);
        if (op == 0 && model[k] == REF_IDINDEX_NONE) {
            uint32_t rec = free_recs[--n_free];
            snprintf(recs[rec], sizeof recs[rec], "%s", id);
            assert_int_equal(ref_idindex_put(&x, h, rec), CAP_OK);
            model[k] = rec;
            live++;
        } else if (op == 1) {
            uint32_t rec = model[k];
            if (rec == REF_IDINDEX_NONE) {
                assert_int_equal(ref_idindex_del(&x, h, 0), 0);
                continue;
            }
            assert_int_equal(ref_idindex_del(&x, h, rec), 1);
            assert_int_equal(ref_idindex_del(&x, h, rec), 0);
            recs[rec][0] = 0;
            free_recs[n_free++] = rec;
            model[k] = REF_IDINDEX_NONE;
            live--;
        } else {
            assert_int_equal(lookup(&x, recs, id), model[k]);
        }
        assert_int_equal(ref_idindex_len(&x), live);
    }
    for (uint32_t k = 0; k < RANGE; k++) {
        char id[16];
        snprintf(id, sizeof id, "job-%u", k);
        assert_int_equal(lookup(&x, recs, id), model[k]);
    }
    assert_true(x.cap <= 2048); /* load at most 3/4, no tombstones to grow over */
    ref_idindex_free(&x);
}

static void test_shared_hash_run(void **state)
{
    (void)state;
    ref_idindex x;
    ref_idindex_init(&x);
    /* Ten records under one hash, and a neighbour homed one cell later
     * (its run is pushed along by theirs). */
    uint64_t h = UINT64_C(0x1234567800000000) | 0x9abc, near = h + (UINT64_C(1) << 32);
    for (uint32_t r = 0; r < 10; r++)
        assert_int_equal(ref_idindex_put(&x, h, r * 3), CAP_OK);
    assert_int_equal(ref_idindex_put(&x, near, 77), CAP_OK);
    uint32_t got[16];
    assert_int_equal(walk_all(&x, h, got, 16), 10);
    for (uint32_t r = 0; r < 10; r++)
        assert_int_equal(got[r], r * 3);
    assert_int_equal(walk_all(&x, near, got, 16), 1);
    assert_int_equal(got[0], 77);
    /* a delete from the middle of the run: the rest and the neighbour stay found */
    assert_int_equal(ref_idindex_del(&x, h, 12), 1);
    assert_int_equal(ref_idindex_del(&x, h, 12), 0);
    assert_int_equal(ref_idindex_del(&x, near, 3), 0); /* right record, wrong hash */
    assert_int_equal(walk_all(&x, h, got, 16), 9);
    for (uint32_t i = 0, r = 0; r < 10; r++)
        if (r * 3 != 12)
            assert_int_equal(got[i++], r * 3);
    assert_int_equal(walk_all(&x, near, got, 16), 1);
    assert_int_equal(got[0], 77);
    /* a hash whose bits agree nowhere finds nothing */
    assert_int_equal(walk_all(&x, h ^ (UINT64_C(1) << 63), got, 16), 0);
    ref_idindex_free(&x);
}

static void test_run_wraps_the_end(void **state)
{
    (void)state;
    ref_idindex x;
    ref_idindex_init(&x);
    assert_int_equal(ref_idindex_put(&x, 0, 500), CAP_OK); /* the first put makes the table */
    uint32_t last = x.cap - 1;
    assert_int_equal(ref_idindex_del(&x, 0, 500), 1);
    /* three records homed at the last cell: the run wraps to cells 0 and 1 */
    uint64_t h = (uint64_t)last << 32;
    for (uint32_t r = 1; r <= 3; r++)
        assert_int_equal(ref_idindex_put(&x, h, r), CAP_OK);
    assert_int_equal(ref_idindex_put(&x, 0, 9), CAP_OK); /* home 0, behind the wrapped run */
    assert_true(x.cells[0] != 0 && x.cells[1] != 0 && x.cells[2] != 0);
    assert_int_equal(ref_idindex_del(&x, h, 1), 1); /* each wrapped cell shifts back */
    uint32_t got[8];
    assert_int_equal(walk_all(&x, h, got, 8), 2);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 3);
    assert_int_equal(walk_all(&x, 0, got, 8), 1);
    assert_int_equal(got[0], 9);
    assert_int_equal(x.cells[1], (uint64_t)9 + 1); /* moved back to one cell past its home */
    assert_int_equal(x.cells[2], 0);
    ref_idindex_free(&x);
}

static void test_edges_and_arguments(void **state)
{
    (void)state;
    ref_idindex x;
    ref_idindex_init(&x);
    ref_idindex_walk w;
    assert_int_equal(ref_idindex_first(&x, 42, &w), REF_IDINDEX_NONE); /* no table yet */
    ref_idindex_prefetch(&x, 42);
    assert_int_equal(ref_idindex_del(&x, 42, 0), 0);
    assert_int_equal(ref_idindex_put(&x, 42, REF_IDINDEX_NONE), CAP_EINVAL);
    assert_int_equal(ref_idindex_put(NULL, 42, 0), CAP_EINVAL);
    assert_int_equal(ref_idindex_del(NULL, 42, 0), 0);
    assert_int_equal(ref_idindex_put(&x, 42, REF_IDINDEX_NONE - 1), CAP_OK); /* the largest */
    assert_int_equal(ref_idindex_first(&x, 42, &w), REF_IDINDEX_NONE - 1);
    assert_int_equal(ref_idindex_next(&w), REF_IDINDEX_NONE);
    /* equal ids hash equal; the length is part of the hash */
    assert_true(ref_idindex_hash("job-17", 6) == ref_idindex_hash("job-17xyz", 6));
    assert_true(ref_idindex_hash("job-1", 5) != ref_idindex_hash("job-17", 6));
    assert_true(ref_idindex_hash("a-long-identifier-1", 19) != ref_idindex_hash("a-long-identifier-2", 19));
    ref_idindex_free(&x);
    assert_int_equal(x.cap, 0);
    ref_idindex_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_ops_follow_model),
        cmocka_unit_test(test_shared_hash_run),
        cmocka_unit_test(test_run_wraps_the_end),
        cmocka_unit_test(test_edges_and_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
