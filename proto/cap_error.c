#include "cap_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *cap_strerror(int err)
{
    switch (err) {
    case CAP_OK: return "ok";
    case CAP_EVERSION: return "protocol version mismatch";
    case CAP_EMALFORMED: return "malformed packet";
    case CAP_EUNKNOWN_PAYLOAD: return "unknown payload";
    case CAP_ESIG_INVALID: return "invalid signature";
    case CAP_ESIG_MISSING: return "missing signature";
    case CAP_ENOMEM: return "out of memory";
    case CAP_EIO: return "input/output error";
    case CAP_EJSON: return "invalid JSON";
    case CAP_EKEY: return "unusable key";
    case CAP_EINVAL: return "invalid argument";
    case CAP_ECRYPTO: return "crypto library failure";
    case CAP_EEXPIRED: return "outside the validity window";
    case CAP_ETRUST: return "not trusted";
    case CAP_EYAML: return "invalid YAML";
    case CAP_EPOLICY: return "invalid policy";
    case CAP_EFULL: return "table full";
    case CAP_ETRACE: return "invalid trace";
    case CAP_ESTALLED: return "virtual time stalled";
    default: return "unknown error";
    }
}

int cap_err_protocol_code(int err)
{
    return (err <= -100 && err >= -104) ? -err : 0;
}

const char *cap_err_protocol_name(int err)
{
    switch (err) {
    case CAP_EVERSION: return "ERROR_CODE_PROTOCOL_VERSION_MISMATCH";
    case CAP_EMALFORMED: return "ERROR_CODE_PROTOCOL_MALFORMED_PACKET";
    case CAP_EUNKNOWN_PAYLOAD: return "ERROR_CODE_PROTOCOL_UNKNOWN_PAYLOAD";
    case CAP_ESIG_INVALID: return "ERROR_CODE_PROTOCOL_SIGNATURE_INVALID";
    case CAP_ESIG_MISSING: return "ERROR_CODE_PROTOCOL_SIGNATURE_MISSING";
    default: return NULL;
    }
}

void cap_diag_clear(cap_diag *d)
{
    if (!d)
        return;
    d->err = CAP_OK;
    d->offset = -1;
    d->path[0] = '\0';
    d->reason[0] = '\0';
}

int cap_diag_set(cap_diag *d, int err, long offset, const char *path,
                 const char *fmt, ...)
{
    if (!d)
        return err;
    d->err = err;
    d->offset = offset;
    snprintf(d->path, sizeof d->path, "%s", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
    return err;
}

const char *cap_diag_format(const cap_diag *d, char *buf, size_t n)
{
    if (n == 0)
        return buf;
    const char *name = cap_err_protocol_name(d->err);
    int len;
    if (name)
        len = snprintf(buf, n, "%s (%d)", name, cap_err_protocol_code(d->err));
    else
        len = snprintf(buf, n, "%s", cap_strerror(d->err));
    size_t used = len < 0 ? 0 : ((size_t)len < n ? (size_t)len : n - 1);
    if (d->path[0] && used < n)
        used += (size_t)snprintf(buf + used, n - used, ": %s", d->path);
    if (used >= n)
        return buf;
    if (d->offset >= 0)
        used += (size_t)snprintf(buf + used, n - used, "%s at offset %ld",
                                 d->path[0] ? "" : ":", d->offset);
    if (used >= n)
        return buf;
    if (d->reason[0])
        snprintf(buf + used, n - used, ": %s", d->reason);
    return buf;
}
