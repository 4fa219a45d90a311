/* capsim policy lint | explain | snapshot: the safety kernel from the shell. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cap_json.h"
#include "cap_schema.h"
#include "cli.h"
#include "commands.h"
#include "ref_lint.h"
#include "ref_policy.h"
#include "ref_safety.h"

#define POLICY_MAX_INPUT (4u << 20)
#define JOB_MAX_INPUT (16u << 20)

static const char POLICY_HELP[] =
    "usage: capsim policy lint FILE [--werror] [--json]\n"
    "       capsim policy explain FILE --job JOB.json|- [--json] [--active TENANT=N]...\n"
    "       capsim policy snapshot FILE [--canonical]\n\n"
    "lint      loads the policy (an error names FILE:LINE:COLUMN and the key) and\n"
    "          prints warnings: shadowed rules, an unreachable default, a misspelled\n"
    "          default_decision, topic globs outside job., empty or unused\n"
    "          constraints. Exit 1 on an error (or a warning with --werror).\n"
    "explain   decides for one job (a JobRequest or a BusPacket carrying one, in\n"
    "          JSON form) and shows every rule considered, each criterion and why,\n"
    "          and what fired. --active TENANT=N sets a tenant's active job count.\n"
    "          Velocity windows start empty (a dry run). Exit 0 whatever the decision.\n"
    "snapshot  prints the snapshot id: VERSION:SHA-256 of the canonical form\n"
    "          (--canonical prints that form instead).\n";

/* Loads a policy file; prints the error as FILE:LINE:COLUMN: KEY: REASON. */
static int load_policy(const char *cmd, const char *path, ref_policy **out)
{
    uint8_t *text;
    size_t len;
    if (cli_read_input(cmd, path, POLICY_MAX_INPUT, &text, &len) != 0)
        return CLI_USAGE;
    cap_yaml_diag d;
    int rc = len > POLICY_MAX_INPUT
                 ? cap_yaml_fail(&d, CAP_EYAML, NULL, "", "policy file over %u bytes", POLICY_MAX_INPUT)
                 : ref_policy_parse((const char *)text, len, out, &d);
    free(text);
    if (rc) {
        char line[600];
        fprintf(stderr, "%s: error: %s\n", cmd,
                cap_yaml_diag_format(&d, strcmp(path, "-") ? path : "<stdin>", line, sizeof line));
        return CLI_REJECTED;
    }
    return CLI_OK;
}

/* ---- lint ---- */

static int lint(const char *file, int werror, int json)
{
    ref_policy *p;
    int rc = load_policy("policy lint", file, &p);
    if (rc)
        return rc;
    ref_lint_item *items = NULL;
    size_t n = 0;
    if (ref_policy_lint(p, &items, &n)) {
        ref_policy_free(p);
        cli_error("policy lint", "out of memory");
        return CLI_REJECTED;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", file);
        cJSON_AddStringToObject(o, "snapshot", ref_policy_snapshot(p));
        cJSON *a = cJSON_AddArrayToObject(o, "warnings");
        for (size_t i = 0; i < n; i++) {
            cJSON *w = cJSON_CreateObject();
            cJSON_AddStringToObject(w, "code", items[i].code);
            cJSON_AddNumberToObject(w, "line", items[i].line);
            cJSON_AddNumberToObject(w, "column", items[i].column);
            cJSON_AddStringToObject(w, "message", items[i].message);
            cJSON_AddItemToArray(a, w);
        }
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (items[i].line)
                printf("%s:%d:%d: warning: %s [%s]\n", file, items[i].line, items[i].column,
                       items[i].message, items[i].code);
            else
                printf("%s: warning: %s [%s]\n", file, items[i].message, items[i].code);
        }
        printf("%s: %zu rule(s), %zu warning(s), snapshot %s\n", file, p->n_rules, n,
               ref_policy_snapshot(p));
    }
    free(items);
    ref_policy_free(p);
    return werror && n ? CLI_REJECTED : CLI_OK;
}

/* ---- explain ---- */

/* Reads a JobRequest, or a BusPacket carrying one, in JSON form. */
static int load_job(const char *path, Cordum__Agent__V1__PolicyCheckRequest **out)
{
    const char *cmd = "policy explain";
    uint8_t *text;
    size_t len;
    if (cli_read_input(cmd, path, JOB_MAX_INPUT, &text, &len) != 0)
        return CLI_USAGE;
    cJSON *probe = cJSON_ParseWithLength((const char *)text, len);
    int is_packet = probe && (cJSON_GetObjectItemCaseSensitive(probe, "jobRequest") ||
                              cJSON_GetObjectItemCaseSensitive(probe, "job_request"));
    cJSON_Delete(probe);
    ProtobufCMessage *m = NULL;
    cap_diag d;
    int rc = cap_json_to_message(is_packet ? CAP_PACKET_DESC : &cordum__agent__v1__job_request__descriptor,
                                 (const char *)text, len, JOB_MAX_INPUT, &m, &d);
    free(text);
    if (rc) {
        cli_diag(cmd, path, &d);
        return CLI_REJECTED;
    }
    const Cordum__Agent__V1__JobRequest *job =
        is_packet ? ((cap_packet *)m)->job_request : (Cordum__Agent__V1__JobRequest *)m;
    *out = ref_safety_request_from_job(job);
    cap_message_free(m);
    if (!*out) {
        cli_error(cmd, "out of memory");
        return CLI_REJECTED;
    }
    return CLI_OK;
}

static const char *outcome_name(ref_rule_outcome o)
{
    switch (o) {
    case REF_RULE_FIRED: return "fired";
    case REF_RULE_VELOCITY_OK: return "matched, velocity not exceeded";
    case REF_RULE_NOT_REACHED: return "not reached";
    default: return "no match";
    }
}

static void print_explain(const ref_explain *e, const ref_policy *p)
{
    const ref_safety_decision *d = &e->decision;
    printf("decision: %s\n", ref_decision_name(d->decision));
    printf("rule:     %s\n", d->rule_id[0] ? d->rule_id : "(none)");
    printf("reason:   %s\n", d->reason);
    printf("snapshot: %s\n", d->policy_snapshot);
    printf("tenant:   %s\n", d->tenant);
    printf("decided by: %s\n", e->stage);
    if (d->approval_required)
        printf("approval required, ref %s\n", d->approval_ref);
    if (d->constraints) {
        char *c = NULL;
        if (cap_json_from_message(&d->constraints->base, 0, &c) == 0)
            printf("constraints: %s\n", c);
        free(c);
    }
    printf("\n1. topic: %s\n2. rules:\n", e->topic_check);
    for (size_t i = 0; i < e->n_rules; i++) {
        const ref_explain_rule *r = &e->rules[i];
        printf("   [%zu] %s (line %d, %s): %s", i + 1, r->rule->id, r->rule->line,
               ref_decision_name(r->rule->decision), outcome_name(r->outcome));
        if (r->outcome == REF_RULE_NOT_REACHED)
            printf(" (would %smatch)", r->would_match ? "" : "not ");
        printf("\n");
        for (size_t j = 0; j < r->n_criteria; j++)
            printf("         %s %-16s %s\n", r->criteria[j].matched ? "+" : "-",
                   r->criteria[j].criterion, r->criteria[j].why);
    }
    if (!e->n_rules && p)
        printf("   (no rules)\n");
    if (p)
        printf("3. default_decision: %s%s\n", ref_word_name(p->default_word),
               strcmp(e->stage, "default") == 0 ? " (applied)" : "");
    if (e->tenant_check[0])
        printf("4. tenant: %s\n", e->tenant_check);
}

static cJSON *explain_json(const ref_explain *e)
{
    cJSON *o = cJSON_CreateObject();
    Cordum__Agent__V1__PolicyCheckResponse resp;
    ref_safety_response(&e->decision, &resp);
    char *text = NULL;
    if (cap_json_from_message(&resp.base, 0, &text) == 0)
        cJSON_AddItemToObject(o, "response", cJSON_Parse(text));
    free(text);
    ref_safety_response_release(&resp);
    cJSON_AddStringToObject(o, "decision", ref_decision_name(e->decision.decision));
    cJSON_AddStringToObject(o, "ruleId", e->decision.rule_id);
    cJSON_AddStringToObject(o, "tenant", e->decision.tenant);
    cJSON_AddStringToObject(o, "stage", e->stage);
    cJSON_AddStringToObject(o, "topicCheck", e->topic_check);
    cJSON_AddStringToObject(o, "tenantCheck", e->tenant_check);
    cJSON *rules = cJSON_AddArrayToObject(o, "rules");
    for (size_t i = 0; i < e->n_rules; i++) {
        const ref_explain_rule *r = &e->rules[i];
        cJSON *ro = cJSON_CreateObject();
        cJSON_AddStringToObject(ro, "id", r->rule->id);
        cJSON_AddNumberToObject(ro, "line", r->rule->line);
        cJSON_AddStringToObject(ro, "decision", ref_decision_name(r->rule->decision));
        cJSON_AddStringToObject(ro, "outcome", outcome_name(r->outcome));
        cJSON_AddBoolToObject(ro, "wouldMatch", r->would_match);
        cJSON *cs = cJSON_AddArrayToObject(ro, "criteria");
        for (size_t j = 0; j < r->n_criteria; j++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "criterion", r->criteria[j].criterion);
            cJSON_AddBoolToObject(c, "matched", r->criteria[j].matched);
            cJSON_AddStringToObject(c, "why", r->criteria[j].why);
            cJSON_AddItemToArray(cs, c);
        }
        cJSON_AddItemToArray(rules, ro);
    }
    return o;
}

/* --active TENANT=N: marks N jobs of TENANT active before deciding. */
static int set_active(ref_safety *k, const char *spec)
{
    const char *eq = strrchr(spec, '=');
    char *end;
    long n = eq ? strtol(eq + 1, &end, 10) : -1;
    if (!eq || eq == spec || *end || n < 0 || n > 1000000) {
        cli_error("policy explain", "--active wants TENANT=N, got \"%s\"", spec);
        return -1;
    }
    char tenant[256];
    snprintf(tenant, sizeof tenant, "%.*s", (int)(eq - spec), spec);
    for (long i = 0; i < n; i++)
        if (ref_safety_job_started(k, tenant)) {
            cli_error("policy explain", "too many tenants");
            return -1;
        }
    return 0;
}

static int explain(const char *file, const char *job, int json, char **actives, int n_actives)
{
    ref_policy *p;
    Cordum__Agent__V1__PolicyCheckRequest *req = NULL;
    int rc = load_policy("policy explain", file, &p);
    if (rc)
        return rc;
    if ((rc = load_job(job, &req))) {
        ref_policy_free(p);
        return rc;
    }
    ref_safety *k = ref_safety_new();
    ref_explain e;
    rc = !k || ref_safety_install(k, p) < 0 ? CLI_REJECTED : CLI_OK;
    for (int i = 0; !rc && i < n_actives; i++)
        rc = set_active(k, actives[i]) ? CLI_USAGE : CLI_OK;
    if (!rc && ref_safety_explain(k, req, 0, &e) != 0)
        rc = CLI_REJECTED;
    if (!rc) {
        if (json) {
            cJSON *o = explain_json(&e);
            char *s = cJSON_Print(o);
            printf("%s\n", s);
            cJSON_free(s);
            cJSON_Delete(o);
        } else {
            print_explain(&e, ref_safety_policy(k));
        }
        ref_explain_free(&e);
    } else if (rc == CLI_REJECTED) {
        cli_error("policy explain", "out of memory");
    }
    ref_safety_free(k);
    cap_message_free(&req->base);
    return rc;
}

/* ---- snapshot ---- */

static int snapshot(const char *file, int canonical)
{
    ref_policy *p;
    int rc = load_policy("policy snapshot", file, &p);
    if (rc)
        return rc;
    printf("%s\n", canonical ? ref_policy_canonical(p) : ref_policy_snapshot(p));
    ref_policy_free(p);
    return CLI_OK;
}

int cmd_policy(int argc, char **argv)
{
    if (argc < 2 || cli_wants_help(argc, argv)) {
        fputs(POLICY_HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *sub = argv[1], *file = NULL, *job = NULL;
    int json = 0, werror = 0, canonical = 0, n_actives = 0;
    char **actives = calloc((size_t)argc, sizeof *actives);
    if (!actives)
        return CLI_USAGE;
    int rc = CLI_OK;
    for (int i = 2; i < argc && !rc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--werror") == 0)
            werror = 1;
        else if (strcmp(argv[i], "--canonical") == 0)
            canonical = 1;
        else if (strcmp(argv[i], "--job") == 0)
            rc = (job = cli_value("policy", argc, argv, &i)) ? CLI_OK : CLI_USAGE;
        else if (strcmp(argv[i], "--active") == 0) {
            const char *v = cli_value("policy", argc, argv, &i);
            if (v)
                actives[n_actives++] = (char *)v;
            else
                rc = CLI_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("policy", "unknown option %s (see --help)", argv[i]);
            rc = CLI_USAGE;
        } else if (file) {
            cli_error("policy", "one policy file only");
            rc = CLI_USAGE;
        } else
            file = argv[i];
    }
    if (!rc && !file) {
        cli_error("policy", "no policy file (use - for standard input)");
        rc = CLI_USAGE;
    }
    if (!rc) {
        if (strcmp(sub, "lint") == 0)
            rc = lint(file, werror, json);
        else if (strcmp(sub, "explain") == 0) {
            if (!job) {
                cli_error("policy explain", "--job JOB.json (or -) is required");
                rc = CLI_USAGE;
            } else if (strcmp(job, "-") == 0 && strcmp(file, "-") == 0) {
                cli_error("policy explain", "the policy and the job cannot both be standard input");
                rc = CLI_USAGE;
            } else
                rc = explain(file, job, json, actives, n_actives);
        } else if (strcmp(sub, "snapshot") == 0)
            rc = snapshot(file, canonical);
        else {
            cli_error("policy", "unknown subcommand \"%s\" (lint, explain, snapshot)", sub);
            rc = CLI_USAGE;
        }
    }
    free(actives);
    return rc;
}
