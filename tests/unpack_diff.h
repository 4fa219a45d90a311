/* Differential check of the decoder's one-pass unpack (cap_packet_unpack)
 * against protobuf-c's own unpack, and of the decoder's verdicts against
 * the pipeline it replaced (scan, protobuf_c_message_unpack, envelope
 * rules). Shared by tests/test_unpack.c and fuzz/fuzz_decode.c; needs no
 * test framework. Every function writes the first difference it finds to
 * why[0..n) and returns nonzero on a difference. */
#ifndef CAP_UNPACK_DIFF_H
#define CAP_UNPACK_DIFF_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_decode.h"
#include "cap_schema.h"

static int ud_fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ud_fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return 1;
}

/* Field by field: oneof cases, has_ flags, counts, every element (strings
 * by value and NUL-terminated, bytes by length and content, empty bytes
 * without a block, submessages recursively, scalars by their bits), and no
 * unknown fields on either side. */
static int ud_compare(const ProtobufCMessage *a, const ProtobufCMessage *b, char *why, size_t n)
{
    const ProtobufCMessageDescriptor *d = a->descriptor;
    if (b->descriptor != d)
        return ud_fail(why, n, "descriptors differ");
    if (a->n_unknown_fields || b->n_unknown_fields)
        return ud_fail(why, n, "%s: unknown fields %u vs %u", d->name, a->n_unknown_fields,
                       b->n_unknown_fields);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *ma = (const char *)a + f->offset, *mb = (const char *)b + f->offset;
        size_t count = 1;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t ca = *(const uint32_t *)((const char *)a + f->quantifier_offset);
            uint32_t cb = *(const uint32_t *)((const char *)b + f->quantifier_offset);
            if (ca != cb)
                return ud_fail(why, n, "%s.%s: oneof case %u vs %u", d->name, f->name, ca, cb);
            if (ca != f->id)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset) {
            protobuf_c_boolean ha = *(const protobuf_c_boolean *)((const char *)a + f->quantifier_offset);
            protobuf_c_boolean hb = *(const protobuf_c_boolean *)((const char *)b + f->quantifier_offset);
            if (ha != hb)
                return ud_fail(why, n, "%s.has_%s differs", d->name, f->name);
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t na = *(const size_t *)((const char *)a + f->quantifier_offset);
            size_t nb = *(const size_t *)((const char *)b + f->quantifier_offset);
            if (na != nb)
                return ud_fail(why, n, "%s.n_%s: %zu vs %zu", d->name, f->name, na, nb);
            ma = *(const char *const *)ma;
            mb = *(const char *const *)mb;
            if ((ma == NULL) != (mb == NULL) || (na == 0) != (ma == NULL))
                return ud_fail(why, n, "%s.%s: array present on one side only", d->name, f->name);
            count = na;
        }
        size_t size = cap_field_elem_size(f->type);
        for (size_t k = 0; k < count; k++, ma += size, mb += size) {
            switch (f->type) {
            case PROTOBUF_C_TYPE_STRING: {
                const char *sa = *(const char *const *)ma, *sb = *(const char *const *)mb;
                if (!sa || !sb || strcmp(sa, sb) != 0)
                    return ud_fail(why, n, "%s.%s[%zu]: strings differ", d->name, f->name, k);
                break;
            }
            case PROTOBUF_C_TYPE_BYTES: {
                const ProtobufCBinaryData *ba = (const void *)ma, *bb = (const void *)mb;
                if (ba->len != bb->len || (ba->data == NULL) != (bb->data == NULL) ||
                    (ba->len && memcmp(ba->data, bb->data, ba->len) != 0))
                    return ud_fail(why, n, "%s.%s[%zu]: bytes differ", d->name, f->name, k);
                break;
            }
            case PROTOBUF_C_TYPE_MESSAGE: {
                const ProtobufCMessage *sa = *(ProtobufCMessage *const *)ma;
                const ProtobufCMessage *sb = *(ProtobufCMessage *const *)mb;
                if ((sa == NULL) != (sb == NULL))
                    return ud_fail(why, n, "%s.%s[%zu]: message on one side only", d->name,
                                   f->name, k);
                if (sa && ud_compare(sa, sb, why, n))
                    return 1;
                break;
            }
            default:
                if (memcmp(ma, mb, size) != 0)
                    return ud_fail(why, n, "%s.%s[%zu]: values differ", d->name, f->name, k);
            }
        }
    }
    return 0;
}

/* Outcomes of ud_check_unpack. */
enum { UD_REFUSED = 0, UD_EQUAL = 1, UD_FALLBACK = 2, UD_DIFFERENT = -1 };

/* For bytes the lenient scan accepts: both unpacks, compared structurally
 * and by protobuf_c_message_pack's bytes, and the packet cap_packet_decode
 * builds (when it accepts it) structurally; bytes the one-pass unpack
 * declines must be ones protobuf-c keeps unknown fields of. */
static int ud_check_unpack(const uint8_t *buf, size_t len, char *why, size_t n)
{
    uint32_t payload;
    if (cap_wire_scan(buf, len, NULL, CAP_DECODE_LENIENT, &payload, NULL) != CAP_OK)
        return UD_REFUSED;
    ProtobufCMessage *ref = protobuf_c_message_unpack(CAP_PACKET_DESC, NULL, len, buf);
    if (!ref) {
        ud_fail(why, n, "protobuf-c refuses bytes the scan accepted");
        return UD_DIFFERENT;
    }
    cap_packet *p = NULL;
    int rc = cap_packet_unpack(buf, len, NULL, &p), out = UD_EQUAL;
    if (rc == CAP_EINVAL && !p) {
        if (!cap_message_has_unknown_fields(ref)) {
            ud_fail(why, n, "one-pass unpack declined bytes without unknown fields");
            out = UD_DIFFERENT;
        } else {
            out = UD_FALLBACK;
        }
    } else if (rc != CAP_OK || !p) {
        ud_fail(why, n, "one-pass unpack failed: %d", rc);
        out = UD_DIFFERENT;
    } else if (cap_message_has_unknown_fields(ref)) {
        ud_fail(why, n, "one-pass unpack built bytes with unknown fields");
        out = UD_DIFFERENT;
    } else if (ud_compare(ref, &p->base, why, n)) {
        out = UD_DIFFERENT;
    } else {
        size_t sa = protobuf_c_message_get_packed_size(ref);
        size_t sb = protobuf_c_message_get_packed_size(&p->base);
        uint8_t *ba = malloc(sa + 1), *bb = malloc(sb + 1);
        if (!ba || !bb)
            abort();
        if (sa != sb || protobuf_c_message_pack(ref, ba) != sa ||
            protobuf_c_message_pack(&p->base, bb) != sb || memcmp(ba, bb, sa) != 0) {
            ud_fail(why, n, "packed bytes differ (%zu vs %zu bytes)", sa, sb);
            out = UD_DIFFERENT;
        }
        free(ba);
        free(bb);
    }
    if (p)
        protobuf_c_message_free_unpacked(&p->base, NULL);
    /* The decoder's own build (the scan storing each value as it accepts
     * it) builds the same. */
    cap_packet *q = NULL;
    if (out == UD_EQUAL && cap_packet_decode(buf, len, NULL, CAP_DECODE_LENIENT, &q, NULL) == CAP_OK &&
        ud_compare(ref, &q->base, why, n))
        out = UD_DIFFERENT;
    if (q)
        cap_packet_free(q);
    protobuf_c_message_free_unpacked(ref, NULL);
    return out;
}

/* The decoder as it was before the one-pass unpack: scan, protobuf-c
 * unpack, unknown payload, envelope rules. */
static int ud_old_decode(const uint8_t *buf, size_t len, cap_decode_mode mode, cap_diag *diag)
{
    uint32_t payload = 0;
    int rc = cap_wire_scan(buf, len, NULL, mode, &payload, diag);
    if (rc)
        return rc;
    cap_packet *p = (cap_packet *)protobuf_c_message_unpack(CAP_PACKET_DESC, NULL, len, buf);
    if (!p)
        return cap_diag_set(diag, CAP_ENOMEM, -1, "BusPacket", "cannot unpack: out of memory");
    if (p->protocol_version == CAP_PROTOCOL_VERSION &&
        p->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD__NOT_SET && payload)
        rc = cap_diag_set(diag, CAP_EUNKNOWN_PAYLOAD, -1, "BusPacket.payload",
                          "unknown payload field %u", payload);
    else
        rc = cap_packet_validate(p, diag);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

/* cap_packet_decode's verdict and diagnostic in both modes equal the old
 * pipeline's. */
static int ud_check_verdicts(const uint8_t *buf, size_t len, char *why, size_t n)
{
    static const cap_decode_mode modes[] = {CAP_DECODE_LENIENT, CAP_DECODE_STRICT};
    for (size_t i = 0; i < 2; i++) {
        cap_diag da, db;
        char fa[600], fb[600];
        cap_packet *p = NULL;
        int ra = ud_old_decode(buf, len, modes[i], &da);
        int rb = cap_packet_decode(buf, len, NULL, modes[i], &p, &db);
        if (p)
            cap_packet_free(p);
        cap_diag_format(&da, fa, sizeof fa);
        cap_diag_format(&db, fb, sizeof fb);
        if (ra != rb || (ra && strcmp(fa, fb) != 0))
            return ud_fail(why, n, "mode %d: verdict %d \"%s\" became %d \"%s\"", (int)modes[i],
                           ra, fa, rb, fb);
    }
    return 0;
}

#endif
