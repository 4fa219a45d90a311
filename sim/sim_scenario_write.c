/* Writing a scenario back as YAML: see sim_scenario_write.h. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "sim_scenario_write.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"

/* A double-quoted YAML string: backslash, quote and control characters
 * escaped; other bytes (UTF-8 included) as they are. */
static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The shortest %g form that reads back to the same double. */
static void put_num(FILE *f, double x)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    fputs(buf, f);
}

/* A duration in the largest unit that is exact. */
static void put_dur(FILE *f, int64_t ns)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } U[] = {{"h", INT64_C(3600000000000)}, {"m", INT64_C(60000000000)}, {"s", INT64_C(1000000000)},
             {"ms", INT64_C(1000000)},      {"us", INT64_C(1000)}};
    if (ns != 0)
        for (size_t i = 0; i < sizeof U / sizeof U[0]; i++)
            if (ns % U[i].ns == 0) {
                fprintf(f, "%" PRId64 "%s", ns / U[i].ns, U[i].unit);
                return;
            }
    fprintf(f, "%" PRId64 "ns", ns);
}

static void put_dist(FILE *f, const sim_dist *d)
{
    static const char *const NAME[] = {"fixed", "uniform", "exponential", "lognormal"};
    static const char *const FIRST[] = {"value", "min", "mean", "median"};
    int k = d->kind <= SIM_DIST_LOGNORMAL ? (int)d->kind : SIM_DIST_FIXED;
    fprintf(f, "{dist: %s, %s: ", NAME[k], FIRST[k]);
    put_dur(f, (int64_t)d->a);
    if (k == SIM_DIST_UNIFORM) {
        fputs(", max: ", f);
        put_dur(f, (int64_t)d->b);
    } else if (k == SIM_DIST_LOGNORMAL) {
        fputs(", sigma: ", f);
        put_num(f, d->b);
    }
    fputc('}', f);
}

static void put_kv(FILE *f, const char *sep, const char *key, const sim_kv *kv, size_t n)
{
    fprintf(f, "%s%s: {", sep, key);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ", " : "", f);
        put_str(f, kv[i].key);
        fputs(": ", f);
        put_str(f, kv[i].value);
    }
    fputc('}', f);
}

static void put_strs(FILE *f, const char *sep, const char *key, char *const *v, size_t n)
{
    fprintf(f, "%s%s: [", sep, key);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ", " : "", f);
        put_str(f, v[i]);
    }
    fputc(']', f);
}

static int put_path(FILE *f, const char *path)
{
    char abs[PATH_MAX];
    if (!path || !realpath(path, abs))
        return CAP_EIO;
    put_str(f, abs);
    return CAP_OK;
}

static void put_worker(FILE *f, const sim_worker_spec *w)
{
    fputs("  - {id: ", f);
    put_str(f, w->id);
    fprintf(f, ", count: %" PRIu32 ", pool: ", w->count ? w->count : 1);
    put_str(f, w->pool);
    fprintf(f, ", max_parallel: %" PRId32 ", heartbeat: ", w->max_parallel > 0 ? w->max_parallel : 1);
    put_dur(f, w->heartbeat_ns);
    fputs(",\n     service: ", f);
    put_dist(f, &w->service);
    fputs(",\n     p_retryable: ", f);
    put_num(f, w->p_retryable);
    fputs(", p_fatal: ", f);
    put_num(f, w->p_fatal);
    fputs(", p_hang: ", f);
    put_num(f, w->p_hang);
    fputs(", p_crash: ", f);
    put_num(f, w->p_crash);
    fputs(", restart_after: ", f);
    put_dur(f, w->restart_after_ns);
    fputs(",\n     p_heartbeat_miss: ", f);
    put_num(f, w->p_heartbeat_miss);
    fputs(", heartbeat_delay: ", f);
    put_dist(f, &w->heartbeat_delay);
    fprintf(f, ", checkpoints: %" PRIu32, w->checkpoints);
    put_kv(f, ",\n     ", "labels", w->labels, w->n_labels);
    put_strs(f, ", ", "capabilities", w->capabilities, w->n_capabilities);
    fputs("}\n", f);
}

static void put_job(FILE *f, const sim_job_spec *j)
{
    static const char *const PRIO[] = {"interactive", "interactive", "batch", "critical"};
    fputs("    - {topic: ", f);
    put_str(f, j->topic);
    fputs(", weight: ", f);
    put_num(f, j->weight);
    fputs(", tenant: ", f);
    put_str(f, j->tenant);
    fprintf(f, ", priority: %s", PRIO[j->priority >= 1 && j->priority <= 3 ? j->priority : 1]);
    put_kv(f, ",\n       ", "labels", j->labels, j->n_labels);
    put_kv(f, ", ", "meta_labels", j->meta_labels, j->n_meta_labels);
    put_strs(f, ", ", "risk_tags", j->risk_tags, j->n_risk_tags);
    fprintf(f, ",\n       workflow_steps: %" PRIu32, j->workflow_steps);
    if (j->compensation_topic) {
        fputs(", compensation_topic: ", f);
        put_str(f, j->compensation_topic);
    }
    if (j->idempotency_key && j->idempotency_key[0]) {
        fputs(", idempotency_key: ", f);
        put_str(f, j->idempotency_key);
    }
    fputs("}\n", f);
}

static void put_workload(FILE *f, const sim_workload_spec *w)
{
    static const char *const KIND[] = {"none", "poisson", "closed", "burst"};
    fprintf(f, "workload:\n  kind: %s\n", KIND[w->kind <= SIM_LOAD_BURST ? w->kind : 0]);
    if (w->kind == SIM_LOAD_POISSON) {
        fputs("  rate: ", f);
        put_num(f, w->rate);
        fputc('\n', f);
    } else if (w->kind == SIM_LOAD_CLOSED) {
        fprintf(f, "  concurrency: %" PRIu32 "\n  think: ", w->concurrency);
        put_dur(f, w->think_ns);
        fputc('\n', f);
    } else if (w->kind == SIM_LOAD_BURST) {
        fprintf(f, "  burst: {size: %" PRIu32 ", every: ", w->burst_size);
        put_dur(f, w->burst_every_ns);
        fputs("}\n", f);
    }
    fprintf(f, "  max_jobs: %" PRIu64 "\n  stop_at: ", w->max_jobs);
    put_dur(f, w->stop_at_ns);
    fprintf(f, "\n  mix:%s\n", w->n_mix ? "" : " []");
    for (size_t i = 0; i < w->n_mix; i++)
        put_job(f, &w->mix[i]);
    fprintf(f, "  script:%s\n", w->n_script ? "" : " []");
    for (size_t i = 0; i < w->n_script; i++) {
        fputs("    - {at: ", f);
        put_dur(f, w->script[i].at);
        fprintf(f, ", mix: %zu", w->script[i].mix);
        if (w->script[i].job_id && w->script[i].job_id[0]) {
            fputs(", job_id: ", f);
            put_str(f, w->script[i].job_id);
        }
        fputs("}\n", f);
    }
}

static void put_filters(FILE *f, const sim_fault *x)
{
    if (x->subject) {
        fputs(", subject: ", f);
        put_str(f, x->subject);
    }
    if (x->from) {
        fputs(", from: ", f);
        put_str(f, x->from);
    }
    if (x->to) {
        fputs(", to: ", f);
        put_str(f, x->to);
    }
}

static int put_event(FILE *f, const sim_timeline_event *e)
{
    fputs("  - {at: ", f);
    put_dur(f, e->at);
    switch (e->kind) {
    case SIM_EV_CRASH:
    case SIM_EV_RESTART:
        fputs(e->kind == SIM_EV_CRASH ? ", crash: " : ", restart: ", f);
        put_str(f, e->a);
        break;
    case SIM_EV_PARTITION:
    case SIM_EV_HEAL:
        fputs(e->kind == SIM_EV_PARTITION ? ", partition: [" : ", heal: [", f);
        put_str(f, e->a);
        if (e->b && e->b[0]) {
            fputs(", ", f);
            put_str(f, e->b);
        }
        fputc(']', f);
        break;
    case SIM_EV_FAULT: {
        const sim_fault *x = &e->fault;
        if (x->end != SIM_FOREVER) {
            fputs(", duration: ", f);
            put_dur(f, x->end - e->at);
        }
        switch (x->kind) {
        case SIM_FAULT_DUPLICATE:
            fprintf(f, ", duplicate: {count: %" PRIu64 ", p: ", x->count);
            put_num(f, x->p);
            break;
        case SIM_FAULT_LOSS:
        case SIM_FAULT_CORRUPT:
            fputs(x->kind == SIM_FAULT_LOSS ? ", loss: {p: " : ", corrupt: {p: ", f);
            put_num(f, x->p);
            break;
        case SIM_FAULT_REORDER:
            fputs(", reorder: {window: ", f);
            put_dur(f, x->window);
            break;
        case SIM_FAULT_REPLAY:
            fprintf(f, ", replay: {count: %" PRIu64 ", after: ", x->count);
            put_dur(f, x->after);
            break;
        case SIM_FAULT_LATENCY: {
            /* the distribution's keys sit in the fault's own mapping */
            char *buf = NULL;
            size_t len = 0;
            FILE *m = open_memstream(&buf, &len);
            if (!m)
                return CAP_ENOMEM;
            put_dist(m, &x->latency);
            fclose(m);
            if (!buf)
                return CAP_ENOMEM;
            buf[len - 1] = 0; /* drop the closing brace */
            fprintf(f, ", latency: %s", buf);
            free(buf);
            break;
        }
        default: return CAP_EINVAL;
        }
        put_filters(f, x);
        fputc('}', f);
        break;
    }
    case SIM_EV_SKEW:
        fputs(", skew: {actor: ", f);
        put_str(f, e->a);
        fputs(", by: ", f);
        if (e->skew_ns < 0) {
            fputc('-', f);
            put_dur(f, -e->skew_ns);
        } else {
            put_dur(f, e->skew_ns);
        }
        fputc('}', f);
        break;
    case SIM_EV_POLICY: {
        fputs(", policy: ", f);
        int rc = put_path(f, e->policy_path);
        if (rc)
            return rc;
        break;
    }
    case SIM_EV_CANCEL:
        fputs(", cancel: ", f);
        put_str(f, e->a);
        break;
    case SIM_EV_CONFLICT:
        fprintf(f, ", conflict: {count: %" PRIu64 ", after: ", e->count);
        put_dur(f, e->after_ns);
        fputc('}', f);
        break;
    default: return CAP_EINVAL;
    }
    fputs("}\n", f);
    return CAP_OK;
}

int sim_scenario_write(const sim_scenario *s, const char *comment, FILE *out)
{
    if (!s || !out)
        return CAP_EINVAL;
    for (const char *c = comment; c && *c;) {
        const char *nl = strchr(c, '\n');
        size_t n = nl ? (size_t)(nl - c) : strlen(c);
        fprintf(out, "#%s%.*s\n", n ? " " : "", (int)n, c);
        c = nl ? nl + 1 : c + n;
    }
    fputs("name: ", out);
    put_str(out, s->name);
    fputs("\ndescription: ", out);
    put_str(out, s->description);
    fprintf(out, "\nseed: %" PRIu64 "\nduration: ", s->seed);
    put_dur(out, s->duration_ns);
    fputs("\ndrain: ", out);
    put_dur(out, s->drain_ns);
    if (s->max_events_per_instant != SIM_DEFAULT_EVENTS_PER_INSTANT) /* written when set */
        fprintf(out, "\nmax_events_per_instant: %" PRIu64, s->max_events_per_instant);
    fputs("\npolicy: ", out);
    int rc = put_path(out, s->policy_path);
    if (rc)
        return rc;
    fputs("\nscheduler: {dispatch_timeout: ", out);
    put_dur(out, s->dispatch_timeout_ns);
    fputs(", running_timeout: ", out);
    put_dur(out, s->running_timeout_ns);
    fputs(", no_worker_wait: ", out);
    put_dur(out, s->no_worker_wait_ns);
    if (s->max_retries_set)
        fprintf(out, ", max_retries: %" PRIu32, s->max_retries);
    fprintf(out, ",\n            breaker_threshold: %" PRIu32 ", breaker_cool_down: ",
            s->breaker_threshold);
    put_dur(out, s->breaker_cool_down_ns);
    fputs(", worker_grace: ", out);
    put_dur(out, s->worker_grace_ns);
    fputs("}\nbus: {latency: ", out);
    put_dist(out, &s->latency);
    fprintf(out, "}\nworkers:%s\n", s->n_workers ? "" : " []");
    for (size_t i = 0; i < s->n_workers; i++)
        put_worker(out, &s->workers[i]);
    if (s->approver.present) {
        fputs("approver: {delay: ", out);
        put_dist(out, &s->approver.delay);
        fputs(", p_approve: ", out);
        put_num(out, s->approver.p_approve);
        fputs(", name: ", out);
        put_str(out, s->approver.name ? s->approver.name : "approver-1");
        fputs("}\n", out);
    }
    if (s->gateway.sign) {
        fputs("gateway: {sign: true, signature_lifetime: ", out);
        put_dur(out, s->gateway.signature_lifetime_ns);
        fputs("}\n", out);
    }
    put_workload(out, &s->workload);
    fprintf(out, "faults:%s\n", s->n_timeline ? "" : " []");
    for (size_t i = 0; i < s->n_timeline; i++)
        if ((rc = put_event(out, &s->timeline[i])))
            return rc;
    fputs("invariants: [", out);
    int first = 1;
    for (unsigned bit = 1; bit & SIM_INV_ALL; bit <<= 1)
        if (s->invariants & bit) {
            fprintf(out, "%s%s", first ? "" : ", ", sim_invariant_name(bit));
            first = 0;
        }
    fputs("]\n", out);
    return ferror(out) ? CAP_EIO : CAP_OK;
}

int sim_scenario_write_text(const sim_scenario *s, const char *comment, char **text, size_t *len)
{
    if (!text || !len)
        return CAP_EINVAL;
    *text = NULL;
    *len = 0;
    FILE *m = open_memstream(text, len);
    if (!m)
        return CAP_ENOMEM;
    int rc = sim_scenario_write(s, comment, m);
    if (fclose(m) != 0 && !rc)
        rc = CAP_ENOMEM;
    if (!rc && !*text)
        rc = CAP_ENOMEM;
    if (rc) {
        free(*text);
        *text = NULL;
        *len = 0;
    }
    return rc;
}

int sim_scenario_clone(const sim_scenario *s, const char *path, sim_scenario **out,
                       cap_yaml_diag *d)
{
    char *text = NULL;
    size_t len = 0;
    if (out)
        *out = NULL;
    int rc = sim_scenario_write_text(s, NULL, &text, &len);
    if (rc)
        return rc;
    rc = sim_scenario_parse(path ? path : s->path, text, len, out, d);
    free(text);
    return rc;
}
