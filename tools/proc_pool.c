/* Tasks in child processes: see proc_pool.h. */
#define _DEFAULT_SOURCE
#include "proc_pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

long proc_pool_run(const char *cmd, const proc_pool *p, size_t n, long jobs)
{
    pid_t *pid = calloc((size_t)jobs, sizeof *pid); /* 0: a free place */
    size_t *task = calloc((size_t)jobs, sizeof *task);
    if (!pid || !task) {
        free(pid);
        free(task);
        cli_error(cmd, "out of memory");
        return -1;
    }
    int tty = isatty(STDERR_FILENO); /* the progress bar goes to a terminal only */
    size_t next = 0, done = 0;
    long running = 0;
    int stop = 0, broken = 0;
    while ((next < n && !stop) || running > 0) {
        while (running < jobs && next < n && !stop) {
            long at = 0;
            while (pid[at])
                at++;
            if (p->prepare && p->prepare(p->ctx, next) != 0) {
                stop = broken = 1;
                break;
            }
            fflush(NULL); /* nothing buffered is written twice */
            pid_t child = fork();
            if (child < 0) {
                cli_error(cmd, "fork failed: %s", strerror(errno));
                stop = broken = 1;
                break;
            }
            if (child == 0)
                p->run(p->ctx, next); /* does not return */
            pid[at] = child;
            task[at] = next;
            if (p->started)
                p->started(p->ctx, next);
            running++;
            next++;
        }
        if (!running)
            break;
        int status = 0;
        pid_t ended = wait(&status);
        if (ended < 0) {
            if (errno == EINTR)
                continue;
            cli_error(cmd, "wait failed: %s", strerror(errno));
            broken = 1;
            break;
        }
        long at = 0;
        while (at < jobs && pid[at] != ended)
            at++;
        if (at == jobs)
            continue; /* not one of ours */
        pid[at] = 0;
        running--;
        done++;
        if (p->finished(p->ctx, task[at], status) != 0)
            stop = 1;
        if (tty) {
            fprintf(stderr, "\r[%-40.*s] %zu/%zu", (int)(40 * done / n),
                    "########################################", done, n);
            fflush(stderr);
        }
    }
    if (tty)
        fprintf(stderr, "\n");
    free(pid);
    free(task);
    return broken ? -1 : (long)next;
}
