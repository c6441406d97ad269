/* udpc_args.c - see udpc_args.h. */
#include "udpc_args.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "udpc_fs.h"
#include "udpc_log.h"
#include "udpc_net.h"
#include "udpc_srvstore.h"
#include "udpc_term.h"

/* Writes the reason into err and returns UDPC_ARGS_ERROR. */
static int args_error(char *err, size_t cap, const char *fmt, const char *arg)
    __attribute__((format(printf, 3, 0)));

static int args_error(char *err, size_t cap, const char *fmt, const char *arg) {
  udpc_fs_err(err, cap, fmt, arg);
  return UDPC_ARGS_ERROR;
}

/* A count option: decimal 1..4294967295. */
static int parse_count(const char *s, uint32_t *out) {
  uint64_t v = 0;
  if (s[0] == '\0') return -1;
  for (const char *p = s; *p != '\0'; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > UINT32_MAX) return -1;
  }
  if (v == 0) return -1;
  *out = (uint32_t)v;
  return 0;
}

/* A rate-limit option: a count, or "unlimited" (UINT32_MAX: no limit). */
static int parse_limit(const char *s, uint32_t *out) {
  if (strcmp(s, "unlimited") == 0) {
    *out = UINT32_MAX;
    return 0;
  }
  return parse_count(s, out);
}

/* A numeric option: where its value goes; `unlimited`: the word
 * "unlimited" is allowed too (a rate limit switched off). */
typedef struct {
  const char *name;
  uint32_t *dst;
  int unlimited;
} num_opt;

static int num_opt_index(const num_opt *t, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(t[i].name, name) == 0) return (int)i;
  return -1;
}

typedef struct {
  const char *name;
  int takes_value;
  int where; /* 1 server, 2 client, 3 both */
} long_opt;

static const long_opt long_opts[] = {
    {"help", 0, 3},         {"version", 0, 3},
    {"bind", 1, 3},         {"operator", 1, 1},
    {"max-clients", 1, 1},  {"mail-per-recipient", 1, 1},
    {"mail-total", 1, 1},   {"log-level", 1, 3},
    {"log-file", 1, 3},     {"state-dir", 1, 2},
    {"no-color", 0, 2},     {"timestamps", 1, 2},
    {"notify-cmd", 1, 2},   {"no-history", 0, 2},
    {"mail-quota", 1, 1},   {"store", 1, 1},
    {"data-dir", 1, 1},     {"mail-expiry-days", 1, 1},
    {"source-rate", 1, 1},  {"source-burst", 1, 1},
    {"session-rate", 1, 1}, {"session-burst", 1, 1},
};

static const long_opt *find_long(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof long_opts / sizeof long_opts[0]; i++)
    if (strlen(long_opts[i].name) == len &&
        memcmp(long_opts[i].name, name, len) == 0)
      return &long_opts[i];
  return NULL;
}

int udpc_args_parse(udpc_args *out, int argc, char **argv, char *err,
                    size_t err_cap) {
  memset(out, 0, sizeof *out);
  char mode = 0; /* 's' or 'c' */
  const char *pos[8];
  int n_pos = 0;
  int end_of_opts = 0;
  const char *bind = NULL, *log_file = NULL, *state_dir = NULL;
  uint32_t max_clients = 0, mail_per_recipient = 0, mail_total = 0;
  uint32_t mail_expiry_days = 0;
  uint32_t source_rate = 0, source_burst = 0;
  uint32_t session_rate = 0, session_burst = 0;
  const char *data_dir = NULL;
  int store_kind = 0;
  const char *log_level_name = NULL;
  int no_color = 0;
  int timestamps = UDPC_TS_AUTO, no_history = 0;
  const char *notify_cmd = NULL;
  const char *first_server_only = NULL, *first_client_only = NULL;
  udpc_nick *op_nicks = out->op_nicks;
  const char **ops = out->ops;
  size_t n_ops = 0;
  /* The numeric server options. */
  const num_opt num_opts[] = {
      {"max-clients", &max_clients, 0},
      {"mail-per-recipient", &mail_per_recipient, 0},
      {"mail-quota", &mail_per_recipient, 0},
      {"mail-total", &mail_total, 0},
      {"mail-expiry-days", &mail_expiry_days, 0},
      {"source-rate", &source_rate, 1},
      {"source-burst", &source_burst, 1},
      {"session-rate", &session_rate, 1},
      {"session-burst", &session_burst, 1},
  };

  /* --help and --version win over everything else. */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
      return UDPC_ARGS_HELP;
    if (strcmp(argv[i], "--version") == 0) return UDPC_ARGS_VERSION;
  }

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!end_of_opts && strcmp(a, "--") == 0) {
      end_of_opts = 1;
      continue;
    }
    if (!end_of_opts && strncmp(a, "--", 2) == 0) {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
      const long_opt *lo = find_long(name, name_len);
      int num;
      if (lo == NULL) return args_error(err, err_cap, "unknown option '%s'", a);
      const char *val = NULL;
      if (lo->takes_value) {
        if (eq != NULL) {
          val = eq + 1;
        } else if (i + 1 < argc) {
          val = argv[++i];
        } else {
          return args_error(err, err_cap, "option '%s' needs a value", a);
        }
      } else if (eq != NULL) {
        return args_error(err, err_cap, "option '%s' takes no value", a);
      }
      if (lo->where == 1 && first_server_only == NULL) first_server_only = a;
      if (lo->where == 2 && first_client_only == NULL) first_client_only = a;
      if (strcmp(lo->name, "bind") == 0) {
        if (val[0] == '\0')
          return args_error(err, err_cap, "%s", "empty --bind address");
        bind = val;
      } else if (strcmp(lo->name, "operator") == 0) {
        if (n_ops >= UDPC_ARGS_MAX_OPERATORS)
          return args_error(err, err_cap, "%s",
                            "too many --operator options (max 64)");
        if (udpc_nick_from_input(&op_nicks[n_ops], val, strlen(val)) != 0)
          return args_error(err, err_cap,
                            "invalid operator nick '%s': use 1-32 of a-z "
                            "0-9 _ -",
                            val);
        ops[n_ops] = op_nicks[n_ops].s;
        n_ops++;
      } else if ((num = num_opt_index(num_opts,
                                      sizeof num_opts / sizeof num_opts[0],
                                      lo->name)) >= 0) {
        if (!num_opts[num].unlimited) {
          if (parse_count(val, num_opts[num].dst) != 0)
            return args_error(err, err_cap,
                              "invalid count '%s': must be 1-4294967295", val);
        } else if (parse_limit(val, num_opts[num].dst) != 0) {
          udpc_fs_err(err, err_cap,
                      "invalid --%s '%s': must be 1-4294967295 or unlimited",
                      lo->name, val);
          return UDPC_ARGS_ERROR;
        }
      } else if (strcmp(lo->name, "log-level") == 0) {
        if (udpc_log_level_parse(val) < 0)
          return args_error(err, err_cap,
                            "invalid log level '%s': use error, warn, info "
                            "or debug",
                            val);
        log_level_name = val;
      } else if (strcmp(lo->name, "log-file") == 0) {
        if (val[0] == '\0')
          return args_error(err, err_cap, "%s", "empty --log-file path");
        log_file = val;
      } else if (strcmp(lo->name, "store") == 0) {
        store_kind = udpc_srvstore_parse(val);
        if (store_kind < 0)
          return args_error(err, err_cap,
                            "invalid --store '%s': use sqlite or memory", val);
      } else if (strcmp(lo->name, "data-dir") == 0) {
        if (val[0] == '\0')
          return args_error(err, err_cap, "%s", "empty --data-dir path");
        data_dir = val;
      } else if (strcmp(lo->name, "state-dir") == 0) {
        if (val[0] == '\0')
          return args_error(err, err_cap, "%s", "empty --state-dir path");
        state_dir = val;
      } else if (strcmp(lo->name, "no-color") == 0) {
        no_color = 1;
      } else if (strcmp(lo->name, "timestamps") == 0) {
        if (strcmp(val, "off") == 0)
          timestamps = UDPC_TS_OFF;
        else if (strcmp(val, "local") == 0)
          timestamps = UDPC_TS_LOCAL;
        else if (strcmp(val, "utc") == 0)
          timestamps = UDPC_TS_UTC;
        else
          return args_error(err, err_cap,
                            "invalid --timestamps '%s': use off, local or "
                            "utc",
                            val);
      } else if (strcmp(lo->name, "notify-cmd") == 0) {
        if (strspn(val, " \t") == strlen(val))
          return args_error(err, err_cap, "%s", "empty --notify-cmd command");
        notify_cmd = val;
      } else if (strcmp(lo->name, "no-history") == 0) {
        no_history = 1;
      }
      continue;
    }
    if (!end_of_opts && (strcmp(a, "-s") == 0 || strcmp(a, "-c") == 0)) {
      if (mode != 0)
        return args_error(err, err_cap, "%s", "give only one of -s and -c");
      mode = a[1];
      continue;
    }
    /* "-5" is a (bad) port, not an option. */
    if (!end_of_opts && a[0] == '-' && a[1] != '\0' &&
        !(a[1] >= '0' && a[1] <= '9'))
      return args_error(err, err_cap, "unknown option '%s'", a);
    if (n_pos >= (int)(sizeof pos / sizeof pos[0]))
      return args_error(err, err_cap, "too many arguments ('%s')", a);
    pos[n_pos++] = a;
  }

  if (mode == 0) {
    if (argc <= 1) return args_error(err, err_cap, "%s", "missing -s or -c");
    return args_error(err, err_cap, "%s",
                      "missing -s <port> or -c <nick> <server-ip> "
                      "<server-port> <client-port>");
  }

  if (mode == 's') {
    if (n_pos != 1)
      return args_error(err, err_cap, "%s",
                        n_pos < 1 ? "-s needs <port>"
                                  : "-s takes exactly one <port>");
    if (first_client_only != NULL)
      return args_error(err, err_cap, "option '%s' is for the client (-c) only",
                        first_client_only);
    udpc_srvapp_opts so;
    memset(&so, 0, sizeof so);
    char perr[256];
    if (udpc_net_parse_port(pos[0], &so.port, perr, sizeof perr) != 0)
      return args_error(err, err_cap, "%s", perr);
    so.bind = bind;
    so.operators = ops;
    so.n_operators = n_ops;
    so.max_clients = max_clients;
    so.mail_per_recipient = mail_per_recipient;
    so.mail_total = mail_total;
    so.store = store_kind;
    so.data_dir = data_dir;
    so.mail_expiry_days = mail_expiry_days;
    so.source_rate = source_rate;
    so.source_burst = source_burst;
    so.session_rate = session_rate;
    so.session_burst = session_burst;
    so.log_level = log_level_name != NULL ? udpc_log_level_parse(log_level_name)
                                          : UDPC_LOG_INFO;
    so.log_file = log_file;
    out->srv = so;
    return UDPC_ARGS_SERVER;
  }

  if (n_pos != 4)
    return args_error(err, err_cap, "%s",
                      "-c needs <nick> <server-ip> <server-port> "
                      "<client-port>");
  if (first_server_only != NULL)
    return args_error(err, err_cap, "option '%s' is for the server (-s) only",
                      first_server_only);
  udpc_cliapp_opts co;
  memset(&co, 0, sizeof co);
  char perr[256];
  if (udpc_nick_from_input(&co.nick, pos[0], strlen(pos[0])) != 0)
    return args_error(err, err_cap,
                      "invalid nick '%s': use 1-32 of a-z 0-9 _ -", pos[0]);
  if (pos[1][0] == '\0')
    return args_error(err, err_cap, "%s", "empty <server-ip>");
  co.server_host = pos[1];
  if (udpc_net_parse_port(pos[2], &co.server_port, perr, sizeof perr) != 0)
    return args_error(err, err_cap, "%s", perr);
  if (co.server_port == 0)
    return args_error(err, err_cap, "%s",
                      "invalid server port '0': the server's port "
                      "must be 1024-65535");
  if (udpc_net_parse_port(pos[3], &co.client_port, perr, sizeof perr) != 0)
    return args_error(err, err_cap, "%s", perr);
  co.bind = bind;
  co.state_dir = state_dir;
  co.no_color = no_color;
  co.timestamps = timestamps;
  co.notify_cmd = notify_cmd;
  co.no_history = no_history;
  co.log_level = log_level_name != NULL ? udpc_log_level_parse(log_level_name)
                                        : UDPC_LOG_ERROR;
  co.log_file = log_file;
  out->cli = co;
  return UDPC_ARGS_CLIENT;
}
