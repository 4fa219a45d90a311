/* adapter-v1 message codec. */
#include "conf_msg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"

static const char *const TYPES[] = {NULL, "hello", "handshake", "run", "result", "bye"};
static const char *const STATUSES[] = {"PASS", "FAIL", "ERROR", "UNSUPPORTED", "N/A"};
static const char *const KEYS[] = {"type",     "id",       "scenario", "params", "protocolVersion",
                                   "role",     "profiles", "features", "sdk",    "transport",
                                   "status",   "detail",   "evidence"};

const char *conf_msg_type_name(conf_msg_type t)
{
    return (t >= CONF_MSG_HELLO && t <= CONF_MSG_BYE) ? TYPES[t] : "?";
}

const char *conf_status_name(conf_status s)
{
    return ((int)s >= 0 && s <= CONF_ST_NA) ? STATUSES[s] : "?";
}

int conf_status_parse(const char *s)
{
    for (int i = 0; i <= CONF_ST_NA; i++)
        if (strcmp(STATUSES[i], s) == 0)
            return i;
    return -1;
}

int conf_msg_blank(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '\n')
            return 0;
    return 1;
}

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conf_verrf(err, n, fmt, ap);
    va_end(ap);
    return CAP_EJSON;
}

static int get_string(const cJSON *v, char **out, char *err, size_t n)
{
    if (!cJSON_IsString(v))
        return fail(err, n, "%s: not a string", v->string);
    *out = strdup(v->valuestring);
    return *out ? CAP_OK : CAP_ENOMEM;
}

static int get_list(const cJSON *v, char ***out, size_t *count, char *err, size_t n)
{
    if (!cJSON_IsArray(v))
        return fail(err, n, "%s: not an array of strings", v->string);
    size_t k = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return fail(err, n, "%s[%zu]: not a string", v->string, k);
        k++;
    }
    if (k > CONF_MSG_MAX_ENTRIES)
        return fail(err, n, "%s: %zu entries, over the bound of %zu", v->string, k, (size_t)CONF_MSG_MAX_ENTRIES);
    if (k == 0)
        return CAP_OK;
    char **a = calloc(k, sizeof *a);
    if (!a)
        return CAP_ENOMEM;
    *out = a;
    size_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        a[i] = strdup(c->valuestring);
        if (!a[i])
            return CAP_ENOMEM;
        *count = i + 1;
    }
    return CAP_OK;
}

static int decode_members(const cJSON *root, conf_msg *m, char *err, size_t n)
{
    int rc = CAP_OK;
    const cJSON *type = NULL;
    for (const cJSON *c = root->child; c; c = c->next) {
        size_t k;
        for (k = 0; k < sizeof KEYS / sizeof KEYS[0]; k++)
            if (strcmp(KEYS[k], c->string) == 0)
                break;
        if (k == sizeof KEYS / sizeof KEYS[0])
            return fail(err, n, "unknown field \"%.80s\"", c->string);
        if (k == 0)
            type = c;
    }
    if (!type)
        return fail(err, n, "missing field \"type\"");
    if (!cJSON_IsString(type))
        return fail(err, n, "type: not a string");
    for (int t = CONF_MSG_HELLO; t <= CONF_MSG_BYE; t++)
        if (strcmp(TYPES[t], type->valuestring) == 0)
            m->type = (conf_msg_type)t;
    if (!m->type)
        return fail(err, n, "type: \"%.40s\" is not one of hello, handshake, run, result, bye",
                    type->valuestring);
    for (const cJSON *c = root->child; c && rc == CAP_OK; c = c->next) {
        const char *k = c->string;
        if (strcmp(k, "id") == 0)
            rc = get_string(c, &m->id, err, n);
        else if (strcmp(k, "scenario") == 0)
            rc = get_string(c, &m->scenario, err, n);
        else if (strcmp(k, "sdk") == 0)
            rc = get_string(c, &m->sdk, err, n);
        else if (strcmp(k, "transport") == 0)
            rc = get_string(c, &m->transport, err, n);
        else if (strcmp(k, "detail") == 0)
            rc = get_string(c, &m->detail, err, n);
        else if (strcmp(k, "params") == 0)
            rc = conf_json_string_map(c, "params", CONF_MSG_MAX_ENTRIES, &m->params, &m->n_params, err, n);
        else if (strcmp(k, "evidence") == 0)
            rc = conf_json_string_map(c, "evidence", CONF_MSG_MAX_ENTRIES, &m->evidence, &m->n_evidence,
                                      err, n);
        else if (strcmp(k, "profiles") == 0)
            rc = get_list(c, &m->profiles, &m->n_profiles, err, n);
        else if (strcmp(k, "features") == 0)
            rc = get_list(c, &m->features, &m->n_features, err, n);
        else if (strcmp(k, "protocolVersion") == 0) {
            double d = c->valuedouble;
            if (!cJSON_IsNumber(c) || d != floor(d) || d < -1e15 || d > 1e15)
                return fail(err, n, "protocolVersion: not an integer");
            m->has_protocol_version = 1;
            m->protocol_version = (long long)d;
        } else if (strcmp(k, "role") == 0) {
            if (!cJSON_IsString(c))
                return fail(err, n, "role: not a string");
            if (strcmp(c->valuestring, "worker") != 0 && strcmp(c->valuestring, "control-plane") != 0)
                return fail(err, n, "role: \"%.40s\" is not worker or control-plane", c->valuestring);
            rc = get_string(c, &m->role, err, n);
        } else if (strcmp(k, "status") == 0) {
            if (!cJSON_IsString(c))
                return fail(err, n, "status: not a string");
            int s = conf_status_parse(c->valuestring);
            if (s < 0)
                return fail(err, n, "status: \"%.40s\" is not one of PASS, FAIL, ERROR, UNSUPPORTED, N/A",
                            c->valuestring);
            m->has_status = 1;
            m->status = (conf_status)s;
        }
    }
    if (rc)
        return rc;
    switch (m->type) {
    case CONF_MSG_HANDSHAKE:
        if (!m->has_protocol_version)
            return fail(err, n, "handshake without protocolVersion");
        if (!m->role)
            return fail(err, n, "handshake without role");
        break;
    /* A required string may not be empty either: an encoder that omits
     * empty fields (Go's omitempty, and conf_msg_encode) would drop it, and
     * no case has an empty id or scenario. */
    case CONF_MSG_RUN:
        if (!m->id || !m->scenario)
            return fail(err, n, "run without %s", m->id ? "scenario" : "id");
        if (!m->id[0] || !m->scenario[0])
            return fail(err, n, "run with an empty %s", m->id[0] ? "scenario" : "id");
        break;
    case CONF_MSG_RESULT:
        if (!m->id || !m->has_status)
            return fail(err, n, "result without %s", m->id ? "status" : "id");
        if (!m->id[0])
            return fail(err, n, "result with an empty id");
        break;
    default: break;
    }
    return CAP_OK;
}

int conf_msg_decode(const char *line, size_t len, conf_msg *out, char *err, size_t n)
{
    memset(out, 0, sizeof *out);
    if (len > CONF_MSG_MAX_LINE || (len == CONF_MSG_MAX_LINE && line[len - 1] != '\n')) {
        fail(err, n, "line of %zu bytes exceeds the %zu-byte bound", len, (size_t)CONF_MSG_MAX_LINE);
        return CAP_EJSON;
    }
    cJSON *root = NULL;
    char jerr[200];
    int rc = conf_json_parse(line, len, &root, jerr, sizeof jerr);
    if (rc) {
        if (rc == CAP_EJSON)
            fail(err, n, "%s", jerr);
        return rc;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(err, n, "not a JSON object");
    }
    rc = decode_members(root, out, err, n);
    cJSON_Delete(root);
    if (rc) {
        if (rc == CAP_ENOMEM && err && n)
            snprintf(err, n, "out of memory");
        conf_msg_free(out);
    }
    return rc;
}

static void free_list(char **a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

void conf_msg_free(conf_msg *m)
{
    if (!m)
        return;
    free(m->id);
    free(m->scenario);
    conf_kv_free(m->params, m->n_params);
    free(m->role);
    free_list(m->profiles, m->n_profiles);
    free_list(m->features, m->n_features);
    free(m->sdk);
    free(m->transport);
    free(m->detail);
    conf_kv_free(m->evidence, m->n_evidence);
    memset(m, 0, sizeof *m);
}

static void put_key(conf_jw *w, const char *key)
{
    conf_jw_str(w, ",");
    conf_jw_quote(w, key);
    conf_jw_str(w, ":");
}

static void put_string(conf_jw *w, const char *key, const char *v)
{
    if (!v || !*v)
        return;
    put_key(w, key);
    conf_jw_quote(w, v);
}

static void put_map(conf_jw *w, const char *key, const conf_kv *kv, size_t n)
{
    if (n == 0)
        return;
    put_key(w, key);
    conf_jw_str(w, "{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            conf_jw_str(w, ",");
        conf_jw_quote(w, kv[i].key);
        conf_jw_str(w, ":");
        conf_jw_quote(w, kv[i].value);
    }
    conf_jw_str(w, "}");
}

static void put_list(conf_jw *w, const char *key, char *const *a, size_t n)
{
    if (n == 0)
        return;
    put_key(w, key);
    conf_jw_str(w, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            conf_jw_str(w, ",");
        conf_jw_quote(w, a[i]);
    }
    conf_jw_str(w, "]");
}

int conf_msg_encode(const conf_msg *m, char **out, size_t *len)
{
    conf_jw w = {0};
    conf_jw_str(&w, "{\"type\":");
    conf_jw_quote(&w, conf_msg_type_name(m->type));
    put_string(&w, "id", m->id);
    put_string(&w, "scenario", m->scenario);
    put_map(&w, "params", m->params, m->n_params);
    if (m->has_protocol_version) {
        put_key(&w, "protocolVersion");
        conf_jw_printf(&w, "%lld", m->protocol_version);
    }
    put_string(&w, "role", m->role);
    put_list(&w, "profiles", m->profiles, m->n_profiles);
    put_list(&w, "features", m->features, m->n_features);
    put_string(&w, "sdk", m->sdk);
    put_string(&w, "transport", m->transport);
    if (m->has_status)
        put_string(&w, "status", conf_status_name(m->status));
    put_string(&w, "detail", m->detail);
    put_map(&w, "evidence", m->evidence, m->n_evidence);
    conf_jw_str(&w, "}\n");
    size_t l = 0;
    int rc = conf_jw_take(&w, out, &l);
    if (rc)
        return rc;
    if (l > CONF_MSG_MAX_LINE) {
        free(*out);
        *out = NULL;
        return CAP_EINVAL;
    }
    if (len)
        *len = l;
    return CAP_OK;
}
