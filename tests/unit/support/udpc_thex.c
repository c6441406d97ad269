/*
 * udpc_thex.c - small value helpers shared by the unit tests (udpc_thex.h).
 */
#include "udpc_thex.h"

#include <stdlib.h>
#include <string.h>

#include "udpc_wire.h"

const int udpc_thex_all_types[UDPC_THEX_N_TYPES] = {
    UDPC_PT_REGISTER,    UDPC_PT_COOKIE,        UDPC_PT_REGISTER_RESULT,
    UDPC_PT_TABLE_REQ,   UDPC_PT_TABLE_PAGE,    UDPC_PT_TABLE_DELTA,
    UDPC_PT_HEARTBEAT,   UDPC_PT_HEARTBEAT_ACK, UDPC_PT_DEREG,
    UDPC_PT_DEREG_OTHER, UDPC_PT_DEREG_RESULT,  UDPC_PT_KICKED,
    UDPC_PT_SAVE,        UDPC_PT_SAVE_RESULT,   UDPC_PT_MAIL_REQ,
    UDPC_PT_MAIL_PAGE,   UDPC_PT_PROBE,         UDPC_PT_PROBE_ACK,
    UDPC_PT_CHAT,        UDPC_PT_CHAT_ACK,      UDPC_PT_ERROR,
};

udpc_nick udpc_thex_nick(const char *s) {
  udpc_nick n;
  memset(&n, 0, sizeof n);
  n.len = (uint8_t)strlen(s);
  memcpy(n.s, s, n.len);
  return n;
}

udpc_addr udpc_thex_addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                          uint16_t port) {
  udpc_addr x;
  memset(&x, 0, sizeof x);
  x.family = 4;
  x.ip[0] = a;
  x.ip[1] = b;
  x.ip[2] = c;
  x.ip[3] = d;
  x.port = port;
  return x;
}

int udpc_thex_hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int udpc_thex_append(uint8_t **data, size_t *len, const char *s) {
  size_t digits = 0;
  for (const char *q = s; *q; q++) {
    if (*q == ' ') continue;
    if (udpc_thex_hexval((unsigned char)*q) < 0) return -1;
    digits++;
  }
  if (digits % 2) return -1;
  uint8_t *nd = realloc(*data, *len + digits / 2 + 1);
  if (!nd) return -1;
  *data = nd;
  int hi = -1;
  for (const char *q = s; *q; q++) {
    if (*q == ' ') {
      if (hi >= 0) return -1; /* blank inside a pair */
      continue;
    }
    int d = udpc_thex_hexval((unsigned char)*q);
    if (hi < 0) {
      hi = d;
    } else {
      (*data)[(*len)++] = (uint8_t)(hi << 4 | d);
      hi = -1;
    }
  }
  return 0;
}
