/* Safety policy loading: YAML tree -> validated, normalised model, plus its
 * canonical form and snapshot id. */
#include "ref_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/sha.h>

#include "cap_error.h"
#include "cap_json.h"
#include "cap_schema.h"
#include "ref_glob.h"
#include "ref_sorted.h"

/* ---- decision words ---- */

static const struct {
    const char *spelling;
    ref_word word;
} WORDS[] = {
    {"allow", REF_WORD_ALLOW},
    {"permit", REF_WORD_ALLOW},
    {"deny", REF_WORD_DENY},
    {"block", REF_WORD_DENY},
    {"require_approval", REF_WORD_REQUIRE_APPROVAL},
    {"require-approval", REF_WORD_REQUIRE_APPROVAL},
    {"require_human", REF_WORD_REQUIRE_APPROVAL},
    {"throttle", REF_WORD_THROTTLE},
    {"allow_with_constraints", REF_WORD_ALLOW_WITH_CONSTRAINTS},
};

ref_word ref_word_parse(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < sizeof WORDS / sizeof WORDS[0]; i++)
        if (strlen(WORDS[i].spelling) == n && strncasecmp(s, WORDS[i].spelling, n) == 0)
            return WORDS[i].word;
    return REF_WORD_NONE;
}

const char *ref_word_name(ref_word w)
{
    switch (w) {
    case REF_WORD_ALLOW: return "allow";
    case REF_WORD_DENY: return "deny";
    case REF_WORD_REQUIRE_APPROVAL: return "require_approval";
    case REF_WORD_THROTTLE: return "throttle";
    case REF_WORD_ALLOW_WITH_CONSTRAINTS: return "allow_with_constraints";
    default: return "";
    }
}

Cordum__Agent__V1__DecisionType ref_word_decision(ref_word w)
{
    switch (w) {
    case REF_WORD_ALLOW: return CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW;
    case REF_WORD_REQUIRE_APPROVAL:
        return CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REQUIRE_HUMAN;
    case REF_WORD_THROTTLE: return CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_THROTTLE;
    case REF_WORD_ALLOW_WITH_CONSTRAINTS:
        return CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS;
    default: return CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY;  /* fail closed */
    }
}

const char *ref_decision_name(Cordum__Agent__V1__DecisionType d)
{
    switch (d) {
    case CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW: return "ALLOW";
    case CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY: return "DENY";
    case CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REQUIRE_HUMAN: return "REQUIRE_HUMAN";
    case CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_THROTTLE: return "THROTTLE";
    case CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS:
        return "ALLOW_WITH_CONSTRAINTS";
    case CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_QUARANTINE: return "QUARANTINE";
    case CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REDACT: return "REDACT";
    default: return "UNSPECIFIED";
    }
}

/* ---- parsing helpers ---- */

typedef struct {
    cap_yaml_diag *d;
} ctx;

static void lower_ascii(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Keys a Cordum policy may carry that capsim refuses rather than ignores:
 * ignoring them would evaluate a different policy than the file says. */
static const char *const CORDUM_ONLY[] = {
    "tier", "selector", "input_policy", "input_rules", "require_human", "output_policy",
    "output_rules", "agent_risk_tiers", "mcp", NULL,
};

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

/* Checks every key of map is in allowed (a NULL-terminated list). */
static int check_keys(const cap_yaml_node *map, const char *const *allowed, const char *path,
                      cap_yaml_diag *d)
{
    for (size_t i = 0; i < cap_yaml_count(map); i++) {
        const cap_yaml_node *k = map->pairs[i].key;
        if (in_list(allowed, k->text))
            continue;
        char kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(kp, path, k->text);
        if (in_list(CORDUM_ONLY, k->text))
            return cap_yaml_fail(d, CAP_EPOLICY, k, kp,
                                 "\"%s\" is a Cordum policy key that capsim does not evaluate; "
                                 "remove it rather than have it ignored",
                                 k->text);
        char expected[200] = "";
        size_t used = 0;
        for (const char *const *a = allowed; *a && used < sizeof expected - 1; a++)
            used += (size_t)snprintf(expected + used, sizeof expected - used, "%s%s",
                                     a == allowed ? "" : ", ", *a);
        return cap_yaml_fail(d, CAP_EPOLICY, k, kp, "unknown key \"%.60s\" (known: %s)", k->text,
                             expected);
    }
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strlist_free(ref_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Sorts a list and drops repeats: lists in a policy are sets. */
static void strlist_sort_unique(ref_strlist *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, str_cmp);
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (w && strcmp(l->v[w - 1], l->v[i]) == 0)
            free(l->v[i]);
        else
            l->v[w++] = l->v[i];
    }
    l->n = w;
}

enum { LIST_PLAIN = 0, LIST_LOWER = 1, LIST_GLOB = 2 };

/* A sequence of non-empty strings, stored sorted without repeats. */
static int parse_strlist(const cap_yaml_node *node, const char *path, int flags, ref_strlist *out,
                         cap_yaml_diag *d)
{
    int rc = cap_yaml_expect(node, CAP_YAML_SEQ, path, d);
    if (rc)
        return rc == CAP_EYAML ? CAP_EPOLICY : rc;
    size_t n = cap_yaml_count(node);
    if (n == 0)
        return 0;
    out->v = calloc(n, sizeof *out->v);
    if (!out->v)
        return CAP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char ip[CAP_YAML_PATH_MAX];
        cap_yaml_path_index(ip, path, i);
        const char *s;
        const cap_yaml_node *item = node->items[i];
        if (cap_yaml_str(item, ip, &s, d))
            return CAP_EPOLICY;
        if (!s[0])
            return cap_yaml_fail(d, CAP_EPOLICY, item, ip, "empty value");
        const char *why;
        if ((flags & LIST_GLOB) && ref_glob_check(s, &why))
            return cap_yaml_fail(d, CAP_EPOLICY, item, ip, "glob \"%.60s\" %s", s, why);
        if (!(out->v[out->n] = strdup(s)))
            return CAP_ENOMEM;
        if (flags & LIST_LOWER)
            lower_ascii(out->v[out->n]);
        out->n++;
    }
    strlist_sort_unique(out);
    return 0;
}

/* A mapping of string to string (label criteria), sorted by key. */
static int parse_labels(const cap_yaml_node *node, const char *path, ref_label **out, size_t *n,
                        cap_yaml_diag *d)
{
    if (cap_yaml_expect(node, CAP_YAML_MAP, path, d))
        return CAP_EPOLICY;
    size_t count = cap_yaml_count(node);
    if (!count)
        return 0;
    *out = calloc(count, sizeof **out);
    if (!*out)
        return CAP_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        char kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(kp, path, node->pairs[i].key->text);
        const char *v;
        if (cap_yaml_str(node->pairs[i].value, kp, &v, d))
            return CAP_EPOLICY;
        (*out)[i].key = strdup(node->pairs[i].key->text);
        (*out)[i].value = strdup(v);
        *n = i + 1;
        if (!(*out)[i].key || !(*out)[i].value)
            return CAP_ENOMEM;
    }
    if (count > 1) /* qsort may not be given a NULL array */
        qsort(*out, count, sizeof **out, str_cmp); /* key is the first member */
    return 0;
}

static int parse_int(const cap_yaml_node *node, const char *path, int64_t min, int64_t max,
                     int64_t *out, cap_yaml_diag *d)
{
    return cap_yaml_int(node, path, min, max, out, d) ? CAP_EPOLICY : 0;
}

static int parse_string(const cap_yaml_node *node, const char *path, char **out, cap_yaml_diag *d)
{
    const char *s;
    if (cap_yaml_str(node, path, &s, d))
        return CAP_EPOLICY;
    free(*out);
    *out = strdup(s);
    return *out ? 0 : CAP_ENOMEM;
}

/* ---- protobuf messages from YAML (constraints, remediations) ---- */

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (m)
        protobuf_c_message_init(desc, m);
    return m;
}

static void *field_at(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (char *)m + f->offset;
}

/* Sets one scalar, repeated-string or string-map field from a node. The
 * messages policies use have no other kinds of field. */
static int set_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                     const cap_yaml_node *v, const char *path, cap_yaml_diag *d)
{
    int64_t i64;
    int b;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *count = (size_t *)((char *)m + f->quantifier_offset);
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            ref_strlist l = {0};
            int rc = parse_strlist(v, path, LIST_PLAIN, &l, d);
            if (rc) {
                strlist_free(&l);
                return rc;
            }
            *(char ***)field_at(m, f) = l.v;
            *count = l.n;
            return 0;
        }
        /* map<string, string>: repeated entries with key 1 and value 2. */
        ref_label *labels = NULL;
        size_t n = 0;
        int rc = parse_labels(v, path, &labels, &n, d);
        ProtobufCMessage **entries = n ? calloc(n, sizeof *entries) : NULL;
        if (!rc && n && !entries)
            rc = CAP_ENOMEM;
        size_t made = 0;
        for (; !rc && made < n; made++) {
            const ProtobufCMessageDescriptor *ed = f->descriptor;
            ProtobufCMessage *e = new_message(ed);
            if (!e) {
                rc = CAP_ENOMEM;
                break;
            }
            *(char **)((char *)e + ed->fields[0].offset) = labels[made].key;
            *(char **)((char *)e + ed->fields[1].offset) = labels[made].value;
            labels[made].key = labels[made].value = NULL;
            entries[made] = e;
        }
        for (size_t i = 0; i < n; i++) {
            free(labels[i].key);
            free(labels[i].value);
        }
        free(labels);
        *(ProtobufCMessage ***)field_at(m, f) = entries;
        *count = made;
        return rc;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s;
        if (cap_yaml_str(v, path, &s, d))
            return CAP_EPOLICY;
        if (!s[0])
            return 0;
        char *c = strdup(s);
        if (!c)
            return CAP_ENOMEM;
        *(char **)field_at(m, f) = c;
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (cap_yaml_bool(v, path, &b, d))
            return CAP_EPOLICY;
        *(protobuf_c_boolean *)field_at(m, f) = b;
        return 0;
    case PROTOBUF_C_TYPE_INT32:
        if (parse_int(v, path, 0, INT32_MAX, &i64, d))
            return CAP_EPOLICY;
        *(int32_t *)field_at(m, f) = (int32_t)i64;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
        if (parse_int(v, path, 0, INT64_MAX, &i64, d))
            return CAP_EPOLICY;
        *(int64_t *)field_at(m, f) = i64;
        return 0;
    default:
        return cap_yaml_fail(d, CAP_EPOLICY, v, path, "field of an unsupported kind");
    }
}

/* A whole message whose keys are exactly its proto field names. */
static int parse_message(const cap_yaml_node *node, const char *path,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                         cap_yaml_diag *d)
{
    if (cap_yaml_expect(node, CAP_YAML_MAP, path, d))
        return CAP_EPOLICY;
    if (!*out && !(*out = new_message(desc)))
        return CAP_ENOMEM;
    for (size_t i = 0; i < cap_yaml_count(node); i++) {
        const cap_yaml_node *k = node->pairs[i].key;
        char kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(kp, path, k->text);
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, k->text);
        if (!f || (f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED)) {
            char known[200] = "";
            size_t used = 0;
            for (unsigned j = 0; j < desc->n_fields && used < sizeof known - 1; j++)
                used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                         j ? ", " : "", desc->fields[j].name);
            return cap_yaml_fail(d, CAP_EPOLICY, k, kp, "unknown key \"%.60s\" (known: %s)",
                                 k->text, known);
        }
        int rc = set_field(*out, f, node->pairs[i].value, kp, d);
        if (rc)
            return rc;
    }
    return 0;
}

/* The budget keys, which may appear under constraints.budgets or directly
 * under constraints; max_runtime_sec is max_runtime_ms in seconds. */
typedef struct {
    const cap_yaml_node *set_by[5];  /* node that set each budget, for conflicts */
} budget_seen;

static int parse_budget_key(const cap_yaml_node *k, const cap_yaml_node *v, const char *path,
                            Cordum__Agent__V1__BudgetConstraints *b, budget_seen *seen,
                            cap_yaml_diag *d)
{
    static const char *const names[] = {"max_runtime_ms", "max_retries", "max_artifact_bytes",
                                        "max_concurrent_jobs", "max_runtime_sec"};
    int slot = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(k->text, names[i]) == 0)
            slot = i;
    if (slot < 0)
        return 1;  /* not a budget key */
    int target = slot == 4 ? 0 : slot;  /* seconds and milliseconds are one budget */
    if (seen->set_by[target])
        return cap_yaml_fail(d, CAP_EPOLICY, k, path, "%s repeats the budget already set by %s at line %d",
                             k->text, seen->set_by[target]->text, seen->set_by[target]->line);
    seen->set_by[target] = k;
    int64_t x;
    int64_t max = slot == 1 || slot == 3 ? INT32_MAX : slot == 4 ? INT64_MAX / 1000 : INT64_MAX;
    if (parse_int(v, path, 0, max, &x, d))
        return CAP_EPOLICY;
    switch (slot) {
    case 0: b->max_runtime_ms = x; break;
    case 1: b->max_retries = (int32_t)x; break;
    case 2: b->max_artifact_bytes = x; break;
    case 3: b->max_concurrent_jobs = (int32_t)x; break;
    default: b->max_runtime_ms = x * 1000; break;
    }
    return 0;
}

static int parse_budgets(const cap_yaml_node *node, const char *path,
                         Cordum__Agent__V1__BudgetConstraints *b, budget_seen *seen,
                         cap_yaml_diag *d)
{
    if (cap_yaml_expect(node, CAP_YAML_MAP, path, d))
        return CAP_EPOLICY;
    for (size_t i = 0; i < cap_yaml_count(node); i++) {
        const cap_yaml_node *k = node->pairs[i].key;
        char kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(kp, path, k->text);
        int rc = parse_budget_key(k, node->pairs[i].value, kp, b, seen, d);
        if (rc == 1)
            return cap_yaml_fail(d, CAP_EPOLICY, k, kp,
                                 "unknown key \"%.60s\" (known: max_runtime_ms, max_runtime_sec, "
                                 "max_retries, max_artifact_bytes, max_concurrent_jobs)",
                                 k->text);
        if (rc)
            return rc;
    }
    return 0;
}

/* A message whose packed size is 0 has every field at its default. */
static int message_empty(const ProtobufCMessage *m)
{
    return protobuf_c_message_get_packed_size(m) == 0;
}

static int parse_constraints(const cap_yaml_node *node, const char *path,
                             Cordum__Agent__V1__PolicyConstraints **out, cap_yaml_diag *d)
{
    if (cap_yaml_expect(node, CAP_YAML_MAP, path, d))
        return CAP_EPOLICY;
    Cordum__Agent__V1__PolicyConstraints *c =
        (Cordum__Agent__V1__PolicyConstraints *)new_message(&cordum__agent__v1__policy_constraints__descriptor);
    Cordum__Agent__V1__BudgetConstraints *b =
        (Cordum__Agent__V1__BudgetConstraints *)new_message(&cordum__agent__v1__budget_constraints__descriptor);
    if (!c || !b) {
        free(c);
        free(b);
        return CAP_ENOMEM;
    }
    c->budgets = b;
    *out = c;
    budget_seen seen = {{0}};
    for (size_t i = 0; i < cap_yaml_count(node); i++) {
        const cap_yaml_node *k = node->pairs[i].key, *v = node->pairs[i].value;
        char kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(kp, path, k->text);
        int rc;
        if (strcmp(k->text, "budgets") == 0)
            rc = parse_budgets(v, kp, b, &seen, d);
        else if (strcmp(k->text, "sandbox") == 0)
            rc = parse_message(v, kp, &cordum__agent__v1__sandbox_profile__descriptor,
                               (ProtobufCMessage **)&c->sandbox, d);
        else if (strcmp(k->text, "toolchain") == 0)
            rc = parse_message(v, kp, &cordum__agent__v1__toolchain_constraints__descriptor,
                               (ProtobufCMessage **)&c->toolchain, d);
        else if (strcmp(k->text, "diff") == 0)
            rc = parse_message(v, kp, &cordum__agent__v1__diff_constraints__descriptor,
                               (ProtobufCMessage **)&c->diff, d);
        else if (strcmp(k->text, "redaction_level") == 0)
            rc = set_field(&c->base,
                           protobuf_c_message_descriptor_get_field_by_name(c->base.descriptor,
                                                                           "redaction_level"),
                           v, kp, d);
        else if ((rc = parse_budget_key(k, v, kp, b, &seen, d)) == 1)
            rc = cap_yaml_fail(d, CAP_EPOLICY, k, kp,
                               "unknown key \"%.60s\" (known: budgets, sandbox, toolchain, diff, "
                               "redaction_level, and the budget keys max_runtime_ms, "
                               "max_runtime_sec, max_retries, max_artifact_bytes, "
                               "max_concurrent_jobs)",
                               k->text);
        if (rc)
            return rc;
    }
    if (message_empty(&b->base)) {
        cap_message_free(&b->base);
        c->budgets = NULL;
    }
    if (message_empty(&c->base)) {
        cap_message_free(&c->base);
        *out = NULL;
    }
    return 0;
}

static int parse_remediations(const cap_yaml_node *node, const char *path, ref_rule *r,
                              cap_yaml_diag *d)
{
    if (cap_yaml_expect(node, CAP_YAML_SEQ, path, d))
        return CAP_EPOLICY;
    size_t n = cap_yaml_count(node);
    if (!n)
        return 0;
    r->remediations = calloc(n, sizeof *r->remediations);
    if (!r->remediations)
        return CAP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char ip[CAP_YAML_PATH_MAX];
        cap_yaml_path_index(ip, path, i);
        ProtobufCMessage *m = NULL;
        int rc = parse_message(node->items[i], ip, &cordum__agent__v1__policy_remediation__descriptor,
                               &m, d);
        if (m)
            r->remediations[r->n_remediations++] = (Cordum__Agent__V1__PolicyRemediation *)m;
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- rules ---- */

static const char *const MATCH_KEYS[] = {
    "topics", "labels", "risk_tags", "requires", "tenants", "capabilities", "actor_ids",
    "actor_types", "pack_ids", "label_allowlist", "label_threshold", "secrets_present", NULL,
};

static int parse_actor_types(ref_strlist *l, const cap_yaml_node *node, const char *path,
                             cap_yaml_diag *d)
{
    for (size_t i = 0; i < l->n; i++) {
        char *v = l->v[i];
        if (strncmp(v, "actor_type_", 11) == 0)
            memmove(v, v + 11, strlen(v + 11) + 1);
        if (strcmp(v, "human") && strcmp(v, "service"))
            return cap_yaml_fail(d, CAP_EPOLICY, node, path,
                                 "actor type \"%.40s\" is not human or service", v);
    }
    /* Renaming may have made two entries equal; keep the list a set. */
    strlist_sort_unique(l);
    return 0;
}

/* A mapping of label name to a value, into an array of structs whose first
 * member is the name (char *key), sorted by name. */
typedef int (*keyed_value_fn)(void *elem, const cap_yaml_node *v, const char *path,
                              cap_yaml_diag *d);

static int parse_keyed(const cap_yaml_node *node, const char *path, size_t elem_size,
                       void **arr, size_t *count, keyed_value_fn value, cap_yaml_diag *d)
{
    if (cap_yaml_expect(node, CAP_YAML_MAP, path, d))
        return CAP_EPOLICY;
    size_t n = cap_yaml_count(node);
    if (!n)
        return 0;
    if (!(*arr = calloc(n, elem_size)))
        return CAP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(kp, path, node->pairs[i].key->text);
        char *elem = (char *)*arr + i * elem_size;
        *count = i + 1;
        if (!(*(char **)elem = strdup(node->pairs[i].key->text)))
            return CAP_ENOMEM;
        int rc = value(elem, node->pairs[i].value, kp, d);
        if (rc)
            return rc;
    }
    if (n > 1)
        qsort(*arr, n, elem_size, str_cmp);
    return 0;
}

static int allow_values(void *elem, const cap_yaml_node *v, const char *path, cap_yaml_diag *d)
{
    return parse_strlist(v, path, LIST_PLAIN, &((ref_label_allow *)elem)->values, d);
}

static int threshold_value(void *elem, const cap_yaml_node *v, const char *path, cap_yaml_diag *d)
{
    return cap_yaml_num(v, path, &((ref_label_threshold *)elem)->max, d) ? CAP_EPOLICY : 0;
}

static int parse_match(const cap_yaml_node *node, const char *path, ref_match *m, cap_yaml_diag *d)
{
    if (cap_yaml_expect(node, CAP_YAML_MAP, path, d))
        return CAP_EPOLICY;
    int rc = check_keys(node, MATCH_KEYS, path, d);
    if (rc)
        return rc;
    static const struct {
        const char *key;
        size_t off;
        int flags;
    } LISTS[] = {
        {"topics", offsetof(ref_match, topics), LIST_GLOB},
        {"risk_tags", offsetof(ref_match, risk_tags), LIST_PLAIN},
        {"requires", offsetof(ref_match, requires), LIST_PLAIN},
        {"tenants", offsetof(ref_match, tenants), LIST_LOWER},
        {"capabilities", offsetof(ref_match, capabilities), LIST_LOWER},
        {"actor_ids", offsetof(ref_match, actor_ids), LIST_LOWER},
        {"actor_types", offsetof(ref_match, actor_types), LIST_LOWER},
        {"pack_ids", offsetof(ref_match, pack_ids), LIST_LOWER},
    };
    for (size_t i = 0; i < cap_yaml_count(node); i++) {
        const cap_yaml_node *k = node->pairs[i].key, *v = node->pairs[i].value;
        char kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(kp, path, k->text);
        rc = -1;
        for (size_t j = 0; j < sizeof LISTS / sizeof LISTS[0]; j++) {
            if (strcmp(k->text, LISTS[j].key))
                continue;
            ref_strlist *l = (ref_strlist *)((char *)m + LISTS[j].off);
            rc = parse_strlist(v, kp, LISTS[j].flags, l, d);
            if (!rc && l == &m->actor_types)
                rc = parse_actor_types(l, v, kp, d);
        }
        if (rc != -1) {
            /* handled as a list */
        } else if (strcmp(k->text, "labels") == 0) {
            rc = parse_labels(v, kp, &m->labels, &m->n_labels, d);
        } else if (strcmp(k->text, "label_allowlist") == 0) {
            rc = parse_keyed(v, kp, sizeof *m->label_allowlist, (void **)&m->label_allowlist,
                             &m->n_label_allowlist, allow_values, d);
        } else if (strcmp(k->text, "label_threshold") == 0) {
            rc = parse_keyed(v, kp, sizeof *m->label_threshold, (void **)&m->label_threshold,
                             &m->n_label_threshold, threshold_value, d);
        } else {  /* secrets_present */
            int b;
            rc = cap_yaml_bool(v, kp, &b, d) ? CAP_EPOLICY : 0;
            m->secrets_present = b;
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_velocity(const cap_yaml_node *node, const char *path, ref_rule *r,
                          cap_yaml_diag *d)
{
    static const char *const keys[] = {"max_requests", "window_seconds", "key", NULL};
    if (cap_yaml_expect(node, CAP_YAML_MAP, path, d))
        return CAP_EPOLICY;
    int rc = check_keys(node, keys, path, d);
    if (rc)
        return rc;
    ref_velocity *v = &r->velocity;
    r->has_velocity = 1;
    v->key = REF_VKEY_TENANT;
    const cap_yaml_node *mr = cap_yaml_get(node, "max_requests");
    const cap_yaml_node *ws = cap_yaml_get(node, "window_seconds");
    const cap_yaml_node *key = cap_yaml_get(node, "key");
    char kp[CAP_YAML_PATH_MAX];
    if (!mr || !ws)
        return cap_yaml_fail(d, CAP_EPOLICY, node, path,
                             "velocity needs max_requests and window_seconds");
    cap_yaml_path_key(kp, path, "max_requests");
    if (parse_int(mr, kp, 1, 1000000, &v->max_requests, d))
        return CAP_EPOLICY;
    cap_yaml_path_key(kp, path, "window_seconds");
    if (parse_int(ws, kp, 1, 31 * 86400, &v->window_seconds, d))
        return CAP_EPOLICY;
    if (!key)
        return 0;
    cap_yaml_path_key(kp, path, "key");
    const char *s;
    if (cap_yaml_str(key, kp, &s, d))
        return CAP_EPOLICY;
    if (strcmp(s, "tenant") == 0)
        v->key = REF_VKEY_TENANT;
    else if (strcmp(s, "topic") == 0)
        v->key = REF_VKEY_TOPIC;
    else if (strcmp(s, "actor_id") == 0)
        v->key = REF_VKEY_ACTOR_ID;
    else if (strcmp(s, "tenant:topic") == 0)
        v->key = REF_VKEY_TENANT_TOPIC;
    else if (strncmp(s, "labels.", 7) == 0 && s[7]) {
        v->key = REF_VKEY_LABEL;
        if (!(v->label = strdup(s + 7)))
            return CAP_ENOMEM;
    } else
        return cap_yaml_fail(d, CAP_EPOLICY, key, kp,
                             "velocity key \"%.60s\" is not tenant, topic, actor_id, "
                             "tenant:topic or labels.NAME",
                             s);
    return 0;
}

static const char *const RULE_KEYS[] = {
    "id", "match", "velocity", "decision", "reason", "constraints", "remediations", NULL,
};

static int parse_rule(const cap_yaml_node *node, const char *path, ref_rule *r, cap_yaml_diag *d)
{
    r->match.secrets_present = -1;
    if (node->kind != CAP_YAML_MAP)
        return cap_yaml_fail(d, CAP_EPOLICY, node, path, "a rule must be a mapping");
    r->line = node->line;
    r->column = node->column;
    int rc = check_keys(node, RULE_KEYS, path, d);
    if (rc)
        return rc;
    char kp[CAP_YAML_PATH_MAX];
    const cap_yaml_node *id = cap_yaml_get(node, "id");
    if (!id)
        return cap_yaml_fail(d, CAP_EPOLICY, node, path, "rule has no id");
    cap_yaml_path_key(kp, path, "id");
    if ((rc = parse_string(id, kp, &r->id, d)))
        return rc;
    if (!r->id[0])
        return cap_yaml_fail(d, CAP_EPOLICY, id, kp, "empty rule id");
    const cap_yaml_node *dec = cap_yaml_get(node, "decision");
    if (!dec)
        return cap_yaml_fail(d, CAP_EPOLICY, node, path, "rule \"%.60s\" has no decision", r->id);
    cap_yaml_path_key(kp, path, "decision");
    const char *word;
    if (cap_yaml_str(dec, kp, &word, d))
        return CAP_EPOLICY;
    if ((r->word = ref_word_parse(word)) == REF_WORD_NONE)
        return cap_yaml_fail(d, CAP_EPOLICY, dec, kp,
                             "\"%.40s\" is not a decision (allow, permit, deny, block, "
                             "require_approval, require-approval, require_human, throttle, "
                             "allow_with_constraints)",
                             word);
    const cap_yaml_node *v;
    if ((v = cap_yaml_get(node, "reason"))) {
        cap_yaml_path_key(kp, path, "reason");
        if ((rc = parse_string(v, kp, &r->reason, d)))
            return rc;
        if (strlen(r->reason) > REF_REASON_MAX)
            return cap_yaml_fail(d, CAP_EPOLICY, v, kp, "reason longer than %d bytes",
                                 REF_REASON_MAX);
    } else if (!(r->reason = strdup(""))) {
        return CAP_ENOMEM;
    }
    if ((v = cap_yaml_get(node, "match"))) {
        cap_yaml_path_key(kp, path, "match");
        if ((rc = parse_match(v, kp, &r->match, d)))
            return rc;
    }
    if ((v = cap_yaml_get(node, "velocity"))) {
        cap_yaml_path_key(kp, path, "velocity");
        if ((rc = parse_velocity(v, kp, r, d)))
            return rc;
    }
    if ((v = cap_yaml_get(node, "constraints"))) {
        cap_yaml_path_key(kp, path, "constraints");
        if ((rc = parse_constraints(v, kp, &r->constraints, d)))
            return rc;
    }
    if ((v = cap_yaml_get(node, "remediations"))) {
        cap_yaml_path_key(kp, path, "remediations");
        if ((rc = parse_remediations(v, kp, r, d)))
            return rc;
    }
    r->decision = ref_word_decision(r->word);
    if (r->word == REF_WORD_ALLOW && r->constraints)
        r->decision = CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS;
    return 0;
}

static int parse_rules(const cap_yaml_node *node, ref_policy *p, cap_yaml_diag *d)
{
    if (cap_yaml_expect(node, CAP_YAML_SEQ, "rules", d))
        return CAP_EPOLICY;
    size_t n = cap_yaml_count(node);
    if (!n)
        return 0;
    p->rules = calloc(n, sizeof *p->rules);
    if (!p->rules)
        return CAP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char ip[CAP_YAML_PATH_MAX];
        cap_yaml_path_index(ip, "rules", i);
        p->n_rules = i + 1;
        int rc = parse_rule(node->items[i], ip, &p->rules[i], d);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->rules[j].id, p->rules[i].id) == 0) {
                char kp[CAP_YAML_PATH_MAX];
                cap_yaml_path_key(kp, ip, "id");
                return cap_yaml_fail(d, CAP_EPOLICY, cap_yaml_get(node->items[i], "id"), kp,
                                     "duplicate rule id \"%.60s\" (first at line %d)",
                                     p->rules[i].id, p->rules[j].line);
            }
    }
    return 0;
}

/* ---- tenants ---- */

static int tenant_cmp(const void *a, const void *b)
{
    return strcmp(((const ref_tenant *)a)->name, ((const ref_tenant *)b)->name);
}

static int parse_tenants(const cap_yaml_node *node, ref_policy *p, cap_yaml_diag *d)
{
    static const char *const keys[] = {"allow_topics", "deny_topics", "max_concurrent_jobs", NULL};
    if (cap_yaml_expect(node, CAP_YAML_MAP, "tenants", d))
        return CAP_EPOLICY;
    size_t n = cap_yaml_count(node);
    if (!n)
        return 0;
    p->tenants = calloc(n, sizeof *p->tenants);
    if (!p->tenants)
        return CAP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const cap_yaml_node *k = node->pairs[i].key, *v = node->pairs[i].value;
        char tp[CAP_YAML_PATH_MAX], kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(tp, "tenants", k->text);
        ref_tenant *t = &p->tenants[i];
        p->n_tenants = i + 1;
        t->line = k->line;
        t->column = k->column;
        if (!(t->name = strdup(k->text)))
            return CAP_ENOMEM;
        lower_ascii(t->name);
        if (!t->name[0])
            return cap_yaml_fail(d, CAP_EPOLICY, k, tp, "empty tenant name");
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->tenants[j].name, t->name) == 0)
                return cap_yaml_fail(d, CAP_EPOLICY, k, tp,
                                     "tenant \"%.60s\" repeats the one at line %d (names are "
                                     "case-insensitive)",
                                     k->text, p->tenants[j].line);
        if (cap_yaml_expect(v, CAP_YAML_MAP, tp, d))
            return CAP_EPOLICY;
        int rc = check_keys(v, keys, tp, d);
        if (rc)
            return rc;
        const cap_yaml_node *x;
        if ((x = cap_yaml_get(v, "allow_topics"))) {
            cap_yaml_path_key(kp, tp, "allow_topics");
            if ((rc = parse_strlist(x, kp, LIST_GLOB, &t->allow_topics, d)))
                return rc;
        }
        if ((x = cap_yaml_get(v, "deny_topics"))) {
            cap_yaml_path_key(kp, tp, "deny_topics");
            if ((rc = parse_strlist(x, kp, LIST_GLOB, &t->deny_topics, d)))
                return rc;
        }
        if ((x = cap_yaml_get(v, "max_concurrent_jobs"))) {
            cap_yaml_path_key(kp, tp, "max_concurrent_jobs");
            if (parse_int(x, kp, 0, INT32_MAX, &t->max_concurrent_jobs, d))
                return CAP_EPOLICY;
        }
    }
    if (n > 1)
        qsort(p->tenants, n, sizeof *p->tenants, tenant_cmp);
    return 0;
}

/* With no rules, Cordum turns each tenant's deny_topics and allow_topics
 * into rules (deny first). Tenants go in name order, a total order where
 * Cordum's follows Go map order (cordum-ref 13.1). */
static int derive_tenant_rules(ref_policy *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_tenants; i++)
        n += (p->tenants[i].deny_topics.n > 0) + (p->tenants[i].allow_topics.n > 0);
    if (!n)
        return 0;
    p->rules = calloc(n, sizeof *p->rules);
    if (!p->rules)
        return CAP_ENOMEM;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < p->n_tenants; i++) {
            const ref_tenant *t = &p->tenants[i];
            const ref_strlist *topics = pass == 0 ? &t->deny_topics : &t->allow_topics;
            if (!topics->n)
                continue;
            ref_rule *r = &p->rules[p->n_rules++];
            char buf[CAP_YAML_PATH_MAX];
            r->match.secrets_present = -1;
            r->derived = 1;
            r->line = t->line;
            r->column = t->column;
            r->word = pass == 0 ? REF_WORD_DENY : REF_WORD_ALLOW;
            r->decision = ref_word_decision(r->word);
            snprintf(buf, sizeof buf, "tenant:%s:%s", t->name, pass == 0 ? "deny_topics" : "allow_topics");
            r->id = strdup(buf);
            snprintf(buf, sizeof buf, "topic %s for tenant %s", pass == 0 ? "denied" : "allowed", t->name);
            r->reason = strdup(buf);
            r->match.tenants.v = calloc(1, sizeof(char *));
            r->match.topics.v = calloc(topics->n, sizeof(char *));
            if (!r->id || !r->reason || !r->match.tenants.v || !r->match.topics.v)
                return CAP_ENOMEM;
            if (!(r->match.tenants.v[0] = strdup(t->name)))
                return CAP_ENOMEM;
            r->match.tenants.n = 1;
            for (size_t j = 0; j < topics->n; j++) {
                if (!(r->match.topics.v[j] = strdup(topics->v[j])))
                    return CAP_ENOMEM;
                r->match.topics.n = j + 1;
            }
        }
    }
    return 0;
}

/* ---- canonical form ---- */

static cJSON *strlist_json(const ref_strlist *l)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < l->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(l->v[i]));
    return a;
}

/* Adds a message in its proto3 JSON form (map keys sorted by the writer). */
static void add_message_json(cJSON *obj, const char *key, const ProtobufCMessage *m)
{
    char *text = NULL;
    if (cap_json_from_message(m, 0, &text) == 0)
        cJSON_AddItemToObject(obj, key, cJSON_Parse(text));
    free(text);
}

/* Keys are added in sorted order, so cJSON's output is canonical. Empty
 * criteria are left out: absent and empty mean the same. */
static cJSON *match_json(const ref_match *m)
{
    cJSON *o = cJSON_CreateObject();
    if (m->actor_ids.n)
        cJSON_AddItemToObject(o, "actor_ids", strlist_json(&m->actor_ids));
    if (m->actor_types.n)
        cJSON_AddItemToObject(o, "actor_types", strlist_json(&m->actor_types));
    if (m->capabilities.n)
        cJSON_AddItemToObject(o, "capabilities", strlist_json(&m->capabilities));
    if (m->n_label_allowlist) {
        cJSON *la = cJSON_AddObjectToObject(o, "label_allowlist");
        for (size_t i = 0; i < m->n_label_allowlist; i++)
            cJSON_AddItemToObject(la, m->label_allowlist[i].key,
                                  strlist_json(&m->label_allowlist[i].values));
    }
    if (m->n_label_threshold) {
        cJSON *lt = cJSON_AddObjectToObject(o, "label_threshold");
        for (size_t i = 0; i < m->n_label_threshold; i++)
            cJSON_AddNumberToObject(lt, m->label_threshold[i].key, m->label_threshold[i].max);
    }
    if (m->n_labels) {
        cJSON *l = cJSON_AddObjectToObject(o, "labels");
        for (size_t i = 0; i < m->n_labels; i++)
            cJSON_AddStringToObject(l, m->labels[i].key, m->labels[i].value);
    }
    if (m->pack_ids.n)
        cJSON_AddItemToObject(o, "pack_ids", strlist_json(&m->pack_ids));
    if (m->requires.n)
        cJSON_AddItemToObject(o, "requires", strlist_json(&m->requires));
    if (m->risk_tags.n)
        cJSON_AddItemToObject(o, "risk_tags", strlist_json(&m->risk_tags));
    if (m->secrets_present >= 0)
        cJSON_AddBoolToObject(o, "secrets_present", m->secrets_present);
    if (m->tenants.n)
        cJSON_AddItemToObject(o, "tenants", strlist_json(&m->tenants));
    if (m->topics.n)
        cJSON_AddItemToObject(o, "topics", strlist_json(&m->topics));
    return o;
}

static const char *vkey_text(const ref_velocity *v, char *buf, size_t n)
{
    switch (v->key) {
    case REF_VKEY_TOPIC: return "topic";
    case REF_VKEY_ACTOR_ID: return "actor_id";
    case REF_VKEY_TENANT_TOPIC: return "tenant:topic";
    case REF_VKEY_LABEL: snprintf(buf, n, "labels.%s", v->label); return buf;
    default: return "tenant";
    }
}

static cJSON *rule_json(const ref_rule *r)
{
    cJSON *o = cJSON_CreateObject();
    if (r->constraints)
        add_message_json(o, "constraints", &r->constraints->base);
    cJSON_AddStringToObject(o, "decision", ref_word_name(r->word));
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddItemToObject(o, "match", match_json(&r->match));
    cJSON_AddStringToObject(o, "reason", r->reason);
    if (r->n_remediations) {
        cJSON *a = cJSON_AddArrayToObject(o, "remediations");
        for (size_t i = 0; i < r->n_remediations; i++) {
            char *text = NULL;
            if (cap_json_from_message(&r->remediations[i]->base, 0, &text) == 0)
                cJSON_AddItemToArray(a, cJSON_Parse(text));
            free(text);
        }
    }
    if (r->has_velocity) {
        char buf[CAP_YAML_PATH_MAX];
        cJSON *v = cJSON_AddObjectToObject(o, "velocity");
        cJSON_AddStringToObject(v, "key", vkey_text(&r->velocity, buf, sizeof buf));
        cJSON_AddNumberToObject(v, "max_requests", (double)r->velocity.max_requests);
        cJSON_AddNumberToObject(v, "window_seconds", (double)r->velocity.window_seconds);
    }
    return o;
}

static char *canonical_json(const ref_policy *p)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON_AddStringToObject(root, "default_decision", ref_word_name(p->default_word));
    cJSON_AddStringToObject(root, "default_tenant", p->default_tenant);
    cJSON *rules = cJSON_AddArrayToObject(root, "rules");
    for (size_t i = 0; i < p->n_rules; i++)
        if (!p->rules[i].derived)
            cJSON_AddItemToArray(rules, rule_json(&p->rules[i]));
    cJSON *tenants = cJSON_AddObjectToObject(root, "tenants");
    for (size_t i = 0; i < p->n_tenants; i++) {
        const ref_tenant *t = &p->tenants[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "allow_topics", strlist_json(&t->allow_topics));
        cJSON_AddItemToObject(o, "deny_topics", strlist_json(&t->deny_topics));
        cJSON_AddNumberToObject(o, "max_concurrent_jobs", (double)t->max_concurrent_jobs);
        cJSON_AddItemToObject(tenants, t->name, o);
    }
    cJSON_AddStringToObject(root, "version", p->version);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static int make_snapshot(ref_policy *p)
{
    if (!(p->canonical = canonical_json(p)))
        return CAP_ENOMEM;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)p->canonical, strlen(p->canonical), md);
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(p->snapshot, sizeof p->snapshot, "%.30s%s%s", p->version, p->version[0] ? ":" : "",
             hex);
    return 0;
}

/* ---- the whole file ---- */

static const char *const TOP_KEYS[] = {
    "version", "rules", "default_decision", "default_tenant", "tenants", NULL,
};

static int parse_default(const cap_yaml_node *v, ref_policy *p, cap_yaml_diag *d)
{
    int rc = parse_string(v, "default_decision", &p->default_written, d);
    if (rc)
        return rc;
    p->default_line = v->line;
    p->default_column = v->column;
    ref_word w = ref_word_parse(p->default_written);
    /* Only allow/permit allows; deny, empty or a typo denies (fail closed,
     * as Cordum's current kernel does). A typo is reported by lint. */
    p->default_word = w == REF_WORD_ALLOW ? REF_WORD_ALLOW : REF_WORD_DENY;
    p->default_misspelled = p->default_written[0] && w != REF_WORD_ALLOW && w != REF_WORD_DENY;
    return 0;
}

static int parse_top(const cap_yaml_node *root, ref_policy *p, cap_yaml_diag *d)
{
    if (!root)
        return cap_yaml_fail(d, CAP_EPOLICY, NULL, "", "the policy is empty");
    if (root->kind != CAP_YAML_MAP)
        return cap_yaml_fail(d, CAP_EPOLICY, root, "", "a policy must be a mapping");
    int rc = check_keys(root, TOP_KEYS, "", d);
    if (rc)
        return rc;
    const cap_yaml_node *v;
    if ((v = cap_yaml_get(root, "version")) && (rc = parse_string(v, "version", &p->version, d)))
        return rc;
    if ((v = cap_yaml_get(root, "default_tenant")) &&
        (rc = parse_string(v, "default_tenant", &p->default_tenant, d)))
        return rc;
    if ((v = cap_yaml_get(root, "default_decision")) && (rc = parse_default(v, p, d)))
        return rc;
    if ((v = cap_yaml_get(root, "tenants")) && (rc = parse_tenants(v, p, d)))
        return rc;
    if ((v = cap_yaml_get(root, "rules")) && (rc = parse_rules(v, p, d)))
        return rc;
    if (!p->version && !(p->version = strdup("")))
        return CAP_ENOMEM;
    if (!p->default_written && !(p->default_written = strdup("")))
        return CAP_ENOMEM;
    if (!p->default_tenant || !p->default_tenant[0]) {
        free(p->default_tenant);
        if (!(p->default_tenant = strdup("default")))
            return CAP_ENOMEM;
    }
    lower_ascii(p->default_tenant);
    if (p->n_rules == 0 && (rc = derive_tenant_rules(p)))
        return rc;
    return make_snapshot(p);
}

int ref_policy_parse(const char *text, size_t len, ref_policy **out, cap_yaml_diag *d)
{
    *out = NULL;
    cap_yaml_diag local;
    if (!d)
        d = &local;
    cap_yaml_doc *doc = NULL;
    int rc = cap_yaml_parse(text, len, NULL, &doc, d);
    if (rc)
        return rc;
    ref_policy *p = calloc(1, sizeof *p);
    if (!p) {
        cap_yaml_free(doc);
        return CAP_ENOMEM;
    }
    p->default_word = REF_WORD_DENY;
    rc = parse_top(cap_yaml_root(doc), p, d);
    cap_yaml_free(doc);
    if (rc) {
        if (rc == CAP_ENOMEM && !d->err)
            cap_yaml_fail(d, CAP_ENOMEM, NULL, "", "out of memory");
        ref_policy_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ---- freeing and lookups ---- */

static void match_free(ref_match *m)
{
    strlist_free(&m->topics);
    for (size_t i = 0; i < m->n_labels; i++) {
        free(m->labels[i].key);
        free(m->labels[i].value);
    }
    free(m->labels);
    strlist_free(&m->risk_tags);
    strlist_free(&m->requires);
    strlist_free(&m->tenants);
    strlist_free(&m->capabilities);
    strlist_free(&m->actor_ids);
    strlist_free(&m->actor_types);
    strlist_free(&m->pack_ids);
    for (size_t i = 0; i < m->n_label_allowlist; i++) {
        free(m->label_allowlist[i].key);
        strlist_free(&m->label_allowlist[i].values);
    }
    free(m->label_allowlist);
    for (size_t i = 0; i < m->n_label_threshold; i++)
        free(m->label_threshold[i].key);
    free(m->label_threshold);
}

void ref_policy_free(ref_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_rules; i++) {
        ref_rule *r = &p->rules[i];
        free(r->id);
        free(r->reason);
        free(r->velocity.label);
        match_free(&r->match);
        if (r->constraints)
            cap_message_free(&r->constraints->base);
        for (size_t j = 0; j < r->n_remediations; j++)
            cap_message_free(&r->remediations[j]->base);
        free(r->remediations);
    }
    free(p->rules);
    for (size_t i = 0; i < p->n_tenants; i++) {
        free(p->tenants[i].name);
        strlist_free(&p->tenants[i].allow_topics);
        strlist_free(&p->tenants[i].deny_topics);
    }
    free(p->tenants);
    free(p->version);
    free(p->default_tenant);
    free(p->default_written);
    cJSON_free(p->canonical);
    free(p);
}

const char *ref_policy_canonical(const ref_policy *p)
{
    return p->canonical;
}

const char *ref_policy_snapshot(const ref_policy *p)
{
    return p->snapshot;
}

static const char *tenant_key(const void *base, size_t i)
{
    return ((const ref_tenant *)base)[i].name;
}

const ref_tenant *ref_policy_tenant(const ref_policy *p, const char *name)
{
    /* Names are stored lower-case, so case-insensitive comparison orders
     * them exactly as strcmp did when they were sorted. */
    size_t at;
    return p->n_tenants && ref_sorted_find(p->tenants, p->n_tenants, tenant_key, name, 1, &at)
               ? &p->tenants[at]
               : NULL;
}

const char *ref_snapshot_base(const char *snapshot, char *buf, size_t n)
{
    size_t len = strcspn(snapshot, "|");
    snprintf(buf, n, "%.*s", (int)len, snapshot);
    return buf;
}
