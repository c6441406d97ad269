/*
 * udpc_wire.h - internal helpers of the wire codec (design.md P1-P3), for
 * the server (page packing) and the tests. The public codec API is in
 * udpchat.h.
 */
#ifndef UDPC_WIRE_H
#define UDPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

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

/* Encoded bytes of one table entry (nick, status, addr). */
size_t udpc_wire_entry_size(const udpc_entry *e);

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
