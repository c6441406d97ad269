/*
 * udpc_edit.c - libedit line editor for the client (see udpc_edit.h).
 */
#include "udpc_edit.h"

#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#define EDIT_KEYS_PER_READ 256
#define EDIT_SEQ_WAIT_MS 100 /* rest of a key sequence (after Esc) */
#define EDIT_MATCHES_SHOWN 40

struct udpc_edit {
  EditLine *el;
  History *hist;
  udpc_edit_config cfg;
  char *prompt;
  char *history_path;
  int in_fd, out_fd;
  struct termios cooked; /* the terminal as we found it */
  struct termios raw;    /* libedit's editor mode, kept over Ctrl-Z */
  int active;            /* the prompt and input are drawn by libedit */
  int hidden;            /* udpc_edit_hide erased them */
  int reads;             /* bytes read within the current el_gets call */
  int eof;               /* the terminal is gone */
};

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    buf += n;
    len -= (size_t)n;
  }
}

static udpc_edit *edit_of(EditLine *el) {
  void *p = NULL;
  if (el_get(el, EL_CLIENTDATA, &p) != 0) return NULL;
  return p;
}

static char *edit_prompt(EditLine *el) {
  udpc_edit *e = edit_of(el);
  return e != NULL ? e->prompt : (char *)"";
}

/* libedit's character reader: one UTF-8 character from stdin. The first
 * byte of an el_gets call is there (poll said so); later bytes of the same
 * key sequence get EDIT_SEQ_WAIT_MS, then the sequence is given up. */
static int edit_getc(EditLine *el, wchar_t *wc) {
  udpc_edit *e = edit_of(el);
  mbstate_t st;
  memset(&st, 0, sizeof st);
  if (e == NULL) return -1;
  for (;;) {
    if (e->reads > 0) {
      struct pollfd p = {.fd = e->in_fd, .events = POLLIN, .revents = 0};
      int r = poll(&p, 1, EDIT_SEQ_WAIT_MS);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        errno = EAGAIN;
        return -1;
      }
    }
    unsigned char b;
    ssize_t n = read(e->in_fd, &b, 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
      e->eof = 1; /* EIO: the terminal was hung up */
      return 0;
    }
    if (n == 0) {
      e->eof = 1;
      return 0;
    }
    e->reads++;
    char c = (char)b;
    size_t r = mbrtowc(wc, &c, 1, &st);
    if (r == (size_t)-2) continue; /* inside a multibyte character */
    if (r == (size_t)-1) {         /* invalid byte: dropped */
      memset(&st, 0, sizeof st);
      continue;
    }
    if (r == 0) continue; /* NUL: ignored */
    return 1;
  }
}

/* Terminal columns (80 if unknown). */
static size_t edit_cols(const udpc_edit *e) {
  struct winsize ws;
  if (ioctl(e->out_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

/* Display width of n wide characters as libedit draws them (a control as
 * ^X: 2 columns). */
static size_t wide_width(const wchar_t *s, size_t n) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    int cw = wcwidth(s[i]);
    w += cw < 0 ? 2u : (size_t)cw;
  }
  return w;
}

static size_t prompt_width(const udpc_edit *e) {
  size_t w = 0;
  for (const char *p = e->prompt; *p != '\0'; p++)
    if (((unsigned char)*p & 0xc0) != 0x80) w++;
  return w;
}

/* Screen row of the cursor (0 = the prompt's row) or, with to_end, of the
 * end of the input. */
static size_t edit_row(udpc_edit *e, int to_end) {
  const LineInfoW *li = el_wline(e->el);
  size_t n = (size_t)((to_end ? li->lastchar : li->cursor) - li->buffer);
  size_t w = prompt_width(e) + wide_width(li->buffer, n);
  return w / edit_cols(e);
}

/* Cursor to the start of the prompt's row `row` rows up, clear below. */
static void erase_rows(udpc_edit *e, size_t row) {
  char seq[48];
  int n;
  if (row > 0)
    n = snprintf(seq, sizeof seq, "\r\033[%zuA\033[J", row);
  else
    n = snprintf(seq, sizeof seq, "\r\033[J");
  if (n > 0) write_all(e->out_fd, seq, (size_t)n);
}

void udpc_edit_hide(udpc_edit *e) {
  if (e == NULL || !e->active || e->hidden) return;
  fflush(stdout); /* libedit's buffered output first */
  erase_rows(e, edit_row(e, 0));
  e->hidden = 1;
}

void udpc_edit_show(udpc_edit *e) {
  if (e == NULL || !e->active || !e->hidden) return;
  e->hidden = 0;
  el_set(e->el, EL_REFRESH); /* prompt + line from column 0, cursor kept */
  fflush(stdout);
}

void udpc_edit_resize(udpc_edit *e) {
  if (e == NULL || !e->active) return;
  el_resize(e->el);
  int was_hidden = e->hidden;
  udpc_edit_hide(e);
  if (!was_hidden) udpc_edit_show(e);
}

void udpc_edit_suspend(udpc_edit *e) {
  if (e == NULL || !e->active) return;
  udpc_edit_hide(e);
  if (tcgetattr(e->in_fd, &e->raw) == 0 &&
      tcsetattr(e->in_fd, TCSADRAIN, &e->cooked) != 0) {
    /* not our terminal any more */
  }
}

void udpc_edit_resume(udpc_edit *e) {
  if (e == NULL || !e->active) return;
  if (tcsetattr(e->in_fd, TCSADRAIN, &e->raw) != 0) {
    /* resumed in the background: libedit retries on the next key */
  }
  el_resize(e->el);
  udpc_edit_show(e);
}

void udpc_edit_stop(udpc_edit *e) {
  if (e == NULL || !e->active) return;
  udpc_edit_hide(e);
  e->active = 0;
  e->hidden = 0;
  el_set(e->el, EL_UNBUFFERED, 0); /* terminal back to normal mode */
}

/* ---- history ----------------------------------------------------------- */

static void history_save(udpc_edit *e) {
  if (e->hist == NULL || e->history_path == NULL) return;
  size_t n = strlen(e->history_path) + 8;
  char *tmp = malloc(n);
  if (tmp == NULL) return;
  snprintf(tmp, n, "%s.tmp", e->history_path);
  (void)unlink(tmp);
  int fd =
      open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) {
    FILE *f = fdopen(fd, "w");
    HistEvent ev;
    if (f == NULL) {
      close(fd);
    } else {
      int ok = history(e->hist, &ev, H_SAVE_FP, f) >= 0;
      if (fclose(f) != 0) ok = 0;
      if (ok && rename(tmp, e->history_path) == 0) {
        free(tmp);
        return;
      }
    }
    (void)unlink(tmp);
  }
  free(tmp);
}

/* ---- completion -------------------------------------------------------- */

static const char *const k_words[] = {"send",   "list", "reg",  "dereg",
                                      "deregA", "exit", "help", NULL};

typedef struct {
  const char *prefix;
  size_t plen;
  size_t count;
  const char *first;
  size_t common; /* length common to all matches */
  char shown[1024];
  size_t shown_len;
  size_t hidden;
} matches;

static void match_add(matches *m, const char *w) {
  size_t wl = strlen(w);
  if (wl < m->plen || memcmp(w, m->prefix, m->plen) != 0) return;
  if (m->count == 0) {
    m->common = wl;
  } else {
    size_t k = 0;
    while (k < m->common && k < wl && m->first[k] == w[k]) k++;
    m->common = k;
  }
  if (m->count == 0) m->first = w;
  m->count++;
  if (m->count <= EDIT_MATCHES_SHOWN &&
      m->shown_len + wl + 2 < sizeof m->shown) {
    if (m->shown_len > 0) m->shown[m->shown_len++] = ' ';
    memcpy(m->shown + m->shown_len, w, wl);
    m->shown_len += wl;
    m->shown[m->shown_len] = '\0';
  } else {
    m->hidden++;
  }
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

static unsigned char edit_complete(EditLine *el, int ch) {
  udpc_edit *e = edit_of(el);
  const LineInfo *li = el_line(el);
  (void)ch;
  if (e == NULL || li == NULL) return CC_ERROR;
  const char *b = li->buffer, *cur = li->cursor;
  const char *ws = cur;
  while (ws > b && !is_blank(ws[-1])) ws--;
  /* Which word is being completed, and the first word. */
  size_t index = 0;
  const char *w0 = NULL;
  size_t w0len = 0;
  for (const char *p = b; p < ws;) {
    while (p < ws && is_blank(*p)) p++;
    if (p >= ws) break;
    const char *s = p;
    while (p < ws && !is_blank(*p)) p++;
    if (index == 0) {
      w0 = s;
      w0len = (size_t)(p - s);
    }
    index++;
  }
  matches m;
  memset(&m, 0, sizeof m);
  m.prefix = ws;
  m.plen = (size_t)(cur - ws);
  char first_copy[64] = "";
  if (index == 0) {
    for (size_t i = 0; k_words[i] != NULL; i++) match_add(&m, k_words[i]);
  } else if (index == 1 && w0 != NULL) {
#define W0_IS(s) (w0len == sizeof(s) - 1 && memcmp(w0, s, w0len) == 0)
    if (W0_IS("help")) {
      for (size_t i = 0; k_words[i] != NULL; i++) match_add(&m, k_words[i]);
    } else if ((W0_IS("send") || W0_IS("reg") || W0_IS("dereg") ||
                W0_IS("deregA")) &&
               e->cfg.nick_at != NULL) {
      for (size_t i = 0;; i++) {
        const char *nk = e->cfg.nick_at(e->cfg.ctx, i);
        if (nk == NULL) break;
        size_t before = m.count;
        match_add(&m, nk);
        if (m.count == 1 && before == 0) {
          /* nick_at may reuse its buffer: keep the first match */
          snprintf(first_copy, sizeof first_copy, "%s", nk);
          m.first = first_copy;
        }
      }
    }
#undef W0_IS
  }
  if (m.count == 0) return CC_ERROR; /* beep */
  if (m.count == 1) {
    char add[80];
    snprintf(add, sizeof add, "%s ", m.first + m.plen);
    if (el_insertstr(el, add) != 0) return CC_ERROR;
    return CC_REFRESH;
  }
  if (m.common > m.plen) {
    char add[80];
    size_t n = m.common - m.plen;
    if (n >= sizeof add) n = sizeof add - 1;
    memcpy(add, m.first + m.plen, n);
    add[n] = '\0';
    if (el_insertstr(el, add) != 0) return CC_ERROR;
    return CC_REFRESH;
  }
  /* Ambiguous: show the candidates above the input. */
  if (e->cfg.print != NULL) {
    char line[1200];
    if (m.hidden > 0)
      snprintf(line, sizeof line, "[%s ... and %zu more]", m.shown, m.hidden);
    else
      snprintf(line, sizeof line, "[%s]", m.shown);
    e->cfg.print(e->cfg.ctx, line);
  }
  return CC_NORM;
}

/* ---- setup ------------------------------------------------------------- */

static void utf8_locale(void) {
  if (setlocale(LC_CTYPE, "") != NULL) {
    const char *cs = nl_langinfo(CODESET);
    if (cs != NULL && strcmp(cs, "UTF-8") == 0) return;
  }
  if (setlocale(LC_CTYPE, "C.UTF-8") == NULL) {
    /* no UTF-8 locale: multibyte characters edit byte by byte */
  }
}

udpc_edit *udpc_edit_new(const udpc_edit_config *cfg, char *err,
                         size_t err_cap) {
  udpc_edit *e = calloc(1, sizeof *e);
  if (e == NULL) {
    snprintf(err, err_cap, "out of memory");
    return NULL;
  }
  e->cfg = *cfg;
  e->in_fd = STDIN_FILENO;
  e->out_fd = STDOUT_FILENO;
  e->prompt = strdup(cfg->prompt != NULL ? cfg->prompt : "");
  if (cfg->history_path != NULL) e->history_path = strdup(cfg->history_path);
  if (e->prompt == NULL ||
      (cfg->history_path != NULL && e->history_path == NULL)) {
    snprintf(err, err_cap, "out of memory");
    udpc_edit_free(e);
    return NULL;
  }
  if (tcgetattr(e->in_fd, &e->cooked) != 0) {
    snprintf(err, err_cap, "not a terminal: %s", strerror(errno));
    udpc_edit_free(e);
    return NULL;
  }
  utf8_locale();
  e->el = el_init("udpchat", stdin, stdout, stderr);
  if (e->el == NULL) {
    snprintf(err, err_cap, "libedit cannot use this terminal");
    udpc_edit_free(e);
    return NULL;
  }
  el_set(e->el, EL_CLIENTDATA, (void *)e);
  el_set(e->el, EL_EDITOR, "emacs");
  el_set(e->el, EL_SIGNAL, 0);
  el_set(e->el, EL_PROMPT, edit_prompt);
  el_set(e->el, EL_GETCFN, edit_getc);
  if (cfg->history_size > 0) {
    HistEvent ev;
    e->hist = history_init();
    if (e->hist != NULL) {
      history(e->hist, &ev, H_SETSIZE, cfg->history_size);
      history(e->hist, &ev, H_SETUNIQUE, 1);
      if (e->history_path != NULL &&
          history(e->hist, &ev, H_LOAD, e->history_path) < 0) {
        /* no history yet */
      }
      el_set(e->el, EL_HIST, history, e->hist);
    }
  }
  /* el_wset: the narrow EL_ADDFN copies the two strings and never frees
   * them (libedit eln.c, "XXX: The two strdup's leak"); the wide one keeps
   * these static strings. */
  el_wset(e->el, EL_ADDFN, L"udpc-complete", L"complete a command or a nick",
          edit_complete);
  el_set(e->el, EL_BIND, "^I", "udpc-complete", NULL);
  el_set(e->el, EL_BIND, "^W", "ed-delete-prev-word", NULL);
  el_set(e->el, EL_BIND, "^U", "em-kill-line", NULL);
  /* Ctrl-R: the latest history line starting with what is typed (again:
   * older ones). Not libedit's incremental search: that one reads keys in
   * a loop of its own, which would stall the network. */
  el_set(e->el, EL_BIND, "^R", "ed-search-prev-history", NULL);
  if (el_source(e->el, NULL) != 0) {
    /* no ~/.editrc: the defaults above */
  }
  e->active = 1;
  el_set(e->el, EL_UNBUFFERED, 1); /* editor mode; shows the prompt */
  fflush(stdout);
  return e;
}

void udpc_edit_free(udpc_edit *e) {
  if (e == NULL) return;
  if (e->el != NULL) {
    udpc_edit_stop(e);
    el_end(e->el);
    (void)tcsetattr(e->in_fd, TCSADRAIN, &e->cooked);
  }
  if (e->hist != NULL) history_end(e->hist);
  free(e->prompt);
  free(e->history_path);
  free(e);
}

/* One finished line: erase its echo, hand it over with the editor out of
 * the way, then a fresh prompt. */
static void edit_line(udpc_edit *e, const char *buf, size_t len,
                      udpc_edit_line_cb cb, void *ctx) {
  char *line = malloc(len + 1);
  if (line == NULL) return;
  memcpy(line, buf, len);
  line[len] = '\0';
  /* libedit moved below the input: erase all of its rows. */
  size_t rows = edit_row(e, 1) + 1;
  char seq[32];
  int n = snprintf(seq, sizeof seq, "\r\033[%zuA\033[J", rows);
  fflush(stdout);
  if (n > 0) write_all(e->out_fd, seq, (size_t)n);
  size_t i = 0;
  while (i < len && is_blank(line[i])) i++;
  if (e->hist != NULL && i < len) {
    HistEvent ev;
    history(e->hist, &ev, H_ENTER, line);
    history_save(e);
  }
  e->active = 0; /* plain printing while the line is handled */
  el_set(e->el, EL_UNBUFFERED, 0);
  cb(ctx, line, len);
  free(line);
  if (e->eof) return;
  e->active = 1;
  e->hidden = 0;
  el_set(e->el, EL_UNBUFFERED, 1); /* empty line, prompt shown */
  fflush(stdout);
}

int udpc_edit_read(udpc_edit *e, udpc_edit_line_cb cb, void *ctx) {
  if (e == NULL || !e->active) return 1;
  for (int k = 0; k < EDIT_KEYS_PER_READ; k++) {
    int n = 0;
    e->reads = 0;
    const char *buf = el_gets(e->el, &n);
    if (e->eof) return 1;
    if (buf != NULL && n > 0) {
      size_t len = (size_t)n;
      if (len == 1 && buf[0] == '\004') { /* Ctrl-D on an empty line */
        udpc_edit_stop(e);
        return 1;
      }
      if (buf[len - 1] == '\n') {
        edit_line(e, buf, len - 1, cb, ctx);
        if (!e->active) return 0;
      }
    }
    int avail = 0;
    if (ioctl(e->in_fd, FIONREAD, &avail) != 0 || avail <= 0) break;
  }
  return 0;
}
