#include "cap_buf.h"

#include <stdlib.h>
#include <string.h>

void cap_buf_append(cap_buf *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->cap - b->len < n + 1) { /* + 1: the terminating NUL */
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->failed = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *nb = realloc(b->data, cap);
        if (!nb) {
            b->failed = 1;
            return;
        }
        b->data = nb;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}
