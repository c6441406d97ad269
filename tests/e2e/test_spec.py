"""PROTOCOL.md requirements checked end to end on the real binary, each test
named after the R-numbers it asserts (see ci/check-spec)."""
import os
import re
import stat

from conftest import wait_listed

TS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def line(proc, text, timeout=None):
    """The next line must eventually be exactly '>>> ' + text."""
    return proc.expect("^" + re.escape(">>> " + text) + "$", timeout)


def test_r46_credential_file_0600_kept_and_reused(net):
    """R46: the client generates a 32-byte credential the first time, keeps
    it in a state file readable only by its user (0600) and re-uses it after
    a restart; without it the nick cannot be taken."""
    s = net.server()
    x = net.client("x", s)
    path = os.path.join(x.state, "x.cred")
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    with open(path, "rb") as f:
        cred = f.read()
    assert len(cred) == 32, cred
    x.send("exit")
    line(x, "[Exiting]")
    assert x.wait() == 0
    # same state dir: the same credential comes back online
    x2 = net.client("x", s, state_dir=x.state)
    with open(path, "rb") as f:
        assert f.read() == cred
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    x2.send("exit")
    line(x2, "[Exiting]")
    assert x2.wait() == 0
    # another state dir: a new credential, which the server refuses
    other = net.client("x", s, state_dir=str(net.tmp / "other"), wait=False)
    line(other, "[Nick x is already taken by another user.]")
    line(other, "[Exiting]")
    assert other.wait() == 1
    with open(os.path.join(str(net.tmp / "other"), "x.cred"), "rb") as f:
        assert f.read() != cred


def test_r4_ipv4_mapped_address_published_as_ipv4(net):
    """R4: a dual-stack server ('::') sees IPv4 clients as ::ffff:a.b.c.d
    and converts them to family 4: the table shows 127.0.0.1, and chats to
    those addresses work (R83: peer addresses come from the table)."""
    s = net.server(bind="::")
    x = net.client("x", s, host="127.0.0.1")
    y = net.client("y", s, host="127.0.0.1")
    ip, port = wait_listed(x, "y")
    assert ip == "127.0.0.1", ip
    assert port == y.port
    ip, port = wait_listed(y, "x")
    assert ip == "127.0.0.1" and port == x.port
    x.send("send y over v4")
    line(y, "x: over v4")
    line(x, "[Message received by y.]")


def test_r85_lines_whole_with_prompt_prefix(net):
    """R85: every display line is printed whole, with the '>>> ' prefix,
    never interleaved with another, even while chats arrive during `list`."""
    s = net.server()
    x = net.client("x", s)
    y = net.client("y", s)
    wait_listed(y, "x")
    wait_listed(x, "y")
    n = 40
    for i in range(n):
        y.send(f"send x message number {i} " + "z" * 200)
        if i % 4 == 0:
            x.send("list")
    for i in range(n):
        line(y, "[Message received by x.]")
    got = []
    for i in range(n):
        m = x.expect(r"^>>> y: message number (\d+) z{200}$")
        got.append(int(m.group(1)))
    assert sorted(got) == list(range(n))
    x.send("exit")
    line(x, "[Exiting]")
    x.wait()
    lines = x.out.lines
    assert lines[0].startswith("udpchat client x bound to ")
    allowed = re.compile(
        r"^>>> (\[[^\[\]]*\]|y: message number \d+ z{200}"
        r"|nick\s+ip\s+port\s+status|[xy]\s+127\.0\.0\.1\s+\d+\s+online)$")
    for ln in lines[1:]:
        assert allowed.match(ln), repr(ln)
        assert ln.count(">>> ") == 1, repr(ln)


def test_r86_fixed_display_lines_exact(net):
    """R86: the fixed lines of P11.2, byte-exact after '>>> ', as printed by
    the real client."""
    s = net.server()
    x = net.client("x", s)  # Welcome and table lines: checked by net.client
    y = net.client("y", s)
    wait_listed(x, "y")
    x.send("send y hello y")
    line(y, "x: hello y")
    line(x, "[Message received by y.]")
    x.send("dereg y")
    line(x, "[You can only dereg yourself (x); use deregA y.]")
    x.send("reg y")
    line(x, "[You can only reg your own nick x.]")
    x.send("reg x")
    line(x, "[You are already registered.]")
    x.send("deregA y")
    line(x, "[Permission denied: only operators may deregA.]")
    y.send("dereg y")
    line(y, "[You are Offline. Bye.]")
    y.send("send x hi")
    line(y, "[You are offline; use reg y to come back.]")
    wait_listed(x, "y", "offline")
    x.send("send y stored for y")
    line(x, "[Messages received by the server and saved]")
    x.send("send zed nobody")
    line(x, "[Unknown user zed, message not delivered.]")
    y.send("reg y")
    line(y, "[Welcome, You are registered.]")
    line(y, "[You have messages]")
    y.expect(rf"^>>> x: {TS} stored for y$")
    y.send("exit")
    line(y, "[Exiting]")
    assert y.wait() == 0
