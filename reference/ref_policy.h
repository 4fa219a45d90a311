/* Safety policies: the YAML file the Cordum safety kernel reads, loaded
 * into an immutable model with a canonical form and a snapshot id.
 *
 * The file (docs/policy.md has every key):
 *   version: v1
 *   default_decision: deny            # allow|permit; anything else denies
 *   default_tenant: acme              # tenant of a request that names none
 *   tenants: {NAME: {allow_topics: [glob], deny_topics: [glob],
 *                    max_concurrent_jobs: N}}
 *   rules:
 *   - id: ...                         # unique
 *     match: {topics, labels, risk_tags, requires, tenants, capabilities,
 *             actor_ids, actor_types, pack_ids, label_allowlist,
 *             label_threshold, secrets_present}
 *     velocity: {max_requests, window_seconds, key}
 *     decision: allow|permit|deny|block|require_approval|require-approval|
 *               require_human|throttle|allow_with_constraints
 *     reason: "..."
 *     constraints: {budgets: {...}, sandbox, toolchain, diff,
 *                   redaction_level, or budget keys directly, including
 *                   max_runtime_sec}
 *     remediations: [{id, title, summary, replacement_topic,
 *                     replacement_capability, add_labels, remove_labels}]
 *
 * Loading is all or nothing: any error (bad YAML, an unknown key, a wrong
 * type, a bad decision word, a duplicate rule id, a malformed glob) fails
 * the whole load with one diagnostic naming line, column and key path. */
#ifndef REF_POLICY_H
#define REF_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "cap_yaml.h"
#include "cordum/agent/v1/safety.pb-c.h"

/* The longest rule reason a policy may give, in bytes. */
#define REF_REASON_MAX 511

/* The decision words of a rule, normalised (every spelling maps to one). */
typedef enum {
    REF_WORD_NONE = 0,  /* absent or not a decision word */
    REF_WORD_ALLOW,
    REF_WORD_DENY,
    REF_WORD_REQUIRE_APPROVAL,
    REF_WORD_THROTTLE,
    REF_WORD_ALLOW_WITH_CONSTRAINTS,
} ref_word;

/* The word for a spelling (case-insensitive, surrounding blanks ignored),
 * or REF_WORD_NONE. */
ref_word ref_word_parse(const char *s);
/* The canonical spelling of a word ("require_approval"); "" for NONE. */
const char *ref_word_name(ref_word w);
/* The DecisionType a word gives, before constraints are considered. */
Cordum__Agent__V1__DecisionType ref_word_decision(ref_word w);
/* "ALLOW", "DENY", "REQUIRE_HUMAN", "THROTTLE", "ALLOW_WITH_CONSTRAINTS". */
const char *ref_decision_name(Cordum__Agent__V1__DecisionType d);

typedef struct {
    char **v;  /* sorted, without repeats */
    size_t n;
} ref_strlist;

typedef struct {
    char *key, *value;
} ref_label;

typedef struct {
    char *key;
    ref_strlist values;
} ref_label_allow;

typedef struct {
    char *key;
    double max;
} ref_label_threshold;

/* Match criteria; they AND together, and an empty criterion matches. */
typedef struct {
    ref_strlist topics;        /* globs (ref_glob.h); any of them matches */
    ref_label *labels;         /* sorted by key; every one present and equal */
    size_t n_labels;
    ref_strlist risk_tags;     /* the job has any of them */
    ref_strlist requires;      /* the job has all of them */
    /* The job's value is in the list, compared case-insensitively (lists
     * are stored lower-case); an empty job value never matches. */
    ref_strlist tenants, capabilities, actor_ids, actor_types, pack_ids;
    /* Fires when a label that is present has a value outside its list. */
    ref_label_allow *label_allowlist;
    size_t n_label_allowlist;
    /* Fires when a label that is present is a number above the maximum. */
    ref_label_threshold *label_threshold;
    size_t n_label_threshold;
    int secrets_present;       /* -1: not a criterion; 0 or 1: must equal */
} ref_match;

/* Velocity keys: what the per-rule sliding window is counted by. */
typedef enum {
    REF_VKEY_TENANT,
    REF_VKEY_TOPIC,
    REF_VKEY_ACTOR_ID,
    REF_VKEY_TENANT_TOPIC,
    REF_VKEY_LABEL,  /* "labels.NAME" */
} ref_vkey;

typedef struct {
    int64_t max_requests;    /* the rule fires when a window holds more */
    int64_t window_seconds;
    ref_vkey key;
    char *label;             /* NAME of "labels.NAME", else NULL */
} ref_velocity;

typedef struct {
    char *id;
    int line, column;
    ref_match match;
    int has_velocity;
    ref_velocity velocity;
    ref_word word;
    /* The decision the rule gives: its word, except that allow with
     * non-empty constraints is ALLOW_WITH_CONSTRAINTS. */
    Cordum__Agent__V1__DecisionType decision;
    char *reason;
    Cordum__Agent__V1__PolicyConstraints *constraints;  /* NULL: none */
    Cordum__Agent__V1__PolicyRemediation **remediations;
    size_t n_remediations;
    int derived;  /* made from a tenant's topic lists (rules: absent) */
} ref_rule;

typedef struct {
    char *name;  /* lower-case */
    int line, column;
    ref_strlist allow_topics, deny_topics;
    int64_t max_concurrent_jobs;  /* 0: no cap */
} ref_tenant;

typedef struct ref_policy {
    char *version;           /* "" when absent */
    char *default_tenant;    /* lower-case; "default" when absent */
    ref_rule *rules;
    size_t n_rules;
    ref_tenant *tenants;     /* sorted by name */
    size_t n_tenants;
    ref_word default_word;   /* ALLOW or DENY: the fail-closed reading */
    char *default_written;   /* as written; "" when absent */
    int default_line, default_column;
    int default_misspelled;  /* written, but neither allow/permit nor deny/block */
    char *canonical;         /* canonical JSON form (ref_policy_canonical) */
    char snapshot[96];
} ref_policy;

/* Parses a policy. On success *out owns everything and 0 is returned. On
 * failure *out is NULL, d names line, column, key path and reason, and
 * CAP_EPOLICY, CAP_EYAML or CAP_ENOMEM is returned. */
int ref_policy_parse(const char *text, size_t len, ref_policy **out, cap_yaml_diag *d);
void ref_policy_free(ref_policy *p);

/* The canonical form: compact JSON with keys sorted, lists that are sets
 * sorted, decision words normalised, max_runtime_sec turned into
 * max_runtime_ms and absent defaults filled in. Equal for two files that
 * mean the same; different for any change of meaning. Owned by p. */
const char *ref_policy_canonical(const ref_policy *p);

/* "VERSION:SHA256HEX" of the canonical form ("SHA256HEX" when the policy
 * has no version). Owned by p. */
const char *ref_policy_snapshot(const ref_policy *p);

/* The tenant entry for a name (any case), or NULL. */
const ref_tenant *ref_policy_tenant(const ref_policy *p, const char *name);

/* The text before the first '|' of a snapshot id: what approvals compare
 * (cordum-ref 8.3). Writes at most n bytes to buf and returns buf. */
const char *ref_snapshot_base(const char *snapshot, char *buf, size_t n);

#endif
