/* A reference worker or scheduler on a real NATS bus; see conf_peer.h. */
#include "conf_peer.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cap_decode.h"
#include "cap_encode.h"
#include "conf_json.h"
#include "conf_nats.h"
#include "ref_conformance.h"
#include "ref_effect.h"
#include "ref_safety.h"
#include "ref_scheduler.h"
#include "ref_worker.h"

#define MAX_TIMERS 65536
#define MAX_PROGRESS 65536
#define MAX_POLICY_BYTES ((size_t)1 << 20)

typedef struct {
    uint64_t id;
    int64_t at;
} ptimer;

/* A progress report waiting for its time (conformance contract). */
typedef struct {
    int64_t at;
    cap_packet *packet;
    char *job_id;
    uint64_t attempt;
} pprogress;

struct conf_peer {
    conf_peer_config cfg;
    conf_nats *nats;
    ref_effects fx;
    ref_worker *worker;
    ref_sched *sched;
    ref_safety *safety;
    uint64_t rand_state;
    char *pool_subject;      /* the NATS subject of the worker's pool */
    ptimer *timers;
    size_t n_timers, cap_timers;
    pprogress *prog;
    size_t n_prog, cap_prog;
    const cap_packet *cur;   /* the packet being handled (its trace_id for progress) */
    int64_t base_real, base_mono;
    conf_peer_stats st;
    int err;                 /* a fatal error met inside a callback */
    char errmsg[256];
};

static void logf_(conf_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(conf_peer *p, const char *fmt, ...)
{
    if (!p->cfg.log)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->cfg.log, fmt, ap);
    va_end(ap);
    fputc('\n', p->cfg.log);
    fflush(p->cfg.log);
}

/* The peer's clock: monotonic, anchored to Unix time when the peer was made. */
static int64_t peer_now(const conf_peer *p) { return p->base_real + (conf_nats_monotonic() - p->base_mono); }

/* ---- timers ---- */

static void timer_cancel(conf_peer *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_timers; i++)
        if (p->timers[i].id == id) {
            p->timers[i] = p->timers[--p->n_timers];
            return;
        }
}

static int timer_set(conf_peer *p, uint64_t id, int64_t at)
{
    for (size_t i = 0; i < p->n_timers; i++)
        if (p->timers[i].id == id) {
            p->timers[i].at = at;
            return CAP_OK;
        }
    if (p->n_timers >= MAX_TIMERS)
        return CAP_EFULL;
    if (conf_grow((void **)&p->timers, &p->cap_timers, p->n_timers + 1, sizeof *p->timers))
        return CAP_ENOMEM;
    p->timers[p->n_timers++] = (ptimer){id, at};
    return CAP_OK;
}

/* The earliest due timer or progress report (INT64_MAX when none). */
static int64_t next_due(const conf_peer *p)
{
    int64_t t = INT64_MAX;
    for (size_t i = 0; i < p->n_timers; i++)
        if (p->timers[i].at < t)
            t = p->timers[i].at;
    for (size_t i = 0; i < p->n_prog; i++)
        if (p->prog[i].at < t)
            t = p->prog[i].at;
    return t;
}

/* ---- effects ---- */

static int publish_packet(conf_peer *p, const char *subject, const cap_packet *pkt)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = cap_encode(&pkt->base, &buf, &len);
    if (rc)
        return rc;
    char err[256];
    rc = conf_nats_publish(p->nats, subject, NULL, buf, len, err, sizeof err);
    free(buf);
    if (rc == CAP_OK) {
        p->st.published++;
        logf_(p, "publish %s %s (%zu bytes)", subject, cap_packet_payload_name(pkt), len);
    } else {
        logf_(p, "publish %s failed: %s", subject, err);
        snprintf(p->errmsg, sizeof p->errmsg, "%s", err);
    }
    return rc;
}

static int apply_effects(conf_peer *p)
{
    int rc = CAP_OK;
    for (size_t i = 0; i < ref_effects_count(&p->fx) && rc == CAP_OK; i++) {
        const ref_effect *e = ref_effects_at(&p->fx, i);
        switch (e->kind) {
        case REF_EFFECT_PUBLISH: {
            const char *subject = e->subject;
            rc = publish_packet(p, subject, e->packet);
            if (rc == CAP_EINVAL || rc == CAP_ENOMEM)
                rc = CAP_OK; /* this packet is lost; the peer goes on */
            break;
        }
        case REF_EFFECT_TIMER_SET: rc = timer_set(p, e->timer_id, e->at); break;
        case REF_EFFECT_TIMER_CANCEL: timer_cancel(p, e->timer_id); break;
        case REF_EFFECT_JOURNAL: logf_(p, "journal %s", e->record); break;
        case REF_EFFECT_JOURNAL_VIEW: break; /* not asked for: the peers' journals are text */
        }
    }
    ref_effects_clear(&p->fx);
    return rc;
}

/* ---- the worker's handler ---- */

static void progress_drop(pprogress *g)
{
    cap_packet_free(g->packet);
    free(g->job_id);
}

static void worker_handler(void *ctx, const Cordum__Agent__V1__JobRequest *req, int64_t now,
                           ref_work *out)
{
    conf_peer *p = ctx;
    p->st.handler_calls++;
    uint64_t attempt = req->dispatch ? req->dispatch->attempt : 1;
    ref_conformance_plan plan;
    cap_diag d;
    cap_diag_clear(&d);
    if (ref_conformance_plan(req, attempt, &plan, &d) != CAP_OK) {
        logf_(p, "job %s: %s: %s", req->job_id, d.path, d.reason);
        out->outcome = REF_WORK_FAILED_FATAL;
        out->text = "conformance: malformed cap.conformance label";
        out->service_ns = 0;
        return;
    }
    /* Without a contract the plan holds the defaults: succeed after 100 ms. */
    ref_conformance_work(&plan, out);
    logf_(p, "job %s attempt %llu: %s in %lld ms, %u progress reports", req->job_id,
          (unsigned long long)attempt, ref_conformance_outcome_name(plan.outcome),
          (long long)(plan.service_ns / 1000000), plan.progress_steps);
    const char *trace = p->cur && p->cur->trace_id ? p->cur->trace_id : "";
    for (uint32_t k = 1; k <= plan.progress_steps; k++) {
        if (p->n_prog >= MAX_PROGRESS ||
            conf_grow((void **)&p->prog, &p->cap_prog, p->n_prog + 1, sizeof *p->prog))
            break;
        int64_t at = ref_conformance_progress_at(&plan, now, k);
        cap_packet *pk = ref_conformance_progress_packet(req, trace, p->cfg.worker_id, k,
                                                         plan.progress_steps, at);
        char *jid = strdup(req->job_id ? req->job_id : "");
        if (!pk || !jid) {
            cap_packet_free(pk);
            free(jid);
            break;
        }
        p->prog[p->n_prog++] = (pprogress){at, pk, jid, attempt};
    }
}

/* Publishes the progress reports that are due, while their attempt runs. */
static int run_progress(conf_peer *p, int64_t now)
{
    int rc = CAP_OK;
    for (size_t i = 0; i < p->n_prog && rc == CAP_OK;) {
        pprogress *g = &p->prog[i];
        if (g->at > now) {
            i++;
            continue;
        }
        int state = 0;
        uint64_t a = ref_worker_active_attempt(p->worker, g->job_id, &state);
        if (a == g->attempt && state == CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING) {
            /* created_at is the planned time; stamp it now instead */
            int64_t sec = now / 1000000000, ns = now % 1000000000;
            if (g->packet->created_at) {
                g->packet->created_at->seconds = sec;
                g->packet->created_at->nanos = (int32_t)ns;
            }
            rc = publish_packet(p, REF_WORKER_SUBJECT_PROGRESS, g->packet);
        }
        progress_drop(g);
        p->prog[i] = p->prog[--p->n_prog];
    }
    return rc;
}

/* ---- the scheduler's control subject ---- */

static void control(conf_peer *p, const conf_nats_msg *m, int64_t now)
{
    const char *verb = m->subject + strlen(CONF_PEER_CONTROL_PREFIX);
    char jid[256] = "", by[256] = "operator", note[512] = "";
    const char *answer = "bad-request";
    int rc = -1;
    if (m->len <= CONF_PEER_CONTROL_MAX_BODY) {
        cJSON *o = cJSON_ParseWithLength((const char *)m->data, m->len);
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "job_id");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "by");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "note");
        if (cJSON_IsString(j) && strlen(j->valuestring) < sizeof jid && j->valuestring[0]) {
            snprintf(jid, sizeof jid, "%s", j->valuestring);
            if (cJSON_IsString(b) && b->valuestring[0])
                snprintf(by, sizeof by, "%.255s", b->valuestring);
            if (cJSON_IsString(t))
                snprintf(note, sizeof note, "%.511s", t->valuestring);
            if (strcmp(verb, "approve") == 0)
                rc = ref_sched_approve(p->sched, jid, by, note, now, &p->fx, NULL);
            else if (strcmp(verb, "reject") == 0)
                rc = ref_sched_reject(p->sched, jid, by, note, now, &p->fx);
            else if (strcmp(verb, "cancel") == 0)
                rc = ref_sched_cancel(p->sched, jid, note[0] ? note : "operator cancel", by, now,
                                      &p->fx);
            else
                answer = "unknown-verb";
            if (rc >= 0)
                answer = ref_sched_answer_name((ref_sched_answer)rc);
        }
        cJSON_Delete(o);
    }
    logf_(p, "control %s job %s: %s", verb, jid, answer);
    if (rc >= 0)
        p->err = apply_effects(p);
    else
        ref_effects_clear(&p->fx);
    if (m->reply && m->reply[0]) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "job_id", jid);
        cJSON_AddStringToObject(r, "answer", answer);
        char *txt = cJSON_PrintUnformatted(r);
        if (txt)
            conf_nats_publish(p->nats, m->reply, NULL, txt, strlen(txt), NULL, 0);
        free(txt);
        cJSON_Delete(r);
    }
}

/* ---- one message ---- */

static void on_message(conf_peer *p, const conf_nats_msg *m)
{
    int64_t now = peer_now(p);
    if (p->cfg.role == CONF_PEER_SCHEDULER &&
        strncmp(m->subject, CONF_PEER_CONTROL_PREFIX, strlen(CONF_PEER_CONTROL_PREFIX)) == 0) {
        control(p, m, now);
        return;
    }
    p->st.received++;
    cap_bounds b = cap_bounds_default();
    cap_packet *pkt = NULL;
    cap_diag d;
    cap_diag_clear(&d);
    int rc = cap_packet_decode(m->data, m->len, &b, CAP_DECODE_LENIENT, &pkt, &d);
    if (rc != CAP_OK) {
        p->st.rejected++;
        char line[512];
        logf_(p, "drop %s: %s", m->subject, cap_diag_format(&d, line, sizeof line));
        return;
    }
    p->cur = pkt;
    if (p->cfg.role == CONF_PEER_WORKER) {
        const char *subject = m->subject;
        if (strcmp(subject, p->pool_subject) == 0)
            subject = ref_worker_pool_subject(p->worker);
        rc = ref_worker_on_packet(p->worker, subject, pkt, now, &p->fx);
    } else {
        rc = ref_sched_on_packet(p->sched, m->subject, pkt, m->data, m->len, now, &p->fx);
        if (rc >= 0)
            logf_(p, "%s %s: %s", m->subject, cap_packet_payload_name(pkt),
                  ref_sched_verdict_name((ref_sched_verdict)rc));
    }
    p->cur = NULL;
    cap_packet_free(pkt);
    if (rc < 0 && rc != CAP_EINVAL) {
        p->err = rc;
        snprintf(p->errmsg, sizeof p->errmsg, "the component failed: %s", cap_strerror(rc));
        ref_effects_clear(&p->fx);
        return;
    }
    p->err = apply_effects(p);
}

static int fire_timers(conf_peer *p)
{
    int64_t now = peer_now(p);
    int rc = run_progress(p, now);
    for (int guard = 0; rc == CAP_OK && guard < MAX_TIMERS; guard++) {
        size_t best = p->n_timers;
        for (size_t i = 0; i < p->n_timers; i++)
            if (p->timers[i].at <= now && (best == p->n_timers || p->timers[i].at < p->timers[best].at))
                best = i;
        if (best == p->n_timers)
            break;
        uint64_t id = p->timers[best].id;
        p->timers[best] = p->timers[--p->n_timers];
        rc = p->cfg.role == CONF_PEER_WORKER ? ref_worker_on_timer(p->worker, id, now, &p->fx)
                                             : ref_sched_on_timer(p->sched, id, now, &p->fx);
        if (rc < 0) {
            ref_effects_clear(&p->fx);
            snprintf(p->errmsg, sizeof p->errmsg, "timer: %s", cap_strerror(rc));
            return rc;
        }
        rc = apply_effects(p);
    }
    return rc;
}

/* ---- set-up ---- */

static uint64_t seed_from_os(void)
{
    uint64_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&s, sizeof s, 1, f) != 1)
            s = 0;
        fclose(f);
    }
    if (!s)
        s = (uint64_t)conf_nats_now() ^ UINT64_C(0x9e3779b97f4a7c15);
    return s;
}

static int load_policy(conf_peer *p, char *err, size_t n)
{
    static const char allow_all[] = "version: allow-all\nrules: []\ndefault_decision: allow\n";
    p->safety = ref_safety_new();
    if (!p->safety)
        return CAP_ENOMEM;
    char *text = NULL;
    size_t len = 0;
    const char *path = p->cfg.policy_path;
    if (path) {
        FILE *f = fopen(path, "rb");
        if (!f) {
            conf_errf(err, n, "%s: cannot open the policy", path);
            return CAP_EINVAL;
        }
        text = malloc(MAX_POLICY_BYTES + 1);
        len = text ? fread(text, 1, MAX_POLICY_BYTES + 1, f) : 0;
        fclose(f);
        if (!text)
            return CAP_ENOMEM;
        if (len > MAX_POLICY_BYTES) {
            free(text);
            conf_errf(err, n, "%s: over %zu bytes", path, MAX_POLICY_BYTES);
            return CAP_EINVAL;
        }
    }
    cap_yaml_diag yd;
    memset(&yd, 0, sizeof yd);
    int rc = ref_safety_load(p->safety, text ? text : allow_all, text ? len : strlen(allow_all), &yd);
    free(text);
    if (rc < 0) {
        char buf[512];
        conf_errf(err, n, "%s", cap_yaml_diag_format(&yd, path ? path : "(built-in policy)", buf, sizeof buf));
        return CAP_EINVAL;
    }
    return CAP_OK;
}

int conf_peer_new(const conf_peer_config *cfg, conf_peer **out, char *err, size_t n)
{
    *out = NULL;
    if (!cfg || !cfg->url || (cfg->role != CONF_PEER_WORKER && cfg->role != CONF_PEER_SCHEDULER)) {
        conf_errf(err, n, "a role and a NATS URL are required");
        return CAP_EINVAL;
    }
    if (cfg->role == CONF_PEER_WORKER &&
        (!cfg->worker_id || !*cfg->worker_id || !cfg->pool || !*cfg->pool)) {
        conf_errf(err, n, "a worker needs --id and --pool");
        return CAP_EINVAL;
    }
    conf_peer *p = calloc(1, sizeof *p);
    if (!p)
        return CAP_ENOMEM;
    p->cfg = *cfg;
    p->base_real = conf_nats_now();
    p->base_mono = conf_nats_monotonic();
    int rc = ref_effects_init(&p->fx, 0);
    if (rc)
        goto fail;
    if (cfg->role == CONF_PEER_WORKER) {
        const char *pool = cfg->pool;
        size_t l = strlen(pool) + 8;
        if (!(p->pool_subject = malloc(l))) {
            rc = CAP_ENOMEM;
            goto fail;
        }
        if (strncmp(pool, "job.", 4) == 0)
            snprintf(p->pool_subject, l, "%s", pool);
        else
            snprintf(p->pool_subject, l, "job.%s", pool);
        ref_worker_config c = {0};
        c.worker_id = cfg->worker_id;
        c.pool = pool;
        c.max_parallel_jobs = cfg->max_parallel > 0 ? cfg->max_parallel : 1;
        c.heartbeat_interval_ns = cfg->heartbeat_ns;
        c.handler = worker_handler;
        c.handler_ctx = p;
        rc = ref_worker_init(&c, &p->worker);
        if (rc) {
            conf_errf(err, n, "worker configuration rejected (id, pool, limits)");
            goto fail;
        }
    } else {
        if ((rc = load_policy(p, err, n)))
            goto fail;
        p->rand_state = cfg->seed ? cfg->seed : seed_from_os();
        ref_sched_config c = ref_sched_config_default();
        if (cfg->scheduler_id)
            c.scheduler_id = cfg->scheduler_id;
        c.safety = p->safety;
        c.rand = (ref_rand){ref_rand_splitmix64, &p->rand_state};
        if (cfg->dispatch_timeout_ns)
            c.dispatch_timeout_ns = cfg->dispatch_timeout_ns;
        if (cfg->running_timeout_ns)
            c.running_timeout_ns = cfg->running_timeout_ns;
        if (cfg->no_worker_wait_ns)
            c.no_worker_wait_ns = cfg->no_worker_wait_ns;
        if (cfg->max_retries_set) {
            c.max_retries = cfg->max_retries;
            c.max_retries_set = 1;
        }
        c.dispatch_on_pool = cfg->dispatch_on_pool;
        ref_registry_config rc_reg = ref_registry_config_default();
        if (cfg->worker_grace_ns) {
            rc_reg.heartbeat_interval_ns = cfg->worker_grace_ns;
            rc_reg.grace_multiplier = 1;
            c.registry = &rc_reg;
        }
        ref_breaker_config bc = ref_breaker_config_default();
        if (cfg->breaker_threshold)
            bc.failure_threshold = cfg->breaker_threshold;
        if (cfg->breaker_cool_down_ns)
            bc.cool_down_ns = cfg->breaker_cool_down_ns;
        c.breaker = &bc;
        cap_diag d;
        cap_diag_clear(&d);
        rc = ref_sched_new(&c, &p->sched, &d);
        if (rc) {
            conf_errf(err, n, "scheduler configuration rejected: %s: %s", d.path, d.reason);
            goto fail;
        }
    }
    const char *name = cfg->role == CONF_PEER_WORKER ? cfg->worker_id
                                                     : (cfg->scheduler_id ? cfg->scheduler_id : "scheduler");
    if ((rc = conf_nats_connect(cfg->url, name, 0, &p->nats, err, n)))
        goto fail;
    if (cfg->role == CONF_PEER_WORKER) {
        char group[300];
        snprintf(group, sizeof group, "workers.%s", p->pool_subject + 4);
        if ((rc = conf_nats_subscribe(p->nats, p->pool_subject, group, err, n)) ||
            (rc = conf_nats_subscribe(p->nats, ref_worker_direct_subject(p->worker), NULL, err, n)) ||
            (rc = conf_nats_subscribe(p->nats, REF_WORKER_SUBJECT_CANCEL, NULL, err, n)))
            goto fail;
    } else {
        const char *g = CONF_PEER_SCHEDULER_GROUP;
        if ((rc = conf_nats_subscribe(p->nats, REF_SCHED_SUBJECT_SUBMIT, g, err, n)) ||
            (rc = conf_nats_subscribe(p->nats, REF_SCHED_SUBJECT_RESULT, g, err, n)) ||
            (rc = conf_nats_subscribe(p->nats, REF_SCHED_SUBJECT_PROGRESS, g, err, n)) ||
            (rc = conf_nats_subscribe(p->nats, REF_SCHED_SUBJECT_CANCEL, NULL, err, n)) ||
            (rc = conf_nats_subscribe(p->nats, REF_SCHED_SUBJECT_HEARTBEAT, NULL, err, n)) ||
            (rc = conf_nats_subscribe(p->nats, REF_SCHED_SUBJECT_HANDSHAKE, NULL, err, n)) ||
            (rc = conf_nats_subscribe(p->nats, CONF_PEER_CONTROL_PREFIX ">", NULL, err, n)))
            goto fail;
    }
    if ((rc = conf_nats_flush(p->nats, 0, err, n)))
        goto fail;
    *out = p;
    return CAP_OK;
fail:
    conf_peer_free(p);
    return rc;
}

int conf_peer_run(conf_peer *p, volatile sig_atomic_t *stop, char *err, size_t n)
{
    int64_t now = peer_now(p);
    int rc = p->cfg.role == CONF_PEER_WORKER ? ref_worker_start(p->worker, now, &p->fx)
                                             : ref_sched_start(p->sched, now, &p->fx);
    if (rc < 0) {
        conf_errf(err, n, "start: %s", cap_strerror(rc));
        return rc;
    }
    if ((rc = apply_effects(p))) {
        conf_errf(err, n, "start: %s", p->errmsg[0] ? p->errmsg : cap_strerror(rc));
        return rc;
    }
    logf_(p, "%s ready", p->cfg.role == CONF_PEER_WORKER ? "worker" : "scheduler");
    while (!*stop) {
        int64_t due = next_due(p);
        int64_t wait_ms = 200; /* look at *stop at least this often */
        if (due != INT64_MAX) {
            int64_t left = (due - peer_now(p) + 999999) / 1000000;
            if (left < wait_ms)
                wait_ms = left < 0 ? 0 : left;
        }
        conf_nats_msg m;
        rc = conf_nats_next(p->nats, wait_ms, &m, err, n);
        if (rc < 0)
            return CAP_EIO; /* err: "connection lost" */
        if (rc == 1) {
            on_message(p, &m);
            conf_nats_msg_free(&m);
        }
        if (!p->err)
            p->err = fire_timers(p);
        if (p->err) {
            conf_errf(err, n, "%s", p->errmsg[0] ? p->errmsg : cap_strerror(p->err));
            return p->err == CAP_EIO ? CAP_EIO : p->err;
        }
    }
    conf_nats_flush(p->nats, 1000, NULL, 0);
    return CAP_OK;
}

conf_peer_stats conf_peer_stats_get(const conf_peer *p) { return p->st; }

void conf_peer_free(conf_peer *p)
{
    if (!p)
        return;
    conf_nats_close(p->nats);
    ref_worker_free(p->worker);
    ref_sched_free(p->sched);
    ref_safety_free(p->safety);
    ref_effects_free(&p->fx);
    for (size_t i = 0; i < p->n_prog; i++)
        progress_drop(&p->prog[i]);
    free(p->prog);
    free(p->timers);
    free(p->pool_subject);
    free(p);
}
