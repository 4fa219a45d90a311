/* capsim sim --sweep: one scenario run under every combination of the
 * values given for a few of its keys, one process per variant on every
 * core, and the variants' figures side by side (docs/simulator.md
 * "Sweeps"). A variant is the scenario with overrides (cap_yaml_set), so
 * each one is exactly the run `capsim sim S --set ...` gives. */
#ifndef CAP_SIM_SWEEP_H
#define CAP_SIM_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "sim_scenario.h"
#include "sim_world.h"

#define SIM_SWEEP_MAX_AXES 8
#define SIM_SWEEP_MAX_VALUES 64
#define SIM_SWEEP_MAX_VARIANTS 256

/* One --sweep PATH=[v1, v2, ...]: the path and, for each value, the
 * override PATH=VALUE (the value as YAML flow text). */
typedef struct {
    char *path;
    char **sets;
    char **values; /* each value's text, pointing into sets */
    size_t n;
} sweep_axis;

/* Reads one --sweep argument into *ax (freed with sweep_axis_free): a
 * path as --set takes it, '=', and a YAML flow sequence of 1 to
 * SIM_SWEEP_MAX_VALUES values. 0, or -1 with a message in err. */
int sweep_axis_parse(const char *arg, sweep_axis *ax, char *err, size_t errlen);
void sweep_axis_free(sweep_axis *ax);

/* The variants and what their runs gave, in variant order (the first axis
 * varies slowest). */
typedef struct {
    size_t n;
    sim_scenario **scn;  /* each variant, loaded with its overrides */
    size_t *pick;        /* n * n_axes: the value each axis takes */
    sim_result *res;     /* n results */
    size_t n_axes;
} sweep_variants;

/* Loads every variant of the scenario at path (the base overrides sets,
 * then one value of each axis) and checks it, before anything runs. On an
 * error, prints it naming the variant's value and returns -1. */
int sweep_load(const char *path, const char *const *sets, size_t n_sets, const sweep_axis *axes,
               size_t n_axes, sweep_variants *v);

/* Runs every variant with seed and the run knobs of base (max_jobs,
 * duration, workers_limit, skip_event), `jobs` processes at once, with a
 * progress bar on a terminal. 0 when every variant ran (held or not), -1
 * (printed) when one could not. */
int sweep_run(sweep_variants *v, const sim_run_config *base, uint64_t seed, long jobs);

/* Prints the table of the variants' figures and their latencies, and a
 * closing line: every invariant held, or which variants broke one and how
 * to run one alone. Returns the number of variants that broke one. */
size_t sweep_print(const sweep_variants *v, const sweep_axis *axes, uint64_t seed,
                   const char *path, FILE *out);

void sweep_variants_free(sweep_variants *v);

/* Prints an error in an override, or about a value one put there, named
 * by label ("--set PATH=VALUE"); a position is within the override's value,
 * told only when it says more than "the value". */
void sim_set_error(const char *label, const cap_yaml_diag *yd);

#endif
