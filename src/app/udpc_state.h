/*
 * udpc_state.h - the client's state directory: one credential per nick.
 *
 * Location: --state-dir DIR if given, else $XDG_STATE_HOME/udpchat, else
 * $HOME/.local/state/udpchat. The directory is created with mode 0700 (and
 * its missing parents with 0700); the credential file is
 * "<nick>.cred", 32 random bytes, mode 0600, created atomically: written to
 * a unique temporary file (O_CREAT|O_EXCL), fsync'd, then linked into place
 * (link(2) never replaces an existing file: if two clients race, both end up
 * with the winner's credential), then the directory is fsync'd.
 *
 * The nick must pass udpc_nick_check (only [a-z0-9_-]) before it is used in
 * a file name.
 */
#ifndef UDPC_STATE_H
#define UDPC_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "udpchat.h"

#define UDPC_STATE_PATH_MAX 4096

/* Resolve the state directory path into out (not created yet). */
int udpc_state_dir(const char *override, char *out, size_t cap, char *err,
                   size_t err_cap);

/* Load the credential of nick from dir, creating dir and the credential if
 * missing. *created is set to 1 when a new credential was made. */
int udpc_state_credential(const char *dir, const char *nick,
                          uint8_t cred[UDPC_CRED_LEN], int *created, char *err,
                          size_t err_cap);

/* Take an exclusive advisory lock (flock) on nick's credential file, so two
 * clients cannot run the same nick from the same state directory (the second
 * would silently end the first one's session). Returns the locked fd (keep
 * it open while running; close releases), or -1 with err. */
int udpc_state_lock(const char *dir, const char *nick, char *err,
                    size_t err_cap);

#endif /* UDPC_STATE_H */
