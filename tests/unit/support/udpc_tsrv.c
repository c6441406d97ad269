/*
 * udpc_tsrv.c - the server fixture shared by the unit tests (udpc_tsrv.h).
 */
#include "udpc_tsrv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const udpc_tsrv_tok *tok_find(const udpc_tsrv *f, uint64_t token) {
  for (size_t i = 0; i < f->n_tok; i++)
    if (f->tok[i].token == token) return &f->tok[i];
  return NULL;
}

/* R1 R2 R6 R7 R14: with cfg.check_tokens, checked for every datagram the
 * server sends. */
static void check_tokens(udpc_tsrv *f, const udpc_addr *to, const uint8_t *data,
                         size_t len) {
  assert_true(len >= UDPC_HEADER_LEN && len <= UDPC_MAX_PACKET); /* R2 */
  assert_int_equal(data[0], UDPC_PROTOCOL_VERSION);              /* R6 */
  udpc_packet p;
  /* R1: the whole datagram is exactly one packet (no trailing bytes, no
   * second packet, nothing split). */
  assert_int_equal(udpc_wire_decode(&p, data, len), UDPC_OK);
  if (p.type == UDPC_PT_REGISTER_RESULT && p.u.reg_result.status == 0) {
    const udpc_tsrv_tok *t = tok_find(f, p.u.reg_result.token);
    if (t == NULL) {
      assert_true(f->n_tok < UDPC_TSRV_MAX_TOK);
      f->tok[f->n_tok].token = p.u.reg_result.token;
      f->tok[f->n_tok].addr = *to;
      f->n_tok++;
    } else {
      assert_true(udpc_addr_equal(&t->addr, to));
    }
  }
  if (udpc_ptype_has_token(p.type)) {
    /* R7 R14: the token of the session of the destination, sent only to
     * that session's address. */
    const udpc_tsrv_tok *t = tok_find(f, p.token);
    if (t == NULL)
      fail_msg("%s with a token never issued", udpc_ptype_name(p.type));
    if (!udpc_addr_equal(&t->addr, to))
      fail_msg("%s sent to another address than its session's",
               udpc_ptype_name(p.type));
  }
  f->n_checked++;
}

void udpc_tsrv_cap_send(void *ctx, const udpc_addr *to, const uint8_t *data,
                        size_t len) {
  udpc_tsrv *f = ctx;
  assert_true(len > 0 && len <= UDPC_MAX_PACKET);
  udpc_packet p;
  assert_int_equal(udpc_wire_decode(&p, data, len), UDPC_OK);
  if (f->cfg.check_tokens) check_tokens(f, to, data, len);
  if (!f->cfg.count_past_max) assert_true(f->n_out < f->cfg.max_out);
  if (f->n_out < f->cfg.max_out) {
    udpc_tsrv_out *o = &f->out[f->n_out];
    o->to = *to;
    o->len = len;
    memcpy(o->data, data, len);
  }
  f->n_out++;
}

static void cap_log(void *ctx, int level, const char *msg) {
  udpc_tsrv *f = ctx;
  assert_true(level >= 0 && level <= 3);
  assert_non_null(msg);
  assert_true(msg[0] != '\0');
  f->n_logs++;
  if (level == 3) {
    if (strncmp(msg, "rx ", 3) == 0) f->log_rx++;
    if (strncmp(msg, "tx ", 3) == 0) f->log_tx++;
    if (strncmp(msg, "hold ", 5) == 0) f->log_hold++;
    if (strncmp(msg, "drop ", 5) == 0) f->log_drop++;
    return;
  }
  if (f->n_lines < UDPC_TSRV_MAX_LOG)
    snprintf(f->lines[f->n_lines], sizeof f->lines[0], "%d %s", level, msg);
  f->n_lines++;
}

static const char *const OPS[] = {"op"};

udpc_server *udpc_tsrv_server(udpc_tsrv *f) {
  udpc_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  for (int i = 0; i < 32; i++)
    cfg.seed[i] = (uint8_t)(i * f->cfg.seed_mul + f->cfg.seed_add);
  cfg.operators = OPS;
  cfg.n_operators = 1;
  cfg.max_clients = f->cfg.max_clients;
  cfg.mail_per_recipient = f->cfg.mail_per_recipient;
  cfg.mail_total = f->cfg.mail_total;
  cfg.source_rate = f->cfg.source_rate;
  cfg.source_burst = f->cfg.source_burst;
  cfg.session_rate = f->cfg.session_rate;
  cfg.session_burst = f->cfg.session_burst;
  cfg.store = f->st;
  cfg.io.ctx = f;
  cfg.io.send = udpc_tsrv_cap_send;
  cfg.io.log = cap_log;
  cfg.io.log_limit = f->cfg.log_limit;
  return udpc_server_new(&cfg, f->now);
}

udpc_tsrv *udpc_tsrv_new(const udpc_tsrv_cfg *cfg) {
  udpc_tsrv *f = calloc(1, sizeof *f);
  assert_non_null(f);
  if (cfg) f->cfg = *cfg;
  if (f->cfg.max_out == 0) f->cfg.max_out = UDPC_TSRV_MAX_OUT;
  f->out = calloc(f->cfg.max_out, sizeof *f->out);
  assert_non_null(f->out);
  f->st = udpc_store_mem_new();
  assert_non_null(f->st);
  f->now = UDPC_TSRV_T0;
  f->next_id = 1000;
  f->s = udpc_tsrv_server(f);
  assert_non_null(f->s);
  return f;
}

void udpc_tsrv_free(udpc_tsrv *f) {
  udpc_server_free(f->s);
  udpc_store_free(f->st);
  free(f->out);
  free(f);
}

udpc_addr udpc_tsrv_addr(unsigned n) {
  return udpc_thex_addr4(10, (uint8_t)(n >> 8), (uint8_t)n, 1,
                         (uint16_t)(40000 + n));
}

udpc_addr udpc_tsrv_addr_wide(unsigned n) {
  return udpc_thex_addr4(10, (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n,
                         (uint16_t)(40000 + (n & 0xfff)));
}

void udpc_tsrv_clear(udpc_tsrv *f) { f->n_out = 0; }

size_t udpc_tsrv_feed_raw(udpc_tsrv *f, const udpc_addr *from, const uint8_t *d,
                          size_t n) {
  assert_int_equal(udpc_server_recv(f->s, f->now, from, d, n), UDPC_OK);
  return n;
}

size_t udpc_tsrv_feed(udpc_tsrv *f, const udpc_addr *from,
                      const udpc_packet *p) {
  uint8_t buf[UDPC_MAX_PACKET];
  int n = udpc_wire_encode(p, buf, sizeof buf);
  assert_true(n > 0);
  return udpc_tsrv_feed_raw(f, from, buf, (size_t)n);
}

void udpc_tsrv_flush_ok(udpc_tsrv *f) {
  assert_int_equal(udpc_server_flush(f->s, f->now), UDPC_OK);
}

void udpc_tsrv_advance(udpc_tsrv *f, uint64_t ms) {
  f->now += ms;
  udpc_server_handle_expiry(f->s, f->now);
}

void udpc_tsrv_close_window(udpc_tsrv *f) {
  udpc_tsrv_advance(f, UDPC_T_DELTA_WINDOW);
  udpc_tsrv_flush_ok(f);
}

udpc_packet udpc_tsrv_out_at(const udpc_tsrv *f, size_t i) {
  udpc_packet p;
  assert_true(i < f->n_out && i < f->cfg.max_out);
  assert_int_equal(udpc_wire_decode(&p, f->out[i].data, f->out[i].len),
                   UDPC_OK);
  return p;
}

udpc_packet udpc_tsrv_only_out(const udpc_tsrv *f, const udpc_addr *to) {
  assert_int_equal(f->n_out, 1);
  if (to) assert_true(udpc_addr_equal(&f->out[0].to, to));
  return udpc_tsrv_out_at(f, 0);
}

size_t udpc_tsrv_count_out(const udpc_tsrv *f, uint8_t type,
                           const udpc_addr *to) {
  size_t n = 0;
  for (size_t i = 0; i < f->n_out && i < f->cfg.max_out; i++) {
    udpc_packet p = udpc_tsrv_out_at(f, i);
    if (p.type == type && (!to || udpc_addr_equal(&f->out[i].to, to))) n++;
  }
  return n;
}

udpc_packet udpc_tsrv_pkt(uint8_t type, uint32_t id, uint64_t token) {
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = type;
  p.id = id;
  p.token = token;
  return p;
}

udpc_packet udpc_tsrv_reg_pkt(const char *nick, uint8_t cred, uint32_t id,
                              const uint8_t *cookie, uint8_t cookie_len) {
  udpc_packet p = udpc_tsrv_pkt(UDPC_PT_REGISTER, id, 0);
  p.u.reg.nick = udpc_thex_nick(nick);
  memset(p.u.reg.credential, cred, UDPC_CRED_LEN);
  p.u.reg.cookie_len = cookie_len;
  if (cookie_len) memcpy(p.u.reg.cookie, cookie, cookie_len);
  return p;
}

udpc_packet udpc_tsrv_save_pkt(uint64_t token, uint32_t id, const char *to,
                               uint32_t msg_id, const char *text) {
  udpc_packet p = udpc_tsrv_pkt(UDPC_PT_SAVE, id, token);
  p.u.save.to = udpc_thex_nick(to);
  p.u.save.msg_id = msg_id;
  p.u.save.text.p = (const uint8_t *)text;
  p.u.save.text.len = (uint16_t)strlen(text);
  return p;
}

udpc_packet udpc_tsrv_get_cookie(udpc_tsrv *f, const udpc_addr *from,
                                 const char *nick, uint8_t cred) {
  udpc_tsrv_clear(f);
  udpc_packet r = udpc_tsrv_reg_pkt(nick, cred, f->next_id++, NULL, 0);
  udpc_tsrv_feed(f, from, &r);
  udpc_packet c = udpc_tsrv_only_out(f, from);
  assert_int_equal(c.type, UDPC_PT_COOKIE);
  assert_int_equal(c.id, r.id);
  udpc_tsrv_clear(f);
  return c;
}

udpc_packet udpc_tsrv_reg_with(udpc_tsrv *f, const udpc_addr *from,
                               const char *nick, uint8_t cred,
                               const udpc_packet *cookie) {
  udpc_tsrv_clear(f);
  udpc_packet r =
      udpc_tsrv_reg_pkt(nick, cred, f->next_id++, cookie->u.cookie.cookie,
                        cookie->u.cookie.cookie_len);
  udpc_tsrv_feed(f, from, &r);
  udpc_tsrv_flush_ok(f);
  for (size_t i = 0; i < f->n_out && i < f->cfg.max_out; i++) {
    udpc_packet p = udpc_tsrv_out_at(f, i);
    if (p.type == UDPC_PT_REGISTER_RESULT) {
      assert_int_equal(p.id, r.id);
      assert_true(udpc_addr_equal(&f->out[i].to, from));
      return p;
    }
  }
  udpc_packet none = udpc_tsrv_pkt(0, 0, 0);
  if (f->n_out > 0) none.type = udpc_tsrv_out_at(f, 0).type;
  return none;
}

udpc_packet udpc_tsrv_reg_result(udpc_tsrv *f, const udpc_addr *from,
                                 const char *nick, uint8_t cred) {
  udpc_packet c = udpc_tsrv_get_cookie(f, from, nick, cred);
  udpc_packet p = udpc_tsrv_reg_with(f, from, nick, cred, &c);
  if (p.type != UDPC_PT_REGISTER_RESULT) fail_msg("no REGISTER_RESULT");
  return p;
}

uint64_t udpc_tsrv_reg(udpc_tsrv *f, const udpc_addr *from, const char *nick,
                       uint8_t cred) {
  udpc_packet p = udpc_tsrv_reg_result(f, from, nick, cred);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_OK);
  assert_true(p.u.reg_result.token != 0);
  udpc_tsrv_clear(f);
  return p.u.reg_result.token;
}

void udpc_tsrv_walk(udpc_tsrv *f, const udpc_addr *from, uint64_t token) {
  uint32_t start = 0;
  for (;;) {
    udpc_tsrv_clear(f);
    udpc_packet q = udpc_tsrv_pkt(UDPC_PT_TABLE_REQ, f->next_id++, token);
    q.u.table_req.start = start;
    udpc_tsrv_feed(f, from, &q);
    udpc_packet p = udpc_tsrv_only_out(f, from);
    assert_int_equal(p.type, UDPC_PT_TABLE_PAGE);
    assert_int_equal(p.id, q.id);
    assert_int_equal(p.u.table_page.start, start);
    start += p.u.table_page.count;
    if (start >= p.u.table_page.total) break;
    assert_true(p.u.table_page.count > 0);
  }
  udpc_tsrv_clear(f);
}

udpc_server_stats udpc_tsrv_stats(const udpc_tsrv *f) {
  udpc_server_stats st;
  udpc_server_get_stats(f->s, &st);
  return st;
}

uint32_t udpc_tsrv_mail_count(udpc_tsrv *f, const char *nick) {
  udpc_nick n = udpc_thex_nick(nick);
  uint32_t c = 0;
  assert_int_equal(udpc_store_mail_count(f->st, &n, &c), UDPC_OK);
  return c;
}

int udpc_tsrv_has_line(const udpc_tsrv *f, const char *needle) {
  for (size_t i = 0; i < f->n_lines && i < UDPC_TSRV_MAX_LOG; i++)
    if (strstr(f->lines[i], needle)) return 1;
  return 0;
}
