#include "cap_base64.h"

#include <string.h>

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Every 12-bit value's two characters, one after the other: b64_pairs +
 * 2 * v is the encoding of v >> 6 then v & 63. Three bytes are 24 bits,
 * two pairs, so the encoder looks up twice per three bytes rather than
 * four times. Spelled out by the preprocessor: B64_ROW(c) is c followed by
 * each character of the alphabet in turn. */
#define B64_ROW(c)                                                                                 \
    c "A" c "B" c "C" c "D" c "E" c "F" c "G" c "H" \
    c "I" c "J" c "K" c "L" c "M" c "N" c "O" c "P" \
    c "Q" c "R" c "S" c "T" c "U" c "V" c "W" c "X" \
    c "Y" c "Z" c "a" c "b" c "c" c "d" c "e" c "f" \
    c "g" c "h" c "i" c "j" c "k" c "l" c "m" c "n" \
    c "o" c "p" c "q" c "r" c "s" c "t" c "u" c "v" \
    c "w" c "x" c "y" c "z" c "0" c "1" c "2" c "3" \
    c "4" c "5" c "6" c "7" c "8" c "9" c "+" c "/"
static const char b64_pairs[2 * 4096 + 1] =
    B64_ROW("A") B64_ROW("B") B64_ROW("C") B64_ROW("D") B64_ROW("E") B64_ROW("F") B64_ROW("G")
    B64_ROW("H") B64_ROW("I") B64_ROW("J") B64_ROW("K") B64_ROW("L") B64_ROW("M") B64_ROW("N")
    B64_ROW("O") B64_ROW("P") B64_ROW("Q") B64_ROW("R") B64_ROW("S") B64_ROW("T") B64_ROW("U")
    B64_ROW("V") B64_ROW("W") B64_ROW("X") B64_ROW("Y") B64_ROW("Z") B64_ROW("a") B64_ROW("b")
    B64_ROW("c") B64_ROW("d") B64_ROW("e") B64_ROW("f") B64_ROW("g") B64_ROW("h") B64_ROW("i")
    B64_ROW("j") B64_ROW("k") B64_ROW("l") B64_ROW("m") B64_ROW("n") B64_ROW("o") B64_ROW("p")
    B64_ROW("q") B64_ROW("r") B64_ROW("s") B64_ROW("t") B64_ROW("u") B64_ROW("v") B64_ROW("w")
    B64_ROW("x") B64_ROW("y") B64_ROW("z") B64_ROW("0") B64_ROW("1") B64_ROW("2") B64_ROW("3")
    B64_ROW("4") B64_ROW("5") B64_ROW("6") B64_ROW("7") B64_ROW("8") B64_ROW("9") B64_ROW("+")
    B64_ROW("/");

size_t cap_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t cap_base64_encode(const uint8_t *src, size_t n, char *dst)
{
    char *o = dst;
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Six bytes a step while eight can be read: one load, byte-swapped so
     * that the six are the word's top 48 bits, four 12-bit halves. */
    for (; i + 8 <= n; i += 6, o += 8) {
        uint64_t x;
        memcpy(&x, src + i, 8);
        x = __builtin_bswap64(x);
        memcpy(o, b64_pairs + 2 * (x >> 52), 2);
        memcpy(o + 2, b64_pairs + 2 * (x >> 40 & 0xFFF), 2);
        memcpy(o + 4, b64_pairs + 2 * (x >> 28 & 0xFFF), 2);
        memcpy(o + 6, b64_pairs + 2 * (x >> 16 & 0xFFF), 2);
    }
#endif
    for (; i + 3 <= n; i += 3, o += 4) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        memcpy(o, b64_pairs + 2 * (v >> 12), 2);
        memcpy(o + 2, b64_pairs + 2 * (v & 0xFFF), 2);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        o[0] = b64_std[v >> 18 & 63];
        o[1] = b64_std[v >> 12 & 63];
        o[2] = '=';
        o[3] = '=';
        o += 4;
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        o[0] = b64_std[v >> 18 & 63];
        o[1] = b64_std[v >> 12 & 63];
        o[2] = b64_std[v >> 6 & 63];
        o[3] = '=';
        o += 4;
    }
    *o = '\0';
    return (size_t)(o - dst);
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
