/* Fuzz target: JSON text -> BusPacket. Whatever the parser accepts must
 * encode, and if the strict decoder accepts that encoding, rendering it as
 * JSON and parsing again must give the same canonical bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_json.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ProtobufCMessage *m = NULL;
    cap_diag d;
    int rc = cap_json_to_message(CAP_PACKET_DESC, (const char *)data, size, 1u << 20, &m, &d);
    CHECK((rc == CAP_OK) == (m != NULL));
    CHECK(rc == CAP_OK || rc == CAP_EJSON || rc == CAP_ENOMEM);
    if (!m)
        return 0;
    uint8_t *enc = NULL;
    size_t n = 0;
    CHECK(cap_encode(m, &enc, &n) == CAP_OK);
    cap_message_free(m);
    cap_packet *p = NULL;
    if (cap_packet_decode(enc, n, NULL, CAP_DECODE_LENIENT, &p, &d) == CAP_OK) {
        char *json = NULL;
        CHECK(cap_json_from_message(&p->base, 1, &json) == CAP_OK);
        ProtobufCMessage *m2 = NULL;
        CHECK(cap_json_to_message(CAP_PACKET_DESC, json, strlen(json), 0, &m2, &d) == CAP_OK);
        uint8_t *enc2 = NULL;
        size_t n2 = 0;
        CHECK(cap_encode(m2, &enc2, &n2) == CAP_OK);
        CHECK(n == n2 && memcmp(enc, enc2, n) == 0);
        free(enc2);
        cap_message_free(m2);
        free(json);
        cap_packet_free(p);
    }
    free(enc);
    return 0;
}
