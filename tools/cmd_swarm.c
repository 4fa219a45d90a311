/* capsim swarm: a random scenario per seed (sim/sim_swarm), written to a
 * directory and run against the reference with every invariant checked;
 * a violation is shrunk to a minimal scenario (docs/swarm.md). */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "ref_bugs.h"
#include "run_json.h"
#include "run_junit.h"
#include "sim_scenario.h"
#include "sim_seeds.h"
#include "sim_swarm.h"
#include "sim_world.h"

static const char SWARM_HELP[] =
    "usage: capsim swarm [--seeds A..B | --seed N] [options]\n"
    "\n"
    "Draws a whole scenario from every seed: workers and how they fail, the\n"
    "workload, the scheduler's settings, signing, an approver, safety policies\n"
    "of its own and a fault timeline (crashes and restarts, partitions, bus\n"
    "duplicates, loss, delays, reordering, corruption, replays, clock skew,\n"
    "policy changes, cancels, conflicting twins). Each seed's files go to\n"
    "OUT/seed-N/ (scenario.yaml and its policies) and the scenario runs with\n"
    "that seed against the reference, every invariant checked. The first\n"
    "violation is shrunk to OUT/seed-N/shrunk.yaml, which reproduces it with\n"
    "plain `capsim sim`. The files of seeds that held are removed.\n"
    "\n"
    "options:\n"
    "  --seeds A..B   the seeds (default 1..100)\n"
    "  --seed N       one seed: write its files, run it, print the summary\n"
    "  --generate     with --seed: write the files and print their path only\n"
    "  --out DIR      where the files go (default swarm-out)\n"
    "  --jobs N       processes at once for --seeds (default: the cores)\n"
    "  --each         --seeds: also print a line per seed, in finishing order\n"
    "  --keep         keep the files of seeds that held too\n"
    "  --bug NAME     switch one known bug into the reference (capsim sim --list-bugs)\n"
    "  --no-shrink    report a violation without shrinking it\n"
    "  --json FILE|-  also write the outcome as JSON (with --seed: that run's\n"
    "                 report, as capsim sim --json writes it); - puts it alone\n"
    "                 on standard output and the text on standard error\n"
    "  --junit FILE|- also write the outcome as JUnit XML for a CI server: a\n"
    "                 testcase per invariant, a violation as the failure of its\n"
    "                 invariant with the commands that reproduce it\n"
    "\n"
    "exit: 0 every invariant held, 1 a violation, 2 usage or an error\n";

typedef struct {
    const char *out;
    int keep;
    const char *json, *junit; /* the report documents asked for, NULL */
    int doc_fd;               /* standard output while one of them goes there (cli_docs_open) */
} swarm_opts;

#define SWARM_CMD "swarm"

static void seed_dir(const swarm_opts *o, uint64_t seed, char *buf, size_t n)
{
    snprintf(buf, n, "%s/seed-%" PRIu64, o->out, seed);
}

/* A file of seed's: OUT/seed-N/NAME. */
static void seed_file(const swarm_opts *o, uint64_t seed, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/seed-%" PRIu64 "/%s", o->out, seed, name);
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST)
        return 0;
    cli_error(SWARM_CMD, "cannot create %s: %s", path, strerror(errno));
    return -1;
}

/* Writes seed's case into its directory; *path gets the scenario's. */
static int write_case(const swarm_opts *o, uint64_t seed, const sim_swarm_case *c, char *path,
                      size_t n)
{
    char dir[900], file[1000];
    seed_dir(o, seed, dir, sizeof dir);
    if (make_dir(o->out) || make_dir(dir))
        return -1;
    for (size_t k = 0; k < c->n_policies; k++) {
        char name[64];
        snprintf(name, sizeof name, SIM_SWARM_POLICY_FILE, k);
        snprintf(file, sizeof file, "%s/%s", dir, name);
        if (cli_write_output(SWARM_CMD, file, c->policy[k], c->policy_len[k]))
            return -1;
    }
    seed_file(o, seed, "scenario.yaml", path, n);
    return cli_write_output(SWARM_CMD, path, c->scenario, c->scenario_len);
}

/* Removes what write_case wrote (a seed that held). */
static void remove_case(const swarm_opts *o, uint64_t seed)
{
    char dir[900], file[1000];
    seed_dir(o, seed, dir, sizeof dir);
    for (size_t k = 0; k < SIM_SWARM_MAX_POLICIES; k++) {
        char name[64];
        snprintf(name, sizeof name, SIM_SWARM_POLICY_FILE, k);
        snprintf(file, sizeof file, "%s/%s", dir, name);
        unlink(file);
    }
    seed_file(o, seed, "scenario.yaml", file, sizeof file);
    unlink(file);
    rmdir(dir);
}

/* Draws seed's case, writes it and loads the scenario back from the
 * files, as `capsim sim` would. A drawn scenario that does not load is a
 * bug of the generator: said so, with the loader's reason. */
static int load_case(const swarm_opts *o, uint64_t seed, sim_scenario **scn, char *path, size_t n)
{
    sim_swarm_case c;
    if (sim_swarm_generate(seed, &c) != CAP_OK)
        return CAP_ENOMEM;
    int w = write_case(o, seed, &c, path, n);
    sim_swarm_case_free(&c);
    if (w)
        return CAP_EIO;
    cap_yaml_diag yd;
    int rc = sim_scenario_load(path, scn, &yd);
    if (rc != CAP_OK) {
        char buf[1024];
        cli_error(SWARM_CMD, "the scenario drawn from seed %" PRIu64 " does not load: %s", seed,
                  cap_yaml_diag_format(&yd, path, buf, sizeof buf));
    }
    return rc;
}

/* seeds_run's runner: one seed, its files removed when it held. */
static int run_seed(void *ctx, uint64_t seed, sim_result *res, cap_diag *d)
{
    const swarm_opts *o = ctx;
    sim_scenario *scn = NULL;
    char path[1000];
    int rc = load_case(o, seed, &scn, path, sizeof path);
    if (rc != CAP_OK)
        return rc;
    sim_run_config c;
    memset(&c, 0, sizeof c);
    c.scn = scn;
    c.seed = seed;
    rc = sim_run(&c, res, d);
    if (rc != CAP_OK) { /* the reason names the drawn file (kept: it did not hold) */
        char where[sizeof d->path + sizeof path + 2];
        snprintf(where, sizeof where, "%s%s%s", path, d->path[0] ? ": " : "", d->path);
        size_t n = strnlen(where, sizeof d->path - 1);
        memcpy(d->path, where, n);
        d->path[n] = 0;
    }
    sim_scenario_free(scn);
    if (rc == CAP_OK && !res->violated && !o->keep)
        remove_case(o, seed);
    return rc;
}

/* Shrinks seed's violation into OUT/seed-N/shrunk.yaml, whose path goes
 * to shrunk (n bytes) when it was written, "" otherwise. */
static int shrink_seed(const swarm_opts *o, uint64_t seed, const sim_result *res, char *shrunk,
                       size_t n)
{
    sim_scenario *scn = NULL;
    char path[1000], out[1000];
    shrunk[0] = 0;
    if (load_case(o, seed, &scn, path, sizeof path) != CAP_OK)
        return CLI_USAGE;
    seed_file(o, seed, "shrunk.yaml", out, sizeof out);
    printf("the drawn scenario: %s\n", path);
    int rc = seeds_shrink(SWARM_CMD, scn, NULL, seed, res, out);
    sim_scenario_free(scn);
    if (rc == CLI_REJECTED)
        snprintf(shrunk, n, "%s", out);
    return rc;
}

/* --junit: the report of one set (the swarm's seeds, or one seed). */
static int write_junit(const swarm_opts *o, run_junit_set *set, int rc)
{
    char *doc = NULL;
    size_t len = 0;
    set->name = NULL; /* the suite is capsim.swarm: each seed's scenario is its own */
    set->out = o->out;
    int made = run_junit(SWARM_CMD, set, 1, ref_bug_current_name(), &doc, &len);
    return cli_docs_write(SWARM_CMD, "--junit", o->junit, o->doc_fd, doc, len, made, rc);
}

/* --json and --junit of a --seeds run: its outcome oc (a violation's
 * seed drew the scenario file OUT/seed-N/scenario.yaml). */
static int seeds_docs(const swarm_opts *o, const run_json_seeds_outcome *oc, int rc)
{
    char drawn[1000];
    seed_file(o, oc->seed, "scenario.yaml", drawn, sizeof drawn);
    if (o->json) {
        char *doc = NULL;
        size_t len = 0;
        int made = run_json_swarm(o->out, oc, oc->violated ? drawn : NULL, ref_bug_current_name(),
                                  &doc, &len);
        rc = cli_docs_write(SWARM_CMD, "--json", o->json, o->doc_fd, doc, len, made, rc);
    }
    if (o->junit) {
        run_junit_set set;
        memset(&set, 0, sizeof set);
        set.scenario = oc->violated ? drawn : NULL;
        set.invariants = SIM_INV_ALL; /* every drawn scenario checks all (tests/test_swarm.c) */
        set.from = oc->from;
        set.to = oc->to;
        set.ran = oc->ran;
        set.res = oc->violated ? oc->res : NULL;
        set.seed = oc->seed;
        set.shrunk = oc->shrunk;
        rc = write_junit(o, &set, rc);
    }
    return rc;
}

/* --json and --junit of --seed N: the run c of the drawn scenario. */
static int one_seed_docs(const swarm_opts *o, const sim_run_config *c, const sim_result *res,
                         const char *shrunk, int rc)
{
    if (o->json) {
        char *doc = NULL;
        size_t len = 0;
        int made = run_json_one(c, res, ref_bug_current_name(), shrunk, &doc, &len);
        rc = cli_docs_write(SWARM_CMD, "--json", o->json, o->doc_fd, doc, len, made, rc);
    }
    if (o->junit) {
        run_junit_set set = run_junit_scenario_set(c->scn);
        set.from = set.to = set.seed = c->seed;
        set.ran = 1;
        set.res = res;
        set.shrunk = shrunk;
        rc = write_junit(o, &set, rc);
    }
    return rc;
}

/* --seed N: one seed, its files kept, the full summary printed. */
static int one_seed(const swarm_opts *o, uint64_t seed, int generate_only, int do_shrink)
{
    sim_scenario *scn = NULL;
    char path[1000];
    if (load_case(o, seed, &scn, path, sizeof path) != CAP_OK)
        return CLI_USAGE;
    printf("the drawn scenario: %s\n", path);
    if (generate_only) {
        printf("run it with: capsim sim %s --seed %" PRIu64 "\n", path, seed);
        sim_scenario_free(scn);
        return CLI_OK;
    }
    sim_run_config c;
    memset(&c, 0, sizeof c);
    c.scn = scn;
    c.seed = seed;
    sim_result *res = malloc(sizeof *res);
    cap_diag d;
    memset(&d, 0, sizeof d);
    int r = res ? sim_run(&c, res, &d) : CAP_ENOMEM;
    int rc;
    if (r != CAP_OK) {
        cli_diag(SWARM_CMD, path, &d);
        rc = CLI_USAGE;
    } else {
        sim_result_print(&c, res, stdout);
        rc = res->violated ? CLI_REJECTED : CLI_OK;
        if (res->violated && res->job_id[0])
            rc = seeds_tell_story(SWARM_CMD, &c, res, rc);
        char shrunk[1000] = "";
        if (res->violated && do_shrink && rc == CLI_REJECTED)
            rc = shrink_seed(o, seed, res, shrunk, sizeof shrunk);
        rc = one_seed_docs(o, &c, res, shrunk[0] ? shrunk : NULL, rc);
    }
    free(res);
    sim_scenario_free(scn);
    return rc;
}

int cmd_swarm(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(SWARM_HELP, stdout);
        return CLI_OK;
    }
    swarm_opts o = {.out = "swarm-out", .doc_fd = -1};
    const char *seeds = "1..100";
    uint64_t seed = 0;
    int have_seed = 0, generate = 0, each = 0, do_shrink = 1;
    long jobs = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        char *end;
        if (strcmp(a, "--generate") == 0) {
            generate = 1;
        } else if (strcmp(a, "--each") == 0) {
            each = 1;
        } else if (strcmp(a, "--keep") == 0) {
            o.keep = 1;
        } else if (strcmp(a, "--no-shrink") == 0) {
            do_shrink = 0;
        } else if (strncmp(a, "--", 2) == 0) {
            if (!(v = cli_value(SWARM_CMD, argc, argv, &i)))
                return CLI_USAGE;
            if (strcmp(a, "--seeds") == 0) {
                seeds = v;
            } else if (strcmp(a, "--seed") == 0) {
                errno = 0;
                seed = strtoull(v, &end, 10);
                if (errno || end == v || *end || v[0] == '-') {
                    cli_error(SWARM_CMD, "--seed %s: not a number", v);
                    return CLI_USAGE;
                }
                have_seed = 1;
            } else if (strcmp(a, "--json") == 0) {
                o.json = v;
            } else if (strcmp(a, "--junit") == 0) {
                o.junit = v;
            } else if (strcmp(a, "--out") == 0) {
                if (!v[0]) {
                    cli_error(SWARM_CMD, "--out: an empty directory name");
                    return CLI_USAGE;
                }
                o.out = v;
            } else if (strcmp(a, "--jobs") == 0) {
                jobs = strtol(v, &end, 10);
                if (*end || jobs < 1 || jobs > 256) {
                    cli_error(SWARM_CMD, "--jobs %s: want 1..256", v);
                    return CLI_USAGE;
                }
            } else if (strcmp(a, "--bug") == 0) {
                int b = ref_bug_from_name(v);
                if (b < 0) {
                    cli_error(SWARM_CMD, "--bug %s: unknown (see capsim sim --list-bugs)", v);
                    return CLI_USAGE;
                }
                ref_bug_set((ref_bug)b);
            } else {
                cli_error(SWARM_CMD, "unknown option %s (see --help)", a);
                return CLI_USAGE;
            }
        } else {
            cli_error(SWARM_CMD, "unexpected argument %s (see --help)", a);
            return CLI_USAGE;
        }
    }
    if (generate && !have_seed) {
        cli_error(SWARM_CMD, "--generate goes with --seed N");
        return CLI_USAGE;
    }
    if (generate && (o.json || o.junit)) {
        cli_error(SWARM_CMD, "--generate runs nothing: it writes no %s", o.json ? "--json" : "--junit");
        return CLI_USAGE;
    }
    uint64_t a = seed, b = seed;
    if (!have_seed && seeds_parse_range(seeds, &a, &b) < 0) {
        cli_error(SWARM_CMD, "--seeds %s: want A..B (A <= B)", seeds);
        return CLI_USAGE;
    }
    /* With --json - (or --junit -), the text goes to standard error. */
    if (cli_docs_open(SWARM_CMD, o.json, o.junit, &o.doc_fd) != 0)
        return CLI_USAGE;
    int rc;
    if (have_seed) {
        rc = one_seed(&o, seed, generate, do_shrink);
    } else {
        sim_result *res = malloc(sizeof *res);
        uint64_t failed = 0, ran = 0;
        seed_runs runs = {NULL, 0};
        int r = res ? seeds_run(SWARM_CMD, run_seed, &o, a, b, jobs, each, &failed, res, &ran, &runs)
                    : -1;
        if (r == 0 && !o.keep)
            rmdir(o.out); /* every seed held: nothing was kept (a directory with files stays) */
        char shrunk[1000] = "";
        rc = r == 0      ? CLI_OK
             : r < 0     ? CLI_USAGE
             : do_shrink ? shrink_seed(&o, failed, res, shrunk, sizeof shrunk)
                         : CLI_REJECTED;
        if (r >= 0) {
            run_json_seeds_outcome oc = {a, b, ran, r == 1, failed, res, shrunk[0] ? shrunk : NULL,
                                         &runs};
            rc = seeds_docs(&o, &oc, rc);
        }
        free(runs.v);
        free(res);
    }
    cli_docs_close(o.doc_fd);
    return rc;
}
