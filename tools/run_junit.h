/* capsim sim --junit: the outcome of a simulated run (one seed, a range of
 * seeds, or every variant of a sweep) as JUnit XML, the report CI servers
 * display (docs/simulator.md "JUnit report").
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
    const sim_scenario *scn;   /* the scenario run (its path, name, overrides, invariants) */
    const char *label;         /* what tells this set from the others (a sweep variant's own
                                * overrides), NULL */
    uint64_t from, to;         /* the seeds asked for (one seed: from == to) */
    uint64_t ran;              /* how many of them were run */
    const sim_result *res;     /* the violation (res->violated), or a single seed's result
                                * (its trace hash is told); NULL: many seeds, every one held */
    uint64_t seed;             /* res's seed */
    const char *shrunk;        /* the minimal reproduction written, NULL */
} run_junit_set;

/* The report of n sets run by `capsim sim` (bug: the injected bug, NULL).
 * *out is NUL-terminated and owned by the caller (free()). CAP_OK,
 * CAP_EINVAL or CAP_ENOMEM. */
int run_junit(const run_junit_set *sets, size_t n, const char *bug, char **out, size_t *len);

#endif
