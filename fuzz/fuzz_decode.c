/* Fuzz target: bytes -> strict decoder (both modes), and for every packet
 * it accepts, the properties the wire layer promises:
 *   - the canonical encoding decodes again and re-encodes to itself;
 *   - its JSON form parses back to the same canonical bytes;
 *   - the CAP-PRODUCTION splitter never crashes on the same bytes;
 *   - the decoder's one-pass unpack builds what protobuf_c_message_unpack
 *     builds (same structure, same packed bytes), and the decoder's verdict
 *     and diagnostic are those of the scan + protobuf-c pipeline
 *     (tests/unpack_diff.h).
 * A broken property traps, which both libFuzzer and AFL++ report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_json.h"
#include "cap_sign.h"
#include "../tests/unpack_diff.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

static void check_canonical(const cap_packet *p, cap_decode_mode mode)
{
    uint8_t *enc = NULL, *enc2 = NULL;
    size_t n = 0, n2 = 0;
    CHECK(cap_encode(&p->base, &enc, &n) == CAP_OK);
    cap_packet *q = NULL;
    cap_diag d;
    /* Canonical bytes of an accepted packet are themselves accepted, unless
     * re-encoding grew them past the size bound (non-minimal input shrinks). */
    int rc = cap_packet_decode(enc, n, NULL, mode, &q, &d);
    CHECK(rc == CAP_OK);
    CHECK(cap_encode(&q->base, &enc2, &n2) == CAP_OK);
    CHECK(n == n2 && memcmp(enc, enc2, n) == 0);
    free(enc2);
    cap_packet_free(q);

    char *json = NULL;
    CHECK(cap_json_from_message(&p->base, 0, &json) == CAP_OK);
    ProtobufCMessage *m = NULL;
    CHECK(cap_json_to_message(CAP_PACKET_DESC, json, strlen(json), 0, &m, &d) == CAP_OK);
    CHECK(cap_encode(m, &enc2, &n2) == CAP_OK);
    /* Unknown fields have no JSON form: compare only when there are none.
     * Neither has a NaN's payload ("NaN" in JSON is one value, on the wire
     * there are many): bytes that differ must then at least give the same
     * JSON again. */
    if (!cap_message_has_unknown_fields(&p->base) && (n != n2 || memcmp(enc, enc2, n) != 0)) {
        char *json2 = NULL;
        CHECK(cap_json_from_message(m, 0, &json2) == CAP_OK);
        CHECK(strcmp(json, json2) == 0 && strstr(json, "NaN") != NULL);
        free(json2);
    }
    free(enc2);
    cap_message_free(m);
    free(json);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const cap_decode_mode modes[] = {CAP_DECODE_LENIENT, CAP_DECODE_STRICT};
    for (size_t i = 0; i < 2; i++) {
        cap_packet *p = NULL;
        cap_diag d;
        int rc = cap_packet_decode(data, size, NULL, modes[i], &p, &d);
        CHECK((rc == CAP_OK) == (p != NULL));
        CHECK(rc == CAP_OK || rc == CAP_EMALFORMED || rc == CAP_EVERSION ||
              rc == CAP_EUNKNOWN_PAYLOAD || rc == CAP_ENOMEM);
        if (p) {
            check_canonical(p, modes[i]);
            cap_packet_free(p);
        }
    }
    char why[512];
    if (ud_check_unpack(data, size, why, sizeof why) == UD_DIFFERENT ||
        ud_check_verdicts(data, size, why, sizeof why)) {
        fprintf(stderr, "one-pass unpack differs from protobuf-c: %s\n", why);
        __builtin_trap();
    }
    uint8_t *body = NULL;
    size_t body_len = 0, sig_len = 0;
    const uint8_t *sig = NULL;
    if (cap_production_split(data, size, &body, &body_len, &sig, &sig_len, NULL) == CAP_OK) {
        CHECK(body_len + sig_len < size);
        CHECK(sig >= data && sig + sig_len <= data + size);
    }
    free(body);
    return 0;
}
