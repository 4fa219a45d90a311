#include "cap_varint.h"

cap_varint_status cap_varint_read(const uint8_t *buf, size_t len, size_t *pos,
                                  uint64_t *out)
{
    size_t p = *pos;
    uint64_t v = 0;
    for (unsigned i = 0; i < CAP_VARINT_MAX; i++) {
        if (p + i >= len)
            return CAP_VARINT_TRUNCATED;
        uint8_t b = buf[p + i];
        if (i == CAP_VARINT_MAX - 1 && b > 1)
            return CAP_VARINT_OVERLONG; /* would exceed 64 bits */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            /* A last byte of zero after other bytes adds nothing: the same
             * value has a shorter encoding. */
            if (i > 0 && b == 0)
                return CAP_VARINT_NONMINIMAL;
            *out = v;
            *pos = p + i + 1;
            return CAP_VARINT_OK;
        }
    }
    return CAP_VARINT_OVERLONG;
}

const char *cap_varint_strstatus(cap_varint_status s)
{
    switch (s) {
    case CAP_VARINT_OK: return "ok";
    case CAP_VARINT_TRUNCATED: return "truncated varint";
    case CAP_VARINT_OVERLONG: return "varint longer than 10 bytes or over 64 bits";
    case CAP_VARINT_NONMINIMAL: return "non-minimal varint";
    }
    return "bad varint";
}
