/* The golden fixtures of conformance/fixtures/, re-derived from the spec
 * values (cap-tck 10) every time: valid signed BusPackets with their JSON
 * forms and the public key, plus one malformed packet per case of the
 * upstream core-malformed suite with the error the decoder must return. */
#ifndef CONF_FIXTURES_H
#define CONF_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"

typedef enum {
    CONF_FIXTURE_PACKET,    /* a valid signed BusPacket (.bin) */
    CONF_FIXTURE_JSON,      /* the JSON form of a valid packet (.json) */
    CONF_FIXTURE_KEY,       /* public_key.pem */
    CONF_FIXTURE_MALFORMED, /* a packet the strict decoder must reject (.bin) */
    CONF_FIXTURE_MANIFEST,  /* malformed/manifest.json: case -> file -> error */
} conf_fixture_kind;

typedef struct {
    char name[96];          /* path relative to the fixtures folder */
    conf_fixture_kind kind;
    uint8_t *bytes;         /* owned; freed by conf_fixtures_free */
    size_t len;
    int expect_err;         /* malformed: the cap_err the decoder returns */
    const char *tck_case;   /* malformed: the upstream case id */
} conf_fixture;

/* The private scalar of the fixture signing key (d = 1, cap-tck 10). */
extern const uint8_t conf_fixture_key_scalar[32];

/* Builds every fixture in a fixed order. *out is freed with
 * conf_fixtures_free. Returns CAP_OK or an error with diag set. */
int conf_fixtures_build(conf_fixture **out, size_t *n, cap_diag *diag);

void conf_fixtures_free(conf_fixture *f, size_t n);

#endif
