/*
 * udpc_notify.h - `--notify-cmd CMD`: run a desktop notifier for every
 * incoming message (chat or offline-delivered mail).
 *
 * CMD is split at spaces and tabs into a program and its arguments (no
 * shell, no quoting, no expansion); the program is looked up in PATH and
 * run as
 *     PROGRAM [ARGS...] SENDER TEXT
 * SENDER and TEXT are two separate argv entries, never parsed by a shell;
 * TEXT has control characters replaced by '?'. If TEXT (or SENDER) starts
 * with '-', a "--" argument is put before SENDER so it cannot be read as an
 * option. The notifier runs detached (double fork: no zombie, not waited
 * for), with stdin, stdout and stderr on /dev/null and default signal
 * dispositions. At most 5 notifiers start in a burst, then one a second;
 * messages beyond that get none.
 * Example: --notify-cmd 'notify-send -a udpchat'.
 */
#ifndef UDPC_NOTIFY_H
#define UDPC_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#define UDPC_NOTIFY_ARGS_MAX 16

typedef struct {
  char *words;                          /* CMD, split in place */
  char *argv[UDPC_NOTIFY_ARGS_MAX + 4]; /* words + "--" + sender + text */
  size_t n_words;
  double tokens;    /* rate limit bucket */
  uint64_t last_ms; /* monotonic ms of the last refill */
} udpc_notify;

/* Split cmd. Returns 0, or -1 with err (empty, too many words). */
int udpc_notify_init(udpc_notify *n, const char *cmd, char *err,
                     size_t err_cap);
/* Start the notifier for one message (rate limited). */
void udpc_notify_run(udpc_notify *n, const char *sender, const char *text,
                     size_t text_len);
void udpc_notify_free(udpc_notify *n);

#endif /* UDPC_NOTIFY_H */
