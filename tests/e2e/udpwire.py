"""A minimal Python codec for udpchat datagrams (PROTOCOL.md), enough for
the tests to forge packets from a raw UDP socket and to play a bare-bones
client. Big-endian; header = version u8, type u8, id u32; token-bearing
types carry token u64 right after the header."""
import ipaddress
import socket
import struct
import time

VERSION = 1

REGISTER = 0x01
COOKIE = 0x02
REGISTER_RESULT = 0x03
TABLE_REQ = 0x10
TABLE_PAGE = 0x11
TABLE_DELTA = 0x12
HEARTBEAT = 0x20
HEARTBEAT_ACK = 0x21
DEREG = 0x30
DEREG_OTHER = 0x31
DEREG_RESULT = 0x32
KICKED = 0x33
SAVE = 0x40
SAVE_RESULT = 0x41
MAIL_REQ = 0x50
MAIL_PAGE = 0x51
PROBE = 0x60
PROBE_ACK = 0x61
CHAT = 0x70
CHAT_ACK = 0x71
ERROR = 0x7F


def header(ptype, pid):
    return struct.pack(">BBI", VERSION, ptype, pid & 0xFFFFFFFF)


def nick(n):
    b = n.encode() if isinstance(n, str) else n
    return struct.pack(">B", len(b)) + b


def text16(t):
    b = t.encode() if isinstance(t, str) else t
    return struct.pack(">H", len(b)) + b


def addr(ip, port):
    a = ipaddress.ip_address(ip)
    fam = 4 if a.version == 4 else 6
    return struct.pack(">B", fam) + a.packed + struct.pack(">H", port)


def entry(n, status, ip, port):
    return nick(n) + struct.pack(">B", status) + addr(ip, port)


def chat(pid, frm, to, text):
    return header(CHAT, pid) + nick(frm) + nick(to) + text16(text)


def chat_ack(pid, frm):
    return header(CHAT_ACK, pid) + nick(frm)


def table_delta(pid, token, base, new, entries):
    return (header(TABLE_DELTA, pid) + struct.pack(">QQQB", token, base, new,
                                                   len(entries))
            + b"".join(entries))


def table_page(pid, token, version, total, start, entries):
    return (header(TABLE_PAGE, pid)
            + struct.pack(">QQIIB", token, version, total, start,
                          len(entries))
            + b"".join(entries))


def register(pid, n, cred, cookie=b""):
    return header(REGISTER, pid) + struct.pack(">B", len(cookie)) + cookie \
        + nick(n) + cred


def tokened(ptype, pid, token, body=b""):
    return header(ptype, pid) + struct.pack(">Q", token) + body


def parse_header(d):
    if len(d) < 6:
        return None
    v, t, i = struct.unpack(">BBI", d[:6])
    return v, t, i


class RawClient:
    """A bare protocol client on its own UDP socket (for tests that need to
    behave differently from the real client, e.g. never acknowledge mail)."""

    def __init__(self, server_host, server_port, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((server_host, 0))
        self.server = (server_host, server_port)
        self.id = 1000
        self.token = None

    def close(self):
        self.sock.close()

    def send(self, data, to=None):
        self.sock.sendto(data, to or self.server)

    def recv(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            d, a = self.sock.recvfrom(65536)
        except socket.timeout:
            return None, None
        return d, a

    def request(self, data, want_type, timeout=3.0, tries=6):
        """Send data until a datagram of want_type echoing its id arrives."""
        _, _, pid = parse_header(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(data)
            end = time.monotonic() + timeout / tries
            while time.monotonic() < end:
                d, _ = self.recv(max(0.01, end - time.monotonic()))
                if d is None:
                    break
                h = parse_header(d)
                if h and h[1] == want_type and h[2] == pid:
                    return d
                if h and h[1] == PROBE and self.token is not None:
                    # answer probes so the server keeps us online
                    self.send(tokened(PROBE_ACK, h[2], self.token))
        return None

    def register(self, n, cred):
        """Full cookie exchange; returns (status, token, version, mail)."""
        self.id += 1
        d = self.request(register(self.id, n, cred), COOKIE)
        if d is None:
            raise AssertionError("no COOKIE from the server")
        clen = d[6]
        cookie = d[7:7 + clen]
        self.id += 1
        d = self.request(register(self.id, n, cred, cookie), REGISTER_RESULT)
        if d is None:
            raise AssertionError("no REGISTER_RESULT from the server")
        status, token, version, mail = struct.unpack(">BQQI", d[6:6 + 21])
        if status == 0:
            self.token = token
        return status, token, version, mail

    def mail_req(self, ack_upto):
        """MAIL_REQ; returns (remaining, [(seq, msg_id, ts, from, text)])."""
        self.id += 1
        d = self.request(tokened(MAIL_REQ, self.id, self.token,
                                 struct.pack(">Q", ack_upto)), MAIL_PAGE)
        if d is None:
            raise AssertionError("no MAIL_PAGE from the server")
        off = 14
        remaining, count = struct.unpack(">IB", d[off:off + 5])
        off += 5
        mails = []
        for _ in range(count):
            seq, mid, ts = struct.unpack(">QIQ", d[off:off + 20])
            off += 20
            fl = d[off]
            frm = d[off + 1:off + 1 + fl].decode()
            off += 1 + fl
            (tl,) = struct.unpack(">H", d[off:off + 2])
            text = d[off + 2:off + 2 + tl].decode()
            off += 2 + tl
            mails.append((seq, mid, ts, frm, text))
        return remaining, mails


class FakeServer:
    """A scripted udpchat server on a raw socket: registers one client, serves
    a fixed table, then answers nothing else. Records every datagram it gets
    as (monotonic time, type, data). Run serve() in a thread."""

    def __init__(self, host="127.0.0.1", table=()):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.table = list(table)  # (nick, status, ip, port)
        self.token = 0x1122334455667788
        self.received = []
        self.client_addr = None
        self.stop = False

    def close(self):
        self.stop = True
        self.sock.close()

    def send_to_client(self, data):
        self.sock.sendto(data, self.client_addr)

    def of_type(self, t):
        return [r for r in self.received if r[1] == t]

    def serve(self):
        self.sock.settimeout(0.05)
        while not self.stop:
            try:
                d, a = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            h = parse_header(d)
            if h is None:
                continue
            _, t, pid = h
            self.received.append((time.monotonic(), t, d))
            self.client_addr = a
            if t == REGISTER:
                clen = d[6]
                if clen == 0:
                    cookie = b"\x00\x00\x00\x01" + b"c" * 16
                    self.sock.sendto(header(COOKIE, pid)
                                     + struct.pack(">B", len(cookie))
                                     + cookie, a)
                else:
                    self.sock.sendto(header(REGISTER_RESULT, pid)
                                     + struct.pack(">BQQI", 0, self.token,
                                                   1, 0), a)
            elif t == TABLE_REQ:
                ents = [entry(*e) for e in self.table]
                self.sock.sendto(table_page(pid, self.token, 1,
                                            len(ents), 0, ents), a)
            # everything else: silence (the server is "down")
