/* UTF-8 validation (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF. */
#ifndef CAP_UTF8_H
#define CAP_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Returns (size_t)-1 when s[0..len) is valid UTF-8, else the offset of the
 * first byte of the first invalid sequence. */
size_t cap_utf8_check(const uint8_t *s, size_t len);

/* Like cap_utf8_check, and a NUL byte (valid UTF-8, but it would cut a C
 * string) also counts as invalid. */
size_t cap_utf8_check_text(const uint8_t *s, size_t len);

#define CAP_UTF8_VALID ((size_t)-1)

#endif
