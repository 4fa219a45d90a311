/* Scenario suites (scenario-v1, cap-tck 3 and 4): load, validate, select.
 *
 * A suite file is {"version": N >= 1, "scenarios": [...]}; each scenario
 * {"id", "role", "profile", "title"?, "required"?, "params"?}. The loader
 * rejects, with the file name and one reason: a file over
 * CONF_SUITE_MAX_BYTES, invalid JSON (conf_json_parse: duplicate keys,
 * trailing data), unknown fields at either level, a missing or
 * non-integer version, an empty or duplicate id, a role other than worker
 * or control-plane, an empty profile, a non-boolean required, params that
 * are not an object of strings, more than CONF_SUITE_MAX_SCENARIOS
 * scenarios. Scenarios are sorted by id (bytewise); params by key. A
 * missing `required` is false.
 *
 * Ownership: conf_suite_free frees the suite and everything in it. */
#ifndef CONF_SUITE_H
#define CONF_SUITE_H

#include <stddef.h>

#include "conf_json.h"

#define CONF_SUITE_MAX_BYTES ((size_t)8 << 20)
#define CONF_SUITE_MAX_SCENARIOS 10000
#define CONF_SUITE_MAX_PARAMS 256

typedef struct {
    char *id;
    char *title;   /* NULL when absent */
    char *role;    /* "worker" or "control-plane" */
    char *profile;
    int required;
    conf_kv *params; /* sorted by key */
    size_t n_params;
} conf_scenario;

typedef struct {
    char *name;    /* the file name it was loaded from */
    long long version;
    conf_scenario *scenarios; /* sorted by id */
    size_t n;
} conf_suite;

/* Parses suite text; `name` (copied) is used in errors and kept. On error
 * returns CAP_EJSON / CAP_ENOMEM and writes "NAME: REASON" to err. */
int conf_suite_parse(const char *text, size_t len, const char *name, conf_suite **out, char *err,
                     size_t n);

/* Reads and parses a file. CAP_EIO (unreadable, too big) or the parse
 * errors, with "PATH: REASON" in err. */
int conf_suite_load(const char *path, conf_suite **out, char *err, size_t n);

void conf_suite_free(conf_suite *s);

/* 1 when scenario s belongs to profile (NULL profile: every scenario). */
int conf_suite_selects(const conf_scenario *s, const char *profile);

#endif
