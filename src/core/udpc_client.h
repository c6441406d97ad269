/*
 * udpc_client.h - internal inspection API of the client core, for unit tests
 * and the simulator. Not part of the public contract (udpchat.h is).
 */
#ifndef UDPC_CLIENT_H
#define UDPC_CLIENT_H

#include "udpchat.h"

/* Client states (PROTOCOL.md P10), as returned by udpc_client_state(). */
typedef enum {
  UDPC_CS_REGISTERING = 1, /* REGISTER in flight (start-up, reg, re-register) */
  UDPC_CS_ONLINE = 2,      /* registered, session token valid */
  UDPC_CS_OFFLINE = 3,     /* deregistered / kicked, still running */
  UDPC_CS_DONE = 4,        /* exit status set; the driver should quit */
} udpc_client_state_id;

/* Fixed limits of the client core. */
#define UDPC_CLIENT_QUEUE_MAX 64       /* user-queued server requests */
#define UDPC_CLIENT_CHATS_MAX 64       /* chats waiting for a CHAT_ACK */
#define UDPC_CLIENT_TABLE_MAX 100000   /* entries kept from the server table */
#define UDPC_CLIENT_DEDUPE_SENDERS 128 /* senders remembered for dedupe */
#define UDPC_CLIENT_DEDUPE_IDS 64      /* msg ids remembered per sender */
#define UDPC_CLIENT_COOKIE_ROUNDS 4    /* COOKIEs that restart the count */
/* CHATs held until the table lists the sender (R94): as many as one new
 * peer can have awaiting an ACK (UDPC_CLIENT_CHATS_MAX). */
#define UDPC_CLIENT_HELD_CHATS 64

/* Number of entries in the client's copy of the table. */
size_t udpc_client_table_count(const udpc_client *c);
/* Entry i (0-based, sorted by nick bytes) into *out. UDPC_OK, or
 * UDPC_ERR_NOT_FOUND when i is out of range, UDPC_ERR_ARG for NULLs. */
int udpc_client_table_get(const udpc_client *c, size_t i, udpc_entry *out);
/* Current udpc_client_state_id, or UDPC_ERR_ARG for NULL. */
int udpc_client_state(const udpc_client *c);

#endif /* UDPC_CLIENT_H */
