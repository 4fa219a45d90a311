/* The proto3 canonical JSON mapping for every CAP message, both directions.
 *
 * Output: lowerCamelCase keys in field-number order, fields equal to their
 * proto3 default omitted, enums by name (a value with no name as a number),
 * 64-bit integers as strings, bytes as standard base64 with padding,
 * float/double in the shortest form that reads back to the same value
 * ("NaN", "Infinity", "-Infinity" as strings), google.protobuf.Timestamp as
 * RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, maps as objects.
 *
 * Input accepts what the mapping allows: lowerCamelCase or the original
 * field name, enum names or numbers, 64-bit integers as strings or exact
 * numbers, standard or URL-safe base64 with or without padding, Timestamp
 * with any offset, null for "default". Unknown keys, duplicate keys, wrong
 * types and out-of-range numbers are errors naming the JSON path
 * ("$.jobRequest.env.region") and what was wrong. */
#ifndef CAP_JSON_H
#define CAP_JSON_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "cap_error.h"

/* Renders msg as JSON. pretty: 2-space indentation and a final newline;
 * otherwise one line without a newline. *out is NUL-terminated and owned by
 * the caller (free()). Returns CAP_OK or CAP_ENOMEM. */
int cap_json_from_message(const ProtobufCMessage *msg, int pretty, char **out);

/* Parses len bytes of JSON text (at most max_len bytes are accepted; 0 means
 * 16 MiB) into a new message of type desc. On success *out is owned by the
 * caller and freed with cap_message_free(). On failure returns CAP_EJSON
 * (or CAP_ENOMEM) with diag->path set to the JSON path. */
int cap_json_to_message(const ProtobufCMessageDescriptor *desc, const char *text,
                        size_t len, size_t max_len, ProtobufCMessage **out,
                        cap_diag *diag);

/* What cJSON would accept but strict JSON (RFC 8259), or a C string, cannot
 * hold: a NUL byte, an unescaped control character inside a string, the
 * escape \u0000 (cJSON would silently cut the string there), and, when
 * max_depth > 0, objects and arrays nested more than max_depth deep (so
 * that cJSON never recurses that far). Returns the offset of the first
 * such place with *what describing it, or CAP_JSON_TEXT_OK. One pass, no
 * allocation; the JSON syntax itself is left to the parser. */
#define CAP_JSON_TEXT_OK ((size_t)-1)
size_t cap_json_text_check(const char *text, size_t len, unsigned max_depth, const char **what);

#endif
