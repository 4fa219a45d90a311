/* A reference CAP component hosted on a real NATS bus, in real time: the
 * reference worker (ref_worker, its handler obeying the conformance-handler
 * contract of ref_conformance.h) or the reference scheduler (ref_scheduler
 * with a safety policy). docs/certify.md describes both processes.
 *
 * The peer is the real-bus twin of the simulator's glue (sim_world.c):
 * every packet that arrives is decoded by the strict decoder (bounded, a
 * rejected packet is dropped and counted, never handed on), given to the
 * component with the current time, and the component's effects are carried
 * out in order: a PUBLISH is encoded canonically and published, a TIMER_SET
 * arms a timer on the peer's clock, a JOURNAL line is written to the log
 * when one is given. The clock is monotonic, anchored once to Unix time,
 * so created_at stamps are wall-clock and timers never jump.
 *
 * Subjects (cap-spec 09). Worker: job.<pool> in the queue group
 * "workers.<pool>", worker.<id>.jobs, sys.job.cancel. Scheduler:
 * sys.job.submit, sys.job.result and sys.job.progress in the queue group
 * "cordum-scheduler"; sys.job.cancel, sys.heartbeat, sys.handshake; and
 * the test-control subjects capsim.control.approve / .reject / .cancel
 * (CONF_PEER_CONTROL_PREFIX), whose JSON body is
 *   {"job_id": "...", "by": "...", "note": "..."}   (at most 4 KiB)
 * and which answer on the message's reply subject, when there is one,
 * with {"job_id": "...", "answer": "ok" | "not-found" | ...}.
 *
 * Ownership: the config is read during conf_peer_new only. */
#ifndef CONF_PEER_H
#define CONF_PEER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cap_error.h"

#define CONF_PEER_CONTROL_PREFIX "capsim.control."
#define CONF_PEER_CONTROL_MAX_BODY ((size_t)4096)
#define CONF_PEER_SCHEDULER_GROUP "cordum-scheduler"

typedef enum { CONF_PEER_WORKER = 1, CONF_PEER_SCHEDULER = 2 } conf_peer_role;

typedef struct {
    conf_peer_role role;
    const char *url;            /* NATS URL, required */
    /* worker */
    const char *worker_id;      /* required for a worker */
    const char *pool;           /* "tools" or "job.tools": the pool subject is job.tools */
    int32_t max_parallel;       /* 0: 1 */
    int64_t heartbeat_ns;       /* 0: the reference default (5 s) */
    /* scheduler */
    const char *scheduler_id;   /* NULL: "scheduler" */
    const char *policy_path;    /* NULL: allow everything */
    int64_t dispatch_timeout_ns, running_timeout_ns, no_worker_wait_ns; /* 0: defaults */
    uint32_t max_retries;
    int max_retries_set;
    int64_t worker_grace_ns;    /* a worker is lost after this long without a heartbeat; 0: 30 s */
    uint32_t breaker_threshold; /* failures that open a worker's breaker; 0: default */
    int64_t breaker_cool_down_ns; /* 0: default */
    int dispatch_on_pool;       /* 1: dispatch on job.<pool> instead of worker.<id>.jobs */
    uint64_t seed;              /* dispatch ids and jitter; 0: from /dev/urandom */
    /* both */
    FILE *log;                  /* NULL: quiet; else one line per event and journal record */
} conf_peer_config;

typedef struct conf_peer conf_peer;

/* Connects, builds the component, subscribes. CAP_OK with *out; CAP_EINVAL
 * (bad configuration, an unreadable policy) or CAP_EIO (the bus) with the
 * reason in err. */
int conf_peer_new(const conf_peer_config *cfg, conf_peer **out, char *err, size_t n);

/* Runs until *stop becomes non-zero (CAP_OK) or the connection is lost
 * (CAP_EIO, err says so). The worker's first heartbeat goes out at once. */
int conf_peer_run(conf_peer *p, volatile sig_atomic_t *stop, char *err, size_t n);

/* Packets received, rejected by the decoder, and published. */
typedef struct {
    uint64_t received, rejected, published, handler_calls;
} conf_peer_stats;

conf_peer_stats conf_peer_stats_get(const conf_peer *p);

void conf_peer_free(conf_peer *p);

#endif
