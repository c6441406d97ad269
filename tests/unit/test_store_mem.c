/* test_store_mem.c - the in-memory store backend (udpc_store.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "udpc_store.h"
#include "udpc_thex.h"
#include "udpchat.h"

static udpc_nick nk(const char *s) { return udpc_thex_nick(s); }

static void append(udpc_store *st, const char *to, const char *from,
                   uint32_t id, const char *text, uint64_t *seq) {
  udpc_nick t = nk(to), f = nk(from);
  assert_int_equal(udpc_store_mail_append(st, &t, &f, id, 1000 + id,
                                          (const uint8_t *)text, strlen(text),
                                          seq),
                   UDPC_OK);
}

static void test_store_user_put_get_replace_and_foreach(void **state) {
  (void)state;
  udpc_store *st = udpc_store_mem_new();
  assert_non_null(st);
  udpc_store_user u, out;
  memset(&u, 0, sizeof u);
  udpc_nick n = nk("alice");
  assert_int_equal(udpc_store_user_get(st, &n, &out), UDPC_ERR_NOT_FOUND);
  for (int i = 0; i < 300; i++) { /* forces table growth */
    char name[16] = "u";
    name[1] = (char)('a' + i % 26);
    name[2] = (char)('a' + i / 26);
    u.nick = nk(name);
    u.cred_hash[0] = (uint8_t)i;
    assert_int_equal(udpc_store_user_put(st, &u), UDPC_OK);
  }
  u.nick = n;
  u.status = UDPC_STATUS_ONLINE;
  u.cred_hash[0] = 7;
  assert_int_equal(udpc_store_user_put(st, &u), UDPC_OK);
  u.cred_hash[0] = 9; /* replace */
  assert_int_equal(udpc_store_user_put(st, &u), UDPC_OK);
  assert_int_equal(udpc_store_user_get(st, &n, &out), UDPC_OK);
  assert_int_equal(out.cred_hash[0], 9);
  assert_string_equal(out.nick.s, "alice");
  udpc_store_free(st);
}

static int count_cb(void *ctx, const udpc_store_user *u) {
  (void)u;
  (*(int *)ctx)++;
  return 0;
}

static void test_store_foreach_visits_users_not_mail_only_boxes(void **state) {
  (void)state;
  udpc_store *st = udpc_store_mem_new();
  udpc_store_user u;
  memset(&u, 0, sizeof u);
  u.nick = nk("a");
  assert_int_equal(udpc_store_user_put(st, &u), UDPC_OK);
  u.nick = nk("b");
  assert_int_equal(udpc_store_user_put(st, &u), UDPC_OK);
  append(st, "ghost", "a", 1, "hi", NULL);
  int n = 0;
  assert_int_equal(udpc_store_user_foreach(st, count_cb, &n), UDPC_OK);
  assert_int_equal(n, 2);
  udpc_store_free(st);
}

static void test_store_mail_fifo_seq_page_find_delete(void **state) {
  (void)state;
  udpc_store *st = udpc_store_mem_new();
  uint64_t seq = 0;
  for (uint32_t i = 1; i <= 40; i++) { /* forces ring growth */
    append(st, "bob", i % 2 ? "x" : "y", i, "text", &seq);
    assert_int_equal(seq, i);
  }
  udpc_nick bob = nk("bob"), x = nk("x"), y = nk("y");
  uint32_t c;
  uint64_t total;
  assert_int_equal(udpc_store_mail_count(st, &bob, &c), UDPC_OK);
  assert_int_equal(c, 40);
  assert_int_equal(udpc_store_mail_total(st, &total), UDPC_OK);
  assert_int_equal(total, 40);
  assert_int_equal(udpc_store_mail_find(st, &bob, &x, 3, NULL, 0, &seq),
                   UDPC_OK);
  assert_int_equal(seq, 3);
  assert_int_equal(
      udpc_store_mail_find(st, &bob, &x, 3, (const uint8_t *)"text", 4, NULL),
      UDPC_OK);
  assert_int_equal(
      udpc_store_mail_find(st, &bob, &x, 3, (const uint8_t *)"texT", 4, NULL),
      UDPC_ERR_NOT_FOUND);
  assert_int_equal(
      udpc_store_mail_find(st, &bob, &x, 3, (const uint8_t *)"tex", 3, NULL),
      UDPC_ERR_NOT_FOUND);
  assert_int_equal(udpc_store_mail_find(st, &bob, &y, 3, NULL, 0, NULL),
                   UDPC_ERR_NOT_FOUND);
  udpc_mail m[16];
  size_t n;
  assert_int_equal(udpc_store_mail_page(st, &bob, 0, m, 16, &n), UDPC_OK);
  assert_int_equal(n, 16);
  assert_int_equal(m[0].seq, 1);
  assert_int_equal(m[15].seq, 16);
  assert_int_equal(m[0].timestamp_ms, 1001);
  assert_memory_equal(m[0].text.p, "text", 4);
  assert_string_equal(m[1].from.s, "y");
  uint32_t d;
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 10, &d), UDPC_OK);
  assert_int_equal(d, 10);
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, 10, &d), UDPC_OK);
  assert_int_equal(d, 0);
  assert_int_equal(udpc_store_mail_page(st, &bob, 0, m, 16, &n), UDPC_OK);
  assert_int_equal(m[0].seq, 11);
  assert_int_equal(udpc_store_mail_page(st, &bob, 35, m, 16, &n), UDPC_OK);
  assert_int_equal(n, 5);
  assert_int_equal(udpc_store_mail_find(st, &bob, &x, 3, NULL, 0, NULL),
                   UDPC_ERR_NOT_FOUND);
  /* Interleave appends and deletes across the ring wrap. */
  for (uint32_t i = 41; i <= 100; i++) {
    append(st, "bob", "x", i, "t", &seq);
    assert_int_equal(seq, i);
    assert_int_equal(udpc_store_mail_delete_upto(st, &bob, i - 20, NULL),
                     UDPC_OK);
  }
  assert_int_equal(udpc_store_mail_count(st, &bob, &c), UDPC_OK);
  assert_int_equal(c, 20);
  assert_int_equal(udpc_store_mail_delete_upto(st, &bob, UINT64_MAX, &d),
                   UDPC_OK);
  assert_int_equal(d, 20);
  /* Seq keeps increasing after the mailbox ran empty. */
  append(st, "bob", "x", 500, "t", &seq);
  assert_int_equal(seq, 101);
  assert_int_equal(udpc_store_mail_total(st, &total), UDPC_OK);
  assert_int_equal(total, 1);
  udpc_nick nobody = nk("nobody");
  assert_int_equal(udpc_store_mail_count(st, &nobody, &c), UDPC_OK);
  assert_int_equal(c, 0);
  assert_int_equal(udpc_store_mail_page(st, &nobody, 0, m, 16, &n), UDPC_OK);
  assert_int_equal(n, 0);
  udpc_store_free(st);
}

static void test_store_commit_failure_hook(void **state) {
  (void)state;
  udpc_store *st = udpc_store_mem_new();
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  udpc_store_mem_fail_commits(st, 2);
  assert_int_equal(udpc_store_commit(st), UDPC_ERR_STORE);
  assert_int_equal(udpc_store_commit(st), UDPC_ERR_STORE);
  assert_int_equal(udpc_store_commit(st), UDPC_OK);
  assert_int_equal(udpc_store_mem_commit_count(st), 2);
  udpc_store_free(st);
  udpc_store_free(NULL);
}

static void test_store_rejects_bad_arguments(void **state) {
  (void)state;
  udpc_store *st = udpc_store_mem_new();
  udpc_nick empty;
  memset(&empty, 0, sizeof empty);
  udpc_nick a = nk("a");
  assert_int_equal(udpc_store_mail_append(st, &empty, &a, 1, 0,
                                          (const uint8_t *)"x", 1, NULL),
                   UDPC_ERR_ARG);
  assert_int_equal(
      udpc_store_mail_append(st, &a, &a, 1, 0, (const uint8_t *)"x", 0, NULL),
      UDPC_ERR_ARG);
  udpc_store_user u;
  memset(&u, 0, sizeof u);
  assert_int_equal(udpc_store_user_put(st, &u), UDPC_ERR_ARG);
  udpc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_user_put_get_replace_and_foreach),
      cmocka_unit_test(test_store_foreach_visits_users_not_mail_only_boxes),
      cmocka_unit_test(test_store_mail_fifo_seq_page_find_delete),
      cmocka_unit_test(test_store_commit_failure_hook),
      cmocka_unit_test(test_store_rejects_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
