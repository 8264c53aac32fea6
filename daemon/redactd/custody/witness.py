"""Witness directories: signed checkpoints delivered where the daemon can add files but not rewrite them.

A witness is a directory the daemon may create files in and nothing else: on another share, owned
by the officer's group, mode 1730 or 1770 with the sticky bit, so the daemon's user can neither
replace nor delete a file it delivered earlier (as CloudTrail delivers digest files to a separate
bucket). Each checkpoint lands there once, as ``checkpoint-<seq>.json`` holding the signed entry
line, created with O_EXCL: the writer never rewrites a witnessed checkpoint. Someone who can cut
the log and rewrite ``checkpoint.json`` in the state directory cannot take back what a witness
holds, and ``redactd custody verify --witness DIR`` proves the log consistent with every one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from redactd.errors import CustodyError
from redactd.fsutil import fsync_dir

WITNESS_RE = re.compile(r"checkpoint-(\d{12})\.json")


def witness_name(seq: int) -> str:
    return f"checkpoint-{seq:012d}.json"


@dataclass(frozen=True)
class Witnessed:
    """One checkpoint a witness holds: the file and the signed entry line in it."""

    path: Path
    seq: int
    data: bytes


def deliver(directory: Path, seq: int, line: bytes) -> bool:
    """Add the checkpoint entry ``line`` to ``directory``; True if it was new, False if already there.

    A file of that name with other bytes is an error: the witness holds a different history.
    """
    path = directory / witness_name(seq)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        if path.read_bytes().rstrip(b"\n") == line:
            return False
        raise CustodyError(f"{path}: the witness already holds a different checkpoint {seq}; "
                           "this log is not the history it witnessed (run `redactd custody verify --witness`)"
                           ) from None
    try:
        data = line + b"\n"
        if os.write(fd, data) != len(data):
            raise CustodyError(f"{path}: short write delivering checkpoint {seq}")
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(directory)
    return True


def witnessed(directory: Path) -> list[Witnessed]:
    """Every checkpoint ``directory`` holds, oldest first."""
    try:
        names = [(int(m.group(1)), p) for p in directory.iterdir() if (m := WITNESS_RE.fullmatch(p.name))]
    except OSError as exc:
        raise CustodyError(f"{directory}: cannot read witness directory: {exc.strerror}") from None
    return [Witnessed(p, seq, p.read_bytes().rstrip(b"\n")) for seq, p in sorted(names)]


def newest(directories: Iterable[Path]) -> Witnessed | None:
    """The newest checkpoint any of ``directories`` holds (missing directories hold none)."""
    found = [w for d in directories if d.is_dir() for w in witnessed(d)[-1:]]
    return max(found, key=lambda w: w.seq, default=None)
