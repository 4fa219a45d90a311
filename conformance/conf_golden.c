/* Golden-trace cases: see conf_golden.h and docs/golden.md. */
#define _DEFAULT_SOURCE /* realpath, mkstemp, fsync */
#include "conf_golden.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cap_decode.h"
#include "cap_json.h"
#include "cap_schema.h"
#include "cap_trace.h"
#include "sim_scenario.h"
#include "sim_world.h"

#define CASE_MAX_BYTES ((size_t)64 << 10)
#define MAX_WINDOW_NS (INT64_C(3600) * INT64_C(1000000000))

/* ---- small helpers ---------------------------------------------------- */

/* A copy of s (NULL copies as ""). */
static char *xdup(const char *s) { return strdup(s ? s : ""); }

static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *c = malloc(na + 1 + nb + 1);
    if (!c)
        return NULL;
    memcpy(c, a, na);
    c[na] = '/';
    memcpy(c + na + 1, b, nb + 1);
    return c;
}

const char *conf_golden_role_name(unsigned role)
{
    return role == CONF_GOLDEN_ROLE_WORKER ? "worker"
           : role == CONF_GOLDEN_ROLE_SCHEDULER ? "scheduler"
                                                : NULL;
}

const char *conf_golden_roles_text(unsigned roles, char *buf, size_t n)
{
    if (!buf || !n)
        return buf;
    buf[0] = 0;
    size_t o = 0;
    for (unsigned bit = 1; bit <= CONF_GOLDEN_ROLE_SCHEDULER; bit <<= 1) {
        if (!(roles & bit))
            continue;
        int k = snprintf(buf + o, n - o, "%s%s", o ? "," : "", conf_golden_role_name(bit));
        if (k < 0 || (size_t)k >= n - o)
            break;
        o += (size_t)k;
    }
    return buf;
}

void conf_golden_free(conf_golden_case *c)
{
    if (!c)
        return;
    free(c->id);
    free(c->title);
    free(c->description);
    for (size_t i = 0; i < c->n_clauses; i++)
        free(c->clauses[i]);
    free(c->clauses);
    free(c->dir);
    free(c->case_path);
    free(c->scenario_path);
    free(c->golden_path);
    for (size_t i = 0; i < c->n_iut; i++) {
        free(c->iut[i].key);
        free(c->iut[i].value);
    }
    free(c->iut);
    free(c);
}

void conf_golden_free_all(conf_golden_case **cases, size_t n)
{
    if (!cases)
        return;
    for (size_t i = 0; i < n; i++)
        conf_golden_free(cases[i]);
    free(cases);
}

/* ---- case.yaml -------------------------------------------------------- */

static int read_text(const char *path, size_t max, char **out, size_t *len, cap_yaml_diag *d)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cap_yaml_fail(d, CAP_EIO, NULL, "", "cannot read %s: %s", path, strerror(errno));
    char *buf = malloc(max + 2);
    if (!buf) {
        fclose(f);
        return cap_yaml_fail(d, CAP_ENOMEM, NULL, "", "out of memory");
    }
    size_t n = fread(buf, 1, max + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return cap_yaml_fail(d, CAP_EIO, NULL, "", "cannot read %s", path);
    }
    if (n > max) {
        free(buf);
        return cap_yaml_fail(d, CAP_EYAML, NULL, "", "file over %zu bytes", max);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return CAP_OK;
}

static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return 0;
    return 1;
}

/* "cap-spec 07", "cap-spec 07 L47", "cap-spec 09 ~L31", "cap-tck retries". */
static int clause_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > 80)
        return 0;
    const char *p;
    if (strncmp(s, "cap-spec ", 9) == 0) {
        p = s + 9;
        if (!(p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9'))
            return 0;
        p += 2;
        if (*p == 'b') /* 04b */
            p++;
        if (!*p)
            return 1;
        if (*p++ != ' ')
            return 0;
        if (*p == '~')
            p++;
        if (*p++ != 'L' || !(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
        return *p == 0;
    }
    if (strncmp(s, "cap-tck ", 8) == 0)
        return n > 8;
    return 0;
}

static const char *basename_of(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static int str_key(const cap_yaml_node *root, const char *key, int required, const char **out,
                   cap_yaml_diag *d)
{
    const cap_yaml_node *n = cap_yaml_get(root, key);
    *out = NULL;
    if (!n) {
        if (required)
            return cap_yaml_fail(d, CAP_EINVAL, root, key, "missing key \"%s\"", key);
        return CAP_OK;
    }
    if (n->kind != CAP_YAML_SCALAR)
        return cap_yaml_fail(d, CAP_EYAML, n, key, "expected a string");
    return cap_yaml_str(n, key, out, d);
}

static int parse_case(conf_golden_case *c, const cap_yaml_node *root, const char *dirname,
                      cap_yaml_diag *d)
{
    static const char *const keys[] = {"id",     "title",  "clauses",     "roles", "scenario",
                                       "seed",   "window", "description", "iut",   NULL};
    if (!root || root->kind != CAP_YAML_MAP)
        return cap_yaml_fail(d, CAP_EINVAL, root, "", "expected a mapping (id, title, ...)");
    for (size_t i = 0; i < root->n; i++) {
        const char *k = root->pairs[i].key->text;
        size_t j = 0;
        while (keys[j] && strcmp(keys[j], k) != 0)
            j++;
        if (!keys[j])
            return cap_yaml_fail(d, CAP_EINVAL, root->pairs[i].key, k,
                                 "unknown key (known: id, title, clauses, roles, scenario, seed, "
                                 "window, description, iut)");
    }
    const char *s;
    int rc;
    /* id */
    if ((rc = str_key(root, "id", 1, &s, d)))
        return rc;
    if (!id_ok(s))
        return cap_yaml_fail(d, CAP_EINVAL, cap_yaml_get(root, "id"), "id",
                             "\"%s\" is not 1-64 of [a-z0-9-]", s);
    if (strcmp(s, dirname) != 0)
        return cap_yaml_fail(d, CAP_EINVAL, cap_yaml_get(root, "id"), "id",
                             "\"%s\" differs from the directory name \"%s\"", s, dirname);
    if (!(c->id = xdup(s)))
        return CAP_ENOMEM;
    /* title, description */
    if ((rc = str_key(root, "title", 1, &s, d)))
        return rc;
    if (!s[0] || strlen(s) > 200)
        return cap_yaml_fail(d, CAP_EINVAL, cap_yaml_get(root, "title"), "title",
                             "want 1 to 200 bytes");
    if (!(c->title = xdup(s)))
        return CAP_ENOMEM;
    if ((rc = str_key(root, "description", 0, &s, d)))
        return rc;
    if (!(c->description = xdup(s ? s : "")))
        return CAP_ENOMEM;
    /* clauses */
    const cap_yaml_node *n = cap_yaml_get(root, "clauses");
    if (!n)
        return cap_yaml_fail(d, CAP_EINVAL, root, "clauses", "missing key \"clauses\"");
    if (n->kind != CAP_YAML_SEQ || n->n == 0 || n->n > CONF_GOLDEN_MAX_CLAUSES)
        return cap_yaml_fail(d, CAP_EINVAL, n, "clauses", "want a list of 1 to %d clauses",
                             CONF_GOLDEN_MAX_CLAUSES);
    if (!(c->clauses = calloc(n->n, sizeof *c->clauses)))
        return CAP_ENOMEM;
    for (size_t i = 0; i < n->n; i++) {
        char p[CAP_YAML_PATH_MAX];
        cap_yaml_path_index(p, "clauses", i);
        if (n->items[i]->kind != CAP_YAML_SCALAR)
            return cap_yaml_fail(d, CAP_EYAML, n->items[i], p, "expected a string");
        if ((rc = cap_yaml_str(n->items[i], p, &s, d)))
            return rc;
        if (!clause_ok(s))
            return cap_yaml_fail(d, CAP_EINVAL, n->items[i], p,
                                 "\"%s\" is not a clause (\"cap-spec NN\", \"cap-spec NN LNN\", "
                                 "\"cap-spec NN ~LNN\" or \"cap-tck ...\")",
                                 s);
        if (!(c->clauses[i] = xdup(s)))
            return CAP_ENOMEM;
        c->n_clauses++;
    }
    /* roles */
    n = cap_yaml_get(root, "roles");
    if (!n)
        return cap_yaml_fail(d, CAP_EINVAL, root, "roles", "missing key \"roles\"");
    if (n->kind != CAP_YAML_SEQ || n->n == 0)
        return cap_yaml_fail(d, CAP_EINVAL, n, "roles", "want a list of roles (worker, scheduler)");
    for (size_t i = 0; i < n->n; i++) {
        char p[CAP_YAML_PATH_MAX];
        cap_yaml_path_index(p, "roles", i);
        if (n->items[i]->kind != CAP_YAML_SCALAR)
            return cap_yaml_fail(d, CAP_EYAML, n->items[i], p, "expected a string");
        if ((rc = cap_yaml_str(n->items[i], p, &s, d)))
            return rc;
        unsigned bit = strcmp(s, "worker") == 0      ? CONF_GOLDEN_ROLE_WORKER
                       : strcmp(s, "scheduler") == 0 ? CONF_GOLDEN_ROLE_SCHEDULER
                                                     : 0;
        if (!bit)
            return cap_yaml_fail(d, CAP_EINVAL, n->items[i], p,
                                 "unknown role \"%s\" (roles: worker, scheduler)", s);
        if (c->roles & bit)
            return cap_yaml_fail(d, CAP_EINVAL, n->items[i], p, "role \"%s\" listed twice", s);
        c->roles |= bit;
    }
    /* seed */
    n = cap_yaml_get(root, "seed");
    if (!n)
        return cap_yaml_fail(d, CAP_EINVAL, root, "seed", "missing key \"seed\"");
    int64_t v;
    if ((rc = cap_yaml_int(n, "seed", 0, INT64_MAX, &v, d)))
        return rc;
    c->seed = (uint64_t)v;
    /* window */
    if ((rc = str_key(root, "window", 1, &s, d)))
        return rc;
    if (sim_parse_duration(s, &c->window_ns) || c->window_ns <= 0 || c->window_ns > MAX_WINDOW_NS)
        return cap_yaml_fail(d, CAP_EINVAL, cap_yaml_get(root, "window"), "window",
                             "\"%s\" is not a duration > 0 and at most 1h (e.g. 2s, 500ms)", s);
    /* iut */
    n = cap_yaml_get(root, "iut");
    if (n && !cap_yaml_is_null(n)) {
        if (n->kind != CAP_YAML_MAP || n->n > CONF_GOLDEN_MAX_IUT)
            return cap_yaml_fail(d, CAP_EINVAL, n, "iut", "want a mapping of at most %d strings",
                                 CONF_GOLDEN_MAX_IUT);
        if (!(c->iut = calloc(n->n ? n->n : 1, sizeof *c->iut)))
            return CAP_ENOMEM;
        for (size_t i = 0; i < n->n; i++) {
            char p[CAP_YAML_PATH_MAX];
            cap_yaml_path_key(p, "iut", n->pairs[i].key->text);
            const cap_yaml_node *val = n->pairs[i].value;
            if (val->kind != CAP_YAML_SCALAR)
                return cap_yaml_fail(d, CAP_EYAML, val, p, "expected a string");
            if ((rc = cap_yaml_str(val, p, &s, d)))
                return rc;
            c->iut[i].key = xdup(n->pairs[i].key->text);
            c->iut[i].value = xdup(s);
            c->n_iut++;
            if (!c->iut[i].key || !c->iut[i].value)
                return CAP_ENOMEM;
        }
    }
    /* scenario */
    if ((rc = str_key(root, "scenario", 1, &s, d)))
        return rc;
    const cap_yaml_node *sn = cap_yaml_get(root, "scenario");
    if (!s[0])
        return cap_yaml_fail(d, CAP_EINVAL, sn, "scenario", "empty path");
    char *rel = s[0] == '/' ? xdup(s) : join(c->dir, s);
    if (!rel)
        return CAP_ENOMEM;
    char *abs = realpath(rel, NULL);
    if (!abs) {
        rc = cap_yaml_fail(d, CAP_EINVAL, sn, "scenario", "cannot read scenario file %s: %s", rel,
                           strerror(errno));
        free(rel);
        return rc;
    }
    free(rel);
    c->scenario_path = abs;
    if (!(c->golden_path = join(c->dir, CONF_GOLDEN_TRACE_FILE)))
        return CAP_ENOMEM;
    return CAP_OK;
}

int conf_golden_load(const char *case_dir, conf_golden_case **out, char **case_path_out,
                     cap_yaml_diag *d)
{
    cap_yaml_diag local;
    if (!d)
        d = &local;
    memset(d, 0, sizeof *d);
    if (case_path_out)
        *case_path_out = NULL;
    if (!case_dir || !out)
        return cap_yaml_fail(d, CAP_EINVAL, NULL, "", "no case directory");
    *out = NULL;
    if (case_path_out && !(*case_path_out = join(case_dir, CONF_GOLDEN_CASE_FILE)))
        return CAP_ENOMEM;
    conf_golden_case *c = calloc(1, sizeof *c);
    if (!c)
        return CAP_ENOMEM;
    c->dir = realpath(case_dir, NULL);
    if (!c->dir) {
        int rc = cap_yaml_fail(d, CAP_EIO, NULL, "", "cannot open case directory %s: %s", case_dir,
                               strerror(errno));
        conf_golden_free(c);
        return rc;
    }
    if (!(c->case_path = join(c->dir, CONF_GOLDEN_CASE_FILE))) {
        conf_golden_free(c);
        return CAP_ENOMEM;
    }
    char *text = NULL;
    size_t len = 0;
    int rc = read_text(c->case_path, CASE_MAX_BYTES, &text, &len, d);
    cap_yaml_doc *doc = NULL;
    if (!rc) {
        cap_yaml_bounds b = cap_yaml_bounds_default();
        b.max_bytes = CASE_MAX_BYTES;
        rc = cap_yaml_parse(text, len, &b, &doc, d);
    }
    if (!rc)
        rc = parse_case(c, cap_yaml_root(doc), basename_of(c->dir), d);
    if (rc == CAP_ENOMEM && !d->reason[0])
        cap_yaml_fail(d, CAP_ENOMEM, NULL, "", "out of memory");
    cap_yaml_free(doc);
    free(text);
    if (rc) {
        conf_golden_free(c);
        return rc;
    }
    *out = c;
    return CAP_OK;
}

static int cmp_case(const void *a, const void *b)
{
    return strcmp((*(conf_golden_case *const *)a)->id, (*(conf_golden_case *const *)b)->id);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int conf_golden_load_dir(const char *dir, conf_golden_case ***out, size_t *n, char **bad_path,
                         cap_yaml_diag *d)
{
    cap_yaml_diag local;
    if (!d)
        d = &local;
    memset(d, 0, sizeof *d);
    if (bad_path)
        *bad_path = NULL;
    if (!dir || !out || !n)
        return cap_yaml_fail(d, CAP_EINVAL, NULL, "", "no directory");
    *out = NULL;
    *n = 0;
    DIR *dh = opendir(dir);
    if (!dh)
        return cap_yaml_fail(d, CAP_EIO, NULL, "", "cannot open %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t nn = 0;
    int rc = CAP_OK;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = join(dir, e->d_name);
        char *cp = sub ? join(sub, CONF_GOLDEN_CASE_FILE) : NULL;
        struct stat st;
        int is_case = cp && stat(cp, &st) == 0 && S_ISREG(st.st_mode);
        free(cp);
        if (!sub) {
            rc = CAP_ENOMEM;
            break;
        }
        if (!is_case) {
            free(sub);
            continue;
        }
        if (nn >= CONF_GOLDEN_MAX_CASES) {
            free(sub);
            rc = cap_yaml_fail(d, CAP_EINVAL, NULL, "", "more than %d cases in %s",
                               CONF_GOLDEN_MAX_CASES, dir);
            break;
        }
        char **grown = realloc(names, (nn + 1) * sizeof *names);
        if (!grown) {
            free(sub);
            rc = CAP_ENOMEM;
            break;
        }
        names = grown;
        names[nn++] = sub;
    }
    closedir(dh);
    if (!rc && nn)
        qsort(names, nn, sizeof *names, cmp_str);
    conf_golden_case **cases = rc ? NULL : calloc(nn ? nn : 1, sizeof *cases);
    if (!rc && !cases)
        rc = CAP_ENOMEM;
    size_t loaded = 0;
    for (size_t i = 0; !rc && i < nn; i++) {
        rc = conf_golden_load(names[i], &cases[i], bad_path, d);
        if (!rc) {
            loaded++;
            if (bad_path) {
                free(*bad_path);
                *bad_path = NULL;
            }
        }
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (rc) {
        if (rc == CAP_ENOMEM && !d->reason[0])
            cap_yaml_fail(d, CAP_ENOMEM, NULL, "", "out of memory");
        conf_golden_free_all(cases, loaded);
        return rc;
    }
    if (nn)
        qsort(cases, nn, sizeof *cases, cmp_case);
    for (size_t i = 1; i < nn; i++)
        if (strcmp(cases[i - 1]->id, cases[i]->id) == 0) {
            if (bad_path)
                *bad_path = xdup(cases[i]->case_path);
            rc = cap_yaml_fail(d, CAP_EINVAL, NULL, "id", "case id \"%s\" used twice",
                               cases[i]->id);
            conf_golden_free_all(cases, nn);
            return rc;
        }
    *out = cases;
    *n = nn;
    return CAP_OK;
}

/* ---- records ---------------------------------------------------------- */

void conf_golden_records_free(conf_golden_record *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++) {
        free(r[i].sender);
        free(r[i].subject);
        free(r[i].json);
        free(r[i].bytes);
    }
    free(r);
}

static const char *short_status(int st)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&cordum__agent__v1__job_status__descriptor, st);
    if (!v)
        return "?";
    return strncmp(v->name, "JOB_STATUS_", 11) == 0 ? v->name + 11 : v->name;
}

static void attempt_text(const Cordum__Agent__V1__DispatchIdentity *di, char *buf, size_t n)
{
    if (di)
        snprintf(buf, n, " attempt %" PRIu64, (uint64_t)di->attempt);
    else
        buf[0] = 0;
}

/* The one-line label of a packet, for reports. */
static void label_of(const cap_packet *p, char *buf, size_t n)
{
    char at[40];
    switch (p->payload_case) {
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST:
        attempt_text(p->job_request->dispatch, at, sizeof at);
        snprintf(buf, n, "JobRequest %.80s%s", p->job_request->job_id, at);
        break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT:
        attempt_text(p->job_result->dispatch, at, sizeof at);
        snprintf(buf, n, "JobResult %s %.80s%s", short_status(p->job_result->status),
                 p->job_result->job_id, at);
        break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS:
        attempt_text(p->job_progress->dispatch, at, sizeof at);
        snprintf(buf, n, "JobProgress %d%% %.80s%s", (int)p->job_progress->percent,
                 p->job_progress->job_id, at);
        break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL:
        attempt_text(p->job_cancel->dispatch, at, sizeof at);
        snprintf(buf, n, "JobCancel %.80s%s", p->job_cancel->job_id, at);
        break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT:
        snprintf(buf, n, "Heartbeat %.80s active %d", p->heartbeat->worker_id,
                 (int)p->heartbeat->active_jobs);
        break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_ALERT: {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &cordum__agent__v1__error_code__descriptor, p->alert->error_code_enum);
        snprintf(buf, n, "SystemAlert %.80s", v ? v->name : "?");
        break;
    }
    default: {
        const char *name = cap_packet_payload_name(p);
        snprintf(buf, n, "%s", name ? name : "no payload");
        break;
    }
    }
}

static int record_fill(conf_golden_record *r, const cap_trace_record *t)
{
    memset(r, 0, sizeof *r);
    r->time = t->time;
    r->sender = xdup(t->sender);
    r->subject = xdup(t->subject);
    r->len = t->len;
    r->bytes = malloc(t->len ? t->len : 1);
    if (!r->sender || !r->subject || !r->bytes)
        return CAP_ENOMEM;
    if (t->len)
        memcpy(r->bytes, t->bytes, t->len);
    cap_bounds b = cap_bounds_default();
    b.max_packet = t->len > b.max_packet ? t->len : b.max_packet;
    cap_packet *p = NULL;
    cap_diag pd;
    if (cap_packet_decode(t->bytes, t->len, &b, CAP_DECODE_LENIENT, &p, &pd) == CAP_OK) {
        label_of(p, r->label, sizeof r->label);
        if (cap_json_from_message(&p->base, 0, &r->json) != CAP_OK)
            r->json = NULL;
        cap_packet_free(p);
    } else {
        snprintf(r->label, sizeof r->label, "undecodable (%zu bytes)", t->len);
    }
    return CAP_OK;
}

static int read_records(FILE *f, conf_golden_record **out, size_t *n, char hash[65], cap_diag *d)
{
    cap_trace_reader *rd = NULL;
    int rc = cap_trace_reader_open(f, CAP_TRACE_AUTO, NULL, &rd, d);
    if (rc)
        return rc;
    conf_golden_record *recs = NULL;
    size_t nr = 0, cap = 0;
    cap_trace_record t;
    while ((rc = cap_trace_read(rd, &t, d)) == 1) {
        if (t.kind != CAP_TRACE_PUBLISH)
            continue;
        if (nr >= CONF_GOLDEN_MAX_RECORDS) {
            rc = cap_diag_set(d, CAP_EFULL, -1, "", "more than %d records",
                              CONF_GOLDEN_MAX_RECORDS);
            break;
        }
        if (nr == cap) {
            size_t nc = cap ? cap * 2 : 64;
            conf_golden_record *g = realloc(recs, nc * sizeof *recs);
            if (!g) {
                rc = CAP_ENOMEM;
                break;
            }
            recs = g;
            cap = nc;
        }
        rc = record_fill(&recs[nr], &t);
        nr++;
        if (rc)
            break;
    }
    if (rc == 0 && hash)
        rc = cap_trace_reader_hash(rd, hash);
    cap_trace_reader_close(rd);
    if (rc) {
        if (rc == CAP_ENOMEM && d && !d->reason[0])
            cap_diag_set(d, CAP_ENOMEM, -1, "", "out of memory");
        conf_golden_records_free(recs, nr);
        return rc;
    }
    *out = recs;
    *n = nr;
    return CAP_OK;
}

int conf_golden_read_trace(const char *path, conf_golden_record **out, size_t *n, char hash[65],
                           cap_diag *d)
{
    if (!path || !out || !n)
        return cap_diag_set(d, CAP_EINVAL, -1, "", "no trace");
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cap_diag_set(d, CAP_EIO, -1, "", "cannot read %s: %s", path, strerror(errno));
    int rc = read_records(f, out, n, hash, d);
    fclose(f);
    return rc;
}

/* ---- running a case --------------------------------------------------- */

int conf_golden_run(const conf_golden_case *c, FILE *f, cap_yaml_diag *yd, cap_diag *d)
{
    cap_yaml_diag ylocal;
    if (!yd)
        yd = &ylocal;
    memset(yd, 0, sizeof *yd);
    if (!c || !f)
        return cap_diag_set(d, CAP_EINVAL, -1, "", "no case or no file");
    sim_scenario *scn = NULL;
    int rc = sim_scenario_load(c->scenario_path, &scn, yd);
    if (rc)
        return rc;
    sim_result *res = malloc(sizeof *res);
    if (!res) {
        sim_scenario_free(scn);
        return cap_diag_set(d, CAP_ENOMEM, -1, "", "out of memory");
    }
    sim_run_config rc_cfg;
    memset(&rc_cfg, 0, sizeof rc_cfg);
    rc_cfg.scn = scn;
    rc_cfg.seed = c->seed;
    rc_cfg.trace_jsonl = f;
    rc = sim_run(&rc_cfg, res, d);
    if (!rc && fflush(f) != 0)
        rc = cap_diag_set(d, CAP_EIO, -1, "", "cannot write the trace: %s", strerror(errno));
    free(res);
    sim_scenario_free(scn);
    return rc;
}

int conf_golden_observe(const conf_golden_case *c, conf_golden_record **out, size_t *n,
                        char hash[65], cap_yaml_diag *yd, cap_diag *d)
{
    if (!out || !n)
        return cap_diag_set(d, CAP_EINVAL, -1, "", "no output");
    *out = NULL;
    *n = 0;
    FILE *f = tmpfile();
    if (!f)
        return cap_diag_set(d, CAP_EIO, -1, "", "cannot create a temporary file: %s",
                            strerror(errno));
    int rc = conf_golden_run(c, f, yd, d);
    if (!rc) {
        rewind(f);
        rc = read_records(f, out, n, hash, d);
    }
    fclose(f);
    return rc;
}

int conf_golden_update(const conf_golden_case *c, cap_yaml_diag *yd, cap_diag *d)
{
    if (!c)
        return cap_diag_set(d, CAP_EINVAL, -1, "", "no case");
    size_t n = strlen(c->golden_path);
    char *tmp = malloc(n + 16);
    if (!tmp)
        return cap_diag_set(d, CAP_ENOMEM, -1, "", "out of memory");
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", c->golden_path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = cap_diag_set(d, CAP_EIO, -1, "", "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return cap_diag_set(d, CAP_EIO, -1, "", "cannot open a temporary file");
    }
    int rc = conf_golden_run(c, f, yd, d);
    if (!rc && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = cap_diag_set(d, CAP_EIO, -1, "", "cannot write %s: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && !rc)
        rc = cap_diag_set(d, CAP_EIO, -1, "", "cannot write %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, c->golden_path) != 0)
        rc = cap_diag_set(d, CAP_EIO, -1, "", "cannot rename %s to %s: %s", tmp, c->golden_path,
                          strerror(errno));
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- comparison ------------------------------------------------------- */

typedef struct {
    conf_golden_field_diff *v;
    size_t n, cap;
    int oom;
} diff_list;

static void add_diff(diff_list *l, const char *path, const char *exp, const char *obs)
{
    if (l->oom)
        return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        conf_golden_field_diff *g = realloc(l->v, nc * sizeof *g);
        if (!g) {
            l->oom = 1;
            return;
        }
        l->v = g;
        l->cap = nc;
    }
    conf_golden_field_diff *f = &l->v[l->n];
    snprintf(f->path, sizeof f->path, "%s", path);
    f->expected = xdup(exp);
    f->observed = xdup(obs);
    if (!f->expected || !f->observed) {
        free(f->expected);
        free(f->observed);
        l->oom = 1;
        return;
    }
    l->n++;
}

static char *json_text(const cJSON *j)
{
    if (!j)
        return xdup("absent");
    char *t = cJSON_PrintUnformatted(j);
    if (!t)
        return NULL;
    char *c = xdup(t);
    cJSON_free(t);
    return c;
}

/* Walks two JSON values, adding one diff per leaf that differs. Arrays are
 * compared element by element; an object key present on one side only is
 * a diff with "absent" on the other. */
static void walk(diff_list *l, const char *path, const cJSON *a, const cJSON *b, int depth)
{
    if (l->oom || l->n >= 64)
        return;
    if (a && b && cJSON_IsObject(a) && cJSON_IsObject(b) && depth < 32) {
        const cJSON *x;
        cJSON_ArrayForEach(x, a) {
            char p[192];
            snprintf(p, sizeof p, "%s.%s", path, x->string);
            walk(l, p, x, cJSON_GetObjectItemCaseSensitive(b, x->string), depth + 1);
        }
        cJSON_ArrayForEach(x, b) {
            if (cJSON_GetObjectItemCaseSensitive(a, x->string))
                continue;
            char p[192];
            snprintf(p, sizeof p, "%s.%s", path, x->string);
            walk(l, p, NULL, x, depth + 1);
        }
        return;
    }
    if (a && b && cJSON_IsArray(a) && cJSON_IsArray(b) && depth < 32) {
        int na = cJSON_GetArraySize(a), nb = cJSON_GetArraySize(b);
        for (int i = 0; i < (na > nb ? na : nb); i++) {
            char p[192];
            snprintf(p, sizeof p, "%s[%d]", path, i);
            walk(l, p, i < na ? cJSON_GetArrayItem(a, i) : NULL,
                 i < nb ? cJSON_GetArrayItem(b, i) : NULL, depth + 1);
        }
        return;
    }
    if (a && b && cJSON_Compare(a, b, 1))
        return;
    char *ea = json_text(a), *eb = json_text(b);
    if (!ea || !eb)
        l->oom = 1;
    else
        add_diff(l, path, ea, eb);
    free(ea);
    free(eb);
}

static int rec_equal(const conf_golden_record *a, const conf_golden_record *b)
{
    return a->time == b->time && strcmp(a->sender, b->sender) == 0 &&
           strcmp(a->subject, b->subject) == 0 && a->len == b->len &&
           (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
}

static void field_diffs(diff_list *l, const conf_golden_record *a, const conf_golden_record *b)
{
    char x[64], y[256], z[256];
    if (!a || !b) {
        snprintf(y, sizeof y, "\"%.200s\"", a ? a->label : b->label);
        add_diff(l, "record", a ? y : "absent", b ? y : "absent");
        return;
    }
    if (a->time != b->time) {
        snprintf(x, sizeof x, "%" PRId64, a->time);
        snprintf(y, sizeof y, "%" PRId64, b->time);
        add_diff(l, "time", x, y);
    }
    if (strcmp(a->sender, b->sender) != 0) {
        snprintf(y, sizeof y, "\"%.200s\"", a->sender);
        snprintf(z, sizeof z, "\"%.200s\"", b->sender);
        add_diff(l, "sender", y, z);
    }
    if (strcmp(a->subject, b->subject) != 0) {
        snprintf(y, sizeof y, "\"%.200s\"", a->subject);
        snprintf(z, sizeof z, "\"%.200s\"", b->subject);
        add_diff(l, "subject", y, z);
    }
    if (a->len == b->len && (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0))
        return;
    cJSON *ja = a->json ? cJSON_Parse(a->json) : NULL, *jb = b->json ? cJSON_Parse(b->json) : NULL;
    size_t before = l->n;
    if (ja && jb)
        walk(l, "$", ja, jb, 0);
    if (l->n == before && !l->oom) {
        /* same JSON form (or none): the bytes differ below the JSON level */
        snprintf(y, sizeof y, "\"%zu bytes\"", a->len);
        snprintf(z, sizeof z, "\"%zu bytes\"", b->len);
        add_diff(l, "bytes", y, z);
    }
    cJSON_Delete(ja);
    cJSON_Delete(jb);
}

int conf_golden_diff(const conf_golden_record *exp, size_t n_exp, const conf_golden_record *obs,
                     size_t n_obs, conf_golden_result *out)
{
    if (!out)
        return CAP_EINVAL;
    out->first_diff = -1;
    out->diffs = NULL;
    out->n_diffs = 0;
    size_t n = n_exp > n_obs ? n_exp : n_obs;
    for (size_t i = 0; i < n; i++) {
        const conf_golden_record *a = i < n_exp ? &exp[i] : NULL, *b = i < n_obs ? &obs[i] : NULL;
        if (a && b && rec_equal(a, b))
            continue;
        diff_list l = {0};
        field_diffs(&l, a, b);
        if (l.oom) {
            for (size_t k = 0; k < l.n; k++) {
                free(l.v[k].expected);
                free(l.v[k].observed);
            }
            free(l.v);
            return CAP_ENOMEM;
        }
        out->first_diff = (long)i;
        out->diffs = l.v;
        out->n_diffs = l.n;
        break;
    }
    return CAP_OK;
}

void conf_golden_result_free(conf_golden_result *r)
{
    if (!r)
        return;
    conf_golden_records_free(r->expected, r->n_expected);
    conf_golden_records_free(r->observed, r->n_observed);
    for (size_t i = 0; i < r->n_diffs; i++) {
        free(r->diffs[i].expected);
        free(r->diffs[i].observed);
    }
    free(r->diffs);
    memset(r, 0, sizeof *r);
    r->first_diff = -1;
}

int conf_golden_check(const conf_golden_case *c, conf_golden_result *out, cap_yaml_diag *yd,
                      cap_diag *d)
{
    if (!c || !out)
        return cap_diag_set(d, CAP_EINVAL, -1, "", "no case or no result");
    memset(out, 0, sizeof *out);
    out->first_diff = -1;
    int rc = conf_golden_read_trace(c->golden_path, &out->expected, &out->n_expected,
                                    out->expected_hash, d);
    if (!rc)
        rc = conf_golden_observe(c, &out->observed, &out->n_observed, out->observed_hash, yd, d);
    if (!rc)
        rc = conf_golden_diff(out->expected, out->n_expected, out->observed, out->n_observed, out);
    if (rc)
        conf_golden_result_free(out);
    return rc;
}
