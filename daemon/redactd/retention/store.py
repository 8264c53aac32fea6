"""Retention's durable records in the job store's SQLite file: legal holds, purges and runs.

They live beside the ``jobs`` table (``state_dir/jobs.sqlite3``) so one backup holds the whole
truth, but in their own tables, created here: the job store's schema stays the daemon's.

A hold takes effect at once (at the next plan). Its ``hold_set`` / ``hold_released`` custody
entry is queued in the custody outbox (``redactd.jobflow.outbox``) in the same transaction, and whoever
holds the custody log appends it: the daemon, or the command itself while the daemon is stopped.

Each purge is a row written *before* the file is touched (``intended``) and completed after
(``purged``) or marked ``refused``. A crash between the unlink and the ``purged`` custody entry
leaves an ``intended`` row whose file is gone; the next run completes it (see ``apply``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from redactd.errors import RetentionError
from redactd.jobflow.jobstore import JobStore
from redactd.jobflow.outbox import SCHEMA as OUTBOX_SCHEMA
from redactd.jobflow.outbox import queue_custody_event
from redactd.private import create_private_file
from redactd.retention.model import Hold, HoldScope, ItemKind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS retention_holds (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    scope             TEXT NOT NULL,
    value             TEXT NOT NULL,
    reason            TEXT NOT NULL,
    requested_by      TEXT NOT NULL,
    created_at        REAL NOT NULL,
    review_date       REAL,
    released_at       REAL,
    released_by       TEXT
);
CREATE TABLE IF NOT EXISTS retention_purges (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    path           TEXT NOT NULL,
    sha256         TEXT,
    size           INTEGER,
    status         TEXT NOT NULL,                  -- intended | purged | refused | abandoned
    detail         TEXT,
    policy_id      TEXT NOT NULL,
    policy_version INTEGER NOT NULL,
    policy_hash    TEXT NOT NULL,
    rule           TEXT,
    intended_at    REAL NOT NULL,
    finished_at    REAL
);
CREATE INDEX IF NOT EXISTS retention_purges_job ON retention_purges (job_id, kind, status);
CREATE TABLE IF NOT EXISTS retention_runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at     REAL NOT NULL,
    finished_at    REAL,
    trigger        TEXT NOT NULL,
    policy_id      TEXT NOT NULL,
    policy_version INTEGER NOT NULL,
    dry_run        INTEGER NOT NULL,
    purged         INTEGER,
    refused        INTEGER,
    held           INTEGER,
    deferred       INTEGER
);
""" + OUTBOX_SCHEMA


def to_ts(when: datetime) -> float:
    return when.timestamp()


def from_ts(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


@dataclass(frozen=True)
class PurgeRow:
    id: int
    job_id: str
    kind: ItemKind
    path: Path
    sha256: str | None
    size: int | None
    status: str
    policy_id: str
    policy_version: int
    policy_hash: str
    rule: str | None


def _hold_fields(hold_id: int, scope: HoldScope, value: str, reason: str, created: datetime,
                 review_date: datetime | None, actor: str) -> dict[str, object]:
    """The custody entry of a hold change: what it covers, why, since when, who."""
    fields: dict[str, object] = {"hold_id": hold_id, "scope": scope.value, "reason": reason,
                                 "created": created.isoformat(), "actor": actor}
    if scope is HoldScope.SHA256:
        fields["raw_sha256"] = value
    elif scope is HoldScope.JOB:
        fields["job_id"] = value
    else:
        fields["covers"] = value
    if review_date is not None:
        fields["review_date"] = review_date.date().isoformat()
    return fields


class RetentionStore:
    """One connection to retention's tables. Open one per thread, like ``JobStore``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> RetentionStore:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        create_private_file(path)  # SQLite gives its -wal and -shm files this mode too
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a hold that `hold add` reported as set must survive a power cut.
        conn.execute("PRAGMA synchronous = FULL")
        with cls._tx(conn):
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
        return cls(conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The job store's transaction discipline (BEGIN IMMEDIATE) for the file both share.
    _tx = staticmethod(JobStore._tx)

    # ------------------------------------------------------------------ holds

    def add_hold(self, scope: HoldScope, value: str, reason: str, requested_by: str, now: datetime,
                 review_date: datetime | None = None) -> Hold:
        if not value.strip() or not reason.strip() or not requested_by.strip():
            raise RetentionError("a hold needs what it covers, a reason and who requested it (none may be empty)")
        with self._tx(self._conn) as c:
            cur = c.execute(
                "INSERT INTO retention_holds (scope, value, reason, requested_by, created_at, review_date) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (scope.value, value, reason, requested_by, to_ts(now),
                 to_ts(review_date) if review_date else None))
            hold_id = cur.lastrowid
            assert hold_id is not None
            queue_custody_event(c, "hold_set", _hold_fields(
                hold_id, scope, value, reason, now, review_date, actor=requested_by))
        return self.hold(hold_id)

    def release_hold(self, hold_id: int, released_by: str, now: datetime) -> Hold:
        with self._tx(self._conn) as c:
            row = c.execute("SELECT * FROM retention_holds WHERE id = ?", (hold_id,)).fetchone()
            if row is None:
                raise RetentionError(f"no hold #{hold_id} (see `redactd hold list`)")
            if row["released_at"] is not None:
                raise RetentionError(f"hold #{hold_id} was already released at {from_ts(row['released_at'])}")
            c.execute("UPDATE retention_holds SET released_at = ?, released_by = ? WHERE id = ?",
                      (to_ts(now), released_by, hold_id))
            held = self._hold(row)
            queue_custody_event(c, "hold_released", _hold_fields(
                hold_id, held.scope, held.value, held.reason, held.created_at, held.review_date, actor=released_by))
        return self.hold(hold_id)

    @staticmethod
    def _hold(row: sqlite3.Row) -> Hold:
        created = from_ts(row["created_at"])
        assert created is not None
        return Hold(id=row["id"], scope=HoldScope(row["scope"]), value=row["value"], reason=row["reason"],
                    requested_by=row["requested_by"], created_at=created, review_date=from_ts(row["review_date"]),
                    released_at=from_ts(row["released_at"]), released_by=row["released_by"])

    def hold(self, hold_id: int) -> Hold:
        row = self._conn.execute("SELECT * FROM retention_holds WHERE id = ?", (hold_id,)).fetchone()
        if row is None:
            raise RetentionError(f"no hold #{hold_id} (see `redactd hold list`)")
        return self._hold(row)

    def holds(self, include_released: bool = False) -> list[Hold]:
        sql = "SELECT * FROM retention_holds"
        if not include_released:
            sql += " WHERE released_at IS NULL"
        return [self._hold(r) for r in self._conn.execute(sql + " ORDER BY id")]

    # ------------------------------------------------------------------ purges

    def intend_purge(self, job_id: str, kind: ItemKind, path: Path, sha256: str | None, size: int | None,
                     policy_id: str, policy_version: int, policy_hash: str, rule: str | None,
                     now: datetime) -> int:
        with self._tx(self._conn) as c:
            cur = c.execute(
                "INSERT INTO retention_purges (job_id, kind, path, sha256, size, status, policy_id, "
                "policy_version, policy_hash, rule, intended_at) VALUES (?, ?, ?, ?, ?, 'intended', ?, ?, ?, ?, ?)",
                (job_id, kind.value, str(path), sha256, size, policy_id, policy_version, policy_hash, rule,
                 to_ts(now)))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_purge(self, purge_id: int, status: str, now: datetime, detail: str | None = None) -> None:
        with self._tx(self._conn) as c:
            c.execute("UPDATE retention_purges SET status = ?, detail = ?, finished_at = ? WHERE id = ?",
                      (status, detail, to_ts(now), purge_id))

    def unfinished_purges(self) -> list[PurgeRow]:
        return [PurgeRow(r["id"], r["job_id"], ItemKind(r["kind"]), Path(r["path"]), r["sha256"], r["size"],
                         r["status"], r["policy_id"], r["policy_version"], r["policy_hash"], r["rule"])
                for r in self._conn.execute("SELECT * FROM retention_purges WHERE status = 'intended' ORDER BY id")]

    def purged_paths(self) -> set[tuple[str, str, str]]:
        """(job id, kind, path) of every completed purge: those items no longer exist."""
        return {(r[0], r[1], r[2]) for r in
                self._conn.execute("SELECT job_id, kind, path FROM retention_purges WHERE status = 'purged'")}

    # ------------------------------------------------------------------ runs

    def begin_run(self, trigger: str, policy_id: str, policy_version: int, dry_run: bool, now: datetime) -> int:
        with self._tx(self._conn) as c:
            cur = c.execute("INSERT INTO retention_runs (started_at, trigger, policy_id, policy_version, dry_run) "
                            "VALUES (?, ?, ?, ?, ?)", (to_ts(now), trigger, policy_id, policy_version, int(dry_run)))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_run(self, run_id: int, now: datetime, counts: dict[str, int]) -> None:
        with self._tx(self._conn) as c:
            c.execute("UPDATE retention_runs SET finished_at = ?, purged = ?, refused = ?, held = ?, deferred = ? "
                      "WHERE id = ?", (to_ts(now), counts.get("purged", 0), counts.get("refused", 0),
                                       counts.get("held", 0), counts.get("deferred", 0), run_id))

    def last_finished_run(self) -> datetime | None:
        """When the last run that applied (not a dry run) finished."""
        row = self._conn.execute("SELECT MAX(finished_at) FROM retention_runs WHERE dry_run = 0").fetchone()
        return from_ts(row[0]) if row and row[0] is not None else None


def open_refusals(store_file: Path, limit: int = 10) -> list[dict[str, object]]:
    """Purges retention refused and has not completed since, newest first (read-only, for ``status``).

    A refusal is an operator's to resolve (restore the clean copy, or find who changed the file);
    it stays listed until a later run purges the item.
    """
    if not store_file.exists():
        return []
    conn = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute(
                "SELECT r.job_id, r.kind, r.detail, r.finished_at FROM retention_purges r "
                "WHERE r.status = 'refused' AND r.id = (SELECT MAX(id) FROM retention_purges q "
                "WHERE q.job_id = r.job_id AND q.kind = r.kind AND q.path = r.path) "
                "ORDER BY r.id DESC LIMIT ?", (limit,)).fetchall()
        except sqlite3.OperationalError:  # retention never ran: its tables do not exist yet
            return []
        return [{"job_id": r["job_id"], "item": r["kind"], "at": r["finished_at"], "reason": r["detail"]}
                for r in rows]
    finally:
        conn.close()
