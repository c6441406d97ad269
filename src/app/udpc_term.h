/*
 * udpc_term.h - the client's terminal: event output and line input.
 *
 * Output. Every core event is one line, ">>> " + udpc_event_format(ev).
 * Two modes, chosen at start:
 *  - plain (stdin or stdout is not a terminal: pipes, files, tests; or
 *    TERM is "dumb"): the initial prompt ">>> " is written without a
 *    newline; the first event completes that line, every later event is
 *    written as its own ">>> <line>\n". So every output line after the
 *    "bound to" line starts with ">>> ", lines are never split or
 *    interleaved, and no prompt is redrawn. Input is read in lines as it
 *    comes.
 *  - interactive (both are terminals, TERM is not "dumb"): the client
 *    starts the libedit line editor (udpc_term_start_editor, udpc_edit.h:
 *    cursor keys, history, Tab completion, timestamps). Only if libedit
 *    cannot start, the built-in editor described here takes over: the
 *    terminal is put in a non-canonical, no-echo mode (signals kept:
 *    Ctrl-C, Ctrl-Z, Ctrl-\) and udpc_term edits the input line itself,
 *    so an incoming event erases the prompt line, prints itself and
 *    redraws the prompt WITH what the user had typed so far. Editing
 *    keys: Backspace, Ctrl-U (erase line), Ctrl-W (erase word), Ctrl-L
 *    (redraw), Ctrl-D on an empty line (end of input); escape sequences
 *    (arrow keys...) are ignored. A line wider than the terminal scrolls
 *    horizontally. The terminal mode
 *    is restored on exit and on suspend (Ctrl-Z), re-applied on resume.
 * Color: in interactive mode, incoming chat and stored mail stand out
 * (bold color and a bell) unless NO_COLOR is set or --no-color was given;
 * never when stdin or stdout is a pipe or a file.
 * In both modes control characters (C0, DEL, C1) in event lines are shown
 * as '?', so a peer cannot drive the terminal; when stdout is a terminal
 * the bidi embedding/override/isolate characters are neutralised too.
 *
 * Input. Lines end at '\n' (a trailing '\r' is dropped); a final line
 * without '\n' is delivered at end of file. Lines up to UDPC_TERM_LINE_MAX
 * bytes are passed whole to the caller (the core's parser refuses over-long
 * messages, naming the limit); a longer line is discarded with a notice.
 */
#ifndef UDPC_TERM_H
#define UDPC_TERM_H

#include <stddef.h>
#include <termios.h>

#include "udpc_edit.h"
#include "udpc_notify.h"
#include "udpchat.h"

#define UDPC_TERM_LINE_MAX 65536

/* Timestamps before event lines ("HH:MM", "HH:MMZ" in UTC); AUTO is
 * LOCAL in interactive mode, OFF otherwise. */
enum { UDPC_TS_AUTO = -1, UDPC_TS_OFF = 0, UDPC_TS_LOCAL = 1, UDPC_TS_UTC = 2 };

typedef void (*udpc_term_line_cb)(void *ctx, const char *line, size_t len);

typedef struct {
  int out_fd;
  int in_fd;
  int interactive;    /* both ends are terminals: line editor mode */
  int out_tty;        /* stdout is a terminal (bidi controls neutralised) */
  int color;          /* colors and bell */
  int prompt_pending; /* the prompt (and input) is on screen */
  int prompt_once;    /* plain mode: the one prompt was written */
  int raw;            /* the terminal is in editor mode (saved is valid) */
  struct termios saved;
  int esc;      /* editor: 0, 1 after ESC, 2 inside CSI/SS3 */
  char *in_buf; /* partial input line */
  size_t in_len, in_cap;
  int in_discarding;   /* inside a line longer than UDPC_TERM_LINE_MAX */
  udpc_edit *edit;     /* interactive: the libedit line editor, or NULL */
  int timestamps;      /* UDPC_TS_OFF, _LOCAL or _UTC */
  udpc_notify *notify; /* --notify-cmd (instead of the bell), or NULL */
} udpc_term;

/* Interactive mode with libedit (udpc_edit.h): history, completion,
 * cursor keys; an event line erases the prompt and the typed text, prints
 * itself and redraws them. Event lines then read
 * "[HH:MM ]>>> <line>", colored by kind: incoming chat bold cyan, stored
 * mail bold magenta, status lines yellow, alerts bold red, the user's own
 * entered lines green, timestamps dim. If libedit cannot start, the
 * built-in editor below (udpc_term_start) is used. */
int udpc_term_start_editor(udpc_term *t, const udpc_edit_config *cfg);
/* UDPC_TS_* (AUTO resolved here). */
void udpc_term_set_timestamps(udpc_term *t, int mode);
/* The user entered line (libedit mode): shown as an own line. */
void udpc_term_own(udpc_term *t, const char *line, size_t len);

/* no_color: the --no-color option. Decides the mode; does not touch the
 * terminal yet. */
void udpc_term_init(udpc_term *t, int no_color);
/* Interactive mode: switch the terminal to editor mode. Returns 0, or -1
 * (then the term falls back to plain line input with terminal echo). */
int udpc_term_start(udpc_term *t);
/* Restore the terminal mode (idempotent); frees buffers. */
void udpc_term_free(udpc_term *t);
/* Ctrl-Z: restore the terminal before stopping; resume: re-apply, redraw. */
void udpc_term_suspend(udpc_term *t);
void udpc_term_resume(udpc_term *t);
/* Window size changed: redraw the input line. */
void udpc_term_redraw(udpc_term *t);

/* A plain informational line without the prompt prefix (start-up only). */
void udpc_term_info(udpc_term *t, const char *line);
/* Show the prompt ">>> " if it is not already showing. In plain mode only
 * the first call prints anything. */
void udpc_term_prompt(udpc_term *t);
/* The user finished a line: the cursor is on a fresh line. */
void udpc_term_input_done(udpc_term *t);
void udpc_term_event(udpc_term *t, const udpc_event *ev);
/* A driver message, already in bracketed form: "[...]". */
void udpc_term_notice(udpc_term *t, const char *bracketed);
/* End the output cleanly (terminate a pending prompt line). */
void udpc_term_finish(udpc_term *t);

/* Read what is available on fd and call cb for each complete line.
 * Returns 0, 1 at end of file (after delivering a last partial line), or -1
 * on a read error (errno kept). */
int udpc_term_read(udpc_term *t, int fd, udpc_term_line_cb cb, void *ctx);

#endif /* UDPC_TERM_H */
