/* Saga rollback bookkeeping: recording, LIFO order, inheritance of unset
 * Compensation fields, deterministic ids and keys, the single rollback per
 * workflow, failed and denied compensations, isolation between workflows,
 * bounds, and the JSON state round-trip in the middle of a rollback. */
#include "testutil.h"

#include "cap_encode.h"
#include "cap_schema.h"
#include "ref_saga.h"

typedef Cordum__Agent__V1__JobRequest job_request;

#define ST_SUCCEEDED CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_SUCCEEDED
#define ST_FAILED CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED
#define ST_FATAL CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_FAILED_FATAL
#define ST_DENIED CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_DENIED
#define ST_RUNNING CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING
#define PRIO_BATCH CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_BATCH
#define PRIO_INTERACTIVE CORDUM__AGENT__V1__JOB_PRIORITY__JOB_PRIORITY_INTERACTIVE

/* --- a parent request with every field set -------------------------------- */

typedef struct {
    job_request req;
    Cordum__Agent__V1__JobRequest__EnvEntry env[2], *envp[2];
    Cordum__Agent__V1__JobRequest__LabelsEntry lab[2], *labp[2];
    Cordum__Agent__V1__ContextHints hints;
    Cordum__Agent__V1__Budget budget;
    Cordum__Agent__V1__JobMetadata meta;
    Cordum__Agent__V1__IdentityBinding identity;
    Cordum__Agent__V1__DispatchIdentity dispatch;
    Cordum__Agent__V1__ResourceRef ref;
    Cordum__Agent__V1__Compensation comp;
    /* the compensation's own values, used when a test sets them */
    Cordum__Agent__V1__Compensation__EnvEntry cenv[2], *cenvp[2];
    Cordum__Agent__V1__Compensation__LabelsEntry clab[1], *clabp[1];
    Cordum__Agent__V1__ContextHints chints;
    Cordum__Agent__V1__Budget cbudget;
    Cordum__Agent__V1__JobMetadata cmeta;
    Cordum__Agent__V1__IdentityBinding cidentity;
    Cordum__Agent__V1__DispatchIdentity cdispatch;
    Cordum__Agent__V1__ResourceRef cref;
} parent;

static void parent_init(parent *p, const char *wf, const char *job)
{
    memset(p, 0, sizeof *p);
    job_request r = CORDUM__AGENT__V1__JOB_REQUEST__INIT;
    Cordum__Agent__V1__JobRequest__EnvEntry ee = CORDUM__AGENT__V1__JOB_REQUEST__ENV_ENTRY__INIT;
    Cordum__Agent__V1__JobRequest__LabelsEntry le =
        CORDUM__AGENT__V1__JOB_REQUEST__LABELS_ENTRY__INIT;
    Cordum__Agent__V1__Compensation__EnvEntry cee =
        CORDUM__AGENT__V1__COMPENSATION__ENV_ENTRY__INIT;
    Cordum__Agent__V1__Compensation__LabelsEntry cle =
        CORDUM__AGENT__V1__COMPENSATION__LABELS_ENTRY__INIT;
    Cordum__Agent__V1__ContextHints hi = CORDUM__AGENT__V1__CONTEXT_HINTS__INIT;
    Cordum__Agent__V1__Budget bu = CORDUM__AGENT__V1__BUDGET__INIT;
    Cordum__Agent__V1__JobMetadata me = CORDUM__AGENT__V1__JOB_METADATA__INIT;
    Cordum__Agent__V1__IdentityBinding id = CORDUM__AGENT__V1__IDENTITY_BINDING__INIT;
    Cordum__Agent__V1__DispatchIdentity di = CORDUM__AGENT__V1__DISPATCH_IDENTITY__INIT;
    Cordum__Agent__V1__ResourceRef rr = CORDUM__AGENT__V1__RESOURCE_REF__INIT;
    Cordum__Agent__V1__Compensation co = CORDUM__AGENT__V1__COMPENSATION__INIT;

    p->env[0] = ee;
    p->env[0].key = "region";
    p->env[0].value = "us-east-1";
    p->env[1] = ee;
    p->env[1].key = "sandbox";
    p->env[1].value = "true";
    p->envp[0] = &p->env[0];
    p->envp[1] = &p->env[1];
    p->lab[0] = le;
    p->lab[0].key = "env";
    p->lab[0].value = "prod";
    p->lab[1] = le;
    p->lab[1].key = "team";
    p->lab[1].value = "platform";
    p->labp[0] = &p->lab[0];
    p->labp[1] = &p->lab[1];
    p->hints = hi;
    p->hints.max_input_tokens = 2048;
    p->hints.allow_retrieval = 1;
    p->budget = bu;
    p->budget.max_total_tokens = 5000;
    p->budget.deadline_ms = 60000;
    p->meta = me;
    p->meta.tenant_id = "tenant-1";
    p->meta.actor_id = "user-99";
    p->meta.idempotency_key = "idem-parent";
    p->meta.capability = "repo.review";
    p->identity = id;
    p->identity.tenant_id = "tenant-1";
    p->identity.principal_id = "user-99";
    p->dispatch = di;
    p->dispatch.dispatch_id = "disp-parent";
    p->dispatch.attempt = 3;
    p->dispatch.assigned_worker_id = "worker-7";
    p->ref = rr;
    p->ref.uri = "s3://bucket/ctx";
    p->ref.media_type = "application/json";

    p->cenv[0] = cee;
    p->cenv[1] = cee;
    p->cenvp[0] = &p->cenv[0];
    p->cenvp[1] = &p->cenv[1];
    p->clab[0] = cle;
    p->clabp[0] = &p->clab[0];
    p->chints = hi;
    p->cbudget = bu;
    p->cmeta = me;
    p->cidentity = id;
    p->cdispatch = di;
    p->cref = rr;
    p->comp = co; /* everything unset */

    p->req = r;
    p->req.job_id = (char *)job;
    p->req.topic = "job.tools";
    p->req.priority = PRIO_INTERACTIVE;
    p->req.context_ptr = "redis://ctx:parent";
    p->req.adapter_id = "adapter-default";
    p->req.n_env = 2;
    p->req.env = p->envp;
    p->req.parent_job_id = "grandparent";
    p->req.workflow_id = (char *)wf;
    p->req.step_index = 4;
    p->req.memory_id = "mem-abc";
    p->req.context_hints = &p->hints;
    p->req.budget = &p->budget;
    p->req.tenant_id = "tenant-1";
    p->req.principal_id = "user-99";
    p->req.n_labels = 2;
    p->req.labels = p->labp;
    p->req.meta = &p->meta;
    p->req.compensation = &p->comp;
    p->req.identity = &p->identity;
    p->req.dispatch = &p->dispatch;
    p->req.context_ref = &p->ref;
}

/* Sets every Compensation field. */
static void comp_set_all(parent *p)
{
    Cordum__Agent__V1__Compensation *c = &p->comp;
    c->topic = "job.rollback";
    c->context_ptr = "redis://ctx:rollback";
    c->priority = PRIO_BATCH;
    c->adapter_id = "adapter-rollback";
    p->cenv[0].key = "region";
    p->cenv[0].value = "eu-west-1";
    p->cenv[1].key = "reason";
    p->cenv[1].value = "failure";
    c->n_env = 2;
    c->env = p->cenvp;
    c->memory_id = "mem-rollback";
    p->chints.max_input_tokens = 512;
    c->context_hints = &p->chints;
    p->cbudget.max_total_tokens = 1000;
    c->budget = &p->cbudget;
    c->tenant_id = "tenant-1";
    c->principal_id = "svc-1";
    p->clab[0].key = "rollback";
    p->clab[0].value = "true";
    c->n_labels = 1;
    c->labels = p->clabp;
    p->cmeta.actor_id = "svc-1";
    p->cmeta.idempotency_key = "idem-rollback";
    c->meta = &p->cmeta;
    p->cidentity.principal_id = "svc-1";
    c->identity = &p->cidentity;
    p->cdispatch.dispatch_id = "disp-comp";
    c->dispatch = &p->cdispatch;
    p->cref.uri = "s3://bucket/rollback";
    c->context_ref = &p->cref;
}

static ref_saga *saga_new(size_t max_wf, size_t max_depth)
{
    ref_saga_config cfg = {max_wf, max_depth};
    ref_saga *s = NULL;
    assert_int_equal(ref_saga_new(&cfg, &s), CAP_OK);
    assert_non_null(s);
    return s;
}

static void record_job(ref_saga *s, const char *wf, const char *job)
{
    parent p;
    parent_init(&p, wf, job);
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_PUSHED);
}

static const char *map_get(size_t n, Cordum__Agent__V1__JobRequest__EnvEntry **e, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i]->key, k) == 0)
            return e[i]->value;
    return NULL;
}

static const char *label_get(const job_request *r, const char *k)
{
    for (size_t i = 0; i < r->n_labels; i++)
        if (strcmp(r->labels[i]->key, k) == 0)
            return r->labels[i]->value;
    return NULL;
}

/* Yields the next compensation, checks which job it compensates, reports o. */
static void step(ref_saga *s, const char *wf, const char *job, ref_saga_outcome o)
{
    job_request *r = NULL;
    assert_int_equal(ref_saga_next(s, wf, &r), REF_SAGA_NEXT_JOB);
    assert_non_null(r);
    assert_string_equal(r->parent_job_id, job);
    assert_int_equal(ref_saga_report(s, wf, r->job_id, o), CAP_OK);
    ref_saga_request_free(r);
}

static void expect_complete(ref_saga *s, const char *wf)
{
    job_request *r = (job_request *)(uintptr_t)1;
    assert_int_equal(ref_saga_next(s, wf, &r), REF_SAGA_NEXT_COMPLETE);
    assert_null(r);
}

/* --- tests ---------------------------------------------------------------- */

static void test_rollback_newest_first(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    record_job(s, "wf-1", "j1");
    record_job(s, "wf-1", "j2");
    record_job(s, "wf-1", "j3");
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    step(s, "wf-1", "j3", REF_SAGA_OUT_SUCCEEDED);
    step(s, "wf-1", "j2", REF_SAGA_OUT_SUCCEEDED);
    step(s, "wf-1", "j1", REF_SAGA_OUT_SUCCEEDED);
    expect_complete(s, "wf-1");
    expect_complete(s, "wf-1"); /* asking again stays complete */

    ref_saga_summary sum;
    assert_int_equal(ref_saga_summary_get(s, "wf-1", &sum), CAP_OK);
    assert_int_equal(sum.phase, REF_SAGA_DONE);
    assert_int_equal(sum.recorded, 3);
    assert_int_equal(sum.succeeded, 3);
    assert_int_equal(sum.failed + sum.denied + sum.pending + sum.in_flight, 0);
    ref_saga_entry_info info;
    assert_int_equal(ref_saga_entry(s, "wf-1", 0, &info), 1);
    assert_string_equal(info.job_id, "j1");
    assert_int_equal(info.rollback_seq, 3);
    assert_int_equal(ref_saga_entry(s, "wf-1", 2, &info), 1);
    assert_int_equal(info.rollback_seq, 1);
    assert_int_equal(ref_saga_entry(s, "wf-1", 3, &info), 0);
    ref_saga_free(s);
}

static void test_inherits_every_unset_field(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    parent p;
    parent_init(&p, "wf-1", "j1");
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_PUSHED);
    /* The store holds a deep copy: changing the caller's request is harmless. */
    p.req.topic = "job.changed";
    p.env[0].value = "changed";
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    job_request *r = NULL;
    assert_int_equal(ref_saga_next(s, "wf-1", &r), REF_SAGA_NEXT_JOB);

    assert_string_equal(r->job_id, "comp-job:4:wf-1:j1");
    assert_string_equal(r->topic, "job.tools");
    assert_int_equal(r->priority, PRIO_INTERACTIVE);
    assert_string_equal(r->context_ptr, "redis://ctx:parent");
    assert_string_equal(r->adapter_id, "adapter-default");
    assert_int_equal(r->n_env, 2);
    assert_string_equal(map_get(r->n_env, r->env, "region"), "us-east-1");
    assert_string_equal(map_get(r->n_env, r->env, "sandbox"), "true");
    assert_string_equal(r->parent_job_id, "j1");
    assert_string_equal(r->workflow_id, "wf-1");
    assert_int_equal(r->step_index, 4);
    assert_string_equal(r->memory_id, "mem-abc");
    assert_non_null(r->context_hints);
    assert_int_equal(r->context_hints->max_input_tokens, 2048);
    assert_true(r->context_hints->allow_retrieval);
    assert_non_null(r->budget);
    assert_int_equal(r->budget->max_total_tokens, 5000);
    assert_int_equal(r->budget->deadline_ms, 60000);
    assert_string_equal(r->tenant_id, "tenant-1");
    assert_string_equal(r->principal_id, "user-99");
    assert_int_equal(r->n_labels, 2);
    assert_string_equal(label_get(r, "env"), "prod");
    assert_string_equal(label_get(r, "team"), "platform");
    assert_non_null(r->meta);
    assert_string_equal(r->meta->actor_id, "user-99");
    assert_string_equal(r->meta->capability, "repo.review");
    /* never the parent's key */
    assert_string_equal(r->meta->idempotency_key, "comp:4:wf-1:j1");
    assert_non_null(r->identity);
    assert_string_equal(r->identity->principal_id, "user-99");
    assert_non_null(r->context_ref);
    assert_string_equal(r->context_ref->uri, "s3://bucket/ctx");
    assert_null(r->compensation);
    assert_null(r->dispatch); /* the parent had one */
    ref_saga_request_free(r);
    ref_saga_free(s);
}

static void test_set_fields_override(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    parent p;
    parent_init(&p, "wf-1", "j1");
    comp_set_all(&p);
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_PUSHED);
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    job_request *r = NULL;
    assert_int_equal(ref_saga_next(s, "wf-1", &r), REF_SAGA_NEXT_JOB);

    assert_string_equal(r->job_id, "comp-job:4:wf-1:j1");
    assert_string_equal(r->topic, "job.rollback");
    assert_int_equal(r->priority, PRIO_BATCH);
    assert_string_equal(r->context_ptr, "redis://ctx:rollback");
    assert_string_equal(r->adapter_id, "adapter-rollback");
    /* env merged: region overridden, sandbox kept, reason added */
    assert_int_equal(r->n_env, 3);
    assert_string_equal(map_get(r->n_env, r->env, "region"), "eu-west-1");
    assert_string_equal(map_get(r->n_env, r->env, "sandbox"), "true");
    assert_string_equal(map_get(r->n_env, r->env, "reason"), "failure");
    assert_string_equal(r->memory_id, "mem-rollback");
    /* a present message replaces the parent's whole */
    assert_int_equal(r->context_hints->max_input_tokens, 512);
    assert_false(r->context_hints->allow_retrieval);
    assert_int_equal(r->budget->max_total_tokens, 1000);
    assert_int_equal(r->budget->deadline_ms, 0);
    assert_string_equal(r->principal_id, "svc-1");
    assert_int_equal(r->n_labels, 3);
    assert_string_equal(label_get(r, "rollback"), "true");
    assert_string_equal(label_get(r, "env"), "prod");
    assert_string_equal(r->meta->actor_id, "svc-1");
    assert_string_equal(r->meta->capability, "");
    assert_string_equal(r->meta->idempotency_key, "idem-rollback"); /* its own key */
    assert_string_equal(r->identity->principal_id, "svc-1");
    assert_string_equal(r->identity->tenant_id, "");
    assert_string_equal(r->context_ref->uri, "s3://bucket/rollback");
    assert_null(r->dispatch); /* not even the Compensation's */
    assert_string_equal(r->parent_job_id, "j1");
    assert_string_equal(r->workflow_id, "wf-1");
    ref_saga_request_free(r);
    ref_saga_free(s);
}

static void test_meta_without_key_gets_derived_key(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    parent p;
    parent_init(&p, "wf-1", "j1");
    p.cmeta.actor_id = "svc-2";
    p.comp.meta = &p.cmeta; /* meta set, idempotency_key empty */
    p.comp.priority = PRIO_BATCH;
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_PUSHED);
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    job_request *r = NULL;
    assert_int_equal(ref_saga_next(s, "wf-1", &r), REF_SAGA_NEXT_JOB);
    assert_string_equal(r->meta->actor_id, "svc-2");
    assert_string_equal(r->meta->idempotency_key, "comp:4:wf-1:j1");
    assert_int_equal(r->priority, PRIO_BATCH);
    assert_string_equal(r->topic, "job.tools"); /* still inherited */
    ref_saga_request_free(r);
    ref_saga_free(s);
}

static void test_deterministic_ids(void **state)
{
    (void)state;
    char a[128], b[128];
    assert_int_equal(ref_saga_comp_job_id("wf-1", "j1", a, sizeof a), 18);
    assert_string_equal(a, "comp-job:4:wf-1:j1");
    assert_int_equal(ref_saga_idempotency_key("wf-1", "j1", a, sizeof a), 14);
    assert_string_equal(a, "comp:4:wf-1:j1");
    /* the length prefix keeps ids with ':' apart */
    assert_true(ref_saga_idempotency_key("a:b", "c", a, sizeof a) > 0);
    assert_true(ref_saga_idempotency_key("a", "b:c", b, sizeof b) > 0);
    assert_string_not_equal(a, b);
    assert_int_equal(ref_saga_idempotency_key("wf-1", "j1", a, 14), CAP_EINVAL);
    assert_int_equal(ref_saga_idempotency_key("wf-1", "j1", a, 15), 14);
    assert_int_equal(ref_saga_comp_job_id(NULL, "j1", a, sizeof a), CAP_EINVAL);

    /* two stores fed the same events yield byte-identical requests */
    uint8_t *bytes[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        ref_saga *s = saga_new(8, 8);
        parent p;
        parent_init(&p, "wf-9", "job-x");
        comp_set_all(&p);
        assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_PUSHED);
        assert_int_equal(ref_saga_trigger(s, "wf-9", ST_FATAL), REF_SAGA_STARTED);
        job_request *r = NULL;
        assert_int_equal(ref_saga_next(s, "wf-9", &r), REF_SAGA_NEXT_JOB);
        assert_int_equal(cap_encode(&r->base, &bytes[k], &len[k]), CAP_OK);
        /* asked again before a report: the very same request */
        job_request *again = NULL;
        assert_int_equal(ref_saga_next(s, "wf-9", &again), REF_SAGA_NEXT_JOB);
        uint8_t *b2;
        size_t l2;
        assert_int_equal(cap_encode(&again->base, &b2, &l2), CAP_OK);
        assert_int_equal(l2, len[k]);
        assert_memory_equal(b2, bytes[k], l2);
        free(b2);
        ref_saga_request_free(again);
        ref_saga_request_free(r);
        ref_saga_free(s);
    }
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(bytes[0], bytes[1], len[0]);
    free(bytes[0]);
    free(bytes[1]);
}

static void test_double_start_refused(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    record_job(s, "wf-1", "j1");
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FAILED), REF_SAGA_NOT_FATAL);
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_SUCCEEDED), REF_SAGA_NOT_FATAL);
    job_request *r = NULL;
    assert_int_equal(ref_saga_next(s, "wf-1", &r), CAP_EINVAL); /* not started */
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_ALREADY_RUNNING);
    assert_int_equal(ref_saga_forget(s, "wf-1"), CAP_EINVAL); /* running */

    /* a success recorded mid-rollback is the newest: compensated next */
    record_job(s, "wf-1", "late-but-running");
    step(s, "wf-1", "late-but-running", REF_SAGA_OUT_SUCCEEDED);
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_ALREADY_RUNNING);
    step(s, "wf-1", "j1", REF_SAGA_OUT_SUCCEEDED);
    expect_complete(s, "wf-1");
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_ALREADY_DONE);
    expect_complete(s, "wf-1"); /* nothing was queued */

    parent p;
    parent_init(&p, "wf-1", "after-done");
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_LATE);
    ref_saga_summary sum;
    assert_int_equal(ref_saga_summary_get(s, "wf-1", &sum), CAP_OK);
    assert_int_equal(sum.recorded, 2);
    assert_int_equal(sum.succeeded, 2);

    /* a workflow with nothing recorded: an empty rollback */
    assert_int_equal(ref_saga_trigger(s, "wf-empty", ST_FATAL), REF_SAGA_STARTED);
    expect_complete(s, "wf-empty");
    assert_int_equal(ref_saga_trigger(s, "wf-empty", ST_FATAL), REF_SAGA_ALREADY_DONE);
    ref_saga_free(s);
}

static void test_failed_and_denied_recorded(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    record_job(s, "wf-1", "j1");
    record_job(s, "wf-1", "j2");
    record_job(s, "wf-1", "j3");
    record_job(s, "wf-1", "j4");
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    step(s, "wf-1", "j4", REF_SAGA_OUT_FAILED);
    step(s, "wf-1", "j3", REF_SAGA_OUT_SUCCEEDED);
    step(s, "wf-1", "j2", REF_SAGA_OUT_DENIED);
    step(s, "wf-1", "j1", REF_SAGA_OUT_SUCCEEDED);
    expect_complete(s, "wf-1");

    ref_saga_summary sum;
    assert_int_equal(ref_saga_summary_get(s, "wf-1", &sum), CAP_OK);
    assert_int_equal(sum.recorded, 4);
    assert_int_equal(sum.succeeded, 2);
    assert_int_equal(sum.failed, 1);
    assert_int_equal(sum.denied, 1);
    ref_saga_entry_info info;
    assert_int_equal(ref_saga_failure(s, "wf-1", 0, &info), 1);
    assert_string_equal(info.job_id, "j4");
    assert_int_equal(info.state, REF_SAGA_ENTRY_FAILED);
    assert_int_equal(ref_saga_failure(s, "wf-1", 1, &info), 1);
    assert_string_equal(info.job_id, "j2");
    assert_int_equal(info.state, REF_SAGA_ENTRY_DENIED);
    assert_int_equal(ref_saga_failure(s, "wf-1", 2, &info), 0);

    assert_int_equal(ref_saga_outcome_of_status(ST_SUCCEEDED), REF_SAGA_OUT_SUCCEEDED);
    assert_int_equal(ref_saga_outcome_of_status(ST_DENIED), REF_SAGA_OUT_DENIED);
    assert_int_equal(ref_saga_outcome_of_status(ST_FATAL), REF_SAGA_OUT_FAILED);
    assert_int_equal(ref_saga_outcome_of_status(ST_FAILED), REF_SAGA_OUT_FAILED);
    assert_int_equal(
        ref_saga_outcome_of_status(CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_TIMEOUT),
        REF_SAGA_OUT_FAILED);
    assert_int_equal(ref_saga_outcome_of_status(ST_RUNNING), REF_SAGA_OUT_NONE);
    ref_saga_free(s);
}

static void test_report_checks(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    record_job(s, "wf-1", "j1");
    record_job(s, "wf-1", "j2");
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    /* nothing in flight yet */
    assert_int_equal(ref_saga_report(s, "wf-1", "comp-job:4:wf-1:j2", REF_SAGA_OUT_SUCCEEDED),
                     CAP_EINVAL);
    job_request *r = NULL;
    assert_int_equal(ref_saga_next(s, "wf-1", &r), REF_SAGA_NEXT_JOB);
    assert_int_equal(ref_saga_report(s, "wf-1", "comp-job:4:wf-1:j1", REF_SAGA_OUT_SUCCEEDED),
                     CAP_EINVAL); /* not the one in flight */
    assert_int_equal(ref_saga_report(s, "wf-1", r->job_id, REF_SAGA_OUT_NONE), CAP_EINVAL);
    assert_int_equal(ref_saga_report(s, "wf-x", r->job_id, REF_SAGA_OUT_SUCCEEDED), CAP_EINVAL);
    ref_saga_summary sum;
    assert_int_equal(ref_saga_summary_get(s, "wf-1", &sum), CAP_OK);
    assert_int_equal(sum.in_flight, 1);
    assert_int_equal(sum.pending, 1);
    assert_int_equal(ref_saga_report(s, "wf-1", r->job_id, REF_SAGA_OUT_SUCCEEDED), CAP_OK);
    assert_int_equal(ref_saga_report(s, "wf-1", r->job_id, REF_SAGA_OUT_SUCCEEDED), CAP_EINVAL);
    ref_saga_request_free(r);
    ref_saga_free(s);
}

static void test_not_pushed(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    parent p;
    parent_init(&p, "wf-1", "j1");
    p.req.compensation = NULL;
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_NO_COMPENSATION);
    parent_init(&p, "wf-1", "j2");
    assert_int_equal(ref_saga_record(s, &p.req, ST_FAILED), REF_SAGA_REC_NOT_SUCCEEDED);
    assert_int_equal(ref_saga_record(s, &p.req, ST_FATAL), REF_SAGA_REC_NOT_SUCCEEDED);
    parent_init(&p, "", "j3");
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_NO_WORKFLOW);
    assert_int_equal(ref_saga_workflow_count(s), 0);
    parent_init(&p, "wf-1", "");
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), CAP_EINVAL);
    assert_int_equal(ref_saga_workflow_count(s), 0);

    record_job(s, "wf-1", "j4");
    parent_init(&p, "wf-1", "j4");
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_DUPLICATE);

    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    /* a compensation's own success has no Compensation: not pushed */
    job_request *r = NULL;
    assert_int_equal(ref_saga_next(s, "wf-1", &r), REF_SAGA_NEXT_JOB);
    assert_int_equal(ref_saga_record(s, r, ST_SUCCEEDED), REF_SAGA_REC_NO_COMPENSATION);
    assert_int_equal(ref_saga_report(s, "wf-1", r->job_id, REF_SAGA_OUT_SUCCEEDED), CAP_OK);
    ref_saga_request_free(r);
    expect_complete(s, "wf-1");
    ref_saga_summary sum;
    assert_int_equal(ref_saga_summary_get(s, "wf-1", &sum), CAP_OK);
    assert_int_equal(sum.recorded, 1);
    ref_saga_free(s);
}

static void test_other_workflows_unaffected(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    record_job(s, "wf-b", "b1");
    record_job(s, "wf-a", "a1");
    record_job(s, "wf-b", "b2");
    record_job(s, "wf-a", "a2");
    assert_int_equal(ref_saga_workflow_count(s), 2);
    assert_string_equal(ref_saga_workflow_at(s, 0), "wf-a");
    assert_string_equal(ref_saga_workflow_at(s, 1), "wf-b");
    assert_null(ref_saga_workflow_at(s, 2));

    assert_int_equal(ref_saga_trigger(s, "wf-a", ST_FATAL), REF_SAGA_STARTED);
    step(s, "wf-a", "a2", REF_SAGA_OUT_SUCCEEDED);
    step(s, "wf-a", "a1", REF_SAGA_OUT_SUCCEEDED);
    expect_complete(s, "wf-a");

    ref_saga_summary sum;
    assert_int_equal(ref_saga_summary_get(s, "wf-b", &sum), CAP_OK);
    assert_int_equal(sum.phase, REF_SAGA_IDLE);
    assert_int_equal(sum.pending, 2);
    job_request *r = NULL;
    assert_int_equal(ref_saga_next(s, "wf-b", &r), CAP_EINVAL);
    assert_int_equal(ref_saga_trigger(s, "wf-b", ST_FATAL), REF_SAGA_STARTED);
    step(s, "wf-b", "b2", REF_SAGA_OUT_SUCCEEDED);
    step(s, "wf-b", "b1", REF_SAGA_OUT_SUCCEEDED);
    expect_complete(s, "wf-b");

    /* a workflow that succeeds is forgotten: its stack goes */
    record_job(s, "wf-c", "c1");
    assert_int_equal(ref_saga_forget(s, "wf-c"), 1);
    assert_int_equal(ref_saga_forget(s, "wf-c"), 0);
    assert_int_equal(ref_saga_summary_get(s, "wf-c", &sum), CAP_EINVAL);
    ref_saga_free(s);
}

static void test_bounds(void **state)
{
    (void)state;
    ref_saga_config bad = {0, 4};
    ref_saga *s = NULL;
    assert_int_equal(ref_saga_new(&bad, &s), CAP_EINVAL);
    bad.max_workflows = 4;
    bad.max_depth = REF_SAGA_MAX_DEPTH_LIMIT + 1;
    assert_int_equal(ref_saga_config_check(&bad), CAP_EINVAL);
    ref_saga_config def = ref_saga_config_default();
    assert_int_equal(ref_saga_config_check(&def), CAP_OK);

    s = saga_new(2, 2);
    record_job(s, "wf-1", "j1");
    record_job(s, "wf-1", "j2");
    parent p;
    parent_init(&p, "wf-1", "j3");
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), CAP_EFULL);
    record_job(s, "wf-2", "k1");
    parent_init(&p, "wf-3", "m1");
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), CAP_EFULL);
    assert_int_equal(ref_saga_trigger(s, "wf-3", ST_FATAL), CAP_EFULL);
    assert_int_equal(ref_saga_workflow_count(s), 2);

    /* the full stack still rolls back intact */
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    step(s, "wf-1", "j2", REF_SAGA_OUT_SUCCEEDED);
    /* mid-rollback the stack is still full: recorded ones count */
    parent_init(&p, "wf-1", "j9");
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), CAP_EFULL);
    step(s, "wf-1", "j1", REF_SAGA_OUT_SUCCEEDED);
    expect_complete(s, "wf-1");
    assert_int_equal(ref_saga_forget(s, "wf-1"), 1);
    parent_init(&p, "wf-3", "m1");
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_PUSHED);

    /* ids over the bound */
    char longid[REF_SAGA_MAX_ID_LEN + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    parent_init(&p, "wf-2", longid);
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), CAP_EINVAL);
    assert_int_equal(ref_saga_trigger(s, longid, ST_FATAL), CAP_EINVAL);
    ref_saga_free(s);
}

/* Drives both stores to the end, checking they yield identical requests. */
static void drive_in_step(ref_saga *a, ref_saga *b, const char *wf, const char *const *expect,
                          size_t n)
{
    static const ref_saga_outcome outs[] = {REF_SAGA_OUT_SUCCEEDED, REF_SAGA_OUT_DENIED,
                                            REF_SAGA_OUT_FAILED};
    for (size_t i = 0; i < n; i++) {
        job_request *ra = NULL, *rb = NULL;
        assert_int_equal(ref_saga_next(a, wf, &ra), REF_SAGA_NEXT_JOB);
        assert_int_equal(ref_saga_next(b, wf, &rb), REF_SAGA_NEXT_JOB);
        assert_string_equal(ra->parent_job_id, expect[i]);
        uint8_t *ba, *bb;
        size_t la, lb;
        assert_int_equal(cap_encode(&ra->base, &ba, &la), CAP_OK);
        assert_int_equal(cap_encode(&rb->base, &bb, &lb), CAP_OK);
        assert_int_equal(la, lb);
        assert_memory_equal(ba, bb, la);
        free(ba);
        free(bb);
        ref_saga_outcome o = outs[i % 3];
        assert_int_equal(ref_saga_report(a, wf, ra->job_id, o), CAP_OK);
        assert_int_equal(ref_saga_report(b, wf, rb->job_id, o), CAP_OK);
        ref_saga_request_free(ra);
        ref_saga_request_free(rb);
    }
    expect_complete(a, wf);
    expect_complete(b, wf);
}

static void test_serialise_restore_mid_rollback(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    record_job(s, "wf-1", "j1");
    record_job(s, "wf-1", "j2");
    record_job(s, "wf-1", "j3");
    record_job(s, "wf-1", "j4");
    parent p;
    parent_init(&p, "wf-2", "k1");
    comp_set_all(&p);
    assert_int_equal(ref_saga_record(s, &p.req, ST_SUCCEEDED), REF_SAGA_REC_PUSHED);
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    step(s, "wf-1", "j4", REF_SAGA_OUT_FAILED);
    /* j3 is in flight when the state is saved */
    job_request *flying = NULL;
    assert_int_equal(ref_saga_next(s, "wf-1", &flying), REF_SAGA_NEXT_JOB);
    assert_string_equal(flying->parent_job_id, "j3");

    char *json = NULL;
    assert_int_equal(ref_saga_serialize(s, &json), CAP_OK);
    ref_saga *t = NULL;
    assert_int_equal(ref_saga_restore(NULL, json, strlen(json), &t), CAP_OK);
    char *json2 = NULL;
    assert_int_equal(ref_saga_serialize(t, &json2), CAP_OK);
    assert_string_equal(json, json2);

    ref_saga_summary sa, sb;
    assert_int_equal(ref_saga_summary_get(t, "wf-1", &sb), CAP_OK);
    assert_int_equal(ref_saga_summary_get(s, "wf-1", &sa), CAP_OK);
    assert_memory_equal(&sa, &sb, sizeof sa);
    assert_int_equal(sb.in_flight, 1);
    assert_int_equal(sb.failed, 1);
    assert_int_equal(ref_saga_trigger(t, "wf-1", ST_FATAL), REF_SAGA_ALREADY_RUNNING);

    /* the restored store re-issues the in-flight compensation unchanged */
    job_request *again = NULL;
    assert_int_equal(ref_saga_next(t, "wf-1", &again), REF_SAGA_NEXT_JOB);
    assert_string_equal(again->job_id, flying->job_id);
    assert_string_equal(again->meta->idempotency_key, flying->meta->idempotency_key);
    ref_saga_request_free(again);
    ref_saga_request_free(flying);

    static const char *const rest[] = {"j3", "j2", "j1"};
    drive_in_step(s, t, "wf-1", rest, 3);
    ref_saga_entry_info fa, fb;
    for (size_t i = 0; i < 3; i++) {
        int ha = ref_saga_failure(s, "wf-1", i, &fa), hb = ref_saga_failure(t, "wf-1", i, &fb);
        assert_int_equal(ha, hb);
        if (ha == 1) {
            assert_string_equal(fa.job_id, fb.job_id);
            assert_int_equal(fa.rollback_seq, fb.rollback_seq);
        }
    }
    /* the other workflow survived the round-trip, still idle */
    assert_int_equal(ref_saga_summary_get(t, "wf-2", &sb), CAP_OK);
    assert_int_equal(sb.phase, REF_SAGA_IDLE);
    assert_int_equal(ref_saga_trigger(s, "wf-2", ST_FATAL), REF_SAGA_STARTED);
    assert_int_equal(ref_saga_trigger(t, "wf-2", ST_FATAL), REF_SAGA_STARTED);
    static const char *const k[] = {"k1"};
    drive_in_step(s, t, "wf-2", k, 1);

    free(json);
    free(json2);
    assert_int_equal(ref_saga_serialize(t, &json), CAP_OK);
    assert_int_equal(ref_saga_serialize(s, &json2), CAP_OK);
    assert_string_equal(json, json2);
    free(json);
    free(json2);
    ref_saga_free(t);
    ref_saga_free(s);
}

static int restore_rc(const char *json, size_t max_wf, size_t max_depth)
{
    ref_saga_config cfg = {max_wf, max_depth};
    ref_saga *t = (ref_saga *)(uintptr_t)1;
    int rc = ref_saga_restore(&cfg, json, strlen(json), &t);
    if (rc == CAP_OK) {
        assert_non_null(t);
        ref_saga_free(t);
    } else {
        assert_null(t);
    }
    return rc;
}

static void test_restore_rejects(void **state)
{
    (void)state;
    ref_saga *s = saga_new(8, 8);
    record_job(s, "wf-1", "j1");
    record_job(s, "wf-1", "j2");
    record_job(s, "wf-2", "k1");
    char *json = NULL;
    assert_int_equal(ref_saga_serialize(s, &json), CAP_OK);
    assert_int_equal(restore_rc(json, 8, 8), CAP_OK);
    assert_int_equal(restore_rc(json, 1, 8), CAP_EFULL);
    assert_int_equal(restore_rc(json, 8, 1), CAP_EFULL);
    free(json);
    ref_saga_free(s);

    assert_int_equal(restore_rc("", 8, 8), CAP_EJSON);
    assert_int_equal(restore_rc("{\"version\":2,\"workflows\":[]}", 8, 8), CAP_EJSON);
    assert_int_equal(restore_rc("{\"version\":1,\"workflows\":[]}", 8, 8), CAP_OK);
    assert_int_equal(restore_rc("{\"version\":1,\"workflows\":{}}", 8, 8), CAP_EJSON);
    /* unsorted and repeated workflow ids */
    assert_int_equal(restore_rc("{\"version\":1,\"workflows\":["
                                "{\"workflow_id\":\"b\",\"phase\":\"idle\",\"next_seq\":1,"
                                "\"entries\":[]},"
                                "{\"workflow_id\":\"a\",\"phase\":\"idle\",\"next_seq\":1,"
                                "\"entries\":[]}]}",
                                8, 8),
                     CAP_EJSON);
    assert_int_equal(restore_rc("{\"version\":1,\"workflows\":["
                                "{\"workflow_id\":\"a\",\"phase\":\"idle\",\"next_seq\":1,"
                                "\"entries\":[]},"
                                "{\"workflow_id\":\"a\",\"phase\":\"idle\",\"next_seq\":1,"
                                "\"entries\":[]}]}",
                                8, 8),
                     CAP_EJSON);
    assert_int_equal(restore_rc("{\"version\":1,\"workflows\":["
                                "{\"workflow_id\":\"a\",\"phase\":\"halfway\",\"next_seq\":1,"
                                "\"entries\":[]}]}",
                                8, 8),
                     CAP_EJSON);
    /* an entry whose request is not base64, and one that is not a JobRequest */
    assert_int_equal(restore_rc("{\"version\":1,\"workflows\":["
                                "{\"workflow_id\":\"a\",\"phase\":\"idle\",\"next_seq\":1,"
                                "\"entries\":[{\"job_id\":\"j\",\"state\":\"pending\","
                                "\"rollback_seq\":0,\"request\":\"!!\"}]}]}",
                                8, 8),
                     CAP_EJSON);
    assert_int_equal(restore_rc("{\"version\":1,\"workflows\":["
                                "{\"workflow_id\":\"a\",\"phase\":\"idle\",\"next_seq\":1,"
                                "\"entries\":[{\"job_id\":\"j\",\"state\":\"pending\","
                                "\"rollback_seq\":0,\"request\":\"\"}]}]}",
                                8, 8),
                     CAP_EJSON);

    /* a phase that does not fit its entries: idle with one in flight */
    s = saga_new(8, 8);
    record_job(s, "wf-1", "j1");
    assert_int_equal(ref_saga_trigger(s, "wf-1", ST_FATAL), REF_SAGA_STARTED);
    job_request *r = NULL;
    assert_int_equal(ref_saga_next(s, "wf-1", &r), REF_SAGA_NEXT_JOB);
    ref_saga_request_free(r);
    assert_int_equal(ref_saga_serialize(s, &json), CAP_OK);
    char *at = strstr(json, "\"rolling_back\"");
    assert_non_null(at);
    char *edited = malloc(strlen(json) + 1);
    assert_non_null(edited);
    size_t pre = (size_t)(at - json);
    memcpy(edited, json, pre);
    strcpy(edited + pre, "\"idle\"");
    strcat(edited, at + strlen("\"rolling_back\""));
    assert_int_equal(restore_rc(json, 8, 8), CAP_OK);
    assert_int_equal(restore_rc(edited, 8, 8), CAP_EJSON);
    free(edited);
    free(json);
    ref_saga_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollback_newest_first),
        cmocka_unit_test(test_inherits_every_unset_field),
        cmocka_unit_test(test_set_fields_override),
        cmocka_unit_test(test_meta_without_key_gets_derived_key),
        cmocka_unit_test(test_deterministic_ids),
        cmocka_unit_test(test_double_start_refused),
        cmocka_unit_test(test_failed_and_denied_recorded),
        cmocka_unit_test(test_report_checks),
        cmocka_unit_test(test_not_pushed),
        cmocka_unit_test(test_other_workflows_unaffected),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_serialise_restore_mid_rollback),
        cmocka_unit_test(test_restore_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
