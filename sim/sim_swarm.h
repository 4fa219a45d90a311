/* Swarm testing: a random scenario for every seed (docs/swarm.md).
 *
 * The ready scenarios each exercise one thing on purpose. A swarm seed
 * instead draws a whole run: its workers and their behaviour models, the
 * workload and its mix, the scheduler's settings, signing, an approver,
 * one to three safety policies of its own (rules, tenants' concurrency
 * caps, velocity windows, constraints) and a fault timeline (crashes and
 * restarts of workers and of the scheduler, partitions and their heals,
 * bus duplicates, loss, latency, reordering, corruption and replays,
 * clock skew, policy changes, cancels, conflicting signed twins). Each
 * feature is switched on or off per seed, so a seed tries a few of them
 * together rather than all of them thinly (the swarm-testing idea).
 *
 * Only runs whose every invariant must hold on a correct control plane
 * are drawn: every crash is followed by a restart and every partition by
 * its heal within the run; the gateway's submits are never lost, cut off
 * or corrupted (the gateway does not resubmit, so such a job could never
 * end); a throttle comes from a velocity window or a tenant's cap, never a
 * rule that throttles for ever. A violation is therefore a bug in the
 * control plane (or in the checker), never in the draw.
 *
 * The draw is a pure function of the seed (the sim_rng stream "swarm" of
 * it), and the scenario's `seed` is the same seed: `capsim sim` on the
 * written files with `--seed N` replays the swarm's run exactly.
 *
 * Ownership: sim_swarm_generate fills a case whose texts the caller frees
 * with sim_swarm_case_free. */
#ifndef SIM_SWARM_H
#define SIM_SWARM_H

#include <stddef.h>
#include <stdint.h>

#define SIM_SWARM_MAX_POLICIES 3

/* The file names the scenario gives its policies: they are meant to sit
 * beside the scenario file (policy-0.yaml is its `policy`, the others are
 * the targets of `policy` faults). */
#define SIM_SWARM_POLICY_FILE "policy-%zu.yaml"

typedef struct {
    char *scenario; /* the scenario file's text */
    size_t scenario_len;
    char *policy[SIM_SWARM_MAX_POLICIES]; /* each policy file's text */
    size_t policy_len[SIM_SWARM_MAX_POLICIES];
    size_t n_policies; /* 1..SIM_SWARM_MAX_POLICIES */
} sim_swarm_case;

/* Draws the case of seed. CAP_OK, or CAP_ENOMEM (c then holds nothing). */
int sim_swarm_generate(uint64_t seed, sim_swarm_case *c);

void sim_swarm_case_free(sim_swarm_case *c);

#endif
