"""The custody directory's layout, and reading its segment files line by line."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redactd.errors import ChainBroken

SEGMENT_RE = re.compile(r"custody-(\d{6})\.jsonl")
CHECKPOINT_FILE = "checkpoint.json"  # a copy of the newest checkpoint entry: proves how long the log was
LOCK_FILE = ".lock"


def segment_name(index: int) -> str:
    return f"custody-{index:06d}.jsonl"


def segment_paths(directory: Path) -> list[Path]:
    """The segment files in order (their index, not their modification time, gives the order)."""
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := SEGMENT_RE.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


@dataclass(frozen=True)
class Line:
    """One newline-terminated line of a segment (``data`` without the newline)."""

    segment: str
    number: int  # 1-based, as editors and error messages count
    data: bytes


@dataclass(frozen=True)
class Tail:
    """Bytes after a segment's last newline: what a crash mid-append leaves behind."""

    segment: str
    number: int
    offset: int
    data: bytes

    def record(self) -> dict[str, Any]:
        """The details a ``torn_tail`` entry carries, so the verifier can match it to these bytes."""
        return {"segment": self.segment, "line": self.number, "offset": self.offset,
                "length": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest()}


def read_segment(path: Path) -> tuple[list[Line], Tail | None]:
    data = path.read_bytes()
    parts = data.split(b"\n")
    rest = parts.pop()
    lines = [Line(path.name, i + 1, part) for i, part in enumerate(parts)]
    tail = Tail(path.name, len(parts) + 1, len(data) - len(rest), rest) if rest else None
    return lines, tail


def load_entries(directory: Path, strict: bool = True) -> list[dict[str, Any]]:
    """Every complete entry, parsed but NOT verified (``verify_log`` does that); for show and report.

    ``strict=False`` stops quietly at the first line that is not a JSON object instead of raising.
    """
    if not directory.is_dir():
        raise ChainBroken(f"{directory}: no custody log directory")
    entries: list[dict[str, Any]] = []
    for path in segment_paths(directory):
        for line in read_segment(path)[0]:
            try:
                entry = json.loads(line.data)
            except ValueError:
                if not strict:
                    return entries
                raise ChainBroken(f"{line.segment} line {line.number}: not a JSON entry; "
                                  "run `redactd custody verify`") from None
            if not isinstance(entry, dict):
                if not strict:
                    return entries
                raise ChainBroken(f"{line.segment} line {line.number}: not a JSON object")
            entries.append(entry)
    return entries
