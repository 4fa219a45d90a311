/* capsim decode | encode | sign | verify: the wire layer from the shell. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_json.h"
#include "cap_sign.h"
#include "cli.h"
#include "commands.h"

#define JSON_MAX_INPUT (16u << 20)
#define PEM_MAX_INPUT (64u << 10)

/* Reads and strictly decodes a binary packet; prints the reason on failure. */
static int load_packet(const char *cmd, const char *path, const cap_bounds *b,
                       cap_decode_mode mode, cap_packet **out)
{
    uint8_t *buf;
    size_t len;
    if (cli_read_input(cmd, path, b->max_packet, &buf, &len) != 0)
        return CLI_USAGE;
    cap_diag d;
    int rc = cap_packet_decode(buf, len, b, mode, out, &d);
    free(buf);
    if (rc) {
        cli_diag(cmd, path, &d);
        return CLI_REJECTED;
    }
    return CLI_OK;
}

static int load_key(const char *cmd, const char *path, cap_key **key)
{
    uint8_t *pem;
    size_t len;
    if (cli_read_input(cmd, path, PEM_MAX_INPUT, &pem, &len) != 0)
        return CLI_USAGE;
    cap_diag d;
    int rc = len > PEM_MAX_INPUT ? cap_diag_set(&d, CAP_EKEY, -1, "", "key file over 64 KiB")
                                 : cap_key_from_pem((const char *)pem, len, key, &d);
    free(pem);
    if (rc) {
        cli_diag(cmd, path, &d);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static int encode_and_write(const char *cmd, const cap_packet *p, const char *out_path)
{
    uint8_t *bytes;
    size_t len;
    if (cap_encode(&p->base, &bytes, &len) != CAP_OK) {
        cli_error(cmd, "out of memory");
        return CLI_REJECTED;
    }
    int rc = cli_write_output(cmd, out_path, bytes, len) == 0 ? CLI_OK : CLI_USAGE;
    free(bytes);
    return rc;
}

/* --- decode ------------------------------------------------------------- */

static const char DECODE_HELP[] =
    "usage: capsim decode [options] FILE|-\n"
    "Decodes a binary BusPacket with the strict decoder and prints its JSON form.\n"
    "A rejected packet prints one line naming the CAP error code, the field and the\n"
    "byte offset, and exits 1.\n\n"
    "  --strict              reject unknown fields at any depth (trust/production)\n"
    "  --compact             one line of JSON instead of indented\n"
    "  --out F               write the JSON to F instead of standard output\n";

int cmd_decode(int argc, char **argv)
{
    cap_bounds b = cap_bounds_default();
    cap_decode_mode mode = CAP_DECODE_LENIENT;
    const char *in = NULL, *out = NULL;
    int pretty = 1;
    if (cli_wants_help(argc, argv)) {
        printf("%s%s", DECODE_HELP, cli_bounds_help);
        return CLI_OK;
    }
    for (int i = 1; i < argc; i++) {
        int r = cli_bounds_option("decode", argc, argv, &i, &b);
        if (r < 0)
            return CLI_USAGE;
        if (r)
            continue;
        if (strcmp(argv[i], "--strict") == 0)
            mode = CAP_DECODE_STRICT;
        else if (strcmp(argv[i], "--compact") == 0)
            pretty = 0;
        else if (strcmp(argv[i], "--out") == 0) {
            if (!(out = cli_value("decode", argc, argv, &i)))
                return CLI_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("decode", "unknown option %s (see --help)", argv[i]);
            return CLI_USAGE;
        } else if (in) {
            cli_error("decode", "one input file only");
            return CLI_USAGE;
        } else
            in = argv[i];
    }
    if (!in) {
        cli_error("decode", "no input file (use - for standard input)");
        return CLI_USAGE;
    }
    cap_packet *p;
    int rc = load_packet("decode", in, &b, mode, &p);
    if (rc)
        return rc;
    char *json;
    if (cap_json_from_message(&p->base, pretty, &json) != CAP_OK) {
        cap_packet_free(p);
        cli_error("decode", "out of memory");
        return CLI_REJECTED;
    }
    cap_packet_free(p);
    size_t n = strlen(json);
    if (!pretty)
        json[n++] = '\n'; /* the terminating NUL's place: one line out */
    rc = cli_write_output("decode", out, json, n) == 0 ? CLI_OK : CLI_USAGE;
    free(json);
    return rc;
}

/* --- encode ------------------------------------------------------------- */

static const char ENCODE_HELP[] =
    "usage: capsim encode [options] FILE|-\n"
    "Reads a BusPacket in its JSON form (proto3 JSON mapping) and writes its\n"
    "canonical binary encoding. The result must pass the strict decoder.\n\n"
    "  --out F               write to F instead of standard output\n";

int cmd_encode(int argc, char **argv)
{
    cap_bounds b = cap_bounds_default();
    const char *in = NULL, *out = NULL;
    if (cli_wants_help(argc, argv)) {
        printf("%s%s", ENCODE_HELP, cli_bounds_help);
        return CLI_OK;
    }
    for (int i = 1; i < argc; i++) {
        int r = cli_bounds_option("encode", argc, argv, &i, &b);
        if (r < 0)
            return CLI_USAGE;
        if (r)
            continue;
        if (strcmp(argv[i], "--out") == 0) {
            if (!(out = cli_value("encode", argc, argv, &i)))
                return CLI_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("encode", "unknown option %s (see --help)", argv[i]);
            return CLI_USAGE;
        } else if (in) {
            cli_error("encode", "one input file only");
            return CLI_USAGE;
        } else
            in = argv[i];
    }
    if (!in) {
        cli_error("encode", "no input file (use - for standard input)");
        return CLI_USAGE;
    }
    uint8_t *text;
    size_t len;
    if (cli_read_input("encode", in, JSON_MAX_INPUT, &text, &len) != 0)
        return CLI_USAGE;
    ProtobufCMessage *m = NULL;
    cap_diag d;
    int rc = cap_json_to_message(CAP_PACKET_DESC, (const char *)text, len, JSON_MAX_INPUT, &m, &d);
    free(text);
    if (rc) {
        cli_diag("encode", in, &d);
        return CLI_REJECTED;
    }
    uint8_t *bytes = NULL;
    size_t n = 0;
    rc = cap_encode(m, &bytes, &n);
    cap_message_free(m);
    if (rc) {
        cli_error("encode", "out of memory");
        return CLI_REJECTED;
    }
    /* The output must be a packet the strict decoder accepts. */
    cap_packet *check;
    rc = cap_packet_decode(bytes, n, &b, CAP_DECODE_LENIENT, &check, &d);
    if (rc) {
        free(bytes);
        cli_diag("encode", in, &d);
        return CLI_REJECTED;
    }
    cap_packet_free(check);
    rc = cli_write_output("encode", out, bytes, n) == 0 ? CLI_OK : CLI_USAGE;
    free(bytes);
    return rc;
}

/* --- sign --------------------------------------------------------------- */

static const char SIGN_HELP[] =
    "usage: capsim sign --key PEM [options] FILE|-\n"
    "Signs a binary BusPacket with a P-256 private key, deterministically (RFC 6979),\n"
    "and writes the signed packet.\n\n"
    "  --key PEM             the private key (PKCS#8 or SEC1 PEM)\n"
    "  --production          CAP-PRODUCTION signature (cap-spec 19): the packet must carry\n"
    "                        signature_metadata and no signature; field 14 is appended\n"
    "                        to its encoding once. Default: generic signature (cap-spec 2a)\n"
    "  --out F               write to F instead of standard output\n";

int cmd_sign(int argc, char **argv)
{
    cap_bounds b = cap_bounds_default();
    const char *in = NULL, *out = NULL, *key_path = NULL;
    int production = 0;
    if (cli_wants_help(argc, argv)) {
        printf("%s%s", SIGN_HELP, cli_bounds_help);
        return CLI_OK;
    }
    for (int i = 1; i < argc; i++) {
        int r = cli_bounds_option("sign", argc, argv, &i, &b);
        if (r < 0)
            return CLI_USAGE;
        if (r)
            continue;
        if (strcmp(argv[i], "--key") == 0) {
            if (!(key_path = cli_value("sign", argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(argv[i], "--out") == 0) {
            if (!(out = cli_value("sign", argc, argv, &i)))
                return CLI_USAGE;
        } else if (strcmp(argv[i], "--production") == 0) {
            production = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("sign", "unknown option %s (see --help)", argv[i]);
            return CLI_USAGE;
        } else if (in) {
            cli_error("sign", "one input file only");
            return CLI_USAGE;
        } else
            in = argv[i];
    }
    if (!in || !key_path) {
        cli_error("sign", "needs --key PEM and an input file (see --help)");
        return CLI_USAGE;
    }
    cap_key *key;
    int rc = load_key("sign", key_path, &key);
    if (rc)
        return rc;
    if (!cap_key_has_private(key)) {
        cap_key_free(key);
        cli_error("sign", "%s: a public key cannot sign", key_path);
        return CLI_USAGE;
    }
    cap_packet *p;
    rc = load_packet("sign", in, &b, CAP_DECODE_LENIENT, &p);
    if (rc) {
        cap_key_free(key);
        return rc;
    }
    cap_diag d;
    if (production) {
        uint8_t *wire;
        size_t len;
        rc = cap_production_sign(p, key, &wire, &len, &d);
        if (!rc) {
            rc = cli_write_output("sign", out, wire, len) == 0 ? CLI_OK : CLI_USAGE;
            free(wire);
        } else {
            cli_diag("sign", in, &d);
            rc = CLI_REJECTED;
        }
    } else if (cap_packet_sign(p, key, &d) != CAP_OK) {
        cli_diag("sign", in, &d);
        rc = CLI_REJECTED;
    } else {
        rc = encode_and_write("sign", p, out);
    }
    cap_packet_free(p);
    cap_key_free(key);
    return rc;
}

/* --- verify ------------------------------------------------------------- */

static const char VERIFY_HELP[] =
    "usage: capsim verify --pub PEM [options] FILE|-\n"
    "Verifies the signature of a binary BusPacket. Prints \"ok\" and exits 0, or\n"
    "names the failure (103 invalid signature, 104 missing signature) and exits 1.\n\n"
    "  --pub PEM             the signer's public key\n"
    "  --optional            a packet without a signature is accepted (default: required)\n"
    "  --production          CAP-PRODUCTION admission (cap-spec 19) of the exact bytes;\n"
    "                        needs the trust binding below\n"
    "  --audience S          subject the packet was received on (production)\n"
    "  --key-id S            key id registered for --pub (production)\n"
    "  --tenant S            authenticated tenant (production, optional)\n"
    "  --sender S            authenticated sender (production, optional)\n"
    "  --now NANOS           current time, Unix nanoseconds (production)\n";

typedef struct {
    const char *audience, *key_id, *tenant, *sender, *now;
} prod_opts;

static int verify_production(const char *in, const cap_bounds *b, const cap_key *key,
                             const prod_opts *o)
{
    if (!o->audience || !o->key_id || !o->now) {
        cli_error("verify", "--production needs --audience, --key-id and --now");
        return CLI_USAGE;
    }
    char *end;
    long long now = strtoll(o->now, &end, 10);
    if (*end || end == o->now) {
        cli_error("verify", "--now: not a number of nanoseconds: %s", o->now);
        return CLI_USAGE;
    }
    uint8_t *buf;
    size_t len;
    if (cli_read_input("verify", in, b->max_packet, &buf, &len) != 0)
        return CLI_USAGE;
    cap_production_trust t = {.audience = o->audience, .tenant_id = o->tenant,
                              .sender_id = o->sender, .key_id = o->key_id, .key = key,
                              .now_unix_nanos = now};
    uint8_t digest[32];
    cap_diag d;
    int rc = cap_production_verify(buf, len, b, &t, digest, NULL, &d);
    free(buf);
    if (rc) {
        cli_diag("verify", in, &d);
        return CLI_REJECTED;
    }
    printf("ok: CAP-PRODUCTION signature verifies; signed-body sha256 ");
    for (int i = 0; i < 32; i++)
        printf("%02x", digest[i]);
    printf("\n");
    return CLI_OK;
}

int cmd_verify(int argc, char **argv)
{
    cap_bounds b = cap_bounds_default();
    const char *in = NULL, *pub_path = NULL;
    int required = 1, production = 0;
    prod_opts o = {0};
    if (cli_wants_help(argc, argv)) {
        printf("%s%s", VERIFY_HELP, cli_bounds_help);
        return CLI_OK;
    }
    for (int i = 1; i < argc; i++) {
        int r = cli_bounds_option("verify", argc, argv, &i, &b);
        const char **slot = NULL;
        if (r < 0)
            return CLI_USAGE;
        if (r)
            continue;
        if (strcmp(argv[i], "--pub") == 0)
            slot = &pub_path;
        else if (strcmp(argv[i], "--audience") == 0)
            slot = &o.audience;
        else if (strcmp(argv[i], "--key-id") == 0)
            slot = &o.key_id;
        else if (strcmp(argv[i], "--tenant") == 0)
            slot = &o.tenant;
        else if (strcmp(argv[i], "--sender") == 0)
            slot = &o.sender;
        else if (strcmp(argv[i], "--now") == 0)
            slot = &o.now;
        else if (strcmp(argv[i], "--optional") == 0)
            required = 0;
        else if (strcmp(argv[i], "--production") == 0)
            production = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("verify", "unknown option %s (see --help)", argv[i]);
            return CLI_USAGE;
        } else if (in) {
            cli_error("verify", "one input file only");
            return CLI_USAGE;
        } else
            in = argv[i];
        if (slot && !(*slot = cli_value("verify", argc, argv, &i)))
            return CLI_USAGE;
    }
    if (!in || !pub_path) {
        cli_error("verify", "needs --pub PEM and an input file (see --help)");
        return CLI_USAGE;
    }
    cap_key *key;
    int rc = load_key("verify", pub_path, &key);
    if (rc)
        return rc;
    if (production) {
        rc = verify_production(in, &b, key, &o);
        cap_key_free(key);
        return rc;
    }
    cap_packet *p;
    rc = load_packet("verify", in, &b, CAP_DECODE_LENIENT, &p);
    if (!rc) {
        cap_diag d;
        if (cap_packet_verify(p, key, required, &d) != CAP_OK) {
            cli_diag("verify", in, &d);
            rc = CLI_REJECTED;
        } else {
            printf("ok: %s\n", p->signature.len ? "signature verifies" : "no signature (optional)");
        }
        cap_packet_free(p);
    }
    cap_key_free(key);
    return rc;
}
