/* Many seeds and shrinking, shared by capsim sim and capsim swarm
 * (docs/simulator.md "Many seeds and shrinking", docs/swarm.md). */
#ifndef CAP_SIM_SEEDS_H
#define CAP_SIM_SEEDS_H

#include <stdint.h>
#include <stdio.h>

#include "sim_scenario.h"
#include "sim_world.h"

/* Runs one seed in this process and fills *res: CAP_OK when the run was
 * carried out (held or not), else an error code with its reason in *d. */
typedef int (*seeds_run_fn)(void *ctx, uint64_t seed, sim_result *res, cap_diag *d);

/* Parses "A..B" (A <= B, fewer than 10 million seeds). -1 when it is not. */
int seeds_parse_range(const char *s, uint64_t *a, uint64_t *b);

/* One seed's outcome in a run of many: whether it held, and its trace
 * hash. */
typedef struct {
    uint64_t seed;
    int violated;
    char trace_hash[65];
} seed_run;

/* The seeds' outcomes in seed order, from the first seed of the range up
 * to the last that ran (every seed held) or to the smallest failing seed:
 * the seeds whose outcome does not depend on which process finished first.
 * v is owned (free()). */
typedef struct {
    seed_run *v;
    size_t n;
} seed_runs;

/* Runs seeds a..b, one child process per seed and `jobs` at a time, with a
 * progress bar when stderr is a terminal; `each` prints a line per seed as
 * it finishes. Stops starting seeds at the first violation, then finds the
 * smallest failing seed among those started by running them again here,
 * in order; a seed that gives another trace hash here than in its process
 * is an error (the simulator would not be deterministic). A seed that
 * cannot be run is named with its reason, once, by the parent (the
 * processes print nothing of it). Returns 0 when
 * every seed held (a summary line printed), 1 on a violation (*failed and
 * *res are that seed's; its line printed), -1 when a seed could not be run
 * or a process not started (the error printed). *ran (when not NULL) is
 * set to the number of seeds started, *runs (when not NULL) to the seeds'
 * outcomes (on 0 or 1; empty otherwise). cmd names the command in
 * messages. */
int seeds_run(const char *cmd, seeds_run_fn run, void *ctx, uint64_t a, uint64_t b, long jobs,
              int each, uint64_t *failed, sim_result *res, uint64_t *ran, seed_runs *runs);

/* After a single run c broke an invariant (first, naming a job): the same
 * run again (same seed and knobs, no trace files) telling the story of
 * that job (docs/simulator.md "A job's history"). rc is the exit status so
 * far, returned as it is; CLI_USAGE when the second run failed or did not
 * break the same invariant (the simulator would not be deterministic). */
int seeds_tell_story(const char *cmd, const sim_run_config *c, const sim_result *first, int rc);

/* Shrinks the violation `first` of scn with seed (knobs as sim_shrink
 * takes them, may be NULL), writes the minimal scenario to `out` with a
 * header comment saying what breaks and how to reproduce it, and prints
 * the command that does. CLI_REJECTED when written, CLI_USAGE on an error
 * (printed). */
int seeds_shrink(const char *cmd, const sim_scenario *scn, const sim_run_config *knobs,
                 uint64_t seed, const sim_result *first, const char *out);

/* Writes the command that runs one seed of the scenario file at path on
 * its own: capsim sim PATH --seed N [--bug NAME] [--set PATH=VALUE]...,
 * each argument quoted for a POSIX shell where it needs to be. bug may be
 * NULL; sets are the run's overrides (a shrunk file has them baked in:
 * pass none). */
void seeds_reproduce_command(const char *path, uint64_t seed, const char *bug,
                             char *const *sets, size_t n_sets, FILE *out);

#endif
