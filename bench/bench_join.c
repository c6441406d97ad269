/*
 * bench_join.c - join storm and memory per client of a REAL udpchat server,
 * driven over loopback by many raw protocol clients from one process
 * (issue 8).
 *
 *   bench_join join   --server PATH --n N [--timeout S] [--store KIND]
 *                     [--window W] [--json FILE]
 *   bench_join memory --server PATH --n N [--timeout S] [--store KIND]
 *                     [--window W] [--json FILE]
 *   bench_join blast  [--seconds S] [--warmup W] [--json FILE]
 *
 * Each run starts `PATH -s 0 --bind 127.0.0.1 --data-dir <fresh temp dir>
 * [--store KIND]` (the temp dir in --tmp DIR, else $TMPDIR, else /tmp), reads
 * the port from its "listening on" line, and stops it with SIGTERM at the
 * end (the temp dir is removed).
 *
 * Clients. All N clients share ONE UDP socket bound to 0.0.0.0:P; client i
 * has its own source address 127.1.0.1 + i (the whole 127/8 is local on
 * Linux), chosen per datagram with an IP_PKTINFO cmsg (ipi_spec_dst); on
 * receive the destination address from IP_PKTINFO names the client. So the
 * server sees N distinct addresses (its per-source limits apply to each).
 * recvmmsg/sendmmsg batches, a 256 MiB receive buffer (SO_RCVBUFFORCE).
 *
 * join: every client registers (REGISTER without cookie, COOKIE, REGISTER
 * with it; a random credential; nick b00042), then keeps its table in sync
 * like the real client (PROTOCOL.md P6 as amended for table sync v1): the
 * snapshot walk that survives changes (v0/chain/pmax/expect, completion when
 * the pages reached the end and chain >= pmax, restart when chain does not
 * reach pmax within 500 ms), TABLE_DELTA applied iff base <= v < new,
 * snapshots on gaps and on HEARTBEAT_ACK versions above its own. Requests
 * are retransmitted every 500 ms, 5 sends at most (P4.3); heartbeats every
 * 10 s. A REGISTER without an answer after 5 sends is begun again (a user
 * restarting the client; at most 5 times, counted); a TABLE_REQ without one
 * abandons the walk (the next delta or HEARTBEAT_ACK starts a new one).
 * --window W: at most W clients registering at once (0: all at t = 0);
 * --progress 1: one line per second on stderr (where the time goes). Tables are not stored as entries: per client two bitmap rows (the
 * table and the walk's buffer) of which bench nicks it knows and which are
 * ONLINE. Every entry's nick and address are checked against the client
 * they name. A client has converged when its last walk completed and its
 * table is at the server's final version (1 + N) with all N nicks online.
 * The walk keeps no per-entry stamp: in a join storm every entry changes
 * exactly once (absent -> ONLINE), so a page can never hold an older state
 * of an entry than the buffer; an entry seen OFFLINE is counted as an error.
 *
 * memory: every client registers and then DEREGs (at most --window clients
 * busy at once, default 256), so the server ends with N registered, offline
 * entries and few sessions ever online. VmRSS and RssAnon of the server
 * (/proc/PID/status) before and after give bytes per registered client. The
 * join run reports the same for N online clients.
 *
 * blast: no server; the raw UDP baseline for table traffic (1200-byte
 * datagrams from one process to another over loopback, batched both ways):
 * see "blast" below.
 *
 * Exit status: 0 when the run completed (join: all converged; memory: all
 * registered and deregistered) with no decode or content error, 1 otherwise,
 * 2 on usage or setup errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "udpchat.h"

/* ---- limits ------------------------------------------------------------ */
#define JOIN_N_MAX 20000u    /* bitmaps: 4 * N^2 bits (200 MB at 20,000) */
#define MEMORY_N_MAX 200000u /* 127.1.0.1 + N stays inside 127/8 */
#define RX_BATCH 256
#define RX_BUF 2048
#define TX_BATCH 512
#define TX_BUF 128       /* our requests are at most 104 bytes */
#define COOKIE_ROUNDS 4  /* UDPC_CLIENT_COOKIE_ROUNDS */
#define REG_ATTEMPTS 5   /* registrations begun per client at most */
#define WALK_WAIT_MS 500 /* chain must reach pmax within this */
#define RCVBUF (256 * 1024 * 1024)
#define SERVER_START_MS 10000

enum { REQ_NONE, REQ_REG, REQ_TABLE, REQ_DEREG };
enum { PH_IDLE, PH_REG, PH_ONLINE, PH_DONE, PH_FAILED };

typedef struct {
  uint64_t token;
  uint64_t req_at;  /* ms of the last send of the request in flight */
  uint64_t next_hb; /* ms of the next HEARTBEAT */
  uint64_t version; /* table version, 0: none */
  uint64_t v0, chain, pmax, seen_max;
  uint64_t pages_done_at;
  uint32_t req_id, next_id, hb_id;
  uint32_t expect; /* walk: next start */
  uint32_t tab_known, tab_online, buf_known, buf_online;
  uint8_t req, sends, cookie_rounds, phase, reg_attempts;
  uint8_t walking, v0_known, pages_done, have_table, want_snap, converged;
  uint8_t tab_row; /* 0/1: which of the client's two rows is the table */
  uint8_t registered;
  uint8_t in_window; /* counted in bench.busy */
  uint8_t cookie_len;
  uint8_t cookie[UDPC_COOKIE_MAX];
  uint8_t cred[UDPC_CRED_LEN];
} bclient;

typedef struct {
  uint64_t rx_dgrams, rx_bytes, tx_dgrams, tx_bytes;
  uint64_t table_dgrams, table_bytes, page_dgrams, delta_dgrams;
  uint64_t rx_type[256];
  uint64_t decode_errors, foreign_dst, foreign_src, truncated;
  uint64_t stale, retransmits, walk_restarts, walks_done, walks_abandoned;
  uint64_t extra_walks, reg_failed, reg_refused, errors_rx, kicked;
  uint64_t bad_session, session_ended, rate_limited_err;
  uint64_t foreign_entries, addr_mismatch, offline_entries, removed_entries;
  uint64_t version_overshoot, heartbeats, send_errors;
  uint64_t reg_restarts; /* registrations begun again after 5 sends */
  uint64_t bench_drops;  /* SO_RXQ_OVFL: our socket's queue overflowed */
} bstats;

typedef struct {
  int mode; /* 'j' join, 'm' memory */
  const char *server_path, *store, *json_path;
  const char *extra[8]; /* --server-arg, passed on to the server */
  int n_extra;
  int progress;    /* --progress 1: a line per second on stderr */
  const char *tmp; /* --tmp DIR: where the data dir goes ($TMPDIR, /tmp) */
  uint32_t n, window;
  double timeout_s;

  pid_t pid;
  int out_fd; /* the server's stdout (kept open) */
  char dir[256];
  char logp[sizeof(char[256]) + 16]; /* dir/server.log */
  struct sockaddr_in srv;
  int fd;
  uint16_t my_port;

  bclient *c;
  uint64_t *known, *online; /* rows: (2 * client + slot) * words */
  size_t words;
  uint64_t final_version;

  uint32_t next_start, busy, n_registered, n_converged, n_done, n_failed;
  uint64_t t0_ns, last_reg_ns, last_conv_ns, last_done_ns;
  bstats st;

  /* send queue */
  uint32_t txn;
  uint32_t tx_client[TX_BATCH];
  uint16_t tx_len[TX_BATCH];
  uint8_t tx_buf[TX_BATCH][TX_BUF];

  udpc_packet pkt; /* decode target (large) */
  uint64_t rng;
} bench;

static volatile sig_atomic_t g_stop;
static void on_sigint(int s) {
  (void)s;
  g_stop = 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static uint64_t now_ms(void) { return now_ns() / 1000000u; }

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint32_t client_ip(uint32_t i) { return 0x7f010001u + i; }

static void nick_of(uint32_t i, udpc_nick *out) {
  memset(out, 0, sizeof *out);
  int n = snprintf(out->s, sizeof out->s, "b%05u", i);
  out->len = (uint8_t)n;
}

/* Index of a bench nick "b%05u" below n, or -1. */
static long nick_index(const udpc_nick *nk, uint32_t n) {
  if (nk->len < 6 || nk->len > 7 || nk->s[0] != 'b') return -1;
  uint32_t v = 0;
  for (uint8_t k = 1; k < nk->len; k++) {
    char ch = nk->s[k];
    if (ch < '0' || ch > '9') return -1;
    v = v * 10 + (uint32_t)(ch - '0');
  }
  if (v >= n) return -1;
  if (nk->len == 7 && v < 100000) return -1; /* not the canonical form */
  return (long)v;
}

/* ---- server process ---------------------------------------------------- */
static int rm_entry(const char *p, const struct stat *sb, int flag,
                    struct FTW *f) {
  (void)sb;
  (void)flag;
  (void)f;
  return remove(p);
}

static int server_start(bench *b) {
  const char *tmp = b->tmp != NULL ? b->tmp : getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == 0) tmp = "/tmp";
  if (strlen(tmp) > sizeof b->dir - 24) {
    fprintf(stderr, "bench_join: temp dir path too long\n");
    return -1;
  }
  snprintf(b->dir, sizeof b->dir, "%s/bench_join.XXXXXX", tmp);
  if (mkdtemp(b->dir) == NULL) {
    fprintf(stderr, "bench_join: mkdtemp: %s\n", strerror(errno));
    return -1;
  }
  char data[sizeof b->dir + 16];
  const char *logp = b->logp;
  snprintf(data, sizeof data, "%s/data", b->dir);
  snprintf(b->logp, sizeof b->logp, "%s/server.log", b->dir);
  int pfd[2];
  if (pipe(pfd) != 0) return -1;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    dup2(pfd[1], 1);
    int lf = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (lf >= 0) dup2(lf, 2);
    close(pfd[0]);
    close(pfd[1]);
    const char *argv[24];
    int a = 0;
    argv[a++] = b->server_path;
    argv[a++] = "-s";
    argv[a++] = "0";
    argv[a++] = "--bind";
    argv[a++] = "127.0.0.1";
    argv[a++] = "--data-dir";
    argv[a++] = data;
    if (b->store != NULL) {
      argv[a++] = "--store";
      argv[a++] = b->store;
    }
    for (int k = 0; k < b->n_extra; k++) argv[a++] = b->extra[k];
    argv[a] = NULL;
    execv(b->server_path, (char *const *)argv);
    _exit(127);
  }
  close(pfd[1]);
  b->pid = pid;
  b->out_fd = pfd[0];
  /* Read stdout up to "listening on ...:PORT\n". */
  char line[512];
  size_t got = 0;
  uint64_t dl = now_ms() + SERVER_START_MS;
  for (;;) {
    char *nl = memchr(line, '\n', got);
    if (nl != NULL) {
      *nl = 0;
      const char *k = strstr(line, "listening on ");
      const char *colon = strrchr(line, ':');
      if (k == NULL || colon == NULL) {
        fprintf(stderr, "bench_join: unexpected server output: %s\n", line);
        return -1;
      }
      long port = strtol(colon + 1, NULL, 10);
      if (port <= 0 || port > 65535) return -1;
      memset(&b->srv, 0, sizeof b->srv);
      b->srv.sin_family = AF_INET;
      b->srv.sin_port = htons((uint16_t)port);
      b->srv.sin_addr.s_addr = htonl(0x7f000001u);
      return 0;
    }
    uint64_t t = now_ms();
    if (t >= dl || got >= sizeof line - 1) break;
    struct pollfd p = {.fd = b->out_fd, .events = POLLIN};
    int r = poll(&p, 1, (int)(dl - t));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    ssize_t n = read(b->out_fd, line + got, sizeof line - 1 - got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  fprintf(stderr, "bench_join: the server did not report its port (log %s)\n",
          logp);
  return -1;
}

/* utime + stime of the server, seconds; -1 on error. */
static double server_cpu(pid_t pid) {
  char p[64], buf[2048];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(p, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *s = strrchr(buf, ')'); /* comm may hold spaces */
  if (s == NULL) return -1;
  unsigned long ut = 0, stt = 0;
  /* after ")": state(3) ... utime is field 14, stime 15 */
  if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
             &stt) != 2)
    return -1;
  long hz = sysconf(_SC_CLK_TCK);
  return (double)(ut + stt) / (double)(hz > 0 ? hz : 100);
}

/* VmRSS and RssAnon in bytes. */
static int server_mem(pid_t pid, uint64_t *rss, uint64_t *anon) {
  char p[64], line[256];
  snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
  FILE *f = fopen(p, "r");
  if (f == NULL) return -1;
  *rss = *anon = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long long kb;
    if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) *rss = kb * 1024u;
    if (sscanf(line, "RssAnon: %llu kB", &kb) == 1) *anon = kb * 1024u;
  }
  fclose(f);
  return 0;
}

/* Drops counted on the socket bound to 127.0.0.1:port (/proc/net/udp). */
static uint64_t udp_drops(uint16_t port) {
  FILE *f = fopen("/proc/net/udp", "r");
  if (f == NULL) return 0;
  char line[512];
  uint64_t drops = 0;
  unsigned want = port;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned la = 0, lp = 0;
    if (sscanf(line, " %*u: %x:%x", &la, &lp) != 2) continue;
    if (lp != want || la != 0x0100007fu) continue;
    char *save = NULL, *last = NULL; /* drops: the last field */
    for (char *t = strtok_r(line, " \t\n", &save); t != NULL;
         t = strtok_r(NULL, " \t\n", &save))
      last = t;
    if (last != NULL) drops = strtoull(last, NULL, 10);
  }
  fclose(f);
  return drops;
}

/* Drops counted on the server's socket. */
static uint64_t server_drops(const bench *b) {
  return udp_drops(ntohs(b->srv.sin_port));
}

static int server_stop_keep(bench *b) {
  int status = -1;
  if (b->pid > 0) {
    kill(b->pid, SIGTERM);
    uint64_t dl = now_ms() + 10000;
    for (;;) {
      pid_t r = waitpid(b->pid, &status, WNOHANG);
      if (r == b->pid) break;
      if (r < 0 && errno != EINTR) break;
      if (now_ms() >= dl) {
        fprintf(stderr, "bench_join: server ignored SIGTERM; SIGKILL\n");
        kill(b->pid, SIGKILL);
        waitpid(b->pid, &status, 0);
        break;
      }
      usleep(10000);
    }
    b->pid = 0;
  }
  if (b->out_fd >= 0) close(b->out_fd);
  b->out_fd = -1;
  return status;
}

static void server_cleanup(bench *b) {
  if (b->dir[0] != 0) nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  b->dir[0] = 0;
}

static int server_stop(bench *b) {
  int status = server_stop_keep(b);
  server_cleanup(b);
  return status;
}

/* ---- socket ------------------------------------------------------------ */
static int sock_open(bench *b) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1, want = RCVBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want);
  (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0) {
    close(fd);
    return -1;
  }
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  socklen_t sl = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &sl) != 0) {
    close(fd);
    return -1;
  }
  b->my_port = ntohs(a.sin_port);
  b->fd = fd;
  return 0;
}

static void tx_flush(bench *b) {
  static struct mmsghdr mh[TX_BATCH];
  static struct iovec iov[TX_BATCH];
  static union {
    char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
    struct cmsghdr align;
  } ctl[TX_BATCH];
  uint32_t n = b->txn;
  if (n == 0) return;
  memset(mh, 0, sizeof(struct mmsghdr) * n);
  for (uint32_t k = 0; k < n; k++) {
    iov[k].iov_base = b->tx_buf[k];
    iov[k].iov_len = b->tx_len[k];
    mh[k].msg_hdr.msg_name = &b->srv;
    mh[k].msg_hdr.msg_namelen = sizeof b->srv;
    mh[k].msg_hdr.msg_iov = &iov[k];
    mh[k].msg_hdr.msg_iovlen = 1;
    memset(&ctl[k], 0, sizeof ctl[k]);
    mh[k].msg_hdr.msg_control = ctl[k].buf;
    mh[k].msg_hdr.msg_controllen = sizeof ctl[k].buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh[k].msg_hdr);
    cm->cmsg_level = IPPROTO_IP;
    cm->cmsg_type = IP_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    pi.ipi_spec_dst.s_addr = htonl(client_ip(b->tx_client[k]));
    memcpy(CMSG_DATA(cm), &pi, sizeof pi);
  }
  uint32_t done = 0;
  int spins = 0;
  while (done < n && spins < 1000) {
    int r = sendmmsg(b->fd, mh + done, n - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == ENOBUFS) {
        struct pollfd p = {.fd = b->fd, .events = POLLOUT};
        (void)poll(&p, 1, 10);
        spins++;
        continue;
      }
      /* skip the datagram that failed */
      b->st.send_errors++;
      done++;
      continue;
    }
    for (int k = 0; k < r; k++) {
      b->st.tx_dgrams++;
      b->st.tx_bytes += b->tx_len[done + (uint32_t)k];
    }
    done += (uint32_t)r;
  }
  b->st.send_errors += n - done;
  b->txn = 0;
}

static void tx_packet(bench *b, uint32_t ci, const udpc_packet *p) {
  if (b->txn == TX_BATCH) tx_flush(b);
  int len = udpc_wire_encode(p, b->tx_buf[b->txn], TX_BUF);
  if (len <= 0) {
    fprintf(stderr, "bench_join: encode %s: %s\n", udpc_ptype_name(p->type),
            udpc_strerror(len));
    b->st.send_errors++;
    return;
  }
  b->tx_client[b->txn] = ci;
  b->tx_len[b->txn] = (uint16_t)len;
  b->txn++;
}

/* ---- client requests ------------------------------------------------- */
/* (Re)send the request in flight with its id. */
static void send_req(bench *b, uint32_t ci) {
  bclient *c = &b->c[ci];
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.id = c->req_id;
  switch (c->req) {
    case REQ_REG:
      p.type = UDPC_PT_REGISTER;
      p.u.reg.cookie_len = c->cookie_len;
      memcpy(p.u.reg.cookie, c->cookie, c->cookie_len);
      nick_of(ci, &p.u.reg.nick);
      memcpy(p.u.reg.credential, c->cred, UDPC_CRED_LEN);
      break;
    case REQ_TABLE:
      p.type = UDPC_PT_TABLE_REQ;
      p.token = c->token;
      p.u.table_req.start = c->expect;
      break;
    case REQ_DEREG:
      p.type = UDPC_PT_DEREG;
      p.token = c->token;
      break;
    default: return;
  }
  tx_packet(b, ci, &p);
}

static void new_req(bench *b, uint32_t ci, uint8_t kind, uint64_t now) {
  bclient *c = &b->c[ci];
  c->req = kind;
  c->req_id = c->next_id++;
  c->sends = 1;
  c->req_at = now;
  send_req(b, ci);
}

static void start_register(bench *b, uint32_t ci, uint64_t now) {
  bclient *c = &b->c[ci];
  c->phase = PH_REG;
  c->reg_attempts++;
  c->cookie_len = 0;
  c->cookie_rounds = 0;
  new_req(b, ci, REQ_REG, now);
}

static uint64_t *row_k(bench *b, uint32_t ci, uint8_t slot) {
  return b->known + ((size_t)ci * 2 + slot) * b->words;
}
static uint64_t *row_o(bench *b, uint32_t ci, uint8_t slot) {
  return b->online + ((size_t)ci * 2 + slot) * b->words;
}

static void start_walk(bench *b, uint32_t ci, uint64_t now) {
  bclient *c = &b->c[ci];
  if (c->req != REQ_NONE && c->req != REQ_TABLE) { /* one in flight (P4.4) */
    c->want_snap = 1;
    return;
  }
  c->want_snap = 0;
  c->walking = 1;
  c->v0_known = 0;
  c->pages_done = 0;
  c->v0 = c->chain = c->pmax = 0;
  c->expect = 0;
  uint8_t slot = (uint8_t)(c->tab_row ^ 1);
  memset(row_k(b, ci, slot), 0, b->words * sizeof(uint64_t));
  memset(row_o(b, ci, slot), 0, b->words * sizeof(uint64_t));
  c->buf_known = c->buf_online = 0;
  new_req(b, ci, REQ_TABLE, now);
}

static void restart_walk(bench *b, uint32_t ci, uint64_t now) {
  b->st.walk_restarts++;
  b->c[ci].walking = 0;
  b->c[ci].req = REQ_NONE;
  start_walk(b, ci, now);
}

static void check_converged(bench *b, uint32_t ci) {
  bclient *c = &b->c[ci];
  if (b->mode != 'j') return;
  if (c->version > b->final_version && !c->converged) b->st.version_overshoot++;
  int ok = c->have_table && !c->walking && c->phase == PH_ONLINE &&
           c->version == b->final_version && c->tab_known == b->n &&
           c->tab_online == b->n;
  if (ok && !c->converged) {
    c->converged = 1;
    b->n_converged++;
    b->last_conv_ns = now_ns();
  } else if (!ok && c->converged) { /* changed after convergence */
    c->converged = 0;
    b->n_converged--;
  }
}

/* Merge entries into row `slot` of client ci, keeping its counts. */
static void merge(bench *b, uint32_t ci, uint8_t slot, const udpc_entry *e,
                  uint32_t count, uint32_t *known, uint32_t *online) {
  uint64_t *K = row_k(b, ci, slot), *O = row_o(b, ci, slot);
  for (uint32_t k = 0; k < count; k++) {
    long idx = nick_index(&e[k].nick, b->n);
    if (idx < 0) {
      b->st.foreign_entries++;
      continue;
    }
    uint32_t i = (uint32_t)idx;
    uint32_t ip;
    memcpy(&ip, e[k].addr.ip, 4);
    if (e[k].addr.family != 4 || ntohl(ip) != client_ip(i) ||
        e[k].addr.port != b->my_port)
      b->st.addr_mismatch++;
    size_t w = i >> 6;
    uint64_t m = 1ull << (i & 63);
    int was_k = (K[w] & m) != 0, was_o = (O[w] & m) != 0;
    int now_k = 1, now_o = 0;
    if (e[k].status == UDPC_STATUS_ONLINE) {
      now_o = 1;
    } else if (e[k].status == UDPC_STATUS_OFFLINE) {
      b->st.offline_entries++;
    } else {
      b->st.removed_entries++;
      now_k = 0;
    }
    if (now_k && !was_k) {
      K[w] |= m;
      (*known)++;
    } else if (!now_k && was_k) {
      K[w] &= ~m;
      (*known)--;
    }
    if (now_o && !was_o) {
      O[w] |= m;
      (*online)++;
    } else if (!now_o && was_o) {
      O[w] &= ~m;
      (*online)--;
    }
  }
}

/* Complete the walk if the pages reached the end and chain >= pmax. */
static void try_complete(bench *b, uint32_t ci, uint64_t now) {
  bclient *c = &b->c[ci];
  if (!c->walking || !c->pages_done || c->chain < c->pmax) return;
  c->tab_row ^= 1;
  c->tab_known = c->buf_known;
  c->tab_online = c->buf_online;
  c->version = c->chain;
  c->have_table = 1;
  c->walking = 0;
  b->st.walks_done++;
  if (c->seen_max > c->version || c->want_snap) { /* R54: one more walk */
    b->st.extra_walks++;
    start_walk(b, ci, now);
  }
  check_converged(b, ci);
}

static void on_page(bench *b, uint32_t ci, const udpc_packet *p, uint64_t now) {
  bclient *c = &b->c[ci];
  if (c->req != REQ_TABLE || p->id != c->req_id || p->token != c->token ||
      !c->walking) {
    b->st.stale++;
    return;
  }
  c->req = REQ_NONE;
  uint32_t start = p->u.table_page.start, count = p->u.table_page.count;
  uint32_t total = p->u.table_page.total;
  if (start != c->expect || (count == 0 && start < total)) {
    restart_walk(b, ci, now);
    return;
  }
  uint64_t v = p->u.table_page.version;
  if (start == 0 && !c->v0_known) {
    c->v0 = c->chain = c->pmax = v;
    c->v0_known = 1;
  } else if (v > c->pmax) {
    c->pmax = v;
  }
  merge(b, ci, (uint8_t)(c->tab_row ^ 1), p->u.table_page.entries, count,
        &c->buf_known, &c->buf_online);
  c->expect = start + count;
  if (c->expect < total) {
    new_req(b, ci, REQ_TABLE, now);
    return;
  }
  c->pages_done = 1;
  c->pages_done_at = now;
  try_complete(b, ci, now);
}

static void on_delta(bench *b, uint32_t ci, const udpc_packet *p,
                     uint64_t now) {
  bclient *c = &b->c[ci];
  if (c->phase != PH_ONLINE || p->token != c->token) {
    b->st.stale++;
    return;
  }
  if (b->mode != 'j') return; /* memory: tables are not followed */
  uint64_t base = p->u.table_delta.base_version;
  uint64_t nv = p->u.table_delta.new_version;
  if (nv > c->seen_max) c->seen_max = nv;
  if (c->walking) {
    if (!c->v0_known || nv <= c->chain) return;
    if (base <= c->chain) {
      merge(b, ci, (uint8_t)(c->tab_row ^ 1), p->u.table_delta.entries,
            p->u.table_delta.count, &c->buf_known, &c->buf_online);
      c->chain = nv;
      try_complete(b, ci, now);
    } else {
      restart_walk(b, ci, now); /* gap */
    }
    return;
  }
  if (c->have_table && base <= c->version && c->version < nv) {
    merge(b, ci, c->tab_row, p->u.table_delta.entries, p->u.table_delta.count,
          &c->tab_known, &c->tab_online);
    c->version = nv;
    check_converged(b, ci);
  } else if (c->have_table && c->version >= nv) {
    /* old or duplicate */
  } else {
    start_walk(b, ci, now); /* gap, or no table and no walk */
  }
}

static void release(bench *b, uint32_t ci) {
  if (b->c[ci].in_window) {
    b->c[ci].in_window = 0;
    b->busy--;
  }
}

static void mark_done(bench *b, uint32_t ci) {
  bclient *c = &b->c[ci];
  c->req = REQ_NONE;
  c->phase = PH_DONE;
  b->n_done++;
  release(b, ci);
  b->last_done_ns = now_ns();
}

static void client_failed(bench *b, uint32_t ci) {
  bclient *c = &b->c[ci];
  if (c->phase == PH_FAILED) return;
  if (c->converged) {
    c->converged = 0;
    b->n_converged--;
  }
  release(b, ci);
  c->phase = PH_FAILED;
  c->req = REQ_NONE;
  c->walking = 0;
  b->n_failed++;
}

static void on_reg_result(bench *b, uint32_t ci, const udpc_packet *p,
                          uint64_t now) {
  bclient *c = &b->c[ci];
  if (c->req != REQ_REG || p->id != c->req_id) {
    b->st.stale++;
    return;
  }
  c->req = REQ_NONE;
  if (p->u.reg_result.status != UDPC_REG_OK) {
    b->st.reg_refused++;
    client_failed(b, ci);
    return;
  }
  c->token = p->u.reg_result.token;
  c->phase = PH_ONLINE;
  c->version = 0; /* forget the version, keep the rows */
  c->have_table = 0;
  c->next_hb = now + UDPC_T_HEARTBEAT;
  if (!c->registered) {
    c->registered = 1;
    b->n_registered++;
    b->last_reg_ns = now_ns();
  }
  if (b->mode == 'm') {
    new_req(b, ci, REQ_DEREG, now);
  } else {
    release(b, ci); /* join: the window bounds registrations */
    c->walking = 0;
    start_walk(b, ci, now);
  }
}

static void on_error(bench *b, uint32_t ci, const udpc_packet *p,
                     uint64_t now) {
  bclient *c = &b->c[ci];
  b->st.errors_rx++;
  int is_req = c->req != REQ_NONE && p->id == c->req_id;
  int is_hb = c->phase == PH_ONLINE && p->id == c->hb_id;
  if (!is_req && !is_hb) {
    b->st.stale++;
    return;
  }
  switch (p->u.error.code) {
    case UDPC_ERROR_BAD_SESSION:
      b->st.bad_session++;
      if (c->req == REQ_DEREG && is_req) { /* complete */
        mark_done(b, ci);
        return;
      }
      c->walking = 0;
      start_register(b, ci, now); /* silent re-registration */
      return;
    case UDPC_ERROR_SESSION_ENDED:
      b->st.session_ended++;
      if (c->req == REQ_DEREG && is_req) {
        mark_done(b, ci);
        return;
      }
      client_failed(b, ci);
      return;
    case UDPC_ERROR_MALFORMED:
      if (is_req) client_failed(b, ci);
      return;
    case UDPC_ERROR_RATE_LIMITED: b->st.rate_limited_err++; return;
    default: return;
  }
}

static void on_datagram(bench *b, uint32_t ci, const uint8_t *d, size_t len,
                        uint64_t now) {
  bclient *c = &b->c[ci];
  udpc_packet *p = &b->pkt;
  int rc = udpc_wire_decode(p, d, len);
  if (rc != UDPC_OK) {
    b->st.decode_errors++;
    return;
  }
  b->st.rx_type[p->type]++;
  if (p->type == UDPC_PT_TABLE_PAGE || p->type == UDPC_PT_TABLE_DELTA) {
    b->st.table_dgrams++;
    b->st.table_bytes += len;
    if (p->type == UDPC_PT_TABLE_PAGE)
      b->st.page_dgrams++;
    else
      b->st.delta_dgrams++;
  }
  if (c->phase == PH_IDLE || c->phase == PH_FAILED) {
    b->st.stale++;
    return;
  }
  switch (p->type) {
    case UDPC_PT_COOKIE:
      if (c->req != REQ_REG || p->id != c->req_id) {
        b->st.stale++;
        return;
      }
      if (++c->cookie_rounds > COOKIE_ROUNDS) {
        b->st.reg_failed++;
        client_failed(b, ci);
        return;
      }
      c->cookie_len = p->u.cookie.cookie_len;
      memcpy(c->cookie, p->u.cookie.cookie, c->cookie_len);
      new_req(b, ci, REQ_REG, now);
      return;
    case UDPC_PT_REGISTER_RESULT: on_reg_result(b, ci, p, now); return;
    case UDPC_PT_TABLE_PAGE: on_page(b, ci, p, now); return;
    case UDPC_PT_TABLE_DELTA: on_delta(b, ci, p, now); return;
    case UDPC_PT_HEARTBEAT_ACK:
      if (c->phase != PH_ONLINE || p->id != c->hb_id || p->token != c->token) {
        b->st.stale++;
        return;
      }
      if (b->mode == 'j') {
        uint64_t v = p->u.heartbeat_ack.table_version;
        if (v > c->seen_max) c->seen_max = v;
        if (!c->walking && c->version < v) start_walk(b, ci, now);
      }
      return;
    case UDPC_PT_DEREG_RESULT:
      if (c->req != REQ_DEREG || p->id != c->req_id) {
        b->st.stale++;
        return;
      }
      mark_done(b, ci);
      return;
    case UDPC_PT_PROBE: {
      udpc_packet a;
      memset(&a, 0, sizeof a);
      a.type = UDPC_PT_PROBE_ACK;
      a.id = p->id;
      a.token = c->token;
      tx_packet(b, ci, &a);
      return;
    }
    case UDPC_PT_KICKED: b->st.kicked++; return;
    case UDPC_PT_ERROR: on_error(b, ci, p, now); return;
    default: b->st.stale++; return;
  }
}

/* Retransmissions, walk waits, heartbeats, window starts. */
static void timers(bench *b, uint64_t now) {
  for (uint32_t ci = 0; ci < b->n; ci++) {
    bclient *c = &b->c[ci];
    if (c->phase == PH_IDLE || c->phase == PH_FAILED || c->phase == PH_DONE)
      continue;
    if (c->req != REQ_NONE && now - c->req_at >= UDPC_T_REQUEST_RETRY) {
      if (c->sends >= UDPC_N_REQUEST_SENDS) {
        if (c->req == REQ_TABLE) {
          /* P6.2: abandon the walk, keep the rows, forget the version: the
           * next delta or HEARTBEAT_ACK starts a new walk (the server may
           * have left entries this walk was to read out of its deltas) */
          b->st.walks_abandoned++;
          c->req = REQ_NONE;
          c->walking = 0;
          c->have_table = 0;
          c->version = 0;
        } else if (c->req == REQ_REG && c->reg_attempts < REG_ATTEMPTS) {
          /* The real client exits ([Server not responding]); a user would
           * start it again: so does the bench, a bounded number of times. */
          b->st.reg_restarts++;
          start_register(b, ci, now);
        } else {
          b->st.reg_failed += c->req == REQ_REG;
          client_failed(b, ci);
          continue;
        }
      } else {
        c->sends++;
        c->req_at = now;
        b->st.retransmits++;
        send_req(b, ci);
      }
    }
    if (c->walking && c->pages_done && c->chain < c->pmax &&
        now - c->pages_done_at >= WALK_WAIT_MS)
      restart_walk(b, ci, now);
    if (c->phase == PH_ONLINE && now >= c->next_hb) {
      udpc_packet h;
      memset(&h, 0, sizeof h);
      h.type = UDPC_PT_HEARTBEAT;
      h.id = c->hb_id = c->next_id++;
      h.token = c->token;
      tx_packet(b, ci, &h);
      b->st.heartbeats++;
      c->next_hb = now + UDPC_T_HEARTBEAT;
    }
    if (c->want_snap && c->req == REQ_NONE && !c->walking &&
        c->phase == PH_ONLINE)
      start_walk(b, ci, now);
  }
}

static void start_more(bench *b, uint64_t now) {
  while (b->next_start < b->n && (b->window == 0 || b->busy < b->window)) {
    b->busy++;
    b->c[b->next_start].in_window = 1;
    start_register(b, b->next_start++, now);
  }
}

static void rx_drain(bench *b, int max_batches) {
  static struct mmsghdr mh[RX_BATCH];
  static struct iovec iov[RX_BATCH];
  static uint8_t buf[RX_BATCH][RX_BUF];
  static struct sockaddr_in from[RX_BATCH];
  static union {
    char b[CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(4) + 32];
    struct cmsghdr align;
  } ctl[RX_BATCH];
  for (int batch = 0; batch < max_batches; batch++) {
    for (int k = 0; k < RX_BATCH; k++) {
      iov[k].iov_base = buf[k];
      iov[k].iov_len = RX_BUF;
      memset(&mh[k].msg_hdr, 0, sizeof mh[k].msg_hdr);
      mh[k].msg_hdr.msg_name = &from[k];
      mh[k].msg_hdr.msg_namelen = sizeof from[k];
      mh[k].msg_hdr.msg_iov = &iov[k];
      mh[k].msg_hdr.msg_iovlen = 1;
      mh[k].msg_hdr.msg_control = ctl[k].b;
      mh[k].msg_hdr.msg_controllen = sizeof ctl[k].b;
    }
    int r = recvmmsg(b->fd, mh, RX_BATCH, MSG_DONTWAIT, NULL);
    if (r <= 0) return;
    uint64_t now = now_ms();
    for (int k = 0; k < r; k++) {
      size_t len = mh[k].msg_len;
      b->st.rx_dgrams++;
      b->st.rx_bytes += len;
      if (mh[k].msg_hdr.msg_flags & MSG_TRUNC) {
        b->st.truncated++;
        continue;
      }
      if (from[k].sin_addr.s_addr != b->srv.sin_addr.s_addr ||
          from[k].sin_port != b->srv.sin_port) {
        b->st.foreign_src++;
        continue;
      }
      uint32_t dst = 0;
      int have = 0;
      for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh[k].msg_hdr); cm != NULL;
           cm = CMSG_NXTHDR(&mh[k].msg_hdr, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
          struct in_pktinfo pi;
          memcpy(&pi, CMSG_DATA(cm), sizeof pi);
          dst = ntohl(pi.ipi_addr.s_addr);
          have = 1;
        } else if (cm->cmsg_level == SOL_SOCKET &&
                   cm->cmsg_type == SO_RXQ_OVFL) {
          uint32_t drops;
          memcpy(&drops, CMSG_DATA(cm), sizeof drops);
          if (drops > b->st.bench_drops) b->st.bench_drops = drops;
        }
      }
      uint32_t ci = dst - client_ip(0);
      if (!have || dst < client_ip(0) || ci >= b->n) {
        b->st.foreign_dst++;
        continue;
      }
      on_datagram(b, ci, buf[k], len, now);
    }
    tx_flush(b);
    if (r < RX_BATCH) return;
  }
}

static int finished(const bench *b) {
  if (b->mode == 'j') return b->n_converged == b->n;
  return b->n_done + b->n_failed >= b->n;
}

static void progress_line(const bench *b, uint64_t t_ms) {
  uint32_t walking = 0, inflight = 0, have = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    walking += b->c[i].walking;
    inflight += b->c[i].req != REQ_NONE;
    have += b->c[i].have_table;
  }
  fprintf(stderr,
          "t=%6.1f s registered %u converged %u done %u failed %u | walking %u "
          "requests %u tables %u | rx %llu tx %llu retx %llu abandoned %llu "
          "srv_cpu %.2f\n",
          (double)t_ms / 1000.0, b->n_registered, b->n_converged, b->n_done,
          b->n_failed, walking, inflight, have,
          (unsigned long long)b->st.rx_dgrams,
          (unsigned long long)b->st.tx_dgrams,
          (unsigned long long)b->st.retransmits,
          (unsigned long long)b->st.walks_abandoned, server_cpu(b->pid));
}

/* The event loop; returns 1 if the run completed before the timeout. */
static int run_loop(bench *b) {
  uint64_t start = now_ms();
  uint64_t deadline = start + (uint64_t)(b->timeout_s * 1000.0);
  uint32_t scan_ms = b->n / 5000u + 5u;
  uint64_t next_scan = start, next_progress = start + 1000;
  b->t0_ns = now_ns();
  start_more(b, start);
  tx_flush(b);
  while (!g_stop) {
    if (finished(b)) return 1;
    uint64_t now = now_ms();
    if (now >= deadline) return 0;
    if (b->mode == 'j' && b->n_failed > 0 &&
        b->n_converged + b->n_failed >= b->n)
      return 0; /* nothing left that can converge */
    struct pollfd p = {.fd = b->fd, .events = POLLIN};
    int wait = (int)(next_scan > now ? next_scan - now : 0);
    (void)poll(&p, 1, wait);
    rx_drain(b, 64);
    now = now_ms();
    if (now >= next_scan) {
      timers(b, now);
      next_scan = now + scan_ms;
    }
    start_more(b, now);
    tx_flush(b);
    if (b->progress && now >= next_progress) {
      progress_line(b, now - start);
      next_progress = now + 1000;
    }
  }
  return 0;
}

/* ---- reports ---------------------------------------------------------- */
static double secs(uint64_t a_ns, uint64_t b_ns) {
  return b_ns > a_ns ? (double)(b_ns - a_ns) / 1e9 : 0.0;
}

/* ---- blast: the raw UDP baseline for table traffic ------------------------
 * A child process (fork) sends BLAST_BYTES-byte datagrams as fast as it can,
 * sendmmsg batches of BLAST_BATCH from one connected socket, to one socket of
 * the parent on 127.0.0.1 (SO_RCVBUFFORCE RCVBUF like the join clients'),
 * which receives with recvmmsg batches of BLAST_BATCH. After --warmup W s
 * (default 0.3) the parent counts for --seconds S (default 2): datagrams and
 * bytes received, datagrams sent (the child's counter, in shared memory), and
 * the CPU time of each side (clock_getcpuclockid / getrusage). Then it tells
 * the child to stop, drains its socket, and reports drops = sent - received
 * over the whole run (and the kernel's drop counter of the socket). The child
 * stops by itself after W + S + 5 s or BLAST_MAX_PER_S * that many datagrams,
 * and dies with the parent (PR_SET_PDEATHSIG); the parent kills it (by PID)
 * if it is not gone 2 s after being told to stop. */
#define BLAST_BYTES 1200 /* the protocol's datagram limit (TABLE_PAGE) */
#define BLAST_BATCH 64
#define BLAST_MAX_PER_S 20000000.0

typedef struct {
  uint64_t sent, sent_bytes, send_errors;
  int stop, started, failed;
} blast_shared;

static void blast_child(blast_shared *sh, uint16_t port, double limit_s) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(0x7f000001u);
  struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
      connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
    __atomic_store_n(&sh->failed, 1, __ATOMIC_RELEASE);
    _exit(3);
  }
  static uint8_t payload[BLAST_BYTES];
  for (size_t k = 0; k < sizeof payload; k++) payload[k] = (uint8_t)k;
  static struct iovec iov[BLAST_BATCH];
  static struct mmsghdr msgs[BLAST_BATCH];
  for (int k = 0; k < BLAST_BATCH; k++) {
    iov[k].iov_base = payload;
    iov[k].iov_len = sizeof payload;
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  uint64_t deadline = now_ns() + (uint64_t)(limit_s * 1e9);
  uint64_t cap = (uint64_t)(limit_s * BLAST_MAX_PER_S);
  uint64_t sent = 0, bytes = 0, errs = 0;
  __atomic_store_n(&sh->started, 1, __ATOMIC_RELEASE);
  while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE) && sent < cap &&
         now_ns() < deadline) {
    int r = sendmmsg(fd, msgs, BLAST_BATCH, 0);
    if (r > 0) {
      sent += (uint64_t)r;
      bytes += (uint64_t)r * BLAST_BYTES;
      __atomic_store_n(&sh->sent, sent, __ATOMIC_RELEASE);
      __atomic_store_n(&sh->sent_bytes, bytes, __ATOMIC_RELAXED);
    } else {
      /* EAGAIN (SO_SNDTIMEO), ENOBUFS, ECONNREFUSED (an ICMP error from an
       * earlier datagram), EINTR: counted; the deadline bounds the loop. */
      __atomic_store_n(&sh->send_errors, ++errs, __ATOMIC_RELAXED);
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS &&
          errno != ECONNREFUSED && errno != EINTR)
        break;
    }
  }
  close(fd);
  _exit(0);
}

/* CPU seconds (user + system) of process pid via its CPU clock; -1 if gone. */
static double proc_cpu(clockid_t cid, pid_t pid) {
  struct timespec ts;
  if (clock_gettime(cid, &ts) == 0)
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  return server_cpu(pid);
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int blast_main(int argc, char **argv) {
  double seconds = 2.0, warmup = 0.3;
  const char *json_path = NULL;
  for (int i = 2; i < argc; i++) {
    const char *o = argv[i];
    if (i + 1 >= argc) {
      fprintf(stderr, "bench_join blast: %s needs a value\n", o);
      return 2;
    }
    const char *v = argv[++i];
    char *end = NULL;
    if (strcmp(o, "--seconds") == 0 || strcmp(o, "--warmup") == 0) {
      double x = strtod(v, &end);
      int sec = strcmp(o, "--seconds") == 0;
      if (*end || !(x >= (sec ? 0.05 : 0.0)) || x > 60) {
        fprintf(stderr, "bench_join blast: bad %s %s\n", o, v);
        return 2;
      }
      if (sec)
        seconds = x;
      else
        warmup = x;
    } else if (strcmp(o, "--json") == 0) {
      json_path = v;
    } else {
      fprintf(stderr, "bench_join blast: unknown option %s\n", o);
      return 2;
    }
  }

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fprintf(stderr, "bench_join blast: socket: %s\n", strerror(errno));
    return 2;
  }
  int want = RCVBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
  int rcvbuf = 0;
  socklen_t ol = sizeof rcvbuf;
  (void)getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &ol);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(0x7f000001u);
  socklen_t sl = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &sl) != 0) {
    fprintf(stderr, "bench_join blast: bind: %s\n", strerror(errno));
    close(fd);
    return 2;
  }
  uint16_t port = ntohs(a.sin_port);

  blast_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) {
    fprintf(stderr, "bench_join blast: mmap: %s\n", strerror(errno));
    close(fd);
    return 2;
  }
  memset(sh, 0, sizeof *sh);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  fflush(stdout);
  fflush(stderr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "bench_join blast: fork: %s\n", strerror(errno));
    close(fd);
    return 2;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    close(fd);
    blast_child(sh, port, warmup + seconds + 5.0);
  }
  clockid_t cid;
  if (clock_getcpuclockid(pid, &cid) != 0) cid = (clockid_t)-1;

  static uint8_t bufs[BLAST_BATCH][BLAST_BYTES + 64];
  static struct iovec iov[BLAST_BATCH];
  static struct mmsghdr msgs[BLAST_BATCH];
  for (int k = 0; k < BLAST_BATCH; k++) {
    iov[k].iov_base = bufs[k];
    iov[k].iov_len = sizeof bufs[k];
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  uint64_t rx = 0, rx_bytes = 0, bad_len = 0, calls = 0;
  uint64_t t_begin = now_ns();
  uint64_t t_w = t_begin + (uint64_t)(warmup * 1e9);
  uint64_t t_end = t_w + (uint64_t)(seconds * 1e9);
  /* the window's first (0) and last (1) snapshot */
  uint64_t s_t[2] = {0, 0}, s_rx[2] = {0, 0}, s_rxb[2] = {0, 0};
  uint64_t s_tx[2] = {0, 0}, s_calls[2] = {0, 0};
  double s_cpu_rx[2] = {0, 0}, s_cpu_tx[2] = {0, 0};
  int phase = 0; /* 0 warm-up, 1 counting, 2 done */
  int child_gone = 0, status = 0;
  while (phase < 2 && !g_stop) {
    int r = recvmmsg(fd, msgs, BLAST_BATCH, MSG_DONTWAIT, NULL);
    if (r > 0) {
      calls++;
      for (int k = 0; k < r; k++) {
        rx_bytes += msgs[k].msg_len;
        if (msgs[k].msg_len != BLAST_BYTES) bad_len++;
      }
      rx += (uint64_t)r;
    } else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
               errno != EINTR) {
      fprintf(stderr, "bench_join blast: recvmmsg: %s\n", strerror(errno));
      break;
    } else {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      (void)poll(&p, 1, 5);
    }
    uint64_t t = now_ns();
    if (t >= (phase == 0 ? t_w : t_end)) {
      s_t[phase] = t;
      s_rx[phase] = rx;
      s_rxb[phase] = rx_bytes;
      s_calls[phase] = calls;
      s_tx[phase] = __atomic_load_n(&sh->sent, __ATOMIC_ACQUIRE);
      s_cpu_rx[phase] = self_cpu();
      s_cpu_tx[phase] = proc_cpu(cid, pid);
      phase++;
    }
    if (waitpid(pid, &status, WNOHANG) == pid) { /* the child ended early */
      child_gone = 1;
      break;
    }
  }
  /* Stop the child, then drain what is still queued (at most 2 s). */
  __atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
  uint64_t dl = now_ns() + 2000000000u;
  for (;;) {
    if (!child_gone && waitpid(pid, &status, WNOHANG) == pid) child_gone = 1;
    int r = recvmmsg(fd, msgs, BLAST_BATCH, MSG_DONTWAIT, NULL);
    if (r > 0) {
      for (int k = 0; k < r; k++) rx_bytes += msgs[k].msg_len;
      rx += (uint64_t)r;
      continue;
    }
    if (child_gone || now_ns() >= dl) break;
    usleep(1000);
  }
  if (!child_gone) {
    fprintf(stderr, "bench_join blast: sender %d did not stop; SIGKILL\n",
            (int)pid);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  uint64_t sock_drops = udp_drops(port);
  close(fd);
  uint64_t sent = __atomic_load_n(&sh->sent, __ATOMIC_ACQUIRE);
  uint64_t send_errors = __atomic_load_n(&sh->send_errors, __ATOMIC_ACQUIRE);
  int child_failed = __atomic_load_n(&sh->failed, __ATOMIC_ACQUIRE);
  munmap(sh, sizeof *sh);

  if (phase < 2) {
    fprintf(stderr,
            "bench_join blast: the run did not complete (%s; status %d)\n",
            g_stop       ? "interrupted"
            : child_gone ? "sender ended early"
                         : "",
            status);
    return 1;
  }
  double el = secs(s_t[0], s_t[1]);
  uint64_t wrx = s_rx[1] - s_rx[0], wtx = s_tx[1] - s_tx[0];
  double rx_rate = el > 0 ? (double)wrx / el : 0;
  double rx_mb = el > 0 ? (double)(s_rxb[1] - s_rxb[0]) / el / 1e6 : 0;
  double tx_rate = el > 0 ? (double)wtx / el : 0;
  double cpu_rx = s_cpu_rx[1] - s_cpu_rx[0];
  double cpu_tx =
      s_cpu_tx[1] >= 0 && s_cpu_tx[0] >= 0 ? s_cpu_tx[1] - s_cpu_tx[0] : -1;
  uint64_t drops = sent > rx ? sent - rx : 0;
  double per_call = s_calls[1] > s_calls[0]
                        ? (double)wrx / (double)(s_calls[1] - s_calls[0])
                        : 0;
  printf("blast: %d-byte datagrams, one process to another over 127.0.0.1, "
         "sendmmsg/recvmmsg batches of %d, receive buffer %d bytes; "
         "%.2f s counted after %.2f s warm-up\n",
         BLAST_BYTES, BLAST_BATCH, rcvbuf, el, warmup);
  printf("  received %.0f datagrams/s (%.1f MB/s), %.1f per recvmmsg; "
         "sent %.0f datagrams/s\n",
         rx_rate, rx_mb, per_call, tx_rate);
  printf("  whole run: sent %llu, received %llu, dropped %llu (%.1f %%; "
         "socket drop counter %llu); send errors %llu; wrong length %llu\n",
         (unsigned long long)sent, (unsigned long long)rx,
         (unsigned long long)drops,
         sent ? 100.0 * (double)drops / (double)sent : 0.0,
         (unsigned long long)sock_drops, (unsigned long long)send_errors,
         (unsigned long long)bad_len);
  printf("  cpu in the window: receiver %.2f s (%.0f %%), sender %.2f s "
         "(%.0f %%)\n",
         cpu_rx, el > 0 ? 100 * cpu_rx / el : 0, cpu_tx,
         el > 0 && cpu_tx >= 0 ? 100 * cpu_tx / el : 0);
  if (json_path != NULL) {
    FILE *j = fopen(json_path, "w");
    if (j == NULL) {
      fprintf(stderr, "bench_join: %s: %s\n", json_path, strerror(errno));
      return 2;
    }
    fprintf(j,
            "{\"blast\":{\"datagram_bytes\":%d,\"batch\":%d,"
            "\"rcvbuf_bytes\":%d,\"warmup_s\":%.3f,\"seconds\":%.6f,"
            "\"received_datagrams\":%llu,\"received_per_s\":%.1f,"
            "\"received_mb_per_s\":%.3f,\"received_per_recvmmsg\":%.2f,"
            "\"sent_datagrams\":%llu,\"sent_per_s\":%.1f,"
            "\"run_sent\":%llu,\"run_received\":%llu,\"run_dropped\":%llu,"
            "\"socket_drops\":%llu,\"send_errors\":%llu,"
            "\"wrong_length\":%llu,"
            "\"receiver_cpu_s\":%.3f,\"sender_cpu_s\":%.3f}}\n",
            BLAST_BYTES, BLAST_BATCH, rcvbuf, warmup, el,
            (unsigned long long)wrx, rx_rate, rx_mb, per_call,
            (unsigned long long)wtx, tx_rate, (unsigned long long)sent,
            (unsigned long long)rx, (unsigned long long)drops,
            (unsigned long long)sock_drops, (unsigned long long)send_errors,
            (unsigned long long)bad_len, cpu_rx, cpu_tx);
    fclose(j);
  }
  return wrx > 0 && !child_failed && bad_len == 0 ? 0 : 1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_join join|memory --server PATH --n N [--timeout S]\n"
          "         [--store sqlite|memory] [--window W] [--json FILE]\n"
          "         [--progress 1] [--tmp DIR] [--server-arg ARG]...\n"
          "  join:   N clients register and keep their tables in sync until\n"
          "          all converged (default timeout 60 s, window 0 = all)\n"
          "  memory: N clients register then DEREG (window default 256);\n"
          "          server VmRSS/RssAnon per registered client\n"
          "       bench_join blast [--seconds S] [--warmup W] [--json FILE]\n"
          "  blast:  raw UDP baseline: a child sends 1200-byte datagrams\n"
          "          (sendmmsg, 64) to this process (recvmmsg, 64) over\n"
          "          127.0.0.1 for S s (default 2) after W s (0.3)\n");
}

int main(int argc, char **argv) {
  static bench B;
  bench *b = &B;
  memset(b, 0, sizeof *b);
  b->fd = -1;
  b->out_fd = -1;
  b->timeout_s = 60;
  if (argc < 2) {
    usage();
    return 2;
  }
  if (strcmp(argv[1], "blast") == 0) return blast_main(argc, argv);
  if (strcmp(argv[1], "join") == 0)
    b->mode = 'j';
  else if (strcmp(argv[1], "memory") == 0)
    b->mode = 'm';
  else {
    usage();
    return 2;
  }
  int have_window = 0;
  for (int i = 2; i < argc; i++) {
    const char *o = argv[i];
    if (i + 1 >= argc) {
      usage();
      return 2;
    }
    const char *v = argv[++i];
    char *end = NULL;
    if (strcmp(o, "--server") == 0) {
      b->server_path = v;
    } else if (strcmp(o, "--n") == 0) {
      unsigned long x = strtoul(v, &end, 10);
      if (*end || x == 0 || x > MEMORY_N_MAX) {
        fprintf(stderr, "bench_join: bad --n %s\n", v);
        return 2;
      }
      b->n = (uint32_t)x;
    } else if (strcmp(o, "--timeout") == 0) {
      b->timeout_s = strtod(v, &end);
      if (*end || !(b->timeout_s > 0) || b->timeout_s > 86400) {
        fprintf(stderr, "bench_join: bad --timeout %s\n", v);
        return 2;
      }
    } else if (strcmp(o, "--store") == 0) {
      b->store = v;
    } else if (strcmp(o, "--window") == 0) {
      unsigned long x = strtoul(v, &end, 10);
      if (*end || x > MEMORY_N_MAX) {
        fprintf(stderr, "bench_join: bad --window %s\n", v);
        return 2;
      }
      b->window = (uint32_t)x;
      have_window = 1;
    } else if (strcmp(o, "--tmp") == 0) {
      b->tmp = v;
    } else if (strcmp(o, "--progress") == 0) {
      b->progress = atoi(v) != 0;
    } else if (strcmp(o, "--server-arg") == 0) {
      if (b->n_extra == 8) {
        fprintf(stderr, "bench_join: at most 8 --server-arg\n");
        return 2;
      }
      b->extra[b->n_extra++] = v;
    } else if (strcmp(o, "--json") == 0) {
      b->json_path = v;
    } else {
      usage();
      return 2;
    }
  }
  if (b->server_path == NULL || b->n == 0) {
    usage();
    return 2;
  }
  if (b->mode == 'j' && b->n > JOIN_N_MAX) {
    fprintf(stderr, "bench_join: join --n at most %u (bitmaps grow as N^2)\n",
            JOIN_N_MAX);
    return 2;
  }
  if (b->mode == 'm' && !have_window) b->window = 256;
  const char *store_name = b->store != NULL ? b->store : "sqlite";

  b->c = calloc(b->n, sizeof *b->c);
  if (b->c == NULL) return 2;
  if (b->mode == 'j') {
    b->words = (b->n + 63u) / 64u;
    size_t cells = (size_t)b->n * 2u * b->words;
    b->known = calloc(cells, sizeof(uint64_t));
    b->online = calloc(cells, sizeof(uint64_t));
    if (b->known == NULL || b->online == NULL) {
      fprintf(stderr, "bench_join: out of memory for the bitmaps\n");
      return 2;
    }
  }
  b->final_version = 1u + (uint64_t)b->n;
  {
    uint8_t seed[8];
    FILE *ur = fopen("/dev/urandom", "rb");
    if (ur == NULL || fread(seed, 1, sizeof seed, ur) != sizeof seed) {
      fprintf(stderr, "bench_join: /dev/urandom\n");
      return 2;
    }
    fclose(ur);
    memcpy(&b->rng, seed, sizeof seed);
  }
  for (uint32_t i = 0; i < b->n; i++) {
    bclient *c = &b->c[i];
    for (int k = 0; k < UDPC_CRED_LEN; k += 8) {
      uint64_t r = rng_next(&b->rng);
      memcpy(c->cred + k, &r, 8);
    }
    c->next_id = (uint32_t)rng_next(&b->rng);
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (server_start(b) != 0 || sock_open(b) != 0) {
    fprintf(stderr, "bench_join: setup failed: %s\n", strerror(errno));
    server_stop(b);
    return 2;
  }
  fprintf(stderr, "bench_join: server pid %d port %u data %s\n", (int)b->pid,
          (unsigned)ntohs(b->srv.sin_port), b->dir);
  usleep(100000); /* let the server settle before the first measurement */
  uint64_t rss0 = 0, anon0 = 0, rss1 = 0, anon1 = 0;
  (void)server_mem(b->pid, &rss0, &anon0);
  double cpu0 = server_cpu(b->pid);
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);

  int completed = run_loop(b);

  double cpu1 = server_cpu(b->pid);
  uint64_t srv_drops = server_drops(b);
  getrusage(RUSAGE_SELF, &ru1);
  if (b->mode == 'm') usleep(200000); /* let frees and commits settle */
  (void)server_mem(b->pid, &rss1, &anon1);
  /* Stop the server (it logs its counters when it exits), then read the
   * tail of its log before the temp dir goes. */
  int wst = server_stop_keep(b);
  static char logtail[4096];
  {
    FILE *lf = b->logp[0] ? fopen(b->logp, "r") : NULL;
    if (lf != NULL) {
      if (fseek(lf, -(long)(sizeof logtail - 1), SEEK_END) != 0) rewind(lf);
      size_t n = fread(logtail, 1, sizeof logtail - 1, lf);
      logtail[n] = 0;
      fclose(lf);
    }
  }
  server_cleanup(b);
  close(b->fd);

  const bstats *s = &b->st;
  double reg_s = secs(b->t0_ns, b->last_reg_ns);
  double conv_s = b->mode == 'j' ? secs(b->t0_ns, b->last_conv_ns)
                                 : secs(b->t0_ns, b->last_done_ns);
  double cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
  double my_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec +
                           ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                  (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec +
                           ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) /
                      1e6;
  uint64_t content_errors = s->foreign_entries + s->addr_mismatch +
                            s->offline_entries + s->removed_entries;
  uint32_t online = b->mode == 'j' ? b->n : 0;
  double per_client = b->n ? ((double)rss1 - (double)rss0) / (double)b->n : 0.0;
  double per_client_anon =
      b->n ? ((double)anon1 - (double)anon0) / (double)b->n : 0.0;

  if (b->mode == 'j') {
    printf("join storm: n=%u store=%s window=%u: %s\n", b->n, store_name,
           b->window, completed ? "all converged" : "NOT converged");
    printf("  registered %u/%u in %.3f s; converged %u/%u in %.3f s\n",
           b->n_registered, b->n, reg_s, b->n_converged, b->n, conv_s);
  } else {
    printf("memory: n=%u store=%s window=%u: %s\n", b->n, store_name, b->window,
           completed && b->n_failed == 0 ? "done" : "NOT done");
    printf("  registered %u/%u in %.3f s; deregistered %u in %.3f s\n",
           b->n_registered, b->n, reg_s, b->n_done, conv_s);
  }
  printf(
      "  table traffic: %llu datagrams (%llu pages, %llu deltas), "
      "%llu bytes\n",
      (unsigned long long)s->table_dgrams, (unsigned long long)s->page_dgrams,
      (unsigned long long)s->delta_dgrams, (unsigned long long)s->table_bytes);
  printf("  rx %llu datagrams %llu bytes; tx %llu datagrams %llu bytes\n",
         (unsigned long long)s->rx_dgrams, (unsigned long long)s->rx_bytes,
         (unsigned long long)s->tx_dgrams, (unsigned long long)s->tx_bytes);
  printf("  server cpu %.2f s; bench cpu %.2f s; socket drops: server %llu, "
         "bench %llu\n",
         cpu, my_cpu, (unsigned long long)srv_drops,
         (unsigned long long)s->bench_drops);
  printf(
      "  walks done %llu, restarted %llu, extra %llu, abandoned %llu; "
      "retransmits %llu; registrations restarted %llu; heartbeats %llu\n",
      (unsigned long long)s->walks_done, (unsigned long long)s->walk_restarts,
      (unsigned long long)s->extra_walks,
      (unsigned long long)s->walks_abandoned,
      (unsigned long long)s->retransmits, (unsigned long long)s->reg_restarts,
      (unsigned long long)s->heartbeats);
  printf("  errors: decode %llu, content %llu (foreign %llu addr %llu "
         "offline %llu removed %llu), failed clients %u (refused %llu), "
         "ERROR rx %llu, stale %llu, send %llu, foreign src/dst %llu/%llu, "
         "version overshoot %llu\n",
         (unsigned long long)s->decode_errors,
         (unsigned long long)content_errors,
         (unsigned long long)s->foreign_entries,
         (unsigned long long)s->addr_mismatch,
         (unsigned long long)s->offline_entries,
         (unsigned long long)s->removed_entries, b->n_failed,
         (unsigned long long)s->reg_refused, (unsigned long long)s->errors_rx,
         (unsigned long long)s->stale, (unsigned long long)s->send_errors,
         (unsigned long long)s->foreign_src, (unsigned long long)s->foreign_dst,
         (unsigned long long)s->version_overshoot);
  printf("  server memory: VmRSS %llu -> %llu (%.0f B/client), RssAnon %llu "
         "-> %llu (%.0f B/client), %u registered, %u online\n",
         (unsigned long long)rss0, (unsigned long long)rss1, per_client,
         (unsigned long long)anon0, (unsigned long long)anon1, per_client_anon,
         b->n_registered, online);
  if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
    printf("  server exit: status %d\n", wst);
  for (const char *q = strstr(logtail, "stats: "); q != NULL;
       q = strstr(q + 1, "stats: ")) {
    const char *e = strchr(q, '\n');
    printf("  server %.*s\n", (int)(e != NULL ? e - q : (long)strlen(q)), q);
  }
  if (!completed && logtail[0] != 0)
    fprintf(stderr, "--- server log (tail) ---\n%s\n", logtail);

  if (b->json_path != NULL) {
    FILE *j = fopen(b->json_path, "w");
    if (j == NULL) {
      fprintf(stderr, "bench_join: %s: %s\n", b->json_path, strerror(errno));
      return 2;
    }
    fprintf(j, "{");
    if (b->mode == 'j') {
      fprintf(j,
              "\"join\":[{\"n\":%u,\"store\":\"%s\",\"window\":%u,"
              "\"converged\":%s,\"n_converged\":%u,\"n_registered\":%u,"
              "\"register_s\":%.6f,\"converge_s\":%.6f,"
              "\"table_datagrams\":%llu,\"table_bytes\":%llu,"
              "\"page_datagrams\":%llu,\"delta_datagrams\":%llu,"
              "\"rx_datagrams\":%llu,\"rx_bytes\":%llu,"
              "\"tx_datagrams\":%llu,\"tx_bytes\":%llu,"
              "\"server_cpu_s\":%.3f,\"bench_cpu_s\":%.3f,"
              "\"walk_restarts\":%llu,\"walks_done\":%llu,"
              "\"walks_abandoned\":%llu,\"retransmits\":%llu,"
              "\"reg_restarts\":%llu,\"server_drops\":%llu,"
              "\"bench_drops\":%llu,"
              "\"decode_errors\":%llu,\"content_errors\":%llu,"
              "\"failed_clients\":%u}],",
              b->n, store_name, b->window, completed ? "true" : "false",
              b->n_converged, b->n_registered, reg_s, conv_s,
              (unsigned long long)s->table_dgrams,
              (unsigned long long)s->table_bytes,
              (unsigned long long)s->page_dgrams,
              (unsigned long long)s->delta_dgrams,
              (unsigned long long)s->rx_dgrams, (unsigned long long)s->rx_bytes,
              (unsigned long long)s->tx_dgrams, (unsigned long long)s->tx_bytes,
              cpu, my_cpu, (unsigned long long)s->walk_restarts,
              (unsigned long long)s->walks_done,
              (unsigned long long)s->walks_abandoned,
              (unsigned long long)s->retransmits,
              (unsigned long long)s->reg_restarts,
              (unsigned long long)srv_drops, (unsigned long long)s->bench_drops,
              (unsigned long long)s->decode_errors,
              (unsigned long long)content_errors, b->n_failed);
    }
    fprintf(j,
            "\"memory\":[{\"store\":\"%s\",\"registered\":%u,\"online\":%u,"
            "\"rss_before\":%llu,\"rss_after\":%llu,"
            "\"rss_anon_before\":%llu,\"rss_anon_after\":%llu,"
            "\"bytes_per_client\":%.1f,\"anon_bytes_per_client\":%.1f,"
            "\"complete\":%s,\"run_s\":%.3f,\"server_cpu_s\":%.3f}]}\n",
            store_name, b->n_registered, online, (unsigned long long)rss0,
            (unsigned long long)rss1, (unsigned long long)anon0,
            (unsigned long long)anon1, per_client, per_client_anon,
            completed && b->n_failed == 0 ? "true" : "false", conv_s, cpu);
    fclose(j);
  }
  free(b->c);
  free(b->known);
  free(b->online);
  int ok = completed && b->n_failed == 0 && s->decode_errors == 0 &&
           content_errors == 0;
  return ok ? 0 : 1;
}
