/* Base64: the encoder against RFC 4648's vectors and against a plain
 * six-bits-at-a-time encoder on every length up to a few hundred bytes,
 * every byte value in every position of a triple, and round trips through
 * the decoder. */
#include "testutil.h"

#include "cap_base64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The encoding worked out one bit at a time: the reference the encoder
 * must match byte for byte. */
static size_t slow_encode(const uint8_t *src, size_t n, char *dst)
{
    size_t o = 0, bits = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | src[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            dst[o++] = alphabet[acc >> bits & 63];
        }
    }
    if (bits)
        dst[o++] = alphabet[acc << (6 - bits) & 63];
    while (o % 4)
        dst[o++] = '=';
    dst[o] = 0;
    return o;
}

static void check_encode(const uint8_t *src, size_t n)
{
    char want[1024], got[1024 + 8];
    assert_true(cap_base64_encoded_len(n) < sizeof want);
    memset(got, 'X', sizeof got);
    size_t wn = slow_encode(src, n, want);
    size_t gn = cap_base64_encode(src, n, got);
    assert_int_equal(gn, wn);
    assert_int_equal(gn, cap_base64_encoded_len(n));
    assert_string_equal(got, want);
    assert_int_equal(got[gn + 1], 'X'); /* nothing written past the NUL */
    uint8_t back[1024];
    size_t bn = 0;
    assert_true(cap_base64_decoded_max(gn) <= sizeof back);
    assert_int_equal(cap_base64_decode(got, gn, back, &bn), 0);
    assert_int_equal(bn, n);
    assert_memory_equal(back, src, n);
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"",         "Zg==",     "Zm8=",        "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        char got[16];
        size_t n = cap_base64_encode((const uint8_t *)in[i], strlen(in[i]), got);
        assert_int_equal(n, strlen(out[i]));
        assert_string_equal(got, out[i]);
    }
}

/* Every value of each byte of a triple (the others fixed), and the 12-bit
 * halves at their extremes: each of the 4096 pairs the encoder looks up
 * is reached. */
static void test_every_byte_value(void **state)
{
    (void)state;
    for (unsigned pos = 0; pos < 3; pos++)
        for (unsigned v = 0; v < 256; v++)
            for (unsigned fill = 0; fill < 256; fill += 85) {
                uint8_t t[3] = {(uint8_t)fill, (uint8_t)(255 - fill), (uint8_t)(fill ^ 0x5a)};
                t[pos] = (uint8_t)v;
                for (size_t n = 1; n <= 3; n++)
                    check_encode(t, n);
            }
    for (unsigned hi = 0; hi < 4096; hi++) { /* first half hi, second half 4095 - hi */
        unsigned lo = 4095 - hi;
        uint8_t t[3] = {(uint8_t)(hi >> 4), (uint8_t)((hi & 15) << 4 | lo >> 8), (uint8_t)lo};
        check_encode(t, 3);
    }
}

/* Every length up to 700 bytes, pseudo-random content. */
static void test_lengths(void **state)
{
    (void)state;
    uint8_t buf[700];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 0; n <= sizeof buf; n++)
        check_encode(buf, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_every_byte_value),
        cmocka_unit_test(test_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
