"""Run a program confined the way systemd/redactd.service confines redactd, without systemd as PID 1.

This machine has systemd's tools but not systemd running, so the test rebuilds the unit's
confinement from the unit file itself, with the same kernel mechanisms systemd uses:

- ``User=``/``SupplementaryGroups=``, ``NoNewPrivileges=``, the empty ``CapabilityBoundingSet=``
  and ``AmbientCapabilities=`` through setpriv; ``UMask=`` through the shell;
- ``ProtectSystem=strict`` + ``ReadWritePaths=`` + ``StateDirectory=``: a private mount namespace
  where / is read-only and only those paths (moved under the test's root) are bind-mounted
  writable, one bind mount per entry as systemd makes them; ``PrivateTmp=``: a private /tmp;
  ``ProtectProc=invisible`` + ``ProcSubset=pid``: a fresh /proc with those options;
  ``PrivateNetwork=``: a new network namespace; ``ProtectHome=``: an empty /root (the test
  interpreter lives under /root/.pyenv, so that one directory is bind-mounted back read-only, as
  /opt/redactd/venv would be visible on a real system);
- ``SystemCallFilter=``, ``RestrictAddressFamilies=``, ``MemoryDenyWriteExecute=``: seccomp
  filters built by confine.py with libseccomp, from the syscall groups `systemd-analyze
  syscall-filter` prints.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "redactd.service"
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
HERE = Path(__file__).resolve().parent


def unit_settings(path: Path = UNIT) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, in order, keys repeated as systemd allows."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@functools.cache
def syscall_groups() -> dict[str, list[str]]:
    """``@group`` -> its members (syscalls or nested groups), as this systemd defines them."""
    out = subprocess.run([SYSTEMD_ANALYZE, "syscall-filter", "--no-pager"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names: Sequence[str]) -> set[str]:
    groups = syscall_groups()
    found: set[str] = set()
    for name in names:
        found |= expand(groups[name]) if name.startswith("@") else {name}
    return found


def allowed_syscalls(settings: Mapping[str, list[str]]) -> list[str]:
    """systemd's reading of SystemCallFilter=: the first allow-list, minus every ``~`` list after it."""
    allowed: set[str] = set()
    for value in settings.get("SystemCallFilter", []):
        if value.startswith("~"):
            allowed -= expand(value[1:].split())
        else:
            allowed |= expand(value.split())
    return sorted(allowed)


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...]


@dataclass(frozen=True)
class Confinement:
    """The unit's confinement for a daemon whose absolute paths live under ``root``."""

    root: Path
    identity: Identity
    settings: Mapping[str, list[str]]

    def writable(self) -> list[Path]:
        paths = [p for value in self.settings.get("ReadWritePaths", []) for p in value.split()]
        paths += [f"/var/lib/{d}" for value in self.settings.get("StateDirectory", []) for d in value.split()]
        return [self.root / p.lstrip("-/") for p in paths]

    def spec(self) -> dict[str, object]:
        return {
            "allowed_syscalls": allowed_syscalls(self.settings),
            "unix_sockets_only": self.settings.get("RestrictAddressFamilies") == ["AF_UNIX"],
            "memory_deny_write_execute": self.settings.get("MemoryDenyWriteExecute") == ["yes"],
        }

    def command(self, argv: Sequence[str], env: Mapping[str, str], spec_path: Path) -> list[str]:
        s, ident = self.settings, self.identity
        assert s.get("ProtectSystem") == ["strict"] and s.get("NoNewPrivileges") == ["yes"]
        assert s.get("CapabilityBoundingSet") == [""] and s.get("AmbientCapabilities") == [""]
        spec_path.write_text(json.dumps(self.spec()))
        pyenv = Path(sys.base_prefix).resolve()
        stash = self.root / ".interpreter"
        stash.mkdir(exist_ok=True)
        mounts = ["mount --make-rprivate /"]
        mounts += [f"mount --bind {shlex.quote(str(p))} {shlex.quote(str(p))}" for p in self.writable()]
        mounts.append(f"mount --bind {shlex.quote(str(pyenv))} {shlex.quote(str(stash))}")
        mounts.append("mount -o remount,bind,ro /")
        if s.get("PrivateTmp") == ["yes"]:
            # A checkout (and its .venv) under /tmp would vanish behind the private /tmp; on a real
            # system the code lives in /opt, so bring the checkout back, read-only.
            code = sorted({p for p in (Path(sys.prefix).resolve(), HERE.parent.parent.resolve())
                           if Path("/tmp") in p.parents})
            for i, path in enumerate(code):
                (self.root / f".code{i}").mkdir(exist_ok=True)
                mounts.append(f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(self.root / f'.code{i}'))}")
            mounts.append("mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp")
            for i, path in enumerate(code):
                mounts += [f"mkdir -p {shlex.quote(str(path))}",
                           f"mount --bind -o ro {shlex.quote(str(self.root / f'.code{i}'))} {shlex.quote(str(path))}"]
        if s.get("ProtectProc") == ["invisible"]:
            subset = ",subset=pid" if s.get("ProcSubset") == ["pid"] else ""
            mounts.append(f"mount -t proc -o hidepid=invisible{subset},nosuid,nodev,noexec proc /proc")
        if s.get("ProtectHome") == ["yes"] and str(pyenv).startswith("/root/"):
            mounts += ["mount -t tmpfs -o mode=0755 tmpfs /root", f"mkdir -p {shlex.quote(str(pyenv))}",
                       f"mount --bind -o ro {shlex.quote(str(stash))} {shlex.quote(str(pyenv))}"]
        umask = s.get("UMask", ["0022"])[0]
        setpriv = ["setpriv", f"--reuid={ident.uid}", f"--regid={ident.gid}",
                   "--groups=" + ",".join(str(g) for g in ident.groups), "--inh-caps=-all",
                   "--bounding-set=-all", "--no-new-privs", "--"]
        inner = ["env", "-i", *(f"{k}={v}" for k, v in env.items()),
                 sys.executable, str(HERE / "confine.py"), str(spec_path), "--", *argv]
        script = " && ".join(mounts) + f" && umask {umask} && exec " + shlex.join([*setpriv, *inner])
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if s.get("PrivateNetwork") == ["yes"]:
            unshare.append("--net")
        return [*unshare, "--", "/bin/sh", "-c", script]

    def start(self, argv: Sequence[str], env: Mapping[str, str], spec_path: Path,
              log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "wb") as log:
            return subprocess.Popen(self.command(argv, env, spec_path), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)


def can_confine() -> str | None:
    """Why the confinement cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (mount namespaces, setpriv to another user)"
    for tool in ("unshare", "setpriv", "useradd", SYSTEMD_ANALYZE):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], check=False, capture_output=True, timeout=10).returncode:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "--mount", "--net", "--", "true"], check=False, capture_output=True,
                           timeout=30)
    if probe.returncode:
        return f"cannot create mount/network namespaces here: {probe.stderr.decode().strip()}"
    return None
