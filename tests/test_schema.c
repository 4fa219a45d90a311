/* Schema helpers: map-key order for every key type, unknown-field search,
 * wire types, payload names, and the error strings. */
#include "testutil.h"

#include "cap_decode.h"
#include "cap_error.h"
#include "cap_schema.h"
#include "cap_time.h"

static void test_map_key_order_by_type(void **state)
{
    (void)state;
    ProtobufCFieldDescriptor kf = {0};
    int32_t a32 = -5, b32 = 3;
    kf.type = PROTOBUF_C_TYPE_INT32;
    assert_true(cap_map_key_cmp(&kf, &a32, &b32) < 0);
    kf.type = PROTOBUF_C_TYPE_SINT32;
    assert_true(cap_map_key_cmp(&kf, &b32, &a32) > 0);
    int64_t a64 = -1, b64 = -1;
    kf.type = PROTOBUF_C_TYPE_INT64;
    assert_int_equal(cap_map_key_cmp(&kf, &a64, &b64), 0);
    uint32_t u1 = 0xffffffffu, u2 = 1;
    kf.type = PROTOBUF_C_TYPE_UINT32; /* unsigned: the big value sorts last */
    assert_true(cap_map_key_cmp(&kf, &u1, &u2) > 0);
    uint64_t w1 = 1, w2 = UINT64_MAX;
    kf.type = PROTOBUF_C_TYPE_FIXED64;
    assert_true(cap_map_key_cmp(&kf, &w1, &w2) < 0);
    protobuf_c_boolean f = 0, t = 1;
    kf.type = PROTOBUF_C_TYPE_BOOL;
    assert_true(cap_map_key_cmp(&kf, &f, &t) < 0);
    const char *s1 = "b", *s2 = "ab", *sn = NULL;
    kf.type = PROTOBUF_C_TYPE_STRING;
    assert_true(cap_map_key_cmp(&kf, &s1, &s2) > 0);
    assert_true(cap_map_key_cmp(&kf, &sn, &s2) < 0); /* NULL is "" */
}

static void test_wire_types(void **state)
{
    (void)state;
    assert_int_equal(cap_wire_type_of(PROTOBUF_C_TYPE_FLOAT), PROTOBUF_C_WIRE_TYPE_32BIT);
    assert_int_equal(cap_wire_type_of(PROTOBUF_C_TYPE_SFIXED64), PROTOBUF_C_WIRE_TYPE_64BIT);
    assert_int_equal(cap_wire_type_of(PROTOBUF_C_TYPE_BYTES), PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
    assert_int_equal(cap_wire_type_of(PROTOBUF_C_TYPE_ENUM), PROTOBUF_C_WIRE_TYPE_VARINT);
}

static void test_unknown_fields_found_at_any_depth(void **state)
{
    (void)state;
    size_t len;
    uint8_t *in = tu_read_file("conformance/fixtures/buspacket_job_request.bin", &len);
    cap_packet *p;
    cap_diag d;
    assert_int_equal(cap_packet_decode(in, len, NULL, CAP_DECODE_LENIENT, &p, &d), CAP_OK);
    assert_false(cap_message_has_unknown_fields(&p->base));
    assert_string_equal(cap_packet_payload_name(p), "job_request");
    /* a nested unknown field, deep in the compensation's metadata */
    ProtobufCMessageUnknownField u = {.tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT,
                                      .len = 1, .data = (uint8_t *)"\x01"};
    ProtobufCMessage *meta = &p->job_request->compensation->meta->base;
    meta->n_unknown_fields = 1;
    meta->unknown_fields = &u;
    assert_true(cap_message_has_unknown_fields(&p->base));
    meta->n_unknown_fields = 0;
    meta->unknown_fields = NULL;
    /* in a repeated message field */
    Cordum__Agent__V1__JobRequest__EnvEntry *e = p->job_request->env[0];
    e->base.n_unknown_fields = 1;
    e->base.unknown_fields = &u;
    assert_true(cap_message_has_unknown_fields(&p->base));
    e->base.n_unknown_fields = 0;
    e->base.unknown_fields = NULL;
    cap_packet_free(p);
    free(in);
    cap_packet empty = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    assert_null(cap_packet_payload_name(&empty));
    assert_null(cap_packet_payload_name(NULL));
}

static void test_error_strings(void **state)
{
    (void)state;
    const int codes[] = {CAP_OK, CAP_EVERSION, CAP_EMALFORMED, CAP_EUNKNOWN_PAYLOAD,
                         CAP_ESIG_INVALID, CAP_ESIG_MISSING, CAP_ENOMEM, CAP_EIO, CAP_EJSON,
                         CAP_EKEY, CAP_EINVAL, CAP_ECRYPTO, CAP_EEXPIRED, CAP_ETRUST};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = cap_strerror(codes[i]);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
    }
    assert_string_equal(cap_strerror(-42), "unknown error");
    assert_string_equal(cap_err_protocol_name(CAP_ESIG_MISSING), "ERROR_CODE_PROTOCOL_SIGNATURE_MISSING");
    cap_diag d;
    char line[64];
    cap_diag_clear(&d);
    assert_int_equal(d.err, CAP_OK);
    assert_int_equal(cap_diag_set(NULL, CAP_EIO, 0, "x", "y"), CAP_EIO);
    cap_diag_set(&d, CAP_EJSON, -1, "$.traceId", "expected a string");
    assert_string_equal(cap_diag_format(&d, line, sizeof line), "invalid JSON: $.traceId: expected a string");
    /* a short buffer is cut, never overrun */
    cap_diag_set(&d, CAP_EMALFORMED, 123456, "BusPacket.job_request.compensation.meta.labels",
                 "a long reason that cannot fit");
    assert_true(strlen(cap_diag_format(&d, line, 20)) == 19);
}

static void test_time_helpers(void **state)
{
    (void)state;
    assert_int_equal(cap_sat_add(INT64_MAX - 1, 5), INT64_MAX);
    assert_int_equal(cap_sat_add(INT64_MIN + 1, -5), INT64_MIN);
    assert_int_equal(cap_sat_add(-3, 5), 2);
    Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    cap_timestamp_from_nanos(-1, &t);  /* floor: one nanosecond before the epoch */
    assert_int_equal(t.seconds, -1);
    assert_int_equal(t.nanos, 999999999);
    assert_int_equal(cap_timestamp_nanos(&t), -1);
    cap_timestamp_from_nanos(1500000000, &t);
    assert_int_equal(t.seconds, 1);
    assert_int_equal(t.nanos, 500000000);
    t.seconds = INT64_MAX / 2;
    assert_int_equal(cap_timestamp_nanos(&t), INT64_MAX);
    t.seconds = -(INT64_MAX / 2);
    assert_int_equal(cap_timestamp_nanos(&t), INT64_MIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_key_order_by_type),
        cmocka_unit_test(test_wire_types),
        cmocka_unit_test(test_unknown_fields_found_at_any_depth),
        cmocka_unit_test(test_error_strings),
        cmocka_unit_test(test_time_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
