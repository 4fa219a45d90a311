/* SHA-256 over OpenSSL's one-algorithm interface: see cap_sha256.h. That
 * interface is marked deprecated since OpenSSL 3.0 in favour of EVP; it is
 * still part of the library and computes the same digest. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "cap_sha256.h"

void cap_sha256_init(cap_sha256_ctx *c)
{
    SHA256_Init(&c->c);
}

void cap_sha256_update(cap_sha256_ctx *c, const void *data, size_t len)
{
    if (len)
        SHA256_Update(&c->c, data, len);
}

void cap_sha256_final(cap_sha256_ctx *c, uint8_t out[CAP_SHA256_LEN])
{
    SHA256_Final(out, &c->c);
}

void cap_sha256(const void *data, size_t len, uint8_t out[CAP_SHA256_LEN])
{
    cap_sha256_ctx c;
    cap_sha256_init(&c);
    cap_sha256_update(&c, data, len);
    cap_sha256_final(&c, out);
}
