/* The checker reads the scheduler's job and eviction records as compact
 * views unless the run keeps the journal (docs/simulator.md, "Journal
 * views"). For every ready scenario on three seeds, and a slice of the
 * benchmark's workload: with journal_check on, every view agrees with its
 * text record (the run would stop at invariant "journal" otherwise), and
 * the run's whole summary, trace hash included, is the same as the
 * default run's. */
#include "testutil.h"

#include <dirent.h>

#include "sim_scenario.h"
#include "sim_world.h"

/* The summary sim_result_print gives, as one string (free it). */
static char *summary(const sim_run_config *cfg, const sim_result *r)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    assert_non_null(f);
    sim_result_print(cfg, r, f);
    assert_int_equal(fclose(f), 0);
    return text;
}

/* Runs path on seed with and without journal_check; returns the number of
 * journal records of the run that the views stood for (> 0 expected). */
static void same_run_both_ways(const char *path, uint64_t seed, int64_t duration_ns)
{
    sim_scenario *scn = NULL;
    cap_yaml_diag d;
    if (sim_scenario_load(path, &scn, &d) != CAP_OK)
        fail_msg("%s: %s", path, d.reason);
    sim_result *plain = calloc(1, sizeof *plain), *checked = calloc(1, sizeof *checked);
    assert_non_null(plain);
    assert_non_null(checked);
    sim_run_config cfg = {.scn = scn, .seed = seed, .duration_ns = duration_ns};
    assert_int_equal(sim_run(&cfg, plain, NULL), CAP_OK);
    cfg.journal_check = 1;
    assert_int_equal(sim_run(&cfg, checked, NULL), CAP_OK);
    if (checked->violated && strcmp(checked->invariant, "journal") == 0)
        fail_msg("%s seed %llu: %s", path, (unsigned long long)seed, checked->detail);
    assert_true(plain->submitted > 0);
    char *a = summary(&cfg, plain), *b = summary(&cfg, checked);
    if (strcmp(a, b) != 0)
        fail_msg("%s seed %llu: the runs differ:\n%s\n---\n%s", path, (unsigned long long)seed, a, b);
    free(a);
    free(b);
    free(plain);
    free(checked);
    sim_scenario_free(scn);
}

static void test_ready_scenarios(void **state)
{
    (void)state;
    DIR *dir = opendir("sim/scenarios");
    assert_non_null(dir);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "sim/scenarios/%s", de->d_name);
        for (uint64_t seed = 1; seed <= 3; seed++)
            same_run_both_ways(path, seed, 0);
        n++;
    }
    closedir(dir);
    assert_true(n >= 9);
}

/* The benchmark's workload past the point where the scheduler's table is
 * full (65 536 jobs at 500 a second: about 131 s), so that evictions are
 * compared too. */
static void test_bench_slice(void **state)
{
    (void)state;
    same_run_both_ways("bench/sim-large.yaml", 1, INT64_C(140) * 1000000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_scenarios),
        cmocka_unit_test(test_bench_slice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
