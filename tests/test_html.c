/* The HTML report: a page with passing and failing cases is well-formed
 * XML (checked by a small strict reader below), escapes every model
 * string, draws one SVG per failing case with its divergence highlighted,
 * has one coverage row per behaviour of the upstream coverage map, and
 * refers to no network resource. */
#include "testutil.h"

#include "cap_error.h"
#include "conf_html.h"

#define COVERAGE_JSON "../shared/tck/coverage.json"

/* ---- a strict, small XML well-formedness reader ---------------------------- */

typedef struct {
    size_t elements;
    size_t svg;             /* <svg> elements */
    size_t svg_with_div;    /* <svg> elements holding an element of class "arrow div" */
    size_t cov_rows;        /* <tr class="cov"> */
    size_t case_rows;       /* <tr class="case"> */
    size_t li_diff;         /* <li> inside <ul class="diff"> */
    size_t http_refs;       /* "http://" or "https://" anywhere */
    size_t http_svg_ns;     /* of which the SVG namespace attribute */
    char err[256];
} xml_stats;

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == ':' || c == '.';
}

/* Checks text between markup: no '<', '&' only as a known entity, no '>'
 * (the renderer escapes it too). Returns 0 or -1. */
static int check_chars(const char *s, size_t n, xml_stats *st, int attr)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '<' || (s[i] == '>' && !attr) || (attr && s[i] == '"')) {
            snprintf(st->err, sizeof st->err, "raw '%c' in %s at \"%.20s\"", s[i],
                     attr ? "an attribute" : "text", s + i);
            return -1;
        }
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t' && s[i] != '\r') {
            snprintf(st->err, sizeof st->err, "control character in text");
            return -1;
        }
        if (s[i] != '&')
            continue;
        static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
        int ok = 0;
        for (size_t k = 0; k < 5; k++)
            if (strncmp(s + i, ents[k], strlen(ents[k])) == 0 && i + strlen(ents[k]) <= n)
                ok = 1;
        if (!ok && s[i + 1] == '#') {
            size_t j = i + 2;
            int hex = s[j] == 'x';
            j += hex;
            size_t digits = 0;
            while (j < n && (hex ? strchr("0123456789abcdefABCDEF", s[j]) != NULL
                                 : (s[j] >= '0' && s[j] <= '9')) && s[j]) {
                j++;
                digits++;
            }
            ok = digits > 0 && j < n && s[j] == ';';
        }
        if (!ok) {
            snprintf(st->err, sizeof st->err, "bare '&' at \"%.20s\"", s + i);
            return -1;
        }
    }
    return 0;
}

#define MAX_DEPTH 64

static int xml_check(const char *doc, xml_stats *st)
{
    memset(st, 0, sizeof *st);
    for (const char *h = doc; (h = strstr(h, "://")) != NULL; h += 3) {
        if ((h - doc >= 4 && strncmp(h - 4, "http", 4) == 0) ||
            (h - doc >= 5 && strncmp(h - 5, "https", 5) == 0)) {
            st->http_refs++;
            if (h - doc >= 11 && strncmp(h - 11, "xmlns=\"http://www.w3.org/2000/svg\"", 34) == 0)
                st->http_svg_ns++;
        }
    }
    char stack[MAX_DEPTH][32];
    int depth = 0, in_diff = 0, svg_depth = -1, svg_has_div = 0;
    const char *p = doc;
    if (strncmp(p, "<!DOCTYPE html>", 15) != 0) {
        snprintf(st->err, sizeof st->err, "no doctype");
        return -1;
    }
    p += 15;
    int root_closed = 0;
    while (*p) {
        const char *lt = strchr(p, '<');
        size_t tn = lt ? (size_t)(lt - p) : strlen(p);
        if (check_chars(p, tn, st, 0) != 0)
            return -1;
        if ((depth == 0 && root_closed) && strspn(p, " \n\t\r") < tn) {
            snprintf(st->err, sizeof st->err, "text after the root element");
            return -1;
        }
        if (!lt)
            break;
        p = lt + 1;
        int closing = *p == '/';
        p += closing;
        const char *name = p;
        while (name_char(*p))
            p++;
        size_t nl = (size_t)(p - name);
        if (nl == 0 || nl >= 32) {
            snprintf(st->err, sizeof st->err, "bad tag name at \"%.20s\"", name);
            return -1;
        }
        char tag[32];
        memcpy(tag, name, nl);
        tag[nl] = 0;
        int is_div_attr = 0, cls_cov = 0, cls_case = 0, cls_diff = 0;
        /* attributes */
        while (1) {
            while (*p == ' ' || *p == '\n')
                p++;
            if (*p == '>' || (*p == '/' && p[1] == '>'))
                break;
            if (closing) {
                snprintf(st->err, sizeof st->err, "attribute in </%s>", tag);
                return -1;
            }
            const char *an = p;
            while (name_char(*p))
                p++;
            if (p == an || *p != '=' || p[1] != '"') {
                snprintf(st->err, sizeof st->err, "bad attribute in <%s> at \"%.20s\"", tag, an);
                return -1;
            }
            size_t anl = (size_t)(p - an);
            p += 2;
            const char *q = strchr(p, '"');
            if (!q) {
                snprintf(st->err, sizeof st->err, "unterminated attribute");
                return -1;
            }
            if (check_chars(p, (size_t)(q - p), st, 1) != 0)
                return -1;
            if (anl == 5 && strncmp(an, "class", 5) == 0) {
                size_t vl = (size_t)(q - p);
                is_div_attr = vl == 9 && strncmp(p, "arrow div", 9) == 0;
                cls_cov = vl == 3 && strncmp(p, "cov", 3) == 0;
                cls_case = vl == 4 && strncmp(p, "case", 4) == 0;
                cls_diff = vl == 4 && strncmp(p, "diff", 4) == 0;
            }
            p = q + 1;
        }
        int self = *p == '/';
        p += self ? 2 : 1;
        if (closing) {
            if (depth == 0 || strcmp(stack[depth - 1], tag) != 0) {
                snprintf(st->err, sizeof st->err, "</%s> closes <%s>", tag,
                         depth ? stack[depth - 1] : "(nothing)");
                return -1;
            }
            depth--;
            if (strcmp(tag, "ul") == 0 && in_diff == depth + 1)
                in_diff = 0;
            if (depth == svg_depth) {
                st->svg_with_div += svg_has_div;
                svg_depth = -1;
            }
            if (depth == 0)
                root_closed = 1;
            continue;
        }
        if (depth == 0 && root_closed) {
            snprintf(st->err, sizeof st->err, "a second root element <%s>", tag);
            return -1;
        }
        st->elements++;
        if (strcmp(tag, "svg") == 0) {
            st->svg++;
            svg_depth = depth;
            svg_has_div = 0;
        }
        if (svg_depth >= 0 && is_div_attr)
            svg_has_div = 1;
        if (strcmp(tag, "tr") == 0 && cls_cov)
            st->cov_rows++;
        if (strcmp(tag, "tr") == 0 && cls_case)
            st->case_rows++;
        if (strcmp(tag, "li") == 0 && in_diff)
            st->li_diff++;
        if (self)
            continue;
        if (depth >= MAX_DEPTH) {
            snprintf(st->err, sizeof st->err, "too deep");
            return -1;
        }
        snprintf(stack[depth++], sizeof stack[0], "%s", tag);
        if (strcmp(tag, "ul") == 0 && cls_diff)
            in_diff = depth;
    }
    if (depth != 0 || !root_closed) {
        snprintf(st->err, sizeof st->err, "unclosed <%s>", depth ? stack[depth - 1] : "html");
        return -1;
    }
    return 0;
}

/* ---- the model ------------------------------------------------------------------ */

static const conf_html_rec GOLDEN[] = {
    {1000000, "gateway", "", "sys.job.submit", "JobRequest job-1"},
    {2000000, "scheduler", "w-1", "worker.w-1.jobs", "JobRequest job-1 a1"},
    {3000000, "w-1", "", "sys.job.result", "JobResult FAILED_RETRYABLE job-1 a1"},
    {4000000, "scheduler", "w-1", "worker.w-1.jobs", "JobRequest job-1 a2"},
    {5000000, "w-1", "", "sys.job.result", "JobResult SUCCEEDED job-1 a2"},
};

static const conf_html_rec OBSERVED[] = {
    {1000000, "gateway", "", "sys.job.submit", "JobRequest job-1"},
    {2100000, "sched<x>", "w-1", "worker.w-1.jobs", "JobRequest job-1 a1 & \"quoted\""},
    {3000000, "w-1", "", "sys.job.result", "JobResult FAILED_FATAL job-1 a1"},
    {3500000, "w-1", "w-1", "local", "self <loop>"},
};

static const char *const DIFF[] = {
    "$.jobResult.status: \"JOB_STATUS_FAILED_RETRYABLE\" \xE2\x86\x92 \"JOB_STATUS_FAILED_FATAL\"",
    "$.jobResult.errorMessage: \"\" \xE2\x86\x92 \"<script>alert(1)</script> & more\"",
};

static const conf_html_divergence DIV = {.expected_index = 2, .observed_index = 2, .diff = DIFF,
                                         .n_diff = 2};

/* A long trace for the arrow cap: divergence at 150 of 200. */
static conf_html_rec LONG_G[200], LONG_O[200];
static const conf_html_divergence LONG_DIV = {.expected_index = 150, .observed_index = 150};

static void fill_long(void)
{
    for (int i = 0; i < 200; i++) {
        LONG_G[i] = (conf_html_rec){(int64_t)i * 1000000, i % 2 ? "w-1" : "scheduler",
                                    i % 2 ? "" : "w-1", "x", "Heartbeat"};
        LONG_O[i] = LONG_G[i];
    }
    LONG_O[150].label = "Heartbeat (late)";
}

static conf_html_case CASES_A[4];
static conf_html_case CASES_B[2];
static conf_html_report REPORTS[2];

static void build(conf_html_page *page, const conf_html_coverage *cov)
{
    fill_long();
    CASES_A[0] = (conf_html_case){.id = "lifecycle/cp-pending-to-scheduled", .status = "PASS",
                                  .role = "control-plane", .required = 1,
                                  .clauses = "cap-spec 07 L22", .detail = ""};
    CASES_A[1] = (conf_html_case){.id = "golden/retry-then-succeed", .status = "FAIL",
                                  .role = "control-plane", .required = 1,
                                  .clauses = "cap-spec 07 L52; cap-spec 19",
                                  .detail = "status differs <b>bold</b> & co",
                                  .expected = GOLDEN, .n_expected = 5, .observed = OBSERVED,
                                  .n_observed = 4, .divergence = &DIV};
    CASES_A[2] = (conf_html_case){.id = "golden/long", .status = "ERROR", .role = "worker",
                                  .required = 0, .clauses = "cap-spec 05", .detail = "late",
                                  .expected = LONG_G, .n_expected = 200, .observed = LONG_O,
                                  .n_observed = 200, .divergence = &LONG_DIV};
    /* failing but without traces: no diagram */
    CASES_A[3] = (conf_html_case){.id = "malformed/truncated-wire", .status = "FAIL",
                                  .role = "worker", .required = 1, .clauses = "cap-spec 02",
                                  .detail = "adapter crashed"};
    CASES_B[0] = (conf_html_case){.id = "lifecycle/cp-pending-to-scheduled", .status = "PASS",
                                  .role = "control-plane", .required = 1, .clauses = "cap-spec 07"};
    CASES_B[1] = (conf_html_case){.id = "negotiation/selects-highest-common-version",
                                  .status = "UNSUPPORTED", .role = "worker", .required = 0,
                                  .clauses = "cap-spec 14 L76"};
    REPORTS[0] = (conf_html_report){.adapter = "vendor-sdk <1.2>", .role = "control-plane",
                                    .profile = "core", .verdict = "NON-CONFORMANT", .total = 4,
                                    .pass = 1, .fail = 2, .error = 1, .cases = CASES_A,
                                    .n_cases = 4};
    REPORTS[1] = (conf_html_report){.adapter = "reference", .role = "worker", .profile = "core",
                                    .verdict = "CONFORMANT", .total = 2, .pass = 1,
                                    .unsupported = 1, .cases = CASES_B, .n_cases = 2};
    static const conf_html_own_case OWN[] = {
        {"golden/retry-then-succeed", "cap-spec 07 L52", "FAIL"},
        {"sim/no-backward", "cap-spec 07 L48", NULL},
    };
    *page = (conf_html_page){.title = "CAP conformance <run>",
                             .generated_by = "capsim test on 2026-11-21 & later",
                             .reports = REPORTS,
                             .n_reports = 2,
                             .coverage = cov->items,
                             .n_coverage = cov->n,
                             .own = OWN,
                             .n_own = 2,
                             .max_arrows = 40};
}

static void load_coverage(conf_html_coverage *cov)
{
    size_t len;
    uint8_t *text = tu_read_file(COVERAGE_JSON, &len);
    char err[256];
    int rc = conf_html_coverage_parse((const char *)text, len, cov, err, sizeof err);
    if (rc)
        fail_msg("coverage.json: %s", err);
    free(text);
}

static void test_page_structure(void **state)
{
    (void)state;
    conf_html_coverage cov;
    load_coverage(&cov);
    assert_true(cov.n >= 10);
    conf_html_page page;
    build(&page, &cov);
    char *html;
    size_t len;
    assert_int_equal(conf_html_render(&page, &html, &len), CAP_OK);
    assert_int_equal(strlen(html), len);

    xml_stats st;
    if (xml_check(html, &st) != 0)
        fail_msg("not well-formed: %s", st.err);
    /* one SVG per failing case with traces, each with a highlighted divergence */
    assert_int_equal(st.svg, 2);
    assert_int_equal(st.svg_with_div, 2);
    /* one coverage row per behaviour in coverage.json */
    assert_int_equal(st.cov_rows, cov.n);
    assert_int_equal(st.case_rows, 6);
    assert_int_equal(st.li_diff, 2);
    /* no network resource: the only URL is the SVG namespace */
    assert_int_equal(st.http_refs, st.http_svg_ns);
    assert_int_equal(st.http_svg_ns, 2);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, "src="));
    /* escaped model text */
    assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
    assert_non_null(strstr(html, "vendor-sdk &lt;1.2&gt;"));
    assert_non_null(strstr(html, "CAP conformance &lt;run&gt;"));
    /* arrow cap: 200 packets drawn as a window of 40 around the divergence */
    assert_non_null(strstr(html, "\xE2\x80\xA6 130 earlier"));
    assert_non_null(strstr(html, "\xE2\x80\xA6 30 more"));
    assert_non_null(strstr(html, "Heartbeat (late)"));
    /* coverage: statuses of this run, per adapter, and cases not run */
    assert_non_null(strstr(html, "lifecycle/cp-pending-to-scheduled <span class=\"pass\">PASS (vendor-sdk"));
    assert_non_null(strstr(html, "not run"));
    assert_non_null(strstr(html, "gated: cap-production"));
    /* deterministic: the same model gives the same bytes */
    char *again;
    size_t len2;
    assert_int_equal(conf_html_render(&page, &again, &len2), CAP_OK);
    assert_int_equal(len, len2);
    assert_memory_equal(html, again, len);
    free(again);
    free(html);
    conf_html_coverage_free(&cov);
}

static void test_checker_catches_bad_markup(void **state)
{
    (void)state;
    xml_stats st;
    assert_int_equal(xml_check("<!DOCTYPE html>\n<html><body><p>a</p></body></html>\n", &st), 0);
    assert_int_equal(xml_check("<!DOCTYPE html>\n<html><body><p>a</body></html>", &st), -1);
    assert_int_equal(xml_check("<!DOCTYPE html>\n<html><p>a & b</p></html>", &st), -1);
    assert_int_equal(xml_check("<!DOCTYPE html>\n<html><p x=\"<\">a</p></html>", &st), -1);
    assert_int_equal(xml_check("<!DOCTYPE html>\n<html><br></html>", &st), -1);
    assert_int_equal(xml_check("<!DOCTYPE html>\n<html></html><html></html>", &st), -1);
    assert_int_equal(xml_check("<!DOCTYPE html>\n<html><p>&#x41;&amp;</p></html>", &st), 0);
}

static void test_empty_page(void **state)
{
    (void)state;
    conf_html_page page = {0};
    char *html;
    size_t len;
    assert_int_equal(conf_html_render(&page, &html, &len), CAP_OK);
    xml_stats st;
    if (xml_check(html, &st) != 0)
        fail_msg("not well-formed: %s", st.err);
    assert_int_equal(st.svg, 0);
    assert_int_equal(st.http_refs, 0);
    free(html);
}

static void test_long_and_bad_text(void **state)
{
    (void)state;
    /* over-long text is cut on a UTF-8 boundary; invalid bytes and control
     * characters are replaced */
    char *big = malloc(CONF_HTML_MAX_TEXT + 100);
    assert_non_null(big);
    for (size_t i = 0; i + 2 < CONF_HTML_MAX_TEXT + 99; i += 2) {
        big[i] = (char)0xC3;
        big[i + 1] = (char)0xA9; /* é */
    }
    big[CONF_HTML_MAX_TEXT + 98] = 0;
    conf_html_case c = {.id = "x", .status = "FAIL", .detail = big, .clauses = "bad \x01\xff"};
    conf_html_report r = {.adapter = "a", .cases = &c, .n_cases = 1};
    conf_html_page page = {.title = "t", .reports = &r, .n_reports = 1};
    char *html;
    size_t len;
    assert_int_equal(conf_html_render(&page, &html, &len), CAP_OK);
    xml_stats st;
    if (xml_check(html, &st) != 0)
        fail_msg("not well-formed: %s", st.err);
    assert_non_null(strstr(html, "\xC3\xA9\xE2\x80\xA6</td>"));
    assert_null(strstr(html, "\x01"));
    assert_null(strstr(html, "\xff"));
    free(html);
    free(big);
}

static void test_coverage_parse_errors(void **state)
{
    (void)state;
    conf_html_coverage cov;
    char err[256];
    static const char *const bad[] = {
        "[]",
        "{\"behaviors\": 3}",
        "{\"behaviors\": [{\"spec\": \"x\"}]}",
        "{\"behaviors\": [{\"behavior\": \"b\", \"extra\": 1}]}",
        "{\"behaviors\": [{\"behavior\": \"b\", \"cases\": [1]}]}",
        "{\"behaviors\": [{\"behavior\": \"b\", \"behavior\": \"c\"}]}",
        "{\"behaviors\": [",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(conf_html_coverage_parse(bad[i], strlen(bad[i]), &cov, err, sizeof err),
                         CAP_EJSON);
        assert_true(err[0] != 0);
        assert_null(cov.items);
    }
    const char *ok = "{\"version\": 1, \"behaviors\": [{\"behavior\": \"b\", \"cases\": [\"x\", \"y\"]},"
                     " {\"behavior\": \"g\", \"gated\": \"p\", \"reason\": \"r\"}]}";
    assert_int_equal(conf_html_coverage_parse(ok, strlen(ok), &cov, err, sizeof err), CAP_OK);
    assert_int_equal(cov.n, 2);
    assert_int_equal(cov.items[0].n_cases, 2);
    assert_string_equal(cov.items[0].cases[1], "y");
    assert_string_equal(cov.items[1].gated, "p");
    assert_int_equal(cov.items[1].n_cases, 0);
    conf_html_coverage_free(&cov);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_catches_bad_markup),
        cmocka_unit_test(test_page_structure),
        cmocka_unit_test(test_empty_page),
        cmocka_unit_test(test_long_and_bad_text),
        cmocka_unit_test(test_coverage_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
