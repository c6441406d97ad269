/* test_store_sqlite.c - the SQLite store backend (udpc_store_sqlite.h)
 * against temporary databases under /tmp (mkdtemp, removed afterwards).
 *
 * A fault-injecting VFS (registered as SQLite's default for this program)
 * wraps the real one so the tests can make a write fail (disk full) or an
 * fsync fail at the moment of COMMIT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>
#include <cmocka.h>

#include "udpc_store.h"
#include "udpc_store_sqlite.h"
#include "udpc_thex.h"
#include "udpchat.h"

/* ---- Fault-injecting VFS -------------------------------------------------- */
static sqlite3_vfs *real_vfs;
static int fail_writes; /* xWrite returns SQLITE_FULL while set */
static int fail_syncs;  /* xSync returns SQLITE_IOERR_FSYNC while set */

typedef struct {
  sqlite3_file base;
  sqlite3_file *real; /* follows this struct in the same allocation */
} ff_file;

#define REAL(f) (((ff_file *)(void *)(f))->real)

static int ff_close(sqlite3_file *f) {
  return REAL(f)->pMethods->xClose(REAL(f));
}
static int ff_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
  return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int ff_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
  if (fail_writes) return SQLITE_FULL;
  return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 n) {
  return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int ff_sync(sqlite3_file *f, int flags) {
  if (fail_syncs) return SQLITE_IOERR_FSYNC;
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int ff_size(sqlite3_file *f, sqlite3_int64 *n) {
  return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int ff_lock(sqlite3_file *f, int l) {
  return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int ff_unlock(sqlite3_file *f, int l) {
  return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int ff_reserved(sqlite3_file *f, int *r) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r);
}
static int ff_fctl(sqlite3_file *f, int op, void *a) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int ff_sector(sqlite3_file *f) {
  return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int ff_devchar(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int ff_shmmap(sqlite3_file *f, int i, int sz, int ext,
                     void volatile **p) {
  return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p);
}
static int ff_shmlock(sqlite3_file *f, int o, int n, int fl) {
  return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl);
}
static void ff_shmbarrier(sqlite3_file *f) {
  REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int ff_shmunmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static const sqlite3_io_methods ff_io = {
    .iVersion = 2,
    .xClose = ff_close,
    .xRead = ff_read,
    .xWrite = ff_write,
    .xTruncate = ff_truncate,
    .xSync = ff_sync,
    .xFileSize = ff_size,
    .xLock = ff_lock,
    .xUnlock = ff_unlock,
    .xCheckReservedLock = ff_reserved,
    .xFileControl = ff_fctl,
    .xSectorSize = ff_sector,
    .xDeviceCharacteristics = ff_devchar,
    .xShmMap = ff_shmmap,
    .xShmLock = ff_shmlock,
    .xShmBarrier = ff_shmbarrier,
    .xShmUnmap = ff_shmunmap,
};

static int ff_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags,
                   int *out) {
  (void)v;
  ff_file *p = (ff_file *)(void *)f;
  p->real = (sqlite3_file *)(void *)(p + 1);
  int rc = real_vfs->xOpen(real_vfs, name, p->real, flags, out);
  p->base.pMethods = p->real->pMethods ? &ff_io : NULL;
  return rc;
}
static int ff_delete(sqlite3_vfs *v, const char *n, int sync) {
  (void)v;
  return real_vfs->xDelete(real_vfs, n, sync);
}
static int ff_access(sqlite3_vfs *v, const char *n, int fl, int *r) {
  (void)v;
  return real_vfs->xAccess(real_vfs, n, fl, r);
}
static int ff_fullpath(sqlite3_vfs *v, const char *n, int len, char *out) {
  (void)v;
  return real_vfs->xFullPathname(real_vfs, n, len, out);
}
static int ff_random(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  return real_vfs->xRandomness(real_vfs, n, out);
}
static int ff_sleep(sqlite3_vfs *v, int us) {
  (void)v;
  return real_vfs->xSleep(real_vfs, us);
}
static int ff_time(sqlite3_vfs *v, double *t) {
  (void)v;
  return real_vfs->xCurrentTime(real_vfs, t);
}
static int ff_lasterr(sqlite3_vfs *v, int n, char *b) {
  (void)v;
  return real_vfs->xGetLastError(real_vfs, n, b);
}
static int ff_time64(sqlite3_vfs *v, sqlite3_int64 *t) {
  (void)v;
  return real_vfs->xCurrentTimeInt64(real_vfs, t);
}

static sqlite3_vfs ff_vfs;

static void install_fault_vfs(void) {
  real_vfs = sqlite3_vfs_find(NULL);
  assert_non_null(real_vfs);
  ff_vfs.iVersion = 2;
  ff_vfs.szOsFile = (int)sizeof(ff_file) + real_vfs->szOsFile;
  ff_vfs.mxPathname = real_vfs->mxPathname;
  ff_vfs.zName = "udpc-fault";
  ff_vfs.xOpen = ff_open;
  ff_vfs.xDelete = ff_delete;
  ff_vfs.xAccess = ff_access;
  ff_vfs.xFullPathname = ff_fullpath;
  ff_vfs.xRandomness = ff_random;
  ff_vfs.xSleep = ff_sleep;
  ff_vfs.xCurrentTime = ff_time;
  ff_vfs.xGetLastError = ff_lasterr;
  ff_vfs.xCurrentTimeInt64 = ff_time64;
  assert_int_equal(sqlite3_vfs_register(&ff_vfs, 1), SQLITE_OK);
}

/* ---- Helpers -------------------------------------------------------------- */
typedef struct {
  char dir[64];
  char path[128];
} tmpdb;

static void tmp_make(tmpdb *t) {
  snprintf(t->dir, sizeof t->dir, "/tmp/udpc-sqlite-XXXXXX");
  assert_non_null(mkdtemp(t->dir));
  snprintf(t->path, sizeof t->path, "%s/server.db", t->dir);
}

static void tmp_remove(tmpdb *t) {
  const char *sfx[] = {"", "-wal", "-shm", "-journal"};
  char p[160];
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", t->path, sfx[i]);
    unlink(p);
  }
  rmdir(t->dir);
}

static udpc_store *open_ok(const tmpdb *t) {
  char err[512];
  udpc_store *st = udpc_store_sqlite_open(t->path, err, sizeof err);
  if (st == NULL) fail_msg("open failed: %s", err);
  return st;
}

static udpc_nick nk(const char *s) { return udpc_thex_nick(s); }

static void append(udpc_store *st, const char *to, const char *from,
                   uint32_t id, const char *text, uint64_t *seq) {
  udpc_nick t = nk(to), f = nk(from);
  assert_int_equal(udpc_store_mail_append(st, &t, &f, id, 1000 + id,
                                          (const uint8_t *)text, strlen(text),
                                          seq),
                   UDPC_OK);
}

static uint32_t count_of(udpc_store *st, const char *to) {
  udpc_nick t = nk(to);
  uint32_t n = 99999;
  assert_int_equal(udpc_store_mail_count(st, &t, &n), UDPC_OK);
  return n;
}

static uint64_t total_of(udpc_store *st) {
  uint64_t n = 99999;
  assert_int_equal(udpc_store_mail_total(st, &n), UDPC_OK);
  return n;
}

static udpc_store_user user(const char *name, uint8_t mark) {
  udpc_store_user u;
  memset(&u, 0, sizeof u);
  u.nick = nk(name);
  memset(u.salt, mark, sizeof u.salt);
  memset(u.cred_hash, mark + 1, sizeof u.cred_hash);
  u.addr.family = 4;
  u.addr.ip[0] = 127;
  u.addr.ip[3] = mark;
  u.addr.port = (uint16_t)(40000 + mark);
  u.status = UDPC_STATUS_ONLINE;
  u.registered_ms = 1700000000000ULL + mark;
  u.last_seen_ms = 1700000000500ULL + mark;
  return u;
}

static sqlite3_int64 raw_int(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *q = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  sqlite3_int64 v = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return v;
}

static void raw_exec(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("raw_exec: %s", msg ? msg : "?");
  sqlite3_close(db);
}

static int log_calls;
static char log_last[512];
static void log_cb(void *ctx, const char *line) {
  (void)ctx;
  log_calls++;
  snprintf(log_last, sizeof log_last, "%s", line);
}

/* ---- Tests ---------------------------------------------------------------- */
static void test_sqlite_open_creates_private_wal_db_at_current_version(
    void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  assert_true(udpc_store_sqlite_is(st));
  struct stat sb;
  assert_int_equal(stat(t.path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  udpc_store_free(st);
  assert_int_equal(raw_int(t.path, "PRAGMA user_version"),
                   UDPC_STORE_SQLITE_VERSION);
  assert_int_equal(raw_int(t.path, "PRAGMA application_id"),
                   UDPC_STORE_SQLITE_APP_ID);
  /* WAL is persistent in the file header. */
  assert_int_equal(raw_int(t.path, "SELECT journal_mode = 'wal' FROM "
                                   "pragma_journal_mode"),
                   1);
  tmp_remove(&t);
}

static int count_cb(void *ctx, const udpc_store_user *u) {
  (void)u;
  (*(int *)ctx)++;
  return 0;
}

static int stop_cb(void *ctx, const udpc_store_user *u) {
  (void)u;
  (*(int *)ctx)++;
  return 7;
}

static void test_sqlite_users_put_get_replace_foreach_survive_reopen(
    void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  udpc_store_user u = user("alice", 1), out;
  udpc_nick n = nk("alice");
  assert_int_equal(udpc_store_user_get(st, &n, &out), UDPC_ERR_NOT_FOUND);
  assert_int_equal(udpc_store_user_put(st, &u), UDPC_OK);
  u.cred_hash[0] = 0xEE; /* replace */
  assert_int_equal(udpc_store_user_put(st, &u), UDPC_OK);
  for (int i = 0; i < 50; i++) {
    char name[8];
    snprintf(name, sizeof name, "u%02d", i);
    udpc_store_user v = user(name, (uint8_t)i);
    assert_int_equal(udpc_store_user_put(st, &v), UDPC_OK);
  }
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);

  st = open_ok(&t);
  assert_int_equal(udpc_store_user_get(st, &n, &out), UDPC_OK);
  assert_string_equal(out.nick.s, "alice");
  assert_int_equal(out.nick.len, 5);
  assert_int_equal(out.cred_hash[0], 0xEE);
  assert_int_equal(out.cred_hash[1], 2);
  assert_int_equal(out.salt[15], 1);
  assert_int_equal(out.addr.family, 4);
  assert_int_equal(out.addr.ip[0], 127);
  assert_int_equal(out.addr.port, 40001);
  assert_int_equal(out.status, UDPC_STATUS_ONLINE);
  assert_true(out.registered_ms == 1700000000001ULL);
  assert_true(out.last_seen_ms == 1700000000501ULL);
  int c = 0;
  assert_int_equal(udpc_store_user_foreach(st, count_cb, &c), UDPC_OK);
  assert_int_equal(c, 51);
  c = 0;
  assert_int_equal(udpc_store_user_foreach(st, stop_cb, &c), 7);
  assert_int_equal(c, 1);
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_mail_seq_page_find_delete(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq = 0;
  for (uint32_t i = 1; i <= 20; i++) {
    char txt[32];
    snprintf(txt, sizeof txt, "message %u", i);
    append(st, "bob", i % 2 ? "ann" : "cat", i, txt, &seq);
    assert_true(seq == i); /* per-recipient, from 1 */
  }
  append(st, "dan", "ann", 1, "for dan", &seq);
  assert_true(seq == 1);
  assert_int_equal(count_of(st, "bob"), 20);
  assert_int_equal(count_of(st, "dan"), 1);
  assert_int_equal(count_of(st, "nobody"), 0);
  assert_true(total_of(st) == 21);

  /* Idempotency lookup: (to, from, msg_id) and, if given, the text. */
  udpc_nick bob = nk("bob"), ann = nk("ann"), cat = nk("cat");
  const uint8_t *m3 = (const uint8_t *)"message 3";
  assert_int_equal(udpc_store_mail_find(st, &bob, &ann, 3, m3, 9, &seq),
                   UDPC_OK);
  assert_true(seq == 3);
  assert_int_equal(udpc_store_mail_find(st, &bob, &ann, 3, NULL, 0, &seq),
                   UDPC_OK);
  assert_int_equal(udpc_store_mail_find(st, &bob, &ann, 3,
                                        (const uint8_t *)"other", 5, NULL),
                   UDPC_ERR_NOT_FOUND);
  assert_int_equal(udpc_store_mail_find(st, &bob, &cat, 3, m3, 9, NULL),
                   UDPC_ERR_NOT_FOUND);
  assert_int_equal(udpc_store_mail_find(st, &ann, &bob, 3, NULL, 0, NULL),
                   UDPC_ERR_NOT_FOUND);

  /* Pages: oldest first, after a seq, at most max. */
  udpc_mail page[UDPC_MAIL_PAGE_MAX];
  size_t n = 0;
  assert_int_equal(udpc_store_mail_page(st, &bob, 0, page, 16, &n), UDPC_OK);
  assert_int_equal(n, 16);
  for (size_t i = 0; i < n; i++) assert_true(page[i].seq == i + 1);
  assert_memory_equal(page[2].text.p, "message 3", 9);
  assert_int_equal(page[2].text.len, 9);
  assert_string_equal(page[2].from.s, "ann");
  assert_string_equal(page[1].from.s, "cat");
  assert_int_equal(page[2].msg_id, 3);
  assert_true(page[2].timestamp_ms == 1003);
  assert_int_equal(udpc_store_mail_page(st, &bob, 16, page, 16, &n), UDPC_OK);
  assert_int_equal(n, 4);
  assert_true(page[0].seq == 17);
  assert_memory_equal(page[3].text.p, "message 20", 10);
  assert_int_equal(udpc_store_mail_page(st, &bob, 20, page, 16, &n), UDPC_OK);
  assert_int_equal(n, 0);
  assert_int_equal(udpc_store_mail_page(st, &ann, 0, page, 16, &n), UDPC_OK);
  assert_int_equal(n, 0);

  uint32_t del = 0;
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 5, &del), UDPC_OK);
  assert_int_equal(del, 5);
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 5, &del), UDPC_OK);
  assert_int_equal(del, 0);
  assert_int_equal(count_of(st, "bob"), 15);
  assert_true(total_of(st) == 16);
  assert_int_equal(udpc_store_mail_page(st, &bob, 0, page, 2, &n), UDPC_OK);
  assert_int_equal(n, 2);
  assert_true(page[0].seq == 6);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);

  /* Emptied mailbox: seqs continue after a reopen, never reused. */
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 1000, &del), UDPC_OK);
  assert_int_equal(del, 15);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), 0);
  assert_true(total_of(st) == 1);
  append(st, "bob", "ann", 99, "after reopen", &seq);
  assert_true(seq == 21);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_uncommitted_gone_committed_kept_after_reopen(
    void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq;
  udpc_store_user a = user("ann", 1), b = user("bob", 2);
  assert_int_equal(udpc_store_user_put(st, &a), UDPC_OK);
  append(st, "bob", "ann", 1, "committed one", &seq);
  append(st, "bob", "ann", 2, "committed two", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  assert_true(udpc_store_sqlite_commit_count(st) == 1);

  /* A batch that never commits (the process dies). Reads see it. */
  assert_int_equal(udpc_store_user_put(st, &b), UDPC_OK);
  append(st, "bob", "ann", 3, "tentative", &seq);
  assert_true(seq == 3);
  udpc_nick bob = nk("bob");
  uint32_t del;
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 1, &del), UDPC_OK);
  assert_int_equal(del, 1);
  assert_int_equal(count_of(st, "bob"), 2);
  udpc_store_user out;
  assert_int_equal(udpc_store_user_get(st, &bob, &out), UDPC_OK);
  udpc_store_free(st); /* no commit */

  st = open_ok(&t);
  assert_int_equal(udpc_store_user_get(st, &bob, &out), UDPC_ERR_NOT_FOUND);
  udpc_nick ann = nk("ann");
  assert_int_equal(udpc_store_user_get(st, &ann, &out), UDPC_OK);
  assert_int_equal(count_of(st, "bob"), 2); /* delete undone */
  assert_true(total_of(st) == 2);
  assert_int_equal(udpc_store_mail_find(st, &bob, &ann, 3, NULL, 0, NULL),
                   UDPC_ERR_NOT_FOUND);
  assert_int_equal(udpc_store_mail_find(st, &bob, &ann, 1, NULL, 0, NULL),
                   UDPC_OK);
  /* The seq of the lost tentative mail is assigned again. */
  append(st, "bob", "ann", 4, "after the crash", &seq);
  assert_true(seq == 3);
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_group_commit_one_transaction_per_batch(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  /* Nothing tentative: commit is a successful no-op. */
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  assert_true(udpc_store_sqlite_commit_count(st) == 0);
  uint64_t seq;
  for (int batch = 0; batch < 3; batch++) {
    for (uint32_t i = 0; i < 64; i++)
      append(st, "bob", "ann", (uint32_t)batch * 64 + i, "x", &seq);
    assert_int_equal(udpc_store_commit(st), UDPC_OK);
  }
  assert_true(udpc_store_sqlite_commit_count(st) == 3);
  /* Reads alone open no transaction. */
  assert_int_equal(count_of(st, "bob"), 192);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  assert_true(udpc_store_sqlite_commit_count(st) == 3);
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_disk_full_at_commit_rolls_back_and_recovers(
    void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  log_calls = 0;
  udpc_store_sqlite_set_log(st, log_cb, NULL);
  uint64_t seq;
  append(st, "bob", "ann", 1, "kept", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);

  append(st, "bob", "ann", 2, "lost to a full disk", &seq);
  fail_writes = 1;
  int rc = udpc_store_commit(st);
  fail_writes = 0;
  assert_int_equal(rc, UDPC_ERR_STORE); /* never reported as success */
  assert_true(log_calls >= 1);
  assert_non_null(strstr(log_last, "COMMIT failed"));
  assert_non_null(strstr(udpc_store_sqlite_last_error(st), "full"));
  /* Rolled back: the batch is gone, in this process too. */
  assert_int_equal(count_of(st, "bob"), 1);
  assert_true(total_of(st) == 1);
  /* The next batch works (a retransmission is stored again). */
  append(st, "bob", "ann", 2, "lost to a full disk", &seq);
  assert_true(seq == 2);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);

  st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), 2);
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_fsync_error_fails_commit_store_stays_usable(
    void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  log_calls = 0;
  udpc_store_sqlite_set_log(st, log_cb, NULL);
  uint64_t seq;
  udpc_store_user a = user("ann", 1);
  assert_int_equal(udpc_store_user_put(st, &a), UDPC_OK);
  append(st, "bob", "ann", 1, "fsync fails", &seq);
  fail_syncs = 1;
  int rc = udpc_store_commit(st);
  fail_syncs = 0;
  assert_int_equal(rc, UDPC_ERR_STORE);
  assert_true(log_calls >= 1);
  assert_non_null(strstr(log_last, "COMMIT failed"));
  /* Later batches commit. (Whether the batch whose fsync failed is on disk
   * is unknown; it was never acknowledged, and mail_find keeps a
   * retransmission from storing it twice.) */
  udpc_nick bob = nk("bob"), ann = nk("ann");
  if (udpc_store_mail_find(st, &bob, &ann, 1, NULL, 0, NULL) != UDPC_OK)
    append(st, "bob", "ann", 1, "fsync fails", &seq);
  append(st, "bob", "ann", 2, "after", &seq);
  assert_int_equal(udpc_store_user_put(st, &a), UDPC_OK);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  st = open_ok(&t); /* quick_check passes */
  assert_int_equal(count_of(st, "bob"), 2);
  udpc_store_user out;
  assert_int_equal(udpc_store_user_get(st, &ann, &out), UDPC_OK);
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_mutation_failure_poisons_the_batch(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq;
  /* Enough data that the transaction spills pages to the WAL early. */
  char big[UDPC_TEXT_MAX + 1];
  memset(big, 'b', UDPC_TEXT_MAX);
  big[UDPC_TEXT_MAX] = '\0';
  append(st, "bob", "ann", 1, "first of the batch", &seq);
  fail_writes = 1;
  int failed = 0;
  for (uint32_t i = 2; i < 10000 && !failed; i++) {
    udpc_nick to = nk("bob"), from = nk("ann");
    failed = udpc_store_mail_append(st, &to, &from, i, 1, (const uint8_t *)big,
                                    UDPC_TEXT_MAX, &seq) != UDPC_OK;
  }
  int rc = udpc_store_commit(st);
  fail_writes = 0;
  assert_int_equal(rc, UDPC_ERR_STORE);
  assert_int_equal(count_of(st, "bob"), 0); /* whole batch gone */
  append(st, "bob", "ann", 1, "first of the batch", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), 1);
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_second_open_of_same_db_refused_while_locked(
    void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  char err[512];
  udpc_store *st2 = udpc_store_sqlite_open(t.path, err, sizeof err);
  assert_null(st2);
  assert_non_null(strstr(err, "locked"));
  udpc_store_free(st);
  st = open_ok(&t); /* released at close */
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_garbage_file_refused(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  FILE *f = fopen(t.path, "wb");
  assert_non_null(f);
  for (int i = 0; i < 512; i++) fputs("this is not a database ", f);
  fclose(f);
  char err[512];
  assert_null(udpc_store_sqlite_open(t.path, err, sizeof err));
  assert_non_null(strstr(err, "not a SQLite database"));
  /* Untouched: never silently replaced. */
  struct stat sb;
  assert_int_equal(stat(t.path, &sb), 0);
  assert_int_equal(sb.st_size, 512 * 23);
  tmp_remove(&t);
}

static void test_sqlite_corrupt_pages_refused(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq;
  char txt[600];
  memset(txt, 'm', sizeof txt - 1);
  txt[sizeof txt - 1] = '\0';
  for (uint32_t i = 1; i <= 200; i++) append(st, "bob", "ann", i, txt, &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st); /* checkpointed into the main file at close */
  long page = (long)raw_int(t.path, "PRAGMA page_size");
  FILE *f = fopen(t.path, "r+b");
  assert_non_null(f);
  assert_int_equal(fseek(f, page * 3, SEEK_SET), 0);
  for (long i = 0; i < page * 4; i++) fputc((int)(i * 7 % 251), f);
  fclose(f);
  char err[512];
  assert_null(udpc_store_sqlite_open(t.path, err, sizeof err));
  assert_true(strstr(err, "corrupt") != NULL ||
              strstr(err, "malformed") != NULL);
  tmp_remove(&t);
}

static void test_sqlite_newer_schema_version_refused(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq;
  append(st, "bob", "ann", 1, "keep me", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  raw_exec(t.path, "PRAGMA user_version = 99");
  char err[512];
  assert_null(udpc_store_sqlite_open(t.path, err, sizeof err));
  assert_non_null(strstr(err, "newer"));
  assert_non_null(strstr(err, "99"));
  /* Nothing was dropped. */
  assert_int_equal(raw_int(t.path, "SELECT count(*) FROM mail"), 1);
  assert_int_equal(raw_int(t.path, "PRAGMA user_version"), 99);
  tmp_remove(&t);
}

static void test_sqlite_foreign_database_refused(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  raw_exec(t.path, "CREATE TABLE accounts(x); INSERT INTO accounts VALUES(1)");
  char err[512];
  assert_null(udpc_store_sqlite_open(t.path, err, sizeof err));
  assert_non_null(strstr(err, "not a udpchat database"));
  assert_int_equal(raw_int(t.path, "SELECT count(*) FROM accounts"), 1);
  tmp_remove(&t);
  tmp_make(&t);
  raw_exec(t.path, "PRAGMA application_id = 1234");
  assert_null(udpc_store_sqlite_open(t.path, err, sizeof err));
  assert_non_null(strstr(err, "not a udpchat database"));
  tmp_remove(&t);
}

static void test_sqlite_migrates_empty_file_and_version_1(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  /* Version 0: an empty file (e.g. created by the operator). */
  FILE *f = fopen(t.path, "wb");
  assert_non_null(f);
  fclose(f);
  udpc_store *st = open_ok(&t);
  udpc_store_free(st);
  assert_int_equal(raw_int(t.path, "PRAGMA user_version"),
                   UDPC_STORE_SQLITE_VERSION);
  tmp_remove(&t);

  /* Version 1 (no mail_ts index) with data: migrated, data kept. */
  tmp_make(&t);
  raw_exec(t.path,
           "CREATE TABLE users (nick TEXT PRIMARY KEY NOT NULL, salt BLOB "
           "NOT NULL, cred_hash BLOB NOT NULL, addr_family INTEGER NOT NULL, "
           "addr_ip BLOB NOT NULL, addr_port INTEGER NOT NULL, status INTEGER "
           "NOT NULL, registered_ms INTEGER NOT NULL, last_seen_ms INTEGER "
           "NOT NULL) WITHOUT ROWID;"
           "CREATE TABLE mailbox (recipient TEXT PRIMARY KEY NOT NULL, "
           "next_seq INTEGER NOT NULL) WITHOUT ROWID;"
           "CREATE TABLE mail (recipient TEXT NOT NULL, seq INTEGER NOT NULL, "
           "sender TEXT NOT NULL, msg_id INTEGER NOT NULL, ts_ms INTEGER NOT "
           "NULL, body BLOB NOT NULL, PRIMARY KEY (recipient, seq)) WITHOUT "
           "ROWID;"
           "CREATE INDEX mail_dedupe ON mail(recipient, sender, msg_id);"
           "INSERT INTO users VALUES ('ann', zeroblob(16), zeroblob(32), 4, "
           "zeroblob(16), 4000, 1, 10, 20);"
           "INSERT INTO mailbox VALUES ('bob', 8);"
           "INSERT INTO mail VALUES ('bob', 7, 'ann', 5, 1234, "
           "CAST('old mail' AS BLOB));"
           "PRAGMA application_id = 1430540355; PRAGMA user_version = 1;");
  st = open_ok(&t);
  udpc_nick ann = nk("ann"), bob = nk("bob");
  udpc_store_user out;
  assert_int_equal(udpc_store_user_get(st, &ann, &out), UDPC_OK);
  assert_int_equal(out.addr.port, 4000);
  udpc_mail page[4];
  size_t n;
  assert_int_equal(udpc_store_mail_page(st, &bob, 0, page, 4, &n), UDPC_OK);
  assert_int_equal(n, 1);
  assert_int_equal(count_of(st, "bob"), 1); /* counted by the migration */
  assert_true(total_of(st) == 1);
  assert_true(page[0].seq == 7);
  assert_memory_equal(page[0].text.p, "old mail", 8);
  uint64_t seq;
  append(st, "bob", "ann", 6, "new", &seq);
  assert_true(seq == 8);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  assert_int_equal(raw_int(t.path, "PRAGMA user_version"),
                   UDPC_STORE_SQLITE_VERSION);
  st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), 2);
  append(st, "bob", "ann", 7, "newer", &seq);
  assert_true(seq == 9);
  udpc_store_free(st);
  assert_int_equal(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE "
                                   "name = 'mail_ts'"),
                   1);
  assert_int_equal(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE "
                                   "name = 'mail_dedupe'"),
                   0);
  tmp_remove(&t);
}

static void test_sqlite_expire_deletes_old_mail_only(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq;
  for (uint32_t i = 1; i <= 10; i++) append(st, "bob", "ann", i, "m", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  uint64_t del = 0;
  /* ts = 1000 + id: cutoff 1006 removes ids 1..5 */
  assert_int_equal(udpc_store_sqlite_expire(st, 1006, &del), UDPC_OK);
  assert_true(del == 5);
  assert_int_equal(count_of(st, "bob"), 5);
  assert_true(total_of(st) == 5);
  udpc_store_free(st);
  st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), 5);
  udpc_store_free(st);
  tmp_remove(&t);
}

/* Mails of `to` really in the database (paged), for cache checks. */
static uint32_t rows_of(udpc_store *st, const char *to) {
  udpc_nick t = nk(to);
  udpc_mail page[64];
  uint64_t after = 0;
  uint32_t rows = 0;
  for (;;) {
    size_t n = 0;
    assert_int_equal(udpc_store_mail_page(st, &t, after, page, 64, &n),
                     UDPC_OK);
    if (n == 0) break;
    rows += (uint32_t)n;
    after = page[n - 1].seq;
  }
  return rows;
}

/* The cached counts equal the rows, for each name and in total. */
static void assert_counts_exact(udpc_store *st, const char *const *names,
                                size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(count_of(st, names[i]), rows_of(st, names[i]));
    sum += rows_of(st, names[i]);
  }
  assert_true(total_of(st) == sum);
}

static void test_sqlite_mailbox_cache_exact_across_rollback_and_reopen(
    void **state) {
  (void)state;
  static const char *const names[] = {"bob", "dan", "eve"};
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq;
  append(st, "bob", "ann", 1, "b1", &seq);
  append(st, "bob", "ann", 2, "b2", &seq);
  append(st, "bob", "ann", 3, "b3", &seq);
  append(st, "dan", "ann", 1, "d1", &seq);
  append(st, "dan", "ann", 2, "d2", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  assert_counts_exact(st, names, 3);

  /* A batch lost to a full disk at COMMIT: appends to a known and a new
   * mailbox, a delete. Reads see it until the commit fails... */
  udpc_nick dan = nk("dan");
  uint32_t del;
  append(st, "bob", "ann", 4, "b4", &seq);
  assert_true(seq == 4);
  append(st, "eve", "ann", 1, "e1", &seq);
  assert_true(seq == 1);
  assert_int_equal(udpc_store_mail_delete_upto(st, &dan, 1, &del), UDPC_OK);
  assert_int_equal(del, 1);
  assert_int_equal(count_of(st, "bob"), 4);
  assert_int_equal(count_of(st, "eve"), 1);
  assert_int_equal(count_of(st, "dan"), 1);
  assert_true(total_of(st) == 6);
  fail_writes = 1;
  int rc = udpc_store_commit(st);
  fail_writes = 0;
  assert_int_equal(rc, UDPC_ERR_STORE);
  /* ...and afterwards the committed state, counts and seqs alike. */
  assert_int_equal(count_of(st, "bob"), 3);
  assert_int_equal(count_of(st, "eve"), 0);
  assert_int_equal(count_of(st, "dan"), 2);
  assert_true(total_of(st) == 5);
  assert_counts_exact(st, names, 3);
  append(st, "eve", "ann", 1, "e1", &seq);
  assert_true(seq == 1);
  append(st, "bob", "ann", 4, "b4", &seq);
  assert_true(seq == 4);

  /* A batch whose fsync fails: the cache follows what SQLite kept. */
  fail_syncs = 1;
  rc = udpc_store_commit(st);
  fail_syncs = 0;
  assert_int_equal(rc, UDPC_ERR_STORE);
  assert_counts_exact(st, names, 3);

  /* A batch poisoned by a failing mutation (SQLite rolled it back). */
  char big[UDPC_TEXT_MAX + 1];
  memset(big, 'x', UDPC_TEXT_MAX);
  big[UDPC_TEXT_MAX] = '\0';
  uint64_t before = total_of(st);
  append(st, "dan", "ann", 50, "tentative", &seq);
  fail_writes = 1;
  int failed = 0;
  for (uint32_t i = 100; i < 10000 && !failed; i++) {
    udpc_nick to = nk("eve"), from = nk("ann");
    failed = udpc_store_mail_append(st, &to, &from, i, 1, (const uint8_t *)big,
                                    UDPC_TEXT_MAX, &seq) != UDPC_OK;
  }
  assert_true(failed);
  assert_true(total_of(st) == before); /* restored when SQLite rolled back */
  rc = udpc_store_commit(st);
  fail_writes = 0;
  assert_int_equal(rc, UDPC_ERR_STORE);
  assert_true(total_of(st) == before);
  assert_counts_exact(st, names, 3);

  /* Committed, reopened: the same counts and seqs. */
  append(st, "eve", "ann", 1, "e1", &seq);
  append(st, "dan", "ann", 3, "d3", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  uint32_t cb = count_of(st, "bob"), cd = count_of(st, "dan"),
           ce = count_of(st, "eve");
  uint64_t tot = total_of(st);
  assert_counts_exact(st, names, 3);
  udpc_store_free(st);
  st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), cb);
  assert_int_equal(count_of(st, "dan"), cd);
  assert_int_equal(count_of(st, "eve"), ce);
  assert_true(total_of(st) == tot);
  assert_counts_exact(st, names, 3);
  append(st, "dan", "ann", 4, "d4", &seq);
  assert_true(seq == 4);
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_expire_failure_keeps_counts(void **state) {
  (void)state;
  static const char *const names[] = {"bob", "dan"};
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq;
  for (uint32_t i = 1; i <= 6; i++)
    append(st, i % 2 ? "bob" : "dan", "ann", i, "m", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  uint64_t del = 99;
  fail_writes = 1; /* the expiry's COMMIT fails: nothing deleted */
  int rc = udpc_store_sqlite_expire(st, 1004, &del);
  fail_writes = 0;
  assert_int_equal(rc, UDPC_ERR_STORE);
  assert_true(del == 0);
  assert_true(total_of(st) == 6);
  assert_counts_exact(st, names, 2);
  /* ts = 1000 + id: ids 1..3 (bob 1, 3; dan 2) */
  assert_int_equal(udpc_store_sqlite_expire(st, 1004, &del), UDPC_OK);
  assert_true(del == 3);
  assert_int_equal(count_of(st, "bob"), 1);
  assert_int_equal(count_of(st, "dan"), 2);
  assert_counts_exact(st, names, 2);
  udpc_store_free(st);
  st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), 1);
  assert_int_equal(count_of(st, "dan"), 2);
  assert_true(total_of(st) == 3);
  udpc_store_free(st);
  tmp_remove(&t);
}

/* A version-3 file written by the previous release (mailbox rows updated
 * per mail, index mail_dedupe) is migrated to version 4 (index dropped):
 * counts and seqs come from its mailbox rows, mail_find from its mail. */
static void test_sqlite_migrates_version_3_counts_seqs_dedupe(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  raw_exec(t.path,
           "CREATE TABLE users (nick TEXT PRIMARY KEY NOT NULL, salt BLOB "
           "NOT NULL, cred_hash BLOB NOT NULL, addr_family INTEGER NOT NULL, "
           "addr_ip BLOB NOT NULL, addr_port INTEGER NOT NULL, status INTEGER "
           "NOT NULL, registered_ms INTEGER NOT NULL, last_seen_ms INTEGER "
           "NOT NULL) WITHOUT ROWID;"
           "CREATE TABLE mailbox (recipient TEXT PRIMARY KEY NOT NULL, "
           "next_seq INTEGER NOT NULL, n_mail INTEGER NOT NULL DEFAULT 0) "
           "WITHOUT ROWID;"
           "CREATE TABLE mail (recipient TEXT NOT NULL, seq INTEGER NOT NULL, "
           "sender TEXT NOT NULL, msg_id INTEGER NOT NULL, ts_ms INTEGER NOT "
           "NULL, body BLOB NOT NULL, PRIMARY KEY (recipient, seq)) WITHOUT "
           "ROWID;"
           "CREATE INDEX mail_dedupe ON mail(recipient, sender, msg_id);"
           "CREATE INDEX mail_ts ON mail(ts_ms);"
           "INSERT INTO mailbox VALUES ('bob', 12, 2), ('cat', 40, 0);"
           "INSERT INTO mail VALUES ('bob', 9, 'ann', 5, 1234, "
           "CAST('old one' AS BLOB)), ('bob', 11, 'ann', 6, 1235, "
           "CAST('old two' AS BLOB));"
           "PRAGMA application_id = 1430540355; PRAGMA user_version = 3;");
  udpc_store *st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), 2);
  assert_int_equal(count_of(st, "cat"), 0);
  assert_true(total_of(st) == 2);
  udpc_nick bob = nk("bob"), ann = nk("ann");
  uint64_t seq = 0;
  assert_int_equal(udpc_store_mail_find(st, &bob, &ann, 6,
                                        (const uint8_t *)"old two", 7, &seq),
                   UDPC_OK);
  assert_true(seq == 11);
  assert_int_equal(udpc_store_mail_find(st, &bob, &ann, 6,
                                        (const uint8_t *)"old one", 7, &seq),
                   UDPC_ERR_NOT_FOUND);
  assert_int_equal(udpc_store_mail_find(st, &bob, &ann, 5, NULL, 0, &seq),
                   UDPC_OK);
  assert_true(seq == 9);
  append(st, "bob", "ann", 7, "new", &seq);
  assert_true(seq == 12);
  append(st, "cat", "ann", 1, "new", &seq);
  assert_true(seq == 40); /* emptied mailbox: seqs never reused */
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  assert_int_equal(raw_int(t.path, "PRAGMA user_version"),
                   UDPC_STORE_SQLITE_VERSION);
  assert_int_equal(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE "
                                   "name = 'mail_dedupe'"),
                   0);
  assert_int_equal(raw_int(t.path, "SELECT count(*) FROM "
                                   "pragma_table_info('mail') WHERE name = "
                                   "'id'"),
                   1);
  st = open_ok(&t); /* the migrated file: counts and seqs from the mail */
  assert_int_equal(count_of(st, "bob"), 3);
  assert_int_equal(count_of(st, "cat"), 1);
  assert_true(total_of(st) == 4);
  append(st, "bob", "ann", 8, "newer", &seq);
  assert_true(seq == 13);
  append(st, "cat", "ann", 2, "newer", &seq);
  assert_true(seq == 41);
  udpc_store_free(st);
  tmp_remove(&t);
}

static int found(udpc_store *st, const char *to, const char *from, uint32_t id,
                 const char *text, uint64_t *seq) {
  udpc_nick t = nk(to), f = nk(from);
  int rc = udpc_store_mail_find(st, &t, &f, id, (const uint8_t *)text,
                                text ? strlen(text) : 0, seq);
  assert_true(rc == UDPC_OK || rc == UDPC_ERR_NOT_FOUND);
  return rc == UDPC_OK;
}

/* The in-memory idempotency table follows appends, deletes, expiry,
 * rollbacks, and is rebuilt from the file at open. */
static void test_sqlite_dedupe_exact_across_rollback_and_reopen(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq = 0;
  /* Many mails, several recipients and senders: the table grows. */
  for (uint32_t i = 1; i <= 3000; i++) {
    char to[16], from[16], txt[32];
    snprintf(to, sizeof to, "r%u", i % 7);
    snprintf(from, sizeof from, "s%u", i % 5);
    snprintf(txt, sizeof txt, "text %u", i);
    append(st, to, from, i, txt, &seq);
    if (i % 500 == 0) assert_int_equal(udpc_store_commit(st), UDPC_OK);
  }
  assert_true(found(st, "r1", "s1", 1, "text 1", &seq));
  assert_true(seq == 1);
  assert_true(found(st, "r1", "s0", 2990, "text 2990", NULL));
  assert_false(found(st, "r1", "s0", 2990, "text 2991", NULL));
  assert_false(found(st, "r4", "s0", 2990, NULL, NULL));
  assert_false(found(st, "r1", "s1", 2990, NULL, NULL));
  assert_false(found(st, "r1", "s0", 2991, NULL, NULL));
  assert_false(found(st, "nobody", "s0", 2990, NULL, NULL));
  /* A reused msg id with another text: both found, each by its text; the
   * oldest without text. */
  append(st, "r1", "s1", 1, "reused id", &seq);
  uint64_t reused = seq;
  assert_true(found(st, "r1", "s1", 1, "reused id", &seq) && seq == reused);
  assert_true(found(st, "r1", "s1", 1, "text 1", &seq) && seq == 1);
  assert_true(found(st, "r1", "s1", 1, NULL, &seq) && seq == 1);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);

  /* Deleted mail is not found; a rolled-back delete brings it back, a
   * rolled-back append takes it away. */
  udpc_nick r1 = nk("r1");
  uint32_t del;
  assert_int_equal(udpc_store_mail_delete_upto(st, &r1, 1, &del), UDPC_OK);
  assert_int_equal(del, 1);
  assert_false(found(st, "r1", "s1", 1, "text 1", NULL));
  append(st, "r2", "s9", 77, "tentative", &seq);
  assert_true(found(st, "r2", "s9", 77, "tentative", NULL));
  fail_writes = 1;
  assert_int_equal(udpc_store_commit(st), UDPC_ERR_STORE);
  fail_writes = 0;
  assert_true(found(st, "r1", "s1", 1, "text 1", &seq) && seq == 1);
  assert_false(found(st, "r2", "s9", 77, "tentative", NULL));
  /* The next append reuses the rolled-back seq: only the new mail counts. */
  append(st, "r2", "s9", 5078, "another", &seq);
  assert_false(found(st, "r2", "s9", 77, NULL, NULL));
  assert_true(found(st, "r2", "s9", 5078, "another", NULL));
  assert_int_equal(udpc_store_mail_delete_upto(st, &r1, 8, &del), UDPC_OK);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  assert_false(found(st, "r1", "s1", 1, "text 1", NULL));
  assert_true(found(st, "r1", "s1", 1, "reused id", NULL));

  /* Expiry (ts = 1000 + id): ids below 1100 go. */
  uint64_t n = 0;
  assert_int_equal(udpc_store_sqlite_expire(st, 1100, &n), UDPC_OK);
  assert_true(n > 0);
  assert_false(found(st, "r1", "s1", 1, "reused id", NULL));
  assert_false(found(st, "r3", "s3", 38, NULL, NULL));
  assert_true(found(st, "r2", "s0", 100, "text 100", NULL));
  udpc_store_free(st);

  /* Reopen: rebuilt from the file. */
  st = open_ok(&t);
  assert_false(found(st, "r1", "s1", 1, NULL, NULL));
  assert_false(found(st, "r2", "s9", 77, NULL, NULL));
  assert_true(found(st, "r2", "s9", 5078, "another", NULL));
  assert_true(found(st, "r2", "s0", 100, "text 100", NULL));
  assert_true(found(st, "r1", "s0", 2990, "text 2990", NULL));
  assert_false(found(st, "r1", "s0", 2990, "text 2991", NULL));
  for (uint32_t i = 100; i <= 3000; i += 37) {
    char to[16], from[16], txt[32];
    snprintf(to, sizeof to, "r%u", i % 7);
    snprintf(from, sizeof from, "s%u", i % 5);
    snprintf(txt, sizeof txt, "text %u", i);
    assert_true(found(st, to, from, i, txt, NULL));
  }
  udpc_store_free(st);
  tmp_remove(&t);
}

/* Version 5: appends write no mailbox row; counts and next_seq come from
 * the mail at open, and a row keeps next_seq once mail is deleted. */
static void test_sqlite_seqs_never_reused_with_rows_written_on_delete(
    void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  udpc_nick bob = nk("bob");
  uint64_t seq;
  uint32_t del;
  for (uint32_t i = 1; i <= 3; i++) append(st, "bob", "ann", i, "m", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  assert_int_equal(raw_int(t.path, "SELECT count(*) FROM mailbox"), 0);

  st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), 3);
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 3, &del), UDPC_OK);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  assert_int_equal(raw_int(t.path, "SELECT next_seq FROM mailbox"), 4);

  st = open_ok(&t); /* emptied: the row remembers */
  assert_int_equal(count_of(st, "bob"), 0);
  append(st, "bob", "ann", 4, "m", &seq);
  assert_true(seq == 4);
  append(st, "bob", "ann", 5, "m", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  assert_int_equal(raw_int(t.path, "SELECT next_seq FROM mailbox"), 4);

  st = open_ok(&t); /* stale row, newer mail: the mail wins */
  assert_int_equal(count_of(st, "bob"), 2);
  append(st, "bob", "ann", 6, "m", &seq);
  assert_true(seq == 6);
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 5, &del), UDPC_OK);
  assert_int_equal(del, 2);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  assert_int_equal(raw_int(t.path, "SELECT next_seq FROM mailbox"), 7);

  st = open_ok(&t);
  assert_int_equal(count_of(st, "bob"), 1);
  assert_true(total_of(st) == 1);
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 6, &del), UDPC_OK);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  st = open_ok(&t);
  assert_true(total_of(st) == 0);
  append(st, "bob", "ann", 7, "m", &seq);
  assert_true(seq == 7);
  udpc_store_free(st);
  tmp_remove(&t);
}

/* The seqs of `to`'s mailbox as one number, e.g. 1, 3, 4 -> 134. */
static uint64_t seqs_of(udpc_store *st, const char *to) {
  udpc_nick t = nk(to);
  udpc_mail page[16];
  size_t n = 0;
  assert_int_equal(udpc_store_mail_page(st, &t, 0, page, 16, &n), UDPC_OK);
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v * 10 + page[i].seq;
  return v;
}

/* Version 6: the mail table is a log; each mailbox's order lives in memory.
 * Deletes from the middle (expiry by age, ages out of seq order), their
 * rollback, pages after each, and the order after a reopen. */
static void test_sqlite_mail_log_order_across_expiry_rollback_reopen(
    void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq;
  /* ts = 1000 + id: bob's seqs 1..6 have ages 5, 1, 7, 2, 9, 8 */
  static const uint32_t ids[] = {5, 1, 7, 2, 9, 8};
  for (size_t i = 0; i < 6; i++) {
    append(st, "bob", "ann", ids[i], "m", &seq);
    append(st, "cat", "ann", ids[i], "c", &seq); /* interleaved rows */
  }
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  assert_true(seqs_of(st, "bob") == 123456);
  uint64_t n = 0;
  fail_writes = 1; /* expiry rolled back: everything back in place */
  assert_int_equal(udpc_store_sqlite_expire(st, 1006, &n), UDPC_ERR_STORE);
  fail_writes = 0;
  assert_true(seqs_of(st, "bob") == 123456);
  assert_true(seqs_of(st, "cat") == 123456);
  assert_int_equal(count_of(st, "bob"), 6);
  assert_true(found(st, "bob", "ann", 2, "m", &seq) && seq == 4);
  assert_int_equal(udpc_store_sqlite_expire(st, 1006, &n), UDPC_OK);
  assert_true(n == 6); /* ids 5, 1, 2 of each */
  assert_true(seqs_of(st, "bob") == 356);
  assert_int_equal(count_of(st, "bob"), 3);
  assert_false(found(st, "bob", "ann", 2, NULL, NULL));
  assert_true(found(st, "bob", "ann", 9, "m", &seq) && seq == 5);
  /* A delete and an append rolled back together. */
  udpc_nick bob = nk("bob");
  uint32_t del;
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 5, &del), UDPC_OK);
  assert_int_equal(del, 2);
  append(st, "bob", "ann", 20, "m", &seq);
  assert_true(seq == 7);
  assert_true(seqs_of(st, "bob") == 67);
  fail_writes = 1;
  assert_int_equal(udpc_store_commit(st), UDPC_ERR_STORE);
  fail_writes = 0;
  assert_true(seqs_of(st, "bob") == 356);
  assert_false(found(st, "bob", "ann", 20, NULL, NULL));
  append(st, "bob", "ann", 21, "m", &seq);
  assert_true(seq == 7);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  st = open_ok(&t);
  assert_true(seqs_of(st, "bob") == 3567);
  assert_true(seqs_of(st, "cat") == 356);
  assert_true(total_of(st) == 7);
  udpc_store_free(st);
  tmp_remove(&t);
}

static void test_sqlite_malformed_mailbox_row_refused(void **state) {
  (void)state;
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  uint64_t seq;
  append(st, "bob", "ann", 1, "m", &seq);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_free(st);
  raw_exec(t.path, "INSERT OR REPLACE INTO mailbox VALUES ('bob', 7, -1)");
  char err[512];
  assert_null(udpc_store_sqlite_open(t.path, err, sizeof err));
  assert_non_null(strstr(err, "malformed mailbox"));
  tmp_remove(&t);
}

static void test_sqlite_rejects_bad_arguments_and_bad_paths(void **state) {
  (void)state;
  char err[512];
  assert_null(udpc_store_sqlite_open("", err, sizeof err));
  assert_null(
      udpc_store_sqlite_open("/nonexistent-dir/x/server.db", err, sizeof err));
  assert_non_null(strstr(err, "cannot open"));
  tmpdb t;
  tmp_make(&t);
  udpc_store *st = open_ok(&t);
  udpc_nick bad;
  memset(&bad, 0, sizeof bad);
  udpc_nick ok = nk("ann");
  uint64_t seq;
  uint32_t n;
  assert_int_equal(udpc_store_mail_append(st, &bad, &ok, 1, 1,
                                          (const uint8_t *)"x", 1, &seq),
                   UDPC_ERR_ARG);
  assert_int_equal(
      udpc_store_mail_append(st, &ok, &ok, 1, 1, (const uint8_t *)"x", 0, &seq),
      UDPC_ERR_ARG);
  assert_int_equal(udpc_store_mail_count(st, &bad, &n), UDPC_ERR_ARG);
  assert_false(udpc_store_sqlite_is(NULL));
  udpc_store *mem = udpc_store_mem_new();
  assert_false(udpc_store_sqlite_is(mem));
  assert_int_equal(udpc_store_sqlite_expire(mem, 1, NULL), UDPC_ERR_ARG);
  udpc_store_free(mem);
  udpc_store_free(st);
  tmp_remove(&t);
}

int main(void) {
  install_fault_vfs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          test_sqlite_open_creates_private_wal_db_at_current_version),
      cmocka_unit_test(
          test_sqlite_users_put_get_replace_foreach_survive_reopen),
      cmocka_unit_test(test_sqlite_mail_seq_page_find_delete),
      cmocka_unit_test(
          test_sqlite_uncommitted_gone_committed_kept_after_reopen),
      cmocka_unit_test(test_sqlite_group_commit_one_transaction_per_batch),
      cmocka_unit_test(test_sqlite_disk_full_at_commit_rolls_back_and_recovers),
      cmocka_unit_test(test_sqlite_fsync_error_fails_commit_store_stays_usable),
      cmocka_unit_test(test_sqlite_mutation_failure_poisons_the_batch),
      cmocka_unit_test(test_sqlite_second_open_of_same_db_refused_while_locked),
      cmocka_unit_test(test_sqlite_garbage_file_refused),
      cmocka_unit_test(test_sqlite_corrupt_pages_refused),
      cmocka_unit_test(test_sqlite_newer_schema_version_refused),
      cmocka_unit_test(test_sqlite_foreign_database_refused),
      cmocka_unit_test(test_sqlite_migrates_empty_file_and_version_1),
      cmocka_unit_test(test_sqlite_expire_deletes_old_mail_only),
      cmocka_unit_test(
          test_sqlite_mailbox_cache_exact_across_rollback_and_reopen),
      cmocka_unit_test(test_sqlite_expire_failure_keeps_counts),
      cmocka_unit_test(test_sqlite_migrates_version_3_counts_seqs_dedupe),
      cmocka_unit_test(test_sqlite_dedupe_exact_across_rollback_and_reopen),
      cmocka_unit_test(
          test_sqlite_seqs_never_reused_with_rows_written_on_delete),
      cmocka_unit_test(
          test_sqlite_mail_log_order_across_expiry_rollback_reopen),
      cmocka_unit_test(test_sqlite_malformed_mailbox_row_refused),
      cmocka_unit_test(test_sqlite_rejects_bad_arguments_and_bad_paths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
