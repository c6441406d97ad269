/*
 * udpc_store_sqlite.c - the SQLite store backend (udpc_store_sqlite.h).
 *
 * One connection, every statement prepared once (SQLITE_PREPARE_PERSISTENT)
 * and cached in st[]. Transaction state:
 *   in_txn    a BEGIN IMMEDIATE is open (set by the first mutation after a
 *             commit; cleared by commit(), whatever its outcome);
 *   poisoned  a mutation failed in a way that made SQLite roll the whole
 *             transaction back (disk full, I/O error): the earlier mutations
 *             of the batch are gone, so commit() must fail too, and no
 *             further mutation may run in autocommit mode meanwhile.
 * The mailbox table (per-recipient next_seq and n_mail) is cached in memory
 * (loaded at open; see "Mailbox cache" below): mail_count(), mail_total()
 * and the seq of mail_append() cost no query, and a batch writes each
 * mailbox it changed once, at commit, instead of once per mail. The cache
 * follows the transaction: committed values after a successful COMMIT, the
 * previous committed values after a rollback, so it always equals what the
 * database holds (plus the open batch). Per SAVE the server thus costs one
 * indexed lookup (mail_find) and one INSERT (mail_append).
 */
#include "udpc_store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
  Q_BEGIN,
  Q_COMMIT,
  Q_ROLLBACK,
  Q_USER_PUT,
  Q_USER_GET,
  Q_USER_ALL,
  Q_BOX_PUT,
  Q_BOX_ALL,
  Q_MAIL_INS,
  Q_MAIL_FIND,
  Q_MAIL_AT,
  Q_DEDUPE_ALL,
  Q_MAIL_PAGE,
  Q_MAIL_DEL,
  Q_EXPIRE,
  Q_N
};

static const char *const q_sql[Q_N] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_USER_PUT] = "INSERT OR REPLACE INTO users(nick, salt, cred_hash, "
                   "addr_family, addr_ip, addr_port, status, registered_ms, "
                   "last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [Q_USER_GET] = "SELECT nick, salt, cred_hash, addr_family, addr_ip, "
                   "addr_port, status, registered_ms, last_seen_ms FROM users "
                   "WHERE nick = ?1",
    [Q_USER_ALL] = "SELECT nick, salt, cred_hash, addr_family, addr_ip, "
                   "addr_port, status, registered_ms, last_seen_ms FROM users",
    [Q_BOX_PUT] = "INSERT INTO mailbox(recipient, next_seq, n_mail) VALUES "
                  "(?1, ?2, ?3) ON CONFLICT(recipient) DO UPDATE SET "
                  "next_seq = excluded.next_seq, n_mail = excluded.n_mail",
    [Q_BOX_ALL] = "SELECT recipient, next_seq, n_mail FROM mailbox",
    [Q_MAIL_INS] = "INSERT INTO mail(recipient, seq, sender, msg_id, ts_ms, "
                   "body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* Only when the dedupe table is unusable (out of memory): scans the
     * recipient's mail. */
    [Q_MAIL_FIND] = "SELECT seq, body FROM mail WHERE recipient = ?1 AND "
                    "sender = ?2 AND msg_id = ?3 ORDER BY seq",
    [Q_MAIL_AT] = "SELECT sender, msg_id, body FROM mail WHERE recipient = ?1 "
                  "AND seq = ?2",
    [Q_DEDUPE_ALL] = "SELECT recipient, sender, msg_id, seq FROM mail",
    [Q_MAIL_PAGE] = "SELECT seq, msg_id, ts_ms, sender, body FROM mail WHERE "
                    "recipient = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    [Q_MAIL_DEL] = "DELETE FROM mail WHERE recipient = ?1 AND seq <= ?2 "
                   "RETURNING sender, msg_id, seq",
    [Q_EXPIRE] = "DELETE FROM mail WHERE ts_ms < ?1 RETURNING recipient, "
                 "sender, msg_id, seq",
};

/* Schema migrations: step[v] takes a database from version v to v + 1. */
static const char *const migrations[UDPC_STORE_SQLITE_VERSION] = {
    /* 0 -> 1: the tables */
    "CREATE TABLE users ("
    " nick TEXT PRIMARY KEY NOT NULL,"
    " salt BLOB NOT NULL,"
    " cred_hash BLOB NOT NULL,"
    " addr_family INTEGER NOT NULL,"
    " addr_ip BLOB NOT NULL,"
    " addr_port INTEGER NOT NULL,"
    " status INTEGER NOT NULL,"
    " registered_ms INTEGER NOT NULL,"
    " last_seen_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE mailbox ("
    " recipient TEXT PRIMARY KEY NOT NULL,"
    " next_seq INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE mail ("
    " recipient TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " sender TEXT NOT NULL,"
    " msg_id INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL,"
    " body BLOB NOT NULL,"
    " PRIMARY KEY (recipient, seq)) WITHOUT ROWID;"
    "CREATE INDEX mail_dedupe ON mail(recipient, sender, msg_id);",
    /* 1 -> 2: expiry scans by age */
    "CREATE INDEX mail_ts ON mail(ts_ms);",
    /* 2 -> 3: per-recipient mail count (the quota check of every SAVE
     * must not count the mailbox's rows) */
    "ALTER TABLE mailbox ADD COLUMN n_mail INTEGER NOT NULL DEFAULT 0;"
    "UPDATE mailbox SET n_mail = (SELECT count(*) FROM mail WHERE "
    "mail.recipient = mailbox.recipient);",
    /* 3 -> 4: the idempotency lookup uses an in-memory table (built at
     * open); the index cost about 20 of 36 WAL pages per commit of 64 */
    "DROP INDEX mail_dedupe;",
    /* 4 -> 5: no schema change, but the mailbox rows are written only when
     * mail is deleted (next_seq must outlive the mail); n_mail and the
     * next_seq of later appends are derived from the mail at open. A
     * version-4 reader would trust stale rows, so the version says it. */
    "",
};

/* One mailbox row, cached: the values the open transaction sees (next_seq,
 * n_mail) and the committed ones (c_*), to which a rollback returns. */
typedef struct {
  uint64_t next_seq, n_mail;
  uint64_t c_next_seq, c_n_mail;
  int dirty;  /* changed in the open transaction (listed in dirty[]) */
  int shrunk; /* mail deleted in the open transaction: commit() writes the
                 mailbox row (next_seq must survive the mail) */
  udpc_nick nick;
} sq_box;

/* One mail in the dedupe table: key = dd_key(recipient box, sender,
 * msg_id) (0 = empty slot, 1 = deleted), seq = its seq. */
typedef struct {
  uint64_t key, seq;
} sq_dd;

typedef struct {
  uint64_t key, seq;
  int added; /* 1: added in the transaction, 0: removed */
} sq_undo;

typedef struct {
  struct udpc_store base; /* must be first */
  sqlite3 *db;
  sqlite3_stmt *q[Q_N];
  int in_txn, poisoned;
  sq_box *box;    /* every mailbox row, loaded at open */
  uint32_t n_box; /* used entries of box[] */
  uint32_t box_cap;
  uint32_t *slot;          /* hash index: box index + 1, 0 = empty */
  uint32_t slot_cap;       /* power of 2, > 2 * n_box */
  uint32_t *dirty;         /* boxes changed in the open transaction */
  uint32_t n_dirty;        /* (capacity box_cap: never needs to grow) */
  uint64_t total, c_total; /* sum of n_mail: tentative, committed */
  sq_dd *dd;               /* dedupe table: dd_cap entries */
  uint32_t dd_cap;         /* power of 2 (0: none yet) */
  uint32_t dd_used, dd_tomb;
  sq_undo *undo; /* dedupe changes of the open transaction */
  uint32_t n_undo, undo_cap;
  int dd_bad; /* dedupe table not trustworthy (out of memory): mail_find
                 scans; rebuilt after the transaction */
  uint64_t commits;
  uint8_t *page_buf; /* bodies returned by mail_page */
  size_t page_cap;
  udpc_store_sqlite_log_fn log;
  void *log_ctx;
  char last_error[512];
} sq_store;

static const udpc_store_ops sq_ops;

static sq_store *sq_cast(udpc_store *st) { return (sq_store *)(void *)st; }

static int nick_ok(const udpc_nick *n) {
  return n != NULL && n->len >= 1 && n->len <= UDPC_NICK_MAX;
}

/* ---- Mailbox cache -------------------------------------------------------- */
/* Per-recipient next_seq and n_mail and the total live in memory (loaded
 * from the mailbox table at open), so the quota checks and the seq of an
 * append cost no query. A mailbox changed in a transaction is written to
 * the mailbox table once, by commit(), in the same transaction as its
 * mail; commit success makes the cached values the committed ones, a
 * rollback (or a failure that made SQLite roll back) restores them. */
static uint32_t box_hash(const char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
  return h;
}

static uint32_t box_find_n(const sq_store *s, const char *p, size_t n) {
  if (s->slot_cap == 0) return UINT32_MAX;
  uint32_t m = s->slot_cap - 1;
  for (uint32_t i = box_hash(p, n) & m;; i = (i + 1) & m) {
    uint32_t v = s->slot[i];
    if (v == 0) return UINT32_MAX;
    const sq_box *b = &s->box[v - 1];
    if (b->nick.len == n && memcmp(b->nick.s, p, n) == 0) return v - 1;
  }
}

static uint32_t box_find(const sq_store *s, const udpc_nick *n) {
  return box_find_n(s, n->s, n->len);
}

/* The box of nick p[0..n), created (next_seq 1, no mail) if missing.
 * UINT32_MAX if out of memory. */
static uint32_t box_get(sq_store *s, const char *p, size_t n) {
  uint32_t i = box_find_n(s, p, n);
  if (i != UINT32_MAX) return i;
  if (n < 1 || n > UDPC_NICK_MAX) return UINT32_MAX;
  if (s->n_box == s->box_cap) {
    uint32_t cap = s->box_cap ? s->box_cap * 2 : 64;
    sq_box *b = realloc(s->box, (size_t)cap * sizeof *b);
    if (b == NULL) return UINT32_MAX;
    s->box = b;
    uint32_t *d = realloc(s->dirty, (size_t)cap * sizeof *d);
    if (d == NULL) return UINT32_MAX;
    s->dirty = d;
    s->box_cap = cap;
  }
  if ((uint64_t)(s->n_box + 1) * 2 >= s->slot_cap) {
    uint32_t cap = s->slot_cap ? s->slot_cap * 2 : 128;
    uint32_t *sl = calloc(cap, sizeof *sl);
    if (sl == NULL) return UINT32_MAX;
    for (uint32_t k = 0; k < s->n_box; k++) {
      const sq_box *b = &s->box[k];
      uint32_t j = box_hash(b->nick.s, b->nick.len) & (cap - 1);
      while (sl[j] != 0) j = (j + 1) & (cap - 1);
      sl[j] = k + 1;
    }
    free(s->slot);
    s->slot = sl;
    s->slot_cap = cap;
  }
  i = s->n_box++;
  sq_box *b = &s->box[i];
  memset(b, 0, sizeof *b);
  b->next_seq = b->c_next_seq = 1;
  b->nick.len = (uint8_t)n;
  memcpy(b->nick.s, p, n);
  uint32_t j = box_hash(p, n) & (s->slot_cap - 1);
  while (s->slot[j] != 0) j = (j + 1) & (s->slot_cap - 1);
  s->slot[j] = i + 1;
  return i;
}

static void box_touch(sq_store *s, uint32_t i) {
  if (!s->box[i].dirty) {
    s->box[i].dirty = 1;
    s->dirty[s->n_dirty++] = i;
  }
}

/* Subtract `by` mails from box i (never below 0) and from the total. */
static void box_sub(sq_store *s, uint32_t i, uint64_t by) {
  sq_box *b = &s->box[i];
  if (by > b->n_mail) by = b->n_mail;
  b->n_mail -= by;
  s->total -= by;
  b->shrunk = 1;
  box_touch(s, i);
}

static void boxes_committed(sq_store *s) {
  for (uint32_t k = 0; k < s->n_dirty; k++) {
    sq_box *b = &s->box[s->dirty[k]];
    b->c_next_seq = b->next_seq;
    b->c_n_mail = b->n_mail;
    b->dirty = b->shrunk = 0;
  }
  s->n_dirty = 0;
  s->c_total = s->total;
}

static void boxes_rolled_back(sq_store *s) {
  for (uint32_t k = 0; k < s->n_dirty; k++) {
    sq_box *b = &s->box[s->dirty[k]];
    b->next_seq = b->c_next_seq;
    b->n_mail = b->c_n_mail;
    b->dirty = b->shrunk = 0;
  }
  s->n_dirty = 0;
  s->total = s->c_total;
}

/* ---- Dedupe table --------------------------------------------------------- */
/* mail_find() (the idempotency lookup of every SAVE) answers from a hash
 * table of every stored mail, (recipient, sender, msg_id) -> seq, built at
 * open and kept exact like the mailbox cache (an undo log of the open
 * transaction). A miss costs no query; a candidate is confirmed by reading
 * its row by primary key (sender, msg_id and text compared). About 16-32
 * bytes of memory per stored mail. */
static uint64_t dd_key(uint32_t box, const char *from, size_t from_len,
                       uint32_t msg_id) {
  uint64_t h = 14695981039346656037u;
  uint8_t b[8] = {(uint8_t)box,
                  (uint8_t)(box >> 8),
                  (uint8_t)(box >> 16),
                  (uint8_t)(box >> 24),
                  (uint8_t)msg_id,
                  (uint8_t)(msg_id >> 8),
                  (uint8_t)(msg_id >> 16),
                  (uint8_t)(msg_id >> 24)};
  for (size_t i = 0; i < 8; i++) h = (h ^ b[i]) * 1099511628211u;
  for (size_t i = 0; i < from_len; i++)
    h = (h ^ (uint8_t)from[i]) * 1099511628211u;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9u;
  h ^= h >> 32;
  return h < 2 ? h + 2 : h;
}

/* Room for `more` insertions without allocating. UDPC_ERR_NOMEM if not. */
static int dd_reserve(sq_store *s, uint32_t more) {
  uint64_t need = (uint64_t)s->dd_used + s->dd_tomb + more;
  if (s->dd_cap != 0 && need * 4 <= (uint64_t)s->dd_cap * 3) return UDPC_OK;
  uint64_t cap = s->dd_cap ? s->dd_cap : 1024;
  while (((uint64_t)s->dd_used + more) * 2 > cap) cap *= 2;
  if (cap > (1u << 31)) return UDPC_ERR_NOMEM;
  sq_dd *t = calloc((size_t)cap, sizeof *t);
  if (t == NULL) return UDPC_ERR_NOMEM;
  uint32_t m = (uint32_t)cap - 1;
  for (uint32_t i = 0; i < s->dd_cap; i++) {
    if (s->dd[i].key < 2) continue;
    uint32_t j = (uint32_t)s->dd[i].key & m;
    while (t[j].key != 0) j = (j + 1) & m;
    t[j] = s->dd[i];
  }
  free(s->dd);
  s->dd = t;
  s->dd_cap = (uint32_t)cap;
  s->dd_tomb = 0;
  return UDPC_OK;
}

/* Insert (room reserved by dd_reserve). */
static void dd_put(sq_store *s, uint64_t key, uint64_t seq) {
  uint32_t m = s->dd_cap - 1;
  uint32_t j = (uint32_t)key & m;
  while (s->dd[j].key >= 2) j = (j + 1) & m;
  if (s->dd[j].key == 1) s->dd_tomb--;
  s->dd[j].key = key;
  s->dd[j].seq = seq;
  s->dd_used++;
}

static int dd_del(sq_store *s, uint64_t key, uint64_t seq) {
  if (s->dd_cap == 0) return 0;
  uint32_t m = s->dd_cap - 1;
  for (uint32_t j = (uint32_t)key & m; s->dd[j].key != 0; j = (j + 1) & m)
    if (s->dd[j].key == key && s->dd[j].seq == seq) {
      s->dd[j].key = 1;
      s->dd_used--;
      s->dd_tomb++;
      return 1;
    }
  return 0;
}

/* Log a change of the open transaction; a failure makes the table
 * untrustworthy (rebuilt after the transaction) instead of failing. */
static void dd_log(sq_store *s, uint64_t key, uint64_t seq, int added) {
  if (s->dd_bad) return;
  if (s->n_undo == s->undo_cap) {
    uint32_t cap = s->undo_cap ? s->undo_cap * 2 : 256;
    sq_undo *u = realloc(s->undo, (size_t)cap * sizeof *u);
    if (u == NULL) {
      s->dd_bad = 1;
      return;
    }
    s->undo = u;
    s->undo_cap = cap;
  }
  s->undo[s->n_undo++] = (sq_undo){.key = key, .seq = seq, .added = added};
}

/* A mail row left the database (delete, expiry) in the open transaction. */
static void dd_removed(sq_store *s, uint32_t box, const char *from,
                       size_t from_len, uint32_t msg_id, uint64_t seq) {
  uint64_t key = dd_key(box, from, from_len, msg_id);
  if (dd_del(s, key, seq)) dd_log(s, key, seq, 0);
}

static void dd_rolled_back(sq_store *s) {
  for (uint32_t k = s->n_undo; k-- > 0 && !s->dd_bad;) {
    const sq_undo *u = &s->undo[k];
    if (u->added) {
      dd_del(s, u->key, u->seq);
    } else if (dd_reserve(s, 1) == UDPC_OK) {
      dd_put(s, u->key, u->seq);
    } else {
      s->dd_bad = 1;
    }
  }
  s->n_undo = 0;
}

static void sq_note(sq_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sq_note(sq_store *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
  va_end(ap);
  if (s->log) s->log(s->log_ctx, s->last_error);
}

/* A statement failed: record and log the SQLite message; if SQLite rolled
 * the open transaction back on its own, poison the batch. */
static int sq_fail(sq_store *s, const char *what, int rc) {
  sq_note(s, "sqlite store: %s failed: %s (%s, code %d)", what,
          sqlite3_errmsg(s->db), sqlite3_errstr(rc), rc);
  if (s->in_txn && sqlite3_get_autocommit(s->db)) {
    s->poisoned = 1;
    boxes_rolled_back(s); /* SQLite rolled the batch back */
    dd_rolled_back(s);
  }
  return UDPC_ERR_STORE;
}

static sqlite3_stmt *sq_q(sq_store *s, int id) {
  sqlite3_stmt *q = s->q[id];
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return q;
}

/* Borrowed (SQLITE_STATIC): every statement is reset before its op
 * returns, and sq_q() clears the bindings before the next use. */
static void bind_nick(sqlite3_stmt *q, int i, const udpc_nick *n) {
  sqlite3_bind_text(q, i, n->s, (int)n->len, SQLITE_STATIC);
}

static void bind_u64(sqlite3_stmt *q, int i, uint64_t v) {
  sqlite3_bind_int64(q, i, (sqlite3_int64)v);
}

static uint64_t col_u64(sqlite3_stmt *q, int i) {
  return (uint64_t)sqlite3_column_int64(q, i);
}

/* Run a statement that returns no row we need; SQLITE_DONE = success. */
static int sq_run(sq_store *s, sqlite3_stmt *q, const char *what) {
  int rc = sqlite3_step(q);
  if (rc == SQLITE_ROW) rc = SQLITE_DONE;
  sqlite3_reset(q);
  if (rc != SQLITE_DONE) return sq_fail(s, what, rc);
  return UDPC_OK;
}

/* (Re)build the dedupe table from the mail table (at open, and after a
 * transaction during which it could not be kept exact). At open (`count`)
 * also each mailbox's n_mail and next_seq (> every seq of its mail, and
 * >= the next_seq of its row, written when mail was deleted) and the
 * total: a batch of appends writes no mailbox row. */
static int dd_rebuild(sq_store *s, int count) {
  free(s->dd);
  s->dd = NULL;
  s->dd_cap = s->dd_used = s->dd_tomb = 0;
  s->n_undo = 0;
  s->dd_bad = 1;
  uint64_t want = s->total + 64;
  if (dd_reserve(s, want > UINT32_MAX / 4 ? UINT32_MAX / 4 : (uint32_t)want) !=
      UDPC_OK)
    return UDPC_ERR_NOMEM;
  if (count) {
    for (uint32_t k = 0; k < s->n_box; k++) s->box[k].n_mail = 0;
    s->total = 0;
  }
  sqlite3_stmt *q = sq_q(s, Q_DEDUPE_ALL);
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    const char *to = (const char *)sqlite3_column_text(q, 0);
    int tl = sqlite3_column_bytes(q, 0);
    const char *from = (const char *)sqlite3_column_text(q, 1);
    int fl = sqlite3_column_bytes(q, 1);
    if (to == NULL || tl < 1 || tl > UDPC_NICK_MAX || from == NULL)
      continue; /* no valid nick can ask for it */
    uint32_t bi = box_get(s, to, (size_t)tl);
    if (bi == UINT32_MAX || dd_reserve(s, 1) != UDPC_OK) {
      sqlite3_reset(q);
      return UDPC_ERR_NOMEM;
    }
    uint64_t seq = col_u64(q, 3);
    dd_put(s,
           dd_key(bi, from, (size_t)fl, (uint32_t)sqlite3_column_int64(q, 2)),
           seq);
    if (count) {
      sq_box *b = &s->box[bi];
      b->n_mail++;
      s->total++;
      if (seq >= b->next_seq) b->next_seq = seq + 1;
    }
  }
  sqlite3_reset(q);
  if (rc != SQLITE_DONE) return sq_fail(s, "loading the mail index", rc);
  if (count) {
    for (uint32_t k = 0; k < s->n_box; k++) {
      s->box[k].c_n_mail = s->box[k].n_mail;
      s->box[k].c_next_seq = s->box[k].next_seq;
    }
    s->c_total = s->total;
  }
  s->dd_bad = 0;
  return UDPC_OK;
}

/* Before every mutation: open the batch's transaction. */
static int sq_begin(sq_store *s) {
  if (s->poisoned) return UDPC_ERR_STORE;
  if (s->in_txn) return UDPC_OK;
  int rc = sqlite3_step(sq_q(s, Q_BEGIN));
  sqlite3_reset(s->q[Q_BEGIN]);
  if (rc != SQLITE_DONE) return sq_fail(s, "BEGIN", rc);
  s->in_txn = 1;
  return UDPC_OK;
}

static void sq_rollback(sq_store *s) {
  for (int i = 0; i < Q_N; i++)
    if (s->q[i]) sqlite3_reset(s->q[i]);
  if (!sqlite3_get_autocommit(s->db)) {
    int rc = sqlite3_step(sq_q(s, Q_ROLLBACK));
    sqlite3_reset(s->q[Q_ROLLBACK]);
    if (rc != SQLITE_DONE)
      sq_note(s, "sqlite store: ROLLBACK failed: %s (code %d)",
              sqlite3_errmsg(s->db), rc);
  }
  s->in_txn = 0;
  s->poisoned = 0;
  boxes_rolled_back(s);
  dd_rolled_back(s);
  if (s->dd_bad) (void)dd_rebuild(s, 0);
}

/* ---- Users ---------------------------------------------------------------- */
static int sq_user_put(udpc_store *st, const udpc_store_user *u) {
  if (st == NULL || u == NULL || !nick_ok(&u->nick)) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  int rc = sq_begin(s);
  if (rc != UDPC_OK) return rc;
  sqlite3_stmt *q = sq_q(s, Q_USER_PUT);
  bind_nick(q, 1, &u->nick);
  sqlite3_bind_blob(q, 2, u->salt, (int)sizeof u->salt, SQLITE_STATIC);
  sqlite3_bind_blob(q, 3, u->cred_hash, (int)sizeof u->cred_hash,
                    SQLITE_STATIC);
  sqlite3_bind_int(q, 4, u->addr.family);
  sqlite3_bind_blob(q, 5, u->addr.ip, (int)sizeof u->addr.ip, SQLITE_STATIC);
  sqlite3_bind_int(q, 6, u->addr.port);
  sqlite3_bind_int(q, 7, u->status);
  bind_u64(q, 8, u->registered_ms);
  bind_u64(q, 9, u->last_seen_ms);
  return sq_run(s, q, "user_put");
}

/* Copy one users row; UDPC_ERR_STORE (logged) if it is malformed. */
static int sq_user_row(sq_store *s, sqlite3_stmt *q, udpc_store_user *u) {
  memset(u, 0, sizeof *u);
  const unsigned char *nick = sqlite3_column_text(q, 0);
  int nlen = sqlite3_column_bytes(q, 0);
  const void *salt = sqlite3_column_blob(q, 1);
  int slen = sqlite3_column_bytes(q, 1);
  const void *hash = sqlite3_column_blob(q, 2);
  int hlen = sqlite3_column_bytes(q, 2);
  int fam = sqlite3_column_int(q, 3);
  const void *ip = sqlite3_column_blob(q, 4);
  int iplen = sqlite3_column_bytes(q, 4);
  sqlite3_int64 port = sqlite3_column_int64(q, 5);
  sqlite3_int64 status = sqlite3_column_int64(q, 6);
  if (nick == NULL || nlen < 1 || nlen > UDPC_NICK_MAX || salt == NULL ||
      slen != UDPC_STORE_SALT_LEN || hash == NULL ||
      hlen != UDPC_STORE_HASH_LEN || (fam != 4 && fam != 6 && fam != 0) ||
      ip == NULL || iplen != (int)sizeof u->addr.ip || port < 0 ||
      port > 65535 || status < 0 || status > 255) {
    sq_note(s,
            "sqlite store: malformed users row (nick '%.*s'): refusing "
            "to load",
            nick ? (nlen > 40 ? 40 : nlen) : 0, nick ? (const char *)nick : "");
    return UDPC_ERR_STORE;
  }
  u->nick.len = (uint8_t)nlen;
  memcpy(u->nick.s, nick, (size_t)nlen);
  u->nick.s[nlen] = '\0';
  memcpy(u->salt, salt, UDPC_STORE_SALT_LEN);
  memcpy(u->cred_hash, hash, UDPC_STORE_HASH_LEN);
  u->addr.family = (uint8_t)fam;
  memcpy(u->addr.ip, ip, sizeof u->addr.ip);
  u->addr.port = (uint16_t)port;
  u->status = (uint8_t)status;
  u->registered_ms = col_u64(q, 7);
  u->last_seen_ms = col_u64(q, 8);
  return UDPC_OK;
}

static int sq_user_get(udpc_store *st, const udpc_nick *nick,
                       udpc_store_user *out) {
  if (st == NULL || out == NULL || !nick_ok(nick)) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  sqlite3_stmt *q = sq_q(s, Q_USER_GET);
  bind_nick(q, 1, nick);
  int rc = sqlite3_step(q);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(q);
    return UDPC_ERR_NOT_FOUND;
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(q);
    return sq_fail(s, "user_get", rc);
  }
  int r = sq_user_row(s, q, out);
  sqlite3_reset(q);
  return r;
}

static int sq_user_foreach(udpc_store *st, udpc_store_user_cb cb, void *ctx) {
  if (st == NULL || cb == NULL) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  sqlite3_stmt *q = sq_q(s, Q_USER_ALL);
  for (;;) {
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      sqlite3_reset(q);
      return sq_fail(s, "user_foreach", rc);
    }
    udpc_store_user u;
    int r = sq_user_row(s, q, &u);
    if (r == UDPC_OK) r = cb(ctx, &u);
    if (r != 0) {
      sqlite3_reset(q);
      return r;
    }
  }
  sqlite3_reset(q);
  return UDPC_OK;
}

/* ---- Mail ----------------------------------------------------------------- */
static int sq_mail_total(udpc_store *st, uint64_t *out) {
  if (st == NULL || out == NULL) return UDPC_ERR_ARG;
  *out = sq_cast(st)->total;
  return UDPC_OK;
}

static int sq_mail_append(udpc_store *st, const udpc_nick *to,
                          const udpc_nick *from, uint32_t msg_id,
                          uint64_t ts_ms, const uint8_t *text, size_t text_len,
                          uint64_t *seq_out) {
  if (st == NULL || !nick_ok(to) || !nick_ok(from) || text == NULL ||
      text_len < 1 || text_len > UDPC_TEXT_MAX)
    return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  uint32_t bi = box_get(s, to->s, to->len);
  if (bi == UINT32_MAX || dd_reserve(s, 1) != UDPC_OK) return UDPC_ERR_NOMEM;
  int rc = sq_begin(s);
  if (rc != UDPC_OK) return rc;
  uint64_t seq = s->box[bi].next_seq;
  sqlite3_stmt *q = sq_q(s, Q_MAIL_INS);
  bind_nick(q, 1, to);
  bind_u64(q, 2, seq);
  bind_nick(q, 3, from);
  sqlite3_bind_int64(q, 4, (sqlite3_int64)msg_id);
  bind_u64(q, 5, ts_ms);
  sqlite3_bind_blob(q, 6, text, (int)text_len, SQLITE_STATIC);
  rc = sq_run(s, q, "mail_append");
  if (rc != UDPC_OK) return rc;
  sq_box *b = &s->box[bi];
  b->next_seq = seq + 1;
  b->n_mail++;
  s->total++;
  box_touch(s, bi);
  uint64_t key = dd_key(bi, from->s, from->len, msg_id);
  dd_put(s, key, seq);
  dd_log(s, key, seq, 1);
  if (seq_out) *seq_out = seq;
  return UDPC_OK;
}

static int sq_mail_count(udpc_store *st, const udpc_nick *to, uint32_t *out) {
  if (st == NULL || out == NULL || !nick_ok(to)) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  uint32_t bi = box_find(s, to);
  uint64_t n = bi == UINT32_MAX ? 0 : s->box[bi].n_mail;
  *out = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
  return UDPC_OK;
}

/* Is the mail at (to, seq) from `from` with msg_id (and this text, unless
 * text is NULL)? 1 yes, 0 no (or no such row), <0 error. */
static int sq_mail_is(sq_store *s, const udpc_nick *to, uint64_t seq,
                      const udpc_nick *from, uint32_t msg_id,
                      const uint8_t *text, size_t text_len) {
  sqlite3_stmt *q = sq_q(s, Q_MAIL_AT);
  bind_nick(q, 1, to);
  bind_u64(q, 2, seq);
  int rc = sqlite3_step(q);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(q);
    return 0;
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(q);
    return sq_fail(s, "mail_find", rc);
  }
  const void *snd = sqlite3_column_text(q, 0);
  size_t sl = (size_t)sqlite3_column_bytes(q, 0);
  uint32_t id = (uint32_t)sqlite3_column_int64(q, 1);
  const void *body = sqlite3_column_blob(q, 2);
  size_t bl = (size_t)sqlite3_column_bytes(q, 2);
  int yes = snd != NULL && sl == from->len && memcmp(snd, from->s, sl) == 0 &&
            id == msg_id &&
            (text == NULL ||
             (body != NULL && bl == text_len && memcmp(body, text, bl) == 0));
  sqlite3_reset(q);
  return yes;
}

/* mail_find by scanning the recipient's mail (dedupe table unusable). */
static int sq_mail_find_scan(sq_store *s, const udpc_nick *to,
                             const udpc_nick *from, uint32_t msg_id,
                             const uint8_t *text, size_t text_len,
                             uint64_t *seq_out) {
  sqlite3_stmt *q = sq_q(s, Q_MAIL_FIND);
  bind_nick(q, 1, to);
  bind_nick(q, 2, from);
  sqlite3_bind_int64(q, 3, (sqlite3_int64)msg_id);
  for (;;) {
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      sqlite3_reset(q);
      return sq_fail(s, "mail_find", rc);
    }
    const void *body = sqlite3_column_blob(q, 1);
    size_t blen = (size_t)sqlite3_column_bytes(q, 1);
    if (text == NULL ||
        (blen == text_len && body != NULL && memcmp(body, text, blen) == 0)) {
      if (seq_out) *seq_out = col_u64(q, 0);
      sqlite3_reset(q);
      return UDPC_OK;
    }
  }
  sqlite3_reset(q);
  return UDPC_ERR_NOT_FOUND;
}

static int sq_mail_find(udpc_store *st, const udpc_nick *to,
                        const udpc_nick *from, uint32_t msg_id,
                        const uint8_t *text, size_t text_len,
                        uint64_t *seq_out) {
  if (st == NULL || !nick_ok(to) || !nick_ok(from)) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  if (s->dd_bad)
    return sq_mail_find_scan(s, to, from, msg_id, text, text_len, seq_out);
  uint32_t bi = box_find(s, to);
  if (bi == UINT32_MAX || s->dd_cap == 0) return UDPC_ERR_NOT_FOUND;
  uint64_t key = dd_key(bi, from->s, from->len, msg_id);
  uint32_t m = s->dd_cap - 1;
  uint64_t best = 0;
  int found = 0;
  /* Every candidate is checked against its row (hash collisions, a
   * message id reused with another text); the lowest seq wins. */
  for (uint32_t j = (uint32_t)key & m; s->dd[j].key != 0; j = (j + 1) & m) {
    if (s->dd[j].key != key) continue;
    uint64_t seq = s->dd[j].seq;
    if (found && seq >= best) continue;
    int r = sq_mail_is(s, to, seq, from, msg_id, text, text_len);
    if (r < 0) return r;
    if (r == 1) {
      best = seq;
      found = 1;
    }
  }
  if (!found) return UDPC_ERR_NOT_FOUND;
  if (seq_out) *seq_out = best;
  return UDPC_OK;
}

static int sq_mail_page(udpc_store *st, const udpc_nick *to, uint64_t after_seq,
                        udpc_mail *out, size_t max, size_t *n) {
  if (st == NULL || !nick_ok(to) || n == NULL || (out == NULL && max > 0))
    return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  *n = 0;
  if (max == 0) return UDPC_OK;
  if (max > 1024) max = 1024;
  size_t need = max * UDPC_TEXT_MAX;
  if (s->page_cap < need) {
    uint8_t *b = realloc(s->page_buf, need);
    if (b == NULL) return UDPC_ERR_NOMEM;
    s->page_buf = b;
    s->page_cap = need;
  }
  sqlite3_stmt *q = sq_q(s, Q_MAIL_PAGE);
  bind_nick(q, 1, to);
  bind_u64(q, 2, after_seq);
  sqlite3_bind_int64(q, 3, (sqlite3_int64)max);
  size_t off = 0;
  for (;;) {
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      sqlite3_reset(q);
      *n = 0;
      return sq_fail(s, "mail_page", rc);
    }
    const unsigned char *from = sqlite3_column_text(q, 3);
    int flen = sqlite3_column_bytes(q, 3);
    const void *body = sqlite3_column_blob(q, 4);
    int blen = sqlite3_column_bytes(q, 4);
    if (from == NULL || flen < 1 || flen > UDPC_NICK_MAX || body == NULL ||
        blen < 1 || blen > UDPC_TEXT_MAX || *n >= max) {
      sq_note(s, "sqlite store: malformed mail row for '%s'", to->s);
      sqlite3_reset(q);
      *n = 0;
      return UDPC_ERR_STORE;
    }
    udpc_mail *m = &out[(*n)++];
    memset(m, 0, sizeof *m);
    m->seq = col_u64(q, 0);
    m->msg_id = (uint32_t)sqlite3_column_int64(q, 1);
    m->timestamp_ms = col_u64(q, 2);
    m->from.len = (uint8_t)flen;
    memcpy(m->from.s, from, (size_t)flen);
    m->from.s[flen] = '\0';
    memcpy(s->page_buf + off, body, (size_t)blen);
    m->text.p = s->page_buf + off;
    m->text.len = (uint16_t)blen;
    off += (size_t)blen;
  }
  sqlite3_reset(q);
  return UDPC_OK;
}

static int sq_mail_delete_upto(udpc_store *st, const udpc_nick *to,
                               uint64_t seq, uint32_t *deleted) {
  if (st == NULL || !nick_ok(to)) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  if (deleted) *deleted = 0;
  if (seq == 0) return UDPC_OK; /* nothing can match: no transaction */
  uint32_t bi = box_find(s, to);
  if (bi == UINT32_MAX || s->box[bi].n_mail == 0) return UDPC_OK; /* empty */
  int rc = sq_begin(s);
  if (rc != UDPC_OK) return rc;
  sqlite3_stmt *q = sq_q(s, Q_MAIL_DEL);
  bind_nick(q, 1, to);
  bind_u64(q, 2, seq);
  uint32_t ch = 0;
  for (;;) { /* one row per deleted mail */
    int r = sqlite3_step(q);
    if (r == SQLITE_DONE) break;
    if (r != SQLITE_ROW) {
      sqlite3_reset(q);
      rc = sq_fail(s, "mail_delete_upto", r);
      if (ch > 0 && !s->poisoned) box_sub(s, bi, ch);
      return rc;
    }
    const char *from = (const char *)sqlite3_column_text(q, 0);
    size_t fl = (size_t)sqlite3_column_bytes(q, 0);
    if (from != NULL)
      dd_removed(s, bi, from, fl, (uint32_t)sqlite3_column_int64(q, 1),
                 col_u64(q, 2));
    ch++;
  }
  sqlite3_reset(q);
  if (ch > 0) box_sub(s, bi, ch);
  if (deleted) *deleted = ch;
  return UDPC_OK;
}

static int sq_commit(udpc_store *st) {
  if (st == NULL) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  if (!s->in_txn) return UDPC_OK; /* nothing tentative */
  if (s->poisoned) {
    sq_note(s, "sqlite store: batch lost by an earlier failure; rolled back");
    sq_rollback(s);
    return UDPC_ERR_STORE;
  }
  /* The mailboxes this batch changed, one row each, same transaction. */
  for (uint32_t k = 0; k < s->n_dirty; k++) {
    const sq_box *b = &s->box[s->dirty[k]];
    if (!b->shrunk) continue; /* appends only: derived from the mail */
    sqlite3_stmt *q = sq_q(s, Q_BOX_PUT);
    bind_nick(q, 1, &b->nick);
    bind_u64(q, 2, b->next_seq);
    bind_u64(q, 3, b->n_mail);
    if (sq_run(s, q, "commit (mailbox)") != UDPC_OK) {
      sq_note(s, "sqlite store: COMMIT failed: %s; batch rolled back",
              sqlite3_errmsg(s->db));
      sq_rollback(s);
      return UDPC_ERR_STORE;
    }
  }
  int rc = sqlite3_step(sq_q(s, Q_COMMIT));
  sqlite3_reset(s->q[Q_COMMIT]);
  if (rc != SQLITE_DONE) {
    sq_note(s,
            "sqlite store: COMMIT failed: %s (%s, code %d); batch rolled "
            "back",
            sqlite3_errmsg(s->db), sqlite3_errstr(rc), rc);
    sq_rollback(s);
    return UDPC_ERR_STORE;
  }
  s->in_txn = 0;
  s->commits++;
  boxes_committed(s);
  s->n_undo = 0;
  if (s->dd_bad) (void)dd_rebuild(s, 0);
  return UDPC_OK;
}

static void sq_free(udpc_store *st) {
  if (st == NULL) return;
  sq_store *s = sq_cast(st);
  if (s->db != NULL) {
    if (s->in_txn) sq_rollback(s); /* uncommitted work never survives */
    for (int i = 0; i < Q_N; i++) sqlite3_finalize(s->q[i]);
    sqlite3_close(s->db);
  }
  free(s->page_buf);
  free(s->box);
  free(s->slot);
  free(s->dirty);
  free(s->dd);
  free(s->undo);
  free(s);
}

static const udpc_store_ops sq_ops = {
    .user_put = sq_user_put,
    .user_get = sq_user_get,
    .user_foreach = sq_user_foreach,
    .mail_append = sq_mail_append,
    .mail_count = sq_mail_count,
    .mail_total = sq_mail_total,
    .mail_find = sq_mail_find,
    .mail_page = sq_mail_page,
    .mail_delete_upto = sq_mail_delete_upto,
    .commit = sq_commit,
    .free = sq_free,
};

/* ---- Open ----------------------------------------------------------------- */
static int open_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int open_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* Why a database cannot be used, in words an operator can act on. */
static const char *why(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB: return "not a SQLite database (or damaged header)";
    case SQLITE_CORRUPT: return "database file is corrupt";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "database is locked (is another udpchat server using this "
             "data directory?)";
    case SQLITE_CANTOPEN: return "cannot open the database file";
    case SQLITE_READONLY: return "database file is read-only";
    case SQLITE_FULL: return "disk full";
    case SQLITE_IOERR: return "I/O error";
    default: return "database error";
  }
}

/* A single-integer PRAGMA or query. */
static int get_int(sqlite3 *db, const char *sql, sqlite3_int64 *out) {
  sqlite3_stmt *q = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
      *out = sqlite3_column_int64(q, 0);
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(q);
  return rc;
}

static int exec(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Fill the mailbox cache from the mailbox table (next_seq; the counts come
 * from the mail, see dd_rebuild). */
static int sq_load_boxes(sq_store *s, const char *path, char *err,
                         size_t errlen) {
  sqlite3_stmt *q = sq_q(s, Q_BOX_ALL);
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    const char *to = (const char *)sqlite3_column_text(q, 0);
    int n = sqlite3_column_bytes(q, 0);
    sqlite3_int64 next = sqlite3_column_int64(q, 1);
    sqlite3_int64 nm = sqlite3_column_int64(q, 2);
    if (to == NULL || n < 1 || n > UDPC_NICK_MAX || next < 1 || nm < 0) {
      sqlite3_reset(q);
      return open_err(err, errlen,
                      "%s: malformed mailbox row; refusing to start", path);
    }
    uint32_t bi = box_get(s, to, (size_t)n);
    if (bi == UINT32_MAX) {
      sqlite3_reset(q);
      return open_err(err, errlen, "%s: out of memory", path);
    }
    sq_box *b = &s->box[bi];
    b->next_seq = b->c_next_seq = (uint64_t)next;
  }
  sqlite3_reset(q);
  if (rc != SQLITE_DONE)
    return open_err(err, errlen, "%s: %s: %s", path, why(rc),
                    sqlite3_errmsg(s->db));
  return 0; /* n_mail, total: counted by dd_rebuild */
}

/* The checks and migrations of udpc_store_sqlite_open. */
static int sq_setup(sq_store *s, const char *path, char *err, size_t errlen) {
  sqlite3 *db = s->db;
  sqlite3_int64 ver = 0, app = 0, nobj = 0;
  int rc = exec(db, "PRAGMA locking_mode = EXCLUSIVE");
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(db, 200);
  if (rc == SQLITE_OK) rc = get_int(db, "PRAGMA user_version", &ver);
  if (rc == SQLITE_OK) rc = get_int(db, "PRAGMA application_id", &app);
  if (rc == SQLITE_OK)
    rc = get_int(db, "SELECT count(*) FROM sqlite_master", &nobj);
  if (rc != SQLITE_OK)
    return open_err(err, errlen, "%s: %s: %s", path, why(rc),
                    sqlite3_errmsg(db));
  if (app != 0 && app != UDPC_STORE_SQLITE_APP_ID)
    return open_err(err, errlen,
                    "%s: not a udpchat database (application_id %lld); "
                    "refusing to use it",
                    path, (long long)app);
  if (ver > UDPC_STORE_SQLITE_VERSION)
    return open_err(err, errlen,
                    "%s: database schema version %lld is newer than this "
                    "udpchat supports (%d); refusing to open it (upgrade "
                    "udpchat, or point --data-dir elsewhere)",
                    path, (long long)ver, UDPC_STORE_SQLITE_VERSION);
  if (ver == 0 && nobj > 0)
    return open_err(err, errlen,
                    "%s: not a udpchat database (tables but no schema "
                    "version); refusing to use it",
                    path);
  /* WAL + EXCLUSIVE: the file stays locked while this store is open. */
  sqlite3_stmt *q = NULL;
  rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &q, NULL);
  const char *mode = NULL;
  if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
    mode = (const char *)sqlite3_column_text(q, 0);
    rc = SQLITE_OK;
  }
  int wal = mode != NULL && strcmp(mode, "wal") == 0;
  sqlite3_finalize(q);
  if (rc != SQLITE_OK)
    return open_err(err, errlen, "%s: %s: %s", path, why(rc),
                    sqlite3_errmsg(db));
  if (!wal)
    return open_err(err, errlen, "%s: cannot switch to write-ahead logging",
                    path);
  rc = exec(db, "PRAGMA synchronous = FULL");
  if (rc != SQLITE_OK)
    return open_err(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
  /* Integrity: quick_check returns the single row "ok" on a sound file. */
  rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &q, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(q);
  if (rc == SQLITE_ROW) {
    const char *r = (const char *)sqlite3_column_text(q, 0);
    if (r == NULL || strcmp(r, "ok") != 0) {
      open_err(err, errlen,
               "%s: database file is corrupt (%s); refusing to start "
               "(restore a backup or move the file away)",
               path, r ? r : "?");
      sqlite3_finalize(q);
      return -1;
    }
    rc = SQLITE_OK;
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_OK)
    return open_err(err, errlen, "%s: %s: %s", path, why(rc),
                    sqlite3_errmsg(db));
  /* Migrations, all in one transaction (also takes the write lock). */
  rc = exec(db, "BEGIN IMMEDIATE");
  for (sqlite3_int64 v = ver; rc == SQLITE_OK && v < UDPC_STORE_SQLITE_VERSION;
       v++)
    rc = exec(db, migrations[v]);
  if (rc == SQLITE_OK && ver < UDPC_STORE_SQLITE_VERSION) {
    char sql[96];
    snprintf(sql, sizeof sql,
             "PRAGMA application_id = %d; PRAGMA user_version = %d",
             UDPC_STORE_SQLITE_APP_ID, UDPC_STORE_SQLITE_VERSION);
    rc = exec(db, sql);
  }
  if (rc == SQLITE_OK) rc = exec(db, "COMMIT");
  if (rc != SQLITE_OK) {
    open_err(err, errlen,
             "%s: schema migration from version %lld failed: "
             "%s: %s",
             path, (long long)ver, why(rc), sqlite3_errmsg(db));
    if (!sqlite3_get_autocommit(db)) exec(db, "ROLLBACK");
    return -1;
  }
  for (int i = 0; i < Q_N; i++) {
    rc = sqlite3_prepare_v3(db, q_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                            &s->q[i], NULL);
    if (rc != SQLITE_OK)
      return open_err(err, errlen, "%s: cannot prepare a statement: %s", path,
                      sqlite3_errmsg(db));
  }
  if (sq_load_boxes(s, path, err, errlen) != 0) return -1;
  rc = dd_rebuild(s, 1);
  if (rc != UDPC_OK)
    return open_err(err, errlen, "%s: cannot load the mail index: %s", path,
                    rc == UDPC_ERR_NOMEM ? "out of memory" : s->last_error);
  return 0;
}

udpc_store *udpc_store_sqlite_open(const char *path, char *err, size_t errlen) {
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (path == NULL || path[0] == '\0') {
    open_err(err, errlen, "no database path");
    return NULL;
  }
  /* Create the file private before SQLite sees it (the -wal file gets the
   * same mode). An existing file keeps its mode. */
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    open_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  close(fd);
  sq_store *s = calloc(1, sizeof *s);
  if (s == NULL) {
    open_err(err, errlen, "out of memory");
    return NULL;
  }
  s->base.ops = &sq_ops;
  int rc = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    open_err(err, errlen, "%s: %s: %s", path, why(rc),
             s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sq_free(&s->base);
    return NULL;
  }
  sqlite3_extended_result_codes(s->db, 1);
  if (sq_setup(s, path, err, errlen) != 0) {
    sq_free(&s->base);
    return NULL;
  }
  return &s->base;
}

/* ---- Extras ----------------------------------------------------------------- */
void udpc_store_sqlite_set_log(udpc_store *st, udpc_store_sqlite_log_fn fn,
                               void *ctx) {
  if (!udpc_store_sqlite_is(st)) return;
  sq_cast(st)->log = fn;
  sq_cast(st)->log_ctx = ctx;
}

const char *udpc_store_sqlite_last_error(const udpc_store *st) {
  if (!udpc_store_sqlite_is(st)) return "";
  return ((const sq_store *)(const void *)st)->last_error;
}

int udpc_store_sqlite_is(const udpc_store *st) {
  return st != NULL && st->ops == &sq_ops;
}

int udpc_store_sqlite_expire(udpc_store *st, uint64_t cutoff_ms,
                             uint64_t *deleted) {
  if (deleted) *deleted = 0;
  if (!udpc_store_sqlite_is(st)) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  int rc = sq_begin(s);
  if (rc != UDPC_OK) return rc;
  sqlite3_stmt *q = sq_q(s, Q_EXPIRE);
  bind_u64(q, 1, cutoff_ms);
  uint64_t ch = 0;
  for (;;) { /* one row (the recipient) per deleted mail */
    int r = sqlite3_step(q);
    if (r == SQLITE_DONE) break;
    uint32_t bi = UINT32_MAX;
    if (r == SQLITE_ROW) {
      const char *to = (const char *)sqlite3_column_text(q, 0);
      int n = sqlite3_column_bytes(q, 0);
      if (to != NULL && n >= 1 && n <= UDPC_NICK_MAX)
        bi = box_get(s, to, (size_t)n);
      const char *from = (const char *)sqlite3_column_text(q, 1);
      size_t fl = (size_t)sqlite3_column_bytes(q, 1);
      if (bi != UINT32_MAX && from != NULL)
        dd_removed(s, bi, from, fl, (uint32_t)sqlite3_column_int64(q, 2),
                   col_u64(q, 3));
    }
    if (bi == UINT32_MAX) {
      if (r == SQLITE_ROW)
        sq_note(s, "sqlite store: expire: bad mail row or out of memory");
      else
        sq_fail(s, "expire", r);
      sqlite3_reset(q);
      sq_rollback(s);
      return UDPC_ERR_STORE;
    }
    box_sub(s, bi, 1);
    ch++;
  }
  sqlite3_reset(q);
  if (sq_commit(st) != UDPC_OK) return UDPC_ERR_STORE;
  if (deleted) *deleted = ch;
  return UDPC_OK;
}

uint64_t udpc_store_sqlite_commit_count(const udpc_store *st) {
  if (!udpc_store_sqlite_is(st)) return 0;
  return ((const sq_store *)(const void *)st)->commits;
}
