/*
 * store_bench.c - durable SAVEs per second of the SQLite store (src/store)
 * with group commit, doing per message exactly what the server does for a
 * SAVE to an offline recipient (udpc_server.c srv_save/srv_store_mail):
 *
 *   mail_find (idempotency; a miss) -> mail_count + mail_total (quotas)
 *   -> mail_append
 *
 * then commit() after every B messages, for B = 1 (one fsync per message),
 * 8, 64 and 256, each on a fresh database in the same run. Messages go
 * round-robin to R recipients from S senders (so mailboxes and the dedupe
 * lookups are realistic, not one hot row). Printed per mode: durable
 * messages/s, the time from a message's find to the commit that made it
 * durable (what the store adds to request-to-ACK), p50 and p99, and the
 * mean cost of each operation (us per message; commit us per commit).
 *
 *   store_bench [messages-per-mode [dir [recipients [prefill [batch]]]]]
 *       defaults: 2000, ./store-bench, 1000, 0, all of 1 8 64 256
 *
 * prefill: mails stored (and committed, 1024 per transaction) before the
 * timed run, spread over the recipients, so the b-trees are not tiny.
 * The directory must be on the disk to measure (not tmpfs: fsync is free
 * there). Everything it creates is removed at the end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "udpc_store.h"
#include "udpc_store_sqlite.h"
#include "udpchat.h"

#define N_SENDERS 16

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static udpc_nick nk(const char *prefix, uint32_t i) {
  udpc_nick n;
  memset(&n, 0, sizeof n);
  int len = snprintf(n.s, sizeof n.s, "%s%u", prefix, i);
  n.len = (uint8_t)len;
  return n;
}

static void rm_db(const char *path) {
  char p[4200];
  const char *sfx[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", path, sfx[i]);
    unlink(p);
  }
}

enum { OP_FIND, OP_COUNT, OP_TOTAL, OP_APPEND, OP_COMMIT, OP_N };

typedef struct {
  udpc_nick *to, *from;
  uint32_t n_to;
  uint8_t text[200];
} bench_env;

/* One SAVE as the server does it; msg is the global message number. */
static int save(udpc_store *st, const bench_env *e, uint32_t msg,
                uint64_t t[OP_N]) {
  const udpc_nick *to = &e->to[msg % e->n_to];
  const udpc_nick *from = &e->from[msg % N_SENDERS];
  uint8_t text[sizeof e->text];
  memcpy(text, e->text, sizeof text);
  memcpy(text, &msg, sizeof msg); /* every text differs */
  uint64_t a = now_ns();
  int rc = udpc_store_mail_find(st, to, from, msg, text, sizeof text, NULL);
  uint64_t b = now_ns();
  if (rc != UDPC_ERR_NOT_FOUND) return -1;
  uint32_t count;
  if (udpc_store_mail_count(st, to, &count) != UDPC_OK) return -1;
  uint64_t c = now_ns();
  uint64_t total;
  if (udpc_store_mail_total(st, &total) != UDPC_OK) return -1;
  uint64_t d = now_ns();
  uint64_t seq;
  if (udpc_store_mail_append(st, to, from, msg, 1700000000000u + msg, text,
                             sizeof text, &seq) != UDPC_OK)
    return -1;
  uint64_t f = now_ns();
  t[OP_FIND] += b - a;
  t[OP_COUNT] += c - b;
  t[OP_TOTAL] += d - c;
  t[OP_APPEND] += f - d;
  return 0;
}

static int run(const char *dir, const bench_env *e, uint32_t n, uint32_t batch,
               uint32_t prefill) {
  char path[4200], err[512];
  snprintf(path, sizeof path, "%s/bench-%u.db", dir, batch);
  rm_db(path);
  udpc_store *st = udpc_store_sqlite_open(path, err, sizeof err);
  if (st == NULL) {
    fprintf(stderr, "store_bench: %s\n", err);
    return -1;
  }
  uint64_t t[OP_N] = {0};
  for (uint32_t i = 0; i < prefill; i++) {
    if (save(st, e, i, t) != 0) {
      fprintf(stderr, "store_bench: prefill failed\n");
      return -1;
    }
    if ((i + 1) % 1024 == 0 || i + 1 == prefill) udpc_store_commit(st);
  }
  memset(t, 0, sizeof t);
  uint64_t *lat = malloc(n * sizeof *lat);
  uint64_t *start = malloc(batch * sizeof *start);
  if (lat == NULL || start == NULL) return -1;
  uint64_t t0 = now_ns();
  uint32_t done = 0;
  while (done < n) {
    uint32_t k = n - done < batch ? n - done : batch;
    for (uint32_t i = 0; i < k; i++) {
      start[i] = now_ns();
      if (save(st, e, prefill + done + i, t) != 0) {
        fprintf(stderr, "store_bench: save failed: %s\n",
                udpc_store_sqlite_last_error(st));
        return -1;
      }
    }
    uint64_t c0 = now_ns();
    if (udpc_store_commit(st) != UDPC_OK) {
      fprintf(stderr, "store_bench: commit failed: %s\n",
              udpc_store_sqlite_last_error(st));
      return -1;
    }
    uint64_t c1 = now_ns();
    t[OP_COMMIT] += c1 - c0;
    for (uint32_t i = 0; i < k; i++) lat[done + i] = c1 - start[i];
    done += k;
  }
  uint64_t el = now_ns() - t0;
  uint32_t commits = (n + batch - 1) / batch;
  qsort(lat, n, sizeof *lat, cmp_u64);
  printf("%7u %7u %9.0f %7.3f %7.3f %7u %6.2f %6.2f %6.2f %6.2f %8.1f %7.2f\n",
         batch, n, (double)n / ((double)el / 1e9), (double)lat[n / 2] / 1e6,
         (double)lat[(size_t)((double)n * 0.99)] / 1e6, commits,
         (double)t[OP_FIND] / n / 1e3, (double)t[OP_COUNT] / n / 1e3,
         (double)t[OP_TOTAL] / n / 1e3, (double)t[OP_APPEND] / n / 1e3,
         (double)t[OP_COMMIT] / commits / 1e3,
         (double)(t[OP_FIND] + t[OP_COUNT] + t[OP_TOTAL] + t[OP_APPEND] +
                  t[OP_COMMIT]) /
             n / 1e3);
  fflush(stdout);
  free(lat);
  free(start);
  udpc_store_free(st);
  rm_db(path);
  return 0;
}

int main(int argc, char **argv) {
  uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 2000;
  const char *dir = argc > 2 ? argv[2] : "store-bench";
  uint32_t n_to = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 1000;
  uint32_t prefill = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 0;
  uint32_t only = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : 0;
  if (n == 0) n = 2000;
  if (n_to == 0) n_to = 1000;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "store_bench: cannot create %s: %s\n", dir,
            strerror(errno));
    return 1;
  }
  bench_env e;
  e.n_to = n_to;
  e.to = calloc(n_to, sizeof *e.to);
  e.from = calloc(N_SENDERS, sizeof *e.from);
  if (e.to == NULL || e.from == NULL) return 1;
  for (uint32_t i = 0; i < n_to; i++) e.to[i] = nk("recipient", i);
  for (uint32_t i = 0; i < N_SENDERS; i++) e.from[i] = nk("sender", i);
  memset(e.text, 'm', sizeof e.text);
  printf("SQLite store, WAL, synchronous=FULL, 200-byte messages, dir %s,\n"
         "per SAVE: find + count + total + append; %u recipients, %u "
         "senders, prefill %u\n",
         dir, n_to, N_SENDERS, prefill);
  printf("%7s %7s %9s %7s %7s %7s %6s %6s %6s %6s %8s %7s\n", "per-txn", "msgs",
         "msgs/s", "p50 ms", "p99 ms", "commits", "find", "count", "total",
         "append", "commit", "us/msg");
  printf("%7s %7s %9s %7s %7s %7s %6s %6s %6s %6s %8s %7s\n", "", "", "", "",
         "", "", "us", "us", "us", "us", "us/txn", "");
  static const uint32_t batches[] = {1, 8, 64, 256};
  for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++)
    if (only == 0 || only == batches[i])
      if (run(dir, &e, n, only ? only : batches[i], prefill) != 0) return 1;
  if (only != 0 && only != 1 && only != 8 && only != 64 && only != 256)
    if (run(dir, &e, n, only, prefill) != 0) return 1;
  free(e.to);
  free(e.from);
  rmdir(dir);
  return 0;
}
