"""Install redactd as a system service: accounts, directories, /etc/redactd, signing key, unit.

Every step looks before it acts, so running the install again is safe: an edited config, an
existing policy, an existing key and existing directories are kept as they are (a directory whose
owner or mode differs from the layout is reported, not changed). Only the unit file, which
belongs to the package, is replaced; local changes go in a drop-in. ``root`` installs into
another root directory (tests, image builds): accounts go into ROOT/etc/passwd and ROOT/etc/group.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redactd.config import load_config
from redactd.errors import ConfigError, RedactdError
from redactd.fsutil import atomic_write
from redactd.proc import run_tool

SERVICE = "redactd.service"
WEB_SERVICE = "redactd-web.service"  # installed, not enabled: it needs console accounts first
USER = "redactd"
SHARE_GROUP = "redactd-share"
DEFAULT_BIN = "/opt/redactd/venv/bin/redactd"
UNIT_DIR = "/etc/systemd/system"
CONFIG_DIR = "/etc/redactd"
KEY_PATH = "/etc/redactd/keys/custody.key"
SRV = "/srv/redactd"
STATE = "/var/lib/redactd"
#: Where the example config's relative paths go on an installed system (key -> absolute path).
CONFIG_PATHS = {
    "path": f"{SRV}/inbox",  # the first inbox
    "raw_store": f"{SRV}/raw",
    "clean_dir": f"{SRV}/clean",
    "review_dir": f"{SRV}/review",
    "failed_dir": f"{SRV}/failed",
    "state_dir": STATE,
    "policies_dir": f"{CONFIG_DIR}/policies",
    "directory": f"{STATE}/custody",
    "signing_key": KEY_PATH,
}
_TOOL_TIMEOUT = 60.0


class InstallError(RedactdError):
    """The system cannot be set up as asked (not root, no account files, a tool failed)."""


@dataclass(frozen=True)
class DirSpec:
    """One directory of the layout: who owns it and who may do what in it."""

    path: str
    owner: str  # a user name, or "root"
    group: str
    mode: int
    why: str


def layout(user: str = USER, share_group: str = SHARE_GROUP) -> list[DirSpec]:
    """The installed directory tree, parents first."""
    return [
        DirSpec(SRV, "root", "root", 0o755, "footage root (one writable mount in the unit)"),
        # Drop box: anyone the share lets in may create entries (-wx for others) but not list them;
        # the sticky bit stops contributors renaming or deleting each other's files; setgid gives
        # every new file the share group, whose only member is redactd, so with the share's create
        # mask 0640 the daemon reads a file and no other contributor can. The daemon owns the
        # directory, so it may move anyone's file out despite the sticky bit.
        DirSpec(f"{SRV}/inbox", user, share_group, 0o3733, "quarantine inbox behind the share"),
        DirSpec(f"{SRV}/raw", user, user, 0o700, "admitted raw footage"),
        DirSpec(f"{SRV}/clean", user, user, 0o2750, "published clean footage (group redactd reads)"),
        DirSpec(f"{SRV}/review", user, user, 0o750, "jobs waiting for a human"),
        DirSpec(f"{SRV}/failed", user, user, 0o750, "refused and failed files"),
        DirSpec(STATE, user, user, 0o700, "job store, scratch, custody log"),
        DirSpec(f"{STATE}/custody", user, user, 0o700, "signed custody log"),
        DirSpec(CONFIG_DIR, "root", "root", 0o755, "configuration"),
        DirSpec(f"{CONFIG_DIR}/policies", "root", "root", 0o755, "redaction and retention policies"),
        # World-readable so officers can fetch the .pub; the private key itself is 0600.
        DirSpec(f"{CONFIG_DIR}/keys", "root", "root", 0o755, "custody signing key and its .pub"),
    ]


@dataclass(frozen=True)
class Step:
    """One thing the install did or decided, for the report."""

    outcome: str  # created | kept | updated | enabled | skipped | warning | removed
    what: str
    note: str = ""

    def line(self) -> str:
        return f"{self.outcome:<8} {self.what}" + (f"  ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Options:
    root: Path = Path("/")
    source: Path | None = None  # the checkout holding systemd/, etc/ and policies/
    bin: str = DEFAULT_BIN  # the redactd program ExecStart= runs
    user: str = USER
    share_group: str = SHARE_GROUP


def default_bin() -> str:
    """The redactd script of the interpreter running us (a venv), else the documented path."""
    beside = Path(sys.executable).with_name("redactd")
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else DEFAULT_BIN


def default_source() -> Path | None:
    here = Path(__file__).resolve().parents[2]
    return here if (here / "systemd" / SERVICE).is_file() else None


def systemd_running() -> bool:
    """True when systemd is PID 1 here (sd_booted(3) checks the same directory)."""
    return Path("/run/systemd/system").is_dir()


class Installer:
    """Carries out the install or uninstall under ``opts.root``; ``tool`` runs external programs."""

    def __init__(self, opts: Options, tool: Callable[[list[str]], None] | None = None,
                 report: Callable[[Step], None] | None = None) -> None:
        self.opts = opts
        self.steps: list[Step] = []
        self._tool = tool or _run
        self._report = report or (lambda step: None)
        self.offline = opts.root != Path("/")

    # ----------------------------------------------------------------- helpers

    def at(self, path: str) -> Path:
        """``path`` (absolute on the installed system) under the install root."""
        return self.opts.root / path.lstrip("/")

    def step(self, outcome: str, what: str, note: str = "") -> None:
        s = Step(outcome, what, note)
        self.steps.append(s)
        self._report(s)

    def _ids(self, name: str, table: str) -> int:
        """uid (table passwd) or gid (table group) of ``name`` from the root's account files."""
        path = self.at(f"/etc/{table}")
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise InstallError(f"{path}: cannot read account file: {exc.strerror}") from None
        for line in lines:
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name:
                return int(fields[2])
        raise InstallError(f"{path}: no entry for {name!r}")

    def uid(self, name: str) -> int:
        return self._ids(name, "passwd")

    def gid(self, name: str) -> int:
        return self._ids(name, "group")

    def _prefix(self) -> list[str]:
        return ["--prefix", str(self.opts.root)] if self.offline else []

    def _source(self, relative: str) -> Path:
        src = self.opts.source
        if src is None or not (src / relative).exists():
            raise InstallError(f"cannot find {relative} to install: run from a redactd checkout "
                               "(`make install`) or pass --source CHECKOUT")
        return src / relative

    # ----------------------------------------------------------------- install

    def install(self) -> list[Step]:
        if os.geteuid() != 0:
            raise InstallError("install must run as root: it creates a system user and sets file owners")
        for name in ("passwd", "group"):
            if not self.at(f"/etc/{name}").is_file():
                raise InstallError(f"{self.at(f'/etc/{name}')}: missing; --root must be a root filesystem "
                                   "with /etc/passwd and /etc/group")
        self.accounts()
        self.directories()
        self.config()
        self.signing_key()
        self.unit()
        return self.steps

    def accounts(self) -> None:
        o = self.opts
        try:
            self.gid(o.share_group)
            self.step("kept", f"group {o.share_group}")
        except InstallError:
            self._tool(["groupadd", *self._prefix(), "--system", o.share_group])
            self.step("created", f"group {o.share_group}", "files dropped in the share get it; only the service "
                      "user is a member")
        try:
            self.uid(o.user)
        except InstallError:
            self._tool(["useradd", *self._prefix(), "--system", "--user-group", "--groups", o.share_group,
                        "--home-dir", STATE, "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--comment", "redactd daemon", o.user])
            self.step("created", f"user {o.user}", f"system user, group {o.user}, member of {o.share_group}")
            return
        if o.user in self.members(o.share_group):
            self.step("kept", f"user {o.user}")
        else:
            self._tool(["usermod", *self._prefix(), "--append", "--groups", o.share_group, o.user])
            self.step("updated", f"user {o.user}", f"added to {o.share_group}: it reads files dropped in the share")

    def members(self, group: str) -> list[str]:
        for line in self.at("/etc/group").read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == group:
                return fields[3].split(",")
        return []

    def directories(self) -> None:
        for spec in layout(self.opts.user, self.opts.share_group):
            path = self.at(spec.path)
            uid = 0 if spec.owner == "root" else self.uid(spec.owner)
            gid = 0 if spec.group == "root" else self.gid(spec.group)
            if path.is_dir():
                st = path.stat()
                have = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
                if have != (uid, gid, spec.mode):
                    self.step("warning", spec.path, f"kept as {have[0]}:{have[1]} {have[2]:o}; the layout "
                              f"says {spec.owner}:{spec.group} {spec.mode:o}")
                else:
                    self.step("kept", spec.path)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)  # /srv, /var/lib: already there on a real system
            path.mkdir()
            os.chown(path, uid, gid)
            os.chmod(path, spec.mode)  # after chown: chown clears setgid on some filesystems
            self.step("created", spec.path, f"{spec.owner}:{spec.group} {spec.mode:04o}, {spec.why}")

    def config(self) -> None:
        target = self.at(f"{CONFIG_DIR}/redactd.yaml")
        if target.exists():
            self.step("kept", f"{CONFIG_DIR}/redactd.yaml", "existing config left as it is")
        else:
            text = installed_config(self._source("etc/redactd.yaml").read_text())
            atomic_write(target, text.encode(), 0o644)
            load_config(target)  # the rewritten example must still be a valid config
            self.step("created", f"{CONFIG_DIR}/redactd.yaml", "from etc/redactd.yaml with installed paths")
        for policy in sorted(self._source("policies").glob("*.yaml")):
            dst = self.at(f"{CONFIG_DIR}/policies/{policy.name}")
            if dst.exists():
                self.step("kept", f"{CONFIG_DIR}/policies/{policy.name}")
            else:
                atomic_write(dst, policy.read_bytes(), 0o644)
                self.step("created", f"{CONFIG_DIR}/policies/{policy.name}")

    def signing_key(self) -> None:
        from redactd.custody.keys import fingerprint, init_key, public_path

        key = self.at(KEY_PATH)
        pub = public_path(key)
        uid, gid = self.uid(self.opts.user), self.gid(self.opts.user)
        if key.exists():
            st = key.stat()
            if (st.st_uid, stat.S_IMODE(st.st_mode)) != (uid, 0o600):
                self.step("warning", KEY_PATH, f"kept, but it should be owned by {self.opts.user} with mode "
                          f"0600 (it is uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})")
            else:
                self.step("kept", KEY_PATH, "existing signing key never replaced")
            return
        if pub.exists():
            raise InstallError(f"{pub} exists without its private key {key}: move it away or restore the key")
        public = init_key(key).public_key()
        os.chown(key, uid, gid)
        self.step("created", KEY_PATH, f"Ed25519, {self.opts.user} only (0600), {fingerprint(public)}")
        self.step("created", str(public_path(Path(KEY_PATH))), "public key for officers (0644)")

    def unit(self) -> None:
        text = self._source(f"systemd/{SERVICE}").read_text().replace(DEFAULT_BIN, self.opts.bin)
        target = self.at(f"{UNIT_DIR}/{SERVICE}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and target.read_text() == text:
            self.step("kept", f"{UNIT_DIR}/{SERVICE}")
        else:
            outcome = "updated" if target.exists() else "created"
            atomic_write(target, text.encode(), 0o644)
            self.step(outcome, f"{UNIT_DIR}/{SERVICE}", f"ExecStart={self.opts.bin}")
        web_text = self._source(f"systemd/{WEB_SERVICE}").read_text().replace(DEFAULT_BIN, self.opts.bin)
        web_target = self.at(f"{UNIT_DIR}/{WEB_SERVICE}")
        if web_target.is_file() and web_target.read_text() == web_text:
            self.step("kept", f"{UNIT_DIR}/{WEB_SERVICE}")
        else:
            outcome = "updated" if web_target.exists() else "created"
            atomic_write(web_target, web_text.encode(), 0o644)
            self.step(outcome, f"{UNIT_DIR}/{WEB_SERVICE}", "not enabled: add console accounts (redactd web user "
                      "add), then systemctl enable --now redactd-web")
        if not Path(self.opts.bin).is_file() and not self.offline:
            self.step("warning", self.opts.bin, "not installed yet: the unit cannot start until it is")
        hidden = hidden_from_service(self.opts.bin, text)
        if hidden:
            self.step("warning", f"ExecStart={self.opts.bin}", hidden)
        if self.offline:
            self._tool(["systemctl", f"--root={self.opts.root}", "enable", SERVICE])
            self.step("enabled", SERVICE, f"symlinks under {self.opts.root}; nothing started")
        elif systemd_running():
            self._tool(["systemctl", "daemon-reload"])
            self._tool(["systemctl", "enable", SERVICE])
            self.step("enabled", SERVICE, "start it with: systemctl start redactd")
        else:
            # systemctl enables offline (it only writes symlinks) when systemd is not PID 1.
            self._tool(["systemctl", "enable", SERVICE])
            self.step("enabled", SERVICE, "for the next boot")
            self.step("skipped", "systemctl daemon-reload / start",
                      "systemd is not PID 1 on this machine; nothing was started")

    # ----------------------------------------------------------------- uninstall

    def uninstall(self) -> list[Step]:
        if os.geteuid() != 0:
            raise InstallError("uninstall must run as root")
        target = self.at(f"{UNIT_DIR}/{SERVICE}")
        if target.exists():
            if self.offline:
                self._tool(["systemctl", f"--root={self.opts.root}", "disable", SERVICE])
            elif systemd_running():
                self._tool(["systemctl", "disable", "--now", SERVICE])
            else:
                self._tool(["systemctl", "disable", SERVICE])
            target.unlink()
            if self.offline:
                done = f"disabled under {self.opts.root}; nothing runs there, so nothing was stopped"
            elif systemd_running():
                done = "stopped and disabled"
            else:
                done = "disabled; systemd is not PID 1 here, so nothing was running to stop"
            self.step("removed", f"{UNIT_DIR}/{SERVICE}", done)
            if systemd_running() and not self.offline:
                self._tool(["systemctl", "daemon-reload"])
        else:
            self.step("skipped", f"{UNIT_DIR}/{SERVICE}", "not installed")
        web = self.at(f"{UNIT_DIR}/{WEB_SERVICE}")
        if web.exists():
            if self.offline:
                self._tool(["systemctl", f"--root={self.opts.root}", "disable", WEB_SERVICE])
            elif systemd_running():
                self._tool(["systemctl", "disable", "--now", WEB_SERVICE])
            else:
                self._tool(["systemctl", "disable", WEB_SERVICE])
            web.unlink()
            self.step("removed", f"{UNIT_DIR}/{WEB_SERVICE}")
        for kept in (SRV, STATE, CONFIG_DIR, KEY_PATH, f"user {self.opts.user}, group {self.opts.share_group}"):
            self.step("kept", kept, "uninstall never removes footage, state, config, keys or accounts")
        return self.steps


#: What the unit's sandboxing hides from the service: a program under these paths cannot start.
_HIDDEN_BY = {"ProtectHome": ("/home", "/root", "/run/user"), "PrivateTmp": ("/tmp", "/var/tmp")}


def hidden_from_service(program: str, unit_text: str) -> str | None:
    """Why ``ExecStart=program`` would fail under the unit's ``ProtectHome=``/``PrivateTmp=``, or None.

    ``make install`` from a checkout in a home directory, or a venv in /tmp, would otherwise write
    a unit that fails at start with status 203/EXEC and no hint why.
    """
    settings = dict(line.split("=", 1) for line in unit_text.splitlines() if "=" in line and not line.startswith("#"))
    resolved = os.path.realpath(program)
    for setting, roots in _HIDDEN_BY.items():
        value = settings.get(setting, "no").strip().lower()
        if value in ("", "no", "false", "0"):
            continue
        for top in roots:
            for path in {program, resolved}:
                if path == top or path.startswith(top + "/"):
                    return (f"{path} is under {top}, which {setting}={settings[setting].strip()} hides from the "
                            "service: it would fail to start (203/EXEC). Install the program outside it (`make "
                            "install` puts it in /opt/redactd/venv) or pass --bin with such a path")
    return None


def _run(argv: list[str]) -> None:
    run_tool(argv, _TOOL_TIMEOUT)


def installed_config(example: str) -> str:
    """The example config with every path set to the installed layout (comments kept)."""
    done: set[str] = set()

    def fix(m: re.Match[str]) -> str:
        key = m.group(2)
        if key in done:
            return m.group(0)  # only the first inbox's path; commented examples are left alone
        done.add(key)
        return f"{m.group(1)}{CONFIG_PATHS[key]}{m.group(4)}"

    keys = "|".join(CONFIG_PATHS)
    text = re.sub(rf"^(\s*(?:- )?({keys}):\s*)(\S+)(.*)$", fix, example, flags=re.MULTILINE)
    missing = set(CONFIG_PATHS) - done
    if missing:
        raise ConfigError(f"etc/redactd.yaml: no line for {sorted(missing)}; cannot derive the installed config")
    return "# Installed by `redactd install`; re-installing never overwrites this file.\n" + text
