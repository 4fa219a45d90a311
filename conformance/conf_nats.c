/* NATS connection with a bounded inbox, and the loopback nats-server child;
 * see conf_nats.h. */
#include "conf_nats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "cap_decode.h"
#include "conf_json.h"

#define DEFAULT_CONNECT_MS 2000
#define DEFAULT_SERVER_MS 5000

typedef struct qnode {
    struct qnode *next;
    conf_nats_msg m;
} qnode;

struct conf_nats {
    natsConnection *nc;
    natsOptions *opts;
    natsSubscription *subs[CONF_NATS_MAX_SUBS];
    size_t n_subs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qnode *head, *tail;
    size_t queued;
    uint64_t dropped;
    int closed; /* the connection is gone (set by the client's thread) */
    int counted;
};

/* Open connections of the process (the client library is shared). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_open;

int64_t conf_nats_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t conf_nats_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void conf_nats_msg_free(conf_nats_msg *m)
{
    if (!m)
        return;
    free(m->subject);
    free(m->reply);
    free(m->data);
    memset(m, 0, sizeof *m);
}

void conf_nats_trace_record(const conf_nats_msg *m, char *sender, cap_trace_record *rec)
{
    cap_bounds b = cap_bounds_default();
    cap_packet *p = NULL;
    sender[0] = '\0';
    if (cap_packet_decode(m->data, m->len, &b, CAP_DECODE_LENIENT, &p, NULL) == CAP_OK &&
        p->sender_id && strlen(p->sender_id) <= CAP_TRACE_MAX_STRING)
        snprintf(sender, CAP_TRACE_MAX_STRING + 1, "%s", p->sender_id);
    cap_packet_free(p);
    *rec = (cap_trace_record){.time = m->time, .kind = CAP_TRACE_PUBLISH, .subject = m->subject,
                              .sender = sender, .reply = m->reply, .bytes = m->data, .len = m->len};
}

/* Runs on a client thread: copy the message into the inbox, within bounds. */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    conf_nats *c = closure;
    const char *subject = natsMsg_GetSubject(msg);
    const char *reply = natsMsg_GetReply(msg);
    int len = natsMsg_GetDataLength(msg);
    const char *data = natsMsg_GetData(msg);
    size_t sl = subject ? strlen(subject) : 0, rl = reply ? strlen(reply) : 0;
    qnode *q = NULL;
    int ok = subject && sl > 0 && sl <= CONF_NATS_MAX_SUBJECT && rl <= CONF_NATS_MAX_SUBJECT &&
             len >= 0 && (size_t)len <= CONF_NATS_MAX_PAYLOAD;
    if (ok && (q = calloc(1, sizeof *q)) != NULL) {
        q->m.subject = strdup(subject);
        q->m.reply = strdup(reply ? reply : "");
        q->m.len = (size_t)len;
        q->m.data = len > 0 ? malloc((size_t)len) : NULL;
        if (!q->m.subject || !q->m.reply || (len > 0 && !q->m.data)) {
            conf_nats_msg_free(&q->m);
            free(q);
            q = NULL;
        } else if (len > 0) {
            memcpy(q->m.data, data, (size_t)len);
        }
    }
    natsMsg_Destroy(msg);
    pthread_mutex_lock(&c->mu);
    if (!q || c->queued >= CONF_NATS_MAX_QUEUED) {
        c->dropped++;
        if (q) {
            conf_nats_msg_free(&q->m);
            free(q);
        }
    } else {
        q->m.time = conf_nats_now();
        if (c->tail)
            c->tail->next = q;
        else
            c->head = q;
        c->tail = q;
        c->queued++;
        pthread_cond_signal(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    conf_nats *c = closure;
    pthread_mutex_lock(&c->mu);
    c->closed = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_disconnected(natsConnection *nc, void *closure) { on_closed(nc, closure); }

static int cv_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a))
        return -1;
    int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) || pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc ? -1 : 0;
}

int conf_nats_connect(const char *url, const char *name, uint64_t timeout_ms, conf_nats **out,
                      char *err, size_t n)
{
    *out = NULL;
    if (!url || !*url) {
        conf_errf(err, n, "no NATS URL");
        return CAP_EINVAL;
    }
    conf_nats *c = calloc(1, sizeof *c);
    if (!c)
        return CAP_ENOMEM;
    if (pthread_mutex_init(&c->mu, NULL)) {
        free(c);
        return CAP_ENOMEM;
    }
    if (cv_init_mono(&c->cv)) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return CAP_ENOMEM;
    }
    pthread_mutex_lock(&g_mu);
    g_open++;
    c->counted = 1;
    pthread_mutex_unlock(&g_mu);
    natsStatus s = natsOptions_Create(&c->opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(c->opts, url);
    if (s == NATS_OK && name)
        s = natsOptions_SetName(c->opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(c->opts, (int64_t)(timeout_ms ? timeout_ms : DEFAULT_CONNECT_MS));
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(c->opts, false);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(c->opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(c->opts, 2);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(c->opts, on_closed, c);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(c->opts, on_disconnected, c);
    if (s == NATS_OK)
        s = natsConnection_Connect(&c->nc, c->opts);
    if (s != NATS_OK) {
        conf_errf(err, n, "cannot connect to %s: %s", url, natsStatus_GetText(s));
        conf_nats_close(c);
        return CAP_EIO;
    }
    *out = c;
    return CAP_OK;
}

static int subject_ok(const char *s)
{
    size_t l = s ? strlen(s) : 0;
    if (l == 0 || l > CONF_NATS_MAX_SUBJECT)
        return 0;
    for (size_t i = 0; i < l; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

int conf_nats_subscribe(conf_nats *c, const char *subject, const char *queue, char *err, size_t n)
{
    if (!subject_ok(subject) || (queue && *queue && !subject_ok(queue))) {
        conf_errf(err, n, "bad subject or queue group \"%.100s\"", subject ? subject : "");
        return CAP_EINVAL;
    }
    if (c->n_subs >= CONF_NATS_MAX_SUBS) {
        conf_errf(err, n, "more than %d subscriptions", CONF_NATS_MAX_SUBS);
        return CAP_EINVAL;
    }
    natsSubscription *sub = NULL;
    natsStatus s = queue && *queue
                       ? natsConnection_QueueSubscribe(&sub, c->nc, subject, queue, on_msg, c)
                       : natsConnection_Subscribe(&sub, c->nc, subject, on_msg, c);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, (int)CONF_NATS_MAX_QUEUED,
                                              (int)(64 * CONF_NATS_MAX_PAYLOAD));
    if (s != NATS_OK) {
        if (sub)
            natsSubscription_Destroy(sub);
        conf_errf(err, n, "cannot subscribe to %s: %s", subject, natsStatus_GetText(s));
        return CAP_EIO;
    }
    c->subs[c->n_subs++] = sub;
    return CAP_OK;
}

int conf_nats_publish(conf_nats *c, const char *subject, const char *reply, const void *data,
                      size_t len, char *err, size_t n)
{
    if (!subject_ok(subject) || (reply && *reply && !subject_ok(reply))) {
        conf_errf(err, n, "bad subject \"%.100s\"", subject ? subject : "");
        return CAP_EINVAL;
    }
    if (len > CONF_NATS_MAX_PAYLOAD) {
        conf_errf(err, n, "a %zu-byte message is over the bound of %zu", len, CONF_NATS_MAX_PAYLOAD);
        return CAP_EINVAL;
    }
    if (!conf_nats_alive(c)) {
        conf_errf(err, n, "connection lost");
        return CAP_EIO;
    }
    natsStatus s = reply && *reply
                       ? natsConnection_PublishRequest(c->nc, subject, reply, data, (int)len)
                       : natsConnection_Publish(c->nc, subject, data, (int)len);
    if (s != NATS_OK) {
        conf_errf(err, n, "publish on %s failed: %s", subject, natsStatus_GetText(s));
        return CAP_EIO;
    }
    return CAP_OK;
}

int conf_nats_flush(conf_nats *c, uint64_t timeout_ms, char *err, size_t n)
{
    natsStatus s = natsConnection_FlushTimeout(c->nc, (int64_t)(timeout_ms ? timeout_ms : 2000));
    if (s != NATS_OK) {
        conf_errf(err, n, "flush failed: %s", natsStatus_GetText(s));
        return CAP_EIO;
    }
    return CAP_OK;
}

int conf_nats_alive(const conf_nats *c)
{
    conf_nats *m = (conf_nats *)c; /* the lock is not part of the value */
    pthread_mutex_lock(&m->mu);
    int closed = m->closed;
    pthread_mutex_unlock(&m->mu);
    return !closed && natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED;
}

uint64_t conf_nats_dropped(const conf_nats *c)
{
    conf_nats *m = (conf_nats *)c;
    pthread_mutex_lock(&m->mu);
    uint64_t d = m->dropped;
    pthread_mutex_unlock(&m->mu);
    return d;
}

int conf_nats_next(conf_nats *c, int64_t timeout_ms, conf_nats_msg *m, char *err, size_t n)
{
    memset(m, 0, sizeof *m);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms < 0)
        timeout_ms = 0;
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->head && !c->closed) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
            break;
    }
    qnode *q = c->head;
    if (q) {
        c->head = q->next;
        if (!c->head)
            c->tail = NULL;
        c->queued--;
    }
    int closed = c->closed;
    pthread_mutex_unlock(&c->mu);
    if (q) {
        *m = q->m;
        free(q);
        return 1;
    }
    if (closed) {
        conf_errf(err, n, "connection lost");
        return CAP_EIO;
    }
    return 0;
}

void conf_nats_close(conf_nats *c)
{
    if (!c)
        return;
    if (c->nc && natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(c->nc, 1000);
    for (size_t i = 0; i < c->n_subs; i++) {
        natsSubscription_Unsubscribe(c->subs[i]);
        natsSubscription_Destroy(c->subs[i]);
    }
    if (c->nc) {
        natsConnection_Close(c->nc);
        natsConnection_Destroy(c->nc);
    }
    natsOptions_Destroy(c->opts);
    /* The client's threads may still be inside a callback: the last
     * connection of the process waits for them to end. */
    pthread_mutex_lock(&g_mu);
    if (c->counted && --g_open == 0)
        nats_CloseAndWait(2000);
    pthread_mutex_unlock(&g_mu);
    qnode *q = c->head;
    while (q) {
        qnode *nx = q->next;
        conf_nats_msg_free(&q->m);
        free(q);
        q = nx;
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- nats-server child ---- */

const char *conf_nats_server_binary(void)
{
    const char *e = getenv("CAPSIM_NATS_SERVER");
    if (e && *e)
        return e;
    static const char *const cands[] = {"/usr/sbin/nats-server", "/usr/bin/nats-server",
                                        "/usr/local/bin/nats-server"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return "nats-server";
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t al = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* 1 when something on 127.0.0.1:port speaks NATS (sends INFO first). */
static int server_ready(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int ok = 0;
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        char buf[8];
        ssize_t r = recv(fd, buf, 4, 0);
        ok = r == 4 && memcmp(buf, "INFO", 4) == 0;
    }
    close(fd);
    return ok;
}

static int reap(pid_t pid, int64_t wait_ms)
{
    int64_t end = conf_nats_monotonic() + wait_ms * 1000000;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return 1;
        if (conf_nats_monotonic() >= end)
            return 0;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}

void conf_nats_server_stop(conf_nats_server *s)
{
    if (!s || s->pid <= 0)
        return;
    kill(-s->pid, SIGTERM);
    kill(s->pid, SIGTERM);
    if (!reap(s->pid, 1000)) {
        kill(-s->pid, SIGKILL);
        kill(s->pid, SIGKILL);
        reap(s->pid, 2000);
    }
    s->pid = 0;
}

int conf_nats_server_start(conf_nats_server *s, uint64_t timeout_ms, char *err, size_t n)
{
    memset(s, 0, sizeof *s);
    const char *bin = conf_nats_server_binary();
    if (strchr(bin, '/') && access(bin, X_OK) != 0) {
        conf_errf(err, n, "nats-server not found at %s (tools/install-deps.sh installs it)", bin);
        return CAP_EIO;
    }
    for (int tries = 0; tries < 5; tries++) {
        int port = free_port();
        if (port <= 0) {
            conf_errf(err, n, "no free TCP port on 127.0.0.1");
            return CAP_EIO;
        }
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
            conf_errf(err, n, "fork: %s", strerror(errno));
            return CAP_EIO;
        }
        if (pid == 0) {
            setpgid(0, 0);
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(127);
            int dn = open("/dev/null", O_RDWR);
            if (dn >= 0) {
                dup2(dn, 0);
                dup2(dn, 1);
                dup2(dn, 2);
                if (dn > 2)
                    close(dn);
            }
            char *const argv[] = {(char *)bin, "-a", "127.0.0.1", "-p", ps, NULL};
            execvp(bin, argv);
            _exit(127);
        }
        setpgid(pid, pid);
        s->pid = pid;
        s->port = port;
        snprintf(s->url, sizeof s->url, "nats://127.0.0.1:%d", port);
        int64_t end = conf_nats_monotonic() + (int64_t)(timeout_ms ? timeout_ms : DEFAULT_SERVER_MS) * 1000000;
        int exited = 0;
        while (conf_nats_monotonic() < end) {
            if (server_ready(port))
                return CAP_OK;
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                exited = 1;
                s->pid = 0;
                if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
                    conf_errf(err, n, "cannot run %s (tools/install-deps.sh installs nats-server)", bin);
                    return CAP_EIO;
                }
                break; /* the port may have been taken meanwhile: try another */
            }
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
        if (!exited) {
            conf_nats_server_stop(s);
            conf_errf(err, n, "nats-server on port %d not ready within %llu ms", port,
                 (unsigned long long)(timeout_ms ? timeout_ms : DEFAULT_SERVER_MS));
            return CAP_EIO;
        }
    }
    conf_errf(err, n, "nats-server exited at start five times (ports taken?)");
    return CAP_EIO;
}
