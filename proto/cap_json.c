/* proto3 canonical JSON <-> protobuf-c messages, driven by the descriptors.
 *
 * Output is written straight from the message into a growing buffer (no
 * intermediate tree), so the text is byte-deterministic and needs no
 * post-processing. Input is parsed with cJSON and then walked against the
 * schema, building the message exactly the way protobuf-c's unpacker does
 * (malloc'd structs, strings, bytes and arrays), so that
 * protobuf_c_message_free_unpacked() can free it, and free a half-built one
 * on error. */
#include "cap_json.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_base64.h"
#include "cap_schema.h"
#include "cap_buf.h"
#include "cap_utf8.h"

#define CAP_JSON_DEFAULT_MAX ((size_t)16 << 20)

#define MEMBER(msg, off) ((char *)(msg) + (off))
#define CMEMBER(msg, off) ((const char *)(msg) + (off))

/* google.protobuf.Timestamp range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define TS_MIN_SECONDS INT64_C(-62135596800)
#define TS_MAX_SECONDS INT64_C(253402300799)
/* Days from 0001-01-01 to 1970-01-01 (proleptic Gregorian). */
#define DAYS_0001_TO_1970 719162

/* ===================================================================== */
/* Schema helpers                                                         */
/* ===================================================================== */

static int is_64bit_type(ProtobufCType t)
{
    return t == PROTOBUF_C_TYPE_INT64 || t == PROTOBUF_C_TYPE_SINT64 ||
           t == PROTOBUF_C_TYPE_SFIXED64 || t == PROTOBUF_C_TYPE_UINT64 ||
           t == PROTOBUF_C_TYPE_FIXED64;
}

static int is_map_field(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_MESSAGE &&
           cap_desc_is_map_entry(f->descriptor);
}

static int is_oneof(const ProtobufCFieldDescriptor *f)
{
    return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

static size_t *repeated_count(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (size_t *)MEMBER(m, f->quantifier_offset);
}

/* The proto3 JSON name: underscores dropped, the letter after each one
 * upper-cased (job_request -> jobRequest, sha256 -> sha256). */
static const char *json_name(const char *name, char *buf, size_t n)
{
    size_t o = 0;
    int up = 0;
    for (; *name && o + 1 < n; name++) {
        if (*name == '_') {
            up = 1;
            continue;
        }
        buf[o++] = (up && *name >= 'a' && *name <= 'z') ? (char)(*name - 'a' + 'A') : *name;
        up = 0;
    }
    buf[o] = '\0';
    return buf;
}

/* True when key is the JSON name of the proto field name, computed on the
 * fly so that no buffer (and no length limit) is involved. */
static int json_name_equals(const char *name, const char *key)
{
    int up = 0;
    for (; *name; name++) {
        if (*name == '_') {
            up = 1;
            continue;
        }
        char c = (up && *name >= 'a' && *name <= 'z') ? (char)(*name - 'a' + 'A') : *name;
        up = 0;
        if (*key++ != c)
            return 0;
    }
    return *key == '\0';
}

static int find_field(const ProtobufCMessageDescriptor *d, const char *key)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (json_name_equals(d->fields[i].name, key) || strcmp(d->fields[i].name, key) == 0)
            return (int)i;
    return -1;
}

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (m)
        protobuf_c_message_init(d, m);
    return m;
}

/* ===================================================================== */
/* Numbers                                                                */
/* ===================================================================== */

/* The shortest "%.Ng" text that reads back as exactly the same value; the
 * loop always ends because 9 (float) or 17 (double) digits are enough. */
static void shortest_float(float f, char *buf, size_t n)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return;
    }
}

static void shortest_double(double d, char *buf, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and nothing else, so that
 * strtod's extras (hex, "inf", leading spaces) are refused. */
static int is_json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return 0;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* Parses -?[0-9]+ into sign and magnitude. Returns 0, -1 when s is not a
 * decimal integer, -2 when it does not fit in 64 bits. */
static int decimal_parse(const char *s, int *neg, uint64_t *mag)
{
    int overflow = 0;
    uint64_t v = 0;
    *neg = (*s == '-');
    if (*neg)
        s++;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned dg = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - dg) / 10)
            overflow = 1;
        else
            v = v * 10 + dg;
    }
    *mag = v;
    return overflow ? -2 : 0;
}

static const char *int_type_name(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SINT32: return "sint32";
    case PROTOBUF_C_TYPE_SFIXED32: return "sfixed32";
    case PROTOBUF_C_TYPE_UINT32: return "uint32";
    case PROTOBUF_C_TYPE_FIXED32: return "fixed32";
    case PROTOBUF_C_TYPE_INT64: return "int64";
    case PROTOBUF_C_TYPE_SINT64: return "sint64";
    case PROTOBUF_C_TYPE_SFIXED64: return "sfixed64";
    case PROTOBUF_C_TYPE_UINT64: return "uint64";
    case PROTOBUF_C_TYPE_FIXED64: return "fixed64";
    default: return "int32"; /* int32 and enums */
    }
}

/* Stores sign+magnitude into the storage of an integer (or enum) type.
 * Returns -1 when the value is outside the type's range. */
static int int_store(ProtobufCType t, int neg, uint64_t mag, void *dst)
{
    int is_unsigned = t == PROTOBUF_C_TYPE_UINT32 || t == PROTOBUF_C_TYPE_FIXED32 ||
                      t == PROTOBUF_C_TYPE_UINT64 || t == PROTOBUF_C_TYPE_FIXED64;
    if (is_unsigned) {
        uint64_t hi = is_64bit_type(t) ? UINT64_MAX : UINT32_MAX;
        if ((neg && mag != 0) || mag > hi)
            return -1;
        if (is_64bit_type(t))
            *(uint64_t *)dst = mag;
        else
            *(uint32_t *)dst = (uint32_t)mag;
        return 0;
    }
    int64_t v;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return -1;
        v = mag == 0 ? 0 : -(int64_t)(mag - 1) - 1; /* no overflow at INT64_MIN */
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return -1;
        v = (int64_t)mag;
    }
    if (is_64bit_type(t)) {
        *(int64_t *)dst = v;
        return 0;
    }
    if (v < INT32_MIN || v > INT32_MAX)
        return -1;
    *(int32_t *)dst = (int32_t)v;
    return 0;
}

/* ===================================================================== */
/* Timestamps (RFC 3339, proleptic Gregorian, UTC)                        */
/* ===================================================================== */

static const unsigned short days_before_month[12] = {0,   31,  59,  90,  120, 151,
                                                     181, 212, 243, 273, 304, 334};

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return dim[m - 1] + (m == 2 && is_leap(y));
}

/* Days from 1970-01-01 to y-m-d, for 1 <= y <= 9999. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t py = y - 1; /* whole years before y, counted from year 1 */
    int64_t days = 365 * py + py / 4 - py / 100 + py / 400;
    days += days_before_month[m - 1] + (m > 2 && is_leap(y)) + (d - 1);
    return days - DAYS_0001_TO_1970;
}

/* Inverse of days_from_civil: peel off 400-, 100-, 4- and 1-year cycles
 * from the day count since 0001-01-01. */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t n = days + DAYS_0001_TO_1970;
    int64_t n400 = n / 146097;
    n %= 146097;
    int64_t n100 = n / 36524;
    if (n100 == 4) /* last day of a leap 400-year cycle */
        n100 = 3;
    n -= n100 * 36524;
    int64_t n4 = n / 1461;
    n %= 1461;
    int64_t n1 = n / 365;
    if (n1 == 4) /* last day of a leap 4-year cycle */
        n1 = 3;
    n -= n1 * 365;
    *y = n400 * 400 + n100 * 100 + n4 * 4 + n1 + 1;
    int month = 12;
    while (month > 1 &&
           n < days_before_month[month - 1] + (month > 2 && is_leap(*y)))
        month--;
    *m = month;
    *d = (int)(n - days_before_month[month - 1] - (month > 2 && is_leap(*y))) + 1;
}

/* Formats an in-range Timestamp; returns -1 when it is out of range. The
 * fraction has 0, 3, 6 or 9 digits: the shortest of those that is exact. */
static int rfc3339_format(int64_t secs, int32_t nanos, char *buf, size_t n)
{
    if (secs < TS_MIN_SECONDS || secs > TS_MAX_SECONDS || nanos < 0 || nanos > 999999999)
        return -1;
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    int mo, d;
    civil_from_days(days, &y, &mo, &d);
    int len = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d", (int)y, mo, d,
                       (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    if (nanos == 0)
        snprintf(buf + len, n - (size_t)len, "Z");
    else if (nanos % 1000000 == 0)
        snprintf(buf + len, n - (size_t)len, ".%03dZ", (int)(nanos / 1000000));
    else if (nanos % 1000 == 0)
        snprintf(buf + len, n - (size_t)len, ".%06dZ", (int)(nanos / 1000));
    else
        snprintf(buf + len, n - (size_t)len, ".%09dZ", (int)nanos);
    return 0;
}

/* Reads exactly n decimal digits. */
static int read_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

static int expect_char(const char **s, char a, char b)
{
    if (**s != a && **s != b)
        return -1;
    (*s)++;
    return 0;
}

/* Reads "[.fraction]" with 1 to 9 digits, scaled to nanoseconds. */
static const char *read_fraction(const char **s, int32_t *nanos)
{
    *nanos = 0;
    if (**s != '.')
        return NULL;
    (*s)++;
    int digits = 0;
    int32_t v = 0;
    while (**s >= '0' && **s <= '9') {
        if (++digits > 9)
            return "more than 9 fractional digits";
        v = v * 10 + (**s - '0');
        (*s)++;
    }
    if (digits == 0)
        return "no digits after the decimal point";
    for (; digits < 9; digits++)
        v *= 10;
    *nanos = v;
    return NULL;
}

/* Reads "Z" or "+hh:mm" / "-hh:mm" into an offset east of UTC, in seconds. */
static const char *read_offset(const char **s, int *offset)
{
    if (**s == 'Z' || **s == 'z') {
        (*s)++;
        *offset = 0;
        return NULL;
    }
    int sign = **s == '+' ? 1 : **s == '-' ? -1 : 0;
    int hh, mm;
    if (sign == 0)
        return "expected 'Z' or a +hh:mm / -hh:mm offset";
    (*s)++;
    if (read_digits(s, 2, &hh) || expect_char(s, ':', ':') || read_digits(s, 2, &mm))
        return "malformed UTC offset (expected +hh:mm or -hh:mm)";
    if (hh > 23 || mm > 59)
        return "UTC offset out of range";
    *offset = sign * (hh * 3600 + mm * 60);
    return NULL;
}

/* Parses an RFC 3339 date-time. Returns NULL on success, else the reason. */
static const char *rfc3339_parse(const char *s, int64_t *secs, int32_t *nanos)
{
    int y, mo, d, h, mi, se, offset;
    if (read_digits(&s, 4, &y) || expect_char(&s, '-', '-') || read_digits(&s, 2, &mo) ||
        expect_char(&s, '-', '-') || read_digits(&s, 2, &d) || expect_char(&s, 'T', 't') ||
        read_digits(&s, 2, &h) || expect_char(&s, ':', ':') || read_digits(&s, 2, &mi) ||
        expect_char(&s, ':', ':') || read_digits(&s, 2, &se))
        return "not an RFC 3339 timestamp (expected YYYY-MM-DDThh:mm:ss[.fraction]Z)";
    const char *why = read_fraction(&s, nanos);
    if (!why)
        why = read_offset(&s, &offset);
    if (why)
        return why;
    if (*s != '\0')
        return "trailing characters after the timestamp";
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return "no such date";
    if (h > 23 || mi > 59 || se > 59)
        return "time of day out of range";
    *secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    if (*secs < TS_MIN_SECONDS || *secs > TS_MAX_SECONDS)
        return "timestamp outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z";
    return NULL;
}

/* ===================================================================== */
/* Map entries in key order (shared by output and input)                  */
/* ===================================================================== */

typedef struct {
    const char *key; /* string and bool keys; NULL for integer keys */
    char num[24];    /* decimal text of an integer key */
    size_t idx;      /* position in the map, to break ties deterministically */
    const ProtobufCMessage *entry;
} map_item;

static const char *item_key(const map_item *it)
{
    return it->key ? it->key : it->num;
}

static void map_key_text(const ProtobufCFieldDescriptor *kf, const ProtobufCMessage *e,
                         map_item *it)
{
    const char *p = CMEMBER(e, kf->offset);
    it->key = NULL;
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        it->key = s ? s : "";
        break;
    }
    case PROTOBUF_C_TYPE_BOOL:
        it->key = *(const protobuf_c_boolean *)p ? "true" : "false";
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(it->num, sizeof it->num, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(it->num, sizeof it->num, "%" PRIu64, *(const uint64_t *)p);
        break;
    default:
        if (is_64bit_type(kf->type))
            snprintf(it->num, sizeof it->num, "%" PRId64, *(const int64_t *)p);
        else
            snprintf(it->num, sizeof it->num, "%" PRId32, *(const int32_t *)p);
        break;
    }
}

/* Bytewise (strcmp compares as unsigned char), then by position. */
static int map_item_cmp(const void *a, const void *b)
{
    const map_item *x = a, *y = b;
    int c = strcmp(item_key(x), item_key(y));
    if (c != 0)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The n entries of a map field sorted by key text, or NULL when out of
 * memory. The caller frees the array. */
static map_item *map_sorted(ProtobufCMessage *const *entries, size_t n,
                            const ProtobufCFieldDescriptor *kf)
{
    map_item *items = calloc(n, sizeof *items);
    if (!items)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        items[i].idx = i;
        items[i].entry = entries[i];
        map_key_text(kf, entries[i], &items[i]);
    }
    if (n > 1)
        qsort(items, n, sizeof *items, map_item_cmp);
    return items;
}

/* ===================================================================== */
/* Output                                                                 */
/* ===================================================================== */

typedef struct {
    cap_buf out; /* out.failed: an allocation failed; later writes are no-ops */
    int pretty;
    unsigned depth;
} jw;

static void jw_putn(jw *w, const char *s, size_t n)
{
    cap_buf_append(&w->out, s, n);
}

static void jw_puts(jw *w, const char *s)
{
    jw_putn(w, s, strlen(s));
}

static void jw_newline(jw *w)
{
    if (!w->pretty)
        return;
    jw_putn(w, "\n", 1);
    for (unsigned i = 0; i < w->depth; i++)
        jw_putn(w, "  ", 2);
}

static void jw_open(jw *w, const char *bracket, int *first)
{
    jw_puts(w, bracket);
    w->depth++;
    *first = 1;
}

/* Separator before an object member or array element. */
static void jw_next(jw *w, int *first)
{
    if (!*first)
        jw_putn(w, ",", 1);
    *first = 0;
    jw_newline(w);
}

static void jw_close(jw *w, const char *bracket, int first)
{
    w->depth--;
    if (!first)
        jw_newline(w);
    jw_puts(w, bracket);
}

static void jw_colon(jw *w)
{
    jw_puts(w, w->pretty ? ": " : ":");
}

/* Writes the valid UTF-8 run s[0..n) with JSON escapes. */
static void jw_escaped_run(jw *w, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jw_putn(w, s + start, i - start);
        char esc[8];
        switch (c) {
        case '"': jw_puts(w, "\\\""); break;
        case '\\': jw_puts(w, "\\\\"); break;
        case '\b': jw_puts(w, "\\b"); break;
        case '\f': jw_puts(w, "\\f"); break;
        case '\n': jw_puts(w, "\\n"); break;
        case '\r': jw_puts(w, "\\r"); break;
        case '\t': jw_puts(w, "\\t"); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            jw_puts(w, esc);
        }
        start = i + 1;
    }
    jw_putn(w, s + start, n - start);
}

/* A JSON string. A message built in memory may hold invalid UTF-8, which
 * JSON cannot carry: each invalid byte becomes U+FFFD. */
static void jw_string(jw *w, const char *s, size_t n)
{
    jw_putn(w, "\"", 1);
    size_t i = 0;
    while (i < n) {
        size_t bad = cap_utf8_check((const uint8_t *)s + i, n - i);
        size_t end = bad == CAP_UTF8_VALID ? n : i + bad;
        jw_escaped_run(w, s + i, end - i);
        if (end == n)
            break;
        jw_puts(w, "\\ufffd");
        i = end + 1;
    }
    jw_putn(w, "\"", 1);
}

/* Member key: the JSON name of a proto field (only [A-Za-z0-9], no escaping). */
static void jw_field_key(jw *w, int *first, const char *name)
{
    char buf[256];
    jw_next(w, first);
    jw_putn(w, "\"", 1);
    jw_puts(w, json_name(name, buf, sizeof buf));
    jw_putn(w, "\"", 1);
    jw_colon(w);
}

static void emit_message(jw *w, const ProtobufCMessage *m);

static void emit_float(jw *w, double d, int is_float)
{
    char buf[40];
    if (isnan(d)) {
        jw_puts(w, "\"NaN\"");
    } else if (isinf(d)) {
        jw_puts(w, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else {
        /* %g never yields anything JSON rejects for a finite value. */
        if (is_float)
            shortest_float((float)d, buf, sizeof buf);
        else
            shortest_double(d, buf, sizeof buf);
        jw_puts(w, buf);
    }
}

static void emit_enum(jw *w, const ProtobufCEnumDescriptor *ed, int32_t v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);
    if (ev) {
        jw_string(w, ev->name, strlen(ev->name));
    } else {
        char buf[16];
        snprintf(buf, sizeof buf, "%" PRId32, v);
        jw_puts(w, buf);
    }
}

static void emit_bytes(jw *w, const ProtobufCBinaryData *b)
{
    size_t n = cap_base64_encoded_len(b->len);
    char *tmp = malloc(n + 1);
    if (!tmp) {
        w->out.failed = 1;
        return;
    }
    cap_base64_encode(b->data, b->len, tmp);
    jw_putn(w, "\"", 1);
    jw_putn(w, tmp, n);
    jw_putn(w, "\"", 1);
    free(tmp);
}

/* A message-typed value; an absent one (a map value the sender left out)
 * is the empty message. */
static void emit_submessage(jw *w, const ProtobufCMessageDescriptor *d,
                            const ProtobufCMessage *m)
{
    if (m)
        emit_message(w, m);
    else if (cap_desc_is_timestamp(d))
        jw_puts(w, "\"1970-01-01T00:00:00Z\"");
    else
        jw_puts(w, "{}");
}

/* One value of field f's type, stored at p. */
static void emit_value(jw *w, const ProtobufCFieldDescriptor *f, const void *p)
{
    char buf[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(buf, sizeof buf, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(buf, sizeof buf, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, sizeof buf, "\"%" PRId64 "\"", *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof buf, "\"%" PRIu64 "\"", *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        snprintf(buf, sizeof buf, "%s", *(const protobuf_c_boolean *)p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_FLOAT: emit_float(w, *(const float *)p, 1); return;
    case PROTOBUF_C_TYPE_DOUBLE: emit_float(w, *(const double *)p, 0); return;
    case PROTOBUF_C_TYPE_ENUM: emit_enum(w, f->descriptor, *(const int32_t *)p); return;
    case PROTOBUF_C_TYPE_BYTES: emit_bytes(w, p); return;
    case PROTOBUF_C_TYPE_MESSAGE:
        emit_submessage(w, f->descriptor, *(ProtobufCMessage *const *)p);
        return;
    case PROTOBUF_C_TYPE_STRING:
    default: {
        const char *s = *(char *const *)p;
        s = s ? s : "";
        jw_string(w, s, strlen(s));
        return;
    }
    }
    jw_puts(w, buf);
}

static void emit_list(jw *w, const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
    size_t n = *(const size_t *)CMEMBER(m, f->quantifier_offset);
    const char *arr = *(char *const *)CMEMBER(m, f->offset);
    size_t size = cap_field_elem_size(f->type);
    int first;
    jw_open(w, "[", &first);
    for (size_t i = 0; i < n; i++) {
        jw_next(w, &first);
        emit_value(w, f, arr + i * size);
    }
    jw_close(w, "]", first);
}

/* Map entries in key order. Should a decoded map hold a key twice, the
 * last one wins, as in protobuf's own map semantics. */
static void emit_map(jw *w, const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
    size_t n = *(const size_t *)CMEMBER(m, f->quantifier_offset);
    ProtobufCMessage *const *entries = *(ProtobufCMessage *const *const *)CMEMBER(m, f->offset);
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    map_item *items = map_sorted(entries, n, &ed->fields[0]);
    if (!items) {
        w->out.failed = 1;
        return;
    }
    int first;
    jw_open(w, "{", &first);
    for (size_t i = 0; i < n; i++) {
        const char *key = item_key(&items[i]);
        if (i + 1 < n && strcmp(key, item_key(&items[i + 1])) == 0)
            continue;
        jw_next(w, &first);
        jw_string(w, key, strlen(key));
        jw_colon(w);
        emit_value(w, &ed->fields[1], CMEMBER(items[i].entry, ed->fields[1].offset));
    }
    jw_close(w, "}", first);
    free(items);
}

/* True when a value equals its proto3 default. Floats count as default only
 * when all bits are zero, so -0.0 is kept (as the canonical encoder does). */
static int value_is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT: {
        uint32_t bits;
        memcpy(&bits, p, sizeof bits);
        return bits == 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, p, sizeof bits);
        return bits == 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(ProtobufCMessage *const *)p == NULL;
    case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)p == 0;
    default:
        if (is_64bit_type(f->type))
            return *(const uint64_t *)p == 0;
        return *(const uint32_t *)p == 0;
    }
}

static int field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *p = CMEMBER(m, f->offset);
    if (is_oneof(f)) /* a set member is always written, even at its default */
        return *(const uint32_t *)CMEMBER(m, f->quantifier_offset) == f->id;
    switch (f->label) {
    case PROTOBUF_C_LABEL_REPEATED: return *(const size_t *)CMEMBER(m, f->quantifier_offset) != 0;
    case PROTOBUF_C_LABEL_REQUIRED: return 1;
    case PROTOBUF_C_LABEL_OPTIONAL:
        /* Explicit presence (proto2, proto3 `optional`). */
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            return *(ProtobufCMessage *const *)p != NULL;
        if (f->type == PROTOBUF_C_TYPE_STRING)
            return *(char *const *)p != NULL && *(char *const *)p != f->default_value;
        return *(const protobuf_c_boolean *)CMEMBER(m, f->quantifier_offset) != 0;
    default: return !value_is_default(f, p);
    }
}

/* A message as a JSON object, fields in descriptor (field-number) order. */
static void emit_object(jw *w, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    int first;
    jw_open(w, "{", &first);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!field_present(m, f))
            continue;
        jw_field_key(w, &first, f->name);
        if (is_map_field(f))
            emit_map(w, f, m);
        else if (f->label == PROTOBUF_C_LABEL_REPEATED)
            emit_list(w, f, m);
        else
            emit_value(w, f, CMEMBER(m, f->offset));
    }
    jw_close(w, "}", first);
}

/* A Timestamp outside the RFC 3339 range has no string form; it is written
 * as a plain {"seconds","nanos"} object so that nothing is hidden (parsing
 * that back is then an error, as it should be). */
static void emit_message(jw *w, const ProtobufCMessage *m)
{
    if (cap_desc_is_timestamp(m->descriptor)) {
        const Google__Protobuf__Timestamp *ts = (const Google__Protobuf__Timestamp *)m;
        char buf[48];
        if (rfc3339_format(ts->seconds, ts->nanos, buf, sizeof buf) == 0) {
            jw_putn(w, "\"", 1);
            jw_puts(w, buf);
            jw_putn(w, "\"", 1);
            return;
        }
    }
    emit_object(w, m);
}

int cap_json_from_message(const ProtobufCMessage *msg, int pretty, char **out)
{
    if (!out)
        return CAP_EINVAL;
    *out = NULL;
    if (!msg)
        return CAP_EINVAL;
    jw w = {0};
    w.pretty = pretty != 0;
    emit_message(&w, msg);
    if (w.pretty)
        jw_putn(&w, "\n", 1);
    if (w.out.failed) {
        free(w.out.data);
        return CAP_ENOMEM;
    }
    *out = (char *)w.out.data;
    return CAP_OK;
}

/* ===================================================================== */
/* Input: context, paths and diagnostics                                  */
/* ===================================================================== */

typedef struct {
    cap_diag *diag;
    size_t len;
    char path[256];
} jp;

/* Copies s for a diagnostic: quotes, backslashes and control bytes escaped,
 * bytes of invalid UTF-8 as \xNN, cut at a character boundary with "...". */
static const char *sanitize(const char *s, char *out, size_t n)
{
    size_t len = strlen(s), o = 0;
    int utf8_ok = cap_utf8_check((const uint8_t *)s, len) == CAP_UTF8_VALID;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        char tmp[8];
        size_t tl = 1, used = 1;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            tl = 2;
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8_ok)) {
            tl = (size_t)snprintf(tmp, sizeof tmp, "\\x%02X", c);
        } else {
            used = tl = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            memcpy(tmp, s + i, tl);
        }
        if (o + tl + 4 > n) {
            memcpy(out + o, "...", 4);
            return out;
        }
        memcpy(out + o, tmp, tl);
        o += tl;
        i += used;
    }
    out[o] = '\0';
    return out;
}

static void path_append(jp *p, const char *s)
{
    size_t room = sizeof p->path - p->len;
    int n = snprintf(p->path + p->len, room, "%s", s);
    if (n > 0)
        p->len = (size_t)n >= room ? sizeof p->path - 1 : p->len + (size_t)n;
}

static int is_identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Appends ".key" (or ["key"] when key is not an identifier); returns the
 * previous length for path_pop. */
static size_t path_push_key(jp *p, const char *key)
{
    size_t old = p->len;
    if (is_identifier(key)) {
        path_append(p, ".");
        path_append(p, key);
    } else {
        char esc[96];
        path_append(p, "[\"");
        path_append(p, sanitize(key, esc, sizeof esc));
        path_append(p, "\"]");
    }
    return old;
}

static size_t path_push_index(jp *p, size_t i)
{
    size_t old = p->len;
    char buf[32];
    snprintf(buf, sizeof buf, "[%zu]", i);
    path_append(p, buf);
    return old;
}

static void path_pop(jp *p, size_t old)
{
    p->len = old;
    p->path[old] = '\0';
}

__attribute__((format(printf, 2, 3))) static int jp_fail(jp *p, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return cap_diag_set(p->diag, CAP_EJSON, -1, p->path, "%s", reason);
}

static int jp_nomem(jp *p)
{
    return cap_diag_set(p->diag, CAP_ENOMEM, -1, p->path, "out of memory");
}

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    return "an object";
}

static int jp_type(jp *p, const char *want, const cJSON *v)
{
    return jp_fail(p, "expected %s, got %s", want, json_type_name(v));
}

/* ===================================================================== */
/* Input: scalar values                                                   */
/* ===================================================================== */

/* A JSON number as an integer: integral, and for 64-bit fields below 2^53
 * in magnitude. cJSON only hands over the double, and from 2^53 on a
 * double no longer tells neighbouring integers apart (2^53 + 1 arrives as
 * 2^53), so such values must be written as strings to be exact. */
static int number_to_integer(jp *p, double d, ProtobufCType t, int *neg, uint64_t *mag)
{
    char txt[32];
    double a = d < 0 ? -d : d;
    if (isinf(d) || (a >= 9007199254740992.0 && !is_64bit_type(t)))
        return jp_fail(p, "integer out of %s range", int_type_name(t));
    shortest_double(d, txt, sizeof txt);
    if (a >= 9007199254740992.0)
        return jp_fail(p, "number %s is too large to be exact; write 64-bit integers as strings",
                       txt);
    uint64_t u = (uint64_t)a;
    if ((double)u != a)
        return jp_fail(p, "number %s is not an integer", txt);
    *neg = d < 0;
    *mag = u;
    return CAP_OK;
}

/* Any integer type (and enum numbers): a number or a decimal string. */
static int parse_integer(jp *p, const cJSON *v, ProtobufCType t, void *dst)
{
    int neg = 0, rc;
    uint64_t mag = 0;
    if (cJSON_IsNumber(v)) {
        rc = number_to_integer(p, v->valuedouble, t, &neg, &mag);
        if (rc)
            return rc;
    } else if (cJSON_IsString(v)) {
        rc = decimal_parse(v->valuestring, &neg, &mag);
        if (rc == -1)
            return jp_fail(p, "string is not a decimal integer");
        if (rc == -2)
            return jp_fail(p, "integer out of %s range", int_type_name(t));
    } else {
        return jp_type(p, "an integer (number or decimal string)", v);
    }
    if (int_store(t, neg, mag, dst))
        return jp_fail(p, "integer out of %s range", int_type_name(t));
    return CAP_OK;
}

/* "NaN", "Infinity", "-Infinity", or a JSON number written as a string. */
static int parse_fp_string(jp *p, const char *s, int is_float, void *dst)
{
    double special;
    if (strcmp(s, "NaN") == 0) {
        special = NAN;
    } else if (strcmp(s, "Infinity") == 0) {
        special = INFINITY;
    } else if (strcmp(s, "-Infinity") == 0) {
        special = -INFINITY;
    } else {
        if (!is_json_number(s))
            return jp_fail(p, "string is not a number");
        if (is_float) {
            float f = strtof(s, NULL);
            if (isinf(f))
                return jp_fail(p, "number out of float range");
            *(float *)dst = f;
        } else {
            double d = strtod(s, NULL);
            if (isinf(d))
                return jp_fail(p, "number out of double range");
            *(double *)dst = d;
        }
        return CAP_OK;
    }
    if (is_float)
        *(float *)dst = (float)special;
    else
        *(double *)dst = special;
    return CAP_OK;
}

/* cJSON hands over numbers as doubles only. Rounding that double to float
 * could differ from rounding the decimal text directly (double rounding),
 * so the float is read from the double's shortest text instead: for any
 * input of up to 15 significant digits that text is the input itself. */
static int parse_floating(jp *p, const cJSON *v, int is_float, void *dst)
{
    if (cJSON_IsString(v))
        return parse_fp_string(p, v->valuestring, is_float, dst);
    if (!cJSON_IsNumber(v))
        return jp_type(p, "a number", v);
    double d = v->valuedouble;
    if (isinf(d))
        return jp_fail(p, "number out of %s range", is_float ? "float" : "double");
    if (!is_float) {
        *(double *)dst = d;
        return CAP_OK;
    }
    char txt[32];
    shortest_double(d, txt, sizeof txt);
    float f = strtof(txt, NULL);
    if (isinf(f))
        return jp_fail(p, "number out of float range");
    *(float *)dst = f;
    return CAP_OK;
}

static int parse_enum(jp *p, const ProtobufCFieldDescriptor *f, const cJSON *v, void *dst)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (cJSON_IsNumber(v))
        return parse_integer(p, v, PROTOBUF_C_TYPE_ENUM, dst);
    if (!cJSON_IsString(v))
        return jp_type(p, "an enum name or number", v);
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, v->valuestring);
    if (!ev) {
        char esc[96];
        return jp_fail(p, "unknown value \"%s\" for enum %s",
                       sanitize(v->valuestring, esc, sizeof esc), ed->name);
    }
    *(int32_t *)dst = ev->value;
    return CAP_OK;
}

/* A malloc'd copy of a UTF-8-checked string. */
static int copy_utf8(jp *p, const char *s, char **out)
{
    size_t n = strlen(s);
    size_t bad = cap_utf8_check((const uint8_t *)s, n);
    if (bad != CAP_UTF8_VALID)
        return jp_fail(p, "string is not valid UTF-8 (byte %zu)", bad);
    char *c = malloc(n + 1);
    if (!c)
        return jp_nomem(p);
    memcpy(c, s, n + 1);
    *out = c;
    return CAP_OK;
}

static int parse_string(jp *p, const cJSON *v, char **out)
{
    if (!cJSON_IsString(v))
        return jp_type(p, "a string", v);
    return copy_utf8(p, v->valuestring, out);
}

static int parse_bytes(jp *p, const cJSON *v, ProtobufCBinaryData *out)
{
    if (!cJSON_IsString(v))
        return jp_type(p, "a base64 string", v);
    size_t n = strlen(v->valuestring), len = 0;
    uint8_t *buf = malloc(cap_base64_decoded_max(n));
    if (!buf)
        return jp_nomem(p);
    if (cap_base64_decode(v->valuestring, n, buf, &len) != 0) {
        free(buf);
        return jp_fail(p, "not valid base64");
    }
    if (len == 0) { /* protobuf-c leaves empty bytes as {0, NULL} */
        free(buf);
        buf = NULL;
    }
    out->len = len;
    out->data = buf;
    return CAP_OK;
}

static int parse_timestamp(jp *p, const ProtobufCMessageDescriptor *d, const cJSON *v,
                           ProtobufCMessage **out)
{
    if (!cJSON_IsString(v))
        return jp_type(p, "an RFC 3339 timestamp string", v);
    int64_t secs = 0;
    int32_t nanos = 0;
    const char *why = rfc3339_parse(v->valuestring, &secs, &nanos);
    if (why)
        return jp_fail(p, "%s", why);
    Google__Protobuf__Timestamp *ts = (Google__Protobuf__Timestamp *)new_message(d);
    if (!ts)
        return jp_nomem(p);
    ts->seconds = secs;
    ts->nanos = nanos;
    *out = &ts->base;
    return CAP_OK;
}

/* ===================================================================== */
/* Input: messages, lists and maps                                        */
/* ===================================================================== */

static int parse_message(jp *p, const ProtobufCMessageDescriptor *d, const cJSON *v,
                         ProtobufCMessage **out);

/* Parses one value of f's type into dst (the field itself, an array slot
 * or a map entry member). dst is written only on success, so nothing is
 * left half-owned on failure. */
static int parse_value(jp *p, const ProtobufCFieldDescriptor *f, const cJSON *v, void *dst)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT: return parse_floating(p, v, 1, dst);
    case PROTOBUF_C_TYPE_DOUBLE: return parse_floating(p, v, 0, dst);
    case PROTOBUF_C_TYPE_BOOL:
        if (!cJSON_IsBool(v))
            return jp_type(p, "a boolean", v);
        *(protobuf_c_boolean *)dst = cJSON_IsTrue(v) ? 1 : 0;
        return CAP_OK;
    case PROTOBUF_C_TYPE_ENUM: return parse_enum(p, f, v, dst);
    case PROTOBUF_C_TYPE_STRING: return parse_string(p, v, dst);
    case PROTOBUF_C_TYPE_BYTES: return parse_bytes(p, v, dst);
    case PROTOBUF_C_TYPE_MESSAGE: return parse_message(p, f->descriptor, v, dst);
    default: return parse_integer(p, v, f->type, dst);
    }
}

/* A map key is always a JSON string; convert it to the key field's type. */
static int parse_map_key(jp *p, const ProtobufCFieldDescriptor *kf, const char *key, void *dst)
{
    int neg = 0;
    uint64_t mag = 0;
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING: return copy_utf8(p, key, dst);
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0)
            return jp_fail(p, "map key must be \"true\" or \"false\"");
        *(protobuf_c_boolean *)dst = key[0] == 't';
        return CAP_OK;
    default: {
        int r = decimal_parse(key, &neg, &mag);
        if (r == -1)
            return jp_fail(p, "map key is not a decimal integer");
        if (r == -2 || int_store(kf->type, neg, mag, dst))
            return jp_fail(p, "map key out of %s range", int_type_name(kf->type));
        return CAP_OK;
    }
    }
}

static int parse_map_entry(jp *p, const ProtobufCMessageDescriptor *ed, const cJSON *c,
                           ProtobufCMessage **out)
{
    if (cJSON_IsNull(c))
        return jp_fail(p, "map value must not be null");
    ProtobufCMessage *e = new_message(ed);
    if (!e)
        return jp_nomem(p);
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    int rc = parse_map_key(p, kf, c->string, MEMBER(e, kf->offset));
    if (rc == CAP_OK)
        rc = parse_value(p, vf, c, MEMBER(e, vf->offset));
    if (rc) {
        protobuf_c_message_free_unpacked(e, NULL);
        return rc;
    }
    *out = e;
    return CAP_OK;
}

/* Keys that differ as text can still name the same entry ("1" and "01"
 * for an integer key), so duplicates are found on the converted keys. */
static int check_map_duplicates(jp *p, ProtobufCMessage *const *entries, size_t n,
                                const ProtobufCFieldDescriptor *kf)
{
    map_item *items = map_sorted(entries, n, kf);
    if (!items)
        return jp_nomem(p);
    int rc = CAP_OK;
    for (size_t i = 1; i < n && rc == CAP_OK; i++) {
        if (strcmp(item_key(&items[i - 1]), item_key(&items[i])) == 0) {
            char esc[96];
            rc = jp_fail(p, "duplicate map key \"%s\"",
                         sanitize(item_key(&items[i]), esc, sizeof esc));
        }
    }
    free(items);
    return rc;
}

static size_t child_count(const cJSON *v)
{
    size_t n = 0;
    for (const cJSON *c = v->child; c; c = c->next)
        n++;
    return n;
}

/* The array is stored in the message first and its count raised entry by
 * entry, so that freeing the message mid-way frees exactly what exists. */
static int fill_map(jp *p, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                    const cJSON *v)
{
    if (!cJSON_IsObject(v))
        return jp_type(p, "an object", v);
    size_t n = child_count(v);
    if (n == 0)
        return CAP_OK;
    ProtobufCMessage **arr = calloc(n, sizeof *arr);
    if (!arr)
        return jp_nomem(p);
    *(ProtobufCMessage ***)MEMBER(m, f->offset) = arr;
    size_t *count = repeated_count(m, f);
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    for (const cJSON *c = v->child; c; c = c->next) {
        size_t old = path_push_key(p, c->string);
        int rc = parse_map_entry(p, ed, c, &arr[*count]);
        path_pop(p, old);
        if (rc)
            return rc;
        (*count)++;
    }
    return check_map_duplicates(p, arr, n, &ed->fields[0]);
}

static int fill_list(jp *p, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                     const cJSON *v)
{
    if (!cJSON_IsArray(v))
        return jp_type(p, "an array", v);
    size_t n = child_count(v), size = cap_field_elem_size(f->type);
    if (n == 0)
        return CAP_OK;
    char *arr = calloc(n, size);
    if (!arr)
        return jp_nomem(p);
    *(char **)MEMBER(m, f->offset) = arr;
    size_t *count = repeated_count(m, f);
    for (const cJSON *c = v->child; c; c = c->next) {
        size_t old = path_push_index(p, *count);
        int rc = cJSON_IsNull(c) ? jp_fail(p, "null is not allowed in a repeated field")
                                 : parse_value(p, f, c, arr + *count * size);
        path_pop(p, old);
        if (rc)
            return rc;
        (*count)++;
    }
    return CAP_OK;
}

/* A oneof whose case is already set was given another member earlier in
 * this object (the same member twice is caught as a duplicate key). */
static int check_oneof_free(jp *p, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    uint32_t set = *(const uint32_t *)CMEMBER(m, f->quantifier_offset);
    if (set == 0)
        return CAP_OK;
    const ProtobufCFieldDescriptor *other =
        protobuf_c_message_descriptor_get_field(m->descriptor, set);
    char name[128];
    return jp_fail(p, "oneof already set by \"%s\"; give only one member",
                   other ? json_name(other->name, name, sizeof name) : "?");
}

static void mark_present(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (is_oneof(f))
        *(uint32_t *)MEMBER(m, f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
             f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)MEMBER(m, f->quantifier_offset) = 1;
}

/* One "key": value member of an object. seen[i] remembers the key that set
 * field i, to report a field given twice (under either of its names). */
static int fill_member(jp *p, ProtobufCMessage *m, const cJSON *c, const char **seen)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char esc[96];
    int idx = find_field(d, c->string);
    if (idx < 0)
        return jp_fail(p, "unknown field \"%s\" in %s", sanitize(c->string, esc, sizeof esc),
                       d->name);
    if (seen[idx]) {
        if (strcmp(seen[idx], c->string) == 0)
            return jp_fail(p, "duplicate key \"%s\"", c->string);
        return jp_fail(p, "duplicate key \"%s\" (same field as \"%s\")", c->string, seen[idx]);
    }
    seen[idx] = c->string;
    if (cJSON_IsNull(c)) /* null means "left at its default" */
        return CAP_OK;
    const ProtobufCFieldDescriptor *f = &d->fields[idx];
    if (is_map_field(f))
        return fill_map(p, m, f, c);
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return fill_list(p, m, f, c);
    if (is_oneof(f) && check_oneof_free(p, m, f))
        return CAP_EJSON;
    int rc = parse_value(p, f, c, MEMBER(m, f->offset));
    if (rc == CAP_OK)
        mark_present(m, f);
    return rc;
}

static int fill_message(jp *p, ProtobufCMessage *m, const cJSON *obj)
{
    const char **seen = calloc(m->descriptor->n_fields + 1, sizeof *seen);
    if (!seen)
        return jp_nomem(p);
    int rc = CAP_OK;
    for (const cJSON *c = obj->child; c && rc == CAP_OK; c = c->next) {
        size_t old = path_push_key(p, c->string);
        rc = fill_member(p, m, c, seen);
        path_pop(p, old);
    }
    free(seen);
    return rc;
}

/* A message value: an object, or for google.protobuf.Timestamp a string.
 * *out is written only on success; a half-built message is freed here. */
static int parse_message(jp *p, const ProtobufCMessageDescriptor *d, const cJSON *v,
                         ProtobufCMessage **out)
{
    if (cap_desc_is_timestamp(d))
        return parse_timestamp(p, d, v, out);
    if (!cJSON_IsObject(v))
        return jp_type(p, "an object", v);
    ProtobufCMessage *m = new_message(d);
    if (!m)
        return jp_nomem(p);
    int rc = fill_message(p, m, v);
    if (rc) {
        protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    *out = m;
    return CAP_OK;
}

/* ===================================================================== */
/* Input: the text itself                                                 */
/* ===================================================================== */

static int fail_at(cap_diag *diag, const char *text, size_t off, const char *what)
{
    long line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return cap_diag_set(diag, CAP_EJSON, (long)off, "$", "%s at byte %zu (line %ld, column %ld)",
                        what, off, line, col);
}

size_t cap_json_text_check(const char *t, size_t len, unsigned max_depth, const char **what)
{
    int in_str = 0;
    unsigned depth = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == 0) {
            *what = "NUL byte";
            return i;
        }
        if (!in_str) {
            in_str = c == '"';
            if (c == '{' || c == '[') {
                if (max_depth && ++depth > max_depth) {
                    *what = "objects and arrays nested deeper than the bound";
                    return i;
                }
            } else if ((c == '}' || c == ']') && depth) {
                depth--;
            }
        } else if (c == '"') {
            in_str = 0;
        } else if (c < 0x20) {
            *what = "unescaped control character in a string";
            return i;
        } else if (c == '\\' && i + 1 < len) {
            if (len - i >= 6 && memcmp(t + i + 1, "u0000", 5) == 0) {
                *what = "\\u0000 is not allowed in a string";
                return i;
            }
            i++; /* skip the escaped character, which may be a quote */
        }
    }
    return CAP_JSON_TEXT_OK;
}

static int prescan(const char *t, size_t len, cap_diag *diag)
{
    const char *what;
    size_t off = cap_json_text_check(t, len, 0, &what);
    return off == CAP_JSON_TEXT_OK ? CAP_OK : fail_at(diag, t, off, what);
}

static const char *skip_whitespace(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    return s;
}

/* The error position comes from the parse-end pointer rather than
 * cJSON_GetErrorPtr(), whose storage is shared by all threads. */
static int parse_text(const char *text, size_t len, cJSON **root, cap_diag *diag)
{
    const char *end = text;
    *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!*root)
        return fail_at(diag, text, (size_t)(end - text), "JSON syntax error");
    end = skip_whitespace(end, text + len);
    if (end != text + len) {
        cJSON_Delete(*root);
        *root = NULL;
        return fail_at(diag, text, (size_t)(end - text), "trailing characters after the JSON value");
    }
    return CAP_OK;
}

int cap_json_to_message(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                        size_t max_len, ProtobufCMessage **out, cap_diag *diag)
{
    size_t limit = max_len ? max_len : CAP_JSON_DEFAULT_MAX;
    cap_diag_clear(diag);
    if (out)
        *out = NULL;
    if (!desc || !out || (!text && len))
        return cap_diag_set(diag, CAP_EINVAL, -1, "$", "missing argument");
    if (len > limit)
        return cap_diag_set(diag, CAP_EJSON, -1, "$", "input is %zu bytes, over the limit of %zu",
                            len, limit);
    if (len == 0)
        return cap_diag_set(diag, CAP_EJSON, 0, "$", "empty input");
    int rc = prescan(text, len, diag);
    if (rc)
        return rc;
    cJSON *root = NULL;
    rc = parse_text(text, len, &root, diag);
    if (rc)
        return rc;
    jp p = {.diag = diag, .len = 1, .path = "$"};
    rc = parse_message(&p, desc, root, out);
    cJSON_Delete(root);
    return rc;
}
