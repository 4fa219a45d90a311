/* Offline trace checker (conf_tracecheck.h, docs/check-trace.md). */
#include "conf_tracecheck.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cap_schema.h"
#include "ref_jobstate.h"
#include "ref_strmap.h"

#define DEFAULT_MAX_JOBS ((size_t)100000)
#define DEFAULT_EVICT_AFTER ((uint64_t)100000)

#define SUBJECT_SUBMIT "sys.job.submit"
#define SUBJECT_DLQ "sys.job.dlq"

typedef struct {
    char *dispatch_id;
    uint64_t attempt;
    char *reporter;
    int has_result;
    uint64_t result_record;
    uint8_t digest[32];
} tc_ident;

typedef struct tc_job {
    char *id;
    int state;  /* observed state (ref_jobstate value) */
    int known;  /* 0: first seen mid-life, the first claim is adopted unchecked */
    uint64_t terminal_record;
    int has_ident;
    char *cur_dispatch;
    uint64_t cur_attempt;
    char *cur_worker;
    uint64_t cur_record;        /* record of the current dispatch */
    int base_state;             /* the state before workers' reports on the current identity */
    int base_known;             /* and whether it was known then */
    int worker_claimed;         /* state holds a worker's report on the current identity */
    int released;               /* the control plane cancelled the current identity */
    int cur_outcome_set;        /* the current identity reported an outcome */
    uint8_t cur_outcome[32];    /* digest of its last reported outcome */
    int stale_set;              /* a stale result since the current dispatch */
    int stale_status;
    uint64_t stale_record;
    uint8_t stale_outcome[32];
    tc_ident ids[CONF_TC_IDENTS];
    size_t n_ids, next_id;
    uint64_t last_seen;
    int in_terminal_list;
    struct tc_job *prev, *next;
} tc_job;

typedef struct {
    tc_job *head, *tail;
} tc_list;

struct conf_tc {
    conf_tc_options o;
    cap_bounds bounds;
    conf_tc_sink sink;
    void *ctx;
    ref_strmap jobs;
    tc_list live, done;
    ref_strmap workers;
    char **worker_names; /* owned, for freeing */
    size_t n_workers;
    conf_tc_stats st;
    /* the record being judged */
    uint64_t idx;
    const cap_trace_record *rec;
};

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* A copy of s (NULL copies as ""). */
static char *dup_str(const char *s) { return strdup(s ? s : ""); }

/* ---- violations ---------------------------------------------------------- */

static void report(conf_tc *c, const char *job_id, const char *rule, const char *clause,
                   const char *expect, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(conf_tc *c, const char *job_id, const char *rule, const char *clause,
                   const char *expect, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    c->st.violations++;
    if (!c->sink)
        return;
    conf_tc_violation v = {.record = c->idx,
                           .time = c->rec->time,
                           .subject = nz(c->rec->subject),
                           .sender = nz(c->rec->sender),
                           .job_id = nz(job_id),
                           .rule = rule,
                           .what = what,
                           .expect = expect,
                           .clause = clause};
    c->sink(c->ctx, &v);
}

/* ---- job table ------------------------------------------------------------ */

static void list_unlink(tc_list *l, tc_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->prev = j->next = NULL;
}

static void list_append(tc_list *l, tc_job *j)
{
    j->prev = l->tail;
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static int job_terminal(const tc_job *j)
{
    return j->known && ref_jobstate_is_terminal(j->state);
}

static void ident_clear(tc_ident *e)
{
    free(e->dispatch_id);
    free(e->reporter);
    memset(e, 0, sizeof *e);
}

static void job_free(tc_job *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n_ids; i++)
        ident_clear(&j->ids[i]);
    free(j->id);
    free(j->cur_dispatch);
    free(j->cur_worker);
    free(j);
}

static void job_drop(conf_tc *c, tc_job *j)
{
    list_unlink(j->in_terminal_list ? &c->done : &c->live, j);
    ref_strmap_del(&c->jobs, j->id);
    c->st.jobs_live--;
    job_free(j);
}

/* Moves j to the tail of the list its state belongs in, stamped now. */
static void job_touch(conf_tc *c, tc_job *j)
{
    list_unlink(j->in_terminal_list ? &c->done : &c->live, j);
    j->in_terminal_list = job_terminal(j);
    j->last_seen = c->idx;
    list_append(j->in_terminal_list ? &c->done : &c->live, j);
}

static void evict(conf_tc *c)
{
    while (c->done.head && c->idx - c->done.head->last_seen > c->o.evict_after) {
        job_drop(c, c->done.head);
        c->st.evicted++;
    }
}

/* The job named id, created (unknown state) when absent. NULL on ENOMEM. */
static tc_job *job_get(conf_tc *c, const char *id, int *created)
{
    *created = 0;
    tc_job *j = ref_strmap_get(&c->jobs, id);
    if (j)
        return j;
    while (c->st.jobs_live >= c->o.max_jobs) {
        if (c->done.head) {
            job_drop(c, c->done.head);
            c->st.evicted++;
        } else if (c->live.head) {
            job_drop(c, c->live.head);
            c->st.evicted_live++;
        } else {
            break;
        }
    }
    j = calloc(1, sizeof *j);
    if (!j || !(j->id = dup_str(id)) || ref_strmap_put(&c->jobs, id, j) != CAP_OK) {
        job_free(j);
        return NULL;
    }
    list_append(&c->live, j);
    j->last_seen = c->idx;
    c->st.jobs_live++;
    c->st.jobs_seen++;
    *created = 1;
    return j;
}

/* ---- workers --------------------------------------------------------------- */

static void worker_add(conf_tc *c, const char *name)
{
    if (!name || !name[0] || ref_strmap_get(&c->workers, name) ||
        c->n_workers >= CONF_TC_MAX_WORKERS)
        return;
    if (!c->worker_names) {
        c->worker_names = calloc(CONF_TC_MAX_WORKERS, sizeof *c->worker_names);
        if (!c->worker_names)
            return;
    }
    char *d = dup_str(name);
    if (!d)
        return;
    if (ref_strmap_put(&c->workers, d, d) != CAP_OK) {
        free(d);
        return;
    }
    c->worker_names[c->n_workers++] = d;
}

static int is_worker(const conf_tc *c, const tc_job *j, const char *sender,
                     const Cordum__Agent__V1__DispatchIdentity *d)
{
    if (!sender || !sender[0])
        return 0;
    if (ref_strmap_get(&c->workers, sender))
        return 1;
    if (d && d->assigned_worker_id && strcmp(d->assigned_worker_id, sender) == 0)
        return 1;
    return j->has_ident && j->cur_worker && strcmp(j->cur_worker, sender) == 0;
}

/* ---- digests --------------------------------------------------------------- */

static void sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned n = 0;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) || n != 32)
        memset(out, 0, 32);
}

/* Digest of a result's outcome: status, error codes and message. */
static void outcome_digest(const Cordum__Agent__V1__JobResult *r, uint8_t out[32])
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%d\n%d\n%s\n%s", (int)r->status, (int)r->error_code_enum,
                     nz(r->error_code), nz(r->error_message));
    sha256(buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, out);
}

/* Digest of a result's whole payload (canonical encoding of the JobResult). */
static void result_digest(const Cordum__Agent__V1__JobResult *r, uint8_t out[32])
{
    size_t n = protobuf_c_message_get_packed_size(&r->base);
    uint8_t stackbuf[4096];
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!buf) {
        memset(out, 0xff, 32);
        return;
    }
    protobuf_c_message_pack(&r->base, buf);
    sha256(buf, n, out);
    if (buf != stackbuf)
        free(buf);
}

/* ---- signatures ------------------------------------------------------------- */

static int is_trust_payload(const cap_packet *p)
{
    switch (p->payload_case) {
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_WORKER_HANDSHAKE_CHALLENGE_REQUEST:
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_WORKER_HANDSHAKE_CHALLENGE:
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_WORKER_HANDSHAKE_AUTHENTICATE:
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_WORKER_HANDSHAKE_RESULT: return 1;
    default: return 0;
    }
}

static void check_signature(conf_tc *c, const cap_packet *p, const char *job_id)
{
    if (is_trust_payload(p))
        return; /* regime (b): transcript domains, checked by the handshake, not here */
    const cap_trace_record *r = c->rec;
    int production = p->signature_metadata != NULL;
    int signed_ = 0, ok = 0;
    if (production) {
        uint8_t *body = NULL;
        size_t body_len = 0, sig_len = 0;
        const uint8_t *sig = NULL;
        cap_diag d;
        int rc = cap_production_split(r->bytes, r->len, &body, &body_len, &sig, &sig_len, &d);
        if (rc == CAP_OK) {
            signed_ = 1;
            uint8_t digest[32];
            EVP_MD_CTX *md = EVP_MD_CTX_new();
            unsigned n = 0;
            const uint8_t sep = 0;
            int dok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
                      EVP_DigestUpdate(md, CAP_PRODUCTION_DOMAIN, strlen(CAP_PRODUCTION_DOMAIN)) &&
                      EVP_DigestUpdate(md, &sep, 1) && EVP_DigestUpdate(md, body, body_len) &&
                      EVP_DigestFinal_ex(md, digest, &n) && n == 32;
            EVP_MD_CTX_free(md);
            for (size_t i = 0; dok && !ok && i < c->o.n_keys; i++)
                ok = cap_ecdsa_verify_digest(c->o.keys[i], digest, sig, sig_len) == CAP_OK;
            free(body);
        } else if (rc != CAP_ESIG_MISSING) {
            signed_ = 1; /* a field 14 that cannot be split cannot verify */
        }
    } else if (p->signature.len > 0) {
        signed_ = 1;
        for (size_t i = 0; !ok && i < c->o.n_keys; i++)
            ok = cap_packet_verify(p, c->o.keys[i], 1, NULL) == CAP_OK;
    }
    if (!signed_) {
        if (c->o.require_signatures)
            report(c, job_id, "missing-signature",
                   "cap-spec 02 Signing Rules; 13 (ERROR_CODE_PROTOCOL_SIGNATURE_MISSING 104)",
                   "every packet carries a signature when signatures are required",
                   "%s packet from %s carries no signature",
                   nz(cap_packet_payload_name(p)), nz(r->sender));
        return;
    }
    if (c->o.n_keys == 0)
        return;
    c->st.signatures_checked++;
    if (!ok)
        report(c, job_id, "bad-signature",
               production ? "cap-spec 19 (CAP-PRODUCTION signature), 13 (ERROR_CODE_PROTOCOL_SIGNATURE_INVALID 103)"
                          : "cap-spec 02 Signing Rules (regime a), 13 (ERROR_CODE_PROTOCOL_SIGNATURE_INVALID 103)",
               "a signature verifies with a trusted key over the packet as signed",
               "the %s signature of this %s packet verifies with none of the %zu key(s)",
               production ? "CAP-PRODUCTION" : "generic", nz(cap_packet_payload_name(p)),
               c->o.n_keys);
}

/* ---- the state model ---------------------------------------------------------- */

static const char *outcome_rule(ref_js_outcome o)
{
    switch (o) {
    case REF_JS_REJECT_BACKWARD: return "state-backward";
    case REF_JS_REJECT_CANCEL: return "cancel-after-terminal";
    case REF_JS_IGNORE: return "one-terminal";
    default: return "state-illegal";
    }
}

static const char *outcome_expect(ref_js_outcome o)
{
    switch (o) {
    case REF_JS_REJECT_BACKWARD: return "a job never moves backwards; a terminal job stays terminal";
    case REF_JS_REJECT_CANCEL: return "CANCELLED may be set only from a non-terminal state";
    case REF_JS_IGNORE:
        return "a job has one terminal state; a conflicting later one is logged and ignored";
    default: return "a job starts at PENDING and takes only the transitions of the state table";
    }
}

/* A claim that job j is now in state `to`, made by the packet being judged.
 * cp: the claim comes from the control plane (whose claims are its state);
 * a worker's claim that a fenced consumer would refuse is not a violation. */
static void claim(conf_tc *c, tc_job *j, int to, int cp, const char *what)
{
    if (cp) {
        j->worker_claimed = 0;
    } else if (!j->worker_claimed) {
        j->base_state = j->state;
        j->base_known = j->known;
        j->worker_claimed = 1;
    }
    if (!j->known) {
        j->known = 1;
        j->state = to;
        if (ref_jobstate_is_terminal(to))
            j->terminal_record = c->idx;
        return;
    }
    ref_js_outcome o = ref_jobstate_check(j->state, to);
    if (ref_js_outcome_applies(o)) {
        j->state = to;
        if (ref_jobstate_is_terminal(to))
            j->terminal_record = c->idx;
        return;
    }
    if (o == REF_JS_REPEAT)
        return;
    if (!cp && o != REF_JS_REJECT_UNKNOWN)
        return; /* a worker's late or conflicting report: ignored by a fenced consumer */
    char clause[160];
    snprintf(clause, sizeof clause, "%s", ref_jobstate_rule(j->state, to));
    if (ref_jobstate_is_terminal(j->state))
        report(c, j->id, outcome_rule(o), clause, outcome_expect(o),
               "%s: %s -> %s, after the job ended %s at record %llu", what,
               ref_jobstate_name(j->state), ref_jobstate_name(to), ref_jobstate_name(j->state),
               (unsigned long long)j->terminal_record);
    else
        report(c, j->id, outcome_rule(o), clause, outcome_expect(o), "%s: %s -> %s", what,
               ref_jobstate_name(j->state), ref_jobstate_name(to));
}

static int same_ident(const tc_job *j, const Cordum__Agent__V1__DispatchIdentity *d)
{
    return j->has_ident && d->attempt == j->cur_attempt &&
           strcmp(nz(d->dispatch_id), nz(j->cur_dispatch)) == 0 &&
           (!d->assigned_worker_id || !d->assigned_worker_id[0] || !j->cur_worker[0] ||
            strcmp(d->assigned_worker_id, j->cur_worker) == 0);
}

static int set_ident(tc_job *j, const Cordum__Agent__V1__DispatchIdentity *d, uint64_t idx)
{
    char *di = dup_str(d->dispatch_id), *w = dup_str(d->assigned_worker_id);
    if (!di || !w) {
        free(di);
        free(w);
        return CAP_ENOMEM;
    }
    free(j->cur_dispatch);
    free(j->cur_worker);
    j->cur_dispatch = di;
    j->cur_worker = w;
    j->cur_attempt = d->attempt;
    j->has_ident = 1;
    j->cur_record = idx;
    j->cur_outcome_set = 0;
    j->stale_set = 0;
    j->worker_claimed = 0;
    j->released = 0;
    return CAP_OK;
}

/* The identity entry (dispatch_id, attempt, reporter), created when absent
 * (the oldest entry is replaced when all CONF_TC_IDENTS are in use). */
static tc_ident *ident_entry(tc_job *j, const char *dispatch_id, uint64_t attempt,
                             const char *reporter, int create)
{
    for (size_t i = 0; i < j->n_ids; i++) {
        tc_ident *e = &j->ids[i];
        if (e->dispatch_id && e->reporter && e->attempt == attempt &&
            strcmp(e->dispatch_id, dispatch_id) == 0 && strcmp(e->reporter, reporter) == 0)
            return e;
    }
    if (!create)
        return NULL;
    tc_ident *e;
    if (j->n_ids < CONF_TC_IDENTS) {
        e = &j->ids[j->n_ids++];
    } else {
        e = &j->ids[j->next_id];
        j->next_id = (j->next_id + 1) % CONF_TC_IDENTS;
        ident_clear(e);
    }
    e->dispatch_id = dup_str(dispatch_id);
    e->reporter = dup_str(reporter);
    if (!e->dispatch_id || !e->reporter) {
        ident_clear(e); /* an empty slot: skipped by every lookup */
        return NULL;
    }
    e->attempt = attempt;
    return e;
}

/* Newest attempt `reporter` has reported on for j, 0 when none. */
static uint64_t reporter_newest(const tc_job *j, const char *reporter)
{
    uint64_t best = 0;
    for (size_t i = 0; i < j->n_ids; i++)
        if (j->ids[i].reporter && strcmp(j->ids[i].reporter, reporter) == 0 &&
            j->ids[i].attempt > best)
            best = j->ids[i].attempt;
    return best;
}

static void on_submit(conf_tc *c, const Cordum__Agent__V1__JobRequest *req)
{
    int created;
    tc_job *j = job_get(c, nz(req->job_id), &created);
    if (!j)
        return;
    if (created) {
        j->known = 1;
        j->state = REF_JOB_NONE;
        claim(c, j, REF_JOB_PENDING, 1, "submit");
    }
    /* a known job_id submitted again is a duplicate: tolerated (cap-spec 03 L74) */
    job_touch(c, j);
}

static void on_dispatch(conf_tc *c, const Cordum__Agent__V1__JobRequest *req)
{
    int created;
    const Cordum__Agent__V1__DispatchIdentity *d = req->dispatch;
    tc_job *j = job_get(c, nz(req->job_id), &created);
    if (!j)
        return;
    if (d)
        worker_add(c, d->assigned_worker_id);
    char what[320];
    snprintf(what, sizeof what, "%s dispatched the job on %s (attempt %llu)", nz(c->rec->sender),
             nz(c->rec->subject), d ? (unsigned long long)d->attempt : 0ULL);
    if (job_terminal(j)) {
        if (!(d && same_ident(j, d))) {
            if (j->state == REF_JOB_DENIED)
                report(c, j->id, "dispatch-denied", "cap-spec 06 L23 (DENY: zero dispatch)",
                       "a job the safety kernel denied is never dispatched",
                       "%s, after the job was DENIED at record %llu", what,
                       (unsigned long long)j->terminal_record);
            else
                claim(c, j, REF_JOB_DISPATCHED, 1, what);
            if (d && (!j->has_ident || d->attempt > j->cur_attempt))
                set_ident(j, d, c->idx);
        }
        job_touch(c, j);
        return;
    }
    if (d && j->has_ident) {
        if (same_ident(j, d)) { /* the same dispatch again: a redelivery */
            job_touch(c, j);
            return;
        }
        if (d->attempt <= j->cur_attempt) {
            report(c, j->id, "attempt-order",
                   "cap-spec 19 (dispatch fencing: monotonic attempt; a retry gets a new identity)",
                   "every new dispatch identity of a job carries a higher attempt",
                   "%s with dispatch_id %s, but attempt %llu (dispatch_id %s) was dispatched at "
                   "record %llu",
                   what, nz(d->dispatch_id), (unsigned long long)j->cur_attempt,
                   nz(j->cur_dispatch), (unsigned long long)j->cur_record);
            job_touch(c, j);
            return;
        }
    }
    if (j->known && (j->state == REF_JOB_DISPATCHED || j->state == REF_JOB_RUNNING ||
                     j->state == REF_JOB_FAILED_RETRYABLE))
        j->state = REF_JOB_SCHEDULED; /* a retry: the FAILED_RETRYABLE -> SCHEDULED step is not on the bus */
    claim(c, j, REF_JOB_DISPATCHED, 1, what);
    if (d)
        set_ident(j, d, c->idx);
    job_touch(c, j);
}

/* A JobProgress (res == NULL) or a JobResult about job_id. */
static void on_report(conf_tc *c, const char *job_id, const Cordum__Agent__V1__JobResult *res,
                      const Cordum__Agent__V1__DispatchIdentity *d)
{
    const char *sender = nz(c->rec->sender);
    if (res && res->error_code_enum == CORDUM__AGENT__V1__ERROR_CODE__ERROR_CODE_JOB_DUPLICATE &&
        !d)
        return; /* an answer to a duplicate submit: it reports, it does not move the job */
    int created;
    tc_job *j = job_get(c, job_id, &created);
    if (!j)
        return;
    int worker = is_worker(c, j, sender, d);
    const char *kind = res ? "result" : "progress";
    int to = res ? (int)res->status : REF_JOB_RUNNING;

    if (d && j->has_ident && !same_ident(j, d)) {
        if (d->attempt > j->cur_attempt) {
            set_ident(j, d, c->idx); /* a dispatch the trace does not show */
        } else {
            /* stale: a fenced consumer ignores it */
            c->st.stale_ignored++;
            uint64_t newest = reporter_newest(j, sender);
            if (worker && newest > d->attempt)
                report(c, j->id, "stale-attempt",
                       "cap-spec 09 ~L69-72 (fence retries), 19 (dispatch fencing)",
                       "a worker never acts on a dispatch older than one it already took",
                       "%s %s for attempt %llu (dispatch_id %s) after %s reported on attempt %llu",
                       sender, kind, (unsigned long long)d->attempt, nz(d->dispatch_id), sender,
                       (unsigned long long)newest);
            if (res) {
                tc_ident *e = ident_entry(j, nz(d->dispatch_id), d->attempt, sender, 1);
                if (e && !e->has_result) {
                    e->has_result = 1;
                    e->result_record = c->idx;
                    result_digest(res, e->digest);
                }
                if (ref_jobstate_is_terminal(to)) {
                    j->stale_set = 1;
                    j->stale_status = to;
                    j->stale_record = c->idx;
                    outcome_digest(res, j->stale_outcome);
                }
            } else {
                ident_entry(j, nz(d->dispatch_id), d->attempt, sender, 1);
            }
            job_touch(c, j);
            return;
        }
    } else if (d && !j->has_ident) {
        set_ident(j, d, c->idx);
    }

    /* one (dispatch_id, attempt) and reporter: one result, one run */
    const char *did = d ? nz(d->dispatch_id) : "";
    uint64_t att = d ? d->attempt : 0;
    tc_ident *e = worker ? ident_entry(j, did, att, sender, 1) : NULL;
    int repeat = 0; /* not the first report of this run: a fenced consumer applies only the first result */
    if (e) {
        repeat = e->has_result;
        if (res) {
            uint8_t dg[32];
            result_digest(res, dg);
            if (e->has_result && memcmp(dg, e->digest, 32) != 0)
                report(c, j->id, "duplicate-side-effect",
                       "cap-spec 09 ~L69-72 (suppress duplicate side effects, keyed on job + "
                       "dispatch identity)",
                       "one (dispatch_id, attempt) has at most one result; a redelivery replays it",
                       "%s published a second, different result (%s) for attempt %llu (dispatch_id "
                       "%s); its first was at record %llu",
                       sender, ref_jobstate_name(to), (unsigned long long)att, did,
                       (unsigned long long)e->result_record);
            if (!e->has_result) {
                e->has_result = 1;
                e->result_record = c->idx;
                memcpy(e->digest, dg, 32);
            }
        } else if (e->has_result) {
            report(c, j->id, "duplicate-side-effect",
                   "cap-spec 09 ~L69-72 (suppress duplicate side effects, keyed on job + dispatch "
                   "identity)",
                   "the handler runs once per (dispatch_id, attempt); a redelivery replays the result",
                   "%s reported progress for attempt %llu (dispatch_id %s) after its result at "
                   "record %llu: the handler ran again",
                   sender, (unsigned long long)att, did, (unsigned long long)e->result_record);
        }
    }

    if (res && !worker && j->stale_set && j->stale_status == to) {
        uint8_t od[32];
        outcome_digest(res, od);
        if (memcmp(od, j->stale_outcome, 32) == 0 &&
            !(j->cur_outcome_set && memcmp(od, j->cur_outcome, 32) == 0))
            report(c, j->id, "stale-attempt",
                   "cap-spec 09 ~L69-72 (fence retries), 19 (results mutate state only after the "
                   "dispatch identity compare)",
                   "a result carrying an old dispatch identity changes nothing",
                   "%s reported the job %s with the outcome of the stale result at record %llu, "
                   "which the current attempt %llu never reported",
                   sender, ref_jobstate_name(to), (unsigned long long)j->stale_record,
                   (unsigned long long)j->cur_attempt);
    }
    if (res && worker && j->has_ident && (!d || same_ident(j, d))) {
        j->cur_outcome_set = 1;
        outcome_digest(res, j->cur_outcome);
    }

    if ((worker && j->released) || repeat) { /* a report on a cancelled attempt, or after the result */
        job_touch(c, j);
        return;
    }
    char what[320];
    snprintf(what, sizeof what, "%s %s %s", sender, res ? "reported" : "reported progress,",
             res ? ref_jobstate_name(to) : "RUNNING");
    claim(c, j, to, !worker, what);
    job_touch(c, j);
}

/* A JobCancel from the control plane with the current identity: the
 * control plane gave that attempt up (a cancel, a timeout, a lost worker),
 * so what its worker reported on it does not count as received. */
static void on_cancel(conf_tc *c, const Cordum__Agent__V1__JobCancel *jc)
{
    tc_job *j = ref_strmap_get(&c->jobs, nz(jc->job_id));
    if (!j || !jc->dispatch || !same_ident(j, jc->dispatch) ||
        is_worker(c, j, nz(c->rec->sender), NULL))
        return;
    if (j->worker_claimed) {
        j->state = j->base_state;
        j->known = j->base_known;
        j->worker_claimed = 0;
    }
    j->released = 1;
    job_touch(c, j);
}

/* A DLQ entry: not a state of its own, but evidence of what the control
 * plane applied. */
static void on_dlq(conf_tc *c, const Cordum__Agent__V1__JobResult *res)
{
    tc_job *j = ref_strmap_get(&c->jobs, nz(res->job_id));
    if (!j)
        return;
    if (j->stale_set && j->stale_status == (int)res->status) {
        uint8_t od[32];
        outcome_digest(res, od);
        if (memcmp(od, j->stale_outcome, 32) == 0 &&
            !(j->cur_outcome_set && memcmp(od, j->cur_outcome, 32) == 0))
            report(c, j->id, "stale-attempt",
                   "cap-spec 09 ~L69-72 (fence retries), 19 (results mutate state only after the "
                   "dispatch identity compare)",
                   "a result carrying an old dispatch identity changes nothing",
                   "%s dead-lettered the job %s with the outcome of the stale result at record "
                   "%llu, which the current attempt %llu never reported",
                   nz(c->rec->sender), ref_jobstate_name((int)res->status),
                   (unsigned long long)j->stale_record, (unsigned long long)j->cur_attempt);
    }
    job_touch(c, j);
}

static const char *packet_job_id(const cap_packet *p)
{
    switch (p->payload_case) {
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST: return nz(p->job_request->job_id);
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT: return nz(p->job_result->job_id);
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS: return nz(p->job_progress->job_id);
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL: return nz(p->job_cancel->job_id);
    default: return "";
    }
}

/* ---- API --------------------------------------------------------------------- */

int conf_tc_new(const conf_tc_options *o, conf_tc_sink sink, void *ctx, conf_tc **out)
{
    *out = NULL;
    if (o && o->n_keys > CONF_TC_MAX_KEYS)
        return CAP_EINVAL;
    conf_tc *c = calloc(1, sizeof *c);
    if (!c)
        return CAP_ENOMEM;
    if (o)
        c->o = *o;
    if (!c->o.max_jobs)
        c->o.max_jobs = DEFAULT_MAX_JOBS;
    if (!c->o.evict_after)
        c->o.evict_after = DEFAULT_EVICT_AFTER;
    c->bounds = c->o.bounds.max_packet ? c->o.bounds : cap_bounds_default();
    c->sink = sink;
    c->ctx = ctx;
    ref_strmap_init(&c->jobs);
    ref_strmap_init(&c->workers);
    *out = c;
    return CAP_OK;
}

int conf_tc_feed(conf_tc *c, const cap_trace_record *r)
{
    c->idx = c->st.records++;
    c->rec = r;
    if (r->kind != CAP_TRACE_PUBLISH)
        return CAP_OK;
    c->st.packets++;
    cap_packet *p = NULL;
    cap_diag d;
    int rc = cap_packet_decode(r->bytes, r->len, &c->bounds, CAP_DECODE_LENIENT, &p, &d);
    if (rc == CAP_ENOMEM)
        return rc;
    if (rc != CAP_OK) {
        char line[512];
        cap_diag_format(&d, line, sizeof line);
        report(c, "", "undecodable", "cap-spec 02 (reject malformed traffic), 16 L25 (drop it)",
               "every packet on the bus decodes under the strict decoder", "%zu bytes: %s",
               r->len, line);
        evict(c);
        return CAP_OK;
    }
    const char *job_id = packet_job_id(p);
    check_signature(c, p, job_id);
    switch (p->payload_case) {
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_REQUEST:
        if (!job_id[0])
            break;
        if (strcmp(nz(r->subject), SUBJECT_SUBMIT) == 0)
            on_submit(c, p->job_request);
        else
            on_dispatch(c, p->job_request);
        break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_RESULT:
        if (!job_id[0])
            break;
        if (strcmp(nz(r->subject), SUBJECT_DLQ) == 0)
            on_dlq(c, p->job_result);
        else
            on_report(c, job_id, p->job_result, p->job_result->dispatch);
        break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_PROGRESS:
        if (job_id[0])
            on_report(c, job_id, NULL, p->job_progress->dispatch);
        break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_JOB_CANCEL:
        if (job_id[0])
            on_cancel(c, p->job_cancel);
        break;
    case CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT:
        worker_add(c, r->sender);
        worker_add(c, p->heartbeat->worker_id);
        break;
    default: break;
    }
    cap_packet_free(p);
    evict(c);
    return CAP_OK;
}

void conf_tc_get_stats(const conf_tc *c, conf_tc_stats *s)
{
    *s = c->st;
}

void conf_tc_free(conf_tc *c)
{
    if (!c)
        return;
    while (c->live.head)
        job_drop(c, c->live.head);
    while (c->done.head)
        job_drop(c, c->done.head);
    ref_strmap_free(&c->jobs);
    ref_strmap_free(&c->workers);
    for (size_t i = 0; i < c->n_workers; i++)
        free(c->worker_names[i]);
    free(c->worker_names);
    free(c);
}

int conf_tc_check_file(FILE *f, cap_trace_format fmt, const cap_trace_limits *lim,
                       const conf_tc_options *o, conf_tc_sink sink, void *ctx,
                       conf_tc_stats *stats, cap_diag *diag)
{
    cap_diag_clear(diag);
    if (stats)
        memset(stats, 0, sizeof *stats);
    conf_tc *c;
    int rc = conf_tc_new(o, sink, ctx, &c);
    if (rc)
        return cap_diag_set(diag, rc, -1, "", "%s", cap_strerror(rc));
    cap_trace_reader *rd;
    rc = cap_trace_reader_open(f, fmt, lim, &rd, diag);
    if (rc) {
        conf_tc_free(c);
        return rc;
    }
    cap_trace_record r;
    while ((rc = cap_trace_read(rd, &r, diag)) == 1) {
        rc = conf_tc_feed(c, &r);
        if (rc) {
            cap_diag_set(diag, rc, -1, "", "out of memory at record %llu",
                         (unsigned long long)(c->st.records - 1));
            break;
        }
    }
    if (stats)
        conf_tc_get_stats(c, stats);
    cap_trace_reader_close(rd);
    conf_tc_free(c);
    return rc < 0 ? rc : CAP_OK;
}
