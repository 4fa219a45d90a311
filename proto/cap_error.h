/* Project-wide error codes and one-line diagnostics.
 *
 * Every function that can fail returns CAP_OK (0) or a negative cap_err.
 * Where CAP defines an error code (ERROR_CODE_PROTOCOL_*), the cap_err is its
 * negation, so callers see the protocol's own number: -CAP_EMALFORMED == 101. */
#ifndef CAP_ERROR_H
#define CAP_ERROR_H

#include <stddef.h>

typedef enum {
    CAP_OK = 0,
    /* CAP protocol error codes (cap-spec 13), negated. */
    CAP_EVERSION = -100,         /* ERROR_CODE_PROTOCOL_VERSION_MISMATCH */
    CAP_EMALFORMED = -101,       /* ERROR_CODE_PROTOCOL_MALFORMED_PACKET */
    CAP_EUNKNOWN_PAYLOAD = -102, /* ERROR_CODE_PROTOCOL_UNKNOWN_PAYLOAD */
    CAP_ESIG_INVALID = -103,     /* ERROR_CODE_PROTOCOL_SIGNATURE_INVALID */
    CAP_ESIG_MISSING = -104,     /* ERROR_CODE_PROTOCOL_SIGNATURE_MISSING */
    /* Project errors: outside every range CAP assigns. */
    CAP_ENOMEM = -10001,  /* allocation failed */
    CAP_EIO = -10002,     /* a file or stream could not be read or written */
    CAP_EJSON = -10003,   /* JSON text is invalid or does not fit the schema */
    CAP_EKEY = -10004,    /* a key is unreadable or of the wrong kind */
    CAP_EINVAL = -10005,  /* an argument is out of its documented range */
    CAP_ECRYPTO = -10006, /* the crypto library failed unexpectedly */
    CAP_EEXPIRED = -10007,  /* a signed packet is outside its validity window */
    CAP_ETRUST = -10008,    /* a packet does not match the local trust store */
    CAP_EYAML = -10009,     /* YAML text is invalid or over a bound */
    CAP_EPOLICY = -10010,   /* a policy file does not fit the policy schema */
    CAP_EFULL = -10011,     /* a bounded table is full */
    CAP_ETRACE = -10012,    /* a trace file is malformed (header, record, line) */
    CAP_ESTALLED = -10013,  /* a simulation's virtual clock stopped moving on */
} cap_err;

/* A short fixed description of an error code (never NULL). */
const char *cap_strerror(int err);

/* The CAP ErrorCode number for a protocol error (101 for CAP_EMALFORMED),
 * or 0 for project errors. */
int cap_err_protocol_code(int err);

/* The CAP ErrorCode enum name ("ERROR_CODE_PROTOCOL_MALFORMED_PACKET"),
 * or NULL for project errors. */
const char *cap_err_protocol_name(int err);

/* One failure, with where it happened: a byte offset into the input (or -1)
 * and a field path ("BusPacket.job_request.env" or "$.jobRequest.env"). */
typedef struct {
    int err;
    long offset;
    char path[192];
    char reason[256];
} cap_diag;

/* Resets a diagnostic to "no error". A NULL diag is accepted everywhere. */
void cap_diag_clear(cap_diag *d);

/* Records err with a printf-style reason and returns err, so that callers
 * can write `return cap_diag_set(d, CAP_EMALFORMED, off, path, "...")`. */
int cap_diag_set(cap_diag *d, int err, long offset, const char *path,
                 const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Formats the diagnostic as one line:
 *   "ERROR_CODE_PROTOCOL_MALFORMED_PACKET (101): BusPacket.job_request.env at
 *    offset 57: map has 1001 entries, over the bound of 1000"
 * Returns buf. */
const char *cap_diag_format(const cap_diag *d, char *buf, size_t n);

#endif
