/* Copying the short byte strings most fields of a packet are. */
#ifndef CAP_COPY_H
#define CAP_COPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* memcpy(dst, src, n) (the two must not overlap), without a call when
 * n <= 32: two fixed-size moves that overlap in the middle, each reading
 * and writing only within the n bytes. Most strings of a packet (ids,
 * names, states) are that short, and a call to memcpy costs more than
 * the copy. */
static inline __attribute__((always_inline)) void cap_copy_short(void *dst, const void *src,
                                                                  size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n > 32) {
        memcpy(d, s, n);
    } else if (n >= 16) {
        unsigned char a[16], b[16];
        memcpy(a, s, 16);
        memcpy(b, s + n - 16, 16);
        memcpy(d, a, 16);
        memcpy(d + n - 16, b, 16);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

#endif
