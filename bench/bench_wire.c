/* make bench: strict decode+validate (onto the heap, and into a reused
 * arena as the simulated bus does) and canonical encode (into a caller's
 * buffer, and into a buffer kept between packets as the bus does) of one packet,
 * each beside plain protobuf-c unpack / pack of the same bytes in the same
 * run, with the ratio. Targets: strict decoding at most 1.5x the plain
 * unpack. Both arms of a ratio free what they decode. The two arms run in
 * alternating short rounds and every figure is a median over the rounds, so
 * a noisy neighbour on a shared machine moves both sides of a ratio alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cap_arena.h"
#include "cap_decode.h"
#include "cap_encode.h"

#define ROUNDS 15
#define ROUND_SECONDS 0.1

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    const uint8_t *bytes;
    size_t len;
    cap_packet *packet;
    uint8_t *out;
    cap_arena arena;
    uint8_t *kept; /* cap_encode_to's buffer, kept between packets as the bus keeps it */
    size_t kept_cap;
} bench_ctx;

static volatile size_t sink; /* keeps the work from being optimised away */

static void run_strict_decode(bench_ctx *c)
{
    cap_packet *p;
    if (cap_packet_decode(c->bytes, c->len, NULL, CAP_DECODE_STRICT, &p, NULL) != CAP_OK)
        abort();
    sink += p->payload_case;
    cap_packet_free(p);
}

static void run_arena_decode(bench_ctx *c)
{
    cap_packet *p;
    if (cap_packet_decode_in(c->bytes, c->len, NULL, CAP_DECODE_STRICT, &c->arena.allocator, &p,
                             NULL) != CAP_OK)
        abort();
    sink += p->payload_case;
    cap_arena_reset(&c->arena);
}

static void run_plain_unpack(bench_ctx *c)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(CAP_PACKET_DESC, NULL, c->len, c->bytes);
    if (!m)
        abort();
    sink += m->n_unknown_fields + 1;
    protobuf_c_message_free_unpacked(m, NULL);
}

static void run_canonical_encode(bench_ctx *c)
{
    sink += cap_encode_into(&c->packet->base, c->out);
}

static void run_kept_encode(bench_ctx *c)
{
    size_t n;
    if (cap_encode_to(&c->packet->base, &c->kept, &c->kept_cap, &n) != CAP_OK)
        abort();
    sink += n;
}

static void run_plain_pack(bench_ctx *c)
{
    sink += protobuf_c_message_pack(&c->packet->base, c->out);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof v[0], cmp_double);
    return v[n / 2];
}

/* Iterations of fn that take about ROUND_SECONDS (this also warms up). */
static size_t calibrate(void (*fn)(bench_ctx *), bench_ctx *c)
{
    size_t iters = 1000;
    for (;;) {
        double t0 = now_seconds();
        for (size_t i = 0; i < iters; i++)
            fn(c);
        double dt = now_seconds() - t0;
        if (dt > 0.05)
            return (size_t)((double)iters * ROUND_SECONDS / dt) + 1;
        iters *= 4;
    }
}

/* Packets per second of one round of iters calls. */
static double round_rate(void (*fn)(bench_ctx *), bench_ctx *c, size_t iters)
{
    double t0 = now_seconds();
    for (size_t i = 0; i < iters; i++)
        fn(c);
    return (double)iters / (now_seconds() - t0);
}

typedef struct {
    double rate_a, rate_b; /* median packets per second */
    double cost_ratio;     /* median over rounds of a's time per packet / b's */
} pair_result;

/* Measures a beside b in ROUNDS alternating rounds (which one goes first
 * alternates too), so that both see the same machine. */
static pair_result measure_pair(void (*a)(bench_ctx *), void (*b)(bench_ctx *), bench_ctx *c)
{
    size_t iters_a = calibrate(a, c), iters_b = calibrate(b, c);
    double ra[ROUNDS], rb[ROUNDS], ratio[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        if (r % 2) {
            rb[r] = round_rate(b, c, iters_b);
            ra[r] = round_rate(a, c, iters_a);
        } else {
            ra[r] = round_rate(a, c, iters_a);
            rb[r] = round_rate(b, c, iters_b);
        }
        ratio[r] = rb[r] / ra[r];
    }
    pair_result res = {median(ra, ROUNDS), median(rb, ROUNDS), median(ratio, ROUNDS)};
    return res;
}

static void report(const char *name, double rate, size_t len)
{
    printf("  %-34s %12.0f packets/s %9.1f MB/s\n", name, rate, rate * (double)len / 1e6);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_wire PACKET.bin\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    static uint8_t buf[1 << 20];
    size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    cap_diag d;
    bench_ctx c = {.bytes = buf, .len = len};
    cap_arena_init(&c.arena, 1 << 16);
    if (!len || cap_packet_decode(buf, len, NULL, CAP_DECODE_STRICT, &c.packet, &d) != CAP_OK) {
        fprintf(stderr, "bench_wire: %s is not a valid packet\n", argv[1]);
        return 2;
    }
    c.out = malloc(2 * len + 64);
    if (!c.out)
        return 2;
    printf("wire benchmark: %s (%zu bytes), median of %d alternating rounds\n", argv[1], len, ROUNDS);
    pair_result dec = measure_pair(run_strict_decode, run_plain_unpack, &c);
    report("strict decode + validate", dec.rate_a, len);
    report("protobuf-c unpack (baseline)", dec.rate_b, len);
    printf("  decode cost ratio (strict / plain) %.2fx  (target <= 1.50x) %s\n", dec.cost_ratio,
           dec.cost_ratio <= 1.5 ? "OK" : "OVER TARGET");
    pair_result ar = measure_pair(run_arena_decode, run_plain_unpack, &c);
    report("strict decode into an arena", ar.rate_a, len);
    report("protobuf-c unpack (baseline)", ar.rate_b, len);
    printf("  decode cost ratio (arena / plain) %.2fx\n", ar.cost_ratio);
    pair_result enc = measure_pair(run_canonical_encode, run_plain_pack, &c);
    report("canonical encode", enc.rate_a, len);
    report("protobuf-c pack (baseline)", enc.rate_b, len);
    printf("  encode cost ratio (canonical / plain) %.2fx\n", enc.cost_ratio);
    pair_result kept = measure_pair(run_kept_encode, run_plain_pack, &c);
    report("canonical encode, kept buffer", kept.rate_a, len);
    report("protobuf-c pack (baseline)", kept.rate_b, len);
    printf("  encode cost ratio (kept buffer / plain) %.2fx\n", kept.cost_ratio);
    free(c.kept);
    cap_packet_free(c.packet);
    cap_arena_free(&c.arena);
    free(c.out);
    return 0;
}
