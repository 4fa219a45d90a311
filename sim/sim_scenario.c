/* Scenario files: YAML (cap_yaml) -> a validated sim_scenario. Every error
 * names line, column, key path and reason (docs/scenarios.md). */
#include "sim_scenario.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "ref_policy.h"

#define MAX_FILE_PATH 4096
#define MAX_ID_LEN 100            /* worker ids: room for "-NNN" within SIM_BUS_MAX_NAME */
#define MAX_RUN_NS (INT64_C(30) * 24 * 3600 * 1000000000) /* 30 days */
#define MAX_WORKFLOW_STEPS 1000
#define MAX_PARALLEL 1024
#define MAX_RETRIES 1000
#define MAX_BURST 100000
#define MAX_CONCURRENCY 100000

/* ---- small helpers ---- */

typedef struct {
    cap_yaml_diag *d;
    char *dir;          /* the scenario's directory ("" for the cwd) */
    sim_scenario *s;
} ctx;

static int oom(cap_yaml_diag *d)
{
    return cap_yaml_fail(d, CAP_ENOMEM, NULL, "", "out of memory");
}

/* The key node of key in map (for errors about the key itself), or NULL. */
static const cap_yaml_node *key_node(const cap_yaml_node *map, const char *key)
{
    for (size_t i = 0; i < cap_yaml_count(map); i++)
        if (map->kind == CAP_YAML_MAP && strcmp(map->pairs[i].key->text, key) == 0)
            return map->pairs[i].key;
    return NULL;
}

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

/* Every key of map must be in one of the NULL-terminated lists (b may be NULL). */
static int check_keys2(const cap_yaml_node *map, const char *const *a, const char *const *b,
                       const char *path, cap_yaml_diag *d)
{
    for (size_t i = 0; i < cap_yaml_count(map); i++) {
        const cap_yaml_node *k = map->pairs[i].key;
        if (in_list(a, k->text) || (b && in_list(b, k->text)))
            continue;
        char kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(kp, path, k->text);
        char known[200] = "";
        size_t used = 0;
        for (int pass = 0; pass < 2; pass++)
            for (const char *const *x = pass ? b : a; x && *x && used < sizeof known - 1; x++)
                used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                         used ? ", " : "", *x);
        return cap_yaml_fail(d, CAP_EINVAL, k, kp, "unknown key \"%.40s\" (known: %s)", k->text,
                             known);
    }
    return 0;
}

static int check_keys(const cap_yaml_node *map, const char *const *allowed, const char *path,
                      cap_yaml_diag *d)
{
    return check_keys2(map, allowed, NULL, path, d);
}

/* map must be a mapping (a plain null reads as an empty one). */
static int expect_map(const cap_yaml_node *n, const char *path, cap_yaml_diag *d)
{
    return cap_yaml_expect(n, CAP_YAML_MAP, path, d);
}

static int expect_seq(const cap_yaml_node *n, const char *path, cap_yaml_diag *d)
{
    return cap_yaml_expect(n, CAP_YAML_SEQ, path, d);
}

/* A copy of a scalar's text. */
static int get_str(const cap_yaml_node *n, const char *path, char **out, cap_yaml_diag *d)
{
    const char *s;
    int rc = cap_yaml_str(n, path, &s, d);
    if (rc)
        return rc;
    char *c = strdup(s);
    if (!c)
        return oom(d);
    free(*out);
    *out = c;
    return 0;
}

/* Optional key: leaves *out alone when absent. */
static int opt_str(const cap_yaml_node *map, const char *key, const char *base, char **out,
                   cap_yaml_diag *d)
{
    const cap_yaml_node *v = cap_yaml_get(map, key);
    if (!v)
        return 0;
    char p[CAP_YAML_PATH_MAX];
    cap_yaml_path_key(p, base, key);
    return get_str(v, p, out, d);
}

/* Optional string where "" means absent: *out stays NULL for "" . */
static int opt_str_nonempty(const cap_yaml_node *map, const char *key, const char *base, char **out,
                            cap_yaml_diag *d)
{
    int rc = opt_str(map, key, base, out, d);
    if (!rc && *out && !**out) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static int opt_int(const cap_yaml_node *map, const char *key, const char *base, int64_t min,
                   int64_t max, int64_t *out, cap_yaml_diag *d)
{
    const cap_yaml_node *v = cap_yaml_get(map, key);
    if (!v)
        return 0;
    char p[CAP_YAML_PATH_MAX];
    cap_yaml_path_key(p, base, key);
    return cap_yaml_int(v, p, min, max, out, d);
}

static int opt_num(const cap_yaml_node *map, const char *key, const char *base, double min,
                   double max, int min_open, double *out, cap_yaml_diag *d)
{
    const cap_yaml_node *v = cap_yaml_get(map, key);
    if (!v)
        return 0;
    char p[CAP_YAML_PATH_MAX];
    cap_yaml_path_key(p, base, key);
    double x;
    int rc = cap_yaml_num(v, p, &x, d);
    if (rc)
        return rc;
    if (!isfinite(x) || x < min || x > max || (min_open && x <= min))
        return cap_yaml_fail(d, CAP_EINVAL, v, p, "%s out of range (must be %s %g and at most %g)",
                             v->text, min_open ? ">" : ">=", min, max);
    *out = x;
    return 0;
}

static int opt_prob(const cap_yaml_node *map, const char *key, const char *base, double *out,
                    cap_yaml_diag *d)
{
    const cap_yaml_node *v = cap_yaml_get(map, key);
    if (!v)
        return 0;
    char p[CAP_YAML_PATH_MAX];
    cap_yaml_path_key(p, base, key);
    double x;
    int rc = cap_yaml_num(v, p, &x, d);
    if (rc)
        return rc;
    if (!(x >= 0.0 && x <= 1.0))
        return cap_yaml_fail(d, CAP_EINVAL, v, p, "probability %s is outside [0, 1]", v->text);
    *out = x;
    return 0;
}

/* ---- durations ---- */

int sim_parse_duration(const char *text, int64_t *ns)
{
    if (!text || !ns)
        return CAP_EINVAL;
    const char *p = text;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p < '0' || *p > '9')
        return CAP_EINVAL;
    uint64_t ip = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (ip > (UINT64_MAX - 9) / 10)
            return CAP_EINVAL;
        ip = ip * 10 + (uint64_t)(*p - '0');
    }
    const char *frac = NULL;
    size_t nfrac = 0;
    if (*p == '.') {
        frac = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        nfrac = (size_t)(p - frac);
        if (nfrac == 0)
            return CAP_EINVAL;
    }
    uint64_t unit;
    if (*p == 0 || strcmp(p, "s") == 0)
        unit = UINT64_C(1000000000);
    else if (strcmp(p, "ns") == 0)
        unit = 1;
    else if (strcmp(p, "us") == 0)
        unit = UINT64_C(1000);
    else if (strcmp(p, "ms") == 0)
        unit = UINT64_C(1000000);
    else if (strcmp(p, "m") == 0)
        unit = UINT64_C(60000000000);
    else if (strcmp(p, "h") == 0)
        unit = UINT64_C(3600000000000);
    else
        return CAP_EINVAL;
    if (ip > (uint64_t)INT64_MAX / unit)
        return CAP_EINVAL;
    uint64_t v = ip * unit;
    /* Fraction digits, exactly: digit i is worth unit / 10^i ns; a nonzero
     * digit finer than 1 ns is refused. */
    uint64_t place = unit;
    for (size_t i = 0; i < nfrac; i++) {
        unsigned dg = (unsigned)(frac[i] - '0');
        if (place % 10 != 0 || place < 10) {
            if (dg)
                return CAP_EINVAL;
            place = 0;
            continue;
        }
        place /= 10;
        v += dg * place; /* < unit in total: no overflow past ip * unit + unit */
    }
    if (v > (uint64_t)INT64_MAX)
        return CAP_EINVAL;
    *ns = neg ? -(int64_t)v : (int64_t)v;
    return CAP_OK;
}

static int get_dur(const cap_yaml_node *v, const char *p, int64_t min, int64_t max,
                   const char *range, int64_t *out, cap_yaml_diag *d)
{
    const char *s;
    int rc = cap_yaml_str(v, p, &s, d);
    if (rc)
        return rc;
    int64_t ns;
    if (sim_parse_duration(s, &ns) != CAP_OK)
        return cap_yaml_fail(d, CAP_EINVAL, v, p,
                             "bad duration \"%.40s\" (a number with a unit: ns, us, ms, s, m, h)", s);
    if (ns < min || ns > max)
        return cap_yaml_fail(d, CAP_EINVAL, v, p, "duration %.40s out of range (must be %s)", s,
                             range);
    *out = ns;
    return 0;
}

static int opt_dur(const cap_yaml_node *map, const char *key, const char *base, int64_t min,
                   int64_t max, const char *range, int64_t *out, cap_yaml_diag *d)
{
    const cap_yaml_node *v = cap_yaml_get(map, key);
    if (!v)
        return 0;
    char p[CAP_YAML_PATH_MAX];
    cap_yaml_path_key(p, base, key);
    return get_dur(v, p, min, max, range, out, d);
}

/* ---- distributions ---- */

static const char *const DIST_KEYS[][4] = {
    [SIM_DIST_FIXED] = {"dist", "value", NULL, NULL},
    [SIM_DIST_UNIFORM] = {"dist", "min", "max", NULL},
    [SIM_DIST_EXPONENTIAL] = {"dist", "mean", NULL, NULL},
    [SIM_DIST_LOGNORMAL] = {"dist", "median", "sigma", NULL},
};

static int need(const cap_yaml_node *map, const char *key, const char *path, const char *what,
                cap_yaml_diag *d)
{
    if (cap_yaml_get(map, key))
        return 0;
    return cap_yaml_fail(d, CAP_EINVAL, map, path, "%s needs \"%s\"", what, key);
}

/* A distribution: a duration scalar (fixed), or a mapping with `dist` and
 * its parameters; `extra` names keys the caller reads from the same map. */
static int parse_dist(const cap_yaml_node *n, const char *path, const char *const *extra,
                      sim_dist *out, cap_yaml_diag *d)
{
    const char *range = "between 0 and 1e15ns";
    sim_dist r = {SIM_DIST_FIXED, 0, 0};
    int64_t a = 0, b = 0;
    int rc;
    if (n->kind == CAP_YAML_SCALAR && !extra && !cap_yaml_is_null(n)) {
        if ((rc = get_dur(n, path, 0, SIM_BUS_MAX_DELAY, range, &a, d)))
            return rc;
        r.a = (double)a;
        *out = r;
        return 0;
    }
    if ((rc = expect_map(n, path, d)))
        return rc;
    const cap_yaml_node *k = cap_yaml_get(n, "dist");
    char kp[CAP_YAML_PATH_MAX];
    cap_yaml_path_key(kp, path, "dist");
    if (!k)
        return cap_yaml_fail(d, CAP_EINVAL, n, path,
                             "missing \"dist\" (fixed, uniform, exponential, lognormal)");
    const char *name;
    if ((rc = cap_yaml_str(k, kp, &name, d)))
        return rc;
    if (strcmp(name, "fixed") == 0)
        r.kind = SIM_DIST_FIXED;
    else if (strcmp(name, "uniform") == 0)
        r.kind = SIM_DIST_UNIFORM;
    else if (strcmp(name, "exponential") == 0)
        r.kind = SIM_DIST_EXPONENTIAL;
    else if (strcmp(name, "lognormal") == 0)
        r.kind = SIM_DIST_LOGNORMAL;
    else
        return cap_yaml_fail(d, CAP_EINVAL, k, kp,
                             "unknown distribution \"%.40s\" (fixed, uniform, exponential, "
                             "lognormal)",
                             name);
    if ((rc = check_keys2(n, DIST_KEYS[r.kind], extra, path, d)))
        return rc;
    switch (r.kind) {
    case SIM_DIST_FIXED:
        if ((rc = need(n, "value", path, "a fixed distribution", d)) ||
            (rc = opt_dur(n, "value", path, 0, SIM_BUS_MAX_DELAY, range, &a, d)))
            return rc;
        break;
    case SIM_DIST_UNIFORM:
        if ((rc = need(n, "min", path, "a uniform distribution", d)) ||
            (rc = need(n, "max", path, "a uniform distribution", d)) ||
            (rc = opt_dur(n, "min", path, 0, SIM_BUS_MAX_DELAY, range, &a, d)) ||
            (rc = opt_dur(n, "max", path, 0, SIM_BUS_MAX_DELAY, range, &b, d)))
            return rc;
        if (b < a) {
            cap_yaml_path_key(kp, path, "max");
            return cap_yaml_fail(d, CAP_EINVAL, cap_yaml_get(n, "max"), kp,
                                 "max is less than min");
        }
        r.b = (double)b;
        break;
    case SIM_DIST_EXPONENTIAL:
        if ((rc = need(n, "mean", path, "an exponential distribution", d)) ||
            (rc = opt_dur(n, "mean", path, 0, SIM_BUS_MAX_DELAY, range, &a, d)))
            return rc;
        break;
    case SIM_DIST_LOGNORMAL:
        if ((rc = need(n, "median", path, "a lognormal distribution", d)) ||
            (rc = opt_dur(n, "median", path, 1, SIM_BUS_MAX_DELAY, "between 1ns and 1e15ns", &a,
                          d)) ||
            (rc = opt_num(n, "sigma", path, 0.0, 20.0, 0, &r.b, d)))
            return rc;
        break;
    }
    r.a = (double)a;
    if (sim_dist_check(&r) != CAP_OK) /* the checks above should make this unreachable */
        return cap_yaml_fail(d, CAP_EINVAL, n, path, "distribution parameters out of range");
    *out = r;
    return 0;
}

/* ---- string lists and maps ---- */

static int parse_kv(const cap_yaml_node *n, const char *path, sim_kv **out, size_t *count,
                    cap_yaml_diag *d)
{
    int rc = expect_map(n, path, d);
    if (rc)
        return rc;
    size_t m = cap_yaml_count(n);
    if (m > SIM_SCENARIO_MAX_KV)
        return cap_yaml_fail(d, CAP_EINVAL, n, path, "%zu entries (at most %d)", m,
                             SIM_SCENARIO_MAX_KV);
    if (!m)
        return 0;
    *out = calloc(m, sizeof **out);
    if (!*out)
        return oom(d);
    for (size_t i = 0; i < m; i++) {
        const cap_yaml_pair *pr = &n->pairs[i];
        char p[CAP_YAML_PATH_MAX];
        cap_yaml_path_key(p, path, pr->key->text);
        (*count)++;
        if (!pr->key->text[0])
            return cap_yaml_fail(d, CAP_EINVAL, pr->key, p, "empty key");
        if (!((*out)[i].key = strdup(pr->key->text)))
            return oom(d);
        if ((rc = get_str(pr->value, p, &(*out)[i].value, d)))
            return rc;
    }
    return 0;
}

static int parse_strs(const cap_yaml_node *n, const char *path, char ***out, size_t *count,
                      cap_yaml_diag *d)
{
    int rc = expect_seq(n, path, d);
    if (rc)
        return rc;
    size_t m = cap_yaml_count(n);
    if (m > SIM_SCENARIO_MAX_KV)
        return cap_yaml_fail(d, CAP_EINVAL, n, path, "%zu entries (at most %d)", m,
                             SIM_SCENARIO_MAX_KV);
    if (!m)
        return 0;
    *out = calloc(m, sizeof **out);
    if (!*out)
        return oom(d);
    for (size_t i = 0; i < m; i++) {
        char p[CAP_YAML_PATH_MAX];
        cap_yaml_path_index(p, path, i);
        (*count)++;
        if ((rc = get_str(n->items[i], p, &(*out)[i], d)))
            return rc;
        if (!(*out)[i][0])
            return cap_yaml_fail(d, CAP_EINVAL, n->items[i], p, "empty value");
    }
    return 0;
}

static void kv_free(sim_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void strs_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- files ---- */

/* Reads at most max bytes of path into a NUL-terminated buffer. */
static int read_bounded(const char *path, size_t max, char **out, size_t *len, int *err)
{
    *out = NULL;
    *len = 0;
    *err = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = errno;
        return CAP_EIO;
    }
    char *buf = malloc(max + 2);
    if (!buf) {
        fclose(f);
        return CAP_ENOMEM;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    if (bad)
        *err = errno ? errno : EIO;
    fclose(f);
    if (bad) {
        free(buf);
        return CAP_EIO;
    }
    if (n > max) {
        free(buf);
        return CAP_EFULL;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return CAP_OK;
}

/* dir of a file path: "" when it has no '/', "/" for a file at the root. */
static char *dir_of(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (slash && n == 0)
        n = 1;
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, path ? path : "", n);
        c[n] = 0;
    }
    return c;
}

/* Resolves a policy path (node) against the scenario's directory, reads and
 * parses it. On success *resolved is the path and, when text is not NULL,
 * (*text, *len) the file's content. */
static int load_policy(ctx *c, const cap_yaml_node *node, const char *path, char **resolved,
                       char **text, size_t *len)
{
    cap_yaml_diag *d = c->d;
    const char *rel;
    int rc = cap_yaml_str(node, path, &rel, d);
    if (rc)
        return rc;
    if (!rel[0])
        return cap_yaml_fail(d, CAP_EINVAL, node, path, "empty policy path");
    size_t need_len = strlen(c->dir) + 1 + strlen(rel) + 1;
    if (need_len > MAX_FILE_PATH)
        return cap_yaml_fail(d, CAP_EINVAL, node, path, "policy path too long");
    char *full = malloc(need_len);
    if (!full)
        return oom(d);
    size_t at = 0;
    if (rel[0] != '/' && c->dir[0]) {
        size_t dl = strlen(c->dir);
        memcpy(full, c->dir, dl);
        at = dl;
        if (c->dir[dl - 1] != '/')
            full[at++] = '/';
    }
    memcpy(full + at, rel, strlen(rel) + 1);
    char *buf;
    size_t n;
    int err;
    rc = read_bounded(full, SIM_SCENARIO_MAX_BYTES, &buf, &n, &err);
    if (rc == CAP_ENOMEM) {
        free(full);
        return oom(d);
    }
    if (rc == CAP_EFULL) {
        rc = cap_yaml_fail(d, CAP_EPOLICY, node, path, "policy file %.150s is over %zu bytes",
                           full, SIM_SCENARIO_MAX_BYTES);
        free(full);
        return rc;
    }
    if (rc) {
        rc = cap_yaml_fail(d, CAP_EIO, node, path, "cannot read policy file %.150s: %s", full,
                           strerror(err));
        free(full);
        return rc;
    }
    ref_policy *pol = NULL;
    cap_yaml_diag pd;
    memset(&pd, 0, sizeof pd);
    rc = ref_policy_parse(buf, n, &pol, &pd);
    if (rc) {
        char msg[sizeof d->reason];
        cap_yaml_diag_format(&pd, full, msg, sizeof msg);
        rc = cap_yaml_fail(d, rc == CAP_ENOMEM ? CAP_ENOMEM : CAP_EPOLICY, node, path, "%s", msg);
        free(buf);
        free(full);
        return rc;
    }
    ref_policy_free(pol);
    *resolved = full;
    if (text) {
        *text = buf;
        *len = n;
    } else {
        free(buf);
    }
    return 0;
}

/* ---- actors ---- */

static int id_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* Writes worker spec w's k-th name (0-based) into buf. */
static void worker_name(const sim_worker_spec *w, uint32_t k, char *buf, size_t n)
{
    if (w->count == 1)
        snprintf(buf, n, "%s", w->id);
    else
        snprintf(buf, n, "%s-%u", w->id, k + 1);
}

/* 1 when name is one of spec w's names (id, or id-1..id-N for count > 1). */
static int spec_has_name(const sim_worker_spec *w, const char *name)
{
    if (!w->id)
        return 0;
    if (w->count <= 1)
        return strcmp(name, w->id) == 0;
    size_t il = strlen(w->id);
    if (strncmp(name, w->id, il) != 0 || name[il] != '-')
        return 0;
    const char *q = name + il + 1;
    if (*q < '1' || *q > '9')
        return 0;
    uint64_t k = 0;
    for (; *q >= '0' && *q <= '9' && k <= w->count; q++)
        k = k * 10 + (uint64_t)(*q - '0');
    return !*q && k >= 1 && k <= w->count;
}

static int is_worker(const sim_scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_workers; i++)
        if (spec_has_name(&s->workers[i], name))
            return 1;
    return 0;
}

static int is_pool(const sim_scenario *s, const char *name)
{
    if (strncmp(name, "pool:", 5) != 0)
        return 0;
    for (size_t i = 0; i < s->n_workers; i++)
        if (s->workers[i].pool && strcmp(s->workers[i].pool, name + 5) == 0)
            return 1;
    return 0;
}

int sim_scenario_has_actor(const sim_scenario *s, const char *name)
{
    if (!s || !name)
        return 0;
    if (strcmp(name, "gateway") == 0 || strcmp(name, "scheduler") == 0)
        return 1;
    if (strcmp(name, "approver") == 0)
        return s->approver.present;
    return is_worker(s, name) || is_pool(s, name);
}

/* Appends ", name" (or the first name) to buf; once one does not fit
 * (keeping room for ", ..."), appends ", ..." and reports full. */
static int append_name(char *buf, size_t n, size_t *used, int *full, const char *prefix,
                       const char *name)
{
    if (*full)
        return 1;
    size_t add = (*used ? 2 : 0) + strlen(prefix) + strlen(name);
    if (*used + add + 6 > n) {
        snprintf(buf + *used, n - *used, "%s...", *used ? ", " : "");
        *full = 1;
        return 1;
    }
    *used += (size_t)snprintf(buf + *used, n - *used, "%s%s%s", *used ? ", " : "", prefix, name);
    return 0;
}

/* The actor names, for messages: "gateway, scheduler, approver, w-1, ...". */
static void list_actors(const sim_scenario *s, int pools, char *buf, size_t n)
{
    size_t used = 0;
    int full = 0;
    buf[0] = 0;
    append_name(buf, n, &used, &full, "", "gateway");
    append_name(buf, n, &used, &full, "", "scheduler");
    if (s->approver.present)
        append_name(buf, n, &used, &full, "", "approver");
    for (size_t i = 0; i < s->n_workers && !full; i++) {
        const sim_worker_spec *w = &s->workers[i];
        for (uint32_t k = 0; k < w->count && !full; k++) {
            char name[SIM_BUS_MAX_NAME + 1];
            worker_name(w, k, name, sizeof name);
            append_name(buf, n, &used, &full, "", name);
        }
    }
    for (size_t i = 0; pools && i < s->n_workers && !full; i++) {
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            seen |= strcmp(s->workers[j].pool, s->workers[i].pool) == 0;
        if (!seen)
            append_name(buf, n, &used, &full, "pool:", s->workers[i].pool);
    }
}

enum { ACT_ANY = 0, ACT_CRASHABLE = 1, ACT_GROUP = 2 };

/* Reads an actor name at node and checks the scenario defines it. */
static int get_actor(ctx *c, const cap_yaml_node *node, const char *path, int what, char **out)
{
    cap_yaml_diag *d = c->d;
    const char *name;
    int rc = cap_yaml_str(node, path, &name, d);
    if (rc)
        return rc;
    int ok = sim_scenario_has_actor(c->s, name);
    if (ok && is_pool(c->s, name) && !(what & ACT_GROUP))
        return cap_yaml_fail(d, CAP_EINVAL, node, path,
                             "\"%.60s\" is a pool; only partition and heal take pools", name);
    if (!ok) {
        char actors[160];
        list_actors(c->s, what & ACT_GROUP, actors, sizeof actors);
        return cap_yaml_fail(d, CAP_EINVAL, node, path, "unknown actor \"%.40s\" (actors: %s)",
                             name, actors);
    }
    if ((what & ACT_CRASHABLE) && strcmp(name, "scheduler") != 0 && !is_worker(c->s, name))
        return cap_yaml_fail(d, CAP_EINVAL, node, path,
                             "\"%.60s\" cannot crash or restart (a worker or \"scheduler\" can)",
                             name);
    char *copy = strdup(name);
    if (!copy)
        return oom(d);
    free(*out);
    *out = copy;
    return 0;
}

/* ---- stable merge sort ---- */

typedef int (*cmp_fn)(const void *, const void *);

static int merge_sort(void *base, size_t n, size_t size, cmp_fn cmp)
{
    if (n < 2)
        return 0;
    unsigned char *a = base;
    unsigned char *tmp = malloc(n * size);
    if (!tmp)
        return CAP_ENOMEM;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                if (cmp(a + j * size, a + i * size) < 0) /* strictly less: stable */
                    memcpy(tmp + k++ * size, a + j++ * size, size);
                else
                    memcpy(tmp + k++ * size, a + i++ * size, size);
            }
            while (i < mid)
                memcpy(tmp + k++ * size, a + i++ * size, size);
            while (j < hi)
                memcpy(tmp + k++ * size, a + j++ * size, size);
        }
        memcpy(a, tmp, n * size);
    }
    free(tmp);
    return 0;
}

static int cmp_event(const void *x, const void *y)
{
    int64_t a = ((const sim_timeline_event *)x)->at, b = ((const sim_timeline_event *)y)->at;
    return (a > b) - (a < b);
}

static int cmp_script(const void *x, const void *y)
{
    int64_t a = ((const sim_script_entry *)x)->at, b = ((const sim_script_entry *)y)->at;
    return (a > b) - (a < b);
}

/* ---- sections ---- */

static const char *const RUN_RANGE = "> 0 and at most 30 days";
static const char *const NONNEG_RANGE = "between 0 and 30 days";

static int parse_scheduler(ctx *c, const cap_yaml_node *n)
{
    static const char *const keys[] = {"dispatch_timeout", "running_timeout", "no_worker_wait",
                                       "max_retries", "breaker_threshold", "breaker_cool_down",
                                       "worker_grace", NULL};
    cap_yaml_diag *d = c->d;
    sim_scenario *s = c->s;
    const char *p = "scheduler";
    int rc;
    int64_t v;
    if ((rc = expect_map(n, p, d)) || (rc = check_keys(n, keys, p, d)) ||
        (rc = opt_dur(n, "dispatch_timeout", p, 0, MAX_RUN_NS, NONNEG_RANGE,
                      &s->dispatch_timeout_ns, d)) ||
        (rc = opt_dur(n, "running_timeout", p, 0, MAX_RUN_NS, NONNEG_RANGE,
                      &s->running_timeout_ns, d)) ||
        (rc = opt_dur(n, "no_worker_wait", p, 0, MAX_RUN_NS, NONNEG_RANGE, &s->no_worker_wait_ns,
                      d)) ||
        (rc = opt_dur(n, "breaker_cool_down", p, 0, MAX_RUN_NS, NONNEG_RANGE,
                      &s->breaker_cool_down_ns, d)) ||
        (rc = opt_dur(n, "worker_grace", p, 0, MAX_RUN_NS, NONNEG_RANGE, &s->worker_grace_ns, d)))
        return rc;
    if (cap_yaml_get(n, "max_retries")) {
        if ((rc = opt_int(n, "max_retries", p, 0, MAX_RETRIES, &v, d)))
            return rc;
        s->max_retries = (uint32_t)v;
        s->max_retries_set = 1;
    }
    v = 0;
    if ((rc = opt_int(n, "breaker_threshold", p, 0, 1000000, &v, d)))
        return rc;
    s->breaker_threshold = (uint32_t)v;
    return 0;
}

static int parse_bus(ctx *c, const cap_yaml_node *n)
{
    static const char *const keys[] = {"latency", NULL};
    int rc;
    if ((rc = expect_map(n, "bus", c->d)) || (rc = check_keys(n, keys, "bus", c->d)))
        return rc;
    const cap_yaml_node *l = cap_yaml_get(n, "latency");
    return l ? parse_dist(l, "bus.latency", NULL, &c->s->latency, c->d) : 0;
}

int sim_worker_heartbeat_faults(const sim_worker_spec *w)
{
    return w->p_heartbeat_miss > 0 || w->heartbeat_delay.kind != SIM_DIST_FIXED ||
           w->heartbeat_delay.a > 0;
}

static int parse_worker(ctx *c, const cap_yaml_node *n, const char *p, sim_worker_spec *w)
{
    static const char *const keys[] = {
        "id", "count", "pool", "max_parallel", "heartbeat", "service", "p_retryable", "p_fatal",
        "p_hang", "p_crash", "restart_after", "p_heartbeat_miss", "heartbeat_delay", "checkpoints",
        "labels", "capabilities", NULL,
    };
    cap_yaml_diag *d = c->d;
    char kp[CAP_YAML_PATH_MAX];
    int rc;
    int64_t v;
    w->count = 1;
    w->max_parallel = 1;
    w->heartbeat_ns = INT64_C(5000000000);
    w->service = (sim_dist){SIM_DIST_FIXED, 1e9, 0};
    if ((rc = expect_map(n, p, d)))
        return rc;
    if (n->kind != CAP_YAML_MAP)
        return cap_yaml_fail(d, CAP_EINVAL, n, p, "a worker needs at least an id and a pool");
    if ((rc = check_keys(n, keys, p, d)))
        return rc;
    const cap_yaml_node *id = cap_yaml_get(n, "id");
    if (!id)
        return cap_yaml_fail(d, CAP_EINVAL, n, p, "missing \"id\"");
    cap_yaml_path_key(kp, p, "id");
    if ((rc = get_str(id, kp, &w->id, d)))
        return rc;
    size_t il = strlen(w->id);
    if (!il || il > MAX_ID_LEN)
        return cap_yaml_fail(d, CAP_EINVAL, id, kp, "a worker id has 1 to %d characters",
                             MAX_ID_LEN);
    for (size_t i = 0; i < il; i++)
        if (!id_char_ok(w->id[i]))
            return cap_yaml_fail(d, CAP_EINVAL, id, kp,
                                 "worker id \"%.60s\": only letters, digits, '.', '_' and '-'",
                                 w->id);
    if (!strcmp(w->id, "gateway") || !strcmp(w->id, "scheduler") || !strcmp(w->id, "approver"))
        return cap_yaml_fail(d, CAP_EINVAL, id, kp, "\"%s\" is a reserved actor name", w->id);
    const cap_yaml_node *pool = cap_yaml_get(n, "pool");
    if (!pool)
        return cap_yaml_fail(d, CAP_EINVAL, n, p, "missing \"pool\"");
    cap_yaml_path_key(kp, p, "pool");
    if ((rc = get_str(pool, kp, &w->pool, d)))
        return rc;
    if (!sim_subject_valid(w->pool, 0))
        return cap_yaml_fail(d, CAP_EINVAL, pool, kp, "bad pool subject \"%.60s\"", w->pool);
    v = 1;
    if ((rc = opt_int(n, "count", p, 1, SIM_SCENARIO_MAX_WORKERS, &v, d)))
        return rc;
    w->count = (uint32_t)v;
    v = 1;
    if ((rc = opt_int(n, "max_parallel", p, 1, MAX_PARALLEL, &v, d)))
        return rc;
    w->max_parallel = (int32_t)v;
    v = 0;
    if ((rc = opt_int(n, "checkpoints", p, 0, SIM_MAX_CHECKPOINTS, &v, d)))
        return rc;
    w->checkpoints = (uint32_t)v;
    if ((rc = opt_dur(n, "heartbeat", p, 1, MAX_RUN_NS, RUN_RANGE, &w->heartbeat_ns, d)) ||
        (rc = opt_dur(n, "restart_after", p, 0, MAX_RUN_NS, NONNEG_RANGE, &w->restart_after_ns,
                      d)) ||
        (rc = opt_prob(n, "p_retryable", p, &w->p_retryable, d)) ||
        (rc = opt_prob(n, "p_fatal", p, &w->p_fatal, d)) ||
        (rc = opt_prob(n, "p_hang", p, &w->p_hang, d)) ||
        (rc = opt_prob(n, "p_crash", p, &w->p_crash, d)) ||
        (rc = opt_prob(n, "p_heartbeat_miss", p, &w->p_heartbeat_miss, d)))
        return rc;
    if (w->p_retryable + w->p_fatal + w->p_hang > 1.0 + 1e-12)
        return cap_yaml_fail(d, CAP_EINVAL, n, p,
                             "p_retryable + p_fatal + p_hang is %g (at most 1)",
                             w->p_retryable + w->p_fatal + w->p_hang);
    const cap_yaml_node *x;
    if ((x = cap_yaml_get(n, "service"))) {
        cap_yaml_path_key(kp, p, "service");
        if ((rc = parse_dist(x, kp, NULL, &w->service, d)))
            return rc;
    }
    if ((x = cap_yaml_get(n, "heartbeat_delay"))) {
        cap_yaml_path_key(kp, p, "heartbeat_delay");
        if ((rc = parse_dist(x, kp, NULL, &w->heartbeat_delay, d)))
            return rc;
    }
    if ((x = cap_yaml_get(n, "labels"))) {
        cap_yaml_path_key(kp, p, "labels");
        if ((rc = parse_kv(x, kp, &w->labels, &w->n_labels, d)))
            return rc;
    }
    if ((x = cap_yaml_get(n, "capabilities"))) {
        cap_yaml_path_key(kp, p, "capabilities");
        if ((rc = parse_strs(x, kp, &w->capabilities, &w->n_capabilities, d)))
            return rc;
    }
    return 0;
}

static int parse_workers(ctx *c, const cap_yaml_node *n)
{
    cap_yaml_diag *d = c->d;
    sim_scenario *s = c->s;
    int rc = expect_seq(n, "workers", d);
    if (rc)
        return rc;
    size_t m = cap_yaml_count(n);
    if (m > SIM_SCENARIO_MAX_WORKERS)
        return cap_yaml_fail(d, CAP_EINVAL, n, "workers", "%zu workers (at most %d)", m,
                             SIM_SCENARIO_MAX_WORKERS);
    if (!m)
        return 0;
    if (!(s->workers = calloc(m, sizeof *s->workers)))
        return oom(d);
    size_t total = 0;
    for (size_t i = 0; i < m; i++) {
        char p[CAP_YAML_PATH_MAX], kp[CAP_YAML_PATH_MAX];
        cap_yaml_path_index(p, "workers", i);
        sim_worker_spec *w = &s->workers[s->n_workers++];
        if ((rc = parse_worker(c, n->items[i], p, w)))
            return rc;
        total += w->count;
        if (total > SIM_SCENARIO_MAX_WORKERS)
            return cap_yaml_fail(d, CAP_EINVAL, n->items[i], p,
                                 "%zu workers in all (at most %d)", total,
                                 SIM_SCENARIO_MAX_WORKERS);
        /* Every name of this spec against every earlier spec's names. */
        cap_yaml_path_key(kp, p, "id");
        for (uint32_t k = 0; k < w->count; k++) {
            char name[SIM_BUS_MAX_NAME + 1];
            worker_name(w, k, name, sizeof name);
            for (size_t j = 0; j + 1 < s->n_workers; j++)
                if (spec_has_name(&s->workers[j], name))
                    return cap_yaml_fail(d, CAP_EINVAL, cap_yaml_get(n->items[i], "id"), kp,
                                         "worker name \"%s\" is already taken by workers[%zu]",
                                         name, j);
        }
    }
    return 0;
}

static int parse_approver(ctx *c, const cap_yaml_node *n)
{
    static const char *const keys[] = {"delay", "p_approve", "name", NULL};
    cap_yaml_diag *d = c->d;
    sim_approver_spec *a = &c->s->approver;
    const char *p = "approver";
    int rc;
    if ((rc = expect_map(n, p, d)) || (rc = check_keys(n, keys, p, d)) ||
        (rc = opt_prob(n, "p_approve", p, &a->p_approve, d)) ||
        (rc = opt_str(n, "name", p, &a->name, d)))
        return rc;
    if (!a->name[0])
        return cap_yaml_fail(d, CAP_EINVAL, cap_yaml_get(n, "name"), "approver.name",
                             "empty approver name");
    const cap_yaml_node *x = cap_yaml_get(n, "delay");
    if (x && (rc = parse_dist(x, "approver.delay", NULL, &a->delay, d)))
        return rc;
    a->present = 1;
    return 0;
}

static int parse_gateway(ctx *c, const cap_yaml_node *n)
{
    static const char *const keys[] = {"sign", "signature_lifetime", NULL};
    cap_yaml_diag *d = c->d;
    sim_gateway_spec *g = &c->s->gateway;
    const char *p = "gateway";
    int rc;
    if ((rc = expect_map(n, p, d)) || (rc = check_keys(n, keys, p, d)))
        return rc;
    const cap_yaml_node *x = cap_yaml_get(n, "sign");
    if (x && (rc = cap_yaml_bool(x, "gateway.sign", &g->sign, d)))
        return rc;
    if (!g->sign && (x = key_node(n, "signature_lifetime")))
        return cap_yaml_fail(d, CAP_EINVAL, x, "gateway.signature_lifetime",
                             "applies only with sign: true");
    return opt_dur(n, "signature_lifetime", p, 1, SIM_SIGN_MAX_LIFETIME_NS,
                   "> 0 and at most 5m, the longest lifetime production admission accepts",
                   &g->signature_lifetime_ns, d);
}

static int parse_priority(const cap_yaml_node *n, const char *p, int *out, cap_yaml_diag *d)
{
    static const struct {
        const char *a, *b;
        int v;
    } P[] = {
        {"interactive", "JOB_PRIORITY_INTERACTIVE", 1},
        {"batch", "JOB_PRIORITY_BATCH", 2},
        {"critical", "JOB_PRIORITY_CRITICAL", 3},
    };
    const char *s;
    int rc = cap_yaml_str(n, p, &s, d);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++)
        if (!strcmp(s, P[i].a) || !strcmp(s, P[i].b)) {
            *out = P[i].v;
            return 0;
        }
    return cap_yaml_fail(d, CAP_EINVAL, n, p,
                         "unknown priority \"%.40s\" (interactive, batch, critical)", s);
}

static int parse_job(const cap_yaml_node *n, const char *p, sim_job_spec *j, cap_yaml_diag *d)
{
    static const char *const keys[] = {
        "topic", "weight", "tenant", "priority", "labels", "meta_labels", "risk_tags",
        "workflow_steps", "compensation_topic", "idempotency_key", NULL,
    };
    char kp[CAP_YAML_PATH_MAX];
    int rc;
    int64_t v = 0;
    j->weight = 1.0;
    j->priority = 1;
    if (!(j->tenant = strdup("tenant-a")))
        return oom(d);
    if ((rc = expect_map(n, p, d)))
        return rc;
    if ((rc = check_keys(n, keys, p, d)))
        return rc;
    const cap_yaml_node *t = cap_yaml_get(n, "topic");
    if (!t)
        return cap_yaml_fail(d, CAP_EINVAL, n, p, "missing \"topic\"");
    cap_yaml_path_key(kp, p, "topic");
    if ((rc = get_str(t, kp, &j->topic, d)))
        return rc;
    if (!sim_subject_valid(j->topic, 0))
        return cap_yaml_fail(d, CAP_EINVAL, t, kp, "bad topic \"%.60s\" (a subject, no wildcards)",
                             j->topic);
    if ((rc = opt_num(n, "weight", p, 0.0, 1e9, 1, &j->weight, d)) ||
        (rc = opt_str(n, "tenant", p, &j->tenant, d)) ||
        (rc = opt_int(n, "workflow_steps", p, 0, MAX_WORKFLOW_STEPS, &v, d)) ||
        (rc = opt_str_nonempty(n, "compensation_topic", p, &j->compensation_topic, d)) ||
        (rc = opt_str_nonempty(n, "idempotency_key", p, &j->idempotency_key, d)))
        return rc;
    j->workflow_steps = (uint32_t)v;
    const cap_yaml_node *x;
    if (j->compensation_topic) {
        cap_yaml_path_key(kp, p, "compensation_topic");
        x = cap_yaml_get(n, "compensation_topic");
        if (!sim_subject_valid(j->compensation_topic, 0))
            return cap_yaml_fail(d, CAP_EINVAL, x, kp,
                                 "bad topic \"%.60s\" (a subject, no wildcards)",
                                 j->compensation_topic);
        if (!j->workflow_steps)
            return cap_yaml_fail(d, CAP_EINVAL, x, kp,
                                 "compensation_topic needs workflow_steps > 0");
    }
    if ((x = cap_yaml_get(n, "priority"))) {
        cap_yaml_path_key(kp, p, "priority");
        if ((rc = parse_priority(x, kp, &j->priority, d)))
            return rc;
    }
    if ((x = cap_yaml_get(n, "labels"))) {
        cap_yaml_path_key(kp, p, "labels");
        if ((rc = parse_kv(x, kp, &j->labels, &j->n_labels, d)))
            return rc;
    }
    if ((x = cap_yaml_get(n, "meta_labels"))) {
        cap_yaml_path_key(kp, p, "meta_labels");
        if ((rc = parse_kv(x, kp, &j->meta_labels, &j->n_meta_labels, d)))
            return rc;
    }
    if ((x = cap_yaml_get(n, "risk_tags"))) {
        cap_yaml_path_key(kp, p, "risk_tags");
        if ((rc = parse_strs(x, kp, &j->risk_tags, &j->n_risk_tags, d)))
            return rc;
    }
    return 0;
}

static int parse_workload(ctx *c, const cap_yaml_node *n)
{
    static const char *const keys[] = {"kind", "rate", "concurrency", "think", "burst",
                                       "max_jobs", "stop_at", "mix", "script", NULL};
    static const char *const burst_keys[] = {"size", "every", NULL};
    static const char *const script_keys[] = {"at", "mix", "job_id", NULL};
    static const struct {
        const char *key;
        sim_load_kind kind;
    } ONLY[] = {{"rate", SIM_LOAD_POISSON},
                {"concurrency", SIM_LOAD_CLOSED},
                {"think", SIM_LOAD_CLOSED},
                {"burst", SIM_LOAD_BURST}};
    cap_yaml_diag *d = c->d;
    sim_workload_spec *w = &c->s->workload;
    const char *p = "workload";
    char kp[CAP_YAML_PATH_MAX];
    int rc;
    int64_t v;
    if ((rc = expect_map(n, p, d)) || (rc = check_keys(n, keys, p, d)))
        return rc;
    const cap_yaml_node *k = cap_yaml_get(n, "kind");
    if (k) {
        const char *s;
        if ((rc = cap_yaml_str(k, "workload.kind", &s, d)))
            return rc;
        if (!strcmp(s, "poisson"))
            w->kind = SIM_LOAD_POISSON;
        else if (!strcmp(s, "closed"))
            w->kind = SIM_LOAD_CLOSED;
        else if (!strcmp(s, "burst"))
            w->kind = SIM_LOAD_BURST;
        else if (!strcmp(s, "none"))
            w->kind = SIM_LOAD_NONE;
        else
            return cap_yaml_fail(d, CAP_EINVAL, k, "workload.kind",
                                 "unknown kind \"%.40s\" (poisson, closed, burst, none)", s);
    }
    for (size_t i = 0; i < sizeof ONLY / sizeof ONLY[0]; i++) {
        const cap_yaml_node *x = key_node(n, ONLY[i].key);
        if (x && w->kind != ONLY[i].kind) {
            cap_yaml_path_key(kp, p, ONLY[i].key);
            return cap_yaml_fail(d, CAP_EINVAL, x, kp, "applies to kind %s only",
                                 ONLY[i].kind == SIM_LOAD_POISSON  ? "poisson"
                                 : ONLY[i].kind == SIM_LOAD_CLOSED ? "closed"
                                                                   : "burst");
        }
    }
    switch (w->kind) {
    case SIM_LOAD_POISSON:
        if ((rc = need(n, "rate", p, "kind poisson", d)) ||
            (rc = opt_num(n, "rate", p, 0.0, 1e6, 1, &w->rate, d)))
            return rc;
        break;
    case SIM_LOAD_CLOSED:
        v = 0;
        if ((rc = need(n, "concurrency", p, "kind closed", d)) ||
            (rc = opt_int(n, "concurrency", p, 1, MAX_CONCURRENCY, &v, d)) ||
            (rc = opt_dur(n, "think", p, 0, MAX_RUN_NS, NONNEG_RANGE, &w->think_ns, d)))
            return rc;
        w->concurrency = (uint32_t)v;
        break;
    case SIM_LOAD_BURST: {
        if ((rc = need(n, "burst", p, "kind burst", d)))
            return rc;
        const cap_yaml_node *b = cap_yaml_get(n, "burst");
        v = 0;
        if ((rc = expect_map(b, "workload.burst", d)) ||
            (rc = check_keys(b, burst_keys, "workload.burst", d)) ||
            (rc = need(b, "size", "workload.burst", "a burst", d)) ||
            (rc = need(b, "every", "workload.burst", "a burst", d)) ||
            (rc = opt_int(b, "size", "workload.burst", 1, MAX_BURST, &v, d)) ||
            (rc = opt_dur(b, "every", "workload.burst", 1, MAX_RUN_NS, RUN_RANGE,
                          &w->burst_every_ns, d)))
            return rc;
        w->burst_size = (uint32_t)v;
        break;
    }
    default: break;
    }
    v = 0;
    if ((rc = opt_int(n, "max_jobs", p, 0, INT64_MAX, &v, d)) ||
        (rc = opt_dur(n, "stop_at", p, 0, c->s->duration_ns, "between 0 and the duration",
                      &w->stop_at_ns, d)))
        return rc;
    w->max_jobs = (uint64_t)v;

    const cap_yaml_node *mix = cap_yaml_get(n, "mix");
    if (mix) {
        if ((rc = expect_seq(mix, "workload.mix", d)))
            return rc;
        size_t m = cap_yaml_count(mix);
        if (m > SIM_SCENARIO_MAX_MIX)
            return cap_yaml_fail(d, CAP_EINVAL, mix, "workload.mix", "%zu entries (at most %d)", m,
                                 SIM_SCENARIO_MAX_MIX);
        if (m && !(w->mix = calloc(m, sizeof *w->mix)))
            return oom(d);
        for (size_t i = 0; i < m; i++) {
            cap_yaml_path_index(kp, "workload.mix", i);
            if ((rc = parse_job(mix->items[i], kp, &w->mix[w->n_mix++], d)))
                return rc;
        }
    }
    const cap_yaml_node *script = cap_yaml_get(n, "script");
    if (script) {
        if ((rc = expect_seq(script, "workload.script", d)))
            return rc;
        size_t m = cap_yaml_count(script);
        if (m > SIM_SCENARIO_MAX_SCRIPT)
            return cap_yaml_fail(d, CAP_EINVAL, script, "workload.script",
                                 "%zu entries (at most %d)", m, SIM_SCENARIO_MAX_SCRIPT);
        if (m && !(w->script = calloc(m, sizeof *w->script)))
            return oom(d);
        for (size_t i = 0; i < m; i++) {
            const cap_yaml_node *e = script->items[i];
            sim_script_entry *se = &w->script[w->n_script++];
            cap_yaml_path_index(kp, "workload.script", i);
            if ((rc = expect_map(e, kp, d)) || (rc = check_keys(e, script_keys, kp, d)) ||
                (rc = need(e, "at", kp, "a scripted submission", d)) ||
                (rc = opt_dur(e, "at", kp, 0, c->s->duration_ns, "between 0 and the duration",
                              &se->at, d)))
                return rc;
            v = 0;
            if ((rc = opt_int(e, "mix", kp, 0, SIM_SCENARIO_MAX_MIX, &v, d)))
                return rc;
            if ((size_t)v >= w->n_mix) {
                char mp[CAP_YAML_PATH_MAX];
                cap_yaml_path_key(mp, kp, "mix");
                const cap_yaml_node *mn = cap_yaml_get(e, "mix");
                return cap_yaml_fail(d, CAP_EINVAL, mn ? mn : e, mp,
                                     "mix entry %lld does not exist (the mix has %zu)",
                                     (long long)v, w->n_mix);
            }
            se->mix = (size_t)v;
            if (!(se->job_id = strdup("")) ||
                (rc = opt_str(e, "job_id", kp, &se->job_id, d)))
                return se->job_id ? rc : oom(d);
        }
        if (merge_sort(w->script, w->n_script, sizeof *w->script, cmp_script))
            return oom(d);
    }
    if (!w->n_mix && (w->kind != SIM_LOAD_NONE || w->n_script))
        return cap_yaml_fail(d, CAP_EINVAL, mix ? mix : n, "workload.mix",
                             "empty mix: the workload needs at least one kind of job");
    return 0;
}

/* ---- the fault timeline ---- */

static const char *const EVENT_KEYS[] = {"at", "duration", "from", "to", NULL};
static const char *const ACTIONS[] = {"crash",   "restart", "partition", "heal",
                                      "duplicate", "loss",  "latency",   "reorder",
                                      "corrupt", "replay",  "skew",      "policy",
                                      "cancel",  "conflict", NULL};

static int is_bus_fault(const char *action)
{
    return !strcmp(action, "duplicate") || !strcmp(action, "loss") || !strcmp(action, "latency") ||
           !strcmp(action, "reorder") || !strcmp(action, "corrupt") || !strcmp(action, "replay");
}

/* The subject/from/to part of a bus fault's mapping. */
static int fault_filters(ctx *c, const cap_yaml_node *m, const char *p, sim_fault *f)
{
    cap_yaml_diag *d = c->d;
    char kp[CAP_YAML_PATH_MAX];
    const cap_yaml_node *x;
    int rc;
    if ((x = cap_yaml_get(m, "subject"))) {
        cap_yaml_path_key(kp, p, "subject");
        char *s = NULL;
        if ((rc = get_str(x, kp, &s, d)))
            return rc;
        f->subject = s;
        if (!sim_subject_valid(s, 1))
            return cap_yaml_fail(d, CAP_EINVAL, x, kp, "bad subject pattern \"%.60s\"", s);
    }
    static const char *const ends[] = {"from", "to"};
    for (int e = 0; e < 2; e++) {
        if (!(x = cap_yaml_get(m, ends[e])))
            continue;
        cap_yaml_path_key(kp, p, ends[e]);
        char *s = NULL;
        if ((rc = get_actor(c, x, kp, ACT_ANY, &s)))
            return rc;
        if (e)
            f->to = s;
        else
            f->from = s;
    }
    return 0;
}

static int parse_bus_fault(ctx *c, const char *action, const cap_yaml_node *m, const char *p,
                           sim_fault *f)
{
    static const char *const filt[] = {"subject", "from", "to", NULL};
    static const char *const dup_keys[] = {"subject", "from", "to", "count", "p", NULL};
    static const char *const p_keys[] = {"subject", "from", "to", "p", NULL};
    static const char *const reorder_keys[] = {"subject", "from", "to", "window", NULL};
    static const char *const replay_keys[] = {"subject", "from", "to", "count", "after", NULL};
    cap_yaml_diag *d = c->d;
    int rc;
    if ((rc = expect_map(m, p, d)))
        return rc;
    if (!strcmp(action, "latency")) {
        f->kind = SIM_FAULT_LATENCY;
        if (m->kind != CAP_YAML_MAP)
            return cap_yaml_fail(d, CAP_EINVAL, m, p, "missing \"dist\"");
        if ((rc = parse_dist(m, p, filt, &f->latency, d)))
            return rc;
    } else if (!strcmp(action, "duplicate")) {
        f->kind = SIM_FAULT_DUPLICATE;
        int64_t v = 0;
        if ((rc = check_keys(m, dup_keys, p, d)) ||
            (rc = opt_int(m, "count", p, 0, INT64_MAX, &v, d)) ||
            (rc = opt_prob(m, "p", p, &f->p, d)))
            return rc;
        f->count = (uint64_t)v;
        if (!f->count && f->p == 0.0)
            return cap_yaml_fail(d, CAP_EINVAL, m, p, "duplicate needs count > 0 or p > 0");
    } else if (!strcmp(action, "replay")) {
        f->kind = SIM_FAULT_REPLAY;
        int64_t v = 0;
        if ((rc = check_keys(m, replay_keys, p, d)) || (rc = need(m, "count", p, "replay", d)) ||
            (rc = need(m, "after", p, "replay", d)) ||
            (rc = opt_int(m, "count", p, 1, INT64_MAX, &v, d)) ||
            (rc = opt_dur(m, "after", p, 1, SIM_BUS_MAX_DELAY, "> 0 and at most 1e15ns",
                          &f->after, d)))
            return rc;
        f->count = (uint64_t)v;
    } else if (!strcmp(action, "reorder")) {
        f->kind = SIM_FAULT_REORDER;
        if ((rc = check_keys(m, reorder_keys, p, d)) ||
            (rc = need(m, "window", p, "reorder", d)) ||
            (rc = opt_dur(m, "window", p, 0, SIM_BUS_MAX_DELAY, "between 0 and 1e15ns",
                          &f->window, d)))
            return rc;
    } else {
        f->kind = !strcmp(action, "loss") ? SIM_FAULT_LOSS : SIM_FAULT_CORRUPT;
        if ((rc = check_keys(m, p_keys, p, d)) || (rc = need(m, "p", p, action, d)) ||
            (rc = opt_prob(m, "p", p, &f->p, d)))
            return rc;
    }
    return fault_filters(c, m, p, f);
}

/* conflict: {count: N, after: D}. The next N signed submits the scheduler
 * admits each get a twin D later: another job, signed under the same
 * message_id. D is at most half the signature lifetime, so the first
 * body's id is still inside the replay guard's window when the twin
 * arrives and the guard must refuse it (cap-spec 19). */
static int parse_conflict(ctx *c, const cap_yaml_node *an, const char *ap, sim_timeline_event *ev)
{
    static const char *const keys[] = {"count", "after", NULL};
    cap_yaml_diag *d = c->d;
    int rc;
    ev->kind = SIM_EV_CONFLICT;
    if (!c->s->gateway.sign)
        return cap_yaml_fail(d, CAP_EINVAL, an, ap,
                             "needs gateway: {sign: true} (a conflict reuses a signed message_id)");
    int64_t count = 0;
    if ((rc = expect_map(an, ap, d)) || (rc = check_keys(an, keys, ap, d)) ||
        (rc = need(an, "count", ap, "conflict", d)) || (rc = need(an, "after", ap, "conflict", d)) ||
        (rc = opt_int(an, "count", ap, 1, SIM_SCENARIO_MAX_CONFLICTS, &count, d)) ||
        (rc = opt_dur(an, "after", ap, 1, c->s->gateway.signature_lifetime_ns / 2,
                      "> 0 and at most half of gateway.signature_lifetime", &ev->after_ns, d)))
        return rc;
    ev->count = (uint64_t)count;
    return 0;
}

static int parse_event(ctx *c, const cap_yaml_node *n, const char *p, sim_timeline_event *ev)
{
    cap_yaml_diag *d = c->d;
    char kp[CAP_YAML_PATH_MAX];
    int rc;
    if ((rc = expect_map(n, p, d)) || (rc = check_keys2(n, EVENT_KEYS, ACTIONS, p, d)))
        return rc;
    ev->line = n->line;
    const cap_yaml_node *an = NULL;
    const char *action = NULL;
    for (size_t i = 0; i < cap_yaml_count(n); i++) {
        const char *key = n->pairs[i].key->text;
        if (!in_list(ACTIONS, key))
            continue;
        if (action) {
            cap_yaml_path_key(kp, p, key);
            return cap_yaml_fail(d, CAP_EINVAL, n->pairs[i].key, kp,
                                 "two actions (%s and %s): write one per entry", action, key);
        }
        action = key;
        an = n->pairs[i].value;
    }
    if (!action)
        return cap_yaml_fail(d, CAP_EINVAL, n, p,
                             "no action (one of: crash, restart, partition, heal, duplicate, "
                             "loss, latency, reorder, corrupt, replay, skew, policy, cancel, "
                             "conflict)");
    if ((rc = need(n, "at", p, "a fault", d)) ||
        (rc = opt_dur(n, "at", p, 0, c->s->duration_ns, "between 0 and the duration", &ev->at,
                      d)))
        return rc;
    int bus = is_bus_fault(action);
    static const char *const busonly[] = {"duration", "from", "to"};
    for (int i = 0; i < 3; i++) {
        const cap_yaml_node *x = key_node(n, busonly[i]);
        if (x && !bus) {
            cap_yaml_path_key(kp, p, busonly[i]);
            return cap_yaml_fail(d, CAP_EINVAL, x, kp,
                                 "applies to duplicate, loss, latency, reorder, corrupt and "
                                 "replay only");
        }
    }
    char ap[CAP_YAML_PATH_MAX];
    cap_yaml_path_key(ap, p, action);
    if (bus) {
        ev->kind = SIM_EV_FAULT;
        if ((rc = parse_bus_fault(c, action, an, ap, &ev->fault)))
            return rc;
        ev->fault.start = ev->at;
        ev->fault.end = SIM_FOREVER;
        int64_t dur = 0;
        if ((rc = opt_dur(n, "duration", p, 1, MAX_RUN_NS, RUN_RANGE, &dur, d)))
            return rc;
        if (dur)
            ev->fault.end = ev->at + dur;
        /* Event-level from/to: the same as inside the mapping, not both. */
        static const char *const ends[] = {"from", "to"};
        for (int e = 0; e < 2; e++) {
            const cap_yaml_node *x = cap_yaml_get(n, ends[e]);
            if (!x)
                continue;
            cap_yaml_path_key(kp, p, ends[e]);
            const char **slot = e ? &ev->fault.to : &ev->fault.from;
            if (*slot)
                return cap_yaml_fail(d, CAP_EINVAL, x, kp, "%s is also given in %s", ends[e],
                                     action);
            char *s = NULL;
            if ((rc = get_actor(c, x, kp, ACT_ANY, &s)))
                return rc;
            *slot = s;
        }
        return 0;
    }
    if (!strcmp(action, "crash") || !strcmp(action, "restart")) {
        ev->kind = action[0] == 'c' ? SIM_EV_CRASH : SIM_EV_RESTART;
        return get_actor(c, an, ap, ACT_CRASHABLE, &ev->a);
    }
    if (!strcmp(action, "partition") || !strcmp(action, "heal")) {
        ev->kind = action[0] == 'p' ? SIM_EV_PARTITION : SIM_EV_HEAL;
        const cap_yaml_node *sides[2] = {an, NULL};
        char sp[2][CAP_YAML_PATH_MAX];
        snprintf(sp[0], CAP_YAML_PATH_MAX, "%s", ap);
        if (an->kind == CAP_YAML_SEQ) {
            if (an->n < 1 || an->n > 2)
                return cap_yaml_fail(d, CAP_EINVAL, an, ap,
                                     "one or two actors ([a] or [a, b]), not %zu", an->n);
            sides[0] = an->items[0];
            sides[1] = an->n == 2 ? an->items[1] : NULL;
            cap_yaml_path_index(sp[0], ap, 0);
            cap_yaml_path_index(sp[1], ap, 1);
        } else if (an->kind != CAP_YAML_SCALAR || cap_yaml_is_null(an)) {
            return cap_yaml_fail(d, CAP_EINVAL, an, ap, "expected one or two actors");
        }
        if ((rc = get_actor(c, sides[0], sp[0], ACT_GROUP, &ev->a)))
            return rc;
        if (sides[1]) {
            if ((rc = get_actor(c, sides[1], sp[1], ACT_GROUP, &ev->b)))
                return rc;
            if (!strcmp(ev->a, ev->b))
                return cap_yaml_fail(d, CAP_EINVAL, sides[1], sp[1],
                                     "both sides are \"%.60s\"", ev->a);
        } else if (!(ev->b = strdup(""))) {
            return oom(d);
        }
        return 0;
    }
    if (!strcmp(action, "skew")) {
        static const char *const keys[] = {"actor", "by", NULL};
        ev->kind = SIM_EV_SKEW;
        if ((rc = expect_map(an, ap, d)) || (rc = check_keys(an, keys, ap, d)) ||
            (rc = need(an, "actor", ap, "skew", d)) || (rc = need(an, "by", ap, "skew", d)))
            return rc;
        cap_yaml_path_key(kp, ap, "actor");
        if ((rc = get_actor(c, cap_yaml_get(an, "actor"), kp, ACT_ANY, &ev->a)))
            return rc;
        return opt_dur(an, "by", ap, -MAX_RUN_NS, MAX_RUN_NS, "between -30 days and 30 days",
                       &ev->skew_ns, d);
    }
    if (!strcmp(action, "policy")) {
        ev->kind = SIM_EV_POLICY;
        return load_policy(c, an, ap, &ev->policy_path, NULL, NULL);
    }
    if (!strcmp(action, "conflict"))
        return parse_conflict(c, an, ap, ev);
    /* cancel */
    ev->kind = SIM_EV_CANCEL;
    if ((rc = get_str(an, ap, &ev->a, d)))
        return rc;
    if (!ev->a[0])
        return cap_yaml_fail(d, CAP_EINVAL, an, ap, "empty job id");
    return 0;
}

static int parse_faults(ctx *c, const cap_yaml_node *n)
{
    cap_yaml_diag *d = c->d;
    sim_scenario *s = c->s;
    int rc = expect_seq(n, "faults", d);
    if (rc)
        return rc;
    size_t m = cap_yaml_count(n);
    if (m > SIM_SCENARIO_MAX_FAULTS)
        return cap_yaml_fail(d, CAP_EINVAL, n, "faults", "%zu faults (at most %d)", m,
                             SIM_SCENARIO_MAX_FAULTS);
    if (!m)
        return 0;
    if (!(s->timeline = calloc(m, sizeof *s->timeline)))
        return oom(d);
    for (size_t i = 0; i < m; i++) {
        char p[CAP_YAML_PATH_MAX];
        cap_yaml_path_index(p, "faults", i);
        if ((rc = parse_event(c, n->items[i], p, &s->timeline[s->n_timeline++])))
            return rc;
    }
    if (merge_sort(s->timeline, s->n_timeline, sizeof *s->timeline, cmp_event))
        return oom(d);
    return 0;
}

const char *sim_invariant_name(unsigned bit)
{
    switch (bit) {
    case SIM_INV_NO_BACKWARD: return "no-backward";
    case SIM_INV_ONE_TERMINAL: return "one-terminal";
    case SIM_INV_DISPATCH_ALLOWED: return "dispatch-allowed";
    case SIM_INV_APPROVAL_BOUND: return "approval-bound";
    case SIM_INV_HANDLER_ONCE: return "handler-once";
    case SIM_INV_LIVENESS: return "liveness";
    case SIM_INV_COMPENSATION: return "compensation";
    case SIM_INV_RESTART: return "restart";
    case SIM_INV_CONFLICT_REFUSED: return "conflict-refused";
    case SIM_INV_CHECKPOINT: return "checkpoint";
    default: return NULL;
    }
}

static int parse_invariants(ctx *c, const cap_yaml_node *n)
{
    cap_yaml_diag *d = c->d;
    int rc = expect_seq(n, "invariants", d);
    if (rc)
        return rc;
    c->s->invariants = 0;
    for (size_t i = 0; i < cap_yaml_count(n); i++) {
        char p[CAP_YAML_PATH_MAX];
        cap_yaml_path_index(p, "invariants", i);
        const char *name;
        if ((rc = cap_yaml_str(n->items[i], p, &name, d)))
            return rc;
        unsigned bit = 0;
        if (!strcmp(name, "all"))
            bit = SIM_INV_ALL;
        for (unsigned b = 1; !bit && (b & SIM_INV_ALL); b <<= 1)
            if (!strcmp(name, sim_invariant_name(b)))
                bit = b;
        if (!bit)
            return cap_yaml_fail(d, CAP_EINVAL, n->items[i], p,
                                 "unknown invariant \"%.40s\" (no-backward, one-terminal, "
                                 "dispatch-allowed, approval-bound, handler-once, liveness, "
                                 "compensation, restart, conflict-refused, checkpoint, all)",
                                 name);
        c->s->invariants |= bit;
    }
    return 0;
}

/* ---- top level ---- */

static int parse_seed(const cap_yaml_node *n, uint64_t *out, cap_yaml_diag *d)
{
    const char *s;
    int rc = cap_yaml_str(n, "seed", &s, d);
    if (rc)
        return rc;
    uint64_t v = 0;
    const char *q = s;
    for (; *q >= '0' && *q <= '9'; q++) {
        unsigned dg = (unsigned)(*q - '0');
        if (v > (UINT64_MAX - dg) / 10)
            break;
        v = v * 10 + dg;
    }
    if (q == s || *q)
        return cap_yaml_fail(d, CAP_EINVAL, n, "seed",
                             "seed \"%.40s\" is not an integer in [0, 2^64)", s);
    *out = v;
    return 0;
}

static int parse_root(ctx *c, const cap_yaml_node *root)
{
    static const char *const keys[] = {"name", "description", "seed", "duration", "drain",
                                       "max_events_per_instant", "policy", "scheduler", "bus", "workers", "approver",
                                       "gateway", "workload", "faults", "invariants", NULL};
    cap_yaml_diag *d = c->d;
    sim_scenario *s = c->s;
    int rc;
    if (!root)
        return cap_yaml_fail(d, CAP_EINVAL, NULL, "", "the scenario is empty");
    if (root->kind != CAP_YAML_MAP)
        return cap_yaml_fail(d, CAP_EINVAL, root, "", "a scenario must be a mapping");
    if ((rc = check_keys(root, keys, "", d)))
        return rc;
    static const char *const required[] = {"name", "duration", "policy"};
    for (size_t i = 0; i < 3; i++)
        if (!cap_yaml_get(root, required[i]))
            return cap_yaml_fail(d, CAP_EINVAL, root, "", "missing \"%s\"", required[i]);
    if ((rc = opt_str(root, "name", "", &s->name, d)))
        return rc;
    if (!s->name[0])
        return cap_yaml_fail(d, CAP_EINVAL, cap_yaml_get(root, "name"), "name", "empty name");
    const cap_yaml_node *x;
    if ((rc = opt_str(root, "description", "", &s->description, d)) ||
        ((x = cap_yaml_get(root, "seed")) && (rc = parse_seed(x, &s->seed, d))) ||
        (rc = opt_dur(root, "duration", "", 1, MAX_RUN_NS, RUN_RANGE, &s->duration_ns, d)) ||
        (rc = opt_dur(root, "drain", "", 0, MAX_RUN_NS, NONNEG_RANGE, &s->drain_ns, d)))
        return rc;
    int64_t per_instant = (int64_t)s->max_events_per_instant;
    if ((rc = opt_int(root, "max_events_per_instant", "", (int64_t)SIM_MIN_EVENTS_PER_INSTANT,
                      (int64_t)SIM_MAX_EVENTS_PER_INSTANT, &per_instant, d)))
        return rc;
    s->max_events_per_instant = (uint64_t)per_instant;
    if ((rc = load_policy(c, cap_yaml_get(root, "policy"), "policy", &s->policy_path,
                          &s->policy_text, &s->policy_len)))
        return rc;
    if (((x = cap_yaml_get(root, "scheduler")) && (rc = parse_scheduler(c, x))) ||
        ((x = cap_yaml_get(root, "bus")) && (rc = parse_bus(c, x))) ||
        ((x = cap_yaml_get(root, "workers")) && (rc = parse_workers(c, x))))
        return rc;
    if ((x = cap_yaml_get(root, "approver")) && !cap_yaml_is_null(x) &&
        (rc = parse_approver(c, x)))
        return rc;
    if ((x = cap_yaml_get(root, "gateway")) && (rc = parse_gateway(c, x)))
        return rc;
    if (((x = cap_yaml_get(root, "workload")) && (rc = parse_workload(c, x))) ||
        ((x = cap_yaml_get(root, "faults")) && (rc = parse_faults(c, x))) ||
        ((x = cap_yaml_get(root, "invariants")) && (rc = parse_invariants(c, x))))
        return rc;
    return 0;
}

int sim_scenario_parse(const char *path, const char *text, size_t len, sim_scenario **out,
                       cap_yaml_diag *d)
{
    return sim_scenario_parse_with(path, text, len, NULL, 0, out, d);
}

/* Applies the overrides to doc and keeps their copies in s. */
static int apply_sets(cap_yaml_doc *doc, const cap_yaml_bounds *b, const char *const *sets,
                      size_t n_sets, sim_scenario *s, cap_yaml_diag *d)
{
    if (!n_sets)
        return 0;
    if (!(s->sets = calloc(n_sets, sizeof *s->sets)))
        return oom(d);
    for (size_t i = 0; i < n_sets; i++) {
        int rc = cap_yaml_set(doc, sets[i], b, (int)i + 1, d);
        if (rc)
            return rc;
        if (!(s->sets[s->n_sets++] = strdup(sets[i])))
            return oom(d);
    }
    return 0;
}

int sim_scenario_parse_with(const char *path, const char *text, size_t len,
                            const char *const *sets, size_t n_sets, sim_scenario **out,
                            cap_yaml_diag *d)
{
    cap_yaml_diag local;
    if (!d)
        d = &local;
    memset(d, 0, sizeof *d);
    if (!out || (!text && len) || (n_sets && !sets))
        return cap_yaml_fail(d, CAP_EINVAL, NULL, "", "bad arguments");
    if (n_sets > SIM_SCENARIO_MAX_SETS)
        return cap_yaml_fail(d, CAP_EINVAL, NULL, "", "more than %d overrides",
                             SIM_SCENARIO_MAX_SETS);
    *out = NULL;
    if (len > SIM_SCENARIO_MAX_BYTES)
        return cap_yaml_fail(d, CAP_EYAML, NULL, "", "the scenario is over %zu bytes",
                             SIM_SCENARIO_MAX_BYTES);
    sim_scenario *s = calloc(1, sizeof *s);
    if (!s)
        return oom(d);
    /* Defaults. */
    s->drain_ns = INT64_C(600000000000);
    s->max_events_per_instant = SIM_DEFAULT_EVENTS_PER_INSTANT;
    s->latency = (sim_dist){SIM_DIST_FIXED, 1e6, 0};
    s->invariants = SIM_INV_ALL;
    s->approver.delay = (sim_dist){SIM_DIST_FIXED, 30e9, 0};
    s->approver.p_approve = 1.0;
    s->gateway.signature_lifetime_ns = SIM_SIGN_DEFAULT_LIFETIME_NS;
    ctx c = {d, NULL, s};
    int rc = CAP_ENOMEM;
    cap_yaml_doc *doc = NULL;
    if (!(s->path = strdup(path ? path : "<input>")) || !(s->description = strdup("")) ||
        !(s->approver.name = strdup("approver-1")) || !(c.dir = dir_of(path))) {
        oom(d);
        goto out;
    }
    cap_yaml_bounds b = cap_yaml_bounds_default();
    b.max_bytes = SIM_SCENARIO_MAX_BYTES;
    b.max_scalar = 4096;
    rc = cap_yaml_parse(text ? text : "", len, &b, &doc, d);
    if (rc)
        goto out;
    rc = apply_sets(doc, &b, sets, n_sets, s, d);
    if (rc)
        goto out;
    rc = parse_root(&c, cap_yaml_root(doc));
out:
    cap_yaml_free(doc);
    free(c.dir);
    if (rc) {
        sim_scenario_free(s);
        return rc;
    }
    *out = s;
    return CAP_OK;
}

int sim_scenario_load(const char *path, sim_scenario **out, cap_yaml_diag *d)
{
    return sim_scenario_load_with(path, NULL, 0, out, d);
}

int sim_scenario_load_with(const char *path, const char *const *sets, size_t n_sets,
                           sim_scenario **out, cap_yaml_diag *d)
{
    cap_yaml_diag local;
    if (!d)
        d = &local;
    memset(d, 0, sizeof *d);
    if (!out || !path)
        return cap_yaml_fail(d, CAP_EINVAL, NULL, "", "bad arguments");
    *out = NULL;
    char *text;
    size_t len;
    int err;
    int rc = read_bounded(path, SIM_SCENARIO_MAX_BYTES, &text, &len, &err);
    if (rc == CAP_ENOMEM)
        return oom(d);
    if (rc == CAP_EFULL)
        return cap_yaml_fail(d, CAP_EYAML, NULL, "", "the scenario is over %zu bytes",
                             SIM_SCENARIO_MAX_BYTES);
    if (rc)
        return cap_yaml_fail(d, CAP_EIO, NULL, "", "cannot read: %s", strerror(err));
    rc = sim_scenario_parse_with(path, text, len, sets, n_sets, out, d);
    free(text);
    return rc;
}

void sim_scenario_free(sim_scenario *s)
{
    if (!s)
        return;
    free(s->path);
    free(s->name);
    free(s->description);
    free(s->policy_path);
    free(s->policy_text);
    for (size_t i = 0; i < s->n_workers; i++) {
        sim_worker_spec *w = &s->workers[i];
        free(w->id);
        free(w->pool);
        kv_free(w->labels, w->n_labels);
        strs_free(w->capabilities, w->n_capabilities);
    }
    free(s->workers);
    sim_workload_spec *wl = &s->workload;
    for (size_t i = 0; i < wl->n_mix; i++) {
        sim_job_spec *j = &wl->mix[i];
        free(j->topic);
        free(j->tenant);
        kv_free(j->labels, j->n_labels);
        kv_free(j->meta_labels, j->n_meta_labels);
        strs_free(j->risk_tags, j->n_risk_tags);
        free(j->compensation_topic);
        free(j->idempotency_key);
    }
    free(wl->mix);
    for (size_t i = 0; i < wl->n_script; i++)
        free(wl->script[i].job_id);
    free(wl->script);
    free(s->approver.name);
    for (size_t i = 0; i < s->n_timeline; i++) {
        sim_timeline_event *e = &s->timeline[i];
        free(e->a);
        free(e->b);
        free(e->policy_path);
        free((char *)e->fault.subject);
        free((char *)e->fault.from);
        free((char *)e->fault.to);
    }
    free(s->timeline);
    for (size_t i = 0; i < s->n_sets; i++)
        free(s->sets[i]);
    free(s->sets);
    free(s);
}
