/* Offline trace checker: judges a recorded trace (docs/trace.md) against
 * the rules of CAP that a bus observer can check, without any case file
 * (DESIGN.md §4 point 3, docs/check-trace.md).
 *
 * The checker is a sans-I/O state machine fed one trace record at a time
 * (conf_tc_feed); every broken rule is handed to the caller's sink as it
 * is found. conf_tc_check_file drives it from a trace file.
 *
 * Rules (ids as printed; the clause each one names):
 *   undecodable            the strict decoder rejects the packet (cap-spec 02, 16 L25)
 *   bad-signature          the signature verifies with none of the keys (02 Signing, 19)
 *   missing-signature      unsigned while signatures are required (02, 13: code 104)
 *   state-backward         the control plane moves a job backwards (07 L48)
 *   state-illegal          a first state other than PENDING, an unknown state (07 L21)
 *   cancel-after-terminal  the control plane cancels a terminal job (07 L50)
 *   one-terminal           the control plane reports a second, different terminal (07 L49)
 *   dispatch-denied        a job the trace shows DENIED is dispatched (06 L23)
 *   attempt-order          a new dispatch identity without a higher attempt (19 dispatch fencing)
 *   stale-attempt          a stale dispatch identity changes a job (09 ~L69-72, 19 fencing)
 *   duplicate-side-effect  a second, different result, or the handler run again, for one
 *                          (dispatch_id, attempt) (09 ~L69-72)
 *
 * Memory is bounded by the live jobs: a terminal job is forgotten once
 * `evict_after` records have passed without a packet about it, and at most
 * `max_jobs` jobs are held (the least recently seen is dropped first). Each
 * job keeps at most CONF_TC_IDENTS (dispatch identity, reporter) entries.
 *
 * Ownership: conf_tc borrows the keys in its options (they must outlive
 * it); strings in a violation handed to the sink are valid only during the
 * call. */
#ifndef CONF_TRACECHECK_H
#define CONF_TRACECHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cap_decode.h"
#include "cap_error.h"
#include "cap_sign.h"
#include "cap_trace.h"

/* Identities (dispatch_id, attempt, reporter) remembered per job. */
#define CONF_TC_IDENTS 8
/* Senders remembered as workers (heartbeat senders, assigned workers). */
#define CONF_TC_MAX_WORKERS 4096
/* Keys accepted by one checker. */
#define CONF_TC_MAX_KEYS 16

typedef struct {
    const cap_key *const *keys; /* public keys to verify signatures with (borrowed) */
    size_t n_keys;              /* at most CONF_TC_MAX_KEYS */
    int require_signatures;     /* an unsigned packet is a violation */
    size_t max_jobs;            /* 0: 100000 */
    uint64_t evict_after;       /* records; 0: 100000 */
    cap_bounds bounds;          /* for the strict decoder (zeroed: cap_bounds_default) */
} conf_tc_options;

/* One broken rule. */
typedef struct {
    uint64_t record;     /* 0-based index of the record in the trace */
    int64_t time;        /* the record's time, ns */
    const char *subject;
    const char *sender;
    const char *job_id;  /* "" when the packet names no job */
    const char *rule;    /* the rule id above */
    const char *what;    /* what happened */
    const char *expect;  /* what the rule says */
    const char *clause;  /* the spec clause, "cap-spec 07 L48 (...)" */
} conf_tc_violation;

typedef void (*conf_tc_sink)(void *ctx, const conf_tc_violation *v);

typedef struct {
    uint64_t records;      /* records fed */
    uint64_t packets;      /* publish records judged */
    uint64_t violations;
    uint64_t jobs_seen;    /* distinct jobs created (an evicted job seen again counts again) */
    uint64_t jobs_live;    /* held now */
    uint64_t evicted;      /* terminal jobs forgotten */
    uint64_t evicted_live; /* non-terminal jobs dropped because max_jobs was reached */
    uint64_t stale_ignored;/* stale packets a fenced consumer ignores (not violations) */
    uint64_t signatures_checked;
} conf_tc_stats;

typedef struct conf_tc conf_tc;

/* A new checker. o may be NULL (defaults); sink may be NULL (count only).
 * CAP_EINVAL (too many keys), CAP_ENOMEM. Free with conf_tc_free. */
int conf_tc_new(const conf_tc_options *o, conf_tc_sink sink, void *ctx, conf_tc **out);

/* Judges one record (records other than PUBLISH are counted and skipped).
 * CAP_OK, or CAP_ENOMEM (the checker stays usable; the record is lost). */
int conf_tc_feed(conf_tc *c, const cap_trace_record *r);

void conf_tc_get_stats(const conf_tc *c, conf_tc_stats *s);

/* NULL accepted. */
void conf_tc_free(conf_tc *c);

/* Reads the trace on f (borrowed) in format fmt and feeds every record.
 * Returns CAP_OK when the whole trace was read (violations or not; see
 * stats), or the reader's error (CAP_ETRACE, CAP_EJSON, CAP_EIO) with diag,
 * after having judged the records before the bad one. lim may be NULL. */
int conf_tc_check_file(FILE *f, cap_trace_format fmt, const cap_trace_limits *lim,
                       const conf_tc_options *o, conf_tc_sink sink, void *ctx,
                       conf_tc_stats *stats, cap_diag *diag);

#endif
