/*
 * udpc_net.h - UDP socket helpers for the udpchat driver (in the style of
 * redis anet.c): every function that can fail writes a one-line English
 * reason into the caller's err buffer and returns -1.
 *
 * Addresses cross the core boundary as udpc_addr. A socket bound to the IPv6
 * wildcard is dual-stack: IPv4 peers show up as IPv4-mapped IPv6 addresses,
 * which udpc_net converts to family 4 on receive and back on send, so the
 * core only ever sees plain IPv4 or IPv6 addresses.
 */
#ifndef UDPC_NET_H
#define UDPC_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "udpchat.h"

#define UDPC_NET_ADDRSTR_MAX 64 /* "[" + INET6_ADDRSTRLEN + "]:" + port */
#define UDPC_NET_RCVBUF (4 * 1024 * 1024)
/* Datagrams per recvmmsg/sendmmsg call at most (batched I/O below). */
#define UDPC_NET_BATCH 64

typedef struct {
  int fd;
  int family; /* AF_INET or AF_INET6: the socket's own family */
} udpc_net_sock;

/* Parse a port argument: decimal digits only, 0 or 1024..65535. */
int udpc_net_parse_port(const char *s, uint16_t *out, char *err,
                        size_t err_cap);

/* Resolve host (IPv4/IPv6 literal or name) for sending; the first result of
 * getaddrinfo (the system's preference order) wins. */
int udpc_net_resolve(const char *host, uint16_t port, udpc_addr *out, char *err,
                     size_t err_cap);

/* Create a non-blocking UDP socket bound to host:port. host NULL binds the
 * IPv6 wildcard in dual-stack mode, falling back to 0.0.0.0 when IPv6 is not
 * available. Also enlarges the receive buffer (best effort). */
int udpc_net_bind(udpc_net_sock *out, const char *host, uint16_t port,
                  char *err, size_t err_cap);
void udpc_net_close(udpc_net_sock *s);

/* The address the socket is bound to (after bind with port 0). */
int udpc_net_local(const udpc_net_sock *s, udpc_addr *out, char *err,
                   size_t err_cap);

/* Send one datagram. Returns 0, or -1 with err (EAGAIN included: UDP may
 * drop, the protocol retransmits). */
int udpc_net_sendto(const udpc_net_sock *s, const udpc_addr *to,
                    const uint8_t *data, size_t len, char *err, size_t err_cap);

/* Receive one datagram without blocking. Returns its full length (it may be
 * larger than cap when truncated: callers pass a 64 KiB buffer), 0 for an
 * empty datagram, -2 when nothing is waiting, -1 on error. */
ssize_t udpc_net_recvfrom(const udpc_net_sock *s, uint8_t *buf, size_t cap,
                          udpc_addr *from, char *err, size_t err_cap);

/* Ask for socket buffers of `want` bytes each (SO_RCVBUFFORCE and
 * SO_SNDBUFFORCE when permitted, else SO_RCVBUF / SO_SNDBUF, capped by the
 * kernel). *rcv and *snd get the sizes getsockopt reports afterwards (Linux
 * reports twice the value it was given: the bookkeeping overhead), or -1
 * when unknown. Best effort: never fails. */
void udpc_net_set_buffers(const udpc_net_sock *s, int want, int *rcv, int *snd);

/* ---- Batched I/O (recvmmsg / sendmmsg), for the server ----------------
 * Both objects are allocated once, at start; nothing on the per-datagram
 * path allocates. */

/* Receive side: UDPC_NET_BATCH buffers of UDPC_MAX_PACKET + 1 bytes. */
typedef struct udpc_net_rx udpc_net_rx;
udpc_net_rx *udpc_net_rx_new(void);
void udpc_net_rx_free(udpc_net_rx *rx);

/* One recvmmsg without blocking: returns the number of datagrams received
 * (0 when nothing is waiting), or -1 with err (e.g. an ICMP error surfacing
 * on the socket: the caller goes on). */
int udpc_net_rx_recv(udpc_net_rx *rx, const udpc_net_sock *s, char *err,
                     size_t err_cap);

/* The i-th datagram of the last udpc_net_rx_recv. *len is at most
 * UDPC_MAX_PACKET + 1: a longer datagram was truncated to that (the core
 * drops anything longer than UDPC_MAX_PACKET). IPv4-mapped IPv6 sources are
 * unmapped as in udpc_net_recvfrom. Returns 0, or -1 for a source that is
 * not IP (skip it). */
int udpc_net_rx_get(const udpc_net_rx *rx, int i, const uint8_t **data,
                    size_t *len, udpc_addr *from);

/* Send side: a FIFO of preallocated slots sent with sendmmsg. Datagrams
 * leave in the order they were queued. When the socket buffer is full
 * (EAGAIN, ENOBUFS) a flush waits for POLLOUT at most wait_ms in all, then
 * drops what is left (counted; UDP is lossy and the protocol retransmits);
 * a datagram the kernel refuses for another reason is counted and skipped. */
typedef struct udpc_net_tx udpc_net_tx;

typedef struct {
  uint64_t calls;     /* sendmmsg calls */
  uint64_t sent;      /* datagrams the kernel took */
  uint64_t waits;     /* polls for POLLOUT after EAGAIN / ENOBUFS */
  uint64_t dropped;   /* datagrams dropped after the wait ran out */
  uint64_t errors;    /* datagrams refused (address unusable, EMSGSIZE...) */
  uint64_t max_queue; /* largest number of datagrams sent by one flush */
} udpc_net_tx_stats;

/* cap: slots (1..1024); wait_ms: the POLLOUT budget of one flush. The
 * socket is borrowed and must outlive the queue. */
udpc_net_tx *udpc_net_tx_new(const udpc_net_sock *s, size_t cap, int wait_ms);
void udpc_net_tx_free(udpc_net_tx *q);

/* Copy one datagram into the queue (flushing first when it is full).
 * Returns 0, or -1 with err when the address is not usable on the socket
 * or the datagram is longer than UDPC_MAX_PACKET (counted in errors). */
int udpc_net_tx_add(udpc_net_tx *q, const udpc_addr *to, const uint8_t *data,
                    size_t len, char *err, size_t err_cap);

/* Send everything queued. Returns the number of datagrams dropped or
 * refused by this flush (the last reason in err), 0 when all went out. */
size_t udpc_net_tx_flush(udpc_net_tx *q, char *err, size_t err_cap);

/* Queued, not yet sent. */
size_t udpc_net_tx_pending(const udpc_net_tx *q);
void udpc_net_tx_get_stats(const udpc_net_tx *q, udpc_net_tx_stats *out);

/* "127.0.0.1:40123" or "[::1]:40123". */
void udpc_net_format_addr(const udpc_addr *a, char *buf, size_t cap);
/* Only the IP part ("127.0.0.1", "::1"). */
void udpc_net_format_ip(const udpc_addr *a, char *buf, size_t cap);

#endif /* UDPC_NET_H */
