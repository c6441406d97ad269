/*
 * udpc_fs.h - small file-system and error-text helpers shared by the
 * driver modules (state directory, server data directory, sockets). Error
 * text goes into the caller's buffer, as in redis anet.
 */
#ifndef UDPC_FS_H
#define UDPC_FS_H

#include <stddef.h>

/* printf into err[0..cap) (NUL-terminated); a no-op when err is NULL or
 * cap is 0. */
void udpc_fs_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* mkdir -p: creates every missing component of dir with mode 0700, then
 * checks that dir is a directory. `what` names it in errors ("state
 * directory"). Returns 0, or -1 with the reason in err. */
int udpc_fs_mkdirs(const char *dir, const char *what, char *err, size_t cap);

#endif /* UDPC_FS_H */
