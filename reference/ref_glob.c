/* Topic globs (Go path.Match semantics). A pattern is a series of chunks,
 * each optionally led by stars; a chunk after a star may start at any
 * position that does not skip over a '/'. Placing each chunk at its
 * leftmost possible position is enough (only the last chunk must end at
 * the end of the name), so matching needs no backtracking across chunks. */
#include "ref_glob.h"

#include <stdint.h>
#include <string.h>

/* Decodes one UTF-8 character (inputs were validated as UTF-8 when read;
 * a stray byte is taken as itself). Returns its length. */
static size_t utf8_next(const char *s, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = u[0] < 0x80 ? 1 : u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 1;
    uint32_t v = n == 1 ? u[0] : u[0] & (0x7Fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *cp = u[0];
            return 1;
        }
        v = (v << 6) | (u[i] & 0x3F);
    }
    *cp = v;
    return n;
}

/* Reads one possibly escaped character of a class at *p; -1 if malformed. */
static int class_char(const char **p, uint32_t *cp)
{
    const char *s = *p;
    if (*s == '\0' || *s == '-' || *s == ']')
        return -1;
    if (*s == '\\') {
        s++;
        if (*s == '\0')
            return -1;
    }
    s += utf8_next(s, cp);
    *p = s;
    return 0;
}

/* Parses a class starting after '['. Returns the position after ']' (or
 * NULL if malformed); *hit says whether c is in it. */
static const char *match_class(const char *p, uint32_t c, int *hit)
{
    int negate = 0, in = 0, ranges = 0;
    if (*p == '^') {
        negate = 1;
        p++;
    }
    while (ranges == 0 || *p != ']') {
        uint32_t lo, hi;
        if (class_char(&p, &lo))
            return NULL;
        hi = lo;
        if (*p == '-') {
            p++;
            if (class_char(&p, &hi))
                return NULL;
        }
        if (lo <= c && c <= hi)
            in = 1;
        ranges++;
    }
    *hit = in != negate;
    return p + 1;
}

/* The end of the chunk starting at p: the next star outside a class. */
static const char *chunk_end(const char *p)
{
    int in_class = 0;
    for (; *p; p++) {
        if (*p == '\\' && p[1])
            p++;
        else if (*p == '[')
            in_class = 1;
        else if (*p == ']')
            in_class = 0;  /* outside a class, ']' is a literal */
        else if (*p == '*' && !in_class)
            break;
    }
    return p;
}

/* Matches the chunk [p, end) at the start of s. Returns what is left of s,
 * or NULL on a mismatch (or a malformed chunk). */
static const char *match_chunk(const char *p, const char *end, const char *s)
{
    while (p < end) {
        if (*s == '\0')
            return NULL;
        uint32_t c;
        size_t n = utf8_next(s, &c);
        if (*p == '?') {
            if (c == '/')
                return NULL;
            p++;
        } else if (*p == '[') {
            int hit;
            p = match_class(p + 1, c, &hit);
            if (!p || !hit)
                return NULL;
        } else {
            if (*p == '\\')
                p++;
            uint32_t pc;
            size_t pn = utf8_next(p, &pc);
            if (pc != c)
                return NULL;
            p += pn;
            n = pn;
        }
        s += n;
    }
    return s;
}

int ref_glob_match(const char *pattern, const char *name)
{
    const char *p = pattern;
    while (*p) {
        int star = 0;
        while (*p == '*') {
            star = 1;
            p++;
        }
        const char *end = chunk_end(p);
        if (star && p == end)  /* trailing star: the rest of one segment */
            return strchr(name, '/') == NULL;
        int last = *end == '\0';
        const char *rest = match_chunk(p, end, name);
        if (rest && (!last || *rest == '\0')) {
            name = rest;
            p = end;
            continue;
        }
        if (!star)
            return 0;
        int placed = 0;
        for (const char *s = name; *s && *s != '/' && !placed;) {
            uint32_t c;
            s += utf8_next(s, &c);
            rest = match_chunk(p, end, s);
            if (rest && (!last || *rest == '\0')) {
                name = rest;
                placed = 1;
            }
        }
        if (!placed)
            return 0;
        p = end;
    }
    return *name == '\0';
}

int ref_glob_check(const char *pattern, const char **why)
{
    const char *p = pattern;
    *why = NULL;
    while (*p) {
        if (*p == '\\') {
            if (p[1] == '\0') {
                *why = "ends in a lone backslash";
                return -1;
            }
            p += 2;
        } else if (*p == '[') {
            int hit;
            const char *q = match_class(p + 1, 0, &hit);
            if (!q) {
                *why = "has a malformed [...] class";
                return -1;
            }
            p = q;
        } else {
            p++;
        }
    }
    return 0;
}

size_t ref_glob_literal_prefix(const char *pattern)
{
    return strcspn(pattern, "*?[\\");
}

int ref_glob_is_literal(const char *pattern)
{
    return pattern[ref_glob_literal_prefix(pattern)] == '\0';
}
