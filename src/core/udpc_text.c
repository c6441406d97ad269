/*
 * udpc_text.c - field validation (design.md P2): nicks, message text,
 * addresses.
 */
#include <string.h>

#include "udpc_guard.h"
#include "udpchat.h"

/* design.md P2: "`str8 nick`: u8 length 1..32 then bytes of [a-z0-9_-] ...
 * every nick problem is UDPC_ERR_NICK". */
static int nick_byte_ok(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
         ch == '-';
}

int udpc_nick_check(const char *s, size_t len) {
  UDPC_ENSURE(s != NULL, UDPC_ERR_NICK);
  UDPC_ENSURE(len >= 1 && len <= UDPC_NICK_MAX, UDPC_ERR_NICK);
  for (size_t i = 0; i < len; i++)
    UDPC_ENSURE(nick_byte_ok((unsigned char)s[i]), UDPC_ERR_NICK);
  return UDPC_OK;
}

/* design.md P2: "Nicks are case-folded by the client (ASCII A-Z -> a-z)
 * before they go on the wire; the wire carries folded nicks only". */
int udpc_nick_from_input(udpc_nick *out, const char *s, size_t len) {
  UDPC_ENSURE(out != NULL, UDPC_ERR_ARG);
  memset(out, 0, sizeof *out);
  UDPC_ENSURE(s != NULL, UDPC_ERR_NICK);
  UDPC_ENSURE(len >= 1 && len <= UDPC_NICK_MAX, UDPC_ERR_NICK);
  char folded[UDPC_NICK_MAX];
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    folded[i] = ch;
  }
  UDPC_GUARD(udpc_nick_check(folded, len));
  memcpy(out->s, folded, len);
  out->s[len] = '\0';
  out->len = (uint8_t)len;
  return UDPC_OK;
}

/* Decode one UTF-8 scalar value starting at p[i] (i < len), strictly per the
 * RFC 3629 section 4 syntax: no overlong forms, no surrogates (U+D800..DFFF),
 * nothing above U+10FFFF, no truncated sequence. Returns the sequence length
 * (1..4) and the code point in *cp, or 0 if the bytes there are not UTF-8. */
static size_t utf8_next(const uint8_t *p, size_t len, size_t i, uint32_t *cp) {
  const uint8_t b0 = p[i];
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
  uint32_t v;
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
    v = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    v = b0 & 0x0Fu;
    if (b0 == 0xE0)
      lo = 0xA0; /* overlong below U+0800 */
    else if (b0 == 0xED)
      hi = 0x9F; /* surrogates U+D800..U+DFFF */
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    v = b0 & 0x07u;
    if (b0 == 0xF0)
      lo = 0x90; /* overlong below U+10000 */
    else if (b0 == 0xF4)
      hi = 0x8F; /* above U+10FFFF */
  } else {
    return 0; /* 80..C1 (continuation, overlong lead), F5..FF */
  }
  if (n > len - i) return 0; /* sequence cut by the end of the text */
  for (size_t k = 1; k < n; k++) {
    const uint8_t b = p[i + k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    v = (v << 6) | (b & 0x3Fu);
  }
  *cp = v;
  return n;
}

/* design.md P2: "no control characters: U+0000-U+001F, U+007F,
 * U+0080-U+009F". */
static int is_control(uint32_t cp) {
  return cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F);
}

/* design.md P2: "`text16`: u16 length 1..1100, then UTF-8 ... Length 0 or >
 * 1100 -> UDPC_ERR_LENGTH; bad UTF-8 -> UDPC_ERR_UTF8; a control ->
 * UDPC_ERR_CONTROL (check UTF-8 first, then controls, scanning left to
 * right: report the first problem found)". One left-to-right scan: at each
 * position the bytes must form a UTF-8 character (else UTF8), and that
 * character must not be a control (else CONTROL); the first problem wins. */
int udpc_text_check(const uint8_t *p, size_t len) {
  UDPC_ENSURE(len >= 1 && len <= UDPC_TEXT_MAX, UDPC_ERR_LENGTH);
  UDPC_ENSURE(p != NULL, UDPC_ERR_ARG);
  size_t i = 0;
  while (i < len) {
    uint32_t cp = 0;
    const size_t n = utf8_next(p, len, i, &cp);
    UDPC_ENSURE(n != 0, UDPC_ERR_UTF8);
    UDPC_ENSURE(!is_control(cp), UDPC_ERR_CONTROL);
    i += n;
  }
  return UDPC_OK;
}

/* Same endpoint: family, port and the family's address bytes. */
int udpc_addr_equal(const udpc_addr *a, const udpc_addr *b) {
  if (a == NULL || b == NULL) return 0;
  if (a->family != b->family || a->port != b->port) return 0;
  const size_t n = a->family == 4 ? 4 : sizeof a->ip;
  return memcmp(a->ip, b->ip, n) == 0;
}
