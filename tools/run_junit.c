/* capsim sim --junit, capsim swarm --junit: see run_junit.h. */
#define _DEFAULT_SOURCE
#include "run_junit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "conf_json.h"
#include "sim_seeds.h"

/* The testcases of a set: the scenario's invariants in bit order, then
 * the journal check every run makes. */
#define JOURNAL_CHECK "journal"

/* 1 when name is one of the set's testcases. */
static int listed(const run_junit_set *s, const char *name)
{
    if (strcmp(name, JOURNAL_CHECK) == 0)
        return 1;
    for (unsigned b = 1; b & SIM_INV_ALL; b <<= 1)
        if ((s->invariants & b) && strcmp(sim_invariant_name(b), name) == 0)
            return 1;
    return 0;
}

static const sim_result *violation_of(const run_junit_set *s)
{
    return s->res && s->res->violated ? s->res : NULL;
}

/* The set's testcases: its invariants, the journal check, and (should a
 * run ever name another) the invariant its violation names. */
static size_t count_tests(const run_junit_set *s)
{
    size_t n = 1; /* the journal check */
    for (unsigned b = 1; b & SIM_INV_ALL; b <<= 1)
        n += (s->invariants & b) != 0;
    const sim_result *r = violation_of(s);
    return n + (r && !listed(s, r->invariant));
}

static void property(conf_jw *w, const char *name, const char *value)
{
    conf_jw_str(w, "\n      <property name=\"");
    conf_jw_xml(w, name);
    conf_jw_str(w, "\" value=\"");
    conf_jw_xml(w, value);
    conf_jw_str(w, "\"/>");
}

/* The name of a set's suite: "capsim.CMD", then ".NAME" and " [LABEL]"
 * when the set has them. */
static void suite_name(conf_jw *w, const char *cmd, const run_junit_set *s)
{
    conf_jw_str(w, "capsim.");
    conf_jw_xml(w, cmd);
    if (s->name) {
        conf_jw_str(w, ".");
        conf_jw_xml(w, s->name);
    }
    if (s->label) {
        conf_jw_str(w, " [");
        conf_jw_xml(w, s->label);
        conf_jw_str(w, "]");
    }
}

run_junit_set run_junit_scenario_set(const sim_scenario *scn)
{
    run_junit_set s;
    memset(&s, 0, sizeof s);
    s.name = scn->name && scn->name[0] ? scn->name : scn->path;
    s.scenario = scn->path;
    s.invariants = scn->invariants;
    s.sets = scn->sets;
    s.n_sets = scn->n_sets;
    return s;
}

/* The failure's text: what broke and the commands that reproduce it. */
static char *failure_text(const run_junit_set *s, const char *bug)
{
    const sim_result *r = s->res;
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return NULL;
    fprintf(m, "seed %" PRIu64 " breaks %s: job %s at %.6fs: %s\nreproduce: ", s->seed,
            r->invariant, r->job_id[0] ? r->job_id : "-", (double)r->at / 1e9, r->detail);
    seeds_reproduce_command(s->scenario, s->seed, bug, s->sets, s->n_sets, m);
    if (s->shrunk) {
        fputs("\nminimal reproduction: ", m);
        seeds_reproduce_command(s->shrunk, s->seed, bug, NULL, 0, m);
        fputs(" --no-shrink", m);
    }
    fputc('\n', m);
    if (fclose(m) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* One testcase: `name` held, broke (the set's violation), or was cut short
 * by another invariant's violation. */
static void testcase(conf_jw *w, const char *cmd, const run_junit_set *s, const char *name,
                     const char *bug)
{
    const sim_result *r = violation_of(s);
    conf_jw_str(w, "\n    <testcase classname=\"");
    suite_name(w, cmd, s);
    conf_jw_str(w, "\" name=\"");
    conf_jw_xml(w, name);
    conf_jw_str(w, "\"");
    if (!r) {
        conf_jw_str(w, "/>");
        return;
    }
    char msg[900];
    if (strcmp(r->invariant, name) == 0) {
        snprintf(msg, sizeof msg, "seed %" PRIu64 ": job %s at %.6fs: %s", s->seed,
                 r->job_id[0] ? r->job_id : "-", (double)r->at / 1e9, r->detail);
        char *text = failure_text(s, bug);
        if (!text) {
            w->failed = 1;
            return;
        }
        conf_jw_str(w, ">\n      <failure type=\"");
        conf_jw_xml(w, name);
        conf_jw_str(w, "\" message=\"");
        conf_jw_xml(w, msg);
        conf_jw_str(w, "\">");
        conf_jw_xml(w, text);
        conf_jw_str(w, "</failure>\n    </testcase>");
        free(text);
        return;
    }
    snprintf(msg, sizeof msg,
             "held until seed %" PRIu64 " stopped at %.6fs, when %s broke; not checked to the end",
             s->seed, (double)r->at / 1e9, r->invariant);
    conf_jw_str(w, ">\n      <skipped message=\"");
    conf_jw_xml(w, msg);
    conf_jw_str(w, "\"/>\n    </testcase>");
}

static void suite(conf_jw *w, const char *cmd, const run_junit_set *s, const char *bug)
{
    size_t tests = count_tests(s);
    const sim_result *r = violation_of(s);
    int violated = r != NULL;
    conf_jw_str(w, "\n  <testsuite name=\"");
    suite_name(w, cmd, s);
    conf_jw_printf(w, "\" tests=\"%zu\" failures=\"%d\" errors=\"0\" skipped=\"%zu\">", tests,
                   violated, violated ? tests - 1 : 0);
    conf_jw_str(w, "\n    <properties>");
    if (s->scenario)
        property(w, "scenario", s->scenario);
    if (s->out)
        property(w, "out", s->out);
    char num[64];
    if (s->from == s->to) {
        snprintf(num, sizeof num, "%" PRIu64, s->from);
        property(w, "seed", num);
    } else {
        snprintf(num, sizeof num, "%" PRIu64 "..%" PRIu64, s->from, s->to);
        property(w, "seeds", num);
        snprintf(num, sizeof num, "%" PRIu64, s->ran);
        property(w, "seeds_run", num);
    }
    for (size_t i = 0; i < s->n_sets; i++)
        property(w, "set", s->sets[i]);
    if (bug)
        property(w, "bug", bug);
    if (s->res && s->from == s->to)
        property(w, "trace_sha256", s->res->trace_hash);
    if (s->shrunk)
        property(w, "shrunk", s->shrunk);
    conf_jw_str(w, "\n    </properties>");
    for (unsigned b = 1; b & SIM_INV_ALL; b <<= 1)
        if (s->invariants & b)
            testcase(w, cmd, s, sim_invariant_name(b), bug);
    testcase(w, cmd, s, JOURNAL_CHECK, bug);
    if (r && !listed(s, r->invariant))
        testcase(w, cmd, s, r->invariant, bug);
    conf_jw_str(w, "\n  </testsuite>");
}

int run_junit(const char *cmd, const run_junit_set *sets, size_t n, const char *bug, char **out,
              size_t *len)
{
    if (!cmd || !sets || !out)
        return CAP_EINVAL;
    size_t tests = 0, failures = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if ((sets[i].from == sets[i].to && !sets[i].res) ||
            (violation_of(&sets[i]) && !sets[i].scenario))
            return CAP_EINVAL;
        size_t t = count_tests(&sets[i]);
        tests += t;
        if (violation_of(&sets[i])) {
            failures++;
            skipped += t - 1;
        }
    }
    conf_jw w = {0};
    conf_jw_str(&w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    conf_jw_str(&w, "<testsuites name=\"capsim ");
    conf_jw_xml(&w, cmd);
    conf_jw_printf(&w, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\">", tests,
                   failures, skipped);
    for (size_t i = 0; i < n; i++)
        suite(&w, cmd, &sets[i], bug);
    conf_jw_str(&w, "\n</testsuites>\n");
    return conf_jw_take(&w, out, len);
}
