/*
 * udpc_notify.c - desktop notifier for incoming messages (see
 * udpc_notify.h).
 */
#include "udpc_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_BURST 5.0
#define NOTIFY_PER_SEC 1.0
#define NOTIFY_TEXT_MAX 2048

int udpc_notify_init(udpc_notify *n, const char *cmd, char *err,
                     size_t err_cap) {
  memset(n, 0, sizeof *n);
  n->words = strdup(cmd);
  if (n->words == NULL) {
    snprintf(err, err_cap, "out of memory");
    return -1;
  }
  for (char *p = n->words; *p != '\0';) {
    while (*p == ' ' || *p == '\t') *p++ = '\0';
    if (*p == '\0') break;
    if (n->n_words >= UDPC_NOTIFY_ARGS_MAX) {
      snprintf(err, err_cap, "--notify-cmd: more than %d words",
               UDPC_NOTIFY_ARGS_MAX);
      udpc_notify_free(n);
      return -1;
    }
    n->argv[n->n_words++] = p;
    while (*p != '\0' && *p != ' ' && *p != '\t') p++;
  }
  if (n->n_words == 0) {
    snprintf(err, err_cap, "--notify-cmd: empty command");
    udpc_notify_free(n);
    return -1;
  }
  n->tokens = NOTIFY_BURST;
  return 0;
}

void udpc_notify_free(udpc_notify *n) {
  free(n->words);
  memset(n, 0, sizeof *n);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* In the grandchild: a clean process for the notifier. */
static void child_exec(char **argv) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int s = 1; s < NSIG; s++) {
    if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
  }
  int fd = open("/dev/null", O_RDWR);
  if (fd >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2) close(fd);
  }
  setsid();
  execvp(argv[0], argv);
  _exit(127);
}

void udpc_notify_run(udpc_notify *n, const char *sender, const char *text,
                     size_t text_len) {
  if (n->words == NULL) return;
  uint64_t now = mono_ms();
  if (n->last_ms != 0) {
    n->tokens += (double)(now - n->last_ms) / 1000.0 * NOTIFY_PER_SEC;
    if (n->tokens > NOTIFY_BURST) n->tokens = NOTIFY_BURST;
  }
  n->last_ms = now;
  if (n->tokens < 1.0) return;
  n->tokens -= 1.0;

  char body[NOTIFY_TEXT_MAX + 1];
  if (text_len > NOTIFY_TEXT_MAX) text_len = NOTIFY_TEXT_MAX;
  for (size_t i = 0; i < text_len; i++) {
    unsigned char c = (unsigned char)text[i];
    body[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  body[text_len] = '\0';
  size_t k = n->n_words;
  if (sender[0] == '-' || body[0] == '-') n->argv[k++] = (char *)"--";
  n->argv[k++] = (char *)sender;
  n->argv[k++] = body;
  n->argv[k] = NULL;

  pid_t pid = fork();
  if (pid == 0) {
    pid_t gc = fork();
    if (gc == 0) child_exec(n->argv);
    _exit(gc < 0 ? 1 : 0);
  }
  n->argv[n->n_words] = NULL;
  if (pid < 0) return;
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
}
