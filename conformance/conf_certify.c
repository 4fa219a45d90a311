/* capsim certify: golden cases against an implementation on a real NATS
 * bus; see conf_certify.h and docs/certify.md. */
#include "conf_certify.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cap_trace.h"
#include "conf_adapter.h"
#include "conf_golden.h"
#include "conf_html.h"
#include "conf_json.h"
#include "conf_match.h"
#include "conf_nats.h"
#include "conf_peer.h"
#include "conf_report.h"
#include "sim_scenario.h"

#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)
#define DEFAULT_READY_NS (10 * SEC)
#define DEFAULT_SETTLE_NS (500 * MS)
#define MAX_VARS 96
#define MAX_CASE_NS (600 * SEC)
#define CERTIFY_TOOL_VERSION "capsim-certify/1"

/* ---- placeholders ---- */

int conf_certify_subst(const char *arg, const char *const *names, const char *const *values,
                       size_t n_vars, char **out, char *err, size_t n)
{
    *out = NULL;
    size_t cap = strlen(arg) + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return CAP_ENOMEM;
    for (const char *p = arg; *p;) {
        const char *piece = p;
        size_t pl = 1;
        if (p[0] == '{' && p[1] == '{') {
            p += 2;
        } else if (p[0] == '{') {
            const char *end = strchr(p, '}');
            if (!end) {
                conf_errf(err, n, "unterminated placeholder in \"%.200s\"", arg);
                free(buf);
                return CAP_EINVAL;
            }
            size_t nl = (size_t)(end - p - 1);
            const char *val = NULL;
            for (size_t i = 0; i < n_vars; i++)
                if (strlen(names[i]) == nl && strncmp(names[i], p + 1, nl) == 0)
                    val = values[i];
            if (!val) {
                conf_errf(err, n, "unknown placeholder {%.*s} in \"%.200s\"", (int)(nl > 100 ? 100 : nl), p + 1, arg);
                free(buf);
                return CAP_EINVAL;
            }
            piece = val;
            pl = strlen(val);
            p = end + 1;
        } else {
            p++;
        }
        if (len + pl + 1 > cap) {
            cap = (len + pl + 1) * 2;
            char *g = realloc(buf, cap);
            if (!g) {
                free(buf);
                return CAP_ENOMEM;
            }
            buf = g;
        }
        memcpy(buf + len, piece, pl);
        len += pl;
    }
    buf[len] = '\0';
    *out = buf;
    return CAP_OK;
}

typedef struct {
    const char *names[MAX_VARS];
    const char *values[MAX_VARS];
    char store[MAX_VARS][64];
    size_t n;
} vars;

static void var_set(vars *v, const char *name, const char *value)
{
    if (v->n < MAX_VARS) {
        v->names[v->n] = name;
        v->values[v->n] = value ? value : "";
        v->n++;
    }
}

static void var_ns(vars *v, const char *name, int64_t ns)
{
    if (v->n >= MAX_VARS)
        return;
    char *s = v->store[v->n];
    if (ns % SEC == 0)
        snprintf(s, 64, "%llds", (long long)(ns / SEC));
    else
        snprintf(s, 64, "%lldms", (long long)(ns / MS));
    var_set(v, name, s);
}

static void var_u(vars *v, const char *name, unsigned long long x)
{
    if (v->n >= MAX_VARS)
        return;
    char *s = v->store[v->n];
    snprintf(s, 64, "%llu", x);
    var_set(v, name, s);
}

/* ---- the implementation under test as a child process ---- */

typedef struct {
    pid_t pid;
    int exited;
    int status;
} iut_proc;

static int iut_spawn(char **argv, const char *log_path, iut_proc *ip, char *err, size_t n)
{
    memset(ip, 0, sizeof *ip);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        conf_errf(err, n, "fork: %s", strerror(errno));
        return CAP_EIO;
    }
    if (pid == 0) {
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int in = open("/dev/null", O_RDONLY);
        int lg = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in >= 0)
            dup2(in, 0);
        if (lg >= 0) {
            dup2(lg, 1);
            dup2(lg, 2);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    ip->pid = pid;
    return CAP_OK;
}

static int iut_poll(iut_proc *ip)
{
    if (ip->pid <= 0 || ip->exited)
        return ip->exited;
    int st;
    if (waitpid(ip->pid, &st, WNOHANG) == ip->pid) {
        ip->exited = 1;
        ip->status = st;
    }
    return ip->exited;
}

static void iut_kill(iut_proc *ip)
{
    if (ip->pid <= 0)
        return;
    if (!iut_poll(ip)) {
        kill(-ip->pid, SIGTERM);
        for (int i = 0; i < 200 && !iut_poll(ip); i++) {
            struct timespec ts = {0, 10 * MS};
            nanosleep(&ts, NULL);
        }
        if (!ip->exited) {
            kill(-ip->pid, SIGKILL);
            waitpid(ip->pid, &ip->status, 0);
            ip->exited = 1;
        }
    }
    kill(-ip->pid, SIGKILL); /* whatever it left behind in its session */
    ip->pid = 0;
}

static void exit_text(int st, char *buf, size_t n)
{
    if (WIFEXITED(st))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, n, "killed by signal %d", WTERMSIG(st));
    else
        snprintf(buf, n, "ended");
}

/* ---- one case ---- */

typedef struct {
    char *subject;
    uint8_t *bytes;
    size_t len;
} own_msg;

typedef struct {
    const conf_certify_opts *o;
    const char *url;
    volatile sig_atomic_t *stop;
    FILE *out;
} run_ctx;

typedef struct {
    conf_status status;
    int applicable;
    char detail[16384];
    char trace_path[1024];
    size_t golden, expected, played, matched;
    long div_golden;   /* golden record of the first divergence, -1: none known */
    long div_observed; /* observed-trace record that diverged, -1: none (a missing packet) */
} case_result;

static int is_own(own_msg *own, size_t *n_own, const conf_nats_msg *m)
{
    for (size_t i = 0; i < *n_own; i++)
        if (own[i].len == m->len && strcmp(own[i].subject, m->subject) == 0 &&
            (m->len == 0 || memcmp(own[i].bytes, m->data, m->len) == 0)) {
            free(own[i].subject);
            free(own[i].bytes);
            own[i] = own[--*n_own];
            return 1;
        }
    return 0;
}

static const char *timeline_kind(sim_event_kind k)
{
    switch (k) {
    case SIM_EV_CRASH: return "crash";
    case SIM_EV_RESTART: return "restart";
    case SIM_EV_PARTITION: return "partition";
    case SIM_EV_HEAL: return "heal";
    case SIM_EV_FAULT: return "bus fault";
    case SIM_EV_SKEW: return "clock skew";
    case SIM_EV_POLICY: return "policy change";
    case SIM_EV_CANCEL: return "cancel";
    case SIM_EV_CONFLICT: return "conflicting twin";
    }
    return "event";
}

/* 1 when the scenario crashes actor `name`. */
static int crashes(const sim_scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_timeline; i++)
        if (s->timeline[i].kind == SIM_EV_CRASH && s->timeline[i].a && strcmp(s->timeline[i].a, name) == 0)
            return 1;
    return 0;
}

/* Why the case cannot be played for this role with the IUT standing in
 * for `iut` (NULL: it can). */
static const char *not_applicable(const conf_golden_case *c, const sim_scenario *s, unsigned role,
                                  const char *iut, char *buf, size_t n)
{
    if (!(c->roles & role)) {
        char r[64];
        snprintf(buf, n, "the case certifies %s only", conf_golden_roles_text(c->roles, r, sizeof r));
        return buf;
    }
    for (size_t i = 0; i < s->n_timeline; i++) {
        const sim_timeline_event *e = &s->timeline[i];
        const sim_fault *f = &e->fault;
        const char *why = NULL;
        switch (e->kind) {
        case SIM_EV_CANCEL:
        case SIM_EV_CONFLICT: /* the twin is a recorded gateway packet, replayed as such */
            break;
        case SIM_EV_CRASH:
        case SIM_EV_RESTART:
            if (iut && e->a && strcmp(e->a, iut) == 0)
                why = "it crashes or restarts the implementation under test";
            break;
        case SIM_EV_FAULT:
            if (f->kind == SIM_FAULT_PARTITION) {
                /* between two played actors the replay reproduces it */
                if (!f->to || !f->to[0] || (iut && ((f->from && strcmp(f->from, iut) == 0) ||
                                                    strcmp(f->to, iut) == 0)))
                    why = "a partition that cuts off the implementation under test cannot be "
                          "reproduced on a real bus";
            } else if (f->to && f->to[0]) {
                why = "a bus fault aimed at one receiver cannot be reproduced on a real bus";
            } else if (f->kind == SIM_FAULT_DUPLICATE && f->p > 0) {
                why = "a random duplication cannot be reproduced";
            } else if (f->kind == SIM_FAULT_LOSS && f->p < 1) {
                why = "a random loss cannot be reproduced";
            } else if (f->kind == SIM_FAULT_LATENCY &&
                       (f->latency.kind != SIM_DIST_FIXED || s->latency.kind != SIM_DIST_FIXED)) {
                why = "only a fixed latency can be reproduced";
            } else if (f->kind == SIM_FAULT_CORRUPT) {
                why = "corruption by the simulated bus cannot be reproduced on a real bus";
            }
            break;
        default: why = "faults of processes and clocks cannot be played on a real bus"; break;
        }
        if (why) {
            snprintf(buf, n, "the scenario's timeline has a %s at %lld ms (line %d): %s",
                     timeline_kind(e->kind), (long long)(e->at / MS), e->line, why);
            return buf;
        }
    }
    if (role == CONF_GOLDEN_ROLE_SCHEDULER && s->approver.present &&
        (s->approver.delay.kind != SIM_DIST_FIXED ||
         (s->approver.p_approve > 0 && s->approver.p_approve < 1))) {
        snprintf(buf, n,
                 "the scenario's approver answers after a random delay or at random, which the "
                 "bus does not show, so capsim cannot tell when and how to answer");
        return buf;
    }
    return NULL;
}

/* A publication waiting for its time (bus latency and duplicate faults,
 * approver answers). */
typedef struct {
    int64_t at;
    char *subject;
    uint8_t *bytes;
    size_t len;
    int track; /* a bus packet whose echo must not count as the IUT's */
} outmsg;

static int out_push(outmsg **q, size_t *n, int64_t at, const char *subject, const void *bytes,
                    size_t len, int track)
{
    outmsg *g = realloc(*q, (*n + 1) * sizeof **q);
    if (!g)
        return CAP_ENOMEM;
    *q = g;
    outmsg *o = &g[*n];
    o->at = at;
    o->track = track;
    o->len = len;
    o->subject = strdup(subject);
    o->bytes = malloc(len ? len : 1);
    if (!o->subject || !o->bytes) {
        free(o->subject);
        free(o->bytes);
        return CAP_ENOMEM;
    }
    if (len)
        memcpy(o->bytes, bytes, len);
    (*n)++;
    return CAP_OK;
}

/* The scenario's worker spec for a worker actor name (id, or id-K). */
static const sim_worker_spec *spec_for(const sim_scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_workers; i++) {
        const char *id = s->workers[i].id;
        size_t l = strlen(id);
        if (strcmp(name, id) == 0 || (strncmp(name, id, l) == 0 && name[l] == '-'))
            return &s->workers[i];
    }
    return NULL;
}

/* The extra delay a fixed-latency fault of the scenario puts on golden
 * record r (what the simulated bus added beyond its default latency). */
static int64_t fault_delay(const sim_scenario *s, const conf_golden_record *r)
{
    int64_t d = 0;
    for (size_t i = 0; i < s->n_timeline; i++) {
        const sim_fault *f = &s->timeline[i].fault;
        if (s->timeline[i].kind != SIM_EV_FAULT || f->kind != SIM_FAULT_LATENCY)
            continue;
        if (r->time < f->start || r->time >= f->end)
            continue;
        if ((f->subject && !sim_subject_match(f->subject, r->subject)) ||
            (f->from && f->from[0] && strcmp(f->from, r->sender) != 0))
            continue;
        int64_t x = (int64_t)f->latency.a - (int64_t)s->latency.a;
        if (x > d)
            d = x;
    }
    return d;
}

/* 1 when a certain loss (p = 1) of the scenario drops golden record r:
 * the harness then withholds it. (A loss of what the IUT publishes to a
 * played actor needs nothing: the golden trace shows no reaction.) */
static int fault_lost(const sim_scenario *s, const conf_golden_record *r)
{
    for (size_t i = 0; i < s->n_timeline; i++) {
        const sim_fault *f = &s->timeline[i].fault;
        if (s->timeline[i].kind == SIM_EV_FAULT && f->kind == SIM_FAULT_LOSS && f->p >= 1 &&
            r->time >= f->start && r->time < f->end &&
            (!f->subject || sim_subject_match(f->subject, r->subject)) &&
            (!f->from || !f->from[0] || strcmp(f->from, r->sender) == 0))
            return 1;
    }
    return 0;
}

/* When a duplicate fault copies golden record r: the copy's delay after
 * the original (half the reorder window of the subject, else 0), or -1
 * when it is not copied. left[k] counts the copies fault k still makes. */
static int64_t fault_duplicate(const sim_scenario *s, const conf_golden_record *r, uint64_t *left)
{
    int64_t copy = -1;
    for (size_t i = 0, k = 0; i < s->n_timeline && k < 64; i++) {
        if (s->timeline[i].kind != SIM_EV_FAULT)
            continue;
        const sim_fault *f = &s->timeline[i].fault;
        size_t kk = k++;
        if (f->kind != SIM_FAULT_DUPLICATE || !left[kk] || r->time < f->start || r->time >= f->end ||
            (f->subject && !sim_subject_match(f->subject, r->subject)) ||
            (f->from && f->from[0] && strcmp(f->from, r->sender) != 0))
            continue;
        left[kk]--;
        copy = 0;
    }
    if (copy < 0)
        return -1;
    for (size_t i = 0; i < s->n_timeline; i++) {
        const sim_fault *f = &s->timeline[i].fault;
        if (s->timeline[i].kind == SIM_EV_FAULT && f->kind == SIM_FAULT_REORDER &&
            (!f->subject || sim_subject_match(f->subject, r->subject)) && f->window / 2 > copy)
            copy = f->window / 2;
    }
    return copy;
}

/* The jobId of the JobRequest in a packet's JSON form ("" when none). */
static void json_job_id(const char *json, char *out, size_t n)
{
    out[0] = '\0';
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "jobRequest");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "jobId");
    if (cJSON_IsString(id) && strlen(id->valuestring) < n && !strpbrk(id->valuestring, "\"\\"))
        snprintf(out, n, "%s", id->valuestring);
    cJSON_Delete(j);
}

static void run_case(run_ctx *x, const conf_golden_case *c, case_result *res)
{
    const conf_certify_opts *o = x->o;
    unsigned role = o->role;
    memset(res, 0, sizeof *res);
    res->div_golden = res->div_observed = -1;
    res->applicable = 1;
    res->status = CONF_ST_ERROR;
    sim_scenario *scn = NULL;
    conf_golden_record *recs = NULL;
    size_t n_recs = 0;
    conf_match *m = NULL;
    conf_nats *nc = NULL;
    iut_proc ip = {0};
    char **argv = NULL;
    size_t argc = 0;
    FILE *tf = NULL;
    cap_trace_writer *tw = NULL;
    own_msg *own = NULL;
    size_t n_own = 0;
    outmsg *outq = NULL;
    size_t n_out = 0;
    uint64_t dup_left[64] = {0};
    char err[1024] = "";
    char why[512];

    cap_yaml_diag yd;
    memset(&yd, 0, sizeof yd);
    if (sim_scenario_load(c->scenario_path, &scn, &yd) != CAP_OK) {
        char b[600];
        snprintf(res->detail, sizeof res->detail, "scenario: %s",
                 cap_yaml_diag_format(&yd, c->scenario_path, b, sizeof b));
        goto done;
    }
    if (!(c->roles & role)) {
        not_applicable(c, scn, role, NULL, why, sizeof why);
        res->applicable = 0;
        res->status = CONF_ST_NA;
        snprintf(res->detail, sizeof res->detail, "not applicable to the %s role: %s",
                 conf_golden_role_name(role), why);
        goto done;
    }
    cap_diag d;
    cap_diag_clear(&d);
    if (conf_golden_read_trace(c->golden_path, &recs, &n_recs, NULL, &d) != CAP_OK) {
        char b[512];
        snprintf(res->detail, sizeof res->detail, "golden trace %s: %s", c->golden_path,
                 cap_diag_format(&d, b, sizeof b));
        goto done;
    }
    /* Who the IUT stands in for: the scheduler, or the worker the case
     * names (iut worker.id) unless the scenario crashes it, else the first
     * worker of the golden trace that it does not crash. */
    const char *iut_sender = NULL;
    const char *want = NULL;
    for (size_t i = 0; i < c->n_iut; i++)
        if (strcmp(c->iut[i].key, role == CONF_GOLDEN_ROLE_WORKER ? "worker.id" : "scheduler.id") == 0)
            want = c->iut[i].value;
    if (role == CONF_GOLDEN_ROLE_SCHEDULER) {
        iut_sender = "scheduler";
    } else {
        const char *first = NULL, *alive = NULL;
        int want_seen = 0;
        for (size_t i = 0; i < n_recs; i++) {
            if (!recs[i].json || !strstr(recs[i].json, "\"heartbeat\":"))
                continue;
            if (!first)
                first = recs[i].sender;
            if (!alive && !crashes(scn, recs[i].sender))
                alive = recs[i].sender;
            if (want && strcmp(recs[i].sender, want) == 0)
                want_seen = 1;
        }
        iut_sender = want_seen && !crashes(scn, want) ? want : alive ? alive : want_seen ? want : first;
        if (!iut_sender) {
            snprintf(res->detail, sizeof res->detail,
                     "the golden trace has no worker (no heartbeat) to stand in for");
            goto done;
        }
    }
    if (not_applicable(c, scn, role, iut_sender, why, sizeof why)) {
        res->applicable = 0;
        res->status = CONF_ST_NA;
        snprintf(res->detail, sizeof res->detail, "not applicable to the %s role: %s",
                 conf_golden_role_name(role), why);
        goto done;
    }
    int64_t window = c->window_ns > 0 ? c->window_ns : 2 * SEC;
    conf_match_config mc = {.window_ns = window, .iut_senders = &iut_sender, .n_iut_senders = 1};
    if (conf_match_new(&mc, &m)) {
        snprintf(res->detail, sizeof res->detail, "out of memory");
        goto done;
    }
    int64_t last_t = 0;
    for (size_t i = 0; i < n_recs; i++) {
        cap_diag_clear(&d);
        if (conf_match_add_golden(m, recs[i].time, recs[i].subject, recs[i].sender, recs[i].bytes,
                                  recs[i].len, &d)) {
            char b[512];
            snprintf(res->detail, sizeof res->detail, "golden record %zu: %s", i + 1,
                     cap_diag_format(&d, b, sizeof b));
            goto done;
        }
        if (recs[i].time > last_t)
            last_t = recs[i].time;
    }
    if (conf_match_expected_count(m) == 0) {
        snprintf(res->detail, sizeof res->detail, "the golden trace has no packet from %s", iut_sender);
        goto done;
    }

    /* Settings and placeholders. */
    const sim_worker_spec *ws = role == CONF_GOLDEN_ROLE_WORKER ? spec_for(scn, iut_sender) : NULL;
    vars v = {0};
    var_set(&v, "nats", x->url);
    var_set(&v, "case", c->id);
    var_set(&v, "case_dir", c->dir);
    var_set(&v, "scenario", c->scenario_path);
    var_set(&v, "policy", scn->policy_path);
    var_set(&v, "worker_id", role == CONF_GOLDEN_ROLE_WORKER ? iut_sender : "w-1");
    var_set(&v, "pool", ws ? ws->pool : (scn->n_workers ? scn->workers[0].pool : "job.default"));
    var_ns(&v, "heartbeat", ws && ws->heartbeat_ns ? ws->heartbeat_ns : 5 * SEC);
    var_u(&v, "max_parallel", ws && ws->max_parallel > 0 ? (unsigned long long)ws->max_parallel : 1);
    var_set(&v, "scheduler_id", role == CONF_GOLDEN_ROLE_SCHEDULER ? iut_sender : "scheduler");
    var_ns(&v, "dispatch_timeout", scn->dispatch_timeout_ns ? scn->dispatch_timeout_ns : 300 * SEC);
    var_ns(&v, "running_timeout", scn->running_timeout_ns ? scn->running_timeout_ns : 9000 * SEC);
    var_ns(&v, "no_worker_wait", scn->no_worker_wait_ns ? scn->no_worker_wait_ns : 300 * SEC);
    var_u(&v, "max_retries", scn->max_retries_set ? scn->max_retries : 3);
    var_ns(&v, "worker_grace", scn->worker_grace_ns ? scn->worker_grace_ns : 30 * SEC);
    var_u(&v, "breaker_threshold", scn->breaker_threshold ? scn->breaker_threshold : 3);
    var_ns(&v, "breaker_cool_down", scn->breaker_cool_down_ns ? scn->breaker_cool_down_ns : 30 * SEC);
    for (size_t i = 0; i < c->n_iut; i++)
        var_set(&v, c->iut[i].key, c->iut[i].value);

    /* The recorder and player: one connection, so our own packets come
     * back in the order we sent them. */
    if (conf_nats_connect(x->url, "capsim-certify", 0, &nc, err, sizeof err) ||
        conf_nats_subscribe(nc, "sys.>", NULL, err, sizeof err) ||
        conf_nats_subscribe(nc, "job.>", NULL, err, sizeof err) ||
        conf_nats_subscribe(nc, "worker.>", NULL, err, sizeof err) ||
        conf_nats_flush(nc, 0, err, sizeof err)) {
        snprintf(res->detail, sizeof res->detail, "bus: %s", err);
        goto done;
    }
    if (o->trace_dir) {
        snprintf(res->trace_path, sizeof res->trace_path, "%s/%s.%s.jsonl", o->trace_dir, c->id,
                 conf_golden_role_name(role));
        tf = fopen(res->trace_path, "wb");
        if (!tf || cap_trace_writer_open(tf, CAP_TRACE_JSONL, &tw)) {
            snprintf(res->detail, sizeof res->detail, "%s: cannot write the observed trace",
                     res->trace_path);
            goto done;
        }
    }

    /* Start the implementation. */
    if (o->impl) {
        conf_adapter_spec spec;
        char *labelled = malloc(strlen(o->impl) + 8);
        if (!labelled) {
            snprintf(res->detail, sizeof res->detail, "out of memory");
            goto done;
        }
        sprintf(labelled, "impl=%s", o->impl);
        int rc = conf_adapter_spec_parse(labelled, &spec, err, sizeof err);
        free(labelled);
        if (rc) {
            snprintf(res->detail, sizeof res->detail, "--impl: %s", err);
            goto done;
        }
        argv = calloc(spec.argc + 1, sizeof *argv);
        for (size_t i = 0; argv && i < spec.argc; i++) {
            if (conf_certify_subst(spec.argv[i], v.names, v.values, v.n, &argv[i], err, sizeof err)) {
                snprintf(res->detail, sizeof res->detail, "--impl: %s", err);
                argc = i;
                conf_adapter_spec_free(&spec);
                goto done;
            }
            argc = i + 1;
        }
        conf_adapter_spec_free(&spec);
        if (!argv) {
            snprintf(res->detail, sizeof res->detail, "out of memory");
            goto done;
        }
        char logp[1100];
        if (o->trace_dir)
            snprintf(logp, sizeof logp, "%s/%s.%s.impl.log", o->trace_dir, c->id, conf_golden_role_name(role));
        if (iut_spawn(argv, o->trace_dir ? logp : NULL, &ip, err, sizeof err)) {
            snprintf(res->detail, sizeof res->detail, "cannot start the implementation: %s", err);
            goto done;
        }
    }

    /* Ready: a worker says so with its first heartbeat; a scheduler gets
     * the settle time to subscribe. */
    int64_t t0 = conf_nats_now();
    conf_match_start(m, t0);
    int64_t ready_ns = o->ready_timeout_ns ? o->ready_timeout_ns : DEFAULT_READY_NS;
    int64_t settle = o->settle_ns ? o->settle_ns : DEFAULT_SETTLE_NS;
    int ready = role == CONF_GOLDEN_ROLE_SCHEDULER;
    int64_t ready_until = conf_nats_now() + (ready ? settle : ready_ns);
    while (!*x->stop && conf_nats_now() < ready_until) {
        conf_nats_msg msg;
        int r = conf_nats_next(nc, 20, &msg, err, sizeof err);
        if (r < 0) {
            snprintf(res->detail, sizeof res->detail, "bus: %s", err);
            goto done;
        }
        if (o->impl && iut_poll(&ip)) {
            char b[64];
            exit_text(ip.status, b, sizeof b);
            snprintf(res->detail, sizeof res->detail,
                     "the implementation %s before it was ready (see its log%s%s)", b,
                     o->trace_dir ? " in " : "", o->trace_dir ? o->trace_dir : "");
            goto done;
        }
        if (r == 0)
            continue;
        cap_trace_record rec = {.time = msg.time, .kind = CAP_TRACE_PUBLISH, .subject = msg.subject,
                                .reply = msg.reply, .bytes = msg.data, .len = msg.len};
        if (tw)
            cap_trace_write(tw, &rec, NULL);
        int had = conf_match_verdict(m) != NULL;
        conf_match_observe(m, msg.time, msg.subject, msg.data, msg.len);
        if (!had && conf_match_verdict(m) && tw)
            res->div_observed = (long)cap_trace_writer_count(tw) - 1;
        int hb = strcmp(msg.subject, "sys.heartbeat") == 0;
        conf_nats_msg_free(&msg);
        if (!ready && hb) {
            ready = 1;
            break;
        }
    }
    if (!ready) {
        snprintf(res->detail, sizeof res->detail,
                 "the implementation sent no heartbeat within %lld ms of its start",
                 (long long)(ready_ns / MS));
        goto done;
    }

    /* Play and match. */
    for (size_t i = 0, k = 0; i < scn->n_timeline && k < 64; i++)
        if (scn->timeline[i].kind == SIM_EV_FAULT)
            dup_left[k++] = scn->timeline[i].fault.count;
    int64_t start = conf_nats_now();
    conf_match_start(m, start);
    /* operator cancels of the scenario, sent on the control subject (scheduler role) */
    size_t next_cancel = 0;
    int64_t deadline = start + last_t + 2 * window + 3 * SEC;
    if (deadline > start + MAX_CASE_NS)
        deadline = start + MAX_CASE_NS;
    int64_t complete_at = 0;
    while (!*x->stop) {
        int64_t now = conf_nats_now();
        size_t idx;
        int64_t next_due = INT64_MAX;
        while (conf_match_next_play(m, now, &idx, &next_due) == 1) {
            char *subject = NULL;
            uint8_t *bytes = NULL;
            size_t len = 0;
            if (conf_match_render(m, idx, now, &subject, &bytes, &len)) {
                snprintf(res->detail, sizeof res->detail, "cannot play golden record %zu", idx + 1);
                goto done;
            }
            const conf_golden_record *gr = &recs[idx];
            if (fault_lost(scn, gr)) {
                free(subject);
                free(bytes);
                conf_match_played(m, idx, now);
                continue;
            }
            int64_t delay = fault_delay(scn, gr), at = now + delay;
            int rc = out_push(&outq, &n_out, at, subject, bytes, len, 1);
            int64_t dup = rc ? -1 : fault_duplicate(scn, gr, dup_left);
            if (!rc && dup >= 0)
                rc = out_push(&outq, &n_out, at + dup, subject, bytes, len, 1);
            /* a fixed-delay approver answers every submission after its delay
             * (jobs that are not parked answer "not_actionable") */
            if (!rc && role == CONF_GOLDEN_ROLE_SCHEDULER && scn->approver.present &&
                strcmp(gr->subject, "sys.job.submit") == 0) {
                char body[700], jid[400] = "";
                json_job_id(gr->json, jid, sizeof jid);
                snprintf(body, sizeof body, "{\"job_id\":\"%s\",\"by\":\"%s\",\"note\":\"approver\"}",
                         jid, scn->approver.name ? scn->approver.name : "approver-1");
                rc = out_push(&outq, &n_out, at + MS + (int64_t)scn->approver.delay.a,
                              scn->approver.p_approve >= 1 ? CONF_PEER_CONTROL_PREFIX "approve"
                                                           : CONF_PEER_CONTROL_PREFIX "reject",
                              body, strlen(body), 0);
            }
            free(subject);
            free(bytes);
            if (rc) {
                snprintf(res->detail, sizeof res->detail, "out of memory");
                goto done;
            }
            conf_match_played(m, idx, now);
        }
        /* publications that are due */
        for (size_t i = 0; i < n_out;) {
            if (outq[i].at > now) {
                if (outq[i].at < next_due)
                    next_due = outq[i].at;
                i++;
                continue;
            }
            outmsg om = outq[i];
            memmove(&outq[i], &outq[i + 1], (n_out - i - 1) * sizeof *outq);
            n_out--;
            int rc = n_own >= CONF_CERTIFY_MAX_PENDING
                         ? CAP_EFULL
                         : conf_nats_publish(nc, om.subject, NULL, om.bytes, om.len, err, sizeof err);
            own_msg *g = rc ? NULL : realloc(own, (n_own + 1) * sizeof *own);
            if (g && om.track) {
                own = g;
                own[n_own++] = (own_msg){om.subject, om.bytes, om.len};
            } else {
                if (g)
                    own = g;
                free(om.subject);
                free(om.bytes);
            }
            if (rc || !g) {
                snprintf(res->detail, sizeof res->detail, "cannot publish a golden packet: %s",
                         rc ? (err[0] ? err : "too many packets in flight") : "out of memory");
                goto done;
            }
        }
        if (role == CONF_GOLDEN_ROLE_SCHEDULER) {
            while (next_cancel < scn->n_timeline && scn->timeline[next_cancel].at + start <= now) {
                const sim_timeline_event *e = &scn->timeline[next_cancel++];
                if (e->kind != SIM_EV_CANCEL)
                    continue;
                char body[600];
                snprintf(body, sizeof body, "{\"job_id\":\"%.400s\",\"by\":\"operator\",\"note\":\"operator cancel\"}", e->a);
                conf_nats_publish(nc, CONF_PEER_CONTROL_PREFIX "cancel", NULL, body, strlen(body), NULL, 0);
            }
        }
        if (conf_match_check_missing(m, now))
            break;
        if (!complete_at && conf_match_complete(m))
            complete_at = now;
        if (complete_at && now >= complete_at + settle)
            break;
        if (now >= deadline)
            break;
        if (o->impl && iut_poll(&ip)) {
            char b[64];
            exit_text(ip.status, b, sizeof b);
            snprintf(res->detail, sizeof res->detail, "the implementation %s during the case", b);
            goto done;
        }
        int64_t wait = next_due == INT64_MAX ? 50 : (next_due - now) / MS;
        if (wait > 50)
            wait = 50;
        if (wait < 0)
            wait = 0;
        conf_nats_msg msg;
        int r = conf_nats_next(nc, wait, &msg, err, sizeof err);
        if (r < 0) {
            snprintf(res->detail, sizeof res->detail, "bus: %s", err);
            goto done;
        }
        if (r == 0)
            continue;
        char sender[CAP_TRACE_MAX_STRING + 1];
        cap_trace_record rec;
        conf_nats_trace_record(&msg, sender, &rec);
        if (tw)
            cap_trace_write(tw, &rec, NULL);
        if (!is_own(own, &n_own, &msg)) {
            int had = conf_match_verdict(m) != NULL;
            int rc = conf_match_observe(m, msg.time, msg.subject, msg.data, msg.len);
            if (!had && conf_match_verdict(m) && tw)
                res->div_observed = (long)cap_trace_writer_count(tw) - 1;
            if (rc < 0) {
                conf_nats_msg_free(&msg);
                snprintf(res->detail, sizeof res->detail, "out of memory");
                goto done;
            }
        }
        conf_nats_msg_free(&msg);
        if (conf_match_verdict(m))
            break;
    }
    if (*x->stop) {
        snprintf(res->detail, sizeof res->detail, "interrupted");
        goto done;
    }
    conf_match_finish(m, conf_nats_now());
    const char *v2 = conf_match_verdict(m);
    res->status = v2 ? CONF_ST_FAIL : CONF_ST_PASS;
    res->div_golden = conf_match_divergence_record(m);
    conf_match_stats st = conf_match_stats_get(m);
    res->golden = st.golden;
    res->expected = st.expected;
    res->played = st.played;
    res->matched = st.matched;
    if (v2)
        snprintf(res->detail, sizeof res->detail, "%s", v2);
    else
        snprintf(res->detail, sizeof res->detail,
                 "%zu golden packets: %zu played, %zu job packets from the implementation matched "
                 "(its heartbeats consistent), %zu identifiers bound",
                 st.golden, st.played, st.matched, st.bindings);
done:
    if (o->impl)
        iut_kill(&ip);
    if (tw) {
        char hex[65];
        cap_trace_writer_close(tw, hex);
    }
    if (tf)
        fclose(tf);
    for (size_t i = 0; i < n_own; i++) {
        free(own[i].subject);
        free(own[i].bytes);
    }
    free(own);
    for (size_t i = 0; i < n_out; i++) {
        free(outq[i].subject);
        free(outq[i].bytes);
    }
    free(outq);
    if (argv)
        for (size_t i = 0; i < argc; i++)
            free(argv[i]);
    free(argv);
    conf_nats_close(nc);
    conf_match_free(m);
    conf_golden_records_free(recs, n_recs);
    sim_scenario_free(scn);
}

/* ---- the run ---- */

static int write_file(const char *path, const char *data, size_t len, char *err, size_t n);

/* ---- the HTML page (--html) ---- */

/* What the page shows of one case: a copy of its result and, for a failed
 * case with an observed trace, both traces and the divergence. */
typedef struct {
    char *id, *status, *clauses, *detail;
    conf_golden_record *golden, *observed;
    size_t n_golden, n_observed;
    conf_html_rec *hgolden, *hobserved;
    char **diff;
    size_t n_diff;
    conf_html_divergence div;
} page_case;

static conf_html_rec *page_recs(const conf_golden_record *r, size_t n)
{
    conf_html_rec *h = calloc(n ? n : 1, sizeof *h);
    for (size_t i = 0; h && i < n; i++)
        h[i] = (conf_html_rec){r[i].time, r[i].sender, "", r[i].subject, r[i].label};
    return h;
}

/* The "path: expected → observed" lines of a verdict (conf_match). */
static int page_diff_lines(page_case *pc, const char *verdict)
{
    const char *p = strstr(verdict, "differences (path: expected");
    if (!p || !(p = strchr(p, '\n')))
        return 0;
    for (p++; *p && pc->n_diff < 64;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *t = p;
        while (len && *t == ' ') {
            t++;
            len--;
        }
        if (len) {
            char **g = realloc(pc->diff, (pc->n_diff + 1) * sizeof *g);
            if (!g)
                return -1;
            pc->diff = g;
            if (!(pc->diff[pc->n_diff] = strndup(t, len)))
                return -1;
            pc->n_diff++;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

static void page_case_free(page_case *pc)
{
    free(pc->id);
    free(pc->status);
    free(pc->clauses);
    free(pc->detail);
    conf_golden_records_free(pc->golden, pc->n_golden);
    conf_golden_records_free(pc->observed, pc->n_observed);
    free(pc->hgolden);
    free(pc->hobserved);
    for (size_t i = 0; i < pc->n_diff; i++)
        free(pc->diff[i]);
    free(pc->diff);
}

/* Keeps what the page needs of one case. Traces are read back from the
 * golden file and the observed trace written during the case. */
static int page_add(page_case *pc, const conf_golden_case *c, const case_result *res, const char *clauses)
{
    memset(pc, 0, sizeof *pc);
    pc->id = strdup(c->id);
    pc->status = strdup(conf_status_name(res->status));
    pc->clauses = strdup(clauses);
    pc->detail = strdup(res->detail);
    if (!pc->id || !pc->status || !pc->clauses || !pc->detail)
        return -1;
    if (res->status != CONF_ST_FAIL || !res->trace_path[0])
        return 0;
    cap_diag d;
    cap_diag_clear(&d);
    if (conf_golden_read_trace(c->golden_path, &pc->golden, &pc->n_golden, NULL, &d) != CAP_OK)
        return 0; /* the detail already says what failed; no diagram */
    cap_diag_clear(&d);
    if (conf_golden_read_trace(res->trace_path, &pc->observed, &pc->n_observed, NULL, &d) != CAP_OK) {
        conf_golden_records_free(pc->golden, pc->n_golden);
        pc->golden = NULL;
        pc->n_golden = 0;
        return 0;
    }
    pc->hgolden = page_recs(pc->golden, pc->n_golden);
    pc->hobserved = page_recs(pc->observed, pc->n_observed);
    if (!pc->hgolden || !pc->hobserved || page_diff_lines(pc, res->detail) < 0)
        return -1;
    pc->div.expected_index = res->div_golden;
    pc->div.observed_index = res->div_observed;
    pc->div.diff = (const char *const *)pc->diff;
    pc->div.n_diff = pc->n_diff;
    return 0;
}

static int page_write(const conf_certify_opts *o, const conf_report *rep, const page_case *pcs, size_t n,
                      char *err, size_t en)
{
    conf_html_case *hc = calloc(n ? n : 1, sizeof *hc);
    conf_html_own_case *own = calloc(n ? n : 1, sizeof *own);
    if (!hc || !own) {
        free(hc);
        free(own);
        conf_errf(err, en, "out of memory");
        return -1;
    }
    const char *role = conf_golden_role_name(o->role);
    for (size_t i = 0; i < n; i++) {
        const page_case *pc = &pcs[i];
        hc[i] = (conf_html_case){.id = pc->id, .status = pc->status, .role = role, .required = 1,
                                 .clauses = pc->clauses, .detail = pc->detail};
        if (pc->hgolden && pc->hobserved) {
            hc[i].expected = pc->hgolden;
            hc[i].n_expected = pc->n_golden;
            hc[i].observed = pc->hobserved;
            hc[i].n_observed = pc->n_observed;
            hc[i].divergence = &pc->div;
        }
        own[i] = (conf_html_own_case){pc->id, pc->clauses, pc->status};
    }
    conf_summary s;
    conf_report_summarize(rep, &s);
    conf_html_report hr = {rep->adapter, role, "golden over NATS", s.conformant ? "CONFORMANT" : "NON-CONFORMANT",
                           s.total, s.pass, s.fail, s.error, s.unsupported, s.na, hc, n};
    conf_html_page page = {.title = "capsim certify", .generated_by = "capsim certify",
                           .reports = &hr, .n_reports = 1, .own = own, .n_own = n};
    char *html = NULL;
    size_t len = 0;
    int rc = conf_html_render(&page, &html, &len) == CAP_OK ? write_file(o->html_path, html, len, err, en) : -1;
    if (rc && !err[0])
        conf_errf(err, en, "out of memory");
    free(html);
    free(hc);
    free(own);
    return rc;
}

static int write_file(const char *path, const char *data, size_t len, char *err, size_t n)
{
    char tmp[2048];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        conf_errf(err, n, "%s: cannot write", path);
        return -1;
    }
    int bad = fwrite(data, 1, len, f) != len;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        conf_errf(err, n, "%s: cannot write", path);
        remove(tmp);
        return -1;
    }
    return 0;
}

int conf_certify_run(const conf_certify_opts *o, volatile sig_atomic_t *stop, char *err, size_t n)
{
    FILE *out = o->out ? o->out : stdout;
    if (o->role != CONF_GOLDEN_ROLE_WORKER && o->role != CONF_GOLDEN_ROLE_SCHEDULER) {
        conf_errf(err, n, "--role: worker or scheduler");
        return 2;
    }
    if (!o->nats_url == !o->start_nats) {
        conf_errf(err, n, "one of --nats URL and --start-nats is required");
        return 2;
    }
    const char *dir = o->dir ? o->dir : "conformance/cases";
    conf_golden_case **all = NULL;
    size_t n_all = 0;
    char *bad = NULL;
    cap_yaml_diag yd;
    memset(&yd, 0, sizeof yd);
    if (conf_golden_load_dir(dir, &all, &n_all, &bad, &yd) != CAP_OK) {
        char b[600];
        conf_errf(err, n, "%s", cap_yaml_diag_format(&yd, bad ? bad : dir, b, sizeof b));
        free(bad);
        return 2;
    }
    free(bad);
    for (size_t k = 0; k < o->n_case_ids; k++) {
        size_t i = 0;
        while (i < n_all && strcmp(all[i]->id, o->case_ids[k]) != 0)
            i++;
        if (i == n_all) {
            conf_errf(err, n, "--case %s: no such case in %s", o->case_ids[k], dir);
            conf_golden_free_all(all, n_all);
            return 2;
        }
    }
    /* The page draws the observed traces: keep them beside it unless told where. */
    conf_certify_opts with_traces;
    char html_traces[1024];
    if (o->html_path && !o->trace_dir) {
        with_traces = *o;
        snprintf(html_traces, sizeof html_traces, "%s.traces", o->html_path);
        with_traces.trace_dir = html_traces;
        o = &with_traces;
    }
    if (o->trace_dir && mkdir(o->trace_dir, 0755) != 0 && errno != EEXIST) {
        conf_errf(err, n, "--trace-dir %s: %s", o->trace_dir, strerror(errno));
        conf_golden_free_all(all, n_all);
        return 2;
    }
    conf_nats_server srv = {0};
    const char *url = o->nats_url;
    if (o->start_nats) {
        if (conf_nats_server_start(&srv, 0, err, n)) {
            conf_golden_free_all(all, n_all);
            return 2;
        }
        url = srv.url;
        fprintf(out, "nats-server started on %s\n", url);
    }
    const char *role = conf_golden_role_name(o->role);
    conf_report *rep = conf_report_new(o->impl ? o->impl : "external", "golden", CERTIFY_TOOL_VERSION);
    if (!rep || conf_report_set_handshake(rep, "", role, "nats")) {
        conf_report_free(rep);
        conf_nats_server_stop(&srv);
        conf_golden_free_all(all, n_all);
        conf_errf(err, n, "out of memory");
        return 2;
    }
    run_ctx x = {o, url, stop, out};
    case_result *res = malloc(sizeof *res);
    page_case *pcs = o->html_path ? calloc(n_all ? n_all : 1, sizeof *pcs) : NULL;
    size_t n_pcs = 0;
    int code = 0;
    if (!res || (o->html_path && !pcs)) {
        conf_errf(err, n, "out of memory");
        code = 2;
    }
    for (size_t i = 0; res && i < n_all && !*stop; i++) {
        const conf_golden_case *c = all[i];
        int chosen = o->n_case_ids == 0;
        for (size_t k = 0; k < o->n_case_ids; k++)
            chosen |= strcmp(o->case_ids[k], c->id) == 0;
        if (!chosen)
            continue;
        int64_t t0 = conf_nats_monotonic();
        run_case(&x, c, res);
        int64_t ms = (conf_nats_monotonic() - t0) / MS;
        fprintf(out, "%-5s %s [%s] (%lld ms)\n", conf_status_name(res->status), c->id, role, (long long)ms);
        if (res->status != CONF_ST_PASS)
            fprintf(out, "      %s\n", res->detail);
        fflush(out);
        char clauses[1024] = "", win[32], counts[128];
        for (size_t k = 0; k < c->n_clauses; k++)
            snprintf(clauses + strlen(clauses), sizeof clauses - strlen(clauses), "%s%s",
                     k ? "; " : "", c->clauses[k]);
        snprintf(win, sizeof win, "%lldms", (long long)(c->window_ns / MS));
        snprintf(counts, sizeof counts, "%zu golden, %zu expected, %zu played, %zu matched",
                 res->golden, res->expected, res->played, res->matched);
        conf_kv ev[5];
        size_t ne = 0;
        ev[ne++] = (conf_kv){"clauses", clauses};
        ev[ne++] = (conf_kv){"title", c->title};
        ev[ne++] = (conf_kv){"window", win};
        if (res->applicable)
            ev[ne++] = (conf_kv){"packets", counts};
        if (res->trace_path[0])
            ev[ne++] = (conf_kv){"trace", res->trace_path};
        if (conf_report_add(rep, c->id, "golden", role, 1, res->applicable, res->status, res->detail,
                            ms, ev, ne)) {
            conf_errf(err, n, "out of memory");
            code = 2;
            break;
        }
        if (pcs && page_add(&pcs[n_pcs++], c, res, clauses) != 0) {
            conf_errf(err, n, "out of memory");
            code = 2;
            break;
        }
    }
    free(res);
    conf_nats_server_stop(&srv);
    conf_golden_free_all(all, n_all);
    if (*stop && !code) {
        conf_errf(err, n, "interrupted");
        code = 2;
    }
    conf_summary s;
    conf_report_summarize(rep, &s);
    char *line = NULL;
    if (conf_report_summary_line(rep, &line) == CAP_OK) {
        fputs(line, out);
        free(line);
    }
    char *text = NULL;
    size_t len = 0;
    if (!code && o->json_path && (conf_report_json(rep, &text, &len) || write_file(o->json_path, text, len, err, n)))
        code = 2;
    free(text);
    text = NULL;
    if (!code && o->junit_path && (conf_report_junit(rep, &text, &len) || write_file(o->junit_path, text, len, err, n)))
        code = 2;
    free(text);
    if (!code && pcs && page_write(o, rep, pcs, n_pcs, err, n) != 0)
        code = 2;
    for (size_t i = 0; i < n_pcs; i++)
        page_case_free(&pcs[i]);
    free(pcs);
    conf_report_free(rep);
    if (code)
        return code;
    return s.conformant ? 0 : 1;
}
