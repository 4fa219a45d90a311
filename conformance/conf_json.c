/* Strict JSON parsing over cJSON, and a Go-compatible JSON writer. */
#include "conf_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "cap_json.h"
#include "cap_utf8.h"

/* Writes text[0..len) to out as one line of valid UTF-8, at most limit
 * bytes: control bytes, DEL and bytes outside a valid UTF-8 sequence
 * become \xNN, so a string from an adapter or a file quoted in a message
 * can neither break it into lines nor garble a terminal. Stops before the
 * first character that would not fit; returns the bytes written and sets
 * *all when every character was. */
static size_t escape_line(char *out, size_t limit, const char *text, size_t len, int *all)
{
    size_t o = 0, i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        size_t take = 1;
        int escape = c < 0x20 || c == 0x7f;
        if (c >= 0x80) {
            /* The sequence at i is valid when the check of the next (at
             * most four) bytes finds nothing wrong before its end. */
            size_t w = len - i < 4 ? len - i : 4;
            take = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            escape = take > w || cap_utf8_check((const uint8_t *)text + i, w) < take;
            if (escape)
                take = 1;
        }
        size_t need = escape ? 4 : take;
        if (o + need > limit)
            break;
        if (escape) {
            static const char hex[] = "0123456789ABCDEF";
            out[o] = '\\';
            out[o + 1] = 'x';
            out[o + 2] = hex[c >> 4];
            out[o + 3] = hex[c & 15];
        } else {
            memcpy(out + o, text + i, take);
        }
        o += need;
        i += take;
    }
    *all = i == len;
    return o;
}

/* text[0..len) into err (n bytes) by escape_line, cut with "..." when it
 * does not fit. */
static void one_line(char *err, size_t n, const char *text, size_t len)
{
    if (n == 0)
        return;
    int all;
    size_t o = escape_line(err, n - 1, text, len, &all);
    if (!all && n > 4) {
        o = escape_line(err, n - 4, text, len, &all);
        memcpy(err + o, "...", 3);
        o += 3;
    }
    err[o] = '\0';
}

const char *conf_one_line(const char *s, char *out, size_t n)
{
    one_line(out, n, s ? s : "", s ? strlen(s) : 0);
    return out;
}

void conf_verrf(char *err, size_t n, const char *fmt, va_list ap)
{
    if (!err || n == 0)
        return;
    char buf[1024];
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    if (len < 0)
        len = 0;
    one_line(err, n, buf, (size_t)len < sizeof buf ? (size_t)len : sizeof buf - 1);
}

void conf_errf(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conf_verrf(err, n, fmt, ap);
    va_end(ap);
}

int conf_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return CAP_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *g = realloc(*arr, nc * elem);
    if (!g)
        return CAP_ENOMEM;
    *arr = g;
    *cap = nc;
    return CAP_OK;
}

/* Appends ".key" or "[i]" to a path buffer, bounded. */
static void path_push(char *path, size_t cap, const cJSON *parent, const cJSON *child, size_t idx)
{
    size_t l = strlen(path);
    if (l >= cap - 1)
        return;
    if (cJSON_IsObject(parent))
        snprintf(path + l, cap - l, ".%.40s", child->string ? child->string : "?");
    else
        snprintf(path + l, cap - l, "[%zu]", idx);
}

static int check_tree(const cJSON *node, int depth, char *path, size_t pcap, char *err, size_t n)
{
    if (depth > CONF_JSON_MAX_DEPTH) {
        conf_errf(err, n, "nesting deeper than %d at %s", CONF_JSON_MAX_DEPTH, path);
        return CAP_EJSON;
    }
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node))
        return CAP_OK;
    size_t count = 0;
    for (const cJSON *c = node->child; c; c = c->next)
        count++;
    if (count > CONF_JSON_MAX_MEMBERS) {
        conf_errf(err, n, "%zu members at %s, over the bound of %d", count, path, CONF_JSON_MAX_MEMBERS);
        return CAP_EJSON;
    }
    if (cJSON_IsObject(node)) {
        for (const cJSON *a = node->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (strcmp(a->string, b->string) == 0) {
                    conf_errf(err, n, "duplicate key \"%.80s\" at %s", a->string, path);
                    return CAP_EJSON;
                }
    }
    size_t idx = 0;
    size_t base = strlen(path);
    for (const cJSON *c = node->child; c; c = c->next, idx++) {
        path_push(path, pcap, node, c, idx);
        int rc = check_tree(c, depth + 1, path, pcap, err, n);
        path[base] = '\0';
        if (rc)
            return rc;
    }
    return CAP_OK;
}

int conf_json_parse(const char *text, size_t len, cJSON **out, char *err, size_t n)
{
    *out = NULL;
    size_t bad = cap_utf8_check_text((const uint8_t *)text, len);
    if (bad != CAP_UTF8_VALID) {
        conf_errf(err, n, "invalid UTF-8 or NUL byte at offset %zu", bad);
        return CAP_EJSON;
    }
    /* What cJSON would let through, and a depth pre-check so that cJSON
     * never recurses deeply. */
    const char *what;
    bad = cap_json_text_check(text, len, CONF_JSON_MAX_DEPTH, &what);
    if (bad != CAP_JSON_TEXT_OK) {
        conf_errf(err, n, "%s at offset %zu", what, bad);
        return CAP_EJSON;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        const char *e = cJSON_GetErrorPtr();
        if (e && e >= text && e <= text + len)
            off = (size_t)(e - text);
        conf_errf(err, n, "invalid JSON at offset %zu", off);
        return CAP_EJSON;
    }
    size_t used = end ? (size_t)(end - text) : len;
    for (size_t i = used; i < len; i++) {
        char ch = text[i];
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n' && ch != '\0') {
            cJSON_Delete(root);
            conf_errf(err, n, "unexpected trailing data at offset %zu", i);
            return CAP_EJSON;
        }
        if (ch == '\0') {
            cJSON_Delete(root);
            conf_errf(err, n, "NUL byte at offset %zu", i);
            return CAP_EJSON;
        }
    }
    char path[256] = "$";
    int rc = check_tree(root, 0, path, sizeof path, err, n);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return CAP_OK;
}

void conf_kv_free(conf_kv *kv, size_t n)
{
    if (!kv)
        return;
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const conf_kv *)a)->key, ((const conf_kv *)b)->key);
}

void conf_kv_sort(conf_kv *kv, size_t n)
{
    if (n > 1)
        qsort(kv, n, sizeof *kv, kv_cmp);
}

const char *conf_kv_get(const conf_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].value;
    return NULL;
}

int conf_json_string_map(const cJSON *obj, const char *what, size_t max, conf_kv **out,
                         size_t *n_out, char *err, size_t n)
{
    *out = NULL;
    *n_out = 0;
    if (!cJSON_IsObject(obj)) {
        conf_errf(err, n, "%s: not an object", what);
        return CAP_EJSON;
    }
    size_t count = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!cJSON_IsString(c)) {
            conf_errf(err, n, "%s.%.80s: not a string", what, c->string);
            return CAP_EJSON;
        }
        count++;
    }
    if (count > max) {
        conf_errf(err, n, "%s: %zu entries, over the bound of %zu", what, count, max);
        return CAP_EJSON;
    }
    if (count == 0)
        return CAP_OK;
    conf_kv *kv = calloc(count, sizeof *kv);
    if (!kv)
        return CAP_ENOMEM;
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next, i++) {
        kv[i].key = strdup(c->string);
        kv[i].value = strdup(c->valuestring);
        if (!kv[i].key || !kv[i].value) {
            conf_kv_free(kv, i + 1);
            return CAP_ENOMEM;
        }
    }
    conf_kv_sort(kv, count);
    *out = kv;
    *n_out = count;
    return CAP_OK;
}

/* ---- writer ---- */

static int jw_grow(conf_jw *w, size_t more)
{
    if (w->failed)
        return -1;
    if (w->len + more + 1 <= w->cap)
        return 0;
    size_t nc = w->cap ? w->cap : 256;
    while (nc < w->len + more + 1) {
        if (nc > SIZE_MAX / 2) {
            w->failed = 1;
            return -1;
        }
        nc *= 2;
    }
    char *nb = realloc(w->buf, nc);
    if (!nb) {
        w->failed = 1;
        return -1;
    }
    w->buf = nb;
    w->cap = nc;
    return 0;
}

void conf_jw_raw(conf_jw *w, const char *s, size_t n)
{
    if (jw_grow(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void conf_jw_str(conf_jw *w, const char *s)
{
    conf_jw_raw(w, s, strlen(s));
}

void conf_jw_printf(conf_jw *w, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) {
        w->failed = 1;
        return;
    }
    if ((size_t)k < sizeof tmp) {
        conf_jw_raw(w, tmp, (size_t)k);
        return;
    }
    char *big = malloc((size_t)k + 1);
    if (!big) {
        w->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    conf_jw_raw(w, big, (size_t)k);
    free(big);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t want = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
                : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (want == 0 || want > n)
        return 0;
    return cap_utf8_check(s, want) == CAP_UTF8_VALID ? want : 0;
}

void conf_jw_quote(conf_jw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    conf_jw_raw(w, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t k = utf8_len(p + i, n - i);
            if (k == 0) {
                conf_jw_raw(w, "\\ufffd", 6);
                i++;
            } else if (k == 3 && p[i] == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
                conf_jw_raw(w, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
                i += 3;
            } else {
                conf_jw_raw(w, (const char *)p + i, k);
                i += k;
            }
            continue;
        }
        switch (c) {
        case '"': conf_jw_raw(w, "\\\"", 2); break;
        case '\\': conf_jw_raw(w, "\\\\", 2); break;
        case '\b': conf_jw_raw(w, "\\b", 2); break;
        case '\f': conf_jw_raw(w, "\\f", 2); break;
        case '\n': conf_jw_raw(w, "\\n", 2); break;
        case '\r': conf_jw_raw(w, "\\r", 2); break;
        case '\t': conf_jw_raw(w, "\\t", 2); break;
        default:
            if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                conf_jw_raw(w, e, 6);
            } else {
                conf_jw_raw(w, (const char *)p + i, 1);
            }
        }
        i++;
    }
    conf_jw_raw(w, "\"", 1);
}

void conf_jw_xml(conf_jw *w, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t k = utf8_len(p + i, n - i);
            if (k == 0) {
                conf_jw_str(w, "\xEF\xBF\xBD");
                i++;
            } else {
                conf_jw_raw(w, (const char *)p + i, k);
                i += k;
            }
            continue;
        }
        switch (c) {
        case '"': conf_jw_str(w, "&#34;"); break;
        case '\'': conf_jw_str(w, "&#39;"); break;
        case '&': conf_jw_str(w, "&amp;"); break;
        case '<': conf_jw_str(w, "&lt;"); break;
        case '>': conf_jw_str(w, "&gt;"); break;
        case '\t': conf_jw_str(w, "&#x9;"); break;
        case '\n': conf_jw_str(w, "&#xA;"); break;
        case '\r': conf_jw_str(w, "&#xD;"); break;
        default:
            if (c < 0x20)
                conf_jw_str(w, "\xEF\xBF\xBD");
            else
                conf_jw_raw(w, (const char *)p + i, 1);
        }
        i++;
    }
}

void conf_jw_free(conf_jw *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

int conf_jw_take(conf_jw *w, char **out, size_t *len)
{
    if (!w->failed && !w->buf)
        conf_jw_raw(w, "", 0);
    if (w->failed) {
        conf_jw_free(w);
        return CAP_ENOMEM;
    }
    *out = w->buf;
    if (len)
        *len = w->len;
    memset(w, 0, sizeof *w);
    return CAP_OK;
}
