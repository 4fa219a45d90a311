/* Tasks run in child processes, a few at a time: the many seeds of
 * capsim sim --seeds and capsim swarm, and the variants of --sweep. */
#ifndef CAP_PROC_POOL_H
#define CAP_PROC_POOL_H

#include <stddef.h>

typedef struct {
    void *ctx;
    /* In the parent, just before task i's process starts (may be NULL):
     * 0, or -1 to start no more tasks (the error printed). */
    int (*prepare)(void *ctx, size_t i);
    /* In task i's process: runs the task and exits; never returns. */
    void (*run)(void *ctx, size_t i);
    /* In the parent, once task i's process has started (may be NULL). */
    void (*started)(void *ctx, size_t i);
    /* In the parent when task i's process has ended, with its wait
     * status, in the order they end: 0 to go on, nonzero to start no more
     * tasks (those running are waited for). */
    int (*finished)(void *ctx, size_t i, int status);
} proc_pool;

/* Runs tasks 0..n-1, at most jobs (>= 1) at once, with a progress bar on
 * standard error when it is a terminal. Returns the number of tasks
 * started, or -1 when a process could not be started or prepare refused
 * (the error printed; every task started was waited for). cmd names the
 * command in messages. */
long proc_pool_run(const char *cmd, const proc_pool *p, size_t n, long jobs);

#endif
