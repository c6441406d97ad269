/*
 * udpc_cursor.c - bounds-checked reader/writer cursor (see udpc_cursor.h).
 */
#include "udpc_cursor.h"

#include <string.h>

#include "udpc_guard.h"

/* ---- Reader ------------------------------------------------------------ */

void udpc_reader_init(udpc_reader *c, const uint8_t *p, size_t len) {
  c->p = p;
  c->len = p ? len : 0;
  c->pos = 0;
}

size_t udpc_cursor_remaining(const udpc_reader *c) { return c->len - c->pos; }

/* The one bounds check of the reader: n more bytes must be present.
 * Subtract from the larger side: pos <= len always holds. */
static int reader_need(const udpc_reader *c, size_t n) {
  UDPC_ENSURE(n <= c->len - c->pos, UDPC_ERR_TRUNCATED);
  return UDPC_OK;
}

int udpc_cursor_read_u8(udpc_reader *c, uint8_t *out) {
  UDPC_GUARD(reader_need(c, 1));
  *out = c->p[c->pos];
  c->pos += 1;
  return UDPC_OK;
}

int udpc_cursor_read_u16(udpc_reader *c, uint16_t *out) {
  UDPC_GUARD(reader_need(c, 2));
  const uint8_t *b = c->p + c->pos;
  *out = (uint16_t)(((unsigned)b[0] << 8) | (unsigned)b[1]);
  c->pos += 2;
  return UDPC_OK;
}

int udpc_cursor_read_u32(udpc_reader *c, uint32_t *out) {
  UDPC_GUARD(reader_need(c, 4));
  const uint8_t *b = c->p + c->pos;
  *out = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
         ((uint32_t)b[2] << 8) | (uint32_t)b[3];
  c->pos += 4;
  return UDPC_OK;
}

int udpc_cursor_read_u64(udpc_reader *c, uint64_t *out) {
  UDPC_GUARD(reader_need(c, 8));
  const uint8_t *b = c->p + c->pos;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | b[i];
  *out = v;
  c->pos += 8;
  return UDPC_OK;
}

int udpc_cursor_read_bytes(udpc_reader *c, size_t n, const uint8_t **out) {
  UDPC_GUARD(reader_need(c, n));
  /* A zero-length read of an empty (NULL) buffer yields the NULL pointer:
   * NULL + 0 is undefined behaviour in C. */
  *out = (c->p != NULL) ? c->p + c->pos : c->p;
  c->pos += n;
  return UDPC_OK;
}

int udpc_cursor_read_copy(udpc_reader *c, void *dst, size_t n) {
  UDPC_GUARD(reader_need(c, n));
  if (n > 0) memcpy(dst, c->p + c->pos, n);
  c->pos += n;
  return UDPC_OK;
}

int udpc_cursor_skip(udpc_reader *c, size_t n) {
  UDPC_GUARD(reader_need(c, n));
  c->pos += n;
  return UDPC_OK;
}

/* ---- Writer ------------------------------------------------------------ */

void udpc_writer_init(udpc_writer *c, uint8_t *p, size_t len) {
  c->p = p;
  c->len = p ? len : 0;
  c->pos = 0;
}

void udpc_writer_measure(udpc_writer *c) {
  c->p = NULL;
  c->len = SIZE_MAX;
  c->pos = 0;
}

size_t udpc_writer_space(const udpc_writer *c) { return c->len - c->pos; }

/* The one bounds check of the writer: room for n more bytes. */
static int writer_need(const udpc_writer *c, size_t n) {
  UDPC_ENSURE(n <= c->len - c->pos, UDPC_ERR_TOO_BIG);
  return UDPC_OK;
}

int udpc_cursor_write_bytes(udpc_writer *c, const void *src, size_t n) {
  UDPC_GUARD(writer_need(c, n));
  if (c->p && n > 0) memcpy(c->p + c->pos, src, n);
  c->pos += n;
  return UDPC_OK;
}

int udpc_cursor_write_u8(udpc_writer *c, uint8_t v) {
  return udpc_cursor_write_bytes(c, &v, 1);
}

int udpc_cursor_write_u16(udpc_writer *c, uint16_t v) {
  uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  return udpc_cursor_write_bytes(c, b, sizeof b);
}

int udpc_cursor_write_u32(udpc_writer *c, uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                  (uint8_t)v};
  return udpc_cursor_write_bytes(c, b, sizeof b);
}

int udpc_cursor_write_u64(udpc_writer *c, uint64_t v) {
  uint8_t b[8];
  for (int i = 7; i >= 0; i--) {
    b[i] = (uint8_t)v;
    v >>= 8;
  }
  return udpc_cursor_write_bytes(c, b, sizeof b);
}
