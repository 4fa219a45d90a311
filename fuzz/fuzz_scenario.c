/* Fuzz target: bytes -> simulator scenario (sim_scenario_parse). Whatever
 * does not load must say where and why; whatever loads must write back
 * (sim_scenario_write_text) to a file that loads again and writes back to
 * the same text, since the shrinker's minimal reproductions depend on
 * that. The scenario is named as if it sat in sim/scenarios/, so relative
 * policy paths resolve against the ready scenarios' directory (the fuzzer
 * runs from the project root). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "sim_scenario.h"
#include "sim_scenario_write.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

#define PATH "sim/scenarios/fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sim_scenario *s = (sim_scenario *)1;
    cap_yaml_diag d;
    int rc = sim_scenario_parse(PATH, (const char *)data, size, &s, &d);
    if (rc) {
        CHECK(s == NULL);
        CHECK(rc == CAP_EYAML || rc == CAP_EINVAL || rc == CAP_EIO || rc == CAP_EPOLICY ||
              rc == CAP_ENOMEM);
        CHECK(d.reason[0] != '\0');
        return 0;
    }
    CHECK(s != NULL);
    char *text = NULL;
    size_t len = 0;
    rc = sim_scenario_write_text(s, "fuzz", &text, &len);
    CHECK(rc == CAP_OK);
    CHECK(strlen(text) == len);
    sim_scenario *back = NULL;
    rc = sim_scenario_parse(PATH, text, len, &back, &d);
    if (rc)
        fprintf(stderr, "written scenario does not load: %d:%d %s: %s\n%s\n", d.line, d.column,
                d.path, d.reason, text);
    CHECK(rc == CAP_OK && back != NULL);
    char *again = NULL;
    size_t len2 = 0;
    CHECK(sim_scenario_write_text(back, "fuzz", &again, &len2) == CAP_OK);
    if (len != len2 || strcmp(text, again) != 0)
        fprintf(stderr, "written twice, two texts:\n%s\n----\n%s\n", text, again);
    CHECK(len == len2 && strcmp(text, again) == 0);
    free(again);
    free(text);
    sim_scenario_free(back);
    sim_scenario_free(s);
    return 0;
}
