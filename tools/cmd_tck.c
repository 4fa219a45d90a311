/* capsim tck run | list | matrix: the adapter-v1 conformance runner. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "conf_adapter.h"
#include "conf_report.h"
#include "conf_runner.h"
#include "conf_suite.h"

#define CMD "tck"
#define MAX_ADAPTERS 64

static const char HELP[] =
    "usage: capsim tck run --suite FILE --adapter 'label=argv0|arg...' [--profile P]\n"
    "                      [--json F|-] [--junit F|-] [--deadline D] [--timeout T] [--deterministic]\n"
    "       capsim tck list --suite FILE [--profile P]\n"
    "       capsim tck matrix --suite FILE --adapter A --adapter B ... [--profile P]\n"
    "                      [--deadline D] [--timeout T]\n"
    "\n"
    "Runs an upstream CAP TCK scenario suite against an adapter process speaking\n"
    "adapter-v1 (JSONL on stdin/stdout). --profile defaults to core for run and\n"
    "matrix (list shows every profile unless given). D, T: Go durations (30s,\n"
    "500ms, 5m); --deadline per case (default 30s), --timeout for the run\n"
    "(default 5m). --deterministic writes durationMs 0 (byte-stable reports).\n"
    "A fault costs one case (ERROR) and the adapter is restarted; a run with no\n"
    "applicable case is not conformant.\n"
    "exit: 0 conformant, 1 non-conformant / adapter start failure / report write\n"
    "error, 2 usage or unreadable/invalid suite.\n";

typedef struct {
    const char *suite;
    const char *profile;
    const char *json;
    const char *junit;
    const char *adapters[MAX_ADAPTERS];
    size_t n_adapters;
    conf_run_opts ro;
} tck_args;

static int parse_args(const char *sub, int argc, char **argv, tck_args *a)
{
    conf_run_opts_default(&a->ro);
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *v = NULL;
        if (strcmp(opt, "--deterministic") == 0) {
            a->ro.deterministic = 1;
            continue;
        }
        if (strcmp(opt, "--suite") && strcmp(opt, "--profile") && strcmp(opt, "--json") &&
            strcmp(opt, "--junit") && strcmp(opt, "--adapter") && strcmp(opt, "--deadline") &&
            strcmp(opt, "--timeout")) {
            cli_error(CMD, "%s: unknown option \"%s\"", sub, opt);
            return -1;
        }
        if (!(v = cli_value(CMD, argc, argv, &i)))
            return -1;
        if (strcmp(opt, "--suite") == 0)
            a->suite = v;
        else if (strcmp(opt, "--profile") == 0) {
            if (!*v) {
                cli_error(CMD, "%s: --profile: empty", sub);
                return -1;
            }
            a->profile = v;
        } else if (strcmp(opt, "--json") == 0)
            a->json = v;
        else if (strcmp(opt, "--junit") == 0)
            a->junit = v;
        else if (strcmp(opt, "--adapter") == 0) {
            if (a->n_adapters == MAX_ADAPTERS) {
                cli_error(CMD, "%s: more than %d adapters", sub, MAX_ADAPTERS);
                return -1;
            }
            a->adapters[a->n_adapters++] = v;
        } else {
            uint64_t ms = 0;
            if (conf_duration_parse(v, &ms) != 0) {
                cli_error(CMD, "%s: %s: \"%s\" is not a duration (like 30s, 500ms, 5m)", sub, opt, v);
                return -1;
            }
            if (strcmp(opt, "--deadline") == 0)
                a->ro.case_deadline_ms = ms;
            else
                a->ro.timeout_ms = ms;
        }
    }
    if (!a->suite) {
        cli_error(CMD, "%s: --suite FILE is required", sub);
        return -1;
    }
    return 0;
}

static int load_suite(const char *path, conf_suite **s)
{
    char err[600];
    if (conf_suite_load(path, s, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        return -1;
    }
    return 0;
}

static int cmd_list(int argc, char **argv)
{
    tck_args a;
    memset(&a, 0, sizeof a);
    if (parse_args("list", argc, argv, &a) < 0)
        return CLI_USAGE;
    if (a.n_adapters || a.json || a.junit) {
        cli_error(CMD, "list: takes only --suite and --profile");
        return CLI_USAGE;
    }
    conf_suite *s;
    if (load_suite(a.suite, &s) < 0)
        return CLI_USAGE;
    for (size_t i = 0; i < s->n; i++) {
        const conf_scenario *c = &s->scenarios[i];
        if (conf_suite_selects(c, a.profile))
            printf("%s\t%s\t%s\t%s\n", c->id, c->role, c->profile, c->required ? "required" : "optional");
    }
    conf_suite_free(s);
    return CLI_OK;
}

static int write_rendering(const char *path, int (*render)(const conf_report *, char **, size_t *),
                           const conf_report *r)
{
    char *buf = NULL;
    size_t len = 0;
    if (render(r, &buf, &len) != 0) {
        cli_error(CMD, "out of memory rendering the report");
        return -1;
    }
    int rc = cli_write_output(CMD, path, buf, len);
    free(buf);
    return rc;
}

/* Prints why a run is not conformant when nothing applied. */
static void explain_vacuous(const conf_report *r, const char *suite)
{
    conf_summary s;
    conf_report_summarize(r, &s);
    if (s.applicable)
        return;
    if (s.total == 0)
        cli_error(CMD, "adapter \"%s\": %s has no scenario of profile \"%s\": nothing was checked, "
                       "which is not conformant", r->adapter, suite, r->profile);
    else
        cli_error(CMD, "adapter \"%s\": none of the %zu scenario(s) of profile \"%s\" in %s applies to "
                       "role \"%s\": nothing was checked, which is not conformant",
                  r->adapter, s.total, r->profile, suite, r->role);
}

static int run_one(const tck_args *a, const conf_suite *s, const char *spec_text, int reports, int *conformant)
{
    conf_adapter_spec spec;
    char err[700];
    if (conf_adapter_spec_parse(spec_text, &spec, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        conf_adapter_spec_free(&spec);
        return CLI_USAGE;
    }
    conf_run_opts ro = a->ro;
    ro.temp_cwd = reports;
    conf_report *r = NULL;
    if (conf_run(s, a->profile, &spec, &ro, &r, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        conf_adapter_spec_free(&spec);
        *conformant = 0;
        return CLI_REJECTED;
    }
    conf_adapter_spec_free(&spec);
    int rc = CLI_OK;
    if (reports && a->json && write_rendering(a->json, conf_report_json, r) < 0)
        rc = CLI_REJECTED;
    if (reports && a->junit && write_rendering(a->junit, conf_report_junit, r) < 0)
        rc = CLI_REJECTED;
    char *line = NULL;
    if (conf_report_summary_line(r, &line) == 0) {
        fputs(line, stdout);
        fflush(stdout);
        free(line);
    }
    explain_vacuous(r, s->name);
    conf_summary sum;
    conf_report_summarize(r, &sum);
    *conformant = sum.conformant;
    conf_report_free(r);
    return rc;
}

static int cmd_run(int argc, char **argv, int matrix)
{
    const char *sub = matrix ? "matrix" : "run";
    tck_args a;
    memset(&a, 0, sizeof a);
    if (parse_args(sub, argc, argv, &a) < 0)
        return CLI_USAGE;
    if (!a.profile)
        a.profile = "core";
    if (a.n_adapters == 0 || (!matrix && a.n_adapters > 1)) {
        cli_error(CMD, "%s: %s", sub, matrix ? "at least one --adapter is required" : "exactly one --adapter is required");
        return CLI_USAGE;
    }
    if (matrix && (a.json || a.junit)) {
        cli_error(CMD, "matrix: writes no report files (use run for --json/--junit)");
        return CLI_USAGE;
    }
    if (a.json && a.junit && strcmp(a.json, "-") == 0 && strcmp(a.junit, "-") == 0) {
        cli_error(CMD, "run: --json and --junit cannot both go to standard output");
        return CLI_USAGE;
    }
    for (size_t i = 0; i < a.n_adapters; i++) {
        conf_adapter_spec spec;
        char err[600];
        int bad = conf_adapter_spec_parse(a.adapters[i], &spec, err, sizeof err);
        conf_adapter_spec_free(&spec);
        if (bad) {
            cli_error(CMD, "%s: %s", sub, err);
            return CLI_USAGE;
        }
    }
    conf_suite *s;
    if (load_suite(a.suite, &s) < 0)
        return CLI_USAGE;
    /* A dead adapter's pipe must not kill the runner. */
    signal(SIGPIPE, SIG_IGN);
    int all = 1, worst = CLI_OK;
    for (size_t i = 0; i < a.n_adapters; i++) {
        int ok = 0;
        int rc = run_one(&a, s, a.adapters[i], !matrix, &ok);
        if (rc == CLI_USAGE) {
            conf_suite_free(s);
            return CLI_USAGE;
        }
        if (rc != CLI_OK)
            worst = rc;
        if (!ok)
            all = 0;
    }
    conf_suite_free(s);
    if (worst != CLI_OK)
        return worst;
    return all ? CLI_OK : CLI_REJECTED;
}

int cmd_tck(int argc, char **argv)
{
    if (argc < 2) {
        fputs(HELP, stderr);
        return CLI_USAGE;
    }
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return CLI_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "run") == 0)
        return cmd_run(argc - 1, argv + 1, 0);
    if (strcmp(sub, "matrix") == 0)
        return cmd_run(argc - 1, argv + 1, 1);
    if (strcmp(sub, "list") == 0)
        return cmd_list(argc - 1, argv + 1);
    cli_error(CMD, "unknown subcommand \"%s\" (run, list, matrix)", sub);
    fputs(HELP, stderr);
    return CLI_USAGE;
}
