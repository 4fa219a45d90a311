/* Signing: RFC 6979 vectors, key import/export, regime (a) packet
 * signatures and CAP-PRODUCTION (regime (c)) admission. */
#include "testutil.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_schema.h"
#include "cap_sign.h"
#include "cap_varint.h"

/* The fixture key d = 1: its public key is the generator G (cap-tck 10). */
static const char D1_PUBLIC_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEaxfR8uEsQkf4vOblY6RA8ncDfYEt\n"
    "6zOg9KE5RdiYwpZP40Li/hp/m47n60p8D54WK84zV2sxXs7LtkBoN79R9Q==\n"
    "-----END PUBLIC KEY-----\n";

/* d = 1 as a SEC1 "EC PRIVATE KEY". */
static const char D1_SEC1_PEM[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABoAoGCCqGSM49\n"
    "AwEHoUQDQgAEaxfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpZP40Li/hp/\n"
    "m47n60p8D54WK84zV2sxXs7LtkBoN79R9Q==\n"
    "-----END EC PRIVATE KEY-----\n";

/* SEC1 with d = 2 but the public point of d = 1: an inconsistent pair. */
static const char MISMATCHED_SEC1_PEM[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACoAoGCCqGSM49\n"
    "AwEHoUQDQgAEaxfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpZP40Li/hp/\n"
    "m47n60p8D54WK84zV2sxXs7LtkBoN79R9Q==\n"
    "-----END EC PRIVATE KEY-----\n";

/* d = 1 as PKCS#8, encrypted with the passphrase "secret". */
static const char D1_ENCRYPTED_PEM[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAj2sCr2yV+7NwICCAAw\n"
    "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEKf47KfraUUTeQhK/SGRAS8EgZC7\n"
    "gUFJ54U36aKmUFgiDbxylHk8v+jwI4POkmdXavIM8cFEmwlD9cUBtv8vt28bqPxm\n"
    "EL+FJQHb8mc7V/EDTKq9fbSaspvTIxgpJcGUhu0fXJBEG62xXWTbPd464gxo1OGA\n"
    "FBAtQKtMOQWqYwwjOAk54hvIKn9oXpB3+5hW6PJk0Tx2YhaaT5r+6886mRxyMmU=\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

static const char P384_PUBLIC_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE5AeZmWFxECaMuiTpWzXVF3U2W0AgFaY/\n"
    "Q+cD96z1baMEoP3LxUSjAp/sQGVLBQUgullguRLneiKr3AjYNp1kXXz+yUzi+3tW\n"
    "nCzAiTfHQDK4+LB8GdwQCWW3lFw/hLKn\n"
    "-----END PUBLIC KEY-----\n";

static const char ED25519_PUBLIC_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAgE2i8JChhIVAVnoT6nGJ3LZwoaQhS3+WTz8YdKX5rBc=\n"
    "-----END PUBLIC KEY-----\n";

/* The P-256 group order n. */
static const char P256_N_HEX[] =
    "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";

/* RFC 6979 A.2.5 private key. */
static const char RFC6979_X_HEX[] =
    "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721";

/* --- helpers -------------------------------------------------------------- */

static void hex_decode(const char *hex, uint8_t *out, size_t n)
{
    assert_int_equal(strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void sha256_of(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    assert_true(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL));
    assert_int_equal(n, 32);
}

/* SHA-256("CAP-PRODUCTION-SIGNATURE-V1" || 0x00 || body), written out here
 * independently of the implementation. */
static void production_digest_of(const uint8_t *body, size_t len, uint8_t out[32])
{
    static const char domain[] = "CAP-PRODUCTION-SIGNATURE-V1";
    size_t n = sizeof domain; /* includes the 0x00 separator */
    uint8_t *buf = malloc(n + len);
    assert_non_null(buf);
    memcpy(buf, domain, n);
    memcpy(buf + n, body, len);
    sha256_of(buf, n + len, out);
    free(buf);
}

static cap_key *key_from_hex(const char *hex)
{
    uint8_t d[32];
    hex_decode(hex, d, 32);
    cap_key *k = NULL;
    assert_int_equal(cap_key_from_scalar(d, &k), CAP_OK);
    assert_non_null(k);
    return k;
}

static cap_key *key_small(uint8_t v)
{
    uint8_t d[32] = {0};
    d[31] = v;
    cap_key *k = NULL;
    assert_int_equal(cap_key_from_scalar(d, &k), CAP_OK);
    return k;
}

/* The public half of a key, through its PEM. */
static cap_key *public_of(const cap_key *k)
{
    char *pem = NULL;
    cap_key *pub = NULL;
    cap_diag diag;
    assert_int_equal(cap_key_public_pem(k, &pem), CAP_OK);
    assert_int_equal(cap_key_from_pem(pem, strlen(pem), &pub, &diag), CAP_OK);
    assert_int_equal(cap_key_has_private(pub), 0);
    free(pem);
    return pub;
}

/* Parses a DER signature back into 32-byte r and s. */
static void der_to_rs(const uint8_t *der, size_t len, uint8_t r[32], uint8_t s[32])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    assert_non_null(sig);
    assert_ptr_equal(p, der + len);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(sig), r, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(sig), s, 32), 32);
    ECDSA_SIG_free(sig);
}

/* The first occurrence of needle in buf (memmem is a GNU extension). */
static uint8_t *find_bytes(uint8_t *buf, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return buf + i;
    return NULL;
}

static void assert_hex(const uint8_t *got, const char *want_hex, size_t n)
{
    uint8_t want[64];
    assert_true(n <= sizeof want);
    hex_decode(want_hex, want, n);
    assert_memory_equal(got, want, n);
}

/* --- RFC 6979 ------------------------------------------------------------- */

static void check_rfc6979(const char *msg, const char *r_hex, const char *s_hex)
{
    cap_key *k = key_from_hex(RFC6979_X_HEX);
    uint8_t digest[32], der[CAP_SIG_MAX_DER], der2[CAP_SIG_MAX_DER], r[32], s[32];
    size_t len = 0, len2 = 0;
    sha256_of(msg, strlen(msg), digest);
    assert_int_equal(cap_ecdsa_sign_digest(k, digest, der, &len), CAP_OK);
    der_to_rs(der, len, r, s);
    assert_hex(r, r_hex, 32);
    assert_hex(s, s_hex, 32);
    /* Deterministic: the same bytes every time. */
    assert_int_equal(cap_ecdsa_sign_digest(k, digest, der2, &len2), CAP_OK);
    assert_int_equal(len2, len);
    assert_memory_equal(der2, der, len);
    /* OpenSSL's verifier accepts it, with the private or public key. */
    cap_key *pub = public_of(k);
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, der, len), CAP_OK);
    assert_int_equal(cap_ecdsa_verify_digest(pub, digest, der, len), CAP_OK);
    digest[0] ^= 1;
    assert_int_equal(cap_ecdsa_verify_digest(pub, digest, der, len), CAP_ESIG_INVALID);
    cap_key_free(pub);
    cap_key_free(k);
}

/* A.2.5, SHA-256, "sample" (k = A6E3C57D...AAD60). Its s is above n/2:
 * no low-S normalisation happens. */
static void test_rfc6979_sample(void **state)
{
    (void)state;
    check_rfc6979("sample",
                  "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
                  "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8");
}

/* A.2.5, SHA-256, "test" (k = D16B6AE8...008E0): s has a leading 0x01
 * byte, so the DER integer is 32 bytes and r's is 33. */
static void test_rfc6979_test(void **state)
{
    (void)state;
    check_rfc6979("test",
                  "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
                  "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083");
}

/* --- keys ----------------------------------------------------------------- */

static void test_public_pem_d1(void **state)
{
    (void)state;
    cap_key *k = key_small(1);
    char *pem = NULL;
    assert_int_equal(cap_key_has_private(k), 1);
    assert_int_equal(cap_key_public_pem(k, &pem), CAP_OK);
    assert_string_equal(pem, D1_PUBLIC_PEM);
    free(pem);

    /* Loading the published PEM and writing it back is the identity. */
    cap_key *pub = NULL;
    cap_diag diag;
    assert_int_equal(cap_key_from_pem(D1_PUBLIC_PEM, strlen(D1_PUBLIC_PEM), &pub, &diag), CAP_OK);
    assert_int_equal(cap_key_has_private(pub), 0);
    assert_int_equal(cap_key_public_pem(pub, &pem), CAP_OK);
    assert_string_equal(pem, D1_PUBLIC_PEM);
    free(pem);
    assert_int_equal(cap_key_private_pem(pub, &pem), CAP_EKEY);
    assert_null(pem);

    /* A public key cannot sign. */
    uint8_t digest[32] = {0}, der[CAP_SIG_MAX_DER];
    size_t len = 0;
    assert_int_equal(cap_ecdsa_sign_digest(pub, digest, der, &len), CAP_EKEY);
    cap_key_free(pub);
    cap_key_free(k);
}

/* Signs a fixed digest and returns the DER length; der receives it. */
static size_t sign_fixed(const cap_key *k, uint8_t der[CAP_SIG_MAX_DER])
{
    uint8_t digest[32];
    size_t len = 0;
    sha256_of("fixed", 5, digest);
    assert_int_equal(cap_ecdsa_sign_digest(k, digest, der, &len), CAP_OK);
    return len;
}

static void test_private_pem_round_trip(void **state)
{
    (void)state;
    cap_key *k = key_small(1), *again = NULL, *sec1 = NULL;
    char *pem = NULL;
    cap_diag diag;
    assert_int_equal(cap_key_private_pem(k, &pem), CAP_OK);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----\n"));
    assert_int_equal(cap_key_from_pem(pem, strlen(pem), &again, &diag), CAP_OK);
    free(pem);
    assert_int_equal(cap_key_from_pem(D1_SEC1_PEM, strlen(D1_SEC1_PEM), &sec1, &diag), CAP_OK);
    assert_int_equal(cap_key_has_private(again), 1);
    assert_int_equal(cap_key_has_private(sec1), 1);

    /* All three are the same key: same public PEM, same signatures. */
    uint8_t a[CAP_SIG_MAX_DER], b[CAP_SIG_MAX_DER], c[CAP_SIG_MAX_DER];
    size_t la = sign_fixed(k, a), lb = sign_fixed(again, b), lc = sign_fixed(sec1, c);
    assert_int_equal(la, lb);
    assert_int_equal(la, lc);
    assert_memory_equal(a, b, la);
    assert_memory_equal(a, c, la);
    assert_int_equal(cap_key_public_pem(sec1, &pem), CAP_OK);
    assert_string_equal(pem, D1_PUBLIC_PEM);
    free(pem);
    cap_key_free(sec1);
    cap_key_free(again);
    cap_key_free(k);
}

static void assert_pem_rejected(const char *pem, size_t len, const char *reason_part)
{
    cap_key *k = (cap_key *)1; /* must be reset to NULL */
    cap_diag diag;
    assert_int_equal(cap_key_from_pem(pem, len, &k, &diag), CAP_EKEY);
    assert_null(k);
    assert_int_equal(diag.err, CAP_EKEY);
    if (reason_part && !strstr(diag.reason, reason_part))
        fail_msg("reason \"%s\" lacks \"%s\"", diag.reason, reason_part);
}

static void test_key_rejects(void **state)
{
    (void)state;
    assert_pem_rejected(P384_PUBLIC_PEM, strlen(P384_PUBLIC_PEM), "not P-256");
    assert_pem_rejected(ED25519_PUBLIC_PEM, strlen(ED25519_PUBLIC_PEM), "is not EC P-256");
    assert_pem_rejected(MISMATCHED_SEC1_PEM, strlen(MISMATCHED_SEC1_PEM), "does not match");
    assert_pem_rejected(D1_ENCRYPTED_PEM, strlen(D1_ENCRYPTED_PEM), "no readable PEM key");
    assert_pem_rejected("not a key", 9, "no readable PEM key");
    assert_pem_rejected(D1_PUBLIC_PEM, 40, "no readable PEM key"); /* truncated */
    assert_pem_rejected(D1_PUBLIC_PEM, 0, "empty");
    char *huge = malloc((size_t)1 << 20);
    assert_non_null(huge);
    memset(huge, 'A', (size_t)1 << 20);
    assert_pem_rejected(huge, (size_t)1 << 20, "over the bound");
    free(huge);

    /* Scalars: 0 and n are out of range, n - 1 is the largest valid one. */
    uint8_t d[32] = {0};
    cap_key *k = NULL;
    assert_int_equal(cap_key_from_scalar(d, &k), CAP_EKEY);
    assert_null(k);
    hex_decode(P256_N_HEX, d, 32);
    assert_int_equal(cap_key_from_scalar(d, &k), CAP_EKEY);
    memset(d, 0xff, sizeof d);
    assert_int_equal(cap_key_from_scalar(d, &k), CAP_EKEY);
    hex_decode(P256_N_HEX, d, 32);
    d[31] -= 1;
    assert_int_equal(cap_key_from_scalar(d, &k), CAP_OK);
    cap_key_free(k);
    cap_key_free(NULL);
}

/* Strict DER: only the exact minimal encoding with 1 <= r, s < n. */
static void test_verify_rejects_non_der(void **state)
{
    (void)state;
    cap_key *k = key_from_hex(RFC6979_X_HEX);
    uint8_t digest[32], der[CAP_SIG_MAX_DER], r[32], s[32], bad[CAP_SIG_MAX_DER + 8];
    size_t len = 0;
    sha256_of("test", 4, digest);
    assert_int_equal(cap_ecdsa_sign_digest(k, digest, der, &len), CAP_OK);
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, der, len), CAP_OK);

    /* "test" gives r with its top bit set (02 21 00 ...) and s = 01 9F ...
     * (02 20 01 ...): 30 45 | 02 21 00 r | 02 20 s, 71 bytes. */
    assert_int_equal(len, 71);
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, der, len - 1), CAP_ESIG_INVALID);
    memcpy(bad, der, len);
    bad[len] = 0x00;
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, bad, len + 1), CAP_ESIG_INVALID);
    der_to_rs(der, len, r, s);
    memcpy(bad, r, 32);
    memcpy(bad + 32, s, 32);
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, bad, 64), CAP_ESIG_INVALID);
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, der, 0), CAP_ESIG_INVALID);
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, NULL, 0), CAP_ESIG_INVALID);

    /* s padded with a needless 0x00: 30 46 | 02 21 00 r | 02 21 00 01 9F... */
    size_t n = 0;
    bad[n++] = 0x30;
    bad[n++] = 0x46;
    memcpy(bad + n, der + 2, 35);
    n += 35;
    bad[n++] = 0x02;
    bad[n++] = 0x21;
    bad[n++] = 0x00;
    memcpy(bad + n, s, 32);
    n += 32;
    assert_int_equal(n, 72);
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, bad, n), CAP_ESIG_INVALID);

    /* BER long-form sequence length: 30 81 45 ... */
    bad[0] = 0x30;
    bad[1] = 0x81;
    bad[2] = 0x45;
    memcpy(bad + 3, der + 2, len - 2);
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, bad, len + 1), CAP_ESIG_INVALID);

    /* r = 0 and r = n are out of range even though well encoded. */
    static const uint8_t r_zero[] = {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01};
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, r_zero, sizeof r_zero), CAP_ESIG_INVALID);
    n = 0;
    bad[n++] = 0x30;
    bad[n++] = 0x26;
    bad[n++] = 0x02;
    bad[n++] = 0x21;
    bad[n++] = 0x00;
    hex_decode(P256_N_HEX, bad + n, 32);
    n += 32;
    bad[n++] = 0x02;
    bad[n++] = 0x01;
    bad[n++] = 0x01;
    assert_int_equal(cap_ecdsa_verify_digest(k, digest, bad, n), CAP_ESIG_INVALID);
    cap_key_free(k);
}

/* --- a BusPacket with a JobRequest ---------------------------------------- */

#define NOW_SECONDS INT64_C(1704164645)
#define NOW_NANOS (NOW_SECONDS * INT64_C(1000000000))
#define MINUTE_NS (INT64_C(60) * INT64_C(1000000000))

/* Every part of the test packet, on one struct so each test starts from
 * the same values and changes only what it needs. */
typedef struct {
    cap_packet pkt;
    Google__Protobuf__Timestamp created_at, expires_at;
    Cordum__Agent__V1__SignatureMetadata md;
    Cordum__Agent__V1__IdentityBinding identity;
    Cordum__Agent__V1__JobRequest job;
    Cordum__Agent__V1__JobRequest__EnvEntry env[2];
    Cordum__Agent__V1__JobRequest__EnvEntry *env_ptrs[2];
    char trace_id[32], job_id[32];
    uint8_t message_id[16];
} packet_fixture;

static void fixture_init(packet_fixture *f, int production)
{
    memset(f, 0, sizeof *f);
    cap_packet pkt = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Cordum__Agent__V1__SignatureMetadata md = CORDUM__AGENT__V1__SIGNATURE_METADATA__INIT;
    Cordum__Agent__V1__IdentityBinding id = CORDUM__AGENT__V1__IDENTITY_BINDING__INIT;
    Cordum__Agent__V1__JobRequest job = CORDUM__AGENT__V1__JOB_REQUEST__INIT;
    Cordum__Agent__V1__JobRequest__EnvEntry e = CORDUM__AGENT__V1__JOB_REQUEST__ENV_ENTRY__INIT;
    f->pkt = pkt;
    f->created_at = ts;
    f->expires_at = ts;
    f->md = md;
    f->identity = id;
    f->job = job;
    f->env[0] = e;
    f->env[1] = e;

    snprintf(f->trace_id, sizeof f->trace_id, "trace-job-request");
    snprintf(f->job_id, sizeof f->job_id, "job-req-1");
    f->created_at.seconds = NOW_SECONDS;
    f->env[0].key = "region";
    f->env[0].value = "us-east-1";
    f->env[1].key = "sandbox";
    f->env[1].value = "true";
    f->env_ptrs[0] = &f->env[0];
    f->env_ptrs[1] = &f->env[1];
    f->job.job_id = f->job_id;
    f->job.topic = "job.tools";
    f->job.priority = CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_INTERACTIVE;
    f->job.n_env = 2;
    f->job.env = f->env_ptrs;
    f->job.tenant_id = "tenant-1";

    f->pkt.trace_id = f->trace_id;
    f->pkt.sender_id = "client-1";
    f->pkt.created_at = &f->created_at;
    f->pkt.protocol_version = 1;
    f->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    f->pkt.job_request = &f->job;
    if (!production)
        return;

    for (int i = 0; i < 16; i++)
        f->message_id[i] = (uint8_t)(0xA0 + i);
    f->expires_at.seconds = NOW_SECONDS + 120;
    f->md.profile_version = CAP_PRODUCTION_PROFILE;
    f->md.algorithm = CAP_PRODUCTION_ALGORITHM;
    f->md.message_id.data = f->message_id;
    f->md.message_id.len = 16;
    f->md.audience = "cap.job.tools";
    f->md.expires_at = &f->expires_at;
    f->md.key_id = "key-1";
    f->identity.tenant_id = "tenant-1";
    f->identity.principal_id = "user-99";
    f->pkt.signature_metadata = &f->md;
    f->pkt.identity = &f->identity;
}

/* --- regime (a) ----------------------------------------------------------- */

static void test_packet_sign_verify(void **state)
{
    (void)state;
    packet_fixture f;
    fixture_init(&f, 0);
    cap_key *k = key_small(1), *pub = public_of(k);
    cap_diag diag;

    /* The digest is SHA-256 of the canonical encoding without field 14. */
    uint8_t digest[32], want[32], *enc = NULL;
    size_t enc_len = 0;
    assert_int_equal(cap_encode(&f.pkt.base, &enc, &enc_len), CAP_OK);
    sha256_of(enc, enc_len, want);
    free(enc);
    assert_int_equal(cap_packet_signing_digest(&f.pkt, digest), CAP_OK);
    assert_memory_equal(digest, want, 32);

    assert_int_equal(cap_packet_sign(&f.pkt, k, &diag), CAP_OK);
    assert_int_equal(diag.err, CAP_OK);
    assert_non_null(f.pkt.signature.data);
    assert_in_range(f.pkt.signature.len, 8, CAP_SIG_MAX_DER);
    assert_int_equal(f.pkt.signature.data[0], 0x30);

    /* The digest ignores the signature and leaves the packet alone. */
    uint8_t *sig_before = f.pkt.signature.data;
    assert_int_equal(cap_packet_signing_digest(&f.pkt, digest), CAP_OK);
    assert_memory_equal(digest, want, 32);
    assert_ptr_equal(f.pkt.signature.data, sig_before);

    assert_int_equal(cap_packet_verify(&f.pkt, pub, 1, &diag), CAP_OK);
    assert_int_equal(diag.err, CAP_OK);
    assert_int_equal(cap_packet_verify(&f.pkt, k, 0, &diag), CAP_OK);
    /* The signature is over exactly that digest. */
    assert_int_equal(cap_ecdsa_verify_digest(pub, want, f.pkt.signature.data, f.pkt.signature.len),
                     CAP_OK);
    free(f.pkt.signature.data);
    cap_key_free(pub);
    cap_key_free(k);
}

static void test_packet_sign_deterministic(void **state)
{
    (void)state;
    packet_fixture f;
    fixture_init(&f, 0);
    cap_key *k = key_small(1);
    cap_diag diag;
    uint8_t first[CAP_SIG_MAX_DER];
    assert_int_equal(cap_packet_sign(&f.pkt, k, &diag), CAP_OK);
    size_t first_len = f.pkt.signature.len;
    memcpy(first, f.pkt.signature.data, first_len);
    /* Re-signing replaces (and frees) the old signature with the same bytes. */
    assert_int_equal(cap_packet_sign(&f.pkt, k, &diag), CAP_OK);
    assert_int_equal(f.pkt.signature.len, first_len);
    assert_memory_equal(f.pkt.signature.data, first, first_len);
    free(f.pkt.signature.data);

    /* A second key from the same scalar gives the same bytes too. */
    cap_key *k2 = key_small(1);
    packet_fixture g;
    fixture_init(&g, 0);
    assert_int_equal(cap_packet_sign(&g.pkt, k2, &diag), CAP_OK);
    assert_int_equal(g.pkt.signature.len, first_len);
    assert_memory_equal(g.pkt.signature.data, first, first_len);
    free(g.pkt.signature.data);
    cap_key_free(k2);
    cap_key_free(k);
}

static void assert_verify_fails(const cap_packet *p, const cap_key *pub, int err, const char *reason)
{
    cap_diag diag;
    assert_int_equal(cap_packet_verify(p, pub, 1, &diag), err);
    assert_int_equal(diag.err, err);
    assert_string_equal(diag.path, "BusPacket.signature");
    if (reason && !strstr(diag.reason, reason))
        fail_msg("reason \"%s\" lacks \"%s\"", diag.reason, reason);
}

static void test_packet_verify_rejects(void **state)
{
    (void)state;
    packet_fixture f;
    fixture_init(&f, 0);
    cap_key *k = key_small(1), *pub = public_of(k), *other = key_small(2);
    cap_key *other_pub = public_of(other);
    cap_diag diag;
    assert_int_equal(cap_packet_sign(&f.pkt, k, &diag), CAP_OK);
    const char *mismatch = "signature does not match the packet under this key";

    /* A flipped byte in a signed field, top level and nested. */
    f.trace_id[0] ^= 0x01;
    assert_verify_fails(&f.pkt, pub, CAP_ESIG_INVALID, mismatch);
    f.trace_id[0] ^= 0x01;
    f.job_id[3] ^= 0x01;
    assert_verify_fails(&f.pkt, pub, CAP_ESIG_INVALID, mismatch);
    f.job_id[3] ^= 0x01;
    f.created_at.nanos = 1;
    assert_verify_fails(&f.pkt, pub, CAP_ESIG_INVALID, mismatch);
    f.created_at.nanos = 0;
    f.pkt.auth_token = "session-token"; /* signed too (cap-spec 2a) */
    assert_verify_fails(&f.pkt, pub, CAP_ESIG_INVALID, mismatch);
    f.pkt.auth_token = (char *)protobuf_c_empty_string;
    assert_int_equal(cap_packet_verify(&f.pkt, pub, 1, &diag), CAP_OK);

    /* A wrong key. */
    assert_verify_fails(&f.pkt, other_pub, CAP_ESIG_INVALID, mismatch);

    /* Malformed DER: truncated, a trailing byte, the raw P1363 r || s. */
    uint8_t *good = f.pkt.signature.data;
    size_t good_len = f.pkt.signature.len;
    uint8_t bad[CAP_SIG_MAX_DER + 1], r[32], s[32];
    f.pkt.signature.data = bad;
    memcpy(bad, good, good_len);
    f.pkt.signature.len = good_len - 1;
    assert_verify_fails(&f.pkt, pub, CAP_ESIG_INVALID, "not strict DER");
    bad[good_len] = 0x00;
    f.pkt.signature.len = good_len + 1;
    assert_verify_fails(&f.pkt, pub, CAP_ESIG_INVALID, "not strict DER");
    der_to_rs(good, good_len, r, s);
    memcpy(bad, r, 32);
    memcpy(bad + 32, s, 32);
    f.pkt.signature.len = 64;
    assert_verify_fails(&f.pkt, pub, CAP_ESIG_INVALID, "not strict DER");

    /* Missing: 104 only when required. */
    f.pkt.signature.data = NULL;
    f.pkt.signature.len = 0;
    assert_verify_fails(&f.pkt, pub, CAP_ESIG_MISSING, "no signature");
    assert_int_equal(cap_packet_verify(&f.pkt, pub, 0, &diag), CAP_OK);
    assert_int_equal(diag.err, CAP_OK);

    free(good);
    cap_key_free(other_pub);
    cap_key_free(other);
    cap_key_free(pub);
    cap_key_free(k);
}

/* --- regime (c): CAP-PRODUCTION ------------------------------------------- */

static cap_production_trust trust_for(const cap_key *pub)
{
    cap_production_trust t = {
        .audience = "cap.job.tools",
        .tenant_id = "tenant-1",
        .sender_id = "client-1",
        .key_id = "key-1",
        .key = pub,
        .now_unix_nanos = NOW_NANOS,
    };
    return t;
}

/* Signs the fixture's packet with d = 1. */
static uint8_t *prod_sign(const packet_fixture *f, size_t *len)
{
    cap_key *k = key_small(1);
    uint8_t *wire = NULL;
    cap_diag diag;
    assert_int_equal(cap_production_sign(&f->pkt, k, &wire, len, &diag), CAP_OK);
    assert_int_equal(diag.err, CAP_OK);
    cap_key_free(k);
    return wire;
}

static void assert_prod(const uint8_t *wire, size_t len, const cap_production_trust *t, int err,
                        const char *reason)
{
    cap_diag diag;
    cap_packet *out = (cap_packet *)1;
    uint8_t digest[32];
    assert_int_equal(cap_production_verify(wire, len, NULL, t, digest, &out, &diag), err);
    assert_int_equal(diag.err, err);
    if (err != CAP_OK)
        assert_null(out);
    cap_packet_free(out);
    if (reason && !strstr(diag.reason, reason))
        fail_msg("reason \"%s\" lacks \"%s\"", diag.reason, reason);
}

/* Signs the fixture and checks admission under the default trust entry. */
static void assert_prod_fixture(const packet_fixture *f, int err, const char *reason)
{
    cap_key *pub = key_small(1);
    cap_production_trust t = trust_for(pub);
    size_t len = 0;
    uint8_t *wire = prod_sign(f, &len);
    assert_prod(wire, len, &t, err, reason);
    free(wire);
    cap_key_free(pub);
}

static void test_production_round_trip(void **state)
{
    (void)state;
    packet_fixture f;
    fixture_init(&f, 1);
    cap_key *k = key_small(1), *pub = public_of(k);
    cap_production_trust t = trust_for(pub);
    cap_diag diag;
    size_t len = 0, body_len = 0, sig_len = 0;
    uint8_t *wire = prod_sign(&f, &len), *body = NULL, *enc = NULL;
    const uint8_t *sig = NULL;

    /* wire = canonical body || 0x72 || len || DER. */
    assert_int_equal(cap_encode(&f.pkt.base, &enc, &body_len), CAP_OK);
    assert_true(len > body_len + 2);
    assert_memory_equal(wire, enc, body_len);
    assert_int_equal(wire[body_len], 0x72);
    assert_int_equal(wire[body_len + 1], len - body_len - 2);
    assert_int_equal(wire[body_len + 2], 0x30);

    /* The split gives back the body and the DER; the DER signs the
     * domain-prefixed digest, written out independently here. */
    assert_int_equal(cap_production_split(wire, len, &body, &body_len, &sig, &sig_len, &diag),
                     CAP_OK);
    assert_memory_equal(body, enc, body_len);
    assert_ptr_equal(sig, wire + body_len + 2);
    assert_int_equal(sig_len, len - body_len - 2);
    uint8_t domain_digest[32], plain_digest[32];
    production_digest_of(body, body_len, domain_digest);
    sha256_of(body, body_len, plain_digest);
    assert_int_equal(cap_ecdsa_verify_digest(pub, domain_digest, sig, sig_len), CAP_OK);
    assert_int_equal(cap_ecdsa_verify_digest(pub, plain_digest, sig, sig_len), CAP_ESIG_INVALID);

    /* Admission: the body digest is SHA-256(body) without the domain. */
    uint8_t got[32];
    cap_packet *out = NULL;
    assert_int_equal(cap_production_verify(wire, len, NULL, &t, got, &out, &diag), CAP_OK);
    assert_int_equal(diag.err, CAP_OK);
    assert_memory_equal(got, plain_digest, 32);
    assert_non_null(out);
    assert_string_equal(out->trace_id, "trace-job-request");
    assert_string_equal(out->signature_metadata->key_id, "key-1");
    assert_int_equal(out->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST);
    assert_string_equal(out->job_request->job_id, "job-req-1");
    assert_int_equal(out->signature.len, 0);
    cap_packet_free(out);
    assert_int_equal(cap_production_verify(wire, len, NULL, &t, NULL, NULL, &diag), CAP_OK);

    /* Deterministic: the same wire bytes on a second run. */
    size_t len2 = 0;
    uint8_t *wire2 = prod_sign(&f, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(wire2, wire, len);

    free(wire2);
    free(body);
    free(enc);
    free(wire);
    cap_key_free(pub);
    cap_key_free(k);
}

static void test_production_sign_rejects(void **state)
{
    (void)state;
    packet_fixture f;
    fixture_init(&f, 1);
    cap_key *k = key_small(1), *pub = public_of(k);
    uint8_t *wire = (uint8_t *)1, sig[4] = {0x30, 0x02, 0x01, 0x01};
    size_t len = 7;
    cap_diag diag;
    f.pkt.signature.data = sig;
    f.pkt.signature.len = sizeof sig;
    assert_int_equal(cap_production_sign(&f.pkt, k, &wire, &len, &diag), CAP_EINVAL);
    assert_null(wire);
    assert_int_equal(len, 0);
    assert_string_equal(diag.path, "BusPacket.signature");
    f.pkt.signature.data = NULL;
    f.pkt.signature.len = 0;
    assert_int_equal(cap_production_sign(&f.pkt, pub, &wire, &len, &diag), CAP_EKEY);
    assert_null(wire);
    cap_key_free(pub);
    cap_key_free(k);
}

static void test_production_tampered(void **state)
{
    (void)state;
    packet_fixture f;
    fixture_init(&f, 1);
    cap_key *pub = key_small(1), *other = key_small(2);
    cap_production_trust t = trust_for(pub);
    size_t len = 0;
    uint8_t *wire = prod_sign(&f, &len);
    const char *mismatch = "signature does not match the packet under this key";

    /* A flipped byte inside trace_id (still valid UTF-8, still decodes). */
    uint8_t *hit = find_bytes(wire, len, "trace-job-request");
    assert_non_null(hit);
    hit[0] ^= 0x01;
    assert_prod(wire, len, &t, CAP_ESIG_INVALID, mismatch);
    hit[0] ^= 0x01;
    hit = find_bytes(wire, len, "job-req-1"); /* inside the JobRequest */
    assert_non_null(hit);
    hit[4] ^= 0x02;
    assert_prod(wire, len, &t, CAP_ESIG_INVALID, mismatch);
    hit[4] ^= 0x02;
    assert_prod(wire, len, &t, CAP_OK, NULL);

    /* A flipped byte inside the DER itself (its last byte, part of s). */
    wire[len - 1] ^= 0x01;
    assert_prod(wire, len, &t, CAP_ESIG_INVALID, NULL);
    wire[len - 1] ^= 0x01;

    /* The wrong key. */
    cap_production_trust wrong = t;
    wrong.key = other;
    assert_prod(wire, len, &wrong, CAP_ESIG_INVALID, mismatch);

    free(wire);
    cap_key_free(other);
    cap_key_free(pub);
}

/* Builds a wire image from parts; returns a malloc'd buffer. */
static uint8_t *concat(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, size_t *len)
{
    uint8_t *out = malloc(alen + blen + 1);
    assert_non_null(out);
    memcpy(out, a, alen);
    if (blen)
        memcpy(out + alen, b, blen);
    *len = alen + blen;
    return out;
}

static void test_production_field14_rules(void **state)
{
    (void)state;
    packet_fixture f;
    fixture_init(&f, 1);
    cap_key *pub = key_small(1);
    cap_production_trust t = trust_for(pub);
    size_t len = 0, body_len = 0, n = 0;
    uint8_t *wire = prod_sign(&f, &len), *body = NULL, *x;
    assert_int_equal(cap_encode(&f.pkt.base, &body, &body_len), CAP_OK);
    const uint8_t *sigfield = wire + body_len; /* 0x72 len DER */
    size_t sigfield_len = len - body_len;

    /* Field 14 twice. */
    x = concat(wire, len, sigfield, sigfield_len, &n);
    assert_prod(x, n, &t, CAP_EMALFORMED, "duplicate signature field");
    free(x);

    /* No field 14 at all. */
    assert_prod(body, body_len, &t, CAP_ESIG_MISSING, "no signature field");

    /* Field 14 present but empty. */
    static const uint8_t empty14[] = {0x72, 0x00};
    x = concat(body, body_len, empty14, 2, &n);
    assert_prod(x, n, &t, CAP_EMALFORMED, "empty signature field");
    free(x);

    /* Field 14 as a varint. */
    static const uint8_t varint14[] = {0x70, 0x01};
    x = concat(wire, len, varint14, 2, &n);
    assert_prod(x, n, &t, CAP_EMALFORMED, "not length-delimited");
    free(x);

    /* Field 14 first is fine: every other byte stays in received order. */
    x = concat(sigfield, sigfield_len, body, body_len, &n);
    assert_prod(x, n, &t, CAP_OK, NULL);
    free(x);

    /* A non-minimal tag before field 14: trace_id's 0x0A as 0x8A 0x00. */
    assert_int_equal(wire[0], 0x0A);
    static const uint8_t long_tag[] = {0x8A, 0x00};
    x = concat(long_tag, 2, wire + 1, len - 1, &n);
    assert_prod(x, n, &t, CAP_EMALFORMED, "non-minimal");
    free(x);

    /* A non-minimal length of field 14: 0x72 0xC7 0x00 (71 in two bytes). */
    uint8_t long_len[3] = {0x72, (uint8_t)(sigfield[1] | 0x80), 0x00};
    x = concat(body, body_len, long_len, 3, &n);
    uint8_t *y = concat(x, n, sigfield + 2, sigfield_len - 2, &n);
    assert_prod(y, n, &t, CAP_EMALFORMED, "non-minimal");
    free(y);
    free(x);

    /* Truncated anywhere inside the signature field. */
    assert_prod(wire, len - 1, &t, CAP_EMALFORMED, "past the end");
    assert_prod(wire, body_len + 1, &t, CAP_EMALFORMED, "truncated");
    assert_prod(wire, 0, &t, CAP_EMALFORMED, "empty packet");

    /* Groups, invalid wire types and field number 0, before field 14. */
    static const uint8_t group[] = {0x7B, 0x7C};      /* field 15 start/end group */
    static const uint8_t wt6[] = {0x0E, 0x00};        /* field 1, wire type 6 */
    static const uint8_t field0[] = {0x02, 0x00};     /* field 0, wire type 2 */
    const uint8_t *prefixes[] = {group, wt6, field0};
    const char *why[] = {"groups", "invalid wire type", "field number 0"};
    for (int i = 0; i < 3; i++) {
        x = concat(prefixes[i], 2, wire, len, &n);
        assert_prod(x, n, &t, CAP_EMALFORMED, why[i]);
        free(x);
    }

    /* The raw size bound comes first. */
    cap_bounds b = cap_bounds_default();
    b.max_packet = len - 1;
    cap_diag diag;
    assert_int_equal(cap_production_verify(wire, len, &b, &t, NULL, NULL, &diag), CAP_EMALFORMED);
    assert_non_null(strstr(diag.reason, "over the bound"));
    b.max_packet = len;
    assert_int_equal(cap_production_verify(wire, len, &b, &t, NULL, NULL, &diag), CAP_OK);

    free(body);
    free(wire);
    cap_key_free(pub);
}

static void test_production_split_direct(void **state)
{
    (void)state;
    /* field 1 "a", field 14 "xy", field 2 "b": the body keeps 1 and 2. */
    static const uint8_t wire[] = {0x0A, 0x01, 'a', 0x72, 0x02, 'x', 'y', 0x12, 0x01, 'b'};
    static const uint8_t want[] = {0x0A, 0x01, 'a', 0x12, 0x01, 'b'};
    uint8_t *body = NULL;
    const uint8_t *sig = NULL;
    size_t body_len = 0, sig_len = 0;
    cap_diag diag;
    assert_int_equal(cap_production_split(wire, sizeof wire, &body, &body_len, &sig, &sig_len, &diag),
                     CAP_OK);
    assert_int_equal(body_len, sizeof want);
    assert_memory_equal(body, want, sizeof want);
    assert_ptr_equal(sig, wire + 5);
    assert_int_equal(sig_len, 2);
    free(body);

    /* A fixed64 and a fixed32 field are skipped whole; a truncated one is not. */
    static const uint8_t fixed[] = {0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x15, 1, 2, 3, 4, 0x72, 0x01, 'z'};
    assert_int_equal(
        cap_production_split(fixed, sizeof fixed, &body, &body_len, &sig, &sig_len, &diag), CAP_OK);
    assert_int_equal(body_len, 14);
    free(body);
    assert_int_equal(cap_production_split(fixed, 6, &body, &body_len, &sig, &sig_len, &diag),
                     CAP_EMALFORMED);
    assert_null(body);
    assert_int_equal(diag.offset, 1);

    /* A varint value that is not minimal. */
    static const uint8_t nonmin_value[] = {0x20, 0x81, 0x00, 0x72, 0x01, 'z'};
    assert_int_equal(cap_production_split(nonmin_value, sizeof nonmin_value, &body, &body_len, &sig,
                                          &sig_len, &diag),
                     CAP_EMALFORMED);
    assert_non_null(strstr(diag.reason, "non-minimal"));
    assert_null(body);
}

/* cap_production_find locates field 14 without copying and decides
 * exactly as cap_production_split does, diagnostics included, on inputs
 * that take both the one-byte and the multi-byte varint paths. */
static void test_production_find(void **state)
{
    (void)state;
    cap_diag diag, want;
    cap_wire_span sp;
    uint8_t *body = NULL;
    const uint8_t *sig = NULL;
    size_t body_len = 0, sig_len = 0;

    /* field 1 "a", field 14 "xy", field 2 "b": the span of field 14. */
    static const uint8_t wire[] = {0x0A, 0x01, 'a', 0x72, 0x02, 'x', 'y', 0x12, 0x01, 'b'};
    assert_int_equal(cap_production_find(wire, sizeof wire, &sp, &diag), CAP_OK);
    assert_int_equal(diag.err, CAP_OK);
    assert_int_equal(sp.start, 3);
    assert_int_equal(sp.value, 5);
    assert_int_equal(sp.end, 7);

    /* No field 14: CAP_ESIG_MISSING and a zeroed span. */
    assert_int_equal(cap_production_find(wire, 3, &sp, &diag), CAP_ESIG_MISSING);
    assert_int_equal(diag.err, CAP_ESIG_MISSING);
    assert_int_equal(sp.start + sp.value + sp.end, 0);

    /* Missing arguments. */
    assert_int_equal(cap_production_find(NULL, 3, &sp, &diag), CAP_EINVAL);
    assert_int_equal(cap_production_find(wire, sizeof wire, NULL, &diag), CAP_EINVAL);

    /* A two-byte tag (field 16), a two-byte length (130) and a
     * two-byte varint value before field 14; then inputs that fail. */
    static uint8_t longs[4 + 130 + 4 + 3];
    size_t n = 0;
    longs[n++] = 0x82; /* field 16, wire type 2 */
    longs[n++] = 0x01;
    longs[n++] = 0x82; /* length 130 */
    longs[n++] = 0x01;
    memset(longs + n, 'v', 130);
    n += 130;
    longs[n++] = 0x18; /* field 3, varint 300 */
    longs[n++] = 0xAC;
    longs[n++] = 0x02;
    longs[n++] = 0x72; /* field 14, "s" */
    longs[n++] = 0x01;
    longs[n++] = 's';
    assert_int_equal(n, sizeof longs - 1);
    static const uint8_t dup14[] = {0x72, 0x01, 'a', 0x72, 0x01, 'b'};
    static const uint8_t empty14[] = {0x0A, 0x01, 'a', 0x72, 0x00};
    static const uint8_t varint14[] = {0x70, 0x01};
    static const uint8_t long_tag[] = {0x8A, 0x00, 0x01, 'a', 0x72, 0x01, 'b'};
    static const uint8_t long_len[] = {0x72, 0x81, 0x00, 'b'};
    static const uint8_t past_end[] = {0x72, 0x05, 'b'};
    static const uint8_t cut_varint[] = {0x18, 0xAC};
    static const uint8_t cut_tag[] = {0x72, 0x01, 'b', 0x82};
    static const uint8_t group[] = {0x7B, 0x7C, 0x72, 0x01, 'b'};
    static const uint8_t wt6[] = {0x0E, 0x00};
    static const uint8_t field0[] = {0x02, 0x00};
    static const uint8_t cut_fixed[] = {0x09, 1, 2, 3};
    static const uint8_t huge_tag[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00};
    const struct {
        const uint8_t *b;
        size_t n;
        int rc;
    } cases[] = {
        {longs, n, CAP_OK},
        {longs, n - 3, CAP_ESIG_MISSING},
        {dup14, sizeof dup14, CAP_EMALFORMED},
        {empty14, sizeof empty14, CAP_EMALFORMED},
        {varint14, sizeof varint14, CAP_EMALFORMED},
        {long_tag, sizeof long_tag, CAP_EMALFORMED},
        {long_len, sizeof long_len, CAP_EMALFORMED},
        {past_end, sizeof past_end, CAP_EMALFORMED},
        {cut_varint, sizeof cut_varint, CAP_EMALFORMED},
        {cut_tag, sizeof cut_tag, CAP_EMALFORMED},
        {group, sizeof group, CAP_EMALFORMED},
        {wt6, sizeof wt6, CAP_EMALFORMED},
        {field0, sizeof field0, CAP_EMALFORMED},
        {cut_fixed, sizeof cut_fixed, CAP_EMALFORMED},
        {huge_tag, sizeof huge_tag, CAP_EMALFORMED},
        {wire, 0, CAP_EMALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = cap_production_find(cases[i].b, cases[i].n, &sp, &diag);
        int split = cap_production_split(cases[i].b, cases[i].n, &body, &body_len, &sig, &sig_len,
                                         &want);
        if (got != cases[i].rc || split != got || diag.err != want.err ||
            diag.offset != want.offset || strcmp(diag.reason, want.reason) != 0 ||
            strcmp(diag.path, want.path) != 0)
            fail_msg("case %zu: find %d (%ld %s), split %d (%ld %s), want %d", i, got, diag.offset,
                     diag.reason, split, want.offset, want.reason, cases[i].rc);
        if (got == CAP_OK) {
            /* The body is what lies around the span; the signature its value. */
            assert_int_equal(body_len, cases[i].n - (sp.end - sp.start));
            assert_memory_equal(body, cases[i].b, sp.start);
            assert_memory_equal(body + sp.start, cases[i].b + sp.end, cases[i].n - sp.end);
            assert_ptr_equal(sig, cases[i].b + sp.value);
            assert_int_equal(sig_len, sp.end - sp.value);
        }
        free(body);
        body = NULL;
    }
}

static void test_production_window(void **state)
{
    (void)state;
    packet_fixture f;
    const int64_t skew_s = 60, lifetime_s = 300;

    /* expires_at = now - skew: expired; one nanosecond later: accepted. */
    fixture_init(&f, 1);
    f.expires_at.seconds = NOW_SECONDS - skew_s;
    assert_prod_fixture(&f, CAP_EEXPIRED, "expired");
    f.expires_at.seconds = NOW_SECONDS - skew_s - 1;
    f.expires_at.nanos = 999999999;
    assert_prod_fixture(&f, CAP_EEXPIRED, "expired");
    f.expires_at.seconds = NOW_SECONDS - skew_s;
    f.expires_at.nanos = 1;
    assert_prod_fixture(&f, CAP_OK, NULL);

    /* expires_at = now + lifetime + skew: accepted; 1 ns more: not yet valid. */
    f.expires_at.seconds = NOW_SECONDS + lifetime_s + skew_s;
    f.expires_at.nanos = 0;
    assert_prod_fixture(&f, CAP_OK, NULL);
    f.expires_at.nanos = 1;
    assert_prod_fixture(&f, CAP_EEXPIRED, "beyond");
    f.expires_at.seconds = INT64_C(253402300799); /* year 9999 */
    f.expires_at.nanos = 0;
    assert_prod_fixture(&f, CAP_EEXPIRED, "beyond");

    /* Explicit lifetime and skew in the trust entry. */
    cap_key *pub = key_small(1);
    cap_production_trust t = trust_for(pub);
    t.max_lifetime_ns = MINUTE_NS;
    t.max_skew_ns = 1;
    f.expires_at.seconds = NOW_SECONDS + 60;
    f.expires_at.nanos = 1;
    size_t len = 0;
    uint8_t *wire = prod_sign(&f, &len);
    assert_prod(wire, len, &t, CAP_OK, NULL);
    t.max_skew_ns = 0; /* the 1-minute default */
    assert_prod(wire, len, &t, CAP_OK, NULL);
    t.max_lifetime_ns = 1;
    t.max_skew_ns = 1;
    assert_prod(wire, len, &t, CAP_EEXPIRED, "beyond");
    t.max_skew_ns = -1;
    assert_prod(wire, len, &t, CAP_EINVAL, NULL);
    free(wire);
    cap_key_free(pub);
}

static void test_production_metadata(void **state)
{
    (void)state;
    packet_fixture f;

    fixture_init(&f, 1);
    f.pkt.signature_metadata = NULL;
    assert_prod_fixture(&f, CAP_ESIG_MISSING, "no signature metadata");

    fixture_init(&f, 1);
    f.md.message_id.len = 15;
    assert_prod_fixture(&f, CAP_EMALFORMED, "15 bytes");
    f.md.message_id.len = 0;
    assert_prod_fixture(&f, CAP_EMALFORMED, "0 bytes");

    fixture_init(&f, 1);
    f.md.profile_version = "cap-production-v2";
    assert_prod_fixture(&f, CAP_EMALFORMED, "profile_version");
    fixture_init(&f, 1);
    f.md.algorithm = "ECDSA-P384-SHA384";
    assert_prod_fixture(&f, CAP_EMALFORMED, "algorithm");
    fixture_init(&f, 1);
    f.md.audience = (char *)protobuf_c_empty_string;
    assert_prod_fixture(&f, CAP_EMALFORMED, "audience is empty");
    fixture_init(&f, 1);
    f.md.key_id = (char *)protobuf_c_empty_string;
    assert_prod_fixture(&f, CAP_EMALFORMED, "key_id is empty");
    fixture_init(&f, 1);
    f.md.expires_at = NULL;
    assert_prod_fixture(&f, CAP_EMALFORMED, "expires_at is missing");
}

static void test_production_trust(void **state)
{
    (void)state;
    packet_fixture f;

    fixture_init(&f, 1);
    f.md.audience = "cap.job.other";
    assert_prod_fixture(&f, CAP_ETRUST, "audience");
    fixture_init(&f, 1);
    f.md.key_id = "key-2";
    assert_prod_fixture(&f, CAP_ETRUST, "key_id");
    fixture_init(&f, 1);
    f.identity.tenant_id = "tenant-2";
    assert_prod_fixture(&f, CAP_ETRUST, "tenant_id");
    fixture_init(&f, 1);
    f.pkt.identity = NULL;
    assert_prod_fixture(&f, CAP_ETRUST, "tenant_id");
    fixture_init(&f, 1);
    f.pkt.sender_id = "client-2";
    assert_prod_fixture(&f, CAP_ETRUST, "sender_id");

    /* Tenant and sender are checked only when the trust entry names them. */
    cap_key *pub = key_small(1);
    cap_production_trust t = trust_for(pub);
    t.tenant_id = NULL;
    t.sender_id = NULL;
    size_t len = 0;
    uint8_t *wire = prod_sign(&f, &len); /* sender client-2 */
    assert_prod(wire, len, &t, CAP_OK, NULL);
    t.audience = NULL;
    assert_prod(wire, len, &t, CAP_EINVAL, NULL);
    assert_prod(wire, len, NULL, CAP_EINVAL, NULL);
    free(wire);
    cap_key_free(pub);
}

static void test_production_strict_body(void **state)
{
    (void)state;
    packet_fixture f;
    fixture_init(&f, 1);
    /* An unknown top-level varint field 99: signed correctly, still refused. */
    static uint8_t one = 0x01;
    ProtobufCMessageUnknownField uf = {
        .tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT, .len = 1, .data = &one};
    f.pkt.base.n_unknown_fields = 1;
    f.pkt.base.unknown_fields = &uf;
    assert_prod_fixture(&f, CAP_EMALFORMED, "unknown");

    /* A regime (a) signature is not a production signature (domain
     * separation): the same key, the same body, refused. */
    fixture_init(&f, 1);
    cap_key *k = key_small(1);
    cap_production_trust t = trust_for(k);
    cap_diag diag;
    uint8_t *enc = NULL;
    size_t len = 0;
    assert_int_equal(cap_packet_sign(&f.pkt, k, &diag), CAP_OK);
    assert_int_equal(cap_encode(&f.pkt.base, &enc, &len), CAP_OK);
    assert_prod(enc, len, &t, CAP_ESIG_INVALID, "does not match");
    free(enc);
    free(f.pkt.signature.data);
    cap_key_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6979_sample),
        cmocka_unit_test(test_rfc6979_test),
        cmocka_unit_test(test_public_pem_d1),
        cmocka_unit_test(test_private_pem_round_trip),
        cmocka_unit_test(test_key_rejects),
        cmocka_unit_test(test_verify_rejects_non_der),
        cmocka_unit_test(test_packet_sign_verify),
        cmocka_unit_test(test_packet_sign_deterministic),
        cmocka_unit_test(test_packet_verify_rejects),
        cmocka_unit_test(test_production_round_trip),
        cmocka_unit_test(test_production_sign_rejects),
        cmocka_unit_test(test_production_tampered),
        cmocka_unit_test(test_production_field14_rules),
        cmocka_unit_test(test_production_split_direct),
        cmocka_unit_test(test_production_find),
        cmocka_unit_test(test_production_window),
        cmocka_unit_test(test_production_metadata),
        cmocka_unit_test(test_production_trust),
        cmocka_unit_test(test_production_strict_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
