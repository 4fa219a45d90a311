/* Fuzz target: bytes -> a TCK scenario suite (conf_suite_parse), what
 * `capsim tck run --suite FILE` loads from any file it is given.
 * Properties: a refused suite has a one-line reason naming the file and
 * returns nothing; a loaded one holds what conf_suite.h promises (version
 * at least 1, ids non-empty and strictly increasing bytewise, so unique; a
 * known role; a non-empty profile; params sorted by key, unique, within
 * their bound). A broken property traps, which libFuzzer and AFL++ report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "conf_suite.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

#define NAME "fuzz.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    conf_suite *s = (conf_suite *)1;
    char err[512] = "";
    int rc = conf_suite_parse((const char *)data, size, NAME, &s, err, sizeof err);
    if (rc != CAP_OK) {
        CHECK(rc == CAP_EJSON || rc == CAP_ENOMEM);
        CHECK(s == NULL);
        CHECK(strncmp(err, NAME ": ", strlen(NAME) + 2) == 0 && err[strlen(NAME) + 2] != '\0');
        CHECK(strchr(err, '\n') == NULL);
        return 0;
    }
    CHECK(s != NULL && strcmp(s->name, NAME) == 0);
    CHECK(s->version >= 1 && s->n <= CONF_SUITE_MAX_SCENARIOS);
    for (size_t i = 0; i < s->n; i++) {
        const conf_scenario *c = &s->scenarios[i];
        CHECK(c->id && c->id[0]);
        CHECK(i == 0 || strcmp(s->scenarios[i - 1].id, c->id) < 0);
        CHECK(c->role && (strcmp(c->role, "worker") == 0 || strcmp(c->role, "control-plane") == 0));
        CHECK(c->profile && c->profile[0]);
        CHECK(c->required == 0 || c->required == 1);
        CHECK(c->n_params <= CONF_SUITE_MAX_PARAMS);
        for (size_t k = 0; k < c->n_params; k++) {
            CHECK(c->params[k].key && c->params[k].value);
            CHECK(k == 0 || strcmp(c->params[k - 1].key, c->params[k].key) < 0);
        }
    }
    conf_suite_free(s);
    return 0;
}
