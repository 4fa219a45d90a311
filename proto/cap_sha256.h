/* SHA-256 for the hot paths: the dedupe keys, the request hash, the trace
 * hash. A context lives on the stack or inside its owner and is copied by
 * assignment; hashing allocates nothing and cannot fail.
 *
 * It uses OpenSSL's one-algorithm interface (the same implementation, with
 * the CPU's SHA instructions when it has them) rather than EVP: an EVP
 * digest costs two allocations and a provider dispatch per init, which for
 * a packet of a few hundred bytes is more than the hashing itself. */
#ifndef CAP_SHA256_H
#define CAP_SHA256_H

#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>

#define CAP_SHA256_LEN 32

typedef struct {
    SHA256_CTX c;
} cap_sha256_ctx;

void cap_sha256_init(cap_sha256_ctx *c);
void cap_sha256_update(cap_sha256_ctx *c, const void *data, size_t len);
/* Writes the digest; the context must be initialised again before reuse
 * (a copy taken before the call may go on). */
void cap_sha256_final(cap_sha256_ctx *c, uint8_t out[CAP_SHA256_LEN]);

/* The digest of data in one call. */
void cap_sha256(const void *data, size_t len, uint8_t out[CAP_SHA256_LEN]);

#endif
