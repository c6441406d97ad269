/*
 * udpc_wire.h - internal helpers of the wire codec (design.md P1-P3), for
 * the server (page packing) and the tests. The public codec API is in
 * udpchat.h.
 */
#ifndef UDPC_WIRE_H
#define UDPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "udpc_cursor.h"
#include "udpchat.h"

/* Token length on the wire (design.md P1: "token u64 at offset 6"). */
#define UDPC_TOKEN_LEN 8

/* MAIL_PAGE: header, token, remaining u32, count u8 (design.md P3). */
#define UDPC_MAIL_PAGE_FIXED (UDPC_HEADER_LEN + UDPC_TOKEN_LEN + 4 + 1) /* 19 */
/* One mail without its variable bytes: seq u64, msg_id u32, timestamp u64,
 * from-nick length u8, text length u16 (design.md P2 `mail`). */
#define UDPC_MAIL_ENTRY_FIXED (8 + 4 + 8 + 1 + 2) /* 23 */
/* Largest mail: 23 + 32 + 1100 = 1155; a page holding one always fits
 * (19 + 1155 = 1174 <= 1200). */
#define UDPC_MAIL_ENTRY_MAX \
  (UDPC_MAIL_ENTRY_FIXED + UDPC_NICK_MAX + UDPC_TEXT_MAX)

/* TABLE_PAGE: header, token, version u64, total u32, start u32, count u8. */
#define UDPC_TABLE_PAGE_FIXED (UDPC_HEADER_LEN + UDPC_TOKEN_LEN + 8 + 4 + 4 + 1)
/* TABLE_DELTA: header, token, base u64, new u64, count u8. */
#define UDPC_TABLE_DELTA_FIXED (UDPC_HEADER_LEN + UDPC_TOKEN_LEN + 8 + 8 + 1)
/* Largest entry: nick 1+32, status 1, family 1 + 16, port 2 = 53; 22 of
 * them always fit in one page (31 + 22 * 53 = 1197 <= 1200). Smallest: a
 * 1-byte nick and IPv4 = 10, so at most UDPC_TABLE_PAGE_MAX = (1200 - 31)
 * / 10 = 116 entries fit. A sender packs entries while the packet stays
 * within UDPC_MAX_PACKET (P3.5, P3.6). */
#define UDPC_ENTRY_MAX (1 + UDPC_NICK_MAX + 1 + 1 + 16 + 2)
#define UDPC_ENTRY_MIN (1 + 1 + 1 + 1 + 4 + 2)

/* Encoded bytes of one mail entry inside a MAIL_PAGE:
 * UDPC_MAIL_ENTRY_FIXED + from.len + text.len. A server fills a page while
 * UDPC_MAIL_PAGE_FIXED + sum(udpc_wire_mail_size) <= UDPC_MAX_PACKET and
 * count <= UDPC_MAIL_PAGE_MAX. */
size_t udpc_wire_mail_size(const udpc_mail *m);

/* Encoded bytes of one table entry (nick, status, addr): P2.6, nick str8,
 * status u8, family u8, 4 or 16 address bytes, port u16. */
size_t udpc_wire_entry_len(const udpc_nick *nick, const udpc_addr *addr);
size_t udpc_wire_entry_size(const udpc_entry *e);

/* ---- One-pass TABLE_PAGE / TABLE_DELTA builder ----------------------------
 * For a sender whose entries are already valid (the server's table: every
 * nick was checked when it registered, every status and family is one the
 * server sets): the packet is written in one pass through a udpc_writer
 * bounded by min(cap, UDPC_MAX_PACKET), the entries' nicks are NOT checked
 * again. For valid entries the bytes are exactly those udpc_wire_encode
 * gives for the same packet (tests/unit/test_wire.c checks it). Usage:
 * begin, append while it returns 1 (0: the entry does not fit in the
 * datagram, or UDPC_TABLE_PAGE_MAX entries are in), finish (writes the
 * count, returns the length). The caller keeps the packet's own rules
 * (start + count <= total; a delta has count >= 1 and new > base). */
typedef struct {
  udpc_writer w;   /* over buf[0 .. min(cap, UDPC_MAX_PACKET)) */
  size_t count_at; /* offset of the count byte */
  uint8_t count;   /* entries appended */
  uint8_t type;    /* UDPC_PT_TABLE_PAGE or UDPC_PT_TABLE_DELTA */
} udpc_wire_table;

/* Header of a TABLE_PAGE (version, total, start) or TABLE_DELTA (base_version,
 * new_version); the count is written by finish. UDPC_ERR_TOO_BIG if cap
 * cannot hold the fixed part, UDPC_ERR_ARG for NULL pointers. */
UDPC_MUST_USE int udpc_wire_page_begin(udpc_wire_table *t, uint8_t *buf,
                                       size_t cap, uint32_t id, uint64_t token,
                                       uint64_t version, uint32_t total,
                                       uint32_t start);
UDPC_MUST_USE int udpc_wire_delta_begin(udpc_wire_table *t, uint8_t *buf,
                                        size_t cap, uint32_t id, uint64_t token,
                                        uint64_t base_version,
                                        uint64_t new_version);
/* Append one entry (nick, status, addr): 1 if appended, 0 if it does not
 * fit (nothing written), UDPC_ERR_ARG if the nick length is beyond the nick
 * buffer. */
UDPC_MUST_USE int udpc_wire_table_append(udpc_wire_table *t,
                                         const udpc_nick *nick, uint8_t status,
                                         const udpc_addr *addr);
/* Append one entry already encoded by udpc_wire_entry_encode (n bytes): 1,
 * or 0 if it does not fit. */
UDPC_MUST_USE int udpc_wire_table_append_bytes(udpc_wire_table *t,
                                               const uint8_t *b, size_t n);
/* TABLE_DELTA only: (re)write base_version and new_version (a sender that
 * learns the chunk's last version only when it is full). */
UDPC_MUST_USE int udpc_wire_delta_set_versions(udpc_wire_table *t,
                                               uint64_t base_version,
                                               uint64_t new_version);
/* Write the count; returns the packet's length. */
UDPC_MUST_USE int udpc_wire_table_finish(udpc_wire_table *t);
/* Encode one entry as it appears in a page or delta into out[0..cap):
 * returns its length (udpc_wire_entry_size) or UDPC_ERR_TOO_BIG /
 * UDPC_ERR_ARG. Not validated (see above). */
UDPC_MUST_USE int udpc_wire_entry_encode(const udpc_nick *nick, uint8_t status,
                                         const udpc_addr *addr, uint8_t *out,
                                         size_t cap);

/* TESTING ONLY: serialize *p exactly as its fields say, with NO validation
 * (bad nicks, lengths, enum values are written as they are; version is 1).
 * Fails only with UDPC_ERR_ARG when the struct cannot be serialized (a count
 * beyond its array, a nick length beyond the nick buffer, NULL text with a
 * nonzero length) and UDPC_ERR_TOO_BIG when cap is too small. Lets tests
 * check that udpc_wire_encode(p) refuses with exactly the code that
 * udpc_wire_decode gives for these bytes. */
UDPC_MUST_USE int udpc_wire_encode_raw(const udpc_packet *p, uint8_t *buf,
                                       size_t cap);

#endif /* UDPC_WIRE_H */
