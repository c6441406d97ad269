"""behaviour.md "What the grading checked" and "The assignment's two
official scenarios", one test (or more) per item."""
import os
import re
import signal
import time

from conftest import wait_listed

TS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def mesh(net, server, nicks):
    """Start clients and wait until each lists every other one online."""
    cs = [net.client(n, server) for n in nicks]
    for c in cs:
        for other in cs:
            if other is not c:
                wait_listed(c, other.nick)
    return cs


def chat_ok(a, b, text):
    a.send(f"send {b.nick} {text}")
    b.expect_literal(f">>> {a.nick}: {text}")
    a.expect_literal(f">>> [Message received by {b.nick}.]")


def exit_all(*cs):
    for c in cs:
        c.send("exit")
    for c in cs:
        c.expect_literal(">>> [Exiting]")
        assert c.wait() == 0


# ---- official scenarios -----------------------------------------------

def test_official_scenario_1_offline_messages_delivered_on_reg(net):
    s = net.server()
    x, y, z = mesh(net, s, ["x", "y", "z"])
    # all chat with each other
    for a in (x, y, z):
        for b in (x, y, z):
            if a is not b:
                chat_ok(a, b, f"hi {b.nick} from {a.nick}")
    # dereg x
    x.send("dereg x")
    x.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(y, "x", "offline")
    wait_listed(z, "x", "offline")
    # y and z send to x: stored at the server
    y.send("send x message one from y")
    y.expect_literal(">>> [Messages received by the server and saved]")
    z.send("send x message two from z")
    z.expect_literal(">>> [Messages received by the server and saved]")
    # reg x delivers both, in order
    x.send("reg x")
    x.expect_literal(">>> [Welcome, You are registered.]")
    x.expect_literal(">>> [You have messages]")
    x.expect(rf"^>>> y: {TS} message one from y$")
    x.expect(rf"^>>> z: {TS} message two from z$")
    wait_listed(y, "x", "online")
    # everyone exits
    exit_all(x, y, z)
    assert s.alive()


def test_official_scenario_2_server_down_five_attempts_then_exit(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    y.send("dereg y")
    y.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(x, "y", "offline")
    s.kill()  # the server is stopped
    t0 = time.monotonic()
    x.send("send y are you there")
    x.expect_literal(">>> [Server not responding]", timeout=4)
    x.expect_literal(">>> [Exiting]", timeout=1)
    assert x.wait(timeout=2) == 1
    elapsed = time.monotonic() - t0
    # 5 sends 500 ms apart: the failure is declared after ~2.5 s (plus the
    # 500 ms chat wait if the client tried the peer first).
    assert 2.0 <= elapsed <= 3.5 + 0.5, elapsed


# ---- what the grading checked -----------------------------------------

def test_grading_basic_chat_between_online_clients(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    chat_ok(x, y, "hello y")
    chat_ok(y, x, "hello x, nice to see you")
    chat_ok(x, y, "bye")


def test_grading_list_shows_nick_ip_port_status(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    start = len(x.out.lines)
    x.send("list")
    x.expect(r"^>>> nick\s+ip\s+port\s+status$")
    x.expect(rf"^>>> x\s+127\.0\.0\.1\s+{x.port}\s+online$")
    x.expect(rf"^>>> y\s+127\.0\.0\.1\s+{y.port}\s+online$")
    assert len(x.lines_since(start)) == 3


def test_grading_dereg_then_reg(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("dereg x")
    x.expect_literal(">>> [You are Offline. Bye.]")
    y.expect_literal(">>> [Client table updated.]")
    wait_listed(y, "x", "offline")
    assert x.alive()  # the client keeps running
    x.send("reg x")
    x.expect_literal(">>> [Welcome, You are registered.]")
    wait_listed(y, "x", "online")
    chat_ok(y, x, "welcome back")


def test_grading_offline_messages_for_one_client(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("dereg x")
    x.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(y, "x", "offline")
    for i in range(3):
        y.send(f"send x offline message {i}")
        y.expect_literal(">>> [Messages received by the server and saved]")
    x.send("reg x")
    x.expect_literal(">>> [You have messages]")
    for i in range(3):
        x.expect(rf"^>>> y: {TS} offline message {i}$")


def test_grading_offline_messages_for_n_clients(net):
    s = net.server()
    cs = mesh(net, s, ["a", "b", "c", "d"])
    a, b, c, d = cs
    for off in (a, b, c):
        off.send(f"dereg {off.nick}")
        off.expect_literal(">>> [You are Offline. Bye.]")
    for off in (a, b, c):
        wait_listed(d, off.nick, "offline")
    for off in (a, b, c):
        d.send(f"send {off.nick} stored for {off.nick}")
        d.expect_literal(">>> [Messages received by the server and saved]")
    a.send("send b offline senders cannot send")  # a is offline itself
    a.expect(r"^>>> \[You are offline")
    for off in (a, b, c):
        off.send(f"reg {off.nick}")
        off.expect_literal(">>> [You have messages]")
        off.expect(rf"^>>> d: {TS} stored for {off.nick}$")


def test_grading_sending_to_yourself_does_not_crash(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("send x talking to myself")
    # Whatever the client says, it and the server keep working.
    x.expect(r"^>>> ")
    chat_ok(x, y, "still alive")
    chat_ok(y, x, "me too")
    assert s.alive()


def test_grading_spaces_in_messages_kept(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    text = "  two leading,  double  inner,   and trailing  "
    x.send(f"send y {text}")
    y.expect_literal(f">>> x: {text}")
    x.expect_literal(">>> [Message received by y.]")


def test_grading_spaces_kept_in_stored_messages(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    y.send("dereg y")
    y.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(x, "y", "offline")
    text = "   spaced    out   message   "
    x.send(f"send y {text}")
    x.expect_literal(">>> [Messages received by the server and saved]")
    y.send("reg y")
    y.expect_literal(">>> [You have messages]")
    y.expect(rf"^>>> x: {TS} {re.escape(text)}$")


def test_grading_server_messages_displayed_properly(net):
    s = net.server()
    x = net.client("x", s)
    x.send("send nobody hello?")
    x.expect_literal(">>> [Unknown user nobody, message not delivered.]")
    x.send("frobnicate")
    x.expect(r"^>>> \[Unknown command 'frobnicate'.*\]$")
    x.send("send")
    x.expect_literal(">>> [Usage: send <nick> <message>]")
    x.send("deregA")
    x.expect_literal(">>> [Usage: deregA <nick>]")
    x.send("help")
    x.expect(r"^>>> .*send")
    # every output line is a whole ">>> " line: nothing garbled
    assert all(ln.startswith(">>> ") for ln in x.out.lines[1:])


def test_grading_dereg_of_anyone_else_refused(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("dereg y")
    x.expect(r"^>>> \[You can only dereg yourself")
    # y is still online everywhere and still chats
    wait_listed(x, "y", "online")
    chat_ok(x, y, "you are still here")


def test_grading_duplicate_nick_refused(net, tmp_path):
    s = net.server()
    x = net.client("x", s)
    # Another user (another state dir = another credential) takes "x".
    dup = net.client("x", s, state_dir=str(tmp_path / "other-user"),
                     wait=False)
    dup.expect_literal(">>> [Nick x is already taken by another user.]")
    assert dup.wait() == 1
    # The original x is untouched.
    x.send("list")
    x.expect(rf"^>>> x\s+127\.0\.0\.1\s+{x.port}\s+online$")


def test_grading_timeout_and_ack_failure(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    y.signal(signal.SIGSTOP)  # alive but silent: no ACK, no PROBE_ACK
    try:
        t0 = time.monotonic()
        x.send("send y are you awake")
        x.expect_literal(">>> [No ACK from y, message sent to server.]")
        assert time.monotonic() - t0 >= 0.45
        x.expect_literal(">>> [Messages received by the server and saved]")
        wait_listed(x, "y", "offline")
    finally:
        y.signal(signal.SIGCONT)


def test_grading_recipient_really_online_exists(net):
    """The save-message check: the server probes the recipient; if it
    answers, the sender gets [Client <nick> exists!!] and a fresh table."""
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    y.signal(signal.SIGSTOP)  # misses the chat's 500 ms ACK window ...
    try:
        x.send("send y late but alive")
        x.expect_literal(">>> [No ACK from y, message sent to server.]")
    finally:
        y.signal(signal.SIGCONT)  # ... but answers the server's probe
    x.expect_literal(">>> [Client y exists!!]")
    x.expect_literal(">>> [Client table updated.]")
    wait_listed(x, "y", "online")


def test_grading_server_down_peer_chat_still_works(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    s.kill()
    chat_ok(x, y, "the server is gone")
    chat_ok(y, x, "we do not need it to chat")


def test_grading_exit_deregisters_and_updates_others(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("exit")
    x.expect_literal(">>> [Exiting]")
    assert x.wait() == 0
    wait_listed(y, "x", "offline")


# ---- topology, timers, scale ---------------------------------------------

def test_topology_chat_is_peer_to_peer_server_never_relays(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    s.signal(signal.SIGSTOP)  # the server cannot relay anything now
    try:
        chat_ok(x, y, "straight to you")
        chat_ok(y, x, "straight back")
    finally:
        s.signal(signal.SIGCONT)


def _fake_registered_client(net, table):
    import threading
    import udpwire as w
    fake = w.FakeServer(table=table)
    th = threading.Thread(target=fake.serve, daemon=True)
    th.start()
    c = net.client("x", fake)
    return fake, th, c


def _assert_five_sends(fake, ptype):
    import udpwire as w
    sends = fake.of_type(ptype)
    assert len(sends) == 5, [w.parse_header(r[2]) for r in fake.received]
    ids = {w.parse_header(r[2])[2] for r in sends}
    assert len(ids) == 1  # retransmissions reuse the id
    gaps = [b[0] - a[0] for a, b in zip(sends, sends[1:])]
    assert all(0.4 <= g <= 0.8 for g in gaps), gaps


def test_timer_dereg_resent_five_times_then_server_down_exit(net):
    import udpwire as w
    fake, th, x = _fake_registered_client(
        net, [("x", 1, "127.0.0.1", 1)])
    try:
        x.send("dereg x")
        x.expect_literal(">>> [Server not responding]", timeout=4)
        x.expect_literal(">>> [Exiting]")
        assert x.wait() == 1
        _assert_five_sends(fake, w.DEREG)
    finally:
        fake.close()
        th.join(2)


def test_timer_save_message_resent_five_times_then_server_down_exit(net):
    import udpwire as w
    fake, th, x = _fake_registered_client(
        net, [("x", 1, "127.0.0.1", 1), ("y", 0, "127.0.0.1", 9)])
    try:
        x.send("send y you are offline")
        x.expect_literal(">>> [Server not responding]", timeout=4)
        x.expect_literal(">>> [Exiting]")
        assert x.wait() == 1
        _assert_five_sends(fake, w.SAVE)
        d = fake.of_type(w.SAVE)[0][2]
        assert d.endswith(b"you are offline")
    finally:
        fake.close()
        th.join(2)


def test_timer_exit_with_server_down_reports_and_exits(net):
    s = net.server()
    x = net.client("x", s)
    s.kill()
    x.send("exit")
    x.expect_literal(">>> [Server not responding]", timeout=4)
    x.expect_literal(">>> [Exiting]")
    assert x.wait() in (0, 1)


def test_grading_many_clients_table_spans_pages(net):
    """"Handles any number of clients": 26 clients (two TABLE_PAGEs of at
    most 20 in protocol 1.0; one page since pages are packed, P6.2), a
    third of them offline with stored mail."""
    s = net.server()
    nicks = [f"c{i:02d}" for i in range(26)]
    cs = [net.client(n, s) for n in nicks]
    last = cs[-1]
    for n in nicks:
        wait_listed(last, n)
    offline = cs[:9]
    for c in offline:
        go = f"dereg {c.nick}"
        c.send(go)
        c.expect_literal(">>> [You are Offline. Bye.]")
    for c in offline:
        wait_listed(last, c.nick, "offline")
        last.send(f"send {c.nick} mail for {c.nick}")
        last.expect_literal(">>> [Messages received by the server and saved]")
    for c in offline:
        c.send(f"reg {c.nick}")
        c.expect_literal(">>> [You have messages]")
        c.expect(rf"^>>> c25: {TS} mail for {c.nick}$")
    for c in offline:
        # the deltas of the last come-backs leave the server up to 50 ms
        # after them (P6.3 coalescing window)
        wait_listed(cs[0], c.nick)
    time.sleep(0.3)  # the rest of the last list
    start = cs[0].cursor = len(cs[0].out.lines)
    cs[0].send("list")
    cs[0].expect(r"^>>> c25\s")
    rows = [ln for ln in cs[0].lines_since(start)
            if re.match(r"^>>> c\d\d\s+127\.0\.0\.1\s+\d+\s+online$", ln)]
    assert len(rows) == 26


def test_grading_vanished_client_marked_offline_after_missed_heartbeats(net):
    """A client that stops talking (here: stopped) is marked offline by the
    server after 3 missed heartbeat intervals (30 s), and every online
    client is told. Slow by nature: ~30-40 s."""
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    y.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        x.mark()
        x.expect_literal(">>> [Client table updated.]", timeout=45)
        elapsed = time.monotonic() - t0
        wait_listed(x, "y", "offline")
        assert 19 <= elapsed <= 45, elapsed
    finally:
        y.signal(signal.SIGCONT)
    # y notices on its next heartbeat that its session ended.
    y.expect_literal(">>> [You are Offline. Bye.]", timeout=15)
    y.send("reg y")
    y.expect_literal(">>> [Welcome, You are registered.]")
    wait_listed(x, "y", "online")


def test_grading_mailbox_quota_and_1000_messages_delivered(net):
    """Offline mail in bulk: 1000 stored messages (the default per-recipient
    quota) all delivered in order on reg; the 1001st is refused with a
    clear notice."""
    import struct
    import udpwire as w
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    x.send("dereg x")
    x.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(y, "x", "offline")
    rc = w.RawClient("127.0.0.1", s.port)
    try:
        st, tok, _, _ = rc.register("bulk", os.urandom(32))
        assert st == 0
        for i in range(1000):
            rc.id += 1
            d = rc.request(w.tokened(w.SAVE, rc.id, tok, w.nick("x")
                                     + struct.pack(">I", i)
                                     + w.text16(f"bulk {i:04d}")),
                           w.SAVE_RESULT)
            assert d is not None and d[14] == 0, (i, d)
    finally:
        rc.close()
    y.send("send x one too many")
    y.expect_literal(">>> [Mailbox of x is full, message not delivered.]")
    x.send("reg x")
    x.expect_literal(">>> [You have messages]")
    got = [x.expect(rf"^>>> bulk: {TS} (bulk \d+)$", timeout=10).group(1)
           for _ in range(1000)]
    assert got == [f"bulk {i:04d}" for i in range(1000)]


def test_grading_utf8_messages_intact_direct_and_stored(net):
    s = net.server()
    x, y = mesh(net, s, ["x", "y"])
    text = "h\u00e9llo w\u00f6rld \u4f60\u597d \U0001F600 \u2014 fin"
    chat_ok(x, y, text)
    y.send("dereg y")
    y.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(x, "y", "offline")
    x.send(f"send y {text}")
    x.expect_literal(">>> [Messages received by the server and saved]")
    y.send("reg y")
    y.expect_literal(">>> [You have messages]")
    y.expect(rf"^>>> x: {TS} {re.escape(text)}$")


def test_timer_probe_ack_and_heartbeat_sent_once_never_error(net):
    """R34: PROBE_ACK and HEARTBEAT are sent at once, never queued or
    retransmitted (the scripted server answers neither). R12: a client
    never sends ERROR, not even for garbage from the server's address."""
    import struct
    import udpwire as w
    fake, th, x = _fake_registered_client(net, [("x", 1, "127.0.0.1", 1)])
    try:
        t_reg = fake.received[-1][0]
        fake.send_to_client(w.tokened(w.PROBE, 777, fake.token))
        for junk in (b"", b"\x01", b"\x01\x7f\x00\x00\x00\x01\x09",
                     w.tokened(w.TABLE_DELTA, 5, fake.token, b"\xff"),
                     w.tokened(w.MAIL_PAGE, 6, fake.token,
                               struct.pack(">IB", 0, 99)),
                     b"\x02" + b"x" * 40):
            fake.send_to_client(junk)
        x.mark()
        # One heartbeat interval (10 s) and then some: one HEARTBEAT only.
        deadline = t_reg + 12.0
        while time.monotonic() < deadline:
            time.sleep(0.1)
        acks = fake.of_type(w.PROBE_ACK)
        assert len(acks) == 1, acks
        assert w.parse_header(acks[0][2])[2] == 777  # echoes the probe id
        hbs = fake.of_type(w.HEARTBEAT)
        assert len(hbs) == 1, [r[0] - t_reg for r in hbs]
        assert 9.0 <= hbs[0][0] - t_reg <= 11.5
        assert fake.of_type(w.ERROR) == []
        assert x.alive()
    finally:
        fake.close()
        th.join(2)


def test_grading_server_full_refused_clearly(net):
    s = net.server("--max-clients", "2")
    net.client("a", s)
    net.client("b", s)
    c = net.client("c", s, wait=False)
    c.expect_literal(">>> [Server is full, try again later.]")
    assert c.wait() == 1


def test_grading_mailbox_quota_small(net):
    s = net.server("--mail-per-recipient", "3")
    x, y = mesh(net, s, ["x", "y"])
    x.send("dereg x")
    x.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(y, "x", "offline")
    for i in range(3):
        y.send(f"send x q{i}")
        y.expect_literal(">>> [Messages received by the server and saved]")
    y.send("send x q3")
    y.expect_literal(">>> [Mailbox of x is full, message not delivered.]")
    x.send("reg x")
    x.expect_literal(">>> [You have messages]")
    for i in range(3):
        x.expect(rf"^>>> y: {TS} q{i}$")
    # delivered and acknowledged: the mailbox has room again
    wait_listed(y, "x", "online")
    x.send("dereg x")
    x.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(y, "x", "offline")
    y.send("send x room again")
    y.expect_literal(">>> [Messages received by the server and saved]")
