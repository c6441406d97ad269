/*
 * test_spec_client.c - PROTOCOL.md requirements of the client core that no
 * other unit test names, each test named after the R-numbers it asserts.
 *
 * Every datagram the client sends goes through check_sent(), which asserts
 * the rules that hold for every packet: one packet per datagram (R1), at
 * most 1200 bytes (R2), version 1 (R6), never an ERROR (R12) and, for
 * token-bearing types, the token of the current session (R7).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "udpc_client.h"
#include "udpchat.h"

#define UDPC_TCLI_SHORT_NAMES
#include "udpc_tcli.h"

#define TOKEN2 0x0badc0ffee000002ULL

/* Every datagram the client sends is checked by the fixture's check_sent
 * (support/udpc_tcli.c): R1 R2 R6 R7 R12, R7 against H.token. */
static udpc_client *mk_client(uint8_t seed) {
  return udpc_tcli_client(&H, &SERVER, seed);
}

static int setup(void **state) {
  (void)state;
  udpc_tcli_reset(&H);
  H.max_sent = 512;
  H.max_ev = 512;
  H.check_sent = 1;
  set_addrs();
  H.c = mk_client(1);
  assert_non_null(H.c);
  return 0;
}

/* REGISTER, COOKIE, REGISTER with cookie, OK, snapshot of 3 entries:
 * {alice(me) online, bob online, carol offline} v3. Returns the ids of the
 * client's packets in *ids (REGISTER, REGISTER, TABLE_REQ). */
static void online_with_table(uint32_t ids[3]) {
  udpc_tcli_addrs a = addrs();
  udpc_tcli_online_with_table(&H, &a, ids);
}

/* Malformed, unknown and wrong-direction datagrams, from the server and a
 * peer: the client answers none of them (R12: and never with ERROR). */
static void feed_garbage(void) {
  static uint8_t huge[UDPC_MAX_PACKET + 1];
  const udpc_addr *from[] = {&SERVER, &BOB};
  for (size_t k = 0; k < 2; k++) {
    uint8_t v2[14] = {2, UDPC_PT_HEARTBEAT, 0, 0, 0, 9};    /* version 2 */
    uint8_t unk[14] = {1, 0x55, 0, 0, 0, 9};                /* unknown type */
    uint8_t trunc[9] = {1, UDPC_PT_TABLE_PAGE, 0, 0, 0, 9}; /* truncated */
    uint8_t badtext[] = {1, UDPC_PT_CHAT, 0,   0,   0,   9,   3, 'b', 'o', 'b',
                         5, 'a',          'l', 'i', 'c', 'e', 0, 1,   0x07};
    feed_raw(from[k], v2, sizeof v2);
    feed_raw(from[k], unk, sizeof unk);
    feed_raw(from[k], trunc, sizeof trunc);
    feed_raw(from[k], badtext, sizeof badtext);
    memcpy(huge, badtext, sizeof badtext);
    feed_raw(from[k], huge, sizeof huge);
    feed_raw(from[k], huge, 3);
    /* well-formed, wrong direction / not outstanding */
    udpc_packet p = pkt(UDPC_PT_REGISTER, 9);
    p.u.reg.nick = mknick("bob");
    feed(from[k], &p);
    p = pkt(UDPC_PT_HEARTBEAT, 9);
    feed(from[k], &p);
    p = pkt(UDPC_PT_ERROR, 12345);
    p.u.error.code = UDPC_ERROR_MALFORMED;
    feed(from[k], &p);
  }
}

/* R1 R2 R6 R7 R12: a session of every client exchange (registration, chat
 * with and without ACK, SAVE of a maximum-size message, heartbeat, probe,
 * incoming chat, garbage, silent re-registration with a new token, DEREG);
 * every datagram is checked by check_sent(). */
static void test_r1_r2_r6_r7_r12_every_client_datagram(void **state) {
  (void)state;
  online_with_table(NULL);
  uint64_t t0 = H.now;
  /* chat delivered */
  assert_int_equal(cmd("send bob hi"), UDPC_OK);
  udpc_packet c = pop_sent(&BOB, UDPC_PT_CHAT);
  udpc_packet ack = pkt(UDPC_PT_CHAT_ACK, c.id);
  ack.u.chat_ack.from = mknick("bob");
  feed(&BOB, &ack);
  expect_ev(UDPC_EV_DELIVERED, "[Message received by bob.]");
  /* a maximum-size message to a peer without ACK, then SAVE */
  static char line[16 + UDPC_TEXT_MAX];
  memcpy(line, "send bob ", 9);
  memset(line + 9, 'x', UDPC_TEXT_MAX);
  line[9 + UDPC_TEXT_MAX] = '\0';
  assert_int_equal(cmd(line), UDPC_OK);
  c = pop_sent(&BOB, UDPC_PT_CHAT);
  assert_int_equal(c.u.chat.text.len, UDPC_TEXT_MAX);
  advance(t0 + UDPC_T_CHAT_ACK);
  expect_ev(UDPC_EV_NO_ACK, "[No ACK from bob, message sent to server.]");
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  assert_int_equal(s.u.save.text.len, UDPC_TEXT_MAX);
  udpc_packet sr = pkt(UDPC_PT_SAVE_RESULT, s.id);
  sr.u.save_result.status = UDPC_SAVE_SAVED;
  feed(&SERVER, &sr);
  expect_ev(UDPC_EV_SAVED, "[Messages received by the server and saved]");
  /* incoming chat -> CHAT_ACK; PROBE -> PROBE_ACK */
  udpc_packet in = pkt(UDPC_PT_CHAT, 4242);
  in.u.chat.from = mknick("bob");
  in.u.chat.to = mknick("alice");
  in.u.chat.text.p = (const uint8_t *)"yo";
  in.u.chat.text.len = 2;
  feed(&BOB, &in);
  expect_ev(UDPC_EV_CHAT, "bob: yo");
  (void)pop_sent(&BOB, UDPC_PT_CHAT_ACK);
  udpc_packet pr = pkt(UDPC_PT_PROBE, 777);
  feed(&SERVER, &pr);
  (void)pop_sent(&SERVER, UDPC_PT_PROBE_ACK);
  feed_garbage();
  no_more_sent();
  no_more_ev();
  /* heartbeat; BAD_SESSION -> silent re-registration with a new token */
  advance(t0 + UDPC_T_HEARTBEAT);
  udpc_packet hb = pop_sent(&SERVER, UDPC_PT_HEARTBEAT);
  udpc_packet e = pkt(UDPC_PT_ERROR, hb.id);
  e.u.error.code = UDPC_ERROR_BAD_SESSION;
  feed(&SERVER, &e);
  udpc_packet r1 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  udpc_packet ck = pkt(UDPC_PT_COOKIE, r1.id);
  ck.u.cookie.cookie_len = 1;
  feed(&SERVER, &ck);
  udpc_packet r2 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  H.token = TOKEN2; /* from now on every tokened packet carries TOKEN2 */
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, r2.id);
  rr.u.reg_result.token = TOKEN2;
  rr.u.reg_result.table_version = 4;
  feed(&SERVER, &rr);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  udpc_packet pg = pkt(UDPC_PT_TABLE_PAGE, tr.id);
  pg.u.table_page.version = 4;
  pg.u.table_page.total = 1;
  pg.u.table_page.count = 1;
  pg.u.table_page.entries[0] = entry("alice", 1, &ME);
  feed(&SERVER, &pg);
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_ONLINE);
  pr = pkt(UDPC_PT_PROBE, 778);
  feed(&SERVER, &pr);
  (void)pop_sent(&SERVER, UDPC_PT_PROBE_ACK);
  assert_int_equal(cmd("dereg alice"), UDPC_OK);
  (void)pop_sent(&SERVER, UDPC_PT_DEREG);
  feed_garbage();
  assert_true(H.n_sent >= 12);
}

/* R12 (with R9-R11 at the client): malformed, unknown and unexpected
 * datagrams are never answered, from the server or from a peer, ONLINE or
 * OFFLINE. */
static void test_r12_client_never_answers_garbage(void **state) {
  (void)state;
  online_with_table(NULL);
  feed_garbage();
  no_more_sent();
  no_more_ev();
  assert_int_equal(cmd("dereg alice"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, d.id);
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_OFFLINE, "[You are Offline. Bye.]");
  feed_garbage();
  no_more_sent();
  no_more_ev();
}

/* R23: unsolicited server packets (PROBE, TABLE_DELTA, KICKED carry ids
 * from the server's counter) are never matched against the client's
 * requests: a PROBE or TABLE_DELTA whose id equals the id of the SAVE in
 * flight leaves that SAVE outstanding (it is re-sent and completes only on
 * its SAVE_RESULT). */
static void test_r23_unsolicited_ids_not_matched(void **state) {
  (void)state;
  online_with_table(NULL);
  uint64_t t0 = H.now;
  assert_int_equal(cmd("send carol hello"), UDPC_OK); /* carol offline */
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  udpc_packet pr = pkt(UDPC_PT_PROBE, s.id);
  feed(&SERVER, &pr);
  udpc_packet pa = pop_sent(&SERVER, UDPC_PT_PROBE_ACK);
  assert_int_equal(pa.id, s.id);
  udpc_packet d = pkt(UDPC_PT_TABLE_DELTA, s.id);
  d.u.table_delta.base_version = 3;
  d.u.table_delta.new_version = 4;
  d.u.table_delta.count = 1;
  d.u.table_delta.entries[0] = entry("dave", 1, &CAROL);
  feed(&SERVER, &d);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_ev();
  no_more_sent();
  advance(t0 + UDPC_T_REQUEST_RETRY);
  udpc_packet again = pop_sent(&SERVER, UDPC_PT_SAVE); /* still in flight */
  assert_int_equal(again.id, s.id);
  udpc_packet sr = pkt(UDPC_PT_SAVE_RESULT, s.id);
  sr.u.save_result.status = UDPC_SAVE_SAVED;
  feed(&SERVER, &sr);
  expect_ev(UDPC_EV_SAVED, "[Messages received by the server and saved]");
  no_more_ev();
}

/* R24: the client ignores token, table_version and mail_count of a
 * REGISTER_RESULT that is not OK: it stays OFFLINE, asks for no table or
 * mail, arms no heartbeat and does not accept that token. */
static void test_r24_refused_register_result_fields_ignored(void **state) {
  (void)state;
  online_with_table(NULL);
  assert_int_equal(cmd("dereg alice"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, d.id);
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_OFFLINE, "[You are Offline. Bye.]");
  assert_int_equal(cmd("reg alice"), UDPC_OK);
  udpc_packet r1 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  udpc_packet ck = pkt(UDPC_PT_COOKIE, r1.id);
  ck.u.cookie.cookie_len = 4;
  feed(&SERVER, &ck);
  udpc_packet r2 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, r2.id);
  rr.u.reg_result.status = UDPC_REG_NICK_TAKEN;
  rr.u.reg_result.token = TOKEN2;
  rr.u.reg_result.table_version = 77;
  rr.u.reg_result.mail_count = 5;
  feed(&SERVER, &rr);
  expect_ev(UDPC_EV_REG_REFUSED,
            "[Nick alice is already taken by another user.]");
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_OFFLINE);
  assert_true(udpc_client_next_deadline(H.c) == UINT64_MAX);
  no_more_sent(); /* no TABLE_REQ, no MAIL_REQ */
  H.token = TOKEN2;
  udpc_packet pr = pkt(UDPC_PT_PROBE, 5);
  feed(&SERVER, &pr);
  udpc_packet delta = pkt(UDPC_PT_TABLE_DELTA, 6);
  delta.u.table_delta.base_version = 77;
  delta.u.table_delta.new_version = 78;
  delta.u.table_delta.count = 1;
  delta.u.table_delta.entries[0] = entry("zed", 1, &CAROL);
  feed(&SERVER, &delta);
  no_more_sent();
  no_more_ev();
  assert_int_equal(udpc_client_table_count(H.c), 3);
}

/* R26: one u32 id counter, started from the seed: every new request,
 * HEARTBEAT and CHAT takes the next value (so does the fresh msg_id of a
 * SAVE without CHAT, P7.1); retransmissions reuse theirs. */
static void test_r26_id_counter_next_value_per_packet(void **state) {
  (void)state;
  uint32_t ids[3];
  online_with_table(ids);
  uint64_t t0 = H.now;
  uint32_t seq[10];
  size_t n = 0;
  for (size_t i = 0; i < 3; i++) seq[n++] = ids[i];
  assert_int_equal(cmd("send bob one"), UDPC_OK);
  udpc_packet c = pop_sent(&BOB, UDPC_PT_CHAT);
  seq[n++] = c.id;
  udpc_packet ack = pkt(UDPC_PT_CHAT_ACK, c.id);
  ack.u.chat_ack.from = mknick("bob");
  feed(&BOB, &ack);
  expect_ev(UDPC_EV_DELIVERED, "[Message received by bob.]");
  assert_int_equal(cmd("send carol two"), UDPC_OK); /* SAVE */
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  /* its fresh msg_id (P7.1) and its request id both come from the counter */
  seq[n++] = s.u.save.msg_id < s.id ? s.u.save.msg_id : s.id;
  seq[n++] = s.u.save.msg_id < s.id ? s.id : s.u.save.msg_id;
  advance(t0 + UDPC_T_REQUEST_RETRY);
  assert_int_equal(pop_sent(&SERVER, UDPC_PT_SAVE).id, s.id); /* resend */
  udpc_packet sr = pkt(UDPC_PT_SAVE_RESULT, s.id);
  sr.u.save_result.status = UDPC_SAVE_SAVED;
  feed(&SERVER, &sr);
  advance(t0 + UDPC_T_HEARTBEAT);
  seq[n++] = pop_sent(&SERVER, UDPC_PT_HEARTBEAT).id;
  assert_int_equal(cmd("deregA bob"), UDPC_OK);
  seq[n++] = pop_sent(&SERVER, UDPC_PT_DEREG_OTHER).id;
  for (size_t i = 1; i < n; i++)
    if (seq[i] != (uint32_t)(seq[i - 1] + 1u))
      fail_msg("id %zu is %u, the previous %u", i, seq[i], seq[i - 1]);
  /* another seed starts elsewhere */
  udpc_client *other = mk_client(77);
  assert_non_null(other);
  size_t before = H.n_sent;
  assert_int_equal(udpc_client_start(other, H.now), UDPC_OK);
  assert_int_equal(H.n_sent, before + 1);
  udpc_packet r;
  assert_int_equal(
      udpc_wire_decode(&r, H.sent[before].data, H.sent[before].len), UDPC_OK);
  assert_true(r.id != ids[0]);
  udpc_client_free(other);
}

/* R34: HEARTBEAT and PROBE_ACK are neither queued behind the request in
 * flight nor retransmitted: they go out at once, once. */
static void test_r34_heartbeat_probe_ack_not_queued_nor_resent(void **state) {
  (void)state;
  online_with_table(NULL);
  uint64_t t0 = H.now;
  advance(t0 + UDPC_T_HEARTBEAT - 100);
  no_more_sent();
  assert_int_equal(cmd("send carol queued"), UDPC_OK); /* SAVE in flight */
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  assert_int_equal(cmd("deregA bob"), UDPC_OK); /* queued behind it */
  no_more_sent();
  advance(t0 + UDPC_T_HEARTBEAT);
  udpc_packet hb = pop_sent(&SERVER, UDPC_PT_HEARTBEAT); /* at once */
  udpc_packet pr = pkt(UDPC_PT_PROBE, 31337);
  feed(&SERVER, &pr);
  udpc_packet pa = pop_sent(&SERVER, UDPC_PT_PROBE_ACK); /* at once */
  assert_int_equal(pa.id, 31337);
  no_more_sent();
  /* only the SAVE is retransmitted */
  for (uint64_t t = t0 + UDPC_T_HEARTBEAT - 100 + UDPC_T_REQUEST_RETRY;
       t < t0 + UDPC_T_HEARTBEAT + 2000; t += UDPC_T_REQUEST_RETRY) {
    advance(t);
    assert_int_equal(pop_sent(&SERVER, UDPC_PT_SAVE).id, s.id);
    no_more_sent();
  }
  udpc_packet sr = pkt(UDPC_PT_SAVE_RESULT, s.id);
  sr.u.save_result.status = UDPC_SAVE_SAVED;
  feed(&SERVER, &sr);
  udpc_packet dO = pop_sent(&SERVER, UDPC_PT_DEREG_OTHER);
  assert_true(dO.id != hb.id);
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, dO.id);
  dr.u.dereg_result.status = UDPC_DEREG_OK;
  feed(&SERVER, &dr);
  advance(t0 + 2 * UDPC_T_HEARTBEAT - 1);
  no_more_sent(); /* the first HEARTBEAT was never re-sent */
  advance(t0 + 2 * UDPC_T_HEARTBEAT);
  udpc_packet hb2 = pop_sent(&SERVER, UDPC_PT_HEARTBEAT);
  assert_true(hb2.id != hb.id);
  no_more_sent();
}

/* R53 (P6.2): a walk whose first page says total 0 is complete and the
 * client's table becomes empty. Regression: snapshot_complete() once called
 * qsort(NULL, 0, ...) here, undefined behaviour caught by UBSan. */
static void test_r53_empty_snapshot_replaces_table(void **state) {
  (void)state;
  online_with_table(NULL);
  assert_int_equal(udpc_client_table_count(H.c), 3);
  udpc_packet d = pkt(UDPC_PT_TABLE_DELTA, 9);
  d.u.table_delta.base_version = 5; /* a gap -> snapshot */
  d.u.table_delta.new_version = 6;
  d.u.table_delta.count = 1;
  d.u.table_delta.entries[0] = entry("bob", 0, &BOB);
  feed(&SERVER, &d);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  udpc_packet pg = pkt(UDPC_PT_TABLE_PAGE, tr.id);
  pg.u.table_page.version = 6;
  feed(&SERVER, &pg); /* total 0, count 0 */
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), 0);
  assert_int_equal(cmd("list"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE, "[Table is empty.]");
}

/* Start a snapshot walk (a delta gap) and return the TABLE_REQ it sent. */
static udpc_packet start_walk(void) {
  udpc_packet d = pkt(UDPC_PT_TABLE_DELTA, 9);
  d.u.table_delta.base_version = 5; /* a gap -> snapshot */
  d.u.table_delta.new_version = 6;
  d.u.table_delta.count = 1;
  d.u.table_delta.entries[0] = entry("bob", 1, &BOB);
  feed(&SERVER, &d);
  return pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
}

static udpc_packet chat_from(const char *nick, uint32_t id, const char *text) {
  udpc_packet c = pkt(UDPC_PT_CHAT, id);
  c.u.chat.from = mknick(nick);
  c.u.chat.to = mknick("alice");
  c.u.chat.text.p = (const uint8_t *)text;
  c.u.chat.text.len = (uint16_t)strlen(text);
  return c;
}

/* Finish the walk with one page: bob, carol and dave at `dave_at`. */
static void finish_walk(const udpc_packet *tr, const udpc_addr *dave_at) {
  udpc_packet pg = pkt(UDPC_PT_TABLE_PAGE, tr->id);
  pg.u.table_page.version = 6;
  pg.u.table_page.total = 3;
  pg.u.table_page.count = 3;
  pg.u.table_page.entries[0] = entry("bob", 1, &BOB);
  pg.u.table_page.entries[1] = entry("carol", 1, &CAROL);
  pg.u.table_page.entries[2] = entry("dave", 1, dave_at);
  feed(&SERVER, &pg);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
}

/* R94 (P6.2): a CHAT from a sender the table does not list yet, arriving
 * while a snapshot walk runs, is held (no ACK, not shown) and accepted
 * when the walk completes and lists the sender at that address (R82). */
static void test_r94_chat_held_during_walk_then_accepted(void **state) {
  (void)state;
  online_with_table(NULL);
  udpc_addr dave = udpc_tcli_addr(5, 40005);
  udpc_packet tr = start_walk();
  udpc_packet c = chat_from("dave", 777, "hi, I just joined");
  feed(&dave, &c);
  no_more_sent(); /* held: no ACK yet */
  no_more_ev();
  advance(H.now + 100);
  finish_walk(&tr, &dave);
  udpc_packet a = pop_sent(&dave, UDPC_PT_CHAT_ACK);
  assert_int_equal(a.id, 777);
  assert_string_equal(a.u.chat_ack.from.s, "alice");
  expect_ev(UDPC_EV_CHAT, "dave: hi, I just joined");
  no_more_ev();
}

/* R94: held CHATs are checked against R82 again: one whose source is not
 * the sender's table address is dropped; one older than the sender's ACK
 * wait (500 ms) is dropped; none are held outside a walk. */
static void test_r94_held_chat_rechecked_and_aged_out(void **state) {
  (void)state;
  online_with_table(NULL);
  udpc_addr dave = udpc_tcli_addr(5, 40005);
  udpc_packet tr = start_walk();
  udpc_packet forged = chat_from("dave", 778, "forged");
  feed(&EVIL, &forged); /* the table will list dave elsewhere */
  udpc_packet late = chat_from("dave", 779, "too late");
  feed(&dave, &late);
  no_more_sent();
  advance(H.now + UDPC_T_CHAT_ACK + 1); /* the sender has given up */
  udpc_packet again = pop_sent(&SERVER, UDPC_PT_TABLE_REQ); /* resent */
  assert_int_equal(again.id, tr.id);
  finish_walk(&tr, &dave);
  no_more_sent();
  no_more_ev();
  /* Outside a walk an unknown sender is held too (until a delta lists
   * it); without one it ages out unanswered. */
  udpc_packet stranger = chat_from("erin", 780, "who?");
  udpc_addr erin = udpc_tcli_addr(6, 40006);
  feed(&erin, &stranger);
  no_more_sent();
  no_more_ev();
}

/* R94 (P6.3): outside a walk, a CHAT from a sender that just came online
 * arrives before the server's coalesced delta (up to 50 ms later): it is
 * held and accepted when the delta lists the sender at that address; one
 * whose delta comes after the sender's ACK wait (500 ms) is dropped. */
static void test_r94_chat_held_until_delta_lists_sender(void **state) {
  (void)state;
  online_with_table(NULL); /* version 3 */
  udpc_addr dave = udpc_tcli_addr(5, 40005);
  udpc_packet c = chat_from("dave", 781, "hello, new here");
  feed(&dave, &c);
  no_more_sent(); /* held: no ACK yet */
  no_more_ev();
  advance(H.now + UDPC_T_DELTA_WINDOW);
  udpc_packet d = pkt(UDPC_PT_TABLE_DELTA, 50);
  d.u.table_delta.base_version = 3;
  d.u.table_delta.new_version = 4;
  d.u.table_delta.count = 1;
  d.u.table_delta.entries[0] = entry("dave", 1, &dave);
  feed(&SERVER, &d);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  udpc_packet a = pop_sent(&dave, UDPC_PT_CHAT_ACK);
  assert_int_equal(a.id, 781);
  expect_ev(UDPC_EV_CHAT, "dave: hello, new here");
  no_more_ev();
  /* too late: erin's delta comes after her ACK wait */
  udpc_addr erin = udpc_tcli_addr(6, 40006);
  udpc_packet late = chat_from("erin", 782, "anyone?");
  feed(&erin, &late);
  no_more_sent();
  advance(H.now + UDPC_T_CHAT_ACK + 1);
  udpc_packet d2 = pkt(UDPC_PT_TABLE_DELTA, 51);
  d2.u.table_delta.base_version = 4;
  d2.u.table_delta.new_version = 5;
  d2.u.table_delta.count = 1;
  d2.u.table_delta.entries[0] = entry("erin", 1, &erin);
  feed(&SERVER, &d2);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_sent();
  no_more_ev();
}

/* udpc_client_ready (driver backpressure): 0 before registration and while
 * the chats awaiting ACK are at their bound; 1 otherwise, also during a
 * later snapshot walk (only the first table after registering waits). */
static void test_client_ready_backpressure(void **state) {
  (void)state;
  assert_int_equal(udpc_client_ready(H.c), 0); /* not registered yet */
  online_with_table(NULL);
  assert_int_equal(udpc_client_ready(H.c), 1);
  udpc_packet tr = start_walk();
  (void)tr;
  assert_int_equal(udpc_client_ready(H.c), 1);
  uint32_t last = 0;
  for (int i = 0; i < UDPC_CLIENT_CHATS_MAX; i++) {
    assert_int_equal(cmd("send bob x"), UDPC_OK);
    last = pop_sent(&BOB, UDPC_PT_CHAT).id;
  }
  assert_int_equal(udpc_client_ready(H.c), 0); /* 64 chats await an ACK */
  udpc_packet ack = pkt(UDPC_PT_CHAT_ACK, last);
  ack.u.chat_ack.from = mknick("bob");
  feed(&BOB, &ack);
  expect_ev(UDPC_EV_DELIVERED, "[Message received by bob.]");
  assert_int_equal(udpc_client_ready(H.c), 1);
  assert_int_equal(udpc_client_ready(NULL), 0);
}

/* R93 (P6.3 coalescing: clients accept any delta with count 1..20 and
 * new_version > base_version): a
 * delta covering several changes (new_version = base + 3, three entries)
 * is applied whole, and the next delta chains on its new_version. */
static void test_p63_coalesced_delta_accepted(void **state) {
  (void)state;
  online_with_table(NULL);
  udpc_addr dave = udpc_tcli_addr(5, 40005), erin = udpc_tcli_addr(6, 40006);
  udpc_packet d = pkt(UDPC_PT_TABLE_DELTA, 9);
  d.u.table_delta.base_version = 3;
  d.u.table_delta.new_version = 6;
  d.u.table_delta.count = 3;
  d.u.table_delta.entries[0] = entry("erin", 1, &erin);
  d.u.table_delta.entries[1] = entry("bob", 0, &BOB);
  d.u.table_delta.entries[2] = entry("dave", 1, &dave);
  feed(&SERVER, &d);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_sent(); /* no snapshot: no gap */
  assert_int_equal(udpc_client_table_count(H.c), 5);
  udpc_entry e;
  assert_int_equal(udpc_client_table_get(H.c, 1, &e), UDPC_OK);
  assert_string_equal(e.nick.s, "bob");
  assert_int_equal(e.status, UDPC_STATUS_OFFLINE);
  d = pkt(UDPC_PT_TABLE_DELTA, 10);
  d.u.table_delta.base_version = 6;
  d.u.table_delta.new_version = 7;
  d.u.table_delta.count = 1;
  d.u.table_delta.entries[0] = entry("dave", 0, &dave);
  feed(&SERVER, &d);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_sent();
  no_more_ev();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_r1_r2_r6_r7_r12_every_client_datagram, setup, teardown),
      cmocka_unit_test_setup_teardown(test_r12_client_never_answers_garbage,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_r23_unsolicited_ids_not_matched,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_r24_refused_register_result_fields_ignored, setup, teardown),
      cmocka_unit_test_setup_teardown(test_r26_id_counter_next_value_per_packet,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_r34_heartbeat_probe_ack_not_queued_nor_resent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_p63_coalesced_delta_accepted, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_r53_empty_snapshot_replaces_table,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_r94_chat_held_during_walk_then_accepted, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_r94_chat_held_until_delta_lists_sender, setup, teardown),
      cmocka_unit_test_setup_teardown(test_r94_held_chat_rechecked_and_aged_out,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_ready_backpressure, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
