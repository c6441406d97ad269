/*
 * test_security.c - the attacker's view of the cores (SECURITY.md,
 * PROTOCOL.md P9): per-source and per-session rate limits, the bounded
 * source table, the log limiter, cookies bound to address+port+nick and
 * time, credentials stored only as salted keyed hashes, forged deregA, the
 * amplification rule under random floods, and a client that accepts
 * server packets only from its server with its token, CHAT only from the
 * table address and CHAT_ACK only for a chat it sent to that peer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <cmocka.h>

#include "udpc_client.h"
#include "udpc_store.h"
#include "udpc_wire.h"
#include "udpchat.h"

#define UDPC_TSRV_SHORT_NAMES
#include "udpc_tcli.h"
#include "udpc_tsrv.h"

/* ======================================================================
 * Server fixture (support/udpc_tsrv.h); sends past the capacity of f->out
 * are counted, not kept.
 * ====================================================================== */
typedef struct {
  uint32_t max_clients, source_rate, source_burst, session_rate, session_burst;
} srv_opts;

static fx *fx_new(const srv_opts *o) {
  udpc_tsrv_cfg cfg = {.seed_mul = 11, .seed_add = 3, .count_past_max = 1};
  if (o) {
    cfg.max_clients = o->max_clients;
    cfg.source_rate = o->source_rate;
    cfg.source_burst = o->source_burst;
    cfg.session_rate = o->session_rate;
    cfg.session_burst = o->session_burst;
  }
  return udpc_tsrv_new(&cfg);
}

static void fx_free(fx *f) { udpc_tsrv_free(f); }

static int setup(void **state) {
  *state = fx_new(NULL);
  return 0;
}

static udpc_addr A(unsigned n) { return udpc_tsrv_addr_wide(n); }

/* ---- Per-source rate limit ---------------------------------------------- */

/* R87: 150 REGISTERs from one address at one instant: the first 100 (the
 * burst) get a COOKIE, the other 50 are dropped unanswered and counted;
 * 1 s later 50 more pass (the rate). */
static void test_source_rate_limit_burst_then_rate_drops_counted(void **state) {
  fx *f = *state;
  udpc_addr x = A(7);
  for (int i = 0; i < 150; i++) {
    udpc_packet r = reg_pkt("flood", 1, (uint32_t)i, NULL, 0);
    feed(f, &x, &r);
  }
  assert_int_equal(count_out(f, UDPC_PT_COOKIE, &x), 100);
  assert_int_equal(f->n_out, 100);
  assert_int_equal(stats(f).dropped_rate_limited, 50);
  clear(f);
  f->now += 1000;
  for (int i = 0; i < 80; i++) {
    udpc_packet r = reg_pkt("flood", 1, (uint32_t)i, NULL, 0);
    feed(f, &x, &r);
  }
  assert_int_equal(f->n_out, 50);
  assert_int_equal(stats(f).dropped_rate_limited, 80);
  /* Each source has its own bucket: another address is served at once. */
  udpc_addr y = A(8);
  (void)reg(f, &y, "legit", 2);
  assert_int_equal(stats(f).online, 1);
  /* Undecodable datagrams count against the bucket too, unanswered. */
  clear(f);
  uint8_t junk[3] = {1, 2, 3};
  feed_raw(f, &x, junk, sizeof junk);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(stats(f).dropped_rate_limited, 81);
  assert_int_equal(stats(f).dropped_malformed, 0);
}

/* R87: the drop is logged once per flooding episode of a source, at
 * warning level, naming the limit. */
static void test_source_rate_limit_logged_once_per_episode(void **state) {
  fx *f = *state;
  udpc_addr x = A(9);
  uint8_t junk[8] = {1, 0x7e, 0, 0, 0, 1, 0, 0};
  for (int i = 0; i < 1000; i++) feed_raw(f, &x, junk, sizeof junk);
  assert_int_equal(stats(f).dropped_rate_limited, 900);
  assert_int_equal(f->n_lines, 1);
  assert_true(has_line(f, "1 limit: source 10.0.0.9:40009 over 50 "
                          "datagrams/s (burst 100): dropping"));
}

/* R88: a live session's datagrams are charged to the session, not to its
 * address: junk spoofed from the session's address exhausts the address's
 * bucket but the session keeps working; the session's own bucket holds
 * 2000 and refills at 1000/s; a new session starts full. */
static void test_session_bucket_separate_from_source_bucket(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  uint64_t ta = reg(f, &a, "alice", 1);
  uint8_t junk[4] = {1, 2, 3, 4};
  for (int i = 0; i < 200; i++) feed_raw(f, &a, junk, sizeof junk);
  assert_true(stats(f).dropped_rate_limited >= 100);
  clear(f);
  udpc_packet hb = pkt(UDPC_PT_HEARTBEAT, 5, ta);
  feed(f, &a, &hb);
  assert_int_equal(only_out(f, &a).type, UDPC_PT_HEARTBEAT_ACK);
  clear(f);
  for (uint32_t i = 0; i < 2100; i++) {
    hb.id = i;
    feed(f, &a, &hb);
  }
  /* 1 already spent above: 1999 of these pass. */
  assert_int_equal(f->n_out, 1999);
  assert_int_equal(stats(f).dropped_session_rate_limited, 101);
  assert_true(has_line(f, "limit: session of alice at 10.0.0.1:40001 over "
                          "1000 datagrams/s (burst 2000): dropping"));
  clear(f);
  f->now += 10; /* 10 ms at 1000/s: 10 more */
  for (uint32_t i = 0; i < 20; i++) {
    hb.id = i;
    feed(f, &a, &hb);
  }
  assert_int_equal(f->n_out, 10);
  assert_int_equal(stats(f).online, 1);
}

/* R87: rates and bursts are configurable; UINT32_MAX disables a class. */
static void test_rate_limit_configurable_and_can_be_disabled(void **state) {
  (void)state;
  srv_opts o = {0, 5, 2, UINT32_MAX, 0};
  fx *f = fx_new(&o);
  udpc_addr x = A(3);
  for (int i = 0; i < 10; i++) {
    udpc_packet r = reg_pkt("a", 1, (uint32_t)i, NULL, 0);
    feed(f, &x, &r);
  }
  assert_int_equal(f->n_out, 2);
  clear(f);
  f->now += 200; /* 5/s: one more after 200 ms */
  for (int i = 0; i < 10; i++) {
    udpc_packet r = reg_pkt("a", 1, (uint32_t)i, NULL, 0);
    feed(f, &x, &r);
  }
  assert_int_equal(f->n_out, 1);
  fx_free(f);
  srv_opts off = {0, UINT32_MAX, 0, UINT32_MAX, 0};
  f = fx_new(&off);
  for (int i = 0; i < 5000; i++) {
    udpc_packet r = reg_pkt("a", 1, (uint32_t)i, NULL, 0);
    feed(f, &x, &r);
  }
  assert_int_equal(f->n_out, 5000);
  assert_int_equal(stats(f).dropped_rate_limited, 0);
  fx_free(f);
}

/* R87: the clock stepping back refills nothing and breaks nothing. */
static void test_rate_limit_clock_step_back(void **state) {
  fx *f = *state;
  udpc_addr x = A(4);
  uint8_t junk[2] = {0, 0};
  for (int i = 0; i < 100; i++) feed_raw(f, &x, junk, sizeof junk);
  f->now -= 3600 * 1000;
  feed_raw(f, &x, junk, sizeof junk);
  assert_int_equal(stats(f).dropped_rate_limited, 1);
  f->now += 1000; /* a second after the step: 50 again */
  for (int i = 0; i < 60; i++) feed_raw(f, &x, junk, sizeof junk);
  assert_int_equal(stats(f).dropped_rate_limited, 11);
}

/* R89: memory stays bounded whatever arrives: 20,000 spoofed sources fill
 * the 4096-slot table and then reuse its oldest entries; each new source
 * gets a full bucket (a spoofer gains nothing it could not send itself). */
static void test_source_table_bounded_oldest_evicted(void **state) {
  fx *f = *state;
  uint8_t junk[1] = {0};
  for (unsigned i = 0; i < 20000; i++) {
    udpc_addr x = A(100000 + i);
    feed_raw(f, &x, junk, sizeof junk);
    if (i % 100 == 0) f->now++;
  }
  udpc_server_stats st = stats(f);
  assert_int_equal(st.dropped_rate_limited, 0);
  assert_true(st.sources_evicted >= 20000 - 4096);
  assert_true(st.sources_evicted < 20000);
  assert_int_equal(st.dropped_malformed, 20000);
}

/* ---- Log limiter ---------------------------------------------------------- */

/* R90: 1000 sources over their limit want 1000 warning lines: at most 10
 * per second are written, then "suppressed 990 messages". */
static void test_log_lines_rate_limited_with_suppressed_summary(void **state) {
  fx *f = *state;
  uint8_t junk[1] = {0};
  for (unsigned i = 0; i < 1000; i++) {
    udpc_addr x = A(200000 + i);
    for (int k = 0; k < 101; k++) feed_raw(f, &x, junk, sizeof junk);
  }
  assert_int_equal(stats(f).dropped_rate_limited, 1000);
  assert_int_equal(f->n_lines, 10);
  assert_int_equal(stats(f).log_suppressed, 990);
  f->now += 1000;
  flush_ok(f);
  assert_int_equal(f->n_lines, 11);
  assert_true(
      has_line(f, "1 log: suppressed 990 messages (at most 10 per second)"));
  /* Nothing more to say: no further summary. */
  f->now += 5000;
  flush_ok(f);
  udpc_server_handle_expiry(f->s, f->now);
  assert_int_equal(f->n_lines, 11);
}

/* ---- Caps: each a clear error or a counted drop -------------------------- */

/* R89: max_clients -> SERVER_FULL (counted, logged); mail quota -> QUOTA
 * (counted). */
static void test_caps_server_full_and_quota_counted(void **state) {
  (void)state;
  srv_opts o = {2, 0, 0, 0, 0};
  fx *f = fx_new(&o);
  udpc_addr a = A(1), b = A(2), c = A(3);
  uint64_t ta = reg(f, &a, "a", 1);
  uint64_t tb = reg(f, &b, "b", 2);
  udpc_packet ck = get_cookie(f, &c, "c", 3);
  udpc_packet r = reg_with(f, &c, "c", 3, &ck);
  assert_int_equal(r.u.reg_result.status, UDPC_REG_SERVER_FULL);
  assert_int_equal(stats(f).refused_server_full, 1);
  assert_true(has_line(f, "limit: 2 registered nicks: REGISTER of c refused "
                          "(SERVER_FULL)"));
  udpc_packet d = pkt(UDPC_PT_DEREG, 1, tb);
  feed(f, &b, &d);
  flush_ok(f);
  for (uint32_t i = 0; i <= 1000; i++) {
    clear(f);
    udpc_packet sv = pkt(UDPC_PT_SAVE, 10 + i, ta);
    sv.u.save.to = nk("b");
    sv.u.save.msg_id = i;
    sv.u.save.text.p = (const uint8_t *)"m";
    sv.u.save.text.len = 1;
    feed(f, &a, &sv);
    flush_ok(f);
    assert_int_equal(only_out(f, &a).u.save_result.status,
                     i < 1000 ? UDPC_SAVE_SAVED : UDPC_SAVE_QUOTA);
  }
  assert_int_equal(stats(f).refused_quota, 1);
  fx_free(f);
}

/* R89: pending probes are capped at 1024 (sessions unlimited here so one
 * sender can reach the cap); the excess SAVE is a counted drop. */
static void test_caps_probes_full_counted(void **state) {
  (void)state;
  srv_opts o = {0, 0, 0, UINT32_MAX, 0};
  fx *f = fx_new(&o);
  udpc_addr a = A(1), b = A(2);
  uint64_t ta = reg(f, &a, "a", 1);
  (void)reg(f, &b, "b", 2);
  for (uint32_t i = 0; i < 1030; i++) {
    udpc_packet sv = pkt(UDPC_PT_SAVE, i, ta);
    sv.u.save.to = nk("b");
    sv.u.save.msg_id = i;
    sv.u.save.text.p = (const uint8_t *)"x";
    sv.u.save.text.len = 1;
    feed(f, &a, &sv);
  }
  assert_int_equal(stats(f).dropped_probes_full, 6);
  assert_true(has_line(f, "limit: 1024 probes pending: SAVE from a dropped"));
  fx_free(f);
}

/* ---- Cookies -------------------------------------------------------------- */

/* R42: a cookie is bound to the address, the port, the nick and the time
 * bucket: any change gets a fresh COOKIE and no state; a tampered tag too;
 * it is accepted in its bucket and the next one, not later. */
static void test_cookie_bound_to_address_port_nick_and_time(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), other_ip = A(1), other_port = A(1);
  other_ip.ip[3] = 99;
  other_port.port = 1;
  udpc_packet ck = get_cookie(f, &a, "alice", 1);
  assert_int_equal(reg_with(f, &other_ip, "alice", 1, &ck).type,
                   UDPC_PT_COOKIE);
  assert_int_equal(reg_with(f, &other_port, "alice", 1, &ck).type,
                   UDPC_PT_COOKIE);
  assert_int_equal(reg_with(f, &a, "alicf", 1, &ck).type, UDPC_PT_COOKIE);
  udpc_packet bad = ck;
  bad.u.cookie.cookie[19] ^= 1;
  assert_int_equal(reg_with(f, &a, "alice", 1, &bad).type, UDPC_PT_COOKIE);
  /* Another bucket number with the same tag. */
  bad = ck;
  bad.u.cookie.cookie[3] ^= 1;
  assert_int_equal(reg_with(f, &a, "alice", 1, &bad).type, UDPC_PT_COOKIE);
  assert_int_equal(stats(f).registered, 0);
  /* Next bucket: still valid. Two buckets later: expired. */
  f->now += UDPC_T_COOKIE_BUCKET;
  udpc_packet ok = reg_with(f, &a, "alice", 1, &ck);
  assert_int_equal(ok.type, UDPC_PT_REGISTER_RESULT);
  assert_int_equal(ok.u.reg_result.status, UDPC_REG_OK);
  udpc_addr b = A(2);
  udpc_packet ckb = get_cookie(f, &b, "bob", 2);
  f->now += 2 * UDPC_T_COOKIE_BUCKET;
  assert_int_equal(reg_with(f, &b, "bob", 2, &ckb).type, UDPC_PT_COOKIE);
  assert_int_equal(stats(f).registered, 1);
}

/* R42: the key is the server's own: a cookie of another server (another
 * seed) does not verify. */
static void test_cookie_of_another_server_rejected(void **state) {
  fx *f = *state;
  udpc_addr a = A(1);
  udpc_packet ck = get_cookie(f, &a, "alice", 1);
  fx *g = fx_new(NULL);
  udpc_server_free(g->s);
  udpc_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  memset(cfg.seed, 0x42, sizeof cfg.seed);
  cfg.store = g->st;
  cfg.io.ctx = g;
  cfg.io.send = udpc_tsrv_cap_send;
  g->s = udpc_server_new(&cfg, g->now);
  assert_non_null(g->s);
  assert_int_equal(reg_with(g, &a, "alice", 1, &ck).type, UDPC_PT_COOKIE);
  fx_free(g);
}

/* ---- Credentials ----------------------------------------------------------- */

typedef struct {
  udpc_store_user u[4];
  size_t n;
} users;

static int collect(void *ctx, const udpc_store_user *u) {
  users *us = ctx;
  if (us->n < 4) us->u[us->n++] = *u;
  return 0;
}

/* R47: the store holds a salted keyed hash, never the credential; two
 * nicks with the same credential get different salts and hashes; the hash
 * is not the plain (unkeyed) BLAKE2b of the credential. */
static void test_credentials_stored_only_as_salted_hashes(void **state) {
  fx *f = *state;
  udpc_addr a = A(1), b = A(2);
  (void)reg(f, &a, "alice", 0x77);
  (void)reg(f, &b, "bob", 0x77);
  users us;
  memset(&us, 0, sizeof us);
  assert_int_equal(udpc_store_user_foreach(f->st, collect, &us), UDPC_OK);
  assert_int_equal(us.n, 2);
  uint8_t cred[UDPC_CRED_LEN];
  memset(cred, 0x77, sizeof cred);
  uint8_t plain[UDPC_STORE_HASH_LEN];
  crypto_generichash(plain, sizeof plain, cred, sizeof cred, NULL, 0);
  for (size_t i = 0; i < us.n; i++) {
    const uint8_t *rec = (const uint8_t *)&us.u[i];
    /* No 8-byte run of the credential anywhere in the record. */
    for (size_t k = 0; k + 8 <= sizeof us.u[i]; k++) {
      static const uint8_t run[8] = {0x77, 0x77, 0x77, 0x77,
                                     0x77, 0x77, 0x77, 0x77};
      assert_true(memcmp(rec + k, run, 8) != 0);
    }
    assert_true(memcmp(us.u[i].cred_hash, plain, sizeof plain) != 0);
    uint8_t want[UDPC_STORE_HASH_LEN];
    crypto_generichash(want, sizeof want, cred, sizeof cred, us.u[i].salt,
                       sizeof us.u[i].salt);
    assert_memory_equal(us.u[i].cred_hash, want, sizeof want);
  }
  assert_true(memcmp(us.u[0].salt, us.u[1].salt, sizeof us.u[0].salt) != 0);
  assert_true(memcmp(us.u[0].cred_hash, us.u[1].cred_hash,
                     sizeof us.u[0].cred_hash) != 0);
  /* The wrong credential cannot take a nick, from any address. */
  udpc_addr evil = A(66);
  udpc_packet ck = get_cookie(f, &evil, "alice", 0x78);
  udpc_packet r = reg_with(f, &evil, "alice", 0x78, &ck);
  assert_int_equal(r.u.reg_result.status, UDPC_REG_NICK_TAKEN);
  assert_int_equal(r.u.reg_result.token, 0);
}

/* ---- deregA: operators are authenticated ---------------------------------- */

/* R91: DEREG_OTHER acts only for a live operator session (its token, from
 * its address). Forged from the operator's address with guessed tokens:
 * BAD_SESSION (7 bytes) and counted; with the real token from elsewhere:
 * dropped silently and counted; a non-operator's own session:
 * NOT_PERMITTED; the operator's ended token: SESSION_ENDED. The target
 * stays online throughout. */
static void test_forged_dereg_other_dropped_and_counted(void **state) {
  fx *f = *state;
  udpc_addr o = A(1), t = A(2), m = A(3), evil = A(66);
  uint64_t to = reg(f, &o, "op", 1);
  (void)reg(f, &t, "target", 2);
  uint64_t tm = reg(f, &m, "mallory", 3);
  udpc_server_stats s0 = stats(f);
  udpc_packet d = pkt(UDPC_PT_DEREG_OTHER, 77, 0);
  d.u.dereg_other.target = nk("target");
  for (uint64_t g = 1; g <= 50; g++) {
    clear(f);
    d.token = to ^ (g * 0x9e3779b97f4a7c15ULL); /* guesses, never right */
    size_t len = feed(f, &o, &d);
    flush_ok(f);
    udpc_packet e = only_out(f, &o);
    assert_int_equal(e.type, UDPC_PT_ERROR);
    assert_int_equal(e.u.error.code, UDPC_ERROR_BAD_SESSION);
    assert_true(f->out[0].len <= len);
  }
  assert_int_equal(stats(f).dropped_bad_session, s0.dropped_bad_session + 50);
  clear(f);
  d.token = to;
  feed(f, &evil, &d);
  flush_ok(f);
  assert_int_equal(f->n_out, 0);
  assert_int_equal(stats(f).dropped_bad_session, s0.dropped_bad_session + 51);
  assert_int_equal(stats(f).online, 3);
  /* mallory names herself nothing: not an operator. */
  clear(f);
  d.token = tm;
  feed(f, &m, &d);
  flush_ok(f);
  assert_int_equal(only_out(f, &m).u.dereg_result.status,
                   UDPC_DEREG_NOT_PERMITTED);
  /* The operator leaves; its old token no longer kicks anyone. */
  clear(f);
  udpc_packet dr = pkt(UDPC_PT_DEREG, 5, to);
  feed(f, &o, &dr);
  flush_ok(f);
  clear(f);
  d.token = to;
  feed(f, &o, &d);
  flush_ok(f);
  udpc_packet e = only_out(f, &o);
  assert_int_equal(e.u.error.code, UDPC_ERROR_SESSION_ENDED);
  assert_int_equal(stats(f).online, 2);
  assert_int_equal(count_out(f, UDPC_PT_KICKED, NULL), 0);
}

/* R13 R41 R87: a random flood from 100 unvalidated sources (random bytes,
 * REGISTERs, forged tokens): no source ever receives more bytes or more
 * datagrams than it sent, and no state is created. */
static void test_random_flood_never_amplifies_and_keeps_no_state(void **state) {
  fx *f = *state;
  enum { NSRC = 100 };
  static uint64_t in_b[NSRC], out_b[NSRC], in_n[NSRC], out_n[NSRC];
  memset(in_b, 0, sizeof in_b);
  memset(out_b, 0, sizeof out_b);
  memset(in_n, 0, sizeof in_n);
  memset(out_n, 0, sizeof out_n);
  uint32_t x = 99;
  static uint8_t buf[UDPC_MAX_PACKET + 4];
  for (int i = 0; i < 60000; i++) {
    x = x * 1103515245u + 12345u;
    unsigned src = (x >> 8) % NSRC;
    udpc_addr from = A(300000 + src);
    size_t len;
    int kind = (int)((x >> 20) % 4);
    if (kind == 0) {
      udpc_packet r = reg_pkt("zed", (uint8_t)x, (uint32_t)i, NULL, 0);
      if (x & 0x100) {
        r.u.reg.cookie_len = 20;
        memset(r.u.reg.cookie, (int)x, 20);
      }
      len = (size_t)udpc_wire_encode(&r, buf, sizeof buf);
    } else if (kind == 1) {
      udpc_packet h = pkt(UDPC_PT_TABLE_REQ, (uint32_t)i, (uint64_t)x * 7919);
      len = (size_t)udpc_wire_encode(&h, buf, sizeof buf);
    } else {
      len = (x >> 4) % (kind == 2 ? 16 : sizeof buf);
      for (size_t k = 0; k < len; k++) {
        x = x * 1103515245u + 12345u;
        buf[k] = (uint8_t)(x >> 16);
      }
      if (len >= 2) buf[0] = 1;
    }
    in_b[src] += len;
    in_n[src]++;
    clear(f);
    feed_raw(f, &from, buf, len);
    for (size_t k = 0; k < f->n_out; k++) {
      assert_true(udpc_addr_equal(&f->out[k].to, &from));
      out_b[src] += f->out[k].len;
      out_n[src]++;
      assert_true(f->out[k].len <= len); /* per datagram */
    }
    if (i % 1000 == 0) {
      f->now += 100;
      flush_ok(f);
    }
  }
  for (unsigned k = 0; k < NSRC; k++) {
    assert_true(out_b[k] <= in_b[k]);
    assert_true(out_n[k] <= in_n[k]);
  }
  assert_int_equal(stats(f).registered, 0);
  assert_true(stats(f).dropped_rate_limited > 0);
}

/* ======================================================================
 * Client: what it accepts, from whom
 * ====================================================================== */
#define TOKEN UDPC_TCLI_TOKEN

static udpc_tcli C; /* client fixture (support/udpc_tcli.h) */
static udpc_addr SERVER, ME, BOB, CAROL, EVIL;

static void cfeed(const udpc_addr *from, const udpc_packet *p) {
  udpc_tcli_feed(&C, from, p);
}

static udpc_packet csent(size_t i) { return udpc_tcli_sent_at(&C, i); }

static udpc_entry ent(const char *nick, int online, const udpc_addr *a) {
  return udpc_tcli_entry(nick, online, a);
}

/* ONLINE as alice with table {alice, bob online, carol offline} v3. */
static int csetup(void **state) {
  (void)state;
  udpc_tcli_reset(&C);
  C.max_sent = 64;
  C.max_ev = 64;
  C.ev_cap = 256;
  udpc_tcli_addrs a = udpc_tcli_std_addrs();
  udpc_tcli_set_addrs(&SERVER, &ME, &BOB, &CAROL, &EVIL);
  C.c = udpc_tcli_client(&C, &SERVER, 9);
  assert_non_null(C.c);
  udpc_tcli_online_with_table(&C, &a, NULL);
  C.n_sent = C.sent_pos = 0;
  C.n_ev = C.ev_pos = 0;
  return 0;
}

static int cteardown(void **state) {
  (void)state;
  udpc_client_free(C.c);
  C.c = NULL;
  return 0;
}

static void table_unchanged(void) {
  udpc_entry e;
  assert_int_equal(udpc_client_table_get(C.c, 1, &e), UDPC_OK);
  assert_string_equal(e.nick.s, "bob");
  assert_true(udpc_addr_equal(&e.addr, &BOB));
  assert_int_equal(e.status, UDPC_STATUS_ONLINE);
}

/* R81: every server packet type forged from another address, or from the
 * server's address with a wrong token, or answering no request: dropped,
 * nothing shown, nothing sent, table and state unchanged. */
static void test_client_server_packets_only_from_server_with_token(
    void **state) {
  (void)state;
  udpc_packet ps[8];
  size_t n = 0;
  ps[n] = pkt(UDPC_PT_TABLE_DELTA, 1, TOKEN);
  ps[n].u.table_delta.base_version = 3;
  ps[n].u.table_delta.new_version = 4;
  ps[n].u.table_delta.count = 1;
  ps[n++].u.table_delta.entries[0] = ent("bob", 1, &EVIL);
  ps[n] = pkt(UDPC_PT_TABLE_PAGE, 2, TOKEN);
  ps[n].u.table_page.version = 9;
  ps[n].u.table_page.total = 1;
  ps[n].u.table_page.count = 1;
  ps[n++].u.table_page.entries[0] = ent("bob", 1, &EVIL);
  ps[n] = pkt(UDPC_PT_KICKED, 3, TOKEN);
  ps[n++].u.kicked.by = nk("op");
  ps[n++] = pkt(UDPC_PT_PROBE, 4, TOKEN);
  ps[n] = pkt(UDPC_PT_HEARTBEAT_ACK, 5, TOKEN);
  ps[n++].u.heartbeat_ack.table_version = 99;
  ps[n] = pkt(UDPC_PT_ERROR, 6, 0);
  ps[n++].u.error.code = UDPC_ERROR_SESSION_ENDED;
  ps[n] = pkt(UDPC_PT_DEREG_RESULT, 7, TOKEN);
  ps[n++].u.dereg_result.status = UDPC_DEREG_OK;
  for (size_t i = 0; i < n; i++) {
    /* From a peer's address (bob), and from an attacker: dropped. */
    cfeed(&BOB, &ps[i]);
    cfeed(&EVIL, &ps[i]);
    /* From the server's address with a wrong token: dropped. */
    if (udpc_ptype_has_token(ps[i].type)) {
      udpc_packet w = ps[i];
      w.token = TOKEN ^ 0x8000;
      cfeed(&SERVER, &w);
    }
  }
  /* Right address and token but answering nothing in flight. */
  cfeed(&SERVER, &ps[1]); /* TABLE_PAGE, no TABLE_REQ */
  cfeed(&SERVER, &ps[4]); /* HEARTBEAT_ACK, no heartbeat */
  cfeed(&SERVER, &ps[5]); /* ERROR for no request */
  cfeed(&SERVER, &ps[6]); /* DEREG_RESULT, no DEREG */
  assert_int_equal(C.n_ev, 0);
  assert_int_equal(C.n_sent, 0);
  assert_int_equal(udpc_client_state(C.c), UDPC_CS_ONLINE);
  table_unchanged();
  /* The genuine delta from the server with the token is applied. */
  udpc_packet d = ps[0];
  d.u.table_delta.entries[0] = ent("bob", 0, &BOB);
  cfeed(&SERVER, &d);
  udpc_entry e;
  assert_int_equal(udpc_client_table_get(C.c, 1, &e), UDPC_OK);
  assert_int_equal(e.status, UDPC_STATUS_OFFLINE);
}

/* R82: a CHAT is shown and ACKed only from the table address of its from
 * (same IP other port, same port other IP, server, other peer: dropped). */
static void test_client_chat_only_from_table_address(void **state) {
  (void)state;
  udpc_packet c = pkt(UDPC_PT_CHAT, 41, 0);
  c.u.chat.from = nk("bob");
  c.u.chat.to = nk("alice");
  c.u.chat.text.p = (const uint8_t *)"hi";
  c.u.chat.text.len = 2;
  udpc_addr same_ip = BOB, same_port = BOB;
  same_ip.port = 40999;
  same_port.ip[3] = 77;
  cfeed(&same_ip, &c);
  cfeed(&same_port, &c);
  cfeed(&SERVER, &c);
  cfeed(&CAROL, &c);
  c.u.chat.from = nk("carol"); /* carol is offline at CAROL: still her
                                  table address, accepted below */
  c.u.chat.to = nk("bob");
  cfeed(&CAROL, &c); /* not for us */
  assert_int_equal(C.n_ev, 0);
  assert_int_equal(C.n_sent, 0);
  c.u.chat.from = nk("bob");
  c.u.chat.to = nk("alice");
  cfeed(&BOB, &c);
  assert_int_equal(C.n_ev, 1);
  assert_string_equal(C.ev[0].line, "bob: hi");
  assert_int_equal(C.n_sent, 1);
  assert_int_equal(csent(0).type, UDPC_PT_CHAT_ACK);
  assert_true(udpc_addr_equal(&C.sent[0].to, &BOB));
}

/* R36: a CHAT_ACK counts only for a chat alice sent to that peer with that
 * id: an ACK naming another peer, from another address, with another id,
 * or a replayed ACK after delivery, shows nothing. */
static void test_client_chat_ack_only_for_own_chat_to_that_peer(void **state) {
  (void)state;
  assert_int_equal(udpc_client_command(C.c, C.now, "send bob hello", 14),
                   UDPC_OK);
  udpc_packet sent = csent(0);
  assert_int_equal(sent.type, UDPC_PT_CHAT);
  udpc_packet ack = pkt(UDPC_PT_CHAT_ACK, sent.id, 0);
  ack.u.chat_ack.from = nk("carol");
  cfeed(&CAROL, &ack); /* carol was not sent this chat */
  cfeed(&BOB, &ack);   /* bob's address, carol's name */
  ack.u.chat_ack.from = nk("bob");
  cfeed(&EVIL, &ack); /* bob's name, not his address */
  cfeed(&SERVER, &ack);
  ack.id = sent.id ^ 1;
  cfeed(&BOB, &ack); /* another id */
  assert_int_equal(C.n_ev, 0);
  ack.id = sent.id;
  cfeed(&BOB, &ack);
  assert_int_equal(C.n_ev, 1);
  assert_string_equal(C.ev[0].line, "[Message received by bob.]");
  cfeed(&BOB, &ack); /* replay */
  assert_int_equal(C.n_ev, 1);
  /* No fallback SAVE later: the chat was delivered exactly once. */
  size_t before = C.n_sent;
  C.now += 600;
  udpc_client_handle_expiry(C.c, C.now);
  assert_int_equal(C.n_sent, before);
  assert_int_equal(C.n_ev, 1);
}

/* R82 + terminal safety at the source: text with ESC or C1 never reaches
 * the display (the decoder refuses it; P2.2). */
static void test_client_escape_sequences_in_chat_refused(void **state) {
  (void)state;
  static const char *const evil[] = {"\x1b[2J", "\x1b]0;pwned\x07", "a\rb",
                                     "\xc2\x9b\x33\x31m", "x\x7f"};
  for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
    uint8_t buf[64];
    size_t n = 0;
    buf[n++] = 1;
    buf[n++] = UDPC_PT_CHAT;
    buf[n++] = 0;
    buf[n++] = 0;
    buf[n++] = 0;
    buf[n++] = (uint8_t)(50 + i);
    buf[n++] = 3;
    memcpy(buf + n, "bob", 3);
    n += 3;
    buf[n++] = 5;
    memcpy(buf + n, "alice", 5);
    n += 5;
    size_t tl = strlen(evil[i]);
    buf[n++] = 0;
    buf[n++] = (uint8_t)tl;
    memcpy(buf + n, evil[i], tl);
    n += tl;
    udpc_packet p;
    assert_int_not_equal(udpc_wire_decode(&p, buf, n), UDPC_OK);
    assert_int_equal(udpc_client_recv(C.c, C.now, &BOB, buf, n), UDPC_OK);
  }
  assert_int_equal(C.n_ev, 0);
  assert_int_equal(C.n_sent, 0);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TC(fn) cmocka_unit_test_setup_teardown(fn, csetup, cteardown)
      T(test_source_rate_limit_burst_then_rate_drops_counted),
      T(test_source_rate_limit_logged_once_per_episode),
      T(test_session_bucket_separate_from_source_bucket),
      T(test_rate_limit_configurable_and_can_be_disabled),
      T(test_rate_limit_clock_step_back),
      T(test_source_table_bounded_oldest_evicted),
      T(test_log_lines_rate_limited_with_suppressed_summary),
      T(test_caps_server_full_and_quota_counted),
      T(test_caps_probes_full_counted),
      T(test_cookie_bound_to_address_port_nick_and_time),
      T(test_cookie_of_another_server_rejected),
      T(test_credentials_stored_only_as_salted_hashes),
      T(test_forged_dereg_other_dropped_and_counted),
      T(test_random_flood_never_amplifies_and_keeps_no_state),
      TC(test_client_server_packets_only_from_server_with_token),
      TC(test_client_chat_only_from_table_address),
      TC(test_client_chat_ack_only_for_own_chat_to_that_peer),
      TC(test_client_escape_sequences_in_chat_refused),
#undef T
#undef TC
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
