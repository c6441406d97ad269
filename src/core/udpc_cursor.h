/*
 * udpc_cursor.h - the one bounds-checked byte cursor of the protocol core
 * (modelled on s2n_stuffer). Every wire read and write in udpchat goes
 * through it; nothing else indexes a datagram.
 *
 * Reader: reads big-endian integers (design.md P1: "Integers big-endian
 * (network order). No padding, no alignment.") and byte runs from
 * p[pos..len). A read that does not fit fails with UDPC_ERR_TRUNCATED and
 * leaves the cursor unchanged.
 *
 * Writer: appends to p[pos..len). A write that does not fit fails with
 * UDPC_ERR_TOO_BIG and leaves the cursor unchanged. A writer whose p is NULL
 * is a "measuring" writer: it stores nothing and only advances pos (use
 * udpc_writer_measure(), which sets len to SIZE_MAX).
 *
 * Invariant (both kinds): pos <= len. Every length check subtracts from the
 * known-larger side (`n > len - pos`), so it cannot overflow.
 */
#ifndef UDPC_CURSOR_H
#define UDPC_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "udpchat.h"

typedef struct {
  const uint8_t *p;
  size_t len;
  size_t pos;
} udpc_reader;

typedef struct {
  uint8_t *p; /* NULL: measuring writer */
  size_t len;
  size_t pos;
} udpc_writer;

/* ---- Reader ------------------------------------------------------------ */
void udpc_reader_init(udpc_reader *c, const uint8_t *p, size_t len);
size_t udpc_cursor_remaining(const udpc_reader *c);
UDPC_MUST_USE int udpc_cursor_read_u8(udpc_reader *c, uint8_t *out);
UDPC_MUST_USE int udpc_cursor_read_u16(udpc_reader *c, uint16_t *out);
UDPC_MUST_USE int udpc_cursor_read_u32(udpc_reader *c, uint32_t *out);
UDPC_MUST_USE int udpc_cursor_read_u64(udpc_reader *c, uint64_t *out);
/* Borrow n bytes: *out points into the reader's buffer. */
UDPC_MUST_USE int udpc_cursor_read_bytes(udpc_reader *c, size_t n,
                                         const uint8_t **out);
/* Copy n bytes into dst (which must hold n bytes). */
UDPC_MUST_USE int udpc_cursor_read_copy(udpc_reader *c, void *dst, size_t n);
/* Advance n bytes without looking at them. */
UDPC_MUST_USE int udpc_cursor_skip(udpc_reader *c, size_t n);

/* ---- Writer ------------------------------------------------------------ */
void udpc_writer_init(udpc_writer *c, uint8_t *p, size_t len);
/* A measuring writer: stores nothing, len = SIZE_MAX. */
void udpc_writer_measure(udpc_writer *c);
size_t udpc_writer_space(const udpc_writer *c);
UDPC_MUST_USE int udpc_cursor_write_u8(udpc_writer *c, uint8_t v);
UDPC_MUST_USE int udpc_cursor_write_u16(udpc_writer *c, uint16_t v);
UDPC_MUST_USE int udpc_cursor_write_u32(udpc_writer *c, uint32_t v);
UDPC_MUST_USE int udpc_cursor_write_u64(udpc_writer *c, uint64_t v);
/* Append n bytes from src (src may be NULL only when n == 0). */
UDPC_MUST_USE int udpc_cursor_write_bytes(udpc_writer *c, const void *src,
                                          size_t n);

#endif /* UDPC_CURSOR_H */
