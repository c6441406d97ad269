/*
 * fuzz_server.c - the server core, stateful (PROTOCOL.md P1.5-P1.6, P5-P8).
 *
 * Input layout: 3 config bytes (max_clients, mail_per_recipient,
 * mail_total: small values so SERVER_FULL and QUOTA are reachable), then a
 * sequence of operations, each an opcode byte and its arguments:
 *   raw datagram     from one of NSLOT source addresses (IPv4, IPv6, an
 *                    IPv4-mapped IPv6 twin of an IPv4 address)
 *   time advance     small (ms) or large (minutes)
 *   expiry           jump to udpc_server_next_deadline, handle_expiry
 *   flush            udpc_server_flush
 *   fail commits     udpc_store_mem_fail_commits(1..3)
 *   restart          free the server, make a new one on the same store
 *   structured       a VALID packet built from input fields plus what the
 *                    server told that address: REGISTER echoing the last
 *                    COOKIE, requests carrying the token of the last
 *                    REGISTER_RESULT OK, PROBE_ACK echoing the last PROBE,
 *                    MAIL_REQ acking the last MAIL_PAGE; optionally sent
 *                    up to 256 times in a row (rate limits, held-ack
 *                    limits) and flushed
 * Oracles (abort on violation):
 *  - every datagram the server emits decodes (udpc_wire_decode) and is
 *    1..1200 bytes, and goes to an address that sent us something;
 *  - R13: an address not yet validated gets at most one datagram per
 *    datagram it sent, no larger than it, nothing unsolicited, and never
 *    more bytes in total than it sent. Validated (P5) means: it echoed the
 *    last COOKIE it got, with the nick that COOKIE answered, in the same or
 *    the next 30 s time bucket (P5.2); or it was sent a REGISTER_RESULT other than INVALID_NICK
 *    (only sent after a good cookie);
 *  - R14: a token-bearing packet goes only to a validated address, and
 *    never carries a token that a REGISTER_RESULT OK gave to another
 *    address and not to this one;
 *  - no crash, no sanitizer report, no leak (cores freed on every path);
 *    memory is bounded by libFuzzer's -rss_limit_mb / -malloc_limit_mb.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "udpc_store.h"
#include "udpc_wire.h"
#include "udpchat.h"

#define T0 1764000000000ULL
#define NSLOT 6
#define NCRED 3

typedef struct {
  udpc_addr a;
  uint64_t in, out; /* bytes while not validated */
  int validated;
  uint8_t cookie[UDPC_COOKIE_MAX];
  uint8_t cookie_len;
  udpc_nick reg_nick; /* nick and credential of its last REGISTER */
  uint8_t reg_cred;
  uint64_t token;        /* last token given to it */
  udpc_nick sent_nick;   /* nick of the last REGISTER it sent */
  udpc_nick cookie_nick; /* nick the last COOKIE answered */
  uint64_t cookie_time;  /* when it got that COOKIE */
  uint32_t probe_id;
  uint64_t probe_token;
  uint64_t mail_seq;
  uint32_t req_id;
} slot;

typedef struct {
  int slot;
  size_t len;
  uint8_t data[UDPC_MAX_PACKET];
} sent_pkt;

typedef struct {
  uint64_t token;
  int slot;
} issued;

typedef struct {
  slot s[NSLOT];
  issued *tokens; /* every token a REGISTER_RESULT OK gave, and to whom */
  size_t n_tokens;
  sent_pkt *sent; /* datagrams sent during the current operation */
  size_t n_sent, cap_sent;
  uint64_t now;
  int trace; /* FUZZ_TRACE set: print every datagram (debugging a crash) */
} harness;

static void trace_pkt(const harness *h, const char *dir, int k,
                      const uint8_t *d, size_t n) {
  udpc_packet p;
  char dump[8192];
  if (!h->trace) return;
  int rc = udpc_wire_decode(&p, d, n);
  if (rc != UDPC_OK || udpc_wire_format(&p, dump, sizeof dump) < 0)
    snprintf(dump, sizeof dump, "(%zu bytes: %s)", n, udpc_strerror(rc));
  fprintf(stderr, "t=%llu %s slot %d: %s\n", (unsigned long long)(h->now - T0),
          dir, k, dump);
}

static void make_slots(harness *h) {
  static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                 0,    0,    0,    0,    0, 0, 0, 1};
  for (int i = 0; i < NSLOT; i++) {
    udpc_addr *a = &h->s[i].a;
    memset(a, 0, sizeof *a);
    a->family = 4;
    a->ip[0] = 10;
    a->ip[3] = (uint8_t)(1 + i % 2);
    a->port = (uint16_t)(4000 + i);
  }
  /* slot 1: same IP as slot 0, other port */
  h->s[1].a.ip[3] = 1;
  /* slots 3, 4: IPv6; slot 5: IPv4-mapped IPv6 twin of slot 0 */
  h->s[3].a.family = 6;
  memcpy(h->s[3].a.ip, v6, 16);
  h->s[4].a.family = 6;
  memcpy(h->s[4].a.ip, v6, 16);
  h->s[4].a.ip[15] = 2;
  h->s[5].a.family = 6;
  memset(h->s[5].a.ip, 0, 16);
  h->s[5].a.ip[10] = 0xff;
  h->s[5].a.ip[11] = 0xff;
  h->s[5].a.ip[12] = 10;
  h->s[5].a.ip[15] = 1;
  h->s[5].a.port = 4000;
}

static int find_slot(const harness *h, const udpc_addr *a) {
  for (int i = 0; i < NSLOT; i++)
    if (udpc_addr_equal(&h->s[i].a, a)) return i;
  return -1;
}

static void cap_send(void *ctx, const udpc_addr *to, const uint8_t *data,
                     size_t len) {
  harness *h = ctx;
  udpc_packet p;
  FZ_CHECK(to != NULL && data != NULL);
  FZ_CHECK(len >= UDPC_HEADER_LEN && len <= UDPC_MAX_PACKET);
  FZ_CHECK(udpc_wire_decode(&p, data, len) == UDPC_OK);
  int k = find_slot(h, to);
  FZ_CHECK(k >= 0); /* only to addresses that sent us something */
  trace_pkt(h, "tx", k, data, len);
  if (h->n_sent == h->cap_sent) {
    size_t cap = h->cap_sent ? 2 * h->cap_sent : 8;
    sent_pkt *ns = realloc(h->sent, cap * sizeof *ns);
    FZ_CHECK(ns != NULL);
    h->sent = ns;
    h->cap_sent = cap;
  }
  sent_pkt *o = &h->sent[h->n_sent++];
  o->slot = k;
  o->len = len;
  memcpy(o->data, data, len);
}

static void cap_log(void *ctx, int level, const char *msg) {
  (void)ctx;
  FZ_CHECK(level >= 0 && level <= 3);
  FZ_CHECK(msg != NULL);
}

/* 1 if t was given to slot k, 0 if only to other slots, -1 if never. */
static int token_owner(const harness *h, uint64_t t, int k) {
  int seen = -1;
  for (size_t i = 0; i < h->n_tokens; i++) {
    if (h->tokens[i].token != t) continue;
    if (h->tokens[i].slot == k) return 1;
    seen = 0;
  }
  return seen;
}

static void add_token(harness *h, uint64_t t, int k) {
  if (token_owner(h, t, k) == 1) return;
  issued *nt = realloc(h->tokens, (h->n_tokens + 1) * sizeof *nt);
  FZ_CHECK(nt != NULL);
  h->tokens = nt;
  h->tokens[h->n_tokens].token = t;
  h->tokens[h->n_tokens].slot = k;
  h->n_tokens++;
}

/* After each operation: learn from and check what the server sent.
 * from: the slot whose datagram (of rx_len bytes) was the operation, or -1
 * for time, expiry and flush. */
static void after_op(harness *h, int from, size_t rx_len) {
  udpc_packet p;
  /* pass 1: validation by REGISTER_RESULT (sent only for a good cookie,
   * except INVALID_NICK), and the tokens handed out */
  for (size_t i = 0; i < h->n_sent; i++) {
    sent_pkt *o = &h->sent[i];
    slot *s = &h->s[o->slot];
    FZ_CHECK(udpc_wire_decode(&p, o->data, o->len) == UDPC_OK);
    if (p.type == UDPC_PT_REGISTER_RESULT &&
        p.u.reg_result.status != UDPC_REG_INVALID_NICK)
      s->validated = 1;
    if (p.type == UDPC_PT_REGISTER_RESULT &&
        p.u.reg_result.status == UDPC_REG_OK) {
      add_token(h, p.u.reg_result.token, o->slot);
      s->token = p.u.reg_result.token;
    }
  }
  /* pass 2: R13, R14, and what a client would remember */
  size_t to_src = 0;
  for (size_t i = 0; i < h->n_sent; i++) {
    sent_pkt *o = &h->sent[i];
    slot *s = &h->s[o->slot];
    FZ_CHECK(udpc_wire_decode(&p, o->data, o->len) == UDPC_OK);
    if (!s->validated) {
      if (o->slot != from || to_src > 0 || o->len > rx_len) {
        char dump[4096];
        if (udpc_wire_format(&p, dump, sizeof dump) < 0) dump[0] = '\0';
        fprintf(stderr,
                "R13: to unvalidated slot %d (op from slot %d, %zu bytes):"
                " %zu bytes: %s\n",
                o->slot, from, rx_len, o->len, dump);
      }
      FZ_CHECK(o->slot == from); /* nothing unsolicited */
      to_src++;
      FZ_CHECK(to_src == 1 && o->len <= rx_len);
      s->out += o->len;
      FZ_CHECK(s->out <= s->in);
    }
    if (udpc_ptype_has_token(p.type)) {
      FZ_CHECK(s->validated);
      FZ_CHECK(token_owner(h, p.token, o->slot) != 0);
    }
    switch (p.type) {
      case UDPC_PT_COOKIE:
        s->cookie_len = p.u.cookie.cookie_len;
        memcpy(s->cookie, p.u.cookie.cookie, s->cookie_len);
        s->cookie_nick = s->sent_nick;
        s->cookie_time = h->now;
        break;
      case UDPC_PT_PROBE:
        s->probe_id = p.id;
        s->probe_token = p.token;
        break;
      case UDPC_PT_MAIL_PAGE:
        for (size_t k = 0; k < p.u.mail_page.count; k++)
          if (p.u.mail_page.mail[k].seq > s->mail_seq)
            s->mail_seq = p.u.mail_page.mail[k].seq;
        break;
      default: break;
    }
  }
  h->n_sent = 0;
}

static void cred_of(uint8_t idx, uint8_t *cred) {
  for (size_t k = 0; k < UDPC_CRED_LEN; k++)
    cred[k] = (uint8_t)(0x11u * (idx + 1u) + k);
}

/* A token for a request from s: usually its own. */
static uint64_t pick_token(fz_rd *r, const harness *h, const slot *s) {
  uint8_t b = fz_u8(r);
  if (b < 0xE0u) return s->token;
  if (b < 0xF0u) return h->s[b % NSLOT].token;
  return fz_u64(r);
}

/* Builds a structured packet for slot k into buf; returns its length. */
static int build(fz_rd *r, harness *h, int k, uint8_t *buf, uint8_t *textbuf) {
  slot *s = &h->s[k];
  udpc_packet p;
  memset(&p, 0, sizeof p);
  uint8_t kind = fz_u8(r) % 11u;
  uint8_t idb = fz_u8(r);
  /* small ids so retransmissions (same id) happen; 0xFF: a fresh one */
  p.id = idb == 0xFF ? ++s->req_id + 1000u : idb % 8u;
  switch (kind) {
    case 0: /* REGISTER without cookie: new nick and credential */
    case 1: /* REGISTER echoing the last COOKIE, same nick and credential */
      p.type = UDPC_PT_REGISTER;
      if (kind == 0 || s->reg_nick.len == 0) {
        fz_pick_nick(r, &s->reg_nick);
        s->reg_cred = (uint8_t)(fz_u8(r) % NCRED);
      }
      p.u.reg.nick = s->reg_nick;
      cred_of(s->reg_cred, p.u.reg.credential);
      if (kind == 1) {
        p.u.reg.cookie_len = s->cookie_len;
        memcpy(p.u.reg.cookie, s->cookie, s->cookie_len);
      }
      break;
    case 2:
      p.type = UDPC_PT_TABLE_REQ;
      p.u.table_req.start = (fz_u8(r) & 0x80u) ? fz_u32(r) : fz_u8(r) % 41u;
      break;
    case 3: p.type = UDPC_PT_HEARTBEAT; break;
    case 4: p.type = UDPC_PT_DEREG; break;
    case 5:
      p.type = UDPC_PT_DEREG_OTHER;
      fz_pick_nick(r, &p.u.dereg_other.target);
      break;
    case 6:
    case 7:
      p.type = UDPC_PT_SAVE;
      fz_pick_nick(r, &p.u.save.to);
      p.u.save.msg_id = fz_u8(r);
      p.u.save.text.len = fz_text(r, textbuf, UDPC_TEXT_MAX + 4);
      p.u.save.text.p = textbuf;
      break;
    case 8:
      p.type = UDPC_PT_MAIL_REQ;
      p.u.mail_req.ack_upto = (fz_u8(r) & 0x80u) ? fz_u64(r) : s->mail_seq;
      break;
    case 9:
      p.type = UDPC_PT_PROBE_ACK;
      p.id = s->probe_id;
      break;
    default: /* a packet of a server->client type: must be dropped */
      p.type = (fz_u8(r) & 1u) ? UDPC_PT_CHAT : UDPC_PT_ERROR;
      fz_pick_nick(r, &p.u.chat.from);
      fz_pick_nick(r, &p.u.chat.to);
      p.u.chat.text.len = fz_text(r, textbuf, UDPC_TEXT_MAX);
      p.u.chat.text.p = textbuf;
      if (p.type == UDPC_PT_ERROR) p.u.error.code = 1;
      break;
  }
  if (udpc_ptype_has_token(p.type))
    p.token = kind == 9 ? s->probe_token : pick_token(r, h, s);
  return fz_encode_any(&p, buf, UDPC_MAX_PACKET + 64);
}

static void recv_from(harness *h, udpc_server *srv, int k, const uint8_t *d,
                      size_t n) {
  slot *s = &h->s[k];
  udpc_packet p;
  trace_pkt(h, "rx", k, d, n);
  if (!s->validated) s->in += n;
  if (udpc_wire_decode(&p, d, n) == UDPC_OK && p.type == UDPC_PT_REGISTER) {
    /* echoing the last cookie with its nick, in time: validated (P5.2) */
    if (s->cookie_len > 0 && p.u.reg.cookie_len == s->cookie_len &&
        memcmp(p.u.reg.cookie, s->cookie, s->cookie_len) == 0 &&
        p.u.reg.nick.len == s->cookie_nick.len &&
        memcmp(p.u.reg.nick.s, s->cookie_nick.s, s->cookie_nick.len) == 0 &&
        h->now / UDPC_T_COOKIE_BUCKET <=
            s->cookie_time / UDPC_T_COOKIE_BUCKET + 1)
      s->validated = 1;
    s->sent_nick = p.u.reg.nick;
  }
  FZ_CHECK(udpc_server_recv(srv, h->now, &h->s[k].a, d, n) == UDPC_OK);
  after_op(h, k, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const ops[] = {"op", "op2"};
  fz_rd r = fz_rd_make(data, size);
  harness *h = calloc(1, sizeof *h);
  FZ_CHECK(h != NULL);
  make_slots(h);
  h->now = T0;
  h->trace = getenv("FUZZ_TRACE") != NULL;

  udpc_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  for (int i = 0; i < 32; i++) cfg.seed[i] = (uint8_t)(i * 13 + 5);
  cfg.operators = ops;
  cfg.n_operators = 2;
  cfg.max_clients = fz_u8(&r) % 8u;
  cfg.mail_per_recipient = fz_u8(&r) % 5u;
  cfg.mail_total = fz_u8(&r) % 9u;
  cfg.store = udpc_store_mem_new();
  FZ_CHECK(cfg.store != NULL);
  cfg.io.ctx = h;
  cfg.io.send = cap_send;
  cfg.io.log = cap_log;
  udpc_server *srv = udpc_server_new(&cfg, h->now);
  FZ_CHECK(srv != NULL);

  uint8_t *pkt = malloc(UDPC_MAX_PACKET + 64);
  uint8_t *text = malloc(UDPC_TEXT_MAX + 8);
  FZ_CHECK(pkt != NULL && text != NULL);
  while (!fz_done(&r)) {
    uint8_t op = fz_u8(&r);
    int k = fz_u8(&r) % NSLOT;
    switch (op % 10u) {
      case 0: { /* raw datagram (up to 1300 bytes: some over the limit) */
        size_t len = fz_u16(&r) % 1301u;
        const uint8_t *d = fz_take(&r, &len);
        uint8_t *copy = malloc(len > 0 ? len : 1);
        FZ_CHECK(copy != NULL);
        if (len > 0) memcpy(copy, d, len);
        recv_from(h, srv, k, copy, len);
        free(copy);
        break;
      }
      case 1: h->now += (uint64_t)fz_u8(&r) * 16u; break;
      case 2: h->now += (uint64_t)fz_u16(&r) * 64u; break;
      case 3: {
        uint64_t dl = udpc_server_next_deadline(srv);
        if (dl != UINT64_MAX && dl > h->now && dl - h->now < 3600000u)
          h->now = dl;
        udpc_server_handle_expiry(srv, h->now);
        after_op(h, -1, 0);
        break;
      }
      case 4: {
        int rc = udpc_server_flush(srv, h->now);
        if (h->trace) fprintf(stderr, "flush: %d\n", rc);
        FZ_CHECK(rc == UDPC_OK || rc == UDPC_ERR_STORE);
        after_op(h, -1, 0);
        break;
      }
      case 5:
        if (k == NSLOT - 1) { /* restart: a new server on the same store */
          if (h->trace) fprintf(stderr, "restart\n");
          udpc_server_free(srv);
          /* a real restart draws a new seed (same seed: same tokens) */
          cfg.seed[0]++;
          srv = udpc_server_new(&cfg, h->now);
          FZ_CHECK(srv != NULL);
          after_op(h, -1, 0);
          break;
        }
        if (h->trace) fprintf(stderr, "fail commits %d\n", 1 + k % 3);
        udpc_store_mem_fail_commits(cfg.store, 1 + k % 3);
        break;
      default: { /* structured packet (repeated: a burst), flushed if asked */
        uint8_t fl = fz_u8(&r);
        int n = build(&r, h, k, pkt, text);
        unsigned rep = (fl & 2u) ? 1u + fz_u8(&r) : 1u;
        for (unsigned i = 0; n > 0 && i < rep; i++)
          recv_from(h, srv, k, pkt, (size_t)n);
        if (fl & 1u) {
          int rc = udpc_server_flush(srv, h->now);
          if (h->trace) fprintf(stderr, "flush: %d\n", rc);
          FZ_CHECK(rc == UDPC_OK || rc == UDPC_ERR_STORE);
          after_op(h, -1, 0);
        }
        break;
      }
    }
  }
  /* a final flush and expiry must also behave */
  (void)udpc_server_flush(srv, h->now);
  after_op(h, -1, 0);
  udpc_server_handle_expiry(srv, h->now + 600000u);
  after_op(h, -1, 0);
  udpc_server_stats st;
  udpc_server_get_stats(srv, &st);
  FZ_CHECK(st.online <= st.registered);

  udpc_server_free(srv);
  udpc_store_free(cfg.store);
  free(h->tokens);
  free(pkt);
  free(text);
  free(h->sent);
  free(h);
  return 0;
}
