"""The server driver's batched I/O (issue 8): recvmmsg/sendmmsg, large socket
buffers, and the rate-limit options, driven with raw protocol packets
(udpwire) from many sockets. Every wait has a deadline; no test sleeps and
hopes."""
import os
import select
import signal
import socket
import time

import pytest

import udpwire as w
from conftest import SCALE

N_SESSIONS = 20
PER_SESSION = 100  # 2,000 heartbeats in all


def register_sessions(port, hosts, prefix):
    """One RawClient per host in hosts, each registered as prefix<i>."""
    clients = []
    for i, host in enumerate(hosts):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        rc = w.RawClient(host, port, family=fam)
        clients.append(rc)
        status, token, _, _ = rc.register(f"{prefix}{i}", os.urandom(32))
        assert status == 0, f"{prefix}{i}: REGISTER_RESULT status {status}"
        assert rc.token == token
    return clients


def drain(clients, got, until_count, deadline):
    """Collect HEARTBEAT_ACKs (as (client index, id)) into the set got until
    it holds until_count entries or the deadline passes. With deadline None
    only what is already queued is read (no waiting)."""
    by_fd = {rc.sock.fileno(): i for i, rc in enumerate(clients)}
    for rc in clients:
        rc.sock.setblocking(False)
    while len(got) < until_count:
        if deadline is None:
            ready = list(by_fd)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(list(by_fd), [], [], left)
        progress = False
        for fd in ready:
            i = by_fd[fd]
            while True:
                try:
                    d = clients[i].sock.recv(65536)
                except BlockingIOError:
                    break
                progress = True
                h = w.parse_header(d)
                if h and h[1] == w.HEARTBEAT_ACK:
                    got.add((i, h[2]))
        if deadline is None and not progress:
            break
    return got


def stat_value(proc, name):
    m = proc.expect(rf"\b{name}=(\d+)", stream="err")
    return int(m.group(1))


def stop_server(s):
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
    s.expect(r"server stopped", stream="err")


@pytest.mark.parametrize("bind", ["127.0.0.1", "::"])
def test_burst_of_2000_heartbeats_from_20_sessions_all_answered(net, bind):
    """The whole burst waits in the socket buffer (the server is stopped
    while it is sent), then the server drains it in recvmmsg batches and
    answers every heartbeat, in order per session. With `::` (dual stack)
    half of the sessions come over IPv4 (mapped addresses) and half over
    IPv6."""
    s = net.server("--store", "memory", bind=bind)
    if bind == "::":
        hosts = ["127.0.0.1" if i % 2 == 0 else "::1"
                 for i in range(N_SESSIONS)]
    else:
        hosts = ["127.0.0.1"] * N_SESSIONS
    clients = register_sessions(s.port, hosts, "perf")
    try:
        for rc in clients:
            rc.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.signal(signal.SIGSTOP)
        try:
            for k in range(PER_SESSION):
                for rc in clients:
                    rc.send(w.tokened(w.HEARTBEAT, 50000 + k, rc.token))
        finally:
            s.signal(signal.SIGCONT)
        want = {(i, 50000 + k) for i in range(N_SESSIONS)
                for k in range(PER_SESSION)}
        got = drain(clients, set(), len(want),
                    time.monotonic() + 20 * SCALE)
        missing = want - got
        assert not missing, (f"{len(missing)} of {len(want)} heartbeats "
                             f"unanswered, e.g. {sorted(missing)[:5]}")
    finally:
        for rc in clients:
            rc.close()
    stop_server(s)
    assert stat_value(s, "dropped_session_rate_limited") == 0
    assert stat_value(s, "send_dropped") == 0
    # Batched: the queued burst came in far fewer recvmmsg calls than
    # datagrams (64 per call at most), and replies left in batches.
    calls = stat_value(s, "recvmmsg")
    datagrams = stat_value(s, "rx_datagrams")
    assert datagrams >= len(want)
    assert calls * 4 <= datagrams, (calls, datagrams)
    assert stat_value(s, "tx_max_batch") > 1


def test_session_rate_option_drops_a_burst_beyond_the_bucket(net):
    """--session-rate 5 --session-burst 5: of 30 heartbeats sent at once,
    the bucket lets about 5 through (plus what 5/s refills meanwhile); the
    rest is dropped unanswered and counted."""
    s = net.server("--store", "memory", "--session-rate", "5",
                   "--session-burst", "5")
    (rc,) = register_sessions(s.port, ["127.0.0.1"], "limited")
    try:
        t0 = time.monotonic()
        for k in range(30):
            rc.send(w.tokened(w.HEARTBEAT, 7000 + k, rc.token))
        # Some acknowledgements come back (the first 5 at least).
        got = drain([rc], set(), 5, time.monotonic() + 5 * SCALE)
        assert len(got) >= 5
        s.expect(r"limit: session of limited0 at 127\.0\.0\.1:\d+ over 5 "
                 r"datagrams/s \(burst 5\): dropping", stream="err")
        stop_server(s)
        elapsed = time.monotonic() - t0
        drain([rc], got, 30, None)  # whatever else arrived before the stop
    finally:
        rc.close()
    allowed = 5 + int(5 * elapsed) + 1  # refill while this test ran
    assert len(got) <= allowed
    dropped = stat_value(s, "dropped_session_rate_limited")
    assert dropped >= 30 - allowed
    assert dropped + len(got) == 30


def test_session_rate_unlimited_answers_beyond_the_default_bucket(net):
    """--session-rate unlimited: one session's 3,000 back-to-back heartbeats
    (more than the default bucket of 2,000) are all answered."""
    s = net.server("--store", "memory", "--session-rate", "unlimited")
    (rc,) = register_sessions(s.port, ["127.0.0.1"], "fast")
    n = 3000
    try:
        rc.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        got = set()
        for k in range(n):
            rc.send(w.tokened(w.HEARTBEAT, k + 1, rc.token))
            if k % 100 == 99:
                drain([rc], got, n, None)  # keep the receive buffer short
        drain([rc], got, n, time.monotonic() + 20 * SCALE)
        assert len(got) == n, f"{n - len(got)} of {n} unanswered"
    finally:
        rc.close()
    stop_server(s)
    assert stat_value(s, "dropped_session_rate_limited") == 0


def test_server_logs_socket_buffer_sizes(net):
    s = net.server("--store", "memory")
    m = s.expect(r"INFO  socket buffers: receive (\d+), send (\d+) bytes",
                 stream="err")
    # The kernel grants at least its default; as root (SO_RCVBUFFORCE) the
    # full 8 MiB asked for (getsockopt reports twice that).
    assert int(m.group(1)) > 0 and int(m.group(2)) > 0
    if os.geteuid() == 0:
        assert int(m.group(1)) >= 8 << 20
        assert int(m.group(2)) >= 8 << 20
