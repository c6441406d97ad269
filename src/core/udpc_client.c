/*
 * udpc_client.c - the sans-IO client core (PROTOCOL.md P4-P10).
 *
 * Input: datagrams (udpc_client_recv), typed lines (udpc_client_command) and
 * the passing of time (udpc_client_handle_expiry). Output: datagrams through
 * io.send and display events through cfg->event. No sockets, clocks, stdio
 * or OS randomness here; every packet goes through udpc_wire_encode /
 * udpc_wire_decode.
 *
 * Follows PROTOCOL.md P4-P8 and P11 (R26-R38, R48, R53-R58, R62-R73, R79,
 * R81-R83). Choices the protocol leaves to the client:
 * - Ids: one u32 counter started at udpc_rand_u32 of the seed (udpc_rand).
 * - Queue: typed commands may fill 64 entries; internal requests (SAVE of an
 *   un-ACKed chat, snapshot, mail, exit's DEREG) bypass the bound (P4.4);
 *   an internal request never goes behind exit's DEREG. Page follow-ups
 *   replace the request in flight. At most one snapshot pending at a time.
 * - `send` to a nick our table lists OFFLINE or does not list: SAVE at once,
 *   nothing shown until the SAVE_RESULT (P7.1).
 * - Incoming CHAT is accepted while ONLINE and during a silent
 *   re-registration (the table is still valid then), never while OFFLINE
 *   (R69). CHAT_ACK is accepted in any state for a chat still outstanding.
 * - A chat whose ACK wait ends while OFFLINE is not saved:
 *   "[No ACK from <nick>; you are offline, message not delivered.]".
 * - Going OFFLINE drops the queue; each dropped SAVE is reported:
 *   "[Message to <nick> not sent: you are offline.]".
 * - Every successful registration resets the table version to 0 (versions
 *   are not comparable across sessions, P6.1) and takes a snapshot; the
 *   stale rows stay visible to `list` until it completes.
 * - Snapshot walk (P6.2): page and delta entries are merged by nick into
 *   a hashed buffer with a version stamp each; it becomes the table
 *   (sorted) on completion. The pages stop when UDPC_CLIENT_TABLE_MAX
 *   entries are held. While the pages have reached the end and the
 *   deltas have not yet reached the latest page's version (at most
 *   500 ms), the request queue goes on.
 * - A page with the walk's request id but another start than asked, or
 *   empty while start < total, restarts the walk at 0.
 * - Deltas are applied to the sorted table by one merge pass.
 * - `exit` while ONLINE waits for chats awaiting their ACK before sending
 *   its DEREG (P8.6 SHOULD). DEREG_RESULT STORE_ERROR for exit's DEREG:
 *   "[Server storage error, try again later.]", `[Exiting]`, status 1.
 * - ERROR MALFORMED for REGISTER is handled like a refusal (start-up: exit
 *   1; else OFFLINE); for exit's DEREG: `[Exiting]`, status 1.
 * - Commands needing a session during start-up or `reg` registration:
 *   "[Registration in progress, please wait.]".
 * - The dedupe memory keeps 128 senders (least recently used evicted).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udpc_client.h"
#include "udpc_rand.h"
#include "udpchat.h"

/* Physical queue size: 64 user requests + 64 SAVEs of expired chats + a few
 * internal requests (snapshot, mail, exit's DEREG, a re-queued request). */
#define CQ_CAP (UDPC_CLIENT_QUEUE_MAX + UDPC_CLIENT_CHATS_MAX + 8)

typedef struct {
  uint8_t type;     /* UDPC_PT_* */
  uint8_t for_exit; /* DEREG issued by `exit` */
  uint32_t id;
  int sends;
  uint64_t deadline;
  uint32_t start;    /* TABLE_REQ */
  uint64_t ack_upto; /* MAIL_REQ */
  uint32_t msg_id;   /* SAVE */
  udpc_nick nick;    /* SAVE to, DEREG_OTHER target */
  uint16_t text_len; /* SAVE */
  uint8_t text[UDPC_TEXT_MAX];
} creq;

typedef struct {
  int used;
  uint32_t id;
  udpc_nick to;
  udpc_addr addr;
  uint64_t deadline;
  uint16_t text_len;
  uint8_t text[UDPC_TEXT_MAX];
} cchat;

typedef struct {
  udpc_nick nick; /* len 0: unused slot */
  uint64_t used_at;
  uint32_t ids[UDPC_CLIENT_DEDUPE_IDS];
  uint8_t n;
  uint8_t pos;
} csender;

typedef struct {
  udpc_entry *v;
  size_t n;
  size_t cap;
} ctable;

/* The walk buffer: entries (t.v) with a stamp each (the version their
 * state is from), and an open-addressing hash index by nick (slot = entry
 * index + 1, 0 empty; linear probing; at most half full). A REMOVED entry
 * stays as a tombstone with its stamp, so an older page cannot bring it
 * back. */
typedef struct {
  ctable t;
  uint64_t *stamp; /* scap of them */
  size_t scap;
  uint32_t *slot;
  size_t nslots; /* 0 or a power of two */
} cbuf;

/* Walk phases. */
enum {
  WALK_NONE = 0, /* no snapshot queued or running */
  WALK_REQ = 1,  /* TABLE_REQ queued or in flight */
  WALK_WAIT = 2, /* pages reached the end; waiting for deltas up to pmax */
};

struct udpc_client {
  udpc_client_config cfg;
  int state;
  int started;
  int exit_status;
  int ever_online; /* a refusal before the first success exits (status 1) */
  int exiting;
  udpc_rand rng;
  uint32_t next_id;
  uint64_t token;

  /* registration */
  uint8_t cookie_len;
  uint8_t cookie[UDPC_COOKIE_MAX];
  int cookie_rounds;
  int silent; /* re-registration after BAD_SESSION: no Welcome line */

  /* server requests */
  int inflight_active;
  creq inflight;
  creq queue[CQ_CAP];
  size_t q_head;
  size_t q_len;

  /* heartbeat */
  uint64_t hb_deadline;
  uint32_t hb_id;
  int hb_sent;

  /* table */
  ctable table;
  uint64_t table_version;    /* 0: none since the last registration */
  uint64_t max_seen_version; /* highest version seen in a delta / ACK */

  /* snapshot walk (P6.2 R53 R54); snap_pending: walk != WALK_NONE */
  int snap_pending;
  int walk;               /* WALK_* */
  cbuf buf;               /* entries of the walk, keyed by nick, with stamps */
  int have_v0;            /* the page with start 0 has arrived */
  uint64_t chain;         /* highest version seen contiguously (from v0) */
  uint64_t pmax;          /* version of the latest accepted page */
  uint64_t wait_deadline; /* WALK_WAIT: restart when chain < pmax then */

  /* mail delivery */
  int mail_active;
  int mail_shown;
  uint64_t mail_last_seq;

  /* chats waiting for an ACK */
  cchat chats[UDPC_CLIENT_CHATS_MAX];

  /* R94: CHATs from senders the table does not (yet) list, held for at
   * most 500 ms and checked again at every table change. */
  struct {
    int used;
    uint64_t t;
    udpc_addr from;
    size_t len;
    uint8_t data[UDPC_MAX_PACKET];
  } held[UDPC_CLIENT_HELD_CHATS];

  /* duplicate suppression: per sender, the last 64 msg ids shown */
  csender senders[UDPC_CLIENT_DEDUPE_SENDERS];
  uint64_t lru_clock;
};

/* ---- Small helpers -------------------------------------------------------- */

static int nick_eq(const udpc_nick *a, const udpc_nick *b) {
  return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static int nick_cmp(const udpc_nick *a, const udpc_nick *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int r = memcmp(a->s, b->s, n);
  if (r != 0) {
    return r;
  }
  return (int)a->len - (int)b->len;
}

static void client_log(const udpc_client *c, int level, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void client_log(const udpc_client *c, int level, const char *fmt, ...) {
  char buf[256];
  va_list ap;
  if (c->cfg.io.log == NULL ||
      (c->cfg.io.log_limit != 0 && level >= c->cfg.io.log_limit)) {
    return; /* not wanted: not even formatted (udpc_io.log_limit) */
  }
  va_start(ap, fmt);
  (void)vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  c->cfg.io.log(c->cfg.io.ctx, level, buf);
}

static void emit(udpc_client *c, udpc_event *ev) {
  if (c->cfg.event != NULL) {
    c->cfg.event(c->cfg.io.ctx, ev);
  }
}

static void emit_simple(udpc_client *c, int type, int status,
                        const udpc_nick *nick) {
  udpc_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = type;
  ev.status = status;
  if (nick != NULL) {
    ev.nick = *nick;
  }
  emit(c, &ev);
}

static void notice(udpc_client *c, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void notice(udpc_client *c, const char *fmt, ...) {
  char buf[512];
  udpc_event ev;
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) {
    return;
  }
  if ((size_t)n >= sizeof buf) {
    n = (int)sizeof buf - 1;
  }
  memset(&ev, 0, sizeof ev);
  ev.type = UDPC_EV_NOTICE;
  ev.text.p = (const uint8_t *)buf;
  ev.text.len = (uint16_t)n;
  emit(c, &ev);
}

static uint32_t new_id(udpc_client *c) { return c->next_id++; }

static void send_pkt(udpc_client *c, const udpc_addr *to,
                     const udpc_packet *p) {
  uint8_t buf[UDPC_MAX_PACKET];
  int n = udpc_wire_encode(p, buf, sizeof buf);
  if (n < 0) {
    client_log(c, 0, "client: cannot encode %s: %s", udpc_ptype_name(p->type),
               udpc_strerror(n));
    return;
  }
  c->cfg.io.send(c->cfg.io.ctx, to, buf, (size_t)n);
}

static void done(udpc_client *c, int status) {
  c->state = UDPC_CS_DONE;
  c->exit_status = status;
  c->inflight_active = 0;
  c->q_len = 0;
  for (size_t i = 0; i < UDPC_CLIENT_CHATS_MAX; i++) {
    c->chats[i].used = 0;
  }
}

static void exit_now(udpc_client *c, int status) {
  emit_simple(c, UDPC_EV_EXITING, 0, NULL);
  done(c, status);
}

/* ---- Table -------------------------------------------------------------- */

/* Index of nick, or -(insertion point) - 1. */
static long table_search(const ctable *t, const udpc_nick *nick) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = nick_cmp(&t->v[mid].nick, nick);
    if (r == 0) {
      return (long)mid;
    }
    if (r < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return -(long)lo - 1;
}

static const udpc_entry *table_find(const udpc_client *c,
                                    const udpc_nick *nick) {
  long i = table_search(&c->table, nick);
  return i >= 0 ? &c->table.v[i] : NULL;
}

static int table_reserve(ctable *t, size_t want) {
  size_t cap;
  udpc_entry *v;
  if (want <= t->cap) {
    return UDPC_OK;
  }
  if (want > UDPC_CLIENT_TABLE_MAX) {
    return UDPC_ERR_NOMEM;
  }
  cap = t->cap == 0 ? 64 : t->cap * 2;
  while (cap < want) {
    cap *= 2;
  }
  if (cap > UDPC_CLIENT_TABLE_MAX) {
    cap = UDPC_CLIENT_TABLE_MAX;
  }
  v = realloc(t->v, cap * sizeof *v);
  if (v == NULL) {
    return UDPC_ERR_NOMEM;
  }
  t->v = v;
  t->cap = cap;
  return UDPC_OK;
}

static int entry_cmp(const void *a, const void *b) {
  return nick_cmp(&((const udpc_entry *)a)->nick,
                  &((const udpc_entry *)b)->nick);
}

/* One entry of a delta and its position in the delta (stable sort). */
typedef struct {
  const udpc_entry *e;
  size_t pos;
} cdent;

static int dent_cmp(const void *a, const void *b) {
  const cdent *x = a, *y = b;
  int r = nick_cmp(&x->e->nick, &y->e->nick);
  if (r != 0) {
    return r;
  }
  return x->pos < y->pos ? -1 : (x->pos > y->pos ? 1 : 0);
}

/* P6.3 R57: apply a delta's entries in order (insert or replace by nick;
 * REMOVED deletes) to the sorted table. The entries are sorted (the last
 * one of a nick wins, as if applied in order), replacements and removals
 * are found by binary search, and the new entries are merged in from the
 * back in one pass: O(n + k log n) for k entries, not k shifts of the
 * whole table. */
static void table_apply(udpc_client *c, const udpc_entry *v, size_t k) {
  cdent d[UDPC_TABLE_PAGE_MAX];
  const udpc_entry *ins[UDPC_TABLE_PAGE_MAX];
  size_t nins = 0;
  ctable *t = &c->table;
  if (k > UDPC_TABLE_PAGE_MAX) {
    k = UDPC_TABLE_PAGE_MAX;
  }
  for (size_t i = 0; i < k; i++) {
    d[i].e = &v[i];
    d[i].pos = i;
  }
  if (k > 1) {
    qsort(d, k, sizeof d[0], dent_cmp);
  }
  for (size_t i = 0; i < k; i++) {
    const udpc_entry *e = d[i].e;
    long at;
    if (i + 1 < k && nick_eq(&e->nick, &d[i + 1].e->nick)) {
      continue; /* a later entry of the same nick wins */
    }
    at = table_search(t, &e->nick);
    if (e->status == UDPC_STATUS_REMOVED) {
      if (at >= 0) {
        size_t x = (size_t)at;
        memmove(&t->v[x], &t->v[x + 1], (t->n - x - 1) * sizeof t->v[0]);
        t->n--;
      }
      continue;
    }
    if (at >= 0) {
      t->v[at] = *e;
      continue;
    }
    ins[nins++] = e; /* sorted by nick, like the table */
  }
  if (nins == 0) {
    return;
  }
  if (t->n + nins > UDPC_CLIENT_TABLE_MAX) {
    client_log(c, 1, "client: table full, %zu new entries not kept",
               t->n + nins - UDPC_CLIENT_TABLE_MAX);
    nins = UDPC_CLIENT_TABLE_MAX - t->n;
  }
  if (nins == 0 || table_reserve(t, t->n + nins) != UDPC_OK) {
    client_log(c, 1, "client: no memory, %zu new entries not kept", nins);
    return;
  }
  {
    size_t i = t->n, j = nins, w = t->n + nins;
    while (j > 0) {
      if (i > 0 && nick_cmp(&t->v[i - 1].nick, &ins[j - 1]->nick) > 0) {
        t->v[--w] = t->v[--i];
      } else {
        t->v[--w] = *ins[--j];
      }
    }
    t->n += nins;
  }
}

/* ---- Walk buffer (P6.2) --------------------------------------------------- */

#define CBUF_SLOTS_MIN 256u

static size_t nick_hash(const udpc_nick *n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n->len; i++) {
    h ^= (uint8_t)n->s[i];
    h *= 16777619u;
  }
  return h;
}

/* Index of nick in b, or -1 and (if slot_out) the empty slot it would
 * take. */
static long buf_find(const cbuf *b, const udpc_nick *nick, size_t *slot_out) {
  size_t mask, h;
  if (b->nslots == 0) {
    return -1;
  }
  mask = b->nslots - 1;
  for (h = nick_hash(nick) & mask;; h = (h + 1) & mask) {
    uint32_t s = b->slot[h];
    if (s == 0) {
      if (slot_out != NULL) {
        *slot_out = h;
      }
      return -1;
    }
    if (nick_eq(&b->t.v[s - 1].nick, nick)) {
      return (long)(s - 1);
    }
  }
}

static void buf_clear(cbuf *b) {
  b->t.n = 0;
  if (b->slot != NULL) {
    memset(b->slot, 0, b->nslots * sizeof b->slot[0]);
  }
}

static void buf_free(cbuf *b) {
  free(b->t.v);
  free(b->stamp);
  free(b->slot);
  memset(b, 0, sizeof *b);
}

/* Room for one more entry: arrays and a hash index at most half full. */
static int buf_room(cbuf *b) {
  size_t want = b->t.n + 1;
  if (table_reserve(&b->t, want) != UDPC_OK) {
    return UDPC_ERR_NOMEM;
  }
  if (b->t.cap > b->scap) {
    uint64_t *st = realloc(b->stamp, b->t.cap * sizeof *st);
    if (st == NULL) {
      return UDPC_ERR_NOMEM;
    }
    b->stamp = st;
    b->scap = b->t.cap;
  }
  if (want * 2 > b->nslots) {
    size_t ns = b->nslots == 0 ? CBUF_SLOTS_MIN : b->nslots * 2;
    uint32_t *sl;
    while (want * 2 > ns) {
      ns *= 2;
    }
    sl = calloc(ns, sizeof *sl);
    if (sl == NULL) {
      return UDPC_ERR_NOMEM;
    }
    free(b->slot);
    b->slot = sl;
    b->nslots = ns;
    for (size_t i = 0; i < b->t.n; i++) {
      size_t h = 0;
      (void)buf_find(b, &b->t.v[i].nick, &h);
      b->slot[h] = (uint32_t)(i + 1);
    }
  }
  return UDPC_OK;
}

/* Merge entry e, whose state is from version `stamp`, into the walk
 * buffer. A page entry (page = 1) does not overwrite a buffered entry with
 * a newer stamp (one a delta brought); a delta entry always replaces (the
 * chain of deltas only moves forward). REMOVED stays as a tombstone. */
static void buf_put(udpc_client *c, const udpc_entry *e, uint64_t stamp,
                    int page) {
  cbuf *b = &c->buf;
  size_t h = 0;
  long i = buf_find(b, &e->nick, NULL);
  if (i >= 0) {
    if (page && b->stamp[i] > stamp) {
      return;
    }
    b->t.v[i] = *e;
    b->stamp[i] = stamp;
    return;
  }
  if (b->t.n >= UDPC_CLIENT_TABLE_MAX || buf_room(b) != UDPC_OK) {
    client_log(c, 1, "client: walk buffer full, entry %s not kept", e->nick.s);
    return;
  }
  (void)buf_find(b, &e->nick, &h);
  b->t.v[b->t.n] = *e;
  b->stamp[b->t.n] = stamp;
  b->slot[h] = (uint32_t)(b->t.n + 1);
  b->t.n++;
}

/* Empty the walk: no page seen yet. */
static void walk_reset(udpc_client *c) {
  buf_clear(&c->buf);
  c->have_v0 = 0;
  c->chain = 0;
  c->pmax = 0;
}

/* No walk any more (failed, refused, offline): the old table stays. */
static void walk_abandon(udpc_client *c) {
  c->walk = WALK_NONE;
  c->snap_pending = 0;
  walk_reset(c);
  buf_free(&c->buf);
}

/* The walk failed (its page request got no answer, was refused as
 * MALFORMED, or could not be queued): the old rows stay, but the version is
 * forgotten (P6.2), so the next delta or HEARTBEAT_ACK starts a new walk
 * instead of applying a delta to a table that may lack entries the server
 * left out of the deltas it sent during the walk (P6.3 "Walking
 * sessions"). */
static void walk_fail(udpc_client *c) {
  walk_abandon(c);
  c->table_version = 0;
}

/* ---- Dedupe window -------------------------------------------------------- */

static csender *sender_find(udpc_client *c, const udpc_nick *nick) {
  for (size_t i = 0; i < UDPC_CLIENT_DEDUPE_SENDERS; i++) {
    if (c->senders[i].nick.len != 0 && nick_eq(&c->senders[i].nick, nick)) {
      return &c->senders[i];
    }
  }
  return NULL;
}

static int dedupe_seen(udpc_client *c, const udpc_nick *nick, uint32_t id) {
  csender *s = sender_find(c, nick);
  if (s == NULL) {
    return 0;
  }
  for (size_t i = 0; i < s->n; i++) {
    if (s->ids[i] == id) {
      return 1;
    }
  }
  return 0;
}

static void dedupe_add(udpc_client *c, const udpc_nick *nick, uint32_t id) {
  csender *s = sender_find(c, nick);
  if (s == NULL) {
    /* take an unused slot, else evict the least recently used sender */
    s = &c->senders[0];
    for (size_t i = 0; i < UDPC_CLIENT_DEDUPE_SENDERS; i++) {
      csender *x = &c->senders[i];
      if (x->nick.len == 0) {
        s = x;
        break;
      }
      if (x->used_at < s->used_at) {
        s = x;
      }
    }
    memset(s, 0, sizeof *s);
    s->nick = *nick;
  }
  s->ids[s->pos] = id;
  s->pos = (uint8_t)((s->pos + 1u) % UDPC_CLIENT_DEDUPE_IDS);
  if (s->n < UDPC_CLIENT_DEDUPE_IDS) {
    s->n++;
  }
  s->used_at = ++c->lru_clock;
}

/* ---- Request queue -------------------------------------------------------- */

static creq *q_at(udpc_client *c, size_t i) {
  return &c->queue[(c->q_head + i) % CQ_CAP];
}

/* Append; an internal request goes before exit's DEREG if that is last, so
 * that nothing is left behind the DEREG that ends the client. */
static int q_push_back(udpc_client *c, const creq *r) {
  if (c->q_len >= CQ_CAP) {
    return UDPC_ERR_NOMEM;
  }
  *q_at(c, c->q_len) = *r;
  c->q_len++;
  if (c->q_len >= 2 && !r->for_exit && q_at(c, c->q_len - 2)->for_exit) {
    creq tmp = *q_at(c, c->q_len - 2);
    *q_at(c, c->q_len - 2) = *q_at(c, c->q_len - 1);
    *q_at(c, c->q_len - 1) = tmp;
  }
  return UDPC_OK;
}

static int q_push_front(udpc_client *c, const creq *r) {
  if (c->q_len >= CQ_CAP) {
    return UDPC_ERR_NOMEM;
  }
  c->q_head = (c->q_head + CQ_CAP - 1) % CQ_CAP;
  c->q_len++;
  *q_at(c, 0) = *r;
  return UDPC_OK;
}

static int chats_outstanding(const udpc_client *c) {
  for (size_t i = 0; i < UDPC_CLIENT_CHATS_MAX; i++) {
    if (c->chats[i].used) {
      return 1;
    }
  }
  return 0;
}

/* Send (or resend) the request in flight. */
static void send_inflight(udpc_client *c, uint64_t now) {
  creq *r = &c->inflight;
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = r->type;
  p.id = r->id;
  p.token = c->token;
  switch (r->type) {
    case UDPC_PT_REGISTER:
      p.u.reg.cookie_len = c->cookie_len;
      memcpy(p.u.reg.cookie, c->cookie, c->cookie_len);
      p.u.reg.nick = c->cfg.nick;
      memcpy(p.u.reg.credential, c->cfg.credential, UDPC_CRED_LEN);
      break;
    case UDPC_PT_TABLE_REQ: p.u.table_req.start = r->start; break;
    case UDPC_PT_DEREG: break;
    case UDPC_PT_DEREG_OTHER: p.u.dereg_other.target = r->nick; break;
    case UDPC_PT_SAVE:
      p.u.save.to = r->nick;
      p.u.save.msg_id = r->msg_id;
      p.u.save.text.p = r->text;
      p.u.save.text.len = r->text_len;
      break;
    case UDPC_PT_MAIL_REQ: p.u.mail_req.ack_upto = r->ack_upto; break;
    default: return;
  }
  r->sends++;
  r->deadline = now + UDPC_T_REQUEST_RETRY;
  send_pkt(c, &c->cfg.server, &p);
}

/* Start the next queued request if none is in flight and we may send. */
static void pump(udpc_client *c, uint64_t now) {
  if (c->inflight_active || c->state != UDPC_CS_ONLINE || c->q_len == 0) {
    return;
  }
  /* exit's DEREG waits until every chat is ACKed or handed to the server */
  if (q_at(c, 0)->for_exit && chats_outstanding(c)) {
    return;
  }
  c->inflight = *q_at(c, 0);
  c->q_head = (c->q_head + 1) % CQ_CAP;
  c->q_len--;
  c->inflight_active = 1;
  c->inflight.id = new_id(c);
  c->inflight.sends = 0;
  send_inflight(c, now);
}

/* Replace the request in flight by a follow-up (next page): new id, fresh
 * sends. */
static void reissue_inflight(udpc_client *c, uint64_t now) {
  c->inflight.id = new_id(c);
  c->inflight.sends = 0;
  send_inflight(c, now);
}

static void finish_inflight(udpc_client *c, uint64_t now) {
  c->inflight_active = 0;
  pump(c, now);
}

/* ONLINE, or silently re-registering after BAD_SESSION (P5.5): commands
 * queue, chats run, incoming chats are accepted. */
static int session_usable(const udpc_client *c) {
  return c->state == UDPC_CS_ONLINE ||
         (c->state == UDPC_CS_REGISTERING && c->silent);
}

static int inflight_is(const udpc_client *c, int type, uint32_t id) {
  return c->inflight_active && c->inflight.type == type && c->inflight.id == id;
}

/* P6.2 R54: one walk at a time; a reason for a snapshot while one is
 * queued or running is left to it (and to the check at its completion). */
static void request_snapshot(udpc_client *c, uint64_t now) {
  creq r;
  if (c->snap_pending) {
    return;
  }
  memset(&r, 0, sizeof r);
  r.type = UDPC_PT_TABLE_REQ;
  r.start = 0;
  if (q_push_back(c, &r) != UDPC_OK) {
    client_log(c, 1, "client: queue full, snapshot not requested");
    return;
  }
  c->snap_pending = 1;
  c->walk = WALK_REQ;
  walk_reset(c);
  pump(c, now);
}

/* P6.2 R53: start the walk again at 0 with an empty buffer: at once if its
 * page request is in flight (new id, fresh sends), at the head of the
 * queue if it was waiting for deltas; a queued request starts at 0
 * anyway. */
static void walk_restart(udpc_client *c, uint64_t now) {
  walk_reset(c);
  if (c->inflight_active && c->inflight.type == UDPC_PT_TABLE_REQ) {
    c->inflight.start = 0;
    reissue_inflight(c, now);
    return;
  }
  if (c->walk == WALK_WAIT) {
    creq r;
    memset(&r, 0, sizeof r);
    r.type = UDPC_PT_TABLE_REQ;
    r.start = 0;
    if (q_push_front(c, &r) != UDPC_OK) {
      client_log(c, 1, "client: queue full, table walk abandoned");
      walk_fail(c);
      return;
    }
    c->walk = WALK_REQ;
    pump(c, now);
  }
}

/* ---- State changes --------------------------------------------------------- */

static void report_dropped_save(udpc_client *c, const creq *r) {
  if (r->type == UDPC_PT_SAVE) {
    notice(c, "[Message to %s not sent: you are offline.]", r->nick.s);
  }
}

/* Session over: drop every server request; exit if `exit` was waiting. */
static void go_offline(udpc_client *c, int show) {
  c->state = UDPC_CS_OFFLINE;
  c->token = 0;
  c->hb_sent = 0;
  if (show) {
    emit_simple(c, UDPC_EV_OFFLINE, 0, NULL);
  }
  if (c->inflight_active) {
    c->inflight_active = 0;
    report_dropped_save(c, &c->inflight);
  }
  while (c->q_len > 0) {
    report_dropped_save(c, q_at(c, 0));
    c->q_head = (c->q_head + 1) % CQ_CAP;
    c->q_len--;
  }
  walk_abandon(c);
  c->mail_active = 0;
  for (size_t i = 0; i < UDPC_CLIENT_HELD_CHATS; i++) {
    c->held[i].used = 0;
  }
  if (c->exiting) {
    exit_now(c, 0);
  }
}

static void begin_register(udpc_client *c, uint64_t now, int silent) {
  /* re-registration: an interrupted table walk starts again at 0 (the
   * server may be a new run whose versions mean nothing to the pages and
   * deltas we hold); one waiting for deltas asks again, behind the
   * interrupted request, which resumes first */
  if (c->walk != WALK_NONE) {
    walk_reset(c);
  }
  if (c->walk == WALK_WAIT) {
    creq r;
    memset(&r, 0, sizeof r);
    r.type = UDPC_PT_TABLE_REQ;
    if (q_push_front(c, &r) != UDPC_OK) {
      walk_abandon(c);
    } else {
      c->walk = WALK_REQ;
    }
  }
  if (c->inflight_active && c->inflight.type != UDPC_PT_REGISTER) {
    if (c->inflight.type == UDPC_PT_TABLE_REQ) {
      c->inflight.start = 0;
    }
    if (q_push_front(c, &c->inflight) != UDPC_OK) {
      report_dropped_save(c, &c->inflight);
      if (c->inflight.type == UDPC_PT_TABLE_REQ) {
        walk_abandon(c);
      }
    }
  }
  c->state = UDPC_CS_REGISTERING;
  c->silent = silent;
  c->token = 0;
  c->hb_sent = 0;
  c->cookie_len = 0;
  c->cookie_rounds = 0;
  memset(&c->inflight, 0, sizeof c->inflight);
  c->inflight.type = UDPC_PT_REGISTER;
  c->inflight.id = new_id(c);
  c->inflight_active = 1;
  send_inflight(c, now);
}

static void registration_failed(udpc_client *c) {
  c->inflight_active = 0;
  c->silent = 0;
  if (!c->ever_online) {
    exit_now(c, 1);
    return;
  }
  go_offline(c, 0);
}

/* ---- Public API: lifecycle --------------------------------------------- */

udpc_client *udpc_client_new(const udpc_client_config *cfg, uint64_t now) {
  udpc_client *c;
  (void)now;
  if (cfg == NULL || cfg->io.send == NULL) {
    return NULL;
  }
  if (cfg->nick.len == 0 || cfg->nick.len > UDPC_NICK_MAX ||
      udpc_nick_check(cfg->nick.s, cfg->nick.len) != UDPC_OK) {
    return NULL;
  }
  if (cfg->server.family != 4 && cfg->server.family != 6) {
    return NULL;
  }
  c = calloc(1, sizeof *c);
  if (c == NULL) {
    return NULL;
  }
  c->cfg = *cfg;
  c->cfg.nick.s[c->cfg.nick.len] = '\0';
  c->state = UDPC_CS_REGISTERING;
  c->exit_status = -1;
  udpc_rand_init(&c->rng, cfg->seed);
  c->next_id = udpc_rand_u32(&c->rng);
  return c;
}

void udpc_client_free(udpc_client *c) {
  if (c == NULL) {
    return;
  }
  free(c->table.v);
  buf_free(&c->buf);
  udpc_rand_wipe(&c->rng);
  memset(c->cfg.credential, 0, sizeof c->cfg.credential);
  free(c);
}

int udpc_client_start(udpc_client *c, uint64_t now) {
  if (c == NULL) {
    return UDPC_ERR_ARG;
  }
  if (c->started) {
    return UDPC_ERR_STATE;
  }
  c->started = 1;
  begin_register(c, now, 0);
  return UDPC_OK;
}

int udpc_client_exit_status(const udpc_client *c) {
  if (c == NULL) {
    return -1;
  }
  return c->state == UDPC_CS_DONE ? c->exit_status : -1;
}

int udpc_client_state(const udpc_client *c) {
  if (c == NULL) {
    return UDPC_ERR_ARG;
  }
  return c->state;
}

size_t udpc_client_table_count(const udpc_client *c) {
  return c == NULL ? 0 : c->table.n;
}

int udpc_client_table_get(const udpc_client *c, size_t i, udpc_entry *out) {
  if (c == NULL || out == NULL) {
    return UDPC_ERR_ARG;
  }
  if (i >= c->table.n) {
    return UDPC_ERR_NOT_FOUND;
  }
  *out = c->table.v[i];
  return UDPC_OK;
}

/* ---- Timers ----------------------------------------------------------------- */

uint64_t udpc_client_next_deadline(const udpc_client *c) {
  uint64_t t = UINT64_MAX;
  if (c == NULL || c->state == UDPC_CS_DONE || !c->started) {
    return UINT64_MAX;
  }
  if (c->inflight_active && c->inflight.deadline < t) {
    t = c->inflight.deadline;
  }
  for (size_t i = 0; i < UDPC_CLIENT_CHATS_MAX; i++) {
    if (c->chats[i].used && c->chats[i].deadline < t) {
      t = c->chats[i].deadline;
    }
  }
  if (c->state == UDPC_CS_ONLINE && c->hb_deadline < t) {
    t = c->hb_deadline;
  }
  if (c->walk == WALK_WAIT && c->wait_deadline < t) {
    t = c->wait_deadline;
  }
  return t;
}

/* The ACK wait of chat ch is over: tell the user and hand it to the server. */
static void chat_expired(udpc_client *c, cchat *ch) {
  creq r;
  ch->used = 0;
  if (!session_usable(c)) {
    notice(c, "[No ACK from %s; you are offline, message not delivered.]",
           ch->to.s);
    return;
  }
  emit_simple(c, UDPC_EV_NO_ACK, 0, &ch->to);
  memset(&r, 0, sizeof r);
  r.type = UDPC_PT_SAVE;
  r.nick = ch->to;
  r.msg_id = ch->id;
  r.text_len = ch->text_len;
  memcpy(r.text, ch->text, ch->text_len);
  if (q_push_back(c, &r) != UDPC_OK) {
    notice(c, "[Message to %s not delivered: too many requests waiting.]",
           ch->to.s);
  }
}

static void request_expired(udpc_client *c, uint64_t now) {
  creq *r = &c->inflight;
  if (r->sends < UDPC_N_REQUEST_SENDS) {
    send_inflight(c, now);
    return;
  }
  c->inflight_active = 0;
  client_log(c, 2, "client: %s id=%u unanswered after %d sends",
             udpc_ptype_name(r->type), (unsigned)r->id, r->sends);
  emit_simple(c, UDPC_EV_SERVER_DOWN, 0, NULL);
  switch (r->type) {
    case UDPC_PT_REGISTER:
    case UDPC_PT_DEREG:
    case UDPC_PT_SAVE: exit_now(c, 1); return;
    case UDPC_PT_TABLE_REQ: walk_fail(c); break;
    case UDPC_PT_MAIL_REQ: c->mail_active = 0; break;
    default: break;
  }
  pump(c, now);
}

void udpc_client_handle_expiry(udpc_client *c, uint64_t now) {
  if (c == NULL || !c->started) {
    return;
  }
  /* chats first, earliest deadline first (then lowest id), so that their
   * SAVEs queue in a deterministic order */
  for (;;) {
    cchat *first = NULL;
    if (c->state == UDPC_CS_DONE) {
      return;
    }
    for (size_t i = 0; i < UDPC_CLIENT_CHATS_MAX; i++) {
      cchat *ch = &c->chats[i];
      if (!ch->used || ch->deadline > now) {
        continue;
      }
      if (first == NULL || ch->deadline < first->deadline ||
          (ch->deadline == first->deadline && ch->id < first->id)) {
        first = ch;
      }
    }
    if (first == NULL) {
      break;
    }
    chat_expired(c, first);
  }
  pump(c, now);
  if (c->state == UDPC_CS_DONE) {
    return;
  }
  if (c->inflight_active && c->inflight.deadline <= now) {
    request_expired(c, now);
    if (c->state == UDPC_CS_DONE) {
      return;
    }
  }
  if (c->walk == WALK_WAIT && c->wait_deadline <= now) {
    /* P6.2 R53: the deltas up to the latest page's version did not come */
    client_log(c, 3,
               "client: table walk restarts (deltas reached %llu of %llu)",
               (unsigned long long)c->chain, (unsigned long long)c->pmax);
    walk_restart(c, now);
  }
  if (c->state == UDPC_CS_ONLINE && c->hb_deadline <= now) {
    udpc_packet p;
    memset(&p, 0, sizeof p);
    p.type = UDPC_PT_HEARTBEAT;
    c->hb_id = new_id(c);
    c->hb_sent = 1;
    p.id = c->hb_id;
    p.token = c->token;
    c->hb_deadline = now + UDPC_T_HEARTBEAT;
    send_pkt(c, &c->cfg.server, &p);
  }
}

/* ---- Received packets ----------------------------------------------------- */

static void on_cookie(udpc_client *c, uint64_t now, const udpc_packet *p) {
  c->cookie_len = p->u.cookie.cookie_len;
  memcpy(c->cookie, p->u.cookie.cookie, c->cookie_len);
  if (c->cookie_rounds >= UDPC_CLIENT_COOKIE_ROUNDS) {
    /* P4.3 R32: too many COOKIE rounds is the REGISTER failing */
    client_log(c, 2, "client: COOKIE round limit reached: REGISTER failed");
    c->inflight_active = 0;
    emit_simple(c, UDPC_EV_SERVER_DOWN, 0, NULL);
    exit_now(c, 1);
    return;
  }
  c->cookie_rounds++;
  reissue_inflight(c, now);
}

static void on_register_result(udpc_client *c, uint64_t now,
                               const udpc_packet *p) {
  creq r;
  if (p->u.reg_result.status != UDPC_REG_OK) {
    emit_simple(c, UDPC_EV_REG_REFUSED, p->u.reg_result.status, &c->cfg.nick);
    registration_failed(c);
    return;
  }
  c->inflight_active = 0;
  c->state = UDPC_CS_ONLINE;
  c->ever_online = 1;
  c->token = p->u.reg_result.token;
  c->hb_deadline = now + UDPC_T_HEARTBEAT;
  c->hb_sent = 0;
  c->table_version = 0; /* versions are not comparable across sessions */
  c->max_seen_version = 0;
  if (!c->silent) {
    emit_simple(c, UDPC_EV_REGISTERED, 0, NULL);
  }
  c->silent = 0;
  request_snapshot(c, now);
  if (p->u.reg_result.mail_count > 0 && !c->mail_active) {
    memset(&r, 0, sizeof r);
    r.type = UDPC_PT_MAIL_REQ;
    r.ack_upto = 0;
    if (q_push_back(c, &r) == UDPC_OK) {
      c->mail_active = 1;
      c->mail_shown = 0;
      c->mail_last_seq = 0;
    }
  }
  pump(c, now);
}

static void on_chat(udpc_client *c, uint64_t now, const udpc_addr *from,
                    const udpc_packet *p, const uint8_t *data, size_t len);

/* R94: whenever the table changes (a delta applied, a walk completed),
 * every held CHAT younger than the sender's ACK wait is checked against
 * the table (R82) again: accepted (ACK and shown) if it passes now, kept
 * while it is younger than 500 ms, dropped after. */
static void release_held_chats(udpc_client *c, uint64_t now) {
  for (size_t i = 0; i < UDPC_CLIENT_HELD_CHATS; i++) {
    udpc_packet p;
    const udpc_entry *e;
    if (!c->held[i].used) {
      continue;
    }
    if (now - c->held[i].t > UDPC_T_CHAT_ACK ||
        udpc_wire_decode(&p, c->held[i].data, c->held[i].len) != UDPC_OK) {
      c->held[i].used = 0;
      continue;
    }
    e = table_find(c, &p.u.chat.from);
    if (e == NULL || !udpc_addr_equal(&e->addr, &c->held[i].from)) {
      continue; /* still unknown: held until it ages out */
    }
    c->held[i].used = 0;
    on_chat(c, now, &c->held[i].from, &p, NULL, 0);
  }
}

/* P6.2 R53: the walk is complete: its buffer (without tombstones, sorted
 * by nick) becomes the table at version chain; held CHATs are checked
 * (R94); a walk that ends below the highest version seen is followed by
 * one more (R54). The request in flight (if any) is not the walk's. */
static void walk_complete(udpc_client *c, uint64_t now) {
  cbuf *b = &c->buf;
  size_t n = 0;
  for (size_t i = 0; i < b->t.n; i++) {
    if (b->t.v[i].status != UDPC_STATUS_REMOVED) {
      b->t.v[n++] = b->t.v[i];
    }
  }
  b->t.n = n;
  /* qsort(NULL, 0, ...) is undefined: an empty snapshot has no array. */
  if (n > 1) {
    qsort(b->t.v, n, sizeof b->t.v[0], entry_cmp);
  }
  free(c->table.v);
  c->table = b->t;
  memset(&b->t, 0, sizeof b->t);
  c->table_version = c->chain;
  walk_abandon(c); /* frees the stamps and the index */
  emit_simple(c, UDPC_EV_TABLE_UPDATED, 0, NULL);
  release_held_chats(c, now);
  if (c->table_version < c->max_seen_version) {
    request_snapshot(c, now); /* P6.2 R54: the walk was already stale */
  }
  pump(c, now);
}

/* The pages reached the end: complete when the deltas reached the latest
 * page's version, else wait for them (at most UDPC_T_REQUEST_RETRY); the
 * page exchange is over either way, so other requests go on meanwhile. */
static void walk_pages_done(udpc_client *c, uint64_t now) {
  c->inflight_active = 0;
  if (c->chain >= c->pmax) {
    walk_complete(c, now);
    return;
  }
  c->walk = WALK_WAIT;
  c->wait_deadline = now + UDPC_T_REQUEST_RETRY;
  pump(c, now);
}

/* A TABLE_PAGE answering the walk's request in flight (P6.2 R53). */
static void on_table_page(udpc_client *c, uint64_t now, const udpc_packet *p) {
  const uint32_t start = p->u.table_page.start;
  const uint32_t total = p->u.table_page.total;
  const uint64_t version = p->u.table_page.version;
  uint32_t next;
  if (start != c->inflight.start ||
      (p->u.table_page.count == 0 && start < total)) {
    /* not the page we asked for, or empty too early: start again */
    client_log(c, 3, "client: table walk restarts (page start %u, asked %u)",
               (unsigned)start, (unsigned)c->inflight.start);
    walk_restart(c, now);
    return;
  }
  if (start == 0) {
    walk_reset(c);
    c->have_v0 = 1;
    c->chain = version;
    c->pmax = version;
  } else if (version > c->pmax) {
    c->pmax = version;
  }
  for (size_t i = 0; i < p->u.table_page.count; i++) {
    const udpc_entry *e = &p->u.table_page.entries[i];
    if (e->status != UDPC_STATUS_REMOVED) {
      buf_put(c, e, version, 1);
    }
  }
  next = start + p->u.table_page.count;
  if (next < start || c->buf.t.n >= UDPC_CLIENT_TABLE_MAX) {
    next = total; /* a full buffer ends the walk (the rest is not kept) */
  }
  if (next < total) {
    c->inflight.start = next;
    reissue_inflight(c, now);
    return;
  }
  walk_pages_done(c, now);
}

/* A delta while the walk runs and its start version is known (P6.2):
 * older than the chain: nothing; chained: merged (stamp = new_version);
 * a gap: the walk starts again. */
static void walk_delta(udpc_client *c, uint64_t now, const udpc_packet *p) {
  const uint64_t base = p->u.table_delta.base_version;
  const uint64_t nv = p->u.table_delta.new_version;
  if (nv <= c->chain) {
    return;
  }
  if (base > c->chain) {
    client_log(c, 3,
               "client: table walk restarts (delta %llu..%llu after %llu)",
               (unsigned long long)base, (unsigned long long)nv,
               (unsigned long long)c->chain);
    walk_restart(c, now);
    return;
  }
  for (size_t i = 0; i < p->u.table_delta.count; i++) {
    buf_put(c, &p->u.table_delta.entries[i], nv, 0);
  }
  c->chain = nv;
  if (c->walk == WALK_WAIT && c->chain >= c->pmax) {
    walk_complete(c, now);
  }
}

/* P6.3 R57: apply iff base <= version < new; ignore if version >= new;
 * else (a gap, or no table yet) a snapshot. While a walk is queued or
 * runs, deltas feed the walk instead (once its start-0 page is in). */
static void on_table_delta(udpc_client *c, uint64_t now, const udpc_packet *p) {
  const uint64_t base = p->u.table_delta.base_version;
  const uint64_t nv = p->u.table_delta.new_version;
  if (nv > c->max_seen_version) {
    c->max_seen_version = nv;
  }
  if (c->walk != WALK_NONE) {
    if (c->have_v0) {
      walk_delta(c, now, p);
    }
    return;
  }
  if (c->table_version >= nv) {
    return; /* old news */
  }
  if (c->table_version == 0 || base > c->table_version) {
    request_snapshot(c, now); /* gap (or no table yet) */
    return;
  }
  table_apply(c, p->u.table_delta.entries, p->u.table_delta.count);
  c->table_version = nv;
  emit_simple(c, UDPC_EV_TABLE_UPDATED, 0, NULL);
  release_held_chats(c, now); /* R94: a sender that just came online */
}

/* Own DEREG complete (DEREG_RESULT OK, or BAD_SESSION / SESSION_ENDED for
 * it, P4.6): `exit` ends with status 0, `dereg` goes OFFLINE. */
static void dereg_done(udpc_client *c, const creq *r) {
  c->inflight_active = 0;
  if (r->for_exit) {
    exit_now(c, 0);
    return;
  }
  go_offline(c, 1);
}

static void on_dereg_result(udpc_client *c, uint64_t now,
                            const udpc_packet *p) {
  creq r = c->inflight;
  c->inflight_active = 0;
  if (p->u.dereg_result.status != UDPC_DEREG_OK) {
    /* P8.1: STORE_ERROR (the only failure a DEREG can get) */
    notice(c, "[Server storage error, try again later.]");
    if (r.for_exit) {
      exit_now(c, 1);
      return;
    }
    pump(c, now);
    return;
  }
  dereg_done(c, &r);
}

static void on_save_result(udpc_client *c, uint64_t now, const udpc_packet *p) {
  creq r = c->inflight;
  c->inflight_active = 0;
  switch (p->u.save_result.status) {
    case UDPC_SAVE_SAVED: emit_simple(c, UDPC_EV_SAVED, 0, NULL); break;
    case UDPC_SAVE_RECIPIENT_ONLINE:
      emit_simple(c, UDPC_EV_EXISTS, 0, &r.nick);
      request_snapshot(c, now);
      break;
    default:
      emit_simple(c, UDPC_EV_SAVE_REFUSED, p->u.save_result.status, &r.nick);
      break;
  }
  pump(c, now);
}

static void on_mail_page(udpc_client *c, uint64_t now, const udpc_packet *p) {
  if (p->u.mail_page.count == 0) {
    c->mail_active = 0;
    finish_inflight(c, now);
    return;
  }
  for (size_t i = 0; i < p->u.mail_page.count; i++) {
    const udpc_mail *m = &p->u.mail_page.mail[i];
    udpc_event ev;
    if (m->seq <= c->mail_last_seq) {
      continue; /* already handled */
    }
    c->mail_last_seq = m->seq;
    if (dedupe_seen(c, &m->from, m->msg_id)) {
      continue; /* shown directly as a chat already */
    }
    dedupe_add(c, &m->from, m->msg_id);
    if (!c->mail_shown) {
      c->mail_shown = 1;
      emit_simple(c, UDPC_EV_HAVE_MAIL, 0, NULL);
    }
    memset(&ev, 0, sizeof ev);
    ev.type = UDPC_EV_MAIL;
    ev.nick = m->from;
    ev.text = m->text;
    ev.timestamp_ms = m->timestamp_ms;
    emit(c, &ev);
  }
  c->inflight.ack_upto = c->mail_last_seq;
  reissue_inflight(c, now);
}

/* P4.6: ERROR is accepted like a response (id of the request in flight or
 * of the last HEARTBEAT, from the server); OFFLINE and DONE ignore it. */
static void on_error(udpc_client *c, uint64_t now, const udpc_packet *p) {
  int for_inflight = c->inflight_active && c->inflight.id == p->id;
  int for_hb = c->hb_sent && c->hb_id == p->id;
  uint8_t code = p->u.error.code;
  if (c->state == UDPC_CS_OFFLINE || (!for_inflight && !for_hb)) {
    client_log(c, 3, "client: ERROR id=%u matches no request: dropped",
               (unsigned)p->id);
    return;
  }
  if (code == UDPC_ERROR_BAD_SESSION || code == UDPC_ERROR_SESSION_ENDED) {
    if (c->state != UDPC_CS_ONLINE) {
      return;
    }
    if (for_inflight && c->inflight.type == UDPC_PT_DEREG) {
      creq r = c->inflight;
      dereg_done(c, &r); /* the server has no session: DEREG complete */
      return;
    }
    if (code == UDPC_ERROR_SESSION_ENDED) {
      go_offline(c, 1);
      return;
    }
    client_log(c, 2,
               "client: session unknown to the server, registering again");
    begin_register(c, now, 1);
    return;
  }
  if (code != UDPC_ERROR_MALFORMED || !for_inflight) {
    return; /* VERSION, RATE_LIMITED, INTERNAL: retransmission continues */
  }
  /* MALFORMED: abandon the request with a notice and continue */
  notice(c, "[Server refused the request as malformed.]");
  if (c->inflight.type == UDPC_PT_REGISTER) {
    registration_failed(c);
    return;
  }
  if (c->inflight.type == UDPC_PT_TABLE_REQ) {
    walk_fail(c);
  } else if (c->inflight.type == UDPC_PT_MAIL_REQ) {
    c->mail_active = 0;
  }
  if (c->inflight.for_exit) {
    exit_now(c, 1);
    return;
  }
  finish_inflight(c, now);
}

/* data/len: the datagram, so that a CHAT can be held (R94); NULL when a
 * held CHAT is checked again. */
static void on_chat(udpc_client *c, uint64_t now, const udpc_addr *from,
                    const udpc_packet *p, const uint8_t *data, size_t len) {
  const udpc_entry *e;
  udpc_packet ack;
  udpc_event ev;
  if (!session_usable(c)) {
    client_log(c, 3, "client: CHAT while not online: dropped");
    return;
  }
  if (!nick_eq(&p->u.chat.to, &c->cfg.nick)) {
    client_log(c, 3, "client: CHAT for %s, not us: dropped", p->u.chat.to.s);
    return;
  }
  e = table_find(c, &p->u.chat.from);
  if (e == NULL || !udpc_addr_equal(&e->addr, from)) {
    /* R94: the sender may have just come online; the server's deltas
     * reach us up to UDPC_T_DELTA_WINDOW later (P6.3), or our walk has not
     * reached it yet. A slot older than the sender's ACK wait is free. */
    if (data != NULL && len <= UDPC_MAX_PACKET) {
      for (size_t i = 0; i < UDPC_CLIENT_HELD_CHATS; i++) {
        if (!c->held[i].used || now - c->held[i].t > UDPC_T_CHAT_ACK) {
          c->held[i].used = 1;
          c->held[i].t = now;
          c->held[i].from = *from;
          c->held[i].len = len;
          memcpy(c->held[i].data, data, len);
          client_log(c, 3,
                     "client: CHAT from %s held until the table lists "
                     "it (at most 500 ms)",
                     p->u.chat.from.s);
          return;
        }
      }
    }
    client_log(c, 3,
               "client: CHAT from %s at an address not in the table: dropped",
               p->u.chat.from.s);
    return;
  }
  memset(&ack, 0, sizeof ack);
  ack.type = UDPC_PT_CHAT_ACK;
  ack.id = p->id;
  ack.u.chat_ack.from = c->cfg.nick;
  send_pkt(c, from, &ack);
  if (dedupe_seen(c, &p->u.chat.from, p->id)) {
    return; /* ACKed again, not shown again */
  }
  dedupe_add(c, &p->u.chat.from, p->id);
  memset(&ev, 0, sizeof ev);
  ev.type = UDPC_EV_CHAT;
  ev.nick = p->u.chat.from;
  ev.text = p->u.chat.text;
  emit(c, &ev);
}

static void on_chat_ack(udpc_client *c, uint64_t now, const udpc_addr *from,
                        const udpc_packet *p) {
  for (size_t i = 0; i < UDPC_CLIENT_CHATS_MAX; i++) {
    cchat *ch = &c->chats[i];
    if (ch->used && ch->id == p->id && nick_eq(&ch->to, &p->u.chat_ack.from) &&
        udpc_addr_equal(&ch->addr, from)) {
      ch->used = 0;
      emit_simple(c, UDPC_EV_DELIVERED, 0, &ch->to);
      pump(c, now); /* exit's DEREG may have been waiting for this */
      return;
    }
  }
  client_log(c, 3,
             "client: CHAT_ACK id=%u matches no outstanding chat: dropped",
             (unsigned)p->id);
}

int udpc_client_recv(udpc_client *c, uint64_t now, const udpc_addr *from,
                     const uint8_t *data, size_t len) {
  udpc_packet p;
  int rc;
  int from_server;
  if (c == NULL || from == NULL || (data == NULL && len > 0)) {
    return UDPC_ERR_ARG;
  }
  if (c->state == UDPC_CS_DONE || !c->started) {
    return UDPC_OK;
  }
  rc = udpc_wire_decode(&p, data, len);
  if (rc != UDPC_OK) {
    client_log(c, 3, "client: undecodable datagram (%zu bytes): %s", len,
               udpc_strerror(rc));
    return UDPC_OK;
  }
  if (p.type == UDPC_PT_CHAT) {
    on_chat(c, now, from, &p, data, len);
    return UDPC_OK;
  }
  if (p.type == UDPC_PT_CHAT_ACK) {
    on_chat_ack(c, now, from, &p);
    return UDPC_OK;
  }

  from_server = udpc_addr_equal(from, &c->cfg.server);
  if (!from_server) {
    client_log(c, 3, "client: %s from a non-server address: dropped",
               udpc_ptype_name(p.type));
    return UDPC_OK;
  }
  switch (p.type) {
    case UDPC_PT_COOKIE:
    case UDPC_PT_REGISTER_RESULT:
      if (c->state != UDPC_CS_REGISTERING ||
          !inflight_is(c, UDPC_PT_REGISTER, p.id)) {
        client_log(c, 3, "client: unexpected %s id=%u: dropped",
                   udpc_ptype_name(p.type), (unsigned)p.id);
        return UDPC_OK;
      }
      if (p.type == UDPC_PT_COOKIE) {
        on_cookie(c, now, &p);
      } else {
        on_register_result(c, now, &p);
      }
      return UDPC_OK;
    case UDPC_PT_ERROR: on_error(c, now, &p); return UDPC_OK;
    default: break;
  }

  if (!udpc_ptype_has_token(p.type) || c->state != UDPC_CS_ONLINE ||
      p.token != c->token) {
    client_log(c, 3, "client: %s id=%u with no/wrong token or state: dropped",
               udpc_ptype_name(p.type), (unsigned)p.id);
    return UDPC_OK;
  }
  switch (p.type) {
    case UDPC_PT_TABLE_DELTA: on_table_delta(c, now, &p); return UDPC_OK;
    case UDPC_PT_KICKED:
      emit_simple(c, UDPC_EV_KICKED, 0, &p.u.kicked.by);
      go_offline(c, 1);
      return UDPC_OK;
    case UDPC_PT_PROBE: {
      udpc_packet ack;
      memset(&ack, 0, sizeof ack);
      ack.type = UDPC_PT_PROBE_ACK;
      ack.id = p.id;
      ack.token = c->token;
      send_pkt(c, from, &ack);
      return UDPC_OK;
    }
    case UDPC_PT_HEARTBEAT_ACK:
      if (!c->hb_sent || p.id != c->hb_id) {
        client_log(c, 3, "client: HEARTBEAT_ACK id=%u unexpected: dropped",
                   (unsigned)p.id);
        return UDPC_OK;
      }
      if (p.u.heartbeat_ack.table_version > c->max_seen_version) {
        c->max_seen_version = p.u.heartbeat_ack.table_version;
      }
      if (c->table_version < p.u.heartbeat_ack.table_version) {
        request_snapshot(c, now); /* P6.4 R58: we missed a delta */
      }
      return UDPC_OK;
    case UDPC_PT_TABLE_PAGE:
      if (inflight_is(c, UDPC_PT_TABLE_REQ, p.id)) {
        on_table_page(c, now, &p);
        return UDPC_OK;
      }
      break;
    case UDPC_PT_DEREG_RESULT:
      if (inflight_is(c, UDPC_PT_DEREG, p.id)) {
        on_dereg_result(c, now, &p);
        return UDPC_OK;
      }
      if (inflight_is(c, UDPC_PT_DEREG_OTHER, p.id)) {
        emit_simple(c, UDPC_EV_DEREG_OTHER, p.u.dereg_result.status,
                    &c->inflight.nick);
        finish_inflight(c, now);
        return UDPC_OK;
      }
      break;
    case UDPC_PT_SAVE_RESULT:
      if (inflight_is(c, UDPC_PT_SAVE, p.id)) {
        on_save_result(c, now, &p);
        return UDPC_OK;
      }
      break;
    case UDPC_PT_MAIL_PAGE:
      if (inflight_is(c, UDPC_PT_MAIL_REQ, p.id)) {
        on_mail_page(c, now, &p);
        return UDPC_OK;
      }
      break;
    default: break;
  }
  client_log(c, 3, "client: unexpected %s id=%u: dropped",
             udpc_ptype_name(p.type), (unsigned)p.id);
  return UDPC_OK;
}

/* ---- Typed commands ------------------------------------------------------- */

static const char *help_text(const char *topic, size_t len) {
  static const struct {
    const char *word;
    const char *text;
  } k[] = {
      {"send", "[send <nick> <message>: send a message to <nick>; every "
               "space is kept.]"},
      {"list", "[list: show the client table (nick, ip, port, status).]"},
      {"reg", "[reg <nick>: come back online with your own nick and receive "
              "stored messages.]"},
      {"dereg", "[dereg <nick>: go offline (your own nick only); the client "
                "keeps running.]"},
      {"deregA", "[deregA <nick>: deregister another user (operators "
                 "only).]"},
      {"exit", "[exit: deregister and quit.]"},
      {"help", "[help [command]: list the commands, or explain one.]"},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    if (strlen(k[i].word) == len && memcmp(k[i].word, topic, len) == 0) {
      return k[i].text;
    }
  }
  return "[Commands: send <nick> <message>, list, reg <nick>, dereg <nick>, "
         "deregA <nick>, exit, help [command]]";
}

int udpc_client_ready(const udpc_client *c) {
  size_t chats = 0;
  if (c == NULL || c->state == UDPC_CS_DONE) {
    return 0;
  }
  if (c->state == UDPC_CS_REGISTERING && !session_usable(c)) {
    return 0;
  }
  if (c->table_version == 0 && c->snap_pending) {
    return 0; /* the first table since registering is still arriving */
  }
  if (c->q_len >= UDPC_CLIENT_QUEUE_MAX) {
    return 0;
  }
  for (size_t i = 0; i < UDPC_CLIENT_CHATS_MAX; i++) {
    chats += c->chats[i].used ? 1u : 0u;
  }
  return chats < UDPC_CLIENT_CHATS_MAX;
}

/* 1 if the session is usable (ONLINE, or a silent re-registration whose
 * queue waits for the new token); else shows why not and returns 0. */
static int need_online(udpc_client *c) {
  if (session_usable(c)) {
    return 1;
  }
  if (c->state == UDPC_CS_REGISTERING) {
    notice(c, "[Registration in progress, please wait.]");
  } else {
    notice(c, "[You are offline; use reg %s to come back.]", c->cfg.nick.s);
  }
  return 0;
}

static int queue_has_room(udpc_client *c) {
  if (c->q_len < UDPC_CLIENT_QUEUE_MAX) {
    return 1;
  }
  notice(c, "[Too many requests waiting for the server; try again shortly.]");
  return 0;
}

static void cmd_send(udpc_client *c, uint64_t now, const udpc_cmd *cmd) {
  const udpc_entry *e;
  if (!need_online(c)) {
    return;
  }
  e = table_find(c, &cmd->nick);
  if (!queue_has_room(c)) {
    return;
  }
  if (e == NULL || e->status != UDPC_STATUS_ONLINE) {
    /* P7.1: our table says offline, or does not know the nick: straight to
     * the server (no CHAT), nothing shown until the SAVE_RESULT */
    creq r;
    memset(&r, 0, sizeof r);
    r.type = UDPC_PT_SAVE;
    r.nick = cmd->nick;
    r.msg_id = new_id(c);
    r.text_len = (uint16_t)cmd->arg_len;
    memcpy(r.text, cmd->arg, cmd->arg_len);
    (void)q_push_back(c, &r); /* room checked above */
    pump(c, now);
    return;
  }
  for (size_t i = 0; i < UDPC_CLIENT_CHATS_MAX; i++) {
    cchat *ch = &c->chats[i];
    udpc_packet p;
    if (ch->used) {
      continue;
    }
    ch->used = 1;
    ch->id = new_id(c);
    ch->to = cmd->nick;
    ch->addr = e->addr;
    ch->deadline = now + UDPC_T_CHAT_ACK;
    ch->text_len = (uint16_t)cmd->arg_len;
    memcpy(ch->text, cmd->arg, cmd->arg_len);
    memset(&p, 0, sizeof p);
    p.type = UDPC_PT_CHAT;
    p.id = ch->id;
    p.u.chat.from = c->cfg.nick;
    p.u.chat.to = ch->to;
    p.u.chat.text.p = ch->text;
    p.u.chat.text.len = ch->text_len;
    send_pkt(c, &ch->addr, &p);
    return;
  }
  notice(c, "[Too many messages waiting for an ACK; try again shortly.]");
}

static void cmd_list(udpc_client *c) {
  udpc_event ev;
  int width = 4;
  if (c->table.n == 0) {
    notice(c, "[Table is empty.]");
    return;
  }
  for (size_t i = 0; i < c->table.n; i++) {
    if ((int)c->table.v[i].nick.len > width) {
      width = c->table.v[i].nick.len;
    }
  }
  memset(&ev, 0, sizeof ev);
  ev.type = UDPC_EV_LIST_ROW;
  ev.width = width;
  emit(c, &ev); /* header: entry nick length 0 */
  for (size_t i = 0; i < c->table.n; i++) {
    memset(&ev, 0, sizeof ev);
    ev.type = UDPC_EV_LIST_ROW;
    ev.width = width;
    ev.entry = c->table.v[i];
    ev.nick = c->table.v[i].nick;
    emit(c, &ev);
  }
}

static void cmd_reg(udpc_client *c, uint64_t now, const udpc_cmd *cmd) {
  if (!nick_eq(&cmd->nick, &c->cfg.nick)) {
    notice(c, "[You can only reg your own nick %s.]", c->cfg.nick.s);
    return;
  }
  if (c->state == UDPC_CS_ONLINE) {
    notice(c, "[You are already registered.]");
    return;
  }
  if (c->state == UDPC_CS_REGISTERING) {
    notice(c, "[Registration in progress, please wait.]");
    return;
  }
  begin_register(c, now, 0);
}

static void cmd_dereg(udpc_client *c, uint64_t now, const udpc_cmd *cmd) {
  creq r;
  if (!nick_eq(&cmd->nick, &c->cfg.nick)) {
    notice(c, "[You can only dereg yourself (%s); use deregA %s.]",
           c->cfg.nick.s, cmd->nick.s);
    return;
  }
  if (!need_online(c) || !queue_has_room(c)) {
    return;
  }
  memset(&r, 0, sizeof r);
  r.type = UDPC_PT_DEREG;
  (void)q_push_back(c, &r);
  pump(c, now);
}

static void cmd_dereg_other(udpc_client *c, uint64_t now, const udpc_cmd *cmd) {
  creq r;
  if (nick_eq(&cmd->nick, &c->cfg.nick)) {
    cmd_dereg(c, now, cmd); /* P8.2: deregA <own> is dereg <own> */
    return;
  }
  if (!need_online(c) || !queue_has_room(c)) {
    return;
  }
  memset(&r, 0, sizeof r);
  r.type = UDPC_PT_DEREG_OTHER;
  r.nick = cmd->nick;
  (void)q_push_back(c, &r);
  pump(c, now);
}

static void cmd_exit(udpc_client *c, uint64_t now) {
  creq r;
  c->exiting = 1;
  if (c->state != UDPC_CS_ONLINE) {
    exit_now(c, 0);
    return;
  }
  memset(&r, 0, sizeof r);
  r.type = UDPC_PT_DEREG;
  r.for_exit = 1;
  if (q_push_back(c, &r) != UDPC_OK) {
    exit_now(c, 1); /* cannot happen: the queue keeps room for this */
    return;
  }
  pump(c, now);
}

int udpc_client_command(udpc_client *c, uint64_t now, const char *line,
                        size_t len) {
  udpc_cmd cmd;
  char err[256];
  int rc;
  if (c == NULL || (line == NULL && len > 0)) {
    return UDPC_ERR_ARG;
  }
  if (c->state == UDPC_CS_DONE) {
    return UDPC_OK;
  }
  rc = udpc_cmd_parse(&cmd, line, len, err, sizeof err);
  if (rc != UDPC_OK) {
    if (err[0] != '\0') {
      notice(c, "%s", err);
    }
    return UDPC_ERR_ARG;
  }
  if (c->exiting) {
    return UDPC_OK; /* P8.6 R79: commands typed after exit are ignored */
  }
  switch (cmd.type) {
    case UDPC_CMD_SEND: cmd_send(c, now, &cmd); break;
    case UDPC_CMD_LIST: cmd_list(c); break;
    case UDPC_CMD_REG: cmd_reg(c, now, &cmd); break;
    case UDPC_CMD_DEREG: cmd_dereg(c, now, &cmd); break;
    case UDPC_CMD_DEREGA: cmd_dereg_other(c, now, &cmd); break;
    case UDPC_CMD_EXIT: cmd_exit(c, now); break;
    case UDPC_CMD_HELP: notice(c, "%s", help_text(cmd.arg, cmd.arg_len)); break;
    default: return UDPC_ERR_ARG;
  }
  return UDPC_OK;
}
