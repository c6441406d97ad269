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

/* "127.0.0.1:40123" or "[::1]:40123". */
void udpc_net_format_addr(const udpc_addr *a, char *buf, size_t cap);
/* Only the IP part ("127.0.0.1", "::1"). */
void udpc_net_format_ip(const udpc_addr *a, char *buf, size_t cap);

#endif /* UDPC_NET_H */
