/*
 * udpc_cliapp.h - `udpchat -c`: drives the sans-IO client core with a UDP
 * socket, the monotonic clock, the terminal and the state directory.
 */
#ifndef UDPC_CLIAPP_H
#define UDPC_CLIAPP_H

#include <stdint.h>

#include "udpchat.h"

typedef struct {
  udpc_nick nick;          /* folded and checked */
  const char *server_host; /* IPv4/IPv6 literal or host name */
  uint16_t server_port;
  uint16_t client_port;  /* 0: any free port */
  const char *bind;      /* NULL: "::" dual-stack, else 0.0.0.0 */
  const char *state_dir; /* NULL: XDG default */
  int no_color;
  int timestamps;         /* UDPC_TS_* (udpc_term.h); UDPC_TS_AUTO default */
  const char *notify_cmd; /* --notify-cmd, or NULL */
  int no_history;         /* --no-history: no history file */
  int log_level;
  const char *log_file; /* NULL: stderr */
} udpc_cliapp_opts;

/* Runs until the core is done. Returns the process exit status:
 * 0 normal exit, 1 server not responding / registration refused / setup
 * error, 130 after a second SIGINT/SIGTERM. */
int udpc_cliapp_run(const udpc_cliapp_opts *o);

#endif /* UDPC_CLIAPP_H */
