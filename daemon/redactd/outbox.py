"""Custody entries made where the custody log cannot be written, waiting for whoever holds it.

The custody log has one writer: the daemon while it runs. A reviewer's decision (`redactd review
approve|reject`) is made in another process, so its entries wait here, in the job store's SQLite
file, until the daemon appends them (at start-up, at every custody checkpoint and at shutdown) or,
while the daemon is stopped, the command appends them itself. Entries are appended in the order
they were made; each is marked recorded after its append, so a crash in between records it twice
rather than never.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

#: Transition events a decision outside the daemon produces that the custody log records.
CUSTODY_EVENTS = frozenset({"review_approved", "review_rejected", "published"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS custody_outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event       TEXT NOT NULL,
    fields      TEXT NOT NULL,  -- JSON: the keyword arguments of CustodyLog.append
    created_at  REAL NOT NULL,
    recorded_at REAL
)
"""


class CustodyWriter(Protocol):
    def append(self, event: Any, **fields: Any) -> Any: ...


class CustodyOutbox:
    """The ``custody_outbox`` table beside the job store's tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> CustodyOutbox:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute(_SCHEMA)
        return cls(conn)

    def close(self) -> None:
        self._conn.close()

    def __call__(self, event: str, **fields: Any) -> None:
        """A job-store transition sink: queue the events the custody log records."""
        if event in CUSTODY_EVENTS:
            self._conn.execute("INSERT INTO custody_outbox (event, fields, created_at) VALUES (?, ?, ?)",
                               (event, json.dumps(fields, sort_keys=True), time.time()))

    def pending(self) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._conn.execute(
            "SELECT seq, event, fields FROM custody_outbox WHERE recorded_at IS NULL ORDER BY seq").fetchall()
        return [(seq, event, json.loads(fields)) for seq, event, fields in rows]

    def flush(self, custody: CustodyWriter) -> int:
        """Append every waiting entry to ``custody`` in order; returns how many were written."""
        written = 0
        for seq, event, fields in self.pending():
            custody.append(event, **fields)
            self._conn.execute("UPDATE custody_outbox SET recorded_at = ? WHERE seq = ?", (time.time(), seq))
            written += 1
        return written


@contextmanager
def opened(path: Path) -> Iterator[CustodyOutbox]:
    box = CustodyOutbox.open(path)
    try:
        yield box
    finally:
        box.close()


def flush_outbox(store_file: Path, custody: CustodyWriter) -> int:
    """What the custody log's holder runs: append whatever decisions are waiting."""
    if not store_file.exists():
        return 0
    with opened(store_file) as box:
        return box.flush(custody)
