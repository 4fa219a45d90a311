/* The reference scheduler: the pipeline, every safety outcome, approvals,
 * retries, timeouts, waiting for workers, priority, cancel cascade, saga
 * rollback, breakers, fencing, duplicates, the journal and determinism. */
#include "testutil.h"

#include <cjson/cJSON.h>

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_schema.h"
#include "ref_bugs.h"
#include "ref_effect.h"
#include "ref_jobstate.h"
#include "ref_safety.h"
#include "ref_scheduler.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define T0 (INT64_C(1704164645) * SEC)

typedef Cordum__Agent__V1__JobRequest job_request;

static const char *POLICY =
    "version: t1\n"
    "default_decision: allow\n"
    "rules:\n"
    "- id: deny-delete\n"
    "  match: {labels: {act: delete}}\n"
    "  decision: deny\n"
    "  reason: deletes blocked\n"
    "- id: human-write\n"
    "  match: {labels: {act: write}}\n"
    "  decision: require_approval\n"
    "  reason: writes need review\n"
    "- id: throttle-bulk\n"
    "  match: {labels: {act: bulk}}\n"
    "  decision: throttle\n"
    "  reason: slow down\n"
    "- id: deny-undo\n"
    "  match: {topics: [job.undo.denied]}\n"
    "  decision: deny\n"
    "  reason: this undo is not allowed\n"
    "- id: constrain-batch\n"
    "  match: {topics: [job.batch]}\n"
    "  decision: allow_with_constraints\n"
    "  constraints: {max_runtime_sec: 10, max_retries: 1}\n";

/* ---- a tiny driver: effects log + timer table ---------------------------- */

#define MAX_TIMERS 256

typedef struct {
    ref_safety *k;
    uint64_t seed;
    ref_sched *s;
    ref_effects fx;
    int64_t now;
    struct {
        uint64_t id;
        int64_t at;
    } timers[MAX_TIMERS];
    size_t n_timers;
    char log[1 << 16]; /* one line per publish since the last clear */
    size_t views, evict_views; /* view records met (each checked by check_view) */
    size_t texts;              /* "job" and "evict" text records met */
    int both;                  /* journal_form BOTH: each view follows its text */
    char count_prefix[40];     /* when set: the job records of job ids starting so */
    size_t counted_texts;      /* ... are counted here */
} fixture;

/* A text record's string member k, as the view holds it. */
static void same_member(const cJSON *o, const char *k, const char *view)
{
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
    if (!t || !view || strcmp(t, view) != 0)
        fail_msg("view member %s: \"%s\", text \"%s\"", k, view ? view : "(null)",
                 t ? t : "(null)");
}

static void check_view(fixture *f, const ref_effect *text, const ref_effect *view);

static void absorb(fixture *f)
{
    for (size_t i = 0; i < ref_effects_count(&f->fx); i++) {
        const ref_effect *e = ref_effects_at(&f->fx, i);
        if (e->kind == REF_EFFECT_TIMER_SET || e->kind == REF_EFFECT_TIMER_CANCEL) {
            size_t k = 0;
            while (k < f->n_timers && f->timers[k].id != e->timer_id)
                k++;
            if (k < f->n_timers) {
                f->timers[k] = f->timers[--f->n_timers];
            }
            if (e->kind == REF_EFFECT_TIMER_SET) {
                assert_true(f->n_timers < MAX_TIMERS);
                f->timers[f->n_timers].id = e->timer_id;
                f->timers[f->n_timers].at = e->at;
                f->n_timers++;
            }
        } else if (e->kind == REF_EFFECT_JOURNAL) {
            if (getenv("SCHED_TEST_JOURNAL"))
                fprintf(stderr, "journal: %s\n", e->record);
            if (strncmp(e->record, "{\"k\":\"job\"", 10) == 0 ||
                strncmp(e->record, "{\"k\":\"evict\"", 12) == 0) {
                f->texts++;
                char want[64];
                snprintf(want, sizeof want, "\"job_id\":\"%s", f->count_prefix);
                if (f->count_prefix[0] && strstr(e->record, want))
                    f->counted_texts++;
            }
        } else if (e->kind == REF_EFFECT_JOURNAL_VIEW) {
            check_view(f, i ? ref_effects_at(&f->fx, i - 1) : NULL, e);
        } else if (e->kind == REF_EFFECT_PUBLISH) {
            const cap_packet *p = e->packet;
            char line[600];
            const char *job = "";
            int status = 0, code = 0;
            uint64_t attempt = 0;
            switch (p->payload_case) {
            case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST:
                job = p->job_request->job_id;
                attempt = p->job_request->dispatch ? p->job_request->dispatch->attempt : 0;
                break;
            case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT:
                job = p->job_result->job_id;
                status = p->job_result->status;
                code = p->job_result->error_code_enum;
                break;
            case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL:
                job = p->job_cancel->job_id;
                attempt = p->job_cancel->dispatch ? p->job_cancel->dispatch->attempt : 0;
                break;
            default: break;
            }
            snprintf(line, sizeof line, "%s %s %s %d %d %llu\n", e->subject,
                     cap_packet_payload_name(p), job, status, code, (unsigned long long)attempt);
            strncat(f->log, line, sizeof f->log - strlen(f->log) - 1);
        }
    }
}

static void begin(fixture *f)
{
    ref_effects_clear(&f->fx);
    f->log[0] = 0;
}

static ref_sched_config base_config(fixture *f)
{
    ref_sched_config c = ref_sched_config_default();
    c.safety = f->k;
    c.rand.next = ref_rand_splitmix64;
    c.rand.ctx = &f->seed;
    c.dispatch_timeout_ns = 30 * SEC;
    c.running_timeout_ns = 60 * SEC;
    c.no_worker_wait_ns = 20 * SEC;
    c.no_worker_retry_ns = 2 * SEC;
    return c;
}

static void setup_cfg(fixture *f, const ref_sched_config *cfg)
{
    cap_diag d;
    assert_int_equal(ref_sched_new(cfg, &f->s, &d), CAP_OK);
    begin(f);
    assert_int_equal(ref_sched_start(f->s, f->now, &f->fx), CAP_OK);
    absorb(f);
}

static void init_fixture(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->k = ref_safety_new();
    assert_non_null(f->k);
    cap_yaml_diag yd;
    assert_int_equal(ref_safety_load(f->k, POLICY, strlen(POLICY), &yd), 0);
    f->seed = 42;
    f->now = T0;
    assert_int_equal(ref_effects_init(&f->fx, 0), CAP_OK);
}

/* A fixture whose scheduler the caller configures (setup_cfg). */
static fixture *new_fixture(void)
{
    fixture *f = malloc(sizeof *f);
    assert_non_null(f);
    init_fixture(f);
    return f;
}

static fixture *setup(void)
{
    fixture *f = new_fixture();
    ref_sched_config c = base_config(f);
    setup_cfg(f, &c);
    return f;
}

/* A scheduler holding at most max_jobs jobs. */
static fixture *setup_max_jobs(size_t max_jobs)
{
    fixture *f = new_fixture();
    ref_sched_config c = base_config(f);
    c.max_jobs = max_jobs;
    setup_cfg(f, &c);
    return f;
}

static void teardown(fixture *f)
{
    ref_sched_free(f->s);
    ref_effects_free(&f->fx);
    ref_safety_free(f->k);
    free(f);
}

/* Fires every timer due at or before t, earliest first (ties by id). */
static void advance(fixture *f, int64_t t)
{
    for (;;) {
        size_t best = (size_t)-1;
        for (size_t i = 0; i < f->n_timers; i++)
            if (f->timers[i].at <= t &&
                (best == (size_t)-1 || f->timers[i].at < f->timers[best].at ||
                 (f->timers[i].at == f->timers[best].at && f->timers[i].id < f->timers[best].id)))
                best = i;
        if (best == (size_t)-1)
            break;
        uint64_t id = f->timers[best].id;
        f->now = f->timers[best].at;
        f->timers[best] = f->timers[--f->n_timers];
        ref_effects_clear(&f->fx);
        assert_true(ref_sched_on_timer(f->s, id, f->now, &f->fx) >= 0);
        absorb(f);
    }
    f->now = t;
}

/* ---- packets ------------------------------------------------------------- */

static char *sdup(const char *s)
{
    int ok = 1;
    char *c = ref_pb_strdup(s, &ok);
    assert_int_equal(ok, 1);
    return c;
}

/* Replaces a string field of a packet built here (the default is
 * protobuf-c's static empty string, which is never freed). */
static void set_field(char **field, const char *v)
{
    if (*field && *field != (char *)protobuf_c_empty_string)
        free(*field);
    *field = sdup(v);
}

static void add_label(job_request *r, const char *k, const char *v)
{
    r->labels = realloc(r->labels, (r->n_labels + 1) * sizeof *r->labels);
    Cordum__Agent__V1__JobRequest__LabelsEntry *e = malloc(sizeof *e);
    assert_non_null(r->labels);
    assert_non_null(e);
    cordum__agent__v1__job_request__labels_entry__init(e);
    e->key = sdup(k);
    e->value = sdup(v);
    r->labels[r->n_labels++] = e;
}

static cap_packet *mk_submit(const char *job, const char *topic, const char *act, int prio)
{
    cap_packet *p = ref_packet_new("trace-1", "gateway", T0);
    job_request *r = malloc(sizeof *r);
    assert_non_null(p);
    assert_non_null(r);
    cordum__agent__v1__job_request__init(r);
    r->job_id = sdup(job);
    r->topic = sdup(topic);
    r->priority = (Cordum__Agent__V1__JobPriority)prio;
    r->tenant_id = sdup("tenant-a");
    r->principal_id = sdup("alice");
    /* The policy reads `act` from meta.labels: job labels are placement
     * labels a worker would have to carry (cordum-ref 4.3). */
    Cordum__Agent__V1__JobMetadata *m = malloc(sizeof *m);
    assert_non_null(m);
    cordum__agent__v1__job_metadata__init(m);
    r->meta = m;
    if (act) {
        m->labels = malloc(sizeof *m->labels);
        Cordum__Agent__V1__JobMetadata__LabelsEntry *e = malloc(sizeof *e);
        assert_non_null(m->labels);
        assert_non_null(e);
        cordum__agent__v1__job_metadata__labels_entry__init(e);
        e->key = sdup("act");
        e->value = sdup(act);
        m->labels[0] = e;
        m->n_labels = 1;
    }
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;
    p->job_request = r;
    return p;
}

static int send(fixture *f, const char *subject, cap_packet *p)
{
    begin(f);
    int rc = ref_sched_on_packet(f->s, subject, p, NULL, 0, f->now, &f->fx);
    absorb(f);
    cap_packet_free(p);
    return rc;
}

static int submit(fixture *f, const char *job, const char *topic, const char *act, int prio)
{
    return send(f, REF_SCHED_SUBJECT_SUBMIT, mk_submit(job, topic, act, prio));
}

static int heartbeat(fixture *f, const char *worker, const char *pool, int max_par,
                     const char *memo, int active)
{
    cap_packet *p = ref_packet_new("", worker, f->now);
    Cordum__Agent__V1__Heartbeat *h = malloc(sizeof *h);
    assert_non_null(p);
    assert_non_null(h);
    cordum__agent__v1__heartbeat__init(h);
    h->worker_id = sdup(worker);
    h->pool = sdup(pool);
    h->max_parallel_jobs = max_par;
    h->active_jobs = active;
    h->last_memo = sdup(memo);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
    p->heartbeat = h;
    return send(f, REF_SCHED_SUBJECT_HEARTBEAT, p);
}

static Cordum__Agent__V1__DispatchIdentity *identity(const char *dsp, uint64_t attempt,
                                                    const char *worker)
{
    Cordum__Agent__V1__DispatchIdentity *d = malloc(sizeof *d);
    assert_non_null(d);
    cordum__agent__v1__dispatch_identity__init(d);
    d->dispatch_id = sdup(dsp);
    d->attempt = attempt;
    d->assigned_worker_id = sdup(worker);
    return d;
}

static ref_sched_job_info info(fixture *f, const char *job)
{
    ref_sched_job_info i;
    assert_int_equal(ref_sched_job(f->s, job, &i), CAP_OK);
    return i;
}

/* A result for the job's current attempt (or for `attempt`/`dsp` if given). */
static int result_as(fixture *f, const char *job, int status, int code, const char *dsp,
                     uint64_t attempt, const char *worker)
{
    cap_packet *p = ref_packet_new("trace-1", worker, f->now);
    Cordum__Agent__V1__JobResult *r = malloc(sizeof *r);
    assert_non_null(p);
    assert_non_null(r);
    cordum__agent__v1__job_result__init(r);
    r->job_id = sdup(job);
    r->status = (Cordum__Agent__V1__JobStatus)status;
    r->worker_id = sdup(worker);
    r->error_code_enum = (Cordum__Agent__V1__ErrorCode)code;
    r->error_message = sdup(status == REF_JOB_SUCCEEDED ? "" : "it broke");
    r->dispatch = identity(dsp, attempt, worker);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT;
    p->job_result = r;
    return send(f, REF_SCHED_SUBJECT_RESULT, p);
}

static int result(fixture *f, const char *job, int status)
{
    ref_sched_job_info i = info(f, job);
    char dsp[40], wk[300];
    snprintf(dsp, sizeof dsp, "%s", i.dispatch_id);
    snprintf(wk, sizeof wk, "%s", i.worker_id);
    return result_as(f, job, status, 0, dsp, i.attempt, wk);
}

static int progress_as(fixture *f, const char *job, const char *dsp, uint64_t attempt,
                       const char *worker, const char *ptr)
{
    cap_packet *p = ref_packet_new("trace-1", worker, f->now);
    Cordum__Agent__V1__JobProgress *r = malloc(sizeof *r);
    assert_non_null(p);
    assert_non_null(r);
    cordum__agent__v1__job_progress__init(r);
    r->job_id = sdup(job);
    r->status = CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING;
    r->result_ptr = sdup(ptr);
    r->dispatch = identity(dsp, attempt, worker);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS;
    p->job_progress = r;
    return send(f, REF_SCHED_SUBJECT_PROGRESS, p);
}

static int progress(fixture *f, const char *job)
{
    ref_sched_job_info i = info(f, job);
    char dsp[40], wk[300];
    snprintf(dsp, sizeof dsp, "%s", i.dispatch_id);
    snprintf(wk, sizeof wk, "%s", i.worker_id);
    return progress_as(f, job, dsp, i.attempt, wk, "");
}

static int cancel_as(fixture *f, const char *job, const char *dsp, uint64_t attempt,
                     const char *worker)
{
    cap_packet *p = ref_packet_new("trace-1", "client-1", f->now);
    Cordum__Agent__V1__JobCancel *c = malloc(sizeof *c);
    assert_non_null(p);
    assert_non_null(c);
    cordum__agent__v1__job_cancel__init(c);
    c->job_id = sdup(job);
    c->reason = sdup("user request");
    c->requested_by = sdup("user-7");
    if (dsp)
        c->dispatch = identity(dsp, attempt, worker);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL;
    p->job_cancel = c;
    return send(f, REF_SCHED_SUBJECT_CANCEL, p);
}

static int has(const fixture *f, const char *needle) { return strstr(f->log, needle) != NULL; }

#define ASSERT_LOG(f, needle)                                                                      \
    do {                                                                                           \
        if (!has((f), (needle)))                                                                   \
            fail_msg("expected \"%s\" in:\n%s", (needle), (f)->log);                               \
    } while (0)
#define ASSERT_NO_LOG(f, needle)                                                                   \
    do {                                                                                           \
        if (has((f), (needle)))                                                                    \
            fail_msg("did not expect \"%s\" in:\n%s", (needle), (f)->log);                         \
    } while (0)

/* The publish effect i on subject, or NULL. */
static const cap_packet *published(const fixture *f, const char *subject, size_t nth)
{
    for (size_t i = 0; i < ref_effects_count(&f->fx); i++) {
        const ref_effect *e = ref_effects_at(&f->fx, i);
        if (e->kind == REF_EFFECT_PUBLISH && strcmp(e->subject, subject) == 0 && nth-- == 0)
            return e->packet;
    }
    return NULL;
}

static int64_t wake_timer(const fixture *f)
{
    int64_t best = -1;
    for (size_t i = 0; i < f->n_timers; i++)
        if (f->timers[i].id >= 8 && f->timers[i].id % 8 == 1 && (best < 0 || f->timers[i].at < best))
            best = f->timers[i].at;
    return best;
}

#define PRIO_INTERACTIVE 1
#define PRIO_BATCH 2
#define PRIO_CRITICAL 3

/* ---- the pipeline -------------------------------------------------------- */

static void test_happy_path(void **state)
{
    (void)state;
    fixture *f = setup();
    assert_int_equal(heartbeat(f, "w1", "job.tools", 4, "", 0), REF_SCHED_APPLIED);
    assert_int_equal(submit(f, "j1", "job.tools", "read", 0), REF_SCHED_APPLIED);
    const cap_packet *d = published(f, "worker.w1.jobs", 0);
    assert_non_null(d);
    const Cordum__Agent__V1__DispatchIdentity *id = d->job_request->dispatch;
    assert_non_null(id);
    assert_int_equal(id->attempt, 1);
    assert_string_equal(id->assigned_worker_id, "w1");
    assert_int_equal(strlen(id->dispatch_id), 32);
    assert_string_equal(d->sender_id, "scheduler");
    ref_sched_job_info i = info(f, "j1");
    assert_int_equal(i.state, REF_JOB_DISPATCHED);
    assert_int_equal(i.decision, CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW);
    assert_string_equal(i.policy_snapshot, ref_safety_policy(f->k)->snapshot);
    assert_int_equal(progress(f, "j1"), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "j1").state, REF_JOB_RUNNING);
    assert_int_equal(result(f, "j1", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "j1").state, REF_JOB_SUCCEEDED);
    ASSERT_NO_LOG(f, "sys.job.dlq");
    /* The journal wrote one record per change: submit, dispatch, running, result. */
    ref_sched_stats st = ref_sched_stats_get(f->s);
    assert_int_equal(st.submitted, 1);
    assert_int_equal(st.dispatched, 1);
    assert_int_equal(st.succeeded, 1);
    teardown(f);
}

static void test_deny(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    assert_int_equal(submit(f, "j1", "job.tools", "delete", 0), REF_SCHED_APPLIED);
    ASSERT_NO_LOG(f, "worker.w1.jobs");
    ASSERT_LOG(f, "sys.job.result job_result j1 8 300");
    ASSERT_LOG(f, "sys.job.dlq job_result j1 8 300");
    const cap_packet *dlq = published(f, "sys.job.dlq", 0);
    assert_string_equal(dlq->job_result->error_code, "safety_denied");
    assert_int_equal(info(f, "j1").state, REF_JOB_DENIED);
    /* A topic outside job. is denied by the kernel too. */
    assert_int_equal(submit(f, "j2", "tools", NULL, 0), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "j2").state, REF_JOB_DENIED);
    teardown(f);
}

static void test_require_human_approve_and_reject(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    assert_int_equal(submit(f, "j1", "job.tools", "write", 0), REF_SCHED_APPLIED);
    ASSERT_NO_LOG(f, "worker.w1.jobs");
    ASSERT_NO_LOG(f, "sys.job.dlq");
    ref_sched_job_info i = info(f, "j1");
    assert_int_equal(i.state, REF_JOB_APPROVAL_REQUIRED);
    assert_int_equal(i.approval, 1);
    assert_int_equal(strlen(i.approval_hash), 64);
    assert_string_equal(i.approval_snapshot, ref_safety_policy(f->k)->snapshot);
    begin(f);
    /* The submitter cannot approve their own job. */
    assert_int_equal(ref_sched_approve(f->s, "j1", "alice", "", f->now, &f->fx, NULL),
                     REF_SCHED_SELF_APPROVAL);
    assert_int_equal(ref_sched_approve(f->s, "nope", "bob", "", f->now, &f->fx, NULL),
                     REF_SCHED_NOT_FOUND);
    assert_int_equal(ref_sched_approve(f->s, "j1", "bob", "looks fine", f->now, &f->fx, NULL),
                     REF_SCHED_OK);
    absorb(f);
    const cap_packet *d = published(f, "worker.w1.jobs", 0);
    assert_non_null(d);
    int granted = 0;
    for (size_t k = 0; k < d->job_request->n_labels; k++)
        if (strcmp(d->job_request->labels[k]->key, "approval_granted") == 0 &&
            strcmp(d->job_request->labels[k]->value, "true") == 0)
            granted = 1;
    assert_true(granted);
    assert_int_equal(info(f, "j1").state, REF_JOB_DISPATCHED);
    assert_int_equal(info(f, "j1").approval, 2);
    begin(f);
    assert_int_equal(ref_sched_approve(f->s, "j1", "bob", "", f->now, &f->fx, NULL),
                     REF_SCHED_ALREADY_APPROVED);

    /* Reject: DENIED, result 300 "approval_rejected", DLQ. */
    submit(f, "j2", "job.tools", "write", 0);
    begin(f);
    assert_int_equal(ref_sched_reject(f->s, "j2", "bob", "no", f->now, &f->fx), REF_SCHED_OK);
    absorb(f);
    ASSERT_LOG(f, "sys.job.result job_result j2 8 300");
    ASSERT_LOG(f, "sys.job.dlq job_result j2 8 300");
    assert_string_equal(published(f, "sys.job.dlq", 0)->job_result->error_code, "approval_rejected");
    assert_int_equal(info(f, "j2").state, REF_JOB_DENIED);
    begin(f);
    assert_int_equal(ref_sched_reject(f->s, "j2", "bob", "no", f->now, &f->fx),
                     REF_SCHED_ALREADY_REJECTED);
    teardown(f);
}

static void test_approval_after_policy_change(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "j1", "job.tools", "write", 0);
    submit(f, "j2", "job.tools", "write", 0);
    const char *old_snap = ref_safety_policy(f->k)->snapshot;
    char old[128];
    snprintf(old, sizeof old, "%s", old_snap);

    /* New policy: writes are denied. Approving now re-evaluates: stays parked. */
    const char *deny_writes = "version: t2\ndefault_decision: allow\nrules:\n"
                              "- id: no-writes\n  match: {labels: {act: write}}\n"
                              "  decision: deny\n  reason: writes frozen\n";
    cap_yaml_diag yd;
    assert_int_equal(ref_safety_load(f->k, deny_writes, strlen(deny_writes), &yd), 0);
    char why[REF_REASON_MAX + 1];
    begin(f);
    assert_int_equal(ref_sched_approve(f->s, "j1", "bob", "", f->now, &f->fx, why),
                     REF_SCHED_STALE_SNAPSHOT);
    absorb(f);
    assert_non_null(strstr(why, "writes frozen"));
    assert_int_equal(info(f, "j1").state, REF_JOB_APPROVAL_REQUIRED);
    ASSERT_NO_LOG(f, "worker.w1.jobs");

    /* Another policy: writes are allowed. The approval proceeds, rebound. */
    const char *allow_writes = "version: t3\ndefault_decision: allow\nrules: []\n";
    assert_int_equal(ref_safety_load(f->k, allow_writes, strlen(allow_writes), &yd), 0);
    begin(f);
    assert_int_equal(ref_sched_approve(f->s, "j2", "bob", "", f->now, &f->fx, why), REF_SCHED_OK);
    absorb(f);
    ASSERT_LOG(f, "worker.w1.jobs job_request j2");
    ref_sched_job_info i = info(f, "j2");
    assert_string_equal(i.approval_snapshot, ref_safety_policy(f->k)->snapshot);
    assert_string_not_equal(i.approval_snapshot, old);
    teardown(f);
}

static void test_throttle_rechecks_with_backoff(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    assert_int_equal(submit(f, "j1", "job.tools", "bulk", 0), REF_SCHED_APPLIED);
    ASSERT_NO_LOG(f, "worker.w1.jobs");
    assert_int_equal(info(f, "j1").state, REF_JOB_SCHEDULED);
    int64_t first = wake_timer(f) - f->now;
    assert_true(first >= 5 * SEC && first < 5 * SEC + 500 * MS);
    advance(f, f->now + first);
    ASSERT_NO_LOG(f, "worker.w1.jobs");
    int64_t second = wake_timer(f) - f->now;
    assert_true(second >= 10 * SEC && second < 10 * SEC + 500 * MS);
    /* The policy stops throttling: the next re-check dispatches. */
    const char *allow = "version: t9\ndefault_decision: allow\nrules: []\n";
    cap_yaml_diag yd;
    assert_int_equal(ref_safety_load(f->k, allow, strlen(allow), &yd), 0);
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    advance(f, f->now + second);
    ASSERT_LOG(f, "worker.w1.jobs job_request j1 0 0 1");
    assert_int_equal(ref_sched_stats_get(f->s).throttled, 2);
    teardown(f);
}

static void test_allow_with_constraints(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.batch", 4, "", 0);
    submit(f, "b1", "job.batch", NULL, 0);
    const cap_packet *d = published(f, "worker.w1.jobs", 0);
    assert_non_null(d);
    assert_non_null(d->job_request->budget);
    assert_int_equal(d->job_request->budget->deadline_ms, 10000); /* max_runtime_sec 10 */
    assert_int_equal(info(f, "b1").decision,
                     CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS);
    progress(f, "b1");
    /* max_runtime_ms is the running timeout (10 s, not the 60 s default). */
    advance(f, f->now + 10 * SEC);
    ASSERT_LOG(f, "sys.job.cancel job_cancel b1 0 0 1");
    ASSERT_LOG(f, "sys.job.result job_result b1 9 200");
    ASSERT_LOG(f, "sys.job.dlq job_result b1 9 200");
    assert_int_equal(info(f, "b1").state, REF_JOB_TIMEOUT);

    /* max_retries 1 is the retry cap: one retry, then FAILED. */
    heartbeat(f, "w1", "job.batch", 4, "", 0);
    submit(f, "b2", "job.batch", NULL, 0);
    assert_int_equal(result(f, "b2", REF_JOB_FAILED_RETRYABLE), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "b2").state, REF_JOB_FAILED_RETRYABLE);
    advance(f, f->now + 2 * SEC);
    assert_int_equal(info(f, "b2").attempt, 2);
    assert_int_equal(result(f, "b2", REF_JOB_FAILED_RETRYABLE), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "b2").state, REF_JOB_FAILED);
    ASSERT_LOG(f, "sys.job.dlq job_result b2 6");
    assert_string_equal(published(f, "sys.job.dlq", 0)->job_result->error_code,
                        "max_retries_exceeded");
    teardown(f);
}

static void test_max_concurrent_jobs_cap(void **state)
{
    (void)state;
    fixture *f = new_fixture();
    const char *pol = "version: c1\ndefault_decision: allow\nrules:\n"
                      "- id: one-at-a-time\n  match: {topics: [job.tools]}\n"
                      "  decision: allow_with_constraints\n"
                      "  constraints: {max_concurrent_jobs: 1}\n";
    cap_yaml_diag yd;
    assert_int_equal(ref_safety_load(f->k, pol, strlen(pol), &yd), 0);
    ref_sched_config c = base_config(f);
    setup_cfg(f, &c);
    heartbeat(f, "w1", "job.tools", 8, "", 0);
    submit(f, "c1", "job.tools", NULL, 0);
    ASSERT_LOG(f, "worker.w1.jobs job_request c1");
    submit(f, "c2", "job.tools", NULL, 0);
    ASSERT_NO_LOG(f, "worker.w1.jobs");
    assert_int_equal(info(f, "c2").waiting, 1);
    /* c1 ends: c2 is dispatched at once. */
    result(f, "c1", REF_JOB_SUCCEEDED);
    ASSERT_LOG(f, "worker.w1.jobs job_request c2");
    teardown(f);
}

/* ---- duplicates and fencing ------------------------------------------------ */

static void test_duplicates(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    /* The same submit bytes again: an exact redelivery, silent. */
    cap_packet *p = mk_submit("j1", "job.tools", "read", 0);
    uint8_t *wire = NULL;
    size_t len = 0;
    assert_int_equal(cap_encode(&p->base, &wire, &len), CAP_OK);
    begin(f);
    assert_int_equal(ref_sched_on_packet(f->s, "sys.job.submit", p, wire, len, f->now, &f->fx),
                     REF_SCHED_APPLIED);
    begin(f);
    assert_int_equal(ref_sched_on_packet(f->s, "sys.job.submit", p, wire, len, f->now, &f->fx),
                     REF_SCHED_DUPLICATE);
    assert_int_equal(ref_effects_count(&f->fx), 0);
    free(wire);
    cap_packet_free(p);
    /* A different request with the same job_id: answered 205, no new job. */
    assert_int_equal(submit(f, "j1", "job.other", NULL, 0), REF_SCHED_APPLIED);
    ASSERT_LOG(f, "sys.job.result job_result j1 3 205");
    ASSERT_NO_LOG(f, "worker.");
    assert_int_equal(ref_sched_stats_get(f->s).jobs, 1);

    /* The same idempotency key in the same tenant: 205 about the first job. */
    cap_packet *a = mk_submit("k1", "job.tools", "read", 0);
    cap_packet *b = mk_submit("k2", "job.tools", "read", 0);
    cap_packet *c = mk_submit("k3", "job.tools", "read", 0);
    cap_packet *pk[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        pk[i]->job_request->meta->idempotency_key = sdup("idem-1");
    set_field(&c->job_request->tenant_id, "tenant-b");
    assert_int_equal(send(f, "sys.job.submit", a), REF_SCHED_APPLIED);
    ASSERT_LOG(f, "worker.w1.jobs job_request k1");
    assert_int_equal(send(f, "sys.job.submit", b), REF_SCHED_APPLIED);
    ASSERT_LOG(f, "sys.job.result job_result k1 3 205");
    assert_int_equal(ref_sched_job(f->s, "k2", &(ref_sched_job_info){0}), CAP_EINVAL);
    /* Another tenant's key is its own. */
    assert_int_equal(send(f, "sys.job.submit", c), REF_SCHED_APPLIED);
    ASSERT_LOG(f, "worker.w1.jobs job_request k3");
    assert_int_equal(ref_sched_stats_get(f->s).duplicates, 2);
    teardown(f);
}

/* A job releases its request when it ends (finish): what a terminal job
 * is still asked afterwards is answered from what it keeps. */
static void test_terminal_job_answers_without_its_request(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    cap_packet *a = mk_submit("t1", "job.tools", "read", 0);
    a->job_request->meta->idempotency_key = sdup("idem-t");
    assert_int_equal(send(f, "sys.job.submit", a), REF_SCHED_APPLIED);
    ASSERT_LOG(f, "worker.w1.jobs job_request t1");
    ref_sched_job_info i = info(f, "t1");
    char dsp[40];
    snprintf(dsp, sizeof dsp, "%s", i.dispatch_id);
    assert_int_equal(progress_as(f, "t1", dsp, 1, "w1", "memo-7"), REF_SCHED_APPLIED);
    assert_int_equal(result(f, "t1", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    /* Status queries: the whole record survives. */
    i = info(f, "t1");
    assert_int_equal(i.state, REF_JOB_SUCCEEDED);
    assert_int_equal(i.attempt, 1);
    assert_string_equal(i.dispatch_id, dsp);
    assert_string_equal(i.worker_id, "w1");
    assert_string_equal(i.last_memo, "memo-7");
    assert_string_equal(i.policy_snapshot, ref_safety_policy(f->k)->snapshot);
    assert_int_equal(i.decision, CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW);
    /* Duplicates by job_id and by idempotency key: 205 with the final status. */
    char want[80];
    snprintf(want, sizeof want, "sys.job.result job_result t1 %d 205",
             ref_jobstate_wire(REF_JOB_SUCCEEDED));
    assert_int_equal(submit(f, "t1", "job.other", NULL, 0), REF_SCHED_APPLIED);
    ASSERT_LOG(f, want);
    cap_packet *b = mk_submit("t2", "job.tools", "read", 0);
    b->job_request->meta->idempotency_key = sdup("idem-t");
    assert_int_equal(send(f, "sys.job.submit", b), REF_SCHED_APPLIED);
    ASSERT_LOG(f, want);
    ASSERT_NO_LOG(f, "worker.");
    assert_int_equal(ref_sched_job(f->s, "t2", &(ref_sched_job_info){0}), CAP_EINVAL);
    /* Late packets and operator commands about it change nothing. */
    assert_int_equal(result(f, "t1", REF_JOB_FAILED), REF_SCHED_IGNORED);
    assert_int_equal(progress_as(f, "t1", dsp, 1, "w1", "memo-8"), REF_SCHED_IGNORED);
    assert_int_equal(cancel_as(f, "t1", NULL, 0, NULL), REF_SCHED_IGNORED);
    begin(f);
    assert_int_equal(ref_sched_cancel(f->s, "t1", "x", "op", f->now, &f->fx),
                     REF_SCHED_NOT_ACTIONABLE);
    assert_int_equal(ref_sched_approve(f->s, "t1", "bob", "", f->now, &f->fx, NULL),
                     REF_SCHED_NOT_ACTIONABLE);
    assert_int_equal(ref_sched_reject(f->s, "t1", "bob", "", f->now, &f->fx),
                     REF_SCHED_NOT_ACTIONABLE);
    assert_string_equal(info(f, "t1").last_memo, "memo-7");
    assert_int_equal(ref_sched_stats_get(f->s).duplicates, 2);
    /* A job admitted after it (same idempotency key, other tenant) runs. */
    cap_packet *c = mk_submit("t3", "job.tools", "read", 0);
    c->job_request->meta->idempotency_key = sdup("idem-t");
    set_field(&c->job_request->tenant_id, "tenant-b");
    assert_int_equal(send(f, "sys.job.submit", c), REF_SCHED_APPLIED);
    ASSERT_LOG(f, "worker.w1.jobs job_request t3");
    teardown(f);
}

/* Jobs share one copy of a repeated decision snapshot and worker id: each
 * job keeps reading its own value while others are evicted, re-decided
 * under a new policy and dispatched elsewhere (run under ASan, a copy
 * freed while a job still points at it is caught). */
static void test_shared_strings_follow_each_job(void **state)
{
    (void)state;
    fixture *f = setup_max_jobs(3);
    char snap1[128], snap2[128];
    snprintf(snap1, sizeof snap1, "%s", ref_safety_policy(f->k)->snapshot);
    heartbeat(f, "w1", "job.tools", 8, "", 0);
    assert_int_equal(submit(f, "a1", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_int_equal(submit(f, "a2", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_string_equal(info(f, "a1").policy_snapshot, snap1);
    assert_string_equal(info(f, "a2").worker_id, "w1");
    result(f, "a1", REF_JOB_SUCCEEDED);
    /* A new policy: the next job's snapshot differs, the old ones stay. */
    const char *p2 = "version: t9\ndefault_decision: allow\nrules: []\n";
    cap_yaml_diag yd;
    assert_int_equal(ref_safety_load(f->k, p2, strlen(p2), &yd), 0);
    snprintf(snap2, sizeof snap2, "%s", ref_safety_policy(f->k)->snapshot);
    assert_string_not_equal(snap1, snap2);
    heartbeat(f, "w2", "job.tools", 8, "", 0);
    assert_int_equal(submit(f, "a3", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_string_equal(info(f, "a3").policy_snapshot, snap2);
    assert_string_equal(info(f, "a1").policy_snapshot, snap1);
    assert_string_equal(info(f, "a2").policy_snapshot, snap1);
    /* The table is full: the next submit evicts a1 (terminal), the last
     * job on snap1 but a2. */
    assert_int_equal(submit(f, "a4", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_int_equal(ref_sched_job(f->s, "a1", &(ref_sched_job_info){0}), CAP_EINVAL);
    assert_string_equal(info(f, "a2").policy_snapshot, snap1);
    assert_string_equal(info(f, "a4").policy_snapshot, snap2);
    /* a2 ends and is evicted: nothing points at snap1 any more; a job
     * decided under it again gets it back. */
    result(f, "a2", REF_JOB_SUCCEEDED);
    assert_int_equal(submit(f, "a5", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_int_equal(ref_sched_job(f->s, "a2", &(ref_sched_job_info){0}), CAP_EINVAL);
    const char *p1 = POLICY;
    assert_int_equal(ref_safety_load(f->k, p1, strlen(p1), &yd), 0);
    assert_string_equal(ref_safety_policy(f->k)->snapshot, snap1);
    result(f, "a3", REF_JOB_SUCCEEDED);
    assert_int_equal(submit(f, "a6", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_string_equal(info(f, "a6").policy_snapshot, snap1);
    assert_string_equal(info(f, "a5").policy_snapshot, snap2);
    ref_sched_job_info i4 = info(f, "a4"), i6 = info(f, "a6");
    assert_true(strcmp(i4.worker_id, "w1") == 0 || strcmp(i4.worker_id, "w2") == 0);
    assert_true(strcmp(i6.worker_id, "w1") == 0 || strcmp(i6.worker_id, "w2") == 0);
    teardown(f);
}

/* Gives a submit signature metadata: message id mid (16 bytes), audience
 * sys.job.submit, expiring at `expires`. */
static void add_signature_metadata(cap_packet *p, uint8_t mid, int64_t expires)
{
    Cordum__Agent__V1__SignatureMetadata *md = malloc(sizeof *md);
    Google__Protobuf__Timestamp *ts = malloc(sizeof *ts);
    uint8_t *id = malloc(16);
    assert_non_null(md);
    assert_non_null(ts);
    assert_non_null(id);
    cordum__agent__v1__signature_metadata__init(md);
    google__protobuf__timestamp__init(ts);
    memset(id, mid, 16);
    md->message_id.data = id;
    md->message_id.len = 16;
    md->audience = sdup(REF_SCHED_SUBJECT_SUBMIT);
    ts->seconds = expires / SEC;
    md->expires_at = ts;
    p->signature_metadata = md;
}

/* The replay guard's refusals: a packet whose signature metadata expired
 * and one reusing a message id with another body are refused and counted
 * by verdict; neither becomes a job or publishes anything. */
static void test_replay_refusals_counted(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    cap_packet *old = mk_submit("e1", "job.tools", "read", 0);
    add_signature_metadata(old, 7, f->now - 120 * SEC); /* past the 60 s skew */
    assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, old), REF_SCHED_REJECTED);
    ASSERT_NO_LOG(f, "e1"); /* nothing published about it */
    assert_int_equal(ref_sched_stats_get(f->s).replays_expired, 1);
    cap_packet *a = mk_submit("c1", "job.tools", "read", 0);
    cap_packet *b = mk_submit("c2", "job.tools", "read", 0);
    add_signature_metadata(a, 9, f->now + 60 * SEC);
    add_signature_metadata(b, 9, f->now + 60 * SEC);
    assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, a), REF_SCHED_APPLIED);
    assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, b), REF_SCHED_REJECTED);
    ASSERT_NO_LOG(f, "c2");
    ref_sched_stats st = ref_sched_stats_get(f->s);
    assert_int_equal(st.replays_expired, 1);
    assert_int_equal(st.replays_conflicting, 1);
    assert_int_equal(st.jobs, 1);
    assert_int_equal(ref_sched_job(f->s, "e1", &(ref_sched_job_info){0}), CAP_EINVAL);
    assert_int_equal(ref_sched_job(f->s, "c2", &(ref_sched_job_info){0}), CAP_EINVAL);
    teardown(f);
}

static void test_fencing(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "j1", "job.tools", "read", 0);
    ref_sched_job_info i = info(f, "j1");
    char first[40];
    snprintf(first, sizeof first, "%s", i.dispatch_id);
    result(f, "j1", REF_JOB_FAILED_RETRYABLE);
    advance(f, f->now + 2 * SEC);
    i = info(f, "j1");
    assert_int_equal(i.attempt, 2);
    assert_string_not_equal(i.dispatch_id, first);
    /* Attempt 1's result, progress and cancel are stale now. */
    assert_int_equal(result_as(f, "j1", REF_JOB_SUCCEEDED, 0, first, 1, "w1"), REF_SCHED_STALE);
    assert_int_equal(progress_as(f, "j1", first, 1, "w1", ""), REF_SCHED_STALE);
    assert_int_equal(cancel_as(f, "j1", first, 1, "w1"), REF_SCHED_STALE);
    assert_int_equal(info(f, "j1").state, REF_JOB_DISPATCHED);
    /* A right attempt number with a forged dispatch id is stale too. */
    assert_int_equal(result_as(f, "j1", REF_JOB_SUCCEEDED, 0, "forged", 2, "w1"), REF_SCHED_STALE);
    /* The current identity applies; a result after the terminal is ignored. */
    assert_int_equal(result(f, "j1", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    assert_int_equal(result(f, "j1", REF_JOB_FAILED), REF_SCHED_IGNORED);
    assert_int_equal(info(f, "j1").state, REF_JOB_SUCCEEDED);
    assert_int_equal(ref_sched_stats_get(f->s).stale, 4);
    teardown(f);
}

/* ---- retries and timeouts -------------------------------------------------- */

static void test_retries_backoff_and_exhaustion(void **state)
{
    (void)state;
    fixture *f = new_fixture();
    ref_sched_config c = base_config(f);
    ref_breaker_config bc = {.failure_threshold = 10, .cool_down_ns = 10 * SEC};
    c.breaker = &bc; /* the default 3 would open w1's breaker on the third failure */
    setup_cfg(f, &c);
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "j1", "job.tools", "read", 0);
    for (uint32_t n = 0; n < 3; n++) {
        assert_int_equal(result(f, "j1", REF_JOB_FAILED_RETRYABLE), REF_SCHED_APPLIED);
        ASSERT_NO_LOG(f, "sys.job.dlq");
        int64_t delay = wake_timer(f) - f->now;
        int64_t base = SEC << n;
        assert_true(delay >= base && delay < base + 500 * MS);
        heartbeat(f, "w1", "job.tools", 4, "", 0);
        advance(f, f->now + delay);
        ASSERT_LOG(f, "worker.w1.jobs job_request j1");
        assert_int_equal(info(f, "j1").attempt, n + 2);
        assert_int_equal(info(f, "j1").retries, n + 1);
    }
    assert_int_equal(result(f, "j1", REF_JOB_FAILED_RETRYABLE), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "j1").state, REF_JOB_FAILED);
    ASSERT_LOG(f, "sys.job.result job_result j1 6");
    ASSERT_LOG(f, "sys.job.dlq job_result j1 6");
    /* A fatal failure is never retried. */
    submit(f, "j2", "job.tools", "read", 0);
    result(f, "j2", REF_JOB_FAILED_FATAL);
    assert_int_equal(info(f, "j2").state, REF_JOB_FAILED_FATAL);
    ASSERT_LOG(f, "sys.job.dlq job_result j2 11");
    assert_int_equal(wake_timer(f), -1);
    teardown(f);
}

static void test_dispatch_timeout(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "j1", "job.tools", "read", 0);
    advance(f, f->now + 30 * SEC - 1);
    assert_int_equal(info(f, "j1").state, REF_JOB_DISPATCHED);
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    advance(f, f->now + 1);
    assert_int_equal(info(f, "j1").state, REF_JOB_TIMEOUT);
    ASSERT_LOG(f, "sys.job.cancel job_cancel j1 0 0 1");
    ASSERT_LOG(f, "sys.job.result job_result j1 9 200");
    ASSERT_LOG(f, "sys.job.dlq job_result j1 9 200");
    assert_string_equal(published(f, "sys.job.dlq", 0)->job_result->error_code, "dispatch_timeout");
    teardown(f);
}

static void test_timeouts_per_pool_and_tenant(void **state)
{
    (void)state;
    fixture *f = new_fixture();
    ref_sched_config c = base_config(f);
    ref_sched_timeouts pools[] = {{"job.slow", 100 * SEC, 0}};
    ref_sched_timeouts tenants[] = {{"tenant-a", 0, 5 * SEC}};
    c.pool_timeouts = pools;
    c.n_pool_timeouts = 1;
    c.tenant_timeouts = tenants;
    c.n_tenant_timeouts = 1;
    setup_cfg(f, &c);
    heartbeat(f, "w1", "job.slow", 4, "", 0);
    submit(f, "j1", "job.slow", "read", 0);
    for (int k = 0; k < 9; k++) { /* keep w1 alive for 99 s */
        advance(f, f->now + 11 * SEC);
        heartbeat(f, "w1", "job.slow", 4, "", 0);
    }
    assert_int_equal(info(f, "j1").state, REF_JOB_DISPATCHED); /* the pool's 100 s, not 30 s */
    progress(f, "j1");
    advance(f, f->now + 5 * SEC);
    assert_int_equal(info(f, "j1").state, REF_JOB_TIMEOUT); /* the tenant's 5 s running */
    assert_string_equal(published(f, "sys.job.dlq", 0)->job_result->error_code, "running_timeout");
    teardown(f);
}

static void test_no_worker_waits_then_fails(void **state)
{
    (void)state;
    fixture *f = setup();
    submit(f, "j1", "job.tools", "read", 0);
    assert_int_equal(info(f, "j1").waiting, 1);
    assert_int_equal(info(f, "j1").state, REF_JOB_SCHEDULED);
    advance(f, f->now + 5 * SEC);
    /* A worker comes online: the waiting job goes at once. */
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    ASSERT_LOG(f, "worker.w1.jobs job_request j1");
    /* Nobody serves job.none: after the bounded wait, FAILED 206. */
    submit(f, "j2", "job.none", "read", 0);
    advance(f, f->now + 20 * SEC);
    assert_int_equal(info(f, "j2").state, REF_JOB_FAILED);
    ASSERT_LOG(f, "sys.job.result job_result j2 6 206");
    ASSERT_LOG(f, "sys.job.dlq job_result j2 6 206");
    teardown(f);
}

/* The ids of the fixture's timers due at `at` (at most cap); their count. */
static size_t timers_due_at(const fixture *f, int64_t at, uint64_t *ids, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_timers && n < cap; i++)
        if (f->timers[i].at == at)
            ids[n++] = f->timers[i].id;
    return n;
}

/* A drain that finds a waiting job still no worker leaves it as it was: no
 * journal record and the same wake timer (re-armed and recorded at every
 * heartbeat, a backlog of n jobs cost n records and timer moves each).
 * The wake, when it fires, re-arms the job and records it. */
static void test_waiting_job_tried_again_keeps_its_wake(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "n1", "job.none", "read", 0);
    submit(f, "n2", "job.none", "read", 0);
    uint64_t wakes[4];
    assert_int_equal(timers_due_at(f, f->now + 2 * SEC, wakes, 4), 2); /* no_worker_retry */
    int64_t first_wake = f->now + 2 * SEC;
    strcpy(f->count_prefix, "n"); /* n1's and n2's records */
    size_t texts = f->texts;
    advance(f, f->now + SEC);
    heartbeat(f, "w1", "job.tools", 4, "", 0); /* a drain: both tried again */
    submit(f, "j1", "job.tools", "read", 0);   /* dispatched; its record is one */
    ASSERT_LOG(f, "worker.w1.jobs job_request j1");
    result(f, "j1", REF_JOB_SUCCEEDED); /* a freed slot: another drain */
    assert_int_equal(info(f, "n1").waiting, 1);
    assert_int_equal(info(f, "n2").waiting, 1);
    uint64_t still[4];
    assert_int_equal(timers_due_at(f, first_wake, still, 4), 2);
    assert_true((still[0] == wakes[0] && still[1] == wakes[1]) ||
                (still[0] == wakes[1] && still[1] == wakes[0]));
    assert_true(f->texts > texts);           /* j1's records were written */
    assert_int_equal(f->counted_texts, 0); /* and none for n1, n2 */
    /* At the wake, each is tried by its timer: re-armed 2 s on, one record each. */
    advance(f, first_wake);
    assert_int_equal(f->counted_texts, 2);
    assert_int_equal(timers_due_at(f, first_wake + 2 * SEC, still, 4), 2);
    /* And the bounded wait still ends them: FAILED 206 at 20 s. */
    advance(f, f->now + 20 * SEC);
    assert_int_equal(info(f, "n1").state, REF_JOB_FAILED);
    assert_int_equal(info(f, "n2").state, REF_JOB_FAILED);
    teardown(f);
}

/* One worker, w1, of one slot, busy with job j0 (a batch job). */
static fixture *setup_one_busy_worker(void)
{
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 1, "", 0);
    submit(f, "j0", "job.tools", "read", PRIO_BATCH);
    ASSERT_LOG(f, "worker.w1.jobs job_request j0");
    return f;
}

/* Ends the running job prev and requires that want is dispatched next. */
static void next_dispatched(fixture *f, const char *prev, const char *want)
{
    result(f, prev, REF_JOB_SUCCEEDED);
    char line[64];
    snprintf(line, sizeof line, "worker.w1.jobs job_request %s", want);
    ASSERT_LOG(f, line);
}

static void test_priority_when_capacity_is_short(void **state)
{
    (void)state;
    fixture *f = setup_one_busy_worker();
    submit(f, "jb", "job.tools", "read", PRIO_BATCH);
    submit(f, "ji", "job.tools", "read", PRIO_INTERACTIVE);
    submit(f, "jc", "job.tools", "read", PRIO_CRITICAL);
    assert_int_equal(ref_sched_stats_get(f->s).waiting, 3);
    const char *order[] = {"j0", "jc", "ji", "jb"};
    for (int k = 1; k < 4; k++)
        next_dispatched(f, order[k - 1], order[k]);
    teardown(f);
}

/* Jobs joining the waiting queue once others have left its front: a
 * critical one behind the critical ones still waiting and ahead of every
 * batch one, an interactive one where only jobs that left lie ahead of
 * it. The queue still hands them out by priority, oldest first. */
static void test_priority_kept_as_jobs_join_behind_an_emptied_front(void **state)
{
    (void)state;
    fixture *f = setup_one_busy_worker();
    const char *first[] = {"c0", "c1", "c2"};
    for (int k = 0; k < 3; k++)
        submit(f, first[k], "job.tools", "read", PRIO_CRITICAL);
    char id[16];
    for (int k = 0; k < 6; k++) {
        snprintf(id, sizeof id, "b%d", k);
        submit(f, id, "job.tools", "read", PRIO_BATCH);
    }
    next_dispatched(f, "j0", "c0");
    submit(f, "c3", "job.tools", "read", PRIO_CRITICAL); /* behind c1 and c2 */
    next_dispatched(f, "c0", "c1");
    submit(f, "c4", "job.tools", "read", PRIO_CRITICAL);
    const char *order[] = {"c1", "c2", "c3", "c4"};
    for (int k = 1; k < 4; k++)
        next_dispatched(f, order[k - 1], order[k]);
    assert_int_equal(ref_sched_stats_get(f->s).waiting, 6);
    submit(f, "i0", "job.tools", "read", PRIO_INTERACTIVE); /* only tombstones ahead */
    submit(f, "c5", "job.tools", "read", PRIO_CRITICAL);
    next_dispatched(f, "c4", "c5");
    next_dispatched(f, "c5", "i0");
    char prev[16] = "i0";
    for (int k = 0; k < 6; k++) {
        snprintf(id, sizeof id, "b%d", k);
        next_dispatched(f, prev, id);
        memcpy(prev, id, sizeof prev);
    }
    assert_int_equal(ref_sched_stats_get(f->s).waiting, 0);
    teardown(f);
}

/* The env value of key in a dispatched request, or NULL. */
static const char *env_of(const cap_packet *d, const char *key)
{
    for (size_t k = 0; k < d->job_request->n_env; k++)
        if (strcmp(d->job_request->env[k]->key, key) == 0)
            return d->job_request->env[k]->value;
    return NULL;
}

/* A checkpoint reported in a JobProgress of the attempt goes with the
 * retry, in env CORDUM_LAST_MEMO. */
static void test_last_memo_travels(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "j1", "job.tools", "read", 0);
    ref_sched_job_info i = info(f, "j1");
    char dsp[40];
    snprintf(dsp, sizeof dsp, "%s", i.dispatch_id);
    assert_int_equal(progress_as(f, "j1", dsp, 1, "w1", "step-3"), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "j1").state, REF_JOB_RUNNING);
    assert_string_equal(info(f, "j1").last_memo, "step-3");
    result(f, "j1", REF_JOB_FAILED_RETRYABLE);
    advance(f, f->now + 2 * SEC);
    const cap_packet *d = published(f, "worker.w1.jobs", 0);
    assert_non_null(d);
    assert_non_null(env_of(d, REF_SCHED_ENV_LAST_MEMO));
    assert_string_equal(env_of(d, REF_SCHED_ENV_LAST_MEMO), "step-3");
    teardown(f);
}

/* A heartbeat names no job: its last_memo (here about a job the worker
 * finished before) starts the one job the worker holds but is not that
 * job's checkpoint, and the retry carries none; with the injected bug
 * checkpoint-from-heartbeat it is taken, and the retry carries it. */
static void test_heartbeat_memo_is_not_a_checkpoint(void **state)
{
    (void)state;
    for (int bug = 0; bug <= 1; bug++) {
        ref_bug_set(bug ? REF_BUG_CHECKPOINT_FROM_HEARTBEAT : REF_BUG_NONE);
        fixture *f = setup();
        heartbeat(f, "w1", "job.tools", 4, "", 0);
        submit(f, "j1", "job.tools", "read", 0);
        heartbeat(f, "w1", "job.tools", 4, "SUCCEEDED j0", 1);
        assert_int_equal(info(f, "j1").state, REF_JOB_RUNNING);
        assert_string_equal(info(f, "j1").last_memo, bug ? "SUCCEEDED j0" : "");
        result(f, "j1", REF_JOB_FAILED_RETRYABLE);
        advance(f, f->now + 2 * SEC);
        const cap_packet *d = published(f, "worker.w1.jobs", 0);
        assert_non_null(d);
        if (bug)
            assert_string_equal(env_of(d, REF_SCHED_ENV_LAST_MEMO), "SUCCEEDED j0");
        else
            assert_null(env_of(d, REF_SCHED_ENV_LAST_MEMO));
        teardown(f);
    }
    ref_bug_set(REF_BUG_NONE);
}

/* A worker takes only the attempt after the one it last saw of a job
 * (cap-tck 4, worker-rejects-future-attempt): once an attempt ran on
 * another worker, the next attempts avoid the workers of earlier ones,
 * however idle they are. Here attempt 1 runs on w1, attempt 2 on w2, and
 * attempt 3 goes to the busier w2, not to the idle w1 (which would refuse
 * it and leave the job to its dispatch timeout). */
static void test_retry_avoids_workers_of_earlier_attempts(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    heartbeat(f, "w2", "job.tools", 4, "", 3);
    submit(f, "j1", "job.tools", "read", 0);
    assert_string_equal(info(f, "j1").worker_id, "w1");
    assert_int_equal(info(f, "j1").attempt, 1);
    result(f, "j1", REF_JOB_FAILED_RETRYABLE);
    heartbeat(f, "w1", "job.tools", 4, "", 3);
    heartbeat(f, "w2", "job.tools", 4, "", 0);
    advance(f, f->now + 3 * SEC);
    assert_int_equal(info(f, "j1").attempt, 2);
    assert_string_equal(info(f, "j1").worker_id, "w2");
    result(f, "j1", REF_JOB_FAILED_RETRYABLE);
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    heartbeat(f, "w2", "job.tools", 4, "", 3);
    advance(f, f->now + 5 * SEC);
    assert_int_equal(info(f, "j1").attempt, 3);
    assert_string_equal(info(f, "j1").worker_id, "w2");
    assert_int_equal(info(f, "j1").state, REF_JOB_DISPATCHED);
    /* attempt 4 may go back to w2, which ran attempt 3 */
    result(f, "j1", REF_JOB_FAILED_RETRYABLE);
    advance(f, f->now + 9 * SEC);
    assert_int_equal(info(f, "j1").attempt, 4);
    assert_string_equal(info(f, "j1").worker_id, "w2");
    teardown(f);
}

static char **str_array(size_t n, const char *const *v)
{
    char **a = malloc(n * sizeof *a);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a[i] = strdup(v[i]); /* array elements are always owned */
    return a;
}

/* The dispatched request is the submitted one, field for field (every
 * kind of field: nested messages, maps, repeated strings, bytes, bools,
 * negative numbers, an empty sub-message), plus its dispatch identity. */
static void test_dispatch_copies_the_whole_request(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    cap_packet *p = mk_submit("j1", "job.tools", NULL, PRIO_BATCH);
    job_request *r = p->job_request;
    set_field(&r->context_ptr, "ctx://1");
    set_field(&r->adapter_id, "adapter");
    set_field(&r->parent_job_id, "parent-0");
    set_field(&r->workflow_id, "wf-1");
    r->step_index = -3;
    set_field(&r->memory_id, "mem");
    add_label(r, "workflow_id", "wf-1");
    add_label(r, "cordum.note", ""); /* an entry with an empty value stays an entry */
    r->env = malloc(sizeof *r->env);
    assert_non_null(r->env);
    r->env[0] = malloc(sizeof *r->env[0]);
    assert_non_null(r->env[0]);
    cordum__agent__v1__job_request__env_entry__init(r->env[0]);
    r->env[0]->key = sdup("MODE");
    r->env[0]->value = sdup("fast");
    r->n_env = 1;
    r->context_hints = malloc(sizeof *r->context_hints);
    assert_non_null(r->context_hints);
    cordum__agent__v1__context_hints__init(r->context_hints);
    r->context_hints->max_input_tokens = 7;
    r->context_hints->allow_retrieval = 1;
    static const char *const tags[] = {"t1", "", "t3"};
    r->context_hints->tags = str_array(3, tags);
    r->context_hints->n_tags = 3;
    r->budget = malloc(sizeof *r->budget);
    assert_non_null(r->budget);
    cordum__agent__v1__budget__init(r->budget);
    r->budget->max_total_tokens = 100;
    r->budget->max_input_tokens = -1;
    static const char *const risks[] = {"pii"};
    r->meta->risk_tags = str_array(1, risks);
    r->meta->n_risk_tags = 1;
    set_field(&r->meta->idempotency_key, "idem-1");
    r->compensation = malloc(sizeof *r->compensation);
    assert_non_null(r->compensation);
    cordum__agent__v1__compensation__init(r->compensation);
    set_field(&r->compensation->topic, "job.undo");
    r->compensation->identity = malloc(sizeof *r->compensation->identity);
    assert_non_null(r->compensation->identity);
    cordum__agent__v1__identity_binding__init(r->compensation->identity); /* empty, present */
    r->identity = malloc(sizeof *r->identity);
    assert_non_null(r->identity);
    cordum__agent__v1__identity_binding__init(r->identity);
    set_field(&r->identity->actor_id, "bot-7");
    r->context_ref = malloc(sizeof *r->context_ref);
    assert_non_null(r->context_ref);
    cordum__agent__v1__resource_ref__init(r->context_ref);
    set_field(&r->context_ref->uri, "s3://b/k");
    r->context_ref->sha256.len = 32;
    r->context_ref->sha256.data = malloc(32);
    assert_non_null(r->context_ref->sha256.data);
    for (int i = 0; i < 32; i++)
        r->context_ref->sha256.data[i] = (uint8_t)(i * 7 + 1);
    r->context_ref->size_bytes = UINT64_C(1) << 40;

    uint8_t *want = NULL, *got = NULL;
    size_t want_len = 0, got_len = 0;
    assert_int_equal(cap_encode(&r->base, &want, &want_len), CAP_OK);
    assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, p), REF_SCHED_APPLIED);
    const cap_packet *d = published(f, "worker.w1.jobs", 0);
    assert_non_null(d);
    job_request *dr = d->job_request;
    assert_non_null(dr->dispatch);
    assert_int_equal(dr->dispatch->attempt, 1);
    Cordum__Agent__V1__DispatchIdentity *id = dr->dispatch;
    dr->dispatch = NULL;
    assert_int_equal(cap_encode(&dr->base, &got, &got_len), CAP_OK);
    dr->dispatch = id;
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    free(want);
    free(got);
    teardown(f);
}

/* The kept copy of a request is a field-by-field copy, not the bytes: a
 * bool holding 2 is kept (and dispatched) as 1, and the copy's strings
 * and sub-messages are its own (the submitted packet is freed before the
 * dispatch is read). */
static void test_kept_request_normalises_bools(void **state)
{
    (void)state;
    fixture *f = setup();
    cap_packet *p = mk_submit("j1", "job.tools", "read", 0);
    job_request *r = p->job_request;
    r->context_hints = malloc(sizeof *r->context_hints);
    assert_non_null(r->context_hints);
    cordum__agent__v1__context_hints__init(r->context_hints);
    r->context_hints->allow_retrieval = 2;
    r->context_hints->max_input_tokens = 9;
    assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, p), REF_SCHED_APPLIED); /* frees p */
    heartbeat(f, "w1", "job.tools", 4, "", 0); /* the drain dispatches */
    const cap_packet *d = published(f, "worker.w1.jobs", 0);
    assert_non_null(d);
    assert_non_null(d->job_request->context_hints);
    assert_int_equal(d->job_request->context_hints->allow_retrieval, 1);
    assert_int_equal(d->job_request->context_hints->max_input_tokens, 9);
    assert_string_equal(d->job_request->job_id, "j1");
    assert_string_equal(d->job_request->topic, "job.tools");
    teardown(f);
}

/* Requests far larger than the last one kept (a 20 KB string, 600 map
 * entries: more pieces and pointers than any before) and small ones
 * between them are kept byte for byte: all wait for the worker while the
 * next ones are kept, then each is dispatched as it was submitted. */
static void test_large_requests_kept_exactly(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 8, "", 8); /* full: the jobs wait */
    static const int n_env[] = {0, 600, 1, 1200};
    static const size_t big[] = {0, 20000, 3, 70000};
    enum { N = sizeof n_env / sizeof n_env[0] };
    uint8_t *want[N];
    size_t want_len[N];
    for (size_t c = 0; c < N; c++) {
        char id[16];
        snprintf(id, sizeof id, "big%zu", c);
        cap_packet *p = mk_submit(id, "job.tools", "read", 0);
        job_request *r = p->job_request;
        if (big[c]) {
            char *text = malloc(big[c] + 1);
            assert_non_null(text);
            memset(text, 'a' + (int)c, big[c]);
            text[big[c]] = 0;
            set_field(&r->memory_id, text);
            free(text);
        }
        if (n_env[c]) {
            r->env = calloc((size_t)n_env[c], sizeof *r->env);
            assert_non_null(r->env);
            for (int i = 0; i < n_env[c]; i++) {
                char k[32], v[32];
                snprintf(k, sizeof k, "K%04d", i);
                snprintf(v, sizeof v, "value-%zu-%d", c, i * 7);
                r->env[i] = malloc(sizeof *r->env[i]);
                assert_non_null(r->env[i]);
                cordum__agent__v1__job_request__env_entry__init(r->env[i]);
                r->env[i]->key = sdup(k);
                r->env[i]->value = sdup(v);
            }
            r->n_env = (size_t)n_env[c];
        }
        assert_int_equal(cap_encode(&r->base, &want[c], &want_len[c]), CAP_OK);
        assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, p), REF_SCHED_APPLIED);
        assert_int_equal(info(f, id).waiting, 1);
    }
    heartbeat(f, "w1", "job.tools", 8, "", 0); /* room: the drain dispatches all, in order */
    for (size_t c = 0; c < N; c++) {
        const cap_packet *d = published(f, "worker.w1.jobs", c);
        assert_non_null(d);
        job_request *dr = d->job_request;
        Cordum__Agent__V1__DispatchIdentity *did = dr->dispatch;
        assert_non_null(did);
        dr->dispatch = NULL;
        uint8_t *got = NULL;
        size_t got_len = 0;
        assert_int_equal(cap_encode(&dr->base, &got, &got_len), CAP_OK);
        dr->dispatch = did;
        assert_int_equal(got_len, want_len[c]);
        assert_memory_equal(got, want[c], want_len[c]);
        free(got);
        free(want[c]);
    }
    teardown(f);
}

/* Job records and kept request blocks are used again as jobs come and
 * go: through a small table (evictions), with ids short and long (a long
 * id, trace and key are kept outside the record), requests growing and
 * shrinking (a block let go of is taken again when it holds the next
 * request, else a new one is made), every dispatch carries its own
 * request to the byte, every live job is found by its id (also ids that
 * are prefixes of each other), and every evicted one is not. */
static void test_records_and_request_blocks_reused(void **state)
{
    (void)state;
    enum { MAX = 6, JOBS = 60 };
    fixture *f = setup_max_jobs(MAX);
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    char ids[JOBS][160];
    for (int i = 0; i < JOBS; i++) {
        if (i % 3 == 2) /* with the trace and tenant, more than a record holds */
            snprintf(ids[i], sizeof ids[i], "job-with-a-long-identifier-%d-%0100d", i, i);
        else
            snprintf(ids[i], sizeof ids[i], "j%d", i % 3 ? i * 10 : i); /* j1, j10, ... */
        cap_packet *p = mk_submit(ids[i], "job.tools", "read", 0);
        job_request *r = p->job_request;
        size_t big = (size_t)((i * 37) % 7) * 300; /* 0 .. 1800 bytes, up and down */
        if (big) {
            char *text = malloc(big + 1);
            assert_non_null(text);
            memset(text, 'a' + i % 26, big);
            text[big] = 0;
            set_field(&r->memory_id, text);
            free(text);
        }
        if (i % 4 == 1)
            set_field(&r->meta->idempotency_key, ids[i]);
        uint8_t *want = NULL;
        size_t want_len = 0;
        assert_int_equal(cap_encode(&r->base, &want, &want_len), CAP_OK);
        assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, p), REF_SCHED_APPLIED);
        const cap_packet *d = published(f, "worker.w1.jobs", 0);
        assert_non_null(d);
        job_request *dr = d->job_request;
        assert_string_equal(dr->job_id, ids[i]);
        Cordum__Agent__V1__DispatchIdentity *did = dr->dispatch;
        dr->dispatch = NULL;
        uint8_t *got = NULL;
        size_t got_len = 0;
        assert_int_equal(cap_encode(&dr->base, &got, &got_len), CAP_OK);
        dr->dispatch = did;
        assert_int_equal(got_len, want_len);
        assert_memory_equal(got, want, want_len);
        free(got);
        free(want);
        assert_int_equal(result(f, ids[i], i % 5 == 3 ? REF_JOB_FAILED : REF_JOB_SUCCEEDED),
                         REF_SCHED_APPLIED);
        for (int k = 0; k <= i; k++) {
            ref_sched_job_info ji;
            int live = k > i - MAX;
            assert_int_equal(ref_sched_job(f->s, ids[k], &ji), live ? CAP_OK : CAP_EINVAL);
            if (live)
                assert_int_equal(ji.state, k % 5 == 3 ? REF_JOB_FAILED : REF_JOB_SUCCEEDED);
        }
    }
    /* an id of a live job with one byte more or less is not that job */
    char near[170];
    snprintf(near, sizeof near, "%sx", ids[JOBS - 1]);
    assert_int_equal(ref_sched_job(f->s, near, &(ref_sched_job_info){0}), CAP_EINVAL);
    near[strlen(ids[JOBS - 1]) - 1] = 0;
    assert_int_equal(ref_sched_job(f->s, near, &(ref_sched_job_info){0}), CAP_EINVAL);
    /* a duplicate submit of a live job is answered as one */
    assert_int_equal(submit(f, ids[JOBS - 2], "job.tools", "read", 0), REF_SCHED_APPLIED);
    char want[200];
    snprintf(want, sizeof want, "job_result %s 6 205 ", ids[JOBS - 2]); /* FAILED, JOB_DUPLICATE */
    ASSERT_LOG(f, want);
    teardown(f);
}

/* The index of the nth publish effect on subject, or -1. */
static long publish_index(const fixture *f, const char *subject, size_t nth)
{
    for (size_t i = 0; i < ref_effects_count(&f->fx); i++) {
        const ref_effect *e = ref_effects_at(&f->fx, i);
        if (e->kind == REF_EFFECT_PUBLISH && strcmp(e->subject, subject) == 0 && nth-- == 0)
            return (long)i;
    }
    return -1;
}

static void assert_same_encoding(const cap_packet *a, const cap_packet *b)
{
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    assert_int_equal(cap_encode(&a->base, &x, &nx), CAP_OK);
    assert_int_equal(cap_encode(&b->base, &y, &ny), CAP_OK);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx);
    free(x);
    free(y);
}

/* The usual dispatch is published as one block (ref_effects_publish_block)
 * that encodes byte for byte as the packet built piece by piece: the
 * envelope, the submitted request with its dispatch identity, and the
 * runtime cap as deadline (a budget added when the request has none, a
 * later or unset deadline lowered, an earlier one kept, no budget added
 * without a cap). Taken out of the list, a block packet is an ordinary
 * heap copy (freed with cap_packet_free). */
static void test_dispatch_packet_is_one_block(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.batch", 8, "", 0);
    heartbeat(f, "w2", "job.tools", 8, "", 0);
    static const struct {
        const char *job, *topic, *subject;
        int budget;
        int64_t deadline, want; /* want -1: no budget */
    } cases[] = {
        {"c0", "job.batch", "worker.w1.jobs", 0, 0, 10000},
        {"c1", "job.batch", "worker.w1.jobs", 1, 60000, 10000},
        {"c2", "job.batch", "worker.w1.jobs", 1, 5000, 5000},
        {"c3", "job.batch", "worker.w1.jobs", 1, 0, 10000},
        {"c4", "job.tools", "worker.w2.jobs", 0, 0, -1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cap_packet *p = mk_submit(cases[c].job, cases[c].topic, "read", 0);
        if (cases[c].budget) {
            p->job_request->budget = malloc(sizeof *p->job_request->budget);
            assert_non_null(p->job_request->budget);
            cordum__agent__v1__budget__init(p->job_request->budget);
            p->job_request->budget->deadline_ms = cases[c].deadline;
            p->job_request->budget->max_total_tokens = 50;
        }
        /* the expected packet, piece by piece on the heap */
        cap_packet *want = ref_packet_new("trace-1", "scheduler", f->now);
        assert_non_null(want);
        uint8_t *bytes = NULL;
        size_t len = 0;
        assert_int_equal(cap_encode(&p->job_request->base, &bytes, &len), CAP_OK);
        want->job_request = (job_request *)protobuf_c_message_unpack(
            &cordum__agent__v1__job_request__descriptor, NULL, len, bytes);
        free(bytes);
        assert_non_null(want->job_request);
        want->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST;

        assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, p), REF_SCHED_APPLIED);
        long at = publish_index(f, cases[c].subject, 0);
        assert_true(at >= 0);
        const ref_effect *e = ref_effects_at(&f->fx, (size_t)at);
        assert_int_equal(e->packet_block, 1);
        ref_sched_job_info in = info(f, cases[c].job);
        job_request *wr = want->job_request;
        wr->dispatch = identity(in.dispatch_id, 1, in.worker_id);
        if (cases[c].want >= 0) {
            if (!wr->budget) {
                wr->budget = malloc(sizeof *wr->budget);
                assert_non_null(wr->budget);
                cordum__agent__v1__budget__init(wr->budget);
            }
            wr->budget->deadline_ms = cases[c].want;
        } else {
            assert_null(e->packet->job_request->budget);
        }
        assert_same_encoding(e->packet, want);

        cap_packet *taken = ref_effects_take_packet(&f->fx, (size_t)at);
        assert_non_null(taken);
        assert_null(ref_effects_at(&f->fx, (size_t)at)->packet);
        assert_int_equal(ref_effects_at(&f->fx, (size_t)at)->packet_block, 0);
        assert_same_encoding(taken, want);
        cap_packet_free(taken);
        cap_packet_free(want);
    }
    teardown(f);
}

/* A journal record parsed; it must be exactly cJSON's own text for it
 * (the writer's escapes and number forms are cJSON's). */
static cJSON *parse_record(const char *record)
{
    cJSON *o = cJSON_Parse(record);
    assert_non_null(o);
    char *again = cJSON_PrintUnformatted(o);
    assert_non_null(again);
    assert_string_equal(again, record);
    cJSON_free(again);
    return o;
}

/* Jobs are found by their seq (the waiting queue's drain, timers) also
 * when their place in the scheduler's seq ring is held by an older live
 * job: a parked job stays while hundreds of later jobs pass its place,
 * each of which waits for the worker and is dispatched by the drain that
 * the worker's next heartbeat runs, then succeeds and is evicted in turn
 * (the first eviction's journal record checked to the byte). */
static void test_jobs_found_by_seq_past_a_parked_job(void **state)
{
    (void)state;
    fixture *f = setup_max_jobs(100);
    heartbeat(f, "w1", "job.tools", 1, "", 1); /* full */
    assert_int_equal(submit(f, "p0", "job.tools", "write", 0), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "p0").state, REF_JOB_APPROVAL_REQUIRED);
    for (int i = 0; i < 700; i++) {
        char id[16];
        snprintf(id, sizeof id, "j%d", i);
        assert_int_equal(submit(f, id, "job.tools", "read", 0), REF_SCHED_APPLIED);
        if (i == 99) { /* p0 and j0..j98 fill the table: j0 is evicted, on record */
            char want[128];
            snprintf(want, sizeof want, "{\"k\":\"evict\",\"t\":\"%lld\",\"job_id\":\"j0\"}",
                     (long long)f->now);
            int found = 0;
            for (size_t k = 0; k < ref_effects_count(&f->fx); k++) {
                const ref_effect *e = ref_effects_at(&f->fx, k);
                if (e->kind == REF_EFFECT_JOURNAL && strstr(e->record, "\"evict\"")) {
                    assert_string_equal(e->record, want);
                    cJSON_Delete(parse_record(e->record));
                    found++;
                }
            }
            assert_int_equal(found, 1);
        }
        assert_int_equal(info(f, id).waiting, 1);
        heartbeat(f, "w1", "job.tools", 1, "", 0); /* room: the drain dispatches */
        assert_int_equal(info(f, id).state, REF_JOB_DISPATCHED);
        assert_int_equal(result(f, id, REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
        heartbeat(f, "w1", "job.tools", 1, "", 1);
    }
    assert_int_equal(info(f, "p0").state, REF_JOB_APPROVAL_REQUIRED);
    assert_int_equal(ref_sched_job(f->s, "j0", &(ref_sched_job_info){0}), CAP_EINVAL); /* evicted */
    assert_int_equal(info(f, "j699").state, REF_JOB_SUCCEEDED);
    teardown(f);
}

/* The job id of the one evict record among the last input's effects, or
 * "" when there is none. */
static const char *evicted_id(const fixture *f, char *out, size_t n)
{
    out[0] = 0;
    int found = 0;
    for (size_t k = 0; k < ref_effects_count(&f->fx); k++) {
        const ref_effect *e = ref_effects_at(&f->fx, k);
        if (e->kind != REF_EFFECT_JOURNAL || !strstr(e->record, "\"k\":\"evict\""))
            continue;
        cJSON *o = parse_record(e->record);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "job_id");
        assert_true(cJSON_IsString(id));
        snprintf(out, n, "%s", id->valuestring);
        cJSON_Delete(o);
        found++;
    }
    assert_true(found <= 1);
    return out;
}

/* Submits id, which must be admitted, evicting job `want` ("" for none). */
static void submit_evicting(fixture *f, const char *id, const char *want)
{
    char got[64];
    assert_int_equal(submit(f, id, "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_string_equal(evicted_id(f, got, sizeof got), want);
}

/* A full table evicts the oldest terminal job, in admission order, also
 * when an older job turns terminal after a later one was passed over:
 * a, b, c run; b ends and d evicts it; then c ends, then a: e evicts a
 * (not c, the one after where the last eviction stopped), f evicts c; with
 * every job live the submit is refused, and the job that ends next is
 * the next evicted. */
static void test_eviction_takes_the_oldest_terminal_job(void **state)
{
    (void)state;
    char id[64];
    fixture *f = setup_max_jobs(3);
    heartbeat(f, "w1", "job.tools", 10, "", 0);
    assert_int_equal(submit(f, "a", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_int_equal(submit(f, "b", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_int_equal(submit(f, "c", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_int_equal(result(f, "b", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    submit_evicting(f, "d", "b");
    assert_int_equal(result(f, "c", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    assert_int_equal(result(f, "a", REF_JOB_FAILED), REF_SCHED_APPLIED);
    submit_evicting(f, "e", "a");
    submit_evicting(f, "f", "c");
    assert_int_equal(info(f, "d").state, REF_JOB_DISPATCHED);
    /* d, e, f live: no room */
    assert_int_equal(submit(f, "g", "job.tools", "read", 0), REF_SCHED_REJECTED);
    assert_string_equal(evicted_id(f, id, sizeof id), "");
    ASSERT_LOG(f, "sys.job.result job_result g 6 201 "); /* FAILED, job_table_full */
    assert_int_equal(result(f, "f", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    assert_int_equal(result(f, "e", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    submit_evicting(f, "h", "e");
    assert_int_equal(ref_sched_job(f->s, "a", &(ref_sched_job_info){0}), CAP_EINVAL);
    assert_int_equal(info(f, "f").state, REF_JOB_SUCCEEDED);
    teardown(f);
}

/* A job that stays live at the old end of a full table is passed over by
 * every eviction (each takes the oldest terminal job behind it), and is
 * the one evicted as soon as it ends, before the younger terminal jobs. */
static void test_eviction_passes_a_live_job_at_the_old_end(void **state)
{
    (void)state;
    char id[64], want[64];
    fixture *f = setup_max_jobs(8);
    heartbeat(f, "w1", "job.tools", 100, "", 0);
    assert_int_equal(submit(f, "old", "job.tools", "read", 0), REF_SCHED_APPLIED);
    for (int i = 0; i < 40; i++) {
        char j[16];
        snprintf(j, sizeof j, "j%d", i);
        assert_int_equal(submit(f, j, "job.tools", "read", 0), REF_SCHED_APPLIED);
        if (i >= 7) { /* full from j6 on: each submit evicts the oldest ended job */
            snprintf(want, sizeof want, "j%d", i - 7);
            assert_string_equal(evicted_id(f, id, sizeof id), want);
        }
        assert_int_equal(result(f, j, REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    }
    assert_int_equal(info(f, "old").state, REF_JOB_DISPATCHED);
    assert_int_equal(result(f, "old", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    submit_evicting(f, "next", "old");
    submit_evicting(f, "after", "j33");
    teardown(f);
}

/* A full table whose terminal jobs lie among long runs of live ones (old
 * jobs ending late among many younger ones, priorities mixed): each
 * eviction still takes the oldest terminal job, found without walking the
 * runs (make_room asks its heap of terminal jobs after a short walk). */
static void test_eviction_past_long_runs_of_live_jobs(void **state)
{
    (void)state;
    char id[64], j[16];
    fixture *f = setup_max_jobs(200);
    heartbeat(f, "w1", "job.tools", 1000, "", 0);
    for (int i = 0; i < 200; i++) {
        snprintf(j, sizeof j, "j%d", i);
        assert_int_equal(submit(f, j, "job.tools", "read", 0), REF_SCHED_APPLIED);
    }
    /* every job live: no room */
    assert_int_equal(submit(f, "x0", "job.tools", "read", 0), REF_SCHED_REJECTED);
    assert_string_equal(evicted_id(f, id, sizeof id), "");
    static const char *const ends[] = {"j150", "j5", "j175", "j10", "j199", "j100"};
    static const char *const evicted[] = {"j5", "j10", "j100", "j150", "j175", "j199"};
    for (size_t k = 0; k < 6; k++)
        assert_int_equal(result(f, ends[k], REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    for (size_t k = 0; k < 6; k++) {
        snprintf(j, sizeof j, "n%zu", k);
        submit_evicting(f, j, evicted[k]);
    }
    assert_int_equal(submit(f, "x1", "job.tools", "read", 0), REF_SCHED_REJECTED);
    /* an old job and a new one end, the new one first: the old one goes first */
    assert_int_equal(result(f, "n5", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    assert_int_equal(result(f, "j1", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    submit_evicting(f, "n6", "j1");
    submit_evicting(f, "n7", "n5");
    assert_int_equal(info(f, "j2").state, REF_JOB_DISPATCHED);
    teardown(f);
}

/* Journal records are the JSON cJSON prints: for job ids holding every
 * kind of byte that needs an escape (at each offset of an 8-byte word),
 * each record printed again from its parse is the same text, and the id
 * reads back as it was. */
/* A view record (journal_form VIEW or BOTH) reads back; with BOTH, text is
 * the same record as text and the two agree member by member. */
static void check_view(fixture *f, const ref_effect *text, const ref_effect *view)
{
    ref_sched_view v;
    assert_int_equal(ref_sched_view_read(view->record, view->record_len, &v), CAP_OK);
    f->views++;
    f->evict_views += v.kind == REF_SCHED_VIEW_EVICT;
    assert_int_equal(strlen(v.job_id), v.job_id_len);
    if (!f->both)
        return; /* VIEW: no text to agree with */
    assert_non_null(text);
    assert_int_equal(text->kind, REF_EFFECT_JOURNAL);
    cJSON *o = parse_record(text->record);
    same_member(o, "k", v.kind == REF_SCHED_VIEW_EVICT ? "evict" : "job");
    same_member(o, "job_id", v.job_id);
    if (v.kind == REF_SCHED_VIEW_JOB) {
        assert_int_equal(strlen(v.state), v.state_len);
        same_member(o, "ev", v.ev);
        same_member(o, "state", v.state);
        same_member(o, "snapshot", v.snapshot);
        same_member(o, "hash", v.hash);
        same_member(o, "appr_snapshot", v.appr_snapshot);
        assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "decision")),
                         v.decision);
        assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "appr")), v.appr);
        char attempt[24];
        snprintf(attempt, sizeof attempt, "%llu", (unsigned long long)v.attempt);
        same_member(o, "attempt", attempt);
    } else {
        assert_null(v.ev);
        assert_null(v.state);
    }
    cJSON_Delete(o);
}

/* Jobs through every kind of job record the views carry: approvals bound
 * to a hash and a snapshot, a rejection, retries, a fatal failure,
 * evictions from a small table. */
static void journal_workout(fixture *f)
{
    heartbeat(f, "w1", "job.tools", 10, "", 0);
    assert_int_equal(submit(f, "a", "job.tools", "read", 0), REF_SCHED_APPLIED);
    assert_int_equal(submit(f, "h1", "job.tools", "write", 0), REF_SCHED_APPLIED);
    begin(f);
    assert_int_equal(ref_sched_approve(f->s, "h1", "bob", "ok", f->now, &f->fx, NULL), REF_SCHED_OK);
    absorb(f);
    assert_int_equal(result(f, "h1", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    assert_int_equal(result(f, "a", REF_JOB_FAILED_RETRYABLE), REF_SCHED_APPLIED);
    advance(f, f->now + 5 * SEC); /* the retry's backoff */
    assert_int_equal(info(f, "a").attempt, 2);
    assert_int_equal(result(f, "a", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    assert_int_equal(submit(f, "h2", "job.tools", "write", 0), REF_SCHED_APPLIED);
    begin(f);
    assert_int_equal(ref_sched_reject(f->s, "h2", "bob", "no", f->now, &f->fx), REF_SCHED_OK);
    absorb(f);
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        assert_int_equal(submit(f, id, "job.tools", "read", 0), REF_SCHED_APPLIED);
        assert_int_equal(result(f, id, i % 2 ? REF_JOB_FAILED_FATAL : REF_JOB_SUCCEEDED),
                         REF_SCHED_APPLIED);
    }
}

static void test_journal_views_agree_with_text(void **state)
{
    (void)state;
    size_t views[2];
    for (int form = REF_SCHED_JOURNAL_VIEW; form <= REF_SCHED_JOURNAL_BOTH; form++) {
        fixture *f = new_fixture();
        ref_sched_config c = base_config(f);
        c.max_jobs = 4;
        c.journal_form = form;
        f->both = form == REF_SCHED_JOURNAL_BOTH;
        setup_cfg(f, &c);
        journal_workout(f);
        assert_true(f->views > 20);
        assert_true(f->evict_views >= 5);
        /* VIEW writes no job or evict record as text; BOTH writes each both ways */
        assert_int_equal(f->texts, form == REF_SCHED_JOURNAL_VIEW ? 0 : f->views);
        views[form - REF_SCHED_JOURNAL_VIEW] = f->views;
        teardown(f);
    }
    assert_int_equal(views[0], views[1]);
    /* the default form writes no views */
    fixture *f = setup_max_jobs(4);
    journal_workout(f);
    assert_int_equal(f->views, 0);
    assert_int_equal(f->texts, views[0]);
    teardown(f);
    /* a form out of range is refused */
    f = new_fixture();
    ref_sched_config c = base_config(f);
    c.journal_form = 3;
    cap_diag d;
    ref_sched *s = NULL;
    assert_int_equal(ref_sched_new(&c, &s, &d), CAP_EINVAL);
    assert_null(s);
    teardown(f);
}

/* A view record that is cut short, has a bad kind, a string without its
 * NUL or bytes past its end is refused. */
static void test_journal_view_read_refuses_bad_bytes(void **state)
{
    (void)state;
    fixture *f = new_fixture();
    ref_sched_config c = base_config(f);
    c.journal_form = REF_SCHED_JOURNAL_VIEW;
    setup_cfg(f, &c);
    heartbeat(f, "w1", "job.tools", 10, "", 0);
    begin(f);
    assert_int_equal(send(f, "sys.job.submit", mk_submit("v1", "job.tools", "read", 0)),
                     REF_SCHED_APPLIED);
    const ref_effect *e = NULL;
    for (size_t i = 0; i < ref_effects_count(&f->fx) && !e; i++)
        if (ref_effects_at(&f->fx, i)->kind == REF_EFFECT_JOURNAL_VIEW)
            e = ref_effects_at(&f->fx, i);
    assert_non_null(e);
    size_t n = e->record_len;
    char *b = malloc(n + 8);
    assert_non_null(b);
    memcpy(b, e->record, n);
    ref_sched_view v;
    assert_int_equal(ref_sched_view_read(b, n, &v), CAP_OK);
    assert_string_equal(v.job_id, "v1");
    assert_string_equal(v.ev, "submit");
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(ref_sched_view_read(b, cut, &v), CAP_EINVAL);
    b[n] = 'x';
    assert_int_equal(ref_sched_view_read(b, n + 1, &v), CAP_EINVAL); /* a byte too many */
    b[n - 1] = 'x';
    assert_int_equal(ref_sched_view_read(b, n, &v), CAP_EINVAL); /* last string unterminated */
    assert_null(v.job_id);
    memcpy(b, e->record, n);
    b[8] = 9; /* the kind (after the 8-byte attempt) */
    assert_int_equal(ref_sched_view_read(b, n, &v), CAP_EINVAL);
    assert_int_equal(ref_sched_view_read(NULL, n, &v), CAP_EINVAL);
    assert_int_equal(ref_sched_view_read(e->record, n, NULL), CAP_EINVAL);
    free(b);
    teardown(f);
}

static void test_journal_text_is_cjson_text(void **state)
{
    (void)state;
    static const char specials[] = "\"\\\x01\x1f\t\n\r\b\f\x7f\xc3\xa9";
    for (size_t off = 0; off < 16; off++) {
        for (size_t k = 0; k + 1 < sizeof specials; k++) {
            char id[64];
            size_t n = 0;
            for (size_t i = 0; i < off; i++)
                id[n++] = (char)('a' + i);
            id[n++] = specials[k];
            memcpy(id + n, "-tail-0123456789", 17);
            fixture *f = setup();
            begin(f);
            assert_true(submit(f, id, "job.tools", "read", 0) >= 0);
            size_t records = 0;
            for (size_t i = 0; i < ref_effects_count(&f->fx); i++) {
                const ref_effect *e = ref_effects_at(&f->fx, i);
                if (e->kind != REF_EFFECT_JOURNAL)
                    continue;
                cJSON *o = parse_record(e->record);
                const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "job_id");
                assert_true(cJSON_IsString(j));
                assert_string_equal(j->valuestring, id);
                records++;
                cJSON_Delete(o);
            }
            assert_true(records >= 1);
            ref_effects_clear(&f->fx);
            teardown(f);
        }
    }
}

/* Shared strings (rule, snapshot, reason, worker, pool) are written with
 * the length and escape check found when they were first shared: a reason
 * and a worker id with characters JSON escapes come out escaped, exactly
 * as cJSON prints them, next to plain ones. */
static void test_journal_escapes_shared_strings(void **state)
{
    (void)state;
    fixture *f = malloc(sizeof *f);
    assert_non_null(f);
    memset(f, 0, sizeof *f);
    f->k = ref_safety_new();
    assert_non_null(f->k);
    const char *policy = "version: t5\ndefault_decision: allow\nrules:\n"
                         "- id: \"say\\\"q\"\n  match: {labels: {act: read}}\n  decision: allow\n"
                         "  reason: \"quote \\\" back \\\\ tab \\t end\"\n";
    cap_yaml_diag yd;
    assert_int_equal(ref_safety_load(f->k, policy, strlen(policy), &yd), 0);
    f->seed = 42;
    f->now = T0;
    assert_int_equal(ref_effects_init(&f->fx, 0), CAP_OK);
    ref_sched_config c = base_config(f);
    setup_cfg(f, &c);
    static const char *const workers[] = {"w\"1", "w-plain"};
    size_t seen_reason = 0, seen_worker = 0;
    for (int k = 0; k < 2; k++) {
        heartbeat(f, workers[k], "job.tools", 1, "", 0);
        char id[16];
        snprintf(id, sizeof id, "j%d", k);
        begin(f);
        assert_true(submit(f, id, "job.tools", k ? NULL : "read", 0) >= 0);
        for (size_t i = 0; i < ref_effects_count(&f->fx); i++) {
            const ref_effect *e = ref_effects_at(&f->fx, i);
            if (e->kind != REF_EFFECT_JOURNAL)
                continue;
            cJSON *o = parse_record(e->record);
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "reason");
            const cJSON *rule = cJSON_GetObjectItemCaseSensitive(o, "rule");
            if (!k && cJSON_IsString(r) && r->valuestring[0]) {
                assert_string_equal(r->valuestring, "quote \" back \\ tab \t end");
                assert_string_equal(rule->valuestring, "say\"q");
                seen_reason++;
            }
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "worker");
            if (cJSON_IsString(w) && w->valuestring[0]) {
                assert_string_equal(w->valuestring, workers[k]); /* w"1 holds one job */
                seen_worker++;
            }
            cJSON_Delete(o);
        }
        absorb(f);
    }
    assert_true(seen_reason >= 1);
    assert_true(seen_worker >= 2);
    teardown(f);
}

static void test_worker_lost_redispatches(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "j1", "job.tools", "read", 0);
    progress(f, "j1"); /* RUNNING: the 60 s running timeout is not what ends it */
    f->now += 5 * SEC;
    heartbeat(f, "w2", "job.tools", 4, "", 1); /* busier, so w1 got j1 */
    /* w1 goes silent: after 3 x 10 s it is lost and j1 is retried on w2. */
    for (int k = 0; k < 5; k++) {
        f->now += 5 * SEC;
        heartbeat(f, "w2", "job.tools", 4, "", 1);
    }
    advance(f, T0 + 31 * SEC);
    ASSERT_LOG(f, "sys.job.cancel job_cancel j1 0 0 1");
    assert_int_equal(info(f, "j1").state, REF_JOB_FAILED_RETRYABLE);
    advance(f, f->now + 2 * SEC);
    assert_int_equal(info(f, "j1").attempt, 2);
    assert_string_equal(info(f, "j1").worker_id, "w2");
    teardown(f);
}

/* A worker that is lost and registers again is a new registration: the
 * scheduler's count of its jobs must reach the new one (its in-flight
 * limit holds) and the registry's tag for it must be set anew. */
static void test_worker_back_after_loss_keeps_its_limit(void **state)
{
    (void)state;
    fixture *f = setup();
    const ref_registry *reg = ref_sched_registry(f->s);
    heartbeat(f, "w1", "job.tools", 1, "", 0);
    assert_null(ref_registry_find(reg, "w1")->tag); /* nothing dispatched yet */
    submit(f, "j1", "job.tools", "read", 0);
    ASSERT_LOG(f, "worker.w1.jobs job_request j1");
    progress(f, "j1"); /* RUNNING: no dispatch timeout before w1 is lost */
    assert_non_null(ref_registry_find(reg, "w1")->tag);
    advance(f, T0 + 31 * SEC); /* w1 lost: j1 to be retried after a backoff */
    assert_null(ref_registry_find(reg, "w1"));
    assert_int_equal(info(f, "j1").state, REF_JOB_FAILED_RETRYABLE);
    heartbeat(f, "w1", "job.tools", 1, "", 0); /* back, as a new registration */
    assert_null(ref_registry_find(reg, "w1")->tag);
    submit(f, "j2", "job.tools", "read", 0);
    ASSERT_LOG(f, "worker.w1.jobs job_request j2");
    assert_non_null(ref_registry_find(reg, "w1")->tag);
    advance(f, wake_timer(f)); /* j1's retry is due, but w1 is full */
    assert_int_equal(info(f, "j1").attempt, 1);
    assert_int_equal(ref_sched_stats_get(f->s).waiting, 1);
    assert_int_equal(result(f, "j2", REF_JOB_SUCCEEDED), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "j1").attempt, 2);
    assert_string_equal(info(f, "j1").worker_id, "w1");
    assert_int_equal(ref_sched_stats_get(f->s).waiting, 0);
    teardown(f);
}

/* ---- cancel ---------------------------------------------------------------- */

static cap_packet *with_parent(cap_packet *p, const char *parent)
{
    set_field(&p->job_request->parent_job_id, parent);
    return p;
}

static void test_cancel_cascades(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 8, "", 0);
    submit(f, "p", "job.tools", "read", 0);
    send(f, "sys.job.submit", with_parent(mk_submit("c1", "job.tools", "read", 0), "p"));
    send(f, "sys.job.submit", with_parent(mk_submit("c2", "job.tools", "read", 0), "p"));
    send(f, "sys.job.submit", with_parent(mk_submit("g1", "job.tools", "write", 0), "c1"));
    result(f, "c2", REF_JOB_SUCCEEDED);
    assert_int_equal(cancel_as(f, "p", NULL, 0, NULL), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "p").state, REF_JOB_CANCELLED);
    assert_int_equal(info(f, "c1").state, REF_JOB_CANCELLED);
    assert_int_equal(info(f, "g1").state, REF_JOB_CANCELLED); /* parked grandchild */
    assert_int_equal(info(f, "c2").state, REF_JOB_SUCCEEDED);
    ASSERT_LOG(f, "sys.job.cancel job_cancel p 0 0 1");
    ASSERT_LOG(f, "sys.job.cancel job_cancel c1 0 0 1");
    ASSERT_NO_LOG(f, "job_cancel g1"); /* never dispatched: no worker to tell */
    ASSERT_LOG(f, "sys.job.result job_result g1 7");
    /* Cancel after a terminal is refused. */
    assert_int_equal(cancel_as(f, "c2", NULL, 0, NULL), REF_SCHED_IGNORED);
    begin(f);
    assert_int_equal(ref_sched_cancel(f->s, "c2", "x", "op", f->now, &f->fx),
                     REF_SCHED_NOT_ACTIONABLE);
    teardown(f);
}

/* ---- saga ------------------------------------------------------------------ */

static cap_packet *in_workflow(cap_packet *p, const char *wf, const char *undo_topic)
{
    job_request *r = p->job_request;
    set_field(&r->workflow_id, wf);
    if (undo_topic) {
        Cordum__Agent__V1__Compensation *c = malloc(sizeof *c);
        assert_non_null(c);
        cordum__agent__v1__compensation__init(c);
        c->topic = sdup(undo_topic);
        r->compensation = c;
    }
    return p;
}

static void test_saga_rollback_newest_first(void **state)
{
    (void)state;
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 8, "", 0);
    heartbeat(f, "w2", "job.undo", 8, "", 0);
    heartbeat(f, "w3", "job.undo.denied", 8, "", 0);
    send(f, "sys.job.submit", in_workflow(mk_submit("a", "job.tools", "read", 0), "wf", "job.undo"));
    result(f, "a", REF_JOB_SUCCEEDED);
    send(f, "sys.job.submit",
         in_workflow(mk_submit("b", "job.tools", "read", 0), "wf", "job.undo.denied"));
    result(f, "b", REF_JOB_SUCCEEDED);
    send(f, "sys.job.submit", in_workflow(mk_submit("c", "job.tools", "read", 0), "wf", "job.undo"));
    result(f, "c", REF_JOB_SUCCEEDED);
    send(f, "sys.job.submit", in_workflow(mk_submit("d", "job.tools", "read", 0), "wf", NULL));
    result(f, "d", REF_JOB_FAILED_FATAL);
    /* c's compensation first (newest), dispatched through the safety check. */
    ASSERT_LOG(f, "worker.w2.jobs job_request comp-job:2:wf:c");
    ASSERT_NO_LOG(f, "comp-job:2:wf:b");
    result(f, "comp-job:2:wf:c", REF_JOB_SUCCEEDED);
    /* b's compensation is denied by policy: recorded, DLQ, and on to a. */
    ASSERT_LOG(f, "sys.job.dlq job_result comp-job:2:wf:b 8 300");
    ASSERT_LOG(f, "worker.w2.jobs job_request comp-job:2:wf:a");
    result(f, "comp-job:2:wf:a", REF_JOB_SUCCEEDED);
    ref_saga_summary sum;
    assert_int_equal(ref_saga_summary_get(ref_sched_saga(f->s), "wf", &sum), CAP_OK);
    assert_int_equal(sum.phase, REF_SAGA_DONE);
    assert_int_equal(sum.succeeded, 2);
    assert_int_equal(sum.denied, 1);
    /* A second fatal failure in the workflow starts no second rollback. */
    send(f, "sys.job.submit", in_workflow(mk_submit("e", "job.tools", "read", 0), "wf", NULL));
    result(f, "e", REF_JOB_FAILED_FATAL);
    ASSERT_NO_LOG(f, "comp-job");
    assert_int_equal(ref_sched_stats_get(f->s).rollbacks_started, 1);
    teardown(f);
}

/* A job that ends can start the next compensation of its workflow, and
 * admitting that compensation into a full table can evict the job that
 * just ended (it is then the oldest terminal job). Nothing of it may be
 * used afterwards: the compensation gets its own copies, and the cancel
 * that ended it finishes without it (under ASan, a read of the evicted
 * job is caught). */
static void test_compensation_evicts_the_job_that_ended(void **state)
{
    (void)state;
    fixture *f = setup_max_jobs(2);
    heartbeat(f, "w1", "job.tools", 8, "", 0); /* nobody serves job.undo: compensations wait */
    send(f, "sys.job.submit", in_workflow(mk_submit("a1", "job.tools", "read", 0), "wf", "job.undo"));
    result(f, "a1", REF_JOB_SUCCEEDED);
    send(f, "sys.job.submit", in_workflow(mk_submit("a2", "job.tools", "read", 0), "wf", "job.undo"));
    result(f, "a2", REF_JOB_SUCCEEDED);
    send(f, "sys.job.submit", in_workflow(mk_submit("b", "job.tools", "read", 0), "wf", NULL));
    result(f, "b", REF_JOB_FAILED_FATAL);
    ref_sched_job_info i = info(f, "comp-job:2:wf:a2");
    assert_int_equal(i.waiting, 1);
    /* a live job: the table holds it and the compensation only */
    assert_int_equal(submit(f, "d", "job.tools", "write", 0), REF_SCHED_APPLIED);
    assert_int_equal(info(f, "d").state, REF_JOB_APPROVAL_REQUIRED);
    assert_int_equal(ref_sched_stats_get(f->s).jobs, 2);
    /* Cancelling the compensation ends it; the rollback goes on with a1's
     * compensation, whose admission evicts the cancelled one. */
    begin(f);
    assert_int_equal(ref_sched_cancel(f->s, "comp-job:2:wf:a2", "stop", "op", f->now, &f->fx),
                     REF_SCHED_OK);
    absorb(f);
    ASSERT_LOG(f, "sys.job.result job_result comp-job:2:wf:a2 7");
    assert_int_equal(ref_sched_job(f->s, "comp-job:2:wf:a2", &(ref_sched_job_info){0}),
                     CAP_EINVAL);
    i = info(f, "comp-job:2:wf:a1");
    assert_int_equal(i.waiting, 1);
    assert_int_equal(info(f, "d").state, REF_JOB_APPROVAL_REQUIRED);
    assert_int_equal(ref_sched_stats_get(f->s).compensations, 2);
    teardown(f);
}

/* ---- breaker --------------------------------------------------------------- */

static void test_breaker_opens_and_closes(void **state)
{
    (void)state;
    fixture *f = new_fixture();
    ref_sched_config c = base_config(f);
    ref_breaker_config bc = {.failure_threshold = 2, .cool_down_ns = 10 * SEC};
    c.breaker = &bc;
    c.max_retries = 0;
    c.max_retries_set = 1;
    setup_cfg(f, &c);
    heartbeat(f, "w1", "job.tools", 8, "", 0);
    submit(f, "j1", "job.tools", "read", 0);
    result(f, "j1", REF_JOB_FAILED);
    ASSERT_NO_LOG(f, "sys.alert");
    submit(f, "j2", "job.tools", "read", 0);
    result(f, "j2", REF_JOB_FAILED);
    ASSERT_LOG(f, "sys.alert alert");
    const cap_packet *a = published(f, "sys.alert", 0);
    assert_int_equal(a->alert->error_code_enum, 206);
    /* Open: nothing goes to w1; the job waits. */
    submit(f, "j3", "job.tools", "read", 0);
    ASSERT_NO_LOG(f, "worker.w1.jobs");
    assert_int_equal(info(f, "j3").waiting, 1);
    /* After the cool-down: half-open (alert), one trial, closed on success. */
    advance(f, f->now + 10 * SEC);
    ASSERT_LOG(f, "sys.alert alert");
    ASSERT_LOG(f, "worker.w1.jobs job_request j3");
    result(f, "j3", REF_JOB_SUCCEEDED);
    ASSERT_LOG(f, "sys.alert alert");
    assert_int_equal(ref_sched_stats_get(f->s).breaker_changes, 3);
    teardown(f);
}

/* ---- journal --------------------------------------------------------------- */

typedef struct {
    char **lines;
    size_t n, cap;
} journal;

static void keep_journal(journal *jr, const ref_effects *fx)
{
    for (size_t i = 0; i < ref_effects_count(fx); i++) {
        const ref_effect *e = ref_effects_at(fx, i);
        if (e->kind != REF_EFFECT_JOURNAL)
            continue;
        if (jr->n == jr->cap) {
            jr->cap = jr->cap ? jr->cap * 2 : 64;
            jr->lines = realloc(jr->lines, jr->cap * sizeof *jr->lines);
            assert_non_null(jr->lines);
        }
        jr->lines[jr->n++] = strdup(e->record);
    }
}

static void free_journal(journal *jr)
{
    for (size_t i = 0; i < jr->n; i++)
        free(jr->lines[i]);
    free(jr->lines);
}

/* One scripted run: inputs 0..n-1 (a mix of every kind). Each step's
 * publishes are appended to out; the journal to jr. */
typedef struct {
    int kind; /* 0 hb, 1 submit, 2 result, 3 progress, 4 advance */
    const char *a, *b, *c;
    int x;
} step;

static const step SCRIPT[] = {
    {0, "w1", "job.tools", NULL, 2},
    {0, "w2", "job.tools", NULL, 2},
    {1, "s1", "job.tools", "read", 0},
    {1, "s2", "job.tools", "write", 0},
    {1, "s3", "job.tools", "bulk", 0},
    {1, "s4", "job.tools", "read", PRIO_CRITICAL},
    {3, "s1", NULL, NULL, 0},
    {2, "s1", NULL, NULL, REF_JOB_FAILED_RETRYABLE},
    {1, "s5", "job.tools", "read", 0},
    {1, "s6", "job.tools", "read", PRIO_BATCH},
    {4, NULL, NULL, NULL, 3},
    {0, "w1", "job.tools", NULL, 2},
    {2, "s4", NULL, NULL, REF_JOB_SUCCEEDED},
    {2, "s1", NULL, NULL, REF_JOB_SUCCEEDED},
    {4, NULL, NULL, NULL, 6},
    {0, "w2", "job.tools", NULL, 2},
    {2, "s5", NULL, NULL, REF_JOB_FAILED_RETRYABLE},
    {4, NULL, NULL, NULL, 4},
    {0, "w1", "job.tools", NULL, 2},
    {2, "s6", NULL, NULL, REF_JOB_SUCCEEDED},
    {4, NULL, NULL, NULL, 40},
    {0, "w1", "job.tools", NULL, 2},
    {0, "w2", "job.tools", NULL, 2},
    {2, "s5", NULL, NULL, REF_JOB_SUCCEEDED},
    {4, NULL, NULL, NULL, 10},
};
#define SCRIPT_LEN (sizeof SCRIPT / sizeof SCRIPT[0])

static void run_step(fixture *f, const step *st, journal *jr, char *out, size_t outsz)
{
    ref_sched_job_info i;
    switch (st->kind) {
    case 0: heartbeat(f, st->a, st->b, st->x, "", 0); break;
    case 1: submit(f, st->a, st->b, st->c, st->x); break;
    case 2:
        if (ref_sched_job(f->s, st->a, &i) == CAP_OK && i.attempt)
            result(f, st->a, st->x);
        break;
    case 3: progress(f, st->a); break;
    case 4: {
        /* advance() clears between timers: collect as it goes */
        int64_t target = f->now + st->x * SEC;
        for (;;) {
            size_t best = (size_t)-1;
            for (size_t k = 0; k < f->n_timers; k++)
                if (f->timers[k].at <= target &&
                    (best == (size_t)-1 || f->timers[k].at < f->timers[best].at ||
                     (f->timers[k].at == f->timers[best].at &&
                      f->timers[k].id < f->timers[best].id)))
                    best = k;
            if (best == (size_t)-1)
                break;
            uint64_t id = f->timers[best].id;
            f->now = f->timers[best].at;
            f->timers[best] = f->timers[--f->n_timers];
            begin(f);
            assert_true(ref_sched_on_timer(f->s, id, f->now, &f->fx) >= 0);
            absorb(f);
            keep_journal(jr, &f->fx);
            strncat(out, f->log, outsz - strlen(out) - 1);
        }
        f->now = target;
        return;
    }
    }
    keep_journal(jr, &f->fx);
    strncat(out, f->log, outsz - strlen(out) - 1);
}

static const step HB_W1 = {0, "w1", "job.tools", NULL, 2};
static const step HB_W2 = {0, "w2", "job.tools", NULL, 2};

static void test_journal_restore_continues_exactly(void **state)
{
    (void)state;
    static char outa[1 << 16], outb[1 << 16];
    const size_t crash = 12;
    /* The uninterrupted run: the script, with two heartbeats at the crash
     * point (the registry is soft state, so a restored scheduler learns its
     * workers from the heartbeats that follow; both runs get them). */
    fixture *a = setup();
    journal ja = {0};
    outa[0] = 0;
    for (size_t k = 0; k < crash; k++)
        run_step(a, &SCRIPT[k], &ja, outa, sizeof outa);
    size_t cut_a = strlen(outa);
    run_step(a, &HB_W1, &ja, outa, sizeof outa);
    run_step(a, &HB_W2, &ja, outa, sizeof outa);
    for (size_t k = crash; k < SCRIPT_LEN; k++)
        run_step(a, &SCRIPT[k], &ja, outa, sizeof outa);

    /* The same run, crashed before the heartbeats and restored from the
     * journal written so far. The clock and the random source carry on in
     * the driver; the driver's armed timers died with the scheduler. */
    fixture *b = setup();
    journal jb = {0};
    outb[0] = 0;
    for (size_t k = 0; k < crash; k++)
        run_step(b, &SCRIPT[k], &jb, outb, sizeof outb);
    size_t cut_b = strlen(outb);
    assert_int_equal(cut_a, cut_b);
    assert_memory_equal(outa, outb, cut_a);
    ref_sched_free(b->s);
    ref_sched_config c = base_config(b);
    cap_diag d;
    assert_int_equal(ref_sched_new(&c, &b->s, &d), CAP_OK);
    begin(b);
    b->n_timers = 0;
    assert_int_equal(ref_sched_restore(b->s, (const char *const *)jb.lines, jb.n, b->now, &b->fx, &d),
                     CAP_OK);
    absorb(b);
    assert_int_equal(ref_sched_stats_get(b->s).jobs, ref_sched_stats_get(a->s).jobs);
    run_step(b, &HB_W1, &jb, outb, sizeof outb);
    run_step(b, &HB_W2, &jb, outb, sizeof outb);
    for (size_t k = crash; k < SCRIPT_LEN; k++)
        run_step(b, &SCRIPT[k], &jb, outb, sizeof outb);
    /* Everything published after the crash is the same, and so are the
     * jobs' final states and dispatch identities. */
    assert_string_equal(outa + cut_a, outb + cut_b);
    const char *jobs[] = {"s1", "s2", "s3", "s4", "s5", "s6"};
    for (size_t k = 0; k < 6; k++) {
        ref_sched_job_info ia = info(a, jobs[k]), ib = info(b, jobs[k]);
        assert_int_equal(ia.state, ib.state);
        assert_int_equal(ia.attempt, ib.attempt);
        assert_string_equal(ia.dispatch_id, ib.dispatch_id);
    }
    free_journal(&ja);
    free_journal(&jb);
    teardown(a);
    teardown(b);
}

/* The replay guard's entries survive a restart: admitting a signed submit
 * writes a "replay" record, and a scheduler restored from the journal
 * refuses another body under the same message id (cap-spec 19) and still
 * answers the exact redelivery as a duplicate. With the injected bug
 * forget-replay-store the restored guard has forgotten, and the other body
 * becomes a job. */
static void test_replay_store_restored(void **state)
{
    (void)state;
    for (int bug = 0; bug < 2; bug++) {
        fixture *f = setup();
        journal jr = {0};
        heartbeat(f, "w1", "job.tools", 4, "", 0);
        keep_journal(&jr, &f->fx);
        cap_packet *a = mk_submit("c1", "job.tools", "read", 0);
        add_signature_metadata(a, 9, f->now + 60 * SEC);
        uint8_t *wire = NULL;
        size_t len = 0;
        assert_int_equal(cap_encode(&a->base, &wire, &len), CAP_OK);
        assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, a), REF_SCHED_APPLIED);
        keep_journal(&jr, &f->fx);
        size_t replay_records = 0;
        for (size_t i = 0; i < jr.n; i++)
            replay_records += strstr(jr.lines[i], "\"k\":\"replay\"") != NULL;
        assert_int_equal(replay_records, 1);

        ref_sched_free(f->s);
        ref_sched_config c = base_config(f);
        cap_diag d;
        assert_int_equal(ref_sched_new(&c, &f->s, &d), CAP_OK);
        begin(f);
        f->n_timers = 0;
        ref_bug_set(bug ? REF_BUG_FORGET_REPLAY_STORE : REF_BUG_NONE);
        assert_int_equal(ref_sched_restore(f->s, (const char *const *)jr.lines, jr.n, f->now,
                                           &f->fx, &d),
                         CAP_OK);
        ref_bug_set(REF_BUG_NONE);
        absorb(f);
        f->now += 10 * SEC;
        cap_packet *b = mk_submit("c2", "job.tools", "read", 0);
        add_signature_metadata(b, 9, f->now + 60 * SEC);
        ref_sched_job_info ji;
        if (!bug) {
            assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, b), REF_SCHED_REJECTED);
            assert_int_equal(ref_sched_stats_get(f->s).replays_conflicting, 1);
            assert_int_equal(ref_sched_job(f->s, "c2", &ji), CAP_EINVAL);
            /* the exact bytes again: a duplicate, no second job */
            cap_packet *again = NULL;
            cap_diag dd;
            assert_int_equal(cap_packet_decode(wire, len, NULL, CAP_DECODE_STRICT, &again, &dd), CAP_OK);
            begin(f);
            assert_int_equal(ref_sched_on_packet(f->s, REF_SCHED_SUBJECT_SUBMIT, again, wire, len,
                                                 f->now, &f->fx),
                             REF_SCHED_DUPLICATE);
            cap_packet_free(again);
            assert_int_equal(ref_sched_stats_get(f->s).jobs, 1);
        } else {
            assert_int_equal(send(f, REF_SCHED_SUBJECT_SUBMIT, b), REF_SCHED_APPLIED);
            assert_int_equal(ref_sched_job(f->s, "c2", &ji), CAP_OK);
        }
        free(wire);
        free_journal(&jr);
        teardown(f);
    }
}

static void test_journal_bad_records(void **state)
{
    (void)state;
    fixture *f = setup();
    cap_diag d;
    const char *bad1[] = {"{\"k\":\"note\"}", "not json"};
    begin(f);
    assert_int_equal(ref_sched_restore(f->s, bad1, 2, f->now, &f->fx, &d), CAP_EJSON);
    assert_non_null(strstr(d.reason, "record 1"));
    teardown(f);
    f = setup();
    const char *bad2[] = {"{\"k\":\"job\",\"job_id\":\"x\",\"state\":\"PENDING\"}"};
    assert_int_equal(ref_sched_restore(f->s, bad2, 1, f->now, &f->fx, &d), CAP_EJSON);
    assert_non_null(strstr(d.reason, "record 0"));
    teardown(f);
    f = setup();
    const char *bad3[] = {"{\"k\":\"mystery\"}"};
    assert_int_equal(ref_sched_restore(f->s, bad3, 1, f->now, &f->fx, &d), CAP_EJSON);
    assert_non_null(strstr(d.reason, "mystery"));
    teardown(f);
    /* replay records: each broken member is named */
    char hex64[65];
    memset(hex64, 'a', 64);
    hex64[64] = 0;
    char good_keys[200], rec[512];
    snprintf(good_keys, sizeof good_keys, "0:%s,1:%s", hex64, hex64);
    struct {
        const char *t, *digest, *keys, *why;
    } bad_replay[] = {
        {"", hex64, good_keys, "without t or exp"},
        {"5", "zz", good_keys, "bad digest"},
        {"5", hex64, "", "without keys"},
        {"5", hex64, "0:abc", "bad key list"},
        {"5", hex64, "9:" /* kind out of range */, "bad key list"},
    };
    for (size_t i = 0; i < sizeof bad_replay / sizeof bad_replay[0]; i++) {
        f = setup();
        snprintf(rec, sizeof rec,
                 "{\"k\":\"replay\",\"t\":\"%s\",\"exp\":\"7\",\"digest\":\"%s\",\"keys\":\"%s\"}",
                 bad_replay[i].t, bad_replay[i].digest, bad_replay[i].keys);
        const char *one[] = {rec};
        assert_int_equal(ref_sched_restore(f->s, one, 1, f->now, &f->fx, &d), CAP_EJSON);
        assert_non_null(strstr(d.reason, bad_replay[i].why));
        teardown(f);
    }
    f = setup();
    snprintf(rec, sizeof rec,
             "{\"k\":\"replay\",\"t\":\"5\",\"exp\":\"7\",\"digest\":\"%s\",\"keys\":\"%s\"}",
             hex64, good_keys);
    const char *ok[] = {rec};
    assert_int_equal(ref_sched_restore(f->s, ok, 1, f->now, &f->fx, &d), CAP_OK);
    teardown(f);
}

/* ---- determinism and injected bugs ---------------------------------------- */

static void test_same_seed_same_run(void **state)
{
    (void)state;
    static char out1[1 << 16], out2[1 << 16];
    char *outs[2] = {out1, out2};
    char ids[2][40];
    for (int r = 0; r < 2; r++) {
        fixture *f = setup();
        journal jr = {0};
        outs[r][0] = 0;
        for (size_t k = 0; k < SCRIPT_LEN; k++)
            run_step(f, &SCRIPT[k], &jr, outs[r], sizeof out1);
        snprintf(ids[r], sizeof ids[r], "%s", info(f, "s5").dispatch_id);
        free_journal(&jr);
        teardown(f);
    }
    assert_string_equal(out1, out2);
    assert_string_equal(ids[0], ids[1]);
}

static void test_injected_bugs(void **state)
{
    (void)state;
    /* the name of the bug switched on, none when none is */
    assert_null(ref_bug_current_name());
    ref_bug_set(REF_BUG_RETRY_FATAL);
    assert_string_equal(ref_bug_current_name(), "retry-fatal");
    /* dispatch-on-throttle */
    ref_bug_set(REF_BUG_DISPATCH_ON_THROTTLE);
    assert_string_equal(ref_bug_current_name(), "dispatch-on-throttle");
    fixture *f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "j1", "job.tools", "bulk", 0);
    ASSERT_LOG(f, "worker.w1.jobs job_request j1");
    teardown(f);
    /* accept-stale-attempt */
    ref_bug_set(REF_BUG_ACCEPT_STALE_ATTEMPT);
    f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "j1", "job.tools", "read", 0);
    result(f, "j1", REF_JOB_FAILED_RETRYABLE);
    advance(f, f->now + 2 * SEC);
    assert_int_equal(result_as(f, "j1", REF_JOB_SUCCEEDED, 0, "old", 1, "w1"), REF_SCHED_APPLIED);
    teardown(f);
    /* retry-fatal */
    ref_bug_set(REF_BUG_RETRY_FATAL);
    f = setup();
    heartbeat(f, "w1", "job.tools", 4, "", 0);
    submit(f, "j1", "job.tools", "read", 0);
    result(f, "j1", REF_JOB_FAILED_FATAL);
    assert_int_equal(info(f, "j1").state, REF_JOB_FAILED_RETRYABLE);
    teardown(f);
    ref_bug_set(REF_BUG_NONE);
    assert_null(ref_bug_current_name());
}

static void test_config_and_helpers(void **state)
{
    (void)state;
    ref_sched_config c = ref_sched_config_default();
    ref_sched *s = NULL;
    cap_diag d;
    assert_int_equal(ref_sched_new(&c, &s, &d), CAP_EINVAL);
    assert_non_null(strstr(d.path, "safety"));
    uint64_t seed = 7;
    ref_rand r = {ref_rand_splitmix64, &seed};
    assert_int_equal(ref_sched_backoff(SEC, 30 * SEC, 0, 0, &r), SEC);
    assert_int_equal(ref_sched_backoff(SEC, 30 * SEC, 0, 3, &r), 8 * SEC);
    assert_int_equal(ref_sched_backoff(SEC, 30 * SEC, 0, 40, &r), 30 * SEC);
    for (int i = 0; i < 100; i++) {
        int64_t b = ref_sched_backoff(SEC, 30 * SEC, 500 * MS, 1, &r);
        assert_true(b >= 2 * SEC && b < 2 * SEC + 500 * MS);
    }
    assert_string_equal(ref_sched_verdict_name(REF_SCHED_STALE), "stale");
    assert_string_equal(ref_sched_answer_name(REF_SCHED_STALE_SNAPSHOT), "stale_snapshot");
}

static void test_request_hash_ignores_approval_labels(void **state)
{
    (void)state;
    cap_packet *a = mk_submit("j", "job.tools", "write", 0);
    cap_packet *b = mk_submit("j", "job.tools", "write", 0);
    add_label(b->job_request, "approval_granted", "true");
    add_label(b->job_request, "Approval_Note", "x");
    add_label(b->job_request, "cordum.bus_msg_id", "approval:j");
    char ha[65], hb[65];
    assert_int_equal(ref_sched_request_hash(a->job_request, ha), CAP_OK);
    assert_int_equal(ref_sched_request_hash(b->job_request, hb), CAP_OK);
    assert_string_equal(ha, hb);
    add_label(b->job_request, "team", "x");
    assert_int_equal(ref_sched_request_hash(b->job_request, hb), CAP_OK);
    assert_string_not_equal(ha, hb);
    cap_packet_free(a);
    cap_packet_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_deny),
        cmocka_unit_test(test_require_human_approve_and_reject),
        cmocka_unit_test(test_approval_after_policy_change),
        cmocka_unit_test(test_throttle_rechecks_with_backoff),
        cmocka_unit_test(test_allow_with_constraints),
        cmocka_unit_test(test_max_concurrent_jobs_cap),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_terminal_job_answers_without_its_request),
        cmocka_unit_test(test_shared_strings_follow_each_job),
        cmocka_unit_test(test_replay_refusals_counted),
        cmocka_unit_test(test_fencing),
        cmocka_unit_test(test_retries_backoff_and_exhaustion),
        cmocka_unit_test(test_dispatch_timeout),
        cmocka_unit_test(test_timeouts_per_pool_and_tenant),
        cmocka_unit_test(test_no_worker_waits_then_fails),
        cmocka_unit_test(test_waiting_job_tried_again_keeps_its_wake),
        cmocka_unit_test(test_priority_when_capacity_is_short),
        cmocka_unit_test(test_priority_kept_as_jobs_join_behind_an_emptied_front),
        cmocka_unit_test(test_last_memo_travels),
        cmocka_unit_test(test_heartbeat_memo_is_not_a_checkpoint),
        cmocka_unit_test(test_retry_avoids_workers_of_earlier_attempts),
        cmocka_unit_test(test_dispatch_copies_the_whole_request),
        cmocka_unit_test(test_dispatch_packet_is_one_block),
        cmocka_unit_test(test_large_requests_kept_exactly),
        cmocka_unit_test(test_jobs_found_by_seq_past_a_parked_job),
        cmocka_unit_test(test_eviction_takes_the_oldest_terminal_job),
        cmocka_unit_test(test_eviction_passes_a_live_job_at_the_old_end),
        cmocka_unit_test(test_eviction_past_long_runs_of_live_jobs),
        cmocka_unit_test(test_kept_request_normalises_bools),
        cmocka_unit_test(test_journal_text_is_cjson_text),
        cmocka_unit_test(test_journal_views_agree_with_text),
        cmocka_unit_test(test_journal_view_read_refuses_bad_bytes),
        cmocka_unit_test(test_journal_escapes_shared_strings),
        cmocka_unit_test(test_worker_lost_redispatches),
        cmocka_unit_test(test_worker_back_after_loss_keeps_its_limit),
        cmocka_unit_test(test_cancel_cascades),
        cmocka_unit_test(test_saga_rollback_newest_first),
        cmocka_unit_test(test_compensation_evicts_the_job_that_ended),
        cmocka_unit_test(test_breaker_opens_and_closes),
        cmocka_unit_test(test_journal_restore_continues_exactly),
        cmocka_unit_test(test_journal_bad_records),
        cmocka_unit_test(test_replay_store_restored),
        cmocka_unit_test(test_same_seed_same_run),
        cmocka_unit_test(test_injected_bugs),
        cmocka_unit_test(test_config_and_helpers),
        cmocka_unit_test(test_request_hash_ignores_approval_labels),
        cmocka_unit_test(test_records_and_request_blocks_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
