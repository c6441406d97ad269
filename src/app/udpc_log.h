/*
 * udpc_log.h - leveled logging for the udpchat driver.
 *
 * One process-wide sink: stderr by default, or a file opened in append mode.
 * Every line: "<UTC ISO-8601 timestamp with ms> <LEVEL> <message>\n".
 * Levels follow udpc_io.log: 0 error, 1 warn, 2 info, 3 debug.
 */
#ifndef UDPC_LOG_H
#define UDPC_LOG_H

#include <stddef.h>

enum {
  UDPC_LOG_ERROR = 0,
  UDPC_LOG_WARN = 1,
  UDPC_LOG_INFO = 2,
  UDPC_LOG_DEBUG = 3,
};

/* Parse "error" | "warn" | "info" | "debug" (also "warning"). Returns the
 * level, or -1 if the name is unknown. */
int udpc_log_level_parse(const char *name);
const char *udpc_log_level_name(int level);

/* Select the threshold and the sink. path NULL means stderr. On failure
 * writes a message into err and returns -1 (the sink stays stderr). */
int udpc_log_open(int level, const char *path, char *err, size_t err_cap);
void udpc_log_close(void);
/* Re-open the log file (after rotation: SIGHUP). No-op for stderr. On
 * failure the old file stays in use and err says why. */
int udpc_log_reopen(char *err, size_t err_cap);
int udpc_log_enabled(int level);

void udpc_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Adapter with the udpc_io.log signature; ctx is ignored. */
void udpc_log_io(void *ctx, int level, const char *msg);

#endif /* UDPC_LOG_H */
