#include "cap_schema.h"

#include <string.h>

void cap_message_free(ProtobufCMessage *m)
{
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

void cap_packet_free(cap_packet *p)
{
    cap_message_free(p ? &p->base : NULL);
}

int cap_desc_is_map_entry(const ProtobufCMessageDescriptor *desc)
{
    /* protoc-c gives no map flag; a map entry is the nested "...Entry"
     * message with exactly key = 1 and value = 2. The cheap tests go first:
     * the decoder asks this for every entry it scans. */
    const ProtobufCFieldDescriptor *f = desc->fields;
    if (desc->n_fields != 2 || f[0].id != 1 || f[1].id != 2 || f[0].name[0] != 'k' ||
        f[1].name[0] != 'v')
        return 0;
    size_t n = strlen(desc->short_name);
    return n > 5 && memcmp(desc->short_name + n - 5, "Entry", 5) == 0 &&
           strcmp(f[0].name, "key") == 0 && strcmp(f[1].name, "value") == 0;
}

int cap_desc_is_timestamp(const ProtobufCMessageDescriptor *desc)
{
    return desc == &google__protobuf__timestamp__descriptor;
}

const char *cap_packet_payload_name(const cap_packet *p)
{
    if (!p || p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD__NOT_SET)
        return NULL;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(CAP_PACKET_DESC, (unsigned)p->payload_case);
    return f ? f->name : NULL;
}

int cap_map_key_cmp(const ProtobufCFieldDescriptor *kf, const void *a, const void *b)
{
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *x = *(char *const *)a, *y = *(char *const *)b;
        return strcmp(x ? x : "", y ? y : "");
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
        return (x > y) - (x < y);
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return (x > y) - (x < y);
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return (x > y) - (x < y);
    }
    case PROTOBUF_C_TYPE_BOOL: {
        int x = *(const protobuf_c_boolean *)a != 0, y = *(const protobuf_c_boolean *)b != 0;
        return x - y;
    }
    default: return 0;
    }
}


int cap_message_has_unknown_fields(const ProtobufCMessage *m)
{
    if (m->n_unknown_fields)
        return 1;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *member = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)member;
            for (size_t k = 0; k < n; k++)
                if (cap_message_has_unknown_fields(v[k]))
                    return 1;
        } else {
            const ProtobufCMessage *sub = *(ProtobufCMessage *const *)member;
            if (sub && cap_message_has_unknown_fields(sub))
                return 1;
        }
    }
    return 0;
}

/* Size in bytes of one element of a field's C representation. */
size_t cap_field_elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

