/*
 * udpc_srvapp.h - `udpchat -s`: drives the sans-IO server core with a UDP
 * socket, the UTC wall clock and the poll loop.
 */
#ifndef UDPC_SRVAPP_H
#define UDPC_SRVAPP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint16_t port;                /* 0: any free port */
  const char *bind;             /* NULL: "::" dual-stack, else 0.0.0.0 */
  const char *const *operators; /* folded nicks */
  size_t n_operators;
  uint32_t max_clients;        /* 0: the core's default */
  uint32_t mail_per_recipient; /* 0: the core's default */
  uint32_t mail_total;         /* 0: the core's default */
  int log_level;
  const char *log_file;      /* NULL: stderr */
  int store;                 /* UDPC_SRVSTORE_* (udpc_srvstore.h); 0: default */
  const char *data_dir;      /* NULL: the default data directory */
  uint32_t mail_expiry_days; /* 0: stored mail never expires */
  /* Rate limits (udpc_server_config): datagrams per second and bucket
   * sizes; 0: the core's default, UINT32_MAX: no limit. */
  uint32_t source_rate, source_burst;
  uint32_t session_rate, session_burst;
} udpc_srvapp_opts;

/* Runs until SIGINT/SIGTERM. Returns the process exit status. */
int udpc_srvapp_run(const udpc_srvapp_opts *o);

#endif /* UDPC_SRVAPP_H */
