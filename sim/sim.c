/*
 * sim.c - udpchat-sim: a deterministic discrete-event simulator that runs
 * the real, unmodified server and client cores (src/core) for one server
 * and N clients in one process, in virtual time. See sim/README.md.
 *
 * One seed drives everything (xoshiro256** seeded by splitmix64): the
 * workload, the fault mix, the network's delays and losses and the cores'
 * own seeds. Events are ordered by (time, sequence number), so the same
 * seed and the same commit give the same run, event for event.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"
#include "udpc_client.h"
#include "udpchat.h"

#define SIM_MAXC 16             /* clients */
#define SIM_MAXN (SIM_MAXC + 1) /* nodes: 0 = server */
#define SIM_T0 1700000000000ULL /* server UTC ms at virtual time 0 */
#define SIM_SRV_PORT 9000
#define SIM_TRACE_RING 50
#define SIM_LINE 240
#define SIM_DEDUPE 64 /* UDPC_CLIENT_DEDUPE_IDS */

/* ---- PRNG: splitmix64 + xoshiro256** ------------------------------------ */
typedef struct {
  uint64_t s[4];
} rng_t;

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r) {
  uint64_t *s = r->s;
  uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return res;
}

static double rng_unit(rng_t *r) {
  return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static uint32_t rng_below(rng_t *r, uint32_t n) {
  return n == 0 ? 0 : (uint32_t)(rng_next(r) % n);
}

static int rng_chance(rng_t *r, double p) { return rng_unit(r) < p; }

/* ---- Configuration --------------------------------------------------------- */
enum {
  PLANT_NONE,
  PLANT_DEDUPE,      /* skip duplicate suppression at the chat receiver */
  PLANT_UNSAFE_SAVE, /* ACK a save-message before committing it */
  PLANT_PROBE,       /* ignore the probe result: store and ACK SAVED */
  PLANT_DELTA,       /* drop a table delta silently (version still moves) */
  PLANT_COUNT
};
static const char *const PLANT_NAMES[] = {"none", "dedupe", "unsafe-save",
                                          "probe", "delta"};

typedef struct {
  int type, src, dst; /* -1: any */
  uint32_t nth, seen;
  int crash_server; /* instead of dropping: crash the server after recv */
} sim_rule;

typedef struct {
  uint64_t seed;
  const char *scenario;
  int clients;        /* 0: scenario default / random */
  double duration_s;  /* 0: default */
  const char *faults; /* NULL: scenario default / random mix */
  int plant;
  int trace;
  int strict; /* known core bugs count as violations */
} sim_opts;

/* ---- Run state --------------------------------------------------------------- */
enum { HE_DGRAM = 1, HE_FLUSH, HE_ACT };

typedef struct {
  uint64_t t, seq;
  int kind;
  void *p;
} hev;

typedef struct {
  int src, dst;
  udpc_addr from, to;
  size_t len;
  uint8_t data[UDPC_MAX_PACKET];
} sim_dgram;

enum {
  A_CMD = 1,  /* node types line */
  A_SEND,     /* node sends a fresh unique text to `a` (-1: unknown) */
  A_CRASH,    /* client node crashes */
  A_RESTART,  /* client node restarts (new core, same nick+credential) */
  A_SCRASH,   /* server crashes */
  A_SRESTART, /* server restarts over the committed store */
  A_BLOCK,    /* links a->b blocked (b = -1: every link of a; a = -2: all) */
  A_UNBLOCK,
  A_HEAL,  /* liveness phase: faults off, everyone restarted */
  A_FINAL, /* liveness phase: bring OFFLINE clients back (reg) */
  A_CHECK, /* final oracles, end of the run */
  A_NET,   /* change loss/dup/reorder (x100 in a,b,c) */
};

typedef struct {
  int op, node, a, b, c;
  char line[200];
} sim_act;

enum {
  OUT_NONE,
  OUT_DELIVERED,
  OUT_SAVED,
  OUT_EXISTS,
  OUT_SAVE_REFUSED,
  OUT_NOT_SENT_OFFLINE,
  OUT_NOACK_OFFLINE,
  OUT_LOCAL_REFUSED,
  OUT_ERROR,
  OUT_EXITED,
  OUT_CRASHED,
  OUT_COUNT
};
static const char *const OUT_NAMES[] = {
    "none",         "delivered",        "saved",         "exists",
    "save-refused", "not-sent-offline", "noack-offline", "local-refused",
    "error",        "sender-exited",    "sender-crashed"};

enum { MS_CMD, MS_CHAT, MS_SAVE, MS_DONE };

typedef struct {
  int from, to; /* node indexes; to = -1: a nick nobody has */
  char to_nick[UDPC_NICK_MAX + 1];
  int state, outcome, n_out;
  uint32_t chat_id, save_id;
  int save_id_valid;
  uint64_t t_sent, t_out;
  int shown;      /* displays at the recipient */
  int known_bug;  /* stored while the server held its recipient
                         online across the whole batch (K1 suspect) */
  int pre_online; /* recipient's record online when it was stored */
  uint64_t seq;   /* store seq of its mail (last append) */
} sim_msg;

typedef struct {
  int node, inc, msg, kind;
  uint64_t t;
} sim_disp;

typedef struct {
  udpc_client *c;
  int inc;        /* incarnation: +1 at every restart */
  int alive;      /* a core exists and was not crashed */
  int done;       /* exit status set */
  int first_exit; /* first exit status seen (-1: none) */
  int n_server_down, abandoned;
  int port_gen; /* a restart may bind another client port */
  char nick[UDPC_NICK_MAX + 1];
  uint8_t cred[UDPC_CRED_LEN];
  udpc_addr addr;
  uint64_t last_mail_seq;
} sim_cnode;

typedef struct {
  /* config */
  sim_opts o;
  int k;
  uint64_t duration_ms;
  double loss, dup, reorder;
  uint32_t jitter, reorder_ms;
  int queue_max;
  uint32_t flush_delay;
  double commit_fail;
  uint32_t mail_quota; /* server mail_per_recipient (0: default) */
  int healed;
  sim_rule rules[8];
  int n_rules;
  /* engine */
  rng_t rng_net, rng_work, rng_seed;
  hev *heap;
  size_t n_heap, cap_heap;
  uint64_t ev_seq, now, events;
  int stop;
  /* nodes */
  udpc_server *srv;
  udpc_store *st;
  int srv_up, srv_inc, flush_pending;
  sim_cnode cn[SIM_MAXN];
  uint32_t base_delay[SIM_MAXN][SIM_MAXN];
  int inflight[SIM_MAXN][SIM_MAXN];
  int block[SIM_MAXN][SIM_MAXN];
  uint64_t n_dgrams;
  /* oracle records */
  sim_msg *msgs;
  size_t n_msgs, cap_msgs;
  sim_disp *disp;
  size_t n_disp, cap_disp;
  /* call context (one core call at a time) */
  int cx_node, cx_kind, cx_have_pkt, cx_msg, cx_chat_sent, cx_notice;
  int cx_shown, cx_ack_sent;
  udpc_packet cx_pkt;

  int batch_mail[64]; /* messages appended since the last flush */
  int n_batch_mail;
  uint64_t reg_ok_t[SIM_MAXN]; /* last REGISTER_RESULT OK sent, + 1 */
  int known; /* known core bugs hit (tolerated unless --strict) */
  char known_msg[SIM_LINE];
  /* result */
  int failed;
  char fail[SIM_LINE * 2];
  char trace[SIM_TRACE_RING][SIM_LINE];
  uint64_t n_trace, hash;
  /* scenario expectations */
  int exp_out[16];        /* expected outcome of message i (0: none) */
  int exp_exit[SIM_MAXN]; /* expected first exit status + 1 (0: none) */
} sim_run;

static sim_run R;

/* ---- Trace and failures -------------------------------------------------------- */
static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...) {
  char *l = R.trace[R.n_trace % SIM_TRACE_RING];
  int n = snprintf(l, SIM_LINE, "%8.3f ", (double)R.now / 1000.0);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(l + n, (size_t)(SIM_LINE - n), fmt, ap);
  va_end(ap);
  R.n_trace++;
  for (const char *c = l; *c; c++) /* FNV-1a over the whole run */
    R.hash = (R.hash ^ (uint8_t)*c) * 0x100000001B3ULL;
  if (R.o.trace) printf("  %s\n", l);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  if (R.failed) return;
  R.failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(R.fail, sizeof R.fail, fmt, ap);
  va_end(ap);
  trace("VIOLATION: %s", R.fail);
  R.stop = 1;
}

/* ---- Event heap ------------------------------------------------------------------ */
static int hev_less(const hev *a, const hev *b) {
  return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void push(uint64_t t, int kind, void *p) {
  if (R.n_heap == R.cap_heap) {
    R.cap_heap = R.cap_heap ? R.cap_heap * 2 : 256;
    R.heap = realloc(R.heap, R.cap_heap * sizeof *R.heap);
    if (R.heap == NULL) abort();
  }
  size_t i = R.n_heap++;
  hev e = {t, R.ev_seq++, kind, p};
  while (i > 0 && hev_less(&e, &R.heap[(i - 1) / 2])) {
    R.heap[i] = R.heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  R.heap[i] = e;
}

static hev pop(void) {
  hev top = R.heap[0], last = R.heap[--R.n_heap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= R.n_heap) break;
    if (c + 1 < R.n_heap && hev_less(&R.heap[c + 1], &R.heap[c])) c++;
    if (!hev_less(&R.heap[c], &last)) break;
    R.heap[i] = R.heap[c];
    i = c;
  }
  if (R.n_heap > 0) R.heap[i] = last;
  return top;
}

static sim_act *act(uint64_t t, int op, int node) {
  sim_act *a = calloc(1, sizeof *a);
  if (a == NULL) abort();
  a->op = op;
  a->node = node;
  push(t, HE_ACT, a);
  return a;
}

static void cmd_at(uint64_t t, int node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cmd_at(uint64_t t, int node, const char *fmt, ...) {
  sim_act *a = act(t, A_CMD, node);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->line, sizeof a->line, fmt, ap);
  va_end(ap);
}

static void send_at(uint64_t t, int node, int to) {
  act(t, A_SEND, node)->a = to;
}

/* ---- Addresses --------------------------------------------------------------- */
static udpc_addr node_addr(int i) {
  udpc_addr a;
  memset(&a, 0, sizeof a);
  a.family = 4;
  a.ip[0] = 10;
  a.ip[3] = (uint8_t)(1 + i);
  a.port =
      (uint16_t)(i == 0 ? SIM_SRV_PORT : 40000 + i + 100 * R.cn[i].port_gen);
  return a;
}

static int addr_node(const udpc_addr *a) {
  for (int i = 0; i <= R.k; i++) {
    udpc_addr b = node_addr(i);
    if (udpc_addr_equal(a, &b)) return i;
  }
  return -1;
}

static const char *node_name(int i) { return i == 0 ? "server" : R.cn[i].nick; }

/* ---- Messages and displays -------------------------------------------------------- */
static int parse_text(const uint8_t *p, size_t len) {
  if (len < 2 || p[0] != 'm') return -1;
  size_t v = 0, i = 1;
  for (; i < len && p[i] >= '0' && p[i] <= '9' && i < 9; i++)
    v = v * 10 + (size_t)(p[i] - '0');
  if (i == 1 || (i < len && p[i] != ' ')) return -1;
  return v < R.n_msgs ? (int)v : -1;
}

static void set_outcome(int m, int out) {
  sim_msg *g = &R.msgs[m];
  trace("  outcome m%d %s->%s: %s", m, node_name(g->from), g->to_nick,
        OUT_NAMES[out]);
  if (g->n_out > 0) {
    fail("message m%d (%s -> %s) ended twice for its sender: %s, then %s", m,
         node_name(g->from), g->to_nick, OUT_NAMES[g->outcome], OUT_NAMES[out]);
    return;
  }
  g->n_out = 1;
  g->outcome = out;
  g->state = MS_DONE;
  g->t_out = R.now;
}

/* The oldest (or newest) message of node `from` to `nick` in state st. */
static int find_msg(int from, const char *nick, int st, int newest) {
  int found = -1;
  for (size_t i = 0; i < R.n_msgs; i++) {
    sim_msg *g = &R.msgs[i];
    if (g->from == from && g->state == st && strcmp(g->to_nick, nick) == 0) {
      found = (int)i;
      if (!newest) break;
    }
  }
  return found;
}

static void resolve_pending(int node, int out) {
  for (size_t i = 0; i < R.n_msgs; i++)
    if (R.msgs[i].from == node && R.msgs[i].state != MS_DONE)
      set_outcome((int)i, out);
}

static void display(int node, const udpc_nick *from, const uint8_t *text,
                    size_t len, int kind, uint64_t seq) {
  sim_cnode *n = &R.cn[node];
  int m = parse_text(text, len);
  trace("  %s shows %s %s: %.*s", n->nick, kind ? "MAIL" : "CHAT", from->s,
        (int)(len > 60 ? 60 : len), (const char *)text);
  if (m < 0) {
    fail("%s shows a message that was never sent: %s: %.*s", n->nick, from->s,
         (int)len, (const char *)text);
    return;
  }
  sim_msg *g = &R.msgs[m];
  if (g->to != node) {
    fail("message m%d for %s shown to %s", m, g->to_nick, n->nick);
    return;
  }
  if (strcmp(from->s, R.cn[g->from].nick) != 0) {
    fail("message m%d from %s shown under the wrong sender %s", m,
         R.cn[g->from].nick, from->s);
    return;
  }
  if (g->shown > 0) {
    /* Allowed only if the receiver lost its dedupe memory: a new core
     * (restart), or 64+ newer displays from that sender since. */
    size_t prev = R.n_disp;
    for (size_t i = R.n_disp; i-- > 0;)
      if (R.disp[i].msg == m) {
        prev = i;
        break;
      }
    int newer = 0;
    for (size_t i = prev + 1; i < R.n_disp; i++)
      if (R.disp[i].node == node && R.disp[i].inc == n->inc &&
          R.msgs[R.disp[i].msg].from == g->from)
        newer++;
    if (prev < R.n_disp && R.disp[prev].inc == n->inc && newer < SIM_DEDUPE) {
      fail("message m%d (%s -> %s) shown twice (first as %s at %.3f, now as "
           "%s)",
           m, R.cn[g->from].nick, n->nick, R.disp[prev].kind ? "MAIL" : "CHAT",
           (double)R.disp[prev].t / 1000.0, kind ? "MAIL" : "CHAT");
      return;
    }
  } else if (kind == 1) {
    if (seq < n->last_mail_seq)
      fail("offline messages out of order at %s: m%d (seq %" PRIu64
           ") after seq %" PRIu64,
           n->nick, m, seq, n->last_mail_seq);
    n->last_mail_seq = seq;
  }
  g->shown++;
  if (R.n_disp == R.cap_disp) {
    R.cap_disp = R.cap_disp ? R.cap_disp * 2 : 256;
    R.disp = realloc(R.disp, R.cap_disp * sizeof *R.disp);
    if (R.disp == NULL) abort();
  }
  sim_disp d = {node, n->inc, m, kind, R.now};
  R.disp[R.n_disp++] = d;
}

/* ---- Network ---------------------------------------------------------------------- */
static void trace_pkt(const char *what, int src, int dst, const uint8_t *data,
                      size_t len) {
  udpc_packet p;
  char buf[SIM_LINE];
  if (udpc_wire_decode(&p, data, len) != UDPC_OK ||
      udpc_wire_format(&p, buf, sizeof buf) < 0)
    snprintf(buf, sizeof buf, "(%zu bytes)", len);
  trace("%s %s->%s %.160s", what, node_name(src),
        dst < 0 ? "?" : node_name(dst), buf);
}

static void client_outgoing(int node, const udpc_packet *p);

static void net_send(int src, const udpc_addr *to, const uint8_t *data,
                     size_t len) {
  udpc_packet p;
  int dst = addr_node(to);
  R.n_dgrams++;
  if (len > UDPC_MAX_PACKET || udpc_wire_decode(&p, data, len) != UDPC_OK) {
    fail("%s sent an invalid datagram (%zu bytes)", node_name(src), len);
    return;
  }
  if (src > 0) client_outgoing(src, &p);
  for (int i = 0; i < R.n_rules; i++) {
    sim_rule *r = &R.rules[i];
    if (r->crash_server) continue;
    if ((r->type < 0 || r->type == p.type) && (r->src < 0 || r->src == src) &&
        (r->dst < 0 || r->dst == dst) && ++r->seen == r->nth) {
      trace_pkt("drop(scripted)", src, dst, data, len);
      return;
    }
  }
  if (dst < 0) {
    trace_pkt("drop(no such host)", src, dst, data, len);
    return;
  }
  if (R.block[src][dst] > 0) {
    trace_pkt("drop(partition)", src, dst, data, len);
    return;
  }
  if (!R.healed && rng_chance(&R.rng_net, R.loss)) {
    trace_pkt("drop(loss)", src, dst, data, len);
    return;
  }
  int copies = (!R.healed && rng_chance(&R.rng_net, R.dup)) ? 2 : 1;
  for (int c = 0; c < copies; c++) {
    if (R.inflight[src][dst] >= R.queue_max) {
      trace_pkt("drop(queue full)", src, dst, data, len);
      return;
    }
    uint64_t d = R.base_delay[src][dst] + rng_below(&R.rng_net, R.jitter + 1);
    if (!R.healed && rng_chance(&R.rng_net, R.reorder))
      d += rng_below(&R.rng_net, R.reorder_ms + 1);
    sim_dgram *g = malloc(sizeof *g);
    if (g == NULL) abort();
    g->src = src;
    g->dst = dst;
    g->from = node_addr(src);
    g->to = *to;
    g->len = len;
    memcpy(g->data, data, len);
    R.inflight[src][dst]++;
    push(R.now + d, HE_DGRAM, g);
    trace_pkt(c ? "send(dup)" : "send", src, dst, data, len);
  }
}

static void srv_send_cb(void *ctx, const udpc_addr *to, const uint8_t *data,
                        size_t len) {
  (void)ctx;
  int own = sim_mem_owner;
  sim_mem_owner = SIM_MEM_NONE;
  if (len > 6 && data[1] == UDPC_PT_REGISTER_RESULT && data[6] == UDPC_REG_OK) {
    int n = addr_node(to);
    if (n > 0) R.reg_ok_t[n] = R.now + 1;
  }
  net_send(0, to, data, len);
  sim_mem_owner = own;
}

static void cli_send_cb(void *ctx, const udpc_addr *to, const uint8_t *data,
                        size_t len) {
  int node = (int)(intptr_t)ctx;
  if (node == R.cx_node && len > UDPC_HEADER_LEN &&
      data[1] == UDPC_PT_CHAT_ACK && R.cx_have_pkt &&
      R.cx_pkt.type == UDPC_PT_CHAT)
    R.cx_ack_sent = 1;
  int own = sim_mem_owner;
  sim_mem_owner = SIM_MEM_NONE;
  net_send(node, to, data, len);
  sim_mem_owner = own;
}

/* ---- Client side bookkeeping ------------------------------------------------------- */
static void client_outgoing(int node, const udpc_packet *p) {
  if (p->type == UDPC_PT_CHAT) {
    int m = parse_text(p->u.chat.text.p, p->u.chat.text.len);
    if (m >= 0 && m == R.cx_msg && R.msgs[m].state == MS_CMD) {
      R.msgs[m].state = MS_CHAT;
      R.msgs[m].chat_id = p->id;
      R.cx_chat_sent = 1;
    }
  } else if (p->type == UDPC_PT_SAVE) {
    int m = parse_text(p->u.save.text.p, p->u.save.text.len);
    if (m < 0 || R.msgs[m].from != node) {
      fail("%s sent a SAVE for a message it never sent", R.cn[node].nick);
      return;
    }
    if (R.msgs[m].state == MS_DONE) {
      fail("%s sent a SAVE for m%d after its outcome (%s)", R.cn[node].nick, m,
           OUT_NAMES[R.msgs[m].outcome]);
      return;
    }
    R.msgs[m].save_id = p->id;
    R.msgs[m].save_id_valid = 1;
  }
}

static int msg_by_save_id(int node, uint32_t id) {
  for (size_t i = 0; i < R.n_msgs; i++)
    if (R.msgs[i].from == node && R.msgs[i].state == MS_SAVE &&
        R.msgs[i].save_id_valid && R.msgs[i].save_id == id)
      return (int)i;
  return -1;
}

static void save_result(int node, int out) {
  if (!R.cx_have_pkt || (R.cx_pkt.type != UDPC_PT_SAVE_RESULT &&
                         R.cx_pkt.type != UDPC_PT_ERROR)) {
    fail("%s reported a save result outside a server response",
         R.cn[node].nick);
    return;
  }
  int m = msg_by_save_id(node, R.cx_pkt.id);
  if (m < 0) {
    fail("%s reported a save result (%s) for no pending SAVE (id %u)",
         R.cn[node].nick, OUT_NAMES[out], (unsigned)R.cx_pkt.id);
    return;
  }
  set_outcome(m, out);
}

static int notice_nick(const char *text, const char *prefix, const char *suffix,
                       char *nick) {
  size_t pl = strlen(prefix), sl = strlen(suffix), tl = strlen(text);
  if (tl <= pl + sl || strncmp(text, prefix, pl) != 0 ||
      strcmp(text + tl - sl, suffix) != 0 || tl - pl - sl > UDPC_NICK_MAX)
    return 0;
  memcpy(nick, text + pl, tl - pl - sl);
  nick[tl - pl - sl] = 0;
  return 1;
}

static void cli_event_body(int node, const udpc_event *ev);
static void cli_event_cb(void *ctx, const udpc_event *ev) {
  int own = sim_mem_owner;
  sim_mem_owner = SIM_MEM_NONE;
  cli_event_body((int)(intptr_t)ctx, ev);
  sim_mem_owner = own;
}

static void cli_event_body(int node, const udpc_event *ev) {
  sim_cnode *n = &R.cn[node];
  char line[1400];
  if (udpc_event_format(ev, line, sizeof line) < 0) {
    fail("%s: udpc_event_format failed for event %d", n->nick, ev->type);
    return;
  }
  if (ev->type != UDPC_EV_CHAT && ev->type != UDPC_EV_MAIL &&
      ev->type != UDPC_EV_LIST_ROW)
    trace("  %s: %s", n->nick, line);
  int m;
  char nick[UDPC_NICK_MAX + 1];
  switch (ev->type) {
    case UDPC_EV_CHAT:
      R.cx_shown = 1;
      display(node, &ev->nick, ev->text.p, ev->text.len, 0, 0);
      break;
    case UDPC_EV_MAIL: {
      uint64_t seq = 0;
      if (R.cx_have_pkt && R.cx_pkt.type == UDPC_PT_MAIL_PAGE)
        for (size_t i = 0; i < R.cx_pkt.u.mail_page.count; i++) {
          const udpc_mail *ml = &R.cx_pkt.u.mail_page.mail[i];
          if (ml->text.len == ev->text.len &&
              memcmp(ml->text.p, ev->text.p, ev->text.len) == 0)
            seq = ml->seq;
        }
      display(node, &ev->nick, ev->text.p, ev->text.len, 1, seq);
      break;
    }
    case UDPC_EV_DELIVERED:
      m = -1;
      if (R.cx_have_pkt && R.cx_pkt.type == UDPC_PT_CHAT_ACK)
        for (size_t i = 0; i < R.n_msgs; i++)
          if (R.msgs[i].from == node && R.msgs[i].state == MS_CHAT &&
              R.msgs[i].chat_id == R.cx_pkt.id)
            m = (int)i;
      if (m < 0)
        fail("%s: [Message received by %s.] for no chat awaiting an ACK",
             n->nick, ev->nick.s);
      else
        set_outcome(m, OUT_DELIVERED);
      break;
    case UDPC_EV_NO_ACK:
      m = find_msg(node, ev->nick.s, MS_CHAT, 0);
      if (m < 0)
        fail("%s: [No ACK from %s] for no chat awaiting an ACK", n->nick,
             ev->nick.s);
      else
        R.msgs[m].state = MS_SAVE;
      break;
    case UDPC_EV_SAVED: save_result(node, OUT_SAVED); break;
    case UDPC_EV_EXISTS: save_result(node, OUT_EXISTS); break;
    case UDPC_EV_SAVE_REFUSED: save_result(node, OUT_SAVE_REFUSED); break;
    case UDPC_EV_SERVER_DOWN: n->n_server_down++; break;
    case UDPC_EV_NOTICE:
      R.cx_notice = 1;
      if (R.cx_kind == A_SEND && R.cx_msg >= 0 &&
          R.msgs[R.cx_msg].state == MS_CMD) {
        set_outcome(R.cx_msg, OUT_LOCAL_REFUSED);
      } else if (notice_nick(line, "[Message to ",
                             " not sent: you are offline.]", nick)) {
        m = find_msg(node, nick, MS_SAVE, 0);
        if (m < 0)
          fail("%s: %s for no pending SAVE", n->nick, line);
        else
          set_outcome(m, OUT_NOT_SENT_OFFLINE);
      } else if (notice_nick(line, "[Message to ",
                             " not delivered: too many requests waiting.]",
                             nick)) {
        m = find_msg(node, nick, MS_SAVE, 1);
        if (m < 0)
          fail("%s: %s for no pending SAVE", n->nick, line);
        else
          set_outcome(m, OUT_LOCAL_REFUSED);
      } else if (notice_nick(line, "[No ACK from ",
                             "; you are offline, message not delivered.]",
                             nick)) {
        m = find_msg(node, nick, MS_CHAT, 0);
        if (m < 0)
          fail("%s: %s for no chat awaiting an ACK", n->nick, line);
        else
          set_outcome(m, OUT_NOACK_OFFLINE);
      } else if (strcmp(line, "[Server refused the request as malformed.]") ==
                     0 &&
                 R.cx_have_pkt && R.cx_pkt.type == UDPC_PT_ERROR &&
                 msg_by_save_id(node, R.cx_pkt.id) >= 0) {
        save_result(node, OUT_ERROR);
      }
      break;
    default: break;
  }
}

/* After every call into a client core. */
static void client_after(int node) {
  sim_cnode *n = &R.cn[node];
  if (!n->alive || n->done) return;
  int st = udpc_client_exit_status(n->c);
  if (st >= 0) {
    n->done = 1;
    if (n->first_exit < 0) n->first_exit = st;
    trace("  %s exits with status %d", n->nick, st);
    resolve_pending(node, OUT_EXITED);
  } else if (n->n_server_down > 0 &&
             udpc_client_state(n->c) == UDPC_CS_ONLINE) {
    n->abandoned = 1; /* a snapshot or mail delivery was abandoned */
  }
}

static void cx_begin(int node, int kind) {
  R.cx_node = node;
  R.cx_kind = kind;
  R.cx_have_pkt = 0;
  R.cx_msg = -1;
  R.cx_chat_sent = R.cx_notice = R.cx_shown = R.cx_ack_sent = 0;
}

static void client_start(int node) {
  sim_cnode *n = &R.cn[node];
  udpc_client_config cfg;
  memset(&cfg, 0, sizeof cfg);
  if (udpc_nick_from_input(&cfg.nick, n->nick, strlen(n->nick)) != UDPC_OK)
    abort();
  memcpy(cfg.credential, n->cred, sizeof cfg.credential);
  cfg.server = node_addr(0);
  for (int i = 0; i < 4; i++) {
    uint64_t v = rng_next(&R.rng_seed);
    memcpy(cfg.seed + 8 * i, &v, 8);
  }
  cfg.io.ctx = (void *)(intptr_t)node;
  cfg.io.send = cli_send_cb;
  cfg.event = cli_event_cb;
  sim_mem_owner = node;
  n->c = udpc_client_new(&cfg, R.now);
  sim_mem_owner = SIM_MEM_NONE;
  if (n->c == NULL) {
    fail("udpc_client_new failed for %s", n->nick);
    return;
  }
  n->alive = 1;
  n->done = 0;
  n->n_server_down = 0;
  n->abandoned = 0;
  n->inc++;
  trace("%s starts (incarnation %d)", n->nick, n->inc);
  cx_begin(node, 0);
  sim_mem_owner = node;
  if (udpc_client_start(n->c, R.now) != UDPC_OK)
    fail("udpc_client_start failed for %s", n->nick);
  sim_mem_owner = SIM_MEM_NONE;
  client_after(node);
}

static void client_stop(int node, int crash) {
  sim_cnode *n = &R.cn[node];
  if (n->c == NULL) return;
  if (crash) {
    trace("%s crashes", n->nick);
    resolve_pending(node, OUT_CRASHED);
  }
  udpc_client_free(n->c);
  n->c = NULL;
  if (sim_mem_live[node] != 0)
    fail("%s's core leaked %" PRIu64 " bytes", n->nick, sim_mem_live[node]);
  n->alive = 0;
}

static void client_command(int node, const char *line, int msg) {
  sim_cnode *n = &R.cn[node];
  if (!n->alive || n->done) return;
  trace("%s types: %.120s", n->nick, line);
  cx_begin(node, msg >= 0 ? A_SEND : A_CMD);
  R.cx_msg = msg;
  sim_mem_owner = node;
  if (udpc_client_command(n->c, R.now, line, strlen(line)) != UDPC_OK)
    fail("udpc_client_command failed at %s", n->nick);
  sim_mem_owner = SIM_MEM_NONE;
  if (msg >= 0 && R.msgs[msg].state == MS_CMD) R.msgs[msg].state = MS_SAVE;
  client_after(node);
}

static const char *const FILLERS[] = {"hi",       "hello  there",
                                      " spaced ", "caf\xc3\xa9 ok",
                                      "x",        "long  long  text"};

static void do_send(int node, int to) {
  sim_cnode *n = &R.cn[node];
  if (!n->alive || n->done) return;
  if (R.n_msgs == R.cap_msgs) {
    R.cap_msgs = R.cap_msgs ? R.cap_msgs * 2 : 64;
    R.msgs = realloc(R.msgs, R.cap_msgs * sizeof *R.msgs);
    if (R.msgs == NULL) abort();
  }
  int m = (int)R.n_msgs++;
  sim_msg *g = &R.msgs[m];
  memset(g, 0, sizeof *g);
  g->from = node;
  g->to = to;
  snprintf(g->to_nick, sizeof g->to_nick, "%s",
           to < 0 ? "ghost" : R.cn[to].nick);
  g->state = MS_CMD;
  g->t_sent = R.now;
  char line[256];
  snprintf(line, sizeof line, "send %s m%d %s", g->to_nick, m,
           FILLERS[rng_below(&R.rng_work, 6)]);
  client_command(node, line, m);
}

/* ---- Server ------------------------------------------------------------------------- */
static const char *const SIM_OPERATORS[] = {"c1"};

static void store_mail_body(const udpc_nick *to, const uint8_t *text,
                            size_t len, uint64_t seq, int committed);
static void store_mail_cb(void *ctx, const udpc_nick *to, const udpc_nick *from,
                          uint32_t msg_id, const uint8_t *text, size_t len,
                          uint64_t seq, int committed) {
  int own = sim_mem_owner;
  sim_mem_owner = SIM_MEM_NONE;
  store_mail_body(to, text, len, seq, committed);
  sim_mem_owner = own;
  (void)ctx;
  (void)msg_id;
  (void)from;
}

static void store_mail_body(const udpc_nick *to, const uint8_t *text,
                            size_t len, uint64_t seq, int committed) {
  int m = parse_text(text, len);
  if (committed < 0) {
    fail("R40: the server stores a second copy of m%d for %s (seq %" PRIu64
         " still stored)",
         m, to->s, seq);
    return;
  }
  if (m >= 0 && !committed) {
    udpc_store_user u;
    R.msgs[m].seq = seq;
    /* user records are written at flush: this is the view at batch start */
    int n = R.msgs[m].to;
    /* K1 needs a new session of the recipient during the probe window */
    R.msgs[m].pre_online = udpc_store_user_get(R.st, to, &u) == UDPC_OK &&
                           u.status == UDPC_STATUS_ONLINE && n > 0 &&
                           R.reg_ok_t[n] != 0 &&
                           R.reg_ok_t[n] + UDPC_T_PROBE_TIMEOUT > R.now;
    if (R.n_batch_mail < 64) R.batch_mail[R.n_batch_mail++] = m;
  }
  if (m >= 0)
    trace("  store %s m%d for %s seq %" PRIu64,
          committed ? "commits" : "appends", m, to->s, seq);
}

static void server_start(void) {
  udpc_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  for (int i = 0; i < 4; i++) {
    uint64_t v = rng_next(&R.rng_seed);
    memcpy(cfg.seed + 8 * i, &v, 8);
  }
  cfg.operators = SIM_OPERATORS;
  cfg.n_operators = 1;
  cfg.store = R.st;
  cfg.mail_per_recipient = R.mail_quota;
  cfg.io.send = srv_send_cb;
  sim_mem_owner = 0;
  R.srv = udpc_server_new(&cfg, SIM_T0 + R.now);
  sim_mem_owner = SIM_MEM_NONE;
  if (R.srv == NULL) {
    fail("udpc_server_new failed");
    return;
  }
  R.srv_up = 1;
  R.srv_inc++;
  trace("server starts (incarnation %d)", R.srv_inc);
  sim_mem_owner = 0;
  if (udpc_server_flush(R.srv, SIM_T0 + R.now) != UDPC_OK)
    fail("udpc_server_flush failed at start");
  sim_mem_owner = SIM_MEM_NONE;
}

static void server_crash(void) {
  if (!R.srv_up) return;
  trace("server crashes (uncommitted store writes are lost)");
  udpc_server_free(R.srv);
  R.srv = NULL;
  R.srv_up = 0;
  R.flush_pending = 0;
  R.n_batch_mail = 0;

  sim_mem_owner = 0;
  if (sim_store_crash(R.st) != UDPC_OK) fail("store replay after crash failed");
  sim_mem_owner = SIM_MEM_NONE;
}

/* R60: no mail may be stored for a recipient the server holds online. The
 * server writes every changed user record, with its status, before each
 * commit, so the records are its view as of the last flush. A mail whose
 * recipient was online both before its batch and after it is a suspect;
 * if it is then lost, that is known bug K1 (reported in final_check). */
static void check_r60(void) {
  for (int i = 0; i < R.n_batch_mail; i++) {
    int m = R.batch_mail[i];
    sim_msg *g = &R.msgs[m];
    udpc_store_user u;
    udpc_nick to;
    if (g->to > 0 &&
        udpc_nick_from_input(&to, g->to_nick, strlen(g->to_nick)) == UDPC_OK &&
        udpc_store_user_get(R.st, &to, &u) == UDPC_OK &&
        u.status == UDPC_STATUS_ONLINE && g->pre_online)
      g->known_bug = 1; /* online before and after the batch */
  }
  R.n_batch_mail = 0;
}

static void schedule_flush(void) {
  if (R.flush_pending) return;
  R.flush_pending = 1;
  int *inc = malloc(sizeof *inc);
  if (inc == NULL) abort();
  *inc = R.srv_inc;
  push(R.now + R.flush_delay, HE_FLUSH, inc);
}

/* Planted "ignore the probe result": a SAVE for a recipient the server
 * has ONLINE is stored and answered SAVED at once, no probe. */
static int plant_probe(const sim_dgram *g, const udpc_packet *p) {
  udpc_store_user u;
  if (p->type != UDPC_PT_SAVE || g->src <= 0 ||
      udpc_store_user_get(R.st, &p->u.save.to, &u) != UDPC_OK ||
      u.status != UDPC_STATUS_ONLINE || !R.cn[g->src].alive ||
      udpc_client_state(R.cn[g->src].c) != UDPC_CS_ONLINE)
    return 0;
  udpc_nick from;
  if (udpc_nick_from_input(&from, R.cn[g->src].nick,
                           strlen(R.cn[g->src].nick)) != UDPC_OK)
    return 0;
  int rc = UDPC_OK;
  sim_mem_owner = 0;
  if (udpc_store_mail_find(R.st, &p->u.save.to, &from, p->u.save.msg_id,
                           p->u.save.text.p, p->u.save.text.len,
                           NULL) != UDPC_OK)
    rc = sim_store_force_mail(R.st, &p->u.save.to, &from, p->u.save.msg_id,
                              SIM_T0 + R.now, p->u.save.text.p,
                              p->u.save.text.len);
  sim_mem_owner = SIM_MEM_NONE;
  if (rc != UDPC_OK) return 0;
  udpc_packet r;
  memset(&r, 0, sizeof r);
  r.type = UDPC_PT_SAVE_RESULT;
  r.id = p->id;
  r.token = p->token;
  r.u.save_result.status = UDPC_SAVE_SAVED;
  uint8_t buf[UDPC_MAX_PACKET];
  int len = udpc_wire_encode(&r, buf, sizeof buf);
  if (len > 0) net_send(0, &g->from, buf, (size_t)len);
  return 1;
}

/* Planted "drop a table delta silently": the client gets the delta with its
 * entries replaced by an entry it already has, so its version moves on
 * while the change is lost. */
static void plant_delta(sim_dgram *g, int node) {
  udpc_packet p;
  udpc_entry e;
  if (udpc_wire_decode(&p, g->data, g->len) != UDPC_OK ||
      p.type != UDPC_PT_TABLE_DELTA ||
      udpc_client_table_get(R.cn[node].c, 0, &e) != UDPC_OK)
    return;
  p.u.table_delta.count = 1;
  p.u.table_delta.entries[0] = e;
  int len = udpc_wire_encode(&p, g->data, sizeof g->data);
  if (len > 0) g->len = (size_t)len;
}

static void deliver(sim_dgram *g) {
  R.inflight[g->src][g->dst]--;
  if (g->dst == 0) {
    if (!R.srv_up) {
      trace_pkt("drop(server down)", g->src, g->dst, g->data, g->len);
      return;
    }
    udpc_packet p;
    int ok = udpc_wire_decode(&p, g->data, g->len) == UDPC_OK;
    trace_pkt("recv", g->src, g->dst, g->data, g->len);
    if (ok && R.o.plant == PLANT_PROBE && plant_probe(g, &p)) return;
    sim_mem_owner = 0;
    if (udpc_server_recv(R.srv, SIM_T0 + R.now, &g->from, g->data, g->len) !=
        UDPC_OK)
      fail("udpc_server_recv failed");
    sim_mem_owner = SIM_MEM_NONE;
    schedule_flush();
    for (int i = 0; ok && i < R.n_rules; i++) {
      sim_rule *r = &R.rules[i];
      if (r->crash_server && (r->type < 0 || r->type == p.type) &&
          (r->src < 0 || r->src == g->src) && ++r->seen == r->nth) {
        trace("scripted: server crashes between receiving and answering");
        server_crash();
        act(R.now + (uint64_t)r->dst, A_SRESTART, 0);
      }
    }
    return;
  }
  sim_cnode *n = &R.cn[g->dst];
  udpc_addr cur = node_addr(g->dst);
  if (!n->alive || !udpc_addr_equal(&cur, &g->to)) {
    trace_pkt("drop(host down)", g->src, g->dst, g->data, g->len);
    return;
  }
  if (R.o.plant == PLANT_DELTA) plant_delta(g, g->dst);
  trace_pkt("recv", g->src, g->dst, g->data, g->len);
  cx_begin(g->dst, HE_DGRAM);
  R.cx_have_pkt = udpc_wire_decode(&R.cx_pkt, g->data, g->len) == UDPC_OK;
  sim_mem_owner = g->dst;
  if (udpc_client_recv(n->c, R.now, &g->from, g->data, g->len) != UDPC_OK)
    fail("udpc_client_recv failed at %s", n->nick);
  sim_mem_owner = SIM_MEM_NONE;
  if (R.o.plant == PLANT_DEDUPE && R.cx_have_pkt &&
      R.cx_pkt.type == UDPC_PT_CHAT && R.cx_ack_sent && !R.cx_shown)
    display(g->dst, &R.cx_pkt.u.chat.from, R.cx_pkt.u.chat.text.p,
            R.cx_pkt.u.chat.text.len, 0, 0);
  client_after(g->dst);
}

/* ---- Actions ---------------------------------------------------------------------- */
static void block_all(int a, int b, int d) {
  for (int i = 0; i <= R.k; i++)
    for (int j = 0; j <= R.k; j++) {
      if (i == j) continue;
      int hit =
          (a == -2) || (b == -1 && (i == a || j == a)) || (i == a && j == b);
      if (hit) R.block[i][j] += d;
    }
}

static const char *state_name(int st) {
  switch (st) {
    case UDPC_CS_REGISTERING: return "REGISTERING";
    case UDPC_CS_ONLINE: return "ONLINE";
    case UDPC_CS_OFFLINE: return "OFFLINE";
    case UDPC_CS_DONE: return "DONE";
    default: return "?";
  }
}

typedef struct {
  udpc_entry e[SIM_MAXN + 4];
  size_t n;
} srv_table;

static int collect_user(void *ctx, const udpc_store_user *u) {
  srv_table *t = ctx;
  if (t->n >= SIM_MAXN + 4) return 1;
  udpc_entry *e = &t->e[t->n++];
  memset(e, 0, sizeof *e);
  e->nick = u->nick;
  e->status = u->status;
  e->addr = u->addr;
  return 0;
}

static int entry_cmp(const void *a, const void *b) {
  const udpc_entry *x = a, *y = b;
  size_t n = x->nick.len < y->nick.len ? x->nick.len : y->nick.len;
  int c = memcmp(x->nick.s, y->nick.s, n);
  if (c != 0) return c;
  return (int)x->nick.len - (int)y->nick.len;
}

static void final_check(void) {
  trace("liveness phase over: checking the final oracles");
  srv_table t;
  t.n = 0;
  if (!R.srv_up) {
    fail("liveness: the server is not running at the end");
    return;
  }
  (void)udpc_store_user_foreach(R.st, collect_user, &t);
  qsort(t.e, t.n, sizeof t.e[0], entry_cmp);
  for (int i = 1; i <= R.k && !R.failed; i++) {
    sim_cnode *n = &R.cn[i];
    int st = n->alive ? udpc_client_state(n->c) : -1;
    if (st != UDPC_CS_ONLINE) {
      fail("liveness: %s is %s, not ONLINE, %.0f s after the faults healed",
           n->nick, n->alive ? state_name(st) : "not running",
           (double)(R.now - R.duration_ms) / 1000.0);
      break;
    }
    size_t cnt = udpc_client_table_count(n->c);
    if (cnt != t.n) {
      fail("liveness: %s's table has %zu entries, the server's %zu", n->nick,
           cnt, t.n);
      break;
    }
    for (size_t j = 0; j < cnt; j++) {
      udpc_entry e;
      (void)udpc_client_table_get(n->c, j, &e);
      if (strcmp(e.nick.s, t.e[j].nick.s) != 0 || e.status != t.e[j].status ||
          !udpc_addr_equal(&e.addr, &t.e[j].addr)) {
        fail("liveness: %s's table row %zu is %s %s, the server's %s %s",
             n->nick, j, e.nick.s, e.status ? "online" : "offline",
             t.e[j].nick.s, t.e[j].status ? "online" : "offline");
        break;
      }
    }
  }
  for (size_t i = 0; i < R.n_msgs && !R.failed; i++) {
    sim_msg *g = &R.msgs[i];
    if (g->n_out == 0)
      fail("message m%zu (%s -> %s) has no outcome for its sender", i,
           R.cn[g->from].nick, g->to_nick);
    else if ((g->outcome == OUT_DELIVERED || g->outcome == OUT_SAVED) &&
             g->shown == 0)
      fail("acknowledged message lost: m%zu (%s -> %s) was reported %s at "
           "%.3f but never shown",
           i, R.cn[g->from].nick, g->to_nick, OUT_NAMES[g->outcome],
           (double)g->t_out / 1000.0);
  }
  for (size_t i = 0; i < 16 && !R.failed; i++)
    if (R.exp_out[i] && (i >= R.n_msgs || R.msgs[i].outcome != R.exp_out[i]))
      fail("scenario: message m%zu ended %s, expected %s", i,
           i < R.n_msgs ? OUT_NAMES[R.msgs[i].outcome] : "(never sent)",
           OUT_NAMES[R.exp_out[i]]);
  for (int i = 1; i <= R.k && !R.failed; i++)
    if (R.exp_exit[i] && R.cn[i].first_exit != R.exp_exit[i] - 1)
      fail("scenario: %s exit status %d, expected %d", R.cn[i].nick,
           R.cn[i].first_exit, R.exp_exit[i] - 1);
}

static void run_act(sim_act *a) {
  sim_cnode *n = &R.cn[a->node];
  switch (a->op) {
    case A_CMD: client_command(a->node, a->line, -1); break;
    case A_SEND: do_send(a->node, a->a); break;
    case A_CRASH:
      if (n->alive) client_stop(a->node, 1);
      break;
    case A_RESTART:
      if (!n->alive) {
        if (a->a) n->port_gen++; /* restarted with another client port */
        client_start(a->node);
      }
      break;
    case A_SCRASH: server_crash(); break;
    case A_SRESTART:
      if (!R.srv_up) server_start();
      break;
    case A_BLOCK:
      trace("partition starts: %d -> %d", a->a, a->b);
      block_all(a->a, a->b, 1);
      break;
    case A_UNBLOCK:
      trace("partition heals: %d -> %d", a->a, a->b);
      block_all(a->a, a->b, -1);
      break;
    case A_NET:
      R.loss = a->a / 100.0;
      R.dup = a->b / 100.0;
      R.reorder = a->c / 100.0;
      trace("network: loss %.2f dup %.2f reorder %.2f", R.loss, R.dup,
            R.reorder);
      break;
    case A_HEAL:
      trace("faults heal: liveness phase");
      R.healed = 1;
      R.n_rules = 0;
      memset(R.block, 0, sizeof R.block);
      if (!R.srv_up) server_start();
      for (int i = 1; i <= R.k; i++)
        if (!R.cn[i].alive || R.cn[i].done) {
          client_stop(i, 0);
          client_start(i);
        }
      break;
    case A_FINAL:
      for (int i = 1; i <= R.k; i++) {
        sim_cnode *c = &R.cn[i];
        if (!c->alive || c->done) { /* exited after the heal: run it again */
          client_stop(i, 0);
          client_start(i);
          continue;
        }
        int st = udpc_client_state(c->c);
        char line[64];
        if (st == UDPC_CS_OFFLINE) {
          snprintf(line, sizeof line, "reg %s", c->nick);
          client_command(i, line, -1);
        } else if (a->a == 1 && st == UDPC_CS_ONLINE && c->abandoned) {
          c->abandoned = 0;
          snprintf(line, sizeof line, "dereg %s", c->nick);
          client_command(i, line, -1);
        }
      }
      break;
    case A_CHECK:
      final_check();
      R.stop = 1;
      break;
    default: break;
  }
}

/* ---- Main loop ---------------------------------------------------------------------- */
static void loop(void) {
  uint64_t same_t = 0, spins = 0;
  while (!R.stop) {
    uint64_t dl = UINT64_MAX;
    if (R.srv_up) {
      uint64_t d = udpc_server_next_deadline(R.srv);
      if (d != UINT64_MAX) dl = d > SIM_T0 ? d - SIM_T0 : 0;
    }
    for (int i = 1; i <= R.k; i++)
      if (R.cn[i].alive && !R.cn[i].done) {
        uint64_t d = udpc_client_next_deadline(R.cn[i].c);
        if (d < dl) dl = d;
      }
    uint64_t ht = R.n_heap ? R.heap[0].t : UINT64_MAX;
    if (dl == UINT64_MAX && ht == UINT64_MAX) break;
    R.events++;
    if (R.events > 5000000) {
      fail("runaway run: more than 5,000,000 events");
      break;
    }
    if (dl <= ht) {
      if (dl > R.now) R.now = dl;
      if (R.now == same_t) {
        if (++spins > 100000) {
          fail("a core's deadline does not advance (livelock at %.3f)",
               (double)R.now / 1000.0);
          break;
        }
      } else {
        same_t = R.now;
        spins = 0;
      }
      if (R.srv_up && udpc_server_next_deadline(R.srv) <= SIM_T0 + R.now) {
        sim_mem_owner = 0;
        udpc_server_handle_expiry(R.srv, SIM_T0 + R.now);
        sim_mem_owner = SIM_MEM_NONE;
        schedule_flush();
      }
      for (int i = 1; i <= R.k && !R.stop; i++) {
        sim_cnode *n = &R.cn[i];
        if (n->alive && !n->done && udpc_client_next_deadline(n->c) <= R.now) {
          cx_begin(i, 0);
          sim_mem_owner = i;
          udpc_client_handle_expiry(n->c, R.now);
          sim_mem_owner = SIM_MEM_NONE;
          client_after(i);
        }
      }
      continue;
    }
    hev e = pop();
    if (e.t > R.now) R.now = e.t;
    if (e.kind == HE_DGRAM) {
      deliver(e.p);
    } else if (e.kind == HE_FLUSH) {
      int inc = *(int *)e.p;
      if (R.srv_up && inc == R.srv_inc) {
        R.flush_pending = 0;
        int injected = !R.healed && R.commit_fail > 0 &&
                       rng_chance(&R.rng_net, R.commit_fail);
        if (injected) {
          int rollback = rng_chance(&R.rng_net, 0.5);
          trace("store commit fails (injected, %s)",
                rollback ? "rolled back" : "kept pending");
          sim_store_fail_next(R.st, rollback ? SIM_COMMIT_FAIL_ROLLBACK
                                             : SIM_COMMIT_FAIL_KEEP);
        }
        sim_mem_owner = 0;
        int rc = udpc_server_flush(R.srv, SIM_T0 + R.now);
        sim_mem_owner = SIM_MEM_NONE;
        sim_store_fail_next(R.st, 0); /* unused if nothing was committed */
        if (rc != UDPC_OK && !injected) fail("udpc_server_flush failed");
        if (rc != UDPC_OK) schedule_flush(); /* the server tries again */
        if (rc == UDPC_OK) check_r60();
      }
    } else {
      run_act(e.p);
    }
    free(e.p);
  }
}

/* ---- Scenarios ------------------------------------------------------------------------ */
#define S(x) ((uint64_t)((x)*1000.0))

static void net_clean(void) {
  R.loss = R.dup = R.reorder = 0;
  R.jitter = 2;
  R.queue_max = 256;
}

static void rule(int type, int src, int dst, uint32_t nth) {
  sim_rule *r = &R.rules[R.n_rules++];
  memset(r, 0, sizeof *r);
  r->type = type;
  r->src = src;
  r->dst = dst;
  r->nth = nth;
}

static void crash_rule(int type, uint32_t nth, int restart_ms) {
  sim_rule *r = &R.rules[R.n_rules++];
  memset(r, 0, sizeof *r);
  r->type = type;
  r->src = -1;
  r->dst = restart_ms;
  r->nth = nth;
  r->crash_server = 1;
}

static void sc_official1(void) {
  R.k = 3;
  net_clean();
  int n = 0;
  for (int a = 1; a <= 3; a++)
    for (int b = 1; b <= 3; b++)
      if (a != b) {
        send_at(S(1) + (uint64_t)n * 100, a, b);
        R.exp_out[n++] = OUT_DELIVERED;
      }
  cmd_at(S(3), 1, "dereg c1");
  send_at(S(5), 2, 1);
  send_at(S(6), 3, 1);
  R.exp_out[6] = R.exp_out[7] = OUT_SAVED;
  cmd_at(S(9), 1, "reg c1");
  for (int a = 1; a <= 3; a++) {
    cmd_at(S(15), a, "exit");
    R.exp_exit[a] = 1;
  }
  R.duration_ms = S(20);
}

static void sc_official2(void) {
  R.k = 3;
  net_clean();
  cmd_at(S(1), 2, "dereg c2");
  act(S(2), A_SCRASH, 0);
  send_at(S(2.5), 1, 3); /* peer chat works with the server down */
  send_at(S(3), 1, 2);   /* c2 offline: SAVE, 5 sends, server down */
  R.exp_out[0] = OUT_DELIVERED;
  R.exp_out[1] = OUT_EXITED;
  R.exp_exit[1] = 2;
  R.duration_ms = S(10);
}

static void sc_ack_lost(void) {
  R.k = 2;
  net_clean();
  rule(UDPC_PT_CHAT_ACK, 2, 1, 1);
  send_at(S(1), 1, 2); /* shown; ACK lost; SAVE; probe answered: exists */
  R.exp_out[0] = OUT_EXISTS;
  send_at(S(3), 1, 2); /* the resend after the fresh table */
  R.exp_out[1] = OUT_DELIVERED;
  R.duration_ms = S(6);
}

static void sc_request_lost(void) {
  R.k = 2;
  net_clean();
  rule(UDPC_PT_REGISTER, 1, 0, 1);
  rule(UDPC_PT_DEREG, 2, 0, 1);
  rule(UDPC_PT_DEREG_RESULT, 0, 2, 1);
  rule(UDPC_PT_SAVE, 1, 0, 1);
  rule(UDPC_PT_SAVE_RESULT, 0, 1, 1);
  rule(UDPC_PT_MAIL_REQ, 2, 0, 1);
  cmd_at(S(1), 2, "dereg c2");
  send_at(S(4), 1, 2);
  R.exp_out[0] = OUT_SAVED;
  cmd_at(S(8), 2, "reg c2");
  R.duration_ms = S(12);
}

static void sc_server_down_dereg(void) {
  R.k = 2;
  net_clean();
  crash_rule(UDPC_PT_DEREG, 1, 400); /* crash between DEREG and its answer */
  cmd_at(S(1), 2, "dereg c2");
  act(S(5), A_SCRASH, 0);
  cmd_at(S(5.5), 1, "dereg c1");
  R.exp_exit[1] = 2;
  R.duration_ms = S(10);
}

static void sc_server_down_save(void) {
  R.k = 3;
  net_clean();
  crash_rule(UDPC_PT_SAVE, 1, 700); /* crash between SAVE and its answer */
  cmd_at(S(1), 2, "dereg c2");
  send_at(S(3), 1, 2);
  R.exp_out[0] = OUT_SAVED;
  cmd_at(S(9), 2, "reg c2");
  cmd_at(S(12), 2, "dereg c2");
  act(S(13), A_SCRASH, 0);
  send_at(S(14), 3, 2);
  R.exp_out[1] = OUT_EXITED;
  R.exp_exit[3] = 2;
  R.duration_ms = S(20);
}

static void sc_silent_leave(void) {
  R.k = 2;
  net_clean();
  act(S(1), A_CRASH, 2);
  send_at(S(2), 1, 2); /* no ACK, SAVE, probe times out, SAVED */
  R.exp_out[0] = OUT_SAVED;
  act(S(8), A_RESTART, 2);
  R.duration_ms = S(12);
}

static void sc_reg_dereg_race(void) {
  R.k = 3;
  net_clean();
  R.jitter = 30;
  R.reorder = 0.3;
  R.reorder_ms = 80;
  for (int r = 0; r < 6; r++) {
    uint64_t t = S(1) + (uint64_t)r * S(4);
    uint64_t gap = 5 + (uint64_t)r * 15;
    cmd_at(t, 2, "dereg c2");
    send_at(t + gap / 2, 1, 2);
    send_at(t + gap, 3, 2);
    cmd_at(t + gap + 20, 2, "reg c2");
    send_at(t + gap + 25, 1, 2);
    send_at(t + gap + 40, 3, 2);
    cmd_at(t + gap + 60, 3, "list");
  }
  R.duration_ms = S(30);
}

static void sc_n_offline(void) {
  R.k = 6;
  net_clean();
  int n = 0;
  for (int i = 2; i <= 6; i++) cmd_at(S(1), i, "dereg c%d", i);
  for (int i = 2; i <= 6; i++)
    for (int r = 0; r < 2; r++) {
      send_at(S(3) + (uint64_t)n * 50, 1, i);
      R.exp_out[n++] = OUT_SAVED;
    }
  for (int i = 3; i <= 6; i++) send_at(S(4) + (uint64_t)i * 50, 2, i);
  for (int i = 2; i <= 6; i++) cmd_at(S(9) + (uint64_t)i * 7, i, "reg c%d", i);
  R.duration_ms = S(15);
}

static void sc_mail_pages(void) {
  R.k = 4;
  net_clean();
  R.loss = 0.05;
  R.dup = 0.05;
  R.reorder = 0.1;
  R.reorder_ms = 300;
  cmd_at(S(1), 4, "dereg c4");
  for (int i = 0; i < 45; i++) send_at(S(2) + (uint64_t)i * 150, 1 + i % 3, 4);
  cmd_at(S(12), 4, "reg c4");
  R.duration_ms = S(20);
}

/* Regression for K1 (fixed): the recipient restarts on another port while a
 * probe of its old session runs; the probe times out after the new session
 * began. The server must not store (the recipient is ONLINE and would never
 * fetch it): the sender gets RECIPIENT_ONLINE, `[Client c2 exists!!]`. */
static void sc_probe_rereg(void) {
  R.k = 2;
  net_clean();
  act(S(1), A_CRASH, 2);
  send_at(S(2), 1, 2);              /* CHAT lost; SAVE at ~2.5 s: probe */
  act(S(2.6), A_RESTART, 2)->a = 1; /* new port; registered by ~2.7 s */
  R.exp_out[0] = OUT_EXISTS;
  R.duration_ms = S(8);
}

/* Regression for K1 (fixed) without a restart: both PROBEs are lost, and the
 * recipient does dereg + reg (a new session) before the probe times out. */
static void sc_probe_dereg_reg(void) {
  R.k = 2;
  net_clean();
  rule(UDPC_PT_CHAT, 1, 2, 1);  /* the chat is lost: NO_ACK, SAVE */
  rule(UDPC_PT_PROBE, 0, 2, 1); /* both sends of the probe are lost */
  rule(UDPC_PT_PROBE, 0, 2, 2);
  send_at(S(2), 1, 2); /* SAVE sent at 2.5 s, at the server by ~2.53 s */
  /* dereg only after the SAVE surely arrived (else the server stores it
   * for an offline c2: "saved" would be right), and reg early enough for
   * the new session to begin before the probe times out (~3.0 s). */
  cmd_at(S(2.6), 2, "dereg c2");
  cmd_at(S(2.75), 2, "reg c2");
  R.exp_out[0] = OUT_EXISTS;
  R.duration_ms = S(8);
}

static void sc_reg_storm(void) {
  R.k = SIM_MAXC;
  net_clean();
  R.loss = 0.2;
  R.dup = 0.1;
  R.jitter = 40;
  for (int i = 1; i <= R.k; i++) send_at(S(8), i, i % R.k + 1);
  R.duration_ms = S(15);
}

/* ---- Random workload and fault mix (swarm testing) ------------------------------------ */
typedef struct {
  double loss, dup, reorder;
  int jitter, reorder_ms, queue, delay, partitions, crashes, scrashes;
  uint32_t drop_nth;
  int set;
  double commit_fail; /* probability that a store commit fails */
  int crash_on;       /* packet type: the server crashes right after
                         receiving the first one (before answering) */
} sim_faults;

static int parse_faults(const char *s, sim_faults *f) {
  memset(f, 0, sizeof *f);
  f->jitter = -1;
  f->queue = 256;
  f->delay = -1;
  f->reorder_ms = 200;
  f->set = 1;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    char *eq = strchr(tok, '=');
    double v = eq ? atof(eq + 1) : -1;
    if (eq) *eq = 0;
    if (strcmp(tok, "loss") == 0)
      f->loss = v;
    else if (strcmp(tok, "dup") == 0)
      f->dup = v;
    else if (strcmp(tok, "reorder") == 0)
      f->reorder = v;
    else if (strcmp(tok, "reorder_ms") == 0)
      f->reorder_ms = (int)v;
    else if (strcmp(tok, "jitter") == 0)
      f->jitter = (int)v;
    else if (strcmp(tok, "delay") == 0)
      f->delay = (int)v;
    else if (strcmp(tok, "queue") == 0)
      f->queue = (int)v;
    else if (strcmp(tok, "drop") == 0)
      f->drop_nth = (uint32_t)v;
    else if (strcmp(tok, "partition") == 0)
      f->partitions = v < 0 ? 2 : (int)v;
    else if (strcmp(tok, "crash") == 0)
      f->crashes = v < 0 ? 2 : (int)v;
    else if (strcmp(tok, "scrash") == 0)
      f->scrashes = v < 0 ? 1 : (int)v;
    else if (strcmp(tok, "commitfail") == 0)
      f->commit_fail = v;
    else if (strcmp(tok, "crashon") == 0)
      f->crash_on = (int)v;
    else if (strcmp(tok, "none") != 0)
      return -1;
  }
  return 0;
}

static void random_faults(sim_faults *f) {
  rng_t *g = &R.rng_work;
  memset(f, 0, sizeof *f);
  f->queue = 256;
  f->delay = -1;
  f->jitter = (int)rng_below(g, 40);
  f->reorder_ms = 50 + (int)rng_below(g, 600);
  if (rng_chance(g, 0.5)) f->loss = rng_unit(g) * 0.15;
  if (rng_chance(g, 0.4)) f->dup = rng_unit(g) * 0.1;
  if (rng_chance(g, 0.4)) f->reorder = rng_unit(g) * 0.2;
  if (rng_chance(g, 0.15)) f->queue = 2 + (int)rng_below(g, 8);
  if (rng_chance(g, 0.5)) f->partitions = 1 + (int)rng_below(g, 3);
  if (rng_chance(g, 0.4)) f->crashes = 1 + (int)rng_below(g, 3);
  if (rng_chance(g, 0.3)) f->scrashes = 1 + (int)rng_below(g, 2);
  if (rng_chance(g, 0.3)) f->drop_nth = 1 + rng_below(g, 300);
  if (rng_chance(g, 0.15)) f->commit_fail = rng_unit(g) * 0.3;
  if (rng_chance(g, 0.2)) {
    static const int types[] = {UDPC_PT_REGISTER,    UDPC_PT_SAVE,
                                UDPC_PT_DEREG,       UDPC_PT_MAIL_REQ,
                                UDPC_PT_DEREG_OTHER, UDPC_PT_PROBE_ACK};
    f->crash_on = types[rng_below(g, 6)];
  }
}

static void apply_faults(const sim_faults *f) {
  rng_t *g = &R.rng_work;
  uint64_t dur = R.duration_ms;
  R.loss = f->loss;
  R.dup = f->dup;
  R.reorder = f->reorder;
  R.reorder_ms = (uint32_t)f->reorder_ms;
  if (f->jitter >= 0) R.jitter = (uint32_t)f->jitter;
  R.queue_max = f->queue > 0 ? f->queue : 256;
  if (f->delay >= 0)
    for (int i = 0; i < SIM_MAXN; i++)
      for (int j = 0; j < SIM_MAXN; j++)
        R.base_delay[i][j] = (uint32_t)f->delay;
  if (f->drop_nth > 0 && R.n_rules < 8) rule(-1, -1, -1, f->drop_nth);
  if (f->crash_on > 0 && R.n_rules < 8)
    crash_rule(f->crash_on, 1 + rng_below(g, 3), (int)rng_below(g, 5000));
  R.commit_fail = f->commit_fail;
  if (dur < S(3)) return;
  for (int p = 0; p < f->partitions; p++) {
    uint64_t t0 = S(1) + rng_below(g, (uint32_t)(dur - S(2)));
    uint64_t t1 = t0 + 500 + rng_below(g, rng_chance(g, 0.3) ? 45000 : 8000);
    int kind = (int)rng_below(g, 4);
    int a = 1 + (int)rng_below(g, (uint32_t)R.k);
    int b = 1 + (int)rng_below(g, (uint32_t)R.k);
    int pairs[2][2];
    int np = 0;
    switch (kind) {
      case 0: pairs[np][0] = -2, pairs[np][1] = -2, np++; break; /* full */
      case 1: /* one-way: a client to the server, or the reverse */
        if (rng_chance(g, 0.5))
          pairs[np][0] = a, pairs[np][1] = 0, np++;
        else
          pairs[np][0] = 0, pairs[np][1] = a, np++;
        break;
      case 2: pairs[np][0] = 0, pairs[np][1] = -1, np++; break; /* server */
      default: /* one client cut from one peer */
        if (a == b) b = a % R.k + 1;
        pairs[np][0] = a, pairs[np][1] = b, np++;
        pairs[np][0] = b, pairs[np][1] = a, np++;
        break;
    }
    for (int i = 0; i < np; i++) {
      sim_act *x = act(t0, A_BLOCK, 0);
      x->a = pairs[i][0];
      x->b = pairs[i][1];
      x = act(t1, A_UNBLOCK, 0);
      x->a = pairs[i][0];
      x->b = pairs[i][1];
    }
  }
  for (int c = 0; c < f->crashes; c++) {
    uint64_t t0 = S(1) + rng_below(g, (uint32_t)(dur - S(1)));
    int node = 1 + (int)rng_below(g, (uint32_t)R.k);
    act(t0, A_CRASH, node);
    if (rng_chance(g, 0.8))
      act(t0 + 100 + rng_below(g, 20000), A_RESTART, node)->a =
          rng_chance(g, 0.3);
  }
  for (int c = 0; c < f->scrashes; c++) {
    uint64_t t0 = S(1) + rng_below(g, (uint32_t)(dur - S(1)));
    act(t0, A_SCRASH, 0);
    act(t0 + 1 + rng_below(g, 15000), A_SRESTART, 0);
  }
  if (f->loss > 0 || f->dup > 0 || f->reorder > 0) {
    /* swarm: the lossy period may start late or end early */
    if (rng_chance(g, 0.3)) {
      sim_act *x = act(rng_below(g, (uint32_t)dur), A_NET, 0);
      x->a = x->b = x->c = 0;
    }
  }
}

static void sc_random(void) {
  rng_t *g = &R.rng_work;
  if (R.k == 0) R.k = 2 + (int)rng_below(g, 5);
  if (R.duration_ms == 0) R.duration_ms = S(20) + rng_below(g, 60000);
  R.jitter = 10;
  R.queue_max = 256;
  uint32_t ops = (uint32_t)(R.duration_ms / 1000) * (1 + rng_below(g, 3)) / 2 +
                 1 + rng_below(g, 10);
  if (rng_chance(g, 0.15)) R.mail_quota = 2 + rng_below(g, 8);
  int w_send = 40 + (int)rng_below(g, 40), w_reg = (int)rng_below(g, 15),
      w_dereg = (int)rng_below(g, 12), w_list = (int)rng_below(g, 5),
      w_dereg_a = (int)rng_below(g, 6), w_exit = (int)rng_below(g, 4);
  int total = w_send + w_reg + w_dereg + w_list + w_dereg_a + w_exit;
  for (uint32_t i = 0; i < ops; i++) {
    uint64_t t = S(0.5) + rng_below(g, (uint32_t)(R.duration_ms - S(0.5)));
    int node = 1 + (int)rng_below(g, (uint32_t)R.k);
    int other = 1 + (int)rng_below(g, (uint32_t)R.k);
    int w = (int)rng_below(g, (uint32_t)total);
    if ((w -= w_send) < 0) {
      int to = rng_chance(g, 0.03) ? -1 : other;
      send_at(t, node, to);
      /* bursts: several messages to the same peer */
      if (rng_chance(g, 0.2))
        for (uint32_t b = 1 + rng_below(g, 4); b > 0; b--)
          send_at(t + rng_below(g, 300), node, to);
    } else if ((w -= w_reg) < 0) {
      cmd_at(t, node, "reg c%d", node);
    } else if ((w -= w_dereg) < 0) {
      cmd_at(t, node, "dereg c%d", node);
      if (rng_chance(g, 0.8))
        cmd_at(t + 200 + rng_below(g, 10000), node, "reg c%d", node);
    } else if ((w -= w_list) < 0) {
      cmd_at(t, node, "list");
    } else if ((w -= w_dereg_a) < 0) {
      cmd_at(t, rng_chance(g, 0.7) ? 1 : node, "deregA c%d", other);
    } else {
      cmd_at(t, node, "exit");
    }
  }
}

typedef struct {
  const char *name;
  void (*build)(void);
  const char *help;
} sim_scenario;

static const sim_scenario SCENARIOS[] = {
    {"official1", sc_official1,
     "assignment case 1: x,y,z chat; dereg x; y,z send to x; reg x; exit"},
    {"official2", sc_official2,
     "assignment case 2: dereg y; server stops; x sends to y: server down"},
    {"ack-lost", sc_ack_lost,
     "a CHAT_ACK is lost: NO_ACK, SAVE, probe answered: exists"},
    {"request-lost", sc_request_lost,
     "REGISTER, DEREG, DEREG_RESULT, SAVE, SAVE_RESULT, MAIL_REQ lost once"},
    {"server-down-dereg", sc_server_down_dereg,
     "server crashes between DEREG and its answer; later down for a dereg"},
    {"server-down-save", sc_server_down_save,
     "server crashes between SAVE and its answer; later down for a save"},
    {"silent-leave", sc_silent_leave,
     "recipient vanishes without dereg: probe times out, message saved"},
    {"reg-dereg-race", sc_reg_dereg_race,
     "dereg/reg cycles racing with sends and reordered table deltas"},
    {"n-offline", sc_n_offline, "five offline recipients, mail for each"},
    {"mail-pages", sc_mail_pages,
     "45 messages from 3 senders to one offline client: paged delivery"},
    {"probe-rereg", sc_probe_rereg,
     "K1 regression: recipient re-registers while its old session is probed"},
    {"probe-dereg-reg", sc_probe_dereg_reg,
     "K1 regression: recipient does dereg + reg while it is probed"},
    {"reg-storm", sc_reg_storm,
     "16 clients register at once over a lossy, duplicating network"},
    {"random", sc_random, "random workload and random fault mix per seed"},
};
#define N_SCENARIOS (sizeof SCENARIOS / sizeof SCENARIOS[0])

/* ---- One run ------------------------------------------------------------------------------ */
typedef struct {
  int failed;
  uint64_t sim_ms, msgs, dgrams, events;
  uint64_t out[OUT_COUNT];
  uint64_t peak_srv, peak_cli; /* bytes */
  uint64_t hash;               /* of every trace line of the run */
  int known;                   /* known core bugs hit */
} sim_result;

#define SIM_CLIENT_MEM_MAX (1u << 20)  /* bytes per client core */
#define SIM_SERVER_MEM_MAX (32u << 20) /* bytes: server core and its store */

static void free_cores_and_check(void) {
  R.stop = 0; /* fail() below still records */
  for (int i = 1; i <= R.k; i++) client_stop(i, 0);
  udpc_server_free(R.srv);
  R.srv = NULL;
  udpc_store_free(R.st);
  R.st = NULL;
  if (sim_mem_live[0] != 0)
    fail("the server core and store leaked %" PRIu64 " bytes", sim_mem_live[0]);
  for (int i = 0; i <= R.k; i++) {
    uint64_t bound = i == 0 ? SIM_SERVER_MEM_MAX : SIM_CLIENT_MEM_MAX;
    if (sim_mem_peak[i] > bound)
      fail("%s's core peaked at %" PRIu64 " bytes, over its bound %" PRIu64,
           node_name(i), sim_mem_peak[i], bound);
  }
}

static void run_free(void) {
  while (R.n_heap > 0) free(pop().p);
  free(R.heap);
  free(R.msgs);
  free(R.disp);
}

static void print_trace(void) {
  uint64_t n = R.n_trace < SIM_TRACE_RING ? R.n_trace : SIM_TRACE_RING;
  printf("  last %" PRIu64 " events:\n", n);
  for (uint64_t i = R.n_trace - n; i < R.n_trace; i++)
    printf("    %s\n", R.trace[i % SIM_TRACE_RING]);
}

static sim_result run_one(const sim_opts *o, const sim_scenario *sc) {
  memset(&R, 0, sizeof R);
  R.o = *o;
  R.stop = 0;
  R.hash = 0xCBF29CE484222325ULL;
  uint64_t x = o->seed;
  rng_seed(&R.rng_work, splitmix(&x));
  rng_seed(&R.rng_net, splitmix(&x));
  rng_seed(&R.rng_seed, splitmix(&x));
  R.k = o->clients > SIM_MAXC ? SIM_MAXC : o->clients;
  R.duration_ms = (uint64_t)(o->duration_s * 1000.0);
  R.flush_delay = rng_below(&R.rng_work, 3);
  R.reorder_ms = 200;
  R.queue_max = 256;
  for (int i = 0; i < SIM_MAXN; i++)
    for (int j = 0; j < SIM_MAXN; j++)
      R.base_delay[i][j] = 1 + rng_below(&R.rng_net, 25);
  sim_mem_reset_peaks();
  R.st = sim_store_new(o->plant == PLANT_UNSAFE_SAVE, store_mail_cb, NULL);
  if (R.st == NULL) abort();
  int k_opt = R.k;
  uint64_t d_opt = R.duration_ms;
  sc->build();
  if (sc->build != sc_random) {
    if (k_opt > R.k) R.k = k_opt; /* more clients: they idle */
    if (d_opt > R.duration_ms) R.duration_ms = d_opt;
  }
  sim_faults f;
  if (o->faults) {
    if (parse_faults(o->faults, &f) != 0) abort();
    apply_faults(&f);
  } else if (sc->build == sc_random) {
    random_faults(&f);
    apply_faults(&f);
  }
  for (int i = 1; i <= R.k; i++) {
    sim_cnode *n = &R.cn[i];
    snprintf(n->nick, sizeof n->nick, "c%d", i);
    memset(n->cred, 0xA0 + i, sizeof n->cred);
    n->first_exit = -1;
    act((uint64_t)(i - 1) * 7, A_RESTART, i);
  }
  server_start();
  uint64_t h = R.duration_ms;
  act(h, A_HEAL, 0);
  act(h + S(12), A_FINAL, 0)->a = 1;
  act(h + S(24), A_FINAL, 0)->a = 2;
  act(h + S(36), A_FINAL, 0)->a = 2;
  act(h + S(80), A_CHECK, 0);
  loop();
  uint64_t end = R.now;
  free_cores_and_check();
  sim_result res = {R.failed, end, R.n_msgs, R.n_dgrams, R.events,
                    {0},      0,   0,        0,          0};
  res.peak_srv = sim_mem_peak[0];
  res.hash = R.hash;
  res.known = R.known;
  if (R.known && !R.failed)
    printf("KNOWN BUG seed %" PRIu64 " scenario %s: %s\n", o->seed, sc->name,
           R.known_msg);
  for (int i = 1; i <= R.k; i++)
    if (sim_mem_peak[i] > res.peak_cli) res.peak_cli = sim_mem_peak[i];
  for (size_t i = 0; i < R.n_msgs; i++) res.out[R.msgs[i].outcome]++;
  if (R.failed) {
    printf("VIOLATION seed %" PRIu64 " scenario %s: %s\n", o->seed, sc->name,
           R.fail);
    print_trace();
  }
  run_free();
  return res;
}

/* ---- Command line ---------------------------------------------------------------------- */
static void usage(FILE *f) {
  fprintf(
      f, "usage: udpchat-sim [--seed N | --seeds A..B] [--scenario NAME|random|"
         "all]\n"
         "                   [--clients K] [--duration S] [--faults LIST]\n"
         "                   [--plant BUG] [--trace] [--expect-fail] [--list]\n"
         "  --faults: comma list of loss=P,dup=P,reorder=P,reorder_ms=MS,"
         "jitter=MS,\n"
         "            delay=MS,queue=N,drop=N,partition[=N],crash[=N],"
         "scrash[=N],none\n"
         "  --plant:  dedupe | unsafe-save | probe | delta\n"
         "  --expect-fail: stop at the first violation; exit 0 iff one was "
         "found\n"
         "  --twice: run every seed twice; fail if the two runs differ\n"
         "  --strict: known core bugs (sim/README.md) count as violations\n");
}

static void replay_cmd(const sim_opts *o, const char *scen) {
  printf("  replay: udpchat-sim --seed %" PRIu64 " --scenario %s", o->seed,
         scen);
  if (o->clients) printf(" --clients %d", o->clients);
  if (o->duration_s > 0) printf(" --duration %g", o->duration_s);
  if (o->faults) printf(" --faults %s", o->faults);
  if (o->plant) printf(" --plant %s", PLANT_NAMES[o->plant]);
  if (o->strict) printf(" --strict");
  printf(" --trace\n");
}

int main(int argc, char **argv) {
  sim_opts o;
  memset(&o, 0, sizeof o);
  o.scenario = "random";
  uint64_t a = 1, b = 1;
  int expect_fail = 0, twice = 0;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(s, "--list") == 0) {
      for (size_t j = 0; j < N_SCENARIOS; j++)
        printf("%-18s %s\n", SCENARIOS[j].name, SCENARIOS[j].help);
      printf("plants: dedupe unsafe-save probe delta\n");
      return 0;
    } else if (strcmp(s, "--trace") == 0) {
      o.trace = 1;
    } else if (strcmp(s, "--expect-fail") == 0) {
      expect_fail = 1;
    } else if (strcmp(s, "--twice") == 0) {
      twice = 1;
    } else if (strcmp(s, "--strict") == 0) {
      o.strict = 1;
    } else if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (v == NULL) {
      usage(stderr);
      return 2;
    } else if (strcmp(s, "--seed") == 0) {
      a = b = strtoull(v, NULL, 10);
      i++;
    } else if (strcmp(s, "--seeds") == 0) {
      char *end;
      a = strtoull(v, &end, 10);
      if (strncmp(end, "..", 2) != 0) {
        usage(stderr);
        return 2;
      }
      b = strtoull(end + 2, NULL, 10);
      i++;
    } else if (strcmp(s, "--scenario") == 0) {
      o.scenario = v;
      i++;
    } else if (strcmp(s, "--clients") == 0) {
      o.clients = atoi(v);
      i++;
    } else if (strcmp(s, "--duration") == 0) {
      o.duration_s = atof(v);
      i++;
    } else if (strcmp(s, "--faults") == 0) {
      sim_faults f;
      if (parse_faults(v, &f) != 0) {
        fprintf(stderr, "udpchat-sim: bad --faults %s\n", v);
        return 2;
      }
      o.faults = v;
      i++;
    } else if (strcmp(s, "--plant") == 0) {
      o.plant = -1;
      for (int p = 1; p < PLANT_COUNT; p++)
        if (strcmp(v, PLANT_NAMES[p]) == 0) o.plant = p;
      if (o.plant < 0) {
        fprintf(stderr, "udpchat-sim: unknown --plant %s\n", v);
        return 2;
      }
      i++;
    } else {
      usage(stderr);
      return 2;
    }
  }
  const sim_scenario *list[N_SCENARIOS];
  size_t n_list = 0;
  for (size_t j = 0; j < N_SCENARIOS; j++)
    if (strcmp(o.scenario, "all") == 0
            ? SCENARIOS[j].build != sc_random
            : strcmp(o.scenario, SCENARIOS[j].name) == 0)
      list[n_list++] = &SCENARIOS[j];
  if (n_list == 0 || b < a) {
    fprintf(stderr, "udpchat-sim: unknown scenario %s (see --list)\n",
            o.scenario);
    return 2;
  }
  clock_t c0 = clock();
  uint64_t known = 0, runs = 0, fails = 0, sim_ms = 0, msgs = 0, dgrams = 0;
  uint64_t failed_seeds[20], outs[OUT_COUNT] = {0}, psrv = 0, pcli = 0;
  int stop = 0;
  for (uint64_t seed = a; seed <= b && !stop; seed++) {
    for (size_t j = 0; j < n_list && !stop; j++) {
      o.seed = seed;
      sim_result r = run_one(&o, list[j]);
      if (twice && !r.failed) {
        sim_opts quiet = o;
        quiet.trace = 0;
        sim_result r2 = run_one(&quiet, list[j]);
        if (r2.hash != r.hash || r2.events != r.events) {
          printf("VIOLATION seed %" PRIu64 " scenario %s: not deterministic: "
                 "two runs differ (%" PRIu64 " vs %" PRIu64 " events)\n",
                 seed, list[j]->name, r.events, r2.events);
          r.failed = 1;
        }
      }
      runs++;
      if (r.known && !r.failed) known++;
      sim_ms += r.sim_ms;
      msgs += r.msgs;
      dgrams += r.dgrams;
      for (int j2 = 0; j2 < OUT_COUNT; j2++) outs[j2] += r.out[j2];
      if (r.peak_srv > psrv) psrv = r.peak_srv;
      if (r.peak_cli > pcli) pcli = r.peak_cli;
      if (r.failed) {
        replay_cmd(&o, list[j]->name);
        if (fails < 20) failed_seeds[fails] = seed;
        fails++;
        if (expect_fail) stop = 1;
      } else if (a == b) {
        printf("ok seed %" PRIu64 " scenario %s: %.1f simulated s, %" PRIu64
               " messages, %" PRIu64 " datagrams, %" PRIu64 " events\n",
               seed, list[j]->name, (double)r.sim_ms / 1000.0, r.msgs, r.dgrams,
               r.events);
      }
      if (seed == UINT64_MAX) stop = 1;
    }
  }
  double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
  if (a != b || n_list > 1 || expect_fail) {
    printf("runs %" PRIu64 " (seeds %" PRIu64 "..%" PRIu64 ", scenario %s%s%s)"
           ": %.0f simulated s, %" PRIu64 " messages, %" PRIu64
           " datagrams, %" PRIu64 " failed; %.2f s CPU, %.0f runs/s\n",
           runs, a, a + runs / n_list - (runs % n_list == 0 && runs ? 1 : 0),
           o.scenario, o.plant ? ", plant " : "",
           o.plant ? PLANT_NAMES[o.plant] : "", (double)sim_ms / 1000.0, msgs,
           dgrams, fails, secs, secs > 0 ? (double)runs / secs : 0.0);
    if (known > 0)
      printf("KNOWN BUGS hit in %" PRIu64 " runs (tolerated; --strict fails "
             "them): see sim/README.md\n",
             known);
    printf("outcomes:");
    for (int j = 1; j < OUT_COUNT; j++)
      printf(" %s=%" PRIu64, OUT_NAMES[j], outs[j]);
    printf("\npeak core memory: server+store %" PRIu64 " bytes, client %" PRIu64
           " bytes\n",
           psrv, pcli);
    if (fails > 0) {
      printf("failed seeds:");
      for (uint64_t i = 0; i < fails && i < 20; i++)
        printf(" %" PRIu64, failed_seeds[i]);
      printf("%s\n", fails > 20 ? " ..." : "");
    }
  }
  if (expect_fail) {
    if (fails == 0) {
      printf("EXPECTED a violation (planted bug not caught in %" PRIu64
             " runs)\n",
             runs);
      return 1;
    }
    printf("caught after %" PRIu64 " runs (seed %" PRIu64 ")\n", runs,
           failed_seeds[0]);
    return 0;
  }
  return fails > 0 ? 1 : 0;
}
