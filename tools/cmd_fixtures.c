/* capsim fixtures --check | --write: the golden fixtures of
 * conformance/fixtures, re-derived from the spec values and compared byte
 * for byte, then exercised: every packet decodes and its signature verifies
 * with public_key.pem, every JSON form encodes back to its packet, and every
 * malformed packet is rejected with its error code. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_json.h"
#include "cap_sign.h"
#include "cli.h"
#include "commands.h"
#include "conf_fixtures.h"

#define FIXTURE_MAX_FILE (4u << 20)

static const char FIXTURES_HELP[] =
    "usage: capsim fixtures (--check | --write) [--dir DIR]\n"
    "Re-derives every golden fixture from the spec values (cap-tck 10) and the\n"
    "upstream core-malformed cases.\n\n"
    "  --check    compare with the files in DIR byte for byte, verify every signature\n"
    "             with DIR/public_key.pem, round-trip every JSON form, and decode every\n"
    "             malformed packet expecting its error code (the default)\n"
    "  --write    (re)write the files in DIR\n"
    "  --dir DIR  the fixtures folder (default conformance/fixtures)\n";

typedef struct {
    int passed, failed;
} tally;

static void result(tally *t, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void result(tally *t, int ok, const char *fmt, ...)
{
    va_list ap;
    printf("%s ", ok ? "ok  " : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (ok)
        t->passed++;
    else
        t->failed++;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int read_quiet(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fclose(f);
    return cli_read_input("fixtures", path, FIXTURE_MAX_FILE, buf, len);
}

/* Compares one derived fixture with its file. */
static void check_bytes(tally *t, const char *dir, const conf_fixture *f)
{
    char *path = join(dir, f->name);
    uint8_t *disk = NULL;
    size_t len = 0;
    if (!path || read_quiet(path, &disk, &len) != 0) {
        result(t, 0, "%s: missing (run capsim fixtures --write)", f->name);
    } else if (len != f->len || memcmp(disk, f->bytes, len) != 0) {
        size_t i = 0;
        while (i < len && i < f->len && disk[i] == f->bytes[i])
            i++;
        result(t, 0, "%s: drift: %zu bytes on disk, %zu derived; first difference at offset %zu",
               f->name, len, f->len, i);
    } else {
        result(t, 1, "%s: %zu bytes, identical to the spec derivation", f->name, len);
    }
    free(disk);
    free(path);
}

static void check_packet(tally *t, const conf_fixture *f, const cap_key *pub)
{
    cap_packet *p;
    cap_diag d;
    char line[640];
    int rc = cap_packet_decode(f->bytes, f->len, NULL, CAP_DECODE_STRICT, &p, &d);
    if (rc) {
        result(t, 0, "%s: strict decode: %s", f->name, cap_diag_format(&d, line, sizeof line));
        return;
    }
    rc = cap_packet_verify(p, pub, 1, &d);
    result(t, rc == CAP_OK, "%s: signature %s with public_key.pem", f->name,
           rc == CAP_OK ? "verifies" : cap_diag_format(&d, line, sizeof line));
    cap_packet_free(p);
}

static void check_json(tally *t, const conf_fixture *json, const conf_fixture *bin)
{
    ProtobufCMessage *m;
    cap_diag d;
    char line[640];
    if (cap_json_to_message(CAP_PACKET_DESC, (const char *)json->bytes, json->len, 0, &m, &d)) {
        result(t, 0, "%s: %s", json->name, cap_diag_format(&d, line, sizeof line));
        return;
    }
    uint8_t *enc = NULL;
    size_t n = 0;
    int same = cap_encode(m, &enc, &n) == CAP_OK && n == bin->len && memcmp(enc, bin->bytes, n) == 0;
    result(t, same, "%s: JSON form encodes %s %s", json->name, same ? "back to" : "differently from",
           bin->name);
    free(enc);
    cap_message_free(m);
}

static void check_malformed(tally *t, const conf_fixture *f)
{
    cap_packet *p = NULL;
    cap_diag d;
    char line[640];
    int rc = cap_packet_decode(f->bytes, f->len, NULL, CAP_DECODE_LENIENT, &p, &d);
    cap_packet_free(p);
    if (rc == f->expect_err)
        result(t, 1, "%s (%s): rejected: %s", f->name, f->tck_case,
               cap_diag_format(&d, line, sizeof line));
    else
        result(t, 0, "%s (%s): expected %s, got %s", f->name, f->tck_case,
               cap_err_protocol_name(f->expect_err),
               rc ? cap_diag_format(&d, line, sizeof line) : "accepted");
}

static int load_disk_key(const char *dir, cap_key **key)
{
    char *path = join(dir, "public_key.pem");
    uint8_t *pem = NULL;
    size_t len = 0;
    int rc = (path && read_quiet(path, &pem, &len) == 0)
                 ? cap_key_from_pem((const char *)pem, len, key, NULL)
                 : CAP_EIO;
    free(pem);
    free(path);
    return rc;
}

static int check_all(const char *dir, const conf_fixture *set, size_t n)
{
    tally t = {0};
    cap_key *pub = NULL;
    for (size_t i = 0; i < n; i++)
        check_bytes(&t, dir, &set[i]);
    if (load_disk_key(dir, &pub) != CAP_OK)
        result(&t, 0, "public_key.pem: missing or not a P-256 public key");
    for (size_t i = 0; i < n; i++) {
        const conf_fixture *f = &set[i];
        if (f->kind == CONF_FIXTURE_PACKET && pub)
            check_packet(&t, f, pub);
        else if (f->kind == CONF_FIXTURE_JSON && i > 0 && set[i - 1].kind == CONF_FIXTURE_PACKET)
            check_json(&t, f, &set[i - 1]);
        else if (f->kind == CONF_FIXTURE_MALFORMED)
            check_malformed(&t, f);
    }
    cap_key_free(pub);
    printf("fixtures: %d passed, %d failed\n", t.passed, t.failed);
    return t.failed ? CLI_REJECTED : CLI_OK;
}

static int write_all(const char *dir, const conf_fixture *set, size_t n)
{
    char *sub = join(dir, "malformed");
    if (!sub || (mkdir(dir, 0755) != 0 && errno != EEXIST) ||
        (mkdir(sub, 0755) != 0 && errno != EEXIST)) {
        cli_error("fixtures", "%s: cannot create: %s", dir, strerror(errno));
        free(sub);
        return CLI_USAGE;
    }
    free(sub);
    for (size_t i = 0; i < n; i++) {
        char *path = join(dir, set[i].name);
        int rc = path ? cli_write_output("fixtures", path, set[i].bytes, set[i].len) : -1;
        if (rc == 0)
            printf("wrote %s (%zu bytes)\n", path, set[i].len);
        free(path);
        if (rc)
            return CLI_USAGE;
    }
    return CLI_OK;
}

int cmd_fixtures(int argc, char **argv)
{
    const char *dir = "conformance/fixtures";
    int write = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("%s", FIXTURES_HELP);
            return CLI_OK;
        } else if (strcmp(argv[i], "--check") == 0) {
            write = 0;
        } else if (strcmp(argv[i], "--write") == 0) {
            write = 1;
        } else if (strcmp(argv[i], "--dir") == 0) {
            if (!(dir = cli_value("fixtures", argc, argv, &i)))
                return CLI_USAGE;
        } else {
            cli_error("fixtures", "unknown argument %s (see --help)", argv[i]);
            return CLI_USAGE;
        }
    }
    conf_fixture *set;
    size_t n;
    cap_diag d;
    if (conf_fixtures_build(&set, &n, &d) != CAP_OK) {
        cli_diag("fixtures", "build", &d);
        return CLI_REJECTED;
    }
    int rc = write ? write_all(dir, set, n) : check_all(dir, set, n);
    conf_fixtures_free(set, n);
    return rc;
}
