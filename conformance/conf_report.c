/* Run reports: verdict and renderings. */
#include "conf_report.h"

#include <stdlib.h>
#include <string.h>

#include "cap_error.h"

static char *sdup(const char *s, int *ok)
{
    char *d = strdup(s ? s : "");
    if (!d)
        *ok = 0;
    return d;
}

conf_report *conf_report_new(const char *adapter, const char *profile, const char *tool_version)
{
    conf_report *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    int ok = 1;
    r->adapter = sdup(adapter, &ok);
    r->profile = sdup(profile, &ok);
    r->tool_version = sdup(tool_version, &ok);
    r->sdk = sdup("", &ok);
    r->role = sdup("", &ok);
    r->transport = sdup("", &ok);
    if (!ok) {
        conf_report_free(r);
        return NULL;
    }
    return r;
}

static void case_free(conf_case *c)
{
    free(c->id);
    free(c->profile);
    free(c->role);
    free(c->detail);
    conf_kv_free(c->evidence, c->n_evidence);
}

void conf_report_free(conf_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        case_free(&r->cases[i]);
    free(r->cases);
    free(r->adapter);
    free(r->sdk);
    free(r->role);
    free(r->profile);
    free(r->transport);
    free(r->tool_version);
    free(r);
}

int conf_report_set_handshake(conf_report *r, const char *sdk, const char *role, const char *transport)
{
    int ok = 1;
    char *a = sdup(sdk, &ok), *b = sdup(role, &ok), *c = sdup(transport, &ok);
    if (!ok) {
        free(a);
        free(b);
        free(c);
        return CAP_ENOMEM;
    }
    free(r->sdk);
    free(r->role);
    free(r->transport);
    r->sdk = a;
    r->role = b;
    r->transport = c;
    return CAP_OK;
}

int conf_report_add(conf_report *r, const char *id, const char *profile, const char *role, int required,
                    int applicable, conf_status status, const char *detail, int64_t duration_ms,
                    const conf_kv *evidence, size_t n_evidence)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        conf_case *nb = realloc(r->cases, nc * sizeof *nb);
        if (!nb)
            return CAP_ENOMEM;
        r->cases = nb;
        r->cap = nc;
    }
    conf_case c = {0};
    int ok = 1;
    c.id = sdup(id, &ok);
    c.profile = sdup(profile, &ok);
    c.role = sdup(role, &ok);
    c.detail = sdup(detail, &ok);
    c.required = required;
    c.applicable = applicable;
    c.status = status;
    c.duration_ms = duration_ms < 0 ? 0 : duration_ms;
    if (ok && n_evidence) {
        c.evidence = calloc(n_evidence, sizeof *c.evidence);
        if (!c.evidence)
            ok = 0;
        for (size_t i = 0; ok && i < n_evidence; i++) {
            c.evidence[i].key = sdup(evidence[i].key, &ok);
            c.evidence[i].value = sdup(evidence[i].value, &ok);
            c.n_evidence = i + 1;
        }
        conf_kv_sort(c.evidence, c.n_evidence);
    }
    if (!ok) {
        case_free(&c);
        return CAP_ENOMEM;
    }
    r->cases[r->n++] = c;
    return CAP_OK;
}

void conf_report_summarize(const conf_report *r, conf_summary *s)
{
    memset(s, 0, sizeof *s);
    int bad = 0;
    for (size_t i = 0; i < r->n; i++) {
        const conf_case *c = &r->cases[i];
        s->total++;
        switch (c->status) {
        case CONF_ST_PASS: s->pass++; break;
        case CONF_ST_FAIL: s->fail++; break;
        case CONF_ST_ERROR: s->error++; break;
        case CONF_ST_UNSUPPORTED: s->unsupported++; break;
        case CONF_ST_NA: s->na++; break;
        }
        if (c->applicable)
            s->applicable++;
        if (c->applicable && c->required && c->status != CONF_ST_PASS)
            bad = 1;
    }
    s->conformant = !bad && s->applicable > 0;
}

static void jkey(conf_jw *w, int indent, const char *key)
{
    conf_jw_str(w, "\n");
    for (int i = 0; i < indent; i++)
        conf_jw_str(w, "  ");
    conf_jw_quote(w, key);
    conf_jw_str(w, ": ");
}

int conf_report_json(const conf_report *r, char **out, size_t *len)
{
    conf_jw w = {0};
    conf_summary s;
    conf_report_summarize(r, &s);
    conf_jw_str(&w, "{");
    jkey(&w, 1, "adapter");
    conf_jw_quote(&w, r->adapter);
    if (r->sdk[0]) {
        conf_jw_str(&w, ",");
        jkey(&w, 1, "sdk");
        conf_jw_quote(&w, r->sdk);
    }
    conf_jw_str(&w, ",");
    jkey(&w, 1, "role");
    conf_jw_quote(&w, r->role);
    conf_jw_str(&w, ",");
    jkey(&w, 1, "profile");
    conf_jw_quote(&w, r->profile);
    if (r->transport[0]) {
        conf_jw_str(&w, ",");
        jkey(&w, 1, "transport");
        conf_jw_quote(&w, r->transport);
    }
    conf_jw_str(&w, ",");
    jkey(&w, 1, "toolVersion");
    conf_jw_quote(&w, r->tool_version);
    conf_jw_str(&w, ",");
    jkey(&w, 1, "summary");
    conf_jw_str(&w, "{");
    jkey(&w, 2, "total");
    conf_jw_printf(&w, "%zu,", s.total);
    jkey(&w, 2, "pass");
    conf_jw_printf(&w, "%zu,", s.pass);
    jkey(&w, 2, "fail");
    conf_jw_printf(&w, "%zu,", s.fail);
    jkey(&w, 2, "error");
    conf_jw_printf(&w, "%zu,", s.error);
    jkey(&w, 2, "unsupported");
    conf_jw_printf(&w, "%zu,", s.unsupported);
    jkey(&w, 2, "na");
    conf_jw_printf(&w, "%zu,", s.na);
    jkey(&w, 2, "conformant");
    conf_jw_str(&w, s.conformant ? "true" : "false");
    conf_jw_str(&w, "\n  },");
    jkey(&w, 1, "cases");
    if (r->n == 0)
        conf_jw_str(&w, "[]");
    else
        conf_jw_str(&w, "[");
    for (size_t i = 0; i < r->n; i++) {
        const conf_case *c = &r->cases[i];
        conf_jw_str(&w, i ? ",\n    {" : "\n    {");
        jkey(&w, 3, "id");
        conf_jw_quote(&w, c->id);
        conf_jw_str(&w, ",");
        jkey(&w, 3, "profile");
        conf_jw_quote(&w, c->profile);
        conf_jw_str(&w, ",");
        jkey(&w, 3, "role");
        conf_jw_quote(&w, c->role);
        conf_jw_str(&w, ",");
        jkey(&w, 3, "required");
        conf_jw_str(&w, c->required ? "true," : "false,");
        jkey(&w, 3, "applicable");
        conf_jw_str(&w, c->applicable ? "true," : "false,");
        jkey(&w, 3, "status");
        conf_jw_quote(&w, conf_status_name(c->status));
        conf_jw_str(&w, ",");
        if (c->detail && c->detail[0]) {
            jkey(&w, 3, "detail");
            conf_jw_quote(&w, c->detail);
            conf_jw_str(&w, ",");
        }
        jkey(&w, 3, "durationMs");
        conf_jw_printf(&w, "%lld", (long long)c->duration_ms);
        if (c->n_evidence) {
            conf_jw_str(&w, ",");
            jkey(&w, 3, "evidence");
            conf_jw_str(&w, "{");
            for (size_t k = 0; k < c->n_evidence; k++) {
                if (k)
                    conf_jw_str(&w, ",");
                jkey(&w, 4, c->evidence[k].key);
                conf_jw_quote(&w, c->evidence[k].value);
            }
            conf_jw_str(&w, "\n      }");
        }
        conf_jw_str(&w, "\n    }");
    }
    if (r->n)
        conf_jw_str(&w, "\n  ]");
    conf_jw_str(&w, "\n}\n");
    return conf_jw_take(&w, out, len);
}

int conf_report_junit(const conf_report *r, char **out, size_t *len)
{
    conf_jw w = {0};
    size_t failures = 0, errors = 0, skipped = 0;
    for (size_t i = 0; i < r->n; i++) {
        const conf_case *c = &r->cases[i];
        if (!c->applicable || c->status == CONF_ST_NA)
            skipped++;
        else if (c->status == CONF_ST_ERROR)
            errors++;
        else if (c->status == CONF_ST_FAIL || c->status == CONF_ST_UNSUPPORTED)
            failures++;
    }
    conf_jw_str(&w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"cap-tck.");
    conf_jw_xml(&w, r->profile);
    conf_jw_printf(&w, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\">", r->n, failures,
                   errors, skipped);
    for (size_t i = 0; i < r->n; i++) {
        const conf_case *c = &r->cases[i];
        conf_jw_str(&w, "\n  <testcase name=\"");
        conf_jw_xml(&w, c->id);
        conf_jw_str(&w, "\" classname=\"");
        conf_jw_xml(&w, c->profile);
        conf_jw_printf(&w, "\" time=\"%lld.%03lld\"", (long long)(c->duration_ms / 1000),
                       (long long)(c->duration_ms % 1000));
        const char *detail = c->detail ? c->detail : "";
        if (!c->applicable || c->status == CONF_ST_NA) {
            conf_jw_str(&w, ">\n    <skipped message=\"N/A\"></skipped>\n  </testcase>");
        } else if (c->status == CONF_ST_ERROR) {
            conf_jw_str(&w, ">\n    <error message=\"");
            conf_jw_xml(&w, detail);
            conf_jw_str(&w, "\" type=\"ERROR\"></error>\n  </testcase>");
        } else if (c->status == CONF_ST_FAIL || c->status == CONF_ST_UNSUPPORTED) {
            conf_jw_str(&w, ">\n    <failure message=\"");
            conf_jw_xml(&w, detail);
            conf_jw_printf(&w, "\" type=\"%s\"></failure>\n  </testcase>", conf_status_name(c->status));
        } else {
            conf_jw_str(&w, "></testcase>");
        }
    }
    conf_jw_str(&w, "\n</testsuite>\n");
    return conf_jw_take(&w, out, len);
}

int conf_report_summary_line(const conf_report *r, char **out)
{
    conf_summary s;
    conf_report_summarize(r, &s);
    conf_jw w = {0};
    conf_jw_printf(&w, "%s [%s] %s: %zu cases  pass=%zu fail=%zu error=%zu unsupported=%zu na=%zu\n",
                   r->adapter, r->profile, s.conformant ? "CONFORMANT" : "NON-CONFORMANT", s.total, s.pass,
                   s.fail, s.error, s.unsupported, s.na);
    return conf_jw_take(&w, out, NULL);
}
