/*
 * udpc_thex.h - small value helpers shared by the unit tests: nicks from C
 * strings, the list of every packet type, and hex pairs to bytes (the
 * notation of tests/vectors/wire.vectors).
 */
#ifndef UDPC_THEX_H
#define UDPC_THEX_H

#include <stddef.h>
#include <stdint.h>

#include "udpchat.h"

/* Every packet type of PROTOCOL.md, in type order. */
#define UDPC_THEX_N_TYPES 21
extern const int udpc_thex_all_types[UDPC_THEX_N_TYPES];

/* The nick s (at most UDPC_NICK_MAX bytes, not checked further). */
udpc_nick udpc_thex_nick(const char *s);

/* The IPv4 address a.b.c.d:port. */
udpc_addr udpc_thex_addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                          uint16_t port);

/* The value of hex digit c, or -1. */
int udpc_thex_hexval(int c);
/* Appends the hex pairs of s (blanks allowed between pairs) to *data,
 * growing it with realloc (one spare byte). Returns 0, or -1 on bad hex or
 * no memory. */
int udpc_thex_append(uint8_t **data, size_t *len, const char *s);

#endif
