/* The HTML report: one self-contained page (inline CSS and SVG, no
 * script, no external resource) from an in-memory model the caller fills
 * (docs/reports.md).
 *
 * The page is well-formed XML as well as HTML (every element closed, void
 * elements written as <x/>, every attribute quoted, all text escaped, no
 * entity but the five XML ones and numeric references), so a strict XML
 * parser reads it. The only absolute URL in it is the SVG namespace.
 * It holds no wall-clock time: the caller passes whatever date text it
 * wants in `generated_by`. The same model gives the same bytes.
 *
 * Ownership: the model is borrowed for the call; every string may be NULL
 * (shown as empty). The rendered page is malloc'd for the caller. */
#ifndef CONF_HTML_H
#define CONF_HTML_H

#include <stddef.h>
#include <stdint.h>

/* Arrows drawn per sequence diagram when the page does not say. */
#define CONF_HTML_DEFAULT_ARROWS 60
/* Longest text kept from one model string (bytes); longer is cut with "…". */
#define CONF_HTML_MAX_TEXT 4096
/* Longest arrow label drawn (bytes). */
#define CONF_HTML_MAX_LABEL 72
/* Lifelines drawn per diagram; further actors share the last one, "others". */
#define CONF_HTML_MAX_LIFELINES 12

/* One packet of a trace, as a diagram draws it. */
typedef struct {
    int64_t time_ns;
    const char *sender;   /* the publishing actor */
    const char *receiver; /* the receiving actor, or NULL/"" for the bus */
    const char *subject;
    const char *label;    /* short text: "JobResult FAILED_RETRYABLE job-1 a2" */
} conf_html_rec;

/* Where the observed trace first left the golden one. */
typedef struct {
    long expected_index; /* index in expected[], or -1 */
    long observed_index; /* index in observed[], or -1 (nothing observed there) */
    const char *const *diff; /* "path: expected → observed" lines */
    size_t n_diff;
} conf_html_divergence;

typedef struct {
    const char *id;
    const char *status; /* "PASS", "FAIL", "ERROR", "UNSUPPORTED", "N/A" (report-v1) */
    const char *role;
    int required;
    const char *clauses; /* "cap-spec 07 L48; cap-spec 09 ~L69" */
    const char *detail;
    /* Traces, for a diagram (drawn for FAIL and ERROR cases that have one). */
    const conf_html_rec *expected; /* the golden trace */
    size_t n_expected;
    const conf_html_rec *observed;
    size_t n_observed;
    const conf_html_divergence *divergence; /* NULL: none known */
} conf_html_case;

/* One run: one adapter (or implementation) against one profile. */
typedef struct {
    const char *adapter;
    const char *role;
    const char *profile;
    const char *verdict; /* "CONFORMANT" / "NON-CONFORMANT" */
    size_t total, pass, fail, error, unsupported, na;
    const conf_html_case *cases;
    size_t n_cases;
} conf_html_report;

/* One behaviour of the upstream coverage map (tck/coverage.json). */
typedef struct {
    const char *behavior;
    const char *spec;
    const char *gated;  /* NULL/"": not gated */
    const char *reason; /* why it is gated */
    const char *const *cases;
    size_t n_cases;
} conf_html_behavior;

/* One of capsim's own cases (golden traces, invariants) and its clauses. */
typedef struct {
    const char *id;
    const char *clauses;
    const char *status; /* in this run; NULL/"": not run */
} conf_html_own_case;

typedef struct {
    const char *title;
    const char *generated_by; /* "capsim 1 on 2026-11-21" — any text, no clock is read */
    const conf_html_report *reports;
    size_t n_reports;
    const conf_html_behavior *coverage;
    size_t n_coverage;
    const conf_html_own_case *own;
    size_t n_own;
    size_t max_arrows; /* per diagram; 0: CONF_HTML_DEFAULT_ARROWS */
} conf_html_page;

/* Renders the page. CAP_OK with *out (NUL-terminated, free()) and *len,
 * or CAP_ENOMEM. */
int conf_html_render(const conf_html_page *p, char **out, size_t *len);

/* The upstream coverage map, parsed (conf_html_coverage_parse) into
 * behaviours ready for conf_html_page.coverage. Owns its strings. */
typedef struct {
    conf_html_behavior *items;
    size_t n;
    char **strings; /* every string the items point to */
    size_t n_strings;
    const char **case_ptrs; /* backing store of the items' cases */
} conf_html_coverage;

/* Parses coverage.json text (strict JSON, conf_json): {"version": 1,
 * "description": ..., "behaviors": [{"behavior", "spec", "cases": [..],
 * "gated", "reason"}]}. At most 1000 behaviours of 1000 cases each.
 * CAP_OK, or CAP_EJSON with a one-line reason in err (naming the JSON
 * path), or CAP_ENOMEM. Free with conf_html_coverage_free. */
int conf_html_coverage_parse(const char *text, size_t len, conf_html_coverage *out, char *err,
                             size_t n);
void conf_html_coverage_free(conf_html_coverage *c);

#endif
