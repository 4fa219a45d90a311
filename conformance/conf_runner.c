/* The scenario runner. */
#include "conf_runner.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cap_error.h"

void conf_run_opts_default(conf_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->case_deadline_ms = 30000;
    o->timeout_ms = 300000;
    o->handshake_timeout_ms = 10000;
    o->grace_ms = 2000;
    o->tool_version = CONF_TOOL_VERSION;
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* Removes a directory tree the adapter may have written into (bounded
 * depth; symlinks are unlinked, never followed). */
static void rm_tree(const char *path, int depth)
{
    DIR *d = depth < 16 ? opendir(path) : NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            size_t l = strlen(path) + strlen(e->d_name) + 2;
            char *p = malloc(l);
            if (!p)
                continue;
            snprintf(p, l, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                rm_tree(p, depth + 1);
            else
                unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(path);
}

typedef struct {
    const conf_adapter_spec *spec;
    conf_adapter_opts aopts;
    conf_adapter *ad;
    char role[32];
    char restart_error[600];
    unsigned restarts;
} session;

/* Starts a fresh adapter for the next case; 0 ok, -1 with restart_error. */
static int restart(session *s, uint64_t limit_ms)
{
    conf_msg hs;
    char why[500];
    int rc = conf_adapter_start(s->spec, &s->aopts, limit_ms, &s->ad, &hs, why, sizeof why);
    if (rc) {
        snprintf(s->restart_error, sizeof s->restart_error, "adapter could not be restarted: %s", why);
        return -1;
    }
    s->restarts++;
    if (strcmp(hs.role, s->role) != 0) {
        snprintf(s->restart_error, sizeof s->restart_error,
                 "restarted adapter announced role \"%s\", the first one \"%s\"", hs.role, s->role);
        conf_msg_free(&hs);
        conf_adapter_close(s->ad);
        s->ad = NULL;
        return -1;
    }
    conf_msg_free(&hs);
    return 0;
}

int conf_run(const conf_suite *suite, const char *profile, const conf_adapter_spec *spec,
             const conf_run_opts *opts, conf_report **out, char *err, size_t n)
{
    *out = NULL;
    conf_run_opts o;
    if (opts)
        o = *opts;
    else
        conf_run_opts_default(&o);
    if (!o.tool_version)
        o.tool_version = CONF_TOOL_VERSION;
    uint64_t t0 = now_ms();
    char tmpl[4096] = "";
    session s;
    memset(&s, 0, sizeof s);
    s.spec = spec;
    s.aopts.handshake_timeout_ms = o.handshake_timeout_ms;
    s.aopts.grace_ms = o.grace_ms;
    if (o.temp_cwd) {
        const char *td = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/capsim-tck-run-XXXXXX", td && *td ? td : "/tmp");
        if (!mkdtemp(tmpl)) {
            snprintf(err, n, "cannot create a working directory for the adapter under %s",
                     td && *td ? td : "/tmp");
            return CAP_EIO;
        }
        s.aopts.cwd = tmpl;
    }
    conf_report *r = conf_report_new(spec->label, profile ? profile : "", o.tool_version);
    if (!r) {
        if (tmpl[0])
            rm_tree(tmpl, 0);
        return CAP_ENOMEM;
    }
    conf_msg hs;
    char why[1024];
    int rc = conf_adapter_start(spec, &s.aopts, o.timeout_ms, &s.ad, &hs, why, sizeof why);
    if (rc) {
        snprintf(err, n, "adapter \"%s\": %s", spec->label, why);
        conf_report_free(r);
        if (tmpl[0])
            rm_tree(tmpl, 0);
        return rc;
    }
    snprintf(s.role, sizeof s.role, "%s", hs.role);
    rc = conf_report_set_handshake(r, hs.sdk, hs.role, hs.transport);
    conf_msg_free(&hs);
    char dur[32];
    for (size_t i = 0; rc == CAP_OK && i < suite->n; i++) {
        const conf_scenario *sc = &suite->scenarios[i];
        if (!conf_suite_selects(sc, profile))
            continue;
        if (strcmp(sc->role, s.role) != 0) {
            char d[200];
            snprintf(d, sizeof d, "adapter role \"%s\" does not own scenario role \"%s\"", s.role, sc->role);
            rc = conf_report_add(r, sc->id, sc->profile, sc->role, sc->required, 0, CONF_ST_NA, d, 0, NULL, 0);
            continue;
        }
        uint64_t start = now_ms();
        uint64_t used = start - t0;
        if (used >= o.timeout_ms) {
            snprintf(why, sizeof why, "not run: the global timeout (%s) expired",
                     conf_duration_format(o.timeout_ms, dur, sizeof dur));
            rc = conf_report_add(r, sc->id, sc->profile, sc->role, sc->required, 1, CONF_ST_ERROR, why, 0,
                                 NULL, 0);
            continue;
        }
        uint64_t left = o.timeout_ms - used;
        if (!s.ad && !s.restart_error[0])
            restart(&s, left);
        if (!s.ad) {
            rc = conf_report_add(r, sc->id, sc->profile, sc->role, sc->required, 1, CONF_ST_ERROR,
                                 s.restart_error, 0, NULL, 0);
            continue;
        }
        uint64_t limit = o.case_deadline_ms < left ? o.case_deadline_ms : left;
        int global = limit < o.case_deadline_ms;
        conf_msg res;
        char cerr[600];
        int crc = conf_adapter_call(s.ad, sc->id, sc->params, sc->n_params, limit, &res, cerr, sizeof cerr);
        int64_t ms = o.deterministic ? 0 : (int64_t)(now_ms() - start);
        if (crc == CAP_OK) {
            rc = conf_report_add(r, sc->id, sc->profile, sc->role, sc->required, 1, res.status, res.detail, ms,
                                 res.evidence, res.n_evidence);
            conf_msg_free(&res);
            continue;
        }
        if (crc == CAP_ENOMEM) {
            rc = crc;
            break;
        }
        if (crc == CAP_EEXPIRED && global)
            snprintf(why, sizeof why, "adapter fault: the global timeout (%s) expired during this case",
                     conf_duration_format(o.timeout_ms, dur, sizeof dur));
        else if (crc == CAP_EEXPIRED)
            snprintf(why, sizeof why, "adapter fault: no result within the %s case deadline; adapter killed",
                     conf_duration_format(limit, dur, sizeof dur));
        else if (crc == CAP_EINVAL)
            snprintf(why, sizeof why, "harness: %.700s", cerr);
        else
            snprintf(why, sizeof why, "adapter fault: %.700s; adapter killed", cerr);
        if (!conf_adapter_alive(s.ad)) {
            conf_adapter_close(s.ad);
            s.ad = NULL;
            size_t l = strlen(why);
            snprintf(why + l, sizeof why - l, ", restarted for the next case");
        }
        rc = conf_report_add(r, sc->id, sc->profile, sc->role, sc->required, 1, CONF_ST_ERROR, why, ms, NULL, 0);
    }
    conf_adapter_close(s.ad);
    if (tmpl[0])
        rm_tree(tmpl, 0);
    if (rc) {
        conf_report_free(r);
        snprintf(err, n, "out of memory");
        return rc;
    }
    *out = r;
    return CAP_OK;
}
