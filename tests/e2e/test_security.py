"""Attacker suite (SECURITY.md, PROTOCOL.md P9) against the real binary:
raw UDP sockets forge datagrams with udpwire.py, the Python codec of
PROTOCOL.md. "Spoofed" source addresses are emulated by binding sockets to
other loopback addresses (127.0.0.x) and ports: the server cannot tell the
difference, and the socket sees exactly what the server sends to that
address, so bytes out / bytes in per unvalidated address is measured.

Each attack must fail with nothing lost for the honest users, who keep
registering and chatting."""
import os
import re
import socket
import struct
import threading
import time

import pytest

import udpwire as w
from conftest import BIN, TIMEOUT, wait_listed
from test_grading import TS, chat_ok, mesh


def vmrss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise AssertionError("no VmRSS")


def bound_socket(host="127.0.0.1"):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind((host, 0))
    r.setblocking(False)
    return r


def drain(r, acc, wait=0.0):
    """Read everything waiting on r (for `wait` seconds more); add datagram
    count and bytes to acc = [n, bytes]."""
    end = time.monotonic() + wait
    while True:
        try:
            d, _ = r.recvfrom(65536)
            acc[0] += 1
            acc[1] += len(d)
            continue
        except BlockingIOError:
            pass
        if time.monotonic() >= end:
            return
        time.sleep(0.01)


def hostile_datagrams(i):
    """A varied set of unvalidated datagrams (no valid token, no cookie)."""
    cred = bytes(32)
    return [
        w.register(i, "victim", cred),                       # -> COOKIE
        w.register(i + 1, "victim", cred, b"\x00" * 20),     # bad cookie
        w.register(i + 2, "BAD!", cred),                     # INVALID_NICK
        w.tokened(w.TABLE_REQ, i + 3, 0x1234 + i, struct.pack(">I", 0)),
        w.tokened(w.HEARTBEAT, i + 4, 0x9999 + i),           # BAD_SESSION
        w.tokened(w.DEREG, i + 5, 0x7777 + i),
        w.tokened(w.DEREG_OTHER, i + 6, 0x5555 + i, w.nick("victim")),
        w.tokened(w.SAVE, i + 7, 0x4444 + i, w.nick("victim")
                  + struct.pack(">I", i) + w.text16("x")),
        w.tokened(w.MAIL_REQ, i + 8, 0x3333 + i, struct.pack(">Q", 0)),
        w.tokened(w.TABLE_REQ, i + 9, 1)[:9],                # malformed
        bytes([2, w.REGISTER, 0, 0, 0, 9, 0]),               # version 2
        bytes([2, 1, 0, 0, 0, 9]),                           # 6 bytes
        bytes([1, 0x55]) + os.urandom(20),                   # unknown type
        w.chat(i, "a", "b", "to the server"),                # wrong dir.
        b"",
        os.urandom(1300),                                    # too big
    ]


def test_security_amplification_factor_per_unvalidated_address(net):
    """R13 R87: from 40 unvalidated addresses (127.0.0.2-41), every kind of
    datagram a spoofer can send without a cookie or token: no address gets
    more bytes or datagrams than it sent (factor <= 1, printed), and an
    honest client registers and chats meanwhile."""
    s = net.server()
    socks = [bound_socket(f"127.0.0.{k}") for k in range(2, 42)]
    acc = {id(r): [0, 0] for r in socks}
    sent = {id(r): [0, 0] for r in socks}
    try:
        for rnd in range(3):
            for r in socks:
                for d in hostile_datagrams(rnd * 100):
                    r.sendto(d, ("127.0.0.1", s.port))
                    sent[id(r)][0] += 1
                    sent[id(r)][1] += len(d)
            for r in socks:
                drain(r, acc[id(r)])
        x, y = mesh(net, s, ["x", "y"])
        chat_ok(x, y, "honest traffic")
        for r in socks:
            drain(r, acc[id(r)], wait=0.02)
    finally:
        for r in socks:
            r.close()
    worst = 0.0
    for k in acc:
        n_out, b_out = acc[k]
        n_in, b_in = sent[k]
        assert n_out <= n_in and b_out <= b_in, (acc[k], sent[k])
        assert n_out > 0  # the server did answer (cookies, errors)
        worst = max(worst, b_out / b_in)
    tot_out = sum(a[1] for a in acc.values())
    tot_in = sum(a[1] for a in sent.values())
    print(f"amplification: worst address {worst:.3f}, "
          f"all {tot_out}/{tot_in} = {tot_out / tot_in:.3f} bytes out/in")
    assert worst <= 1.0


def test_security_flood_one_source_bounded_and_legit_client_unaffected(net):
    """R87 R89 R90: 20,000 hostile datagrams from one source within 5 s.
    (a) honest clients register and chat during and after the flood;
    (b) server memory stays bounded (VmRSS); (c) the flooding address gets
    fewer bytes than it sent (in fact at most about the bucket allows);
    the server logs the limit once, not 20,000 times."""
    s = net.server()
    rss0 = vmrss_kb(s.pid)
    r = bound_socket()
    fport = r.getsockname()[1]
    got = [0, 0]
    out = [0, 0]
    done = threading.Event()

    def flood():
        base = hostile_datagrams(1)
        t0 = time.monotonic()
        i = 0
        while i < 20000 and time.monotonic() - t0 < 5.0:
            for _ in range(500):
                d = base[i % len(base)]
                try:
                    r.sendto(d, ("127.0.0.1", s.port))
                except BlockingIOError:
                    time.sleep(0.001)
                    continue
                out[0] += 1
                out[1] += len(d)
                i += 1
            drain(r, got)
            time.sleep(0.05)  # about 10,000 datagrams/s: 2 s of flood
        done.set()

    th = threading.Thread(target=flood, daemon=True)
    th.start()
    try:
        x, y = mesh(net, s, ["x", "y"])  # registers during the flood
        chat_ok(x, y, "during the flood")
        y.send("dereg y")
        y.expect_literal(">>> [You are Offline. Bye.]")
        wait_listed(x, "y", "offline")
        x.send("send y stored during the flood")
        x.expect_literal(">>> [Messages received by the server and saved]")
        th.join(10)
        assert done.is_set()
        drain(r, got, wait=0.3)
        z = net.client("z", s)  # registers after the flood
        y.send("reg y")
        y.expect_literal(">>> [You have messages]")
        y.expect(rf"^>>> x: {TS} stored during the flood$")
        wait_listed(z, "y", "online")
        chat_ok(z, y, "after the flood")
    finally:
        r.close()
    assert out[0] >= 10000, out
    assert s.alive()
    rss1 = vmrss_kb(s.pid)
    print(f"flood: sent {out[0]} datagrams / {out[1]} bytes, got back "
          f"{got[0]} / {got[1]} bytes; VmRSS {rss0} -> {rss1} kB")
    # (c) no amplification, and the bucket held: 100 + 50/s over the flood.
    assert got[1] <= out[1], (got, out)
    assert got[0] <= 100 + 50 * 6, (got, out)
    # (b) bounded memory: generous (the source table is fixed at start).
    assert rss1 - rss0 < 16 * 1024, (rss0, rss1)
    # R90: the limit is logged, once per episode, and the log stays small.
    s.signal(15)
    s.wait()
    err = s.err.lines
    pat = f"limit: source 127.0.0.1:{fport} over 50 datagrams/s (burst 100)"
    assert any(pat in ln for ln in err), "\n".join(err[-20:])
    assert len(err) < 200, len(err)


def test_security_floods_from_many_sources_bounded(net):
    """R89: 5000 source addresses (50 loopback IPs x 100 ports) each send a
    REGISTER: the server answers each with one COOKIE, keeps no state, its
    memory stays bounded, and honest clients still register and chat."""
    s = net.server()
    rss0 = vmrss_kb(s.pid)
    total_in = total_out = 0
    for k in range(50):
        socks = [bound_socket(f"127.0.1.{k + 1}") for _ in range(100)]
        acc = [0, 0]
        try:
            for j, r in enumerate(socks):
                d = w.register(j, "nobody", bytes(32))
                r.sendto(d, ("127.0.0.1", s.port))
                total_in += len(d)
            for r in socks:
                drain(r, acc)
            drain(socks[-1], acc, wait=0.01)
            for r in socks:
                drain(r, acc)
        finally:
            for r in socks:
                r.close()
        total_out += acc[1]
    assert total_out <= total_in
    x, y = mesh(net, s, ["x", "y"])
    chat_ok(x, y, "still fine")
    x.send("list")
    x.expect(r"^>>> y\s")
    assert vmrss_kb(s.pid) - rss0 < 16 * 1024


def test_security_offline_mail_theft_refused(net):
    """Offline mail of x: another credential cannot register as x (even
    from x's old address and port), a guessed token cannot MAIL_REQ, and
    another registered user's MAIL_REQ returns only its own (empty) mail.
    x then gets its message, once."""
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("dereg x")
    x.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(y, "x", "offline")
    y.send("send x secret for x")
    y.expect_literal(">>> [Messages received by the server and saved]")
    thief = w.RawClient("127.0.0.1", s.port)
    try:
        st, tok, _, _ = thief.register("x", os.urandom(32))
        assert st == 1 and tok == 0  # NICK_TAKEN, no token
        for g in range(20):
            thief.id += 1
            d = thief.request(w.tokened(w.MAIL_REQ, thief.id,
                                        int.from_bytes(os.urandom(8), "big"),
                                        struct.pack(">Q", 0)), w.ERROR)
            assert d is not None and d[6] == 1  # BAD_SESSION
        st, tok, _, mail = thief.register("mallory", os.urandom(32))
        assert st == 0 and mail == 0
        remaining, mails = thief.mail_req(0)
        assert remaining == 0 and mails == []
        remaining, mails = thief.mail_req(2 ** 63)  # ack "everything"
        assert remaining == 0 and mails == []
    finally:
        thief.close()
    x.send("reg x")
    x.expect_literal(">>> [You have messages]")
    x.expect(rf"^>>> y: {TS} secret for x$")
    x.assert_no_line("secret for x", within=0.5)


def test_security_forged_dereg_and_deregA_from_spoofed_addresses(net):
    """R80 R91: DEREG / DEREG_OTHER with guessed tokens from any address,
    and DEREG_OTHER from a registered non-operator, change nothing; the
    operator's real deregA still works."""
    s = net.server("--operator", "op")
    op = net.client("op", s)
    t = net.client("t", s)
    wait_listed(op, "t")
    raw = [bound_socket(f"127.0.0.{k}") for k in (1, 2, 3)]
    try:
        for r in raw:
            for g in range(50):
                tok = int.from_bytes(os.urandom(8), "big")
                r.sendto(w.tokened(w.DEREG_OTHER, g, tok, w.nick("t")),
                         ("127.0.0.1", s.port))
                r.sendto(w.tokened(w.DEREG, g, tok), ("127.0.0.1", s.port))
    finally:
        for r in raw:
            r.close()
    m = w.RawClient("127.0.0.1", s.port)
    try:
        st, tok, _, _ = m.register("mallory", os.urandom(32))
        assert st == 0
        m.id += 1
        d = m.request(w.tokened(w.DEREG_OTHER, m.id, tok, w.nick("t")),
                      w.DEREG_RESULT)
        assert d is not None and d[14] == 1  # NOT_PERMITTED
    finally:
        m.close()
    chat_ok(op, t, "still online")
    wait_listed(op, "t", "online")
    op.send("deregA t")
    op.expect_literal(">>> [t is now offline.]")
    t.expect_literal(">>> [You were deregistered by op.]")


def test_security_replayed_requests_of_ended_session_refused(net):
    """P9.2: requests of an ended session replayed from its address get
    SESSION_ENDED and change nothing; a captured REGISTER with its cookie
    replayed from another address gets only a fresh COOKIE."""
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("dereg x")
    x.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(y, "x", "offline")
    r = w.RawClient("127.0.0.1", s.port)
    cred = os.urandom(32)
    try:
        r.id += 1
        reg1 = w.register(r.id, "rr", cred)
        d = r.request(reg1, w.COOKIE)
        cookie = d[7:7 + d[6]]
        r.id += 1
        reg2 = w.register(r.id, "rr", cred, cookie)
        d = r.request(reg2, w.REGISTER_RESULT)
        tok = struct.unpack(">Q", d[7:15])[0]
        r.token = tok
        r.id += 1
        save = w.tokened(w.SAVE, r.id, tok, w.nick("x") + struct.pack(">I", 5)
                         + w.text16("only once"))
        d = r.request(save, w.SAVE_RESULT)
        assert d[14] == 0
        r.id += 1
        d = r.request(w.tokened(w.DEREG, r.id, tok), w.DEREG_RESULT)
        assert d[14] == 0
        d = r.request(save, w.ERROR)  # replay of the ended session
        assert d is not None and d[6] == 2  # SESSION_ENDED
        other = w.RawClient("127.0.0.1", s.port)
        try:
            d = other.request(reg2, w.COOKIE)  # captured, other address
            assert d is not None
        finally:
            other.close()
    finally:
        r.close()
    x.send("reg x")
    x.expect_literal(">>> [You have messages]")
    x.expect(rf"^>>> rr: {TS} only once$")
    x.assert_no_line("only once", within=0.5)
    y.send("list")
    y.expect(r"^>>> rr\s+\S+\s+\d+\s+offline$")


def _chat_ack(peer, within):
    """The first CHAT_ACK the raw peer gets within `within` s (server
    traffic such as TABLE_DELTA is skipped), or None."""
    end = time.monotonic() + within
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        d, _ = peer.recv(left)
        if d is None:
            return None
        if len(d) >= 2 and d[1] == w.CHAT_ACK:
            return d


def _raw_peer(s, nick):
    p = w.RawClient("127.0.0.1", s.port)
    st, tok, _, _ = p.register(nick, os.urandom(32))
    assert st == 0
    return p


def test_security_escape_sequences_never_reach_the_terminal(net, tmp_path):
    """R92: CHAT text with ESC, C1 (CSI), DEL or CR from a registered
    peer's table address is refused (no ACK, nothing shown); bidi override
    text is shown with '?' on a terminal and intact in a pipe."""
    pexpect = pytest.importorskip("pexpect")
    s = net.server()
    y = net.client("y", s)
    env = dict(os.environ, TERM="xterm", NO_COLOR="1")
    tty = pexpect.spawn(BIN, ["-c", "t", "127.0.0.1", str(s.port), "0",
                              "--state-dir", str(tmp_path / "tty-t")],
                        env=env, timeout=TIMEOUT, encoding="utf-8")
    try:
        tty.expect(r"bound to \S+:(\d+)")
        tport = int(tty.match.group(1))
        tty.expect_exact("[Welcome, You are registered.]")
        ev = _raw_peer(s, "ev")
        try:
            wait_listed(y, "ev")
            for bad in (b"\x1b[2J\x1b[H", b"\x1b]0;pwned\x07", b"\xc2\x9b31m",
                        b"a\x7fb", b"line\rover", b"\xe2\x80\xaevil\x1b[0m"):
                d = (w.header(w.CHAT, 7) + w.nick("ev") + w.nick("y")
                     + struct.pack(">H", len(bad)) + bad)
                ev.send(d, ("127.0.0.1", y.port))
                assert _chat_ack(ev, 0.2) is None  # not acknowledged
            text = "abc\u202edcba\u2066x\u2069 end"
            ev.id += 1
            ev.send(w.chat(ev.id, "ev", "y", text), ("127.0.0.1", y.port))
            assert _chat_ack(ev, 2.0) is not None
            y.expect(r"^>>> ev: abc\u202edcba\u2066x\u2069 end$")
            assert not any("\x1b" in ln or "pwned" in ln
                           for ln in y.out.lines)
            # The terminal client: the same text, bidi neutralised.
            deadline = time.monotonic() + TIMEOUT
            acked = None
            while acked is None and time.monotonic() < deadline:
                ev.id += 1
                ev.send(w.chat(ev.id, "ev", "t", text), ("127.0.0.1", tport))
                # t may not have ev in its table yet: retry
                acked = _chat_ack(ev, 0.5)
            assert acked is not None
            tty.expect_exact("ev: abc?dcba?x? end")
            assert "\u202e" not in tty.before
        finally:
            ev.close()
        tty.sendline("exit")
        tty.expect(pexpect.EOF)
    finally:
        if tty.isalive():
            os.kill(tty.pid, 9)
        tty.close()
