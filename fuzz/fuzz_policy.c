/* Fuzz target: bytes -> safety policy. Whatever loads must have a
 * snapshot, reload to the same snapshot, lint, and decide a request the
 * same way through check and explain; whatever does not load must say
 * where and why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "ref_lint.h"
#include "ref_safety.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ref_policy *p = NULL;
    cap_yaml_diag d;
    int rc = ref_policy_parse((const char *)data, size, &p, &d);
    CHECK((rc == 0) == (p != NULL));
    if (rc) {
        CHECK(rc == CAP_EYAML || rc == CAP_EPOLICY || rc == CAP_ENOMEM);
        CHECK(d.reason[0] != '\0');
        return 0;
    }
    CHECK(ref_policy_snapshot(p)[0] != '\0');
    ref_policy *again = NULL;
    CHECK(ref_policy_parse((const char *)data, size, &again, &d) == 0);
    CHECK(strcmp(ref_policy_snapshot(p), ref_policy_snapshot(again)) == 0);
    ref_policy_free(again);
    ref_lint_item *items = NULL;
    size_t n = 0;
    CHECK(ref_policy_lint(p, &items, &n) == 0);
    free(items);

    ref_safety *k = ref_safety_new();
    CHECK(k && ref_safety_install(k, p) == 0);
    Cordum__Agent__V1__PolicyCheckRequest req = CORDUM__AGENT__V1__POLICY_CHECK_REQUEST__INIT;
    Cordum__Agent__V1__PolicyCheckRequest__LabelsEntry l1 =
        CORDUM__AGENT__V1__POLICY_CHECK_REQUEST__LABELS_ENTRY__INIT;
    Cordum__Agent__V1__PolicyCheckRequest__LabelsEntry *labels[] = {&l1};
    l1.key = "mcp.action";
    l1.value = "read";
    req.job_id = "fuzz";
    req.topic = "job.tools.read";
    req.tenant = "acme";
    req.n_labels = 1;
    req.labels = labels;
    ref_explain e;
    CHECK(ref_safety_explain(k, &req, 0, &e) == 0);
    ref_safety_decision dec;
    CHECK(ref_safety_check(k, &req, 0, &dec) == 0);
    CHECK(dec.decision == e.decision.decision);
    CHECK(strcmp(dec.rule_id, e.decision.rule_id) == 0);
    ref_explain_free(&e);
    ref_safety_free(k);
    return 0;
}
