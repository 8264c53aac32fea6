"""The custody outbox: custody entries queued in the job store, appended by the log's one writer.

Every job transition queues its custody entry in the same SQLite transaction that makes it
(``JobStore._emit``), so no committed transition can miss its entry, whatever crashes when.
The custody log has one writer: the daemon while it runs (after every transition, at start-up,
at each checkpoint and at shutdown); while it is stopped, the command that changed something
(``redactd review``, ``redactd jobs retry``) appends them itself. Entries are appended in the
order they were made; each is marked recorded after its append, so a crash in between records
it twice (both carry the same ``outbox_seq``) rather than never.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from redactd.config import DaemonConfig

SCHEMA = """
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


def _custody_value(value: Any) -> Any:
    """Custody entries hold no floats (they have no single canonical text): write them as text."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: _custody_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_custody_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def queue_custody_event(conn: sqlite3.Connection, event: str, fields: dict[str, Any]) -> None:
    """Queue one entry inside the caller's transaction."""
    conn.execute("INSERT INTO custody_outbox (event, fields, created_at) VALUES (?, ?, ?)",
                 (event, json.dumps(_custody_value(fields), sort_keys=True), time.time()))


class CustodyOutbox:
    """The ``custody_outbox`` table beside the job store's tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> CustodyOutbox:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute(SCHEMA)
        return cls(conn)

    def close(self) -> None:
        self._conn.close()

    def pending(self) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._conn.execute(
            "SELECT seq, event, fields FROM custody_outbox WHERE recorded_at IS NULL ORDER BY seq").fetchall()
        return [(seq, event, json.loads(fields)) for seq, event, fields in rows]

    def flush(self, custody: CustodyWriter) -> int:
        """Append every waiting entry to ``custody`` in order; returns how many were written."""
        written = 0
        for seq, event, fields in self.pending():
            custody.append(event, outbox_seq=seq, **fields)
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
    """What the custody log's holder runs: append whatever entries are waiting."""
    if not store_file.exists():
        return 0
    with opened(store_file) as box:
        return box.flush(custody)


def record_pending(cfg: DaemonConfig, store_file: Path) -> str:
    """For a command that changed jobs: append the waiting custody entries if this process can
    write the log (the daemon is stopped); say what happened.

    The custody log has one writer. While ``redactd run`` holds it, the entries stay in the
    outbox and the daemon appends them at its next custody checkpoint, start or stop.
    """
    from redactd.custody import CustodyLog
    from redactd.custody.keys import read_passphrase
    from redactd.errors import CustodyError

    if not cfg.custody.signing_key.is_file():
        return (f"queued: no custody signing key at {cfg.custody.signing_key} yet (see `redactd keys "
                "init`); written once there is one")
    try:
        custody = CustodyLog.open(cfg.custody.directory, cfg.custody.signing_key,
                                  read_passphrase(cfg.custody.passphrase_file))
    except CustodyError as exc:
        if "another writer" not in str(exc):
            raise
        return (f"queued for the running daemon, which records it with its next job transition, within "
                f"{cfg.custody.checkpoint_minutes:g} min (custody checkpoint) at the latest, or when it stops")
    try:
        written = flush_outbox(store_file, custody)
    finally:
        custody.close()
    return f"recorded in the custody log ({written} entr{'y' if written == 1 else 'ies'})"


def lag(store_file: Path, now: float | None = None) -> tuple[int, float | None]:
    """Custody entries not yet in the log, and the age in seconds of the oldest (None when none wait).

    Read-only: safe while the daemon runs. Entries wait while the daemon is stopped or between its
    custody flushes; a growing lag means the custody log cannot be written.
    """
    if not store_file.exists():
        return 0, None
    conn = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True, timeout=30)
    try:
        try:
            count, oldest = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM custody_outbox WHERE recorded_at IS NULL").fetchone()
        except sqlite3.OperationalError:  # a store from before the outbox
            return 0, None
    finally:
        conn.close()
    now = time.time() if now is None else now
    return int(count), (max(0.0, now - oldest) if oldest is not None else None)
