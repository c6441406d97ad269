"""The exact command-line format (behaviour.md "Command lines", grading
"the exact command-line format"): `udpchat -s <port>`,
`udpchat -c <nick> <server-ip> <server-port> <client-port>`; bad arguments
print a clear error and the usage and exit with status 2."""
import re

import pytest

from conftest import run_cli

USAGE = "Usage: udpchat -s <port>"


def assert_usage_error(r, msg_regex):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    first = r.stderr.splitlines()[0]
    assert first.startswith("udpchat: "), r.stderr
    assert re.search(msg_regex, first), first
    assert USAGE in r.stderr
    assert "udpchat -c <nick> <server-ip> <server-port> <client-port>" \
        in r.stderr
    assert r.stdout == ""


def test_cli_help_prints_usage_exit_0():
    r = run_cli("--help")
    assert r.returncode == 0
    assert USAGE in r.stdout
    for opt in ("--operator", "--log-level", "--log-file", "--bind",
                "--state-dir", "--no-color"):
        assert opt in r.stdout
    assert r.stderr == ""


def test_cli_version_exit_0():
    r = run_cli("--version")
    assert r.returncode == 0
    assert re.match(r"^udpchat \d+\.\d+\.\d+", r.stdout)


def test_cli_no_arguments_exit_2_with_usage():
    assert_usage_error(run_cli(), r"missing -s or -c")


@pytest.mark.parametrize("port", ["abc", "80", "1023", "65536", "99999999",
                                  "-1", "", "12a", "1.5"])
def test_cli_bad_port_exit_2_with_usage(port):
    r = run_cli("-s", port)
    assert_usage_error(r, re.escape(f"invalid port '{port}': must be 0 or "
                                    "1024-65535"))


def test_cli_bad_port_message_exact():
    r = run_cli("-s", "abc")
    assert r.stderr.splitlines()[0] == \
        "udpchat: invalid port 'abc': must be 0 or 1024-65535"


@pytest.mark.parametrize("which", [2, 3])
def test_cli_client_bad_ports_exit_2_with_usage(which, tmp_path):
    args = ["-c", "x", "127.0.0.1", "5000", "5001",
            "--state-dir", tmp_path]
    args[which + 1] = "80"
    assert_usage_error(run_cli(*args), r"invalid port '80'")


def test_cli_client_server_port_zero_refused(tmp_path):
    r = run_cli("-c", "x", "127.0.0.1", "0", "0", "--state-dir", tmp_path)
    assert_usage_error(r, r"server port")


def test_cli_server_missing_port_exit_2():
    assert_usage_error(run_cli("-s"), r"-s needs <port>")


def test_cli_server_extra_argument_exit_2():
    assert_usage_error(run_cli("-s", "5000", "6000"), r"exactly one")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_cli_client_wrong_argument_count_exit_2(n, tmp_path):
    args = ["x", "127.0.0.1", "5000", "5001", "extra"][:n]
    r = run_cli("-c", *args, "--state-dir", tmp_path)
    assert r.returncode == 2
    assert USAGE in r.stderr


@pytest.mark.parametrize("nick", ["../x", "a/b", "x y", "", "a" * 33,
                                  "caf\u00e9", "."])
def test_cli_invalid_nick_exit_2(nick, tmp_path):
    r = run_cli("-c", nick, "127.0.0.1", "5000", "0", "--state-dir",
                tmp_path)
    assert_usage_error(r, r"invalid nick")
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


def test_cli_unknown_option_exit_2():
    assert_usage_error(run_cli("-s", "0", "--frobnicate"),
                       r"unknown option '--frobnicate'")
    assert_usage_error(run_cli("-x"), r"unknown option '-x'")


def test_cli_both_modes_refused():
    assert_usage_error(run_cli("-s", "0", "-c", "x"), r"only one of -s")


def test_cli_option_for_other_mode_refused(tmp_path):
    assert_usage_error(run_cli("-s", "0", "--state-dir", tmp_path),
                       r"client \(-c\) only")
    assert_usage_error(run_cli("-c", "x", "127.0.0.1", "5000", "0",
                               "--operator", "x"), r"server \(-s\) only")


def test_cli_bad_log_level_exit_2():
    assert_usage_error(run_cli("-s", "0", "--log-level", "loud"),
                       r"invalid log level 'loud'")


def test_cli_option_missing_value_exit_2():
    assert_usage_error(run_cli("-s", "0", "--operator"), r"needs a value")


def test_cli_bad_operator_nick_exit_2():
    assert_usage_error(run_cli("-s", "0", "--operator", "../evil"),
                       r"invalid operator nick")


def test_cli_unresolvable_server_host_exit_1(tmp_path):
    r = run_cli("-c", "x", "no-such-host.invalid", "5000", "0",
                "--state-dir", tmp_path)
    assert r.returncode == 1
    assert "cannot resolve 'no-such-host.invalid'" in r.stderr


def test_cli_server_port_in_use_exit_1(net):
    s = net.server()
    r = run_cli("-s", s.port, "--bind", "127.0.0.1")
    assert r.returncode == 1
    assert "cannot bind" in r.stderr


def test_cli_server_prints_listening_address_on_stdout(net):
    s = net.server()
    assert s.addr == "127.0.0.1" and 1024 <= s.port <= 65535
    assert s.out.lines[0] == f"udpchat server listening on 127.0.0.1:{s.port}"


def test_cli_server_explicit_port(net):
    # Pick a free port by binding 0, then ask the server for it.
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as t:
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
    s = net.server(port=port)
    assert s.port == port


def test_cli_client_shows_prompt_after_valid_arguments(net):
    s = net.server()
    c = net.client("x", s)
    lines = c.out.lines
    assert re.match(r"^udpchat client x bound to \S+:\d+$", lines[0])
    # The prompt ">>> " follows; every later line starts with it.
    assert all(ln.startswith(">>> ") for ln in lines[1:]), lines
    assert lines[1] == ">>> [Welcome, You are registered.]"


def test_cli_client_nick_case_folded(net):
    s = net.server()
    c = net.client("X", s)
    assert c.out.lines[0].startswith("udpchat client x bound to ")


@pytest.mark.parametrize("server,bind", [("::1", "127.0.0.1"),
                                         ("127.0.0.1", "::1")])
def test_cli_client_bind_family_mismatch_exit_1(server, bind, tmp_path):
    r = run_cli("-c", "x", server, "5000", "0", "--bind", bind,
                "--state-dir", tmp_path)
    assert r.returncode == 1
    assert f"cannot reach server '{server}'" in r.stderr


@pytest.mark.parametrize("opt", ["--max-clients", "--mail-per-recipient",
                                 "--mail-total"])
@pytest.mark.parametrize("val", ["0", "-1", "x", "4294967296", ""])
def test_cli_bad_count_exit_2(opt, val):
    assert_usage_error(run_cli("-s", "0", opt, val),
                       re.escape(f"invalid count '{val}'"))


@pytest.mark.parametrize("opt", ["--source-rate", "--source-burst",
                                 "--session-rate", "--session-burst"])
@pytest.mark.parametrize("val", ["0", "-1", "x", "4294967296", "",
                                 "Unlimited"])
def test_cli_bad_rate_limit_exit_2(opt, val):
    assert_usage_error(run_cli("-s", "0", opt, val),
                       re.escape(f"invalid {opt} '{val}': must be "
                                 "1-4294967295 or unlimited"))


def test_cli_rate_limits_are_server_options():
    assert_usage_error(run_cli("-c", "x", "127.0.0.1", "5000", "0",
                               "--session-rate", "5"), r"server \(-s\) only")
