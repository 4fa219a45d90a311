/* capsim certify: golden cases against an implementation under test (IUT)
 * on a real NATS bus (DESIGN.md §4.2, docs/certify.md).
 *
 * For each case of the chosen role: (re)start the IUT from its argv (no
 * shell; placeholders such as {nats} {worker_id} {pool} substituted from
 * the case's `iut` settings and its scenario), play every other role from
 * the golden trace (conf_match decides what is due), record everything on
 * the bus into an observed trace, match, kill the IUT. A case whose
 * stimulus cannot be played on a real bus for that role (a fault timeline,
 * a human approver with a drawn delay) is reported not applicable with the
 * reason.
 *
 * Results: one line per case on `out`, a report-v1-shaped JSON and JUnit
 * (conf_report.h), the observed traces in trace_dir. */
#ifndef CONF_CERTIFY_H
#define CONF_CERTIFY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cap_error.h"

#define CONF_CERTIFY_MAX_CASE_IDS 256
#define CONF_CERTIFY_MAX_PENDING 4096 /* own publications awaiting their echo */

typedef struct {
    unsigned role;                 /* CONF_GOLDEN_ROLE_WORKER or _SCHEDULER */
    const char *nats_url;          /* a running server, or NULL with start_nats */
    int start_nats;                /* start a loopback nats-server for the run */
    const char *impl;              /* 'argv0|arg|...' or NULL: the IUT is already on the bus */
    const char *const *case_ids;   /* only these cases (NULL: all of dir) */
    size_t n_case_ids;
    const char *dir;               /* case directory (default conformance/cases) */
    const char *json_path;         /* report JSON, NULL: none */
    const char *junit_path;        /* JUnit XML, NULL: none */
    const char *html_path;         /* the HTML page (failing cases drawn beside their golden
                                    * traces), NULL: none; keeps the observed traces in
                                    * trace_dir, or in <html_path>.traces when that is NULL */
    const char *trace_dir;         /* observed traces + IUT logs, NULL: none kept */
    int64_t ready_timeout_ns;      /* the IUT's first heartbeat (worker); 0: 10 s */
    int64_t settle_ns;             /* quiet time after the IUT starts and after the case; 0: 500 ms */
    FILE *out;                     /* progress and verdicts; NULL: stdout */
} conf_certify_opts;

/* Runs the certification. Returns the exit code: 0 every applicable case
 * passed (and there was one), 1 a case failed or errored or none applied,
 * 2 a usage or I/O error (err says which; nothing was certified). */
int conf_certify_run(const conf_certify_opts *o, volatile sig_atomic_t *stop, char *err, size_t n);

/* Substitutes {name} placeholders in one argument from the table (names
 * and values; the later of two equal names wins). CAP_OK with *out
 * (malloc'd); CAP_EINVAL for an unknown or unterminated placeholder (err
 * names it). "{{" is a literal "{". */
int conf_certify_subst(const char *arg, const char *const *names, const char *const *values,
                       size_t n_vars, char **out, char *err, size_t n);

#endif
