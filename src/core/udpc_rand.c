/*
 * udpc_rand.c - deterministic randomness (see udpc_rand.h). libsodium's
 * ChaCha20 and BLAKE2b work without sodium_init() (they start on the
 * portable implementations), so the core never triggers OS randomness.
 */
#include "udpc_rand.h"

#include <sodium.h>
#include <string.h>

void udpc_rand_init(udpc_rand *r, const uint8_t seed[32]) {
  memcpy(r->key, seed, sizeof r->key);
  r->counter = 0;
}

void udpc_rand_bytes(udpc_rand *r, void *out, size_t n) {
  uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
  uint64_t c = r->counter++;
  for (size_t i = 0; i < sizeof nonce; i++) {
    nonce[i] = (uint8_t)(c & 0xff);
    c >>= 8;
  }
  if (n == 0) return;
  crypto_stream_chacha20((unsigned char *)out, (unsigned long long)n, nonce,
                         r->key);
}

uint32_t udpc_rand_u32(udpc_rand *r) {
  uint8_t b[4];
  udpc_rand_bytes(r, b, sizeof b);
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         (uint32_t)b[3];
}

uint64_t udpc_rand_u64(udpc_rand *r) {
  uint8_t b[8];
  uint64_t v = 0;
  udpc_rand_bytes(r, b, sizeof b);
  for (size_t i = 0; i < sizeof b; i++) v = v << 8 | b[i];
  return v;
}

void udpc_rand_derive(uint8_t out[32], const uint8_t seed[32],
                      const char *label) {
  crypto_generichash(out, 32, (const unsigned char *)label, strlen(label), seed,
                     32);
}

void udpc_rand_wipe(udpc_rand *r) {
  sodium_memzero(r->key, sizeof r->key);
  r->counter = 0;
}
