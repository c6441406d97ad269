/*
 * udpc_log.c - leveled logging with UTC timestamps (see udpc_log.h).
 */
#include "udpc_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = UDPC_LOG_INFO;
static int log_fd = STDERR_FILENO;
static const char *log_path; /* borrowed from argv; NULL for stderr */

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int udpc_log_level_parse(const char *name) {
  if (name == NULL) return -1;
  if (strcmp(name, "error") == 0) return UDPC_LOG_ERROR;
  if (strcmp(name, "warn") == 0 || strcmp(name, "warning") == 0)
    return UDPC_LOG_WARN;
  if (strcmp(name, "info") == 0) return UDPC_LOG_INFO;
  if (strcmp(name, "debug") == 0) return UDPC_LOG_DEBUG;
  return -1;
}

const char *udpc_log_level_name(int level) {
  if (level < 0) level = 0;
  if (level > UDPC_LOG_DEBUG) level = UDPC_LOG_DEBUG;
  return level_names[level];
}

static int open_path(const char *path, char *err, size_t err_cap) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0 && err_cap > 0)
    snprintf(err, err_cap, "cannot open log file '%s': %s", path,
             strerror(errno));
  return fd;
}

int udpc_log_open(int level, const char *path, char *err, size_t err_cap) {
  log_level = level;
  if (path == NULL) return 0;
  int fd = open_path(path, err, err_cap);
  if (fd < 0) return -1;
  udpc_log_close();
  log_fd = fd;
  log_path = path;
  return 0;
}

int udpc_log_reopen(char *err, size_t err_cap) {
  if (log_path == NULL) return 0;
  int fd = open_path(log_path, err, err_cap);
  if (fd < 0) return -1; /* keep writing to the old file */
  if (close(log_fd) != 0) {
    /* the old file is gone either way */
  }
  log_fd = fd;
  return 0;
}

void udpc_log_close(void) {
  if (log_fd != STDERR_FILENO) {
    if (close(log_fd) != 0) {
      /* Nothing sensible to do: the sink is gone either way. */
    }
    log_fd = STDERR_FILENO;
  }
  log_path = NULL;
}

int udpc_log_enabled(int level) { return level <= log_level; }

/* Write all of buf; give up silently on errors (logging must never kill the
 * process, and there is nowhere left to report the failure). */
static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    buf += n;
    len -= (size_t)n;
  }
}

static void vlog(int level, const char *fmt, va_list ap) {
  char line[2048];
  struct timespec ts;
  struct tm tm;
  size_t off = 0;

  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
    ts.tv_sec = 0;
    ts.tv_nsec = 0;
  }
  if (gmtime_r(&ts.tv_sec, &tm) == NULL) memset(&tm, 0, sizeof tm);
  off = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  int n = snprintf(line + off, sizeof line - off, ".%03ldZ %-5s ",
                   (long)(ts.tv_nsec / 1000000), udpc_log_level_name(level));
  if (n > 0) off += (size_t)n;
  if (off >= sizeof line) off = sizeof line - 1;
  n = vsnprintf(line + off, sizeof line - off, fmt, ap);
  if (n > 0) off += (size_t)n;
  if (off > sizeof line - 2) off = sizeof line - 2; /* truncated message */
  /* Neutralise control characters: a log line is one line. */
  for (size_t i = 0; i < off; i++) {
    unsigned char c = (unsigned char)line[i];
    if (c < 0x20 || c == 0x7f) line[i] = '?';
  }
  line[off++] = '\n';
  write_all(log_fd, line, off);
}

void udpc_log(int level, const char *fmt, ...) {
  if (!udpc_log_enabled(level)) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}

void udpc_log_io(void *ctx, int level, const char *msg) {
  (void)ctx;
  udpc_log(level, "%s", msg != NULL ? msg : "(null)");
}
