/* Strict JSON for the harness: a parser front end over cJSON that rejects
 * what cJSON alone lets through, and a small writer whose output is
 * byte-compatible with Go's encoding/json (the upstream kit's reports).
 *
 * Parsing (conf_json_parse): the text must be valid UTF-8 without NUL
 * bytes, hold exactly one JSON value (only blanks after it), nest at most
 * CONF_JSON_MAX_DEPTH deep, hold no raw control character and no \u0000
 * inside a string (cap_json_text_check), and no object may repeat a key (compared
 * bytewise; Go matches keys case-insensitively and lets the last one win,
 * this parser rejects instead). Objects hold at most CONF_JSON_MAX_MEMBERS
 * members. The error is one line in err ("duplicate key \"id\" at $.params").
 *
 * Writing (conf_jw): a growable buffer; strings are escaped as Go's
 * encoder does (\" \\ \b \f \n \r \t, other controls as \u00XX, <, >, &,
 * U+2028 and U+2029 as \uXXXX, invalid UTF-8 as \ufffd), so two runs with
 * the same content give the same bytes. */
#ifndef CONF_JSON_H
#define CONF_JSON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define CONF_JSON_MAX_DEPTH 32
#define CONF_JSON_MAX_MEMBERS 10000

/* Parses text[0..len). On success *out is a cJSON tree the caller frees
 * with cJSON_Delete. On failure returns CAP_EJSON (or CAP_ENOMEM) and
 * writes a one-line reason to err (n bytes, always NUL-terminated). */
int conf_json_parse(const char *text, size_t len, cJSON **out, char *err, size_t n);

/* A string key/value pair. Both owned by whatever structure holds it. */
typedef struct {
    char *key;
    char *value;
} conf_kv;

/* Frees n pairs and the array. NULL accepted. */
void conf_kv_free(conf_kv *kv, size_t n);

/* Sorts pairs by key (bytewise). */
void conf_kv_sort(conf_kv *kv, size_t n);

/* The value of key, or NULL. */
const char *conf_kv_get(const conf_kv *kv, size_t n, const char *key);

/* Reads a JSON object whose members are all strings into a fresh sorted
 * array (*out owned by the caller, conf_kv_free). `what` names the object
 * in the error ("params"). At most max members. */
int conf_json_string_map(const cJSON *obj, const char *what, size_t max, conf_kv **out,
                         size_t *n_out, char *err, size_t n);

/* ---- small helpers shared by the harness modules ---- */

/* printf into an error buffer of n bytes (always NUL-terminated, cut with
 * "..." when too long), as one line of valid UTF-8: control bytes and bytes
 * of invalid UTF-8 in the result (from a quoted key or value) are written
 * as \xNN. A NULL err or n == 0 is accepted and writes nothing. */
void conf_errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void conf_verrf(char *err, size_t n, const char *fmt, va_list ap);

/* Copies s (NULL: "") into out (n > 0 bytes) as conf_errf writes its
 * result: one line of valid UTF-8, cut with "..." when too long. For a
 * string from a trace or an adapter printed in a line of output. Returns
 * out. */
const char *conf_one_line(const char *s, char *out, size_t n);

/* Makes room for `need` elements of `elem` bytes in the heap array *arr
 * whose capacity is *cap elements: the capacity doubles (from 16) until it
 * holds need. CAP_OK, or CAP_ENOMEM with *arr and *cap unchanged. */
int conf_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* The writer. Zero-initialise, append, take buf (malloc'd, NUL-terminated,
 * owned by the caller) or call conf_jw_free. After an allocation failure
 * every append is a no-op and `failed` is set. */
typedef struct {
    char *buf;
    size_t len;
    size_t cap;
    int failed;
} conf_jw;

void conf_jw_raw(conf_jw *w, const char *s, size_t n);
void conf_jw_str(conf_jw *w, const char *s);           /* raw text, NUL-terminated */
void conf_jw_printf(conf_jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void conf_jw_quote(conf_jw *w, const char *s);         /* a JSON string literal */
void conf_jw_xml(conf_jw *w, const char *s);           /* XML attribute text */
void conf_jw_free(conf_jw *w);
/* Hands over the buffer: CAP_OK with *out (free()) and *len, or CAP_ENOMEM. */
int conf_jw_take(conf_jw *w, char **out, size_t *len);

#endif
