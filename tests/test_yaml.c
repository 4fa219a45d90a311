/* The bounded YAML reader: tree shape and positions, scalar readers, and
 * every rejection (aliases, tags, duplicate keys, bounds, bad YAML); values
 * set by key path (cap_yaml_set) and every refusal of one. */
#include "testutil.h"

#include "cap_error.h"
#include "cap_yaml.h"

static cap_yaml_doc *parse_ok(const char *text)
{
    cap_yaml_doc *doc = NULL;
    cap_yaml_diag d;
    int rc = cap_yaml_parse(text, strlen(text), NULL, &doc, &d);
    if (rc)
        fail_msg("unexpected error %d at %d:%d: %s", rc, d.line, d.column, d.reason);
    return doc;
}

/* Parses text expecting a rejection at line:column with reason containing
 * needle. */
static void parse_fails(const char *text, const cap_yaml_bounds *b, int line, int column,
                        const char *needle)
{
    cap_yaml_doc *doc = (cap_yaml_doc *)1;
    cap_yaml_diag d;
    int rc = cap_yaml_parse(text, strlen(text), b, &doc, &d);
    assert_int_equal(rc, CAP_EYAML);
    assert_null(doc);
    if (!strstr(d.reason, needle))
        fail_msg("reason \"%s\" lacks \"%s\"", d.reason, needle);
    if (line) {
        assert_int_equal(d.line, line);
        assert_int_equal(d.column, column);
    }
}

static void test_tree_and_positions(void **state)
{
    (void)state;
    cap_yaml_doc *doc = parse_ok("a: 1\nlist:\n  - x\n  - {k: 'v'}\nempty:\n");
    const cap_yaml_node *root = cap_yaml_root(doc);
    assert_int_equal(root->kind, CAP_YAML_MAP);
    assert_int_equal(root->n, 3);
    const cap_yaml_node *list = cap_yaml_get(root, "list");
    assert_int_equal(list->kind, CAP_YAML_SEQ);
    assert_int_equal(list->n, 2);
    assert_int_equal(list->items[0]->line, 3);
    assert_int_equal(list->items[0]->column, 5);
    const cap_yaml_node *k = cap_yaml_get(list->items[1], "k");
    assert_string_equal(k->text, "v");
    assert_true(k->quoted);
    assert_true(cap_yaml_is_null(cap_yaml_get(root, "empty")));
    assert_null(cap_yaml_get(root, "missing"));
    assert_int_equal(cap_yaml_count(list), 2);
    assert_int_equal(cap_yaml_count(k), 0);
    cap_yaml_free(doc);
}

static void test_empty_document_has_no_root(void **state)
{
    (void)state;
    cap_yaml_doc *doc = parse_ok("# only a comment\n");
    assert_null(cap_yaml_root(doc));
    cap_yaml_free(doc);
}

static void test_scalar_readers(void **state)
{
    (void)state;
    cap_yaml_doc *doc = parse_ok("i: -42\nbig: 99999999999999999999\nq: '7'\nb: TRUE\n"
                                 "f: 2.5e1\nn: ~\ns: hello\nm: {x: 1}\n");
    const cap_yaml_node *r = cap_yaml_root(doc);
    cap_yaml_diag d;
    int64_t i;
    assert_int_equal(cap_yaml_int(cap_yaml_get(r, "i"), "i", -100, 100, &i, &d), 0);
    assert_int_equal(i, -42);
    assert_int_equal(cap_yaml_int(cap_yaml_get(r, "i"), "i", 0, 100, &i, &d), CAP_EYAML);
    assert_non_null(strstr(d.reason, "outside"));
    assert_int_equal(cap_yaml_int(cap_yaml_get(r, "big"), "big", INT64_MIN, INT64_MAX, &i, &d),
                     CAP_EYAML);
    /* A quoted number is a string. */
    assert_int_equal(cap_yaml_int(cap_yaml_get(r, "q"), "q", 0, 9, &i, &d), CAP_EYAML);
    assert_string_equal(d.path, "q");
    assert_int_equal(d.line, 3);
    int b;
    assert_int_equal(cap_yaml_bool(cap_yaml_get(r, "b"), "b", &b, &d), 0);
    assert_true(b);
    assert_int_equal(cap_yaml_bool(cap_yaml_get(r, "s"), "s", &b, &d), CAP_EYAML);
    double f;
    assert_int_equal(cap_yaml_num(cap_yaml_get(r, "f"), "f", &f, &d), 0);
    assert_true(f == 25.0);
    assert_int_equal(cap_yaml_num(cap_yaml_get(r, "s"), "s", &f, &d), CAP_EYAML);
    const char *s;
    assert_int_equal(cap_yaml_str(cap_yaml_get(r, "n"), "n", &s, &d), 0);
    assert_string_equal(s, "");
    assert_int_equal(cap_yaml_str(cap_yaml_get(r, "m"), "m", &s, &d), CAP_EYAML);
    assert_non_null(strstr(d.reason, "found a mapping"));
    assert_int_equal(cap_yaml_expect(cap_yaml_get(r, "m"), CAP_YAML_SEQ, "m", &d), CAP_EYAML);
    assert_int_equal(cap_yaml_expect(cap_yaml_get(r, "n"), CAP_YAML_SEQ, "n", &d), 0);
    cap_yaml_free(doc);
}

static void test_rejections(void **state)
{
    (void)state;
    parse_fails("a: &x 1\nb: *x\n", NULL, 1, 4, "anchors");
    parse_fails("a: [1\n", NULL, 0, 0, "");
    parse_fails("a: 1\n---\nb: 2\n", NULL, 2, 1, "more than one YAML document");
    parse_fails("a: !custom 1\n", NULL, 1, 4, "unsupported tag");
    parse_fails("a: 1\nb: 2\na: 3\n", NULL, 3, 1, "duplicate key \"a\" (first at line 1)");
    parse_fails("? [1, 2]\n: x\n", NULL, 1, 3, "a mapping key must be a scalar");
    cap_yaml_bounds b = cap_yaml_bounds_default();
    b.max_depth = 3;
    parse_fails("a: {b: {c: {d: 1}}}\n", &b, 1, 12, "nesting deeper than 3");
    b = cap_yaml_bounds_default();
    b.max_nodes = 4;
    parse_fails("[1, 2, 3, 4, 5]\n", &b, 0, 0, "more than 4 nodes");
    b = cap_yaml_bounds_default();
    b.max_scalar = 4;
    parse_fails("a: hello\n", &b, 1, 4, "over the bound of 4");
    b = cap_yaml_bounds_default();
    b.max_bytes = 8;
    parse_fails("a: 123456789\n", &b, 0, 0, "over the bound of 8");
    const char nul[] = "a: b\0c\n";
    cap_yaml_doc *doc;
    cap_yaml_diag d;
    assert_int_equal(cap_yaml_parse(nul, sizeof nul - 1, NULL, &doc, &d), CAP_EYAML);
    assert_non_null(strstr(d.reason, "NUL"));
}

static void test_standard_tags_are_accepted(void **state)
{
    (void)state;
    cap_yaml_doc *doc = parse_ok("a: !!str 12\nb: !!map {x: 1}\n");
    const cap_yaml_node *a = cap_yaml_get(cap_yaml_root(doc), "a");
    assert_true(a->quoted);
    cap_yaml_free(doc);
}

static void test_diag_format(void **state)
{
    (void)state;
    cap_yaml_diag d;
    cap_yaml_node n = {0};
    n.line = 7;
    n.column = 3;
    cap_yaml_fail(&d, CAP_EPOLICY, &n, "rules[1].decision", "bad word");
    char buf[256];
    assert_string_equal(cap_yaml_diag_format(&d, "p.yaml", buf, sizeof buf),
                        "p.yaml:7:3: rules[1].decision: bad word");
    cap_yaml_fail(&d, CAP_EYAML, NULL, "", "empty");
    assert_string_equal(cap_yaml_diag_format(&d, NULL, buf, sizeof buf), "<input>: empty");
}

/* The tree as compact text: maps {k: v, ...}, sequences [a, b], a plain
 * null as ~, and each node put there by cap_yaml_set marked ^origin. */
static void dump(const cap_yaml_node *n, char *out, size_t cap)
{
    size_t o = strlen(out);
    if (!n) {
        snprintf(out + o, cap - o, "<none>");
        return;
    }
    if (n->kind == CAP_YAML_SCALAR)
        snprintf(out + o, cap - o, "%s", cap_yaml_is_null(n) ? "~" : n->text);
    else {
        snprintf(out + o, cap - o, "%s", n->kind == CAP_YAML_MAP ? "{" : "[");
        for (size_t i = 0; i < n->n; i++) {
            o = strlen(out);
            snprintf(out + o, cap - o, "%s", i ? ", " : "");
            if (n->kind == CAP_YAML_MAP) {
                dump(n->pairs[i].key, out, cap);
                o = strlen(out);
                snprintf(out + o, cap - o, ": ");
                dump(n->pairs[i].value, out, cap);
            } else {
                dump(n->items[i], out, cap);
            }
        }
        o = strlen(out);
        snprintf(out + o, cap - o, "%s", n->kind == CAP_YAML_MAP ? "}" : "]");
    }
    if (n->origin) {
        o = strlen(out);
        snprintf(out + o, cap - o, "^%d", n->origin);
    }
}

static void assert_tree(const cap_yaml_doc *doc, const char *want)
{
    char got[1024] = "";
    dump(cap_yaml_root(doc), got, sizeof got);
    assert_string_equal(got, want);
}

/* Applies each assignment in turn (origins 1, 2, ...) to text's tree. */
static void set_ok(const char *text, const char *const *sets, size_t n, const char *want)
{
    cap_yaml_doc *doc = parse_ok(text);
    for (size_t i = 0; i < n; i++) {
        cap_yaml_diag d;
        int rc = cap_yaml_set(doc, sets[i], NULL, (int)i + 1, &d);
        if (rc)
            fail_msg("--set %s: error %d: %s: %s", sets[i], rc, d.path, d.reason);
    }
    assert_tree(doc, want);
    cap_yaml_free(doc);
}

/* cap_yaml_set refuses the assignment with CAP_EYAML, origin 3, a path
 * and a reason holding needle, and leaves the tree as it was. */
static void set_fails(const char *text, const char *set, const cap_yaml_bounds *b,
                      const char *path, const char *needle)
{
    cap_yaml_doc *doc = parse_ok(text);
    char before[1024] = "";
    dump(cap_yaml_root(doc), before, sizeof before);
    cap_yaml_diag d;
    assert_int_equal(cap_yaml_set(doc, set, b, 3, &d), CAP_EYAML);
    assert_int_equal(d.err, CAP_EYAML);
    assert_int_equal(d.origin, 3);
    assert_string_equal(d.path, path);
    if (!strstr(d.reason, needle))
        fail_msg("--set %s: reason \"%s\" lacks \"%s\"", set, d.reason, needle);
    assert_tree(doc, before);
    cap_yaml_free(doc);
}

static void test_set_replaces_adds_and_creates(void **state)
{
    (void)state;
    const char *doc = "a: 1\nw:\n  - {id: x, n: 2}\n  - {id: y}\nm: {k: v}\nz:\n";
    /* A scalar replaced; a value that is a flow collection; an item's key. */
    const char *s1[] = {"a=5", "m={p: [1, 2]}", "w[1].id=q"};
    set_ok(doc, s1, 3, "{a: 5^1, w: [{id: x, n: 2}, {id: q^3}], m: {p^2: [1^2, 2^2]^2}^2, z: ~}");
    /* A key added at the end of its mapping; absent and null mappings on
     * the way created; an empty value is null. */
    const char *s2[] = {"w[0].extra=7", "new.deep.key=x", "z.k=1", "a="};
    set_ok(doc, s2, 4,
           "{a: ~^4, w: [{id: x, n: 2, extra^1: 7^1}, {id: y}], m: {k: v}, z: {k^3: 1^3}^3, "
           "new^2: {deep^2: {key^2: x^2}^2}^2}");
    /* Quoted keys hold the characters a path uses; the last set wins. */
    const char *s3[] = {"m.\"mcp.action\"=read", "m.\"a[1]=\\\"q\\\"\"=2", "a=2", "a=3"};
    set_ok(doc, s3, 4,
           "{a: 3^4, w: [{id: x, n: 2}, {id: y}], m: {k: v, mcp.action^1: read^1, a[1]=\"q\"^2: 2^2}, "
           "z: ~}");
    /* An empty document gets a root mapping. */
    const char *s4[] = {"x.y=1"};
    set_ok("", s4, 1, "{x^1: {y^1: 1^1}^1}^1");
    /* Values keep their kind: a quoted number is a string. */
    cap_yaml_doc *d = parse_ok("a: 1\n");
    assert_int_equal(cap_yaml_set(d, "a='12'", NULL, 1, NULL), 0);
    const cap_yaml_node *a = cap_yaml_get(cap_yaml_root(d), "a");
    assert_true(a->quoted);
    assert_string_equal(a->text, "12");
    /* An error about a node that a set put there names its origin. */
    cap_yaml_diag diag;
    int64_t v;
    assert_int_equal(cap_yaml_int(a, "a", 0, 5, &v, &diag), CAP_EYAML);
    assert_int_equal(diag.origin, 1);
    cap_yaml_free(d);
}

static void test_set_rejections(void **state)
{
    (void)state;
    const char *doc = "a: 1\nw:\n  - {id: x}\nm: {k: v}\n";
    set_fails(doc, "a", NULL, "", "no '='");
    set_fails(doc, "=1", NULL, "", "want a key at offset 0");
    set_fails(doc, "m..k=1", NULL, "", "want a key at offset 2");
    set_fails(doc, "m.=1", NULL, "", "want a key at offset 2");
    set_fails(doc, "\"open=1", NULL, "", "quoted key is not closed");
    set_fails(doc, "\"k\"x=1", NULL, "", "an unexpected character at offset 3");
    set_fails(doc, "w[x]=1", NULL, "", "want [N]");
    set_fails(doc, "m.\xea=1", NULL, "", "the path is not UTF-8 (offset 2)");
    set_fails(doc, "m=\xea", NULL, "", "UTF-8");
    set_fails(doc, "w[]=1", NULL, "", "want [N]");
    set_fails(doc, "w[0=1", NULL, "", "want [N]");
    set_fails(doc, "w[1234567890]=1", NULL, "", "want [N]");
    set_fails(doc, "w[1].id=1", NULL, "w", "has 1 item: there is no [1]");
    set_fails(doc, "w.id=1", NULL, "w", "is a sequence, not a mapping");
    set_fails(doc, "a.b=1", NULL, "a", "is a scalar, not a mapping");
    set_fails(doc, "m[0]=1", NULL, "m", "is a mapping, not a sequence");
    set_fails(doc, "n[0]=1", NULL, "n", "is absent, not a sequence");
    set_fails(doc, "a={b: [}", NULL, "", "did not find expected node content");
    set_fails(doc, "a={b: 1, b: 2}", NULL, "", "duplicate key");
    set_fails(doc, "a=*x", NULL, "", "alias");
    char long_path[400];
    memset(long_path, 'k', 300);
    strcpy(long_path + 300, "=1");
    set_fails(doc, long_path, NULL, "", "a key over");
    char many[200] = "";
    for (int i = 0; i < 33; i++)
        strcat(many, i ? ".k" : "k");
    strcat(many, "=1");
    set_fails(doc, many, NULL, "", "more than 32 steps");
    cap_yaml_bounds b = cap_yaml_bounds_default();
    b.max_depth = 3;
    set_fails(doc, "m.k={x: {y: 1}}", &b, "", "nesting deeper than 3");
    b = cap_yaml_bounds_default();
    b.max_nodes = 12;
    set_fails(doc, "m.k=[1, 2, 3, 4]", &b, "", "more than 12 nodes");
    b = cap_yaml_bounds_default();
    b.max_scalar = 4;
    set_fails(doc, "a=12345", &b, "", "over the bound of 4");
    /* Bad arguments. */
    cap_yaml_doc *d = parse_ok(doc);
    cap_yaml_diag diag;
    assert_int_equal(cap_yaml_set(d, "a=1", NULL, 0, &diag), CAP_EINVAL);
    assert_int_equal(cap_yaml_set(d, NULL, NULL, 1, &diag), CAP_EINVAL);
    assert_int_equal(cap_yaml_set(NULL, "a=1", NULL, 1, &diag), CAP_EINVAL);
    cap_yaml_free(d);
}

/* Flow text reads back to the same tree: the same dump, and the same
 * text again. */
static void flow_round_trip(const char *yaml, const char *want_flow)
{
    cap_yaml_doc *doc = parse_ok(yaml);
    char flow[512], again[512];
    assert_int_equal(cap_yaml_flow(cap_yaml_root(doc), flow, sizeof flow), 0);
    if (want_flow)
        assert_string_equal(flow, want_flow);
    cap_yaml_doc *back = parse_ok(flow);
    char a[1024] = "", b[1024] = "";
    dump(cap_yaml_root(doc), a, sizeof a);
    dump(cap_yaml_root(back), b, sizeof b);
    assert_string_equal(a, b);
    assert_int_equal(cap_yaml_flow(cap_yaml_root(back), again, sizeof again), 0);
    assert_string_equal(flow, again);
    cap_yaml_free(back);
    cap_yaml_free(doc);
}

static void test_flow_text(void **state)
{
    (void)state;
    flow_round_trip("800", "800");
    flow_round_trip("{dist: fixed, value: 5ms}", "{dist: fixed, value: 5ms}");
    flow_round_trip("[1, [2, {a: b}], ~, '', 'x y']", "[1, [2, {a: b}], ~, \"\", \"x y\"]");
    flow_round_trip("'12'", "\"12\"");
    flow_round_trip("a: \"q\\\"b\\\\c\\td\"\n", "{a: \"q\\\"b\\\\c\\x09d\"}");
    /* Block text flow cannot hold as it is is quoted. */
    flow_round_trip("a: x, y\nb: '[z]'\nc: k:v\nd: -x\ne: 'x #y'\n\"f:\": ü\n",
                    "{a: \"x, y\", b: \"[z]\", c: \"k:v\", d: \"-x\", e: \"x #y\", \"f:\": \"ü\"}");
    /* An empty plain key (a null) is written as "": written as ~ it would
     * read back as the key "~", a duplicate of a key "~" beside it (an
     * override "~=" on the document "?", found by fuzz_set). */
    cap_yaml_doc *nk = parse_ok("?");
    cap_yaml_bounds nb = cap_yaml_bounds_default();
    cap_yaml_diag nd;
    assert_int_equal(cap_yaml_set(nk, "~=", &nb, 1, &nd), 0);
    char nflow[64], nagain[64];
    assert_int_equal(cap_yaml_flow(cap_yaml_root(nk), nflow, sizeof nflow), 0);
    assert_string_equal(nflow, "{\"\": ~, \"~\": ~}");
    cap_yaml_doc *nback = parse_ok(nflow);
    assert_int_equal(cap_yaml_flow(cap_yaml_root(nback), nagain, sizeof nagain), 0);
    assert_string_equal(nflow, nagain);
    cap_yaml_free(nback);
    cap_yaml_free(nk);
    cap_yaml_doc *doc = parse_ok("[aaaa, bbbb]");
    char small[8];
    assert_int_equal(cap_yaml_flow(cap_yaml_root(doc), small, sizeof small), CAP_EFULL);
    assert_int_equal(cap_yaml_flow(NULL, small, sizeof small), CAP_EINVAL);
    cap_yaml_free(doc);
    /* The path of an assignment, as cap_yaml_set reads it. */
    size_t n = 0;
    cap_yaml_diag d;
    assert_int_equal(cap_yaml_set_path_len("w[1].\"a=b\"=[1, 2]", &n, &d), 0);
    assert_int_equal(n, strlen("w[1].\"a=b\""));
    assert_int_equal(cap_yaml_set_path_len("w[1", &n, &d), CAP_EYAML);
    assert_non_null(strstr(d.reason, "want [N]"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_and_positions),
        cmocka_unit_test(test_empty_document_has_no_root),
        cmocka_unit_test(test_scalar_readers),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_standard_tags_are_accepted),
        cmocka_unit_test(test_diag_format),
        cmocka_unit_test(test_set_replaces_adds_and_creates),
        cmocka_unit_test(test_set_rejections),
        cmocka_unit_test(test_flow_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
