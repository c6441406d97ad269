/*
 * udpc_err.c - English text for every udpc_err code.
 */
#include "udpchat.h"

const char *udpc_strerror(int err) {
  switch (err) {
    case UDPC_OK: return "success";
    case UDPC_ERR_TRUNCATED: return "datagram ends inside a field (truncated)";
    case UDPC_ERR_TRAILING: return "unexpected bytes after the last field";
    case UDPC_ERR_VERSION: return "unsupported protocol version (not 1)";
    case UDPC_ERR_TYPE: return "unknown packet type";
    case UDPC_ERR_LENGTH: return "length or count field out of range";
    case UDPC_ERR_UTF8: return "text is not valid UTF-8";
    case UDPC_ERR_CONTROL: return "text contains a control character";
    case UDPC_ERR_NICK: return "invalid nick (must be 1-32 of a-z 0-9 _ -)";
    case UDPC_ERR_VALUE: return "field holds an invalid value";
    case UDPC_ERR_TOO_BIG:
      return "too big for the buffer or the 1200-byte datagram limit";
    case UDPC_ERR_NOMEM: return "out of memory or fixed capacity full";
    case UDPC_ERR_ARG: return "invalid argument";
    case UDPC_ERR_STORE: return "the store failed to commit";
    case UDPC_ERR_STATE: return "operation not valid in the current state";
    case UDPC_ERR_NOT_FOUND: return "no such entry";
    default: return "unknown error";
  }
}
