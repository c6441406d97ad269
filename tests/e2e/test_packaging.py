"""Install, package and documentation checks (issue 9).

* `cmake --install` into a temporary prefix: binary, man page, systemd unit;
  the installed binary runs (`--version`, a server start).
* CPack builds the .deb; `dpkg -x` unpacks it into a temporary root, the
  binary runs from there; the control fields and the dependencies
  (dpkg-shlibdeps) are checked.
* The man page passes `mandoc -T lint` and `man --warnings`, and documents
  every option `udpchat --help` lists and every client command.
* The systemd unit has its own user, data directory and hardening.

The build directory is the one holding UDPCHAT_BIN (its CPackConfig.cmake);
without one the packaging tests are skipped, the man page tests still run.
"""
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import BIN, REPO, TIMEOUT

MAN = os.path.join(REPO, "man", "udpchat.1")
UNIT = os.path.join(REPO, "packaging", "udpchat-server.service")
BDIR = os.path.dirname(os.path.abspath(BIN))


def need_build_dir():
    if not os.path.exists(os.path.join(BDIR, "CPackConfig.cmake")):
        pytest.skip(f"no CMake build directory (CPackConfig.cmake) at {BDIR}")


def run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run([str(a) for a in args], **kw)


def check_runs(binary):
    r = run([binary, "--version"], timeout=10)
    assert r.returncode == 0, r.stderr
    assert re.match(r"^udpchat \d+\.\d+\.\d+ \(protocol version \d+\)$",
                    r.stdout.strip()), r.stdout
    # and it serves: a server starts and stops cleanly
    p = subprocess.Popen([binary, "-s", "0", "--bind", "127.0.0.1",
                          "--store", "memory"] if "--store" in help_text()
                         else [binary, "-s", "0", "--bind", "127.0.0.1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("udpchat server listening on 127.0.0.1:"), line
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(TIMEOUT) == 0


def help_text():
    return run([BIN, "--help"], timeout=10).stdout


def test_packaging_cmake_install_into_a_temporary_prefix(tmp_path):
    need_build_dir()
    prefix = tmp_path / "prefix"
    r = run(["cmake", "--install", BDIR, "--prefix", prefix])
    assert r.returncode == 0, r.stdout + r.stderr
    exe = prefix / "bin" / "udpchat"
    man = prefix / "share" / "man" / "man1" / "udpchat.1"
    unit = prefix / "lib" / "systemd" / "system" / "udpchat-server.service"
    for f in (exe, man, unit):
        assert f.is_file(), f
    assert os.access(exe, os.X_OK)
    check_runs(exe)


def test_packaging_cpack_deb_unpacks_and_runs(tmp_path):
    need_build_dir()
    for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} missing: run ci/deps")
    out = tmp_path / "pkg"
    r = run(["cpack", "--config", os.path.join(BDIR, "CPackConfig.cmake"),
             "-G", "DEB", "-B", out], timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    debs = sorted(out.glob("udpchat_*.deb"))
    assert len(debs) == 1, list(out.iterdir())
    deb = debs[0]
    assert re.match(r"udpchat_\d+\.\d+\.\d+_[a-z0-9]+\.deb$", deb.name)

    fields = {}
    for name in ("Package", "Version", "Architecture", "Maintainer",
                 "Depends", "Section", "Description"):
        f = run(["dpkg-deb", "-f", deb, name])
        assert f.returncode == 0, f.stderr
        fields[name] = f.stdout.strip()
    assert fields["Package"] == "udpchat"
    assert fields["Maintainer"]
    assert fields["Description"].startswith("chat over UDP")
    deps = fields["Depends"]
    for lib in ("libc6", "libedit2", "libsodium23"):
        assert lib in deps, deps

    listing = run(["dpkg-deb", "-c", deb]).stdout
    for path in ("./usr/bin/udpchat", "./usr/share/man/man1/udpchat.1",
                 "./usr/lib/systemd/system/udpchat-server.service"):
        assert path in listing, listing

    root = tmp_path / "root"
    r = run(["dpkg", "-x", deb, root])
    assert r.returncode == 0, r.stderr
    check_runs(root / "usr" / "bin" / "udpchat")
    # The packaged man page renders (man-db's man, else mandoc).
    page = root / "usr/share/man/man1/udpchat.1"
    cmd = ["man", "-l", page] if shutil.which("man") else ["mandoc", page]
    r = run(cmd, env=dict(os.environ, MANPAGER="cat", PAGER="cat",
                          MANWIDTH="80"))
    assert r.returncode == 0 and "EXIT STATUS" in r.stdout, r.stderr


def test_packaging_man_page_lint_mandoc():
    if shutil.which("mandoc") is None:
        pytest.fail("mandoc missing: run ci/deps")
    r = run(["mandoc", "-T", "lint", "-W", "warning", MAN])
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
        r.stdout + r.stderr


def test_packaging_man_page_man_warnings():
    if shutil.which("man") is None:
        pytest.skip("man (man-db) not installed")
    r = run(["man", "--warnings", "-l", MAN],
            env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_packaging_man_page_documents_every_option_and_command():
    man = open(MAN).read().replace("\\-", "-")
    opts = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", help_text())))
    assert "--notify-cmd" in opts and "--timestamps" in opts
    missing = [o for o in opts if o not in man]
    assert not missing, f"options in --help but not in the man page: {missing}"
    for cmd in ("send", "list", "reg", "dereg", "deregA", "exit", "help"):
        assert re.search(rf"^\.B[IR]? {cmd}\b", man, re.M), cmd
    for section in ("SYNOPSIS", "SERVER OPTIONS", "CLIENT OPTIONS", "COMMANDS",
                    "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"):
        assert f".SH {section}" in man, section
    for status in ("0", "1", "2", "130"):
        assert re.search(rf"^\.TP\n\.B {status}$", man, re.M), status


def test_packaging_systemd_unit_own_user_data_dir_hardening():
    unit = open(UNIT).read()
    keys = {}
    for ln in unit.splitlines():
        if "=" in ln and not ln.startswith("#"):
            k, v = ln.split("=", 1)
            keys.setdefault(k, []).append(v)
    assert keys["DynamicUser"] == ["yes"]
    assert keys["StateDirectory"] == ["udpchat"]
    assert "--data-dir ${STATE_DIRECTORY}" in keys["ExecStart"][0]
    assert keys["ExecStart"][0].startswith("udpchat -s ")
    for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                 ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                 ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
                 ("CapabilityBoundingSet", "")):
        assert keys.get(k) == [v], (k, keys.get(k))
    if shutil.which("systemd-analyze"):
        r = run(["systemd-analyze", "security", "--offline=yes", UNIT])
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)",
                      r.stdout)
        assert m, r.stdout[-2000:] + r.stderr
        assert float(m.group(1)) <= 2.0, r.stdout[-3000:]  # "OK" is < 4
