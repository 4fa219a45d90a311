/* make bench: strict decode+validate and canonical encode of one packet,
 * each beside plain protobuf-c unpack / pack of the same bytes in the same
 * run, with the ratio. Targets: strict decoding at most 1.5x the plain
 * unpack. Figures are medians of several rounds, so a noisy neighbour on a
 * shared machine moves both sides of a ratio alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cap_decode.h"
#include "cap_encode.h"

#define ROUNDS 7

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

static void run_plain_pack(bench_ctx *c)
{
    sink += protobuf_c_message_pack(&c->packet->base, c->out);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median packets per second of ROUNDS rounds of about 0.2 s each. */
static double measure(void (*fn)(bench_ctx *), bench_ctx *c)
{
    size_t iters = 1000;
    for (;;) { /* calibrate */
        double t0 = now_seconds();
        for (size_t i = 0; i < iters; i++)
            fn(c);
        double dt = now_seconds() - t0;
        if (dt > 0.05) {
            iters = (size_t)((double)iters * 0.2 / dt) + 1;
            break;
        }
        iters *= 4;
    }
    double rates[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_seconds();
        for (size_t i = 0; i < iters; i++)
            fn(c);
        rates[r] = (double)iters / (now_seconds() - t0);
    }
    qsort(rates, ROUNDS, sizeof rates[0], cmp_double);
    return rates[ROUNDS / 2];
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
    if (!len || cap_packet_decode(buf, len, NULL, CAP_DECODE_STRICT, &c.packet, &d) != CAP_OK) {
        fprintf(stderr, "bench_wire: %s is not a valid packet\n", argv[1]);
        return 2;
    }
    c.out = malloc(2 * len + 64);
    if (!c.out)
        return 2;
    printf("wire benchmark: %s (%zu bytes), median of %d rounds\n", argv[1], len, ROUNDS);
    double strict = measure(run_strict_decode, &c);
    double plain = measure(run_plain_unpack, &c);
    report("strict decode + validate", strict, len);
    report("protobuf-c unpack (baseline)", plain, len);
    printf("  decode cost ratio (strict / plain) %.2fx  (target <= 1.50x) %s\n", plain / strict,
           plain / strict <= 1.5 ? "OK" : "OVER TARGET");
    double enc = measure(run_canonical_encode, &c);
    double pack = measure(run_plain_pack, &c);
    report("canonical encode", enc, len);
    report("protobuf-c pack (baseline)", pack, len);
    printf("  encode cost ratio (canonical / plain) %.2fx\n", pack / enc);
    cap_packet_free(c.packet);
    free(c.out);
    return 0;
}
