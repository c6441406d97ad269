#!/usr/bin/env python3
"""fuzz/seeds.py - writes the initial seed corpora into a directory tree
(OUT/<target>/seed-*): wire datagrams from tests/vectors/wire.vectors,
scripted sessions for the stateful harnesses (their input formats are
documented at the top of fuzz/fuzz_server.c and fuzz/fuzz_client.c), and
typed command lines. ci/fuzz --seed merges them into fuzz/corpus/ with
libFuzzer -merge=1, so only inputs that add coverage are committed.

usage: fuzz/seeds.py OUTDIR
"""
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NICKS = ["op", "alice", "bob", "carol", "dave", "x", "op2", "zz_-9"]


def nick(n):
    return bytes([NICKS.index(n)])


def vectors():
    out, hexs, name = [], [], None
    for line in open(os.path.join(ROOT, "tests/vectors/wire.vectors")):
        line = line.rstrip("\n")
        if line.startswith("name: "):
            if name is not None:
                out.append((name, bytes.fromhex("".join(hexs))))
            name, hexs = line[6:], []
        elif line.startswith("hex:"):
            hexs.append(line[4:].replace(" ", ""))
    if name is not None:
        out.append((name, bytes.fromhex("".join(hexs))))
    return out


def text(s, raw=False):
    b = s.encode()
    v = len(b) | (0x8000 if raw else 0)
    if raw:
        return struct.pack(">H", v) + b
    # printable mapping in the harness: 0x20 + byte % 95
    return struct.pack(">H", v) + bytes((c - 0x20) % 95 for c in b)


# ---- server: op(slot) bytes ------------------------------------------------
def s_reg(slot, who, cred=0, flush=1, idb=0):
    return bytes([6, slot, flush, 0, idb]) + nick(who) + bytes([cred])


def s_reg_echo(slot, flush=1, idb=1):
    return bytes([6, slot, flush, 1, idb])


def s_req(slot, kind, extra=b"", flush=1, idb=2, tok=0):
    body = bytes([6, slot, flush, kind, idb]) + extra
    if kind != 9:
        body += bytes([tok])
    return body


def server_sessions():
    cfg = bytes([0, 0, 0])
    login_a = s_reg(0, "alice") + s_reg_echo(0)
    login_b = s_reg(3, "bob", idb=3) + s_reg_echo(3, idb=4)
    login_op = s_reg(2, "op", cred=1, idb=5) + s_reg_echo(2, idb=6)
    table = s_req(0, 2, bytes([0, 0]))
    hb = s_req(0, 3)
    save = s_req(0, 6, nick("bob") + bytes([7]) + text("hello bob"))
    expiry = bytes([3, 0])
    probe_ack = s_req(3, 9)
    mail = s_req(3, 8, bytes([0]))
    dereg = s_req(3, 4)
    kick = s_req(2, 5, nick("alice"))
    big = bytes([2, 0, 0x03, 0x00])  # +49 s
    yield "login", cfg + login_a + table
    yield "two", cfg + login_a + login_b + table + hb
    yield "save_online", cfg + login_a + login_b + save + expiry + probe_ack
    yield "save_offline", cfg + login_a + login_b + dereg + save + mail
    yield "mail_after_timeout", (cfg + login_a + login_b + big + expiry + big
                                 + expiry + save + s_reg(3, "bob", idb=9)
                                 + s_reg_echo(3, idb=10) + mail)
    yield "kick", cfg + login_a + login_op + kick + s_req(2, 2, bytes([0, 0]))
    yield "taken", cfg + login_a + s_reg(1, "alice", cred=2) + s_reg_echo(1)
    yield "full", bytes([1, 1, 1]) + login_a + login_b + save + save
    yield "commit_fail", (cfg + bytes([5, 0]) + login_a + bytes([4, 0])
                          + s_reg_echo(0, idb=7))
    yield "v6_twin", cfg + s_reg(5, "carol") + s_reg_echo(5) + login_a
    save2 = s_req(0, 6, nick("bob") + bytes([8]) + text("second"), idb=3)
    back_b = s_reg(3, "bob", idb=11) + s_reg_echo(3, idb=12)
    yield "quota", bytes([0, 1, 0]) + login_a + login_b + dereg + save + save2
    yield "mail_deliver", (cfg + login_a + login_b + dereg + save + save2
                           + back_b + mail + s_req(3, 8, bytes([0]), idb=5))
    yield "restart", cfg + login_a + bytes([5, 5]) + login_a + table
    yield "burst", cfg + login_a + bytes([6, 0, 3, 3, 2, 0, 200])
    yield "raw_version", cfg + bytes([0, 0, 0, 8]) + bytes([2, 1, 0, 0, 0, 1, 0, 0])


# ---- client: op bytes -------------------------------------------------------
def c_srv(kind, body, token=b"", src=0):
    return bytes([1, kind]) + body + token + bytes([src])


def c_cookie():
    return c_srv(0, bytes([0, 19]) + bytes(range(20)))  # length 1 + 19


def c_reg_ok(mail=0):
    return c_srv(1, bytes([0, 0x42, 3, mail]))


def c_table(entries, total=None):
    b = bytes([0, 3, len(entries)])
    for n, st in entries:
        b += nick(n) + bytes([st])
    b += bytes([len(entries) if total is None else 0x80 | total])
    return c_srv(3, b, bytes([0]))


def c_cmd(w, who="bob", msg=None, help_word=0):
    b = bytes([6, w]) + nick(who) + bytes([0])
    if w == 6:
        b += bytes([help_word])
    if w == 0:
        b += text(msg or "hi")
    return b


def c_raw_cmd(line):
    b = line.encode()
    return bytes([6, 7, len(b)]) + b


def c_chat(who, msg, idb=1):
    return bytes([4, idb]) + nick(who) + bytes([0]) + text(msg)


def c_time(ms):
    return bytes([7, 0x80]) + struct.pack(">H", ms // 16)


EXPIRE = bytes([8])


def client_sessions():
    login = c_cookie() + c_reg_ok() + c_table([("alice", 1), ("bob", 1),
                                               ("carol", 0)])
    yield "login", login
    yield "list", login + c_cmd(1)
    yield "chat_in", login + c_chat("bob", "hi alice") + c_chat("bob", "hi", 1)
    yield "chat_out_ack", login + c_cmd(0, "bob", "hello") + bytes([5, 2])
    yield "chat_out_noack", (login + c_cmd(0, "bob", "hello") + EXPIRE
                             + c_srv(9, bytes([0, 0])) + bytes([0]))
    yield "mail", (c_cookie() + c_reg_ok(2) + c_srv(10, bytes([0, 0, 2, 5, 1])
                   + b"\0\0\0\0" + nick("bob") + text("m1") + bytes([6, 2])
                   + b"\0\0\0\1" + nick("carol") + text("m2"), bytes([0])))
    yield "dereg", login + c_cmd(3, "alice") + c_srv(7, bytes([0, 0, 0]),
                                                     bytes([0]))
    yield "dereg_other", login + c_cmd(4, "bob") + c_srv(7, bytes([1, 0, 1]),
                                                         bytes([0]))
    yield "exit", login + c_cmd(5) + c_srv(7, bytes([0, 0, 0]), bytes([0]))
    yield "server_down", c_time(600) + EXPIRE + EXPIRE + EXPIRE + EXPIRE + EXPIRE
    yield "kicked", login + c_srv(8, bytes([0]) + nick("op"), bytes([0]))
    yield "delta", login + c_srv(5, bytes([0, 3, 0, 2]) + nick("dave")
                                 + bytes([1]) + nick("bob") + bytes([2]),
                                 bytes([0]))
    yield "heartbeat", login + c_time(10000) + EXPIRE + c_srv(6, bytes([0, 4]),
                                                             bytes([0]))
    yield "probe", login + c_srv(11, b"\0\0\0\x09", bytes([0]))
    yield "error", login + c_cmd(1) + c_srv(12, bytes([0x10, 0, 0]))
    yield "help", c_cmd(6, help_word=0) + c_raw_cmd("help deregA")


CMDS = ["send bob hello", "send Bob  two  spaces ", "list", "reg alice",
        "dereg alice", "deregA bob", "exit", "help", "help send", "  list  ",
        "send bob", "reg A b", "DEREG x", "send " + "a" * 40 + " x",
        "send bob " + "y" * 1100, "send bob \u00e9\u20ac", "help nosuch",
        "\tlist", "send alice\thi"]


def main():
    out = sys.argv[1]
    for t in ("wire", "server", "client", "cmd"):
        os.makedirs(os.path.join(out, t), exist_ok=True)

    def put(t, name, data):
        with open(os.path.join(out, t, "seed-" + name), "wb") as f:
            f.write(data)

    for name, data in vectors():
        put("wire", name, data)
    for name, data in server_sessions():
        put("server", name, data)
    for name, data in client_sessions():
        put("client", name, data)
    for i, line in enumerate(CMDS):
        put("cmd", "line%02d" % i, line.encode())


if __name__ == "__main__":
    main()
