/* A capsim swarm draw as files, for the tests that run the swarm's
 * scenarios (include after testutil.h). */
#ifndef CAP_TEST_SWARM_CASE_H
#define CAP_TEST_SWARM_CASE_H

#include "cap_error.h"
#include "sim_scenario.h"
#include "sim_swarm.h"

/* Writes the case into dir (scenario.yaml and its policies) and loads its
 * scenario; fails the test, naming the seed, when it does not load. */
static inline sim_scenario *swarm_load_case(const char *dir, const sim_swarm_case *c, uint64_t seed)
{
    for (size_t k = 0; k < c->n_policies; k++) {
        char name[64];
        snprintf(name, sizeof name, SIM_SWARM_POLICY_FILE, k);
        tu_write_file(dir, name, c->policy[k], c->policy_len[k]);
    }
    tu_write_file(dir, "scenario.yaml", c->scenario, c->scenario_len);
    char path[600];
    snprintf(path, sizeof path, "%s/scenario.yaml", dir);
    sim_scenario *s = NULL;
    cap_yaml_diag d;
    if (sim_scenario_load(path, &s, &d) != CAP_OK) {
        char buf[800];
        fail_msg("seed %llu: %s\n%s", (unsigned long long)seed,
                 cap_yaml_diag_format(&d, path, buf, sizeof buf), c->scenario);
    }
    return s;
}

/* Removes what swarm_load_case wrote into dir, and dir. */
static inline void swarm_remove_case(const char *dir)
{
    char path[600];
    for (size_t k = 0; k < SIM_SWARM_MAX_POLICIES; k++) {
        char name[64];
        snprintf(name, sizeof name, SIM_SWARM_POLICY_FILE, k);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        remove(path);
    }
    snprintf(path, sizeof path, "%s/scenario.yaml", dir);
    remove(path);
    remove(dir);
}

#endif
