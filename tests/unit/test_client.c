/*
 * test_client.c - the sans-IO client core against hand-built packets.
 *
 * A capturing io.send and event callback record everything the client does;
 * every datagram it sends is decoded (and must be <= 1200 bytes), every
 * event is formatted with udpc_event_format and compared as a whole line.
 * Test names carry the PROTOCOL.md rule they check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "udpc_client.h"
#include "udpchat.h"

#define UDPC_TCLI_SHORT_NAMES
#include "udpc_tcli.h"

#define MAX_SENT UDPC_TCLI_MAX_SENT
#define MAX_EV UDPC_TCLI_MAX_EV

static unsigned ev_count[UDPC_EV_NOTICE + 1]; /* per type, for coverage */

static udpc_addr addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                       uint16_t port) {
  return udpc_thex_addr4(a, b, c, d, port);
}

/* ---- fixtures -------------------------------------------------------------- */

static int setup(void **state) {
  (void)state;
  udpc_tcli_reset(&H);
  H.pop_token = 1; /* token types but PROBE_ACK carry TOKEN */
  H.ev_count = ev_count;
  set_addrs();
  H.c = udpc_tcli_client(&H, &SERVER, 1);
  assert_non_null(H.c);
  return 0;
}

/* Start-up: REGISTER, COOKIE, REGISTER with cookie, REGISTER_RESULT OK.
 * Returns the id of the TABLE_REQ that follows. */
static uint32_t do_register(uint32_t mail_count) {
  return udpc_tcli_register(&H, &SERVER, mail_count, NULL);
}

static void answer_page(uint32_t id, uint64_t version, uint32_t total,
                        uint32_t start, const udpc_entry *e, uint8_t n) {
  udpc_tcli_answer_page(&H, &SERVER, id, version, total, start, e, n);
}

/* Registered, table {alice(me) online, bob online, carol offline} v3. */
static void online_with_table(void) {
  udpc_tcli_addrs a = addrs();
  udpc_tcli_online_with_table(&H, &a, NULL);
}

/* ---- registration ------------------------------------------------------ */

/* P5.1 / R41-R47: REGISTER without cookie, COOKIE, REGISTER with the cookie
 * and a new id, OK -> Welcome, TABLE_REQ 0, snapshot -> table updated. */
/* R18 R26 R27 R28: the cookie is echoed byte for byte with a new id; a
 * COOKIE from another address or id is dropped; a late answer to the old
 * REGISTER id is ignored. */
static void test_p5_register_with_cookie(void **state) {
  (void)state;
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_REGISTERING);
  assert_int_equal(udpc_client_start(H.c, H.now), UDPC_OK);
  assert_int_equal(udpc_client_start(H.c, H.now), UDPC_ERR_STATE);
  udpc_packet r1 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  assert_int_equal(r1.u.reg.cookie_len, 0);
  assert_string_equal(r1.u.reg.nick.s, "alice");
  uint8_t cred[UDPC_CRED_LEN];
  memset(cred, 0xA5, sizeof cred);
  assert_memory_equal(r1.u.reg.credential, cred, sizeof cred);

  /* a COOKIE from elsewhere or with another id is dropped */
  udpc_packet ck = pkt(UDPC_PT_COOKIE, r1.id);
  ck.u.cookie.cookie_len = 3;
  memcpy(ck.u.cookie.cookie, "abc", 3);
  feed(&EVIL, &ck);
  ck.id = r1.id + 1000;
  feed(&SERVER, &ck);
  no_more_sent();

  ck.id = r1.id;
  feed(&SERVER, &ck);
  udpc_packet r2 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  assert_int_equal(r2.u.reg.cookie_len, 3);
  assert_memory_equal(r2.u.reg.cookie, "abc", 3);
  assert_true(r2.id != r1.id);

  /* the old REGISTER's id no longer matches */
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, r1.id);
  rr.u.reg_result.token = TOKEN;
  rr.u.reg_result.table_version = 1;
  feed(&SERVER, &rr);
  no_more_ev();
  rr.id = r2.id;
  feed(&SERVER, &rr);
  expect_ev(UDPC_EV_REGISTERED, "[Welcome, You are registered.]");
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_ONLINE);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 0);
  no_more_sent(); /* no MAIL_REQ: mail_count 0 */
  udpc_entry e = entry("alice", 1, &ME);
  answer_page(tr.id, 1, 1, 0, &e, 1);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), 1);
  udpc_entry got;
  assert_int_equal(udpc_client_table_get(H.c, 0, &got), UDPC_OK);
  assert_string_equal(got.nick.s, "alice");
  assert_int_equal(udpc_client_table_get(H.c, 1, &got), UDPC_ERR_NOT_FOUND);
  no_more_ev();
  /* heartbeat 10 s after ONLINE (R73) */
  assert_int_equal(udpc_client_next_deadline(H.c), H.now + UDPC_T_HEARTBEAT);
}

/* P4.3 R29-R31: REGISTER sent 5 times 500 ms apart (same id), then
 * [Server not responding], [Exiting], exit status 1. */
/* R26: a retransmission reuses the id of the packet it repeats. */
static void test_p4_register_retries_then_exit(void **state) {
  (void)state;
  assert_int_equal(udpc_client_start(H.c, 0), UDPC_OK);
  udpc_packet first = pop_sent(&SERVER, UDPC_PT_REGISTER);
  for (uint64_t t = 500; t <= 2000; t += 500) {
    assert_int_equal(udpc_client_next_deadline(H.c), t);
    advance(t - 1);
    no_more_sent();
    advance(t);
    udpc_packet again = pop_sent(&SERVER, UDPC_PT_REGISTER);
    assert_int_equal(again.id, first.id);
  }
  assert_int_equal(udpc_client_exit_status(H.c), -1);
  advance(2500);
  no_more_sent();
  expect_ev(UDPC_EV_SERVER_DOWN, "[Server not responding]");
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  no_more_ev();
  assert_int_equal(udpc_client_exit_status(H.c), 1);
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_DONE);
  assert_true(udpc_client_next_deadline(H.c) == UINT64_MAX);
}

/* P4.3: a COOKIE restarts REGISTER's count (5 fresh sends). */
static void test_p4_cookie_gives_fresh_sends(void **state) {
  (void)state;
  assert_int_equal(udpc_client_start(H.c, 0), UDPC_OK);
  udpc_packet r1 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  advance(500);
  advance(1000);
  (void)pop_sent(&SERVER, UDPC_PT_REGISTER);
  (void)pop_sent(&SERVER, UDPC_PT_REGISTER);
  H.now = 1200;
  udpc_packet ck = pkt(UDPC_PT_COOKIE, r1.id);
  ck.u.cookie.cookie_len = 1;
  ck.u.cookie.cookie[0] = 7;
  feed(&SERVER, &ck);
  udpc_packet r2 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  for (uint64_t t = 1700; t <= 3200; t += 500) {
    advance(t);
    assert_int_equal(pop_sent(&SERVER, UDPC_PT_REGISTER).id, r2.id);
  }
  advance(3699);
  no_more_ev();
  advance(3700);
  expect_ev(UDPC_EV_SERVER_DOWN, "[Server not responding]");
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  assert_int_equal(udpc_client_exit_status(H.c), 1);
}

/* P4.3 R32: more than 4 COOKIE rounds is the REGISTER failing. */
static void test_p4_cookie_rounds_bounded(void **state) {
  (void)state;
  assert_int_equal(udpc_client_start(H.c, 0), UDPC_OK);
  udpc_packet r = pop_sent(&SERVER, UDPC_PT_REGISTER);
  for (int i = 0; i < UDPC_CLIENT_COOKIE_ROUNDS; i++) {
    udpc_packet ck = pkt(UDPC_PT_COOKIE, r.id);
    ck.u.cookie.cookie_len = 1;
    feed(&SERVER, &ck);
    r = pop_sent(&SERVER, UDPC_PT_REGISTER);
  }
  udpc_packet ck = pkt(UDPC_PT_COOKIE, r.id);
  ck.u.cookie.cookie_len = 1;
  feed(&SERVER, &ck);
  no_more_sent();
  expect_ev(UDPC_EV_SERVER_DOWN, "[Server not responding]");
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  assert_int_equal(udpc_client_exit_status(H.c), 1);
}

/* P5.6 R49: a start-up registration refused ends with status 1. */
static void test_p5_startup_nick_taken_exits(void **state) {
  (void)state;
  assert_int_equal(udpc_client_start(H.c, 0), UDPC_OK);
  udpc_packet r = pop_sent(&SERVER, UDPC_PT_REGISTER);
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, r.id);
  rr.u.reg_result.status = UDPC_REG_NICK_TAKEN;
  feed(&SERVER, &rr);
  expect_ev(UDPC_EV_REG_REFUSED,
            "[Nick alice is already taken by another user.]");
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  no_more_ev();
  assert_int_equal(udpc_client_exit_status(H.c), 1);
}

/* P8.6: commands needing a session during start-up registration are
 * refused; exit leaves at once with status 0. */
static void test_p8_commands_while_registering(void **state) {
  (void)state;
  assert_int_equal(udpc_client_start(H.c, 0), UDPC_OK);
  (void)pop_sent(&SERVER, UDPC_PT_REGISTER);
  assert_int_equal(cmd("send bob hi"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE, "[Registration in progress, please wait.]");
  assert_int_equal(cmd("list"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE, "[Table is empty.]");
  assert_int_equal(cmd("bogus"), UDPC_ERR_ARG);
  expect_ev(UDPC_EV_NOTICE, "[Unknown command 'bogus'. Commands: send, list, "
                            "reg, dereg, deregA, exit, help]");
  assert_int_equal(cmd("   "), UDPC_ERR_ARG);
  no_more_ev(); /* blank line: no event */
  assert_int_equal(cmd("exit"), UDPC_OK);
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  assert_int_equal(udpc_client_exit_status(H.c), 0);
  no_more_sent();
}

/* ---- chat --------------------------------------------------------------- */

/* P4.5 R35: CHAT once to the table address; CHAT_ACK -> delivered. */
/* R83: the CHAT goes to the peer's address from the server's table. */
static void test_p4_chat_delivered(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("send Bob  hello  world "), UDPC_OK);
  udpc_packet c = pop_sent(&BOB, UDPC_PT_CHAT);
  assert_string_equal(c.u.chat.from.s, "alice");
  assert_string_equal(c.u.chat.to.s, "bob");
  assert_int_equal(c.u.chat.text.len, 14);
  assert_memory_equal(c.u.chat.text.p, " hello  world ", 14);
  assert_int_equal(udpc_client_next_deadline(H.c), H.now + UDPC_T_CHAT_ACK);
  no_more_ev();
  H.now += 100;
  udpc_packet ack = pkt(UDPC_PT_CHAT_ACK, c.id);
  ack.u.chat_ack.from = mknick("bob");
  feed(&BOB, &ack);
  expect_ev(UDPC_EV_DELIVERED, "[Message received by bob.]");
  feed(&BOB, &ack); /* duplicate ACK: nothing more */
  advance(H.now + 1000);
  no_more_ev();
  no_more_sent();
}

/* P4.5 R35/R36: no ACK in 500 ms -> NO_ACK, SAVE with msg_id = chat id;
 * a late ACK confirms nothing; SAVED -> the saved line. */
static void test_p4_no_ack_then_save(void **state) {
  (void)state;
  online_with_table();
  uint64_t t0 = H.now;
  assert_int_equal(cmd("send bob are you there?"), UDPC_OK);
  udpc_packet c = pop_sent(&BOB, UDPC_PT_CHAT);
  advance(t0 + 499);
  no_more_ev();
  advance(t0 + 500);
  expect_ev(UDPC_EV_NO_ACK, "[No ACK from bob, message sent to server.]");
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  assert_string_equal(s.u.save.to.s, "bob");
  assert_int_equal(s.u.save.msg_id, c.id);
  assert_int_equal(s.u.save.text.len, 14);
  assert_memory_equal(s.u.save.text.p, "are you there?", 14);
  /* late ACK: ignored (R36) */
  udpc_packet ack = pkt(UDPC_PT_CHAT_ACK, c.id);
  ack.u.chat_ack.from = mknick("bob");
  feed(&BOB, &ack);
  no_more_ev();
  udpc_packet sr = pkt(UDPC_PT_SAVE_RESULT, s.id);
  sr.u.save_result.status = UDPC_SAVE_SAVED;
  feed(&SERVER, &sr);
  expect_ev(UDPC_EV_SAVED, "[Messages received by the server and saved]");
  feed(&SERVER, &sr); /* duplicate result: id no longer outstanding */
  no_more_ev();
  no_more_sent();
}

/* P4.3 R30: a SAVE unanswered after 5 sends -> server down, exit 1. */
static void test_p4_save_unanswered_exits(void **state) {
  (void)state;
  online_with_table();
  uint64_t t0 = H.now;
  assert_int_equal(cmd("send carol hi"), UDPC_OK); /* carol offline: SAVE */
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  assert_string_equal(s.u.save.to.s, "carol");
  for (int i = 1; i < 5; i++) {
    advance(t0 + (uint64_t)i * 500);
    assert_int_equal(pop_sent(&SERVER, UDPC_PT_SAVE).id, s.id);
  }
  no_more_ev();
  advance(t0 + 2500);
  expect_ev(UDPC_EV_SERVER_DOWN, "[Server not responding]");
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  no_more_ev();
  no_more_sent();
  assert_int_equal(udpc_client_exit_status(H.c), 1);
}

/* P4.3 R30: own DEREG unanswered after 5 sends -> server down, exit 1. */
static void test_p4_dereg_unanswered_exits(void **state) {
  (void)state;
  online_with_table();
  uint64_t t0 = H.now;
  assert_int_equal(cmd("dereg alice"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  for (int i = 1; i < 5; i++) {
    advance(t0 + (uint64_t)i * 500);
    assert_int_equal(pop_sent(&SERVER, UDPC_PT_DEREG).id, d.id);
  }
  advance(t0 + 2500);
  expect_ev(UDPC_EV_SERVER_DOWN, "[Server not responding]");
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  assert_int_equal(udpc_client_exit_status(H.c), 1);
}

/* P4.3 R30: TABLE_REQ / DEREG_OTHER failing only reports. */
static void test_p4_deregA_unanswered_continues(void **state) {
  (void)state;
  online_with_table();
  uint64_t t0 = H.now;
  assert_int_equal(cmd("deregA bob"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG_OTHER);
  assert_string_equal(d.u.dereg_other.target.s, "bob");
  for (int i = 1; i <= 5; i++) advance(t0 + (uint64_t)i * 500);
  for (int i = 1; i < 5; i++) (void)pop_sent(&SERVER, UDPC_PT_DEREG_OTHER);
  expect_ev(UDPC_EV_SERVER_DOWN, "[Server not responding]");
  no_more_ev();
  assert_int_equal(udpc_client_exit_status(H.c), -1);
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_ONLINE);
}

/* P4.7 R38: a duplicate CHAT is ACKed again but shown once. */
static void test_p4_duplicate_chat_shown_once(void **state) {
  (void)state;
  online_with_table();
  udpc_packet c = pkt(UDPC_PT_CHAT, 4242);
  c.u.chat.from = mknick("bob");
  c.u.chat.to = mknick("alice");
  c.u.chat.text.p = (const uint8_t *)"  hi  ";
  c.u.chat.text.len = 6;
  feed(&BOB, &c);
  udpc_packet a1 = pop_sent(&BOB, UDPC_PT_CHAT_ACK);
  assert_int_equal(a1.id, 4242);
  assert_string_equal(a1.u.chat_ack.from.s, "alice");
  expect_ev(UDPC_EV_CHAT, "bob:   hi  ");
  feed(&BOB, &c);
  udpc_packet a2 = pop_sent(&BOB, UDPC_PT_CHAT_ACK);
  assert_int_equal(a2.id, 4242);
  no_more_ev();
  c.id = 4243; /* a new id is a new message */
  feed(&BOB, &c);
  (void)pop_sent(&BOB, UDPC_PT_CHAT_ACK);
  expect_ev(UDPC_EV_CHAT, "bob:   hi  ");
  no_more_sent();
}

/* P9.1 R82: CHAT from an address other than the table's, for another
 * nick, or from a nick not in the table: dropped without ACK. */
static void test_p9_forged_chat_dropped(void **state) {
  (void)state;
  online_with_table();
  udpc_packet c = pkt(UDPC_PT_CHAT, 7);
  c.u.chat.from = mknick("bob");
  c.u.chat.to = mknick("alice");
  c.u.chat.text.p = (const uint8_t *)"forged";
  c.u.chat.text.len = 6;
  feed(&EVIL, &c);   /* wrong address for bob */
  feed(&SERVER, &c); /* the server is not bob either */
  c.u.chat.to = mknick("carol");
  feed(&BOB, &c); /* not for us */
  c.u.chat.to = mknick("alice");
  c.u.chat.from = mknick("mallory");
  feed(&BOB, &c); /* not in the table */
  no_more_ev();
  no_more_sent();
}

/* P4.5 R36: CHAT_ACK from the wrong address, nick or id is dropped. */
static void test_p4_forged_chat_ack_dropped(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("send bob x"), UDPC_OK);
  udpc_packet c = pop_sent(&BOB, UDPC_PT_CHAT);
  udpc_packet ack = pkt(UDPC_PT_CHAT_ACK, c.id);
  ack.u.chat_ack.from = mknick("bob");
  feed(&EVIL, &ack);
  ack.u.chat_ack.from = mknick("carol");
  feed(&BOB, &ack);
  ack.u.chat_ack.from = mknick("bob");
  ack.id = c.id + 1;
  feed(&BOB, &ack);
  no_more_ev();
  ack.id = c.id;
  feed(&BOB, &ack);
  expect_ev(UDPC_EV_DELIVERED, "[Message received by bob.]");
}

/* Sending to yourself goes to your own table address and is ACKed by
 * yourself: the incoming line, then the delivered line. */
static void test_p4_send_to_self(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("send ALICE note to self"), UDPC_OK);
  H.sent_pos = H.n_sent - 1;
  sent_t chat = H.sent[H.n_sent - 1];
  (void)pop_sent(&ME, UDPC_PT_CHAT);
  assert_int_equal(udpc_client_recv(H.c, H.now, &ME, chat.data, chat.len),
                   UDPC_OK);
  expect_ev(UDPC_EV_CHAT, "alice: note to self");
  sent_t ack = H.sent[H.n_sent - 1];
  (void)pop_sent(&ME, UDPC_PT_CHAT_ACK);
  assert_int_equal(udpc_client_recv(H.c, H.now, &ME, ack.data, ack.len),
                   UDPC_OK);
  expect_ev(UDPC_EV_DELIVERED, "[Message received by alice.]");
  no_more_ev();
  no_more_sent();
}

/* P7.1: a nick our table does not hold, or holds OFFLINE, goes to the
 * server at once as SAVE with a fresh msg_id; results are shown (P7.3). */
static void test_p7_send_offline_or_unknown_saves(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("send zed hello"), UDPC_OK);
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  assert_string_equal(s.u.save.to.s, "zed");
  no_more_ev();
  /* a second SAVE waits for the first (one request in flight, R33) */
  assert_int_equal(cmd("send carol later"), UDPC_OK);
  no_more_sent();
  udpc_packet sr = pkt(UDPC_PT_SAVE_RESULT, s.id);
  sr.u.save_result.status = UDPC_SAVE_UNKNOWN_RECIPIENT;
  feed(&SERVER, &sr);
  expect_ev(UDPC_EV_SAVE_REFUSED, "[Unknown user zed, message not delivered.]");
  udpc_packet s2 = pop_sent(&SERVER, UDPC_PT_SAVE);
  assert_string_equal(s2.u.save.to.s, "carol");
  assert_true(s2.u.save.msg_id != s.u.save.msg_id);
  assert_true(s2.id != s.id);
  sr = pkt(UDPC_PT_SAVE_RESULT, s2.id);
  sr.u.save_result.status = UDPC_SAVE_QUOTA;
  feed(&SERVER, &sr);
  expect_ev(UDPC_EV_SAVE_REFUSED,
            "[Mailbox of carol is full, message not delivered.]");
  no_more_ev();
  no_more_sent();
}

/* P7.3 / P6.2: RECIPIENT_ONLINE -> [Client <nick> exists!!] and a fresh
 * snapshot (TABLE_REQ 0). */
static void test_p7_exists_triggers_table_req(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("send carol psst"), UDPC_OK);
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  udpc_packet sr = pkt(UDPC_PT_SAVE_RESULT, s.id);
  sr.u.save_result.status = UDPC_SAVE_RECIPIENT_ONLINE;
  sr.u.save_result.entry = entry("carol", 1, &CAROL);
  feed(&SERVER, &sr);
  expect_ev(UDPC_EV_EXISTS, "[Client carol exists!!]");
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 0);
  udpc_entry t[3] = {entry("alice", 1, &ME), entry("bob", 1, &BOB),
                     entry("carol", 1, &CAROL)};
  answer_page(tr.id, 4, 3, 0, t, 3);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  udpc_entry got;
  assert_int_equal(udpc_client_table_get(H.c, 2, &got), UDPC_OK);
  assert_int_equal(got.status, UDPC_STATUS_ONLINE);
  /* now a send to carol is a direct chat */
  assert_int_equal(cmd("send carol psst"), UDPC_OK);
  (void)pop_sent(&CAROL, UDPC_PT_CHAT);
  no_more_sent();
}

/* ---- table ----------------------------------------------------------------- */

static udpc_packet delta(uint64_t base, uint64_t nv, udpc_entry e) {
  udpc_packet d = pkt(UDPC_PT_TABLE_DELTA, 99);
  d.u.table_delta.base_version = base;
  d.u.table_delta.new_version = nv;
  d.u.table_delta.count = 1;
  d.u.table_delta.entries[0] = e;
  return d;
}

/* P6.3 R57: version = base -> apply; >= new -> ignore. */
static void test_p6_delta_applied_and_old_ignored(void **state) {
  (void)state;
  online_with_table();
  udpc_addr dave_a = addr4(10, 0, 0, 5, 5000);
  udpc_packet d = delta(3, 4, entry("dave", 1, &dave_a));
  feed(&SERVER, &d);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), 4);
  udpc_entry got;
  assert_int_equal(udpc_client_table_get(H.c, 3, &got), UDPC_OK);
  assert_string_equal(got.nick.s, "dave");
  feed(&SERVER, &d); /* duplicate: version 4 >= 4 */
  d = delta(4, 5, entry("bob", 0, &BOB));
  feed(&SERVER, &d);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_get(H.c, 1, &got), UDPC_OK);
  assert_int_equal(got.status, UDPC_STATUS_OFFLINE);
  d = delta(5, 6, entry("dave", UDPC_STATUS_REMOVED, &dave_a));
  d.u.table_delta.entries[0].status = UDPC_STATUS_REMOVED;
  feed(&SERVER, &d);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), 3);
  no_more_ev();
  no_more_sent();
}

/* P9.1 R81: TABLE_DELTA from a non-server address or with a wrong token
 * is dropped. */
static void test_p9_forged_delta_dropped(void **state) {
  (void)state;
  online_with_table();
  udpc_packet d = delta(3, 4, entry("bob", 1, &EVIL));
  feed(&EVIL, &d);
  d.token = TOKEN ^ 1;
  feed(&SERVER, &d);
  no_more_ev();
  no_more_sent();
  udpc_entry got;
  assert_int_equal(udpc_client_table_get(H.c, 1, &got), UDPC_OK);
  assert_true(udpc_addr_equal(&got.addr, &BOB));
}

/* P6.3 R57: a gap -> snapshot request (only one at a time, R54). */
static void test_p6_delta_gap_requests_snapshot(void **state) {
  (void)state;
  online_with_table();
  udpc_packet d = delta(5, 6, entry("bob", 0, &BOB));
  feed(&SERVER, &d);
  no_more_ev();
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 0);
  d = delta(6, 7, entry("bob", 1, &BOB));
  feed(&SERVER, &d);
  no_more_sent(); /* the running walk covers it */
  udpc_entry t[2] = {entry("alice", 1, &ME), entry("bob", 1, &BOB)};
  answer_page(tr.id, 7, 2, 0, t, 2);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), 2);
  no_more_sent();
}

/* P6.2 R54: a walk that completes below the highest version seen is
 * followed by one more walk. */
static void test_p6_stale_walk_walks_again(void **state) {
  (void)state;
  online_with_table();
  udpc_packet d = delta(5, 6, entry("bob", 0, &BOB));
  feed(&SERVER, &d);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  d = delta(7, 8, entry("bob", 1, &BOB));
  feed(&SERVER, &d);
  udpc_entry t[1] = {entry("alice", 1, &ME)};
  answer_page(tr.id, 6, 1, 0, t, 1);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 0);
  no_more_sent();
}

static void make_entries(udpc_entry *v, int n, int online) {
  for (int i = 0; i < n; i++) {
    char nick[16];
    snprintf(nick, sizeof nick, "user%02d", i);
    udpc_addr a = addr4(10, 1, 0, (uint8_t)i, (uint16_t)(20000 + i));
    v[i] = entry(nick, online, &a);
  }
}

static void feed_delta(uint64_t base, uint64_t nv, const udpc_entry *e,
                       size_t n) {
  udpc_packet d = pkt(UDPC_PT_TABLE_DELTA, 99);
  d.u.table_delta.base_version = base;
  d.u.table_delta.new_version = nv;
  d.u.table_delta.count = (uint8_t)n;
  for (size_t i = 0; i < n; i++) d.u.table_delta.entries[i] = e[i];
  feed(&SERVER, &d);
}

static void expect_row(size_t i, const char *nick, int status) {
  udpc_entry got;
  assert_int_equal(udpc_client_table_get(H.c, i, &got), UDPC_OK);
  assert_string_equal(got.nick.s, nick);
  assert_int_equal(got.status, status);
}

/* P6.2 R53: snapshot paging; the table changes between the pages (version
 * 10 on the first, 11 on the second): the delta of that change arrives in
 * between, so the walk completes without restarting, at version 11, with
 * the change in. The page requests are follow-ups (new ids). */
static void test_r53_walk_survives_version_change(void **state) {
  (void)state;
  udpc_entry v[25];
  make_entries(v, 25, 1);
  uint32_t id = do_register(0);
  answer_page(id, 10, 25, 0, v, 20);
  no_more_ev();
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 20);
  assert_true(tr.id != id);
  udpc_entry off = v[3];
  off.status = UDPC_STATUS_OFFLINE;
  feed_delta(10, 11, &off, 1); /* feeds the walk, shown at completion */
  no_more_ev();
  no_more_sent();
  answer_page(tr.id, 11, 25, 20, v + 20, 5);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_ev();
  no_more_sent(); /* no restart, no second walk */
  assert_int_equal(udpc_client_table_count(H.c), 25);
  expect_row(3, "user03", UDPC_STATUS_OFFLINE);
  expect_row(24, "user24", UDPC_STATUS_ONLINE);
  /* the table is at version 11: the next delta chains on it */
  feed_delta(11, 12, &v[3], 1);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  expect_row(3, "user03", UDPC_STATUS_ONLINE);
  no_more_sent();
}

/* P6.2 R53: the pages reached the end at version 12 while the deltas have
 * reached only 10: the walk waits (no request, the queue goes on) and
 * completes when the deltas (two, chained) reach 12 within 500 ms. */
static void test_r53_walk_waits_for_deltas_after_last_page(void **state) {
  (void)state;
  udpc_entry v[25];
  make_entries(v, 25, 1);
  uint32_t id = do_register(0);
  answer_page(id, 10, 25, 0, v, 20);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  answer_page(tr.id, 12, 25, 20, v + 20, 5);
  no_more_ev();
  no_more_sent();
  uint64_t t0 = H.now;
  assert_int_equal(udpc_client_next_deadline(H.c), t0 + UDPC_T_REQUEST_RETRY);
  /* the queue is not blocked while the walk waits */
  assert_int_equal(cmd("deregA carol"), UDPC_OK);
  udpc_packet dro = pop_sent(&SERVER, UDPC_PT_DEREG_OTHER);
  assert_string_equal(dro.u.dereg_other.target.s, "carol");
  advance(t0 + 200);
  no_more_sent();
  udpc_entry off = v[22];
  off.status = UDPC_STATUS_OFFLINE;
  feed_delta(10, 11, &off, 1);
  no_more_ev(); /* chain 11 < pmax 12: still waiting */
  advance(t0 + 400);
  feed_delta(11, 12, &v[0], 1);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_ev();
  no_more_sent();
  assert_int_equal(udpc_client_table_count(H.c), 25);
  expect_row(22, "user22", UDPC_STATUS_OFFLINE);
  advance(t0 + 1000); /* the wait timer is gone with the walk */
  udpc_packet again = pop_sent(&SERVER, UDPC_PT_DEREG_OTHER); /* resent */
  assert_int_equal(again.id, dro.id);
  no_more_sent();
  no_more_ev();
}

/* P6.2 R53: stamps. A delta (10 -> 12) arrives before the page that holds
 * its entry, which was read at version 11: the page's older entry does not
 * overwrite the delta's newer one. */
static void test_r53_page_entry_older_than_delta_kept(void **state) {
  (void)state;
  udpc_entry v[25];
  make_entries(v, 25, 1);
  uint32_t id = do_register(0);
  answer_page(id, 10, 25, 0, v, 20);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  udpc_entry moved = v[22];
  moved.status = UDPC_STATUS_OFFLINE;
  moved.addr = addr4(10, 9, 9, 9, 9999);
  feed_delta(10, 12, &moved, 1);
  no_more_ev();
  answer_page(tr.id, 11, 25, 20, v + 20, 5); /* user22 online: older */
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_sent();
  expect_row(22, "user22", UDPC_STATUS_OFFLINE);
  udpc_entry got;
  assert_int_equal(udpc_client_table_get(H.c, 22, &got), UDPC_OK);
  assert_true(udpc_addr_equal(&got.addr, &moved.addr));
  /* version = chain (12): a delta 12 -> 13 applies */
  feed_delta(12, 13, &v[22], 1);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  expect_row(22, "user22", UDPC_STATUS_ONLINE);
}

/* P6.2 R53: a delta gap during the walk (base 11 > chain 10: the change
 * 10 -> 11 was missed) restarts the walk at 0 with an empty buffer and a
 * new request id; a late page for the old id is ignored (R28). */
static void test_r53_delta_gap_restarts_walk(void **state) {
  (void)state;
  udpc_entry v[25];
  make_entries(v, 25, 1);
  uint32_t id = do_register(0);
  answer_page(id, 10, 25, 0, v, 20);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 20);
  feed_delta(11, 12, &v[1], 1);
  udpc_packet tr2 = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr2.u.table_req.start, 0);
  assert_true(tr2.id != tr.id);
  no_more_ev();
  answer_page(tr.id, 12, 25, 20, v + 20, 5); /* old id: ignored */
  no_more_ev();
  no_more_sent();
  /* the restarted walk: one page of 3 entries at version 12 */
  answer_page(tr2.id, 12, 3, 0, v, 3);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), 3);
  no_more_sent();
}

/* P6.2 R53: the pages reached the end (version 12) but the deltas stay at
 * 10 for 500 ms: the walk restarts at 0 (queued first, as a new request).
 * Deltas before the new start-0 page are not used by the walk. */
static void test_r53_no_delta_within_500ms_restarts(void **state) {
  (void)state;
  udpc_entry v[25];
  make_entries(v, 25, 1);
  uint32_t id = do_register(0);
  answer_page(id, 10, 25, 0, v, 20);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  answer_page(tr.id, 12, 25, 20, v + 20, 5);
  uint64_t t0 = H.now;
  advance(t0 + UDPC_T_REQUEST_RETRY - 1);
  no_more_sent();
  feed_delta(10, 11, &v[1], 1); /* 11 < 12: still not enough */
  advance(t0 + UDPC_T_REQUEST_RETRY);
  udpc_packet tr2 = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr2.u.table_req.start, 0);
  no_more_ev();
  assert_int_equal(udpc_client_ready(H.c), 0); /* still no first table */
  feed_delta(11, 12, &v[1], 1);                /* before page 0: not used */
  answer_page(tr2.id, 12, 25, 0, v, 20);
  udpc_packet tr3 = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr3.u.table_req.start, 20);
  answer_page(tr3.id, 12, 25, 20, v + 20, 5);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_ev();
  no_more_sent();
  assert_int_equal(udpc_client_table_count(H.c), 25);
  assert_int_equal(udpc_client_ready(H.c), 1);
}

/* P6.2 R53: an entry inserted between two pages (aaron, sorted first)
 * shifts the later entries right, so the second page starts with the last
 * entry of the first again: it appears once; the insert comes through the
 * delta. */
static void test_r53_shifted_duplicate_appears_once(void **state) {
  (void)state;
  udpc_entry v[26];
  udpc_addr aa = addr4(10, 2, 0, 1, 30000);
  v[0] = entry("aaron", 1, &aa);
  make_entries(v + 1, 25, 1);
  uint32_t id = do_register(0);
  answer_page(id, 10, 25, 0, v + 1, 20); /* user00..user19 */
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  feed_delta(10, 11, &v[0], 1);              /* aaron joins */
  answer_page(tr.id, 11, 26, 20, v + 20, 6); /* user19..user24 */
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_sent();
  assert_int_equal(udpc_client_table_count(H.c), 26);
  expect_row(0, "aaron", UDPC_STATUS_ONLINE);
  expect_row(20, "user19", UDPC_STATUS_ONLINE);
  expect_row(21, "user20", UDPC_STATUS_ONLINE);
  expect_row(25, "user24", UDPC_STATUS_ONLINE);
}

/* P6.2 R53 P4.3: a page request that fails (5 sends unanswered) abandons
 * the walk: the old rows stay, but the table version is forgotten (the
 * server may have left entries out of the deltas it sent during the walk,
 * P6.3), so the next delta is not applied: it starts a new walk; so does
 * a HEARTBEAT_ACK. */
static void test_r53_failed_walk_forgets_version(void **state) {
  (void)state;
  online_with_table();
  udpc_entry v[25];
  make_entries(v, 25, 1);
  feed_delta(5, 6, &v[0], 1); /* gap -> walk */
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  answer_page(tr.id, 6, 25, 0, v, 20);
  udpc_packet tr2 = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  uint64_t t0 = H.now;
  for (int i = 1; i < UDPC_N_REQUEST_SENDS; i++) {
    advance(t0 + (uint64_t)i * UDPC_T_REQUEST_RETRY);
    udpc_packet again = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
    assert_int_equal(again.id, tr2.id);
  }
  advance(t0 + UDPC_N_REQUEST_SENDS * UDPC_T_REQUEST_RETRY);
  expect_ev(UDPC_EV_SERVER_DOWN, "[Server not responding]");
  no_more_ev();
  no_more_sent();
  assert_int_equal(udpc_client_table_count(H.c), 3); /* old rows kept */
  udpc_addr dave_a = addr4(10, 0, 0, 5, 5000);
  udpc_entry dave = entry("dave", 1, &dave_a);
  feed_delta(3, 4, &dave, 1); /* version 3 was forgotten: not applied */
  no_more_ev();
  assert_int_equal(udpc_client_table_count(H.c), 3);
  udpc_packet tr3 = pop_sent(&SERVER, UDPC_PT_TABLE_REQ); /* a new walk */
  assert_int_equal(tr3.u.table_req.start, 0);
  no_more_sent();
  answer_page(tr3.id, 6, 25, 0, v, 20); /* 6: the highest version seen */
  udpc_packet tr4 = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr4.u.table_req.start, 20);
  answer_page(tr4.id, 6, 25, 20, v + 20, 5);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), 25);
  no_more_sent();
}

/* P6.2 P6.4: after a failed walk, a HEARTBEAT_ACK with any version starts a
 * new walk (the version is forgotten). */
static void test_r53_failed_walk_heartbeat_starts_walk(void **state) {
  (void)state;
  online_with_table();
  udpc_entry v[25];
  make_entries(v, 25, 1);
  feed_delta(5, 6, &v[0], 1); /* gap -> walk */
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  uint64_t t0 = H.now;
  for (int i = 1; i < UDPC_N_REQUEST_SENDS; i++) {
    advance(t0 + (uint64_t)i * UDPC_T_REQUEST_RETRY);
    udpc_packet again = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
    assert_int_equal(again.id, tr.id);
  }
  advance(t0 + UDPC_N_REQUEST_SENDS * UDPC_T_REQUEST_RETRY);
  expect_ev(UDPC_EV_SERVER_DOWN, "[Server not responding]");
  no_more_ev();
  no_more_sent();
  assert_int_equal(udpc_client_table_count(H.c), 3);
  advance(t0 + UDPC_T_HEARTBEAT);
  udpc_packet hb = pop_sent(&SERVER, UDPC_PT_HEARTBEAT);
  udpc_packet ack = pkt(UDPC_PT_HEARTBEAT_ACK, hb.id);
  ack.u.heartbeat_ack.table_version = 3;
  feed(&SERVER, &ack);
  udpc_packet tr2 = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr2.u.table_req.start, 0);
  no_more_sent();
  assert_int_equal(udpc_client_table_count(H.c), 3);
}

/* P6.2 R54: a reason for a snapshot that arises during the walk (a
 * HEARTBEAT_ACK with published version 11 > our 0) is satisfied by the walk
 * when it completes at 11; no second walk. */
static void test_r54_heartbeat_during_walk_satisfied_by_it(void **state) {
  (void)state;
  udpc_entry v[25];
  make_entries(v, 25, 1);
  uint64_t t0 = H.now;
  uint32_t id = do_register(0);
  answer_page(id, 10, 25, 0, v, 20);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  feed_delta(10, 11, &v[2], 1);
  advance(t0 + UDPC_T_HEARTBEAT);
  udpc_packet again = pop_sent(&SERVER, UDPC_PT_TABLE_REQ); /* retransmit */
  assert_int_equal(again.id, tr.id);
  udpc_packet hb = pop_sent(&SERVER, UDPC_PT_HEARTBEAT);
  udpc_packet ack = pkt(UDPC_PT_HEARTBEAT_ACK, hb.id);
  ack.u.heartbeat_ack.table_version = 11;
  feed(&SERVER, &ack);
  no_more_sent(); /* R54: never two walks */
  answer_page(tr.id, 11, 25, 20, v + 20, 5);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_sent(); /* 11 >= 11: satisfied */
  no_more_ev();
}

/* P6.3 R57: v = 3. A delta with base < v < new applies (it carries every
 * entry changed in (base, new]); v >= new is ignored; base > v requests a
 * snapshot. */
static void test_r57_delta_base_below_version_applies(void **state) {
  (void)state;
  online_with_table();
  udpc_addr dave_a = addr4(10, 0, 0, 5, 5000);
  udpc_entry e[2] = {entry("bob", 1, &BOB), entry("dave", 1, &dave_a)};
  feed_delta(2, 5, e, 2);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), 4);
  expect_row(3, "dave", UDPC_STATUS_ONLINE);
  e[1].status = UDPC_STATUS_OFFLINE;
  feed_delta(4, 5, &e[1], 1); /* v 5 >= new 5 */
  feed_delta(1, 4, &e[1], 1); /* v 5 >= new 4 */
  no_more_ev();
  no_more_sent();
  expect_row(3, "dave", UDPC_STATUS_ONLINE);
  feed_delta(4, 6, &e[1], 1); /* 4 <= 5 < 6 */
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  expect_row(3, "dave", UDPC_STATUS_OFFLINE);
  feed_delta(7, 8, &e[0], 1); /* base 7 > 6: a gap */
  no_more_ev();
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 0);
  no_more_sent();
}

/* P6.3 R57: a delta is applied in order: the same nick twice, the last
 * wins; REMOVED deletes; inserts land sorted among the existing rows. */
static void test_r57_delta_entries_in_order(void **state) {
  (void)state;
  online_with_table();
  udpc_addr a1 = addr4(10, 0, 0, 7, 7001), a2 = addr4(10, 0, 0, 8, 7002);
  udpc_entry e[5] = {entry("zed", 1, &a1), entry("bob", 0, &BOB),
                     entry("ben", 1, &a1), entry("ben", 0, &a2),
                     entry("carol", 1, &CAROL)};
  e[1].status = UDPC_STATUS_REMOVED;
  feed_delta(3, 4, e, 5);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), 4);
  expect_row(0, "alice", UDPC_STATUS_ONLINE);
  expect_row(1, "ben", UDPC_STATUS_OFFLINE);
  expect_row(2, "carol", UDPC_STATUS_ONLINE);
  expect_row(3, "zed", UDPC_STATUS_ONLINE);
  udpc_entry got;
  assert_int_equal(udpc_client_table_get(H.c, 1, &got), UDPC_OK);
  assert_true(udpc_addr_equal(&got.addr, &a2));
}

/* ---- Join storm: a model server whose table grows between pages ----- */

#define STORM_MAX 20000
#define STORM_CHUNK 64 /* entries per page / delta (they fit 1200 bytes) */

static struct {
  udpc_entry t[STORM_MAX]; /* sorted by nick */
  size_t n;
  uint64_t version;           /* live */
  uint64_t published;         /* new_version of the last delta sent */
  udpc_entry pend[STORM_MAX]; /* changes since the last delta, in order */
  size_t npend;
  uint64_t rng;
} S;

static uint32_t storm_rand(void) {
  S.rng = S.rng * 6364136223846793005ULL + 1442695040888963407ULL;
  return (uint32_t)(S.rng >> 33);
}

static int storm_cmp(const void *a, const void *b) {
  const udpc_entry *x = a, *y = b;
  size_t m = x->nick.len < y->nick.len ? x->nick.len : y->nick.len;
  int r = memcmp(x->nick.s, y->nick.s, m);
  return r != 0 ? r : (int)x->nick.len - (int)y->nick.len;
}

/* One join (a fresh random nick) or a status change, version + 1. */
static void storm_change(void) {
  udpc_entry e;
  if (S.n > 0 && storm_rand() % 8 == 0) {
    size_t i = storm_rand() % S.n;
    S.t[i].status = (uint8_t)(S.t[i].status ^ 1u);
    e = S.t[i];
  } else {
    char nick[16];
    snprintf(nick, sizeof nick, "j%08x", storm_rand());
    udpc_addr a =
        addr4(10, 3, (uint8_t)(S.n >> 8), (uint8_t)S.n, (uint16_t)(1024 + S.n));
    e = entry(nick, 1, &a);
    udpc_entry *hit = bsearch(&e, S.t, S.n, sizeof S.t[0], storm_cmp);
    if (hit != NULL) return; /* (a clash: not a change) */
    assert_true(S.n < STORM_MAX);
    size_t at = 0;
    while (at < S.n && storm_cmp(&S.t[at], &e) < 0) at++;
    memmove(&S.t[at + 1], &S.t[at], (S.n - at) * sizeof S.t[0]);
    S.t[at] = e;
    S.n++;
  }
  S.pend[S.npend++] = e;
  S.version++;
}

/* The coalescing window ends: deltas chained from `published`, one
 * version per change (a chunk covers its changes' versions). */
static void storm_emit(void) {
  size_t i = 0;
  while (i < S.npend) {
    size_t k = S.npend - i < STORM_CHUNK ? S.npend - i : STORM_CHUNK;
    feed_delta(S.published, S.published + k, &S.pend[i], k);
    S.published += k;
    i += k;
  }
  S.npend = 0;
}

static void storm_page(uint32_t id, uint32_t start) {
  uint32_t total = (uint32_t)S.n;
  size_t k = start < total ? total - start : 0;
  if (k > STORM_CHUNK) k = STORM_CHUNK;
  answer_page(id, S.version, total, start, S.t + start, (uint8_t)k);
}

/* P6.2 R53 R54 (issue 8): a join storm. The client walks a table of 5,000
 * entries that grows to ~9,000 while it walks: before every page 20-50
 * changes (joins at random places, shifting later entries, and status
 * changes), whose deltas come in a window later (sometimes after the next
 * page). The walk completes exactly once, without restarting, with the
 * server's table, and takes one page request per page. */
static void test_r53_join_storm_converges(void **state) {
  (void)state;
  memset(&S, 0, sizeof S);
  S.rng = 8;
  S.version = 1;
  while (S.n < 5000) storm_change();
  S.npend = 0;
  S.published = S.version;
  uint32_t id = do_register(0);
  uint32_t start = 0;
  size_t pages = 0;
  for (;;) {
    storm_page(id, start);
    pages++;
    if (start + STORM_CHUNK >= S.n && start < S.n) {
      /* that was the last page: the window closes, the rest comes */
      break;
    }
    udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
    assert_int_equal(tr.u.table_req.start, start + STORM_CHUNK);
    start = tr.u.table_req.start;
    id = tr.id;
    no_more_ev();
    int joins = 20 + (int)(storm_rand() % 31);
    for (int j = 0; j < joins; j++) storm_change();
    /* the window closes before the next page, or after it (always after
     * the last page, so the walk has to wait for those deltas) */
    if (start + STORM_CHUNK < S.n && storm_rand() % 3 != 0) storm_emit();
    H.sent_pos = H.n_sent; /* nothing else was sent */
  }
  no_more_ev();
  storm_emit();
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  no_more_ev();
  no_more_sent(); /* no restart, no second walk */
  assert_true(S.n > 8000);
  assert_true(pages < 400);
  assert_int_equal(udpc_client_table_count(H.c), S.n);
  for (size_t i = 0; i < S.n; i++) {
    udpc_entry got;
    assert_int_equal(udpc_client_table_get(H.c, i, &got), UDPC_OK);
    assert_string_equal(got.nick.s, S.t[i].nick.s);
    assert_int_equal(got.status, S.t[i].status);
    assert_true(udpc_addr_equal(&got.addr, &S.t[i].addr));
  }
  /* more joins: applied to the sorted table by deltas */
  for (int j = 0; j < 500; j++) storm_change();
  storm_emit();
  for (size_t i = 0; i < 8; i++)
    expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(H.c), S.n);
  for (size_t i = 0; i < S.n; i++) {
    udpc_entry got;
    assert_int_equal(udpc_client_table_get(H.c, i, &got), UDPC_OK);
    assert_string_equal(got.nick.s, S.t[i].nick.s);
    assert_int_equal(got.status, S.t[i].status);
  }
  no_more_sent();
}

/* P6.4 R58: HEARTBEAT every 10 s with a new id; an ACK with a higher
 * version requests a snapshot, a lower one is ignored. */
/* R26 R28: each HEARTBEAT takes a new id; an ACK with a stale id is ignored. */
static void test_p6_heartbeat_version_check(void **state) {
  (void)state;
  online_with_table();
  uint64_t t0 = H.now;
  advance(t0 + UDPC_T_HEARTBEAT);
  udpc_packet hb = pop_sent(&SERVER, UDPC_PT_HEARTBEAT);
  udpc_packet ack = pkt(UDPC_PT_HEARTBEAT_ACK, hb.id);
  ack.u.heartbeat_ack.table_version = 2;
  feed(&SERVER, &ack);
  no_more_sent();
  advance(t0 + 2 * UDPC_T_HEARTBEAT);
  udpc_packet hb2 = pop_sent(&SERVER, UDPC_PT_HEARTBEAT);
  assert_true(hb2.id != hb.id);
  ack.id = hb.id; /* stale id: ignored */
  ack.u.heartbeat_ack.table_version = 9;
  feed(&SERVER, &ack);
  no_more_sent();
  ack.id = hb2.id;
  feed(&SERVER, &ack);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 0);
  no_more_ev();
}

/* P6.5: list prints a header and aligned rows; width = longest nick. */
static void test_p6_list(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("list"), UDPC_OK);
  expect_ev(UDPC_EV_LIST_ROW, "nick   ip               port   status");
  expect_ev(UDPC_EV_LIST_ROW, "alice  10.0.0.2         40001  online");
  expect_ev(UDPC_EV_LIST_ROW, "bob    10.0.0.3         40002  online");
  expect_ev(UDPC_EV_LIST_ROW, "carol  10.0.0.4         40003  offline");
  no_more_ev();
  no_more_sent();
}

/* ---- mail ------------------------------------------------------------------ */

static udpc_mail mail(uint64_t seq, uint32_t msg_id, const char *from,
                      const char *text, uint64_t ts) {
  udpc_mail m;
  memset(&m, 0, sizeof m);
  m.seq = seq;
  m.msg_id = msg_id;
  m.timestamp_ms = ts;
  m.from = mknick(from);
  m.text.p = (const uint8_t *)text;
  m.text.len = (uint16_t)strlen(text);
  return m;
}

/* P7.4 R62/R65: MAIL_REQ 0 after the first TABLE_REQ; [You have messages]
 * once; each mail shown; MAIL_REQ ack_upto = last seq; empty page ends. */
static void test_p7_mail_two_pages(void **state) {
  (void)state;
  uint32_t id = do_register(3);
  udpc_entry me = entry("alice", 1, &ME);
  no_more_sent(); /* MAIL_REQ waits behind TABLE_REQ */
  answer_page(id, 3, 1, 0, &me, 1);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  udpc_packet mr = pop_sent(&SERVER, UDPC_PT_MAIL_REQ);
  assert_true(mr.u.mail_req.ack_upto == 0);

  udpc_packet mp = pkt(UDPC_PT_MAIL_PAGE, mr.id);
  mp.u.mail_page.remaining = 1;
  mp.u.mail_page.count = 2;
  mp.u.mail_page.mail[0] = mail(5, 100, "bob", "first", 1795640934123ULL);
  mp.u.mail_page.mail[1] = mail(6, 101, "carol", "second  one", 0);
  feed(&SERVER, &mp);
  expect_ev(UDPC_EV_HAVE_MAIL, "[You have messages]");
  expect_ev(UDPC_EV_MAIL, "bob: 2026-11-25 21:08:54 first");
  expect_ev(UDPC_EV_MAIL, "carol: 1970-01-01 00:00:00 second  one");
  udpc_packet mr2 = pop_sent(&SERVER, UDPC_PT_MAIL_REQ);
  assert_true(mr2.u.mail_req.ack_upto == 6);
  assert_true(mr2.id != mr.id);
  feed(&SERVER, &mp); /* the old page again: id no longer outstanding */
  no_more_ev();

  mp = pkt(UDPC_PT_MAIL_PAGE, mr2.id);
  mp.u.mail_page.count = 1;
  mp.u.mail_page.mail[0] = mail(9, 102, "bob", "third", 1000);
  feed(&SERVER, &mp);
  expect_ev(UDPC_EV_MAIL, "bob: 1970-01-01 00:00:01 third");
  udpc_packet mr3 = pop_sent(&SERVER, UDPC_PT_MAIL_REQ);
  assert_true(mr3.u.mail_req.ack_upto == 9);
  mp = pkt(UDPC_PT_MAIL_PAGE, mr3.id);
  feed(&SERVER, &mp);
  no_more_ev();
  no_more_sent();
}

/* P4.7 R38: mail whose (from, msg_id) was shown as a chat is not shown
 * again (but acknowledged). */
static void test_p4_mail_dedupe_with_chat(void **state) {
  (void)state;
  uint32_t id = do_register(2);
  udpc_entry t[2] = {entry("alice", 1, &ME), entry("bob", 1, &BOB)};
  answer_page(id, 3, 2, 0, t, 2);
  expect_ev(UDPC_EV_TABLE_UPDATED, "[Client table updated.]");
  udpc_packet mr = pop_sent(&SERVER, UDPC_PT_MAIL_REQ);
  udpc_packet c = pkt(UDPC_PT_CHAT, 77);
  c.u.chat.from = mknick("bob");
  c.u.chat.to = mknick("alice");
  c.u.chat.text.p = (const uint8_t *)"hi";
  c.u.chat.text.len = 2;
  feed(&BOB, &c);
  (void)pop_sent(&BOB, UDPC_PT_CHAT_ACK);
  expect_ev(UDPC_EV_CHAT, "bob: hi");
  udpc_packet mp = pkt(UDPC_PT_MAIL_PAGE, mr.id);
  mp.u.mail_page.count = 2;
  mp.u.mail_page.mail[0] = mail(1, 77, "bob", "hi", 0);
  mp.u.mail_page.mail[1] = mail(2, 78, "bob", "again", 0);
  feed(&SERVER, &mp);
  expect_ev(UDPC_EV_HAVE_MAIL, "[You have messages]");
  expect_ev(UDPC_EV_MAIL, "bob: 1970-01-01 00:00:00 again");
  no_more_ev();
  udpc_packet mr2 = pop_sent(&SERVER, UDPC_PT_MAIL_REQ);
  assert_true(mr2.u.mail_req.ack_upto == 2);
}

/* ---- dereg / reg / deregA / kicked ----------------------------------------- */

/* P8.1 R66-R69, P5.5 R48: dereg own -> offline; offline refuses commands
 * and drops chats; reg own runs the full cookie exchange again. */
/* R68 R16: OFFLINE refuses send/deregA with the offline notice and sends
 * nothing (no HEARTBEAT timer); `dereg Alice` is folded to the own nick. */
static void test_p8_dereg_then_reg(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("dereg bob"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE,
            "[You can only dereg yourself (alice); use deregA bob.]");
  no_more_sent();
  assert_int_equal(cmd("dereg Alice"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, d.id);
  dr.u.dereg_result.status = UDPC_DEREG_OK;
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_OFFLINE, "[You are Offline. Bye.]");
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_OFFLINE);
  assert_true(udpc_client_next_deadline(H.c) == UINT64_MAX); /* no HB */

  assert_int_equal(cmd("send bob hi"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE, "[You are offline; use reg alice to come back.]");
  assert_int_equal(cmd("deregA bob"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE, "[You are offline; use reg alice to come back.]");
  udpc_packet c = pkt(UDPC_PT_CHAT, 5);
  c.u.chat.from = mknick("bob");
  c.u.chat.to = mknick("alice");
  c.u.chat.text.p = (const uint8_t *)"x";
  c.u.chat.text.len = 1;
  feed(&BOB, &c);                         /* R69: not shown, not ACKed */
  assert_int_equal(cmd("list"), UDPC_OK); /* stale copy still listed */
  expect_ev(UDPC_EV_LIST_ROW, "nick   ip               port   status");
  H.ev_pos += 3;
  assert_int_equal(cmd("reg bob"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE, "[You can only reg your own nick alice.]");
  no_more_sent();
  no_more_ev();

  assert_int_equal(cmd("reg alice"), UDPC_OK);
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_REGISTERING);
  udpc_packet r1 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  assert_int_equal(r1.u.reg.cookie_len, 0);
  udpc_packet ck = pkt(UDPC_PT_COOKIE, r1.id);
  ck.u.cookie.cookie_len = 2;
  feed(&SERVER, &ck);
  udpc_packet r2 = pop_sent(&SERVER, UDPC_PT_REGISTER);
  assert_int_equal(r2.u.reg.cookie_len, 2);
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, r2.id);
  rr.u.reg_result.token = TOKEN;
  rr.u.reg_result.table_version = 9;
  feed(&SERVER, &rr);
  expect_ev(UDPC_EV_REGISTERED, "[Welcome, You are registered.]");
  (void)pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(cmd("reg alice"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE, "[You are already registered.]");
  no_more_sent();
  no_more_ev();
}

/* P5.6: a refused `reg` shows the line and stays OFFLINE (no exit). */
static void test_p5_reg_refused_stays_offline(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("dereg alice"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, d.id);
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_OFFLINE, "[You are Offline. Bye.]");
  assert_int_equal(cmd("reg alice"), UDPC_OK);
  udpc_packet r = pop_sent(&SERVER, UDPC_PT_REGISTER);
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, r.id);
  rr.u.reg_result.status = UDPC_REG_SERVER_FULL;
  feed(&SERVER, &rr);
  expect_ev(UDPC_EV_REG_REFUSED, "[Server is full, try again later.]");
  no_more_ev();
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_OFFLINE);
  assert_int_equal(udpc_client_exit_status(H.c), -1);
}

/* P8.2: deregA -> DEREG_OTHER and its result lines; deregA own = dereg. */
static void test_p8_deregA(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("deregA Bob"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG_OTHER);
  assert_string_equal(d.u.dereg_other.target.s, "bob");
  assert_int_equal(cmd("deregA zed"), UDPC_OK); /* queued behind */
  no_more_sent();
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, d.id);
  dr.u.dereg_result.status = UDPC_DEREG_OK;
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_DEREG_OTHER, "[bob is now offline.]");
  udpc_packet d2 = pop_sent(&SERVER, UDPC_PT_DEREG_OTHER);
  assert_string_equal(d2.u.dereg_other.target.s, "zed");
  dr = pkt(UDPC_PT_DEREG_RESULT, d2.id);
  dr.u.dereg_result.status = UDPC_DEREG_UNKNOWN_NICK;
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_DEREG_OTHER, "[Unknown user zed.]");
  assert_int_equal(cmd("deregA carol"), UDPC_OK);
  udpc_packet d3 = pop_sent(&SERVER, UDPC_PT_DEREG_OTHER);
  dr = pkt(UDPC_PT_DEREG_RESULT, d3.id);
  dr.u.dereg_result.status = UDPC_DEREG_NOT_PERMITTED;
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_DEREG_OTHER,
            "[Permission denied: only operators may deregA.]");
  assert_int_equal(cmd("deregA alice"), UDPC_OK);
  (void)pop_sent(&SERVER, UDPC_PT_DEREG);
  no_more_ev();
  no_more_sent();
}

/* P8.2 R71: KICKED -> two lines, OFFLINE, queue dropped. */
static void test_p8_kicked(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("send carol queued"), UDPC_OK);
  (void)pop_sent(&SERVER, UDPC_PT_SAVE);
  udpc_packet k = pkt(UDPC_PT_KICKED, 31);
  k.u.kicked.by = mknick("root");
  k.token = TOKEN ^ 2; /* wrong token: dropped */
  feed(&SERVER, &k);
  no_more_ev();
  k.token = TOKEN;
  feed(&SERVER, &k);
  expect_ev(UDPC_EV_KICKED, "[You were deregistered by root.]");
  expect_ev(UDPC_EV_OFFLINE, "[You are Offline. Bye.]");
  expect_ev(UDPC_EV_NOTICE, "[Message to carol not sent: you are offline.]");
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_OFFLINE);
  advance(H.now + 60000);
  no_more_sent();
  no_more_ev();
}

/* P4.6 R37: ERROR BAD_SESSION to a HEARTBEAT -> silent re-registration
 * (no Welcome line), then a snapshot. */
static void test_p4_bad_session_reregisters_silently(void **state) {
  (void)state;
  online_with_table();
  advance(H.now + UDPC_T_HEARTBEAT);
  udpc_packet hb = pop_sent(&SERVER, UDPC_PT_HEARTBEAT);
  udpc_packet e = pkt(UDPC_PT_ERROR, hb.id);
  e.u.error.code = UDPC_ERROR_BAD_SESSION;
  feed(&SERVER, &e);
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_REGISTERING);
  udpc_packet r = pop_sent(&SERVER, UDPC_PT_REGISTER);
  assert_int_equal(r.u.reg.cookie_len, 0);
  /* commands queue during a silent re-registration */
  assert_int_equal(cmd("send carol later"), UDPC_OK);
  no_more_sent();
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, r.id);
  rr.u.reg_result.token = TOKEN;
  rr.u.reg_result.table_version = 1;
  feed(&SERVER, &rr);
  no_more_ev();
  (void)pop_sent(&SERVER, UDPC_PT_SAVE);
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_ONLINE);
}

/* P4.6 R37: BAD_SESSION to a SAVE -> re-register, then the SAVE is sent
 * again with the new token and a new id. */
static void test_p4_bad_session_resends_request(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("send carol kept"), UDPC_OK);
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  udpc_packet e = pkt(UDPC_PT_ERROR, s.id);
  e.u.error.code = UDPC_ERROR_BAD_SESSION;
  feed(&SERVER, &e);
  udpc_packet r = pop_sent(&SERVER, UDPC_PT_REGISTER);
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, r.id);
  rr.u.reg_result.token = TOKEN;
  feed(&SERVER, &rr);
  udpc_packet s2 = pop_sent(&SERVER, UDPC_PT_SAVE);
  assert_true(s2.id != s.id);
  assert_int_equal(s2.u.save.msg_id, s.u.save.msg_id);
  assert_memory_equal(s2.u.save.text.p, "kept", 4);
  no_more_ev();
}

/* P4.6 R37 / R75: ERROR SESSION_ENDED -> [You are Offline. Bye.]. */
static void test_p4_session_ended_goes_offline(void **state) {
  (void)state;
  online_with_table();
  advance(H.now + UDPC_T_HEARTBEAT);
  udpc_packet hb = pop_sent(&SERVER, UDPC_PT_HEARTBEAT);
  udpc_packet e = pkt(UDPC_PT_ERROR, hb.id + 1); /* wrong id: dropped */
  e.u.error.code = UDPC_ERROR_SESSION_ENDED;
  feed(&SERVER, &e);
  no_more_ev();
  e.id = hb.id;
  feed(&SERVER, &e);
  expect_ev(UDPC_EV_OFFLINE, "[You are Offline. Bye.]");
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_OFFLINE);
}

/* P8.5 R78: PROBE with our token from the server -> PROBE_ACK (echo id). */
static void test_p8_probe_ack(void **state) {
  (void)state;
  online_with_table();
  udpc_packet pr = pkt(UDPC_PT_PROBE, 555);
  feed(&EVIL, &pr);
  no_more_sent();
  feed(&SERVER, &pr);
  udpc_packet a = pop_sent(&SERVER, UDPC_PT_PROBE_ACK);
  assert_int_equal(a.id, 555);
  assert_true(a.token == TOKEN);
  no_more_ev();
}

/* ---- exit ------------------------------------------------------------------- */

/* P8.6 R79: exit while ONLINE -> DEREG, then [Exiting], status 0. */
static void test_p8_exit_while_online(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("exit"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  assert_int_equal(udpc_client_exit_status(H.c), -1);
  assert_int_equal(cmd("send bob ignored"), UDPC_OK); /* ignored */
  no_more_ev();
  no_more_sent();
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, d.id);
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  no_more_ev();
  assert_int_equal(udpc_client_exit_status(H.c), 0);
}

/* P8.6 R79: exit's DEREG unanswered -> server down, [Exiting], status 1. */
static void test_p8_exit_server_down(void **state) {
  (void)state;
  online_with_table();
  uint64_t t0 = H.now;
  assert_int_equal(cmd("exit"), UDPC_OK);
  for (int i = 1; i <= 5; i++) advance(t0 + (uint64_t)i * 500);
  for (int i = 0; i < 5; i++) (void)pop_sent(&SERVER, UDPC_PT_DEREG);
  expect_ev(UDPC_EV_SERVER_DOWN, "[Server not responding]");
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  assert_int_equal(udpc_client_exit_status(H.c), 1);
}

/* P8.6: exit lets an un-ACKed chat reach the server before its DEREG. */
static void test_p8_exit_waits_for_chat(void **state) {
  (void)state;
  online_with_table();
  uint64_t t0 = H.now;
  assert_int_equal(cmd("send bob last words"), UDPC_OK);
  (void)pop_sent(&BOB, UDPC_PT_CHAT);
  assert_int_equal(cmd("exit"), UDPC_OK);
  no_more_sent();
  advance(t0 + 500);
  expect_ev(UDPC_EV_NO_ACK, "[No ACK from bob, message sent to server.]");
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  udpc_packet sr = pkt(UDPC_PT_SAVE_RESULT, s.id);
  feed(&SERVER, &sr);
  expect_ev(UDPC_EV_SAVED, "[Messages received by the server and saved]");
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, d.id);
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  assert_int_equal(udpc_client_exit_status(H.c), 0);
}

/* P8.6 R79: exit while OFFLINE -> [Exiting], status 0 at once. */
static void test_p8_exit_while_offline(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("dereg alice"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  udpc_packet e = pkt(UDPC_PT_ERROR, d.id); /* R37: as DEREG_RESULT OK */
  e.u.error.code = UDPC_ERROR_SESSION_ENDED;
  feed(&SERVER, &e);
  expect_ev(UDPC_EV_OFFLINE, "[You are Offline. Bye.]");
  assert_int_equal(cmd("exit"), UDPC_OK);
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  assert_int_equal(udpc_client_exit_status(H.c), 0);
  no_more_sent();
}

/* P4.4 R33: typed commands may fill 64 queue entries; the 65th is refused. */
static void test_p4_queue_bound(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("send carol 0"), UDPC_OK); /* in flight */
  (void)pop_sent(&SERVER, UDPC_PT_SAVE);
  for (int i = 0; i < UDPC_CLIENT_QUEUE_MAX; i++) {
    assert_int_equal(cmd("send carol q"), UDPC_OK);
  }
  no_more_ev();
  assert_int_equal(cmd("send carol q"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE,
            "[Too many requests waiting for the server; try again shortly.]");
  no_more_sent();
}

/* Robustness: garbage datagrams and NULL arguments never crash. */
static void test_garbage_dropped(void **state) {
  (void)state;
  online_with_table();
  const uint8_t junk[] = {1, 0x70, 0, 0, 0, 1, 9};
  assert_int_equal(udpc_client_recv(H.c, H.now, &BOB, junk, sizeof junk),
                   UDPC_OK);
  assert_int_equal(udpc_client_recv(H.c, H.now, &BOB, NULL, 0), UDPC_OK);
  assert_int_equal(udpc_client_recv(NULL, H.now, &BOB, junk, 1), UDPC_ERR_ARG);
  assert_int_equal(udpc_client_recv(H.c, H.now, NULL, junk, 1), UDPC_ERR_ARG);
  assert_int_equal(udpc_client_command(H.c, H.now, NULL, 3), UDPC_ERR_ARG);
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, 1); /* not registering */
  feed(&SERVER, &rr);
  no_more_ev();
  no_more_sent();
  udpc_client_free(NULL);
  assert_null(udpc_client_new(NULL, 0));
}

/* P4.6 R37: ERROR MALFORMED abandons the request with a notice and the
 * next queued request goes out; VERSION / RATE_LIMITED / INTERNAL are
 * ignored (retransmission continues). */
static void test_p4_error_malformed_abandons(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("deregA bob"), UDPC_OK);
  assert_int_equal(cmd("send carol next"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG_OTHER);
  udpc_packet e = pkt(UDPC_PT_ERROR, d.id);
  e.u.error.code = UDPC_ERROR_RATE_LIMITED;
  feed(&SERVER, &e);
  e.u.error.code = UDPC_ERROR_INTERNAL;
  feed(&SERVER, &e);
  no_more_ev();
  no_more_sent();
  e.u.error.code = UDPC_ERROR_MALFORMED;
  feed(&SERVER, &e);
  expect_ev(UDPC_EV_NOTICE, "[Server refused the request as malformed.]");
  (void)pop_sent(&SERVER, UDPC_PT_SAVE);
  no_more_ev();
  no_more_sent();
}

/* P8.1: DEREG_RESULT STORE_ERROR -> storage error line, stay ONLINE. */
static void test_p8_dereg_store_error_stays_online(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("dereg alice"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, d.id);
  dr.u.dereg_result.status = UDPC_DEREG_STORE_ERROR;
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_NOTICE, "[Server storage error, try again later.]");
  assert_int_equal(udpc_client_state(H.c), UDPC_CS_ONLINE);
  no_more_ev();
}

/* P4.6 R37: BAD_SESSION for exit's DEREG completes it: [Exiting], 0. */
static void test_p4_exit_dereg_bad_session(void **state) {
  (void)state;
  online_with_table();
  assert_int_equal(cmd("exit"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  udpc_packet e = pkt(UDPC_PT_ERROR, d.id);
  e.u.error.code = UDPC_ERROR_BAD_SESSION;
  feed(&SERVER, &e);
  expect_ev(UDPC_EV_EXITING, "[Exiting]");
  no_more_ev();
  no_more_sent();
  assert_int_equal(udpc_client_exit_status(H.c), 0);
}

/* P5.5: a walk interrupted by BAD_SESSION restarts at 0 afterwards. */
static void test_p5_rereg_restarts_walk(void **state) {
  (void)state;
  udpc_entry v[25];
  make_entries(v, 25, 1);
  uint32_t id = do_register(0);
  answer_page(id, 10, 25, 0, v, 20);
  udpc_packet tr = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr.u.table_req.start, 20);
  udpc_packet e = pkt(UDPC_PT_ERROR, tr.id);
  e.u.error.code = UDPC_ERROR_BAD_SESSION;
  feed(&SERVER, &e);
  udpc_packet r = pop_sent(&SERVER, UDPC_PT_REGISTER);
  udpc_packet rr = pkt(UDPC_PT_REGISTER_RESULT, r.id);
  rr.u.reg_result.token = TOKEN;
  feed(&SERVER, &rr);
  udpc_packet tr2 = pop_sent(&SERVER, UDPC_PT_TABLE_REQ);
  assert_int_equal(tr2.u.table_req.start, 0);
  no_more_sent(); /* one walk only (R54) */
  no_more_ev();   /* silent: no Welcome line */
}

/* P8.1: a chat whose ACK wait ends while OFFLINE is not handed to the
 * server. */
static void test_p8_chat_expiring_offline(void **state) {
  (void)state;
  online_with_table();
  uint64_t t0 = H.now;
  assert_int_equal(cmd("send bob bye"), UDPC_OK);
  (void)pop_sent(&BOB, UDPC_PT_CHAT);
  assert_int_equal(cmd("dereg alice"), UDPC_OK);
  udpc_packet d = pop_sent(&SERVER, UDPC_PT_DEREG);
  udpc_packet dr = pkt(UDPC_PT_DEREG_RESULT, d.id);
  feed(&SERVER, &dr);
  expect_ev(UDPC_EV_OFFLINE, "[You are Offline. Bye.]");
  advance(t0 + 500);
  expect_ev(UDPC_EV_NOTICE,
            "[No ACK from bob; you are offline, message not delivered.]");
  no_more_sent();
  no_more_ev();
}

/* P4.5 R35: at most 64 chats wait for their ACK; the 65th is refused. */
static void test_p4_chat_bound(void **state) {
  (void)state;
  online_with_table();
  for (int i = 0; i < UDPC_CLIENT_CHATS_MAX; i++) {
    assert_int_equal(cmd("send bob x"), UDPC_OK);
    (void)pop_sent(&BOB, UDPC_PT_CHAT);
  }
  assert_int_equal(cmd("send bob x"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE,
            "[Too many messages waiting for an ACK; try again shortly.]");
  no_more_sent();
  /* all 64 expire together: 64 NO_ACK lines, SAVEs one at a time */
  advance(H.now + 500);
  for (int i = 0; i < UDPC_CLIENT_CHATS_MAX; i++)
    expect_ev(UDPC_EV_NO_ACK, "[No ACK from bob, message sent to server.]");
  udpc_packet s = pop_sent(&SERVER, UDPC_PT_SAVE);
  no_more_sent();
  udpc_packet sr = pkt(UDPC_PT_SAVE_RESULT, s.id);
  feed(&SERVER, &sr);
  expect_ev(UDPC_EV_SAVED, "[Messages received by the server and saved]");
  (void)pop_sent(&SERVER, UDPC_PT_SAVE);
}

/* help shows the command list or one command's text. */
static void test_help_lines(void **state) {
  (void)state;
  assert_int_equal(cmd("help"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE,
            "[Commands: send <nick> <message>, list, reg <nick>, dereg "
            "<nick>, deregA <nick>, exit, help [command]]");
  assert_int_equal(cmd("help send"), UDPC_OK);
  expect_ev(UDPC_EV_NOTICE, "[send <nick> <message>: send a message to "
                            "<nick>; every space is kept.]");
  no_more_sent();
}

/* Robustness (R20/R81): thousands of well-formed and mutated packets of
 * every type, from the server and from peers, with the right and wrong
 * tokens and ids, interleaved with commands and timers. Nothing crashes
 * (ASan/UBSan builds), and every datagram the client sends decodes and is
 * at most 1200 bytes. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

static void test_random_traffic_robust(void **state) {
  (void)state;
  static const uint8_t types[] = {
      UDPC_PT_COOKIE,        UDPC_PT_REGISTER_RESULT,
      UDPC_PT_TABLE_PAGE,    UDPC_PT_TABLE_DELTA,
      UDPC_PT_HEARTBEAT_ACK, UDPC_PT_DEREG_RESULT,
      UDPC_PT_KICKED,        UDPC_PT_SAVE_RESULT,
      UDPC_PT_MAIL_PAGE,     UDPC_PT_PROBE,
      UDPC_PT_CHAT,          UDPC_PT_CHAT_ACK,
      UDPC_PT_ERROR};
  static const char *const cmds[] = {
      "send bob hi", "send carol x", "send alice me", "send zed y",
      "list",        "dereg alice",  "reg alice",     "deregA bob",
      "help",        "send bob  sp "};
  const udpc_addr *froms[] = {&SERVER, &BOB, &CAROL, &ME, &EVIL};
  const char *nicks[] = {"alice", "bob", "carol", "zed"};
  int restarts = 0;
  memset(ev_count, 0, sizeof ev_count);
  online_with_table();
  for (int round = 0; round < 20000; round++) {
    uint32_t r = rnd();
    if (udpc_client_exit_status(H.c) != -1) {
      /* the client ended (server "down" or a refusal): start a new one */
      restarts++;
      (void)teardown(NULL);
      (void)setup(NULL);
      online_with_table();
    }
    if (r % 16 == 0) {
      (void)cmd(cmds[rnd() % (sizeof cmds / sizeof cmds[0])]);
    } else if (r % 16 == 1) {
      advance(H.now + rnd() % 700);
    } else {
      /* a packet answering something recent (or not) */
      udpc_packet p = pkt(types[rnd() % sizeof types], 0);
      if (H.n_sent > 0 && rnd() % 4 != 0) {
        udpc_packet last;
        sent_t *s =
            &H.sent[H.n_sent - 1 - rnd() % (H.n_sent < 8 ? H.n_sent : 8)];
        if (udpc_wire_decode(&last, s->data, s->len) == UDPC_OK) p.id = last.id;
      } else {
        p.id = rnd();
      }
      if (rnd() % 8 == 0) p.token = rnd();
      switch (p.type) {
        case UDPC_PT_COOKIE: p.u.cookie.cookie_len = 1 + rnd() % 32; break;
        case UDPC_PT_REGISTER_RESULT:
          p.u.reg_result.status = (uint8_t)(rnd() % 5);
          p.u.reg_result.token = TOKEN;
          p.u.reg_result.mail_count = rnd() % 3;
          break;
        case UDPC_PT_TABLE_PAGE: {
          uint8_t n = (uint8_t)(rnd() % 4);
          p.u.table_page.version = rnd() % 8;
          p.u.table_page.start = rnd() % 3;
          p.u.table_page.total = p.u.table_page.start + n + rnd() % 3;
          p.u.table_page.count = n;
          for (uint8_t i = 0; i < n; i++)
            p.u.table_page.entries[i] =
                entry(nicks[rnd() % 4], (int)(rnd() % 2), froms[rnd() % 5]);
          break;
        }
        case UDPC_PT_TABLE_DELTA:
          p.u.table_delta.base_version = rnd() % 8;
          p.u.table_delta.new_version =
              p.u.table_delta.base_version + 1 + rnd() % 2;
          p.u.table_delta.count = 1;
          p.u.table_delta.entries[0] =
              entry(nicks[rnd() % 4], (int)(rnd() % 2), froms[rnd() % 5]);
          if (rnd() % 5 == 0)
            p.u.table_delta.entries[0].status = UDPC_STATUS_REMOVED;
          break;
        case UDPC_PT_HEARTBEAT_ACK:
          p.u.heartbeat_ack.table_version = rnd() % 10;
          break;
        case UDPC_PT_DEREG_RESULT:
          p.u.dereg_result.status = (uint8_t)(rnd() % 4);
          break;
        case UDPC_PT_KICKED: p.u.kicked.by = mknick("root"); break;
        case UDPC_PT_SAVE_RESULT:
          p.u.save_result.status = (uint8_t)(rnd() % 5);
          p.u.save_result.entry = entry("bob", 1, &BOB);
          break;
        case UDPC_PT_MAIL_PAGE: {
          uint8_t n = (uint8_t)(rnd() % 3);
          p.u.mail_page.count = n;
          uint64_t seq = rnd() % 5;
          for (uint8_t i = 0; i < n; i++)
            p.u.mail_page.mail[i] =
                mail(++seq, rnd() % 4, nicks[rnd() % 4], "m", rnd());
          break;
        }
        case UDPC_PT_CHAT:
          p.u.chat.from = mknick(nicks[rnd() % 4]);
          p.u.chat.to = mknick(nicks[rnd() % 4]);
          p.u.chat.text.p = (const uint8_t *)"t";
          p.u.chat.text.len = 1;
          break;
        case UDPC_PT_CHAT_ACK:
          p.u.chat_ack.from = mknick(nicks[rnd() % 4]);
          break;
        case UDPC_PT_ERROR: p.u.error.code = (uint8_t)(1 + rnd() % 6); break;
        default: break;
      }
      uint8_t buf[UDPC_MAX_PACKET];
      int n = udpc_wire_encode(&p, buf, sizeof buf);
      assert_true(n > 0);
      if (rnd() % 6 == 0)
        buf[rnd() % (uint32_t)n] ^= (uint8_t)(1u << (rnd() % 8));
      size_t len = (size_t)n;
      if (rnd() % 10 == 0) len = rnd() % (len + 1);
      assert_int_equal(udpc_client_recv(H.c, H.now, froms[rnd() % 5], buf, len),
                       UDPC_OK);
    }
    while (H.sent_pos < H.n_sent) {
      udpc_packet q;
      sent_t *s = &H.sent[H.sent_pos++];
      assert_true(s->len <= UDPC_MAX_PACKET);
      assert_int_equal(udpc_wire_decode(&q, s->data, s->len), UDPC_OK);
    }
    if (H.n_sent > MAX_SENT - 64) {
      memmove(H.sent, H.sent + H.n_sent - 8, 8 * sizeof H.sent[0]);
      H.n_sent = H.sent_pos = 8;
    }
    if (H.n_ev > MAX_EV - 200) H.n_ev = H.ev_pos = 0;
  }
  assert_true(udpc_client_table_count(H.c) <= 4);
  print_message("random traffic: %d client restarts; events:", restarts);
  for (int t = 1; t <= UDPC_EV_NOTICE; t++) print_message(" %u", ev_count[t]);
  print_message("\n");
}

/* ---- integration: client cores against the real server core ------------ */

#define SIM_Q 4096
#define SIM_LINES 256
#define SIM_T0 1795640934000ULL /* 2026-11-25 21:08:54 UTC */

typedef struct {
  udpc_addr from, to;
  uint8_t data[UDPC_MAX_PACKET];
  size_t len;
} sim_dgram;

typedef struct {
  udpc_client *c;
  udpc_addr addr;
  char lines[SIM_LINES][1400];
  size_t n_lines;
} sim_node;

typedef struct {
  sim_dgram q[SIM_Q];
  size_t head, n;
  udpc_server *srv;
  udpc_store *st;
  int server_down;
  uint64_t now;
  sim_node nodes[3];
  size_t n_nodes;
} sim_t;

static sim_t SIM;
static const char *const SIM_OPS[] = {"alice"};

static void sim_push(const udpc_addr *from, const udpc_addr *to,
                     const uint8_t *data, size_t len) {
  assert_true(len <= UDPC_MAX_PACKET);
  assert_true(SIM.n < SIM_Q);
  sim_dgram *d = &SIM.q[(SIM.head + SIM.n) % SIM_Q];
  d->from = *from;
  d->to = *to;
  memcpy(d->data, data, len);
  d->len = len;
  SIM.n++;
}

static void sim_srv_send(void *ctx, const udpc_addr *to, const uint8_t *data,
                         size_t len) {
  (void)ctx;
  sim_push(&SERVER, to, data, len);
}

static void sim_cli_send(void *ctx, const udpc_addr *to, const uint8_t *data,
                         size_t len) {
  sim_node *node = ctx;
  sim_push(&node->addr, to, data, len);
}

static void sim_event(void *ctx, const udpc_event *ev) {
  sim_node *node = ctx;
  assert_true(node->n_lines < SIM_LINES);
  assert_true(udpc_event_format(ev, node->lines[node->n_lines],
                                sizeof node->lines[0]) >= 0);
  node->n_lines++;
}

static void sim_deliver(void) {
  for (int guard = 0; SIM.n > 0; guard++) {
    assert_true(guard < 100000);
    sim_dgram d = SIM.q[SIM.head];
    SIM.head = (SIM.head + 1) % SIM_Q;
    SIM.n--;
    if (udpc_addr_equal(&d.to, &SERVER)) {
      if (SIM.server_down || SIM.srv == NULL) continue;
      assert_int_equal(
          udpc_server_recv(SIM.srv, SIM.now, &d.from, d.data, d.len), UDPC_OK);
      assert_int_equal(udpc_server_flush(SIM.srv, SIM.now), UDPC_OK);
      continue;
    }
    for (size_t i = 0; i < SIM.n_nodes; i++) {
      sim_node *node = &SIM.nodes[i];
      if (node->c != NULL && udpc_addr_equal(&d.to, &node->addr))
        assert_int_equal(
            udpc_client_recv(node->c, SIM.now, &d.from, d.data, d.len),
            UDPC_OK);
    }
  }
}

/* Deliver everything, firing every timer up to t, in time order. */
static void sim_run_to(uint64_t t) {
  for (;;) {
    sim_deliver();
    uint64_t next = UINT64_MAX;
    if (SIM.srv != NULL && !SIM.server_down) {
      uint64_t d = udpc_server_next_deadline(SIM.srv);
      if (d < next) next = d;
    }
    for (size_t i = 0; i < SIM.n_nodes; i++) {
      if (SIM.nodes[i].c == NULL) continue;
      uint64_t d = udpc_client_next_deadline(SIM.nodes[i].c);
      if (d < next) next = d;
    }
    if (next > t) break;
    if (next > SIM.now) SIM.now = next;
    if (SIM.srv != NULL && !SIM.server_down &&
        udpc_server_next_deadline(SIM.srv) <= SIM.now) {
      udpc_server_handle_expiry(SIM.srv, SIM.now);
      assert_int_equal(udpc_server_flush(SIM.srv, SIM.now), UDPC_OK);
    }
    for (size_t i = 0; i < SIM.n_nodes; i++) {
      sim_node *node = &SIM.nodes[i];
      if (node->c != NULL && udpc_client_next_deadline(node->c) <= SIM.now)
        udpc_client_handle_expiry(node->c, SIM.now);
    }
  }
  SIM.now = t;
}

static sim_node *sim_add(const char *nick, udpc_addr addr, uint8_t seed) {
  sim_node *node = &SIM.nodes[SIM.n_nodes++];
  udpc_client_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.nick = mknick(nick);
  memset(cfg.credential, seed, sizeof cfg.credential);
  cfg.server = SERVER;
  memset(cfg.seed, seed, sizeof cfg.seed);
  cfg.io.ctx = node;
  cfg.io.send = sim_cli_send;
  cfg.event = sim_event;
  node->addr = addr;
  node->c = udpc_client_new(&cfg, SIM.now);
  assert_non_null(node->c);
  assert_int_equal(udpc_client_start(node->c, SIM.now), UDPC_OK);
  sim_run_to(SIM.now + 100);
  return node;
}

static int sim_setup(void **state) {
  (void)state;
  memset(&SIM, 0, sizeof SIM);
  SERVER = addr4(10, 0, 0, 1, 9000);
  ME = addr4(10, 0, 0, 2, 40001);
  BOB = addr4(10, 0, 0, 3, 40002);
  CAROL = addr4(10, 0, 0, 4, 40003);
  SIM.now = SIM_T0;
  SIM.st = udpc_store_mem_new();
  assert_non_null(SIM.st);
  udpc_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  memset(cfg.seed, 0x42, sizeof cfg.seed);
  cfg.store = SIM.st;
  cfg.io.send = sim_srv_send;
  cfg.operators = SIM_OPS;
  cfg.n_operators = 1;
  SIM.srv = udpc_server_new(&cfg, SIM.now);
  assert_non_null(SIM.srv);
  return 0;
}

static int sim_teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < SIM.n_nodes; i++) udpc_client_free(SIM.nodes[i].c);
  udpc_server_free(SIM.srv);
  udpc_store_free(SIM.st);
  return 0;
}

/* The lines node showed since *pos, which must contain want in order. */
static void sim_expect(sim_node *node, size_t *pos, const char *const *want,
                       size_t n_want) {
  size_t k = 0;
  for (size_t i = *pos; i < node->n_lines && k < n_want; i++)
    if (strcmp(node->lines[i], want[k]) == 0) k++;
  if (k < n_want) {
    for (size_t i = *pos; i < node->n_lines; i++)
      print_message("  shown: %s\n", node->lines[i]);
    fail_msg("missing line: %s", want[k]);
  }
  *pos = node->n_lines;
}

#define SIM_EXPECT(node, pos, ...)                       \
  do {                                                   \
    const char *const w_[] = {__VA_ARGS__};              \
    sim_expect(node, pos, w_, sizeof w_ / sizeof w_[0]); \
  } while (0)

static void sim_cmd(sim_node *node, const char *line) {
  (void)udpc_client_command(node->c, SIM.now, line, strlen(line));
  sim_deliver();
}

/* Assignment scenario 1 (behaviour.md): x, y, z chat; dereg x; y and z
 * send to x (stored); reg x delivers both, in order; everyone exits 0. */
static void test_sim_scenario_offline_mail(void **state) {
  (void)state;
  size_t px = 0, py = 0, pz = 0;
  sim_node *x = sim_add("alice", ME, 1);
  sim_node *y = sim_add("bob", BOB, 2);
  sim_node *z = sim_add("carol", CAROL, 3);
  SIM_EXPECT(x, &px, "[Welcome, You are registered.]",
             "[Client table updated.]");
  SIM_EXPECT(y, &py, "[Welcome, You are registered.]",
             "[Client table updated.]");
  SIM_EXPECT(z, &pz, "[Welcome, You are registered.]",
             "[Client table updated.]");
  assert_int_equal(udpc_client_table_count(x->c), 3);

  sim_cmd(x, "send bob hi  bob");
  sim_cmd(y, "send carol hey carol");
  sim_cmd(z, "send alice yo alice");
  SIM_EXPECT(x, &px, "[Message received by bob.]", "carol: yo alice");
  SIM_EXPECT(y, &py, "alice: hi  bob", "[Message received by carol.]");
  SIM_EXPECT(z, &pz, "bob: hey carol", "[Message received by alice.]");

  sim_cmd(x, "dereg alice");
  SIM_EXPECT(x, &px, "[You are Offline. Bye.]");
  sim_run_to(SIM.now + 1000); /* the delta comes after the 50 ms window */
  SIM_EXPECT(y, &py, "[Client table updated.]");
  sim_cmd(y, "send alice from bob");
  sim_run_to(SIM.now + 1000);
  sim_cmd(z, "send alice from carol");
  sim_run_to(SIM.now + 1000);
  SIM_EXPECT(y, &py, "[Messages received by the server and saved]");
  SIM_EXPECT(z, &pz, "[Messages received by the server and saved]");

  sim_cmd(x, "reg alice");
  sim_run_to(SIM.now + 1000);
  SIM_EXPECT(x, &px, "[Welcome, You are registered.]", "[You have messages]",
             "bob: 2026-11-25 21:08:55 from bob",
             "carol: 2026-11-25 21:08:56 from carol");
  SIM_EXPECT(y, &py, "[Client table updated.]");

  sim_cmd(x, "exit");
  sim_cmd(y, "exit");
  sim_cmd(z, "exit");
  sim_run_to(SIM.now + 100);
  SIM_EXPECT(x, &px, "[Exiting]");
  assert_int_equal(udpc_client_exit_status(x->c), 0);
  assert_int_equal(udpc_client_exit_status(y->c), 0);
  assert_int_equal(udpc_client_exit_status(z->c), 0);
}

/* Assignment scenario 2: dereg y; the server stops; x sends to y: 5 sends,
 * [Server not responding], [Exiting], status 1; peer chat still works. */
static void test_sim_scenario_server_down(void **state) {
  (void)state;
  size_t px = 0, pz = 0;
  sim_node *x = sim_add("alice", ME, 1);
  sim_node *y = sim_add("bob", BOB, 2);
  sim_node *z = sim_add("carol", CAROL, 3);
  sim_cmd(y, "dereg bob");
  sim_run_to(SIM.now + 100);
  SIM.server_down = 1;
  sim_cmd(x, "send carol still here");
  SIM_EXPECT(x, &px, "[Message received by carol.]");
  SIM_EXPECT(z, &pz, "alice: still here");
  uint64_t t0 = SIM.now;
  sim_cmd(x, "send bob are you there");
  sim_run_to(t0 + 2499);
  assert_int_equal(udpc_client_exit_status(x->c), -1);
  sim_run_to(t0 + 2500);
  SIM_EXPECT(x, &px, "[Server not responding]", "[Exiting]");
  assert_int_equal(udpc_client_exit_status(x->c), 1);
}

/* P7.2: a peer that vanished without dereg: CHAT unanswered -> NO_ACK ->
 * SAVE; the server probes, marks it offline, stores: SAVED. */
static void test_sim_vanished_peer(void **state) {
  (void)state;
  size_t px = 0;
  sim_node *x = sim_add("alice", ME, 1);
  sim_node *y = sim_add("bob", BOB, 2);
  udpc_client_free(y->c); /* crash: no dereg */
  y->c = NULL;
  sim_cmd(x, "send bob anyone?");
  sim_run_to(SIM.now + 3000);
  SIM_EXPECT(x, &px, "[No ACK from bob, message sent to server.]",
             "[Messages received by the server and saved]",
             "[Client table updated.]");
  udpc_entry e;
  assert_int_equal(udpc_client_table_get(x->c, 1, &e), UDPC_OK);
  assert_int_equal(e.status, UDPC_STATUS_OFFLINE);
  assert_int_equal(udpc_client_exit_status(x->c), -1);
}

/* P8.4: heartbeats keep a quiet client online for a long time. */
static void test_sim_heartbeats_keep_online(void **state) {
  (void)state;
  sim_node *x = sim_add("alice", ME, 1);
  sim_node *y = sim_add("bob", BOB, 2);
  sim_run_to(SIM.now + 120000);
  assert_int_equal(udpc_client_state(x->c), UDPC_CS_ONLINE);
  assert_int_equal(udpc_client_state(y->c), UDPC_CS_ONLINE);
  udpc_entry e;
  assert_int_equal(udpc_client_table_get(x->c, 1, &e), UDPC_OK);
  assert_int_equal(e.status, UDPC_STATUS_ONLINE);
}

/* P5.5 / P8.3: the server restarts (same store, new run): the next
 * heartbeat gets BAD_SESSION, the client re-registers silently and takes a
 * fresh snapshot; chat works again. */
static void test_sim_server_restart_silent_rereg(void **state) {
  (void)state;
  size_t px = 0, py = 0;
  sim_node *x = sim_add("alice", ME, 1);
  sim_node *y = sim_add("bob", BOB, 2);
  SIM_EXPECT(x, &px, "[Welcome, You are registered.]");
  SIM_EXPECT(y, &py, "[Welcome, You are registered.]");
  udpc_server_free(SIM.srv);
  udpc_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  memset(cfg.seed, 0x43, sizeof cfg.seed);
  cfg.store = SIM.st;
  cfg.io.send = sim_srv_send;
  SIM.srv = udpc_server_new(&cfg, SIM.now);
  assert_non_null(SIM.srv);
  sim_run_to(SIM.now + 25000);
  assert_int_equal(udpc_client_state(x->c), UDPC_CS_ONLINE);
  assert_int_equal(udpc_client_state(y->c), UDPC_CS_ONLINE);
  for (size_t i = px; i < x->n_lines; i++)
    assert_string_not_equal(x->lines[i], "[Welcome, You are registered.]");
  udpc_entry e;
  assert_int_equal(udpc_client_table_get(x->c, 1, &e), UDPC_OK);
  assert_int_equal(e.status, UDPC_STATUS_ONLINE);
  px = x->n_lines;
  sim_cmd(x, "send bob back again");
  SIM_EXPECT(x, &px, "[Message received by bob.]");
  SIM_EXPECT(y, &py, "alice: back again");
}

/* Sending to yourself works end to end; deregA by an operator kicks the
 * target (P8.2), a non-operator is refused. */
static void test_sim_self_send_and_deregA(void **state) {
  (void)state;
  size_t px = 0, py = 0;
  sim_node *x = sim_add("alice", ME, 1);
  sim_node *y = sim_add("bob", BOB, 2);
  sim_cmd(x, "send alice  me, myself ");
  SIM_EXPECT(x, &px, "alice:  me, myself ", "[Message received by alice.]");
  sim_cmd(y, "deregA alice");
  SIM_EXPECT(y, &py, "[Permission denied: only operators may deregA.]");
  sim_cmd(x, "deregA bob");
  SIM_EXPECT(x, &px, "[bob is now offline.]");
  SIM_EXPECT(y, &py, "[You were deregistered by alice.]",
             "[You are Offline. Bye.]");
  assert_int_equal(udpc_client_state(y->c), UDPC_CS_OFFLINE);
  sim_cmd(x, "send bob are you there");
  sim_run_to(SIM.now + 1000);
  SIM_EXPECT(x, &px, "[Messages received by the server and saved]");
  sim_cmd(y, "reg bob");
  sim_run_to(SIM.now + 1000);
  SIM_EXPECT(y, &py, "[Welcome, You are registered.]", "[You have messages]",
             "alice: 2026-11-25 21:08:54 are you there");
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
      T(test_p5_register_with_cookie),
      T(test_p4_register_retries_then_exit),
      T(test_p4_cookie_gives_fresh_sends),
      T(test_p4_cookie_rounds_bounded),
      T(test_p5_startup_nick_taken_exits),
      T(test_p8_commands_while_registering),
      T(test_p4_chat_delivered),
      T(test_p4_no_ack_then_save),
      T(test_p4_save_unanswered_exits),
      T(test_p4_dereg_unanswered_exits),
      T(test_p4_deregA_unanswered_continues),
      T(test_p4_duplicate_chat_shown_once),
      T(test_p9_forged_chat_dropped),
      T(test_p4_forged_chat_ack_dropped),
      T(test_p4_send_to_self),
      T(test_p7_send_offline_or_unknown_saves),
      T(test_p7_exists_triggers_table_req),
      T(test_p6_delta_applied_and_old_ignored),
      T(test_p9_forged_delta_dropped),
      T(test_p6_delta_gap_requests_snapshot),
      T(test_p6_stale_walk_walks_again),
      T(test_r53_walk_survives_version_change),
      T(test_r53_walk_waits_for_deltas_after_last_page),
      T(test_r53_page_entry_older_than_delta_kept),
      T(test_r53_delta_gap_restarts_walk),
      T(test_r53_no_delta_within_500ms_restarts),
      T(test_r53_shifted_duplicate_appears_once),
      T(test_r53_failed_walk_forgets_version),
      T(test_r53_failed_walk_heartbeat_starts_walk),
      T(test_r54_heartbeat_during_walk_satisfied_by_it),
      T(test_r57_delta_base_below_version_applies),
      T(test_r57_delta_entries_in_order),
      T(test_r53_join_storm_converges),
      T(test_p6_heartbeat_version_check),
      T(test_p6_list),
      T(test_p7_mail_two_pages),
      T(test_p4_mail_dedupe_with_chat),
      T(test_p8_dereg_then_reg),
      T(test_p5_reg_refused_stays_offline),
      T(test_p8_deregA),
      T(test_p8_kicked),
      T(test_p4_bad_session_reregisters_silently),
      T(test_p4_bad_session_resends_request),
      T(test_p4_session_ended_goes_offline),
      T(test_p8_probe_ack),
      T(test_p8_exit_while_online),
      T(test_p8_exit_server_down),
      T(test_p8_exit_waits_for_chat),
      T(test_p8_exit_while_offline),
      T(test_p4_queue_bound),
      T(test_garbage_dropped),
      T(test_p4_error_malformed_abandons),
      T(test_p8_dereg_store_error_stays_online),
      T(test_p4_exit_dereg_bad_session),
      T(test_p5_rereg_restarts_walk),
      T(test_p8_chat_expiring_offline),
      T(test_p4_chat_bound),
      T(test_help_lines),
      T(test_random_traffic_robust),
#undef T
#define S(f) cmocka_unit_test_setup_teardown(f, sim_setup, sim_teardown)
      S(test_sim_scenario_offline_mail),
      S(test_sim_scenario_server_down),
      S(test_sim_vanished_peer),
      S(test_sim_heartbeats_keep_online),
      S(test_sim_server_restart_silent_rereg),
      S(test_sim_self_send_and_deregA),
#undef S
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
