/* capsim sim: run a scenario in the deterministic simulator, one seed or
 * many (one process per seed, on every core), and shrink a failing run. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "ref_bugs.h"
#include "run_json.h"
#include "run_junit.h"
#include "sim_scenario.h"
#include "sim_seeds.h"
#include "sim_story.h"
#include "sim_sweep.h"
#include "sim_world.h"

static const char SIM_HELP[] =
    "usage: capsim sim SCENARIO.yaml [--seed N | --seeds A..B] [options]\n"
    "\n"
    "Runs the scenario against the reference control plane in the deterministic\n"
    "simulator. One seed prints the seed and what it derives, a summary and the\n"
    "trace hash; the same seed always gives the same hash. Many seeds run one\n"
    "process per seed on every core and stop at the first invariant violation,\n"
    "which is then shrunk to a minimal reproduction: a scenario file that\n"
    "breaks the same invariant with plain `capsim sim FILE --seed N`.\n"
    "\n"
    "options:\n"
    "  --seed N            the seed (default: the scenario's)\n"
    "  --set PATH=VALUE    override a value of the scenario file, as if the\n"
    "                      file said so (repeatable, applied in order):\n"
    "                      --set workload.rate=800 --set workers[0].count=50\n"
    "                      --set 'bus.latency={dist: fixed, value: 5ms}'\n"
    "  --sweep PATH=[V1, V2, ...]\n"
    "                      run the scenario once per value (repeatable: every\n"
    "                      combination, at most 256), in parallel, and print\n"
    "                      their figures side by side: --sweep 'workload.rate=\n"
    "                      [100, 200, 400]' (one seed; not with --seeds)\n"
    "  --seeds A..B        every seed from A to B\n"
    "  --jobs N            processes at once for --seeds (default: the cores)\n"
    "  --each              --seeds: also print one line per seed (held or the\n"
    "                      invariant, and the trace hash), in finishing order\n"
    "  --trace FILE        write the binary trace\n"
    "  --jsonl FILE        write the JSONL trace\n"
    "  --json FILE|-       also write the report as one JSON document (with\n"
    "                      --seeds: the outcome); with -, standard output\n"
    "                      carries the JSON alone and the text goes to stderr\n"
    "  --junit FILE|-      also write the outcome as JUnit XML for a CI server:\n"
    "                      a testcase per invariant (with --sweep, a suite per\n"
    "                      variant); - as for --json (not both)\n"
    "  --history JOB       one seed: also tell every step of the run that\n"
    "                      concerns job JOB, as it happens (without it, a\n"
    "                      violation is followed by the story of its job)\n"
    "  --bug NAME          switch one known bug into the reference (see --list-bugs)\n"
    "  --list-bugs         print the known bugs\n"
    "  --max-jobs N        submit at most N jobs           (run knobs; the shrinker\n"
    "  --duration D        run the load for D (e.g. 30s)    writes them into the\n"
    "  --skip-event I      leave timeline event I out       shrunk scenario)\n"
    "  --workers-limit N   at most N workers per spec\n"
    "  --no-shrink         report a violation without shrinking it\n"
    "  --shrink-out FILE   write the shrunk scenario here (default:\n"
    "                      NAME-seedN-shrunk.yaml in the current directory)\n"
    "\n"
    "exit: 0 every invariant held, 1 a violation, 2 usage or a bad scenario\n";

typedef struct {
    sim_run_config rc;
    unsigned char *skip;
} knobs;

static int run_quiet(void *ctx, uint64_t seed, sim_result *res, cap_diag *d)
{
    const knobs *k = ctx;
    sim_run_config c = k->rc;
    c.seed = seed;
    c.trace_bin = c.trace_jsonl = NULL;
    c.skip_event = k->skip;
    return sim_run(&c, res, d);
}

/* A file name for the shrunk scenario: <name>-seed<N>-shrunk.yaml, the
 * name's characters outside [A-Za-z0-9._-] replaced by '_'. */
static void default_out(const sim_scenario *scn, uint64_t seed, char *buf, size_t n)
{
    char name[120];
    size_t k = 0;
    for (const char *c = scn->name ? scn->name : "scenario"; *c && k + 1 < sizeof name; c++)
        name[k++] = (strchr("._-", *c) || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                     (*c >= 'A' && *c <= 'Z'))
                        ? *c
                        : '_';
    name[k] = 0;
    snprintf(buf, n, "%s-seed%" PRIu64 "-shrunk.yaml", name[0] == '.' ? "scenario" : name, seed);
}

/* Shrinks a failing run to `out` (NULL: the default name in the current
 * directory, kept in def, def_n bytes). *written is the file written, or
 * NULL. */
static int shrink(const sim_scenario *scn, const knobs *k, uint64_t seed, const sim_result *first,
                  const char *out, char *def, size_t def_n, const char **written)
{
    if (!out) {
        default_out(scn, seed, def, def_n);
        out = def;
    }
    sim_run_config kn = k->rc;
    kn.skip_event = k->skip;
    int rc = seeds_shrink("sim", scn, &kn, seed, first, out);
    *written = rc == CLI_REJECTED ? out : NULL;
    return rc;
}

/* --junit: the sets' JUnit report written to junit (as cli_docs_write). */
static int junit_write(const char *junit, int doc_fd, const run_junit_set *sets, size_t n, int rc)
{
    char *doc = NULL;
    size_t len = 0;
    int made = run_junit("sim", sets, n, ref_bug_current_name(), &doc, &len);
    rc = cli_docs_write("sim", "--junit", junit, doc_fd, doc, len, made, rc);
    return rc;
}

/* --junit with --sweep: a set per variant, labelled with its own
 * overrides (one per axis). */
static int junit_sweep(const char *junit, int doc_fd, const sweep_variants *v,
                       const sweep_axis *axes, uint64_t seed, int rc)
{
    run_junit_set *sets = calloc(v->n, sizeof *sets);
    char **labels = calloc(v->n, sizeof *labels);
    int ok = sets && labels;
    for (size_t i = 0; ok && i < v->n; i++) {
        size_t len = 0;
        FILE *m = open_memstream(&labels[i], &len);
        if (!m) {
            ok = 0;
            break;
        }
        for (size_t a = 0; a < v->n_axes; a++)
            fprintf(m, "%s%s", a ? ", " : "", axes[a].sets[v->pick[i * v->n_axes + a]]);
        ok = fclose(m) == 0;
        sets[i] = run_junit_scenario_set(v->scn[i]);
        sets[i].label = labels[i];
        sets[i].from = sets[i].to = sets[i].seed = seed;
        sets[i].ran = 1;
        sets[i].res = &v->res[i];
    }
    if (ok) {
        rc = junit_write(junit, doc_fd, sets, v->n, rc);
    } else {
        cli_error("sim", "--junit: %s", cap_strerror(CAP_ENOMEM));
        rc = CLI_USAGE;
    }
    for (size_t i = 0; labels && i < v->n; i++)
        free(labels[i]);
    free(labels);
    free(sets);
    return rc;
}

/* cmd_sim, with the --sweep axes it reads kept in axes (the caller frees
 * them whatever happens). */
static int sim_main(int argc, char **argv, sweep_axis *axes, size_t *n_axes_out)
{
    if (argc < 2 || cli_wants_help(argc, argv)) {
        fputs(SIM_HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *path = NULL, *trace = NULL, *jsonl = NULL, *seeds = NULL, *shrink_out = NULL,
               *history = NULL, *json = NULL, *junit = NULL;
    uint64_t seed = 0;
    int have_seed = 0, do_shrink = 1, each = 0;
    long jobs = sysconf(_SC_NPROCESSORS_ONLN);
    knobs k;
    memset(&k, 0, sizeof k);
    size_t skips[256];
    size_t n_skips = 0;
    const char *sets[SIM_SCENARIO_MAX_SETS];
    size_t n_sets = 0;
    size_t n_axes = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = NULL;
        char *end;
        if (strcmp(o, "--list-bugs") == 0) {
            for (int b = 1; b < REF_BUG_COUNT; b++)
                printf("%-26s %s\n", ref_bug_name(b), ref_bug_describe(b));
            return CLI_OK;
        } else if (strcmp(o, "--no-shrink") == 0) {
            do_shrink = 0;
        } else if (strcmp(o, "--each") == 0) {
            each = 1;
        } else if (o[0] == '-' && o[1] == '-') {
            if (!(v = cli_value("sim", argc, argv, &i)))
                return CLI_USAGE;
            if (strcmp(o, "--seed") == 0) {
                errno = 0;
                seed = strtoull(v, &end, 10);
                if (errno || end == v || *end) {
                    cli_error("sim", "--seed %s: not a number", v);
                    return CLI_USAGE;
                }
                have_seed = 1;
            } else if (strcmp(o, "--seeds") == 0) {
                seeds = v;
            } else if (strcmp(o, "--set") == 0) {
                if (n_sets == SIM_SCENARIO_MAX_SETS) {
                    cli_error("sim", "--set: at most %d", SIM_SCENARIO_MAX_SETS);
                    return CLI_USAGE;
                }
                sets[n_sets++] = v;
            } else if (strcmp(o, "--sweep") == 0) {
                char err[300];
                if (n_axes == SIM_SWEEP_MAX_AXES) {
                    cli_error("sim", "--sweep: at most %d", SIM_SWEEP_MAX_AXES);
                    return CLI_USAGE;
                }
                if (sweep_axis_parse(v, &axes[n_axes], err, sizeof err) != 0) {
                    cli_error("sim", "--sweep %s: %s", v, err);
                    return CLI_USAGE;
                }
                *n_axes_out = ++n_axes;
            } else if (strcmp(o, "--jobs") == 0) {
                jobs = strtol(v, &end, 10);
                if (*end || jobs < 1 || jobs > 256) {
                    cli_error("sim", "--jobs %s: want 1..256", v);
                    return CLI_USAGE;
                }
            } else if (strcmp(o, "--trace") == 0) {
                trace = v;
            } else if (strcmp(o, "--jsonl") == 0) {
                jsonl = v;
            } else if (strcmp(o, "--json") == 0) {
                json = v;
            } else if (strcmp(o, "--junit") == 0) {
                junit = v;
            } else if (strcmp(o, "--history") == 0) {
                history = v;
            } else if (strcmp(o, "--shrink-out") == 0) {
                shrink_out = v;
            } else if (strcmp(o, "--bug") == 0) {
                int b = ref_bug_from_name(v);
                if (b < 0) {
                    cli_error("sim", "--bug %s: unknown (see --list-bugs)", v);
                    return CLI_USAGE;
                }
                ref_bug_set((ref_bug)b);
            } else if (strcmp(o, "--max-jobs") == 0) {
                k.rc.max_jobs = strtoull(v, &end, 10);
                if (*end || !k.rc.max_jobs) {
                    cli_error("sim", "--max-jobs %s: want a positive number", v);
                    return CLI_USAGE;
                }
            } else if (strcmp(o, "--duration") == 0) {
                if (sim_parse_duration(v, &k.rc.duration_ns) || k.rc.duration_ns <= 0) {
                    cli_error("sim", "--duration %s: not a duration", v);
                    return CLI_USAGE;
                }
            } else if (strcmp(o, "--skip-event") == 0) {
                unsigned long x = strtoul(v, &end, 10);
                if (*end || n_skips >= 256) {
                    cli_error("sim", "--skip-event %s: want an event index", v);
                    return CLI_USAGE;
                }
                skips[n_skips++] = x;
            } else if (strcmp(o, "--workers-limit") == 0) {
                k.rc.workers_limit = (uint32_t)strtoul(v, &end, 10);
                if (*end || !k.rc.workers_limit) {
                    cli_error("sim", "--workers-limit %s: want a positive number", v);
                    return CLI_USAGE;
                }
            } else {
                cli_error("sim", "unknown option %s (see --help)", o);
                return CLI_USAGE;
            }
        } else if (!path) {
            path = o;
        } else {
            cli_error("sim", "one scenario at a time (got %s and %s)", path, o);
            return CLI_USAGE;
        }
    }
    if (!path) {
        cli_error("sim", "a scenario file is required");
        return CLI_USAGE;
    }
    if (cli_docs_check("sim", json, junit) != 0)
        return CLI_USAGE;
    if (history && seeds) {
        cli_error("sim", "--history tells one run: give --seed, not --seeds");
        return CLI_USAGE;
    }
    if (n_axes && (seeds || trace || jsonl || history || shrink_out || n_skips || each)) {
        cli_error("sim", "--sweep runs each variant once, with one seed: it does not take %s",
                  seeds ? "--seeds" : trace ? "--trace" : jsonl ? "--jsonl" : history ? "--history"
                  : shrink_out ? "--shrink-out" : n_skips ? "--skip-event" : "--each");
        return CLI_USAGE;
    }
    if (history && (!history[0] || strlen(history) > SIM_STORY_MAX_ID)) {
        cli_error("sim", "--history: want a job id of 1 to %d bytes", SIM_STORY_MAX_ID);
        return CLI_USAGE;
    }
    sim_scenario *scn = NULL;
    cap_yaml_diag yd;
    if (sim_scenario_load_with(path, sets, n_sets, &scn, &yd) != CAP_OK) {
        if (yd.origin > 0 && (size_t)yd.origin <= n_sets) {
            char label[32 + 4096];
            snprintf(label, sizeof label, "--set %s", sets[yd.origin - 1]);
            sim_set_error(label, &yd);
        } else {
            char buf[1024];
            fprintf(stderr, "capsim sim: %s\n", cap_yaml_diag_format(&yd, path, buf, sizeof buf));
        }
        return CLI_USAGE;
    }
    k.skip = calloc(scn->n_timeline + 1, 1);
    if (!k.skip) {
        sim_scenario_free(scn);
        return CLI_USAGE;
    }
    for (size_t i = 0; i < n_skips; i++) {
        if (skips[i] >= scn->n_timeline) {
            cli_error("sim", "--skip-event %zu: the scenario has %zu timeline events", skips[i],
                      scn->n_timeline);
            free(k.skip);
            sim_scenario_free(scn);
            return CLI_USAGE;
        }
        k.skip[skips[i]] = 1;
    }
    /* With --json - (or --junit -), what the command prints for people goes
     * to standard error, so that standard output carries the document alone. */
    int doc_fd = -1;
    if (cli_docs_open("sim", json, junit, &doc_fd) != 0) {
        free(k.skip);
        sim_scenario_free(scn);
        return CLI_USAGE;
    }
    int rc;
    if (n_axes) {
        uint64_t s = have_seed ? seed : scn->seed;
        sweep_variants vs;
        k.rc.skip_event = k.skip;
        if (sweep_load(path, sets, n_sets, axes, n_axes, &vs) != 0) {
            rc = CLI_USAGE;
        } else {
            if (sweep_run(&vs, &k.rc, s, jobs) != 0)
                rc = CLI_USAGE;
            else
                rc = sweep_print(&vs, axes, s, path, stdout) ? CLI_REJECTED : CLI_OK;
            if (json && rc != CLI_USAGE) {
                char *doc = NULL;
                size_t len = 0;
                int made = run_json_sweep(scn, axes, &vs, s, ref_bug_current_name(), &doc, &len);
                rc = cli_docs_write("sim", "--json", json, doc_fd, doc, len, made, rc);
            }
            if (junit && rc != CLI_USAGE)
                rc = junit_sweep(junit, doc_fd, &vs, axes, s, rc);
            sweep_variants_free(&vs);
        }
    } else if (seeds) {
        uint64_t a, b, failed = 0, ran = 0;
        sim_result *res = malloc(sizeof *res);
        k.rc.scn = scn;
        if (seeds_parse_range(seeds, &a, &b) < 0) {
            cli_error("sim", "--seeds %s: want A..B (A <= B)", seeds);
            rc = CLI_USAGE;
        } else if (!res) {
            rc = CLI_USAGE;
        } else {
            seed_runs runs;
            int r = seeds_run("sim", run_quiet, &k, a, b, jobs, each, &failed, res, &ran, &runs);
            char def[200];
            const char *shrunk = NULL;
            rc = r == 0   ? CLI_OK
                 : r < 0  ? CLI_USAGE
                 : do_shrink ? shrink(scn, &k, failed, res, shrink_out, def, sizeof def, &shrunk)
                             : CLI_REJECTED;
            if (json && r >= 0) {
                run_json_seeds_outcome o = {a, b, ran, r == 1, failed, res, shrunk, &runs};
                char *doc = NULL;
                size_t len = 0;
                int made = run_json_seeds(scn, &o, ref_bug_current_name(), &doc, &len);
                rc = cli_docs_write("sim", "--json", json, doc_fd, doc, len, made, rc);
            }
            if (junit && r >= 0) {
                run_junit_set set = run_junit_scenario_set(scn);
                set.from = a;
                set.to = b;
                set.ran = ran;
                set.res = r == 1 ? res : NULL;
                set.seed = failed;
                set.shrunk = shrunk;
                rc = junit_write(junit, doc_fd, &set, 1, rc);
            }
            free(runs.v);
        }
        free(res);
    } else {
        FILE *tb = trace ? fopen(trace, "wb") : NULL, *tj = jsonl ? fopen(jsonl, "wb") : NULL;
        if ((trace && !tb) || (jsonl && !tj)) {
            cli_error("sim", "cannot write %s: %s", trace && !tb ? trace : jsonl, strerror(errno));
            rc = CLI_USAGE;
        } else {
            sim_result *res = malloc(sizeof *res);
            k.rc.scn = scn;
            k.rc.seed = have_seed ? seed : scn->seed;
            k.rc.trace_bin = tb;
            k.rc.trace_jsonl = tj;
            k.rc.skip_event = k.skip;
            k.rc.history_job = history;
            cap_diag d;
            memset(&d, 0, sizeof d);
            if (history)
                printf("history of %s (seed %" PRIu64 "):\n", history, k.rc.seed);
            fflush(stdout);
            int r = res ? sim_run(&k.rc, res, &d) : CAP_ENOMEM;
            if (r != CAP_OK) {
                cli_diag("sim", path, &d);
                rc = CLI_USAGE;
            } else {
                if (history && !res->history_lines)
                    printf("(no step of this run concerns %s: the gateway numbers its jobs "
                           "job-1, job-2, ...)\n",
                           history);
                if (history)
                    putchar('\n');
                sim_result_print(&k.rc, res, stdout);
                rc = res->violated ? CLI_REJECTED : CLI_OK;
                if (res->violated && !history && res->job_id[0])
                    rc = seeds_tell_story("sim", &k.rc, res, rc);
                char def[200];
                const char *shrunk = NULL;
                if (res->violated && do_shrink && rc == CLI_REJECTED)
                    rc = shrink(scn, &k, k.rc.seed, res, shrink_out, def, sizeof def, &shrunk);
                if (json) {
                    char *doc = NULL;
                    size_t len = 0;
                    int made = run_json_one(&k.rc, res, ref_bug_current_name(), shrunk, &doc, &len);
                    rc = cli_docs_write("sim", "--json", json, doc_fd, doc, len, made, rc);
                }
                if (junit) {
                    run_junit_set set = run_junit_scenario_set(scn);
                    set.from = set.to = set.seed = k.rc.seed;
                    set.ran = 1;
                    set.res = res;
                    set.shrunk = shrunk;
                    rc = junit_write(junit, doc_fd, &set, 1, rc);
                }
            }
            free(res);
        }
        if (tb && fclose(tb) != 0)
            rc = CLI_USAGE;
        if (tj && fclose(tj) != 0)
            rc = CLI_USAGE;
    }
    cli_docs_close(doc_fd);
    free(k.skip);
    sim_scenario_free(scn);
    return rc;
}

int cmd_sim(int argc, char **argv)
{
    sweep_axis axes[SIM_SWEEP_MAX_AXES];
    size_t n_axes = 0;
    int rc = sim_main(argc, argv, axes, &n_axes);
    for (size_t i = 0; i < n_axes; i++)
        sweep_axis_free(&axes[i]);
    return rc;
}
