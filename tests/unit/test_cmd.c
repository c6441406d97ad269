/*
 * test_cmd.c - udpc_cmd_parse: the typed-command grammar (udpc_cmd.c header
 * comment) and its exact bracketed error messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "udpchat.h"

typedef struct {
  int rc;
  udpc_cmd cmd;
  char err[512];
} parsed;

static parsed parse(const char *line) {
  parsed p;
  memset(&p, 0, sizeof p);
  strcpy(p.err, "untouched");
  p.rc = udpc_cmd_parse(&p.cmd, line, strlen(line), p.err, sizeof p.err);
  return p;
}

static void assert_arg(const parsed *p, const char *want) {
  assert_int_equal(p->cmd.arg_len, strlen(want));
  assert_memory_equal(p->cmd.arg, want, strlen(want));
}

/* Rule: send <nick> <message>; the nick is case-folded. */
/* R16: the typed nick is case-folded before it is used. */
static void test_send_basic(void **state) {
  (void)state;
  parsed p = parse("send Bob hello world");
  assert_int_equal(p.rc, UDPC_OK);
  assert_string_equal(p.err, "");
  assert_int_equal(p.cmd.type, UDPC_CMD_SEND);
  assert_string_equal(p.cmd.nick.s, "bob");
  assert_int_equal(p.cmd.nick.len, 3);
  assert_arg(&p, "hello world");
}

/* Rule: the message is every byte after the single space after the nick:
 * leading, trailing and repeated spaces are kept exactly. */
static void test_send_keeps_every_space(void **state) {
  (void)state;
  parsed p = parse("send bob   two  spaces  ");
  assert_int_equal(p.rc, UDPC_OK);
  assert_arg(&p, "  two  spaces  ");
  p = parse("send bob  ");
  assert_int_equal(p.rc, UDPC_OK);
  assert_arg(&p, " ");
}

/* Rule: whitespace around the command word is ignored. */
static void test_leading_whitespace(void **state) {
  (void)state;
  parsed p = parse(" \t send   bob x");
  assert_int_equal(p.rc, UDPC_OK);
  assert_string_equal(p.cmd.nick.s, "bob");
  assert_arg(&p, "x");
  p = parse("  list \t ");
  assert_int_equal(p.rc, UDPC_OK);
  assert_int_equal(p.cmd.type, UDPC_CMD_LIST);
}

/* Rule: send without nick or message names its usage. */
static void test_send_usage(void **state) {
  (void)state;
  const char *lines[] = {"send", "send ", "send bob", "send bob "};
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    parsed p = parse(lines[i]);
    assert_int_equal(p.rc, UDPC_ERR_ARG);
    assert_string_equal(p.err, "[Usage: send <nick> <message>]");
  }
}

/* Rule: an empty or blank line is UDPC_ERR_ARG with an empty message. */
static void test_empty_line(void **state) {
  (void)state;
  parsed p = parse("");
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  assert_string_equal(p.err, "");
  p = parse(" \t  ");
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  assert_string_equal(p.err, "");
  assert_int_equal(udpc_cmd_parse(&p.cmd, NULL, 0, p.err, sizeof p.err),
                   UDPC_ERR_ARG);
  assert_string_equal(p.err, "");
}

/* Rule: unknown words list the commands. */
static void test_unknown_command(void **state) {
  (void)state;
  parsed p = parse("foo bar");
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  assert_string_equal(p.err, "[Unknown command 'foo'. Commands: send, list, "
                             "reg, dereg, deregA, exit, help]");
}

/* Rule: command words are case-sensitive, exactly as listed. */
static void test_command_case_sensitive(void **state) {
  (void)state;
  parsed p = parse("DEREG bob");
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  assert_string_equal(p.err, "[Unknown command 'DEREG'. Commands: send, "
                             "list, reg, dereg, deregA, exit, help]");
  p = parse("derega bob");
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  p = parse("List");
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  p = parse("deregA Bob");
  assert_int_equal(p.rc, UDPC_OK);
  assert_int_equal(p.cmd.type, UDPC_CMD_DEREGA);
  assert_string_equal(p.cmd.nick.s, "bob");
}

/* Rule: user text echoed in an error is cut visibly ("..."), controls '?'. */
static void test_unknown_command_echo_bounded(void **state) {
  (void)state;
  char line[200];
  memset(line, 'x', 100);
  line[100] = '\0';
  line[3] = '\x1b';
  parsed p = parse(line);
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  assert_string_equal(p.err,
                      "[Unknown command "
                      "'xxx?xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'. "
                      "Commands: send, list, reg, dereg, deregA, exit, help]");
}

/* Rule: single-nick commands take the trimmed remainder as the nick. */
/* R16: reg/dereg/deregA fold the typed nick (A-Z to a-z only). */
static void test_nick_commands(void **state) {
  (void)state;
  parsed p = parse("reg Alice ");
  assert_int_equal(p.rc, UDPC_OK);
  assert_int_equal(p.cmd.type, UDPC_CMD_REG);
  assert_string_equal(p.cmd.nick.s, "alice");
  p = parse("dereg alice");
  assert_int_equal(p.rc, UDPC_OK);
  assert_int_equal(p.cmd.type, UDPC_CMD_DEREG);
  p = parse("reg A b");
  assert_int_equal(p.rc, UDPC_ERR_NICK);
  assert_string_equal(p.err, "[Invalid nick 'A b': use 1-32 of a-z 0-9 _ -]");
  p = parse("reg");
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  assert_string_equal(p.err, "[Usage: reg <nick>]");
  p = parse("dereg   ");
  assert_string_equal(p.err, "[Usage: dereg <nick>]");
  p = parse("deregA");
  assert_string_equal(p.err, "[Usage: deregA <nick>]");
  p = parse("send ../x hi");
  assert_int_equal(p.rc, UDPC_ERR_NICK);
  assert_string_equal(p.err, "[Invalid nick '../x': use 1-32 of a-z 0-9 _ -]");
  p = parse("reg abcdefghijklmnopqrstuvwxyz0123456"); /* 33 bytes */
  assert_int_equal(p.rc, UDPC_ERR_NICK);
  p = parse("reg abcdefghijklmnopqrstuvwxyz012345"); /* 32 bytes */
  assert_int_equal(p.rc, UDPC_OK);
  assert_int_equal(p.cmd.nick.len, 32);
}

/* Rule: never truncate silently: 1101+ bytes are refused with the count. */
static void test_message_too_long(void **state) {
  (void)state;
  static char line[2000];
  memcpy(line, "send bob ", 9);
  memset(line + 9, 'a', 1500);
  line[9 + 1500] = '\0';
  parsed p = parse(line);
  assert_int_equal(p.rc, UDPC_ERR_LENGTH);
  assert_string_equal(p.err, "[Message too long: 1500 bytes, the limit is 1100 "
                             "bytes.]");
  line[9 + UDPC_TEXT_MAX] = '\0';
  p = parse(line);
  assert_int_equal(p.rc, UDPC_OK);
  assert_int_equal(p.cmd.arg_len, UDPC_TEXT_MAX);
}

/* Rule: message text is UTF-8 without control characters (P2). */
static void test_message_text_checks(void **state) {
  (void)state;
  parsed p = parse("send bob caf\xc3\xa9 \xe2\x82\xac");
  assert_int_equal(p.rc, UDPC_OK);
  p = parse("send bob bad \xff byte");
  assert_int_equal(p.rc, UDPC_ERR_UTF8);
  assert_string_equal(p.err, "[Message is not valid UTF-8 text.]");
  p = parse("send bob tab\there");
  assert_int_equal(p.rc, UDPC_ERR_CONTROL);
  assert_string_equal(p.err, "[Message holds a control character.]");
  p = parse("send bob \xc2\x85");
  assert_int_equal(p.rc, UDPC_ERR_CONTROL);
}

/* Rule: list/exit take no argument. */
static void test_no_arg_commands(void **state) {
  (void)state;
  parsed p = parse("exit");
  assert_int_equal(p.rc, UDPC_OK);
  assert_int_equal(p.cmd.type, UDPC_CMD_EXIT);
  p = parse("list all");
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  assert_string_equal(p.err, "[Usage: list]");
  p = parse("exit now");
  assert_string_equal(p.err, "[Usage: exit]");
}

/* Rule: help [command]; the topic must be a command word. */
static void test_help(void **state) {
  (void)state;
  parsed p = parse("help");
  assert_int_equal(p.rc, UDPC_OK);
  assert_int_equal(p.cmd.type, UDPC_CMD_HELP);
  assert_int_equal(p.cmd.arg_len, 0);
  p = parse("help deregA ");
  assert_int_equal(p.rc, UDPC_OK);
  assert_arg(&p, "deregA");
  p = parse("help foo");
  assert_int_equal(p.rc, UDPC_ERR_ARG);
  assert_string_equal(p.err, "[Unknown command 'foo'. Commands: send, list, "
                             "reg, dereg, deregA, exit, help]");
  p = parse("help send list");
  assert_string_equal(p.err, "[Usage: help [command]]");
}

/* Rule: err is optional and always bounded by err_cap. */
static void test_err_cap(void **state) {
  (void)state;
  udpc_cmd cmd;
  char small[8];
  assert_int_equal(udpc_cmd_parse(&cmd, "foo", 3, NULL, 0), UDPC_ERR_ARG);
  assert_int_equal(udpc_cmd_parse(&cmd, "foo", 3, small, sizeof small),
                   UDPC_ERR_ARG);
  assert_string_equal(small, "[Unknow");
  assert_int_equal(udpc_cmd_parse(NULL, "list", 4, NULL, 0), UDPC_ERR_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_send_basic),
      cmocka_unit_test(test_send_keeps_every_space),
      cmocka_unit_test(test_leading_whitespace),
      cmocka_unit_test(test_send_usage),
      cmocka_unit_test(test_empty_line),
      cmocka_unit_test(test_unknown_command),
      cmocka_unit_test(test_command_case_sensitive),
      cmocka_unit_test(test_unknown_command_echo_bounded),
      cmocka_unit_test(test_nick_commands),
      cmocka_unit_test(test_message_too_long),
      cmocka_unit_test(test_message_text_checks),
      cmocka_unit_test(test_no_arg_commands),
      cmocka_unit_test(test_help),
      cmocka_unit_test(test_err_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
