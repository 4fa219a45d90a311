/* The trace matcher; see conf_match.h and docs/certify.md. */
#include "conf_match.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_json.h"
#include "cap_schema.h"
#include "conf_json.h"
#include "ref_scheduler.h"
#include "ref_strmap.h"

#define NONE ((size_t)-1)
#define DEFAULT_WINDOW_NS (INT64_C(2) * 1000000000)
#define VERDICT_MAX 16384
#define MAX_DIFF_LINES 20

static const char *const BIND_KEYS[] = {"traceId",  "senderId",         "jobId",      "parentJobId",
                                        "dispatchId", "workerId", "assignedWorkerId", "componentId"};
/* Free text, measurements, and the Cordum checkpoint hand-over (an env key
 * the reference scheduler fills from heartbeats, not part of CAP). */
static const char *const IGNORE_KEYS[] = {"createdAt", "executionMs", "errorMessage", "message",
                                          "reason",    "resultPtr",   "signature",
                                          "CORDUM_LAST_MEMO"};
/* Non-job packets (heartbeats, alerts) also carry their own trace ids and
 * load figures, which say nothing about conformance. */
static const char *const HEARTBEAT_IGNORE[] = {"traceId",     "activeJobs",  "cpuLoad",
                                               "gpuUtilization", "memoryLoad", "progressPct",
                                               "lastMemo"};

typedef struct {
    int64_t t;
    char *subject, *sender;
    cJSON *json;
    const char *payload; /* the payload key of json ("jobResult", ...) */
    char *job;           /* golden job id, NULL for a non-job record */
    int expected;
    int done;
    int64_t done_at;
    size_t prev;         /* the record before it in its job, NONE */
    /* When done, this record changes the load of worker load_worker (its
     * sender, borrowed) by load: +1 for the worker's first progress report
     * on a job, -1 for its result that ends it; 0: none (load_change). */
    int load;
    const char *load_worker;
} grec;

typedef struct {
    char *g, *o;
} bpair;

struct conf_match {
    int64_t window;
    char *iut[CONF_MATCH_MAX_SENDERS];
    size_t n_iut;
    grec *recs;
    size_t n, cap;
    ref_strmap last_of_job;  /* golden job id -> index + 1 of its latest record */
    ref_strmap held;         /* "job\x1fworker" -> 1 while that golden worker holds the job (built by add) */
    ref_strmap live_load;    /* golden worker id -> 1 + jobs it holds in this run (done records) */
    ref_strmap fwd;          /* golden value -> observed value (owned strings) */
    ref_strmap inv;          /* observed value -> golden value (borrowed from fwd's keys) */
    bpair *pairs;            /* every binding, for freeing */
    size_t n_pairs, cap_pairs;
    int hb_seen[CONF_MATCH_MAX_SENDERS];
    int64_t start;
    size_t matched, played, observed, expected;
    char *verdict;
    long div_golden; /* golden record the first divergence is about, -1: none or not one record */
};

/* ---- helpers ---- */

static int in_list(const char *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, list[i]) == 0)
            return 1;
    return 0;
}
#define IN(k, arr) in_list((k), (arr), sizeof(arr) / sizeof(arr)[0])

static void fail(conf_match *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(conf_match *m, const char *fmt, ...)
{
    if (m->verdict)
        return;
    m->verdict = malloc(VERDICT_MAX);
    if (!m->verdict)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->verdict, VERDICT_MAX, fmt, ap);
    va_end(ap);
}

static int iut_index(const conf_match *m, const char *sender)
{
    for (size_t i = 0; i < m->n_iut; i++)
        if (strcmp(m->iut[i], sender ? sender : "") == 0)
            return (int)i;
    return -1;
}

static const char *bound(const conf_match *m, const char *g) { return ref_strmap_get(&m->fwd, g); }

const char *conf_match_binding(const conf_match *m, const char *g) { return bound(m, g); }

static int bind(conf_match *m, const char *g, const char *o)
{
    if (bound(m, g))
        return CAP_OK;
    if (conf_grow((void **)&m->pairs, &m->cap_pairs, m->n_pairs + 1, sizeof *m->pairs))
        return CAP_ENOMEM;
    bpair p = {strdup(g), strdup(o)};
    if (!p.g || !p.o || ref_strmap_put(&m->fwd, p.g, p.o) ||
        (!ref_strmap_get(&m->inv, p.o) && ref_strmap_put(&m->inv, p.o, p.g))) {
        ref_strmap_del(&m->fwd, g);
        free(p.g);
        free(p.o);
        return CAP_ENOMEM;
    }
    m->pairs[m->n_pairs++] = p;
    return CAP_OK;
}

/* The payload key of a packet's JSON form and the job it is about. */
static const char *payload_key(const cJSON *j)
{
    static const char *const keys[] = {"jobRequest", "jobResult", "heartbeat", "alert",
                                       "jobProgress", "jobCancel", "handshake",
                                       "workerHandshakeChallengeRequest", "workerHandshakeChallenge",
                                       "workerHandshakeAuthenticate", "workerHandshakeResult"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (cJSON_GetObjectItemCaseSensitive(j, keys[i]))
            return keys[i];
    return "none";
}

static const char *job_of(const cJSON *j, const char *payload)
{
    if (strncmp(payload, "job", 3) != 0)
        return NULL;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, payload);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "jobId");
    return cJSON_IsString(id) && id->valuestring[0] ? id->valuestring : NULL;
}

static const char *payload_title(const char *k)
{
    if (strcmp(k, "jobRequest") == 0)
        return "JobRequest";
    if (strcmp(k, "jobResult") == 0)
        return "JobResult";
    if (strcmp(k, "jobProgress") == 0)
        return "JobProgress";
    if (strcmp(k, "jobCancel") == 0)
        return "JobCancel";
    if (strcmp(k, "heartbeat") == 0)
        return "Heartbeat";
    if (strcmp(k, "alert") == 0)
        return "SystemAlert";
    if (strcmp(k, "handshake") == 0)
        return "Handshake";
    return k;
}

/* Decodes packet bytes into their JSON form (a cJSON tree the caller owns). */
static int packet_json(const uint8_t *bytes, size_t len, cJSON **out, cap_diag *d)
{
    cap_bounds b = cap_bounds_default();
    cap_packet *p = NULL;
    int rc = cap_packet_decode(bytes, len, &b, CAP_DECODE_LENIENT, &p, d);
    if (rc)
        return rc;
    char *text = NULL;
    rc = cap_json_from_message(&p->base, 0, &text);
    cap_packet_free(p);
    if (rc)
        return rc;
    *out = cJSON_Parse(text);
    free(text);
    return *out ? CAP_OK : CAP_ENOMEM;
}

static void fmt_time(int64_t ns, char *buf, size_t n)
{
    const char *sign = ns < 0 ? "-" : "+";
    if (ns < 0)
        ns = -ns;
    snprintf(buf, n, "%s%lld.%03llds", sign, (long long)(ns / 1000000000),
             (long long)((ns / 1000000) % 1000));
}

/* ---- life cycle ---- */

int conf_match_new(const conf_match_config *cfg, conf_match **out)
{
    *out = NULL;
    if (!cfg || cfg->n_iut_senders == 0 || cfg->n_iut_senders > CONF_MATCH_MAX_SENDERS ||
        cfg->window_ns < 0)
        return CAP_EINVAL;
    conf_match *m = calloc(1, sizeof *m);
    if (m)
        m->div_golden = -1;
    if (!m)
        return CAP_ENOMEM;
    m->window = cfg->window_ns ? cfg->window_ns : DEFAULT_WINDOW_NS;
    ref_strmap_init(&m->last_of_job);
    ref_strmap_init(&m->held);
    ref_strmap_init(&m->live_load);
    ref_strmap_init(&m->fwd);
    ref_strmap_init(&m->inv);
    for (size_t i = 0; i < cfg->n_iut_senders; i++) {
        if (!(m->iut[i] = strdup(cfg->iut_senders[i] ? cfg->iut_senders[i] : ""))) {
            conf_match_free(m);
            return CAP_ENOMEM;
        }
        m->n_iut = i + 1;
    }
    *out = m;
    return CAP_OK;
}

void conf_match_free(conf_match *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->recs[i].subject);
        free(m->recs[i].sender);
        free(m->recs[i].job);
        cJSON_Delete(m->recs[i].json);
    }
    free(m->recs);
    for (size_t i = 0; i < m->n_pairs; i++) {
        free(m->pairs[i].g);
        free(m->pairs[i].o);
    }
    free(m->pairs);
    ref_strmap_free(&m->last_of_job);
    ref_strmap_free(&m->held);
    ref_strmap_free(&m->live_load);
    ref_strmap_free(&m->fwd);
    ref_strmap_free(&m->inv);
    for (size_t i = 0; i < m->n_iut; i++)
        free(m->iut[i]);
    free(m->verdict);
    free(m);
}

/* The workflow a golden job submission (a JobRequest on the submit
 * subject, not a dispatch) belongs to and its step, or NULL. */
static const char *workflow_step(const grec *r, int *step)
{
    if (strcmp(r->payload, "jobRequest") != 0 || strcmp(r->subject, REF_SCHED_SUBJECT_SUBMIT) != 0)
        return NULL;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r->json, "jobRequest");
    const cJSON *wf = cJSON_GetObjectItemCaseSensitive(p, "workflowId");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "stepIndex");
    if (!cJSON_IsString(wf) || !wf->valuestring[0] || !cJSON_IsNumber(st))
        return NULL;
    *step = st->valueint;
    return wf->valuestring;
}

/* For the first record of a played job: when it submits step k > 1 of a
 * workflow, the latest record so far of the job that submitted step k - 1
 * (the outcome it follows: the gateway submits the next step when the
 * previous one has ended), else NONE. Playing it then waits for that record, and
 * comes the golden gap after it, not at its golden time: otherwise an
 * implementation a few milliseconds slower than the golden run would get
 * step k while still busy with step k - 1, which no real run can do. */
static size_t previous_step(const conf_match *m, const grec *r)
{
    int step = 0;
    const char *wf = workflow_step(r, &step);
    if (!wf || step <= 1)
        return NONE;
    for (size_t i = m->n; i-- > 0;) {
        int s = 0;
        const char *w = workflow_step(&m->recs[i], &s);
        if (w && s == step - 1 && strcmp(w, wf) == 0 && m->recs[i].job) {
            uintptr_t last = (uintptr_t)ref_strmap_get(&m->last_of_job, m->recs[i].job);
            return last ? last - 1 : NONE;
        }
    }
    return NONE;
}

/* Which worker's load golden job record r changes (r->load, r->load_worker),
 * in golden order. A worker holds a job from its first report on it (a
 * JobProgress) until its JobResult, as the golden run's worker counted it:
 * a dispatch lost on the way never loads it, and a worker declared lost
 * still runs what it holds. */
static int load_change(conf_match *m, grec *r)
{
    int result = strcmp(r->payload, "jobResult") == 0;
    if (!result && strcmp(r->payload, "jobProgress") != 0)
        return CAP_OK;
    const char *w = r->sender;
    if (!w || !*w)
        return CAP_OK;
    size_t n = strlen(r->job) + strlen(w) + 2;
    char *key = malloc(n);
    if (!key)
        return CAP_ENOMEM;
    snprintf(key, n, "%s\x1f%s", r->job, w);
    int held = ref_strmap_get(&m->held, key) != NULL, rc = CAP_OK;
    if (result && held) {
        ref_strmap_del(&m->held, key);
        r->load = -1;
    } else if (!result && !held) {
        rc = ref_strmap_put(&m->held, key, (void *)1);
        r->load = rc ? 0 : 1;
    }
    r->load_worker = r->load ? w : NULL;
    free(key);
    if (!rc && r->load && !ref_strmap_get(&m->live_load, w))
        rc = ref_strmap_put(&m->live_load, w, (void *)(uintptr_t)1);
    return rc;
}

/* Golden record r is done (played or matched) at real time t. */
static void mark_done(conf_match *m, grec *r, int64_t t)
{
    r->done = 1;
    r->done_at = t;
    if (r->load) {
        uintptr_t v = (uintptr_t)ref_strmap_get(&m->live_load, r->load_worker);
        if (v && (r->load > 0 || v > 1)) /* present since add; the put only replaces */
            ref_strmap_put(&m->live_load, r->load_worker, (void *)(v + (uintptr_t)(intptr_t)r->load));
    }
}

int conf_match_add_golden(conf_match *m, int64_t t, const char *subject, const char *sender,
                          const uint8_t *bytes, size_t len, cap_diag *d)
{
    if (m->n >= CONF_MATCH_MAX_RECORDS)
        return cap_diag_set(d, CAP_EFULL, -1, "golden", "more than %zu records", CONF_MATCH_MAX_RECORDS);
    if (!subject || !*subject)
        return cap_diag_set(d, CAP_EINVAL, -1, "golden", "a record without a subject");
    cJSON *j = NULL;
    int rc = packet_json(bytes, len, &j, d);
    if (rc)
        return rc;
    if (conf_grow((void **)&m->recs, &m->cap, m->n + 1, sizeof *m->recs)) {
        cJSON_Delete(j);
        return CAP_ENOMEM;
    }
    grec *r = &m->recs[m->n];
    memset(r, 0, sizeof *r);
    r->t = t;
    r->json = j;
    r->payload = payload_key(j);
    r->subject = strdup(subject);
    r->sender = strdup(sender ? sender : "");
    const char *job = job_of(j, r->payload);
    r->job = job ? strdup(job) : NULL;
    r->prev = NONE;
    r->expected = iut_index(m, r->sender) >= 0;
    if (!r->subject || !r->sender || (job && !r->job)) {
        free(r->subject);
        free(r->sender);
        free(r->job);
        cJSON_Delete(j);
        return CAP_ENOMEM;
    }
    if (r->job) {
        uintptr_t last = (uintptr_t)ref_strmap_get(&m->last_of_job, r->job);
        if (last)
            r->prev = last - 1;
        else if (!r->expected)
            r->prev = previous_step(m, r);
        if (ref_strmap_put(&m->last_of_job, r->job, (void *)(uintptr_t)(m->n + 1))) {
            free(r->subject);
            free(r->sender);
            free(r->job);
            cJSON_Delete(j);
            return CAP_ENOMEM;
        }
    }
    if (r->job && (rc = load_change(m, r))) {
        free(r->subject);
        free(r->sender);
        free(r->job);
        cJSON_Delete(j);
        return rc;
    }
    m->expected += r->expected;
    m->n++;
    return CAP_OK;
}

size_t conf_match_golden_count(const conf_match *m) { return m->n; }
size_t conf_match_expected_count(const conf_match *m) { return m->expected; }

void conf_match_start(conf_match *m, int64_t start) { m->start = start; }

/* ---- readiness and due times ---- */

static int ready(const conf_match *m, size_t i)
{
    for (size_t p = m->recs[i].prev; p != NONE; p = m->recs[p].prev)
        if (!m->recs[p].done)
            return 0;
    return 1;
}

static int64_t due_of(const conf_match *m, size_t i)
{
    const grec *r = &m->recs[i];
    if (r->prev == NONE || !m->recs[r->prev].done)
        return m->start + r->t;
    const grec *p = &m->recs[r->prev];
    return p->done_at + (r->t - p->t);
}

static int jobs_done(const conf_match *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->recs[i].job && !m->recs[i].done)
            return 0;
    return 1;
}

int conf_match_next_play(conf_match *m, int64_t now, size_t *idx, int64_t *next_due)
{
    int64_t best = INT64_MAX;
    size_t bi = NONE;
    int all_jobs = jobs_done(m);
    for (size_t i = 0; i < m->n; i++) {
        const grec *r = &m->recs[i];
        if (r->expected || r->done || !ready(m, i))
            continue;
        if (!r->job && all_jobs)
            continue;
        int64_t due = due_of(m, i);
        if (due < best) {
            best = due;
            bi = i;
        }
    }
    *next_due = best;
    if (bi != NONE && best <= now) {
        *idx = bi;
        return 1;
    }
    return 0;
}

/* ---- substitution ---- */

/* Replaces bindable strings in j (a copy) with their bound values; with
 * bind_self, an unbound one is bound to itself first. */
static int substitute(conf_match *m, cJSON *j, int bind_self)
{
    for (cJSON *c = j ? j->child : NULL; c; c = c->next) {
        if (cJSON_IsString(c) && c->string && IN(c->string, BIND_KEYS) && c->valuestring[0]) {
            const char *b = bound(m, c->valuestring);
            if (!b && bind_self) {
                if (bind(m, c->valuestring, c->valuestring))
                    return CAP_ENOMEM;
                continue;
            }
            if (b && strcmp(b, c->valuestring) != 0 && !cJSON_SetValuestring(c, b))
                return CAP_ENOMEM;
        } else if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            if (substitute(m, c, bind_self))
                return CAP_ENOMEM;
        }
    }
    return CAP_OK;
}

/* The subject with every bound token replaced; buf holds 1024 bytes. */
static const char *subst_subject(const conf_match *m, const char *s, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    const char *p = s;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        char tok[512];
        if (l >= sizeof tok)
            l = sizeof tok - 1;
        memcpy(tok, p, l);
        tok[l] = '\0';
        const char *b = bound(m, tok);
        int w = snprintf(buf + o, n - o, "%s%s", o ? "." : "", b ? b : tok);
        if (w < 0 || (size_t)w >= n - o)
            break;
        o += (size_t)w;
        if (!dot)
            break;
        p = dot + 1;
    }
    return buf;
}

/* A played heartbeat reports the jobs its worker holds in this run, not the
 * golden figure: that was true at the golden time only. An implementation
 * that dispatches a little later than the golden run would otherwise hear
 * the worker call itself busy with the very job it has not yet been given
 * (and pass it over), or idle while it still runs one. Workers that hold
 * no job anywhere in the golden trace keep their golden figures. */
static int live_heartbeat(const conf_match *m, const grec *r, cJSON *c)
{
    uintptr_t v;
    if (strcmp(r->payload, "heartbeat") != 0 || !(v = (uintptr_t)ref_strmap_get(&m->live_load, r->sender)))
        return CAP_OK;
    cJSON *hb = cJSON_GetObjectItemCaseSensitive(c, "heartbeat");
    if (!cJSON_IsObject(hb))
        return CAP_OK;
    cJSON_DeleteItemFromObjectCaseSensitive(hb, "activeJobs");
    if (v > 1 && !cJSON_AddNumberToObject(hb, "activeJobs", (double)(v - 1)))
        return CAP_ENOMEM;
    return CAP_OK;
}

int conf_match_render(conf_match *m, size_t idx, int64_t now, char **subject, uint8_t **bytes,
                      size_t *len)
{
    *subject = NULL;
    *bytes = NULL;
    *len = 0;
    if (idx >= m->n)
        return CAP_EINVAL;
    grec *r = &m->recs[idx];
    cJSON *c = cJSON_Duplicate(r->json, 1);
    if (!c || substitute(m, c, 1) || live_heartbeat(m, r, c)) {
        cJSON_Delete(c);
        return CAP_ENOMEM;
    }
    /* subject tokens that are golden identifiers bind to themselves too */
    char sb[1024];
    subst_subject(m, r->subject, sb, sizeof sb);
    char *text = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    if (!text)
        return CAP_ENOMEM;
    ProtobufCMessage *msg = NULL;
    cap_diag d;
    int rc = cap_json_to_message(&cordum__agent__v1__bus_packet__descriptor, text, strlen(text), 0,
                                 &msg, &d);
    free(text);
    if (rc)
        return rc;
    cap_packet *p = (cap_packet *)msg;
    if (p->created_at) {
        int64_t s = now / 1000000000, ns = now % 1000000000;
        if (ns < 0) {
            ns += 1000000000;
            s--;
        }
        p->created_at->seconds = s;
        p->created_at->nanos = (int32_t)ns;
    }
    rc = cap_encode(&p->base, bytes, len);
    cap_packet_free(p);
    if (rc)
        return rc;
    if (!(*subject = strdup(sb))) {
        free(*bytes);
        *bytes = NULL;
        return CAP_ENOMEM;
    }
    return CAP_OK;
}

void conf_match_played(conf_match *m, size_t idx, int64_t t)
{
    if (idx >= m->n || m->recs[idx].done)
        return;
    mark_done(m, &m->recs[idx], t);
    m->played++;
}

/* ---- comparison ---- */

typedef struct {
    conf_match *m;
    bpair tent[64];     /* bindings this comparison would make (borrowed strings) */
    size_t n_tent;
    char *out;          /* diff lines */
    size_t len, cap;
    size_t lines;
    int hb;             /* comparing heartbeats */
} cmpctx;

static void addline(cmpctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addline(cmpctx *x, const char *fmt, ...)
{
    x->lines++;
    if (x->lines > MAX_DIFF_LINES || !x->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(x->out + x->len, x->cap - x->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        x->len += (size_t)w < x->cap - x->len ? (size_t)w : x->cap - x->len - 1;
}

static char *short_json(const cJSON *v)
{
    if (!v)
        return strdup("(absent)");
    char *t = cJSON_PrintUnformatted(v);
    if (t && strlen(t) > 200)
        strcpy(t + 196, "...");
    return t ? t : strdup("?");
}

static const char *tent_get(const cmpctx *x, const char *g, int inverse)
{
    for (size_t i = 0; i < x->n_tent; i++)
        if (strcmp(inverse ? x->tent[i].o : x->tent[i].g, g) == 0)
            return inverse ? x->tent[i].g : x->tent[i].o;
    return NULL;
}

/* A bindable value: g (golden) against o (observed). */
static void cmp_bind(cmpctx *x, const char *path, const char *g, const char *o)
{
    if (!g[0] || !o[0]) {
        if (strcmp(g, o) != 0)
            addline(x, "    %s: \"%s\" → \"%s\"\n", path, g, o);
        return;
    }
    const char *b = bound(x->m, g);
    if (!b)
        b = tent_get(x, g, 0);
    if (b) {
        if (strcmp(b, o) != 0)
            addline(x, "    %s: \"%s\" (bound earlier, golden \"%s\") → \"%s\"\n", path, b, g, o);
        return;
    }
    const char *other = ref_strmap_get(&x->m->inv, o);
    if (!other)
        other = tent_get(x, o, 1);
    if (other && strcmp(other, g) != 0) {
        addline(x, "    %s: a new identifier for golden \"%s\" → \"%s\", already bound to golden \"%s\"\n",
                path, g, o, other);
        return;
    }
    if (x->n_tent < sizeof x->tent / sizeof x->tent[0])
        x->tent[x->n_tent++] = (bpair){(char *)g, (char *)o};
}

static int ignored(const cmpctx *x, const char *key)
{
    return key && (IN(key, IGNORE_KEYS) || (x->hb && IN(key, HEARTBEAT_IGNORE)));
}

/* 1 when v holds something that is compared (an object whose members are
 * all ignored counts as nothing). */
static int significant(const cmpctx *x, const cJSON *v)
{
    if (!cJSON_IsObject(v))
        return 1;
    for (const cJSON *c = v->child; c; c = c->next)
        if (!ignored(x, c->string) && significant(x, c))
            return 1;
    return 0;
}

static void cmp(cmpctx *x, const char *path, const char *key, const cJSON *e, const cJSON *o)
{
    if (ignored(x, key))
        return;
    if ((!e && !significant(x, o)) || (!o && !significant(x, e)))
        return;
    if (key && e && o && cJSON_IsString(e) && cJSON_IsString(o) && IN(key, BIND_KEYS)) {
        cmp_bind(x, path, e->valuestring, o->valuestring);
        return;
    }
    if (e && o && cJSON_IsObject(e) && cJSON_IsObject(o)) {
        for (const cJSON *c = e->child; c; c = c->next) {
            char p[512];
            snprintf(p, sizeof p, "%s.%s", path, c->string);
            cmp(x, p, c->string, c, cJSON_GetObjectItemCaseSensitive(o, c->string));
        }
        for (const cJSON *c = o->child; c; c = c->next)
            if (!cJSON_GetObjectItemCaseSensitive(e, c->string)) {
                char p[512];
                snprintf(p, sizeof p, "%s.%s", path, c->string);
                cmp(x, p, c->string, NULL, c);
            }
        return;
    }
    if (e && o && cJSON_IsArray(e) && cJSON_IsArray(o)) {
        int ne = cJSON_GetArraySize(e), no = cJSON_GetArraySize(o);
        for (int i = 0; i < ne || i < no; i++) {
            char p[512];
            snprintf(p, sizeof p, "%s[%d]", path, i);
            cmp(x, p, key, cJSON_GetArrayItem(e, i), cJSON_GetArrayItem(o, i));
        }
        return;
    }
    if (e && o && cJSON_Compare(e, o, 1))
        return;
    /* the expected side as the implementation should have sent it */
    cJSON *es = e && (cJSON_IsObject(e) || cJSON_IsArray(e)) ? cJSON_Duplicate(e, 1) : NULL;
    if (es)
        substitute(x->m, es, 0);
    char *a = short_json(es ? es : e), *b = short_json(o);
    cJSON_Delete(es);
    addline(x, "    %s: %s → %s\n", path, a ? a : "?", b ? b : "?");
    free(a);
    free(b);
}

/* Compares expected record r (golden JSON) with the observed JSON. Returns
 * the number of differing fields; the lines are in x->out. */
static size_t compare(cmpctx *x, const grec *r, const char *subject, const cJSON *obs)
{
    char sb[1024];
    subst_subject(x->m, r->subject, sb, sizeof sb);
    int dispatch_alias = strcmp(r->payload, "jobRequest") == 0 && strncmp(sb, "worker.", 7) == 0 &&
                         strncmp(subject, "job.", 4) == 0;
    if (strcmp(sb, subject) != 0 && !dispatch_alias)
        addline(x, "    subject: \"%s\" → \"%s\"\n", sb, subject);
    x->hb = r->job == NULL;
    cmp(x, "$", NULL, r->json, obs);
    return x->lines;
}

static int commit(cmpctx *x)
{
    for (size_t i = 0; i < x->n_tent; i++)
        if (bind(x->m, x->tent[i].g, x->tent[i].o))
            return CAP_ENOMEM;
    return CAP_OK;
}

static char *expected_json(conf_match *m, const grec *r)
{
    cJSON *c = cJSON_Duplicate(r->json, 1);
    if (c)
        substitute(m, c, 0);
    char *t = c ? cJSON_PrintUnformatted(c) : NULL;
    cJSON_Delete(c);
    return t;
}

static void diverge(conf_match *m, const char *what, const grec *r, size_t idx, int64_t t,
                    const char *subject, const cJSON *obs, const char *diff)
{
    char *ej = r ? expected_json(m, r) : NULL;
    char *oj = obs ? cJSON_PrintUnformatted(obs) : NULL;
    char gt[32], ot[32];
    fmt_time(r ? r->t : 0, gt, sizeof gt);
    fmt_time(t - m->start, ot, sizeof ot);
    if (r && !m->verdict)
        m->div_golden = (long)idx;
    if (r)
        fail(m,
             "%s%s%s: golden record %zu (%s from %s on %s at %s)\n"
             "  expected: %s\n"
             "  observed: %s on %s at %s\n"
             "  differences (path: expected → observed):\n%s",
             what, r->job ? " for job " : "", r->job ? r->job : "", idx + 1, payload_title(r->payload),
             r->sender, r->subject, gt, ej ? ej : "?", oj ? oj : "?", subject, ot, diff);
    else
        fail(m, "%s\n  observed: %s on %s at %s", what, oj ? oj : "?", subject, ot);
    free(ej);
    free(oj);
}

/* The first expected record of golden job gj not matched yet. */
static size_t first_open(const conf_match *m, const char *gj)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->recs[i].expected && !m->recs[i].done && m->recs[i].job && strcmp(m->recs[i].job, gj) == 0)
            return i;
    return NONE;
}

static int observe_job(conf_match *m, int64_t t, const char *subject, const cJSON *obs,
                       const char *payload, const char *oj)
{
    const char *gj = ref_strmap_get(&m->inv, oj);
    size_t idx = NONE;
    if (gj) {
        idx = first_open(m, gj);
    } else {
        /* a job id the IUT made up: the first golden job with an unbound id
         * whose next expected record has this payload */
        for (size_t i = 0; i < m->n && idx == NONE; i++) {
            const grec *r = &m->recs[i];
            if (r->expected && !r->done && r->job && !bound(m, r->job) &&
                strcmp(r->payload, payload) == 0 && first_open(m, r->job) == i)
                idx = i;
        }
    }
    if (idx == NONE) {
        char what[600];
        snprintf(what, sizeof what,
                 gj ? "unexpected packet for job %s: every golden packet the implementation owes for it was already seen"
                    : "unexpected packet: job %s is not in the golden trace",
                 oj);
        diverge(m, what, NULL, 0, t, subject, obs, "");
        return 1;
    }
    grec *r = &m->recs[idx];
    char diff[8192];
    cmpctx x = {.m = m, .out = diff, .cap = sizeof diff};
    diff[0] = '\0';
    if (compare(&x, r, subject, obs)) {
        if (x.lines > MAX_DIFF_LINES)
            snprintf(diff + strlen(diff), sizeof diff - strlen(diff), "    ... %zu more\n",
                     x.lines - MAX_DIFF_LINES);
        diverge(m, "mismatch", r, idx, t, subject, obs, diff);
        return 1;
    }
    if (commit(&x))
        return CAP_ENOMEM;
    int64_t due = due_of(m, idx);
    int pred_open = r->prev != NONE && !m->recs[r->prev].done;
    mark_done(m, r, t);
    m->matched++;
    int64_t off = t - due;
    if (pred_open || off > m->window || off < -m->window) {
        char what[600], a[32], b[32], w[32];
        fmt_time(t - m->start, a, sizeof a);
        fmt_time(due - m->start, b, sizeof b);
        fmt_time(m->window, w, sizeof w);
        if (pred_open)
            snprintf(what, sizeof what,
                     "timing: observed at %s, before the packet that precedes it in the job "
                     "(golden record %zu) was on the bus",
                     a, r->prev + 1);
        else
            snprintf(what, sizeof what, "timing: observed at %s, due at %s within a window of %s", a,
                     b, w + 1);
        diverge(m, what, r, idx, t, subject, obs, "    (contents matched)\n");
        return 1;
    }
    return 0;
}

static int observe_other(conf_match *m, int64_t t, const char *subject, const cJSON *obs,
                         const char *payload)
{
    int hb = strcmp(payload, "heartbeat") == 0;
    size_t first = NONE;
    char diff[8192];
    diff[0] = '\0';
    for (size_t i = 0; i < m->n; i++) {
        grec *r = &m->recs[i];
        if (!r->expected || r->job || strcmp(r->payload, payload) != 0)
            continue;
        if (hb) { /* the sender's first golden heartbeat */
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(obs, "senderId");
            const char *gs = cJSON_IsString(s) ? ref_strmap_get(&m->inv, s->valuestring) : NULL;
            if (gs && strcmp(gs, r->sender) != 0)
                continue;
            if (!gs && bound(m, r->sender))
                continue;
        }
        cmpctx x = {.m = m, .out = diff, .cap = sizeof diff};
        diff[0] = '\0';
        if (compare(&x, r, subject, obs) == 0) {
            if (commit(&x))
                return CAP_ENOMEM;
            if (hb) {
                int k = iut_index(m, r->sender);
                if (k >= 0)
                    m->hb_seen[k] = 1;
            } else if (!r->done) {
                r->done = 1;
                r->done_at = t;
                m->matched++;
            }
            return 0;
        }
        if (first == NONE) {
            first = i;
            if (hb)
                break;
        }
    }
    if (first == NONE) {
        char what[256];
        snprintf(what, sizeof what, "unexpected %s: the golden trace has none from the implementation",
                 payload_title(payload));
        diverge(m, what, NULL, 0, t, subject, obs, "");
        return 1;
    }
    /* report against the first candidate */
    cmpctx x = {.m = m, .out = diff, .cap = sizeof diff};
    diff[0] = '\0';
    compare(&x, &m->recs[first], subject, obs);
    diverge(m, hb ? "inconsistent heartbeat" : "mismatch", &m->recs[first], first, t, subject, obs, diff);
    return 1;
}

int conf_match_observe(conf_match *m, int64_t t, const char *subject, const uint8_t *bytes, size_t len)
{
    m->observed++;
    if (m->verdict)
        return 1;
    cJSON *obs = NULL;
    cap_diag d;
    cap_diag_clear(&d);
    int rc = packet_json(bytes, len, &obs, &d);
    if (rc == CAP_ENOMEM)
        return rc;
    if (rc) {
        char line[512], ot[32];
        fmt_time(t - m->start, ot, sizeof ot);
        fail(m, "undecodable packet from the implementation on %s at %s: %s", subject, ot,
             cap_diag_format(&d, line, sizeof line));
        return 1;
    }
    const char *payload = payload_key(obs);
    const char *job = job_of(obs, payload);
    rc = job ? observe_job(m, t, subject, obs, payload, job) : observe_other(m, t, subject, obs, payload);
    cJSON_Delete(obs);
    return rc;
}

int conf_match_check_missing(conf_match *m, int64_t now)
{
    if (m->verdict)
        return 1;
    for (size_t i = 0; i < m->n; i++) {
        const grec *r = &m->recs[i];
        if (!r->expected || r->done || !r->job || !ready(m, i))
            continue;
        int64_t due = due_of(m, i);
        if (now <= due + m->window)
            continue;
        char a[32], w[32], waited[32];
        fmt_time(due - m->start, a, sizeof a);
        fmt_time(m->window, w, sizeof w);
        int64_t since = r->prev != NONE ? m->recs[r->prev].done_at : m->start;
        fmt_time(now - since, waited, sizeof waited);
        char *ej = expected_json(m, r);
        m->div_golden = (long)i;
        fail(m,
             "missing packet for job %s: awaited golden record %zu (%s from %s on %s) for %s, "
             "due at %s within a window of %s; nothing matching came\n"
             "  expected: %s",
             r->job, i + 1, payload_title(r->payload), r->sender, r->subject, waited + 1, a, w + 1,
             ej ? ej : "?");
        free(ej);
        return 1;
    }
    return 0;
}

int conf_match_complete(const conf_match *m)
{
    for (size_t i = 0; i < m->n; i++) {
        const grec *r = &m->recs[i];
        if (r->done)
            continue;
        if (r->expected && r->job)
            return 0;
        if (!r->expected && r->job)
            return 0;
    }
    return 1;
}

int conf_match_finish(conf_match *m, int64_t now)
{
    if (m->verdict)
        return 1;
    for (size_t i = 0; i < m->n; i++) {
        const grec *r = &m->recs[i];
        if (!r->expected || r->done || !r->job)
            continue;
        char *ej = expected_json(m, r);
        char waited[32];
        fmt_time(now - m->start, waited, sizeof waited);
        m->div_golden = (long)i;
        fail(m,
             "missing packet for job %s: golden record %zu (%s from %s on %s) never came "
             "(the case ran %s)\n  expected: %s",
             r->job, i + 1, payload_title(r->payload), r->sender, r->subject, waited + 1,
             ej ? ej : "?");
        free(ej);
        return 1;
    }
    for (size_t k = 0; k < m->n_iut; k++) {
        if (m->hb_seen[k])
            continue;
        for (size_t i = 0; i < m->n; i++)
            if (m->recs[i].expected && strcmp(m->recs[i].payload, "heartbeat") == 0 &&
                strcmp(m->recs[i].sender, m->iut[k]) == 0) {
                fail(m, "missing heartbeats: the golden trace has heartbeats from %s, the "
                        "implementation sent none",
                     m->iut[k]);
                return 1;
            }
    }
    return 0;
}

const char *conf_match_verdict(const conf_match *m) { return m->verdict; }

long conf_match_divergence_record(const conf_match *m) { return m->verdict ? m->div_golden : -1; }

conf_match_stats conf_match_stats_get(const conf_match *m)
{
    conf_match_stats s = {m->n, m->expected, m->played, m->matched, m->observed, m->n_pairs};
    return s;
}
