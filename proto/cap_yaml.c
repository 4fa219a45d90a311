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
#include "cap_utf8.h"

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
    d->origin = node ? node->origin : 0;
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

/* Room in doc's list of nodes for `more` of them. 0 or CAP_ENOMEM. */
static int reserve_nodes(cap_yaml_doc *doc, size_t more)
{
    if (doc->n_all + more <= doc->cap_all)
        return 0;
    size_t nc = doc->cap_all ? doc->cap_all : 64;
    while (nc < doc->n_all + more)
        nc *= 2;
    cap_yaml_node **na = realloc(doc->all, nc * sizeof *na);
    if (!na)
        return CAP_ENOMEM;
    doc->all = na;
    doc->cap_all = nc;
    return 0;
}

/* A zeroed node of kind, owned by doc (freed with it), or NULL. */
static cap_yaml_node *doc_node(cap_yaml_doc *doc, cap_yaml_kind kind)
{
    if (reserve_nodes(doc, 1))
        return NULL;
    cap_yaml_node *node = calloc(1, sizeof *node);
    if (!node)
        return NULL;
    node->kind = kind;
    doc->all[doc->n_all++] = node;
    return node;
}

static cap_yaml_node *new_node(builder *bd, cap_yaml_kind kind, const yaml_mark_t *mark)
{
    if (bd->doc->n_all >= bd->b->max_nodes) {
        mark_fail(bd->d, mark, "more than %zu nodes", bd->b->max_nodes);
        return NULL;
    }
    cap_yaml_node *node = doc_node(bd->doc, kind);
    if (node) {
        node->line = (int)mark->line + 1;
        node->column = (int)mark->column + 1;
    }
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

/* ---- setting a value by key path ---- */

#define SET_MAX_STEPS 32

/* One step of a key path: a mapping key or a sequence index. */
typedef struct {
    int is_index;
    size_t index;
    char key[CAP_YAML_PATH_MAX];
} path_step;

static int set_fail(cap_yaml_diag *d, int origin, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_fail(cap_yaml_diag *d, int origin, const char *path, const char *fmt, ...)
{
    char reason[sizeof d->reason];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    cap_yaml_fail(d, CAP_EYAML, NULL, path, "%s", reason);
    if (d)
        d->origin = origin;
    return CAP_EYAML;
}

/* A key of the path at *pp: "quoted" or plain (up to . [ ] " =). */
static int read_key(const char **pp, path_step *st, const char *a, int origin, cap_yaml_diag *d)
{
    const char *p = *pp;
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (!*p)
                return set_fail(d, origin, "", "a quoted key is not closed");
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            if (n + 1 >= sizeof st->key)
                return set_fail(d, origin, "", "a key over %zu bytes",
                                sizeof st->key - 1);
            st->key[n++] = *p;
        }
        p++;
    } else {
        for (; *p && !strchr(".[]\"=", *p); p++) {
            if (n + 1 >= sizeof st->key)
                return set_fail(d, origin, "", "a key over %zu bytes",
                                sizeof st->key - 1);
            st->key[n++] = *p;
        }
        if (!n)
            return set_fail(d, origin, "", "want a key at offset %ld", (long)(p - a));
    }
    st->key[n] = '\0';
    *pp = p;
    return 0;
}

/* Splits PATH=VALUE: the steps of PATH, and *value just past the '='. */
static int read_path(const char *a, path_step *steps, size_t *n, const char **value, int origin,
                     cap_yaml_diag *d)
{
    const char *p = a;
    int need_key = 1;
    *n = 0;
    for (;;) {
        if (!need_key && *p == '=') {
            size_t bad = cap_utf8_check((const uint8_t *)a, (size_t)(p - a));
            if (bad != CAP_UTF8_VALID) /* as the document's own keys must be */
                return set_fail(d, origin, "", "the path is not UTF-8 (offset %zu)", bad);
            *value = p + 1;
            return 0;
        }
        if (!need_key && *p == '.') {
            p++;
            need_key = 1;
            continue;
        }
        if (*n == SET_MAX_STEPS)
            return set_fail(d, origin, "", "a path of more than %d steps",
                            SET_MAX_STEPS);
        path_step *st = &steps[(*n)++];
        memset(st, 0, sizeof *st);
        if (need_key) {
            int rc = read_key(&p, st, a, origin, d);
            if (rc)
                return rc;
            need_key = 0;
        } else if (*p == '[') {
            const char *q = ++p;
            while (*p >= '0' && *p <= '9' && p - q < 9)
                st->index = st->index * 10 + (size_t)(*p++ - '0');
            if (p == q || *p != ']')
                return set_fail(d, origin, "", "want [N], N an index from 0, at offset %ld",
                                (long)(q - 1 - a));
            p++;
            st->is_index = 1;
        } else {
            return set_fail(d, origin, "", "%s at offset %ld (want PATH=VALUE)",
                            *p ? "an unexpected character" : "no '='", (long)(p - a));
        }
    }
}

static const char *kind_word(const cap_yaml_node *node)
{
    if (!node)
        return "absent";
    if (cap_yaml_is_null(node))
        return "null";
    return node->kind == CAP_YAML_MAP ? "a mapping" : node->kind == CAP_YAML_SEQ ? "a sequence" : "a scalar";
}

/* The slot holding key's value in map, or NULL. */
static cap_yaml_node **pair_slot(cap_yaml_node *map, const char *key)
{
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->pairs[i].key->text, key) == 0)
            return &map->pairs[i].value;
    return NULL;
}

/* Checks that the path can be taken in doc without changing it: every
 * index names an existing item of a sequence, every key is looked up in a
 * mapping (or in nothing, or a null, which will become a mapping). */
static int check_path(const cap_yaml_doc *doc, const path_step *steps, size_t n, int origin,
                      cap_yaml_diag *d)
{
    const cap_yaml_node *cur = doc->root;
    char where[CAP_YAML_PATH_MAX] = "", next[CAP_YAML_PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        const path_step *st = &steps[i];
        int fresh = !cur || cap_yaml_is_null(cur);
        if (st->is_index) {
            if (fresh || cur->kind != CAP_YAML_SEQ)
                return set_fail(d, origin, where, "is %s, not a sequence: [%zu] cannot index it",
                                kind_word(cur), st->index);
            if (st->index >= cur->n)
                return set_fail(d, origin, where, "has %zu item%s: there is no [%zu]", cur->n,
                                cur->n == 1 ? "" : "s", st->index);
            cur = cur->items[st->index];
            cap_yaml_path_index(next, where, st->index);
        } else {
            if (!fresh && cur->kind != CAP_YAML_MAP)
                return set_fail(d, origin, where, "is %s, not a mapping: it has no key \"%s\"",
                                kind_word(cur), st->key);
            cap_yaml_node **slot = fresh ? NULL : pair_slot((cap_yaml_node *)cur, st->key);
            cur = slot ? *slot : NULL;
            cap_yaml_path_key(next, where, st->key);
        }
        memcpy(where, next, sizeof where);
    }
    return 0;
}

/* Nesting of collections under node (0 for a scalar). */
static int depth_of(const cap_yaml_node *node)
{
    int m = 0;
    if (node && node->kind != CAP_YAML_SCALAR)
        for (size_t i = 0; i < node->n; i++) {
            int c = depth_of(node->kind == CAP_YAML_SEQ ? node->items[i] : node->pairs[i].value);
            if (c > m)
                m = c;
        }
    return node && node->kind != CAP_YAML_SCALAR ? m + 1 : 0;
}

/* A plain null scalar, or NULL. */
static cap_yaml_node *null_node(cap_yaml_doc *doc, int origin)
{
    cap_yaml_node *node = doc_node(doc, CAP_YAML_SCALAR);
    if (node && !(node->text = calloc(1, 1)))
        return NULL; /* the node itself is freed with doc */
    if (node)
        node->origin = origin;
    return node;
}

/* Walks the checked path, adding keys and mappings as needed, and returns
 * the slot the value goes into, or NULL (out of memory: every change made
 * so far leaves a valid tree). */
static cap_yaml_node **take_path(cap_yaml_doc *doc, const path_step *steps, size_t n, int origin)
{
    cap_yaml_node **slot = &doc->root;
    for (size_t i = 0; i < n; i++) {
        const path_step *st = &steps[i];
        if (st->is_index) {
            slot = &(*slot)->items[st->index];
            continue;
        }
        if (!*slot || cap_yaml_is_null(*slot)) {
            cap_yaml_node *map = doc_node(doc, CAP_YAML_MAP);
            if (!map)
                return NULL;
            map->origin = origin;
            *slot = map;
        }
        cap_yaml_node *map = *slot, **found = pair_slot(map, st->key);
        if (found) {
            slot = found;
            continue;
        }
        cap_yaml_node *key = null_node(doc, origin), *value = null_node(doc, origin);
        if (!key || !value)
            return NULL;
        free(key->text);
        if (!(key->text = strdup(st->key)))
            return NULL;
        key->len = strlen(st->key);
        key->quoted = 1;
        if (grow((void **)&map->pairs, map->n, sizeof *map->pairs))
            return NULL;
        map->pairs[map->n] = (cap_yaml_pair){key, value};
        slot = &map->pairs[map->n++].value;
    }
    return slot;
}

int cap_yaml_set(cap_yaml_doc *doc, const char *assignment, const cap_yaml_bounds *bounds,
                 int origin, cap_yaml_diag *d)
{
    cap_yaml_bounds defb = cap_yaml_bounds_default();
    const cap_yaml_bounds *b = bounds ? bounds : &defb;
    if (d)
        memset(d, 0, sizeof *d);
    if (!doc || !assignment || origin <= 0)
        return cap_yaml_fail(d, CAP_EINVAL, NULL, "", "bad arguments");
    path_step *steps = malloc(SET_MAX_STEPS * sizeof *steps);
    if (!steps)
        return CAP_ENOMEM;
    size_t n = 0;
    const char *text = NULL;
    cap_yaml_doc *val = NULL;
    int rc = read_path(assignment, steps, &n, &text, origin, d);
    if (!rc)
        rc = check_path(doc, steps, n, origin, d);
    if (!rc && (rc = cap_yaml_parse(text, strlen(text), b, &val, d)) != 0 && d)
        d->origin = origin;
    if (!rc && (int)n + depth_of(val->root) > b->max_depth)
        rc = set_fail(d, origin, "", "nesting deeper than %d", b->max_depth);
    if (!rc && doc->n_all + val->n_all + 2 * n + 1 > b->max_nodes)
        rc = set_fail(d, origin, "", "more than %zu nodes", b->max_nodes);
    if (!rc)
        rc = reserve_nodes(doc, val->n_all);
    if (!rc) { /* the value's nodes now belong to doc */
        for (size_t i = 0; i < val->n_all; i++) {
            val->all[i]->origin = origin;
            doc->all[doc->n_all++] = val->all[i];
        }
        val->n_all = 0;
        cap_yaml_node *root = val->root ? val->root : null_node(doc, origin);
        cap_yaml_node **slot = root ? take_path(doc, steps, n, origin) : NULL;
        if (slot)
            *slot = root;
        else
            rc = CAP_ENOMEM;
    }
    if (rc == CAP_ENOMEM && d && !d->err) {
        cap_yaml_fail(d, CAP_ENOMEM, NULL, "", "out of memory");
        d->origin = origin;
    }
    cap_yaml_free(val);
    free(steps);
    return rc;
}

int cap_yaml_set_path_len(const char *assignment, size_t *len, cap_yaml_diag *d)
{
    if (d)
        memset(d, 0, sizeof *d);
    if (!assignment || !len)
        return cap_yaml_fail(d, CAP_EINVAL, NULL, "", "bad arguments");
    path_step *steps = malloc(SET_MAX_STEPS * sizeof *steps);
    if (!steps)
        return CAP_ENOMEM;
    size_t n;
    const char *value = NULL;
    int rc = read_path(assignment, steps, &n, &value, 0, d);
    free(steps);
    if (!rc)
        *len = (size_t)(value - 1 - assignment);
    return rc;
}

/* ---- flow text ---- */

typedef struct {
    char *buf;
    size_t cap, len;
    int full;
} flow_out;

static void flow_put(flow_out *o, const char *s, size_t n)
{
    if (o->full || o->len + n + 1 > o->cap) {
        o->full = 1;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

/* Whether a plain scalar can be written as it is in flow text: printable
 * ASCII with no flow indicator, ':' or '#' (libyaml reads some of those
 * inside flow plain scalars and not others: quoting them all is simpler),
 * no leading indicator or space, no trailing space. An empty one is a null
 * and is written as ~. */
static int plain_ok(const cap_yaml_node *n)
{
    const char *t = n->text;
    if (!n->len || strchr("-?:,[]{}#&*!|>'\"%@` ", t[0]) || t[n->len - 1] == ' ')
        return n->len == 0; /* an empty plain scalar is a null: written as it is */
    for (size_t i = 0; i < n->len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x20 || c > 0x7e || strchr(",[]{}:#", c))
            return 0;
    }
    return 1;
}

/* A scalar; a mapping key (is_key) is written so that it reads back with
 * the same text, since keys are told apart by their text alone: an empty
 * plain key (a null) as "", for ~ would read back as the key "~". */
static void flow_scalar(flow_out *o, const cap_yaml_node *n, int is_key)
{
    if (!n->quoted && plain_ok(n) && (n->len || !is_key)) {
        flow_put(o, n->len ? n->text : "~", n->len ? n->len : 1);
        return;
    }
    flow_put(o, "\"", 1);
    const unsigned char *t = (const unsigned char *)n->text;
    for (size_t i = 0; i < n->len;) {
        /* One character: its code point and length (the text is UTF-8,
         * checked on the way in; a stray byte is taken as itself). */
        uint32_t cp = t[i];
        size_t k = cp < 0x80 ? 1 : cp >= 0xf0 ? 4 : cp >= 0xe0 ? 3 : cp >= 0xc0 ? 2 : 1;
        if (i + k > n->len)
            k = 1;
        if (k > 1) {
            cp &= 0x3fu >> (k - 1);
            for (size_t j = 1; j < k; j++)
                cp = (cp << 6) | (t[i + j] & 0x3fu);
        }
        char esc[12];
        if (cp == '"' || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            flow_put(o, esc, 2);
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) { /* C0, DEL, C1: not printable */
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned)cp);
            flow_put(o, esc, 4);
        } else if (cp == 0xfeff || cp == 0xfffe || cp == 0xffff) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            flow_put(o, esc, 6);
        } else {
            flow_put(o, (const char *)t + i, k);
        }
        i += k;
    }
    flow_put(o, "\"", 1);
}

static void flow_node(flow_out *o, const cap_yaml_node *n)
{
    if (n->kind == CAP_YAML_SCALAR) {
        flow_scalar(o, n, 0);
        return;
    }
    int map = n->kind == CAP_YAML_MAP;
    flow_put(o, map ? "{" : "[", 1);
    for (size_t i = 0; i < n->n && !o->full; i++) {
        if (i)
            flow_put(o, ", ", 2);
        if (map) {
            flow_scalar(o, n->pairs[i].key, 1);
            flow_put(o, ": ", 2);
            flow_node(o, n->pairs[i].value);
        } else {
            flow_node(o, n->items[i]);
        }
    }
    flow_put(o, map ? "}" : "]", 1);
}

int cap_yaml_flow(const cap_yaml_node *node, char *buf, size_t cap)
{
    if (!node || !buf || !cap)
        return CAP_EINVAL;
    flow_out o = {buf, cap, 0, 0};
    buf[0] = '\0';
    flow_node(&o, node);
    return o.full ? CAP_EFULL : 0;
}
