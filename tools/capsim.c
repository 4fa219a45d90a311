/* capsim: one binary, one subcommand per job. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} COMMANDS[] = {
    {"decode", cmd_decode, "binary BusPacket -> JSON, through the strict decoder"},
    {"encode", cmd_encode, "JSON BusPacket -> canonical binary"},
    {"sign", cmd_sign, "sign a binary BusPacket (RFC 6979, ECDSA P-256)"},
    {"verify", cmd_verify, "verify a packet's signature"},
    {"fixtures", cmd_fixtures, "check or rewrite the golden fixtures"},
    {"policy", cmd_policy, "safety policies: lint, explain a decision, snapshot id"},
    {"tck", cmd_tck, "run an upstream TCK suite against an adapter-v1 process"},
    {"adapter", cmd_adapter, "the reference adapter (adapter-v1 on stdin/stdout)"},
    {"sim", cmd_sim, "run a scenario in the deterministic simulator (one seed or many)"},
    {"swarm", cmd_swarm, "random scenarios, one per seed, run with every invariant checked"},
    {"worker", cmd_worker, "the reference worker on a real NATS bus"},
    {"scheduler", cmd_scheduler, "the reference scheduler on a real NATS bus"},
    {"record", cmd_record, "capture the packets on a NATS bus into a trace file"},
    {"certify", cmd_certify, "certify a worker or scheduler against the golden cases over NATS"},
    {"golden", cmd_golden, "check or re-record the golden-trace conformance cases"},
    {"check-trace", cmd_check_trace, "check a recorded trace against the protocol's rules"},
    {"convert-trace", cmd_convert_trace, "a trace file from binary to JSONL or back, same hash"},
    {"report", cmd_report, "run the TCK suites and golden cases against the reference; write reports/"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: capsim COMMAND [options] (capsim COMMAND --help for each)\n\n"
                 "capsim is the conformance harness and deterministic simulator for CAP,\n"
                 "the Cordum Agent Protocol (wire version 1).\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-13s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\nexit codes: 0 ok, 1 input rejected, 2 usage or unreadable file\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, COMMANDS[i].name) == 0)
            return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "capsim: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return CLI_USAGE;
}
