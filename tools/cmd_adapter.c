/* capsim adapter: the reference adapter, adapter-v1 on stdin/stdout.
 * Every case is answered by driving the reference components
 * (conformance/conf_refcases.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "conf_msg.h"
#include "conf_refcases.h"
#include "ref_bugs.h"

#define CMD "adapter"

static const char HELP[] =
    "usage: capsim adapter [--role worker|control-plane] [--mutant NAME]\n"
    "\n"
    "The reference adapter: speaks adapter-v1 (JSONL) on stdin/stdout, for\n"
    "capsim tck run --adapter 'ref=capsim|adapter|--role|worker'. Each case is\n"
    "computed by the reference components and compared with the case's\n"
    "expectation. --mutant switches one known bug into the reference, to show\n"
    "which cases catch it. Mutants:\n";

/* Reads one line of at most CONF_MSG_MAX_LINE bytes into buf (which holds
 * CONF_MSG_MAX_LINE + 1). Returns its length, -1 at EOF, -2 for a longer
 * line (consumed and dropped). */
static long read_line(char *buf)
{
    size_t len = 0;
    int c;
    int over = 0;
    while ((c = getchar()) != EOF) {
        if (!over) {
            if (len == CONF_MSG_MAX_LINE)
                over = 1;
            else
                buf[len++] = (char)c;
        }
        if (c == '\n')
            break;
    }
    if (c == EOF && len == 0 && !over)
        return -1;
    buf[len] = '\0';
    return over ? -2 : (long)len;
}

static int emit(const conf_msg *m)
{
    char *line = NULL;
    size_t len = 0;
    if (conf_msg_encode(m, &line, &len) != 0) {
        cli_error(CMD, "cannot encode a %s message", conf_msg_type_name(m->type));
        return -1;
    }
    fwrite(line, 1, len, stdout);
    fflush(stdout);
    free(line);
    return 0;
}

static int answer(const char *role, const conf_msg *run)
{
    conf_ref_answer ans;
    conf_ref_answer_case(role, run->id, run->params, run->n_params, &ans);
    conf_kv ev[CONF_REF_MAX_EVIDENCE];
    for (size_t i = 0; i < ans.n_ev; i++) {
        ev[i].key = ans.ev[i].key;
        ev[i].value = ans.ev[i].value;
    }
    conf_kv_sort(ev, ans.n_ev);
    conf_msg res = {0};
    res.type = CONF_MSG_RESULT;
    res.id = run->id;
    res.has_status = 1;
    res.status = ans.status;
    res.detail = ans.detail;
    res.evidence = ev;
    res.n_evidence = ans.n_ev;
    return emit(&res);
}

int cmd_adapter(int argc, char **argv)
{
    const char *role = "worker";
    const char *mutant = NULL;
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        for (int b = REF_BUG_NONE + 1; b < REF_BUG_COUNT; b++)
            printf("  %-26s %s\n", ref_bug_name((ref_bug)b), ref_bug_describe((ref_bug)b));
        return CLI_OK;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--role") == 0) {
            if (!(role = cli_value(CMD, argc, argv, &i)))
                return CLI_USAGE;
            if (strcmp(role, "worker") != 0 && strcmp(role, "control-plane") != 0) {
                cli_error(CMD, "--role: \"%s\" is not worker or control-plane", role);
                return CLI_USAGE;
            }
        } else if (strcmp(argv[i], "--mutant") == 0) {
            if (!(mutant = cli_value(CMD, argc, argv, &i)))
                return CLI_USAGE;
            int b = ref_bug_from_name(mutant);
            if (b < 0) {
                cli_error(CMD, "--mutant: unknown bug \"%s\" (capsim adapter --help lists them)", mutant);
                return CLI_USAGE;
            }
            ref_bug_set((ref_bug)b);
        } else {
            cli_error(CMD, "unknown option \"%s\"", argv[i]);
            return CLI_USAGE;
        }
    }
    char *buf = malloc(CONF_MSG_MAX_LINE + 1);
    if (!buf) {
        cli_error(CMD, "out of memory");
        return CLI_REJECTED;
    }
    char sdk[96];
    snprintf(sdk, sizeof sdk, "capsim-reference%s%s", mutant ? "+mutant:" : "", mutant ? mutant : "");
    int greeted = 0, rc = CLI_OK;
    for (;;) {
        long len = read_line(buf);
        if (len == -1)
            break;
        if (len == -2) {
            cli_error(CMD, "ignoring a line longer than %zu bytes", (size_t)CONF_MSG_MAX_LINE);
            continue;
        }
        if (conf_msg_blank(buf, (size_t)len))
            continue;
        conf_msg m;
        char err[300];
        int bad = conf_msg_decode(buf, (size_t)len, &m, err, sizeof err);
        if (!greeted) {
            /* The first line is the hello (upstream reads it without
             * looking); anything else is noted. */
            if (bad || m.type != CONF_MSG_HELLO)
                cli_error(CMD, "first line is not a hello; answering with the handshake anyway");
            static char *profiles[] = {"core", "cap-production"};
            static char *features[] = {"lifecycle", "cancellation", "negotiation", "malformed",
                                       "safety",    "duplicates",   "retries"};
            conf_msg hs = {0};
            hs.type = CONF_MSG_HANDSHAKE;
            hs.has_protocol_version = 1;
            hs.protocol_version = 1;
            hs.role = (char *)role;
            hs.profiles = profiles;
            hs.n_profiles = 2;
            hs.features = features;
            hs.n_features = sizeof features / sizeof features[0];
            hs.sdk = sdk;
            hs.transport = "none";
            greeted = 1;
            if (!bad)
                conf_msg_free(&m);
            if (emit(&hs) < 0) {
                rc = CLI_REJECTED;
                break;
            }
            continue;
        }
        if (bad) {
            cli_error(CMD, "ignoring a malformed line: %s", err);
            continue;
        }
        if (m.type == CONF_MSG_BYE) {
            conf_msg_free(&m);
            break;
        }
        if (m.type == CONF_MSG_RUN && answer(role, &m) < 0)
            rc = CLI_REJECTED;
        conf_msg_free(&m);
        if (rc != CLI_OK)
            break;
    }
    free(buf);
    return rc;
}
