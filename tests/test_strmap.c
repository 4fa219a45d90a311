/* The string map: get/put/put_new/del against a plain list model under random
 * operations over short (inline) and long keys (deletes shift entries back
 * across the table's wrap-around), replacement, bad arguments, keys at the
 * inline bound, and probe runs that stay reachable. */
#include "testutil.h"

#include "cap_error.h"
#include "ref_strmap.h"

#define KEYS 300

/* A small deterministic generator (xorshift64*), enough for a test. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Key k of a test: short ones (kept inside their slots) and long ones
 * (kept by pointer) mixed, with lengths on both sides of the bound. */
static void key_name(char *buf, size_t n, int k)
{
    static const char *const prefix[] = {"job-", "job-0000000000-", "a-much-longer-key-of-job-",
                                         "j-00000000-"};
    snprintf(buf, n, "%s%d", prefix[k % 4], k);
}

static void test_matches_model(void **state)
{
    (void)state;
    static int values[KEYS]; /* distinct addresses used as values */
    void *model[KEYS] = {0};
    char key[32];
    ref_strmap m;
    ref_strmap_init(&m);
    uint64_t seed = 42;
    size_t live = 0;
    for (int step = 0; step < 200000; step++) {
        uint64_t r = next_rand(&seed);
        int k = (int)(r % KEYS);
        key_name(key, sizeof key, k);
        void *found = &found;
        switch ((r >> 32) % 4) {
        case 0:
            assert_int_equal(ref_strmap_put(&m, key, &values[(k + step) % KEYS]), CAP_OK);
            if (!model[k])
                live++;
            model[k] = &values[(k + step) % KEYS];
            break;
        case 3: /* put_new: stores only a key that is not there */
            assert_int_equal(ref_strmap_put_new(&m, key, &values[(k + step) % KEYS], &found),
                             CAP_OK);
            assert_ptr_equal(found, model[k]);
            if (!model[k]) {
                live++;
                model[k] = &values[(k + step) % KEYS];
            }
            break;
        case 1:
            assert_int_equal(ref_strmap_del(&m, key), model[k] != NULL);
            if (model[k])
                live--;
            model[k] = NULL;
            break;
        default:
            assert_ptr_equal(ref_strmap_get(&m, key), model[k]);
        }
        assert_int_equal(ref_strmap_len(&m), live);
        if (step % 20000 == 0) /* every key, present or not, answers as the model */
            for (int i = 0; i < KEYS; i++) {
                key_name(key, sizeof key, i);
                assert_ptr_equal(ref_strmap_get(&m, key), model[i]);
            }
    }
    /* The table never grew past what the live keys need (no tombstones). */
    assert_true(m.cap <= 4 * KEYS);
    ref_strmap_free(&m);
}

static void test_churn_keeps_table_small(void **state)
{
    (void)state;
    int v = 1;
    char key[32];
    ref_strmap m;
    ref_strmap_init(&m);
    /* A sliding window of 100 live keys over 100000 distinct ones. */
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(ref_strmap_put(&m, key, &v), CAP_OK);
        if (i >= 100) {
            snprintf(key, sizeof key, "k%d", i - 100);
            assert_int_equal(ref_strmap_del(&m, key), 1);
        }
    }
    assert_int_equal(ref_strmap_len(&m), 100);
    assert_true(m.cap <= 256);
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_true((ref_strmap_get(&m, key) != NULL) == (i >= 99900));
    }
    ref_strmap_free(&m);
}

static void test_replace_and_arguments(void **state)
{
    (void)state;
    int a = 1, b = 2;
    ref_strmap m;
    ref_strmap_init(&m);
    assert_null(ref_strmap_get(&m, "x"));
    assert_int_equal(ref_strmap_del(&m, "x"), 0);
    ref_strmap_prefetch(&m, "x"); /* a hint: safe on an empty map, NULLs and any key */
    ref_strmap_prefetch(NULL, "x");
    ref_strmap_prefetch(&m, NULL);
    assert_int_equal(ref_strmap_len(&m), 0);
    assert_int_equal(ref_strmap_put(&m, "x", &a), CAP_OK);
    ref_strmap_prefetch(&m, "x");
    ref_strmap_prefetch(&m, "a-key-longer-than-the-inline-bound");
    assert_ptr_equal(ref_strmap_get(&m, "x"), &a);
    assert_int_equal(ref_strmap_len(&m), 1);
    assert_int_equal(ref_strmap_put(&m, "x", &b), CAP_OK);
    assert_ptr_equal(ref_strmap_get(&m, "x"), &b);
    assert_int_equal(ref_strmap_len(&m), 1);
    assert_int_equal(ref_strmap_put(&m, NULL, &a), CAP_EINVAL);
    assert_int_equal(ref_strmap_put(&m, "y", NULL), CAP_EINVAL);
    assert_int_equal(ref_strmap_put(NULL, "y", &a), CAP_EINVAL);
    assert_null(ref_strmap_get(&m, NULL));
    assert_null(ref_strmap_get(NULL, "x"));
    assert_int_equal(ref_strmap_del(NULL, "x"), 0);
    assert_int_equal(ref_strmap_put(&m, "", &a), CAP_OK); /* the empty key is a key */
    assert_ptr_equal(ref_strmap_get(&m, ""), &a);
    /* put_new leaves a key that is there alone and names its value */
    void *found = NULL;
    assert_int_equal(ref_strmap_put_new(&m, "x", &a, &found), CAP_OK);
    assert_ptr_equal(found, &b);
    assert_ptr_equal(ref_strmap_get(&m, "x"), &b);
    assert_int_equal(ref_strmap_put_new(&m, "z", &a, &found), CAP_OK);
    assert_null(found);
    assert_ptr_equal(ref_strmap_get(&m, "z"), &a);
    assert_int_equal(ref_strmap_len(&m), 3);
    assert_int_equal(ref_strmap_put_new(&m, NULL, &a, &found), CAP_EINVAL);
    assert_int_equal(ref_strmap_put_new(&m, "w", NULL, &found), CAP_EINVAL);
    assert_int_equal(ref_strmap_put_new(NULL, "w", &a, &found), CAP_EINVAL);
    ref_strmap_free(&m);
    /* on a map that borrows its keys, put_new keeps the caller's pointer */
    ref_strmap_init_borrowed(&m);
    char k1[] = "key";
    assert_int_equal(ref_strmap_put_new(&m, k1, &a, &found), CAP_OK);
    assert_ptr_equal(ref_strmap_get(&m, "key"), &a);
    /* a short key is copied into its slot: the caller's buffer may change */
    k1[0] = 'X';
    assert_ptr_equal(ref_strmap_get(&m, "key"), &a);
    assert_null(ref_strmap_get(&m, "Xey"));
    /* a long key is the caller's pointer */
    char k2[] = "a-key-longer-than-the-inline-bound";
    assert_true(strlen(k2) > REF_STRMAP_INLINE);
    assert_int_equal(ref_strmap_put_new(&m, k2, &b, &found), CAP_OK);
    int borrowed = 0;
    for (size_t i = 0; i < m.cap; i++)
        borrowed += m.slots[i].value && m.slots[i].k.out.tag == 1 && m.slots[i].k.out.key == k2;
    assert_int_equal(borrowed, 1);
    ref_strmap_free(&m);
    ref_strmap_free(NULL);
}

/* Keys at the inline bound and one past it, keys that differ only in
 * their last byte, and a short key that is the prefix of a long one,
 * all live together: each finds its own value, in an owning map and a
 * borrowing one. */
static void test_inline_bound(void **state)
{
    (void)state;
    static int v[8];
    const char *keys[8] = {
        "12345678901234",   /* REF_STRMAP_INLINE characters: inline */
        "12345678901235",   /* the same but the last byte */
        "123456789012345",  /* one past: kept by pointer */
        "123456789012346",  /* the same but the last byte */
        "1234567890123",    /* a prefix of the inline ones */
        "",                 /* the empty key */
        "1234567890123456789012345",
        "1",
    };
    assert_int_equal(strlen(keys[0]), REF_STRMAP_INLINE);
    for (int mode = 0; mode < 2; mode++) {
        ref_strmap m;
        if (mode)
            ref_strmap_init_borrowed(&m);
        else
            ref_strmap_init(&m);
        for (int i = 0; i < 8; i++)
            assert_int_equal(ref_strmap_put(&m, keys[i], &v[i]), CAP_OK);
        for (int i = 0; i < 8; i++)
            assert_ptr_equal(ref_strmap_get(&m, keys[i]), &v[i]);
        assert_null(ref_strmap_get(&m, "123456789012"));
        assert_null(ref_strmap_get(&m, "12345678901236"));
        assert_null(ref_strmap_get(&m, "123456789012347"));
        /* deleting every other key leaves the rest reachable */
        for (int i = 0; i < 8; i += 2)
            assert_int_equal(ref_strmap_del(&m, keys[i]), 1);
        for (int i = 0; i < 8; i++)
            assert_ptr_equal(ref_strmap_get(&m, keys[i]), i % 2 ? &v[i] : NULL);
        assert_int_equal(ref_strmap_len(&m), 4);
        ref_strmap_free(&m);
    }
}

/* A key is found the same wherever its bytes lie: keys of every length
 * from 0 to 20, put from plain copies, are looked up, put_new'd and
 * deleted through copies placed at every position just before a page's
 * end and across a page boundary, with non-NUL garbage after their NUL,
 * and looked up through copies in heap blocks of their exact size. */
static void test_key_placement(void **state)
{
    (void)state;
    enum { PAGE = 4096, MAXLEN = 20 };
    static int v[MAXLEN + 1];
    const char *text = "0123456789abcdefghijk";
    char plain[MAXLEN + 1][MAXLEN + 1];
    unsigned char *buf = aligned_alloc(PAGE, 2 * PAGE);
    assert_non_null(buf);
    ref_strmap m;
    ref_strmap_init(&m);
    for (int n = 0; n <= MAXLEN; n++) {
        memcpy(plain[n], text, (size_t)n);
        plain[n][n] = '\0';
        assert_int_equal(ref_strmap_put(&m, plain[n], &v[n]), CAP_OK);
    }
    for (int n = 0; n <= MAXLEN; n++) { /* a copy in a heap block of its own size */
        char *copy = malloc((size_t)n + 1);
        assert_non_null(copy);
        memcpy(copy, plain[n], (size_t)n + 1);
        assert_ptr_equal(ref_strmap_get(&m, copy), &v[n]);
        free(copy);
    }
    for (int pass = 0; pass < 2; pass++) /* pass 1 deletes through the placed copy */
        for (int n = 0; n <= MAXLEN; n++) {
            /* starts ending at the buffer's (a page's) end, and across the
             * boundary between its two pages */
            int starts[2][2] = {{2 * PAGE - (n + 1) - 24, 2 * PAGE - (n + 1)},
                                {PAGE - 24, PAGE + 4}};
            for (int r = 0; r < 2; r++)
                for (int at = starts[r][0]; at <= starts[r][1]; at++) {
                    for (int i = 0; i < 2 * PAGE; i++)
                        buf[i] = (unsigned char)(0x80 | ((i * 7 + n) & 0x7f));
                    char *key = (char *)buf + at;
                    memcpy(key, plain[n], (size_t)n + 1);
                    if (pass == 0) {
                        void *found = NULL;
                        assert_ptr_equal(ref_strmap_get(&m, key), &v[n]);
                        assert_int_equal(ref_strmap_put_new(&m, key, &v[0], &found), CAP_OK);
                        assert_ptr_equal(found, &v[n]);
                        assert_int_equal(ref_strmap_put(&m, key, &v[n]), CAP_OK);
                    } else {
                        int there = ref_strmap_get(&m, plain[n]) != NULL;
                        assert_int_equal(ref_strmap_del(&m, key), there);
                        assert_null(ref_strmap_get(&m, key));
                        if (at < starts[r][1]) /* put back for the next position */
                            assert_int_equal(ref_strmap_put(&m, plain[n], &v[n]), CAP_OK);
                    }
                }
        }
    assert_int_equal(ref_strmap_len(&m), 0);
    ref_strmap_free(&m);
    free(buf);
}

/* A borrowed-key map under random puts, replacements and deletes, where
 * each value owns its key and is freed as soon as the map lets go of it
 * (replaced or deleted): every answer matches the model, and under ASan
 * any read of a key the map should have let go of fails the test. */
typedef struct {
    char key[40];
} owner;

static void test_borrowed_keys_follow_their_values(void **state)
{
    (void)state;
    owner *model[KEYS] = {0};
    char key[40];
    ref_strmap m;
    ref_strmap_init_borrowed(&m);
    uint64_t seed = 7;
    for (int step = 0; step < 100000; step++) {
        uint64_t r = next_rand(&seed);
        int k = (int)(r % KEYS);
        key_name(key, sizeof key, k);
        switch ((r >> 32) % 3) {
        case 0: { /* put: a new owner of the key, replacing any older one */
            owner *o = malloc(sizeof *o);
            assert_non_null(o);
            memcpy(o->key, key, sizeof key);
            assert_int_equal(ref_strmap_put(&m, o->key, o), CAP_OK);
            free(model[k]); /* the map now holds o's key, not the old one */
            model[k] = o;
            break;
        }
        case 1:
            assert_int_equal(ref_strmap_del(&m, key), model[k] != NULL);
            free(model[k]);
            model[k] = NULL;
            break;
        default:
            assert_ptr_equal(ref_strmap_get(&m, key), model[k]);
        }
    }
    size_t live = 0;
    for (int i = 0; i < KEYS; i++) {
        key_name(key, sizeof key, i);
        assert_ptr_equal(ref_strmap_get(&m, key), model[i]);
        live += model[i] != NULL;
    }
    assert_int_equal(ref_strmap_len(&m), live);
    ref_strmap_free(&m); /* frees no key */
    for (int i = 0; i < KEYS; i++)
        free(model[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_model),
        cmocka_unit_test(test_churn_keeps_table_small),
        cmocka_unit_test(test_replace_and_arguments),
        cmocka_unit_test(test_inline_bound),
        cmocka_unit_test(test_key_placement),
        cmocka_unit_test(test_borrowed_keys_follow_their_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
