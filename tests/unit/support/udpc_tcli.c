/*
 * udpc_tcli.c - the client fixture shared by the unit tests (udpc_tcli.h).
 */
#include "udpc_tcli.h"

#include <setjmp.h>
#include <stdarg.h>
#include <string.h>

#include <cmocka.h>

udpc_addr udpc_tcli_addr(uint8_t d, uint16_t port) {
  return udpc_thex_addr4(10, 0, 0, d, port);
}

udpc_tcli_addrs udpc_tcli_std_addrs(void) {
  udpc_tcli_addrs a;
  a.server = udpc_tcli_addr(1, 9000);
  a.me = udpc_tcli_addr(2, 40001);
  a.bob = udpc_tcli_addr(3, 40002);
  a.carol = udpc_tcli_addr(4, 40003);
  a.evil = udpc_tcli_addr(66, 40002);
  return a;
}

void udpc_tcli_set_addrs(udpc_addr *server, udpc_addr *me, udpc_addr *bob,
                         udpc_addr *carol, udpc_addr *evil) {
  udpc_tcli_addrs a = udpc_tcli_std_addrs();
  *server = a.server;
  *me = a.me;
  *bob = a.bob;
  *carol = a.carol;
  *evil = a.evil;
}

udpc_entry udpc_tcli_entry(const char *nick, int online, const udpc_addr *a) {
  udpc_entry e;
  memset(&e, 0, sizeof e);
  e.nick = udpc_thex_nick(nick);
  e.status = (uint8_t)(online ? UDPC_STATUS_ONLINE : UDPC_STATUS_OFFLINE);
  e.addr = *a;
  return e;
}

/* R1 R2 R6 R7 R12: with check_sent, checked for every datagram the client
 * sends. */
static void check_sent(const udpc_tcli *h, const uint8_t *data, size_t len) {
  assert_true(len >= UDPC_HEADER_LEN && len <= UDPC_MAX_PACKET); /* R2 */
  assert_int_equal(data[0], UDPC_PROTOCOL_VERSION);              /* R6 */
  udpc_packet p;
  assert_int_equal(udpc_wire_decode(&p, data, len), UDPC_OK); /* R1 */
  assert_true(p.type != UDPC_PT_ERROR);                       /* R12 */
  if (udpc_ptype_has_token(p.type) && p.token != h->token)    /* R7 */
    fail_msg("%s sent with token %016llx, session token %016llx",
             udpc_ptype_name(p.type), (unsigned long long)p.token,
             (unsigned long long)h->token);
}

static void cap_send(void *ctx, const udpc_addr *to, const uint8_t *data,
                     size_t len) {
  udpc_tcli *h = ctx;
  assert_true(len <= UDPC_MAX_PACKET);
  if (h->check_sent) check_sent(h, data, len);
  size_t max = h->max_sent ? h->max_sent : UDPC_TCLI_MAX_SENT;
  assert_true(h->n_sent < max && h->n_sent < UDPC_TCLI_MAX_SENT);
  h->sent[h->n_sent].to = *to;
  memcpy(h->sent[h->n_sent].data, data, len);
  h->sent[h->n_sent].len = len;
  h->n_sent++;
}

static void cap_event(void *ctx, const udpc_event *ev) {
  udpc_tcli *h = ctx;
  if (h->ev_count && ev->type > 0 && ev->type <= UDPC_EV_NOTICE)
    h->ev_count[ev->type]++;
  size_t max = h->max_ev ? h->max_ev : UDPC_TCLI_MAX_EV;
  assert_true(h->n_ev < max && h->n_ev < UDPC_TCLI_MAX_EV);
  size_t cap = h->ev_cap && h->ev_cap < UDPC_TCLI_EV_LINE ? h->ev_cap
                                                          : UDPC_TCLI_EV_LINE;
  int n = udpc_event_format(ev, h->ev[h->n_ev].line, cap);
  assert_true(n >= 0);
  h->ev[h->n_ev].type = ev->type;
  h->ev[h->n_ev].status = ev->status;
  h->n_ev++;
}

void udpc_tcli_reset(udpc_tcli *h) {
  memset(h, 0, sizeof *h);
  h->now = 1000;
  h->token = UDPC_TCLI_TOKEN;
}

udpc_client *udpc_tcli_client(udpc_tcli *h, const udpc_addr *server,
                              uint8_t seed) {
  udpc_client_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.nick = udpc_thex_nick("alice");
  memset(cfg.credential, 0xA5, sizeof cfg.credential);
  cfg.server = *server;
  for (int i = 0; i < 32; i++) cfg.seed[i] = (uint8_t)(i + seed);
  cfg.io.ctx = h;
  cfg.io.send = cap_send;
  cfg.event = cap_event;
  return udpc_client_new(&cfg, h->now);
}

udpc_packet udpc_tcli_pkt(const udpc_tcli *h, int type, uint32_t id) {
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = (uint8_t)type;
  p.id = id;
  p.token = h->token;
  return p;
}

void udpc_tcli_feed_raw(udpc_tcli *h, const udpc_addr *from,
                        const uint8_t *data, size_t len) {
  assert_int_equal(udpc_client_recv(h->c, h->now, from, data, len), UDPC_OK);
}

void udpc_tcli_feed(udpc_tcli *h, const udpc_addr *from, const udpc_packet *p) {
  uint8_t buf[UDPC_MAX_PACKET];
  int n = udpc_wire_encode(p, buf, sizeof buf);
  assert_true(n > 0);
  udpc_tcli_feed_raw(h, from, buf, (size_t)n);
}

int udpc_tcli_cmd(udpc_tcli *h, const char *line) {
  return udpc_client_command(h->c, h->now, line, strlen(line));
}

void udpc_tcli_advance(udpc_tcli *h, uint64_t t) {
  h->now = t;
  udpc_client_handle_expiry(h->c, t);
}

udpc_packet udpc_tcli_pop_sent(udpc_tcli *h, const udpc_addr *to, int type) {
  udpc_packet p;
  if (h->sent_pos >= h->n_sent)
    fail_msg("nothing sent, expected %s", udpc_ptype_name(type));
  udpc_tcli_sent *s = &h->sent[h->sent_pos++];
  memcpy(h->popbuf, s->data, s->len);
  assert_int_equal(udpc_wire_decode(&p, h->popbuf, s->len), UDPC_OK);
  if (p.type != type)
    fail_msg("sent %s, expected %s", udpc_ptype_name(p.type),
             udpc_ptype_name(type));
  assert_true(udpc_addr_equal(&s->to, to));
  if (h->pop_token && udpc_ptype_has_token(type) && type != UDPC_PT_PROBE_ACK)
    assert_true(p.token == h->token);
  return p;
}

udpc_packet udpc_tcli_sent_at(const udpc_tcli *h, size_t i) {
  udpc_packet p;
  assert_true(i < h->n_sent);
  assert_int_equal(udpc_wire_decode(&p, h->sent[i].data, h->sent[i].len),
                   UDPC_OK);
  return p;
}

void udpc_tcli_no_more_sent(const udpc_tcli *h) {
  if (h->sent_pos < h->n_sent) {
    udpc_packet p = udpc_tcli_sent_at(h, h->sent_pos);
    fail_msg("unexpected %s sent", udpc_ptype_name(p.type));
  }
}

void udpc_tcli_expect_ev(udpc_tcli *h, int type, const char *line) {
  if (h->ev_pos >= h->n_ev) fail_msg("missing event: %s", line);
  udpc_tcli_ev *e = &h->ev[h->ev_pos++];
  assert_string_equal(e->line, line);
  assert_int_equal(e->type, type);
}

void udpc_tcli_no_more_ev(const udpc_tcli *h) {
  if (h->ev_pos < h->n_ev)
    fail_msg("unexpected event: %s", h->ev[h->ev_pos].line);
}

uint32_t udpc_tcli_register(udpc_tcli *h, const udpc_addr *server,
                            uint32_t mail_count, uint32_t ids[3]) {
  assert_int_equal(udpc_client_start(h->c, h->now), UDPC_OK);
  udpc_packet r1 = udpc_tcli_pop_sent(h, server, UDPC_PT_REGISTER);
  assert_int_equal(r1.u.reg.cookie_len, 0);
  udpc_packet ck = udpc_tcli_pkt(h, UDPC_PT_COOKIE, r1.id);
  ck.u.cookie.cookie_len = 20;
  memset(ck.u.cookie.cookie, 0x5C, 20);
  udpc_tcli_feed(h, server, &ck);
  udpc_packet r2 = udpc_tcli_pop_sent(h, server, UDPC_PT_REGISTER);
  assert_int_equal(r2.u.reg.cookie_len, 20);
  udpc_packet rr = udpc_tcli_pkt(h, UDPC_PT_REGISTER_RESULT, r2.id);
  rr.u.reg_result.status = UDPC_REG_OK;
  rr.u.reg_result.token = h->token;
  rr.u.reg_result.table_version = 3;
  rr.u.reg_result.mail_count = mail_count;
  udpc_tcli_feed(h, server, &rr);
  udpc_tcli_expect_ev(h, UDPC_EV_REGISTERED, "[Welcome, You are registered.]");
  udpc_packet tr = udpc_tcli_pop_sent(h, server, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 0);
  if (ids) {
    ids[0] = r1.id;
    ids[1] = r2.id;
    ids[2] = tr.id;
  }
  return tr.id;
}

void udpc_tcli_answer_page(udpc_tcli *h, const udpc_addr *server, uint32_t id,
                           uint64_t version, uint32_t total, uint32_t start,
                           const udpc_entry *e, uint8_t n) {
  udpc_packet pg = udpc_tcli_pkt(h, UDPC_PT_TABLE_PAGE, id);
  pg.u.table_page.version = version;
  pg.u.table_page.total = total;
  pg.u.table_page.start = start;
  pg.u.table_page.count = n;
  for (uint8_t i = 0; i < n; i++) pg.u.table_page.entries[i] = e[i];
  udpc_tcli_feed(h, server, &pg);
}

void udpc_tcli_online_with_table(udpc_tcli *h, const udpc_tcli_addrs *a,
                                 uint32_t ids[3]) {
  udpc_entry t[3] = {udpc_tcli_entry("alice", 1, &a->me),
                     udpc_tcli_entry("bob", 1, &a->bob),
                     udpc_tcli_entry("carol", 0, &a->carol)};
  uint32_t id = udpc_tcli_register(h, &a->server, 0, ids);
  udpc_tcli_answer_page(h, &a->server, id, 3, 3, 0, t, 3);
  udpc_tcli_expect_ev(h, UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  udpc_tcli_no_more_ev(h);
  udpc_tcli_no_more_sent(h);
  assert_int_equal(udpc_client_state(h->c), UDPC_CS_ONLINE);
}
