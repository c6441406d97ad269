/*
 * udpc_store_sqlite.h - the durable store backend (udpc_store.h) on SQLite.
 *
 * Lives outside src/core: the core stays sans-IO and only sees the store
 * interface. One database file; write-ahead log, synchronous=FULL (a commit
 * is on disk when commit() returns), exclusive locking (one server process
 * per database). Transactions follow udpc_store.h: the first mutation after
 * a commit opens a transaction (BEGIN IMMEDIATE), commit() ends it (COMMIT):
 * every request of one event-loop batch shares one transaction and one
 * fsync ("group commit"). A failing COMMIT (disk full, fsync error, ...) is
 * rolled back and reported as UDPC_ERR_STORE, never as success, and the
 * SQLite message goes to the log callback.
 *
 * Schema (PRAGMA user_version = UDPC_STORE_SQLITE_VERSION, application_id
 * 'UDPC'; older versions are migrated at open, newer ones refused):
 *   users(nick PK, salt, cred_hash, addr_family, addr_ip, addr_port, status,
 *         registered_ms, last_seen_ms)
 *   mailbox(recipient PK, next_seq, n_mail)  per-recipient seq counter (a
 *                                          seq is never reused, even after
 *                                          the mailbox was emptied) and
 *                                          mail count (version 3). Since
 *                                          version 5 a row is written (by
 *                                          commit(), in the batch) only when
 *                                          mail of the recipient was
 *                                          deleted; at open the store counts
 *                                          the mail and takes next_seq =
 *                                          max(row, highest seq + 1), so a
 *                                          SAVE writes the mail row only
 *   mail(id INTEGER PK, recipient, seq, sender, msg_id, ts_ms, body)
 *                                          version 6: a log in insertion
 *                                          order (before: clustered by
 *                                          (recipient, seq)), so a group
 *                                          commit appends to its last pages
 *                                          whatever the recipients
 *   index mail_ts(ts_ms)                           expiry (version 2)
 * In memory (built at open by one scan of the mail table, kept exact
 * across commit and rollback; about 50-70 bytes per stored mail, 50 MB and
 * 0.8 s more at open for the default quota of 1,000,000 mails): per
 * mailbox its mails' (seq, id) in seq order (mail_page, mail_delete_upto),
 * and the dedupe table (recipient, sender, msg_id) -> id for mail_find,
 * the SAVE idempotency lookup (version 4 dropped the index mail_dedupe).
 */
#ifndef UDPC_STORE_SQLITE_H
#define UDPC_STORE_SQLITE_H

#include <stddef.h>
#include <stdint.h>

#include "udpc_store.h"

#define UDPC_STORE_SQLITE_VERSION 6
#define UDPC_STORE_SQLITE_APP_ID 0x55445043 /* "UDPC" */

/* Open (creating it with mode 0600 if missing) the database at `path`,
 * migrate an older schema, check it (PRAGMA quick_check). NULL on failure
 * with a one-line reason in err (not a database, corrupt, newer schema,
 * locked by another process, I/O error...). */
udpc_store *udpc_store_sqlite_open(const char *path, char *err, size_t errlen);

/* Where the backend reports failures (commit, I/O, bad rows): one line per
 * event, without a trailing newline. Default: nowhere. No-op for stores
 * that are not SQLite stores. */
typedef void (*udpc_store_sqlite_log_fn)(void *ctx, const char *line);
void udpc_store_sqlite_set_log(udpc_store *st, udpc_store_sqlite_log_fn fn,
                               void *ctx);

/* The last failure of this store as text ("" if none). */
const char *udpc_store_sqlite_last_error(const udpc_store *st);

/* 1 if st is a SQLite store. */
int udpc_store_sqlite_is(const udpc_store *st);

/* Delete every stored mail with ts_ms < cutoff_ms (expiry) and commit.
 * Call between batches (after udpc_server_flush). *deleted (may be NULL)
 * receives the count. UDPC_ERR_STORE on failure (rolled back). */
int udpc_store_sqlite_expire(udpc_store *st, uint64_t cutoff_ms,
                             uint64_t *deleted);

/* Successful commits that wrote something (for the benchmark and tests). */
uint64_t udpc_store_sqlite_commit_count(const udpc_store *st);

#endif /* UDPC_STORE_SQLITE_H */
