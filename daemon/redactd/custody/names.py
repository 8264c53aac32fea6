"""Original file names kept beside the custody log, out of its signed bytes: the name store.

A format 3 entry never carries a file's original name. It carries ``name_commit``, SHA-256 of
a fresh random 16-byte salt followed by the name's UTF-8 bytes, and the writer appends the name
and its salt to the name store, one JSON line per entry with a name:

    {"name":"Birthday of Carol.mp4","salt":"<32 hex digits>","seq":41}

The name store is ``<log directory>-names.jsonl``, beside the log directory and outside it, so
a copy of the log directory (what an officer verifies, bundles and hands on) holds no names
unless the names file is copied too. Salt and name open the commitment and nothing else does:
the signed log proves which name an entry recorded without showing it, and a bundle can leave
names out and still prove every entry.

The record is written and fsynced before its entry. A crash between the two leaves a record
whose entry never came; the entry written in its place (same seq) has another salt, so readers
pick the record that opens the commitment and an orphan is harmless. Bytes after the file's
last newline (a torn record) are ended with a newline before the next record and are skipped
by readers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redactd.errors import CustodyError
from redactd.fsutil import fsync_dir

NAMES_SUFFIX = "-names.jsonl"
SALT_BYTES = 16
#: What readers show for an entry whose name the name store does not hold (an officer's copy of
#: the log without the names file, say).
NAME_UNAVAILABLE = "name not available"
_SALT_HEX = re.compile(r"[0-9a-f]{32}")


def names_path(log_dir: Path) -> Path:
    """Where the name store of the custody log in ``log_dir`` lives: beside it, not in it."""
    log_dir = Path(log_dir)
    return log_dir.parent / f"{log_dir.name}{NAMES_SUFFIX}"


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def commit(salt: bytes, name: str) -> str:
    """The ``name_commit`` of ``name`` under ``salt``: SHA-256 hex of salt || UTF-8 name."""
    return hashlib.sha256(salt + name.encode("utf-8")).hexdigest()


def opens(entry: dict[str, Any], name: object, salt: object) -> bool:
    """Whether ``name`` and ``salt`` (hex) open ``entry``'s signed name commitment."""
    if not isinstance(name, str) or not isinstance(salt, str) or not _SALT_HEX.fullmatch(salt):
        return False
    expected = entry.get("name_commit")
    return isinstance(expected, str) and commit(bytes.fromhex(salt), name) == expected


class NameWriter:
    """The log writer's side: appends one record per named entry, durably, before the entry."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._torn = False  # the file does not end with a newline: end that line first

    def write(self, seq: int, name: str, salt: bytes) -> None:
        """Append the record of entry ``seq`` and fdatasync; raise CustodyError if it is not on disk."""
        line = json.dumps({"seq": seq, "name": name, "salt": salt.hex()}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        try:
            if self._fd is None:
                self._open()
            data = (b"\n" if self._torn else b"") + line + b"\n"
            self._torn = True  # until the whole record is known to be written
            written = os.write(self._fd, data)  # type: ignore[arg-type]
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
            os.fdatasync(self._fd)  # type: ignore[arg-type]
            self._torn = False
        except OSError as exc:
            raise CustodyError(f"{self.path}: original name of custody entry {seq} not written "
                               f"({getattr(exc, 'strerror', None) or exc}); the entry was not written either") from exc

    def _open(self) -> None:
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        size = os.fstat(self._fd).st_size
        self._torn = size > 0 and os.pread(self._fd, 1, size - 1) != b"\n"
        if created:
            fsync_dir(self.path.parent)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class Names:
    """A name store as read: for each seq, every (name, salt) recorded for it."""

    path: Path | None = None  # None: no name store (none given, or no such file)
    records: dict[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> Names:
        """Read the name store at ``path``; a missing file is an empty store (names not available)."""
        if path is None:
            return cls()
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise CustodyError(f"{path}: cannot read the custody name store: {exc.strerror or exc}") from None
        found: dict[int, list[tuple[str, str]]] = {}
        for raw in data.split(b"\n"):
            try:
                record = json.loads(raw)
            except ValueError:  # a torn record, or an empty line
                continue
            if not isinstance(record, dict):
                continue
            seq, name, salt = record.get("seq"), record.get("name"), record.get("salt")
            if isinstance(seq, int) and isinstance(name, str) and isinstance(salt, str):
                found.setdefault(seq, []).append((name, salt))
        return cls(Path(path), {seq: tuple(pairs) for seq, pairs in found.items()})

    def opening(self, entry: dict[str, Any]) -> dict[str, str] | None:
        """``{"name", "salt"}`` that opens ``entry``'s name commitment, or None when none here does."""
        for name, salt in self.records.get(entry.get("seq"), ()):  # type: ignore[arg-type]
            if opens(entry, name, salt):
                return {"name": name, "salt": salt}
        return None


def original_name(entry: dict[str, Any], names: Names) -> str | None:
    """The original file name an entry records, as every reader shows it.

    None when the entry records no name. Format 1 and 2 entries carry the name itself; a format 3
    entry commits to it and the name store gives it, checked against the commitment; when the
    store does not hold it, ``NAME_UNAVAILABLE``.
    """
    if entry.get("original_name"):
        return str(entry["original_name"])
    if not entry.get("name_commit"):
        return None
    opened = names.opening(entry)
    return opened["name"] if opened else NAME_UNAVAILABLE
