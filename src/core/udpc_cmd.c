/*
 * udpc_cmd.c - the typed-command parser of the client (udpc_cmd_parse).
 *
 * Grammar (decisions for PROTOCOL.md, "Client commands"):
 *   line    := ws* word [ws+ args] ws*        ws = ' ' or '\t'
 *   send    := "send" ws+ nick SEP message     SEP = exactly one ws char;
 *              the message is every byte after SEP up to the end of the line,
 *              leading/trailing/multiple spaces kept exactly.
 *   list | exit              no argument
 *   reg | dereg | deregA     exactly one nick argument
 *   help [command]           optional command word
 * - Command words are case-sensitive and must be spelled exactly as listed
 *   ("send", "list", "reg", "dereg", "deregA", "exit", "help"): "DEREG",
 *   "List" or "derega" are unknown commands. The original program only knew
 *   these exact spellings; being strict keeps "deregA" unambiguous.
 * - Nicks are case-folded (A-Z -> a-z) with udpc_nick_from_input, so
 *   "reg Alice" means the wire nick "alice".
 * - For single-nick commands the whole trimmed remainder is the nick, so
 *   "reg A b" is "[Invalid nick 'A b': ...]" (not "too many arguments").
 * - An empty or blank line: UDPC_ERR_ARG with an empty err (show the prompt
 *   again). Any other problem: a negative udpc_err and a bracketed message
 *   naming the usage. Nothing is truncated silently: an over-long message is
 *   refused with its length, and user text echoed in an error is cut at 40
 *   bytes with a visible "..." (control bytes echoed as '?').
 */
#include <stdio.h>
#include <string.h>

#include "udpchat.h"

#define CMD_ECHO_MAX 40

static const char k_commands[] = "send, list, reg, dereg, deregA, exit, help";

static int is_ws(char ch) { return ch == ' ' || ch == '\t'; }

/* Writes a bracketed message into err (if any room) and returns rc. */
static int fail(int rc, char *err, size_t cap, const char *msg) {
  if (err != NULL && cap > 0) {
    (void)snprintf(err, cap, "%s", msg);
  }
  return rc;
}

/* Copy user input for echoing in an error: at most CMD_ECHO_MAX bytes, cut
 * on a UTF-8 boundary, "..." appended when cut, controls shown as '?'. */
static void echo_input(char *dst, size_t cap, const char *s, size_t len) {
  size_t n = len;
  size_t o = 0;
  int cut = 0;
  if (cap == 0) {
    return;
  }
  if (n > CMD_ECHO_MAX) {
    n = CMD_ECHO_MAX;
    /* back off over UTF-8 continuation bytes */
    while (n > 0 && (((unsigned char)s[n]) & 0xC0u) == 0x80u) {
      n--;
    }
    cut = 1;
  }
  for (size_t i = 0; i < n && o + 1 < cap; i++) {
    unsigned char ch = (unsigned char)s[i];
    dst[o++] = (ch < 0x20u || ch == 0x7Fu) ? '?' : (char)ch;
  }
  if (cut) {
    for (int k = 0; k < 3 && o + 1 < cap; k++) {
      dst[o++] = '.';
    }
  }
  dst[o] = '\0';
}

typedef struct {
  const char *word;
  int type;
  const char *usage;
} cmd_def;

static const cmd_def k_defs[] = {
    {"send", UDPC_CMD_SEND, "[Usage: send <nick> <message>]"},
    {"list", UDPC_CMD_LIST, "[Usage: list]"},
    {"reg", UDPC_CMD_REG, "[Usage: reg <nick>]"},
    {"dereg", UDPC_CMD_DEREG, "[Usage: dereg <nick>]"},
    {"deregA", UDPC_CMD_DEREGA, "[Usage: deregA <nick>]"},
    {"exit", UDPC_CMD_EXIT, "[Usage: exit]"},
    {"help", UDPC_CMD_HELP, "[Usage: help [command]]"},
};

static const cmd_def *find_def(const char *w, size_t n) {
  for (size_t i = 0; i < sizeof k_defs / sizeof k_defs[0]; i++) {
    if (strlen(k_defs[i].word) == n && memcmp(k_defs[i].word, w, n) == 0) {
      return &k_defs[i];
    }
  }
  return NULL;
}

static int unknown_word(const char *w, size_t n, char *err, size_t cap) {
  char echo[CMD_ECHO_MAX * 2];
  char msg[256];
  echo_input(echo, sizeof echo, w, n);
  (void)snprintf(msg, sizeof msg, "[Unknown command '%s'. Commands: %s]", echo,
                 k_commands);
  return fail(UDPC_ERR_ARG, err, cap, msg);
}

static int parse_nick(udpc_nick *out, const char *s, size_t n, char *err,
                      size_t cap) {
  char echo[CMD_ECHO_MAX * 2];
  char msg[256];
  if (udpc_nick_from_input(out, s, n) == UDPC_OK) {
    return UDPC_OK;
  }
  echo_input(echo, sizeof echo, s, n);
  (void)snprintf(msg, sizeof msg,
                 "[Invalid nick '%s': use 1-32 of a-z 0-9 _ -]", echo);
  return fail(UDPC_ERR_NICK, err, cap, msg);
}

static int check_message(const char *s, size_t n, char *err, size_t cap) {
  char msg[128];
  int rc;
  if (n > UDPC_TEXT_MAX) {
    (void)snprintf(msg, sizeof msg,
                   "[Message too long: %zu bytes, the limit is %d bytes.]", n,
                   UDPC_TEXT_MAX);
    return fail(UDPC_ERR_LENGTH, err, cap, msg);
  }
  rc = udpc_text_check((const uint8_t *)s, n);
  if (rc == UDPC_OK) {
    return UDPC_OK;
  }
  if (rc == UDPC_ERR_UTF8) {
    return fail(rc, err, cap, "[Message is not valid UTF-8 text.]");
  }
  if (rc == UDPC_ERR_CONTROL) {
    return fail(rc, err, cap, "[Message holds a control character.]");
  }
  /* UDPC_ERR_LENGTH for an empty message, or anything unexpected */
  return fail(UDPC_ERR_ARG, err, cap, "[Usage: send <nick> <message>]");
}

int udpc_cmd_parse(udpc_cmd *out, const char *line, size_t len, char *err,
                   size_t err_cap) {
  size_t i = 0;
  size_t end = len;
  size_t w0, w1, a0;
  const cmd_def *def;

  if (err != NULL && err_cap > 0) {
    err[0] = '\0';
  }
  if (out == NULL || (line == NULL && len > 0)) {
    return UDPC_ERR_ARG;
  }
  memset(out, 0, sizeof *out);

  while (i < len && is_ws(line[i])) {
    i++;
  }
  if (i == len) {
    return UDPC_ERR_ARG; /* blank line: no message, just a new prompt */
  }
  w0 = i;
  while (i < len && !is_ws(line[i])) {
    i++;
  }
  w1 = i;
  def = find_def(line + w0, w1 - w0);
  if (def == NULL) {
    return unknown_word(line + w0, w1 - w0, err, err_cap);
  }
  out->type = def->type;

  /* Start of the arguments: after the run of whitespace following the word. */
  a0 = w1;
  while (a0 < len && is_ws(line[a0])) {
    a0++;
  }

  if (def->type == UDPC_CMD_SEND) {
    size_t n0 = a0, n1;
    int rc;
    n1 = n0;
    while (n1 < len && !is_ws(line[n1])) {
      n1++;
    }
    if (n1 == n0 || n1 >= len || n1 + 1 >= len) {
      /* no nick, or no separator, or nothing after the separator */
      return fail(UDPC_ERR_ARG, err, err_cap, def->usage);
    }
    rc = parse_nick(&out->nick, line + n0, n1 - n0, err, err_cap);
    if (rc != UDPC_OK) {
      return rc;
    }
    out->arg = line + n1 + 1; /* exactly one separator consumed */
    out->arg_len = len - (n1 + 1);
    rc = check_message(out->arg, out->arg_len, err, err_cap);
    if (rc != UDPC_OK) {
      return rc;
    }
    return UDPC_OK;
  }

  /* Other commands: trailing whitespace is ignored. */
  while (end > a0 && is_ws(line[end - 1])) {
    end--;
  }
  switch (def->type) {
    case UDPC_CMD_LIST:
    case UDPC_CMD_EXIT:
      if (end > a0) {
        return fail(UDPC_ERR_ARG, err, err_cap, def->usage);
      }
      return UDPC_OK;
    case UDPC_CMD_REG:
    case UDPC_CMD_DEREG:
    case UDPC_CMD_DEREGA:
      if (end == a0) {
        return fail(UDPC_ERR_ARG, err, err_cap, def->usage);
      }
      return parse_nick(&out->nick, line + a0, end - a0, err, err_cap);
    case UDPC_CMD_HELP:
      if (end == a0) {
        return UDPC_OK;
      }
      for (size_t k = a0; k < end; k++) {
        if (is_ws(line[k])) {
          return fail(UDPC_ERR_ARG, err, err_cap, def->usage);
        }
      }
      if (find_def(line + a0, end - a0) == NULL) {
        return unknown_word(line + a0, end - a0, err, err_cap);
      }
      out->arg = line + a0;
      out->arg_len = end - a0;
      return UDPC_OK;
    default: return fail(UDPC_ERR_ARG, err, err_cap, def->usage);
  }
}
