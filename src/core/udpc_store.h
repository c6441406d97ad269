/*
 * udpc_store.h - internal store interface (PROTOCOL.md P7): registrations
 * and offline mail. Not part of the public API; the public header only
 * knows the opaque `udpc_store`, udpc_store_mem_new() and udpc_store_free().
 *
 * A backend is a struct whose FIRST member is `struct udpc_store` (so a
 * backend pointer and a udpc_store pointer convert into each other) and
 * whose ops table holds the functions below. The core calls the ops only
 * through the static inline udpc_store_* wrappers at the end of this file.
 *
 * Transactions. Every mutation (user_put, mail_append, mail_delete_upto) is
 * TENTATIVE until commit() returns UDPC_OK. Reads see the tentative state of
 * the current batch. The server calls commit() once per batch (in
 * udpc_server_flush) and sends the acknowledgements of that batch only if it
 * succeeded ("acknowledged means committed"). A transactional backend
 * (SQLite: BEGIN at the first mutation of a batch, COMMIT in commit(), group
 * commit) rolls the batch back when commit() fails; the in-memory backend
 * applies mutations at once and never rolls back. The server is correct
 * with either: after a failed commit it keeps its dirty user records and
 * re-puts them at the next flush, and it forgets the SAVE results of the
 * failed batch, so a retransmitted SAVE is looked up with mail_find() and
 * stored (again) only if the store does not have it.
 *
 * Ownership. The store owns everything it stores; every input pointer is
 * borrowed for the duration of the call and copied if kept. Output structs
 * are caller-owned and filled by copy, except udpc_mail.text.p returned by
 * mail_page(), which points into store memory and stays valid until the
 * next call of any op on the same store (the caller copies it if needed).
 *
 * Errors: ops return UDPC_OK or a negative udpc_err (UDPC_ERR_NOT_FOUND for
 * a missing key, UDPC_ERR_NOMEM, UDPC_ERR_STORE for a backend failure,
 * UDPC_ERR_ARG for NULL/invalid arguments). Quotas are NOT the store's
 * business: the core checks them with mail_count()/mail_total().
 *
 * Cost. The server calls mail_find(), mail_count(), mail_total() and
 * mail_append() for every SAVE to an offline recipient, and commit() once
 * per receive batch: the first three should cost O(1) without I/O (both
 * backends answer them from memory), and a commit should cost about one
 * fsync whatever the batch holds (bench/store_bench measures this path).
 */
#ifndef UDPC_STORE_H
#define UDPC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "udpchat.h"

/* Bytes of the per-user salt that keys the credential hash. */
#define UDPC_STORE_SALT_LEN 16
#define UDPC_STORE_HASH_LEN 32

/* One registered user, as persisted. Plain value type, copied in and out. */
typedef struct {
  udpc_nick nick;                         /* key; folded wire nick */
  uint8_t salt[UDPC_STORE_SALT_LEN];      /* random per user (from seed) */
  uint8_t cred_hash[UDPC_STORE_HASH_LEN]; /* BLAKE2b-256 keyed with salt
                                               over the 32-byte credential */
  udpc_addr addr;                         /* last address */
  uint8_t status;                         /* udpc_status at last commit;
                                               informational: the server
                                               loads everyone OFFLINE */
  uint64_t registered_ms;                 /* first registration, UTC ms */
  uint64_t last_seen_ms;                  /* last state change, UTC ms */
} udpc_store_user;

typedef struct udpc_store_ops udpc_store_ops;

struct udpc_store {
  const udpc_store_ops *ops; /* static table owned by the backend */
};

/* user_foreach callback: return 0 to continue, anything else stops the
 * walk and is returned by user_foreach. `u` is valid during the call. */
typedef int (*udpc_store_user_cb)(void *ctx, const udpc_store_user *u);

struct udpc_store_ops {
  /* Insert or replace the record with u->nick (copied). */
  int (*user_put)(udpc_store *st, const udpc_store_user *u);
  /* Copy the record of `nick` into *out; UDPC_ERR_NOT_FOUND if none. */
  int (*user_get)(udpc_store *st, const udpc_nick *nick, udpc_store_user *out);
  /* Call cb for every user (any order). Used once at server start. */
  int (*user_foreach)(udpc_store *st, udpc_store_user_cb cb, void *ctx);
  /* Append one mail for `to` (its mailbox need not have a user record).
   * Assigns the next per-recipient seq (> every seq ever assigned to this
   * recipient by this store, starting at 1) and writes it to *seq_out. */
  int (*mail_append)(udpc_store *st, const udpc_nick *to, const udpc_nick *from,
                     uint32_t msg_id, uint64_t ts_ms, const uint8_t *text,
                     size_t text_len, uint64_t *seq_out);
  /* Number of mails waiting for `to` (0 for an unknown nick). */
  int (*mail_count)(udpc_store *st, const udpc_nick *to, uint32_t *out);
  /* Number of mails in the whole store. */
  int (*mail_total)(udpc_store *st, uint64_t *out);
  /* Is a mail from `from` with msg_id (and, if text is not NULL, exactly
   * this text) waiting for `to`? UDPC_OK (and its seq in *seq_out if not
   * NULL) or UDPC_ERR_NOT_FOUND. The text check keeps a client that
   * reuses msg ids (e.g. after a restart) from losing a new message. */
  int (*mail_find)(udpc_store *st, const udpc_nick *to, const udpc_nick *from,
                   uint32_t msg_id, const uint8_t *text, size_t text_len,
                   uint64_t *seq_out);
  /* The oldest (lowest seq) mails of `to` with seq > after_seq, at most
   * max, into out[0..*n). Text borrowed (see Ownership above). */
  int (*mail_page)(udpc_store *st, const udpc_nick *to, uint64_t after_seq,
                   udpc_mail *out, size_t max, size_t *n);
  /* Delete every mail of `to` with seq <= seq; *deleted (may be NULL)
   * receives how many were deleted. */
  int (*mail_delete_upto)(udpc_store *st, const udpc_nick *to, uint64_t seq,
                          uint32_t *deleted);
  /* Make every tentative mutation durable. UDPC_ERR_STORE on failure. */
  int (*commit)(udpc_store *st);
  /* Free the backend and everything it owns. */
  void (*free)(udpc_store *st);
};

/* ---- In-memory backend test hooks ------------------------------------- */
/* The next n calls of commit() fail with UDPC_ERR_STORE (n = 0 clears).
 * Only for stores made by udpc_store_mem_new(); no-op on others/NULL. */
void udpc_store_mem_fail_commits(udpc_store *st, int n);
/* Number of commit() calls that succeeded so far (0 for NULL/others). */
uint64_t udpc_store_mem_commit_count(const udpc_store *st);

/* ---- Dispatch wrappers ------------------------------------------------- */
static inline int udpc_store_user_put(udpc_store *st,
                                      const udpc_store_user *u) {
  return st->ops->user_put(st, u);
}
static inline int udpc_store_user_get(udpc_store *st, const udpc_nick *nick,
                                      udpc_store_user *out) {
  return st->ops->user_get(st, nick, out);
}
static inline int udpc_store_user_foreach(udpc_store *st, udpc_store_user_cb cb,
                                          void *ctx) {
  return st->ops->user_foreach(st, cb, ctx);
}
static inline int udpc_store_mail_append(udpc_store *st, const udpc_nick *to,
                                         const udpc_nick *from, uint32_t msg_id,
                                         uint64_t ts_ms, const uint8_t *text,
                                         size_t text_len, uint64_t *seq_out) {
  return st->ops->mail_append(st, to, from, msg_id, ts_ms, text, text_len,
                              seq_out);
}
static inline int udpc_store_mail_count(udpc_store *st, const udpc_nick *to,
                                        uint32_t *out) {
  return st->ops->mail_count(st, to, out);
}
static inline int udpc_store_mail_total(udpc_store *st, uint64_t *out) {
  return st->ops->mail_total(st, out);
}
static inline int udpc_store_mail_find(udpc_store *st, const udpc_nick *to,
                                       const udpc_nick *from, uint32_t msg_id,
                                       const uint8_t *text, size_t text_len,
                                       uint64_t *seq_out) {
  return st->ops->mail_find(st, to, from, msg_id, text, text_len, seq_out);
}
static inline int udpc_store_mail_page(udpc_store *st, const udpc_nick *to,
                                       uint64_t after_seq, udpc_mail *out,
                                       size_t max, size_t *n) {
  return st->ops->mail_page(st, to, after_seq, out, max, n);
}
static inline int udpc_store_mail_delete_upto(udpc_store *st,
                                              const udpc_nick *to, uint64_t seq,
                                              uint32_t *deleted) {
  return st->ops->mail_delete_upto(st, to, seq, deleted);
}
static inline int udpc_store_commit(udpc_store *st) {
  return st->ops->commit(st);
}

#endif /* UDPC_STORE_H */
