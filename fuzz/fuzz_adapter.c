/* Fuzz target: bytes -> one adapter-v1 line (conf_msg_decode), what the TCK
 * runner reads from an adapter process it does not trust, and what the
 * reference adapter reads from a runner. Properties:
 *   - a refused line has a one-line reason and leaves the message zeroed;
 *   - an accepted line encodes to a line that decodes to the same message
 *     and encodes again to the same bytes (so what the runner logs and
 *     reports of a message is what it read).
 * A broken property traps, which both libFuzzer and AFL++ report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "conf_msg.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

static int is_zero(const conf_msg *m)
{
    static const conf_msg zero;
    return memcmp(m, &zero, sizeof zero) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > CONF_MSG_MAX_LINE)
        return 0;
    conf_msg m;
    char err[256] = "";
    int rc = conf_msg_decode((const char *)data, size, &m, err, sizeof err);
    if (rc != CAP_OK) {
        CHECK(rc == CAP_EJSON || rc == CAP_ENOMEM);
        CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
        CHECK(is_zero(&m));
        return 0;
    }
    char *line = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    rc = conf_msg_encode(&m, &line, &len);
    /* Re-encoding may only grow a line by escaping; past the bound it is
     * refused, never cut. */
    CHECK(rc == CAP_OK || rc == CAP_EINVAL);
    if (rc == CAP_OK) {
        CHECK(len > 0 && line[len - 1] == '\n' && memchr(line, '\n', len - 1) == NULL);
        conf_msg back;
        rc = conf_msg_decode(line, len, &back, err, sizeof err);
        if (rc != CAP_OK)
            fprintf(stderr, "encoded line does not decode: %s\n%.*s", err, (int)len, line);
        CHECK(rc == CAP_OK);
        CHECK(back.type == m.type);
        CHECK(conf_msg_encode(&back, &again, &len2) == CAP_OK);
        if (len != len2 || memcmp(line, again, len) != 0)
            fprintf(stderr, "encoded twice, two lines:\n%.*s%.*s", (int)len, line, (int)len2,
                    again);
        CHECK(len == len2 && memcmp(line, again, len) == 0);
        conf_msg_free(&back);
    }
    free(again);
    free(line);
    conf_msg_free(&m);
    CHECK(is_zero(&m));
    return 0;
}
