/* udpc_fs.c - see udpc_fs.h. */
#include "udpc_fs.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void udpc_fs_err(char *err, size_t cap, const char *fmt, ...) {
  if (err == NULL || cap == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

int udpc_fs_mkdirs(const char *dir, const char *what, char *err, size_t cap) {
  char path[PATH_MAX];
  size_t len = strlen(dir);
  if (len == 0 || len >= sizeof path) {
    udpc_fs_err(err, cap, "%s path empty or too long", what);
    return -1;
  }
  memcpy(path, dir, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (path[i] != '/' && path[i] != '\0') continue;
    char saved = path[i];
    path[i] = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
      udpc_fs_err(err, cap, "cannot create %s '%s': %s", what, path,
                  strerror(errno));
      return -1;
    }
    path[i] = saved;
  }
  struct stat st;
  if (stat(dir, &st) != 0) {
    udpc_fs_err(err, cap, "cannot access %s '%s': %s", what, dir,
                strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    udpc_fs_err(err, cap, "%s '%s' is not a directory", what, dir);
    return -1;
  }
  return 0;
}
