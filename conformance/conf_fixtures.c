/* Golden fixtures, built from the exact values listed in cap-tck 10.
 * Messages are assembled through their descriptors (set_str, set_map, ...)
 * so each fixture reads like the spec's table; all memory comes from one
 * arena freed at the end. */
#include "conf_fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_buf.h"
#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_json.h"
#include "cap_schema.h"
#include "cap_sign.h"
#include "cap_varint.h"

const uint8_t conf_fixture_key_scalar[32] = {[31] = 1};

/* 2024-01-02T03:04:05Z, the created_at of every fixture. */
#define FIXTURE_CREATED_AT 1704164645

/* --- arena ------------------------------------------------------------- */

typedef struct arena_block {
    struct arena_block *next;
    max_align_t data[];
} arena_block;

typedef struct {
    arena_block *head;
    int failed;
} arena;

static void *arena_alloc(arena *a, size_t n)
{
    arena_block *b = calloc(1, sizeof *b + n);
    if (!b) {
        a->failed = 1;
        return NULL;
    }
    b->next = a->head;
    a->head = b;
    return b->data;
}

static void arena_free(arena *a)
{
    while (a->head) {
        arena_block *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

/* --- building messages by field name ------------------------------------ */

static const ProtobufCFieldDescriptor *field(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (!f) {
        /* A typo in this file, not bad input: stop loudly. */
        fprintf(stderr, "conf_fixtures: %s has no field %s\n", m->descriptor->name, name);
        abort();
    }
    return f;
}

#define AT(m, f, type) (*(type *)((char *)(m) + (f)->offset))

static ProtobufCMessage *new_msg(arena *a, const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = arena_alloc(a, d->sizeof_message);
    if (m)
        d->message_init(m);
    return m;
}

static void set_str(ProtobufCMessage *m, const char *name, const char *v)
{
    AT(m, field(m, name), const char *) = v;
}

static void set_int(ProtobufCMessage *m, const char *name, int64_t v)
{
    const ProtobufCFieldDescriptor *f = field(m, name);
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64: AT(m, f, int64_t) = v; break;
    case PROTOBUF_C_TYPE_UINT64: AT(m, f, uint64_t) = (uint64_t)v; break;
    case PROTOBUF_C_TYPE_BOOL: AT(m, f, protobuf_c_boolean) = v != 0; break;
    case PROTOBUF_C_TYPE_ENUM: AT(m, f, int) = (int)v; break;
    default: AT(m, f, int32_t) = (int32_t)v; break;
    }
}

static void set_float(ProtobufCMessage *m, const char *name, float v)
{
    AT(m, field(m, name), float) = v;
}

static ProtobufCMessage *set_msg(arena *a, ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f = field(m, name);
    ProtobufCMessage *sub = new_msg(a, f->descriptor);
    AT(m, f, ProtobufCMessage *) = sub;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
    return sub;
}

/* NULL-terminated list of strings -> repeated string field. */
static void set_strs(arena *a, ProtobufCMessage *m, const char *name, const char *const *v)
{
    const ProtobufCFieldDescriptor *f = field(m, name);
    size_t n = 0;
    while (v[n])
        n++;
    const char **arr = arena_alloc(a, n * sizeof *arr);
    if (!arr)
        return;
    memcpy(arr, v, n * sizeof *arr);
    AT(m, f, const char **) = arr;
    *(size_t *)((char *)m + f->quantifier_offset) = n;
}

static void set_ints(arena *a, ProtobufCMessage *m, const char *name, const int32_t *v, size_t n)
{
    const ProtobufCFieldDescriptor *f = field(m, name);
    int32_t *arr = arena_alloc(a, n * sizeof *arr);
    if (!arr)
        return;
    memcpy(arr, v, n * sizeof *arr);
    AT(m, f, int32_t *) = arr;
    *(size_t *)((char *)m + f->quantifier_offset) = n;
}

/* NULL-terminated key, value, key, value... list -> map field. Values are
 * strings, or "true"/"false" for a map<string, bool>. */
static void set_map(arena *a, ProtobufCMessage *m, const char *name, const char *const *kv)
{
    const ProtobufCFieldDescriptor *f = field(m, name);
    size_t n = 0;
    while (kv[2 * n])
        n++;
    ProtobufCMessage **arr = arena_alloc(a, n * sizeof *arr);
    if (!arr)
        return;
    for (size_t i = 0; i < n; i++) {
        ProtobufCMessage *e = new_msg(a, f->descriptor);
        if (!e)
            return;
        set_str(e, "key", kv[2 * i]);
        if (field(e, "value")->type == PROTOBUF_C_TYPE_BOOL)
            set_int(e, "value", strcmp(kv[2 * i + 1], "true") == 0);
        else
            set_str(e, "value", kv[2 * i + 1]);
        arr[i] = e;
    }
    AT(m, f, ProtobufCMessage **) = arr;
    *(size_t *)((char *)m + f->quantifier_offset) = n;
}

#define STRS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The common envelope: trace_id, sender_id, created_at, protocol_version. */
static cap_packet *envelope(arena *a, const char *trace_id, const char *sender_id)
{
    cap_packet *p = (cap_packet *)new_msg(a, CAP_PACKET_DESC);
    if (!p)
        return NULL;
    set_str(&p->base, "trace_id", trace_id);
    set_str(&p->base, "sender_id", sender_id);
    ProtobufCMessage *ts = set_msg(a, &p->base, "created_at");
    if (ts)
        set_int(ts, "seconds", FIXTURE_CREATED_AT);
    set_int(&p->base, "protocol_version", CAP_PROTOCOL_VERSION);
    return p;
}

/* --- the valid fixtures (cap-tck 10, one function each) ------------------ */

static void job_request_body(arena *a, ProtobufCMessage *r)
{
    set_str(r, "job_id", "job-req-1");
    set_str(r, "topic", "job.tools");
    set_int(r, "priority", CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_INTERACTIVE);
    set_str(r, "context_ptr", "redis://ctx:job-req-1");
    set_str(r, "adapter_id", "adapter-default");
    set_map(a, r, "env", STRS("region", "us-east-1", "sandbox", "true"));
    set_str(r, "parent_job_id", "parent-0");
    set_str(r, "workflow_id", "wf-1");
    set_int(r, "step_index", 2);
    set_str(r, "memory_id", "mem-abc");
    ProtobufCMessage *h = set_msg(a, r, "context_hints");
    set_int(h, "max_input_tokens", 2048);
    set_int(h, "allow_summarization", 1);
    set_int(h, "allow_retrieval", 1);
    set_strs(a, h, "tags", STRS("repo", "docs"));
    ProtobufCMessage *b = set_msg(a, r, "budget");
    set_int(b, "max_input_tokens", 4000);
    set_int(b, "max_output_tokens", 1000);
    set_int(b, "max_total_tokens", 5000);
    set_int(b, "deadline_ms", 60000);
    set_str(r, "tenant_id", "tenant-1");
    set_str(r, "principal_id", "user-99");
    set_map(a, r, "labels", STRS("env", "prod", "team", "platform"));
    ProtobufCMessage *m = set_msg(a, r, "meta");
    set_str(m, "tenant_id", "tenant-1");
    set_str(m, "actor_id", "user-99");
    set_int(m, "actor_type", CORDUM__AGENT__V1__ACTOR_TYPE__ACTOR_TYPE_HUMAN);
    set_str(m, "idempotency_key", "idem-123");
    set_str(m, "capability", "repo.review");
    set_strs(a, m, "risk_tags", STRS("code", "secrets"));
    set_strs(a, m, "requires", STRS("git", "network-egress"));
    set_str(m, "pack_id", "pack-1");
    set_map(a, m, "labels", STRS("source", "conformance"));

    ProtobufCMessage *c = set_msg(a, r, "compensation");
    set_str(c, "topic", "job.rollback");
    set_str(c, "context_ptr", "redis://ctx:job-req-1:rollback");
    set_int(c, "priority", CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_BATCH);
    set_str(c, "adapter_id", "adapter-rollback");
    set_map(a, c, "env", STRS("reason", "failure"));
    set_str(c, "memory_id", "mem-rollback");
    ProtobufCMessage *ch = set_msg(a, c, "context_hints");
    set_int(ch, "max_input_tokens", 512);
    set_strs(a, ch, "tags", STRS("audit"));
    ProtobufCMessage *cb = set_msg(a, c, "budget");
    set_int(cb, "max_total_tokens", 1000);
    set_int(cb, "deadline_ms", 120000);
    set_str(c, "tenant_id", "tenant-1");
    set_str(c, "principal_id", "svc-1");
    set_map(a, c, "labels", STRS("rollback", "true"));
    ProtobufCMessage *cm = set_msg(a, c, "meta");
    set_str(cm, "tenant_id", "tenant-1");
    set_str(cm, "actor_id", "svc-1");
    set_int(cm, "actor_type", CORDUM__AGENT__V1__ACTOR_TYPE__ACTOR_TYPE_SERVICE);
    set_str(cm, "idempotency_key", "idem-rollback");
    set_str(cm, "capability", "rollback");
    set_strs(a, cm, "risk_tags", STRS("write"));
    set_strs(a, cm, "requires", STRS("git"));
    set_str(cm, "pack_id", "pack-rollback");
}

static cap_packet *fx_job_request(arena *a)
{
    cap_packet *p = envelope(a, "trace-job-request", "client-1");
    job_request_body(a, set_msg(a, &p->base, "job_request"));
    return p;
}

static cap_packet *fx_job_result(arena *a)
{
    cap_packet *p = envelope(a, "trace-job-result", "worker-1");
    ProtobufCMessage *r = set_msg(a, &p->base, "job_result");
    set_str(r, "job_id", "job-res-1");
    set_int(r, "status", CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_RETRYABLE);
    set_str(r, "result_ptr", "redis://res:job-res-1");
    set_str(r, "worker_id", "worker-1");
    set_int(r, "execution_ms", 1234);
    set_str(r, "error_code", "E_TEMP");
    set_str(r, "error_message", "temporary failure");
    set_strs(a, r, "artifact_ptrs", STRS("redis://art:log-1", "redis://art:diff-2"));
    return p;
}

static cap_packet *fx_heartbeat(arena *a)
{
    cap_packet *p = envelope(a, "trace-heartbeat", "worker-1");
    ProtobufCMessage *h = set_msg(a, &p->base, "heartbeat");
    set_str(h, "worker_id", "worker-1");
    set_str(h, "region", "us-east-1");
    set_str(h, "type", "cpu-tools");
    set_float(h, "cpu_load", 33.5f);
    set_float(h, "gpu_utilization", 0.0f);
    set_int(h, "active_jobs", 2);
    set_strs(a, h, "capabilities", STRS("git", "docker"));
    set_str(h, "pool", "job.tools");
    set_int(h, "max_parallel_jobs", 4);
    set_map(a, h, "labels", STRS("env", "prod", "zone", "us-east-1a"));
    set_float(h, "memory_load", 45.2f);
    set_int(h, "progress_pct", 60);
    set_str(h, "last_memo", "step-3");
    set_str(h, "auth_token", "attest-worker-1");
    return p;
}

static cap_packet *fx_job_progress(arena *a)
{
    cap_packet *p = envelope(a, "trace-progress", "worker-1");
    ProtobufCMessage *g = set_msg(a, &p->base, "job_progress");
    set_str(g, "job_id", "job-prog-1");
    set_str(g, "step_id", "step-2");
    set_int(g, "percent", 50);
    set_str(g, "message", "halfway");
    set_str(g, "result_ptr", "redis://res:job-prog-1");
    set_strs(a, g, "artifact_ptrs", STRS("redis://art:partial-1"));
    set_int(g, "status", CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING);
    return p;
}

static cap_packet *fx_job_cancel(arena *a)
{
    cap_packet *p = envelope(a, "trace-cancel", "scheduler-1");
    ProtobufCMessage *c = set_msg(a, &p->base, "job_cancel");
    set_str(c, "job_id", "job-cancel-1");
    set_str(c, "reason", "user_request");
    set_str(c, "requested_by", "user-7");
    return p;
}

static cap_packet *fx_alert(arena *a)
{
    cap_packet *p = envelope(a, "trace-alert", "scheduler-1");
    ProtobufCMessage *al = set_msg(a, &p->base, "alert");
    set_str(al, "level", "WARN");
    set_str(al, "message", "high queue depth");
    set_str(al, "component", "scheduler");
    set_str(al, "code", "QUEUE_DEPTH");
    return p;
}

static cap_packet *fx_alert_enhanced(arena *a)
{
    cap_packet *p = envelope(a, "trace-alert-enhanced", "scheduler-1");
    ProtobufCMessage *al = set_msg(a, &p->base, "alert");
    set_str(al, "level", "CRITICAL");
    set_str(al, "message", "invalid signature from worker");
    set_str(al, "component", "scheduler");
    set_str(al, "code", "SIGNATURE_INVALID");
    set_int(al, "severity", CORDUM__AGENT__V1__ALERT_SEVERITY__ALERT_SEVERITY_CRITICAL);
    set_int(al, "error_code_enum",
            CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_PROTOCOL_SIGNATURE_INVALID);
    set_str(al, "source_component", "scheduler-1");
    set_map(a, al, "details", STRS("sender", "worker-bad", "subject", "sys.job.result"));
    set_str(al, "trace_id", "trace-offending-packet");
    return p;
}

static cap_packet *fx_handshake(arena *a)
{
    cap_packet *p = envelope(a, "trace-handshake", "worker-1");
    ProtobufCMessage *h = set_msg(a, &p->base, "handshake");
    set_str(h, "component_id", "worker-1");
    set_int(h, "role", CORDUM__AGENT__V1__COMPONENT_ROLE__COMPONENT_ROLE_WORKER);
    set_ints(a, h, "supported_versions", (const int32_t[]){1}, 1);
    set_map(a, h, "capabilities",
            STRS("signatures", "true", "progress", "true", "cancel", "true", "compensation",
                 "false"));
    set_str(h, "sdk_version", "2.0.19");
    set_strs(a, h, "ready_topics", STRS("job.tools", "job.tools.bulk"));
    return p;
}

typedef struct {
    const char *stem;
    cap_packet *(*build)(arena *);
} valid_def;

static const valid_def VALID[] = {
    {"buspacket_job_request", fx_job_request},
    {"buspacket_job_result", fx_job_result},
    {"buspacket_heartbeat", fx_heartbeat},
    {"buspacket_job_progress", fx_job_progress},
    {"buspacket_job_cancel", fx_job_cancel},
    {"buspacket_alert", fx_alert},
    {"buspacket_alert_enhanced", fx_alert_enhanced},
    {"buspacket_handshake", fx_handshake},
};
#define N_VALID (sizeof VALID / sizeof VALID[0])

/* --- raw bytes for the malformed fixtures -------------------------------- */

typedef cap_buf bytes_buf;

static void put_raw(bytes_buf *b, const void *data, size_t n)
{
    cap_buf_append(b, data, n);
}

static void put_varint(bytes_buf *b, uint64_t v)
{
    uint8_t tmp[CAP_VARINT_MAX];
    put_raw(b, tmp, cap_varint_write(tmp, v));
}

static void put_tag(bytes_buf *b, uint32_t field, unsigned wt)
{
    put_varint(b, ((uint64_t)field << 3) | wt);
}

static void put_len_field(bytes_buf *b, uint32_t field, const void *data, size_t n)
{
    put_tag(b, field, 2);
    put_varint(b, n);
    put_raw(b, data, n);
}

static void put_message_field(bytes_buf *b, uint32_t field, const ProtobufCMessage *m)
{
    uint8_t *enc;
    size_t n;
    if (cap_encode(m, &enc, &n) != CAP_OK) {
        b->failed = 1;
        return;
    }
    put_len_field(b, field, enc, n);
    free(enc);
}

/* Fields 1-3 of the malformed fixtures' envelope (version added by callers,
 * since some cases get it wrong on purpose). */
static void put_envelope_head(bytes_buf *b, const char *trace_id)
{
    static const uint8_t created_at[] = {0x08, 0xa5, 0xb2, 0xcf, 0xac, 0x06}; /* seconds 1704164645 */
    put_len_field(b, CAP_FIELD_TRACE_ID, trace_id, strlen(trace_id));
    put_len_field(b, CAP_FIELD_SENDER_ID, "fuzz-peer", 9);
    put_len_field(b, CAP_FIELD_CREATED_AT, created_at, sizeof created_at);
}

static void put_version(bytes_buf *b, uint64_t v)
{
    put_tag(b, CAP_FIELD_PROTOCOL_VERSION, 0);
    put_varint(b, v);
}

static ProtobufCMessage *small_cancel(arena *a)
{
    ProtobufCMessage *c = new_msg(a, &cordum__agent__v1__job_cancel__descriptor);
    if (c) {
        set_str(c, "job_id", "job-malformed-1");
        set_str(c, "reason", "conformance");
    }
    return c;
}

/* A valid packet: envelope + a job_cancel; the base most cases spoil. */
static void put_valid_cancel_packet(arena *a, bytes_buf *b, const char *trace_id)
{
    put_envelope_head(b, trace_id);
    put_version(b, CAP_PROTOCOL_VERSION);
    put_message_field(b, 16, small_cancel(a));
}

static void mf_truncated(arena *a, bytes_buf *b)
{
    /* The job_request fixture cut in half: the cut lands inside the
     * job_request payload, whose length prefix then runs past the end. */
    cap_packet *p = fx_job_request(a);
    uint8_t *enc;
    size_t n;
    if (a->failed || cap_encode(&p->base, &enc, &n) != CAP_OK) {
        b->failed = 1;
        return;
    }
    put_raw(b, enc, n / 2);
    free(enc);
}

static void mf_overlong(arena *a, bytes_buf *b)
{
    /* A valid packet padded past the 1 MiB bound with an unknown field. */
    put_valid_cancel_packet(a, b, "trace-overlong-wire");
    size_t pad = (1u << 20) + 1;
    uint8_t *zeros = calloc(1, pad);
    if (!zeros) {
        b->failed = 1;
        return;
    }
    put_len_field(b, 99, zeros, pad);
    free(zeros);
}

static void mf_non_minimal(arena *a, bytes_buf *b)
{
    /* protocol_version = 1 written in two bytes (0x81 0x00). */
    static const uint8_t two_byte_one[] = {0x81, 0x00};
    put_envelope_head(b, "trace-non-minimal-encoding");
    put_tag(b, CAP_FIELD_PROTOCOL_VERSION, 0);
    put_raw(b, two_byte_one, sizeof two_byte_one);
    put_message_field(b, 16, small_cancel(a));
}

static void mf_duplicate_oneof(arena *a, bytes_buf *b)
{
    put_valid_cancel_packet(a, b, "trace-duplicate-oneof");
    ProtobufCMessage *r = new_msg(a, &cordum__agent__v1__job_result__descriptor);
    if (!r)
        return;
    set_str(r, "job_id", "job-malformed-1");
    set_int(r, "status", CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED);
    set_str(r, "worker_id", "worker-1");
    put_message_field(b, 11, r);
}

static void mf_empty_envelope(arena *a, bytes_buf *b)
{
    (void)a;
    put_envelope_head(b, "trace-empty-envelope");
    put_version(b, CAP_PROTOCOL_VERSION);
}

static void mf_bad_version(arena *a, bytes_buf *b)
{
    put_envelope_head(b, "trace-unsupported-protocol-version");
    put_version(b, 2);
    put_message_field(b, 16, small_cancel(a));
}

static void mf_unknown_payload(arena *a, bytes_buf *b)
{
    /* Field 23: reserved for a future payload, unknown to a v1 consumer. */
    put_envelope_head(b, "trace-unknown-payload");
    put_version(b, CAP_PROTOCOL_VERSION);
    put_message_field(b, 23, small_cancel(a));
}

static void mf_oversize_string(arena *a, bytes_buf *b)
{
    size_t n = (64u << 10) + 1;
    char *reason = arena_alloc(a, n + 1);
    ProtobufCMessage *c = small_cancel(a);
    if (!reason || !c)
        return;
    memset(reason, 'r', n);
    set_str(c, "reason", reason);
    put_envelope_head(b, "trace-oversize-string");
    put_version(b, CAP_PROTOCOL_VERSION);
    put_message_field(b, 16, c);
}

static void mf_oversize_map(arena *a, bytes_buf *b)
{
    enum { N = 1001 };
    const char **kv = arena_alloc(a, (2 * N + 1) * sizeof *kv);
    char *keys = arena_alloc(a, N * 16);
    ProtobufCMessage *r = new_msg(a, &cordum__agent__v1__job_request__descriptor);
    if (!kv || !keys || !r)
        return;
    for (int i = 0; i < N; i++) {
        snprintf(keys + 16 * i, 16, "k%04d", i % 10000);
        kv[2 * i] = keys + 16 * i;
        kv[2 * i + 1] = "v";
    }
    kv[2 * N] = NULL;
    set_str(r, "job_id", "job-oversize-map");
    set_str(r, "topic", "job.tools");
    set_map(a, r, "env", kv);
    put_envelope_head(b, "trace-oversize-map");
    put_version(b, CAP_PROTOCOL_VERSION);
    put_message_field(b, 10, r);
}

static void mf_oversize_repeated(arena *a, bytes_buf *b)
{
    enum { N = 1001 };
    const char **v = arena_alloc(a, (N + 1) * sizeof *v);
    ProtobufCMessage *h = new_msg(a, &cordum__agent__v1__heartbeat__descriptor);
    if (!v || !h)
        return;
    for (int i = 0; i < N; i++)
        v[i] = "cap";
    v[N] = NULL;
    set_str(h, "worker_id", "worker-oversize");
    set_strs(a, h, "capabilities", v);
    put_envelope_head(b, "trace-oversize-repeated");
    put_version(b, CAP_PROTOCOL_VERSION);
    put_message_field(b, 12, h);
}

typedef struct {
    const char *tck_case; /* upstream core-malformed id */
    const char *file;
    int expect_err;
    void (*build)(arena *, bytes_buf *);
} malformed_def;

static const malformed_def MALFORMED[] = {
    {"malformed/truncated-wire", "truncated-wire", CAP_EMALFORMED, mf_truncated},
    {"malformed/overlong-wire", "overlong-wire", CAP_EMALFORMED, mf_overlong},
    {"malformed/non-minimal-encoding", "non-minimal-encoding", CAP_EMALFORMED, mf_non_minimal},
    {"malformed/duplicate-oneof", "duplicate-oneof", CAP_EMALFORMED, mf_duplicate_oneof},
    {"malformed/empty-envelope", "empty-envelope", CAP_EMALFORMED, mf_empty_envelope},
    {"malformed/unsupported-protocol-version", "unsupported-protocol-version", CAP_EVERSION,
     mf_bad_version},
    {"malformed/unknown-payload", "unknown-payload", CAP_EUNKNOWN_PAYLOAD, mf_unknown_payload},
    {"malformed/oversize-string", "oversize-string", CAP_EMALFORMED, mf_oversize_string},
    {"malformed/oversize-map", "oversize-map", CAP_EMALFORMED, mf_oversize_map},
    {"malformed/oversize-repeated", "oversize-repeated", CAP_EMALFORMED, mf_oversize_repeated},
};
#define N_MALFORMED (sizeof MALFORMED / sizeof MALFORMED[0])

/* --- assembling the set ------------------------------------------------- */

static int sign_fixture(arena *a, cap_packet *p, const cap_key *key, cap_diag *diag)
{
    uint8_t digest[32];
    uint8_t *der = arena_alloc(a, CAP_SIG_MAX_DER);
    size_t der_len = 0;
    if (!der)
        return CAP_ENOMEM;
    int rc = cap_packet_signing_digest(p, digest);
    if (!rc)
        rc = cap_ecdsa_sign_digest(key, digest, der, &der_len);
    if (rc)
        return cap_diag_set(diag, rc, -1, "BusPacket.signature", "cannot sign fixture");
    p->signature.data = der;
    p->signature.len = der_len;
    return CAP_OK;
}

static conf_fixture *add(conf_fixture *set, size_t *n, conf_fixture_kind kind, const char *name,
                         uint8_t *bytes, size_t len)
{
    conf_fixture *f = &set[(*n)++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->kind = kind;
    f->bytes = bytes;
    f->len = len;
    return f;
}

static int build_valid(conf_fixture *set, size_t *n, const cap_key *key, cap_diag *diag)
{
    for (size_t i = 0; i < N_VALID; i++) {
        arena a = {0};
        cap_packet *p = VALID[i].build(&a);
        int rc = a.failed ? CAP_ENOMEM : sign_fixture(&a, p, key, diag);
        uint8_t *bin = NULL;
        size_t bin_len = 0;
        char *json = NULL;
        if (!rc)
            rc = cap_encode(&p->base, &bin, &bin_len);
        if (!rc)
            rc = cap_json_from_message(&p->base, 1, &json);
        arena_free(&a);
        if (rc) {
            free(bin);
            return diag && diag->err ? rc : cap_diag_set(diag, rc, -1, VALID[i].stem, "cannot build");
        }
        char name[96];
        snprintf(name, sizeof name, "%s.bin", VALID[i].stem);
        add(set, n, CONF_FIXTURE_PACKET, name, bin, bin_len);
        snprintf(name, sizeof name, "%s.json", VALID[i].stem);
        add(set, n, CONF_FIXTURE_JSON, name, (uint8_t *)json, strlen(json));
    }
    return CAP_OK;
}

static int build_malformed(conf_fixture *set, size_t *n, cap_diag *diag)
{
    bytes_buf manifest = {0};
    static const char head[] =
        "{\n  \"version\": 1,\n"
        "  \"about\": \"One packet per case of the upstream core-malformed suite, with the error "
        "the strict decoder returns under the default bounds.\",\n"
        "  \"bounds\": {\"max_packet\": 1048576, \"max_string\": 65536, \"max_entries\": 1000},\n"
        "  \"cases\": [\n";
    put_raw(&manifest, head, sizeof head - 1);
    for (size_t i = 0; i < N_MALFORMED; i++) {
        arena a = {0};
        bytes_buf b = {0};
        MALFORMED[i].build(&a, &b);
        arena_free(&a);
        if (b.failed || a.failed) {
            free(b.data);
            free(manifest.data);
            return cap_diag_set(diag, CAP_ENOMEM, -1, MALFORMED[i].file, "cannot build");
        }
        char name[96], line[320];
        snprintf(name, sizeof name, "malformed/%s.bin", MALFORMED[i].file);
        conf_fixture *f = add(set, n, CONF_FIXTURE_MALFORMED, name, b.data, b.len);
        f->expect_err = MALFORMED[i].expect_err;
        f->tck_case = MALFORMED[i].tck_case;
        int len = snprintf(line, sizeof line,
                           "    {\"tck_case\": \"%s\", \"file\": \"%s\", \"error_code\": %d, "
                           "\"error\": \"%s\"}%s\n",
                           f->tck_case, name, cap_err_protocol_code(f->expect_err),
                           cap_err_protocol_name(f->expect_err), i + 1 < N_MALFORMED ? "," : "");
        put_raw(&manifest, line, (size_t)len);
    }
    put_raw(&manifest, "  ]\n}\n", 6);
    if (manifest.failed) {
        free(manifest.data);
        return cap_diag_set(diag, CAP_ENOMEM, -1, "malformed/manifest.json", "cannot build");
    }
    add(set, n, CONF_FIXTURE_MANIFEST, "malformed/manifest.json", manifest.data, manifest.len);
    return CAP_OK;
}

int conf_fixtures_build(conf_fixture **out, size_t *n, cap_diag *diag)
{
    size_t cap = 2 * N_VALID + N_MALFORMED + 2;
    conf_fixture *set = calloc(cap, sizeof *set);
    cap_key *key = NULL;
    char *pem = NULL;
    *out = NULL;
    *n = 0;
    if (!set)
        return cap_diag_set(diag, CAP_ENOMEM, -1, "fixtures", "out of memory");
    int rc = cap_key_from_scalar(conf_fixture_key_scalar, &key);
    if (!rc)
        rc = cap_key_public_pem(key, &pem);
    if (!rc) {
        add(set, n, CONF_FIXTURE_KEY, "public_key.pem", (uint8_t *)pem, strlen(pem));
        rc = build_valid(set, n, key, diag);
    }
    if (!rc)
        rc = build_malformed(set, n, diag);
    cap_key_free(key);
    if (rc) {
        if (!diag || !diag->err)
            cap_diag_set(diag, rc, -1, "fixtures", "cannot build the fixture key");
        conf_fixtures_free(set, *n);
        *n = 0;
        return rc;
    }
    *out = set;
    return CAP_OK;
}

void conf_fixtures_free(conf_fixture *f, size_t n)
{
    if (!f)
        return;
    for (size_t i = 0; i < n; i++)
        free(f[i].bytes);
    free(f);
}
