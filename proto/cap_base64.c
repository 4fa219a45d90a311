#include "cap_base64.h"

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t cap_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t cap_base64_encode(const uint8_t *src, size_t n, char *dst)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        dst[o++] = b64_std[v >> 18 & 63];
        dst[o++] = b64_std[v >> 12 & 63];
        dst[o++] = b64_std[v >> 6 & 63];
        dst[o++] = b64_std[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        dst[o++] = b64_std[v >> 18 & 63];
        dst[o++] = b64_std[v >> 12 & 63];
        dst[o++] = '=';
        dst[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        dst[o++] = b64_std[v >> 18 & 63];
        dst[o++] = b64_std[v >> 12 & 63];
        dst[o++] = b64_std[v >> 6 & 63];
        dst[o++] = '=';
    }
    dst[o] = '\0';
    return o;
}

size_t cap_base64_decoded_max(size_t len)
{
    return len / 4 * 3 + 3;
}

enum { ALPHA_STD = 1, ALPHA_URL = 2 };

/* The 6-bit value of c, or -1. *alpha collects which alphabet-specific
 * characters were seen, so that a string mixing both can be refused. */
static int b64_value(char c, int *alpha)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '/') {
        *alpha |= ALPHA_STD;
        return c == '+' ? 62 : 63;
    }
    if (c == '-' || c == '_') {
        *alpha |= ALPHA_URL;
        return c == '-' ? 62 : 63;
    }
    return -1;
}

/* Checks the padding and returns the number of data characters, or
 * (size_t)-1. Padded input must be a whole number of quads, with exactly
 * as many '=' as the final quad lacks; unpadded input must not end in a
 * single character (which would carry only 6 bits). */
static size_t b64_body_len(const char *src, size_t len)
{
    size_t pad = 0;
    while (pad < len && pad < 3 && src[len - 1 - pad] == '=')
        pad++;
    size_t body = len - pad;
    size_t rem = body % 4;
    if (rem == 1)
        return (size_t)-1;
    if (pad == 0)
        return body;
    if (len % 4 != 0 || (rem == 2 && pad != 2) || (rem == 3 && pad != 1) || rem == 0)
        return (size_t)-1;
    return body;
}

int cap_base64_decode(const char *src, size_t len, uint8_t *dst, size_t *out_len)
{
    size_t body = b64_body_len(src, len);
    if (body == (size_t)-1)
        return -1;
    int alpha = 0;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < body; i++) {
        int v = b64_value(src[i], &alpha);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (alpha == (ALPHA_STD | ALPHA_URL))
        return -1;
    *out_len = o;
    return 0;
}
