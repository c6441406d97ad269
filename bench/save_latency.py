#!/usr/bin/python3
"""save_latency.py - durable SAVEs per second and request-to-ACK latency of
the real server (SQLite store, group commit per event-loop batch), driven by
raw protocol clients over loopback.

    bench/save_latency.py [path/to/udpchat] [seconds-per-mode]

Modes, in one run, each on a fresh --data-dir:
  serial   1 sender, 1 SAVE in flight: every SAVE is its own transaction
           (one fsync per message);
  group    16 senders x 8 SAVEs in flight: the server commits whatever one
           receive batch holds in one transaction;
  memory   the group load on --store memory (no disk), for reference.
Latency = SAVE sent -> SAVE_RESULT(SAVED) received (first transmissions
only; retransmissions after 1 s are counted separately).
"""
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "e2e"))
from udpwire import (COOKIE, DEREG, REGISTER_RESULT, SAVE,  # noqa: E402
                     SAVE_RESULT, nick, parse_header, register, text16,
                     tokened)


def reg(sock, server, name, cred, pid):
    sock.settimeout(1.0)
    cookie = b""
    for _ in range(20):
        sock.sendto(register(pid, name, cred, cookie), server)
        try:
            d, _ = sock.recvfrom(65536)
        except socket.timeout:
            continue
        h = parse_header(d)
        if h[1] == COOKIE:
            cookie = d[7:7 + d[6]]
        elif h[1] == REGISTER_RESULT:
            status, token = struct.unpack(">BQ", d[6:15])
            assert status == 0, status
            return token
    raise SystemExit(f"cannot register {name}")


def run(binary, mode, senders, window, seconds):
    data = tempfile.mkdtemp(prefix="udpc-bench-", dir=".")
    args = [binary, "-s", "0", "--bind", "127.0.0.1", "--log-level", "error",
            "--mail-per-recipient", "100000000", "--mail-total", "1000000000"]
    args += ["--store", "memory"] if mode == "memory" else ["--data-dir",
                                                              data]
    srv = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    line = srv.stdout.readline()
    port = int(line.rsplit(":", 1)[1])
    server = ("127.0.0.1", port)
    try:
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.bind(("127.0.0.1", 0))
        tok = reg(r, server, "rcpt", os.urandom(32), 1)
        r.sendto(tokened(DEREG, 2, tok), server)
        r.recvfrom(65536)
        socks = []
        for i in range(senders):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            t = reg(s, server, f"s{i}", os.urandom(32), 10)
            s.setblocking(False)
            socks.append([s, t, {}, 100])  # sock, token, pending, next id
        lat, retrans, acked = [], 0, 0
        body = text16("x" * 200)
        t_end = time.monotonic() + seconds
        fds = {c[0].fileno(): c for c in socks}

        def send(c, first=None):
            c[3] += 1
            now = time.monotonic()
            c[2][c[3]] = (first or now, now, first is None)
            c[0].sendto(tokened(SAVE, c[3], c[1], nick("rcpt")
                                + struct.pack(">I", c[3]) + body), server)

        for c in socks:
            for _ in range(window):
                send(c)
        t0 = time.monotonic()
        while time.monotonic() < t_end:
            rd, _, _ = select.select(list(fds), [], [], 0.05)
            now = time.monotonic()
            for fd in rd:
                c = fds[fd]
                while True:
                    try:
                        d, _ = c[0].recvfrom(65536)
                    except BlockingIOError:
                        break
                    h = parse_header(d)
                    if h[1] != SAVE_RESULT or h[2] not in c[2]:
                        continue
                    first, sent, clean = c[2].pop(h[2])
                    if d[14] == 0:
                        acked += 1
                        if clean:
                            lat.append(now - first)
                    send(c)
            for c in socks:  # retransmit what waited > 1 s
                for pid, (first, sent, _) in list(c[2].items()):
                    if now - sent > 1.0:
                        del c[2][pid]
                        retrans += 1
                        send(c, first)
        el = time.monotonic() - t0
        lat.sort()
        p = (lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000
             if lat else float("nan"))
        print(f"{mode:7} {senders:3}x{window:<3} {acked / el:10.0f} "
              f"{p(0.5):9.2f} {p(0.99):9.2f} {retrans:8}", flush=True)
    finally:
        srv.terminate()
        srv.wait(10)
        shutil.rmtree(data, ignore_errors=True)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "build", "release", "udpchat")
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    print("mode    load      saves/s    p50 ms    p99 ms  retrans")
    run(binary, "serial", 1, 1, seconds)
    run(binary, "group", 16, 8, seconds)
    run(binary, "memory", 16, 8, seconds)


if __name__ == "__main__":
    main()
