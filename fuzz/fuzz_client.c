/*
 * fuzz_client.c - the client core, stateful (PROTOCOL.md P4-P8, P10).
 *
 * Input layout: a sequence of operations, each an opcode byte and its
 * arguments:
 *   raw datagram      from the server, a peer, or a stranger address
 *   server response   a VALID packet of a server->client type whose id
 *                     echoes the client's last request of the matching
 *                     type and whose token is the one the harness issued
 *                     (COOKIE, REGISTER_RESULT, TABLE_PAGE/DELTA with
 *                     entries pointing at the peer addresses, ACKs,
 *                     results, MAIL_PAGE, KICKED, PROBE, ERROR)
 *   peer CHAT         from a peer address, normally consistent with the
 *                     table the harness gave (nick i lives at peer i % 3)
 *   peer CHAT_ACK     echoing the last CHAT the client sent to that peer
 *   typed command     send/list/reg/dereg/deregA/exit/help with fields from
 *                     the input, or raw line bytes
 *   time              advance, or jump to the next deadline and expire
 * Oracles (abort on violation): every datagram the client emits decodes
 * and is 1..1200 bytes; to the server only client->server types, to any
 * other address only CHAT/CHAT_ACK (R12: never ERROR); every event has a
 * known type and formats (udpc_event_format); the table stays sorted by
 * nick with unique nicks; the state is a known one; no sanitizer report,
 * no leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "udpc_client.h"
#include "udpc_wire.h"
#include "udpchat.h"

#define NPEER 3
#define NSRC (NPEER + 2) /* server, peers, stranger */
#define EVBUF 16384

typedef struct {
  udpc_addr src[NSRC]; /* 0 server, 1..NPEER peers, NPEER+1 stranger */
  uint32_t last_id[256];
  int have_id[256];
  uint32_t last_table_start;
  uint64_t token; /* the token the harness issued last */
  uint32_t chat_id[NSRC];
  udpc_nick chat_to[NSRC];
  char *evbuf;
  uint64_t now;
  size_t n_events;
  int trace; /* FUZZ_TRACE set: print datagrams, commands, events */
} harness;

static void trace_pkt(const harness *h, const char *dir, const udpc_addr *a,
                      const uint8_t *d, size_t n) {
  udpc_packet p;
  char dump[8192];
  if (!h->trace) return;
  int rc = udpc_wire_decode(&p, d, n);
  if (rc != UDPC_OK || udpc_wire_format(&p, dump, sizeof dump) < 0)
    snprintf(dump, sizeof dump, "(%zu bytes: %s)", n, udpc_strerror(rc));
  fprintf(stderr, "t=%llu %s %u.%u.%u.%u/%u:%u ", (unsigned long long)h->now,
          dir, a->ip[0], a->ip[1], a->ip[2], a->ip[3], a->family, a->port);
  for (size_t i = 0; i < n; i++) fprintf(stderr, "%02x", d[i]);
  fprintf(stderr, "\n    %s\n", dump);
}

static void make_addrs(harness *h) {
  for (int i = 0; i < NSRC; i++) {
    udpc_addr *a = &h->src[i];
    memset(a, 0, sizeof *a);
    a->family = 4;
  }
  /* server 198.51.100.1:5000 */
  h->src[0].ip[0] = 198;
  h->src[0].ip[1] = 51;
  h->src[0].ip[2] = 100;
  h->src[0].ip[3] = 1;
  h->src[0].port = 5000;
  /* peer 1: 10.0.0.7:5001 */
  h->src[1].ip[0] = 10;
  h->src[1].ip[3] = 7;
  h->src[1].port = 5001;
  /* peer 2: [2001:db8::7]:5002 */
  h->src[2].family = 6;
  h->src[2].ip[0] = 0x20;
  h->src[2].ip[1] = 0x01;
  h->src[2].ip[2] = 0x0d;
  h->src[2].ip[3] = 0xb8;
  h->src[2].ip[15] = 7;
  h->src[2].port = 5002;
  /* peer 3: the server's IP, another port */
  h->src[3] = h->src[0];
  h->src[3].port = 5001;
  /* stranger 203.0.113.9:6666 */
  h->src[4].ip[0] = 203;
  h->src[4].ip[2] = 113;
  h->src[4].ip[3] = 9;
  h->src[4].port = 6666;
}

static int is_c2s(uint8_t t) {
  switch (t) {
    case UDPC_PT_REGISTER:
    case UDPC_PT_TABLE_REQ:
    case UDPC_PT_HEARTBEAT:
    case UDPC_PT_DEREG:
    case UDPC_PT_DEREG_OTHER:
    case UDPC_PT_SAVE:
    case UDPC_PT_MAIL_REQ:
    case UDPC_PT_PROBE_ACK: return 1;
    default: return 0;
  }
}

static void cap_send(void *ctx, const udpc_addr *to, const uint8_t *data,
                     size_t len) {
  harness *h = ctx;
  udpc_packet p;
  FZ_CHECK(to != NULL && data != NULL);
  FZ_CHECK(len >= UDPC_HEADER_LEN && len <= UDPC_MAX_PACKET);
  trace_pkt(h, "tx", to, data, len);
  FZ_CHECK(udpc_wire_decode(&p, data, len) == UDPC_OK);
  FZ_CHECK(p.type != UDPC_PT_ERROR); /* R12 */
  if (udpc_addr_equal(to, &h->src[0])) {
    FZ_CHECK(is_c2s(p.type) || p.type == UDPC_PT_CHAT ||
             p.type == UDPC_PT_CHAT_ACK);
    h->last_id[p.type] = p.id;
    h->have_id[p.type] = 1;
    if (p.type == UDPC_PT_TABLE_REQ) h->last_table_start = p.u.table_req.start;
  } else {
    FZ_CHECK(p.type == UDPC_PT_CHAT || p.type == UDPC_PT_CHAT_ACK);
  }
  if (p.type == UDPC_PT_CHAT) {
    for (int i = 0; i < NSRC; i++) {
      if (udpc_addr_equal(to, &h->src[i])) {
        h->chat_id[i] = p.id;
        h->chat_to[i] = p.u.chat.to;
      }
    }
  }
}

static void cap_log(void *ctx, int level, const char *msg) {
  (void)ctx;
  FZ_CHECK(level >= 0 && level <= 3);
  FZ_CHECK(msg != NULL);
}

static void cap_event(void *ctx, const udpc_event *ev) {
  harness *h = ctx;
  FZ_CHECK(ev != NULL);
  FZ_CHECK(ev->type >= UDPC_EV_REGISTERED && ev->type <= UDPC_EV_NOTICE);
  int rc = udpc_event_format(ev, h->evbuf, EVBUF);
  FZ_CHECK(rc >= 0 && rc < EVBUF && h->evbuf[rc] == '\0');
  if (h->trace) fprintf(stderr, "event: %s\n", h->evbuf);
  h->n_events++;
}

/* The nick of table entry / peer i and its address slot. */
static int peer_of_nick(const udpc_nick *n) {
  for (size_t i = 0; i < FZ_N_NICKS; i++)
    if (strcmp(n->s, fz_nicks[i]) == 0) return 1 + (int)(i % NPEER);
  return 1;
}

static void build_entry(fz_rd *r, harness *h, udpc_entry *e) {
  memset(e, 0, sizeof *e);
  fz_pick_nick(r, &e->nick);
  uint8_t b = fz_u8(r);
  e->status = (uint8_t)(b % 3u); /* REMOVED only valid in deltas */
  if (b & 0x80u)
    fz_addr(r, &e->addr);
  else
    e->addr = h->src[peer_of_nick(&e->nick)];
}

static uint32_t reply_id(fz_rd *r, const harness *h, uint8_t req_type) {
  uint8_t b = fz_u8(r);
  if (b >= 0xF0u) return fz_u32(r);
  return h->last_id[req_type];
}

static uint64_t reply_token(fz_rd *r, const harness *h) {
  uint8_t b = fz_u8(r);
  if (b >= 0xF0u) return fz_u64(r);
  return h->token;
}

static int build_server(fz_rd *r, harness *h, uint8_t *buf, uint8_t *text) {
  udpc_packet p;
  memset(&p, 0, sizeof p);
  uint8_t kind = fz_u8(r) % 14u;
  switch (kind) {
    case 0:
      p.type = UDPC_PT_COOKIE;
      p.id = reply_id(r, h, UDPC_PT_REGISTER);
      p.u.cookie.cookie_len = (uint8_t)(1 + fz_u8(r) % UDPC_COOKIE_MAX);
      fz_bytes(r, p.u.cookie.cookie, p.u.cookie.cookie_len);
      break;
    case 1:
    case 2:
      p.type = UDPC_PT_REGISTER_RESULT;
      p.id = reply_id(r, h, UDPC_PT_REGISTER);
      p.u.reg_result.status =
          kind == 1 ? UDPC_REG_OK
                    : (uint8_t)(fz_u8(r) % (UDPC_REG_STATUS_MAX + 1));
      p.u.reg_result.token = 0x1000u + fz_u8(r);
      p.u.reg_result.table_version = fz_u8(r);
      p.u.reg_result.mail_count = fz_u8(r) % 4u;
      if (p.u.reg_result.status == UDPC_REG_OK) h->token = p.u.reg_result.token;
      break;
    case 3:
    case 4: {
      p.type = UDPC_PT_TABLE_PAGE;
      p.id = reply_id(r, h, UDPC_PT_TABLE_REQ);
      p.u.table_page.version = fz_u8(r);
      p.u.table_page.start = h->last_table_start;
      uint8_t n = (uint8_t)(fz_u8(r) % 7u);
      p.u.table_page.count = n;
      for (uint8_t i = 0; i < n; i++) {
        build_entry(r, h, &p.u.table_page.entries[i]);
        if (p.u.table_page.entries[i].status == UDPC_STATUS_REMOVED)
          p.u.table_page.entries[i].status = UDPC_STATUS_ONLINE;
      }
      uint8_t t = fz_u8(r);
      p.u.table_page.total = (t & 0x80u) ? t % 50u : h->last_table_start + n;
      break;
    }
    case 5: {
      p.type = UDPC_PT_TABLE_DELTA;
      p.id = fz_u8(r);
      p.u.table_delta.base_version = fz_u8(r);
      p.u.table_delta.new_version =
          p.u.table_delta.base_version + 1u + fz_u8(r) % 2u;
      uint8_t n = (uint8_t)(fz_u8(r) % 5u);
      p.u.table_delta.count = n;
      for (uint8_t i = 0; i < n; i++)
        build_entry(r, h, &p.u.table_delta.entries[i]);
      break;
    }
    case 6:
      p.type = UDPC_PT_HEARTBEAT_ACK;
      p.id = reply_id(r, h, UDPC_PT_HEARTBEAT);
      p.u.heartbeat_ack.table_version = fz_u8(r);
      break;
    case 7:
      p.type = UDPC_PT_DEREG_RESULT;
      p.id =
          reply_id(r, h, (fz_u8(r) & 1u) ? UDPC_PT_DEREG_OTHER : UDPC_PT_DEREG);
      p.u.dereg_result.status =
          (uint8_t)(fz_u8(r) % (UDPC_DEREG_STATUS_MAX + 1));
      break;
    case 8:
      p.type = UDPC_PT_KICKED;
      p.id = fz_u8(r);
      fz_pick_nick(r, &p.u.kicked.by);
      break;
    case 9:
      p.type = UDPC_PT_SAVE_RESULT;
      p.id = reply_id(r, h, UDPC_PT_SAVE);
      p.u.save_result.status = (uint8_t)(fz_u8(r) % (UDPC_SAVE_STATUS_MAX + 1));
      if (p.u.save_result.status == UDPC_SAVE_RECIPIENT_ONLINE) {
        build_entry(r, h, &p.u.save_result.entry);
        p.u.save_result.entry.status = UDPC_STATUS_ONLINE;
      }
      break;
    case 10: {
      p.type = UDPC_PT_MAIL_PAGE;
      p.id = reply_id(r, h, UDPC_PT_MAIL_REQ);
      p.u.mail_page.remaining = fz_u8(r) % 4u;
      uint8_t n = (uint8_t)(fz_u8(r) % 4u);
      size_t used = 0;
      p.u.mail_page.count = n;
      for (uint8_t i = 0; i < n; i++) {
        udpc_mail *m = &p.u.mail_page.mail[i];
        m->seq = fz_u8(r);
        m->msg_id = fz_u8(r);
        m->timestamp_ms = 1764000000000ULL + fz_u32(r);
        fz_pick_nick(r, &m->from);
        m->text.len =
            fz_text(r, text + used, (UDPC_MAX_PACKET - used) / (n - i) / 2);
        m->text.p = text + used;
        used += m->text.len;
      }
      break;
    }
    case 11:
      p.type = UDPC_PT_PROBE;
      p.id = fz_u32(r);
      break;
    case 12:
      p.type = UDPC_PT_ERROR;
      p.id = reply_id(r, h, fz_u8(r));
      p.u.error.code = (uint8_t)(1 + fz_u8(r) % UDPC_ERROR_CODE_MAX);
      break;
    default: /* a client->server type sent to the client: dropped */
      p.type = UDPC_PT_REGISTER;
      p.id = fz_u8(r);
      fz_pick_nick(r, &p.u.reg.nick);
      break;
  }
  if (udpc_ptype_has_token(p.type)) p.token = reply_token(r, h);
  return fz_encode_any(&p, buf, UDPC_MAX_PACKET + 64);
}

static int build_peer(fz_rd *r, harness *h, int chat, int *src, uint8_t *buf,
                      uint8_t *text) {
  udpc_packet p;
  memset(&p, 0, sizeof p);
  if (chat) {
    p.type = UDPC_PT_CHAT;
    p.id = fz_u8(r) % 16u; /* repeats: dedupe */
    fz_pick_nick(r, &p.u.chat.from);
    uint8_t b = fz_u8(r);
    if (b < 0xE0u)
      fz_set_nick(&p.u.chat.to, "alice");
    else
      fz_pick_nick(r, &p.u.chat.to);
    p.u.chat.text.len = fz_text(r, text, UDPC_TEXT_MAX);
    p.u.chat.text.p = text;
    *src = (b & 1u) ? 1 + b % NSRC % NPEER : peer_of_nick(&p.u.chat.from);
  } else {
    *src = 1 + fz_u8(r) % NPEER;
    p.type = UDPC_PT_CHAT_ACK;
    p.id = h->chat_id[*src];
    p.u.chat_ack.from = h->chat_to[*src];
    if (p.u.chat_ack.from.len == 0) fz_set_nick(&p.u.chat_ack.from, "bob");
  }
  return fz_encode_any(&p, buf, UDPC_MAX_PACKET + 64);
}

static size_t build_command(fz_rd *r, char *line, size_t cap) {
  static const char *const words[] = {"send",   "list", "reg", "dereg",
                                      "deregA", "exit", "help"};
  uint8_t w = fz_u8(r) % 8u;
  udpc_nick n;
  size_t len = 0;
  if (w == 7) { /* raw bytes */
    size_t l = fz_u8(r);
    const uint8_t *d = fz_take(r, &l);
    memcpy(line, d, l);
    return l;
  }
  fz_pick_nick(r, &n);
  uint8_t cs = fz_u8(r);
  if (cs & 0x40u) n.s[0] = (char)(n.s[0] & ~0x20); /* case folding */
  len = (size_t)snprintf(line, cap, "%s", words[w]);
  /* list and exit take no argument (0x80: give one anyway) */
  if ((w != 1 && w != 5) || (cs & 0x80u))
    len += (size_t)snprintf(line + len, cap - len, " %s",
                            w == 6 ? words[fz_u8(r) % 7u] : n.s);
  if (w == 0) {
    line[len++] = ' ';
    len += fz_text(r, (uint8_t *)line + len, cap - len);
  }
  return len;
}

static void check_table(const udpc_client *c) {
  size_t n = udpc_client_table_count(c);
  FZ_CHECK(n <= UDPC_CLIENT_TABLE_MAX);
  udpc_entry prev, e;
  for (size_t i = 0; i < n; i++) {
    FZ_CHECK(udpc_client_table_get(c, i, &e) == UDPC_OK);
    FZ_CHECK(udpc_nick_check(e.nick.s, e.nick.len) == UDPC_OK);
    if (i > 0) {
      size_t m = prev.nick.len < e.nick.len ? prev.nick.len : e.nick.len;
      int cmp = memcmp(prev.nick.s, e.nick.s, m);
      FZ_CHECK(cmp < 0 || (cmp == 0 && prev.nick.len < e.nick.len));
    }
    prev = e;
  }
  FZ_CHECK(udpc_client_table_get(c, n, &e) == UDPC_ERR_NOT_FOUND);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_rd r = fz_rd_make(data, size);
  harness *h = calloc(1, sizeof *h);
  FZ_CHECK(h != NULL);
  h->evbuf = malloc(EVBUF);
  uint8_t *pkt = malloc(UDPC_MAX_PACKET + 64);
  uint8_t *text = malloc(UDPC_MAX_PACKET + 8);
  char *line = malloc(2048);
  FZ_CHECK(h->evbuf != NULL && pkt != NULL && text != NULL && line != NULL);
  make_addrs(h);
  h->trace = getenv("FUZZ_TRACE") != NULL;

  udpc_client_config cfg;
  memset(&cfg, 0, sizeof cfg);
  fz_set_nick(&cfg.nick, "alice");
  memset(cfg.credential, 0xA5, sizeof cfg.credential);
  cfg.server = h->src[0];
  for (int i = 0; i < 32; i++) cfg.seed[i] = (uint8_t)(i + 1);
  cfg.io.ctx = h;
  cfg.io.send = cap_send;
  cfg.io.log = cap_log;
  cfg.event = cap_event;
  udpc_client *c = udpc_client_new(&cfg, h->now);
  FZ_CHECK(c != NULL);
  FZ_CHECK(udpc_client_start(c, h->now) == UDPC_OK);

  while (!fz_done(&r)) {
    uint8_t op = fz_u8(&r) % 9u;
    int src = 0;
    int n = 0;
    switch (op) {
      case 0: { /* raw datagram */
        src = fz_u8(&r) % NSRC;
        size_t len = fz_u16(&r) % 1301u;
        const uint8_t *d = fz_take(&r, &len);
        uint8_t *copy = malloc(len > 0 ? len : 1);
        FZ_CHECK(copy != NULL);
        if (len > 0) memcpy(copy, d, len);
        trace_pkt(h, "rx", &h->src[src], copy, len);
        FZ_CHECK(udpc_client_recv(c, h->now, &h->src[src], copy, len) ==
                 UDPC_OK);
        free(copy);
        break;
      }
      case 1:
      case 2:
      case 3:
        n = build_server(&r, h, pkt, text);
        src = (fz_u8(&r) & 0xF0u) == 0xF0u ? NPEER + 1 : 0;
        break;
      case 4: n = build_peer(&r, h, 1, &src, pkt, text); break;
      case 5: n = build_peer(&r, h, 0, &src, pkt, text); break;
      case 6: {
        size_t len = build_command(&r, line, 2048);
        if (h->trace) fprintf(stderr, "command: %.*s\n", (int)len, line);
        int rc = udpc_client_command(c, h->now, line, len);
        FZ_CHECK(rc == UDPC_OK || rc == UDPC_ERR_ARG); /* ARG: bad line */
        break;
      }
      case 7: {
        uint8_t b = fz_u8(&r);
        h->now += (b & 0x80u) ? (uint64_t)fz_u16(&r) * 16u : b * 8u;
        break;
      }
      default: {
        uint64_t dl = udpc_client_next_deadline(c);
        if (dl != UINT64_MAX && dl > h->now && dl - h->now < 3600000u)
          h->now = dl;
        udpc_client_handle_expiry(c, h->now);
        break;
      }
    }
    if (n > 0) trace_pkt(h, "rx", &h->src[src], pkt, (size_t)n);
    if (n > 0)
      FZ_CHECK(udpc_client_recv(c, h->now, &h->src[src], pkt, (size_t)n) ==
               UDPC_OK);
    int st = udpc_client_state(c);
    FZ_CHECK(st >= UDPC_CS_REGISTERING && st <= UDPC_CS_DONE);
    int ex = udpc_client_exit_status(c);
    FZ_CHECK(ex == -1 || (ex >= 0 && ex <= 255));
    FZ_CHECK((ex == -1) == (st != UDPC_CS_DONE));
  }
  check_table(c);
  udpc_client_free(c);
  free(line);
  free(text);
  free(pkt);
  free(h->evbuf);
  free(h);
  return 0;
}
