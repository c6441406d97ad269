"""behaviour.md "Defects of the original (each one a test we must pass)"."""
import os
import random
import signal
import socket
import struct
import time

import udpwire as w
from conftest import wait_listed
from test_grading import TS, chat_ok, mesh


def raw_socket(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def go_offline(c, *watchers):
    c.send(f"dereg {c.nick}")
    c.expect_literal(">>> [You are Offline. Bye.]")
    for wt in watchers:
        wait_listed(wt, c.nick, "offline")


# ---- reg / dereg of someone else ----------------------------------------

def test_defect_reg_of_another_nick_refused(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    go_offline(y, x)
    x.send("send y private mail for y")
    x.expect_literal(">>> [Messages received by the server and saved]")
    # x cannot `reg y` to steal y's mail ...
    x.send("reg y")
    x.expect(r"^>>> \[You can only reg your own nick x\.?\]$")
    x.assert_no_line(r"\[You have messages\]|private mail", within=0.5)
    # ... and neither can a client started as "y" by someone else.
    thief = net.client("y", s, state_dir=str(net.tmp / "thief"), wait=False)
    thief.expect_literal(">>> [Nick y is already taken by another user.]")
    assert thief.wait() == 1
    assert not any("private mail" in ln for ln in thief.out.lines)
    # The real y still gets it.
    y.send("reg y")
    y.expect_literal(">>> [You have messages]")
    y.expect(rf"^>>> x: {TS} private mail for y$")


def test_defect_dereg_of_another_nick_refused(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("dereg y")
    x.expect(r"^>>> \[You can only dereg yourself \(x\); use deregA")
    y.assert_no_line(r"Offline", within=0.3)
    wait_listed(x, "y", "online")


def test_defect_dereg_by_one_forged_datagram_refused(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    r = raw_socket()
    try:
        for i in range(50):
            tok = random.getrandbits(64)
            r.sendto(w.tokened(w.DEREG, i, tok), ("127.0.0.1", s.port))
            r.sendto(w.tokened(w.DEREG_OTHER, 100 + i, tok, w.nick("y")),
                     ("127.0.0.1", s.port))
        # also the bare text commands the original accepted
        for d in (b"dereg y", b"deregA y", b"dereg x"):
            r.sendto(d, ("127.0.0.1", s.port))
    finally:
        r.close()
    chat_ok(x, y, "still registered")
    wait_listed(x, "y", "online")
    wait_listed(y, "x", "online")


def test_defect_deregA_by_non_operator_refused(net):
    s = net.server("--operator", "admin")
    x, y = mesh(net, s, ["x", "y"])
    x.send("deregA y")
    x.expect_literal(">>> [Permission denied: only operators may deregA.]")
    wait_listed(x, "y", "online")
    chat_ok(x, y, "you were not kicked")


def test_defect_deregA_by_operator_allowed(net):
    s = net.server("--operator", "admin")
    admin, y = mesh(net, s, ["admin", "y"])
    admin.send("deregA y")
    admin.expect_literal(">>> [y is now offline.]")
    y.expect_literal(">>> [You were deregistered by admin.]")
    y.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(admin, "y", "offline")
    admin.send("deregA nobody")
    admin.expect_literal(">>> [Unknown user nobody.]")
    # y comes back with its own credential
    y.send("reg y")
    y.expect_literal(">>> [Welcome, You are registered.]")
    wait_listed(admin, "y", "online")


def test_defect_deregA_operator_option_repeatable(net):
    s = net.server("--operator", "root1", "--operator", "Root2")
    r2, y = mesh(net, s, ["root2", "y"])
    r2.send("deregA y")
    r2.expect_literal(">>> [y is now offline.]")


# ---- forged datagrams ----------------------------------------------------

def test_defect_forged_chat_from_raw_socket_ignored(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    r = raw_socket()
    try:
        for i in range(5):
            r.sendto(w.chat(random.getrandbits(32), "x", "y", f"forged {i}"),
                     ("127.0.0.1", y.port))
        r.sendto(w.chat(7, "nobody", "y", "forged from a stranger"),
                 ("127.0.0.1", y.port))
        r.settimeout(0.3)
        try:
            d, _ = r.recvfrom(2048)
            acked = d
        except socket.timeout:
            acked = None
    finally:
        r.close()
    assert acked is None, f"the forged chat was acknowledged: {acked!r}"
    chat_ok(x, y, "the real one")  # sync: y processed the earlier datagrams
    assert not any("forged" in ln for ln in y.out.lines), y.out.lines


def test_defect_forged_chat_ack_ignored(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    r = raw_socket()
    y.signal(signal.SIGSTOP)
    try:
        x.send("send y nobody will ack this")
        # Spray CHAT_ACKs "from y" from a wrong address.
        for i in range(2000):
            r.sendto(w.chat_ack(random.getrandbits(32), "y"),
                     ("127.0.0.1", x.port))
        x.expect_literal(">>> [No ACK from y, message sent to server.]")
    finally:
        y.signal(signal.SIGCONT)
        r.close()
    assert not any("[Message received by y.]" in ln
                   for ln in x.out.lines[:x.cursor])


def test_defect_forged_table_datagrams_ignored(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    r = raw_socket()
    try:
        evil = w.entry("mallory", 1, "127.0.0.1", 4444)
        moved_y = w.entry("y", 1, "127.0.0.1", r.getsockname()[1])
        for base in range(0, 40):
            tok = random.getrandbits(64)
            r.sendto(w.table_delta(base, tok, base, base + 1,
                                   [evil, moved_y]), ("127.0.0.1", x.port))
            r.sendto(w.table_page(base, tok, base + 1, 1, 0, [evil]),
                     ("127.0.0.1", x.port))
    finally:
        r.close()
    # x's table is unchanged: no mallory, y at its real port.
    start = len(x.out.lines)
    ip, port = wait_listed(x, "y", "online")
    assert port == y.port
    assert not any("mallory" in ln for ln in x.lines_since(start))
    chat_ok(x, y, "y was not redirected")


# ---- nick as a file name -------------------------------------------------

def test_defect_nick_used_as_file_name_path_traversal_refused(net, tmp_path):
    s = net.server()
    x = net.client("x", s)
    x.send("reg ../x")
    x.expect(r"^>>> \[Invalid nick")
    # A raw REGISTER with a path as nick must not hurt the server.
    r = raw_socket()
    try:
        for n in (b"../x", b"/etc/passwd", b"..", b"a/b"):
            r.sendto(w.register(1, n, os.urandom(32)), ("127.0.0.1", s.port))
    finally:
        r.close()
    assert s.alive()
    # The client's state dir holds exactly "x.cred", nothing else.
    assert sorted(os.listdir(x.state)) == ["x.cred"]
    y = net.client("y", s)
    chat_ok(y, x, "server still fine")


# ---- malformed datagrams ------------------------------------------------

MALFORMED = [
    b"", b"\x01", b"\x01\x01", b"\x01\x01\x00\x00\x00", b"reg",
    b"reg x", b"deregA x", b"dereg x", b"send x hi", b"list",
    b"\xff\xfe\xfd\xfc", b"\x80" * 40, b"\x00" * 6, b"\x02\x01\x00\x00\x00\x01",
    b"\x01\x99\x00\x00\x00\x01",                     # unknown type
    b"\x01\x01\x00\x00\x00\x01\x00",                  # truncated REGISTER
    w.register(3, "x", b"\x00" * 31),                 # credential short
    w.register(4, "X", os.urandom(32)),               # upper case on wire
    w.register(5, b"\xff\xfe", os.urandom(32)),       # non-UTF-8 nick
    w.register(6, "", os.urandom(32)),                # empty nick
    w.register(7, "a" * 33, os.urandom(32)),          # nick too long
    w.register(8, "x", os.urandom(32)) + b"trailing",
    w.register(9, "x", os.urandom(32), cookie=b"\x00" * 40),
    w.tokened(w.SAVE, 10, 1, w.nick("x") + struct.pack(">I", 1)
              + w.text16(b"\xc3\x28")),               # invalid UTF-8 text
    w.tokened(w.SAVE, 11, 1, w.nick("x") + struct.pack(">I", 1)
              + struct.pack(">H", 5000) + b"a" * 10),  # length beyond end
    w.tokened(w.MAIL_REQ, 12, 0, struct.pack(">Q", 0)),
    w.tokened(w.TABLE_REQ, 13, 0, b""),
    w.tokened(w.HEARTBEAT, 14, 0xFFFFFFFFFFFFFFFF),
    w.chat(15, "x", "y", "chat sent to the server"),
    w.header(w.ERROR, 16) + b"\x00",
    b"A" * 1300,                                      # larger than 1200
    b"\x01" + os.urandom(1250),
]


def test_defect_malformed_datagrams_do_not_crash_server(net):
    s = net.server()
    x = net.client("x", s)
    r = raw_socket()
    try:
        for d in MALFORMED:
            r.sendto(d, ("127.0.0.1", s.port))
        rnd = random.Random(1234)
        for _ in range(300):
            n = rnd.randrange(0, 200)
            d = bytes(rnd.getrandbits(8) for _ in range(n))
            if rnd.random() < 0.7 and n >= 2:
                d = b"\x01" + bytes([rnd.choice([1, 2, 3, 0x10, 0x20, 0x30,
                                                 0x31, 0x40, 0x50, 0x61,
                                                 0x70, 0x7f])]) + d[2:]
            r.sendto(d, ("127.0.0.1", s.port))
    finally:
        r.close()
    # The server still works for old and new clients.
    y = net.client("y", s)
    wait_listed(x, "y")
    wait_listed(y, "x")
    chat_ok(x, y, "after the storm")
    go_offline(y, x)
    x.send("send y stored after the storm")
    x.expect_literal(">>> [Messages received by the server and saved]")
    assert s.alive()


def test_defect_malformed_datagrams_do_not_crash_client(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    r = raw_socket()
    try:
        for d in MALFORMED:
            r.sendto(d, ("127.0.0.1", x.port))
    finally:
        r.close()
    chat_ok(y, x, "client survived")
    assert x.alive()


def test_defect_reg_with_no_stored_messages_does_not_crash(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    go_offline(x, y)
    x.send("reg x")
    x.expect_literal(">>> [Welcome, You are registered.]")
    wait_listed(y, "x", "online")
    x.assert_no_line(r"\[You have messages\]", within=0.3)
    chat_ok(y, x, "no mail, no crash")
    assert s.alive()


# ---- long messages and big mailboxes ------------------------------------

def test_defect_message_over_1024_bytes_not_truncated(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    body = "".join(chr(ord("a") + i % 26) for i in range(1100))
    chat_ok(x, y, body)
    accents = "\u00e9" * 550  # 1100 bytes of two-byte UTF-8
    chat_ok(y, x, accents)
    # 1101 bytes: refused, naming the limit; nothing is sent.
    x.send("send y " + body + "z")
    x.expect_literal(
        ">>> [Message too long: 1101 bytes, the limit is 1100 bytes.]")
    y.assert_no_line(r"^>>> x: ", within=0.3)


def test_defect_stored_mail_larger_than_one_datagram(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    go_offline(x, y)
    bodies = [f"{i:02d}" + chr(ord("A") + i) * 1098 for i in range(5)]
    for b in bodies:
        y.send(f"send x {b}")
        y.expect_literal(">>> [Messages received by the server and saved]")
    x.send("reg x")
    x.expect_literal(">>> [You have messages]")
    for b in bodies:
        m = x.expect(rf"^>>> y: {TS} (.*)$")
        assert m.group(1) == b  # intact, in order


def test_defect_more_than_16_offline_messages_delivered_in_order(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    go_offline(x, y)
    n = 40
    for i in range(n):
        y.send(f"send x stored message number {i:03d}")
        y.expect_literal(">>> [Messages received by the server and saved]")
    x.send("reg x")
    x.expect_literal(">>> [You have messages]")
    got = []
    for _ in range(n):
        got.append(x.expect(rf"^>>> y: {TS} (stored message number \d+)$")
                   .group(1))
    assert got == [f"stored message number {i:03d}" for i in range(n)]
    assert sum("[You have messages]" in ln for ln in x.out.lines) == 1


# ---- retries, deletion, vanished clients --------------------------------

def test_defect_retries_actually_resend_five_times(net):
    fake = raw_socket()  # a "server" that never answers
    try:
        port = fake.getsockname()[1]

        class FakeServer:
            host = "127.0.0.1"
        fs = FakeServer()
        fs.port = port
        c = net.client("x", fs, wait=False)
        fake.settimeout(4)
        times = []
        while len(times) < 6:
            try:
                d, _ = fake.recvfrom(2048)
            except socket.timeout:
                break
            h = w.parse_header(d)
            assert h is not None and h[1] == w.REGISTER
            times.append(time.monotonic())
            if len(times) == 5:
                fake.settimeout(1.0)  # a sixth one must not come
        c.expect_literal(">>> [Server not responding]")
        c.expect_literal(">>> [Exiting]")
        assert c.wait() == 1
    finally:
        fake.close()
    assert len(times) == 5, times
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.4 <= g <= 0.8 for g in gaps), gaps


def test_defect_stored_messages_not_deleted_before_client_has_them(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    go_offline(y, x)
    y.send("exit")
    y.expect_literal(">>> [Exiting]")
    assert y.wait() == 0
    x.send("send y keep me until acknowledged")
    x.expect_literal(">>> [Messages received by the server and saved]")
    # A client with y's credential fetches the page but never acknowledges
    # it (it "crashes" right after receiving).
    with open(os.path.join(y.state, "y.cred"), "rb") as f:
        cred = f.read()
    rc = w.RawClient("127.0.0.1", s.port)
    try:
        status, _, _, mail = rc.register("y", cred)
        assert status == 0 and mail == 1
        remaining, mails = rc.mail_req(0)
        assert [m[4] for m in mails] == ["keep me until acknowledged"]
    finally:
        rc.close()
    # The real y comes back: the unacknowledged mail is still there.
    y2 = net.client("y", s, state_dir=y.state, wait=False)
    y2.expect_literal(">>> [Welcome, You are registered.]")
    y2.expect_literal(">>> [You have messages]")
    y2.expect(rf"^>>> x: {TS} keep me until acknowledged$")


def test_defect_recipient_killed_with_sigkill_then_restarted_gets_mail(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    y.signal(signal.SIGKILL)  # quits without deregistering
    y.wait()
    x.send("send y you vanished")
    x.expect_literal(">>> [No ACK from y, message sent to server.]")
    x.expect_literal(">>> [Messages received by the server and saved]")
    wait_listed(x, "y", "offline")
    y2 = net.client("y", s, state_dir=y.state, wait=False)
    y2.expect_literal(">>> [Welcome, You are registered.]")
    y2.expect_literal(">>> [You have messages]")
    y2.expect(rf"^>>> x: {TS} you vanished$")
    wait_listed(x, "y", "online")
    chat_ok(x, y2, "welcome back")


# ---- table updates, addresses, unknown recipients, output ---------------

def test_defect_table_updates_not_sent_to_offline_clients(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    go_offline(x, y)
    x.mark()
    z = net.client("z", s)
    wait_listed(y, "z")  # online clients hear about z ...
    z.send("exit")
    z.expect_literal(">>> [Exiting]")
    wait_listed(y, "z", "offline")
    x.assert_no_line(r"\[Client table updated\.\]", within=0.5)  # ... x not


def test_defect_peers_not_assumed_on_127_0_0_1_ipv6_loopback_works(net):
    s = net.server(bind="::1")
    assert s.addr == "::1"
    x = net.client("x", s, host="::1")
    y = net.client("y", s, host="::1")
    ip, port = wait_listed(x, "y")
    assert ip == "::1" and port == y.port
    wait_listed(y, "x")
    chat_ok(x, y, "hello over IPv6")
    chat_ok(y, x, "hello back")
    go_offline(y, x)
    x.send("send y stored over IPv6")
    x.expect_literal(">>> [Messages received by the server and saved]")
    y.send("reg y")
    y.expect_literal(">>> [You have messages]")
    y.expect(rf"^>>> x: {TS} stored over IPv6$")


def test_defect_dual_stack_server_serves_ipv4_and_ipv6(net):
    """R4: a dual-stack server shows IPv4 clients as IPv4 addresses (the
    driver unmaps ::ffff:a.b.c.d before the core sees it)."""
    s = net.server(bind="::")
    x = net.client("x", s, host="127.0.0.1")
    y = net.client("y", s, host="::1")
    ip, _ = wait_listed(x, "y")
    assert ip == "::1"
    ip, _ = wait_listed(y, "x")
    assert ip == "127.0.0.1"


def test_defect_unknown_recipient_not_silently_ignored(net):
    s = net.server()
    x = net.client("x", s)
    x.send("send ghost are you there")
    x.expect_literal(">>> [Unknown user ghost, message not delivered.]")
    # On the wire: a SAVE for an unknown nick gets UNKNOWN_RECIPIENT.
    rc = w.RawClient("127.0.0.1", s.port)
    try:
        st, tok, _, _ = rc.register("raw", os.urandom(32))
        assert st == 0
        rc.id += 1
        d = rc.request(w.tokened(w.SAVE, rc.id, tok, w.nick("ghost")
                                 + struct.pack(">I", 1) + w.text16("hi")),
                       w.SAVE_RESULT)
        assert d is not None and d[14] == 2  # UNKNOWN_RECIPIENT
    finally:
        rc.close()


def test_defect_output_not_garbled_by_concurrent_input(net):
    """R85: output lines are never interleaved, even while chat arrives
    during command output."""
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    for i in range(30):
        x.send(f"send y burst {i}")
        y.send("list")
    for i in range(30):
        y.expect_literal(f">>> x: burst {i}")
    for ln in y.out.lines[1:]:
        assert ln.startswith(">>> "), ln
        assert ln.count(">>> ") == 1, ln


def test_defect_peers_not_assumed_on_127_0_0_1_other_ipv4_address(net):
    s = net.server(bind="127.0.0.1")
    x = net.client("x", s, "--bind", "127.0.0.2")
    y = net.client("y", s, "--bind", "127.0.0.3")
    ip, port = wait_listed(x, "y")
    assert (ip, port) == ("127.0.0.3", y.port)
    ip, port = wait_listed(y, "x")
    assert (ip, port) == ("127.0.0.2", x.port)
    chat_ok(x, y, "not on 127.0.0.1")
    chat_ok(y, x, "me neither")
