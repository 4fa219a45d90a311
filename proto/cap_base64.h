/* Base64 (RFC 4648) as the proto3 JSON mapping uses it for bytes fields.
 *
 * Encoding always uses the standard alphabet with '=' padding. Decoding
 * accepts the standard or the URL-safe alphabet (one per string, not
 * mixed), with or without padding; anything else (whitespace, stray '=',
 * a lone final character) is rejected. */
#ifndef CAP_BASE64_H
#define CAP_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Length of the encoding of n bytes, without the NUL terminator. */
size_t cap_base64_encoded_len(size_t n);

/* Writes the padded standard encoding of src[0..n) and a NUL to dst, which
 * must hold cap_base64_encoded_len(n) + 1 bytes. Returns the length written
 * (without the NUL). */
size_t cap_base64_encode(const uint8_t *src, size_t n, char *dst);

/* Upper bound on the decoded size of len characters of base64. */
size_t cap_base64_decoded_max(size_t len);

/* Decodes src[0..len) into dst (at least cap_base64_decoded_max(len)
 * bytes). Returns 0 and the decoded size in *out_len, or -1 when src is not
 * valid base64. */
int cap_base64_decode(const char *src, size_t len, uint8_t *dst, size_t *out_len);

#endif
