/*
 * fuzz_wire.c - the packet codec (PROTOCOL.md P2-P3, R20, R21).
 *
 * Every input is used twice:
 *  1. as a datagram: udpc_wire_decode must not misbehave (R20); what decodes
 *     must re-encode to exactly the same bytes, decode again to the same
 *     udpc_wire_format dump, and agree with udpc_wire_decode_header;
 *  2. as a recipe for a udpc_packet struct (type, fields, lengths, counts,
 *     some out of range on purpose): what udpc_wire_encode accepts must
 *     decode back to the same dump and bytes, and what it refuses must be
 *     refused by the decoder with the same error code (R21, compared on the
 *     unvalidated serialization udpc_wire_encode_raw).
 * Any violation calls abort().
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "udpc_wire.h"
#include "udpchat.h"

#define DUMP_CAP 65536
#define RAW_CAP 8192

static const uint8_t k_types[] = {
    UDPC_PT_REGISTER,    UDPC_PT_COOKIE,        UDPC_PT_REGISTER_RESULT,
    UDPC_PT_TABLE_REQ,   UDPC_PT_TABLE_PAGE,    UDPC_PT_TABLE_DELTA,
    UDPC_PT_HEARTBEAT,   UDPC_PT_HEARTBEAT_ACK, UDPC_PT_DEREG,
    UDPC_PT_DEREG_OTHER, UDPC_PT_DEREG_RESULT,  UDPC_PT_KICKED,
    UDPC_PT_SAVE,        UDPC_PT_SAVE_RESULT,   UDPC_PT_MAIL_REQ,
    UDPC_PT_MAIL_PAGE,   UDPC_PT_PROBE,         UDPC_PT_PROBE_ACK,
    UDPC_PT_CHAT,        UDPC_PT_CHAT_ACK,      UDPC_PT_ERROR};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

/* Mostly-valid field values with occasional out-of-range ones. */
static void build_nick(fz_rd *r, udpc_nick *n) {
  if (fz_u8(r) < 0xE0u)
    fz_pick_nick(r, n);
  else
    fz_raw_nick(r, n);
}

static uint8_t build_count(fz_rd *r, uint8_t max) {
  uint8_t b = fz_u8(r);
  /* max+1 now and then: the encoder must refuse it (raw refuses with ARG) */
  return (uint8_t)(b % (max + 2u));
}

static void build_addr(fz_rd *r, udpc_addr *a) {
  uint8_t f = fz_u8(r);
  memset(a, 0, sizeof *a);
  a->family = (f & 0x80u) ? f : ((f & 1u) ? 6 : 4);
  fz_bytes(r, a->ip, a->family == 6 ? 16u : 4u);
  a->port = fz_u16(r);
}

static void build_entry(fz_rd *r, udpc_entry *e) {
  build_nick(r, &e->nick);
  uint8_t st = fz_u8(r);
  e->status = (st & 0x80u) ? st : (uint8_t)(st % 3u);
  build_addr(r, &e->addr);
}

static uint8_t build_status(fz_rd *r, uint8_t max) {
  uint8_t b = fz_u8(r);
  return (uint8_t)((b & 0x80u) ? b : b % (max + 1u));
}

static uint16_t build_text(fz_rd *r, const uint8_t **p) {
  /* text borrowed from the input itself (the struct only points at it) */
  uint16_t v = fz_u16(r);
  size_t len = (v & 0x8000u) ? v & 0x7FFFu : v % 200u;
  *p = fz_take(r, &len);
  return (uint16_t)len;
}

static void build_packet(fz_rd *r, udpc_packet *p) {
  memset(p, 0, sizeof *p);
  p->type = k_types[fz_u8(r) % N_TYPES];
  p->id = fz_u32(r);
  if (udpc_ptype_has_token(p->type)) p->token = fz_u64(r);
  switch (p->type) {
    case UDPC_PT_REGISTER:
      p->u.reg.cookie_len = (uint8_t)(fz_u8(r) % (UDPC_COOKIE_MAX + 1));
      fz_bytes(r, p->u.reg.cookie, p->u.reg.cookie_len);
      build_nick(r, &p->u.reg.nick);
      fz_bytes(r, p->u.reg.credential, UDPC_CRED_LEN);
      break;
    case UDPC_PT_COOKIE:
      p->u.cookie.cookie_len = (uint8_t)(fz_u8(r) % (UDPC_COOKIE_MAX + 1));
      fz_bytes(r, p->u.cookie.cookie, p->u.cookie.cookie_len);
      break;
    case UDPC_PT_REGISTER_RESULT:
      p->u.reg_result.status = build_status(r, UDPC_REG_STATUS_MAX);
      p->u.reg_result.token = fz_u64(r);
      p->u.reg_result.table_version = fz_u64(r);
      p->u.reg_result.mail_count = fz_u32(r);
      break;
    case UDPC_PT_TABLE_REQ: p->u.table_req.start = fz_u32(r); break;
    case UDPC_PT_TABLE_PAGE:
      p->u.table_page.version = fz_u64(r);
      p->u.table_page.total = fz_u32(r);
      p->u.table_page.start = fz_u32(r);
      p->u.table_page.count = build_count(r, UDPC_TABLE_PAGE_MAX);
      for (size_t k = 0; k < p->u.table_page.count && k < UDPC_TABLE_PAGE_MAX;
           k++)
        build_entry(r, &p->u.table_page.entries[k]);
      break;
    case UDPC_PT_TABLE_DELTA:
      p->u.table_delta.base_version = fz_u64(r);
      p->u.table_delta.new_version = fz_u64(r);
      p->u.table_delta.count = build_count(r, UDPC_TABLE_PAGE_MAX);
      for (size_t k = 0; k < p->u.table_delta.count && k < UDPC_TABLE_PAGE_MAX;
           k++)
        build_entry(r, &p->u.table_delta.entries[k]);
      break;
    case UDPC_PT_HEARTBEAT_ACK:
      p->u.heartbeat_ack.table_version = fz_u64(r);
      break;
    case UDPC_PT_DEREG_OTHER: build_nick(r, &p->u.dereg_other.target); break;
    case UDPC_PT_DEREG_RESULT:
      p->u.dereg_result.status = build_status(r, UDPC_DEREG_STATUS_MAX);
      break;
    case UDPC_PT_KICKED: build_nick(r, &p->u.kicked.by); break;
    case UDPC_PT_SAVE:
      build_nick(r, &p->u.save.to);
      p->u.save.msg_id = fz_u32(r);
      p->u.save.text.len = build_text(r, &p->u.save.text.p);
      break;
    case UDPC_PT_SAVE_RESULT:
      p->u.save_result.status = build_status(r, UDPC_SAVE_STATUS_MAX);
      if (p->u.save_result.status == UDPC_SAVE_RECIPIENT_ONLINE)
        build_entry(r, &p->u.save_result.entry);
      break;
    case UDPC_PT_MAIL_REQ: p->u.mail_req.ack_upto = fz_u64(r); break;
    case UDPC_PT_MAIL_PAGE:
      p->u.mail_page.remaining = fz_u32(r);
      p->u.mail_page.count = build_count(r, UDPC_MAIL_PAGE_MAX);
      for (size_t k = 0; k < p->u.mail_page.count && k < UDPC_MAIL_PAGE_MAX;
           k++) {
        udpc_mail *m = &p->u.mail_page.mail[k];
        m->seq = fz_u64(r);
        m->msg_id = fz_u32(r);
        m->timestamp_ms = fz_u64(r);
        build_nick(r, &m->from);
        m->text.len = build_text(r, &m->text.p);
      }
      break;
    case UDPC_PT_CHAT:
      build_nick(r, &p->u.chat.from);
      build_nick(r, &p->u.chat.to);
      p->u.chat.text.len = build_text(r, &p->u.chat.text.p);
      break;
    case UDPC_PT_CHAT_ACK: build_nick(r, &p->u.chat_ack.from); break;
    case UDPC_PT_ERROR:
      p->u.error.code = build_status(r, UDPC_ERROR_CODE_MAX);
      break;
    default: break;
  }
}

static int valid_err(int rc) {
  return rc <= UDPC_ERR_TRUNCATED && rc >= UDPC_ERR_TOO_BIG;
}

/* Decode a datagram that must decode, format it into dump. */
static size_t must_decode_dump(udpc_packet *p, const uint8_t *d, size_t n,
                               char *dump) {
  int rc = udpc_wire_decode(p, d, n);
  FZ_CHECK(rc == UDPC_OK);
  int dl = udpc_wire_format(p, dump, DUMP_CAP);
  FZ_CHECK(dl > 0 && (size_t)dl < DUMP_CAP);
  FZ_CHECK(strlen(dump) == (size_t)dl);
  return (size_t)dl;
}

/* 1. the input as a datagram */
static void check_datagram(const uint8_t *data, size_t size, char *d1,
                           char *d2) {
  udpc_packet p, q;
  uint8_t buf[UDPC_MAX_PACKET];
  int rc = udpc_wire_decode(&p, data, size);
  uint8_t ht = 0;
  uint32_t hid = 0;
  int hrc = udpc_wire_decode_header(&ht, &hid, data, size);
  FZ_CHECK(hrc == UDPC_OK || hrc == UDPC_ERR_TRUNCATED ||
           hrc == UDPC_ERR_VERSION || hrc == UDPC_ERR_TYPE);
  if (rc != UDPC_OK) {
    FZ_CHECK(valid_err(rc));
    if (size > UDPC_MAX_PACKET) FZ_CHECK(rc == UDPC_ERR_TOO_BIG);
    if (size <= UDPC_MAX_PACKET && hrc != UDPC_OK) FZ_CHECK(rc == hrc);
    return;
  }
  FZ_CHECK(size >= UDPC_HEADER_LEN && size <= UDPC_MAX_PACKET);
  FZ_CHECK(hrc == UDPC_OK && ht == p.type && hid == p.id);
  int dl = udpc_wire_format(&p, d1, DUMP_CAP);
  FZ_CHECK(dl > 0 && (size_t)dl < DUMP_CAP && strlen(d1) == (size_t)dl);
  /* a too-small buffer is refused, never overrun */
  int small = udpc_wire_format(&p, d2, (size_t)dl);
  FZ_CHECK(small == UDPC_ERR_TOO_BIG);
  /* re-encode: the same bytes */
  int n = udpc_wire_encode(&p, buf, sizeof buf);
  FZ_CHECK(n > 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
  FZ_CHECK(udpc_wire_encode(&p, buf, size - 1) == UDPC_ERR_TOO_BIG);
  n = udpc_wire_encode_raw(&p, buf, sizeof buf);
  FZ_CHECK(n > 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
  /* and that decodes to the same dump */
  must_decode_dump(&q, buf, (size_t)n, d2);
  FZ_CHECK(strcmp(d1, d2) == 0);
}

/* 2. the input as a packet recipe */
static void check_struct(const uint8_t *data, size_t size, char *d1, char *d2) {
  fz_rd r = fz_rd_make(data, size);
  udpc_packet p, q;
  uint8_t *raw = malloc(RAW_CAP);
  uint8_t enc[UDPC_MAX_PACKET];
  FZ_CHECK(raw != NULL);
  build_packet(&r, &p);
  int n = udpc_wire_encode(&p, enc, sizeof enc);
  int rn = udpc_wire_encode_raw(&p, raw, RAW_CAP);
  FZ_CHECK(rn > 0 || rn == UDPC_ERR_ARG);
  if (n > 0) {
    /* encoded: raw gives the same bytes; decodes back to the same fields */
    FZ_CHECK(rn == n && memcmp(raw, enc, (size_t)n) == 0);
    must_decode_dump(&q, enc, (size_t)n, d2);
    int dl = udpc_wire_format(&p, d1, DUMP_CAP);
    FZ_CHECK(dl > 0 && strcmp(d1, d2) == 0);
    uint8_t again[UDPC_MAX_PACKET];
    int n2 = udpc_wire_encode(&q, again, sizeof again);
    FZ_CHECK(n2 == n && memcmp(again, enc, (size_t)n) == 0);
  } else {
    FZ_CHECK(valid_err(n) || n == UDPC_ERR_ARG);
    if (rn > 0) {
      /* R21: refused with exactly the decoder's code for these bytes
       * (a raw serialization over 1200 bytes decodes to TOO_BIG) */
      int drc = udpc_wire_decode(&q, raw, (size_t)rn);
      if (drc != n) {
        fprintf(stderr, "R21: encode=%d (%s) decode(raw)=%d (%s) type=0x%02x\n",
                n, udpc_strerror(n), drc, udpc_strerror(drc), p.type);
      }
      FZ_CHECK(drc == n);
    }
  }
  free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *d1 = malloc(DUMP_CAP);
  char *d2 = malloc(DUMP_CAP);
  FZ_CHECK(d1 != NULL && d2 != NULL);
  check_datagram(data, size, d1, d2);
  check_struct(data, size, d1, d2);
  free(d1);
  free(d2);
  return 0;
}
