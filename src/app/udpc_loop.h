/*
 * udpc_loop.h - a small poll(2) event loop for the udpchat driver.
 *
 * It owns: a list of file descriptors with read callbacks, one timer whose
 * deadline is asked from the owner before every poll (the sans-IO core's
 * next_deadline), a clock (CLOCK_MONOTONIC or CLOCK_REALTIME, milliseconds),
 * and SIGINT/SIGTERM delivery through a self-pipe so signal handling happens
 * in the loop, never inside a handler. SIGPIPE is ignored.
 */
#ifndef UDPC_LOOP_H
#define UDPC_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct udpc_loop udpc_loop;

/* revents from poll(2): POLLIN, POLLHUP, POLLERR ... */
typedef void (*udpc_loop_fd_cb)(udpc_loop *l, int fd, short revents, void *ctx);
typedef uint64_t (*udpc_loop_deadline_cb)(void *ctx);
typedef void (*udpc_loop_expire_cb)(udpc_loop *l, uint64_t now, void *ctx);
typedef void (*udpc_loop_signal_cb)(udpc_loop *l, int signo, void *ctx);

/* clock_id: CLOCK_MONOTONIC (client) or CLOCK_REALTIME (server: the core
 * stamps stored mail with `now`, UTC ms). */
udpc_loop *udpc_loop_new(clockid_t clock_id, char *err, size_t err_cap);
void udpc_loop_free(udpc_loop *l);

/* Current time in milliseconds on the loop's clock. */
uint64_t udpc_loop_now(const udpc_loop *l);

int udpc_loop_add_fd(udpc_loop *l, int fd, udpc_loop_fd_cb cb, void *ctx,
                     char *err, size_t err_cap);
/* Stop watching fd (e.g. stdin after end of file). */
void udpc_loop_del_fd(udpc_loop *l, int fd);

/* The timer: deadline() returns an absolute time on the loop's clock, or
 * UINT64_MAX for none; expire() is called once it has passed. */
void udpc_loop_set_timer(udpc_loop *l, udpc_loop_deadline_cb deadline,
                         udpc_loop_expire_cb expire, void *ctx);

/* Route SIGINT and SIGTERM, plus the n_extra signals in extra (e.g.
 * SIGTSTP, SIGCONT, SIGWINCH for a terminal), to cb, called from the loop.
 * SIGPIPE is ignored. udpc_loop_free puts the default dispositions back. */
int udpc_loop_catch_signals(udpc_loop *l, const int *extra, size_t n_extra,
                            udpc_loop_signal_cb cb, void *ctx, char *err,
                            size_t err_cap);

/* Ask udpc_loop_run to return after the current iteration. */
void udpc_loop_stop(udpc_loop *l);

/* Run until udpc_loop_stop. Returns 0, or -1 with err on a poll failure. */
int udpc_loop_run(udpc_loop *l, char *err, size_t err_cap);

/* Fill buf with len bytes from getrandom(2). */
int udpc_loop_random(void *buf, size_t len, char *err, size_t err_cap);

#endif /* UDPC_LOOP_H */
