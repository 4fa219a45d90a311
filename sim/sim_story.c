/* The story of one job in a simulated run (see sim_story.h). */
#include "sim_story.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cap_decode.h"
#include "cap_schema.h"
#include "sim_bus.h"

struct sim_story {
    char job[SIM_STORY_MAX_ID + 1];
    FILE *out;
    uint64_t lines, timeline_lines;
    /* the bus numbers of the job's packets, in publish order (the bus
     * numbers its publishes 1, 2, ..., so the array is sorted) */
    uint64_t *msgs;
    size_t n_msgs, cap_msgs;
    int msgs_full_said;
    /* The last line told (who, what and the rest), and how many lines
     * just like it have come since, the last of them at `again_at`: a job
     * waiting long for a worker is tried again and journaled at each wake
     * of its timer (every 2 s by default), and its story would otherwise
     * repeat one line a hundred times in a few minutes. */
    char last[1100];
    uint64_t again;
    int64_t again_at;
};

int sim_story_new(const char *job_id, FILE *out, sim_story **st)
{
    if (!st)
        return CAP_EINVAL;
    *st = NULL;
    size_t n = job_id ? strlen(job_id) : 0;
    if (!out || n == 0 || n > SIM_STORY_MAX_ID)
        return CAP_EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)job_id[i] < 0x20 || job_id[i] == 0x7f)
            return CAP_EINVAL;
    sim_story *s = calloc(1, sizeof *s);
    if (!s)
        return CAP_ENOMEM;
    memcpy(s->job, job_id, n + 1);
    s->out = out;
    *st = s;
    return CAP_OK;
}

static void flush_again(sim_story *st);

void sim_story_free(sim_story *st)
{
    if (!st)
        return;
    flush_again(st);
    free(st->msgs);
    free(st);
}

const char *sim_story_job(const sim_story *st)
{
    return st ? st->job : NULL;
}

uint64_t sim_story_lines(const sim_story *st)
{
    return st ? st->lines : 0;
}

uint64_t sim_story_lines_about(const sim_story *st)
{
    return st ? st->lines - st->timeline_lines : 0;
}

static void print_time(sim_story *st, int64_t t)
{
    long long sec = (long long)(t / 1000000000), ns = (long long)(t % 1000000000);
    fprintf(st->out, "%8lld.%06llds  ", sec, ns / 1000);
}

/* Tells how many times the last line came again, if it did. */
static void flush_again(sim_story *st)
{
    if (!st->again)
        return;
    print_time(st, st->again_at);
    fprintf(st->out, "%-12s %-9s the line above, %llu more time%s (the last at this time)\n", "story", "again",
            (unsigned long long)st->again, st->again == 1 ? "" : "s");
    st->again = 0;
}

/* One line: the virtual time, who, what, then the rest (already
 * formatted). A line the same as the one before but for its time is
 * counted, and told as one line once another comes. */
static void line(sim_story *st, int64_t now, const char *who, const char *what, const char *rest)
{
    char body[sizeof st->last];
    snprintf(body, sizeof body, "%-12s %-9s %s", who ? who : "-", what, rest);
    st->lines++;
    if (st->lines > 1 && strcmp(body, st->last) == 0) {
        st->again++;
        st->again_at = now;
        return;
    }
    flush_again(st);
    print_time(st, now);
    fprintf(st->out, "%s\n", body);
    memcpy(st->last, body, sizeof body);
}

void sim_story_say(sim_story *st, int64_t now, const char *who, const char *what,
                   const char *fmt, ...)
{
    if (!st)
        return;
    char rest[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    line(st, now, who, what, rest);
}

int sim_story_follows(const sim_story *st, uint64_t msg_id)
{
    if (!st || !st->n_msgs)
        return 0;
    size_t lo = 0, hi = st->n_msgs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->msgs[mid] < msg_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < st->n_msgs && st->msgs[lo] == msg_id;
}

static void follow(sim_story *st, int64_t now, uint64_t msg_id)
{
    if (st->n_msgs == st->cap_msgs) {
        size_t nc = st->cap_msgs ? st->cap_msgs * 2 : 64;
        uint64_t *m = nc <= SIM_STORY_MAX_PACKETS ? realloc(st->msgs, nc * sizeof *m) : NULL;
        if (!m) {
            if (!st->msgs_full_said)
                line(st, now, "story", "note",
                     "no room to follow more of the job's packets: later copies are not told");
            st->msgs_full_said = 1;
            return;
        }
        st->msgs = m;
        st->cap_msgs = nc;
    }
    st->msgs[st->n_msgs++] = msg_id;
}

static const char *status_name(int v)
{
    const ProtobufCEnumValue *e =
        protobuf_c_enum_descriptor_get_value(&cordum__agent__v1__job_status__descriptor, v);
    return e ? e->name : "?";
}

/* ", dispatch D attempt N" (worker W) of a dispatch identity, or "". */
static void dispatch_text(const Cordum__Agent__V1__DispatchIdentity *d, char *buf, size_t n)
{
    buf[0] = 0;
    if (!d)
        return;
    snprintf(buf, n, ", dispatch %s attempt %llu%s%s", d->dispatch_id,
             (unsigned long long)d->attempt, d->assigned_worker_id[0] ? " for " : "",
             d->assigned_worker_id);
}

/* The job a packet is about ("" for none) and what it says about it. */
static const char *packet_about(const cap_packet *p, char *what, size_t n)
{
    char disp[400];
    switch (p->payload_case) {
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST: {
        const Cordum__Agent__V1__JobRequest *r = p->job_request;
        dispatch_text(r->dispatch, disp, sizeof disp);
        snprintf(what, n, "%s (topic %s, tenant %s%s%s)%s", r->dispatch ? "dispatch" : "job request",
                 r->topic, r->tenant_id, r->workflow_id[0] ? ", workflow " : "", r->workflow_id,
                 disp);
        return r->job_id;
    }
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT: {
        const Cordum__Agent__V1__JobResult *r = p->job_result;
        dispatch_text(r->dispatch, disp, sizeof disp);
        snprintf(what, n, "result %s from %s%s%s%s", status_name((int)r->status), r->worker_id,
                 r->error_message[0] ? " (" : "", r->error_message, r->error_message[0] ? ")" : "");
        if (strlen(what) + strlen(disp) < n)
            strcat(what, disp);
        return r->job_id;
    }
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS: {
        const Cordum__Agent__V1__JobProgress *r = p->job_progress;
        dispatch_text(r->dispatch, disp, sizeof disp);
        snprintf(what, n, "progress %s %d%%%s%s%s%s", status_name((int)r->status), (int)r->percent,
                 r->result_ptr[0] ? " (\"" : "", r->result_ptr, r->result_ptr[0] ? "\")" : "", disp);
        return r->job_id;
    }
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL: {
        const Cordum__Agent__V1__JobCancel *r = p->job_cancel;
        dispatch_text(r->dispatch, disp, sizeof disp);
        snprintf(what, n, "cancel by %s (%s)%s", r->requested_by, r->reason, disp);
        return r->job_id;
    }
    default:
        return "";
    }
}

void sim_story_publish(sim_story *st, int64_t now, uint64_t msg_id, const char *from,
                       const char *subject, const uint8_t *bytes, size_t len)
{
    if (!st)
        return;
    cap_bounds b = cap_bounds_default();
    cap_packet *p = NULL;
    cap_diag d;
    if (cap_packet_decode(bytes, len, &b, CAP_DECODE_LENIENT, &p, &d) != CAP_OK)
        return; /* the receivers' decoders will say; nothing names the job */
    char what[1024];
    if (strcmp(packet_about(p, what, sizeof what), st->job) == 0) {
        follow(st, now, msg_id);
        sim_story_say(st, now, from, "publish", "#%llu on %s: %s", (unsigned long long)msg_id,
                      subject, what);
    }
    cap_packet_free(p);
}

/* Appends ", name value" for a member that says something. */
static void member(char *buf, size_t n, const cJSON *rec, const char *key, const char *label)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, key);
    size_t used = strlen(buf);
    if (used >= n)
        return;
    if (cJSON_IsString(m) && m->valuestring[0] && strcmp(m->valuestring, "0") != 0)
        snprintf(buf + used, n - used, ", %s %s", label, m->valuestring);
    else if (cJSON_IsNumber(m) && m->valuedouble != 0)
        snprintf(buf + used, n - used, ", %s %.0f", label, m->valuedouble);
}

/* Appends ", decision NAME" for a job record's safety decision (a CAP
 * DecisionType number; 0: none yet). */
static void decision(char *buf, size_t n, const cJSON *rec)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, "decision");
    size_t used = strlen(buf);
    if (!cJSON_IsNumber(m) || m->valuedouble == 0 || used >= n)
        return;
    const ProtobufCEnumValue *e =
        protobuf_c_enum_descriptor_get_value(&cordum__agent__v1__decision_type__descriptor, m->valueint);
    if (e)
        snprintf(buf + used, n - used, ", decision %s", e->name);
    else
        snprintf(buf + used, n - used, ", decision %d", m->valueint);
}

void sim_story_journal(sim_story *st, int64_t now, const char *record)
{
    if (!st || !record)
        return;
    cJSON *rec = cJSON_Parse(record);
    const char *job = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "job_id"));
    if (!job || strcmp(job, st->job) != 0) {
        cJSON_Delete(rec);
        return;
    }
    const char *k = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "k"));
    char rest[1024];
    if (k && strcmp(k, "job") == 0) {
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "state"));
        const char *ev = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "ev"));
        snprintf(rest, sizeof rest, "%s after %s", state ? state : "?", ev ? ev : "?");
        member(rest, sizeof rest, rec, "attempt", "attempt");
        member(rest, sizeof rest, rec, "dispatch_id", "dispatch");
        member(rest, sizeof rest, rec, "worker", "worker");
        decision(rest, sizeof rest, rec);
        member(rest, sizeof rest, rec, "rule", "rule");
        member(rest, sizeof rest, rec, "retries", "retries");
        member(rest, sizeof rest, rec, "throttles", "throttles");
        member(rest, sizeof rest, rec, "appr", "approval");
        member(rest, sizeof rest, rec, "memo", "checkpoint");
        member(rest, sizeof rest, rec, "reason", "reason");
    } else {
        /* saga steps, evictions and notes: every member but the time and the job */
        snprintf(rest, sizeof rest, "%s", k ? k : "record");
        for (const cJSON *m = rec ? rec->child : NULL; m; m = m->next)
            if (strcmp(m->string, "k") && strcmp(m->string, "t") && strcmp(m->string, "job_id"))
                member(rest, sizeof rest, rec, m->string, m->string);
    }
    line(st, now, "scheduler", "journal", rest);
    cJSON_Delete(rec);
}

void sim_story_timeline(sim_story *st, int64_t now, const sim_timeline_event *e)
{
    if (!st || !e)
        return;
    st->timeline_lines++;
    const char *a = e->a ? e->a : "", *b = e->b ? e->b : "";
    switch (e->kind) {
    case SIM_EV_CRASH: sim_story_say(st, now, "operator", "timeline", "crash %s", a); break;
    case SIM_EV_RESTART: sim_story_say(st, now, "operator", "timeline", "restart %s", a); break;
    case SIM_EV_PARTITION:
        sim_story_say(st, now, "operator", "timeline", "partition %s from %s", a,
                      b[0] ? b : "everyone");
        break;
    case SIM_EV_HEAL:
        sim_story_say(st, now, "operator", "timeline", "heal %s%s%s", a, b[0] ? " and " : "", b);
        break;
    case SIM_EV_FAULT:
        sim_story_say(st, now, "operator", "timeline", "bus fault: %s on %s%s%s%s%s (scenario line %d)",
                      sim_fault_kind_name(e->fault.kind),
                      e->fault.subject ? e->fault.subject : "every subject",
                      e->fault.from ? " from " : "", e->fault.from ? e->fault.from : "",
                      e->fault.to ? " to " : "", e->fault.to ? e->fault.to : "", e->line);
        break;
    case SIM_EV_SKEW:
        sim_story_say(st, now, "operator", "timeline", "skew %s's clock by %lld ns", a,
                      (long long)e->skew_ns);
        break;
    case SIM_EV_POLICY:
        sim_story_say(st, now, "operator", "timeline", "policy change to %s",
                      e->policy_path ? e->policy_path : "?");
        break;
    case SIM_EV_CANCEL: sim_story_say(st, now, "operator", "timeline", "cancel %s", a); break;
    case SIM_EV_CONFLICT:
        sim_story_say(st, now, "operator", "timeline", "conflicting twins for the next %llu signed submits",
                      (unsigned long long)e->count);
        break;
    }
}
