/* capsim report: the whole conformance run against the reference, written
 * as reports (docs/reports.md).
 *
 * It runs every upstream TCK suite (tck/core-*.json) against the
 * reference adapter, once per role and profile, and every golden-trace
 * case against the reference in the simulator, then writes into the
 * output directory:
 *   tck-<role>-<profile>.json / .junit.xml   report-v1 (cap-tck 3) and JUnit
 *   golden.json / golden.junit.xml           the golden cases, report-v1 shaped
 *                                            (clauses, hashes and the first
 *                                            divergence in each case's evidence)
 *   index.html                               one self-contained page: every
 *                                            run, a sequence diagram of each
 *                                            failing golden case beside its
 *                                            golden trace, the spec coverage
 * With --bug NAME one known bug is switched into the reference (the
 * adapters get --mutant NAME, the simulator runs with the bug), which is
 * how the page's failure rendering is exercised. */
#include <glob.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "conf_golden.h"
#include "conf_html.h"
#include "conf_report.h"
#include "conf_runner.h"
#include "conf_suite.h"
#include "ref_bugs.h"

#define CMD "report"
#define MAX_PATH 4096
#define MAX_SUITES 64

static const char REPORT_HELP[] =
    "usage: capsim report [--out-dir DIR] [--tck DIR] [--cases DIR] [--bug NAME]\n"
    "                     [--title TEXT] [--date TEXT]\n"
    "\n"
    "Runs every upstream TCK suite (DIR/core-*.json) against the reference adapter\n"
    "(roles worker and control-plane, profiles core and cap-production) and every\n"
    "golden-trace case against the reference in the simulator, and writes\n"
    "tck-<role>-<profile>.json/.junit.xml, golden.json/.junit.xml and index.html\n"
    "(self-contained: sequence diagrams of failing cases, spec coverage) into the\n"
    "output directory.\n"
    "\n"
    "  --out-dir DIR  where the reports go (default reports)\n"
    "  --tck DIR      the upstream kit's data (default ../shared/tck)\n"
    "  --cases DIR    the golden-trace cases (default conformance/cases)\n"
    "  --bug NAME     switch one known bug into the reference (capsim sim --list-bugs)\n"
    "  --title TEXT   the page title\n"
    "  --date TEXT    text shown as the date on the page (no clock is read; default none)\n"
    "\n"
    "Reports are byte-stable: durations are written as 0.\n"
    "exit: 0 every run conformant and every golden case identical, 1 otherwise,\n"
    "2 usage or an unreadable suite, case or coverage file\n";

typedef struct {
    const char *out_dir, *tck_dir, *cases_dir, *bug, *title, *date;
} report_args;

static const char *const ROLES[] = {"worker", "control-plane"};
static const char *const PROFILES[] = {"core", "cap-production"};

/* Everything the page points into, owned here until the page is written. */
typedef struct {
    conf_report **tck;     /* one per (role, profile) */
    size_t n_tck;
    conf_golden_case **cases;
    size_t n_cases;
    conf_golden_result *results; /* per case; first_diff -2: the check could not run */
    char **errors;               /* per case: why the check could not run, or NULL */
    conf_report *golden;
} report_run;

static int write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char path[MAX_PATH];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        cli_error(CMD, "%s/%s: path too long", dir, name);
        return -1;
    }
    return cli_write_output(CMD, path, data, len);
}

/* Writes the JSON and JUnit renderings of r as <stem>.json, <stem>.junit.xml. */
static int write_renderings(const char *dir, const char *stem, const conf_report *r)
{
    char name[256];
    char *text = NULL;
    size_t len = 0;
    int rc = 0;
    snprintf(name, sizeof name, "%s.json", stem);
    if (conf_report_json(r, &text, &len) != 0 || write_file(dir, name, text, len) < 0)
        rc = -1;
    free(text);
    text = NULL;
    snprintf(name, sizeof name, "%s.junit.xml", stem);
    if (rc == 0 && (conf_report_junit(r, &text, &len) != 0 || write_file(dir, name, text, len) < 0))
        rc = -1;
    free(text);
    return rc;
}

/* Appends every case of `part` to `all`. */
static int merge_cases(conf_report *all, const conf_report *part)
{
    for (size_t i = 0; i < part->n; i++) {
        const conf_case *c = &part->cases[i];
        if (conf_report_add(all, c->id, c->profile, c->role, c->required, c->applicable, c->status,
                            c->detail, c->duration_ms, c->evidence, c->n_evidence) != 0)
            return -1;
    }
    return 0;
}

/* Runs every suite against the reference adapter of one role and profile
 * and merges the cases into one report. */
static int run_tck(const report_args *a, const char *self, char **suites, size_t n_suites,
                   const char *role, const char *profile, conf_report **out)
{
    char spec_text[MAX_PATH + 256];
    if (a->bug)
        snprintf(spec_text, sizeof spec_text, "reference-%s=%s|adapter|--role|%s|--mutant|%s", role,
                 self, role, a->bug);
    else
        snprintf(spec_text, sizeof spec_text, "reference-%s=%s|adapter|--role|%s", role, self, role);
    conf_adapter_spec spec;
    char err[700];
    if (conf_adapter_spec_parse(spec_text, &spec, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        conf_adapter_spec_free(&spec);
        return -1;
    }
    conf_run_opts ro;
    conf_run_opts_default(&ro);
    ro.deterministic = 1;
    ro.temp_cwd = 1;
    conf_report *all = NULL;
    int rc = 0;
    for (size_t i = 0; i < n_suites && rc == 0; i++) {
        conf_suite *s = NULL;
        if (conf_suite_load(suites[i], &s, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            rc = -2;
            break;
        }
        conf_report *r = NULL;
        if (conf_run(s, profile, &spec, &ro, &r, err, sizeof err) != 0) {
            cli_error(CMD, "%s [%s, %s]: %s", suites[i], role, profile, err);
            rc = -1;
        } else if (!all) {
            all = r;
            r = NULL;
        } else if (merge_cases(all, r) != 0) {
            rc = -1;
        }
        conf_report_free(r);
        conf_suite_free(s);
    }
    conf_adapter_spec_free(&spec);
    if (rc != 0) {
        conf_report_free(all);
        return rc;
    }
    *out = all;
    return 0;
}

static const char *clauses_text(const conf_golden_case *c, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n_clauses && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? "; " : "", c->clauses[i]);
    return buf;
}

/* Checks every golden case in the simulator and fills run->golden. */
static int run_golden(const report_args *a, report_run *run)
{
    cap_yaml_diag yd;
    char *bad = NULL;
    memset(&yd, 0, sizeof yd);
    if (conf_golden_load_dir(a->cases_dir, &run->cases, &run->n_cases, &bad, &yd) != 0) {
        char line[1200];
        cap_yaml_diag_format(&yd, bad ? bad : a->cases_dir, line, sizeof line);
        cli_error(CMD, "%s", line);
        free(bad);
        return -2;
    }
    run->results = calloc(run->n_cases ? run->n_cases : 1, sizeof *run->results);
    run->errors = calloc(run->n_cases ? run->n_cases : 1, sizeof *run->errors);
    run->golden = conf_report_new("reference-simulator", "golden", "capsim-golden/1");
    if (!run->results || !run->errors || !run->golden)
        return -1;
    for (size_t i = 0; i < run->n_cases; i++) {
        const conf_golden_case *c = run->cases[i];
        conf_golden_result *res = &run->results[i];
        cap_diag d;
        memset(&d, 0, sizeof d);
        memset(&yd, 0, sizeof yd);
        char detail[1400] = "";
        conf_status st;
        if (conf_golden_check(c, res, &yd, &d) != 0) {
            memset(res, 0, sizeof *res);
            res->first_diff = -2;
            if (yd.reason[0])
                cap_yaml_diag_format(&yd, c->scenario_path, detail, sizeof detail);
            else
                snprintf(detail, sizeof detail, "%s: %s", d.path, d.reason);
            run->errors[i] = strdup(detail);
            st = CONF_ST_ERROR;
        } else if (res->first_diff < 0) {
            st = CONF_ST_PASS;
        } else {
            st = CONF_ST_FAIL;
            size_t k = (size_t)res->first_diff;
            snprintf(detail, sizeof detail, "record %zu differs from the golden trace (%zu golden, %zu observed records)",
                     k, res->n_expected, res->n_observed);
        }
        char clauses[1024], roles[64], divergence[600] = "";
        clauses_text(c, clauses, sizeof clauses);
        conf_golden_roles_text(c->roles, roles, sizeof roles);
        if (st == CONF_ST_FAIL && res->n_diffs > 0)
            snprintf(divergence, sizeof divergence, "record %ld: %s: %s -> %s", res->first_diff,
                     res->diffs[0].path, res->diffs[0].expected, res->diffs[0].observed);
        conf_kv ev[5] = {
            {"clauses", clauses},
            {"expectedHash", res->expected_hash},
            {"firstDivergence", divergence},
            {"observedHash", res->observed_hash},
            {"title", c->title},
        };
        size_t n_ev = 0;
        conf_kv keep[5];
        for (size_t k = 0; k < 5; k++)
            if (ev[k].value && ev[k].value[0])
                keep[n_ev++] = ev[k];
        if (conf_report_add(run->golden, c->id, "golden", roles, 1, 1, st, detail, 0, keep, n_ev) != 0)
            return -1;
    }
    return 0;
}

/* ---- the page ---- */

typedef struct {
    conf_html_report *reports;
    conf_html_case **cases; /* per report */
    conf_html_rec **recs;   /* per golden case: expected then observed */
    conf_html_divergence *divs;
    char ***diff_lines;
    size_t *n_diff_lines;
    char **clauses;         /* per golden case */
    conf_html_own_case *own;
    char **tck_clauses;     /* per TCK case of every run, in order */
    size_t n_tck_clauses;
} page_model;

/* The spec references of the coverage behaviours that list case id, "; "
 * separated, into buf ("" when none does). The upstream cases carry no
 * clause of their own; the coverage map is where the kit says what each
 * one checks. */
static const char *coverage_clauses(const conf_html_coverage *cov, const char *id, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cov->n; i++) {
        const conf_html_behavior *b = &cov->items[i];
        for (size_t k = 0; k < b->n_cases; k++) {
            if (strcmp(b->cases[k], id) != 0 || !b->spec || !b->spec[0] || strstr(buf, b->spec))
                continue;
            if (used < n)
                used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? "; " : "", b->spec);
        }
    }
    return buf;
}

static void fill_report(conf_html_report *h, const conf_report *r, conf_html_case *cases)
{
    conf_summary s;
    conf_report_summarize(r, &s);
    h->adapter = r->adapter;
    h->role = r->role;
    h->profile = r->profile;
    h->verdict = s.conformant ? "CONFORMANT" : "NON-CONFORMANT";
    h->total = s.total;
    h->pass = s.pass;
    h->fail = s.fail;
    h->error = s.error;
    h->unsupported = s.unsupported;
    h->na = s.na;
    for (size_t i = 0; i < r->n; i++) {
        cases[i].id = r->cases[i].id;
        cases[i].status = conf_status_name(r->cases[i].status);
        cases[i].role = r->cases[i].role;
        cases[i].required = r->cases[i].required;
        cases[i].detail = r->cases[i].detail;
    }
    h->cases = cases;
    h->n_cases = r->n;
}

static conf_html_rec *html_records(const conf_golden_record *r, size_t n)
{
    conf_html_rec *out = calloc(n ? n : 1, sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i].time_ns = r[i].time;
        out[i].sender = r[i].sender;
        out[i].receiver = "";
        out[i].subject = r[i].subject;
        out[i].label = r[i].label;
    }
    return out;
}

/* Attaches the golden case's traces and divergence to its page entry. */
static int fill_golden_case(page_model *m, size_t i, const conf_golden_result *res, conf_html_case *hc)
{
    if (res->first_diff < 0)
        return 0;
    conf_html_rec *exp = html_records(res->expected, res->n_expected);
    conf_html_rec *obs = html_records(res->observed, res->n_observed);
    m->recs[2 * i] = exp;
    m->recs[2 * i + 1] = obs;
    m->diff_lines[i] = calloc(res->n_diffs ? res->n_diffs : 1, sizeof(char *));
    if (!exp || !obs || !m->diff_lines[i])
        return -1;
    for (size_t k = 0; k < res->n_diffs; k++) {
        const conf_golden_field_diff *fd = &res->diffs[k];
        size_t len = strlen(fd->path) + strlen(fd->expected) + strlen(fd->observed) + 16;
        char *line = malloc(len);
        if (!line)
            return -1;
        snprintf(line, len, "%s: %s \xe2\x86\x92 %s", fd->path, fd->expected, fd->observed);
        m->diff_lines[i][m->n_diff_lines[i]++] = line;
    }
    size_t k = (size_t)res->first_diff;
    m->divs[i].expected_index = k < res->n_expected ? (long)k : -1;
    m->divs[i].observed_index = k < res->n_observed ? (long)k : -1;
    m->divs[i].diff = (const char *const *)m->diff_lines[i];
    m->divs[i].n_diff = m->n_diff_lines[i];
    hc->expected = exp;
    hc->n_expected = res->n_expected;
    hc->observed = obs;
    hc->n_observed = res->n_observed;
    hc->divergence = &m->divs[i];
    return 0;
}

static void page_model_free(page_model *m, const report_run *run)
{
    if (m->cases)
        for (size_t i = 0; i <= run->n_tck; i++)
            free(m->cases[i]);
    free(m->cases);
    for (size_t i = 0; i < run->n_cases; i++) {
        if (m->recs) {
            free(m->recs[2 * i]);
            free(m->recs[2 * i + 1]);
        }
        if (m->diff_lines && m->diff_lines[i]) {
            for (size_t k = 0; k < m->n_diff_lines[i]; k++)
                free(m->diff_lines[i][k]);
            free(m->diff_lines[i]);
        }
        if (m->clauses)
            free(m->clauses[i]);
    }
    free(m->recs);
    free(m->divs);
    free(m->diff_lines);
    free(m->n_diff_lines);
    free(m->clauses);
    free(m->own);
    free(m->reports);
    for (size_t i = 0; i < m->n_tck_clauses; i++)
        free(m->tck_clauses[i]);
    free(m->tck_clauses);
}

static int render_page(const report_args *a, const report_run *run, const conf_html_coverage *cov,
                       char **html, size_t *len)
{
    page_model m;
    memset(&m, 0, sizeof m);
    size_t nc = run->n_cases ? run->n_cases : 1, nr = run->n_tck + 1;
    m.reports = calloc(nr, sizeof *m.reports);
    m.cases = calloc(nr, sizeof *m.cases);
    m.recs = calloc(2 * nc, sizeof *m.recs);
    m.divs = calloc(nc, sizeof *m.divs);
    m.diff_lines = calloc(nc, sizeof *m.diff_lines);
    m.n_diff_lines = calloc(nc, sizeof *m.n_diff_lines);
    m.clauses = calloc(nc, sizeof *m.clauses);
    m.own = calloc(nc, sizeof *m.own);
    int rc = -1;
    if (!m.reports || !m.cases || !m.recs || !m.divs || !m.diff_lines || !m.n_diff_lines ||
        !m.clauses || !m.own)
        goto out;
    /* The golden run first: its failures are the ones with diagrams. */
    const conf_report *order[1 + 2 * 2];
    order[0] = run->golden;
    for (size_t i = 0; i < run->n_tck; i++)
        order[1 + i] = run->tck[i];
    for (size_t i = 0; i < nr; i++) {
        m.cases[i] = calloc(order[i]->n ? order[i]->n : 1, sizeof(conf_html_case));
        if (!m.cases[i])
            goto out;
        fill_report(&m.reports[i], order[i], m.cases[i]);
    }
    size_t n_tck_cases = 0;
    for (size_t i = 1; i < nr; i++)
        n_tck_cases += order[i]->n;
    m.tck_clauses = calloc(n_tck_cases ? n_tck_cases : 1, sizeof *m.tck_clauses);
    if (!m.tck_clauses)
        goto out;
    for (size_t i = 1; i < nr; i++)
        for (size_t k = 0; k < order[i]->n; k++) {
            char buf[1024];
            char *c = strdup(coverage_clauses(cov, order[i]->cases[k].id, buf, sizeof buf));
            if (!c)
                goto out;
            m.tck_clauses[m.n_tck_clauses++] = c;
            m.cases[i][k].clauses = c;
        }
    for (size_t i = 0; i < run->n_cases; i++) {
        char buf[1024];
        m.clauses[i] = strdup(clauses_text(run->cases[i], buf, sizeof buf));
        if (!m.clauses[i])
            goto out;
        m.cases[0][i].clauses = m.clauses[i];
        if (fill_golden_case(&m, i, &run->results[i], &m.cases[0][i]) != 0)
            goto out;
        m.own[i].id = run->cases[i]->id;
        m.own[i].clauses = m.clauses[i];
        m.own[i].status = m.cases[0][i].status;
    }
    conf_html_page page;
    memset(&page, 0, sizeof page);
    page.title = a->title;
    char by[300];
    snprintf(by, sizeof by, "capsim report%s%s%s%s", a->date ? " on " : "", a->date ? a->date : "",
             a->bug ? " with injected bug " : "", a->bug ? a->bug : "");
    page.generated_by = by;
    page.reports = m.reports;
    page.n_reports = nr;
    page.coverage = cov->items;
    page.n_coverage = cov->n;
    page.own = m.own;
    page.n_own = run->n_cases;
    rc = conf_html_render(&page, html, len) == 0 ? 0 : -1;
out:
    page_model_free(&m, run);
    return rc;
}

static int load_coverage(const char *tck_dir, conf_html_coverage *cov)
{
    char path[MAX_PATH];
    snprintf(path, sizeof path, "%s/coverage.json", tck_dir);
    uint8_t *text = NULL;
    size_t len = 0;
    if (cli_read_input(CMD, path, (size_t)8 << 20, &text, &len) < 0)
        return -1;
    char err[600];
    int rc = 0;
    if (len > ((size_t)8 << 20)) {
        cli_error(CMD, "%s: over 8 MiB", path);
        rc = -1;
    } else if (conf_html_coverage_parse((const char *)text, len, cov, err, sizeof err) != 0) {
        cli_error(CMD, "%s: %s", path, err);
        rc = -1;
    }
    free(text);
    return rc;
}

static int parse_args(int argc, char **argv, report_args *a)
{
    a->out_dir = "reports";
    a->tck_dir = "../shared/tck";
    a->cases_dir = "conformance/cases";
    a->title = "capsim conformance report";
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char **slot = NULL;
        if (strcmp(opt, "--out-dir") == 0)
            slot = &a->out_dir;
        else if (strcmp(opt, "--tck") == 0)
            slot = &a->tck_dir;
        else if (strcmp(opt, "--cases") == 0)
            slot = &a->cases_dir;
        else if (strcmp(opt, "--bug") == 0)
            slot = &a->bug;
        else if (strcmp(opt, "--title") == 0)
            slot = &a->title;
        else if (strcmp(opt, "--date") == 0)
            slot = &a->date;
        if (!slot) {
            cli_error(CMD, "unknown option %s (see capsim report --help)", opt);
            return -1;
        }
        if (!(*slot = cli_value(CMD, argc, argv, &i)))
            return -1;
    }
    if (a->bug) {
        int b = ref_bug_from_name(a->bug);
        if (b < 0) {
            cli_error(CMD, "unknown bug \"%s\" (capsim sim --list-bugs)", a->bug);
            return -1;
        }
        ref_bug_set((ref_bug)b);
    }
    return 0;
}

static void report_run_free(report_run *run)
{
    for (size_t i = 0; i < run->n_tck; i++)
        conf_report_free(run->tck[i]);
    free(run->tck);
    for (size_t i = 0; run->results && i < run->n_cases; i++) {
        if (run->results[i].first_diff != -2)
            conf_golden_result_free(&run->results[i]);
        free(run->errors[i]);
    }
    free(run->results);
    free(run->errors);
    conf_golden_free_all(run->cases, run->n_cases);
    conf_report_free(run->golden);
}

int cmd_report(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(REPORT_HELP, stdout);
        return CLI_OK;
    }
    report_args a;
    memset(&a, 0, sizeof a);
    if (parse_args(argc, argv, &a) < 0)
        return CLI_USAGE;
    char self[MAX_PATH];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        cli_error(CMD, "cannot find the capsim binary (/proc/self/exe)");
        return CLI_USAGE;
    }
    self[n] = '\0';

    char pattern[MAX_PATH];
    snprintf(pattern, sizeof pattern, "%s/core-*.json", a.tck_dir);
    glob_t g;
    memset(&g, 0, sizeof g);
    if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0 || g.gl_pathc > MAX_SUITES) {
        cli_error(CMD, "%s: no suites (or more than %d)", pattern, MAX_SUITES);
        globfree(&g);
        return CLI_USAGE;
    }
    conf_html_coverage cov;
    memset(&cov, 0, sizeof cov);
    if (load_coverage(a.tck_dir, &cov) < 0) {
        globfree(&g);
        return CLI_USAGE;
    }
    if (mkdir(a.out_dir, 0777) != 0 && access(a.out_dir, W_OK) != 0) {
        cli_error(CMD, "%s: cannot create or write the output directory", a.out_dir);
        globfree(&g);
        conf_html_coverage_free(&cov);
        return CLI_USAGE;
    }
    /* A dead adapter's pipe must not kill the run. */
    signal(SIGPIPE, SIG_IGN);

    report_run run;
    memset(&run, 0, sizeof run);
    int status = CLI_OK, failed = 0;
    run.tck = calloc(4, sizeof *run.tck);
    if (!run.tck) {
        status = CLI_USAGE;
        goto out;
    }
    for (size_t r = 0; r < 2; r++)
        for (size_t p = 0; p < 2; p++) {
            conf_report *rep = NULL;
            int rc = run_tck(&a, self, g.gl_pathv, g.gl_pathc, ROLES[r], PROFILES[p], &rep);
            if (rc != 0) {
                status = rc == -2 ? CLI_USAGE : CLI_REJECTED;
                goto out;
            }
            run.tck[run.n_tck++] = rep;
            char stem[64];
            snprintf(stem, sizeof stem, "tck-%s-%s", ROLES[r], PROFILES[p]);
            if (write_renderings(a.out_dir, stem, rep) < 0) {
                status = CLI_USAGE;
                goto out;
            }
        }
    int grc = run_golden(&a, &run);
    if (grc != 0) {
        status = grc == -2 ? CLI_USAGE : CLI_REJECTED;
        goto out;
    }
    if (write_renderings(a.out_dir, "golden", run.golden) < 0) {
        status = CLI_USAGE;
        goto out;
    }
    char *html = NULL;
    size_t len = 0;
    if (render_page(&a, &run, &cov, &html, &len) != 0 || write_file(a.out_dir, "index.html", html, len) < 0) {
        cli_error(CMD, "cannot render or write %s/index.html", a.out_dir);
        free(html);
        status = CLI_USAGE;
        goto out;
    }
    free(html);
    for (size_t i = 0; i < run.n_tck; i++) {
        char *line = NULL;
        conf_summary s;
        conf_report_summarize(run.tck[i], &s);
        if (!s.conformant)
            failed = 1;
        if (conf_report_summary_line(run.tck[i], &line) == 0)
            fputs(line, stdout);
        free(line);
    }
    size_t ok = 0;
    for (size_t i = 0; i < run.n_cases; i++) {
        if (run.results[i].first_diff == -1)
            ok++;
        else
            printf("golden %s: %s\n", run.cases[i]->id,
                   run.errors[i] ? run.errors[i] : run.golden->cases[i].detail);
    }
    printf("golden cases: %zu identical, %zu not\n", ok, run.n_cases - ok);
    if (ok != run.n_cases)
        failed = 1;
    printf("reports written to %s/ (index.html)\n", a.out_dir);
    status = failed ? CLI_REJECTED : CLI_OK;
out:
    report_run_free(&run);
    globfree(&g);
    conf_html_coverage_free(&cov);
    return status;
}
