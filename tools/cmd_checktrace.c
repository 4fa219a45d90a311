/* capsim check-trace: the offline trace checker (docs/check-trace.md). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_sign.h"
#include "cap_trace.h"
#include "cli.h"
#include "commands.h"
#include "conf_json.h"
#include "conf_tracecheck.h"

#define PEM_MAX_INPUT (64u << 10)

static const char HELP[] =
    "usage: capsim check-trace FILE|- [options]\n"
    "Checks a recorded trace (binary or JSONL, docs/trace.md) against the rules of CAP\n"
    "a bus observer can check: the job state machine, one terminal per job, no dispatch\n"
    "of a denied job, dispatch fencing (attempt order, stale attempts), duplicate side\n"
    "effects, signatures and undecodable packets. Prints one line per broken rule.\n"
    "Exit 0 clean, 1 violations found, 2 usage or unreadable trace.\n\n"
    "  --format auto|binary|jsonl   the trace's encoding (default auto)\n"
    "  --pubkey PEM                 a P-256 public key signatures must verify with\n"
    "                               (repeatable, up to 16)\n"
    "  --require-signatures         an unsigned packet is a violation\n"
    "  --json                       one JSON document instead of lines\n"
    "  --max-packet SIZE            largest packet (default 1M)\n"
    "  --max-jobs N                 jobs held at once (default 100000)\n"
    "  --evict-after N              forget a terminal job N records after its last packet\n"
    "                               (default 100000)\n";

typedef struct {
    int json;
    uint64_t n;
    conf_jw jw;
} out_ctx;

static void fmt_time(int64_t t, char *buf, size_t n)
{
    uint64_t a = t < 0 ? (uint64_t)0 - (uint64_t)t : (uint64_t)t;
    snprintf(buf, n, "%s%" PRIu64 ".%09" PRIu64 "s", t < 0 ? "-" : "", a / 1000000000u,
             a % 1000000000u);
}

static void sink(void *ctx, const conf_tc_violation *v)
{
    out_ctx *o = ctx;
    char t[40];
    fmt_time(v->time, t, sizeof t);
    if (!o->json) {
        /* Subject, sender, job id and what happened come from the trace:
         * each is printed as one line of valid UTF-8, so that a trace
         * cannot forge lines of this report. */
        char subj[CAP_TRACE_MAX_STRING + 8], from[CAP_TRACE_MAX_STRING + 8], job[512], what[1024];
        printf("record %" PRIu64 " t=%s %s from %s job=%s [%s] %s; rule: %s (%s)\n", v->record, t,
               conf_one_line(v->subject, subj, sizeof subj),
               v->sender[0] ? conf_one_line(v->sender, from, sizeof from) : "-",
               v->job_id[0] ? conf_one_line(v->job_id, job, sizeof job) : "-", v->rule,
               conf_one_line(v->what, what, sizeof what), v->expect, v->clause);
        o->n++;
        return;
    }
    conf_jw *w = &o->jw;
    conf_jw_str(w, o->n++ ? ",\n    {" : "\n    {");
    conf_jw_printf(w, "\"record\": %" PRIu64 ", \"time\": \"%" PRId64 "\", \"subject\": ", v->record,
                   v->time);
    conf_jw_quote(w, v->subject);
    conf_jw_str(w, ", \"sender\": ");
    conf_jw_quote(w, v->sender);
    conf_jw_str(w, ", \"job\": ");
    conf_jw_quote(w, v->job_id);
    conf_jw_str(w, ", \"rule\": ");
    conf_jw_quote(w, v->rule);
    conf_jw_str(w, ", \"what\": ");
    conf_jw_quote(w, v->what);
    conf_jw_str(w, ", \"expect\": ");
    conf_jw_quote(w, v->expect);
    conf_jw_str(w, ", \"clause\": ");
    conf_jw_quote(w, v->clause);
    conf_jw_str(w, "}");
    /* stream: print what is built so far, keep memory flat */
    if (!w->failed && w->len) {
        fwrite(w->buf, 1, w->len, stdout);
        w->len = 0;
    }
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0)
        return -1;
    *out = v;
    return 0;
}

int cmd_check_trace(int argc, char **argv)
{
    const char *cmd = "check-trace";
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return CLI_OK;
    }
    const char *path = NULL;
    cap_trace_format fmt = CAP_TRACE_AUTO;
    const char *pubs[CONF_TC_MAX_KEYS];
    size_t n_pubs = 0;
    conf_tc_options o = {0};
    cap_trace_limits lim = {0};
    out_ctx oc = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--format") == 0) {
            if (cli_trace_format(cmd, argc, argv, &i, 1, &fmt) != 0)
                return CLI_USAGE;
        } else if (strcmp(a, "--pubkey") == 0) {
            const char *v = cli_value(cmd, argc, argv, &i);
            if (!v)
                return CLI_USAGE;
            if (n_pubs >= CONF_TC_MAX_KEYS) {
                cli_error(cmd, "at most %d --pubkey", CONF_TC_MAX_KEYS);
                return CLI_USAGE;
            }
            pubs[n_pubs++] = v;
        } else if (strcmp(a, "--require-signatures") == 0) {
            o.require_signatures = 1;
        } else if (strcmp(a, "--json") == 0) {
            oc.json = 1;
        } else if (strcmp(a, "--max-packet") == 0) {
            const char *v = cli_value(cmd, argc, argv, &i);
            size_t sz;
            if (!v)
                return CLI_USAGE;
            if (cli_parse_size(v, &sz) != 0 || sz == 0 || sz > CAP_TRACE_MAX_PACKET_LIMIT) {
                cli_error(cmd, "--max-packet: \"%s\" is not a size in [1, 64M]", v);
                return CLI_USAGE;
            }
            lim.max_packet = sz;
            o.bounds = cap_bounds_default();
            o.bounds.max_packet = sz;
        } else if (strcmp(a, "--max-jobs") == 0 || strcmp(a, "--evict-after") == 0) {
            const char *v = cli_value(cmd, argc, argv, &i);
            uint64_t n;
            if (!v)
                return CLI_USAGE;
            if (parse_u64(v, &n) != 0 || (a[2] == 'm' && n > ((uint64_t)1 << 32))) {
                cli_error(cmd, "%s: \"%s\" is not a positive count", a, v);
                return CLI_USAGE;
            }
            if (a[2] == 'm')
                o.max_jobs = (size_t)n;
            else
                o.evict_after = n;
        } else if (a[0] == '-' && a[1]) {
            cli_error(cmd, "unknown option \"%s\" (see capsim check-trace --help)", a);
            return CLI_USAGE;
        } else if (path) {
            cli_error(cmd, "one trace file at a time");
            return CLI_USAGE;
        } else {
            path = a;
        }
    }
    if (!path) {
        cli_error(cmd, "no trace file (see capsim check-trace --help)");
        return CLI_USAGE;
    }

    cap_key *keys[CONF_TC_MAX_KEYS];
    size_t n_keys = 0;
    int rc = CLI_OK;
    for (size_t k = 0; k < n_pubs; k++) {
        uint8_t *pem;
        size_t len;
        if (cli_read_input(cmd, pubs[k], PEM_MAX_INPUT, &pem, &len) != 0) {
            rc = CLI_USAGE;
            break;
        }
        cap_diag d;
        int krc = len > PEM_MAX_INPUT ? cap_diag_set(&d, CAP_EKEY, -1, "", "key file over 64 KiB")
                                      : cap_key_from_pem((const char *)pem, len, &keys[n_keys], &d);
        free(pem);
        if (krc) {
            cli_diag(cmd, pubs[k], &d);
            rc = CLI_USAGE;
            break;
        }
        n_keys++;
    }
    FILE *f = NULL;
    if (rc == CLI_OK) {
        f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
        if (!f) {
            cli_error(cmd, "%s: %s", path, strerror(errno));
            rc = CLI_USAGE;
        }
    }
    if (rc != CLI_OK) {
        for (size_t k = 0; k < n_keys; k++)
            cap_key_free(keys[k]);
        return rc;
    }
    o.keys = (const cap_key *const *)keys;
    o.n_keys = n_keys;

    if (oc.json) {
        printf("{\n  \"trace\": ");
        conf_jw_quote(&oc.jw, path);
        fwrite(oc.jw.buf ? oc.jw.buf : "\"\"", 1, oc.jw.buf ? oc.jw.len : 2, stdout);
        oc.jw.len = 0;
        printf(",\n  \"violations\": [");
    }
    conf_tc_stats st;
    cap_diag d;
    int crc = conf_tc_check_file(f, fmt, lim.max_packet ? &lim : NULL, &o, sink, &oc, &st, &d);
    if (f != stdin)
        fclose(f);
    for (size_t k = 0; k < n_keys; k++)
        cap_key_free(keys[k]);
    char line[512] = "";
    if (crc)
        cap_diag_format(&d, line, sizeof line);
    if (oc.json) {
        printf("%s],\n  \"records\": %" PRIu64 ",\n  \"packets\": %" PRIu64
               ",\n  \"jobs\": %" PRIu64 ",\n  \"staleIgnored\": %" PRIu64
               ",\n  \"signaturesChecked\": %" PRIu64 ",\n  \"evicted\": %" PRIu64
               ",\n  \"evictedLive\": %" PRIu64 ",\n  \"violationCount\": %" PRIu64 ",\n  \"error\": ",
               st.violations ? "\n  " : "", st.records, st.packets, st.jobs_seen, st.stale_ignored,
               st.signatures_checked, st.evicted, st.evicted_live, st.violations);
        conf_jw_quote(&oc.jw, line);
        if (oc.jw.buf)
            fwrite(oc.jw.buf, 1, oc.jw.len, stdout);
        printf(",\n  \"clean\": %s\n}\n", !crc && !st.violations ? "true" : "false");
        conf_jw_free(&oc.jw);
    }
    if (crc) {
        cli_error(cmd, "%s: %s", path, line);
        return CLI_USAGE;
    }
    if (!oc.json)
        printf("%s: %" PRIu64 " records, %" PRIu64 " jobs, %" PRIu64 " stale packets ignored, %" PRIu64
               " signatures checked: %" PRIu64 " violation%s\n",
               path, st.records, st.jobs_seen, st.stale_ignored, st.signatures_checked,
               st.violations, st.violations == 1 ? "" : "s");
    return st.violations ? CLI_REJECTED : CLI_OK;
}
