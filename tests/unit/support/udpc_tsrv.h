/*
 * udpc_tsrv.h - the server fixture shared by the unit tests: a server core
 * on an in-memory store whose io.send captures every datagram (each must
 * decode and be at most 1200 bytes) and whose io.log counts and keeps the
 * log lines, fake client addresses, packet builders and the registration
 * round trip (REGISTER -> COOKIE -> REGISTER -> REGISTER_RESULT).
 */
#ifndef UDPC_TSRV_H
#define UDPC_TSRV_H

#include <stddef.h>
#include <stdint.h>

#include "udpc_store.h"
#include "udpc_thex.h"
#include "udpc_wire.h"
#include "udpchat.h"

#define UDPC_TSRV_T0 1764000000000ULL /* UTC ms, a multiple of 30 s */
#define UDPC_TSRV_MAX_OUT 8192        /* default capacity of out[] */
#define UDPC_TSRV_MAX_LOG 256         /* non-debug log lines kept */
#define UDPC_TSRV_MAX_TOK 512         /* tokens tracked by check_tokens */

typedef struct {
  udpc_addr to;
  size_t len;
  uint8_t data[UDPC_MAX_PACKET];
} udpc_tsrv_out;

typedef struct {
  uint8_t seed_mul, seed_add; /* seed[i] = i * seed_mul + seed_add */
  uint32_t max_clients, mail_per_recipient, mail_total;
  uint32_t source_rate, source_burst, session_rate, session_burst;
  size_t max_out;     /* capacity of out[]; 0: UDPC_TSRV_MAX_OUT */
  int count_past_max; /* sends past max_out are counted, not kept (else
                           they fail the test) */
  int check_tokens;   /* R1 R2 R6 R7 R14 checks on every datagram */
  int log_limit;      /* udpc_io.log_limit of the server (0: every level) */
} udpc_tsrv_cfg;

typedef struct {
  uint64_t token;
  udpc_addr addr;
} udpc_tsrv_tok;

typedef struct {
  udpc_store *st;
  udpc_server *s;
  uint64_t now;
  udpc_tsrv_cfg cfg;
  udpc_tsrv_out *out;
  size_t n_out; /* datagrams sent (kept: the first cfg.max_out) */
  size_t n_logs;
  int log_rx, log_tx, log_hold, log_drop; /* debug lines seen, by prefix */
  size_t n_lines;                         /* non-debug log lines */
  char lines[UDPC_TSRV_MAX_LOG][256];     /* the first MAX_LOG of them */
  uint32_t next_id;
  udpc_tsrv_tok tok[UDPC_TSRV_MAX_TOK]; /* with check_tokens: every token
                                           issued, with its address */
  size_t n_tok;
  size_t n_checked; /* datagrams checked by check_tokens */
} udpc_tsrv;

/* A fixture (store, server at UDPC_TSRV_T0, next_id 1000) from `cfg`. */
udpc_tsrv *udpc_tsrv_new(const udpc_tsrv_cfg *cfg);
/* A new server on f->st with f->cfg at f->now (a restart: the caller frees
 * the old one). */
udpc_server *udpc_tsrv_server(udpc_tsrv *f);
void udpc_tsrv_free(udpc_tsrv *f);
/* The capturing io.send (ctx: the fixture), for servers built by hand. */
void udpc_tsrv_cap_send(void *ctx, const udpc_addr *to, const uint8_t *data,
                        size_t len);

/* 10.(n>>8).(n&255).1 port 40000+n. */
udpc_addr udpc_tsrv_addr(unsigned n);
/* 10.(n>>16).(n>>8).(n&255) port 40000+(n&0xfff): up to 2^24 sources. */
udpc_addr udpc_tsrv_addr_wide(unsigned n);

void udpc_tsrv_clear(udpc_tsrv *f);
size_t udpc_tsrv_feed_raw(udpc_tsrv *f, const udpc_addr *from, const uint8_t *d,
                          size_t n);
/* Encodes and feeds `p`; returns its encoded length. */
size_t udpc_tsrv_feed(udpc_tsrv *f, const udpc_addr *from,
                      const udpc_packet *p);
void udpc_tsrv_flush_ok(udpc_tsrv *f);
/* f->now += ms, then the expiry handler (no flush). */
void udpc_tsrv_advance(udpc_tsrv *f, uint64_t ms);
/* Close the table-change coalescing window (P6.3): f->now +=
 * UDPC_T_DELTA_WINDOW, the expiry handler, then a flush that must succeed
 * (it emits the window's TABLE_DELTAs). Outputs are kept. */
void udpc_tsrv_close_window(udpc_tsrv *f);

udpc_packet udpc_tsrv_out_at(const udpc_tsrv *f, size_t i);
/* The only output; asserts there is exactly one and where it went. */
udpc_packet udpc_tsrv_only_out(const udpc_tsrv *f, const udpc_addr *to);
/* Number of outputs of a type sent to `to` (NULL: anywhere). */
size_t udpc_tsrv_count_out(const udpc_tsrv *f, uint8_t type,
                           const udpc_addr *to);

udpc_packet udpc_tsrv_pkt(uint8_t type, uint32_t id, uint64_t token);
udpc_packet udpc_tsrv_reg_pkt(const char *nick, uint8_t cred, uint32_t id,
                              const uint8_t *cookie, uint8_t cookie_len);
udpc_packet udpc_tsrv_save_pkt(uint64_t token, uint32_t id, const char *to,
                               uint32_t msg_id, const char *text);

/* REGISTER without cookie -> one COOKIE with its id; returns the COOKIE. */
udpc_packet udpc_tsrv_get_cookie(udpc_tsrv *f, const udpc_addr *from,
                                 const char *nick, uint8_t cred);
/* REGISTER with the cookie, flush; returns the REGISTER_RESULT (its id and
 * address checked), or a packet of type 0 if the server answered something
 * else (e.g. a new COOKIE: then its type). */
udpc_packet udpc_tsrv_reg_with(udpc_tsrv *f, const udpc_addr *from,
                               const char *nick, uint8_t cred,
                               const udpc_packet *cookie);
/* Full exchange; returns the REGISTER_RESULT (outputs left in f->out). */
udpc_packet udpc_tsrv_reg_result(udpc_tsrv *f, const udpc_addr *from,
                                 const char *nick, uint8_t cred);
/* Full exchange that must succeed; returns the (nonzero) token. */
uint64_t udpc_tsrv_reg(udpc_tsrv *f, const udpc_addr *from, const char *nick,
                       uint8_t cred);
/* A whole snapshot walk of the session (token, from) as a client does it
 * (P6.2): TABLE_REQ from start 0, each with a new id (f->next_id++), each
 * answered by exactly one TABLE_PAGE at the asked start, until a page
 * reaches the end of the table; then clears the outputs. Afterwards the
 * server no longer counts the session as walking or new (P6.3 "Walking
 * sessions"): it gets every changed entry in its deltas. */
void udpc_tsrv_walk(udpc_tsrv *f, const udpc_addr *from, uint64_t token);

udpc_server_stats udpc_tsrv_stats(const udpc_tsrv *f);
uint32_t udpc_tsrv_mail_count(udpc_tsrv *f, const char *nick);
/* 1 if a kept non-debug log line ("<level> <msg>") contains `needle`. */
int udpc_tsrv_has_line(const udpc_tsrv *f, const char *needle);

#ifdef UDPC_TSRV_SHORT_NAMES
/* Short names for the test files that define UDPC_TSRV_SHORT_NAMES. */
typedef udpc_tsrv fx;
#define T0 UDPC_TSRV_T0
static inline udpc_nick nk(const char *s) { return udpc_thex_nick(s); }
static inline void clear(fx *f) { udpc_tsrv_clear(f); }
static inline size_t feed_raw(fx *f, const udpc_addr *from, const uint8_t *d,
                              size_t n) {
  return udpc_tsrv_feed_raw(f, from, d, n);
}
static inline size_t feed(fx *f, const udpc_addr *from, const udpc_packet *p) {
  return udpc_tsrv_feed(f, from, p);
}
static inline void flush_ok(fx *f) { udpc_tsrv_flush_ok(f); }
static inline void close_window(fx *f) { udpc_tsrv_close_window(f); }
static inline udpc_packet out_at(const fx *f, size_t i) {
  return udpc_tsrv_out_at(f, i);
}
static inline udpc_packet only_out(const fx *f, const udpc_addr *to) {
  return udpc_tsrv_only_out(f, to);
}
static inline size_t count_out(const fx *f, uint8_t type, const udpc_addr *to) {
  return udpc_tsrv_count_out(f, type, to);
}
static inline udpc_packet pkt(uint8_t type, uint32_t id, uint64_t token) {
  return udpc_tsrv_pkt(type, id, token);
}
static inline udpc_packet reg_pkt(const char *nick, uint8_t cred, uint32_t id,
                                  const uint8_t *cookie, uint8_t cookie_len) {
  return udpc_tsrv_reg_pkt(nick, cred, id, cookie, cookie_len);
}
static inline udpc_packet save_pkt(uint64_t token, uint32_t id, const char *to,
                                   uint32_t msg_id, const char *text) {
  return udpc_tsrv_save_pkt(token, id, to, msg_id, text);
}
static inline udpc_packet get_cookie(fx *f, const udpc_addr *from,
                                     const char *nick, uint8_t cred) {
  return udpc_tsrv_get_cookie(f, from, nick, cred);
}
static inline udpc_packet reg_with(fx *f, const udpc_addr *from,
                                   const char *nick, uint8_t cred,
                                   const udpc_packet *cookie) {
  return udpc_tsrv_reg_with(f, from, nick, cred, cookie);
}
static inline udpc_packet reg_result(fx *f, const udpc_addr *from,
                                     const char *nick, uint8_t cred) {
  return udpc_tsrv_reg_result(f, from, nick, cred);
}
static inline uint64_t reg(fx *f, const udpc_addr *from, const char *nick,
                           uint8_t cred) {
  return udpc_tsrv_reg(f, from, nick, cred);
}
static inline void walk_table(fx *f, const udpc_addr *from, uint64_t token) {
  udpc_tsrv_walk(f, from, token);
}
static inline udpc_server_stats stats(const fx *f) {
  return udpc_tsrv_stats(f);
}
static inline uint32_t mail_count(fx *f, const char *nick) {
  return udpc_tsrv_mail_count(f, nick);
}
static inline int has_line(const fx *f, const char *needle) {
  return udpc_tsrv_has_line(f, needle);
}
static inline int teardown(void **state) {
  udpc_tsrv_free(*state);
  return 0;
}
#endif

#endif
