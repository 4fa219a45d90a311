/* Effects list, the packet envelope helper and the injected random source. */
#include "testutil.h"

#include "cap_encode.h"
#include "cap_schema.h"
#include "ref_effect.h"

#define SEC INT64_C(1000000000)

static void test_init_bounds(void **state)
{
    (void)state;
    ref_effects l;
    assert_int_equal(ref_effects_init(NULL, 0), CAP_EINVAL);
    assert_int_equal(ref_effects_init(&l, REF_EFFECTS_MAX_LIMIT + 1), CAP_EINVAL);
    assert_int_equal(ref_effects_init(&l, 0), CAP_OK);
    assert_int_equal(l.max, REF_EFFECTS_DEFAULT_MAX);
    assert_int_equal(ref_effects_count(&l), 0);
    assert_null(ref_effects_at(&l, 0));
    ref_effects_free(&l);
    ref_effects_free(NULL);
    ref_effects_clear(NULL);
}

static void test_append_in_order(void **state)
{
    (void)state;
    ref_effects l;
    assert_int_equal(ref_effects_init(&l, 8), CAP_OK);
    cap_packet *p = ref_packet_new("tr-1", "wrk-1", 5 * SEC);
    assert_non_null(p);
    assert_int_equal(ref_effects_publish(&l, "sys.job.result", p), CAP_OK);
    assert_int_equal(ref_effects_timer_set(&l, 42, 7 * SEC), CAP_OK);
    assert_int_equal(ref_effects_timer_cancel(&l, 42), CAP_OK);
    char rec[] = "{\"event\":\"x\"}";
    assert_int_equal(ref_effects_journal(&l, rec), CAP_OK);
    rec[0] = 'X'; /* the list holds its own copy */
    assert_int_equal(ref_effects_count(&l), 4);

    const ref_effect *e = ref_effects_at(&l, 0);
    assert_int_equal(e->kind, REF_EFFECT_PUBLISH);
    assert_string_equal(e->subject, "sys.job.result");
    assert_ptr_equal(e->packet, p);
    e = ref_effects_at(&l, 1);
    assert_int_equal(e->kind, REF_EFFECT_TIMER_SET);
    assert_true(e->timer_id == 42 && e->at == 7 * SEC);
    e = ref_effects_at(&l, 2);
    assert_int_equal(e->kind, REF_EFFECT_TIMER_CANCEL);
    assert_true(e->timer_id == 42);
    e = ref_effects_at(&l, 3);
    assert_int_equal(e->kind, REF_EFFECT_JOURNAL);
    assert_string_equal(e->record, "{\"event\":\"x\"}");
    assert_null(ref_effects_at(&l, 4));

    /* Clear keeps the storage and empties the list. */
    ref_effect *items = l.items;
    ref_effects_clear(&l);
    assert_int_equal(ref_effects_count(&l), 0);
    assert_ptr_equal(l.items, items);
    assert_int_equal(ref_effects_timer_set(&l, 1, 1), CAP_OK);
    assert_int_equal(ref_effects_count(&l), 1);
    ref_effects_free(&l);
    assert_null(l.items);
}

/* A record given with its length: exactly those bytes are kept (the
 * source needs no NUL), NUL-terminated, and the effect carries the length;
 * a record given without one gets its strlen. */
static void test_journal_with_length(void **state)
{
    (void)state;
    ref_effects l;
    assert_int_equal(ref_effects_init(&l, 8), CAP_OK);
    const char src[] = "{\"k\":\"job\"}TRAILING";
    size_t n = strlen("{\"k\":\"job\"}");
    assert_int_equal(ref_effects_journal_n(&l, src, n), CAP_OK);
    assert_int_equal(ref_effects_journal(&l, "{}"), CAP_OK);
    assert_int_equal(ref_effects_journal_n(&l, "", 0), CAP_OK);
    const ref_effect *e = ref_effects_at(&l, 0);
    assert_int_equal(e->kind, REF_EFFECT_JOURNAL);
    assert_string_equal(e->record, "{\"k\":\"job\"}");
    assert_int_equal(e->record_len, n);
    e = ref_effects_at(&l, 1);
    assert_string_equal(e->record, "{}");
    assert_int_equal(e->record_len, 2);
    e = ref_effects_at(&l, 2);
    assert_string_equal(e->record, "");
    assert_int_equal(e->record_len, 0);
    assert_int_equal(ref_effects_journal_n(&l, NULL, 0), CAP_EINVAL);
    assert_int_equal(ref_effects_journal_n(NULL, "x", 1), CAP_EINVAL);
    assert_int_equal(ref_effects_count(&l), 3);
    ref_effects_free(&l);
}

static void test_bound_full(void **state)
{
    (void)state;
    ref_effects l;
    assert_int_equal(ref_effects_init(&l, 3), CAP_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ref_effects_timer_set(&l, (uint64_t)i, i), CAP_OK);
    assert_int_equal(ref_effects_timer_set(&l, 9, 9), CAP_EFULL);
    assert_int_equal(ref_effects_timer_cancel(&l, 9), CAP_EFULL);
    assert_int_equal(ref_effects_journal(&l, "x"), CAP_EFULL);
    /* A refused publish frees the packet (ASan reports a leak otherwise). */
    assert_int_equal(ref_effects_publish(&l, "s", ref_packet_new("t", "w", 0)), CAP_EFULL);
    assert_int_equal(ref_effects_count(&l), 3);
    assert_true(l.cap <= 3);
    ref_effects_free(&l);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    ref_effects l;
    assert_int_equal(ref_effects_init(&l, 4), CAP_OK);
    assert_int_equal(ref_effects_publish(&l, "", ref_packet_new("t", "w", 0)), CAP_EINVAL);
    assert_int_equal(ref_effects_publish(&l, NULL, ref_packet_new("t", "w", 0)), CAP_EINVAL);
    assert_int_equal(ref_effects_publish(&l, "s", NULL), CAP_EINVAL);
    assert_int_equal(ref_effects_journal(&l, NULL), CAP_EINVAL);
    assert_int_equal(ref_effects_timer_set(NULL, 1, 1), CAP_EINVAL);
    assert_int_equal(ref_effects_count(&l), 0);
    ref_effects_free(&l);
}

static void test_take_packet(void **state)
{
    (void)state;
    ref_effects l;
    assert_int_equal(ref_effects_init(&l, 4), CAP_OK);
    cap_packet *p = ref_packet_new("t", "w", 0);
    assert_int_equal(ref_effects_publish(&l, "sys.heartbeat", p), CAP_OK);
    assert_int_equal(ref_effects_timer_set(&l, 1, 1), CAP_OK);
    assert_null(ref_effects_take_packet(&l, 1));
    assert_null(ref_effects_take_packet(&l, 5));
    cap_packet *got = ref_effects_take_packet(&l, 0);
    assert_ptr_equal(got, p);
    assert_null(ref_effects_take_packet(&l, 0));
    assert_string_equal(ref_effects_at(&l, 0)->subject, "sys.heartbeat");
    ref_effects_free(&l);
    cap_packet_free(got);
}

static void test_packet_new_envelope(void **state)
{
    (void)state;
    int64_t now = INT64_C(1704164645) * SEC + 123456789;
    cap_packet *p = ref_packet_new("trace-9", "wrk-1", now);
    assert_non_null(p);
    assert_string_equal(p->trace_id, "trace-9");
    assert_string_equal(p->sender_id, "wrk-1");
    assert_int_equal(p->protocol_version, 1);
    assert_non_null(p->created_at);
    assert_true(p->created_at->seconds == INT64_C(1704164645));
    assert_int_equal(p->created_at->nanos, 123456789);
    assert_int_equal(p->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD__NOT_SET);
    /* The canonical encoder accepts it. */
    assert_true(cap_encoded_size(&p->base) > 0);
    cap_packet_free(p);

    /* Before the epoch: seconds floor, nanos stay in [0, 1e9). */
    p = ref_packet_new(NULL, "", -1);
    assert_non_null(p);
    assert_string_equal(p->trace_id, "");
    assert_string_equal(p->sender_id, "");
    assert_true(p->created_at->seconds == -1);
    assert_int_equal(p->created_at->nanos, 999999999);
    cap_packet_free(p);

    p = ref_packet_new("t", "w", -2 * SEC);
    assert_true(p->created_at->seconds == -2);
    assert_int_equal(p->created_at->nanos, 0);
    cap_packet_free(p);
}

static uint8_t *encode_packet(const cap_packet *p, size_t *len)
{
    uint8_t *b = NULL;
    assert_int_equal(cap_encode(&p->base, &b, len), CAP_OK);
    return b;
}

/* A block is carved in order, piece by piece, each aligned and zeroed; a
 * string takes its bytes and NUL (none for NULL or ""); a piece that does
 * not fit is refused and marks the block bad instead of writing past it. */
static void test_block_carving(void **state)
{
    (void)state;
    assert_int_equal(ref_block_size(0), 0);
    assert_int_equal(ref_block_size(1), REF_BLOCK_ALIGN);
    assert_int_equal(ref_block_size(REF_BLOCK_ALIGN), REF_BLOCK_ALIGN);
    assert_int_equal(ref_block_size(REF_BLOCK_ALIGN + 1), 2 * REF_BLOCK_ALIGN);
    assert_int_equal(ref_block_str_size(NULL), 0);
    assert_int_equal(ref_block_str_size(""), 0);
    assert_int_equal(ref_block_str_size("abcdefg"), 8);
    assert_int_equal(ref_block_str_size("abcdefgh"), 16);

    ref_block b;
    size_t total = ref_block_size(12) + ref_block_str_size("hello");
    char *blk = ref_block_new(&b, total);
    assert_non_null(blk);
    memset(blk, 0x5a, total);
    uint32_t *x = ref_block_take(&b, 12);
    assert_ptr_equal(x, blk);
    assert_int_equal(x[0] | x[1] | x[2], 0);
    assert_ptr_equal(ref_block_str(&b, ""), protobuf_c_empty_string);
    assert_ptr_equal(ref_block_str(&b, NULL), protobuf_c_empty_string);
    char *h = ref_block_str(&b, "hello");
    assert_ptr_equal(h, blk + ref_block_size(12));
    assert_string_equal(h, "hello");
    /* the piece's padding after the string is cleared, as a taken piece is */
    for (size_t i = sizeof "hello"; i < ref_block_str_size("hello"); i++)
        assert_int_equal(h[i], 0);
    assert_int_equal(b.bad, 0);
    assert_int_equal(b.left, 0);
    /* Full: refused, and the block is marked. */
    assert_null(ref_block_take(&b, 1));
    assert_int_equal(b.bad, 1);
    assert_ptr_equal(ref_block_str(&b, "x"), protobuf_c_empty_string);
    free(blk);

    blk = ref_block_new(&b, 8);
    assert_ptr_equal(ref_block_str(&b, "nine byte"), protobuf_c_empty_string);
    assert_int_equal(b.bad, 1);
    free(blk);

    /* A raw piece is carved like a taken one (aligned, counted, refused
     * past the end) but left as the block held it. */
    blk = ref_block_new(&b, 24);
    assert_non_null(blk);
    memset(blk, 0x5a, 24);
    unsigned char *raw = ref_block_take_raw(&b, 5);
    assert_ptr_equal(raw, blk);
    for (int i = 0; i < 8; i++)
        assert_int_equal(raw[i], 0x5a);
    assert_int_equal(b.left, 16);
    uint64_t *z = ref_block_take(&b, 8);
    assert_ptr_equal(z, blk + 8);
    assert_true(*z == 0);
    assert_null(ref_block_take_raw(&b, 9));
    assert_int_equal(b.bad, 1);
    free(blk);
}

/* The envelope carved in a block encodes to the very bytes of
 * ref_packet_new's, and fills exactly what ref_block_envelope_size says. */
static void test_block_envelope_same_bytes(void **state)
{
    (void)state;
    const int64_t times[] = {INT64_C(1704164645) * SEC + 123456789, -1, 0};
    const char *ids[][2] = {{"trace-9", "wrk-1"}, {"", NULL}, {"t", ""}};
    for (size_t i = 0; i < 3; i++) {
        cap_packet *heap = ref_packet_new(ids[i][0], ids[i][1], times[i]);
        ref_block b;
        void *blk = ref_block_new(&b, ref_block_envelope_size(ids[i][0], ids[i][1]));
        cap_packet *p = ref_block_envelope(&b, ids[i][0], ids[i][1], times[i]);
        assert_ptr_equal(p, blk);
        assert_int_equal(b.left, 0);
        assert_int_equal(b.bad, 0);
        size_t na, nb;
        uint8_t *ea = encode_packet(heap, &na), *eb = encode_packet(p, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(ea, eb, na);
        free(ea);
        free(eb);
        cap_packet_free(heap);
        free(blk);
    }
}

/* A packet published in one block is freed with one free() when the list
 * is cleared (ASan would catch a cap_packet_free of it), and taking it
 * gives an ordinary heap copy with the same bytes. */
static void test_publish_block_and_take(void **state)
{
    (void)state;
    ref_effects l;
    assert_int_equal(ref_effects_init(&l, 4), CAP_OK);
    for (int take = 0; take < 2; take++) {
        ref_block b;
        size_t n = ref_block_envelope_size("tr", "w-1") +
                   ref_block_size(sizeof(Cordum__Agent__V1__Heartbeat)) + ref_block_str_size("w-1") +
                   ref_block_str_size("pool-a");
        void *blk = ref_block_new(&b, n);
        cap_packet *p = ref_block_envelope(&b, "tr", "w-1", 7 * SEC);
        Cordum__Agent__V1__Heartbeat *hb = ref_block_take(&b, sizeof *hb);
        cordum__agent__v1__heartbeat__init(hb);
        hb->worker_id = ref_block_str(&b, "w-1");
        hb->pool = ref_block_str(&b, "pool-a");
        hb->active_jobs = 3;
        p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
        p->heartbeat = hb;
        assert_int_equal(b.bad, 0);
        assert_ptr_equal(p, blk);
        assert_int_equal(ref_effects_publish_block(&l, "sys.heartbeat", p), CAP_OK);
        assert_int_equal(ref_effects_at(&l, 0)->packet_block, 1);
        if (take) {
            size_t na, nb;
            uint8_t *ea = encode_packet(p, &na);
            cap_packet *got = ref_effects_take_packet(&l, 0);
            assert_non_null(got);
            assert_ptr_not_equal(got, p);
            assert_null(ref_effects_at(&l, 0)->packet);
            uint8_t *eb = encode_packet(got, &nb);
            assert_int_equal(na, nb);
            assert_memory_equal(ea, eb, na);
            assert_string_equal(got->heartbeat->pool, "pool-a");
            free(ea);
            free(eb);
            cap_packet_free(got);
        }
        ref_effects_clear(&l);
    }
    /* Refused: the block is freed by the list. */
    ref_block b;
    void *blk = ref_block_new(&b, ref_block_envelope_size("t", "w"));
    assert_non_null(ref_block_envelope(&b, "t", "w", 0));
    assert_int_equal(ref_effects_publish_block(&l, "", blk), CAP_EINVAL);
    assert_null(ref_packet_heap_copy(NULL));
    ref_effects_free(&l);
}

static void test_pb_strdup(void **state)
{
    (void)state;
    int ok = 1;
    char *e = ref_pb_strdup("", &ok);
    assert_ptr_equal(e, protobuf_c_empty_string);
    assert_ptr_equal(ref_pb_strdup(NULL, &ok), protobuf_c_empty_string);
    char *c = ref_pb_strdup("abc", &ok);
    assert_int_equal(ok, 1);
    assert_string_equal(c, "abc");
    free(c);
}

static uint64_t counter_rand(void *ctx)
{
    uint64_t *v = ctx;
    return (*v)++;
}

static void test_rand(void **state)
{
    (void)state;
    uint64_t s1 = 7, s2 = 7;
    ref_rand a = {ref_rand_splitmix64, &s1};
    ref_rand b = {ref_rand_splitmix64, &s2};
    uint64_t first = ref_rand_next(&a);
    assert_true(first == ref_rand_next(&b)); /* same seed, same sequence */
    assert_true(ref_rand_next(&a) != first);
    /* SplitMix64 reference value: seed 0 gives 0xE220A8397B1DCDAF first. */
    uint64_t s0 = 0;
    ref_rand z = {ref_rand_splitmix64, &s0};
    assert_true(ref_rand_next(&z) == UINT64_C(0xE220A8397B1DCDAF));

    for (int i = 0; i < 1000; i++)
        assert_true(ref_rand_below(&a, 10) < 10);
    assert_true(ref_rand_below(&a, 0) == 0);
    assert_true(ref_rand_below(&a, 1) == 0);

    /* The top partial block is rejected: with n = 2^63 + 1 every draw of
     * 2^63 + 1 or more is redrawn. */
    uint64_t v = UINT64_MAX - 1;
    ref_rand c = {counter_rand, &v};
    uint64_t n = (UINT64_C(1) << 63) + 1;
    uint64_t got = ref_rand_below(&c, n);
    assert_true(got < n);
    assert_true(got == 0); /* UINT64_MAX-1, UINT64_MAX rejected; wraps to 0 */
}

/* Subjects and records share one text buffer: strings listed before the
 * buffer grew still read right afterwards, a cleared list reuses it, and
 * one that grew past the keep size is given back at the clear. */
/* A record written in place: room, write, commit. The bytes written before
 * the storage moves come along; the strings of the effects already listed
 * move too; nothing counts before the commit. */
static void test_record_in_place(void **state)
{
    (void)state;
    ref_effects l;
    assert_int_equal(ref_effects_init(&l, 3), CAP_OK);
    assert_int_equal(ref_effects_record_commit(&l, 0), CAP_EINVAL); /* no room asked */
    assert_int_equal(ref_effects_publish(&l, "sys.job.submit", ref_packet_new("t", "s", 0)),
                     CAP_OK);
    size_t room = 0;
    char *r = ref_effects_record_room(&l, 0, 8, &room);
    assert_non_null(r);
    assert_true(room >= 8);
    memcpy(r, "{\"a\":", 5);
    char *old_text = l.text;
    size_t big = l.text_cap + 1000; /* more than there is: the storage moves */
    r = ref_effects_record_room(&l, 5, big, &room);
    assert_non_null(r);
    assert_true(room >= 5 + big);
    assert_ptr_not_equal(l.text, old_text);
    assert_memory_equal(r, "{\"a\":", 5);
    assert_string_equal(ref_effects_at(&l, 0)->subject, "sys.job.submit");
    assert_int_equal(ref_effects_count(&l), 1); /* not counted yet */
    memcpy(r + 5, "1}", 2);
    assert_int_equal(ref_effects_record_commit(&l, 7), CAP_OK);
    const ref_effect *e = ref_effects_at(&l, 1);
    assert_int_equal(e->kind, REF_EFFECT_JOURNAL);
    assert_string_equal(e->record, "{\"a\":1}");
    assert_int_equal(e->record_len, 7);
    assert_null(e->packet);
    assert_null(e->subject);
    /* what follows goes after it */
    assert_int_equal(ref_effects_journal(&l, "{}"), CAP_OK);
    assert_string_equal(ref_effects_at(&l, 1)->record, "{\"a\":1}");
    assert_string_equal(ref_effects_at(&l, 2)->record, "{}");
    /* a full list refuses the record and stays as it was */
    r = ref_effects_record_room(&l, 0, 3, NULL);
    assert_non_null(r);
    memcpy(r, "{}", 2);
    assert_int_equal(ref_effects_record_commit(&l, 2), CAP_EFULL);
    assert_int_equal(ref_effects_count(&l), 3);
    /* room asked for less than the commit needs (len + 1 for the NUL) */
    ref_effects_clear(&l);
    r = ref_effects_record_room(&l, 0, 1, &room);
    assert_non_null(r);
    assert_int_equal(ref_effects_record_commit(&l, room), CAP_EINVAL);
    assert_int_equal(ref_effects_count(&l), 0);
    /* a reused slot holds only what its new effect sets */
    assert_int_equal(ref_effects_timer_set(&l, 9, 100), CAP_OK);
    e = ref_effects_at(&l, 0);
    assert_int_equal(e->kind, REF_EFFECT_TIMER_SET);
    assert_null(e->record);
    assert_int_equal(e->record_len, 0);
    assert_null(e->packet);
    assert_null(e->subject);
    assert_int_equal(e->packet_block, 0);
    ref_effects_free(&l);
    assert_null(ref_effects_record_room(NULL, 0, 1, NULL));
    assert_int_equal(ref_effects_record_commit(NULL, 0), CAP_EINVAL);
}

static void test_text_buffer_moves_and_is_given_back(void **state)
{
    (void)state;
    ref_effects l;
    assert_int_equal(ref_effects_init(&l, 4096), CAP_OK);
    char rec[600], subj[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 400; i++) {
            snprintf(subj, sizeof subj, "worker.w-%d.jobs", i);
            memset(rec, 'a' + i % 26, sizeof rec - 1);
            rec[sizeof rec - 1] = 0;
            snprintf(rec, 24, "{\"n\":%d", i);
            rec[strlen(rec)] = ',';
            if (i % 2)
                assert_int_equal(ref_effects_journal(&l, rec), CAP_OK);
            else
                assert_int_equal(ref_effects_publish(&l, subj, ref_packet_new("t", "s", 0)),
                                 CAP_OK);
        }
        assert_true(l.text_cap > (size_t)64 << 10); /* it grew (and moved) */
        for (int i = 0; i < 400; i++) {
            const ref_effect *e = ref_effects_at(&l, (size_t)i);
            if (i % 2) {
                assert_int_equal(e->kind, REF_EFFECT_JOURNAL);
                snprintf(subj, sizeof subj, "{\"n\":%d,", i);
                assert_memory_equal(e->record, subj, strlen(subj));
                assert_int_equal(strlen(e->record), sizeof rec - 1);
                assert_int_equal(e->record[sizeof rec - 2], 'a' + i % 26);
            } else {
                snprintf(subj, sizeof subj, "worker.w-%d.jobs", i);
                assert_string_equal(e->subject, subj);
            }
        }
        ref_effects_clear(&l);
        assert_int_equal(l.text_cap, 0); /* past the keep size: given back */
    }
    /* a small batch keeps its buffer for the next one */
    assert_int_equal(ref_effects_journal(&l, "{}"), CAP_OK);
    char *buf = l.text;
    ref_effects_clear(&l);
    assert_ptr_equal(l.text, buf);
    assert_int_equal(ref_effects_journal(&l, "{\"k\":1}"), CAP_OK);
    assert_string_equal(ref_effects_at(&l, 0)->record, "{\"k\":1}");
    ref_effects_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_bounds),
        cmocka_unit_test(test_append_in_order),
        cmocka_unit_test(test_journal_with_length),
        cmocka_unit_test(test_bound_full),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_take_packet),
        cmocka_unit_test(test_packet_new_envelope),
        cmocka_unit_test(test_pb_strdup),
        cmocka_unit_test(test_block_carving),
        cmocka_unit_test(test_block_envelope_same_bytes),
        cmocka_unit_test(test_publish_block_and_take),
        cmocka_unit_test(test_rand),
        cmocka_unit_test(test_text_buffer_moves_and_is_given_back),
        cmocka_unit_test(test_record_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
