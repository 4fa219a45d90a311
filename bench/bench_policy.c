/* make bench: safety-kernel checks per second for a 200-rule policy against
 * a mix of requests (reads, prod writes, deletes, batch jobs, tenant- and
 * actor-specific jobs, and jobs no rule matches, which walk every rule).
 * Beside it, in the same run, the baseline: protobuf-c unpacking the same
 * requests' wire bytes, so the ratio says how a check compares with
 * reading the request at all. Target: >= 1 M checks/s on one core.
 * Figures are medians of several rounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cap_json.h"
#include "cap_schema.h"
#include "ref_safety.h"

#define ROUNDS 7
#define N_RULES 200

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 196 generated rules of five shapes, then the four rules of the example
 * policy in docs/policy.md. */
static char *make_policy(void)
{
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    if (!s)
        abort();
    len += (size_t)snprintf(s + len, cap - len, "version: bench\nrules:\n");
    for (int i = 0; i < N_RULES - 4; i++) {
        if (cap - len < 512) {
            cap *= 2;
            if (!(s = realloc(s, cap)))
                abort();
        }
        switch (i % 5) {
        case 0:
            len += (size_t)snprintf(s + len, cap - len,
                                    "- {id: svc-%d, decision: allow, match: {topics: [job.svc%d.*], "
                                    "labels: {team: t%d}}}\n", i, i, i);
            break;
        case 1:
            len += (size_t)snprintf(s + len, cap - len,
                                    "- {id: tenant-%d, decision: deny, match: {tenants: [tenant%d], "
                                    "risk_tags: [r%d]}}\n", i, i, i);
            break;
        case 2:
            len += (size_t)snprintf(s + len, cap - len,
                                    "- {id: action-%d, decision: require_approval, match: {labels: "
                                    "{mcp.action: act%d}}}\n", i, i);
            break;
        case 3:
            len += (size_t)snprintf(s + len, cap - len,
                                    "- {id: cap-%d, decision: throttle, match: {capabilities: [cap%d], "
                                    "topics: ['job.cap%d.*']}}\n", i, i, i);
            break;
        default:
            len += (size_t)snprintf(s + len, cap - len,
                                    "- {id: actor-%d, decision: allow, match: {actor_ids: [user%d], "
                                    "requires: [gpu]}, constraints: {max_retries: 2}}\n", i, i);
        }
    }
    len += (size_t)snprintf(s + len, cap - len,
                            "- {id: allow-read-path, decision: allow, match: {labels: {mcp.action: read}}}\n"
                            "- {id: approval-prod-write, decision: require_approval,\n"
                            "   match: {labels: {mcp.action: write}, risk_tags: [prod]}}\n"
                            "- {id: deny-destructive, decision: deny, match: {labels: {mcp.action: delete}}}\n"
                            "- {id: constrain-heavy-jobs, decision: allow_with_constraints,\n"
                            "   match: {topics: ['job.batch.*']}, constraints: {max_runtime_sec: 120}}\n");
    return s;
}

static const char *const MIX[] = {
    "{\"jobId\":\"a\",\"topic\":\"job.tools.fs\",\"tenant\":\"acme\",\"labels\":{\"mcp.action\":\"read\",\"team\":\"x\"}}",
    "{\"jobId\":\"b\",\"topic\":\"job.tools.fs\",\"tenant\":\"acme\",\"labels\":{\"mcp.action\":\"write\"},"
    "\"meta\":{\"riskTags\":[\"prod\"],\"actorId\":\"user7\",\"actorType\":\"ACTOR_TYPE_HUMAN\"}}",
    "{\"jobId\":\"c\",\"topic\":\"job.tools.rm\",\"tenant\":\"globex\",\"labels\":{\"mcp.action\":\"delete\"}}",
    "{\"jobId\":\"d\",\"topic\":\"job.batch.nightly\",\"tenant\":\"acme\",\"meta\":{\"capability\":\"etl\"}}",
    "{\"jobId\":\"e\",\"topic\":\"job.svc50.run\",\"labels\":{\"team\":\"t50\"}}",
    "{\"jobId\":\"f\",\"topic\":\"job.x\",\"tenant\":\"tenant101\",\"meta\":{\"riskTags\":[\"r101\",\"pii\"]}}",
    "{\"jobId\":\"g\",\"topic\":\"job.cap183.go\",\"meta\":{\"capability\":\"cap183\"}}",
    "{\"jobId\":\"h\",\"topic\":\"job.y\",\"meta\":{\"actorId\":\"user9\",\"requires\":[\"gpu\",\"net\"]}}",
    "{\"jobId\":\"i\",\"topic\":\"job.unknown.thing\",\"tenant\":\"initech\",\"labels\":{\"mcp.action\":\"list\","
    "\"env\":\"prod\"},\"meta\":{\"riskTags\":[\"prod\"],\"capability\":\"shell\"}}",
    "{\"jobId\":\"j\",\"topic\":\"sys.not.a.job\"}",
};
#define N_MIX (sizeof MIX / sizeof MIX[0])

static volatile long sink;

int main(void)
{
    char *yaml = make_policy();
    ref_safety *k = ref_safety_new();
    cap_yaml_diag d;
    if (!k || ref_safety_load(k, yaml, strlen(yaml), &d) != 0) {
        fprintf(stderr, "bench policy did not load: %d:%d %s: %s\n", d.line, d.column, d.path,
                d.reason);
        return 1;
    }
    free(yaml);
    Cordum__Agent__V1__PolicyCheckRequest *reqs[N_MIX];
    uint8_t *wire[N_MIX];
    size_t wire_len[N_MIX];
    for (size_t i = 0; i < N_MIX; i++) {
        ProtobufCMessage *m;
        cap_diag cd;
        if (cap_json_to_message(&cordum__agent__v1__policy_check_request__descriptor, MIX[i],
                                strlen(MIX[i]), 0, &m, &cd) != 0) {
            fprintf(stderr, "bad request %zu: %s\n", i, cd.reason);
            return 1;
        }
        reqs[i] = (Cordum__Agent__V1__PolicyCheckRequest *)m;
        wire_len[i] = protobuf_c_message_get_packed_size(m);
        wire[i] = malloc(wire_len[i]);
        protobuf_c_message_pack(m, wire[i]);
    }

    const long per_round = 200000;
    double check_s[ROUNDS], unpack_s[ROUNDS];
    int64_t now = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_seconds();
        for (long i = 0; i < per_round; i++) {
            ref_safety_decision dec;
            ref_safety_check(k, reqs[i % N_MIX], now += 1000, &dec);
            sink += dec.decision;
        }
        double t1 = now_seconds();
        for (long i = 0; i < per_round; i++) {
            size_t j = (size_t)i % N_MIX;
            ProtobufCMessage *m = protobuf_c_message_unpack(
                &cordum__agent__v1__policy_check_request__descriptor, NULL, wire_len[j], wire[j]);
            sink += m->n_unknown_fields;
            protobuf_c_message_free_unpacked(m, NULL);
        }
        double t2 = now_seconds();
        check_s[r] = t1 - t0;
        unpack_s[r] = t2 - t1;
    }
    qsort(check_s, ROUNDS, sizeof check_s[0], cmp_double);
    qsort(unpack_s, ROUNDS, sizeof unpack_s[0], cmp_double);
    double c = check_s[ROUNDS / 2] / per_round, u = unpack_s[ROUNDS / 2] / per_round;
    printf("policy check (%d rules, %zu-request mix): %10.0f checks/s  %6.0f ns/check\n", N_RULES,
           N_MIX, 1.0 / c, c * 1e9);
    printf("protobuf-c unpack+free of the same requests: %10.0f req/s    %6.0f ns/req\n", 1.0 / u,
           u * 1e9);
    printf("ratio check / unpack: %.2fx   target: >= 1000000 checks/s (%s)\n", c / u,
           1.0 / c >= 1e6 ? "met" : "NOT met");
    for (size_t i = 0; i < N_MIX; i++) {
        free(wire[i]);
        cap_message_free(&reqs[i]->base);
    }
    ref_safety_free(k);
    return 0;
}
