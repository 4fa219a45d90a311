/* ECDSA P-256 signatures for CAP packets (see cap_sign.h).
 *
 * OpenSSL 3.0 only offers randomised ECDSA nonces, but fixtures and
 * simulated traces must reproduce byte for byte, so signing is done here:
 * the nonce comes from RFC 6979 section 3.2 (HMAC-SHA-256), and
 * r = x(kG) mod n, s = k^-1 (e + r d) mod n are computed with OpenSSL's
 * EC_POINT and BIGNUM primitives (none of which is deprecated in 3.0).
 * Verification is left to OpenSSL's own ECDSA (EVP_PKEY_verify), so the
 * signer is always checked by an independent implementation.
 *
 * Every key, whatever its source, is rebuilt from its point and scalar as
 * a named-curve P-256 key, so PEM output is always the canonical SPKI /
 * PKCS#8 form whatever encoding the key arrived in. */
#include "cap_sign.h"
#include "cap_time.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "cap_encode.h"
#include "cap_varint.h"

#define SCALAR_LEN 32                /* P-256 scalars and coordinates */
#define POINT_LEN (1 + 2 * SCALAR_LEN) /* uncompressed SEC1 point */
#define KEY_PEM_MAX (64 * 1024)      /* no legitimate P-256 PEM comes close */
#define NONCE_ATTEMPTS 64            /* a retry has probability ~2^-32 */
#define NANOS_PER_SEC CAP_NANOS_PER_SEC
#define DEFAULT_LIFETIME_NS (5 * 60 * NANOS_PER_SEC)
#define DEFAULT_SKEW_NS (60 * NANOS_PER_SEC)
#define SIG_TAG ((CAP_FIELD_SIGNATURE << 3) | 2) /* field 14, length-delimited */

struct cap_key {
    EVP_PKEY *pkey;  /* named-curve P-256, for OpenSSL verification and PEM */
    EC_GROUP *group; /* P-256, for the signer's own arithmetic */
    BIGNUM *d;       /* the private scalar, NULL for a public key */
};

/* --- small helpers -------------------------------------------------------- */

static int sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) || n != 32) {
        ERR_clear_error();
        return CAP_ECRYPTO;
    }
    return CAP_OK;
}

/* SHA-256(domain || 0x00 || body): the CAP-PRODUCTION signing digest. */
static int production_digest(const uint8_t *body, size_t len, uint8_t out[32])
{
    static const uint8_t sep = 0x00;
    unsigned int n = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(md, CAP_PRODUCTION_DOMAIN, strlen(CAP_PRODUCTION_DOMAIN)) &&
             EVP_DigestUpdate(md, &sep, 1) && EVP_DigestUpdate(md, body, len) &&
             EVP_DigestFinal_ex(md, out, &n) && n == 32;
    EVP_MD_CTX_free(md);
    if (!ok) {
        ERR_clear_error();
        return CAP_ECRYPTO;
    }
    return CAP_OK;
}

static EC_GROUP *p256_group(void)
{
    return EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

/* 1 <= v < n */
static int scalar_in_range(const BIGNUM *v, const BIGNUM *n)
{
    return !BN_is_negative(v) && !BN_is_zero(v) && BN_cmp(v, n) < 0;
}

/* --- building keys -------------------------------------------------------- */

/* An OpenSSL named-curve P-256 key from an uncompressed point and an
 * optional scalar. */
static EVP_PKEY *pkey_from_parts(const uint8_t pub[POINT_LEN], const BIGNUM *d)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!bld || !ctx ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, POINT_LEN) ||
        (d && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d)))
        goto done;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!params || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
done:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* Wraps a validated point (and scalar, which is copied) into a cap_key. */
static int key_from_parts(EC_GROUP *group, const EC_POINT *pub, const BIGNUM *d, cap_key **out)
{
    uint8_t oct[POINT_LEN];
    if (EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, oct, sizeof oct, NULL) !=
        POINT_LEN)
        return CAP_ECRYPTO;
    cap_key *k = calloc(1, sizeof *k);
    if (!k)
        return CAP_ENOMEM;
    k->pkey = pkey_from_parts(oct, d);
    k->group = group;
    if (d) {
        k->d = BN_dup(d);
        if (k->d)
            BN_set_flags(k->d, BN_FLG_CONSTTIME);
    }
    if (!k->pkey || (d && !k->d)) {
        k->group = NULL; /* still owned by the caller on failure */
        cap_key_free(k);
        return CAP_ECRYPTO;
    }
    *out = k;
    return CAP_OK;
}

/* pub = d * G */
static EC_POINT *public_point(const EC_GROUP *group, const BIGNUM *d)
{
    EC_POINT *pub = EC_POINT_new(group);
    if (pub && !EC_POINT_mul(group, pub, d, NULL, NULL, NULL)) {
        EC_POINT_free(pub);
        return NULL;
    }
    return pub;
}

int cap_key_from_scalar(const uint8_t d[32], cap_key **out)
{
    if (!d || !out)
        return CAP_EINVAL;
    *out = NULL;
    EC_GROUP *group = p256_group();
    BIGNUM *bd = BN_secure_new();
    EC_POINT *pub = NULL;
    int rc = CAP_ECRYPTO;
    if (!group || !bd || !BN_bin2bn(d, SCALAR_LEN, bd))
        goto done;
    if (!scalar_in_range(bd, EC_GROUP_get0_order(group))) {
        rc = CAP_EKEY;
        goto done;
    }
    pub = public_point(group, bd);
    if (pub)
        rc = key_from_parts(group, pub, bd, out);
    if (rc == CAP_OK)
        group = NULL; /* now owned by *out */
done:
    EC_POINT_free(pub);
    BN_clear_free(bd);
    EC_GROUP_free(group);
    ERR_clear_error();
    return rc;
}

/* --- loading PEM ---------------------------------------------------------- */

/* Never prompt for a passphrase: an encrypted key simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* Tries a private key first, then a public key, each on a fresh reader. */
static EVP_PKEY *read_pem_key(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    if (!pkey) {
        b = BIO_new_mem_buf(pem, (int)len);
        pkey = b ? PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL) : NULL;
        BIO_free(b);
    }
    ERR_clear_error();
    return pkey;
}

static int key_diag(cap_diag *diag, const char *fmt, const char *arg)
{
    return cap_diag_set(diag, CAP_EKEY, -1, "key", fmt, arg);
}

/* Accepts only EC keys on the named curve P-256. */
static int check_p256(const EVP_PKEY *pkey, cap_diag *diag)
{
    char name[64];
    size_t n = 0;
    if (!EVP_PKEY_is_a(pkey, "EC")) {
        const char *t = EVP_PKEY_get0_type_name(pkey);
        return key_diag(diag, "key type %s is not EC P-256", t ? t : "(unknown)");
    }
    if (!EVP_PKEY_get_group_name(pkey, name, sizeof name, &n)) {
        ERR_clear_error();
        return key_diag(diag, "%s",
                        "EC key has no named curve (explicit parameters are not accepted)");
    }
    int nid = OBJ_sn2nid(name);
    if (nid != NID_X9_62_prime256v1 && EC_curve_nist2nid(name) != NID_X9_62_prime256v1)
        return key_diag(diag, "curve %s is not P-256", name);
    return CAP_OK;
}

/* The key's public point, decoded and checked against the curve. */
static EC_POINT *pem_public_point(const EVP_PKEY *pkey, const EC_GROUP *group)
{
    uint8_t oct[POINT_LEN];
    size_t n = 0;
    EC_POINT *pub = EC_POINT_new(group);
    if (!pub || !EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, oct, sizeof oct, &n) ||
        !EC_POINT_oct2point(group, pub, oct, n, NULL) || EC_POINT_is_at_infinity(group, pub) ||
        EC_POINT_is_on_curve(group, pub, NULL) != 1) {
        EC_POINT_free(pub);
        ERR_clear_error();
        return NULL;
    }
    return pub;
}

/* Checks a loaded private scalar: in range, and d*G equal to the stated
 * public point (a PEM file can carry an inconsistent pair). */
static int check_scalar(const EC_GROUP *group, const BIGNUM *d, const EC_POINT *pub, cap_diag *diag)
{
    if (!scalar_in_range(d, EC_GROUP_get0_order(group)))
        return key_diag(diag, "%s", "private scalar is out of range");
    EC_POINT *q = public_point(group, d);
    int same = q && EC_POINT_cmp(group, q, pub, NULL) == 0;
    EC_POINT_free(q);
    ERR_clear_error();
    if (!same)
        return key_diag(diag, "%s", "public key does not match the private scalar");
    return CAP_OK;
}

/* Rebuilds a loaded P-256 key from its point and (optional) scalar. */
static int key_from_loaded(const EVP_PKEY *pkey, cap_key **out, cap_diag *diag)
{
    EC_GROUP *group = p256_group();
    EC_POINT *pub = group ? pem_public_point(pkey, group) : NULL;
    BIGNUM *d = NULL;
    int rc;
    if (!group) {
        rc = CAP_ECRYPTO;
        goto done;
    }
    if (!pub) {
        rc = key_diag(diag, "%s", "public key is not a valid P-256 point");
        goto done;
    }
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) &&
        (rc = check_scalar(group, d, pub, diag)) != CAP_OK)
        goto done;
    ERR_clear_error(); /* a public key has no scalar: not an error */
    rc = key_from_parts(group, pub, d, out);
    if (rc == CAP_OK)
        group = NULL;
    else
        cap_diag_set(diag, rc, -1, "key", "cannot build the P-256 key");
done:
    BN_clear_free(d);
    EC_POINT_free(pub);
    EC_GROUP_free(group);
    ERR_clear_error();
    return rc;
}

int cap_key_from_pem(const char *pem, size_t len, cap_key **out, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (!out)
        return cap_diag_set(diag, CAP_EINVAL, -1, "key", "no output");
    *out = NULL;
    if (!pem || len == 0)
        return key_diag(diag, "%s", "empty PEM input");
    if (len > KEY_PEM_MAX)
        return cap_diag_set(diag, CAP_EKEY, -1, "key",
                            "PEM input of %zu bytes is over the bound of %d", len, KEY_PEM_MAX);
    EVP_PKEY *pkey = read_pem_key(pem, len);
    if (!pkey)
        return key_diag(diag, "%s",
                        "no readable PEM key (expected an unencrypted PRIVATE KEY, "
                        "EC PRIVATE KEY or PUBLIC KEY)");
    int rc = check_p256(pkey, diag);
    if (rc == CAP_OK)
        rc = key_from_loaded(pkey, out, diag);
    EVP_PKEY_free(pkey);
    return rc;
}

int cap_key_has_private(const cap_key *k)
{
    return k && k->d != NULL;
}

void cap_key_free(cap_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    EC_GROUP_free(k->group);
    BN_clear_free(k->d);
    free(k);
}

/* --- writing PEM ---------------------------------------------------------- */

/* Copies a memory BIO's contents into a NUL-terminated malloc'd string. */
static int bio_to_string(BIO *b, char **out)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    if (n <= 0 || !data)
        return CAP_ECRYPTO;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return CAP_ENOMEM;
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    *out = s;
    return CAP_OK;
}

int cap_key_public_pem(const cap_key *k, char **pem)
{
    if (!k || !pem)
        return CAP_EINVAL;
    *pem = NULL;
    BIO *b = BIO_new(BIO_s_mem());
    int rc = (b && PEM_write_bio_PUBKEY(b, k->pkey)) ? bio_to_string(b, pem) : CAP_ECRYPTO;
    BIO_free(b);
    ERR_clear_error();
    return rc;
}

int cap_key_private_pem(const cap_key *k, char **pem)
{
    if (!k || !pem)
        return CAP_EINVAL;
    *pem = NULL;
    if (!k->d)
        return CAP_EKEY;
    BIO *b = BIO_new(BIO_s_mem());
    int rc = (b && PEM_write_bio_PrivateKey(b, k->pkey, NULL, NULL, 0, NULL, NULL))
                 ? bio_to_string(b, pem)
                 : CAP_ECRYPTO;
    BIO_free_all(b);
    ERR_clear_error();
    return rc;
}

/* --- RFC 6979 nonces ------------------------------------------------------ */

/* The HMAC_DRBG state of RFC 6979 section 3.2 (steps b to h). With P-256
 * and SHA-256, qlen = hlen = 256, so one HMAC output is one candidate and
 * bits2int needs no shift. */
typedef struct {
    uint8_t K[32];
    uint8_t V[32];
} rfc6979_state;

static int hmac_sha256(const uint8_t key[32], const uint8_t *msg, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, 32, msg, len, out, &n) || n != 32) {
        ERR_clear_error();
        return 0;
    }
    return 1;
}

/* K = HMAC_K(V || sep || seed); V = HMAC_K(V). Steps d-g, and step h.3
 * (with no seed) when a candidate is rejected. */
static int rfc6979_reseed(rfc6979_state *st, uint8_t sep, const uint8_t *seed, size_t seed_len)
{
    uint8_t msg[32 + 1 + 2 * SCALAR_LEN];
    memcpy(msg, st->V, 32);
    msg[32] = sep;
    if (seed_len)
        memcpy(msg + 33, seed, seed_len);
    int ok = hmac_sha256(st->K, msg, 33 + seed_len, st->K) && hmac_sha256(st->K, st->V, 32, st->V);
    OPENSSL_cleanse(msg, sizeof msg);
    return ok;
}

/* Steps b-g: seed = int2octets(x) || bits2octets(h1), where
 * bits2octets(h1) = int2octets(h1 mod n). */
static int rfc6979_init(rfc6979_state *st, const BIGNUM *x, const uint8_t h1[32], const BIGNUM *n,
                        BN_CTX *ctx)
{
    uint8_t seed[2 * SCALAR_LEN];
    BIGNUM *z = BN_CTX_get(ctx);
    int ok = z && BN_bin2bn(h1, 32, z) && BN_nnmod(z, z, n, ctx) &&
             BN_bn2binpad(x, seed, SCALAR_LEN) == SCALAR_LEN &&
             BN_bn2binpad(z, seed + SCALAR_LEN, SCALAR_LEN) == SCALAR_LEN;
    memset(st->V, 0x01, sizeof st->V);
    memset(st->K, 0x00, sizeof st->K);
    ok = ok && rfc6979_reseed(st, 0x00, seed, sizeof seed) &&
         rfc6979_reseed(st, 0x01, seed, sizeof seed);
    OPENSSL_cleanse(seed, sizeof seed);
    return ok;
}

/* Step h: the next candidate k = bits2int(V = HMAC_K(V)); 1 when it lies in
 * [1, n-1]. A candidate out of range is skipped as the RFC says. */
static int rfc6979_next(rfc6979_state *st, BIGNUM *k, const BIGNUM *n, int *in_range)
{
    if (!hmac_sha256(st->K, st->V, 32, st->V) || !BN_bin2bn(st->V, 32, k))
        return 0;
    *in_range = scalar_in_range(k, n);
    return 1;
}

/* --- ECDSA ---------------------------------------------------------------- */

/* r = x(kG) mod n and s = k^-1 (e + r d) mod n for one nonce k. Leaves r or
 * s zero when this k must be discarded. */
static int ecdsa_with_nonce(const cap_key *key, const BIGNUM *k, const BIGNUM *e, BIGNUM *r,
                            BIGNUM *s, BN_CTX *ctx)
{
    const BIGNUM *n = EC_GROUP_get0_order(key->group);
    BN_CTX_start(ctx);
    BIGNUM *kinv = BN_CTX_get(ctx), *t = BN_CTX_get(ctx);
    EC_POINT *R = EC_POINT_new(key->group);
    int ok = kinv && t && R && EC_POINT_mul(key->group, R, k, NULL, NULL, ctx) &&
             EC_POINT_get_affine_coordinates(key->group, R, r, NULL, ctx) &&
             BN_nnmod(r, r, n, ctx) && BN_mod_inverse(kinv, k, n, ctx) &&
             BN_mod_mul(t, r, key->d, n, ctx) && BN_mod_add(t, t, e, n, ctx) &&
             BN_mod_mul(s, kinv, t, n, ctx);
    EC_POINT_free(R);
    BN_CTX_end(ctx);
    return ok;
}

/* DER-encodes (r, s), taking ownership of both. */
static int der_encode(BIGNUM *r, BIGNUM *s, uint8_t der[CAP_SIG_MAX_DER], size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    if (!sig || !ECDSA_SIG_set0(sig, r, s)) {
        ECDSA_SIG_free(sig);
        BN_free(r);
        BN_free(s);
        return CAP_ECRYPTO;
    }
    int n = i2d_ECDSA_SIG(sig, NULL);
    int rc = CAP_ECRYPTO;
    if (n > 0 && n <= CAP_SIG_MAX_DER) {
        unsigned char *p = der;
        if (i2d_ECDSA_SIG(sig, &p) == n) {
            *der_len = (size_t)n;
            rc = CAP_OK;
        }
    }
    ECDSA_SIG_free(sig);
    return rc;
}

/* Runs the RFC 6979 generator until a nonce gives non-zero r and s. */
static int sign_deterministic(const cap_key *key, const uint8_t digest[32], BIGNUM *r, BIGNUM *s,
                              BN_CTX *ctx)
{
    const BIGNUM *n = EC_GROUP_get0_order(key->group);
    BIGNUM *k = BN_CTX_get(ctx), *e = BN_CTX_get(ctx);
    rfc6979_state st;
    int rc = CAP_ECRYPTO;
    if (!k || !e || !BN_bin2bn(digest, 32, e) || !rfc6979_init(&st, key->d, digest, n, ctx))
        goto done;
    BN_set_flags(k, BN_FLG_CONSTTIME);
    for (int i = 0; i < NONCE_ATTEMPTS; i++) {
        int in_range = 0;
        if (!rfc6979_next(&st, k, n, &in_range))
            goto done;
        if (in_range) {
            if (!ecdsa_with_nonce(key, k, e, r, s, ctx))
                goto done;
            if (!BN_is_zero(r) && !BN_is_zero(s)) {
                rc = CAP_OK;
                goto done;
            }
        }
        if (!rfc6979_reseed(&st, 0x00, NULL, 0))
            goto done;
    }
done:
    OPENSSL_cleanse(&st, sizeof st);
    if (k)
        BN_clear(k);
    return rc;
}

int cap_ecdsa_sign_digest(const cap_key *k, const uint8_t digest[32],
                          uint8_t der[CAP_SIG_MAX_DER], size_t *der_len)
{
    if (!k || !digest || !der || !der_len)
        return CAP_EINVAL;
    if (!k->d)
        return CAP_EKEY;
    BN_CTX *ctx = BN_CTX_secure_new();
    BIGNUM *r = BN_new(), *s = BN_new();
    int rc = CAP_ECRYPTO;
    if (ctx && r && s) {
        BN_CTX_start(ctx);
        rc = sign_deterministic(k, digest, r, s, ctx);
        BN_CTX_end(ctx);
    }
    if (rc == CAP_OK) {
        rc = der_encode(r, s, der, der_len); /* takes r and s */
    } else {
        BN_free(r);
        BN_free(s);
    }
    BN_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* Strict DER: one SEQUENCE of two INTEGERs, re-encoding to exactly the
 * input bytes (so no trailing data, no padding, no long-form lengths, no
 * raw r||s), with 1 <= r, s < n. */
static int der_is_strict(const cap_key *k, const uint8_t *der, size_t len)
{
    if (!der || len == 0 || len > CAP_SIG_MAX_DER)
        return 0;
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!sig) {
        ERR_clear_error();
        return 0;
    }
    uint8_t again[CAP_SIG_MAX_DER];
    unsigned char *q = again;
    const BIGNUM *n = EC_GROUP_get0_order(k->group);
    int ok = p == der + len && i2d_ECDSA_SIG(sig, NULL) == (int)len &&
             i2d_ECDSA_SIG(sig, &q) == (int)len && memcmp(again, der, len) == 0 &&
             scalar_in_range(ECDSA_SIG_get0_r(sig), n) && scalar_in_range(ECDSA_SIG_get0_s(sig), n);
    ECDSA_SIG_free(sig);
    ERR_clear_error();
    return ok;
}

/* OpenSSL's ECDSA verification of a prehashed digest. */
static int openssl_verify(const cap_key *k, const uint8_t digest[32], const uint8_t *der, size_t len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    int ok = ctx && EVP_PKEY_verify_init(ctx) > 0 && EVP_PKEY_verify(ctx, der, len, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

int cap_ecdsa_verify_digest(const cap_key *k, const uint8_t digest[32],
                            const uint8_t *der, size_t der_len)
{
    if (!k || !digest || !der_is_strict(k, der, der_len) || !openssl_verify(k, digest, der, der_len))
        return CAP_ESIG_INVALID;
    return CAP_OK;
}

/* --- regime (a): generic packet signature --------------------------------- */

int cap_packet_signing_digest(const cap_packet *p, uint8_t digest[32])
{
    if (!p || !digest)
        return CAP_EINVAL;
    /* A shallow copy with `signature` cleared: the encoder only reads, and
     * the caller's packet is never touched. */
    cap_packet unsigned_view = *p;
    unsigned_view.signature.len = 0;
    unsigned_view.signature.data = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = cap_encode(&unsigned_view.base, &buf, &len);
    if (rc == CAP_OK)
        rc = sha256(buf, len, digest);
    free(buf);
    return rc;
}

int cap_packet_sign(cap_packet *p, const cap_key *k, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (!p || !k)
        return cap_diag_set(diag, CAP_EINVAL, -1, "BusPacket", "no packet or no key");
    if (!k->d)
        return cap_diag_set(diag, CAP_EKEY, -1, "key", "signing needs a private key");
    uint8_t digest[32], der[CAP_SIG_MAX_DER];
    size_t der_len = 0;
    int rc = cap_packet_signing_digest(p, digest);
    if (rc == CAP_OK)
        rc = cap_ecdsa_sign_digest(k, digest, der, &der_len);
    if (rc != CAP_OK)
        return cap_diag_set(diag, rc, -1, "BusPacket.signature", "cannot sign the packet");
    uint8_t *copy = malloc(der_len);
    if (!copy)
        return cap_diag_set(diag, CAP_ENOMEM, -1, "BusPacket.signature", "out of memory");
    memcpy(copy, der, der_len);
    free(p->signature.data);
    p->signature.data = copy;
    p->signature.len = der_len;
    return CAP_OK;
}

int cap_packet_verify(const cap_packet *p, const cap_key *pub, int required, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (!p || !pub)
        return cap_diag_set(diag, CAP_EINVAL, -1, "BusPacket", "no packet or no key");
    if (p->signature.len == 0) {
        if (!required)
            return CAP_OK;
        return cap_diag_set(diag, CAP_ESIG_MISSING, -1, "BusPacket.signature",
                            "packet carries no signature and one is required");
    }
    if (!der_is_strict(pub, p->signature.data, p->signature.len))
        return cap_diag_set(diag, CAP_ESIG_INVALID, -1, "BusPacket.signature",
                            "signature is not strict DER (%zu bytes)", p->signature.len);
    uint8_t digest[32];
    int rc = cap_packet_signing_digest(p, digest);
    if (rc != CAP_OK)
        return cap_diag_set(diag, rc, -1, "BusPacket", "cannot compute the signing digest");
    if (!openssl_verify(pub, digest, p->signature.data, p->signature.len))
        return cap_diag_set(diag, CAP_ESIG_INVALID, -1, "BusPacket.signature",
                            "signature does not match the packet under this key");
    return CAP_OK;
}

/* --- regime (c): CAP-PRODUCTION wire split -------------------------------- */

/* One top-level field of the received bytes: [start, end) is the whole
 * field, [value, end) its value (for wire type 2, after the length). */
typedef struct {
    uint32_t number;
    unsigned wire_type;
    size_t start, value, end;
} wire_field;

static int wire_error(cap_diag *diag, size_t off, uint32_t number, const char *fmt, const char *what)
{
    const char *path = number == CAP_FIELD_SIGNATURE ? "BusPacket.signature" : "BusPacket";
    return cap_diag_set(diag, CAP_EMALFORMED, (long)off, path, fmt, what);
}

/* cap_varint_read with the one-byte case (most tags and lengths) inline:
 * a single byte below 0x80 is always a minimal varint. */
static inline cap_varint_status read_varint(const uint8_t *buf, size_t len, size_t *pos,
                                            uint64_t *v)
{
    if (*pos < len && buf[*pos] < 0x80) {
        *v = buf[(*pos)++];
        return CAP_VARINT_OK;
    }
    return cap_varint_read(buf, len, pos, v);
}

/* Skips a value of the given wire type starting at *pos. */
static int skip_value(const uint8_t *buf, size_t len, size_t *pos, wire_field *f, cap_diag *diag)
{
    uint64_t v = 0;
    cap_varint_status st;
    switch (f->wire_type) {
    case 0:
        st = read_varint(buf, len, pos, &v);
        return st == CAP_VARINT_OK ? CAP_OK : wire_error(diag, *pos, f->number, "varint value: %s",
                                                          cap_varint_strstatus(st));
    case 1:
    case 5: {
        size_t n = f->wire_type == 1 ? 8 : 4;
        if (len - *pos < n)
            return wire_error(diag, *pos, f->number, "%s", "truncated fixed-width value");
        *pos += n;
        return CAP_OK;
    }
    case 2:
        st = read_varint(buf, len, pos, &v);
        if (st != CAP_VARINT_OK)
            return wire_error(diag, *pos, f->number, "length: %s", cap_varint_strstatus(st));
        if (v > len - *pos)
            return wire_error(diag, *pos, f->number, "%s", "length runs past the end of the packet");
        f->value = *pos;
        *pos += (size_t)v;
        return CAP_OK;
    case 3:
    case 4:
        return wire_error(diag, f->start, f->number, "%s", "groups are not allowed");
    default:
        return wire_error(diag, f->start, f->number, "%s", "invalid wire type");
    }
}

/* Reads the field starting at pos: a minimal tag, then its value. */
static int next_field(const uint8_t *buf, size_t len, size_t pos, wire_field *f, cap_diag *diag)
{
    uint64_t tag = 0;
    size_t p = pos;
    cap_varint_status st = read_varint(buf, len, &p, &tag);
    if (st != CAP_VARINT_OK)
        return wire_error(diag, pos, 0, "field tag: %s", cap_varint_strstatus(st));
    if (tag > UINT32_MAX)
        return wire_error(diag, pos, 0, "%s", "field tag over 32 bits");
    f->number = (uint32_t)(tag >> 3);
    f->wire_type = (unsigned)(tag & 7);
    f->start = pos;
    f->value = p;
    if (f->number == 0)
        return wire_error(diag, pos, 0, "%s", "field number 0");
    int rc = skip_value(buf, len, &p, f, diag);
    f->end = p;
    return rc;
}

/* Records the signature field, rejecting a second one, a wrong wire type
 * or an empty value. */
static int take_signature(const wire_field *f, wire_field *sig, int *found, cap_diag *diag)
{
    if (f->wire_type != 2)
        return wire_error(diag, f->start, f->number, "%s",
                          "signature field 14 is not length-delimited");
    if (*found)
        return wire_error(diag, f->start, f->number, "%s", "duplicate signature field");
    if (f->end == f->value)
        return wire_error(diag, f->start, f->number, "%s", "empty signature field");
    *sig = *f;
    *found = 1;
    return CAP_OK;
}

int cap_production_find(const uint8_t *wire, size_t len, cap_wire_span *sig, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (!sig || (!wire && len))
        return cap_diag_set(diag, CAP_EINVAL, -1, "BusPacket", "missing argument");
    *sig = (cap_wire_span){0, 0, 0};
    if (len == 0)
        return cap_diag_set(diag, CAP_EMALFORMED, 0, "BusPacket", "empty packet");
    wire_field f = {0}, s = {0};
    int found = 0;
    for (size_t pos = 0; pos < len; pos = f.end) {
        int rc = next_field(wire, len, pos, &f, diag);
        if (rc == CAP_OK && f.number == CAP_FIELD_SIGNATURE)
            rc = take_signature(&f, &s, &found, diag);
        if (rc != CAP_OK)
            return rc;
    }
    if (!found)
        return cap_diag_set(diag, CAP_ESIG_MISSING, -1, "BusPacket.signature",
                            "packet carries no signature field");
    *sig = (cap_wire_span){s.start, s.value, s.end};
    return CAP_OK;
}

int cap_production_split(const uint8_t *wire, size_t len, uint8_t **body, size_t *body_len,
                         const uint8_t **sig, size_t *sig_len, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (!body || !body_len || !sig || !sig_len || (!wire && len))
        return cap_diag_set(diag, CAP_EINVAL, -1, "BusPacket", "missing argument");
    *body = NULL;
    *sig = NULL;
    *body_len = *sig_len = 0;
    cap_wire_span s;
    int rc = cap_production_find(wire, len, &s, diag);
    if (rc != CAP_OK)
        return rc;
    size_t n = len - (s.end - s.start);
    uint8_t *out = malloc(n ? n : 1);
    if (!out)
        return cap_diag_set(diag, CAP_ENOMEM, -1, "BusPacket", "out of memory");
    memcpy(out, wire, s.start);
    memcpy(out + s.start, wire + s.end, len - s.end);
    *body = out;
    *body_len = n;
    *sig = wire + s.value;
    *sig_len = s.end - s.value;
    return CAP_OK;
}

/* --- regime (c): signing -------------------------------------------------- */

/* wire = body || tag(14, 2) || varint(len) || der, in a new buffer. */
static int append_signature(const uint8_t *body, size_t body_len, const uint8_t *der, size_t der_len,
                            uint8_t **wire, size_t *wire_len)
{
    size_t n = body_len + 1 + cap_varint_size(der_len) + der_len;
    uint8_t *out = malloc(n);
    if (!out)
        return CAP_ENOMEM;
    memcpy(out, body, body_len);
    size_t k = body_len;
    out[k++] = SIG_TAG;
    k += cap_varint_write(out + k, der_len);
    memcpy(out + k, der, der_len);
    *wire = out;
    *wire_len = n;
    return CAP_OK;
}

int cap_production_sign(const cap_packet *p, const cap_key *k, uint8_t **wire, size_t *wire_len,
                        cap_diag *diag)
{
    cap_diag_clear(diag);
    if (!p || !k || !wire || !wire_len)
        return cap_diag_set(diag, CAP_EINVAL, -1, "BusPacket", "missing argument");
    *wire = NULL;
    *wire_len = 0;
    if (p->signature.len != 0)
        return cap_diag_set(diag, CAP_EINVAL, -1, "BusPacket.signature",
                            "packet is already signed; production packets are signed once");
    if (!k->d)
        return cap_diag_set(diag, CAP_EKEY, -1, "key", "signing needs a private key");
    uint8_t *body = NULL, digest[32], der[CAP_SIG_MAX_DER];
    size_t body_len = 0, der_len = 0;
    int rc = cap_encode(&p->base, &body, &body_len);
    if (rc == CAP_OK)
        rc = production_digest(body, body_len, digest);
    if (rc == CAP_OK)
        rc = cap_ecdsa_sign_digest(k, digest, der, &der_len);
    if (rc == CAP_OK)
        rc = append_signature(body, body_len, der, der_len, wire, wire_len);
    free(body);
    if (rc != CAP_OK)
        return cap_diag_set(diag, rc, -1, "BusPacket.signature", "cannot sign the packet");
    return CAP_OK;
}

/* --- regime (c): admission ------------------------------------------------ */

#define MD_PATH "BusPacket.signature_metadata"


static int is_empty(const char *s)
{
    return !s || !s[0];
}

static int md_malformed(cap_diag *diag, const char *path, const char *reason)
{
    return cap_diag_set(diag, CAP_EMALFORMED, -1, path, "%s", reason);
}

/* The SignatureMetadata shape: known profile and algorithm, a 16-byte
 * message_id, non-empty audience and key_id, a valid expires_at. */
static int check_metadata_shape(const Cordum__Agent__V1__SignatureMetadata *md, cap_diag *diag)
{
    if (!md->profile_version || strcmp(md->profile_version, CAP_PRODUCTION_PROFILE) != 0)
        return md_malformed(diag, MD_PATH ".profile_version",
                            "profile_version is not " CAP_PRODUCTION_PROFILE);
    if (!md->algorithm || strcmp(md->algorithm, CAP_PRODUCTION_ALGORITHM) != 0)
        return md_malformed(diag, MD_PATH ".algorithm", "algorithm is not " CAP_PRODUCTION_ALGORITHM);
    if (md->message_id.len != 16)
        return cap_diag_set(diag, CAP_EMALFORMED, -1, MD_PATH ".message_id",
                            "message_id has %zu bytes, not 16", md->message_id.len);
    if (is_empty(md->audience))
        return md_malformed(diag, MD_PATH ".audience", "audience is empty");
    if (is_empty(md->key_id))
        return md_malformed(diag, MD_PATH ".key_id", "key_id is empty");
    if (!md->expires_at)
        return md_malformed(diag, MD_PATH ".expires_at", "expires_at is missing");
    if (md->expires_at->nanos < 0 || md->expires_at->nanos >= NANOS_PER_SEC)
        return md_malformed(diag, MD_PATH ".expires_at.nanos", "nanos out of range");
    return CAP_OK;
}

/* expires_at must lie in (now - skew, now + lifetime + skew]. */
static int check_window(const Google__Protobuf__Timestamp *exp, const cap_production_trust *t,
                        cap_diag *diag)
{
    int64_t lifetime = t->max_lifetime_ns ? t->max_lifetime_ns : DEFAULT_LIFETIME_NS;
    int64_t skew = t->max_skew_ns ? t->max_skew_ns : DEFAULT_SKEW_NS;
    int64_t at = cap_timestamp_nanos(exp);
    int64_t lo = cap_sat_add(t->now_unix_nanos, -skew);
    int64_t hi = cap_sat_add(cap_sat_add(t->now_unix_nanos, lifetime), skew);
    if (at <= lo)
        return cap_diag_set(diag, CAP_EEXPIRED, -1, MD_PATH ".expires_at",
                            "signature expired (expires_at is %lld ns at or before now - skew)",
                            (long long)(lo - at));
    if (at > hi)
        return cap_diag_set(diag, CAP_EEXPIRED, -1, MD_PATH ".expires_at",
                            "expires_at is beyond now + max lifetime + skew");
    return CAP_OK;
}

static int trust_mismatch(cap_diag *diag, const char *path, const char *what)
{
    return cap_diag_set(diag, CAP_ETRUST, -1, path, "%s does not match the trust store", what);
}

static int check_metadata(const cap_packet *p, const cap_production_trust *t, cap_diag *diag)
{
    const Cordum__Agent__V1__SignatureMetadata *md = p->signature_metadata;
    if (!md)
        return cap_diag_set(diag, CAP_ESIG_MISSING, -1, MD_PATH,
                            "packet carries no signature metadata");
    int rc = check_metadata_shape(md, diag);
    if (rc == CAP_OK)
        rc = check_window(md->expires_at, t, diag);
    if (rc != CAP_OK)
        return rc;
    if (strcmp(md->audience, t->audience) != 0)
        return trust_mismatch(diag, MD_PATH ".audience", "audience");
    if (strcmp(md->key_id, t->key_id) != 0)
        return trust_mismatch(diag, MD_PATH ".key_id", "key_id");
    return CAP_OK;
}

/* identity.tenant_id and sender_id against the authenticated session. */
static int check_binding(const cap_packet *p, const cap_production_trust *t, cap_diag *diag)
{
    if (t->tenant_id && (!p->identity || !p->identity->tenant_id ||
                         strcmp(p->identity->tenant_id, t->tenant_id) != 0))
        return trust_mismatch(diag, "BusPacket.identity.tenant_id", "tenant_id");
    if (t->sender_id && (!p->sender_id || strcmp(p->sender_id, t->sender_id) != 0))
        return trust_mismatch(diag, "BusPacket.sender_id", "sender_id");
    return CAP_OK;
}

static int check_trust_args(const cap_production_trust *t, cap_diag *diag)
{
    if (!t || !t->key || is_empty(t->audience) || is_empty(t->key_id))
        return cap_diag_set(diag, CAP_EINVAL, -1, "trust",
                            "production admission needs a trust entry with audience, key_id and key");
    if (t->max_lifetime_ns < 0 || t->max_skew_ns < 0)
        return cap_diag_set(diag, CAP_EINVAL, -1, "trust", "negative lifetime or skew");
    return CAP_OK;
}

/* Steps after the split: strict decode, metadata, binding, signature. */
static int admit_body(const uint8_t *body, size_t body_len, const uint8_t *sig, size_t sig_len,
                      const cap_bounds *bounds, const cap_production_trust *t, cap_packet **pkt,
                      cap_diag *diag)
{
    int rc = cap_packet_decode(body, body_len, bounds, CAP_DECODE_STRICT, pkt, diag);
    if (rc == CAP_OK)
        rc = check_metadata(*pkt, t, diag);
    if (rc == CAP_OK)
        rc = check_binding(*pkt, t, diag);
    if (rc != CAP_OK)
        return rc;
    uint8_t digest[32];
    rc = production_digest(body, body_len, digest);
    if (rc != CAP_OK)
        return cap_diag_set(diag, rc, -1, "BusPacket", "cannot compute the signing digest");
    if (!der_is_strict(t->key, sig, sig_len))
        return cap_diag_set(diag, CAP_ESIG_INVALID, -1, "BusPacket.signature",
                            "signature is not strict DER (%zu bytes)", sig_len);
    if (!openssl_verify(t->key, digest, sig, sig_len))
        return cap_diag_set(diag, CAP_ESIG_INVALID, -1, "BusPacket.signature",
                            "signature does not match the packet under this key");
    return CAP_OK;
}

int cap_production_verify(const uint8_t *wire, size_t len, const cap_bounds *bounds,
                          const cap_production_trust *trust, uint8_t body_digest[32],
                          cap_packet **out, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (out)
        *out = NULL;
    if (!wire && len)
        return cap_diag_set(diag, CAP_EINVAL, -1, "BusPacket", "no input");
    int rc = check_trust_args(trust, diag);
    if (rc != CAP_OK)
        return rc;
    cap_bounds defaults = cap_bounds_default();
    const cap_bounds *b = bounds ? bounds : &defaults;
    if (len > b->max_packet)
        return cap_diag_set(diag, CAP_EMALFORMED, 0, "BusPacket",
                            "packet of %zu bytes is over the bound of %zu", len, b->max_packet);
    uint8_t *body = NULL;
    size_t body_len = 0, sig_len = 0;
    const uint8_t *sig = NULL;
    cap_packet *pkt = NULL;
    rc = cap_production_split(wire, len, &body, &body_len, &sig, &sig_len, diag);
    if (rc == CAP_OK)
        rc = admit_body(body, body_len, sig, sig_len, b, trust, &pkt, diag);
    if (rc == CAP_OK && body_digest)
        rc = sha256(body, body_len, body_digest);
    free(body);
    if (rc == CAP_OK && out)
        *out = pkt;
    else
        cap_packet_free(pkt);
    return rc;
}
