/*
 * udpc_guard.h - internal guard macros for the protocol core.
 *
 * They let the happy path read straight down: every fallible step is one
 * line, and the first failure returns its (negative) udpc_err to the caller.
 */
#ifndef UDPC_GUARD_H
#define UDPC_GUARD_H

/* Evaluate expr (an int-returning call); if it is negative, return it. */
#define UDPC_GUARD(expr)                           \
  do {                                             \
    int udpc_guard_rc_ = (expr);                   \
    if (udpc_guard_rc_ < 0) return udpc_guard_rc_; \
  } while (0)

/* If cond does not hold, return err (a negative udpc_err). */
#define UDPC_ENSURE(cond, err) \
  do {                         \
    if (!(cond)) return (err); \
  } while (0)

#endif /* UDPC_GUARD_H */
