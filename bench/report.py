#!/usr/bin/python3
"""report.py - merge one bench/run's outputs into bench/results.json, draw
bench/plots/*.svg with gnuplot (bench/plots.gp) and regenerate BENCHMARKS.md.

    bench/report.py WORKDIR --command CMD --date ISO --durations JSON
                    [--repo DIR] [--data-dir DIR]

WORKDIR holds what bench/run collected: rr.json (bench_rr all), blast.json
(bench_join blast), join-N.json (bench_join join), mem-N.json (bench_join memory), store.txt (store_bench's
table), *.skipped (a line saying why a tool was skipped or failed).
`bench/report.py --from-results` only redraws the plots and BENCHMARKS.md
from an existing bench/results.json.

bench/results.json (schema "udpchat-bench/1"; units are in the key names:
_s seconds, _ms milliseconds, _us microseconds, _per_s per second, _bytes
bytes; "units" says so too):
  date_utc, command, git_commit, git_dirty, durations_s {total, build,
  bench_rr, bench_join, store_bench}, machine {nproc, cpu_model, kernel,
  ram_bytes, os, data_dir, data_dir_fs, sqlite, loadavg},
  goals [{goal, target, unit, at_most, measured, measured_over_target,
  pass, source}],
  bench_rr   the --json output of `bench_rr all` (schema
             "udpchat-bench-rr/1": cheap, saves, p2p, server_stats),
  blast      the "blast" object of `bench_join blast` (raw UDP baseline:
             1200-byte datagrams from one process to another over
             loopback; received_per_s is what got through),
  join       [bench_join join objects, sorted by n; memory_online = the
             memory figures of that run; raw_udp_floor_s = table_datagrams
             / blast.received_per_s, the time raw UDP alone needs to move
             the same datagrams; converge_over_floor = converge_s / that],
  join_memory [bench_join memory objects],
  store_bench {description, messages_per_mode, runs [{per_txn, messages,
             rate_per_s, p50_ms, p99_ms, commits}]},
  skipped    {tool: why it was not measured or failed}.
"""
import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


# ---- collecting ------------------------------------------------------------
def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"error": f"{os.path.basename(path)}: {e}"}


def machine_info(data_dir):
    info = {"nproc": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["kernel"] = platform.release()
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["ram_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    if data_dir:
        info["data_dir"] = data_dir
        try:
            out = subprocess.run(["df", "-T", "-P", data_dir],
                                 capture_output=True, text=True,
                                 check=True).stdout.splitlines()[-1].split()
            info["data_dir_fs"] = f"{out[1]} on {out[0]} (mounted at {out[6]})"
        except (OSError, subprocess.CalledProcessError, IndexError):
            pass
    try:
        info["sqlite"] = subprocess.run(
            ["sh", "-c", "pkg-config --modversion sqlite3"],
            capture_output=True, text=True).stdout.strip() or None
    except OSError:
        pass
    return info


def parse_store_bench(path):
    """store_bench prints one row per batch size: per-txn msgs msgs/s p50
    p99 commits [per-operation columns]; the first six are taken."""
    runs, header = [], ""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        tok = line.split()
        if len(tok) >= 6 and tok[0].isdigit():
            try:
                runs.append({"per_txn": int(tok[0]), "messages": int(tok[1]),
                             "rate_per_s": float(tok[2]),
                             "p50_ms": float(tok[3]),
                             "p99_ms": float(tok[4]),
                             "commits": int(tok[5])})
            except ValueError:
                pass
        elif not runs and line.strip():
            header += line.strip() + " "
    return {"description": header.strip(), "runs": runs}


def git(*args):
    try:
        return subprocess.run(["git", "-C", REPO, *args], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def collect(a):
    w = a.workdir
    res = {"schema": "udpchat-bench/1",
           "units": {"_s": "seconds", "_ms": "milliseconds",
                     "_us": "microseconds", "_per_s": "per second",
                     "_bytes": "bytes", "ratio": "measured / goal, or "
                     "server / baseline where named so"},
           "date_utc": a.date, "command": a.command,
           "git_commit": git("rev-parse", "HEAD"),
           "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
           "durations_s": json.loads(a.durations) if a.durations else {},
           "machine": machine_info(a.data_dir)}
    res["machine"]["loadavg"] = a.loadavg
    skipped = {}
    for p in glob.glob(os.path.join(w, "*.skipped")):
        with open(p) as f:
            skipped[os.path.basename(p)[:-8]] = f.read().strip()
    res["skipped"] = skipped
    rr = os.path.join(w, "rr.json")
    res["bench_rr"] = load_json(rr) if os.path.exists(rr) else None
    join = []
    for p in glob.glob(os.path.join(w, "join-*.json")):
        d = load_json(p)
        for r in d.get("join", []):
            mem = (d.get("memory") or [{}])[0]
            r["memory_online"] = mem
            join.append(r)
    res["join"] = sorted(join, key=lambda r: r.get("n", 0))
    bl = os.path.join(w, "blast.json")
    res["blast"] = (load_json(bl).get("blast") or None
                    if os.path.exists(bl) else None)
    rate = (res["blast"] or {}).get("received_per_s") or 0
    for r in res["join"]:
        fl = r.get("table_datagrams", 0) / rate if rate > 0 else None
        r["raw_udp_floor_s"] = fl
        r["converge_over_floor"] = (r["converge_s"] / fl
                                    if fl and r.get("converged") else None)
    mem = []
    for p in glob.glob(os.path.join(w, "mem-*.json")):
        d = load_json(p)
        mem.extend(d.get("memory", []))
    res["join_memory"] = sorted(mem, key=lambda r: r.get("registered", 0))
    sb = parse_store_bench(os.path.join(w, "store.txt"))
    if sb is not None:
        sb["messages_per_mode"] = a.store_n
    res["store_bench"] = sb
    res["goals"] = goals(res)
    return res


# ---- goals -----------------------------------------------------------------
def goals(res):
    g = []

    def add(name, goal, measured, unit, at_most, source):
        ok = None
        ratio = None
        if measured is not None:
            ratio = measured / goal if goal else None
            ok = measured <= goal if at_most else measured >= goal
        g.append({"goal": name, "target": goal, "unit": unit,
                  "at_most": at_most, "measured": measured,
                  "measured_over_target": ratio, "pass": ok,
                  "source": source})

    join = {r.get("n"): r for r in res.get("join") or []}
    for n, lim in ((500, 0.5), (10000, 5.0)):
        r = join.get(n)
        v = r.get("converge_s") if r and r.get("converged") else None
        add(f"{n:,} joins converged", lim, v, "s", True,
            f"bench_join join --n {n}")
    rr = res.get("bench_rr") or {}
    saves = (rr.get("saves") or {}).get("runs") or []
    s64 = [r for r in saves if r.get("store") == "sqlite"
           and r.get("in_flight") == 64]
    add("durable saves/s, 64 in flight", 55000,
        s64[0]["rate_per_s"] if s64 else None, "/s", False,
        "bench_rr saves (sqlite)")
    add("durable save p99, 64 in flight", 10,
        s64[0]["p99_ms"] if s64 else None, "ms", True,
        "bench_rr saves (sqlite)")
    ch = rr.get("cheap") or {}
    add("cheap request rate / raw echo rate", 0.6, ch.get("ratio"), "ratio",
        False, "bench_rr cheap")
    p2 = rr.get("p2p") or {}
    add("send-to-ACK p50 / raw ping-pong p50", 1.5, p2.get("ratio_p50"),
        "ratio", True, "bench_rr p2p")
    for r in res.get("join_memory") or []:
        add(f"server memory per registered client at "
            f"{r.get('registered', 0):,}", 512, r.get("bytes_per_client"),
            "bytes", True, f"bench_join memory --n {r.get('registered')}")
    return g


# ---- plots -----------------------------------------------------------------
def plots(res, outdir):
    gp = shutil.which("gnuplot")
    if gp is None:
        print("report: gnuplot not found (apt-get install gnuplot-nox): no "
              "plots", file=sys.stderr)
        return []
    os.makedirs(outdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="bench-plots-")
    try:
        joindat = savesdat = storedat = ""
        jr = [r for r in res.get("join") or [] if r.get("converged")]
        if jr:
            joindat = os.path.join(tmp, "join.dat")
            with open(joindat, "w") as f:
                for r in jr:
                    f.write(f"{r['n']} {r['register_s']} {r['converge_s']}\n")
        runs = ((res.get("bench_rr") or {}).get("saves") or {}).get("runs")
        if runs:
            by = {}
            for r in runs:
                by.setdefault(r["in_flight"], {})[r["store"]] = r["rate_per_s"]
            savesdat = os.path.join(tmp, "saves.dat")
            with open(savesdat, "w") as f:
                for k in sorted(by):
                    f.write(f"{k} {by[k].get('sqlite', 'NaN')} "
                            f"{by[k].get('memory', 'NaN')}\n")
        sb = (res.get("store_bench") or {}).get("runs")
        if sb:
            storedat = os.path.join(tmp, "store.dat")
            with open(storedat, "w") as f:
                for r in sb:
                    f.write(f"{r['per_txn']} {r['rate_per_s']}\n")
        m = res.get("machine", {})
        stamp = (f"{res.get('date_utc', '')}, {m.get('nproc')} cores "
                 f"{m.get('cpu_model', '')}").replace('"', "'")
        e = (f'outdir="{outdir}"; stamp="{stamp}"; joindat="{joindat}"; '
             f'savesdat="{savesdat}"; storedat="{storedat}"')
        subprocess.run([gp, "-e", e, os.path.join(HERE, "plots.gp")],
                       check=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [p for p in ("join.svg", "saves.svg")
            if os.path.exists(os.path.join(outdir, p))]


# ---- BENCHMARKS.md -----------------------------------------------------------
def fmt(v, digits=None, unit=""):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (digits is None and abs(v) >= 100):
        return f"{v:,.0f}{unit}"
    if digits is None:
        digits = 3 if abs(v) < 10 else 1
    return f"{v:,.{digits}f}{unit}"


def table(head, rows, align=None):
    align = align or ["---:"] * len(head)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def verdict(ok):
    return "-" if ok is None else ("**pass**" if ok else "**miss**")


def io_note(rr, label):
    """One sentence on the server's I/O batching, from the statistics it
    logged at exit (only what that server binary reports)."""
    st = (rr.get("server_stats") or {}).get(label) or {}
    parts = []
    if st.get("wakeups"):
        parts.append(f"{fmt(st['wakeups'])} wake-ups (one group commit "
                     f"each), "
                     f"{fmt(st.get('rx_datagrams', st.get('rx', 0)) / st['wakeups'], 1)}"
                     " datagrams received per wake-up")
    if st.get("recvmmsg"):
        parts.append(f"{fmt(st.get('rx_datagrams', st.get('rx')))} datagrams "
                     f"in {fmt(st['recvmmsg'])} recvmmsg calls "
                     f"({fmt(st.get('rx_datagrams', st.get('rx', 0)) / st['recvmmsg'], 1)} per call)")
    if st.get("sendmmsg"):
        parts.append(f"{fmt(st.get('tx_datagrams', st.get('tx')))} sent in "
                     f"{fmt(st['sendmmsg'])} sendmmsg calls "
                     f"({fmt(st.get('tx_datagrams', st.get('tx', 0)) / st['sendmmsg'], 1)} per call)")
    for k in ("dropped_rate_limited", "dropped_session_rate_limited",
              "dropped_held_full", "send_dropped", "send_errors"):
        if st.get(k):
            parts.append(f"{k} {fmt(st[k])}")
    if not parts:
        return ""
    return f"Server `{label}` (its exit statistics): " + "; ".join(parts) + "."


def floor_note(res):
    """The line under the goals table: what raw UDP alone needs for the
    10,000-client join storm's table datagrams (same run)."""
    bl = res.get("blast") or {}
    r = {j.get("n"): j for j in res.get("join") or []}.get(10000)
    if not bl.get("received_per_s"):
        return ("Floor of the 10,000-client join storm: not measured "
                "(`bench_join blast` did not run).")
    if r is None or r.get("raw_udp_floor_s") is None:
        return ("Floor of the 10,000-client join storm: not measured in this "
                "run (no N = 10,000 join storm; raw UDP moved "
                f"{fmt(bl['received_per_s'])} 1200-byte datagrams/s, see "
                "the join storm section).")
    fl = r["raw_udp_floor_s"]
    avg = (r.get("table_bytes") or 0) / max(1, r.get("table_datagrams") or 1)
    side = "above" if fl > 5.0 else "below"
    conv = (f"converged in {fmt(r['converge_s'])} s = "
            f"**{fmt(r['converge_over_floor'], 2)}x** the floor"
            if r.get("converged") else
            f"did not converge in time ({fmt(r.get('n_converged'))} of "
            "10,000 clients)")
    return ("**Floor of the 10,000-joins goal** (same run): every client "
            "must end up holding all N entries, so at least N^2 entries "
            "cross the wire; the 10,000 clients received "
            f"{fmt(r.get('table_datagrams'))} table datagrams (average "
            f"{fmt(avg, 0)} bytes). Raw UDP (`bench_join blast`: 1200-byte "
            "datagrams, sendmmsg/recvmmsg batches of 64, one process to "
            f"another over loopback) received {fmt(bl['received_per_s'])} "
            f"datagrams/s, so moving those datagrams alone takes **{fmt(fl, 2)}"
            f" s**, {side} the 5 s target; the server {conv}.")


def markdown(res, plot_files):
    m = res.get("machine", {})
    d = res.get("durations_s", {})
    L = []
    L.append("# Benchmarks\n")
    L.append("Generated by `bench/run` from `bench/results.json` (do not edit "
             "by hand: the next run rewrites this file). Every number below "
             "comes from one run of the suite; each ratio compares two "
             "measurements of the same run.\n")
    L.append("## The run\n")
    ram = m.get("ram_bytes")
    rows = [
        ["date (UTC)", res.get("date_utc", "-")],
        ["command", f"`{res.get('command', '-')}`"],
        ["duration", f"{fmt(d.get('total'), 0)} s in total (build "
         f"{fmt(d.get('build'), 0)} s, bench_rr {fmt(d.get('bench_rr'), 0)} "
         f"s, bench_join {fmt(d.get('bench_join'), 0)} s, store_bench "
         f"{fmt(d.get('store_bench'), 0)} s)"],
        ["machine", f"{m.get('nproc')} CPUs, {m.get('cpu_model', '?')}, "
         f"{fmt(ram / 2**30, 1) if ram else '?'} GiB RAM"],
        ["system", f"{m.get('os', '?')}, Linux {m.get('kernel', '?')}, "
         f"SQLite {m.get('sqlite') or '?'}"],
        ["data directory", f"{m.get('data_dir_fs', '?')}"],
        ["load average", f"{m.get('loadavg', '?')} (before the run; the "
         "machine may be shared)"],
        ["source", f"{res.get('git_commit', '?')[:12]}"
         f"{' + uncommitted changes' if res.get('git_dirty') else ''}"],
    ]
    L.append(table(["", ""], rows, ["---", "---"]) + "\n")

    L.append("## Goals (issue 8)\n")
    rows = []
    for g in res.get("goals", []):
        unit = "" if g["unit"] == "ratio" else " " + g["unit"]
        tgt = ("<= " if g["at_most"] else ">= ") + fmt(g["target"]) + unit
        rows.append([g["goal"], tgt, fmt(g["measured"]) + (
            unit if g["measured"] is not None else ""),
            fmt(g["measured_over_target"], 2), verdict(g["pass"]),
            f"`{g['source']}`"])
    L.append(table(["goal", "target", "measured", "measured / target",
                    "result", "measured by"], rows,
                   ["---", "---:", "---:", "---:", ":---:", "---"]) + "\n")
    fn = floor_note(res)
    if fn:
        L.append(fn + "\n")
    if res.get("skipped"):
        for k, v in sorted(res["skipped"].items()):
            L.append(f"- **{k}**: {v}")
        L.append("")

    # join
    L.append("## Join storm: `bench_join join`\n")
    join = res.get("join") or []
    if join:
        L.append("N raw protocol clients (one process, each with its own "
                 "127.x source address) register at once against a real "
                 "server (sqlite store), then keep their tables in sync like "
                 "the real client. *Converged*: every client's table is at "
                 "the server's final version with all N nicks online. Table "
                 "traffic = TABLE_PAGE + TABLE_DELTA datagrams received by "
                 "all clients. *Raw UDP floor* = those table datagrams / "
                 "the rate raw UDP received in `bench_join blast` (below): "
                 "the time raw UDP alone would need to move the same "
                 "datagrams from one process to another, with nothing "
                 "computed.\n")
        rows = []
        for r in join:
            mo = r.get("memory_online") or {}
            rows.append([fmt(r.get("n")), fmt(r.get("register_s")),
                         fmt(r.get("converge_s")) if r.get("converged")
                         else f"not converged ({fmt(r.get('n_converged'))} "
                         f"of {fmt(r.get('n'))} in time)",
                         fmt(r.get("table_datagrams")),
                         fmt((r.get("table_bytes") or 0) / 1e6, 2),
                         fmt(r.get("server_cpu_s"), 2),
                         fmt(r.get("walk_restarts")),
                         fmt(r.get("walks_abandoned")),
                         fmt(r.get("retransmits")),
                         fmt(mo.get("bytes_per_client"), 0),
                         fmt(r.get("raw_udp_floor_s")),
                         fmt(r.get("converge_over_floor"), 2)])
        L.append(table(["clients N", "registered s", "converged s",
                        "table datagrams", "table MB", "server CPU s",
                        "walks restarted", "walks abandoned",
                        "retransmissions", "server RSS B/client (online)",
                        "raw UDP floor s", "converged / floor"],
                       rows) + "\n")
        bl = res.get("blast")
        if bl and bl.get("received_per_s"):
            el = bl.get("seconds") or 0
            pct = (lambda c: f"{fmt(c, 2)} s ({fmt(100 * c / el, 0)} %)"
                   if el and c is not None and c >= 0 else "-")
            L.append(f"Raw UDP baseline, `bench_join blast` (same run): a "
                     f"child process sends {bl.get('datagram_bytes')}-byte "
                     "datagrams (the protocol's limit, the size of a full "
                     "TABLE_PAGE) as fast as it can with sendmmsg batches of "
                     f"{bl.get('batch')} from one socket to one socket of "
                     "the parent on 127.0.0.1, which receives with recvmmsg "
                     f"batches of {bl.get('batch')} (receive buffer "
                     f"{fmt((bl.get('rcvbuf_bytes') or 0) / 2**20, 0)} MiB); "
                     f"counted for {fmt(el, 2)} s after a "
                     f"{fmt(bl.get('warmup_s'), 1)} s warm-up. Over "
                     "loopback the sender's system calls do the kernel's "
                     "delivery work (the receiver only copies), so the rate "
                     "follows the CPU the sender gets on this shared "
                     "machine: the CPU columns show it (sender near 100 % "
                     "= it had a core to itself).\n")
            L.append(table(["received datagrams/s", "received MB/s",
                            "sent datagrams/s", "dropped (whole run)",
                            "receiver CPU", "sender CPU"],
                           [[f"**{fmt(bl['received_per_s'])}**",
                             fmt(bl.get("received_mb_per_s"), 1),
                             fmt(bl.get("sent_per_s")),
                             f"{fmt(bl.get('run_dropped'))} of "
                             f"{fmt(bl.get('run_sent'))}",
                             pct(bl.get("receiver_cpu_s")),
                             pct(bl.get("sender_cpu_s"))]]) + "\n")
            L.append("The floor divides all table datagrams by this rate as "
                     "if they were full 1200-byte datagrams to a single "
                     "receiving socket; the join storm's datagrams are "
                     "somewhat smaller on average (table MB / table "
                     "datagrams) and go from one server socket to the "
                     "bench's one socket: the same kind of path.\n")
        if "join.svg" in plot_files:
            L.append("![join storm: converge time vs N](bench/plots/join.svg)"
                     "\n")
    else:
        L.append("Not measured in this run"
                 f" ({res.get('skipped', {}).get('bench_join', 'no data')}).\n")
    mem = res.get("join_memory") or []
    L.append("## Server memory per registered client: `bench_join memory`\n")
    if mem:
        L.append("N clients register and deregister (the server ends with N "
                 "offline registrations); the server's VmRSS and RssAnon "
                 "(/proc) before and after, divided by N.\n")
        rows = [[fmt(r.get("registered")), r.get("store", "-"),
                 fmt(r.get("bytes_per_client"), 0),
                 fmt(r.get("anon_bytes_per_client"), 0),
                 fmt((r.get("rss_after") or 0) / 2**20, 1),
                 fmt(r.get("run_s"), 2), "yes" if r.get("complete") else "no"]
                for r in mem]
        L.append(table(["registered", "store", "RSS bytes/client",
                        "anon bytes/client", "RSS after MiB", "run s",
                        "complete"], rows) + "\n")
    else:
        L.append("Not measured in this run.\n")

    rr = res.get("bench_rr") or {}
    # saves
    sv = rr.get("saves")
    L.append("## Durable offline saves: `bench_rr saves`\n")
    if sv:
        L.append(f"{sv.get('senders')} registered sender sessions, "
                 f"{sv.get('recipients')} offline recipients (registered, "
                 "then DEREG'd); SAVEs of "
                 f"{sv.get('text_bytes')}-byte texts go round-robin over "
                 "senders and recipients, a new one as soon as one is "
                 "answered, so the number in flight stays constant. "
                 "The server is started with `--mail-per-recipient "
                 "4294967295 --mail-total 4294967295` (no quota is hit) and "
                 f"`{rr.get('server_limit_options')}` (the per-session "
                 "limit does not cap the run). Latency = SAVE sent -> "
                 "SAVE_RESULT SAVED, first transmissions only. sqlite = the "
                 "default durable store (WAL, synchronous=FULL, one commit "
                 "per receive batch, acknowledged after the commit); memory "
                 "= `--store memory`, the same server without a disk, for "
                 "reference.\n")
        def per_wakeup(r):
            st = (rr.get("server_stats") or {}).get(
                f"saves_{r['store']}_{r['in_flight']}") or {}
            if not st.get("wakeups"):
                return "-"
            return fmt(st.get("rx_datagrams", st.get("rx", 0))
                       / st["wakeups"], 1)
        rows = [[r["store"], fmt(r["in_flight"]), fmt(r["rate_per_s"]),
                 fmt(r["p50_ms"]), fmt(r["p99_ms"]), fmt(r["acked"]),
                 fmt(r["retransmissions"]), fmt(r["not_saved"]),
                 per_wakeup(r),
                 (f"{fmt(r.get('disk_fdatasync_per_s'))} "
                  f"({fmt(r.get('disk_fdatasync_p50_ms'))} ms)")
                 if r.get("disk_fdatasync_per_s") else "-"]
                for r in sv.get("runs", [])]
        L.append(table(["store", "in flight", "SAVEs/s", "p50 ms", "p99 ms",
                        "SAVED", "retransmissions", "not SAVED",
                        "server: datagrams per wake-up",
                        "disk just before: fdatasync/s (p50)"], rows,
                       ["---"] + ["---:"] * 9) + "\n")
        L.append("The last column is the disk baseline measured in the same "
                 "run, on the same directory, right before each sqlite run "
                 "(0.3 s of 4 KiB writes, each followed by fdatasync): one "
                 "SAVE in flight cannot go faster than one commit (one "
                 "fsync) per SAVE, and on a shared virtual disk that cost "
                 "changes from minute to minute. Each run has its own "
                 "server and database; *datagrams per wake-up* comes from "
                 "the statistics that server logged at exit (the server "
                 "commits once per wake-up, so with many SAVEs in flight "
                 "this is about the SAVEs per transaction; the set-up's "
                 "registrations are included).\n")
        if "saves.svg" in plot_files:
            L.append("![durable save rate vs in flight and batch size]"
                     "(bench/plots/saves.svg)\n")
    else:
        L.append("Not measured in this run.\n")

    ch = rr.get("cheap")
    L.append("## Cheap request rate vs raw UDP echo: `bench_rr cheap`\n")
    if ch:
        L.append(f"{ch['sessions']} registered sessions (one socket each), "
                 f"each with {ch['in_flight_per_session']} HEARTBEATs in "
                 f"flight ({ch['in_flight_total']} in total), a new one as "
                 "soon as its HEARTBEAT_ACK arrives. The same load shape "
                 "(as many sockets, the same datagrams, as many in flight) "
                 "drives `bench_rr echo`, a separate process that echoes "
                 "with recvmmsg/sendmmsg batches of 64. Server and echo run "
                 "side by side and the load alternates between them in "
                 f"{ch.get('rounds', 1)} rounds ({fmt(ch['warmup_s'], 1)} s "
                 "warm-up, then replies counted), "
                 f"{fmt(ch['seconds'], 1)} s counted per side in all, so "
                 "both see the same machine. CPU = user + system time of "
                 "the answering process (and of the load generator) during "
                 "the counted windows: on a shared machine the rates "
                 "follow the CPU share each process gets, while the CPU time "
                 "per reply does not. The server runs with "
                 f"`{rr.get('server_limit_options')}` (the default limit, "
                 "1000 datagrams/s per session, would allow "
                 f"{fmt(1000 * ch['sessions'])}/s in all).\n")
        rows = []
        for k, name in (("server", "udpchat server (HEARTBEAT -> "
                                   "HEARTBEAT_ACK, 14 -> 22 bytes)"),
                        ("echo", "raw UDP echo (14 -> 14 bytes)")):
            r = ch[k]
            el = r.get("elapsed_s") or 0
            share = (lambda c: fmt(100 * c / el, 0) + " %"
                     if el and c is not None else "-")
            us = ch.get(f"{k}_cpu_us_per_reply")
            rows.append([name, fmt(r["rate_per_s"]), share(r.get("cpu_s")),
                         fmt(us, 2), share(r.get("bench_cpu_s")),
                         fmt(r["written_off"]), fmt(r["errors"])])
        L.append(table(["answering process", "replies/s", "its CPU",
                        "CPU us per reply", "load generator CPU",
                        "written off (lost)", "errors"], rows,
                       ["---"] + ["---:"] * 6) + "\n")
        L.append(f"Ratio of the rates, server / echo: **{fmt(ch['ratio'], 3)}"
                 "** (goal >= 0.60). Ratio of the CPU time per reply, echo / "
                 f"server: {fmt(ch.get('cpu_ratio_echo_over_server'), 3)}.\n")
        n = io_note(rr, "cheap")
        if n:
            L.append(n + "\n")
    else:
        L.append("Not measured in this run.\n")

    p2 = rr.get("p2p")
    L.append("## Peer-to-peer send-to-ACK vs raw ping-pong: `bench_rr p2p`\n")
    if p2:
        L.append("A real client process (`udpchat -c benchb 127.0.0.1 PORT 0 "
                 "--state-dir DIR`, stdin and stdout pipes, stdout drained) "
                 "answers CHATs from a raw registered peer that it has in "
                 "its table, one at a time: time from CHAT sent to CHAT_ACK "
                 "received. The baseline is the same one-at-a-time exchange "
                 f"with the same {p2['datagram_bytes']}-byte datagrams "
                 "against the echo process; the two are interleaved in "
                 "blocks of a tenth of the samples, so both see the same "
                 "machine load."
                 + (" The bench is pinned to CPU 0 and both answering "
                    "processes (client, echo) to CPU 1, so both exchanges "
                    "cross cores the same way (left to the scheduler, one "
                    "process's exchange costs ~15 us and the other's "
                    "~50 us depending on where each lands)."
                    if p2.get("pinned") else
                    " The processes were not pinned to CPUs.")
                 + "\n")
        rows = []
        for k, name in (("chat_ack", "CHAT -> CHAT_ACK, real client"),
                        ("pingpong", "raw UDP ping-pong, echo process")):
            r = p2[k]
            rows.append([name, fmt(r["p50_us"], 1), fmt(r["p99_us"], 1),
                         fmt(r["mean_us"], 1), fmt(r["samples"]),
                         fmt(r["lost"])])
        L.append(table(["exchange", "p50 us", "p99 us", "mean us", "samples",
                        "lost"], rows, ["---"] + ["---:"] * 5) + "\n")
        L.append(f"Ratio p50: **{fmt(p2['ratio_p50'], 2)}** (goal <= 1.5); "
                 f"p99: {fmt(p2['ratio_p99'], 2)}.\n")
    else:
        L.append("Not measured in this run.\n")

    sb = res.get("store_bench")
    L.append("## The durable store alone: `bench/store_bench` (issue 6)\n")
    if sb and sb.get("runs"):
        L.append(f"`store_bench {sb.get('messages_per_mode')}`: the SQLite "
                 "store without the server or the network, on the same data "
                 "directory's disk. 200-byte messages are saved through the "
                 "store interface (what the server does per SAVE to an "
                 "offline recipient) and `commit()` runs after every B "
                 "of them (WAL, `synchronous=FULL`: one fsync of the log per "
                 "commit). Latency = from a message's save to the end of the "
                 "commit that made it durable.\n")
        rows = [[fmt(r["per_txn"]) + (" (one fsync per message)"
                                      if r["per_txn"] == 1 else ""),
                 fmt(r["rate_per_s"]), fmt(r["p50_ms"]), fmt(r["p99_ms"]),
                 fmt(r["commits"])] for r in sb["runs"]]
        L.append(table(["messages per transaction", "durable messages/s",
                        "p50 ms", "p99 ms", "commits"], rows) + "\n")
        r1 = [r for r in sb["runs"] if r["per_txn"] == 1]
        if r1 and r1[0]["rate_per_s"] > 0:
            L.append(f"With one message per commit, a commit (one fsync) "
                     f"took {fmt(1000 / r1[0]['rate_per_s'], 2)} ms in this "
                     "run; larger transactions share that cost, so the "
                     "durable rate grows with the batch until the "
                     "per-message work dominates. That is the server's group "
                     "commit (one transaction per receive batch), and why "
                     "its durable rate grows with the number of SAVEs in "
                     "flight.\n")
    else:
        L.append("Not measured in this run.\n")
    L.append("The Python load generator of issue 6 (`bench/save_latency.py`, "
             "removed) measured the same path; `bench_rr saves` replaces "
             "it.\n")
    L.append("Crash safety of the same path is tested, not benchmarked: "
             "`tests/e2e/test_durability.py` kills the server with SIGKILL "
             "about 20 times under load and checks that no acknowledged "
             "message is lost or duplicated (`pytest -s` prints its "
             "request-to-ACK figures).\n")
    L.append("## Reproducing\n")
    L.append("```sh\nbench/run                      # builds build/release, "
             "runs everything, rewrites this file\nbench/run --build-dir "
             "build/x  # another build directory\n```\n")
    L.append("Single tools (after a build): `bench_rr echo|cheap|saves|p2p|"
             "all --server build/release/udpchat [--json F]` (`--help` "
             "lists the options), `bench_join join|memory --server ... --n "
             "N`, `bench_join blast [--seconds S]`, `store_bench MESSAGES "
             "DIR`. Raw results: "
             "`bench/results.json`.\n")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir", nargs="?")
    ap.add_argument("--command", default="bench/run")
    ap.add_argument("--date", default="")
    ap.add_argument("--durations", default="")
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--loadavg", default="")
    ap.add_argument("--store-n", type=int, default=5000)
    ap.add_argument("--from-results", action="store_true")
    a = ap.parse_args()
    rpath = os.path.join(HERE, "results.json")
    if a.from_results:
        with open(rpath) as f:
            res = json.load(f)
    else:
        res = collect(a)
        with open(rpath, "w") as f:
            json.dump(res, f, indent=1, sort_keys=False)
            f.write("\n")
    pf = plots(res, os.path.join(HERE, "plots"))
    with open(os.path.join(REPO, "BENCHMARKS.md"), "w") as f:
        f.write(markdown(res, pf))
    print(f"report: wrote {os.path.relpath(rpath, REPO)}, BENCHMARKS.md"
          + (", " + ", ".join("bench/plots/" + p for p in pf) if pf else ""))


if __name__ == "__main__":
    main()
