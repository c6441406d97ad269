/*
 * bench_rr.c - request/response benchmarks of the real udpchat server and
 * client over loopback, each compared with a raw UDP baseline measured in
 * the same run (issue 8; see BENCHMARKS.md and bench/run).
 *
 *   bench_rr echo [--port P]
 *       A raw UDP echo server (recvmmsg/sendmmsg, batches of up to 64,
 *       large socket buffers) on 127.0.0.1; prints
 *       "echo listening on 127.0.0.1:PORT" and serves until SIGTERM/SIGINT.
 *       The other commands start it as a separate process (fork + exec of
 *       this binary), so both sides of a comparison are process to process.
 *   bench_rr cheap|saves|p2p|all --server PATH [options]
 *       cheap  K registered raw sessions keep W HEARTBEATs each in flight;
 *              HEARTBEAT_ACKs per second over T s after a warm-up; then the
 *              same load shape against the echo process; ratio.
 *       saves  durable offline SAVEs (200-byte texts) to an offline
 *              recipient with F = 1, 8, 64 in flight in total (spread
 *              round-robin over S senders), sqlite and memory stores;
 *              rate, p50/p99 request-to-ACK (first transmissions only).
 *       p2p    a real client process (`udpchat -c`) answers CHATs from a
 *              raw peer one at a time: CHAT -> CHAT_ACK p50/p99, then the
 *              same one-at-a-time ping-pong with same-size datagrams
 *              against the echo process (interleaved in blocks); ratio.
 *       all    cheap, saves, p2p.
 *
 * Every server is `udpchat -s 0 --bind 127.0.0.1` with a fresh --data-dir
 * (under --tmp, default $TMPDIR or /tmp) or --store memory; its port is read
 * from its first stdout line, it is stopped by PID (SIGTERM, wait).
 * The wire codec is the project's (udpc_wire_encode / udpc_wire_decode).
 * `--json FILE` writes the results (schema "udpchat-bench-rr/1", units in
 * the key names and in "units"): server_binary, server_limit_options;
 *   cheap {request_bytes, reply_bytes, sessions, in_flight_per_session,
 *          rounds, warmup_s, seconds, server {rate_per_s, replies,
 *          elapsed_s, cpu_s, bench_cpu_s, sent, written_off, errors},
 *          echo {same}, ratio, server/echo_cpu_us_per_reply,
 *          cpu_ratio_echo_over_server, goal_ratio_min}
 *   saves {senders, recipients, text_bytes, load, latency, goals,
 *          runs [{store, in_flight, rate_per_s, p50_ms, p99_ms, mean_ms,
 *          acked, latency_samples, retransmissions, not_saved, elapsed_s,
 *          disk_fdatasync_per_s, disk_fdatasync_p50_ms/p99_ms}]}
 *   p2p   {text_bytes, datagram_bytes, chat_ack {p50_us, p99_us, mean_us,
 *          min_us, samples, lost}, pingpong {same}, ratio_p50, ratio_p99,
 *          goal_ratio_p50_max}
 *   server_stats {run label: the key=value statistics the server logged
 *          at exit}
 * (null for a benchmark not run). Exit status 1 when a run measured
 * nothing (a rate of 0) or failed, 2 on a bad command line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "udpchat.h"

#define BATCH 64
#define RXCAP 1536
#define MAX_CHILDREN 8
#define SAVE_LANE_BITS 7
#define SAVE_LANES_MAX (1u << SAVE_LANE_BITS)
#define BIG_QUOTA "4294967295"

/* ---- options ----------------------------------------------------------- */
typedef struct {
  const char *server;
  const char *json;
  const char *tmp;
  double seconds, warmup;
  /* cheap */
  uint32_t sessions, window, rounds;
  /* saves */
  uint32_t inflight[8];
  size_t n_inflight;
  int stores[2]; /* 1 sqlite, 2 memory */
  size_t n_stores;
  uint32_t senders, recipients, save_count, text_bytes;
  /* p2p */
  uint32_t samples, chat_bytes;
  double max_seconds;
  int no_rate_opts;
  uint16_t echo_port;
} opts;

static const char *g_self = "/proc/self/exe";
static pid_t g_children[MAX_CHILDREN];

/* ---- small utilities --------------------------------------------------- */
static void die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

static void kill_children(void) {
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (g_children[i] > 0) {
      kill(g_children[i], SIGKILL);
      waitpid(g_children[i], NULL, 0);
      g_children[i] = 0;
    }
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench_rr: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  kill_children();
  exit(1);
}

static void on_fatal_signal(int sig) {
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (g_children[i] > 0) kill(g_children[i], SIGKILL);
  signal(sig, SIG_DFL);
  raise(sig);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t sec_ns(double s) { return (uint64_t)(s * 1e9); }

static void random_bytes(void *p, size_t n) {
  uint8_t *b = p;
  while (n > 0) {
    ssize_t r = getrandom(b, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("getrandom: %s", strerror(errno));
    }
    b += r;
    n -= (size_t)r;
  }
}

static uint32_t random_u32(void) {
  uint32_t v;
  random_bytes(&v, sizeof v);
  return v;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* q-quantile (nearest rank) of sorted v[0..n), in ns; NAN when empty. */
static double quant(const uint64_t *v, size_t n, double q) {
  if (n == 0) return NAN;
  size_t i = (size_t)(q * (double)n);
  if (i >= n) i = n - 1;
  return (double)v[i];
}

static udpc_nick mknick(const char *s) {
  udpc_nick n;
  memset(&n, 0, sizeof n);
  n.len = (uint8_t)strlen(s);
  memcpy(n.s, s, n.len);
  return n;
}

/* CPU seconds (user + system) a process has used, from /proc; -1 if gone. */
static double proc_cpu_s(pid_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* comm may hold spaces */
  if (p == NULL) return -1;
  unsigned long long ut = 0, st = 0;
  /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
   * majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds (user + system) of this process so far. */
static double self_cpu_s(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void rm_tree(const char *path) {
  nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_tmpdir(const opts *o, const char *tag, char *out, size_t cap) {
  snprintf(out, cap, "%s/bench-rr-%s-XXXXXX", o->tmp, tag);
  if (mkdtemp(out) == NULL) die("mkdtemp %s: %s", out, strerror(errno));
}

/* ---- sockets ------------------------------------------------------------ */
static void set_bufs(int fd, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

static struct sockaddr_in loopback(uint16_t port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

/* A non-blocking UDP socket on 127.0.0.1:port; connected to *peer if given. */
static int udp_socket(uint16_t port, int bufbytes,
                      const struct sockaddr_in *peer) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: %s", strerror(errno));
  set_bufs(fd, bufbytes);
  struct sockaddr_in a = loopback(port);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
    die("bind: %s", strerror(errno));
  if (peer != NULL &&
      connect(fd, (const struct sockaddr *)peer, sizeof *peer) != 0)
    die("connect: %s", strerror(errno));
  return fd;
}

static uint16_t sock_port(int fd) {
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &l) != 0)
    die("getsockname: %s", strerror(errno));
  return ntohs(a.sin_port);
}

/* ---- child processes --------------------------------------------------- */
static void track_child(pid_t pid) {
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (g_children[i] == 0) {
      g_children[i] = pid;
      return;
    }
}

static void untrack_child(pid_t pid) {
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (g_children[i] == pid) g_children[i] = 0;
}

/* fork + exec argv; its stdout is a pipe (*out_fd), and its stdin too when
 * in_fd != NULL (else /dev/null). stderr is inherited. */
static pid_t spawn(char *const argv[], int *in_fd, int *out_fd) {
  int op[2], ip[2] = {-1, -1};
  if (pipe2(op, O_CLOEXEC) != 0) die("pipe: %s", strerror(errno));
  if (in_fd != NULL && pipe2(ip, O_CLOEXEC) != 0)
    die("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(op[1], 1);
    if (in_fd != NULL) {
      dup2(ip[0], 0);
    } else {
      int nul = open("/dev/null", O_RDONLY);
      if (nul >= 0) dup2(nul, 0);
    }
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], argv);
    fprintf(stderr, "bench_rr: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(op[1]);
  *out_fd = op[0];
  if (in_fd != NULL) {
    close(ip[0]);
    *in_fd = ip[1];
  }
  track_child(pid);
  return pid;
}

/* One line from fd (without '\n'), waiting at most timeout_ms in total. */
static int read_line(int fd, char *buf, size_t cap, int timeout_ms) {
  size_t n = 0;
  uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
  while (n + 1 < cap) {
    uint64_t t = now_ns();
    if (t >= end) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)((end - t) / 1000000u) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    char c;
    ssize_t k = read(fd, &c, 1);
    if (k <= 0) return -1;
    if (c == '\n') break;
    buf[n++] = c;
  }
  buf[n] = '\0';
  return 0;
}

/* The port after the last ':' of "... [addr]:port" / "... addr:port". */
static uint16_t parse_port(const char *line) {
  const char *c = strrchr(line, ':');
  if (c == NULL) return 0;
  long v = strtol(c + 1, NULL, 10);
  return v > 0 && v < 65536 ? (uint16_t)v : 0;
}

/* SIGTERM (or sig), wait up to 5 s, then SIGKILL. Returns the wait status. */
static int stop_child(pid_t pid, int sig) {
  int st = 0;
  if (pid <= 0) return 0;
  kill(pid, sig);
  for (int i = 0; i < 500; i++) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      untrack_child(pid);
      return st;
    }
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  untrack_child(pid);
  return st;
}

/* ---- the echo process -------------------------------------------------- */
static volatile sig_atomic_t g_echo_stop;
static void on_echo_stop(int sig) {
  (void)sig;
  g_echo_stop = 1;
}

static int cmd_echo(uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: %s", strerror(errno));
  set_bufs(fd, 8 << 20);
  struct sockaddr_in a = loopback(port);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
    die("bind: %s", strerror(errno));
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_echo_stop; /* no SA_RESTART: recvmmsg returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  printf("echo listening on 127.0.0.1:%u\n", (unsigned)sock_port(fd));
  fflush(stdout);
  static uint8_t bufs[BATCH][RXCAP];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in from[BATCH];
  uint64_t echoed = 0;
  while (!g_echo_stop) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = RXCAP;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("recvmmsg: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
    int off = 0;
    while (off < n) {
      int s = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
      if (s < 0) {
        if (errno == EINTR) continue;
        break; /* e.g. ENOBUFS: drop the rest, like a busy server */
      }
      off += s;
    }
    echoed += (uint64_t)n;
  }
  close(fd);
  (void)echoed;
  return 0;
}

typedef struct {
  pid_t pid;
  int out_fd;
  uint16_t port;
} echo_proc;

static void echo_start(echo_proc *e) {
  char *argv[] = {(char *)g_self, (char *)"echo", NULL};
  e->pid = spawn(argv, NULL, &e->out_fd);
  char line[256];
  if (read_line(e->out_fd, line, sizeof line, 5000) != 0)
    die("the echo process did not report its port");
  e->port = parse_port(line);
  if (e->port == 0) die("cannot parse the echo port from '%s'", line);
}

static void echo_stop(echo_proc *e) {
  stop_child(e->pid, SIGTERM);
  close(e->out_fd);
  e->pid = 0;
}

/* ---- the server process ------------------------------------------------ */
typedef struct {
  pid_t pid;
  int out_fd;
  uint16_t port;
  struct sockaddr_in addr;
  char dir[4096]; /* data dir, "" for --store memory */
  char logdir[4096], logfile[4200];
} server_proc;

/* The statistics a server logs when it stops ("stats: key=value ..." lines
 * at level info), kept per server run for the JSON. */
#define STATS_MAX 64
typedef struct {
  char label[32];
  size_t n;
  char key[STATS_MAX][40];
  unsigned long long val[STATS_MAX];
} server_stats;
static server_stats g_stats[24];
static size_t g_n_stats;

static void collect_stats(const char *logfile, const char *label) {
  if (g_n_stats >= sizeof g_stats / sizeof g_stats[0]) return;
  FILE *f = fopen(logfile, "r");
  if (f == NULL) return;
  server_stats *st = &g_stats[g_n_stats++];
  memset(st, 0, sizeof *st);
  snprintf(st->label, sizeof st->label, "%s", label);
  char line[2048];
  while (fgets(line, sizeof line, f) != NULL) {
    char *p = strstr(line, "stats: ");
    if (p == NULL) continue;
    /* tokens "key=number"; others (e.g. "io") are skipped */
    char *save = NULL;
    for (char *tok = strtok_r(p + 7, " \n", &save); tok != NULL;
         tok = strtok_r(NULL, " \n", &save)) {
      char *eq = strchr(tok, '=');
      if (eq == NULL || eq == tok) continue;
      char *end;
      unsigned long long v = strtoull(eq + 1, &end, 10);
      size_t kl = (size_t)(eq - tok);
      if (end == eq + 1 || *end != '\0' || kl >= sizeof st->key[0] ||
          st->n >= STATS_MAX)
        continue;
      memcpy(st->key[st->n], tok, kl);
      st->key[st->n][kl] = '\0';
      st->val[st->n++] = v;
    }
  }
  fclose(f);
}

static char g_rate_opts[128]; /* extra server options, "" if none */
static int g_rate_checked;

/* Does this server binary take --session-rate (another engineer's option)?
 * If so, lift the per-session limit for the bench and say so. */
static void check_rate_opts(const opts *o) {
  if (g_rate_checked) return;
  g_rate_checked = 1;
  g_rate_opts[0] = '\0';
  if (o->no_rate_opts) return;
  char *argv[] = {(char *)o->server, (char *)"--help", NULL};
  int fd;
  pid_t pid = spawn(argv, NULL, &fd);
  char buf[16384];
  size_t n = 0;
  for (;;) {
    ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    n += (size_t)k;
    if (n + 1 >= sizeof buf) break;
  }
  buf[n] = '\0';
  close(fd);
  int st;
  waitpid(pid, &st, 0);
  untrack_child(pid);
  if (strstr(buf, "--session-rate") != NULL)
    snprintf(g_rate_opts, sizeof g_rate_opts, "--session-rate %s",
             strstr(buf, "unlimited") != NULL ? "unlimited" : "4294967295");
}

/* store: 1 sqlite (fresh --data-dir), 2 memory. extra: NULL-ended. */
static void server_start(server_proc *sp, const opts *o, int store,
                         const char *const *extra) {
  check_rate_opts(o);
  char *argv[32];
  size_t n = 0;
  argv[n++] = (char *)o->server;
  argv[n++] = (char *)"-s";
  argv[n++] = (char *)"0";
  argv[n++] = (char *)"--bind";
  argv[n++] = (char *)"127.0.0.1";
  /* info: the statistics it logs at exit; to a file */
  make_tmpdir(o, "log", sp->logdir, sizeof sp->logdir);
  snprintf(sp->logfile, sizeof sp->logfile, "%s/server.log", sp->logdir);
  argv[n++] = (char *)"--log-level";
  argv[n++] = (char *)"info";
  argv[n++] = (char *)"--log-file";
  argv[n++] = sp->logfile;
  sp->dir[0] = '\0';
  if (store == 2) {
    argv[n++] = (char *)"--store";
    argv[n++] = (char *)"memory";
  } else {
    make_tmpdir(o, "srv", sp->dir, sizeof sp->dir);
    argv[n++] = (char *)"--data-dir";
    argv[n++] = sp->dir;
  }
  static char rate_name[64], rate_val[64];
  if (g_rate_opts[0] != '\0') {
    sscanf(g_rate_opts, "%63s %63s", rate_name, rate_val);
    argv[n++] = rate_name;
    argv[n++] = rate_val;
  }
  for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 30; i++)
    argv[n++] = (char *)extra[i];
  argv[n] = NULL;
  sp->pid = spawn(argv, NULL, &sp->out_fd);
  char line[512];
  if (read_line(sp->out_fd, line, sizeof line, 20000) != 0)
    die("the server did not report its port (is %s a udpchat binary?)",
        o->server);
  sp->port = parse_port(line);
  if (sp->port == 0) die("cannot parse the server port from '%s'", line);
  sp->addr = loopback(sp->port);
}

static void server_stop(server_proc *sp, const char *label) {
  int st = stop_child(sp->pid, SIGTERM);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    fprintf(stderr, "bench_rr: warning: server exit status %d; its log:\n", st);
    FILE *f = fopen(sp->logfile, "r");
    char line[1024];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
      fputs(line, stderr);
    if (f != NULL) fclose(f);
  }
  collect_stats(sp->logfile, label);
  close(sp->out_fd);
  if (sp->dir[0] != '\0') rm_tree(sp->dir);
  rm_tree(sp->logdir);
  sp->pid = 0;
}

/* ---- raw protocol sessions --------------------------------------------- */
typedef struct {
  int fd;
  int connected;
  struct sockaddr_in srv;
  uint64_t token;
  uint32_t next_id;
  udpc_nick nick;
  uint8_t cred[UDPC_CRED_LEN];
  int reg_state; /* 0 to send, 1 waiting, 2 done */
  uint32_t reg_id;
  uint8_t cookie[UDPC_COOKIE_MAX];
  uint8_t cookie_len;
  uint64_t reg_sent;
  /* cheap load */
  uint32_t inflight, valid_from;
  uint64_t last_progress;
  uint8_t hb[32];
  size_t hb_len;
} rsess;

static void sess_open(rsess *s, const char *nick, const struct sockaddr_in *srv,
                      int connect_it, int bufbytes) {
  memset(s, 0, sizeof *s);
  s->srv = *srv;
  s->connected = connect_it;
  s->fd = udp_socket(0, bufbytes, connect_it ? srv : NULL);
  s->nick = mknick(nick);
  random_bytes(s->cred, sizeof s->cred);
  s->next_id = random_u32();
}

static void sess_close(rsess *s) {
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
}

static int send_raw(int fd, const struct sockaddr_in *to, const uint8_t *b,
                    size_t len) {
  ssize_t r = to != NULL ? sendto(fd, b, len, 0, (const struct sockaddr *)to,
                                  sizeof *to)
                         : send(fd, b, len, 0);
  return r == (ssize_t)len ? 0 : -1;
}

static int encode(const udpc_packet *p, uint8_t *buf, size_t cap) {
  int n = udpc_wire_encode(p, buf, cap);
  if (n <= 0)
    die("udpc_wire_encode(%s): %s", udpc_ptype_name(p->type), udpc_strerror(n));
  return n;
}

static void sess_send(rsess *s, const udpc_packet *p) {
  uint8_t b[UDPC_MAX_PACKET];
  int n = encode(p, b, sizeof b);
  (void)send_raw(s->fd, s->connected ? NULL : &s->srv, b, (size_t)n);
}

static void send_register(rsess *s) {
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_REGISTER;
  p.id = s->reg_id;
  p.u.reg.cookie_len = s->cookie_len;
  memcpy(p.u.reg.cookie, s->cookie, s->cookie_len);
  p.u.reg.nick = s->nick;
  memcpy(p.u.reg.credential, s->cred, UDPC_CRED_LEN);
  sess_send(s, &p);
  s->reg_sent = now_ns();
  s->reg_state = 1;
}

static void tokened(udpc_packet *p, rsess *s, int type) {
  memset(p, 0, sizeof *p);
  p->type = (uint8_t)type;
  p->id = s->next_id++;
  p->token = s->token;
}

/* Cookie round trip + REGISTER for every session, all at once (each has
 * its own source port, so the per-source limit of 50/s is no concern).
 * Datagrams that are not answers to the registration (TABLE_DELTA...) are
 * dropped. Dies after timeout_s. */
static void register_all(rsess *ss, size_t n, double timeout_s) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = 0; i < n; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, ss[i].fd, &ev);
    ss[i].reg_state = 0;
    ss[i].cookie_len = 0;
  }
  size_t done = 0, next_send = 0;
  uint64_t end = now_ns() + sec_ns(timeout_s);
  uint8_t buf[RXCAP];
  struct epoll_event evs[64];
  size_t waiting = 0;
  while (done < n) {
    uint64_t t = now_ns();
    if (t > end)
      die("registration timed out: %zu of %zu sessions registered", done, n);
    /* at most 512 registrations in progress at once */
    while (next_send < n && waiting < 512) {
      ss[next_send].reg_id = ss[next_send].next_id++;
      send_register(&ss[next_send]);
      next_send++;
      waiting++;
    }
    int k = epoll_wait(ep, evs, 64, 20);
    for (int e = 0; e < k; e++) {
      rsess *s = &ss[evs[e].data.u64];
      for (;;) {
        ssize_t r = recv(s->fd, buf, sizeof buf, 0);
        if (r < 0) break;
        udpc_packet p;
        if (udpc_wire_decode(&p, buf, (size_t)r) != UDPC_OK) continue;
        if (s->reg_state != 1 || p.id != s->reg_id) continue;
        if (p.type == UDPC_PT_COOKIE) {
          s->cookie_len = p.u.cookie.cookie_len;
          memcpy(s->cookie, p.u.cookie.cookie, s->cookie_len);
          s->reg_id = s->next_id++;
          send_register(s);
        } else if (p.type == UDPC_PT_REGISTER_RESULT) {
          if (p.u.reg_result.status != UDPC_REG_OK)
            die("REGISTER %s refused: status %u", s->nick.s,
                (unsigned)p.u.reg_result.status);
          s->token = p.u.reg_result.token;
          s->reg_state = 2;
          done++;
          waiting--;
        }
      }
    }
    t = now_ns();
    for (size_t i = 0; i < next_send; i++)
      if (ss[i].reg_state == 1 && t - ss[i].reg_sent > 500000000u)
        send_register(&ss[i]);
  }
  close(ep);
}

/* Wait for a reply of type `want` (or ERROR) to id on s; resend `req`
 * every 500 ms; die after 10 s. Returns the reply in *out. */
static void request(rsess *s, const udpc_packet *req, int want,
                    udpc_packet *out, uint8_t *keep, size_t keep_cap) {
  uint8_t b[UDPC_MAX_PACKET];
  int len = encode(req, b, sizeof b);
  uint64_t end = now_ns() + sec_ns(10), last = 0;
  for (;;) {
    uint64_t t = now_ns();
    if (t > end) die("no %s from the server", udpc_ptype_name(want));
    if (t - last > 500000000u) {
      (void)send_raw(s->fd, s->connected ? NULL : &s->srv, b, (size_t)len);
      last = t;
    }
    struct pollfd pf = {.fd = s->fd, .events = POLLIN};
    if (poll(&pf, 1, 50) <= 0) continue;
    ssize_t r;
    while ((r = recv(s->fd, keep, keep_cap, 0)) >= 0) {
      if (udpc_wire_decode(out, keep, (size_t)r) != UDPC_OK) continue;
      if (out->id != req->id) continue;
      if (out->type == UDPC_PT_ERROR)
        die("%s answered by ERROR %u", udpc_ptype_name(req->type),
            (unsigned)out->u.error.code);
      if (out->type == want) return;
    }
  }
}

/* DEREG every session at once; resend every 500 ms; die after 30 s. */
static void dereg_all(rsess *ss, size_t n) {
  uint32_t *ids = calloc(n, sizeof *ids);
  uint8_t *done = calloc(n, 1);
  if (ids == NULL || done == NULL) die("out of memory");
  size_t left = n;
  uint64_t end = now_ns() + sec_ns(30), last = 0;
  uint8_t buf[RXCAP];
  while (left > 0) {
    uint64_t t = now_ns();
    if (t > end) die("DEREG timed out (%zu of %zu left)", left, n);
    if (t - last > 500000000u) {
      for (size_t i = 0; i < n; i++)
        if (!done[i]) {
          udpc_packet p;
          if (ids[i] == 0) {
            tokened(&p, &ss[i], UDPC_PT_DEREG);
            ids[i] = p.id;
          } else {
            tokened(&p, &ss[i], UDPC_PT_DEREG);
            p.id = ids[i]; /* a retransmission keeps its id */
          }
          sess_send(&ss[i], &p);
        }
      last = t;
    }
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    for (size_t i = 0; i < n; i++) {
      ssize_t r;
      while (!done[i] && (r = recv(ss[i].fd, buf, sizeof buf, 0)) >= 0) {
        udpc_packet p;
        if (udpc_wire_decode(&p, buf, (size_t)r) != UDPC_OK) continue;
        if (p.id != ids[i]) continue;
        if (p.type == UDPC_PT_DEREG_RESULT &&
            p.u.dereg_result.status == UDPC_DEREG_OK) {
          done[i] = 1;
          left--;
        } else if (p.type == UDPC_PT_ERROR || p.type == UDPC_PT_DEREG_RESULT) {
          die("DEREG of %s refused", ss[i].nick.s);
        }
      }
    }
  }
  free(ids);
  free(done);
}

static void heartbeat_once(rsess *s) {
  udpc_packet p;
  tokened(&p, s, UDPC_PT_HEARTBEAT);
  sess_send(s, &p);
}

/* ---- cheap: HEARTBEAT rate vs echo -------------------------------------- */
typedef struct {
  uint64_t replies; /* counted in the window */
  double elapsed_s, rate, cpu_s, gen_cpu_s;
  uint64_t lost, errors, sent;
} rate_result;

static void set_id(uint8_t *pkt, uint32_t id) {
  pkt[2] = (uint8_t)(id >> 24);
  pkt[3] = (uint8_t)(id >> 16);
  pkt[4] = (uint8_t)(id >> 8);
  pkt[5] = (uint8_t)id;
}

/* Send `count` HEARTBEATs (ids next_id...) on s in one sendmmsg. */
static void hb_burst(rsess *s, uint32_t count, uint64_t *sent) {
  uint8_t pk[BATCH][32];
  struct iovec iov[BATCH];
  struct mmsghdr m[BATCH];
  while (count > 0) {
    uint32_t c = count > BATCH ? BATCH : count;
    for (uint32_t i = 0; i < c; i++) {
      memcpy(pk[i], s->hb, s->hb_len);
      set_id(pk[i], s->next_id++);
      iov[i].iov_base = pk[i];
      iov[i].iov_len = s->hb_len;
      memset(&m[i], 0, sizeof m[i]);
      m[i].msg_hdr.msg_iov = &iov[i];
      m[i].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(s->fd, m, c, 0);
    if (r > 0) *sent += (uint64_t)r;
    /* unsent ones count as lost: they are in inflight, recovered later */
    count -= c;
  }
}

/* Drive the sessions (sockets connected to the target) with W heartbeats
 * each in flight. reply_type: HEARTBEAT_ACK (server) or HEARTBEAT (echo). */
static void cheap_drive(rsess *ss, size_t k, uint32_t w, double warmup,
                        double secs, int reply_type, pid_t target,
                        rate_result *res) {
  memset(res, 0, sizeof *res);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < k; i++) {
    rsess *s = &ss[i];
    udpc_packet p;
    tokened(&p, s, UDPC_PT_HEARTBEAT);
    s->next_id--; /* the template's id is patched per datagram */
    s->hb_len = (size_t)encode(&p, s->hb, sizeof s->hb);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
    /* drain whatever is queued (table deltas of the registrations) */
    uint8_t junk[RXCAP];
    while (recv(s->fd, junk, sizeof junk, 0) >= 0) {
    }
    s->valid_from = s->next_id;
    s->inflight = w;
    s->last_progress = t0;
    hb_burst(s, w, &res->sent);
  }
  uint64_t t_start = t0 + sec_ns(warmup), t_end = t_start + sec_ns(secs);
  uint64_t count = 0, c_start = 0, last_scan = t0;
  uint64_t real_start = 0, real_end = 0;
  double cpu0 = 0, gcpu0 = 0;
  int started = 0;
  static uint8_t bufs[BATCH][RXCAP];
  struct mmsghdr m[BATCH];
  struct iovec iov[BATCH];
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, 5);
    for (int e = 0; e < n; e++) {
      rsess *s = &ss[evs[e].data.u64];
      for (;;) {
        for (int i = 0; i < BATCH; i++) {
          iov[i].iov_base = bufs[i];
          iov[i].iov_len = RXCAP;
          memset(&m[i], 0, sizeof m[i]);
          m[i].msg_hdr.msg_iov = &iov[i];
          m[i].msg_hdr.msg_iovlen = 1;
        }
        int r = recvmmsg(s->fd, m, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0) break;
        uint32_t done = 0;
        for (int i = 0; i < r; i++) {
          udpc_packet p;
          if (udpc_wire_decode(&p, bufs[i], m[i].msg_len) != UDPC_OK) continue;
          if (p.type == UDPC_PT_ERROR) {
            res->errors++;
            continue;
          }
          if (p.type != reply_type || p.token != s->token) continue;
          if ((uint32_t)(p.id - s->valid_from) >=
              (uint32_t)(s->next_id - s->valid_from))
            continue; /* late reply of a batch already written off */
          done++;
        }
        if (done > 0) {
          if (done > s->inflight) done = s->inflight;
          count += done; /* each completed one is replaced at once */
          s->last_progress = now_ns();
          hb_burst(s, done, &res->sent);
        }
        if (r < BATCH) break;
      }
    }
    uint64_t t = now_ns();
    if (!started && t >= t_start) {
      started = 1;
      c_start = count;
      real_start = t;
      cpu0 = proc_cpu_s(target);
      gcpu0 = self_cpu_s();
    }
    if (started && t >= t_end) {
      real_end = t;
      res->replies = count - c_start;
      double cpu1 = proc_cpu_s(target);
      res->cpu_s = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : NAN;
      res->gen_cpu_s = self_cpu_s() - gcpu0;
      break;
    }
    if (t - last_scan > 50000000u) { /* write off stalled sessions */
      last_scan = t;
      for (size_t i = 0; i < k; i++) {
        rsess *s = &ss[i];
        if (t - s->last_progress > 200000000u) {
          res->lost += s->inflight;
          s->valid_from = s->next_id;
          s->inflight = w;
          s->last_progress = t;
          hb_burst(s, w, &res->sent);
        }
      }
    }
  }
  close(ep);
  res->elapsed_s = (double)(real_end - real_start) / 1e9;
  res->rate = res->elapsed_s > 0 ? (double)res->replies / res->elapsed_s : 0;
}

typedef struct {
  int ran;
  uint32_t sessions, window, rounds;
  double warmup, seconds;
  size_t req_bytes, reply_bytes;
  rate_result server, echo;
  double ratio;
  double server_us, echo_us, cpu_ratio; /* CPU time per reply */
} cheap_result;

static void rate_add(rate_result *sum, const rate_result *r) {
  sum->replies += r->replies;
  sum->elapsed_s += r->elapsed_s;
  sum->cpu_s += r->cpu_s;
  sum->gen_cpu_s += r->gen_cpu_s;
  sum->lost += r->lost;
  sum->errors += r->errors;
  sum->sent += r->sent;
  sum->rate = sum->elapsed_s > 0 ? (double)sum->replies / sum->elapsed_s : 0;
}

/* The server and the echo process run side by side; the load alternates
 * between them in `rounds` rounds (warm-up + seconds/rounds each), so both
 * see the same machine (the machine may be shared: other load shows in the
 * CPU shares, and the CPU time per reply is reported too). */
static void run_cheap(const opts *o, cheap_result *cr) {
  memset(cr, 0, sizeof *cr);
  size_t k = o->sessions;
  rsess *ss = calloc(k, sizeof *ss), *es = calloc(k, sizeof *es);
  if (ss == NULL || es == NULL) die("out of memory");
  server_proc sp;
  server_start(&sp, o, 1, NULL);
  for (size_t i = 0; i < k; i++) {
    char nick[32];
    snprintf(nick, sizeof nick, "hb%zu", i);
    sess_open(&ss[i], nick, &sp.addr, 1, 1 << 18);
  }
  register_all(ss, k, 60);
  echo_proc ep;
  echo_start(&ep);
  struct sockaddr_in ea = loopback(ep.port);
  for (size_t i = 0; i < k; i++) {
    sess_open(&es[i], ss[i].nick.s, &ea, 1, 1 << 18);
    es[i].token = ss[i].token; /* the same bytes as to the server */
  }
  printf("cheap: %zu sessions registered, %u HEARTBEATs in flight each, %u "
         "rounds\n",
         k, o->window, o->rounds);
  fflush(stdout);
  double per = o->seconds / o->rounds;
  for (uint32_t r = 0; r < o->rounds; r++) {
    rate_result a, b;
    cheap_drive(ss, k, o->window, o->warmup, per, UDPC_PT_HEARTBEAT_ACK, sp.pid,
                &a);
    cheap_drive(es, k, o->window, o->warmup, per, UDPC_PT_HEARTBEAT, ep.pid,
                &b);
    rate_add(&cr->server, &a);
    rate_add(&cr->echo, &b);
  }
  echo_stop(&ep);
  server_stop(&sp, "cheap");
  for (size_t i = 0; i < k; i++) {
    sess_close(&ss[i]);
    sess_close(&es[i]);
  }
  free(ss);
  free(es);
  cr->ran = 1;
  cr->sessions = o->sessions;
  cr->window = o->window;
  cr->rounds = o->rounds;
  cr->warmup = o->warmup;
  cr->seconds = o->seconds;
  cr->req_bytes = 14;
  cr->reply_bytes = 22;
  cr->ratio = cr->echo.rate > 0 ? cr->server.rate / cr->echo.rate : NAN;
  cr->server_us = 1e6 * cr->server.cpu_s / (double)cr->server.replies;
  cr->echo_us = 1e6 * cr->echo.cpu_s / (double)cr->echo.replies;
  cr->cpu_ratio = cr->echo_us / cr->server_us;
  printf("cheap: server %.0f HEARTBEAT_ACK/s (server cpu %.0f%%, bench cpu "
         "%.0f%%), echo %.0f/s (echo cpu %.0f%%, bench cpu %.0f%%), ratio "
         "%.3f (goal >= 0.60)\n",
         cr->server.rate, 100 * cr->server.cpu_s / cr->server.elapsed_s,
         100 * cr->server.gen_cpu_s / cr->server.elapsed_s, cr->echo.rate,
         100 * cr->echo.cpu_s / cr->echo.elapsed_s,
         100 * cr->echo.gen_cpu_s / cr->echo.elapsed_s, cr->ratio);
  printf("cheap: CPU per reply: server %.2f us, echo %.2f us: echo/server "
         "%.3f\n",
         cr->server_us, cr->echo_us, cr->cpu_ratio);
  fflush(stdout);
}

/* ---- saves -------------------------------------------------------------- */
typedef struct {
  int active;
  uint32_t id;
  size_t sender;
  uint64_t first, sent;
  int retrans;
  uint8_t pkt[UDPC_MAX_PACKET];
  size_t len;
} lane;

typedef struct {
  int store; /* 1 sqlite, 2 memory */
  uint32_t inflight;
  uint64_t acked, samples, retrans, not_saved;
  double elapsed_s, rate, p50_ms, p99_ms, mean_ms;
  /* the disk right before the run (sqlite): 4 KiB write + fdatasync */
  double fsync_rate, fsync_p50_ms, fsync_p99_ms;
} save_run;

/* The disk baseline of a durable run, measured in the same run on the same
 * directory: 4 KiB pwrite (over a preallocated 256 KiB) + fdatasync in a
 * loop for `secs`. The machine may
 * be shared; this shows what one durable commit cost at that moment. */
static void fsync_probe(const char *dir, double secs, double *rate,
                        double *p50_ms, double *p99_ms) {
  char path[4200];
  snprintf(path, sizeof path, "%s/fsync-probe", dir);
  *rate = *p50_ms = *p99_ms = NAN;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  static uint8_t page[4096];
  memset(page, 'f', sizeof page);
  /* overwrite a preallocated region, as a WAL that is reused does: an
   * extending write would also pay for a metadata (journal) commit */
  for (size_t i = 0; i < 64; i++)
    if (pwrite(fd, page, sizeof page, (off_t)(i * sizeof page)) !=
        (ssize_t)sizeof page)
      break;
  (void)fsync(fd);
  size_t cap = 1 << 16, n = 0;
  uint64_t *lat = malloc(cap * sizeof *lat);
  uint64_t t0 = now_ns(), end = t0 + sec_ns(secs), t = t0;
  while (lat != NULL && n < cap && (t = now_ns()) < end) {
    off_t off = (off_t)((n % 64) * sizeof page);
    if (pwrite(fd, page, sizeof page, off) != (ssize_t)sizeof page) break;
    if (fdatasync(fd) != 0) break;
    uint64_t t1 = now_ns();
    lat[n++] = t1 - t;
  }
  close(fd);
  unlink(path);
  if (lat != NULL && n > 0) {
    qsort(lat, n, sizeof *lat, cmp_u64);
    *rate = (double)n / ((double)(now_ns() - t0) / 1e9);
    *p50_ms = quant(lat, n, 0.5) / 1e6;
    *p99_ms = quant(lat, n, 0.99) / 1e6;
  }
  free(lat);
}

typedef struct {
  int ran;
  uint32_t senders, recipients, text_bytes;
  size_t n_runs;
  save_run runs[16];
} saves_result;

static uint32_t g_save_counter = 1;

static void save_issue(lane *l, size_t li, rsess *ss, size_t n_send, size_t *rr,
                       const udpc_nick *to, size_t n_to, const uint8_t *text,
                       uint16_t text_len) {
  size_t si = *rr % n_send;
  const udpc_nick *rcpt = &to[*rr % n_to];
  (*rr)++;
  rsess *s = &ss[si];
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_SAVE;
  p.id = (g_save_counter++ << SAVE_LANE_BITS) | (uint32_t)li;
  p.token = s->token;
  p.u.save.to = *rcpt;
  p.u.save.msg_id = p.id;
  p.u.save.text.p = text;
  p.u.save.text.len = text_len;
  l->len = (size_t)encode(&p, l->pkt, sizeof l->pkt);
  l->active = 1;
  l->id = p.id;
  l->sender = si;
  l->retrans = 0;
  l->first = l->sent = now_ns();
  (void)send_raw(s->fd, NULL, l->pkt, l->len);
}

static void saves_phase(const opts *o, rsess *ss, size_t n_send,
                        const udpc_nick *to, size_t n_to, int store, uint32_t f,
                        save_run *out) {
  memset(out, 0, sizeof *out);
  out->store = store;
  out->inflight = f;
  lane *lanes = calloc(f, sizeof *lanes);
  size_t lat_cap = 1 << 20, n_lat = 0;
  uint64_t *lat = malloc(lat_cap * sizeof *lat);
  if (lanes == NULL || lat == NULL) die("out of memory");
  uint8_t text[UDPC_TEXT_MAX];
  memset(text, 'x', sizeof text);
  uint16_t tl = (uint16_t)o->text_bytes;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = 0; i < n_send; i++) {
    uint8_t junk[RXCAP];
    while (recv(ss[i].fd, junk, sizeof junk, 0) >= 0) {
    }
    heartbeat_once(&ss[i]); /* keep every session alive (R75) */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, ss[i].fd, &ev);
  }
  size_t rr = 0;
  for (uint32_t i = 0; i < f; i++)
    save_issue(&lanes[i], i, ss, n_send, &rr, to, n_to, text, tl);
  int counted = o->save_count > 0; /* a fixed number instead of a time */
  uint64_t t0 = now_ns();
  uint64_t t_start = counted ? t0 : t0 + sec_ns(o->warmup);
  uint64_t t_end = t_start + sec_ns(counted ? 60 : o->seconds);
  uint64_t real_start = counted ? t0 : 0, last_scan = t0;
  int started = counted;
  uint8_t buf[RXCAP];
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, 5);
    for (int e = 0; e < n; e++) {
      size_t si = evs[e].data.u64;
      rsess *s = &ss[si];
      ssize_t r;
      while ((r = recv(s->fd, buf, sizeof buf, 0)) >= 0) {
        udpc_packet p;
        if (udpc_wire_decode(&p, buf, (size_t)r) != UDPC_OK) continue;
        if (p.type == UDPC_PT_ERROR)
          die("SAVE answered by ERROR %u", (unsigned)p.u.error.code);
        if (p.type != UDPC_PT_SAVE_RESULT) continue;
        size_t li = p.id & (SAVE_LANES_MAX - 1);
        if (li >= f) continue;
        lane *l = &lanes[li];
        if (!l->active || l->id != p.id || l->sender != si) continue;
        uint64_t t = now_ns();
        if (started && t < t_end) {
          if (p.u.save_result.status == UDPC_SAVE_SAVED) {
            out->acked++;
            if (!l->retrans) {
              if (n_lat == lat_cap) {
                lat_cap *= 2;
                lat = realloc(lat, lat_cap * sizeof *lat);
                if (lat == NULL) die("out of memory");
              }
              lat[n_lat++] = t - l->first;
            }
          } else {
            out->not_saved++;
          }
        }
        l->active = 0;
        save_issue(l, li, ss, n_send, &rr, to, n_to, text, tl);
      }
    }
    uint64_t t = now_ns();
    if (!started && t >= t_start) {
      started = 1;
      real_start = t;
    }
    if (started && (t >= t_end || (counted && out->acked >= o->save_count))) {
      out->elapsed_s = (double)(t - real_start) / 1e9;
      break;
    }
    if (t - last_scan > 50000000u) {
      last_scan = t;
      for (uint32_t i = 0; i < f; i++) {
        lane *l = &lanes[i];
        if (l->active && t - l->sent > 1000000000u) {
          l->retrans = 1;
          l->sent = t;
          out->retrans++;
          (void)send_raw(ss[l->sender].fd, NULL, l->pkt, l->len);
        }
      }
    }
  }
  close(ep);
  qsort(lat, n_lat, sizeof *lat, cmp_u64);
  double sum = 0;
  for (size_t i = 0; i < n_lat; i++) sum += (double)lat[i];
  out->samples = n_lat;
  out->rate = out->elapsed_s > 0 ? (double)out->acked / out->elapsed_s : 0;
  out->p50_ms = quant(lat, n_lat, 0.50) / 1e6;
  out->p99_ms = quant(lat, n_lat, 0.99) / 1e6;
  out->mean_ms = n_lat ? sum / (double)n_lat / 1e6 : NAN;
  free(lat);
  free(lanes);
  printf("saves: %-6s %3u in flight: %9.0f SAVEs/s  p50 %7.3f ms  p99 %7.3f "
         "ms  (%llu acked, %llu retransmissions, %llu not SAVED)\n",
         store == 2 ? "memory" : "sqlite", f, out->rate, out->p50_ms,
         out->p99_ms, (unsigned long long)out->acked,
         (unsigned long long)out->retrans, (unsigned long long)out->not_saved);
  fflush(stdout);
}

static void run_saves(const opts *o, saves_result *res) {
  memset(res, 0, sizeof *res);
  static const char *const quota[] = {"--mail-per-recipient", BIG_QUOTA,
                                      "--mail-total", BIG_QUOTA, NULL};
  size_t n_send = o->senders, n_to = o->recipients;
  rsess *ss = calloc(n_send > 256 ? n_send : 256, sizeof *ss);
  udpc_nick *to = calloc(n_to, sizeof *to);
  if (ss == NULL || to == NULL) die("out of memory");
  for (size_t i = 0; i < n_to; i++) {
    char nick[32];
    snprintf(nick, sizeof nick, "rc%zu", i);
    to[i] = mknick(nick);
  }
  /* a fresh server (and database) per store and number in flight, so that
   * each run starts from the same state and its exit statistics are its
   * own (plus the set-up: the registrations) */
  for (size_t ri = 0; ri < o->n_stores * o->n_inflight && res->n_runs < 16;
       ri++) {
    int store = o->stores[ri / o->n_inflight];
    uint32_t f = o->inflight[ri % o->n_inflight];
    server_proc sp;
    server_start(&sp, o, store, quota);
    /* the recipients: registered, then DEREG'd (offline: every SAVE is
     * stored, no probe), 256 at a time (one socket each) */
    for (size_t i0 = 0; i0 < n_to; i0 += 256) {
      size_t m = n_to - i0 < 256 ? n_to - i0 : 256;
      for (size_t i = 0; i < m; i++)
        sess_open(&ss[i], to[i0 + i].s, &sp.addr, 1, 1 << 16);
      register_all(ss, m, 60);
      dereg_all(ss, m);
      for (size_t i = 0; i < m; i++) sess_close(&ss[i]);
    }
    for (size_t i = 0; i < n_send; i++) {
      char nick[32];
      snprintf(nick, sizeof nick, "sv%zu", i);
      sess_open(&ss[i], nick, &sp.addr, 1, 1 << 18);
    }
    register_all(ss, n_send, 60);
    double fr = NAN, f50 = NAN, f99 = NAN;
    if (store == 1 && o->save_count == 0)
      fsync_probe(sp.dir, 0.3, &fr, &f50, &f99);
    save_run *r = &res->runs[res->n_runs++];
    saves_phase(o, ss, n_send, to, n_to, store, f, r);
    r->fsync_rate = fr;
    r->fsync_p50_ms = f50;
    r->fsync_p99_ms = f99;
    if (store == 1 && o->save_count == 0)
      printf("saves:        (the disk just before: %.0f fdatasync/s, p50 "
             "%.3f ms, p99 %.3f ms)\n",
             fr, f50, f99);
    char label[32];
    snprintf(label, sizeof label, "saves_%s_%u",
             store == 2 ? "memory" : "sqlite", f);
    server_stop(&sp, label);
    for (size_t i = 0; i < n_send; i++) sess_close(&ss[i]);
  }
  free(ss);
  free(to);
  res->ran = 1;
  res->senders = o->senders;
  res->recipients = o->recipients;
  res->text_bytes = o->text_bytes;
}

/* ---- p2p ------------------------------------------------------------- */
typedef struct {
  int fd;
  atomic_int table_updates, welcome;
  atomic_long lines;
} drain_ctx;

static void *drain_main(void *arg) {
  drain_ctx *d = arg;
  char buf[8192], line[512];
  size_t ll = 0;
  /* A big pipe, read every 20 ms: no wake-up of this process per line the
   * client prints (that would compete with the timed exchanges). */
  (void)fcntl(d->fd, F_SETPIPE_SZ, 1 << 20);
  for (;;) {
    ssize_t n = read(d->fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if ((size_t)n < sizeof buf) {
      struct timespec ts = {0, 20000000};
      nanosleep(&ts, NULL);
    }
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        if (ll + 1 < sizeof line) line[ll++] = buf[i];
        continue;
      }
      line[ll] = '\0';
      ll = 0;
      atomic_fetch_add(&d->lines, 1);
      if (strstr(line, "[Client table updated.]") != NULL)
        atomic_fetch_add(&d->table_updates, 1);
      if (strstr(line, "[Welcome") != NULL) atomic_fetch_add(&d->welcome, 1);
    }
  }
  return NULL;
}

typedef struct {
  double p50_us, p99_us, mean_us, min_us;
  uint64_t samples, lost;
} lat_stats;

typedef struct {
  int ran;
  uint32_t text_bytes;
  size_t datagram_bytes;
  lat_stats client, echo;
  double ratio_p50, ratio_p99;
  int pinned; /* bench on CPU 0, the answering processes on CPU 1 */
} p2p_result;

/* Pin a process (0: the calling thread) to one CPU; 0 on success. On a
 * 2-core machine a one-at-a-time exchange costs ~15 us or ~50 us depending
 * on where the scheduler puts the two ends: left to it, the client and the
 * echo process get different placements and the ratio measures luck. */
static int pin_cpu(pid_t pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET((size_t)cpu, &set);
  return sched_setaffinity(pid, sizeof set, &set);
}

static void unpin_self(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  for (long i = 0; i < n && i < CPU_SETSIZE; i++) CPU_SET((size_t)i, &set);
  (void)sched_setaffinity(0, sizeof set, &set);
}

/* One CHAT (bytes pkt, id) to `to` on fd, wait for the reply: a CHAT_ACK
 * from `peer` (client) or the same datagram back (echo, want_ack 0).
 * Returns the round trip in ns, 0 if nothing within 500 ms. */
static uint64_t ping(int fd, const struct sockaddr_in *to, const uint8_t *pkt,
                     size_t len, uint32_t id, int want_ack,
                     const udpc_nick *peer) {
  uint8_t buf[RXCAP];
  uint64_t t0 = now_ns(), end = t0 + 500000000u;
  if (send_raw(fd, to, pkt, len) != 0) return 0;
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end) return 0;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int r = poll(&pf, 1, (int)((end - t) / 1000000u) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    ssize_t k;
    while ((k = recv(fd, buf, sizeof buf, 0)) >= 0) {
      uint64_t t1 = now_ns();
      udpc_packet p;
      if (udpc_wire_decode(&p, buf, (size_t)k) != UDPC_OK) continue;
      if (p.id != id) continue;
      if (want_ack) {
        if (p.type == UDPC_PT_CHAT_ACK && p.u.chat_ack.from.len == peer->len &&
            memcmp(p.u.chat_ack.from.s, peer->s, peer->len) == 0)
          return t1 - t0;
      } else if (p.type == UDPC_PT_CHAT) {
        return t1 - t0;
      }
    }
  }
}

static void lat_finish(uint64_t *v, size_t n, uint64_t lost, lat_stats *s) {
  qsort(v, n, sizeof *v, cmp_u64);
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += (double)v[i];
  s->samples = n;
  s->lost = lost;
  s->p50_us = quant(v, n, 0.5) / 1e3;
  s->p99_us = quant(v, n, 0.99) / 1e3;
  s->min_us = n ? (double)v[0] / 1e3 : NAN;
  s->mean_us = n ? sum / (double)n / 1e3 : NAN;
}

/* Find nick's ONLINE address in the server's table (TABLE_REQ walk). */
static int find_in_table(rsess *a, const udpc_nick *who,
                         struct sockaddr_in *out) {
  uint32_t start = 0;
  for (int pages = 0; pages < 100000; pages++) {
    udpc_packet q, r;
    uint8_t keep[RXCAP];
    tokened(&q, a, UDPC_PT_TABLE_REQ);
    q.u.table_req.start = start;
    request(a, &q, UDPC_PT_TABLE_PAGE, &r, keep, sizeof keep);
    for (unsigned i = 0; i < r.u.table_page.count; i++) {
      const udpc_entry *e = &r.u.table_page.entries[i];
      if (e->nick.len == who->len && memcmp(e->nick.s, who->s, who->len) == 0 &&
          e->status == UDPC_STATUS_ONLINE && e->addr.family == 4) {
        memset(out, 0, sizeof *out);
        out->sin_family = AF_INET;
        memcpy(&out->sin_addr, e->addr.ip, 4);
        out->sin_port = htons(e->addr.port);
        return 0;
      }
    }
    if (r.u.table_page.count == 0 ||
        r.u.table_page.start + r.u.table_page.count >= r.u.table_page.total)
      return -1;
    start = r.u.table_page.start + r.u.table_page.count;
  }
  return -1;
}

static void run_p2p(const opts *o, p2p_result *res) {
  memset(res, 0, sizeof *res);
  server_proc sp;
  server_start(&sp, o, 1, NULL);
  rsess a;
  sess_open(&a, "bencha", &sp.addr, 0, 1 << 20);
  register_all(&a, 1, 30);

  char state[4096], portstr[16];
  make_tmpdir(o, "cli", state, sizeof state);
  snprintf(portstr, sizeof portstr, "%u", (unsigned)sp.port);
  char *argv[] = {(char *)o->server,     (char *)"-c", (char *)"benchb",
                  (char *)"127.0.0.1",   portstr,      (char *)"0",
                  (char *)"--state-dir", state,        NULL};
  int cin, cout;
  /* Same placement for both exchanges: this process (and its drain
   * thread) on CPU 0, the real client and the echo process on CPU 1. */
  res->pinned = sysconf(_SC_NPROCESSORS_ONLN) >= 2 && pin_cpu(0, 0) == 0;
  pid_t cpid = spawn(argv, &cin, &cout);
  if (res->pinned && pin_cpu(cpid, 1) != 0) res->pinned = 0;
  drain_ctx dc;
  memset(&dc, 0, sizeof dc);
  dc.fd = cout;
  pthread_t th;
  if (pthread_create(&th, NULL, drain_main, &dc) != 0) die("pthread_create");

  udpc_nick peer = mknick("benchb");
  uint64_t end = now_ns() + sec_ns(20);
  while (atomic_load(&dc.table_updates) == 0) {
    if (now_ns() > end) die("the client never showed [Client table updated.]");
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  struct sockaddr_in caddr;
  while (find_in_table(&a, &peer, &caddr) != 0) {
    if (now_ns() > end) die("the client never appeared ONLINE in the table");
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
  }
  /* the texts: chat_bytes of 'p' */
  uint8_t text[UDPC_TEXT_MAX];
  memset(text, 'p', sizeof text);
  udpc_packet c;
  memset(&c, 0, sizeof c);
  c.type = UDPC_PT_CHAT;
  c.u.chat.from = a.nick;
  c.u.chat.to = peer;
  c.u.chat.text.p = text;
  c.u.chat.text.len = (uint16_t)o->chat_bytes;
  uint8_t pkt[UDPC_MAX_PACKET];
  /* warm-up: until the client answers (its table must list us, R81) */
  int ok = 0;
  for (int i = 0; i < 100 && !ok; i++) {
    c.id = a.next_id++;
    size_t len = (size_t)encode(&c, pkt, sizeof pkt);
    ok = ping(a.fd, &caddr, pkt, len, c.id, 1, &peer) != 0;
  }
  if (!ok) die("the client does not answer CHATs");
  for (int i = 0; i < 50; i++) { /* a few more, to warm both sides */
    c.id = a.next_id++;
    size_t len = (size_t)encode(&c, pkt, sizeof pkt);
    (void)ping(a.fd, &caddr, pkt, len, c.id, 1, &peer);
  }

  echo_proc ep;
  echo_start(&ep);
  if (res->pinned && pin_cpu(ep.pid, 1) != 0) res->pinned = 0;
  struct sockaddr_in ea = loopback(ep.port);
  int efd = udp_socket(0, 1 << 20, NULL);

  size_t n = o->samples;
  uint64_t *lc = calloc(n, sizeof *lc), *le = calloc(n, sizeof *le);
  if (lc == NULL || le == NULL) die("out of memory");
  size_t nc = 0, ne = 0;
  uint64_t lost_c = 0, lost_e = 0;
  size_t block = n / 10 > 0 ? n / 10 : 1;
  uint64_t t_end = now_ns() + sec_ns(o->max_seconds), last_hb = now_ns();
  size_t dgram = 0;
  /* interleaved blocks: client, echo, client, echo... (fair under load) */
  while ((nc < n || ne < n) && now_ns() < t_end) {
    for (size_t i = 0; i < block && nc < n; i++) {
      c.id = a.next_id++;
      size_t len = (size_t)encode(&c, pkt, sizeof pkt);
      dgram = len;
      uint64_t d = ping(a.fd, &caddr, pkt, len, c.id, 1, &peer);
      if (d)
        lc[nc++] = d;
      else
        lost_c++;
      if (lost_c > 100) die("the client lost more than 100 CHATs");
    }
    for (size_t i = 0; i < block && ne < n; i++) {
      c.id = a.next_id++;
      size_t len = (size_t)encode(&c, pkt, sizeof pkt);
      uint64_t d = ping(efd, &ea, pkt, len, c.id, 0, &peer);
      if (d)
        le[ne++] = d;
      else
        lost_e++;
      if (lost_e > 100) die("the echo process lost more than 100 datagrams");
    }
    if (now_ns() - last_hb > sec_ns(5)) { /* keep A's session alive */
      heartbeat_once(&a);
      last_hb = now_ns();
    }
  }
  res->datagram_bytes = dgram;
  echo_stop(&ep);
  close(efd);
  lat_finish(lc, nc, lost_c, &res->client);
  lat_finish(le, ne, lost_e, &res->echo);
  free(lc);
  free(le);

  close(cin); /* end of input: the client deregisters and exits */
  uint64_t wend = now_ns() + sec_ns(3);
  int st = 0, gone = 0;
  while (now_ns() < wend) {
    if (waitpid(cpid, &st, WNOHANG) == cpid) {
      gone = 1;
      untrack_child(cpid);
      break;
    }
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  if (!gone) stop_child(cpid, SIGTERM);
  pthread_join(th, NULL);
  close(cout);
  sess_close(&a);
  server_stop(&sp, "p2p");
  rm_tree(state);
  unpin_self();

  res->ran = 1;
  res->text_bytes = o->chat_bytes;
  res->ratio_p50 = res->client.p50_us / res->echo.p50_us;
  res->ratio_p99 = res->client.p99_us / res->echo.p99_us;
  printf("p2p: %zu-byte CHAT -> CHAT_ACK via the real client: p50 %.1f us, "
         "p99 %.1f us (%llu samples, %llu lost)\n",
         dgram, res->client.p50_us, res->client.p99_us,
         (unsigned long long)res->client.samples,
         (unsigned long long)res->client.lost);
  printf("p2p: raw ping-pong with the echo process: p50 %.1f us, p99 %.1f "
         "us (%llu samples); p50 ratio %.3f (goal <= 1.5)\n",
         res->echo.p50_us, res->echo.p99_us,
         (unsigned long long)res->echo.samples, res->ratio_p50);
  fflush(stdout);
}

/* ---- JSON ------------------------------------------------------------- */
static void jnum(FILE *f, const char *k, double v, int last) {
  if (isnan(v) || isinf(v))
    fprintf(f, "\"%s\": null%s", k, last ? "" : ", ");
  else if (v == floor(v) && fabs(v) < 1e15)
    fprintf(f, "\"%s\": %.0f%s", k, v, last ? "" : ", ");
  else
    fprintf(f, "\"%s\": %.6g%s", k, v, last ? "" : ", ");
}

static void jstr(FILE *f, const char *k, const char *v, int last) {
  fprintf(f, "\"%s\": \"", k);
  for (const char *p = v; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if ((unsigned char)*p < 0x20)
      fprintf(f, "\\u%04x", (unsigned)*p);
    else
      fputc(*p, f);
  }
  fprintf(f, "\"%s", last ? "" : ", ");
}

static void jrate(FILE *f, const char *k, const rate_result *r, int last) {
  fprintf(f, "\"%s\": {", k);
  jnum(f, "rate_per_s", r->rate, 0);
  jnum(f, "replies", (double)r->replies, 0);
  jnum(f, "elapsed_s", r->elapsed_s, 0);
  jnum(f, "cpu_s", r->cpu_s, 0);
  jnum(f, "bench_cpu_s", r->gen_cpu_s, 0);
  jnum(f, "sent", (double)r->sent, 0);
  jnum(f, "written_off", (double)r->lost, 0);
  jnum(f, "errors", (double)r->errors, 1);
  fprintf(f, "}%s", last ? "" : ", ");
}

static void jlat(FILE *f, const char *k, const lat_stats *s, int last) {
  fprintf(f, "\"%s\": {", k);
  jnum(f, "p50_us", s->p50_us, 0);
  jnum(f, "p99_us", s->p99_us, 0);
  jnum(f, "mean_us", s->mean_us, 0);
  jnum(f, "min_us", s->min_us, 0);
  jnum(f, "samples", (double)s->samples, 0);
  jnum(f, "lost", (double)s->lost, 1);
  fprintf(f, "}%s", last ? "" : ", ");
}

static void write_json(const opts *o, const cheap_result *cr,
                       const saves_result *sr, const p2p_result *pr) {
  FILE *f = fopen(o->json, "w");
  if (f == NULL) die("cannot write %s: %s", o->json, strerror(errno));
  fprintf(f, "{");
  jstr(f, "schema", "udpchat-bench-rr/1", 0);
  fprintf(f, "\"units\": {\"rate_per_s\": \"replies (or acknowledged "
             "requests) per second\", \"_ms\": \"milliseconds\", \"_us\": "
             "\"microseconds\", \"_s\": \"seconds\", \"_bytes\": \"bytes "
             "(UDP payload)\", \"ratio\": \"dimensionless\"}, ");
  jstr(f, "server_binary", o->server, 0);
  jstr(f, "server_limit_options",
       g_rate_opts[0] ? g_rate_opts : "(none: defaults 1000/s per session)", 0);
  fprintf(f, "\"cheap\": ");
  if (!cr->ran) {
    fprintf(f, "null, ");
  } else {
    fprintf(f, "{");
    jstr(f, "request", "HEARTBEAT -> HEARTBEAT_ACK", 0);
    jnum(f, "request_bytes", (double)cr->req_bytes, 0);
    jnum(f, "reply_bytes", (double)cr->reply_bytes, 0);
    jnum(f, "echo_reply_bytes", (double)cr->req_bytes, 0);
    jnum(f, "sessions", cr->sessions, 0);
    jnum(f, "in_flight_per_session", cr->window, 0);
    jnum(f, "in_flight_total", (double)cr->sessions * cr->window, 0);
    jnum(f, "rounds", cr->rounds, 0);
    jnum(f, "warmup_s", cr->warmup, 0);
    jnum(f, "seconds", cr->seconds, 0);
    jrate(f, "server", &cr->server, 0);
    jrate(f, "echo", &cr->echo, 0);
    jnum(f, "ratio", cr->ratio, 0);
    jnum(f, "server_cpu_us_per_reply", cr->server_us, 0);
    jnum(f, "echo_cpu_us_per_reply", cr->echo_us, 0);
    jnum(f, "cpu_ratio_echo_over_server", cr->cpu_ratio, 0);
    jnum(f, "goal_ratio_min", 0.6, 1);
    fprintf(f, "}, ");
  }
  fprintf(f, "\"saves\": ");
  if (!sr->ran) {
    fprintf(f, "null, ");
  } else {
    fprintf(f, "{");
    jnum(f, "senders", sr->senders, 0);
    jnum(f, "recipients", sr->recipients, 0);
    jnum(f, "text_bytes", sr->text_bytes, 0);
    jstr(f, "load",
         "SAVEs round-robin over the senders and over the recipients "
         "(registered, then DEREG'd: offline); a new SAVE as soon as one is "
         "answered; server started with --mail-per-recipient " BIG_QUOTA
         " --mail-total " BIG_QUOTA " so no quota is hit",
         0);
    jstr(f, "latency", "SAVE sent -> SAVE_RESULT SAVED, first transmissions",
         0);
    jnum(f, "goal_rate_per_s_min", 55000, 0);
    jnum(f, "goal_in_flight", 64, 0);
    jnum(f, "goal_p99_ms_max", 10, 0);
    fprintf(f, "\"runs\": [");
    for (size_t i = 0; i < sr->n_runs; i++) {
      const save_run *r = &sr->runs[i];
      fprintf(f, "{");
      jstr(f, "store", r->store == 2 ? "memory" : "sqlite", 0);
      jnum(f, "in_flight", r->inflight, 0);
      jnum(f, "rate_per_s", r->rate, 0);
      jnum(f, "p50_ms", r->p50_ms, 0);
      jnum(f, "p99_ms", r->p99_ms, 0);
      jnum(f, "mean_ms", r->mean_ms, 0);
      jnum(f, "acked", (double)r->acked, 0);
      jnum(f, "latency_samples", (double)r->samples, 0);
      jnum(f, "retransmissions", (double)r->retrans, 0);
      jnum(f, "not_saved", (double)r->not_saved, 0);
      jnum(f, "elapsed_s", r->elapsed_s, 0);
      jnum(f, "disk_fdatasync_per_s", r->fsync_rate, 0);
      jnum(f, "disk_fdatasync_p50_ms", r->fsync_p50_ms, 0);
      jnum(f, "disk_fdatasync_p99_ms", r->fsync_p99_ms, 1);
      fprintf(f, "}%s", i + 1 < sr->n_runs ? ", " : "");
    }
    fprintf(f, "]}, ");
  }
  fprintf(f, "\"server_stats\": {");
  for (size_t i = 0; i < g_n_stats; i++) {
    fprintf(f, "\"%s\": {", g_stats[i].label);
    for (size_t k = 0; k < g_stats[i].n; k++)
      fprintf(f, "\"%s\": %llu%s", g_stats[i].key[k], g_stats[i].val[k],
              k + 1 < g_stats[i].n ? ", " : "");
    fprintf(f, "}%s", i + 1 < g_n_stats ? ", " : "");
  }
  fprintf(f, "}, ");
  fprintf(f, "\"p2p\": ");
  if (!pr->ran) {
    fprintf(f, "null");
  } else {
    fprintf(f, "{");
    jstr(f, "client", "udpchat -c (real client process, stdout a pipe)", 0);
    jnum(f, "text_bytes", pr->text_bytes, 0);
    jnum(f, "datagram_bytes", (double)pr->datagram_bytes, 0);
    jlat(f, "chat_ack", &pr->client, 0);
    jlat(f, "pingpong", &pr->echo, 0);
    jnum(f, "ratio_p50", pr->ratio_p50, 0);
    jnum(f, "ratio_p99", pr->ratio_p99, 0);
    fprintf(f, "\"pinned\": %s, ", pr->pinned ? "true" : "false");
    jnum(f, "goal_ratio_p50_max", 1.5, 1);
    fprintf(f, "}");
  }
  fprintf(f, "}\n");
  if (fclose(f) != 0) die("cannot write %s", o->json);
}

/* ---- command line ------------------------------------------------------ */
static void usage(FILE *f) {
  fputs(
      "usage: bench_rr echo [--port P]\n"
      "       bench_rr cheap|saves|p2p|all... --server PATH [options]\n"
      "options:\n"
      "  --json FILE        write the results as JSON\n"
      "  --tmp DIR          data and state dirs go here (default $TMPDIR or "
      "/tmp)\n"
      "  --seconds T        measured time per run (cheap: per target, over "
      "all\n"
      "                     rounds) (default 3)\n"
      "  --warmup S         warm-up before each measured run (default 0.5)\n"
      "  --sessions K       cheap: registered sessions (default 256)\n"
      "  --window W         cheap: HEARTBEATs in flight per session (default "
      "4)\n"
      "  --rounds R         cheap: alternate server and echo R times "
      "(default 3)\n"
      "  --in-flight LIST   saves: SAVEs in flight in total (default 1,8,64)\n"
      "  --senders S        saves: sender sessions (default 256)\n"
      "  --stores LIST      saves: sqlite,memory (default both)\n"
      "  --recipients R     saves: offline recipients, round-robin (default "
      "1000)\n"
      "  --count N          saves: stop each run after N SAVED (no warm-up)\n"
      "  --text-bytes B     saves: text size (default 200)\n"
      "  --samples N        p2p: round trips of each kind (default 5000)\n"
      "  --max-seconds S    p2p: time bound (default 20)\n"
      "  --chat-bytes B     p2p: CHAT text size (default 32)\n"
      "  --no-rate-opts     never pass --session-rate to the server\n",
      f);
}

static double parse_d(const char *v, const char *name) {
  char *e;
  double d = strtod(v, &e);
  if (*v == '\0' || *e != '\0' || !(d >= 0)) {
    fprintf(stderr, "bench_rr: bad %s '%s'\n", name, v);
    exit(2);
  }
  return d;
}

static uint32_t parse_u(const char *v, const char *name, uint32_t lo,
                        uint32_t hi) {
  char *e;
  unsigned long long x = strtoull(v, &e, 10);
  if (*v == '\0' || *e != '\0' || x < lo || x > hi) {
    fprintf(stderr, "bench_rr: bad %s '%s' (%u..%u)\n", name, v, lo, hi);
    exit(2);
  }
  return (uint32_t)x;
}

int main(int argc, char **argv) {
  opts o;
  memset(&o, 0, sizeof o);
  o.seconds = 3;
  o.warmup = 0.5;
  o.sessions = 256;
  o.window = 4;
  o.rounds = 3;
  o.inflight[0] = 1;
  o.inflight[1] = 8;
  o.inflight[2] = 64;
  o.n_inflight = 3;
  o.stores[0] = 1;
  o.stores[1] = 2;
  o.n_stores = 2;
  o.senders = 256;
  o.recipients = 1000;
  o.text_bytes = 200;
  o.samples = 5000;
  o.chat_bytes = 32;
  o.max_seconds = 20;
  const char *t = getenv("TMPDIR");
  o.tmp = t != NULL && t[0] != '\0' ? t : "/tmp";
  int do_echo = 0, do_cheap = 0, do_saves = 0, do_p2p = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV                                             \
  do {                                                    \
    if (v == NULL) {                                      \
      fprintf(stderr, "bench_rr: %s needs a value\n", a); \
      return 2;                                           \
    }                                                     \
    i++;                                                  \
  } while (0)
    if (strcmp(a, "echo") == 0) {
      do_echo = 1;
    } else if (strcmp(a, "cheap") == 0) {
      do_cheap = 1;
    } else if (strcmp(a, "saves") == 0) {
      do_saves = 1;
    } else if (strcmp(a, "p2p") == 0) {
      do_p2p = 1;
    } else if (strcmp(a, "all") == 0) {
      do_cheap = do_saves = do_p2p = 1;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--server") == 0) {
      NEEDV;
      o.server = v;
    } else if (strcmp(a, "--json") == 0) {
      NEEDV;
      o.json = v;
    } else if (strcmp(a, "--tmp") == 0) {
      NEEDV;
      o.tmp = v;
    } else if (strcmp(a, "--port") == 0) {
      NEEDV;
      o.echo_port = (uint16_t)parse_u(v, a, 0, 65535);
    } else if (strcmp(a, "--seconds") == 0) {
      NEEDV;
      o.seconds = parse_d(v, a);
    } else if (strcmp(a, "--warmup") == 0) {
      NEEDV;
      o.warmup = parse_d(v, a);
    } else if (strcmp(a, "--sessions") == 0) {
      NEEDV;
      o.sessions = parse_u(v, a, 1, 60000);
    } else if (strcmp(a, "--window") == 0) {
      NEEDV;
      o.window = parse_u(v, a, 1, 64);
    } else if (strcmp(a, "--rounds") == 0) {
      NEEDV;
      o.rounds = parse_u(v, a, 1, 100);
    } else if (strcmp(a, "--senders") == 0) {
      NEEDV;
      o.senders = parse_u(v, a, 1, 60000);
    } else if (strcmp(a, "--recipients") == 0) {
      NEEDV;
      o.recipients = parse_u(v, a, 1, 1000000);
    } else if (strcmp(a, "--count") == 0) {
      NEEDV;
      o.save_count = parse_u(v, a, 1, 100000000);
    } else if (strcmp(a, "--text-bytes") == 0) {
      NEEDV;
      o.text_bytes = parse_u(v, a, 1, UDPC_TEXT_MAX);
    } else if (strcmp(a, "--samples") == 0) {
      NEEDV;
      o.samples = parse_u(v, a, 1, 10000000);
    } else if (strcmp(a, "--chat-bytes") == 0) {
      NEEDV;
      o.chat_bytes = parse_u(v, a, 1, 1000);
    } else if (strcmp(a, "--max-seconds") == 0) {
      NEEDV;
      o.max_seconds = parse_d(v, a);
    } else if (strcmp(a, "--no-rate-opts") == 0) {
      o.no_rate_opts = 1;
    } else if (strcmp(a, "--in-flight") == 0) {
      NEEDV;
      char tmp[128];
      snprintf(tmp, sizeof tmp, "%s", v);
      o.n_inflight = 0;
      for (char *sv = NULL, *tok = strtok_r(tmp, ",", &sv);
           tok != NULL && o.n_inflight < 8; tok = strtok_r(NULL, ",", &sv))
        o.inflight[o.n_inflight++] = parse_u(tok, a, 1, SAVE_LANES_MAX);
    } else if (strcmp(a, "--stores") == 0) {
      NEEDV;
      char tmp[128];
      snprintf(tmp, sizeof tmp, "%s", v);
      o.n_stores = 0;
      for (char *sv = NULL, *tok = strtok_r(tmp, ",", &sv);
           tok != NULL && o.n_stores < 2; tok = strtok_r(NULL, ",", &sv)) {
        if (strcmp(tok, "sqlite") == 0)
          o.stores[o.n_stores++] = 1;
        else if (strcmp(tok, "memory") == 0)
          o.stores[o.n_stores++] = 2;
        else {
          fprintf(stderr, "bench_rr: bad store '%s'\n", tok);
          return 2;
        }
      }
    } else {
      fprintf(stderr, "bench_rr: unknown argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
#undef NEEDV
  }
  if (do_echo) return cmd_echo(o.echo_port);
  if (!do_cheap && !do_saves && !do_p2p) {
    usage(stderr);
    return 2;
  }
  if (o.server == NULL) {
    fprintf(stderr, "bench_rr: --server PATH (the udpchat binary) is needed\n");
    return 2;
  }
  for (size_t i = 0; i < o.n_inflight; i++)
    if (o.inflight[i] > 64u * o.senders) {
      fprintf(stderr, "bench_rr: more than 64 SAVEs in flight per sender\n");
      return 2;
    }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max; /* one socket per session */
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_fatal_signal);
  signal(SIGTERM, on_fatal_signal);
  signal(SIGHUP, on_fatal_signal);
  /* the echo child is this binary (g_self = /proc/self/exe: the same
   * program even if the file is rebuilt meanwhile) */

  cheap_result cr;
  saves_result sr;
  p2p_result pr;
  memset(&cr, 0, sizeof cr);
  memset(&sr, 0, sizeof sr);
  memset(&pr, 0, sizeof pr);
  int bad = 0;
  if (do_cheap) {
    run_cheap(&o, &cr);
    if (!(cr.server.rate > 0) || !(cr.echo.rate > 0)) bad = 1;
  }
  if (do_saves) {
    run_saves(&o, &sr);
    for (size_t i = 0; i < sr.n_runs; i++)
      if (!(sr.runs[i].rate > 0)) bad = 1;
  }
  if (do_p2p) {
    run_p2p(&o, &pr);
    if (pr.client.samples == 0 || pr.echo.samples == 0) bad = 1;
  }
  if (o.json != NULL) write_json(&o, &cr, &sr, &pr);
  if (bad) fprintf(stderr, "bench_rr: a run measured nothing (rate 0)\n");
  return bad;
}
