/*
 * test_event.c - udpc_event_format: the exact display lines of design.md P11
 * and P5-P8, the `list` layout, RFC 5952 IPv6 text and UTC timestamps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "udpchat.h"

static udpc_nick mknick(const char *s) {
  udpc_nick n;
  memset(&n, 0, sizeof n);
  n.len = (uint8_t)strlen(s);
  memcpy(n.s, s, n.len);
  return n;
}

static udpc_event ev_of(int type, int status, const char *nick) {
  udpc_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = type;
  ev.status = status;
  if (nick != NULL) ev.nick = mknick(nick);
  return ev;
}

static void expect_line(const udpc_event *ev, const char *want) {
  char buf[2048];
  int n = udpc_event_format(ev, buf, sizeof buf);
  assert_int_equal(n, (int)strlen(want));
  assert_string_equal(buf, want);
}

static void expect(int type, int status, const char *nick, const char *want) {
  udpc_event ev = ev_of(type, status, nick);
  expect_line(&ev, want);
}

/* Rule P11: the assignment's fixed status strings. */
/* R86: the fixed lines of P11.2, byte-exact. */
static void test_fixed_strings(void **state) {
  (void)state;
  expect(UDPC_EV_REGISTERED, 0, NULL, "[Welcome, You are registered.]");
  expect(UDPC_EV_TABLE_UPDATED, 0, NULL, "[Client table updated.]");
  expect(UDPC_EV_DELIVERED, 0, "bob", "[Message received by bob.]");
  expect(UDPC_EV_NO_ACK, 0, "bob",
         "[No ACK from bob, message sent to server.]");
  expect(UDPC_EV_SAVED, 0, NULL, "[Messages received by the server and saved]");
  expect(UDPC_EV_EXISTS, 0, "bob", "[Client bob exists!!]");
  expect(UDPC_EV_OFFLINE, 0, NULL, "[You are Offline. Bye.]");
  expect(UDPC_EV_SERVER_DOWN, 0, NULL, "[Server not responding]");
  expect(UDPC_EV_EXITING, 0, NULL, "[Exiting]");
  expect(UDPC_EV_HAVE_MAIL, 0, NULL, "[You have messages]");
}

/* Rule P5/P7/P8: the bracketed strings of refusals and results. */
/* R86: the protocol's fixed result lines of P11.2, byte-exact. */
static void test_status_strings(void **state) {
  (void)state;
  expect(UDPC_EV_REG_REFUSED, UDPC_REG_NICK_TAKEN, "alice",
         "[Nick alice is already taken by another user.]");
  expect(UDPC_EV_REG_REFUSED, UDPC_REG_INVALID_NICK, "alice",
         "[Invalid nick alice: use 1-32 of a-z 0-9 _ -]");
  expect(UDPC_EV_REG_REFUSED, UDPC_REG_SERVER_FULL, "alice",
         "[Server is full, try again later.]");
  expect(UDPC_EV_REG_REFUSED, UDPC_REG_STORE_ERROR, "alice",
         "[Server storage error, try again later.]");
  expect(UDPC_EV_SAVE_REFUSED, UDPC_SAVE_UNKNOWN_RECIPIENT, "zed",
         "[Unknown user zed, message not delivered.]");
  expect(UDPC_EV_SAVE_REFUSED, UDPC_SAVE_QUOTA, "bob",
         "[Mailbox of bob is full, message not delivered.]");
  expect(UDPC_EV_SAVE_REFUSED, UDPC_SAVE_STORE_ERROR, "bob",
         "[Server could not store the message for bob, message not "
         "delivered.]");
  expect(UDPC_EV_DEREG_OTHER, UDPC_DEREG_OK, "bob", "[bob is now offline.]");
  expect(UDPC_EV_DEREG_OTHER, UDPC_DEREG_NOT_PERMITTED, "bob",
         "[Permission denied: only operators may deregA.]");
  expect(UDPC_EV_DEREG_OTHER, UDPC_DEREG_UNKNOWN_NICK, "zed",
         "[Unknown user zed.]");
  expect(UDPC_EV_DEREG_OTHER, UDPC_DEREG_STORE_ERROR, "bob",
         "[Server storage error, try again later.]");
  expect(UDPC_EV_KICKED, 0, "root", "[You were deregistered by root.]");
}

/* Rule P11: CHAT `<nick>: <text>` with the text exactly, spaces kept. */
/* R86: `<nick>: <text>` with the text byte for byte. */
static void test_chat_and_notice(void **state) {
  (void)state;
  udpc_event ev = ev_of(UDPC_EV_CHAT, 0, "bob");
  const char *t = "  hi  there ";
  ev.text.p = (const uint8_t *)t;
  ev.text.len = (uint16_t)strlen(t);
  expect_line(&ev, "bob:   hi  there ");
  ev = ev_of(UDPC_EV_NOTICE, 0, NULL);
  ev.text.p = (const uint8_t *)"[Table is empty.]";
  ev.text.len = 17;
  expect_line(&ev, "[Table is empty.]");
}

static void expect_mail_ts(uint64_t ms, const char *want) {
  udpc_event ev = ev_of(UDPC_EV_MAIL, 0, "carol");
  ev.text.p = (const uint8_t *)"hello";
  ev.text.len = 5;
  ev.timestamp_ms = ms;
  expect_line(&ev, want);
}

/* Rule P7: mail `<nick>: <YYYY-MM-DD HH:MM:SS> <text>` in UTC. */
/* R86: `<nick>: <YYYY-MM-DD HH:MM:SS> <text>` in UTC. */
static void test_mail_timestamps(void **state) {
  (void)state;
  expect_mail_ts(0, "carol: 1970-01-01 00:00:00 hello");
  expect_mail_ts(951786123000ULL, "carol: 2000-02-29 01:02:03 hello");
  expect_mail_ts(1795640934123ULL, "carol: 2026-11-25 21:08:54 hello");
  expect_mail_ts(4102444799000ULL, "carol: 2099-12-31 23:59:59 hello");
  expect_mail_ts(253402300799999ULL, "carol: 9999-12-31 23:59:59 hello");
}

static udpc_event row(const char *nick, int width, int family,
                      const uint8_t *ip, uint16_t port, int online) {
  udpc_event ev = ev_of(UDPC_EV_LIST_ROW, 0, NULL);
  ev.width = width;
  if (nick != NULL) ev.entry.nick = mknick(nick);
  ev.entry.status =
      (uint8_t)(online ? UDPC_STATUS_ONLINE : UDPC_STATUS_OFFLINE);
  ev.entry.addr.family = (uint8_t)family;
  if (ip != NULL) memcpy(ev.entry.addr.ip, ip, family == 4 ? 4 : 16);
  ev.entry.addr.port = port;
  return ev;
}

/* Rule P6: list header and rows, aligned columns (nick, ip 15, port 5). */
static void test_list_rows(void **state) {
  (void)state;
  const uint8_t lo[4] = {127, 0, 0, 1};
  const uint8_t ten[4] = {10, 200, 30, 4};
  udpc_event ev = row(NULL, 5, 0, NULL, 0, 0);
  expect_line(&ev, "nick   ip               port   status");
  ev = row("alice", 5, 4, lo, 40001, 1);
  expect_line(&ev, "alice  127.0.0.1        40001  online");
  ev = row("bo", 5, 4, ten, 1024, 0);
  expect_line(&ev, "bo     10.200.30.4      1024   offline");
  ev = row(NULL, 4, 0, NULL, 0, 0);
  expect_line(&ev, "nick  ip               port   status");
}

static void expect_ip6(const char *hex32, const char *want_ip) {
  uint8_t ip[16];
  char want[256];
  for (int i = 0; i < 16; i++) {
    unsigned v = 0;
    for (int k = 0; k < 2; k++) {
      char ch = hex32[2 * i + k];
      v = v * 16u + (unsigned)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
    }
    ip[i] = (uint8_t)v;
  }
  udpc_event ev = row("x", 4, 6, ip, 7, 1);
  size_t n = strlen(want_ip);
  snprintf(want, sizeof want, "x     %s%*s  7      online", want_ip,
           n < 15 ? (int)(15 - n) : 0, "");
  expect_line(&ev, want);
}

/* Rule: IPv6 text per RFC 5952 (no inet_ntop in the core). */
static void test_list_ipv6(void **state) {
  (void)state;
  expect_ip6("00000000000000000000000000000001", "::1");
  expect_ip6("00000000000000000000000000000000", "::");
  expect_ip6("20010db8000000000000000000000001", "2001:db8::1");
  expect_ip6("20010db8000000000001000000000001", "2001:db8::1:0:0:1");
  expect_ip6("20010000000000010000000000000001", "2001:0:0:1::1");
  expect_ip6("20010db8000000010001000100010001", "2001:db8:0:1:1:1:1:1");
  expect_ip6("00010002000300040005000600070008", "1:2:3:4:5:6:7:8");
  expect_ip6("fe800000000000000000000000000000", "fe80::");
  expect_ip6("00000000000000000000ffffc0000201", "::ffff:192.0.2.1");
  expect_ip6("20010db8aaaabbbbccccddddeeeeffff",
             "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff");
}

/* Rule: a buffer too small is UDPC_ERR_TOO_BIG (never a cut line). */
static void test_too_small(void **state) {
  (void)state;
  char buf[8];
  udpc_event ev = ev_of(UDPC_EV_REGISTERED, 0, NULL);
  assert_int_equal(udpc_event_format(&ev, buf, sizeof buf), UDPC_ERR_TOO_BIG);
  assert_string_equal(buf, "");
  assert_int_equal(udpc_event_format(NULL, buf, sizeof buf), UDPC_ERR_ARG);
  ev.type = 999;
  assert_int_equal(udpc_event_format(&ev, buf, sizeof buf), UDPC_ERR_ARG);
  /* a huge list width fails fast instead of padding for ever */
  ev = ev_of(UDPC_EV_LIST_ROW, 0, NULL);
  ev.width = 2000000000;
  assert_int_equal(udpc_event_format(&ev, buf, sizeof buf), UDPC_ERR_TOO_BIG);
  /* exactly fitting: 9 chars + NUL */
  char fit[10];
  ev = ev_of(UDPC_EV_EXITING, 0, NULL);
  assert_int_equal(udpc_event_format(&ev, fit, sizeof fit), 9);
  assert_string_equal(fit, "[Exiting]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixed_strings),
      cmocka_unit_test(test_status_strings),
      cmocka_unit_test(test_chat_and_notice),
      cmocka_unit_test(test_mail_timestamps),
      cmocka_unit_test(test_list_rows),
      cmocka_unit_test(test_list_ipv6),
      cmocka_unit_test(test_too_small),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
