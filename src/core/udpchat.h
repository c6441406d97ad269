/*
 * udpchat.h - the one public header of the udpchat protocol core.
 *
 * The core is sans-IO: it never touches sockets, clocks, randomness, stdin or
 * stdout. Time is always an argument (milliseconds on a monotonic clock the
 * caller chooses), random bytes come from a seed the caller supplies, received
 * datagrams and typed commands go in, datagrams and display events come out
 * through callbacks the caller registers.
 *
 * PROTOCOL.md is the contract; section numbers in comments (e.g. "P4.2") refer
 * to it. Every structure here mirrors a byte layout there.
 *
 * Ownership: every _new() returns a handle the caller frees with the matching
 * _free(); _free(NULL) is a no-op. Decoded packets BORROW text bytes from the
 * datagram they were decoded from (udpc_bytes.p points into it): keep the
 * datagram alive while using them. Nicks are copied into fixed arrays.
 */
#ifndef UDPCHAT_H
#define UDPCHAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define UDPC_MUST_USE __attribute__((warn_unused_result))
#else
#define UDPC_MUST_USE
#endif

/* ---- Limits (PROTOCOL.md P2) ------------------------------------------ */
#define UDPC_PROTOCOL_VERSION 1
#define UDPC_MAX_PACKET 1200 /* no datagram is larger */
#define UDPC_HEADER_LEN 6    /* version u8, type u8, id u32 */
#define UDPC_NICK_MAX 32     /* nick: 1..32 bytes of [a-z0-9_-] */
#define UDPC_TEXT_MAX 1100   /* message text: 1..1100 bytes UTF-8 */
#define UDPC_CRED_LEN 32     /* per-nick credential */
#define UDPC_COOKIE_MAX 32   /* address-validation cookie: 1..32 bytes */
/* Most entries one TABLE_PAGE / TABLE_DELTA can hold: (1200 - 31) / 10,
 * smallest entries after the 31-byte prefix. A sender packs as many as fit
 * in UDPC_MAX_PACKET (PROTOCOL.md P3.5, P3.6). */
#define UDPC_TABLE_PAGE_MAX 116
#define UDPC_MAIL_PAGE_MAX 16 /* entries in one MAIL_PAGE */

/* ---- Timers, milliseconds (PROTOCOL.md P8.8) -------------------------- */
#define UDPC_T_REQUEST_RETRY 500  /* client->server retransmission interval */
#define UDPC_N_REQUEST_SENDS 5    /* sends before "server not responding" */
#define UDPC_T_CHAT_ACK 500       /* wait for a peer's CHAT_ACK */
#define UDPC_T_HEARTBEAT 10000    /* client heartbeat interval */
#define UDPC_N_HEARTBEAT_MISSED 3 /* server: offline after 3 intervals silent */
#define UDPC_T_PROBE_RETRY 250    /* server: PROBE resent after this */
#define UDPC_T_PROBE_TIMEOUT 500  /* server: recipient dead after this */
#define UDPC_T_COOKIE_BUCKET 30000 /* cookie time bucket; valid 2 buckets */
#define UDPC_T_DELTA_WINDOW 50     /* server: table changes coalesced (P6.3) */

/* ---- Errors: one enum, negative values, udpc_strerror() --------------- */
typedef enum {
  UDPC_OK = 0,
  UDPC_ERR_TRUNCATED = -1,  /* datagram ends inside a field */
  UDPC_ERR_TRAILING = -2,   /* bytes left after the last field */
  UDPC_ERR_VERSION = -3,    /* version byte is not 1 */
  UDPC_ERR_TYPE = -4,       /* unknown packet type */
  UDPC_ERR_LENGTH = -5,     /* a length or count field out of its range */
  UDPC_ERR_UTF8 = -6,       /* text is not valid UTF-8 */
  UDPC_ERR_CONTROL = -7,    /* text holds a control character */
  UDPC_ERR_NICK = -8,       /* nick is not 1..32 bytes of [a-z0-9_-] */
  UDPC_ERR_VALUE = -9,      /* enumerated/fixed field holds a bad value */
  UDPC_ERR_TOO_BIG = -10,   /* would exceed the buffer or 1200 bytes */
  UDPC_ERR_NOMEM = -11,     /* allocation failed / fixed capacity full */
  UDPC_ERR_ARG = -12,       /* invalid argument to an API call */
  UDPC_ERR_STORE = -13,     /* the store failed to commit */
  UDPC_ERR_STATE = -14,     /* call not valid in the current state */
  UDPC_ERR_NOT_FOUND = -15, /* no such entry */
} udpc_err;

/* A static, never-NULL English description of an error code. */
const char *udpc_strerror(int err);

/* ---- Addresses --------------------------------------------------------- */
typedef struct {
  uint8_t family; /* 4 or 6 */
  uint8_t ip[16]; /* 4 bytes used for family 4, network order */
  uint16_t port;  /* host order */
} udpc_addr;

int udpc_addr_equal(const udpc_addr *a, const udpc_addr *b);

/* ---- Packet types (PROTOCOL.md P3) ------------------------------------ */
typedef enum {
  UDPC_PT_REGISTER = 0x01,        /* C->S  cookie, nick, credential */
  UDPC_PT_COOKIE = 0x02,          /* S->C  cookie */
  UDPC_PT_REGISTER_RESULT = 0x03, /* S->C  status, token, version, mail */
  UDPC_PT_TABLE_REQ = 0x10,       /* C->S  [token] start */
  UDPC_PT_TABLE_PAGE = 0x11,    /* S->C  [token] version,total,start,entries */
  UDPC_PT_TABLE_DELTA = 0x12,   /* S->C  [token] base,new,entries */
  UDPC_PT_HEARTBEAT = 0x20,     /* C->S  [token] */
  UDPC_PT_HEARTBEAT_ACK = 0x21, /* S->C  [token] version */
  UDPC_PT_DEREG = 0x30,         /* C->S  [token] */
  UDPC_PT_DEREG_OTHER = 0x31,   /* C->S  [token] target nick (deregA) */
  UDPC_PT_DEREG_RESULT = 0x32,  /* S->C  [token] status */
  UDPC_PT_KICKED = 0x33,        /* S->C  [token] operator nick */
  UDPC_PT_SAVE = 0x40,          /* C->S  [token] to, msg_id, text */
  UDPC_PT_SAVE_RESULT = 0x41,   /* S->C  [token] status [entry] */
  UDPC_PT_MAIL_REQ = 0x50,      /* C->S  [token] ack_upto */
  UDPC_PT_MAIL_PAGE = 0x51,     /* S->C  [token] remaining, entries */
  UDPC_PT_PROBE = 0x60,         /* S->C  [token] */
  UDPC_PT_PROBE_ACK = 0x61,     /* C->S  [token] */
  UDPC_PT_CHAT = 0x70,          /* P->P  from, to, text */
  UDPC_PT_CHAT_ACK = 0x71,      /* P->P  from */
  UDPC_PT_ERROR = 0x7f,         /* any   code */
} udpc_ptype;

/* A short upper-case name ("REGISTER"), or "UNKNOWN". */
const char *udpc_ptype_name(int type);
/* 1 if packets of this type carry a session token right after the header. */
int udpc_ptype_has_token(int type);

/* Status codes (one byte on the wire). */
typedef enum {
  UDPC_REG_OK = 0,
  UDPC_REG_NICK_TAKEN = 1,   /* nick bound to another credential */
  UDPC_REG_INVALID_NICK = 2, /* nick syntax or reserved nick */
  UDPC_REG_SERVER_FULL = 3,  /* client capacity reached */
  UDPC_REG_STORE_ERROR = 4,  /* server could not commit; try later */
} udpc_reg_status;
#define UDPC_REG_STATUS_MAX 4

typedef enum {
  UDPC_DEREG_OK = 0,
  UDPC_DEREG_NOT_PERMITTED = 1, /* deregA by a non-operator */
  UDPC_DEREG_UNKNOWN_NICK = 2,  /* deregA target not registered */
  UDPC_DEREG_STORE_ERROR = 3,
} udpc_dereg_status;
#define UDPC_DEREG_STATUS_MAX 3

typedef enum {
  UDPC_SAVE_SAVED = 0,
  UDPC_SAVE_RECIPIENT_ONLINE = 1, /* probe answered; entry follows */
  UDPC_SAVE_UNKNOWN_RECIPIENT = 2,
  UDPC_SAVE_QUOTA = 3, /* recipient's mailbox or store full */
  UDPC_SAVE_STORE_ERROR = 4,
} udpc_save_status;
#define UDPC_SAVE_STATUS_MAX 4

typedef enum {
  UDPC_ERROR_BAD_SESSION = 1,   /* token unknown: register again */
  UDPC_ERROR_SESSION_ENDED = 2, /* token known but deregistered */
  UDPC_ERROR_MALFORMED = 3,     /* request failed to decode */
  UDPC_ERROR_VERSION = 4,       /* version not supported (we speak 1) */
  UDPC_ERROR_RATE_LIMITED = 5,
  UDPC_ERROR_INTERNAL = 6,
} udpc_error_code;
#define UDPC_ERROR_CODE_MAX 6

typedef enum {
  UDPC_STATUS_OFFLINE = 0,
  UDPC_STATUS_ONLINE = 1,
  UDPC_STATUS_REMOVED = 2, /* only in TABLE_DELTA: entry deleted */
} udpc_status;

/* ---- Field types ------------------------------------------------------- */
typedef struct {
  uint8_t len;               /* 1..32 */
  char s[UDPC_NICK_MAX + 1]; /* NUL-terminated copy */
} udpc_nick;

typedef struct {
  const uint8_t *p; /* borrowed: points into the decoded datagram */
  uint16_t len;     /* 1..UDPC_TEXT_MAX */
} udpc_bytes;

typedef struct {
  udpc_nick nick;
  uint8_t status; /* udpc_status */
  udpc_addr addr;
} udpc_entry;

typedef struct {
  uint64_t seq;          /* server-assigned, increasing per recipient */
  uint32_t msg_id;       /* the sender's message id (dedupe key) */
  uint64_t timestamp_ms; /* UTC milliseconds since the Unix epoch */
  udpc_nick from;
  udpc_bytes text;
} udpc_mail;

/* ---- Decoded packet ---------------------------------------------------- */
typedef struct {
  uint8_t type;   /* udpc_ptype */
  uint32_t id;    /* request id / message id */
  uint64_t token; /* valid when udpc_ptype_has_token(type) */
  union {
    struct {
      uint8_t cookie_len;
      uint8_t cookie[UDPC_COOKIE_MAX];
      udpc_nick nick;
      uint8_t credential[UDPC_CRED_LEN];
    } reg;
    struct {
      uint8_t cookie_len;
      uint8_t cookie[UDPC_COOKIE_MAX];
    } cookie;
    struct {
      uint8_t status;
      uint64_t token;
      uint64_t table_version;
      uint32_t mail_count;
    } reg_result;
    struct {
      uint32_t start;
    } table_req;
    struct {
      uint64_t version;
      uint32_t total;
      uint32_t start;
      uint8_t count;
      udpc_entry entries[UDPC_TABLE_PAGE_MAX];
    } table_page;
    struct {
      uint64_t base_version;
      uint64_t new_version;
      uint8_t count;
      udpc_entry entries[UDPC_TABLE_PAGE_MAX];
    } table_delta;
    struct {
      uint64_t table_version;
    } heartbeat_ack;
    struct {
      udpc_nick target;
    } dereg_other;
    struct {
      uint8_t status;
    } dereg_result;
    struct {
      udpc_nick by;
    } kicked;
    struct {
      udpc_nick to;
      uint32_t msg_id;
      udpc_bytes text;
    } save;
    struct {
      uint8_t status;
      udpc_entry entry; /* iff RECIPIENT_ONLINE */
    } save_result;
    struct {
      uint64_t ack_upto;
    } mail_req;
    struct {
      uint32_t remaining;
      uint8_t count;
      udpc_mail mail[UDPC_MAIL_PAGE_MAX];
    } mail_page;
    struct {
      udpc_nick from;
      udpc_nick to;
      udpc_bytes text;
    } chat;
    struct {
      udpc_nick from;
    } chat_ack;
    struct {
      uint8_t code;
    } error;
  } u;
} udpc_packet;

/* Decode one datagram. Returns UDPC_OK or a negative udpc_err; on error the
 * contents of *out are unspecified. Never reads outside data[0..len). */
UDPC_MUST_USE int udpc_wire_decode(udpc_packet *out, const uint8_t *data,
                                   size_t len);

/* Decode only the 6-byte header (version, type, id); for replying ERROR to
 * packets whose body is malformed. Returns UDPC_OK, UDPC_ERR_TRUNCATED,
 * UDPC_ERR_VERSION or UDPC_ERR_TYPE (type/id still filled for the last two). */
UDPC_MUST_USE int udpc_wire_decode_header(uint8_t *type, uint32_t *id,
                                          const uint8_t *data, size_t len);

/* Encode into buf[0..cap). Returns the encoded length (>0) or a negative
 * udpc_err. Refuses (same error code) anything udpc_wire_decode would
 * refuse, and anything longer than UDPC_MAX_PACKET. */
UDPC_MUST_USE int udpc_wire_encode(const udpc_packet *p, uint8_t *buf,
                                   size_t cap);

/* Canonical one-line text dump of a decoded packet, e.g.
 * "REGISTER id=7 cookie= nick=alice credential=0011..ff". Used for debug
 * logs and as the expected-fields form in tests/vectors/wire.vectors
 * (PROTOCOL.md P10 gives the exact grammar). Text fields are written as
 * JSON-style escaped strings. Returns length or UDPC_ERR_TOO_BIG. */
int udpc_wire_format(const udpc_packet *p, char *buf, size_t cap);

/* ---- Field validation (PROTOCOL.md P2) -------------------------------- */
/* 0 if s[0..len) is a valid wire nick, else UDPC_ERR_NICK. */
int udpc_nick_check(const char *s, size_t len);
/* Case-fold user input into a wire nick: ASCII upper -> lower; then check. */
int udpc_nick_from_input(udpc_nick *out, const char *s, size_t len);
/* 0 if valid message text (1..1100 bytes, UTF-8, no controls), else
 * UDPC_ERR_LENGTH / UDPC_ERR_UTF8 / UDPC_ERR_CONTROL. */
int udpc_text_check(const uint8_t *p, size_t len);

/* ======================================================================
 * The sans-IO cores. Every entry point takes `now` in milliseconds. For the
 * server, `now` is UTC milliseconds since the Unix epoch (it stamps stored
 * mail with it); for the client, any monotonic millisecond clock.
 * ====================================================================== */

/* Output side of a core. The core calls these synchronously; `data`/`msg`
 * are valid only for the duration of the call (the caller copies). */
typedef struct {
  void *ctx;
  void (*send)(void *ctx, const udpc_addr *to, const uint8_t *data, size_t len);
  /* level: 0 error, 1 warning, 2 info, 3 debug. May be NULL. */
  void (*log)(void *ctx, int level, const char *msg);
  /* The most verbose level `log` wants, plus one: 0 (the zero value)
   * passes every level; 1 errors only, 2 up to warnings, 3 up to info,
   * 4 everything. The cores do not even build lines above it: a debug
   * trace of every datagram costs more than handling the datagram. */
  int log_limit;
} udpc_io;

/* ---- Store (PROTOCOL.md P7): registrations and offline mail ----------- */
/* Opaque; created by a backend constructor, freed with udpc_store_free.
 * The server borrows it (does not free it). "Acknowledged means committed":
 * the server emits acknowledgements of state changes only after
 * the store's commit succeeded (see udpc_server_flush). */
typedef struct udpc_store udpc_store;
udpc_store *udpc_store_mem_new(void); /* in-memory backend */
void udpc_store_free(udpc_store *st);

/* ---- Server core -------------------------------------------------------- */
typedef struct udpc_server udpc_server;

typedef struct {
  uint8_t seed[32];             /* randomness: tokens, cookie keys */
  const char *const *operators; /* nicks allowed to deregA others */
  size_t n_operators;
  uint32_t max_clients;        /* 0: default 100000 */
  uint32_t mail_per_recipient; /* 0: default 1000 */
  uint32_t mail_total;         /* 0: default 1000000 */
  udpc_store *store;           /* borrowed, required */
  udpc_io io;
  /* Per-source rate limits (token buckets; PROTOCOL.md P9.4, SECURITY.md).
   * A datagram of a live session (its token, from its address) is charged
   * to that session's bucket; every other datagram (REGISTER, unknown or
   * ended token, malformed, wrong direction) to the bucket of its source
   * address (IP and port; a bounded table, the oldest entry is evicted).
   * Over the limit a datagram is dropped unanswered and counted. Rates are
   * datagrams per second, bursts bucket sizes in datagrams. 0: default;
   * a rate of UINT32_MAX: no limit for that class. */
  uint32_t source_rate;   /* 0: default 50 */
  uint32_t source_burst;  /* 0: default 100 */
  uint32_t session_rate;  /* 0: default 1000 */
  uint32_t session_burst; /* 0: default 2000 */
} udpc_server_config;

typedef struct {
  uint64_t rx, tx, rx_bytes, tx_bytes;
  uint64_t dropped_malformed, dropped_bad_session, dropped_unexpected;
  uint64_t registered, online, mail_stored, mail_delivered, probes_sent;
  /* Limits (SECURITY.md): drops and refusals by cause. dropped_probes_full
   * and dropped_held_full are also counted in dropped_unexpected. */
  uint64_t dropped_rate_limited;         /* over a source address's bucket */
  uint64_t dropped_session_rate_limited; /* over a live session's bucket */
  uint64_t dropped_probes_full;          /* SAVE: 1024 probes pending */
  uint64_t dropped_held_full;            /* 1024 acks wait for a commit */
  uint64_t refused_server_full;          /* REGISTER_RESULT SERVER_FULL */
  uint64_t refused_quota;                /* SAVE_RESULT QUOTA */
  uint64_t sources_evicted;              /* source buckets reused (LRU) */
  uint64_t log_suppressed;               /* log lines the limiter withheld */
} udpc_server_stats;

/* Loads registrations from the store (everyone starts offline). NULL on
 * bad config or allocation failure. */
udpc_server *udpc_server_new(const udpc_server_config *cfg, uint64_t now);
void udpc_server_free(udpc_server *s);
/* One received datagram. Never fails on bad input (drops and counts it);
 * returns UDPC_OK, or UDPC_ERR_ARG for NULL arguments. */
int udpc_server_recv(udpc_server *s, uint64_t now, const udpc_addr *from,
                     const uint8_t *data, size_t len);
/* Commit the store, then send the acknowledgements that waited for it.
 * Call after each batch of udpc_server_recv/handle_expiry calls. If the
 * commit fails the held acknowledgements are discarded (the clients will
 * retransmit) and UDPC_ERR_STORE is returned. */
int udpc_server_flush(udpc_server *s, uint64_t now);
/* Earliest time handle_expiry must be called; UINT64_MAX if none. */
uint64_t udpc_server_next_deadline(const udpc_server *s);
void udpc_server_handle_expiry(udpc_server *s, uint64_t now);
void udpc_server_get_stats(const udpc_server *s, udpc_server_stats *out);

/* ---- Typed commands (the client's command line) ----------------------- */
typedef enum {
  UDPC_CMD_SEND = 1, /* send <nick> <message> */
  UDPC_CMD_LIST,     /* list */
  UDPC_CMD_REG,      /* reg <nick> */
  UDPC_CMD_DEREG,    /* dereg <nick> */
  UDPC_CMD_DEREGA,   /* deregA <nick> */
  UDPC_CMD_EXIT,     /* exit */
  UDPC_CMD_HELP,     /* help [command] */
} udpc_cmd_type;

typedef struct {
  int type;        /* udpc_cmd_type */
  udpc_nick nick;  /* folded nick argument, if any */
  const char *arg; /* borrowed: message text or help topic */
  size_t arg_len;
} udpc_cmd;

/* Parse one line (no trailing newline). Returns UDPC_OK or a negative
 * error, writing a bracketed human message into err (if err_cap > 0). */
int udpc_cmd_parse(udpc_cmd *out, const char *line, size_t len, char *err,
                   size_t err_cap);

/* ---- Client core --------------------------------------------------------- */
typedef enum {
  UDPC_EV_REGISTERED = 1, /* [Welcome, You are registered.] */
  UDPC_EV_REG_REFUSED,    /* status: udpc_reg_status */
  UDPC_EV_TABLE_UPDATED,  /* [Client table updated.] */
  UDPC_EV_DELIVERED,      /* [Message received by <nick>.] */
  UDPC_EV_NO_ACK,         /* [No ACK from <nick>, message sent to server.] */
  UDPC_EV_CHAT,           /* <nick>: <text> */
  UDPC_EV_SAVED,          /* [Messages received by the server and saved] */
  UDPC_EV_EXISTS,         /* [Client <nick> exists!!] */
  UDPC_EV_SAVE_REFUSED,   /* status: udpc_save_status; nick: recipient */
  UDPC_EV_OFFLINE,        /* [You are Offline. Bye.] */
  UDPC_EV_DEREG_OTHER,    /* deregA result; status, nick: target */
  UDPC_EV_KICKED,         /* deregistered by operator <nick> */
  UDPC_EV_SERVER_DOWN,    /* [Server not responding] */
  UDPC_EV_EXITING,        /* [Exiting]: the client is done */
  UDPC_EV_HAVE_MAIL,      /* [You have messages] */
  UDPC_EV_MAIL,           /* <nick>: <timestamp> <text> */
  UDPC_EV_LIST_ROW,       /* one row of `list`: entry, width */
  UDPC_EV_NOTICE,         /* any other bracketed line: text */
} udpc_event_type;

typedef struct {
  int type;   /* udpc_event_type */
  int status; /* event-specific status code */
  udpc_nick nick;
  udpc_bytes text;       /* borrowed for the callback's duration */
  uint64_t timestamp_ms; /* EV_MAIL: UTC ms */
  udpc_entry entry;      /* EV_LIST_ROW */
  int width;             /* EV_LIST_ROW: nick column width; row 0 = header */
} udpc_event;

/* Writes the display line for ev (without the ">>> " prompt prefix) into
 * buf, NUL-terminated; returns its length or UDPC_ERR_TOO_BIG. */
int udpc_event_format(const udpc_event *ev, char *buf, size_t cap);

typedef struct udpc_client udpc_client;

typedef struct {
  udpc_nick nick;                    /* folded */
  uint8_t credential[UDPC_CRED_LEN]; /* from the client's state file */
  udpc_addr server;
  uint8_t seed[32]; /* randomness: ids */
  udpc_io io;
  void (*event)(void *ctx, const udpc_event *ev); /* ctx is io.ctx */
} udpc_client_config;

udpc_client *udpc_client_new(const udpc_client_config *cfg, uint64_t now);
void udpc_client_free(udpc_client *c);
/* Begin registration (sends REGISTER). */
int udpc_client_start(udpc_client *c, uint64_t now);
int udpc_client_recv(udpc_client *c, uint64_t now, const udpc_addr *from,
                     const uint8_t *data, size_t len);
/* One typed line. Errors are reported as events; returns UDPC_OK or
 * UDPC_ERR_ARG. */
int udpc_client_command(udpc_client *c, uint64_t now, const char *line,
                        size_t len);
uint64_t udpc_client_next_deadline(const udpc_client *c);
void udpc_client_handle_expiry(udpc_client *c, uint64_t now);
/* 1 when a typed command given now would not be refused for a passing
 * reason (registration in progress, or its first table still arriving;
 * request queue or chats awaiting ACK full), else 0. A driver holds further input lines while it is 0, so a
 * pasted or piped burst is delivered in order instead of refused. */
int udpc_client_ready(const udpc_client *c);
/* -1 while running; else the process exit status the client asks for. */
int udpc_client_exit_status(const udpc_client *c);

#ifdef __cplusplus
}
#endif
#endif /* UDPCHAT_H */
