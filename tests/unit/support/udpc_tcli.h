/*
 * udpc_tcli.h - the client fixture shared by the unit tests: a client core
 * (alice, credential 0xA5..) whose io.send and event callback record every
 * datagram and every event (formatted with udpc_event_format), fake server
 * and peer addresses, packet builders and the start-up exchange to ONLINE
 * with a table {alice(me) online, bob online, carol offline} v3.
 */
#ifndef UDPC_TCLI_H
#define UDPC_TCLI_H

#include <stddef.h>
#include <stdint.h>

#include "udpc_client.h"
#include "udpc_thex.h"
#include "udpc_wire.h"
#include "udpchat.h"

#define UDPC_TCLI_TOKEN 0x1122334455667788ULL
#define UDPC_TCLI_MAX_SENT 1024
#define UDPC_TCLI_MAX_EV 1024
#define UDPC_TCLI_EV_LINE 2048

typedef struct {
  udpc_addr to;
  uint8_t data[UDPC_MAX_PACKET + 1];
  size_t len;
} udpc_tcli_sent;

typedef struct {
  int type;
  int status;
  char line[UDPC_TCLI_EV_LINE];
} udpc_tcli_ev;

typedef struct {
  udpc_client *c;
  uint64_t now;
  uint64_t token;     /* the session token: in pkt(), and checked */
  size_t max_sent;    /* sends allowed; 0: UDPC_TCLI_MAX_SENT */
  size_t max_ev;      /* events allowed; 0: UDPC_TCLI_MAX_EV */
  size_t ev_cap;      /* each event line must fit; 0: UDPC_TCLI_EV_LINE */
  int check_sent;     /* R1 R2 R6 R7 R12 checks on every datagram sent */
  int pop_token;      /* pop_sent: token types but PROBE_ACK carry token */
  unsigned *ev_count; /* if set: events counted by type (coverage) */
  udpc_tcli_sent sent[UDPC_TCLI_MAX_SENT];
  size_t n_sent, sent_pos;
  udpc_tcli_ev ev[UDPC_TCLI_MAX_EV];
  size_t n_ev, ev_pos;
  uint8_t popbuf[UDPC_MAX_PACKET]; /* keeps borrowed text of pop_sent */
} udpc_tcli;

/* The fixed addresses: SERVER 10.0.0.1:9000, ME 10.0.0.2:40001, BOB
 * 10.0.0.3:40002, CAROL 10.0.0.4:40003, EVIL 10.0.0.66:40002. */
typedef struct {
  udpc_addr server, me, bob, carol, evil;
} udpc_tcli_addrs;

/* 10.0.0.d:port */
udpc_addr udpc_tcli_addr(uint8_t d, uint16_t port);
udpc_tcli_addrs udpc_tcli_std_addrs(void);
/* The same into five variables. */
void udpc_tcli_set_addrs(udpc_addr *server, udpc_addr *me, udpc_addr *bob,
                         udpc_addr *carol, udpc_addr *evil);
udpc_entry udpc_tcli_entry(const char *nick, int online, const udpc_addr *a);

/* Zeroes h (options too), now 1000, token UDPC_TCLI_TOKEN. */
void udpc_tcli_reset(udpc_tcli *h);
/* A client of `server` capturing into h, seed[i] = i + seed. */
udpc_client *udpc_tcli_client(udpc_tcli *h, const udpc_addr *server,
                              uint8_t seed);

udpc_packet udpc_tcli_pkt(const udpc_tcli *h, int type, uint32_t id);
void udpc_tcli_feed_raw(udpc_tcli *h, const udpc_addr *from,
                        const uint8_t *data, size_t len);
void udpc_tcli_feed(udpc_tcli *h, const udpc_addr *from, const udpc_packet *p);
int udpc_tcli_cmd(udpc_tcli *h, const char *line);
void udpc_tcli_advance(udpc_tcli *h, uint64_t t);

/* The next datagram sent: of `type`, to `to`. */
udpc_packet udpc_tcli_pop_sent(udpc_tcli *h, const udpc_addr *to, int type);
/* Datagram i sent (decoded in place). */
udpc_packet udpc_tcli_sent_at(const udpc_tcli *h, size_t i);
void udpc_tcli_no_more_sent(const udpc_tcli *h);
void udpc_tcli_expect_ev(udpc_tcli *h, int type, const char *line);
void udpc_tcli_no_more_ev(const udpc_tcli *h);

/* Start-up: REGISTER, COOKIE, REGISTER with cookie, REGISTER_RESULT OK with
 * mail_count, Welcome. Returns the id of the TABLE_REQ 0 that follows; ids
 * (if set) gets the ids of REGISTER, REGISTER, TABLE_REQ. */
uint32_t udpc_tcli_register(udpc_tcli *h, const udpc_addr *server,
                            uint32_t mail_count, uint32_t ids[3]);
void udpc_tcli_answer_page(udpc_tcli *h, const udpc_addr *server, uint32_t id,
                           uint64_t version, uint32_t total, uint32_t start,
                           const udpc_entry *e, uint8_t n);
/* Registered, table {alice(me) online, bob online, carol offline} v3,
 * nothing else sent or shown, ONLINE. */
void udpc_tcli_online_with_table(udpc_tcli *h, const udpc_tcli_addrs *a,
                                 uint32_t ids[3]);

#ifdef UDPC_TCLI_SHORT_NAMES
/* Short names on the file's harness H and addresses SERVER, ME, ... */
#define TOKEN UDPC_TCLI_TOKEN
typedef udpc_tcli_sent sent_t;
typedef udpc_tcli_ev ev_t;
static udpc_tcli H;
static udpc_addr SERVER, ME, BOB, CAROL, EVIL;
static inline void set_addrs(void) {
  udpc_tcli_set_addrs(&SERVER, &ME, &BOB, &CAROL, &EVIL);
}
static inline udpc_tcli_addrs addrs(void) {
  udpc_tcli_addrs a = {SERVER, ME, BOB, CAROL, EVIL};
  return a;
}
static inline udpc_nick mknick(const char *s) { return udpc_thex_nick(s); }
static inline udpc_entry entry(const char *nick, int online,
                               const udpc_addr *a) {
  return udpc_tcli_entry(nick, online, a);
}
static inline udpc_packet pkt(int type, uint32_t id) {
  return udpc_tcli_pkt(&H, type, id);
}
static inline void feed_raw(const udpc_addr *from, const uint8_t *data,
                            size_t len) {
  udpc_tcli_feed_raw(&H, from, data, len);
}
static inline void feed(const udpc_addr *from, const udpc_packet *p) {
  udpc_tcli_feed(&H, from, p);
}
static inline int cmd(const char *line) { return udpc_tcli_cmd(&H, line); }
static inline void advance(uint64_t t) { udpc_tcli_advance(&H, t); }
static inline udpc_packet pop_sent(const udpc_addr *to, int type) {
  return udpc_tcli_pop_sent(&H, to, type);
}
static inline void no_more_sent(void) { udpc_tcli_no_more_sent(&H); }
static inline void expect_ev(int type, const char *line) {
  udpc_tcli_expect_ev(&H, type, line);
}
static inline void no_more_ev(void) { udpc_tcli_no_more_ev(&H); }
static inline int teardown(void **state) {
  (void)state;
  udpc_client_free(H.c);
  H.c = NULL;
  return 0;
}
#endif

#endif
