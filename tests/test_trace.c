/* Trace files: binary and JSONL round trips, the hash, and every class of
 * malformed input the reader rejects. */
#include "testutil.h"

#include "cap_decode.h"
#include "cap_encode.h"
#include "cap_schema.h"
#include "cap_trace.h"
#include "ref_effect.h"

#define SEC INT64_C(1000000000)

/* Pinned: the SHA-256 of the binary form of sample_records(), computed by
 * the first run of this implementation. Changes only with the format. */
#define GOLDEN_HASH "27aa3e305de2b417c27578f441c3ddaac64dccab53f960285eb3eaed5d0d2114"
#define GOLDEN_EMPTY_HASH "6fc3cf8ec4fe3c107f6ddc49d70620b3741965c787ac36f6beaeca2184cbc700"

static cap_packet *make_hb(const char *sender, int64_t now, const char *worker)
{
    cap_packet *p = ref_packet_new("trace-1", sender, now);
    assert_non_null(p);
    Cordum__Agent__V1__Heartbeat *hb = malloc(sizeof *hb);
    assert_non_null(hb);
    cordum__agent__v1__heartbeat__init(hb);
    int ok = 1;
    hb->worker_id = ref_pb_strdup(worker, &ok);
    hb->active_jobs = 3;
    assert_true(ok);
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
    p->heartbeat = hb;
    return p;
}

static uint8_t *hb_bytes(const char *sender, int64_t now, size_t *len)
{
    cap_packet *p = make_hb(sender, now, "w1");
    uint8_t *b = NULL;
    assert_int_equal(cap_encode(&p->base, &b, len), CAP_OK);
    cap_packet_free(p);
    return b;
}

typedef struct {
    uint8_t *b1, *b2, *bad;
    size_t l1, l2, lbad;
    cap_trace_record r[5];
} sample;

static void sample_init(sample *s)
{
    memset(s, 0, sizeof *s);
    s->b1 = hb_bytes("worker-1", 1 * SEC, &s->l1);
    s->b2 = hb_bytes("worker-2", 2 * SEC, &s->l2);
    s->lbad = s->l1;
    s->bad = malloc(s->lbad);
    assert_non_null(s->bad);
    memcpy(s->bad, s->b1, s->lbad);
    s->bad[0] ^= 0xff; /* a broken tag: does not decode */
    s->r[0] = (cap_trace_record){1 * SEC, CAP_TRACE_PUBLISH, "sys.heartbeat", "worker-1", NULL,
                                 NULL, NULL, s->b1, s->l1};
    s->r[1] = (cap_trace_record){1 * SEC + 500, CAP_TRACE_DELIVER, "sys.heartbeat", "worker-1",
                                 "scheduler", "", "", s->b1, s->l1};
    s->r[2] = (cap_trace_record){2 * SEC, CAP_TRACE_DROP, "sys.heartbeat", "worker-2", "scheduler",
                                 NULL, "loss", s->b2, s->l2};
    s->r[3] = (cap_trace_record){-7, CAP_TRACE_REJECT, "_INBOX.1.1", "scheduler", "wörker\"3",
                                 "_INBOX.2.9", "decode: \u00e9\n", s->bad, s->lbad};
    s->r[4] = (cap_trace_record){INT64_MAX, CAP_TRACE_PUBLISH, "job.default", "gw", NULL, NULL,
                                 NULL, NULL, 0};
}

static void sample_free(sample *s)
{
    free(s->b1);
    free(s->b2);
    free(s->bad);
}

static FILE *mem(const void *p, size_t n)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(p, 1, n, f), n);
    rewind(f);
    return f;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

static void assert_same_record(const cap_trace_record *a, const cap_trace_record *b)
{
    assert_true(a->time == b->time);
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(nz(a->subject), nz(b->subject));
    assert_string_equal(nz(a->sender), nz(b->sender));
    assert_string_equal(nz(a->receiver), nz(b->receiver));
    assert_string_equal(nz(a->reply), nz(b->reply));
    assert_string_equal(nz(a->note), nz(b->note));
    assert_int_equal(a->len, b->len);
    if (a->len)
        assert_memory_equal(a->bytes, b->bytes, a->len);
}

/* Writes the sample in fmt to a temp file; returns it rewound, hash in hex. */
static FILE *write_sample(const sample *s, cap_trace_format fmt, char hex[65])
{
    FILE *f = tmpfile();
    assert_non_null(f);
    cap_trace_writer *w = NULL;
    assert_int_equal(cap_trace_writer_open(f, fmt, &w), CAP_OK);
    cap_diag d;
    for (int i = 0; i < 5; i++)
        assert_int_equal(cap_trace_write(w, &s->r[i], &d), CAP_OK);
    assert_true(cap_trace_writer_count(w) == 5);
    assert_int_equal(cap_trace_writer_close(w, hex), CAP_OK);
    rewind(f);
    return f;
}

static void read_back(FILE *f, cap_trace_format fmt, const sample *s, const char *hex)
{
    cap_trace_reader *r = NULL;
    cap_diag d;
    assert_int_equal(cap_trace_reader_open(f, fmt, NULL, &r, &d), CAP_OK);
    cap_trace_record rec;
    for (int i = 0; i < 5; i++) {
        int rc = cap_trace_read(r, &rec, &d);
        if (rc != 1) {
            char buf[512];
            fail_msg("record %d: %d %s", i, rc, cap_diag_format(&d, buf, sizeof buf));
        }
        assert_same_record(&rec, &s->r[i]);
    }
    assert_int_equal(cap_trace_read(r, &rec, &d), 0);
    assert_int_equal(cap_trace_read(r, &rec, &d), 0);
    char h2[65];
    assert_int_equal(cap_trace_reader_hash(r, h2), CAP_OK);
    assert_string_equal(h2, hex);
    cap_trace_reader_close(r);
}

static void test_binary_round_trip(void **state)
{
    (void)state;
    sample s;
    sample_init(&s);
    char hex[65];
    FILE *f = write_sample(&s, CAP_TRACE_BINARY, hex);
    /* The file starts with the header. */
    uint8_t head[12];
    assert_int_equal(fread(head, 1, 12, f), 12);
    assert_memory_equal(head, "CAPTRACE\x01\x00\x00\x00", 12);
    rewind(f);
    read_back(f, CAP_TRACE_BINARY, &s, hex);
    rewind(f);
    read_back(f, CAP_TRACE_AUTO, &s, hex);
    fclose(f);
    sample_free(&s);
}

static void test_jsonl_round_trip(void **state)
{
    (void)state;
    sample s;
    sample_init(&s);
    char hb[65], hj[65];
    FILE *fb = write_sample(&s, CAP_TRACE_BINARY, hb);
    FILE *fj = write_sample(&s, CAP_TRACE_JSONL, hj);
    /* Same records, same hash, whichever encoding. */
    assert_string_equal(hb, hj);
    /* Line 1 is the header; record 1 carries the packet's JSON form. */
    char line[4096];
    assert_non_null(fgets(line, sizeof line, fj));
    assert_string_equal(line, "{\"captrace\":1}\n");
    assert_non_null(fgets(line, sizeof line, fj));
    assert_non_null(strstr(line, "\"time\":\"1000000000\",\"kind\":\"publish\""));
    assert_non_null(strstr(line, "\"packet\":{\"traceId\":\"trace-1\""));
    assert_non_null(strstr(line, "\"bytes\":\""));
    rewind(fj);
    read_back(fj, CAP_TRACE_JSONL, &s, hb);
    rewind(fj);
    read_back(fj, CAP_TRACE_AUTO, &s, hb);
    fclose(fb);
    fclose(fj);
    sample_free(&s);
}

static void test_hash_stable(void **state)
{
    (void)state;
    sample s;
    sample_init(&s);
    /* Hash only (no file): the same hash as a written file. */
    cap_trace_writer *w = NULL;
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_BINARY, &w), CAP_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cap_trace_write(w, &s.r[i], NULL), CAP_OK);
    char h1[65], h2[65];
    assert_int_equal(cap_trace_writer_close(w, h1), CAP_OK);
    FILE *f = write_sample(&s, CAP_TRACE_BINARY, h2);
    assert_string_equal(h1, h2);
    assert_string_equal(h1, GOLDEN_HASH);
    /* An empty trace hashes the header alone: SHA-256("CAPTRACE" 01 00 00 00). */
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_JSONL, &w), CAP_OK);
    assert_int_equal(cap_trace_writer_close(w, h1), CAP_OK);
    assert_string_equal(h1, GOLDEN_EMPTY_HASH);
    /* One changed field, another hash. */
    s.r[2].time++;
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_BINARY, &w), CAP_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cap_trace_write(w, &s.r[i], NULL), CAP_OK);
    assert_int_equal(cap_trace_writer_close(w, h1), CAP_OK);
    assert_string_not_equal(h1, h2);
    fclose(f);
    sample_free(&s);
}

/* cap_trace_write_n, given the strings' lengths, writes the same bytes
 * (the same hash) and checks the strings the same way. */
static void test_write_n(void **state)
{
    (void)state;
    sample s;
    sample_init(&s);
    cap_trace_writer *w = NULL;
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_BINARY, &w), CAP_OK);
    for (int i = 0; i < 5; i++) {
        const cap_trace_record *r = &s.r[i];
        const size_t n[CAP_TRACE_NSTR] = {strlen(nz(r->subject)), strlen(nz(r->sender)),
                                          strlen(nz(r->receiver)), strlen(nz(r->reply)),
                                          strlen(nz(r->note))};
        assert_int_equal(cap_trace_write_n(w, r, n, NULL), CAP_OK);
    }
    char h1[65];
    assert_int_equal(cap_trace_writer_close(w, h1), CAP_OK);
    assert_string_equal(h1, GOLDEN_HASH);
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_BINARY, &w), CAP_OK);
    cap_diag d;
    cap_trace_record r = {0, CAP_TRACE_PUBLISH, "s", "\xc3\xa9t\xe9", NULL, NULL, NULL, NULL, 0};
    const size_t bad[CAP_TRACE_NSTR] = {1, 4, 0, 0, 0};
    assert_int_equal(cap_trace_write_n(w, &r, bad, &d), CAP_EINVAL);
    assert_string_equal(d.path, "sender");
    char longs[CAP_TRACE_MAX_STRING + 2];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    r.sender = NULL;
    r.reply = longs;
    const size_t over[CAP_TRACE_NSTR] = {1, 0, 0, sizeof longs - 1, 0};
    assert_int_equal(cap_trace_write_n(w, &r, over, &d), CAP_EINVAL);
    assert_string_equal(d.path, "reply");
    assert_true(cap_trace_writer_count(w) == 0);
    assert_int_equal(cap_trace_writer_close(w, NULL), CAP_OK);
    sample_free(&s);
}

static void test_writer_rejects(void **state)
{
    (void)state;
    cap_trace_writer *w = NULL;
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_AUTO, &w), CAP_EINVAL);
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_BINARY, NULL), CAP_EINVAL);
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_BINARY, &w), CAP_OK);
    cap_diag d;
    cap_trace_record r = {0, CAP_TRACE_PUBLISH, "s", NULL, NULL, NULL, NULL, NULL, 0};
    assert_int_equal(cap_trace_write(w, NULL, &d), CAP_EINVAL);
    r.subject = "";
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
    assert_string_equal(d.path, "record.subject");
    r.subject = "s";
    r.kind = (cap_trace_kind)9;
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
    r.kind = CAP_TRACE_PUBLISH;
    char longs[CAP_TRACE_MAX_STRING + 2];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    r.sender = longs;
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
    assert_string_equal(d.path, "sender");
    r.sender = "\xff\xfe";
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
    r.sender = NULL;
    r.len = 3;
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
    assert_true(cap_trace_writer_count(w) == 0);
    assert_int_equal(cap_trace_writer_close(w, NULL), CAP_OK);
    assert_int_equal(cap_trace_writer_close(NULL, NULL), CAP_OK);
    assert_non_null(cap_trace_kind_name(CAP_TRACE_REJECT));
    assert_null(cap_trace_kind_name((cap_trace_kind)0));
}

/* The writer's text check: ASCII strings pass without the full UTF-8
 * check, and any other byte anywhere in a record sends every string of it
 * through that check, which names the first bad one. */
static void test_writer_text_check(void **state)
{
    (void)state;
    cap_trace_writer *w = NULL;
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_BINARY, &w), CAP_OK);
    cap_diag d;
    cap_trace_record r = {7, CAP_TRACE_DELIVER, "sys.job.submit", "gateway", "scheduler",
                          "_INBOX.1.2", "plain ascii ~!", NULL, 0};
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_OK);
    r.receiver = "caf\xc3\xa9"; /* valid two-byte sequence */
    r.note = "\xe2\x82\xac 5";  /* valid three-byte sequence */
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_OK);
    r.note = "ok \xc3"; /* truncated sequence, the last string of an otherwise valid record */
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
    assert_string_equal(d.path, "note");
    r.receiver = "scheduler"; /* the only non-ASCII byte is the bad one */
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
    assert_string_equal(d.path, "note");
    r.note = NULL;
    r.subject = "sys.\xed\xa0\x80"; /* a surrogate: not UTF-8 */
    assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
    assert_string_equal(d.path, "subject");
    assert_true(cap_trace_writer_count(w) == 2);
    assert_int_equal(cap_trace_writer_close(w, NULL), CAP_OK);
}

/* The writer reads strings a word at a time: a non-ASCII byte at any
 * place of a string of any length, in any field, is seen (a bad one
 * rejected with the field named, a valid sequence accepted), and the
 * length bound holds exactly for every field. */
static void test_writer_text_every_position(void **state)
{
    (void)state;
    static const char *const fields[5] = {"subject", "sender", "receiver", "reply", "note"};
    cap_trace_writer *w = NULL;
    assert_int_equal(cap_trace_writer_open(NULL, CAP_TRACE_BINARY, &w), CAP_OK);
    cap_diag d;
    uint64_t ok = 0;
    char str[CAP_TRACE_MAX_STRING + 2];
    for (int f = 0; f < 5; f++) {
        for (size_t n = 1; n <= 24; n++) {
            for (size_t k = 0; k < n; k++) {
                memset(str, 'a', n);
                str[n] = 0;
                cap_trace_record r = {1, CAP_TRACE_DROP, "s", "x", "y", "z", "q", NULL, 0};
                const char **slot[5] = {&r.subject, &r.sender, &r.receiver, &r.reply, &r.note};
                *slot[f] = str;
                str[k] = (char)0xff;
                assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
                assert_string_equal(d.path, fields[f]);
                assert_non_null(strstr(d.reason, "not valid UTF-8"));
                if (k + 1 < n) { /* room for a two-byte sequence */
                    str[k] = (char)0xc3;
                    str[k + 1] = (char)0xa9;
                    assert_int_equal(cap_trace_write(w, &r, &d), CAP_OK);
                    ok++;
                }
            }
        }
        for (size_t n = CAP_TRACE_MAX_STRING; n <= CAP_TRACE_MAX_STRING + 1; n++) {
            memset(str, 'b', n);
            str[n] = 0;
            cap_trace_record r = {1, CAP_TRACE_DROP, "s", NULL, NULL, NULL, NULL, NULL, 0};
            const char **slot[5] = {&r.subject, &r.sender, &r.receiver, &r.reply, &r.note};
            *slot[f] = str;
            if (n == CAP_TRACE_MAX_STRING) {
                assert_int_equal(cap_trace_write(w, &r, &d), CAP_OK);
                ok++;
            } else {
                assert_int_equal(cap_trace_write(w, &r, &d), CAP_EINVAL);
                assert_string_equal(d.path, fields[f]);
                assert_non_null(strstr(d.reason, "over the bound"));
            }
        }
    }
    assert_true(cap_trace_writer_count(w) == ok);
    assert_int_equal(cap_trace_writer_close(w, NULL), CAP_OK);
}

/* Opens data as a trace and reads to the end; returns the first error
 * (open or read), 0 when it read cleanly; diag filled. */
static int read_all(const void *data, size_t n, cap_trace_format fmt, size_t max_packet,
                    cap_diag *d, int *nrec)
{
    FILE *f = mem(data, n);
    cap_trace_reader *r = NULL;
    cap_trace_limits lim = {max_packet};
    int rc = cap_trace_reader_open(f, fmt, &lim, &r, d);
    *nrec = 0;
    if (rc == CAP_OK) {
        cap_trace_record rec;
        while ((rc = cap_trace_read(r, &rec, d)) == 1)
            (*nrec)++;
        if (rc < 0) { /* the error sticks */
            cap_diag d2;
            assert_int_equal(cap_trace_read(r, &rec, &d2), rc);
            assert_string_equal(d2.reason, d->reason);
        }
    }
    cap_trace_reader_close(r);
    fclose(f);
    return rc;
}

static void expect_err(const void *data, size_t n, cap_trace_format fmt, int want,
                       const char *path, const char *reason_part)
{
    cap_diag d;
    int nrec;
    int rc = read_all(data, n, fmt, 0, &d, &nrec);
    char buf[600];
    if (rc != want || (path && strcmp(d.path, path) != 0) ||
        (reason_part && !strstr(d.reason, reason_part)))
        fail_msg("want %d %s / %s, got %d: %s", want, path ? path : "-",
                 reason_part ? reason_part : "-", rc, cap_diag_format(&d, buf, sizeof buf));
}

/* A valid one-record binary trace in buf; returns its length. */
static size_t one_record(uint8_t *buf, size_t cap, const cap_trace_record *rec)
{
    FILE *f = tmpfile();
    cap_trace_writer *w = NULL;
    assert_int_equal(cap_trace_writer_open(f, CAP_TRACE_BINARY, &w), CAP_OK);
    assert_int_equal(cap_trace_write(w, rec, NULL), CAP_OK);
    assert_int_equal(cap_trace_writer_close(w, NULL), CAP_OK);
    rewind(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void test_binary_malformed(void **state)
{
    (void)state;
    expect_err("", 0, CAP_TRACE_BINARY, CAP_ETRACE, "header", "truncated header: 0 of 12");
    expect_err("", 0, CAP_TRACE_AUTO, CAP_ETRACE, "header", "truncated header");
    expect_err("CAPT", 4, CAP_TRACE_AUTO, CAP_ETRACE, "header", "truncated header: 4 of 12");
    expect_err("CAPTRACE\x01", 9, CAP_TRACE_BINARY, CAP_ETRACE, "header", "truncated header: 9 of 12");
    expect_err("NOTATRACEFILE", 13, CAP_TRACE_BINARY, CAP_ETRACE, "header", "bad magic");
    expect_err("NOTATRACEFILE", 13, CAP_TRACE_AUTO, CAP_ETRACE, "header", "nor a JSONL");
    expect_err("CAPTRACE\x02\x00\x00\x00", 12, CAP_TRACE_BINARY, CAP_ETRACE, "header",
               "unsupported format version 2");
    /* Header alone: a valid empty trace. */
    cap_diag d;
    int n;
    assert_int_equal(read_all("CAPTRACE\x01\x00\x00\x00", 12, CAP_TRACE_AUTO, 0, &d, &n), 0);
    assert_int_equal(n, 0);

    uint8_t pkt[40];
    memset(pkt, 0x42, sizeof pkt);
    cap_trace_record rec = {5, CAP_TRACE_DELIVER, "a.b", "x", "y", NULL, NULL, pkt, sizeof pkt};
    uint8_t good[512], bad[512];
    size_t len = one_record(good, sizeof good, &rec);
    size_t body = len - 12 - 4;
    assert_int_equal(body, 1 + 8 + 2 + 3 + 2 + 1 + 2 + 1 + 2 + 2 + 4 + 40);
    assert_int_equal(read_all(good, len, CAP_TRACE_BINARY, 0, &d, &n), 0);
    assert_int_equal(n, 1);

    /* Truncated: inside the length field, inside the body. */
    expect_err(good, 14, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", "length field has 2 of 4");
    expect_err(good, len - 1, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", "truncated record");
    /* A second record truncated: named record 1 at its offset. */
    memcpy(bad, good, len);
    memcpy(bad + len, good + 12, 10);
    {
        cap_diag d2;
        int rc = read_all(bad, len + 10, CAP_TRACE_BINARY, 0, &d2, &n);
        assert_int_equal(rc, CAP_ETRACE);
        assert_int_equal(n, 1);
        assert_string_equal(d2.path, "record 1");
        assert_int_equal(d2.offset, (long)len);
    }
    /* Record length out of range. */
    memcpy(bad, good, len);
    bad[12] = 5, bad[13] = bad[14] = bad[15] = 0;
    expect_err(bad, len, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", "record length 5 outside");
    memcpy(bad, good, len);
    bad[15] = 0x7f;
    expect_err(bad, len, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", "outside");
    /* Unknown kind. */
    memcpy(bad, good, len);
    bad[16] = 9;
    expect_err(bad, len, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", "unknown kind 9");
    /* A string length that overruns the record. */
    memcpy(bad, good, len);
    bad[25] = 0xff; /* subject length low byte: 255 */
    expect_err(bad, len, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", "subject: lengths overrun");
    /* A string over the bound (length 0x0500). */
    memcpy(bad, good, len);
    bad[25] = 0x00, bad[26] = 0x05;
    expect_err(bad, len, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", "over the bound of 1024");
    /* Invalid UTF-8 in the sender. */
    memcpy(bad, good, len);
    bad[12 + 4 + 1 + 8 + 2 + 3 + 2] = 0xff;
    expect_err(bad, len, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", "sender: not valid UTF-8");
    /* Packet length disagreeing with the record length. */
    memcpy(bad, good, len);
    bad[len - 40 - 4] = 39;
    expect_err(bad, len, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", "does not match");
    /* Packet over the reader's bound. */
    {
        cap_diag d2;
        assert_int_equal(read_all(good, len, CAP_TRACE_BINARY, 16, &d2, &n), CAP_ETRACE);
        assert_non_null(strstr(d2.reason, "packet: 40 bytes, over the bound of 16"));
    }
    /* Empty subject. */
    memcpy(bad, good, len);
    cap_trace_record rec2 = rec;
    rec2.subject = "abc";
    size_t l2 = one_record(bad, sizeof bad, &rec2);
    bad[25] = 0; /* subject length 0: the 3 bytes now belong to nothing */
    expect_err(bad, l2, CAP_TRACE_BINARY, CAP_ETRACE, "record 0", NULL);
}

static void test_jsonl_malformed(void **state)
{
    (void)state;
    const char *H = "{\"captrace\":1}\n";
    char buf[2048];
#define J(body) (snprintf(buf, sizeof buf, "%s%s", H, body), buf)
    expect_err("{\"captrace\":2}\n", 15, CAP_TRACE_JSONL, CAP_ETRACE, "line 1: $.captrace",
               "unsupported format version");
    expect_err("{\"time\":\"1\"}\n", 13, CAP_TRACE_AUTO, CAP_ETRACE, "line 1: $", "bad header");
    expect_err("", 0, CAP_TRACE_JSONL, CAP_ETRACE, "header", "empty file");
    expect_err("{\"captrace\":1}", 14, CAP_TRACE_JSONL, CAP_ETRACE, "line 1",
               "no newline at the end");
    const char *s;
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\"\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_EJSON, "line 2: $", "not a JSON value");
    s = J("[1,2]\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $", "not a JSON object");
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\"} x\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_EJSON, "line 2: $", "not a JSON value");
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\",\"extra\":1}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.extra", "unknown key");
    s = J("{\"time\":\"1\",\"time\":\"2\",\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.time", "duplicate key");
    s = J("{\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.time", "missing");
    s = J("{\"time\":\"1x\",\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.time", "not an int64");
    s = J("{\"time\":\"99999999999999999999\",\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.time", "not an int64");
    s = J("{\"time\":1.5,\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.time", "not an int64");
    s = J("{\"time\":\"1\",\"kind\":\"sent\",\"subject\":\"a\",\"bytes\":\"\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.kind", "not one of");
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"bytes\":\"\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.subject", "missing");
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"subject\":7,\"bytes\":\"\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.subject", "not a string");
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"a\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $", "neither bytes nor packet");
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"!!\"}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.bytes", "not valid base64");
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"a\",\"packet\":{\"bogus\":1}}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_EJSON, NULL, NULL);
    /* A header key on a record line. */
    s = J("{\"captrace\":1}\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.captrace", "outside the header");
    /* Good lines, then a bad third line: the error names line 3. */
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\"}\n"
          "{\"time\":-3,\"kind\":\"drop\",\"subject\":\"a\",\"bytes\":\"\"}\n");
    cap_diag d;
    int n;
    assert_int_equal(read_all(s, strlen(s), CAP_TRACE_JSONL, 0, &d, &n), 0);
    assert_int_equal(n, 2);
    s = J("{\"time\":\"1\",\"kind\":\"publish\",\"subject\":\"a\",\"bytes\":\"\"}\n\n");
    expect_err(s, strlen(s), CAP_TRACE_JSONL, CAP_EJSON, "line 3: $", NULL);
#undef J
}

static void test_jsonl_packet_forms(void **state)
{
    (void)state;
    /* A hand-written line with the packet's JSON form only: the reader
     * gives its canonical bytes. */
    cap_packet *p = make_hb("worker-1", 1 * SEC, "w1");
    uint8_t *canon = NULL;
    size_t clen = 0;
    assert_int_equal(cap_encode(&p->base, &canon, &clen), CAP_OK);
    cap_packet_free(p);
    const char *text =
        "{\"captrace\":1}\n"
        "{\"time\":\"5\",\"kind\":\"publish\",\"subject\":\"sys.heartbeat\",\"sender\":\"worker-1\","
        "\"packet\":{\"traceId\":\"trace-1\",\"senderId\":\"worker-1\",\"createdAt\":\"1970-01-01T00:00:01Z\","
        "\"protocolVersion\":1,\"heartbeat\":{\"workerId\":\"w1\",\"activeJobs\":3}}}\n";
    FILE *f = mem(text, strlen(text));
    cap_trace_reader *r = NULL;
    cap_diag d;
    assert_int_equal(cap_trace_reader_open(f, CAP_TRACE_AUTO, NULL, &r, &d), CAP_OK);
    assert_int_equal(cap_trace_reader_format(r), CAP_TRACE_JSONL);
    cap_trace_record rec;
    int rc = cap_trace_read(r, &rec, &d);
    char buf[512];
    if (rc != 1)
        fail_msg("%s", cap_diag_format(&d, buf, sizeof buf));
    assert_int_equal(rec.len, clen);
    assert_memory_equal(rec.bytes, canon, clen);
    assert_string_equal(rec.note, "");
    cap_trace_reader_close(r);
    fclose(f);

    /* Packet and bytes that disagree: an error. */
    {
        /* Bytes of another packet (different active_jobs). */
        cap_packet *q = make_hb("worker-1", 1 * SEC, "w1");
        q->heartbeat->active_jobs = 4;
        uint8_t *ob = NULL;
        size_t ol = 0;
        assert_int_equal(cap_encode(&q->base, &ob, &ol), CAP_OK);
        cap_packet_free(q);
        cap_trace_writer *w = NULL;
        FILE *out = tmpfile();
        assert_int_equal(cap_trace_writer_open(out, CAP_TRACE_JSONL, &w), CAP_OK);
        cap_trace_record wr = {5, CAP_TRACE_PUBLISH, "s", NULL, NULL, NULL, NULL, ob, ol};
        assert_int_equal(cap_trace_write(w, &wr, NULL), CAP_OK);
        assert_int_equal(cap_trace_writer_close(w, NULL), CAP_OK);
        rewind(out);
        char line[4096], all[8192] = "";
        while (fgets(line, sizeof line, out)) {
            char *a = strstr(line, "\"activeJobs\":4");
            if (a)
                a[13] = '3'; /* the JSON form now says 3, the bytes 4 */
            strcat(all, line);
        }
        fclose(out);
        free(ob);
        expect_err(all, strlen(all), CAP_TRACE_JSONL, CAP_ETRACE, "line 2: $.packet", "does not match");
    }
    free(canon);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_round_trip),
        cmocka_unit_test(test_jsonl_round_trip),
        cmocka_unit_test(test_hash_stable),
        cmocka_unit_test(test_write_n),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_writer_text_check),
        cmocka_unit_test(test_writer_text_every_position),
        cmocka_unit_test(test_binary_malformed),
        cmocka_unit_test(test_jsonl_malformed),
        cmocka_unit_test(test_jsonl_packet_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
