"""The real daemon, installed and confined as redactd.service confines it, still does its whole job."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from redactd.install import DEFAULT_BIN, Installer
from tests.mediafactory import plain_video
from tests.systemd.conftest import install
from tests.systemd.sandbox import HERE, REPO, Confinement, Identity, can_confine, unit_settings
from tests.systemd.test_wx import WORKLOADS

pytestmark = pytest.mark.skipif(bool(can_confine()), reason=can_confine() or "")


@dataclass(frozen=True)
class Site:
    root: Path
    installer: Installer
    config: Path

    def path(self, absolute: str) -> Path:
        return self.installer.at(absolute)

    def confinement(self) -> Confinement:
        i = self.installer
        ident = Identity(i.uid("redactd"), i.gid("redactd"), (i.gid("redactd"), i.gid("redactd-share")))
        return Confinement(self.root, ident, unit_settings())


def make_site(root: Path) -> Site:
    """Install into ``root``, add two contributors, and point the installed config at ``root``."""
    installer = install(root)
    for name in ("alice", "bob"):
        subprocess.run(["useradd", "--prefix", str(root), "--system", "--user-group", "--no-create-home", name],
                       check=True, capture_output=True, timeout=30)
    config = installer.at("/etc/redactd/redactd.yaml")
    text = config.read_text()
    for prefix in ("/srv/redactd", "/var/lib/redactd", "/etc/redactd"):
        text = text.replace(f" {prefix}", f" {root}{prefix}")
    text = re.sub(r"policy: visual-default", "policy: metadata-only", text, count=1)
    text = re.sub(r"settle_seconds: \S+", "settle_seconds: 0.5", text)
    text = re.sub(r"^workers: \S+", "workers: 1", text, flags=re.MULTILINE)
    config.write_text(text)
    return Site(root, installer, config)


def as_contributor(site: Site, name: str, *argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` as a contributor, the way smbd writes for a share user (create mask 0640)."""
    uid, gid = site.installer.uid(name), site.installer.gid(name)
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", "sh", "-c",
                           "umask 027 && exec \"$@\"", "sh", *argv], check=False, capture_output=True,
                          timeout=30)


class NotifySocket:
    """Stands in for systemd's notification socket and collects what the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        path.chmod(0o666)  # the service user sends to it
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        with contextlib.suppress(TimeoutError, BlockingIOError):
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        return self.messages

    def close(self) -> None:
        self.sock.close()


def unit_argv(site: Site, key: str) -> list[str]:
    """The unit's ``key`` command line (ExecStart=, ExecStartPre=), run from this checkout, paths in the root."""
    [line] = unit_settings()[key]
    program, *args = shlex.split(line)
    assert program == DEFAULT_BIN, line
    return [sys.executable, "-m", "redactd",
            *(str(site.path(a)) if a.startswith("/etc/redactd/") else a for a in args)]


@contextlib.contextmanager
def confined_daemon(site: Site) -> Iterator[tuple[subprocess.Popen[bytes], NotifySocket, Path]]:
    notify = NotifySocket(site.root / "notify.sock")
    log = site.root / "daemon.log"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(site.path("/var/lib/redactd")),
           "PYTHONPATH": str(REPO / "daemon"), "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}
    check = site.confinement().start(unit_argv(site, "ExecStartPre"), env, site.root / "confine.json", log)
    assert check.wait(60) == 0, log.read_text()
    proc = site.confinement().start(unit_argv(site, "ExecStart"), env, site.root / "confine.json", log)
    try:
        yield proc, notify, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        notify.close()


def wait_for(what: str, check: object, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        if proc.poll() is not None:
            pytest.fail(f"daemon exited ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


@pytest.fixture()
def site(root: Path) -> Iterator[Site]:
    with code_traversable():
        yield make_site(root)


@contextlib.contextmanager
def code_traversable() -> Iterator[None]:
    """Let the unprivileged user reach this checkout and its .venv, as it reaches /opt/redactd.

    A checkout cloned into a private directory (mkdtemp makes them 0700) would otherwise stop the
    daemon from starting at all; only the search bit is added, and only for the test's length.
    """
    changed: list[tuple[Path, int]] = []
    for code in {Path(sys.prefix).resolve(), REPO.resolve()}:
        for directory in [code, *code.parents]:
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                changed.append((directory, mode))
                os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)
    try:
        yield
    finally:
        for directory, mode in changed:
            os.chmod(directory, stat.S_IMODE(mode))


class TestConfinement:
    def test_the_sandbox_enforces_what_the_unit_promises(self, site: Site) -> None:
        # Without this, a daemon that "works when confined" could just be working unconfined.
        probe = f"""
import errno, mmap, os, socket
def outcome(fn):
    try:
        fn(); return "allowed"
    except OSError as e:
        return errno.errorcode[e.errno]
print(outcome(lambda: open({str(site.path('/etc/redactd/x'))!r}, 'w')))
print(outcome(lambda: open({str(site.path('/srv/redactd/raw/x'))!r}, 'w')))
print(outcome(lambda: open('/usr/x', 'w')))
print(outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)))
print(outcome(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)))
print(outcome(lambda: os.setuid(0)))
print(os.path.exists('/proc/1/status'), os.path.exists('/proc/cpuinfo'), oct(os.umask(0)))
"""
        log = site.root / "probe.log"
        proc = site.confinement().start([sys.executable, "-c", probe], {"PATH": "/usr/bin:/bin"},
                                        site.root / "probe.json", log)
        assert proc.wait(60) == 0, log.read_text()
        lines = log.read_text().splitlines()
        assert lines == ["EROFS", "allowed", "EROFS", "EAFNOSUPPORT", "EPERM", "EPERM", "False False 0o27"], lines


    def test_detectors_and_codecs_run_inside_the_whole_sandbox(self, site: Site) -> None:
        # The seccomp allow-list, ProcSubset=pid (no /proc/cpuinfo), a read-only / and no network
        # on top of W^X: onnxruntime logs that its cpuinfo library cannot read /proc/cpuinfo, and
        # still runs (its kernels pick the instruction set with CPUID, not from /proc).
        log = site.root / "wx.log"
        proc = site.confinement().start([sys.executable, str(HERE / "wx_probe.py"), "none",
                                         str(site.path("/var/lib/redactd"))], {"PATH": "/usr/bin:/bin"},
                                        site.root / "wx.json", log)
        assert proc.wait(120) == 0, log.read_text()[-4000:]
        report = json.loads(log.read_text().strip().splitlines()[-1])
        assert report["wx_mapping_refused"] is True, "the unit's MemoryDenyWriteExecute= must be in force"
        for name in WORKLOADS:
            assert report[name]["ok"], f"{name} failed in the sandbox:\n{report[name].get('error')}"


@pytest.mark.slow
class TestDaemonUnderTheUnit:
    def test_publishes_a_contributors_file_as_the_unprivileged_user(self, site: Site) -> None:
        clip = plain_video(site.root / "clip.mp4", seconds=1.0, size="160x120")
        clip.chmod(0o644)
        inbox = site.path("/srv/redactd/inbox")
        clean = site.path("/srv/redactd/clean")
        dropped = inbox / "Holiday Dashcam.mp4"
        copied = as_contributor(site, "alice", "cp", str(clip), str(dropped))
        assert copied.returncode == 0, copied.stderr
        st = dropped.stat()
        assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (site.installer.gid("redactd-share"), 0o640)
        # The drop box: alice cannot list the inbox; bob can neither read nor delete her file.
        for who, argv, why in (("alice", ["ls", str(inbox)], b"Permission denied"),
                               ("bob", ["cat", str(dropped)], b"Permission denied"),
                               ("bob", ["rm", "-f", str(dropped)], b"Operation not permitted")):  # sticky bit
            refused = as_contributor(site, who, *argv)
            assert refused.returncode != 0 and why in refused.stderr, (who, argv, refused.stderr)
        assert dropped.is_file()
        with confined_daemon(site) as (proc, notify, log):
            wait_for("READY=1", lambda: any("READY=1" in m for m in notify.drain()), 30, proc, log)

            def published() -> bool:
                return any(p.suffix == ".mp4" and not p.name.startswith(".") for p in clean.iterdir())

            wait_for("the clean copy", published, 40, proc, log)
            status = proc_status(proc.pid)
            wait_for("a watchdog ping", lambda: any("WATCHDOG=1" in m for m in notify.drain()), 5, proc, log)
            proc.send_signal(signal.SIGHUP)  # what ExecReload= sends
            wait_for("the reload", lambda: '"config_reloaded"' in log.read_text(), 10, proc, log)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-4000:]

        ident = site.confinement().identity
        assert status["Uid"].split()[:2] == [str(ident.uid)] * 2
        assert set(status["Groups"].split()) == {str(g) for g in ident.groups}
        assert status["CapEff"] == status["CapBnd"] == "0000000000000000"
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"

        [video] = [p for p in clean.iterdir() if p.suffix == ".mp4"]
        sidecar = json.loads(video.with_name(video.name + ".json").read_text())
        assert "Holiday" not in video.name and "Holiday" not in json.dumps(sidecar)
        assert video.stat().st_uid == ident.uid
        [raw] = list(site.path("/srv/redactd/raw").iterdir())
        raw_st = raw.stat()
        # Alice's file was taken over: the raw copy is the daemon's, owner-only.
        assert (raw_st.st_uid, stat.S_IMODE(raw_st.st_mode)) == (ident.uid, 0o600)
        assert list(inbox.iterdir()) == []
        events = [json.loads(line).get("event") for line in log.read_text().splitlines() if line.startswith("{")]
        assert "daemon_started" in events and "daemon_stopped" in events
