/*
 * udpc_rand.h - deterministic randomness for the sans-IO cores.
 *
 * The cores never read OS randomness: every random byte is drawn from a
 * ChaCha20 keystream keyed by a 32-byte seed the caller supplies (the driver
 * takes it from the OS). Same seed, same sequence of calls -> same bytes,
 * which makes every test reproducible. Call i (i = 0, 1, ...) returns the
 * keystream of crypto_stream_chacha20 with key = seed and nonce = i
 * (little-endian u64), so calls never overlap. Not thread-safe (one
 * generator per core object).
 */
#ifndef UDPC_RAND_H
#define UDPC_RAND_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint8_t key[32];
  uint64_t counter; /* nonce of the next call */
} udpc_rand;

/* Key the generator with seed (32 bytes, copied). */
void udpc_rand_init(udpc_rand *r, const uint8_t seed[32]);
/* Fill out[0..n) with the next random bytes. */
void udpc_rand_bytes(udpc_rand *r, void *out, size_t n);
uint32_t udpc_rand_u32(udpc_rand *r);
uint64_t udpc_rand_u64(udpc_rand *r);
/* Derive a 32-byte sub-key from seed for a labelled purpose (keyed BLAKE2b
 * of the label): independent keys from one seed without using the stream. */
void udpc_rand_derive(uint8_t out[32], const uint8_t seed[32],
                      const char *label);
/* Wipe the key. */
void udpc_rand_wipe(udpc_rand *r);

#endif /* UDPC_RAND_H */
