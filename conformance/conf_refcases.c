/* The reference adapter's case logic: drive a reference component, observe
 * the outcome, compare it with the case's expectation. */
#include "conf_refcases.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_error.h"
#include "cap_schema.h"
#include "ref_bugs.h"
#include "ref_effect.h"
#include "ref_jobstate.h"
#include "ref_policy.h"
#include "ref_registry.h"
#include "ref_safety.h"
#include "ref_scheduler.h"
#include "ref_worker.h"

#define SEC INT64_C(1000000000)
#define T0 (INT64_C(1704164645) * SEC)
#define REF_WORKER_ID "wrk-1" /* the reference worker's id (cap-tck 4.1) */
#define REF_POOL "tck"
#define MAX_LIST 64

typedef conf_ref_answer answer;

/* ---- answer helpers ---- */

static void ev(answer *a, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void ev(answer *a, const char *key, const char *fmt, ...)
{
    if (a->n_ev == CONF_REF_MAX_EVIDENCE)
        return;
    conf_ref_ev *e = &a->ev[a->n_ev++];
    snprintf(e->key, sizeof e->key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->value, sizeof e->value, fmt, ap);
    va_end(ap);
}

static void set(answer *a, conf_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set(answer *a, conf_status st, const char *fmt, ...)
{
    a->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->detail, sizeof a->detail, fmt, ap);
    va_end(ap);
}

static const char *param(const conf_kv *p, size_t n, const char *key)
{
    return conf_kv_get(p, n, key);
}

/* Grades a computed outcome word against params.expect (default dflt). */
static void grade(answer *a, const conf_kv *p, size_t n, const char *outcome, const char *dflt, const char *rule)
{
    const char *expect = param(p, n, "expect");
    if (!expect)
        expect = dflt;
    ev(a, "outcome", "%s", outcome);
    if (rule && *rule)
        ev(a, "rule", "%s", rule);
    if (strcmp(outcome, expect) == 0)
        a->status = CONF_ST_PASS;
    else
        set(a, CONF_ST_FAIL, "the reference computed \"%s\", the case expects \"%s\"%s%s", outcome, expect,
            rule && *rule ? " (" : "", rule && *rule ? rule : "");
    if (a->status == CONF_ST_FAIL && rule && *rule) {
        size_t l = strlen(a->detail);
        snprintf(a->detail + l, sizeof a->detail - l, ")");
    }
}

/* Parses "1,2,3" into ints (> 0); -1 on a bad entry or too many. */
static int parse_ints(const char *csv, int32_t *out, size_t cap, size_t *n)
{
    *n = 0;
    if (!csv || !*csv)
        return 0;
    const char *p = csv;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > INT32_MAX || *n == cap)
            return -1;
        out[(*n)++] = (int32_t)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return 0;
}

/* Splits "a,b" into at most cap pointers into buf (a copy of csv). */
static size_t split_csv(const char *csv, char *buf, size_t bufn, char **out, size_t cap)
{
    size_t k = 0;
    if (!csv || !*csv)
        return 0;
    snprintf(buf, bufn, "%s", csv);
    char *p = buf;
    while (p && k < cap) {
        char *c = strchr(p, ',');
        if (c)
            *c = '\0';
        if (*p)
            out[k++] = p;
        p = c ? c + 1 : NULL;
    }
    return k;
}

/* ---- packets (stack-built, only read by the components) ---- */

typedef struct {
    cap_packet pkt;
    Google__Protobuf__Timestamp ts;
    Cordum__Agent__V1__JobRequest req;
    Cordum__Agent__V1__JobCancel cancel;
    Cordum__Agent__V1__DispatchIdentity dsp;
} pkt_store;

static void envelope(pkt_store *s, const char *trace)
{
    cordum__agent__v1__bus_packet__init(&s->pkt);
    google__protobuf__timestamp__init(&s->ts);
    s->ts.seconds = T0 / SEC;
    s->pkt.trace_id = (char *)trace;
    s->pkt.sender_id = (char *)"capsim-tck";
    s->pkt.created_at = &s->ts;
    s->pkt.protocol_version = CAP_PROTOCOL_VERSION;
}

static void set_identity(pkt_store *s, const char *dsp, uint64_t attempt, const char *worker)
{
    cordum__agent__v1__dispatch_identity__init(&s->dsp);
    s->dsp.dispatch_id = (char *)dsp;
    s->dsp.attempt = attempt;
    s->dsp.assigned_worker_id = (char *)worker;
}

static cap_packet *mk_request(pkt_store *s, const char *job, const char *dsp, uint64_t attempt,
                              const char *worker)
{
    envelope(s, "trace-tck-dispatch");
    cordum__agent__v1__job_request__init(&s->req);
    s->req.job_id = (char *)job;
    s->req.topic = (char *)"job." REF_POOL;
    if (dsp) {
        set_identity(s, dsp, attempt, worker);
        s->req.dispatch = &s->dsp;
    }
    s->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    s->pkt.job_request = &s->req;
    return &s->pkt;
}

static cap_packet *mk_cancel(pkt_store *s, const char *job, const char *dsp, uint64_t attempt,
                             const char *worker)
{
    envelope(s, "trace-tck-cancel");
    cordum__agent__v1__job_cancel__init(&s->cancel);
    s->cancel.job_id = (char *)job;
    s->cancel.reason = (char *)"tck cancel";
    if (dsp) {
        set_identity(s, dsp, attempt, worker);
        s->cancel.dispatch = &s->dsp;
    }
    s->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL;
    s->pkt.job_cancel = &s->cancel;
    return &s->pkt;
}

/* ---- a reference worker harness ---- */

typedef struct {
    ref_work_outcome outcome;
    int64_t service_ns;
} work_plan;

static void plan_handler(void *ctx, const Cordum__Agent__V1__JobRequest *req, int64_t now, ref_work *out)
{
    (void)req;
    (void)now;
    const work_plan *w = ctx;
    out->outcome = w->outcome;
    out->text = w->outcome == REF_WORK_SUCCEEDED ? "file:///tck/out" : "tck";
    out->service_ns = w->service_ns;
}

typedef struct {
    work_plan plan;
    ref_worker *w;
    ref_effects fx;
} wharness;

static int wh_init(wharness *h, ref_work_outcome outcome, answer *a)
{
    memset(h, 0, sizeof *h);
    h->plan.outcome = outcome;
    h->plan.service_ns = SEC;
    ref_worker_config c = {0};
    c.worker_id = REF_WORKER_ID;
    c.pool = REF_POOL;
    c.max_parallel_jobs = 4;
    c.handler = plan_handler;
    c.handler_ctx = &h->plan;
    int rc = ref_worker_init(&c, &h->w);
    if (rc == CAP_OK)
        rc = ref_effects_init(&h->fx, 0);
    if (rc) {
        ref_worker_free(h->w);
        set(a, CONF_ST_ERROR, "cannot start the reference worker: %s", cap_strerror(rc));
        return -1;
    }
    return 0;
}

static void wh_free(wharness *h)
{
    ref_effects_free(&h->fx);
    ref_worker_free(h->w);
}

static int wh_packet(wharness *h, const char *subject, const cap_packet *p, int64_t now, answer *a)
{
    ref_effects_clear(&h->fx);
    int rc = ref_worker_on_packet(h->w, subject, p, now, &h->fx);
    if (rc) {
        set(a, CONF_ST_ERROR, "reference worker failed on %s: %s", subject, cap_strerror(rc));
        return -1;
    }
    return 0;
}

/* The JobResult published in the current effects, or NULL. */
static const Cordum__Agent__V1__JobResult *wh_result(const wharness *h, size_t *count)
{
    const Cordum__Agent__V1__JobResult *r = NULL;
    size_t k = 0;
    for (size_t i = 0; i < ref_effects_count(&h->fx); i++) {
        const ref_effect *e = ref_effects_at(&h->fx, i);
        if (e->kind == REF_EFFECT_PUBLISH && e->packet && strcmp(e->subject, REF_WORKER_SUBJECT_RESULT) == 0 &&
            e->packet->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT) {
            if (!r)
                r = e->packet->job_result;
            k++;
        }
    }
    if (count)
        *count = k;
    return r;
}

/* The last journal record in the current effects ("" if none). */
static const char *wh_journal(const wharness *h)
{
    const char *j = "";
    for (size_t i = 0; i < ref_effects_count(&h->fx); i++) {
        const ref_effect *e = ref_effects_at(&h->fx, i);
        if (e->kind == REF_EFFECT_JOURNAL && e->record)
            j = e->record;
    }
    return j;
}

/* Fires every job completion timer set in the current effects. */
static int wh_complete(wharness *h, answer *a)
{
    uint64_t ids[8];
    int64_t at[8];
    size_t n = 0;
    for (size_t i = 0; i < ref_effects_count(&h->fx) && n < 8; i++) {
        const ref_effect *e = ref_effects_at(&h->fx, i);
        if (e->kind == REF_EFFECT_TIMER_SET && e->timer_id != REF_WORKER_TIMER_HEARTBEAT) {
            ids[n] = e->timer_id;
            at[n++] = e->at;
        }
    }
    ref_effects_clear(&h->fx);
    for (size_t i = 0; i < n; i++) {
        int rc = ref_worker_on_timer(h->w, ids[i], at[i], &h->fx);
        if (rc) {
            set(a, CONF_ST_ERROR, "reference worker failed on its timer: %s", cap_strerror(rc));
            return -1;
        }
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

/* ---- family: state order (lifecycle, cancellation) ---- */

static void fam_order(const char *id, const conf_kv *p, size_t n, answer *a)
{
    (void)id;
    const char *from = param(p, n, "from"), *to = param(p, n, "to");
    if (!from || !to) {
        set(a, CONF_ST_ERROR, "params from and to are required");
        return;
    }
    int f = ref_jobstate_from_name(from), t = ref_jobstate_from_name(to);
    if (f < 0 || t < 0) {
        ev(a, "transition", "unknown-state");
        grade(a, p, n, "reject", "accept", "unknown job state");
        return;
    }
    ref_js_outcome o = ref_jobstate_check(f, t);
    ev(a, "transition", "%s", ref_js_outcome_name(o));
    ev(a, "from", "%s", ref_jobstate_name(f));
    ev(a, "to", "%s", ref_jobstate_name(t));
    grade(a, p, n, ref_js_outcome_tck(o), "accept", ref_jobstate_rule(f, t));
}

/* A running job on the reference worker, cancelled by a JobCancel without
 * a DispatchIdentity (core profile): the worker must publish CANCELLED. */
static void fam_worker_cancel(const char *id, const conf_kv *p, size_t n, answer *a)
{
    (void)id;
    wharness h;
    if (wh_init(&h, REF_WORK_HANG, a) < 0)
        return;
    pkt_store s;
    const char *job = "job-tck-cancel";
    if (wh_packet(&h, "job." REF_POOL, mk_request(&s, job, "dsp-1", 1, REF_WORKER_ID), T0, a) < 0)
        goto out;
    int state = 0;
    ref_worker_active_attempt(h.w, job, &state);
    if (ref_worker_handler_calls(h.w) != 1 || state != REF_JOB_RUNNING) {
        set(a, CONF_ST_ERROR, "the dispatch did not start the job (state %s)", ref_jobstate_name(state));
        goto out;
    }
    if (wh_packet(&h, REF_WORKER_SUBJECT_CANCEL, mk_cancel(&s, job, NULL, 0, NULL), T0 + SEC, a) < 0)
        goto out;
    const Cordum__Agent__V1__JobResult *r = wh_result(&h, NULL);
    ev(a, "observedFrom", "%s", ref_jobstate_name(state));
    if (!r) {
        ev(a, "journal", "%.300s", wh_journal(&h));
        grade(a, p, n, "no-cancel", "accept", "buspacket.proto#JobCancel: no JobResult after the cancel");
        goto out;
    }
    ev(a, "terminal", "%s", ref_jobstate_name((int)r->status));
    const char *want_from = param(p, n, "from"), *want_to = param(p, n, "to");
    if ((want_from && ref_jobstate_from_name(want_from) != state) ||
        (want_to && ref_jobstate_from_name(want_to) != (int)r->status)) {
        grade(a, p, n, "other-transition", "accept", "the worker's observed transition differs from the case's");
        goto out;
    }
    ref_js_outcome o = ref_jobstate_check(state, (int)r->status);
    grade(a, p, n, ref_js_outcome_tck(o), "accept", ref_jobstate_rule(state, (int)r->status));
out:
    wh_free(&h);
}

/* ---- family: malformed packets ---- */

typedef struct {
    uint8_t *b;
    size_t len, cap;
    int oom;
} wbuf;

static void wb_bytes(wbuf *w, const void *s, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t nc = w->cap ? w->cap : 256;
        while (nc < w->len + n)
            nc *= 2;
        uint8_t *nb = realloc(w->b, nc);
        if (!nb) {
            w->oom = 1;
            return;
        }
        w->b = nb;
        w->cap = nc;
    }
    memcpy(w->b + w->len, s, n);
    w->len += n;
}

static void wb_varint(wbuf *w, uint64_t v)
{
    uint8_t t[10];
    size_t k = 0;
    do {
        t[k] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            t[k] |= 0x80;
        k++;
    } while (v);
    wb_bytes(w, t, k);
}

static void wb_tag(wbuf *w, uint32_t field, int wt)
{
    wb_varint(w, ((uint64_t)field << 3) | (uint64_t)wt);
}

static void wb_ld(wbuf *w, uint32_t field, const void *s, size_t n)
{
    wb_tag(w, field, 2);
    wb_varint(w, n);
    wb_bytes(w, s, n);
}

static void wb_str(wbuf *w, uint32_t field, const char *s)
{
    wb_ld(w, field, s, strlen(s));
}

/* The envelope: trace_id, sender_id, created_at, protocol_version. */
static void wb_envelope(wbuf *w, uint64_t version, int nonminimal)
{
    wb_str(w, 1, "trace-tck-malformed");
    wb_str(w, 2, "capsim-tck");
    wbuf ts = {0};
    wb_tag(&ts, 1, 0);
    wb_varint(&ts, (uint64_t)(T0 / SEC));
    wb_ld(w, 3, ts.b, ts.len);
    if (ts.oom)
        w->oom = 1;
    free(ts.b);
    wb_tag(w, 4, 0);
    if (nonminimal) {
        uint8_t t[2] = {(uint8_t)(0x80 | (version & 0x7f)), 0x00};
        wb_bytes(w, t, 2);
    } else {
        wb_varint(w, version);
    }
}

/* A JobRequest body: job_id (given length) and topic, plus `env_entries`
 * distinct env map entries (field 6). */
static void wb_job_request(wbuf *w, uint32_t field, size_t job_id_len, size_t env_entries)
{
    wbuf b = {0};
    char *jid = malloc(job_id_len + 1);
    if (!jid) {
        w->oom = 1;
        return;
    }
    memset(jid, 'j', job_id_len);
    jid[job_id_len] = '\0';
    wb_str(&b, 1, jid);
    free(jid);
    wb_str(&b, 2, "job.tck");
    for (size_t i = 0; i < env_entries; i++) {
        char k[24];
        snprintf(k, sizeof k, "k%06zu", i);
        wbuf e = {0};
        wb_str(&e, 1, k);
        wb_str(&e, 2, "v");
        wb_ld(&b, 6, e.b, e.len);
        if (e.oom)
            b.oom = 1;
        free(e.b);
    }
    wb_ld(w, field, b.b, b.len);
    if (b.oom)
        w->oom = 1;
    free(b.b);
}

typedef enum {
    MAL_TRUNCATED,
    MAL_OVERLONG,
    MAL_NONMINIMAL,
    MAL_DUP_ONEOF,
    MAL_EMPTY,
    MAL_VERSION,
    MAL_UNKNOWN_PAYLOAD,
    MAL_STRING,
    MAL_MAP,
    MAL_REPEATED,
} mal_kind;

static const struct {
    const char *suffix;
    mal_kind kind;
    int code; /* the CAP error the decoder must give */
    const char *what;
} MALFORMED[] = {
    {"truncated-wire", MAL_TRUNCATED, CAP_EMALFORMED, "a JobRequest packet cut 3 bytes short"},
    {"overlong-wire", MAL_OVERLONG, CAP_EMALFORMED, "a packet one byte over the 1 MiB packet bound"},
    {"non-minimal-encoding", MAL_NONMINIMAL, CAP_EMALFORMED, "protocol_version as the 2-byte varint 81 00"},
    {"duplicate-oneof", MAL_DUP_ONEOF, CAP_EMALFORMED, "job_request and job_cancel in one packet"},
    {"empty-envelope", MAL_EMPTY, CAP_EMALFORMED, "an envelope without a payload"},
    {"unsupported-protocol-version", MAL_VERSION, CAP_EVERSION, "protocol_version 2"},
    {"unknown-payload", MAL_UNKNOWN_PAYLOAD, CAP_EUNKNOWN_PAYLOAD, "only an unknown payload field 30"},
    {"oversize-string", MAL_STRING, CAP_EMALFORMED, "a job_id one byte over the 64 KiB string bound"},
    {"oversize-map", MAL_MAP, CAP_EMALFORMED, "a JobRequest.env map one entry over the 1000-entry bound"},
    {"oversize-repeated", MAL_REPEATED, CAP_EMALFORMED,
     "JobResult.artifact_ptrs one entry over the 1000-entry bound"},
};

/* Builds the packet for kind: bad = 0 gives the same packet just inside
 * the rule (which must decode), bad = 1 the malformed one. */
static void build_malformed(mal_kind k, int bad, const cap_bounds *bd, wbuf *w)
{
    switch (k) {
    case MAL_TRUNCATED:
        wb_envelope(w, 1, 0);
        wb_job_request(w, 10, 9, 0);
        if (bad && w->len > 3)
            w->len -= 3;
        break;
    case MAL_OVERLONG: {
        wb_envelope(w, 1, 0);
        wb_job_request(w, 10, 9, 0);
        /* Pad with an unknown non-payload field 9 (ignored by a lenient
         * consumer) to exactly max_packet, or one byte more. */
        size_t target = bd->max_packet + (bad ? 1 : 0);
        size_t room = target - w->len;
        size_t hdr = 1 + 3; /* tag + a 3-byte length for sizes in [16384, 2097151] */
        size_t body = room - hdr;
        uint8_t *pad = calloc(body ? body : 1, 1);
        if (!pad) {
            w->oom = 1;
            break;
        }
        memset(pad, 'p', body);
        wb_ld(w, 9, pad, body);
        free(pad);
        break;
    }
    case MAL_NONMINIMAL:
        wb_envelope(w, 1, bad);
        wb_job_request(w, 10, 9, 0);
        break;
    case MAL_DUP_ONEOF:
        wb_envelope(w, 1, 0);
        wb_job_request(w, 10, 9, 0);
        if (bad) {
            wbuf c = {0};
            wb_str(&c, 1, "job-tck");
            wb_ld(w, 16, c.b, c.len);
            if (c.oom)
                w->oom = 1;
            free(c.b);
        }
        break;
    case MAL_EMPTY:
        wb_envelope(w, 1, 0);
        if (!bad)
            wb_job_request(w, 10, 9, 0);
        break;
    case MAL_VERSION:
        wb_envelope(w, bad ? 2 : 1, 0);
        wb_job_request(w, 10, 9, 0);
        break;
    case MAL_UNKNOWN_PAYLOAD:
        wb_envelope(w, 1, 0);
        wb_job_request(w, bad ? 30 : 10, 9, 0);
        break;
    case MAL_STRING:
        wb_envelope(w, 1, 0);
        wb_job_request(w, 10, bd->max_string + (bad ? 1 : 0), 0);
        break;
    case MAL_MAP:
        wb_envelope(w, 1, 0);
        wb_job_request(w, 10, 9, bd->max_entries + (bad ? 1 : 0));
        break;
    case MAL_REPEATED: {
        wb_envelope(w, 1, 0);
        wbuf r = {0};
        wb_str(&r, 1, "job-tck");
        size_t count = bd->max_entries + (bad ? 1 : 0);
        for (size_t i = 0; i < count; i++) {
            char s[32];
            snprintf(s, sizeof s, "file:///a/%zu", i);
            wb_str(&r, 8, s);
        }
        wb_ld(w, 11, r.b, r.len);
        if (r.oom)
            w->oom = 1;
        free(r.b);
        break;
    }
    }
}

static int decode(const wbuf *w, const cap_bounds *bd, cap_diag *d)
{
    cap_packet *pkt = NULL;
    int rc = cap_packet_decode(w->b, w->len, bd, CAP_DECODE_LENIENT, &pkt, d);
    cap_packet_free(pkt);
    return rc;
}

static void fam_malformed(const char *id, const conf_kv *p, size_t n, answer *a)
{
    const char *slash = strchr(id, '/');
    const char *suffix = slash ? slash + 1 : id;
    size_t i;
    for (i = 0; i < sizeof MALFORMED / sizeof MALFORMED[0]; i++)
        if (strcmp(MALFORMED[i].suffix, suffix) == 0)
            break;
    if (i == sizeof MALFORMED / sizeof MALFORMED[0]) {
        set(a, CONF_ST_UNSUPPORTED, "no malformed packet is known for \"%s\"", suffix);
        return;
    }
    cap_bounds bd = cap_bounds_default();
    wbuf good = {0}, bad = {0};
    build_malformed(MALFORMED[i].kind, 0, &bd, &good);
    build_malformed(MALFORMED[i].kind, 1, &bd, &bad);
    if (good.oom || bad.oom) {
        set(a, CONF_ST_ERROR, "out of memory building the packet");
        goto out;
    }
    cap_diag d;
    cap_diag_clear(&d);
    /* Non-vacuity: the same packet just inside the rule must be accepted. */
    int grc = decode(&good, &bd, &d);
    if (grc != CAP_OK) {
        char line[400];
        set(a, CONF_ST_ERROR, "the control packet (inside the rule) was rejected: %s",
            cap_diag_format(&d, line, sizeof line));
        goto out;
    }
    cap_diag_clear(&d);
    int rc = decode(&bad, &bd, &d);
    ev(a, "packet", "%s (%zu bytes)", MALFORMED[i].what, bad.len);
    const char *outcome;
    if (rc == CAP_OK) {
        outcome = "process";
    } else if (ref_bug_active(REF_BUG_ACCEPT_MALFORMED)) {
        outcome = "process"; /* mutant accept-malformed: the rejection is ignored */
    } else {
        char line[400];
        ev(a, "decoder", "%s", cap_diag_format(&d, line, sizeof line));
        const char *name = cap_err_protocol_name(rc);
        ev(a, "err", "%s", name ? name : cap_strerror(rc));
        const char *want_err = param(p, n, "err");
        const char *want_name = cap_err_protocol_name(MALFORMED[i].code);
        if (rc != MALFORMED[i].code || (want_err && (!name || strcmp(want_err, name) != 0))) {
            set(a, CONF_ST_FAIL, "dropped with %s, expected %s", name ? name : cap_strerror(rc),
                want_err ? want_err : want_name);
            ev(a, "outcome", "drop");
            goto out;
        }
        outcome = "drop";
    }
    grade(a, p, n, outcome, "drop", "job.proto#ERROR_CODE_PROTOCOL_*");
out:
    free(good.b);
    free(bad.b);
}

/* ---- family: safety ---- */

static void fam_safety(const char *id, const conf_kv *p, size_t n, answer *a)
{
    const char *decision = param(p, n, "decision");
    if (!decision) {
        set(a, CONF_ST_ERROR, "param decision is required");
        return;
    }
    static const struct {
        const char *name, *word, *extra;
    } WORDS[] = {
        {"ALLOW", "allow", ""},
        {"DENY", "deny", ""},
        {"REQUIRE_HUMAN", "require_human", ""},
        {"THROTTLE", "throttle", ""},
        {"ALLOW_WITH_CONSTRAINTS", "allow_with_constraints", "  constraints: {max_retries: 1}\n"},
    };
    size_t w;
    for (w = 0; w < sizeof WORDS / sizeof WORDS[0]; w++)
        if (strcmp(WORDS[w].name, decision) == 0)
            break;
    if (w == sizeof WORDS / sizeof WORDS[0]) {
        set(a, CONF_ST_UNSUPPORTED, "decision \"%.60s\" cannot be expressed as a policy rule", decision);
        return;
    }
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "version: tck-1\n"
             "default_decision: deny\n"
             "rules:\n"
             "- id: tck-rule\n"
             "  match: {topics: [\"job.tck.*\"]}\n"
             "  decision: %s\n"
             "  reason: \"case %.200s\"\n%s",
             WORDS[w].word, id, WORDS[w].extra);
    ref_safety *k = ref_safety_new();
    if (!k) {
        set(a, CONF_ST_ERROR, "out of memory");
        return;
    }
    cap_yaml_diag yd;
    memset(&yd, 0, sizeof yd);
    int rc = ref_safety_load(k, yaml, strlen(yaml), &yd);
    Cordum__Agent__V1__PolicyCheckRequest *req = NULL;
    if (rc) {
        set(a, CONF_ST_ERROR, "the one-rule policy for %s did not load: %s", decision, cap_strerror(rc));
        goto out;
    }
    Cordum__Agent__V1__JobRequest job;
    cordum__agent__v1__job_request__init(&job);
    job.job_id = (char *)"job-tck-safety";
    job.topic = (char *)"job.tck.safety";
    job.tenant_id = (char *)"tenant-tck";
    req = ref_safety_request_from_job(&job);
    if (!req) {
        set(a, CONF_ST_ERROR, "out of memory");
        goto out;
    }
    ref_safety_decision dec;
    rc = ref_safety_check(k, req, T0, &dec);
    if (rc) {
        set(a, CONF_ST_ERROR, "ref_safety_check failed: %s", cap_strerror(rc));
        goto out;
    }
    const char *got = ref_decision_name(dec.decision);
    ev(a, "decision", "%s", got);
    ev(a, "policyRule", "%s", dec.rule_id);
    ev(a, "snapshot", "%s", dec.policy_snapshot);
    if (strcmp(got, decision) != 0) {
        set(a, CONF_ST_ERROR, "the policy built for %s decided %s (%s)", decision, got, dec.reason);
        goto out;
    }
    int dispatch = dec.decision == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW ||
                   dec.decision == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS;
    if (dec.decision == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_THROTTLE &&
        ref_bug_active(REF_BUG_DISPATCH_ON_THROTTLE))
        dispatch = 1; /* mutant dispatch-on-throttle: THROTTLE taken for an allow */
    if (dec.decision == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY) {
        ev(a, "err", "ERROR_CODE_SAFETY_DENIED");
        const char *want = param(p, n, "err");
        if (want && strcmp(want, "ERROR_CODE_SAFETY_DENIED") != 0) {
            set(a, CONF_ST_FAIL, "denied with ERROR_CODE_SAFETY_DENIED, the case expects %s", want);
            goto out;
        }
    }
    grade(a, p, n, dispatch ? "dispatch" : "no-dispatch", "dispatch",
          "cap-spec 06: only an allow-class decision dispatches");
out:
    cap_message_free((ProtobufCMessage *)req);
    ref_safety_free(k);
}

/* ---- family: negotiation ---- */

static ref_registry *new_registry(const int32_t *versions, size_t nv, answer *a)
{
    ref_registry_config c = ref_registry_config_default();
    c.versions = versions;
    c.n_versions = nv;
    ref_registry *r = NULL;
    cap_diag d;
    cap_diag_clear(&d);
    int rc = ref_registry_new(&c, &r, &d);
    if (rc) {
        char line[300];
        set(a, CONF_ST_ERROR, "cannot create the registry: %s", cap_diag_format(&d, line, sizeof line));
        return NULL;
    }
    return r;
}

static void negotiate_versions(const conf_kv *p, size_t n, answer *a)
{
    int32_t ours[REF_REGISTRY_VERSIONS_MAX], theirs[REF_REGISTRY_VERSIONS_MAX];
    size_t no = 0, nt = 0;
    if (parse_ints(param(p, n, "cpVersions"), ours, REF_REGISTRY_VERSIONS_MAX, &no) < 0 || no == 0 ||
        parse_ints(param(p, n, "workerVersions"), theirs, REF_REGISTRY_VERSIONS_MAX, &nt) < 0) {
        set(a, CONF_ST_ERROR, "cpVersions/workerVersions must be lists of positive integers");
        return;
    }
    ref_registry *r = new_registry(ours, no, a);
    if (!r)
        return;
    Cordum__Agent__V1__Handshake hs;
    cordum__agent__v1__handshake__init(&hs);
    hs.component_id = (char *)REF_WORKER_ID;
    hs.role = CORDUM__AGENT__V1__COMPONENT_ROLE__COMPONENT_ROLE_WORKER;
    hs.supported_versions = theirs;
    hs.n_supported_versions = nt;
    int32_t version = 0;
    cap_diag d;
    cap_diag_clear(&d);
    int rc = ref_registry_handshake(r, T0, REF_WORKER_ID, &hs, &version, &d);
    char outcome[32];
    if (rc == CAP_OK) {
        snprintf(outcome, sizeof outcome, "%d", (int)version);
    } else if (rc == CAP_EVERSION) {
        snprintf(outcome, sizeof outcome, "reject");
        ev(a, "err", "ERROR_CODE_PROTOCOL_VERSION_MISMATCH");
        const char *want = param(p, n, "err");
        if (want && strcmp(want, "ERROR_CODE_PROTOCOL_VERSION_MISMATCH") != 0) {
            set(a, CONF_ST_FAIL, "rejected with ERROR_CODE_PROTOCOL_VERSION_MISMATCH, the case expects %s", want);
            ev(a, "outcome", "reject");
            ref_registry_free(r);
            return;
        }
    } else {
        char line[300];
        set(a, CONF_ST_ERROR, "the registry refused the handshake: %s", cap_diag_format(&d, line, sizeof line));
        ref_registry_free(r);
        return;
    }
    grade(a, p, n, outcome, "dispatch", "cap-spec 14 L76: the highest common version");
    ref_registry_free(r);
}

/* One worker (heartbeat, optional handshake) and one job through
 * ref_registry_select. */
static void negotiate_select(const conf_kv *p, size_t n, answer *a)
{
    const char *req_cap = param(p, n, "requiredCapability");
    const char *topic = param(p, n, "jobTopic");
    ref_registry *r = new_registry(NULL, 0, a);
    if (!r)
        return;
    char capbuf[2048], topbuf[2048];
    char *caps[MAX_LIST], *topics[MAX_LIST];
    size_t ncaps = split_csv(param(p, n, "workerCapabilities"), capbuf, sizeof capbuf, caps, MAX_LIST);
    size_t ntop = split_csv(param(p, n, "readyTopics"), topbuf, sizeof topbuf, topics, MAX_LIST);
    Cordum__Agent__V1__Heartbeat hb;
    cordum__agent__v1__heartbeat__init(&hb);
    hb.worker_id = (char *)REF_WORKER_ID;
    hb.pool = (char *)REF_POOL;
    hb.max_parallel_jobs = 4;
    hb.capabilities = caps;
    hb.n_capabilities = ncaps;
    cap_diag d;
    cap_diag_clear(&d);
    char line[300];
    int rc = ref_registry_heartbeat(r, T0, &hb, &d);
    if (rc < 0) {
        set(a, CONF_ST_ERROR, "the registry refused the heartbeat: %s", cap_diag_format(&d, line, sizeof line));
        goto out;
    }
    if (topic) {
        Cordum__Agent__V1__Handshake hs;
        cordum__agent__v1__handshake__init(&hs);
        hs.component_id = (char *)REF_WORKER_ID;
        hs.role = CORDUM__AGENT__V1__COMPONENT_ROLE__COMPONENT_ROLE_WORKER;
        hs.ready_topics = topics;
        hs.n_ready_topics = ntop;
        rc = ref_registry_handshake(r, T0, REF_WORKER_ID, &hs, NULL, &d);
        if (rc < 0) {
            set(a, CONF_ST_ERROR, "the registry refused the handshake: %s", cap_diag_format(&d, line, sizeof line));
            goto out;
        }
    }
    Cordum__Agent__V1__JobRequest job;
    cordum__agent__v1__job_request__init(&job);
    Cordum__Agent__V1__JobMetadata meta;
    cordum__agent__v1__job_metadata__init(&meta);
    char *reqs[1] = {(char *)req_cap};
    job.job_id = (char *)"job-tck-negotiation";
    job.topic = (char *)(topic ? topic : "job.tck");
    if (req_cap) {
        meta.requires = reqs;
        meta.n_requires = 1;
        job.meta = &meta;
    }
    const char *pools[1] = {REF_POOL};
    ref_sel_request sr;
    memset(&sr, 0, sizeof sr);
    sr.job = &job;
    sr.pools = pools;
    sr.n_pools = 1;
    ref_sel_result res;
    rc = ref_registry_select(r, T0, &sr, &res);
    if (rc) {
        set(a, CONF_ST_ERROR, "ref_registry_select failed: %s", cap_strerror(rc));
        goto out;
    }
    ev(a, "selection", "%s", ref_sel_outcome_name(res.outcome));
    char filters[200] = "";
    for (int f = 0; f < REF_SEL_NFILTERS; f++)
        if (res.filtered[f]) {
            size_t l = strlen(filters);
            snprintf(filters + l, sizeof filters - l, "%s%s", l ? "," : "", ref_sel_filter_name((ref_sel_filter)f));
        }
    if (filters[0])
        ev(a, "filteredBy", "%s", filters);
    if (res.outcome == REF_SEL_OK)
        ev(a, "worker", "%s", res.worker_id);
    grade(a, p, n, res.outcome == REF_SEL_OK ? "dispatch" : "reject", "dispatch",
          req_cap ? "cap-spec 14 L10: requires filters placement" : "cap-spec 14 L64-L66: ready_topics filter");
out:
    ref_registry_free(r);
}

static void fam_negotiation(const char *id, const conf_kv *p, size_t n, answer *a)
{
    if (param(p, n, "cpVersions") || param(p, n, "workerVersions"))
        negotiate_versions(p, n, a);
    else if (param(p, n, "requiredCapability") || param(p, n, "jobTopic"))
        negotiate_select(p, n, a);
    else
        set(a, CONF_ST_UNSUPPORTED, "%s: no input params (cpVersions/workerVersions, requiredCapability, "
                                    "jobTopic): this suite version carries only the expectation", id);
}

/* ---- family: worker duplicates ---- */

static void fam_dedup(const char *id, const conf_kv *p, size_t n, answer *a)
{
    (void)id;
    const char *dsp = param(p, n, "dispatchId");
    const char *worker = param(p, n, "assignedWorkerId");
    uint64_t attempt = 0, deliveries = 0;
    if (!dsp || !worker || parse_u64(param(p, n, "attempt"), &attempt) < 0 ||
        parse_u64(param(p, n, "deliveries"), &deliveries) < 0 || deliveries == 0 || deliveries > 100) {
        set(a, CONF_ST_ERROR, "params dispatchId, attempt, assignedWorkerId, deliveries (1..100) are required");
        return;
    }
    wharness h;
    if (wh_init(&h, REF_WORK_SUCCEEDED, a) < 0)
        return;
    pkt_store s;
    const char *job = "job-tck-dup";
    uint64_t replays = 0;
    int identical = 1;
    uint8_t *first = NULL;
    size_t first_len = 0;
    int64_t now = T0;
    for (uint64_t i = 0; i < deliveries; i++, now += 2 * SEC) {
        if (wh_packet(&h, "job." REF_POOL, mk_request(&s, job, dsp, attempt, worker), now, a) < 0)
            goto out;
        size_t k = 0;
        const Cordum__Agent__V1__JobResult *res = wh_result(&h, &k);
        if (i > 0 && res) {
            replays += k;
            uint8_t *enc = NULL;
            size_t len = 0;
            if (cap_encode((const ProtobufCMessage *)res, &enc, &len) == CAP_OK) {
                if (!first || len != first_len || memcmp(enc, first, len) != 0)
                    identical = 0;
                free(enc);
            }
        }
        /* Let the attempt finish, so that a redelivery finds its result. */
        if (wh_complete(&h, a) < 0)
            goto out;
        res = wh_result(&h, NULL);
        if (res && !first)
            cap_encode((const ProtobufCMessage *)res, &first, &first_len);
    }
    uint64_t side = ref_worker_handler_calls(h.w);
    ev(a, "deliveries", "%" PRIu64, deliveries);
    ev(a, "handlerCalls", "%" PRIu64, side);
    ev(a, "replays", "%" PRIu64, replays);
    if (replays)
        ev(a, "replayIdentical", "%s", identical ? "true" : "false");
    const char *expect = param(p, n, "expect");
    const char *outcome;
    if (side == 1 && replays == 0)
        outcome = "invoke";
    else if (side == 1 && deliveries >= 2 && replays == deliveries - 1 && identical)
        outcome = "idempotent-replay";
    else if (side == 1)
        outcome = "one-side-effect";
    else
        outcome = side == 0 ? "no-side-effect" : "repeated-side-effect";
    /* The cap-tck 4.1 predicates: one-side-effect holds for every outcome
     * with exactly one handler call. */
    if (expect && strcmp(expect, "one-side-effect") == 0 && side == 1)
        outcome = "one-side-effect";
    grade(a, p, n, outcome, "invoke", "job.proto#DispatchIdentity: one handler call per (dispatch_id, attempt)");
out:
    free(first);
    wh_free(&h);
}

/* ---- family: worker retries (fencing) ---- */

static void fam_retries_worker(const char *id, const conf_kv *p, size_t n, answer *a)
{
    (void)id;
    const char *event = param(p, n, "event");
    const char *dsp = param(p, n, "dispatchId");
    const char *worker = param(p, n, "assignedWorkerId");
    uint64_t attempt = 0, active = 0;
    if (!event || !dsp || !worker || parse_u64(param(p, n, "attempt"), &attempt) < 0 ||
        parse_u64(param(p, n, "activeAttempt"), &active) < 0 || active == 0) {
        set(a, CONF_ST_ERROR, "params event, dispatchId, attempt, activeAttempt, assignedWorkerId are required");
        return;
    }
    if (strcmp(event, "dispatch") != 0 && strcmp(event, "cancel") != 0) {
        set(a, CONF_ST_UNSUPPORTED, "worker event \"%.40s\" (dispatch and cancel are known)", event);
        return;
    }
    wharness h;
    if (wh_init(&h, REF_WORK_HANG, a) < 0)
        return;
    pkt_store s;
    const char *job = "job-tck-retry";
    /* The active attempt, running on this worker. */
    if (wh_packet(&h, "job." REF_POOL, mk_request(&s, job, dsp, active, REF_WORKER_ID), T0, a) < 0)
        goto out;
    int state = 0;
    if (ref_worker_active_attempt(h.w, job, &state) != active || ref_worker_handler_calls(h.w) != 1) {
        set(a, CONF_ST_ERROR, "the reference worker did not adopt attempt %" PRIu64, active);
        goto out;
    }
    const char *outcome;
    if (strcmp(event, "dispatch") == 0) {
        if (wh_packet(&h, "job." REF_POOL, mk_request(&s, job, dsp, attempt, worker), T0 + SEC, a) < 0)
            goto out;
        outcome = ref_worker_handler_calls(h.w) == 2 ? "invoke" : "reject";
    } else {
        if (wh_packet(&h, REF_WORKER_SUBJECT_CANCEL, mk_cancel(&s, job, dsp, attempt, worker), T0 + SEC, a) < 0)
            goto out;
        const Cordum__Agent__V1__JobResult *r = wh_result(&h, NULL);
        outcome = r && r->status == CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_CANCELLED ? "cancel" : "reject";
    }
    ev(a, "journal", "%.380s", wh_journal(&h));
    ev(a, "activeAttempt", "%" PRIu64, ref_worker_active_attempt(h.w, job, NULL));
    grade(a, p, n, outcome, "invoke", "job.proto#DispatchIdentity: fencing by attempt and assigned worker");
out:
    wh_free(&h);
}

/* ---- family: control-plane duplicates and retries (the scheduler) ---- */

/* A reference scheduler with an allow-all policy and one live worker,
 * REF_WORKER_ID on pool job.REF_POOL. */
typedef struct {
    ref_safety *k;
    ref_sched *s;
    ref_effects fx;
    uint64_t seed;
    char dispatch_id[8][40]; /* the identity of each attempt (1-based, up to 7) */
    uint64_t attempt;        /* the latest dispatched attempt */
    int64_t wake_at;         /* the retry timer, 0 when none */
    uint64_t wake_id;
} sharness;

static void sh_scan(sharness *h)
{
    h->wake_at = 0;
    for (size_t i = 0; i < ref_effects_count(&h->fx); i++) {
        const ref_effect *e = ref_effects_at(&h->fx, i);
        if (e->kind == REF_EFFECT_PUBLISH && e->packet &&
            e->packet->payload_case == CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST &&
            e->packet->job_request->dispatch) {
            const Cordum__Agent__V1__DispatchIdentity *d = e->packet->job_request->dispatch;
            if (d->attempt < 8) {
                snprintf(h->dispatch_id[d->attempt], sizeof h->dispatch_id[0], "%s", d->dispatch_id);
                h->attempt = d->attempt;
            }
        } else if (e->kind == REF_EFFECT_TIMER_SET && e->timer_id >= 8 && e->timer_id % 8 == 1) {
            h->wake_at = e->at;
            h->wake_id = e->timer_id;
        }
    }
}

static int sh_input(sharness *h, const char *subject, const cap_packet *p, int64_t now, answer *a)
{
    ref_effects_clear(&h->fx);
    int v = ref_sched_on_packet(h->s, subject, p, NULL, 0, now, &h->fx);
    if (v < 0) {
        set(a, CONF_ST_ERROR, "reference scheduler failed on %s: %s", subject, cap_strerror(v));
        return v;
    }
    sh_scan(h);
    return v;
}

static void sh_free(sharness *h)
{
    ref_effects_free(&h->fx);
    ref_sched_free(h->s);
    ref_safety_free(h->k);
}

static int sh_init(sharness *h, answer *a)
{
    static const char policy[] = "version: tck\ndefault_decision: allow\nrules: []\n";
    memset(h, 0, sizeof *h);
    h->seed = 1;
    cap_yaml_diag yd;
    cap_diag d;
    h->k = ref_safety_new();
    if (!h->k || ref_safety_load(h->k, policy, sizeof policy - 1, &yd) < 0 ||
        ref_effects_init(&h->fx, 0) != CAP_OK) {
        set(a, CONF_ST_ERROR, "cannot start the reference safety kernel");
        sh_free(h);
        return -1;
    }
    ref_sched_config c = ref_sched_config_default();
    c.safety = h->k;
    c.rand.next = ref_rand_splitmix64;
    c.rand.ctx = &h->seed;
    if (ref_sched_new(&c, &h->s, &d) != CAP_OK) {
        set(a, CONF_ST_ERROR, "cannot start the reference scheduler: %s", d.reason);
        sh_free(h);
        return -1;
    }
    /* One worker serving the job's pool. */
    cap_packet pkt;
    Google__Protobuf__Timestamp ts;
    Cordum__Agent__V1__Heartbeat hb;
    cordum__agent__v1__bus_packet__init(&pkt);
    google__protobuf__timestamp__init(&ts);
    cordum__agent__v1__heartbeat__init(&hb);
    ts.seconds = T0 / SEC;
    pkt.trace_id = (char *)"trace-tck-hb";
    pkt.sender_id = (char *)REF_WORKER_ID;
    pkt.created_at = &ts;
    pkt.protocol_version = CAP_PROTOCOL_VERSION;
    hb.worker_id = (char *)REF_WORKER_ID;
    hb.pool = (char *)"job." REF_POOL;
    hb.max_parallel_jobs = 4;
    pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
    pkt.heartbeat = &hb;
    if (sh_input(h, REF_SCHED_SUBJECT_HEARTBEAT, &pkt, T0, a) != REF_SCHED_APPLIED) {
        sh_free(h);
        return -1;
    }
    return 0;
}

/* A JobResult / JobProgress / JobCancel about job for attempt `attempt`. */
typedef struct {
    cap_packet pkt;
    Google__Protobuf__Timestamp ts;
    Cordum__Agent__V1__JobResult res;
    Cordum__Agent__V1__JobProgress prog;
    Cordum__Agent__V1__JobCancel cancel;
    Cordum__Agent__V1__DispatchIdentity dsp;
} event_store;

static cap_packet *mk_event(event_store *e, const sharness *h, const char *event, const char *job,
                            uint64_t attempt, int status)
{
    cordum__agent__v1__bus_packet__init(&e->pkt);
    google__protobuf__timestamp__init(&e->ts);
    e->ts.seconds = T0 / SEC + 10;
    e->pkt.trace_id = (char *)"trace-tck-event";
    e->pkt.sender_id = (char *)REF_WORKER_ID;
    e->pkt.created_at = &e->ts;
    e->pkt.protocol_version = CAP_PROTOCOL_VERSION;
    cordum__agent__v1__dispatch_identity__init(&e->dsp);
    e->dsp.dispatch_id = (char *)(attempt < 8 ? h->dispatch_id[attempt] : "unknown");
    e->dsp.attempt = attempt;
    e->dsp.assigned_worker_id = (char *)REF_WORKER_ID;
    if (strcmp(event, "progress") == 0) {
        cordum__agent__v1__job_progress__init(&e->prog);
        e->prog.job_id = (char *)job;
        e->prog.status = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING;
        e->prog.dispatch = &e->dsp;
        e->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS;
        e->pkt.job_progress = &e->prog;
    } else if (strcmp(event, "cancel") == 0) {
        cordum__agent__v1__job_cancel__init(&e->cancel);
        e->cancel.job_id = (char *)job;
        e->cancel.reason = (char *)"tck cancel";
        e->cancel.dispatch = &e->dsp;
        e->pkt.sender_id = (char *)"client-tck";
        e->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL;
        e->pkt.job_cancel = &e->cancel;
    } else {
        cordum__agent__v1__job_result__init(&e->res);
        e->res.job_id = (char *)job;
        e->res.status = (Cordum__Agent__V1__JobStatus)status;
        e->res.worker_id = (char *)REF_WORKER_ID;
        e->res.dispatch = &e->dsp;
        e->pkt.payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
        e->pkt.job_result = &e->res;
    }
    return &e->pkt;
}

static const char *event_subject(const char *event)
{
    if (strcmp(event, "progress") == 0)
        return REF_SCHED_SUBJECT_PROGRESS;
    if (strcmp(event, "cancel") == 0)
        return REF_SCHED_SUBJECT_CANCEL;
    return REF_SCHED_SUBJECT_RESULT;
}

/* Submits job and drives it to dispatch attempt `active`: every earlier
 * attempt fails retryably and the retry timer fires. */
static int sh_drive_to(sharness *h, const char *job, uint64_t active, answer *a)
{
    pkt_store s;
    if (sh_input(h, REF_SCHED_SUBJECT_SUBMIT, mk_request(&s, job, NULL, 0, NULL), T0 + SEC, a) < 0)
        return -1;
    while (h->attempt < active) {
        if (h->attempt == 0 || h->attempt >= 7) {
            set(a, CONF_ST_ERROR, "the reference scheduler did not dispatch attempt %" PRIu64,
                h->attempt + 1);
            return -1;
        }
        event_store e;
        uint64_t at = h->attempt;
        if (sh_input(h, REF_SCHED_SUBJECT_RESULT,
                     mk_event(&e, h, "result", job, at, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_RETRYABLE),
                     T0 + 2 * SEC, a) < 0)
            return -1;
        if (!h->wake_at) {
            set(a, CONF_ST_ERROR, "the reference scheduler armed no retry after attempt %" PRIu64, at);
            return -1;
        }
        ref_effects_clear(&h->fx);
        if (ref_sched_on_timer(h->s, h->wake_id, h->wake_at, &h->fx) < 0) {
            set(a, CONF_ST_ERROR, "the reference scheduler failed on its retry timer");
            return -1;
        }
        sh_scan(h);
        if (h->attempt != at + 1) {
            set(a, CONF_ST_ERROR, "the retry did not dispatch attempt %" PRIu64, at + 1);
            return -1;
        }
    }
    return 0;
}

static void fam_scheduler(const char *id, const conf_kv *p, size_t n, answer *a)
{
    const int dup = strncmp(id, "duplicates/", 11) == 0;
    uint64_t attempt = 0, active = 1, deliveries = 1;
    const char *event = dup ? "result" : param(p, n, "event");
    if (!event || parse_u64(param(p, n, "attempt"), &attempt) < 0 || attempt == 0 || attempt > 7 ||
        (dup ? parse_u64(param(p, n, "deliveries"), &deliveries) < 0 || !deliveries || deliveries > 100
             : parse_u64(param(p, n, "activeAttempt"), &active) < 0 || !active || active > 7)) {
        set(a, CONF_ST_ERROR, dup ? "params attempt (1..7) and deliveries (1..100) are required"
                                  : "params event, attempt and activeAttempt (1..7) are required");
        return;
    }
    if (strcmp(event, "result") && strcmp(event, "progress") && strcmp(event, "cancel")) {
        set(a, CONF_ST_UNSUPPORTED, "control-plane event \"%.40s\" (result, progress, cancel are known)", event);
        return;
    }
    if (dup)
        active = attempt;
    sharness h;
    if (sh_init(&h, a) < 0)
        return;
    const char *job = "job-tck-cp";
    if (sh_drive_to(&h, job, active, a) < 0)
        goto out;
    /* The packet under test, delivered `deliveries` times as the same bytes. */
    event_store e;
    cap_packet *pkt = mk_event(&e, &h, event, job, attempt, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED);
    uint8_t *wire = NULL;
    size_t len = 0;
    if (cap_encode(&pkt->base, &wire, &len) != CAP_OK) {
        set(a, CONF_ST_ERROR, "cannot encode the %s packet", event);
        goto out;
    }
    uint64_t applied = 0, duplicate = 0, stale = 0;
    for (uint64_t i = 0; i < deliveries; i++) {
        ref_effects_clear(&h.fx);
        int v = ref_sched_on_packet(h.s, event_subject(event), pkt, wire, len, T0 + 20 * SEC, &h.fx);
        if (v < 0) {
            set(a, CONF_ST_ERROR, "reference scheduler failed: %s", cap_strerror(v));
            free(wire);
            goto out;
        }
        applied += v == REF_SCHED_APPLIED;
        duplicate += v == REF_SCHED_DUPLICATE;
        stale += v == REF_SCHED_STALE;
    }
    free(wire);
    ref_sched_job_info info;
    ref_sched_job(h.s, job, &info);
    ev(a, "activeAttempt", "%" PRIu64, info.attempt);
    ev(a, "applied", "%" PRIu64, applied);
    ev(a, "duplicates", "%" PRIu64, duplicate);
    ev(a, "stale", "%" PRIu64, stale);
    ev(a, "state", "%s", ref_jobstate_name(info.state));
    if (dup) {
        const char *outcome = applied == 1 ? "one-side-effect" : applied ? "repeated-side-effect" : "no-side-effect";
        grade(a, p, n, outcome, "one-side-effect",
              "job.proto#DispatchIdentity: a redelivered result changes the job once");
    } else {
        grade(a, p, n, applied ? "apply" : "ignore", "apply",
              "job.proto#DispatchIdentity: only the active attempt may mutate the job");
    }
out:
    sh_free(&h);
}

/* ---- the table ---- */

typedef void (*family_fn)(const char *id, const conf_kv *p, size_t n, answer *a);

static const struct {
    const char *prefix; /* id prefix; the first matching row wins */
    const char *role;   /* the adapter role it applies to; NULL: both */
    family_fn fn;
} FAMILIES[] = {
    {"cancellation/worker-honors-cancel", "worker", fam_worker_cancel},
    {"lifecycle/", NULL, fam_order},
    {"cancellation/", NULL, fam_order},
    {"malformed/", "worker", fam_malformed},
    {"safety/", "control-plane", fam_safety},
    {"negotiation/", "control-plane", fam_negotiation},
    {"duplicates/", "worker", fam_dedup},
    {"retries/", "worker", fam_retries_worker},
    {"duplicates/", "control-plane", fam_scheduler},
    {"retries/", "control-plane", fam_scheduler},
};

const char *conf_ref_family(size_t i, const char **role)
{
    if (i >= sizeof FAMILIES / sizeof FAMILIES[0])
        return NULL;
    if (role)
        *role = FAMILIES[i].role;
    return FAMILIES[i].prefix;
}

void conf_ref_answer_case(const char *role, const char *id, const conf_kv *params, size_t n_params,
                          conf_ref_answer *out)
{
    memset(out, 0, sizeof *out);
    out->status = CONF_ST_ERROR;
    for (size_t i = 0; i < sizeof FAMILIES / sizeof FAMILIES[0]; i++) {
        if (strncmp(id, FAMILIES[i].prefix, strlen(FAMILIES[i].prefix)) != 0)
            continue;
        if (FAMILIES[i].role && strcmp(FAMILIES[i].role, role) != 0)
            continue;
        FAMILIES[i].fn(id, params, n_params, out);
        return;
    }
    set(out, CONF_ST_UNSUPPORTED, "the reference %s adapter has no handler for case \"%.200s\"", role, id);
}
