/*
 * test_spec_wire.c - PROTOCOL.md wire requirements stated byte by byte,
 * each test named after the R-numbers it asserts (the vectors of
 * tests/vectors/wire.vectors are checked by test_wire.c, R84).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "udpc_thex.h"
#include "udpc_wire.h"
#include "udpchat.h"

#define all_types udpc_thex_all_types
#define N_TYPES UDPC_THEX_N_TYPES

static udpc_nick nk(const char *s) { return udpc_thex_nick(s); }

/* The smallest valid packet of each type, id 0x01020304, token
 * 0x1122334455667788 where the type has one. */
static udpc_packet minimal(int type) {
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = (uint8_t)type;
  p.id = 0x01020304u;
  if (udpc_ptype_has_token(type)) p.token = 0x1122334455667788ULL;
  switch (type) {
    case UDPC_PT_REGISTER: p.u.reg.nick = nk("a"); break;
    case UDPC_PT_COOKIE: p.u.cookie.cookie_len = 1; break;
    case UDPC_PT_TABLE_DELTA:
      p.u.table_delta.new_version = 1;
      p.u.table_delta.count = 1;
      p.u.table_delta.entries[0].nick = nk("a");
      p.u.table_delta.entries[0].addr.family = 4;
      break;
    case UDPC_PT_DEREG_OTHER: p.u.dereg_other.target = nk("a"); break;
    case UDPC_PT_KICKED: p.u.kicked.by = nk("a"); break;
    case UDPC_PT_SAVE:
      p.u.save.to = nk("a");
      p.u.save.text.p = (const uint8_t *)"x";
      p.u.save.text.len = 1;
      break;
    case UDPC_PT_CHAT:
      p.u.chat.from = nk("a");
      p.u.chat.to = nk("b");
      p.u.chat.text.p = (const uint8_t *)"x";
      p.u.chat.text.len = 1;
      break;
    case UDPC_PT_CHAT_ACK: p.u.chat_ack.from = nk("a"); break;
    case UDPC_PT_ERROR: p.u.error.code = UDPC_ERROR_MALFORMED; break;
    default: break;
  }
  return p;
}

/* R6 R5 R1: every packet type is encoded with version byte 1, its type, the
 * id big-endian, the token big-endian right after the header; the bytes
 * decode back as exactly one packet, and two packets back to back in one
 * datagram are refused (UDPC_ERR_TRAILING): one packet per datagram. */
static void test_r1_r5_r6_header_of_every_type(void **state) {
  (void)state;
  for (size_t i = 0; i < N_TYPES; i++) {
    udpc_packet p = minimal(all_types[i]);
    uint8_t buf[2 * UDPC_MAX_PACKET];
    int n = udpc_wire_encode(&p, buf, UDPC_MAX_PACKET);
    if (n <= 0)
      fail_msg("%s: encode gave %d", udpc_ptype_name(all_types[i]), n);
    assert_int_equal(buf[0], 1); /* R6 */
    assert_int_equal(buf[1], all_types[i]);
    const uint8_t id[4] = {0x01, 0x02, 0x03, 0x04}; /* R5 */
    assert_memory_equal(buf + 2, id, 4);
    if (udpc_ptype_has_token(all_types[i])) {
      const uint8_t tok[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
      assert_memory_equal(buf + 6, tok, 8);
    }
    udpc_packet q;
    assert_int_equal(udpc_wire_decode(&q, buf, (size_t)n), UDPC_OK); /* R1 */
    assert_int_equal(q.type, all_types[i]);
    memcpy(buf + n, buf, (size_t)n);
    assert_int_equal(udpc_wire_decode(&q, buf, 2 * (size_t)n),
                     2 * n > UDPC_MAX_PACKET ? UDPC_ERR_TOO_BIG
                                             : UDPC_ERR_TRAILING);
  }
}

/* R5: u16, u32 and u64 body fields are big-endian with no padding: a
 * TABLE_PAGE and a MAIL_PAGE with distinctive values, byte by byte. */
static void test_r5_body_integers_big_endian_no_padding(void **state) {
  (void)state;
  udpc_packet p;
  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_TABLE_PAGE;
  p.id = 7;
  p.token = 1;
  p.u.table_page.version = 0x0102030405060708ULL;
  p.u.table_page.total = 0x0a0b0c0du;
  p.u.table_page.start = 0x0a0b0c0cu;
  p.u.table_page.count = 1;
  udpc_entry *e = &p.u.table_page.entries[0];
  e->nick = nk("ab");
  e->status = UDPC_STATUS_ONLINE;
  e->addr.family = 4;
  e->addr.ip[0] = 192;
  e->addr.ip[1] = 0;
  e->addr.ip[2] = 2;
  e->addr.ip[3] = 9;
  e->addr.port = 0xbeef;
  uint8_t buf[UDPC_MAX_PACKET];
  int n = udpc_wire_encode(&p, buf, sizeof buf);
  const uint8_t want[] = {
      0x01, 0x11, 0,    0,    0,    7,    0,    0,    0,
      0,    0,    0,    0,    1,                            /* header, token */
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,       /* version u64 */
      0x0a, 0x0b, 0x0c, 0x0d, 0x0a, 0x0b, 0x0c, 0x0c, 0x01, /* total start n */
      0x02, 'a',  'b',  0x01, 0x04, 192,  0,    2,    9,    /* entry */
      0xbe, 0xef};                                          /* port u16 */
  assert_int_equal(n, (int)sizeof want);
  assert_memory_equal(buf, want, sizeof want);

  memset(&p, 0, sizeof p);
  p.type = UDPC_PT_SAVE;
  p.id = 0xfffffffeu;
  p.token = 0x8000000000000001ULL;
  p.u.save.to = nk("c");
  p.u.save.msg_id = 0xdeadbeefu;
  p.u.save.text.p = (const uint8_t *)"hi";
  p.u.save.text.len = 2;
  n = udpc_wire_encode(&p, buf, sizeof buf);
  const uint8_t want2[] = {0x01, 0x40, 0xff, 0xff, 0xff, 0xfe, 0x80, 0,
                           0,    0,    0,    0,    0,    1,    0x01, 'c',
                           0xde, 0xad, 0xbe, 0xef, 0x00, 0x02, 'h',  'i'};
  assert_int_equal(n, (int)sizeof want2);
  assert_memory_equal(buf, want2, sizeof want2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_r1_r5_r6_header_of_every_type),
      cmocka_unit_test(test_r5_body_integers_big_endian_no_padding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
