/* adapter-v1 messages (cap-tck 2.2): one JSON object per line between the
 * runner and an adapter process, in both directions.
 *
 * Decoding is strict: the line must be one JSON object (conf_json_parse:
 * valid UTF-8, no trailing data, no duplicate key), every key must be one
 * of the adapter-message-v1 properties (an unknown field is an error),
 * every value must have its schema type and enum, and the per-type
 * required fields must be there (handshake: protocolVersion, role; run:
 * id, scenario; result: id, status). A line is at most CONF_MSG_MAX_LINE
 * bytes including its newline. Keys are matched exactly (the Go runner
 * matches them case-insensitively).
 *
 * Ownership: a decoded conf_msg owns every string and array in it; free it
 * with conf_msg_free. Encoding returns a malloc'd line the caller frees. */
#ifndef CONF_MSG_H
#define CONF_MSG_H

#include <stddef.h>

#include "conf_json.h"

/* Longest line, newline included (the upstream MaxLineBytes). */
#define CONF_MSG_MAX_LINE ((size_t)1 << 20)
/* Most entries in params, evidence, profiles or features. */
#define CONF_MSG_MAX_ENTRIES 1000

typedef enum {
    CONF_MSG_HELLO = 1,
    CONF_MSG_HANDSHAKE,
    CONF_MSG_RUN,
    CONF_MSG_RESULT,
    CONF_MSG_BYE,
} conf_msg_type;

typedef enum {
    CONF_ST_PASS = 0,
    CONF_ST_FAIL,
    CONF_ST_ERROR,
    CONF_ST_UNSUPPORTED,
    CONF_ST_NA,
} conf_status;

typedef struct {
    conf_msg_type type;
    char *id;        /* NULL when absent */
    char *scenario;
    conf_kv *params; /* sorted by key */
    size_t n_params;
    int has_protocol_version;
    long long protocol_version;
    char *role;      /* "worker" or "control-plane" when present */
    char **profiles;
    size_t n_profiles;
    char **features;
    size_t n_features;
    char *sdk;
    char *transport;
    int has_status;
    conf_status status;
    char *detail;
    conf_kv *evidence; /* sorted by key */
    size_t n_evidence;
} conf_msg;

/* "hello", ... ; "PASS", "FAIL", "ERROR", "UNSUPPORTED", "N/A". */
const char *conf_msg_type_name(conf_msg_type t);
const char *conf_status_name(conf_status s);
/* Parses a status word; -1 when it is not one. */
int conf_status_parse(const char *s);

/* 1 when the line holds only blanks (space, tab, CR, LF): such lines are
 * skipped by both sides. */
int conf_msg_blank(const char *line, size_t len);

/* Decodes one line (without or with its trailing newline). CAP_OK and *out
 * filled, or CAP_EJSON / CAP_ENOMEM with a one-line reason in err
 * ("unknown field \"foo\"", "status: \"MAYBE\" is not a status"). *out is
 * zeroed on error. */
int conf_msg_decode(const char *line, size_t len, conf_msg *out, char *err, size_t n);

/* Frees what a conf_msg owns and zeroes it. */
void conf_msg_free(conf_msg *m);

/* Encodes m as one line ending in "\n", keys in the order of the struct
 * (absent and empty fields omitted, like Go's omitempty). CAP_OK with *out
 * (free()) and *len, CAP_EINVAL when the line would exceed
 * CONF_MSG_MAX_LINE, CAP_ENOMEM. */
int conf_msg_encode(const conf_msg *m, char **out, size_t *len);

#endif
