/*
 * main.c - udpchat command line: `udpchat -s <port>` (server) or
 * `udpchat -c <nick> <server-ip> <server-port> <client-port>` (client), as
 * in the original UdpChat, plus long options. Bad arguments: one error line
 * "udpchat: ..." and the usage on stderr, exit status 2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udpc_args.h"
#include "udpchat.h"

#define MAIN_USAGE_EXIT 2

static const char usage_text[] =
    "Usage: udpchat -s <port> [server options]\n"
    "       udpchat -c <nick> <server-ip> <server-port> <client-port> "
    "[client options]\n"
    "       udpchat --help | --version\n"
    "\n"
    "Ports are 0 (any free port) or 1024-65535. <server-ip> is an IPv4 or\n"
    "IPv6 address or a host name. <nick> is 1-32 of a-z 0-9 _ - (upper case\n"
    "is folded to lower case).\n"
    "\n"
    "Server options:\n"
    "  --bind ADDR        listen on ADDR (default: :: dual-stack, IPv6 and\n"
    "                     IPv4; 0.0.0.0 when IPv6 is unavailable)\n"
    "  --operator NICK    NICK may deregA other users (repeatable)\n"
    "  --max-clients N    registered nicks at most (default 100000)\n"
    "  --mail-per-recipient N  stored messages per nick (default 1000;\n"
    "                     --mail-quota N is the same)\n"
    "  --mail-total N     stored messages in all (default 1000000)\n"
    "  --store KIND       sqlite (default: durable) or memory (nothing\n"
    "                     survives a restart)\n"
    "  --data-dir DIR     where the sqlite store lives (default:\n"
    "                     $XDG_STATE_HOME/udpchat/server or\n"
    "                     ~/.local/state/udpchat/server; created 0700)\n"
    "  --mail-expiry-days N  delete stored messages older than N days\n"
    "                     (default: never; sqlite store only)\n"
    "  --source-rate N   datagrams per second from one address that has no\n"
    "                     live session (REGISTER ...; default 50)\n"
    "  --source-burst N   bucket size of that limit (default 100)\n"
    "  --session-rate N   datagrams per second of one live session\n"
    "                     (default 1000)\n"
    "  --session-burst N  bucket size of that limit (default 2000)\n"
    "                     N: 1-4294967295 or unlimited; over the limit\n"
    "                     datagrams are dropped unanswered and counted\n"
    "  --log-level LEVEL  error, warn, info or debug (default: info)\n"
    "  --log-file PATH    append the log to PATH instead of stderr\n"
    "                     (SIGHUP reopens it, for log rotation)\n"
    "\n"
    "Client options:\n"
    "  --state-dir DIR    where this nick's credential is kept (default:\n"
    "                     $XDG_STATE_HOME/udpchat or ~/.local/state/udpchat)\n"
    "  --bind ADDR        local address of the client socket (default: ::\n"
    "                     dual-stack; 0.0.0.0 when IPv6 is unavailable)\n"
    "  --no-color         no colors or bell on a terminal (or set NO_COLOR)\n"
    "  --timestamps WHEN  off, local or utc: time before each line (default:\n"
    "                     local on a terminal, off otherwise)\n"
    "  --notify-cmd CMD   run CMD SENDER TEXT for each incoming message\n"
    "                     (CMD split at spaces, no shell), instead of the "
    "bell\n"
    "  --no-history       keep no command history file in the state directory\n"
    "  --log-level LEVEL  error, warn, info or debug (default: error)\n"
    "  --log-file PATH    append the log to PATH instead of stderr\n"
    "\n"
    "Client commands: send <nick> <message>, list, reg <nick>, dereg <nick>,\n"
    "deregA <nick>, help [command], exit (also Ctrl-C or end of input).\n"
    "\n"
    "Exit status: 0 normal exit; 1 server not responding, registration\n"
    "refused or a runtime error; 2 invalid command line; 130 when a second\n"
    "Ctrl-C ends a client that is still waiting for the server.\n";

static void usage(FILE *f) { fputs(usage_text, f); }

/* The first three lines of usage_text: what a usage error shows. */
static void short_usage(FILE *f) {
  const char *p = usage_text;
  for (int lines = 0; lines < 3 && *p != '\0'; p++) {
    if (*p == '\n') lines++;
  }
  fwrite(usage_text, 1, (size_t)(p - usage_text), f);
  fputs("Run 'udpchat --help' for the options.\n", f);
}

int main(int argc, char **argv) {
  static udpc_args args; /* the operator table is large: not on the stack */
  char err[512];
  switch (udpc_args_parse(&args, argc, argv, err, sizeof err)) {
    case UDPC_ARGS_HELP: usage(stdout); return 0;
    case UDPC_ARGS_VERSION:
      printf("udpchat %s (protocol version %d)\n", UDPC_VERSION_STRING,
             UDPC_PROTOCOL_VERSION);
      return 0;
    case UDPC_ARGS_SERVER: return udpc_srvapp_run(&args.srv);
    case UDPC_ARGS_CLIENT: return udpc_cliapp_run(&args.cli);
    default:
      fprintf(stderr, "udpchat: %s\n", err);
      short_usage(stderr);
      return MAIN_USAGE_EXIT;
  }
}
