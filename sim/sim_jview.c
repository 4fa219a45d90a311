/* Journal record reader: see sim_jview.h. */
#include "sim_jview.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cap_swar.h"

/* Copies a string member's value from a parsed record (NULL when the
 * member is missing or not a string), as cJSON_GetStringValue would. */
static const char *jv_str(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void jview_from_cjson(sim_jview *v, const cJSON *o)
{
    memset(v, 0, sizeof *v);
    v->k = jv_str(o, "k");
    v->job_id = jv_str(o, "job_id");
    v->state = jv_str(o, "state");
    v->ev = jv_str(o, "ev");
    v->snapshot = jv_str(o, "snapshot");
    v->hash = jv_str(o, "hash");
    v->appr_snapshot = jv_str(o, "appr_snapshot");
    v->op = jv_str(o, "op");
    v->wf = jv_str(o, "wf");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "decision");
    if ((v->has_decision = cJSON_IsNumber(x) != 0))
        v->decision = x->valuedouble;
    x = cJSON_GetObjectItemCaseSensitive(o, "appr");
    if ((v->has_appr = cJSON_IsNumber(x) != 0))
        v->appr = x->valuedouble;
    x = cJSON_GetObjectItemCaseSensitive(o, "attempt");
    v->attempt_str = cJSON_IsString(x) ? x->valuestring : NULL;
    v->attempt_num = cJSON_GetNumberValue(x);
}

/* Sets the member k of v to the string s, when v reads that member and it
 * is not set yet (the first of duplicate members counts, as in cJSON). */
static void jview_set_str(sim_jview *v, const char *k, size_t kn, const char *s)
{
#define JV_STR(name, field)                                                                        \
    if (kn == sizeof name - 1 && memcmp(k, name, kn) == 0) {                                        \
        if (!v->seen_##field) {                                                                    \
            v->seen_##field = 1;                                                                   \
            v->field = s;                                                                          \
        }                                                                                          \
        return;                                                                                    \
    }
    JV_STR("k", k)
    JV_STR("job_id", job_id)
    JV_STR("state", state)
    JV_STR("ev", ev)
    JV_STR("snapshot", snapshot)
    JV_STR("hash", hash)
    JV_STR("appr_snapshot", appr_snapshot)
    JV_STR("op", op)
    JV_STR("wf", wf)
    JV_STR("attempt", attempt_str)
    JV_STR("decision", decision_str)
    JV_STR("appr", appr_str)
#undef JV_STR
}

static void jview_set_num(sim_jview *v, const char *k, size_t kn, double x)
{
#define JV_NUM(name, field, flag, dst)                                                                \
    if (kn == sizeof name - 1 && memcmp(k, name, kn) == 0) {                                        \
        if (!v->seen_##field) {                                                                    \
            v->seen_##field = 1;                                                                   \
            v->flag = 1;                                                                           \
            v->dst = x;                                                                            \
        }                                                                                          \
        return;                                                                                    \
    }
    JV_NUM("attempt", attempt_str, has_attempt, attempt_num)
    JV_NUM("decision", decision_str, has_decision, decision)
    JV_NUM("appr", appr_str, has_appr, appr)
#undef JV_NUM
    /* a number where a string is read: that string member is not a string */
    jview_set_str(v, k, kn, NULL);
}

/* The first byte at or after p that ends a plain string run: a quote, a
 * backslash or a control character (the terminating NUL is one). Eight
 * bytes at a time (cap_swar.h). The caller's buffer has 8 readable bytes
 * after its NUL. */
static const char *plain_run_end(const char *p)
{
    for (;;) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t bits = cap_swar_json_special_bits(x);
        if (bits) {
            int i = cap_swar_first(bits);
            if (i >= 0)
                return p + i;
            break;
        }
        p += 8;
    }
    while (*p != '"' && *p != '\\' && (unsigned char)*p >= 32)
        p++;
    return p;
}

/* Reads a record the way the scheduler writes it: one flat object of
 * "key":"string" and "key":integer members, no white space, no escape.
 * Fills v exactly as jview_from_cjson would from cJSON_Parse(line).
 * Returns 0 when the record is not of that simple form (the caller then
 * parses it with cJSON); the strings point into r->scratch. */
static int fast_read(sim_jview_reader *r, const char *line, sim_jview *v)
{
    size_t n = strlen(line);
    if (n + 9 > r->cap) { /* + 8: plain_run_end reads words */
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < n + 9)
            cap *= 2;
        char *b = realloc(r->scratch, cap);
        if (!b)
            return 0;
        r->scratch = b;
        r->cap = cap;
    }
    char *p = r->scratch;
    memcpy(p, line, n + 1);
    memset(v, 0, sizeof *v);
    v->attempt_num = NAN;
    if (*p++ != '{')
        return 0;
    if (*p == '}')
        return p[1] == 0;
    for (;;) {
        if (*p++ != '"')
            return 0;
        const char *key = p;
        p += plain_run_end(p) - p;
        if (*p != '"')
            return 0;
        size_t kn = (size_t)(p - key);
        p++;
        if (*p++ != ':')
            return 0;
        if (*p == '"') {
            char *s = ++p;
            p += plain_run_end(p) - p;
            if (*p != '"')
                return 0;
            *p++ = 0;
            jview_set_str(v, key, kn, s);
        } else {
            int neg = 0;
            if (*p == '-') {
                neg = 1;
                p++;
            }
            int64_t x = 0;
            int digits = 0;
            while (*p >= '0' && *p <= '9') {
                if (++digits > 15)
                    return 0;
                x = x * 10 + (*p - '0');
                p++;
            }
            if (!digits || (digits > 1 && p[-digits] == '0'))
                return 0;
            if (*p != ',' && *p != '}')
                return 0;
            jview_set_num(v, key, kn, neg ? -(double)x : (double)x);
        }
        if (*p == '}')
            break;
        if (*p++ != ',')
            return 0;
    }
    if (p[1] != 0)
        return 0;
    return 1;
}

int sim_jview_read(sim_jview_reader *r, const char *line, sim_jview *v)
{
    cJSON_Delete(r->parsed);
    r->parsed = NULL;
    if (fast_read(r, line, v))
        return 1;
    cJSON *o = cJSON_ParseWithOpts(line, NULL, 1); /* nothing may follow the object */
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return 0;
    }
    r->parsed = o;
    jview_from_cjson(v, o);
    return 1;
}

void sim_jview_reader_free(sim_jview_reader *r)
{
    if (!r)
        return;
    free(r->scratch);
    cJSON_Delete(r->parsed);
    memset(r, 0, sizeof *r);
}
