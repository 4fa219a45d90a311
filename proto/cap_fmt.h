/* Text of integers and bytes without printf, for writers on a hot path
 * (journal records).
 * Decimal: each writes the digits so that they end just before `end` and
 * returns where they start; 21 bytes before `end` are enough for any value
 * (20 digits and a sign). No NUL is written.
 * Hex: lowercase, two digits per byte, NUL-terminated; the reader takes
 * exactly 2n digits of either case. */
#ifndef CAP_FMT_H
#define CAP_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The decimal pairs "00".."99": two digits a step. */
static const char cap_fmt_pairs_[201] = "00010203040506070809101112131415161718192021222324"
                                        "25262728293031323334353637383940414243444546474849"
                                        "50515253545556575859606162636465666768697071727374"
                                        "75767778798081828384858687888990919293949596979899";

/* The decimal writers are always inlined: the journal writer formats
 * several numbers a record, and a call costs about as much as a short
 * number's digits. */
#define CAP_FMT_INLINE_ static inline __attribute__((always_inline))

/* Digits of u < 10^8 without leading zeros, ending before p, two a step
 * (32-bit divisions by a constant, which the compiler turns into
 * multiplications). */
CAP_FMT_INLINE_ char *cap_fmt_u32_(char *p, uint32_t u)
{
    while (u >= 100) {
        uint32_t q = u / 100;
        p -= 2;
        memcpy(p, cap_fmt_pairs_ + 2 * (u - 100 * q), 2);
        u = q;
    }
    if (u >= 10) {
        p -= 2;
        memcpy(p, cap_fmt_pairs_ + 2 * u, 2);
    } else {
        *--p = (char)('0' + u);
    }
    return p;
}

/* Exactly eight digits of u < 10^8 (leading zeros kept), ending before p,
 * by fixed-point arithmetic: y = u * ceil(2^48 / 10^6) holds u / 10^6 in
 * its top 16 bits and the last six digits as a 48-bit fraction;
 * multiplying the fraction by 100 brings the next two digits up. The
 * rounding error never reaches a digit for u < 10^8 (test_cap_fmt checks
 * every such u). */
CAP_FMT_INLINE_ char *cap_fmt_8_(char *p, uint32_t u)
{
    const uint64_t frac = ((uint64_t)1 << 48) - 1;
    uint64_t y = u * (uint64_t)281474977u;
    p -= 8;
    memcpy(p, cap_fmt_pairs_ + 2 * (y >> 48), 2);
    y = (y & frac) * 100;
    memcpy(p + 2, cap_fmt_pairs_ + 2 * (y >> 48), 2);
    y = (y & frac) * 100;
    memcpy(p + 4, cap_fmt_pairs_ + 2 * (y >> 48), 2);
    y = (y & frac) * 100;
    memcpy(p + 6, cap_fmt_pairs_ + 2 * (y >> 48), 2);
    return p;
}

/* A value of more than eight digits is cut into chunks of eight from the
 * right, one 64-bit division each (at most two: 2^64 < 10^20), and each
 * chunk written as above. */
CAP_FMT_INLINE_ char *cap_fmt_u64(char *end, uint64_t u)
{
    char *p = end;
    if (u >= 100000000u) {
        uint64_t q = u / 100000000u;
        p = cap_fmt_8_(p, (uint32_t)(u - 100000000u * q));
        u = q;
        if (u >= 100000000u) {
            q = u / 100000000u;
            p = cap_fmt_8_(p, (uint32_t)(u - 100000000u * q));
            u = q;
        }
    }
    return cap_fmt_u32_(p, (uint32_t)u);
}

CAP_FMT_INLINE_ char *cap_fmt_i64(char *end, int64_t v)
{
    char *p = cap_fmt_u64(end, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
    if (v < 0)
        *--p = '-';
    return p;
}

/* out gets 2n + 1 bytes. */
static inline void cap_fmt_hex(char *out, const uint8_t *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

static inline int cap_hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Reads 2n hex digits from text into out. 1 when text starts with 2n hex
 * digits, 0 otherwise (out is then partly written). */
static inline int cap_hex_read(const char *text, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = cap_hex_digit(text[2 * i]), lo = hi < 0 ? -1 : cap_hex_digit(text[2 * i + 1]);
        if (lo < 0)
            return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

#endif
