/*
 * sim_store.c - a store backend with crash semantics for the simulator.
 *
 * Reads and writes go to an inner udpc_store_mem (the live state of the
 * server process). Every mutation is also logged; commit() moves the
 * pending log to the committed history. A simulated crash frees the inner
 * store and rebuilds it by replaying the committed history, so exactly what
 * was committed survives, with the same mail seqs (the in-memory backend
 * assigns seqs deterministically from its history).
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

enum { OP_USER, OP_MAIL, OP_DELETE };

typedef struct {
  int op;
  udpc_store_user user;
  udpc_nick to, from;
  uint32_t msg_id;
  uint64_t ts, seq;
  uint8_t *text;
  size_t text_len;
} sim_op;

typedef struct {
  sim_op *v;
  size_t n, cap;
} sim_log;

typedef struct {
  struct udpc_store base; /* first member */
  udpc_store *inner;
  sim_log pending, committed;
  int plant, fail_next;
  sim_store_mail_cb cb;
  void *ctx;
} sim_store;

static int log_push(sim_log *l, const sim_op *op) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    int own = sim_mem_owner;
    sim_mem_owner = SIM_MEM_NONE; /* the log is the disk, not server memory */
    sim_op *v = realloc(l->v, cap * sizeof *v);
    sim_mem_owner = own;
    if (v == NULL) return UDPC_ERR_NOMEM;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = *op;
  return UDPC_OK;
}

static void log_clear(sim_log *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i].text);
  l->n = 0;
}

static sim_store *ss(udpc_store *st) { return (sim_store *)st; }

static int ss_user_put(udpc_store *st, const udpc_store_user *u) {
  sim_op op;
  memset(&op, 0, sizeof op);
  op.op = OP_USER;
  op.user = *u;
  int rc = udpc_store_user_put(ss(st)->inner, u);
  if (rc != UDPC_OK) return rc;
  return log_push(&ss(st)->pending, &op);
}

static int ss_user_get(udpc_store *st, const udpc_nick *nick,
                       udpc_store_user *out) {
  return udpc_store_user_get(ss(st)->inner, nick, out);
}

static int ss_user_foreach(udpc_store *st, udpc_store_user_cb cb, void *ctx) {
  return udpc_store_user_foreach(ss(st)->inner, cb, ctx);
}

static int ss_mail_append(udpc_store *st, const udpc_nick *to,
                          const udpc_nick *from, uint32_t msg_id, uint64_t ts,
                          const uint8_t *text, size_t text_len,
                          uint64_t *seq_out) {
  sim_store *s = ss(st);
  uint64_t seq = 0;
  /* R40: never a second copy of a mail that is still stored. */
  if (s->cb && udpc_store_mail_find(s->inner, to, from, msg_id, text, text_len,
                                    &seq) == UDPC_OK)
    s->cb(s->ctx, to, from, msg_id, text, text_len, seq, -1);
  int rc = udpc_store_mail_append(s->inner, to, from, msg_id, ts, text,
                                  text_len, &seq);
  if (rc != UDPC_OK) return rc;
  if (seq_out) *seq_out = seq;
  sim_op op;
  memset(&op, 0, sizeof op);
  op.op = OP_MAIL;
  op.to = *to;
  op.from = *from;
  op.msg_id = msg_id;
  op.ts = ts;
  op.seq = seq;
  int own = sim_mem_owner;
  sim_mem_owner = SIM_MEM_NONE;
  op.text = malloc(text_len ? text_len : 1);
  sim_mem_owner = own;
  if (op.text == NULL) return UDPC_ERR_NOMEM;
  memcpy(op.text, text, text_len);
  op.text_len = text_len;
  if (s->cb) s->cb(s->ctx, to, from, msg_id, text, text_len, seq, 0);
  rc = log_push(&s->pending, &op);
  if (rc != UDPC_OK) free(op.text);
  return rc;
}

static int ss_mail_count(udpc_store *st, const udpc_nick *to, uint32_t *out) {
  return udpc_store_mail_count(ss(st)->inner, to, out);
}

static int ss_mail_total(udpc_store *st, uint64_t *out) {
  return udpc_store_mail_total(ss(st)->inner, out);
}

static int ss_mail_find(udpc_store *st, const udpc_nick *to,
                        const udpc_nick *from, uint32_t msg_id,
                        const uint8_t *text, size_t text_len,
                        uint64_t *seq_out) {
  return udpc_store_mail_find(ss(st)->inner, to, from, msg_id, text, text_len,
                              seq_out);
}

static int ss_mail_page(udpc_store *st, const udpc_nick *to, uint64_t after_seq,
                        udpc_mail *out, size_t max, size_t *n) {
  return udpc_store_mail_page(ss(st)->inner, to, after_seq, out, max, n);
}

static int ss_mail_delete_upto(udpc_store *st, const udpc_nick *to,
                               uint64_t seq, uint32_t *deleted) {
  int rc = udpc_store_mail_delete_upto(ss(st)->inner, to, seq, deleted);
  if (rc != UDPC_OK) return rc;
  sim_op op;
  memset(&op, 0, sizeof op);
  op.op = OP_DELETE;
  op.to = *to;
  op.seq = seq;
  return log_push(&ss(st)->pending, &op);
}

static int ss_commit(udpc_store *st) {
  sim_store *s = ss(st);
  if (s->fail_next) {
    int mode = s->fail_next;
    s->fail_next = 0;
    /* SIM_COMMIT_FAIL_KEEP: the in-memory backend keeps the batch pending.
     * SIM_COMMIT_FAIL_ROLLBACK: the SQLite backend (the server's default)
     * rolls the whole transaction back: only committed history remains. */
    if (mode == SIM_COMMIT_FAIL_ROLLBACK) {
      int rc = sim_store_crash(st);
      if (rc != UDPC_OK) return rc;
    }
    return UDPC_ERR_STORE;
  }
  int rc = udpc_store_commit(s->inner);
  if (rc != UDPC_OK) return rc;
  for (size_t i = 0; i < s->pending.n; i++) {
    sim_op *op = &s->pending.v[i];
    if (op->op == OP_MAIL && s->plant) continue; /* planted: not durable */
    if (op->op == OP_MAIL && s->cb)
      s->cb(s->ctx, &op->to, &op->from, op->msg_id, op->text, op->text_len,
            op->seq, 1);
    if (log_push(&s->committed, op) != UDPC_OK) return UDPC_ERR_NOMEM;
    op->text = NULL; /* moved */
  }
  log_clear(&s->pending);
  return UDPC_OK;
}

static void ss_free(udpc_store *st) {
  sim_store *s = ss(st);
  if (s == NULL) return;
  udpc_store_free(s->inner);
  log_clear(&s->pending);
  log_clear(&s->committed);
  free(s->pending.v);
  free(s->committed.v);
  free(s);
}

static const udpc_store_ops SS_OPS = {
    .user_put = ss_user_put,
    .user_get = ss_user_get,
    .user_foreach = ss_user_foreach,
    .mail_append = ss_mail_append,
    .mail_count = ss_mail_count,
    .mail_total = ss_mail_total,
    .mail_find = ss_mail_find,
    .mail_page = ss_mail_page,
    .mail_delete_upto = ss_mail_delete_upto,
    .commit = ss_commit,
    .free = ss_free,
};

udpc_store *sim_store_new(int plant_unsafe_commit, sim_store_mail_cb cb,
                          void *ctx) {
  sim_store *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->base.ops = &SS_OPS;
  s->inner = udpc_store_mem_new();
  if (s->inner == NULL) {
    free(s);
    return NULL;
  }
  s->plant = plant_unsafe_commit;
  s->cb = cb;
  s->ctx = ctx;
  return &s->base;
}

int sim_store_crash(udpc_store *st) {
  sim_store *s = ss(st);
  udpc_store_free(s->inner);
  log_clear(&s->pending);
  s->inner = udpc_store_mem_new();
  if (s->inner == NULL) return UDPC_ERR_NOMEM;
  for (size_t i = 0; i < s->committed.n; i++) {
    const sim_op *op = &s->committed.v[i];
    uint64_t seq = 0;
    int rc = UDPC_OK;
    switch (op->op) {
      case OP_USER: rc = udpc_store_user_put(s->inner, &op->user); break;
      case OP_MAIL:
        rc = udpc_store_mail_append(s->inner, &op->to, &op->from, op->msg_id,
                                    op->ts, op->text, op->text_len, &seq);
        if (rc == UDPC_OK && !s->plant && seq != op->seq) rc = UDPC_ERR_STORE;
        break;
      default:
        rc = udpc_store_mail_delete_upto(s->inner, &op->to, op->seq, NULL);
        break;
    }
    if (rc != UDPC_OK) return rc;
  }
  return udpc_store_commit(s->inner);
}

int sim_store_force_mail(udpc_store *st, const udpc_nick *to,
                         const udpc_nick *from, uint32_t msg_id, uint64_t ts,
                         const uint8_t *text, size_t len) {
  sim_store *s = ss(st);
  uint64_t seq;
  int plant = s->plant;
  int rc = ss_mail_append(st, to, from, msg_id, ts, text, len, &seq);
  if (rc != UDPC_OK) return rc;
  s->plant = 0;
  rc = ss_commit(st);
  s->plant = plant;
  return rc;
}

void sim_store_fail_next(udpc_store *st, int mode) { ss(st)->fail_next = mode; }
