/* One simulated run: a scenario, a seed, the reference components as
 * actors on the simulated bus, on a virtual clock, with the invariants
 * checked after every step (docs/simulator.md).
 *
 * Actors: the gateway (the workload: submits JobRequests on
 * sys.job.submit, runs workflows step by step; signed in the
 * CAP-PRODUCTION form when the scenario says gateway.sign), the reference scheduler
 * (ref_scheduler with the scenario's policy), the reference workers
 * (ref_worker with a behaviour model: service time, success / retryable /
 * fatal / hang, crash), an approver (approves or rejects parked jobs after
 * a delay), and the operator (the fault timeline: crashes, restarts,
 * partitions, bus faults, clock skew, policy changes, cancels). Each actor
 * draws from its own random stream of the seed (sim_rng_stream), so adding
 * one never changes another's draws. Deliveries to a crashed scheduler on
 * the durable subjects (sys.job.submit, sys.job.result) are kept and
 * redelivered when it restarts (JetStream); everything else sent to a
 * dead actor is lost.
 *
 * The run is single-threaded and depends on nothing but the scenario and
 * the seed: the same pair gives the same trace hash on any machine. */
#ifndef SIM_WORLD_H
#define SIM_WORLD_H

#include <stdint.h>
#include <stdio.h>

#include "cap_error.h"
#include "sim_scenario.h"

typedef struct {
    const sim_scenario *scn;
    uint64_t seed;
    FILE *trace_bin;     /* optional: the binary trace */
    FILE *trace_jsonl;   /* optional: the JSONL trace */
    /* Shrinking knobs (0 / NULL: the scenario's own) */
    uint64_t max_jobs;
    int64_t duration_ns;
    const unsigned char *skip_event; /* scn->n_timeline flags: 1 = leave that event out */
    uint32_t workers_limit;          /* run at most this many workers of each spec (0: all) */
    /* 0 (the default): the invariants the scenario names are checked.
     * 1: none is checked (the scenario's `invariants` list is ignored);
     * wire encoding and the strict decode of every delivery stay on.
     * For benchmarks (docs/simulator.md, "Checks off"). */
    int checks_off;
    /* 0 (the default): the scheduler's job and eviction records reach the
     * checker as compact views unless a restart of the scheduler is
     * scheduled (the journal is then kept, as text). 1: the scheduler
     * writes each of them both as text and as a view; the checker reads
     * the text and stops the run (invariant "journal") when the view
     * differs from it. For tests (docs/simulator.md, "Journal views"). */
    int journal_check;
    /* NULL (the default): no story. A job id: every step of the run that
     * concerns that job is written to history_out (NULL: stdout) as it
     * happens (sim_story.h); the run is otherwise the same, to the hash. */
    const char *history_job;
    FILE *history_out;
} sim_run_config;

typedef struct {
    char topic[128];
    uint64_t n;
    int64_t p50, p95, p99; /* submit to terminal, ns */
} sim_topic_latency;

typedef struct {
    /* the first violation (violated 0: none) */
    int violated;
    char invariant[32];
    char job_id[256];
    int64_t at;
    char detail[512];

    int64_t end_time;              /* virtual ns when the run stopped */
    uint64_t submitted;            /* jobs the gateway submitted (compensations not counted) */
    uint64_t succeeded, failed, failed_fatal, cancelled, denied, timed_out;
    uint64_t parked, unfinished;   /* at the end */
    uint64_t compensations, retries, rollbacks, breaker_openings, dlq, duplicates, stale;
    uint64_t approvals, rejections;
    uint64_t approvals_stale;      /* approvals refused: the policy changed since they were asked */
    int64_t approval_wait_ns;      /* total time parked jobs waited for their answer */
    uint64_t handler_calls;
    uint64_t heartbeats_missed;    /* heartbeats left out (workers' p_heartbeat_miss) */
    uint64_t heartbeats_late;      /* heartbeats sent late (workers' heartbeat_delay) */
    uint64_t checkpoints_reported; /* checkpoint progress packets published (workers' checkpoints) */
    uint64_t checkpoint_resumes;   /* attempts that resumed from a checkpoint */
    double utilisation;            /* busy worker-slot time / available worker-slot time */
    double throughput;             /* terminal jobs per second of virtual time */
    sim_topic_latency topics[32];
    size_t n_topics;
    uint64_t trace_records;
    uint64_t events;               /* items popped from the event queue */
    char trace_hash[65];
    uint64_t bus_published, bus_delivered, bus_dropped, bus_duplicated, bus_corrupted,
        bus_decode_failures;
    uint64_t bus_replayed;         /* late copies scheduled by `replay` faults */
    /* Signing (`gateway: {sign: true}`): submits the gateway signed, and
     * what the scheduler's replay guard answered to a signed submit it had
     * already seen: a duplicate (no second side effect), refused because
     * its signature expired, refused as a conflicting body. */
    uint64_t signed_submits, signed_duplicates, signed_expired, signed_conflicts;
    uint64_t twins_sent;           /* `conflict` twins published (not counted as submitted) */
    uint64_t history_lines;        /* with history_job: the story's lines about that job */
} sim_result;

/* Runs one seed. CAP_OK with *res filled (res->violated says whether an
 * invariant broke); a negative error (d says why) when the run could not
 * be carried out at all (a resource, a policy file that vanished). */
int sim_run(const sim_run_config *cfg, sim_result *res, cap_diag *d);

/* A virtual duration as the reports print it: 1.594s from a second up,
 * 351.790ms below. */
void sim_duration_text(int64_t ns, char *buf, size_t n);

/* Prints the seed and the values derived from it, the summary and the
 * trace hash (the `capsim sim` report). */
void sim_result_print(const sim_run_config *cfg, const sim_result *res, FILE *out);

/* What a run derives from its seed, as the report shows it: the first
 * state word of each top-level stream (gateway, scheduler, approver,
 * bus.route, bus.latency, and gateway.key and gateway.sign when the
 * gateway signs). Fills out (room for SIM_SEED_STREAMS_MAX) and returns
 * the count. The names are static strings. */
#define SIM_SEED_STREAMS_MAX 7
typedef struct {
    const char *name;
    uint64_t first;
} sim_seed_stream;
size_t sim_seed_streams(const sim_run_config *cfg, sim_seed_stream out[SIM_SEED_STREAMS_MAX]);

#endif
