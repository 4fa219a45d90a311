/* The story of one job in a simulated run (`capsim sim --history JOB`,
 * docs/simulator.md "A job's history"): every step of the run that
 * concerns the job, one line each, written as it happens:
 *
 *   publish   a packet about the job put on the bus (submit, dispatch,
 *             progress, result, cancel, alert), with what it says;
 *   deliver   a copy of such a packet reaching its receiver, or held for
 *             a scheduler that is down, or lost to a receiver that is;
 *   drop      a copy the bus dropped (loss, partition, unsubscribed);
 *   refuse    a copy whose bytes the receiver's strict decoder refused;
 *   journal   a scheduler journal record about the job (state, event,
 *             attempt, dispatch, worker, decision, rule, reason);
 *   handler   a worker's handler run for it, and the outcome drawn;
 *   approver  the approver's answer;
 *   operator  each timeline step (crashes, partitions, faults, policy
 *             changes, cancels), since they explain what follows.
 *
 * A packet concerns the job when its payload names the job's id. The
 * packet is told apart from the others by its bus number (the publish's
 * msg_id), so the copies of it are followed to the end even when a
 * corrupted copy no longer decodes.
 *
 * The story only reads: a run with a story gives the same trace, the
 * same summary and the same hash as without one.
 *
 * Ownership: sim_story_new returns a story freed with sim_story_free; the
 * caller owns `out` and keeps it open until then. */
#ifndef SIM_STORY_H
#define SIM_STORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cap_error.h"
#include "sim_scenario.h"

/* The longest job id a story follows (longer ones are CAP_EINVAL). */
#define SIM_STORY_MAX_ID 256
/* Packets of the job followed at most; past that, publishes are still
 * told but their copies are no longer followed (said once). */
#define SIM_STORY_MAX_PACKETS ((size_t)1 << 20)

typedef struct sim_story sim_story;

/* A story of job_id (1..SIM_STORY_MAX_ID bytes, no control character)
 * written to out. CAP_EINVAL, CAP_ENOMEM. */
int sim_story_new(const char *job_id, FILE *out, sim_story **st);
void sim_story_free(sim_story *st);

const char *sim_story_job(const sim_story *st);

/* Lines written so far, and those of them about the job itself (all but
 * the operator's timeline steps). */
uint64_t sim_story_lines(const sim_story *st);
uint64_t sim_story_lines_about(const sim_story *st);

/* A packet published by `from` on `subject` as bus message msg_id: when
 * its bytes name the job, a `publish` line, and the message is followed. */
void sim_story_publish(sim_story *st, int64_t now, uint64_t msg_id, const char *from,
                       const char *subject, const uint8_t *bytes, size_t len);

/* 1 when bus message msg_id is one of the job's packets. */
int sim_story_follows(const sim_story *st, uint64_t msg_id);

/* A journal record of the scheduler (its JSON text): when its job_id is
 * the job, a `journal` line. */
void sim_story_journal(sim_story *st, int64_t now, const char *record);

/* A timeline step, as an `operator` line. */
void sim_story_timeline(sim_story *st, int64_t now, const sim_timeline_event *e);

/* Any other line: `who` (an actor), `what` (the line's kind) and the
 * printf-style rest. */
void sim_story_say(sim_story *st, int64_t now, const char *who, const char *what,
                   const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#endif
