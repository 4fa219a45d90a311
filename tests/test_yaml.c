/* The bounded YAML reader: tree shape and positions, scalar readers, and
 * every rejection (aliases, tags, duplicate keys, bounds, bad YAML). */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_and_positions),
        cmocka_unit_test(test_empty_document_has_no_root),
        cmocka_unit_test(test_scalar_readers),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_standard_tags_are_accepted),
        cmocka_unit_test(test_diag_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
