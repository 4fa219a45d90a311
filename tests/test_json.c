/* Unit tests for the proto3 JSON mapping (proto/cap_json.c) and the base64
 * codec it uses (proto/cap_base64.c). */
#include "testutil.h"

#include <float.h>
#include <math.h>

#include "cap_base64.h"
#include "cap_encode.h"
#include "cap_json.h"
#include "cap_schema.h"

typedef Cordum__Agent__V1__JobRequest JobRequest;
typedef Cordum__Agent__V1__JobRequest__EnvEntry JobEnvEntry;
typedef Cordum__Agent__V1__JobRequest__LabelsEntry JobLabelsEntry;
typedef Cordum__Agent__V1__Compensation Compensation;
typedef Cordum__Agent__V1__Compensation__EnvEntry CompEnvEntry;
typedef Cordum__Agent__V1__ContextHints ContextHints;
typedef Cordum__Agent__V1__Budget Budget;
typedef Cordum__Agent__V1__JobMetadata JobMetadata;
typedef Cordum__Agent__V1__JobMetadata__LabelsEntry MetaLabelsEntry;
typedef Cordum__Agent__V1__IdentityBinding IdentityBinding;
typedef Cordum__Agent__V1__DispatchIdentity DispatchIdentity;
typedef Cordum__Agent__V1__ResourceRef ResourceRef;
typedef Cordum__Agent__V1__SignatureMetadata SignatureMetadata;
typedef Cordum__Agent__V1__Heartbeat Heartbeat;
typedef Cordum__Agent__V1__Heartbeat__LabelsEntry HbLabelsEntry;
typedef Cordum__Agent__V1__Handshake Handshake;
typedef Cordum__Agent__V1__Handshake__CapabilitiesEntry CapEntry;
typedef Cordum__Agent__V1__JobCancel JobCancel;
typedef Cordum__Agent__V1__PolicyCheckRequest PolicyCheckRequest;
typedef Google__Protobuf__Timestamp Timestamp;

#define PACKET_DESC CAP_PACKET_DESC
#define TS_DESC (&google__protobuf__timestamp__descriptor)
#define POLICY_DESC (&cordum__agent__v1__policy_check_request__descriptor)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static char *to_json(const ProtobufCMessage *m, int pretty)
{
    char *out = NULL;
    int rc = cap_json_from_message(m, pretty, &out);
    if (rc != CAP_OK || out == NULL)
        fail_msg("cap_json_from_message returned %d", rc);
    return out;
}

static ProtobufCMessage *from_json(const ProtobufCMessageDescriptor *d, const char *text)
{
    ProtobufCMessage *m = NULL;
    cap_diag diag;
    int rc = cap_json_to_message(d, text, strlen(text), 0, &m, &diag);
    if (rc != CAP_OK) {
        char buf[600];
        fail_msg("parse failed: %s\n  input: %s", cap_diag_format(&diag, buf, sizeof buf), text);
    }
    assert_non_null(m);
    return m;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected to find\n  %s\nin\n  %s", needle, hay);
}

/* Parsing text must fail with CAP_EJSON, a path containing path_part and a
 * reason containing reason_part. */
static void expect_error_n(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                           const char *path_part, const char *reason_part)
{
    ProtobufCMessage *m = (ProtobufCMessage *)(uintptr_t)1;
    cap_diag diag;
    int rc = cap_json_to_message(d, text, len, 0, &m, &diag);
    if (rc != CAP_EJSON)
        fail_msg("expected CAP_EJSON, got %d for: %s", rc, text);
    assert_null(m);
    assert_int_equal(diag.err, CAP_EJSON);
    if (!strstr(diag.path, path_part))
        fail_msg("path \"%s\" lacks \"%s\" (reason: %s) for: %s", diag.path, path_part,
                 diag.reason, text);
    if (!strstr(diag.reason, reason_part))
        fail_msg("reason \"%s\" lacks \"%s\" (path %s) for: %s", diag.reason, reason_part,
                 diag.path, text);
}

static void expect_error(const ProtobufCMessageDescriptor *d, const char *text,
                         const char *path_part, const char *reason_part)
{
    expect_error_n(d, text, strlen(text), path_part, reason_part);
}

/* Two messages are the same when their canonical encodings are. */
static void assert_same_encoding(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    uint8_t *ea = NULL, *eb = NULL;
    size_t la = 0, lb = 0;
    assert_int_equal(cap_encode(a, &ea, &la), CAP_OK);
    assert_int_equal(cap_encode(b, &eb, &lb), CAP_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(ea, eb, la);
    free(ea);
    free(eb);
}

/* text -> message -> text must give text back unchanged (text canonical). */
static void assert_json_fixpoint(const ProtobufCMessageDescriptor *d, const char *text)
{
    ProtobufCMessage *m = from_json(d, text);
    char *out = to_json(m, 0);
    assert_string_equal(out, text);
    free(out);
    cap_message_free(m);
}

static Timestamp make_ts(int64_t secs, int32_t nanos)
{
    Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = secs;
    ts.nanos = nanos;
    return ts;
}

/* ------------------------------------------------------------------ */
/* A fully populated JobRequest packet, built by hand                  */
/* ------------------------------------------------------------------ */

typedef struct {
    cap_packet pkt;
    Timestamp created, sig_expires, ref_expires, comp_ref_expires;
    SignatureMetadata sigmeta;
    IdentityBinding pkt_identity, req_identity;
    JobRequest req;
    JobEnvEntry env[3];
    JobEnvEntry *env_ptrs[3];
    JobLabelsEntry label;
    JobLabelsEntry *label_ptrs[1];
    ContextHints hints;
    char *tags[2];
    Budget budget;
    JobMetadata meta;
    MetaLabelsEntry meta_label;
    MetaLabelsEntry *meta_label_ptrs[1];
    char *risk_tags[1];
    char *requires_[1];
    Compensation comp;
    CompEnvEntry comp_env;
    CompEnvEntry *comp_env_ptrs[1];
    DispatchIdentity comp_dispatch, dispatch;
    ResourceRef comp_ref, ref;
    uint8_t message_id[16], sha256[32], signature[5];
} full_packet;

static void build_env(full_packet *f)
{
    static const char *keys[3] = {"region", "HOME", "a\"b"};
    static const char *vals[3] = {"eu-west", "/root", "q"};
    for (int i = 0; i < 3; i++) {
        JobEnvEntry e = CORDUM__AGENT__V1__JOB_REQUEST__ENV_ENTRY__INIT;
        e.key = (char *)keys[i];
        e.value = (char *)vals[i];
        f->env[i] = e;
        f->env_ptrs[i] = &f->env[i];
    }
    f->req.n_env = 3;
    f->req.env = f->env_ptrs;
    JobLabelsEntry l = CORDUM__AGENT__V1__JOB_REQUEST__LABELS_ENTRY__INIT;
    l.key = "team";
    l.value = "core";
    f->label = l;
    f->label_ptrs[0] = &f->label;
    f->req.n_labels = 1;
    f->req.labels = f->label_ptrs;
}

static void build_meta(full_packet *f)
{
    JobMetadata meta = CORDUM__AGENT__V1__JOB_METADATA__INIT;
    MetaLabelsEntry ml = CORDUM__AGENT__V1__JOB_METADATA__LABELS_ENTRY__INIT;
    ml.key = "k";
    ml.value = "v";
    f->meta_label = ml;
    f->meta_label_ptrs[0] = &f->meta_label;
    f->risk_tags[0] = "fs";
    f->requires_[0] = "net";
    meta.tenant_id = "tenant-a";
    meta.actor_id = "actor-1";
    meta.actor_type = CORDUM__AGENT__V1__ACTOR_TYPE__ACTOR_TYPE_SERVICE;
    meta.idempotency_key = "idem-1";
    meta.capability = "code.write";
    meta.n_risk_tags = 1;
    meta.risk_tags = f->risk_tags;
    meta.n_requires = 1;
    meta.requires = f->requires_;
    meta.pack_id = "pack-9";
    meta.n_labels = 1;
    meta.labels = f->meta_label_ptrs;
    f->meta = meta;
    f->req.meta = &f->meta;
}

static void build_compensation(full_packet *f)
{
    Compensation c = CORDUM__AGENT__V1__COMPENSATION__INIT;
    CompEnvEntry ce = CORDUM__AGENT__V1__COMPENSATION__ENV_ENTRY__INIT;
    DispatchIdentity cd = CORDUM__AGENT__V1__DISPATCH_IDENTITY__INIT;
    ResourceRef cr = CORDUM__AGENT__V1__RESOURCE_REF__INIT;
    ce.key = "MODE";
    ce.value = "undo";
    f->comp_env = ce;
    f->comp_env_ptrs[0] = &f->comp_env;
    cd.dispatch_id = "d0";
    cd.attempt = 1;
    f->comp_dispatch = cd;
    f->comp_ref_expires = make_ts(0, 1);
    cr.uri = "mem://undo";
    cr.expires_at = &f->comp_ref_expires;
    f->comp_ref = cr;
    c.topic = "job.undo";
    c.priority = CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_BATCH;
    c.n_env = 1;
    c.env = f->comp_env_ptrs;
    c.dispatch = &f->comp_dispatch;
    c.context_ref = &f->comp_ref;
    f->comp = c;
    f->req.compensation = &f->comp;
}

static void build_refs(full_packet *f)
{
    DispatchIdentity d = CORDUM__AGENT__V1__DISPATCH_IDENTITY__INIT;
    ResourceRef r = CORDUM__AGENT__V1__RESOURCE_REF__INIT;
    IdentityBinding id = CORDUM__AGENT__V1__IDENTITY_BINDING__INIT;
    d.dispatch_id = "d1";
    d.attempt = 2;
    d.assigned_worker_id = "w1";
    f->dispatch = d;
    f->req.dispatch = &f->dispatch;
    for (int i = 0; i < 32; i++)
        f->sha256[i] = (uint8_t)i;
    f->ref_expires = make_ts(1704164645, 123000000);
    r.resolver_id = "s3";
    r.uri = "s3://bucket/key";
    r.sha256.len = 32;
    r.sha256.data = f->sha256;
    r.media_type = "application/json";
    r.size_bytes = 123456789012ULL;
    r.expires_at = &f->ref_expires;
    r.purpose = "input";
    f->ref = r;
    f->req.context_ref = &f->ref;
    id.tenant_id = "tenant-a";
    id.principal_id = "p1";
    id.actor_id = "actor-1";
    id.delegation_id = "del-1";
    f->req_identity = id;
    f->req.identity = &f->req_identity;
}

static void build_request(full_packet *f)
{
    JobRequest r = CORDUM__AGENT__V1__JOB_REQUEST__INIT;
    ContextHints h = CORDUM__AGENT__V1__CONTEXT_HINTS__INIT;
    Budget b = CORDUM__AGENT__V1__BUDGET__INIT;
    f->req = r;
    f->req.job_id = "job-1";
    f->req.topic = "job.default";
    f->req.priority = CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_INTERACTIVE;
    f->req.context_ptr = "redis://ctx/1";
    f->req.adapter_id = "adapter-1";
    f->req.parent_job_id = "job-0";
    f->req.workflow_id = "wf-1";
    f->req.step_index = 3;
    f->req.memory_id = "mem-1";
    f->tags[0] = "x";
    f->tags[1] = "y";
    h.max_input_tokens = 4096;
    h.allow_summarization = 1;
    h.n_tags = 2;
    h.tags = f->tags;
    f->hints = h;
    f->req.context_hints = &f->hints;
    b.max_input_tokens = 1000;
    b.max_output_tokens = 2000;
    b.max_total_tokens = 3000;
    b.deadline_ms = -1;
    f->budget = b;
    f->req.budget = &f->budget;
    f->req.tenant_id = "tenant-a";
    f->req.principal_id = "p1";
    build_env(f);
    build_meta(f);
    build_compensation(f);
    build_refs(f);
}

static void build_full(full_packet *f)
{
    memset(f, 0, sizeof *f);
    cap_packet p = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    SignatureMetadata sm = CORDUM__AGENT__V1__SIGNATURE_METADATA__INIT;
    IdentityBinding id = CORDUM__AGENT__V1__IDENTITY_BINDING__INIT;
    f->pkt = p;
    f->created = make_ts(1704164645, 0);
    f->sig_expires = make_ts(1704164945, 500000000);
    for (int i = 0; i < 16; i++)
        f->message_id[i] = (uint8_t)i;
    sm.profile_version = "cap-production-v1";
    sm.algorithm = "ECDSA-P256-SHA256";
    sm.message_id.len = 16;
    sm.message_id.data = f->message_id;
    sm.audience = "workers";
    sm.expires_at = &f->sig_expires;
    sm.key_id = "key-1";
    f->sigmeta = sm;
    id.tenant_id = "tenant-a";
    id.principal_id = "p1";
    f->pkt_identity = id;
    build_request(f);
    memcpy(f->signature, "\xde\xad\xbe\xef\xff", 5);
    f->pkt.trace_id = "trace-1";
    f->pkt.sender_id = "gateway-1";
    f->pkt.created_at = &f->created;
    f->pkt.protocol_version = 1;
    f->pkt.signature_metadata = &f->sigmeta;
    f->pkt.identity = &f->pkt_identity;
    f->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    f->pkt.job_request = &f->req;
    f->pkt.signature.len = 5;
    f->pkt.signature.data = f->signature;
    f->pkt.auth_token = "session-token";
}

/* Position of needle in hay (which must contain it). */
static size_t pos_of(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; hay[i]; i++)
        if (strncmp(hay + i, needle, n) == 0)
            return i;
    fail_msg("missing %s in %s", needle, hay);
    return 0;
}

static void test_full_job_request_round_trip(void **state)
{
    (void)state;
    full_packet f;
    build_full(&f);
    char *json = to_json(&f.pkt.base, 0);

    assert_int_equal(pos_of(json, "{\"traceId\":\"trace-1\",\"senderId\":\"gateway-1\","), 0);
    assert_contains(json, "\"createdAt\":\"2024-01-02T03:04:05Z\"");
    assert_contains(json, "\"protocolVersion\":1,");
    assert_contains(json, "\"messageId\":\"AAECAwQFBgcICQoLDA0ODw==\"");
    assert_contains(json, "\"expiresAt\":\"2024-01-02T03:09:05.500Z\"");
    assert_contains(json, "\"jobRequest\":{\"jobId\":\"job-1\",\"topic\":\"job.default\","
                          "\"priority\":\"JOB_PRIORITY_INTERACTIVE\"");
    assert_contains(json, "\"env\":{\"HOME\":\"/root\",\"a\\\"b\":\"q\",\"region\":\"eu-west\"}");
    assert_contains(json, "\"stepIndex\":3");
    assert_contains(json, "\"contextHints\":{\"maxInputTokens\":4096,\"allowSummarization\":true,"
                          "\"tags\":[\"x\",\"y\"]}");
    assert_contains(json, "\"budget\":{\"maxInputTokens\":\"1000\",\"maxOutputTokens\":\"2000\","
                          "\"maxTotalTokens\":\"3000\",\"deadlineMs\":\"-1\"}");
    assert_contains(json, "\"actorType\":\"ACTOR_TYPE_SERVICE\"");
    assert_contains(json, "\"riskTags\":[\"fs\"],\"requires\":[\"net\"]");
    assert_contains(json, "\"compensation\":{\"topic\":\"job.undo\","
                          "\"priority\":\"JOB_PRIORITY_BATCH\",\"env\":{\"MODE\":\"undo\"},"
                          "\"dispatch\":{\"dispatchId\":\"d0\",\"attempt\":\"1\"},"
                          "\"contextRef\":{\"uri\":\"mem://undo\","
                          "\"expiresAt\":\"1970-01-01T00:00:00.000000001Z\"}}");
    assert_contains(json, "\"dispatch\":{\"dispatchId\":\"d1\",\"attempt\":\"2\","
                          "\"assignedWorkerId\":\"w1\"}");
    assert_contains(json, "\"sha256\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"");
    assert_contains(json, "\"sizeBytes\":\"123456789012\"");
    assert_contains(json, "\"expiresAt\":\"2024-01-02T03:04:05.123Z\"");
    /* signature (14) sits after the payload (10) and before authToken (18). */
    assert_true(pos_of(json, "\"jobRequest\"") < pos_of(json, "\"signature\":\"3q2+7/8=\""));
    assert_true(pos_of(json, "\"signature\"") < pos_of(json, "\"authToken\":\"session-token\"}"));
    assert_null(strchr(json, '\n'));

    ProtobufCMessage *back = from_json(PACKET_DESC, json);
    char *again = to_json(back, 0);
    assert_string_equal(again, json);
    assert_same_encoding(&f.pkt.base, back);

    /* The pretty form parses back to the same packet too. */
    char *pretty = to_json(&f.pkt.base, 1);
    ProtobufCMessage *back2 = from_json(PACKET_DESC, pretty);
    assert_same_encoding(&f.pkt.base, back2);

    free(json);
    free(again);
    free(pretty);
    cap_message_free(back);
    cap_message_free(back2);
}

static void test_pretty_layout(void **state)
{
    (void)state;
    full_packet f;
    build_full(&f);
    char *pretty = to_json(&f.pkt.base, 1);
    assert_int_equal(pos_of(pretty, "{\n  \"traceId\": \"trace-1\",\n  \"senderId\": "), 0);
    assert_contains(pretty, "\n  \"jobRequest\": {\n    \"jobId\": \"job-1\",\n");
    assert_contains(pretty, "\n      \"tags\": [\n        \"x\",\n        \"y\"\n      ]\n");
    assert_null(strchr(pretty, '\t'));
    size_t n = strlen(pretty);
    assert_true(n > 3);
    assert_string_equal(pretty + n - 3, "\n}\n");
    free(pretty);
}

/* ------------------------------------------------------------------ */
/* Exact output                                                        */
/* ------------------------------------------------------------------ */

static void build_heartbeat(cap_packet *p, Heartbeat *hb, HbLabelsEntry *le, HbLabelsEntry **lp,
                            char **caps)
{
    cap_packet pi = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    Heartbeat hi = CORDUM__AGENT__V1__HEARTBEAT__INIT;
    HbLabelsEntry li = CORDUM__AGENT__V1__HEARTBEAT__LABELS_ENTRY__INIT;
    *p = pi;
    *hb = hi;
    le[0] = li;
    le[1] = li;
    le[0].key = "zone";
    le[0].value = "a";
    le[1].key = "rack";
    le[1].value = "7";
    lp[0] = &le[0];
    lp[1] = &le[1];
    caps[0] = "gpu";
    caps[1] = "cpu";
    hb->worker_id = "w1";
    hb->cpu_load = 33.5f;
    hb->active_jobs = 3;
    hb->n_capabilities = 2;
    hb->capabilities = caps;
    hb->n_labels = 2;
    hb->labels = lp;
    hb->memory_load = 45.2f;
    p->trace_id = "t";
    p->sender_id = "s";
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
    p->heartbeat = hb;
}

static const char heartbeat_compact[] =
    "{\"traceId\":\"t\",\"senderId\":\"s\",\"heartbeat\":{\"workerId\":\"w1\",\"cpuLoad\":33.5,"
    "\"activeJobs\":3,\"capabilities\":[\"gpu\",\"cpu\"],\"labels\":{\"rack\":\"7\","
    "\"zone\":\"a\"},\"memoryLoad\":45.2}}";

static const char heartbeat_pretty[] = "{\n"
                                       "  \"traceId\": \"t\",\n"
                                       "  \"senderId\": \"s\",\n"
                                       "  \"heartbeat\": {\n"
                                       "    \"workerId\": \"w1\",\n"
                                       "    \"cpuLoad\": 33.5,\n"
                                       "    \"activeJobs\": 3,\n"
                                       "    \"capabilities\": [\n"
                                       "      \"gpu\",\n"
                                       "      \"cpu\"\n"
                                       "    ],\n"
                                       "    \"labels\": {\n"
                                       "      \"rack\": \"7\",\n"
                                       "      \"zone\": \"a\"\n"
                                       "    },\n"
                                       "    \"memoryLoad\": 45.2\n"
                                       "  }\n"
                                       "}\n";

static void test_heartbeat_exact_text(void **state)
{
    (void)state;
    cap_packet p;
    Heartbeat hb;
    HbLabelsEntry le[2], *lp[2];
    char *caps[2];
    build_heartbeat(&p, &hb, le, lp, caps);

    char *compact = to_json(&p.base, 0);
    assert_string_equal(compact, heartbeat_compact);
    char *pretty = to_json(&p.base, 1);
    assert_string_equal(pretty, heartbeat_pretty);

    /* Byte-deterministic: a second rendering is identical. */
    char *again = to_json(&p.base, 0);
    assert_string_equal(again, compact);

    cap_packet *back = (cap_packet *)from_json(PACKET_DESC, heartbeat_pretty);
    assert_int_equal(back->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT);
    assert_true(back->heartbeat->cpu_load == 33.5f);
    assert_true(back->heartbeat->memory_load == 45.2f);
    assert_string_equal(back->heartbeat->capabilities[1], "cpu");
    assert_same_encoding(&p.base, &back->base);
    free(compact);
    free(pretty);
    free(again);
    cap_packet_free(back);
}

static void test_empty_message_and_defaults(void **state)
{
    (void)state;
    cap_packet p = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    ProtobufCMessage *m;
    char *c = to_json(&p.base, 0);
    assert_string_equal(c, "{}");
    char *pr = to_json(&p.base, 1);
    assert_string_equal(pr, "{}\n");
    free(c);
    free(pr);

    /* Empty maps and lists are defaults too. */
    m = from_json(PACKET_DESC, "{\"handshake\":{\"capabilities\":{},\"readyTopics\":[],"
                               "\"supportedVersions\":[]}}");
    assert_int_equal(((cap_packet *)m)->handshake->n_capabilities, 0);
    c = to_json(m, 0);
    assert_string_equal(c, "{\"handshake\":{}}");
    free(c);
    cap_message_free(m);

    /* Explicit defaults in the input leave nothing set; output omits them. */
    m = from_json(PACKET_DESC,
                                    "{\"traceId\":\"\",\"protocolVersion\":0,\"signature\":\"\","
                                    "\"createdAt\":null,\"identity\":null}");
    cap_packet *pk = (cap_packet *)m;
    assert_null(pk->created_at);
    assert_int_equal(pk->signature.len, 0);
    assert_null(pk->signature.data);
    c = to_json(m, 0);
    assert_string_equal(c, "{}");
    free(c);
    cap_message_free(m);
}

static void test_string_escapes_and_bad_utf8(void **state)
{
    (void)state;
    cap_packet p = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    p.trace_id = "a\"b\\c\n\t\x01/\xc3\xa9\b\f\r\x1f\x7f";
    p.sender_id = "x\xffy";
    char *c = to_json(&p.base, 0);
    assert_string_equal(c, "{\"traceId\":\"a\\\"b\\\\c\\n\\t\\u0001/\xc3\xa9\\b\\f\\r\\u001f\x7f\","
                           "\"senderId\":\"x\\ufffdy\"}");
    cap_packet *back = (cap_packet *)from_json(PACKET_DESC, c);
    assert_string_equal(back->trace_id, p.trace_id);
    assert_string_equal(back->sender_id, "x\xef\xbf\xbdy");
    free(c);
    cap_packet_free(back);

    /* \u escapes, including a surrogate pair, decode to UTF-8. */
    back = (cap_packet *)from_json(PACKET_DESC, "{\"traceId\":\"\\u00e9\\ud83d\\ude00\"}");
    assert_string_equal(back->trace_id, "\xc3\xa9\xf0\x9f\x98\x80");
    cap_packet_free(back);
}

/* ------------------------------------------------------------------ */
/* Input forms                                                         */
/* ------------------------------------------------------------------ */

static void test_snake_case_and_enum_number(void **state)
{
    (void)state;
    cap_packet *p = (cap_packet *)from_json(
        PACKET_DESC, "{\"trace_id\":\"t1\",\"sender_id\":\"s1\",\"protocol_version\":\"1\","
                     "\"job_request\":{\"job_id\":\"j\",\"priority\":1,"
                     "\"context_hints\":{\"max_input_tokens\":10,\"allow_retrieval\":true},"
                     "\"dispatch\":{\"attempt\":7}}}");
    assert_string_equal(p->trace_id, "t1");
    assert_int_equal(p->protocol_version, 1);
    assert_int_equal(p->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST);
    assert_int_equal(p->job_request->priority,
                     CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_INTERACTIVE);
    assert_int_equal(p->job_request->context_hints->max_input_tokens, 10);
    assert_int_equal(p->job_request->dispatch->attempt, 7);
    char *c = to_json(&p->base, 0);
    assert_string_equal(c, "{\"traceId\":\"t1\",\"senderId\":\"s1\",\"protocolVersion\":1,"
                           "\"jobRequest\":{\"jobId\":\"j\",\"priority\":\"JOB_PRIORITY_INTERACTIVE\","
                           "\"contextHints\":{\"maxInputTokens\":10,\"allowRetrieval\":true},"
                           "\"dispatch\":{\"attempt\":\"7\"}}}");
    free(c);
    cap_packet_free(p);
}

static void test_enum_without_name(void **state)
{
    (void)state;
    cap_packet *p = (cap_packet *)from_json(PACKET_DESC, "{\"jobRequest\":{\"priority\":99}}");
    assert_int_equal(p->job_request->priority, 99);
    char *c = to_json(&p->base, 0);
    assert_string_equal(c, "{\"jobRequest\":{\"priority\":99}}");
    free(c);
    cap_packet_free(p);
    expect_error(PACKET_DESC, "{\"jobRequest\":{\"priority\":\"JOB_PRIORITY_NOPE\"}}",
                 "$.jobRequest.priority", "unknown value \"JOB_PRIORITY_NOPE\"");
    expect_error(PACKET_DESC, "{\"jobRequest\":{\"priority\":2147483648}}",
                 "$.jobRequest.priority", "int32 range");
    expect_error(PACKET_DESC, "{\"jobRequest\":{\"priority\":true}}", "$.jobRequest.priority",
                 "expected an enum name or number, got a boolean");
    expect_error(PACKET_DESC, "{\"jobRequest\":{\"priority\":1.5}}", "$.jobRequest.priority",
                 "not an integer");
}

static void test_handshake_bool_map(void **state)
{
    (void)state;
    Handshake hs = CORDUM__AGENT__V1__HANDSHAKE__INIT;
    CapEntry ce = CORDUM__AGENT__V1__HANDSHAKE__CAPABILITIES_ENTRY__INIT;
    CapEntry *cp[1] = {&ce};
    int32_t versions[2] = {1, 2};
    ce.key = "compensation";
    ce.value = 0;
    hs.component_id = "worker-1";
    hs.role = CORDUM__AGENT__V1__COMPONENT_ROLE__COMPONENT_ROLE_WORKER;
    hs.n_supported_versions = 2;
    hs.supported_versions = versions;
    hs.n_capabilities = 1;
    hs.capabilities = cp;
    cap_packet p = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    p.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HANDSHAKE;
    p.handshake = &hs;

    char *c = to_json(&p.base, 0);
    assert_string_equal(c, "{\"handshake\":{\"componentId\":\"worker-1\","
                           "\"role\":\"COMPONENT_ROLE_WORKER\",\"supportedVersions\":[1,2],"
                           "\"capabilities\":{\"compensation\":false}}}");
    cap_packet *back = (cap_packet *)from_json(PACKET_DESC, c);
    assert_int_equal(back->handshake->n_capabilities, 1);
    assert_string_equal(back->handshake->capabilities[0]->key, "compensation");
    assert_false(back->handshake->capabilities[0]->value);
    assert_same_encoding(&p.base, &back->base);
    char *again = to_json(&back->base, 0);
    assert_string_equal(again, c);
    free(c);
    free(again);
    cap_packet_free(back);
}

static void test_oneof_default_member(void **state)
{
    (void)state;
    JobCancel jc = CORDUM__AGENT__V1__JOB_CANCEL__INIT;
    cap_packet p = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    p.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL;
    p.job_cancel = &jc;
    char *c = to_json(&p.base, 0);
    assert_string_equal(c, "{\"jobCancel\":{}}");
    free(c);

    cap_packet *back = (cap_packet *)from_json(PACKET_DESC, "{\"jobCancel\":{}}");
    assert_int_equal(back->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL);
    assert_non_null(back->job_cancel);
    assert_same_encoding(&p.base, &back->base);
    cap_packet_free(back);

    /* null leaves the oneof unset, and does not count as a member. */
    back = (cap_packet *)from_json(PACKET_DESC, "{\"heartbeat\":null,\"jobCancel\":{}}");
    assert_int_equal(back->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL);
    cap_packet_free(back);
    back = (cap_packet *)from_json(PACKET_DESC, "{\"heartbeat\":null}");
    assert_int_equal(back->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD__NOT_SET);
    cap_packet_free(back);

    expect_error(PACKET_DESC, "{\"jobRequest\":{\"jobId\":\"j\"},\"heartbeat\":{}}",
                 "$.heartbeat", "oneof already set by \"jobRequest\"");
}

static void test_sub_message_present_but_empty(void **state)
{
    (void)state;
    /* A non-oneof sub-message that is set but empty is still written. */
    assert_json_fixpoint(PACKET_DESC, "{\"identity\":{}}");
    assert_json_fixpoint(PACKET_DESC, "{\"jobResult\":{\"artifactRefs\":[{},{\"uri\":\"u\"}]}}");
}

static void test_policy_request_json_fixpoint(void **state)
{
    (void)state;
    assert_json_fixpoint(
        POLICY_DESC,
        "{\"jobId\":\"j\",\"priority\":\"JOB_PRIORITY_CRITICAL\",\"estimatedCost\":0.1,"
        "\"labels\":{\"a\":\"1\",\"b\":\"2\"},\"effectiveConfig\":\"e30=\","
        "\"inputContent\":\"/+8=\",\"inputSizeBytes\":\"9223372036854775807\"}");
}

/* ------------------------------------------------------------------ */
/* Numbers                                                             */
/* ------------------------------------------------------------------ */

static float float_round_trip(float v)
{
    Heartbeat hb = CORDUM__AGENT__V1__HEARTBEAT__INIT;
    hb.cpu_load = v;
    char *c = to_json(&hb.base, 0);
    Heartbeat *back = (Heartbeat *)from_json(&cordum__agent__v1__heartbeat__descriptor, c);
    float r = back->cpu_load;
    free(c);
    cap_message_free(&back->base);
    return r;
}

static void test_float_round_trip(void **state)
{
    (void)state;
    const float values[] = {0.1f, 33.5f, 45.2f, 0.3f, 1.0f / 3.0f, 123456.789f, 16777216.0f,
                            1e-45f, 1.17549435e-38f, FLT_MAX, -FLT_MAX, 3.4e38f, 1e20f,
                            -0.0f, 7e-10f, 100.0f};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        float r = float_round_trip(values[i]);
        if (memcmp(&r, &values[i], sizeof r) != 0)
            fail_msg("float %.9g came back as %.9g", (double)values[i], (double)r);
    }
    assert_true(isnan(float_round_trip(NAN)));
    assert_true(float_round_trip(INFINITY) == INFINITY);
    assert_true(float_round_trip(-INFINITY) == -INFINITY);

    Heartbeat hb = CORDUM__AGENT__V1__HEARTBEAT__INIT;
    hb.cpu_load = 0.1f;
    hb.gpu_utilization = NAN;
    hb.memory_load = -INFINITY;
    char *c = to_json(&hb.base, 0);
    assert_string_equal(c, "{\"cpuLoad\":0.1,\"gpuUtilization\":\"NaN\","
                           "\"memoryLoad\":\"-Infinity\"}");
    free(c);
    /* -0.0 is not the default (its bits are not all zero). */
    hb = (Heartbeat)CORDUM__AGENT__V1__HEARTBEAT__INIT;
    hb.cpu_load = -0.0f;
    c = to_json(&hb.base, 0);
    assert_string_equal(c, "{\"cpuLoad\":-0}");
    free(c);
}

static void test_float_input_forms(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &cordum__agent__v1__heartbeat__descriptor;
    Heartbeat *hb = (Heartbeat *)from_json(
        d, "{\"cpuLoad\":\"33.5\",\"gpuUtilization\":\"Infinity\",\"memoryLoad\":1e1}");
    assert_true(hb->cpu_load == 33.5f);
    assert_true(isinf(hb->gpu_utilization) && hb->gpu_utilization > 0);
    assert_true(hb->memory_load == 10.0f);
    cap_message_free(&hb->base);
    hb = (Heartbeat *)from_json(d, "{\"cpuLoad\":\"-2.5E+1\",\"memoryLoad\":\"0.0e-0\"}");
    assert_true(hb->cpu_load == -25.0f);
    assert_true(hb->memory_load == 0.0f);
    cap_message_free(&hb->base);
    hb = (Heartbeat *)from_json(d, "{\"cpuLoad\":0.1,\"gpuUtilization\":\"NaN\"}");
    assert_true(hb->cpu_load == 0.1f);
    assert_true(isnan(hb->gpu_utilization));
    cap_message_free(&hb->base);

    expect_error(d, "{\"cpuLoad\":3.5e38}", "$.cpuLoad", "out of float range");
    expect_error(d, "{\"cpuLoad\":\"3.5e38\"}", "$.cpuLoad", "out of float range");
    expect_error(d, "{\"cpuLoad\":\"nan\"}", "$.cpuLoad", "not a number");
    expect_error(d, "{\"cpuLoad\":\"0x10\"}", "$.cpuLoad", "not a number");
    expect_error(d, "{\"cpuLoad\":\" 1\"}", "$.cpuLoad", "not a number");
    expect_error(d, "{\"cpuLoad\":\"1.\"}", "$.cpuLoad", "not a number");
    expect_error(d, "{\"cpuLoad\":\"1e\"}", "$.cpuLoad", "not a number");
    expect_error(d, "{\"cpuLoad\":\"01\"}", "$.cpuLoad", "not a number");
    expect_error(d, "{\"cpuLoad\":\"-\"}", "$.cpuLoad", "not a number");
    expect_error(d, "{\"cpuLoad\":true}", "$.cpuLoad", "expected a number, got a boolean");
    expect_error(POLICY_DESC, "{\"estimatedCost\":1e400}", "$.estimatedCost",
                 "out of double range");
    expect_error(POLICY_DESC, "{\"estimatedCost\":\"-1e400\"}", "$.estimatedCost",
                 "out of double range");
}

static void test_double_round_trip(void **state)
{
    (void)state;
    const double values[] = {0.1, 1e300, 5e-324, -0.0, DBL_MAX, 2.5, 1.0 / 3.0, 1e21, -7.25e-100};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        PolicyCheckRequest r = CORDUM__AGENT__V1__POLICY_CHECK_REQUEST__INIT;
        r.estimated_cost = values[i];
        char *c = to_json(&r.base, 0);
        PolicyCheckRequest *back = (PolicyCheckRequest *)from_json(POLICY_DESC, c);
        if (memcmp(&back->estimated_cost, &values[i], sizeof(double)) != 0)
            fail_msg("double %.17g came back as %.17g via %s", values[i], back->estimated_cost, c);
        free(c);
        cap_message_free(&back->base);
    }
    const char *specials[] = {"\"NaN\"", "\"Infinity\"", "\"-Infinity\""};
    for (size_t i = 0; i < 3; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"estimatedCost\":%s}", specials[i]);
        assert_json_fixpoint(POLICY_DESC, text);
    }
    PolicyCheckRequest r = CORDUM__AGENT__V1__POLICY_CHECK_REQUEST__INIT;
    r.estimated_cost = INFINITY;
    char *c = to_json(&r.base, 0);
    assert_string_equal(c, "{\"estimatedCost\":\"Infinity\"}");
    free(c);
}

static void test_integer_forms(void **state)
{
    (void)state;
    cap_packet *p = (cap_packet *)from_json(
        PACKET_DESC, "{\"protocolVersion\":-2147483648,\"jobResult\":{\"executionMs\":"
                     "\"-9223372036854775808\",\"dispatch\":{\"attempt\":"
                     "\"18446744073709551615\"}}}");
    assert_int_equal(p->protocol_version, INT32_MIN);
    assert_true(p->job_result->execution_ms == INT64_MIN);
    assert_true(p->job_result->dispatch->attempt == UINT64_MAX);
    char *c = to_json(&p->base, 0);
    assert_string_equal(c, "{\"protocolVersion\":-2147483648,\"jobResult\":{\"executionMs\":"
                           "\"-9223372036854775808\",\"dispatch\":{\"attempt\":"
                           "\"18446744073709551615\"}}}");
    free(c);
    cap_packet_free(p);

    p = (cap_packet *)from_json(
        PACKET_DESC, "{\"protocolVersion\":1e2,\"jobResult\":{\"executionMs\":-9007199254740991,"
                     "\"dispatch\":{\"attempt\":2.0}}}");
    assert_int_equal(p->protocol_version, 100);
    assert_true(p->job_result->execution_ms == INT64_C(-9007199254740991));
    assert_true(p->job_result->dispatch->attempt == 2);
    cap_packet_free(p);

    expect_error(PACKET_DESC, "{\"protocolVersion\":2147483648}", "$.protocolVersion",
                 "integer out of int32 range");
    expect_error(PACKET_DESC, "{\"protocolVersion\":\"-2147483649\"}", "$.protocolVersion",
                 "integer out of int32 range");
    expect_error(PACKET_DESC, "{\"protocolVersion\":1e300}", "$.protocolVersion",
                 "integer out of int32 range");
    expect_error(PACKET_DESC, "{\"protocolVersion\":1.5}", "$.protocolVersion",
                 "number 1.5 is not an integer");
    expect_error(PACKET_DESC, "{\"protocolVersion\":\"1x\"}", "$.protocolVersion",
                 "not a decimal integer");
    expect_error(PACKET_DESC, "{\"protocolVersion\":\"\"}", "$.protocolVersion",
                 "not a decimal integer");
    expect_error(PACKET_DESC, "{\"protocolVersion\":\"+1\"}", "$.protocolVersion",
                 "not a decimal integer");
    expect_error(PACKET_DESC, "{\"protocolVersion\":[1]}", "$.protocolVersion",
                 "expected an integer (number or decimal string), got an array");
    expect_error(PACKET_DESC, "{\"jobResult\":{\"dispatch\":{\"attempt\":\"-1\"}}}",
                 "$.jobResult.dispatch.attempt", "integer out of uint64 range");
    expect_error(PACKET_DESC, "{\"jobResult\":{\"dispatch\":{\"attempt\":-1}}}",
                 "$.jobResult.dispatch.attempt", "integer out of uint64 range");
    expect_error(PACKET_DESC,
                 "{\"jobResult\":{\"dispatch\":{\"attempt\":\"18446744073709551616\"}}}",
                 "$.jobResult.dispatch.attempt", "integer out of uint64 range");
    expect_error(PACKET_DESC, "{\"jobResult\":{\"dispatch\":{\"attempt\":9007199254740992}}}",
                 "$.jobResult.dispatch.attempt", "too large to be exact");
    expect_error(PACKET_DESC, "{\"jobResult\":{\"executionMs\":\"-9223372036854775809\"}}",
                 "$.jobResult.executionMs", "integer out of int64 range");
    expect_error(PACKET_DESC, "{\"jobResult\":{\"executionMs\":\"9223372036854775808\"}}",
                 "$.jobResult.executionMs", "integer out of int64 range");
    expect_error(PACKET_DESC, "{\"jobResult\":{\"executionMs\":1e400}}",
                 "$.jobResult.executionMs", "out of int64 range");
}

/* ------------------------------------------------------------------ */
/* Bytes and base64                                                    */
/* ------------------------------------------------------------------ */

static void test_base64_codec(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        const char *b64;
    } vec[] = {{"", ""},           {"f", "Zg=="},         {"fo", "Zm8="},
               {"foo", "Zm9v"},    {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
               {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        size_t n = strlen(vec[i].raw);
        char enc[16];
        assert_int_equal(cap_base64_encoded_len(n), strlen(vec[i].b64));
        assert_int_equal(cap_base64_encode((const uint8_t *)vec[i].raw, n, enc),
                         strlen(vec[i].b64));
        assert_string_equal(enc, vec[i].b64);
        uint8_t dec[16];
        size_t dl = 99;
        assert_int_equal(cap_base64_decode(vec[i].b64, strlen(vec[i].b64), dec, &dl), 0);
        assert_int_equal(dl, n);
        assert_memory_equal(dec, vec[i].raw, n);
    }
    uint8_t dec[16];
    size_t dl = 0;
    /* URL-safe and unpadded forms. */
    assert_int_equal(cap_base64_decode("-_8", 3, dec, &dl), 0);
    assert_int_equal(dl, 2);
    assert_int_equal(dec[0], 0xfb);
    assert_int_equal(dec[1], 0xff);
    assert_int_equal(cap_base64_decode("+/8=", 4, dec, &dl), 0);
    assert_int_equal(dec[0], 0xfb);
    assert_int_equal(cap_base64_decode("Zg", 2, dec, &dl), 0);
    assert_int_equal(dl, 1);
    /* Rejected. */
    const char *bad[] = {"Z",    "Zg=",  "Zg===", "Z===", "Zm9v=", "Zm9vY",  "Zm 9v",
                         "Zm9\n", "Zg=a", "+_8=",  "=Zm8", "Zm8$",  "Zm8=Zm8="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cap_base64_decode(bad[i], strlen(bad[i]), dec, &dl) == 0)
            fail_msg("\"%s\" accepted as base64", bad[i]);
}

static void test_bytes_field(void **state)
{
    (void)state;
    cap_packet *p = (cap_packet *)from_json(PACKET_DESC, "{\"signature\":\"3q2-7_8\"}");
    assert_int_equal(p->signature.len, 5);
    assert_memory_equal(p->signature.data, "\xde\xad\xbe\xef\xff", 5);
    char *c = to_json(&p->base, 0);
    assert_string_equal(c, "{\"signature\":\"3q2+7/8=\"}");
    free(c);
    cap_packet_free(p);
    expect_error(PACKET_DESC, "{\"signature\":\"abc$\"}", "$.signature", "not valid base64");
    expect_error(PACKET_DESC, "{\"signature\":\"abcde\"}", "$.signature", "not valid base64");
    expect_error(PACKET_DESC, "{\"signature\":\"ab+_\"}", "$.signature", "not valid base64");
    expect_error(PACKET_DESC, "{\"signature\":5}", "$.signature",
                 "expected a base64 string, got a number");
}

/* ------------------------------------------------------------------ */
/* Timestamps                                                          */
/* ------------------------------------------------------------------ */

static void parse_ts(const char *text, int64_t *secs, int32_t *nanos)
{
    char buf[96];
    snprintf(buf, sizeof buf, "\"%s\"", text);
    Timestamp *ts = (Timestamp *)from_json(TS_DESC, buf);
    *secs = ts->seconds;
    *nanos = ts->nanos;
    cap_message_free(&ts->base);
}

static void assert_ts(const char *text, int64_t secs, int32_t nanos)
{
    int64_t s;
    int32_t n;
    parse_ts(text, &s, &n);
    if (s != secs || n != nanos)
        fail_msg("%s parsed as %lld.%09d, expected %lld.%09d", text, (long long)s, n,
                 (long long)secs, nanos);
}

static char *ts_text(int64_t secs, int32_t nanos)
{
    Timestamp ts = make_ts(secs, nanos);
    return to_json(&ts.base, 0);
}

static void assert_ts_text(int64_t secs, int32_t nanos, const char *expect)
{
    char *t = ts_text(secs, nanos);
    assert_string_equal(t, expect);
    free(t);
}

static void test_timestamp_parse(void **state)
{
    (void)state;
    assert_ts("2024-01-02T03:04:05Z", 1704164645, 0);
    assert_ts("2024-01-02T05:04:05+02:00", 1704164645, 0);
    assert_ts("2024-01-01T22:04:05.5-05:00", 1704164645, 500000000);
    assert_ts("2024-01-02t03:04:05.123456z", 1704164645, 123456000);
    assert_ts("2024-01-02T03:04:05.000000001Z", 1704164645, 1);
    assert_ts("2024-01-02T03:04:05.1234567Z", 1704164645, 123456700);
    assert_ts("1970-01-01T00:00:00Z", 0, 0);
    assert_ts("1969-12-31T23:59:59Z", -1, 0);
    assert_ts("2000-03-01T00:00:00Z", 951868800, 0);
    assert_ts("2000-02-29T00:00:00Z", 951782400, 0);
    assert_ts("2024-02-29T12:00:00Z", 1709208000, 0);
    assert_ts("0001-01-01T00:00:00Z", INT64_C(-62135596800), 0);
    assert_ts("9999-12-31T23:59:59.999999999Z", INT64_C(253402300799), 999999999);
    assert_ts("0001-01-01T01:00:00+01:00", INT64_C(-62135596800), 0);

    const ProtobufCMessageDescriptor *d = PACKET_DESC;
    expect_error(d, "{\"createdAt\":\"2024-13-01T00:00:00Z\"}", "$.createdAt", "no such date");
    expect_error(d, "{\"createdAt\":\"2023-02-29T00:00:00Z\"}", "$.createdAt", "no such date");
    expect_error(d, "{\"createdAt\":\"1900-02-29T00:00:00Z\"}", "$.createdAt", "no such date");
    expect_error(d, "{\"createdAt\":\"2024-04-31T00:00:00Z\"}", "$.createdAt", "no such date");
    expect_error(d, "{\"createdAt\":\"0000-12-31T23:59:59Z\"}", "$.createdAt", "no such date");
    expect_error(d, "{\"createdAt\":\"2024-01-01T24:00:00Z\"}", "$.createdAt", "time of day");
    expect_error(d, "{\"createdAt\":\"2024-01-01T23:59:60Z\"}", "$.createdAt", "time of day");
    expect_error(d, "{\"createdAt\":\"9999-12-31T23:59:59-01:00\"}", "$.createdAt",
                 "timestamp outside");
    expect_error(d, "{\"createdAt\":\"0001-01-01T00:00:00+00:01\"}", "$.createdAt",
                 "timestamp outside");
    expect_error(d, "{\"createdAt\":\"2024-01-02 03:04:05Z\"}", "$.createdAt",
                 "not an RFC 3339 timestamp");
    expect_error(d, "{\"createdAt\":\"2024-1-02T03:04:05Z\"}", "$.createdAt",
                 "not an RFC 3339 timestamp");
    expect_error(d, "{\"createdAt\":\"2024-01-02T03:04:05\"}", "$.createdAt", "expected 'Z'");
    expect_error(d, "{\"createdAt\":\"2024-01-02T03:04:05.Z\"}", "$.createdAt",
                 "no digits after the decimal point");
    expect_error(d, "{\"createdAt\":\"2024-01-02T03:04:05.1234567891Z\"}", "$.createdAt",
                 "more than 9 fractional digits");
    expect_error(d, "{\"createdAt\":\"2024-01-02T03:04:05+0200\"}", "$.createdAt",
                 "malformed UTC offset");
    expect_error(d, "{\"createdAt\":\"2024-01-02T03:04:05+24:00\"}", "$.createdAt",
                 "UTC offset out of range");
    expect_error(d, "{\"createdAt\":\"2024-01-02T03:04:05Zjunk\"}", "$.createdAt",
                 "trailing characters");
    expect_error(d, "{\"createdAt\":1704164645}", "$.createdAt",
                 "expected an RFC 3339 timestamp string, got a number");
    expect_error(d, "{\"createdAt\":{\"seconds\":\"1\"}}", "$.createdAt",
                 "expected an RFC 3339 timestamp string, got an object");
}

static void test_timestamp_format(void **state)
{
    (void)state;
    assert_ts_text(1704164645, 0, "\"2024-01-02T03:04:05Z\"");
    assert_ts_text(1704164645, 100000000, "\"2024-01-02T03:04:05.100Z\"");
    assert_ts_text(1704164645, 120000, "\"2024-01-02T03:04:05.000120Z\"");
    assert_ts_text(1704164645, 123456789, "\"2024-01-02T03:04:05.123456789Z\"");
    assert_ts_text(1704164645, 10, "\"2024-01-02T03:04:05.000000010Z\"");
    assert_ts_text(-1, 999000000, "\"1969-12-31T23:59:59.999Z\"");
    assert_ts_text(INT64_C(-62135596800), 0, "\"0001-01-01T00:00:00Z\"");
    assert_ts_text(INT64_C(253402300799), 999999999, "\"9999-12-31T23:59:59.999999999Z\"");
    assert_ts_text(951782400, 0, "\"2000-02-29T00:00:00Z\"");
    assert_ts_text(4107542400, 0, "\"2100-03-01T00:00:00Z\"");

    /* Out of range: written as a plain object, which does not parse back. */
    assert_ts_text(INT64_C(253402300800), 0, "{\"seconds\":\"253402300800\"}");
    assert_ts_text(0, -1, "{\"nanos\":-1}");
    assert_ts_text(INT64_C(-62135596801), 1000000000,
                   "{\"seconds\":\"-62135596801\",\"nanos\":1000000000}");
    expect_error(TS_DESC, "{\"seconds\":\"253402300800\"}", "$",
                 "expected an RFC 3339 timestamp string, got an object");
}

/* Reference calendar for the sweep: the day after y-m-d. */
static void next_day(int *y, int *m, int *d)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
    int len = dim[*m - 1] + (*m == 2 && leap);
    if (++*d > len) {
        *d = 1;
        if (++*m > 12) {
            *m = 1;
            ++*y;
        }
    }
}

/* Walks consecutive days from a known start date: every date must be the
 * reference calendar's next day, and must parse back to the same second. */
static void sweep_days(int y, int m, int d, int64_t start_secs, int ndays)
{
    for (int i = 0; i < ndays; i++) {
        int64_t secs = start_secs + (int64_t)i * 86400 + 3723; /* 01:02:03 */
        char expect[48];
        snprintf(expect, sizeof expect, "\"%04d-%02d-%02dT01:02:03Z\"", y, m, d);
        char *t = ts_text(secs, 0);
        if (strcmp(t, expect) != 0)
            fail_msg("seconds %lld: got %s, expected %s", (long long)secs, t, expect);
        int64_t back;
        int32_t nanos;
        t[strlen(t) - 1] = '\0';
        parse_ts(t + 1, &back, &nanos);
        assert_true(back == secs);
        free(t);
        next_day(&y, &m, &d);
    }
}

static void test_timestamp_calendar_sweep(void **state)
{
    (void)state;
    sweep_days(1, 1, 1, INT64_C(-62135596800), 1600);
    sweep_days(1899, 12, 1, INT64_C(-2211667200), 800);
    sweep_days(1969, 12, 1, INT64_C(-2678400), 1600);
    sweep_days(1999, 12, 1, INT64_C(944006400), 1600);
    sweep_days(2099, 12, 1, INT64_C(4099766400), 800);
    sweep_days(9996, 1, 1, INT64_C(253276070400), 1461);
}

/* ------------------------------------------------------------------ */
/* Errors and limits                                                   */
/* ------------------------------------------------------------------ */

static void test_structure_errors(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = PACKET_DESC;
    expect_error(d, "{\"jobRequest\":{\"fooBar\":1}}", "$.jobRequest.fooBar",
                 "unknown field \"fooBar\"");
    expect_error(d, "{\"a b\":1}", "$[\"a b\"]", "unknown field \"a b\"");
    expect_error(d, "{\"JobRequest\":{}}", "$.JobRequest", "unknown field");
    expect_error(d, "{\"traceId\":\"a\",\"traceId\":\"b\"}", "$.traceId",
                 "duplicate key \"traceId\"");
    expect_error(d, "{\"traceId\":\"a\",\"trace_id\":\"b\"}", "$.trace_id",
                 "duplicate key \"trace_id\" (same field as \"traceId\")");
    expect_error(d, "{\"jobRequest\":{\"jobId\":null,\"jobId\":\"x\"}}", "$.jobRequest.jobId",
                 "duplicate key");
    expect_error(d, "{\"jobRequest\":{\"env\":{\"region\":5}}}", "$.jobRequest.env.region",
                 "expected a string, got a number");
    expect_error(d, "{\"jobRequest\":{\"env\":{\"a\":\"1\",\"a\":\"2\"}}}", "$.jobRequest.env",
                 "duplicate map key \"a\"");
    expect_error(d, "{\"jobRequest\":{\"env\":{\"region\":null}}}", "$.jobRequest.env.region",
                 "map value must not be null");
    expect_error(d, "{\"jobRequest\":{\"env\":[\"a\"]}}", "$.jobRequest.env",
                 "expected an object, got an array");
    expect_error(d, "{\"heartbeat\":{\"capabilities\":[\"a\",\"b\",\"c\",null]}}",
                 "$.heartbeat.capabilities[3]", "null is not allowed");
    expect_error(d, "{\"heartbeat\":{\"capabilities\":[\"a\",1]}}", "$.heartbeat.capabilities[1]",
                 "expected a string, got a number");
    expect_error(d, "{\"heartbeat\":{\"capabilities\":\"a\"}}", "$.heartbeat.capabilities",
                 "expected an array, got a string");
    expect_error(d, "{\"jobResult\":{\"artifactRefs\":[{},{\"sizeBytes\":\"x\"}]}}",
                 "$.jobResult.artifactRefs[1].sizeBytes", "not a decimal integer");
    expect_error(d, "{\"jobRequest\":\"x\"}", "$.jobRequest", "expected an object, got a string");
    expect_error(d, "{\"traceId\":false}", "$.traceId", "expected a string, got a boolean");
    expect_error(d, "{\"traceId\":{}}", "$.traceId", "expected a string, got an object");
    expect_error(d, "{\"handshake\":{\"capabilities\":{\"x\":\"true\"}}}",
                 "$.handshake.capabilities.x", "expected a boolean, got a string");
    expect_error(d, "[]", "$", "expected an object, got an array");
    expect_error(d, "null", "$", "expected an object, got null");
    expect_error(d, "{\"traceId\":\"\xff\"}", "$.traceId", "not valid UTF-8");
    expect_error(d, "{\"traceId\":\"\xed\xa0\x80\"}", "$.traceId", "not valid UTF-8");
    expect_error(d, "{\"jobRequest\":{\"env\":{\"\xc0\xaf\":\"v\"}}}", "$.jobRequest.env",
                 "not valid UTF-8");
    expect_error(d, "{\"\xff\\\"\":1}", "$[\"\\xFF\\\"\"]", "unknown field \"\\xFF\\\"\"");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = PACKET_DESC;
    expect_error(d, "{\"traceId\": }", "$", "JSON syntax error at byte");
    expect_error(d, "{\"traceId\":\"a\"", "$", "JSON syntax error");
    expect_error(d, "{} x", "$", "trailing characters after the JSON value at byte 3");
    expect_error(d, "{}{}", "$", "trailing characters");
    expect_error(d, "", "$", "empty input");
    expect_error(d, "   ", "$", "JSON syntax error");
    expect_error(d, "{\"traceId\":\"a\\u0000b\"}", "$", "\\u0000 is not allowed");
    expect_error(d, "{\"traceId\":\"a\nb\"}", "$", "unescaped control character");
    static const char with_nul[] = "{\"traceId\":\"a\0b\"}";
    expect_error_n(d, with_nul, sizeof with_nul - 1, "$", "NUL byte at byte 13");

    /* The diagnostic carries the byte offset, and line and column. */
    cap_diag diag;
    ProtobufCMessage *m = NULL;
    const char *text = "{\n  \"traceId\": \"a\",\n  \"senderId\": ]\n}";
    assert_int_equal(cap_json_to_message(d, text, strlen(text), 0, &m, &diag), CAP_EJSON);
    assert_null(m);
    assert_true(diag.offset >= 20 && diag.offset <= 35);
    assert_contains(diag.reason, "line 3");

    /* An escaped quote or backslash does not confuse the pre-scan. */
    cap_packet *p = (cap_packet *)from_json(d, "{\"traceId\":\"a\\\\\",\"senderId\":\"\\\"\"}");
    assert_string_equal(p->trace_id, "a\\");
    assert_string_equal(p->sender_id, "\"");
    cap_packet_free(p);

    /* Whitespace around the value is fine. */
    p = (cap_packet *)from_json(d, " \r\n\t{ \"traceId\" : \"a\" } \n");
    assert_string_equal(p->trace_id, "a");
    cap_packet_free(p);
}

static void test_limits_and_arguments(void **state)
{
    (void)state;
    const char *text = "{\"traceId\":\"0123456789\"}";
    ProtobufCMessage *m = NULL;
    cap_diag diag;
    assert_int_equal(cap_json_to_message(PACKET_DESC, text, strlen(text), 10, &m, &diag),
                     CAP_EJSON);
    assert_null(m);
    assert_string_equal(diag.path, "$");
    assert_contains(diag.reason, "over the limit of 10");
    assert_int_equal(cap_json_to_message(PACKET_DESC, text, strlen(text), strlen(text), &m, &diag),
                     CAP_OK);
    cap_message_free(m);
    m = NULL;

    /* The default limit is 16 MiB. */
    size_t big = ((size_t)16 << 20) + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    assert_int_equal(cap_json_to_message(PACKET_DESC, huge, big, 0, &m, &diag), CAP_EJSON);
    assert_contains(diag.reason, "over the limit of 16777216");
    free(huge);

    /* NULL diag is accepted. */
    assert_int_equal(cap_json_to_message(PACKET_DESC, "{", 1, 0, &m, NULL), CAP_EJSON);
    assert_int_equal(cap_json_to_message(NULL, "{}", 2, 0, &m, &diag), CAP_EINVAL);
    assert_int_equal(cap_json_to_message(PACKET_DESC, NULL, 2, 0, &m, &diag), CAP_EINVAL);
    assert_int_equal(cap_json_to_message(PACKET_DESC, "{}", 2, 0, NULL, &diag), CAP_EINVAL);
    char *out = (char *)"x";
    assert_int_equal(cap_json_from_message(NULL, 0, &out), CAP_EINVAL);
    assert_null(out);
    cap_packet p = CORDUM__AGENT__V1__BUS_PACKET__INIT;
    assert_int_equal(cap_json_from_message(&p.base, 0, NULL), CAP_EINVAL);

    /* Deep nesting stops at cJSON's own limit without harm. */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 1);
    assert_non_null(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    expect_error(PACKET_DESC, deep, "$", "JSON syntax error");
    free(deep);
}

static void test_map_keys_sorted_bytewise(void **state)
{
    (void)state;
    cap_packet *p = (cap_packet *)from_json(
        PACKET_DESC, "{\"alert\":{\"details\":{\"b\":\"2\",\"B\":\"3\",\"\xc3\xa9\":\"4\","
                     "\"a\":\"1\",\"\":\"0\"}}}");
    char *c = to_json(&p->base, 0);
    assert_string_equal(c, "{\"alert\":{\"details\":{\"\":\"0\",\"B\":\"3\",\"a\":\"1\","
                           "\"b\":\"2\",\"\xc3\xa9\":\"4\"}}}");
    free(c);
    cap_packet_free(p);
}

/* ------------------------------------------------------------------ */
/* A hand-made schema with every scalar type, integer and bool map     */
/* keys, explicit presence and a scalar oneof.                         */
/* ------------------------------------------------------------------ */

typedef struct {
    ProtobufCMessage base;
    int32_t key;
    char *value;
} IntMapEntry;

typedef struct {
    ProtobufCMessage base;
    protobuf_c_boolean key;
    int64_t value;
} BoolMapEntry;

typedef struct {
    ProtobufCMessage base;
    uint64_t key;
    double value;
} U64MapEntry;

typedef struct AllTypes AllTypes;
struct AllTypes {
    ProtobufCMessage base;
    int32_t i32;
    int64_t i64;
    uint32_t u32;
    uint64_t u64;
    int32_t s32;
    int64_t s64;
    uint32_t f32;
    uint64_t f64;
    int32_t sf32;
    int64_t sf64;
    float fl;
    double db;
    protobuf_c_boolean b;
    size_t n_ints;
    int32_t *ints;
    size_t n_blobs;
    ProtobufCBinaryData *blobs;
    size_t n_int_map;
    IntMapEntry **int_map;
    size_t n_bool_map;
    BoolMapEntry **bool_map;
    size_t n_u64_map;
    U64MapEntry **u64_map;
    protobuf_c_boolean has_opt;
    int32_t opt;
    uint32_t choice_case;
    union {
        int32_t c_num;
        char *c_str;
    };
    char *opt_str;
    AllTypes *sub;
};

static void int_entry_init(ProtobufCMessage *m);
static void bool_entry_init(ProtobufCMessage *m);
static void u64_entry_init(ProtobufCMessage *m);
static void all_types_init(ProtobufCMessage *m);

#define FIELD(nm, id, label, type, q, st, member, desc, def, flags)                             \
    {nm, id, label, type, q, offsetof(st, member), desc, def, flags, 0, NULL, NULL}

static const unsigned entry_sorted[2] = {0, 1};
static const ProtobufCIntRange entry_ranges[2] = {{1, 0}, {0, 2}};

static const ProtobufCFieldDescriptor int_entry_fields[2] = {
    FIELD("key", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT32, 0, IntMapEntry, key, NULL,
          NULL, 0),
    FIELD("value", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, 0, IntMapEntry, value, NULL,
          &protobuf_c_empty_string, 0),
};
static const ProtobufCMessageDescriptor int_entry_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "test.AllTypes.IntMapEntry", "IntMapEntry",
    "IntMapEntry", "test", sizeof(IntMapEntry), 2, int_entry_fields, entry_sorted, 1,
    entry_ranges, int_entry_init, NULL, NULL, NULL};

static const ProtobufCFieldDescriptor bool_entry_fields[2] = {
    FIELD("key", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_BOOL, 0, BoolMapEntry, key, NULL,
          NULL, 0),
    FIELD("value", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT64, 0, BoolMapEntry, value, NULL,
          NULL, 0),
};
static const ProtobufCMessageDescriptor bool_entry_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "test.AllTypes.BoolMapEntry", "BoolMapEntry",
    "BoolMapEntry", "test", sizeof(BoolMapEntry), 2, bool_entry_fields, entry_sorted, 1,
    entry_ranges, bool_entry_init, NULL, NULL, NULL};

static const ProtobufCFieldDescriptor u64_entry_fields[2] = {
    FIELD("key", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_UINT64, 0, U64MapEntry, key, NULL,
          NULL, 0),
    FIELD("value", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_DOUBLE, 0, U64MapEntry, value, NULL,
          NULL, 0),
};
static const ProtobufCMessageDescriptor u64_entry_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "test.AllTypes.U64MapEntry", "U64MapEntry",
    "U64MapEntry", "test", sizeof(U64MapEntry), 2, u64_entry_fields, entry_sorted, 1,
    entry_ranges, u64_entry_init, NULL, NULL, NULL};

extern const ProtobufCMessageDescriptor all_types_desc;

#define L_NONE PROTOBUF_C_LABEL_NONE
#define L_REP PROTOBUF_C_LABEL_REPEATED
#define L_OPT PROTOBUF_C_LABEL_OPTIONAL
#define ONEOF PROTOBUF_C_FIELD_FLAG_ONEOF
static const ProtobufCFieldDescriptor all_types_fields[23] = {
    FIELD("i32", 1, L_NONE, PROTOBUF_C_TYPE_INT32, 0, AllTypes, i32, NULL, NULL, 0),
    FIELD("i64", 2, L_NONE, PROTOBUF_C_TYPE_INT64, 0, AllTypes, i64, NULL, NULL, 0),
    FIELD("u32", 3, L_NONE, PROTOBUF_C_TYPE_UINT32, 0, AllTypes, u32, NULL, NULL, 0),
    FIELD("u64", 4, L_NONE, PROTOBUF_C_TYPE_UINT64, 0, AllTypes, u64, NULL, NULL, 0),
    FIELD("s32", 5, L_NONE, PROTOBUF_C_TYPE_SINT32, 0, AllTypes, s32, NULL, NULL, 0),
    FIELD("s64", 6, L_NONE, PROTOBUF_C_TYPE_SINT64, 0, AllTypes, s64, NULL, NULL, 0),
    FIELD("f32", 7, L_NONE, PROTOBUF_C_TYPE_FIXED32, 0, AllTypes, f32, NULL, NULL, 0),
    FIELD("f64", 8, L_NONE, PROTOBUF_C_TYPE_FIXED64, 0, AllTypes, f64, NULL, NULL, 0),
    FIELD("sf32", 9, L_NONE, PROTOBUF_C_TYPE_SFIXED32, 0, AllTypes, sf32, NULL, NULL, 0),
    FIELD("sf64", 10, L_NONE, PROTOBUF_C_TYPE_SFIXED64, 0, AllTypes, sf64, NULL, NULL, 0),
    FIELD("fl", 11, L_NONE, PROTOBUF_C_TYPE_FLOAT, 0, AllTypes, fl, NULL, NULL, 0),
    FIELD("db", 12, L_NONE, PROTOBUF_C_TYPE_DOUBLE, 0, AllTypes, db, NULL, NULL, 0),
    FIELD("b", 13, L_NONE, PROTOBUF_C_TYPE_BOOL, 0, AllTypes, b, NULL, NULL, 0),
    FIELD("ints", 14, L_REP, PROTOBUF_C_TYPE_INT32, offsetof(AllTypes, n_ints), AllTypes, ints,
          NULL, NULL, 0),
    FIELD("blobs", 15, L_REP, PROTOBUF_C_TYPE_BYTES, offsetof(AllTypes, n_blobs), AllTypes, blobs,
          NULL, NULL, 0),
    FIELD("int_map", 16, L_REP, PROTOBUF_C_TYPE_MESSAGE, offsetof(AllTypes, n_int_map), AllTypes,
          int_map, &int_entry_desc, NULL, 0),
    FIELD("bool_map", 17, L_REP, PROTOBUF_C_TYPE_MESSAGE, offsetof(AllTypes, n_bool_map),
          AllTypes, bool_map, &bool_entry_desc, NULL, 0),
    FIELD("u64_map", 18, L_REP, PROTOBUF_C_TYPE_MESSAGE, offsetof(AllTypes, n_u64_map), AllTypes,
          u64_map, &u64_entry_desc, NULL, 0),
    FIELD("opt", 19, L_OPT, PROTOBUF_C_TYPE_INT32, offsetof(AllTypes, has_opt), AllTypes, opt,
          NULL, NULL, 0),
    FIELD("c_num", 20, L_NONE, PROTOBUF_C_TYPE_INT32, offsetof(AllTypes, choice_case), AllTypes,
          c_num, NULL, NULL, ONEOF),
    FIELD("c_str", 21, L_NONE, PROTOBUF_C_TYPE_STRING, offsetof(AllTypes, choice_case), AllTypes,
          c_str, NULL, NULL, ONEOF),
    FIELD("opt_str", 22, L_OPT, PROTOBUF_C_TYPE_STRING, 0, AllTypes, opt_str, NULL, NULL, 0),
    FIELD("sub", 23, L_NONE, PROTOBUF_C_TYPE_MESSAGE, 0, AllTypes, sub, &all_types_desc, NULL, 0),
};
static const unsigned all_types_sorted[23] = {12, 14, 16, 19, 20, 11, 6,  7,  10, 0,  1, 15,
                                              13, 18, 21, 4,  5,  8,  9,  22, 2,  3,  17};
static const ProtobufCIntRange all_types_ranges[2] = {{1, 0}, {0, 23}};
const ProtobufCMessageDescriptor all_types_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "test.AllTypes", "AllTypes", "AllTypes", "test",
    sizeof(AllTypes), 23, all_types_fields, all_types_sorted, 1, all_types_ranges,
    all_types_init, NULL, NULL, NULL};

static void int_entry_init(ProtobufCMessage *m)
{
    IntMapEntry *e = (IntMapEntry *)m;
    memset(e, 0, sizeof *e);
    e->base.descriptor = &int_entry_desc;
    e->value = (char *)protobuf_c_empty_string;
}

static void bool_entry_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(BoolMapEntry));
    m->descriptor = &bool_entry_desc;
}

static void u64_entry_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(U64MapEntry));
    m->descriptor = &u64_entry_desc;
}

static void all_types_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(AllTypes));
    m->descriptor = &all_types_desc;
}

static const char all_types_text[] =
    "{\"i32\":-5,\"i64\":\"-9223372036854775808\",\"u32\":4294967295,"
    "\"u64\":\"18446744073709551615\",\"s32\":-2147483648,\"s64\":\"9223372036854775807\","
    "\"f32\":7,\"f64\":\"8\",\"sf32\":-9,\"sf64\":\"-10\",\"fl\":1.5,\"db\":-2.25,\"b\":true,"
    "\"ints\":[1,-2,3],\"blobs\":[\"AQID\",\"\"],"
    "\"intMap\":{\"-1\":\"m\",\"10\":\"t\",\"9\":\"\"},"
    "\"boolMap\":{\"false\":\"0\",\"true\":\"1\"},"
    "\"u64Map\":{\"18446744073709551615\":0.5},\"opt\":0,\"cNum\":0,\"optStr\":\"\","
    "\"sub\":{\"i32\":1,\"cStr\":\"\"}}";

static void test_all_types_round_trip(void **state)
{
    (void)state;
    AllTypes *m = (AllTypes *)from_json(&all_types_desc, all_types_text);
    assert_int_equal(m->u32, UINT32_MAX);
    assert_int_equal(m->n_blobs, 2);
    assert_int_equal(m->blobs[0].len, 3);
    assert_int_equal(m->blobs[1].len, 0);
    assert_int_equal(m->n_int_map, 3);
    assert_true(m->has_opt);
    assert_int_equal(m->choice_case, 20);
    assert_int_equal(m->sub->choice_case, 21);
    assert_string_equal(m->sub->c_str, "");
    char *c = to_json(&m->base, 0);
    assert_string_equal(c, all_types_text);
    free(c);
    cap_message_free(&m->base);

    /* Input in another order, with other spellings, gives the same text. */
    m = (AllTypes *)from_json(
        &all_types_desc,
        "{\"sub\":{\"c_str\":\"\",\"i32\":\"1\"},\"opt_str\":\"\",\"c_num\":\"0\",\"opt\":0,"
        "\"u64_map\":{\"18446744073709551615\":\"0.5\"},\"bool_map\":{\"true\":1,\"false\":0},"
        "\"int_map\":{\"9\":\"\",\"-1\":\"m\",\"10\":\"t\"},\"blobs\":[\"AQID\",\"\"],"
        "\"ints\":[\"1\",-2,3.0],\"b\":true,\"db\":\"-2.25\",\"fl\":\"1.5\",\"sf64\":-10,"
        "\"sf32\":\"-9\",\"f64\":8,\"f32\":\"7\",\"s64\":\"9223372036854775807\","
        "\"s32\":\"-2147483648\",\"u64\":\"18446744073709551615\",\"u32\":\"4294967295\","
        "\"i64\":\"-9223372036854775808\",\"i32\":\"-5\"}");
    c = to_json(&m->base, 0);
    assert_string_equal(c, all_types_text);
    free(c);
    cap_message_free(&m->base);
}

static void test_all_types_defaults_and_presence(void **state)
{
    (void)state;
    AllTypes m;
    all_types_init(&m.base);
    char *c = to_json(&m.base, 0);
    assert_string_equal(c, "{}");
    free(c);
    /* Explicit presence: has_opt set with a zero value is written. */
    m.has_opt = 1;
    m.fl = -0.0f;
    c = to_json(&m.base, 0);
    assert_string_equal(c, "{\"fl\":-0,\"opt\":0}");
    free(c);

    /* A map value message the sender left out, and duplicate keys in a
     * decoded map (last one wins). */
    IntMapEntry e[3];
    IntMapEntry *ep[3] = {&e[0], &e[1], &e[2]};
    for (int i = 0; i < 3; i++)
        int_entry_init(&e[i].base);
    e[0].key = 5;
    e[0].value = "first";
    e[1].key = 2;
    e[1].value = "x";
    e[2].key = 5;
    e[2].value = "last";
    all_types_init(&m.base);
    m.n_int_map = 3;
    m.int_map = ep;
    c = to_json(&m.base, 0);
    assert_string_equal(c, "{\"intMap\":{\"2\":\"x\",\"5\":\"last\"}}");
    free(c);
}

static void test_all_types_errors(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &all_types_desc;
    expect_error(d, "{\"intMap\":{\"x\":\"a\"}}", "$.intMap.x", "map key is not a decimal integer");
    expect_error(d, "{\"intMap\":{\"2147483648\":\"a\"}}", "$.intMap[\"2147483648\"]",
                 "map key out of int32 range");
    expect_error(d, "{\"intMap\":{\"99999999999999999999\":\"a\"}}", "$.intMap",
                 "map key out of int32 range");
    expect_error(d, "{\"intMap\":{\"1\":\"a\",\"01\":\"b\"}}", "$.intMap",
                 "duplicate map key \"1\"");
    expect_error(d, "{\"boolMap\":{\"yes\":\"1\"}}", "$.boolMap.yes",
                 "map key must be \"true\" or \"false\"");
    expect_error(d, "{\"boolMap\":{\"true\":\"x\"}}", "$.boolMap.true", "not a decimal integer");
    expect_error(d, "{\"u64Map\":{\"-1\":1}}", "$.u64Map[\"-1\"]", "map key out of uint64 range");
    expect_error(d, "{\"u32\":-1}", "$.u32", "integer out of uint32 range");
    expect_error(d, "{\"f32\":4294967296}", "$.f32", "integer out of fixed32 range");
    expect_error(d, "{\"s32\":\"2147483648\"}", "$.s32", "integer out of sint32 range");
    expect_error(d, "{\"sf32\":-2147483649}", "$.sf32", "integer out of sfixed32 range");
    /* 2^53 + 1 reaches the parser as the double 2^53: refused, not rounded. */
    expect_error(d, "{\"s64\":9007199254740993}", "$.s64", "too large to be exact");
    expect_error(d, "{\"s64\":-9007199254740992}", "$.s64", "too large to be exact");
    expect_error(d, "{\"sf64\":1.5}", "$.sf64", "not an integer");
    expect_error(d, "{\"f64\":\"-5\"}", "$.f64", "integer out of fixed64 range");
    expect_error(d, "{\"b\":\"true\"}", "$.b", "expected a boolean, got a string");
    expect_error(d, "{\"b\":1}", "$.b", "expected a boolean, got a number");
    expect_error(d, "{\"ints\":[1,null]}", "$.ints[1]", "null is not allowed");
    expect_error(d, "{\"ints\":[1,2.5]}", "$.ints[1]", "not an integer");
    expect_error(d, "{\"blobs\":[\"AQID\",\"#\"]}", "$.blobs[1]", "not valid base64");
    expect_error(d, "{\"cNum\":1,\"cStr\":\"x\"}", "$.cStr", "oneof already set by \"cNum\"");
    expect_error(d, "{\"cStr\":\"x\",\"c_num\":1}", "$.c_num", "oneof already set by \"cStr\"");
    expect_error(d, "{\"sub\":{\"sub\":{\"bogus\":1}}}", "$.sub.sub.bogus",
                 "unknown field \"bogus\" in test.AllTypes");
    expect_error(d, "{\"sub\":{\"ints\":[1,2,{}]}}", "$.sub.ints[2]",
                 "expected an integer (number or decimal string), got an object");
    expect_error(d, "{\"fl\":\"1e39\"}", "$.fl", "out of float range");
    expect_error(d, "{\"db\":null,\"db\":1}", "$.db", "duplicate key \"db\"");
}

static void test_long_keys_are_cut(void **state)
{
    (void)state;
    /* A long key is cut in the diagnostic, not overflowed. */
    char text[1200];
    char key[1000];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    snprintf(text, sizeof text, "{\"sub\":{\"sub\":{\"%s\":1}}}", key);
    ProtobufCMessage *m = NULL;
    cap_diag diag;
    assert_int_equal(cap_json_to_message(&all_types_desc, text, strlen(text), 0, &m, &diag),
                     CAP_EJSON);
    assert_true(strncmp(diag.path, "$.sub.sub.kkk", 13) == 0);
    assert_contains(diag.reason, "...");
    char key2[300];
    memset(key2, '-', sizeof key2 - 1);
    key2[sizeof key2 - 1] = '\0';
    snprintf(text, sizeof text, "{\"%s\":1}", key2);
    assert_int_equal(cap_json_to_message(&all_types_desc, text, strlen(text), 0, &m, &diag),
                     CAP_EJSON);
    assert_true(strncmp(diag.path, "$[\"---", 6) == 0);
}

/* ------------------------------------------------------------------ */
/* Golden fixtures: each .json is the pretty rendering of its .bin     */
/* ------------------------------------------------------------------ */

static void check_fixture(const char *name)
{
    char path[256];
    size_t nbin, njson;
    snprintf(path, sizeof path, REPO_PATH("conformance/fixtures/%s.bin"), name);
    uint8_t *bin = tu_read_file(path, &nbin);
    snprintf(path, sizeof path, REPO_PATH("conformance/fixtures/%s.json"), name);
    char *json = (char *)tu_read_file(path, &njson);

    ProtobufCMessage *unpacked = protobuf_c_message_unpack(PACKET_DESC, NULL, nbin, bin);
    assert_non_null(unpacked);
    char *rendered = to_json(unpacked, 1);
    if (strcmp(rendered, json) != 0)
        fail_msg("%s: rendering differs from the fixture:\n%s", name, rendered);

    ProtobufCMessage *parsed = NULL;
    cap_diag diag;
    assert_int_equal(cap_json_to_message(PACKET_DESC, json, njson, 0, &parsed, &diag), CAP_OK);
    uint8_t *enc = NULL;
    size_t nenc = 0;
    assert_int_equal(cap_encode(parsed, &enc, &nenc), CAP_OK);
    assert_int_equal(nenc, nbin);
    assert_memory_equal(enc, bin, nbin);

    free(enc);
    cap_message_free(parsed);
    free(rendered);
    protobuf_c_message_free_unpacked(unpacked, NULL);
    free(json);
    free(bin);
}

static void test_golden_fixtures(void **state)
{
    (void)state;
    static const char *names[] = {"buspacket_alert",        "buspacket_alert_enhanced",
                                  "buspacket_handshake",    "buspacket_heartbeat",
                                  "buspacket_job_cancel",   "buspacket_job_progress",
                                  "buspacket_job_request",  "buspacket_job_result"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        check_fixture(names[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_job_request_round_trip),
        cmocka_unit_test(test_pretty_layout),
        cmocka_unit_test(test_heartbeat_exact_text),
        cmocka_unit_test(test_empty_message_and_defaults),
        cmocka_unit_test(test_string_escapes_and_bad_utf8),
        cmocka_unit_test(test_snake_case_and_enum_number),
        cmocka_unit_test(test_enum_without_name),
        cmocka_unit_test(test_handshake_bool_map),
        cmocka_unit_test(test_oneof_default_member),
        cmocka_unit_test(test_sub_message_present_but_empty),
        cmocka_unit_test(test_policy_request_json_fixpoint),
        cmocka_unit_test(test_float_round_trip),
        cmocka_unit_test(test_float_input_forms),
        cmocka_unit_test(test_double_round_trip),
        cmocka_unit_test(test_integer_forms),
        cmocka_unit_test(test_base64_codec),
        cmocka_unit_test(test_bytes_field),
        cmocka_unit_test(test_timestamp_parse),
        cmocka_unit_test(test_timestamp_format),
        cmocka_unit_test(test_timestamp_calendar_sweep),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_limits_and_arguments),
        cmocka_unit_test(test_map_keys_sorted_bytewise),
        cmocka_unit_test(test_all_types_round_trip),
        cmocka_unit_test(test_all_types_defaults_and_presence),
        cmocka_unit_test(test_all_types_errors),
        cmocka_unit_test(test_long_keys_are_cut),
        cmocka_unit_test(test_golden_fixtures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
