/*
 * test_wire.c - wire codec tests (design.md / PROTOCOL.md P1-P3).
 *
 * Loads tests/vectors/wire.vectors (grammar in that file's header comment)
 * and checks every vector, then boundaries, encode/decode agreement, and
 * seeded random round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udpc_thex.h"
#include "udpc_wire.h"
#include "udpchat.h"

#define VECTORS_PATH UDPC_SOURCE_DIR "/tests/vectors/wire.vectors"
#define MAX_VECTORS 1024
#define FMT_CAP 16384
#define RANDOM_ITERATIONS 10000
#define RANDOM_SEED 0x5eed0f00dcafe123ull

/* ---- Vector file loading ---------------------------------------------- */

typedef struct {
  char name[64];
  int line;
  uint8_t *data;
  size_t len;
  int have_expect;
  int expect; /* UDPC_OK or a udpc_err */
  char *fields;
} vec;

typedef struct {
  vec v[MAX_VECTORS];
  size_t n;
} vecset;

static const struct {
  const char *name;
  int code;
} err_names[] = {
    {"ok", UDPC_OK},
    {"UDPC_ERR_TRUNCATED", UDPC_ERR_TRUNCATED},
    {"UDPC_ERR_TRAILING", UDPC_ERR_TRAILING},
    {"UDPC_ERR_VERSION", UDPC_ERR_VERSION},
    {"UDPC_ERR_TYPE", UDPC_ERR_TYPE},
    {"UDPC_ERR_LENGTH", UDPC_ERR_LENGTH},
    {"UDPC_ERR_UTF8", UDPC_ERR_UTF8},
    {"UDPC_ERR_CONTROL", UDPC_ERR_CONTROL},
    {"UDPC_ERR_NICK", UDPC_ERR_NICK},
    {"UDPC_ERR_VALUE", UDPC_ERR_VALUE},
    {"UDPC_ERR_TOO_BIG", UDPC_ERR_TOO_BIG},
};

static int parse_expect(const char *s, int *out) {
  for (size_t i = 0; i < sizeof err_names / sizeof err_names[0]; i++)
    if (strcmp(s, err_names[i].name) == 0) {
      *out = err_names[i].code;
      return 0;
    }
  return -1;
}

/* Append the hex pairs of s to v->data. Returns 0 or -1 (bad hex). */
static int append_hex(vec *v, const char *s) {
  return udpc_thex_append(&v->data, &v->len, s);
}

static int load_fail(int line, const char *why) {
  print_error("%s:%d: %s\n", VECTORS_PATH, line, why);
  return -1;
}

static int vec_finish(vec *v) {
  if (!v->have_expect) return load_fail(v->line, "vector without expect:");
  if (v->data == NULL) return load_fail(v->line, "vector without hex:");
  if ((v->expect == UDPC_OK) != (v->fields != NULL))
    return load_fail(v->line, "fields: must be present iff expect: ok");
  return 0;
}

static int load_vectors(vecset *vs) {
  FILE *f = fopen(VECTORS_PATH, "r");
  if (!f) return load_fail(0, "cannot open");
  char line[8192];
  int lineno = 0, rc = 0;
  vec *cur = NULL;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    size_t n = strlen(line);
    if (n == 0 || line[n - 1] != '\n') {
      rc = load_fail(lineno, "line too long or missing final newline");
      break;
    }
    line[--n] = '\0';
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0' || *p == '#') continue;
    char *colon = strchr(line, ':');
    if (!colon || (colon[1] != ' ' && colon[1] != '\0')) {
      rc = load_fail(lineno, "expected 'key: value'");
      break;
    }
    *colon = '\0';
    const char *key = line, *val = colon[1] ? colon + 2 : colon + 1;
    if (n > 0 && line[n - 1] == ' ') {
      rc = load_fail(lineno, "trailing blank");
      break;
    }
    if (strcmp(key, "name") == 0) {
      if (cur && (rc = vec_finish(cur)) != 0) break;
      if (vs->n == MAX_VECTORS) {
        rc = load_fail(lineno, "too many vectors");
        break;
      }
      cur = &vs->v[vs->n++];
      memset(cur, 0, sizeof *cur);
      cur->line = lineno;
      size_t vl = strlen(val);
      if (vl == 0 || vl >= sizeof cur->name) {
        rc = load_fail(lineno, "bad name");
        break;
      }
      for (size_t i = 0; i < vl; i++)
        if (!(islower((unsigned char)val[i]) ||
              isdigit((unsigned char)val[i]) || val[i] == '_')) {
          rc = load_fail(lineno, "bad character in name");
          break;
        }
      memcpy(cur->name, val, vl + 1);
      for (size_t i = 0; i + 1 < vs->n; i++)
        if (strcmp(vs->v[i].name, cur->name) == 0)
          rc = load_fail(lineno, "duplicate name");
    } else if (!cur) {
      rc = load_fail(lineno, "key before the first name:");
    } else if (strcmp(key, "hex") == 0) {
      if (cur->have_expect)
        rc = load_fail(lineno, "hex: after expect:");
      else if (append_hex(cur, val) != 0)
        rc = load_fail(lineno, "bad hex");
    } else if (strcmp(key, "expect") == 0) {
      if (cur->have_expect)
        rc = load_fail(lineno, "second expect:");
      else if (parse_expect(val, &cur->expect) != 0)
        rc = load_fail(lineno, "unknown expect: value");
      cur->have_expect = 1;
    } else if (strcmp(key, "fields") == 0) {
      if (!cur->have_expect || cur->fields)
        rc = load_fail(lineno, "fields: must follow expect:, once");
      else if ((cur->fields = strdup(val)) == NULL)
        rc = load_fail(lineno, "out of memory");
    } else {
      rc = load_fail(lineno, "unknown key");
    }
  }
  if (rc == 0 && cur) rc = vec_finish(cur);
  fclose(f);
  return rc;
}

static int group_setup(void **state) {
  vecset *vs = calloc(1, sizeof *vs);
  if (!vs) return -1;
  if (load_vectors(vs) != 0) return -1;
  *state = vs;
  return 0;
}

static int group_teardown(void **state) {
  vecset *vs = *state;
  if (vs) {
    for (size_t i = 0; i < vs->n; i++) {
      free(vs->v[i].data);
      free(vs->v[i].fields);
    }
    free(vs);
  }
  return 0;
}

/* Compare and report the vector name on failure. */
#define CHECK_CODE(v, got, want)                                            \
  do {                                                                      \
    int got_ = (got), want_ = (want);                                       \
    if (got_ != want_)                                                      \
      fail_msg("vector %s (line %d): got %d (%s), want %d (%s)", (v)->name, \
               (v)->line, got_, udpc_strerror(got_), want_,                 \
               udpc_strerror(want_));                                       \
  } while (0)

/* ---- Vector tests ----------------------------------------------------- */

#define all_types udpc_thex_all_types
#define N_TYPES UDPC_THEX_N_TYPES

static void test_vectors_cover_everything(void **state) {
  const vecset *vs = *state;
  size_t valid = 0, invalid = 0;
  int seen_type[256] = {0};
  int seen_err[32] = {0};
  for (size_t i = 0; i < vs->n; i++) {
    const vec *v = &vs->v[i];
    if (v->expect == UDPC_OK) {
      valid++;
      assert_true(v->len >= UDPC_HEADER_LEN);
      seen_type[v->data[1]]++;
    } else {
      invalid++;
      seen_err[-v->expect]++;
    }
  }
  print_message("wire.vectors: %zu vectors, %zu valid, %zu invalid\n", vs->n,
                valid, invalid);
  assert_true(vs->n >= 60);
  for (size_t t = 0; t < N_TYPES; t++)
    if (!seen_type[all_types[t]])
      fail_msg("no valid vector of type %s", udpc_ptype_name(all_types[t]));
  /* Every code the decoder can return has an invalid vector. */
  const int codes[] = {UDPC_ERR_TRUNCATED, UDPC_ERR_TRAILING, UDPC_ERR_VERSION,
                       UDPC_ERR_TYPE,      UDPC_ERR_LENGTH,   UDPC_ERR_UTF8,
                       UDPC_ERR_CONTROL,   UDPC_ERR_NICK,     UDPC_ERR_VALUE,
                       UDPC_ERR_TOO_BIG};
  for (size_t c = 0; c < sizeof codes / sizeof codes[0]; c++)
    if (!seen_err[-codes[c]])
      fail_msg("no invalid vector for %s", udpc_strerror(codes[c]));
}

/* R84: every valid vector decodes to its expected dump. */
static void test_valid_vectors_decode_to_fields(void **state) {
  const vecset *vs = *state;
  static char out[FMT_CAP];
  size_t checked = 0;
  for (size_t i = 0; i < vs->n; i++) {
    const vec *v = &vs->v[i];
    if (v->expect != UDPC_OK) continue;
    udpc_packet p;
    CHECK_CODE(v, udpc_wire_decode(&p, v->data, v->len), UDPC_OK);
    int n = udpc_wire_format(&p, out, sizeof out);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    if (strcmp(out, v->fields) != 0)
      fail_msg("vector %s (line %d):\n got  %s\n want %s", v->name, v->line,
               out, v->fields);
    /* The header-only decoder agrees on type and id. */
    uint8_t type = 0;
    uint32_t id = 0;
    CHECK_CODE(v, udpc_wire_decode_header(&type, &id, v->data, v->len),
               UDPC_OK);
    assert_int_equal(type, p.type);
    assert_int_equal(id, p.id);
    checked++;
  }
  assert_true(checked > 0);
}

/* R5 R84: re-encoding gives the vector bytes (big-endian integers, no
 * padding). */
static void test_valid_vectors_reencode_identically(void **state) {
  const vecset *vs = *state;
  size_t checked = 0;
  for (size_t i = 0; i < vs->n; i++) {
    const vec *v = &vs->v[i];
    if (v->expect != UDPC_OK) continue;
    udpc_packet p;
    uint8_t buf[UDPC_MAX_PACKET + 64];
    CHECK_CODE(v, udpc_wire_decode(&p, v->data, v->len), UDPC_OK);
    /* Exactly the needed capacity works; one byte less is TOO_BIG. */
    CHECK_CODE(v, udpc_wire_encode(&p, buf, v->len), (int)v->len);
    assert_memory_equal(buf, v->data, v->len);
    CHECK_CODE(v, udpc_wire_encode(&p, buf, v->len - 1), UDPC_ERR_TOO_BIG);
    CHECK_CODE(v, udpc_wire_encode(&p, NULL, 0), UDPC_ERR_TOO_BIG);
    /* And the unchecked serializer agrees on valid packets. */
    CHECK_CODE(v, udpc_wire_encode_raw(&p, buf, sizeof buf), (int)v->len);
    assert_memory_equal(buf, v->data, v->len);
    checked++;
  }
  assert_true(checked > 0);
}

/* Every strict prefix of a valid datagram is UDPC_ERR_TRUNCATED (the rule
 * in the vectors file header), and one extra byte is UDPC_ERR_TRAILING. */
/* R19: prefixes are TRUNCATED, one more byte TRAILING (TOO_BIG at 1201): the
 * check order. */
static void test_valid_vectors_prefixes_and_trailing(void **state) {
  const vecset *vs = *state;
  size_t checked = 0;
  for (size_t i = 0; i < vs->n; i++) {
    const vec *v = &vs->v[i];
    if (v->expect != UDPC_OK) continue;
    udpc_packet p;
    for (size_t k = 0; k < v->len; k++) {
      /* Copy so that ASan sees any read past the prefix. */
      uint8_t *pre = malloc(k ? k : 1);
      assert_non_null(pre);
      memcpy(pre, v->data, k);
      int rc = udpc_wire_decode(&p, pre, k);
      if (rc != UDPC_ERR_TRUNCATED)
        fail_msg("vector %s prefix %zu/%zu: got %d (%s)", v->name, k, v->len,
                 rc, udpc_strerror(rc));
      free(pre);
      checked++;
    }
    uint8_t *more = malloc(v->len + 1);
    assert_non_null(more);
    memcpy(more, v->data, v->len);
    more[v->len] = 0;
    CHECK_CODE(v, udpc_wire_decode(&p, more, v->len + 1),
               v->len + 1 > UDPC_MAX_PACKET ? UDPC_ERR_TOO_BIG
                                            : UDPC_ERR_TRAILING);
    free(more);
  }
  assert_true(checked > 0);
}

/* R84 R19 R3: every invalid vector gives exactly its code (order cases; 1201
 * bytes -> UDPC_ERR_TOO_BIG). */
static void test_invalid_vectors_exact_code(void **state) {
  const vecset *vs = *state;
  size_t checked = 0;
  for (size_t i = 0; i < vs->n; i++) {
    const vec *v = &vs->v[i];
    if (v->expect == UDPC_OK) continue;
    uint8_t *copy = malloc(v->len ? v->len : 1);
    assert_non_null(copy);
    memcpy(copy, v->data, v->len);
    udpc_packet p;
    CHECK_CODE(v, udpc_wire_decode(&p, copy, v->len), v->expect);
    /* The header decoder reports header problems the same way (it does not
     * look at the size limit or the body). */
    uint8_t type;
    uint32_t id;
    int h = udpc_wire_decode_header(&type, &id, copy, v->len);
    if (v->expect == UDPC_ERR_VERSION || v->expect == UDPC_ERR_TYPE)
      CHECK_CODE(v, h, v->expect);
    else if (v->len < UDPC_HEADER_LEN)
      CHECK_CODE(v, h, UDPC_ERR_TRUNCATED);
    free(copy);
    checked++;
  }
  assert_true(checked > 0);
}

/* ---- Building packets --------------------------------------------------- */

static void set_nick(udpc_nick *n, const char *s) {
  memset(n, 0, sizeof *n);
  n->len = (uint8_t)strlen(s);
  memcpy(n->s, s, n->len);
}

static void set_addr4(udpc_addr *a, uint8_t last, uint16_t port) {
  memset(a, 0, sizeof *a);
  a->family = 4;
  a->ip[0] = 10;
  a->ip[3] = last;
  a->port = port;
}

/* encode(p) must give `want`, and decode(raw bytes of p) must agree. */
static void expect_encode(const udpc_packet *p, int want, const char *what) {
  static uint8_t raw[70000];
  uint8_t buf[UDPC_MAX_PACKET];
  int e = udpc_wire_encode(p, buf, sizeof buf);
  if (want >= 0 ? e <= 0 : e != want)
    fail_msg("%s: encode gave %d (%s), want %d", what, e, udpc_strerror(e),
             want);
  int r = udpc_wire_encode_raw(p, raw, sizeof raw);
  if (r < 0) return; /* not representable as bytes (count beyond array) */
  udpc_packet q;
  int d = udpc_wire_decode(&q, raw, (size_t)r);
  if ((d < 0 ? d : r) != e)
    fail_msg("%s: encode gave %d but decode of the raw bytes gave %d (%s)",
             what, e, d, udpc_strerror(d));
  if (e > 0) assert_memory_equal(buf, raw, (size_t)e);
}

static const uint8_t text1101[1101] = {
#define X10 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'
#define X100 X10, X10, X10, X10, X10, X10, X10, X10, X10, X10
    X100, X100, X100, X100, X100, X100, X100, X100, X100, X100, X100, 'y'};

/* R15 R21: nick 1..32 of [a-z0-9_-], else UDPC_ERR_NICK (encoder and decoder
 * agree). */
static void test_boundaries_nick(void **state) {
  (void)state;
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_CHAT_ACK;
  p.id = 1;
  set_nick(&p.u.chat_ack.from, "abcdefghijklmnopqrstuvwxyz012345"); /* 32 */
  expect_encode(&p, 1 + 6 + 32, "nick 32");
  memset(p.u.chat_ack.from.s, 'a', sizeof p.u.chat_ack.from.s); /* 33 bytes */
  p.u.chat_ack.from.len = 33;
  expect_encode(&p, UDPC_ERR_NICK, "nick 33");
  p.u.chat_ack.from.len = 0;
  expect_encode(&p, UDPC_ERR_NICK, "nick 0");
  set_nick(&p.u.chat_ack.from, "a");
  expect_encode(&p, 8, "nick 1");
  set_nick(&p.u.chat_ack.from, "aB");
  expect_encode(&p, UDPC_ERR_NICK, "nick uppercase");
  p.u.chat_ack.from.len = 255; /* only measured, never read */
  assert_int_equal(udpc_wire_encode(&p, (uint8_t[8]){0}, 8), UDPC_ERR_NICK);
}

/* R17 R21: text 1..1100 bytes, else UDPC_ERR_LENGTH. */
static void test_boundaries_text(void **state) {
  (void)state;
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_CHAT;
  p.id = 2;
  set_nick(&p.u.chat.from, "a");
  set_nick(&p.u.chat.to, "b");
  p.u.chat.text.p = text1101;
  p.u.chat.text.len = 1100;
  expect_encode(&p, 6 + 2 + 2 + 2 + 1100, "text 1100");
  p.u.chat.text.len = 1101;
  expect_encode(&p, UDPC_ERR_LENGTH, "text 1101");
  p.u.chat.text.len = 0;
  expect_encode(&p, UDPC_ERR_LENGTH, "text 0");
  p.u.chat.text.len = 1;
  expect_encode(&p, 13, "text 1");
  /* Same through SAVE (token-bearing). */
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_SAVE;
  set_nick(&p.u.save.to, "bob");
  p.u.save.text.p = text1101;
  p.u.save.text.len = 1100;
  expect_encode(&p, 6 + 8 + 4 + 4 + 2 + 1100, "save text 1100");
  p.u.save.text.len = 1101;
  expect_encode(&p, UDPC_ERR_LENGTH, "save text 1101");
  p.u.save.text.p = NULL;
  p.u.save.text.len = 5;
  assert_int_equal(udpc_wire_encode(&p, (uint8_t[64]){0}, 64), UDPC_ERR_ARG);
}

static void test_boundaries_cookie(void **state) {
  (void)state;
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_REGISTER;
  set_nick(&p.u.reg.nick, "alice");
  p.u.reg.cookie_len = 0;
  expect_encode(&p, 6 + 1 + 6 + 32, "register cookie 0");
  p.u.reg.cookie_len = 32;
  expect_encode(&p, 6 + 33 + 6 + 32, "register cookie 32");
  p.u.reg.cookie_len = 33;
  expect_encode(&p, UDPC_ERR_LENGTH, "register cookie 33");
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_COOKIE;
  p.u.cookie.cookie_len = 0;
  expect_encode(&p, UDPC_ERR_LENGTH, "cookie 0");
  p.u.cookie.cookie_len = 1;
  expect_encode(&p, 8, "cookie 1");
  p.u.cookie.cookie_len = 32;
  expect_encode(&p, 39, "cookie 32");
  p.u.cookie.cookie_len = 33;
  expect_encode(&p, UDPC_ERR_LENGTH, "cookie 33");
}

static void fill_entries(udpc_entry *e, unsigned n, uint8_t status) {
  for (unsigned i = 0; i < n; i++) {
    char nick[16];
    snprintf(nick, sizeof nick, "n%u", i % 100);
    set_nick(&e[i].nick, nick);
    e[i].status = status;
    set_addr4(&e[i].addr, (uint8_t)i, (uint16_t)(1000 + i));
  }
}

/* n entries of the smallest size (1-byte nick, IPv4: 10 bytes). */
static void fill_min_entries(udpc_entry *e, unsigned n, uint8_t status) {
  static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (unsigned i = 0; i < n; i++) {
    char nick[2] = {alpha[i % 36], 0};
    set_nick(&e[i].nick, nick);
    e[i].status = status;
    set_addr4(&e[i].addr, (uint8_t)i, (uint16_t)(1000 + i));
  }
}

/* n entries of the largest size (32-byte nick, IPv6: 53 bytes). */
static void fill_max_entries(udpc_entry *e, unsigned n, uint8_t status) {
  for (unsigned i = 0; i < n; i++) {
    set_nick(&e[i].nick, "abcdefghijklmnopqrstuvwxyz012345");
    e[i].status = status;
    memset(&e[i].addr, 0, sizeof e[i].addr);
    e[i].addr.family = 6;
    e[i].addr.ip[15] = (uint8_t)i;
    e[i].addr.port = 1;
  }
}

static void test_boundaries_table(void **state) {
  (void)state;
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_TABLE_PAGE;
  p.u.table_page.version = 1;
  p.u.table_page.total = 20;
  fill_entries(p.u.table_page.entries, 20, UDPC_STATUS_ONLINE);
  p.u.table_page.count = 20;
  expect_encode(&p, UDPC_TABLE_PAGE_FIXED + 20 * (1 + 3 + 1 + 1 + 4 + 2) - 10,
                "table count 20");
  /* R52: as many as fit in 1200 bytes, at most 116 (P3.5). */
  p.u.table_page.total = 200;
  fill_min_entries(p.u.table_page.entries, UDPC_TABLE_PAGE_MAX,
                   UDPC_STATUS_ONLINE);
  p.u.table_page.count = UDPC_TABLE_PAGE_MAX;
  expect_encode(&p, UDPC_TABLE_PAGE_FIXED + 116 * 10, "table count 116");
  p.u.table_page.count = UDPC_TABLE_PAGE_MAX + 1;
  expect_encode(&p, UDPC_ERR_LENGTH, "table count 117");
  fill_max_entries(p.u.table_page.entries, 23, UDPC_STATUS_ONLINE);
  p.u.table_page.count = 22;
  expect_encode(&p, UDPC_TABLE_PAGE_FIXED + 22 * 53, "22 largest entries");
  p.u.table_page.count = 23;
  expect_encode(&p, UDPC_ERR_TOO_BIG, "23 largest entries: 1250 bytes");
  p.u.table_page.count = 0;
  p.u.table_page.total = 0;
  expect_encode(&p, UDPC_TABLE_PAGE_FIXED, "table count 0");
  p.u.table_page.count = 1;
  expect_encode(&p, UDPC_ERR_VALUE, "table count 1 > total 0");
  p.u.table_page.total = 0xffffffffu;
  p.u.table_page.start = 0xffffffffu;
  expect_encode(&p, UDPC_ERR_VALUE, "table start overflow");
  p.u.table_page.start = 0xfffffffeu;
  expect_encode(&p, UDPC_TABLE_PAGE_FIXED + 10, "table start+count == total");

  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_TABLE_DELTA;
  p.u.table_delta.base_version = 1;
  p.u.table_delta.new_version = 2;
  fill_entries(p.u.table_delta.entries, 20, UDPC_STATUS_REMOVED);
  p.u.table_delta.count = 20;
  expect_encode(&p, UDPC_TABLE_DELTA_FIXED + 20 * 12 - 10, "delta count 20");
  fill_min_entries(p.u.table_delta.entries, UDPC_TABLE_PAGE_MAX,
                   UDPC_STATUS_REMOVED);
  p.u.table_delta.count = UDPC_TABLE_PAGE_MAX;
  expect_encode(&p, UDPC_TABLE_DELTA_FIXED + 116 * 10, "delta count 116");
  p.u.table_delta.count = UDPC_TABLE_PAGE_MAX + 1;
  expect_encode(&p, UDPC_ERR_LENGTH, "delta count 117");
  fill_max_entries(p.u.table_delta.entries, 23, UDPC_STATUS_ONLINE);
  p.u.table_delta.count = 23;
  expect_encode(&p, UDPC_ERR_TOO_BIG, "delta of 23 largest entries");
  fill_entries(p.u.table_delta.entries, 20, UDPC_STATUS_REMOVED);
  p.u.table_delta.count = 0;
  expect_encode(&p, UDPC_ERR_LENGTH, "delta count 0");
  p.u.table_delta.count = 1;
  expect_encode(&p, UDPC_TABLE_DELTA_FIXED + 11, "delta count 1");
  p.u.table_delta.new_version = 1;
  expect_encode(&p, UDPC_ERR_VALUE, "delta new == base");
  p.u.table_delta.new_version = 0;
  expect_encode(&p, UDPC_ERR_VALUE, "delta new < base");
}

/* R2 R21: the encoder refuses a packet over 1200 bytes (UDPC_ERR_TOO_BIG). */
static void test_boundaries_mail(void **state) {
  (void)state;
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_MAIL_PAGE;
  size_t want = UDPC_MAIL_PAGE_FIXED;
  for (unsigned i = 0; i < UDPC_MAIL_PAGE_MAX; i++) {
    udpc_mail *m = &p.u.mail_page.mail[i];
    m->seq = 10 + i;
    set_nick(&m->from, "bob");
    m->text.p = text1101;
    m->text.len = 40;
    want += udpc_wire_mail_size(m);
  }
  assert_int_equal(udpc_wire_mail_size(&p.u.mail_page.mail[0]),
                   UDPC_MAIL_ENTRY_FIXED + 3 + 40);
  p.u.mail_page.count = 16;
  expect_encode(&p, (int)want, "mail count 16");
  p.u.mail_page.count = 17;
  expect_encode(&p, UDPC_ERR_LENGTH, "mail count 17");
  p.u.mail_page.count = 0;
  expect_encode(&p, UDPC_MAIL_PAGE_FIXED, "mail count 0");
  p.u.mail_page.count = 2;
  p.u.mail_page.mail[1].seq = 10;
  expect_encode(&p, UDPC_ERR_VALUE, "mail seq equal");
  p.u.mail_page.mail[1].seq = 11;

  /* Too big for 1200: TOO_BIG even with a bad field inside, because the
   * decoder checks the size first. The largest mail always fits alone. */
  for (unsigned i = 0; i < 3; i++) p.u.mail_page.mail[i].text.len = 500;
  p.u.mail_page.count = 3;
  expect_encode(&p, UDPC_ERR_TOO_BIG, "mail page 3 x 500");
  p.u.mail_page.mail[2].text.len = 1101;
  expect_encode(&p, UDPC_ERR_TOO_BIG, "mail page too big with bad length");
  p.u.mail_page.mail[1].text.len = 100;
  p.u.mail_page.mail[2].text.len = 100;
  expect_encode(&p,
                UDPC_MAIL_PAGE_FIXED + 3 * (UDPC_MAIL_ENTRY_FIXED + 3) + 700,
                "mail page fits");
  set_nick(&p.u.mail_page.mail[0].from, "abcdefghijklmnopqrstuvwxyz012345");
  p.u.mail_page.mail[0].text.len = UDPC_TEXT_MAX;
  p.u.mail_page.count = 1;
  assert_int_equal(udpc_wire_mail_size(&p.u.mail_page.mail[0]),
                   UDPC_MAIL_ENTRY_MAX);
  expect_encode(&p, UDPC_MAIL_PAGE_FIXED + UDPC_MAIL_ENTRY_MAX,
                "largest single mail");
  assert_true(UDPC_MAIL_PAGE_FIXED + UDPC_MAIL_ENTRY_MAX <= UDPC_MAX_PACKET);
  /* R52: a page holds up to 116 entries; 22 of the largest always fit. */
  assert_true(UDPC_TABLE_PAGE_FIXED + UDPC_TABLE_PAGE_MAX * UDPC_ENTRY_MIN <=
              UDPC_MAX_PACKET);
  assert_true(UDPC_TABLE_PAGE_FIXED +
                  (UDPC_TABLE_PAGE_MAX + 1) * UDPC_ENTRY_MIN >
              UDPC_MAX_PACKET);
  assert_true(UDPC_TABLE_PAGE_FIXED + 22 * UDPC_ENTRY_MAX <= UDPC_MAX_PACKET);
  assert_int_equal(UDPC_TABLE_PAGE_FIXED, UDPC_TABLE_DELTA_FIXED);
}

/* Every field-level refusal: encode gives the code the decoder gives. */
/* R21 R17: every field-level refusal of the encoder is the decoder's code
 * (UTF-8 and controls included). */
static void test_encode_refuses_like_decode(void **state) {
  (void)state;
  udpc_packet p;

  memset(&p, 0, sizeof p);
  p.type = 0x05;
  expect_encode(&p, UDPC_ERR_TYPE, "unknown type");
  p.type = 0xff;
  expect_encode(&p, UDPC_ERR_TYPE, "unknown type 0xff");

  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_REGISTER_RESULT;
  p.u.reg_result.status = UDPC_REG_STATUS_MAX;
  expect_encode(&p, 6 + 1 + 8 + 8 + 4, "reg status max");
  p.u.reg_result.status = UDPC_REG_STATUS_MAX + 1;
  expect_encode(&p, UDPC_ERR_VALUE, "reg status max+1");

  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_DEREG_RESULT;
  p.u.dereg_result.status = UDPC_DEREG_STATUS_MAX;
  expect_encode(&p, 15, "dereg status max");
  p.u.dereg_result.status = UDPC_DEREG_STATUS_MAX + 1;
  expect_encode(&p, UDPC_ERR_VALUE, "dereg status max+1");

  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_ERROR;
  p.u.error.code = 0;
  expect_encode(&p, UDPC_ERR_VALUE, "error code 0");
  p.u.error.code = UDPC_ERROR_CODE_MAX + 1;
  expect_encode(&p, UDPC_ERR_VALUE, "error code max+1");
  p.u.error.code = UDPC_ERROR_CODE_MAX;
  expect_encode(&p, 7, "error code max");

  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_SAVE_RESULT;
  p.u.save_result.status = UDPC_SAVE_STATUS_MAX + 1;
  expect_encode(&p, UDPC_ERR_VALUE, "save status max+1");
  p.u.save_result.status = UDPC_SAVE_SAVED;
  expect_encode(&p, 15, "save saved (entry ignored)");
  p.u.save_result.status = UDPC_SAVE_RECIPIENT_ONLINE;
  set_nick(&p.u.save_result.entry.nick, "bob");
  p.u.save_result.entry.status = UDPC_STATUS_ONLINE;
  set_addr4(&p.u.save_result.entry.addr, 1, 2);
  expect_encode(&p, 15 + 4 + 1 + 7, "save online");
  p.u.save_result.entry.addr.family = 5;
  expect_encode(&p, UDPC_ERR_VALUE, "bad family");
  p.u.save_result.entry.addr.family = 0;
  expect_encode(&p, UDPC_ERR_VALUE, "family 0");
  p.u.save_result.entry.addr.family = 6;
  expect_encode(&p, 15 + 4 + 1 + 19, "family 6");
  p.u.save_result.entry.status = UDPC_STATUS_REMOVED;
  expect_encode(&p, UDPC_ERR_VALUE, "removed outside delta");

  static const struct {
    const char *bytes;
    int want;
  } texts[] = {
      {"ok", 0},
      {"\xc0\x80", UDPC_ERR_UTF8},
      {"\xed\xa0\x80", UDPC_ERR_UTF8},
      {"\x80", UDPC_ERR_UTF8},
      {"a\x07", UDPC_ERR_CONTROL},
      {"\xc2\x85", UDPC_ERR_CONTROL},
      {"\x7f", UDPC_ERR_CONTROL},
      {"\x07\xff", UDPC_ERR_CONTROL},
      {"\xff\x07", UDPC_ERR_UTF8},
      {"\xf4\x90\x80\x80", UDPC_ERR_UTF8},
  };
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_CHAT;
  set_nick(&p.u.chat.from, "alice");
  set_nick(&p.u.chat.to, "bob");
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    p.u.chat.text.p = (const uint8_t *)texts[i].bytes;
    p.u.chat.text.len = (uint16_t)strlen(texts[i].bytes);
    expect_encode(&p, texts[i].want ? texts[i].want : 6 + 6 + 4 + 2 + 2,
                  texts[i].bytes);
  }
  /* Wire order: the first bad field wins (from before to before text). */
  p.u.chat.text.p = (const uint8_t *)"\x07";
  p.u.chat.text.len = 1;
  set_nick(&p.u.chat.to, "Bob");
  expect_encode(&p, UDPC_ERR_NICK, "nick before text");
}

/* ---- Random round trips -------------------------------------------------- */

typedef struct {
  uint64_t s;
} rng;

/* xorshift64* (Vigna). */
static uint64_t rnd(rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 0x2545F4914F6CDD1Dull;
}

static uint32_t rnd_below(rng *r, uint32_t n) { return (uint32_t)(rnd(r) % n); }

static void rnd_nick(rng *r, udpc_nick *n, unsigned max_len) {
  static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789_-";
  memset(n, 0, sizeof *n);
  n->len = (uint8_t)(1 + rnd_below(r, max_len));
  for (unsigned i = 0; i < n->len; i++)
    n->s[i] = alpha[rnd_below(r, sizeof alpha - 1)];
}

/* Random valid UTF-8 text of exactly len bytes (1..1100) into buf. */
static void rnd_text(rng *r, udpc_bytes *t, uint8_t *buf, size_t len) {
  size_t i = 0;
  while (i < len) {
    size_t room = len - i;
    uint32_t kind = rnd_below(r, 8);
    uint32_t cp;
    if (kind == 4 && room >= 2)
      cp = 0xA0 + rnd_below(r, 0x800 - 0xA0);
    else if (kind == 5 && room >= 3) {
      do cp = 0x800 + rnd_below(r, 0x10000 - 0x800);
      while (cp >= 0xD800 && cp <= 0xDFFF);
    } else if (kind == 6 && room >= 4)
      cp = 0x10000 + rnd_below(r, 0x110000 - 0x10000);
    else
      cp = 0x20 + rnd_below(r, 0x5f); /* printable ASCII incl. " and \ */
    if (cp < 0x80) {
      buf[i++] = (uint8_t)cp;
    } else if (cp < 0x800) {
      buf[i++] = (uint8_t)(0xC0 | cp >> 6);
      buf[i++] = (uint8_t)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      buf[i++] = (uint8_t)(0xE0 | cp >> 12);
      buf[i++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      buf[i++] = (uint8_t)(0x80 | (cp & 0x3F));
    } else {
      buf[i++] = (uint8_t)(0xF0 | cp >> 18);
      buf[i++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
      buf[i++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      buf[i++] = (uint8_t)(0x80 | (cp & 0x3F));
    }
  }
  t->p = buf;
  t->len = (uint16_t)len;
}

static size_t rnd_len(rng *r, size_t max) {
  /* Favour the edges: 1, max, or uniform. */
  switch (rnd_below(r, 4)) {
    case 0: return 1;
    case 1: return max;
    default: return 1 + rnd_below(r, (uint32_t)max);
  }
}

static void rnd_entry(rng *r, udpc_entry *e, uint8_t max_status) {
  rnd_nick(r, &e->nick, UDPC_NICK_MAX);
  e->status = (uint8_t)rnd_below(r, max_status + 1u);
  memset(&e->addr, 0, sizeof e->addr);
  e->addr.family = rnd_below(r, 2) ? 4 : 6;
  for (unsigned i = 0; i < (e->addr.family == 4 ? 4u : 16u); i++)
    e->addr.ip[i] = rnd_below(r, 3) ? (uint8_t)rnd(r) : 0;
  e->addr.port = (uint16_t)rnd(r);
}

/* A random valid packet of a random type; text bytes live in pool. */
static void rnd_packet(rng *r, udpc_packet *p, uint8_t *pool) {
  memset(p, 0, sizeof *p);
  p->type = (uint8_t)all_types[rnd_below(r, N_TYPES)];
  p->id = (uint32_t)rnd(r);
  if (udpc_ptype_has_token(p->type)) p->token = rnd(r);
  switch (p->type) {
    case UDPC_PT_REGISTER:
      p->u.reg.cookie_len = (uint8_t)rnd_below(r, UDPC_COOKIE_MAX + 1);
      for (unsigned i = 0; i < p->u.reg.cookie_len; i++)
        p->u.reg.cookie[i] = (uint8_t)rnd(r);
      rnd_nick(r, &p->u.reg.nick, UDPC_NICK_MAX);
      for (unsigned i = 0; i < UDPC_CRED_LEN; i++)
        p->u.reg.credential[i] = (uint8_t)rnd(r);
      break;
    case UDPC_PT_COOKIE:
      p->u.cookie.cookie_len = (uint8_t)(1 + rnd_below(r, UDPC_COOKIE_MAX));
      for (unsigned i = 0; i < p->u.cookie.cookie_len; i++)
        p->u.cookie.cookie[i] = (uint8_t)rnd(r);
      break;
    case UDPC_PT_REGISTER_RESULT:
      p->u.reg_result.status = (uint8_t)rnd_below(r, UDPC_REG_STATUS_MAX + 1);
      p->u.reg_result.token = rnd(r);
      p->u.reg_result.table_version = rnd(r);
      p->u.reg_result.mail_count = (uint32_t)rnd(r);
      break;
    case UDPC_PT_TABLE_REQ: p->u.table_req.start = (uint32_t)rnd(r); break;
    case UDPC_PT_TABLE_PAGE: {
      uint8_t count = (uint8_t)rnd_below(r, UDPC_TABLE_PAGE_MAX + 1);
      p->u.table_page.version = rnd(r);
      p->u.table_page.count = count;
      p->u.table_page.start = rnd_below(r, 1000);
      p->u.table_page.total = p->u.table_page.start + count +
                              (rnd_below(r, 2) ? rnd_below(r, 1000) : 0);
      /* As many as fit in 1200 bytes (P3.5): stop at the first that
       * would not. */
      size_t used = UDPC_TABLE_PAGE_FIXED;
      for (unsigned i = 0; i < count; i++) {
        rnd_entry(r, &p->u.table_page.entries[i], UDPC_STATUS_ONLINE);
        used += udpc_wire_entry_size(&p->u.table_page.entries[i]);
        if (used > UDPC_MAX_PACKET) {
          p->u.table_page.count = (uint8_t)i;
          break;
        }
      }
      break;
    }
    case UDPC_PT_TABLE_DELTA: {
      uint8_t count = (uint8_t)(1 + rnd_below(r, UDPC_TABLE_PAGE_MAX));
      p->u.table_delta.base_version = rnd(r) >> 1;
      p->u.table_delta.new_version =
          p->u.table_delta.base_version + 1 + (rnd(r) >> 2);
      p->u.table_delta.count = count;
      size_t used = UDPC_TABLE_DELTA_FIXED;
      for (unsigned i = 0; i < count; i++) {
        rnd_entry(r, &p->u.table_delta.entries[i], UDPC_STATUS_REMOVED);
        used += udpc_wire_entry_size(&p->u.table_delta.entries[i]);
        if (used > UDPC_MAX_PACKET) {
          p->u.table_delta.count = (uint8_t)(i > 0 ? i : 1);
          break;
        }
      }
      break;
    }
    case UDPC_PT_HEARTBEAT_ACK:
      p->u.heartbeat_ack.table_version = rnd(r);
      break;
    case UDPC_PT_DEREG_OTHER:
      rnd_nick(r, &p->u.dereg_other.target, UDPC_NICK_MAX);
      break;
    case UDPC_PT_DEREG_RESULT:
      p->u.dereg_result.status =
          (uint8_t)rnd_below(r, UDPC_DEREG_STATUS_MAX + 1);
      break;
    case UDPC_PT_KICKED: rnd_nick(r, &p->u.kicked.by, UDPC_NICK_MAX); break;
    case UDPC_PT_SAVE:
      rnd_nick(r, &p->u.save.to, UDPC_NICK_MAX);
      p->u.save.msg_id = (uint32_t)rnd(r);
      rnd_text(r, &p->u.save.text, pool, rnd_len(r, UDPC_TEXT_MAX));
      break;
    case UDPC_PT_SAVE_RESULT:
      p->u.save_result.status = (uint8_t)rnd_below(r, UDPC_SAVE_STATUS_MAX + 1);
      if (p->u.save_result.status == UDPC_SAVE_RECIPIENT_ONLINE)
        rnd_entry(r, &p->u.save_result.entry, UDPC_STATUS_ONLINE);
      break;
    case UDPC_PT_MAIL_REQ: p->u.mail_req.ack_upto = rnd(r); break;
    case UDPC_PT_MAIL_PAGE: {
      /* Pack like a server: while it fits in 1200 and count <= 16. */
      size_t used = UDPC_MAIL_PAGE_FIXED;
      unsigned want = rnd_below(r, UDPC_MAIL_PAGE_MAX + 1);
      uint64_t seq = rnd(r) >> 8;
      p->u.mail_page.remaining = (uint32_t)rnd(r);
      for (unsigned i = 0; i < want; i++) {
        size_t room = UDPC_MAX_PACKET - used;
        if (room < UDPC_MAIL_ENTRY_FIXED + 2) break;
        udpc_mail *m = &p->u.mail_page.mail[i];
        m->seq = seq;
        seq += 1 + rnd_below(r, 5);
        m->msg_id = (uint32_t)rnd(r);
        m->timestamp_ms = rnd(r);
        size_t nick_max = room - UDPC_MAIL_ENTRY_FIXED - 1;
        rnd_nick(
            r, &m->from,
            (unsigned)(nick_max < UDPC_NICK_MAX ? nick_max : UDPC_NICK_MAX));
        size_t text_max = room - UDPC_MAIL_ENTRY_FIXED - m->from.len;
        if (text_max > UDPC_TEXT_MAX) text_max = UDPC_TEXT_MAX;
        if (text_max > 200 && rnd_below(r, 4)) text_max = 200;
        rnd_text(r, &m->text, pool + (used - UDPC_MAIL_PAGE_FIXED),
                 rnd_len(r, text_max));
        used += udpc_wire_mail_size(m);
        p->u.mail_page.count = (uint8_t)(i + 1);
      }
      break;
    }
    case UDPC_PT_CHAT:
      rnd_nick(r, &p->u.chat.from, UDPC_NICK_MAX);
      rnd_nick(r, &p->u.chat.to, UDPC_NICK_MAX);
      rnd_text(r, &p->u.chat.text, pool, rnd_len(r, UDPC_TEXT_MAX));
      break;
    case UDPC_PT_CHAT_ACK:
      rnd_nick(r, &p->u.chat_ack.from, UDPC_NICK_MAX);
      break;
    case UDPC_PT_ERROR:
      p->u.error.code = (uint8_t)(1 + rnd_below(r, UDPC_ERROR_CODE_MAX));
      break;
    default: break; /* empty bodies */
  }
}

static void test_random_round_trips(void **state) {
  (void)state;
  rng r = {RANDOM_SEED};
  static uint8_t pool[2048];
  static char f1[FMT_CAP], f2[FMT_CAP];
  unsigned per_type[256] = {0};
  print_message("random round trips: seed 0x%016llx, %d iterations\n",
                (unsigned long long)RANDOM_SEED, RANDOM_ITERATIONS);
  for (int it = 0; it < RANDOM_ITERATIONS; it++) {
    udpc_packet p, q;
    uint8_t a[UDPC_MAX_PACKET], b[UDPC_MAX_PACKET];
    rnd_packet(&r, &p, pool);
    per_type[p.type]++;
    int n = udpc_wire_encode(&p, a, sizeof a);
    if (n <= 0)
      fail_msg("iteration %d (%s): encode gave %d (%s)", it,
               udpc_ptype_name(p.type), n, udpc_strerror(n));
    int d = udpc_wire_decode(&q, a, (size_t)n);
    if (d != UDPC_OK)
      fail_msg("iteration %d (%s): decode gave %d (%s)", it,
               udpc_ptype_name(p.type), d, udpc_strerror(d));
    assert_int_equal(udpc_wire_encode(&q, b, sizeof b), n);
    assert_memory_equal(a, b, (size_t)n);
    assert_true(udpc_wire_format(&p, f1, sizeof f1) > 0);
    assert_true(udpc_wire_format(&q, f2, sizeof f2) > 0);
    assert_string_equal(f1, f2);
  }
  for (size_t t = 0; t < N_TYPES; t++) assert_true(per_type[all_types[t]] > 0);
}

/* Random byte flips of valid datagrams: decoding never misbehaves (ASan),
 * and whatever decodes re-encodes to exactly the same bytes (the encoding
 * is canonical: one byte string per packet). */
static void test_random_corruption(void **state) {
  (void)state;
  rng r = {RANDOM_SEED ^ 0xffu};
  static uint8_t pool[2048];
  size_t accepted = 0, rejected = 0;
  for (int it = 0; it < RANDOM_ITERATIONS; it++) {
    udpc_packet p, q;
    uint8_t a[UDPC_MAX_PACKET], b[UDPC_MAX_PACKET];
    rnd_packet(&r, &p, pool);
    int n = udpc_wire_encode(&p, a, sizeof a);
    assert_true(n > 0);
    unsigned flips = 1 + rnd_below(&r, 3);
    for (unsigned k = 0; k < flips; k++)
      a[rnd_below(&r, (uint32_t)n)] ^= (uint8_t)(1u << rnd_below(&r, 8));
    size_t len = (size_t)n;
    if (rnd_below(&r, 4) == 0) len = rnd_below(&r, (uint32_t)n + 1);
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, a, len);
    int d = udpc_wire_decode(&q, copy, len);
    if (d == UDPC_OK) {
      accepted++;
      assert_int_equal(udpc_wire_encode(&q, b, sizeof b), (int)len);
      assert_memory_equal(copy, b, len);
    } else {
      rejected++;
      assert_true(d < 0 && d >= UDPC_ERR_TOO_BIG);
    }
    free(copy);
  }
  assert_true(accepted > 0 && rejected > 0);
}

/* Keep a damaged text readable: the original pointer; if the length grew,
 * a buffer that long; sometimes a short text full of bad characters. */
static void fix_text(rng *r, udpc_bytes *t, const udpc_bytes *orig,
                     const uint8_t *bad) {
  t->p = orig->p;
  if (t->len > orig->len || t->p == NULL) {
    t->p = text1101;
    if (t->len > sizeof text1101) t->len = sizeof text1101;
  }
  if (rnd_below(r, 8) == 0) {
    t->p = bad;
    t->len = (uint16_t)(1 + rnd_below(r, 11));
  }
}

/* Random struct damage: encode refuses with exactly the decoder's code. */
/* R21: damaged structs are refused with exactly the decoder's code. */
static void test_random_struct_damage(void **state) {
  (void)state;
  rng r = {RANDOM_SEED ^ 0xabcdefu};
  static uint8_t pool[2048];
  static const uint8_t bad_text[] =
      "ab\x07\xff\xc0\x80\xed\xa0\x80\xc2\x85"; /* 11 */
  int refused = 0;
  for (int it = 0; it < RANDOM_ITERATIONS; it++) {
    udpc_packet p;
    rnd_packet(&r, &p, pool);
    /* Damage 1-2 random bytes of the struct's body, then repair the text
     * pointers so that every text still points at readable bytes. */
    const udpc_packet saved = p;
    unsigned hits = 1 + rnd_below(&r, 2);
    for (unsigned k = 0; k < hits; k++) {
      size_t off = offsetof(udpc_packet, u) + rnd_below(&r, 160);
      ((uint8_t *)&p)[off] =
          (uint8_t)(rnd_below(&r, 2) ? rnd(&r) : rnd_below(&r, 40));
    }
    if (p.type == UDPC_PT_CHAT)
      fix_text(&r, &p.u.chat.text, &saved.u.chat.text, bad_text);
    else if (p.type == UDPC_PT_SAVE)
      fix_text(&r, &p.u.save.text, &saved.u.save.text, bad_text);
    else if (p.type == UDPC_PT_MAIL_PAGE)
      for (unsigned i = 0; i < UDPC_MAIL_PAGE_MAX; i++)
        fix_text(&r, &p.u.mail_page.mail[i].text,
                 &saved.u.mail_page.mail[i].text, bad_text);
    uint8_t buf[UDPC_MAX_PACKET];
    int e = udpc_wire_encode(&p, buf, sizeof buf);
    if (e < 0) refused++;
    expect_encode(&p, e, "random damage");
  }
  print_message("random struct damage: %d of %d refused\n", refused,
                RANDOM_ITERATIONS);
  assert_true(refused > 0);
}

/* ---- Smaller API tests --------------------------------------------------- */

static void test_ptype_name_and_token(void **state) {
  (void)state;
  static const int tokened[] = {
      UDPC_PT_TABLE_REQ,   UDPC_PT_TABLE_PAGE,    UDPC_PT_TABLE_DELTA,
      UDPC_PT_HEARTBEAT,   UDPC_PT_HEARTBEAT_ACK, UDPC_PT_DEREG,
      UDPC_PT_DEREG_OTHER, UDPC_PT_DEREG_RESULT,  UDPC_PT_KICKED,
      UDPC_PT_SAVE,        UDPC_PT_SAVE_RESULT,   UDPC_PT_MAIL_REQ,
      UDPC_PT_MAIL_PAGE,   UDPC_PT_PROBE,         UDPC_PT_PROBE_ACK};
  int known = 0;
  for (int t = -1; t <= 256; t++) {
    const char *name = udpc_ptype_name(t);
    assert_non_null(name);
    int is_known = strcmp(name, "UNKNOWN") != 0;
    known += is_known;
    int want_token = 0;
    for (size_t i = 0; i < sizeof tokened / sizeof tokened[0]; i++)
      want_token |= tokened[i] == t;
    assert_int_equal(udpc_ptype_has_token(t), want_token);
    if (want_token) assert_true(is_known);
  }
  assert_int_equal(known, (int)N_TYPES);
  assert_string_equal(udpc_ptype_name(UDPC_PT_REGISTER), "REGISTER");
  assert_string_equal(udpc_ptype_name(UDPC_PT_TABLE_PAGE), "TABLE_PAGE");
  assert_string_equal(udpc_ptype_name(UDPC_PT_PROBE_ACK), "PROBE_ACK");
  assert_string_equal(udpc_ptype_name(UDPC_PT_ERROR), "ERROR");
  assert_string_equal(udpc_ptype_name(0x7e), "UNKNOWN");
}

static void test_strerror(void **state) {
  (void)state;
  const char *seen[32] = {0};
  for (int e = 0; e >= UDPC_ERR_NOT_FOUND; e--) {
    const char *s = udpc_strerror(e);
    assert_non_null(s);
    assert_true(strlen(s) > 3);
    assert_string_not_equal(s, "unknown error");
    for (int k = 0; k < -e; k++) assert_string_not_equal(s, seen[k]);
    seen[-e] = s;
  }
  assert_string_equal(udpc_strerror(UDPC_ERR_NOT_FOUND - 1), "unknown error");
  assert_string_equal(udpc_strerror(1), "unknown error");
  assert_string_equal(udpc_strerror(-1000), "unknown error");
}

static void test_decode_arguments(void **state) {
  (void)state;
  udpc_packet p;
  uint8_t type = 0;
  uint32_t id = 0;
  const uint8_t hb[] = {1, 0x20, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1};
  assert_int_equal(udpc_wire_decode(NULL, hb, sizeof hb), UDPC_ERR_ARG);
  assert_int_equal(udpc_wire_decode(&p, NULL, 5), UDPC_ERR_ARG);
  assert_int_equal(udpc_wire_decode(&p, NULL, 0), UDPC_ERR_TRUNCATED);
  assert_int_equal(udpc_wire_decode(&p, hb, sizeof hb), UDPC_OK);
  assert_int_equal(p.token, 1);
  assert_int_equal(udpc_wire_decode_header(NULL, &id, hb, 6), UDPC_ERR_ARG);
  assert_int_equal(udpc_wire_decode_header(&type, NULL, hb, 6), UDPC_ERR_ARG);
  assert_int_equal(udpc_wire_decode_header(&type, &id, hb, 6), UDPC_OK);
  assert_int_equal(type, 0x20);
  assert_int_equal(id, 9);
  assert_int_equal(udpc_wire_decode_header(&type, &id, hb, 5),
                   UDPC_ERR_TRUNCATED);
  const uint8_t v2[] = {2, 0x20, 0, 0, 0, 7};
  assert_int_equal(udpc_wire_decode_header(&type, &id, v2, 6),
                   UDPC_ERR_VERSION);
  assert_int_equal(id, 7); /* filled for VERSION and TYPE */
  const uint8_t t5[] = {1, 0x05, 0, 0, 1, 0};
  assert_int_equal(udpc_wire_decode_header(&type, &id, t5, 6), UDPC_ERR_TYPE);
  assert_int_equal(type, 5);
  assert_int_equal(id, 256);
  assert_int_equal(udpc_wire_encode(NULL, (uint8_t[8]){0}, 8), UDPC_ERR_ARG);
  assert_int_equal(udpc_wire_encode(&p, NULL, 8), UDPC_ERR_ARG);
}

static void test_format_capacity(void **state) {
  (void)state;
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_CHAT_ACK;
  p.id = 31;
  set_nick(&p.u.chat_ack.from, "bob");
  char buf[64];
  const char *want = "CHAT_ACK id=31 from=bob";
  size_t n = strlen(want);
  assert_int_equal(udpc_wire_format(&p, buf, sizeof buf), (int)n);
  assert_string_equal(buf, want);
  assert_int_equal(udpc_wire_format(&p, buf, n + 1), (int)n);
  assert_string_equal(buf, want);
  memset(buf, 'x', sizeof buf);
  assert_int_equal(udpc_wire_format(&p, buf, n), UDPC_ERR_TOO_BIG);
  assert_int_equal(buf[0], '\0');
  assert_int_equal(udpc_wire_format(&p, NULL, 0), UDPC_ERR_TOO_BIG);
  assert_int_equal(udpc_wire_format(NULL, buf, sizeof buf), UDPC_ERR_ARG);
}

/* Hand-built (never decoded) packets still format safely and
 * unambiguously, per the fallback rules of the grammar. */
static void test_format_hand_built(void **state) {
  (void)state;
  udpc_packet p;
  char buf[4096];
  memset(&p, 0, sizeof p);
  p.type = 0x7e;
  p.id = 1;
  assert_true(udpc_wire_format(&p, buf, sizeof buf) > 0);
  assert_string_equal(buf, "UNKNOWN(126) id=1");
  p.type = UDPC_PT_SAVE_RESULT;
  p.token = 0xab;
  p.u.save_result.status = 1;
  set_nick(&p.u.save_result.entry.nick, "Bad\"");
  p.u.save_result.entry.status = 9;
  p.u.save_result.entry.addr.family = 7;
  p.u.save_result.entry.addr.port = 80;
  assert_true(udpc_wire_format(&p, buf, sizeof buf) > 0);
  assert_string_equal(buf,
                      "SAVE_RESULT id=1 token=00000000000000ab "
                      "status=recipient_online entry={\"Bad\\\"\" 9 7:?:80}");
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_CHAT;
  set_nick(&p.u.chat.from, "a");
  set_nick(&p.u.chat.to, "b");
  p.u.chat.text.p = (const uint8_t *)"\x01\x1f\x7f\"\\\xc3\xa9";
  p.u.chat.text.len = 7;
  assert_true(udpc_wire_format(&p, buf, sizeof buf) > 0);
  assert_string_equal(buf, "CHAT id=0 from=a to=b "
                           "text=\"\\u0001\\u001f\\u007f\\\"\\\\\xc3\xa9\"");
  p.type = UDPC_PT_ERROR;
  p.u.error.code = 0;
  assert_true(udpc_wire_format(&p, buf, sizeof buf) > 0);
  assert_string_equal(buf, "ERROR id=0 code=0");
  p.type = UDPC_PT_TABLE_PAGE;
  memset(&p.u, 0, sizeof p.u);
  p.u.table_page.count = 200; /* clamped to the array: 116 entries shown */
  assert_true(udpc_wire_format(&p, buf, sizeof buf) > 0);
  int shown = 0;
  for (const char *q = buf; (q = strstr(q, "\"\" offline 0:?:0")) != NULL; q++)
    shown++;
  assert_int_equal(shown, UDPC_TABLE_PAGE_MAX);
}

/* udpc_wire.h table builder: for random tables, a TABLE_PAGE or
 * TABLE_DELTA built in one pass (udpc_wire_page_begin / delta_begin,
 * append entry by entry until one does not fit, finish) is byte for byte
 * udpc_wire_encode of the same packet, never exceeds 1200 bytes, and holds
 * exactly as many entries as the greedy packing by udpc_wire_entry_size
 * (R52: as many as fit). Deltas go both through append (fields) and
 * append_bytes (udpc_wire_entry_encode), with versions given at begin or
 * set afterwards. */
static void test_table_builder_matches_encode(void **state) {
  (void)state;
  rng r = {RANDOM_SEED ^ 0x7461626c65ull};
  static udpc_entry tab[300];
  for (int it = 0; it < 3000; it++) {
    int delta = it & 1;
    uint32_t total = 1 + rnd_below(&r, 300);
    uint8_t maxst = delta ? UDPC_STATUS_REMOVED : UDPC_STATUS_ONLINE;
    unsigned short_pct = rnd_below(&r, 101); /* share of 1-byte nicks */
    for (uint32_t i = 0; i < total; i++) {
      rnd_entry(&r, &tab[i], maxst);
      if (rnd_below(&r, 100) < short_pct) {
        tab[i].nick.len = 1;
        tab[i].nick.s[1] = '\0';
        tab[i].addr.family = 4;
      }
    }
    uint32_t start = delta ? rnd_below(&r, total) : rnd_below(&r, total + 1);
    uint64_t v1 = rnd(&r) >> 1, v2 = v1 + 1 + rnd_below(&r, 1000);
    uint32_t id = (uint32_t)rnd(&r);
    uint64_t token = rnd(&r);
    /* reference: greedy by entry sizes, then udpc_wire_encode */
    static udpc_packet p;
    memset(&p, 0, sizeof p);
    p.type = delta ? UDPC_PT_TABLE_DELTA : UDPC_PT_TABLE_PAGE;
    p.id = id;
    p.token = token;
    size_t size = delta ? UDPC_TABLE_DELTA_FIXED : UDPC_TABLE_PAGE_FIXED;
    unsigned n = 0;
    while (start + n < total && n < UDPC_TABLE_PAGE_MAX &&
           size + udpc_wire_entry_size(&tab[start + n]) <= UDPC_MAX_PACKET) {
      size += udpc_wire_entry_size(&tab[start + n]);
      n++;
    }
    udpc_entry *dst = delta ? p.u.table_delta.entries : p.u.table_page.entries;
    memcpy(dst, &tab[start], n * sizeof *dst);
    if (delta) {
      p.u.table_delta.base_version = v1;
      p.u.table_delta.new_version = v2;
      p.u.table_delta.count = (uint8_t)n;
    } else {
      p.u.table_page.version = v1;
      p.u.table_page.total = total;
      p.u.table_page.start = start;
      p.u.table_page.count = (uint8_t)n;
    }
    uint8_t want[UDPC_MAX_PACKET], got[UDPC_MAX_PACKET + 64];
    int wn = udpc_wire_encode(&p, want, sizeof want);
    assert_int_equal(wn, (int)size);
    /* the builder (a bigger buffer: it still stops at 1200 bytes) */
    udpc_wire_table t;
    int late = delta && rnd_below(&r, 2); /* versions set afterwards */
    int bytes = delta && rnd_below(&r, 2);
    if (delta)
      assert_int_equal(udpc_wire_delta_begin(&t, got, sizeof got, id, token,
                                             late ? 0 : v1, late ? 0 : v2),
                       UDPC_OK);
    else
      assert_int_equal(udpc_wire_page_begin(&t, got, sizeof got, id, token, v1,
                                            total, start),
                       UDPC_OK);
    unsigned m = 0;
    for (uint32_t i = start; i < total; i++) {
      const udpc_entry *e = &tab[i];
      int a;
      if (bytes) {
        uint8_t eb[UDPC_ENTRY_MAX];
        int el = udpc_wire_entry_encode(&e->nick, e->status, &e->addr, eb,
                                        sizeof eb);
        assert_int_equal(el, (int)udpc_wire_entry_size(e));
        a = udpc_wire_table_append_bytes(&t, eb, (size_t)el);
      } else {
        a = udpc_wire_table_append(&t, &e->nick, e->status, &e->addr);
      }
      assert_true(a == 0 || a == 1);
      if (a == 0) {
        /* nothing written; the next ones are not tried (greedy) */
        assert_int_equal(t.count, m);
        break;
      }
      m++;
    }
    if (late)
      assert_int_equal(udpc_wire_delta_set_versions(&t, v1, v2), UDPC_OK);
    int gn = udpc_wire_table_finish(&t);
    assert_int_equal(m, n);
    assert_int_equal(gn, wn);
    assert_true(gn <= UDPC_MAX_PACKET);
    assert_memory_equal(got, want, (size_t)wn);
  }
  /* a buffer that cannot hold the fixed part; a page's builder has no
   * versions to set */
  udpc_wire_table t;
  uint8_t small[UDPC_TABLE_PAGE_FIXED - 1];
  assert_int_equal(udpc_wire_page_begin(&t, small, sizeof small, 1, 2, 3, 4, 0),
                   UDPC_ERR_TOO_BIG);
  uint8_t buf[UDPC_MAX_PACKET];
  assert_int_equal(udpc_wire_page_begin(&t, buf, sizeof buf, 1, 2, 3, 4, 0),
                   UDPC_OK);
  assert_int_equal(udpc_wire_delta_set_versions(&t, 1, 2), UDPC_ERR_ARG);
  /* at most UDPC_TABLE_PAGE_MAX entries even when more would fit */
  udpc_nick one = {.len = 1, .s = "a"};
  udpc_addr a4 = {.family = 4};
  unsigned k = 0;
  while (udpc_wire_table_append(&t, &one, UDPC_STATUS_ONLINE, &a4) == 1) k++;
  assert_int_equal(k, UDPC_TABLE_PAGE_MAX);
  assert_int_equal(udpc_wire_table_finish(&t),
                   UDPC_TABLE_PAGE_FIXED +
                       UDPC_TABLE_PAGE_MAX * UDPC_ENTRY_MIN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors_cover_everything),
      cmocka_unit_test(test_valid_vectors_decode_to_fields),
      cmocka_unit_test(test_valid_vectors_reencode_identically),
      cmocka_unit_test(test_valid_vectors_prefixes_and_trailing),
      cmocka_unit_test(test_invalid_vectors_exact_code),
      cmocka_unit_test(test_boundaries_nick),
      cmocka_unit_test(test_boundaries_text),
      cmocka_unit_test(test_boundaries_cookie),
      cmocka_unit_test(test_boundaries_table),
      cmocka_unit_test(test_boundaries_mail),
      cmocka_unit_test(test_encode_refuses_like_decode),
      cmocka_unit_test(test_random_round_trips),
      cmocka_unit_test(test_random_corruption),
      cmocka_unit_test(test_random_struct_damage),
      cmocka_unit_test(test_ptype_name_and_token),
      cmocka_unit_test(test_strerror),
      cmocka_unit_test(test_decode_arguments),
      cmocka_unit_test(test_format_capacity),
      cmocka_unit_test(test_format_hand_built),
      cmocka_unit_test(test_table_builder_matches_encode),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
