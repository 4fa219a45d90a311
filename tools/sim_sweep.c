/* capsim sim --sweep: see sim_sweep.h. */
#define _DEFAULT_SOURCE
#include "sim_sweep.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cap_error.h"
#include "cap_yaml.h"
#include "cli.h"
#include "proc_pool.h"
#include "ref_bugs.h"
#include "sim_seeds.h"

/* A result travels from its child through a pipe, written before the child
 * exits and read after it has: it must fit the pipe's buffer (64 KiB on
 * Linux; 16 KiB leaves room on any configuration we know). */
_Static_assert(sizeof(sim_result) <= 16384, "a sim_result must fit a pipe's buffer");

#define FLOW_MAX 4096

void sim_set_error(const char *label, const cap_yaml_diag *yd)
{
    char where[64] = "";
    if (yd->line > 1)
        snprintf(where, sizeof where, " (line %d, column %d of the value)", yd->line, yd->column);
    else if (yd->line == 1 && yd->column > 1)
        snprintf(where, sizeof where, " (column %d of the value)", yd->column);
    fprintf(stderr, "capsim sim: %s: %s%s%s%s\n", label, yd->path, yd->path[0] ? ": " : "",
            yd->reason, where);
}

void sweep_axis_free(sweep_axis *ax)
{
    if (!ax)
        return;
    for (size_t i = 0; i < ax->n; i++)
        free(ax->sets[i]);
    free(ax->sets);
    free(ax->values);
    free(ax->path);
    memset(ax, 0, sizeof *ax);
}

int sweep_axis_parse(const char *arg, sweep_axis *ax, char *err, size_t errlen)
{
    memset(ax, 0, sizeof *ax);
    cap_yaml_diag d;
    size_t plen;
    if (cap_yaml_set_path_len(arg, &plen, &d) != 0) {
        snprintf(err, errlen, "%s", d.reason);
        return -1;
    }
    cap_yaml_doc *doc = NULL;
    const char *text = arg + plen + 1;
    if (cap_yaml_parse(text, strlen(text), NULL, &doc, &d) != 0) {
        snprintf(err, errlen, "the values: %s (column %d)", d.reason, d.column);
        return -1;
    }
    const cap_yaml_node *list = cap_yaml_root(doc);
    int rc = -1;
    char *flow = malloc(FLOW_MAX);
    if (!list || list->kind != CAP_YAML_SEQ || list->n == 0 || list->n > SIM_SWEEP_MAX_VALUES) {
        snprintf(err, errlen, "want a list of 1 to %d values: PATH=[V1, V2, ...]",
                 SIM_SWEEP_MAX_VALUES);
        goto out;
    }
    if (!flow || !(ax->path = strndup(arg, plen)) ||
        !(ax->sets = calloc(list->n, sizeof *ax->sets)) ||
        !(ax->values = calloc(list->n, sizeof *ax->values))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < list->n; i++) {
        if (cap_yaml_flow(list->items[i], flow, FLOW_MAX) != 0) {
            snprintf(err, errlen, "value %zu is over %d bytes", i + 1, FLOW_MAX - 1);
            goto out;
        }
        if (!(ax->sets[i] = malloc(plen + 1 + strlen(flow) + 1))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        sprintf(ax->sets[i], "%s=%s", ax->path, flow);
        ax->values[i] = ax->sets[i] + plen + 1;
        ax->n++;
    }
    rc = 0;
out:
    free(flow);
    cap_yaml_free(doc);
    if (rc)
        sweep_axis_free(ax);
    return rc;
}

void sweep_variants_free(sweep_variants *v)
{
    if (!v)
        return;
    for (size_t i = 0; v->scn && i < v->n; i++)
        sim_scenario_free(v->scn[i]);
    free(v->scn);
    free(v->pick);
    free(v->res);
    memset(v, 0, sizeof *v);
}

int sweep_load(const char *path, const char *const *sets, size_t n_sets, const sweep_axis *axes,
               size_t n_axes, sweep_variants *v)
{
    memset(v, 0, sizeof *v);
    size_t n = 1;
    for (size_t a = 0; a < n_axes; a++) {
        n *= axes[a].n;
        if (n > SIM_SWEEP_MAX_VARIANTS) {
            cli_error("sim", "--sweep: more than %d variants", SIM_SWEEP_MAX_VARIANTS);
            return -1;
        }
    }
    if (n_sets + n_axes > SIM_SCENARIO_MAX_SETS) {
        cli_error("sim", "--set and --sweep: at most %d together", SIM_SCENARIO_MAX_SETS);
        return -1;
    }
    v->n_axes = n_axes;
    if (!(v->scn = calloc(n, sizeof *v->scn)) || !(v->pick = calloc(n * n_axes + 1, sizeof *v->pick)) ||
        !(v->res = calloc(n, sizeof *v->res))) {
        sweep_variants_free(v);
        cli_error("sim", "out of memory");
        return -1;
    }
    v->n = n;
    const char *all[SIM_SCENARIO_MAX_SETS];
    memcpy(all, sets, n_sets * sizeof *sets);
    for (size_t i = 0; i < n; i++) {
        size_t rest = i;
        for (size_t a = n_axes; a-- > 0;) { /* the first axis varies slowest */
            size_t k = rest % axes[a].n;
            rest /= axes[a].n;
            v->pick[i * n_axes + a] = k;
            all[n_sets + a] = axes[a].sets[k];
        }
        cap_yaml_diag yd;
        if (sim_scenario_load_with(path, all, n_sets + n_axes, &v->scn[i], &yd) != CAP_OK) {
            char label[FLOW_MAX + 200];
            size_t o = (size_t)yd.origin;
            if (o > n_sets && o <= n_sets + n_axes) {
                const sweep_axis *ax = &axes[o - n_sets - 1];
                snprintf(label, sizeof label, "--sweep %s: the value %s", ax->path,
                         ax->values[v->pick[i * n_axes + o - n_sets - 1]]);
                sim_set_error(label, &yd);
            } else if (o > 0 && o <= n_sets) {
                snprintf(label, sizeof label, "--set %s", sets[o - 1]);
                sim_set_error(label, &yd);
            } else {
                char buf[1024];
                fprintf(stderr, "capsim sim: %s\n", cap_yaml_diag_format(&yd, path, buf, sizeof buf));
            }
            sweep_variants_free(v);
            return -1;
        }
    }
    return 0;
}

/* The child's side: runs variant i and writes its result to fd. */
static void child(const sweep_variants *v, size_t i, const sim_run_config *base, uint64_t seed,
                  int fd)
{
    sim_run_config c = *base;
    c.scn = v->scn[i];
    c.seed = seed;
    c.trace_bin = c.trace_jsonl = NULL;
    c.history_job = NULL;
    sim_result *res = malloc(sizeof *res);
    cap_diag d;
    memset(&d, 0, sizeof d);
    int rc = res ? sim_run(&c, res, &d) : CAP_ENOMEM;
    if (rc != CAP_OK) {
        cli_diag("sim", c.scn->path, &d);
        _exit(2);
    }
    const char *p = (const char *)res;
    size_t left = sizeof *res;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(2);
        p += w;
        left -= (size_t)w;
    }
    _exit(0);
}

/* Reads a finished child's result; 0 when it was whole. */
static int read_result(int fd, sim_result *res)
{
    char *p = (char *)res;
    size_t got = 0;
    while (got < sizeof *res) {
        ssize_t r = read(fd, p + got, sizeof *res - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got == sizeof *res ? 0 : -1;
}

typedef struct {
    sweep_variants *v;
    const sim_run_config *base;
    uint64_t seed;
    int *rfd, *wfd; /* each variant's pipe */
    int failed;
} sweep_pool;

static int variant_prepare(void *ctx, size_t i)
{
    sweep_pool *sp = ctx;
    int p[2];
    if (pipe(p) != 0) {
        cli_error("sim", "pipe failed: %s", strerror(errno));
        return -1;
    }
    sp->rfd[i] = p[0];
    sp->wfd[i] = p[1];
    return 0;
}

static void variant_run(void *ctx, size_t i)
{
    sweep_pool *sp = ctx;
    close(sp->rfd[i]);
    child(sp->v, i, sp->base, sp->seed, sp->wfd[i]);
}

static void variant_started(void *ctx, size_t i)
{
    sweep_pool *sp = ctx;
    close(sp->wfd[i]);
}

static int variant_finished(void *ctx, size_t i, int status)
{
    sweep_pool *sp = ctx;
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
             read_result(sp->rfd[i], &sp->v->res[i]) == 0;
    close(sp->rfd[i]);
    if (!ok) {
        cli_error("sim", "variant %zu could not be run", i + 1);
        sp->failed = 1;
    }
    return !ok;
}

int sweep_run(sweep_variants *v, const sim_run_config *base, uint64_t seed, long jobs)
{
    sweep_pool sp = {v, base, seed, calloc(v->n, sizeof(int)), calloc(v->n, sizeof(int)), 0};
    if (!sp.rfd || !sp.wfd) {
        free(sp.rfd);
        free(sp.wfd);
        cli_error("sim", "out of memory");
        return -1;
    }
    proc_pool pool = {&sp, variant_prepare, variant_run, variant_started, variant_finished};
    long started = proc_pool_run("sim", &pool, v->n, jobs);
    free(sp.rfd);
    free(sp.wfd);
    return started == (long)v->n && !sp.failed ? 0 : -1;
}

/* ---- the tables ---- */

typedef struct {
    char **cell; /* rows * cols, row 0 the header */
    size_t rows, cols, cap;
} table;

static void cell(table *t, size_t col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cell(table *t, size_t col, const char *fmt, ...)
{
    char buf[FLOW_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(t->cell[(t->rows - 1) * t->cols + col]);
    t->cell[(t->rows - 1) * t->cols + col] = strdup(buf);
}

/* Starts a new row; 0, or -1 out of memory. */
static int row(table *t)
{
    if (t->rows == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        char **nt = realloc(t->cell, nc * t->cols * sizeof *nt);
        if (!nt)
            return -1;
        memset(nt + t->cap * t->cols, 0, (nc - t->cap) * t->cols * sizeof *nt);
        t->cell = nt;
        t->cap = nc;
    }
    t->rows++;
    return 0;
}

/* Prints t with its columns aligned (the last one not padded), and frees it. */
static void table_print(table *t, FILE *out)
{
    size_t *w = calloc(t->cols, sizeof *w);
    for (size_t r = 0; w && r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            const char *s = t->cell[r * t->cols + c];
            size_t n = s ? strlen(s) : 0;
            if (n > w[c])
                w[c] = n;
        }
    for (size_t r = 0; w && r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            const char *s = t->cell[r * t->cols + c];
            if (c + 1 < t->cols)
                fprintf(out, "%-*s  ", (int)w[c], s ? s : "");
            else
                fprintf(out, "%s\n", s ? s : "");
        }
    }
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cell[i]);
    free(t->cell);
    free(w);
}

size_t sweep_print(const sweep_variants *v, const sweep_axis *axes, uint64_t seed,
                   const char *path, FILE *out)
{
    fprintf(out, "sweep:");
    for (size_t a = 0; a < v->n_axes; a++)
        fprintf(out, "%s %s (%zu value%s)", a ? " x" : "", axes[a].path, axes[a].n,
                axes[a].n == 1 ? "" : "s");
    fprintf(out, ": %zu variant%s, seed %" PRIu64 "\n\n", v->n, v->n == 1 ? "" : "s", seed);

    static const char *const figures[] = {"submitted", "succeeded", "failed", "fatal",
                                          "timeout",   "dlq",       "retries", "util",
                                          "jobs/s",    "invariants", "trace"};
    size_t nf = sizeof figures / sizeof *figures;
    table t = {NULL, 0, 1 + v->n_axes + nf, 0};
    int oom = row(&t);
    cell(&t, 0, "variant");
    for (size_t a = 0; a < v->n_axes; a++)
        cell(&t, 1 + a, "%s", axes[a].path);
    for (size_t f = 0; f < nf; f++)
        cell(&t, 1 + v->n_axes + f, "%s", figures[f]);
    size_t broken = 0;
    for (size_t i = 0; i < v->n && !oom; i++) {
        const sim_result *r = &v->res[i];
        if ((oom = row(&t)) != 0)
            break;
        size_t c = 0;
        cell(&t, c++, "%zu", i + 1);
        for (size_t a = 0; a < v->n_axes; a++)
            cell(&t, c++, "%s", axes[a].values[v->pick[i * v->n_axes + a]]);
        cell(&t, c++, "%" PRIu64, r->submitted);
        cell(&t, c++, "%" PRIu64, r->succeeded);
        cell(&t, c++, "%" PRIu64, r->failed);
        cell(&t, c++, "%" PRIu64, r->failed_fatal);
        cell(&t, c++, "%" PRIu64, r->timed_out);
        cell(&t, c++, "%" PRIu64, r->dlq);
        cell(&t, c++, "%" PRIu64, r->retries);
        cell(&t, c++, "%.1f%%", 100.0 * r->utilisation);
        cell(&t, c++, "%.3f", r->throughput);
        cell(&t, c++, "%s%s", r->violated ? "VIOLATION " : "held", r->violated ? r->invariant : "");
        cell(&t, c++, "%.16s", r->trace_hash);
        broken += r->violated != 0;
    }
    table_print(&t, out);

    fprintf(out, "\nlatency, submit to terminal:\n");
    table l = {NULL, 0, 6, 0};
    oom = row(&l);
    static const char *const lhead[] = {"variant", "topic", "n", "p50", "p95", "p99"};
    for (size_t c = 0; c < 6; c++)
        cell(&l, c, "%s", lhead[c]);
    for (size_t i = 0; i < v->n && !oom; i++)
        for (size_t k = 0; k < v->res[i].n_topics && !oom; k++) {
            const sim_topic_latency *tl = &v->res[i].topics[k];
            if ((oom = row(&l)) != 0)
                break;
            cell(&l, 0, "%zu", i + 1);
            cell(&l, 1, "%s", tl->topic);
            cell(&l, 2, "%" PRIu64, tl->n);
            int64_t p[3] = {tl->p50, tl->p95, tl->p99};
            for (size_t q = 0; q < 3; q++) {
                char d[32];
                sim_duration_text(p[q], d, sizeof d);
                cell(&l, 3 + q, "%s", d);
            }
        }
    table_print(&l, out);

    if (!broken) {
        fprintf(out, "\n%zu variant%s: every invariant held\n", v->n, v->n == 1 ? "" : "s");
        return 0;
    }
    for (size_t i = 0; i < v->n; i++) {
        const sim_result *r = &v->res[i];
        if (!r->violated)
            continue;
        fprintf(out, "\nvariant %zu breaks %s: job %s at %.6fs: %s\nrun it alone (and shrink it): ",
                i + 1, r->invariant, r->job_id[0] ? r->job_id : "-", (double)r->at / 1e9, r->detail);
        seeds_reproduce_command(path, seed, ref_bug_current_name(), v->scn[i]->sets,
                                v->scn[i]->n_sets, out);
        fputc('\n', out);
    }
    return broken;
}
