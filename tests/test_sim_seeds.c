/* Many seeds in child processes (tools/sim_seeds.c, seeds_run): each
 * seed's outcome comes back in seed order whatever order the processes end
 * in; a violation is the smallest failing seed and the outcomes stop
 * there; a seed whose run differs between its process and the parent is
 * refused as not deterministic. The runs here are stand-ins that decide
 * from the seed alone, so each case knows the answer it must get. */
#define _DEFAULT_SOURCE
#include "testutil.h"

#include <inttypes.h>
#include <unistd.h>

#include "sim_seeds.h"

typedef struct {
    uint64_t fail_from; /* seeds >= this (and odd) violate; 0: none does */
    pid_t parent;       /* set: a run in any other process gives another hash */
} fake;

/* A stand-in for one simulated run: its "trace hash" is the seed's, its
 * verdict fixed by the seed; seeds with a long delay end later than the
 * seeds after them. */
static int fake_run(void *ctx, uint64_t seed, sim_result *res, cap_diag *d)
{
    (void)d;
    const fake *f = ctx;
    memset(res, 0, sizeof *res);
    int elsewhere = f->parent && getpid() != f->parent;
    snprintf(res->trace_hash, sizeof res->trace_hash, "%064" PRIu64, seed * 7 + (elsewhere ? 1 : 0));
    if (seed % 3 == 1)
        usleep(20000); /* ends after the seeds started with it */
    if (f->fail_from && seed >= f->fail_from && seed % 2) {
        res->violated = 1;
        snprintf(res->invariant, sizeof res->invariant, "liveness");
        snprintf(res->job_id, sizeof res->job_id, "job-%" PRIu64, seed);
        snprintf(res->detail, sizeof res->detail, "stand-in");
    }
    return CAP_OK;
}

static void expect_runs(const seed_runs *r, uint64_t from, size_t n, uint64_t violated_seed)
{
    assert_int_equal(r->n, n);
    for (size_t i = 0; i < n; i++) {
        char want[65];
        snprintf(want, sizeof want, "%064" PRIu64, (from + i) * 7);
        assert_int_equal(r->v[i].seed, from + i);
        assert_string_equal(r->v[i].trace_hash, want);
        assert_int_equal(r->v[i].violated, r->v[i].seed == violated_seed);
    }
}

static void test_every_seed_in_order(void **state)
{
    (void)state;
    fake f = {0, 0};
    sim_result *res = malloc(sizeof *res);
    for (long jobs = 1; jobs <= 4; jobs += 3) {
        uint64_t failed = 0, ran = 0;
        seed_runs runs;
        int rc = seeds_run("test", fake_run, &f, 5, 16, jobs, 0, &failed, res, &ran, &runs);
        assert_int_equal(rc, 0);
        assert_int_equal(ran, 12);
        expect_runs(&runs, 5, 12, 0);
        free(runs.v);
    }
    free(res);
}

static void test_violation_ends_the_list(void **state)
{
    (void)state;
    fake f = {8, 0}; /* seed 9 is the first to fail */
    sim_result *res = malloc(sizeof *res);
    uint64_t failed = 0, ran = 0;
    seed_runs runs;
    int rc = seeds_run("test", fake_run, &f, 2, 40, 3, 0, &failed, res, &ran, &runs);
    assert_int_equal(rc, 1);
    assert_int_equal(failed, 9);
    assert_true(res->violated);
    assert_string_equal(res->job_id, "job-9");
    assert_true(ran >= 8 && ran <= 39);
    expect_runs(&runs, 2, 8, 9); /* seeds 2..9, whatever else had started */
    free(runs.v);
    free(res);
}

static void test_not_deterministic_is_refused(void **state)
{
    (void)state;
    fake f = {4, getpid()}; /* the children's hashes differ from the parent's */
    sim_result *res = malloc(sizeof *res);
    uint64_t failed = 0, ran = 0;
    seed_runs runs;
    int rc = seeds_run("test", fake_run, &f, 1, 6, 2, 0, &failed, res, &ran, &runs);
    assert_int_equal(rc, -1);
    assert_null(runs.v);
    assert_int_equal(runs.n, 0);
    free(res);
}

static void test_runs_optional(void **state)
{
    (void)state;
    fake f = {0, 0};
    sim_result *res = malloc(sizeof *res);
    uint64_t failed = 0;
    assert_int_equal(seeds_run("test", fake_run, &f, 1, 3, 2, 0, &failed, res, NULL, NULL), 0);
    free(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_seed_in_order),
        cmocka_unit_test(test_violation_ends_the_list),
        cmocka_unit_test(test_not_deterministic_is_refused),
        cmocka_unit_test(test_runs_optional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
