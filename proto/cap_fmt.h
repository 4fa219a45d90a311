/* Decimal text of integers without printf, for writers on a hot path
 * (journal records). Each writes the digits so that they end just before
 * `end` and returns where they start; 21 bytes before `end` are enough for
 * any value (20 digits and a sign). No NUL is written. */
#ifndef CAP_FMT_H
#define CAP_FMT_H

#include <stdint.h>

static inline char *cap_fmt_u64(char *end, uint64_t u)
{
    char *p = end;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return p;
}

static inline char *cap_fmt_i64(char *end, int64_t v)
{
    char *p = cap_fmt_u64(end, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
    if (v < 0)
        *--p = '-';
    return p;
}

#endif
