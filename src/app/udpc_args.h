/*
 * udpc_args.h - the udpchat command line, parsed without side effects (so
 * that it can be unit-tested and fuzzed): `-s <port>` (server) or
 * `-c <nick> <server-ip> <server-port> <client-port>` (client), as in the
 * original UdpChat, plus long options (see main.c's usage text).
 */
#ifndef UDPC_ARGS_H
#define UDPC_ARGS_H

#include <stddef.h>

#include "udpc_cliapp.h"
#include "udpc_srvapp.h"
#include "udpchat.h"

#define UDPC_ARGS_MAX_OPERATORS 64

enum {
  UDPC_ARGS_ERROR = -1,  /* usage error: the reason is in err */
  UDPC_ARGS_HELP = 0,    /* --help or -h anywhere (before "--") */
  UDPC_ARGS_VERSION = 1, /* --version anywhere (before "--") */
  UDPC_ARGS_SERVER = 2,  /* out->srv is filled */
  UDPC_ARGS_CLIENT = 3,  /* out->cli is filled */
};

typedef struct {
  udpc_srvapp_opts srv;
  udpc_cliapp_opts cli;
  udpc_nick op_nicks[UDPC_ARGS_MAX_OPERATORS]; /* srv.operators points here */
  const char *ops[UDPC_ARGS_MAX_OPERATORS];
} udpc_args;

/* Parses argv (argv[0] is the program). Returns one of the UDPC_ARGS_*
 * values; on UDPC_ARGS_ERROR a one-line reason (without "udpchat: ") is in
 * err. String options in *out point into argv. Reads nothing else. */
int udpc_args_parse(udpc_args *out, int argc, char **argv, char *err,
                    size_t err_cap);

#endif /* UDPC_ARGS_H */
