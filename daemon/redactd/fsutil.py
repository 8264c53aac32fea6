"""Durable, atomic file writes: temp name in the target directory, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success make it ``path`` durably, else remove it.

    The temp name starts with a dot and ends in ``.tmp`` so watchers and junk filters skip it.
    Its suffix is kept before ``.tmp`` only when the caller needs it (see ``atomic_output_keep_suffix``).
    """
    with _atomic(path, mode, suffix=".tmp") as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_output_keep_suffix(path: Path, mode: int = 0o644) -> Iterator[Path]:
    """Like ``atomic_output`` but the temp file keeps ``path``'s suffix (tools pick formats by it)."""
    with _atomic(path, mode, suffix=".tmp" + path.suffix) as tmp:
        yield tmp


@contextlib.contextmanager
def _atomic(path: Path, mode: int, suffix: str) -> Iterator[Path]:
    directory = path.parent
    fd, name = tempfile.mkstemp(prefix=".redactd-", suffix=suffix, dir=directory)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    with atomic_output(path, mode) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


_KINDS = {
    stat.S_IFIFO: "named pipe (FIFO)",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symbolic link",
}


def file_kind(st: os.stat_result) -> str:
    """What a path that is not a regular file is, for messages: "directory", "named pipe (FIFO)"..."""
    return _KINDS.get(stat.S_IFMT(st.st_mode), "special file")


def human_size(n: float | None) -> str:
    """Bytes as people read them: ``92.7 KiB``, ``1.4 GiB``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # not reached


#: Filesystems where SQLite's locking cannot be trusted (and where a worker host could open the file).
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "ceph", "glusterfs",
                                 "fuse.glusterfs", "afs", "lustre"})


def filesystem_type(path: Path, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the filesystem ``path`` lives on (the longest mount point above it), or None."""
    target = os.path.realpath(path)
    best, fstype = -1, None
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].replace("\\040", " ")
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > best:
            best, fstype = len(mount), right.split()[0]
    return fstype
