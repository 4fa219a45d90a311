/* capsim worker / scheduler / record / certify: the reference components
 * and the harness on a real NATS bus (docs/certify.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_trace.h"
#include "cli.h"
#include "commands.h"
#include "conf_certify.h"
#include "conf_golden.h"
#include "conf_nats.h"
#include "conf_peer.h"
#include "ref_bugs.h"
#include "sim_scenario.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int parse_ns(const char *cmd, const char *opt, const char *v, int64_t *out)
{
    if (!v)
        return -1;
    if (sim_parse_duration(v, out) != CAP_OK || *out < 0) {
        cli_error(cmd, "%s: \"%s\" is not a duration (e.g. 500ms, 2s)", opt, v);
        return -1;
    }
    return 0;
}

static int parse_u64(const char *cmd, const char *opt, const char *v, uint64_t max, uint64_t *out)
{
    if (!v)
        return -1;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || v[0] == '-' || x > max) {
        cli_error(cmd, "%s: \"%s\" is not a number in 0..%llu", opt, v, (unsigned long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

static int set_mutant(const char *cmd, const char *name)
{
    int b = ref_bug_from_name(name);
    if (b < 0) {
        cli_error(cmd, "unknown mutant \"%s\" (known:", name);
        for (int i = 1; i < REF_BUG_COUNT; i++)
            fprintf(stderr, " %s", ref_bug_name((ref_bug)i));
        fprintf(stderr, ")\n");
        return -1;
    }
    ref_bug_set((ref_bug)b);
    return 0;
}

/* One option of `capsim worker` or `capsim scheduler` that stores a value:
 * the option's value goes to the pointer its kind names. */
typedef enum { PEER_OPT_TEXT, PEER_OPT_DURATION, PEER_OPT_NUMBER, PEER_OPT_FLAG } peer_opt_kind;

typedef struct {
    const char *name;
    peer_opt_kind kind;
    void *dst;      /* const char **, int64_t *, uint64_t * or int * (set to 1) */
    uint64_t max;   /* PEER_OPT_NUMBER: the largest value */
    int nonzero;    /* PEER_OPT_DURATION, PEER_OPT_NUMBER: 0 is refused */
    int *given;     /* NULL, or set to 1 when the option is given */
} peer_opt;

/* Parses argv against opts plus the options both roles take (--mutant,
 * --quiet): CLI_OK, or CLI_USAGE after saying what is wrong. */
static int parse_peer_opts(const char *cmd, int argc, char **argv, const peer_opt *opts,
                           size_t n_opts, conf_peer_config *c)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const peer_opt *o = NULL;
        for (size_t k = 0; k < n_opts && !o; k++)
            if (strcmp(a, opts[k].name) == 0)
                o = &opts[k];
        if (o) {
            switch (o->kind) {
            case PEER_OPT_TEXT:
                if (!(*(const char **)o->dst = cli_value(cmd, argc, argv, &i)))
                    return CLI_USAGE;
                break;
            case PEER_OPT_DURATION: {
                int64_t *ns = o->dst;
                if (parse_ns(cmd, a, cli_value(cmd, argc, argv, &i), ns) || (o->nonzero && !*ns))
                    return CLI_USAGE;
                break;
            }
            case PEER_OPT_NUMBER: {
                uint64_t *u = o->dst;
                if (parse_u64(cmd, a, cli_value(cmd, argc, argv, &i), o->max, u) || (o->nonzero && !*u))
                    return CLI_USAGE;
                break;
            }
            case PEER_OPT_FLAG:
                *(int *)o->dst = 1;
                break;
            }
            if (o->given)
                *o->given = 1;
        } else if (strcmp(a, "--mutant") == 0) {
            const char *v = cli_value(cmd, argc, argv, &i);
            if (!v || set_mutant(cmd, v))
                return CLI_USAGE;
        } else if (strcmp(a, "--quiet") == 0) {
            c->log = NULL;
        } else {
            cli_error(cmd, "unknown option \"%s\" (see --help)", a);
            return CLI_USAGE;
        }
    }
    return CLI_OK;
}

static int run_peer(const char *cmd, conf_peer_config *c)
{
    install_signals();
    char err[512] = "";
    conf_peer *p = NULL;
    int rc = conf_peer_new(c, &p, err, sizeof err);
    if (rc) {
        cli_error(cmd, "%s", err);
        return rc == CAP_EIO ? CLI_REJECTED : CLI_USAGE;
    }
    rc = conf_peer_run(p, &g_stop, err, sizeof err);
    conf_peer_stats st = conf_peer_stats_get(p);
    conf_peer_free(p);
    if (rc) {
        cli_error(cmd, "%s", err);
        return CLI_REJECTED;
    }
    if (c->log)
        fprintf(c->log, "stopped: %llu received, %llu rejected, %llu published, %llu handler calls\n",
                (unsigned long long)st.received, (unsigned long long)st.rejected,
                (unsigned long long)st.published, (unsigned long long)st.handler_calls);
    return CLI_OK;
}

/* ---- capsim worker ---- */

static const char WORKER_HELP[] =
    "usage: capsim worker --nats URL --id ID --pool POOL [--max-parallel N]\n"
    "                     [--heartbeat D] [--mutant NAME] [--quiet]\n"
    "\n"
    "The reference worker on a real NATS bus: takes jobs on job.<pool> (queue\n"
    "group workers.<pool>) and worker.<id>.jobs, cancels on sys.job.cancel,\n"
    "publishes JobProgress, JobResult and Heartbeat (every D, default 5s). Its\n"
    "handler obeys the conformance-handler contract (cap.conformance.* labels,\n"
    "docs/conformance-handler.md). Stops on SIGINT/SIGTERM; a lost connection\n"
    "is an error (exit 1). Logs one line per event on stderr unless --quiet.\n";

int cmd_worker(int argc, char **argv)
{
    const char *cmd = "worker";
    if (cli_wants_help(argc, argv)) {
        fputs(WORKER_HELP, stdout);
        return CLI_OK;
    }
    conf_peer_config c = {0};
    c.role = CONF_PEER_WORKER;
    c.log = stderr;
    uint64_t max_parallel = 0;
    const peer_opt opts[] = {
        {"--nats", PEER_OPT_TEXT, &c.url, 0, 0, NULL},
        {"--id", PEER_OPT_TEXT, &c.worker_id, 0, 0, NULL},
        {"--pool", PEER_OPT_TEXT, &c.pool, 0, 0, NULL},
        {"--max-parallel", PEER_OPT_NUMBER, &max_parallel, 65536, 1, NULL},
        {"--heartbeat", PEER_OPT_DURATION, &c.heartbeat_ns, 0, 1, NULL},
    };
    if (parse_peer_opts(cmd, argc, argv, opts, sizeof opts / sizeof opts[0], &c))
        return CLI_USAGE;
    c.max_parallel = (int32_t)max_parallel;
    if (!c.url || !c.worker_id || !c.pool) {
        cli_error(cmd, "--nats, --id and --pool are required");
        return CLI_USAGE;
    }
    return run_peer(cmd, &c);
}

/* ---- capsim scheduler ---- */

static const char SCHED_HELP[] =
    "usage: capsim scheduler --nats URL [--policy FILE] [--id ID]\n"
    "                        [--dispatch-timeout D] [--running-timeout D]\n"
    "                        [--no-worker-wait D] [--max-retries N] [--worker-grace D]\n"
    "                        [--breaker-threshold N] [--breaker-cool-down D] [--dispatch-on-pool]\n"
    "                        [--seed N] [--mutant NAME] [--quiet]\n"
    "\n"
    "The reference scheduler on a real NATS bus: sys.job.submit, sys.job.result\n"
    "and sys.job.progress in queue group cordum-scheduler; sys.heartbeat,\n"
    "sys.job.cancel, sys.handshake; dispatches on worker.<id>.jobs (or job.<pool>\n"
    "with --dispatch-on-pool). Operator actions arrive on the test-control\n"
    "subjects capsim.control.approve|reject|cancel with a JSON body\n"
    "{\"job_id\":..., \"by\":..., \"note\":...} (docs/certify.md). Without --policy\n"
    "everything is allowed. Stops on SIGINT/SIGTERM; a lost connection is an\n"
    "error (exit 1).\n";

int cmd_scheduler(int argc, char **argv)
{
    const char *cmd = "scheduler";
    if (cli_wants_help(argc, argv)) {
        fputs(SCHED_HELP, stdout);
        return CLI_OK;
    }
    conf_peer_config c = {0};
    c.role = CONF_PEER_SCHEDULER;
    c.log = stderr;
    uint64_t max_retries = 0, breaker_threshold = 0;
    int max_retries_set = 0;
    const peer_opt opts[] = {
        {"--nats", PEER_OPT_TEXT, &c.url, 0, 0, NULL},
        {"--policy", PEER_OPT_TEXT, &c.policy_path, 0, 0, NULL},
        {"--id", PEER_OPT_TEXT, &c.scheduler_id, 0, 0, NULL},
        {"--dispatch-timeout", PEER_OPT_DURATION, &c.dispatch_timeout_ns, 0, 0, NULL},
        {"--running-timeout", PEER_OPT_DURATION, &c.running_timeout_ns, 0, 0, NULL},
        {"--no-worker-wait", PEER_OPT_DURATION, &c.no_worker_wait_ns, 0, 0, NULL},
        {"--max-retries", PEER_OPT_NUMBER, &max_retries, 1000, 0, &max_retries_set},
        {"--worker-grace", PEER_OPT_DURATION, &c.worker_grace_ns, 0, 0, NULL},
        {"--breaker-threshold", PEER_OPT_NUMBER, &breaker_threshold, 1000000, 0, NULL},
        {"--breaker-cool-down", PEER_OPT_DURATION, &c.breaker_cool_down_ns, 0, 0, NULL},
        {"--seed", PEER_OPT_NUMBER, &c.seed, UINT64_MAX, 0, NULL},
        {"--dispatch-on-pool", PEER_OPT_FLAG, &c.dispatch_on_pool, 0, 0, NULL},
    };
    if (parse_peer_opts(cmd, argc, argv, opts, sizeof opts / sizeof opts[0], &c))
        return CLI_USAGE;
    c.max_retries = (uint32_t)max_retries;
    c.max_retries_set = max_retries_set;
    c.breaker_threshold = (uint32_t)breaker_threshold;
    if (!c.url) {
        cli_error(cmd, "--nats is required");
        return CLI_USAGE;
    }
    return run_peer(cmd, &c);
}

/* ---- capsim record ---- */

static const char RECORD_HELP[] =
    "usage: capsim record --nats URL --out FILE [--subjects 'sys.>,job.>,worker.>']\n"
    "                     [--format binary|jsonl] [--duration D] [--max-packets N]\n"
    "\n"
    "Captures every message on the subjects into a trace file (docs/trace.md):\n"
    "one PUBLISH record each, with the Unix time in ns, the subject, the reply\n"
    "subject, the exact bytes, and the sender from the packet's sender_id when\n"
    "it decodes. Records are flushed as they come. Stops on SIGINT/SIGTERM,\n"
    "after --duration or --max-packets, closes the trace cleanly and prints the\n"
    "count and the trace hash. A lost connection ends the trace too (exit 1).\n";

int cmd_record(int argc, char **argv)
{
    const char *cmd = "record";
    if (cli_wants_help(argc, argv)) {
        fputs(RECORD_HELP, stdout);
        return CLI_OK;
    }
    const char *url = NULL, *out = NULL, *subjects = "sys.>,job.>,worker.>";
    cap_trace_format fmt = CAP_TRACE_BINARY;
    int64_t duration = 0;
    uint64_t max_packets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--nats") == 0) {
            if (!(url = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--out") == 0) {
            if (!(out = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--subjects") == 0) {
            if (!(subjects = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--format") == 0) {
            if (cli_trace_format(cmd, argc, argv, &i, 0, &fmt) != 0)
                return CLI_USAGE;
        } else if (strcmp(a, "--duration") == 0) {
            if (parse_ns(cmd, a, cli_value(cmd, argc, argv, &i), &duration))
                return CLI_USAGE;
        } else if (strcmp(a, "--max-packets") == 0) {
            if (parse_u64(cmd, a, cli_value(cmd, argc, argv, &i), UINT64_MAX, &max_packets))
                return CLI_USAGE;
        } else {
            cli_error(cmd, "unknown option \"%s\" (see --help)", a);
            return CLI_USAGE;
        }
    }
    if (!url || !out) {
        cli_error(cmd, "--nats and --out are required");
        return CLI_USAGE;
    }
    install_signals();
    char err[512];
    conf_nats *nc = NULL;
    if (conf_nats_connect(url, "capsim-record", 0, &nc, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        return CLI_REJECTED;
    }
    /* the subject list: comma-separated, each a NATS subject */
    char list[1024];
    if (strlen(subjects) >= sizeof list) {
        cli_error(cmd, "--subjects: longer than %zu bytes", sizeof list - 1);
        conf_nats_close(nc);
        return CLI_USAGE;
    }
    snprintf(list, sizeof list, "%s", subjects);
    int n_subs = 0;
    for (char *save = NULL, *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        while (*s == ' ')
            s++;
        if (!*s)
            continue;
        if (conf_nats_subscribe(nc, s, NULL, err, sizeof err)) {
            cli_error(cmd, "--subjects: %s", err);
            conf_nats_close(nc);
            return CLI_USAGE;
        }
        n_subs++;
    }
    if (!n_subs || conf_nats_flush(nc, 0, err, sizeof err)) {
        cli_error(cmd, "%s", n_subs ? err : "--subjects: no subject");
        conf_nats_close(nc);
        return n_subs ? CLI_REJECTED : CLI_USAGE;
    }
    FILE *f = fopen(out, "wb");
    if (!f) {
        cli_error(cmd, "%s: cannot create", out);
        conf_nats_close(nc);
        return CLI_USAGE;
    }
    cap_trace_writer *tw = NULL;
    if (cap_trace_writer_open(f, fmt, &tw)) {
        cli_error(cmd, "%s: cannot write the trace header", out);
        fclose(f);
        conf_nats_close(nc);
        return CLI_USAGE;
    }
    fflush(f);
    fprintf(stderr, "capsim record: recording %s from %s into %s\n", subjects, url, out);
    int64_t end = duration ? conf_nats_monotonic() + duration : INT64_MAX;
    int rc = CLI_OK;
    uint64_t skipped = 0;
    while (!g_stop && (!max_packets || cap_trace_writer_count(tw) < max_packets)) {
        int64_t left = end == INT64_MAX ? 200 : (end - conf_nats_monotonic()) / 1000000;
        if (left <= 0 && end != INT64_MAX)
            break;
        if (left > 200)
            left = 200;
        conf_nats_msg m;
        int r = conf_nats_next(nc, left, &m, err, sizeof err);
        if (r < 0) {
            cli_error(cmd, "%s", err);
            rc = CLI_REJECTED;
            break;
        }
        if (r == 0)
            continue;
        char sender[CAP_TRACE_MAX_STRING + 1];
        cap_trace_record rec;
        conf_nats_trace_record(&m, sender, &rec);
        cap_diag d;
        if (cap_trace_write(tw, &rec, &d) == CAP_EINVAL)
            skipped++; /* e.g. a sender that is not UTF-8: bounded input, not recorded */
        else
            fflush(f);
        conf_nats_msg_free(&m);
    }
    uint64_t count = cap_trace_writer_count(tw);
    char hex[65];
    int wrc = cap_trace_writer_close(tw, hex);
    if (fclose(f) != 0 || wrc) {
        cli_error(cmd, "%s: write failed", out);
        rc = CLI_USAGE;
    }
    uint64_t dropped = conf_nats_dropped(nc);
    conf_nats_close(nc);
    printf("recorded %llu packets into %s", (unsigned long long)count, out);
    if (skipped || dropped)
        printf(" (%llu not recordable, %llu dropped over a bound)", (unsigned long long)skipped,
               (unsigned long long)dropped);
    printf("\ntrace hash %s\n", hex);
    return rc;
}

/* ---- capsim certify ---- */

static const char CERTIFY_HELP[] =
    "usage: capsim certify --role worker|scheduler (--nats URL | --start-nats)\n"
    "                      [--impl 'argv0|arg|...'] [--case ID]... [--dir conformance/cases]\n"
    "                      [--json F] [--junit F] [--html F] [--trace-dir DIR]\n"
    "                      [--ready-timeout D] [--settle D]\n"
    "\n"
    "Certifies an implementation of one role against the golden cases over a\n"
    "real NATS bus: for each case it (re)starts the implementation from --impl\n"
    "(no shell; placeholders {nats} {worker_id} {pool} {heartbeat} {max_parallel}\n"
    "{policy} {dispatch_timeout} {running_timeout} {no_worker_wait} {max_retries}\n"
    "{scheduler_id} {case} {case_dir} {scenario} and the case's iut keys), plays\n"
    "every other role from the golden trace, records the bus and matches: ids\n"
    "bound on first sight, order per job, times within the case's window. A\n"
    "failure prints the first divergence with a field-level diff. Without\n"
    "--impl the implementation must already be on the bus. --html writes one\n"
    "self-contained page with each failing case's observed trace drawn beside its\n"
    "golden trace (observed traces kept in --trace-dir, default F.traces).\n"
    "docs/certify.md.\n"
    "Exit 0 every case passed, 1 a case failed (or none applied), 2 usage/IO.\n";

int cmd_certify(int argc, char **argv)
{
    const char *cmd = "certify";
    if (cli_wants_help(argc, argv)) {
        fputs(CERTIFY_HELP, stdout);
        return CLI_OK;
    }
    conf_certify_opts o = {0};
    const char *ids[CONF_CERTIFY_MAX_CASE_IDS];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (strcmp(a, "--role") == 0) {
            if (!(v = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
            if (strcmp(v, "worker") == 0)
                o.role = CONF_GOLDEN_ROLE_WORKER;
            else if (strcmp(v, "scheduler") == 0)
                o.role = CONF_GOLDEN_ROLE_SCHEDULER;
            else {
                cli_error(cmd, "--role: worker or scheduler, not \"%s\"", v);
                return CLI_USAGE;
            }
        } else if (strcmp(a, "--nats") == 0) {
            if (!(o.nats_url = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--start-nats") == 0) {
            o.start_nats = 1;
        } else if (strcmp(a, "--impl") == 0) {
            if (!(o.impl = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--case") == 0) {
            if (!(v = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
            if (o.n_case_ids >= CONF_CERTIFY_MAX_CASE_IDS) {
                cli_error(cmd, "more than %d --case options", CONF_CERTIFY_MAX_CASE_IDS);
                return CLI_USAGE;
            }
            ids[o.n_case_ids++] = v;
        } else if (strcmp(a, "--dir") == 0) {
            if (!(o.dir = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--json") == 0) {
            if (!(o.json_path = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--junit") == 0) {
            if (!(o.junit_path = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--html") == 0) {
            if (!(o.html_path = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--trace-dir") == 0) {
            if (!(o.trace_dir = cli_value(cmd, argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(a, "--ready-timeout") == 0) {
            if (parse_ns(cmd, a, cli_value(cmd, argc, argv, &i), &o.ready_timeout_ns))
                return CLI_USAGE;
        } else if (strcmp(a, "--settle") == 0) {
            if (parse_ns(cmd, a, cli_value(cmd, argc, argv, &i), &o.settle_ns))
                return CLI_USAGE;
        } else {
            cli_error(cmd, "unknown option \"%s\" (see --help)", a);
            return CLI_USAGE;
        }
    }
    if (!o.role) {
        cli_error(cmd, "--role is required");
        return CLI_USAGE;
    }
    o.case_ids = ids;
    install_signals();
    char err[1024] = "";
    int code = conf_certify_run(&o, &g_stop, err, sizeof err);
    if (code == 2)
        cli_error(cmd, "%s", err);
    return code;
}
