/*
 * udpc_cliapp.c - the client driver (see udpc_cliapp.h).
 *
 * Start-up: credential from the state directory, resolve the server, bind
 * the client port, print "udpchat client <nick> bound to <addr>", show the
 * prompt, start registration. Then a poll loop over the socket and stdin,
 * with the core's next deadline as the timer. End of input and the first
 * SIGINT/SIGTERM act as the `exit` command; a second signal exits at once.
 * The process ends when udpc_client_exit_status says so.
 */
#include "udpc_cliapp.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "udpc_client.h"
#include "udpc_log.h"
#include "udpc_loop.h"
#include "udpc_net.h"
#include "udpc_state.h"
#include "udpc_term.h"

#define CLI_BATCH 64
#define CLI_RXBUF 65536
#define CLI_FORCED_EXIT 130
/* Input lines held while the core is not ready (udpc_client_ready): stdin
 * is not read while more than this many bytes wait. */
#define CLI_PENDING_SOFT_MAX (1u << 20)

typedef struct {
  udpc_net_sock sock;
  udpc_client *client;
  udpc_loop *loop;
  udpc_term term;
  int exit_requested;  /* exit sent because of EOF or a signal */
  int forced_status;   /* -1, or the status of a forced exit */
  int lock_fd;         /* flock on the credential file, held while running */
  udpc_notify notify;  /* --notify-cmd */
  udpc_entry nick_buf; /* completion: the nick last returned */
  char *pend;          /* held input lines, each ended by '\n' */
  size_t pend_len, pend_cap, pend_off;
  int stdin_paused; /* stdin left out of the poll set: too much held */
  int stdin_eof;    /* end of input seen; exit once the held lines ran */
  uint8_t rx[CLI_RXBUF];
} cliapp;

static void cli_check_done(cliapp *a) {
  if (a->forced_status >= 0 || udpc_client_exit_status(a->client) >= 0)
    udpc_loop_stop(a->loop);
}

static void cli_send(void *ctx, const udpc_addr *to, const uint8_t *data,
                     size_t len) {
  cliapp *a = ctx;
  char err[256];
  if (udpc_net_sendto(&a->sock, to, data, len, err, sizeof err) != 0)
    udpc_log(UDPC_LOG_DEBUG, "%s", err);
}

static void cli_event(void *ctx, const udpc_event *ev) {
  cliapp *a = ctx;
  udpc_term_event(&a->term, ev);
}

static void cli_request_exit(cliapp *a) {
  if (a->exit_requested) return;
  a->exit_requested = 1;
  (void)udpc_client_command(a->client, udpc_loop_now(a->loop), "exit", 4);
}

/* One input line to the core. */
static void cli_dispatch(cliapp *a, const char *line, size_t len) {
  if (a->forced_status >= 0 || udpc_client_exit_status(a->client) >= 0)
    return; /* done: ignore the rest of a pasted batch */
  udpc_term_input_done(&a->term);
  udpc_term_own(&a->term, line, len);
  if (len == 0) {
    udpc_term_prompt(&a->term);
    return;
  }
  int rc = udpc_client_command(a->client, udpc_loop_now(a->loop), line, len);
  if (rc != UDPC_OK)
    udpc_log(UDPC_LOG_WARN, "command refused by the core: %s",
             udpc_strerror(rc));
  /* `exit` typed by the user counts as the one exit request (so that a
   * Ctrl-C while it waits for the server forces the exit). */
  udpc_cmd cmd;
  if (udpc_cmd_parse(&cmd, line, len, NULL, 0) == UDPC_OK &&
      cmd.type == UDPC_CMD_EXIT)
    a->exit_requested = 1;
  udpc_term_prompt(&a->term);
}

static void cli_on_stdin(udpc_loop *l, int fd, short revents, void *ctx);

/* Backpressure: run held lines while the core is ready; read stdin again
 * once the backlog is small; `exit` at end of input once all ran. */
static void cli_pump(cliapp *a) {
  while (a->pend_off < a->pend_len && udpc_client_ready(a->client) &&
         a->forced_status < 0 && udpc_client_exit_status(a->client) < 0) {
    char *line = a->pend + a->pend_off;
    char *nl = memchr(line, '\n', a->pend_len - a->pend_off);
    size_t len = (size_t)(nl - line);
    a->pend_off += len + 1;
    cli_dispatch(a, line, len);
  }
  if (a->pend_off == a->pend_len) a->pend_off = a->pend_len = 0;
  if (a->stdin_paused && a->pend_len - a->pend_off < CLI_PENDING_SOFT_MAX / 2) {
    char err[256];
    if (udpc_loop_add_fd(a->loop, STDIN_FILENO, cli_on_stdin, a, err,
                         sizeof err) == 0)
      a->stdin_paused = 0;
    else
      udpc_log(UDPC_LOG_WARN, "stdin: %s", err);
  }
  if (a->stdin_eof && a->pend_len == 0 &&
      udpc_client_exit_status(a->client) < 0)
    cli_request_exit(a);
}

/* A line from the terminal or a pipe: run it now if the core is ready and
 * nothing is held, else hold it (in order). */
static void cli_on_line(void *ctx, const char *line, size_t len) {
  cliapp *a = ctx;
  if (a->pend_len == 0 && udpc_client_ready(a->client)) {
    cli_dispatch(a, line, len);
    return;
  }
  if (a->forced_status >= 0 || udpc_client_exit_status(a->client) >= 0) return;
  if (len + 1 > a->pend_cap - a->pend_len) {
    size_t cap = a->pend_cap ? a->pend_cap : 4096;
    while (len + 1 > cap - a->pend_len) cap *= 2;
    char *p = realloc(a->pend, cap);
    if (p == NULL) {
      udpc_term_notice(&a->term, "[Out of memory: input line dropped.]");
      return;
    }
    a->pend = p;
    a->pend_cap = cap;
  }
  memcpy(a->pend + a->pend_len, line, len);
  a->pend[a->pend_len + len] = '\n';
  a->pend_len += len + 1;
  if (!a->stdin_paused && a->pend_len - a->pend_off > CLI_PENDING_SOFT_MAX) {
    udpc_loop_del_fd(a->loop, STDIN_FILENO);
    a->stdin_paused = 1;
  }
}

/* Completion: the nicks of the client's table, in order. */
static const char *cli_nick_at(void *ctx, size_t i) {
  cliapp *a = ctx;
  if (a->client == NULL ||
      udpc_client_table_get(a->client, i, &a->nick_buf) != UDPC_OK)
    return NULL;
  return a->nick_buf.nick.s;
}

static void cli_print(void *ctx, const char *line) {
  cliapp *a = ctx;
  udpc_term_notice(&a->term, line);
}

static void cli_on_stdin(udpc_loop *l, int fd, short revents, void *ctx) {
  cliapp *a = ctx;
  (void)revents;
  int rc = udpc_term_read(&a->term, fd, cli_on_line, a);
  if (rc != 0) {
    if (rc < 0) udpc_log(UDPC_LOG_WARN, "stdin: %s", strerror(errno));
    udpc_loop_del_fd(l, fd);
    a->stdin_eof = 1; /* cli_pump sends `exit` once the held lines ran */
  }
  cli_pump(a);
  cli_check_done(a);
}

static void cli_on_socket(udpc_loop *l, int fd, short revents, void *ctx) {
  cliapp *a = ctx;
  (void)fd;
  (void)revents;
  for (int i = 0; i < CLI_BATCH; i++) {
    udpc_addr from;
    char err[256];
    ssize_t n = udpc_net_recvfrom(&a->sock, a->rx, sizeof a->rx, &from, err,
                                  sizeof err);
    if (n == -2) break;
    if (n == -1) {
      udpc_log(UDPC_LOG_DEBUG, "%s", err);
      continue;
    }
    size_t len = (size_t)n;
    if (len > sizeof a->rx) len = sizeof a->rx;
    (void)udpc_client_recv(a->client, udpc_loop_now(l), &from, a->rx, len);
    if (udpc_client_exit_status(a->client) >= 0) break;
  }
  cli_pump(a);
  cli_check_done(a);
}

static uint64_t cli_deadline(void *ctx) {
  cliapp *a = ctx;
  return udpc_client_next_deadline(a->client);
}

static void cli_expire(udpc_loop *l, uint64_t now, void *ctx) {
  cliapp *a = ctx;
  (void)l;
  udpc_client_handle_expiry(a->client, now);
  cli_pump(a);
  cli_check_done(a);
}

static void cli_on_signal(udpc_loop *l, int signo, void *ctx) {
  cliapp *a = ctx;
  (void)l;
  switch (signo) {
    case SIGTSTP: /* Ctrl-Z: give the terminal back, then really stop */
      udpc_term_suspend(&a->term);
      if (raise(SIGSTOP) != 0)
        udpc_log(UDPC_LOG_WARN, "cannot stop: %s", strerror(errno));
      return;
    case SIGCONT: udpc_term_resume(&a->term); return;
    case SIGWINCH: udpc_term_redraw(&a->term); return;
    default: break;
  }
  udpc_log(UDPC_LOG_INFO, "signal %d", signo);
  if (!a->exit_requested) {
    /* Ctrl-C is `exit`: dereg, then leave. */
    udpc_term_input_done(&a->term);
    cli_request_exit(a);
  } else {
    udpc_term_notice(&a->term, "[Interrupted again: exiting now.]");
    a->forced_status = CLI_FORCED_EXIT;
  }
  cli_check_done(a);
}

int udpc_cliapp_run(const udpc_cliapp_opts *o) {
  static cliapp app; /* large receive buffer: keep it off the stack */
  cliapp *a = &app;
  char err[512];
  char dir[UDPC_STATE_PATH_MAX];
  int status = 1;
  int created = 0;

  memset(a, 0, sizeof *a);
  a->sock.fd = -1;
  a->forced_status = -1;
  a->lock_fd = -1;
  udpc_term_init(&a->term, o->no_color);
  udpc_term_set_timestamps(&a->term, o->timestamps);
  if (udpc_log_open(o->log_level, o->log_file, err, sizeof err) != 0) {
    fprintf(stderr, "udpchat: %s\n", err);
    udpc_term_free(&a->term);
    return 1;
  }

  udpc_client_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.nick = o->nick;
  if (udpc_state_dir(o->state_dir, dir, sizeof dir, err, sizeof err) != 0)
    goto fail;
  if (udpc_state_credential(dir, o->nick.s, cfg.credential, &created, err,
                            sizeof err) != 0)
    goto fail;
  a->lock_fd = udpc_state_lock(dir, o->nick.s, err, sizeof err);
  if (a->lock_fd < 0) goto fail;
  udpc_log(UDPC_LOG_INFO, "%s credential for %s in %s",
           created ? "created" : "loaded", o->nick.s, dir);
  if (o->notify_cmd != NULL) {
    if (udpc_notify_init(&a->notify, o->notify_cmd, err, sizeof err) != 0)
      goto fail;
    a->term.notify = &a->notify;
  }
  if (udpc_net_resolve(o->server_host, o->server_port, &cfg.server, err,
                       sizeof err) != 0)
    goto fail;
  if (udpc_net_bind(&a->sock, o->bind, o->client_port, err, sizeof err) != 0)
    goto fail;
  udpc_addr local;
  if (udpc_net_local(&a->sock, &local, err, sizeof err) != 0) goto fail;
  static const uint8_t zero16[16];
  if (local.family != cfg.server.family &&
      (local.family == 4 || memcmp(local.ip, zero16, 16) != 0)) {
    snprintf(err, sizeof err,
             "cannot reach server '%s' (IPv%d) from a socket bound to an "
             "IPv%d address (--bind)",
             o->server_host, cfg.server.family, local.family);
    goto fail;
  }
  if (udpc_loop_random(cfg.seed, sizeof cfg.seed, err, sizeof err) != 0)
    goto fail;
  a->loop = udpc_loop_new(CLOCK_MONOTONIC, err, sizeof err);
  if (a->loop == NULL) goto fail;
  cfg.io.ctx = a;
  cfg.io.send = cli_send;
  cfg.io.log = udpc_log_io;
  cfg.io.log_limit = o->log_level + 1; /* lines above it are not built */
  cfg.event = cli_event;
  a->client = udpc_client_new(&cfg, udpc_loop_now(a->loop));
  if (a->client == NULL) {
    snprintf(err, sizeof err, "cannot create the client core");
    goto fail;
  }
  if (udpc_loop_add_fd(a->loop, a->sock.fd, cli_on_socket, a, err,
                       sizeof err) != 0)
    goto fail;
  if (udpc_loop_add_fd(a->loop, STDIN_FILENO, cli_on_stdin, a, err,
                       sizeof err) != 0)
    goto fail;
  udpc_loop_set_timer(a->loop, cli_deadline, cli_expire, a);
  /* SIGHUP (terminal closed) is `exit` like Ctrl-C; the others only
   * matter for the line editor. */
  static const int cli_signals[] = {SIGHUP, SIGTSTP, SIGCONT, SIGWINCH};
  if (udpc_loop_catch_signals(a->loop, cli_signals, a->term.interactive ? 4 : 1,
                              cli_on_signal, a, err, sizeof err) != 0)
    goto fail;

  char as[UDPC_NET_ADDRSTR_MAX], ss[UDPC_NET_ADDRSTR_MAX];
  udpc_net_format_addr(&local, as, sizeof as);
  udpc_net_format_addr(&cfg.server, ss, sizeof ss);
  char info[256];
  snprintf(info, sizeof info, "udpchat client %s bound to %s", o->nick.s, as);
  udpc_term_info(&a->term, info);
  char hist[UDPC_STATE_PATH_MAX + 64];
  snprintf(hist, sizeof hist, "%s/%s.history", dir, o->nick.s);
  udpc_edit_config ecfg = {.prompt = ">>> ",
                           .history_path = o->no_history ? NULL : hist,
                           .history_size = 1000,
                           .nick_at = cli_nick_at,
                           .print = cli_print,
                           .ctx = a};
  if (udpc_term_start_editor(&a->term, &ecfg) != 0)
    udpc_log(UDPC_LOG_WARN,
             "terminal: cannot switch to line-editor mode "
             "(%s); using the terminal's own line editing",
             strerror(errno));
  udpc_log(UDPC_LOG_INFO, "client %s bound to %s, server %s", o->nick.s, as,
           ss);
  udpc_term_prompt(&a->term);

  int rc = udpc_client_start(a->client, udpc_loop_now(a->loop));
  if (rc != UDPC_OK) {
    snprintf(err, sizeof err, "cannot start registration: %s",
             udpc_strerror(rc));
    goto fail;
  }
  cli_check_done(a);
  if (udpc_loop_run(a->loop, err, sizeof err) != 0) goto fail;
  status = a->forced_status >= 0 ? a->forced_status
                                 : udpc_client_exit_status(a->client);
  if (status < 0) status = 1;
  goto out;

fail:
  udpc_term_finish(&a->term);
  if (o->log_file != NULL) udpc_log(UDPC_LOG_ERROR, "%s", err);
  fprintf(stderr, "udpchat: %s\n", err);
  status = 1;
out:
  udpc_term_finish(&a->term);
  udpc_client_free(a->client);
  free(a->pend);
  udpc_net_close(&a->sock);
  udpc_loop_free(a->loop);
  udpc_term_free(&a->term);
  udpc_notify_free(&a->notify);
  if (a->lock_fd >= 0 && close(a->lock_fd) != 0)
    udpc_log(UDPC_LOG_WARN, "closing the credential lock: %s", strerror(errno));
  udpc_log_close();
  return status;
}
