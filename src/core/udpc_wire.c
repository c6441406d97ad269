/*
 * udpc_wire.c - the wire codec: decode, encode and the canonical text dump
 * of every packet (design.md P1 transport, P2 field types, P3 packets).
 *
 * Every byte goes through udpc_cursor. No allocation, no global mutable
 * state. Order of checks (design.md P2): size > 1200 -> TOO_BIG; < 6 ->
 * TRUNCATED; version -> VERSION; type -> TYPE; then the fields left to
 * right; finally leftover bytes -> TRAILING.
 *
 * Within a field the order is always: read the length/count (TRUNCATED if
 * absent) -> range check of the length/count -> the bytes/entries it
 * announces (TRUNCATED if absent) -> their contents. Value checks only ever
 * look at bytes already read. Consequence (tested): every strict prefix of
 * a valid datagram fails with exactly UDPC_ERR_TRUNCATED.
 *
 * PROTOCOL.md keeps design.md's section numbers and adds requirement ids:
 * P2.9 R19 (order of checks), R20 (never read outside the datagram), R21
 * (the encoder refuses with the decoder's code); field rules P2.1-P2.8.
 */
#include <limits.h>
#include <string.h>

#include "udpc_cursor.h"
#include "udpc_guard.h"
#include "udpc_wire.h"
#include "udpchat.h"

/* ---- Packet types ------------------------------------------------------ */

const char *udpc_ptype_name(int type) {
  switch (type) {
    case UDPC_PT_REGISTER: return "REGISTER";
    case UDPC_PT_COOKIE: return "COOKIE";
    case UDPC_PT_REGISTER_RESULT: return "REGISTER_RESULT";
    case UDPC_PT_TABLE_REQ: return "TABLE_REQ";
    case UDPC_PT_TABLE_PAGE: return "TABLE_PAGE";
    case UDPC_PT_TABLE_DELTA: return "TABLE_DELTA";
    case UDPC_PT_HEARTBEAT: return "HEARTBEAT";
    case UDPC_PT_HEARTBEAT_ACK: return "HEARTBEAT_ACK";
    case UDPC_PT_DEREG: return "DEREG";
    case UDPC_PT_DEREG_OTHER: return "DEREG_OTHER";
    case UDPC_PT_DEREG_RESULT: return "DEREG_RESULT";
    case UDPC_PT_KICKED: return "KICKED";
    case UDPC_PT_SAVE: return "SAVE";
    case UDPC_PT_SAVE_RESULT: return "SAVE_RESULT";
    case UDPC_PT_MAIL_REQ: return "MAIL_REQ";
    case UDPC_PT_MAIL_PAGE: return "MAIL_PAGE";
    case UDPC_PT_PROBE: return "PROBE";
    case UDPC_PT_PROBE_ACK: return "PROBE_ACK";
    case UDPC_PT_CHAT: return "CHAT";
    case UDPC_PT_CHAT_ACK: return "CHAT_ACK";
    case UDPC_PT_ERROR: return "ERROR";
    default: return "UNKNOWN";
  }
}

static int ptype_known(int type) {
  return strcmp(udpc_ptype_name(type), "UNKNOWN") != 0;
}

/* design.md P1: "Types with a token: TABLE_REQ, TABLE_PAGE, TABLE_DELTA,
 * HEARTBEAT, HEARTBEAT_ACK, DEREG, DEREG_OTHER, DEREG_RESULT, KICKED, SAVE,
 * SAVE_RESULT, MAIL_REQ, MAIL_PAGE, PROBE, PROBE_ACK." */
int udpc_ptype_has_token(int type) {
  switch (type) {
    case UDPC_PT_TABLE_REQ:
    case UDPC_PT_TABLE_PAGE:
    case UDPC_PT_TABLE_DELTA:
    case UDPC_PT_HEARTBEAT:
    case UDPC_PT_HEARTBEAT_ACK:
    case UDPC_PT_DEREG:
    case UDPC_PT_DEREG_OTHER:
    case UDPC_PT_DEREG_RESULT:
    case UDPC_PT_KICKED:
    case UDPC_PT_SAVE:
    case UDPC_PT_SAVE_RESULT:
    case UDPC_PT_MAIL_REQ:
    case UDPC_PT_MAIL_PAGE:
    case UDPC_PT_PROBE:
    case UDPC_PT_PROBE_ACK: return 1;
    default: return 0;
  }
}

/* ---- Sizes for page packing ------------------------------------------- */

size_t udpc_wire_mail_size(const udpc_mail *m) {
  return UDPC_MAIL_ENTRY_FIXED + (size_t)m->from.len + (size_t)m->text.len;
}

size_t udpc_wire_entry_len(const udpc_nick *nick, const udpc_addr *addr) {
  return 1 + (size_t)nick->len + 1 + 1 + (addr->family == 4 ? 4u : 16u) + 2;
}

size_t udpc_wire_entry_size(const udpc_entry *e) {
  return udpc_wire_entry_len(&e->nick, &e->addr);
}

/* ======================================================================
 * Decoding
 * ====================================================================== */

/* design.md P2 (PROTOCOL.md P2.1 R15): "`str8 nick`: u8 length 1..32 then bytes of [a-z0-9_-] ...
 * every nick problem is UDPC_ERR_NICK; truncation inside the nick is
 * UDPC_ERR_TRUNCATED." */
static int dec_nick(udpc_reader *r, udpc_nick *out) {
  uint8_t len;
  const uint8_t *b;
  UDPC_GUARD(udpc_cursor_read_u8(r, &len));
  UDPC_ENSURE(len >= 1 && len <= UDPC_NICK_MAX, UDPC_ERR_NICK);
  UDPC_GUARD(udpc_cursor_read_bytes(r, len, &b));
  UDPC_GUARD(udpc_nick_check((const char *)b, len));
  memcpy(out->s, b, len);
  out->s[len] = '\0';
  out->len = len;
  return UDPC_OK;
}

/* design.md P2 (PROTOCOL.md P2.2 R17): "`text16`: u16 length 1..1100, then
 * UTF-8 ... Length 0 or > 1100 -> UDPC_ERR_LENGTH; bad UTF-8 -> UDPC_ERR_UTF8; a control ->
 * UDPC_ERR_CONTROL". */
static int dec_text(udpc_reader *r, udpc_bytes *out) {
  uint16_t len;
  const uint8_t *b;
  UDPC_GUARD(udpc_cursor_read_u16(r, &len));
  UDPC_ENSURE(len >= 1 && len <= UDPC_TEXT_MAX, UDPC_ERR_LENGTH);
  UDPC_GUARD(udpc_cursor_read_bytes(r, len, &b));
  UDPC_GUARD(udpc_text_check(b, len));
  out->p = b;
  out->len = len;
  return UDPC_OK;
}

/* design.md P2 (PROTOCOL.md P2.3): "`cookie`: u8 length then bytes. In REGISTER the length is
 * 0..32 (0 = "I have no cookie"); in COOKIE 1..32. Out of range ->
 * UDPC_ERR_LENGTH." */
static int dec_cookie(udpc_reader *r, uint8_t *len_out, uint8_t *cookie,
                      uint8_t min_len) {
  uint8_t len;
  UDPC_GUARD(udpc_cursor_read_u8(r, &len));
  UDPC_ENSURE(len >= min_len && len <= UDPC_COOKIE_MAX, UDPC_ERR_LENGTH);
  UDPC_GUARD(udpc_cursor_read_copy(r, cookie, len));
  *len_out = len;
  return UDPC_OK;
}

/* design.md P2 (PROTOCOL.md P2.5): "`addr`: `family u8` (4 or 6, else UDPC_ERR_VALUE), then 4
 * or 16 address bytes, then `port u16`." */
static int dec_addr(udpc_reader *r, udpc_addr *out) {
  UDPC_GUARD(udpc_cursor_read_u8(r, &out->family));
  UDPC_ENSURE(out->family == 4 || out->family == 6, UDPC_ERR_VALUE);
  UDPC_GUARD(udpc_cursor_read_copy(r, out->ip, out->family == 4 ? 4u : 16u));
  UDPC_GUARD(udpc_cursor_read_u16(r, &out->port));
  return UDPC_OK;
}

/* design.md P2 (PROTOCOL.md P2.6): "`entry`: nick str8, `status u8` (0 offline, 1 online; 2
 * removed only inside TABLE_DELTA; other values UDPC_ERR_VALUE), addr." */
static int dec_entry(udpc_reader *r, udpc_entry *out, uint8_t max_status) {
  UDPC_GUARD(dec_nick(r, &out->nick));
  UDPC_GUARD(udpc_cursor_read_u8(r, &out->status));
  UDPC_ENSURE(out->status <= max_status, UDPC_ERR_VALUE);
  UDPC_GUARD(dec_addr(r, &out->addr));
  return UDPC_OK;
}

/* design.md P2 (PROTOCOL.md P2.7, P2.8): "`mail`: `seq u64`, `msg_id u32`, `timestamp u64` (UTC ms
 * since epoch), `from` nick str8, `text16`"; "MAIL_PAGE ... seq strictly
 * increasing within a page else UDPC_ERR_VALUE". */
static int dec_mail(udpc_reader *r, udpc_mail *out, const udpc_mail *prev) {
  UDPC_GUARD(udpc_cursor_read_u64(r, &out->seq));
  UDPC_ENSURE(prev == NULL || out->seq > prev->seq, UDPC_ERR_VALUE);
  UDPC_GUARD(udpc_cursor_read_u32(r, &out->msg_id));
  UDPC_GUARD(udpc_cursor_read_u64(r, &out->timestamp_ms));
  UDPC_GUARD(dec_nick(r, &out->from));
  UDPC_GUARD(dec_text(r, &out->text));
  return UDPC_OK;
}

/* design.md P2 (PROTOCOL.md P2.8): "Status/code bytes beyond their *_MAX: UDPC_ERR_VALUE." */
static int dec_status(udpc_reader *r, uint8_t *out, uint8_t max) {
  UDPC_GUARD(udpc_cursor_read_u8(r, out));
  UDPC_ENSURE(*out <= max, UDPC_ERR_VALUE);
  return UDPC_OK;
}

int udpc_wire_decode_header(uint8_t *type, uint32_t *id, const uint8_t *data,
                            size_t len) {
  UDPC_ENSURE(type != NULL && id != NULL, UDPC_ERR_ARG);
  UDPC_ENSURE(data != NULL || len == 0, UDPC_ERR_ARG);
  udpc_reader r;
  uint8_t version;
  udpc_reader_init(&r, data, len);
  /* design.md P2: "< 6 -> UDPC_ERR_TRUNCATED" (before the version). */
  UDPC_ENSURE(len >= UDPC_HEADER_LEN, UDPC_ERR_TRUNCATED);
  UDPC_GUARD(udpc_cursor_read_u8(&r, &version));
  UDPC_GUARD(udpc_cursor_read_u8(&r, type));
  UDPC_GUARD(udpc_cursor_read_u32(&r, id));
  /* "Version != 1 -> UDPC_ERR_VERSION (checked before type)." */
  UDPC_ENSURE(version == UDPC_PROTOCOL_VERSION, UDPC_ERR_VERSION);
  /* "Unknown type -> UDPC_ERR_TYPE." */
  UDPC_ENSURE(ptype_known(*type), UDPC_ERR_TYPE);
  return UDPC_OK;
}

/* The body after header and token (design.md P3 table), fields in order. */
static int dec_body(udpc_reader *r, udpc_packet *p) {
  switch (p->type) {
    case UDPC_PT_REGISTER:
      UDPC_GUARD(dec_cookie(r, &p->u.reg.cookie_len, p->u.reg.cookie, 0));
      UDPC_GUARD(dec_nick(r, &p->u.reg.nick));
      UDPC_GUARD(udpc_cursor_read_copy(r, p->u.reg.credential, UDPC_CRED_LEN));
      return UDPC_OK;
    case UDPC_PT_COOKIE:
      return dec_cookie(r, &p->u.cookie.cookie_len, p->u.cookie.cookie, 1);
    case UDPC_PT_REGISTER_RESULT:
      UDPC_GUARD(dec_status(r, &p->u.reg_result.status, UDPC_REG_STATUS_MAX));
      UDPC_GUARD(udpc_cursor_read_u64(r, &p->u.reg_result.token));
      UDPC_GUARD(udpc_cursor_read_u64(r, &p->u.reg_result.table_version));
      UDPC_GUARD(udpc_cursor_read_u32(r, &p->u.reg_result.mail_count));
      return UDPC_OK;
    case UDPC_PT_TABLE_REQ:
      return udpc_cursor_read_u32(r, &p->u.table_req.start);
    case UDPC_PT_TABLE_PAGE: {
      UDPC_GUARD(udpc_cursor_read_u64(r, &p->u.table_page.version));
      UDPC_GUARD(udpc_cursor_read_u32(r, &p->u.table_page.total));
      UDPC_GUARD(udpc_cursor_read_u32(r, &p->u.table_page.start));
      UDPC_GUARD(udpc_cursor_read_u8(r, &p->u.table_page.count));
      /* P3.5: "count 0..116" (> 116: UDPC_ERR_LENGTH, as for every
       * count), "start + count <= total else UDPC_ERR_VALUE". */
      UDPC_ENSURE(p->u.table_page.count <= UDPC_TABLE_PAGE_MAX,
                  UDPC_ERR_LENGTH);
      UDPC_ENSURE((uint64_t)p->u.table_page.start + p->u.table_page.count <=
                      p->u.table_page.total,
                  UDPC_ERR_VALUE);
      for (unsigned i = 0; i < p->u.table_page.count; i++)
        UDPC_GUARD(
            dec_entry(r, &p->u.table_page.entries[i], UDPC_STATUS_ONLINE));
      return UDPC_OK;
    }
    case UDPC_PT_TABLE_DELTA: {
      UDPC_GUARD(udpc_cursor_read_u64(r, &p->u.table_delta.base_version));
      UDPC_GUARD(udpc_cursor_read_u64(r, &p->u.table_delta.new_version));
      /* "new_version > base_version else UDPC_ERR_VALUE" */
      UDPC_ENSURE(p->u.table_delta.new_version > p->u.table_delta.base_version,
                  UDPC_ERR_VALUE);
      UDPC_GUARD(udpc_cursor_read_u8(r, &p->u.table_delta.count));
      /* P3.6: "count 1..116 (count 0 or > 116: UDPC_ERR_LENGTH)" */
      UDPC_ENSURE(p->u.table_delta.count >= 1 &&
                      p->u.table_delta.count <= UDPC_TABLE_PAGE_MAX,
                  UDPC_ERR_LENGTH);
      for (unsigned i = 0; i < p->u.table_delta.count; i++)
        UDPC_GUARD(
            dec_entry(r, &p->u.table_delta.entries[i], UDPC_STATUS_REMOVED));
      return UDPC_OK;
    }
    case UDPC_PT_HEARTBEAT_ACK:
      return udpc_cursor_read_u64(r, &p->u.heartbeat_ack.table_version);
    case UDPC_PT_DEREG_OTHER: return dec_nick(r, &p->u.dereg_other.target);
    case UDPC_PT_DEREG_RESULT:
      return dec_status(r, &p->u.dereg_result.status, UDPC_DEREG_STATUS_MAX);
    case UDPC_PT_KICKED: return dec_nick(r, &p->u.kicked.by);
    case UDPC_PT_SAVE:
      UDPC_GUARD(dec_nick(r, &p->u.save.to));
      UDPC_GUARD(udpc_cursor_read_u32(r, &p->u.save.msg_id));
      UDPC_GUARD(dec_text(r, &p->u.save.text));
      return UDPC_OK;
    case UDPC_PT_SAVE_RESULT:
      UDPC_GUARD(dec_status(r, &p->u.save_result.status, UDPC_SAVE_STATUS_MAX));
      /* "SAVE_RESULT: entry present iff status == RECIPIENT_ONLINE." */
      if (p->u.save_result.status == UDPC_SAVE_RECIPIENT_ONLINE)
        UDPC_GUARD(dec_entry(r, &p->u.save_result.entry, UDPC_STATUS_ONLINE));
      return UDPC_OK;
    case UDPC_PT_MAIL_REQ:
      return udpc_cursor_read_u64(r, &p->u.mail_req.ack_upto);
    case UDPC_PT_MAIL_PAGE: {
      UDPC_GUARD(udpc_cursor_read_u32(r, &p->u.mail_page.remaining));
      UDPC_GUARD(udpc_cursor_read_u8(r, &p->u.mail_page.count));
      /* "MAIL_PAGE count 0..16 (> 16: UDPC_ERR_LENGTH)" */
      UDPC_ENSURE(p->u.mail_page.count <= UDPC_MAIL_PAGE_MAX, UDPC_ERR_LENGTH);
      for (unsigned i = 0; i < p->u.mail_page.count; i++)
        UDPC_GUARD(dec_mail(r, &p->u.mail_page.mail[i],
                            i ? &p->u.mail_page.mail[i - 1] : NULL));
      return UDPC_OK;
    }
    case UDPC_PT_CHAT:
      UDPC_GUARD(dec_nick(r, &p->u.chat.from));
      UDPC_GUARD(dec_nick(r, &p->u.chat.to));
      UDPC_GUARD(dec_text(r, &p->u.chat.text));
      return UDPC_OK;
    case UDPC_PT_CHAT_ACK: return dec_nick(r, &p->u.chat_ack.from);
    case UDPC_PT_ERROR:
      /* "ERROR code 0 or > UDPC_ERROR_CODE_MAX: UDPC_ERR_VALUE." */
      UDPC_GUARD(udpc_cursor_read_u8(r, &p->u.error.code));
      UDPC_ENSURE(p->u.error.code >= 1 &&
                      p->u.error.code <= UDPC_ERROR_CODE_MAX,
                  UDPC_ERR_VALUE);
      return UDPC_OK;
    case UDPC_PT_HEARTBEAT:
    case UDPC_PT_DEREG:
    case UDPC_PT_PROBE:
    case UDPC_PT_PROBE_ACK: return UDPC_OK; /* (empty) */
    default: return UDPC_ERR_TYPE;
  }
}

int udpc_wire_decode(udpc_packet *out, const uint8_t *data, size_t len) {
  UDPC_ENSURE(out != NULL, UDPC_ERR_ARG);
  UDPC_ENSURE(data != NULL || len == 0, UDPC_ERR_ARG);
  /* design.md P1: "No datagram > 1200 bytes; a receiver drops a larger one
   * (decoder: UDPC_ERR_TOO_BIG)"; P2: "(checked first)". */
  UDPC_ENSURE(len <= UDPC_MAX_PACKET, UDPC_ERR_TOO_BIG);
  memset(out, 0, sizeof *out);
  UDPC_GUARD(udpc_wire_decode_header(&out->type, &out->id, data, len));
  udpc_reader r;
  udpc_reader_init(&r, data, len);
  UDPC_GUARD(udpc_cursor_skip(&r, UDPC_HEADER_LEN));
  /* design.md P1: "Types marked [token] ... carry `token u64` at offset 6" */
  if (udpc_ptype_has_token(out->type))
    UDPC_GUARD(udpc_cursor_read_u64(&r, &out->token));
  UDPC_GUARD(dec_body(&r, out));
  /* design.md P2: "After the last field, any byte left ->
   * UDPC_ERR_TRAILING." */
  UDPC_ENSURE(udpc_cursor_remaining(&r) == 0, UDPC_ERR_TRAILING);
  return UDPC_OK;
}

/* ======================================================================
 * Encoding: the mirror image of decoding, same checks in the same order
 * and with the same codes. With check == 0 the fields are written as they
 * are (measuring pass and udpc_wire_encode_raw).
 * ====================================================================== */

typedef struct {
  udpc_writer w;
  int check;
} enc_ctx;

static int enc_nick(enc_ctx *e, const udpc_nick *n) {
  if (e->check) {
    UDPC_ENSURE(n->len >= 1 && n->len <= UDPC_NICK_MAX, UDPC_ERR_NICK);
    UDPC_GUARD(udpc_nick_check(n->s, n->len));
  } else {
    /* Never read beyond the nick buffer (measuring reads nothing). */
    UDPC_ENSURE(e->w.p == NULL || n->len <= sizeof n->s, UDPC_ERR_ARG);
  }
  UDPC_GUARD(udpc_cursor_write_u8(&e->w, n->len));
  UDPC_GUARD(udpc_cursor_write_bytes(&e->w, n->s, n->len));
  return UDPC_OK;
}

static int enc_text(enc_ctx *e, const udpc_bytes *t) {
  if (e->check) {
    UDPC_ENSURE(t->len >= 1 && t->len <= UDPC_TEXT_MAX, UDPC_ERR_LENGTH);
    UDPC_ENSURE(t->p != NULL, UDPC_ERR_ARG);
    UDPC_GUARD(udpc_text_check(t->p, t->len));
  } else {
    UDPC_ENSURE(e->w.p == NULL || t->p != NULL || t->len == 0, UDPC_ERR_ARG);
  }
  UDPC_GUARD(udpc_cursor_write_u16(&e->w, t->len));
  UDPC_GUARD(udpc_cursor_write_bytes(&e->w, t->p, t->len));
  return UDPC_OK;
}

static int enc_cookie(enc_ctx *e, uint8_t len, const uint8_t *cookie,
                      uint8_t min_len) {
  if (e->check)
    UDPC_ENSURE(len >= min_len && len <= UDPC_COOKIE_MAX, UDPC_ERR_LENGTH);
  else
    UDPC_ENSURE(e->w.p == NULL || len <= UDPC_COOKIE_MAX, UDPC_ERR_ARG);
  UDPC_GUARD(udpc_cursor_write_u8(&e->w, len));
  UDPC_GUARD(udpc_cursor_write_bytes(&e->w, cookie, len));
  return UDPC_OK;
}

static int enc_status(enc_ctx *e, uint8_t v, uint8_t max) {
  if (e->check) UDPC_ENSURE(v <= max, UDPC_ERR_VALUE);
  return udpc_cursor_write_u8(&e->w, v);
}

static int enc_addr(enc_ctx *e, const udpc_addr *a) {
  if (e->check) UDPC_ENSURE(a->family == 4 || a->family == 6, UDPC_ERR_VALUE);
  UDPC_GUARD(udpc_cursor_write_u8(&e->w, a->family));
  UDPC_GUARD(udpc_cursor_write_bytes(&e->w, a->ip, a->family == 4 ? 4u : 16u));
  UDPC_GUARD(udpc_cursor_write_u16(&e->w, a->port));
  return UDPC_OK;
}

static int enc_entry(enc_ctx *e, const udpc_entry *en, uint8_t max_status) {
  UDPC_GUARD(enc_nick(e, &en->nick));
  UDPC_GUARD(enc_status(e, en->status, max_status));
  UDPC_GUARD(enc_addr(e, &en->addr));
  return UDPC_OK;
}

static int enc_mail(enc_ctx *e, const udpc_mail *m, const udpc_mail *prev) {
  if (e->check) UDPC_ENSURE(prev == NULL || m->seq > prev->seq, UDPC_ERR_VALUE);
  UDPC_GUARD(udpc_cursor_write_u64(&e->w, m->seq));
  UDPC_GUARD(udpc_cursor_write_u32(&e->w, m->msg_id));
  UDPC_GUARD(udpc_cursor_write_u64(&e->w, m->timestamp_ms));
  UDPC_GUARD(enc_nick(e, &m->from));
  UDPC_GUARD(enc_text(e, &m->text));
  return UDPC_OK;
}

static int enc_body(enc_ctx *e, const udpc_packet *p) {
  udpc_writer *w = &e->w;
  switch (p->type) {
    case UDPC_PT_REGISTER:
      UDPC_GUARD(enc_cookie(e, p->u.reg.cookie_len, p->u.reg.cookie, 0));
      UDPC_GUARD(enc_nick(e, &p->u.reg.nick));
      UDPC_GUARD(
          udpc_cursor_write_bytes(w, p->u.reg.credential, UDPC_CRED_LEN));
      return UDPC_OK;
    case UDPC_PT_COOKIE:
      return enc_cookie(e, p->u.cookie.cookie_len, p->u.cookie.cookie, 1);
    case UDPC_PT_REGISTER_RESULT:
      UDPC_GUARD(enc_status(e, p->u.reg_result.status, UDPC_REG_STATUS_MAX));
      UDPC_GUARD(udpc_cursor_write_u64(w, p->u.reg_result.token));
      UDPC_GUARD(udpc_cursor_write_u64(w, p->u.reg_result.table_version));
      UDPC_GUARD(udpc_cursor_write_u32(w, p->u.reg_result.mail_count));
      return UDPC_OK;
    case UDPC_PT_TABLE_REQ:
      return udpc_cursor_write_u32(w, p->u.table_req.start);
    case UDPC_PT_TABLE_PAGE: {
      const uint8_t count = p->u.table_page.count;
      UDPC_GUARD(udpc_cursor_write_u64(w, p->u.table_page.version));
      UDPC_GUARD(udpc_cursor_write_u32(w, p->u.table_page.total));
      UDPC_GUARD(udpc_cursor_write_u32(w, p->u.table_page.start));
      if (e->check) {
        UDPC_ENSURE(count <= UDPC_TABLE_PAGE_MAX, UDPC_ERR_LENGTH);
        UDPC_ENSURE((uint64_t)p->u.table_page.start + count <=
                        p->u.table_page.total,
                    UDPC_ERR_VALUE);
      }
      UDPC_ENSURE(count <= UDPC_TABLE_PAGE_MAX, UDPC_ERR_ARG);
      UDPC_GUARD(udpc_cursor_write_u8(w, count));
      for (unsigned i = 0; i < count; i++)
        UDPC_GUARD(
            enc_entry(e, &p->u.table_page.entries[i], UDPC_STATUS_ONLINE));
      return UDPC_OK;
    }
    case UDPC_PT_TABLE_DELTA: {
      const uint8_t count = p->u.table_delta.count;
      UDPC_GUARD(udpc_cursor_write_u64(w, p->u.table_delta.base_version));
      if (e->check)
        UDPC_ENSURE(p->u.table_delta.new_version >
                        p->u.table_delta.base_version,
                    UDPC_ERR_VALUE);
      UDPC_GUARD(udpc_cursor_write_u64(w, p->u.table_delta.new_version));
      if (e->check)
        UDPC_ENSURE(count >= 1 && count <= UDPC_TABLE_PAGE_MAX,
                    UDPC_ERR_LENGTH);
      UDPC_ENSURE(count <= UDPC_TABLE_PAGE_MAX, UDPC_ERR_ARG);
      UDPC_GUARD(udpc_cursor_write_u8(w, count));
      for (unsigned i = 0; i < count; i++)
        UDPC_GUARD(
            enc_entry(e, &p->u.table_delta.entries[i], UDPC_STATUS_REMOVED));
      return UDPC_OK;
    }
    case UDPC_PT_HEARTBEAT_ACK:
      return udpc_cursor_write_u64(w, p->u.heartbeat_ack.table_version);
    case UDPC_PT_DEREG_OTHER: return enc_nick(e, &p->u.dereg_other.target);
    case UDPC_PT_DEREG_RESULT:
      return enc_status(e, p->u.dereg_result.status, UDPC_DEREG_STATUS_MAX);
    case UDPC_PT_KICKED: return enc_nick(e, &p->u.kicked.by);
    case UDPC_PT_SAVE:
      UDPC_GUARD(enc_nick(e, &p->u.save.to));
      UDPC_GUARD(udpc_cursor_write_u32(w, p->u.save.msg_id));
      UDPC_GUARD(enc_text(e, &p->u.save.text));
      return UDPC_OK;
    case UDPC_PT_SAVE_RESULT:
      UDPC_GUARD(enc_status(e, p->u.save_result.status, UDPC_SAVE_STATUS_MAX));
      if (p->u.save_result.status == UDPC_SAVE_RECIPIENT_ONLINE)
        UDPC_GUARD(enc_entry(e, &p->u.save_result.entry, UDPC_STATUS_ONLINE));
      return UDPC_OK;
    case UDPC_PT_MAIL_REQ:
      return udpc_cursor_write_u64(w, p->u.mail_req.ack_upto);
    case UDPC_PT_MAIL_PAGE: {
      const uint8_t count = p->u.mail_page.count;
      UDPC_GUARD(udpc_cursor_write_u32(w, p->u.mail_page.remaining));
      if (e->check) UDPC_ENSURE(count <= UDPC_MAIL_PAGE_MAX, UDPC_ERR_LENGTH);
      UDPC_ENSURE(count <= UDPC_MAIL_PAGE_MAX, UDPC_ERR_ARG);
      UDPC_GUARD(udpc_cursor_write_u8(w, count));
      for (unsigned i = 0; i < count; i++)
        UDPC_GUARD(enc_mail(e, &p->u.mail_page.mail[i],
                            i ? &p->u.mail_page.mail[i - 1] : NULL));
      return UDPC_OK;
    }
    case UDPC_PT_CHAT:
      UDPC_GUARD(enc_nick(e, &p->u.chat.from));
      UDPC_GUARD(enc_nick(e, &p->u.chat.to));
      UDPC_GUARD(enc_text(e, &p->u.chat.text));
      return UDPC_OK;
    case UDPC_PT_CHAT_ACK: return enc_nick(e, &p->u.chat_ack.from);
    case UDPC_PT_ERROR:
      if (e->check)
        UDPC_ENSURE(p->u.error.code >= 1 &&
                        p->u.error.code <= UDPC_ERROR_CODE_MAX,
                    UDPC_ERR_VALUE);
      return udpc_cursor_write_u8(w, p->u.error.code);
    case UDPC_PT_HEARTBEAT:
    case UDPC_PT_DEREG:
    case UDPC_PT_PROBE:
    case UDPC_PT_PROBE_ACK: return UDPC_OK;
    default:
      /* Unknown type: raw mode writes the header only. */
      return e->check ? UDPC_ERR_TYPE : UDPC_OK;
  }
}

/* Whole packet: header, token, body. Returns the length or an error. */
static int enc_packet(enc_ctx *e, const udpc_packet *p) {
  UDPC_GUARD(udpc_cursor_write_u8(&e->w, UDPC_PROTOCOL_VERSION));
  UDPC_GUARD(udpc_cursor_write_u8(&e->w, p->type));
  UDPC_GUARD(udpc_cursor_write_u32(&e->w, p->id));
  if (e->check) UDPC_ENSURE(ptype_known(p->type), UDPC_ERR_TYPE);
  if (udpc_ptype_has_token(p->type))
    UDPC_GUARD(udpc_cursor_write_u64(&e->w, p->token));
  UDPC_GUARD(enc_body(e, p));
  /* Only a measured, never-sent struct can get near this; it keeps the
   * int result meaningful. */
  UDPC_ENSURE(e->w.pos <= (size_t)INT_MAX, UDPC_ERR_TOO_BIG);
  return (int)e->w.pos;
}

int udpc_wire_encode(const udpc_packet *p, uint8_t *buf, size_t cap) {
  UDPC_ENSURE(p != NULL, UDPC_ERR_ARG);
  UDPC_ENSURE(buf != NULL || cap == 0, UDPC_ERR_ARG);
  enc_ctx e;
  /* 1. Measure without checks. A decoder checks the size first (design.md
   * P2: "Datagram > 1200 -> UDPC_ERR_TOO_BIG (checked first)"), so the
   * encoder does too. A struct that cannot even be measured (a count
   * beyond its array) skips this and fails validation below. */
  udpc_writer_measure(&e.w);
  e.check = 0;
  const int measured = enc_packet(&e, p);
  UDPC_ENSURE(measured < 0 || measured <= UDPC_MAX_PACKET, UDPC_ERR_TOO_BIG);
  /* 2. Validate every field in wire order, still writing nothing. */
  udpc_writer_measure(&e.w);
  e.check = 1;
  const int n = enc_packet(&e, p);
  UDPC_GUARD(n);
  UDPC_ENSURE(n <= UDPC_MAX_PACKET, UDPC_ERR_TOO_BIG);
  /* 3. Room in the caller's buffer, then write for real. */
  UDPC_ENSURE((size_t)n <= cap, UDPC_ERR_TOO_BIG);
  udpc_writer_init(&e.w, buf, cap);
  return enc_packet(&e, p);
}

/* ---- One-pass TABLE_PAGE / TABLE_DELTA builder (udpc_wire.h) ----------- */

static int table_begin(udpc_wire_table *t, uint8_t *buf, size_t cap,
                       uint8_t type, uint32_t id, uint64_t token) {
  UDPC_ENSURE(t != NULL && buf != NULL, UDPC_ERR_ARG);
  udpc_writer_init(&t->w, buf, cap < UDPC_MAX_PACKET ? cap : UDPC_MAX_PACKET);
  t->count = 0;
  t->count_at = 0;
  t->type = type;
  UDPC_GUARD(udpc_cursor_write_u8(&t->w, UDPC_PROTOCOL_VERSION));
  UDPC_GUARD(udpc_cursor_write_u8(&t->w, type));
  UDPC_GUARD(udpc_cursor_write_u32(&t->w, id));
  UDPC_GUARD(udpc_cursor_write_u64(&t->w, token));
  return UDPC_OK;
}

/* The count byte: reserved now (0), written by finish. */
static int table_count_slot(udpc_wire_table *t) {
  t->count_at = t->w.pos;
  return udpc_cursor_write_u8(&t->w, 0);
}

int udpc_wire_page_begin(udpc_wire_table *t, uint8_t *buf, size_t cap,
                         uint32_t id, uint64_t token, uint64_t version,
                         uint32_t total, uint32_t start) {
  UDPC_GUARD(table_begin(t, buf, cap, UDPC_PT_TABLE_PAGE, id, token));
  UDPC_GUARD(udpc_cursor_write_u64(&t->w, version));
  UDPC_GUARD(udpc_cursor_write_u32(&t->w, total));
  UDPC_GUARD(udpc_cursor_write_u32(&t->w, start));
  return table_count_slot(t);
}

int udpc_wire_delta_begin(udpc_wire_table *t, uint8_t *buf, size_t cap,
                          uint32_t id, uint64_t token, uint64_t base_version,
                          uint64_t new_version) {
  UDPC_GUARD(table_begin(t, buf, cap, UDPC_PT_TABLE_DELTA, id, token));
  UDPC_GUARD(udpc_cursor_write_u64(&t->w, base_version));
  UDPC_GUARD(udpc_cursor_write_u64(&t->w, new_version));
  return table_count_slot(t);
}

/* The entry's bytes (as enc_entry writes them, without its checks). */
static int table_entry(udpc_writer *w, const udpc_nick *nick, uint8_t status,
                       const udpc_addr *addr) {
  UDPC_GUARD(udpc_cursor_write_u8(w, nick->len));
  UDPC_GUARD(udpc_cursor_write_bytes(w, nick->s, nick->len));
  UDPC_GUARD(udpc_cursor_write_u8(w, status));
  UDPC_GUARD(udpc_cursor_write_u8(w, addr->family));
  UDPC_GUARD(
      udpc_cursor_write_bytes(w, addr->ip, addr->family == 4 ? 4u : 16u));
  UDPC_GUARD(udpc_cursor_write_u16(w, addr->port));
  return UDPC_OK;
}

int udpc_wire_table_append(udpc_wire_table *t, const udpc_nick *nick,
                           uint8_t status, const udpc_addr *addr) {
  UDPC_ENSURE(nick->len <= UDPC_NICK_MAX, UDPC_ERR_ARG);
  size_t n = udpc_wire_entry_len(nick, addr);
  if (t->count >= UDPC_TABLE_PAGE_MAX || n > udpc_writer_space(&t->w)) return 0;
  UDPC_GUARD(table_entry(&t->w, nick, status, addr)); /* fits: cannot fail */
  t->count++;
  return 1;
}

int udpc_wire_table_append_bytes(udpc_wire_table *t, const uint8_t *b,
                                 size_t n) {
  if (t->count >= UDPC_TABLE_PAGE_MAX || n > udpc_writer_space(&t->w)) return 0;
  UDPC_GUARD(udpc_cursor_write_bytes(&t->w, b, n));
  t->count++;
  return 1;
}

int udpc_wire_delta_set_versions(udpc_wire_table *t, uint64_t base_version,
                                 uint64_t new_version) {
  const size_t at = UDPC_HEADER_LEN + UDPC_TOKEN_LEN;
  UDPC_ENSURE(t->type == UDPC_PT_TABLE_DELTA && t->count_at == at + 16,
              UDPC_ERR_ARG); /* a delta's builder, begun */
  udpc_writer c;
  udpc_writer_init(&c, t->w.p + at, 16);
  UDPC_GUARD(udpc_cursor_write_u64(&c, base_version));
  UDPC_GUARD(udpc_cursor_write_u64(&c, new_version));
  return UDPC_OK;
}

int udpc_wire_table_finish(udpc_wire_table *t) {
  UDPC_ENSURE(t->count_at != 0, UDPC_ERR_ARG); /* begin succeeded */
  udpc_writer c;
  udpc_writer_init(&c, t->w.p + t->count_at, 1);
  UDPC_GUARD(udpc_cursor_write_u8(&c, t->count));
  return (int)t->w.pos; /* <= UDPC_MAX_PACKET */
}

int udpc_wire_entry_encode(const udpc_nick *nick, uint8_t status,
                           const udpc_addr *addr, uint8_t *out, size_t cap) {
  UDPC_ENSURE(out != NULL && nick->len <= UDPC_NICK_MAX, UDPC_ERR_ARG);
  udpc_writer w;
  udpc_writer_init(&w, out, cap);
  UDPC_GUARD(table_entry(&w, nick, status, addr));
  return (int)w.pos;
}

int udpc_wire_encode_raw(const udpc_packet *p, uint8_t *buf, size_t cap) {
  UDPC_ENSURE(p != NULL, UDPC_ERR_ARG);
  UDPC_ENSURE(buf != NULL, UDPC_ERR_ARG);
  enc_ctx e;
  udpc_writer_init(&e.w, buf, cap);
  e.check = 0;
  return enc_packet(&e, p);
}

/* ======================================================================
 * udpc_wire_format: canonical one-line dump. The grammar is written down
 * in tests/vectors/wire.vectors (header comment) and PROTOCOL.md.
 * ====================================================================== */

typedef struct {
  char *buf;
  size_t cap; /* > 0 */
  size_t len; /* < cap: room for the NUL is kept */
  int over;
} fmt_buf;

static void put_mem(fmt_buf *f, const char *s, size_t n) {
  if (f->over) return;
  if (n > f->cap - 1 - f->len) {
    f->over = 1;
    return;
  }
  memcpy(f->buf + f->len, s, n);
  f->len += n;
}

static void put_str(fmt_buf *f, const char *s) { put_mem(f, s, strlen(s)); }

static void put_ch(fmt_buf *f, char ch) { put_mem(f, &ch, 1); }

static void put_u64(fmt_buf *f, uint64_t v) {
  char tmp[20];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v != 0);
  put_mem(f, tmp + i, sizeof tmp - i);
}

static const char hexdig[] = "0123456789abcdef";

static void put_hex(fmt_buf *f, const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    put_ch(f, hexdig[b[i] >> 4]);
    put_ch(f, hexdig[b[i] & 15]);
  }
}

static void put_hex64(fmt_buf *f, uint64_t v) {
  for (int shift = 60; shift >= 0; shift -= 4)
    put_ch(f, hexdig[(v >> shift) & 15]);
}

static void put_key(fmt_buf *f, const char *key) {
  put_ch(f, ' ');
  put_str(f, key);
  put_ch(f, '=');
}

/* JSON-style string: \" \\ and bytes < 0x20 or 0x7f as \u00xx; every other
 * byte (UTF-8 included) verbatim. */
static void put_quoted(fmt_buf *f, const uint8_t *b, size_t n) {
  put_ch(f, '"');
  for (size_t i = 0; i < n; i++) {
    const uint8_t c = b[i];
    if (c == '"' || c == '\\') {
      put_ch(f, '\\');
      put_ch(f, (char)c);
    } else if (c < 0x20 || c == 0x7f) {
      put_str(f, "\\u00");
      put_ch(f, hexdig[c >> 4]);
      put_ch(f, hexdig[c & 15]);
    } else {
      put_ch(f, (char)c);
    }
  }
  put_ch(f, '"');
}

/* A valid nick verbatim; anything else (only in a hand-made struct) as a
 * quoted string so the line stays unambiguous. */
static void put_nick(fmt_buf *f, const udpc_nick *n) {
  const size_t len = n->len <= UDPC_NICK_MAX ? n->len : UDPC_NICK_MAX;
  if (udpc_nick_check(n->s, n->len) == UDPC_OK)
    put_mem(f, n->s, n->len);
  else
    put_quoted(f, (const uint8_t *)n->s, len);
}

static void put_text(fmt_buf *f, const udpc_bytes *t) {
  put_quoted(f, t->p, t->p ? t->len : 0);
}

/* An enumerated byte by name, or in decimal when out of range. */
static void put_enum(fmt_buf *f, unsigned v, const char *const *names,
                     unsigned n) {
  if (v < n && names[v] != NULL)
    put_str(f, names[v]);
  else
    put_u64(f, v);
}

/* IPv6 text per RFC 5952 section 4: lowercase hex, no leading zeros, the
 * longest run (first if tied) of two or more zero groups as "::"; never the
 * mixed dotted-quad form. */
static void put_ipv6(fmt_buf *f, const uint8_t ip[16]) {
  unsigned g[8];
  int best = -1, best_len = 0;
  for (int i = 0; i < 8; i++) g[i] = ((unsigned)ip[2 * i] << 8) | ip[2 * i + 1];
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      i++;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) j++;
    if (j - i >= 2 && j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      put_str(f, "::");
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best + best_len) put_ch(f, ':');
    char tmp[4];
    size_t k = sizeof tmp;
    unsigned v = g[i];
    do {
      tmp[--k] = hexdig[v & 15];
      v >>= 4;
    } while (v != 0);
    put_mem(f, tmp + k, sizeof tmp - k);
  }
}

/* addr: "4:a.b.c.d:port" or "6:[v6]:port"; another family "F:?:port". */
static void put_addr(fmt_buf *f, const udpc_addr *a) {
  put_u64(f, a->family);
  put_ch(f, ':');
  if (a->family == 4) {
    for (int i = 0; i < 4; i++) {
      if (i) put_ch(f, '.');
      put_u64(f, a->ip[i]);
    }
  } else if (a->family == 6) {
    put_ch(f, '[');
    put_ipv6(f, a->ip);
    put_ch(f, ']');
  } else {
    put_ch(f, '?');
  }
  put_ch(f, ':');
  put_u64(f, a->port);
}

static const char *const entry_status_names[] = {"offline", "online",
                                                 "removed"};

/* entry: "nick status addr" */
static void put_entry(fmt_buf *f, const udpc_entry *e) {
  put_nick(f, &e->nick);
  put_ch(f, ' ');
  put_enum(f, e->status, entry_status_names, 3);
  put_ch(f, ' ');
  put_addr(f, &e->addr);
}

static void put_entries(fmt_buf *f, const udpc_entry *e, unsigned count) {
  if (count > UDPC_TABLE_PAGE_MAX) count = UDPC_TABLE_PAGE_MAX;
  put_key(f, "entries");
  put_ch(f, '[');
  for (unsigned i = 0; i < count; i++) {
    if (i) put_str(f, ", ");
    put_entry(f, &e[i]);
  }
  put_ch(f, ']');
}

static void put_mail(fmt_buf *f, const udpc_mail *m) {
  put_str(f, "{seq=");
  put_u64(f, m->seq);
  put_key(f, "msg_id");
  put_u64(f, m->msg_id);
  put_key(f, "timestamp");
  put_u64(f, m->timestamp_ms);
  put_key(f, "from");
  put_nick(f, &m->from);
  put_key(f, "text");
  put_text(f, &m->text);
  put_ch(f, '}');
}

static const char *const reg_status_names[] = {
    "ok", "nick_taken", "invalid_nick", "server_full", "store_error"};
static const char *const dereg_status_names[] = {"ok", "not_permitted",
                                                 "unknown_nick", "store_error"};
static const char *const save_status_names[] = {
    "saved", "recipient_online", "unknown_recipient", "quota", "store_error"};
static const char *const error_code_names[] = {
    NULL,      "bad_session",  "session_ended", "malformed",
    "version", "rate_limited", "internal"};

static void fmt_body(fmt_buf *f, const udpc_packet *p) {
  switch (p->type) {
    case UDPC_PT_REGISTER:
      put_key(f, "cookie");
      put_hex(f, p->u.reg.cookie,
              p->u.reg.cookie_len <= UDPC_COOKIE_MAX ? p->u.reg.cookie_len
                                                     : UDPC_COOKIE_MAX);
      put_key(f, "nick");
      put_nick(f, &p->u.reg.nick);
      put_key(f, "credential");
      put_hex(f, p->u.reg.credential, UDPC_CRED_LEN);
      break;
    case UDPC_PT_COOKIE:
      put_key(f, "cookie");
      put_hex(f, p->u.cookie.cookie,
              p->u.cookie.cookie_len <= UDPC_COOKIE_MAX ? p->u.cookie.cookie_len
                                                        : UDPC_COOKIE_MAX);
      break;
    case UDPC_PT_REGISTER_RESULT:
      put_key(f, "status");
      put_enum(f, p->u.reg_result.status, reg_status_names, 5);
      put_key(f, "token");
      put_hex64(f, p->u.reg_result.token);
      put_key(f, "table_version");
      put_u64(f, p->u.reg_result.table_version);
      put_key(f, "mail_count");
      put_u64(f, p->u.reg_result.mail_count);
      break;
    case UDPC_PT_TABLE_REQ:
      put_key(f, "start");
      put_u64(f, p->u.table_req.start);
      break;
    case UDPC_PT_TABLE_PAGE:
      put_key(f, "version");
      put_u64(f, p->u.table_page.version);
      put_key(f, "total");
      put_u64(f, p->u.table_page.total);
      put_key(f, "start");
      put_u64(f, p->u.table_page.start);
      put_entries(f, p->u.table_page.entries, p->u.table_page.count);
      break;
    case UDPC_PT_TABLE_DELTA:
      put_key(f, "base_version");
      put_u64(f, p->u.table_delta.base_version);
      put_key(f, "new_version");
      put_u64(f, p->u.table_delta.new_version);
      put_entries(f, p->u.table_delta.entries, p->u.table_delta.count);
      break;
    case UDPC_PT_HEARTBEAT_ACK:
      put_key(f, "table_version");
      put_u64(f, p->u.heartbeat_ack.table_version);
      break;
    case UDPC_PT_DEREG_OTHER:
      put_key(f, "target");
      put_nick(f, &p->u.dereg_other.target);
      break;
    case UDPC_PT_DEREG_RESULT:
      put_key(f, "status");
      put_enum(f, p->u.dereg_result.status, dereg_status_names, 4);
      break;
    case UDPC_PT_KICKED:
      put_key(f, "by");
      put_nick(f, &p->u.kicked.by);
      break;
    case UDPC_PT_SAVE:
      put_key(f, "to");
      put_nick(f, &p->u.save.to);
      put_key(f, "msg_id");
      put_u64(f, p->u.save.msg_id);
      put_key(f, "text");
      put_text(f, &p->u.save.text);
      break;
    case UDPC_PT_SAVE_RESULT:
      put_key(f, "status");
      put_enum(f, p->u.save_result.status, save_status_names, 5);
      if (p->u.save_result.status == UDPC_SAVE_RECIPIENT_ONLINE) {
        put_key(f, "entry");
        put_ch(f, '{');
        put_entry(f, &p->u.save_result.entry);
        put_ch(f, '}');
      }
      break;
    case UDPC_PT_MAIL_REQ:
      put_key(f, "ack_upto");
      put_u64(f, p->u.mail_req.ack_upto);
      break;
    case UDPC_PT_MAIL_PAGE: {
      unsigned count = p->u.mail_page.count;
      if (count > UDPC_MAIL_PAGE_MAX) count = UDPC_MAIL_PAGE_MAX;
      put_key(f, "remaining");
      put_u64(f, p->u.mail_page.remaining);
      put_key(f, "mail");
      put_ch(f, '[');
      for (unsigned i = 0; i < count; i++) {
        if (i) put_str(f, ", ");
        put_mail(f, &p->u.mail_page.mail[i]);
      }
      put_ch(f, ']');
      break;
    }
    case UDPC_PT_CHAT:
      put_key(f, "from");
      put_nick(f, &p->u.chat.from);
      put_key(f, "to");
      put_nick(f, &p->u.chat.to);
      put_key(f, "text");
      put_text(f, &p->u.chat.text);
      break;
    case UDPC_PT_CHAT_ACK:
      put_key(f, "from");
      put_nick(f, &p->u.chat_ack.from);
      break;
    case UDPC_PT_ERROR:
      put_key(f, "code");
      put_enum(f, p->u.error.code, error_code_names, 7);
      break;
    default: break; /* HEARTBEAT, DEREG, PROBE, PROBE_ACK: no body */
  }
}

int udpc_wire_format(const udpc_packet *p, char *buf, size_t cap) {
  UDPC_ENSURE(p != NULL, UDPC_ERR_ARG);
  UDPC_ENSURE(buf != NULL || cap == 0, UDPC_ERR_ARG);
  UDPC_ENSURE(cap > 0, UDPC_ERR_TOO_BIG);
  fmt_buf f = {buf, cap, 0, 0};
  if (ptype_known(p->type)) {
    put_str(&f, udpc_ptype_name(p->type));
  } else {
    put_str(&f, "UNKNOWN(");
    put_u64(&f, p->type);
    put_ch(&f, ')');
  }
  put_key(&f, "id");
  put_u64(&f, p->id);
  if (udpc_ptype_has_token(p->type)) {
    put_key(&f, "token");
    put_hex64(&f, p->token);
  }
  fmt_body(&f, p);
  if (f.over || f.len > (size_t)INT32_MAX) {
    buf[0] = '\0';
    return UDPC_ERR_TOO_BIG;
  }
  buf[f.len] = '\0';
  return (int)f.len;
}
