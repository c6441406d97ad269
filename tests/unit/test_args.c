/*
 * test_args.c - udpc_args_parse (src/app/udpc_args.c), the udpchat command
 * line: the rate-limit options (--source-rate, --source-burst,
 * --session-rate, --session-burst) and a few neighbours they must not
 * disturb. The parser has no side effects: every case runs in-process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "udpc_args.h"
#include "udpchat.h"

#define MAX_ARGV 16

static udpc_args g_args; /* large (operator table): not on the stack */
static char g_err[512];

/* Parse a NULL-terminated list of arguments after "udpchat". */
static int parse_v(const char *first, va_list ap) {
  char *argv[MAX_ARGV + 1];
  int argc = 0;
  argv[argc++] = (char *)"udpchat";
  for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
    assert_true(argc < MAX_ARGV);
    argv[argc++] = (char *)a;
  }
  argv[argc] = NULL;
  strcpy(g_err, "untouched");
  return udpc_args_parse(&g_args, argc, argv, g_err, sizeof g_err);
}

static int parse(const char *first, ...) {
  va_list ap;
  va_start(ap, first);
  int rc = parse_v(first, ap);
  va_end(ap);
  return rc;
}

static const char *const limit_opts[] = {"--source-rate", "--source-burst",
                                         "--session-rate", "--session-burst"};

static uint32_t limit_value(size_t which) {
  switch (which) {
    case 0: return g_args.srv.source_rate;
    case 1: return g_args.srv.source_burst;
    case 2: return g_args.srv.session_rate;
    default: return g_args.srv.session_burst;
  }
}

static void test_limits_default_to_zero(void **state) {
  (void)state;
  assert_int_equal(parse("-s", "0", NULL), UDPC_ARGS_SERVER);
  for (size_t i = 0; i < 4; i++) assert_int_equal(limit_value(i), 0);
}

static void test_limits_valid_values(void **state) {
  (void)state;
  static const struct {
    const char *text;
    uint32_t value;
  } ok[] = {
      {"1", 1},
      {"5", 5},
      {"1000", 1000},
      {"4294967294", 4294967294u},
      {"4294967295", UINT32_MAX},
      {"unlimited", UINT32_MAX},
  };
  for (size_t i = 0; i < 4; i++) {
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
      assert_int_equal(parse("-s", "0", limit_opts[i], ok[k].text, NULL),
                       UDPC_ARGS_SERVER);
      assert_int_equal(limit_value(i), ok[k].value);
      for (size_t j = 0; j < 4; j++)
        if (j != i) assert_int_equal(limit_value(j), 0);
    }
  }
}

static void test_limits_equals_form_and_all_four(void **state) {
  (void)state;
  assert_int_equal(parse("--session-rate=5", "-s", "0", "--session-burst=5",
                         "--source-rate", "unlimited", "--source-burst", "7",
                         NULL),
                   UDPC_ARGS_SERVER);
  assert_int_equal(g_args.srv.session_rate, 5);
  assert_int_equal(g_args.srv.session_burst, 5);
  assert_int_equal(g_args.srv.source_rate, UINT32_MAX);
  assert_int_equal(g_args.srv.source_burst, 7);
  assert_int_equal(g_args.srv.port, 0);
}

static void test_limits_last_one_wins(void **state) {
  (void)state;
  assert_int_equal(parse("-s", "0", "--session-rate", "unlimited",
                         "--session-rate", "9", NULL),
                   UDPC_ARGS_SERVER);
  assert_int_equal(g_args.srv.session_rate, 9);
}

static void test_limits_invalid_values(void **state) {
  (void)state;
  static const char *const bad[] = {
      "0",
      "-1",
      "-0",
      "+5",
      "4294967296",
      "99999999999",
      "18446744073709551616",
      "x",
      "5x",
      " 5",
      "5 ",
      "",
      "0x10",
      "1e3",
      "Unlimited",
      "unlimitedx",
      "infinite",
      "1.5",
  };
  for (size_t i = 0; i < 4; i++) {
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
      assert_int_equal(parse("-s", "0", limit_opts[i], bad[k], NULL),
                       UDPC_ARGS_ERROR);
      char want[256];
      snprintf(want, sizeof want,
               "invalid %s '%s': must be 1-4294967295 or unlimited",
               limit_opts[i], bad[k]);
      assert_string_equal(g_err, want);
    }
  }
}

static void test_limits_need_a_value(void **state) {
  (void)state;
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(parse("-s", "0", limit_opts[i], NULL), UDPC_ARGS_ERROR);
    char want[128];
    snprintf(want, sizeof want, "option '%s' needs a value", limit_opts[i]);
    assert_string_equal(g_err, want);
  }
}

static void test_limits_are_server_only(void **state) {
  (void)state;
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(
        parse("-c", "x", "127.0.0.1", "5000", "0", limit_opts[i], "5", NULL),
        UDPC_ARGS_ERROR);
    char want[128];
    snprintf(want, sizeof want, "option '%s' is for the server (-s) only",
             limit_opts[i]);
    assert_string_equal(g_err, want);
  }
}

static void test_other_counts_unchanged(void **state) {
  (void)state;
  assert_int_equal(parse("-s", "0", "--max-clients", "0", NULL),
                   UDPC_ARGS_ERROR);
  assert_string_equal(g_err, "invalid count '0': must be 1-4294967295");
  /* "unlimited" is only for the rate limits. */
  assert_int_equal(parse("-s", "0", "--max-clients", "unlimited", NULL),
                   UDPC_ARGS_ERROR);
  assert_int_equal(
      parse("-s", "0", "--max-clients", "7", "--session-burst", "3", NULL),
      UDPC_ARGS_SERVER);
  assert_int_equal(g_args.srv.max_clients, 7);
  assert_int_equal(g_args.srv.session_burst, 3);
}

static void test_help_wins(void **state) {
  (void)state;
  assert_int_equal(parse("-s", "0", "--session-rate", "0", "--help", NULL),
                   UDPC_ARGS_HELP);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_limits_default_to_zero),
      cmocka_unit_test(test_limits_valid_values),
      cmocka_unit_test(test_limits_equals_form_and_all_four),
      cmocka_unit_test(test_limits_last_one_wins),
      cmocka_unit_test(test_limits_invalid_values),
      cmocka_unit_test(test_limits_need_a_value),
      cmocka_unit_test(test_limits_are_server_only),
      cmocka_unit_test(test_other_counts_unchanged),
      cmocka_unit_test(test_help_wins),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
