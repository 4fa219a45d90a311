/* The one module that talks to a NATS server (cap-spec 09's reference
 * transport), and the loopback nats-server child the harness can start.
 *
 * A conf_nats is one connection with any number of subscriptions (plain
 * or in a queue group). Every message delivered on any of them is copied
 * into one bounded in-order inbox, which conf_nats_next pops with a time
 * limit; the caller never sees a NATS client object or a client thread.
 *
 * Bounds. A message body is at most CONF_NATS_MAX_PAYLOAD bytes and a
 * subject or reply at most CONF_NATS_MAX_SUBJECT bytes: larger ones are
 * counted in `dropped` and never queued. At most CONF_NATS_MAX_QUEUED
 * messages wait in the inbox; more are dropped (and counted) too, so a
 * flood costs memory bounded by those limits.
 *
 * Connection loss. Reconnection is off: once the connection closes (the
 * server went away, a ping went unanswered), conf_nats_next and
 * conf_nats_publish return CAP_EIO with "connection lost" and stay dead.
 *
 * Ownership. conf_nats_connect returns a connection freed by
 * conf_nats_close. A conf_nats_msg filled by conf_nats_next owns its
 * strings and bytes until conf_nats_msg_free. */
#ifndef CONF_NATS_H
#define CONF_NATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cap_error.h"
#include "cap_trace.h"

#define CONF_NATS_MAX_PAYLOAD ((size_t)1 << 20)
#define CONF_NATS_MAX_SUBJECT ((size_t)255)
#define CONF_NATS_MAX_QUEUED ((size_t)65536)
#define CONF_NATS_MAX_SUBS 64

typedef struct conf_nats conf_nats;

typedef struct {
    char *subject;
    char *reply;     /* "" when none */
    uint8_t *data;   /* len bytes (NULL when len is 0) */
    size_t len;
    int64_t time;    /* Unix ns when the message reached the inbox */
} conf_nats_msg;

/* Connects to url ("nats://127.0.0.1:4222"), waiting at most timeout_ms
 * (0: 2 s) for the server. `name` is the client name the server shows.
 * CAP_OK with *out; CAP_EIO with the reason in err. */
int conf_nats_connect(const char *url, const char *name, uint64_t timeout_ms, conf_nats **out,
                      char *err, size_t n);

/* Subscribes to subject (NATS wildcards allowed) in queue group `queue`
 * (NULL or "": a plain subscription). CAP_EINVAL (bad subject, too many
 * subscriptions), CAP_EIO (the client refused; reason in err). */
int conf_nats_subscribe(conf_nats *c, const char *subject, const char *queue, char *err, size_t n);

/* Publishes len bytes on subject (reply may be NULL). CAP_EINVAL for a bad
 * subject or an oversize body, CAP_EIO when the connection is gone. */
int conf_nats_publish(conf_nats *c, const char *subject, const char *reply, const void *data,
                      size_t len, char *err, size_t n);

/* Waits until everything published so far reached the server (at most
 * timeout_ms; 0: 2 s). CAP_OK or CAP_EIO. */
int conf_nats_flush(conf_nats *c, uint64_t timeout_ms, char *err, size_t n);

/* Pops the oldest inbox message, waiting at most timeout_ms (0: do not
 * wait). 1 with *m filled, 0 when the time ran out, CAP_EIO when the
 * connection is lost (err says so) and the inbox is empty. */
int conf_nats_next(conf_nats *c, int64_t timeout_ms, conf_nats_msg *m, char *err, size_t n);

/* 1 while the connection is up. */
int conf_nats_alive(const conf_nats *c);

/* Messages dropped for a bound (oversize or inbox full). */
uint64_t conf_nats_dropped(const conf_nats *c);

void conf_nats_msg_free(conf_nats_msg *m);

/* m as a trace PUBLISH record (docs/trace.md): its time, subject, reply
 * and bytes, and as sender the sender_id of the packet the bytes decode
 * to (leniently), "" when they do not decode or it is longer than
 * CAP_TRACE_MAX_STRING. `sender` (CAP_TRACE_MAX_STRING + 1 bytes) holds
 * that sender; *rec points into m and sender, so both must outlive it. */
void conf_nats_trace_record(const conf_nats_msg *m, char *sender, cap_trace_record *rec);

/* Closes the connection (pending publishes are flushed for at most 1 s)
 * and frees everything, the queued messages too. NULL accepted. */
void conf_nats_close(conf_nats *c);

/* Unix time in ns (CLOCK_REALTIME) and a monotonic clock in ns. */
int64_t conf_nats_now(void);
int64_t conf_nats_monotonic(void);

/* ---- a loopback nats-server child ---- */

typedef struct {
    pid_t pid;      /* the server's process (its own process group) */
    int port;
    char url[64];   /* "nats://127.0.0.1:PORT" */
} conf_nats_server;

/* The nats-server binary: $CAPSIM_NATS_SERVER, else /usr/sbin/nats-server,
 * else /usr/bin/nats-server, else "nats-server" on PATH. */
const char *conf_nats_server_binary(void);

/* Starts nats-server on 127.0.0.1 on a free port, and waits (at most
 * timeout_ms; 0: 5 s) until a client can connect. The child dies with
 * the calling process (PR_SET_PDEATHSIG). CAP_OK with *s; CAP_EIO with
 * the reason in err (binary missing, no free port, not ready in time:
 * the child is killed then). */
int conf_nats_server_start(conf_nats_server *s, uint64_t timeout_ms, char *err, size_t n);

/* Kills the server (SIGTERM, then SIGKILL after 1 s) and reaps it. A
 * zeroed or already stopped *s is accepted. */
void conf_nats_server_stop(conf_nats_server *s);

#endif
