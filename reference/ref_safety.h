/* The safety kernel: decides whether a job may be dispatched.
 *
 * A pure function of (the installed policy, the request, the kernel's own
 * counters, now): no clock, no I/O, no randomness. The order of a check
 * (cordum-ref 8.2, docs/policy.md):
 *   1. no policy installed -> DENY;
 *   2. missing topic, or a topic outside "job." -> DENY;
 *   3. rules in order, first match wins; a velocity rule matches only when
 *      its window holds more than max_requests requests; no match ->
 *      default_decision;
 *   4. for an allow-class result (ALLOW, ALLOW_WITH_CONSTRAINTS): the
 *      tenant's deny_topics / allow_topics -> DENY, then the tenant's
 *      max_concurrent_jobs against its active jobs -> THROTTLE;
 *   5. approval_required = REQUIRE_HUMAN; approval_ref = job_id.
 *
 * Request fields used: topic, job_id, tenant (else meta.tenant_id, else
 * identity.tenant_id, else the policy's default_tenant), labels (then
 * meta.labels for keys the request lacks), and from meta: capability,
 * actor_id (else identity.actor_id), actor_type, pack_id, risk_tags,
 * requires. A label "secrets_present" = "true" or the risk tag "secrets"
 * makes secrets present. */
#ifndef REF_SAFETY_H
#define REF_SAFETY_H

#include <stddef.h>
#include <stdint.h>

#include "cordum/agent/v1/job.pb-c.h"
#include "cordum/agent/v1/safety.pb-c.h"
#include "ref_policy.h"

typedef struct ref_safety ref_safety;

/* A kernel with no policy (every check denies). NULL when out of memory. */
ref_safety *ref_safety_new(void);
void ref_safety_free(ref_safety *k);

/* Parses text and, only if it loads, swaps it in: a bad policy never
 * replaces a good one (d says why; the kernel is unchanged). Returns 0 when
 * swapped in, 1 when the new policy has the installed snapshot (nothing
 * changes), or an error. */
int ref_safety_load(ref_safety *k, const char *text, size_t len, cap_yaml_diag *d);

/* Swaps in an already parsed policy, taking ownership of it (freed at once
 * when its snapshot equals the installed one; return 1 then). */
int ref_safety_install(ref_safety *k, ref_policy *p);

/* The installed policy, or NULL. Owned by the kernel until the next swap. */
const ref_policy *ref_safety_policy(const ref_safety *k);

/* The snapshots installed so far, newest first, at most 10 (cordum-ref
 * 8.3). Returns how many; the strings are owned by the kernel. */
size_t ref_safety_snapshots(const ref_safety *k, const char **out, size_t max);

/* Tenant concurrency, as the scheduler sees it: a job of tenant became
 * active (admitted to dispatch) or stopped being active. Returns 0 or
 * CAP_EFULL / CAP_ENOMEM. Tenant names compare case-insensitively. */
int ref_safety_job_started(ref_safety *k, const char *tenant);
void ref_safety_job_ended(ref_safety *k, const char *tenant);
int64_t ref_safety_active_jobs(const ref_safety *k, const char *tenant);
/* Sets every tenant's count to zero: a scheduler restored from its journal
 * recounts its active jobs from scratch, whether or not this kernel
 * survived the restart. */
void ref_safety_reset_active(ref_safety *k);

/* A decision. The reason is the struct's own copy (so the struct may be
 * copied freely); the pointers borrow from the installed policy and the
 * request: copy what you keep past the next load. */
typedef struct {
    Cordum__Agent__V1__DecisionType decision;
    const char *rule_id;         /* "" when the default decided */
    char reason[REF_REASON_MAX + 1];
    const char *policy_snapshot; /* "" when no policy is installed */
    const Cordum__Agent__V1__PolicyConstraints *constraints;  /* NULL: none */
    Cordum__Agent__V1__PolicyRemediation *const *remediations;
    size_t n_remediations;
    int approval_required;
    const char *approval_ref;    /* the job_id when approval_required, else "" */
    const char *tenant;          /* the tenant the request was judged as */
    /* Where rule_id, reason and policy_snapshot came from: two decisions
     * of one kernel with the same non-zero origin have the same three
     * texts (the same rule, or the default, of the same installed
     * policy), so a caller may keep what it makes of them by origin. 0 for
     * a reason written for the request (topic, tenant steps). */
    uint64_t origin;
} ref_safety_decision;

/* Decides for req at now (nanoseconds on the caller's clock), recording the
 * request in the velocity windows of the rules it reaches. */
int ref_safety_check(ref_safety *k, const Cordum__Agent__V1__PolicyCheckRequest *req, int64_t now,
                     ref_safety_decision *out);

/* Fills a PolicyCheckResponse from a decision. The response borrows every
 * pointer (from the decision, which must outlive it); its constraints and
 * remediations are the policy's own. Release it with
 * ref_safety_response_release, never with protobuf-c's free. */
void ref_safety_response(const ref_safety_decision *dec, Cordum__Agent__V1__PolicyCheckResponse *resp);
void ref_safety_response_release(Cordum__Agent__V1__PolicyCheckResponse *resp);

/* The PolicyCheckRequest the scheduler sends for a job (cordum-ref 8:
 * topic, tenant, priority, budget, principal, labels, meta, identity).
 * A deep copy: free with cap_message_free. NULL when out of memory. */
Cordum__Agent__V1__PolicyCheckRequest *ref_safety_request_from_job(const Cordum__Agent__V1__JobRequest *job);

/* The same request as a view: *out borrows the job's fields (strings,
 * sub-messages, the label entries, which have the same shape in both
 * messages), so it is valid while job is and must not be freed or
 * encoded. For a job unpacked from the wire (no NULL strings) a check of
 * the view decides exactly as a check of the deep copy, without the
 * copy. */
void ref_safety_request_view(const Cordum__Agent__V1__JobRequest *job,
                             Cordum__Agent__V1__PolicyCheckRequest *out);

/* ---- explain ---- */

typedef struct {
    const char *criterion;  /* "topics", "labels", ..., "velocity" */
    int matched;
    char why[200];
} ref_explain_criterion;

typedef enum {
    REF_RULE_NO_MATCH,      /* a criterion failed */
    REF_RULE_VELOCITY_OK,   /* criteria matched, window not exceeded: skipped */
    REF_RULE_FIRED,         /* the first match: its decision applies */
    REF_RULE_NOT_REACHED,   /* after the rule that fired, or stopped earlier */
} ref_rule_outcome;

typedef struct {
    const ref_rule *rule;
    ref_rule_outcome outcome;
    int would_match;        /* for NOT_REACHED: whether it would have matched */
    ref_explain_criterion *criteria;
    size_t n_criteria;
} ref_explain_rule;

typedef struct {
    ref_safety_decision decision;
    /* What decided: "no-policy", "topic", "rule", "default", "tenant-topics",
     * "tenant-concurrency". */
    const char *stage;
    char topic_check[200];
    char tenant_check[200];  /* step 4, "" when it did not run */
    ref_explain_rule *rules;
    size_t n_rules;
} ref_explain;

/* Evaluates req like ref_safety_check, but as a dry run (velocity windows
 * are read, not written), recording every rule and criterion. Free with
 * ref_explain_free. */
int ref_safety_explain(ref_safety *k, const Cordum__Agent__V1__PolicyCheckRequest *req, int64_t now,
                       ref_explain *out);
void ref_explain_free(ref_explain *e);

#endif
