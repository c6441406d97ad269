/*
 * test_text.c - field validation (design.md P2): message text (strict RFC
 * 3629 UTF-8, no control characters), nicks and nick folding, addresses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "udpchat.h"

#define CHECK(bytes, want) \
  assert_int_equal(        \
      udpc_text_check((const uint8_t *)(bytes), sizeof(bytes) - 1), (want))

/* Reference classifier, written differently from the one under test: decode
 * generically by leading ones, then reject what RFC 3629 forbids. Returns
 * the sequence length at p[0..len) or 0 if invalid; *cp gets the value. */
static size_t ref_utf8(const uint8_t *p, size_t len, uint32_t *cp) {
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  size_t n = 0;
  while (n < 8 && (p[0] & (0x80u >> n))) n++;
  if (n == 0) {
    *cp = p[0];
    return 1;
  }
  if (n == 1 || n > 4 || n > len) return 0;
  uint32_t v = p[0] & (0x7Fu >> n);
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3Fu);
  }
  if (v < min_cp[n]) return 0;              /* overlong */
  if (v >= 0xD800 && v <= 0xDFFF) return 0; /* surrogate */
  if (v > 0x10FFFF) return 0;
  *cp = v;
  return n;
}

static int ref_check(const uint8_t *p, size_t len) {
  if (len < 1 || len > UDPC_TEXT_MAX) return UDPC_ERR_LENGTH;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t n = ref_utf8(p + i, len - i, &cp);
    if (n == 0) return UDPC_ERR_UTF8;
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return UDPC_ERR_CONTROL;
    i += n;
  }
  return UDPC_OK;
}

static size_t encode_cp(uint32_t cp, uint8_t *b) {
  if (cp < 0x80) {
    b[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    b[0] = (uint8_t)(0xC0 | cp >> 6);
    b[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    b[0] = (uint8_t)(0xE0 | cp >> 12);
    b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  b[0] = (uint8_t)(0xF0 | cp >> 18);
  b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  b[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

/* RFC 3629 section 4 boundaries, one by one. */
/* R17: RFC 3629 boundaries. */
static void test_utf8_boundaries(void **state) {
  (void)state;
  CHECK("\x20", UDPC_OK);             /* first printable */
  CHECK("\x7e", UDPC_OK);             /* last printable ASCII */
  CHECK("\xc2\xa0", UDPC_OK);         /* U+00A0 first after C1 */
  CHECK("\xdf\xbf", UDPC_OK);         /* U+07FF last 2-byte */
  CHECK("\xe0\xa0\x80", UDPC_OK);     /* U+0800 first 3-byte */
  CHECK("\xec\xbf\xbf", UDPC_OK);     /* U+CFFF */
  CHECK("\xed\x80\x80", UDPC_OK);     /* U+D000 */
  CHECK("\xed\x9f\xbf", UDPC_OK);     /* U+D7FF last before surrogates */
  CHECK("\xee\x80\x80", UDPC_OK);     /* U+E000 first after surrogates */
  CHECK("\xef\xbf\xbf", UDPC_OK);     /* U+FFFF last 3-byte */
  CHECK("\xef\xbf\xbe", UDPC_OK);     /* U+FFFE noncharacter: allowed */
  CHECK("\xf0\x90\x80\x80", UDPC_OK); /* U+10000 first 4-byte */
  CHECK("\xf1\x80\x80\x80", UDPC_OK); /* U+40000 */
  CHECK("\xf3\xbf\xbf\xbf", UDPC_OK); /* U+FFFFF */
  CHECK("\xf4\x80\x80\x80", UDPC_OK); /* U+100000 */
  CHECK("\xf4\x8f\xbf\xbf", UDPC_OK); /* U+10FFFF last scalar */
  CHECK("\xef\xbb\xbf", UDPC_OK);     /* BOM is just a character */

  CHECK("\xf4\x90\x80\x80", UDPC_ERR_UTF8); /* U+110000 */
  CHECK("\xf5\x80\x80\x80", UDPC_ERR_UTF8);
  CHECK("\xf7\xbf\xbf\xbf", UDPC_ERR_UTF8);
  CHECK("\xf8\x88\x80\x80\x80", UDPC_ERR_UTF8); /* old 5-byte form */
  CHECK("\xfc\x84\x80\x80\x80\x80", UDPC_ERR_UTF8);
  CHECK("\xfe", UDPC_ERR_UTF8);
  CHECK("\xff", UDPC_ERR_UTF8);
  CHECK("\xed\xa0\x80", UDPC_ERR_UTF8);             /* U+D800 */
  CHECK("\xed\xaf\xbf", UDPC_ERR_UTF8);             /* U+DBFF */
  CHECK("\xed\xb0\x80", UDPC_ERR_UTF8);             /* U+DC00 */
  CHECK("\xed\xbf\xbf", UDPC_ERR_UTF8);             /* U+DFFF */
  CHECK("\xed\xa0\xbd\xed\xb8\x80", UDPC_ERR_UTF8); /* CESU-8 pair */
}

/* R17: overlong encodings are UDPC_ERR_UTF8. */
static void test_utf8_overlong(void **state) {
  (void)state;
  CHECK("\xc0\x80", UDPC_ERR_UTF8); /* U+0000 */
  CHECK("\xc0\xaf", UDPC_ERR_UTF8); /* '/' */
  CHECK("\xc1\xbf", UDPC_ERR_UTF8); /* U+007F */
  CHECK("\xe0\x80\x80", UDPC_ERR_UTF8);
  CHECK("\xe0\x80\xaf", UDPC_ERR_UTF8);
  CHECK("\xe0\x9f\xbf", UDPC_ERR_UTF8); /* U+07FF in 3 bytes */
  CHECK("\xf0\x80\x80\x80", UDPC_ERR_UTF8);
  CHECK("\xf0\x80\x80\xaf", UDPC_ERR_UTF8);
  CHECK("\xf0\x8f\xbf\xbf", UDPC_ERR_UTF8); /* U+FFFF in 4 bytes */
}

static void test_utf8_continuation_and_truncation(void **state) {
  (void)state;
  CHECK("\x80", UDPC_ERR_UTF8);
  CHECK("\xbf", UDPC_ERR_UTF8);
  CHECK("a\x80", UDPC_ERR_UTF8);
  CHECK("\xc3\xa9\xa9", UDPC_ERR_UTF8); /* one continuation too many */
  CHECK("\xc2", UDPC_ERR_UTF8);         /* cut at end of text */
  CHECK("\xe0\xa0", UDPC_ERR_UTF8);
  CHECK("\xe2\x82", UDPC_ERR_UTF8);
  CHECK("\xf0\x90\x80", UDPC_ERR_UTF8);
  CHECK("\xf4\x8f\xbf", UDPC_ERR_UTF8);
  CHECK("\xc2\x41", UDPC_ERR_UTF8); /* lead then ASCII */
  CHECK("\xe2\x82\x41", UDPC_ERR_UTF8);
  CHECK("\xf0\x90\x80\x41", UDPC_ERR_UTF8);
  CHECK("\xe2\xc2\xa0", UDPC_ERR_UTF8); /* lead then lead */
  /* The byte after a valid sequence may itself be invalid. */
  CHECK("\xe2\x82\xac\x80", UDPC_ERR_UTF8);
}

/* R17: C0, DEL and C1 controls are UDPC_ERR_CONTROL. */
static void test_controls(void **state) {
  (void)state;
  CHECK("\x00", UDPC_ERR_CONTROL);
  CHECK("\x01", UDPC_ERR_CONTROL);
  CHECK("a\x07", UDPC_ERR_CONTROL); /* BEL */
  CHECK("\x09", UDPC_ERR_CONTROL);  /* TAB */
  CHECK("\x0a", UDPC_ERR_CONTROL);
  CHECK("\x0d", UDPC_ERR_CONTROL);
  CHECK("\x1b[31m", UDPC_ERR_CONTROL); /* ESC */
  CHECK("\x1f", UDPC_ERR_CONTROL);
  CHECK("\x7f", UDPC_ERR_CONTROL); /* DEL */
  CHECK("\xc2\x80", UDPC_ERR_CONTROL);
  CHECK("\xc2\x85", UDPC_ERR_CONTROL); /* NEL */
  CHECK("\xc2\x9b", UDPC_ERR_CONTROL); /* CSI */
  CHECK("\xc2\x9f", UDPC_ERR_CONTROL);
  /* First problem, scanning left to right (design.md P2). */
  CHECK("ok\x07\xff", UDPC_ERR_CONTROL);
  CHECK("ok\xff\x07", UDPC_ERR_UTF8);
  CHECK("\xc2\x85\xc0\x80", UDPC_ERR_CONTROL);
  CHECK("\xc0\x80\xc2\x85", UDPC_ERR_UTF8);
}

/* R17: text length 1..1100, else UDPC_ERR_LENGTH. */
static void test_text_length(void **state) {
  (void)state;
  static uint8_t buf[UDPC_TEXT_MAX + 2];
  memset(buf, 'a', sizeof buf);
  assert_int_equal(udpc_text_check(buf, 0), UDPC_ERR_LENGTH);
  assert_int_equal(udpc_text_check(NULL, 0), UDPC_ERR_LENGTH);
  assert_int_equal(udpc_text_check(buf, 1), UDPC_OK);
  assert_int_equal(udpc_text_check(buf, UDPC_TEXT_MAX), UDPC_OK);
  assert_int_equal(udpc_text_check(buf, UDPC_TEXT_MAX + 1), UDPC_ERR_LENGTH);
  assert_int_equal(udpc_text_check(buf, 65536), UDPC_ERR_LENGTH);
  assert_int_equal(udpc_text_check(buf, SIZE_MAX), UDPC_ERR_LENGTH);
  /* The length is checked before the contents. */
  buf[0] = 0x07;
  assert_int_equal(udpc_text_check(buf, UDPC_TEXT_MAX + 1), UDPC_ERR_LENGTH);
  assert_int_equal(udpc_text_check(buf, UDPC_TEXT_MAX), UDPC_ERR_CONTROL);
  assert_int_equal(udpc_text_check(NULL, 3), UDPC_ERR_ARG);
  /* A 4-byte character ending exactly at byte 1100. */
  memset(buf, 'a', sizeof buf);
  memcpy(buf + UDPC_TEXT_MAX - 4, "\xf0\x9f\x98\x80", 4);
  assert_int_equal(udpc_text_check(buf, UDPC_TEXT_MAX), UDPC_OK);
  assert_int_equal(udpc_text_check(buf, UDPC_TEXT_MAX - 1), UDPC_ERR_UTF8);
}

/* Every scalar value U+0000..U+10FFFF in its proper encoding, and every
 * surrogate in the 3-byte form, against the rule. */
static void test_every_code_point(void **state) {
  (void)state;
  size_t ok = 0;
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    uint8_t b[4];
    size_t n = encode_cp(cp, b);
    int want = UDPC_OK;
    if (cp >= 0xD800 && cp <= 0xDFFF)
      want = UDPC_ERR_UTF8;
    else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
      want = UDPC_ERR_CONTROL;
    int got = udpc_text_check(b, n);
    if (got != want)
      fail_msg("U+%04X: got %d want %d", (unsigned)cp, got, want);
    ok += got == UDPC_OK;
  }
  /* 0x110000 - 2048 surrogates - 65 controls */
  assert_int_equal(ok, 0x110000 - 2048 - 65);
}

/* Every 1-, 2- and 3-byte string, and every 4-byte string with a lead in
 * F0..F4 and a sampled tail, against the reference classifier. */
static void test_exhaustive_short_strings(void **state) {
  (void)state;
  uint8_t b[4];
  for (unsigned x = 0; x < 256; x++) {
    b[0] = (uint8_t)x;
    assert_int_equal(udpc_text_check(b, 1), ref_check(b, 1));
  }
  for (unsigned x = 0; x < 65536; x++) {
    b[0] = (uint8_t)(x >> 8);
    b[1] = (uint8_t)x;
    int want = ref_check(b, 2);
    if (udpc_text_check(b, 2) != want) fail_msg("%02x %02x", b[0], b[1]);
  }
  for (unsigned x = 0; x < (1u << 24); x++) {
    b[0] = (uint8_t)(x >> 16);
    b[1] = (uint8_t)(x >> 8);
    b[2] = (uint8_t)x;
    int want = ref_check(b, 3);
    if (udpc_text_check(b, 3) != want)
      fail_msg("%02x %02x %02x", b[0], b[1], b[2]);
  }
  static const uint8_t tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
                                  0x9f, 0xa0, 0xbf, 0xc0, 0xf4, 0xff};
  for (unsigned lead = 0xE0; lead < 0x100; lead++)
    for (size_t i = 0; i < sizeof tails; i++)
      for (size_t j = 0; j < sizeof tails; j++)
        for (size_t k = 0; k < sizeof tails; k++) {
          b[0] = (uint8_t)lead;
          b[1] = tails[i];
          b[2] = tails[j];
          b[3] = tails[k];
          assert_int_equal(udpc_text_check(b, 4), ref_check(b, 4));
        }
}

/* R15: wire nicks are 1..32 bytes of [a-z0-9_-]; A-Z and everything else is
 * UDPC_ERR_NICK. */
static void test_nick_check(void **state) {
  (void)state;
  for (int c = 0; c < 256; c++) {
    char s[1] = {(char)c};
    int valid = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                c == '-';
    assert_int_equal(udpc_nick_check(s, 1), valid ? UDPC_OK : UDPC_ERR_NICK);
  }
  const char *n33 = "abcdefghijklmnopqrstuvwxyz0123456";
  assert_int_equal(udpc_nick_check(n33, 32), UDPC_OK);
  assert_int_equal(udpc_nick_check(n33, 33), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_check(n33, 0), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_check(NULL, 3), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_check("alice", 5), UDPC_OK);
  assert_int_equal(udpc_nick_check("a-b_c", 5), UDPC_OK);
  assert_int_equal(udpc_nick_check("-", 1), UDPC_OK);
  assert_int_equal(udpc_nick_check("Alice", 5), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_check("al ce", 5), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_check("al\0ce", 5), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_check("alice\n", 6), UDPC_ERR_NICK);
}

/* R16: typed nicks fold ASCII A-Z to a-z and nothing else, then validate. */
static void test_nick_from_input(void **state) {
  (void)state;
  udpc_nick n;
  assert_int_equal(udpc_nick_from_input(&n, "Alice", 5), UDPC_OK);
  assert_int_equal(n.len, 5);
  assert_string_equal(n.s, "alice");
  assert_int_equal(udpc_nick_from_input(&n, "AZ_az-09", 8), UDPC_OK);
  assert_string_equal(n.s, "az_az-09");
  assert_int_equal(
      udpc_nick_from_input(&n, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", 32),
      UDPC_OK);
  assert_int_equal(n.len, 32);
  assert_string_equal(n.s, "abcdefghijklmnopqrstuvwxyz012345");
  /* Only ASCII is folded; everything else is refused. */
  assert_int_equal(udpc_nick_from_input(&n, "\xc3\x84la", 4), UDPC_ERR_NICK);
  assert_int_equal(n.len, 0);
  assert_string_equal(n.s, "");
  assert_int_equal(
      udpc_nick_from_input(&n, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", 33),
      UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_from_input(&n, "", 0), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_from_input(&n, "a b", 3), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_from_input(&n, "a@b", 3), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_from_input(&n, "[a]", 3), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_from_input(&n, NULL, 3), UDPC_ERR_NICK);
  assert_int_equal(udpc_nick_from_input(NULL, "a", 1), UDPC_ERR_ARG);
  /* Every byte: folding then checking. '@' and '[' (Z+1) stay bad. */
  for (int c = 0; c < 256; c++) {
    char s[1] = {(char)c};
    int up = c >= 'A' && c <= 'Z';
    int valid = up || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-';
    assert_int_equal(udpc_nick_from_input(&n, s, 1),
                     valid ? UDPC_OK : UDPC_ERR_NICK);
    if (valid) assert_int_equal(n.s[0], up ? c + 32 : c);
  }
}

static void test_addr_equal(void **state) {
  (void)state;
  udpc_addr a, b;
  memset(&a, 0, sizeof a);
  a.family = 4;
  a.ip[0] = 127;
  a.ip[3] = 1;
  a.port = 4000;
  b = a;
  assert_int_equal(udpc_addr_equal(&a, &b), 1);
  b.ip[9] = 0xaa; /* unused bytes of an IPv4 address do not matter */
  assert_int_equal(udpc_addr_equal(&a, &b), 1);
  b.port = 4001;
  assert_int_equal(udpc_addr_equal(&a, &b), 0);
  b = a;
  b.ip[3] = 2;
  assert_int_equal(udpc_addr_equal(&a, &b), 0);
  b = a;
  b.family = 6;
  assert_int_equal(udpc_addr_equal(&a, &b), 0);
  a.family = 6;
  b = a;
  assert_int_equal(udpc_addr_equal(&a, &b), 1);
  b.ip[15] = 9;
  assert_int_equal(udpc_addr_equal(&a, &b), 0);
  assert_int_equal(udpc_addr_equal(&a, NULL), 0);
  assert_int_equal(udpc_addr_equal(NULL, &a), 0);
  assert_int_equal(udpc_addr_equal(NULL, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utf8_boundaries),
      cmocka_unit_test(test_utf8_overlong),
      cmocka_unit_test(test_utf8_continuation_and_truncation),
      cmocka_unit_test(test_controls),
      cmocka_unit_test(test_text_length),
      cmocka_unit_test(test_every_code_point),
      cmocka_unit_test(test_exhaustive_short_strings),
      cmocka_unit_test(test_nick_check),
      cmocka_unit_test(test_nick_from_input),
      cmocka_unit_test(test_addr_equal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
