/*
 * udpc_srvstore.h - the server's message store, as the driver opens it:
 * `--store memory|sqlite` (default sqlite) and
 * `--data-dir DIR` (default $XDG_STATE_HOME/udpchat/server, else
 * $HOME/.local/state/udpchat/server, else ./udpchat-server-data). The data
 * directory and its missing parents are created with mode 0700; the
 * database is DIR/server.db (mode 0600).
 */
#ifndef UDPC_SRVSTORE_H
#define UDPC_SRVSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "udpchat.h"

#define UDPC_SRVSTORE_DEFAULT 0 /* sqlite */
#define UDPC_SRVSTORE_SQLITE 1
#define UDPC_SRVSTORE_MEMORY 2

/* "sqlite" / "memory" -> UDPC_SRVSTORE_*, else -1. */
int udpc_srvstore_parse(const char *name);

/* Resolve the data directory path into out (not created). */
int udpc_srvstore_data_dir(const char *override, char *out, size_t cap,
                           char *err, size_t err_cap);

/* Open the store of the given kind. For sqlite: resolve and create the data
 * directory, open (migrate, check) the database, and route the backend's
 * failure messages to the log. *kind_out receives the kind used; path_out
 * (may be NULL) the database path ("" for memory). NULL with err on
 * failure. */
udpc_store *udpc_srvstore_open(int kind, const char *data_dir, int *kind_out,
                               char *path_out, size_t path_cap, char *err,
                               size_t err_cap);

#endif /* UDPC_SRVSTORE_H */
