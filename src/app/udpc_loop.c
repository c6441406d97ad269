/*
 * udpc_loop.c - poll(2) event loop with a core-driven timer and self-pipe
 * signal delivery (see udpc_loop.h).
 */
#include "udpc_loop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define LOOP_MAX_FDS 8
#define LOOP_MAX_SIGNALS 8
/* Wake at least this often: keeps a CLOCK_REALTIME loop honest across clock
 * steps and bounds the damage of a deadline computed from a stale clock. */
#define LOOP_MAX_WAIT_MS 1000

typedef struct {
  int fd;
  udpc_loop_fd_cb cb;
  void *ctx;
} loop_fd;

struct udpc_loop {
  clockid_t clock_id;
  loop_fd fds[LOOP_MAX_FDS];
  size_t n_fds;
  udpc_loop_deadline_cb deadline;
  udpc_loop_expire_cb expire;
  void *timer_ctx;
  udpc_loop_signal_cb on_signal;
  void *signal_ctx;
  int sig_pipe[2];
  int caught[LOOP_MAX_SIGNALS];
  size_t n_caught;
  int stop;
};

/* The self-pipe's write end, for the async-signal-safe handler. */
static volatile sig_atomic_t loop_sig_fd = -1;

static void loop_sig_handler(int signo) {
  int saved = errno;
  unsigned char b = (unsigned char)signo;
  if (loop_sig_fd >= 0) {
    /* Non-blocking: if the pipe is full a wake-up is already pending. */
    ssize_t n = write((int)loop_sig_fd, &b, 1);
    (void)n;
  }
  errno = saved;
}

udpc_loop *udpc_loop_new(clockid_t clock_id, char *err, size_t err_cap) {
  udpc_loop *l = calloc(1, sizeof *l);
  if (l == NULL) {
    snprintf(err, err_cap, "out of memory");
    return NULL;
  }
  l->clock_id = clock_id;
  l->sig_pipe[0] = l->sig_pipe[1] = -1;
  struct timespec ts;
  if (clock_gettime(clock_id, &ts) != 0) {
    snprintf(err, err_cap, "clock_gettime: %s", strerror(errno));
    free(l);
    return NULL;
  }
  return l;
}

void udpc_loop_free(udpc_loop *l) {
  if (l == NULL) return;
  if (l->sig_pipe[0] >= 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    if (sigemptyset(&sa.sa_mask) == 0) {
      for (size_t i = 0; i < l->n_caught; i++)
        (void)sigaction(l->caught[i], &sa, NULL);
    }
    loop_sig_fd = -1;
    (void)close(l->sig_pipe[0]);
    (void)close(l->sig_pipe[1]);
  }
  free(l);
}

uint64_t udpc_loop_now(const udpc_loop *l) {
  struct timespec ts;
  if (clock_gettime(l->clock_id, &ts) != 0) {
    /* Cannot happen for a clock that worked in udpc_loop_new. */
    abort();
  }
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int udpc_loop_add_fd(udpc_loop *l, int fd, udpc_loop_fd_cb cb, void *ctx,
                     char *err, size_t err_cap) {
  if (l->n_fds >= LOOP_MAX_FDS) {
    snprintf(err, err_cap, "event loop: too many file descriptors");
    return -1;
  }
  l->fds[l->n_fds].fd = fd;
  l->fds[l->n_fds].cb = cb;
  l->fds[l->n_fds].ctx = ctx;
  l->n_fds++;
  return 0;
}

void udpc_loop_del_fd(udpc_loop *l, int fd) {
  for (size_t i = 0; i < l->n_fds; i++) {
    if (l->fds[i].fd == fd) {
      /* Mark dead; compaction happens at the top of the next iteration so
       * that a callback may remove its own fd while the loop iterates. */
      l->fds[i].fd = -1;
    }
  }
}

static void compact_fds(udpc_loop *l) {
  size_t j = 0;
  for (size_t i = 0; i < l->n_fds; i++)
    if (l->fds[i].fd >= 0) l->fds[j++] = l->fds[i];
  l->n_fds = j;
}

void udpc_loop_set_timer(udpc_loop *l, udpc_loop_deadline_cb deadline,
                         udpc_loop_expire_cb expire, void *ctx) {
  l->deadline = deadline;
  l->expire = expire;
  l->timer_ctx = ctx;
}

int udpc_loop_catch_signals(udpc_loop *l, const int *extra, size_t n_extra,
                            udpc_loop_signal_cb cb, void *ctx, char *err,
                            size_t err_cap) {
  if (l->sig_pipe[0] < 0) {
    if (pipe2(l->sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
      snprintf(err, err_cap, "pipe2: %s", strerror(errno));
      return -1;
    }
  }
  l->on_signal = cb;
  l->signal_ctx = ctx;
  loop_sig_fd = l->sig_pipe[1];

  int sigs[LOOP_MAX_SIGNALS];
  size_t n = 0;
  sigs[n++] = SIGINT;
  sigs[n++] = SIGTERM;
  for (size_t i = 0; i < n_extra && n < LOOP_MAX_SIGNALS; i++)
    sigs[n++] = extra[i];

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = loop_sig_handler;
  sa.sa_flags = SA_RESTART;
  if (sigemptyset(&sa.sa_mask) != 0) {
    snprintf(err, err_cap, "sigemptyset: %s", strerror(errno));
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (sigaction(sigs[i], &sa, NULL) != 0) {
      snprintf(err, err_cap, "sigaction(%d): %s", sigs[i], strerror(errno));
      return -1;
    }
    l->caught[l->n_caught++] = sigs[i];
  }
  sa.sa_handler = SIG_IGN;
  sa.sa_flags = 0;
  if (sigaction(SIGPIPE, &sa, NULL) != 0) {
    snprintf(err, err_cap, "sigaction: %s", strerror(errno));
    return -1;
  }
  return 0;
}

void udpc_loop_stop(udpc_loop *l) { l->stop = 1; }

static void drain_signals(udpc_loop *l) {
  unsigned char buf[64];
  for (;;) {
    ssize_t n = read(l->sig_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* EAGAIN: drained */
    for (ssize_t i = 0; i < n; i++)
      if (l->on_signal != NULL) l->on_signal(l, buf[i], l->signal_ctx);
  }
}

int udpc_loop_run(udpc_loop *l, char *err, size_t err_cap) {
  struct pollfd pfd[LOOP_MAX_FDS + 1];
  uint64_t last_expired = UINT64_MAX;

  while (!l->stop) {
    compact_fds(l);
    uint64_t now = udpc_loop_now(l);
    uint64_t dl = l->deadline != NULL ? l->deadline(l->timer_ctx) : UINT64_MAX;
    if (dl <= now && dl != last_expired) {
      last_expired = dl;
      if (l->expire != NULL) l->expire(l, now, l->timer_ctx);
      continue; /* the deadline moved: recompute (and re-check stop) */
    }
    int timeout;
    if (dl == UINT64_MAX) {
      timeout = LOOP_MAX_WAIT_MS;
    } else if (dl <= now) {
      /* The same deadline is still due right after expire(): the owner did
       * not advance it. Do not spin; retry in a millisecond. */
      timeout = 1;
      last_expired = UINT64_MAX;
    } else {
      uint64_t wait = dl - now;
      timeout = wait > LOOP_MAX_WAIT_MS ? LOOP_MAX_WAIT_MS : (int)wait;
    }

    nfds_t n = 0;
    for (size_t i = 0; i < l->n_fds; i++) {
      pfd[n].fd = l->fds[i].fd;
      pfd[n].events = POLLIN;
      pfd[n].revents = 0;
      n++;
    }
    if (l->sig_pipe[0] >= 0) {
      pfd[n].fd = l->sig_pipe[0];
      pfd[n].events = POLLIN;
      pfd[n].revents = 0;
      n++;
    }
    int rc = poll(pfd, n, timeout);
    if (rc < 0) {
      if (errno == EINTR) continue;
      snprintf(err, err_cap, "poll: %s", strerror(errno));
      return -1;
    }
    if (rc == 0) continue;
    size_t n_user = l->n_fds;
    if (l->sig_pipe[0] >= 0 && pfd[n_user].revents != 0) drain_signals(l);
    for (size_t i = 0; i < n_user && !l->stop; i++) {
      if (pfd[i].revents == 0) continue;
      if (l->fds[i].fd != pfd[i].fd) continue; /* removed meanwhile */
      l->fds[i].cb(l, pfd[i].fd, pfd[i].revents, l->fds[i].ctx);
    }
  }
  return 0;
}

int udpc_loop_random(void *buf, size_t len, char *err, size_t err_cap) {
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      snprintf(err, err_cap, "getrandom: %s", strerror(errno));
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}
