/* Policy lint: what loads but is probably not what the author meant.
 * Errors (a file that does not load) come from ref_policy_parse; these are
 * the warnings about a policy that did load. */
#ifndef REF_LINT_H
#define REF_LINT_H

#include <stddef.h>

#include "ref_policy.h"

typedef struct {
    const char *code;   /* stable id: "shadowed", "unreachable-default", ... */
    int line, column;   /* 1-based; 0 when not tied to a place */
    char message[320];
} ref_lint_item;

/* Collects the warnings for p, in file order. *items is freed with free().
 * Returns 0 or CAP_ENOMEM. The checks:
 *   shadowed             a rule every request of which an earlier rule
 *                        (without velocity) already matches
 *   unreachable-default  a rule that matches everything, so the rules
 *                        after it and default_decision never apply
 *   default-misspelled   default_decision is not a decision word (read as deny)
 *   unreachable-topic    a topic glob that cannot match any job.* topic
 *   empty-constraints    allow_with_constraints with no constraints
 *   unused-constraints   constraints on a deny, throttle or approval rule
 *   no-rules             neither rules nor tenant topic lists: everything
 *                        gets default_decision */
int ref_policy_lint(const ref_policy *p, ref_lint_item **items, size_t *n);

/* True when every request that rule b matches is also matched by rule a's
 * criteria (a conservative test: false when unsure). Velocity is not
 * considered. */
int ref_rule_covers(const ref_rule *a, const ref_rule *b);

#endif
