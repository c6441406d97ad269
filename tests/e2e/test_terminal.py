"""The interactive client on a real pseudo-terminal (issue 9).

The client runs under pexpect.spawn (a pty, 80x24); everything it writes is
fed to a terminal emulator (pyte, Debian's python3-pyte) so the tests check
what a user would SEE on the screen, not just the bytes: typed text is never
garbled by incoming messages, history and Tab completion work, colors
follow NO_COLOR / --no-color, timestamps are shown. The peers are plain
pipe clients from conftest.py (so the pipe mode is checked on the side).
"""
import os
import re
import signal
import stat
import time

import pytest

from conftest import BIN, TIMEOUT, wait_listed

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")

SGR = re.compile(rb"\x1b\[[0-9;]*m")
ROWS, COLS = 24, 80


class Tty:
    """udpchat on a pty, its output rendered by a pyte screen."""

    def __init__(self, args, env, name="tty"):
        self.name = name
        self.child = pexpect.spawn(BIN, [str(a) for a in args], env=env,
                                   timeout=TIMEOUT, dimensions=(ROWS, COLS))
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""

    def pump(self, wait=0.05):
        """Read whatever the client wrote (up to `wait` s) into the screen."""
        try:
            while True:
                data = self.child.read_nonblocking(65536, timeout=wait)
                self.raw += data
                self.stream.feed(data)
                wait = 0.01
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            pass

    def lines(self):
        return [ln.rstrip() for ln in self.screen.display]

    def cursor_line(self):
        return self.screen.display[self.screen.cursor.y].rstrip()

    def wait_screen(self, pred, what, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            if pred(self):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: screen never showed {what}\n"
                    + "\n".join(f"|{ln}" for ln in self.lines())
                    + f"\nraw tail: {self.raw[-600:]!r}")

    def wait_line(self, rx, timeout=TIMEOUT):
        r = re.compile(rx)
        self.wait_screen(lambda t: any(r.search(ln) for ln in t.lines()),
                         f"a line matching {rx!r}", timeout)

    def wait_input(self, text, timeout=TIMEOUT):
        """The cursor's row is the prompt with exactly `text` typed, and the
        cursor is at its end."""
        want = ">>> " + text

        def ok(t):
            return (t.cursor_line() == want.rstrip()
                    and t.screen.cursor.x == len(want) % COLS)
        self.wait_screen(ok, f"the input line {want!r}", timeout)

    def send(self, s):
        self.child.send(s)

    def close(self):
        if self.child.isalive():
            os.kill(self.child.pid, signal.SIGKILL)
        self.child.close()


@pytest.fixture
def ttys():
    started = []
    yield started
    for t in started:
        t.close()


def spawn_tty(ttys, s, tmp_path, nick="x", *extra, env_extra=None,
              no_color_env=False, state=None):
    env = dict(os.environ, TERM="xterm", LANG="C.UTF-8")
    env.pop("NO_COLOR", None)
    env.pop("LC_ALL", None)
    env["HOME"] = str(tmp_path)  # no ~/.editrc of the machine
    if no_color_env:
        env["NO_COLOR"] = "1"
    if env_extra:
        env.update(env_extra)
    state = state or str(tmp_path / f"tty-{nick}")
    t = Tty(["-c", nick, "127.0.0.1", s.port, 0, "--state-dir", state]
            + list(extra), env, name=f"tty-{nick}")
    ttys.append(t)
    t.wait_line(r"\[Welcome, You are registered\.\]")
    # its table snapshot: chat is accepted only from peers in the table
    t.wait_line(r"\[Client table updated\.\]")
    t.wait_input("")
    return t


def exit_tty(t):
    t.send("\x04")  # Ctrl-D on an empty line: end of input = exit
    t.child.expect(pexpect.EOF)
    t.pump()
    t.child.close()
    assert t.child.exitstatus == 0


def test_terminal_incoming_message_printed_above_intact_typed_line(
        net, tmp_path, ttys):
    s = net.server()
    y = net.client("y", s)
    x = spawn_tty(ttys, s, tmp_path)
    wait_listed(y, "x")
    x.send("send y half of it")
    x.wait_input("send y half of it")
    y.send("send x an incoming message")
    # The message appears on its own line ABOVE the input, which is
    # redrawn intact on the line below, cursor at its end.
    x.wait_line(r">>> y: an incoming message$")
    x.wait_input("send y half of it")
    rows = x.lines()
    i = next(k for k, ln in enumerate(rows)
             if ln.endswith(">>> y: an incoming message"))
    assert rows[x.screen.cursor.y] == ">>> send y half of it"
    assert x.screen.cursor.y > i
    assert not any("half of it" in ln for ln in rows[:x.screen.cursor.y])
    # More messages while typing, then finish the line: the peer gets it
    # whole.
    for k in range(3):
        y.send(f"send x burst {k}")
        x.wait_line(rf">>> y: burst {k}$")
    x.wait_input("send y half of it")
    x.send(", the rest\r")
    y.expect_literal(">>> x: half of it, the rest")
    x.wait_line(r">>> \[Message received by y\.\]$")
    # The entered line stays on screen as the user's own line.
    x.wait_line(r"\d\d:\d\d >>> send y half of it, the rest$")
    x.wait_input("")
    exit_tty(x)


def test_terminal_long_wrapped_input_survives_incoming_message(
        net, tmp_path, ttys):
    s = net.server()
    y = net.client("y", s)
    x = spawn_tty(ttys, s, tmp_path)
    wait_listed(y, "x")
    text = "send y " + " ".join(f"w{k:03d}" for k in range(40))  # 3 rows
    x.send(text)
    x.wait_screen(lambda t: "w039" in t.cursor_line(), "the typed end")
    y.send("send x over a wrapped line")
    x.wait_line(r">>> y: over a wrapped line$")
    x.wait_screen(lambda t: "w039" in t.cursor_line(), "the typed end")
    joined = "".join(x.lines()[x.screen.cursor.y - 2:x.screen.cursor.y + 1])
    assert ">>> " + text in joined
    assert sum("w000" in ln for ln in x.lines()) == 1  # drawn once
    x.send("\r")
    y.expect_literal(">>> x: " + text[len("send y "):])
    exit_tty(x)


def test_terminal_multi_line_paste_sends_every_line(net, tmp_path, ttys):
    s = net.server()
    y = net.client("y", s)
    x = spawn_tty(ttys, s, tmp_path)
    wait_listed(y, "x")
    x.send("".join(f"send y pasted {k}\r" for k in range(20)))
    for k in range(20):
        y.expect_literal(f">>> x: pasted {k}")
    x.wait_input("")
    exit_tty(x)


def test_terminal_history_up_arrow_and_kept_across_runs(net, tmp_path,
                                                        ttys):
    s = net.server()
    y = net.client("y", s)
    x = spawn_tty(ttys, s, tmp_path)
    wait_listed(y, "x")
    x.send("send y first line\r")
    y.expect_literal(">>> x: first line")
    x.send("list\r")
    x.wait_input("")
    x.send("\x1b[A")  # Up: the last line
    x.wait_input("list")
    x.send("\x1b[A")  # Up again: the one before
    x.wait_input("send y first line")
    x.send(" again\r")
    y.expect_literal(">>> x: first line again")
    exit_tty(x)
    hist = tmp_path / "tty-x" / "x.history"
    assert hist.exists()
    assert stat.S_IMODE(hist.stat().st_mode) == 0o600
    # libedit's format: a header line, then strvis(3)-encoded lines
    assert "first\\040line\\040again" in hist.read_text()
    # A new run of the same nick recalls it.
    x2 = spawn_tty(ttys, s, tmp_path)
    x2.send("\x1b[A")
    x2.wait_input("send y first line again")
    x2.send("\x15")  # Ctrl-U: kill the line
    x2.wait_input("")
    exit_tty(x2)
    x3 = spawn_tty(ttys, s, tmp_path)
    x3.send("sen\x12")  # Ctrl-R: the latest line starting with "sen"
    x3.wait_input("send y first line again")
    x3.send("\x12")  # again: the one before
    x3.wait_input("send y first line")
    x3.send("\x15")
    x3.wait_input("")
    exit_tty(x3)


def test_terminal_no_history_option_writes_no_file(net, tmp_path, ttys):
    s = net.server()
    x = spawn_tty(ttys, s, tmp_path, "x", "--no-history")
    x.send("list\r")
    x.wait_line(r">>> .*nick\s+ip\s+port\s+status")
    x.wait_input("")
    x.send("\x1b[A")  # still recalled within the run
    x.wait_input("list")
    x.send("\x15")
    exit_tty(x)
    assert not (tmp_path / "tty-x" / "x.history").exists()


def test_terminal_tab_completes_commands_and_nicks(net, tmp_path, ttys):
    s = net.server()
    bob = net.client("bob_the_builder", s)
    net.client("bobcat", s)
    x = spawn_tty(ttys, s, tmp_path)
    wait_listed(bob, "x")
    x.send("se\t")
    x.wait_input("send ")
    x.send("bob_\t")  # unique: completed with a space
    x.wait_input("send bob_the_builder ")
    x.send("hi from tab\r")
    bob.expect_literal(">>> x: hi from tab")
    x.send("send bo\t")  # ambiguous: the common part, then candidates
    x.wait_input("send bob")
    x.send("\t")
    x.wait_line(r"\[bob_the_builder bobcat\]$")
    x.wait_input("send bob")
    x.send("\x15dere\t")  # dereg / deregA: common prefix
    x.wait_input("dereg")
    x.send("\x15help de\t")
    x.wait_input("help dereg")
    x.send("A\r")
    x.wait_line(r"deregA")
    x.wait_input("")
    exit_tty(x)


def test_terminal_colors_and_timestamps_by_default(net, tmp_path, ttys):
    s = net.server()
    y = net.client("y", s)
    x = spawn_tty(ttys, s, tmp_path)
    wait_listed(y, "x")
    y.send("send x colorful")
    x.wait_line(r"^\d\d:\d\d >>> y: colorful$")
    assert re.search(rb">>> \x1b\[1;36my: colorful\x1b\[0m\x07", x.raw)
    assert re.search(rb"\x1b\[33m\[Welcome, You are registered\.\]", x.raw)
    # Status, incoming and own lines have distinct colors.
    x.send("send y mine\r")
    x.wait_line(r">>> \[Message received by y\.\]$")
    assert re.search(rb"\x1b\[32msend y mine\x1b\[0m", x.raw)
    exit_tty(x)


@pytest.mark.parametrize("how", ["env", "option"])
def test_terminal_no_color_respected_on_a_pty(net, tmp_path, ttys, how):
    s = net.server()
    y = net.client("y", s)
    extra = ["--no-color"] if how == "option" else []
    x = spawn_tty(ttys, s, tmp_path, "x", *extra,
                  no_color_env=(how == "env"))
    wait_listed(y, "x")
    y.send("send x plain please")
    x.wait_line(r">>> y: plain please$")
    x.send("send y typed")
    y.send("send x while typing")
    x.wait_line(r">>> y: while typing$")
    x.wait_input("send y typed")
    x.send("\r")
    y.expect_literal(">>> x: typed")
    exit_tty(x)
    assert not SGR.search(x.raw), x.raw[-400:]
    assert b"\x07" not in x.raw


def test_terminal_timestamps_utc_and_off(net, tmp_path, ttys):
    s = net.server()
    y = net.client("y", s)
    x = spawn_tty(ttys, s, tmp_path, "x", "--timestamps=utc")
    z = spawn_tty(ttys, s, tmp_path, "z", "--timestamps", "off")
    wait_listed(y, "z")
    y.send("send x utc")
    y.send("send z none")
    x.wait_line(r"^\d\d:\d\dZ >>> y: utc$")
    z.wait_line(r"^>>> y: none$")
    exit_tty(x)
    exit_tty(z)


def test_terminal_stored_mail_and_list_table(net, tmp_path, ttys):
    s = net.server()
    y = net.client("y", s)
    x = spawn_tty(ttys, s, tmp_path)
    wait_listed(y, "x")
    x.send("dereg x\r")
    x.wait_line(r"\[You are Offline\. Bye\.\]$")
    wait_listed(y, "x", "offline")
    y.send("send x kept for later")
    y.expect_literal(">>> [Messages received by the server and saved]")
    x.send("reg x\r")
    x.wait_line(r"\[You have messages\]$")
    # <sender>: <local date and time> <text>, in the mail color
    x.wait_line(r">>> y: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d kept for later$")
    assert re.search(rb"\x1b\[1;35my: \d{4}-", x.raw)
    x.send("list\r")
    x.wait_line(r"^ +>>> nick\s+ip\s+port\s+status$")
    rows = [ln for ln in x.lines() if re.search(r">>> [xy] +127\.0\.0\.1", ln)]
    assert len(rows) == 2
    # aligned: every column starts at the same offset
    assert len({ln.index("127.0.0.1") for ln in rows}) == 1
    assert len({re.search(r"\d+ +(on|off)line", ln).start()
                for ln in rows}) <= 2
    exit_tty(x)


def test_terminal_help_and_help_command(net, tmp_path, ttys):
    s = net.server()
    x = spawn_tty(ttys, s, tmp_path)
    x.send("help\r")
    x.wait_line(r">>> \[Commands: send <nick> <message>, list")
    x.wait_line(r"help \[command\]\]$")  # the rest, wrapped on 80 columns
    x.send("help send\r")
    x.wait_line(r">>> \[send <nick> <message>: send a message")
    x.wait_input("")
    exit_tty(x)


def test_notify_cmd_gets_sender_and_text_as_arguments(net, tmp_path):
    """--notify-cmd runs the program with SENDER and TEXT as separate argv
    entries: shell metacharacters in a message are inert."""
    out = tmp_path / "notified"
    out.mkdir()
    script = tmp_path / "notifier"
    # one file per run (notifiers run concurrently)
    script.write_text("#!/bin/sh\n"
                      f"f=$(mktemp '{out}/n.XXXXXX')\n"
                      "for a in \"$@\"; do printf '%s\\n' \"$a\"; done "
                      ">> \"$f.tmp\"\nmv \"$f.tmp\" \"$f.done\"\n")
    script.chmod(0o755)
    s = net.server()
    y = net.client("y", s)
    pwned = tmp_path / "pwned"
    x = net.client("x", s, "--notify-cmd", f"{script} --urgency low")
    wait_listed(y, "x")
    evil = f"$(touch {pwned}); `touch {pwned}` 'q\" ; touch {pwned}"
    y.send("send x " + evil)
    x.expect_literal(">>> y: " + evil)
    y.send("send x -v looks like an option")
    x.expect_literal(">>> y: -v looks like an option")
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if len(list(out.glob("*.done"))) >= 2:
            break
        time.sleep(0.05)
    got = sorted(f.read_text().splitlines() for f in out.glob("*.done"))
    assert got == [["--urgency", "low", "--", "y", "-v looks like an option"],
                   ["--urgency", "low", "y", evil]], got
    assert not pwned.exists()
    # no bell on a pipe anyway, and the lines stay plain
    assert all("\x1b" not in ln for ln in x.out.lines)


def test_terminal_piped_stdin_with_a_terminal_stdout_stays_plain(net,
                                                                 tmp_path):
    """stdin a pipe, stdout a terminal: no editing, no color, no bell, no
    timestamps, one event per line (bidi is still neutralised: test_spec)."""
    import select
    import subprocess
    s = net.server()
    y = net.client("y", s)
    master, slave = os.openpty()
    env = dict(os.environ, TERM="xterm")
    env.pop("NO_COLOR", None)
    p = subprocess.Popen([BIN, "-c", "x", "127.0.0.1", str(s.port), "0",
                          "--state-dir", str(tmp_path / "px")],
                         stdin=subprocess.PIPE, stdout=slave,
                         stderr=subprocess.PIPE, env=env)
    os.close(slave)
    buf = b""

    def read_until(token):
        nonlocal buf
        deadline = time.monotonic() + TIMEOUT
        while token not in buf:
            left = deadline - time.monotonic()
            assert left > 0, buf
            r, _, _ = select.select([master], [], [], left)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                assert chunk, buf
                buf += chunk
    try:
        read_until(b"[Client table updated.]")
        wait_listed(y, "x")
        y.send("send x from a pipe")
        read_until(b"y: from a pipe")
        p.stdin.write(b"exit\n")
        p.stdin.flush()
        read_until(b"[Exiting]")
        assert p.wait(TIMEOUT) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert b"\x1b" not in buf and b"\x07" not in buf, buf
    lines = buf.replace(b"\r\n", b"\n").decode().splitlines()
    assert lines[0].startswith("udpchat client x bound to ")
    assert all(ln.startswith(">>> ") for ln in lines[1:]), lines
    assert ">>> y: from a pipe" in lines
