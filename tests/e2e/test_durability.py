"""Durable server state (issue 6): nothing acknowledged is lost when the
server process dies.

The crash test drives the real server with raw protocol clients
(udpwire.py: cookie round trip, SAVE, MAIL_REQ) so it can keep many SAVEs in
flight, and kills the server with SIGKILL (by PID) at seeded random moments:

* phase 1: senders keep a steady load of SAVEs to an offline recipient; the
  server is killed and restarted on the same --data-dir and port, again and
  again; senders re-register on ERROR(BAD_SESSION) with their credential and
  retransmit (same msg_id and text) until they get SAVE_RESULT(SAVED), which
  is what the real client shows as `[Messages received by the server and
  saved]`;
* phase 2: the recipient registers and pages its mail (MAIL_REQ ack_upto =
  the last seq it has seen, as the real client does) while the server is
  killed and restarted a few more times.

Then every acknowledged message must have been delivered exactly once
(losses = acknowledged but never delivered; duplicates = the same (sender,
msg_id) delivered under two seqs, or again after the client acknowledged
it). UDPC_DURABILITY_SEED picks another seed; the summary line is printed
(run pytest with -s to see it).
"""
import os
import random
import re
import select
import signal
import socket
import struct
import time

from conftest import TIMEOUT, run_cli
from udpwire import (COOKIE, DEREG, DEREG_RESULT, ERROR, MAIL_PAGE, MAIL_REQ,
                     PROBE, PROBE_ACK, REGISTER_RESULT, SAVE, SAVE_RESULT,
                     nick, parse_header, register, text16, tokened)

SEED = int(os.environ.get("UDPC_DURABILITY_SEED", "20261125"))
SAVE_KILLS = 16       # kills under the SAVE load
DELIVERY_KILLS = 6    # kills while the recipient pages its mail
RETRY = 0.25          # retransmission interval of the raw clients, s
WINDOW = 8            # SAVEs in flight per sender
SEND_GAP = 0.004      # at most one new SAVE per sender per SEND_GAP s
N_SENDERS = 4
ERR_BAD_SESSION = 1
ERR_SESSION_ENDED = 2


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as t:
        t.bind(("127.0.0.1", 0))
        return t.getsockname()[1]


class Peer:
    """A raw protocol client driven by poll() in the test's event loop:
    registers (cookie round trip), re-registers after ERROR(BAD_SESSION)."""

    def __init__(self, name, port, rng):
        self.name = name
        self.server = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.cred = bytes(rng.getrandbits(8) for _ in range(32))
        self.next_id = rng.getrandbits(32)
        self.token = None
        self.cookie = None
        self.reg_id = None
        self.reg_sent = 0.0
        self.registrations = 0
        self.mail_waiting = None

    def new_id(self):
        self.next_id = (self.next_id + 1) & 0xFFFFFFFF
        return self.next_id

    def send(self, data):
        try:
            self.sock.sendto(data, self.server)
        except (BlockingIOError, ConnectionRefusedError):
            pass  # the server is down: retransmission covers it

    def start_register(self):
        self.token = None
        self.cookie = None
        self.reg_sent = 0.0

    def tick_register(self, now):
        if self.token is not None or now - self.reg_sent < RETRY:
            return
        self.reg_id = self.new_id()
        self.reg_sent = now
        self.send(register(self.reg_id, self.name, self.cred,
                           self.cookie or b""))

    def recv_all(self):
        out = []
        while True:
            try:
                d, _ = self.sock.recvfrom(65536)
            except (BlockingIOError, ConnectionRefusedError):
                return out
            out.append(d)

    def handle_common(self, d, now):
        """Registration and session packets; True if d was consumed."""
        h = parse_header(d)
        if h is None:
            return True
        _, t, pid = h
        if t == COOKIE and pid == self.reg_id and self.token is None:
            self.cookie = d[7:7 + d[6]]
            self.reg_sent = 0.0
            self.tick_register(now)
            return True
        if t == REGISTER_RESULT and pid == self.reg_id and self.token is None:
            status, token, _, mail = struct.unpack(">BQQI", d[6:27])
            assert status == 0, (
                f"{self.name}: registration refused with status {status} "
                "(its credential was not kept across the restart?)")
            self.token = token
            self.mail_waiting = mail
            self.registrations += 1
            self.on_registered(now)
            return True
        if t == ERROR and len(d) >= 7 and d[6] in (ERR_BAD_SESSION,
                                                   ERR_SESSION_ENDED):
            if self.token is not None:
                self.start_register()
            return True
        if t == PROBE and self.token is not None:
            self.send(tokened(PROBE_ACK, pid, self.token))
            return True
        return False

    def on_registered(self, now):
        pass

    def close(self):
        self.sock.close()


class Sender(Peer):
    def __init__(self, name, port, rng, to):
        super().__init__(name, port, rng)
        self.to = to
        self.msg_id = rng.getrandbits(31)
        # msg_id -> [text, req_id, last_sent, first_sent, first_req_id]
        self.pending = {}
        self.by_req = {}    # req_id -> msg_id
        self.acked = {}     # msg_id -> text
        self.last_new = 0.0
        self.producing = True
        self.transmissions = 0
        self.ack_time = []  # request-to-ACK of first transmissions, s

    def transmit(self, msg_id, now):
        ent = self.pending[msg_id]
        rid = self.new_id()
        ent[1] = rid
        if ent[3] is None:  # first transmission: time and request id
            ent[3], ent[4] = now, rid
        ent[2] = now
        self.by_req[rid] = msg_id
        self.transmissions += 1
        self.send(tokened(SAVE, rid, self.token,
                          nick(self.to) + struct.pack(">I", msg_id)
                          + text16(ent[0])))

    def on_registered(self, now):
        for m in list(self.pending):
            self.transmit(m, now)

    def tick(self, now):
        if self.token is None:
            self.tick_register(now)
            return
        for m, ent in list(self.pending.items()):
            if now - ent[2] >= RETRY:
                self.transmit(m, now)
        if (self.producing and len(self.pending) < WINDOW
                and now - self.last_new >= SEND_GAP):
            self.msg_id = (self.msg_id + 1) & 0xFFFFFFFF
            text = f"{self.name} message {self.msg_id} " + "x" * (
                self.msg_id % 50)
            self.pending[self.msg_id] = [text, None, None, None, None]
            self.last_new = now
            self.transmit(self.msg_id, now)

    def handle(self, d, now):
        if self.handle_common(d, now):
            return
        _, t, pid = parse_header(d)
        if t != SAVE_RESULT or pid not in self.by_req:
            return
        m = self.by_req.pop(pid)
        status = d[14]
        assert status in (0, 4), f"{self.name}: SAVE_RESULT status {status}"
        if status == 0 and m in self.pending:  # SAVED: acknowledged
            ent = self.pending.pop(m)
            self.acked[m] = ent[0]
            if ent[4] == pid:  # answered without a retransmission
                self.ack_time.append(now - ent[3])


class Recipient(Peer):
    def __init__(self, name, port, rng):
        super().__init__(name, port, rng)
        self.last_seq = 0
        self.req_id = None
        self.req_sent = 0.0
        self.delivered = {}   # (sender, msg_id) -> [seq, ...]
        self.texts = {}
        self.refiltered = 0   # mails re-sent with seq <= last_seq (dropped)
        self.done = False
        self.collecting = False

    def on_registered(self, now):
        self.req_sent = 0.0
        self.tick(now)

    def tick(self, now):
        if self.token is None:
            self.tick_register(now)
            return
        if not self.collecting or self.done:
            return
        if now - self.req_sent >= RETRY:
            self.req_id = self.new_id()
            self.req_sent = now
            self.send(tokened(MAIL_REQ, self.req_id, self.token,
                              struct.pack(">Q", self.last_seq)))

    def handle(self, d, now):
        if self.handle_common(d, now):
            return
        _, t, pid = parse_header(d)
        if t == DEREG_RESULT:
            self.dereg_status = d[14]
            return
        if t != MAIL_PAGE or pid != self.req_id or not self.collecting:
            return
        off = 14
        remaining, count = struct.unpack(">IB", d[off:off + 5])
        off += 5
        top = self.last_seq
        for _ in range(count):
            seq, mid, _ts = struct.unpack(">QIQ", d[off:off + 20])
            off += 20
            fl = d[off]
            frm = d[off + 1:off + 1 + fl].decode()
            off += 1 + fl
            (tl,) = struct.unpack(">H", d[off:off + 2])
            text = d[off + 2:off + 2 + tl].decode()
            off += 2 + tl
            if seq <= self.last_seq:
                self.refiltered += 1  # the client shows a seq only once
                continue
            self.delivered.setdefault((frm, mid), []).append(seq)
            self.texts[(frm, mid)] = text
            top = max(top, seq)
        if count == 0 and remaining == 0:
            self.done = True  # everything up to last_seq acknowledged
            return
        self.last_seq = top
        self.req_sent = 0.0
        self.tick(now)


def pump(peers, seconds, until=None):
    """Run the raw clients for `seconds` (or until until() is true)."""
    end = time.monotonic() + seconds
    fds = {p.sock.fileno(): p for p in peers}
    while True:
        now = time.monotonic()
        if now >= end or (until is not None and until()):
            return
        for p in peers:
            p.tick(now)
        r, _, _ = select.select(list(fds), [], [], 0.002)
        now = time.monotonic()
        for fd in r:
            p = fds[fd]
            for d in p.recv_all():
                p.handle(d, now)


def start_server(net, port, data_dir):
    return net.server("--data-dir", data_dir, "--mail-per-recipient",
                      "10000000", "--mail-total", "100000000",
                      "--log-level", "warn", port=port)


def test_durability_kill9_under_save_load_exactly_once(net, tmp_path):
    rng = random.Random(SEED)
    t0 = time.monotonic()
    port = free_port()
    data = str(tmp_path / "durable")
    s = start_server(net, port, data)
    kills = 0

    rcpt = Recipient("rcpt", port, rng)
    rcpt.start_register()
    pump([rcpt], TIMEOUT, until=lambda: rcpt.token is not None)
    assert rcpt.token is not None, "recipient could not register"
    # Offline (but registered): SAVEs to it are stored.
    rcpt.dereg_status = None
    rid = rcpt.new_id()
    for _ in range(20):
        rcpt.send(tokened(DEREG, rid, rcpt.token))
        pump([rcpt], RETRY, until=lambda: rcpt.dereg_status is not None)
        if rcpt.dereg_status is not None:
            break
    assert rcpt.dereg_status == 0, "recipient could not deregister"
    rcpt.token = None

    senders = [Sender(f"snd{i}", port, rng, "rcpt") for i in range(N_SENDERS)]
    for p in senders:
        p.start_register()

    # Phase 1: kill -9 under a steady SAVE load.
    for _ in range(SAVE_KILLS):
        pump(senders, rng.uniform(0.15, 0.8))
        s.kill()  # SIGKILL by PID, then reaped
        kills += 1
        pump(senders, rng.uniform(0.0, 0.2))  # clients retransmit meanwhile
        s = start_server(net, port, data)
    for p in senders:
        p.producing = False
    pump(senders, 20 * TIMEOUT / 5,
         until=lambda: all(not p.pending for p in senders))
    unacked = sum(len(p.pending) for p in senders)
    assert unacked == 0, f"{unacked} SAVEs never acknowledged"

    # Phase 2: the recipient pages its mail while the server dies again.
    rcpt.collecting = True
    rcpt.start_register()
    mid_delivery = 0
    for _ in range(DELIVERY_KILLS):
        # short: since the store keeps its mail index in memory a whole
        # delivery of ~5000 messages takes well under 0.1 s
        pump([rcpt], rng.uniform(0.001, 0.02), until=lambda: rcpt.done)
        s.kill()
        kills += 1
        mid_delivery += not rcpt.done
        s = start_server(net, port, data)
    pump([rcpt], 12 * TIMEOUT, until=lambda: rcpt.done)
    assert mid_delivery >= 1, "no kill landed during the mail delivery"
    assert rcpt.done, (f"delivery did not finish (last seq {rcpt.last_seq}, "
                       f"{len(rcpt.delivered)} messages)")

    acked = {(p.name, m): t for p in senders for m, t in p.acked.items()}
    losses = [k for k in acked if k not in rcpt.delivered]
    dups = [k for k, seqs in rcpt.delivered.items() if len(seqs) > 1]
    unknown = [k for k in rcpt.delivered if k not in acked]
    wrong_text = [k for k in acked
                  if k in rcpt.texts and rcpt.texts[k] != acked[k]]
    elapsed = time.monotonic() - t0
    lat = sorted(x for p in senders for x in p.ack_time)
    p50 = lat[len(lat) // 2] * 1000 if lat else 0
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0
    print(f"\ndurability: seed={SEED} kills={kills} "
          f"messages_checked={len(acked)} losses={len(losses)} "
          f"duplicates={len(dups)} unacked_delivered={len(unknown)} "
          f"kills_mid_delivery={mid_delivery} "
          f"resent_filtered={rcpt.refiltered} "
          f"transmissions={sum(p.transmissions for p in senders)} "
          f"registrations={sum(p.registrations for p in senders)} "
          f"ack_p50_ms={p50:.1f} ack_p99_ms={p99:.1f} "
          f"elapsed_s={elapsed:.1f}")
    assert kills >= 20
    assert len(acked) >= 1000, f"only {len(acked)} messages acknowledged"
    assert not losses, f"{len(losses)} acknowledged messages lost: " \
        f"{losses[:5]}"
    assert not dups, f"{len(dups)} messages delivered twice: {dups[:5]}"
    assert not wrong_text, wrong_text[:5]
    # Every message was retransmitted until acknowledged, so nothing
    # delivered can be unknown to the senders.
    assert not unknown, unknown[:5]
    # Every sender re-registered after (nearly) every restart, with the
    # credential the restarted server loaded from its store.
    assert all(p.registrations >= SAVE_KILLS // 2 for p in senders)


def test_durability_real_clients_offline_mail_survives_kill9(net, tmp_path):
    """The real client: x saves mail for offline y, the server is killed
    with SIGKILL and restarted on the same data directory; x re-registers
    silently and carries on, y registers again and gets the mail once."""
    from conftest import wait_listed
    from test_grading import TS, mesh
    port = free_port()
    data = str(tmp_path / "durable")
    s = net.server("--data-dir", data, port=port)
    x, y = mesh(net, s, ["x", "y"])
    y.send("dereg y")
    y.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(x, "y", "offline")
    x.send("send y saved before the crash")
    x.expect_literal(">>> [Messages received by the server and saved]")
    s.kill()
    net.server("--data-dir", data, port=port)
    x.send("send y saved after the crash")
    x.expect_literal(">>> [Messages received by the server and saved]",
                     timeout=12)
    assert sum("[Welcome" in ln for ln in x.out.lines) == 1
    y.send("reg y")
    y.expect_literal(">>> [You have messages]")
    got = [y.expect(rf"^>>> x: {TS} (saved \S+ the crash)$").group(1)
           for _ in range(2)]
    assert got == ["saved before the crash", "saved after the crash"]
    y.assert_no_line(r"saved (before|after) the crash", within=1.0)


def test_durability_refuses_corrupt_or_newer_database(tmp_path):
    """A data directory whose database is garbage, or from a newer
    udpchat, stops the server at start with a clear message (status 1),
    and the file is left as it was."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "server.db").write_bytes(b"definitely not sqlite " * 300)
    r = run_cli("-s", "0", "--bind", "127.0.0.1", "--data-dir", bad)
    assert r.returncode == 1
    assert re.search(r"cannot open the message store: .*not a SQLite "
                     r"database", r.stderr), r.stderr
    assert (bad / "server.db").read_bytes() == b"definitely not sqlite " * 300

    import sqlite3
    newer = tmp_path / "newer"
    newer.mkdir()
    db = sqlite3.connect(newer / "server.db")
    db.execute("PRAGMA user_version = 999")
    db.execute("CREATE TABLE future(x)")
    db.commit()
    db.close()
    r = run_cli("-s", "0", "--bind", "127.0.0.1", "--data-dir", newer)
    assert r.returncode == 1
    assert "schema version 999 is newer" in r.stderr, r.stderr

    f = tmp_path / "file"
    f.write_text("")
    r = run_cli("-s", "0", "--bind", "127.0.0.1", "--data-dir", f / "sub")
    assert r.returncode == 1
    assert "cannot create data directory" in r.stderr, r.stderr


def test_durability_mail_expiry_deletes_only_old_mail(net, tmp_path):
    """--mail-expiry-days N: stored mail older than N days is deleted (at
    start, then hourly); younger mail is delivered as usual."""
    import sqlite3
    from conftest import wait_listed
    from test_grading import TS, mesh
    port = free_port()
    data = tmp_path / "durable"
    s = net.server("--data-dir", data, port=port)
    x, y = mesh(net, s, ["x", "y"])
    y.send("dereg y")
    y.expect_literal(">>> [You are Offline. Bye.]")
    wait_listed(x, "y", "offline")
    for t in ("ten days old", "fresh"):
        x.send(f"send y {t}")
        x.expect_literal(">>> [Messages received by the server and saved]")
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
    db = sqlite3.connect(data / "server.db")
    n = db.execute("UPDATE mail SET ts_ms = ts_ms - 10 * 86400000 WHERE "
                   "CAST(body AS TEXT) = 'ten days old'").rowcount
    db.commit()
    db.close()
    assert n == 1
    s2 = net.server("--data-dir", data, "--mail-expiry-days", "7",
                    port=port)
    s2.expect(r"mail expiry: deleted 1 message older than 7 days",
              stream="err")
    y.send("reg y")
    y.expect_literal(">>> [You have messages]")
    y.expect(rf"^>>> x: {TS} fresh$", timeout=12)
    y.assert_no_line("ten days old", within=1.0)
