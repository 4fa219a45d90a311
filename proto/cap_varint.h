/* Base-128 varints and tags of the protobuf wire format, read strictly:
 * the canonical (shortest) form only. */
#ifndef CAP_VARINT_H
#define CAP_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define CAP_VARINT_MAX 10

typedef enum {
    CAP_VARINT_OK = 0,
    CAP_VARINT_TRUNCATED = -1,  /* input ends inside the varint */
    CAP_VARINT_OVERLONG = -2,   /* more than 10 bytes, or over 64 bits */
    CAP_VARINT_NONMINIMAL = -3, /* a shorter encoding of the value exists */
} cap_varint_status;

/* Reads one varint starting at buf[*pos] (len is the end of the input).
 * On CAP_VARINT_OK, *out holds the value and *pos is advanced past it; on
 * any error *pos is left unchanged. */
cap_varint_status cap_varint_read(const uint8_t *buf, size_t len, size_t *pos,
                                  uint64_t *out);

/* Bytes needed to encode v (1..10): 7 bits a byte, up to its highest bit
 * set (v | 1: zero takes a byte too). Inline, as the encoder writes one or
 * more for every field. */
static inline size_t cap_varint_size(uint64_t v)
{
    return (size_t)(64 - __builtin_clzll(v | 1) + 6) / 7;
}

/* Writes v at buf and returns the number of bytes written. */
static inline size_t cap_varint_write(uint8_t *buf, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        buf[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    buf[n++] = (uint8_t)v;
    return n;
}

/* A short phrase for a non-OK status ("non-minimal varint"). */
const char *cap_varint_strstatus(cap_varint_status s);

#endif
