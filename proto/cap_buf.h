/* A growable byte buffer whose appends never fail loudly: the first failed
 * allocation sets `failed` and later appends do nothing, so a writer checks
 * once at the end. The contents are always NUL-terminated (text or bytes). */
#ifndef CAP_BUF_H
#define CAP_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data; /* owned; free() it, or hand it on */
    size_t len, cap;
    int failed;
} cap_buf;

void cap_buf_append(cap_buf *b, const void *p, size_t n);

#endif
