"""Which filesystem a path lives on, and whether it can keep snapshots of what retention deletes.

On btrfs and ZFS (and on NAS shares backed by them) a snapshot taken before a purge still holds
the raw footage afterwards: ``unlink`` cannot reach into it. redactd cannot see the snapshot
schedule, so it warns at start-up and records the filesystem type in every ``purged`` entry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from redactd import log

MOUNTINFO = Path("/proc/self/mountinfo")
#: Filesystems with built-in snapshots. Network filesystems are listed because the server behind
#: them (a NAS) very often snapshots: redactd cannot tell, so it says so.
SNAPSHOT_FILESYSTEMS = frozenset({"btrfs", "zfs", "bcachefs", "nilfs2"})
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "glusterfs", "ceph"})


@dataclass(frozen=True)
class Filesystem:
    mount_point: str
    fstype: str
    source: str

    @property
    def snapshots(self) -> bool:
        return self.fstype in SNAPSHOT_FILESYSTEMS

    @property
    def network(self) -> bool:
        return self.fstype in NETWORK_FILESYSTEMS


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Filesystem]:
    """Mounts from /proc/self/mountinfo text (see proc(5)): mount point, type and source of each."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append(Filesystem(_unescape(fields[4]), tail[0], _unescape(tail[1])))
    return mounts


def filesystem_of(path: Path, mountinfo: str | None = None) -> Filesystem:
    """The mount that holds ``path`` (the longest mount point that is a prefix of its real path)."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            return Filesystem("?", "unknown", "?")
    real = os.path.realpath(path)
    best: Filesystem | None = None
    for fs in parse_mountinfo(mountinfo):
        mp = fs.mount_point.rstrip("/") or "/"
        inside = real == mp or real.startswith(mp + "/") or mp == "/"
        # Later lines win on equal length: a mount stacked over another hides it.
        if inside and (best is None or len(mp) >= len(best.mount_point.rstrip("/") or "/")):
            best = fs
    return best or Filesystem("?", "unknown", "?")


def warn_about_snapshots(paths: dict[str, Path], mountinfo: str | None = None) -> list[str]:
    """Log a warning for each named store on a snapshotting or network filesystem; return the names."""
    warned = []
    for name, path in paths.items():
        fs = filesystem_of(path, mountinfo)
        if fs.snapshots:
            log.get_logger().warning(
                "snapshots_keep_purged_files", store=name, filesystem=fs.fstype, mount_point=fs.mount_point,
                note="retention unlinks files; snapshots of this filesystem keep copies of purged footage "
                "until they expire. Exclude this store from snapshots or keep their retention shorter "
                "than the policy's")
            warned.append(name)
        elif fs.network:
            log.get_logger().warning(
                "purge_reach_unknown", store=name, filesystem=fs.fstype, mount_point=fs.mount_point,
                note="a network share: the server may snapshot or replicate it, and a purge here does not "
                "reach those copies")
            warned.append(name)
    return warned
