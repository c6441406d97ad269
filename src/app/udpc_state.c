/*
 * udpc_state.c - client credential storage (see udpc_state.h).
 */
#include "udpc_state.h"
#include "udpc_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "udpc_loop.h"

int udpc_state_dir(const char *override, char *out, size_t cap, char *err,
                   size_t err_cap) {
  int n;
  if (override != NULL) {
    if (override[0] == '\0') {
      udpc_fs_err(err, err_cap, "invalid state directory: empty path");
      return -1;
    }
    n = snprintf(out, cap, "%s", override);
  } else {
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    /* XDG: a relative XDG_STATE_HOME is invalid and must be ignored. */
    if (xdg != NULL && xdg[0] == '/') {
      n = snprintf(out, cap, "%s/udpchat", xdg);
    } else if (home != NULL && home[0] == '/') {
      n = snprintf(out, cap, "%s/.local/state/udpchat", home);
    } else {
      udpc_fs_err(err, err_cap,
                  "cannot find a state directory: set HOME, "
                  "XDG_STATE_HOME or use --state-dir DIR");
      return -1;
    }
  }
  if (n < 0 || (size_t)n >= cap) {
    udpc_fs_err(err, err_cap, "state directory path too long");
    return -1;
  }
  return 0;
}

static int read_cred(const char *path, uint8_t cred[UDPC_CRED_LEN], char *err,
                     size_t err_cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return 1;
    udpc_fs_err(err, err_cap, "cannot open credential file '%s': %s", path,
                strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    udpc_fs_err(err, err_cap, "cannot stat '%s': %s", path, strerror(errno));
    (void)close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    udpc_fs_err(err, err_cap, "credential file '%s' is not a regular file",
                path);
    (void)close(fd);
    return -1;
  }
  if ((st.st_mode & 0077) != 0) {
    udpc_fs_err(err, err_cap,
                "credential file '%s' is accessible by others "
                "(mode %03o); run: chmod 600 '%s'",
                path, (unsigned)(st.st_mode & 0777), path);
    (void)close(fd);
    return -1;
  }
  uint8_t buf[UDPC_CRED_LEN + 1];
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = read(fd, buf + got, sizeof buf - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      udpc_fs_err(err, err_cap, "cannot read '%s': %s", path, strerror(errno));
      (void)close(fd);
      return -1;
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  if (close(fd) != 0) {
    udpc_fs_err(err, err_cap, "cannot close '%s': %s", path, strerror(errno));
    return -1;
  }
  if (got != UDPC_CRED_LEN) {
    udpc_fs_err(err, err_cap,
                "credential file '%s' is corrupt (%zu bytes, "
                "expected %d); remove it only if this nick may be lost",
                path, got, UDPC_CRED_LEN);
    return -1;
  }
  memcpy(cred, buf, UDPC_CRED_LEN);
  return 0;
}

static int fsync_dir(const char *dir, char *err, size_t err_cap) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    udpc_fs_err(err, err_cap, "cannot open '%s': %s", dir, strerror(errno));
    return -1;
  }
  if (fsync(fd) != 0 && errno != EINVAL) {
    udpc_fs_err(err, err_cap, "fsync '%s': %s", dir, strerror(errno));
    (void)close(fd);
    return -1;
  }
  if (close(fd) != 0) {
    udpc_fs_err(err, err_cap, "close '%s': %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

static int create_cred(const char *dir, const char *path,
                       uint8_t cred[UDPC_CRED_LEN], char *err, size_t err_cap) {
  char tmp[UDPC_STATE_PATH_MAX];
  uint8_t rnd[8];
  if (udpc_loop_random(rnd, sizeof rnd, err, err_cap) != 0) return -1;
  int n = snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%02x%02x%02x%02x", path,
                   (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3]);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    udpc_fs_err(err, err_cap, "state path too long");
    return -1;
  }
  if (udpc_loop_random(cred, UDPC_CRED_LEN, err, err_cap) != 0) return -1;

  int fd =
      open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    udpc_fs_err(err, err_cap, "cannot create '%s': %s", tmp, strerror(errno));
    return -1;
  }
  size_t off = 0;
  while (off < UDPC_CRED_LEN) {
    ssize_t w = write(fd, cred + off, UDPC_CRED_LEN - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      udpc_fs_err(err, err_cap, "cannot write '%s': %s", tmp, strerror(errno));
      goto fail_fd;
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0) {
    udpc_fs_err(err, err_cap, "fsync '%s': %s", tmp, strerror(errno));
    goto fail_fd;
  }
  if (close(fd) != 0) {
    udpc_fs_err(err, err_cap, "close '%s': %s", tmp, strerror(errno));
    goto fail_tmp;
  }
  if (link(tmp, path) != 0) {
    int e = errno;
    if (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == ENOSYS) {
      /* No hard links here (some FUSE/FAT file systems): rename, which
       * may replace a file created in the last microseconds by a racing
       * client of the same nick; the lock (udpc_state_lock) then refuses
       * one of the two. */
      if (rename(tmp, path) == 0) return fsync_dir(dir, err, err_cap);
      e = errno;
    }
    (void)unlink(tmp);
    if (e == EEXIST) return 1; /* lost a race: use the winner's */
    udpc_fs_err(err, err_cap, "cannot create '%s': %s", path, strerror(e));
    return -1;
  }
  if (unlink(tmp) != 0) {
    udpc_fs_err(err, err_cap, "cannot remove '%s': %s", tmp, strerror(errno));
    return -1;
  }
  return fsync_dir(dir, err, err_cap);

fail_fd:
  (void)close(fd);
fail_tmp:
  (void)unlink(tmp);
  return -1;
}

int udpc_state_credential(const char *dir, const char *nick,
                          uint8_t cred[UDPC_CRED_LEN], int *created, char *err,
                          size_t err_cap) {
  char path[UDPC_STATE_PATH_MAX];
  size_t nick_len = strlen(nick);
  *created = 0;
  /* The nick becomes a file name: only [a-z0-9_-], never '/', '.', "..". */
  if (udpc_nick_check(nick, nick_len) != 0) {
    udpc_fs_err(err, err_cap, "invalid nick '%s' for a state file", nick);
    return -1;
  }
  if (udpc_fs_mkdirs(dir, "state directory", err, err_cap) != 0) return -1;
  int n = snprintf(path, sizeof path, "%s/%s.cred", dir, nick);
  if (n < 0 || (size_t)n >= sizeof path) {
    udpc_fs_err(err, err_cap, "state path too long");
    return -1;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    int rc = read_cred(path, cred, err, err_cap);
    if (rc <= 0) return rc; /* loaded, or a real error */
    rc = create_cred(dir, path, cred, err, err_cap);
    if (rc < 0) return -1;
    if (rc == 0) {
      *created = 1;
      return 0;
    }
    /* rc == 1: someone else created it first; read theirs. */
  }
  udpc_fs_err(err, err_cap, "cannot create credential file '%s'", path);
  return -1;
}

int udpc_state_lock(const char *dir, const char *nick, char *err,
                    size_t err_cap) {
  char path[UDPC_STATE_PATH_MAX];
  if (udpc_nick_check(nick, strlen(nick)) != 0) {
    udpc_fs_err(err, err_cap, "invalid nick '%s' for a state file", nick);
    return -1;
  }
  int n = snprintf(path, sizeof path, "%s/%s.cred", dir, nick);
  if (n < 0 || (size_t)n >= sizeof path) {
    udpc_fs_err(err, err_cap, "state path too long");
    return -1;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    udpc_fs_err(err, err_cap, "cannot open '%s': %s", path, strerror(errno));
    return -1;
  }
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) {
      udpc_fs_err(err, err_cap,
                  "nick %s is already in use by another udpchat client with "
                  "the state directory '%s'",
                  nick, dir);
    } else {
      udpc_fs_err(err, err_cap, "cannot lock '%s': %s", path, strerror(errno));
    }
    (void)close(fd);
    return -1;
  }
  return fd;
}
