/* The job state machine: every (from, to) pair against an expectation
 * written here from the spec text, independently of the table in
 * reference/ref_jobstate.c; the upstream kit's lifecycle and cancellation
 * cases; and the kit's own order model (cap-tck 4.1) on every pair. */
#include "testutil.h"

#include <limits.h>

#include "cap_error.h"
#include "ref_jobstate.h"

enum {
    NONE = 0,
    PEND = 1,
    SCHED = 2,
    DISP = 3,
    RUN = 4,
    SUCC = 5,
    FAIL = 6,
    CANC = 7,
    DEN = 8,
    TMO = 9,
    FRET = 10,
    FFAT = 11,
    APPR = 1000,
};

/* Every state, written out here rather than taken from the module. */
static const int states[] = {PEND, SCHED, DISP, RUN,  SUCC, FAIL, CANC,
                             DEN,  TMO,   FRET, FFAT, APPR};
#define N_STATES (sizeof states / sizeof states[0])

/* Values that are not states. */
static const int not_states[] = {INT_MIN, -1, 12, 13, 999, 1001, INT_MAX};
#define N_NOT (sizeof not_states / sizeof not_states[0])

/* The edges cap-spec 07 draws (line numbers exact for 07). */
static const struct {
    int from, to;
    const char *line;
} spec_edges[] = {
    {NONE, PEND, "07 L21"},  /* [*] -> PENDING: gateway accepts */
    {PEND, SCHED, "07 L22"}, /* scheduler validation */
    {SCHED, DISP, "07 L23"}, /* safety passed + pool selected */
    {DISP, RUN, "07 L24"},   /* worker starts */
    {RUN, SUCC, "07 L25"},
    {RUN, FAIL, "07 L26"},
    {RUN, FRET, "07 L27"},
    {RUN, FFAT, "07 L28"},
    {RUN, TMO, "07 L29"},  /* reconciler marks stale */
    {DISP, TMO, "07 L30"}, /* worker never starts */
    {SCHED, DEN, "07 L31"}, /* safety rejects */
};
#define N_SPEC_EDGES (sizeof spec_edges / sizeof spec_edges[0])

/* Edges this project adds where 07 is silent (docs/reference-jobstate.md):
 * parking for approval (06 L24), leaving the parked state, and the retry
 * exit from FAILED_RETRYABLE (07 L52). */
static const struct {
    int from, to;
    const char *cite;
} pinned_edges[] = {
    {SCHED, APPR, "06 L24"},
    {APPR, SCHED, "06 L24"},
    {APPR, DEN, "cordum-ref 9"},
    {APPR, TMO, "cordum-ref 6"},
    {FRET, SCHED, "07 L52"},
};
#define N_PINNED (sizeof pinned_edges / sizeof pinned_edges[0])

/* Terminal set: the diagram's terminals (07 L33-L37) plus FAILED_FATAL
 * (07 L53); FAILED_RETRYABLE is not terminal (07 L52). */
static int terminal(int s)
{
    return s == SUCC || s == FAIL || s == CANC || s == DEN || s == TMO || s == FFAT;
}

static int is_state(int s)
{
    for (size_t i = 0; i < N_STATES; i++)
        if (states[i] == s)
            return 1;
    return 0;
}

/* Progress rank as in the kit's order model (cap-tck 4.1), with the
 * parked state beside SCHEDULED. */
static int rank(int s)
{
    switch (s) {
    case PEND: return 0;
    case SCHED:
    case APPR: return 1;
    case DISP: return 2;
    case RUN:
    case FRET: return 3;
    default: return 4;
    }
}

static const char *edge_cite(int from, int to)
{
    for (size_t i = 0; i < N_SPEC_EDGES; i++)
        if (spec_edges[i].from == from && spec_edges[i].to == to)
            return spec_edges[i].line;
    for (size_t i = 0; i < N_PINNED; i++)
        if (pinned_edges[i].from == from && pinned_edges[i].to == to)
            return pinned_edges[i].cite;
    return NULL;
}

/* The expected outcome, from the rules of 07 L47-L50 applied in order. */
static ref_js_outcome expected(int from, int to)
{
    if (!is_state(to) || (from != NONE && !is_state(from)))
        return REF_JS_REJECT_UNKNOWN;
    if (from == NONE)
        return to == PEND ? REF_JS_ACCEPT : REF_JS_REJECT_ILLEGAL; /* L21 */
    if (from == to)
        return REF_JS_REPEAT; /* L47 */
    if (terminal(from)) {
        if (to == CANC)
            return REF_JS_REJECT_CANCEL; /* L50 */
        return terminal(to) ? REF_JS_IGNORE : REF_JS_REJECT_BACKWARD; /* L49, L48 */
    }
    if (edge_cite(from, to) || to == CANC) /* L21-L32; cancel per L50 */
        return REF_JS_ACCEPT;
    if (rank(to) < rank(from))
        return REF_JS_REJECT_BACKWARD; /* L48 */
    if (from == APPR)
        return REF_JS_REJECT_ILLEGAL; /* 06 L24: parked means no dispatch */
    return REF_JS_SKIP;
}

static void check_pair(int from, int to)
{
    ref_js_outcome want = expected(from, to), got = ref_jobstate_check(from, to);
    if (want != got)
        fail_msg("%s(%d) -> %s(%d): got %s, want %s", ref_jobstate_name(from), from,
                 ref_jobstate_name(to), to, ref_js_outcome_name(got), ref_js_outcome_name(want));
}

static void test_every_pair_matches_the_spec_rules(void **state)
{
    (void)state;
    size_t n = 0;
    int all[N_STATES + 1 + N_NOT];
    all[n++] = NONE;
    for (size_t i = 0; i < N_STATES; i++)
        all[n++] = states[i];
    for (size_t i = 0; i < N_NOT; i++)
        all[n++] = not_states[i];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            check_pair(all[i], all[j]);
}

/* Every cell names the clause that decides it. */
static void test_every_pair_cites_its_rule(void **state)
{
    (void)state;
    int all[N_STATES + 1];
    all[0] = NONE;
    memcpy(all + 1, states, sizeof states);
    for (size_t i = 0; i < N_STATES + 1; i++)
        for (size_t j = 0; j < N_STATES + 1; j++) {
            int f = all[i], t = all[j];
            const char *rule = ref_jobstate_rule(f, t), *want = NULL;
            assert_non_null(rule);
            switch (expected(f, t)) {
            case REF_JS_ACCEPT: want = t == CANC ? "L50" : edge_cite(f, t); break;
            case REF_JS_SKIP: want = "L48"; break;
            case REF_JS_REPEAT: want = "07 L47"; break;
            case REF_JS_IGNORE: want = "07 L49"; break;
            case REF_JS_REJECT_BACKWARD: want = "07 L48"; break;
            case REF_JS_REJECT_CANCEL: want = "07 L50"; break;
            case REF_JS_REJECT_ILLEGAL: want = f == NONE ? "07 L21" : "06 L24"; break;
            case REF_JS_REJECT_UNKNOWN: want = "not a job state"; break;
            }
            if (!strstr(rule, want))
                fail_msg("%s -> %s: rule \"%s\" does not cite %s", ref_jobstate_name(f),
                         ref_jobstate_name(t), rule, want);
        }
    assert_non_null(strstr(ref_jobstate_rule(-7, RUN), "not a job state"));
}

/* The kit's lifecycle and cancellation suites (tck/core-lifecycle.json,
 * tck/core-cancellation.json), with their expected verdicts. */
static void test_upstream_lifecycle_and_cancellation_cases(void **state)
{
    (void)state;
    static const struct {
        const char *id, *from, *to, *expect;
    } cases[] = {
        {"lifecycle/worker-running-to-succeeded", "RUNNING", "SUCCEEDED", "accept"},
        {"lifecycle/worker-running-to-failed", "RUNNING", "FAILED", "accept"},
        {"lifecycle/worker-running-to-failed-retryable", "RUNNING", "FAILED_RETRYABLE", "accept"},
        {"lifecycle/worker-running-to-failed-fatal", "RUNNING", "FAILED_FATAL", "accept"},
        {"lifecycle/worker-same-state-idempotent", "RUNNING", "RUNNING", "accept"},
        {"lifecycle/worker-rejects-backwards-transition", "SUCCEEDED", "RUNNING", "reject"},
        {"lifecycle/worker-rejects-second-terminal", "SUCCEEDED", "FAILED", "ignore"},
        {"lifecycle/cp-pending-to-scheduled", "PENDING", "SCHEDULED", "accept"},
        {"lifecycle/cp-scheduled-to-dispatched", "SCHEDULED", "DISPATCHED", "accept"},
        {"lifecycle/cp-scheduled-to-denied", "SCHEDULED", "DENIED", "accept"},
        {"lifecycle/cp-dispatched-to-timeout", "DISPATCHED", "TIMEOUT", "accept"},
        {"lifecycle/cp-rejects-backwards-transition", "DISPATCHED", "SCHEDULED", "reject"},
        {"cancellation/cp-cancel-from-pending", "PENDING", "CANCELLED", "accept"},
        {"cancellation/cp-cancel-from-running", "RUNNING", "CANCELLED", "accept"},
        {"cancellation/cp-rejects-cancel-after-terminal", "SUCCEEDED", "CANCELLED", "reject"},
        {"cancellation/worker-honors-cancel", "RUNNING", "CANCELLED", "accept"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int f = ref_jobstate_from_name(cases[i].from), t = ref_jobstate_from_name(cases[i].to);
        assert_true(f > 0 && t > 0);
        const char *got = ref_js_outcome_tck(ref_jobstate_check(f, t));
        if (strcmp(got, cases[i].expect) != 0)
            fail_msg("%s: got %s, want %s", cases[i].id, got, cases[i].expect);
    }
    /* the exact outcomes behind the three non-accept verdicts */
    assert_int_equal(ref_jobstate_check(SUCC, RUN), REF_JS_REJECT_BACKWARD);
    assert_int_equal(ref_jobstate_check(SUCC, FAIL), REF_JS_IGNORE);
    assert_int_equal(ref_jobstate_check(SUCC, CANC), REF_JS_REJECT_CANCEL);
    assert_int_equal(ref_jobstate_check(DISP, SCHED), REF_JS_REJECT_BACKWARD);
    assert_int_equal(ref_jobstate_check(RUN, RUN), REF_JS_REPEAT);
}

/* The kit's executable model (cap-tck 4.1 "order"), transcribed: */
static const char *tck_order(const char *from, const char *to)
{
    static const struct {
        const char *name;
        int rank;
    } r[] = {{"PENDING", 0},   {"SCHEDULED", 1}, {"DISPATCHED", 2}, {"RUNNING", 3},
             {"FAILED_RETRYABLE", 3}, {"SUCCEEDED", 4}, {"FAILED", 4}, {"FAILED_FATAL", 4},
             {"TIMEOUT", 4},   {"DENIED", 4},    {"CANCELLED", 4}};
    int rf = -1, rt = -1;
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        if (strcmp(r[i].name, from) == 0)
            rf = r[i].rank;
        if (strcmp(r[i].name, to) == 0)
            rt = r[i].rank;
    }
    if (rf < 0 || rt < 0)
        return "reject";
    if (strcmp(from, to) == 0)
        return "accept";
    if (rf == 4) {
        if (strcmp(to, "CANCELLED") == 0)
            return "reject";
        return rt == 4 ? "ignore" : "reject";
    }
    return rt >= rf ? "accept" : "reject";
}

/* On every pair of wire states the verdict equals the kit's model, except
 * the one pinned retry edge FAILED_RETRYABLE -> SCHEDULED (no kit case). */
static void test_agrees_with_the_kit_model_except_the_retry_edge(void **state)
{
    (void)state;
    int differ = 0;
    for (int f = PEND; f <= FFAT; f++)
        for (int t = PEND; t <= FFAT; t++) {
            const char *mine = ref_js_outcome_tck(ref_jobstate_check(f, t));
            const char *kit = tck_order(ref_jobstate_name(f), ref_jobstate_name(t));
            if (strcmp(mine, kit) == 0)
                continue;
            if (!(f == FRET && t == SCHED))
                fail_msg("%s -> %s: %s, the kit's model says %s", ref_jobstate_name(f),
                         ref_jobstate_name(t), mine, kit);
            assert_string_equal(mine, "accept");
            differ++;
        }
    assert_int_equal(differ, 1);
    /* states the kit does not know are rejected by both */
    assert_string_equal(tck_order("UNSPECIFIED", "PENDING"), "reject");
    assert_string_equal(ref_js_outcome_tck(ref_jobstate_check(RUN, NONE)), "reject");
}

static void test_terminal_and_cancel_sets(void **state)
{
    (void)state;
    size_t n_term = 0;
    for (size_t i = 0; i < N_STATES; i++) {
        int s = states[i];
        assert_true(ref_jobstate_is_valid(s));
        assert_int_equal(ref_jobstate_is_terminal(s), terminal(s));
        assert_int_equal(ref_jobstate_can_cancel(s), !terminal(s));
        /* can_cancel agrees with the table's cancel column */
        ref_js_outcome o = ref_jobstate_check(s, CANC);
        if (s == CANC)
            assert_int_equal(o, REF_JS_REPEAT);
        else
            assert_int_equal(o, terminal(s) ? REF_JS_REJECT_CANCEL : REF_JS_ACCEPT);
        n_term += (size_t)terminal(s);
    }
    assert_int_equal(n_term, 6);
    assert_false(ref_jobstate_is_terminal(FRET)); /* 07 L52 */
    assert_true(ref_jobstate_is_terminal(FFAT));  /* 07 L53 */
    assert_false(ref_jobstate_is_valid(NONE));
    assert_false(ref_jobstate_can_cancel(NONE)); /* no such job yet */
    for (size_t i = 0; i < N_NOT; i++) {
        assert_false(ref_jobstate_is_valid(not_states[i]));
        assert_false(ref_jobstate_is_terminal(not_states[i]));
        assert_false(ref_jobstate_can_cancel(not_states[i]));
    }
    /* the module's own list is exactly the states above */
    for (size_t i = 0; i < REF_JOBSTATE_COUNT; i++)
        assert_int_equal(ref_jobstate_list[i], states[i]);
    assert_int_equal(REF_JOBSTATE_COUNT, N_STATES);
}

/* Walking only ACCEPT edges: every terminal is reachable from [*], and
 * from every non-terminal state some terminal is reachable (no state is a
 * dead end, which is why FAILED_RETRYABLE needs its retry exit). */
static void test_reachability_over_accept_edges(void **state)
{
    (void)state;
    int all[N_STATES + 1];
    all[0] = NONE;
    memcpy(all + 1, states, sizeof states);
    const size_t n = N_STATES + 1;
    /* reach[i][j]: j reachable from i over ACCEPT edges (Warshall) */
    int reach[N_STATES + 1][N_STATES + 1];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            reach[i][j] = ref_jobstate_check(all[i], all[j]) == REF_JS_ACCEPT;
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                if (reach[i][k] && reach[k][j])
                    reach[i][j] = 1;
    for (size_t j = 1; j < n; j++)
        if (!reach[0][j])
            fail_msg("%s is not reachable from [*]", ref_jobstate_name(all[j]));
    for (size_t i = 1; i < n; i++) {
        if (terminal(all[i])) {
            for (size_t j = 0; j < n; j++) /* nothing is accepted out of a terminal */
                assert_false(ref_js_outcome_applies(ref_jobstate_check(all[i], all[j])));
            continue;
        }
        int ends = 0;
        for (size_t j = 1; j < n; j++)
            ends |= reach[i][j] && terminal(all[j]);
        if (!ends)
            fail_msg("%s cannot reach a terminal state", ref_jobstate_name(all[i]));
    }
    /* the parked state never reaches DISPATCHED except through SCHEDULED */
    assert_int_equal(ref_jobstate_check(APPR, DISP), REF_JS_REJECT_ILLEGAL);
    assert_int_equal(ref_jobstate_check(APPR, RUN), REF_JS_REJECT_ILLEGAL);
    assert_int_equal(ref_jobstate_check(APPR, SUCC), REF_JS_REJECT_ILLEGAL);
    assert_int_equal(ref_jobstate_check(APPR, APPR), REF_JS_REPEAT);
}

static void test_outcome_helpers(void **state)
{
    (void)state;
    static const struct {
        ref_js_outcome o;
        const char *name, *tck;
        int applies, reject;
    } t[] = {
        {REF_JS_ACCEPT, "accept", "accept", 1, 0},
        {REF_JS_SKIP, "skip", "accept", 1, 0},
        {REF_JS_REPEAT, "repeat", "accept", 0, 0},
        {REF_JS_IGNORE, "ignore", "ignore", 0, 0},
        {REF_JS_REJECT_BACKWARD, "reject-backward", "reject", 0, 1},
        {REF_JS_REJECT_CANCEL, "reject-cancel", "reject", 0, 1},
        {REF_JS_REJECT_ILLEGAL, "reject-illegal", "reject", 0, 1},
        {REF_JS_REJECT_UNKNOWN, "reject-unknown", "reject", 0, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_string_equal(ref_js_outcome_name(t[i].o), t[i].name);
        assert_string_equal(ref_js_outcome_tck(t[i].o), t[i].tck);
        assert_int_equal(ref_js_outcome_applies(t[i].o), t[i].applies);
        assert_int_equal(ref_js_outcome_is_reject(t[i].o), t[i].reject);
    }
    assert_string_equal(ref_js_outcome_name((ref_js_outcome)99), "?");
    assert_string_equal(ref_js_outcome_tck((ref_js_outcome)99), "reject");
}

static void test_names_and_wire_projection(void **state)
{
    (void)state;
    static const char *const want[] = {
        "PENDING", "SCHEDULED", "DISPATCHED", "RUNNING", "SUCCEEDED", "FAILED",
        "CANCELLED", "DENIED", "TIMEOUT", "FAILED_RETRYABLE", "FAILED_FATAL",
        "APPROVAL_REQUIRED"};
    char buf[64];
    for (size_t i = 0; i < N_STATES; i++) {
        assert_string_equal(ref_jobstate_name(states[i]), want[i]);
        assert_int_equal(ref_jobstate_from_name(want[i]), states[i]);
        if (states[i] != APPR) {
            snprintf(buf, sizeof buf, "JOB_STATUS_%s", want[i]);
            assert_int_equal(ref_jobstate_from_name(buf), states[i]);
            assert_int_equal(ref_jobstate_wire(states[i]), states[i]);
        }
    }
    assert_string_equal(ref_jobstate_name(NONE), "UNSPECIFIED");
    assert_int_equal(ref_jobstate_from_name("UNSPECIFIED"), NONE);
    assert_int_equal(ref_jobstate_from_name("JOB_STATUS_UNSPECIFIED"), NONE);
    assert_string_equal(ref_jobstate_name(12), "UNKNOWN");
    assert_string_equal(ref_jobstate_name(-1), "UNKNOWN");
    assert_int_equal(ref_jobstate_from_name("running"), CAP_EINVAL);
    assert_int_equal(ref_jobstate_from_name("JOB_STATUS_APPROVAL_REQUIRED"), CAP_EINVAL);
    assert_int_equal(ref_jobstate_from_name("JOB_STATUS_"), CAP_EINVAL);
    assert_int_equal(ref_jobstate_from_name(""), CAP_EINVAL);
    assert_int_equal(ref_jobstate_from_name(NULL), CAP_EINVAL);
    /* the parked state goes on the wire as SCHEDULED; non-states as 0 */
    assert_int_equal(ref_jobstate_wire(APPR), SCHED);
    assert_int_equal(ref_jobstate_wire(NONE), 0);
    assert_int_equal(ref_jobstate_wire(12), 0);
    assert_int_equal(ref_jobstate_wire(-3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_pair_matches_the_spec_rules),
        cmocka_unit_test(test_every_pair_cites_its_rule),
        cmocka_unit_test(test_upstream_lifecycle_and_cancellation_cases),
        cmocka_unit_test(test_agrees_with_the_kit_model_except_the_retry_edge),
        cmocka_unit_test(test_terminal_and_cancel_sets),
        cmocka_unit_test(test_reachability_over_accept_edges),
        cmocka_unit_test(test_outcome_helpers),
        cmocka_unit_test(test_names_and_wire_projection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
