/* Deterministic (canonical) protobuf encoder for any protobuf-c message.
 *
 * The canonical form, which signatures are computed over (cap-spec 2a):
 *  - fields in ascending field-number order, including oneof members and
 *    BusPacket.signature (14) and auth_token (18);
 *  - proto3 scalars equal to their default omitted (a float or double is
 *    omitted only when its bits are all zero, so -0.0 is kept, as in Go);
 *  - repeated scalars packed (proto3 default);
 *  - map entries sorted by key (bytewise for strings, numerically for
 *    integers, false before true) and always written with both key and
 *    value, as the Go, C++ and Python runtimes do;
 *  - unknown fields kept by the decoder are appended last, in received order.
 * The input message is never modified. */
#ifndef CAP_ENCODE_H
#define CAP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Exact number of bytes cap_encode_into will write. */
size_t cap_encoded_size(const ProtobufCMessage *m);

/* Writes the canonical encoding into buf, which must hold at least
 * cap_encoded_size(m) bytes. Returns the number of bytes written. */
size_t cap_encode_into(const ProtobufCMessage *m, uint8_t *buf);

/* Allocates and returns the canonical encoding in *out (caller frees with
 * free()); *len receives its size. Returns CAP_OK or CAP_ENOMEM. */
int cap_encode(const ProtobufCMessage *m, uint8_t **out, size_t *len);

/* The same into a buffer the caller keeps between calls: *buf (NULL or
 * malloc'd) holds *cap bytes and is grown with realloc, to exactly the
 * encoding's size, when the encoding does not fit (then *buf and *cap are
 * updated); *len receives the size. The encoding is at the start of *buf;
 * the buffer's other bytes may have been written to as well. CAP_OK, or
 * CAP_ENOMEM with *buf and *cap untouched. */
int cap_encode_to(const ProtobufCMessage *m, uint8_t **buf, size_t *cap, size_t *len);

/* cap_encode_to without the final move: the encoding is left where it is
 * written, ending at the end of the buffer (*buf + *cap), and *out receives
 * where it starts. */
int cap_encode_back(const ProtobufCMessage *m, uint8_t **buf, size_t *cap, const uint8_t **out,
                    size_t *len);

#endif
