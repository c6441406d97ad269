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
 * What the SAVE path asks is answered from memory, built at open and kept
 * equal to the database (plus the open batch) through commit and rollback:
 *   - the mailbox cache (per-recipient next_seq and n_mail, the total):
 *     mail_count(), mail_total() and the seq of mail_append() cost no
 *     query; a mailbox row is written (at commit) only when mail of it was
 *     deleted;
 *   - the mail index (per mailbox its mails' seq and rowid; the dedupe
 *     table): mail_find() costs no query unless a candidate must be
 *     confirmed, mail_page()/mail_delete_upto() go straight to the rows.
 * So a SAVE is one INSERT at the end of the mail log, and a group commit of
 * 64 SAVEs writes a handful of pages whatever the recipients.
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
  Q_MAIL_AT,
  Q_MAIL_GET,
  Q_MAIL_ALL,
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
    [Q_MAIL_AT] = "SELECT recipient, seq, sender, msg_id, body FROM mail "
                  "WHERE id = ?1",
    [Q_MAIL_GET] = "SELECT seq, msg_id, ts_ms, sender, body FROM mail WHERE "
                   "id = ?1",
    /* rowid order: per recipient, the order of its seqs */
    [Q_MAIL_ALL] = "SELECT id, recipient, seq, sender, msg_id FROM mail",
    [Q_MAIL_DEL] = "DELETE FROM mail WHERE id = ?1",
    [Q_EXPIRE] = "DELETE FROM mail WHERE ts_ms < ?1 RETURNING id, recipient, "
                 "seq",
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
    /* 5 -> 6: the mail table becomes a log in insertion order (rowid id;
     * per-recipient order and lookups in memory): a group commit of SAVEs
     * to many recipients appends to the last pages instead of dirtying one
     * leaf per recipient (34 -> 12 WAL pages per commit of 64 SAVEs to
     * 1000 recipients). Existing mail is copied in (recipient, seq) order. */
    "CREATE TABLE mail_v6 ("
    " id INTEGER PRIMARY KEY,"
    " recipient TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " sender TEXT NOT NULL,"
    " msg_id INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL,"
    " body BLOB NOT NULL);"
    "INSERT INTO mail_v6(recipient, seq, sender, msg_id, ts_ms, body) "
    "SELECT recipient, seq, sender, msg_id, ts_ms, body FROM mail "
    "ORDER BY recipient, seq;"
    "DROP TABLE mail;"
    "ALTER TABLE mail_v6 RENAME TO mail;"
    "CREATE INDEX mail_ts ON mail(ts_ms);",
};

/* One stored mail in its mailbox's list (ascending seq). */
typedef struct {
  uint64_t seq;
  int64_t id;   /* rowid in the mail table */
  uint64_t key; /* dedupe key: dd_key(mailbox, sender, msg_id) */
} sq_ref;

/* One mailbox, cached: the values the open transaction sees (next_seq,
 * n_mail) and the committed ones (c_*), to which a rollback returns; its
 * mails (ref[r_head..r_len), ascending seq). */
typedef struct {
  uint64_t next_seq, n_mail;
  uint64_t c_next_seq, c_n_mail;
  int dirty;  /* changed in the open transaction (listed in dirty[]) */
  int shrunk; /* mail deleted in the open transaction: commit() writes the
                 mailbox row (next_seq must survive the mail) */
  sq_ref *ref;
  uint32_t r_head, r_len, r_cap;
  udpc_nick nick;
} sq_box;

/* Dedupe table slot: key (0 = empty, 1 = deleted) -> rowid. */
typedef struct {
  uint64_t key;
  int64_t id;
} sq_dd;

/* One change of the open transaction to the mail index. */
typedef struct {
  sq_ref r;
  uint32_t box;
  int added; /* 1: appended, 0: deleted */
} sq_undo;

typedef struct {
  struct udpc_store base; /* must be first */
  sqlite3 *db;
  sqlite3_stmt *q[Q_N];
  int in_txn, poisoned;
  sq_box *box;    /* every mailbox, loaded at open */
  uint32_t n_box; /* used entries of box[] */
  uint32_t box_cap;
  uint32_t *slot;          /* hash index: box index + 1, 0 = empty */
  uint32_t slot_cap;       /* power of 2, > 2 * n_box */
  uint32_t *dirty;         /* boxes changed in the open transaction */
  uint32_t n_dirty;        /* (capacity box_cap: never needs to grow) */
  uint64_t total, c_total; /* sum of n_mail: tentative, committed */
  sq_dd *dd;               /* dedupe table: dd_cap slots */
  uint32_t dd_cap;         /* power of 2 (0: none yet) */
  uint32_t dd_used, dd_tomb;
  sq_undo *undo; /* changes to the mail index in the open transaction */
  uint32_t n_undo, undo_cap;
  int undo_lost; /* an undo record could not be kept: a rollback rebuilds */
  int broken;    /* the mail index is unusable until rebuilt */
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
 * at open), so the quota checks and the seq of an append cost no query.
 * A mailbox that lost mail in a transaction is written to the mailbox
 * table once, by commit(), in the same transaction; commit success makes the cached values the committed ones, a
 * rollback (or a failure that made SQLite roll back) restores them. A
 * batch of appends only writes no mailbox row: at open next_seq is raised
 * above every seq of the mailbox's mail. */
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

static void mem_rolled_back(sq_store *s);

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
    mem_rolled_back(s);
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

/* ---- Mail index in memory ------------------------------------------------- */
/* The mail table is a log in insertion order (rowid id): a batch of SAVEs
 * appends to its last pages, whatever the recipients, instead of touching
 * one b-tree leaf per recipient. What finds a mail lives in memory, built
 * at open by one scan of the mail table and kept exact through every
 * mutation and rollback (an undo log of the open transaction):
 *   - per mailbox, its mails in seq order: (seq, id, key)  -> mail_page,
 *     mail_delete_upto (ids in hand), expiry;
 *   - the dedupe table, key = hash(mailbox, sender, msg_id) -> id, for the
 *     idempotency lookup of every SAVE (a miss costs no query; a candidate
 *     is confirmed by reading its row).
 * About 24 + 21..43 bytes of memory per stored mail (measured: 50 B/mail
 * with 1,000,000 mails for 1000 recipients; open 0.76 s, of which about
 * half is the quick_check). */
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

/* Room for `more` insertions into the dedupe table without allocating. */
static int dd_reserve(sq_store *s, uint32_t more) {
  uint64_t need = (uint64_t)s->dd_used + s->dd_tomb + more;
  if (s->dd_cap != 0 && need * 4 <= (uint64_t)s->dd_cap * 3) return UDPC_OK;
  uint64_t cap = s->dd_cap ? s->dd_cap : 1024;
  while (((uint64_t)s->dd_used + more) * 4 > cap * 3) cap *= 2; /* <= 3/4 */
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
static void dd_put(sq_store *s, uint64_t key, int64_t id) {
  uint32_t m = s->dd_cap - 1;
  uint32_t j = (uint32_t)key & m;
  while (s->dd[j].key >= 2) j = (j + 1) & m;
  if (s->dd[j].key == 1) s->dd_tomb--;
  s->dd[j].key = key;
  s->dd[j].id = id;
  s->dd_used++;
}

static void dd_del(sq_store *s, uint64_t key, int64_t id) {
  if (s->dd_cap == 0) return;
  uint32_t m = s->dd_cap - 1;
  for (uint32_t j = (uint32_t)key & m; s->dd[j].key != 0; j = (j + 1) & m)
    if (s->dd[j].key == key && s->dd[j].id == id) {
      s->dd[j].key = 1;
      s->dd_used--;
      s->dd_tomb++;
      return;
    }
}

/* Room for `more` mails at the end of box b's list. */
static int ref_reserve(sq_box *b, uint32_t more) {
  if (b->r_len + more <= b->r_cap) return UDPC_OK;
  if (b->r_head > 0) { /* slide the live part down first */
    memmove(b->ref, b->ref + b->r_head,
            (size_t)(b->r_len - b->r_head) * sizeof *b->ref);
    b->r_len -= b->r_head;
    b->r_head = 0;
    if (b->r_len + more <= b->r_cap) return UDPC_OK;
  }
  uint64_t cap = b->r_cap ? b->r_cap : 8;
  while (cap < (uint64_t)b->r_len + more) cap *= 2;
  if (cap > UINT32_MAX / 2) return UDPC_ERR_NOMEM;
  sq_ref *r = realloc(b->ref, (size_t)cap * sizeof *r);
  if (r == NULL) return UDPC_ERR_NOMEM;
  b->ref = r;
  b->r_cap = (uint32_t)cap;
  return UDPC_OK;
}

/* Index of the first mail of b with seq > after (r_len if none). */
static uint32_t ref_after(const sq_box *b, uint64_t after) {
  uint32_t lo = b->r_head, hi = b->r_len;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (b->ref[mid].seq <= after)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static void ref_remove_at(sq_box *b, uint32_t i) {
  if (i == b->r_head) {
    b->r_head++;
  } else {
    memmove(b->ref + i, b->ref + i + 1,
            (size_t)(b->r_len - i - 1) * sizeof *b->ref);
    b->r_len--;
  }
  if (b->r_head == b->r_len) b->r_head = b->r_len = 0;
}

/* Put a mail back in seq order (undo of a delete). */
static int ref_insert(sq_box *b, sq_ref r) {
  uint32_t i = ref_after(b, r.seq);
  if (i == b->r_head && b->r_head > 0) {
    b->ref[--b->r_head] = r;
    return UDPC_OK;
  }
  if (ref_reserve(b, 1) != UDPC_OK) return UDPC_ERR_NOMEM;
  i = ref_after(b, r.seq); /* the list may have slid */
  memmove(b->ref + i + 1, b->ref + i, (size_t)(b->r_len - i) * sizeof *b->ref);
  b->ref[i] = r;
  b->r_len++;
  return UDPC_OK;
}

/* Room for `more` undo records. */
static int undo_reserve(sq_store *s, uint32_t more) {
  if (s->n_undo + (uint64_t)more <= s->undo_cap) return UDPC_OK;
  uint64_t cap = s->undo_cap ? s->undo_cap : 256;
  while (cap < (uint64_t)s->n_undo + more) cap *= 2;
  if (cap > UINT32_MAX / 2) return UDPC_ERR_NOMEM;
  sq_undo *u = realloc(s->undo, (size_t)cap * sizeof *u);
  if (u == NULL) return UDPC_ERR_NOMEM;
  s->undo = u;
  s->undo_cap = (uint32_t)cap;
  return UDPC_OK;
}

/* Mail r of box bi left the database in the open transaction. */
static void mem_removed(sq_store *s, uint32_t bi, uint32_t i) {
  sq_box *b = &s->box[bi];
  sq_ref r = b->ref[i];
  if (undo_reserve(s, 1) == UDPC_OK)
    s->undo[s->n_undo++] = (sq_undo){.r = r, .box = bi, .added = 0};
  else
    s->undo_lost = 1; /* a rollback rebuilds everything */
  ref_remove_at(b, i);
  dd_del(s, r.key, r.id);
  box_sub(s, bi, 1);
}

/* Take the open transaction's changes back, newest first. */
static void mem_rolled_back(sq_store *s) {
  for (uint32_t k = s->n_undo; k-- > 0;) {
    const sq_undo *u = &s->undo[k];
    sq_box *b = &s->box[u->box];
    if (u->added) {
      if (b->r_len > b->r_head && b->ref[b->r_len - 1].id == u->r.id)
        b->r_len--;
      else
        s->undo_lost = 1;
      if (b->r_head == b->r_len) b->r_head = b->r_len = 0;
      dd_del(s, u->r.key, u->r.id);
    } else if (ref_insert(b, u->r) == UDPC_OK && dd_reserve(s, 1) == UDPC_OK) {
      dd_put(s, u->r.key, u->r.id);
    } else {
      s->undo_lost = 1;
    }
  }
  s->n_undo = 0;
}

static int ref_cmp(const void *a, const void *b) {
  uint64_t x = ((const sq_ref *)a)->seq, y = ((const sq_ref *)b)->seq;
  return x < y ? -1 : x > y;
}

/* (Re)build the index from the mail table, outside a transaction: at open,
 * and after a rollback that could not be undone exactly (out of memory).
 * Also counts each mailbox (n_mail) and raises its next_seq above every
 * seq of its mail (a batch of appends writes no mailbox row). UDPC_OK,
 * else the index is unusable (s->broken) until a rebuild succeeds. */
static int mem_rebuild(sq_store *s) {
  s->broken = 1;
  s->n_undo = 0;
  s->undo_lost = 0;
  s->dd_used = s->dd_tomb = 0;
  if (s->dd) memset(s->dd, 0, (size_t)s->dd_cap * sizeof *s->dd);
  for (uint32_t k = 0; k < s->n_box; k++) {
    sq_box *b = &s->box[k];
    b->r_head = b->r_len = 0;
    b->n_mail = 0;
    b->next_seq = b->c_next_seq;
  }
  s->total = 0;
  sqlite3_stmt *q = sq_q(s, Q_MAIL_ALL);
  int rc, sorted = 1;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(q, 0);
    const char *to = (const char *)sqlite3_column_text(q, 1);
    int tl = sqlite3_column_bytes(q, 1);
    uint64_t seq = col_u64(q, 2);
    const char *from = (const char *)sqlite3_column_text(q, 3);
    int fl = sqlite3_column_bytes(q, 3);
    if (to == NULL || tl < 1 || tl > UDPC_NICK_MAX || from == NULL)
      continue; /* no valid nick can ask for it */
    uint32_t bi = box_get(s, to, (size_t)tl);
    if (bi == UINT32_MAX || dd_reserve(s, 1) != UDPC_OK ||
        ref_reserve(&s->box[bi], 1) != UDPC_OK) {
      sqlite3_reset(q);
      sq_note(s, "sqlite store: out of memory loading the mail index");
      return UDPC_ERR_NOMEM;
    }
    sq_box *b = &s->box[bi];
    sq_ref r = {.seq = seq,
                .id = id,
                .key = dd_key(bi, from, (size_t)fl,
                              (uint32_t)sqlite3_column_int64(q, 4))};
    if (b->r_len > 0 && b->ref[b->r_len - 1].seq >= seq) sorted = 0;
    b->ref[b->r_len++] = r;
    dd_put(s, r.key, id);
    b->n_mail++;
    s->total++;
    if (seq >= b->next_seq) b->next_seq = seq + 1;
  }
  sqlite3_reset(q);
  if (rc != SQLITE_DONE) return sq_fail(s, "loading the mail index", rc);
  for (uint32_t k = 0; k < s->n_box; k++) {
    sq_box *b = &s->box[k];
    if (!sorted && b->r_len > 1)
      qsort(b->ref, b->r_len, sizeof *b->ref, ref_cmp);
    b->c_n_mail = b->n_mail;
    b->c_next_seq = b->next_seq;
    b->dirty = b->shrunk = 0;
  }
  s->n_dirty = 0;
  s->c_total = s->total;
  s->broken = 0;
  return UDPC_OK;
}

/* Before a mail op: the index must be usable (rebuilt if it was not). */
static int mem_ready(sq_store *s) {
  if (!s->broken) return UDPC_OK;
  if (s->in_txn || mem_rebuild(s) != UDPC_OK) return UDPC_ERR_STORE;
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
  mem_rolled_back(s);
  if (s->undo_lost) (void)mem_rebuild(s);
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
  int rc = mem_ready(s);
  if (rc != UDPC_OK) return rc;
  uint32_t bi = box_get(s, to->s, to->len);
  if (bi == UINT32_MAX || dd_reserve(s, 1) != UDPC_OK ||
      ref_reserve(&s->box[bi], 1) != UDPC_OK || undo_reserve(s, 1) != UDPC_OK)
    return UDPC_ERR_NOMEM;
  rc = sq_begin(s);
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
  sq_ref r = {.seq = seq,
              .id = sqlite3_last_insert_rowid(s->db),
              .key = dd_key(bi, from->s, from->len, msg_id)};
  b->ref[b->r_len++] = r;
  dd_put(s, r.key, r.id);
  s->undo[s->n_undo++] = (sq_undo){.r = r, .box = bi, .added = 1};
  b->next_seq = seq + 1;
  b->n_mail++;
  s->total++;
  box_touch(s, bi);
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

/* Is mail `id` for `to`, from `from` with msg_id (and this text, unless
 * text is NULL)? 1 yes (its seq in *seq), 0 no (or no such row), <0 error. */
static int sq_mail_is(sq_store *s, int64_t id, const udpc_nick *to,
                      const udpc_nick *from, uint32_t msg_id,
                      const uint8_t *text, size_t text_len, uint64_t *seq) {
  sqlite3_stmt *q = sq_q(s, Q_MAIL_AT);
  sqlite3_bind_int64(q, 1, id);
  int rc = sqlite3_step(q);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(q);
    return 0;
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(q);
    return sq_fail(s, "mail_find", rc);
  }
  const void *rcp = sqlite3_column_text(q, 0);
  size_t rl = (size_t)sqlite3_column_bytes(q, 0);
  const void *snd = sqlite3_column_text(q, 2);
  size_t sl = (size_t)sqlite3_column_bytes(q, 2);
  uint32_t mid = (uint32_t)sqlite3_column_int64(q, 3);
  const void *body = sqlite3_column_blob(q, 4);
  size_t bl = (size_t)sqlite3_column_bytes(q, 4);
  int yes = rcp != NULL && rl == to->len && memcmp(rcp, to->s, rl) == 0 &&
            snd != NULL && sl == from->len && memcmp(snd, from->s, sl) == 0 &&
            mid == msg_id &&
            (text == NULL ||
             (body != NULL && bl == text_len && memcmp(body, text, bl) == 0));
  *seq = col_u64(q, 1);
  sqlite3_reset(q);
  return yes;
}

static int sq_mail_find(udpc_store *st, const udpc_nick *to,
                        const udpc_nick *from, uint32_t msg_id,
                        const uint8_t *text, size_t text_len,
                        uint64_t *seq_out) {
  if (st == NULL || !nick_ok(to) || !nick_ok(from)) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  int rc = mem_ready(s);
  if (rc != UDPC_OK) return rc;
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
    uint64_t seq = 0;
    int r = sq_mail_is(s, s->dd[j].id, to, from, msg_id, text, text_len, &seq);
    if (r < 0) return r;
    if (r == 1 && (!found || seq < best)) {
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
  int rc = mem_ready(s);
  if (rc != UDPC_OK) return rc;
  uint32_t bi = box_find(s, to);
  if (bi == UINT32_MAX) return UDPC_OK;
  if (max > 1024) max = 1024;
  size_t need = max * UDPC_TEXT_MAX;
  if (s->page_cap < need) {
    uint8_t *b = realloc(s->page_buf, need);
    if (b == NULL) return UDPC_ERR_NOMEM;
    s->page_buf = b;
    s->page_cap = need;
  }
  const sq_box *b = &s->box[bi];
  size_t off = 0;
  for (uint32_t i = ref_after(b, after_seq); i < b->r_len && *n < max; i++) {
    sqlite3_stmt *q = sq_q(s, Q_MAIL_GET);
    sqlite3_bind_int64(q, 1, b->ref[i].id);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
      sqlite3_reset(q);
      *n = 0;
      if (rc == SQLITE_DONE) {
        sq_note(s, "sqlite store: mail %llu of '%s' missing",
                (unsigned long long)b->ref[i].seq, to->s);
        return UDPC_ERR_STORE;
      }
      return sq_fail(s, "mail_page", rc);
    }
    const unsigned char *from = sqlite3_column_text(q, 3);
    int flen = sqlite3_column_bytes(q, 3);
    const void *body = sqlite3_column_blob(q, 4);
    int blen = sqlite3_column_bytes(q, 4);
    if (from == NULL || flen < 1 || flen > UDPC_NICK_MAX || body == NULL ||
        blen < 1 || blen > UDPC_TEXT_MAX || col_u64(q, 0) != b->ref[i].seq) {
      sq_note(s, "sqlite store: malformed mail row for '%s'", to->s);
      sqlite3_reset(q);
      *n = 0;
      return UDPC_ERR_STORE;
    }
    udpc_mail *m = &out[(*n)++];
    memset(m, 0, sizeof *m);
    m->seq = b->ref[i].seq;
    m->msg_id = (uint32_t)sqlite3_column_int64(q, 1);
    m->timestamp_ms = col_u64(q, 2);
    m->from.len = (uint8_t)flen;
    memcpy(m->from.s, from, (size_t)flen);
    m->from.s[flen] = '\0';
    memcpy(s->page_buf + off, body, (size_t)blen);
    m->text.p = s->page_buf + off;
    m->text.len = (uint16_t)blen;
    off += (size_t)blen;
    sqlite3_reset(q);
  }
  return UDPC_OK;
}

static int sq_mail_delete_upto(udpc_store *st, const udpc_nick *to,
                               uint64_t seq, uint32_t *deleted) {
  if (st == NULL || !nick_ok(to)) return UDPC_ERR_ARG;
  sq_store *s = sq_cast(st);
  if (deleted) *deleted = 0;
  int rc = mem_ready(s);
  if (rc != UDPC_OK) return rc;
  uint32_t bi = box_find(s, to);
  if (bi == UINT32_MAX) return UDPC_OK;
  uint32_t k = ref_after(&s->box[bi], seq) - s->box[bi].r_head;
  if (k == 0) return UDPC_OK; /* nothing to delete: no transaction */
  if (undo_reserve(s, k) != UDPC_OK) return UDPC_ERR_NOMEM;
  rc = sq_begin(s);
  if (rc != UDPC_OK) return rc;
  uint32_t done = 0;
  for (; done < k; done++) { /* the oldest first, one row each */
    sqlite3_stmt *q = sq_q(s, Q_MAIL_DEL);
    sqlite3_bind_int64(q, 1, s->box[bi].ref[s->box[bi].r_head].id);
    rc = sq_run(s, q, "mail_delete_upto");
    if (rc != UDPC_OK) break; /* poisoned: memory already rolled back */
    mem_removed(s, bi, s->box[bi].r_head);
  }
  if (deleted && rc == UDPC_OK) *deleted = done;
  return rc;
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
  s->undo_lost = 0; /* nothing left to undo: the index is exact */
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
  for (uint32_t k = 0; k < s->n_box; k++) free(s->box[k].ref);
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
 * from the mail, see mem_rebuild). */
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
  return 0; /* n_mail, total: counted by mem_rebuild */
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
  rc = mem_rebuild(s);
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
  int rc = mem_ready(s);
  if (rc != UDPC_OK) return rc;
  rc = sq_begin(s);
  if (rc != UDPC_OK) return rc;
  sqlite3_stmt *q = sq_q(s, Q_EXPIRE);
  bind_u64(q, 1, cutoff_ms);
  uint64_t ch = 0;
  for (;;) { /* one row per deleted mail */
    int r = sqlite3_step(q);
    if (r == SQLITE_DONE) break;
    if (r != SQLITE_ROW) {
      sqlite3_reset(q);
      sq_fail(s, "expire", r);
      sq_rollback(s);
      return UDPC_ERR_STORE;
    }
    int64_t id = sqlite3_column_int64(q, 0);
    const char *to = (const char *)sqlite3_column_text(q, 1);
    int n = sqlite3_column_bytes(q, 1);
    uint64_t seq = col_u64(q, 2);
    uint32_t bi = UINT32_MAX;
    if (to != NULL && n >= 1 && n <= UDPC_NICK_MAX)
      bi = box_find_n(s, to, (size_t)n);
    if (bi != UINT32_MAX) {
      uint32_t i = ref_after(&s->box[bi], seq - 1);
      if (i < s->box[bi].r_len && s->box[bi].ref[i].id == id)
        mem_removed(s, bi, i);
    }
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
