/* cap_sha256: the standard test vectors, pieces versus one call, and a
 * copied context that goes on on its own. */
#include "testutil.h"

#include <openssl/evp.h>

#include "cap_sha256.h"

static void hex_of(const uint8_t d[CAP_SHA256_LEN], char out[65])
{
    for (int i = 0; i < CAP_SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void test_vectors(void **state)
{
    (void)state;
    uint8_t d[CAP_SHA256_LEN];
    char hex[65];
    cap_sha256("", 0, d);
    hex_of(d, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cap_sha256("abc", 3, d);
    hex_of(d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cap_sha256(two, strlen(two), d);
    hex_of(d, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* Any split of the input into updates gives the digest of one call, which
 * is EVP's digest of the same bytes. */
static void test_pieces_match_one_call_and_evp(void **state)
{
    (void)state;
    enum { N = 5000 };
    static uint8_t buf[N];
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    uint8_t one[CAP_SHA256_LEN], evp[CAP_SHA256_LEN], got[CAP_SHA256_LEN];
    cap_sha256(buf, N, one);
    unsigned n = 0;
    assert_int_equal(EVP_Digest(buf, N, evp, &n, EVP_sha256(), NULL), 1);
    assert_memory_equal(one, evp, CAP_SHA256_LEN);
    for (size_t step = 1; step < 300; step += 37) {
        cap_sha256_ctx c;
        cap_sha256_init(&c);
        for (size_t at = 0; at < N; at += step)
            cap_sha256_update(&c, buf + at, at + step <= N ? step : N - at);
        cap_sha256_update(&c, buf, 0); /* an empty update changes nothing */
        cap_sha256_final(&c, got);
        assert_memory_equal(got, one, CAP_SHA256_LEN);
    }
}

/* A copy of a running context finishes to the digest so far, and the
 * original goes on to the digest of the whole. */
static void test_copy_goes_on(void **state)
{
    (void)state;
    uint8_t part[CAP_SHA256_LEN], whole[CAP_SHA256_LEN], d[CAP_SHA256_LEN];
    cap_sha256_ctx c;
    cap_sha256_init(&c);
    cap_sha256_update(&c, "ab", 2);
    cap_sha256_ctx snap = c;
    cap_sha256_final(&snap, part);
    cap_sha256_update(&c, "c", 1);
    cap_sha256_final(&c, whole);
    cap_sha256("ab", 2, d);
    assert_memory_equal(part, d, CAP_SHA256_LEN);
    cap_sha256("abc", 3, d);
    assert_memory_equal(whole, d, CAP_SHA256_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_pieces_match_one_call_and_evp),
        cmocka_unit_test(test_copy_goes_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
