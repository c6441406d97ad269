/*
 * udpc_srvapp.c - the server driver (see udpc_srvapp.h).
 *
 * Per readable socket (the hot path): recvmmsg batches of up to
 * UDPC_NET_BATCH datagrams, at most SRV_RX_CAP per wake-up so that timers
 * and commits are not starved; each datagram goes to udpc_server_recv with
 * one `now` per batch. What the core sends (io.send) is copied into a
 * preallocated queue (udpc_net_tx) and leaves with sendmmsg after each
 * receive batch, so the replies that need no commit (HEARTBEAT_ACK,
 * TABLE_PAGE ...) are not held back by later batches. After the wake-up's
 * last batch, udpc_server_flush once (commit, then the held
 * acknowledgements and table deltas), and one more sendmmsg. Nothing on
 * this path allocates or formats a log line at the default (info) level.
 * Timer: udpc_server_next_deadline / handle_expiry, also followed by a
 * flush. `now` is CLOCK_REALTIME in ms (the core stamps stored mail with
 * it).
 *
 * The flush is the group-commit point: every request of one wake-up goes
 * into one store transaction, and its acknowledgements leave only after it
 * committed. A failed commit is logged and the batch's acknowledgements
 * withheld (clients retransmit); when commits keep failing for
 * SRV_STORE_GIVE_UP_MS (and at least SRV_STORE_GIVE_UP_N flushes in a row),
 * the server stops with exit status 1. Mail expiry (--mail-expiry-days, SQLite
 * store only) runs at start and every SRV_EXPIRY_PERIOD_MS, between batches.
 */
#include "udpc_srvapp.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "udpc_log.h"
#include "udpc_loop.h"
#include "udpc_net.h"
#include "udpc_srvstore.h"
#include "udpc_store_sqlite.h"
#include "udpchat.h"

/* Datagrams received per wake-up at most (several recvmmsg batches). */
#define SRV_RX_CAP 256
/* Send queue slots; a full queue is sent at once (sendmmsg). */
#define SRV_TX_SLOTS 256
/* A full socket send buffer: wait this long for room, per flush, then drop
 * the rest of the queue (counted). */
#define SRV_TX_WAIT_MS 10
/* Socket buffers asked for (SO_RCVBUF / SO_SNDBUF). */
#define SRV_SOCKBUF (8 * 1024 * 1024)
#define SRV_STORE_GIVE_UP_MS 60000u
#define SRV_STORE_GIVE_UP_N 20u
#define SRV_EXPIRY_PERIOD_MS 3600000u
#define SRV_DAY_MS 86400000u

typedef struct {
  udpc_net_sock sock;
  udpc_server *server;
  udpc_loop *loop;
  udpc_store *store;
  uint32_t expiry_days;    /* 0: off */
  uint64_t next_expiry;    /* wall clock ms */
  uint64_t fail_since;     /* first failed flush of a failing run, 0: none */
  uint32_t fails_in_a_row; /* failed flushes since the last good one */
  uint64_t commit_failures;
  int fatal;
  udpc_net_rx *rx;
  udpc_net_tx *tx;
  uint64_t rx_calls, rx_datagrams, rx_wakeups, rx_errors;
  int tx_warned; /* the first send loss was logged as a warning */
} srvapp;

/* io.send: copy into the send queue (sent by srv_tx_flush). */
static void srv_send(void *ctx, const udpc_addr *to, const uint8_t *data,
                     size_t len) {
  srvapp *a = ctx;
  char err[256];
  if (udpc_net_tx_add(a->tx, to, data, len, err, sizeof err) != 0)
    udpc_log(UDPC_LOG_DEBUG, "%s", err);
}

static void srv_tx_flush(srvapp *a) {
  if (udpc_net_tx_pending(a->tx) == 0) return;
  char err[256];
  err[0] = '\0';
  if (udpc_net_tx_flush(a->tx, err, sizeof err) == 0) return;
  if (a->tx_warned) {
    udpc_log(UDPC_LOG_DEBUG, "%s", err);
    return;
  }
  a->tx_warned = 1; /* once: under overload this would flood the log */
  udpc_log(UDPC_LOG_WARN,
           "%s (later losses: send_errors / send_dropped in the "
           "statistics, details at debug level)",
           err);
}

/* Commit (group commit), then send what the core released. */
static void srv_flush(srvapp *a, uint64_t now) {
  int rc = udpc_server_flush(a->server, now);
  srv_tx_flush(a);
  if (rc == UDPC_OK) {
    a->fail_since = 0;
    a->fails_in_a_row = 0;
    return;
  }
  a->commit_failures++;
  a->fails_in_a_row++;
  if (a->fail_since == 0) a->fail_since = now ? now : 1;
  udpc_log(UDPC_LOG_WARN,
           "store commit failed (%s): acknowledgements "
           "withheld, clients will retransmit",
           udpc_strerror(rc));
  if (a->fails_in_a_row >= SRV_STORE_GIVE_UP_N &&
      now >= a->fail_since + SRV_STORE_GIVE_UP_MS) {
    udpc_log(UDPC_LOG_ERROR,
             "store commits failing for %llu s (%u in a row): stopping",
             (unsigned long long)((now - a->fail_since) / 1000),
             a->fails_in_a_row);
    a->fatal = 1;
    udpc_loop_stop(a->loop);
  }
}

/* Delete stored mail older than the expiry (between batches). */
static void srv_expire_mail(srvapp *a, uint64_t now) {
  a->next_expiry = now + SRV_EXPIRY_PERIOD_MS;
  uint64_t age = (uint64_t)a->expiry_days * SRV_DAY_MS;
  if (now <= age) return;
  uint64_t n = 0;
  if (udpc_store_sqlite_expire(a->store, now - age, &n) != UDPC_OK)
    udpc_log(UDPC_LOG_WARN, "mail expiry failed (will retry in %u s)",
             SRV_EXPIRY_PERIOD_MS / 1000);
  else if (n > 0)
    udpc_log(UDPC_LOG_INFO,
             "mail expiry: deleted %llu message%s older than "
             "%u day%s",
             (unsigned long long)n, n == 1 ? "" : "s", a->expiry_days,
             a->expiry_days == 1 ? "" : "s");
}

static void srv_on_socket(udpc_loop *l, int fd, short revents, void *ctx) {
  srvapp *a = ctx;
  (void)fd;
  (void)revents;
  int debug = udpc_log_enabled(UDPC_LOG_DEBUG);
  int total = 0;
  uint64_t now = 0;
  a->rx_wakeups++;
  while (total < SRV_RX_CAP) {
    char err[256];
    int n = udpc_net_rx_recv(a->rx, &a->sock, err, sizeof err);
    a->rx_calls++;
    if (n < 0) {
      /* An error surfacing on the socket: it is consumed; go on, but
       * never spin on it. */
      a->rx_errors++;
      udpc_log(UDPC_LOG_DEBUG, "%s", err);
      total += UDPC_NET_BATCH;
      continue;
    }
    if (n == 0) break;
    now = udpc_loop_now(l); /* one clock read per batch */
    for (int i = 0; i < n; i++) {
      const uint8_t *data = NULL;
      size_t len = 0;
      udpc_addr from;
      if (udpc_net_rx_get(a->rx, i, &data, &len, &from) != 0) continue;
      if (debug) {
        char as[UDPC_NET_ADDRSTR_MAX];
        udpc_net_format_addr(&from, as, sizeof as);
        udpc_log(UDPC_LOG_DEBUG, "rx %zu bytes from %s", len, as);
      }
      (void)udpc_server_recv(a->server, now, &from, data, len);
    }
    a->rx_datagrams += (uint64_t)n;
    total += n;
    srv_tx_flush(a);               /* replies that need no commit go out now */
    if (n < UDPC_NET_BATCH) break; /* drained: poll tells of the next */
  }
  if (now != 0) srv_flush(a, now);
}

static uint64_t srv_deadline(void *ctx) {
  srvapp *a = ctx;
  uint64_t d = udpc_server_next_deadline(a->server);
  if (a->expiry_days > 0 && a->next_expiry < d) d = a->next_expiry;
  return d;
}

static void srv_expire(udpc_loop *l, uint64_t now, void *ctx) {
  srvapp *a = ctx;
  (void)l;
  udpc_server_handle_expiry(a->server, now);
  srv_flush(a, now);
  if (a->expiry_days > 0 && now >= a->next_expiry && !a->fatal)
    srv_expire_mail(a, now);
}

static void srv_on_signal(udpc_loop *l, int signo, void *ctx) {
  (void)ctx;
  if (signo == SIGHUP) {
    char err[256];
    if (udpc_log_reopen(err, sizeof err) != 0)
      udpc_log(UDPC_LOG_ERROR, "SIGHUP: %s", err);
    else
      udpc_log(UDPC_LOG_INFO, "SIGHUP: log file reopened");
    return;
  }
  udpc_log(UDPC_LOG_INFO, "%s: shutting down",
           signo == SIGINT ? "SIGINT" : "SIGTERM");
  udpc_loop_stop(l);
}

static void log_stats(const srvapp *a) {
  const udpc_server *s = a->server;
  udpc_server_stats st;
  memset(&st, 0, sizeof st);
  udpc_server_get_stats(s, &st);
  udpc_net_tx_stats tx;
  udpc_net_tx_get_stats(a->tx, &tx);
#define U(x) ((unsigned long long)(x))
  udpc_log(UDPC_LOG_INFO,
           "stats: rx=%llu tx=%llu rx_bytes=%llu tx_bytes=%llu "
           "registered=%llu online=%llu mail_stored=%llu "
           "mail_delivered=%llu probes_sent=%llu send_errors=%llu "
           "send_dropped=%llu",
           U(st.rx), U(st.tx), U(st.rx_bytes), U(st.tx_bytes), U(st.registered),
           U(st.online), U(st.mail_stored), U(st.mail_delivered),
           U(st.probes_sent), U(tx.errors), U(tx.dropped));
  udpc_log(UDPC_LOG_INFO,
           "stats: io wakeups=%llu recvmmsg=%llu rx_datagrams=%llu "
           "rx_errors=%llu sendmmsg=%llu tx_datagrams=%llu tx_waits=%llu "
           "tx_max_batch=%llu",
           U(a->rx_wakeups), U(a->rx_calls), U(a->rx_datagrams),
           U(a->rx_errors), U(tx.calls), U(tx.sent), U(tx.waits),
           U(tx.max_queue));
  udpc_log(UDPC_LOG_INFO,
           "stats: dropped_malformed=%llu dropped_bad_session=%llu "
           "dropped_unexpected=%llu dropped_rate_limited=%llu "
           "dropped_session_rate_limited=%llu dropped_probes_full=%llu "
           "dropped_held_full=%llu refused_server_full=%llu "
           "refused_quota=%llu sources_evicted=%llu log_suppressed=%llu",
           U(st.dropped_malformed), U(st.dropped_bad_session),
           U(st.dropped_unexpected), U(st.dropped_rate_limited),
           U(st.dropped_session_rate_limited), U(st.dropped_probes_full),
           U(st.dropped_held_full), U(st.refused_server_full),
           U(st.refused_quota), U(st.sources_evicted), U(st.log_suppressed));
#undef U
}

int udpc_srvapp_run(const udpc_srvapp_opts *o) {
  static srvapp app;
  srvapp *a = &app;
  char err[512];
  int status = 1;
  udpc_store *store = NULL;

  memset(a, 0, sizeof *a);
  a->sock.fd = -1;
  if (udpc_log_open(o->log_level, o->log_file, err, sizeof err) != 0) {
    fprintf(stderr, "udpchat: %s\n", err);
    return 1;
  }
  a->loop = udpc_loop_new(CLOCK_REALTIME, err, sizeof err);
  if (a->loop == NULL) goto fail;
  if (udpc_net_bind(&a->sock, o->bind, o->port, err, sizeof err) != 0)
    goto fail;
  a->rx = udpc_net_rx_new();
  a->tx = udpc_net_tx_new(&a->sock, SRV_TX_SLOTS, SRV_TX_WAIT_MS);
  if (a->rx == NULL || a->tx == NULL) {
    snprintf(err, sizeof err, "out of memory");
    goto fail;
  }
  int rcvbuf = -1, sndbuf = -1;
  udpc_net_set_buffers(&a->sock, SRV_SOCKBUF, &rcvbuf, &sndbuf);

  udpc_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  if (udpc_loop_random(cfg.seed, sizeof cfg.seed, err, sizeof err) != 0)
    goto fail;
  cfg.operators = o->operators;
  cfg.n_operators = o->n_operators;
  cfg.max_clients = o->max_clients;
  cfg.mail_per_recipient = o->mail_per_recipient;
  cfg.mail_total = o->mail_total;
  cfg.source_rate = o->source_rate;
  cfg.source_burst = o->source_burst;
  cfg.session_rate = o->session_rate;
  cfg.session_burst = o->session_burst;
  int kind = 0;
  char db_path[4200];
  store = udpc_srvstore_open(o->store, o->data_dir, &kind, db_path,
                             sizeof db_path, err, sizeof err);
  if (store == NULL) goto fail;
  a->store = store;
  if (o->mail_expiry_days > 0 && kind != UDPC_SRVSTORE_SQLITE)
    udpc_log(UDPC_LOG_WARN, "--mail-expiry-days needs the sqlite store: "
                            "ignored");
  else
    a->expiry_days = o->mail_expiry_days;
  a->next_expiry = udpc_loop_now(a->loop);
  cfg.store = store;
  cfg.io.ctx = a;
  cfg.io.send = srv_send;
  cfg.io.log = udpc_log_io;
  cfg.io.log_limit = o->log_level + 1; /* lines above it are not built */
  a->server = udpc_server_new(&cfg, udpc_loop_now(a->loop));
  if (a->server == NULL) {
    const char *why = udpc_store_sqlite_last_error(store);
    snprintf(err, sizeof err, "cannot create the server core%s%s",
             why[0] ? ": " : "", why); /* e.g. a malformed stored user */
    goto fail;
  }
  if (udpc_loop_add_fd(a->loop, a->sock.fd, srv_on_socket, a, err,
                       sizeof err) != 0)
    goto fail;
  udpc_loop_set_timer(a->loop, srv_deadline, srv_expire, a);
  static const int srv_signals[] = {SIGHUP};
  if (udpc_loop_catch_signals(a->loop, srv_signals, 1, srv_on_signal, a, err,
                              sizeof err) != 0)
    goto fail;

  udpc_addr local;
  if (udpc_net_local(&a->sock, &local, err, sizeof err) != 0) goto fail;
  char as[UDPC_NET_ADDRSTR_MAX];
  udpc_net_format_addr(&local, as, sizeof as);
  printf("udpchat server listening on %s\n", as);
  if (fflush(stdout) != 0) {
    /* stdout closed: the server still works; the log says where it is */
  }
  udpc_log(UDPC_LOG_INFO,
           "udpchat %s server listening on %s (%zu "
           "operator%s)",
           UDPC_VERSION_STRING, as, o->n_operators,
           o->n_operators == 1 ? "" : "s");
  udpc_log(UDPC_LOG_INFO,
           "socket buffers: receive %d, send %d bytes as the kernel reports "
           "them (asked for %d each)",
           rcvbuf, sndbuf, SRV_SOCKBUF);

  {
    udpc_server_stats st0;
    memset(&st0, 0, sizeof st0);
    udpc_server_get_stats(a->server, &st0);
    uint64_t mails = 0;
    (void)udpc_store_mail_total(store, &mails);
    if (kind == UDPC_SRVSTORE_SQLITE)
      udpc_log(UDPC_LOG_INFO,
               "store: sqlite %s (%llu users, all offline until heard "
               "from; %llu stored messages)",
               db_path, (unsigned long long)st0.registered,
               (unsigned long long)mails);
    else
      udpc_log(UDPC_LOG_INFO, "store: memory (nothing survives a restart)");
  }

  if (udpc_loop_run(a->loop, err, sizeof err) != 0) goto fail;
  srv_tx_flush(a);
  log_stats(a);
  if (a->fatal) {
    snprintf(err, sizeof err, "stopped: the message store keeps failing");
    goto fail;
  }
  status = 0;
  goto out;

fail:
  if (o->log_file != NULL) udpc_log(UDPC_LOG_ERROR, "%s", err);
  fprintf(stderr, "udpchat: %s\n", err);
out:
  udpc_server_free(a->server);
  udpc_store_free(store);
  udpc_net_tx_free(a->tx);
  udpc_net_rx_free(a->rx);
  udpc_net_close(&a->sock);
  udpc_loop_free(a->loop);
  udpc_log(UDPC_LOG_INFO, "server stopped");
  udpc_log_close();
  return status;
}
