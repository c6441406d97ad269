/*
 * udpc_net.c - UDP socket helpers (see udpc_net.h).
 */
#include "udpc_net.h"
#include "udpc_fs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int udpc_net_parse_port(const char *s, uint16_t *out, char *err,
                        size_t err_cap) {
  unsigned long v = 0;
  size_t n = 0;
  if (s == NULL || s[0] == '\0') goto bad;
  for (n = 0; s[n] != '\0'; n++) {
    if (s[n] < '0' || s[n] > '9') goto bad;
    v = v * 10 + (unsigned long)(s[n] - '0');
    if (v > 65535) goto bad;
  }
  if (v != 0 && v < 1024) goto bad;
  *out = (uint16_t)v;
  return 0;
bad:
  udpc_fs_err(err, err_cap, "invalid port '%s': must be 0 or 1024-65535",
              s != NULL ? s : "");
  return -1;
}

/* sockaddr -> udpc_addr, unmapping IPv4-mapped IPv6 addresses. */
static int from_sockaddr(const struct sockaddr_storage *ss, udpc_addr *out) {
  memset(out, 0, sizeof *out);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    out->family = 4;
    memcpy(out->ip, &sin->sin_addr, 4);
    out->port = ntohs(sin->sin_port);
    return 0;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      out->family = 4;
      memcpy(out->ip, &sin6->sin6_addr.s6_addr[12], 4);
    } else {
      out->family = 6;
      memcpy(out->ip, &sin6->sin6_addr, 16);
    }
    out->port = ntohs(sin6->sin6_port);
    return 0;
  }
  return -1;
}

/* An IPv4 or IPv6 socket address, small enough to keep one per queued
 * datagram. */
typedef union {
  struct sockaddr sa;
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
} net_sa;

/* udpc_addr -> sockaddr suitable for a socket of family sock_family. */
static int to_net_sa(const udpc_addr *a, int sock_family, net_sa *u,
                     socklen_t *len) {
  memset(u, 0, sizeof *u);
  if (sock_family == AF_INET) {
    if (a->family != 4) return -1;
    u->sin.sin_family = AF_INET;
    memcpy(&u->sin.sin_addr, a->ip, 4);
    u->sin.sin_port = htons(a->port);
    *len = sizeof u->sin;
    return 0;
  }
  u->sin6.sin6_family = AF_INET6;
  if (a->family == 4) {
    u->sin6.sin6_addr.s6_addr[10] = 0xff;
    u->sin6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&u->sin6.sin6_addr.s6_addr[12], a->ip, 4);
  } else if (a->family == 6) {
    memcpy(&u->sin6.sin6_addr, a->ip, 16);
  } else {
    return -1;
  }
  u->sin6.sin6_port = htons(a->port);
  *len = sizeof u->sin6;
  return 0;
}

static int to_sockaddr(const udpc_addr *a, int sock_family,
                       struct sockaddr_storage *ss, socklen_t *len) {
  net_sa u;
  memset(ss, 0, sizeof *ss);
  if (to_net_sa(a, sock_family, &u, len) != 0) return -1;
  memcpy(ss, &u, *len);
  return 0;
}

int udpc_net_resolve(const char *host, uint16_t port, udpc_addr *out, char *err,
                     size_t err_cap) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_protocol = IPPROTO_UDP;
  hints.ai_flags = AI_ADDRCONFIG;
  int rc = getaddrinfo(host, NULL, &hints, &res);
  if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY || rc == EAI_NODATA) {
    /* AI_ADDRCONFIG hides loopback-only setups; retry without it. */
    hints.ai_flags = 0;
    rc = getaddrinfo(host, NULL, &hints, &res);
  }
  if (rc != 0) {
    udpc_fs_err(err, err_cap, "cannot resolve '%s': %s", host,
                rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    return -1;
  }
  int ok = -1;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    struct sockaddr_storage ss;
    if (ai->ai_addrlen > sizeof ss) continue;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (from_sockaddr(&ss, out) == 0) {
      out->port = port;
      ok = 0;
      break;
    }
  }
  freeaddrinfo(res);
  if (ok != 0)
    udpc_fs_err(err, err_cap, "cannot resolve '%s': no IP address", host);
  return ok;
}

static void enlarge_rcvbuf(int fd) {
  int want = UDPC_NET_RCVBUF;
  /* SO_RCVBUFFORCE works for privileged processes beyond rmem_max; fall back
   * to SO_RCVBUF (capped by the kernel). Failure is harmless. */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0) {
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want) != 0) {
      /* best effort */
    }
  }
}

static int bind_one(int family, const struct sockaddr *sa, socklen_t salen,
                    int dual_stack, int *out_fd, int *out_errno) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *out_errno = errno;
    return -1;
  }
  if (family == AF_INET6) {
    int v6only = dual_stack ? 0 : 1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) !=
        0) {
      /* Keep the system default; binding still decides. */
    }
  }
  if (bind(fd, sa, salen) != 0) {
    *out_errno = errno;
    (void)close(fd);
    return -1;
  }
  enlarge_rcvbuf(fd);
  *out_fd = fd;
  return 0;
}

int udpc_net_bind(udpc_net_sock *out, const char *host, uint16_t port,
                  char *err, size_t err_cap) {
  int fd = -1, e = 0;
  out->fd = -1;
  out->family = 0;
  if (host == NULL) {
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_any;
    sin6.sin6_port = htons(port);
    if (bind_one(AF_INET6, (const struct sockaddr *)&sin6, sizeof sin6, 1, &fd,
                 &e) == 0) {
      out->fd = fd;
      out->family = AF_INET6;
      return 0;
    }
    if (e != EAFNOSUPPORT && e != EADDRNOTAVAIL && e != EPROTONOSUPPORT) {
      udpc_fs_err(err, err_cap, "cannot bind UDP port %u: %s", (unsigned)port,
                  strerror(e));
      return -1;
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    sin.sin_port = htons(port);
    if (bind_one(AF_INET, (const struct sockaddr *)&sin, sizeof sin, 0, &fd,
                 &e) == 0) {
      out->fd = fd;
      out->family = AF_INET;
      return 0;
    }
    udpc_fs_err(err, err_cap, "cannot bind UDP port %u: %s", (unsigned)port,
                strerror(e));
    return -1;
  }

  udpc_addr a;
  if (udpc_net_resolve(host, port, &a, err, err_cap) != 0) return -1;
  struct sockaddr_storage ss;
  socklen_t len = 0;
  int family = a.family == 4 ? AF_INET : AF_INET6;
  if (to_sockaddr(&a, family, &ss, &len) != 0) {
    udpc_fs_err(err, err_cap, "cannot bind '%s': unsupported address", host);
    return -1;
  }
  int dual = 0;
  if (family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
    dual = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
  }
  if (bind_one(family, (const struct sockaddr *)&ss, len, dual, &fd, &e) != 0) {
    udpc_fs_err(err, err_cap, "cannot bind UDP %s port %u: %s", host,
                (unsigned)port, strerror(e));
    return -1;
  }
  out->fd = fd;
  out->family = family;
  return 0;
}

void udpc_net_close(udpc_net_sock *s) {
  if (s->fd >= 0) {
    if (close(s->fd) != 0) {
      /* nothing to recover for a UDP socket */
    }
  }
  s->fd = -1;
}

int udpc_net_local(const udpc_net_sock *s, udpc_addr *out, char *err,
                   size_t err_cap) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0) {
    udpc_fs_err(err, err_cap, "getsockname: %s", strerror(errno));
    return -1;
  }
  if (from_sockaddr(&ss, out) != 0) {
    udpc_fs_err(err, err_cap, "getsockname: unexpected address family");
    return -1;
  }
  /* Report the wildcard of a dual-stack socket as IPv6 "::". */
  if (s->family == AF_INET6 && out->family == 4) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
    out->family = 6;
    memcpy(out->ip, &sin6->sin6_addr, 16);
  }
  return 0;
}

int udpc_net_sendto(const udpc_net_sock *s, const udpc_addr *to,
                    const uint8_t *data, size_t len, char *err,
                    size_t err_cap) {
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  if (to_sockaddr(to, s->family, &ss, &sl) != 0) {
    char a[UDPC_NET_ADDRSTR_MAX];
    udpc_net_format_addr(to, a, sizeof a);
    udpc_fs_err(err, err_cap,
                "sendto %s: address family not usable on this "
                "socket",
                a);
    return -1;
  }
  for (;;) {
    ssize_t n = sendto(s->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                       (const struct sockaddr *)&ss, sl);
    if (n >= 0) {
      if ((size_t)n != len) {
        udpc_fs_err(err, err_cap, "sendto: short send %zd of %zu", n, len);
        return -1;
      }
      return 0;
    }
    if (errno == EINTR) continue;
    char a[UDPC_NET_ADDRSTR_MAX];
    udpc_net_format_addr(to, a, sizeof a);
    udpc_fs_err(err, err_cap, "sendto %s: %s", a, strerror(errno));
    return -1;
  }
}

ssize_t udpc_net_recvfrom(const udpc_net_sock *s, uint8_t *buf, size_t cap,
                          udpc_addr *from, char *err, size_t err_cap) {
  for (;;) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    ssize_t n = recvfrom(s->fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC,
                         (struct sockaddr *)&ss, &sl);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return -2;
      /* ICMP errors surfacing on the socket (ECONNREFUSED and friends) say
       * nothing about the next datagram: report and let the caller go on. */
      udpc_fs_err(err, err_cap, "recvfrom: %s", strerror(errno));
      return -1;
    }
    if (from_sockaddr(&ss, from) != 0) continue; /* not IP: drop */
    return n;
  }
}

void udpc_net_format_ip(const udpc_addr *a, char *buf, size_t cap) {
  char ip[INET6_ADDRSTRLEN];
  const char *r = NULL;
  if (a->family == 4)
    r = inet_ntop(AF_INET, a->ip, ip, sizeof ip);
  else if (a->family == 6)
    r = inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
  snprintf(buf, cap, "%s", r != NULL ? ip : "?");
}

void udpc_net_format_addr(const udpc_addr *a, char *buf, size_t cap) {
  char ip[INET6_ADDRSTRLEN];
  udpc_net_format_ip(a, ip, sizeof ip);
  if (a->family == 6)
    snprintf(buf, cap, "[%s]:%u", ip, (unsigned)a->port);
  else
    snprintf(buf, cap, "%s:%u", ip, (unsigned)a->port);
}

/* ---- Socket buffers ------------------------------------------------------ */
static int set_buf(int fd, int force_opt, int opt, int want) {
  /* The FORCE variants (CAP_NET_ADMIN) go beyond net.core.[rw]mem_max; the
   * plain ones are capped there. Failure is harmless. */
  if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof want) != 0) {
    if (setsockopt(fd, SOL_SOCKET, opt, &want, sizeof want) != 0) {
      /* best effort */
    }
  }
  int got = -1;
  socklen_t gl = sizeof got;
  if (getsockopt(fd, SOL_SOCKET, opt, &got, &gl) != 0) got = -1;
  return got;
}

void udpc_net_set_buffers(const udpc_net_sock *s, int want, int *rcv,
                          int *snd) {
  *rcv = set_buf(s->fd, SO_RCVBUFFORCE, SO_RCVBUF, want);
  *snd = set_buf(s->fd, SO_SNDBUFFORCE, SO_SNDBUF, want);
}

/* ---- Batched receive ------------------------------------------------------ */
#define NET_RX_DGRAM (UDPC_MAX_PACKET + 1)

struct udpc_net_rx {
  struct mmsghdr msgs[UDPC_NET_BATCH];
  struct iovec iov[UDPC_NET_BATCH];
  struct sockaddr_storage addrs[UDPC_NET_BATCH];
  int n; /* datagrams of the last recv */
  uint8_t buf[UDPC_NET_BATCH][NET_RX_DGRAM];
};

udpc_net_rx *udpc_net_rx_new(void) {
  udpc_net_rx *rx = calloc(1, sizeof *rx);
  if (rx == NULL) return NULL;
  for (int i = 0; i < UDPC_NET_BATCH; i++) {
    rx->iov[i].iov_base = rx->buf[i];
    rx->iov[i].iov_len = NET_RX_DGRAM;
    rx->msgs[i].msg_hdr.msg_iov = &rx->iov[i];
    rx->msgs[i].msg_hdr.msg_iovlen = 1;
    rx->msgs[i].msg_hdr.msg_name = &rx->addrs[i];
  }
  return rx;
}

void udpc_net_rx_free(udpc_net_rx *rx) { free(rx); }

int udpc_net_rx_recv(udpc_net_rx *rx, const udpc_net_sock *s, char *err,
                     size_t err_cap) {
  rx->n = 0;
  for (int i = 0; i < UDPC_NET_BATCH; i++) {
    /* The kernel overwrites these per message: reset what it changed. */
    rx->msgs[i].msg_hdr.msg_namelen = sizeof rx->addrs[i];
    rx->msgs[i].msg_hdr.msg_flags = 0;
    rx->msgs[i].msg_len = 0;
  }
  for (;;) {
    int n = recvmmsg(s->fd, rx->msgs, UDPC_NET_BATCH, MSG_DONTWAIT, NULL);
    if (n >= 0) {
      rx->n = n;
      return n;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    /* ICMP errors surfacing on the socket (ECONNREFUSED and friends) say
     * nothing about the next datagram: report and let the caller go on. */
    udpc_fs_err(err, err_cap, "recvmmsg: %s", strerror(errno));
    return -1;
  }
}

int udpc_net_rx_get(const udpc_net_rx *rx, int i, const uint8_t **data,
                    size_t *len, udpc_addr *from) {
  if (i < 0 || i >= rx->n) return -1;
  const struct mmsghdr *m = &rx->msgs[i];
  if (from_sockaddr(&rx->addrs[i], from) != 0) return -1; /* not IP: drop */
  size_t n = m->msg_len;
  /* Truncated: report one byte more than the core accepts, so it is
   * dropped as too long rather than decoded from a prefix. */
  if ((m->msg_hdr.msg_flags & MSG_TRUNC) != 0 || n > NET_RX_DGRAM)
    n = NET_RX_DGRAM;
  *data = rx->buf[i];
  *len = n;
  return 0;
}

/* ---- Batched send ----------------------------------------------------------- */
typedef struct {
  net_sa to;
  uint8_t data[UDPC_MAX_PACKET];
} net_tx_slot;

struct udpc_net_tx {
  int fd, family, wait_ms;
  size_t cap, n;
  udpc_net_tx_stats st;
  net_tx_slot *slots;
  struct mmsghdr *msgs;
  struct iovec *iov;
};

udpc_net_tx *udpc_net_tx_new(const udpc_net_sock *s, size_t cap, int wait_ms) {
  if (cap == 0 || cap > 1024) return NULL;
  udpc_net_tx *q = calloc(1, sizeof *q);
  if (q == NULL) return NULL;
  q->slots = calloc(cap, sizeof *q->slots);
  q->msgs = calloc(cap, sizeof *q->msgs);
  q->iov = calloc(cap, sizeof *q->iov);
  if (q->slots == NULL || q->msgs == NULL || q->iov == NULL) {
    udpc_net_tx_free(q);
    return NULL;
  }
  q->fd = s->fd;
  q->family = s->family;
  q->wait_ms = wait_ms < 0 ? 0 : wait_ms;
  q->cap = cap;
  for (size_t i = 0; i < cap; i++) {
    q->iov[i].iov_base = q->slots[i].data;
    q->msgs[i].msg_hdr.msg_iov = &q->iov[i];
    q->msgs[i].msg_hdr.msg_iovlen = 1;
    q->msgs[i].msg_hdr.msg_name = &q->slots[i].to;
  }
  return q;
}

void udpc_net_tx_free(udpc_net_tx *q) {
  if (q == NULL) return;
  free(q->slots);
  free(q->msgs);
  free(q->iov);
  free(q);
}

size_t udpc_net_tx_pending(const udpc_net_tx *q) { return q->n; }

void udpc_net_tx_get_stats(const udpc_net_tx *q, udpc_net_tx_stats *out) {
  *out = q->st;
}

static int64_t net_mono_ms(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

size_t udpc_net_tx_flush(udpc_net_tx *q, char *err, size_t err_cap) {
  size_t i = 0, lost = 0, n = q->n;
  int64_t deadline = -1; /* set at the first EAGAIN / ENOBUFS */
  if (n > q->st.max_queue) q->st.max_queue = n;
  while (i < n) {
    q->st.calls++;
    int r = sendmmsg(q->fd, &q->msgs[i], (unsigned)(n - i),
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0) {
      i += (size_t)r;
      q->st.sent += (uint64_t)r;
      continue;
    }
    int e = r < 0 ? errno : EIO;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
      int64_t t = net_mono_ms();
      if (deadline < 0) deadline = t + q->wait_ms;
      if (t >= deadline) {
        udpc_fs_err(err, err_cap,
                    "sendmmsg: %s for %d ms: dropped %zu datagram%s",
                    strerror(e), q->wait_ms, n - i, n - i == 1 ? "" : "s");
        q->st.dropped += n - i;
        lost += n - i;
        break;
      }
      q->st.waits++;
      /* ENOBUFS does not wake POLLOUT: give it a millisecond instead. A
       * failing poll just leads to the next try (and the deadline). */
      struct pollfd p = {.fd = q->fd, .events = POLLOUT, .revents = 0};
      int left = (int)(deadline - t);
      int pr = e == ENOBUFS ? poll(NULL, 0, 1) : poll(&p, 1, left);
      (void)pr;
      continue;
    }
    /* This datagram is refused (e.g. EMSGSIZE, EINVAL, an ICMP error
     * reported on the socket): count it, keep the order of the rest. */
    char a[UDPC_NET_ADDRSTR_MAX];
    udpc_addr to;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, &q->slots[i].to, sizeof q->slots[i].to);
    if (from_sockaddr(&ss, &to) == 0)
      udpc_net_format_addr(&to, a, sizeof a);
    else
      snprintf(a, sizeof a, "?");
    udpc_fs_err(err, err_cap, "sendmmsg %s: %s", a, strerror(e));
    q->st.errors++;
    lost++;
    i++;
  }
  q->n = 0;
  return lost;
}

int udpc_net_tx_add(udpc_net_tx *q, const udpc_addr *to, const uint8_t *data,
                    size_t len, char *err, size_t err_cap) {
  if (len > UDPC_MAX_PACKET) {
    q->st.errors++;
    udpc_fs_err(err, err_cap, "send: datagram of %zu bytes is too long", len);
    return -1;
  }
  /* Full: send what is queued first (losses show in the counters). */
  if (q->n == q->cap) (void)udpc_net_tx_flush(q, NULL, 0);
  net_tx_slot *sl = &q->slots[q->n];
  socklen_t sl_len = 0;
  if (to_net_sa(to, q->family, &sl->to, &sl_len) != 0) {
    char a[UDPC_NET_ADDRSTR_MAX];
    udpc_net_format_addr(to, a, sizeof a);
    udpc_fs_err(err, err_cap,
                "send %s: address family not usable on this socket", a);
    q->st.errors++;
    return -1;
  }
  if (len > 0) memcpy(sl->data, data, len);
  q->iov[q->n].iov_len = len;
  q->msgs[q->n].msg_hdr.msg_namelen = sl_len;
  q->msgs[q->n].msg_len = 0;
  q->n++;
  return 0;
}
