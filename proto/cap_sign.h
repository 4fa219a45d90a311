/* CAP packet signatures: ECDSA P-256 over SHA-256, DER encoded.
 *
 * Signing is deterministic (RFC 6979 with HMAC-SHA-256): the same key and
 * packet always give the same signature bytes, so fixtures and simulated
 * traces reproduce byte for byte. OpenSSL 3.0 (Debian 12) signs with a
 * random nonce, so the nonce is derived here and handed to OpenSSL.
 *
 * Regime (a), generic packet signature (cap-spec 2a): digest =
 *   SHA-256(canonical encoding of the packet with `signature` cleared).
 * Regime (c), CAP-PRODUCTION (cap-spec 2c, 19): digest =
 *   SHA-256("CAP-PRODUCTION-SIGNATURE-V1\0" || unsigned wire bytes as
 *   received), signature appended once as field 14, never re-serialised. */
#ifndef CAP_SIGN_H
#define CAP_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "cap_decode.h"
#include "cap_error.h"
#include "cap_schema.h"

/* Largest DER ECDSA P-256 signature. */
#define CAP_SIG_MAX_DER 72

typedef struct cap_key cap_key; /* a P-256 key pair or public key */

/* Loads a PEM key: a private key (PKCS#8 or SEC1 "EC PRIVATE KEY") or a
 * public key ("PUBLIC KEY"). Rejects anything that is not P-256 (CAP_EKEY).
 * *out is freed with cap_key_free(). */
int cap_key_from_pem(const char *pem, size_t len, cap_key **out, cap_diag *diag);

/* A private key from its 32-byte big-endian scalar d (1 <= d < n). */
int cap_key_from_scalar(const uint8_t d[32], cap_key **out);

/* 1 when the key holds a private scalar. */
int cap_key_has_private(const cap_key *k);

/* The public key as SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----",
 * 64-column lines, trailing newline). *pem is freed with free(). */
int cap_key_public_pem(const cap_key *k, char **pem);

/* The private key as PKCS#8 PEM. *pem is freed with free(). */
int cap_key_private_pem(const cap_key *k, char **pem);

void cap_key_free(cap_key *k);

/* RFC 6979 (HMAC-SHA-256) deterministic ECDSA over a 32-byte digest.
 * Writes a DER signature of at most CAP_SIG_MAX_DER bytes into der. */
int cap_ecdsa_sign_digest(const cap_key *k, const uint8_t digest[32],
                          uint8_t der[CAP_SIG_MAX_DER], size_t *der_len);

/* Verifies a DER signature over a digest. Strict DER: anything that does
 * not re-encode to the same bytes is CAP_ESIG_INVALID, like a wrong key or
 * a wrong digest. Returns CAP_OK or CAP_ESIG_INVALID. */
int cap_ecdsa_verify_digest(const cap_key *k, const uint8_t digest[32],
                            const uint8_t *der, size_t der_len);

/* --- regime (a) --------------------------------------------------------- */

/* SHA-256 of the canonical encoding of p with `signature` cleared. */
int cap_packet_signing_digest(const cap_packet *p, uint8_t digest[32]);

/* Signs p in place: p->signature receives a malloc'd DER signature
 * (a previous one is freed). */
int cap_packet_sign(cap_packet *p, const cap_key *k, cap_diag *diag);

/* Verifies p->signature with pub. Returns CAP_OK, CAP_ESIG_MISSING (104)
 * when there is no signature and `required` is set (CAP_OK when not
 * required), or CAP_ESIG_INVALID (103) for a bad, malformed or foreign
 * signature. */
int cap_packet_verify(const cap_packet *p, const cap_key *pub, int required,
                      cap_diag *diag);

/* --- regime (c): CAP-PRODUCTION ----------------------------------------- */

#define CAP_PRODUCTION_DOMAIN "CAP-PRODUCTION-SIGNATURE-V1"
#define CAP_PRODUCTION_PROFILE "cap-production-v1"
#define CAP_PRODUCTION_ALGORITHM "ECDSA-P256-SHA256"

/* Where the signature field sits in received wire bytes: the whole field
 * is wire[start, end), its value (the DER signature) wire[value, end). */
typedef struct {
    size_t start, value, end;
} cap_wire_span;

/* Finds the one field 14 of received wire bytes without copying anything,
 * with the checks of cap_production_split (same results and diagnostics):
 * CAP_OK and *sig; CAP_ESIG_MISSING when there is no field 14 (*sig is
 * zeroed); CAP_EMALFORMED; CAP_EINVAL. The unsigned body is then
 * wire[0, start) followed by wire[end, len). */
int cap_production_find(const uint8_t *wire, size_t len, cap_wire_span *sig, cap_diag *diag);

/* Splits received wire bytes into the unsigned body (every byte except the
 * one field 14, in received order) and the signature. Rejects a missing,
 * empty or duplicated field 14, a field 14 that is not length-delimited,
 * non-minimal tags or lengths, truncation and groups (CAP_EMALFORMED; a
 * missing field 14 is CAP_ESIG_MISSING). *body is malloc'd (free());
 * *sig points into wire. */
int cap_production_split(const uint8_t *wire, size_t len, uint8_t **body,
                         size_t *body_len, const uint8_t **sig, size_t *sig_len,
                         cap_diag *diag);

/* Signs an unsigned packet once: wire = canonical encoding of p (which must
 * have no signature) followed by field 14. *wire is freed with free(). */
int cap_production_sign(const cap_packet *p, const cap_key *k, uint8_t **wire,
                        size_t *wire_len, cap_diag *diag);

/* The local trust store entry a production packet is checked against. */
typedef struct {
    const char *audience;      /* the subject actually subscribed to */
    const char *tenant_id;     /* authenticated tenant: identity.tenant_id must equal it */
    const char *sender_id;     /* authenticated sender: sender_id must equal it */
    const char *key_id;        /* signature_metadata.key_id must equal it */
    const cap_key *key;        /* the public key registered for key_id */
    int64_t now_unix_nanos;    /* the caller's clock (virtual in the simulator) */
    int64_t max_lifetime_ns;   /* 0: 5 minutes */
    int64_t max_skew_ns;       /* 0: 1 minute */
} cap_production_trust;

/* Production admission of raw received bytes (cap-spec 19 steps 2-4):
 * size bound (bounds->max_packet), strict split, strict decode of the body
 * (unknown fields rejected), SignatureMetadata shape (profile, algorithm,
 * 16-byte message_id, audience, key_id, expires_at within
 * (now - skew, now + lifetime + skew]), trust binding, then the signature
 * over the domain-prefixed body. On success, if body_digest is non-NULL it
 * receives SHA-256(body) (the replay-store key) and, if out is non-NULL,
 * the decoded packet. */
int cap_production_verify(const uint8_t *wire, size_t len, const cap_bounds *bounds,
                          const cap_production_trust *trust, uint8_t body_digest[32],
                          cap_packet **out, cap_diag *diag);

#endif
