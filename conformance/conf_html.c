/* The HTML report (conf_html.h, docs/reports.md). */
#include "conf_html.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "conf_json.h"

/* ---- text ------------------------------------------------------------------ */

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* Escaped text, cut at max bytes on a UTF-8 boundary with "…". */
static void text_cut(conf_jw *w, const char *s, size_t max)
{
    s = nz(s);
    size_t n = strlen(s);
    if (n <= max) {
        conf_jw_xml(w, s);
        return;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    char *tmp = malloc(max + 1);
    if (!tmp) {
        w->failed = 1;
        return;
    }
    memcpy(tmp, s, max);
    tmp[max] = 0;
    conf_jw_xml(w, tmp);
    free(tmp);
    conf_jw_str(w, "\xE2\x80\xA6");
}

static void text(conf_jw *w, const char *s)
{
    text_cut(w, s, CONF_HTML_MAX_TEXT);
}

/* A fixed class name for a status (never model text). */
static const char *status_class(const char *st)
{
    st = nz(st);
    if (strcmp(st, "PASS") == 0)
        return "pass";
    if (strcmp(st, "FAIL") == 0)
        return "fail";
    if (strcmp(st, "ERROR") == 0)
        return "error";
    if (strcmp(st, "UNSUPPORTED") == 0)
        return "unsupported";
    if (strcmp(st, "N/A") == 0 || strcmp(st, "NA") == 0)
        return "na";
    return "other";
}

static int is_failing(const char *st)
{
    const char *c = status_class(st);
    return strcmp(c, "fail") == 0 || strcmp(c, "error") == 0;
}

static void td(conf_jw *w, const char *cls, const char *s)
{
    if (cls)
        conf_jw_printf(w, "<td class=\"%s\">", cls);
    else
        conf_jw_str(w, "<td>");
    text(w, s);
    conf_jw_str(w, "</td>");
}

static void td_num(conf_jw *w, size_t v)
{
    conf_jw_printf(w, "<td class=\"num\">%zu</td>", v);
}

static void fmt_time(int64_t t, char *buf, size_t n)
{
    uint64_t a = t < 0 ? (uint64_t)0 - (uint64_t)t : (uint64_t)t;
    snprintf(buf, n, "%s%" PRIu64 ".%03" PRIu64 "s", t < 0 ? "-" : "", a / 1000000000u,
             (a % 1000000000u) / 1000000u);
}

/* ---- sequence diagrams ---------------------------------------------------------- */

#define LANE_W 130
#define TIME_W 76
#define ROW_H 24
#define TOP 64
#define GAP 36

typedef struct {
    const char *name[CONF_HTML_MAX_LIFELINES];
    size_t n;
    int has_others;
} lanes;

static const char *rec_receiver(const conf_html_rec *r)
{
    return r->receiver && r->receiver[0] ? r->receiver : "(bus)";
}

static void lane_add(lanes *l, const char *name)
{
    name = nz(name);
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->name[i], name) == 0)
            return;
    if (l->n < CONF_HTML_MAX_LIFELINES - 1)
        l->name[l->n++] = name;
    else
        l->has_others = 1;
}

static size_t lane_of(const lanes *l, const char *name)
{
    name = nz(name);
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->name[i], name) == 0)
            return i;
    return l->n; /* "others" */
}

static size_t lane_count(const lanes *l)
{
    return l->n + (l->has_others ? 1 : 0);
}

static void lanes_from(lanes *l, const conf_html_rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lane_add(l, r[i].sender);
        lane_add(l, rec_receiver(&r[i]));
    }
}

/* The window of rows drawn: [*first, *first + *count). */
static void window(size_t n, long hl, size_t max, size_t *first, size_t *count)
{
    *first = 0;
    *count = n < max ? n : max;
    if (hl >= 0 && (size_t)hl >= *count && n > max) {
        size_t start = (size_t)hl - max / 2;
        if (start + max > n)
            start = n - max;
        *first = start;
    }
}

static void diagram(conf_jw *w, const lanes *l, double x0, const char *title,
                    const conf_html_rec *r, size_t n, long hl, size_t max, unsigned id)
{
    size_t nl = lane_count(l);
    double width = TIME_W + (double)nl * LANE_W;
    size_t first, count;
    window(n, hl, max, &first, &count);
    size_t rows = count + (first ? 1 : 0) + (first + count < n ? 1 : 0);
    double bottom = TOP + (double)(rows + 1) * ROW_H;

    conf_jw_printf(w, "<g transform=\"translate(%.0f,0)\">", x0);
    conf_jw_printf(w, "<text class=\"dtitle\" x=\"4\" y=\"16\">");
    text(w, title);
    conf_jw_printf(w, " (%zu packet%s)</text>", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < nl; i++) {
        double cx = TIME_W + (double)i * LANE_W + LANE_W / 2.0;
        conf_jw_printf(w, "<rect class=\"actor\" x=\"%.0f\" y=\"26\" width=\"%d\" height=\"22\"/>",
                       cx - (LANE_W - 14) / 2.0, LANE_W - 14);
        conf_jw_printf(w, "<text class=\"aname\" x=\"%.0f\" y=\"41\">", cx);
        text_cut(w, i < l->n ? l->name[i] : "others", 18);
        conf_jw_str(w, "</text>");
        conf_jw_printf(w, "<line class=\"life\" x1=\"%.0f\" y1=\"48\" x2=\"%.0f\" y2=\"%.0f\"/>", cx, cx,
                       bottom);
    }
    double y = TOP;
    if (first) {
        conf_jw_printf(w, "<text class=\"more\" x=\"4\" y=\"%.0f\">\xE2\x80\xA6 %zu earlier</text>",
                       y + 4, first);
        y += ROW_H;
    }
    for (size_t k = first; k < first + count; k++, y += ROW_H) {
        const conf_html_rec *e = &r[k];
        int is_hl = hl >= 0 && (size_t)hl == k;
        double xs = TIME_W + (double)lane_of(l, e->sender) * LANE_W + LANE_W / 2.0;
        double xr = TIME_W + (double)lane_of(l, rec_receiver(e)) * LANE_W + LANE_W / 2.0;
        if (is_hl)
            conf_jw_printf(w,
                           "<rect class=\"hl\" x=\"0\" y=\"%.0f\" width=\"%.0f\" height=\"%d\"/>",
                           y - ROW_H + 6, width, ROW_H);
        char t[40];
        fmt_time(e->time_ns, t, sizeof t);
        conf_jw_printf(w, "<text class=\"time\" x=\"4\" y=\"%.0f\">%s</text>", y, t);
        const char *cls = is_hl ? "arrow div" : "arrow";
        if (xs == xr)
            conf_jw_printf(w,
                           "<path class=\"%s\" d=\"M%.0f,%.0f h24 v8 h-22\" marker-end=\"url(#%s%u)\"/>",
                           cls, xs, y - 4, is_hl ? "ahd" : "ah", id);
        else
            conf_jw_printf(w,
                           "<line class=\"%s\" x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
                           "marker-end=\"url(#%s%u)\"/>",
                           cls, xs, y, xr + (xr > xs ? -4 : 4), y, is_hl ? "ahd" : "ah", id);
        double lx = xs == xr ? xs + 30 : (xs + xr) / 2;
        conf_jw_printf(w, "<text class=\"%s\" x=\"%.0f\" y=\"%.0f\"%s>", is_hl ? "label divl" : "label",
                       lx, y - 4, xs == xr ? " text-anchor=\"start\"" : "");
        text_cut(w, e->label && e->label[0] ? e->label : e->subject, CONF_HTML_MAX_LABEL);
        conf_jw_str(w, "<title>");
        text(w, e->subject);
        conf_jw_str(w, ": ");
        text(w, e->label);
        conf_jw_str(w, "</title></text>");
    }
    if (first + count < n)
        conf_jw_printf(w, "<text class=\"more\" x=\"4\" y=\"%.0f\">\xE2\x80\xA6 %zu more</text>",
                       y + 4, n - first - count);
    if (hl < 0 && n == 0)
        conf_jw_printf(w, "<text class=\"more\" x=\"4\" y=\"%.0f\">(nothing)</text>", y + 4);
    conf_jw_str(w, "</g>");
}

static double diagram_height(size_t n, long hl, size_t max)
{
    size_t first, count;
    window(n, hl, max, &first, &count);
    size_t rows = count + (first ? 1 : 0) + (first + count < n ? 1 : 0);
    return TOP + (double)(rows + 1) * ROW_H;
}

static void sequence(conf_jw *w, const conf_html_case *c, size_t max, unsigned id)
{
    lanes l = {0};
    lanes_from(&l, c->expected, c->n_expected);
    lanes_from(&l, c->observed, c->n_observed);
    long he = c->divergence ? c->divergence->expected_index : -1;
    long ho = c->divergence ? c->divergence->observed_index : -1;
    if (he >= (long)c->n_expected)
        he = -1;
    if (ho >= (long)c->n_observed)
        ho = -1;
    double dw = TIME_W + (double)lane_count(&l) * LANE_W;
    double h1 = diagram_height(c->n_expected, he, max), h2 = diagram_height(c->n_observed, ho, max);
    double h = h1 > h2 ? h1 : h2;
    conf_jw_printf(w,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"seq\" width=\"%.0f\" "
                   "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">",
                   2 * dw + GAP, h, 2 * dw + GAP, h);
    conf_jw_str(w, "<title>");
    text(w, c->id);
    conf_jw_str(w, ": golden trace beside the observed trace</title>");
    conf_jw_printf(w,
                   "<defs><marker id=\"ah%u\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" "
                   "refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#445\"/></marker>"
                   "<marker id=\"ahd%u\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" "
                   "orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#c0262d\"/></marker></defs>",
                   id, id);
    diagram(w, &l, 0, "golden", c->expected, c->n_expected, he, max, id);
    conf_jw_printf(w, "<line class=\"sep\" x1=\"%.0f\" y1=\"0\" x2=\"%.0f\" y2=\"%.0f\"/>",
                   dw + GAP / 2.0, dw + GAP / 2.0, h);
    diagram(w, &l, dw + GAP, "observed", c->observed, c->n_observed, ho, max, id);
    conf_jw_str(w, "</svg>");
}

/* ---- page -------------------------------------------------------------------------- */

static const char CSS[] =
    "body{font-family:system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}"
    "h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.2em;margin-top:28px}"
    "h3{font-size:1em;margin:18px 0 6px}"
    "p.gen{color:#5a6270;margin:0 0 16px}"
    "table{border-collapse:collapse;margin:6px 0 12px;font-size:.9em}"
    "th,td{border:1px solid #d4d8df;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#eef1f5}td.num{text-align:right}"
    "td.pass,span.pass{color:#17692b;font-weight:600}"
    "td.fail,span.fail,td.error,span.error{color:#b3171f;font-weight:600}"
    "td.unsupported,span.unsupported,td.na,span.na,td.other,span.other{color:#6b5a00}"
    "td.conformant{color:#17692b;font-weight:700}td.nonconformant{color:#b3171f;font-weight:700}"
    "div.case{border-left:4px solid #b3171f;padding:4px 12px;margin:14px 0;overflow-x:auto}"
    "ul.diff{font-family:ui-monospace,monospace;font-size:.85em}"
    "svg.seq{display:block;margin:8px 0}"
    "svg.seq text{font-family:ui-monospace,monospace;font-size:11px;fill:#1d2330}"
    "svg.seq text.label{text-anchor:middle}svg.seq text.aname{text-anchor:middle;font-weight:600}"
    "svg.seq text.dtitle{font-weight:700;font-size:12px}svg.seq text.time{fill:#6a7280}"
    "svg.seq text.more{fill:#6a7280;font-style:italic}"
    "svg.seq rect.actor{fill:#eef1f5;stroke:#8a93a3}svg.seq line.life{stroke:#c4cad4;stroke-dasharray:4 3}"
    "svg.seq line.sep{stroke:#d4d8df}"
    "svg.seq .arrow{stroke:#445;stroke-width:1.2;fill:none}"
    "svg.seq .arrow.div{stroke:#c0262d;stroke-width:2.2}"
    "svg.seq rect.hl{fill:#fde2e1}svg.seq text.divl{fill:#b3171f;font-weight:700}";

static void summary_table(conf_jw *w, const conf_html_page *p)
{
    conf_jw_str(w, "<h2 id=\"summary\">Summary</h2><table class=\"summary\"><thead><tr>"
                   "<th>adapter / implementation</th><th>role</th><th>profile</th><th>cases</th>"
                   "<th>pass</th><th>fail</th><th>error</th><th>unsupported</th><th>n/a</th>"
                   "<th>verdict</th></tr></thead><tbody>");
    for (size_t i = 0; i < p->n_reports; i++) {
        const conf_html_report *r = &p->reports[i];
        conf_jw_str(w, "<tr class=\"report\">");
        td(w, NULL, r->adapter);
        td(w, NULL, r->role);
        td(w, NULL, r->profile);
        td_num(w, r->total);
        td_num(w, r->pass);
        td_num(w, r->fail);
        td_num(w, r->error);
        td_num(w, r->unsupported);
        td_num(w, r->na);
        td(w, strcmp(nz(r->verdict), "CONFORMANT") == 0 ? "conformant" : "nonconformant",
           r->verdict);
        conf_jw_str(w, "</tr>");
    }
    conf_jw_str(w, "</tbody></table>");
}

static void report_section(conf_jw *w, const conf_html_page *p, size_t ri, unsigned *svg_id)
{
    const conf_html_report *r = &p->reports[ri];
    size_t max = p->max_arrows ? p->max_arrows : CONF_HTML_DEFAULT_ARROWS;
    conf_jw_printf(w, "<h2 id=\"report-%zu\">", ri + 1);
    text(w, r->adapter);
    conf_jw_str(w, " \xE2\x80\x94 ");
    text(w, r->profile);
    conf_jw_str(w, "</h2><table class=\"cases\"><thead><tr><th>case</th><th>status</th>"
                   "<th>role</th><th>required</th><th>spec clause(s)</th><th>detail</th></tr>"
                   "</thead><tbody>");
    for (size_t i = 0; i < r->n_cases; i++) {
        const conf_html_case *c = &r->cases[i];
        conf_jw_str(w, "<tr class=\"case\">");
        td(w, NULL, c->id);
        td(w, status_class(c->status), c->status);
        td(w, NULL, c->role);
        td(w, NULL, c->required ? "yes" : "no");
        td(w, NULL, c->clauses);
        td(w, NULL, c->detail);
        conf_jw_str(w, "</tr>");
    }
    conf_jw_str(w, "</tbody></table>");
    for (size_t i = 0; i < r->n_cases; i++) {
        const conf_html_case *c = &r->cases[i];
        if (!is_failing(c->status) || (c->n_expected == 0 && c->n_observed == 0))
            continue;
        conf_jw_str(w, "<div class=\"case\"><h3>");
        text(w, c->id);
        conf_jw_printf(w, " <span class=\"%s\">", status_class(c->status));
        text(w, c->status);
        conf_jw_str(w, "</span></h3><p>");
        text(w, c->clauses);
        conf_jw_str(w, "</p>");
        sequence(w, c, max, (*svg_id)++);
        const conf_html_divergence *d = c->divergence;
        if (d) {
            conf_jw_str(w, "<p class=\"divergence\">first divergence: ");
            if (d->expected_index >= 0)
                conf_jw_printf(w, "golden packet %ld", d->expected_index);
            else
                conf_jw_str(w, "no golden packet");
            conf_jw_str(w, ", ");
            if (d->observed_index >= 0)
                conf_jw_printf(w, "observed packet %ld", d->observed_index);
            else
                conf_jw_str(w, "nothing observed");
            conf_jw_str(w, "</p>");
            if (d->n_diff) {
                conf_jw_str(w, "<ul class=\"diff\">");
                for (size_t k = 0; k < d->n_diff; k++) {
                    conf_jw_str(w, "<li>");
                    text(w, d->diff[k]);
                    conf_jw_str(w, "</li>");
                }
                conf_jw_str(w, "</ul>");
            }
        }
        conf_jw_str(w, "</div>");
    }
}

static void coverage_table(conf_jw *w, const conf_html_page *p)
{
    conf_jw_str(w, "<h2 id=\"coverage\">Spec coverage</h2><table class=\"coverage\"><thead><tr>"
                   "<th>behaviour</th><th>spec</th><th>cases and their status in this run</th>"
                   "</tr></thead><tbody>");
    for (size_t i = 0; i < p->n_coverage; i++) {
        const conf_html_behavior *b = &p->coverage[i];
        conf_jw_str(w, "<tr class=\"cov\">");
        td(w, NULL, b->behavior);
        td(w, NULL, b->spec);
        conf_jw_str(w, "<td>");
        if (b->gated && b->gated[0]) {
            conf_jw_str(w, "<span class=\"other\">gated: ");
            text(w, b->gated);
            conf_jw_str(w, "</span> ");
            text(w, b->reason);
        }
        for (size_t k = 0; k < b->n_cases; k++) {
            const char *id = nz(b->cases[k]);
            conf_jw_str(w, k ? "<br/>" : "");
            text(w, id);
            size_t runs = 0;
            for (size_t ri = 0; ri < p->n_reports; ri++)
                for (size_t ci = 0; ci < p->reports[ri].n_cases; ci++) {
                    const conf_html_case *c = &p->reports[ri].cases[ci];
                    if (strcmp(nz(c->id), id) != 0)
                        continue;
                    conf_jw_printf(w, " <span class=\"%s\">", status_class(c->status));
                    text(w, c->status);
                    if (p->n_reports > 1) {
                        conf_jw_str(w, " (");
                        text(w, p->reports[ri].adapter);
                        conf_jw_str(w, ")");
                    }
                    conf_jw_str(w, "</span>");
                    runs++;
                }
            if (!runs)
                conf_jw_str(w, " <span class=\"other\">not run</span>");
        }
        if (!b->n_cases && !(b->gated && b->gated[0]))
            conf_jw_str(w, "<span class=\"other\">no case</span>");
        conf_jw_str(w, "</td></tr>");
    }
    conf_jw_str(w, "</tbody></table>");
    if (!p->n_own)
        return;
    conf_jw_str(w, "<h3>capsim's own cases</h3><table class=\"own\"><thead><tr><th>case</th>"
                   "<th>spec clause(s)</th><th>status</th></tr></thead><tbody>");
    for (size_t i = 0; i < p->n_own; i++) {
        const conf_html_own_case *o = &p->own[i];
        conf_jw_str(w, "<tr class=\"owncase\">");
        td(w, NULL, o->id);
        td(w, NULL, o->clauses);
        if (o->status && o->status[0])
            td(w, status_class(o->status), o->status);
        else
            td(w, "other", "not run");
        conf_jw_str(w, "</tr>");
    }
    conf_jw_str(w, "</tbody></table>");
}

int conf_html_render(const conf_html_page *p, char **out, size_t *len)
{
    conf_jw w = {0};
    conf_jw_str(&w, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/><title>");
    text(&w, p->title);
    conf_jw_str(&w, "</title><style>");
    conf_jw_str(&w, CSS);
    conf_jw_str(&w, "</style></head>\n<body><h1>");
    text(&w, p->title);
    conf_jw_str(&w, "</h1><p class=\"gen\">");
    text(&w, p->generated_by);
    conf_jw_str(&w, "</p>\n");
    summary_table(&w, p);
    unsigned svg_id = 1;
    for (size_t i = 0; i < p->n_reports; i++) {
        report_section(&w, p, i, &svg_id);
        conf_jw_str(&w, "\n");
    }
    coverage_table(&w, p);
    conf_jw_str(&w, "\n</body></html>\n");
    return conf_jw_take(&w, out, len);
}

/* ---- coverage.json -------------------------------------------------------------------- */

#define COV_MAX_ITEMS 1000
#define COV_MAX_CASES 1000

static char *keep(conf_html_coverage *c, const char *s, int *ok)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    char **grown = d ? realloc(c->strings, (c->n_strings + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(d);
        *ok = 0;
        return NULL;
    }
    memcpy(d, s, n);
    c->strings = grown;
    c->strings[c->n_strings++] = d;
    return d;
}

static int cov_err(char *err, size_t n, const char *fmt, size_t i, const char *key)
{
    snprintf(err, n, fmt, i, key);
    return CAP_EJSON;
}

int conf_html_coverage_parse(const char *text_, size_t len, conf_html_coverage *out, char *err,
                             size_t n)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    int rc = conf_json_parse(text_, len, &root, err, n);
    if (rc)
        return rc;
    const cJSON *beh = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "behaviors") : NULL;
    if (!cJSON_IsArray(beh)) {
        cJSON_Delete(root);
        snprintf(err, n, "$.behaviors: missing or not an array");
        return CAP_EJSON;
    }
    size_t nb = (size_t)cJSON_GetArraySize(beh), total_cases = 0;
    if (nb > COV_MAX_ITEMS) {
        cJSON_Delete(root);
        snprintf(err, n, "$.behaviors: %zu entries, over the bound of %d", nb, COV_MAX_ITEMS);
        return CAP_EJSON;
    }
    size_t i = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, beh)
    {
        static const char *const known[] = {"behavior", "spec", "cases", "gated", "reason"};
        if (!cJSON_IsObject(b)) {
            rc = cov_err(err, n, "$.behaviors[%zu]%s: not an object", i, "");
            goto fail;
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, b)
        {
            int found = 0;
            for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
                found |= strcmp(m->string, known[k]) == 0;
            if (!found) {
                rc = cov_err(err, n, "$.behaviors[%zu].%s: unknown key", i, m->string);
                goto fail;
            }
            if (strcmp(m->string, "cases") == 0) {
                if (!cJSON_IsArray(m) || (size_t)cJSON_GetArraySize(m) > COV_MAX_CASES) {
                    rc = cov_err(err, n, "$.behaviors[%zu].%s: not an array of at most 1000 ids", i,
                                 "cases");
                    goto fail;
                }
                const cJSON *s;
                cJSON_ArrayForEach(s, m) if (!cJSON_IsString(s))
                {
                    rc = cov_err(err, n, "$.behaviors[%zu].%s: a case id is not a string", i,
                                 "cases");
                    goto fail;
                }
                total_cases += (size_t)cJSON_GetArraySize(m);
            } else if (!cJSON_IsString(m)) {
                rc = cov_err(err, n, "$.behaviors[%zu].%s: not a string", i, m->string);
                goto fail;
            }
        }
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(b, "behavior"))) {
            rc = cov_err(err, n, "$.behaviors[%zu].%s: missing", i, "behavior");
            goto fail;
        }
        i++;
    }
    out->items = calloc(nb ? nb : 1, sizeof *out->items);
    out->case_ptrs = calloc(total_cases ? total_cases : 1, sizeof *out->case_ptrs);
    if (!out->items || !out->case_ptrs) {
        rc = CAP_ENOMEM;
        goto fail;
    }
    int ok = 1;
    size_t used = 0;
    cJSON_ArrayForEach(b, beh)
    {
        conf_html_behavior *it = &out->items[out->n++];
        const cJSON *g;
        it->behavior = keep(out, cJSON_GetObjectItemCaseSensitive(b, "behavior")->valuestring, &ok);
        g = cJSON_GetObjectItemCaseSensitive(b, "spec");
        it->spec = g ? keep(out, g->valuestring, &ok) : NULL;
        g = cJSON_GetObjectItemCaseSensitive(b, "gated");
        it->gated = g ? keep(out, g->valuestring, &ok) : NULL;
        g = cJSON_GetObjectItemCaseSensitive(b, "reason");
        it->reason = g ? keep(out, g->valuestring, &ok) : NULL;
        g = cJSON_GetObjectItemCaseSensitive(b, "cases");
        it->cases = out->case_ptrs + used;
        const cJSON *s;
        if (g)
            cJSON_ArrayForEach(s, g) out->case_ptrs[used + it->n_cases++] = keep(out, s->valuestring, &ok);
        used += it->n_cases;
    }
    if (!ok) {
        rc = CAP_ENOMEM;
        goto fail;
    }
    cJSON_Delete(root);
    return CAP_OK;
fail:
    cJSON_Delete(root);
    conf_html_coverage_free(out);
    if (rc == CAP_ENOMEM)
        snprintf(err, n, "out of memory");
    return rc;
}

void conf_html_coverage_free(conf_html_coverage *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_strings; i++)
        free(c->strings[i]);
    free(c->strings);
    free(c->items);
    free((void *)c->case_ptrs);
    memset(c, 0, sizeof *c);
}
