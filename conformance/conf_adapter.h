/* The adapter process driver (cap-tck 2.1, 2.3): spawns an adapter from an
 * explicit argv (no shell), speaks adapter-v1 with it over its stdin and
 * stdout, and tears it down. Built on a private libuv loop; every call
 * blocks until its answer, its time limit or a fault.
 *
 * Bounds. An inbound line is at most CONF_MSG_MAX_LINE bytes with its
 * newline; a longer one is a fault (reading stops). At most
 * CONF_ADAPTER_MAX_QUEUED unread lines are buffered; more is a fault
 * (flooding). stderr: the first CONF_ADAPTER_STDERR_MAX bytes are kept,
 * the rest is read, counted and dropped, so the child never blocks on it.
 *
 * Faults. A call that fails (time limit, the adapter exited or closed its
 * stdout, a line too long, a malformed line, a message of the wrong type
 * or id, a write error) returns a negative code with a one-line reason
 * and leaves the adapter dead: its process group has been killed.
 * conf_adapter_alive then returns 0 and the only valid calls are
 * conf_adapter_close and the observers. The runner starts a fresh adapter
 * for the next case.
 *
 * The child runs in its own session (setsid), so a kill reaches its
 * children too.
 *
 * Ownership. conf_adapter_start returns an adapter freed by
 * conf_adapter_close; the spec and options are only read during the call.
 * Messages returned through conf_msg are the caller's (conf_msg_free). */
#ifndef CONF_ADAPTER_H
#define CONF_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "conf_msg.h"

#define CONF_ADAPTER_STDERR_MAX ((size_t)64 * 1024)
#define CONF_ADAPTER_MAX_QUEUED 64
#define CONF_ADAPTER_MAX_ARGS 256

/* label=argv0|arg1|... (cap-tck 2.1): the label is the text before the
 * first '=', non-empty; the rest is split on '|' without any other
 * parsing; argv0 must be non-empty. */
typedef struct {
    char *label;
    char **argv; /* argc entries + NULL */
    size_t argc;
} conf_adapter_spec;

/* CAP_OK, or CAP_EINVAL with the reason in err. conf_adapter_spec_free
 * frees what it holds (also after an error). */
int conf_adapter_spec_parse(const char *text, conf_adapter_spec *out, char *err, size_t n);
void conf_adapter_spec_free(conf_adapter_spec *s);

typedef struct {
    uint64_t handshake_timeout_ms; /* 0: 10 s */
    uint64_t grace_ms;             /* after bye, before the kill; 0: 2 s */
    const char *cwd;               /* NULL: the caller's */
} conf_adapter_opts;

typedef struct conf_adapter conf_adapter;

/* Spawns the adapter, writes hello, waits for its handshake (at most
 * min(handshake timeout, limit_ms)) and checks it: type handshake,
 * protocolVersion 1. On success *out is the adapter and *hs its handshake.
 * On failure the child (if any) is killed, *out is NULL and err holds the
 * reason; the code is CAP_EIO (spawn, I/O, time limit, exit) or CAP_EJSON
 * (a bad handshake). */
int conf_adapter_start(const conf_adapter_spec *spec, const conf_adapter_opts *o, uint64_t limit_ms,
                       conf_adapter **out, conf_msg *hs, char *err, size_t n);

/* Sends one run command (id, scenario, params) and waits at most
 * timeout_ms for its result, which must be a `result` with the same id.
 * CAP_OK with *res filled, or a fault (see above) with err filled: CAP_EIO
 * (time limit, exit, write, flood, line too long; a time limit is
 * reported as CAP_EEXPIRED) or CAP_EJSON (the reply broke the protocol). */
int conf_adapter_call(conf_adapter *a, const char *id, const conf_kv *params, size_t n_params,
                      uint64_t timeout_ms, conf_msg *res, char *err, size_t n);

/* 1 while the adapter can take another case. */
int conf_adapter_alive(const conf_adapter *a);

/* stderr kept so far (not NUL-terminated) and the bytes dropped. */
const char *conf_adapter_stderr(const conf_adapter *a, size_t *len, uint64_t *dropped);

/* Writes bye (if alive), waits up to the grace period for the exit, kills
 * the process group if it is still there, closes everything, frees.
 * NULL accepted. */
void conf_adapter_close(conf_adapter *a);

/* Formats milliseconds as Go prints a time.Duration: "1s", "500ms",
 * "1m30s", "2h0m0s", "0s". */
const char *conf_duration_format(uint64_t ms, char *buf, size_t n);

/* Parses a Go-style duration ("30s", "500ms", "1m30s", "1.5s", units ns
 * us ms s m h) into milliseconds (sub-millisecond parts truncate). CAP_OK,
 * or CAP_EINVAL for bad syntax, a zero total or an overflow. */
int conf_duration_parse(const char *s, uint64_t *ms);

#endif
