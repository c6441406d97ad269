/*
 * udpc_edit.h - the client's line editor on a terminal, built on libedit's
 * native API (histedit.h), driven by the client's poll(2) loop.
 *
 * Integration: libedit runs in EL_UNBUFFERED mode, so each el_gets() call
 * handles one key and returns; udpc_edit_read is called when stdin is
 * readable and processes the keys that are waiting (a paste at most
 * EDIT_KEYS_PER_READ keys per call, so network events keep flowing). A key
 * sequence split across reads (a lone Esc) waits at most 100 ms for its
 * rest, then is dropped: the loop is never blocked on the keyboard.
 *
 * Editing: emacs key bindings (cursor keys, Home/End, Ctrl-A/E/K/U/W/L,
 * Alt-B/F, Up/Down history, Ctrl-R: the last history line starting with
 * the typed text), ~/.editrc (or $EDITRC) is
 * read, Tab completes command words, the nick argument of send, reg, dereg
 * and deregA (from the client's table) and the topic of help. Ctrl-D on an
 * empty line is end of input.
 *
 * History: up to history_size lines in history_path (libedit's format),
 * loaded at start, rewritten (mode 0600, via a temporary file and rename)
 * after every entered line; consecutive duplicates are kept once.
 *
 * Output above the input: udpc_edit_hide erases the prompt and the typed
 * text (every screen row of it) and leaves the cursor at the start of that
 * row; the caller prints whole lines; udpc_edit_show redraws the prompt and
 * the typed text with the cursor where it was.
 *
 * The line is UTF-8: if the locale's character set is not, LC_CTYPE is set
 * to C.UTF-8 so multibyte characters edit as one character.
 */
#ifndef UDPC_EDIT_H
#define UDPC_EDIT_H

#include <stddef.h>

typedef struct udpc_edit udpc_edit;

/* A finished line (no newline), or for the `own` echo the same. */
typedef void (*udpc_edit_line_cb)(void *ctx, const char *line, size_t len);
/* The i-th nick for completion, NULL after the last one. */
typedef const char *(*udpc_edit_nick_fn)(void *ctx, size_t i);
/* Show one line above the input (completion candidates). */
typedef void (*udpc_edit_print_fn)(void *ctx, const char *line);

typedef struct {
  const char *prompt;       /* ">>> " */
  const char *history_path; /* NULL: no history file */
  int history_size;         /* lines kept; 0: no history at all */
  udpc_edit_nick_fn nick_at;
  udpc_edit_print_fn print;
  void *ctx; /* for nick_at and print */
} udpc_edit_config;

/* Takes over the terminal on stdin/stdout (editor mode) and shows the
 * prompt. NULL with err if libedit cannot run on this terminal. */
udpc_edit *udpc_edit_new(const udpc_edit_config *cfg, char *err,
                         size_t err_cap);
/* Restores the terminal, saves the history, frees. NULL is fine. */
void udpc_edit_free(udpc_edit *e);

/* stdin is readable: handle the waiting keys, calling cb for each finished
 * line. Before cb the typed line is erased from the screen (the caller
 * shows it as its own line) and the editor is out of the way: printing is
 * plain. Returns 0, or 1 at end of input (Ctrl-D on an empty line, or the
 * terminal is gone). */
int udpc_edit_read(udpc_edit *e, udpc_edit_line_cb cb, void *ctx);

void udpc_edit_hide(udpc_edit *e);
void udpc_edit_show(udpc_edit *e);
/* Window size changed. */
void udpc_edit_resize(udpc_edit *e);
/* Ctrl-Z: erase the input, put the terminal back; resume: editor mode
 * again and redraw. */
void udpc_edit_suspend(udpc_edit *e);
void udpc_edit_resume(udpc_edit *e);
/* Erase the prompt and stop drawing it (the client is ending). */
void udpc_edit_stop(udpc_edit *e);

#endif /* UDPC_EDIT_H */
