"""Attacker suite (SECURITY.md, PROTOCOL.md P9) against the real binary:
raw UDP sockets forge datagrams with udpwire.py, the Python codec of
PROTOCOL.md. "Spoofed" source addresses are emulated by binding sockets to
other loopback addresses (127.0.0.x) and ports: the server cannot tell the
difference, and the socket sees exactly what the server sends to that
address, so bytes out / bytes in per unvalidated address is measured.

Each attack must fail with nothing lost for the honest users, who keep
registering and chatting."""
import os
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


def test_security_nick_path_tricks_refused_statelessly(net, tmp_path):
    """R15: nicks that could name paths or look alike ("../x", "a/b",
    "x\\0", upper case, empty, 33 bytes, "..") are refused by the server
    with REGISTER_RESULT INVALID_NICK, never larger than the REGISTER and
    without a cookie exchange or any state; the client refuses them before
    touching its state directory."""
    s = net.server()
    r = bound_socket()
    try:
        for bad in (b"../x", b"a/b", b"x\x00", b"Alice", b"", b"x" * 33,
                    b"..", b"/etc/passwd", b"-\xc3\xa9"):
            d = w.header(w.REGISTER, 5) + b"\x00" + bytes([len(bad)]) + bad \
                + bytes(32)
            r.sendto(d, ("127.0.0.1", s.port))
            deadline = time.monotonic() + 2
            got = None
            while got is None and time.monotonic() < deadline:
                try:
                    got, _ = r.recvfrom(2048)
                except BlockingIOError:
                    time.sleep(0.01)
            assert got is not None, bad
            assert got[1] == w.REGISTER_RESULT and got[6] == 2, (bad, got)
            assert len(got) <= len(d)
    finally:
        r.close()
    for bad in ("../x", "a/b", "..", "x" * 33):
        sd = tmp_path / f"st{len(bad)}"
        p = net.spawn(["-c", bad, "127.0.0.1", s.port, 0, "--state-dir",
                       str(sd)], "client-bad")
        assert p.wait() == 2
        assert not sd.exists() or not any(sd.rglob("*x*"))
    x, y = mesh(net, s, ["x", "y"])
    y.send("list")
    y.expect(r"^>>> x\s")
    y.assert_no_line(r"\.\.|/", within=0.3)


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


# ======================================================================
# A second, independent codec written from PROTOCOL.md P1-P3 and P10
# (decoder with the check order of P2.9, formatter with the P10 grammar,
# encoder), cross-checked with the C codec on every test vector and on
# mutations of them. The C side is udpc_wire_decode / udpc_wire_format,
# compiled into a small shared library and called through ctypes.
# ======================================================================
import ctypes
import random
import shutil
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
VECTORS = os.path.join(REPO, "tests", "vectors", "wire.vectors")

ERR = {"ok": 0, "UDPC_ERR_TRUNCATED": -1, "UDPC_ERR_TRAILING": -2,
       "UDPC_ERR_VERSION": -3, "UDPC_ERR_TYPE": -4, "UDPC_ERR_LENGTH": -5,
       "UDPC_ERR_UTF8": -6, "UDPC_ERR_CONTROL": -7, "UDPC_ERR_NICK": -8,
       "UDPC_ERR_VALUE": -9, "UDPC_ERR_TOO_BIG": -10}
TOKENED = {0x10, 0x11, 0x12, 0x20, 0x21, 0x30, 0x31, 0x32, 0x33, 0x40, 0x41,
           0x50, 0x51, 0x60, 0x61}
NAMES = {0x01: "REGISTER", 0x02: "COOKIE", 0x03: "REGISTER_RESULT",
         0x10: "TABLE_REQ", 0x11: "TABLE_PAGE", 0x12: "TABLE_DELTA",
         0x20: "HEARTBEAT", 0x21: "HEARTBEAT_ACK", 0x30: "DEREG",
         0x31: "DEREG_OTHER", 0x32: "DEREG_RESULT", 0x33: "KICKED",
         0x40: "SAVE", 0x41: "SAVE_RESULT", 0x50: "MAIL_REQ",
         0x51: "MAIL_PAGE", 0x60: "PROBE", 0x61: "PROBE_ACK", 0x70: "CHAT",
         0x71: "CHAT_ACK", 0x7F: "ERROR"}
REG_ST = ["ok", "nick_taken", "invalid_nick", "server_full", "store_error"]
DEREG_ST = ["ok", "not_permitted", "unknown_nick", "store_error"]
SAVE_ST = ["saved", "recipient_online", "unknown_recipient", "quota",
           "store_error"]
ERR_CODES = [None, "bad_session", "session_ended", "malformed", "version",
             "rate_limited", "internal"]
ENT_ST = ["offline", "online", "removed"]
NICK_OK = set(b"abcdefghijklmnopqrstuvwxyz0123456789_-")


class Bad(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Rd:
    def __init__(self, d):
        self.d, self.p = d, 0

    def take(self, n):
        if self.p + n > len(self.d):
            raise Bad(-1)
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def u(self, n):
        return int.from_bytes(self.take(n), "big")

    def nick(self):
        n = self.u(1)
        if n < 1 or n > 32:
            raise Bad(-8)
        b = self.take(n)
        if any(c not in NICK_OK for c in b):
            raise Bad(-8)
        return b

    def text(self):
        n = self.u(2)
        if n < 1 or n > 1100:
            raise Bad(-5)
        b = self.take(n)
        utf8_scan(b)
        return b

    def addr(self):
        fam = self.u(1)
        if fam not in (4, 6):
            raise Bad(-9)
        ip = self.take(4 if fam == 4 else 16)
        return fam, ip, self.u(2)

    def entry(self, max_status):
        n = self.nick()
        st = self.u(1)
        if st > max_status:
            raise Bad(-9)
        return n, st, self.addr()


def utf8_scan(b):
    """P2.2: one left-to-right pass; the first problem wins."""
    i = 0
    while i < len(b):
        c = b[i]
        if c < 0x80:
            n, cp, lo = 1, c, 0
        elif 0xC2 <= c <= 0xDF:
            n, cp, lo = 2, c & 0x1F, 0x80
        elif 0xE0 <= c <= 0xEF:
            n, cp, lo = 3, c & 0x0F, 0x800
        elif 0xF0 <= c <= 0xF4:
            n, cp, lo = 4, c & 0x07, 0x10000
        else:
            raise Bad(-6)
        if i + n > len(b):
            raise Bad(-6)
        for k in range(1, n):
            if b[i + k] & 0xC0 != 0x80:
                raise Bad(-6)
            cp = cp << 6 | (b[i + k] & 0x3F)
        if cp < lo or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
            raise Bad(-6)
        if cp < 0x20 or 0x7F <= cp <= 0x9F:
            raise Bad(-7)
        i += n


def py_decode(d):
    """Returns (code, packet dict or None)."""
    try:
        return 0, _decode(d)
    except Bad as e:
        return e.code, None


def _decode(d):
    if len(d) > 1200:
        raise Bad(-10)
    if len(d) < 6:
        raise Bad(-1)
    if d[0] != 1:
        raise Bad(-3)
    t = d[1]
    if t not in NAMES:
        raise Bad(-4)
    r = Rd(d)
    r.take(2)
    p = {"type": t, "id": r.u(4), "f": []}
    if t in TOKENED:
        if len(d) < 14:
            raise Bad(-1)
        p["token"] = r.u(8)
    f = p["f"]
    if t == 0x01:
        n = r.u(1)
        if n > 32:
            raise Bad(-5)
        f += [("cookie", "hex", r.take(n)), ("nick", "nick", r.nick()),
              ("credential", "hex", r.take(32))]
    elif t == 0x02:
        n = r.u(1)
        if n < 1 or n > 32:
            raise Bad(-5)
        f.append(("cookie", "hex", r.take(n)))
    elif t == 0x03:
        st = r.u(1)
        if st > 4:
            raise Bad(-9)
        f += [("status", "reg", st), ("token", "tok", r.u(8)),
              ("table_version", "u64", r.u(8)), ("mail_count", "u32", r.u(4))]
    elif t == 0x10:
        f.append(("start", "u32", r.u(4)))
    elif t == 0x11:
        ver, total, start, cnt = r.u(8), r.u(4), r.u(4), r.u(1)
        if cnt > 116:
            raise Bad(-5)
        if start + cnt > total:
            raise Bad(-9)
        f += [("version", "u64", ver), ("total", "u32", total),
              ("start", "u32", start),
              ("entries", "ents", [r.entry(1) for _ in range(cnt)])]
    elif t == 0x12:
        base, new = r.u(8), r.u(8)
        if new <= base:
            raise Bad(-9)
        cnt = r.u(1)
        if cnt < 1 or cnt > 116:
            raise Bad(-5)
        f += [("base_version", "u64", base), ("new_version", "u64", new),
              ("entries", "ents", [r.entry(2) for _ in range(cnt)])]
    elif t == 0x21:
        f.append(("table_version", "u64", r.u(8)))
    elif t == 0x31:
        f.append(("target", "nick", r.nick()))
    elif t == 0x32:
        st = r.u(1)
        if st > 3:
            raise Bad(-9)
        f.append(("status", "dereg", st))
    elif t == 0x33:
        f.append(("by", "nick", r.nick()))
    elif t == 0x40:
        f += [("to", "nick", r.nick()), ("msg_id", "u32", r.u(4)),
              ("text", "text", r.text())]
    elif t == 0x41:
        st = r.u(1)
        if st > 4:
            raise Bad(-9)
        f.append(("status", "save", st))
        if st == 1:
            f.append(("entry", "ent", r.entry(1)))
    elif t == 0x50:
        f.append(("ack_upto", "u64", r.u(8)))
    elif t == 0x51:
        rem, cnt = r.u(4), r.u(1)
        if cnt > 16:
            raise Bad(-5)
        mails, last = [], None
        for _ in range(cnt):
            seq = r.u(8)
            if last is not None and seq <= last:
                raise Bad(-9)
            last = seq
            mails.append((seq, r.u(4), r.u(8), r.nick(), r.text()))
        f += [("remaining", "u32", rem), ("mail", "mails", mails)]
    elif t == 0x70:
        f += [("from", "nick", r.nick()), ("to", "nick", r.nick()),
              ("text", "text", r.text())]
    elif t == 0x71:
        f.append(("from", "nick", r.nick()))
    elif t == 0x7F:
        c = r.u(1)
        if c < 1 or c > 6:
            raise Bad(-9)
        f.append(("code", "err", c))
    if r.p != len(d):
        raise Bad(-2)
    return p


def ip6_text(ip):
    """RFC 5952 section 4: lower case, no leading zeros, the longest run
    of two or more zero groups as '::' (the first on a tie)."""
    g = [int.from_bytes(ip[i:i + 2], "big") for i in range(0, 16, 2)]
    best, blen, i = -1, 0, 0
    while i < 8:
        if g[i] == 0:
            j = i
            while j < 8 and g[j] == 0:
                j += 1
            if j - i > blen and j - i >= 2:
                best, blen = i, j - i
            i = j
        else:
            i += 1
    h = [format(x, "x") for x in g]
    if best < 0:
        return ":".join(h)
    return ":".join(h[:best]) + "::" + ":".join(h[best + blen:])


def fmt_addr(a):
    fam, ip, port = a
    if fam == 4:
        return f"4:{'.'.join(str(x) for x in ip)}:{port}"
    return f"6:[{ip6_text(ip)}]:{port}"


def fmt_text(b):
    out = bytearray(b'"')
    for c in b:
        if c == 0x22:
            out += b'\\"'
        elif c == 0x5C:
            out += b"\\\\"
        elif c < 0x20 or c == 0x7F:
            out += b"\\u%04x" % c
        else:
            out.append(c)
    return bytes(out + b'"')


def fmt_entry(e):
    n, st, a = e
    return n + f" {ENT_ST[st]} {fmt_addr(a)}".encode()


def py_format(p):
    out = f"{NAMES[p['type']]} id={p['id']}".encode()
    if "token" in p:
        out += f" token={p['token']:016x}".encode()
    for key, kind, v in p["f"]:
        if kind == "hex":
            s = v.hex().encode()
        elif kind == "nick":
            s = v
        elif kind in ("u32", "u64"):
            s = str(v).encode()
        elif kind == "tok":
            s = f"{v:016x}".encode()
        elif kind == "reg":
            s = REG_ST[v].encode()
        elif kind == "dereg":
            s = DEREG_ST[v].encode()
        elif kind == "save":
            s = SAVE_ST[v].encode()
        elif kind == "err":
            s = ERR_CODES[v].encode()
        elif kind == "text":
            s = fmt_text(v)
        elif kind == "ent":
            s = b"{" + fmt_entry(v) + b"}"
        elif kind == "ents":
            s = b"[" + b", ".join(fmt_entry(e) for e in v) + b"]"
        elif kind == "mails":
            s = b"[" + b", ".join(
                f"{{seq={q} msg_id={m} timestamp={ts} from=".encode() + fr
                + b" text=" + fmt_text(tx) + b"}"
                for q, m, ts, fr, tx in v) + b"]"
        out += b" " + key.encode() + b"=" + s
    return out


def py_encode(p):
    """Encode a decoded packet (the inverse of _decode)."""
    def nk(b):
        return bytes([len(b)]) + b

    def tx(b):
        return len(b).to_bytes(2, "big") + b

    def ad(a):
        fam, ip, port = a
        return bytes([fam]) + ip + port.to_bytes(2, "big")

    def en(e):
        return nk(e[0]) + bytes([e[1]]) + ad(e[2])

    out = bytes([1, p["type"]]) + p["id"].to_bytes(4, "big")
    if "token" in p:
        out += p["token"].to_bytes(8, "big")
    for key, kind, v in p["f"]:
        if kind == "hex":
            out += (bytes([len(v)]) + v) if key == "cookie" else v
        elif kind == "nick":
            out += nk(v)
        elif kind == "text":
            out += tx(v)
        elif kind in ("reg", "dereg", "save", "err"):
            out += bytes([v])
        elif kind == "u32":
            out += v.to_bytes(4, "big")
        elif kind in ("u64", "tok"):
            out += v.to_bytes(8, "big")
        elif kind == "ent":
            out += en(v)
        elif kind == "ents":
            if p["type"] == 0x11:
                out += bytes([len(v)])
            out += b"".join(en(e) for e in v)
        elif kind == "mails":
            out += bytes([len(v)]) + b"".join(
                q.to_bytes(8, "big") + m.to_bytes(4, "big")
                + ts.to_bytes(8, "big") + nk(fr) + tx(t)
                for q, m, ts, fr, t in v)
    if p["type"] == 0x12:  # count sits between new_version and entries
        ents = p["f"][2][2]
        head = out[:14 + 16]
        out = head + bytes([len(ents)]) + out[14 + 16:]
    return out


def load_vectors():
    vecs, cur = [], None
    with open(VECTORS, encoding="utf-8") as f:
        for ln in f:
            ln = ln.rstrip("\n")
            if not ln.strip() or ln.lstrip().startswith("#"):
                continue
            key, _, val = ln.partition(": ")
            if ln == "hex:":
                key, val = "hex", ""
            if key == "name":
                cur = {"name": val, "hex": "", "fields": None}
                vecs.append(cur)
            elif key == "hex":
                cur["hex"] += val.replace(" ", "")
            elif key == "expect":
                cur["expect"] = ERR[val]
            elif key == "fields":
                cur["fields"] = val.encode()
    return vecs


@pytest.fixture(scope="module")
def c_codec(tmp_path_factory):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler for the C codec cross-check")
    core = os.path.join(REPO, "src", "core")
    so = str(tmp_path_factory.mktemp("ccodec") / "libudpcwire.so")
    subprocess.run([cc, "-std=c11", "-shared", "-fPIC", "-O1",
                    "-D_POSIX_C_SOURCE=200809L", "-I", core,
                    os.path.join(core, "udpc_wire.c"),
                    os.path.join(core, "udpc_cursor.c"),
                    os.path.join(core, "udpc_text.c"),
                    os.path.join(core, "udpc_err.c"), "-o", so],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(so)
    lib.udpc_wire_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.c_size_t]
    lib.udpc_wire_format.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.c_size_t]
    pkt = ctypes.create_string_buffer(1 << 17)
    out = ctypes.create_string_buffer(1 << 16)

    def c_decode_format(d):
        rc = lib.udpc_wire_decode(pkt, d, len(d))
        if rc != 0:
            return rc, None
        n = lib.udpc_wire_format(pkt, out, len(out))
        assert n > 0
        return 0, out.raw[:n]

    return c_decode_format


def both(c_codec, d):
    prc, p = py_decode(d)
    crc, ctext = c_codec(d)
    assert prc == crc, (d.hex(), prc, crc)
    if prc == 0:
        assert py_format(p) == ctext, (d.hex(), py_format(p), ctext)
        assert py_encode(p) == d, d.hex()
    return prc


def test_security_python_codec_cross_checks_c_codec_on_every_vector(
        c_codec):
    """Issue 7 item 7: the Python codec (from PROTOCOL.md alone) and the C
    codec agree on every vector of tests/vectors/wire.vectors (result code,
    formatted fields, re-encoded bytes), on every strict prefix and one-byte
    extension of each valid vector, and on 200 random mutations of each."""
    vecs = load_vectors()
    assert len(vecs) > 100
    rnd = random.Random(7)
    n_ok = 0
    for v in vecs:
        d = bytes.fromhex(v["hex"])
        rc = both(c_codec, d)
        assert rc == v["expect"], (v["name"], rc)
        if rc != 0:
            continue
        n_ok += 1
        _, p = py_decode(d)
        assert py_format(p) == v["fields"], v["name"]
        for k in range(len(d)):
            assert both(c_codec, d[:k]) == -1, (v["name"], k)
        assert both(c_codec, d + b"\x00") == (-10 if len(d) == 1200 else -2)
        for _ in range(200):
            m = bytearray(d)
            for _ in range(rnd.randint(1, 3)):
                op = rnd.random()
                i = rnd.randrange(len(m)) if m else 0
                if op < 0.6 and m:
                    m[i] = rnd.randrange(256)
                elif op < 0.8:
                    m.insert(i, rnd.randrange(256))
                elif m:
                    del m[i]
            both(c_codec, bytes(m))
    assert n_ok > 40
