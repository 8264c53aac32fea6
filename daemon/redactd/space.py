"""Free space on the volumes the daemon writes: which one is short, and whether an error means a full disk.

A full disk is an environment condition, never a fault of the file being processed: work waits
for space instead of failing. Each volume has a floor, ``limits.min_free_space`` plus the size of
the file waiting (it is copied into the raw store, remuxed or re-encoded in scratch, and published
to clean storage, each about its own size). Admission pauses while any volume is under its floor;
workers take a job only while scratch and clean storage have room for it. ``redactd status`` and
the console call ``volumes`` the same way the daemon does.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redactd import log

SCRATCH_DIR = "scratch"
#: Volumes admission needs room on, and the subset a worker needs before it takes a job.
ADMISSION = ("scratch", "raw_store", "clean")
PROCESSING = ("scratch", "clean")
_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# How the tools we run say it (ffmpeg, x264, exiftool, SQLite): their errors reach us as text.
_MESSAGES = ("no space left on device", "disk quota exceeded", "database or disk is full")


@dataclass(frozen=True)
class Volume:
    """One place the daemon writes, with its free space and the floor it must stay above."""

    name: str  # scratch | raw_store | clean
    path: Path
    free: int | None  # bytes available to the daemon; None when it cannot be read
    floor: int

    @property
    def short(self) -> bool:
        return self.free is not None and self.free < self.floor

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "free_bytes": self.free, "floor_bytes": self.floor,
                "short": self.short}

    def describe(self) -> str:
        free = "?" if self.free is None else human(self.free)
        return f"{self.name} ({self.path}): {free} free, needs {human(self.floor)}"


def human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def paths(state_dir: Path, raw_store: Path, clean_dir: Path) -> dict[str, Path]:
    return {"scratch": state_dir / SCRATCH_DIR, "raw_store": raw_store, "clean": clean_dir}


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem (nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def volumes(where: dict[str, Path], min_free: int, pending: int = 0,
            names: Iterable[str] = ADMISSION) -> list[Volume]:
    """Each named volume with its free space and its floor for a file of ``pending`` bytes."""
    return [Volume(n, where[n], free_bytes(where[n]), min_free + max(0, pending)) for n in names]


def shortages(where: dict[str, Path], min_free: int, pending: int = 0,
              names: Iterable[str] = ADMISSION) -> list[Volume]:
    return [v for v in volumes(where, min_free, pending, names) if v.short]


def is_out_of_space(exc: BaseException | None) -> bool:
    """True when ``exc`` (or anything in its cause chain) is ENOSPC / EDQUOT, however it was wrapped."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _ERRNOS:
            return True
        if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and "full" in str(exc).lower():
            return True
        text = str(exc).lower()
        if any(m in text for m in _MESSAGES):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def message_is_out_of_space(message: str) -> bool:
    """The same test on an error that crossed a process boundary as text."""
    low = message.lower()
    return any(m in low for m in _MESSAGES) or "[errno 28]" in low or "[errno 122]" in low


class SpaceWatch:
    """The daemon's view of which volumes are short, logging each change once (threads share it)."""

    def __init__(self, where: dict[str, Path], min_free: int, waiting: str) -> None:
        self.where, self.min_free, self.waiting = where, min_free, waiting
        self._short: dict[str, Volume] = {}
        self._lock = threading.Lock()
        self._log = log.get_logger()

    def check(self, pending: int, names: Iterable[str]) -> list[Volume]:
        """The named volumes under their floor for a file of ``pending`` bytes (and remember it)."""
        names = tuple(names)
        short = shortages(self.where, self.min_free, pending, names)
        with self._lock:
            now = {v.name: v for v in short}
            for name in names:
                was = self._short.pop(name, None)
                if name in now:
                    self._short[name] = now[name]
                    if was is None:
                        self._log.warning("space_short", volume=name, path=str(now[name].path),
                                          free_bytes=now[name].free, floor_bytes=now[name].floor,
                                          waiting=self.waiting, note="it waits until space returns")
                elif was is not None:
                    self._log.info("space_returned", volume=name, free_bytes=free_bytes(self.where[name]),
                                   waiting=self.waiting)
        return short

    @property
    def short(self) -> list[Volume]:
        with self._lock:
            return list(self._short.values())
