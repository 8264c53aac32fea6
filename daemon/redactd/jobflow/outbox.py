"""The custody outbox: custody entries queued in the job store, appended by the log's one writer.

Every job transition queues its custody entry in the same SQLite transaction that makes it
(``JobStore._emit``), so no committed transition can miss its entry, whatever crashes when.
The custody log has one writer: the daemon while it runs (after every transition, and within a
second of another process queuing one: that process also wakes it with SIGUSR1); while it is
stopped, the command that changed something (``redactd review``, ``redactd jobs retry``) appends
them itself. Entries are appended in the order they were made, each with ``occurred_at`` = when
it was queued, i.e. when its action happened; each is marked recorded after its append, so a
crash in between records it twice (both carry the same ``outbox_seq``) rather than never. An
entry whose fields break a rule is recorded in a safe form, never skipped and never blocking.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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


class OutboxWriter(Protocol):
    def record(self, event: Any, fields: dict[str, Any], occurred_at: datetime | None = None) -> Any: ...


class LogWriter(CustodyWriter, OutboxWriter, Protocol):
    """Both ways of writing: what the custody log's holder passes around (a CustodyLog)."""


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
        return [(seq, event, fields) for seq, event, fields, _ in self._pending()]

    def _pending(self) -> list[tuple[int, str, dict[str, Any], float]]:
        rows = self._conn.execute("SELECT seq, event, fields, created_at FROM custody_outbox "
                                  "WHERE recorded_at IS NULL ORDER BY seq").fetchall()
        return [(seq, event, json.loads(fields), created) for seq, event, fields, created in rows]

    def flush(self, custody: OutboxWriter) -> int:
        """Append every waiting entry to ``custody`` in order; returns how many were written."""
        written = 0
        for seq, event, fields, created in self._pending():
            custody.record(event, {**fields, "outbox_seq": seq}, datetime.fromtimestamp(created, UTC))
            self._conn.execute("UPDATE custody_outbox SET recorded_at = ? WHERE seq = ?", (time.time(), seq))
            written += 1
        return written

    def lag(self, now: float | None = None) -> dict[str, Any]:
        """Entries queued but not yet in the custody log, and how long the oldest has waited."""
        count, oldest = self._conn.execute("SELECT COUNT(*), MIN(created_at) FROM custody_outbox "
                                           "WHERE recorded_at IS NULL").fetchone()
        now = time.time() if now is None else now
        return {"queued": count, "oldest_age_s": round(now - oldest, 1) if oldest is not None else None}


@contextmanager
def opened(path: Path) -> Iterator[CustodyOutbox]:
    box = CustodyOutbox.open(path)
    try:
        yield box
    finally:
        box.close()


def custody_lag(store_file: Path) -> dict[str, Any]:
    """``{"queued": N, "oldest_age_s": seconds or None}``: what ``status``, metrics and the console show."""
    if not store_file.exists():
        return {"queued": 0, "oldest_age_s": None}
    conn = sqlite3.connect(f"{store_file.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return CustodyOutbox(conn).lag()
    except sqlite3.OperationalError:  # no outbox table yet
        return {"queued": 0, "oldest_age_s": None}
    finally:
        conn.close()


def flush_outbox(store_file: Path, custody: OutboxWriter) -> int:
    """What the custody log's holder runs: append whatever entries are waiting."""
    if not store_file.exists():
        return 0
    with opened(store_file) as box:
        return box.flush(custody)


def record_pending(cfg: DaemonConfig, store_file: Path) -> str:
    """For a command that changed jobs: append the waiting custody entries if this process can
    write the log (the daemon is stopped); say what happened.

    The custody log has one writer. While ``redactd run`` holds it, the entries stay in the
    outbox; this wakes the daemon (SIGUSR1), which appends them and signs a checkpoint at once,
    and finds them within a second by itself if the signal cannot reach it.
    """
    from redactd.custody import CustodyLog
    from redactd.custody.keeper import POLL_SECONDS, daemon_pid, wake_writer
    from redactd.custody.keys import read_passphrase
    from redactd.errors import LogBusy

    if not cfg.custody.signing_key.is_file():
        return (f"queued: no custody signing key at {cfg.custody.signing_key} yet (see `redactd keys "
                "init`); written once there is one")
    deadline = time.monotonic() + 10
    while True:
        try:
            custody = CustodyLog.open(cfg.custody.directory, cfg.custody.signing_key,
                                      read_passphrase(cfg.custody.passphrase_file), witnesses=cfg.custody.witnesses)
            break
        except LogBusy as exc:
            daemon = daemon_pid(cfg)
            if daemon is None and time.monotonic() < deadline:  # another command holds it a moment
                time.sleep(0.2)
                continue
            if daemon is None:
                return (f"queued: another command (pid {exc.pid or '?'}) holds the custody log; the next "
                        "command that changes something, or the daemon's start, records it")
            how = "woken" if wake_writer(exc.pid, daemon) else f"it looks every {POLL_SECONDS:g} s"
            return f"queued for the running daemon (pid {exc.pid or '?'}; {how}), which records it within seconds"
    try:
        written = flush_outbox(store_file, custody)
    finally:
        custody.close()
    return f"recorded in the custody log ({written} entr{'y' if written == 1 else 'ies'})"
