/* capsim convert-trace: a trace file from one encoding to the other
 * (docs/trace.md), record by record, with its hash. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cap_trace.h"
#include "cli.h"
#include "commands.h"

static const char HELP[] =
    "usage: capsim convert-trace FILE|- [--to binary|jsonl] [--out FILE|-] [options]\n"
    "Rewrites a trace (docs/trace.md) in the other encoding: a binary trace as JSONL for\n"
    "review and diff, or JSONL as binary. The records are the same, so the trace hash\n"
    "is too; it is printed with the record count on standard error. Every record is\n"
    "read through the same checks as check-trace's: a bad one stops the conversion\n"
    "with its record number or line, and an --out file is then not written.\n\n"
    "  --to binary|jsonl            the encoding to write (default: the one the input\n"
    "                               is not in)\n"
    "  --from auto|binary|jsonl     the input's encoding (default auto)\n"
    "  --out FILE|-                 where to write (default standard output; a file\n"
    "                               appears only once complete)\n"
    "  --max-packet SIZE            largest packet (default 1M)\n"
    "Exit 0 converted, 2 usage or an unreadable or malformed trace.\n";

/* The options; defaults set by the caller. */
typedef struct {
    const char *in;
    const char *out;
    cap_trace_format from, to;
    cap_trace_limits lim;
} convert_opts;

static int parse_args(const char *cmd, int argc, char **argv, convert_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--to") == 0) {
            if (cli_trace_format(cmd, argc, argv, &i, 0, &o->to) != 0)
                return -1;
        } else if (strcmp(a, "--from") == 0) {
            if (cli_trace_format(cmd, argc, argv, &i, 1, &o->from) != 0)
                return -1;
        } else if (strcmp(a, "--out") == 0) {
            if (!(o->out = cli_value(cmd, argc, argv, &i)))
                return -1;
        } else if (strcmp(a, "--max-packet") == 0) {
            const char *v = cli_value(cmd, argc, argv, &i);
            size_t sz;
            if (!v)
                return -1;
            if (cli_parse_size(v, &sz) != 0 || sz == 0 || sz > CAP_TRACE_MAX_PACKET_LIMIT) {
                cli_error(cmd, "--max-packet: \"%s\" is not a size in [1, 64M]", v);
                return -1;
            }
            o->lim.max_packet = sz;
        } else if (a[0] == '-' && a[1]) {
            cli_error(cmd, "unknown option \"%s\" (see capsim convert-trace --help)", a);
            return -1;
        } else if (o->in) {
            cli_error(cmd, "one trace file at a time");
            return -1;
        } else {
            o->in = a;
        }
    }
    if (!o->in) {
        cli_error(cmd, "no trace file (see capsim convert-trace --help)");
        return -1;
    }
    return 0;
}

/* Copies every record of r to w; CLI_OK, or CLI_USAGE with the error
 * printed. */
static int copy_records(const char *cmd, const char *in, cap_trace_reader *r,
                        cap_trace_writer *w, uint64_t *count)
{
    cap_trace_record rec;
    cap_diag d;
    char line[512];
    int rc;
    while ((rc = cap_trace_read(r, &rec, &d)) == 1) {
        if (cap_trace_write(w, &rec, &d) != CAP_OK) {
            cli_error(cmd, "%s: record %" PRIu64 ": cannot write: %s", in, *count,
                      cap_diag_format(&d, line, sizeof line));
            return CLI_USAGE;
        }
        ++*count;
    }
    if (rc < 0) {
        cli_error(cmd, "%s: %s", in, cap_diag_format(&d, line, sizeof line));
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cmd_convert_trace(int argc, char **argv)
{
    const char *cmd = "convert-trace";
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return CLI_OK;
    }
    convert_opts o = {.from = CAP_TRACE_AUTO, .to = CAP_TRACE_AUTO};
    if (parse_args(cmd, argc, argv, &o) != 0)
        return CLI_USAGE;

    FILE *f = strcmp(o.in, "-") == 0 ? stdin : fopen(o.in, "rb");
    if (!f) {
        cli_error(cmd, "%s: %s", o.in, strerror(errno));
        return CLI_USAGE;
    }
    cap_trace_reader *r = NULL;
    cap_diag d;
    char line[512];
    if (cap_trace_reader_open(f, o.from, &o.lim, &r, &d) != CAP_OK) {
        cli_error(cmd, "%s: %s", o.in, cap_diag_format(&d, line, sizeof line));
        if (f != stdin)
            fclose(f);
        return CLI_USAGE;
    }
    if (o.to == CAP_TRACE_AUTO)
        o.to = cap_trace_reader_format(r) == CAP_TRACE_BINARY ? CAP_TRACE_JSONL : CAP_TRACE_BINARY;
    int to_stdout = !o.out || strcmp(o.out, "-") == 0;
    int rc = CLI_OK;
    if (o.to == CAP_TRACE_BINARY && to_stdout && isatty(STDOUT_FILENO)) {
        cli_error(cmd, "not writing a binary trace to a terminal (use --out FILE)");
        rc = CLI_USAGE;
    }
    cli_output out = {0};
    cap_trace_writer *w = NULL;
    if (rc == CLI_OK && cli_output_open(cmd, o.out, &out) != 0)
        rc = CLI_USAGE;
    if (rc == CLI_OK && cap_trace_writer_open(out.f, o.to, &w) != CAP_OK) {
        cli_error(cmd, "%s: cannot write: %s", to_stdout ? "standard output" : o.out,
                  strerror(errno));
        rc = CLI_USAGE;
    }
    uint64_t count = 0;
    if (rc == CLI_OK)
        rc = copy_records(cmd, o.in, r, w, &count);
    char in_hex[65] = "", out_hex[65] = "";
    cap_trace_reader_hash(r, in_hex);
    cap_trace_reader_close(r);
    if (f != stdin)
        fclose(f);
    if (w && cap_trace_writer_close(w, out_hex) != CAP_OK && rc == CLI_OK) {
        cli_error(cmd, "%s: cannot write: %s", to_stdout ? "standard output" : o.out,
                  strerror(errno));
        rc = CLI_USAGE;
    }
    if (rc == CLI_OK && strcmp(in_hex, out_hex) != 0) {
        /* Both hashes are over the same records' binary form. */
        cli_error(cmd, "internal error: the written trace hashes to %s, the input to %s", out_hex,
                  in_hex);
        rc = CLI_USAGE;
    }
    if (out.f && cli_output_close(cmd, &out, rc == CLI_OK) != 0)
        rc = CLI_USAGE;
    if (rc == CLI_OK)
        fprintf(stderr, "%s: %" PRIu64 " records as %s, sha256 %s\n", o.in, count,
                o.to == CAP_TRACE_BINARY ? "binary" : "JSONL", out_hex);
    return rc;
}
