/* The adapter process driver, on a private libuv loop. */
#include "conf_adapter.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <uv.h>

#include "cap_error.h"
#include "conf_json.h"

#define DEFAULT_HANDSHAKE_MS 10000
#define DEFAULT_GRACE_MS 2000
#define KILL_WAIT_MS 2000
#define EXIT_AFTER_EOF_MS 500

struct conf_adapter {
    uv_loop_t loop;
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_timer_t timer;
    int loop_ok, proc_init, in_init, out_init, err_init, timer_init;
    int spawned, exited, in_closed;
    int64_t exit_status;
    int term_signal;
    int out_eof, out_error, too_long, flood, write_error, timed_out;
    int dead;
    char *part;
    size_t part_len, part_cap;
    char *lines[CONF_ADAPTER_MAX_QUEUED];
    size_t line_lens[CONF_ADAPTER_MAX_QUEUED];
    size_t q_head, q_len;
    char *errbuf;
    size_t err_len;
    uint64_t err_dropped;
    uint64_t grace_ms;
    char rbuf[65536];
    char ebuf[16384];
};

typedef struct {
    uv_write_t req;
    char *data;
    conf_adapter *a;
    int close_after;
} wreq;

/* ---- spec ---- */

void conf_adapter_spec_free(conf_adapter_spec *s)
{
    if (!s)
        return;
    free(s->label);
    if (s->argv)
        for (size_t i = 0; i < s->argc; i++)
            free(s->argv[i]);
    free(s->argv);
    memset(s, 0, sizeof *s);
}

int conf_adapter_spec_parse(const char *text, conf_adapter_spec *out, char *err, size_t n)
{
    memset(out, 0, sizeof *out);
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        conf_errf(err, n, "adapter spec \"%.200s\": want label=argv0|arg1|..., with a non-empty label", text);
        return CAP_EINVAL;
    }
    const char *rest = eq + 1;
    size_t argc = 1;
    for (const char *p = rest; *p; p++)
        if (*p == '|')
            argc++;
    if (argc > CONF_ADAPTER_MAX_ARGS) {
        conf_errf(err, n, "adapter spec: %zu arguments, over the bound of %d", argc, CONF_ADAPTER_MAX_ARGS);
        return CAP_EINVAL;
    }
    if (*rest == '\0' || *rest == '|') {
        conf_errf(err, n, "adapter spec \"%.200s\": empty argv0", text);
        return CAP_EINVAL;
    }
    out->label = strndup(text, (size_t)(eq - text));
    out->argv = calloc(argc + 1, sizeof *out->argv);
    if (!out->label || !out->argv) {
        conf_adapter_spec_free(out);
        return CAP_ENOMEM;
    }
    const char *p = rest;
    for (size_t i = 0; i < argc; i++) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        out->argv[i] = strndup(p, l);
        if (!out->argv[i]) {
            out->argc = i;
            conf_adapter_spec_free(out);
            return CAP_ENOMEM;
        }
        out->argc = i + 1;
        p = bar ? bar + 1 : p + l;
    }
    return CAP_OK;
}

/* ---- durations ---- */

const char *conf_duration_format(uint64_t ms, char *buf, size_t n)
{
    if (ms == 0) {
        snprintf(buf, n, "0s");
    } else if (ms < 1000) {
        snprintf(buf, n, "%llums", (unsigned long long)ms);
    } else {
        uint64_t h = ms / 3600000, m = (ms / 60000) % 60, s = (ms / 1000) % 60, f = ms % 1000;
        char sec[32];
        if (f) {
            char frac[8];
            snprintf(frac, sizeof frac, "%03llu", (unsigned long long)f);
            size_t l = strlen(frac);
            while (l > 0 && frac[l - 1] == '0')
                frac[--l] = '\0';
            snprintf(sec, sizeof sec, "%llu.%ss", (unsigned long long)s, frac);
        } else {
            snprintf(sec, sizeof sec, "%llus", (unsigned long long)s);
        }
        if (h)
            snprintf(buf, n, "%lluh%llum%s", (unsigned long long)h, (unsigned long long)m, sec);
        else if (m)
            snprintf(buf, n, "%llum%s", (unsigned long long)m, sec);
        else
            snprintf(buf, n, "%s", sec);
    }
    return buf;
}

int conf_duration_parse(const char *s, uint64_t *ms)
{
    if (!s || !*s)
        return CAP_EINVAL;
    /* total in nanoseconds, as long double to keep fractions; bounded. */
    long double total = 0;
    const char *p = s;
    while (*p) {
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return CAP_EINVAL;
        long double v = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p++ - '0');
            if (++digits > 18)
                return CAP_EINVAL;
        }
        if (*p == '.') {
            p++;
            long double scale = 0.1L;
            while (*p >= '0' && *p <= '9') {
                v += (*p++ - '0') * scale;
                scale /= 10;
                digits++;
            }
        }
        if (!digits)
            return CAP_EINVAL;
        long double unit;
        if (strncmp(p, "ns", 2) == 0) unit = 1, p += 2;
        else if (strncmp(p, "us", 2) == 0) unit = 1e3L, p += 2;
        else if (strncmp(p, "\xC2\xB5s", 3) == 0) unit = 1e3L, p += 3;
        else if (strncmp(p, "ms", 2) == 0) unit = 1e6L, p += 2;
        else if (*p == 's') unit = 1e9L, p += 1;
        else if (*p == 'm') unit = 60e9L, p += 1;
        else if (*p == 'h') unit = 3600e9L, p += 1;
        else return CAP_EINVAL;
        total += v * unit;
        if (total > 1e18L)
            return CAP_EINVAL;
    }
    uint64_t r = (uint64_t)(total / 1e6L);
    if (r == 0)
        return CAP_EINVAL;
    *ms = r;
    return CAP_OK;
}

/* ---- libuv plumbing ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conf_adapter *a = h->data;
    if (h == (uv_handle_t *)&a->err)
        *buf = uv_buf_init(a->ebuf, sizeof a->ebuf);
    else
        *buf = uv_buf_init(a->rbuf, sizeof a->rbuf);
}

static int part_append(conf_adapter *a, const char *s, size_t n)
{
    if (a->part_len + n + 1 > CONF_MSG_MAX_LINE) {
        a->too_long = 1;
        return -1;
    }
    if (a->part_len + n > a->part_cap) {
        size_t nc = a->part_cap ? a->part_cap : 4096;
        while (nc < a->part_len + n)
            nc *= 2;
        char *nb = realloc(a->part, nc);
        if (!nb) {
            a->out_error = UV_ENOMEM;
            return -1;
        }
        a->part = nb;
        a->part_cap = nc;
    }
    memcpy(a->part + a->part_len, s, n);
    a->part_len += n;
    return 0;
}

static int push_line(conf_adapter *a)
{
    if (conf_msg_blank(a->part, a->part_len)) {
        a->part_len = 0;
        return 0;
    }
    if (a->q_len == CONF_ADAPTER_MAX_QUEUED) {
        a->flood = 1;
        return -1;
    }
    char *l = malloc(a->part_len + 1);
    if (!l) {
        a->out_error = UV_ENOMEM;
        return -1;
    }
    memcpy(l, a->part, a->part_len);
    l[a->part_len] = '\0';
    size_t slot = (a->q_head + a->q_len) % CONF_ADAPTER_MAX_QUEUED;
    a->lines[slot] = l;
    a->line_lens[slot] = a->part_len;
    a->q_len++;
    a->part_len = 0;
    return 0;
}

static void on_out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conf_adapter *a = s->data;
    if (nread < 0) {
        if (nread == UV_EOF)
            a->out_eof = 1;
        else
            a->out_error = (int)nread;
        uv_read_stop(s);
        return;
    }
    const char *p = buf->base;
    size_t left = (size_t)nread;
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        size_t seg = nl ? (size_t)(nl - p) : left;
        if (part_append(a, p, seg) < 0 || (nl && push_line(a) < 0)) {
            uv_read_stop(s);
            return;
        }
        if (!nl)
            break;
        p = nl + 1;
        left -= seg + 1;
    }
}

static void on_err_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conf_adapter *a = s->data;
    if (nread < 0) {
        uv_read_stop(s);
        return;
    }
    size_t keep = CONF_ADAPTER_STDERR_MAX - a->err_len;
    if (keep > (size_t)nread)
        keep = (size_t)nread;
    if (keep && a->errbuf) {
        memcpy(a->errbuf + a->err_len, buf->base, keep);
        a->err_len += keep;
    }
    a->err_dropped += (uint64_t)nread - keep;
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    conf_adapter *a = p->data;
    a->exited = 1;
    a->exit_status = status;
    a->term_signal = sig;
}

static void on_timer(uv_timer_t *t)
{
    conf_adapter *a = t->data;
    a->timed_out = 1;
}

static void on_write(uv_write_t *r, int status)
{
    wreq *w = (wreq *)r;
    if (status < 0 && status != UV_ECANCELED)
        w->a->write_error = status;
    if (w->close_after && !w->a->in_closed && !uv_is_closing((uv_handle_t *)&w->a->in)) {
        w->a->in_closed = 1;
        uv_close((uv_handle_t *)&w->a->in, NULL);
    }
    free(w->data);
    free(w);
}

static int send_line(conf_adapter *a, char *data, size_t len, int close_after)
{
    if (a->in_closed) {
        free(data);
        return UV_EPIPE;
    }
    wreq *w = calloc(1, sizeof *w);
    if (!w) {
        free(data);
        return UV_ENOMEM;
    }
    w->data = data;
    w->a = a;
    w->close_after = close_after;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&a->in, &b, 1, on_write);
    if (rc < 0) {
        free(data);
        free(w);
    }
    return rc;
}

typedef int (*done_fn)(const conf_adapter *a);

static void wait_for(conf_adapter *a, uint64_t timeout_ms, done_fn done)
{
    a->timed_out = 0;
    if (done(a))
        return;
    uv_timer_start(&a->timer, on_timer, timeout_ms, 0);
    while (!done(a) && !a->timed_out)
        uv_run(&a->loop, UV_RUN_ONCE);
    uv_timer_stop(&a->timer);
}

static int line_ready(const conf_adapter *a)
{
    return a->q_len > 0 || a->too_long || a->flood || a->out_eof || a->out_error || a->write_error;
}

static int has_exited(const conf_adapter *a)
{
    return a->exited || !a->spawned;
}

static void kill_group(conf_adapter *a)
{
    if (!a->spawned || a->exited)
        return;
    if (a->proc.pid > 0)
        kill(-a->proc.pid, SIGKILL);
    uv_process_kill(&a->proc, SIGKILL);
    wait_for(a, KILL_WAIT_MS, has_exited);
}

static void close_one(uv_handle_t *h, int init)
{
    if (init && !uv_is_closing(h))
        uv_close(h, NULL);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void teardown(conf_adapter *a)
{
    if (a->loop_ok) {
        kill_group(a);
        close_one((uv_handle_t *)&a->proc, a->proc_init);
        if (!a->in_closed)
            close_one((uv_handle_t *)&a->in, a->in_init);
        close_one((uv_handle_t *)&a->out, a->out_init);
        close_one((uv_handle_t *)&a->err, a->err_init);
        close_one((uv_handle_t *)&a->timer, a->timer_init);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&a->loop) == UV_EBUSY) {
            uv_walk(&a->loop, walk_close, NULL);
            uv_run(&a->loop, UV_RUN_DEFAULT);
            uv_loop_close(&a->loop);
        }
    }
    for (size_t i = 0; i < a->q_len; i++)
        free(a->lines[(a->q_head + i) % CONF_ADAPTER_MAX_QUEUED]);
    free(a->part);
    free(a->errbuf);
    free(a);
}

/* Marks the adapter dead and kills it (a fault). */
static void die(conf_adapter *a)
{
    a->dead = 1;
    kill_group(a);
}

static const char *exit_text(const conf_adapter *a, char *buf, size_t n)
{
    if (!a->exited)
        snprintf(buf, n, "closed its stdout");
    else if (a->term_signal)
        snprintf(buf, n, "was killed by signal %d", a->term_signal);
    else
        snprintf(buf, n, "exited with status %lld", (long long)a->exit_status);
    return buf;
}

/* The first line of stderr, for a clearer crash reason. */
static void stderr_hint(const conf_adapter *a, char *buf, size_t n)
{
    buf[0] = '\0';
    if (!a->err_len)
        return;
    size_t l = 0;
    while (l < a->err_len && a->errbuf[l] != '\n' && l < 160)
        l++;
    if (l == 0)
        return;
    char line[200];
    size_t k = 0;
    for (size_t i = 0; i < l && k + 1 < sizeof line; i++) {
        unsigned char c = (unsigned char)a->errbuf[i];
        line[k++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    line[k] = '\0';
    snprintf(buf, n, " (stderr: %s)", line);
}

/* Waits for the next line; returns it (caller frees) or NULL with a
 * fault reason. */
static char *next_line(conf_adapter *a, uint64_t timeout_ms, size_t *len, int *code, char *err, size_t n)
{
    wait_for(a, timeout_ms, line_ready);
    if (a->q_len > 0) {
        char *l = a->lines[a->q_head];
        *len = a->line_lens[a->q_head];
        a->q_head = (a->q_head + 1) % CONF_ADAPTER_MAX_QUEUED;
        a->q_len--;
        return l;
    }
    char dur[32], why[64], hint[240];
    *code = CAP_EIO;
    if (a->too_long) {
        conf_errf(err, n, "adapter sent a line longer than %zu bytes", (size_t)CONF_MSG_MAX_LINE);
    } else if (a->flood) {
        conf_errf(err, n, "adapter sent more than %d unsolicited lines", CONF_ADAPTER_MAX_QUEUED);
    } else if (a->write_error) {
        wait_for(a, EXIT_AFTER_EOF_MS, has_exited);
        stderr_hint(a, hint, sizeof hint);
        conf_errf(err, n, "cannot write to the adapter: %s; it %s%s", uv_strerror(a->write_error),
             exit_text(a, why, sizeof why), hint);
    } else if (a->out_eof || a->out_error) {
        wait_for(a, EXIT_AFTER_EOF_MS, has_exited);
        stderr_hint(a, hint, sizeof hint);
        conf_errf(err, n, "adapter %s before replying%s", exit_text(a, why, sizeof why), hint);
    } else {
        *code = CAP_EEXPIRED;
        conf_errf(err, n, "no reply within %s", conf_duration_format(timeout_ms, dur, sizeof dur));
    }
    return NULL;
}

int conf_adapter_start(const conf_adapter_spec *spec, const conf_adapter_opts *o, uint64_t limit_ms,
                       conf_adapter **out, conf_msg *hs, char *err, size_t n)
{
    *out = NULL;
    memset(hs, 0, sizeof *hs);
    conf_adapter *a = calloc(1, sizeof *a);
    if (!a)
        return CAP_ENOMEM;
    a->errbuf = malloc(CONF_ADAPTER_STDERR_MAX);
    if (!a->errbuf) {
        free(a);
        return CAP_ENOMEM;
    }
    a->grace_ms = o && o->grace_ms ? o->grace_ms : DEFAULT_GRACE_MS;
    uint64_t hs_ms = o && o->handshake_timeout_ms ? o->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
    if (limit_ms && limit_ms < hs_ms)
        hs_ms = limit_ms;
    int rc = uv_loop_init(&a->loop);
    if (rc < 0) {
        conf_errf(err, n, "cannot start adapter: %s", uv_strerror(rc));
        teardown(a);
        return CAP_EIO;
    }
    a->loop_ok = 1;
    uv_timer_init(&a->loop, &a->timer);
    a->timer_init = 1;
    a->timer.data = a;
    uv_pipe_init(&a->loop, &a->in, 0);
    uv_pipe_init(&a->loop, &a->out, 0);
    uv_pipe_init(&a->loop, &a->err, 0);
    a->in_init = a->out_init = a->err_init = 1;
    a->in.data = a->out.data = a->err.data = a;

    /* A relative argv0 with a slash is resolved before the chdir. */
    char *argv0 = NULL;
    const char *file = spec->argv[0];
    if (o && o->cwd && file[0] != '/' && strchr(file, '/')) {
        char cwd[4096];
        size_t need = 0;
        if (getcwd(cwd, sizeof cwd))
            need = strlen(cwd) + strlen(file) + 2;
        argv0 = need ? malloc(need) : NULL;
        if (!argv0) {
            conf_errf(err, n, "cannot start adapter: %s: cannot resolve the path: %s", file, strerror(errno));
            teardown(a);
            return CAP_EIO;
        }
        snprintf(argv0, need, "%s/%s", cwd, file);
        file = argv0;
    }
    char **args = calloc(spec->argc + 1, sizeof *args);
    if (!args) {
        free(argv0);
        teardown(a);
        return CAP_ENOMEM;
    }
    for (size_t i = 0; i < spec->argc; i++)
        args[i] = spec->argv[i];
    args[0] = (char *)file;

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&a->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&a->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&a->err;
    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    po.exit_cb = on_exit_cb;
    po.file = file;
    po.args = args;
    po.cwd = o ? o->cwd : NULL;
    po.flags = UV_PROCESS_DETACHED;
    po.stdio_count = 3;
    po.stdio = stdio;
    a->proc.data = a;
    rc = uv_spawn(&a->loop, &a->proc, &po);
    a->proc_init = 1;
    free(args);
    if (rc < 0) {
        conf_errf(err, n, "cannot start adapter: %s: %s", file, uv_strerror(rc));
        free(argv0);
        teardown(a);
        return CAP_EIO;
    }
    free(argv0);
    a->spawned = 1;
    uv_read_start((uv_stream_t *)&a->out, on_alloc, on_out_read);
    uv_read_start((uv_stream_t *)&a->err, on_alloc, on_err_read);

    char *hello = strdup("{\"type\":\"hello\"}\n");
    if (!hello) {
        teardown(a);
        return CAP_ENOMEM;
    }
    rc = send_line(a, hello, strlen(hello), 0);
    if (rc < 0)
        a->write_error = rc;
    size_t len = 0;
    int code = CAP_OK;
    char why[400];
    char *line = next_line(a, hs_ms, &len, &code, why, sizeof why);
    if (!line) {
        conf_errf(err, n, "handshake: %s", why);
        teardown(a);
        return code == CAP_EEXPIRED ? CAP_EIO : code;
    }
    rc = conf_msg_decode(line, len, hs, why, sizeof why);
    free(line);
    if (rc) {
        conf_errf(err, n, "handshake: malformed adapter message: %s", why);
        teardown(a);
        return rc;
    }
    if (hs->type != CONF_MSG_HANDSHAKE) {
        conf_errf(err, n, "expected handshake, got \"%s\"", conf_msg_type_name(hs->type));
        conf_msg_free(hs);
        teardown(a);
        return CAP_EJSON;
    }
    if (hs->protocol_version != 1) {
        conf_errf(err, n, "adapter protocol version %lld, want 1", hs->protocol_version);
        conf_msg_free(hs);
        teardown(a);
        return CAP_EJSON;
    }
    *out = a;
    return CAP_OK;
}

int conf_adapter_call(conf_adapter *a, const char *id, const conf_kv *params, size_t n_params,
                      uint64_t timeout_ms, conf_msg *res, char *err, size_t n)
{
    memset(res, 0, sizeof *res);
    if (a->dead) {
        conf_errf(err, n, "adapter is not running");
        return CAP_EIO;
    }
    conf_msg cmd = {0};
    cmd.type = CONF_MSG_RUN;
    cmd.id = (char *)id;
    cmd.scenario = (char *)id;
    cmd.params = (conf_kv *)params;
    cmd.n_params = n_params;
    char *line = NULL;
    size_t len = 0;
    int rc = conf_msg_encode(&cmd, &line, &len);
    if (rc == CAP_EINVAL) {
        /* Our own command is over the line bound: not the adapter's fault,
         * and the adapter stays alive. */
        conf_errf(err, n, "run command for %s exceeds the %zu-byte line bound", id, (size_t)CONF_MSG_MAX_LINE);
        return CAP_EINVAL;
    }
    if (rc)
        return rc;
    rc = send_line(a, line, len, 0);
    if (rc < 0)
        a->write_error = rc;
    int code = CAP_OK;
    char *reply = next_line(a, timeout_ms, &len, &code, err, n);
    if (!reply) {
        die(a);
        return code;
    }
    char why[400];
    rc = conf_msg_decode(reply, len, res, why, sizeof why);
    free(reply);
    if (rc) {
        conf_errf(err, n, "malformed adapter message: %s", why);
        die(a);
        return rc == CAP_ENOMEM ? rc : CAP_EJSON;
    }
    if (res->type != CONF_MSG_RESULT) {
        conf_errf(err, n, "expected result, got \"%s\"", conf_msg_type_name(res->type));
        conf_msg_free(res);
        die(a);
        return CAP_EJSON;
    }
    if (strcmp(res->id, id) != 0) {
        conf_errf(err, n, "result id \"%.200s\" does not match command id \"%.200s\"", res->id, id);
        conf_msg_free(res);
        die(a);
        return CAP_EJSON;
    }
    return CAP_OK;
}

int conf_adapter_alive(const conf_adapter *a)
{
    return a && !a->dead;
}

const char *conf_adapter_stderr(const conf_adapter *a, size_t *len, uint64_t *dropped)
{
    if (len)
        *len = a->err_len;
    if (dropped)
        *dropped = a->err_dropped;
    return a->errbuf;
}

void conf_adapter_close(conf_adapter *a)
{
    if (!a)
        return;
    if (!a->dead && a->spawned && !a->exited) {
        char *bye = strdup("{\"type\":\"bye\"}\n");
        if (bye && send_line(a, bye, strlen(bye), 1) == 0)
            wait_for(a, a->grace_ms, has_exited);
    }
    teardown(a);
}
