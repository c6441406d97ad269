/*
 * fuzz_args.c - the udpchat command line (udpc_args_parse, src/app).
 *
 * The input is split at NUL bytes into up to 32 arguments after argv[0]
 * ("udpchat"). Checks: the result is one of UDPC_ARGS_*; an error leaves a
 * non-empty, NUL-terminated reason; a server result has a port of 0 or
 * 1024-65535 and valid folded operator nicks; a client result has a valid
 * folded nick, a non-empty server host, a server port of 1024-65535 and a
 * client port of 0 or 1024-65535; parsing is deterministic (the same argv
 * gives the same result and reason).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "udpc_args.h"
#include "udpchat.h"

#define FZ_ARGS_MAX 32

static int port_ok(uint16_t p, int zero_ok) {
  return (zero_ok && p == 0) || p >= 1024;
}

static void check_args(int argc, char **argv) {
  static udpc_args a, b;
  char err[256], err2[256];
  memset(err, 0x5a, sizeof err);
  int rc = udpc_args_parse(&a, argc, argv, err, sizeof err);
  FZ_CHECK(rc >= UDPC_ARGS_ERROR && rc <= UDPC_ARGS_CLIENT);
  int rc2 = udpc_args_parse(&b, argc, argv, err2, sizeof err2);
  FZ_CHECK(rc2 == rc);
  switch (rc) {
    case UDPC_ARGS_ERROR:
      FZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
      FZ_CHECK(strcmp(err, err2) == 0);
      break;
    case UDPC_ARGS_SERVER:
      FZ_CHECK(port_ok(a.srv.port, 1));
      FZ_CHECK(a.srv.n_operators <= UDPC_ARGS_MAX_OPERATORS);
      for (size_t i = 0; i < a.srv.n_operators; i++)
        FZ_CHECK(udpc_nick_check(a.srv.operators[i],
                                 strlen(a.srv.operators[i])) == 0);
      break;
    case UDPC_ARGS_CLIENT:
      FZ_CHECK(udpc_nick_check(a.cli.nick.s, a.cli.nick.len) == 0);
      FZ_CHECK(a.cli.server_host != NULL && a.cli.server_host[0] != '\0');
      FZ_CHECK(port_ok(a.cli.server_port, 0));
      FZ_CHECK(port_ok(a.cli.client_port, 1));
      break;
    default: break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 1);
  FZ_CHECK(buf != NULL);
  if (size > 0) memcpy(buf, data, size);
  buf[size] = '\0';
  char *argv[FZ_ARGS_MAX + 2];
  int argc = 0;
  argv[argc++] = (char *)"udpchat";
  size_t start = 0;
  for (size_t i = 0; i <= size && argc <= FZ_ARGS_MAX; i++) {
    if (i == size || buf[i] == '\0') {
      if (i > start || i < size) argv[argc++] = buf + start;
      start = i + 1;
    }
  }
  argv[argc] = NULL;
  check_args(argc, argv);
  free(buf);
  return 0;
}
