/* capsim sim --json and capsim swarm --json: a simulated run's report, or
 * the outcome of a run of many seeds, as one JSON document
 * (docs/simulator.md "JSON report", docs/swarm.md). Every member is always
 * present (null where it does not apply), so a reader never has to guess
 * whether a count was zero or left out; the same run gives the same bytes. */
#ifndef CAP_RUN_JSON_H
#define CAP_RUN_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "sim_scenario.h"
#include "sim_seeds.h"
#include "sim_sweep.h"
#include "sim_world.h"

#define RUN_JSON_FORMAT "capsim-sim-v1"
#define RUN_JSON_SEEDS_FORMAT "capsim-sim-seeds-v1"
#define RUN_JSON_SWEEP_FORMAT "capsim-sim-sweep-v1"
#define RUN_JSON_SWARM_FORMAT "capsim-swarm-v1"

/* The report of one run (cfg->scn, cfg->seed) that ended with r. bug names
 * the injected bug (NULL: none); shrunk is the file a violation's
 * reproduction was written to (NULL: not shrunk). *out is NUL-terminated,
 * ends with a newline and is owned by the caller (free()). CAP_OK,
 * CAP_EINVAL or CAP_ENOMEM. */
int run_json_one(const sim_run_config *cfg, const sim_result *r, const char *bug,
                 const char *shrunk, char **out, size_t *len);

/* The outcome of seeds from..to of scn: ran seeds were started; violated
 * 0 when every one held, else seed is the smallest failing seed and res
 * its run; shrunk is the file the reproduction was written to (NULL: not
 * shrunk); runs lists each seed's outcome. Ownership as run_json_one. */
typedef struct {
    uint64_t from, to, ran;
    int violated;
    uint64_t seed;
    const sim_result *res;
    const char *shrunk;
    const seed_runs *runs; /* each seed's outcome in seed order (seeds_run), NULL: none */
} run_json_seeds_outcome;

int run_json_seeds(const sim_scenario *scn, const run_json_seeds_outcome *o, const char *bug,
                   char **out, size_t *len);

/* The outcome of a swarm (capsim swarm --seeds) whose files went to dir:
 * as run_json_seeds, every seed drawing a scenario of its own; drawn is
 * the file the failing seed drew (required with a violation). Ownership as
 * run_json_one. */
int run_json_swarm(const char *dir, const run_json_seeds_outcome *o, const char *drawn,
                   const char *bug, char **out, size_t *len);

/* The outcome of a sweep (capsim sim --sweep) of scn, the scenario with
 * its base overrides: the axes, and for each variant its own overrides and
 * its run's report as run_json_one writes it. Ownership as run_json_one. */
int run_json_sweep(const sim_scenario *scn, const sweep_axis *axes, const sweep_variants *v,
                   uint64_t seed, const char *bug, char **out, size_t *len);

#endif
