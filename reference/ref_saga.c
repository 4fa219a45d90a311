/* Saga rollback bookkeeping (see ref_saga.h).
 *
 * Storage: an array of workflow pointers sorted bytewise by id (binary
 * search); per workflow an array of entries in recording order. An entry
 * holds the compensated job's id and the canonical encoding of its request
 * (dispatch removed). The newest pending entry is the one with the highest
 * index, so the stack needs no separate structure and successes recorded
 * mid-rollback land on top.
 *
 * A compensation request is built as a shallow JobRequest that borrows from
 * the decoded parent, then encoded and decoded again, so that the caller
 * receives one message whose memory protobuf-c owns entirely. */
#include "ref_saga.h"

#include "ref_bugs.h"
#include "ref_sorted.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cap_base64.h"
#include "cap_encode.h"

typedef Cordum__Agent__V1__JobRequest job_request;
typedef Cordum__Agent__V1__Compensation compensation;
typedef Cordum__Agent__V1__JobRequest__EnvEntry env_entry;
typedef Cordum__Agent__V1__JobRequest__LabelsEntry labels_entry;

#define JOB_REQUEST_DESC (&cordum__agent__v1__job_request__descriptor)
/* Room for "comp-job:" + a decimal length + ':' + two ids + NUL. */
#define ID_BUF (2 * REF_SAGA_MAX_ID_LEN + 48)

typedef struct {
    char *job_id;
    uint8_t *req; /* canonical encoding of the parent request, dispatch removed */
    size_t req_len;
    ref_saga_entry_state state;
    uint32_t seq;
} entry;

typedef struct {
    char *id;
    ref_saga_phase phase;
    entry *e;
    size_t n, cap;
    uint32_t next_seq;
} workflow;

struct ref_saga {
    ref_saga_config cfg;
    workflow **w;
    size_t n, cap;
};

/* --- small helpers -------------------------------------------------------- */

static int str_set(const char *s)
{
    return s && s[0];
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static int id_ok(const char *s)
{
    return s && s[0] && strlen(s) <= REF_SAGA_MAX_ID_LEN;
}

const char *ref_saga_phase_name(ref_saga_phase p)
{
    switch (p) {
    case REF_SAGA_IDLE: return "idle";
    case REF_SAGA_ROLLING_BACK: return "rolling_back";
    case REF_SAGA_DONE: return "done";
    }
    return "unknown";
}

const char *ref_saga_entry_state_name(ref_saga_entry_state st)
{
    switch (st) {
    case REF_SAGA_ENTRY_PENDING: return "pending";
    case REF_SAGA_ENTRY_IN_FLIGHT: return "in_flight";
    case REF_SAGA_ENTRY_SUCCEEDED: return "succeeded";
    case REF_SAGA_ENTRY_FAILED: return "failed";
    case REF_SAGA_ENTRY_DENIED: return "denied";
    }
    return "unknown";
}

ref_saga_outcome ref_saga_outcome_of_status(Cordum__Agent__V1__JobStatus status)
{
    switch (status) {
    case CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED: return REF_SAGA_OUT_SUCCEEDED;
    case CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_DENIED: return REF_SAGA_OUT_DENIED;
    case CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED:
    case CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_FATAL:
    case CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_RETRYABLE:
    case CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_TIMEOUT:
    case CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_CANCELLED: return REF_SAGA_OUT_FAILED;
    default: return REF_SAGA_OUT_NONE;
    }
}

static int make_id(const char *prefix, const char *wf, const char *job, char *buf, size_t n)
{
    if (!wf || !job || !buf || n == 0)
        return CAP_EINVAL;
    size_t lp = strlen(prefix), lw = strlen(wf), lj = strlen(job);
    char num[24];
    size_t ln = 0;
    size_t v = lw;
    do {
        num[ln++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t total = lp + ln + 1 + lw + 1 + lj;
    if (total >= n || total > (size_t)INT32_MAX)
        return CAP_EINVAL;
    char *p = buf;
    memcpy(p, prefix, lp);
    p += lp;
    for (size_t i = 0; i < ln; i++)
        *p++ = num[ln - 1 - i];
    *p++ = ':';
    memcpy(p, wf, lw);
    p += lw;
    *p++ = ':';
    memcpy(p, job, lj);
    p += lj;
    *p = 0;
    return (int)total;
}

int ref_saga_comp_job_id(const char *workflow_id, const char *job_id, char *buf, size_t n)
{
    return make_id("comp-job:", workflow_id, job_id, buf, n);
}

int ref_saga_idempotency_key(const char *workflow_id, const char *job_id, char *buf, size_t n)
{
    return make_id("comp:", workflow_id, job_id, buf, n);
}

void ref_saga_request_free(Cordum__Agent__V1__JobRequest *req)
{
    if (req)
        protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* --- store ---------------------------------------------------------------- */

ref_saga_config ref_saga_config_default(void)
{
    ref_saga_config c = {REF_SAGA_DEFAULT_MAX_WORKFLOWS, REF_SAGA_DEFAULT_MAX_DEPTH};
    return c;
}

int ref_saga_config_check(const ref_saga_config *cfg)
{
    if (!cfg || cfg->max_workflows < 1 || cfg->max_workflows > REF_SAGA_MAX_WORKFLOWS_LIMIT ||
        cfg->max_depth < 1 || cfg->max_depth > REF_SAGA_MAX_DEPTH_LIMIT)
        return CAP_EINVAL;
    return CAP_OK;
}

int ref_saga_new(const ref_saga_config *cfg, ref_saga **out)
{
    if (!out)
        return CAP_EINVAL;
    *out = NULL;
    ref_saga_config c = cfg ? *cfg : ref_saga_config_default();
    if (ref_saga_config_check(&c) != CAP_OK)
        return CAP_EINVAL;
    ref_saga *s = calloc(1, sizeof *s);
    if (!s)
        return CAP_ENOMEM;
    s->cfg = c;
    *out = s;
    return CAP_OK;
}

static void entry_clear(entry *e)
{
    free(e->job_id);
    free(e->req);
    memset(e, 0, sizeof *e);
}

static void workflow_free(workflow *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        entry_clear(&w->e[i]);
    free(w->e);
    free(w->id);
    free(w);
}

void ref_saga_free(ref_saga *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        workflow_free(s->w[i]);
    free(s->w);
    free(s);
}

/* Index of id, or of where it would go (*found = 0). */
static const char *wf_key(const void *base, size_t i)
{
    return ((workflow *const *)base)[i]->id;
}

static size_t wf_search(const ref_saga *s, const char *id, int *found)
{
    size_t at;
    *found = ref_sorted_find(s->w, s->n, wf_key, id, 0, &at);
    return at;
}

static workflow *wf_find(const ref_saga *s, const char *id)
{
    if (!s || !id)
        return NULL;
    int found;
    size_t i = wf_search(s, id, &found);
    return found ? s->w[i] : NULL;
}

/* The workflow id, created IDLE when absent. */
static int wf_get_or_add(ref_saga *s, const char *id, workflow **out)
{
    int found;
    size_t at = wf_search(s, id, &found);
    if (found) {
        *out = s->w[at];
        return CAP_OK;
    }
    if (s->n >= s->cfg.max_workflows)
        return CAP_EFULL;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        if (nc > s->cfg.max_workflows)
            nc = s->cfg.max_workflows;
        workflow **nw = realloc(s->w, nc * sizeof *nw);
        if (!nw)
            return CAP_ENOMEM;
        s->w = nw;
        s->cap = nc;
    }
    workflow *w = calloc(1, sizeof *w);
    if (!w)
        return CAP_ENOMEM;
    w->id = strdup(id);
    if (!w->id) {
        free(w);
        return CAP_ENOMEM;
    }
    w->next_seq = 1;
    memmove(&s->w[at + 1], &s->w[at], (s->n - at) * sizeof *s->w);
    s->w[at] = w;
    s->n++;
    *out = w;
    return CAP_OK;
}

static void wf_remove(ref_saga *s, const char *id)
{
    int found;
    size_t at = wf_search(s, id, &found);
    if (!found)
        return;
    workflow_free(s->w[at]);
    memmove(&s->w[at], &s->w[at + 1], (s->n - at - 1) * sizeof *s->w);
    s->n--;
}

static int entry_reserve(workflow *w, size_t max_depth)
{
    if (w->n < w->cap)
        return CAP_OK;
    size_t nc = w->cap ? w->cap * 2 : 4;
    if (nc > max_depth)
        nc = max_depth;
    entry *ne = realloc(w->e, nc * sizeof *ne);
    if (!ne)
        return CAP_ENOMEM;
    w->e = ne;
    w->cap = nc;
    return CAP_OK;
}

static entry *entry_find(workflow *w, const char *job_id)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].job_id, job_id) == 0)
            return &w->e[i];
    return NULL;
}

/* --- recording ------------------------------------------------------------ */

int ref_saga_record(ref_saga *s, const job_request *req, Cordum__Agent__V1__JobStatus status)
{
    if (!s || !req)
        return CAP_EINVAL;
    if (status != CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED)
        return REF_SAGA_REC_NOT_SUCCEEDED;
    if (!req->compensation)
        return REF_SAGA_REC_NO_COMPENSATION;
    if (!str_set(req->workflow_id))
        return REF_SAGA_REC_NO_WORKFLOW;
    if (!id_ok(req->workflow_id) || !id_ok(req->job_id))
        return CAP_EINVAL;

    workflow *w = wf_find(s, req->workflow_id);
    if (w) {
        if (entry_find(w, req->job_id))
            return REF_SAGA_REC_DUPLICATE;
        if (w->phase == REF_SAGA_DONE)
            return REF_SAGA_REC_LATE;
        if (w->n >= s->cfg.max_depth)
            return CAP_EFULL;
    } else if (s->n >= s->cfg.max_workflows) {
        return CAP_EFULL;
    }

    /* The deep copy, made before anything changes. */
    job_request copy = *req;
    copy.dispatch = NULL;
    entry e = {0};
    e.job_id = strdup(req->job_id);
    if (!e.job_id)
        return CAP_ENOMEM;
    int rc = cap_encode(&copy.base, &e.req, &e.req_len);
    if (rc != CAP_OK) {
        entry_clear(&e);
        return rc;
    }
    int created = !w;
    if (!w && (rc = wf_get_or_add(s, req->workflow_id, &w)) != CAP_OK) {
        entry_clear(&e);
        return rc;
    }
    if ((rc = entry_reserve(w, s->cfg.max_depth)) != CAP_OK) {
        entry_clear(&e);
        if (created)
            wf_remove(s, req->workflow_id);
        return rc;
    }
    e.state = REF_SAGA_ENTRY_PENDING;
    w->e[w->n++] = e;
    return REF_SAGA_REC_PUSHED;
}

int ref_saga_trigger(ref_saga *s, const char *workflow_id, Cordum__Agent__V1__JobStatus status)
{
    if (!s || !id_ok(workflow_id))
        return CAP_EINVAL;
    if (status != CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_FATAL)
        return REF_SAGA_NOT_FATAL;
    workflow *w;
    int rc = wf_get_or_add(s, workflow_id, &w);
    if (rc != CAP_OK)
        return rc;
    if (w->phase == REF_SAGA_ROLLING_BACK)
        return REF_SAGA_ALREADY_RUNNING;
    if (w->phase == REF_SAGA_DONE)
        return REF_SAGA_ALREADY_DONE;
    w->phase = REF_SAGA_ROLLING_BACK;
    return REF_SAGA_STARTED;
}

/* --- building a compensation request -------------------------------------- */

typedef struct {
    const char *key, *value;
} kv;

/* parent's entries, then over's, a later key replacing an earlier one; the
 * result keeps first-appearance order (the encoder sorts by key). */
static size_t merge_kv(kv *out, const kv *in, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < m && strcmp(out[j].key, or_empty(in[i].key)) != 0)
            j++;
        if (j == m)
            out[m++].key = or_empty(in[i].key);
        out[j].value = or_empty(in[i].value);
    }
    return m;
}

/* Fills ents/ptrs (room for np + nc) with the merged map; returns its size
 * or (size_t)-1 on ENOMEM. The entries borrow their strings. */
static size_t build_map(const ProtobufCMessageDescriptor *desc, void *const *pe, size_t np,
                        void *const *ce, size_t nc, env_entry **ents_out, env_entry ***ptrs_out)
{
    size_t total = np + nc;
    *ents_out = NULL;
    *ptrs_out = NULL;
    if (total == 0)
        return 0;
    kv *in = malloc(total * sizeof *in);
    kv *merged = malloc(total * sizeof *merged);
    env_entry *ents = malloc(total * sizeof *ents);
    env_entry **ptrs = malloc(total * sizeof *ptrs);
    if (!in || !merged || !ents || !ptrs) {
        free(in);
        free(merged);
        free(ents);
        free(ptrs);
        return (size_t)-1;
    }
    /* Every map-entry type of job.proto has the layout {base, key, value}. */
    for (size_t i = 0; i < np; i++) {
        const env_entry *e = pe[i];
        in[i].key = e->key;
        in[i].value = e->value;
    }
    for (size_t i = 0; i < nc; i++) {
        const env_entry *e = ce[i];
        in[np + i].key = e->key;
        in[np + i].value = e->value;
    }
    size_t m = merge_kv(merged, in, total);
    for (size_t i = 0; i < m; i++) {
        env_entry init = CORDUM__AGENT__V1__JOB_REQUEST__ENV_ENTRY__INIT;
        init.base.descriptor = desc;
        init.key = (char *)merged[i].key;
        init.value = (char *)merged[i].value;
        ents[i] = init;
        ptrs[i] = &ents[i];
    }
    free(in);
    free(merged);
    *ents_out = ents;
    *ptrs_out = ptrs;
    return m;
}

static int build_request(const char *wf, const entry *e, job_request **out)
{
    *out = NULL;
    job_request *p =
        (job_request *)protobuf_c_message_unpack(JOB_REQUEST_DESC, NULL, e->req_len, e->req);
    if (!p)
        return CAP_ENOMEM; /* the bytes were produced by cap_encode */
    const compensation *c = p->compensation;
    char job_id[ID_BUF], key[ID_BUF];
    if (ref_saga_comp_job_id(wf, e->job_id, job_id, sizeof job_id) < 0 ||
        ref_saga_idempotency_key(wf, e->job_id, key, sizeof key) < 0) {
        ref_saga_request_free(p);
        return CAP_EINVAL;
    }

    job_request r = CORDUM__AGENT__V1__JOB_REQUEST__INIT;
    r.job_id = job_id;
    r.topic = str_set(c->topic) ? c->topic : p->topic;
    r.priority = c->priority != CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_UNSPECIFIED
                     ? c->priority
                     : p->priority;
    r.context_ptr = str_set(c->context_ptr) ? c->context_ptr : p->context_ptr;
    r.adapter_id = str_set(c->adapter_id) ? c->adapter_id : p->adapter_id;
    r.parent_job_id = p->job_id;
    r.workflow_id = p->workflow_id;
    r.step_index = p->step_index;
    r.memory_id = str_set(c->memory_id) ? c->memory_id : p->memory_id;
    r.context_hints = c->context_hints ? c->context_hints : p->context_hints;
    r.budget = c->budget ? c->budget : p->budget;
    r.tenant_id = str_set(c->tenant_id) ? c->tenant_id : p->tenant_id;
    r.principal_id = str_set(c->principal_id) ? c->principal_id : p->principal_id;
    r.identity = c->identity ? c->identity : p->identity;
    r.context_ref = c->context_ref ? c->context_ref : p->context_ref;
    r.compensation = NULL;
    r.dispatch = NULL;

    Cordum__Agent__V1__JobMetadata meta = CORDUM__AGENT__V1__JOB_METADATA__INIT;
    if (c->meta)
        meta = *c->meta;
    else if (p->meta)
        meta = *p->meta;
    if (!(c->meta && str_set(c->meta->idempotency_key)))
        meta.idempotency_key = key;
    r.meta = &meta;

    env_entry *env_e, **env_p, *lab_e, **lab_p;
    size_t n_env = build_map(&cordum__agent__v1__job_request__env_entry__descriptor,
                             (void *const *)p->env, p->n_env, (void *const *)c->env, c->n_env,
                             &env_e, &env_p);
    size_t n_lab = build_map(&cordum__agent__v1__job_request__labels_entry__descriptor,
                             (void *const *)p->labels, p->n_labels, (void *const *)c->labels,
                             c->n_labels, &lab_e, &lab_p);
    int rc = CAP_OK;
    if (n_env == (size_t)-1 || n_lab == (size_t)-1) {
        rc = CAP_ENOMEM;
    } else {
        r.n_env = n_env;
        r.env = env_p;
        r.n_labels = n_lab;
        r.labels = (labels_entry **)(void *)lab_p;
        uint8_t *bytes = NULL;
        size_t len = 0;
        rc = cap_encode(&r.base, &bytes, &len);
        if (rc == CAP_OK) {
            *out = (job_request *)protobuf_c_message_unpack(JOB_REQUEST_DESC, NULL, len, bytes);
            if (!*out)
                rc = CAP_ENOMEM;
        }
        free(bytes);
    }
    free(env_e);
    free(env_p);
    free(lab_e);
    free(lab_p);
    ref_saga_request_free(p);
    return rc;
}

/* --- the rollback --------------------------------------------------------- */

static entry *in_flight(workflow *w)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->e[i].state == REF_SAGA_ENTRY_IN_FLIGHT)
            return &w->e[i];
    return NULL;
}

static entry *newest_pending(workflow *w)
{
    /* Injected bug (ref_bugs.h): compensate oldest first. */
    if (ref_bug_active(REF_BUG_ROLLBACK_OLDEST_FIRST)) {
        for (size_t i = 0; i < w->n; i++)
            if (w->e[i].state == REF_SAGA_ENTRY_PENDING)
                return &w->e[i];
        return NULL;
    }
    for (size_t i = w->n; i > 0; i--)
        if (w->e[i - 1].state == REF_SAGA_ENTRY_PENDING)
            return &w->e[i - 1];
    return NULL;
}

int ref_saga_next(ref_saga *s, const char *workflow_id, job_request **out)
{
    if (!out)
        return CAP_EINVAL;
    *out = NULL;
    workflow *w = wf_find(s, workflow_id);
    if (!w || w->phase == REF_SAGA_IDLE)
        return CAP_EINVAL;
    if (w->phase == REF_SAGA_DONE)
        return REF_SAGA_NEXT_COMPLETE;
    entry *e = in_flight(w);
    int fresh = 0;
    if (!e) {
        e = newest_pending(w);
        fresh = 1;
    }
    if (!e) {
        w->phase = REF_SAGA_DONE;
        return REF_SAGA_NEXT_COMPLETE;
    }
    int rc = build_request(w->id, e, out);
    if (rc != CAP_OK)
        return rc;
    if (fresh) {
        e->state = REF_SAGA_ENTRY_IN_FLIGHT;
        e->seq = w->next_seq++;
    }
    return REF_SAGA_NEXT_JOB;
}

int ref_saga_report(ref_saga *s, const char *workflow_id, const char *comp_job_id,
                    ref_saga_outcome outcome)
{
    workflow *w = wf_find(s, workflow_id);
    if (!w || !comp_job_id || w->phase != REF_SAGA_ROLLING_BACK)
        return CAP_EINVAL;
    entry *e = in_flight(w);
    if (!e)
        return CAP_EINVAL;
    char id[ID_BUF];
    if (ref_saga_comp_job_id(w->id, e->job_id, id, sizeof id) < 0 || strcmp(id, comp_job_id) != 0)
        return CAP_EINVAL;
    switch (outcome) {
    case REF_SAGA_OUT_SUCCEEDED: e->state = REF_SAGA_ENTRY_SUCCEEDED; break;
    case REF_SAGA_OUT_FAILED: e->state = REF_SAGA_ENTRY_FAILED; break;
    case REF_SAGA_OUT_DENIED: e->state = REF_SAGA_ENTRY_DENIED; break;
    default: return CAP_EINVAL;
    }
    return CAP_OK;
}

/* --- queries -------------------------------------------------------------- */

int ref_saga_summary_get(const ref_saga *s, const char *workflow_id, ref_saga_summary *out)
{
    workflow *w = wf_find(s, workflow_id);
    if (!w || !out)
        return CAP_EINVAL;
    memset(out, 0, sizeof *out);
    out->phase = w->phase;
    out->recorded = w->n;
    for (size_t i = 0; i < w->n; i++) {
        switch (w->e[i].state) {
        case REF_SAGA_ENTRY_PENDING: out->pending++; break;
        case REF_SAGA_ENTRY_IN_FLIGHT: out->in_flight++; break;
        case REF_SAGA_ENTRY_SUCCEEDED: out->succeeded++; break;
        case REF_SAGA_ENTRY_FAILED: out->failed++; break;
        case REF_SAGA_ENTRY_DENIED: out->denied++; break;
        }
    }
    return CAP_OK;
}

static void fill_info(const entry *e, ref_saga_entry_info *out)
{
    out->job_id = e->job_id;
    out->state = e->state;
    out->rollback_seq = e->seq;
}

int ref_saga_entry(const ref_saga *s, const char *workflow_id, size_t i, ref_saga_entry_info *out)
{
    workflow *w = wf_find(s, workflow_id);
    if (!w || !out)
        return CAP_EINVAL;
    if (i >= w->n)
        return 0;
    fill_info(&w->e[i], out);
    return 1;
}

int ref_saga_failure(const ref_saga *s, const char *workflow_id, size_t i,
                     ref_saga_entry_info *out)
{
    workflow *w = wf_find(s, workflow_id);
    if (!w || !out)
        return CAP_EINVAL;
    /* Yield order is seq order; seqs are unique, so pick the i-th smallest. */
    uint32_t last = 0;
    for (size_t k = 0; k <= i; k++) {
        const entry *best = NULL;
        for (size_t j = 0; j < w->n; j++) {
            const entry *e = &w->e[j];
            if ((e->state == REF_SAGA_ENTRY_FAILED || e->state == REF_SAGA_ENTRY_DENIED) &&
                e->seq > last && (!best || e->seq < best->seq))
                best = e;
        }
        if (!best)
            return 0;
        last = best->seq;
        if (k == i)
            fill_info(best, out);
    }
    return 1;
}

int ref_saga_forget(ref_saga *s, const char *workflow_id)
{
    workflow *w = wf_find(s, workflow_id);
    if (!s || !workflow_id)
        return CAP_EINVAL;
    if (!w)
        return 0;
    if (w->phase == REF_SAGA_ROLLING_BACK)
        return CAP_EINVAL;
    wf_remove(s, workflow_id);
    return 1;
}

size_t ref_saga_workflow_count(const ref_saga *s)
{
    return s ? s->n : 0;
}

const char *ref_saga_workflow_at(const ref_saga *s, size_t i)
{
    return s && i < s->n ? s->w[i]->id : NULL;
}

/* --- JSON state ----------------------------------------------------------- */

static cJSON *entry_json(const entry *e)
{
    cJSON *o = cJSON_CreateObject();
    char *b64 = malloc(cap_base64_encoded_len(e->req_len) + 1);
    if (!o || !b64)
        goto fail;
    cap_base64_encode(e->req, e->req_len, b64);
    if (!cJSON_AddStringToObject(o, "job_id", e->job_id) ||
        !cJSON_AddStringToObject(o, "state", ref_saga_entry_state_name(e->state)) ||
        !cJSON_AddNumberToObject(o, "rollback_seq", (double)e->seq) ||
        !cJSON_AddStringToObject(o, "request", b64))
        goto fail;
    free(b64);
    return o;
fail:
    free(b64);
    cJSON_Delete(o);
    return NULL;
}

int ref_saga_serialize(const ref_saga *s, char **json)
{
    if (!s || !json)
        return CAP_EINVAL;
    *json = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *wfs = root ? cJSON_AddArrayToObject(root, "workflows") : NULL;
    if (!root || !wfs || !cJSON_AddNumberToObject(root, "version", REF_SAGA_STATE_VERSION))
        goto fail;
    for (size_t i = 0; i < s->n; i++) {
        const workflow *w = s->w[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            goto fail;
        cJSON_AddItemToArray(wfs, o);
        cJSON *es = cJSON_AddArrayToObject(o, "entries");
        if (!cJSON_AddStringToObject(o, "workflow_id", w->id) ||
            !cJSON_AddStringToObject(o, "phase", ref_saga_phase_name(w->phase)) ||
            !cJSON_AddNumberToObject(o, "next_seq", (double)w->next_seq) || !es)
            goto fail;
        for (size_t j = 0; j < w->n; j++) {
            cJSON *eo = entry_json(&w->e[j]);
            if (!eo)
                goto fail;
            cJSON_AddItemToArray(es, eo);
        }
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        return CAP_ENOMEM;
    *json = strdup(text);
    cJSON_free(text);
    return *json ? CAP_OK : CAP_ENOMEM;
fail:
    cJSON_Delete(root);
    return CAP_ENOMEM;
}

static int parse_enum(const char *name, const char *(*namer)(int), int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, namer(i)) == 0) {
            *out = i;
            return 1;
        }
    return 0;
}

static const char *phase_namer(int i)
{
    return ref_saga_phase_name((ref_saga_phase)i);
}

static const char *state_namer(int i)
{
    return ref_saga_entry_state_name((ref_saga_entry_state)i);
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A whole number in [0, max], or -1. */
static double json_uint(const cJSON *o, const char *key, double max)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= max) || d != (double)(uint64_t)d)
        return -1;
    return d;
}

/* Restores one entry into w (room already reserved). */
static int restore_entry(workflow *w, const cJSON *eo)
{
    const char *job = json_str(eo, "job_id");
    const char *st = json_str(eo, "state");
    const char *b64 = json_str(eo, "request");
    double seq = json_uint(eo, "rollback_seq", (double)UINT32_MAX);
    int state;
    if (!cJSON_IsObject(eo) || !id_ok(job) || !st || !b64 || seq < 0 ||
        !parse_enum(st, state_namer, 5, &state))
        return CAP_EJSON;
    if (entry_find(w, job))
        return CAP_EJSON;
    if ((state == REF_SAGA_ENTRY_PENDING) != (seq == 0))
        return CAP_EJSON;
    size_t blen = strlen(b64);
    uint8_t *bytes = malloc(cap_base64_decoded_max(blen) + 1);
    if (!bytes)
        return CAP_ENOMEM;
    size_t n = 0;
    if (cap_base64_decode(b64, blen, bytes, &n) != 0) {
        free(bytes);
        return CAP_EJSON;
    }
    job_request *r = (job_request *)protobuf_c_message_unpack(JOB_REQUEST_DESC, NULL, n, bytes);
    int ok = r && r->compensation && !r->dispatch && strcmp(or_empty(r->job_id), job) == 0 &&
             strcmp(or_empty(r->workflow_id), w->id) == 0;
    ref_saga_request_free(r);
    if (!ok) {
        free(bytes);
        return CAP_EJSON;
    }
    entry e = {0};
    e.job_id = strdup(job);
    if (!e.job_id) {
        free(bytes);
        return CAP_ENOMEM;
    }
    e.req = bytes;
    e.req_len = n;
    e.state = (ref_saga_entry_state)state;
    e.seq = (uint32_t)seq;
    w->e[w->n++] = e;
    return CAP_OK;
}

/* Checks that the phase fits the entries and the sequence numbers. */
static int workflow_consistent(const workflow *w)
{
    size_t flying = 0, yielded = 0;
    for (size_t i = 0; i < w->n; i++) {
        const entry *e = &w->e[i];
        if (e->state == REF_SAGA_ENTRY_IN_FLIGHT)
            flying++;
        if (e->state != REF_SAGA_ENTRY_PENDING) {
            yielded++;
            if (e->seq >= w->next_seq)
                return 0;
            for (size_t j = 0; j < i; j++)
                if (w->e[j].seq == e->seq)
                    return 0;
        }
    }
    if (w->next_seq < 1 || flying > 1)
        return 0;
    switch (w->phase) {
    case REF_SAGA_IDLE: return yielded == 0 && w->next_seq == 1;
    case REF_SAGA_ROLLING_BACK: return 1;
    case REF_SAGA_DONE: return yielded == w->n;
    }
    return 0;
}

static int restore_workflows(ref_saga *s, const cJSON *wfs)
{
    const cJSON *wo;
    cJSON_ArrayForEach(wo, wfs)
    {
        const char *id = json_str(wo, "workflow_id");
        const char *ph = json_str(wo, "phase");
        const cJSON *es = cJSON_GetObjectItemCaseSensitive(wo, "entries");
        double next = json_uint(wo, "next_seq", (double)UINT32_MAX);
        int phase;
        if (!cJSON_IsObject(wo) || !id_ok(id) || !ph || !cJSON_IsArray(es) || next < 1 ||
            !parse_enum(ph, phase_namer, 3, &phase))
            return CAP_EJSON;
        if (s->n > 0 && strcmp(s->w[s->n - 1]->id, id) >= 0)
            return CAP_EJSON; /* not strictly ascending */
        size_t n_entries = (size_t)cJSON_GetArraySize(es);
        if (n_entries > s->cfg.max_depth)
            return CAP_EFULL;
        workflow *w;
        int rc = wf_get_or_add(s, id, &w);
        if (rc != CAP_OK)
            return rc;
        w->phase = (ref_saga_phase)phase;
        w->next_seq = (uint32_t)next;
        if (n_entries > 0) {
            w->e = calloc(n_entries, sizeof *w->e);
            if (!w->e)
                return CAP_ENOMEM;
            w->cap = n_entries;
        }
        const cJSON *eo;
        cJSON_ArrayForEach(eo, es)
        {
            if ((rc = restore_entry(w, eo)) != CAP_OK)
                return rc;
        }
        if (!workflow_consistent(w))
            return CAP_EJSON;
    }
    return CAP_OK;
}

int ref_saga_restore(const ref_saga_config *cfg, const char *json, size_t len, ref_saga **out)
{
    if (!out)
        return CAP_EINVAL;
    *out = NULL;
    if (!json || len > REF_SAGA_MAX_JSON)
        return CAP_EINVAL;
    ref_saga *s;
    int rc = ref_saga_new(cfg, &s);
    if (rc != CAP_OK)
        return rc;
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *ver = root ? cJSON_GetObjectItemCaseSensitive(root, "version") : NULL;
    const cJSON *wfs = root ? cJSON_GetObjectItemCaseSensitive(root, "workflows") : NULL;
    if (!cJSON_IsObject(root) || !cJSON_IsNumber(ver) ||
        ver->valuedouble != REF_SAGA_STATE_VERSION || !cJSON_IsArray(wfs)) {
        rc = CAP_EJSON;
    } else if ((size_t)cJSON_GetArraySize(wfs) > s->cfg.max_workflows) {
        rc = CAP_EFULL;
    } else {
        rc = restore_workflows(s, wfs);
    }
    cJSON_Delete(root);
    if (rc != CAP_OK) {
        ref_saga_free(s);
        return rc;
    }
    *out = s;
    return CAP_OK;
}
