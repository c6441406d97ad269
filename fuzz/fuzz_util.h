/*
 * fuzz_util.h - helpers shared by the fuzz harnesses: a byte reader that
 * turns the fuzzer's input into choices (running out of input reads zeros),
 * and FZ_CHECK, the oracle assertion (abort() so every engine sees a crash).
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udpc_wire.h"
#include "udpchat.h"

/* The entry point every harness defines (libFuzzer's name; the replay and
 * AFL++ driver in replay.c calls it too). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond)                                                     \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "fuzz oracle failed: %s (%s:%d)\n", #cond, __FILE__, \
              __LINE__);                                                   \
      abort();                                                             \
    }                                                                      \
  } while (0)

typedef struct {
  const uint8_t *p;
  size_t n;
  size_t i;
} fz_rd;

static inline fz_rd fz_rd_make(const uint8_t *p, size_t n) {
  fz_rd r = {p, n, 0};
  return r;
}
static inline size_t fz_left(const fz_rd *r) { return r->n - r->i; }
static inline int fz_done(const fz_rd *r) { return r->i >= r->n; }
static inline uint8_t fz_u8(fz_rd *r) { return r->i < r->n ? r->p[r->i++] : 0; }
static inline uint16_t fz_u16(fz_rd *r) {
  uint16_t v = fz_u8(r);
  return (uint16_t)((v << 8) | fz_u8(r));
}
static inline uint32_t fz_u32(fz_rd *r) {
  uint32_t v = fz_u16(r);
  return (v << 16) | fz_u16(r);
}
static inline uint64_t fz_u64(fz_rd *r) {
  uint64_t v = fz_u32(r);
  return (v << 32) | fz_u32(r);
}
/* Up to *len bytes of the remaining input (borrowed); *len is clamped. */
static inline const uint8_t *fz_take(fz_rd *r, size_t *len) {
  const uint8_t *p = r->p + r->i;
  if (*len > fz_left(r)) *len = fz_left(r);
  r->i += *len;
  return p;
}
static inline void fz_bytes(fz_rd *r, uint8_t *dst, size_t len) {
  for (size_t k = 0; k < len; k++) dst[k] = fz_u8(r);
}

/* A nick: len (0..32, i.e. possibly invalid) and raw bytes, NUL-terminated
 * at len; the rest of the buffer zeroed. */
static inline void fz_raw_nick(fz_rd *r, udpc_nick *n) {
  memset(n, 0, sizeof *n);
  n->len = (uint8_t)(fz_u8(r) % (UDPC_NICK_MAX + 1));
  fz_bytes(r, (uint8_t *)n->s, n->len);
  n->s[n->len] = '\0';
}

/* A nick from a small fixed set (so that names meet), or, rarely, built
 * from valid nick characters of the input. */
static const char *const fz_nicks[] = {"op",   "alice", "bob", "carol",
                                       "dave", "x",     "op2", "zz_-9"};
#define FZ_N_NICKS (sizeof fz_nicks / sizeof fz_nicks[0])

static inline void fz_set_nick(udpc_nick *n, const char *s) {
  memset(n, 0, sizeof *n);
  n->len = (uint8_t)strlen(s);
  memcpy(n->s, s, n->len);
}

static inline void fz_pick_nick(fz_rd *r, udpc_nick *n) {
  static const char cs[] = "abcdefghijklmnopqrstuvwxyz0123456789_-";
  uint8_t b = fz_u8(r);
  if (b < 0xF0u) {
    fz_set_nick(n, fz_nicks[b % FZ_N_NICKS]);
    return;
  }
  memset(n, 0, sizeof *n);
  n->len = (uint8_t)(1 + fz_u8(r) % UDPC_NICK_MAX);
  for (size_t k = 0; k < n->len; k++) n->s[k] = cs[fz_u8(r) % (sizeof cs - 1)];
}

/* Message text: len from the input, printable ASCII (valid) unless the
 * high bit of the first length byte asks for raw bytes. Written into buf
 * (cap >= 1200); returns the length. */
static inline uint16_t fz_text(fz_rd *r, uint8_t *buf, size_t cap) {
  uint16_t v = fz_u16(r);
  int raw = (v & 0x8000u) != 0;
  size_t len = v & 0x7FFu;
  if (len > cap) len = cap;
  if (len > fz_left(r)) len = fz_left(r);
  for (size_t k = 0; k < len; k++) {
    uint8_t b = fz_u8(r);
    buf[k] = raw ? b : (uint8_t)(0x20u + b % 95u);
  }
  return (uint16_t)len;
}

/* An address: family 4 or 6 from the input, the rest from the input. */
static inline void fz_addr(fz_rd *r, udpc_addr *a) {
  memset(a, 0, sizeof *a);
  uint8_t f = fz_u8(r);
  a->family = (f & 1u) ? 6 : 4;
  fz_bytes(r, a->ip, a->family == 4 ? 4u : 16u);
  a->port = fz_u16(r);
}

/* Encode p with validation; if the encoder refuses, serialize it raw (the
 * packet is then malformed on purpose). Returns the length or <= 0. */
static inline int fz_encode_any(const udpc_packet *p, uint8_t *buf,
                                size_t cap) {
  int n = udpc_wire_encode(p, buf, cap);
  if (n > 0) return n;
  return udpc_wire_encode_raw(p, buf, cap);
}

#endif /* FUZZ_UTIL_H */
