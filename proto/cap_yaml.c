/* Bounded YAML reader: libyaml's event stream folded into a node tree. */
#include "cap_yaml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "cap_error.h"

struct cap_yaml_doc {
    cap_yaml_node *root;
    cap_yaml_node **all;  /* every node, for freeing */
    size_t n_all, cap_all;
};

cap_yaml_bounds cap_yaml_bounds_default(void)
{
    cap_yaml_bounds b = {4u << 20, 64, 200000, 64u << 10};
    return b;
}

/* Marks a path snprintf had to cut. */
static void mark_cut(char *out, int written)
{
    if (written >= CAP_YAML_PATH_MAX)
        memcpy(out + CAP_YAML_PATH_MAX - 4, "...", 4);
}

void cap_yaml_path_key(char *out, const char *base, const char *key)
{
    mark_cut(out, snprintf(out, CAP_YAML_PATH_MAX, "%s%s%s", base, base[0] ? "." : "", key));
}

void cap_yaml_path_index(char *out, const char *base, size_t i)
{
    mark_cut(out, snprintf(out, CAP_YAML_PATH_MAX, "%s[%zu]", base, i));
}

int cap_yaml_fail(cap_yaml_diag *d, int err, const cap_yaml_node *node, const char *path,
                  const char *fmt, ...)
{
    if (!d)
        return err;
    d->err = err;
    d->line = node ? node->line : 0;
    d->column = node ? node->column : 0;
    snprintf(d->path, sizeof d->path, "%s", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
    return err;
}

const char *cap_yaml_diag_format(const cap_yaml_diag *d, const char *file, char *buf, size_t n)
{
    char where[96] = "";
    if (d->line > 0)
        snprintf(where, sizeof where, ":%d:%d", d->line, d->column);
    snprintf(buf, n, "%s%s: %s%s%s", file ? file : "<input>", where, d->path,
             d->path[0] ? ": " : "", d->reason);
    return buf;
}

/* ---- tree building ---- */

/* Records an error at a libyaml mark (0-based) and returns CAP_EYAML. */
static int mark_fail(cap_yaml_diag *d, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int mark_fail(cap_yaml_diag *d, const yaml_mark_t *m, const char *fmt, ...)
{
    if (!d)
        return CAP_EYAML;
    char reason[sizeof d->reason];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    cap_yaml_fail(d, CAP_EYAML, NULL, "", "%s", reason);
    d->line = (int)m->line + 1;
    d->column = (int)m->column + 1;
    return CAP_EYAML;
}

typedef struct {
    cap_yaml_doc *doc;
    const cap_yaml_bounds *b;
    cap_yaml_diag *d;
    cap_yaml_node **stack;  /* open collections, innermost last */
    int depth;
    int pending_key;        /* an open mapping holds a key awaiting its value */
} builder;

static cap_yaml_node *new_node(builder *bd, cap_yaml_kind kind, const yaml_mark_t *mark)
{
    cap_yaml_doc *doc = bd->doc;
    if (doc->n_all >= bd->b->max_nodes) {
        mark_fail(bd->d, mark, "more than %zu nodes", bd->b->max_nodes);
        return NULL;
    }
    if (doc->n_all == doc->cap_all) {
        size_t nc = doc->cap_all ? doc->cap_all * 2 : 64;
        cap_yaml_node **na = realloc(doc->all, nc * sizeof *na);
        if (!na)
            return NULL;
        doc->all = na;
        doc->cap_all = nc;
    }
    cap_yaml_node *node = calloc(1, sizeof *node);
    if (!node)
        return NULL;
    node->kind = kind;
    node->line = (int)mark->line + 1;
    node->column = (int)mark->column + 1;
    doc->all[doc->n_all++] = node;
    return node;
}

static int grow(void **arr, size_t n, size_t elem)
{
    /* Capacities are powers of two from 4; grow when n reaches one. */
    if (n < 4 ? n != 0 : (n & (n - 1)) != 0)
        return 0;
    size_t nc = n < 4 ? 4 : n * 2;
    void *na = realloc(*arr, nc * elem);
    if (!na)
        return -1;
    *arr = na;
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    const cap_yaml_pair *x = *(const cap_yaml_pair *const *)a;
    const cap_yaml_pair *y = *(const cap_yaml_pair *const *)b;
    size_t n = x->key->len < y->key->len ? x->key->len : y->key->len;
    int c = memcmp(x->key->text, y->key->text, n);
    if (c)
        return c;
    if (x->key->len != y->key->len)
        return x->key->len < y->key->len ? -1 : 1;
    /* Equal keys: document order, so the later one is reported. */
    return x < y ? -1 : 1;
}

/* Rejects a mapping with two equal keys, naming the second. O(n log n). */
static int check_unique_keys(builder *bd, const cap_yaml_node *map)
{
    if (map->n < 2)
        return 0;
    const cap_yaml_pair **idx = malloc(map->n * sizeof *idx);
    if (!idx)
        return CAP_ENOMEM;
    for (size_t i = 0; i < map->n; i++)
        idx[i] = &map->pairs[i];
    if (map->n > 1)
        qsort(idx, map->n, sizeof *idx, key_cmp);
    int rc = 0;
    for (size_t i = 1; i < map->n && !rc; i++) {
        const cap_yaml_node *a = idx[i - 1]->key, *k = idx[i]->key;
        if (a->len == k->len && memcmp(a->text, k->text, k->len) == 0)
            rc = cap_yaml_fail(bd->d, CAP_EYAML, k, "", "duplicate key \"%s\" (first at line %d)",
                               k->text, a->line);
    }
    free(idx);
    return rc;
}

/* Attaches a finished node to the innermost open collection (or the root). */
static int attach(builder *bd, cap_yaml_node *node)
{
    if (bd->depth == 0) {
        bd->doc->root = node;
        return 0;
    }
    cap_yaml_node *parent = bd->stack[bd->depth - 1];
    if (parent->kind == CAP_YAML_SEQ) {
        if (grow((void **)&parent->items, parent->n, sizeof *parent->items))
            return CAP_ENOMEM;
        parent->items[parent->n++] = node;
        return 0;
    }
    if (!bd->pending_key) {
        if (node->kind != CAP_YAML_SCALAR)
            return cap_yaml_fail(bd->d, CAP_EYAML, node, "", "a mapping key must be a scalar");
        if (grow((void **)&parent->pairs, parent->n, sizeof *parent->pairs))
            return CAP_ENOMEM;
        parent->pairs[parent->n].key = node;
        parent->pairs[parent->n].value = NULL;
        bd->pending_key = 1;
        return 0;
    }
    parent->pairs[parent->n++].value = node;
    bd->pending_key = 0;
    return 0;
}

static int check_tag(builder *bd, const yaml_char_t *tag, const yaml_mark_t *mark, int *is_str)
{
    static const char std[] = "tag:yaml.org,2002:";
    if (!tag)
        return 0;
    if (strncmp((const char *)tag, std, sizeof std - 1) != 0)
        return mark_fail(bd->d, mark, "unsupported tag \"%.64s\"", (const char *)tag);
    if (is_str)
        *is_str = strcmp((const char *)tag + sizeof std - 1, "str") == 0;
    return 0;
}

static int on_scalar(builder *bd, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    int is_str = 0;
    int rc = check_tag(bd, ev->data.scalar.tag, m, &is_str);
    if (rc)
        return rc;
    cap_yaml_node *node = new_node(bd, CAP_YAML_SCALAR, m);
    if (!node)
        return bd->d && bd->d->err ? bd->d->err : CAP_ENOMEM;
    size_t len = ev->data.scalar.length;
    if (len > bd->b->max_scalar)
        return cap_yaml_fail(bd->d, CAP_EYAML, node, "", "scalar of %zu bytes, over the bound of %zu",
                             len, bd->b->max_scalar);
    if (memchr(ev->data.scalar.value, 0, len))
        return cap_yaml_fail(bd->d, CAP_EYAML, node, "", "scalar contains a NUL character");
    node->text = malloc(len + 1);
    if (!node->text)
        return CAP_ENOMEM;
    memcpy(node->text, ev->data.scalar.value, len);
    node->text[len] = '\0';
    node->len = len;
    node->quoted = is_str || ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                   ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                   ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                   ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
    return attach(bd, node);
}

static int on_open(builder *bd, const yaml_event_t *ev, cap_yaml_kind kind)
{
    const yaml_char_t *tag = kind == CAP_YAML_MAP ? ev->data.mapping_start.tag
                                                  : ev->data.sequence_start.tag;
    int rc = check_tag(bd, tag, &ev->start_mark, NULL);
    if (rc)
        return rc;
    cap_yaml_node *node = new_node(bd, kind, &ev->start_mark);
    if (!node)
        return bd->d && bd->d->err ? bd->d->err : CAP_ENOMEM;
    if (bd->depth >= bd->b->max_depth)
        return cap_yaml_fail(bd->d, CAP_EYAML, node, "", "nesting deeper than %d", bd->b->max_depth);
    rc = attach(bd, node);
    if (rc)
        return rc;
    bd->stack[bd->depth++] = node;
    bd->pending_key = 0;
    return 0;
}

static int on_close(builder *bd)
{
    cap_yaml_node *node = bd->stack[--bd->depth];
    /* Back in the parent: a mapping parent just received a complete value. */
    bd->pending_key = 0;
    return node->kind == CAP_YAML_MAP ? check_unique_keys(bd, node) : 0;
}

static int parser_error(builder *bd, const yaml_parser_t *p)
{
    const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->mark;
    return mark_fail(bd->d, m, "%s%s%s", p->problem ? p->problem : "invalid YAML",
                     p->context ? " " : "", p->context ? p->context : "");
}

static int handle_event(builder *bd, const yaml_event_t *ev, int *documents, int *done)
{
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1)
            return mark_fail(bd->d, &ev->start_mark, "more than one YAML document");
        return 0;
    case YAML_STREAM_END_EVENT:
        *done = 1;
        return 0;
    case YAML_ALIAS_EVENT:
        return mark_fail(bd->d, &ev->start_mark, "aliases are not supported");
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor)
            return mark_fail(bd->d, &ev->start_mark, "anchors are not supported");
        return on_scalar(bd, ev);
    case YAML_SEQUENCE_START_EVENT:
        if (ev->data.sequence_start.anchor)
            return mark_fail(bd->d, &ev->start_mark, "anchors are not supported");
        return on_open(bd, ev, CAP_YAML_SEQ);
    case YAML_MAPPING_START_EVENT:
        if (ev->data.mapping_start.anchor)
            return mark_fail(bd->d, &ev->start_mark, "anchors are not supported");
        return on_open(bd, ev, CAP_YAML_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_close(bd);
    default:
        return mark_fail(bd->d, &ev->start_mark, "unexpected YAML event");
    }
}

int cap_yaml_parse(const char *text, size_t len, const cap_yaml_bounds *bounds,
                   cap_yaml_doc **out, cap_yaml_diag *d)
{
    cap_yaml_bounds defb = cap_yaml_bounds_default();
    const cap_yaml_bounds *b = bounds ? bounds : &defb;
    *out = NULL;
    if (d)
        memset(d, 0, sizeof *d);
    if (len > b->max_bytes)
        return cap_yaml_fail(d, CAP_EYAML, NULL, "", "input of %zu bytes, over the bound of %zu",
                             len, b->max_bytes);
    if (memchr(text, 0, len))
        return cap_yaml_fail(d, CAP_EYAML, NULL, "", "input contains a NUL byte at offset %ld",
                             (long)((const char *)memchr(text, 0, len) - text));
    cap_yaml_doc *doc = calloc(1, sizeof *doc);
    cap_yaml_node **stack = calloc((size_t)b->max_depth + 1, sizeof *stack);
    if (!doc || !stack) {
        free(doc);
        free(stack);
        return CAP_ENOMEM;
    }
    builder bd = {doc, b, d, stack, 0, 0};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        free(stack);
        cap_yaml_free(doc);
        return CAP_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0, documents = 0, done = 0;
    while (!rc && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&bd, &parser);
            break;
        }
        rc = handle_event(&bd, &ev, &documents, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    free(stack);
    if (rc) {
        if (rc == CAP_ENOMEM && d && !d->err)
            cap_yaml_fail(d, CAP_ENOMEM, NULL, "", "out of memory");
        cap_yaml_free(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

void cap_yaml_free(cap_yaml_doc *doc)
{
    if (!doc)
        return;
    for (size_t i = 0; i < doc->n_all; i++) {
        free(doc->all[i]->text);
        free(doc->all[i]->items);
        free(doc->all[i]->pairs);
        free(doc->all[i]);
    }
    free(doc->all);
    free(doc);
}

const cap_yaml_node *cap_yaml_root(const cap_yaml_doc *doc)
{
    return doc ? doc->root : NULL;
}

const cap_yaml_node *cap_yaml_get(const cap_yaml_node *map, const char *key)
{
    if (!map || map->kind != CAP_YAML_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->pairs[i].key->text, key) == 0)
            return map->pairs[i].value;
    return NULL;
}

/* ---- scalar readers ---- */

int cap_yaml_is_null(const cap_yaml_node *node)
{
    if (!node || node->kind != CAP_YAML_SCALAR || node->quoted)
        return 0;
    const char *t = node->text;
    return !t[0] || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") ||
           !strcmp(t, "NULL");
}

static const char *kind_name(cap_yaml_kind k)
{
    return k == CAP_YAML_MAP ? "a mapping" : k == CAP_YAML_SEQ ? "a sequence" : "a scalar";
}

static int need_scalar(const cap_yaml_node *node, const char *path, const char *what,
                       cap_yaml_diag *d)
{
    if (node->kind == CAP_YAML_SCALAR)
        return 0;
    return cap_yaml_fail(d, CAP_EYAML, node, path, "expected %s, found %s", what,
                         kind_name(node->kind));
}

int cap_yaml_str(const cap_yaml_node *node, const char *path, const char **out, cap_yaml_diag *d)
{
    int rc = need_scalar(node, path, "a string", d);
    if (rc)
        return rc;
    *out = cap_yaml_is_null(node) ? "" : node->text;
    return 0;
}

int cap_yaml_int(const cap_yaml_node *node, const char *path, int64_t min, int64_t max,
                 int64_t *out, cap_yaml_diag *d)
{
    int rc = need_scalar(node, path, "an integer", d);
    if (rc)
        return rc;
    const char *s = node->text;
    const char *digits = (s[0] == '-' || s[0] == '+') ? s + 1 : s;
    int ok = !node->quoted && digits[0] != '\0';
    for (const char *p = digits; ok && *p; p++)
        ok = *p >= '0' && *p <= '9';
    if (!ok)
        return cap_yaml_fail(d, CAP_EYAML, node, path, "expected an integer, found \"%.40s\"", s);
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max)
        return cap_yaml_fail(d, CAP_EYAML, node, path, "%.40s is outside [%lld, %lld]", s,
                             (long long)min, (long long)max);
    *out = v;
    return 0;
}

int cap_yaml_bool(const cap_yaml_node *node, const char *path, int *out, cap_yaml_diag *d)
{
    int rc = need_scalar(node, path, "true or false", d);
    if (rc)
        return rc;
    if (!node->quoted && strcasecmp(node->text, "true") == 0)
        *out = 1;
    else if (!node->quoted && strcasecmp(node->text, "false") == 0)
        *out = 0;
    else
        return cap_yaml_fail(d, CAP_EYAML, node, path, "expected true or false, found \"%.40s\"",
                             node->text);
    return 0;
}

int cap_yaml_num(const cap_yaml_node *node, const char *path, double *out, cap_yaml_diag *d)
{
    int rc = need_scalar(node, path, "a number", d);
    if (rc)
        return rc;
    const char *s = node->text;
    char *end = NULL;
    int ok = !node->quoted && s[0] != '\0' && strspn(s, "+-0123456789.eE") == node->len;
    double v = 0;
    if (ok) {
        errno = 0;
        v = strtod(s, &end);
        ok = *end == '\0' && errno == 0 && isfinite(v);
    }
    if (!ok)
        return cap_yaml_fail(d, CAP_EYAML, node, path, "expected a number, found \"%.40s\"", s);
    *out = v;
    return 0;
}

int cap_yaml_expect(const cap_yaml_node *node, cap_yaml_kind kind, const char *path,
                    cap_yaml_diag *d)
{
    if (node->kind == kind || cap_yaml_is_null(node))
        return 0;
    return cap_yaml_fail(d, CAP_EYAML, node, path, "expected %s, found %s", kind_name(kind),
                         kind_name(node->kind));
}

size_t cap_yaml_count(const cap_yaml_node *node)
{
    return node && node->kind != CAP_YAML_SCALAR ? node->n : 0;
}
