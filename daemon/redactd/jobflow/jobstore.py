"""The durable job store: one SQLite row per job, every state change in its own transaction.

SQLite in WAL mode is the one source of truth for job state. Readers (``redactd status``) never
block the daemon, and a crash at any point leaves each job in exactly one recorded state, from
which start-up recovery resumes (see ``Daemon.recover``).

    receiving ─► admitted ─► processing ─► published
        │            ▲            │    ├──► review ──► published (approved) | failed (rejected)
        │            └─ requeued ─┘    └──► failed      └──► admitted (re-queued with another policy,
        │                                                   or boxes approved before blurring)
        └──► duplicate            (rejected files are recorded directly as failed)
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from redactd.errors import RedactdError
from redactd.jobflow.outbox import SCHEMA as OUTBOX_SCHEMA
from redactd.jobflow.outbox import queue_custody_event
from redactd.private import create_private_file


class JobState(str, Enum):
    RECEIVING = "receiving"  # being moved into the raw store; only seen after a crash
    ADMITTED = "admitted"  # in the raw store, waiting for a worker
    PROCESSING = "processing"
    PUBLISHED = "published"
    REVIEW = "review"
    FAILED = "failed"
    DUPLICATE = "duplicate"  # same content as an earlier job; not processed again


FINISHED = frozenset({JobState.PUBLISHED, JobState.REVIEW, JobState.FAILED, JobState.DUPLICATE})


class JobStoreError(RedactdError):
    """A job does not exist, or is not in the state an operation needs."""


#: Receives every transition after it is committed: ``sink(event, job_id=, raw_sha256=, ...)``.
#: The fields follow ``CustodyLog.append`` (``original_name`` and ``policy`` as keywords of
#: their own, the rest as details), so the custody log connects here at the composition root.
TransitionSink = Callable[..., None]

_SCHEMA_VERSION = 2  # 2: the custody outbox
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id             TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    inbox          TEXT NOT NULL,
    original_name  BLOB NOT NULL,   -- path inside the inbox, raw bytes: names need not be UTF-8
    size           INTEGER,
    policy_id      TEXT NOT NULL,
    policy_version INTEGER,
    policy_sha256  TEXT,
    raw_path       TEXT,
    raw_sha256     TEXT,
    output_name    TEXT,
    output_sha256  TEXT,
    output_path    TEXT,
    duplicate_of   TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    progress       REAL,
    worker_pid     INTEGER,
    not_before     REAL NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL,
    admitted_at    REAL,
    started_at     REAL,
    finished_at    REAL,
    updated_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, not_before, created_at);
CREATE INDEX IF NOT EXISTS jobs_raw_sha ON jobs (raw_sha256);
CREATE TABLE IF NOT EXISTS transitions (
    seq        INTEGER PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES jobs (id),
    at         REAL NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS transitions_job ON transitions (job_id, seq);
CREATE INDEX IF NOT EXISTS transitions_to ON transitions (to_state, at);
""" + OUTBOX_SCHEMA


def display_name(raw: bytes) -> str:
    """An original file name made safe to print: invalid UTF-8 and control characters escaped."""
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


@dataclass(frozen=True)
class Job:
    id: str
    state: JobState
    inbox: str
    original_name: bytes
    size: int | None
    policy_id: str
    policy_version: int | None
    policy_sha256: str | None
    raw_path: Path | None
    raw_sha256: str | None
    output_name: str | None
    output_sha256: str | None
    output_path: Path | None
    duplicate_of: str | None
    attempts: int
    last_error: str | None
    progress: float | None
    worker_pid: int | None
    not_before: float
    created_at: float
    admitted_at: float | None
    started_at: float | None
    finished_at: float | None
    updated_at: float

    @property
    def name(self) -> str:
        return display_name(self.original_name)

    @classmethod
    def draft(cls, job_id: str, state: JobState, inbox: str, original_name: bytes, size: int | None,
              policy_id: str, **fields: Any) -> Job:
        """A job not (yet) in the store, e.g. to write its reason file before the row commits."""
        now = time.time()
        base: dict[str, Any] = {k: None for k in cls.__dataclass_fields__}
        base.update(id=job_id, state=state, inbox=inbox, original_name=original_name, size=size,
                    policy_id=policy_id, attempts=0, not_before=0.0, created_at=now, updated_at=now)
        base.update(fields)
        return cls(**base)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        d = dict(row)
        d["state"] = JobState(d["state"])
        d["original_name"] = bytes(d["original_name"])
        for key in ("raw_path", "output_path"):
            d[key] = Path(d[key]) if d[key] is not None else None
        return cls(**d)


@dataclass(frozen=True)
class Transition:
    job_id: str
    at: float
    from_state: JobState | None
    to_state: JobState
    detail: str | None


#: What a job forgets when it goes back to the queue to run again.
_FRESH: dict[str, Any] = {"attempts": 0, "not_before": 0, "last_error": None, "output_path": None,
                          "output_name": None, "output_sha256": None, "progress": None, "finished_at": None}


class JobStore:
    """One connection to the job store. Open one per thread; they coordinate through SQLite locks."""

    def __init__(self, conn: sqlite3.Connection, sink: TransitionSink | None = None) -> None:
        self._conn = conn
        self._sink = sink

    @classmethod
    def open(cls, path: Path, sink: TransitionSink | None = None, readonly: bool = False) -> JobStore:
        if readonly:
            if not path.exists():
                raise JobStoreError(f"{path}: no job store here (has the daemon ever run?)")
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
        else:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_private_file(path)  # SQLite gives its -wal and -shm files this mode too
            conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        # busy_timeout lets the daemon's threads and the CLI wait for each other instead of failing.
        conn.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed "published" must survive power loss, or a restart could publish twice.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            with cls._tx(conn):
                if conn.execute("PRAGMA user_version").fetchone()[0] < _SCHEMA_VERSION:
                    for stmt in _SCHEMA.split(";"):
                        if stmt.strip():
                            conn.execute(stmt)
                    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        return cls(conn, sink)

    def close(self) -> None:
        self._conn.close()

    @staticmethod
    @contextlib.contextmanager
    def _tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a read-then-write never deadlocks.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # ------------------------------------------------------------------ transitions

    @contextlib.contextmanager
    def _change(self) -> Iterator[sqlite3.Connection]:
        """A transaction whose custody events are queued in it and reported to the sink after commit."""
        self._pending: list[tuple[str, dict[str, Any]]] = []
        with self._tx(self._conn) as c:
            yield c
        pending, self._pending = self._pending, []
        if self._sink is not None:
            for event, fields in pending:
                self._sink(event, **fields)

    def _emit(self, conn: sqlite3.Connection, event: str, **fields: Any) -> None:
        """Queue the custody entry for a transition in the transaction that makes it.

        The custody log has one writer (the running daemon, else whichever command holds it); it
        appends the outbox in order (``redactd.jobflow.outbox``). Being in the same transaction, no
        committed transition can miss its entry, whatever crashes when.
        """
        queue_custody_event(conn, event, fields)
        self._pending.append((event, fields))

    def _move(
        self,
        conn: sqlite3.Connection,
        job_id: str,
        allowed_from: frozenset[JobState] | set[JobState],
        to: JobState,
        detail: str | None = None,
        **updates: Any,
    ) -> Job:
        row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobStoreError(f"no job {job_id}")
        current = JobState(row["state"])
        if current not in allowed_from:
            raise JobStoreError(f"job {job_id} is {current.value}; cannot move it to {to.value}")
        now = time.time()
        cols = {"state": to.value, "updated_at": now, **updates}
        conn.execute(
            f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in cols)} WHERE id = ?",
            (*[_sql(v) for v in cols.values()], job_id),
        )
        conn.execute(
            "INSERT INTO transitions (job_id, at, from_state, to_state, detail) VALUES (?, ?, ?, ?, ?)",
            (job_id, now, current.value, to.value, detail),
        )
        return self._get(conn, job_id)

    def _insert(self, conn: sqlite3.Connection, state: JobState, detail: str | None, **cols: Any) -> Job:
        now = time.time()
        cols = {"state": state.value, "created_at": now, "updated_at": now, **cols}
        conn.execute(
            f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            tuple(_sql(v) for v in cols.values()),
        )
        conn.execute(
            "INSERT INTO transitions (job_id, at, from_state, to_state, detail) VALUES (?, ?, NULL, ?, ?)",
            (cols["id"], now, state.value, detail),
        )
        return self._get(conn, cols["id"])

    def begin_receiving(
        self, job_id: str, inbox: str, original_name: bytes, size: int, policy_id: str,
        policy_version: int | None, raw_path: Path, policy_sha256: str | None = None,
    ) -> Job:
        """Record the intent to move a file into the raw store, before the move starts."""
        with self._tx(self._conn) as c:
            return self._insert(
                c, JobState.RECEIVING, None, id=job_id, inbox=inbox, original_name=original_name,
                size=size, policy_id=policy_id, policy_version=policy_version, policy_sha256=policy_sha256,
                raw_path=raw_path,
            )

    def finish_receiving(self, job_id: str, raw_sha256: str) -> Job:
        """The raw file is in place: admit it, or record it as a duplicate of known content."""
        with self._change() as c:
            dup = c.execute(
                "SELECT id FROM jobs WHERE raw_sha256 = ? AND id != ? AND state != ? "
                "ORDER BY created_at LIMIT 1",
                (raw_sha256, job_id, JobState.DUPLICATE.value),
            ).fetchone()
            now = time.time()
            if dup is not None:
                job = self._move(c, job_id, {JobState.RECEIVING}, JobState.DUPLICATE, f"duplicate of {dup['id']}",
                                 raw_sha256=raw_sha256, duplicate_of=dup["id"], admitted_at=now,
                                 finished_at=now)
            else:
                job = self._move(c, job_id, {JobState.RECEIVING}, JobState.ADMITTED, None,
                                 raw_sha256=raw_sha256, admitted_at=now)
            if job.state is JobState.DUPLICATE:
                self._emit(c, "duplicate", job_id=job.id, raw_sha256=raw_sha256, original_name=job.name,
                           inbox=job.inbox, duplicate_of=job.duplicate_of)
            else:
                self._emit(c, "ingested", job_id=job.id, raw_sha256=raw_sha256, original_name=job.name,
                           policy=policy_ref(job), inbox=job.inbox, size=job.size)
        return job

    def abandon_receiving(self, job_id: str) -> None:
        """Forget a receiving job whose file never reached the raw store (it is still in the inbox)."""
        with self._tx(self._conn) as c:
            c.execute("DELETE FROM transitions WHERE job_id = ?", (job_id,))
            c.execute("DELETE FROM jobs WHERE id = ? AND state = ?", (job_id, JobState.RECEIVING.value))

    def record_rejection(
        self, job_id: str, inbox: str, original_name: bytes, size: int | None, policy_id: str,
        reason: str, kept_at: Path | None,
    ) -> Job:
        """A file refused at admission: recorded straight into failed, with where it was kept."""
        now = time.time()
        with self._change() as c:
            job = self._insert(
                c, JobState.FAILED, reason, id=job_id, inbox=inbox, original_name=original_name,
                size=size, policy_id=policy_id, raw_path=kept_at, last_error=reason, finished_at=now,
            )
            self._emit(c, "rejected", job_id=job_id, inbox=inbox, original_name=job.name, reason=reason)
        return job

    def claim_next(self, now: float | None = None) -> Job | None:
        """Take the oldest admitted job that is due, and mark it processing, atomically."""
        now = time.time() if now is None else now
        with self._change() as c:
            row = c.execute(
                "SELECT id FROM jobs WHERE state = ? AND not_before <= ? ORDER BY created_at LIMIT 1",
                (JobState.ADMITTED.value, now),
            ).fetchone()
            if row is None:
                return None
            job = self._move(c, row["id"], {JobState.ADMITTED}, JobState.PROCESSING, None,
                             started_at=now, progress=0.0, worker_pid=None, output_name=None,
                             output_sha256=None)
            self._emit(c, "processing_started", job_id=job.id, raw_sha256=job.raw_sha256, attempt=job.attempts + 1)
        return job

    def peek_next(self, now: float | None = None) -> Job | None:
        """The job ``claim_next`` would take now, without taking it (to check there is room for it)."""
        now = time.time() if now is None else now
        row = self._conn.execute(
            "SELECT * FROM jobs WHERE state = ? AND not_before <= ? ORDER BY created_at LIMIT 1",
            (JobState.ADMITTED.value, now)).fetchone()
        return Job.from_row(row) if row is not None else None

    def set_policy(self, job_id: str, version: int, sha256: str) -> None:
        with self._tx(self._conn) as c:
            c.execute("UPDATE jobs SET policy_version = ?, policy_sha256 = ?, updated_at = ? WHERE id = ?",
                      (version, sha256, time.time(), job_id))

    def set_running(self, job_id: str, worker_pid: int | None = None, progress: float | None = None) -> None:
        """Record the worker's pid and progress (not a transition: no history row, no event)."""
        sets, args = ["updated_at = ?"], [time.time()]
        if worker_pid is not None:
            sets.append("worker_pid = ?")
            args.append(worker_pid)
        if progress is not None:
            sets.append("progress = ?")
            args.append(progress)
        with self._tx(self._conn) as c:
            c.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state = ?",
                      (*args, job_id, JobState.PROCESSING.value))

    def plan_output(self, job_id: str, output_name: str, output_sha256: str) -> None:
        """Write down the clean name before publishing, so recovery can tell a finished publish."""
        with self._tx(self._conn) as c:
            c.execute("UPDATE jobs SET output_name = ?, output_sha256 = ?, updated_at = ? "
                      "WHERE id = ? AND state = ?",
                      (output_name, output_sha256, time.time(), job_id, JobState.PROCESSING.value))

    def mark_published(self, job_id: str, output_path: Path) -> Job:
        now = time.time()
        with self._change() as c:
            job = self._move(c, job_id, {JobState.PROCESSING}, JobState.PUBLISHED, None,
                             output_path=output_path, progress=1.0, worker_pid=None, finished_at=now,
                             last_error=None)
            self._emit(c, "published", job_id=job.id, raw_sha256=job.raw_sha256, output_sha256=job.output_sha256,
                       policy=policy_ref(job), output_name=job.output_name)
        return job

    def mark_review(self, job_id: str, output_path: Path, reason: str, output_sha256: str) -> Job:
        with self._change() as c:
            job = self._move(c, job_id, {JobState.PROCESSING}, JobState.REVIEW, reason,
                             output_path=output_path, output_sha256=output_sha256, last_error=reason,
                             worker_pid=None, finished_at=time.time())
            self._emit(c, "sent_to_review", job_id=job.id, raw_sha256=job.raw_sha256, output_sha256=job.output_sha256,
                       policy=policy_ref(job), reason=reason)
        return job

    def mark_failed(self, job_id: str, reason: str, raw_path: Path | None, count_attempt: bool = False) -> Job:
        """Processing gave up; ``raw_path`` is where the raw file now lies (the failed folder)."""
        with self._change() as c:
            attempts = c.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if attempts is None:
                raise JobStoreError(f"no job {job_id}")
            job = self._move(c, job_id, {JobState.PROCESSING}, JobState.FAILED, reason, last_error=reason,
                             raw_path=raw_path, worker_pid=None, finished_at=time.time(),
                             attempts=attempts[0] + (1 if count_attempt else 0))
            self._emit(c, "failed", job_id=job.id, raw_sha256=job.raw_sha256, reason=reason, attempts=job.attempts)
        return job

    def requeue(self, job_id: str, reason: str, not_before: float, count_attempt: bool) -> Job:
        """Back to admitted: after a transient error or crash (counted), or a daemon restart (not)."""
        with self._change() as c:
            attempts = c.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if attempts is None:
                raise JobStoreError(f"no job {job_id}")
            job = self._move(c, job_id, {JobState.PROCESSING}, JobState.ADMITTED, reason, last_error=reason,
                             not_before=not_before, worker_pid=None, progress=None,
                             attempts=attempts[0] + (1 if count_attempt else 0))
            self._emit(c, "requeued", job_id=job.id, raw_sha256=job.raw_sha256, reason=reason, attempts=job.attempts)
        return job

    def retry(self, job_id: str, raw_path: Path, move_back: Callable[[], None] | None = None, *,
              policy_id: str | None = None, actor: str | None = None, reason: str | None = None) -> Job:
        """An operator asked to run a failed or review job again from its raw file.

        ``move_back`` runs inside the transaction: if it raises, nothing changes. With
        ``policy_id`` a reviewer rejected a review job and re-queued it under another policy.
        ``actor`` (who asked) is recorded in the history and the custody entry.
        """
        detail = f"retried by {actor or 'operator'}"
        changes: dict[str, Any] = {}
        if policy_id is not None:
            detail = (f"rejected by {actor or 'operator'}" + (f": {reason}" if reason else "")
                      + f"; re-queued with policy {policy_id}")
            changes = {"policy_id": policy_id, "policy_version": None, "policy_sha256": None}
        with self._change() as c:
            allowed = {JobState.REVIEW} if policy_id is not None else {JobState.FAILED, JobState.REVIEW}
            job = self._move(c, job_id, allowed, JobState.ADMITTED, detail, raw_path=raw_path, **_FRESH,
                             **changes)
            if move_back is not None:
                move_back()
            if policy_id is not None:
                self._emit(c, "review_rejected", job_id=job.id, raw_sha256=job.raw_sha256, actor=actor or "operator",
                           requeued_with=policy_id, **({"reason": reason} if reason else {}))
            else:
                self._emit(c, "retried", job_id=job.id, raw_sha256=job.raw_sha256, actor=actor or "operator")
        return job

    def cancel(self, job_id: str, actor: str, raw_path: Path | None, move_raw: Callable[[], None] | None = None) -> Job:
        """An operator cancelled a job still waiting in the queue: failed, its raw file kept at ``raw_path``.

        Only from admitted: a job a worker has claimed is refused (the transaction sees the claim).
        ``move_raw`` runs inside the transaction: if it raises, nothing changes.
        """
        reason = f"cancelled by {actor} before processing"
        with self._change() as c:
            job = self._move(c, job_id, {JobState.ADMITTED}, JobState.FAILED, reason, raw_path=raw_path,
                             last_error=reason, finished_at=time.time(), not_before=0)
            if move_raw is not None:
                move_raw()
            self._emit(c, "failed", job_id=job.id, raw_sha256=job.raw_sha256, reason=reason, attempts=job.attempts,
                       actor=actor)
        return job

    # ------------------------------------------------------------------ review decisions

    def approve_review(self, job_id: str, output_name: str, output_path: Path, actor: str) -> Job:
        """A reviewer approved a review job; its output is already in clean storage at ``output_path``."""
        with self._change() as c:
            job = self._move(c, job_id, {JobState.REVIEW}, JobState.PUBLISHED, f"approved by {actor}",
                             output_name=output_name, output_path=output_path, progress=1.0,
                             finished_at=time.time(), last_error=None)
            self._emit(c, "review_approved", job_id=job.id, raw_sha256=job.raw_sha256, output_sha256=job.output_sha256,
                       policy=policy_ref(job), actor=actor)
            self._emit(c, "published", job_id=job.id, raw_sha256=job.raw_sha256, output_sha256=job.output_sha256,
                       policy=policy_ref(job), output_name=job.output_name, actor=actor)
        return job

    def approve_boxes(self, job_id: str, actor: str) -> Job:
        """A reviewer approved the boxes of a job held before blurring: back to the queue to render them."""
        with self._change() as c:
            job = self._move(c, job_id, {JobState.REVIEW}, JobState.ADMITTED,
                             f"boxes approved by {actor}; rendering", **_FRESH)
            self._emit(c, "review_approved", job_id=job.id, raw_sha256=job.raw_sha256, policy=policy_ref(job),
                       actor=actor, stage="before-blur")
        return job

    def reject_review(self, job_id: str, reason: str, raw_path: Path | None, actor: str,
                      move_raw: Callable[[], None] | None = None) -> Job:
        """A reviewer rejected a review job: it is failed, its raw file kept at ``raw_path``.

        ``move_raw`` runs inside the transaction: if it raises, nothing changes.
        """
        with self._change() as c:
            job = self._move(c, job_id, {JobState.REVIEW}, JobState.FAILED, f"rejected by {actor}: {reason}",
                             raw_path=raw_path, last_error=f"rejected in review by {actor}: {reason}",
                             output_path=None, finished_at=time.time())
            if move_raw is not None:
                move_raw()
            self._emit(c, "review_rejected", job_id=job.id, raw_sha256=job.raw_sha256, actor=actor, reason=reason)
        return job
        return job

    # ------------------------------------------------------------------ queries

    def _get(self, conn: sqlite3.Connection, job_id: str) -> Job:
        return Job.from_row(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def get(self, job_id: str) -> Job:
        """A job by id or by an unambiguous id prefix (at least 4 characters)."""
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is not None:
            return Job.from_row(row)
        if len(job_id) >= 4:
            rows = self._conn.execute(
                "SELECT * FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (job_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
            ).fetchall()
            if len(rows) == 1:
                return Job.from_row(rows[0])
            if len(rows) > 1:
                raise JobStoreError(f"job id prefix {job_id!r} is ambiguous; give more of it")
        raise JobStoreError(f"no job {job_id!r}")

    def jobs(self, states: set[JobState] | None = None, limit: int | None = None) -> list[Job]:
        sql, args = "SELECT * FROM jobs", []
        if states:
            sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
            args = [s.value for s in states]
        sql += " ORDER BY created_at DESC, id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [Job.from_row(r) for r in self._conn.execute(sql, args)]

    def recent_failures(self, limit: int) -> list[Job]:
        """Failed jobs, the most recently failed first (not in order of arrival)."""
        return [Job.from_row(r) for r in self._conn.execute(
            "SELECT * FROM jobs WHERE state = ? ORDER BY finished_at DESC, id LIMIT ?",
            (JobState.FAILED.value, int(limit)))]

    def tries(self, job_ids: list[str]) -> dict[str, int]:
        """How many times each job was started by a worker (every attempt, retries included)."""
        if not job_ids:
            return {}
        found = dict(self._conn.execute(
            f"SELECT job_id, COUNT(*) FROM transitions WHERE to_state = ? AND job_id IN "
            f"({', '.join('?' for _ in job_ids)}) GROUP BY job_id", (JobState.PROCESSING.value, *job_ids)).fetchall())
        return {j: int(found.get(j, 0)) for j in job_ids}

    def counts(self) -> dict[JobState, int]:
        found = {JobState(r[0]): r[1] for r in self._conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")}
        return {s: found.get(s, 0) for s in JobState}

    def history(self, job_id: str) -> list[Transition]:
        return [
            Transition(r["job_id"], r["at"], JobState(r["from_state"]) if r["from_state"] else None,
                       JobState(r["to_state"]), r["detail"])
            for r in self._conn.execute("SELECT * FROM transitions WHERE job_id = ? ORDER BY seq", (job_id,))
        ]

    def finished_since(self, since: float) -> list[Job]:
        """Jobs that reached published or review at or after ``since`` (for throughput)."""
        return [Job.from_row(r) for r in self._conn.execute(
            "SELECT * FROM jobs WHERE state IN (?, ?) AND finished_at >= ? ORDER BY finished_at",
            (JobState.PUBLISHED.value, JobState.REVIEW.value, since))]

    def next_due(self) -> float | None:
        """When the earliest waiting job becomes due (None when nothing waits)."""
        row = self._conn.execute("SELECT MIN(not_before) FROM jobs WHERE state = ?",
                                 (JobState.ADMITTED.value,)).fetchone()
        return row[0]

    def known_sha(self, raw_sha256: str) -> bool:
        return self._conn.execute("SELECT 1 FROM jobs WHERE raw_sha256 = ? LIMIT 1", (raw_sha256,)).fetchone() is not None


def policy_ref(job: Job) -> dict[str, Any] | None:
    """The policy a job ran (or will run) under, as the custody log records it."""
    if job.policy_version is None:
        return None
    return {"id": job.policy_id, "version": job.policy_version, "hash": job.policy_sha256}


def _sql(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def iso(ts: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC (``2026-03-01T12:00:00Z``): every ``--json`` time looks like this."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_TIMES = frozenset({"created_at", "admitted_at", "started_at", "finished_at", "updated_at", "not_before"})


def as_dict(job: Job) -> Mapping[str, Any]:
    """A job as JSON-able fields (for ``--json`` output): the original name as escaped text, times in ISO 8601 UTC."""
    out: dict[str, Any] = {}
    for key, value in job.__dict__.items():
        if key == "original_name":
            out["original_name"] = job.name
        elif key in _TIMES:
            out[key] = iso(value) if value else None
        else:
            out[key] = _sql(value)
    return out
