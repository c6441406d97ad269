/*
 * udpc_term.h - the client's terminal: event output and line input.
 *
 * Output. Every core event is one line, ">>> " + udpc_event_format(ev).
 * Two modes, chosen at start:
 *  - plain (stdin or stdout is not a terminal: pipes, files, tests): the
 *    initial prompt ">>> " is written without a newline; the first event
 *    completes that line, every later event is written as its own
 *    ">>> <line>\n". So every output line after the "bound to" line starts
 *    with ">>> ", lines are never split or interleaved, and no prompt is
 *    redrawn. No color, no bell.
 *  - interactive (both are terminals): the prompt is kept at the bottom; an
 *    event erases the prompt line, prints itself and redraws ">>> ".
 *    Incoming chat and stored mail stand out (bold color and a bell) unless
 *    NO_COLOR is set, TERM is "dumb" or --no-color was given.
 * In both modes control characters (C0, DEL, C1) in event lines are shown
 * as '?', so a peer cannot drive the terminal; on a terminal bidi override
 * characters are neutralised too.
 *
 * Input. Bytes from stdin (terminal, pipe or file) are split into lines on
 * '\n' (a trailing '\r' is dropped); a final line without '\n' is delivered
 * at end of file. Lines up to UDPC_TERM_LINE_MAX bytes are passed whole to
 * the caller (the core's parser refuses over-long messages, naming the
 * limit); a longer line is discarded with a notice.
 */
#ifndef UDPC_TERM_H
#define UDPC_TERM_H

#include <stddef.h>

#include "udpchat.h"

#define UDPC_TERM_LINE_MAX 65536

typedef void (*udpc_term_line_cb)(void *ctx, const char *line, size_t len);

typedef struct {
  int out_fd;
  int interactive;    /* prompt redraw mode */
  int color;          /* colors and bell */
  int prompt_pending; /* ">>> " is on screen at the start of the line */
  int prompt_once;    /* plain mode: the one prompt was written */
  char *in_buf;       /* partial input line */
  size_t in_len, in_cap;
  int in_discarding; /* inside a line longer than UDPC_TERM_LINE_MAX */
} udpc_term;

/* no_color: the --no-color option. */
void udpc_term_init(udpc_term *t, int no_color);
void udpc_term_free(udpc_term *t);

/* A plain informational line without the prompt prefix (start-up only). */
void udpc_term_info(udpc_term *t, const char *line);
/* Show the prompt ">>> " if it is not already showing. In plain mode only
 * the first call prints anything. */
void udpc_term_prompt(udpc_term *t);
/* The user finished a line (the terminal echoed the newline). */
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
