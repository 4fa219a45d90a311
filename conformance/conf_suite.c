/* Scenario suite loader. */
#include "conf_suite.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"

static int sfail(char *err, size_t n, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sfail(char *err, size_t n, const char *name, const char *fmt, ...)
{
    if (err && n) {
        int k = snprintf(err, n, "%s: ", name);
        if (k >= 0 && (size_t)k < n) {
            va_list ap;
            va_start(ap, fmt);
            conf_verrf(err + k, n - (size_t)k, fmt, ap); /* one line, whatever it quotes */
            va_end(ap);
        }
    }
    return CAP_EJSON;
}

void conf_suite_free(conf_suite *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        conf_scenario *c = &s->scenarios[i];
        free(c->id);
        free(c->title);
        free(c->role);
        free(c->profile);
        conf_kv_free(c->params, c->n_params);
    }
    free(s->scenarios);
    free(s->name);
    free(s);
}

static int sc_cmp(const void *a, const void *b)
{
    return strcmp(((const conf_scenario *)a)->id, ((const conf_scenario *)b)->id);
}

static char *dup_or_null(const char *s, int *ok)
{
    char *d = strdup(s);
    if (!d)
        *ok = 0;
    return d;
}

static int parse_scenario(const cJSON *o, size_t idx, conf_scenario *sc, const char *name, char *err,
                          size_t n)
{
    if (!cJSON_IsObject(o))
        return sfail(err, n, name, "scenarios[%zu]: not an object", idx);
    const cJSON *id = NULL, *role = NULL, *profile = NULL, *title = NULL, *req = NULL, *params = NULL;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (strcmp(c->string, "id") == 0)
            id = c;
        else if (strcmp(c->string, "role") == 0)
            role = c;
        else if (strcmp(c->string, "profile") == 0)
            profile = c;
        else if (strcmp(c->string, "title") == 0)
            title = c;
        else if (strcmp(c->string, "required") == 0)
            req = c;
        else if (strcmp(c->string, "params") == 0)
            params = c;
        else
            return sfail(err, n, name, "scenarios[%zu]: unknown field \"%.80s\"", idx, c->string);
    }
    if (!id || !cJSON_IsString(id))
        return sfail(err, n, name, "scenarios[%zu]: id: %s", idx, id ? "not a string" : "missing");
    if (!id->valuestring[0])
        return sfail(err, n, name, "scenarios[%zu]: empty id", idx);
    const char *sid = id->valuestring;
    if (!role || !cJSON_IsString(role))
        return sfail(err, n, name, "scenario \"%.120s\": role: %s", sid, role ? "not a string" : "missing");
    if (strcmp(role->valuestring, "worker") != 0 && strcmp(role->valuestring, "control-plane") != 0)
        return sfail(err, n, name, "scenario \"%.120s\": role \"%.40s\" is not worker or control-plane", sid,
                     role->valuestring);
    if (!profile || !cJSON_IsString(profile))
        return sfail(err, n, name, "scenario \"%.120s\": profile: %s", sid,
                     profile ? "not a string" : "missing");
    if (!profile->valuestring[0])
        return sfail(err, n, name, "scenario \"%.120s\": empty profile", sid);
    if (title && !cJSON_IsString(title))
        return sfail(err, n, name, "scenario \"%.120s\": title: not a string", sid);
    if (req && !cJSON_IsBool(req))
        return sfail(err, n, name, "scenario \"%.120s\": required: not a boolean", sid);
    int ok = 1;
    sc->id = dup_or_null(sid, &ok);
    sc->role = dup_or_null(role->valuestring, &ok);
    sc->profile = dup_or_null(profile->valuestring, &ok);
    if (title)
        sc->title = dup_or_null(title->valuestring, &ok);
    sc->required = req && cJSON_IsTrue(req);
    if (!ok)
        return CAP_ENOMEM;
    if (params) {
        char perr[200];
        int rc = conf_json_string_map(params, "params", CONF_SUITE_MAX_PARAMS, &sc->params, &sc->n_params,
                                      perr, sizeof perr);
        if (rc == CAP_EJSON)
            return sfail(err, n, name, "scenario \"%.120s\": %s", sid, perr);
        if (rc)
            return rc;
    }
    return CAP_OK;
}

int conf_suite_parse(const char *text, size_t len, const char *name, conf_suite **out, char *err,
                     size_t n)
{
    *out = NULL;
    if (len > CONF_SUITE_MAX_BYTES)
        return sfail(err, n, name, "%zu bytes, over the bound of %zu", len, CONF_SUITE_MAX_BYTES);
    cJSON *root = NULL;
    char jerr[200];
    int rc = conf_json_parse(text, len, &root, jerr, sizeof jerr);
    if (rc == CAP_EJSON)
        return sfail(err, n, name, "%s", jerr);
    if (rc)
        return rc;
    conf_suite *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name))) {
        free(s);
        cJSON_Delete(root);
        return CAP_ENOMEM;
    }
    const cJSON *version = NULL, *scen = NULL;
    rc = CAP_OK;
    if (!cJSON_IsObject(root)) {
        rc = sfail(err, n, name, "not a JSON object");
        goto out;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "version") == 0)
            version = c;
        else if (strcmp(c->string, "scenarios") == 0)
            scen = c;
        else {
            rc = sfail(err, n, name, "unknown field \"%.80s\"", c->string);
            goto out;
        }
    }
    if (!version || !cJSON_IsNumber(version) || version->valuedouble != floor(version->valuedouble) ||
        version->valuedouble < 1 || version->valuedouble > 1e9) {
        rc = sfail(err, n, name, "version: %s", version ? "not an integer >= 1" : "missing");
        goto out;
    }
    s->version = (long long)version->valuedouble;
    if (!scen || !cJSON_IsArray(scen)) {
        rc = sfail(err, n, name, "scenarios: %s", scen ? "not an array" : "missing");
        goto out;
    }
    size_t count = (size_t)cJSON_GetArraySize(scen);
    if (count > CONF_SUITE_MAX_SCENARIOS) {
        rc = sfail(err, n, name, "%zu scenarios, over the bound of %d", count, CONF_SUITE_MAX_SCENARIOS);
        goto out;
    }
    if (count) {
        s->scenarios = calloc(count, sizeof *s->scenarios);
        if (!s->scenarios) {
            rc = CAP_ENOMEM;
            goto out;
        }
    }
    size_t i = 0;
    for (const cJSON *c = scen->child; c; c = c->next, i++) {
        s->n = i + 1;
        rc = parse_scenario(c, i, &s->scenarios[i], name, err, n);
        if (rc)
            goto out;
    }
    if (s->n > 1)
        qsort(s->scenarios, s->n, sizeof *s->scenarios, sc_cmp);
    for (i = 1; i < s->n; i++)
        if (strcmp(s->scenarios[i - 1].id, s->scenarios[i].id) == 0) {
            rc = sfail(err, n, name, "duplicate scenario id \"%.120s\"", s->scenarios[i].id);
            goto out;
        }
out:
    cJSON_Delete(root);
    if (rc) {
        if (rc == CAP_ENOMEM && err && n)
            snprintf(err, n, "%s: out of memory", name);
        conf_suite_free(s);
        return rc;
    }
    *out = s;
    return CAP_OK;
}

int conf_suite_load(const char *path, conf_suite **out, char *err, size_t n)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, n, "%s: cannot open: %s", path, strerror(errno));
        return CAP_EIO;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return CAP_ENOMEM;
    }
    for (;;) {
        if (len == cap) {
            if (cap > CONF_SUITE_MAX_BYTES)
                break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return CAP_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        len += k;
        if (k == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, n, "%s: read error", path);
        return CAP_EIO;
    }
    if (len > CONF_SUITE_MAX_BYTES) {
        free(buf);
        snprintf(err, n, "%s: larger than the bound of %zu bytes", path, CONF_SUITE_MAX_BYTES);
        return CAP_EIO;
    }
    int rc = conf_suite_parse(buf, len, path, out, err, n);
    free(buf);
    return rc;
}

int conf_suite_selects(const conf_scenario *s, const char *profile)
{
    return !profile || strcmp(s->profile, profile) == 0;
}
