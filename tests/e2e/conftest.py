"""Shared fixtures for the udpchat end-to-end tests.

Every test drives the real `udpchat` binary (UDPCHAT_BIN, default
build/udpchat, else the newest build*/udpchat) over loopback:

* processes are started with subprocess and pipes (no ptys), servers and
  clients bind port 0 and the tests read the printed address;
* a reader thread per stream collects output lines; `expect` waits for a
  line matching a regex with a deadline (never a fixed sleep);
* every client gets its own --state-dir under tmp_path;
* teardown kills only the processes the test started, by PID, and fails the
  test if a sanitizer reported anything on a process's stderr.

Set UDPC_E2E_SCALE (e.g. 2) to stretch the timeouts on slow machines.
"""
import atexit
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCALE = float(os.environ.get("UDPC_E2E_SCALE", "1"))
TIMEOUT = 5.0 * SCALE

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def find_binary():
    b = os.environ.get("UDPCHAT_BIN")
    if b:
        return b
    cand = os.path.join(REPO, "build", "udpchat")
    if os.path.exists(cand):
        return cand
    found = glob.glob(os.path.join(REPO, "build*", "udpchat")) + \
        glob.glob(os.path.join(REPO, "build", "*", "udpchat"))
    found = [f for f in found if os.access(f, os.X_OK)]
    if found:
        return max(found, key=os.path.getmtime)
    return cand


BIN = find_binary()

# Nothing a test starts may write into the real $HOME: default state and
# data directories go to a throw-away XDG_STATE_HOME for the whole session.
_XDG = tempfile.mkdtemp(prefix="udpc-e2e-xdg-")
os.environ["XDG_STATE_HOME"] = _XDG
atexit.register(shutil.rmtree, _XDG, True)


def _server_supports(option):
    try:
        r = subprocess.run([BIN, "--help"], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in r.stdout


# A durable server store lives in a data directory; every test server gets
# its own (two servers must never share one), a restart passes the same.
HAS_DATA_DIR = _server_supports("--data-dir")


class Stream:
    """Lines of one output stream, filled by a reader thread."""

    def __init__(self, f):
        self.lines = []     # complete lines, decoded, without '\n'
        self.partial = b""  # bytes after the last '\n'
        self.closed = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(f,),
                                       daemon=True)
        self.thread.start()

    def _run(self, f):
        while True:
            try:
                chunk = os.read(f.fileno(), 65536)
            except OSError:
                chunk = b""
            with self.cond:
                if not chunk:
                    if self.partial:
                        self.lines.append(
                            self.partial.decode("utf-8", "replace"))
                        self.partial = b""
                    self.closed = True
                    self.cond.notify_all()
                    return
                data = self.partial + chunk
                *full, self.partial = data.split(b"\n")
                for ln in full:
                    self.lines.append(ln.decode("utf-8", "replace"))
                self.cond.notify_all()

    def text(self):
        with self.cond:
            return "\n".join(self.lines) + (
                "\n" + self.partial.decode("utf-8", "replace")
                if self.partial else "")


class Proc:
    """A started udpchat process with line-oriented expectations."""

    def __init__(self, args, name, env=None):
        self.name = name
        self.args = args
        self.popen = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, bufsize=0)
        self.pid = self.popen.pid
        self.out = Stream(self.popen.stdout)
        self.err = Stream(self.popen.stderr)
        self.cursor = 0  # index of the first stdout line not yet consumed
        self.addr = None
        self.port = None

    # -- output ----------------------------------------------------------
    def _describe(self):
        return (f"--- {self.name} (pid {self.pid}) {' '.join(self.args)}\n"
                f"--- stdout:\n{self.out.text()}\n"
                f"--- stderr:\n{self.err.text()}\n")

    def expect(self, pattern, timeout=None, stream="out"):
        """Wait for the next line (from the cursor) matching pattern
        (re.search); consume everything up to it; return the match."""
        timeout = TIMEOUT if timeout is None else timeout * SCALE
        rx = re.compile(pattern)
        s = self.out if stream == "out" else self.err
        deadline = time.monotonic() + timeout
        start = self.cursor if stream == "out" else 0
        with s.cond:
            i = start
            while True:
                while i < len(s.lines):
                    m = rx.search(s.lines[i])
                    if m:
                        if stream == "out":
                            self.cursor = i + 1
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or s.closed:
                    break
                s.cond.wait(left)
        raise AssertionError(
            f"{self.name}: no line matching {pattern!r} within {timeout}s "
            f"(exit status {self.popen.poll()})\n" + self._describe())

    def expect_literal(self, text, timeout=None):
        return self.expect(re.escape(text), timeout)

    def assert_no_line(self, pattern, within=0.5):
        """Fail if a line matching pattern appears (from the cursor) within
        `within` seconds. Only for negative checks after a positive sync."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + within * SCALE
        with self.out.cond:
            while True:
                for ln in self.out.lines[self.cursor:]:
                    if rx.search(ln):
                        raise AssertionError(
                            f"{self.name}: unexpected line {ln!r}\n"
                            + self._describe())
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.out.cond.wait(left)

    def mark(self):
        """Consume everything printed so far."""
        with self.out.cond:
            self.cursor = len(self.out.lines)

    def lines_since(self, start):
        with self.out.cond:
            return list(self.out.lines[start:])

    # -- input -----------------------------------------------------------
    def send(self, line):
        data = line if isinstance(line, bytes) else line.encode()
        self.popen.stdin.write(data + b"\n")
        self.popen.stdin.flush()

    def close_stdin(self):
        try:
            self.popen.stdin.close()
        except OSError:
            pass

    # -- lifecycle -------------------------------------------------------
    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout=None):
        timeout = TIMEOUT if timeout is None else timeout * SCALE
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within "
                                 f"{timeout}s\n" + self._describe())

    def kill(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def sanitizer_report(self):
        t = self.err.text()
        return t if any(m in t for m in SANITIZER_MARKERS) else None


class Net:
    """Starts servers and clients for one test and cleans them up."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.procs = []
        self.n = 0

    def spawn(self, args, name, env=None):
        p = Proc([BIN] + [str(a) for a in args], name, env=env)
        self.procs.append(p)
        return p

    def server(self, *extra, bind="127.0.0.1", port=0, data_dir=None):
        args = ["-s", port]
        if bind is not None:
            args += ["--bind", bind]
        if HAS_DATA_DIR and "--data-dir" not in [str(e) for e in extra]:
            if data_dir is None:
                self.n += 1
                data_dir = str(self.tmp / f"server-data-{self.n}")
            args += ["--data-dir", data_dir]
        args += list(extra)
        p = self.spawn(args, "server")
        p.data_dir = data_dir
        m = p.expect(r"^udpchat server listening on (\S+):(\d+)$")
        p.addr = m.group(1).strip("[]")
        p.port = int(m.group(2))
        p.host = "127.0.0.1" if bind in (None, "0.0.0.0", "::") else bind
        return p

    def state_dir(self, nick):
        d = self.tmp / f"state-{nick}"
        return str(d)

    def client(self, nick, server, *extra, host=None, port=0,
               state_dir=None, wait=True, env=None):
        host = host or server.host
        sd = self.state_dir(nick) if state_dir is None else state_dir
        args = ["-c", nick, host, server.port, port]
        if sd != "":  # "" = no --state-dir: use the XDG default
            args += ["--state-dir", sd]
        p = self.spawn(args + list(extra), f"client-{nick}", env=env)
        p.nick = nick.lower()
        p.state = sd
        m = p.expect(r"^udpchat client (\S+) bound to (\S+):(\d+)$")
        p.port = int(m.group(3))
        if wait:
            p.expect_literal(">>> [Welcome, You are registered.]")
            p.expect_literal(">>> [Client table updated.]")
        return p

    def cleanup(self):
        """Stop what the test started, gracefully first so that sanitizer
        leak checks run at exit: clients get end of input (= exit), then
        servers get SIGTERM; whatever is still alive after a short grace
        period is killed (SIGKILL, by PID)."""
        reports = []
        clients = [p for p in self.procs if not p.name.startswith("server")]
        servers = [p for p in self.procs if p.name.startswith("server")]
        for p in clients:
            p.close_stdin()
        grace = time.monotonic() + 1.0 * SCALE
        for p in clients:
            try:
                p.popen.wait(max(0.01, grace - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in servers:
            p.signal(signal.SIGCONT)  # in case a test left it stopped
            p.signal(signal.SIGTERM)
        grace = time.monotonic() + 1.0 * SCALE
        for p in servers:
            try:
                p.popen.wait(max(0.01, grace - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            p.close_stdin()
            p.kill()
        for p in self.procs:
            p.out.thread.join(2)
            p.err.thread.join(2)
            r = p.sanitizer_report()
            if r:
                reports.append(f"{p.name} (pid {p.pid}):\n{r}")
        return reports


@pytest.fixture
def net(tmp_path):
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"udpchat binary not found at {BIN}; set UDPCHAT_BIN")
    n = Net(tmp_path)
    yield n
    reports = n.cleanup()
    if reports:
        pytest.fail("sanitizer reports:\n" + "\n".join(reports))


def run_cli(*args, timeout=10, env=None):
    """Run udpchat to completion (argument checks); return CompletedProcess."""
    return subprocess.run([BIN] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout * SCALE, env=env)


def wait_listed(proc, nick, status="online", timeout=None):
    """Poll `list` on proc until nick shows with status; return (ip, port)."""
    timeout = TIMEOUT if timeout is None else timeout * SCALE
    rx = re.compile(rf"^>>> {re.escape(nick)}\s+(\S+)\s+(\d+)\s+{status}$")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        start = len(proc.out.lines)
        proc.send("list")
        end_wait = time.monotonic() + 0.3
        while time.monotonic() < end_wait:
            for i, ln in enumerate(proc.lines_since(start)):
                m = rx.search(ln)
                if m:
                    proc.cursor = max(proc.cursor, start + i + 1)
                    return m.group(1), int(m.group(2))
            time.sleep(0.02)
    raise AssertionError(f"{proc.name}: {nick} never listed as {status}\n"
                         + proc._describe())
