/* The eight-bytes-at-once JSON tests of cap_swar.h against a byte-by-byte
 * look: whether a word holds a special byte (below 0x20, '"', '\\') and
 * which byte is the first, over words built to make borrows run (special
 * bytes next to each other and next to their neighbours 0x20, 0x21, '#',
 * ']', 0x80, 0xff) and over random words. */
#include "testutil.h"

#include "cap_swar.h"

static int special(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

static void check_word(const unsigned char b[8])
{
    uint64_t x;
    memcpy(&x, b, 8);
    int first = -1;
    for (int i = 0; i < 8 && first < 0; i++)
        if (special(b[i]))
            first = i;
    uint64_t bits = cap_swar_json_special_bits(x);
    assert_int_equal(cap_swar_json_special(x), first >= 0);
    assert_int_equal(bits != 0, first >= 0);
    if (first >= 0) {
        int got = cap_swar_first(bits);
        if (got >= 0) /* -1: this machine needs the byte-by-byte look */
            assert_int_equal(got, first);
    }
}

static void test_tricky_neighbours(void **state)
{
    (void)state;
    static const unsigned char pick[] = {0x00, 0x01, 0x1f, 0x20, 0x21, '"', '#', '\\', ']',
                                         'a',  0x7f, 0x80, 0x9f, 0xa0, 0xdc, 0xff};
    enum { K = sizeof pick };
    unsigned char b[8];
    /* every pair of picks at every pair of neighbouring positions, the rest
     * plain */
    for (int at = 0; at < 7; at++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
                memset(b, 'x', 8);
                b[at] = pick[i];
                b[at + 1] = pick[j];
                check_word(b);
            }
}

static void test_random_words(void **state)
{
    (void)state;
    uint64_t s = 0x9e3779b97f4a7c15u;
    unsigned char b[8];
    for (int n = 0; n < 200000; n++) {
        for (int i = 0; i < 8; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            /* mostly plain text, sometimes a special byte */
            unsigned r = (unsigned)(s >> 24) & 0xff;
            b[i] = r < 16 ? (unsigned char)(r & 0x1f) : r < 20 ? '"' : r < 24 ? '\\' : (unsigned char)(s >> 40);
        }
        check_word(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tricky_neighbours),
        cmocka_unit_test(test_random_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
