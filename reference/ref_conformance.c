/* The conformance-handler contract: see ref_conformance.h and
 * docs/conformance-handler.md. */
#include "ref_conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef Cordum__Agent__V1__JobRequest job_request;

#define PREFIX_LEN (sizeof REF_CONFORMANCE_PREFIX - 1)

static const char *const OUTCOME_NAMES[] = {"succeed", "fail-retryable", "fail-fatal", "hang"};

const char *ref_conformance_outcome_name(ref_conformance_outcome o)
{
    if ((int)o < 0 || (size_t)o >= sizeof OUTCOME_NAMES / sizeof OUTCOME_NAMES[0])
        return NULL;
    return OUTCOME_NAMES[o];
}

int ref_conformance_parse_duration(const char *s, int64_t *out)
{
    if (!s || !out || *s < '0' || *s > '9')
        return -1;
    int64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (v > REF_CONFORMANCE_MAX_SERVICE_NS)
            return -1;
        v = v * 10 + (*p - '0');
        p++;
        if (p - s > 19)
            return -1;
    }
    static const struct {
        const char *unit;
        int64_t ns;
    } UNITS[] = {{"ns", 1},
                 {"us", INT64_C(1000)},
                 {"ms", INT64_C(1000000)},
                 {"s", INT64_C(1000000000)},
                 {"m", INT64_C(60000000000)}};
    for (size_t i = 0; i < sizeof UNITS / sizeof UNITS[0]; i++) {
        if (strcmp(p, UNITS[i].unit) != 0)
            continue;
        if (v > REF_CONFORMANCE_MAX_SERVICE_NS / UNITS[i].ns)
            return -1;
        *out = v * UNITS[i].ns;
        return 0;
    }
    return -1;
}

/* A decimal integer in [0, max], nothing else (no sign, no spaces). */
static int parse_count(const char *s, uint32_t max, uint32_t *out)
{
    if (!s || !*s || strlen(s) > 10)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int bad(cap_diag *d, const char *key, const char *value, const char *want)
{
    char path[192];
    snprintf(path, sizeof path, "labels.%.180s", key);
    return cap_diag_set(d, CAP_EINVAL, -1, path, "\"%.100s\" is not %s", value ? value : "",
                        want);
}

int ref_conformance_plan_read(const job_request *req, uint64_t attempt, ref_conformance_plan *out,
                              cap_diag *d)
{
    if (!req || !out)
        return cap_diag_set(d, CAP_EINVAL, -1, "", "no request or no plan");
    memset(out, 0, sizeof *out);
    out->outcome = REF_CONFORMANCE_SUCCEED;
    out->service_ns = REF_CONFORMANCE_DEFAULT_SERVICE_NS;
    ref_conformance_outcome later = REF_CONFORMANCE_SUCCEED;
    for (size_t i = 0; i < req->n_labels; i++) {
        const Cordum__Agent__V1__JobRequest__LabelsEntry *e = req->labels[i];
        if (!e || !e->key || strncmp(e->key, REF_CONFORMANCE_PREFIX, PREFIX_LEN) != 0)
            continue;
        out->has_contract = 1;
        const char *k = e->key, *v = e->value ? e->value : "";
        if (strcmp(k, REF_CONFORMANCE_LABEL_OUTCOME) == 0) {
            size_t j = 0;
            while (j < sizeof OUTCOME_NAMES / sizeof OUTCOME_NAMES[0] && strcmp(v, OUTCOME_NAMES[j]))
                j++;
            if (j == sizeof OUTCOME_NAMES / sizeof OUTCOME_NAMES[0])
                return bad(d, k, v, "one of succeed, fail-retryable, fail-fatal, hang");
            later = (ref_conformance_outcome)j;
        } else if (strcmp(k, REF_CONFORMANCE_LABEL_FAIL_ATTEMPTS) == 0) {
            if (parse_count(v, REF_CONFORMANCE_MAX_FAIL_ATTEMPTS, &out->fail_attempts))
                return bad(d, k, v, "an attempt count in 0..1000");
        } else if (strcmp(k, REF_CONFORMANCE_LABEL_PROGRESS) == 0) {
            if (parse_count(v, REF_CONFORMANCE_MAX_PROGRESS, &out->progress_steps))
                return bad(d, k, v, "a report count in 0..100");
        } else if (strcmp(k, REF_CONFORMANCE_LABEL_SERVICE) == 0) {
            if (ref_conformance_parse_duration(v, &out->service_ns))
                return bad(d, k, v, "a duration with a unit (ns, us, ms, s, m) of at most 1h");
        } else if (strcmp(k, REF_CONFORMANCE_LABEL_FATAL_STEP) == 0) {
            if (parse_count(v, REF_CONFORMANCE_MAX_FAIL_ATTEMPTS, &out->fatal_step) ||
                out->fatal_step == 0)
                return bad(d, k, v, "a workflow step index in 1..1000");
        } else {
            char path[192];
            snprintf(path, sizeof path, "labels.%.180s", k);
            return cap_diag_set(d, CAP_EINVAL, -1, path,
                                "unknown contract label (known: outcome, fail_attempts, "
                                "progress, service, fatal_step)");
        }
    }
    if (attempt == 0)
        attempt = 1;
    out->outcome = attempt <= out->fail_attempts ? REF_CONFORMANCE_FAIL_RETRYABLE : later;
    if (out->fatal_step && req->step_index >= 0 && (uint32_t)req->step_index == out->fatal_step)
        out->outcome = REF_CONFORMANCE_FAIL_FATAL;
    return CAP_OK;
}

void ref_conformance_work(const ref_conformance_plan *p, ref_work *out)
{
    if (!p || !out)
        return;
    out->service_ns = p->service_ns;
    switch (p->outcome) {
    case REF_CONFORMANCE_FAIL_RETRYABLE:
        out->outcome = REF_WORK_FAILED_RETRYABLE;
        out->text = "conformance: retryable failure";
        break;
    case REF_CONFORMANCE_FAIL_FATAL:
        out->outcome = REF_WORK_FAILED_FATAL;
        out->text = "conformance: fatal failure";
        break;
    case REF_CONFORMANCE_HANG:
        out->outcome = REF_WORK_HANG;
        out->text = "conformance: hangs";
        break;
    default:
        out->outcome = REF_WORK_SUCCEEDED;
        out->text = "result://conformance";
        break;
    }
}

int64_t ref_conformance_progress_at(const ref_conformance_plan *p, int64_t started, uint32_t k)
{
    if (!p || p->progress_steps == 0)
        return started;
    /* service <= 1 h and k <= 100: the product fits int64 */
    return started + p->service_ns * (int64_t)k / ((int64_t)p->progress_steps + 1);
}

cap_packet *ref_conformance_progress_packet(const job_request *req, const char *trace_id,
                                            const char *worker_id, uint32_t k, uint32_t steps,
                                            int64_t now)
{
    if (!req || !worker_id || k < 1 || k > steps || steps > REF_CONFORMANCE_MAX_PROGRESS)
        return NULL;
    char msg[32];
    snprintf(msg, sizeof msg, "step %u/%u", k, steps);
    return ref_worker_progress_packet(trace_id, worker_id, req->job_id,
                                      (int32_t)(100u * k / (steps + 1u)), msg, req->dispatch,
                                      req->identity, now);
}
