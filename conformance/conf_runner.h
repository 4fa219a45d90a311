/* The scenario runner (cap-tck 2.3-2.5): one adapter against the
 * scenarios of one profile of one suite, sequentially, in id order.
 *
 * Differences from the upstream runner, on purpose:
 *  - a fault (time limit, crash, garbage, over-long line, unknown field,
 *    wrong id, wrong type) costs only the case it happened on: that case
 *    is ERROR with a detail naming the fault, the adapter is killed, and a
 *    fresh adapter (new process, hello, handshake) is started for the
 *    next applicable case. If the fresh adapter cannot be started (or
 *    announces another role), every remaining applicable case is ERROR
 *    with that reason;
 *  - a run with no applicable case is not conformant (conf_report.h).
 * Like upstream, a failed FIRST handshake aborts the run (no report).
 *
 * Time: durationMs is measured on the monotonic clock, or is 0 for every
 * case with `deterministic` set (byte-stable reports). */
#ifndef CONF_RUNNER_H
#define CONF_RUNNER_H

#include <stdint.h>

#include "conf_adapter.h"
#include "conf_report.h"
#include "conf_suite.h"

typedef struct {
    uint64_t case_deadline_ms;     /* per case; default 30 s */
    uint64_t timeout_ms;           /* whole run; default 5 min */
    uint64_t handshake_timeout_ms; /* default 10 s */
    uint64_t grace_ms;             /* after bye; default 2 s */
    int deterministic;
    int temp_cwd;                  /* run the adapter in a fresh temporary directory */
    const char *tool_version;      /* default CONF_TOOL_VERSION */
} conf_run_opts;

void conf_run_opts_default(conf_run_opts *o);

/* Runs the scenarios of `profile` (NULL: every scenario) against the
 * adapter. CAP_OK with *out (conf_report_free), or an error with the
 * reason in err and *out NULL: CAP_EIO / CAP_EJSON when the adapter could
 * not be started or its first handshake is bad, CAP_ENOMEM. */
int conf_run(const conf_suite *suite, const char *profile, const conf_adapter_spec *spec,
             const conf_run_opts *o, conf_report **out, char *err, size_t n);

#endif
