/* Journal record reader: see sim_jview.h. */
#include "sim_jview.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>


/* Copies a string member's value from a parsed record (NULL when the
 * member is missing or not a string), as cJSON_GetStringValue would. */
static const char *jv_str(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void jview_from_cjson(sim_jview *v, const cJSON *o)
{
    memset(v, 0, sizeof *v);
    v->k = jv_str(o, "k");
    v->job_id = jv_str(o, "job_id");
    v->state = jv_str(o, "state");
    v->ev = jv_str(o, "ev");
    v->snapshot = jv_str(o, "snapshot");
    v->hash = jv_str(o, "hash");
    v->appr_snapshot = jv_str(o, "appr_snapshot");
    v->op = jv_str(o, "op");
    v->wf = jv_str(o, "wf");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "decision");
    if ((v->has_decision = cJSON_IsNumber(x) != 0))
        v->decision = x->valuedouble;
    x = cJSON_GetObjectItemCaseSensitive(o, "appr");
    if ((v->has_appr = cJSON_IsNumber(x) != 0))
        v->appr = x->valuedouble;
    x = cJSON_GetObjectItemCaseSensitive(o, "attempt");
    v->attempt_str = cJSON_IsString(x) ? x->valuestring : NULL;
    v->attempt_num = cJSON_GetNumberValue(x);
}

/* The members the checker reads, by name. */
enum {
    M_K, M_JOB_ID, M_STATE, M_EV, M_SNAPSHOT, M_HASH, M_APPR_SNAPSHOT, M_OP, M_WF,
    M_ATTEMPT, M_DECISION, M_APPR, M_NONE
};

/* The member named by the kn bytes at k (M_NONE: one the checker skips).
 * By length first: one or two comparisons per member. */
static inline int member_of(const char *k, size_t kn)
{
#define IS(name) (memcmp(k, name, sizeof name - 1) == 0)
    switch (kn) {
    case 1: return k[0] == 'k' ? M_K : M_NONE;
    case 2: return IS("ev") ? M_EV : IS("op") ? M_OP : IS("wf") ? M_WF : M_NONE;
    case 4: return IS("hash") ? M_HASH : IS("appr") ? M_APPR : M_NONE;
    case 5: return IS("state") ? M_STATE : M_NONE;
    case 6: return IS("job_id") ? M_JOB_ID : M_NONE;
    case 7: return IS("attempt") ? M_ATTEMPT : M_NONE;
    case 8: return IS("snapshot") ? M_SNAPSHOT : IS("decision") ? M_DECISION : M_NONE;
    case 13: return IS("appr_snapshot") ? M_APPR_SNAPSHOT : M_NONE;
    default: return M_NONE;
    }
#undef IS
}

/* Sets member m of v to the string s (NULL: the member is there but not a
 * string), unless an earlier member of that name was seen (the first of
 * duplicate members counts, as in cJSON). */
static inline void set_str(sim_jview *v, int m, const char *s)
{
#define SET(field)                                                                                 \
    if (!v->seen_##field) {                                                                        \
        v->seen_##field = 1;                                                                       \
        v->field = s;                                                                              \
    }                                                                                              \
    return;
    switch (m) {
    case M_K: SET(k)
    case M_JOB_ID: SET(job_id)
    case M_STATE: SET(state)
    case M_EV: SET(ev)
    case M_SNAPSHOT: SET(snapshot)
    case M_HASH: SET(hash)
    case M_APPR_SNAPSHOT: SET(appr_snapshot)
    case M_OP: SET(op)
    case M_WF: SET(wf)
    case M_ATTEMPT: SET(attempt_str)
    case M_DECISION: SET(decision_str)
    case M_APPR: SET(appr_str)
    default: return;
    }
#undef SET
}

/* Sets member m of v to the number x: a number member takes it, a string
 * member is there but not a string. */
static inline void set_num(sim_jview *v, int m, double x)
{
#define SET(seen, flag, dst)                                                                       \
    if (!v->seen) {                                                                                \
        v->seen = 1;                                                                               \
        v->flag = 1;                                                                               \
        v->dst = x;                                                                                \
    }                                                                                              \
    return;
    switch (m) {
    case M_ATTEMPT: SET(seen_attempt_str, has_attempt, attempt_num)
    case M_DECISION: SET(seen_decision_str, has_decision, decision)
    case M_APPR: SET(seen_appr_str, has_appr, appr)
    default: set_str(v, m, NULL); return;
    }
#undef SET
}

/* ---- the single pass ---------------------------------------------------
 *
 * In a record of the simple form every byte that is a quote, a backslash
 * or a control character is structure: a quote opening or closing a key
 * or a string value, or the terminating NUL (a backslash or any other
 * control character refuses the record). The pass therefore walks from
 * one such byte to the next, a block of bytes at a time, and checks the
 * few plain bytes between them (':', ',', '}', a number).
 *
 * A block is 16 bytes tested with SSE2 where the compiler offers it (every
 * x86-64), else 8 bytes tested in a 64-bit word (SIM_JVIEW_NO_SSE2 forces
 * the latter, for its test). Either way special_flags gives a flag per
 * special byte of the block, flag_at the offset of the lowest flag. */
#if defined(__SSE2__) && !defined(SIM_JVIEW_NO_SSE2)
#include <emmintrin.h>

#define BLOCK 16
#define FLAGS_EXACT 1 /* no false flag */

/* Bit i set when byte i of the 16 at p is special (exact). */
static inline uint64_t special_flags(const char *p)
{
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i low = _mm_set1_epi8(0x1f);
    __m128i m = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_max_epu8(x, low), low)); /* x <= 0x1f */
    return (uint64_t)(unsigned)_mm_movemask_epi8(m);
}

static inline int flag_at(uint64_t bits)
{
    return __builtin_ctzll(bits);
}
#else
#define BLOCK 8
#define FLAGS_EXACT 0
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* 0x80 in every byte of the 8 at p that is '"', '\\' or below 0x20, by
 * the has-zero-byte trick on the word loaded little-endian: the lowest
 * flag is always a true one, a higher one may be false (a borrow runs up
 * from a flagged byte), which is why next_special looks at the byte. */
static inline uint64_t special_flags(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
    return (((x - ONES * 0x20) & ~x) | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
}

static inline int flag_at(uint64_t bits)
{
    return __builtin_ctzll(bits) >> 3;
}
#endif

static inline int is_special(char c)
{
    return c == '"' || c == '\\' || (unsigned char)c < 0x20;
}

/* A walk over a buffer's special bytes, in order: `at` is the block being
 * looked at, `bits` its flags not handed out yet. */
typedef struct {
    char *at;
    uint64_t bits;
} walk;

/* The next special byte. The buffer has BLOCK readable bytes after its
 * NUL, which is special: the walk never passes it. */
static inline char *next_special(walk *s)
{
    for (;;) {
        while (!s->bits) {
            s->at += BLOCK;
            s->bits = special_flags(s->at);
        }
        char *c = s->at + flag_at(s->bits);
        s->bits &= s->bits - 1;
        if (FLAGS_EXACT || is_special(*c)) /* else a false flag of the word test: skipped */
            return c;
    }
}

/* Runs of members the scheduler writes as one literal when a job holds
 * them at their defaults (docs/reference-scheduler.md, "job" records):
 * a run found at the ',' before its first member is taken whole, with
 * the values it gives the members the checker reads, instead of member
 * by member. Any other text (the members with other values) is read the
 * usual way, so the view is the same either way. */
typedef struct {
    const char *text;
    size_t len;
    int appr_defaults; /* appr 0, hash "", appr_snapshot "" */
} known_run;

#define RUN(text, appr) {text, sizeof text - 1, appr}
static const known_run known_runs[] = {
    RUN(",\"max_runtime_ns\":\"0\",\"max_retries\":-1,\"max_concurrent\":0,\"throttles\":0", 0),
    RUN(",\"appr\":0,\"hash\":\"\",\"appr_snapshot\":\"\",\"appr_by\":\"\",\"appr_note\":\"\"", 1),
    RUN(",\"wait_since\":\"-1\",\"waiting\":0,\"wake_at\":\"0\"", 0),
    RUN(",\"memo\":\"\",\"saga_wf\":\"\"", 0),
};
#undef RUN

/* The length of the known run at p (which is at a ',' between members),
 * its values set in v; 0 when none is there. By the first letters of the
 * member's name first: most members start no run. */
static inline size_t take_known_run(sim_jview *v, const char *p)
{
    const known_run *k;
    switch (p[2]) {
    case 'm': k = &known_runs[p[3] == 'a' ? 0 : 3]; break;
    case 'a': k = &known_runs[1]; break;
    case 'w': k = &known_runs[2]; break;
    default: return 0;
    }
    if (p[3] != k->text[3] || memcmp(p, k->text, k->len) != 0)
        return 0;
    if (k->appr_defaults) {
        set_num(v, M_APPR, 0);
        set_str(v, M_HASH, "");
        set_str(v, M_APPR_SNAPSHOT, "");
    }
    return k->len;
}

/* Reads a record the way the scheduler writes it: one flat object of
 * "key":"string" and "key":integer members, no white space, no escape.
 * Fills v exactly as jview_from_cjson would from cJSON_Parse(line).
 * Returns 0 when the record is not of that simple form (the caller then
 * parses it with cJSON); the strings point into r->scratch. */
static int fast_read(sim_jview_reader *r, const char *line, size_t n, sim_jview *v)
{
    if (n + 1 + BLOCK > r->cap) { /* + BLOCK: the walk reads whole blocks */
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < n + 1 + BLOCK)
            cap *= 2;
        char *b = realloc(r->scratch, cap);
        if (!b)
            return 0;
        r->scratch = b;
        r->cap = cap;
    }
    char *p = r->scratch;
    memcpy(p, line, n + 1);
    memset(p + n + 1, 0, BLOCK); /* what the last block reads past the NUL */
    memset(v, 0, sizeof *v);
    v->attempt_num = NAN;
    if (*p++ != '{')
        return 0;
    if (*p == '}')
        return p[1] == 0;
    walk s = {p, special_flags(p)};
    for (;;) {
        char *q = next_special(&s); /* the key's opening quote, right here */
        if (q != p || *q != '"')
            return 0;
        const char *key = q + 1;
        q = next_special(&s); /* its closing quote */
        if (*q != '"' || q[1] != ':')
            return 0;
        int m = member_of(key, (size_t)(q - key));
        p = q + 2;
        if (*p == '"') {
            next_special(&s); /* p itself: nothing special lies between */
            char *str = p + 1;
            q = next_special(&s);
            if (*q != '"')
                return 0;
            *q = 0;
            set_str(v, m, str);
            p = q + 1;
        } else {
            int neg = 0;
            if (*p == '-') {
                neg = 1;
                p++;
            }
            int64_t x = 0;
            int digits = 0;
            while (*p >= '0' && *p <= '9') {
                if (++digits > 15)
                    return 0;
                x = x * 10 + (*p - '0');
                p++;
            }
            if (!digits || (digits > 1 && p[-digits] == '0'))
                return 0;
            set_num(v, m, neg ? -(double)x : (double)x);
        }
        if (*p == '}')
            return p[1] == 0;
        if (*p != ',')
            return 0;
        size_t run = take_known_run(v, p);
        if (run) {
            while (run) { /* runs may follow one another */
                p += run;
                run = *p == ',' ? take_known_run(v, p) : 0;
            }
            if (*p == '}')
                return p[1] == 0;
            if (*p != ',')
                return 0;
            s.at = p; /* the walk goes on after the runs */
            s.bits = special_flags(p);
        }
        p++;
    }
}

int sim_jview_read(sim_jview_reader *r, const char *line, sim_jview *v)
{
    return sim_jview_read_n(r, line, strlen(line), v);
}

int sim_jview_read_n(sim_jview_reader *r, const char *line, size_t len, sim_jview *v)
{
    cJSON_Delete(r->parsed);
    r->parsed = NULL;
    if (fast_read(r, line, len, v))
        return 1;
    cJSON *o = cJSON_ParseWithOpts(line, NULL, 1); /* nothing may follow the object */
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return 0;
    }
    r->parsed = o;
    jview_from_cjson(v, o);
    return 1;
}

void sim_jview_reader_free(sim_jview_reader *r)
{
    if (!r)
        return;
    free(r->scratch);
    cJSON_Delete(r->parsed);
    memset(r, 0, sizeof *r);
}
