/*
 * udpc_srvstore.c - opening the server's store (see udpc_srvstore.h).
 */
#include "udpc_srvstore.h"
#include "udpc_fs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "udpc_log.h"
#include "udpc_store_sqlite.h"

#define SRVSTORE_PATH_MAX 4096

int udpc_srvstore_parse(const char *name) {
  if (name == NULL) return -1;
  if (strcmp(name, "sqlite") == 0) return UDPC_SRVSTORE_SQLITE;
  if (strcmp(name, "memory") == 0) return UDPC_SRVSTORE_MEMORY;
  return -1;
}

int udpc_srvstore_data_dir(const char *override, char *out, size_t cap,
                           char *err, size_t err_cap) {
  int n;
  const char *xdg = getenv("XDG_STATE_HOME");
  const char *home = getenv("HOME");
  if (override != NULL) {
    n = snprintf(out, cap, "%s", override);
  } else if (xdg != NULL && xdg[0] == '/') { /* a relative one is invalid */
    n = snprintf(out, cap, "%s/udpchat/server", xdg);
  } else if (home != NULL && home[0] == '/') {
    n = snprintf(out, cap, "%s/.local/state/udpchat/server", home);
  } else {
    n = snprintf(out, cap, "udpchat-server-data");
  }
  if (n <= 0 || (size_t)n >= cap) {
    udpc_fs_err(err, err_cap, "data directory path empty or too long");
    return -1;
  }
  return 0;
}

static void store_log(void *ctx, const char *line) {
  (void)ctx;
  udpc_log(UDPC_LOG_ERROR, "%s", line);
}

udpc_store *udpc_srvstore_open(int kind, const char *data_dir, int *kind_out,
                               char *path_out, size_t path_cap, char *err,
                               size_t err_cap) {
  if (path_out != NULL && path_cap > 0) path_out[0] = '\0';
  if (kind == UDPC_SRVSTORE_DEFAULT) kind = UDPC_SRVSTORE_SQLITE;
  if (kind_out != NULL) *kind_out = kind;
  if (kind == UDPC_SRVSTORE_MEMORY) {
    udpc_store *st = udpc_store_mem_new();
    if (st == NULL)
      udpc_fs_err(err, err_cap,
                  "cannot create the store: out of "
                  "memory");
    return st;
  }
  char dir[SRVSTORE_PATH_MAX], path[SRVSTORE_PATH_MAX + 16];
  if (udpc_srvstore_data_dir(data_dir, dir, sizeof dir, err, err_cap) != 0)
    return NULL;
  if (udpc_fs_mkdirs(dir, "data directory", err, err_cap) != 0) return NULL;
  snprintf(path, sizeof path, "%s/server.db", dir);
  char why[1024];
  udpc_store *st = udpc_store_sqlite_open(path, why, sizeof why);
  if (st == NULL) {
    udpc_fs_err(err, err_cap, "cannot open the message store: %s", why);
    return NULL;
  }
  udpc_store_sqlite_set_log(st, store_log, NULL);
  if (path_out != NULL) snprintf(path_out, path_cap, "%s", path);
  return st;
}
