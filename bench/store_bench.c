/*
 * store_bench.c - durable save-messages per second of the SQLite store
 * (src/store) with group commit: B appends per transaction for B = 1 (one
 * fsync per message), 8 and 64, each on a fresh database in the same run.
 * Also the time from a message's append to the commit that makes it durable
 * (what the server adds to request-to-ACK), p50 and p99.
 *
 *   store_bench [messages-per-mode [dir]]     (default 2000, ./store-bench)
 *
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

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static udpc_nick nk(const char *s) {
  udpc_nick n;
  memset(&n, 0, sizeof n);
  n.len = (uint8_t)strlen(s);
  memcpy(n.s, s, n.len);
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

static int run(const char *dir, uint32_t n, uint32_t batch) {
  char path[4200], err[512];
  snprintf(path, sizeof path, "%s/bench-%u.db", dir, batch);
  rm_db(path);
  udpc_store *st = udpc_store_sqlite_open(path, err, sizeof err);
  if (st == NULL) {
    fprintf(stderr, "store_bench: %s\n", err);
    return -1;
  }
  uint64_t *lat = malloc(n * sizeof *lat);
  uint64_t *start = malloc(batch * sizeof *start);
  if (lat == NULL || start == NULL) return -1;
  udpc_nick to = nk("recipient"), from = nk("sender");
  uint8_t text[200];
  memset(text, 'm', sizeof text);
  uint64_t t0 = now_ns();
  uint32_t done = 0;
  while (done < n) {
    uint32_t k = n - done < batch ? n - done : batch;
    for (uint32_t i = 0; i < k; i++) {
      start[i] = now_ns();
      uint64_t seq;
      if (udpc_store_mail_append(st, &to, &from, done + i, 0, text, sizeof text,
                                 &seq) != UDPC_OK) {
        fprintf(stderr, "store_bench: append failed\n");
        return -1;
      }
    }
    if (udpc_store_commit(st) != UDPC_OK) {
      fprintf(stderr, "store_bench: commit failed: %s\n",
              udpc_store_sqlite_last_error(st));
      return -1;
    }
    uint64_t t = now_ns();
    for (uint32_t i = 0; i < k; i++) lat[done + i] = t - start[i];
    done += k;
    /* keep the mailbox small, as delivery does (deletes are batched too) */
    if (done % 1024 == 0) {
      uint32_t del;
      udpc_store_mail_delete_upto(st, &to, done, &del);
      udpc_store_commit(st);
    }
  }
  uint64_t el = now_ns() - t0;
  qsort(lat, n, sizeof *lat, cmp_u64);
  printf("%9u %8u %12.0f %12.3f %12.3f %12u\n", batch, n,
         (double)n / ((double)el / 1e9), (double)lat[n / 2] / 1e6,
         (double)lat[(size_t)((double)n * 0.99)] / 1e6,
         (unsigned)((n + batch - 1) / batch));
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
  if (n == 0) n = 2000;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "store_bench: cannot create %s: %s\n", dir,
            strerror(errno));
    return 1;
  }
  printf("SQLite store, WAL, synchronous=FULL, 200-byte messages, dir %s\n",
         dir);
  printf("%9s %8s %12s %12s %12s %12s\n", "per-txn", "msgs", "msgs/s", "p50 ms",
         "p99 ms", "commits");
  static const uint32_t batches[] = {1, 8, 64};
  for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++)
    if (run(dir, n, batches[i]) != 0) return 1;
  rmdir(dir);
  return 0;
}
