"""Durable file writes for the custody package: new-file-only and atomic replace, both fsynced.

(redactd.fsutil on main offers atomic_write too; this module adds the refuse-to-overwrite
variant that key creation needs, and keeps the custody package usable on its own.)
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow what we ask for
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` complete or not at all; raise FileExistsError if it already exists.

    os.link() is atomic and refuses to replace, so a racing writer or an existing key is
    never overwritten and nobody ever sees a half-written file.
    """
    tmp = _write_temp(path, data, mode)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def replace_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` through a temporary file, fsync, rename over it, fsync the directory."""
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
