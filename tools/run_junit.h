/* capsim sim --junit and capsim swarm --junit: the outcome of a simulated
 * run (one seed, a range of seeds, every variant of a sweep, or a swarm's
 * seeds, each drawing its own scenario) as JUnit XML, the report CI servers
 * display (docs/simulator.md "JUnit report", docs/swarm.md).
 *
 * One <testsuite> per scenario run set (a sweep: one per variant), one
 * <testcase> per invariant it checks, in the order docs/scenarios.md lists
 * them, then "journal" (the checker's own reading of the scheduler's
 * journal, checked in every run). A broken invariant is a <failure> that
 * names the seed, the job, the virtual time and what the checker saw, with
 * the command that reproduces it; since a violation stops its run, the
 * other invariants of that set are <skipped> (they held up to that moment,
 * but were not checked to the end). No wall-clock time is written: the
 * same runs give the same bytes. */
#ifndef CAP_RUN_JUNIT_H
#define CAP_RUN_JUNIT_H

#include <stddef.h>
#include <stdint.h>

#include "sim_scenario.h"
#include "sim_world.h"

typedef struct {
    const char *name;          /* the suite's name after "capsim.CMD.": the scenario's name
                                * (capsim sim), NULL for none (capsim swarm) */
    const char *label;         /* what tells this set from the others (a sweep variant's own
                                * overrides), NULL */
    const char *scenario;      /* the scenario file run, and the one the reproduce command
                                * names; NULL when there is none to name (a swarm that held) */
    unsigned invariants;       /* SIM_INV_* bits checked */
    char *const *sets;         /* the overrides the run was given (--set), n_sets of them */
    size_t n_sets;
    uint64_t from, to;         /* the seeds asked for (one seed: from == to) */
    uint64_t ran;              /* how many of them were run */
    const sim_result *res;     /* the violation (res->violated), or a single seed's result
                                * (its trace hash is told); NULL: many seeds, every one held */
    uint64_t seed;             /* res's seed */
    const char *shrunk;        /* the minimal reproduction written, NULL */
    const char *out;           /* capsim swarm: the directory of the drawn files, NULL */
} run_junit_set;

/* A set for scn as capsim sim runs it: its name, file, invariants and
 * overrides; the caller fills in the seeds and the outcome. */
run_junit_set run_junit_scenario_set(const sim_scenario *scn);

/* The report of n sets run by `capsim CMD` (cmd: "sim" or "swarm"; bug:
 * the injected bug, NULL). *out is NUL-terminated and owned by the caller
 * (free()). CAP_OK, CAP_EINVAL or CAP_ENOMEM. */
int run_junit(const char *cmd, const run_junit_set *sets, size_t n, const char *bug, char **out,
              size_t *len);

#endif
