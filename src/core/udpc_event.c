/*
 * udpc_event.c - display lines of client events (udpc_event_format).
 *
 * The strings are PROTOCOL.md P11 / P5-P8 exactly; the assignment's ones are
 * fixed. The core stays pure: no libc time functions (UTC timestamps use the
 * civil-from-days algorithm) and no inet_ntop (own dotted-quad and RFC 5952
 * formatter). Text from the network is copied as is: the client core only
 * emits text the decoder validated (UTF-8, no controls); terminal sanitizing
 * is the driver's job.
 *
 * `list` layout (decision): columns separated by two spaces; the nick column
 * is padded to ev->width (the client passes max(4, longest nick)); the IP
 * column is padded to 15 (the longest dotted quad; a longer IPv6 address
 * simply extends its row); the port column to 5. The header row is a
 * LIST_ROW whose entry nick has length 0:
 *   "nick   ip               port   status"
 *   "alice  127.0.0.1        40001  online"
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "udpchat.h"

#define LIST_IP_WIDTH 15

typedef struct {
  char *buf;
  size_t cap;
  size_t len;
  int overflow;
} outbuf;

static void put_bytes(outbuf *o, const void *p, size_t n) {
  if (o->overflow || n == 0) {
    return;
  }
  if (o->len + n + 1 > o->cap) {
    o->overflow = 1;
    return;
  }
  memcpy(o->buf + o->len, p, n);
  o->len += n;
  o->buf[o->len] = '\0';
}

static void put_str(outbuf *o, const char *s) { put_bytes(o, s, strlen(s)); }

static void put_pad(outbuf *o, size_t n) {
  /* stops at the first overflow: a huge width costs no time */
  for (size_t i = 0; i < n && !o->overflow; i++) {
    put_bytes(o, " ", 1);
  }
}

static void put_fmt(outbuf *o, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void put_fmt(outbuf *o, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    o->overflow = 1;
    return;
  }
  put_bytes(o, tmp, (size_t)n);
}

static void put_nick(outbuf *o, const udpc_nick *n) {
  size_t len = n->len;
  if (len > UDPC_NICK_MAX) {
    len = UDPC_NICK_MAX;
  }
  put_bytes(o, n->s, len);
}

static void put_text(outbuf *o, const udpc_bytes *t) {
  if (t->p != NULL) {
    put_bytes(o, t->p, t->len);
  }
}

/* ---- UTC time without libc time functions ------------------------------ */

/* Howard Hinnant's civil_from_days: days since 1970-01-01 -> y/m/d. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  int64_t era;
  unsigned doe, yoe, doy, mp;
  z += 719468;
  era = (z >= 0 ? z : z - 146096) / 146097;
  doe = (unsigned)(z - era * 146097);
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  *y = (int64_t)yoe + era * 400;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  if (*m <= 2) {
    *y += 1;
  }
}

static void put_timestamp(outbuf *o, uint64_t ms) {
  uint64_t secs = ms / 1000u;
  int64_t days = (int64_t)(secs / 86400u);
  unsigned sod = (unsigned)(secs % 86400u);
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  put_fmt(o, "%04lld-%02u-%02u %02u:%02u:%02u", (long long)y, m, d, sod / 3600u,
          (sod / 60u) % 60u, sod % 60u);
}

/* ---- Addresses ----------------------------------------------------------- */

static void put_ipv4(outbuf *o, const uint8_t *ip) {
  put_fmt(o, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
}

/* RFC 5952: lower-case hex, no leading zeros, the longest run (first on a
 * tie) of two or more zero groups becomes "::", IPv4-mapped addresses as
 * ::ffff:a.b.c.d. */
static void put_ipv6(outbuf *o, const uint8_t *ip) {
  unsigned g[8];
  int best = -1, best_len = 0;
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(ip, mapped, 12) == 0) {
    put_str(o, "::ffff:");
    put_ipv4(o, ip + 12);
    return;
  }
  for (int i = 0; i < 8; i++) {
    g[i] = ((unsigned)ip[2 * i] << 8) | ip[2 * i + 1];
  }
  for (int i = 0; i < 8;) {
    if (g[i] == 0) {
      int j = i;
      while (j < 8 && g[j] == 0) {
        j++;
      }
      if (j - i > best_len) {
        best = i;
        best_len = j - i;
      }
      i = j;
    } else {
      i++;
    }
  }
  if (best_len < 2) {
    best = -1;
  }
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      put_str(o, "::");
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best + best_len) {
      put_str(o, ":");
    }
    put_fmt(o, "%x", g[i]);
  }
}

static void put_list_row(outbuf *o, const udpc_event *ev) {
  const udpc_entry *e = &ev->entry;
  size_t width = ev->width > 0 ? (size_t)ev->width : 0;
  size_t start;
  if (e->nick.len == 0) {
    put_str(o, "nick");
    if (width > 4) {
      put_pad(o, width - 4);
    }
    put_str(o, "  ip");
    put_pad(o, LIST_IP_WIDTH - 2);
    put_str(o, "  port   status");
    return;
  }
  put_nick(o, &e->nick);
  if (width > e->nick.len) {
    put_pad(o, width - e->nick.len);
  }
  put_str(o, "  ");
  start = o->len;
  if (e->addr.family == 6) {
    put_ipv6(o, e->addr.ip);
  } else {
    put_ipv4(o, e->addr.ip);
  }
  if (!o->overflow && o->len - start < LIST_IP_WIDTH) {
    put_pad(o, LIST_IP_WIDTH - (o->len - start));
  }
  put_fmt(o, "  %-5u  %s", (unsigned)e->addr.port,
          e->status == UDPC_STATUS_ONLINE ? "online" : "offline");
}

/* ---- Status texts -------------------------------------------------------- */

static void put_reg_refused(outbuf *o, const udpc_event *ev) {
  switch (ev->status) {
    case UDPC_REG_NICK_TAKEN:
      put_str(o, "[Nick ");
      put_nick(o, &ev->nick);
      put_str(o, " is already taken by another user.]");
      break;
    case UDPC_REG_INVALID_NICK:
      put_str(o, "[Invalid nick ");
      put_nick(o, &ev->nick);
      put_str(o, ": use 1-32 of a-z 0-9 _ -]");
      break;
    case UDPC_REG_SERVER_FULL:
      put_str(o, "[Server is full, try again later.]");
      break;
    default: /* STORE_ERROR, or a failure the server reported via ERROR */
      put_str(o, "[Server storage error, try again later.]");
      break;
  }
}

static void put_save_refused(outbuf *o, const udpc_event *ev) {
  switch (ev->status) {
    case UDPC_SAVE_UNKNOWN_RECIPIENT:
      put_str(o, "[Unknown user ");
      put_nick(o, &ev->nick);
      put_str(o, ", message not delivered.]");
      break;
    case UDPC_SAVE_QUOTA:
      put_str(o, "[Mailbox of ");
      put_nick(o, &ev->nick);
      put_str(o, " is full, message not delivered.]");
      break;
    default: /* STORE_ERROR */
      put_str(o, "[Server could not store the message for ");
      put_nick(o, &ev->nick);
      put_str(o, ", message not delivered.]");
      break;
  }
}

static void put_dereg_other(outbuf *o, const udpc_event *ev) {
  switch (ev->status) {
    case UDPC_DEREG_OK:
      put_str(o, "[");
      put_nick(o, &ev->nick);
      put_str(o, " is now offline.]");
      break;
    case UDPC_DEREG_NOT_PERMITTED:
      put_str(o, "[Permission denied: only operators may deregA.]");
      break;
    case UDPC_DEREG_UNKNOWN_NICK:
      put_str(o, "[Unknown user ");
      put_nick(o, &ev->nick);
      put_str(o, ".]");
      break;
    default: /* STORE_ERROR */
      put_str(o, "[Server storage error, try again later.]");
      break;
  }
}

int udpc_event_format(const udpc_event *ev, char *buf, size_t cap) {
  outbuf o;
  if (ev == NULL || buf == NULL || cap == 0) {
    return UDPC_ERR_ARG;
  }
  o.buf = buf;
  o.cap = cap;
  o.len = 0;
  o.overflow = 0;
  buf[0] = '\0';

  switch (ev->type) {
    case UDPC_EV_REGISTERED:
      put_str(&o, "[Welcome, You are registered.]");
      break;
    case UDPC_EV_REG_REFUSED: put_reg_refused(&o, ev); break;
    case UDPC_EV_TABLE_UPDATED: put_str(&o, "[Client table updated.]"); break;
    case UDPC_EV_DELIVERED:
      put_str(&o, "[Message received by ");
      put_nick(&o, &ev->nick);
      put_str(&o, ".]");
      break;
    case UDPC_EV_NO_ACK:
      put_str(&o, "[No ACK from ");
      put_nick(&o, &ev->nick);
      put_str(&o, ", message sent to server.]");
      break;
    case UDPC_EV_CHAT:
      put_nick(&o, &ev->nick);
      put_str(&o, ": ");
      put_text(&o, &ev->text);
      break;
    case UDPC_EV_SAVED:
      put_str(&o, "[Messages received by the server and saved]");
      break;
    case UDPC_EV_EXISTS:
      put_str(&o, "[Client ");
      put_nick(&o, &ev->nick);
      put_str(&o, " exists!!]");
      break;
    case UDPC_EV_SAVE_REFUSED: put_save_refused(&o, ev); break;
    case UDPC_EV_OFFLINE: put_str(&o, "[You are Offline. Bye.]"); break;
    case UDPC_EV_DEREG_OTHER: put_dereg_other(&o, ev); break;
    case UDPC_EV_KICKED:
      put_str(&o, "[You were deregistered by ");
      put_nick(&o, &ev->nick);
      put_str(&o, ".]");
      break;
    case UDPC_EV_SERVER_DOWN: put_str(&o, "[Server not responding]"); break;
    case UDPC_EV_EXITING: put_str(&o, "[Exiting]"); break;
    case UDPC_EV_HAVE_MAIL: put_str(&o, "[You have messages]"); break;
    case UDPC_EV_MAIL:
      put_nick(&o, &ev->nick);
      put_str(&o, ": ");
      put_timestamp(&o, ev->timestamp_ms);
      put_str(&o, " ");
      put_text(&o, &ev->text);
      break;
    case UDPC_EV_LIST_ROW: put_list_row(&o, ev); break;
    case UDPC_EV_NOTICE: put_text(&o, &ev->text); break;
    default: return UDPC_ERR_ARG;
  }
  if (o.overflow) {
    buf[0] = '\0';
    return UDPC_ERR_TOO_BIG;
  }
  if (o.len > (size_t)INT32_MAX) {
    return UDPC_ERR_TOO_BIG;
  }
  return (int)o.len;
}
