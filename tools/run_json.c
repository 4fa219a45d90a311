/* capsim sim --json, capsim swarm --json: see run_json.h. */
#include "run_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "cap_error.h"
#include "conf_json.h"

/* Member names are written as they are (they are literals here); values
 * that come from outside (names, ids, details) are quoted. */
static void key(conf_jw *w, const char *k)
{
    conf_jw_printf(w, "\"%s\":", k);
}

static void u64(conf_jw *w, const char *k, uint64_t v)
{
    key(w, k);
    conf_jw_printf(w, "%" PRIu64 ",", v);
}

static void i64(conf_jw *w, const char *k, int64_t v)
{
    key(w, k);
    conf_jw_printf(w, "%" PRId64 ",", v);
}

/* A 64-bit value JSON readers may not hold exactly (a seed): a decimal
 * string, as the CAP JSON form writes 64-bit integers. */
static void u64_text(conf_jw *w, const char *k, uint64_t v)
{
    key(w, k);
    conf_jw_printf(w, "\"%" PRIu64 "\",", v);
}

static void dbl(conf_jw *w, const char *k, double v)
{
    key(w, k);
    if (isfinite(v))
        conf_jw_printf(w, "%.9g,", v);
    else
        conf_jw_str(w, "null,");
}

static void str(conf_jw *w, const char *k, const char *v)
{
    key(w, k);
    if (v)
        conf_jw_quote(w, v);
    else
        conf_jw_str(w, "null");
    conf_jw_str(w, ",");
}

/* Ends an object or array: the trailing comma of its last member goes. */
static void close_with(conf_jw *w, char c)
{
    if (!w->failed && w->len && w->buf[w->len - 1] == ',')
        w->len--;
    conf_jw_printf(w, "%c,", c);
}

static int take(conf_jw *w, char **out, size_t *len)
{
    if (!w->failed && w->len && w->buf[w->len - 1] == ',')
        w->len--;
    conf_jw_str(w, "\n");
    return conf_jw_take(w, out, len);
}

static void scenario(conf_jw *w, const sim_scenario *scn)
{
    key(w, "scenario");
    conf_jw_str(w, "{");
    str(w, "name", scn->name);
    str(w, "path", scn->path);
    key(w, "sets"); /* the overrides (--set PATH=VALUE), in the order applied */
    conf_jw_str(w, "[");
    for (size_t i = 0; i < scn->n_sets; i++) {
        conf_jw_quote(w, scn->sets[i]);
        conf_jw_str(w, ",");
    }
    close_with(w, ']');
    close_with(w, '}');
}

/* The violation of r: the invariant, the job, the virtual time and what
 * the checker saw. */
static void violation(conf_jw *w, const sim_result *r)
{
    str(w, "invariant", r->invariant);
    str(w, "job", r->job_id[0] ? r->job_id : NULL);
    i64(w, "atNs", r->at);
    str(w, "detail", r->detail);
}

static void body(conf_jw *w, const sim_run_config *cfg, const sim_result *r, const char *bug)
{
    str(w, "format", RUN_JSON_FORMAT);
    scenario(w, cfg->scn);
    u64_text(w, "seed", cfg->seed);
    str(w, "bug", bug);

    sim_seed_stream st[SIM_SEED_STREAMS_MAX];
    size_t n_st = sim_seed_streams(cfg, st);
    key(w, "streams");
    conf_jw_str(w, "{");
    for (size_t i = 0; i < n_st; i++) {
        key(w, st[i].name);
        conf_jw_printf(w, "\"%016" PRIx64 "\",", st[i].first);
    }
    close_with(w, '}');

    i64(w, "virtualTimeNs", r->end_time);
    u64(w, "events", r->events);
    key(w, "jobs");
    conf_jw_str(w, "{");
    u64(w, "submitted", r->submitted);
    u64(w, "compensations", r->compensations);
    u64(w, "succeeded", r->succeeded);
    u64(w, "failed", r->failed);
    u64(w, "failedFatal", r->failed_fatal);
    u64(w, "cancelled", r->cancelled);
    u64(w, "denied", r->denied);
    u64(w, "timeout", r->timed_out);
    u64(w, "parked", r->parked);
    u64(w, "unfinished", r->unfinished);
    close_with(w, '}');

    u64(w, "retries", r->retries);
    u64(w, "rollbacks", r->rollbacks);
    u64(w, "breakerOpenings", r->breaker_openings);
    u64(w, "dlq", r->dlq);
    u64(w, "duplicatesAnswered", r->duplicates);
    u64(w, "staleIgnored", r->stale);

    uint64_t answered = r->approvals + r->rejections;
    key(w, "approvals");
    conf_jw_str(w, "{");
    u64(w, "approved", r->approvals);
    u64(w, "rejected", r->rejections);
    u64(w, "stale", r->approvals_stale);
    i64(w, "waitTotalNs", r->approval_wait_ns);
    i64(w, "waitMeanNs", answered ? r->approval_wait_ns / (int64_t)answered : 0);
    close_with(w, '}');

    key(w, "latency");
    conf_jw_str(w, "[");
    for (size_t i = 0; i < r->n_topics; i++) {
        conf_jw_str(w, "{");
        str(w, "topic", r->topics[i].topic);
        u64(w, "n", r->topics[i].n);
        i64(w, "p50Ns", r->topics[i].p50);
        i64(w, "p95Ns", r->topics[i].p95);
        i64(w, "p99Ns", r->topics[i].p99);
        close_with(w, '}');
    }
    close_with(w, ']');

    dbl(w, "workerUtilisation", r->utilisation);
    dbl(w, "throughputJobsPerSecond", r->throughput);
    u64(w, "handlerCalls", r->handler_calls);

    key(w, "checkpoints");
    conf_jw_str(w, "{");
    u64(w, "reported", r->checkpoints_reported);
    u64(w, "resumed", r->checkpoint_resumes);
    close_with(w, '}');

    key(w, "heartbeats");
    conf_jw_str(w, "{");
    u64(w, "missed", r->heartbeats_missed);
    u64(w, "late", r->heartbeats_late);
    close_with(w, '}');

    key(w, "bus");
    conf_jw_str(w, "{");
    u64(w, "published", r->bus_published);
    u64(w, "delivered", r->bus_delivered);
    u64(w, "dropped", r->bus_dropped);
    u64(w, "duplicated", r->bus_duplicated);
    u64(w, "corrupted", r->bus_corrupted);
    u64(w, "decodeFailures", r->bus_decode_failures);
    u64(w, "replayed", r->bus_replayed);
    close_with(w, '}');

    key(w, "signing");
    conf_jw_str(w, "{");
    u64(w, "signedSubmits", r->signed_submits);
    u64(w, "duplicates", r->signed_duplicates);
    u64(w, "expired", r->signed_expired);
    u64(w, "conflicts", r->signed_conflicts);
    u64(w, "twinsSent", r->twins_sent);
    close_with(w, '}');

    key(w, "invariants");
    conf_jw_str(w, "{");
    key(w, "held");
    conf_jw_str(w, r->violated ? "false," : "true,");
    key(w, "violation");
    if (r->violated) {
        conf_jw_str(w, "{");
        violation(w, r);
        close_with(w, '}');
    } else {
        conf_jw_str(w, "null,");
    }
    close_with(w, '}');

    key(w, "trace");
    conf_jw_str(w, "{");
    u64(w, "records", r->trace_records);
    str(w, "sha256", r->trace_hash);
    close_with(w, '}');
}

int run_json_one(const sim_run_config *cfg, const sim_result *r, const char *bug,
                 const char *shrunk, char **out, size_t *len)
{
    if (!cfg || !cfg->scn || !r || !out || !len)
        return CAP_EINVAL;
    conf_jw w = {0};
    conf_jw_str(&w, "{");
    body(&w, cfg, r, bug);
    str(&w, "shrunk", shrunk);
    close_with(&w, '}');
    return take(&w, out, len);
}

/* The outcome of many seeds: the range, how many ran, whether they held,
 * the smallest failing seed (with drawn, when not NULL: the scenario file
 * that seed drew) and the shrunk file. */
static void seeds_outcome(conf_jw *w, const run_json_seeds_outcome *o, const char *drawn)
{
    u64_text(w, "from", o->from);
    u64_text(w, "to", o->to);
    u64(w, "seedsRun", o->ran);
    key(w, "held");
    conf_jw_str(w, o->violated ? "false," : "true,");
    key(w, "violation");
    if (o->violated) {
        conf_jw_str(w, "{");
        u64_text(w, "seed", o->seed);
        if (drawn)
            str(w, "scenario", drawn);
        violation(w, o->res);
        str(w, "traceSha256", o->res->trace_hash);
        close_with(w, '}');
    } else {
        conf_jw_str(w, "null,");
    }
    str(w, "shrunk", o->shrunk);
    key(w, "runs"); /* each seed's outcome, in seed order, up to the failing seed */
    conf_jw_str(w, "[");
    for (size_t i = 0; o->runs && i < o->runs->n; i++) {
        const seed_run *r = &o->runs->v[i];
        conf_jw_str(w, "{");
        u64_text(w, "seed", r->seed);
        key(w, "held");
        conf_jw_str(w, r->violated ? "false," : "true,");
        str(w, "traceSha256", r->trace_hash);
        close_with(w, '}');
    }
    close_with(w, ']');
}

int run_json_seeds(const sim_scenario *scn, const run_json_seeds_outcome *o, const char *bug,
                   char **out, size_t *len)
{
    if (!scn || !o || (o->violated && !o->res) || !out || !len)
        return CAP_EINVAL;
    conf_jw w = {0};
    conf_jw_str(&w, "{");
    str(&w, "format", RUN_JSON_SEEDS_FORMAT);
    scenario(&w, scn);
    str(&w, "bug", bug);
    seeds_outcome(&w, o, NULL);
    close_with(&w, '}');
    return take(&w, out, len);
}

int run_json_swarm(const char *dir, const run_json_seeds_outcome *o, const char *drawn,
                   const char *bug, char **out, size_t *len)
{
    if (!dir || !o || (o->violated && (!o->res || !drawn)) || !out || !len)
        return CAP_EINVAL;
    conf_jw w = {0};
    conf_jw_str(&w, "{");
    str(&w, "format", RUN_JSON_SWARM_FORMAT);
    str(&w, "out", dir);
    str(&w, "bug", bug);
    seeds_outcome(&w, o, drawn);
    close_with(&w, '}');
    return take(&w, out, len);
}

int run_json_sweep(const sim_scenario *scn, const sweep_axis *axes, const sweep_variants *v,
                   uint64_t seed, const char *bug, char **out, size_t *len)
{
    if (!scn || !axes || !v || !out || !len)
        return CAP_EINVAL;
    conf_jw w = {0};
    conf_jw_str(&w, "{");
    str(&w, "format", RUN_JSON_SWEEP_FORMAT);
    scenario(&w, scn);
    u64_text(&w, "seed", seed);
    str(&w, "bug", bug);
    key(&w, "axes");
    conf_jw_str(&w, "[");
    for (size_t a = 0; a < v->n_axes; a++) {
        conf_jw_str(&w, "{");
        str(&w, "path", axes[a].path);
        key(&w, "values"); /* as YAML flow text: what --set takes */
        conf_jw_str(&w, "[");
        for (size_t k = 0; k < axes[a].n; k++) {
            conf_jw_quote(&w, axes[a].values[k]);
            conf_jw_str(&w, ",");
        }
        close_with(&w, ']');
        close_with(&w, '}');
    }
    close_with(&w, ']');
    size_t broken = 0;
    key(&w, "variants");
    conf_jw_str(&w, "[");
    for (size_t i = 0; i < v->n; i++) {
        conf_jw_str(&w, "{");
        u64(&w, "variant", i + 1);
        key(&w, "sets"); /* this variant's value of each axis, as an override */
        conf_jw_str(&w, "[");
        for (size_t a = 0; a < v->n_axes; a++) {
            conf_jw_quote(&w, axes[a].sets[v->pick[i * v->n_axes + a]]);
            conf_jw_str(&w, ",");
        }
        close_with(&w, ']');
        sim_run_config c = {0};
        c.scn = v->scn[i];
        c.seed = seed;
        char *doc = NULL;
        size_t n = 0;
        int rc = run_json_one(&c, &v->res[i], bug, NULL, &doc, &n);
        if (rc != CAP_OK) {
            conf_jw_free(&w);
            return rc;
        }
        key(&w, "report");
        conf_jw_raw(&w, doc, n && doc[n - 1] == '\n' ? n - 1 : n);
        conf_jw_str(&w, ",");
        free(doc);
        close_with(&w, '}');
        broken += v->res[i].violated != 0;
    }
    close_with(&w, ']');
    key(&w, "held");
    conf_jw_str(&w, broken ? "false," : "true,");
    close_with(&w, '}');
    return take(&w, out, len);
}
