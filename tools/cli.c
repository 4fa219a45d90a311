#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cap_error.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "capsim %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_diag(const char *cmd, const char *path, const cap_diag *d)
{
    char line[640];
    fprintf(stderr, "capsim %s: %s: %s\n", cmd, path, cap_diag_format(d, line, sizeof line));
}

int cli_read_input(const char *cmd, const char *path, size_t max, uint8_t **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        cli_error(cmd, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap > max)
                break;
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            uint8_t *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0 || n > max)
            break;
    }
    int bad = buf ? ferror(f) : 0;
    if (f != stdin)
        fclose(f);
    if (!buf) {
        cli_error(cmd, "%s: out of memory", path);
        return -1;
    }
    if (bad) {
        free(buf);
        cli_error(cmd, "%s: read error", path);
        return -1;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int cli_output_open(const char *cmd, const char *path, cli_output *out)
{
    memset(out, 0, sizeof *out);
    if (!path || strcmp(path, "-") == 0) {
        out->f = stdout;
        return 0;
    }
    size_t n = strlen(path) + 16;
    out->tmp = malloc(n);
    if (!out->tmp) {
        cli_error(cmd, "out of memory");
        return -1;
    }
    snprintf(out->tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(out->tmp);
    if (fd >= 0)
        fchmod(fd, 0644); /* mkstemp creates 0600; outputs are ordinary files */
    out->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!out->f) {
        cli_error(cmd, "%s: cannot write: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(out->tmp);
        }
        free(out->tmp);
        out->tmp = NULL;
        return -1;
    }
    out->path = path;
    return 0;
}

int cli_output_close(const char *cmd, cli_output *out, int keep)
{
    if (!out->path) {
        if (keep && fflush(stdout) != 0) {
            cli_error(cmd, "cannot write standard output");
            return -1;
        }
        return 0;
    }
    int ok = fclose(out->f) == 0 && keep;
    if (ok && rename(out->tmp, out->path) != 0)
        ok = 0;
    if (!ok) {
        if (keep)
            cli_error(cmd, "%s: cannot write: %s", out->path, strerror(errno));
        unlink(out->tmp);
    }
    free(out->tmp);
    memset(out, 0, sizeof *out);
    return ok || !keep ? 0 : -1;
}

int cli_write_output(const char *cmd, const char *path, const void *data, size_t len)
{
    cli_output out;
    if (cli_output_open(cmd, path, &out) != 0)
        return -1;
    if (fwrite(data, 1, len, out.f) != len) {
        cli_error(cmd, "%s: cannot write: %s", out.path ? out.path : "standard output",
                  strerror(errno));
        cli_output_close(cmd, &out, 0);
        return -1;
    }
    return cli_output_close(cmd, &out, 1);
}

static int is_stdout(const char *dest)
{
    return dest && strcmp(dest, "-") == 0;
}

int cli_docs_check(const char *cmd, const char *json, const char *junit)
{
    if (is_stdout(json) && is_stdout(junit)) {
        cli_error(cmd, "--json - and --junit -: only one document can go to standard output");
        return -1;
    }
    return 0;
}

int cli_docs_open(const char *cmd, const char *json, const char *junit, int *doc_fd)
{
    *doc_fd = -1;
    if (cli_docs_check(cmd, json, junit) != 0)
        return -1;
    if (!is_stdout(json) && !is_stdout(junit))
        return 0;
    fflush(stdout);
    if ((*doc_fd = dup(STDOUT_FILENO)) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        cli_error(cmd, "%s -: %s", is_stdout(json) ? "--json" : "--junit", strerror(errno));
        if (*doc_fd >= 0)
            close(*doc_fd);
        *doc_fd = -1;
        return -1;
    }
    return 0;
}

/* cli_docs_write without the freeing. */
static int docs_write(const char *cmd, const char *opt, const char *dest, int doc_fd,
                      const char *doc, size_t len, int made, int rc)
{
    if (made != CAP_OK) {
        cli_error(cmd, "%s: %s", opt, cap_strerror(made));
        return CLI_USAGE;
    }
    if (is_stdout(dest) && doc_fd >= 0) { /* the real standard output, for the document */
        fflush(stdout);
        if (dup2(doc_fd, STDOUT_FILENO) < 0) {
            cli_error(cmd, "%s -: %s", opt, strerror(errno));
            return CLI_USAGE;
        }
    }
    if (cli_write_output(cmd, dest, doc, len) != 0)
        return CLI_USAGE;
    return rc;
}

int cli_docs_write(const char *cmd, const char *opt, const char *dest, int doc_fd, char *doc,
                   size_t len, int made, int rc)
{
    rc = docs_write(cmd, opt, dest, doc_fd, doc, len, made, rc);
    free(doc);
    return rc;
}

void cli_docs_close(int doc_fd)
{
    if (doc_fd < 0)
        return;
    fflush(stdout);
    dup2(doc_fd, STDOUT_FILENO);
    close(doc_fd);
}

int cli_trace_format(const char *cmd, int argc, char **argv, int *i, int allow_auto,
                     cap_trace_format *out)
{
    const char *opt = argv[*i];
    const char *v = cli_value(cmd, argc, argv, i);
    if (!v)
        return -1;
    if (strcmp(v, "binary") == 0)
        *out = CAP_TRACE_BINARY;
    else if (strcmp(v, "jsonl") == 0)
        *out = CAP_TRACE_JSONL;
    else if (allow_auto && strcmp(v, "auto") == 0)
        *out = CAP_TRACE_AUTO;
    else {
        cli_error(cmd, "%s: \"%s\" is not %s", opt, v,
                  allow_auto ? "auto, binary or jsonl" : "binary or jsonl");
        return -1;
    }
    return 0;
}

int cli_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024, end++;
    if (errno || *end || end == s || v > (unsigned long long)SIZE_MAX / mul)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cli_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

const char cli_bounds_help[] =
    "  --max-packet N        largest packet in bytes (default 1M)\n"
    "  --max-trust-packet N  largest worker-trust packet (default 64K)\n"
    "  --max-string N        largest string or bytes field (default 64K)\n"
    "  --max-entries N       most entries in one map or repeated field (default 1000)\n"
    "  --max-depth N         deepest message nesting (default 16)\n";

int cli_bounds_option(const char *cmd, int argc, char **argv, int *i, cap_bounds *b)
{
    static const struct {
        const char *name;
        size_t offset;
    } opts[] = {
        {"--max-packet", offsetof(cap_bounds, max_packet)},
        {"--max-trust-packet", offsetof(cap_bounds, max_trust_packet)},
        {"--max-string", offsetof(cap_bounds, max_string)},
        {"--max-entries", offsetof(cap_bounds, max_entries)},
    };
    const char *arg = argv[*i];
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        if (strcmp(arg, opts[k].name) != 0)
            continue;
        const char *v = cli_value(cmd, argc, argv, i);
        size_t n;
        if (!v || cli_parse_size(v, &n) != 0) {
            if (v)
                cli_error(cmd, "%s: not a size: %s", arg, v);
            return -1;
        }
        *(size_t *)((char *)b + opts[k].offset) = n;
        return 1;
    }
    if (strcmp(arg, "--max-depth") == 0) {
        const char *v = cli_value(cmd, argc, argv, i);
        size_t n;
        if (!v || cli_parse_size(v, &n) != 0 || n < 1 || n > 64) {
            if (v)
                cli_error(cmd, "--max-depth: a number from 1 to 64, not %s", v);
            return -1;
        }
        b->max_depth = (unsigned)n;
        return 1;
    }
    return 0;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}
