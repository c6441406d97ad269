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

/* Called for every mail_append the server makes (tentative, committed = 0),
 * for every append that becomes durable at a commit (committed = 1), and
 * with committed = -1 before an append of a mail that is already stored
 * (a violation of PROTOCOL.md R40). */
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
/* on = 1: the next commit() fails with UDPC_ERR_STORE (the mutations stay
 * pending, as with the in-memory backend); on = 0: disarm. */
/* Make the next commit fail (mode 0: no). KEEP models the in-memory
 * backend (the failed batch stays pending), ROLLBACK the SQLite backend
 * (the failed transaction is rolled back). */
enum { SIM_COMMIT_FAIL_KEEP = 1, SIM_COMMIT_FAIL_ROLLBACK = 2 };
void sim_store_fail_next(udpc_store *st, int mode);
/* Append a mail and commit it at once (used by a planted server bug). */
int sim_store_force_mail(udpc_store *st, const udpc_nick *to,
                         const udpc_nick *from, uint32_t msg_id, uint64_t ts,
                         const uint8_t *text, size_t len);

/* sim_mem.c: live and peak bytes allocated per owner: 0 the server core
 * (with its store), 1..16 the client cores, 17 the simulator itself. */
#define SIM_MEM_OWNERS 18
#define SIM_MEM_NONE (-1)
extern int sim_mem_owner;
extern uint64_t sim_mem_live[SIM_MEM_OWNERS], sim_mem_peak[SIM_MEM_OWNERS];
void sim_mem_reset_peaks(void);

#endif /* UDPC_SIM_H */
