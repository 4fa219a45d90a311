#include "cap_utf8.h"

#include <string.h>

#include "cap_swar.h"

/* Length of the valid sequence starting at s[i], or 0 if invalid. Ranges
 * follow the well-formed byte sequences table of Unicode (chapter 3). */
static size_t sequence_len(const uint8_t *s, size_t len, size_t i)
{
    uint8_t b = s[i];
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        n = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3;
        if (b == 0xE0)
            lo = 0xA0; /* overlong */
        else if (b == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4;
        if (b == 0xF0)
            lo = 0x90; /* overlong */
        else if (b == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (len - i < n)
        return 0;
    if (s[i + 1] < lo || s[i + 1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if ((s[i + k] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* The shared loop: with no_nul, a 0x00 byte also stops the scan. */
static size_t check(const uint8_t *s, size_t len, int no_nul)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII runs are the common case: test eight bytes at a time (and,
         * for text, whether any of them is zero). */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((no_nul ? cap_swar_high_or_zero(w) : w) & CAP_SWAR_HIGHS)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        if (s[i] < 0x80) {
            if (no_nul && s[i] == 0)
                return i;
            i++;
            continue;
        }
        size_t n = sequence_len(s, len, i);
        if (n == 0)
            return i;
        i += n;
    }
    return CAP_UTF8_VALID;
}

size_t cap_utf8_check(const uint8_t *s, size_t len)
{
    return check(s, len, 0);
}

size_t cap_utf8_check_text(const uint8_t *s, size_t len)
{
    return check(s, len, 1);
}
