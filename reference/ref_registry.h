/* Worker registry: who is alive, what each worker reported, and which
 * worker gets a job (Cordum's LeastLoaded strategy, cordum-ref 4).
 *
 * Inputs are decoded packets plus `now`, int64 nanoseconds on the caller's
 * clock (virtual in the simulator); nothing here reads a clock. `now` must
 * never decrease from one call to the next (CAP_EINVAL otherwise) and must
 * be >= 0. docs/reference-registry.md explains every rule and default.
 *
 * Heartbeats (cap-spec 1.3, 05). A heartbeat registers a worker or
 * replaces everything it reported before (cordum-ref 6): pool, region,
 * type, loads, active/max jobs, progress, last memo, capabilities and
 * labels. Heartbeat.auth_token is never stored (cap-spec 05 L17, L27) and
 * neither is agent_name (display only, 05 L18).
 *
 * Liveness. The heartbeat interval is configured per registry (default
 * 10 s, the Cordum SDK's interval, cordum-ref 6); nothing on the wire
 * carries it. A worker is alive while now - last_seen <= grace, where
 * grace = grace_multiplier x interval (default 3 x 10 s = 30 s: the
 * "3x interval" of cap-spec 05 and Cordum's 30 s worker TTL with its
 * `<=`). last_seen is the time of the latest heartbeat, or of the
 * handshake for a worker that has not sent a heartbeat yet. At
 * last_seen + grace the worker is still alive; one nanosecond later it is
 * lost. ref_registry_expire removes lost workers and reports them.
 *
 * Handshakes (cap-spec 1.7, 14). A handshake from a worker records its
 * negotiated protocol version, its ready_topics and the capability keys it
 * advertises as true. It narrows where the worker can be placed; it never
 * makes a worker selectable on its own (a worker needs a heartbeat, with a
 * pool, to be a candidate; cap-spec 14 L10-L12).
 *
 * Determinism. Workers live in one array sorted by worker id (bytewise),
 * so lookups are binary searches and every walk (selection, expiry,
 * iteration) goes in ascending id order. No hash order, pointer order or
 * allocation address reaches any result. Score ties fall to the smallest
 * worker id.
 *
 * Bounds. At most max_workers workers (CAP_EFULL when a new one does not
 * fit). Every string and list taken from a packet is checked against the
 * REF_REGISTRY_* bounds below and copied; a packet over a bound is refused
 * whole (CAP_EINVAL with a diagnostic naming the field) and changes
 * nothing. The registry owns every copy; the packets passed in are only
 * read during the call.
 *
 * Errors: negative cap_err values (cap_error.h); a cap_diag *d, where
 * taken, may be NULL and otherwise receives a one-line reason naming the
 * field ("Heartbeat.cpu_load"). */
#ifndef REF_REGISTRY_H
#define REF_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"
#include "cap_schema.h"

/* Longest worker id and pool name, in bytes (no NUL counted). Equal to
 * REF_BREAKER_WORKER_ID_MAX, so every id one accepts the other does. */
#define REF_REGISTRY_ID_MAX 255
/* Longest label key or value, capability, ready topic, region, type,
 * sdk_version, handshake capability key. */
#define REF_REGISTRY_STR_MAX 256
/* Longest last_memo. */
#define REF_REGISTRY_MEMO_MAX 1024
/* Most labels, capabilities, ready topics, handshake capability keys. */
#define REF_REGISTRY_LIST_MAX 64
/* Most supported_versions in a handshake, or versions in a config. */
#define REF_REGISTRY_VERSIONS_MAX 16

#define REF_REGISTRY_DEFAULT_MAX_WORKERS ((size_t)1024)
#define REF_REGISTRY_MAX_WORKERS_LIMIT ((size_t)1 << 20)
#define REF_REGISTRY_DEFAULT_INTERVAL_NS (INT64_C(10) * INT64_C(1000000000))
#define REF_REGISTRY_DEFAULT_GRACE_MULTIPLIER 3

typedef struct {
    size_t max_workers;          /* >= 1 and <= REF_REGISTRY_MAX_WORKERS_LIMIT */
    int64_t heartbeat_interval_ns; /* > 0 */
    int32_t grace_multiplier;    /* >= 1; interval x multiplier must fit int64 */
    /* Wire versions this control plane speaks, any order, each > 0, at most
     * REF_REGISTRY_VERSIONS_MAX; copied by ref_registry_new. n_versions 0:
     * {CAP_PROTOCOL_VERSION}. */
    const int32_t *versions;
    size_t n_versions;
    /* 1: a worker whose handshake lists ready_topics is a candidate only
     * for jobs whose topic is listed (cap-spec 14 L64). 0: ignore
     * ready_topics. */
    int filter_ready_topics;
} ref_registry_config;

/* max_workers 1024, interval 10 s, multiplier 3, versions {1},
 * filter_ready_topics 1. */
ref_registry_config ref_registry_config_default(void);

/* CAP_OK, or CAP_EINVAL naming the bad field in d. */
int ref_registry_config_check(const ref_registry_config *cfg, cap_diag *d);

/* A key/value pair; both NUL-terminated. */
typedef struct {
    const char *key;
    const char *value;
} ref_registry_kv;

/* What the registry knows about one worker. Every pointer is owned by the
 * registry and valid until the next call that changes the registry
 * (heartbeat, handshake, expire, remove, free); strings are never NULL
 * ("" when absent). */
typedef struct {
    const char *worker_id;
    int64_t last_seen;         /* see "Liveness" above */

    int has_heartbeat;         /* 0: only a handshake so far; the fields below are zero/"" */
    int64_t last_heartbeat;    /* time of the latest heartbeat */
    const char *pool;
    const char *region;
    const char *type;
    float cpu_load;            /* 0..100 */
    float gpu_utilization;     /* 0..100 */
    float memory_load;         /* 0..100 */
    int32_t active_jobs;       /* >= 0 */
    int32_t max_parallel_jobs; /* >= 0; 0 = no limit declared */
    int32_t progress_pct;      /* 0..100 */
    const char *last_memo;
    const char *const *capabilities; /* as sent, in the order sent */
    size_t n_capabilities;
    const ref_registry_kv *labels;   /* sorted by key, one entry per key (the last sent wins) */
    size_t n_labels;

    int has_handshake;
    int32_t version;           /* negotiated wire version; 0: none in common */
    const char *sdk_version;
    const char *const *ready_topics; /* as sent; none = unspecified (cap-spec 14 L66) */
    size_t n_ready_topics;
    const char *const *hs_capabilities; /* keys advertised true, sorted, unique */
    size_t n_hs_capabilities;

    /* The caller's pointer for this registration of the worker (set with
     * ref_registry_set_inflight_memo); NULL from when the worker is added,
     * and again when it is added after leaving. */
    void *tag;
} ref_worker_info;

typedef struct ref_registry ref_registry;

/* A new, empty registry. cfg NULL: the defaults. *out is freed with
 * ref_registry_free. CAP_OK, CAP_EINVAL (d names the field) or CAP_ENOMEM. */
int ref_registry_new(const ref_registry_config *cfg, ref_registry **out, cap_diag *d);
void ref_registry_free(ref_registry *r);

/* The grace window in ns (interval x multiplier). */
int64_t ref_registry_grace(const ref_registry *r);

/* --- inputs ---------------------------------------------------------------- */

/* Results of ref_registry_heartbeat (non-negative; errors are negative). */
enum {
    REF_REGISTRY_UPDATED = 0, /* a live worker refreshed its report */
    /* The worker came online: it was unknown, had only sent a handshake,
     * or was lost (past its grace window, expired or not). The point at
     * which Cordum replays the pool's waiting jobs (cordum-ref 6,
     * flush-on-worker-online). */
    REF_REGISTRY_ONLINE = 1,
};

/* Records a heartbeat received at now. Refused with CAP_EINVAL (nothing
 * changes) when: worker_id or pool is empty or over REF_REGISTRY_ID_MAX;
 * cpu_load, gpu_utilization or memory_load is not a number in 0..100;
 * active_jobs or max_parallel_jobs is negative; progress_pct is outside
 * 0..100; a string or list is over its bound; or now is negative or
 * earlier than a previous call's. CAP_EFULL when the worker is new and the
 * registry is full; CAP_ENOMEM. Otherwise REF_REGISTRY_UPDATED or
 * REF_REGISTRY_ONLINE. */
int ref_registry_heartbeat(ref_registry *r, int64_t now, const Cordum__Agent__V1__Heartbeat *hb,
                           cap_diag *d);

/* ref_registry_heartbeat that also hands back the worker's tag
 * (ref_worker_info.tag; NULL for a worker just added, and on any error)
 * in *tag (tag may be NULL), so the caller needs no lookup of its own by id. */
int ref_registry_heartbeat_tag(ref_registry *r, int64_t now,
                               const Cordum__Agent__V1__Heartbeat *hb, void **tag, cap_diag *d);

/* Negotiates a wire version: the highest version in both lists (cap-spec
 * 14 L76; cap-tck 4.1). Values <= 0 never match; repeats are harmless.
 * CAP_OK with *version set, or CAP_EVERSION (ERROR_CODE_PROTOCOL_VERSION_
 * MISMATCH) with *version = 0 when the lists share nothing (an empty list
 * shares nothing). */
int ref_registry_negotiate(const int32_t *ours, size_t n_ours, const int32_t *theirs,
                           size_t n_theirs, int32_t *version);

/* Records a worker's Handshake received at now on a packet from
 * sender_id (NULL: not checked). Requirements, else CAP_EINVAL and no
 * change: role COMPONENT_ROLE_WORKER; component_id non-empty, within
 * REF_REGISTRY_ID_MAX, and equal to sender_id (cap-spec 14 ~L93); lists
 * and strings within bounds.
 *
 * Version: supported_versions is negotiated against the registry's
 * versions with ref_registry_negotiate; an empty supported_versions is
 * read as {1}, the version every v1 envelope already carries (an absent
 * field is unspecified, as for ready_topics, cap-spec 14 L66). No common
 * version: the handshake is still recorded, with version 0, the worker is
 * never selected, and CAP_EVERSION is returned (the one error after which
 * the registry has changed); the caller SHOULD refuse jobs to it with
 * ERROR_CODE_PROTOCOL_VERSION_MISMATCH and MAY alert (cap-spec 16).
 *
 * A later handshake replaces the earlier one. A handshake does not refresh
 * the liveness of a worker that has sent heartbeats. CAP_EFULL when the
 * worker is new and the registry is full; CAP_ENOMEM. version may be
 * NULL; otherwise it receives the negotiated version (0 on any error). */
int ref_registry_handshake(ref_registry *r, int64_t now, const char *sender_id,
                           const Cordum__Agent__V1__Handshake *hs, int32_t *version, cap_diag *d);

/* One worker removed by ref_registry_expire. */
typedef struct {
    char worker_id[REF_REGISTRY_ID_MAX + 1];
    char pool[REF_REGISTRY_ID_MAX + 1]; /* "" when it never sent a heartbeat */
    int64_t last_seen;
    int had_heartbeat;
} ref_registry_lost;

/* Removes the workers lost at now (now - last_seen > grace) in ascending
 * worker-id order and copies them into out[0..cap). When more than cap are
 * lost, only the first cap (by id) are removed; the rest stay for the next
 * call. Returns how many were removed (>= 0), or CAP_EINVAL (out NULL with
 * cap > 0; now negative or earlier than before). */
int ref_registry_expire(ref_registry *r, int64_t now, ref_registry_lost *out, size_t cap);

/* The earliest time at which a registered worker will be lost (the time
 * to set an expiry timer for): 1 and *at set, or 0 when the registry is
 * empty. */
int ref_registry_next_expiry(const ref_registry *r, int64_t *at);

/* Removes a worker (e.g. on a planned shutdown). 1 removed, 0 not there. */
int ref_registry_remove(ref_registry *r, const char *worker_id);

/* --- queries --------------------------------------------------------------- */

size_t ref_registry_count(const ref_registry *r);
size_t ref_registry_max(const ref_registry *r);

/* The worker with this id, or NULL. */
const ref_worker_info *ref_registry_find(const ref_registry *r, const char *worker_id);

/* The i-th worker in ascending id order, or NULL when i >= count. */
const ref_worker_info *ref_registry_at(const ref_registry *r, size_t i);

/* 1 when the worker is alive at now (now - last_seen <= grace), else 0. */
int ref_registry_alive(const ref_registry *r, const ref_worker_info *w, int64_t now);

/* Cordum's overload rule (cordum-ref 4.5): max_parallel_jobs > 0 and
 * active_jobs / max_parallel_jobs >= 0.9 (computed exactly, as
 * 10 x active >= 9 x max), or cpu_load >= 90, or gpu_utilization >= 90.
 * 0 for a worker without a heartbeat. */
int ref_registry_overloaded(const ref_worker_info *w);

/* Cordum's least-loaded score (cordum-ref 4.6): active_jobs +
 * cpu_load / 100 + gpu_utilization / 100, in double. Lower is better. */
double ref_registry_score(const ref_worker_info *w);

/* 1 when a job label takes part in placement (cordum-ref 4.3): every key
 * except preferred_worker_id, preferred_pool, secrets_present, workflow_id,
 * run_id, step_id, node_id, worker_id, the "cordum." prefix and the
 * "approval_" prefix (approval_granted and the approval bookkeeping
 * labels, cordum-ref 9) and the "cap.conformance." prefix (the
 * conformance-handler contract, ref_conformance.h). */
int ref_registry_is_placement_label(const char *key);

/* --- selection ------------------------------------------------------------- */

/* Why a worker is not a candidate. A worker may fail several filters; it
 * is counted under each. */
typedef enum {
    REF_SEL_EXCLUDED = 0, /* in the caller's exclusion set (e.g. breaker open) */
    REF_SEL_LOST,         /* past its grace window */
    REF_SEL_POOL,         /* no heartbeat yet, or its pool is not one of the job's pools */
    REF_SEL_VERSION,      /* its handshake shares no wire version with us (no handshake:
                           * it is taken to speak 1, the envelope's version) */
    REF_SEL_TOPIC,        /* its ready_topics do not list the job's topic */
    REF_SEL_REQUIRES,     /* lacks a capability the job requires */
    REF_SEL_LABELS,       /* a placement label missing or different */
    REF_SEL_OVERLOADED,   /* ref_registry_overloaded */
    REF_SEL_NFILTERS
} ref_sel_filter;

/* "excluded", "lost", "pool", "version", "topic", "requires", "labels",
 * "overloaded"; "?" otherwise. */
const char *ref_sel_filter_name(ref_sel_filter f);

typedef enum {
    REF_SEL_OK = 0,           /* a worker was chosen */
    /* No candidate; at least one worker fails only because it is
     * overloaded (Cordum ErrPoolOverloaded, retryable). */
    REF_SEL_ALL_OVERLOADED,
    /* No candidate; at least one worker fails only on the wire version
     * (possibly also overloaded), none only on overload
     * (ERROR_CODE_PROTOCOL_VERSION_MISMATCH, cap-spec 14 L76). */
    REF_SEL_VERSION_MISMATCH,
    /* No candidate for any other reason (Cordum ErrNoWorkers). */
    REF_SEL_NO_WORKERS,
} ref_sel_outcome;

/* "ok", "all_overloaded", "version_mismatch", "no_workers"; "?" otherwise. */
const char *ref_sel_outcome_name(ref_sel_outcome o);

/* The CAP ErrorCode for an outcome: 0 for OK, ERROR_CODE_JOB_RESOURCE_
 * EXHAUSTED (201) for ALL_OVERLOADED, ERROR_CODE_PROTOCOL_VERSION_MISMATCH
 * (100) for VERSION_MISMATCH, ERROR_CODE_JOB_WORKER_UNAVAILABLE (206) for
 * NO_WORKERS. */
int ref_sel_outcome_error_code(ref_sel_outcome o);

typedef struct {
    /* The job: topic (ready_topics filter; NULL or "" skips it),
     * meta->requires, labels (placement labels and preferred_worker_id).
     * Read during the call only. Required. */
    const Cordum__Agent__V1__JobRequest *job;
    /* The pools the job may go to (the scheduler's topic routing,
     * cordum-ref 4.1-4.2); at least one, each non-empty. */
    const char *const *pools;
    size_t n_pools;
    /* Workers not to choose: a list of ids, and/or a predicate returning
     * non-zero for an excluded worker (e.g. a breaker set's "cannot
     * dispatch"). Both optional; the predicate must be a pure function of
     * its inputs. It gets the worker's whole record (valid during the call
     * only), so a caller needs no second lookup by id to read it. */
    const char *const *exclude;
    size_t n_exclude;
    int (*exclude_fn)(void *ctx, const ref_worker_info *w);
    void *exclude_ctx;
    /* 1: first fit. The registry walks its workers in (score, id) order
     * and stops at the first that passes every filter, which is the worker
     * the full scan picks; n_candidates and filtered[] then count only the
     * workers looked at. Workers whose in-flight count (ref_registry_set_
     * inflight) has reached their max_parallel_jobs are passed over as
     * EXCLUDED, and the exclusion predicate is asked only of workers that
     * pass every other filter but OVERLOADED and VERSION. The outcome is
     * always the full scan's. A preferred_worker_id label falls back to the
     * full scan. 0: the full scan (complete counts). */
    int first_fit;
    /* 1: a chosen worker that has a tag (ref_registry_set_inflight_memo)
     * is named by its tag alone: worker_id is left "" (a caller whose tag
     * holds the worker's id needs no copy of it, which would read the
     * registry's copy of the id, kept apart from the worker's record). A
     * chosen worker without a tag gets its worker_id as usual. */
    int id_by_tag;
} ref_sel_request;

typedef struct {
    ref_sel_outcome outcome;
    char worker_id[REF_REGISTRY_ID_MAX + 1]; /* "" unless OK */
    char pool[REF_REGISTRY_ID_MAX + 1];      /* the chosen worker's pool; "" unless OK */
    double score;          /* the chosen worker's score */
    void *tag;             /* the chosen worker's ref_worker_info.tag; NULL unless OK */
    int preferred;         /* 1: chosen as the job's preferred_worker_id */
    size_t n_workers;      /* workers examined (all registered) */
    size_t n_candidates;   /* workers that passed every filter */
    size_t filtered[REF_SEL_NFILTERS]; /* workers failing each filter */
} ref_sel_result;

/* Picks the worker for a job at now. Candidates pass every filter above.
 * The job's label preferred_worker_id, when it names a candidate, wins
 * (cordum-ref 4.4). Otherwise the candidate with the lowest score wins,
 * ties going to the smallest worker id (bytewise). Requirements (case-
 * insensitive ASCII, cordum-ref 4.2): every meta.requires entry must be
 * among the worker's heartbeat capabilities or its handshake's true
 * capability keys. Labels (exact bytes, cordum-ref 4.3): every placement
 * label of the job must be among the worker's heartbeat labels with an
 * equal value. Load is only what heartbeats reported: the registry does
 * not count its own dispatches (cordum-ref 4.9).
 *
 * Returns CAP_OK with *out filled (outcome says whether a worker was
 * chosen), or CAP_EINVAL (missing job, no pools, an empty pool name, now
 * negative or earlier than before). Changes nothing. */
int ref_registry_select(const ref_registry *r, int64_t now, const ref_sel_request *req,
                        ref_sel_result *out);

/* A caller's count of the jobs it has in flight on worker_id, read by
 * first-fit selection only (0 when never set; reset when the worker is
 * added again). Nothing when the worker is not registered. */
void ref_registry_set_inflight(ref_registry *r, const char *worker_id, uint32_t n);

/* Where a worker was last found in the registry, kept by a caller that
 * acts on the same worker again and again, so that a later call skips the
 * lookup by id. Start it zeroed and pass it only with the worker id it was
 * first used with. Every registration of a worker has its own serial
 * number (never reused), so a memo that no longer holds (the worker moved
 * in the registry, left, or was added again) is noticed and refreshed by a
 * lookup by id: any memo gives the same result as none. */
typedef struct {
    size_t at;
    uint64_t serial; /* 0: nothing remembered */
} ref_registry_memo;

/* ref_registry_set_inflight through a memo (m may be NULL), which also
 * sets the registration's tag (ref_worker_info.tag, ref_sel_result.tag)
 * to `tag`. Nothing when the worker is not registered. */
void ref_registry_set_inflight_memo(ref_registry *r, const char *worker_id, ref_registry_memo *m,
                                    uint32_t n, void *tag);

#endif
