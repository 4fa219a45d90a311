/* Trace files: the packets seen on a bus, in order, each with its time,
 * subject, sender and exact bytes (DESIGN.md §3, docs/trace.md).
 *
 * One content, two encodings:
 *  - binary: the header "CAPTRACE" + u32 LE format version, then records,
 *    each a u32 LE body length and the body (kind, time, five strings,
 *    the packet bytes). Exact bytes; what the hash is computed over.
 *  - JSONL: a header line {"captrace":1}, then one JSON object per record
 *    with the packet in its JSON form (cap_json.h) and its exact bytes in
 *    base64. For review and diff; read back to the same records.
 *
 * The trace hash is SHA-256 over the binary encoding (header included) of
 * the records, whichever encoding is written or read: the same records
 * give the same hash, in a file of either kind or with no file at all.
 *
 * Streaming: the writer writes each record as it comes and keeps only the
 * running hash; the reader holds one record at a time. Memory does not
 * grow with the length of a trace.
 *
 * Ownership: the writer and reader borrow the FILE* (never closed here)
 * and own themselves (freed by their close function). Strings and bytes
 * of a record returned by the reader point into the reader and stay valid
 * until the next read or close. */
#ifndef CAP_TRACE_H
#define CAP_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cap_error.h"

#define CAP_TRACE_MAGIC "CAPTRACE"
#define CAP_TRACE_VERSION 1
/* Header bytes of the binary form: magic (8) + version (4). */
#define CAP_TRACE_HEADER_LEN 12

/* Longest subject, sender, receiver, reply or note (bytes). */
#define CAP_TRACE_MAX_STRING ((size_t)1024)
/* Defaults and hard limits of the reader's bounds. */
#define CAP_TRACE_DEFAULT_MAX_PACKET ((size_t)1 << 20)
#define CAP_TRACE_MAX_PACKET_LIMIT ((size_t)64 << 20)

typedef enum {
    CAP_TRACE_AUTO = 0,   /* reader only: binary if the file starts with the magic */
    CAP_TRACE_BINARY = 1,
    CAP_TRACE_JSONL = 2,
} cap_trace_format;

/* What a record says happened. A bus tap (the harness on a real bus)
 * writes PUBLISH only; the simulator may also write the others. */
typedef enum {
    CAP_TRACE_PUBLISH = 1, /* `sender` published the packet on `subject` */
    CAP_TRACE_DELIVER = 2, /* the bus delivered it to `receiver` */
    CAP_TRACE_DROP = 3,    /* the bus dropped a delivery to `receiver`; `note` says why */
    CAP_TRACE_REJECT = 4,  /* `receiver`'s decoder rejected the bytes; `note` has the error */
} cap_trace_kind;

/* One record. Strings are NUL-terminated UTF-8, at most
 * CAP_TRACE_MAX_STRING bytes; NULL and "" are the same (absent), except
 * `subject`, which is required. `bytes` may hold anything (a corrupted
 * packet is recorded as it was on the wire); len 0 is allowed. */
typedef struct {
    int64_t time; /* ns: virtual in the simulator, Unix epoch on a real bus */
    cap_trace_kind kind;
    const char *subject;
    const char *sender;
    const char *receiver;
    const char *reply;
    const char *note;
    const uint8_t *bytes;
    size_t len;
} cap_trace_record;

/* The kind's name ("publish", "deliver", "drop", "reject") or NULL. */
const char *cap_trace_kind_name(cap_trace_kind k);

/* ---- writer ---- */

typedef struct cap_trace_writer cap_trace_writer;

/* Starts a trace on f (borrowed; NULL: compute the hash only, write
 * nothing) in format BINARY or JSONL, writing the header at once. On
 * success *out owns a writer to pass to cap_trace_writer_close. CAP_EINVAL
 * (bad format), CAP_ENOMEM, CAP_EIO (write failed). */
int cap_trace_writer_open(FILE *f, cap_trace_format fmt, cap_trace_writer **out);

/* Appends one record. CAP_EINVAL (with diag) for a record outside the
 * bounds above (no subject, a string too long or not UTF-8, an unknown
 * kind, over CAP_TRACE_MAX_PACKET_LIMIT bytes): nothing is written then.
 * CAP_EIO when the FILE* fails; the writer then refuses further records. */
int cap_trace_write(cap_trace_writer *w, const cap_trace_record *rec, cap_diag *diag);

/* The strings of a record, in this order: subject, sender, receiver,
 * reply, note. */
#define CAP_TRACE_NSTR 5

/* cap_trace_write for a caller that knows the strings' lengths already:
 * n[i] is strlen of the i-th string (0 for NULL), which saves measuring
 * them again. The same checks, the same bytes. */
int cap_trace_write_n(cap_trace_writer *w, const cap_trace_record *rec,
                      const size_t n[CAP_TRACE_NSTR], cap_diag *diag);

/* Number of records written so far. */
uint64_t cap_trace_writer_count(const cap_trace_writer *w);

/* Flushes f (does not close it), writes the lowercase hex SHA-256 of the
 * binary form and a NUL into hex (if not NULL; 65 bytes), and frees w.
 * Returns CAP_OK, or CAP_EIO when a write or the flush failed at any point
 * (the hash is still that of the records accepted). NULL w is accepted. */
int cap_trace_writer_close(cap_trace_writer *w, char hex[65]);

/* ---- reader ---- */

typedef struct {
    size_t max_packet; /* bytes of one packet (0: CAP_TRACE_DEFAULT_MAX_PACKET) */
} cap_trace_limits;

typedef struct cap_trace_reader cap_trace_reader;

/* Starts reading f (borrowed). fmt AUTO looks at the first bytes. Reads
 * and checks the header: a bad magic, an unsupported version or a bad
 * JSONL header line is CAP_ETRACE with diag; an empty or short file is
 * CAP_ETRACE ("truncated header"). lim may be NULL (defaults). */
int cap_trace_reader_open(FILE *f, cap_trace_format fmt, const cap_trace_limits *lim,
                          cap_trace_reader **out, cap_diag *diag);

/* Reads the next record into *rec: 1 when a record was read, 0 at the
 * clean end of the trace, negative on error with diag naming the record
 * index and byte offset (binary: path "record N", offset of its length
 * field) or the line (JSONL: path "line N: $.key"). Errors: CAP_ETRACE
 * (truncated record, bad lengths, over a bound, bad string, bad kind;
 * JSONL: a field of the wrong type, unknown or duplicate key, bytes and
 * packet disagreeing), CAP_EJSON (a line that is not JSON, or a packet
 * whose JSON form does not fit the schema), CAP_EIO, CAP_ENOMEM. After an
 * error the reader returns the same error again. */
int cap_trace_read(cap_trace_reader *r, cap_trace_record *rec, cap_diag *diag);

/* The format being read (BINARY or JSONL). */
cap_trace_format cap_trace_reader_format(const cap_trace_reader *r);

/* Hex SHA-256 of the binary form of the header and every record read so
 * far (after the last record: the trace's hash). CAP_OK, or CAP_EINVAL for NULL. */
int cap_trace_reader_hash(const cap_trace_reader *r, char hex[65]);

/* Frees r (does not close its FILE*). NULL is accepted. */
void cap_trace_reader_close(cap_trace_reader *r);

#endif
