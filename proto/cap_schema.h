/* The CAP schema as protobuf-c generates it (build/gen), plus short names
 * for the types the rest of the project passes around. */
#ifndef CAP_SCHEMA_H
#define CAP_SCHEMA_H

#include "cordum/agent/v1/alert.pb-c.h"
#include "cordum/agent/v1/buspacket.pb-c.h"
#include "cordum/agent/v1/handshake.pb-c.h"
#include "cordum/agent/v1/heartbeat.pb-c.h"
#include "cordum/agent/v1/job.pb-c.h"
#include "cordum/agent/v1/safety.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

typedef Cordum__Agent__V1__BusPacket cap_packet;
#define CAP_PACKET_DESC (&cordum__agent__v1__bus_packet__descriptor)

/* The only wire version this implementation speaks. */
#define CAP_PROTOCOL_VERSION 1

/* BusPacket field numbers the wire layer treats specially. */
enum {
    CAP_FIELD_TRACE_ID = 1,
    CAP_FIELD_SENDER_ID = 2,
    CAP_FIELD_CREATED_AT = 3,
    CAP_FIELD_PROTOCOL_VERSION = 4,
    CAP_FIELD_SIGNATURE_METADATA = 5,
    CAP_FIELD_SIGNATURE = 14,
    CAP_FIELD_AUTH_TOKEN = 18,
};

/* Frees a packet (or any message) returned by this layer; NULL is fine. */
void cap_message_free(ProtobufCMessage *m);
void cap_packet_free(cap_packet *p);

/* True when desc is the synthetic entry message of a proto3 map field. */
int cap_desc_is_map_entry(const ProtobufCMessageDescriptor *desc);

/* True when desc is google.protobuf.Timestamp. */
int cap_desc_is_timestamp(const ProtobufCMessageDescriptor *desc);

/* The name of the set payload field ("job_request"), or NULL if none. */
const char *cap_packet_payload_name(const cap_packet *p);

/* True when m or any message inside it kept unknown fields (which have no
 * JSON form). */
int cap_message_has_unknown_fields(const ProtobufCMessage *m);

/* The wire type a field of type t is written with (packing aside). Inline:
 * the decoder and encoder ask it for every field. */
static inline ProtobufCWireType cap_wire_type_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return PROTOBUF_C_WIRE_TYPE_32BIT;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return PROTOBUF_C_WIRE_TYPE_64BIT;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE: return PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    default: return PROTOBUF_C_WIRE_TYPE_VARINT;
    }
}

/* Bytes one element of a field of type t takes in a protobuf-c struct
 * (the stride of a repeated field's array). */
size_t cap_field_elem_size(ProtobufCType t);

/* Orders two map keys of key field kf, given pointers to the key members:
 * strings bytewise, integers numerically, false before true. */
int cap_map_key_cmp(const ProtobufCFieldDescriptor *kf, const void *a, const void *b);

#endif
