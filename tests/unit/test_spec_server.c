/*
 * test_spec_server.c - PROTOCOL.md requirements of the server core that no
 * other unit test names, each test named after the R-numbers it asserts.
 *
 * Every datagram the server sends goes through check_out(), which asserts
 * the rules that hold for every packet: one packet per datagram (R1), at
 * most 1200 bytes (R2), version 1 (R6), and, for token-bearing types, the
 * token of the session at the destination address (R7, R14).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "udpc_store.h"
#include "udpc_wire.h"
#include "udpchat.h"

#define UDPC_TSRV_SHORT_NAMES
#include "udpc_tsrv.h"

/* Every datagram the server sends is checked by the fixture's
 * check_tokens (support/udpc_tsrv.c): R1 R2 R6 R7 R14. */
static udpc_tsrv_cfg spec_cfg(uint8_t seed, uint32_t max_clients) {
  udpc_tsrv_cfg cfg = {.seed_mul = 13,
                       .seed_add = seed,
                       .max_clients = max_clients,
                       .max_out = 4096,
                       .check_tokens = 1};
  return cfg;
}

/* A new server on f's store (f->cfg updated), for restarts. */
static udpc_server *mk_server(fx *f, uint8_t seed, uint32_t max_clients) {
  f->cfg = spec_cfg(seed, max_clients);
  return udpc_tsrv_server(f);
}

static int setup(void **state) {
  udpc_tsrv_cfg cfg = spec_cfg(1, 0);
  *state = udpc_tsrv_new(&cfg);
  return 0;
}

static udpc_addr A(unsigned n) { return udpc_tsrv_addr(n); }

static void advance(fx *f, uint64_t ms) {
  udpc_tsrv_advance(f, ms);
  flush_ok(f);
}

/* R1 R2 R6 R7 R14: a session of every server exchange (registration,
 * take-over, table pages and deltas, heartbeats, SAVE with and without a
 * probe, maximum-size mail pages, DEREG, deregA with KICKED, errors); every
 * datagram is checked by check_out(). */
static void test_r1_r2_r6_r7_r14_every_server_datagram(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2), c = A(3), o = A(4), b2 = A(5);
  uint64_t ta = reg(f, &a, "alice", 1);
  uint64_t tb = reg(f, &b, "bob", 2);
  reg(f, &c, "carol", 3);
  uint64_t to = reg(f, &o, "op", 4);
  /* tables, heartbeats */
  udpc_packet q = pkt(UDPC_PT_TABLE_REQ, 1, ta);
  feed(f, &a, &q);
  q = pkt(UDPC_PT_HEARTBEAT, 2, tb);
  feed(f, &b, &q);
  /* SAVE to an online recipient: PROBE to bob, PROBE_ACK */
  clear(f);
  udpc_packet sv = save_pkt(ta, 3, "bob", 1, "hi");
  feed(f, &a, &sv);
  udpc_packet pr = only_out(f, &b);
  assert_int_equal(pr.type, UDPC_PT_PROBE);
  udpc_packet ack = pkt(UDPC_PT_PROBE_ACK, pr.id, tb);
  feed(f, &b, &ack);
  /* bob deregisters; alice stores maximum-size mail for him */
  q = pkt(UDPC_PT_DEREG, 4, tb);
  feed(f, &b, &q);
  flush_ok(f);
  static char big[UDPC_TEXT_MAX + 1];
  memset(big, 'x', UDPC_TEXT_MAX);
  for (uint32_t i = 0; i < 20; i++) {
    sv = save_pkt(ta, 10 + i, "bob", 100 + i, i % 2 ? big : "small");
    feed(f, &a, &sv);
  }
  flush_ok(f);
  /* bob comes back at another address (its old token ends) and reads */
  tb = reg(f, &b2, "bob", 2);
  uint64_t ack_upto = 0;
  for (int pages = 0; pages < 40; pages++) {
    clear(f);
    q = pkt(UDPC_PT_MAIL_REQ, 200 + (uint32_t)pages, tb);
    q.u.mail_req.ack_upto = ack_upto;
    feed(f, &b2, &q);
    flush_ok(f);
    udpc_packet mp = only_out(f, &b2);
    if (mp.u.mail_page.count == 0) break;
    ack_upto = mp.u.mail_page.mail[mp.u.mail_page.count - 1].seq;
  }
  assert_true(ack_upto > 0);
  /* the new token from bob's old address: dropped, nothing sent there */
  q = pkt(UDPC_PT_HEARTBEAT, 5, tb);
  feed(f, &b, &q);
  /* deregA of carol: KICKED to carol with carol's token */
  clear(f);
  q = pkt(UDPC_PT_DEREG_OTHER, 6, to);
  q.u.dereg_other.target = nk("carol");
  feed(f, &o, &q);
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_KICKED, &c), 1);
  /* heartbeat timeout of everybody: deltas only to the still-online */
  for (int i = 0; i < 4; i++) advance(f, 10000);
  assert_int_equal(stats(f).online, 0);
  assert_true(f->n_checked > 40);
}

/* R3: a datagram larger than 1200 bytes is dropped without processing, even
 * when its first bytes are a valid request of a live session. */
static void test_r3_datagram_over_1200_dropped_unprocessed(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t ta = reg(f, &a, "alice", 1);
  static uint8_t huge[UDPC_MAX_PACKET + 1];
  udpc_packet d = pkt(UDPC_PT_DEREG, 9, ta);
  int n = udpc_wire_encode(&d, huge, sizeof huge);
  assert_true(n > 0);
  udpc_server_stats s0 = stats(f);
  assert_int_equal(udpc_server_recv(f->s, f->now, &a, huge, sizeof huge),
                   UDPC_OK);
  flush_ok(f);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(stats(f).online, 1); /* the DEREG was not processed */
  assert_int_equal(stats(f).dropped_malformed, s0.dropped_malformed + 1);
  /* a REGISTER of 1201 bytes gets no COOKIE either */
  udpc_packet r = reg_pkt("bob", 2, 10, NULL, 0);
  n = udpc_wire_encode(&r, huge, sizeof huge);
  assert_true(n > 0);
  assert_int_equal(udpc_server_recv(f->s, f->now, &a, huge, sizeof huge),
                   UDPC_OK);
  assert_int_equal(f->n_out, 0);
}

/* R22 R23 R76: responses echo the request id; TABLE_DELTA and KICKED take
 * ids from the server's own counter (consecutive, whatever the ids of the
 * requests were; the copies of one TABLE_DELTA, which differ only in the
 * token, share one id); PROBE ids are the server's own too (not the SAVE's id,
 * distinct for concurrent probes) and a PROBE's resend keeps its id. */
static void test_r22_r23_unsolicited_ids_from_server_counter(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2), o = A(3), c = A(4);
  uint64_t to = reg(f, &o, "op", 1);
  uint64_t ta = reg(f, &a, "alice", 2);
  reg(f, &b, "bob", 3);
  uint64_t tc = reg(f, &c, "carol", 4);
  /* the clients of op, alice and carol walk the table (P6.2): a session
   * that has not been sent a TABLE_PAGE yet gets its own minimal delta
   * (P6.3 "Walking sessions"), not a copy of the shared one */
  walk_table(f, &o, to);
  walk_table(f, &a, ta);
  walk_table(f, &c, tc);
  close_window(f);
  clear(f);
  /* SAVEs to bob and carol (online) -> two PROBEs; resend keeps the id */
  udpc_packet sv = save_pkt(ta, 7777, "bob", 1, "x");
  feed(f, &a, &sv);
  udpc_packet pr = only_out(f, &b);
  assert_int_equal(pr.type, UDPC_PT_PROBE);
  assert_true(pr.id != 7777);
  clear(f);
  sv = save_pkt(ta, 7778, "carol", 2, "y");
  feed(f, &a, &sv);
  udpc_packet prc = only_out(f, &c);
  assert_int_equal(prc.type, UDPC_PT_PROBE);
  assert_true(prc.id != 7778 && prc.id != pr.id);
  clear(f);
  advance(f, UDPC_T_PROBE_RETRY);
  assert_int_equal(f->n_out, 2);
  for (size_t i = 0; i < 2; i++) {
    udpc_packet p = out_at(f, i);
    assert_int_equal(p.type, UDPC_PT_PROBE);
    assert_int_equal(p.id, udpc_addr_equal(&f->out[i].to, &b) ? pr.id : prc.id);
  }
  clear(f);
  udpc_packet ack = pkt(UDPC_PT_PROBE_ACK, pr.id, pr.token);
  feed(f, &b, &ack);
  ack = pkt(UDPC_PT_PROBE_ACK, prc.id, prc.token);
  feed(f, &c, &ack);
  assert_int_equal(count_out(f, UDPC_PT_SAVE_RESULT, &a), 2);
  for (size_t i = 0; i < 2; i++) {
    udpc_packet p = out_at(f, i);
    assert_true(p.id ==
                (p.u.save_result.entry.nick.s[0] == 'b' ? 7777u : 7778u));
  }
  /* deregA bob: KICKED to bob, then (the window) one TABLE_DELTA copied
   * to op, alice and carol, none with the id 7777 of the request */
  clear(f);
  udpc_packet d = pkt(UDPC_PT_DEREG_OTHER, 7777, to);
  d.u.dereg_other.target = nk("bob");
  feed(f, &o, &d);
  flush_ok(f);
  close_window(f);
  uint32_t kicked = 0, delta = 0;
  size_t n_delta = 0, n_kicked = 0;
  for (size_t i = 0; i < f->n_out; i++) {
    udpc_packet p = out_at(f, i);
    if (p.type == UDPC_PT_DEREG_RESULT) {
      assert_int_equal(p.id, 7777); /* R22 */
      continue;
    }
    assert_true(p.type == UDPC_PT_TABLE_DELTA || p.type == UDPC_PT_KICKED);
    if (p.type == UDPC_PT_KICKED) {
      kicked = p.id;
      n_kicked++;
      continue;
    }
    if (n_delta++ == 0) delta = p.id;
    assert_int_equal(p.id, delta); /* copies of one chunk: one id */
  }
  assert_int_equal(n_kicked, 1);
  assert_int_equal(n_delta, 3);
  /* one counter: the delta's id follows KICKED's */
  assert_int_equal(delta, (uint32_t)(kicked + 1u));
  /* and the next change continues the same counter */
  clear(f);
  d = pkt(UDPC_PT_DEREG, 7777, ta);
  feed(f, &a, &d);
  flush_ok(f);
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 2);
  for (size_t i = 0; i < f->n_out; i++) {
    udpc_packet p = out_at(f, i);
    if (p.type != UDPC_PT_TABLE_DELTA) continue;
    assert_int_equal(p.id, (uint32_t)(delta + 1u));
  }
}

/* R24: a REGISTER_RESULT that is not OK carries token, table_version and
 * mail_count 0 (NICK_TAKEN, SERVER_FULL, INVALID_NICK). */
static void test_r24_non_ok_register_result_zero_fields(void **state) {
  fx *f = *state;
  udpc_server_free(f->s);
  f->s = mk_server(f, 1, 2);
  udpc_addr a = A(1), b = A(2), c = A(3);
  reg(f, &a, "alice", 1);
  reg(f, &b, "bob", 2);
  udpc_packet p = reg_result(f, &c, "alice", 9);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_NICK_TAKEN);
  assert_true(p.u.reg_result.token == 0);
  assert_true(p.u.reg_result.table_version == 0);
  assert_int_equal(p.u.reg_result.mail_count, 0);
  p = reg_result(f, &c, "carol", 3);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_SERVER_FULL);
  assert_true(p.u.reg_result.token == 0);
  assert_true(p.u.reg_result.table_version == 0);
  assert_int_equal(p.u.reg_result.mail_count, 0);
  /* INVALID_NICK (the nick fails to decode) */
  clear(f);
  udpc_packet r = reg_pkt("Bad", 1, 3, NULL, 0);
  uint8_t buf[UDPC_MAX_PACKET];
  int n = udpc_wire_encode_raw(&r, buf, sizeof buf);
  assert_true(n > 0);
  assert_int_equal(udpc_server_recv(f->s, f->now, &c, buf, (size_t)n), UDPC_OK);
  p = only_out(f, &c);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_INVALID_NICK);
  assert_true(p.u.reg_result.token == 0);
  assert_true(p.u.reg_result.table_version == 0);
  assert_int_equal(p.u.reg_result.mail_count, 0);
}

/* R25: tokens are never 0, never equal to another live session's, change
 * with every session, depend on the seed, and show no simple pattern. */
static void test_r25_tokens_random_nonzero_unique(void **state) {
  fx *f = *state;
  enum { N = 300 };
  static uint64_t t[N + 1];
  for (unsigned i = 0; i < N; i++) {
    char nick[8];
    nick[0] = 'n';
    nick[1] = (char)('0' + i / 100);
    nick[2] = (char)('0' + i / 10 % 10);
    nick[3] = (char)('0' + i % 10);
    nick[4] = '\0';
    udpc_addr a = A(i + 1);
    t[i] = reg(f, &a, nick, (uint8_t)i);
    assert_true(t[i] != 0);
    for (unsigned j = 0; j < i; j++) assert_true(t[i] != t[j]);
  }
  /* a new session of the same nick gets a new token */
  udpc_addr moved = A(N + 7);
  t[N] = reg(f, &moved, "n000", 0);
  for (unsigned j = 0; j < N; j++) assert_true(t[N] != t[j]);
  /* no constant difference between consecutive tokens */
  int same_step = 1;
  for (unsigned i = 2; i < N; i++)
    if (t[i] - t[i - 1] != t[1] - t[0]) same_step = 0;
  assert_false(same_step);
  /* another seed, same registrations: other tokens */
  udpc_server_free(f->s);
  udpc_store_free(f->st);
  f->st = udpc_store_mem_new();
  f->s = mk_server(f, 99, 0);
  udpc_addr a = A(1);
  uint64_t u = reg(f, &a, "n000", 0);
  assert_true(u != 0);
  assert_true(u != t[0]);
}

/* R52 (start > total) and R70 step 3: TABLE_REQ past the end answers
 * start = total, count 0; deregA of an OFFLINE nick is OK and changes
 * nothing (no delta, no KICKED, same version). */
static void test_r52_r70_page_past_end_and_deregA_offline(void **state) {
  fx *f = *state;
  udpc_addr o = A(1), b = A(2);
  uint64_t to = reg(f, &o, "op", 1);
  uint64_t tb = reg(f, &b, "bob", 2);
  udpc_packet d = pkt(UDPC_PT_DEREG, 1, tb);
  feed(f, &b, &d);
  flush_ok(f);
  close_window(f); /* published version = current version */
  clear(f);
  udpc_packet q = pkt(UDPC_PT_TABLE_REQ, 2, to);
  q.u.table_req.start = 99;
  feed(f, &o, &q);
  udpc_packet pg = only_out(f, &o);
  assert_int_equal(pg.u.table_page.total, 2);
  assert_int_equal(pg.u.table_page.start, 2);
  assert_int_equal(pg.u.table_page.count, 0);
  uint64_t v = pg.u.table_page.version;
  clear(f);
  d = pkt(UDPC_PT_DEREG_OTHER, 3, to);
  d.u.dereg_other.target = nk("bob");
  feed(f, &o, &d);
  flush_ok(f);
  udpc_packet r = only_out(f, &o);
  assert_int_equal(r.type, UDPC_PT_DEREG_RESULT);
  assert_int_equal(r.u.dereg_result.status, UDPC_DEREG_OK);
  clear(f);
  q = pkt(UDPC_PT_HEARTBEAT, 4, to);
  feed(f, &o, &q);
  assert_true(only_out(f, &o).u.heartbeat_ack.table_version == v);
}

/* R74: every packet of a live session that passes P8.3 counts as heard, not
 * only HEARTBEAT: clients that only send TABLE_REQ or MAIL_REQ every 20 s stays online far beyond 30 s. */
static void test_r74_any_packet_updates_last_heard(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "alice", 1);
  uint64_t tb = reg(f, &b, "bob", 2);
  for (uint32_t i = 0; i < 6; i++) {
    advance(f, 20000);
    udpc_packet q = pkt(UDPC_PT_TABLE_REQ, i, ta);
    feed(f, &a, &q);
    q = pkt(UDPC_PT_MAIL_REQ, i, tb);
    feed(f, &b, &q);
    flush_ok(f);
  }
  assert_int_equal(stats(f).online, 2);
  clear(f);
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 9, ta);
  feed(f, &a, &hb);
  udpc_packet p = only_out(f, &a);
  assert_int_equal(p.type, UDPC_PT_HEARTBEAT_ACK);
  assert_int_equal(p.id, 9);
  /* and silence still ends the session after 30 s */
  advance(f, 30000);
  assert_int_equal(stats(f).online, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_r1_r2_r6_r7_r14_every_server_datagram, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_r3_datagram_over_1200_dropped_unprocessed, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_r22_r23_unsolicited_ids_from_server_counter, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_r24_non_ok_register_result_zero_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(test_r25_tokens_random_nonzero_unique,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_r52_r70_page_past_end_and_deregA_offline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_r74_any_packet_updates_last_heard,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
