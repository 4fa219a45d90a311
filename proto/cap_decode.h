/* Strict CAP packet decoder: bytes -> BusPacket, or a CAP error code with a
 * one-line reason naming the field path and byte offset.
 *
 * protobuf-c alone accepts non-minimal varints, repeated singular fields,
 * two members of one oneof and unbounded sizes; this decoder scans the wire
 * bytes against the schema and rejects them, building protobuf-c's
 * structures itself as the scan goes (into an arena or onto the C heap; for
 * any other allocator, in a second walk of the bytes, as cap_packet_unpack
 * does; protobuf-c unpacks the packets with unknown fields), then checks
 * the envelope rules of cap-spec 02. */
#ifndef CAP_DECODE_H
#define CAP_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"
#include "cap_schema.h"

/* The deepest nesting any bound may allow. */
#define CAP_MAX_DEPTH_LIMIT 64

/* Size bounds applied before anything is allocated. One struct, so that
 * the CLI (--max-packet, --max-string, --max-entries, ...) can override it. */
typedef struct {
    size_t max_packet;       /* whole packet, bytes (default 1 MiB) */
    size_t max_trust_packet; /* worker-trust packets 19-22 (default 64 KiB, cap-spec 02) */
    size_t max_string;       /* one string or bytes field (default 64 KiB) */
    size_t max_entries;      /* entries of one map or repeated field (default 1000) */
    unsigned max_depth;      /* message nesting (default 16, at most CAP_MAX_DEPTH_LIMIT) */
} cap_bounds;

/* The documented defaults above. */
cap_bounds cap_bounds_default(void);

typedef enum {
    /* Ordinary consumer (cap-spec 17): unknown non-payload fields ignored. */
    CAP_DECODE_LENIENT = 0,
    /* Trust and production packets (cap-spec 02, 19): unknown fields at any
     * depth rejected. Trust payloads (19-22) are always decoded strictly. */
    CAP_DECODE_STRICT = 1,
} cap_decode_mode;

/* Checks the wire bytes only (no allocation): tags and varints minimal,
 * wire types match the schema, no group, no field repeated unless the
 * schema says repeated, at most one member per oneof, bounds, UTF-8 in
 * strings, map keys unique, bool 0/1, enum and int32 values in range,
 * timestamps within 0001-01-01..9999-12-31.
 * Fills *payload_field with the payload field number found (0 for none,
 * or the number of an unknown length-delimited top-level field >= 10 when
 * no known payload is present). */
int cap_wire_scan(const uint8_t *buf, size_t len, const cap_bounds *bounds,
                  cap_decode_mode mode, uint32_t *payload_field, cap_diag *diag);

/* Decodes and validates one packet. On success *out owns a packet to free
 * with cap_packet_free(). Errors (and their CAP codes):
 *   101 truncated, over max_packet, non-minimal, duplicate oneof, repeated
 *       singular field, wrong wire type, group, bounds, bad UTF-8, no
 *       payload, missing trace_id/sender_id/created_at, bad timestamp;
 *   100 protocol_version other than 1;
 *   102 no known payload but an unknown payload-range field;
 *   101 unknown field anywhere in strict mode. */
int cap_packet_decode(const uint8_t *buf, size_t len, const cap_bounds *bounds,
                      cap_decode_mode mode, cap_packet **out, cap_diag *diag);

/* The same, unpacking with `alloc` (NULL: the C heap, as above), e.g. an
 * arena's allocator (cap_arena.h): *out is then released by whatever
 * releases alloc's memory, and cap_packet_free must not be called on it.
 * On an error, whatever was unpacked has been handed back to alloc's free. */
int cap_packet_decode_in(const uint8_t *buf, size_t len, const cap_bounds *bounds,
                         cap_decode_mode mode, ProtobufCAllocator *alloc, cap_packet **out,
                         cap_diag *diag);

/* Builds from bytes that cap_wire_scan accepted the structure
 * protobuf_c_message_unpack(CAP_PACKET_DESC, alloc, len, buf) builds (same
 * values, defaults, oneof cases, array counts, map entries in wire order,
 * every block from alloc as protobuf-c allocates it), in one table-driven
 * walk: free it with protobuf_c_message_free_unpacked and the same alloc
 * (NULL: the C heap; cap_packet_free then works too). No envelope rule is
 * checked. Returns CAP_ENOMEM, or CAP_EINVAL when the bytes hold a field
 * the schema does not know (protobuf-c keeps those in unknown_fields: use
 * protobuf_c_message_unpack for them) or when it notices bytes the scan
 * would refuse; on bytes the scan was not given, it never reads outside
 * buf but its result is otherwise unspecified. */
int cap_packet_unpack(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                      cap_packet **out);

/* Envelope rules on an already unpacked packet (used after JSON parsing as
 * well): version 1, trace_id, sender_id, created_at, one payload. Map keys
 * and timestamp ranges are checked on the wire by cap_wire_scan. */
int cap_packet_validate(const cap_packet *p, cap_diag *diag);

#endif
