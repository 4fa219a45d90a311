/* Effects list, packet envelope helper and injected randomness. */
#include "ref_effect.h"

#include <stdlib.h>
#include <string.h>

#include "cap_time.h"

/* A text buffer larger than this after a batch is given back, so one
 * large batch (a restore) does not pin its size. */
#define TEXT_KEEP ((size_t)64 << 10)

int ref_effects_init(ref_effects *l, size_t max)
{
    if (!l || max > REF_EFFECTS_MAX_LIMIT)
        return CAP_EINVAL;
    memset(l, 0, sizeof *l);
    l->max = max ? max : REF_EFFECTS_DEFAULT_MAX;
    return CAP_OK;
}

void ref_effects_clear(ref_effects *l)
{
    if (!l)
        return;
    /* Only a publish owns a packet; the slots themselves are set afresh
     * when they are used again. */
    for (size_t i = 0; i < l->len; i++) {
        ref_effect *e = &l->items[i];
        if (e->kind != REF_EFFECT_PUBLISH || !e->packet)
            continue;
        if (e->packet_block)
            free(e->packet);
        else
            cap_packet_free(e->packet);
    }
    l->len = 0;
    l->text_len = 0;
    if (l->text_cap > TEXT_KEEP) {
        free(l->text);
        l->text = NULL;
        l->text_cap = 0;
    }
}

void ref_effects_free(ref_effects *l)
{
    if (!l)
        return;
    ref_effects_clear(l);
    free(l->items);
    free(l->text);
    l->items = NULL;
    l->text = NULL;
    l->cap = l->text_cap = 0;
}

/* Room for n bytes past the end of the list's text (l->text_len), the
 * `keep` bytes already written there (a record being written in place)
 * kept when the buffer moves; the strings of the effects already listed
 * move with it. 0, or -1 when memory ran out (nothing changed). */
static int text_reserve(ref_effects *l, size_t keep, size_t n)
{
    if (n <= l->text_cap - l->text_len)
        return 0;
    size_t ncap = l->text_cap ? l->text_cap : 1024;
    while (ncap - l->text_len < n) {
        if (ncap > (size_t)-1 / 2)
            return -1;
        ncap *= 2;
    }
    char *old = l->text, *t = malloc(ncap);
    if (!t)
        return -1;
    if (l->text_len + keep)
        memcpy(t, old, l->text_len + keep);
    for (size_t i = 0; i < l->len; i++) {
        ref_effect *e = &l->items[i];
        if (e->subject)
            e->subject = t + (e->subject - old);
        if (e->record)
            e->record = t + (e->record - old);
    }
    free(old);
    l->text = t;
    l->text_cap = ncap;
    return 0;
}

/* A copy of the len bytes at s, NUL-terminated, in the list's text
 * buffer, or NULL when memory ran out. */
static char *text_copy_n(ref_effects *l, const char *s, size_t len)
{
    if (text_reserve(l, 0, len + 1))
        return NULL;
    char *c = memcpy(l->text + l->text_len, s, len);
    c[len] = 0;
    l->text_len += len + 1;
    return c;
}

static char *text_copy(ref_effects *l, const char *s)
{
    return text_copy_n(l, s, strlen(s));
}

/* slot's growing path. */
static __attribute__((noinline)) ref_effect *slot_grow(ref_effects *l, int *err)
{
    if (l->len >= l->max) {
        *err = CAP_EFULL;
        return NULL;
    }
    if (l->len == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        if (ncap > l->max)
            ncap = l->max;
        ref_effect *n = realloc(l->items, ncap * sizeof *n);
        if (!n) {
            *err = CAP_ENOMEM;
            return NULL;
        }
        l->items = n;
        l->cap = ncap;
    }
    return &l->items[l->len];
}

/* Makes room for one more effect and returns its slot, without counting
 * it yet; NULL with *err set when full or out of memory. The caller sets
 * the whole slot (a compound literal: every member it does not name is
 * zero). */
static inline ref_effect *slot(ref_effects *l, int *err)
{
    if (l->len < l->cap && l->len < l->max)
        return &l->items[l->len];
    return slot_grow(l, err);
}

static void packet_release(cap_packet *packet, int block)
{
    if (block)
        free(packet);
    else
        cap_packet_free(packet);
}

static int publish(ref_effects *l, const char *subject, cap_packet *packet, int block)
{
    if (!l || !subject || !subject[0] || !packet) {
        packet_release(packet, block);
        return CAP_EINVAL;
    }
    int err = CAP_OK;
    ref_effect *e = slot(l, &err);
    char *s = e ? text_copy(l, subject) : NULL;
    if (!s) {
        packet_release(packet, block);
        return e ? CAP_ENOMEM : err;
    }
    *e = (ref_effect){
        .kind = REF_EFFECT_PUBLISH, .subject = s, .packet = packet, .packet_block = block};
    l->len++;
    return CAP_OK;
}

int ref_effects_publish(ref_effects *l, const char *subject, cap_packet *packet)
{
    return publish(l, subject, packet, 0);
}

int ref_effects_publish_block(ref_effects *l, const char *subject, cap_packet *packet)
{
    return publish(l, subject, packet, 1);
}

static int timer(ref_effects *l, ref_effect_kind kind, uint64_t id, int64_t at)
{
    if (!l)
        return CAP_EINVAL;
    int err = CAP_OK;
    ref_effect *e = slot(l, &err);
    if (!e)
        return err;
    *e = (ref_effect){.kind = kind, .timer_id = id, .at = at};
    l->len++;
    return CAP_OK;
}

int ref_effects_timer_set(ref_effects *l, uint64_t id, int64_t at)
{
    return timer(l, REF_EFFECT_TIMER_SET, id, at);
}

int ref_effects_timer_cancel(ref_effects *l, uint64_t id)
{
    return timer(l, REF_EFFECT_TIMER_CANCEL, id, 0);
}

int ref_effects_journal(ref_effects *l, const char *record)
{
    return record ? ref_effects_journal_n(l, record, strlen(record)) : CAP_EINVAL;
}

int ref_effects_journal_n(ref_effects *l, const char *record, size_t len)
{
    if (!l || !record)
        return CAP_EINVAL;
    int err = CAP_OK;
    ref_effect *e = slot(l, &err);
    if (!e)
        return err;
    char *r = text_copy_n(l, record, len);
    if (!r)
        return CAP_ENOMEM;
    *e = (ref_effect){.kind = REF_EFFECT_JOURNAL, .record = r, .record_len = len};
    l->len++;
    return CAP_OK;
}

char *ref_effects_record_room_grow(ref_effects *l, size_t used, size_t n, size_t *room)
{
    if (!l || n > (size_t)-1 - used || text_reserve(l, used, used + n))
        return NULL;
    if (room)
        *room = l->text_cap - l->text_len;
    return l->text + l->text_len;
}

int ref_effects_record_commit_kind_slow(ref_effects *l, size_t len, ref_effect_kind kind)
{
    if (!l || !l->text || len >= l->text_cap - l->text_len)
        return CAP_EINVAL;
    int err = CAP_OK;
    if (!slot(l, &err))
        return err;
    ref_effects_record_put_(l, len, kind);
    return CAP_OK;
}

cap_packet *ref_effects_take_packet(ref_effects *l, size_t i)
{
    if (!l || i >= l->len || l->items[i].kind != REF_EFFECT_PUBLISH)
        return NULL;
    cap_packet *p = l->items[i].packet;
    if (p && l->items[i].packet_block) {
        cap_packet *c = ref_packet_heap_copy(p);
        if (!c)
            return NULL;
        free(p);
        l->items[i].packet_block = 0;
        p = c;
    }
    l->items[i].packet = NULL;
    return p;
}

cap_packet *ref_packet_heap_copy(const cap_packet *p)
{
    if (!p)
        return NULL;
    /* through the wire form: the copy is what a receiver would decode */
    size_t n = protobuf_c_message_get_packed_size(&p->base);
    uint8_t *buf = malloc(n ? n : 1);
    cap_packet *c = NULL;
    if (buf) {
        protobuf_c_message_pack(&p->base, buf);
        c = (cap_packet *)protobuf_c_message_unpack(p->base.descriptor, NULL, n, buf);
        free(buf);
    }
    return c;
}

char *ref_pb_strdup(const char *s, int *ok)
{
    if (!s || !s[0])
        return (char *)protobuf_c_empty_string;
    char *c = strdup(s);
    if (!c) {
        *ok = 0;
        return (char *)protobuf_c_empty_string;
    }
    return c;
}

cap_packet *ref_packet_new(const char *trace_id, const char *sender_id, int64_t now)
{
    cap_packet *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    cordum__agent__v1__bus_packet__init(p);
    int ok = 1;
    p->trace_id = ref_pb_strdup(trace_id, &ok);
    p->sender_id = ref_pb_strdup(sender_id, &ok);
    p->protocol_version = CAP_PROTOCOL_VERSION;
    Google__Protobuf__Timestamp *ts = malloc(sizeof *ts);
    if (ts) {
        google__protobuf__timestamp__init(ts);
        cap_timestamp_from_nanos(now, ts);
        p->created_at = ts;
    }
    if (!ok || !ts) {
        cap_packet_free(p);
        return NULL;
    }
    return p;
}

size_t ref_block_size(size_t n)
{
    return (n + REF_BLOCK_ALIGN - 1) & ~(REF_BLOCK_ALIGN - 1);
}

size_t ref_block_str_size_n(size_t n)
{
    return n ? ref_block_size(n + 1) : 0;
}

size_t ref_block_str_size(const char *s)
{
    return s && s[0] ? ref_block_size(strlen(s) + 1) : 0;
}

void *ref_block_new(ref_block *b, size_t total)
{
    char *blk = malloc(total ? total : 1);
    *b = (ref_block){blk, blk ? total : 0, blk == NULL};
    return blk;
}

/* The next n bytes of the block (n already aligned), not cleared; NULL
 * (and b->bad set) when they do not fit. */
static char *block_carve(ref_block *b, size_t n)
{
    if (b->bad || n > b->left) {
        b->bad = 1;
        return NULL;
    }
    char *p = b->next;
    b->next += n;
    b->left -= n;
    return p;
}

void *ref_block_take(ref_block *b, size_t n)
{
    n = ref_block_size(n);
    char *p = block_carve(b, n);
    return p ? memset(p, 0, n) : NULL;
}

void *ref_block_take_raw(ref_block *b, size_t n)
{
    return block_carve(b, ref_block_size(n));
}

/* ref_block_str_n's work (n > 0), inlined in both string functions. */
static inline char *block_str(ref_block *b, const char *s, size_t n)
{
    /* The string is written once: only the piece's last word is cleared
     * first, which holds the alignment's padding (under one word), so the
     * whole piece is defined, as ref_block_take leaves it. */
    size_t all = ref_block_size(n + 1);
    char *c = block_carve(b, all);
    if (!c)
        return (char *)protobuf_c_empty_string;
    memset(c + all - REF_BLOCK_ALIGN, 0, REF_BLOCK_ALIGN);
    memcpy(c, s, n + 1);
    return c;
}

char *ref_block_str_n(ref_block *b, const char *s, size_t n)
{
    return n ? block_str(b, s, n) : (char *)protobuf_c_empty_string;
}

char *ref_block_str(ref_block *b, const char *s)
{
    return s && s[0] ? block_str(b, s, strlen(s)) : (char *)protobuf_c_empty_string;
}

size_t ref_block_envelope_size_n(size_t trace_len, size_t sender_len)
{
    return ref_block_size(sizeof(cap_packet)) + ref_block_size(sizeof(Google__Protobuf__Timestamp)) +
           ref_block_str_size_n(trace_len) + ref_block_str_size_n(sender_len);
}

size_t ref_block_envelope_size(const char *trace_id, const char *sender_id)
{
    return ref_block_envelope_size_n(trace_id ? strlen(trace_id) : 0,
                                     sender_id ? strlen(sender_id) : 0);
}

/* The envelope's packet and timestamp, before its two ids. */
static inline cap_packet *envelope_start(ref_block *b, int64_t now)
{
    cap_packet *p = ref_block_take_raw(b, sizeof *p); /* both set whole by their __init */
    Google__Protobuf__Timestamp *ts = ref_block_take_raw(b, sizeof *ts);
    if (!p || !ts)
        return NULL;
    cordum__agent__v1__bus_packet__init(p);
    google__protobuf__timestamp__init(ts);
    cap_timestamp_from_nanos(now, ts);
    p->protocol_version = CAP_PROTOCOL_VERSION;
    p->created_at = ts;
    return p;
}

cap_packet *ref_block_envelope_n(ref_block *b, const char *trace_id, size_t trace_len,
                                 const char *sender_id, size_t sender_len, int64_t now)
{
    cap_packet *p = envelope_start(b, now);
    if (p) {
        p->trace_id = ref_block_str_n(b, trace_id, trace_len);
        p->sender_id = ref_block_str_n(b, sender_id, sender_len);
    }
    return p;
}

cap_packet *ref_block_envelope(ref_block *b, const char *trace_id, const char *sender_id,
                               int64_t now)
{
    cap_packet *p = envelope_start(b, now);
    if (p) {
        p->trace_id = ref_block_str(b, trace_id);
        p->sender_id = ref_block_str(b, sender_id);
    }
    return p;
}

uint64_t ref_rand_next(const ref_rand *r)
{
    return r->next(r->ctx);
}

uint64_t ref_rand_below(const ref_rand *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the top partial block: 2^64 mod n values that would favour
     * the low residues. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n + 1) % n;
    for (;;) {
        uint64_t v = ref_rand_next(r);
        if (v <= limit)
            return v % n;
    }
}

uint64_t ref_rand_splitmix64(void *ctx)
{
    uint64_t *state = ctx;
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
