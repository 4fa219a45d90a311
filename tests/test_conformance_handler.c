/* The conformance-handler contract (reference/ref_conformance.h). */
#include "testutil.h"

#include "cap_decode.h"
#include "cap_encode.h"
#include "ref_conformance.h"
#include "ref_effect.h"
#include "ref_registry.h"

typedef Cordum__Agent__V1__JobRequest job_request;

/* A request with the given labels (key, value pairs, NULL-terminated). */
static job_request *mk_req(const char *const *kv)
{
    job_request *r = calloc(1, sizeof *r);
    assert_non_null(r);
    cordum__agent__v1__job_request__init(r);
    r->job_id = strdup("job-1");
    size_t n = 0;
    while (kv && kv[2 * n])
        n++;
    r->labels = calloc(n + 1, sizeof *r->labels);
    assert_non_null(r->labels);
    for (size_t i = 0; i < n; i++) {
        Cordum__Agent__V1__JobRequest__LabelsEntry *e = calloc(1, sizeof *e);
        assert_non_null(e);
        cordum__agent__v1__job_request__labels_entry__init(e);
        e->key = strdup(kv[2 * i]);
        e->value = strdup(kv[2 * i + 1]);
        r->labels[i] = e;
    }
    r->n_labels = n;
    return r;
}

static void free_req(job_request *r)
{
    cap_message_free(&r->base);
}

static void test_no_contract(void **state)
{
    (void)state;
    const char *kv[] = {"zone", "a", "cordum.x", "y", NULL};
    job_request *r = mk_req(kv);
    ref_conformance_plan p;
    assert_int_equal(ref_conformance_plan(r, 1, &p, NULL), CAP_OK);
    assert_int_equal(p.has_contract, 0);
    assert_int_equal(p.outcome, REF_CONFORMANCE_SUCCEED);
    assert_int_equal(p.progress_steps, 0);
    assert_int_equal(p.service_ns, REF_CONFORMANCE_DEFAULT_SERVICE_NS);
    free_req(r);
}

static void test_full_plan(void **state)
{
    (void)state;
    const char *kv[] = {"cap.conformance.outcome", "fail-fatal", "cap.conformance.progress", "3",
                        "cap.conformance.service", "250ms", NULL};
    job_request *r = mk_req(kv);
    ref_conformance_plan p;
    assert_int_equal(ref_conformance_plan(r, 1, &p, NULL), CAP_OK);
    assert_int_equal(p.has_contract, 1);
    assert_int_equal(p.outcome, REF_CONFORMANCE_FAIL_FATAL);
    assert_int_equal(p.progress_steps, 3);
    assert_int_equal(p.service_ns, INT64_C(250000000));
    ref_work w = {0};
    ref_conformance_work(&p, &w);
    assert_int_equal(w.outcome, REF_WORK_FAILED_FATAL);
    assert_int_equal(w.service_ns, INT64_C(250000000));
    assert_non_null(w.text);
    /* reports at 1/4, 2/4, 3/4 of the service time */
    assert_int_equal(ref_conformance_progress_at(&p, 1000, 1), 1000 + 62500000);
    assert_int_equal(ref_conformance_progress_at(&p, 1000, 3), 1000 + 187500000);
    free_req(r);
}

static void test_fail_attempts(void **state)
{
    (void)state;
    const char *kv[] = {"cap.conformance.fail_attempts", "2", "cap.conformance.outcome", "hang",
                        NULL};
    job_request *r = mk_req(kv);
    ref_conformance_plan p;
    assert_int_equal(ref_conformance_plan(r, 1, &p, NULL), CAP_OK);
    assert_int_equal(p.outcome, REF_CONFORMANCE_FAIL_RETRYABLE);
    assert_int_equal(ref_conformance_plan(r, 2, &p, NULL), CAP_OK);
    assert_int_equal(p.outcome, REF_CONFORMANCE_FAIL_RETRYABLE);
    assert_int_equal(ref_conformance_plan(r, 3, &p, NULL), CAP_OK);
    assert_int_equal(p.outcome, REF_CONFORMANCE_HANG);
    ref_work w = {0};
    ref_conformance_work(&p, &w);
    assert_int_equal(w.outcome, REF_WORK_HANG);
    /* attempt 0 counts as attempt 1 */
    assert_int_equal(ref_conformance_plan(r, 0, &p, NULL), CAP_OK);
    assert_int_equal(p.outcome, REF_CONFORMANCE_FAIL_RETRYABLE);
    free_req(r);
}

static void test_fatal_step(void **state)
{
    (void)state;
    const char *kv[] = {"cap.conformance.fatal_step", "3", NULL};
    job_request *r = mk_req(kv);
    ref_conformance_plan p;
    r->step_index = 2;
    assert_int_equal(ref_conformance_plan(r, 1, &p, NULL), CAP_OK);
    assert_int_equal(p.outcome, REF_CONFORMANCE_SUCCEED);
    r->step_index = 3;
    assert_int_equal(ref_conformance_plan(r, 1, &p, NULL), CAP_OK);
    assert_int_equal(p.outcome, REF_CONFORMANCE_FAIL_FATAL);
    free_req(r);
}

/* Each malformed label is CAP_EINVAL naming the label. */
static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"cap.conformance.outcome", "explode"},   {"cap.conformance.outcome", ""},
        {"cap.conformance.progress", "101"},      {"cap.conformance.progress", "-1"},
        {"cap.conformance.progress", "2x"},       {"cap.conformance.fail_attempts", "1001"},
        {"cap.conformance.service", "200"},       {"cap.conformance.service", "2h"},
        {"cap.conformance.service", "1.5s"},      {"cap.conformance.service", "ms"},
        {"cap.conformance.service", "61m"},       {"cap.conformance.fatal_step", "0"},
        {"cap.conformance.sevrice", "100ms"},     {"cap.conformance.", "x"},
        {"cap.conformance.service", "99999999999999999999s"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *kv[] = {bad[i][0], bad[i][1], NULL};
        job_request *r = mk_req(kv);
        ref_conformance_plan p;
        cap_diag d;
        cap_diag_clear(&d);
        int rc = ref_conformance_plan(r, 1, &p, &d);
        if (rc != CAP_EINVAL)
            fail_msg("%s=%s: rc %d", bad[i][0], bad[i][1], rc);
        char want[200];
        snprintf(want, sizeof want, "labels.%s", bad[i][0]);
        assert_string_equal(d.path, want);
        assert_true(d.reason[0] != 0);
        free_req(r);
    }
}

static void test_durations(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(ref_conformance_parse_duration("0ms", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ref_conformance_parse_duration("7ns", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(ref_conformance_parse_duration("15us", &v), 0);
    assert_int_equal(v, 15000);
    assert_int_equal(ref_conformance_parse_duration("2s", &v), 0);
    assert_int_equal(v, INT64_C(2000000000));
    assert_int_equal(ref_conformance_parse_duration("60m", &v), 0);
    assert_int_equal(v, REF_CONFORMANCE_MAX_SERVICE_NS);
    assert_int_equal(ref_conformance_parse_duration("3601s", &v), -1);
    assert_int_equal(ref_conformance_parse_duration(" 1s", &v), -1);
    assert_int_equal(ref_conformance_parse_duration("1 s", &v), -1);
    assert_int_equal(ref_conformance_parse_duration("", &v), -1);
    assert_int_equal(ref_conformance_parse_duration(NULL, &v), -1);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(ref_conformance_outcome_name(REF_CONFORMANCE_SUCCEED), "succeed");
    assert_string_equal(ref_conformance_outcome_name(REF_CONFORMANCE_FAIL_RETRYABLE),
                        "fail-retryable");
    assert_string_equal(ref_conformance_outcome_name(REF_CONFORMANCE_FAIL_FATAL), "fail-fatal");
    assert_string_equal(ref_conformance_outcome_name(REF_CONFORMANCE_HANG), "hang");
    assert_null(ref_conformance_outcome_name((ref_conformance_outcome)9));
}

/* The progress packet carries the attempt's identity and survives the
 * strict decoder after encoding. */
static void test_progress_packet(void **state)
{
    (void)state;
    const char *kv[] = {"cap.conformance.progress", "2", NULL};
    job_request *r = mk_req(kv);
    r->dispatch = calloc(1, sizeof *r->dispatch);
    assert_non_null(r->dispatch);
    cordum__agent__v1__dispatch_identity__init(r->dispatch);
    r->dispatch->dispatch_id = strdup("d-1");
    r->dispatch->attempt = 4;
    r->dispatch->assigned_worker_id = strdup("w-1");
    r->identity = calloc(1, sizeof *r->identity);
    assert_non_null(r->identity);
    cordum__agent__v1__identity_binding__init(r->identity);
    r->identity->tenant_id = strdup("tenant-a");
    assert_null(ref_conformance_progress_packet(r, "t", "w-1", 0, 2, 0));
    assert_null(ref_conformance_progress_packet(r, "t", "w-1", 3, 2, 0));
    cap_packet *p = ref_conformance_progress_packet(r, "trace-1", "w-1", 2, 2, INT64_C(1500000000));
    assert_non_null(p);
    assert_int_equal(p->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS);
    const Cordum__Agent__V1__JobProgress *pr = p->job_progress;
    assert_string_equal(pr->job_id, "job-1");
    assert_int_equal(pr->percent, 66);
    assert_string_equal(pr->message, "step 2/2");
    assert_int_equal(pr->status, CORDUM__AGENT__V1__JOB_STATUS__JOB_STATUS_RUNNING);
    assert_string_equal(pr->dispatch->dispatch_id, "d-1");
    assert_int_equal(pr->dispatch->attempt, 4);
    assert_string_equal(pr->dispatch->assigned_worker_id, "w-1");
    assert_string_equal(pr->identity->tenant_id, "tenant-a");
    assert_string_equal(p->trace_id, "trace-1");
    assert_string_equal(p->sender_id, "w-1");
    assert_int_equal(p->created_at->seconds, 1);
    assert_int_equal(p->created_at->nanos, 500000000);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cap_encode(&p->base, &buf, &len), CAP_OK);
    cap_packet *back = NULL;
    cap_bounds b = cap_bounds_default();
    cap_diag d;
    assert_int_equal(cap_packet_decode(buf, len, &b, CAP_DECODE_STRICT, &back, &d), CAP_OK);
    cap_packet_free(back);
    free(buf);
    cap_packet_free(p);
    free_req(r);
}

/* Placement ignores the contract's labels: workers need not carry them. */
static void test_not_placement(void **state)
{
    (void)state;
    assert_int_equal(ref_registry_is_placement_label("cap.conformance.outcome"), 0);
    assert_int_equal(ref_registry_is_placement_label("cap.conformance.service"), 0);
    assert_int_equal(ref_registry_is_placement_label("cap.conformancex"), 1);
    assert_int_equal(ref_registry_is_placement_label("zone"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_contract),     cmocka_unit_test(test_full_plan),
        cmocka_unit_test(test_fail_attempts),   cmocka_unit_test(test_fatal_step),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_durations),
        cmocka_unit_test(test_names),           cmocka_unit_test(test_progress_packet),
        cmocka_unit_test(test_not_placement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
