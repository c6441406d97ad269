/*
 * replay.c - the driver linked with every harness when it is NOT built for
 * libFuzzer (libFuzzer brings its own main):
 *
 *   fuzz_<target>_replay FILE|DIR...   run every file given (directories:
 *       every regular file inside, sorted by name) once through
 *       LLVMFuzzerTestOneInput; exit 0 if all ran, 1 if none was found.
 *       A failing oracle or sanitizer aborts the process (ctest: failure).
 *
 * Built with afl-clang-fast (ci/fuzz --afl), the same file is also AFL++'s
 * persistent-mode driver: with no argument, it loops over test cases
 * delivered in shared memory (__AFL_LOOP / __AFL_FUZZ_TESTCASE_BUF).
 * Every test case is copied into an exact-size heap buffer so that ASan
 * sees any read past its end.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

#ifdef __AFL_FUZZ_TESTCASE_LEN
#include <unistd.h> /* read(), used by __AFL_FUZZ_TESTCASE_LEN */
__AFL_FUZZ_INIT();
#endif

static int run_buffer(const uint8_t *p, size_t n) {
  uint8_t *copy = malloc(n > 0 ? n : 1);
  if (copy == NULL) return -1;
  if (n > 0) memcpy(copy, p, n);
  (void)LLVMFuzzerTestOneInput(copy, n);
  free(copy);
  return 0;
}

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  if (buf == NULL) {
    fclose(f);
    return -1;
  }
  for (;;) {
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    if (got == 0) break;
    n += got;
  }
  fclose(f);
  int rc = run_buffer(buf, n);
  free(buf);
  return rc;
}

static int skip_name(const struct dirent *d) { return d->d_name[0] != '.'; }

static int g_io_errors;

/* Returns the number of inputs run; counts I/O errors in g_io_errors. */
static long run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    g_io_errors++;
    return 0;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (run_file(path) == 0) return 1;
    g_io_errors++;
    return 0;
  }
  struct dirent **names = NULL;
  int n = scandir(path, &names, skip_name, alphasort);
  if (n < 0) {
    perror(path);
    g_io_errors++;
    return 0;
  }
  long total = 0;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
    char *sub = malloc(len);
    if (sub != NULL) {
      snprintf(sub, len, "%s/%s", path, names[i]->d_name);
      struct stat sst;
      if (stat(sub, &sst) == 0 && S_ISREG(sst.st_mode)) {
        if (run_file(sub) == 0)
          total++;
        else
          g_io_errors++;
      }
      free(sub);
    }
    free(names[i]);
  }
  free(names);
  return total;
}

int main(int argc, char **argv) {
#ifdef __AFL_FUZZ_TESTCASE_LEN
  if (argc < 2) {
    __AFL_INIT();
    const unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
    while (__AFL_LOOP(10000)) {
      int len = __AFL_FUZZ_TESTCASE_LEN;
      if (len >= 0) (void)run_buffer(buf, (size_t)len);
    }
    return 0;
  }
#endif
  long total = 0;
  for (int i = 1; i < argc; i++) total += run_path(argv[i]);
  printf("%s: %ld inputs replayed\n", argc > 0 ? argv[0] : "replay", total);
  if (g_io_errors > 0) return 2;
  return total > 0 ? 0 : 1;
}
