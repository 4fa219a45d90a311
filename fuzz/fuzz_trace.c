/* Fuzz target: bytes -> trace reader (format detected as `capsim
 * check-trace` detects it) and the offline trace checker, with the
 * properties docs/trace.md promises:
 *   - whatever the reader rejects, it says where and why, with a trace
 *     error code, and it keeps returning that error;
 *   - every record it accepts, the writer accepts too (the two share their
 *     bounds), in both encodings;
 *   - written back, binary and JSONL read again to the same records, and
 *     every trace hash agrees: the reader's over the input (when it was
 *     read to its end), the writers', and the readers' of what they wrote;
 *   - the checker judges every record without crashing, and judges each
 *     publish record once; it verifies signatures with a fixed key (which
 *     signed none of the seeds, so the verification of any signature runs
 *     to its end), and requires them for inputs of odd length.
 * A broken property traps, which both libFuzzer and AFL++ report. */
#define _GNU_SOURCE /* fmemopen, open_memstream */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "cap_sign.h"
#include "cap_trace.h"
#include "conf_tracecheck.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

/* Bounds small enough that a run stays fast, large enough for the seeds. */
#define MAX_PACKET ((size_t)1 << 16)

static const cap_trace_limits LIMITS = {.max_packet = MAX_PACKET};

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static void same_record(const cap_trace_record *a, const cap_trace_record *b)
{
    CHECK(a->time == b->time);
    CHECK(a->kind == b->kind);
    CHECK(strcmp(or_empty(a->subject), or_empty(b->subject)) == 0);
    CHECK(strcmp(or_empty(a->sender), or_empty(b->sender)) == 0);
    CHECK(strcmp(or_empty(a->receiver), or_empty(b->receiver)) == 0);
    CHECK(strcmp(or_empty(a->reply), or_empty(b->reply)) == 0);
    CHECK(strcmp(or_empty(a->note), or_empty(b->note)) == 0);
    CHECK(a->len == b->len);
    CHECK(a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
}

static int is_trace_error(int rc)
{
    return rc == CAP_ETRACE || rc == CAP_EJSON || rc == CAP_ENOMEM;
}

/* An in-memory trace being written: its stream and its buffer. */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
    cap_trace_writer *w;
} sink_file;

static void sink_open(sink_file *s, cap_trace_format fmt)
{
    s->buf = NULL;
    s->len = 0;
    s->f = open_memstream(&s->buf, &s->len);
    CHECK(s->f != NULL);
    CHECK(cap_trace_writer_open(s->f, fmt, &s->w) == CAP_OK);
}

/* Closes the writer (its hash into hex) and the stream. */
static void sink_close(sink_file *s, char hex[65])
{
    CHECK(cap_trace_writer_close(s->w, hex) == CAP_OK);
    CHECK(fclose(s->f) == 0);
}

static cap_trace_reader *open_reader(FILE **f, const void *data, size_t size, cap_diag *d)
{
    *f = fmemopen((void *)data, size, "rb");
    CHECK(*f != NULL);
    cap_trace_reader *r = NULL;
    int rc = cap_trace_reader_open(*f, CAP_TRACE_AUTO, &LIMITS, &r, d);
    if (rc != CAP_OK) {
        CHECK(r == NULL);
        CHECK(is_trace_error(rc) || rc == CAP_EIO);
        CHECK(d->reason[0] != '\0');
        fclose(*f);
        return NULL;
    }
    CHECK(r != NULL);
    return r;
}

static void count_violation(void *ctx, const conf_tc_violation *v)
{
    CHECK(v->rule && v->rule[0] && v->what && v->clause);
    ++*(uint64_t *)ctx;
}

/* Reads back a trace written by a writer, record by record beside the
 * input's reader (opened again), and compares the hashes at the end. */
static void read_back(const uint8_t *data, size_t size, const sink_file *s, uint64_t records,
                      const char *written_hex)
{
    cap_diag d;
    FILE *fin, *fout;
    cap_trace_reader *in = open_reader(&fin, data, size, &d);
    CHECK(in != NULL);
    /* A writer's output is never empty: it holds a header at least. */
    cap_trace_reader *out = open_reader(&fout, s->buf, s->len, &d);
    if (!out)
        fprintf(stderr, "written trace does not open: %s: %s\n", d.path, d.reason);
    CHECK(out != NULL);
    cap_trace_record a, b;
    for (uint64_t i = 0; i < records; i++) {
        CHECK(cap_trace_read(in, &a, &d) == 1);
        int rc = cap_trace_read(out, &b, &d);
        if (rc != 1)
            fprintf(stderr, "record %llu written does not read back: %s: %s\n",
                    (unsigned long long)i, d.path, d.reason);
        CHECK(rc == 1);
        same_record(&a, &b);
    }
    CHECK(cap_trace_read(out, &b, &d) == 0);
    char hex[65];
    CHECK(cap_trace_reader_hash(out, hex) == CAP_OK);
    CHECK(strcmp(hex, written_hex) == 0);
    cap_trace_reader_close(out);
    cap_trace_reader_close(in);
    fclose(fout);
    fclose(fin);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0; /* fmemopen needs a buffer; an empty file is a unit test */
    cap_diag d;
    FILE *f;
    cap_trace_reader *r = open_reader(&f, data, size, &d);
    if (!r)
        return 0;

    sink_file bin, jsonl;
    sink_open(&bin, CAP_TRACE_BINARY);
    sink_open(&jsonl, CAP_TRACE_JSONL);
    static cap_key *key;
    if (!key) {
        uint8_t scalar[32] = {[31] = 7};
        CHECK(cap_key_from_scalar(scalar, &key) == CAP_OK);
    }
    const cap_key *const keys[] = {key};
    conf_tc_options o = {.keys = keys, .n_keys = 1, .require_signatures = (int)(size & 1),
                         .bounds = cap_bounds_default()};
    o.bounds.max_packet = MAX_PACKET;
    uint64_t violations = 0;
    conf_tc *tc = NULL;
    CHECK(conf_tc_new(&o, count_violation, &violations, &tc) == CAP_OK);

    uint64_t records = 0, publishes = 0;
    cap_trace_record rec;
    int rc;
    while ((rc = cap_trace_read(r, &rec, &d)) == 1) {
        cap_diag wd;
        rc = cap_trace_write(bin.w, &rec, &wd);
        if (rc != CAP_OK)
            fprintf(stderr, "record %llu read but not written: %s: %s\n",
                    (unsigned long long)records, wd.path, wd.reason);
        CHECK(rc == CAP_OK);
        CHECK(cap_trace_write(jsonl.w, &rec, &wd) == CAP_OK);
        CHECK(conf_tc_feed(tc, &rec) == CAP_OK);
        publishes += rec.kind == CAP_TRACE_PUBLISH;
        records++;
    }
    if (rc != 0) {
        CHECK(is_trace_error(rc) || rc == CAP_EIO);
        CHECK(d.reason[0] != '\0');
        cap_diag again;
        CHECK(cap_trace_read(r, &rec, &again) == rc); /* the error sticks */
    }
    conf_tc_stats st;
    conf_tc_get_stats(tc, &st);
    CHECK(st.records == records && st.packets == publishes && st.violations == violations);
    conf_tc_free(tc);

    char in_hex[65], bin_hex[65], jsonl_hex[65];
    CHECK(cap_trace_reader_hash(r, in_hex) == CAP_OK);
    cap_trace_reader_close(r);
    fclose(f);
    sink_close(&bin, bin_hex);
    sink_close(&jsonl, jsonl_hex);
    /* The hash covers the records accepted, whatever the encodings, and
     * whether or not the input went on with a bad record. */
    CHECK(strcmp(bin_hex, jsonl_hex) == 0);
    CHECK(strcmp(in_hex, bin_hex) == 0);
    read_back(data, size, &bin, records, bin_hex);
    read_back(data, size, &jsonl, records, jsonl_hex);
    free(bin.buf);
    free(jsonl.buf);
    return 0;
}
