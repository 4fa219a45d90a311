/* Scenario files: what one simulated run is made of (docs/scenarios.md).
 *
 * A scenario is YAML read through the bounded reader (cap_yaml): the
 * actors (workers with behaviour models, a human approver), the workload,
 * the safety policy, the fault timeline, how long to run, and the
 * invariants to check. sim_scenario_load validates everything before a run
 * starts: every error names FILE:LINE:COLUMN and the key path, and a fault
 * that names an unknown actor is an error.
 *
 * Times in the file are durations with a unit ("250ms", "30s", "5m",
 * "1h", "100us", "10ns"; a bare integer is seconds); they are stored in ns.
 * Probabilities are numbers in [0, 1].
 *
 * Ownership: sim_scenario_load returns a scenario freed with
 * sim_scenario_free; every string and array in it belongs to it. */
#ifndef SIM_SCENARIO_H
#define SIM_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "cap_yaml.h"
#include "sim_bus.h"

#define SIM_SCENARIO_MAX_BYTES ((size_t)1 << 20)
#define SIM_SCENARIO_MAX_WORKERS 4096
#define SIM_SCENARIO_MAX_MIX 64
#define SIM_SCENARIO_MAX_FAULTS 1024
#define SIM_SCENARIO_MAX_CONFLICTS 1000000 /* a conflict event's count */
#define SIM_SCENARIO_MAX_SCRIPT 10000
#define SIM_SCENARIO_MAX_KV 32
#define SIM_MAX_CHECKPOINTS 100

typedef struct {
    char *key, *value;
} sim_kv;

/* One worker (or `count` identical workers named id-1 .. id-N). */
typedef struct {
    char *id;
    char *pool;               /* subject of its pool, e.g. "job.tools" */
    uint32_t count;           /* default 1 */
    int32_t max_parallel;     /* default 1 */
    int64_t heartbeat_ns;     /* default 5 s */
    sim_dist service;         /* service time; default fixed 1 s */
    double p_retryable, p_fatal, p_hang; /* the rest succeeds; sum <= 1 */
    double p_crash;           /* per job: the worker process dies while running it */
    int64_t restart_after_ns; /* a crashed worker comes back after this; 0: never */
    /* Slow or missing heartbeats (the worker itself keeps running): each
     * heartbeat is left out with probability p_heartbeat_miss, else sent
     * heartbeat_delay late (default fixed 0), its interval counted from
     * when it went out. Drawn from the worker's own stream
     * "actor.<name>.heartbeat". */
    double p_heartbeat_miss;
    sim_dist heartbeat_delay;
    /* Checkpoints a job reports while it runs (0..SIM_MAX_CHECKPOINTS):
     * JobProgress packets at k/(N+1) of its service time whose result_ptr
     * names checkpoint k; an attempt handed one of them in env
     * CORDUM_LAST_MEMO resumes there, running only the rest. */
    uint32_t checkpoints;
    sim_kv *labels;
    size_t n_labels;
    char **capabilities;
    size_t n_capabilities;
} sim_worker_spec;

/* 1 when the worker's heartbeats may be missed or late. */
int sim_worker_heartbeat_faults(const sim_worker_spec *w);

/* One kind of job in the workload mix. */
typedef struct {
    char *topic;
    double weight;            /* relative; default 1 */
    char *tenant;             /* default "tenant-a" */
    int priority;             /* JobPriority value; default INTERACTIVE (1) */
    sim_kv *labels;           /* request labels (placement!) */
    size_t n_labels;
    sim_kv *meta_labels;      /* meta.labels (read by the policy, not placement) */
    size_t n_meta_labels;
    char **risk_tags;
    size_t n_risk_tags;
    uint32_t workflow_steps;  /* > 0: each arrival is a workflow of this many sequential jobs */
    char *compensation_topic; /* workflow steps carry a Compensation on this topic (NULL: none) */
    char *idempotency_key;    /* a fixed key: repeats are duplicates (205) (NULL: none) */
} sim_job_spec;

typedef enum {
    SIM_LOAD_NONE = 0,
    SIM_LOAD_POISSON = 1, /* open loop: arrivals at `rate` per second */
    SIM_LOAD_CLOSED = 2,  /* `concurrency` clients, each submits again when its job ends (+ think time) */
    SIM_LOAD_BURST = 3,   /* `burst_size` jobs every `burst_every_ns` */
} sim_load_kind;

/* A scripted submission: at `at`, one job of mix entry `mix` (by index),
 * with this job id ("" = generated). */
typedef struct {
    int64_t at;
    size_t mix;
    char *job_id;
} sim_script_entry;

typedef struct {
    sim_load_kind kind;
    double rate;              /* POISSON: jobs per second */
    uint32_t concurrency;     /* CLOSED */
    int64_t think_ns;         /* CLOSED */
    uint32_t burst_size;      /* BURST */
    int64_t burst_every_ns;   /* BURST */
    uint64_t max_jobs;        /* stop submitting after this many (0: no limit) */
    int64_t stop_at_ns;       /* stop submitting at this time (0: the run's duration) */
    sim_job_spec *mix;
    size_t n_mix;
    sim_script_entry *script; /* scripted submissions, in time order */
    size_t n_script;
} sim_workload_spec;

typedef struct {
    int present;
    sim_dist delay;           /* how long a human takes; default fixed 30 s */
    double p_approve;         /* default 1 */
    char *name;               /* who approves; default "approver-1" */
} sim_approver_spec;

/* The gateway's signing (docs/scenarios.md, `gateway`). */
#define SIM_SIGN_DEFAULT_LIFETIME_NS (INT64_C(120) * 1000000000)  /* 2 min */
#define SIM_SIGN_MAX_LIFETIME_NS (INT64_C(300) * 1000000000)      /* 5 min: the production bound */

typedef struct {
    int sign;                     /* 1: every submit goes out in the CAP-PRODUCTION signed form */
    int64_t signature_lifetime_ns; /* expires_at = the gateway's clock + this; default 2 min */
} sim_gateway_spec;

typedef enum {
    SIM_EV_CRASH = 1,         /* crash an actor (a worker, or "scheduler") */
    SIM_EV_RESTART,           /* restart it (the scheduler from its journal) */
    SIM_EV_PARTITION,         /* partition a and b (b "" = everyone) */
    SIM_EV_HEAL,              /* heal partitions of a (and b) */
    SIM_EV_FAULT,             /* add a bus fault rule (duplicate, loss, latency, reorder, corrupt, replay) */
    SIM_EV_SKEW,              /* set an actor's clock skew */
    SIM_EV_POLICY,            /* load another policy file */
    SIM_EV_CANCEL,            /* operator cancels a job by id */
    SIM_EV_CONFLICT,          /* the gateway reuses signed message ids with another body */
} sim_event_kind;

typedef struct {
    int64_t at;
    sim_event_kind kind;
    char *a, *b;              /* actor names (CRASH/RESTART/PARTITION/HEAL/SKEW), job id (CANCEL) */
    char *policy_path;        /* POLICY: resolved against the scenario's directory */
    sim_fault fault;          /* FAULT: start = at, end = at + duration (strings owned) */
    int64_t skew_ns;          /* SKEW */
    uint64_t count;           /* CONFLICT: how many admitted submits get a conflicting twin */
    int64_t after_ns;         /* CONFLICT: how long after the admission the twin is sent */
    int line;                 /* where it was written, for messages */
} sim_timeline_event;

/* Invariants (all on by default; a scenario may list the ones it wants). */
enum {
    SIM_INV_NO_BACKWARD = 1u << 0,
    SIM_INV_ONE_TERMINAL = 1u << 1,
    SIM_INV_DISPATCH_ALLOWED = 1u << 2,
    SIM_INV_APPROVAL_BOUND = 1u << 3,
    SIM_INV_HANDLER_ONCE = 1u << 4,
    SIM_INV_LIVENESS = 1u << 5,
    SIM_INV_COMPENSATION = 1u << 6,
    SIM_INV_RESTART = 1u << 7,
    SIM_INV_CONFLICT_REFUSED = 1u << 8,
    SIM_INV_CHECKPOINT = 1u << 9,
    SIM_INV_ALL = (1u << 10) - 1,
};

/* "no-backward", "one-terminal", "dispatch-allowed", "approval-bound",
 * "handler-once", "liveness", "compensation", "restart", "conflict-refused",
 * "checkpoint"; NULL otherwise. */
const char *sim_invariant_name(unsigned bit);

/* max_events_per_instant: the default, and the accepted range. */
#define SIM_DEFAULT_EVENTS_PER_INSTANT UINT64_C(1000000)
#define SIM_MIN_EVENTS_PER_INSTANT UINT64_C(1000)
#define SIM_MAX_EVENTS_PER_INSTANT UINT64_C(1000000000)

typedef struct {
    char *path;               /* the file it was read from */
    char *name;
    char *description;
    uint64_t seed;            /* default seed (--seed overrides) */
    int64_t duration_ns;      /* how long the workload and faults run */
    int64_t drain_ns;         /* then how long the run may drain (liveness bound); default 10 min */
    /* The most events the run may handle at one virtual instant before it
     * stops as stalled (a zero-time loop); default SIM_DEFAULT_EVENTS_PER_INSTANT. */
    uint64_t max_events_per_instant;
    char *policy_path;        /* resolved; the policy text is read by the loader */
    char *policy_text;
    size_t policy_len;
    /* scheduler settings (0: the reference default) */
    int64_t dispatch_timeout_ns, running_timeout_ns, no_worker_wait_ns;
    uint32_t max_retries;
    int max_retries_set;
    uint32_t breaker_threshold;
    int64_t breaker_cool_down_ns;
    int64_t worker_grace_ns;  /* a worker is lost after this long without a heartbeat (0: 30 s) */
    sim_dist latency;         /* the bus's default latency; default fixed 1 ms */
    sim_worker_spec *workers;
    size_t n_workers;
    sim_workload_spec workload;
    sim_approver_spec approver;
    sim_gateway_spec gateway;
    sim_timeline_event *timeline; /* in time order (stable for equal times) */
    size_t n_timeline;
    unsigned invariants;      /* SIM_INV_* bits */
    char **sets;              /* the overrides it was loaded with (PATH=VALUE), for reports */
    size_t n_sets;
} sim_scenario;

/* Most overrides one scenario takes. */
#define SIM_SCENARIO_MAX_SETS 64

/* Reads and validates a scenario file. CAP_OK with *out; else an error
 * (CAP_EIO unreadable, CAP_EYAML, CAP_EPOLICY bad policy, CAP_EINVAL a bad
 * value) with d naming FILE:LINE:COLUMN, the key path and the reason.
 * A policy file that does not load is reported at the scenario's `policy`
 * value, the reason starting with the policy file's own
 * "POLICYFILE:LINE:COLUMN: PATH: ". *out is NULL on failure. */
int sim_scenario_load(const char *path, sim_scenario **out, cap_yaml_diag *d);

/* The same from text; `path` names it in messages and anchors relative
 * policy paths. */
int sim_scenario_parse(const char *path, const char *text, size_t len, sim_scenario **out,
                       cap_yaml_diag *d);

/* sim_scenario_load and sim_scenario_parse with overrides, as capsim sim
 * --set gives them: sets[i] is PATH=VALUE (cap_yaml_set), applied in order
 * to the file's YAML before anything is validated, so that the scenario is
 * what the file would be had it said so (a relative `policy` path still
 * resolves against the file's directory). An error in an override, or
 * about a value one put there, has d->origin = i + 1. At most
 * SIM_SCENARIO_MAX_SETS. The scenario keeps copies in sets and n_sets. */
int sim_scenario_load_with(const char *path, const char *const *sets, size_t n_sets,
                           sim_scenario **out, cap_yaml_diag *d);
int sim_scenario_parse_with(const char *path, const char *text, size_t len,
                            const char *const *sets, size_t n_sets, sim_scenario **out,
                            cap_yaml_diag *d);

void sim_scenario_free(sim_scenario *s);

/* Parses a duration ("30s", "250ms", "1.5s"...). CAP_OK or CAP_EINVAL. */
int sim_parse_duration(const char *text, int64_t *ns);

/* The actor names a scenario defines: "gateway", "scheduler", "approver"
 * (when present), and every worker id (id-1..id-N for count > 1), plus
 * "pool:<pool>" groups usable in partitions. 1 when name is one. */
int sim_scenario_has_actor(const sim_scenario *s, const char *name);

#endif
