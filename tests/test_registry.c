/* Worker registry: registration and update, liveness at the exact grace
 * boundary, expiry order, least-loaded selection with its tie-break, the
 * overload rule, requires and label matching, exclusion, handshake version
 * negotiation and ready_topics, and every bound. */
#include "testutil.h"

#include <math.h>

#include "cap_error.h"
#include "ref_registry.h"

#define SEC INT64_C(1000000000)

/* ---- packet builders ------------------------------------------------------ */

typedef struct {
    Cordum__Agent__V1__Heartbeat hb;
    Cordum__Agent__V1__Heartbeat__LabelsEntry le[80];
    Cordum__Agent__V1__Heartbeat__LabelsEntry *lp[80];
    char *caps[80];
} hb_buf;

static Cordum__Agent__V1__Heartbeat *hb_make(hb_buf *b, const char *id, const char *pool,
                                             int active, int max, float cpu, float gpu)
{
    memset(b, 0, sizeof *b);
    cordum__agent__v1__heartbeat__init(&b->hb);
    b->hb.worker_id = (char *)id;
    b->hb.pool = (char *)pool;
    b->hb.active_jobs = active;
    b->hb.max_parallel_jobs = max;
    b->hb.cpu_load = cpu;
    b->hb.gpu_utilization = gpu;
    b->hb.labels = b->lp;
    b->hb.capabilities = b->caps;
    return &b->hb;
}

static void hb_label(hb_buf *b, const char *k, const char *v)
{
    size_t i = b->hb.n_labels++;
    cordum__agent__v1__heartbeat__labels_entry__init(&b->le[i]);
    b->le[i].key = (char *)k;
    b->le[i].value = (char *)v;
    b->lp[i] = &b->le[i];
}

static void hb_cap(hb_buf *b, const char *c)
{
    b->caps[b->hb.n_capabilities++] = (char *)c;
}

typedef struct {
    Cordum__Agent__V1__Handshake hs;
    Cordum__Agent__V1__Handshake__CapabilitiesEntry ce[80];
    Cordum__Agent__V1__Handshake__CapabilitiesEntry *cp[80];
    char *topics[80];
    int32_t versions[32];
} hs_buf;

static Cordum__Agent__V1__Handshake *hs_make(hs_buf *b, const char *id)
{
    memset(b, 0, sizeof *b);
    cordum__agent__v1__handshake__init(&b->hs);
    b->hs.component_id = (char *)id;
    b->hs.role = CORDUM__AGENT__V1__COMPONENT_ROLE__COMPONENT_ROLE_WORKER;
    b->hs.capabilities = b->cp;
    b->hs.ready_topics = b->topics;
    b->hs.supported_versions = b->versions;
    return &b->hs;
}

static void hs_version(hs_buf *b, int32_t v)
{
    b->versions[b->hs.n_supported_versions++] = v;
}

static void hs_topic(hs_buf *b, const char *t)
{
    b->topics[b->hs.n_ready_topics++] = (char *)t;
}

static void hs_cap(hs_buf *b, const char *k, int v)
{
    size_t i = b->hs.n_capabilities++;
    cordum__agent__v1__handshake__capabilities_entry__init(&b->ce[i]);
    b->ce[i].key = (char *)k;
    b->ce[i].value = v;
    b->cp[i] = &b->ce[i];
}

typedef struct {
    Cordum__Agent__V1__JobRequest job;
    Cordum__Agent__V1__JobMetadata meta;
    Cordum__Agent__V1__JobRequest__LabelsEntry le[16];
    Cordum__Agent__V1__JobRequest__LabelsEntry *lp[16];
    char *req[16];
} job_buf;

static Cordum__Agent__V1__JobRequest *job_make(job_buf *b, const char *topic)
{
    memset(b, 0, sizeof *b);
    cordum__agent__v1__job_request__init(&b->job);
    cordum__agent__v1__job_metadata__init(&b->meta);
    b->job.job_id = (char *)"job-1";
    b->job.topic = (char *)topic;
    b->job.meta = &b->meta;
    b->job.labels = b->lp;
    b->meta.requires = b->req;
    return &b->job;
}

static void job_label(job_buf *b, const char *k, const char *v)
{
    size_t i = b->job.n_labels++;
    cordum__agent__v1__job_request__labels_entry__init(&b->le[i]);
    b->le[i].key = (char *)k;
    b->le[i].value = (char *)v;
    b->lp[i] = &b->le[i];
}

static void job_requires(job_buf *b, const char *c)
{
    b->req[b->meta.n_requires++] = (char *)c;
}

/* ---- registry helpers ------------------------------------------------------ */

static ref_registry *reg_new(const ref_registry_config *cfg)
{
    ref_registry *r = NULL;
    cap_diag d;
    int rc = ref_registry_new(cfg, &r, &d);
    if (rc)
        fail_msg("ref_registry_new: %d %s: %s", rc, d.path, d.reason);
    return r;
}

static int beat(ref_registry *r, int64_t now, const char *id, const char *pool, int active,
                int max, float cpu, float gpu)
{
    hb_buf b;
    return ref_registry_heartbeat(r, now, hb_make(&b, id, pool, active, max, cpu, gpu), NULL);
}

static const char *const POOL_A[] = {"job.a"};

/* Selects for job on POOL_A; asserts CAP_OK. */
static ref_sel_result pick(const ref_registry *r, int64_t now, const Cordum__Agent__V1__JobRequest *job)
{
    ref_sel_request q = {.job = job, .pools = POOL_A, .n_pools = 1};
    ref_sel_result res;
    assert_int_equal(ref_registry_select(r, now, &q, &res), CAP_OK);
    return res;
}

/* ---- registration --------------------------------------------------------- */

static void test_registration_copies_every_field(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    hb_buf b;
    char id[] = "worker-1", pool[] = "job.tools", memo[] = "step-3", cap0[] = "git";
    char k_zone[] = "zone", v_zone[] = "us-east-1a";
    Cordum__Agent__V1__Heartbeat *hb = hb_make(&b, id, pool, 2, 4, 33.5f, 1.5f);
    hb->region = (char *)"us-east-1";
    hb->type = (char *)"cpu-tools";
    hb->memory_load = 45.2f;
    hb->progress_pct = 60;
    hb->last_memo = memo;
    hb->auth_token = (char *)"attest-worker-1";
    hb->agent_name = (char *)"Display Name";
    hb_cap(&b, cap0);
    hb_cap(&b, "docker");
    hb_label(&b, k_zone, v_zone);
    hb_label(&b, "env", "staging");
    hb_label(&b, "env", "prod"); /* the last value sent for a key wins */
    assert_int_equal(ref_registry_heartbeat(r, 5 * SEC, hb, NULL), REF_REGISTRY_ONLINE);

    /* the registry keeps copies: scribbling over the packet changes nothing */
    memset(id, 'x', sizeof id - 1);
    memset(pool, 'x', sizeof pool - 1);
    memset(memo, 'x', sizeof memo - 1);
    memset(cap0, 'x', sizeof cap0 - 1);
    memset(k_zone, 'x', sizeof k_zone - 1);
    memset(v_zone, 'x', sizeof v_zone - 1);

    assert_int_equal(ref_registry_count(r), 1);
    const ref_worker_info *w = ref_registry_find(r, "worker-1");
    assert_non_null(w);
    assert_ptr_equal(w, ref_registry_at(r, 0));
    assert_string_equal(w->worker_id, "worker-1");
    assert_true(w->has_heartbeat);
    assert_false(w->has_handshake);
    assert_int_equal(w->last_seen, 5 * SEC);
    assert_int_equal(w->last_heartbeat, 5 * SEC);
    assert_string_equal(w->pool, "job.tools");
    assert_string_equal(w->region, "us-east-1");
    assert_string_equal(w->type, "cpu-tools");
    assert_string_equal(w->last_memo, "step-3");
    assert_int_equal(w->active_jobs, 2);
    assert_int_equal(w->max_parallel_jobs, 4);
    assert_int_equal(w->progress_pct, 60);
    assert_true(w->cpu_load == 33.5f);
    assert_true(w->gpu_utilization == 1.5f);
    assert_true(w->memory_load == 45.2f);
    assert_int_equal(w->n_capabilities, 2);
    assert_string_equal(w->capabilities[0], "git");
    assert_string_equal(w->capabilities[1], "docker");
    assert_int_equal(w->n_labels, 2); /* sorted by key, one per key */
    assert_string_equal(w->labels[0].key, "env");
    assert_string_equal(w->labels[0].value, "prod");
    assert_string_equal(w->labels[1].key, "zone");
    assert_string_equal(w->labels[1].value, "us-east-1a");
    /* no handshake yet: blank handshake fields, never NULL strings */
    assert_string_equal(w->sdk_version, "");
    assert_int_equal(w->version, 0);
    /* the bearer credential is kept nowhere (cap-spec 05 L17) */
    for (size_t i = 0; i < w->n_labels; i++)
        assert_null(strstr(w->labels[i].value, "attest"));
    assert_null(strstr(w->last_memo, "attest"));

    /* an update replaces the whole report */
    hb_buf b2;
    hb = hb_make(&b2, "worker-1", "job.other", 0, 8, 10.0f, 0.0f);
    hb_label(&b2, "team", "blue");
    assert_int_equal(ref_registry_heartbeat(r, 6 * SEC, hb, NULL), REF_REGISTRY_UPDATED);
    w = ref_registry_find(r, "worker-1");
    assert_string_equal(w->pool, "job.other");
    assert_int_equal(w->active_jobs, 0);
    assert_int_equal(w->max_parallel_jobs, 8);
    assert_int_equal(w->n_capabilities, 0);
    assert_null(w->capabilities);
    assert_int_equal(w->n_labels, 1);
    assert_string_equal(w->labels[0].key, "team");
    assert_string_equal(w->last_memo, "");
    assert_int_equal(w->last_seen, 6 * SEC);
    assert_int_equal(ref_registry_count(r), 1);
    assert_null(ref_registry_find(r, "worker-2"));
    assert_null(ref_registry_at(r, 1));
    ref_registry_free(r);
}

/* Workers are kept in ascending bytewise id order whatever the order of
 * arrival. */
static void test_iteration_is_in_id_order(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    static const char *const arrive[] = {"w3", "w10", "W9", "w1", "w2", "w-0"};
    static const char *const sorted[] = {"W9", "w-0", "w1", "w10", "w2", "w3"};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(beat(r, 0, arrive[i], "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    assert_int_equal(ref_registry_count(r), 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(ref_registry_at(r, i)->worker_id, sorted[i]);
    assert_int_equal(ref_registry_remove(r, "w10"), 1);
    assert_int_equal(ref_registry_remove(r, "w10"), 0);
    assert_int_equal(ref_registry_count(r), 5);
    assert_string_equal(ref_registry_at(r, 3)->worker_id, "w2");
    ref_registry_free(r);
}

/* Lookups by id stay right while workers arrive in any order, leave
 * (remove) and are lost in batches (expire): checked against a model of
 * which ids are held, after every step. */
static void test_find_follows_arrivals_and_departures(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    enum { N = 40 };
    char ids[N][8];
    int held[N] = {0};
    int64_t seen[N] = {0};
    for (int i = 0; i < N; i++)
        snprintf(ids[i], sizeof ids[i], "w%02d", (i * 17) % N);
    uint64_t x = 12345;
    int64_t now = 0;
    const int64_t grace = 30 * SEC;
    for (int step = 0; step < 2000; step++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int i = (int)((x >> 33) % N), op = (int)((x >> 20) % 10);
        now += SEC / 2;
        if (op < 7) {
            assert_true(beat(r, now, ids[i], "job.a", 0, 0, 0, 0) >= 0);
            held[i] = 1;
            seen[i] = now;
        } else if (op < 9) {
            assert_int_equal(ref_registry_remove(r, ids[i]), held[i]);
            held[i] = 0;
        } else {
            ref_registry_lost lost[3];
            int n = ref_registry_expire(r, now, lost, 3);
            assert_true(n >= 0);
            for (int k = 0; k < n; k++)
                for (int m = 0; m < N; m++)
                    if (strcmp(ids[m], lost[k].worker_id) == 0) {
                        assert_true(held[m] && now - seen[m] > grace);
                        held[m] = 0;
                    }
        }
        size_t count = 0;
        for (int m = 0; m < N; m++) {
            const ref_worker_info *w = ref_registry_find(r, ids[m]);
            if (held[m]) {
                assert_non_null(w);
                assert_string_equal(w->worker_id, ids[m]);
                count++;
            } else {
                assert_null(w);
            }
        }
        assert_int_equal(ref_registry_count(r), count);
        for (size_t k = 1; k < count; k++)
            assert_true(strcmp(ref_registry_at(r, k - 1)->worker_id,
                               ref_registry_at(r, k)->worker_id) < 0);
    }
    ref_registry_free(r);
}

/* ---- liveness --------------------------------------------------------------- */

static void test_loss_exactly_at_the_grace_boundary(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    const int64_t t0 = 1000, grace = 30 * SEC; /* default: 3 x 10 s */
    assert_int_equal(ref_registry_grace(r), grace);
    assert_int_equal(beat(r, t0, "w1", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    const ref_worker_info *w = ref_registry_find(r, "w1");
    assert_true(ref_registry_alive(r, w, t0 + grace));      /* still alive at the boundary */
    assert_false(ref_registry_alive(r, w, t0 + grace + 1)); /* lost one ns later */

    int64_t at = 0;
    assert_int_equal(ref_registry_next_expiry(r, &at), 1);
    assert_int_equal(at, t0 + grace + 1);

    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    ref_sel_result res = pick(r, t0 + grace, job);
    assert_int_equal(res.outcome, REF_SEL_OK);
    assert_string_equal(res.worker_id, "w1");

    ref_registry_lost lost[4];
    assert_int_equal(ref_registry_expire(r, t0 + grace, lost, 4), 0);
    assert_int_equal(ref_registry_count(r), 1);

    /* one ns past the window: not selectable, and expire reports it */
    res = pick(r, t0 + grace + 1, job);
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
    assert_int_equal(res.filtered[REF_SEL_LOST], 1);
    assert_int_equal(ref_registry_expire(r, t0 + grace + 1, lost, 4), 1);
    assert_string_equal(lost[0].worker_id, "w1");
    assert_string_equal(lost[0].pool, "job.a");
    assert_int_equal(lost[0].last_seen, t0);
    assert_true(lost[0].had_heartbeat);
    assert_int_equal(ref_registry_count(r), 0);
    assert_int_equal(ref_registry_next_expiry(r, &at), 0);

    /* a heartbeat refreshes the window; coming back after expiry is ONLINE */
    assert_int_equal(beat(r, t0 + grace + 2, "w1", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    assert_int_equal(beat(r, t0 + 2 * grace + 2, "w1", "job.a", 0, 0, 0, 0),
                     REF_REGISTRY_UPDATED); /* exactly at the boundary: still alive */
    /* past the window but not yet expired: the next heartbeat is ONLINE */
    assert_int_equal(beat(r, t0 + 3 * grace + 3, "w1", "job.a", 0, 0, 0, 0),
                     REF_REGISTRY_ONLINE);
    ref_registry_free(r);
}

static void test_configured_interval_and_multiplier(void **state)
{
    (void)state;
    ref_registry_config cfg = ref_registry_config_default();
    cfg.heartbeat_interval_ns = 2 * SEC;
    cfg.grace_multiplier = 4;
    ref_registry *r = reg_new(&cfg);
    assert_int_equal(ref_registry_grace(r), 8 * SEC);
    assert_int_equal(beat(r, 0, "w1", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    ref_registry_lost lost[1];
    assert_int_equal(ref_registry_expire(r, 8 * SEC, lost, 1), 0);
    assert_int_equal(ref_registry_expire(r, 8 * SEC + 1, lost, 1), 1);
    ref_registry_free(r);
}

static void test_expire_order_and_partial_capacity(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    const int64_t grace = 30 * SEC;
    /* arrival order scrambled; "live" keeps heartbeating */
    assert_int_equal(beat(r, 0, "w3", "job.a", 0, 0, 0, 0), 1);
    assert_int_equal(beat(r, 0, "w10", "job.a", 0, 0, 0, 0), 1);
    assert_int_equal(beat(r, 0, "w1", "job.a", 0, 0, 0, 0), 1);
    assert_int_equal(beat(r, 0, "w2", "job.b", 0, 0, 0, 0), 1);
    hs_buf hb;
    assert_int_equal(ref_registry_handshake(r, 5 * SEC, "w0", hs_make(&hb, "w0"), NULL, NULL),
                     CAP_OK); /* handshake only: its window starts at the handshake */
    assert_int_equal(beat(r, 10 * SEC, "live", "job.a", 0, 0, 0, 0), 1);

    int64_t at;
    assert_int_equal(ref_registry_next_expiry(r, &at), 1);
    assert_int_equal(at, grace + 1);

    ref_registry_lost lost[2];
    /* at grace+1 the four from t=0 are lost; only two fit: the smallest ids */
    assert_int_equal(ref_registry_expire(r, grace + 1, lost, 2), 2);
    assert_string_equal(lost[0].worker_id, "w1");
    assert_string_equal(lost[1].worker_id, "w10");
    assert_int_equal(ref_registry_expire(r, grace + 1, lost, 2), 2);
    assert_string_equal(lost[0].worker_id, "w2");
    assert_string_equal(lost[0].pool, "job.b");
    assert_string_equal(lost[1].worker_id, "w3");
    assert_int_equal(ref_registry_expire(r, grace + 1, lost, 2), 0);
    assert_int_equal(ref_registry_count(r), 2);
    assert_int_equal(ref_registry_expire(r, grace + 1, NULL, 0), 0);
    assert_int_equal(ref_registry_expire(r, grace + 1, NULL, 1), CAP_EINVAL);

    /* the handshake-only worker goes at 5 s + grace + 1 */
    assert_int_equal(ref_registry_next_expiry(r, &at), 1);
    assert_int_equal(at, 5 * SEC + grace + 1);
    assert_int_equal(ref_registry_expire(r, 5 * SEC + grace + 1, lost, 2), 1);
    assert_string_equal(lost[0].worker_id, "w0");
    assert_false(lost[0].had_heartbeat);
    assert_string_equal(lost[0].pool, "");
    assert_string_equal(ref_registry_at(r, 0)->worker_id, "live");
    ref_registry_free(r);
}

/* A handshake never refreshes the window of a worker that heartbeats. */
static void test_handshake_does_not_refresh_liveness(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    assert_int_equal(beat(r, 0, "w1", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    hs_buf hb;
    assert_int_equal(ref_registry_handshake(r, 20 * SEC, NULL, hs_make(&hb, "w1"), NULL, NULL),
                     CAP_OK);
    assert_int_equal(ref_registry_find(r, "w1")->last_seen, 0);
    ref_registry_lost lost[1];
    assert_int_equal(ref_registry_expire(r, 30 * SEC + 1, lost, 1), 1);
    ref_registry_free(r);
}

static void test_time_must_not_go_backwards(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    cap_diag d;
    hb_buf b;
    assert_int_equal(beat(r, 10, "w1", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    assert_int_equal(ref_registry_heartbeat(r, 9, hb_make(&b, "w2", "job.a", 0, 0, 0, 0), &d),
                     CAP_EINVAL);
    assert_string_equal(d.path, "now");
    assert_int_equal(ref_registry_count(r), 1);
    assert_int_equal(beat(r, -1, "w2", "job.a", 0, 0, 0, 0), CAP_EINVAL);
    assert_int_equal(beat(r, 10, "w2", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE); /* equal is fine */
    hs_buf hb;
    assert_int_equal(ref_registry_handshake(r, 5, NULL, hs_make(&hb, "w1"), NULL, NULL),
                     CAP_EINVAL);
    assert_int_equal(ref_registry_expire(r, 5, NULL, 0), CAP_EINVAL);
    job_buf jb;
    ref_sel_request q = {.job = job_make(&jb, "job.a"), .pools = POOL_A, .n_pools = 1};
    ref_sel_result res;
    assert_int_equal(ref_registry_select(r, 9, &q, &res), CAP_EINVAL);
    assert_int_equal(ref_registry_select(r, 10, &q, &res), CAP_OK);
    ref_registry_free(r);
}

/* ---- selection ---------------------------------------------------------------- */

static void test_least_loaded_and_tie_break(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    /* scores: wE 3.0, wD 1.0 (active 1), wC 1.0 (0 + 0.5 + 0.5), wB 2.2 */
    assert_true(beat(r, 0, "wE", "job.a", 3, 0, 0, 0) >= 0);
    assert_true(beat(r, 0, "wD", "job.a", 1, 0, 0, 0) >= 0);
    assert_true(beat(r, 0, "wC", "job.a", 0, 0, 50.0f, 50.0f) >= 0);
    assert_true(beat(r, 0, "wB", "job.a", 2, 0, 20.0f, 0) >= 0);
    assert_true(beat(r, 0, "wA", "job.b", 0, 0, 0, 0) >= 0); /* another pool */
    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    ref_sel_result res = pick(r, 1, job);
    assert_int_equal(res.outcome, REF_SEL_OK);
    assert_string_equal(res.worker_id, "wC"); /* tie at 1.0 with wD: smaller id */
    assert_string_equal(res.pool, "job.a");
    assert_true(res.score == 1.0);
    assert_false(res.preferred);
    assert_int_equal(res.n_workers, 5);
    assert_int_equal(res.n_candidates, 4);
    assert_int_equal(res.filtered[REF_SEL_POOL], 1);

    /* the same scores, arriving in the opposite order, give the same pick */
    ref_registry *r2 = reg_new(NULL);
    assert_true(beat(r2, 0, "wA", "job.b", 0, 0, 0, 0) >= 0);
    assert_true(beat(r2, 0, "wB", "job.a", 2, 0, 20.0f, 0) >= 0);
    assert_true(beat(r2, 0, "wC", "job.a", 0, 0, 50.0f, 50.0f) >= 0);
    assert_true(beat(r2, 0, "wD", "job.a", 1, 0, 0, 0) >= 0);
    assert_true(beat(r2, 0, "wE", "job.a", 3, 0, 0, 0) >= 0);
    ref_sel_result res2 = pick(r2, 1, job);
    assert_string_equal(res2.worker_id, "wC");
    assert_memory_equal(res.filtered, res2.filtered, sizeof res.filtered);

    /* wC gets busier: wD now wins alone */
    assert_true(beat(r, 2, "wC", "job.a", 1, 0, 50.0f, 50.0f) >= 0);
    res = pick(r, 2, job);
    assert_string_equal(res.worker_id, "wD");

    /* two pools allowed: wA (job.b, score 0) wins */
    static const char *const both[] = {"job.a", "job.b"};
    ref_sel_request q = {.job = job, .pools = both, .n_pools = 2};
    assert_int_equal(ref_registry_select(r, 2, &q, &res), CAP_OK);
    assert_string_equal(res.worker_id, "wA");
    assert_string_equal(res.pool, "job.b");
    ref_registry_free(r);
    ref_registry_free(r2);
}

/* id_by_tag: a chosen worker with a tag is named by the tag alone (no
 * worker_id); one without a tag, or a request without the flag, gets its
 * id; the choice is the same either way. */
static void test_id_by_tag(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    assert_true(beat(r, 0, "w1", "job.a", 0, 0, 0, 0) >= 0);
    assert_true(beat(r, 0, "w2", "job.a", 1, 0, 0, 0) >= 0);
    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    for (int first_fit = 0; first_fit < 2; first_fit++) {
        ref_sel_request q = {.job = job, .pools = POOL_A, .n_pools = 1,
                             .first_fit = first_fit, .id_by_tag = 1};
        ref_sel_result res;
        assert_int_equal(ref_registry_select(r, 1, &q, &res), CAP_OK);
        assert_int_equal(res.outcome, REF_SEL_OK);
        assert_string_equal(res.worker_id, "w1"); /* no tag yet: named by id */
        assert_null(res.tag);
        static int mark;
        ref_registry_set_inflight_memo(r, "w1", NULL, 0, &mark);
        assert_int_equal(ref_registry_select(r, 1, &q, &res), CAP_OK);
        assert_int_equal(res.outcome, REF_SEL_OK);
        assert_string_equal(res.worker_id, "");
        assert_ptr_equal(res.tag, &mark);
        assert_string_equal(res.pool, "job.a");
        q.id_by_tag = 0;
        assert_int_equal(ref_registry_select(r, 1, &q, &res), CAP_OK);
        assert_string_equal(res.worker_id, "w1");
        assert_ptr_equal(res.tag, &mark);
        ref_registry_set_inflight_memo(r, "w1", NULL, 0, NULL);
    }
    ref_registry_free(r);
}

/* A worker's pool follows its latest heartbeat; a pool no worker names any
 * more (its last worker moved, was removed or expired) matches nobody, and
 * matches again once a worker names it; the first fit and the full scan
 * agree; a pool list longer than the registry looks up at once is matched
 * as strings, with the same answer. */
static void test_pool_moves_and_returns(void **state)
{
    (void)state;
    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    static const char *const pool_b[] = {"job.b"};
    static const char *const pool_c[] = {"job.c"};
    /* a pool name longer than a map's inline key, to cover both kinds */
    static const char *const pool_long[] = {"job.a-pool-with-a-long-name"};
    ref_sel_result res;
    for (int first_fit = 0; first_fit < 2; first_fit++) {
        ref_registry *r = reg_new(NULL);
        assert_true(beat(r, 0, "w1", "job.a", 0, 0, 0, 0) >= 0);
        assert_true(beat(r, 0, "w2", "job.a", 1, 0, 0, 0) >= 0);
        assert_true(beat(r, 0, "w3", pool_long[0], 0, 0, 0, 0) >= 0);
        ref_sel_request qa = {.job = job, .pools = POOL_A, .n_pools = 1, .first_fit = first_fit};
        ref_sel_request qb = {.job = job, .pools = pool_b, .n_pools = 1, .first_fit = first_fit};
        ref_sel_request qc = {.job = job, .pools = pool_c, .n_pools = 1, .first_fit = first_fit};
        ref_sel_request ql = {.job = job, .pools = pool_long, .n_pools = 1,
                              .first_fit = first_fit};
        assert_int_equal(ref_registry_select(r, 1, &qa, &res), CAP_OK);
        assert_string_equal(res.worker_id, "w1");
        assert_int_equal(ref_registry_select(r, 1, &ql, &res), CAP_OK);
        assert_string_equal(res.worker_id, "w3");
        assert_string_equal(res.pool, pool_long[0]);
        /* w1 moves to job.b: job.a is w2's alone, job.b is w1's */
        assert_true(beat(r, 1, "w1", "job.b", 0, 0, 0, 0) >= 0);
        assert_string_equal(ref_registry_find(r, "w1")->pool, "job.b");
        assert_int_equal(ref_registry_select(r, 1, &qa, &res), CAP_OK);
        assert_string_equal(res.worker_id, "w2");
        assert_string_equal(res.pool, "job.a");
        assert_int_equal(ref_registry_select(r, 1, &qb, &res), CAP_OK);
        assert_string_equal(res.worker_id, "w1");
        assert_string_equal(res.pool, "job.b");
        /* w2 moves too: nobody names job.a */
        assert_true(beat(r, 2, "w2", "job.b", 1, 0, 0, 0) >= 0);
        assert_int_equal(ref_registry_select(r, 2, &qa, &res), CAP_OK);
        assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
        assert_int_equal(res.filtered[REF_SEL_POOL], 3);
        /* a name never seen matches nobody either */
        assert_int_equal(ref_registry_select(r, 2, &qc, &res), CAP_OK);
        assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
        assert_int_equal(res.filtered[REF_SEL_POOL], 3);
        /* w3 (the only one on the long name) leaves; the name is gone */
        assert_int_equal(ref_registry_remove(r, "w3"), 1);
        assert_int_equal(ref_registry_select(r, 2, &ql, &res), CAP_OK);
        assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
        /* job.a comes back with a new worker */
        assert_true(beat(r, 3, "w4", "job.a", 0, 0, 0, 0) >= 0);
        assert_int_equal(ref_registry_select(r, 3, &qa, &res), CAP_OK);
        assert_string_equal(res.worker_id, "w4");
        /* every worker expires, then all come back for the next round */
        ref_registry_lost lost[8];
        assert_int_equal(ref_registry_expire(r, 3 + 31 * SEC, lost, 8), 3);
        assert_string_equal(lost[0].pool, "job.b"); /* w1 */
        assert_string_equal(lost[2].pool, "job.a"); /* w4 */
        assert_int_equal(ref_registry_select(r, 3 + 31 * SEC, &qb, &res), CAP_OK);
        assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
        ref_registry_free(r);
    }

    /* more pools than are looked up at once: matched as strings */
    ref_registry *r = reg_new(NULL);
    assert_true(beat(r, 0, "w1", "p17", 0, 0, 0, 0) >= 0);
    assert_true(beat(r, 0, "w2", "p03", 1, 0, 0, 0) >= 0);
    const char *many[20];
    char names[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "p%02d", i);
        many[i] = names[i];
    }
    for (size_t n = 16; n <= 20; n++) {
        ref_sel_request q = {.job = job, .pools = many, .n_pools = n, .first_fit = 1};
        assert_int_equal(ref_registry_select(r, 1, &q, &res), CAP_OK);
        assert_int_equal(res.outcome, REF_SEL_OK);
        assert_string_equal(res.worker_id, n > 17 ? "w1" : "w2"); /* p17 is the 18th */
    }
    ref_registry_free(r);
}

static void test_overload_rule(void **state)
{
    (void)state;
    static const struct {
        int active, max;
        float cpu, gpu;
        int over;
    } t[] = {
        {9, 10, 0, 0, 1},      /* 9/10 = 0.9 */
        {8, 10, 0, 0, 0},      /* 0.8 */
        {10, 10, 0, 0, 1},
        {17, 19, 0, 0, 0},     /* 0.8947 */
        {18, 20, 0, 0, 1},     /* 0.9 exactly */
        {100, 0, 0, 0, 0},     /* no declared limit: the ratio rule is off */
        {0, 0, 90.0f, 0, 1},   /* cpu >= 90 */
        {0, 0, 89.99f, 0, 0},
        {0, 0, 0, 90.0f, 1},   /* gpu >= 90 */
        {0, 0, 0, 89.9f, 0},
        {0, 1, 0, 0, 0},
        {1, 1, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        ref_registry *r = reg_new(NULL);
        assert_true(beat(r, 0, "w", "job.a", t[i].active, t[i].max, t[i].cpu, t[i].gpu) >= 0);
        if (ref_registry_overloaded(ref_registry_find(r, "w")) != t[i].over)
            fail_msg("case %zu: active %d max %d cpu %g gpu %g: want overloaded=%d", i,
                     t[i].active, t[i].max, (double)t[i].cpu, (double)t[i].gpu, t[i].over);
        ref_registry_free(r);
    }

    /* the least-loaded worker is overloaded (cpu 95, score 0.95): the next wins */
    ref_registry *r = reg_new(NULL);
    assert_true(beat(r, 0, "w1", "job.a", 0, 4, 95.0f, 0) >= 0);
    assert_true(beat(r, 0, "w2", "job.a", 2, 4, 0, 0) >= 0);
    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    ref_sel_result res = pick(r, 0, job);
    assert_string_equal(res.worker_id, "w2");
    assert_int_equal(res.filtered[REF_SEL_OVERLOADED], 1);
    /* everyone overloaded: ALL_OVERLOADED, error 201 */
    assert_true(beat(r, 0, "w2", "job.a", 4, 4, 0, 0) >= 0);
    res = pick(r, 0, job);
    assert_int_equal(res.outcome, REF_SEL_ALL_OVERLOADED);
    assert_string_equal(res.worker_id, "");
    assert_int_equal(res.filtered[REF_SEL_OVERLOADED], 2);
    assert_int_equal(ref_sel_outcome_error_code(res.outcome), 201);
    /* an overloaded worker that also fails another filter does not make
     * the outcome "overloaded" */
    ref_registry *r3 = reg_new(NULL);
    assert_true(beat(r3, 0, "w1", "job.a", 4, 4, 0, 0) >= 0);
    job_requires(&jb, "gpu");
    res = pick(r3, 0, job);
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
    assert_int_equal(ref_sel_outcome_error_code(res.outcome), 206);
    ref_registry_free(r3);
    ref_registry_free(r);
}

static void test_requires_matching(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    hb_buf b;
    Cordum__Agent__V1__Heartbeat *hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    hb_cap(&b, "git");
    hb_cap(&b, "Docker");
    assert_true(ref_registry_heartbeat(r, 0, hb, NULL) >= 0);
    hb = hb_make(&b, "w2", "job.a", 5, 0, 0, 0);
    hb_cap(&b, "git");
    assert_true(ref_registry_heartbeat(r, 0, hb, NULL) >= 0);

    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    job_requires(&jb, "GIT");
    ref_sel_result res = pick(r, 0, job);
    assert_string_equal(res.worker_id, "w1"); /* both match; w1 is less loaded */
    job_requires(&jb, "docker"); /* case-insensitive: only w1 has it */
    res = pick(r, 0, job);
    assert_string_equal(res.worker_id, "w1");
    assert_int_equal(res.filtered[REF_SEL_REQUIRES], 1);
    job_requires(&jb, "network-egress"); /* nobody has all three */
    res = pick(r, 0, job);
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
    assert_int_equal(res.filtered[REF_SEL_REQUIRES], 2);

    /* a handshake capability advertised true satisfies a requirement; false does not */
    hs_buf hs;
    Cordum__Agent__V1__Handshake *h = hs_make(&hs, "w2");
    hs_cap(&hs, "network-egress", 1);
    hs_cap(&hs, "docker", 0);
    assert_int_equal(ref_registry_handshake(r, 0, "w2", h, NULL, NULL), CAP_OK);
    res = pick(r, 0, job);
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS); /* w2 lacks docker (false) */
    h = hs_make(&hs, "w2");
    hs_cap(&hs, "network-egress", 1);
    hs_cap(&hs, "DOCKER", 1);
    assert_int_equal(ref_registry_handshake(r, 0, "w2", h, NULL, NULL), CAP_OK);
    res = pick(r, 0, job);
    assert_string_equal(res.worker_id, "w2");
    const ref_worker_info *w2 = ref_registry_find(r, "w2");
    assert_int_equal(w2->n_hs_capabilities, 2); /* true keys only, sorted */
    assert_string_equal(w2->hs_capabilities[0], "DOCKER");
    assert_string_equal(w2->hs_capabilities[1], "network-egress");

    /* cap-tck negotiation/required-capability-filters-dispatch:
     * requiredCapability "vision", workerCapabilities "text,audio" -> reject */
    ref_registry *r2 = reg_new(NULL);
    hb = hb_make(&b, "wrk-1", "job.a", 0, 0, 0, 0);
    hb_cap(&b, "text");
    hb_cap(&b, "audio");
    assert_true(ref_registry_heartbeat(r2, 0, hb, NULL) >= 0);
    job = job_make(&jb, "job.a");
    job_requires(&jb, "vision");
    res = pick(r2, 0, job);
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
    assert_int_equal(res.filtered[REF_SEL_REQUIRES], 1);
    /* and with no requirement it dispatches */
    job = job_make(&jb, "job.a");
    assert_int_equal(pick(r2, 0, job).outcome, REF_SEL_OK);
    /* a job without meta has no requirements */
    jb.job.meta = NULL;
    assert_int_equal(pick(r2, 0, job).outcome, REF_SEL_OK);
    ref_registry_free(r2);
    ref_registry_free(r);
}

static void test_label_matching(void **state)
{
    (void)state;
    assert_true(ref_registry_is_placement_label("env"));
    assert_true(ref_registry_is_placement_label("pool"));
    assert_true(ref_registry_is_placement_label("cordum"));
    static const char *const exempt[] = {"preferred_worker_id", "preferred_pool",
                                         "approval_granted", "approval_snapshot",
                                         "secrets_present", "cordum.bus_msg_id",
                                         "workflow_id", "run_id", "step_id", "node_id",
                                         "worker_id"};
    for (size_t i = 0; i < sizeof exempt / sizeof exempt[0]; i++)
        assert_false(ref_registry_is_placement_label(exempt[i]));
    assert_false(ref_registry_is_placement_label(NULL));

    ref_registry *r = reg_new(NULL);
    hb_buf b;
    Cordum__Agent__V1__Heartbeat *hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    hb_label(&b, "env", "prod");
    hb_label(&b, "zone", "a");
    assert_true(ref_registry_heartbeat(r, 0, hb, NULL) >= 0);
    hb = hb_make(&b, "w2", "job.a", 0, 0, 0, 0);
    hb_label(&b, "env", "staging");
    assert_true(ref_registry_heartbeat(r, 0, hb, NULL) >= 0);
    hb = hb_make(&b, "w3", "job.a", 0, 0, 0, 0); /* no labels */
    assert_true(ref_registry_heartbeat(r, 0, hb, NULL) >= 0);

    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    /* no placement labels: everyone matches; w1 wins the tie */
    job_label(&jb, "workflow_id", "wf-1");
    job_label(&jb, "cordum.bus_msg_id", "x");
    job_label(&jb, "approval_granted", "true");
    ref_sel_result res = pick(r, 0, job);
    assert_string_equal(res.worker_id, "w1");
    assert_int_equal(res.n_candidates, 3);
    /* env=staging: only w2 (w1 differs, w3 lacks the key) */
    job_label(&jb, "env", "staging");
    res = pick(r, 0, job);
    assert_string_equal(res.worker_id, "w2");
    assert_int_equal(res.filtered[REF_SEL_LABELS], 2);
    /* values compare exactly */
    job = job_make(&jb, "job.a");
    job_label(&jb, "env", "Prod");
    res = pick(r, 0, job);
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
    assert_int_equal(res.filtered[REF_SEL_LABELS], 3);
    ref_registry_free(r);
}

static void test_preferred_worker(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    assert_true(beat(r, 0, "w1", "job.a", 0, 4, 0, 0) >= 0);
    assert_true(beat(r, 0, "w2", "job.a", 2, 4, 0, 0) >= 0);
    assert_true(beat(r, 0, "w3", "job.a", 4, 4, 0, 0) >= 0); /* overloaded */
    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    job_label(&jb, "preferred_worker_id", "w2");
    ref_sel_result res = pick(r, 0, job);
    assert_string_equal(res.worker_id, "w2");
    assert_true(res.preferred);
    /* a preferred worker that is not a candidate is passed over */
    jb.le[0].value = (char *)"w3";
    res = pick(r, 0, job);
    assert_string_equal(res.worker_id, "w1");
    assert_false(res.preferred);
    jb.le[0].value = (char *)"nobody";
    assert_string_equal(pick(r, 0, job).worker_id, "w1");
    jb.le[0].value = (char *)"w2";
    static const char *const ex[] = {"w2"};
    ref_sel_request q = {.job = job, .pools = POOL_A, .n_pools = 1, .exclude = ex, .n_exclude = 1};
    assert_int_equal(ref_registry_select(r, 0, &q, &res), CAP_OK);
    assert_string_equal(res.worker_id, "w1");
    assert_false(res.preferred);
    ref_registry_free(r);
}

/* Counts its calls; checks that the record it gets is the registry's own
 * record of that worker. */
typedef struct {
    const ref_registry *r;
    int calls;
} exclude_probe;

static int exclude_w1(void *ctx, const ref_worker_info *w)
{
    exclude_probe *e = ctx;
    e->calls++;
    assert_non_null(w);
    assert_ptr_equal(w, ref_registry_find(e->r, w->worker_id));
    return strcmp(w->worker_id, "w1") == 0;
}

static void test_exclusion_set(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    assert_true(beat(r, 0, "w1", "job.a", 0, 0, 0, 0) >= 0);
    assert_true(beat(r, 0, "w2", "job.a", 1, 0, 0, 0) >= 0);
    assert_true(beat(r, 0, "w3", "job.a", 2, 0, 0, 0) >= 0);
    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    static const char *const ex[] = {"w2", "w1"};
    ref_sel_request q = {.job = job, .pools = POOL_A, .n_pools = 1, .exclude = ex, .n_exclude = 2};
    ref_sel_result res;
    assert_int_equal(ref_registry_select(r, 0, &q, &res), CAP_OK);
    assert_string_equal(res.worker_id, "w3");
    assert_int_equal(res.filtered[REF_SEL_EXCLUDED], 2);
    /* predicate form */
    exclude_probe calls = {r, 0};
    ref_sel_request q2 = {.job = job, .pools = POOL_A, .n_pools = 1, .exclude_fn = exclude_w1,
                          .exclude_ctx = &calls};
    assert_int_equal(ref_registry_select(r, 0, &q2, &res), CAP_OK);
    assert_string_equal(res.worker_id, "w2");
    assert_int_equal(calls.calls, 3);
    /* everyone excluded */
    static const char *const all[] = {"w1", "w2", "w3"};
    q.exclude = all;
    q.n_exclude = 3;
    assert_int_equal(ref_registry_select(r, 0, &q, &res), CAP_OK);
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
    assert_int_equal(res.n_candidates, 0);
    ref_registry_free(r);
}

static void test_select_arguments(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    ref_sel_result res;
    ref_sel_request q = {.job = job, .pools = POOL_A, .n_pools = 1};
    assert_int_equal(ref_registry_select(r, 0, &q, &res), CAP_OK);
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS); /* empty registry */
    assert_int_equal(res.n_workers, 0);
    q.n_pools = 0;
    assert_int_equal(ref_registry_select(r, 0, &q, &res), CAP_EINVAL);
    static const char *const empty_pool[] = {""};
    q.pools = empty_pool;
    q.n_pools = 1;
    assert_int_equal(ref_registry_select(r, 0, &q, &res), CAP_EINVAL);
    q.pools = POOL_A;
    q.job = NULL;
    assert_int_equal(ref_registry_select(r, 0, &q, &res), CAP_EINVAL);
    q.job = job;
    q.n_exclude = 1;
    assert_int_equal(ref_registry_select(r, 0, &q, &res), CAP_EINVAL);
    q.n_exclude = 0;
    assert_int_equal(ref_registry_select(r, 0, &q, NULL), CAP_EINVAL);
    assert_int_equal(ref_registry_select(NULL, 0, &q, &res), CAP_EINVAL);
    assert_int_equal(ref_registry_select(r, 0, NULL, &res), CAP_EINVAL);
    ref_registry_free(r);
}

/* ---- handshake -------------------------------------------------------------- */

static void test_version_negotiation(void **state)
{
    (void)state;
    int32_t v = -1;
    /* cap-tck negotiation/selects-highest-common-version */
    static const int32_t cp123[] = {1, 2, 3}, w23[] = {2, 3};
    assert_int_equal(ref_registry_negotiate(cp123, 3, w23, 2, &v), CAP_OK);
    assert_int_equal(v, 3);
    /* cap-tck negotiation/rejects-when-no-common-version */
    static const int32_t cp3[] = {3}, w12[] = {1, 2};
    assert_int_equal(ref_registry_negotiate(cp3, 1, w12, 2, &v), CAP_EVERSION);
    assert_int_equal(v, 0);
    assert_int_equal(cap_err_protocol_code(CAP_EVERSION), 100);
    /* order and repeats do not matter; non-positive never matches */
    static const int32_t a[] = {2, 7, 5, 1}, b[] = {5, 1, 5, 9, 2, 0, -7};
    assert_int_equal(ref_registry_negotiate(a, 4, b, 7, &v), CAP_OK);
    assert_int_equal(v, 5);
    assert_int_equal(ref_registry_negotiate(b, 7, a, 4, &v), CAP_OK);
    assert_int_equal(v, 5);
    static const int32_t z[] = {0, -1};
    assert_int_equal(ref_registry_negotiate(z, 2, z, 2, &v), CAP_EVERSION);
    assert_int_equal(ref_registry_negotiate(a, 4, NULL, 0, &v), CAP_EVERSION);
    assert_int_equal(ref_registry_negotiate(NULL, 0, a, 4, NULL), CAP_EVERSION);

    /* through the registry: control plane speaks 1,2,3 */
    ref_registry_config cfg = ref_registry_config_default();
    cfg.versions = cp123;
    cfg.n_versions = 3;
    ref_registry *r = reg_new(&cfg);
    hs_buf hb;
    Cordum__Agent__V1__Handshake *h = hs_make(&hb, "w1");
    hs_version(&hb, 2);
    hs_version(&hb, 3);
    assert_int_equal(ref_registry_handshake(r, 0, "w1", h, &v, NULL), CAP_OK);
    assert_int_equal(v, 3);
    assert_int_equal(ref_registry_find(r, "w1")->version, 3);
    /* an empty supported_versions is read as {1} */
    h = hs_make(&hb, "w2");
    assert_int_equal(ref_registry_handshake(r, 0, "w2", h, &v, NULL), CAP_OK);
    assert_int_equal(v, 1);
    ref_registry_free(r);

    /* control plane speaks only 3; worker 1,2: recorded, never selected */
    cfg.versions = cp3;
    cfg.n_versions = 1;
    r = reg_new(&cfg);
    cap_diag d;
    h = hs_make(&hb, "w1");
    hs_version(&hb, 1);
    hs_version(&hb, 2);
    assert_int_equal(ref_registry_handshake(r, 0, "w1", h, &v, &d), CAP_EVERSION);
    assert_int_equal(v, 0);
    assert_string_equal(d.path, "Handshake.supported_versions");
    const ref_worker_info *w = ref_registry_find(r, "w1");
    assert_non_null(w);
    assert_true(w->has_handshake);
    assert_int_equal(w->version, 0);
    assert_true(beat(r, 0, "w1", "job.a", 0, 0, 0, 0) >= 0);
    job_buf jb;
    Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a");
    ref_sel_result res = pick(r, 0, job);
    assert_int_equal(res.outcome, REF_SEL_VERSION_MISMATCH);
    assert_int_equal(res.filtered[REF_SEL_VERSION], 1);
    assert_int_equal(ref_sel_outcome_error_code(res.outcome), 100);
    /* a worker without a handshake is assumed to speak 1: not ours either */
    assert_true(beat(r, 0, "w2", "job.a", 0, 0, 0, 0) >= 0);
    res = pick(r, 0, job);
    assert_int_equal(res.outcome, REF_SEL_VERSION_MISMATCH);
    assert_int_equal(res.filtered[REF_SEL_VERSION], 2);
    /* a new handshake with a common version fixes w1 */
    h = hs_make(&hb, "w1");
    hs_version(&hb, 3);
    assert_int_equal(ref_registry_handshake(r, 0, "w1", h, &v, NULL), CAP_OK);
    res = pick(r, 0, job);
    assert_string_equal(res.worker_id, "w1");
    ref_registry_free(r);

    /* default registry speaks {1}: a worker with no handshake is fine */
    r = reg_new(NULL);
    assert_true(beat(r, 0, "w1", "job.a", 0, 0, 0, 0) >= 0);
    assert_int_equal(pick(r, 0, job).outcome, REF_SEL_OK);
    ref_registry_free(r);
}

/* A worker's reports are kept in one block per kind: a smaller or equal
 * report is built in the block it replaces, a larger one in a new block.
 * Every field follows each report whichever happened, while other workers
 * come and go around it (run under ASan, a field left pointing at a freed
 * or rewritten block is caught). */
static void test_reports_rebuilt_in_place_or_anew(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    char big[600];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    static const char *const pools[] = {"job.a", "job.bb", "job.a", "job.cccccccc"};
    static const char *const memos[] = {"m1", "", NULL, "m4"};
    for (int round = 0; round < 4; round++) {
        hb_buf b;
        Cordum__Agent__V1__Heartbeat *hb = hb_make(&b, "w5", pools[round], round, 4, 0, 0);
        hb->last_memo = (char *)(memos[round] ? memos[round] : big);
        for (int k = 0; k < (round == 1 ? 3 : 1); k++)
            hb_cap(&b, k ? "docker" : "git");
        hb_label(&b, "zone", round % 2 ? "b" : "a");
        if (round == 3)
            hb_label(&b, "env", "prod");
        assert_true(ref_registry_heartbeat(r, (int64_t)round * SEC, hb, NULL) >= 0);
        /* a new worker sorts before w5 and moves its slot */
        char other[16];
        snprintf(other, sizeof other, "w%d", round);
        assert_true(beat(r, (int64_t)round * SEC, other, "job.a", 0, 1, 0, 0) >= 0);

        hs_buf hb2;
        Cordum__Agent__V1__Handshake *h = hs_make(&hb2, "w5");
        hs_version(&hb2, 1);
        for (int k = 0; k <= (round == 1 ? 3 : round % 2); k++)
            hs_topic(&hb2, k ? "pool.long-topic-name" : "pool.a");
        assert_int_equal(ref_registry_handshake(r, (int64_t)round * SEC, "w5", h, NULL, NULL),
                         CAP_OK);

        const ref_worker_info *w = ref_registry_find(r, "w5");
        assert_non_null(w);
        assert_string_equal(w->pool, pools[round]);
        assert_string_equal(w->last_memo, memos[round] ? memos[round] : big);
        assert_int_equal(w->active_jobs, round);
        assert_int_equal(w->n_capabilities, round == 1 ? 3 : 1);
        assert_string_equal(w->capabilities[0], "git");
        assert_int_equal(w->n_labels, round == 3 ? 2 : 1);
        assert_string_equal(w->labels[w->n_labels - 1].key, "zone");
        assert_string_equal(w->labels[w->n_labels - 1].value, round % 2 ? "b" : "a");
        assert_int_equal(w->n_ready_topics, (size_t)(round == 1 ? 4 : round % 2 + 1));
        assert_string_equal(w->ready_topics[0], "pool.a");
        assert_string_equal(w->ready_topics[w->n_ready_topics - 1],
                            w->n_ready_topics > 1 ? "pool.long-topic-name" : "pool.a");
    }
    assert_int_equal(ref_registry_count(r), 5);
    ref_registry_free(r);
}

static void test_ready_topics(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    assert_true(beat(r, 0, "wrk-1", "job.a", 0, 0, 0, 0) >= 0);
    hs_buf hb;
    Cordum__Agent__V1__Handshake *h = hs_make(&hb, "wrk-1");
    hs_version(&hb, 1);
    hs_topic(&hb, "pool.a");
    hs_topic(&hb, "pool.b");
    assert_int_equal(ref_registry_handshake(r, 0, "wrk-1", h, NULL, NULL), CAP_OK);
    const ref_worker_info *w = ref_registry_find(r, "wrk-1");
    assert_int_equal(w->n_ready_topics, 2);
    assert_string_equal(w->ready_topics[0], "pool.a");
    assert_string_equal(w->ready_topics[1], "pool.b");

    /* cap-tck negotiation/ready-topics-filters-dispatch */
    job_buf jb;
    ref_sel_result res = pick(r, 0, job_make(&jb, "pool.z"));
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
    assert_int_equal(res.filtered[REF_SEL_TOPIC], 1);
    res = pick(r, 0, job_make(&jb, "pool.b"));
    assert_string_equal(res.worker_id, "wrk-1");
    /* a job without a topic is not filtered on topics */
    assert_int_equal(pick(r, 0, job_make(&jb, "")).outcome, REF_SEL_OK);

    /* cap-tck negotiation/missing-ready-topics-is-unspecified-not-error */
    h = hs_make(&hb, "wrk-1");
    hs_version(&hb, 1);
    assert_int_equal(ref_registry_handshake(r, 0, "wrk-1", h, NULL, NULL), CAP_OK);
    res = pick(r, 0, job_make(&jb, "pool.a"));
    assert_int_equal(res.outcome, REF_SEL_OK);
    assert_int_equal(res.filtered[REF_SEL_TOPIC], 0);
    ref_registry_free(r);

    /* filtering switched off in the config */
    ref_registry_config cfg = ref_registry_config_default();
    cfg.filter_ready_topics = 0;
    r = reg_new(&cfg);
    assert_true(beat(r, 0, "wrk-1", "job.a", 0, 0, 0, 0) >= 0);
    h = hs_make(&hb, "wrk-1");
    hs_topic(&hb, "pool.a");
    assert_int_equal(ref_registry_handshake(r, 0, "wrk-1", h, NULL, NULL), CAP_OK);
    assert_int_equal(pick(r, 0, job_make(&jb, "pool.z")).outcome, REF_SEL_OK);
    ref_registry_free(r);
}

static void test_handshake_validation_and_effects(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    hs_buf hb;
    cap_diag d;
    int32_t v = 7;
    Cordum__Agent__V1__Handshake *h = hs_make(&hb, "w1");
    h->role = CORDUM__AGENT__V1__COMPONENT_ROLE__COMPONENT_ROLE_SCHEDULER;
    assert_int_equal(ref_registry_handshake(r, 0, "w1", h, &v, &d), CAP_EINVAL);
    assert_string_equal(d.path, "Handshake.role");
    assert_int_equal(v, 0);
    h->role = CORDUM__AGENT__V1__COMPONENT_ROLE__COMPONENT_ROLE_WORKER;
    assert_int_equal(ref_registry_handshake(r, 0, "someone-else", h, NULL, &d), CAP_EINVAL);
    assert_string_equal(d.path, "Handshake.component_id");
    h->component_id = (char *)"";
    assert_int_equal(ref_registry_handshake(r, 0, NULL, h, NULL, &d), CAP_EINVAL);
    assert_int_equal(ref_registry_handshake(r, 0, NULL, NULL, NULL, &d), CAP_EINVAL);
    assert_int_equal(ref_registry_count(r), 0);

    /* a handshake alone registers the worker but never makes it selectable */
    h = hs_make(&hb, "w1");
    h->sdk_version = (char *)"2.0.19";
    assert_int_equal(ref_registry_handshake(r, 3, "w1", h, &v, NULL), CAP_OK);
    assert_int_equal(v, 1);
    const ref_worker_info *w = ref_registry_find(r, "w1");
    assert_false(w->has_heartbeat);
    assert_true(w->has_handshake);
    assert_string_equal(w->sdk_version, "2.0.19");
    assert_string_equal(w->pool, "");
    assert_int_equal(w->last_seen, 3);
    assert_false(ref_registry_overloaded(w));
    job_buf jb;
    ref_sel_result res = pick(r, 3, job_make(&jb, "job.a"));
    assert_int_equal(res.outcome, REF_SEL_NO_WORKERS);
    assert_int_equal(res.filtered[REF_SEL_POOL], 1);
    /* its first heartbeat brings it online, keeping the handshake */
    assert_int_equal(beat(r, 4, "w1", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    w = ref_registry_find(r, "w1");
    assert_true(w->has_handshake);
    assert_string_equal(w->sdk_version, "2.0.19");
    assert_string_equal(pick(r, 4, job_make(&jb, "job.a")).worker_id, "w1");
    ref_registry_free(r);
}

/* ---- bounds --------------------------------------------------------------- */

static void test_registry_full(void **state)
{
    (void)state;
    ref_registry_config cfg = ref_registry_config_default();
    cfg.max_workers = 2;
    ref_registry *r = reg_new(&cfg);
    assert_int_equal(ref_registry_max(r), 2);
    assert_int_equal(beat(r, 0, "w1", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    assert_int_equal(beat(r, 0, "w2", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    hb_buf b;
    cap_diag d;
    assert_int_equal(ref_registry_heartbeat(r, 0, hb_make(&b, "w3", "job.a", 0, 0, 0, 0), &d),
                     CAP_EFULL);
    assert_non_null(strstr(d.reason, "full"));
    assert_non_null(strstr(d.reason, "w3"));
    hs_buf hb;
    assert_int_equal(ref_registry_handshake(r, 0, "w3", hs_make(&hb, "w3"), NULL, NULL),
                     CAP_EFULL);
    assert_int_equal(ref_registry_count(r), 2);
    assert_null(ref_registry_find(r, "w3"));
    /* known workers still update while full */
    assert_int_equal(beat(r, 1, "w2", "job.a", 1, 0, 0, 0), REF_REGISTRY_UPDATED);
    assert_int_equal(ref_registry_handshake(r, 1, "w2", hs_make(&hb, "w2"), NULL, NULL), CAP_OK);
    /* room again after a removal */
    assert_int_equal(ref_registry_remove(r, "w1"), 1);
    assert_int_equal(beat(r, 1, "w3", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    ref_registry_free(r);

    /* many workers: the array grows past its first allocation */
    cfg.max_workers = 100;
    r = reg_new(&cfg);
    char id[16];
    for (int i = 99; i >= 0; i--) {
        snprintf(id, sizeof id, "w%03d", i);
        assert_int_equal(beat(r, 0, id, "job.a", i % 7, 0, 0, 0), REF_REGISTRY_ONLINE);
    }
    assert_int_equal(beat(r, 0, "w100", "job.a", 0, 0, 0, 0), CAP_EFULL);
    for (size_t i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "w%03zu", i);
        assert_string_equal(ref_registry_at(r, i)->worker_id, id);
    }
    job_buf jb;
    assert_string_equal(pick(r, 0, job_make(&jb, "job.a")).worker_id, "w000");
    ref_registry_free(r);
}

/* A refused heartbeat changes nothing. */
static void expect_refused(ref_registry *r, Cordum__Agent__V1__Heartbeat *hb, const char *path)
{
    cap_diag d;
    cap_diag_clear(&d);
    int rc = ref_registry_heartbeat(r, 1, hb, &d);
    if (rc != CAP_EINVAL)
        fail_msg("%s: got %d, want CAP_EINVAL", path, rc);
    if (strncmp(d.path, path, strlen(path)) != 0)
        fail_msg("diag path \"%s\", want \"%s\" (%s)", d.path, path, d.reason);
    const ref_worker_info *w = ref_registry_find(r, "w1");
    assert_int_equal(ref_registry_count(r), 1);
    assert_int_equal(w->last_seen, 0);
    assert_string_equal(w->pool, "job.a");
}

static void test_heartbeat_bounds_and_values(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    assert_int_equal(beat(r, 0, "w1", "job.a", 0, 0, 0, 0), REF_REGISTRY_ONLINE);
    hb_buf b;
    char big[REF_REGISTRY_MEMO_MAX + 2];

    /* ids: 255 bytes fit, 256 do not */
    memset(big, 'i', REF_REGISTRY_ID_MAX);
    big[REF_REGISTRY_ID_MAX] = '\0';
    assert_int_equal(ref_registry_heartbeat(r, 0, hb_make(&b, big, "job.a", 0, 0, 0, 0), NULL),
                     REF_REGISTRY_ONLINE);
    assert_int_equal(ref_registry_remove(r, big), 1);
    memset(big, 'i', REF_REGISTRY_ID_MAX + 1);
    big[REF_REGISTRY_ID_MAX + 1] = '\0';
    expect_refused(r, hb_make(&b, big, "job.a", 0, 0, 0, 0), "Heartbeat.worker_id");
    expect_refused(r, hb_make(&b, "w1", big, 0, 0, 0, 0), "Heartbeat.pool");
    expect_refused(r, hb_make(&b, "", "job.a", 0, 0, 0, 0), "Heartbeat.worker_id");
    expect_refused(r, hb_make(&b, NULL, "job.a", 0, 0, 0, 0), "Heartbeat.worker_id");
    expect_refused(r, hb_make(&b, "w1", "", 0, 0, 0, 0), "Heartbeat.pool");

    /* last_memo: 1024 fit, 1025 do not */
    Cordum__Agent__V1__Heartbeat *hb = hb_make(&b, "w9", "job.a", 0, 0, 0, 0);
    memset(big, 'm', REF_REGISTRY_MEMO_MAX);
    big[REF_REGISTRY_MEMO_MAX] = '\0';
    hb->last_memo = big;
    assert_int_equal(ref_registry_heartbeat(r, 0, hb, NULL), REF_REGISTRY_ONLINE);
    assert_int_equal(strlen(ref_registry_find(r, "w9")->last_memo), REF_REGISTRY_MEMO_MAX);
    assert_int_equal(ref_registry_remove(r, "w9"), 1);
    hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    big[REF_REGISTRY_MEMO_MAX] = 'm';
    big[REF_REGISTRY_MEMO_MAX + 1] = '\0';
    hb->last_memo = big;
    expect_refused(r, hb, "Heartbeat.last_memo");

    /* label values and capabilities: 256 bytes */
    big[REF_REGISTRY_STR_MAX + 1] = '\0';
    hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    hb_label(&b, "k", big);
    expect_refused(r, hb, "Heartbeat.labels[0].value");
    hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    hb_label(&b, "ok", "v");
    hb_label(&b, big, "v");
    expect_refused(r, hb, "Heartbeat.labels[1].key");
    hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    hb_cap(&b, big);
    expect_refused(r, hb, "Heartbeat.capabilities[0]");
    hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    hb->region = big;
    expect_refused(r, hb, "Heartbeat.region");

    /* list lengths: 64 fit, 65 do not */
    static char names[REF_REGISTRY_LIST_MAX + 1][16];
    hb = hb_make(&b, "w8", "job.a", 0, 0, 0, 0);
    for (int i = 0; i < REF_REGISTRY_LIST_MAX; i++) {
        snprintf(names[i], sizeof names[i], "k%02d", i);
        hb_label(&b, names[i], "v");
        hb_cap(&b, names[i]);
    }
    assert_int_equal(ref_registry_heartbeat(r, 0, hb, NULL), REF_REGISTRY_ONLINE);
    assert_int_equal(ref_registry_find(r, "w8")->n_labels, REF_REGISTRY_LIST_MAX);
    assert_int_equal(ref_registry_remove(r, "w8"), 1);
    hb->worker_id = (char *)"w1";
    snprintf(names[REF_REGISTRY_LIST_MAX], sizeof names[0], "k%02d", REF_REGISTRY_LIST_MAX);
    hb_label(&b, names[REF_REGISTRY_LIST_MAX], "v");
    expect_refused(r, hb, "Heartbeat.labels");
    b.hb.n_labels = 0;
    hb_cap(&b, names[REF_REGISTRY_LIST_MAX]);
    expect_refused(r, hb, "Heartbeat.capabilities");

    /* values */
    expect_refused(r, hb_make(&b, "w1", "job.a", 0, 0, NAN, 0), "Heartbeat.cpu_load");
    expect_refused(r, hb_make(&b, "w1", "job.a", 0, 0, INFINITY, 0), "Heartbeat.cpu_load");
    expect_refused(r, hb_make(&b, "w1", "job.a", 0, 0, -0.5f, 0), "Heartbeat.cpu_load");
    expect_refused(r, hb_make(&b, "w1", "job.a", 0, 0, 100.5f, 0), "Heartbeat.cpu_load");
    expect_refused(r, hb_make(&b, "w1", "job.a", 0, 0, 0, NAN), "Heartbeat.gpu_utilization");
    hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    hb->memory_load = 101.0f;
    expect_refused(r, hb, "Heartbeat.memory_load");
    expect_refused(r, hb_make(&b, "w1", "job.a", -1, 0, 0, 0), "Heartbeat.active_jobs");
    expect_refused(r, hb_make(&b, "w1", "job.a", 0, -1, 0, 0), "Heartbeat.max_parallel_jobs");
    hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    hb->progress_pct = 101;
    expect_refused(r, hb, "Heartbeat.progress_pct");
    hb->progress_pct = -1;
    expect_refused(r, hb, "Heartbeat.progress_pct");
    hb = hb_make(&b, "w1", "job.a", 0, 0, 0, 0);
    hb_label(&b, "k", "v");
    b.lp[0] = NULL;
    expect_refused(r, hb, "Heartbeat.labels[0]");
    /* the edges of the ranges are accepted */
    hb = hb_make(&b, "w1", "job.a", 0, 0, 100.0f, 0);
    hb->progress_pct = 100;
    hb->memory_load = 100.0f;
    assert_int_equal(ref_registry_heartbeat(r, 1, hb, NULL), REF_REGISTRY_UPDATED);
    assert_int_equal(ref_registry_heartbeat(r, 1, NULL, NULL), CAP_EINVAL);
    assert_int_equal(ref_registry_heartbeat(NULL, 1, hb, NULL), CAP_EINVAL);
    ref_registry_free(r);
}

static void test_handshake_bounds(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    hs_buf hb;
    cap_diag d;
    static char names[REF_REGISTRY_LIST_MAX + 1][16];
    Cordum__Agent__V1__Handshake *h = hs_make(&hb, "w1");
    for (int i = 0; i < REF_REGISTRY_VERSIONS_MAX + 1; i++)
        hs_version(&hb, i + 1);
    assert_int_equal(ref_registry_handshake(r, 0, NULL, h, NULL, &d), CAP_EINVAL);
    assert_string_equal(d.path, "Handshake.supported_versions");
    h = hs_make(&hb, "w1");
    for (int i = 0; i < REF_REGISTRY_LIST_MAX + 1; i++) {
        snprintf(names[i], sizeof names[i], "t%02d", i);
        hs_topic(&hb, names[i]);
    }
    assert_int_equal(ref_registry_handshake(r, 0, NULL, h, NULL, &d), CAP_EINVAL);
    assert_string_equal(d.path, "Handshake.ready_topics");
    hb.hs.n_ready_topics = REF_REGISTRY_LIST_MAX; /* exactly at the bound */
    assert_int_equal(ref_registry_handshake(r, 0, NULL, h, NULL, &d), CAP_OK);
    h = hs_make(&hb, "w1");
    for (int i = 0; i < REF_REGISTRY_LIST_MAX + 1; i++)
        hs_cap(&hb, names[i], 1);
    assert_int_equal(ref_registry_handshake(r, 0, NULL, h, NULL, &d), CAP_EINVAL);
    assert_string_equal(d.path, "Handshake.capabilities");
    char big[REF_REGISTRY_STR_MAX + 2];
    memset(big, 's', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    h = hs_make(&hb, "w1");
    h->sdk_version = big;
    assert_int_equal(ref_registry_handshake(r, 0, NULL, h, NULL, &d), CAP_EINVAL);
    assert_string_equal(d.path, "Handshake.sdk_version");
    h = hs_make(&hb, "w1");
    hs_topic(&hb, big);
    assert_int_equal(ref_registry_handshake(r, 0, NULL, h, NULL, &d), CAP_EINVAL);
    assert_string_equal(d.path, "Handshake.ready_topics[0]");
    h = hs_make(&hb, "w1");
    hs_cap(&hb, big, 1);
    assert_int_equal(ref_registry_handshake(r, 0, NULL, h, NULL, &d), CAP_EINVAL);
    assert_string_equal(d.path, "Handshake.capabilities[0].key");
    /* the refused handshakes left the accepted one in place */
    const ref_worker_info *w = ref_registry_find(r, "w1");
    assert_int_equal(w->n_ready_topics, REF_REGISTRY_LIST_MAX);
    assert_string_equal(w->sdk_version, "");
    ref_registry_free(r);
}

static void test_config_check(void **state)
{
    (void)state;
    ref_registry_config c = ref_registry_config_default();
    assert_int_equal(c.max_workers, 1024);
    assert_int_equal(c.heartbeat_interval_ns, 10 * SEC);
    assert_int_equal(c.grace_multiplier, 3);
    assert_true(c.filter_ready_topics);
    cap_diag d;
    assert_int_equal(ref_registry_config_check(&c, &d), CAP_OK);
    c.max_workers = 0;
    assert_int_equal(ref_registry_config_check(&c, &d), CAP_EINVAL);
    assert_string_equal(d.path, "ref_registry_config.max_workers");
    c.max_workers = REF_REGISTRY_MAX_WORKERS_LIMIT + 1;
    assert_int_equal(ref_registry_config_check(&c, &d), CAP_EINVAL);
    c = ref_registry_config_default();
    c.heartbeat_interval_ns = 0;
    assert_int_equal(ref_registry_config_check(&c, &d), CAP_EINVAL);
    c = ref_registry_config_default();
    c.grace_multiplier = 0;
    assert_int_equal(ref_registry_config_check(&c, &d), CAP_EINVAL);
    c = ref_registry_config_default();
    c.heartbeat_interval_ns = INT64_MAX / 2;
    assert_int_equal(ref_registry_config_check(&c, &d), CAP_EINVAL);
    c = ref_registry_config_default();
    static const int32_t bad[] = {1, 0};
    c.versions = bad;
    c.n_versions = 2;
    assert_int_equal(ref_registry_config_check(&c, &d), CAP_EINVAL);
    c.versions = NULL;
    assert_int_equal(ref_registry_config_check(&c, &d), CAP_EINVAL);
    c.n_versions = REF_REGISTRY_VERSIONS_MAX + 1;
    assert_int_equal(ref_registry_config_check(&c, &d), CAP_EINVAL);
    assert_int_equal(ref_registry_config_check(NULL, &d), CAP_EINVAL);
    ref_registry *r = (ref_registry *)&c;
    assert_int_equal(ref_registry_new(&c, &r, &d), CAP_EINVAL);
    assert_null(r);
    assert_int_equal(ref_registry_new(NULL, NULL, &d), CAP_EINVAL);
    ref_registry_free(NULL);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const f[] = {"excluded", "lost", "pool", "version",
                                    "topic", "requires", "labels", "overloaded"};
    for (int i = 0; i < REF_SEL_NFILTERS; i++)
        assert_string_equal(ref_sel_filter_name((ref_sel_filter)i), f[i]);
    assert_string_equal(ref_sel_filter_name(REF_SEL_NFILTERS), "?");
    assert_string_equal(ref_sel_outcome_name(REF_SEL_OK), "ok");
    assert_string_equal(ref_sel_outcome_name(REF_SEL_ALL_OVERLOADED), "all_overloaded");
    assert_string_equal(ref_sel_outcome_name(REF_SEL_VERSION_MISMATCH), "version_mismatch");
    assert_string_equal(ref_sel_outcome_name(REF_SEL_NO_WORKERS), "no_workers");
    assert_string_equal(ref_sel_outcome_name((ref_sel_outcome)42), "?");
    assert_int_equal(ref_sel_outcome_error_code(REF_SEL_OK), 0);
}


/* ---- first fit ---------------------------------------------------------------- */

typedef struct {
    const char *ids[64];
    uint32_t inflight[64];
    int max[64];
    int broken[64]; /* a breaker-like exclusion */
} ff_world;

static int ff_index(const ff_world *fw, const char *id)
{
    for (int i = 0; i < 64; i++)
        if (strcmp(fw->ids[i], id) == 0)
            return i;
    return -1;
}

/* The scheduler's rule: excluded when its breaker refuses or it holds as
 * many of our jobs as it declared it can run. */
static int ff_exclude(void *ctx, const ref_worker_info *w)
{
    const ff_world *fw = ctx;
    int i = ff_index(fw, w->worker_id);
    return i >= 0 && (fw->broken[i] || (fw->max[i] > 0 && fw->inflight[i] >= (uint32_t)fw->max[i]));
}

static uint64_t ff_next(uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return *x >> 33;
}

/* First fit picks exactly the worker (and gives exactly the outcome) of
 * the full scan, through heartbeats that move scores, in-flight counts,
 * exclusions, losses, expiry and re-registration. */
static void test_first_fit_matches_full_scan(void **state)
{
    (void)state;
    static char names[64][16];
    ff_world fw;
    memset(&fw, 0, sizeof fw);
    for (int i = 0; i < 64; i++) {
        snprintf(names[i], sizeof names[i], "w-%d", (i * 37) % 64);
        fw.ids[i] = names[i];
    }
    ref_registry *r = reg_new(NULL);
    uint64_t x = 12345;
    int64_t now = 0;
    int picked = 0, none = 0;
    for (int step = 0; step < 4000; step++) {
        now += (int64_t)(ff_next(&x) % 400) * 1000000; /* up to 0.4 s */
        int i = (int)(ff_next(&x) % 64);
        int what = (int)(ff_next(&x) % 10);
        if (what < 5) {
            hb_buf b;
            int max = (int)(ff_next(&x) % 4);
            Cordum__Agent__V1__Heartbeat *hb =
                hb_make(&b, fw.ids[i], i % 5 ? "job.a" : "job.b", (int)(ff_next(&x) % 4), max,
                        (float)(ff_next(&x) % 4) * 30.0f, 0.0f);
            if (i % 7 == 0)
                hb_label(&b, "zone", (ff_next(&x) & 1) ? "a" : "b");
            assert_true(ref_registry_heartbeat(r, now, hb, NULL) >= 0);
            fw.max[i] = max;
        } else if (what < 7) {
            fw.inflight[i] = (uint32_t)(ff_next(&x) % 4);
            ref_registry_set_inflight(r, fw.ids[i], fw.inflight[i]);
        } else if (what < 8) {
            fw.broken[i] = !fw.broken[i];
        } else if (what < 9) {
            ref_registry_lost lost[64];
            assert_true(ref_registry_expire(r, now, lost, 64) >= 0);
        } else {
            if (ref_registry_remove(r, fw.ids[i]))
                fw.inflight[i] = 0; /* a new registration starts from 0 */
        }
        job_buf jb;
        Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a.x");
        if (step % 3 == 0)
            job_label(&jb, "zone", "a");
        ref_sel_request q = {.job = job, .pools = POOL_A, .n_pools = 1, .exclude_fn = ff_exclude,
                             .exclude_ctx = &fw};
        ref_sel_result full, ff;
        assert_int_equal(ref_registry_select(r, now, &q, &full), CAP_OK);
        q.first_fit = 1;
        assert_int_equal(ref_registry_select(r, now, &q, &ff), CAP_OK);
        assert_int_equal(ff.outcome, full.outcome);
        assert_string_equal(ff.worker_id, full.worker_id);
        assert_string_equal(ff.pool, full.pool);
        assert_true(ff.score == full.score);
        if (full.outcome == REF_SEL_OK)
            picked++;
        else
            none++;
    }
    assert_true(picked > 100); /* both paths were exercised */
    assert_true(none > 100);
    ref_registry_free(r);
}

/* First fit passes over saturated workers (their in-flight count at their
 * declared limit) without reading them, and counts each as EXCLUDED: in
 * runs at the front, between others and to the end of the order. */
static void test_first_fit_counts_saturated_workers(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    static const char *const ids[] = {"s-0", "s-1", "s-2", "s-3", "s-4", "s-5"};
    for (int i = 0; i < 6; i++)
        assert_true(beat(r, 0, ids[i], "job.a", 0, 1, 0.0f, 0.0f) >= 0); /* equal scores: id order */
    job_buf jb;
    ref_sel_request q = {.job = job_make(&jb, "job.a.x"), .pools = POOL_A, .n_pools = 1,
                         .first_fit = 1};
    ref_sel_result ff;
    assert_int_equal(ref_registry_select(r, 0, &q, &ff), CAP_OK);
    assert_string_equal(ff.worker_id, "s-0");
    assert_int_equal(ff.filtered[REF_SEL_EXCLUDED], 0);
    for (int i = 0; i < 3; i++)
        ref_registry_set_inflight(r, ids[i], 1);
    assert_int_equal(ref_registry_select(r, 0, &q, &ff), CAP_OK);
    assert_string_equal(ff.worker_id, "s-3");
    assert_int_equal(ff.filtered[REF_SEL_EXCLUDED], 3);
    /* s-3 is in another pool now: passed over by the filters, then s-4 and
     * s-5 saturated too: no worker, every one counted once */
    assert_true(beat(r, 0, "s-3", "job.b", 0, 1, 0.0f, 0.0f) >= 0);
    ref_registry_set_inflight(r, "s-4", 1);
    ref_registry_set_inflight(r, "s-5", 1);
    assert_int_equal(ref_registry_select(r, 0, &q, &ff), CAP_OK);
    assert_int_equal(ff.outcome, REF_SEL_NO_WORKERS);
    assert_int_equal(ff.filtered[REF_SEL_EXCLUDED], 5);
    assert_int_equal(ff.filtered[REF_SEL_POOL], 1);
    /* one freed between saturated ones is found after the run */
    ref_registry_set_inflight(r, "s-4", 0);
    assert_int_equal(ref_registry_select(r, 0, &q, &ff), CAP_OK);
    assert_string_equal(ff.worker_id, "s-4");
    assert_int_equal(ff.filtered[REF_SEL_EXCLUDED], 3);
    assert_int_equal(ff.filtered[REF_SEL_POOL], 1);
    ref_registry_free(r);
}

/* A worker whose first heartbeat already reports load is put in the
 * first-fit index at its score: first fit stays a short walk (one
 * candidate looked at) instead of falling back to the full scan. */
static void test_first_fit_index_takes_loaded_newcomers(void **state)
{
    (void)state;
    ref_registry *r = reg_new(NULL);
    static const char *const ids[] = {"n-2", "n-0", "n-1"};
    for (int i = 0; i < 3; i++) {
        hb_buf b;
        assert_true(ref_registry_heartbeat(r, 0, hb_make(&b, ids[i], "job.a", 3 - i, 8, 20.0f, 0),
                                           NULL) >= 0);
    }
    job_buf jb;
    ref_sel_request q = {.job = job_make(&jb, "job.a.x"), .pools = POOL_A, .n_pools = 1,
                         .first_fit = 1};
    ref_sel_result ff;
    assert_int_equal(ref_registry_select(r, 0, &q, &ff), CAP_OK);
    assert_int_equal(ff.outcome, REF_SEL_OK);
    assert_string_equal(ff.worker_id, "n-1"); /* the least active */
    assert_int_equal(ff.n_candidates, 1);     /* first fit: the walk stopped there */
    q.first_fit = 0;
    ref_sel_result full;
    assert_int_equal(ref_registry_select(r, 0, &q, &full), CAP_OK);
    assert_string_equal(full.worker_id, "n-1");
    assert_int_equal(full.n_candidates, 3);
    ref_registry_free(r);
}

/* In-flight counts set through memos act exactly as counts set by id, and
 * the tag set with them belongs to the registration: two registries see
 * the same random heartbeats, counts, expiries and removals (which move
 * workers in the registry and end registrations), one told by id, one
 * through a memo per worker; selection must agree, and each worker's tag
 * must be its own from the first count after it registered, NULL before. */
static void test_inflight_memo_and_tag(void **state)
{
    (void)state;
    static char names[48][16];
    static int tags[48]; /* a distinct address per worker */
    ff_world fw;
    memset(&fw, 0, sizeof fw);
    for (int i = 0; i < 48; i++) {
        snprintf(names[i], sizeof names[i], "m-%d", (i * 29) % 48);
        fw.ids[i] = names[i];
    }
    ref_registry *a = reg_new(NULL), *b = reg_new(NULL);
    ref_registry_memo memo[48];
    memset(memo, 0, sizeof memo);
    int tagged[48] = {0};
    uint64_t x = 4242;
    int64_t now = 0;
    int picked = 0, moved = 0, relived = 0;
    for (int step = 0; step < 4000; step++) {
        now += (int64_t)(ff_next(&x) % 400) * 1000000;
        int i = (int)(ff_next(&x) % 48);
        int what = (int)(ff_next(&x) % 10);
        ref_registry_memo before = memo[i];
        if (what < 5) {
            hb_buf hb1, hb2;
            int max = (int)(ff_next(&x) % 4), active = (int)(ff_next(&x) % 4);
            float cpu = (float)(ff_next(&x) % 4) * 30.0f;
            Cordum__Agent__V1__Heartbeat *h1 = hb_make(&hb1, fw.ids[i], "job.a", active, max, cpu, 0);
            Cordum__Agent__V1__Heartbeat *h2 = hb_make(&hb2, fw.ids[i], "job.a", active, max, cpu, 0);
            if (!ref_registry_find(b, fw.ids[i]))
                tagged[i] = 0; /* a new registration */
            void *tag = &tag;
            int ra = ref_registry_heartbeat(a, now, h1, NULL);
            assert_int_equal(ref_registry_heartbeat_tag(b, now, h2, &tag, NULL), ra);
            assert_ptr_equal(tag, tagged[i] ? (void *)&tags[i] : NULL);
        } else if (what < 7) {
            uint32_t n = (uint32_t)(ff_next(&x) % 4);
            ref_registry_set_inflight(a, fw.ids[i], n);
            ref_registry_set_inflight_memo(b, fw.ids[i], &memo[i], n, &tags[i]);
            if (ref_registry_find(b, fw.ids[i])) {
                relived |= before.serial && memo[i].serial != before.serial;
                moved |= before.serial && memo[i].serial == before.serial && memo[i].at != before.at;
                tagged[i] = 1;
            }
        } else if (what < 9) {
            ref_registry_lost la[48], lb[48];
            int na = ref_registry_expire(a, now, la, 48);
            assert_int_equal(ref_registry_expire(b, now, lb, 48), na);
        } else {
            assert_int_equal(ref_registry_remove(a, fw.ids[i]), ref_registry_remove(b, fw.ids[i]));
        }
        for (int k = 0; k < 48; k++) {
            const ref_worker_info *w = ref_registry_find(b, fw.ids[k]);
            if (!w)
                tagged[k] = 0;
            else
                assert_ptr_equal(w->tag, tagged[k] ? (void *)&tags[k] : NULL);
        }
        job_buf jb;
        Cordum__Agent__V1__JobRequest *job = job_make(&jb, "job.a.x");
        ref_sel_request q = {.job = job, .pools = POOL_A, .n_pools = 1, .first_fit = step & 1};
        ref_sel_result ra, rb;
        assert_int_equal(ref_registry_select(a, now, &q, &ra), CAP_OK);
        assert_int_equal(ref_registry_select(b, now, &q, &rb), CAP_OK);
        assert_int_equal(ra.outcome, rb.outcome);
        assert_string_equal(ra.worker_id, rb.worker_id);
        assert_memory_equal(ra.filtered, rb.filtered, sizeof ra.filtered);
        if (rb.outcome == REF_SEL_OK) {
            picked++;
            const ref_worker_info *w = ref_registry_find(b, rb.worker_id);
            assert_ptr_equal(rb.tag, w->tag);
        } else {
            assert_null(rb.tag);
        }
    }
    assert_true(picked > 100);
    assert_true(moved);   /* a memo followed its worker to a new place */
    assert_true(relived); /* and noticed a registration that ended */
    ref_registry_free(a);
    ref_registry_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registration_copies_every_field),
        cmocka_unit_test(test_iteration_is_in_id_order),
        cmocka_unit_test(test_find_follows_arrivals_and_departures),
        cmocka_unit_test(test_loss_exactly_at_the_grace_boundary),
        cmocka_unit_test(test_configured_interval_and_multiplier),
        cmocka_unit_test(test_expire_order_and_partial_capacity),
        cmocka_unit_test(test_handshake_does_not_refresh_liveness),
        cmocka_unit_test(test_time_must_not_go_backwards),
        cmocka_unit_test(test_least_loaded_and_tie_break),
        cmocka_unit_test(test_overload_rule),
        cmocka_unit_test(test_requires_matching),
        cmocka_unit_test(test_label_matching),
        cmocka_unit_test(test_preferred_worker),
        cmocka_unit_test(test_exclusion_set),
        cmocka_unit_test(test_select_arguments),
        cmocka_unit_test(test_first_fit_matches_full_scan),
        cmocka_unit_test(test_first_fit_counts_saturated_workers),
        cmocka_unit_test(test_inflight_memo_and_tag),
        cmocka_unit_test(test_first_fit_index_takes_loaded_newcomers),
        cmocka_unit_test(test_version_negotiation),
        cmocka_unit_test(test_ready_topics),
        cmocka_unit_test(test_reports_rebuilt_in_place_or_anew),
        cmocka_unit_test(test_handshake_validation_and_effects),
        cmocka_unit_test(test_registry_full),
        cmocka_unit_test(test_heartbeat_bounds_and_values),
        cmocka_unit_test(test_handshake_bounds),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_pool_moves_and_returns),
        cmocka_unit_test(test_id_by_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
