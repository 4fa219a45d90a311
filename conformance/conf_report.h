/* Run reports (cap-tck 3 report-v1, 6): the cases of one adapter against
 * one profile, the verdict, and the three renderings (JSON, JUnit XML, the
 * one-line summary).
 *
 * Verdict. conformant = at least one case is applicable AND no case is
 * applicable, required and other than PASS. The first half is capsim's:
 * the upstream kit calls a run with zero applicable cases conformant.
 *
 * JSON: Go's json.MarshalIndent(report, "", "  ") + "\n" byte for byte:
 * keys adapter, sdk (omitted when empty), role, profile, transport
 * (omitted when empty), toolVersion, summary{total, pass, fail, error,
 * unsupported, na, conformant}, cases[] in the order held (the runner adds
 * them sorted by id), each {id, profile, role, required, applicable,
 * status, detail (omitted when empty), durationMs, evidence (omitted when
 * empty, keys sorted)}.
 *
 * Ownership: the report owns every string and case in it
 * (conf_report_free). Renderings are malloc'd strings for the caller. */
#ifndef CONF_REPORT_H
#define CONF_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "conf_json.h"
#include "conf_msg.h"

#define CONF_TOOL_VERSION "capsim-tck/1"

typedef struct {
    char *id;
    char *profile;
    char *role;
    int required;
    int applicable;
    conf_status status;
    char *detail;     /* NULL or "" when none */
    int64_t duration_ms;
    conf_kv *evidence; /* sorted by key */
    size_t n_evidence;
} conf_case;

typedef struct {
    char *adapter;
    char *sdk;
    char *role;
    char *profile;
    char *transport;
    char *tool_version;
    conf_case *cases;
    size_t n;
    size_t cap;
} conf_report;

typedef struct {
    size_t total, pass, fail, error, unsupported, na;
    size_t applicable;
    int conformant;
} conf_summary;

/* A fresh report with its header strings copied (NULL counts as "").
 * NULL when out of memory. */
conf_report *conf_report_new(const char *adapter, const char *profile, const char *tool_version);
void conf_report_free(conf_report *r);

/* Sets sdk, role and transport from a handshake (copied; NULL = ""). */
int conf_report_set_handshake(conf_report *r, const char *sdk, const char *role, const char *transport);

/* Appends a case. Every string is copied; evidence is copied and sorted.
 * CAP_OK or CAP_ENOMEM. */
int conf_report_add(conf_report *r, const char *id, const char *profile, const char *role, int required,
                    int applicable, conf_status status, const char *detail, int64_t duration_ms,
                    const conf_kv *evidence, size_t n_evidence);

void conf_report_summarize(const conf_report *r, conf_summary *s);

/* Renderings; CAP_OK with *out (free()) or CAP_ENOMEM. */
int conf_report_json(const conf_report *r, char **out, size_t *len);
int conf_report_junit(const conf_report *r, char **out, size_t *len);
/* "<adapter> [<profile>] CONFORMANT|NON-CONFORMANT: N cases  pass=.. fail=..
 * error=.. unsupported=.. na=..\n" */
int conf_report_summary_line(const conf_report *r, char **out);

#endif
