/* The reference adapter's case logic: answers one upstream TCK case by
 * driving the reference components (never by reading the expected answer),
 * then compares the computed outcome with the case's `expect` (cap-tck
 * 4.1 defaults when absent): PASS when they agree, FAIL with the detail
 * otherwise.
 *
 * Case families (a table in conf_refcases.c; one more family is one more
 * row): lifecycle/cancellation (ref_jobstate; worker-honors-cancel drives
 * a ref_worker through a dispatch and a JobCancel), malformed (bad packet
 * bytes built here and fed to the strict decoder), safety (a one-rule
 * policy through ref_safety), negotiation (ref_registry handshake and
 * selection), worker duplicates and retries (a ref_worker fed JobRequest
 * and JobCancel packets with a DispatchIdentity), control-plane
 * duplicates and retries (the reference scheduler: not wired yet,
 * answered UNSUPPORTED).
 *
 * Mutants: the process-wide switch of ref_bugs.h changes the components'
 * behaviour; accept-malformed and dispatch-on-throttle act here.
 *
 * Everything lives in the caller's conf_ref_answer; nothing is allocated
 * that outlives a call. */
#ifndef CONF_REFCASES_H
#define CONF_REFCASES_H

#include <stddef.h>

#include "conf_json.h"
#include "conf_msg.h"

#define CONF_REF_MAX_EVIDENCE 12

typedef struct {
    char key[40];
    char value[400];
} conf_ref_ev;

typedef struct {
    conf_status status;
    char detail[800];
    conf_ref_ev ev[CONF_REF_MAX_EVIDENCE];
    size_t n_ev;
} conf_ref_answer;

/* Answers case `id` with `params` for an adapter of role `role`
 * ("worker" or "control-plane"). Always fills *out (ERROR with the reason
 * when a component fails, UNSUPPORTED for an unknown case family). */
void conf_ref_answer_case(const char *role, const char *id, const conf_kv *params, size_t n_params,
                          conf_ref_answer *out);

/* The case families, for documentation and tests: the i-th family's id
 * prefix and role, NULL past the end. */
const char *conf_ref_family(size_t i, const char **role);

#endif
