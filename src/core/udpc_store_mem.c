/*
 * udpc_store_mem.c - the in-memory store backend (udpc_store.h).
 *
 * One "box" per nick: the user record (if any) and the mailbox, a FIFO ring
 * of mails in increasing seq order. Boxes are found through an
 * open-addressing hash table (linear probing, FNV-1a; boxes are never
 * removed, so no tombstones). Mutations apply at once; commit() only counts
 * (or fails on demand through udpc_store_mem_fail_commits, for tests of the
 * server's "no ACK without commit" rule). Nothing is ever rolled back, which
 * udpc_store.h allows.
 */
#include <stdlib.h>
#include <string.h>

#include "udpc_guard.h"
#include "udpc_store.h"

typedef struct {
  uint64_t seq;
  uint32_t msg_id;
  uint64_t ts_ms;
  udpc_nick from;
  uint8_t *text; /* owned, malloc'd */
  uint16_t text_len;
} mem_mail;

typedef struct {
  udpc_nick nick;
  int has_user;
  udpc_store_user user;
  mem_mail *ring; /* owned; cap entries */
  size_t cap, head, count;
  uint64_t next_seq; /* next seq to assign; starts at 1 */
} mem_box;

typedef struct {
  struct udpc_store base; /* must be first */
  mem_box **slots;        /* owned table of owned boxes; NULL = empty */
  size_t nslots;          /* power of two */
  size_t nboxes;
  uint64_t total_mail;
  int fail_commits;
  uint64_t commits;
} mem_store;

static const udpc_store_ops mem_ops;

static mem_store *mem_cast(udpc_store *st) { return (mem_store *)(void *)st; }

static uint64_t mem_hash(const udpc_nick *n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n->len; i++) {
    h ^= (uint8_t)n->s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static int nick_eq(const udpc_nick *a, const udpc_nick *b) {
  return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static int nick_ok(const udpc_nick *n) {
  return n != NULL && n->len >= 1 && n->len <= UDPC_NICK_MAX;
}

static mem_box *mem_find_box(const mem_store *m, const udpc_nick *nick) {
  if (m->nslots == 0) return NULL;
  size_t mask = m->nslots - 1;
  for (size_t i = (size_t)mem_hash(nick) & mask;; i = (i + 1) & mask) {
    mem_box *b = m->slots[i];
    if (b == NULL) return NULL;
    if (nick_eq(&b->nick, nick)) return b;
  }
}

static void mem_insert_slot(mem_box **slots, size_t nslots, mem_box *b) {
  size_t mask = nslots - 1;
  size_t i = (size_t)mem_hash(&b->nick) & mask;
  while (slots[i] != NULL) i = (i + 1) & mask;
  slots[i] = b;
}

static int mem_grow(mem_store *m) {
  size_t n = m->nslots ? m->nslots * 2 : 64;
  mem_box **s = calloc(n, sizeof *s);
  UDPC_ENSURE(s != NULL, UDPC_ERR_NOMEM);
  for (size_t i = 0; i < m->nslots; i++)
    if (m->slots[i]) mem_insert_slot(s, n, m->slots[i]);
  free(m->slots);
  m->slots = s;
  m->nslots = n;
  return UDPC_OK;
}

/* Find or create the box of nick. */
static int mem_box_get(mem_store *m, const udpc_nick *nick, mem_box **out) {
  mem_box *b = mem_find_box(m, nick);
  if (b == NULL) {
    if ((m->nboxes + 1) * 2 > m->nslots) UDPC_GUARD(mem_grow(m));
    b = calloc(1, sizeof *b);
    UDPC_ENSURE(b != NULL, UDPC_ERR_NOMEM);
    b->nick.len = nick->len;
    memcpy(b->nick.s, nick->s, nick->len);
    b->nick.s[nick->len] = '\0';
    b->next_seq = 1;
    mem_insert_slot(m->slots, m->nslots, b);
    m->nboxes++;
  }
  *out = b;
  return UDPC_OK;
}

static mem_mail *box_at(const mem_box *b, size_t i) {
  return &b->ring[(b->head + i) % b->cap];
}

static int mem_user_put(udpc_store *st, const udpc_store_user *u) {
  UDPC_ENSURE(st != NULL && u != NULL && nick_ok(&u->nick), UDPC_ERR_ARG);
  mem_box *b;
  UDPC_GUARD(mem_box_get(mem_cast(st), &u->nick, &b));
  b->user = *u;
  b->user.nick = b->nick; /* canonical NUL-terminated copy */
  b->has_user = 1;
  return UDPC_OK;
}

static int mem_user_get(udpc_store *st, const udpc_nick *nick,
                        udpc_store_user *out) {
  UDPC_ENSURE(st != NULL && out != NULL && nick_ok(nick), UDPC_ERR_ARG);
  const mem_box *b = mem_find_box(mem_cast(st), nick);
  UDPC_ENSURE(b != NULL && b->has_user, UDPC_ERR_NOT_FOUND);
  *out = b->user;
  return UDPC_OK;
}

static int mem_user_foreach(udpc_store *st, udpc_store_user_cb cb, void *ctx) {
  UDPC_ENSURE(st != NULL && cb != NULL, UDPC_ERR_ARG);
  mem_store *m = mem_cast(st);
  for (size_t i = 0; i < m->nslots; i++) {
    const mem_box *b = m->slots[i];
    if (b == NULL || !b->has_user) continue;
    int rc = cb(ctx, &b->user);
    if (rc != 0) return rc;
  }
  return UDPC_OK;
}

static int mem_mail_append(udpc_store *st, const udpc_nick *to,
                           const udpc_nick *from, uint32_t msg_id,
                           uint64_t ts_ms, const uint8_t *text, size_t text_len,
                           uint64_t *seq_out) {
  UDPC_ENSURE(st != NULL && nick_ok(to) && nick_ok(from), UDPC_ERR_ARG);
  UDPC_ENSURE(text != NULL && text_len >= 1 && text_len <= UDPC_TEXT_MAX,
              UDPC_ERR_ARG);
  mem_store *m = mem_cast(st);
  mem_box *b;
  UDPC_GUARD(mem_box_get(m, to, &b));
  if (b->count == b->cap) {
    size_t ncap = b->cap ? b->cap * 2 : 8;
    mem_mail *r = malloc(ncap * sizeof *r);
    UDPC_ENSURE(r != NULL, UDPC_ERR_NOMEM);
    for (size_t i = 0; i < b->count; i++) r[i] = *box_at(b, i);
    free(b->ring);
    b->ring = r;
    b->cap = ncap;
    b->head = 0;
  }
  uint8_t *copy = malloc(text_len);
  UDPC_ENSURE(copy != NULL, UDPC_ERR_NOMEM);
  memcpy(copy, text, text_len);
  mem_mail *ml = box_at(b, b->count);
  memset(ml, 0, sizeof *ml);
  ml->seq = b->next_seq++;
  ml->msg_id = msg_id;
  ml->ts_ms = ts_ms;
  ml->from.len = from->len;
  memcpy(ml->from.s, from->s, from->len);
  ml->from.s[from->len] = '\0';
  ml->text = copy;
  ml->text_len = (uint16_t)text_len;
  b->count++;
  m->total_mail++;
  if (seq_out) *seq_out = ml->seq;
  return UDPC_OK;
}

static int mem_mail_count(udpc_store *st, const udpc_nick *to, uint32_t *out) {
  UDPC_ENSURE(st != NULL && out != NULL && nick_ok(to), UDPC_ERR_ARG);
  const mem_box *b = mem_find_box(mem_cast(st), to);
  *out = b ? (uint32_t)b->count : 0;
  return UDPC_OK;
}

static int mem_mail_total(udpc_store *st, uint64_t *out) {
  UDPC_ENSURE(st != NULL && out != NULL, UDPC_ERR_ARG);
  *out = mem_cast(st)->total_mail;
  return UDPC_OK;
}

static int mem_mail_find(udpc_store *st, const udpc_nick *to,
                         const udpc_nick *from, uint32_t msg_id,
                         const uint8_t *text, size_t text_len,
                         uint64_t *seq_out) {
  UDPC_ENSURE(st != NULL && nick_ok(to) && nick_ok(from), UDPC_ERR_ARG);
  const mem_box *b = mem_find_box(mem_cast(st), to);
  if (b == NULL) return UDPC_ERR_NOT_FOUND;
  /* Newest first: a retransmitted SAVE is usually the last mail. */
  for (size_t i = b->count; i-- > 0;) {
    const mem_mail *ml = box_at(b, i);
    if (ml->msg_id == msg_id && nick_eq(&ml->from, from) &&
        (text == NULL ||
         (ml->text_len == text_len && memcmp(ml->text, text, text_len) == 0))) {
      if (seq_out) *seq_out = ml->seq;
      return UDPC_OK;
    }
  }
  return UDPC_ERR_NOT_FOUND;
}

static int mem_mail_page(udpc_store *st, const udpc_nick *to,
                         uint64_t after_seq, udpc_mail *out, size_t max,
                         size_t *n) {
  UDPC_ENSURE(st != NULL && nick_ok(to) && n != NULL, UDPC_ERR_ARG);
  UDPC_ENSURE(out != NULL || max == 0, UDPC_ERR_ARG);
  *n = 0;
  const mem_box *b = mem_find_box(mem_cast(st), to);
  if (b == NULL) return UDPC_OK;
  for (size_t i = 0; i < b->count && *n < max; i++) {
    const mem_mail *ml = box_at(b, i);
    if (ml->seq <= after_seq) continue;
    udpc_mail *o = &out[(*n)++];
    memset(o, 0, sizeof *o);
    o->seq = ml->seq;
    o->msg_id = ml->msg_id;
    o->timestamp_ms = ml->ts_ms;
    o->from = ml->from;
    o->text.p = ml->text;
    o->text.len = ml->text_len;
  }
  return UDPC_OK;
}

static int mem_mail_delete_upto(udpc_store *st, const udpc_nick *to,
                                uint64_t seq, uint32_t *deleted) {
  UDPC_ENSURE(st != NULL && nick_ok(to), UDPC_ERR_ARG);
  mem_store *m = mem_cast(st);
  uint32_t d = 0;
  mem_box *b = mem_find_box(m, to);
  while (b != NULL && b->count > 0 && box_at(b, 0)->seq <= seq) {
    mem_mail *ml = box_at(b, 0);
    free(ml->text);
    ml->text = NULL;
    b->head = (b->head + 1) % b->cap;
    b->count--;
    m->total_mail--;
    d++;
  }
  if (deleted) *deleted = d;
  return UDPC_OK;
}

static int mem_commit(udpc_store *st) {
  UDPC_ENSURE(st != NULL, UDPC_ERR_ARG);
  mem_store *m = mem_cast(st);
  if (m->fail_commits > 0) {
    m->fail_commits--;
    return UDPC_ERR_STORE;
  }
  m->commits++;
  return UDPC_OK;
}

static void mem_free(udpc_store *st) {
  if (st == NULL) return;
  mem_store *m = mem_cast(st);
  for (size_t i = 0; i < m->nslots; i++) {
    mem_box *b = m->slots[i];
    if (b == NULL) continue;
    for (size_t j = 0; j < b->count; j++) free(box_at(b, j)->text);
    free(b->ring);
    free(b);
  }
  free(m->slots);
  free(m);
}

static const udpc_store_ops mem_ops = {
    .user_put = mem_user_put,
    .user_get = mem_user_get,
    .user_foreach = mem_user_foreach,
    .mail_append = mem_mail_append,
    .mail_count = mem_mail_count,
    .mail_total = mem_mail_total,
    .mail_find = mem_mail_find,
    .mail_page = mem_mail_page,
    .mail_delete_upto = mem_mail_delete_upto,
    .commit = mem_commit,
    .free = mem_free,
};

udpc_store *udpc_store_mem_new(void) {
  mem_store *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->base.ops = &mem_ops;
  return &m->base;
}

void udpc_store_free(udpc_store *st) {
  if (st != NULL && st->ops != NULL && st->ops->free != NULL) st->ops->free(st);
}

void udpc_store_mem_fail_commits(udpc_store *st, int n) {
  if (st == NULL || st->ops != &mem_ops) return;
  mem_cast(st)->fail_commits = n < 0 ? 0 : n;
}

uint64_t udpc_store_mem_commit_count(const udpc_store *st) {
  if (st == NULL || st->ops != &mem_ops) return 0;
  return ((const mem_store *)(const void *)st)->commits;
}
