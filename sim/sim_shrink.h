/* Shrinking a failing run to a minimal scenario (docs/simulator.md,
 * "Many seeds and shrinking").
 *
 * Given a scenario, the run knobs it failed under (sim_run_config's
 * max_jobs, duration_ns, skip_event, workers_limit), a seed and the
 * invariant that broke, sim_shrink builds a scenario that holds the knobs
 * as plain values (max_jobs, duration, worker counts, the skipped events
 * removed) and then removes what it can, one change at a time, keeping a
 * change only when the same invariant still breaks with the same seed:
 * timeline events, script entries and mix entries dropped; the job budget,
 * the duration, worker counts, max_parallel, the Poisson rate, burst size,
 * closed-loop clients and workflow lengths halved; worker specs dropped.
 * It repeats until a whole pass changes nothing (or the run budget is
 * spent). Every candidate is a scenario written with sim_scenario_write
 * and read back with sim_scenario_parse, so the result is exactly what a
 * file written from it will load as, and it reproduces with a plain run of
 * that file (sim_run with no knobs). The process-wide bug switch
 * (ref_bugs.h) stays as the caller set it.
 *
 * Ownership: res->scn belongs to the caller (sim_scenario_free). */
#ifndef SIM_SHRINK_H
#define SIM_SHRINK_H

#include <stdint.h>

#include "cap_error.h"
#include "sim_scenario.h"
#include "sim_world.h"

#define SIM_SHRINK_DEFAULT_RUNS 400

typedef struct {
    sim_scenario *scn;  /* the minimal scenario; its seed is the failing seed */
    int runs;           /* simulator runs spent */
    sim_result last;    /* the run of scn that reproduces the violation */
} sim_shrink_result;

/* Shrinks. `knobs` may be NULL (no knobs); its scn and seed fields are not
 * used. `path` names the result (its `path`; messages). max_runs <= 0 means
 * SIM_SHRINK_DEFAULT_RUNS. Returns CAP_OK with res filled; CAP_EINVAL
 * when the violation does not reproduce from a written scenario at all
 * (d says so; res->scn NULL); CAP_EIO when a policy path cannot be made
 * absolute; another negative code when a run could not be carried out
 * (d says why) or memory ran out. */
int sim_shrink(const sim_scenario *scn, const sim_run_config *knobs, uint64_t seed,
               const char *invariant, const char *path, int max_runs, sim_shrink_result *res,
               cap_diag *d);

#endif
