/* Policy lint. Shadowing uses a conservative containment test per
 * criterion: a warning is only given when containment is certain. */
#include "ref_lint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "ref_glob.h"

static int list_has(const ref_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

/* Every value of sub is in sup. */
static int subset(const ref_strlist *sub, const ref_strlist *sup)
{
    for (size_t i = 0; i < sub->n; i++)
        if (!list_has(sup, sub->v[i]))
            return 0;
    return 1;
}

/* "Value is in the list" (and "any of"): b is at least as narrow as a when
 * a has no list, or b has a non-empty list inside a's. */
static int in_list_covers(const ref_strlist *a, const ref_strlist *b)
{
    return a->n == 0 || (b->n > 0 && subset(b, a));
}

/* Every name glob g2 matches is matched by g1. */
static int glob_covers(const char *g1, const char *g2)
{
    if (strcmp(g1, g2) == 0)
        return 1;
    if (ref_glob_is_literal(g2))
        return ref_glob_match(g1, g2);
    size_t p = ref_glob_literal_prefix(g1);
    /* g1 = P* : names starting with P and without '/'. */
    return g1[p] == '*' && g1[p + 1] == '\0' && strncmp(g2, g1, p) == 0 &&
           !strpbrk(g2, "/[");
}

static int topics_cover(const ref_strlist *a, const ref_strlist *b)
{
    if (a->n == 0)
        return 1;
    if (b->n == 0)
        return 0;
    for (size_t j = 0; j < b->n; j++) {
        int covered = 0;
        for (size_t i = 0; i < a->n && !covered; i++)
            covered = glob_covers(a->v[i], b->v[j]);
        if (!covered)
            return 0;
    }
    return 1;
}

static int labels_cover(const ref_match *a, const ref_match *b)
{
    for (size_t i = 0; i < a->n_labels; i++) {
        int found = 0;
        for (size_t j = 0; j < b->n_labels && !found; j++)
            found = strcmp(a->labels[i].key, b->labels[j].key) == 0 &&
                    strcmp(a->labels[i].value, b->labels[j].value) == 0;
        if (!found)
            return 0;
    }
    return 1;
}

int ref_rule_covers(const ref_rule *a, const ref_rule *b)
{
    const ref_match *x = &a->match, *y = &b->match;
    /* Criteria whose containment is not worked out: only an absent one in
     * a is certain to cover. */
    if (x->n_label_allowlist || x->n_label_threshold)
        return 0;
    if (x->secrets_present >= 0 && x->secrets_present != y->secrets_present)
        return 0;
    return topics_cover(&x->topics, &y->topics) && labels_cover(x, y) &&
           subset(&x->requires, &y->requires) && in_list_covers(&x->risk_tags, &y->risk_tags) &&
           in_list_covers(&x->tenants, &y->tenants) &&
           in_list_covers(&x->capabilities, &y->capabilities) &&
           in_list_covers(&x->actor_ids, &y->actor_ids) &&
           in_list_covers(&x->actor_types, &y->actor_types) &&
           in_list_covers(&x->pack_ids, &y->pack_ids);
}

static int match_is_empty(const ref_match *m)
{
    return !m->topics.n && !m->n_labels && !m->risk_tags.n && !m->requires.n && !m->tenants.n &&
           !m->capabilities.n && !m->actor_ids.n && !m->actor_types.n && !m->pack_ids.n &&
           !m->n_label_allowlist && !m->n_label_threshold && m->secrets_present < 0;
}

typedef struct {
    ref_lint_item *v;
    size_t n, cap;
    int oom;
} sink;

static void add(sink *s, const char *code, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(sink *s, const char *code, int line, int column, const char *fmt, ...)
{
    if (s->oom)
        return;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        ref_lint_item *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) {
            s->oom = 1;
            return;
        }
        s->v = nv;
        s->cap = nc;
    }
    ref_lint_item *it = &s->v[s->n++];
    it->code = code;
    it->line = line;
    it->column = column;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof it->message, fmt, ap);
    va_end(ap);
}

/* A glob can match a job.* topic only if its literal prefix agrees with
 * "job." as far as both go. */
static int glob_may_match_job(const char *g)
{
    size_t p = ref_glob_literal_prefix(g);
    size_t n = p < 4 ? p : 4;
    return strncmp(g, "job.", n) == 0 && (p >= 4 || g[p] != '\0');
}

static void lint_rule(const ref_policy *p, size_t i, sink *s)
{
    const ref_rule *r = &p->rules[i];
    for (size_t t = 0; t < r->match.topics.n; t++)
        if (!glob_may_match_job(r->match.topics.v[t]))
            add(s, "unreachable-topic", r->line, r->column,
                "rule \"%s\": topic glob \"%s\" can never match, because topics outside job. "
                "are denied before any rule",
                r->id, r->match.topics.v[t]);
    if (r->word == REF_WORD_ALLOW_WITH_CONSTRAINTS && !r->constraints)
        add(s, "empty-constraints", r->line, r->column,
            "rule \"%s\": allow_with_constraints without constraints", r->id);
    if (r->constraints && r->decision != CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW &&
        r->decision != CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS)
        add(s, "unused-constraints", r->line, r->column,
            "rule \"%s\": constraints on a %s rule do not bound anything that runs", r->id,
            ref_word_name(r->word));
    for (size_t j = 0; j < i; j++) {
        const ref_rule *e = &p->rules[j];
        if (e->has_velocity || !ref_rule_covers(e, r))
            continue;
        add(s, "shadowed", r->line, r->column,
            "rule \"%s\" is shadowed by rule \"%s\" (line %d): every request it matches is "
            "decided earlier",
            r->id, e->id, e->line);
        break;
    }
}

int ref_policy_lint(const ref_policy *p, ref_lint_item **items, size_t *n)
{
    sink s = {0};
    if (p->default_misspelled)
        add(&s, "default-misspelled", p->default_line, p->default_column,
            "default_decision \"%s\" is not allow/permit or deny/block; it is read as deny",
            p->default_written);
    if (p->n_rules == 0)
        add(&s, "no-rules", 0, 0, "no rules and no tenant topic lists: every request gets "
            "default_decision %s", ref_word_name(p->default_word));
    for (size_t i = 0; i < p->n_rules; i++) {
        lint_rule(p, i, &s);
        const ref_rule *r = &p->rules[i];
        if (!r->has_velocity && match_is_empty(&r->match)) {
            add(&s, "unreachable-default", r->line, r->column,
                "rule \"%s\" matches every request: default_decision%s never applies", r->id,
                i + 1 < p->n_rules ? " and every later rule" : "");
            for (size_t j = i + 1; j < p->n_rules; j++)
                add(&s, "shadowed", p->rules[j].line, p->rules[j].column,
                    "rule \"%s\" is shadowed by rule \"%s\" (line %d), which matches everything",
                    p->rules[j].id, r->id, r->line);
            break;
        }
    }
    if (s.oom) {
        free(s.v);
        return CAP_ENOMEM;
    }
    *items = s.v;
    *n = s.n;
    return 0;
}
