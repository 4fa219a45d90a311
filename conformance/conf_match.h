/* The trace matcher: a golden trace (what the reference did in the
 * simulator) against what an implementation under test (IUT) does on a
 * real bus, online, while the harness plays the other roles.
 * docs/certify.md, "Matching", is the long form.
 *
 * Golden records are split by sender: the senders the IUT stands in for
 * are EXPECTED (the IUT must publish them), every other one is PLAYED
 * (the harness publishes it). Records that carry a job (JobRequest,
 * JobResult, JobProgress, JobCancel; a DLQ entry) form one sequence per
 * job_id, in golden order; the others (Heartbeat, SystemAlert, Handshake)
 * are non-job records.
 *
 *  - Order: per job only. A played record is due when every record before
 *    it in its job is done (played or matched), at the time of its
 *    predecessor plus the golden gap between the two (at start + golden
 *    time for the first of a job and for non-job records). An observed
 *    packet is compared with the first expected record of its job not yet
 *    matched; independent jobs interleave freely.
 *  - Identifiers (CONF_MATCH_BIND_KEYS: traceId, senderId, jobId,
 *    parentJobId, dispatchId, workerId, assignedWorkerId, componentId) are
 *    bound on first sight: golden value -> value used on the bus, one to
 *    one. A played record binds its values to themselves (or uses what is
 *    bound already); an observed packet binds the expected record's values
 *    to the observed ones and must agree with every binding made before.
 *    Subjects are bound token by token (worker.<id>.jobs).
 *  - Ignored fields (CONF_MATCH_IGNORE_KEYS): free text and measurements
 *    (createdAt, executionMs, errorMessage, message, reason, resultPtr,
 *    signature); for heartbeats also the load figures.
 *  - Time: an expected record must be observed within `window` of its due
 *    time (computed as for a played record).
 *  - Non-job records: an observed heartbeat must agree with the sender's
 *    first golden heartbeat; an observed alert with some golden alert of
 *    the IUT. Their count is not checked; at the end every IUT sender with
 *    golden heartbeats must have sent at least one.
 *
 * The first divergence is kept (conf_match_verdict): the expected packet,
 * the observed one (JSON forms) and a field-level diff, "PATH: expected →
 * observed"; or for a missing packet what was awaited and for how long.
 *
 * Ownership: the matcher copies what it is given; strings it returns stay
 * valid until the next call or conf_match_free. */
#ifndef CONF_MATCH_H
#define CONF_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"

#define CONF_MATCH_MAX_RECORDS ((size_t)100000)
#define CONF_MATCH_MAX_SENDERS 16

typedef struct conf_match conf_match;

typedef struct {
    int64_t window_ns;                   /* timing tolerance; 0: 2 s */
    const char *const *iut_senders;      /* golden senders the IUT stands in for */
    size_t n_iut_senders;
} conf_match_config;

/* CAP_OK with *out, CAP_EINVAL (no IUT sender, too many), CAP_ENOMEM. */
int conf_match_new(const conf_match_config *cfg, conf_match **out);
void conf_match_free(conf_match *m);

/* Adds golden record (golden time t, ns from the scenario's start). The
 * bytes must decode (strict decoder): CAP_EMALFORMED etc. with d
 * otherwise; CAP_EFULL past CONF_MATCH_MAX_RECORDS. */
int conf_match_add_golden(conf_match *m, int64_t t, const char *subject, const char *sender,
                          const uint8_t *bytes, size_t len, cap_diag *d);

/* Golden records, and how many of them are expected from the IUT. */
size_t conf_match_golden_count(const conf_match *m);
size_t conf_match_expected_count(const conf_match *m);

/* Anchors golden time 0 at `start` (real ns). Call after the last add. */
void conf_match_start(conf_match *m, int64_t start);

/* The next played record that is due at `now`: 1 with *idx, 0 when none
 * is due yet (*next_due: the earliest due time of a played record whose
 * predecessors are done, INT64_MAX when none). Non-job played records are
 * no longer offered once every job record is done. */
int conf_match_next_play(conf_match *m, int64_t now, size_t *idx, int64_t *next_due);

/* Renders played record idx for publishing at `now`: identifiers bound so
 * far substituted (unbound ones bound to themselves), created_at = now,
 * canonical encoding. *subject and *bytes are the caller's (free()).
 * Then call conf_match_played. CAP_OK, CAP_EJSON/CAP_ENOMEM. */
int conf_match_render(conf_match *m, size_t idx, int64_t now, char **subject, uint8_t **bytes,
                      size_t *len);
void conf_match_played(conf_match *m, size_t idx, int64_t t);

/* A packet the IUT published, seen at real time t. 0 when it matched (or
 * was a consistent non-job packet), 1 when it diverged (the first
 * divergence is kept), a negative error for a resource failure. */
int conf_match_observe(conf_match *m, int64_t t, const char *subject, const uint8_t *bytes,
                       size_t len);

/* Checks for expected records overdue at `now` (due + window passed):
 * 1 when one is (a "missing" divergence), else 0. */
int conf_match_check_missing(conf_match *m, int64_t now);

/* 1 when every expected record matched and every played job record was
 * published. */
int conf_match_complete(const conf_match *m);

/* End of the case at `now`: anything still expected is missing; IUT
 * heartbeats must have been seen. Returns 1 when the case diverged. */
int conf_match_finish(conf_match *m, int64_t now);

/* NULL while nothing diverged; else the report of the first divergence
 * (several lines, no trailing newline). */
const char *conf_match_verdict(const conf_match *m);

/* The index of the golden record the first divergence is about (the one
 * that mismatched or went missing); -1 while nothing diverged or when the
 * divergence is not about one golden record (an unexpected packet, an
 * undecodable one, missing heartbeats). */
long conf_match_divergence_record(const conf_match *m);

/* Counters for the report. */
typedef struct {
    size_t golden, expected, played, matched, observed, bindings;
} conf_match_stats;
conf_match_stats conf_match_stats_get(const conf_match *m);

/* The value bound to golden value g, or NULL. */
const char *conf_match_binding(const conf_match *m, const char *g);

#endif
