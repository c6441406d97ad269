/*
 * fuzz_cmd.c - the client's typed-command parser (udpc_cmd_parse) and the
 * display formatter (udpc_event_format).
 *
 * The program's command line (argv) has its own target: fuzz_args.c.
 *
 * Every input is used twice:
 *  1. as a typed line (exact-size heap copy, no NUL: the parser must honour
 *     len), with an error buffer whose size comes from the last byte;
 *     checks: result is OK or a udpc_err, err is NUL-terminated inside its
 *     buffer, a parsed command has a known type, a valid folded nick where
 *     one is required, and an argument inside the line;
 *  2. as a recipe for a udpc_event (any type, status, nick, text, entry,
 *     width, buffer size): udpc_event_format must stay inside an
 *     exact-size buffer and NUL-terminate what it returns.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "udpchat.h"

static void check_cmd(const uint8_t *data, size_t size) {
  size_t err_cap = size > 0 ? data[size - 1] % 130u : 64u;
  /* calloc: with size 0 the parser reads nothing, but gcc -O2 cannot tell. */
  char *line = calloc(size > 0 ? size : 1, 1);
  char *err = malloc(err_cap > 0 ? err_cap : 1);
  FZ_CHECK(line != NULL && err != NULL);
  if (size > 0) memcpy(line, data, size);
  udpc_cmd cmd;
  memset(&cmd, 0xAB, sizeof cmd);
  int rc = udpc_cmd_parse(&cmd, line, size, err, err_cap);
  if (err_cap > 0) FZ_CHECK(memchr(err, '\0', err_cap) != NULL);
  if (rc != UDPC_OK) {
    FZ_CHECK(rc < 0 && rc >= UDPC_ERR_NOT_FOUND);
  } else {
    FZ_CHECK(cmd.type >= UDPC_CMD_SEND && cmd.type <= UDPC_CMD_HELP);
    if (cmd.type == UDPC_CMD_SEND || cmd.type == UDPC_CMD_REG ||
        cmd.type == UDPC_CMD_DEREG || cmd.type == UDPC_CMD_DEREGA) {
      FZ_CHECK(cmd.nick.len >= 1 && cmd.nick.len <= UDPC_NICK_MAX);
      FZ_CHECK(cmd.nick.s[cmd.nick.len] == '\0');
      FZ_CHECK(udpc_nick_check(cmd.nick.s, cmd.nick.len) == UDPC_OK);
    }
    if (cmd.type == UDPC_CMD_SEND) {
      FZ_CHECK(cmd.arg != NULL && cmd.arg_len >= 1);
      FZ_CHECK(cmd.arg_len <= UDPC_TEXT_MAX);
      FZ_CHECK(udpc_text_check((const uint8_t *)cmd.arg, cmd.arg_len) ==
               UDPC_OK);
    }
    if (cmd.arg != NULL && cmd.arg_len > 0) {
      FZ_CHECK(cmd.arg >= line && cmd.arg_len <= size &&
               cmd.arg <= line + (size - cmd.arg_len));
    }
  }
  free(line);
  free(err);
}

static void check_event(const uint8_t *data, size_t size) {
  fz_rd r = fz_rd_make(data, size);
  udpc_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = (int)(fz_u8(&r) % 21u); /* 0 and 19..20: unknown types */
  ev.status = (int)(int8_t)fz_u8(&r);
  fz_raw_nick(&r, &ev.nick);
  ev.timestamp_ms = fz_u64(&r);
  fz_raw_nick(&r, &ev.entry.nick);
  ev.entry.status = fz_u8(&r);
  fz_addr(&r, &ev.entry.addr);
  if (fz_u8(&r) & 1u) ev.entry.addr.family = fz_u8(&r);
  uint16_t w = fz_u16(&r);
  ev.width = (w & 0x8000u) ? (int)fz_u32(&r) : (int)(w % 80u);
  size_t cap = fz_u16(&r) % 4096u;
  size_t tl = fz_u16(&r) % 1500u;
  const uint8_t *t = fz_take(&r, &tl);
  uint8_t *text = malloc(tl > 0 ? tl : 1);
  char *buf = malloc(cap > 0 ? cap : 1);
  FZ_CHECK(text != NULL && buf != NULL);
  if (tl > 0) memcpy(text, t, tl);
  memset(buf, 'X', cap > 0 ? cap : 1);
  ev.text.p = tl > 0 ? text : NULL;
  ev.text.len = (uint16_t)tl;
  int rc = udpc_event_format(&ev, buf, cap);
  if (rc >= 0) {
    FZ_CHECK((size_t)rc < cap && buf[rc] == '\0');
  } else {
    FZ_CHECK(rc == UDPC_ERR_TOO_BIG || rc == UDPC_ERR_ARG);
    if (rc == UDPC_ERR_TOO_BIG && cap > 0)
      FZ_CHECK(memchr(buf, '\0', cap) != NULL);
  }
  free(text);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_cmd(data, size);
  check_event(data, size);
  return 0;
}
