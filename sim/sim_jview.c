/* Journal record reader: see sim_jview.h. */
#include "sim_jview.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cap_swar.h"

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
    v->state_len = v->state ? strlen(v->state) : 0;
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

/* Sets member m of v to the string s of n bytes (NULL, n 0: the member is
 * there but not a string), unless an earlier member of that name was seen
 * (the first of duplicate members counts, as in cJSON). */
static inline void set_str(sim_jview *v, int m, const char *s, size_t n)
{
    if (m == M_NONE || (v->seen & (1u << m)))
        return;
    v->seen |= 1u << m;
    switch (m) {
    case M_K: v->k = s; return;
    case M_JOB_ID: v->job_id = s; return;
    case M_STATE: v->state = s; v->state_len = n; return;
    case M_EV: v->ev = s; return;
    case M_SNAPSHOT: v->snapshot = s; return;
    case M_HASH: v->hash = s; return;
    case M_APPR_SNAPSHOT: v->appr_snapshot = s; return;
    case M_OP: v->op = s; return;
    case M_WF: v->wf = s; return;
    case M_ATTEMPT: v->attempt_str = s; return;
    default: return; /* decision, appr: there, but not a number */
    }
}

/* Sets member m of v to the number x: a number member takes it, a string
 * member is there but not a string. */
static inline void set_num(sim_jview *v, int m, double x)
{
    if (m != M_ATTEMPT && m != M_DECISION && m != M_APPR) {
        set_str(v, m, NULL, 0);
        return;
    }
    if (v->seen & (1u << m))
        return;
    v->seen |= 1u << m;
    switch (m) {
    case M_ATTEMPT: v->has_attempt = 1; v->attempt_num = x; return;
    case M_DECISION: v->has_decision = 1; v->decision = x; return;
    default: v->has_appr = 1; v->appr = x; return;
    }
}

/* An empty view, member by member: the compiler stores these with a few
 * vector moves, where clearing the whole view at once becomes a `rep
 * stos`, whose start-up costs more than the stores. */
static inline void view_clear(sim_jview *v)
{
    v->k = v->job_id = v->state = v->ev = v->snapshot = v->hash = v->appr_snapshot = NULL;
    v->op = v->wf = v->attempt_str = NULL;
    v->state_len = 0;
    v->attempt_num = NAN;
    v->has_decision = v->has_appr = v->has_attempt = 0;
    v->decision = v->appr = 0;
    v->seen = 0;
}

/* ---- the single pass ---------------------------------------------------
 *
 * In a record of the simple form every byte that is a quote, a backslash
 * or a control character is structure: a quote opening or closing a key
 * or a string value, or the terminating NUL (a backslash or any other
 * control character refuses the record). The pass therefore finds the
 * end of a key or a string by looking for the next such byte, a block of
 * bytes at a time, and checks the few plain bytes between them (':', ',',
 * '}', a number).
 *
 * A block is 16 bytes tested with SSE2 where the compiler offers it (every
 * x86-64), else 8 bytes tested in a 64-bit word (SIM_JVIEW_NO_SSE2 forces
 * the latter, for its test). Either way special_flags gives a flag per
 * special byte of the block, flag_at the offset of the lowest flag. */
#if defined(__SSE2__) && !defined(SIM_JVIEW_NO_SSE2)
#include <emmintrin.h>

#define BLOCK 16

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

/* 0x80 in every byte of the 8 at p that is '"', '\\' or below 0x20
 * (cap_swar.h), on the word loaded little-endian: the lowest flag is
 * always a true one, a higher one may be false (a borrow runs up from a
 * flagged byte), which is why only the lowest is used. */
static inline uint64_t special_flags(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return cap_swar_json_special_bits(x);
}

static inline int flag_at(uint64_t bits)
{
    return __builtin_ctzll(bits) >> 3;
}
#endif

/* The first special byte at or after p. The buffer has at least BLOCK
 * readable bytes after its NUL, which is special: the scan never passes
 * it. The lowest flag of a block is always a true one (even in the word
 * test). */
static inline char *find_special(char *p)
{
    for (;;) {
        uint64_t bits = special_flags(p);
        if (bits)
            return p + flag_at(bits);
        p += BLOCK;
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

#define RUN_LIMITS ",\"max_runtime_ns\":\"0\",\"max_retries\":-1,\"max_concurrent\":0,\"throttles\":0"
#define RUN_APPR ",\"appr\":0,\"hash\":\"\",\"appr_snapshot\":\"\",\"appr_by\":\"\",\"appr_note\":\"\""
#define RUN_WAIT ",\"wait_since\":\"-1\",\"waiting\":0,\"wake_at\":\"0\""
#define RUN_SAGA ",\"memo\":\"\",\"saga_wf\":\"\""
#define RUN(text, appr) {text, sizeof text - 1, appr}
static const known_run known_runs[] = {
    RUN(RUN_LIMITS, 0),
    RUN(RUN_APPR, 1),
    RUN(RUN_WAIT, 0),
    RUN(RUN_SAGA, 0),
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
        set_str(v, M_HASH, "", 0);
        set_str(v, M_APPR_SNAPSHOT, "", 0);
    }
    return k->len;
}

/* The scheduler's form is the expected case: branches that leave it are
 * marked (very) unlikely, so the compiler keeps the whole path through a
 * record hot: it compares the expected names inline only on a path it
 * deems hot, and 30-odd branches at __builtin_expect's 90 % would leave
 * the last members cold. */
#if defined(__has_builtin)
#if __has_builtin(__builtin_expect_with_probability)
#define UNLIKELY(x) __builtin_expect_with_probability(!!(x), 0, 0.9999)
#define LIKELY(x) __builtin_expect_with_probability(!!(x), 1, 0.9999)
#endif
#endif
#ifndef UNLIKELY
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#endif

/* Reads the value at p (a string, its closing quote replaced by a NUL,
 * or an integer) into member m of v. Returns the byte after it, NULL
 * when it is not of the simple form. Always inlined: m is a constant
 * where a job record's members are read, which settles set_str's switch
 * at compile time. */
static inline __attribute__((always_inline)) char *read_value(char *p, sim_jview *v, int m)
{
    if (*p == '"') {
        char *str = p + 1;
        /* many values are "": no block to test for those */
        char *q = *str == '"' ? str : find_special(str);
        if (*q != '"')
            return NULL;
        *q = 0;
        set_str(v, m, str, (size_t)(q - str));
        return q + 1;
    }
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    int64_t x = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 15)
            return NULL;
        x = x * 10 + (*p - '0');
        p++;
    }
    if (!digits || (digits > 1 && p[-digits] == '0'))
        return NULL;
    set_num(v, m, neg ? -(double)x : (double)x);
    return p;
}

/* Reads members from p (the byte after the '{' or ',' before a key) to
 * the end of the record, any names in any order. 1 when the record ends
 * there ("}" and its NUL), 0 when it is not of the simple form. */
static int read_members(char *p, sim_jview *v)
{
    for (;;) {
        if (*p != '"')
            return 0;
        const char *key = p + 1;
        char *q = find_special(p + 1); /* the key's closing quote */
        if (*q != '"' || q[1] != ':')
            return 0;
        p = read_value(q + 2, v, member_of(key, (size_t)(q - key)));
        if (!p)
            return 0;
        if (*p == '}')
            return p[1] == 0;
        if (*p != ',')
            return 0;
        for (size_t run; (run = take_known_run(v, p)) != 0;) /* runs may follow one another */
            p += run;
        if (*p == '}')
            return p[1] == 0;
        if (*p != ',')
            return 0;
        p++;
    }
}

/* A job record's members in the order the scheduler writes them: each
 * name (with the ',' before it and the ':' after it) is compared whole
 * where it is expected, which the compiler does in a few word compares,
 * instead of being looked for quote by quote and then by name. At the
 * first name that is not the expected one the rest is read by
 * read_members, so any record reads as before; this only saves work on
 * the scheduler's own layout. For the members a job holds at their
 * defaults (the runs above) name and value are compared together; any
 * other value is read as a value. */
#define EXPECT(lit, m)                                                                             \
    if (UNLIKELY(memcmp(p, lit, sizeof lit - 1) != 0))                                             \
        return read_members(p + 1, v);                                                             \
    if (UNLIKELY(!(p = read_value(p + sizeof lit - 1, v, m))))                                     \
        return 0;                                                                                  \
    if (UNLIKELY(*p != ',')) /* the end of the record, or not the simple form */                   \
        return *p == '}' && p[1] == 0;
/* a default value (the literal holds name and value) with a member after
 * it, else as EXPECT (which reads a default value at the record's end as
 * a value: the view is the same) */
#define EXPECT_DEFAULT(lit, name, m, set)                                                          \
    if (LIKELY(memcmp(p, lit, sizeof lit - 1) == 0 && p[sizeof lit - 1] == ',')) {                 \
        p += sizeof lit - 1;                                                                       \
        set;                                                                                       \
    } else {                                                                                       \
        EXPECT(name, m)                                                                            \
    }

/* a default value that may end the record (the scheduler's last default) */
#define EXPECT_DEFAULT_LAST(lit, name, m, set)                                                     \
    if (LIKELY(memcmp(p, lit, sizeof lit - 1) == 0 &&                                              \
               (p[sizeof lit - 1] == ',' || p[sizeof lit - 1] == '}'))) {                          \
        p += sizeof lit - 1;                                                                       \
        set;                                                                                       \
        if (*p == '}')                                                                             \
            return p[1] == 0;                                                                      \
    } else {                                                                                       \
        EXPECT(name, m)                                                                            \
    }

/* n bytes at p are those of the literal lit, compared in pieces of at
 * most 32 bytes, which the compiler compares inline (a longer memcmp
 * becomes a call). */
#define SAME_PIECE(p, lit, at, n)                                                                  \
    ((n) <= (at) || memcmp((p) + (at), (lit) + (at), (n) - (at) < 32 ? (n) - (at) : 32) == 0)
#define SAME(p, lit)                                                                               \
    (SAME_PIECE(p, lit, 0, sizeof lit - 1) && SAME_PIECE(p, lit, 32, sizeof lit - 1) &&            \
     SAME_PIECE(p, lit, 64, sizeof lit - 1))

/* A whole run of defaults (its literal above) with a member after it:
 * its members are taken at once, with their values set; else they are
 * read one by one (the block after it). */
#define EXPECT_RUN(run, set)                                                                       \
    if (LIKELY(SAME(p, run) && p[sizeof run - 1] == ',')) {                                        \
        p += sizeof run - 1;                                                                       \
        set;                                                                                       \
    } else

static int read_job_layout(char *p, sim_jview *v)
{
    EXPECT("{\"k\":", M_K)
    EXPECT(",\"t\":", M_NONE)
    EXPECT(",\"ev\":", M_EV)
    EXPECT(",\"job_id\":", M_JOB_ID)
    EXPECT(",\"seq\":", M_NONE)
    EXPECT(",\"state\":", M_STATE)
    EXPECT(",\"state_at\":", M_NONE)
    EXPECT(",\"decision\":", M_DECISION)
    EXPECT(",\"rule\":", M_NONE)
    EXPECT(",\"snapshot\":", M_SNAPSHOT)
    EXPECT(",\"reason\":", M_NONE)
    EXPECT_RUN(RUN_LIMITS, (void)0)
    {
        EXPECT_DEFAULT(",\"max_runtime_ns\":\"0\"", ",\"max_runtime_ns\":", M_NONE, (void)0)
        EXPECT_DEFAULT(",\"max_retries\":-1", ",\"max_retries\":", M_NONE, (void)0)
        EXPECT_DEFAULT(",\"max_concurrent\":0", ",\"max_concurrent\":", M_NONE, (void)0)
        EXPECT_DEFAULT(",\"throttles\":0", ",\"throttles\":", M_NONE, (void)0)
    }
    EXPECT_RUN(RUN_APPR, (set_num(v, M_APPR, 0), set_str(v, M_HASH, "", 0),
                          set_str(v, M_APPR_SNAPSHOT, "", 0)))
    {
        EXPECT_DEFAULT(",\"appr\":0", ",\"appr\":", M_APPR, set_num(v, M_APPR, 0))
        EXPECT_DEFAULT(",\"hash\":\"\"", ",\"hash\":", M_HASH, set_str(v, M_HASH, "", 0))
        EXPECT_DEFAULT(",\"appr_snapshot\":\"\"", ",\"appr_snapshot\":", M_APPR_SNAPSHOT,
                       set_str(v, M_APPR_SNAPSHOT, "", 0))
        EXPECT_DEFAULT(",\"appr_by\":\"\"", ",\"appr_by\":", M_NONE, (void)0)
        EXPECT_DEFAULT(",\"appr_note\":\"\"", ",\"appr_note\":", M_NONE, (void)0)
    }
    EXPECT(",\"attempt\":", M_ATTEMPT)
    EXPECT(",\"dispatch_id\":", M_NONE)
    EXPECT(",\"worker\":", M_NONE)
    EXPECT(",\"pool\":", M_NONE)
    EXPECT(",\"done\":", M_NONE)
    EXPECT(",\"counted\":", M_NONE)
    EXPECT(",\"retries\":", M_NONE)
    EXPECT_RUN(RUN_WAIT, (void)0)
    {
        EXPECT_DEFAULT(",\"wait_since\":\"-1\"", ",\"wait_since\":", M_NONE, (void)0)
        EXPECT_DEFAULT(",\"waiting\":0", ",\"waiting\":", M_NONE, (void)0)
        EXPECT_DEFAULT(",\"wake_at\":\"0\"", ",\"wake_at\":", M_NONE, (void)0)
    }
    EXPECT(",\"watch_at\":", M_NONE)
    EXPECT_DEFAULT(",\"memo\":\"\"", ",\"memo\":", M_NONE, (void)0)
    EXPECT_DEFAULT_LAST(",\"saga_wf\":\"\"", ",\"saga_wf\":", M_NONE, (void)0)
    EXPECT(",\"trace_id\":", M_NONE)
    EXPECT(",\"req\":", M_NONE)
    return read_members(p + 1, v);
}
#undef EXPECT_RUN
#undef SAME
#undef SAME_PIECE
#undef EXPECT_DEFAULT_LAST
#undef EXPECT_DEFAULT
#undef EXPECT

/* Reads a record the way the scheduler writes it: one flat object of
 * "key":"string" and "key":integer members, no white space, no escape.
 * Fills v exactly as jview_from_cjson would from cJSON_Parse(line).
 * Returns 0 when the record is not of that simple form (the caller then
 * parses it with cJSON); the strings point into r->scratch. */
static int fast_read(sim_jview_reader *r, const char *line, size_t n, sim_jview *v)
{
    /* + PAD: from any byte up to the NUL, a scan reads a block, a name
     * compare up to 32 bytes and a known run's compare its length. What
     * they read past the NUL never decides anything (the NUL is special
     * and matches no name), so it is not cleared for every record: it is
     * zero when allocated and then earlier records' text, never undefined
     * (a per-record clear cost a `rep stos` start-up each time). */
    enum { PAD = 96 };
    if (n + 1 + PAD > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < n + 1 + PAD)
            cap *= 2;
        char *b = realloc(r->scratch, cap);
        if (!b)
            return 0;
        memset(b + r->cap, 0, cap - r->cap);
        r->scratch = b;
        r->cap = cap;
    }
    char *p = r->scratch;
    memcpy(p, line, n + 1);
    view_clear(v);
    if (p[0] != '{')
        return 0;
    if (p[1] == '}')
        return p[2] == 0;
    return read_job_layout(p, v);
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
