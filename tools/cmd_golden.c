/* capsim golden: list the golden-trace cases, check them against the
 * reference in the simulator, or re-record them (docs/golden.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "conf_golden.h"
#include "ref_bugs.h"

static const char GOLDEN_HELP[] =
    "usage: capsim golden --check|--update|--list [--dir DIR] [--case ID]... [--bug NAME]\n"
    "\n"
    "Golden-trace cases: each case directory holds case.yaml (the spec clauses it\n"
    "checks, the roles it certifies, a scenario and a seed) and golden.jsonl (the\n"
    "packets the reference publishes on that scenario in the simulator).\n"
    "\n"
    "  --check        re-run every case and compare with golden.jsonl record by\n"
    "                 record; on drift print the first differing record and a\n"
    "                 field-level diff\n"
    "  --update       re-record golden.jsonl (temporary file + rename)\n"
    "  --list         print id, roles, clauses and title of every case\n"
    "  --dir DIR      the case directory (default conformance/cases)\n"
    "  --case ID      only this case (repeatable)\n"
    "  --bug NAME     switch one known bug into the reference (capsim sim --list-bugs)\n"
    "\n"
    "exit: 0 ok, 1 drift, 2 usage, unreadable file or bad case file\n";

static void print_time(FILE *out, int64_t t)
{
    int64_t s = t / 1000000000, ns = t % 1000000000;
    if (ns < 0) {
        ns += 1000000000;
        s -= 1;
    }
    fprintf(out, "%" PRId64 ".%09" PRId64 "s", s, ns);
}

static void print_record(FILE *out, const char *what, const conf_golden_record *r)
{
    if (!r) {
        fprintf(out, "  %s: (no record)\n", what);
        return;
    }
    fprintf(out, "  %s: t=", what);
    print_time(out, r->time);
    fprintf(out, " %s -> %s: %s\n", r->sender[0] ? r->sender : "-", r->subject, r->label);
    fprintf(out, "    %s\n", r->json ? r->json : "(bytes do not decode)");
}

static int check_one(const conf_golden_case *c)
{
    conf_golden_result res;
    cap_yaml_diag yd;
    cap_diag d;
    memset(&d, 0, sizeof d);
    int rc = conf_golden_check(c, &res, &yd, &d);
    if (rc) {
        char buf[1024];
        if (yd.err)
            fprintf(stderr, "capsim golden: %s: %s\n", c->id,
                    cap_yaml_diag_format(&yd, c->scenario_path, buf, sizeof buf));
        else
            fprintf(stderr, "capsim golden: %s: %s\n", c->id, cap_diag_format(&d, buf, sizeof buf));
        return CLI_USAGE;
    }
    if (res.first_diff < 0) {
        printf("ok    %s (%zu records)\n", c->id, res.n_expected);
        conf_golden_result_free(&res);
        return CLI_OK;
    }
    size_t i = (size_t)res.first_diff;
    printf("DRIFT %s: first difference at record %zu (golden has %zu records, this run %zu)\n",
           c->id, i, res.n_expected, res.n_observed);
    print_record(stdout, "expected", i < res.n_expected ? &res.expected[i] : NULL);
    print_record(stdout, "observed", i < res.n_observed ? &res.observed[i] : NULL);
    printf("  diff:\n");
    for (size_t k = 0; k < res.n_diffs; k++)
        printf("    %s: %s -> %s\n", res.diffs[k].path, res.diffs[k].expected,
               res.diffs[k].observed);
    conf_golden_result_free(&res);
    return CLI_REJECTED;
}

static int update_one(const conf_golden_case *c)
{
    cap_yaml_diag yd;
    cap_diag d;
    memset(&d, 0, sizeof d);
    int rc = conf_golden_update(c, &yd, &d);
    char buf[1024];
    if (rc) {
        if (yd.err)
            fprintf(stderr, "capsim golden: %s: %s\n", c->id,
                    cap_yaml_diag_format(&yd, c->scenario_path, buf, sizeof buf));
        else
            fprintf(stderr, "capsim golden: %s: %s\n", c->id, cap_diag_format(&d, buf, sizeof buf));
        return CLI_USAGE;
    }
    conf_golden_record *recs = NULL;
    size_t n = 0;
    char hash[65];
    if (conf_golden_read_trace(c->golden_path, &recs, &n, hash, &d) != CAP_OK) {
        fprintf(stderr, "capsim golden: %s: %s\n", c->id, cap_diag_format(&d, buf, sizeof buf));
        return CLI_USAGE;
    }
    conf_golden_records_free(recs, n);
    printf("recorded %s: %zu records, sha256 %s\n", c->id, n, hash);
    return CLI_OK;
}

int cmd_golden(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(GOLDEN_HELP, stdout);
        return CLI_OK;
    }
    const char *dir = "conformance/cases";
    const char *mode = NULL;
    const char **only = calloc((size_t)argc + 1, sizeof *only);
    size_t n_only = 0;
    if (!only)
        return CLI_USAGE;
    int rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *o = argv[i];
        const char *v;
        if (!strcmp(o, "--check") || !strcmp(o, "--update") || !strcmp(o, "--list")) {
            if (mode && strcmp(mode, o) != 0) {
                cli_error("golden", "%s and %s exclude each other", mode, o);
                rc = CLI_USAGE;
            }
            mode = o;
        } else if (!strcmp(o, "--dir")) {
            if (!(v = cli_value("golden", argc, argv, &i)))
                rc = CLI_USAGE;
            else
                dir = v;
        } else if (!strcmp(o, "--case")) {
            if (!(v = cli_value("golden", argc, argv, &i)))
                rc = CLI_USAGE;
            else
                only[n_only++] = v;
        } else if (!strcmp(o, "--bug")) {
            if (!(v = cli_value("golden", argc, argv, &i))) {
                rc = CLI_USAGE;
            } else {
                int b = ref_bug_from_name(v);
                if (b < 0) {
                    cli_error("golden", "--bug %s: unknown (see capsim sim --list-bugs)", v);
                    rc = CLI_USAGE;
                } else {
                    ref_bug_set((ref_bug)b);
                }
            }
        } else {
            cli_error("golden", "unknown argument %s (see --help)", o);
            rc = CLI_USAGE;
        }
    }
    if (rc == CLI_OK && !mode) {
        cli_error("golden", "one of --check, --update, --list is required (see --help)");
        rc = CLI_USAGE;
    }
    if (rc != CLI_OK) {
        free(only);
        return rc;
    }
    conf_golden_case **cases = NULL;
    size_t n = 0;
    char *bad = NULL;
    cap_yaml_diag yd;
    if (conf_golden_load_dir(dir, &cases, &n, &bad, &yd) != CAP_OK) {
        char buf[1024];
        fprintf(stderr, "capsim golden: %s\n",
                cap_yaml_diag_format(&yd, bad ? bad : dir, buf, sizeof buf));
        free(bad);
        free(only);
        return CLI_USAGE;
    }
    for (size_t k = 0; k < n_only; k++) {
        size_t i = 0;
        while (i < n && strcmp(cases[i]->id, only[k]) != 0)
            i++;
        if (i == n) {
            cli_error("golden", "--case %s: no such case in %s", only[k], dir);
            rc = CLI_USAGE;
        }
    }
    size_t ran = 0, ok = 0, drift = 0;
    for (size_t i = 0; i < n && rc != CLI_USAGE; i++) {
        const conf_golden_case *c = cases[i];
        if (n_only) {
            size_t k = 0;
            while (k < n_only && strcmp(only[k], c->id) != 0)
                k++;
            if (k == n_only)
                continue;
        }
        ran++;
        if (!strcmp(mode, "--list")) {
            char roles[64];
            printf("%-28s %-17s ", c->id, conf_golden_roles_text(c->roles, roles, sizeof roles));
            for (size_t j = 0; j < c->n_clauses; j++)
                printf("%s%s", j ? ", " : "", c->clauses[j]);
            printf("  %s\n", c->title);
            continue;
        }
        int r = !strcmp(mode, "--check") ? check_one(c) : update_one(c);
        if (r == CLI_OK)
            ok++;
        else if (r == CLI_REJECTED)
            drift++;
        if (r == CLI_USAGE || (r == CLI_REJECTED && rc == CLI_OK))
            rc = r;
    }
    if (rc != CLI_USAGE && !strcmp(mode, "--check"))
        printf("%zu cases: %zu ok, %zu drift\n", ran, ok, drift);
    conf_golden_free_all(cases, n);
    free(only);
    return rc;
}
