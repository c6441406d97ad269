/*
 * udpc_server.c - the sans-IO server core (design.md P1-P9).
 *
 * Data structures (no O(N) scan per packet; memory per registered nick:
 * its 176-byte record, 4 bytes of order[], 4-byte slots in the two maps at
 * load <= 3/4, so about 190-200 bytes):
 *  - clients[]: one record per registered nick, never removed; index stable;
 *    grows by 1.5.
 *  - nick map: open addressing (linear probing) nick -> client index, keyed
 *    SipHash (crypto_shorthash, key derived from the seed: no hash flooding).
 *  - token map: open addressing token -> client index, backward-shift
 *    deletion; a slot holds only the index and which of the client's two
 *    tokens it names. A client has at most TWO tokens in the map: its live
 *    session token (while online) and the token of its last ended session
 *    (P8.3, R72: kept, with that session's address (while a newer session
 *    is live: its keyed hash), until another session of the nick ends), so
 *    ERROR(SESSION_ENDED) can be told apart from BAD_SESSION.
 *  - order[]: client indices sorted by nick bytes (memcmp order, shorter
 *    first on a common prefix): the table snapshot for TABLE_REQ paging.
 *  - online list: doubly linked, ordered by last_heard (move-to-back on each
 *    valid packet), so the 30 s silence timeout is an O(1) look at the head.
 *  - held[]: acknowledgements of state changes (and KICKED) waiting for the
 *    store commit in udpc_server_flush ("acknowledged means committed").
 *  - wlog[]: the table changes since the last delta emission (one client
 *    index per version, so wlog[k] made version pub_version + 1 + k). The
 *    first change opens a coalescing window of UDPC_T_DELTA_WINDOW ms
 *    (P6.3); the flush after it (after a successful commit) emits each
 *    changed entry once, as it is then, in TABLE_DELTAs as full as fit in
 *    1200 bytes, encoded once and sent to every ONLINE session with only
 *    the token patched; except that a session whose snapshot walk will
 *    still read some of the changed entries (walks[]: the start of the
 *    next page it would ask for) gets its own deltas without them (P6.3
 *    "Walking sessions"). HEARTBEAT_ACK reports pub_version, the version
 *    of the last emitted delta.
 *  - probes[]: ring of pending SAVE probes (P7); probe id low bits = slot.
 *  - per-sender SAVE window of 64 (msg_id -> result), allocated on the
 *    session's first SAVE, freed when the session ends.
 *  - dirty[]: records to write before the commit (4096 listed; beyond, the
 *    flush scans the record flags).
 *  - sources[]: rate-limit buckets of source addresses (SECURITY.md): 4096
 *    slots, 8-way set associative, sets chosen by keyed SipHash of the
 *    address, the least recently used way of a set evicted. Datagrams of a
 *    live session use the session's own bucket in its record instead.
 *  - log limiter: non-debug log lines at most SRV_LOG_PER_SEC per second,
 *    then one "suppressed K messages" line, so input cannot flood the log.
 *
 * Every packet is built as a udpc_packet and encoded by udpc_wire_encode,
 * except TABLE_PAGE and TABLE_DELTA: built in one pass by the udpc_wire
 * table builder from the records (valid since they registered or were
 * loaded); every datagram is decoded by udpc_wire_decode. No sockets, clocks, stdio
 * or OS randomness: randomness comes from cfg->seed through udpc_rand.
 */
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "udpc_cursor.h"
#include "udpc_guard.h"
#include "udpc_rand.h"
#include "udpc_store.h"
#include "udpc_wire.h"
#include "udpchat.h"

/* ---- Limits ------------------------------------------------------------ */
#define SRV_NONE UINT32_MAX
#define SRV_DEFAULT_MAX_CLIENTS 100000u
#define SRV_DEFAULT_MAIL_PER_RECIPIENT 1000u
#define SRV_DEFAULT_MAIL_TOTAL 1000000u
#define SRV_HELD_MAX 1024u    /* acknowledgements waiting for a commit */
#define SRV_DIRTY_MAX 4096u   /* dirty records listed; beyond: flag scan */
#define SRV_CHANGES_MAX 4096u /* distinct changed entries: emit early */
#define SRV_WLOG_MAX (4u * SRV_CHANGES_MAX) /* changes: emit early */
#define SRV_PROBES_MAX 1024u                /* pending probes; power of two */
#define SRV_WINDOW 64u     /* SAVE results remembered per sender */
#define SRV_COOKIE_LEN 20u /* bucket u32 || tag[16] */
#define SRV_COOKIE_TAG 16u
#define SRV_SALT_LEN UDPC_STORE_SALT_LEN
#define SRV_HASH_LEN UDPC_STORE_HASH_LEN
#define SRV_SESSION_TIMEOUT \
  ((uint64_t)UDPC_N_HEARTBEAT_MISSED * (uint64_t)UDPC_T_HEARTBEAT)
#define SRV_ERROR_LEN (UDPC_HEADER_LEN + 1)
#define SRV_DEFAULT_SOURCE_RATE 50u     /* datagrams/s per source address */
#define SRV_DEFAULT_SOURCE_BURST 100u   /* bucket size per source address */
#define SRV_DEFAULT_SESSION_RATE 1000u  /* datagrams/s per live session */
#define SRV_DEFAULT_SESSION_BURST 2000u /* bucket size per live session */
#define SRV_SOURCES 4096u               /* source buckets; power of two */
#define SRV_SOURCE_WAYS 8u              /* ways per set */
#define SRV_LOG_PER_SEC 10u             /* non-debug log lines per second */
#define SRV_LOG_WINDOW 1000u            /* ms */
#define SRV_MILLI 1000u                 /* bucket units per datagram */
/* TESTING ONLY: entries per TABLE_PAGE at most (R52: as many as fit, so
 * UDPC_TABLE_PAGE_MAX). A build with -DSRV_TEST_PAGE_ENTRIES=2 lets the
 * simulator's 16 clients walk many pages (and so exercise the walking
 * sessions' deltas, P6.3). */
#ifndef SRV_TEST_PAGE_ENTRIES
#define SRV_TEST_PAGE_ENTRIES UDPC_TABLE_PAGE_MAX
#endif

/* ---- Types ------------------------------------------------------------- */
enum { WIN_EMPTY = 0, WIN_PENDING = 1, WIN_DONE = 2 };

/* A SAVE is identified by (sender, msg_id) (P4.7); the window also
 * compares a hash of (recipient, text), which every retransmission
 * repeats, so a client that reuses ids after a restart gets a new result
 * instead of a stale one. */
typedef struct {
  uint32_t msg_id;
  uint64_t khash; /* srv_save_khash(to, text) */
  uint8_t state;  /* WIN_* */
  uint8_t status; /* udpc_save_status when DONE */
  uint32_t recip; /* client index of the recipient */
  udpc_addr addr; /* RECIPIENT_ONLINE: the entry's address as it was */
} srv_win_ent;

typedef struct {
  srv_win_ent e[SRV_WINDOW];
  uint32_t next; /* ring position of the next insertion */
} srv_window;

/* A token bucket in 1/1000 datagram units; refilled on use. */
typedef struct {
  uint64_t milli;  /* tokens x SRV_MILLI */
  uint64_t last;   /* ms of the last refill (= last use) */
  uint8_t limited; /* dropped since the last datagram let through */
} srv_tbucket;

typedef struct {
  udpc_addr addr;
  uint8_t used;
  srv_tbucket b;
} srv_source;

/* One registered nick: 176 bytes (one per registered client, so it is
 * kept small: the session's rate-limit bucket in 8 bytes, the ended
 * session's address as a keyed 32-bit hash, flags as bits). */
typedef struct {
  uint64_t token;       /* live session token; 0 while offline */
  uint64_t ended_token; /* token of the last ended session; 0 if none */
  uint64_t last_heard;  /* ms; meaningful while online */
  uint64_t registered_ms;
  uint64_t last_seen_ms;
  srv_window *win;      /* owned; NULL until the live session first SAVEs */
  uint32_t prev, next;  /* online list links (SRV_NONE at the ends) */
  uint32_t rl_milli;    /* live session's bucket: tokens x SRV_MILLI */
  uint32_t rl_last;     /* low 32 bits of the ms of its last refill */
  uint32_t ended_ahash; /* srv_addr_hash32 of the ended session's address;
                           used only while a newer session is live (while
                           offline, addr is that address) */
  udpc_addr addr;       /* live session address; last address if offline */
  udpc_nick nick;
  uint8_t salt[SRV_SALT_LEN];
  uint8_t cred_hash[SRV_HASH_LEN];
  uint8_t online : 1;
  uint8_t dirty : 1;      /* record must be user_put before the next commit */
  uint8_t inwin : 1;      /* changed in the open window (n_wdistinct) */
  uint8_t seen : 1;       /* scratch of srv_emit_window */
  uint8_t rl_limited : 1; /* session datagrams dropped since one passed */
  uint8_t walk_idv : 1;   /* walks[idx].id holds a TABLE_REQ id */
  uint8_t walk_fresh : 1; /* new session, no TABLE_PAGE sent to it yet */
} srv_client;
_Static_assert(sizeof(srv_client) <= 176, "srv_client grew (memory budget)");

typedef struct {
  udpc_addr to;
  uint16_t len;
  uint32_t win_client; /* SAVED ack: window entry to forget on failure */
  uint32_t win_msg_id;
  uint64_t win_khash;
  uint8_t data[UDPC_MAX_PACKET];
} srv_held;

typedef struct {
  uint8_t active;
  uint8_t resent;
  uint32_t probe_id;
  uint64_t t0;
  uint32_t sender, recip;
  uint64_t sender_token, recip_token;
  uint32_t req_id; /* the SAVE's id, echoed by SAVE_RESULT */
  uint32_t msg_id;
  uint64_t khash;
  uint16_t text_len;
  uint8_t text[UDPC_TEXT_MAX];
} srv_probe;

/* The snapshot walk a live session is doing, as the server sees it (P6.3
 * "Walking sessions"): next = start + count of the last TABLE_PAGE it
 * sent the session when that page did not reach the end (0: not walking);
 * id = the TABLE_REQ id that page answered. Kept beside the records (8
 * bytes per registered nick), reset when a session starts or ends. Only a
 * TABLE_REQ with a newer id (serial order of the client's u32 counter,
 * R26) moves `next`; a retransmission of the same id can only lower it
 * (its answer may differ: whichever the client accepted, it asks next at
 * or above the lower value); an older one (a late duplicate) does not
 * touch it. So `next` never exceeds the start the client asks for next,
 * and a late duplicate of an earlier page request cannot make a finished
 * walk look unfinished. */
typedef struct {
  uint32_t next;
  uint32_t id;
} srv_walk;

/* One distinct entry of a closing window (srv_emit_window). */
typedef struct srv_went {
  uint32_t k;   /* wlog position of its last change (version pub + 1 + k) */
  uint32_t pos; /* its index in order[] (only while a session walks) */
  uint32_t off; /* its encoded bytes: ecache[off .. off + len) */
  uint8_t len;
} srv_went;

/* Token map slot: 0 empty, else 1 + (client index << 1 | e) where e = 1
 * names the client's ended_token and e = 0 its live token (the token
 * itself is read from the client record: 4 bytes a slot). */
typedef uint32_t srv_tok_slot;
#define SRV_IDX_MAX 0x7ffffffdu /* largest client index a slot can name */

struct udpc_server {
  udpc_io io;
  udpc_store *store; /* borrowed */
  udpc_rand rng;
  uint8_t cookie_key[32];
  uint8_t nick_key[crypto_shorthash_KEYBYTES];
  uint8_t src_key[crypto_shorthash_KEYBYTES];
  udpc_nick *operators; /* owned */
  size_t n_operators;
  uint32_t max_clients;
  uint32_t mail_per_recipient;
  uint64_t mail_total;
  uint32_t source_rate, source_burst;   /* UINT32_MAX rate: unlimited */
  uint32_t session_rate, session_burst; /* UINT32_MAX rate: unlimited */
  uint64_t now;                         /* of the current entry point */

  srv_source *sources; /* owned; SRV_SOURCES */
  uint64_t log_window; /* start of the log limiter's window (ms) */
  uint32_t log_n;      /* lines logged in the window */
  uint64_t log_supp;   /* lines suppressed in the window */

  srv_client *clients; /* owned; n_clients used of cap_clients */
  uint32_t n_clients, cap_clients;
  srv_walk *walks; /* owned; cap_clients; see srv_walk */
  uint32_t *order; /* owned; cap_clients */
  uint32_t *dirty; /* owned; SRV_DIRTY_MAX; n_dirty used */
  uint32_t n_dirty;
  int dirty_overflow; /* more dirty records than the list: scan the flags */
  uint32_t *nick_map; /* owned; idx + 1, 0 = empty */
  size_t nick_cap;
  srv_tok_slot *tok_map; /* owned */
  size_t tok_cap, tok_count;

  uint32_t on_head, on_tail, n_online;
  uint64_t version;     /* live table version (R51) */
  uint64_t pub_version; /* new_version of the last emitted delta */
  uint32_t next_id;
  int store_touched;

  srv_held *held; /* owned; SRV_HELD_MAX */
  uint32_t n_held;
  /* Coalescing window (P6.3). */
  uint32_t *wlog; /* owned; wlog_cap; wlog_n = version - pub_version */
  uint32_t wlog_n, wlog_cap;
  uint32_t n_wdistinct;  /* clients with inwin set */
  int wlog_lost;         /* a change could not be logged (out of memory) */
  uint8_t win_open;      /* a change since the last emission */
  uint8_t win_due;       /* handle_expiry saw the deadline: flush emits */
  uint64_t win_deadline; /* emit at the first flush from then on */
  /* Scratch of srv_emit_window: the distinct changed entries, encoded once
   * (went_cap entries; ecache_cap bytes of their encodings). */
  struct srv_went *went; /* owned */
  uint8_t *ecache;       /* owned */
  uint32_t went_cap;
  size_t ecache_cap;

  srv_probe *probes;               /* owned; SRV_PROBES_MAX ring */
  uint32_t probe_head, probe_tail; /* free-running counters */
  uint32_t probe_id_base;          /* multiple of SRV_PROBES_MAX */

  udpc_server_stats st;
};

/* ---- Small helpers ------------------------------------------------------ */
static int nick_eq(const udpc_nick *a, const udpc_nick *b) {
  return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static int nick_cmp(const udpc_nick *a, const udpc_nick *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->s, b->s, n);
  if (c != 0) return c;
  return (a->len > b->len) - (a->len < b->len);
}

/* ---- Logging (no stdio: a tiny string builder) ------------------------- */
typedef struct {
  char b[1600];
  size_t n;
} srv_line;

static void ln_str(srv_line *l, const char *s) {
  while (*s && l->n + 1 < sizeof l->b) l->b[l->n++] = *s++;
  l->b[l->n] = '\0';
}

static void ln_u64(srv_line *l, uint64_t v) {
  char t[24];
  size_t i = sizeof t;
  t[--i] = '\0';
  do {
    t[--i] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  ln_str(l, &t[i]);
}

static void ln_addr(srv_line *l, const udpc_addr *a) {
  static const char hex[] = "0123456789abcdef";
  if (a->family == 4) {
    for (int i = 0; i < 4; i++) {
      if (i) ln_str(l, ".");
      ln_u64(l, a->ip[i]);
    }
  } else {
    ln_str(l, "[");
    for (int i = 0; i < 16; i += 2) {
      char g[6];
      size_t k = 0;
      if (i) g[k++] = ':';
      g[k++] = hex[a->ip[i] >> 4];
      g[k++] = hex[a->ip[i] & 15];
      g[k++] = hex[a->ip[i + 1] >> 4];
      g[k++] = hex[a->ip[i + 1] & 15];
      g[k] = '\0';
      ln_str(l, g);
    }
    ln_str(l, "]");
  }
  ln_str(l, ":");
  ln_u64(l, a->port);
}

static void ln_pkt_full(srv_line *l, const udpc_packet *p) {
  int n = udpc_wire_format(p, l->b + l->n, sizeof l->b - l->n);
  if (n > 0 && (size_t)n < sizeof l->b - l->n) {
    l->n += (size_t)n;
  } else {
    l->b[l->n] = '\0';
    ln_str(l, udpc_ptype_name(p->type));
    ln_str(l, " ...");
  }
}

/* Entries of a page or delta written into a per-datagram trace line. */
#define SRV_TRACE_ENTRIES 3u

/* The packet's text form; a TABLE_PAGE or TABLE_DELTA with more than
 * SRV_TRACE_ENTRIES entries shows the first ones and how many more (the
 * trace is built for every datagram, even when the driver's log level
 * drops it: formatting up to 116 entries each time cost a third of the
 * server's CPU in a join storm). */
static void ln_pkt(srv_line *l, const udpc_packet *p) {
  size_t cut = 0, fixed = 0;
  uint8_t count = 0;
  if (p->type == UDPC_PT_TABLE_PAGE) {
    count = p->u.table_page.count;
    fixed = offsetof(udpc_packet, u.table_page.entries);
  } else if (p->type == UDPC_PT_TABLE_DELTA) {
    count = p->u.table_delta.count;
    fixed = offsetof(udpc_packet, u.table_delta.entries);
  }
  if (count <= SRV_TRACE_ENTRIES) {
    ln_pkt_full(l, p);
    return;
  }
  cut = count - SRV_TRACE_ENTRIES;
  udpc_packet q;
  memcpy(&q, p, fixed + SRV_TRACE_ENTRIES * sizeof(udpc_entry));
  if (p->type == UDPC_PT_TABLE_PAGE)
    q.u.table_page.count = SRV_TRACE_ENTRIES;
  else
    q.u.table_delta.count = SRV_TRACE_ENTRIES;
  ln_pkt_full(l, &q);
  ln_str(l, " +");
  ln_u64(l, cut);
  ln_str(l, " entries");
}

/* Log limiter: a new window starts SRV_LOG_WINDOW ms after the last one
 * (or when the clock steps back); the first thing logged in it is the
 * count of lines the previous window suppressed. */
static void srv_log_roll(udpc_server *s) {
  if (s->now < s->log_window + SRV_LOG_WINDOW && s->now >= s->log_window)
    return;
  if (s->log_supp > 0 && s->io.log) {
    srv_line l = {.n = 0};
    ln_str(&l, "log: suppressed ");
    ln_u64(&l, s->log_supp);
    ln_str(&l, " messages (at most ");
    ln_u64(&l, SRV_LOG_PER_SEC);
    ln_str(&l, " per second)");
    s->io.log(s->io.ctx, 1, l.b);
  }
  s->log_window = s->now;
  s->log_n = 0;
  s->log_supp = 0;
}

/* Would the log callback take a line of this level (udpc_io.log_limit)?
 * Checked before a line is built. */
static int srv_log_wants(const udpc_server *s, int level) {
  return s->io.log != NULL && (s->io.log_limit == 0 || level < s->io.log_limit);
}

/* Debug lines (level 3: per-datagram traces) always pass; the others are
 * limited to SRV_LOG_PER_SEC per window. */
static int srv_log_allow(udpc_server *s, int level) {
  if (!srv_log_wants(s, level)) return 0;
  if (level >= 3) return 1;
  srv_log_roll(s);
  if (s->log_n < SRV_LOG_PER_SEC) {
    s->log_n++;
    return 1;
  }
  s->log_supp++;
  s->st.log_suppressed++;
  return 0;
}

static void srv_log(udpc_server *s, int level, const srv_line *l) {
  if (srv_log_allow(s, level)) s->io.log(s->io.ctx, level, l->b);
}

static void srv_log_msg(udpc_server *s, int level, const char *msg) {
  if (srv_log_allow(s, level)) s->io.log(s->io.ctx, level, msg);
}

/* "drop <reason> <addr>" at debug level. */
static void srv_log_drop(udpc_server *s, const udpc_addr *from,
                         const char *reason) {
  if (!srv_log_wants(s, 3)) return;
  srv_line l = {.n = 0};
  ln_str(&l, "drop ");
  ln_str(&l, reason);
  ln_str(&l, " from ");
  ln_addr(&l, from);
  srv_log(s, 3, &l);
}

/* ---- Output ------------------------------------------------------------ */
static void srv_tx_log(udpc_server *s, const char *what, const udpc_addr *to,
                       const udpc_packet *p, size_t len) {
  if (!srv_log_wants(s, 3)) return;
  srv_line l = {.n = 0};
  ln_str(&l, what);
  ln_str(&l, " ");
  ln_addr(&l, to);
  ln_str(&l, " len=");
  ln_u64(&l, len);
  ln_str(&l, ": ");
  ln_pkt(&l, p);
  srv_log(s, 3, &l);
}

static void srv_emit(udpc_server *s, const udpc_addr *to, const uint8_t *data,
                     size_t len) {
  s->st.tx++;
  s->st.tx_bytes += len;
  s->io.send(s->io.ctx, to, data, len);
}

/* Encode and send at once, but only if the datagram is at most `limit`
 * bytes (the amplification rule for unvalidated peers; SIZE_MAX else). */
static void srv_send(udpc_server *s, const udpc_addr *to, const udpc_packet *p,
                     size_t limit) {
  uint8_t buf[UDPC_MAX_PACKET];
  int n = udpc_wire_encode(p, buf, sizeof buf);
  if (n <= 0) {
    srv_line l = {.n = 0};
    ln_str(&l, "BUG: cannot encode ");
    ln_str(&l, udpc_ptype_name(p->type));
    ln_str(&l, ": ");
    ln_str(&l, udpc_strerror(n));
    srv_log(s, 0, &l);
    return;
  }
  if ((size_t)n > limit) {
    srv_log_drop(s, to, "reply larger than request (amplification rule)");
    return;
  }
  srv_tx_log(s, "tx", to, p, (size_t)n);
  srv_emit(s, to, buf, (size_t)n);
}

static int srv_held_full(const udpc_server *s, uint32_t need) {
  return s->n_held + need > SRV_HELD_MAX;
}

/* Queue an acknowledgement until the next successful commit. win_client /
 * win_msg_id name a SAVE window entry to forget if the commit fails. */
static int srv_hold(udpc_server *s, const udpc_addr *to, const udpc_packet *p,
                    uint32_t win_client, uint32_t win_msg_id,
                    uint64_t win_khash) {
  UDPC_ENSURE(!srv_held_full(s, 1), UDPC_ERR_NOMEM);
  srv_held *h = &s->held[s->n_held];
  int n = udpc_wire_encode(p, h->data, sizeof h->data);
  if (n <= 0) {
    srv_log_msg(s, 0, "BUG: cannot encode a held acknowledgement");
    return n < 0 ? n : UDPC_ERR_ARG;
  }
  h->to = *to;
  h->len = (uint16_t)n;
  h->win_client = win_client;
  h->win_msg_id = win_msg_id;
  h->win_khash = win_khash;
  s->n_held++;
  srv_tx_log(s, "hold", to, p, (size_t)n);
  return UDPC_OK;
}

/* A request dropped because SRV_HELD_MAX acknowledgements already wait for
 * the commit (the client retransmits). */
static void srv_held_drop(udpc_server *s, const udpc_addr *from,
                          const char *what) {
  s->st.dropped_unexpected++;
  s->st.dropped_held_full++;
  srv_log_drop(s, from, "held acknowledgements full");
  srv_line l = {.n = 0};
  ln_str(&l, "limit: ");
  ln_u64(&l, SRV_HELD_MAX);
  ln_str(&l, " acknowledgements wait for the commit: ");
  ln_str(&l, what);
  ln_str(&l, " from ");
  ln_addr(&l, from);
  ln_str(&l, " dropped");
  srv_log(s, 1, &l);
}

/* Bytes of a udpc_packet the server zeroes before filling one of `type`:
 * the header and the type's fields, without the entry arrays of pages and
 * deltas (filled up to their count; a whole udpc_packet is 6.6 KB). */
static size_t pkt_fixed(uint8_t type) {
  const udpc_packet *z = NULL;
  switch (type) {
    case UDPC_PT_TABLE_PAGE: return offsetof(udpc_packet, u.table_page.entries);
    case UDPC_PT_TABLE_DELTA:
      return offsetof(udpc_packet, u.table_delta.entries);
    case UDPC_PT_MAIL_PAGE: return offsetof(udpc_packet, u.mail_page.mail);
    case UDPC_PT_SAVE_RESULT:
      return offsetof(udpc_packet, u) + sizeof z->u.save_result;
    case UDPC_PT_COOKIE: return offsetof(udpc_packet, u) + sizeof z->u.cookie;
    case UDPC_PT_KICKED: return offsetof(udpc_packet, u) + sizeof z->u.kicked;
    case UDPC_PT_REGISTER_RESULT:
    case UDPC_PT_HEARTBEAT_ACK:
    case UDPC_PT_DEREG_RESULT:
    case UDPC_PT_PROBE:
    case UDPC_PT_ERROR:
      return offsetof(udpc_packet, u) + sizeof z->u.reg_result; /* largest */
    default: return sizeof *z; /* not sent by the server: all of it */
  }
}
_Static_assert(sizeof(((udpc_packet *)0)->u.reg_result) >=
                       sizeof(((udpc_packet *)0)->u.heartbeat_ack) &&
                   sizeof(((udpc_packet *)0)->u.reg_result) >=
                       sizeof(((udpc_packet *)0)->u.dereg_result) &&
                   sizeof(((udpc_packet *)0)->u.reg_result) >=
                       sizeof(((udpc_packet *)0)->u.error),
               "pkt_fixed: reg_result is the largest of these");

static void pkt_init(udpc_packet *p, uint8_t type, uint32_t id,
                     uint64_t token) {
  memset(p, 0, pkt_fixed(type));
  p->type = type;
  p->id = id;
  p->token = token;
}

static void srv_send_error(udpc_server *s, const udpc_addr *to, uint32_t id,
                           uint8_t code, size_t req_len) {
  udpc_packet p;
  pkt_init(&p, UDPC_PT_ERROR, id, 0);
  p.u.error.code = code;
  srv_send(s, to, &p, req_len);
}

/* ---- Nick map ----------------------------------------------------------- */
static size_t nick_hash(const udpc_server *s, const udpc_nick *n) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const unsigned char *)n->s, n->len, s->nick_key);
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof h; i++) v = v << 8 | h[i];
  return (size_t)v;
}

static uint32_t nick_lookup(const udpc_server *s, const udpc_nick *n) {
  if (s->nick_cap == 0) return SRV_NONE;
  size_t mask = s->nick_cap - 1;
  for (size_t i = nick_hash(s, n) & mask;; i = (i + 1) & mask) {
    uint32_t v = s->nick_map[i];
    if (v == 0) return SRV_NONE;
    if (nick_eq(&s->clients[v - 1].nick, n)) return v - 1;
  }
}

static void nick_place(udpc_server *s, uint32_t *map, size_t cap,
                       uint32_t idx) {
  size_t mask = cap - 1;
  size_t i = nick_hash(s, &s->clients[idx].nick) & mask;
  while (map[i] != 0) i = (i + 1) & mask;
  map[i] = idx + 1;
}

static int nick_insert(udpc_server *s, uint32_t idx) {
  if (((size_t)s->n_clients + 1) * 4 > s->nick_cap * 3) { /* load <= 3/4 */
    size_t cap = s->nick_cap ? s->nick_cap * 2 : 256;
    uint32_t *m = calloc(cap, sizeof *m);
    UDPC_ENSURE(m != NULL, UDPC_ERR_NOMEM);
    for (size_t i = 0; i < s->nick_cap; i++)
      if (s->nick_map[i]) nick_place(s, m, cap, s->nick_map[i] - 1);
    free(s->nick_map);
    s->nick_map = m;
    s->nick_cap = cap;
  }
  nick_place(s, s->nick_map, s->nick_cap, idx);
  return UDPC_OK;
}

/* Keyed SipHash of an address (family, 16 address bytes, port). */
static uint64_t srv_addr_hash(const udpc_server *s, const udpc_addr *a) {
  uint8_t in[1 + 16 + 2] = {0};
  in[0] = a->family;
  memcpy(in + 1, a->ip, a->family == 4 ? 4 : 16);
  in[17] = (uint8_t)(a->port >> 8);
  in[18] = (uint8_t)a->port;
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, in, sizeof in, s->src_key);
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof h; i++) v = v << 8 | h[i];
  return v;
}

static uint32_t srv_addr_hash32(const udpc_server *s, const udpc_addr *a) {
  return (uint32_t)srv_addr_hash(s, a);
}

/* ---- Token map ------------------------------------------------------------ */
static size_t tok_home(uint64_t t, size_t mask) {
  t ^= t >> 33;
  t *= 0xff51afd7ed558ccdULL;
  t ^= t >> 33;
  return (size_t)t & mask;
}

static uint32_t tok_idx(srv_tok_slot v) { return (v - 1) >> 1; }

/* The token a (nonempty) slot names, read from its client record. */
static uint64_t tok_of(const udpc_server *s, srv_tok_slot v) {
  const srv_client *c = &s->clients[tok_idx(v)];
  return ((v - 1) & 1) ? c->ended_token : c->token;
}

/* Slot index of token, or SIZE_MAX. */
static size_t tok_find(const udpc_server *s, uint64_t token) {
  if (token == 0 || s->tok_cap == 0) return SIZE_MAX;
  size_t mask = s->tok_cap - 1;
  for (size_t i = tok_home(token, mask);; i = (i + 1) & mask) {
    if (s->tok_map[i] == 0) return SIZE_MAX;
    if (tok_of(s, s->tok_map[i]) == token) return i;
  }
}

static uint32_t tok_lookup(const udpc_server *s, uint64_t token) {
  size_t i = tok_find(s, token);
  return i == SIZE_MAX ? SRV_NONE : tok_idx(s->tok_map[i]);
}

static void tok_place(srv_tok_slot *map, size_t cap, uint64_t token,
                      srv_tok_slot v) {
  size_t mask = cap - 1;
  size_t i = tok_home(token, mask);
  while (map[i] != 0) i = (i + 1) & mask;
  map[i] = v;
}

/* Make room for one more token (so the insert after it cannot fail);
 * load factor at most 3/4. */
static int tok_reserve(udpc_server *s) {
  if ((s->tok_count + 1) * 4 > s->tok_cap * 3) {
    size_t cap = s->tok_cap ? s->tok_cap * 2 : 256;
    srv_tok_slot *m = calloc(cap, sizeof *m);
    UDPC_ENSURE(m != NULL, UDPC_ERR_NOMEM);
    for (size_t i = 0; i < s->tok_cap; i++)
      if (s->tok_map[i])
        tok_place(m, cap, tok_of(s, s->tok_map[i]), s->tok_map[i]);
    free(s->tok_map);
    s->tok_map = m;
    s->tok_cap = cap;
  }
  return UDPC_OK;
}

/* Index the live token of idx (already in clients[idx].token). */
static int tok_insert_live(udpc_server *s, uint32_t idx) {
  UDPC_GUARD(tok_reserve(s));
  tok_place(s->tok_map, s->tok_cap, s->clients[idx].token,
            (srv_tok_slot)(1u + (idx << 1)));
  s->tok_count++;
  return UDPC_OK;
}

/* Backward-shift deletion (linear probing, no tombstones). */
static void tok_remove(udpc_server *s, uint64_t token) {
  size_t i = tok_find(s, token);
  if (i == SIZE_MAX) return;
  size_t mask = s->tok_cap - 1;
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (s->tok_map[j] == 0) break;
    size_t k = tok_home(tok_of(s, s->tok_map[j]), mask);
    /* Move j's entry into the hole at i unless its home lies in (i, j]. */
    int home_between = (i <= j) ? (k > i && k <= j) : (k > i || k <= j);
    if (!home_between) {
      s->tok_map[i] = s->tok_map[j];
      i = j;
    }
  }
  s->tok_map[i] = 0;
  s->tok_count--;
}

/* The live token of idx becomes its ended token (same slot, retagged). */
static void tok_retag_ended(udpc_server *s, uint32_t idx) {
  size_t i = tok_find(s, s->clients[idx].token);
  if (i != SIZE_MAX) s->tok_map[i]++; /* 1 + (idx << 1) -> 1 + (.. | 1) */
  s->clients[idx].ended_token = s->clients[idx].token;
  s->clients[idx].token = 0;
}

/* A fresh nonzero token not in use. */
static uint64_t srv_new_token(udpc_server *s) {
  for (;;) {
    uint64_t t = udpc_rand_u64(&s->rng);
    if (t != 0 && tok_lookup(s, t) == SRV_NONE) return t;
  }
}

/* ---- Online list ----------------------------------------------------------- */
static void on_unlink(udpc_server *s, uint32_t idx) {
  srv_client *c = &s->clients[idx];
  if (c->prev != SRV_NONE)
    s->clients[c->prev].next = c->next;
  else
    s->on_head = c->next;
  if (c->next != SRV_NONE)
    s->clients[c->next].prev = c->prev;
  else
    s->on_tail = c->prev;
  c->prev = c->next = SRV_NONE;
}

static void on_append(udpc_server *s, uint32_t idx) {
  srv_client *c = &s->clients[idx];
  c->prev = s->on_tail;
  c->next = SRV_NONE;
  if (s->on_tail != SRV_NONE)
    s->clients[s->on_tail].next = idx;
  else
    s->on_head = idx;
  s->on_tail = idx;
}

/* Any valid packet of a live session counts as heard (P8). */
static void srv_heard(udpc_server *s, uint32_t idx, uint64_t now) {
  srv_client *c = &s->clients[idx];
  if (!c->online) return;
  c->last_heard = now;
  if (s->on_tail != idx) {
    on_unlink(s, idx);
    on_append(s, idx);
  }
}

/* ---- Table --------------------------------------------------------------- */
static void srv_entry(const udpc_server *s, uint32_t idx, udpc_entry *e) {
  const srv_client *c = &s->clients[idx];
  memset(e, 0, sizeof *e);
  e->nick = c->nick;
  e->status = c->online ? UDPC_STATUS_ONLINE : UDPC_STATUS_OFFLINE;
  e->addr = c->addr;
}

/* The record of idx must be written before the next commit. The list
 * holds SRV_DIRTY_MAX; beyond, the flush scans the flags (O(N), only for
 * batches that touch more records than that). */
static void srv_dirty_add(udpc_server *s, uint32_t idx) {
  srv_client *c = &s->clients[idx];
  if (!c->dirty) {
    c->dirty = 1;
    if (s->n_dirty < SRV_DIRTY_MAX)
      s->dirty[s->n_dirty++] = idx;
    else
      s->dirty_overflow = 1;
  }
  s->store_touched = 1;
}

static void srv_mark_dirty(udpc_server *s, uint32_t idx, uint64_t now) {
  s->clients[idx].last_seen_ms = now;
  srv_dirty_add(s, idx);
}

/* The entry of idx changed: bump the version, log the change in the
 * coalescing window (opening it if needed). */
static void srv_table_changed(udpc_server *s, uint32_t idx, uint64_t now) {
  s->version++;
  srv_mark_dirty(s, idx, now);
  if (!s->win_open) {
    s->win_open = 1;
    s->win_due = 0;
    s->win_deadline = now + UDPC_T_DELTA_WINDOW;
  }
  srv_client *c = &s->clients[idx];
  if (!c->inwin) {
    c->inwin = 1;
    s->n_wdistinct++;
  }
  if (s->wlog_lost) return;
  if (s->wlog_n == s->wlog_cap) {
    /* More changes in one batch than the log holds (the flush emits once
     * it has SRV_WLOG_MAX): grow it. */
    uint32_t cap = s->wlog_cap + s->wlog_cap / 2;
    uint32_t *w = cap > s->wlog_cap ? realloc(s->wlog, cap * sizeof *w) : NULL;
    if (w == NULL) {
      /* Degrade gracefully: this window emits no deltas; every client
       * notices the new version in its next HEARTBEAT_ACK (P6.4). */
      srv_log_msg(s, 1, "out of memory (table change log): no deltas");
      s->wlog_lost = 1;
      return;
    }
    s->wlog = w;
    s->wlog_cap = cap;
  }
  s->wlog[s->wlog_n++] = idx;
}

static void srv_set_online(udpc_server *s, uint32_t idx, uint64_t now) {
  srv_client *c = &s->clients[idx];
  if (c->online) return;
  c->online = 1;
  s->n_online++;
  c->last_heard = now;
  on_append(s, idx);
}

/* The live session ends: its token and address become the remembered
 * ended session (the previous ended token is forgotten: BAD_SESSION). The
 * token stays in the token map. Does not change `online`. */
static void srv_end_session(udpc_server *s, uint32_t idx) {
  srv_client *c = &s->clients[idx];
  /* The SAVE window serves retransmissions of the live session only (an
   * ended session's requests get SESSION_ENDED): free it, so memory is
   * bounded by the online senders. */
  free(c->win);
  c->win = NULL;
  s->walks[idx].next = 0; /* a walk belongs to a session */
  c->walk_idv = 0;
  c->walk_fresh = 0;
  if (c->token == 0) return;
  if (c->ended_token != 0) tok_remove(s, c->ended_token);
  c->ended_ahash = srv_addr_hash32(s, &c->addr);
  tok_retag_ended(s, idx);
}

/* Session ends (dereg, deregA, heartbeat or probe timeout): OFFLINE. */
static void srv_set_offline(udpc_server *s, uint32_t idx, uint64_t now) {
  srv_client *c = &s->clients[idx];
  if (!c->online) return;
  srv_end_session(s, idx);
  c->online = 0;
  s->n_online--;
  on_unlink(s, idx);
  srv_table_changed(s, idx, now);
}

static int srv_reserve_clients(udpc_server *s, uint32_t need) {
  if (need <= s->cap_clients) return UDPC_OK;
  /* Growth by 1.5 (at most 1/3 of the capacity unused), never beyond
   * what max_clients needs. */
  UDPC_ENSURE(need <= SRV_IDX_MAX, UDPC_ERR_NOMEM);
  uint32_t cap = s->cap_clients ? s->cap_clients : 64;
  while (cap < need) cap += cap / 2 + 1;
  if (cap > s->max_clients && need <= s->max_clients) cap = s->max_clients;
  if (cap > SRV_IDX_MAX) cap = SRV_IDX_MAX;
  srv_client *c = realloc(s->clients, (size_t)cap * sizeof *c);
  UDPC_ENSURE(c != NULL, UDPC_ERR_NOMEM);
  s->clients = c;
  uint32_t *o = realloc(s->order, (size_t)cap * sizeof *o);
  UDPC_ENSURE(o != NULL, UDPC_ERR_NOMEM);
  s->order = o;
  srv_walk *w = realloc(s->walks, (size_t)cap * sizeof *w);
  UDPC_ENSURE(w != NULL, UDPC_ERR_NOMEM);
  s->walks = w;
  s->cap_clients = cap;
  return UDPC_OK;
}

/* Append a client record (offline, no token) and index its nick. The
 * caller places it in order[]. */
static int srv_add_client(udpc_server *s, const udpc_nick *nick,
                          uint32_t *out) {
  UDPC_GUARD(srv_reserve_clients(s, s->n_clients + 1));
  uint32_t idx = s->n_clients;
  srv_client *c = &s->clients[idx];
  memset(c, 0, sizeof *c);
  c->nick = *nick;
  c->nick.s[c->nick.len] = '\0';
  c->prev = c->next = SRV_NONE;
  s->walks[idx].next = 0;
  s->walks[idx].id = 0;
  UDPC_GUARD(nick_insert(s, idx));
  s->n_clients++;
  *out = idx;
  return UDPC_OK;
}

/* Insert idx (already in clients[]) into the sorted order. n_clients
 * already counts it; order[0..n_clients-1) is sorted. */
static void srv_order_insert(udpc_server *s, uint32_t idx) {
  uint32_t n = s->n_clients - 1;
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (nick_cmp(&s->clients[s->order[mid]].nick, &s->clients[idx].nick) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  memmove(&s->order[lo + 1], &s->order[lo],
          (size_t)(n - lo) * sizeof *s->order);
  s->order[lo] = idx;
}

/* ---- Credentials and cookies ---------------------------------------------- */
/* Stored credential hash: BLAKE2b-256 keyed with a per-user random salt
 * (so hashes survive a restart with a new seed). */
static void srv_cred_hash(uint8_t out[SRV_HASH_LEN],
                          const uint8_t salt[SRV_SALT_LEN],
                          const uint8_t cred[UDPC_CRED_LEN]) {
  crypto_generichash(out, SRV_HASH_LEN, cred, UDPC_CRED_LEN, salt,
                     SRV_SALT_LEN);
}

static int srv_cookie_tag(const udpc_server *s, uint32_t bucket,
                          const udpc_addr *from, const udpc_nick *nick,
                          uint8_t tag[SRV_COOKIE_TAG]) {
  uint8_t in[4 + 1 + 16 + 2 + UDPC_NICK_MAX];
  uint8_t ip[16] = {0};
  memcpy(ip, from->ip, from->family == 4 ? 4 : 16);
  udpc_writer w;
  udpc_writer_init(&w, in, sizeof in);
  UDPC_GUARD(udpc_cursor_write_u32(&w, bucket));
  UDPC_GUARD(udpc_cursor_write_u8(&w, from->family));
  UDPC_GUARD(udpc_cursor_write_bytes(&w, ip, sizeof ip));
  UDPC_GUARD(udpc_cursor_write_u16(&w, from->port));
  UDPC_GUARD(udpc_cursor_write_bytes(&w, nick->s, nick->len));
  crypto_generichash(tag, SRV_COOKIE_TAG, in, w.pos, s->cookie_key,
                     sizeof s->cookie_key);
  return UDPC_OK;
}

static uint32_t srv_bucket(uint64_t now) {
  return (uint32_t)(now / UDPC_T_COOKIE_BUCKET);
}

static int srv_cookie_make(const udpc_server *s, uint64_t now,
                           const udpc_addr *from, const udpc_nick *nick,
                           uint8_t out[SRV_COOKIE_LEN]) {
  udpc_writer w;
  udpc_writer_init(&w, out, SRV_COOKIE_LEN);
  uint32_t bucket = srv_bucket(now);
  UDPC_GUARD(udpc_cursor_write_u32(&w, bucket));
  return srv_cookie_tag(s, bucket, from, nick, out + 4);
}

static int srv_cookie_valid(const udpc_server *s, uint64_t now,
                            const udpc_addr *from, const udpc_packet *p) {
  if (p->u.reg.cookie_len != SRV_COOKIE_LEN) return 0;
  udpc_reader r;
  uint32_t bucket;
  udpc_reader_init(&r, p->u.reg.cookie, SRV_COOKIE_LEN);
  if (udpc_cursor_read_u32(&r, &bucket) != UDPC_OK) return 0;
  uint32_t cur = srv_bucket(now);
  if (bucket != cur && !(cur > 0 && bucket == cur - 1)) return 0;
  uint8_t tag[SRV_COOKIE_TAG];
  if (srv_cookie_tag(s, bucket, from, &p->u.reg.nick, tag) != UDPC_OK) return 0;
  return sodium_memcmp(tag, p->u.reg.cookie + 4, SRV_COOKIE_TAG) == 0;
}

static void rl_sess_fill(srv_client *c, uint32_t burst, uint64_t now);

/* ---- REGISTER (P5) ---------------------------------------------------------- */
static void srv_reg_result(udpc_server *s, const udpc_addr *to, uint32_t id,
                           uint8_t status, size_t limit) {
  udpc_packet p;
  pkt_init(&p, UDPC_PT_REGISTER_RESULT, id, 0);
  p.u.reg_result.status = status;
  srv_send(s, to, &p, limit);
}

static void srv_hold_reg_ok(udpc_server *s, uint32_t idx, uint32_t id) {
  srv_client *c = &s->clients[idx];
  uint32_t mail = 0;
  if (udpc_store_mail_count(s->store, &c->nick, &mail) != UDPC_OK) mail = 0;
  udpc_packet p;
  pkt_init(&p, UDPC_PT_REGISTER_RESULT, id, 0);
  p.u.reg_result.status = UDPC_REG_OK;
  p.u.reg_result.token = c->token;
  p.u.reg_result.table_version = s->version;
  p.u.reg_result.mail_count = mail;
  (void)srv_hold(s, &c->addr, &p, SRV_NONE, 0, 0);
}

static void srv_register(udpc_server *s, uint64_t now, const udpc_addr *from,
                         const udpc_packet *p, size_t req_len) {
  const udpc_nick *nick = &p->u.reg.nick;
  if (!srv_cookie_valid(s, now, from, p)) {
    /* No state before validation; the COOKIE (27 bytes) is smaller than
     * any REGISTER (>= 41), and srv_send checks it anyway. */
    udpc_packet c;
    pkt_init(&c, UDPC_PT_COOKIE, p->id, 0);
    c.u.cookie.cookie_len = SRV_COOKIE_LEN;
    if (srv_cookie_make(s, now, from, nick, c.u.cookie.cookie) != UDPC_OK)
      return;
    if (p->u.reg.cookie_len != 0) srv_log_drop(s, from, "invalid cookie");
    srv_send(s, from, &c, req_len);
    return;
  }
  uint32_t idx = nick_lookup(s, nick);
  if (idx != SRV_NONE) {
    srv_client *c = &s->clients[idx];
    uint8_t h[SRV_HASH_LEN];
    srv_cred_hash(h, c->salt, p->u.reg.credential);
    if (sodium_memcmp(h, c->cred_hash, SRV_HASH_LEN) != 0) {
      srv_reg_result(s, from, p->id, UDPC_REG_NICK_TAKEN, req_len);
      return;
    }
    if (srv_held_full(s, 1)) {
      srv_held_drop(s, from, "REGISTER");
      return;
    }
    if (c->online && udpc_addr_equal(&c->addr, from)) {
      /* Retransmission or re-reg from the live session: same token. The
       * client starts a new walk (its TABLE_REQ ids stay ordered, so the
       * id is kept). */
      s->walks[idx].next = 0;
      srv_heard(s, idx, now);
      srv_hold_reg_ok(s, idx, p->id);
      return;
    }
    /* Come back online here (P5.3). A live session at another address is
     * taken over: it ends, and its token gets SESSION_ENDED (R45, R72). */
    if (tok_reserve(s) != UDPC_OK) {
      srv_log_msg(s, 0, "out of memory (token map)");
      return;
    }
    srv_end_session(s, idx);
    uint64_t t = srv_new_token(s);
    c->token = t;
    c->walk_fresh = 1;
    (void)tok_insert_live(s, idx); /* cannot fail: reserved */
    rl_sess_fill(c, s->session_burst, now);
    c->addr = *from;
    srv_set_online(s, idx, now);
    srv_heard(s, idx, now);
    srv_table_changed(s, idx, now);
    srv_hold_reg_ok(s, idx, p->id);
    return;
  }
  if (s->n_clients >= s->max_clients) {
    s->st.refused_server_full++;
    srv_line l = {.n = 0};
    ln_str(&l, "limit: ");
    ln_u64(&l, s->max_clients);
    ln_str(&l, " registered nicks: REGISTER of ");
    ln_str(&l, nick->s);
    ln_str(&l, " refused (SERVER_FULL)");
    srv_log(s, 1, &l);
    srv_reg_result(s, from, p->id, UDPC_REG_SERVER_FULL, req_len);
    return;
  }
  if (srv_held_full(s, 1)) {
    srv_held_drop(s, from, "REGISTER");
    return;
  }
  /* Reserve every table before mutating anything. */
  if (srv_reserve_clients(s, s->n_clients + 1) != UDPC_OK) {
    srv_log_msg(s, 0, "out of memory (clients)");
    return;
  }
  if (tok_reserve(s) != UDPC_OK) {
    srv_log_msg(s, 0, "out of memory (token map)");
    return;
  }
  if (srv_add_client(s, nick, &idx) != UDPC_OK) {
    srv_log_msg(s, 0, "out of memory (nick map)");
    return;
  }
  srv_client *c = &s->clients[idx];
  srv_order_insert(s, idx);
  udpc_rand_bytes(&s->rng, c->salt, sizeof c->salt);
  srv_cred_hash(c->cred_hash, c->salt, p->u.reg.credential);
  c->addr = *from;
  c->registered_ms = now;
  uint64_t t = srv_new_token(s);
  c->token = t;
  c->walk_fresh = 1;
  (void)tok_insert_live(s, idx); /* cannot fail: reserved above */
  rl_sess_fill(c, s->session_burst, now);
  srv_set_online(s, idx, now);
  srv_table_changed(s, idx, now);
  srv_hold_reg_ok(s, idx, p->id);
}

/* ---- TABLE_REQ, HEARTBEAT (read-only) ------------------------------------ */
/* A TABLE_PAGE whose entries end at `next` (0: at the end of the table)
 * answered the session's TABLE_REQ `id` (see srv_walk). */
static void srv_walk_page(udpc_server *s, uint32_t idx, uint32_t id,
                          uint32_t next) {
  srv_client *c = &s->clients[idx];
  srv_walk *w = &s->walks[idx];
  c->walk_fresh = 0;
  if (!c->walk_idv || (int32_t)(id - w->id) > 0) { /* a newer request */
    c->walk_idv = 1;
    w->id = id;
    w->next = next;
  } else if (id == w->id && (next == 0 || next < w->next)) {
    w->next = next; /* a retransmission: the lower of its answers */
  }
}

/* Debug trace of a datagram built without a udpc_packet. */
static void srv_tx_log_bytes(udpc_server *s, const char *what,
                             const udpc_addr *to, const uint8_t *b,
                             size_t len) {
  if (!srv_log_wants(s, 3)) return;
  udpc_packet p;
  if (udpc_wire_decode(&p, b, len) == UDPC_OK) srv_tx_log(s, what, to, &p, len);
}

static void srv_table_req(udpc_server *s, uint32_t idx,
                          const udpc_packet *req) {
  srv_client *c = &s->clients[idx];
  uint32_t total = s->n_clients;
  /* Decision: a start beyond the table is clamped to total (empty page):
   * TABLE_PAGE must satisfy start + count <= total. */
  uint32_t start =
      req->u.table_req.start <= total ? req->u.table_req.start : total;
  /* R52: as many entries as fit in one datagram (greedy, in order), in one
   * pass (the entries were validated when they registered). */
  uint8_t buf[UDPC_MAX_PACKET];
  udpc_wire_table t;
  int n = udpc_wire_page_begin(&t, buf, sizeof buf, req->id, c->token,
                               s->version, total, start);
  uint32_t i = start;
  while (n == UDPC_OK && i < total && i - start < SRV_TEST_PAGE_ENTRIES) {
    const srv_client *e = &s->clients[s->order[i]];
    int r = udpc_wire_table_append(
        &t, &e->nick, e->online ? UDPC_STATUS_ONLINE : UDPC_STATUS_OFFLINE,
        &e->addr);
    if (r <= 0) {
      n = r;
      break;
    }
    i++;
  }
  if (n == UDPC_OK) n = udpc_wire_table_finish(&t);
  if (n <= 0) {
    srv_log_msg(s, 0, "BUG: cannot encode a TABLE_PAGE");
    return;
  }
  srv_walk_page(s, idx, req->id, i < total ? i : 0);
  srv_tx_log_bytes(s, "tx", &c->addr, buf, (size_t)n);
  srv_emit(s, &c->addr, buf, (size_t)n);
}

static void srv_heartbeat(udpc_server *s, uint32_t idx,
                          const udpc_packet *req) {
  srv_client *c = &s->clients[idx];
  udpc_packet p;
  pkt_init(&p, UDPC_PT_HEARTBEAT_ACK, req->id, c->token);
  /* R58: the published version, never one whose delta is not sent yet. */
  p.u.heartbeat_ack.table_version = s->pub_version;
  srv_send(s, &c->addr, &p, SIZE_MAX);
}

/* ---- DEREG, DEREG_OTHER (P8) ------------------------------------------------ */
static void srv_hold_dereg_result(udpc_server *s, const udpc_addr *to,
                                  uint64_t token, uint32_t id) {
  udpc_packet p;
  pkt_init(&p, UDPC_PT_DEREG_RESULT, id, token);
  p.u.dereg_result.status = UDPC_DEREG_OK;
  (void)srv_hold(s, to, &p, SRV_NONE, 0, 0);
}

static void srv_dereg(udpc_server *s, uint64_t now, uint32_t idx,
                      const udpc_packet *req) {
  if (srv_held_full(s, 1)) {
    srv_held_drop(s, &s->clients[idx].addr, "DEREG");
    return;
  }
  udpc_addr to = s->clients[idx].addr;
  srv_set_offline(s, idx, now);
  /* With the ended session's token, to its address. */
  srv_hold_dereg_result(s, &to, req->token, req->id);
}

static int srv_is_operator(const udpc_server *s, const udpc_nick *n) {
  for (size_t i = 0; i < s->n_operators; i++)
    if (nick_eq(&s->operators[i], n)) return 1;
  return 0;
}

static void srv_dereg_other(udpc_server *s, uint64_t now, uint32_t idx,
                            const udpc_packet *req) {
  srv_client *c = &s->clients[idx];
  const udpc_addr from = c->addr; /* copies: an operator may kick itself */
  const udpc_nick by = c->nick;
  udpc_packet p;
  pkt_init(&p, UDPC_PT_DEREG_RESULT, req->id, req->token);
  if (!srv_is_operator(s, &c->nick)) {
    p.u.dereg_result.status = UDPC_DEREG_NOT_PERMITTED;
    srv_send(s, &c->addr, &p, SIZE_MAX);
    return;
  }
  uint32_t t = nick_lookup(s, &req->u.dereg_other.target);
  if (t == SRV_NONE) {
    p.u.dereg_result.status = UDPC_DEREG_UNKNOWN_NICK;
    srv_send(s, &c->addr, &p, SIZE_MAX);
    return;
  }
  if (srv_held_full(s, 2)) {
    srv_held_drop(s, &from, "DEREG_OTHER");
    return;
  }
  srv_client *tc = &s->clients[t];
  if (tc->online) {
    srv_set_offline(s, t, now);
    /* KICKED: best effort, once, with the target's (now ended) token to
     * its address; it waits for the commit like the delta it goes with. */
    udpc_packet k;
    pkt_init(&k, UDPC_PT_KICKED, s->next_id++, tc->ended_token);
    k.u.kicked.by = by;
    (void)srv_hold(s, &tc->addr, &k, SRV_NONE, 0, 0); /* offline: its
                                                          ended address */
  }
  /* Decision: deregA of an already offline target is OK (idempotent, no
   * version change, P6.1). */
  srv_hold_dereg_result(s, &from, req->token, req->id);
}

/* ---- SAVE (P7) ------------------------------------------------------------- */
static uint64_t srv_save_khash(const udpc_server *s, const udpc_nick *to,
                               const uint8_t *text, size_t len) {
  crypto_generichash_state st;
  uint8_t h[8];
  crypto_generichash_init(&st, s->nick_key, sizeof s->nick_key, sizeof h);
  crypto_generichash_update(&st, &to->len, 1);
  crypto_generichash_update(&st, (const uint8_t *)to->s, to->len);
  crypto_generichash_update(&st, text, len);
  crypto_generichash_final(&st, h, sizeof h);
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof h; i++) v = v << 8 | h[i];
  return v;
}

static srv_win_ent *win_find(srv_client *c, uint32_t msg_id, uint64_t khash) {
  if (c->win == NULL) return NULL;
  for (uint32_t i = 0; i < SRV_WINDOW; i++) {
    srv_win_ent *e = &c->win->e[i];
    if (e->state != WIN_EMPTY && e->msg_id == msg_id && e->khash == khash)
      return e;
  }
  return NULL;
}

/* Find or add (overwriting the oldest) the window entry of the key. */
static srv_win_ent *win_put(srv_client *c, uint32_t msg_id, uint64_t khash) {
  srv_win_ent *e = win_find(c, msg_id, khash);
  if (e) return e;
  if (c->win == NULL) {
    c->win = calloc(1, sizeof *c->win);
    if (c->win == NULL) return NULL;
  }
  e = &c->win->e[c->win->next];
  c->win->next = (c->win->next + 1) % SRV_WINDOW;
  memset(e, 0, sizeof *e);
  e->msg_id = msg_id;
  e->khash = khash;
  return e;
}

static void win_forget(udpc_server *s, uint32_t idx, uint32_t msg_id,
                       uint64_t khash) {
  if (idx >= s->n_clients) return;
  srv_win_ent *e = win_find(&s->clients[idx], msg_id, khash);
  if (e) memset(e, 0, sizeof *e);
}

static void win_done(udpc_server *s, uint32_t idx, uint32_t msg_id,
                     uint64_t khash, uint8_t status, uint32_t recip) {
  srv_win_ent *e = win_put(&s->clients[idx], msg_id, khash);
  if (e == NULL) return; /* out of memory: no idempotency, still correct */
  e->state = WIN_DONE;
  e->status = status;
  e->recip = recip;
  if (recip < s->n_clients) e->addr = s->clients[recip].addr;
}

/* Check the quotas, append, and say how it went. */
static uint8_t srv_store_mail(udpc_server *s, uint64_t now, uint32_t sender,
                              uint32_t recip, uint32_t msg_id,
                              const uint8_t *text, size_t len) {
  const udpc_nick *to = &s->clients[recip].nick;
  uint32_t count = 0;
  uint64_t total = 0;
  if (udpc_store_mail_count(s->store, to, &count) != UDPC_OK ||
      udpc_store_mail_total(s->store, &total) != UDPC_OK)
    return UDPC_SAVE_STORE_ERROR;
  if (count >= s->mail_per_recipient || total >= s->mail_total) {
    s->st.refused_quota++;
    srv_line l = {.n = 0};
    ln_str(&l, "limit: mail quota (");
    ln_u64(&l, count >= s->mail_per_recipient ? s->mail_per_recipient
                                              : s->mail_total);
    ln_str(&l, count >= s->mail_per_recipient ? " per recipient" : " in total");
    ln_str(&l, "): SAVE for ");
    ln_str(&l, to->s);
    ln_str(&l, " refused (QUOTA)");
    srv_log(s, 2, &l);
    return UDPC_SAVE_QUOTA;
  }
  uint64_t seq = 0;
  s->store_touched = 1;
  if (udpc_store_mail_append(s->store, to, &s->clients[sender].nick, msg_id,
                             now, text, len, &seq) != UDPC_OK)
    return UDPC_SAVE_STORE_ERROR;
  s->st.mail_stored++;
  return UDPC_SAVE_SAVED;
}

/* Send (or hold, for SAVED) a SAVE_RESULT to the sender's live session and
 * record the result in the sender's window. The window says DONE/SAVED
 * only while an acknowledgement referencing it is held or after it was
 * committed; otherwise a retransmission goes through mail_find again. */
static void srv_save_result(udpc_server *s, uint32_t sender,
                            uint64_t sender_token, uint32_t req_id,
                            uint32_t msg_id, uint64_t khash, uint8_t status,
                            uint32_t recip) {
  srv_client *c = &s->clients[sender];
  if (!c->online || c->token != sender_token) return; /* session gone */
  if (status == UDPC_SAVE_STORE_ERROR)
    win_forget(s, sender, msg_id, khash); /* let a retransmission try again */
  else
    win_done(s, sender, msg_id, khash, status, recip);
  udpc_packet p;
  pkt_init(&p, UDPC_PT_SAVE_RESULT, req_id, c->token);
  p.u.save_result.status = status;
  if (status == UDPC_SAVE_RECIPIENT_ONLINE && recip < s->n_clients)
    srv_entry(s, recip, &p.u.save_result.entry);
  if (status == UDPC_SAVE_SAVED) {
    if (srv_hold(s, &c->addr, &p, sender, msg_id, khash) != UDPC_OK)
      win_forget(s, sender, msg_id, khash);
  } else {
    srv_send(s, &c->addr, &p, SIZE_MAX);
  }
}

static void srv_probe_send(udpc_server *s, const srv_probe *pr) {
  const srv_client *r = &s->clients[pr->recip];
  udpc_packet p;
  pkt_init(&p, UDPC_PT_PROBE, pr->probe_id, pr->recip_token);
  s->st.probes_sent++;
  srv_send(s, &r->addr, &p, SIZE_MAX);
}

static void srv_save(udpc_server *s, uint64_t now, uint32_t idx,
                     const udpc_packet *req) {
  srv_client *c = &s->clients[idx];
  uint32_t msg_id = req->u.save.msg_id;
  uint64_t khash = srv_save_khash(s, &req->u.save.to, req->u.save.text.p,
                                  req->u.save.text.len);
  srv_win_ent *w = win_find(c, msg_id, khash);
  if (w != NULL) {
    if (w->state == WIN_PENDING) {
      srv_log_drop(s, &c->addr, "SAVE: same (sender, msg_id) being probed");
      return;
    }
    /* Done: repeat the result without storing again. */
    udpc_packet p;
    pkt_init(&p, UDPC_PT_SAVE_RESULT, req->id, c->token);
    p.u.save_result.status = w->status;
    if (w->status == UDPC_SAVE_RECIPIENT_ONLINE) { /* the entry as it was */
      p.u.save_result.entry.nick = s->clients[w->recip].nick;
      p.u.save_result.entry.status = UDPC_STATUS_ONLINE;
      p.u.save_result.entry.addr = w->addr;
    }
    if (w->status == UDPC_SAVE_SAVED) {
      if (srv_held_full(s, 1)) {
        srv_held_drop(s, &c->addr, "SAVE");
        return;
      }
      (void)srv_hold(s, &c->addr, &p, SRV_NONE, 0, 0);
    } else {
      srv_send(s, &c->addr, &p, SIZE_MAX);
    }
    return;
  }
  uint32_t r = nick_lookup(s, &req->u.save.to);
  if (r == SRV_NONE) {
    srv_save_result(s, idx, c->token, req->id, msg_id, khash,
                    UDPC_SAVE_UNKNOWN_RECIPIENT, SRV_NONE);
    return;
  }
  if (srv_held_full(s, 1)) {
    srv_held_drop(s, &c->addr, "SAVE");
    return;
  }
  /* Stored before (window forgotten, or a server restart)? */
  if (udpc_store_mail_find(s->store, &s->clients[r].nick, &c->nick, msg_id,
                           req->u.save.text.p, req->u.save.text.len,
                           NULL) == UDPC_OK) {
    srv_save_result(s, idx, c->token, req->id, msg_id, khash, UDPC_SAVE_SAVED,
                    r);
    return;
  }
  if (!s->clients[r].online) {
    uint8_t st = srv_store_mail(s, now, idx, r, msg_id, req->u.save.text.p,
                                req->u.save.text.len);
    srv_save_result(s, idx, c->token, req->id, msg_id, khash, st, r);
    return;
  }
  /* Recipient online in our view: probe it first. */
  if (s->probe_tail - s->probe_head >= SRV_PROBES_MAX) {
    s->st.dropped_unexpected++;
    s->st.dropped_probes_full++;
    srv_log_drop(s, &c->addr, "SAVE: pending probes full");
    srv_line l = {.n = 0};
    ln_str(&l, "limit: ");
    ln_u64(&l, SRV_PROBES_MAX);
    ln_str(&l, " probes pending: SAVE from ");
    ln_str(&l, c->nick.s);
    ln_str(&l, " dropped");
    srv_log(s, 1, &l);
    return;
  }
  srv_win_ent *e = win_put(c, msg_id, khash);
  if (e == NULL) {
    srv_log_drop(s, &c->addr, "SAVE: out of memory");
    return;
  }
  e->state = WIN_PENDING;
  e->recip = r;
  uint32_t slot = s->probe_tail & (SRV_PROBES_MAX - 1);
  srv_probe *pr = &s->probes[slot];
  memset(pr, 0, offsetof(srv_probe, text));
  pr->active = 1;
  pr->probe_id = s->probe_id_base + s->probe_tail;
  pr->t0 = now;
  pr->sender = idx;
  pr->sender_token = c->token;
  pr->recip = r;
  pr->recip_token = s->clients[r].token;
  pr->req_id = req->id;
  pr->msg_id = msg_id;
  pr->khash = khash;
  pr->text_len = req->u.save.text.len;
  memcpy(pr->text, req->u.save.text.p, req->u.save.text.len);
  s->probe_tail++;
  srv_probe_send(s, pr);
}

static void srv_probe_ack(udpc_server *s, uint32_t idx, const udpc_packet *req,
                          const udpc_addr *from) {
  srv_probe *pr = &s->probes[req->id & (SRV_PROBES_MAX - 1)];
  if (!pr->active || pr->probe_id != req->id || pr->recip != idx ||
      pr->recip_token != req->token) {
    s->st.dropped_unexpected++;
    srv_log_drop(s, from, "PROBE_ACK for no pending probe");
    return;
  }
  pr->active = 0;
  srv_save_result(s, pr->sender, pr->sender_token, pr->req_id, pr->msg_id,
                  pr->khash, UDPC_SAVE_RECIPIENT_ONLINE, pr->recip);
}

/* Probe unanswered for T_PROBE_TIMEOUT: recipient is gone. */
static void srv_probe_timeout(udpc_server *s, uint64_t now, srv_probe *pr) {
  pr->active = 0;
  srv_client *r = &s->clients[pr->recip];
  if (r->online && r->token == pr->recip_token)
    srv_set_offline(s, pr->recip, now);
  /* Decision: if the sender's session ended meanwhile, nothing is stored:
   * its client dropped the SAVE and told its user the message was not sent.
   * If the sender's window entry was overwritten meanwhile, it is re-added;
   * if the held list is full, the mail is still stored and the result
   * forgotten (a retransmission finds the mail with mail_find). */
  const srv_client *snd = &s->clients[pr->sender];
  if (!snd->online || snd->token != pr->sender_token) return;
  /* R60: the recipient came back under a new session while its old one was
   * probed (restart on another port, or dereg + reg). It is ONLINE and will
   * not fetch mail until its next registration, so storing would strand the
   * message: answer RECIPIENT_ONLINE with its fresh entry instead. Found by
   * the simulator (scenarios probe-rereg, probe-dereg-reg). */
  if (r->online) {
    srv_save_result(s, pr->sender, pr->sender_token, pr->req_id, pr->msg_id,
                    pr->khash, UDPC_SAVE_RECIPIENT_ONLINE, pr->recip);
    return;
  }
  uint8_t st = srv_store_mail(s, now, pr->sender, pr->recip, pr->msg_id,
                              pr->text, pr->text_len);
  srv_save_result(s, pr->sender, pr->sender_token, pr->req_id, pr->msg_id,
                  pr->khash, st, pr->recip);
}

static void srv_probes_expire(udpc_server *s, uint64_t now) {
  for (uint32_t k = s->probe_head; k != s->probe_tail; k++) {
    srv_probe *pr = &s->probes[k & (SRV_PROBES_MAX - 1)];
    if (!pr->active) continue;
    /* t0 never decreases along the ring: stop at the first one not due. */
    if (now < pr->t0 + UDPC_T_PROBE_RETRY) break;
    if (now >= pr->t0 + UDPC_T_PROBE_TIMEOUT) {
      srv_probe_timeout(s, now, pr);
    } else if (!pr->resent) {
      pr->resent = 1;
      const srv_client *r = &s->clients[pr->recip];
      if (r->online && r->token == pr->recip_token) srv_probe_send(s, pr);
    }
  }
  while (s->probe_head != s->probe_tail &&
         !s->probes[s->probe_head & (SRV_PROBES_MAX - 1)].active)
    s->probe_head++;
}

/* ---- MAIL_REQ (P7) ----------------------------------------------------------- */
static void srv_mail_req(udpc_server *s, uint32_t idx, const udpc_packet *req) {
  srv_client *c = &s->clients[idx];
  if (srv_held_full(s, 1)) {
    srv_held_drop(s, &c->addr, "MAIL_REQ");
    return;
  }
  uint64_t ack = req->u.mail_req.ack_upto;
  uint32_t deleted = 0, count = 0;
  if (udpc_store_mail_delete_upto(s->store, &c->nick, ack, &deleted) !=
          UDPC_OK ||
      udpc_store_mail_count(s->store, &c->nick, &count) != UDPC_OK) {
    srv_log_msg(s, 0, "store failed on MAIL_REQ");
    srv_send_error(s, &c->addr, req->id, UDPC_ERROR_INTERNAL, SIZE_MAX);
    return;
  }
  if (deleted > 0) {
    s->store_touched = 1;
    s->st.mail_delivered += deleted;
  }
  udpc_packet p;
  pkt_init(&p, UDPC_PT_MAIL_PAGE, req->id, c->token);
  size_t n = 0;
  /* Text is borrowed from the store until the next store call: encode
   * (srv_send / srv_hold copy) before calling the store again. */
  if (udpc_store_mail_page(s->store, &c->nick, ack, p.u.mail_page.mail,
                           UDPC_MAIL_PAGE_MAX, &n) != UDPC_OK)
    n = 0;
  size_t size = UDPC_MAIL_PAGE_FIXED, fit = 0;
  while (fit < n) {
    size_t m = udpc_wire_mail_size(&p.u.mail_page.mail[fit]);
    if (size + m > UDPC_MAX_PACKET) break;
    size += m;
    fit++;
  }
  p.u.mail_page.count = (uint8_t)fit;
  p.u.mail_page.remaining = count >= fit ? count - (uint32_t)fit : 0;
  if (deleted > 0)
    (void)srv_hold(s, &c->addr, &p, SRV_NONE, 0, 0);
  else
    srv_send(s, &c->addr, &p, SIZE_MAX);
}

/* ---- Rate limits (SECURITY.md, P9.4) ------------------------------------------ */
static void rl_fill(srv_tbucket *b, uint32_t burst, uint64_t now) {
  b->milli = (uint64_t)burst * SRV_MILLI;
  b->last = now;
  b->limited = 0;
}

/* Refill for the time since the last use, then take one datagram's worth.
 * Returns 1 if the datagram may pass. A clock that steps back refills
 * nothing. */
static int rl_take(srv_tbucket *b, uint32_t rate, uint32_t burst,
                   uint64_t now) {
  if (rate == UINT32_MAX) return 1;
  uint64_t cap = (uint64_t)burst * SRV_MILLI;
  if (now > b->last) {
    uint64_t el = now - b->last;
    /* el * rate could overflow: a long pause simply fills the bucket. */
    if (el >= (cap + rate - 1) / rate)
      b->milli = cap;
    else
      b->milli += el * rate; /* rate per s = rate milli-tokens per ms */
    if (b->milli > cap) b->milli = cap;
  }
  b->last = now;
  if (b->milli < SRV_MILLI) return 0;
  b->milli -= SRV_MILLI;
  return 1;
}

/* A live session's bucket lives in its client record in 8 bytes: tokens
 * saturate at UINT32_MAX milli (a burst above 4,294,967 datagrams counts as
 * that), and only the low 32 bits of the last refill's time are kept (a
 * live session is never silent for 2^31 ms). */
static void rl_sess_fill(srv_client *c, uint32_t burst, uint64_t now) {
  uint64_t m = (uint64_t)burst * SRV_MILLI;
  c->rl_milli = m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
  c->rl_last = (uint32_t)now;
  c->rl_limited = 0;
}

static int rl_sess_take(srv_client *c, uint32_t rate, uint32_t burst,
                        uint64_t now) {
  srv_tbucket b;
  uint32_t ahead = (uint32_t)now - c->rl_last; /* mod 2^32 */
  if (ahead <= INT32_MAX)
    b.last = ahead <= now ? now - ahead : 0;
  else /* the clock stepped back */
    b.last = now + (uint32_t)(c->rl_last - (uint32_t)now);
  b.milli = c->rl_milli;
  b.limited = 0;
  int ok = rl_take(&b, rate, burst, now);
  c->rl_milli = b.milli > UINT32_MAX ? UINT32_MAX : (uint32_t)b.milli;
  c->rl_last = (uint32_t)b.last;
  return ok;
}

/* The bucket of a source address: found, or a fresh full one in the least
 * recently used way of its set. */
static srv_source *src_get(udpc_server *s, const udpc_addr *a, uint64_t now) {
  uint32_t v = (uint32_t)(srv_addr_hash(s, a) >> 32);
  srv_source *set =
      &s->sources[(v % (SRV_SOURCES / SRV_SOURCE_WAYS)) * SRV_SOURCE_WAYS];
  srv_source *victim = NULL;
  for (uint32_t i = 0; i < SRV_SOURCE_WAYS; i++) {
    srv_source *e = &set[i];
    if (!e->used) {
      if (victim == NULL || victim->used) victim = e;
      continue;
    }
    if (udpc_addr_equal(&e->addr, a)) return e;
    if (victim == NULL || (victim->used && e->b.last < victim->b.last))
      victim = e;
  }
  if (victim->used) s->st.sources_evicted++;
  memset(victim, 0, sizeof *victim);
  victim->used = 1;
  victim->addr = *a;
  rl_fill(&victim->b, s->source_burst, now);
  return victim;
}

/* 1 if the datagram may be processed. p is NULL for undecodable ones. A
 * datagram of a live session (its token, from its address) is charged to
 * the session; any other to its source address. */
static int srv_rate_ok(udpc_server *s, uint64_t now, const udpc_addr *from,
                       const udpc_packet *p) {
  if (p != NULL && udpc_ptype_has_token(p->type)) {
    uint32_t idx = tok_lookup(s, p->token);
    if (idx != SRV_NONE) {
      srv_client *c = &s->clients[idx];
      if (c->online && c->token == p->token &&
          udpc_addr_equal(&c->addr, from)) {
        if (rl_sess_take(c, s->session_rate, s->session_burst, now)) {
          c->rl_limited = 0;
          return 1;
        }
        s->st.dropped_session_rate_limited++;
        if (!c->rl_limited) {
          c->rl_limited = 1;
          srv_line l = {.n = 0};
          ln_str(&l, "limit: session of ");
          ln_str(&l, c->nick.s);
          ln_str(&l, " at ");
          ln_addr(&l, from);
          ln_str(&l, " over ");
          ln_u64(&l, s->session_rate);
          ln_str(&l, " datagrams/s (burst ");
          ln_u64(&l, s->session_burst);
          ln_str(&l, "): dropping");
          srv_log(s, 1, &l);
        }
        return 0;
      }
    }
  }
  if (s->source_rate == UINT32_MAX) return 1;
  srv_source *e = src_get(s, from, now);
  if (rl_take(&e->b, s->source_rate, s->source_burst, now)) {
    e->b.limited = 0;
    return 1;
  }
  s->st.dropped_rate_limited++;
  if (!e->b.limited) {
    e->b.limited = 1;
    srv_line l = {.n = 0};
    ln_str(&l, "limit: source ");
    ln_addr(&l, from);
    ln_str(&l, " over ");
    ln_u64(&l, s->source_rate);
    ln_str(&l, " datagrams/s (burst ");
    ln_u64(&l, s->source_burst);
    ln_str(&l, "): dropping");
    srv_log(s, 1, &l);
  }
  return 0;
}

/* ---- Dispatch ------------------------------------------------------------------ */
static int is_c2s_request(uint8_t type) {
  switch (type) {
    case UDPC_PT_TABLE_REQ:
    case UDPC_PT_HEARTBEAT:
    case UDPC_PT_DEREG:
    case UDPC_PT_DEREG_OTHER:
    case UDPC_PT_SAVE:
    case UDPC_PT_MAIL_REQ: return 1;
    default: return 0;
  }
}

static void srv_malformed(udpc_server *s, const udpc_addr *from,
                          const uint8_t *data, size_t len, int err) {
  s->st.dropped_malformed++;
  if (srv_log_wants(s, 3)) {
    srv_line l = {.n = 0};
    ln_str(&l, "rx ");
    ln_addr(&l, from);
    ln_str(&l, " len=");
    ln_u64(&l, len);
    ln_str(&l, ": undecodable (");
    ln_str(&l, udpc_strerror(err));
    ln_str(&l, ")");
    srv_log(s, 3, &l);
  }
  if (err == UDPC_ERR_TOO_BIG || err == UDPC_ERR_TYPE) {
    srv_log_drop(s, from, "malformed: too big or unknown type");
    return;
  }
  uint8_t type = 0;
  uint32_t id = 0;
  int hr = udpc_wire_decode_header(&type, &id, data, len);
  if (err == UDPC_ERR_VERSION) {
    /* Unknown version: ERROR(VERSION) only when not larger than it. */
    if (hr == UDPC_ERR_VERSION || hr == UDPC_ERR_TYPE || hr == UDPC_OK)
      srv_send_error(s, from, id, UDPC_ERROR_VERSION, len);
    return;
  }
  if (hr != UDPC_OK) {
    srv_log_drop(s, from, "malformed header");
    return;
  }
  if (type == UDPC_PT_REGISTER && err == UDPC_ERR_NICK) {
    /* Stateless and never larger than the request (srv_send checks). */
    srv_reg_result(s, from, id, UDPC_REG_INVALID_NICK, len);
    return;
  }
  if (is_c2s_request(type)) {
    srv_send_error(s, from, id, UDPC_ERROR_MALFORMED, len);
    return;
  }
  srv_log_drop(s, from, "malformed");
}

static void srv_tokened(udpc_server *s, uint64_t now, const udpc_addr *from,
                        const udpc_packet *p, size_t len) {
  uint32_t idx = tok_lookup(s, p->token);
  if (idx == SRV_NONE) {
    s->st.dropped_bad_session++;
    srv_log_drop(s, from, "unknown token");
    if (p->type != UDPC_PT_PROBE_ACK)
      srv_send_error(s, from, p->id, UDPC_ERROR_BAD_SESSION, len);
    return;
  }
  srv_client *c = &s->clients[idx];
  int live = c->online && c->token == p->token;
  /* P8.3: a live or ended token from another address: drop and count.
   * The ended session's address is addr while the nick is offline; while
   * a newer session is live only its keyed hash is kept. */
  int same = (live || !c->online) ? udpc_addr_equal(&c->addr, from)
                                  : srv_addr_hash32(s, from) == c->ended_ahash;
  if (!same) {
    s->st.dropped_bad_session++;
    srv_log_drop(s, from, "token from another address");
    return;
  }
  if (!live) { /* the token of the nick's last ended session */
    if (p->type == UDPC_PT_DEREG) {
      if (srv_held_full(s, 1)) {
        srv_held_drop(s, from, "DEREG");
        return;
      }
      srv_hold_dereg_result(s, from, p->token, p->id);
      return;
    }
    s->st.dropped_bad_session++;
    srv_log_drop(s, from, "token of an ended session");
    if (p->type != UDPC_PT_PROBE_ACK)
      srv_send_error(s, from, p->id, UDPC_ERROR_SESSION_ENDED, len);
    return;
  }
  srv_heard(s, idx, now);
  switch (p->type) {
    case UDPC_PT_TABLE_REQ: srv_table_req(s, idx, p); break;
    case UDPC_PT_HEARTBEAT: srv_heartbeat(s, idx, p); break;
    case UDPC_PT_DEREG: srv_dereg(s, now, idx, p); break;
    case UDPC_PT_DEREG_OTHER: srv_dereg_other(s, now, idx, p); break;
    case UDPC_PT_SAVE: srv_save(s, now, idx, p); break;
    case UDPC_PT_MAIL_REQ: srv_mail_req(s, idx, p); break;
    case UDPC_PT_PROBE_ACK: srv_probe_ack(s, idx, p, from); break;
    default: break;
  }
}

int udpc_server_recv(udpc_server *s, uint64_t now, const udpc_addr *from,
                     const uint8_t *data, size_t len) {
  UDPC_ENSURE(s != NULL && from != NULL && (data != NULL || len == 0),
              UDPC_ERR_ARG);
  s->now = now;
  s->st.rx++;
  s->st.rx_bytes += len;
  udpc_packet p;
  int rc = len > UDPC_MAX_PACKET ? UDPC_ERR_TOO_BIG
                                 : udpc_wire_decode(&p, data, len);
  if (!srv_rate_ok(s, now, from, rc == UDPC_OK ? &p : NULL)) return UDPC_OK;
  if (rc != UDPC_OK) {
    srv_malformed(s, from, data, len, rc);
    return UDPC_OK;
  }
  srv_tx_log(s, "rx", from, &p, len);
  if (p.type == UDPC_PT_REGISTER) {
    srv_register(s, now, from, &p, len);
  } else if (is_c2s_request(p.type) || p.type == UDPC_PT_PROBE_ACK) {
    srv_tokened(s, now, from, &p, len);
  } else {
    s->st.dropped_unexpected++;
    srv_log_drop(s, from, "not a client-to-server packet");
  }
  return UDPC_OK;
}

/* ---- Flush: commit, then acknowledgements and deltas ------------------------- */
/* Index of idx in order[] (binary search by nick). */
static uint32_t srv_order_pos(const udpc_server *s, uint32_t idx) {
  const udpc_nick *n = &s->clients[idx].nick;
  uint32_t lo = 0, hi = s->n_clients;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (nick_cmp(&s->clients[s->order[mid]].nick, n) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Does session o get its own deltas (P6.3 "Walking sessions")? Those whose
 * walk will still read some of the window's entries: 0 < next <= lim,
 * lim = the highest index of a changed entry (0: nobody walks), and new
 * sessions not sent any TABLE_PAGE yet (walk_fresh: at position 0). */
static int srv_walk_filtered(const udpc_server *s, uint32_t o, uint32_t lim) {
  if (s->clients[o].walk_fresh) return 1;
  uint32_t next = s->walks[o].next;
  return next != 0 && next <= lim;
}

/* Send one delta chunk: to one session (to != SRV_NONE, token already in
 * buf) or a copy to every ONLINE session that is not filtered (R55, R56),
 * patching only the token (all copies share one id). */
static void srv_delta_out(udpc_server *s, uint8_t *buf, size_t n, uint32_t to,
                          uint32_t lim) {
  if (to != SRV_NONE) {
    srv_tx_log_bytes(s, "tx", &s->clients[to].addr, buf, n);
    srv_emit(s, &s->clients[to].addr, buf, n);
    return;
  }
  if (srv_log_wants(s, 3)) {
    udpc_packet p;
    if (udpc_wire_decode(&p, buf, n) == UDPC_OK) {
      srv_line l = {.n = 0};
      ln_str(&l, "tx ");
      ln_u64(&l, s->n_online);
      ln_str(&l, " online sessions len=");
      ln_u64(&l, (uint64_t)n);
      ln_str(&l, ": ");
      ln_pkt(&l, &p);
      srv_log(s, 3, &l);
    }
  }
  for (uint32_t o = s->on_head; o != SRV_NONE; o = s->clients[o].next) {
    if (srv_walk_filtered(s, o, lim)) continue;
    uint64_t t = s->clients[o].token; /* u64, network order (P1.2) */
    for (int b = UDPC_TOKEN_LEN - 1; b >= 0; b--, t >>= 8)
      buf[UDPC_HEADER_LEN + b] = (uint8_t)t;
    srv_emit(s, &s->clients[o].addr, buf, n);
  }
}

/* Finish the chunk in t (base..new) and send it. */
static void srv_delta_chunk(udpc_server *s, udpc_wire_table *t, uint64_t base,
                            uint64_t nv, uint32_t to, uint32_t lim) {
  int n = udpc_wire_delta_set_versions(t, base, nv);
  if (n == UDPC_OK) n = udpc_wire_table_finish(t);
  if (n <= 0) {
    srv_log_msg(s, 0, "BUG: cannot encode a TABLE_DELTA");
    return;
  }
  srv_delta_out(s, t->w.p, (size_t)n, to, lim);
}

/* The window's nw distinct entries with index < max (UINT32_MAX: all), in
 * TABLE_DELTAs as full as fit in 1200 bytes, chained from pub_version to
 * version: a chunk's new_version is the version of the last change of its
 * last entry (the last chunk's: the current version), so a client whose
 * version lies anywhere in (pub_version, version) (a snapshot taken during
 * the window) misses nothing by ignoring the chunks below its version
 * (R57: it applies a chunk iff base <= v < new). to: SRV_NONE for the
 * shared chunks (every session not filtered by lim), else one walking
 * session; one that gets no entry gets the window's first one anyway
 * (count >= 1). */
/* A new delta in buf holding the window entry w; 0, or -1 (a bug: one
 * entry always fits in an empty delta). */
static int srv_delta_open(udpc_server *s, udpc_wire_table *t, uint8_t *buf,
                          uint64_t token, const srv_went *w) {
  if (udpc_wire_delta_begin(t, buf, UDPC_MAX_PACKET, s->next_id++, token, 0,
                            0) != UDPC_OK ||
      udpc_wire_table_append_bytes(t, s->ecache + w->off, w->len) != 1) {
    srv_log_msg(s, 0, "BUG: cannot encode a TABLE_DELTA");
    return -1;
  }
  return 0;
}

static void srv_pack_window(udpc_server *s, uint32_t nw, uint32_t max,
                            uint32_t to, uint32_t lim) {
  uint8_t buf[UDPC_MAX_PACKET];
  udpc_wire_table t;
  uint64_t token = to == SRV_NONE ? 0 : s->clients[to].token;
  uint64_t base = s->pub_version, last = 0;
  int open = 0;
  for (uint32_t i = 0; i < nw; i++) {
    const srv_went *w = &s->went[i];
    if (w->pos >= max) continue;
    if (open &&
        udpc_wire_table_append_bytes(&t, s->ecache + w->off, w->len) == 1) {
      last = s->pub_version + 1 + w->k;
      continue;
    }
    if (open) { /* full */
      srv_delta_chunk(s, &t, base, last, to, lim);
      base = last;
    }
    if (srv_delta_open(s, &t, buf, token, w) != 0) return;
    open = 1;
    last = s->pub_version + 1 + w->k;
  }
  /* a walking session that gets no entry: one anyway (count >= 1) */
  if (!open && srv_delta_open(s, &t, buf, token, &s->went[0]) != 0) return;
  srv_delta_chunk(s, &t, base, s->version, to, lim);
}

/* Room for nw distinct entries of `bytes` encoded bytes in the emission
 * scratch, sized by use (a join storm's windows hold a few hundred
 * entries); freed after a window of more than SRV_CHANGES_MAX. */
static int srv_went_reserve(udpc_server *s, uint32_t nw, size_t bytes) {
  if (nw > s->went_cap) {
    uint32_t cap = nw > SRV_CHANGES_MAX ? nw : nw + nw / 2;
    if (cap < 64) cap = 64;
    if (cap > SRV_CHANGES_MAX && nw <= SRV_CHANGES_MAX) cap = SRV_CHANGES_MAX;
    srv_went *w = realloc(s->went, (size_t)cap * sizeof *w);
    UDPC_ENSURE(w != NULL, UDPC_ERR_NOMEM);
    s->went = w;
    s->went_cap = cap;
  }
  if (bytes > s->ecache_cap) {
    size_t cap = bytes + bytes / 2;
    uint8_t *e = realloc(s->ecache, cap);
    UDPC_ENSURE(e != NULL, UDPC_ERR_NOMEM);
    s->ecache = e;
    s->ecache_cap = cap;
  }
  return UDPC_OK;
}

/* Send the window's nw distinct entries (s->went, encoded in s->ecache):
 * shared chunks, encoded once, to the sessions that are not walking (or
 * whose walk has already passed every changed entry); to each session
 * whose walk will still read some of them, its own deltas without those
 * (P6.3 "Walking sessions"): v1 tables only grow, so an entry at an index
 * >= the start of the walk's next page is read later from a page at least
 * as new as this delta. */
static void srv_send_window(udpc_server *s, uint32_t nw) {
  uint32_t lim = 0, n_shared = 0;
  int walking = 0;
  for (uint32_t o = s->on_head; o != SRV_NONE; o = s->clients[o].next)
    if (s->walks[o].next != 0) {
      walking = 1;
      break;
    }
  if (walking) {
    for (uint32_t i = 0; i < nw; i++) {
      uint32_t pos = srv_order_pos(s, s->wlog[s->went[i].k]);
      s->went[i].pos = pos;
      if (pos > lim) lim = pos;
    }
  }
  for (uint32_t o = s->on_head; o != SRV_NONE; o = s->clients[o].next)
    n_shared += !srv_walk_filtered(s, o, lim);
  if (n_shared > 0) srv_pack_window(s, nw, UINT32_MAX, SRV_NONE, lim);
  if (n_shared == s->n_online) return;
  for (uint32_t o = s->on_head; o != SRV_NONE; o = s->clients[o].next)
    if (srv_walk_filtered(s, o, lim))
      srv_pack_window(s, nw, s->clients[o].walk_fresh ? 0 : s->walks[o].next, o,
                      lim);
}

/* Close the window: each entry changed since the last emission once, as it
 * is now, ordered by its last change (srv_send_window). Runs only after a
 * successful commit: nothing uncommitted is emitted. */
static void srv_emit_window(udpc_server *s) {
  uint64_t base = s->pub_version;
  int lost = s->wlog_lost || (uint64_t)s->wlog_n != s->version - base;
  if (lost) srv_log_msg(s, 1, "table deltas of a window omitted");
  /* Backwards: keep the last change of each entry (seen), drop the rest. */
  uint32_t nd = 0;
  size_t bytes = 0;
  for (uint32_t k = s->wlog_n; k-- > 0;) {
    srv_client *c = &s->clients[s->wlog[k]];
    if (c->seen) {
      s->wlog[k] = SRV_NONE;
    } else {
      c->seen = 1;
      nd++;
      bytes += udpc_wire_entry_len(&c->nick, &c->addr);
    }
  }
  int send = !lost && s->on_head != SRV_NONE;
  if (send && srv_went_reserve(s, nd, bytes) != UDPC_OK) {
    /* Degrade like a lost change log: every client notices the new
     * version in its next HEARTBEAT_ACK (P6.4). */
    srv_log_msg(s, 1, "out of memory (delta scratch): no deltas");
    send = 0;
  }
  uint32_t nw = 0;
  size_t off = 0;
  for (uint32_t k = 0; k < s->wlog_n; k++) {
    if (s->wlog[k] == SRV_NONE) continue;
    srv_client *c = &s->clients[s->wlog[k]];
    c->seen = 0;
    c->inwin = 0;
    if (!send) continue;
    int len = udpc_wire_entry_encode(
        &c->nick, c->online ? UDPC_STATUS_ONLINE : UDPC_STATUS_OFFLINE,
        &c->addr, s->ecache + off, bytes - off);
    if (len <= 0) continue; /* cannot happen: sized above */
    s->went[nw].k = k;
    s->went[nw].pos = 0;
    s->went[nw].off = (uint32_t)off;
    s->went[nw].len = (uint8_t)len;
    off += (size_t)len;
    nw++;
  }
  if (send && nw > 0) srv_send_window(s, nw);
  /* Every client flagged inwin is in the log unless changes were lost
   * (out of memory): then clear them all (O(N), only in that case). */
  if (lost)
    for (uint32_t i = 0; i < s->n_clients; i++) s->clients[i].inwin = 0;
  s->n_wdistinct = 0;
  s->pub_version = s->version;
  s->wlog_n = 0;
  s->wlog_lost = 0;
  s->win_open = 0;
  s->win_due = 0;
  if (s->wlog_cap > SRV_CHANGES_MAX) { /* a big batch grew it: shrink */
    uint32_t *w = realloc(s->wlog, SRV_CHANGES_MAX * sizeof *w);
    if (w != NULL) {
      s->wlog = w;
      s->wlog_cap = SRV_CHANGES_MAX;
    }
  }
  if (s->went_cap > SRV_CHANGES_MAX) { /* so did the scratch: free it */
    free(s->went);
    free(s->ecache);
    s->went = NULL;
    s->ecache = NULL;
    s->went_cap = 0;
    s->ecache_cap = 0;
  }
}

/* The window closes at the first successful flush at or after its
 * deadline, or earlier when it holds SRV_CHANGES_MAX distinct entries (or
 * SRV_WLOG_MAX changes). */
static int srv_window_ready(const udpc_server *s, uint64_t now) {
  /* A clock that stepped back to before the window opened closes it too
   * (else the deltas would wait for the clock to catch up). */
  return s->win_open &&
         (s->win_due || now >= s->win_deadline ||
          now + UDPC_T_DELTA_WINDOW < s->win_deadline ||
          s->n_wdistinct >= SRV_CHANGES_MAX || s->wlog_n >= SRV_WLOG_MAX);
}

static void srv_user_record(const udpc_server *s, uint32_t idx,
                            udpc_store_user *u) {
  const srv_client *c = &s->clients[idx];
  memset(u, 0, sizeof *u);
  u->nick = c->nick;
  memcpy(u->salt, c->salt, sizeof u->salt);
  memcpy(u->cred_hash, c->cred_hash, sizeof u->cred_hash);
  u->addr = c->addr;
  u->status = c->online ? UDPC_STATUS_ONLINE : UDPC_STATUS_OFFLINE;
  u->registered_ms = c->registered_ms;
  u->last_seen_ms = c->last_seen_ms;
}

int udpc_server_flush(udpc_server *s, uint64_t now) {
  UDPC_ENSURE(s != NULL, UDPC_ERR_ARG);
  s->now = now;
  srv_log_roll(s); /* a pending "suppressed" summary goes out */
  if (!s->store_touched && s->n_dirty == 0 && s->n_held == 0) {
    /* Nothing to commit: every change so far is committed. */
    if (srv_window_ready(s, now)) srv_emit_window(s);
    return UDPC_OK;
  }
  int rc = UDPC_OK;
  uint32_t nd = s->dirty_overflow ? s->n_clients : s->n_dirty;
  for (uint32_t i = 0; i < nd && rc == UDPC_OK; i++) {
    uint32_t idx = s->dirty_overflow ? i : s->dirty[i];
    if (!s->clients[idx].dirty) continue;
    udpc_store_user u;
    srv_user_record(s, idx, &u);
    rc = udpc_store_user_put(s->store, &u);
  }
  if (rc == UDPC_OK) rc = udpc_store_commit(s->store);
  if (rc != UDPC_OK) {
    /* Nothing of this batch is acknowledged; clients retransmit. Dirty
     * records and table changes stay for the next flush. */
    for (uint32_t i = 0; i < s->n_held; i++)
      if (s->held[i].win_client != SRV_NONE)
        win_forget(s, s->held[i].win_client, s->held[i].win_msg_id,
                   s->held[i].win_khash);
    srv_line l = {.n = 0};
    ln_str(&l, "store commit failed (");
    ln_str(&l, udpc_strerror(rc));
    ln_str(&l, "); discarded ");
    ln_u64(&l, s->n_held);
    ln_str(&l, " acknowledgements");
    srv_log(s, 1, &l);
    s->n_held = 0;
    if (s->win_due) { /* the window waits: retry after another window */
      s->win_due = 0;
      s->win_deadline = now + UDPC_T_DELTA_WINDOW;
    }
    return UDPC_ERR_STORE;
  }
  for (uint32_t i = 0; i < nd; i++)
    s->clients[s->dirty_overflow ? i : s->dirty[i]].dirty = 0;
  s->n_dirty = 0;
  s->dirty_overflow = 0;
  s->store_touched = 0;
  for (uint32_t i = 0; i < s->n_held; i++) {
    const srv_held *h = &s->held[i];
    if (srv_log_wants(s, 3)) {
      udpc_packet p;
      if (udpc_wire_decode(&p, h->data, h->len) == UDPC_OK)
        srv_tx_log(s, "tx", &h->to, &p, h->len);
    }
    srv_emit(s, &h->to, h->data, h->len);
  }
  s->n_held = 0;
  if (srv_window_ready(s, now)) srv_emit_window(s);
  return UDPC_OK;
}

/* ---- Timers -------------------------------------------------------------------- */
uint64_t udpc_server_next_deadline(const udpc_server *s) {
  if (s == NULL) return UINT64_MAX;
  uint64_t d = UINT64_MAX;
  if (s->on_head != SRV_NONE)
    d = s->clients[s->on_head].last_heard + SRV_SESSION_TIMEOUT;
  /* The window's end; once handle_expiry saw it, the flush emits. */
  if (s->win_open && !s->win_due && s->win_deadline < d) d = s->win_deadline;
  for (uint32_t k = s->probe_head; k != s->probe_tail; k++) {
    const srv_probe *pr = &s->probes[k & (SRV_PROBES_MAX - 1)];
    if (!pr->active) continue;
    uint64_t t = pr->t0 + (uint64_t)(pr->resent ? UDPC_T_PROBE_TIMEOUT
                                                : UDPC_T_PROBE_RETRY);
    if (t < d) d = t;
    if (!pr->resent) break; /* later probes are due later still */
  }
  return d;
}

void udpc_server_handle_expiry(udpc_server *s, uint64_t now) {
  if (s == NULL) return;
  s->now = now;
  srv_log_roll(s);
  if (s->win_open && now >= s->win_deadline) s->win_due = 1;
  srv_probes_expire(s, now);
  /* Decision: silent for >= 30 s (3 heartbeat intervals) ends a session. */
  while (s->on_head != SRV_NONE &&
         now >= s->clients[s->on_head].last_heard + SRV_SESSION_TIMEOUT) {
    uint32_t idx = s->on_head;
    if (srv_log_wants(s, 2)) {
      srv_line l = {.n = 0};
      ln_str(&l, "session timeout: ");
      ln_str(&l, s->clients[idx].nick.s);
      srv_log(s, 2, &l);
    }
    srv_set_offline(s, idx, now);
  }
}

void udpc_server_get_stats(const udpc_server *s, udpc_server_stats *out) {
  if (s == NULL || out == NULL) return;
  *out = s->st;
  out->registered = s->n_clients;
  out->online = s->n_online;
}

/* ---- Life cycle ------------------------------------------------------------------ */
static int srv_load_user(void *ctx, const udpc_store_user *u) {
  udpc_server *s = ctx;
  if (udpc_nick_check(u->nick.s, u->nick.len) != UDPC_OK ||
      nick_lookup(s, &u->nick) != SRV_NONE) {
    srv_log_msg(s, 1, "store: skipped a bad or duplicate user record");
    return 0;
  }
  uint32_t idx;
  UDPC_GUARD(srv_add_client(s, &u->nick, &idx));
  srv_client *c = &s->clients[idx];
  memcpy(c->salt, u->salt, sizeof c->salt);
  memcpy(c->cred_hash, u->cred_hash, sizeof c->cred_hash);
  c->addr = u->addr;
  if (c->addr.family != 4 && c->addr.family != 6) { /* pages and deltas are */
    memset(&c->addr, 0, sizeof c->addr);            /* built unchecked */
    c->addr.family = 4;
  }
  c->registered_ms = u->registered_ms;
  c->last_seen_ms = u->last_seen_ms;
  /* Everyone starts offline; a record saved as online is rewritten. */
  if (u->status != UDPC_STATUS_OFFLINE) {
    srv_dirty_add(s, idx);
  }
  return 0;
}

typedef struct {
  udpc_nick nick;
  uint32_t idx;
} srv_sort_item;

static int srv_sort_cmp(const void *a, const void *b) {
  return nick_cmp(&((const srv_sort_item *)a)->nick,
                  &((const srv_sort_item *)b)->nick);
}

/* Build order[] for the loaded clients in O(N log N). */
static int srv_sort_loaded(udpc_server *s) {
  if (s->n_clients == 0) return UDPC_OK;
  srv_sort_item *t = malloc((size_t)s->n_clients * sizeof *t);
  UDPC_ENSURE(t != NULL, UDPC_ERR_NOMEM);
  for (uint32_t i = 0; i < s->n_clients; i++) {
    t[i].nick = s->clients[i].nick;
    t[i].idx = i;
  }
  qsort(t, s->n_clients, sizeof *t, srv_sort_cmp);
  for (uint32_t i = 0; i < s->n_clients; i++) s->order[i] = t[i].idx;
  free(t);
  return UDPC_OK;
}

udpc_server *udpc_server_new(const udpc_server_config *cfg, uint64_t now) {
  (void)now;
  if (cfg == NULL || cfg->store == NULL || cfg->io.send == NULL ||
      (cfg->n_operators > 0 && cfg->operators == NULL))
    return NULL;
  udpc_server *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->io = cfg->io;
  s->store = cfg->store;
  s->max_clients =
      cfg->max_clients ? cfg->max_clients : SRV_DEFAULT_MAX_CLIENTS;
  if (s->max_clients > SRV_IDX_MAX + 1) s->max_clients = SRV_IDX_MAX + 1;
  s->mail_per_recipient = cfg->mail_per_recipient
                              ? cfg->mail_per_recipient
                              : SRV_DEFAULT_MAIL_PER_RECIPIENT;
  s->mail_total = cfg->mail_total ? cfg->mail_total : SRV_DEFAULT_MAIL_TOTAL;
  s->source_rate =
      cfg->source_rate ? cfg->source_rate : SRV_DEFAULT_SOURCE_RATE;
  s->source_burst =
      cfg->source_burst ? cfg->source_burst : SRV_DEFAULT_SOURCE_BURST;
  s->session_rate =
      cfg->session_rate ? cfg->session_rate : SRV_DEFAULT_SESSION_RATE;
  s->session_burst =
      cfg->session_burst ? cfg->session_burst : SRV_DEFAULT_SESSION_BURST;
  s->now = now;
  s->log_window = now;
  s->on_head = s->on_tail = SRV_NONE;
  s->version = 1;
  s->pub_version = 1;
  udpc_rand_derive(s->cookie_key, cfg->seed, "udpchat server cookie key v1");
  uint8_t nk[32];
  udpc_rand_derive(nk, cfg->seed, "udpchat server nick hash key v1");
  memcpy(s->nick_key, nk, sizeof s->nick_key);
  udpc_rand_derive(nk, cfg->seed, "udpchat server source hash key v1");
  memcpy(s->src_key, nk, sizeof s->src_key);
  sodium_memzero(nk, sizeof nk);
  uint8_t rk[32];
  udpc_rand_derive(rk, cfg->seed, "udpchat server random stream v1");
  udpc_rand_init(&s->rng, rk);
  sodium_memzero(rk, sizeof rk);
  s->next_id = udpc_rand_u32(&s->rng);
  s->probe_id_base = udpc_rand_u32(&s->rng) & ~(SRV_PROBES_MAX - 1);

  if (cfg->n_operators > 0) {
    s->operators = calloc(cfg->n_operators, sizeof *s->operators);
    if (s->operators == NULL) goto fail;
    for (size_t i = 0; i < cfg->n_operators; i++) {
      const char *o = cfg->operators[i];
      /* Operator nicks are folded like typed nicks; a bad one is a bad
       * config. */
      if (o == NULL ||
          udpc_nick_from_input(&s->operators[i], o, strlen(o)) != UDPC_OK)
        goto fail;
    }
    s->n_operators = cfg->n_operators;
  }
  s->held = malloc(SRV_HELD_MAX * sizeof *s->held);
  s->dirty = malloc(SRV_DIRTY_MAX * sizeof *s->dirty);
  s->wlog = malloc(SRV_CHANGES_MAX * sizeof *s->wlog);
  s->wlog_cap = SRV_CHANGES_MAX;
  s->probes = calloc(SRV_PROBES_MAX, sizeof *s->probes);
  s->sources = calloc(SRV_SOURCES, sizeof *s->sources);
  if (s->held == NULL || s->dirty == NULL || s->wlog == NULL ||
      s->probes == NULL || s->sources == NULL)
    goto fail;
  if (srv_reserve_clients(s, 64) != UDPC_OK) goto fail;

  if (udpc_store_user_foreach(s->store, srv_load_user, s) != UDPC_OK) goto fail;
  if (srv_sort_loaded(s) != UDPC_OK) goto fail;
  return s;
fail:
  udpc_server_free(s);
  return NULL;
}

void udpc_server_free(udpc_server *s) {
  if (s == NULL) return;
  for (uint32_t i = 0; i < s->n_clients; i++) free(s->clients[i].win);
  free(s->clients);
  free(s->order);
  free(s->dirty);
  free(s->nick_map);
  free(s->tok_map);
  free(s->held);
  free(s->wlog);
  free(s->went);
  free(s->ecache);
  free(s->walks);
  free(s->probes);
  free(s->sources);
  free(s->operators);
  sodium_memzero(s->cookie_key, sizeof s->cookie_key);
  udpc_rand_wipe(&s->rng);
  free(s);
}
