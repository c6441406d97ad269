/*
 * test_server.c - the server core (design.md P1-P9), driven with packets
 * built by udpc_wire_encode from fake addresses. Every datagram the server
 * sends is checked in the capturing io.send: it must decode with
 * udpc_wire_decode and be at most 1200 bytes.
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

/* A new server on f's store (f->cfg updated), for restarts. */
static udpc_server *mk_server(fx *f, uint32_t max_clients, uint32_t per,
                              uint32_t total) {
  f->cfg.max_clients = max_clients;
  f->cfg.mail_per_recipient = per;
  f->cfg.mail_total = total;
  return udpc_tsrv_server(f);
}

static fx *fx_new_cfg(uint32_t max_clients, uint32_t per, uint32_t total) {
  udpc_tsrv_cfg cfg = {.seed_mul = 7,
                       .seed_add = 1,
                       .max_clients = max_clients,
                       .mail_per_recipient = per,
                       .mail_total = total};
  return udpc_tsrv_new(&cfg);
}

static int setup(void **state) {
  *state = fx_new_cfg(0, 0, 0);
  return 0;
}

static udpc_addr A(unsigned n) { return udpc_tsrv_addr(n); }

static void advance(fx *f, uint64_t ms) { udpc_tsrv_advance(f, ms); }

/* ---- Registration and cookies (P5) ---------------------------------- */

/* R13: a COOKIE to an unvalidated address is one datagram, smaller than the
 * REGISTER. */
static void test_register_without_cookie_gets_only_smaller_cookie_no_state(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  udpc_packet r = reg_pkt("alice", 1, 7, NULL, 0);
  size_t req_len = feed(f, &a, &r);
  udpc_packet c = only_out(f, &a);
  assert_int_equal(c.type, UDPC_PT_COOKIE);
  assert_int_equal(c.id, 7);
  assert_true(f->out[0].len < req_len);
  clear(f);
  flush_ok(f);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(stats(f).registered, 0);
  assert_int_equal(stats(f).online, 0);
  udpc_store_user u;
  udpc_nick n = nk("alice");
  assert_int_equal(udpc_store_user_get(f->st, &n, &u), UDPC_ERR_NOT_FOUND);
  assert_int_equal(udpc_store_mem_commit_count(f->st), 0);
}

/* R42 R13: a cookie is valid only for its address and nick; the answer is
 * one smaller COOKIE. */
static void test_register_forged_cookie_gets_fresh_cookie_no_state(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  udpc_packet c = get_cookie(f, &a, "alice", 1);
  c.u.cookie.cookie[10] ^= 1; /* forge the tag */
  udpc_packet r = reg_pkt("alice", 1, 8, c.u.cookie.cookie, 20);
  size_t len = feed(f, &a, &r);
  udpc_packet o = only_out(f, &a);
  assert_int_equal(o.type, UDPC_PT_COOKIE);
  assert_true(f->out[0].len < len);
  /* A valid cookie for another address or nick is no good either. */
  clear(f);
  c = get_cookie(f, &a, "alice", 1);
  udpc_addr b = A(2);
  r = reg_pkt("alice", 1, 9, c.u.cookie.cookie, c.u.cookie.cookie_len);
  feed(f, &b, &r);
  assert_int_equal(only_out(f, &b).type, UDPC_PT_COOKIE);
  clear(f);
  r = reg_pkt("alicf", 1, 9, c.u.cookie.cookie, c.u.cookie.cookie_len);
  feed(f, &a, &r);
  assert_int_equal(only_out(f, &a).type, UDPC_PT_COOKIE);
  clear(f);
  flush_ok(f);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(stats(f).registered, 0);
}

/* R42: a cookie is accepted in its own and the next bucket only. */
static void test_register_cookie_valid_two_buckets_then_expired(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  f->now = T0 - T0 % UDPC_T_COOKIE_BUCKET; /* start of a bucket */
  udpc_packet c = get_cookie(f, &a, "alice", 1);
  /* Next bucket: previous bucket's cookie still accepted. */
  f->now += UDPC_T_COOKIE_BUCKET + 10;
  udpc_packet r = reg_pkt("alice", 1, 9, c.u.cookie.cookie, 20);
  feed(f, &a, &r);
  assert_int_equal(f->n_out, 0); /* held until flush */
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_REGISTER_RESULT, &a), 1);
  /* Two buckets later: expired -> fresh COOKIE. */
  clear(f);
  udpc_addr b = A(2);
  c = get_cookie(f, &b, "bob", 2);
  f->now += 2 * UDPC_T_COOKIE_BUCKET;
  r = reg_pkt("bob", 2, 10, c.u.cookie.cookie, 20);
  feed(f, &b, &r);
  assert_int_equal(only_out(f, &b).type, UDPC_PT_COOKIE);
  assert_int_equal(stats(f).registered, 1);
}

/* R50 R51 R55 R22: REGISTER_RESULT OK after commit, version 1 -> 2, delta to
 * the subject too, id echoed. */
static void test_register_ok_welcome_held_until_commit(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  udpc_packet c = get_cookie(f, &a, "alice", 1);
  udpc_packet r = reg_pkt("alice", 1, 42, c.u.cookie.cookie, 20);
  feed(f, &a, &r);
  assert_int_equal(f->n_out, 0); /* acknowledged means committed */
  flush_ok(f);
  assert_int_equal(udpc_store_mem_commit_count(f->st), 1);
  udpc_packet p = out_at(f, 0);
  assert_int_equal(p.type, UDPC_PT_REGISTER_RESULT);
  assert_int_equal(p.id, 42);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_OK);
  assert_true(p.u.reg_result.token != 0);
  assert_int_equal(p.u.reg_result.table_version, 2); /* 1 + the new entry */
  assert_int_equal(p.u.reg_result.mail_count, 0);
  /* The delta waits for the end of the coalescing window (R55)... */
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0);
  /* ...then the subject, online, gets it too. */
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &a), 1);
  /* Persisted: only a keyed hash of the credential. */
  udpc_store_user u;
  udpc_nick n = nk("alice");
  assert_int_equal(udpc_store_user_get(f->st, &n, &u), UDPC_OK);
  uint8_t raw[UDPC_CRED_LEN];
  memset(raw, 1, sizeof raw);
  assert_memory_not_equal(u.cred_hash, raw, sizeof raw);
  assert_true(udpc_addr_equal(&u.addr, &a));
  assert_int_equal(stats(f).registered, 1);
  assert_int_equal(stats(f).online, 1);
}

/* R43: another credential gets NICK_TAKEN and the owner's session is
 * untouched. */
static void test_register_duplicate_nick_other_credential_nick_taken(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t t = reg(f, &a, "alice", 1);
  udpc_packet p = reg_result(f, &b, "alice", 2);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_NICK_TAKEN);
  assert_int_equal(p.u.reg_result.token, 0);
  /* The owner's session is untouched. */
  clear(f);
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 5, t);
  feed(f, &a, &hb);
  assert_int_equal(only_out(f, &a).type, UDPC_PT_HEARTBEAT_ACK);
}

/* P5.3 take-over, R45/R72: the replaced session's token gets SESSION_ENDED
 * (not BAD_SESSION, which would make it silently re-register). */
static void test_register_same_credential_new_address_takes_over_old_ended(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2), evil = A(3);
  uint64_t t1 = reg(f, &a, "alice", 1);
  clear(f);
  udpc_packet rr = reg_result(f, &b, "alice", 1);
  uint64_t t2 = rr.u.reg_result.token;
  assert_true(t1 != t2 && t2 != 0);
  assert_int_equal(rr.u.reg_result.table_version, 3); /* address changed */
  clear(f);
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 5, t1);
  feed(f, &a, &hb);
  udpc_packet e = only_out(f, &a);
  assert_int_equal(e.type, UDPC_PT_ERROR);
  assert_int_equal(e.u.error.code, UDPC_ERROR_SESSION_ENDED);
  clear(f);
  feed(f, &evil, &hb); /* ended token from another address: dropped */
  assert_int_equal(f->n_out, 0);
  hb.token = t1;
  hb.type = UDPC_PT_DEREG; /* its DEREG completes harmlessly */
  feed(f, &a, &hb);
  flush_ok(f);
  assert_int_equal(only_out(f, &a).type, UDPC_PT_DEREG_RESULT);
  assert_int_equal(stats(f).online, 1);
  hb.type = UDPC_PT_HEARTBEAT;
  clear(f);
  hb.token = t2;
  feed(f, &b, &hb);
  assert_int_equal(only_out(f, &b).type, UDPC_PT_HEARTBEAT_ACK);
  assert_int_equal(stats(f).registered, 1);
}

/* R44: the live session's REGISTER gets the same token and no table change
 * (no delta). */
static void test_register_retransmit_same_address_keeps_token(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t t1 = reg(f, &a, "alice", 1);
  udpc_packet p = reg_result(f, &a, "alice", 1);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_OK);
  assert_true(p.u.reg_result.token == t1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0); /* no change */
}

/* R10 R13: the only answer to a bad nick is REGISTER_RESULT INVALID_NICK,
 * not larger than the request. */
static void test_register_invalid_nick_answer_not_larger_than_request(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  udpc_packet r = reg_pkt("Alice", 1, 3, NULL, 0); /* uppercase on wire */
  uint8_t buf[UDPC_MAX_PACKET];
  int n = udpc_wire_encode_raw(&r, buf, sizeof buf);
  assert_true(n > 0);
  assert_int_equal(udpc_server_recv(f->s, f->now, &a, buf, (size_t)n), UDPC_OK);
  udpc_packet o = only_out(f, &a);
  assert_int_equal(o.type, UDPC_PT_REGISTER_RESULT);
  assert_int_equal(o.u.reg_result.status, UDPC_REG_INVALID_NICK);
  assert_true(f->out[0].len <= (size_t)n);
  assert_int_equal(stats(f).registered, 0);
  assert_int_equal(stats(f).dropped_malformed, 1);
}

static void test_register_server_full(void **state) {
  fx *f = *state;
  udpc_server_free(f->s);
  f->s = mk_server(f, 2, 0, 0);
  udpc_addr a = A(1), b = A(2), c = A(3);
  reg(f, &a, "a", 1);
  reg(f, &b, "b", 2);
  udpc_packet p = reg_result(f, &c, "c", 3);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_SERVER_FULL);
  /* A known nick may still come back. */
  reg(f, &c, "a", 1);
  assert_int_equal(stats(f).registered, 2);
}

static void test_restart_loads_users_offline_old_tokens_bad_session(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t t = reg(f, &a, "alice", 1);
  udpc_server_free(f->s);
  f->s = mk_server(f, 0, 0, 0);
  assert_int_equal(stats(f).registered, 1);
  assert_int_equal(stats(f).online, 0);
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 5, t);
  feed(f, &a, &hb);
  udpc_packet e = only_out(f, &a);
  assert_int_equal(e.u.error.code, UDPC_ERROR_BAD_SESSION);
  /* Credential still recognised; another credential is not. */
  udpc_packet p = reg_result(f, &a, "alice", 9);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_NICK_TAKEN);
  reg(f, &a, "alice", 1);
}

/* A restart with a smaller max_clients than the store holds loads every
 * registration (the record array grows past the limit from a capacity of
 * 1) and refuses new nicks. */
static void test_restart_with_fewer_max_clients_loads_all(void **state) {
  fx *f = *state;
  for (unsigned i = 0; i < 5; i++) {
    udpc_addr a = A(i + 1);
    char name[4] = "u0";
    name[1] = (char)('0' + i);
    reg(f, &a, name, 1);
  }
  udpc_server_free(f->s);
  f->s = mk_server(f, 1, 0, 0);
  assert_int_equal(stats(f).registered, 5);
  udpc_addr a = A(1), b = A(9);
  reg(f, &a, "u0", 1);
  udpc_packet p = reg_result(f, &b, "new", 1);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_SERVER_FULL);
}

/* ---- Table (P6) --------------------------------------------------------- */

/* R52 R51 R22: TABLE_PAGE = current version (1 + 45 changes), total, sorted
 * entries, as many as fit: 45 entries of 15 bytes (31 + 45 * 15 = 706) all
 * fit in the first page. */
static void test_r52_table_paging_45_clients_sorted_packed(void **state) {
  fx *f = *state;
  uint64_t tok[45];
  for (unsigned i = 0; i < 45; i++) {
    char name[8] = "c00";
    unsigned k = (i * 17) % 45; /* register out of order */
    name[1] = (char)('0' + k / 10);
    name[2] = (char)('0' + k % 10);
    udpc_addr a = A(i + 1);
    tok[i] = reg(f, &a, name, (uint8_t)i);
  }
  udpc_addr a = A(1);
  uint32_t starts[] = {0, 45, 99, 40};
  uint32_t counts[] = {45, 0, 0, 5};
  uint32_t seen = 0;
  for (int pg = 0; pg < 4; pg++) {
    if (starts[pg] == 40) seen = 40;
    clear(f);
    udpc_packet q = pkt(UDPC_PT_TABLE_REQ, 77, tok[0]);
    q.u.table_req.start = starts[pg];
    feed(f, &a, &q);
    udpc_packet p = only_out(f, &a);
    assert_int_equal(p.type, UDPC_PT_TABLE_PAGE);
    assert_int_equal(p.id, 77);
    assert_int_equal(p.token, tok[0]);
    assert_int_equal(p.u.table_page.total, 45);
    assert_int_equal(p.u.table_page.version, 46);
    assert_int_equal(p.u.table_page.count, counts[pg]);
    assert_int_equal(p.u.table_page.start, starts[pg] > 45 ? 45 : starts[pg]);
    for (unsigned i = 0; i < p.u.table_page.count; i++, seen++) {
      char want[8] = "c00";
      want[1] = (char)('0' + seen / 10);
      want[2] = (char)('0' + seen % 10);
      assert_string_equal(p.u.table_page.entries[i].nick.s, want);
      assert_int_equal(p.u.table_page.entries[i].status, UDPC_STATUS_ONLINE);
    }
  }
  assert_int_equal(seen, 45);
}

/* R55 R56: the delta goes to every online client, the subject included,
 * never to an offline one. */
static void test_delta_sent_only_to_online_clients(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2), c = A(3);
  reg(f, &a, "a", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  udpc_packet d = pkt(UDPC_PT_DEREG, 50, tb);
  feed(f, &b, &d);
  flush_ok(f);
  close_window(f);
  clear(f);
  reg_result(f, &c, "c", 3); /* a change while b is offline */
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &a), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &c), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &b), 0);
  for (size_t i = 0; i < f->n_out; i++) {
    udpc_packet p = out_at(f, i);
    if (p.type != UDPC_PT_TABLE_DELTA) continue;
    assert_int_equal(p.u.table_delta.count, 1);
    assert_string_equal(p.u.table_delta.entries[0].nick.s, "c");
    assert_int_equal(p.u.table_delta.new_version,
                     p.u.table_delta.base_version + 1);
  }
}

/* R74 R22 R58: HEARTBEAT -> HEARTBEAT_ACK(published version), id echoed:
 * while the window holds a change the ACK still reports the version of the
 * last emitted delta; after the emission, the current version. */
static void test_r58_heartbeat_ack_carries_published_version(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t t = reg(f, &a, "a", 1); /* version 2, not emitted yet */
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 31, t);
  feed(f, &a, &hb);
  udpc_packet p = only_out(f, &a);
  assert_int_equal(p.type, UDPC_PT_HEARTBEAT_ACK);
  assert_int_equal(p.id, 31);
  assert_int_equal(p.token, t);
  assert_int_equal(p.u.heartbeat_ack.table_version, 1);
  close_window(f);
  clear(f);
  feed(f, &a, &hb);
  assert_int_equal(only_out(f, &a).u.heartbeat_ack.table_version, 2);
  /* A new change: REGISTER_RESULT says 3 (live), the ACK still 2. */
  udpc_packet r = reg_result(f, &b, "b", 2);
  assert_int_equal(r.u.reg_result.table_version, 3);
  clear(f);
  feed(f, &a, &hb);
  assert_int_equal(only_out(f, &a).u.heartbeat_ack.table_version, 2);
  clear(f);
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &a), 1);
  clear(f);
  feed(f, &a, &hb);
  assert_int_equal(only_out(f, &a).u.heartbeat_ack.table_version, 3);
}

static void test_heartbeat_timeout_marks_offline_with_delta(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  /* The window's end comes first, then the session timeout. */
  assert_int_equal(udpc_server_next_deadline(f->s),
                   f->now + UDPC_T_DELTA_WINDOW);
  close_window(f);
  clear(f);
  assert_int_equal(udpc_server_next_deadline(f->s),
                   f->now - UDPC_T_DELTA_WINDOW + 30000);
  f->now -= UDPC_T_DELTA_WINDOW; /* keep the 10 s heartbeat steps below */
  /* a keeps sending heartbeats, b is silent. */
  for (int i = 0; i < 3; i++) {
    advance(f, 10000);
    udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, (uint32_t)i, ta);
    feed(f, &a, &hb);
  }
  flush_ok(f);
  assert_int_equal(stats(f).online, 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0);
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &a), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &b), 0);
  for (size_t i = 0; i < f->n_out; i++) {
    udpc_packet p = out_at(f, i);
    if (p.type == UDPC_PT_TABLE_DELTA) {
      assert_string_equal(p.u.table_delta.entries[0].nick.s, "b");
      assert_int_equal(p.u.table_delta.entries[0].status, UDPC_STATUS_OFFLINE);
    }
  }
  clear(f);
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 9, tb);
  feed(f, &b, &hb);
  assert_int_equal(only_out(f, &b).u.error.code, UDPC_ERROR_SESSION_ENDED);
  assert_int_equal(udpc_server_next_deadline(f->s),
                   f->now + 30000 - UDPC_T_DELTA_WINDOW);
}

/* ---- Dereg and deregA (P8) ---------------------------------------------- */

/* R67 R50: DEREG -> offline, commit, delta to the others, then DEREG_RESULT
 * OK. */
static void test_dereg_ok_then_ended_token_session_ended(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  reg(f, &b, "b", 2);
  close_window(f);
  clear(f);
  udpc_packet d = pkt(UDPC_PT_DEREG, 60, ta);
  feed(f, &a, &d);
  assert_int_equal(f->n_out, 0);
  flush_ok(f);
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_DEREG_RESULT, &a), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &b), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &a), 0);
  assert_int_equal(out_at(f, 0).u.dereg_result.status, UDPC_DEREG_OK);
  assert_int_equal(stats(f).online, 1);
  /* A retransmitted DEREG with the ended token: OK again. */
  clear(f);
  feed(f, &a, &d);
  flush_ok(f);
  assert_int_equal(only_out(f, &a).type, UDPC_PT_DEREG_RESULT);
  /* Anything else with the ended token: SESSION_ENDED. */
  clear(f);
  udpc_packet q = pkt(UDPC_PT_TABLE_REQ, 61, ta);
  feed(f, &a, &q);
  udpc_packet e = only_out(f, &a);
  assert_int_equal(e.type, UDPC_PT_ERROR);
  assert_int_equal(e.id, 61);
  assert_int_equal(e.u.error.code, UDPC_ERROR_SESSION_ENDED);
  /* R72: still SESSION_ENDED while the nick's next session is live... */
  uint64_t ta2 = reg(f, &a, "a", 1);
  feed(f, &a, &q);
  assert_int_equal(only_out(f, &a).u.error.code, UDPC_ERROR_SESSION_ENDED);
  /* ...until another session of the nick ends: then it is unknown. */
  clear(f);
  d.token = ta2;
  feed(f, &a, &d);
  flush_ok(f);
  clear(f);
  feed(f, &a, &q);
  assert_int_equal(only_out(f, &a).u.error.code, UDPC_ERROR_BAD_SESSION);
  clear(f);
  q.token = ta2;
  feed(f, &a, &q);
  assert_int_equal(only_out(f, &a).u.error.code, UDPC_ERROR_SESSION_ENDED);
}

/* R70: a non-operator's DEREG_OTHER gets NOT_PERMITTED and changes nothing. */
static void test_deregA_by_non_operator_not_permitted(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  reg(f, &b, "b", 2);
  udpc_packet d = pkt(UDPC_PT_DEREG_OTHER, 70, ta);
  d.u.dereg_other.target = nk("b");
  feed(f, &a, &d);
  udpc_packet p = only_out(f, &a);
  assert_int_equal(p.type, UDPC_PT_DEREG_RESULT);
  assert_int_equal(p.u.dereg_result.status, UDPC_DEREG_NOT_PERMITTED);
  assert_int_equal(stats(f).online, 2);
}

/* R70: unknown target -> UNKNOWN_NICK; online target -> session ended,
 * delta, KICKED, OK. */
static void test_deregA_by_operator_kicks_target(void **state) {
  fx *f = *state;
  udpc_addr o = A(1), b = A(2);
  uint64_t to = reg(f, &o, "op", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  udpc_packet d = pkt(UDPC_PT_DEREG_OTHER, 71, to);
  d.u.dereg_other.target = nk("zed");
  feed(f, &o, &d);
  assert_int_equal(only_out(f, &o).u.dereg_result.status,
                   UDPC_DEREG_UNKNOWN_NICK);
  clear(f);
  d.u.dereg_other.target = nk("b");
  feed(f, &o, &d);
  assert_int_equal(f->n_out, 0);
  flush_ok(f);
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_KICKED, &b), 1);
  assert_int_equal(count_out(f, UDPC_PT_DEREG_RESULT, &o), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &o), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &b), 0);
  for (size_t i = 0; i < f->n_out; i++) {
    udpc_packet p = out_at(f, i);
    if (p.type == UDPC_PT_KICKED) {
      assert_string_equal(p.u.kicked.by.s, "op");
      assert_int_equal(p.token, tb);
    }
    if (p.type == UDPC_PT_DEREG_RESULT)
      assert_int_equal(p.u.dereg_result.status, UDPC_DEREG_OK);
  }
  assert_int_equal(stats(f).online, 1);
  clear(f);
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 1, tb);
  feed(f, &b, &hb);
  assert_int_equal(only_out(f, &b).u.error.code, UDPC_ERROR_SESSION_ENDED);
}

/* ---- SAVE and probes (P7) ------------------------------------------------- */

static void test_save_to_offline_saved_once_when_sent_five_times(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  udpc_packet d = pkt(UDPC_PT_DEREG, 1, tb);
  feed(f, &b, &d);
  flush_ok(f);
  clear(f);
  udpc_packet sv = save_pkt(ta, 90, "b", 1234, "hello b");
  for (int i = 0; i < 5; i++) {
    feed(f, &a, &sv);
    if (i == 2) {
      flush_ok(f); /* some retransmissions in a later batch */
    }
  }
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_SAVE_RESULT, &a), 5);
  for (size_t i = 0; i < f->n_out; i++) {
    udpc_packet p = out_at(f, i);
    assert_int_equal(p.type, UDPC_PT_SAVE_RESULT);
    assert_int_equal(p.id, 90);
    assert_int_equal(p.u.save_result.status, UDPC_SAVE_SAVED);
  }
  assert_int_equal(mail_count(f, "b"), 1);
  assert_int_equal(stats(f).mail_stored, 1);
  assert_int_equal(stats(f).probes_sent, 0);
}

/* A reused msg_id with another text (a client restarted with the same id
 * counter) is a new message, not a retransmission. */
/* R40: across a restart the same (from, msg_id, text) is found in the store,
 * not stored twice. */
static void test_save_reused_msg_id_other_text_is_new_message(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  udpc_packet d = pkt(UDPC_PT_DEREG, 1, tb);
  feed(f, &b, &d);
  flush_ok(f);
  udpc_packet sv = save_pkt(ta, 90, "b", 5, "first");
  feed(f, &a, &sv);
  flush_ok(f);
  sv = save_pkt(ta, 91, "b", 5, "second");
  feed(f, &a, &sv);
  flush_ok(f);
  assert_int_equal(mail_count(f, "b"), 2);
  /* Across a restart (window lost), mail_find still tells them apart. */
  udpc_server_free(f->s);
  f->s = mk_server(f, 0, 0, 0);
  ta = reg(f, &a, "a", 1);
  sv = save_pkt(ta, 92, "b", 5, "second");
  feed(f, &a, &sv);
  flush_ok(f);
  assert_int_equal(only_out(f, &a).u.save_result.status, UDPC_SAVE_SAVED);
  assert_int_equal(mail_count(f, "b"), 2);
  sv = save_pkt(ta, 93, "b", 5, "third");
  feed(f, &a, &sv);
  flush_ok(f);
  assert_int_equal(mail_count(f, "b"), 3);
}

/* The sender's session ends while its SAVE probes: the recipient is still
 * marked offline, but nothing is stored (the client reported "not sent"). */
static void test_save_sender_gone_during_probe_nothing_stored(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  reg(f, &b, "b", 2);
  udpc_packet sv = save_pkt(ta, 9, "b", 1, "x");
  feed(f, &a, &sv);
  udpc_packet d = pkt(UDPC_PT_DEREG, 10, ta);
  feed(f, &a, &d);
  flush_ok(f);
  clear(f);
  advance(f, 500);
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_SAVE_RESULT, NULL), 0);
  assert_int_equal(mail_count(f, "b"), 0);
  assert_int_equal(stats(f).online, 0);
}

/* R59: step 1, an unregistered recipient -> UNKNOWN_RECIPIENT. */
static void test_save_unknown_recipient(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t ta = reg(f, &a, "a", 1);
  udpc_packet sv = save_pkt(ta, 91, "nobody", 1, "x");
  feed(f, &a, &sv);
  udpc_packet p = only_out(f, &a);
  assert_int_equal(p.u.save_result.status, UDPC_SAVE_UNKNOWN_RECIPIENT);
}

/* R59 R60: an online recipient is probed first; PROBE_ACK ->
 * RECIPIENT_ONLINE, nothing stored. */
static void test_save_to_online_probe_ack_gives_recipient_online_entry(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  udpc_packet sv = save_pkt(ta, 92, "b", 55, "are you there");
  feed(f, &a, &sv);
  udpc_packet pr = only_out(f, &b);
  assert_int_equal(pr.type, UDPC_PT_PROBE);
  assert_int_equal(pr.token, tb);
  clear(f);
  feed(f, &a, &sv); /* retransmission while probing: ignored */
  assert_int_equal(f->n_out, 0);
  /* A PROBE_ACK with the wrong id is dropped. */
  udpc_packet ack = pkt(UDPC_PT_PROBE_ACK, pr.id + 1, tb);
  feed(f, &b, &ack);
  assert_int_equal(f->n_out, 0);
  ack.id = pr.id;
  feed(f, &b, &ack);
  udpc_packet r = only_out(f, &a);
  assert_int_equal(r.type, UDPC_PT_SAVE_RESULT);
  assert_int_equal(r.id, 92);
  assert_int_equal(r.u.save_result.status, UDPC_SAVE_RECIPIENT_ONLINE);
  assert_string_equal(r.u.save_result.entry.nick.s, "b");
  assert_int_equal(r.u.save_result.entry.status, UDPC_STATUS_ONLINE);
  assert_true(udpc_addr_equal(&r.u.save_result.entry.addr, &b));
  assert_int_equal(mail_count(f, "b"), 0);
  /* The same SAVE again gets the same answer (the entry as it was, R39),
   * no new probe, even after b moved. */
  udpc_addr b2 = A(3);
  reg(f, &b2, "b", 2);
  clear(f);
  feed(f, &a, &sv);
  r = only_out(f, &a);
  assert_int_equal(r.u.save_result.status, UDPC_SAVE_RECIPIENT_ONLINE);
  assert_true(udpc_addr_equal(&r.u.save_result.entry.addr, &b));
  /* Nothing left pending. */
  advance(f, 1000);
  flush_ok(f);
  assert_int_equal(stats(f).online, 2);
}

/* R59 R60 R76: PROBE at t and t+250, dead at t+500, then offline, delta,
 * stored, SAVED. */
static void test_save_probe_unanswered_resent_then_offline_delta_saved(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  reg(f, &b, "b", 2);
  close_window(f);
  clear(f);
  udpc_packet sv = save_pkt(ta, 93, "b", 56, "gone?");
  feed(f, &a, &sv);
  assert_int_equal(count_out(f, UDPC_PT_PROBE, &b), 1);
  assert_int_equal(udpc_server_next_deadline(f->s), f->now + 250);
  clear(f);
  advance(f, 249);
  assert_int_equal(f->n_out, 0);
  advance(f, 1);
  assert_int_equal(only_out(f, &b).type, UDPC_PT_PROBE);
  assert_int_equal(udpc_server_next_deadline(f->s), f->now + 250);
  clear(f);
  advance(f, 250);
  assert_int_equal(f->n_out, 0); /* SAVED and delta wait for the commit */
  assert_int_equal(mail_count(f, "b"), 1);
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_SAVE_RESULT, &a), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0); /* window */
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &a), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &b), 0);
  for (size_t i = 0; i < f->n_out; i++) {
    udpc_packet p = out_at(f, i);
    if (p.type == UDPC_PT_SAVE_RESULT) {
      assert_int_equal(p.id, 93);
      assert_int_equal(p.u.save_result.status, UDPC_SAVE_SAVED);
    }
  }
  assert_int_equal(stats(f).online, 1);
  assert_int_equal(stats(f).probes_sent, 2);
  /* Retransmission: SAVED again, stored once. */
  clear(f);
  feed(f, &a, &sv);
  flush_ok(f);
  assert_int_equal(only_out(f, &a).u.save_result.status, UDPC_SAVE_SAVED);
  assert_int_equal(mail_count(f, "b"), 1);
}

/* R60 (regression K1, found by the simulator): the recipient comes back
 * under a new session (another port) while the probe of its old session
 * runs. When that probe times out the recipient is ONLINE, so nothing may be
 * stored (it would not fetch mail before its next registration): the
 * sender gets RECIPIENT_ONLINE with the new entry. */
static void test_save_probe_timeout_after_recipient_reregistered_not_stored(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2), b2 = A(3);
  uint64_t ta = reg(f, &a, "a", 1);
  reg(f, &b, "b", 2);
  udpc_packet sv = save_pkt(ta, 94, "b", 57, "stranded?");
  feed(f, &a, &sv);
  assert_int_equal(count_out(f, UDPC_PT_PROBE, &b), 1);
  advance(f, 200);
  reg(f, &b2, "b", 2); /* same credential, new address: new session */
  clear(f);
  advance(f, 300); /* the old session's probe times out */
  flush_ok(f);
  udpc_packet r = only_out(f, &a);
  assert_int_equal(r.type, UDPC_PT_SAVE_RESULT);
  assert_int_equal(r.id, 94);
  assert_int_equal(r.u.save_result.status, UDPC_SAVE_RECIPIENT_ONLINE);
  assert_true(udpc_addr_equal(&r.u.save_result.entry.addr, &b2));
  assert_int_equal(mail_count(f, "b"), 0);
  assert_int_equal(stats(f).online, 2);
}

/* R61: per-recipient and total quotas -> QUOTA, nothing stored. */
static void test_save_quota_per_recipient_and_total(void **state) {
  fx *f = *state;
  udpc_server_free(f->s);
  f->s = mk_server(f, 0, 2, 3);
  udpc_addr a = A(1), b = A(2), c = A(3);
  uint64_t ta = reg(f, &a, "a", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  uint64_t tc = reg(f, &c, "c", 3);
  udpc_packet d = pkt(UDPC_PT_DEREG, 1, tb);
  feed(f, &b, &d);
  d.token = tc;
  feed(f, &c, &d);
  flush_ok(f);
  uint8_t want[] = {UDPC_SAVE_SAVED, UDPC_SAVE_SAVED, UDPC_SAVE_QUOTA};
  for (uint32_t i = 0; i < 3; i++) {
    clear(f);
    udpc_packet sv = save_pkt(ta, 100 + i, "b", i, "m");
    feed(f, &a, &sv);
    flush_ok(f);
    assert_int_equal(only_out(f, &a).u.save_result.status, want[i]);
  }
  clear(f);
  udpc_packet sv = save_pkt(ta, 110, "c", 9, "m");
  feed(f, &a, &sv);
  flush_ok(f);
  assert_int_equal(only_out(f, &a).u.save_result.status, UDPC_SAVE_SAVED);
  clear(f);
  sv = save_pkt(ta, 111, "c", 10, "m"); /* total 3 reached */
  feed(f, &a, &sv);
  flush_ok(f);
  assert_int_equal(only_out(f, &a).u.save_result.status, UDPC_SAVE_QUOTA);
  assert_int_equal(mail_count(f, "b"), 2);
  assert_int_equal(mail_count(f, "c"), 1);
}

/* ---- Mail delivery (P7) ----------------------------------------------- */

/* R63 R64: oldest first, <= 16 and <= 1200 bytes, remaining; deleted only up
 * to ack_upto. */
static void test_mail_delivery_in_order_paged_deleted_only_on_ack(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  udpc_packet d = pkt(UDPC_PT_DEREG, 1, tb);
  feed(f, &b, &d);
  flush_ok(f);
  /* 40 mails, some big (only a few fit per page). */
  static char big[UDPC_TEXT_MAX + 1];
  memset(big, 'x', UDPC_TEXT_MAX);
  for (uint32_t i = 0; i < 40; i++) {
    char small[16] = "m00";
    small[1] = (char)('0' + i / 10);
    small[2] = (char)('0' + i % 10);
    udpc_packet sv = save_pkt(ta, 200 + i, "b", i, i % 7 == 3 ? big : small);
    feed(f, &a, &sv);
  }
  flush_ok(f);
  assert_int_equal(mail_count(f, "b"), 40);
  udpc_packet rr = reg_result(f, &b, "b", 2);
  assert_int_equal(rr.u.reg_result.mail_count, 40);
  tb = rr.u.reg_result.token;
  uint64_t ack = 0, last_seq = 0;
  uint32_t got = 0;
  int pages = 0;
  for (;;) {
    clear(f);
    udpc_packet mr = pkt(UDPC_PT_MAIL_REQ, 300 + (uint32_t)pages, tb);
    mr.u.mail_req.ack_upto = ack;
    feed(f, &b, &mr);
    flush_ok(f);
    udpc_packet p = only_out(f, &b);
    assert_int_equal(p.type, UDPC_PT_MAIL_PAGE);
    assert_true(f->out[0].len <= UDPC_MAX_PACKET);
    assert_true(p.u.mail_page.count <= UDPC_MAIL_PAGE_MAX);
    if (p.u.mail_page.count == 0) {
      assert_int_equal(p.u.mail_page.remaining, 0);
      break;
    }
    for (unsigned i = 0; i < p.u.mail_page.count; i++, got++) {
      const udpc_mail *m = &p.u.mail_page.mail[i];
      assert_true(m->seq > last_seq);
      last_seq = m->seq;
      assert_int_equal(m->msg_id, got);
      assert_string_equal(m->from.s, "a");
      assert_true(m->timestamp_ms >= T0);
      if (got % 7 == 3)
        assert_int_equal(m->text.len, UDPC_TEXT_MAX);
      else
        assert_int_equal(m->text.len, 3);
    }
    assert_int_equal(p.u.mail_page.remaining, 40 - got);
    /* Nothing deleted before the ack. */
    assert_int_equal(mail_count(f, "b"), 40 - (ack ? (uint32_t)0 : 0) -
                                             (got - p.u.mail_page.count));
    /* Asking again without acking gives the same page. */
    clear(f);
    feed(f, &b, &mr);
    flush_ok(f);
    assert_int_equal(only_out(f, &b).u.mail_page.count, p.u.mail_page.count);
    ack = last_seq;
    pages++;
  }
  assert_int_equal(got, 40);
  assert_true(pages >= 3);
  assert_int_equal(mail_count(f, "b"), 0);
  assert_int_equal(stats(f).mail_delivered, 40);
}

/* ---- Security (P9) ------------------------------------------------------ */

/* R80 R13: wrong address or forged token: not acted on; BAD_SESSION never
 * larger. */
static void test_forged_token_and_wrong_address_dropped_and_counted(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1), evil = A(66);
  uint64_t ta = reg(f, &a, "a", 1);
  udpc_server_stats s0 = stats(f);
  /* Right token, wrong source: silently dropped. */
  udpc_packet d = pkt(UDPC_PT_DEREG, 1, ta);
  feed(f, &evil, &d);
  flush_ok(f);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(stats(f).online, 1);
  assert_int_equal(stats(f).dropped_bad_session, s0.dropped_bad_session + 1);
  /* Forged token: BAD_SESSION (7 bytes, smaller than the request). */
  d.token = ta ^ 0x100;
  size_t len = feed(f, &evil, &d);
  udpc_packet e = only_out(f, &evil);
  assert_int_equal(e.u.error.code, UDPC_ERROR_BAD_SESSION);
  assert_true(f->out[0].len <= len);
  assert_int_equal(stats(f).dropped_bad_session, s0.dropped_bad_session + 2);
  /* Forged PROBE_ACK: dropped without an answer. */
  clear(f);
  udpc_packet pa = pkt(UDPC_PT_PROBE_ACK, 5, ta ^ 1);
  feed(f, &a, &pa);
  pa.token = ta;
  feed(f, &a, &pa); /* right token, no such probe */
  assert_int_equal(f->n_out, 0);
  assert_int_equal(stats(f).online, 1);
}

/* R11: packets of the wrong direction are dropped, counted, not answered. */
static void test_server_to_client_types_dropped_and_counted(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t ta = reg(f, &a, "a", 1);
  udpc_server_stats s0 = stats(f);
  udpc_packet p = pkt(UDPC_PT_HEARTBEAT_ACK, 1, ta);
  feed(f, &a, &p);
  p = pkt(UDPC_PT_CHAT_ACK, 2, 0);
  p.u.chat_ack.from = nk("a");
  feed(f, &a, &p);
  p = pkt(UDPC_PT_ERROR, 3, 0);
  p.u.error.code = UDPC_ERROR_INTERNAL;
  feed(f, &a, &p);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(stats(f).dropped_unexpected, s0.dropped_unexpected + 3);
}

/* R3 R8 R9 R10: too big dropped; VERSION only if >= 7 bytes; unknown type
 * never answered; MALFORMED never larger. */
static void test_malformed_request_error_only_when_not_larger(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t ta = reg(f, &a, "a", 1);
  uint8_t buf[UDPC_MAX_PACKET];
  udpc_packet hb = pkt(UDPC_PT_TABLE_REQ, 9, ta);
  int n = udpc_wire_encode(&hb, buf, sizeof buf);
  assert_true(n > 7);
  /* Truncated to 7 bytes: ERROR(MALFORMED), 7 bytes. */
  assert_int_equal(udpc_server_recv(f->s, f->now, &a, buf, 7), UDPC_OK);
  udpc_packet e = only_out(f, &a);
  assert_int_equal(e.u.error.code, UDPC_ERROR_MALFORMED);
  assert_int_equal(e.id, 9);
  assert_true(f->out[0].len <= 7);
  /* 6 bytes: no answer (ERROR would be larger). */
  clear(f);
  assert_int_equal(udpc_server_recv(f->s, f->now, &a, buf, 6), UDPC_OK);
  assert_int_equal(f->n_out, 0);
  /* Unknown version: ERROR(VERSION) only if >= 7 bytes. */
  buf[0] = 2;
  assert_int_equal(udpc_server_recv(f->s, f->now, &a, buf, 6), UDPC_OK);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(udpc_server_recv(f->s, f->now, &a, buf, (size_t)n), UDPC_OK);
  e = only_out(f, &a);
  assert_int_equal(e.u.error.code, UDPC_ERROR_VERSION);
  /* Unknown type: never answered. */
  clear(f);
  buf[0] = 1;
  buf[1] = 0x55;
  assert_int_equal(udpc_server_recv(f->s, f->now, &a, buf, (size_t)n), UDPC_OK);
  assert_int_equal(f->n_out, 0);
  /* Too big: dropped. */
  static uint8_t huge[UDPC_MAX_PACKET + 1];
  memcpy(huge, buf, (size_t)n);
  huge[1] = UDPC_PT_HEARTBEAT;
  assert_int_equal(udpc_server_recv(f->s, f->now, &a, huge, sizeof huge),
                   UDPC_OK);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(stats(f).dropped_malformed, 6);
  assert_int_equal(udpc_server_recv(f->s, f->now, NULL, buf, 1), UDPC_ERR_ARG);
  assert_int_equal(udpc_server_recv(NULL, f->now, &a, buf, 1), UDPC_ERR_ARG);
}

/* ---- Commit failures ("acknowledged means committed") ------------------ */

/* R50: no REGISTER_RESULT OK / DEREG_RESULT OK when the commit fails. */
static void test_commit_failure_sends_no_ack_retransmit_succeeds(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  udpc_packet c = get_cookie(f, &a, "alice", 1);
  udpc_packet r = reg_pkt("alice", 1, 5, c.u.cookie.cookie, 20);
  feed(f, &a, &r);
  udpc_store_mem_fail_commits(f->st, 1);
  assert_int_equal(udpc_server_flush(f->s, f->now), UDPC_ERR_STORE);
  assert_int_equal(f->n_out, 0); /* no REGISTER_RESULT, no delta */
  /* The client retransmits; now the commit works. */
  feed(f, &a, &r);
  flush_ok(f);
  udpc_packet p = out_at(f, 0);
  assert_int_equal(p.type, UDPC_PT_REGISTER_RESULT);
  assert_int_equal(p.u.reg_result.status, UDPC_REG_OK);
  uint64_t t = p.u.reg_result.token;
  udpc_store_user u;
  udpc_nick n = nk("alice");
  assert_int_equal(udpc_store_user_get(f->st, &n, &u), UDPC_OK);
  /* DEREG: same rule. */
  clear(f);
  udpc_packet d = pkt(UDPC_PT_DEREG, 6, t);
  feed(f, &a, &d);
  udpc_store_mem_fail_commits(f->st, 1);
  assert_int_equal(udpc_server_flush(f->s, f->now), UDPC_ERR_STORE);
  assert_int_equal(f->n_out, 0);
  feed(f, &a, &d);
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_DEREG_RESULT, &a), 1);
  assert_int_equal(udpc_store_user_get(f->st, &n, &u), UDPC_OK);
  assert_int_equal(u.status, UDPC_STATUS_OFFLINE);
}

/* R50 R40: no SAVED or deleting MAIL_PAGE before the commit; stored once. */
static void test_commit_failure_on_save_no_ack_and_stored_once(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  udpc_packet d = pkt(UDPC_PT_DEREG, 1, tb);
  feed(f, &b, &d);
  flush_ok(f);
  clear(f);
  udpc_packet sv = save_pkt(ta, 400, "b", 77, "keep me");
  feed(f, &a, &sv);
  udpc_store_mem_fail_commits(f->st, 1);
  assert_int_equal(udpc_server_flush(f->s, f->now), UDPC_ERR_STORE);
  assert_int_equal(f->n_out, 0);
  feed(f, &a, &sv);
  flush_ok(f);
  assert_int_equal(only_out(f, &a).u.save_result.status, UDPC_SAVE_SAVED);
  assert_int_equal(mail_count(f, "b"), 1);
  /* MAIL_PAGE after a delete waits for the commit too. */
  udpc_packet rr = reg_result(f, &b, "b", 2);
  tb = rr.u.reg_result.token;
  clear(f);
  udpc_packet mr = pkt(UDPC_PT_MAIL_REQ, 401, tb);
  feed(f, &b, &mr); /* ack 0: read-only, sent at once */
  udpc_packet pg = only_out(f, &b);
  assert_int_equal(pg.u.mail_page.count, 1);
  clear(f);
  mr.u.mail_req.ack_upto = pg.u.mail_page.mail[0].seq;
  feed(f, &b, &mr);
  assert_int_equal(f->n_out, 0);
  udpc_store_mem_fail_commits(f->st, 1);
  assert_int_equal(udpc_server_flush(f->s, f->now), UDPC_ERR_STORE);
  assert_int_equal(f->n_out, 0);
  feed(f, &b, &mr);
  flush_ok(f);
  assert_int_equal(only_out(f, &b).u.mail_page.count, 0);
}

/* ---- Robustness ------------------------------------------------------- */

static uint32_t lcg(uint32_t *x) {
  *x = *x * 1664525u + 1013904223u;
  return *x >> 8;
}

static void feed_all_truncations(fx *f, const udpc_addr *from,
                                 const udpc_packet *p) {
  uint8_t buf[UDPC_MAX_PACKET];
  int n = udpc_wire_encode(p, buf, sizeof buf);
  assert_true(n > 0);
  for (size_t len = 0; len < (size_t)n; len++) {
    uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
    memcpy(copy, buf, len);
    assert_int_equal(udpc_server_recv(f->s, f->now, from, copy, len), UDPC_OK);
    free(copy);
  }
  /* And with one extra trailing byte. */
  buf[n] = 0;
  assert_int_equal(udpc_server_recv(f->s, f->now, from, buf, (size_t)n + 1),
                   UDPC_OK);
}

static void test_malformed_truncations_of_every_packet_never_crash(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "op", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  udpc_packet c = get_cookie(f, &a, "op", 1);
  udpc_packet ps[16];
  size_t n = 0;
  ps[n++] = reg_pkt("op", 1, 1, c.u.cookie.cookie, 20);
  ps[n++] = reg_pkt("zz", 1, 1, NULL, 0);
  ps[n] = pkt(UDPC_PT_TABLE_REQ, 2, ta);
  ps[n++].u.table_req.start = 3;
  ps[n++] = pkt(UDPC_PT_HEARTBEAT, 3, ta);
  ps[n] = pkt(UDPC_PT_DEREG_OTHER, 4, ta);
  ps[n++].u.dereg_other.target = nk("nobody");
  ps[n++] = save_pkt(ta, 5, "b", 9, "truncate me");
  ps[n] = pkt(UDPC_PT_MAIL_REQ, 6, ta);
  ps[n++].u.mail_req.ack_upto = 0;
  ps[n++] = pkt(UDPC_PT_PROBE_ACK, 7, tb);
  ps[n] = pkt(UDPC_PT_CHAT, 8, 0);
  ps[n].u.chat.from = nk("a");
  ps[n].u.chat.to = nk("b");
  ps[n].u.chat.text.p = (const uint8_t *)"hi";
  ps[n++].u.chat.text.len = 2;
  ps[n] = pkt(UDPC_PT_ERROR, 9, 0);
  ps[n++].u.error.code = 1;
  ps[n++] = pkt(UDPC_PT_DEREG, 10, ta); /* last: ends the session */
  for (size_t i = 0; i < n; i++) {
    feed_all_truncations(f, &a, &ps[i]);
    advance(f, 100);
    (void)udpc_server_flush(f->s, f->now);
  }
  assert_true(stats(f).dropped_malformed > 50);
  assert_true(f->n_logs > 0);
}

static void test_random_datagrams_fixed_seed_never_crash(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  reg(f, &b, "b", 2);
  uint32_t x = 12345;
  static uint8_t buf[UDPC_MAX_PACKET + 8];
  for (int i = 0; i < 20000; i++) {
    size_t len = lcg(&x) % (i % 10 == 0 ? sizeof buf : 64);
    for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)lcg(&x);
    if (len >= 2 && i % 2 == 0) {
      buf[0] = 1; /* valid version, often a known type */
      static const uint8_t types[] = {0x01, 0x10, 0x20, 0x30, 0x31,
                                      0x40, 0x50, 0x61, 0x70, 0x7f};
      buf[1] = types[lcg(&x) % sizeof types];
    }
    if (len >= 14 && i % 4 == 0) { /* sometimes a valid token */
      for (int k = 0; k < 8; k++) buf[6 + k] = (uint8_t)(ta >> (56 - 8 * k));
    }
    udpc_addr from = (i % 3 == 0) ? a : A(100 + (unsigned)(i % 50));
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    assert_int_equal(udpc_server_recv(f->s, f->now, &from, copy, len), UDPC_OK);
    free(copy);
    if (i % 100 == 0) {
      advance(f, 50);
      (void)udpc_server_flush(f->s, f->now);
      clear(f);
    }
  }
  (void)udpc_server_flush(f->s, f->now);
}

static void test_debug_log_every_packet_in_and_out_and_drop_reasons(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t t = reg(f, &a, "a", 1);
  /* 2 REGISTERs in; COOKIE + REGISTER_RESULT out (1 held). */
  assert_int_equal(f->log_rx, 2);
  assert_int_equal(f->log_tx, 2);
  assert_int_equal(f->log_hold, 1);
  /* The window's delta: one line per chunk, whatever the recipients. */
  close_window(f);
  assert_int_equal(f->log_tx, 3);
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 1, t ^ 1);
  feed(f, &a, &hb);
  assert_true(f->log_drop >= 1);
  assert_int_equal(f->log_tx, 4); /* the BAD_SESSION error */
}

/* udpc_io.log_limit: a server whose log wants up to info never builds or
 * passes a debug line (no per-datagram traces), but still logs info. */
static void test_log_limit_info_builds_no_debug_lines(void **state) {
  fx *f = *state;
  f->cfg.log_limit = 3; /* error, warning, info */
  udpc_server_free(f->s);
  f->s = udpc_tsrv_server(f);
  f->n_lines = 0;
  udpc_addr a = A(1);
  uint64_t t = reg(f, &a, "a", 1);
  close_window(f);
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 1, t ^ 1);
  feed(f, &a, &hb);
  assert_int_equal(f->log_rx, 0);
  assert_int_equal(f->log_tx, 0);
  assert_int_equal(f->log_hold, 0);
  assert_int_equal(f->log_drop, 0);
  assert_int_equal(f->n_logs, f->n_lines); /* nothing at debug */
  /* info still passes: the session times out after 30 s of silence */
  advance(f, (uint64_t)UDPC_N_HEARTBEAT_MISSED * UDPC_T_HEARTBEAT + 1);
  assert_true(udpc_tsrv_has_line(f, "session timeout: a"));
}

static void test_deregA_operator_may_kick_itself(void **state) {
  fx *f = *state;
  udpc_addr o = A(1);
  uint64_t to = reg(f, &o, "op", 1);
  udpc_packet d = pkt(UDPC_PT_DEREG_OTHER, 5, to);
  d.u.dereg_other.target = nk("op");
  feed(f, &o, &d);
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_KICKED, &o), 1);
  assert_int_equal(count_out(f, UDPC_PT_DEREG_RESULT, &o), 1);
  for (size_t i = 0; i < f->n_out; i++)
    assert_int_equal(out_at(f, i).token, to);
  assert_int_equal(stats(f).online, 0);
}

static void test_save_to_self_probes_self_recipient_online(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t ta = reg(f, &a, "a", 1);
  udpc_packet sv = save_pkt(ta, 7, "a", 1, "me");
  feed(f, &a, &sv);
  udpc_packet pr = only_out(f, &a);
  assert_int_equal(pr.type, UDPC_PT_PROBE);
  clear(f);
  udpc_packet ack = pkt(UDPC_PT_PROBE_ACK, pr.id, ta);
  feed(f, &a, &ack);
  assert_int_equal(only_out(f, &a).u.save_result.status,
                   UDPC_SAVE_RECIPIENT_ONLINE);
}

/* R77: at most 1024 probes; the 1025th SAVE is dropped unanswered. */
static void test_probes_capped_at_1024_excess_save_dropped(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  reg(f, &b, "b", 2);
  for (uint32_t i = 0; i < 1025; i++) {
    udpc_packet sv = save_pkt(ta, i, "b", i, "x");
    feed(f, &a, &sv);
  }
  assert_int_equal(count_out(f, UDPC_PT_PROBE, &b), 1024);
  assert_int_equal(stats(f).probes_sent, 1024);
  assert_int_equal(count_out(f, UDPC_PT_SAVE_RESULT, NULL), 0);
  /* All time out together: b offline, 1024 mails, 1024 SAVED. */
  clear(f);
  advance(f, 250);
  assert_int_equal(count_out(f, UDPC_PT_PROBE, &b), 1024);
  clear(f);
  advance(f, 250);
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_SAVE_RESULT, &a), 1024);
  assert_int_equal(mail_count(f, "b"), 1000); /* then the quota */
  assert_int_equal(udpc_server_next_deadline(f->s), f->now + 30000 - 500);
}

static void test_probe_timeout_commit_failure_no_saved_then_stored_once(
    void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  reg(f, &b, "b", 2);
  udpc_packet sv = save_pkt(ta, 9, "b", 99, "late");
  feed(f, &a, &sv);
  clear(f);
  advance(f, 500);
  udpc_store_mem_fail_commits(f->st, 1);
  assert_int_equal(udpc_server_flush(f->s, f->now), UDPC_ERR_STORE);
  assert_int_equal(count_out(f, UDPC_PT_SAVE_RESULT, NULL), 0);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0);
  feed(f, &a, &sv); /* retransmission: b is offline now */
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_SAVE_RESULT, &a), 1);
  /* The window was due at the failed flush; it waits one more window. */
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0);
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &a), 1); /* kept */
  assert_int_equal(mail_count(f, "b"), 1);
}

/* ---- Coalescing window and full datagrams (P6.2, P6.3) ------------------ */

/* An IPv6 address (entries of up to 53 bytes) or the usual IPv4 one. */
static udpc_addr A6(unsigned n) {
  udpc_addr a;
  memset(&a, 0, sizeof a);
  a.family = 6;
  a.ip[0] = 0x20;
  a.ip[1] = 0x01;
  a.ip[14] = (uint8_t)(n >> 8);
  a.ip[15] = (uint8_t)n;
  a.port = (uint16_t)(40000 + n);
  return a;
}

/* Nick i of the packing tests: lengths 1..32 cycling, distinct. */
static void pack_nick(char *out, unsigned i) {
  unsigned len = 3 + i % 30; /* 3..32 */
  for (unsigned k = 0; k < len; k++) out[k] = 'a';
  out[0] = (char)('a' + i / 26 % 26);
  out[1] = (char)('a' + i % 26);
  out[2] = (char)('0' + i / 676);
  out[len] = '\0';
}

static udpc_addr pack_addr(unsigned i) { return i % 3 ? A6(i + 1) : A(i + 1); }

/* Bytes of the encoded entries of a page or delta. */
static size_t entries_size(const udpc_entry *e, unsigned n) {
  size_t z = 0;
  for (unsigned i = 0; i < n; i++) z += udpc_wire_entry_size(&e[i]);
  return z;
}

/* R55 R51: a change is not sent at once: the first change opens a window of
 * UDPC_T_DELTA_WINDOW ms, next_deadline names its end, and the first flush
 * at or after it (after the commit) sends one delta covering every change
 * of the window, each entry once, as it is then. */
static void test_r55_delta_only_after_window_and_flush(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t t0 = f->now;
  uint64_t ta = reg(f, &a, "a", 1); /* opens the window at t0 */
  assert_int_equal(udpc_server_next_deadline(f->s), t0 + UDPC_T_DELTA_WINDOW);
  advance(f, 20);
  uint64_t tb = reg(f, &b, "b", 2); /* joins it: the deadline stays */
  assert_int_equal(udpc_server_next_deadline(f->s), t0 + UDPC_T_DELTA_WINDOW);
  walk_table(f, &b, tb); /* b's client walks (P6.2): not new any more */
  assert_int_equal(udpc_server_next_deadline(f->s), t0 + UDPC_T_DELTA_WINDOW);
  udpc_packet d = pkt(UDPC_PT_DEREG, 5, ta);
  feed(f, &a, &d); /* a again: one entry per nick */
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0);
  clear(f);
  advance(f, UDPC_T_DELTA_WINDOW - 21); /* t0 + 49 */
  flush_ok(f);
  assert_int_equal(f->n_out, 0);
  advance(f, 1); /* the deadline: handle_expiry, then the flush emits */
  assert_true(udpc_server_next_deadline(f->s) > f->now);
  assert_int_equal(f->n_out, 0);
  flush_ok(f);
  /* b is the only online session: a went offline in the window. */
  udpc_packet p = only_out(f, &b);
  assert_int_equal(p.type, UDPC_PT_TABLE_DELTA);
  assert_int_equal(p.u.table_delta.base_version, 1);
  assert_int_equal(p.u.table_delta.new_version, 4);
  assert_int_equal(p.u.table_delta.count, 2);
  /* ordered by their last change: b (v3), then a (v4, offline) */
  assert_string_equal(p.u.table_delta.entries[0].nick.s, "b");
  assert_int_equal(p.u.table_delta.entries[0].status, UDPC_STATUS_ONLINE);
  assert_string_equal(p.u.table_delta.entries[1].nick.s, "a");
  assert_int_equal(p.u.table_delta.entries[1].status, UDPC_STATUS_OFFLINE);
  /* Closed: nothing more, no deadline of the window. */
  clear(f);
  advance(f, 1000);
  flush_ok(f);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(udpc_server_next_deadline(f->s),
                   t0 + 20 + 30000); /* b's session timeout */
}

/* R55: the server's clock (UTC) stepping back to before the window opened
 * does not hold the deltas until it catches up: the next flush emits. */
static void test_r55_clock_step_back_closes_the_window(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t t = reg(f, &a, "a", 1);
  f->now -= 10000;
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 1, t);
  feed(f, &a, &hb);
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &a), 1);
}

/* R55 R50: a window whose flush fails emits nothing (not even the changes
 * committed before it); a change is never emitted before its commit; the
 * next successful flush after another window emits everything. */
static void test_r55_failed_commit_never_emits_uncommitted(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  walk_table(f, &a, ta); /* a's client walks (P6.2): not new any more */
  advance(f, UDPC_T_DELTA_WINDOW); /* due, but no flush yet */
  udpc_packet c = get_cookie(f, &b, "b", 2);
  udpc_packet r = reg_pkt("b", 2, 9, c.u.cookie.cookie, 20);
  feed(f, &b, &r); /* b's registration: not committed yet */
  udpc_store_mem_fail_commits(f->st, 1);
  assert_int_equal(udpc_server_flush(f->s, f->now), UDPC_ERR_STORE);
  assert_int_equal(f->n_out, 0); /* no REGISTER_RESULT, no delta */
  /* The window retries after another UDPC_T_DELTA_WINDOW. */
  assert_int_equal(udpc_server_next_deadline(f->s),
                   f->now + UDPC_T_DELTA_WINDOW);
  advance(f, 10);
  flush_ok(f); /* commits b, the window is not due yet */
  assert_int_equal(count_out(f, UDPC_PT_REGISTER_RESULT, NULL), 0);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0);
  feed(f, &b, &r); /* the client retransmits: same session */
  flush_ok(f);
  assert_int_equal(count_out(f, UDPC_PT_REGISTER_RESULT, &b), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0);
  uint64_t tb = 0;
  for (size_t i = 0; i < f->n_out; i++)
    if (out_at(f, i).type == UDPC_PT_REGISTER_RESULT)
      tb = out_at(f, i).u.reg_result.token;
  walk_table(f, &b, tb); /* b's client walks: not new any more */
  clear(f);
  close_window(f);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &a), 1);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, &b), 1);
  udpc_packet p = out_at(f, 0);
  assert_int_equal(p.u.table_delta.base_version, 1);
  assert_int_equal(p.u.table_delta.new_version, 3);
  assert_int_equal(p.u.table_delta.count, 2);
}

/* R55: when the window holds 4096 distinct changed entries the flush emits
 * at once (early) instead of dropping deltas; the chunks chain from the
 * last published version to the current one and carry each entry once. */
static void test_r55_early_emission_at_4096_distinct_entries(void **state) {
  fx *f = *state;
  udpc_addr w = A(0xfff0);
  uint64_t tw = reg(f, &w, "watcher", 1); /* distinct entry 1 */
  walk_table(f, &w, tw); /* its client walks: not new any more */
  unsigned i;
  for (i = 1; i < 5000; i++) {
    udpc_addr a = udpc_tsrv_addr_wide(i);
    char name[16] = "x";
    unsigned v = i;
    for (int k = 1; k < 6; k++, v /= 10) name[k] = (char)('0' + v % 10);
    udpc_packet r = reg_result(f, &a, name, 2);
    if (count_out(f, UDPC_PT_TABLE_DELTA, NULL) > 0) break;
    clear(f);
    udpc_packet d = pkt(UDPC_PT_DEREG, i, r.u.reg_result.token);
    feed(f, &a, &d);
    flush_ok(f);
    assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0);
  }
  /* Emitted in the flush where the distinct count reached 4096: the
   * watcher and 4095 others (2 changes each but the last); no time has
   * passed. */
  assert_int_equal(i, 4095);
  const uint64_t v = 2 + 2 * 4094 + 1;
  uint64_t base = 1;
  unsigned entries = 0;
  for (size_t k = 0; k < f->n_out; k++) {
    udpc_packet p = out_at(f, k);
    if (p.type != UDPC_PT_TABLE_DELTA) continue;
    udpc_addr last = udpc_tsrv_addr_wide(i); /* online too */
    if (udpc_addr_equal(&f->out[k].to, &last)) continue;
    assert_true(udpc_addr_equal(&f->out[k].to, &w));
    assert_int_equal(p.token, tw);
    assert_int_equal(p.u.table_delta.base_version, base);
    assert_true(p.u.table_delta.new_version > base);
    base = p.u.table_delta.new_version;
    entries += p.u.table_delta.count;
    for (unsigned e = 0; e < p.u.table_delta.count; e++)
      if (p.u.table_delta.entries[e].nick.s[0] == 'x' &&
          p.u.table_delta.new_version < v)
        assert_int_equal(p.u.table_delta.entries[e].status,
                         UDPC_STATUS_OFFLINE);
  }
  assert_int_equal(entries, 4096);
  assert_int_equal(base, v); /* the current version */
  /* The next change opens a new window. */
  clear(f);
  udpc_addr b = A(2);
  reg(f, &b, "b", 3);
  assert_int_equal(count_out(f, UDPC_PT_TABLE_DELTA, NULL), 0);
  close_window(f);
  udpc_packet p = out_at(f, 0);
  assert_int_equal(p.u.table_delta.base_version, v);
  assert_int_equal(p.u.table_delta.count, 1);
}

/* R52 R55 R56 R22: pages and deltas carry as many entries as fit in 1200
 * bytes (never more; the next entry would not fit), the delta chunks chain
 * by versions, every entry changed in the window is in exactly one chunk,
 * the one of its last change (so a client that took a snapshot during the
 * window misses nothing by ignoring older chunks), and the copies of a
 * chunk differ only in the token. */
static void test_r52_r55_pages_and_deltas_full_to_1200_bytes(void **state) {
  fx *f = *state;
  enum { N = 150 };
  uint64_t tok[N];
  char names[N][40];
  for (unsigned i = 0; i < N; i++) {
    pack_nick(names[i], i);
    udpc_addr a = pack_addr(i);
    tok[i] = reg(f, &a, names[i], (uint8_t)i);
    walk_table(f, &a, tok[i]); /* its client walks: not new any more */
  }
  /* names[0] changes again last: deregistered, then back at its address */
  udpc_addr a0 = pack_addr(0);
  udpc_packet d = pkt(UDPC_PT_DEREG, 1, tok[0]);
  feed(f, &a0, &d);
  flush_ok(f);
  clear(f);
  /* Pages: walk the table. */
  uint32_t start = 0, walked = 0;
  udpc_addr a1 = pack_addr(1);
  while (start < N) {
    clear(f);
    udpc_packet q = pkt(UDPC_PT_TABLE_REQ, 3, tok[1]);
    q.u.table_req.start = start;
    feed(f, &a1, &q);
    udpc_packet p = only_out(f, &a1);
    unsigned n = p.u.table_page.count;
    size_t len = f->out[0].len;
    assert_true(n > 0 && len <= UDPC_MAX_PACKET);
    assert_int_equal(len, UDPC_TABLE_PAGE_FIXED +
                              entries_size(p.u.table_page.entries, n));
    if (start + n < N) { /* the next entry would not fit */
      clear(f);
      q.u.table_req.start = start + n;
      feed(f, &a1, &q);
      udpc_packet nx = only_out(f, &a1);
      assert_true(len + udpc_wire_entry_size(&nx.u.table_page.entries[0]) >
                  UDPC_MAX_PACKET);
    }
    start += n;
    walked++;
  }
  assert_true(walked >= 3);
  /* Deltas: one window of N + 1 changes to N - 1 online sessions. */
  clear(f);
  close_window(f);
  size_t online = N - 1;
  assert_int_equal(f->n_out % online, 0);
  size_t chunks = f->n_out / online;
  assert_true(chunks >= 3);
  uint64_t base = 1;
  unsigned seen[N] = {0};
  for (size_t c = 0; c < chunks; c++) {
    const udpc_tsrv_out *first = &f->out[c * online];
    udpc_packet p = out_at(f, c * online);
    assert_int_equal(p.type, UDPC_PT_TABLE_DELTA);
    unsigned n = p.u.table_delta.count;
    assert_true(first->len <= UDPC_MAX_PACKET);
    assert_int_equal(first->len, UDPC_TABLE_DELTA_FIXED +
                                     entries_size(p.u.table_delta.entries, n));
    if (c + 1 < chunks) {
      udpc_packet nx = out_at(f, (c + 1) * online);
      assert_true(first->len +
                      udpc_wire_entry_size(&nx.u.table_delta.entries[0]) >
                  UDPC_MAX_PACKET);
    }
    assert_int_equal(p.u.table_delta.base_version, base);
    base = p.u.table_delta.new_version;
    for (unsigned e = 0; e < n; e++) {
      unsigned k = 0;
      while (k < N && strcmp(names[k], p.u.table_delta.entries[e].nick.s) != 0)
        k++;
      assert_true(k < N);
      seen[k]++;
      /* entry k (k >= 1) last changed at version k + 2 */
      if (k > 0) assert_true(p.u.table_delta.new_version >= k + 2);
    }
    if (c + 1 == chunks) { /* names[0] changed last */
      assert_string_equal(p.u.table_delta.entries[n - 1].nick.s, names[0]);
      assert_int_equal(p.u.table_delta.entries[n - 1].status,
                       UDPC_STATUS_OFFLINE);
    }
    /* every copy: same bytes but the token, to its session */
    for (size_t r = 0; r < online; r++) {
      const udpc_tsrv_out *o = &f->out[c * online + r];
      assert_int_equal(o->len, first->len);
      assert_memory_equal(o->data, first->data, UDPC_HEADER_LEN);
      assert_memory_equal(o->data + UDPC_HEADER_LEN + UDPC_TOKEN_LEN,
                          first->data + UDPC_HEADER_LEN + UDPC_TOKEN_LEN,
                          first->len - UDPC_HEADER_LEN - UDPC_TOKEN_LEN);
      udpc_packet q = out_at(f, c * online + r);
      unsigned k = 1;
      while (k < N && q.token != tok[k]) k++;
      assert_true(k < N);
      udpc_addr ak = pack_addr(k);
      assert_true(udpc_addr_equal(&o->to, &ak));
    }
  }
  assert_int_equal(base, 1 + N + 1); /* the current version */
  for (unsigned k = 0; k < N; k++) assert_int_equal(seen[k], 1);
}

/* ---- Walking sessions (P6.3) ------------------------------------------------ */

/* WN sessions names[i] (sorted: index i), all online, each of which walked
 * the table after its registration (so none is new or walking), their
 * registration window closed. The TABLE_REQ ids of walk_page are id0 + id:
 * newer (R26) than those of the walks of walk_setup. */
enum { WN = 150 };
typedef struct {
  uint64_t tok[WN];
  char names[WN][40];
  uint32_t id0;
} walk_fx;

static void walk_setup(fx *f, walk_fx *w) {
  for (unsigned i = 0; i < WN; i++) {
    pack_nick(w->names[i], i);
    udpc_addr a = pack_addr(i);
    w->tok[i] = reg(f, &a, w->names[i], (uint8_t)i);
    walk_table(f, &a, w->tok[i]);
  }
  close_window(f);
  clear(f);
  w->id0 = f->next_id;
}

/* Session (tok, at a) asks TABLE_REQ(id, start); returns the page's count. */
static uint32_t page_req(fx *f, const udpc_addr *a, uint64_t tok, uint32_t id,
                         uint32_t start) {
  clear(f);
  udpc_packet q = pkt(UDPC_PT_TABLE_REQ, id, tok);
  q.u.table_req.start = start;
  feed(f, a, &q);
  udpc_packet p = only_out(f, a);
  assert_int_equal(p.type, UDPC_PT_TABLE_PAGE);
  assert_int_equal(p.id, id);
  assert_int_equal(p.u.table_page.start, start);
  clear(f);
  return p.u.table_page.count;
}

/* Session `who` asks TABLE_REQ(w->id0 + id, start); returns the count. */
static uint32_t walk_page(fx *f, const walk_fx *w, unsigned who, uint32_t id,
                          uint32_t start) {
  udpc_addr a = pack_addr(who);
  return page_req(f, &a, w->tok[who], w->id0 + id, start);
}

/* Session k deregisters (one table change). */
static void walk_dereg(fx *f, const walk_fx *w, unsigned k) {
  udpc_addr a = pack_addr(k);
  udpc_packet d = pkt(UDPC_PT_DEREG, 900 + k, w->tok[k]);
  feed(f, &a, &d);
  flush_ok(f);
}

/* The TABLE_DELTAs sent to session k (their out[] positions in pos). */
static size_t deltas_to(const fx *f, unsigned k, size_t *pos, size_t max) {
  udpc_addr a = pack_addr(k);
  size_t n = 0;
  for (size_t i = 0; i < f->n_out && n < max; i++) {
    if (!udpc_addr_equal(&f->out[i].to, &a)) continue;
    udpc_packet p = out_at(f, i);
    assert_int_equal(p.type, UDPC_PT_TABLE_DELTA);
    pos[n++] = i;
  }
  return n;
}

/* P6.3 "Walking sessions" R55: a session whose walk asked page 0 (so its
 * next page starts at c) gets the window's delta without the entries at
 * indexes >= c (its walk reads them later), same base and new versions;
 * the others get every changed entry. */
static void
test_r55_walking_session_delta_leaves_out_entries_its_walk_will_read(
    void **state) {
  fx *f = *state;
  walk_fx w;
  walk_setup(f, &w);
  uint32_t c = walk_page(f, &w, 0, 500, 0);
  assert_true(c >= 12 && c + 12 < WN);
  uint64_t b = 1 + WN;
  walk_dereg(f, &w, 5);
  walk_dereg(f, &w, c + 3);
  walk_dereg(f, &w, 2);
  walk_dereg(f, &w, c); /* the first index the walk will still read */
  clear(f);
  close_window(f);
  size_t pos[8];
  assert_int_equal(deltas_to(f, 0, pos, 8), 1);
  udpc_packet p = out_at(f, pos[0]);
  assert_int_equal(p.token, w.tok[0]);
  assert_int_equal(p.u.table_delta.base_version, b);
  assert_int_equal(p.u.table_delta.new_version, b + 4);
  assert_int_equal(p.u.table_delta.count, 2);
  assert_string_equal(p.u.table_delta.entries[0].nick.s, w.names[5]);
  assert_string_equal(p.u.table_delta.entries[1].nick.s, w.names[2]);
  assert_int_equal(p.u.table_delta.entries[1].status, UDPC_STATUS_OFFLINE);
  /* everybody else online: the shared delta with all four */
  for (unsigned k = 1; k < WN; k++) {
    size_t n = deltas_to(f, k, pos, 8);
    if (k == 5 || k == c + 3 || k == 2 || k == c) {
      assert_int_equal(n, 0);
      continue;
    }
    assert_int_equal(n, 1);
    udpc_packet q = out_at(f, pos[0]);
    assert_int_equal(q.token, w.tok[k]);
    assert_int_equal(q.u.table_delta.base_version, b);
    assert_int_equal(q.u.table_delta.new_version, b + 4);
    assert_int_equal(q.u.table_delta.count, 4);
    assert_string_equal(q.u.table_delta.entries[0].nick.s, w.names[5]);
    assert_string_equal(q.u.table_delta.entries[1].nick.s, w.names[c + 3]);
    assert_string_equal(q.u.table_delta.entries[2].nick.s, w.names[2]);
    assert_string_equal(q.u.table_delta.entries[3].nick.s, w.names[c]);
  }
  assert_int_equal(f->n_out, WN - 4);
}

/* P6.3: the shared deltas of a big window are several chained chunks; a
 * walking session gets the entries its walk will not read in one delta
 * from the first chunk's base to the last chunk's new (they fit: they
 * fitted in its first page). */
static void test_r55_walking_session_merged_chunks_first_base_last_new(
    void **state) {
  fx *f = *state;
  walk_fx w;
  walk_setup(f, &w);
  uint32_t c = walk_page(f, &w, 0, 500, 0);
  uint64_t b = 1 + WN;
  for (unsigned k = 1; k + 1 < WN; k++) walk_dereg(f, &w, k);
  clear(f);
  close_window(f);
  size_t pos[16];
  size_t chunks = deltas_to(f, WN - 1, pos, 16);
  assert_true(chunks >= 3);
  uint64_t base = b;
  for (size_t i = 0; i < chunks; i++) {
    udpc_packet q = out_at(f, pos[i]);
    assert_int_equal(q.u.table_delta.base_version, base);
    base = q.u.table_delta.new_version;
  }
  assert_int_equal(base, b + WN - 2);
  assert_int_equal(deltas_to(f, 0, pos, 16), 1);
  udpc_packet p = out_at(f, pos[0]);
  assert_int_equal(p.u.table_delta.base_version, b);
  assert_int_equal(p.u.table_delta.new_version, b + WN - 2);
  assert_int_equal(p.u.table_delta.count, c - 1); /* names[1 .. c-1] */
  for (unsigned e = 0; e + 1 < c; e++)
    assert_string_equal(p.u.table_delta.entries[e].nick.s, w.names[e + 1]);
  assert_true(f->out[pos[0]].len <= UDPC_MAX_PACKET);
  assert_int_equal(f->n_out, chunks + 1);
}

/* P6.3: a walking session none of whose window entries is left (all at or
 * beyond its next page) still gets one delta with one entry (count >= 1),
 * the window's first, with the window's versions. */
static void test_r55_walking_session_gets_at_least_one_entry(void **state) {
  fx *f = *state;
  walk_fx w;
  walk_setup(f, &w);
  uint32_t c = walk_page(f, &w, 0, 500, 0);
  uint64_t b = 1 + WN;
  walk_dereg(f, &w, c + 7);
  walk_dereg(f, &w, c + 1);
  clear(f);
  close_window(f);
  size_t pos[4];
  assert_int_equal(deltas_to(f, 0, pos, 4), 1);
  udpc_packet p = out_at(f, pos[0]);
  assert_int_equal(p.u.table_delta.base_version, b);
  assert_int_equal(p.u.table_delta.new_version, b + 2);
  assert_int_equal(p.u.table_delta.count, 1);
  assert_string_equal(p.u.table_delta.entries[0].nick.s, w.names[c + 7]);
  assert_int_equal(deltas_to(f, 1, pos, 4), 1);
  assert_int_equal(out_at(f, pos[0]).u.table_delta.count, 2);
}

/* P6.3: a session whose walk reached the end of the table, or whose next
 * page starts beyond every changed entry, gets the shared delta: the same
 * bytes (and id) as every other session but the token. */
static void test_r55_walking_session_finished_walk_gets_everything(
    void **state) {
  fx *f = *state;
  walk_fx w;
  walk_setup(f, &w);
  uint32_t start = 0, id = 600;
  while (start < WN) start += walk_page(f, &w, 0, id++, start);
  uint32_t c = walk_page(f, &w, 1, 700, 0); /* session 1 walks: next c */
  walk_dereg(f, &w, c - 1);                 /* below its next page */
  walk_dereg(f, &w, 3);
  clear(f);
  close_window(f);
  size_t p0[4], p1[4], p2[4];
  assert_int_equal(deltas_to(f, 0, p0, 4), 1);
  assert_int_equal(deltas_to(f, 1, p1, 4), 1);
  assert_int_equal(deltas_to(f, 2, p2, 4), 1);
  const udpc_tsrv_out *o0 = &f->out[p0[0]], *o1 = &f->out[p1[0]],
                      *o2 = &f->out[p2[0]];
  assert_int_equal(out_at(f, p0[0]).u.table_delta.count, 2);
  assert_int_equal(o0->len, o2->len);
  assert_int_equal(o1->len, o2->len);
  const size_t h = UDPC_HEADER_LEN, t = UDPC_HEADER_LEN + UDPC_TOKEN_LEN;
  assert_memory_equal(o0->data, o2->data, h);
  assert_memory_equal(o1->data, o2->data, h);
  assert_memory_equal(o0->data + t, o2->data + t, o2->len - t);
  assert_memory_equal(o1->data + t, o2->data + t, o2->len - t);
  assert_int_equal(f->n_out, WN - 2);
}

/* P6.3 (srv_walk): a late duplicate of an earlier page request (older id)
 * answered after the walk finished does not make it look unfinished; a
 * session that ended and registered again does not keep its old walk (its
 * position and request id): once its client has walked the table, with
 * ids below the old walk's, it gets everything. */
static void test_r55_late_duplicate_page_request_does_not_filter(void **state) {
  fx *f = *state;
  walk_fx w;
  walk_setup(f, &w);
  uint32_t start = 0, id = 600;
  uint32_t c = walk_page(f, &w, 0, id, 0);
  while (start < WN) start += walk_page(f, &w, 0, id++, start);
  (void)walk_page(f, &w, 0, 600, 0); /* the duplicate of the first */
  /* session 1 walks, ends, registers again (new token, same address) */
  (void)walk_page(f, &w, 1, 700, 0);
  walk_dereg(f, &w, 1);
  udpc_addr a1 = pack_addr(1);
  w.tok[1] = reg(f, &a1, w.names[1], 1);
  assert_true(f->next_id < w.id0 + 700); /* the walk's ids are older */
  walk_table(f, &a1, w.tok[1]);
  walk_dereg(f, &w, c + 2);
  clear(f);
  close_window(f);
  size_t pos[4];
  /* both get names[1] and names[c + 2] (filtered: only names[1]) */
  assert_int_equal(deltas_to(f, 0, pos, 4), 1);
  assert_int_equal(out_at(f, pos[0]).u.table_delta.count, 2);
  assert_int_equal(deltas_to(f, 1, pos, 4), 1);
  assert_int_equal(out_at(f, pos[0]).u.table_delta.count, 2);
}

/* The only TABLE_DELTA sent to session k of the last window: its count,
 * versions and token checked; returns it. */
static udpc_packet one_delta_to(const fx *f, unsigned k, uint64_t token,
                                uint64_t base, uint64_t nv, unsigned count) {
  size_t pos[4];
  assert_int_equal(deltas_to(f, k, pos, 4), 1);
  udpc_packet p = out_at(f, pos[0]);
  assert_int_equal(p.token, token);
  assert_int_equal(p.u.table_delta.base_version, base);
  assert_int_equal(p.u.table_delta.new_version, nv);
  assert_int_equal(p.u.table_delta.count, count);
  return p;
}

/* P6.3 "Walking sessions": a session that has not been sent any TABLE_PAGE
 * yet is at position 0 (its client ignores deltas until its walk's first
 * page, R53): for each window it gets one delta with one entry (the
 * window's first) from the window's base to its new version, also when the
 * shared deltas are several chunks, while the others get every entry;
 * after its first TABLE_REQ it is filtered by its walk's position like any
 * walking session, and once its walk reached the end of the table it gets
 * the shared delta. */
static void test_r55_fresh_session_gets_minimal_delta_until_first_page(
    void **state) {
  fx *f = *state;
  walk_fx w;
  walk_setup(f, &w);
  const unsigned z = WN; /* the new session "zzz": sorted last */
  udpc_addr az = pack_addr(z);
  uint64_t tz = reg(f, &az, "zzz", 7);
  clear(f);
  close_window(f); /* its own registration: the window's only entry */
  uint64_t b = 1 + WN;
  one_delta_to(f, z, tz, b, b + 1, 1);
  one_delta_to(f, 0, w.tok[0], b, b + 1, 1);
  b++;
  /* a small window: 3 entries, one of them beyond every first page */
  walk_dereg(f, &w, 5);
  walk_dereg(f, &w, WN - 1);
  walk_dereg(f, &w, 2);
  clear(f);
  close_window(f);
  udpc_packet p = one_delta_to(f, z, tz, b, b + 3, 1);
  assert_string_equal(p.u.table_delta.entries[0].nick.s, w.names[5]);
  for (unsigned k = 0; k < 4; k++)
    if (k != 2) one_delta_to(f, k, w.tok[k], b, b + 3, 3);
  assert_int_equal(f->n_out, WN + 1 - 3);
  b += 3;
  /* a big window: the shared deltas are chained chunks; the new session
   * gets one delta from the first chunk's base to the last chunk's new */
  unsigned nb = 0;
  for (unsigned k = 7; k + 2 < WN; k += 2, nb++) walk_dereg(f, &w, k);
  clear(f);
  close_window(f);
  size_t pos[16];
  size_t chunks = deltas_to(f, 0, pos, 16);
  assert_true(chunks >= 2);
  assert_int_equal(out_at(f, pos[0]).u.table_delta.base_version, b);
  assert_int_equal(out_at(f, pos[chunks - 1]).u.table_delta.new_version,
                   b + nb);
  p = one_delta_to(f, z, tz, b, b + nb, 1);
  assert_string_equal(p.u.table_delta.entries[0].nick.s, w.names[7]);
  b += nb;
  /* its first TABLE_REQ: now walking, its next page starts at c */
  uint32_t c = page_req(f, &az, tz, 500, 0);
  assert_true(c > 8 && c + 4 < WN);
  unsigned hi = (c + 2) & ~1u; /* > c, even: still online */
  walk_dereg(f, &w, 4);
  walk_dereg(f, &w, hi);
  walk_dereg(f, &w, 6);
  clear(f);
  close_window(f);
  p = one_delta_to(f, z, tz, b, b + 3, 2);
  assert_string_equal(p.u.table_delta.entries[0].nick.s, w.names[4]);
  assert_string_equal(p.u.table_delta.entries[1].nick.s, w.names[6]);
  one_delta_to(f, 0, w.tok[0], b, b + 3, 3);
  b += 3;
  /* its walk reaches the end of the table: the shared delta */
  uint32_t start = c, id = 501;
  while (start < WN + 1) start += page_req(f, &az, tz, id++, start);
  walk_dereg(f, &w, hi + 2);
  walk_dereg(f, &w, 8);
  clear(f);
  close_window(f);
  one_delta_to(f, z, tz, b, b + 2, 2);
  one_delta_to(f, 0, w.tok[0], b, b + 2, 2);
  size_t pz[4], p0[4];
  assert_int_equal(deltas_to(f, z, pz, 4), 1);
  assert_int_equal(deltas_to(f, 0, p0, 4), 1);
  const udpc_tsrv_out *oz = &f->out[pz[0]], *o0 = &f->out[p0[0]];
  const size_t h = UDPC_HEADER_LEN, t = UDPC_HEADER_LEN + UDPC_TOKEN_LEN;
  assert_int_equal(oz->len, o0->len);
  assert_memory_equal(oz->data, o0->data, h); /* one chunk: one id */
  assert_memory_equal(oz->data + t, o0->data + t, o0->len - t);
}

/* P6.3: the position 0 of a new session, and a walk's position, belong to
 * the session: a session that had walked the whole table, ended (DEREG)
 * and registered again, and a session whose nick is taken over from
 * another address, are new sessions (one entry per window); one whose
 * walk was in progress when it ended starts anew: new (not at its old
 * position), then placed by its first TABLE_REQ even if that id is older
 * than its old walk's (the old id is forgotten). A REGISTER repeated from
 * the live session (same token) keeps the session: a new one stays new,
 * one that was sent pages is not walking any more (full deltas). */
static void test_r55_fresh_flag_ends_with_session(void **state) {
  fx *f = *state;
  walk_fx w;
  walk_setup(f, &w);
  uint32_t c = walk_page(f, &w, 1, 700, 0);         /* 1 walks: next page c */
  assert_int_equal(walk_page(f, &w, 2, 700, 0), c); /* so does 2 */
  assert_true(c > 12 && c + 6 < WN);
  walk_dereg(f, &w, 0); /* walked the whole table */
  walk_dereg(f, &w, 1); /* walking */
  udpc_addr a0 = pack_addr(0), a1 = pack_addr(1), a2 = pack_addr(2);
  uint64_t t0 = reg(f, &a0, w.names[0], 0);
  uint64_t t1 = reg(f, &a1, w.names[1], 1);
  assert_true(t0 != w.tok[0] && t1 != w.tok[1]);
  w.tok[0] = t0;
  w.tok[1] = t1;
  /* 3 (walked the whole table) taken over from another address */
  const unsigned n3 = WN + 1;
  udpc_addr a3 = pack_addr(n3);
  uint64_t t3 = reg(f, &a3, w.names[3], 3);
  assert_true(t3 != w.tok[3]);
  /* REGISTER again from the live sessions: 2 (walking), the new "zzz" */
  assert_true(reg(f, &a2, w.names[2], 2) == w.tok[2]);
  const unsigned z = WN;
  udpc_addr az = pack_addr(z);
  uint64_t tz = reg(f, &az, "zzz", 9);
  assert_true(reg(f, &az, "zzz", 9) == tz);
  clear(f);
  close_window(f);
  size_t pos[4];
  assert_int_equal(deltas_to(f, 4, pos, 4), 1);
  uint64_t b = out_at(f, pos[0]).u.table_delta.new_version;
  clear(f);
  walk_dereg(f, &w, 5);
  walk_dereg(f, &w, c + 2);
  walk_dereg(f, &w, 7);
  clear(f);
  close_window(f);
  udpc_packet p = one_delta_to(f, 4, w.tok[4], b, b + 3, 3);
  assert_string_equal(p.u.table_delta.entries[0].nick.s, w.names[5]);
  assert_string_equal(p.u.table_delta.entries[1].nick.s, w.names[c + 2]);
  assert_string_equal(p.u.table_delta.entries[2].nick.s, w.names[7]);
  one_delta_to(f, 2, w.tok[2], b, b + 3, 3); /* not walking any more */
  /* new sessions: one entry (at position c, 1 would get 2) */
  p = one_delta_to(f, 0, t0, b, b + 3, 1);
  assert_string_equal(p.u.table_delta.entries[0].nick.s, w.names[5]);
  one_delta_to(f, 1, t1, b, b + 3, 1);
  one_delta_to(f, n3, t3, b, b + 3, 1);
  one_delta_to(f, z, tz, b, b + 3, 1);
  assert_int_equal(deltas_to(f, 3, pos, 4), 0); /* the ended session */
  b += 3;
  /* 1's first TABLE_REQ, older than its old walk's: next page c */
  assert_int_equal(walk_page(f, &w, 1, 650, 0), c);
  walk_dereg(f, &w, 9);
  walk_dereg(f, &w, c + 4);
  walk_dereg(f, &w, 11);
  clear(f);
  close_window(f);
  p = one_delta_to(f, 1, t1, b, b + 3, 2);
  assert_string_equal(p.u.table_delta.entries[0].nick.s, w.names[9]);
  assert_string_equal(p.u.table_delta.entries[1].nick.s, w.names[11]);
  one_delta_to(f, 0, t0, b, b + 3, 1);
  one_delta_to(f, 4, w.tok[4], b, b + 3, 3);
}

/* ---- Compact records (memory per registered client) ---------------------- */

/* R72 R45 (P8.3): the token map keeps live and ended tokens through many
 * growths and deletions: per nick, a taken-over session's token gets
 * SESSION_ENDED from its own address only (dropped from another, also while
 * a newer session is live), and is forgotten (BAD_SESSION) once another
 * session of the nick ends. */
static void test_r72_token_map_live_and_ended_tokens_at_scale(void **state) {
  fx *f = *state;
  enum { N = 700 };
  static uint64_t t1[N], t2[N];
  for (unsigned i = 0; i < N; i++) {
    char name[8] = "n000";
    name[1] = (char)('0' + i / 100);
    name[2] = (char)('0' + i / 10 % 10);
    name[3] = (char)('0' + i % 10);
    udpc_addr a1 = udpc_tsrv_addr_wide(i), a2 = udpc_tsrv_addr_wide(i + N);
    t1[i] = reg(f, &a1, name, 1);
    t2[i] = reg(f, &a2, name, 1); /* takes over: t1 ended (at a1) */
  }
  udpc_server_stats st0 = stats(f);
  for (unsigned i = 0; i < N; i++) {
    udpc_addr a1 = udpc_tsrv_addr_wide(i), a2 = udpc_tsrv_addr_wide(i + N);
    udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, i, t1[i]);
    clear(f);
    feed(f, &a1, &hb);
    assert_int_equal(only_out(f, &a1).u.error.code, UDPC_ERROR_SESSION_ENDED);
    clear(f);
    feed(f, &a2, &hb); /* the ended token from another address */
    assert_int_equal(f->n_out, 0);
    hb.token = t2[i];
    feed(f, &a2, &hb);
    assert_int_equal(only_out(f, &a2).type, UDPC_PT_HEARTBEAT_ACK);
  }
  assert_int_equal(stats(f).dropped_bad_session - st0.dropped_bad_session,
                   2 * N);
  /* Every other nick deregisters: t2 ended, t1 forgotten. */
  for (unsigned i = 0; i < N; i += 2) {
    udpc_addr a2 = udpc_tsrv_addr_wide(i + N);
    udpc_packet d = pkt(UDPC_PT_DEREG, i, t2[i]);
    clear(f);
    feed(f, &a2, &d);
    flush_ok(f);
    assert_int_equal(count_out(f, UDPC_PT_DEREG_RESULT, &a2), 1);
  }
  for (unsigned i = 0; i < N; i++) {
    udpc_addr a1 = udpc_tsrv_addr_wide(i), a2 = udpc_tsrv_addr_wide(i + N);
    udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, i, t1[i]);
    clear(f);
    feed(f, &a1, &hb);
    assert_int_equal(only_out(f, &a1).u.error.code,
                     i % 2 ? UDPC_ERROR_SESSION_ENDED : UDPC_ERROR_BAD_SESSION);
    hb.token = t2[i];
    clear(f);
    feed(f, &a2, &hb);
    if (i % 2)
      assert_int_equal(only_out(f, &a2).type, UDPC_PT_HEARTBEAT_ACK);
    else
      assert_int_equal(only_out(f, &a2).u.error.code, UDPC_ERROR_SESSION_ENDED);
  }
}

/* R51 P7 (store): more records change in one batch than the dirty list
 * holds (4096 sessions time out at once): every record is still written
 * before the commit, and all leave the table as OFFLINE. */
static void test_more_dirty_records_than_the_list_all_written(void **state) {
  fx *f = *state;
  enum { N = 4200 };
  f->cfg.count_past_max = 1; /* the early window emission is large */
  for (unsigned i = 0; i < N; i++) {
    udpc_addr a = udpc_tsrv_addr_wide(i);
    char name[8] = "d0000";
    name[1] = (char)('0' + i / 1000);
    name[2] = (char)('0' + i / 100 % 10);
    name[3] = (char)('0' + i / 10 % 10);
    name[4] = (char)('0' + i % 10);
    reg(f, &a, name, 1);
  }
  close_window(f);
  clear(f);
  advance(f, 30000); /* all silent for 30 s: one batch of N changes */
  assert_int_equal(stats(f).online, 0);
  flush_ok(f);
  unsigned offline = 0;
  for (unsigned i = 0; i < N; i++) {
    char name[8] = "d0000";
    name[1] = (char)('0' + i / 1000);
    name[2] = (char)('0' + i / 100 % 10);
    name[3] = (char)('0' + i / 10 % 10);
    name[4] = (char)('0' + i % 10);
    udpc_nick n = nk(name);
    udpc_store_user u;
    assert_int_equal(udpc_store_user_get(f->st, &n, &u), UDPC_OK);
    offline += u.status == UDPC_STATUS_OFFLINE;
  }
  assert_int_equal(offline, N);
}

static void test_new_rejects_bad_config(void **state) {
  (void)state;
  udpc_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  assert_null(udpc_server_new(NULL, T0));
  assert_null(udpc_server_new(&cfg, T0)); /* no store, no send */
  udpc_store *st = udpc_store_mem_new();
  cfg.store = st;
  cfg.io.send = udpc_tsrv_cap_send;
  static const char *const bad[] = {"no spaces"};
  cfg.operators = bad;
  cfg.n_operators = 1;
  assert_null(udpc_server_new(&cfg, T0));
  cfg.n_operators = 0;
  udpc_server *s = udpc_server_new(&cfg, T0);
  assert_non_null(s);
  assert_int_equal(udpc_server_next_deadline(s), UINT64_MAX);
  assert_int_equal(udpc_server_flush(s, T0), UDPC_OK);
  udpc_server_free(s);
  udpc_server_free(NULL);
  udpc_store_free(st);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_register_without_cookie_gets_only_smaller_cookie_no_state),
      T(test_register_forged_cookie_gets_fresh_cookie_no_state),
      T(test_register_cookie_valid_two_buckets_then_expired),
      T(test_register_ok_welcome_held_until_commit),
      T(test_register_duplicate_nick_other_credential_nick_taken),
      T(test_register_same_credential_new_address_takes_over_old_ended),
      T(test_register_retransmit_same_address_keeps_token),
      T(test_register_invalid_nick_answer_not_larger_than_request),
      T(test_register_server_full),
      T(test_restart_loads_users_offline_old_tokens_bad_session),
      T(test_restart_with_fewer_max_clients_loads_all),
      T(test_r52_table_paging_45_clients_sorted_packed),
      T(test_delta_sent_only_to_online_clients),
      T(test_r58_heartbeat_ack_carries_published_version),
      T(test_heartbeat_timeout_marks_offline_with_delta),
      T(test_dereg_ok_then_ended_token_session_ended),
      T(test_deregA_by_non_operator_not_permitted),
      T(test_deregA_by_operator_kicks_target),
      T(test_save_to_offline_saved_once_when_sent_five_times),
      T(test_save_unknown_recipient),
      T(test_save_sender_gone_during_probe_nothing_stored),
      T(test_save_reused_msg_id_other_text_is_new_message),
      T(test_save_to_online_probe_ack_gives_recipient_online_entry),
      T(test_save_probe_unanswered_resent_then_offline_delta_saved),
      T(test_save_probe_timeout_after_recipient_reregistered_not_stored),
      T(test_save_quota_per_recipient_and_total),
      T(test_mail_delivery_in_order_paged_deleted_only_on_ack),
      T(test_forged_token_and_wrong_address_dropped_and_counted),
      T(test_server_to_client_types_dropped_and_counted),
      T(test_malformed_request_error_only_when_not_larger),
      T(test_commit_failure_sends_no_ack_retransmit_succeeds),
      T(test_commit_failure_on_save_no_ack_and_stored_once),
      T(test_malformed_truncations_of_every_packet_never_crash),
      T(test_random_datagrams_fixed_seed_never_crash),
      T(test_debug_log_every_packet_in_and_out_and_drop_reasons),
      T(test_log_limit_info_builds_no_debug_lines),
      T(test_deregA_operator_may_kick_itself),
      T(test_save_to_self_probes_self_recipient_online),
      T(test_probes_capped_at_1024_excess_save_dropped),
      T(test_probe_timeout_commit_failure_no_saved_then_stored_once),
      T(test_r55_delta_only_after_window_and_flush),
      T(test_r55_failed_commit_never_emits_uncommitted),
      T(test_r55_clock_step_back_closes_the_window),
      T(test_r55_early_emission_at_4096_distinct_entries),
      T(test_r52_r55_pages_and_deltas_full_to_1200_bytes),
      T(test_r55_walking_session_delta_leaves_out_entries_its_walk_will_read),
      T(test_r55_walking_session_merged_chunks_first_base_last_new),
      T(test_r55_walking_session_gets_at_least_one_entry),
      T(test_r55_walking_session_finished_walk_gets_everything),
      T(test_r55_late_duplicate_page_request_does_not_filter),
      T(test_r55_fresh_session_gets_minimal_delta_until_first_page),
      T(test_r55_fresh_flag_ends_with_session),
      T(test_r72_token_map_live_and_ended_tokens_at_scale),
      T(test_more_dirty_records_than_the_list_all_written),
      cmocka_unit_test(test_new_rejects_bad_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
