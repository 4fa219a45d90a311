/* make bench: the simulator's speed and memory on a large workload
 * (bench/sim-large.yaml: 1000 workers, Poisson 500 jobs/s, one simulated
 * hour), every packet encoded to bytes and strictly decoded on arrival.
 *
 * An event is one item popped from the simulator's event queue (a bus
 * delivery, a timer, an arrival, a workflow step, a fault). Printed for
 * two modes, each in its own child process (so the peak RSS is that run's):
 *   checks on   the scenario's invariants checked on every journal record
 *               and in every worker handler;
 *   checks off  no invariant checked (sim_run_config.checks_off); the
 *               encode and the strict decode of every packet stay on.
 * Then the memory check: the same workload (checks on) for T and for 4T
 * of simulated time, each in a child, and the ratio of their peak RSS.
 *
 * The two modes run in alternation, BENCH_SIM_ROUNDS times each (default
 * 3), every round printed; each mode's figure is its fastest round. On a
 * shared machine other tenants only ever add time, so the fastest round is
 * the one that measured the code most closely, and alternating the modes
 * lets a slow spell fall on both.
 *
 * Targets: >= 1 M events/s with checks on, >= 3 M with checks off (one
 * core: the run is single-threaded), peak RSS of the 4T run within 1.25x
 * of the T run. Each is printed MET or NOT MET with its figures.
 *
 * Last, the wire's share: the packets a 60 s slice of the same workload
 * publishes (read back from its binary trace) are each strictly decoded,
 * canonically encoded and SHA-256 hashed, each step timed on its own over
 * batches of packets, best of three rounds. That is the least any run must
 * spend on a packet (the bus encodes, decodes and hashes every one, usually
 * more than once), so with the checks-on run's packets per event it gives
 * a ceiling: the events per second the run could not exceed even if the
 * actors cost nothing.
 *
 * Then the backlog (bench/sim-backlog.yaml, or BENCH_SIM_BACKLOG): an
 * overloaded workload whose waiting queue grows to about 34 000 jobs, run
 * once with checks on for its whole length, its events per second printed
 * beside the large workload's checks-on figure as a ratio. A scheduler
 * whose cost per event grows with the waiting queue shows here: when every
 * drain tried each waiting job with a timer move and a journal record, the
 * run took 724 s (0.004 M events/s, a ratio under 0.01). When a drain
 * still read (and copied) every waiting entry, it took about 7.5 s (0.35 M
 * events/s, a ratio of about 0.5). Now it takes about 3 s (0.81 to 0.90 M
 * events/s), a ratio of 1.1 to 1.2.
 *
 * usage: bench_sim [SCENARIO]   (default bench/sim-large.yaml)
 * BENCH_SIM_SECONDS=N runs N simulated seconds instead of the scenario's
 * duration (a smoke run); BENCH_SIM_MEM_SECONDS=N sets T (default: a
 * quarter of the run, at most 900 s); BENCH_SIM_ROUNDS=N (1 to 20) sets the
 * rounds.
 * Exit 0 when every run completed (targets met or not), 1 on an error. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cap_arena.h"
#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_sha256.h"
#include "cap_trace.h"
#include "sim_scenario.h"
#include "sim_world.h"

#define SEC INT64_C(1000000000)

typedef struct {
    int ok;
    int violated;
    uint64_t events;
    double wall;
    int64_t sim_ns;
    uint64_t jobs_done, submitted, published;
    long maxrss_kb;
    char hash[65];
    char error[800];
} run_report;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs one simulation in this process and fills *r; the binary trace goes
 * to trace when it is not NULL. */
static void run_here(const sim_scenario *scn, int64_t duration_ns, int checks_off, FILE *trace,
                     run_report *r)
{
    memset(r, 0, sizeof *r);
    sim_run_config c = {0};
    c.trace_bin = trace;
    c.scn = scn;
    c.seed = scn->seed;
    c.duration_ns = duration_ns;
    c.checks_off = checks_off;
    sim_result *res = calloc(1, sizeof *res);
    if (!res) {
        snprintf(r->error, sizeof r->error, "out of memory");
        return;
    }
    cap_diag d;
    memset(&d, 0, sizeof d);
    double t0 = now_seconds();
    int rc = sim_run(&c, res, &d);
    r->wall = now_seconds() - t0;
    if (rc != CAP_OK) {
        snprintf(r->error, sizeof r->error, "sim_run failed: %d (%s)", rc, d.reason);
        free(res);
        return;
    }
    r->ok = 1;
    r->violated = res->violated;
    r->events = res->events;
    r->sim_ns = res->end_time;
    r->submitted = res->submitted;
    r->published = res->bus_published;
    r->jobs_done = res->succeeded + res->failed + res->failed_fatal + res->cancelled +
                   res->denied + res->timed_out;
    memcpy(r->hash, res->trace_hash, sizeof r->hash);
    if (res->violated)
        snprintf(r->error, sizeof r->error, "invariant %s broke: %s", res->invariant, res->detail);
    free(res);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        r->maxrss_kb = ru.ru_maxrss;
}

/* The same in a child process, so ru_maxrss is this run's alone. */
static int run_child(const sim_scenario *scn, int64_t duration_ns, int checks_off, run_report *r)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        run_report rr;
        run_here(scn, duration_ns, checks_off, NULL, &rr);
        const char *p = (const char *)&rr;
        size_t left = sizeof rr;
        while (left) {
            ssize_t n = write(fd[1], p, left);
            if (n <= 0)
                _exit(3);
            p += n;
            left -= (size_t)n;
        }
        _exit(0);
    }
    close(fd[1]);
    memset(r, 0, sizeof *r);
    char *p = (char *)r;
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = read(fd[0], p + got, sizeof *r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof *r || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        memset(r, 0, sizeof *r);
        snprintf(r->error, sizeof r->error, "the run's process died (status %d)", st);
        return -1;
    }
    return 0;
}

/* The packets a run published, read back from its binary trace. */
typedef struct {
    uint8_t **bytes;
    size_t *len;
    size_t n, cap;
} packet_set;

static void packets_free(packet_set *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        free(ps->bytes[i]);
    free(ps->bytes);
    free(ps->len);
    memset(ps, 0, sizeof *ps);
}

/* Runs the workload for duration_ns with a trace and keeps its PUBLISH
 * records' bytes. 0, or -1 with a message in err. */
static int collect_packets(const sim_scenario *scn, int64_t duration_ns, packet_set *ps, char *err,
                           size_t errlen)
{
    FILE *f = tmpfile();
    if (!f) {
        snprintf(err, errlen, "no temporary file: %s", strerror(errno));
        return -1;
    }
    run_report r;
    run_here(scn, duration_ns, 0, f, &r);
    if (!r.ok) {
        snprintf(err, errlen, "%s", r.error);
        fclose(f);
        return -1;
    }
    rewind(f);
    cap_trace_reader *tr = NULL;
    cap_diag d;
    memset(&d, 0, sizeof d);
    int rc = cap_trace_reader_open(f, CAP_TRACE_BINARY, NULL, &tr, &d);
    cap_trace_record rec;
    while (rc == CAP_OK && (rc = cap_trace_read(tr, &rec, &d)) == 1) {
        rc = CAP_OK;
        if (rec.kind != CAP_TRACE_PUBLISH)
            continue;
        if (ps->n == ps->cap) {
            size_t nc = ps->cap ? ps->cap * 2 : 4096;
            uint8_t **b = realloc(ps->bytes, nc * sizeof *b);
            if (b)
                ps->bytes = b;
            size_t *l = b ? realloc(ps->len, nc * sizeof *l) : NULL;
            if (!l) {
                rc = CAP_ENOMEM;
                break;
            }
            ps->len = l;
            ps->cap = nc;
        }
        uint8_t *copy = malloc(rec.len ? rec.len : 1);
        if (!copy) {
            rc = CAP_ENOMEM;
            break;
        }
        memcpy(copy, rec.bytes, rec.len);
        ps->bytes[ps->n] = copy;
        ps->len[ps->n++] = rec.len;
    }
    cap_trace_reader_close(tr);
    fclose(f);
    if (rc != CAP_OK) {
        snprintf(err, errlen, "reading the trace back: %d (%s)", rc, d.reason);
        return -1;
    }
    return 0;
}

/* The least time per packet of a strict decode (into an arena, as the bus
 * decodes), a canonical encode (into a kept buffer, as the bus encodes)
 * and a SHA-256 of the bytes, best of three rounds over every packet. The
 * packets go in batches: a batch is decoded (timed), its packets encoded
 * (timed), then the arena is reset. Negative when a packet did not decode. */
#define WIRE_BATCH 1024
static double wire_ns_per_packet(const packet_set *ps, double *decode_ns, double *encode_ns,
                                 double *hash_ns)
{
    cap_bounds b = cap_bounds_default();
    cap_arena a;
    cap_arena_init(&a, (size_t)1 << 20);
    cap_packet *batch[WIRE_BATCH];
    uint8_t *buf = NULL, digest[CAP_SHA256_LEN];
    size_t cap = 0, len = 0;
    double best[3] = {-1, -1, -1};
    int bad = 0;
    for (int round = 0; round < 3 && !bad; round++) {
        double part[3] = {0, 0, 0};
        for (size_t at = 0; at < ps->n && !bad; at += WIRE_BATCH) {
            size_t m = ps->n - at < WIRE_BATCH ? ps->n - at : WIRE_BATCH;
            double t0 = now_seconds();
            for (size_t i = 0; i < m && !bad; i++)
                bad = cap_packet_decode_in(ps->bytes[at + i], ps->len[at + i], &b,
                                           CAP_DECODE_STRICT, &a.allocator, &batch[i],
                                           NULL) != CAP_OK;
            double t1 = now_seconds();
            for (size_t i = 0; i < m && !bad; i++)
                bad = cap_encode_to(&batch[i]->base, &buf, &cap, &len) != CAP_OK;
            double t2 = now_seconds();
            cap_arena_reset(&a);
            part[0] += t1 - t0;
            part[1] += t2 - t1;
        }
        double t3 = now_seconds();
        for (size_t i = 0; i < ps->n; i++)
            cap_sha256(ps->bytes[i], ps->len[i], digest);
        part[2] = now_seconds() - t3;
        for (int k = 0; k < 3; k++)
            if (best[k] < 0 || part[k] < best[k])
                best[k] = part[k];
    }
    free(buf);
    cap_arena_free(&a);
    if (bad || !ps->n)
        return -1;
    *decode_ns = best[0] / (double)ps->n * 1e9;
    *encode_ns = best[1] / (double)ps->n * 1e9;
    *hash_ns = best[2] / (double)ps->n * 1e9;
    return *decode_ns + *encode_ns + *hash_ns;
}

/* Prints the wire's share (see the top of this file). 0, or -1. */
static int print_wire_ceiling(const sim_scenario *scn, const run_report *on)
{
    packet_set ps = {0};
    char err[800];
    int64_t slice = 60 * SEC;
    if (collect_packets(scn, slice, &ps, err, sizeof err)) {
        fprintf(stderr, "bench_sim: wire share: %s\n", err);
        packets_free(&ps);
        return -1;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < ps.n; i++)
        bytes += ps.len[i];
    double dec, enc, hash;
    double per = wire_ns_per_packet(&ps, &dec, &enc, &hash);
    if (per <= 0) {
        fprintf(stderr, "bench_sim: wire share: a published packet did not decode strictly\n");
        packets_free(&ps);
        return -1;
    }
    double per_event = on->events ? (double)on->published / (double)on->events : 0;
    printf("wire      %zu packets of a 60 s slice, mean %.0f bytes: strict decode %.0f ns + "
           "canonical encode %.0f ns + sha256 %.0f ns = %.0f ns a packet\n",
           ps.n, ps.n ? (double)bytes / (double)ps.n : 0.0, dec, enc, hash, per);
    if (per_event > 0)
        printf("wire      %.2f packets published per event (checks-on run): the wire alone caps "
               "the run at %.2f M events/s, actors costing nothing\n",
               per_event, 1e3 / (per * per_event));
    packets_free(&ps);
    return 0;
}

static void print_run(const char *label, const run_report *r)
{
    double sim_s = (double)r->sim_ns / SEC;
    printf("%-10s events %llu, wall %.2f s, %.3f M events/s, %.0f simulated s per wall s, "
           "jobs finished %llu of %llu submitted, peak RSS %.1f MiB, trace %.16s\n",
           label, (unsigned long long)r->events, r->wall,
           r->wall > 0 ? (double)r->events / r->wall / 1e6 : 0.0, r->wall > 0 ? sim_s / r->wall : 0.0,
           (unsigned long long)r->jobs_done, (unsigned long long)r->submitted,
           (double)r->maxrss_kb / 1024.0, r->hash);
}

/* A whole number in [lo, hi] from the environment, def when unset. */
static long env_count(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi) {
        fprintf(stderr, "bench_sim: %s must be a whole number in [%ld, %ld]\n", name, lo, hi);
        exit(1);
    }
    return n;
}

/* Runs one mode in a child and prints the round; keeps the fastest in
 * *best. 0, or -1 when the run failed (reported on stderr). */
static int run_round(const sim_scenario *scn, int64_t dur, int checks_off, long round, long rounds,
                     run_report *best)
{
    const char *mode = checks_off ? "checks off" : "checks on";
    run_report r;
    if (run_child(scn, dur, checks_off, &r) || !r.ok) {
        fprintf(stderr, "bench_sim: %s: %s\n", mode, r.error);
        return -1;
    }
    char label[40];
    snprintf(label, sizeof label, "%s %ld/%ld", checks_off ? "off" : "on", round, rounds);
    print_run(label, &r);
    if (r.violated)
        printf("  note: %s\n", r.error);
    if (round == 1 || r.wall < best->wall)
        *best = r;
    return 0;
}

static int64_t env_seconds(const char *name, int64_t def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    errno = 0;
    long long s = strtoll(v, &end, 10);
    if (errno || *end || s <= 0 || s > 30LL * 86400) {
        fprintf(stderr, "bench_sim: %s must be a whole number of seconds in [1, 2592000]\n", name);
        exit(1);
    }
    return (int64_t)s * SEC;
}

/* The scenario at path, or NULL (the error printed). */
static sim_scenario *load_scenario(const char *path)
{
    sim_scenario *scn = NULL;
    cap_yaml_diag yd;
    if (sim_scenario_load(path, &scn, &yd) != CAP_OK) {
        char msg[1024];
        cap_yaml_diag_format(&yd, path, msg, sizeof msg);
        fprintf(stderr, "bench_sim: %s\n", msg);
        return NULL;
    }
    return scn;
}

/* The backlog run (see the head of this file); 0, or 1 when it failed. */
static int run_backlog(const run_report *on)
{
    const char *path = getenv("BENCH_SIM_BACKLOG");
    if (!path || !*path)
        path = "bench/sim-backlog.yaml";
    sim_scenario *scn = load_scenario(path);
    if (!scn)
        return 1;
    run_report r;
    int ok = run_child(scn, scn->duration_ns, 0, &r) == 0 && r.ok && !r.violated;
    sim_scenario_free(scn);
    if (!ok) {
        fprintf(stderr, "bench_sim: backlog %s: %s\n", path, r.error);
        return 1;
    }
    print_run("backlog", &r);
    double eps = r.wall > 0 ? (double)r.events / r.wall : 0;
    double eps_on = on->wall > 0 ? (double)on->events / on->wall : 0;
    printf("backlog   %s: %.3f M events/s, %.2f of the large workload's checks-on %.3f M\n", path,
           eps / 1e6, eps_on > 0 ? eps / eps_on : 0.0, eps_on / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "bench/sim-large.yaml";
    sim_scenario *scn = load_scenario(path);
    if (!scn)
        return 1;
    int64_t dur = env_seconds("BENCH_SIM_SECONDS", scn->duration_ns);
    int64_t t_mem = dur / 4 < 900 * SEC ? dur / 4 : 900 * SEC;
    t_mem = env_seconds("BENCH_SIM_MEM_SECONDS", t_mem < SEC ? SEC : t_mem);
    long rounds = env_count("BENCH_SIM_ROUNDS", 3, 1, 20);
    uint32_t workers = 0;
    for (size_t i = 0; i < scn->n_workers; i++)
        workers += scn->workers[i].count ? scn->workers[i].count : 1;
    printf("scenario %s: %u workers, workload rate %g jobs/s, %.0f simulated s of load (scenario: "
           "%.0f s)%s, drain up to %.0f s\n",
           path, workers, scn->workload.rate, (double)dur / SEC, (double)scn->duration_ns / SEC,
           dur != scn->duration_ns ? " [BENCH_SIM_SECONDS]" : "", (double)scn->drain_ns / SEC);
    printf("event = one item popped from the event queue; every packet is encoded and strictly "
           "decoded in both modes\n");
    printf("checks off = no invariant checked (the journal is still read, to follow the jobs)\n");

    printf("rounds: %ld of each mode, alternating; a mode's figure is its fastest round "
           "(BENCH_SIM_ROUNDS)\n", rounds);
    int failed = 0;
    run_report on = {0}, off = {0};
    for (long r = 1; r <= rounds && !failed; r++)
        failed = run_round(scn, dur, 0, r, rounds, &on) || run_round(scn, dur, 1, r, rounds, &off);
    if (!failed) {
        print_run("checks on", &on);
        print_run("checks off", &off);
    }

    run_report m1, m4;
    int mem_ok = run_child(scn, t_mem, 0, &m1) == 0 && m1.ok;
    mem_ok = mem_ok && run_child(scn, 4 * t_mem, 0, &m4) == 0 && m4.ok;
    if (!mem_ok) {
        fprintf(stderr, "bench_sim: memory runs failed: %s%s\n", m1.error, m4.error);
        failed = 1;
    } else {
        print_run("mem T", &m1);
        print_run("mem 4T", &m4);
    }

    if (!failed) {
        double eps_on = on.wall > 0 ? (double)on.events / on.wall : 0;
        double eps_off = off.wall > 0 ? (double)off.events / off.wall : 0;
        double ratio = m1.maxrss_kb > 0 ? (double)m4.maxrss_kb / (double)m1.maxrss_kb : 0;
        printf("target checks on  >= 1.0 M events/s: %.3f M  %s\n", eps_on / 1e6,
               eps_on >= 1e6 ? "MET" : "NOT MET");
        printf("target checks off >= 3.0 M events/s: %.3f M  %s\n", eps_off / 1e6,
               eps_off >= 3e6 ? "MET" : "NOT MET");
        printf("target peak RSS independent of run length: T=%.0f s %.1f MiB, 4T=%.0f s %.1f MiB, "
               "ratio %.2f (<= 1.25)  %s\n",
               (double)t_mem / SEC, (double)m1.maxrss_kb / 1024.0, (double)(4 * t_mem) / SEC,
               (double)m4.maxrss_kb / 1024.0, ratio, ratio > 0 && ratio <= 1.25 ? "MET" : "NOT MET");
    }
    if (!failed && print_wire_ceiling(scn, &on))
        failed = 1;
    if (!failed && run_backlog(&on))
        failed = 1;
    sim_scenario_free(scn);
    return failed;
}
