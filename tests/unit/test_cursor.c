/*
 * test_cursor.c - the bounds-checked reader/writer cursor (udpc_cursor.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "udpc_cursor.h"
#include "udpc_guard.h"
#include "udpchat.h"

static const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                               0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
                               0x0d, 0x0e, 0x0f, 0x10, 0xff};

static void test_read_integers_big_endian(void **state) {
  (void)state;
  udpc_reader r;
  uint8_t a;
  uint16_t b;
  uint32_t c;
  uint64_t d;
  udpc_reader_init(&r, data, sizeof data);
  assert_int_equal(udpc_cursor_remaining(&r), 17);
  assert_int_equal(udpc_cursor_read_u8(&r, &a), UDPC_OK);
  assert_int_equal(a, 0x01);
  assert_int_equal(udpc_cursor_read_u16(&r, &b), UDPC_OK);
  assert_int_equal(b, 0x0203);
  assert_int_equal(udpc_cursor_read_u32(&r, &c), UDPC_OK);
  assert_int_equal(c, 0x04050607u);
  assert_int_equal(udpc_cursor_read_u64(&r, &d), UDPC_OK);
  assert_true(d == 0x08090a0b0c0d0e0full);
  assert_int_equal(udpc_cursor_remaining(&r), 2);
  assert_int_equal(udpc_cursor_read_u16(&r, &b), UDPC_OK);
  assert_int_equal(b, 0x10ff);
  assert_int_equal(udpc_cursor_remaining(&r), 0);
}

/* Each width: a read that ends exactly at the end works; one byte short
 * fails with TRUNCATED and leaves the cursor where it was. */
static void test_read_exact_end_and_one_past(void **state) {
  (void)state;
  const size_t widths[] = {1, 2, 4, 8};
  for (size_t w = 0; w < 4; w++) {
    const size_t n = widths[w];
    for (size_t avail = 0; avail <= n; avail++) {
      /* Heap copy of exactly avail bytes so ASan catches any over-read. */
      uint8_t *buf = malloc(avail ? avail : 1);
      assert_non_null(buf);
      memset(buf, 0xab, avail ? avail : 1);
      udpc_reader r;
      udpc_reader_init(&r, buf, avail);
      uint8_t v8;
      uint16_t v16;
      uint32_t v32;
      uint64_t v64;
      int rc = n == 1   ? udpc_cursor_read_u8(&r, &v8)
               : n == 2 ? udpc_cursor_read_u16(&r, &v16)
               : n == 4 ? udpc_cursor_read_u32(&r, &v32)
                        : udpc_cursor_read_u64(&r, &v64);
      if (avail == n) {
        assert_int_equal(rc, UDPC_OK);
        assert_int_equal(r.pos, n);
        assert_int_equal(udpc_cursor_remaining(&r), 0);
      } else {
        assert_int_equal(rc, UDPC_ERR_TRUNCATED);
        assert_int_equal(r.pos, 0);
        assert_int_equal(udpc_cursor_remaining(&r), avail);
      }
      free(buf);
    }
  }
}

static void test_read_bytes_bounds(void **state) {
  (void)state;
  udpc_reader r;
  const uint8_t *p = NULL;
  uint8_t copy[17];
  udpc_reader_init(&r, data, sizeof data);
  assert_int_equal(udpc_cursor_read_bytes(&r, 0, &p), UDPC_OK);
  assert_ptr_equal(p, data);
  assert_int_equal(udpc_cursor_skip(&r, 3), UDPC_OK);
  assert_int_equal(udpc_cursor_read_bytes(&r, 15, &p), UDPC_ERR_TRUNCATED);
  assert_int_equal(r.pos, 3);
  assert_int_equal(udpc_cursor_read_bytes(&r, 14, &p), UDPC_OK);
  assert_ptr_equal(p, data + 3);
  assert_int_equal(udpc_cursor_remaining(&r), 0);
  assert_int_equal(udpc_cursor_read_bytes(&r, 0, &p), UDPC_OK);
  assert_ptr_equal(p, data + sizeof data);
  assert_int_equal(udpc_cursor_read_bytes(&r, 1, &p), UDPC_ERR_TRUNCATED);
  assert_int_equal(udpc_cursor_skip(&r, 1), UDPC_ERR_TRUNCATED);
  assert_int_equal(udpc_cursor_read_copy(&r, copy, 1), UDPC_ERR_TRUNCATED);

  udpc_reader_init(&r, data, sizeof data);
  assert_int_equal(udpc_cursor_read_copy(&r, copy, sizeof data), UDPC_OK);
  assert_memory_equal(copy, data, sizeof data);
  assert_int_equal(udpc_cursor_read_copy(&r, copy, 0), UDPC_OK);
}

/* A huge n must not wrap pos + n around: the check subtracts instead. */
static void test_read_huge_n_no_overflow(void **state) {
  (void)state;
  udpc_reader r;
  const uint8_t *p = (const uint8_t *)"x";
  udpc_reader_init(&r, data, sizeof data);
  assert_int_equal(udpc_cursor_skip(&r, 5), UDPC_OK);
  const size_t huge[] = {
      SIZE_MAX,      SIZE_MAX - 4,     SIZE_MAX - 5,
      SIZE_MAX - 16, SIZE_MAX / 2 + 1, (size_t)1 << (sizeof(size_t) * 8 - 1)};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    assert_int_equal(udpc_cursor_read_bytes(&r, huge[i], &p),
                     UDPC_ERR_TRUNCATED);
    assert_int_equal(udpc_cursor_skip(&r, huge[i]), UDPC_ERR_TRUNCATED);
    assert_int_equal(r.pos, 5);
  }
  assert_string_equal((const char *)p, "x"); /* untouched on failure */
}

static void test_reader_null_and_empty(void **state) {
  (void)state;
  udpc_reader r;
  uint8_t v;
  const uint8_t *p;
  udpc_reader_init(&r, NULL, 100); /* NULL data: treated as empty */
  assert_int_equal(udpc_cursor_remaining(&r), 0);
  assert_int_equal(udpc_cursor_read_u8(&r, &v), UDPC_ERR_TRUNCATED);
  assert_int_equal(udpc_cursor_read_bytes(&r, 0, &p), UDPC_OK);
  udpc_reader_init(&r, data, 0);
  assert_int_equal(udpc_cursor_read_u8(&r, &v), UDPC_ERR_TRUNCATED);
}

static void test_write_integers_big_endian(void **state) {
  (void)state;
  uint8_t buf[17];
  udpc_writer w;
  udpc_writer_init(&w, buf, sizeof buf);
  assert_int_equal(udpc_writer_space(&w), 17);
  assert_int_equal(udpc_cursor_write_u8(&w, 0x01), UDPC_OK);
  assert_int_equal(udpc_cursor_write_u16(&w, 0x0203), UDPC_OK);
  assert_int_equal(udpc_cursor_write_u32(&w, 0x04050607u), UDPC_OK);
  assert_int_equal(udpc_cursor_write_u64(&w, 0x08090a0b0c0d0e0full), UDPC_OK);
  assert_int_equal(udpc_cursor_write_bytes(&w, "\x10\xff", 2), UDPC_OK);
  assert_int_equal(w.pos, sizeof data);
  assert_memory_equal(buf, data, sizeof data);
  assert_int_equal(udpc_writer_space(&w), 0);
  assert_int_equal(udpc_cursor_write_u8(&w, 0), UDPC_ERR_TOO_BIG);
  assert_int_equal(udpc_cursor_write_bytes(&w, NULL, 0), UDPC_OK);
}

static void test_write_exact_end_and_one_past(void **state) {
  (void)state;
  const size_t widths[] = {1, 2, 4, 8};
  for (size_t k = 0; k < 4; k++) {
    const size_t n = widths[k];
    for (size_t room = 0; room <= n; room++) {
      uint8_t *buf = malloc(room ? room : 1);
      assert_non_null(buf);
      memset(buf, 0xee, room ? room : 1);
      udpc_writer w;
      udpc_writer_init(&w, buf, room);
      int rc = n == 1   ? udpc_cursor_write_u8(&w, 0x11)
               : n == 2 ? udpc_cursor_write_u16(&w, 0x1122)
               : n == 4 ? udpc_cursor_write_u32(&w, 0x11223344u)
                        : udpc_cursor_write_u64(&w, 0x1122334455667788ull);
      if (room == n) {
        assert_int_equal(rc, UDPC_OK);
        assert_int_equal(w.pos, n);
        assert_int_equal(buf[0], 0x11);
      } else {
        assert_int_equal(rc, UDPC_ERR_TOO_BIG);
        assert_int_equal(w.pos, 0);
        if (room) assert_int_equal(buf[0], 0xee); /* nothing written */
      }
      free(buf);
    }
  }
}

static void test_write_huge_n_no_overflow(void **state) {
  (void)state;
  uint8_t buf[8];
  udpc_writer w;
  udpc_writer_init(&w, buf, sizeof buf);
  assert_int_equal(udpc_cursor_write_u16(&w, 7), UDPC_OK);
  assert_int_equal(udpc_cursor_write_bytes(&w, buf, SIZE_MAX),
                   UDPC_ERR_TOO_BIG);
  assert_int_equal(udpc_cursor_write_bytes(&w, buf, SIZE_MAX - 1),
                   UDPC_ERR_TOO_BIG);
  assert_int_equal(udpc_cursor_write_bytes(&w, buf, 7), UDPC_ERR_TOO_BIG);
  assert_int_equal(w.pos, 2);
  assert_int_equal(udpc_cursor_write_bytes(&w, "abcdef", 6), UDPC_OK);
  assert_int_equal(udpc_writer_space(&w), 0);
}

static void test_measuring_writer(void **state) {
  (void)state;
  udpc_writer w;
  udpc_writer_measure(&w);
  assert_null(w.p);
  assert_int_equal(udpc_cursor_write_u64(&w, 1), UDPC_OK);
  assert_int_equal(udpc_cursor_write_bytes(&w, NULL, 1000), UDPC_OK);
  assert_int_equal(w.pos, 1008);
  assert_true(udpc_writer_space(&w) == SIZE_MAX - 1008);
  assert_int_equal(udpc_cursor_write_bytes(&w, NULL, SIZE_MAX),
                   UDPC_ERR_TOO_BIG);
  assert_int_equal(w.pos, 1008);
  /* A writer initialised with NULL storage has no room at all. */
  udpc_writer_init(&w, NULL, 50);
  assert_int_equal(udpc_writer_space(&w), 0);
  assert_int_equal(udpc_cursor_write_u8(&w, 1), UDPC_ERR_TOO_BIG);
}

static void test_round_trip_all_values(void **state) {
  (void)state;
  uint8_t buf[15];
  const uint64_t samples[] = {
      0,      1,       0x7f,        0x80,           0xff,      0x100,
      0xffff, 0x10000, 0xffffffffu, 0x100000000ull, UINT64_MAX};
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    const uint64_t v = samples[i];
    udpc_writer w;
    udpc_writer_init(&w, buf, sizeof buf);
    assert_int_equal(udpc_cursor_write_u8(&w, (uint8_t)v), UDPC_OK);
    assert_int_equal(udpc_cursor_write_u16(&w, (uint16_t)v), UDPC_OK);
    assert_int_equal(udpc_cursor_write_u32(&w, (uint32_t)v), UDPC_OK);
    assert_int_equal(udpc_cursor_write_u64(&w, v), UDPC_OK);
    udpc_reader r;
    uint8_t a;
    uint16_t b;
    uint32_t c;
    uint64_t d;
    udpc_reader_init(&r, buf, w.pos);
    assert_int_equal(udpc_cursor_read_u8(&r, &a), UDPC_OK);
    assert_int_equal(udpc_cursor_read_u16(&r, &b), UDPC_OK);
    assert_int_equal(udpc_cursor_read_u32(&r, &c), UDPC_OK);
    assert_int_equal(udpc_cursor_read_u64(&r, &d), UDPC_OK);
    assert_int_equal(a, (uint8_t)v);
    assert_int_equal(b, (uint16_t)v);
    assert_int_equal(c, (uint32_t)v);
    assert_true(d == v);
    assert_int_equal(udpc_cursor_remaining(&r), 0);
  }
}

/* The guard macros return the first failure and let success fall through. */
static int guarded(int a, int b, int *reached) {
  UDPC_GUARD(a);
  UDPC_ENSURE(b, UDPC_ERR_VALUE);
  *reached = 1;
  return 42;
}

static void test_guard_macros(void **state) {
  (void)state;
  int reached = 0;
  assert_int_equal(guarded(UDPC_ERR_NICK, 1, &reached), UDPC_ERR_NICK);
  assert_int_equal(reached, 0);
  assert_int_equal(guarded(UDPC_OK, 0, &reached), UDPC_ERR_VALUE);
  assert_int_equal(reached, 0);
  assert_int_equal(guarded(5, 1, &reached), 42); /* positive is success */
  assert_int_equal(reached, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_integers_big_endian),
      cmocka_unit_test(test_read_exact_end_and_one_past),
      cmocka_unit_test(test_read_bytes_bounds),
      cmocka_unit_test(test_read_huge_n_no_overflow),
      cmocka_unit_test(test_reader_null_and_empty),
      cmocka_unit_test(test_write_integers_big_endian),
      cmocka_unit_test(test_write_exact_end_and_one_past),
      cmocka_unit_test(test_write_huge_n_no_overflow),
      cmocka_unit_test(test_measuring_writer),
      cmocka_unit_test(test_round_trip_all_values),
      cmocka_unit_test(test_guard_macros),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
