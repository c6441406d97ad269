/*
 * sim.h - the deterministic network simulator of udpchat (issue 4).
 *
 * sim_store.c: a store backend with crash semantics, wrapping the in-memory
 * store. Everything written since the last successful commit is lost when
 * the simulated server crashes (sim_store_crash). See sim/README.md.
 */
#ifndef UDPC_SIM_H
#define UDPC_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "udpc_store.h"
#include "udpchat.h"

/* Called for every mail_append the server makes (tentative), and for every
 * append that becomes durable at a commit (committed = 1). */
typedef void (*sim_store_mail_cb)(void *ctx, const udpc_nick *to,
                                  const udpc_nick *from, uint32_t msg_id,
                                  const uint8_t *text, size_t text_len,
                                  uint64_t seq, int committed);

/* A crash-semantics store over udpc_store_mem. `plant_unsafe_commit`: the
 * planted bug "ACK a save before committing it": commit() reports success
 * but the mail appended in the batch is not made durable. */
udpc_store *sim_store_new(int plant_unsafe_commit, sim_store_mail_cb cb,
                          void *ctx);
/* The server process died: forget every uncommitted mutation (rebuild the
 * live state from the committed history). */
int sim_store_crash(udpc_store *st);
/* Append a mail and commit it at once (used by a planted server bug). */
int sim_store_force_mail(udpc_store *st, const udpc_nick *to,
                         const udpc_nick *from, uint32_t msg_id, uint64_t ts,
                         const uint8_t *text, size_t len);

#endif /* UDPC_SIM_H */
