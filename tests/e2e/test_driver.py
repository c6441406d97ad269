"""The driver itself: state directory, input handling, signals, logging,
output modes. (Beyond behaviour.md; these pin the brief's driver rules.)"""
import os
import re
import signal
import socket
import stat

import pytest

from conftest import BIN, HAS_DATA_DIR, TIMEOUT, run_cli, wait_listed
from test_grading import chat_ok, mesh


# ---- state directory ----------------------------------------------------

def test_state_credential_file_0600_in_dir_0700(net, tmp_path):
    """R46: 32 random bytes in a state file readable only by the user."""
    s = net.server()
    sd = tmp_path / "deep" / "state"
    x = net.client("Xy_z-1", s, state_dir=str(sd))
    path = sd / "xy_z-1.cred"
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_size == 32
    assert stat.S_IMODE(os.stat(sd).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(sd.parent).st_mode) == 0o700
    assert sorted(os.listdir(sd)) == ["xy_z-1.cred"]  # no temp files left
    x.send("exit")
    assert x.wait() == 0


def test_state_same_credential_reregisters_after_restart(net):
    """R46: the credential is re-used for every later registration."""
    s = net.server()
    x = net.client("x", s)
    cred = open(os.path.join(x.state, "x.cred"), "rb").read()
    x.send("exit")
    x.expect_literal(">>> [Exiting]")
    assert x.wait() == 0
    x2 = net.client("x", s, state_dir=x.state)  # same nick, same credential
    assert open(os.path.join(x.state, "x.cred"), "rb").read() == cred
    x2.send("exit")
    assert x2.wait() == 0


def test_state_default_dir_is_xdg_state_home(net, tmp_path):
    s = net.server()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xdg"))
    x = net.client("x", s, state_dir="", env=env)
    assert os.path.exists(tmp_path / "xdg" / "udpchat" / "x.cred")
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    env.pop("XDG_STATE_HOME", None)
    y = net.client("y", s, state_dir="", env=env)
    assert os.path.exists(tmp_path / "home" / ".local" / "state" /
                          "udpchat" / "y.cred")
    x.send("exit")
    y.send("exit")


def test_state_corrupt_credential_refused_exit_1(tmp_path):
    (tmp_path / "x.cred").write_bytes(b"short")
    os.chmod(tmp_path / "x.cred", 0o600)
    r = run_cli("-c", "x", "127.0.0.1", "5000", "0", "--state-dir", tmp_path)
    assert r.returncode == 1
    assert "corrupt" in r.stderr
    assert (tmp_path / "x.cred").read_bytes() == b"short"  # left alone


def test_state_credential_readable_by_others_refused_exit_1(tmp_path):
    (tmp_path / "x.cred").write_bytes(b"k" * 32)
    os.chmod(tmp_path / "x.cred", 0o644)
    r = run_cli("-c", "x", "127.0.0.1", "5000", "0", "--state-dir", tmp_path)
    assert r.returncode == 1
    assert "chmod 600" in r.stderr


def test_state_dir_not_a_directory_exit_1(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli("-c", "x", "127.0.0.1", "5000", "0", "--state-dir", f)
    assert r.returncode == 1
    assert "state directory" in r.stderr


# ---- input ----------------------------------------------------------------

def test_input_end_of_file_acts_as_exit(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.close_stdin()
    x.expect_literal(">>> [Exiting]")
    assert x.wait() == 0
    wait_listed(y, "x", "offline")


def test_input_last_line_without_newline_is_executed(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.popen.stdin.write(b"send y no newline at the end")
    x.popen.stdin.flush()
    x.close_stdin()
    y.expect_literal(">>> x: no newline at the end")
    assert x.wait() == 0


def test_input_partial_lines_are_joined(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.popen.stdin.write(b"send y hel")
    x.popen.stdin.flush()
    y.assert_no_line(r"x: hel", within=0.3)
    x.popen.stdin.write(b"lo world\r\n")  # CRLF too
    x.popen.stdin.flush()
    y.expect(r"^>>> x: hello world$")


def test_input_line_longer_than_4096_not_truncated(net):
    s = net.server()
    x = net.client("x", s)
    x.send("send x " + "b" * 5000)
    # The whole line reached the parser: the length is exact.
    x.expect_literal(
        ">>> [Message too long: 5000 bytes, the limit is 1100 bytes.]")


def test_input_huge_line_refused_then_client_continues(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("send y " + "c" * 70000)
    x.expect_literal(">>> [Input line longer than 65536 bytes ignored.]")
    chat_ok(x, y, "after the huge line")


def test_input_blank_lines_ignored(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("")
    x.send("   ")
    chat_ok(x, y, "blank lines are fine")


# ---- signals --------------------------------------------------------------

def test_signal_sigint_client_exits_like_exit(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.signal(signal.SIGINT)
    x.expect_literal(">>> [Exiting]")
    assert x.wait() == 0
    wait_listed(y, "x", "offline")


def test_signal_second_sigint_exits_at_once(net):
    s = net.server()
    x = net.client("x", s, "--log-level", "info")
    s.signal(signal.SIGSTOP)  # the dereg of `exit` gets no answer ...
    try:
        x.signal(signal.SIGINT)
        x.expect(r"INFO  signal 2$", stream="err")  # first one handled
        x.signal(signal.SIGINT)  # ... so a second Ctrl-C forces the exit
        x.expect_literal(">>> [Interrupted again: exiting now.]")
        assert x.wait(timeout=2) == 130
    finally:
        s.signal(signal.SIGCONT)


def test_signal_sigterm_server_exits_cleanly(net):
    s = net.server()
    net.client("x", s)
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
    s.expect(r"server stopped", stream="err")
    s.expect(r"stats: rx=\d+", stream="err")


# ---- logging ----------------------------------------------------------------

def test_log_file_with_utc_timestamps_and_levels(net, tmp_path):
    log = tmp_path / "server.log"
    s = net.server("--log-file", log, "--log-level", "debug")
    x = net.client("x", s)
    x.send("exit")
    x.wait()
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
    text = log.read_text()
    lines = text.splitlines()
    assert lines, "empty log"
    rx = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                    r"(ERROR|WARN |INFO |DEBUG) ")
    assert all(rx.match(ln) for ln in lines), lines
    assert "listening on 127.0.0.1:" in text
    assert "DEBUG rx " in text
    assert s.err.text() == ""  # everything went to the file


def test_log_level_error_is_quiet(net):
    s = net.server("--log-level", "error")
    x = net.client("x", s)
    x.send("exit")
    x.wait()
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
    assert s.err.text() == ""


def test_log_file_unwritable_exit_1(tmp_path):
    r = run_cli("-s", "0", "--log-file", tmp_path / "no" / "such" / "f.log")
    assert r.returncode == 1
    assert "cannot open log file" in r.stderr


# ---- output and sockets -----------------------------------------------------

def test_output_plain_mode_no_escape_sequences(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    chat_ok(x, y, "plain text please")
    for ln in x.out.lines + y.out.lines:
        assert "\x1b" not in ln and "\a" not in ln


def test_output_every_line_is_prompt_prefixed(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    chat_ok(x, y, "one")
    x.send("list")
    x.expect(r"^>>> y\s")
    assert re.match(r"^udpchat client x bound to ", x.out.lines[0])
    assert all(ln.startswith(">>> ") for ln in x.out.lines[1:])


def test_client_explicit_port_and_port_in_use(net):
    s = net.server()
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as t:
        t.bind(("::", 0))
        port = t.getsockname()[1]
        busy = net.spawn(["-c", "y", "127.0.0.1", s.port, port,
                          "--state-dir", net.state_dir("y")], "busy")
        assert busy.wait() == 1
        assert busy.out.text() == ""
        busy.expect(r"cannot bind", stream="err")
    x = net.client("x", s, port=port)
    assert x.port == port


def test_client_hostname_localhost_resolves(net):
    s = net.server(bind="::")
    x = net.client("x", s, host="localhost")
    x.send("exit")
    assert x.wait() == 0


def test_interactive_terminal_colors_bell_and_no_color(net, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    s = net.server()
    y = net.client("y", s)
    for no_color, env_nc in ((False, None), (True, None), (False, "1")):
        env = dict(os.environ, TERM="xterm")
        env.pop("NO_COLOR", None)
        if env_nc:
            env["NO_COLOR"] = env_nc
        args = ["-c", "x", "127.0.0.1", str(s.port), "0", "--state-dir",
                str(tmp_path / "x")] + (["--no-color"] if no_color else [])
        child = pexpect.spawn(BIN, args, env=env, timeout=TIMEOUT)
        try:
            child.expect_exact("[Welcome, You are registered.]")
            # its own table (with y) before y's chat can be accepted
            child.expect_exact("[Client table updated.]")
            wait_listed(y, "x")
            y.send("send x \x1b[31mred?")  # refused by y's core: control
            y.expect(r"control character")
            y.send("send x ring ring")
            child.expect_exact("y: ring ring")
            pre = child.before[-16:]
            child.expect_exact("\n")
            post = child.before
            if no_color or env_nc:
                assert pre.endswith(b">>> "), pre
                assert post == b"\r", post
            else:
                assert pre.endswith(b">>> \x1b[1;36m"), pre
                assert post == b"\x1b[0m\x07\r", post
            child.sendline("exit")
            child.expect_exact("[Exiting]")
            child.expect(pexpect.EOF)
        finally:
            if child.isalive():
                child.kill(signal.SIGKILL)
            child.close()
        assert child.exitstatus == 0


def test_server_restart_durable_registrations_silent_reregistration(net):
    """A restarted server (same --data-dir) still knows every nick and its
    credential (R47: nobody can take x meanwhile) and the stored mail; it
    does not know the old sessions, so the next heartbeat gets BAD_SESSION
    and clients register again with their credentials, without a second
    Welcome line (<= 1 heartbeat interval, 10 s), and chat on."""
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    port = s.port
    s.kill()
    x.mark()
    y.mark()
    s2 = net.server(port=port, data_dir=s.data_dir)
    assert s2.port == port
    if HAS_DATA_DIR:
        thief = net.client("x", s2, state_dir=str(net.tmp / "thief"),
                           wait=False)
        thief.expect_literal(
            ">>> [Nick x is already taken by another user.]", timeout=3)
    # Silent re-registration shows only as a fresh table snapshot.
    x.expect_literal(">>> [Client table updated.]", timeout=12)
    y.expect_literal(">>> [Client table updated.]", timeout=12)
    wait_listed(x, "y")
    wait_listed(y, "x")
    chat_ok(x, y, "after the restart")
    assert sum("[Welcome" in ln for ln in x.out.lines) == 1
    y.send("dereg y")
    y.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(x, "y", "offline")
    x.send("send y stored by the new server")
    x.expect_literal(">>> [Messages received by the server and saved]")


def _tty_client(net, tmp_path, s, nick="x", *extra):
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, TERM="xterm")
    env.pop("NO_COLOR", None)
    args = ["-c", nick, "127.0.0.1", str(s.port), "0", "--state-dir",
            str(tmp_path / f"tty-{nick}")] + list(extra)
    child = pexpect.spawn(BIN, args, env=env, timeout=TIMEOUT)
    net.ttys = getattr(net, "ttys", []) + [child]
    child.expect_exact("[Welcome, You are registered.]")
    # the table snapshot: peers' chats are accepted only from table entries
    child.expect_exact("[Client table updated.]")
    return pexpect, child


@pytest.fixture
def tty_cleanup(net):
    yield
    for child in getattr(net, "ttys", []):
        if child.isalive():
            os.kill(child.pid, signal.SIGKILL)
        child.close()


def test_interactive_typed_input_survives_incoming_events(net, tmp_path,
                                                          tty_cleanup):
    s = net.server()
    y = net.client("y", s)
    pexpect, x = _tty_client(net, tmp_path, s)
    wait_listed(y, "x")
    x.send("send y hel")  # typed, not submitted
    x.expect_exact("send y hel")
    y.send("send x interrupting")
    x.expect_exact("y: interrupting")
    # The event line is followed by the prompt with the pending input.
    x.expect_exact(">>> send y hel")
    x.send("lo\r")
    y.expect_literal(">>> x: hello")
    x.expect_exact("[Message received by y.]")
    x.sendcontrol("d")  # Ctrl-D on an empty line: end of input = exit
    x.expect_exact("[Exiting]")
    x.expect(pexpect.EOF)
    x.close()
    assert x.exitstatus == 0


def test_interactive_line_editing_keys(net, tmp_path, tty_cleanup):
    s = net.server()
    y = net.client("y", s)
    pexpect, x = _tty_client(net, tmp_path, s)
    wait_listed(y, "x")
    # Backspace over a two-byte character, Ctrl-W, Ctrl-U, arrow keys.
    x.send("send y caf\u00e9\x7fe!")
    # Cursor keys move (libedit, issue 9): Left then Right is back at the end.
    x.send("\x1b[D\x1b[C")
    x.send(" junk word\x17\x17\r")
    y.expect(r"^>>> x: cafe! $")
    x.send("garbage\x15send y clean\r")
    y.expect_literal(">>> x: clean")
    x.sendline("exit")
    x.expect(pexpect.EOF)


def test_interactive_suspend_restores_terminal_and_resume(net, tmp_path,
                                                          tty_cleanup):
    s = net.server()
    y = net.client("y", s)
    pexpect, x = _tty_client(net, tmp_path, s)
    wait_listed(y, "x")
    assert not x.getecho()  # the line editor owns the echo
    os.kill(x.pid, signal.SIGTSTP)
    deadline = __import__("time").monotonic() + TIMEOUT
    while x.getecho() is False:  # restored before stopping
        assert __import__("time").monotonic() < deadline
        __import__("time").sleep(0.02)
    with open(f"/proc/{x.pid}/stat") as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    assert state == "T"
    os.kill(x.pid, signal.SIGCONT)
    # The client restores its line editor (echo off) when it handles
    # SIGCONT; wait for that (with a deadline) before typing, as a user
    # would see the prompt come back.
    deadline = __import__("time").monotonic() + TIMEOUT
    while x.getecho():
        assert __import__("time").monotonic() < deadline
        __import__("time").sleep(0.02)
    x.send("send y back\r")
    y.expect_literal(">>> x: back")
    assert not x.getecho()
    x.sendline("exit")
    x.expect(pexpect.EOF)


def test_signal_sighup_client_exits_like_exit(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.signal(signal.SIGHUP)  # the terminal went away
    x.expect_literal(">>> [Exiting]")
    assert x.wait() == 0
    wait_listed(y, "x", "offline")


def test_signal_sighup_server_reopens_log_file(net, tmp_path):
    log = tmp_path / "server.log"
    s = net.server("--log-file", log)
    net.client("x", s)
    os.rename(log, tmp_path / "server.log.1")  # logrotate
    s.signal(signal.SIGHUP)
    import time
    deadline = time.monotonic() + TIMEOUT
    while not log.exists():
        assert time.monotonic() < deadline, "log not reopened"
        time.sleep(0.02)
    net.client("y", s)
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
    assert "SIGHUP: log file reopened" in log.read_text()
    assert "server stopped" in log.read_text()
    assert "listening on" in (tmp_path / "server.log.1").read_text()
    assert s.alive() is False


def test_state_same_nick_twice_from_one_state_dir_refused(net):
    s = net.server()
    x = net.client("x", s)
    again = net.spawn(["-c", "x", "127.0.0.1", s.port, 0, "--state-dir",
                       x.state], "client-x-again")
    assert again.wait() == 1
    again.expect(r"nick x is already in use by another udpchat client",
                 stream="err")
    # The first one is undisturbed.
    x.send("list")
    x.expect(rf"^>>> x\s+127\.0\.0\.1\s+{x.port}\s+online$")


def test_input_random_garbage_lines_do_not_crash(net):
    """Random bytes typed or piped (controls, NUL, invalid UTF-8, escape
    sequences, very long words): every line gets a bracketed answer or is
    ignored, the client keeps working and prints only whole lines."""
    import random
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    rnd = random.Random(20261125)
    alphabet = bytes(range(256)).replace(b"\n", b"")
    lines = []
    for i in range(300):
        n = rnd.choice([0, 1, 2, 5, 20, 200, 3000])
        body = bytes(rnd.choice(alphabet) for _ in range(n))
        if rnd.random() < 0.3:
            body = rnd.choice([b"send ", b"reg ", b"dereg ", b"deregA ",
                               b"help ", b"list "]) + body
        lines.append(body)
    x.popen.stdin.write(b"\n".join(lines) + b"\n")
    x.popen.stdin.flush()
    chat_ok(x, y, "still sane")
    assert x.alive() and s.alive()
    for ln in x.out.lines[1:]:
        assert ln.startswith(">>> "), ln


def test_interactive_dumb_terminal_gets_plain_mode(net, tmp_path,
                                                    tty_cleanup):
    pexpect = pytest.importorskip("pexpect")
    s = net.server()
    y = net.client("y", s)
    env = dict(os.environ, TERM="dumb")
    env.pop("NO_COLOR", None)
    x = pexpect.spawn(BIN, ["-c", "x", "127.0.0.1", str(s.port), "0",
                            "--state-dir", str(tmp_path / "x")],
                      env=env, timeout=TIMEOUT)
    import io
    x.logfile_read = transcript = io.BytesIO()
    net.ttys = getattr(net, "ttys", []) + [x]
    x.expect_exact("[Welcome, You are registered.]")
    x.expect_exact("[Client table updated.]")
    wait_listed(y, "x")
    y.send("send x plain please")
    x.expect_exact("y: plain please")
    x.sendline("exit")
    x.expect(pexpect.EOF)
    out = transcript.getvalue()
    assert b"y: plain please" in out
    assert b"\x1b" not in out and b"\x07" not in out, out


def test_input_piped_burst_held_until_ready_not_refused(net):
    """A burst of 150 piped sends, written before the client has even
    registered, is delivered completely and in order: the driver holds
    input lines while the core is not ready (registering, first table
    arriving, 64 chats awaiting ACK) instead of letting them be refused."""
    s = net.server()
    bob = net.client("bob", s)
    alice = net.client("alice", s, wait=False)
    n = 150
    alice.popen.stdin.write(
        b"".join(f"send bob burst {i:03d}\n".encode() for i in range(n)))
    alice.popen.stdin.flush()
    for i in range(n):
        bob.expect_literal(f">>> alice: burst {i:03d}", timeout=30)
    for _ in range(n):
        alice.expect_literal(">>> [Message received by bob.]", timeout=30)
    alice.close_stdin()  # end of input: exit after the held lines ran
    assert alice.wait(timeout=10) == 0
    out = alice.out.text()
    assert "Too many" not in out and "Registration in progress" not in out

