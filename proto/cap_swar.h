/* Byte tests on eight bytes at once (SIMD within a register), for the
 * scanners that copy or check long runs of plain text.
 *
 * Each test is the has-zero-byte trick ((x - 0x01..01) & ~x & 0x80..80)
 * applied to x, or to x XOR a repeated byte. It says exactly whether ANY
 * byte of the word matches (a borrow can only add a false flag beside a
 * true one), not which: a caller that needs the position looks at the
 * word's bytes one by one. */
#ifndef CAP_SWAR_H
#define CAP_SWAR_H

#include <stdint.h>

#define CAP_SWAR_ONES UINT64_C(0x0101010101010101)
#define CAP_SWAR_HIGHS UINT64_C(0x8080808080808080)

/* The flags of cap_swar_json_special: a high bit in each byte flagged.
 * The lowest flag is always a true one (a borrow only runs from a matching
 * byte upward), so in a word loaded little-endian it marks the first such
 * byte: see cap_swar_first. */
static inline uint64_t cap_swar_json_special_bits(uint64_t x)
{
    uint64_t q = x ^ (CAP_SWAR_ONES * '"'), b = x ^ (CAP_SWAR_ONES * '\\');
    return (((x - CAP_SWAR_ONES * 0x20) & ~x) | ((q - CAP_SWAR_ONES) & ~q) | ((b - CAP_SWAR_ONES) & ~b)) &
           CAP_SWAR_HIGHS;
}

/* 1 when one of the 8 bytes of x is a byte JSON does not allow raw in a
 * string or gives a meaning there: below 0x20, '"' or '\\'. */
static inline int cap_swar_json_special(uint64_t x)
{
    return cap_swar_json_special_bits(x) ? 1 : 0;
}

/* Bit 7 of each byte of the result is set when that byte of x is 0x80 or
 * above, or 0 (exact for the lowest such byte; a borrow may flag more above
 * it); the other bits mean nothing: mask with CAP_SWAR_HIGHS. Left
 * unmasked so that a scanner can OR the words of a run and mask once. */
static inline uint64_t cap_swar_high_or_zero(uint64_t x)
{
    return x | ((x - CAP_SWAR_ONES) & ~x);
}

/* The index (0..7) of the first byte flagged in bits (non-zero), for a
 * word loaded with memcpy; -1 where that needs a byte-by-byte look (a
 * big-endian machine). */
static inline int cap_swar_first(uint64_t bits)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_ctzll(bits) >> 3;
#else
    (void)bits;
    return -1;
#endif
}

#endif
