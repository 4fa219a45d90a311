/* The safety kernel. One evaluation routine serves both the fast check and
 * explain, so the two can never disagree; explain merely keeps going after
 * the first match and writes down why each criterion went the way it did. */
#include "ref_safety.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cap_error.h"
#include "cap_schema.h"
#include "ref_glob.h"
#include "ref_sorted.h"
#include "ref_velocity.h"

#define N_SNAPSHOTS 10
#define MAX_TENANTS 4096

/* A 64-bit signature per rule of the values it needs, and per request of
 * the values it has, for a one-instruction "cannot match" test before the
 * real one. Only a pre-filter: a pass is always confirmed in full. */
typedef struct {
    uint64_t must;     /* every one of these bits must be in the request */
    uint64_t any[6];   /* at least one bit of each must be in the request */
    int n_any;
    /* The rule's criteria (indexes into CRITERIA, in its order): those
     * present, found once when the policy is installed rather than asked
     * of every criterion at every check. */
    uint8_t crit[12];
    int n_crit;
} rule_filter;

typedef struct {
    char *name;  /* lower-case */
    int64_t active;
} tenant_count;

struct ref_safety {
    ref_policy *policy;
    uint64_t installs; /* policies swapped in so far (decision origins) */
    rule_filter *filters;
    int secrets; /* some rule has a secrets_present criterion */
    ref_velocity_store *velocity;
    char snapshots[N_SNAPSHOTS][sizeof ((ref_policy *)0)->snapshot];
    size_t n_snapshots;
    tenant_count *tenants;  /* sorted by name */
    size_t n_tenants, cap_tenants;
    size_t tenant_last;     /* where tenant_find found a tenant last (a hint) */
};

/* ---- the request as the kernel reads it ---- */

typedef struct {
    const char *job_id, *topic, *tenant, *actor_id, *actor_type, *capability, *pack_id;
    char *const *risk_tags;
    size_t n_risk_tags;
    char *const *requires;
    size_t n_requires;
    Cordum__Agent__V1__PolicyCheckRequest__LabelsEntry *const *labels;
    size_t n_labels;
    Cordum__Agent__V1__JobMetadata__LabelsEntry *const *meta_labels;
    size_t n_meta_labels;
    int secrets;       /* when read_input was asked to work it out */
    uint64_t sig;      /* input_sig, once a check needs it */
} input;

static const char *label_get(const input *in, const char *key)
{
    for (size_t i = 0; i < in->n_labels; i++)
        if (strcmp(in->labels[i]->key, key) == 0)
            return in->labels[i]->value;
    for (size_t i = 0; i < in->n_meta_labels; i++)
        if (strcmp(in->meta_labels[i]->key, key) == 0)
            return in->meta_labels[i]->value;
    return NULL;
}

static int has_tag(char *const *tags, size_t n, const char *tag)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(tags[i], tag) == 0)
            return 1;
    return 0;
}

static const char *nonnull(const char *s)
{
    return s ? s : "";
}

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv_add(uint64_t h, const char *s, int lower)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)(lower ? tolower((unsigned char)*s) : *s)) * FNV_PRIME;
    return h;
}

/* The signature bit of a value of one kind ('L' label, 'Q' requires, 'R'
 * risk tag, 'T' tenant, 'C' capability, 'A' actor, 'Y' actor type, 'P'
 * pack); b is a label's value. Case-folded kinds hash lower-case. */
static uint64_t sig_bit(char kind, const char *a, const char *b, int lower)
{
    uint64_t h = (FNV_OFFSET ^ (unsigned char)kind) * FNV_PRIME;
    h = fnv_add(h, a, lower);
    if (b)
        h = fnv_add((h ^ 0x1f) * FNV_PRIME, b, 0);
    return 1ull << (h >> 58);
}

static const char *actor_type_name(Cordum__Agent__V1__ActorType t)
{
    switch (t) {
    case CORDUM__AGENT__V1__ACTOR_TYPE__ACTOR_TYPE_HUMAN: return "human";
    case CORDUM__AGENT__V1__ACTOR_TYPE__ACTOR_TYPE_SERVICE: return "service";
    default: return "";
    }
}

/* The request as the kernel reads it; secrets: whether to work out
 * in->secrets (only a rule with a secrets_present criterion reads it). */
static void read_input(const ref_policy *p, const Cordum__Agent__V1__PolicyCheckRequest *r,
                       int secrets, input *in)
{
    const Cordum__Agent__V1__JobMetadata *m = r->meta;
    const Cordum__Agent__V1__IdentityBinding *id = r->identity;
    memset(in, 0, sizeof *in);
    in->job_id = nonnull(r->job_id);
    in->topic = nonnull(r->topic);
    in->tenant = nonnull(r->tenant);
    if (!in->tenant[0] && m)
        in->tenant = nonnull(m->tenant_id);
    if (!in->tenant[0] && id)
        in->tenant = nonnull(id->tenant_id);
    if (!in->tenant[0])
        in->tenant = p ? p->default_tenant : "default";
    in->actor_id = m ? nonnull(m->actor_id) : "";
    if (!in->actor_id[0] && id)
        in->actor_id = nonnull(id->actor_id);
    in->actor_type = m ? actor_type_name(m->actor_type) : "";
    in->capability = m ? nonnull(m->capability) : "";
    in->pack_id = m ? nonnull(m->pack_id) : "";
    if (m) {
        in->risk_tags = m->risk_tags;
        in->n_risk_tags = m->n_risk_tags;
        in->requires = m->requires;
        in->n_requires = m->n_requires;
        in->meta_labels = m->labels;
        in->n_meta_labels = m->n_labels;
    }
    in->labels = r->labels;
    in->n_labels = r->n_labels;
    if (secrets) {
        const char *sp = label_get(in, "secrets_present");
        in->secrets = (sp && strcasecmp(sp, "true") == 0) ||
                      has_tag(in->risk_tags, in->n_risk_tags, "secrets");
    }
}

/* The request's signature (rule_filter). */
static uint64_t input_sig(const input *in)
{
    uint64_t s = 0;
    for (size_t i = 0; i < in->n_labels; i++)
        s |= sig_bit('L', in->labels[i]->key, in->labels[i]->value, 0);
    for (size_t i = 0; i < in->n_meta_labels; i++)
        s |= sig_bit('L', in->meta_labels[i]->key, in->meta_labels[i]->value, 0);
    for (size_t i = 0; i < in->n_requires; i++)
        s |= sig_bit('Q', in->requires[i], NULL, 0);
    for (size_t i = 0; i < in->n_risk_tags; i++)
        s |= sig_bit('R', in->risk_tags[i], NULL, 0);
    static const char kinds[] = "TCAYP";
    const char *vals[] = {in->tenant, in->capability, in->actor_id, in->actor_type, in->pack_id};
    for (int i = 0; i < 5; i++)
        if (vals[i][0])
            s |= sig_bit(kinds[i], vals[i], NULL, 1);
    return s;
}

/* ---- criteria ---- */

/* Writes an explanation when asked for one (why != NULL); say() makes
 * no call when none is (the fast check). */
static void say_f(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define say(why, ...) ((why) ? say_f((why), __VA_ARGS__) : (void)0)
static void say_f(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof ((ref_explain_criterion *)0)->why, fmt, ap);
    va_end(ap);
}

static int crit_topics(const ref_match *m, const input *in, char *why)
{
    for (size_t i = 0; i < m->topics.n; i++)
        if (ref_glob_match(m->topics.v[i], in->topic)) {
            say(why, "topic \"%s\" matches \"%s\"", in->topic, m->topics.v[i]);
            return 1;
        }
    say(why, "topic \"%s\" matches none of the %zu glob(s)", in->topic, m->topics.n);
    return 0;
}

static int crit_labels(const ref_match *m, const input *in, char *why)
{
    for (size_t i = 0; i < m->n_labels; i++) {
        const char *v = label_get(in, m->labels[i].key);
        if (!v) {
            say(why, "label %s is absent (rule wants \"%s\")", m->labels[i].key, m->labels[i].value);
            return 0;
        }
        if (strcmp(v, m->labels[i].value) != 0) {
            say(why, "label %s is \"%s\" (rule wants \"%s\")", m->labels[i].key, v,
                m->labels[i].value);
            return 0;
        }
    }
    say(why, "all %zu label(s) equal", m->n_labels);
    return 1;
}

static int crit_risk_tags(const ref_match *m, const input *in, char *why)
{
    for (size_t i = 0; i < m->risk_tags.n; i++)
        if (has_tag(in->risk_tags, in->n_risk_tags, m->risk_tags.v[i])) {
            say(why, "job has risk tag \"%s\"", m->risk_tags.v[i]);
            return 1;
        }
    say(why, "job has none of the %zu risk tag(s) (it has %zu)", m->risk_tags.n, in->n_risk_tags);
    return 0;
}

static int crit_requires(const ref_match *m, const input *in, char *why)
{
    for (size_t i = 0; i < m->requires.n; i++)
        if (!has_tag(in->requires, in->n_requires, m->requires.v[i])) {
            say(why, "job does not require \"%s\"", m->requires.v[i]);
            return 0;
        }
    say(why, "job requires all %zu", m->requires.n);
    return 1;
}

/* One of the "job value is in the list" criteria (case-insensitive). */
static int in_list(const char *name, const ref_strlist *l, const char *v, char *why)
{
    if (!v[0]) {
        say(why, "job has no %s (an empty value never matches)", name);
        return 0;
    }
    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->v[i], v) == 0) {
            say(why, "%s \"%s\" is listed", name, v);
            return 1;
        }
    say(why, "%s \"%s\" is not among the %zu listed", name, v, l->n);
    return 0;
}

static int crit_tenants(const ref_match *m, const input *in, char *why)
{
    return in_list("tenant", &m->tenants, in->tenant, why);
}
static int crit_capabilities(const ref_match *m, const input *in, char *why)
{
    return in_list("capability", &m->capabilities, in->capability, why);
}
static int crit_actor_ids(const ref_match *m, const input *in, char *why)
{
    return in_list("actor_id", &m->actor_ids, in->actor_id, why);
}
static int crit_actor_types(const ref_match *m, const input *in, char *why)
{
    return in_list("actor_type", &m->actor_types, in->actor_type, why);
}
static int crit_pack_ids(const ref_match *m, const input *in, char *why)
{
    return in_list("pack_id", &m->pack_ids, in->pack_id, why);
}

static int crit_label_allowlist(const ref_match *m, const input *in, char *why)
{
    for (size_t i = 0; i < m->n_label_allowlist; i++) {
        const ref_label_allow *a = &m->label_allowlist[i];
        const char *v = label_get(in, a->key);
        if (v && !has_tag(a->values.v, a->values.n, v)) {
            say(why, "label %s is \"%s\", outside its allow-list", a->key, v);
            return 1;
        }
    }
    say(why, "no label outside its allow-list");
    return 0;
}

static int crit_label_threshold(const ref_match *m, const input *in, char *why)
{
    for (size_t i = 0; i < m->n_label_threshold; i++) {
        const ref_label_threshold *t = &m->label_threshold[i];
        const char *v = label_get(in, t->key);
        char *end;
        double x = v ? strtod(v, &end) : 0;
        if (v && end != v && *end == '\0' && x > t->max) {
            say(why, "label %s is %s, above %g", t->key, v, t->max);
            return 1;
        }
    }
    say(why, "no numeric label above its threshold");
    return 0;
}

static int crit_secrets(const ref_match *m, const input *in, char *why)
{
    say(why, "secrets %s, rule wants %s", in->secrets ? "present" : "absent",
        m->secrets_present ? "present" : "absent");
    return in->secrets == m->secrets_present;
}

static int has_topics(const ref_match *m) { return m->topics.n > 0; }
static int has_labels(const ref_match *m) { return m->n_labels > 0; }
static int has_risk(const ref_match *m) { return m->risk_tags.n > 0; }
static int has_requires(const ref_match *m) { return m->requires.n > 0; }
static int has_tenants(const ref_match *m) { return m->tenants.n > 0; }
static int has_caps(const ref_match *m) { return m->capabilities.n > 0; }
static int has_actors(const ref_match *m) { return m->actor_ids.n > 0; }
static int has_actor_types(const ref_match *m) { return m->actor_types.n > 0; }
static int has_packs(const ref_match *m) { return m->pack_ids.n > 0; }
static int has_allowlist(const ref_match *m) { return m->n_label_allowlist > 0; }
static int has_threshold(const ref_match *m) { return m->n_label_threshold > 0; }
static int has_secrets(const ref_match *m) { return m->secrets_present >= 0; }

/* Cheap criteria first, so the fast path fails early. */
static const struct {
    const char *name;
    int (*present)(const ref_match *);
    int (*eval)(const ref_match *, const input *, char *);
} CRITERIA[] = {
    {"tenants", has_tenants, crit_tenants},
    {"labels", has_labels, crit_labels},
    {"risk_tags", has_risk, crit_risk_tags},
    {"requires", has_requires, crit_requires},
    {"capabilities", has_caps, crit_capabilities},
    {"actor_ids", has_actors, crit_actor_ids},
    {"actor_types", has_actor_types, crit_actor_types},
    {"pack_ids", has_packs, crit_pack_ids},
    {"secrets_present", has_secrets, crit_secrets},
    {"topics", has_topics, crit_topics},
    {"label_allowlist", has_allowlist, crit_label_allowlist},
    {"label_threshold", has_threshold, crit_label_threshold},
};
#define N_CRITERIA (sizeof CRITERIA / sizeof CRITERIA[0])
_Static_assert(N_CRITERIA <= sizeof((rule_filter *)0)->crit, "rule_filter.crit holds every criterion");

/* ---- rule filters ---- */

static uint64_t list_bits(char kind, const ref_strlist *l, int lower)
{
    uint64_t b = 0;
    for (size_t i = 0; i < l->n; i++)
        b |= sig_bit(kind, l->v[i], NULL, lower);
    return b;
}

static void build_filter(const ref_rule *r, rule_filter *f)
{
    const ref_match *m = &r->match;
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < m->n_labels; i++)
        f->must |= sig_bit('L', m->labels[i].key, m->labels[i].value, 0);
    f->must |= list_bits('Q', &m->requires, 0);
    const struct {
        char kind;
        const ref_strlist *l;
        int lower;
    } any[] = {
        {'R', &m->risk_tags, 0}, {'T', &m->tenants, 1},     {'C', &m->capabilities, 1},
        {'A', &m->actor_ids, 1}, {'Y', &m->actor_types, 1}, {'P', &m->pack_ids, 1},
    };
    for (size_t i = 0; i < sizeof any / sizeof any[0]; i++)
        if (any[i].l->n)
            f->any[f->n_any++] = list_bits(any[i].kind, any[i].l, any[i].lower);
    for (size_t i = 0; i < N_CRITERIA; i++)
        if (CRITERIA[i].present(m))
            f->crit[f->n_crit++] = (uint8_t)i;
}

static int filter_pass(const rule_filter *f, uint64_t sig)
{
    if ((sig & f->must) != f->must)
        return 0;
    for (int i = 0; i < f->n_any; i++)
        if (!(sig & f->any[i]))
            return 0;
    return 1;
}

/* ---- kernel lifetime ---- */

ref_safety *ref_safety_new(void)
{
    ref_safety *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    if (!(k->velocity = ref_velocity_store_new(0, 0))) {
        free(k);
        return NULL;
    }
    return k;
}

void ref_safety_free(ref_safety *k)
{
    if (!k)
        return;
    ref_policy_free(k->policy);
    free(k->filters);
    ref_velocity_store_free(k->velocity);
    for (size_t i = 0; i < k->n_tenants; i++)
        free(k->tenants[i].name);
    free(k->tenants);
    free(k);
}

int ref_safety_install(ref_safety *k, ref_policy *p)
{
    if (k->policy && strcmp(k->policy->snapshot, p->snapshot) == 0) {
        ref_policy_free(p);
        return 1;
    }
    rule_filter *filters = calloc(p->n_rules ? p->n_rules : 1, sizeof *filters);
    if (!filters) {
        ref_policy_free(p);
        return CAP_ENOMEM;
    }
    int secrets = 0;
    for (size_t i = 0; i < p->n_rules; i++) {
        build_filter(&p->rules[i], &filters[i]);
        secrets |= has_secrets(&p->rules[i].match);
    }
    ref_policy_free(k->policy);
    free(k->filters);
    k->policy = p;
    k->filters = filters;
    k->secrets = secrets;
    k->installs++;
    /* Snapshot history, newest first, at most N_SNAPSHOTS. */
    size_t keep = k->n_snapshots < N_SNAPSHOTS ? k->n_snapshots : N_SNAPSHOTS - 1;
    memmove(k->snapshots[1], k->snapshots[0], keep * sizeof k->snapshots[0]);
    memcpy(k->snapshots[0], p->snapshot, sizeof k->snapshots[0]);
    k->n_snapshots = keep + 1;
    return 0;
}

int ref_safety_load(ref_safety *k, const char *text, size_t len, cap_yaml_diag *d)
{
    ref_policy *p;
    int rc = ref_policy_parse(text, len, &p, d);
    return rc ? rc : ref_safety_install(k, p);
}

const ref_policy *ref_safety_policy(const ref_safety *k)
{
    return k->policy;
}

size_t ref_safety_snapshots(const ref_safety *k, const char **out, size_t max)
{
    size_t n = k->n_snapshots < max ? k->n_snapshots : max;
    for (size_t i = 0; i < n; i++)
        out[i] = k->snapshots[i];
    return n;
}

/* ---- tenant concurrency ---- */

static const char *count_key(const void *base, size_t i)
{
    return ((const tenant_count *)base)[i].name;
}

/* Names are stored lower-case, so a case-insensitive search keeps order.
 * The tenant found last is tried first: a scheduler's jobs come mostly
 * from a few tenants, one after another. */
static tenant_count *tenant_find(const ref_safety *k, const char *name, size_t *at)
{
    size_t pos = k->tenant_last;
    if (pos < k->n_tenants && strcasecmp(k->tenants[pos].name, name) == 0)
        return &k->tenants[pos];
    if (ref_sorted_find(k->tenants, k->n_tenants, count_key, name, 1, &pos)) {
        /* a hint, not part of the kernel's value (k was allocated
         * non-const by ref_safety_new) */
        ((ref_safety *)k)->tenant_last = pos;
        return &k->tenants[pos];
    }
    if (at)
        *at = pos;
    return NULL;
}

int ref_safety_job_started(ref_safety *k, const char *tenant)
{
    size_t at = 0;
    tenant_count *t = tenant_find(k, tenant, &at);
    if (t) {
        t->active++;
        return 0;
    }
    if (k->n_tenants >= MAX_TENANTS)
        return CAP_EFULL;
    if (k->n_tenants == k->cap_tenants) {
        size_t nc = k->cap_tenants ? k->cap_tenants * 2 : 8;
        tenant_count *nt = realloc(k->tenants, nc * sizeof *nt);
        if (!nt)
            return CAP_ENOMEM;
        k->tenants = nt;
        k->cap_tenants = nc;
    }
    char *name = strdup(tenant);
    if (!name)
        return CAP_ENOMEM;
    for (char *c = name; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    memmove(&k->tenants[at + 1], &k->tenants[at], (k->n_tenants - at) * sizeof *k->tenants);
    k->tenants[at].name = name;
    k->tenants[at].active = 1;
    k->n_tenants++;
    return 0;
}

void ref_safety_job_ended(ref_safety *k, const char *tenant)
{
    tenant_count *t = tenant_find(k, tenant, NULL);
    if (t && t->active > 0)
        t->active--;
}

void ref_safety_reset_active(ref_safety *k)
{
    for (size_t i = 0; k && i < k->n_tenants; i++)
        k->tenants[i].active = 0;
}

int64_t ref_safety_active_jobs(const ref_safety *k, const char *tenant)
{
    const tenant_count *t = tenant_find(k, tenant, NULL);
    return t ? t->active : 0;
}

/* ---- evaluation ---- */

static const char *velocity_key(const ref_velocity *v, const input *in, char *buf, size_t n)
{
    switch (v->key) {
    case REF_VKEY_TOPIC: return in->topic;
    case REF_VKEY_ACTOR_ID: return in->actor_id;
    case REF_VKEY_TENANT_TOPIC: snprintf(buf, n, "%s:%s", in->tenant, in->topic); return buf;
    case REF_VKEY_LABEL: return nonnull(label_get(in, v->label));
    default: return in->tenant;
    }
}

/* Whether every criterion of r (those present: f->crit) matches. With ex,
 * every criterion is evaluated and explained; without, it stops at the
 * first failure. */
static int eval_criteria(const ref_rule *r, const rule_filter *f, const input *in,
                         ref_explain_rule *ex)
{
    int all = 1;
    for (int k = 0; k < f->n_crit && (all || ex); k++) {
        size_t i = f->crit[k];
        ref_explain_criterion *c = ex ? &ex->criteria[ex->n_criteria++] : NULL;
        int ok = CRITERIA[i].eval(&r->match, in, c ? c->why : NULL);
        if (c) {
            c->criterion = CRITERIA[i].name;
            c->matched = ok;
        }
        all = all && ok;
    }
    if (ex && ex->n_criteria == 0) {
        ref_explain_criterion *c = &ex->criteria[ex->n_criteria++];
        c->criterion = "match";
        c->matched = 1;
        say(c->why, "no criteria: matches every request");
    }
    return all;
}

/* The velocity gate of a rule whose criteria matched: 1 when the window
 * (counting this request) holds more than max_requests. */
static int velocity_exceeded(ref_safety *k, const ref_rule *r, const input *in, int64_t now,
                             int record, ref_explain_rule *ex)
{
    char buf[512];
    const char *key = velocity_key(&r->velocity, in, buf, sizeof buf);
    int64_t count = ref_velocity_hit(k->velocity, r->id, key, r->velocity.window_seconds * 1000000000,
                                     r->velocity.max_requests, now, record);
    /* Out of memory: count it as exceeded, so the rule (usually a
     * throttle) holds rather than lets traffic through. */
    int exceeded = count < 0 || count > r->velocity.max_requests;
    if (ex) {
        ref_explain_criterion *c = &ex->criteria[ex->n_criteria++];
        c->criterion = "velocity";
        c->matched = exceeded;
        say(c->why, "%s%lld request(s) for key \"%.60s\" in %llds, limit %lld%s",
            count > r->velocity.max_requests ? "over: " : "", (long long)count, key,
            (long long)r->velocity.window_seconds, (long long)r->velocity.max_requests,
            record ? "" : " (dry run)");
    }
    return exceeded;
}

/* Whether rule i of the installed policy matches: its criteria
 * (*criteria_ok), then its velocity gate (the request recorded in the
 * window unless explaining, er != NULL). */
static int rule_matches(ref_safety *k, size_t i, const input *in, int64_t now,
                        ref_explain_rule *er, int *criteria_ok)
{
    const ref_rule *r = &k->policy->rules[i];
    *criteria_ok = eval_criteria(r, &k->filters[i], in, er);
    if (*criteria_ok && r->has_velocity)
        return velocity_exceeded(k, r, in, now, !er, er);
    return *criteria_ok;
}

static void set_decision(ref_safety_decision *out, Cordum__Agent__V1__DecisionType d,
                         const char *rule_id, const char *reason)
{
    out->decision = d;
    out->rule_id = rule_id;
    size_t n = strlen(reason);
    if (n > REF_REASON_MAX)
        n = REF_REASON_MAX;
    memcpy(out->reason, reason, n);
    out->reason[n] = '\0';
}

static void set_reason(ref_safety_decision *out, Cordum__Agent__V1__DecisionType d,
                       const char *rule_id, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_reason(ref_safety_decision *out, Cordum__Agent__V1__DecisionType d,
                       const char *rule_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
    out->decision = d;
    out->rule_id = rule_id;
    out->origin = 0; /* a reason written for this request */
}

static int allow_class(Cordum__Agent__V1__DecisionType d)
{
    return d == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW ||
           d == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS;
}

static int topics_match(const ref_strlist *l, const char *topic, const char **which)
{
    for (size_t i = 0; i < l->n; i++)
        if (ref_glob_match(l->v[i], topic)) {
            *which = l->v[i];
            return 1;
        }
    return 0;
}

/* Step 4: the tenant's own topic lists and concurrency cap. Returns the
 * stage name when it changed the decision, else NULL. */
static const char *tenant_step(const ref_safety *k, const input *in, ref_safety_decision *out,
                               char *note, size_t note_len)
{
    const ref_tenant *t = ref_policy_tenant(k->policy, in->tenant);
    if (!t) {
        if (note)
            snprintf(note, note_len, "tenant \"%s\" has no entry under tenants", in->tenant);
        return NULL;
    }
    const char *g;
    if (topics_match(&t->deny_topics, in->topic, &g)) {
        set_reason(out, CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY, "",
                   "topic %s is in tenant %s's deny_topics (%s)", in->topic, t->name, g);
        if (note)
            snprintf(note, note_len, "DENY: topic matches deny_topics \"%s\"", g);
        return "tenant-topics";
    }
    if (t->allow_topics.n && !topics_match(&t->allow_topics, in->topic, &g)) {
        set_reason(out, CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY, "",
                   "topic %s is not in tenant %s's allow_topics", in->topic, t->name);
        if (note)
            snprintf(note, note_len, "DENY: topic matches none of allow_topics");
        return "tenant-topics";
    }
    int64_t active = ref_safety_active_jobs(k, in->tenant);
    if (t->max_concurrent_jobs > 0 && active >= t->max_concurrent_jobs) {
        set_reason(out, CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_THROTTLE, "",
                   "tenant %s has %lld active job(s), at its max_concurrent_jobs of %lld",
                   t->name, (long long)active, (long long)t->max_concurrent_jobs);
        out->constraints = NULL;
        if (note)
            snprintf(note, note_len, "THROTTLE: %lld active, cap %lld", (long long)active,
                     (long long)t->max_concurrent_jobs);
        return "tenant-concurrency";
    }
    if (note)
        snprintf(note, note_len, "tenant \"%s\": topic lists pass, %lld active of cap %lld",
                 t->name, (long long)active, (long long)t->max_concurrent_jobs);
    return NULL;
}

/* The one evaluation: with ex it is a dry run that records everything. */
static const char *evaluate(ref_safety *k, const Cordum__Agent__V1__PolicyCheckRequest *req,
                            int64_t now, ref_safety_decision *out, ref_explain *ex)
{
    static const Cordum__Agent__V1__DecisionType DENY =
        CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_DENY;
    const ref_policy *p = k->policy;
    input in;
    read_input(p, req, k->secrets, &in);
    /* Every member is set here or (decision, rule_id, reason) by the step
     * that decides: no clearing of the reason's whole buffer per check. */
    out->decision = 0;
    out->rule_id = "";
    out->reason[0] = '\0';
    out->constraints = NULL;
    out->remediations = NULL;
    out->n_remediations = 0;
    out->approval_required = 0;
    out->origin = 0;
    out->policy_snapshot = p ? p->snapshot : "";
    out->approval_ref = "";
    out->tenant = in.tenant;
    char *topic_note = ex ? ex->topic_check : NULL;
    if (!p) {
        set_decision(out, DENY, "", "no safety policy is loaded (fail closed)");
        return "no-policy";
    }
    const char *tp = in.topic;
    if (!(tp[0] == 'j' && tp[1] == 'o' && tp[2] == 'b' && tp[3] == '.')) { /* "" fails at once */
        if (in.topic[0])
            set_reason(out, DENY, "", "unsupported topic %s (not under job.)", in.topic);
        else
            set_decision(out, DENY, "", "missing topic");
        say(topic_note, "DENY: %s", out->reason);
        return "topic";
    }
    say(topic_note, "topic \"%s\" is under job.", in.topic);

    const ref_rule *fired = NULL;
    size_t i = 0;
    if (!ex && p->n_rules) {
        /* The first rule goes straight to its criteria: when it decides
         * (often), the request's signature is never made. */
        int criteria_ok;
        if (rule_matches(k, 0, &in, now, NULL, &criteria_ok))
            fired = &p->rules[0];
        i = fired ? p->n_rules : 1; /* decided, or on to the others */
        if (!fired)
            in.sig = input_sig(&in);
    }
    for (; i < p->n_rules; i++) {
        const ref_rule *r = &p->rules[i];
        ref_explain_rule *er = ex ? &ex->rules[i] : NULL;
        if (!er && !filter_pass(&k->filters[i], in.sig))
            continue;
        if (er)
            er->rule = r;
        int criteria_ok;
        int match = rule_matches(k, i, &in, now, er, &criteria_ok);
        if (er) {
            er->outcome = fired ? REF_RULE_NOT_REACHED
                          : match ? REF_RULE_FIRED
                          : criteria_ok ? REF_RULE_VELOCITY_OK
                          : REF_RULE_NO_MATCH;
            er->would_match = match;
        }
        if (match && !fired) {
            fired = r;
            if (!ex)
                break;
        }
    }
    if (ex)
        ex->n_rules = p->n_rules;

    const char *stage;
    if (fired) {
        set_decision(out, fired->decision, fired->id, fired->reason);
        out->origin = k->installs << 32 | (uint64_t)(fired - p->rules + 1);
        out->constraints = fired->constraints;
        out->remediations = fired->remediations;
        out->n_remediations = fired->n_remediations;
        stage = "rule";
    } else {
        set_reason(out, ref_word_decision(p->default_word), "", "no rule matched; default_decision %s%s",
                   ref_word_name(p->default_word), p->default_misspelled ? " (misspelled, read as deny)" : "");
        out->origin = k->installs << 32; /* the same text for every request */
        stage = "default";
    }
    if (allow_class(out->decision)) {
        const char *t = tenant_step(k, &in, out, ex ? ex->tenant_check : NULL,
                                    ex ? sizeof ex->tenant_check : 0);
        if (t)
            stage = t;
    }
    if (out->decision == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_REQUIRE_HUMAN) {
        out->approval_required = 1;
        out->approval_ref = in.job_id;
    }
    return stage;
}

int ref_safety_check(ref_safety *k, const Cordum__Agent__V1__PolicyCheckRequest *req, int64_t now,
                     ref_safety_decision *out)
{
    evaluate(k, req, now, out, NULL);
    return 0;
}

int ref_safety_explain(ref_safety *k, const Cordum__Agent__V1__PolicyCheckRequest *req, int64_t now,
                       ref_explain *out)
{
    memset(out, 0, sizeof *out);
    size_t n = k->policy ? k->policy->n_rules : 0;
    if (n) {
        out->rules = calloc(n, sizeof *out->rules);
        if (!out->rules)
            return CAP_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            /* every criterion, plus velocity */
            out->rules[i].criteria = calloc(N_CRITERIA + 1, sizeof *out->rules[i].criteria);
            if (!out->rules[i].criteria) {
                out->n_rules = n;
                ref_explain_free(out);
                return CAP_ENOMEM;
            }
        }
    }
    out->stage = evaluate(k, req, now, &out->decision, out);
    if (out->n_rules == 0 && out->rules) {
        /* Decided before the rules (no policy, bad topic): none to show. */
        for (size_t i = 0; i < n; i++)
            free(out->rules[i].criteria);
        free(out->rules);
        out->rules = NULL;
    }
    return 0;
}

void ref_explain_free(ref_explain *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_rules; i++)
        free(e->rules[i].criteria);
    free(e->rules);
    e->rules = NULL;
    e->n_rules = 0;
}

/* ---- wire shapes ---- */

void ref_safety_response(const ref_safety_decision *dec, Cordum__Agent__V1__PolicyCheckResponse *resp)
{
    cordum__agent__v1__policy_check_response__init(resp);
    resp->decision = dec->decision;
    resp->reason = (char *)dec->reason;
    resp->policy_snapshot = (char *)dec->policy_snapshot;
    resp->rule_id = (char *)dec->rule_id;
    resp->constraints = (Cordum__Agent__V1__PolicyConstraints *)dec->constraints;
    resp->approval_required = dec->approval_required;
    resp->approval_ref = (char *)dec->approval_ref;
    resp->n_remediations = dec->n_remediations;
    resp->remediations = (Cordum__Agent__V1__PolicyRemediation **)dec->remediations;
}

void ref_safety_response_release(Cordum__Agent__V1__PolicyCheckResponse *resp)
{
    /* Nothing is owned: forget the borrowed pointers. */
    cordum__agent__v1__policy_check_response__init(resp);
}

void ref_safety_request_view(const Cordum__Agent__V1__JobRequest *job,
                             Cordum__Agent__V1__PolicyCheckRequest *out)
{
    Cordum__Agent__V1__PolicyCheckRequest view = CORDUM__AGENT__V1__POLICY_CHECK_REQUEST__INIT;
    view.job_id = job->job_id;
    view.topic = job->topic;
    view.tenant = job->tenant_id;
    view.priority = job->priority;
    view.budget = job->budget;
    view.principal_id = job->principal_id;
    view.n_labels = job->n_labels;
    view.labels = (Cordum__Agent__V1__PolicyCheckRequest__LabelsEntry **)job->labels;
    view.memory_id = job->memory_id;
    view.meta = job->meta;
    view.identity = job->identity;
    view.input_ref = job->context_ref;
    *out = view;
}

Cordum__Agent__V1__PolicyCheckRequest *ref_safety_request_from_job(const Cordum__Agent__V1__JobRequest *job)
{
    /* Pack the borrowed view and unpack it: the result is a deep copy with
     * the request's own types (the label map entries of both messages have
     * the same wire shape). */
    Cordum__Agent__V1__PolicyCheckRequest view;
    ref_safety_request_view(job, &view);
    size_t n = protobuf_c_message_get_packed_size(&view.base);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(&view.base, buf);
    Cordum__Agent__V1__PolicyCheckRequest *req =
        cordum__agent__v1__policy_check_request__unpack(NULL, n, buf);
    free(buf);
    return req;
}
