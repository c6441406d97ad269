/*
 * udpc_term.c - client terminal output and line input (see udpc_term.h).
 */
#include "udpc_term.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PROMPT ">>> "
#define PROMPT_LEN (sizeof PROMPT - 1)
#define EVENT_LINE_MAX 8192

#define SGR_RESET "\033[0m"
#define SGR_CHAT "\033[1;36m"  /* bold cyan: incoming chat */
#define SGR_MAIL "\033[1;35m"  /* bold magenta: stored mail */
#define SGR_ALERT "\033[1;31m" /* bold red: server down / kicked */
#define SGR_STATUS "\033[33m"  /* yellow: bracketed status lines */
#define SGR_OWN "\033[32m"     /* green: the user's own entered lines */
#define SGR_HEAD "\033[1m"     /* bold: the `list` header */
#define SGR_TIME "\033[2m"     /* dim: timestamps */
#define CLEAR_LINE "\r\033[K"

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return; /* stdout gone (EPIPE...): nothing left to tell */
    }
    buf += n;
    len -= (size_t)n;
  }
}

void udpc_term_init(udpc_term *t, int no_color) {
  memset(t, 0, sizeof *t);
  t->out_fd = STDOUT_FILENO;
  t->in_fd = STDIN_FILENO;
  int out_tty = isatty(STDOUT_FILENO);
  int in_tty = isatty(STDIN_FILENO);
  const char *nc = getenv("NO_COLOR");
  const char *term = getenv("TERM");
  /* A "dumb" terminal cannot erase a line: plain mode for it. */
  int dumb = term != NULL && strcmp(term, "dumb") == 0;
  t->interactive = out_tty && in_tty && !dumb;
  t->out_tty = out_tty;
  /* Issue 9: stdin or stdout not a terminal = plain, no color either. */
  t->color = t->interactive && !no_color && (nc == NULL || nc[0] == '\0');
}

static int apply_raw(udpc_term *t) {
  struct termios raw = t->saved;
  raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO | IEXTEN);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  return tcsetattr(t->in_fd, TCSADRAIN, &raw);
}

int udpc_term_start(udpc_term *t) {
  if (!t->interactive || t->raw) return 0;
  if (tcgetattr(t->in_fd, &t->saved) != 0) return -1;
  if (apply_raw(t) != 0) return -1;
  t->raw = 1;
  return 0;
}

static void restore_mode(udpc_term *t) {
  if (t->raw && tcsetattr(t->in_fd, TCSADRAIN, &t->saved) != 0) {
    /* The terminal is gone: nothing to restore. */
  }
}

void udpc_term_free(udpc_term *t) {
  udpc_edit_free(t->edit);
  t->edit = NULL;
  restore_mode(t);
  t->raw = 0;
  free(t->in_buf);
  t->in_buf = NULL;
  t->in_len = t->in_cap = 0;
}

/* Number of terminal columns (80 if unknown). */
static size_t term_cols(const udpc_term *t) {
  struct winsize ws;
  if (ioctl(t->out_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

/* Redraw "\r>>> <input tail>\033[K": the input scrolls horizontally so the
 * cursor stays on one screen line. Characters are counted as UTF-8 code
 * points (wide characters may overflow a little; the next redraw fixes). */
static void render_input(udpc_term *t) {
  size_t cols = term_cols(t);
  size_t avail = cols > PROMPT_LEN + 11 ? cols - PROMPT_LEN - 1 : 10;
  size_t start = t->in_len, chars = 0;
  while (start > 0) {
    size_t s = start - 1;
    while (s > 0 && ((unsigned char)t->in_buf[s] & 0xc0) == 0x80) s--;
    if (chars + 1 > avail) break;
    chars++;
    start = s;
  }
  char head[16];
  size_t hl = 0;
  memcpy(head, CLEAR_LINE, sizeof CLEAR_LINE - 1);
  hl = sizeof CLEAR_LINE - 1;
  memcpy(head + hl, PROMPT, PROMPT_LEN);
  hl += PROMPT_LEN;
  if (start > 0) head[hl - 1] = '<'; /* ">>><": more text to the left */
  write_all(t->out_fd, head, hl);
  if (t->in_len > start) {
    /* Input bytes are echoed as typed, minus controls (never stored). */
    write_all(t->out_fd, t->in_buf + start, t->in_len - start);
  }
  t->prompt_pending = 1;
}

void udpc_term_redraw(udpc_term *t) {
  if (t->edit != NULL) {
    udpc_edit_resize(t->edit);
    return;
  }
  if (t->raw && t->prompt_pending) render_input(t);
}

void udpc_term_suspend(udpc_term *t) {
  if (t->edit != NULL) {
    udpc_edit_suspend(t->edit);
    return;
  }
  if (!t->raw) return;
  write_all(t->out_fd, "\n", 1);
  t->prompt_pending = 0;
  restore_mode(t);
}

void udpc_term_resume(udpc_term *t) {
  if (t->edit != NULL) {
    udpc_edit_resume(t->edit);
    return;
  }
  if (!t->raw) return;
  if (apply_raw(t) != 0) {
    /* Not our terminal any more (e.g. resumed in the background). */
  }
  render_input(t);
}

void udpc_term_info(udpc_term *t, const char *line) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "%s\n", line);
  if (n < 0) return;
  size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
  write_all(t->out_fd, buf, len);
}

void udpc_term_prompt(udpc_term *t) {
  if (t->edit != NULL) return; /* libedit draws its prompt */
  if (t->prompt_pending) return;
  if (t->raw) {
    render_input(t);
    return;
  }
  if (!t->interactive) {
    if (t->prompt_once) return;
    t->prompt_once = 1;
  }
  write_all(t->out_fd, PROMPT, PROMPT_LEN);
  t->prompt_pending = 1;
}

void udpc_term_input_done(udpc_term *t) {
  if (t->interactive) t->prompt_pending = 0;
}

/* Replace control characters (C0, DEL, C1 as UTF-8 C2 80..C2 9F) by '?';
 * with bidi set also the bidi embedding/override/isolate characters
 * U+202A..U+202E and U+2066..U+2069 (3 bytes -> "?"). Works in place.
 * bidi is set whenever stdout is a terminal (also with piped stdin), so a
 * peer cannot reorder a displayed line (SECURITY.md). */
static size_t sanitize(char *s, size_t len, int bidi) {
  size_t j = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      s[j++] = '?';
    } else if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
               (unsigned char)s[i + 1] <= 0x9f) {
      s[j++] = '?';
      i++;
    } else if (bidi && c == 0xe2 && i + 2 < len &&
               (((unsigned char)s[i + 1] == 0x80 &&
                 (unsigned char)s[i + 2] >= 0xaa &&
                 (unsigned char)s[i + 2] <= 0xae) ||
                ((unsigned char)s[i + 1] == 0x81 &&
                 (unsigned char)s[i + 2] >= 0xa6 &&
                 (unsigned char)s[i + 2] <= 0xa9))) {
      s[j++] = '?';
      i += 2;
    } else {
      s[j++] = (char)c;
    }
  }
  return j;
}

/* The timestamp field: "HH:MM " (UTC: "HH:MMZ "), or as many spaces
 * (stamp 2: rows of a table). Returns its length (0 when off). */
static size_t put_stamp(const udpc_term *t, char *out, int stamp) {
  if (t->timestamps == UDPC_TS_OFF || stamp == 0) return 0;
  int utc = t->timestamps == UDPC_TS_UTC;
  size_t w = utc ? 7 : 6;
  if (stamp == 2) {
    memset(out, ' ', w);
    return w;
  }
  time_t now = time(NULL);
  struct tm tm;
  if ((utc ? gmtime_r(&now, &tm) : localtime_r(&now, &tm)) == NULL) return 0;
  size_t off = 0;
  if (t->color) {
    memcpy(out, SGR_TIME, sizeof SGR_TIME - 1);
    off += sizeof SGR_TIME - 1;
  }
  off += strftime(out + off, 16, utc ? "%H:%MZ" : "%H:%M", &tm);
  if (t->color) {
    memcpy(out + off, SGR_RESET, sizeof SGR_RESET - 1);
    off += sizeof SGR_RESET - 1;
  }
  out[off++] = ' ';
  return off;
}

/* Assemble prefix + body (+ color) + "\n" and write it in one write(2).
 * stamp: 0 none, 1 the time, 2 blank (aligned with timestamped lines). */
static void emit(udpc_term *t, const char *body, size_t body_len,
                 const char *sgr, int bell, int stamp) {
  char out[EVENT_LINE_MAX + 128];
  size_t off = 0;
  if (body_len > EVENT_LINE_MAX) body_len = EVENT_LINE_MAX;
#define PUT(str, n)                \
  do {                             \
    memcpy(out + off, (str), (n)); \
    off += (n);                    \
  } while (0)
  if (t->edit != NULL) {
    udpc_edit_hide(t->edit); /* prompt and typed text erased */
    off += put_stamp(t, out + off, stamp);
    PUT(PROMPT, PROMPT_LEN);
  } else if (t->interactive) {
    if (t->prompt_pending) PUT(CLEAR_LINE, sizeof CLEAR_LINE - 1);
    off += put_stamp(t, out + off, stamp);
    PUT(PROMPT, PROMPT_LEN);
  } else {
    if (!t->prompt_pending) PUT(PROMPT, PROMPT_LEN);
    off += put_stamp(t, out + off, stamp);
  }
  int colored = t->color && sgr != NULL;
  if (colored) PUT(sgr, strlen(sgr));
  PUT(body, body_len);
  if (colored) PUT(SGR_RESET, sizeof SGR_RESET - 1);
  if (t->color && bell && t->notify == NULL) PUT("\a", 1);
  PUT("\n", 1);
#undef PUT
  write_all(t->out_fd, out, off);
  t->prompt_pending = 0;
  if (t->edit != NULL) {
    udpc_edit_show(t->edit); /* redrawn below the new line */
  } else if (t->raw) {
    render_input(t); /* the prompt and what the user has typed so far */
  } else if (t->interactive) {
    write_all(t->out_fd, PROMPT, PROMPT_LEN);
    t->prompt_pending = 1;
  }
}

/* A stored message with its time in the local zone (the core formats UTC):
 * "<nick>: YYYY-MM-DD HH:MM:SS <text>". Returns the new length, or len
 * (line unchanged) if it does not fit. */
static size_t mail_local(const udpc_event *ev, char *line, size_t cap,
                         size_t len) {
  time_t secs = (time_t)(ev->timestamp_ms / 1000u);
  struct tm tm;
  char when[32];
  if (localtime_r(&secs, &tm) == NULL ||
      strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    return len;
  size_t nl = ev->nick.len, wl = strlen(when), tl = ev->text.len;
  if (ev->text.p == NULL || nl + 2 + wl + 1 + tl >= cap) return len;
  size_t off = 0;
  memcpy(line + off, ev->nick.s, nl);
  off += nl;
  memcpy(line + off, ": ", 2);
  off += 2;
  memcpy(line + off, when, wl);
  off += wl;
  line[off++] = ' ';
  memcpy(line + off, ev->text.p, tl);
  off += tl;
  line[off] = '\0';
  return off;
}

void udpc_term_event(udpc_term *t, const udpc_event *ev) {
  char line[EVENT_LINE_MAX];
  int n = udpc_event_format(ev, line, sizeof line);
  if (n < 0) {
    n = snprintf(line, sizeof line, "[Event %d could not be displayed: %s]",
                 ev->type, udpc_strerror(n));
    if (n < 0) return;
  }
  size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  if (ev->type == UDPC_EV_MAIL && t->timestamps == UDPC_TS_LOCAL)
    len = mail_local(ev, line, sizeof line, len);
  len = sanitize(line, len, t->out_tty);
  const char *sgr = SGR_STATUS;
  int bell = 0, stamp = 1;
  switch (ev->type) {
    case UDPC_EV_CHAT:
      sgr = SGR_CHAT;
      bell = 1;
      break;
    case UDPC_EV_MAIL:
      sgr = SGR_MAIL;
      bell = 1;
      break;
    case UDPC_EV_HAVE_MAIL: sgr = SGR_MAIL; break;
    case UDPC_EV_SERVER_DOWN:
    case UDPC_EV_KICKED: sgr = SGR_ALERT; break;
    case UDPC_EV_LIST_ROW:
      sgr = ev->entry.nick.len == 0 ? SGR_HEAD : NULL;
      stamp = 2;
      break;
    default: break;
  }
  if (bell && t->notify != NULL && ev->text.p != NULL) {
    char text[UDPC_TEXT_MAX + 1];
    size_t tl = ev->text.len <= UDPC_TEXT_MAX ? ev->text.len : UDPC_TEXT_MAX;
    memcpy(text, ev->text.p, tl);
    tl = sanitize(text, tl, 1);
    udpc_notify_run(t->notify, ev->nick.s, text, tl);
  }
  emit(t, line, len, sgr, bell, stamp);
}

void udpc_term_notice(udpc_term *t, const char *bracketed) {
  char line[EVENT_LINE_MAX];
  size_t len = strlen(bracketed);
  if (len >= sizeof line) len = sizeof line - 1;
  memcpy(line, bracketed, len);
  len = sanitize(line, len, t->out_tty);
  emit(t, line, len, SGR_STATUS, 0, 1);
}

void udpc_term_finish(udpc_term *t) {
  if (t->edit != NULL) {
    udpc_edit_stop(t->edit); /* erases the prompt line */
    return;
  }
  if (t->prompt_pending) {
    if (t->interactive)
      write_all(t->out_fd, CLEAR_LINE, sizeof CLEAR_LINE - 1);
    else
      write_all(t->out_fd, "\n", 1);
    t->prompt_pending = 0;
  }
}

static int in_append(udpc_term *t, const char *p, size_t n) {
  if (t->in_len + n > t->in_cap) {
    size_t cap = t->in_cap ? t->in_cap : 256;
    while (cap < t->in_len + n) cap *= 2;
    char *nb = realloc(t->in_buf, cap);
    if (nb == NULL) return -1;
    t->in_buf = nb;
    t->in_cap = cap;
  }
  memcpy(t->in_buf + t->in_len, p, n);
  t->in_len += n;
  return 0;
}

static void deliver(udpc_term *t, udpc_term_line_cb cb, void *ctx) {
  size_t len = t->in_len;
  if (len > 0 && t->in_buf[len - 1] == '\r') len--;
  t->in_len = 0; /* before cb: it may print (and redraw the input) */
  cb(ctx, len > 0 ? t->in_buf : "", len);
}

static void too_long(udpc_term *t) {
  char msg[128];
  snprintf(msg, sizeof msg, "[Input line longer than %d bytes ignored.]",
           UDPC_TERM_LINE_MAX);
  udpc_term_notice(t, msg);
}

/* Append seg to the current line, switching to discard mode past the
 * limit. */
static void add_bytes(udpc_term *t, const char *p, size_t seg) {
  if (t->in_discarding || seg == 0) return;
  if (t->in_len + seg > UDPC_TERM_LINE_MAX) {
    t->in_discarding = 1;
    t->in_len = 0;
    too_long(t);
  } else if (in_append(t, p, seg) != 0) {
    t->in_discarding = 1;
    t->in_len = 0;
    udpc_term_notice(t, "[Out of memory: input line ignored.]");
  }
}

/* Plain mode: split on '\n'. */
static void feed_plain(udpc_term *t, const char *p, size_t left,
                       udpc_term_line_cb cb, void *ctx) {
  while (left > 0) {
    const char *nl = memchr(p, '\n', left);
    size_t seg = nl != NULL ? (size_t)(nl - p) : left;
    add_bytes(t, p, seg);
    if (nl == NULL) break;
    if (!t->in_discarding) deliver(t, cb, ctx);
    t->in_discarding = 0;
    t->in_len = 0;
    p = nl + 1;
    left -= seg + 1;
  }
}

/* Editor mode: one byte at a time. Returns 1 for Ctrl-D on an empty line. */
static int feed_editor(udpc_term *t, const char *p, size_t n,
                       udpc_term_line_cb cb, void *ctx) {
  int dirty = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (t->esc == 1) { /* after ESC: CSI "[" or SS3 "O", else Alt-key */
      t->esc = (c == '[' || c == 'O') ? 2 : 0;
      continue;
    }
    if (t->esc == 2) { /* parameters until a final byte 0x40..0x7e */
      if (c >= 0x40 && c <= 0x7e) t->esc = 0;
      continue;
    }
    switch (c) {
      case 0x1b: t->esc = 1; break;
      case '\r':
      case '\n':
        if (t->prompt_pending) {
          if (dirty) render_input(t); /* show the line as submitted */
          write_all(t->out_fd, "\n", 1);
        }
        t->prompt_pending = 0;
        if (!t->in_discarding) deliver(t, cb, ctx);
        t->in_discarding = 0;
        t->in_len = 0;
        dirty = 1;
        break;
      case 0x7f: /* Backspace / DEL */
      case 0x08: /* Ctrl-H */
        while (t->in_len > 0 &&
               ((unsigned char)t->in_buf[t->in_len - 1] & 0xc0) == 0x80)
          t->in_len--;
        if (t->in_len > 0) t->in_len--;
        dirty = 1;
        break;
      case 0x15: /* Ctrl-U */
        t->in_len = 0;
        t->in_discarding = 0;
        dirty = 1;
        break;
      case 0x17: /* Ctrl-W */
        while (t->in_len > 0 && t->in_buf[t->in_len - 1] == ' ') t->in_len--;
        while (t->in_len > 0 && t->in_buf[t->in_len - 1] != ' ') t->in_len--;
        dirty = 1;
        break;
      case 0x0c: /* Ctrl-L */
        write_all(t->out_fd, "\033[H\033[2J", 7);
        dirty = 1;
        break;
      case 0x04: /* Ctrl-D */
        if (t->in_len == 0 && !t->in_discarding) return 1;
        break;
      default:
        if (c < 0x20) break; /* other controls: ignored, never stored */
        add_bytes(t, (const char *)&p[i], 1);
        dirty = 1;
        break;
    }
  }
  if (dirty && t->prompt_pending) render_input(t);
  return 0;
}

int udpc_term_read(udpc_term *t, int fd, udpc_term_line_cb cb, void *ctx) {
  if (t->edit != NULL) return udpc_edit_read(t->edit, cb, ctx);
  char chunk[4096];
  ssize_t n;
  for (;;) {
    n = read(fd, chunk, sizeof chunk);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -1;
  }
  if (n == 0) {
    if (!t->in_discarding && t->in_len > 0) deliver(t, cb, ctx);
    t->in_discarding = 0;
    t->in_len = 0;
    return 1;
  }
  if (t->raw) return feed_editor(t, chunk, (size_t)n, cb, ctx);
  feed_plain(t, chunk, (size_t)n, cb, ctx);
  return 0;
}

int udpc_term_start_editor(udpc_term *t, const udpc_edit_config *cfg) {
  if (!t->interactive) return 0;
  char err[256];
  t->edit = udpc_edit_new(cfg, err, sizeof err);
  if (t->edit != NULL) return 0;
  return udpc_term_start(t); /* the built-in editor instead */
}

void udpc_term_set_timestamps(udpc_term *t, int mode) {
  if (mode == UDPC_TS_AUTO) mode = t->interactive ? UDPC_TS_LOCAL : UDPC_TS_OFF;
  t->timestamps = mode;
}

void udpc_term_own(udpc_term *t, const char *line, size_t len) {
  if (t->edit == NULL) return; /* the typed line is still on screen */
  char buf[EVENT_LINE_MAX];
  if (len >= sizeof buf) len = sizeof buf - 1;
  memcpy(buf, line, len);
  len = sanitize(buf, len, 1);
  emit(t, buf, len, SGR_OWN, 0, 1);
}
