/* Writing a scenario back as YAML (docs/scenarios.md, "Writing a scenario").
 *
 * sim_scenario_write prints a loaded scenario as a scenario file that
 * sim_scenario_load reads back to the same values: every key is written
 * explicitly (defaults included), durations in the largest unit that is
 * exact, numbers in the shortest form that reads back to the same double,
 * every string double-quoted and escaped. Policy paths (`policy` and the
 * `policy` faults) are written absolute (realpath), so the file loads
 * from any directory. Worker `count` is written as loaded; the timeline
 * and the script in their loaded (time) order.
 *
 * The shrinker (sim_shrink.h) uses it to copy scenarios and to write the
 * minimal reproduction of a violation.
 *
 * Ownership: nothing is kept; the caller owns `out` and `comment`. */
#ifndef SIM_SCENARIO_WRITE_H
#define SIM_SCENARIO_WRITE_H

#include <stddef.h>
#include <stdio.h>

#include "sim_scenario.h"

/* Writes scenario s to out. `comment` (may be NULL) is written first, each
 * of its lines prefixed with "# ". CAP_OK; CAP_EINVAL for a NULL s or out;
 * CAP_EIO when a policy path cannot be made absolute or out fails. */
int sim_scenario_write(const sim_scenario *s, const char *comment, FILE *out);

/* The same into a malloc'd NUL-terminated buffer (*text, *len; the caller
 * frees *text). CAP_ENOMEM when the buffer cannot be made. */
int sim_scenario_write_text(const sim_scenario *s, const char *comment, char **text, size_t *len);

/* A deep copy of s made by writing it and reading it back (so it is also a
 * check that s is valid as written). The copy's `path` is `path`, which
 * also names it in messages. CAP_OK with *out (free with sim_scenario_free);
 * else an error, with d filled when the text did not load. */
int sim_scenario_clone(const sim_scenario *s, const char *path, sim_scenario **out,
                       cap_yaml_diag *d);

#endif
