/* The swarm's generator (sim/sim_swarm): a seed draws the same case every
 * time; every case loads as files; and the promises docs/swarm.md makes
 * about what is never drawn hold for every case of the first 1500 seeds
 * (every crash restarted and every partition healed within the run, no
 * loss or corruption of submits, no corruption of dispatches, no partition
 * of the gateway, velocity
 * windows within their bound and no throttle without one, tenant caps of
 * at least 2, an hour's drain, every invariant on), while over those seeds
 * every kind of fault, decision and workload is drawn at least once. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "testutil.h"

#include <unistd.h>

#include "cap_error.h"
#include "ref_policy.h"
#include "sim_bus.h"
#include "sim_scenario.h"
#include "sim_swarm.h"
#include "swarm_case.h"

#define SEEDS 1500
#define SEC INT64_C(1000000000)

static int same_pair(const sim_timeline_event *a, const sim_timeline_event *b)
{
    return strcmp(a->a ? a->a : "", b->a ? b->a : "") == 0 &&
           strcmp(a->b ? a->b : "", b->b ? b->b : "") == 0;
}

/* A later event of kind `kind` for the same actors, at or before the end
 * of the load. */
static int followed_by(const sim_scenario *s, size_t i, sim_event_kind kind)
{
    for (size_t k = 0; k < s->n_timeline; k++) {
        const sim_timeline_event *e = &s->timeline[k];
        if (e->kind == kind && e->at >= s->timeline[i].at && e->at <= s->duration_ns &&
            same_pair(e, &s->timeline[i]))
            return 1;
    }
    return 0;
}

typedef struct {
    unsigned faults;    /* bit: sim_fault_kind */
    unsigned events;    /* bit: sim_event_kind */
    unsigned decisions; /* bit: DecisionType */
    unsigned loads;     /* bit: sim_load_kind */
    int velocity, caps, signing, approver, heartbeats, checkpoints;
} seen;

static void check_policy(const sim_scenario *s, const char *text, size_t len, seen *sn)
{
    ref_policy *p = NULL;
    cap_yaml_diag d;
    assert_int_equal(ref_policy_parse(text, len, &p, &d), CAP_OK);
    int64_t jobs = (int64_t)s->workload.max_jobs;
    for (size_t i = 0; i < p->n_rules; i++) {
        const ref_rule *r = &p->rules[i];
        sn->decisions |= 1u << r->decision;
        if (r->decision == CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_THROTTLE)
            assert_true(r->has_velocity); /* never a throttle for good */
        if (r->has_velocity) {
            sn->velocity = 1;
            assert_in_range(r->velocity.window_seconds, 1, 2);
            assert_true(r->velocity.max_requests >= (jobs + 3) * r->velocity.window_seconds / 10 + 1);
        }
    }
    for (size_t i = 0; i < p->n_tenants; i++)
        if (p->tenants[i].max_concurrent_jobs) {
            sn->caps = 1;
            assert_true(p->tenants[i].max_concurrent_jobs >= 2);
        }
    ref_policy_free(p);
}

static void check_case(const sim_scenario *s, const sim_swarm_case *c, seen *sn)
{
    assert_int_equal(s->drain_ns, 3600 * SEC);
    assert_int_equal(s->invariants, SIM_INV_ALL);
    assert_true(s->workload.max_jobs >= 10 && s->workload.max_jobs <= 80);
    sn->loads |= 1u << s->workload.kind;
    sn->signing |= s->gateway.sign;
    sn->approver |= s->approver.present;
    for (size_t i = 0; i < s->n_workers; i++)
        if (sim_worker_heartbeat_faults(&s->workers[i])) {
            sn->heartbeats = 1;
            assert_true(s->workers[i].p_heartbeat_miss <= 0.6);
            assert_int_equal(s->workers[i].heartbeat_delay.kind, SIM_DIST_EXPONENTIAL);
        }
    for (size_t i = 0; i < s->n_workers; i++)
        if (s->workers[i].checkpoints) {
            sn->checkpoints = 1;
            assert_true(s->workers[i].checkpoints <= 6);
        }
    for (size_t i = 0; i < s->n_timeline; i++) {
        const sim_timeline_event *e = &s->timeline[i];
        sn->events |= 1u << e->kind;
        switch (e->kind) {
        case SIM_EV_CRASH: assert_true(followed_by(s, i, SIM_EV_RESTART)); break;
        case SIM_EV_PARTITION:
            assert_true(followed_by(s, i, SIM_EV_HEAL));
            assert_string_not_equal(e->a, "gateway");
            assert_true(!e->b || strcmp(e->b, "gateway") != 0);
            break;
        case SIM_EV_FAULT:
            sn->faults |= 1u << e->fault.kind;
            if (e->fault.kind == SIM_FAULT_LOSS || e->fault.kind == SIM_FAULT_CORRUPT)
                assert_false(!e->fault.subject ||
                             sim_subject_match(e->fault.subject, "sys.job.submit"));
            if (e->fault.kind == SIM_FAULT_CORRUPT)
                assert_false(sim_subject_match(e->fault.subject, "worker.w0.jobs"));
            break;
        default: break;
        }
    }
    for (size_t k = 0; k < c->n_policies; k++)
        check_policy(s, c->policy[k], c->policy_len[k], sn);
}

static void test_seeds_draw_cases_that_must_hold(void **state)
{
    (void)state;
    char dir[] = "/tmp/capsim-swarm-XXXXXX";
    assert_non_null(mkdtemp(dir));
    seen sn;
    memset(&sn, 0, sizeof sn);
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        sim_swarm_case c, again;
        assert_int_equal(sim_swarm_generate(seed, &c), CAP_OK);
        assert_int_equal(sim_swarm_generate(seed, &again), CAP_OK);
        assert_int_equal(c.scenario_len, again.scenario_len);
        assert_memory_equal(c.scenario, again.scenario, c.scenario_len);
        assert_int_equal(c.n_policies, again.n_policies);
        assert_in_range(c.n_policies, 1, SIM_SWARM_MAX_POLICIES);
        for (size_t k = 0; k < c.n_policies; k++)
            assert_string_equal(c.policy[k], again.policy[k]);
        sim_scenario *s = swarm_load_case(dir, &c, seed);
        assert_int_equal(s->seed, seed);
        check_case(s, &c, &sn);
        sim_scenario_free(s);
        sim_swarm_case_free(&again);
        sim_swarm_case_free(&c);
    }
    for (int k = SIM_FAULT_LATENCY; k <= SIM_FAULT_REPLAY; k++)
        if (k != SIM_FAULT_PARTITION) /* partitions are timeline events */
            assert_true(sn.faults & (1u << k));
    for (int k = SIM_EV_CRASH; k <= SIM_EV_CONFLICT; k++)
        assert_true(sn.events & (1u << k));
    for (int k = CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW;
         k <= CORDUM__AGENT__V1__DECISION_TYPE__DECISION_TYPE_ALLOW_WITH_CONSTRAINTS; k++)
        assert_true(sn.decisions & (1u << k));
    assert_true(sn.loads & (1u << SIM_LOAD_POISSON));
    assert_true(sn.loads & (1u << SIM_LOAD_CLOSED));
    assert_true(sn.loads & (1u << SIM_LOAD_BURST));
    assert_true(sn.velocity && sn.caps && sn.signing && sn.approver && sn.heartbeats &&
                sn.checkpoints);
    swarm_remove_case(dir);
    assert_int_equal(access(dir, F_OK), -1); /* gone */
}

/* Seeds differ: no two of the first hundred draw the same scenario, and the
 * largest seed draws one too. */
static void test_seeds_differ(void **state)
{
    (void)state;
    char *texts[100];
    for (uint64_t seed = 1; seed <= 100; seed++) {
        sim_swarm_case c;
        assert_int_equal(sim_swarm_generate(seed, &c), CAP_OK);
        texts[seed - 1] = c.scenario;
        c.scenario = NULL;
        sim_swarm_case_free(&c);
    }
    for (int i = 0; i < 100; i++)
        for (int k = i + 1; k < 100; k++) {
            /* the name line differs anyway: compare from the scheduler on */
            const char *a = strstr(texts[i], "scheduler:"), *b = strstr(texts[k], "scheduler:");
            assert_non_null(a);
            assert_non_null(b);
            assert_string_not_equal(a, b);
        }
    for (int i = 0; i < 100; i++)
        free(texts[i]);
    sim_swarm_case c;
    assert_int_equal(sim_swarm_generate(UINT64_MAX, &c), CAP_OK);
    assert_non_null(strstr(c.scenario, "seed: 18446744073709551615\n"));
    sim_swarm_case_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds_draw_cases_that_must_hold),
        cmocka_unit_test(test_seeds_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
