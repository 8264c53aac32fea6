"""The one writer of the custody log: signed, hash-chained, fsynced entries; checkpoints; segments.

Durability: every entry is a single ``write`` of one line to a segment opened with O_APPEND,
followed by ``fdatasync``; ``append`` returns only after that, so the daemon may act on it
(``purge_intended`` is durable before the unlink, ``purged`` is written after it).

Torn tails: a crash mid-write can leave bytes after the last newline of the newest segment.
The writer never truncates or rewrites them. On ``open`` it leaves that segment as it is,
starts a new segment and makes the tear its first entry (``torn_tail``, with the segment,
offset, length and SHA-256 of the torn bytes); the verifier accepts a torn tail only when
the very next entry records exactly those bytes.

Witnesses: every checkpoint is also delivered to the configured witness directories
(``redactd.custody.witness``); ``open`` refuses a log shorter than the newest checkpoint a
witness holds, so a cut log is never continued (and its cut never covered by a ``torn_tail``).

Original names: an entry given ``original_name`` is written as format 3, with a salted
commitment (``name_commit``) in place of the name; the name and its salt go to the name store
beside the log directory (``redactd.custody.names``), written and fdatasynced before the entry,
so no entry ever commits to a name that is not on disk. The log directory holds no names.

One writer: an exclusive ``flock`` on ``<dir>/.lock`` for as long as the log is open; a second
writer, in this process or another, gets a CustodyError. The kernel drops the lock when the
process dies, ``kill -9`` included (but a child forked while the log is open shares the lock:
start worker processes with "spawn" or "forkserver", or before opening the log).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redactd.custody import canonical
from redactd.custody.entry import (
    FORMAT_VERSION,
    GENESIS,
    INTERNAL_EVENTS,
    TIME_FORMAT,
    Event,
    check_fields,
    line_hash,
    safe_fields,
    signing_bytes,
)
from redactd.custody.keys import fingerprint, load_private_key, public_raw
from redactd.custody.merkle import Frontier, leaf_hash
from redactd.custody.names import NameWriter, commit, names_path, new_salt
from redactd.custody.segments import (
    CHECKPOINT_FILE,
    LOCK_FILE,
    SEGMENT_RE,
    Line,
    Tail,
    read_segment,
    segment_name,
    segment_paths,
)
from redactd.custody.witness import deliver, newest
from redactd.errors import ChainBroken, CustodyError, EntryRefused, LogBusy
from redactd.fsutil import atomic_write, fsync_dir
from redactd.log import get_logger

DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024

log = get_logger("redactd.custody")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Scan:
    """What the writer needs to know about the files already there to continue them."""

    frontier: Frontier = field(default_factory=Frontier)
    prev: str = GENESIS
    last_line: bytes | None = None
    last_entry: dict[str, Any] | None = None
    key_id: str | None = None  # the key in force: the first entry's, or the last rotation's
    segment: Path | None = None  # the newest segment file
    segment_size: int = 0
    segment_entries: int = 0
    segment_date: date | None = None
    tear: Tail | None = None  # a torn tail no entry has recorded yet
    checkpoint_size: int = 0  # entries up to and including the newest checkpoint


def _parse(line: Line) -> dict[str, Any]:
    try:
        entry = json.loads(line.data)
    except ValueError:
        raise ChainBroken(f"{line.segment} line {line.number}: not a JSON entry; "
                          "run `redactd custody verify` and restore the log before writing to it") from None
    if not isinstance(entry, dict):
        raise ChainBroken(f"{line.segment} line {line.number}: not a JSON object")
    return entry


def _scan(directory: Path) -> _Scan:
    """Replay leaf hashes and remember the chain's end. Verification is ``verify_log``'s job;
    this only checks what continuing the chain depends on."""
    scan = _Scan()
    for path in segment_paths(directory):
        lines, tail = read_segment(path)
        scan.segment, scan.segment_size, scan.segment_entries = path, path.stat().st_size, len(lines)
        scan.segment_date = None
        for i, line in enumerate(lines):
            if scan.tear is not None or i == 0 or b'"event":"key_rotated"' in line.data:
                entry = _parse(line)
                if scan.tear is not None:
                    if entry.get("event") != Event.TORN_TAIL or entry.get("details") != scan.tear.record():
                        raise ChainBroken(f"{scan.tear.segment} line {scan.tear.number}: torn line that no "
                                          "entry records; run `redactd custody verify`")
                    scan.tear = None
                if i == 0:
                    scan.segment_date = datetime.strptime(entry["time"], TIME_FORMAT).date()
                    scan.key_id = scan.key_id or entry.get("key")
                if entry.get("event") == Event.KEY_ROTATED:
                    scan.key_id = entry["details"]["new_key_id"]
            scan.frontier.add(leaf_hash(line.data))
            if b'"event":"checkpoint"' in line.data:
                scan.checkpoint_size = scan.frontier.size
            scan.last_line = line.data
        if tail is not None:
            if scan.tear is not None:
                raise ChainBroken(f"{scan.tear.segment} line {scan.tear.number}: torn line that no entry records")
            scan.tear = tail
    if scan.last_line is not None:
        scan.last_entry = _parse(Line(scan.segment.name if scan.segment else "?", 0, scan.last_line))
        if scan.last_entry.get("seq") != scan.frontier.size - 1:
            raise ChainBroken(f"{directory}: {scan.frontier.size} entries but the last one has seq "
                              f"{scan.last_entry.get('seq')}; run `redactd custody verify`")
        scan.prev = line_hash(scan.last_line)
    _check_not_behind_checkpoint(directory, scan.frontier.size)
    return scan


def _check_not_behind_witnesses(witnesses: Sequence[Path], size: int) -> None:
    """Refuse to continue a log shorter than a checkpoint a witness holds: it was cut."""
    last = newest(witnesses)
    if last is not None and last.seq >= size:
        raise ChainBroken(f"{last.path} witnessed checkpoint seq {last.seq}, but the log holds only {size} "
                          "entries: it was cut; restore it before redactd writes to it "
                          "(`redactd custody verify --witness` names what is missing)")


def _check_not_behind_checkpoint(directory: Path, size: int) -> None:
    """Refuse to continue a log that is shorter than its own newest checkpoint (lost or restored
    segments): writing on would overwrite checkpoint.json, the evidence that entries are missing."""
    path = directory / CHECKPOINT_FILE
    if not path.exists():
        return
    try:
        seq = json.loads(path.read_bytes())["seq"]
    except (ValueError, KeyError, TypeError):
        raise ChainBroken(f"{path}: not a checkpoint entry; run `redactd custody verify`") from None
    if not isinstance(seq, int) or seq >= size:
        raise ChainBroken(f"{path} records entry {seq}, but the segments hold only {size} entries: "
                          "segments are missing; restore them before redactd writes to this log")


def key_in_force(directory: Path) -> str | None:
    """Fingerprint of the key that must sign the next entry (None for an empty log)."""
    return _scan(directory).key_id if directory.is_dir() else None


def _take_lock(directory: Path) -> int:
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LogBusy(f"{directory}: another writer holds the custody log (pid {holder}); "
                      "only one redactd may write it", int(holder) if holder.isdigit() else None) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class CustodyLog:
    """Open with ``CustodyLog.open(directory, signing_key)``; ``append`` events; ``close`` at shutdown."""

    def __init__(self, directory: Path, key: Ed25519PrivateKey, scan: _Scan, lock_fd: int,
                 segment_max_bytes: int, clock: Callable[[], datetime],
                 witnesses: Sequence[Path] = (), names: Path | None = None) -> None:
        self.directory = directory
        self._names = NameWriter(names or names_path(directory))
        self.witnesses = tuple(witnesses)
        self._undelivered: dict[Path, dict[int, bytes]] = {w: {} for w in self.witnesses}
        self._key = key
        self._key_id = fingerprint(key.public_key())
        self._frontier = scan.frontier
        self._prev = scan.prev
        self._last_line = scan.last_line
        self._last_entry = scan.last_entry
        self._segment = scan.segment
        self._segment_size = scan.segment_size
        self._segment_entries = scan.segment_entries
        self._segment_date = scan.segment_date
        self._segment_torn = scan.tear is not None and scan.tear.segment == getattr(scan.segment, "name", None)
        self._lock_fd: int | None = lock_fd
        self._fd: int | None = None
        self._max_bytes = segment_max_bytes
        self._clock = clock
        self._mutex = threading.Lock()
        self._failed: str | None = None
        self._last_checkpoint_size = scan.checkpoint_size

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    def open(cls, directory: Path, signing_key: Path, passphrase: bytes | None = None, *,
             segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
             clock: Callable[[], datetime] = utcnow, witnesses: Sequence[Path] = (),
             names: Path | None = None) -> CustodyLog:
        """Take the writer lock, load the key, continue the chain (recording a torn tail if any).

        ``witnesses``: directories each checkpoint is delivered to; a log shorter than the newest
        checkpoint one of them holds is refused (ChainBroken). ``names``: the name store file
        (default: ``names_path(directory)``, beside the log directory).
        """
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = _take_lock(directory)
        try:
            key = load_private_key(Path(signing_key), passphrase)
            scan = _scan(directory)
            _check_not_behind_witnesses(witnesses, scan.frontier.size)
            key_id = fingerprint(key.public_key())
            if scan.key_id is not None and scan.key_id != key_id:
                raise CustodyError(f"{signing_key}: key {key_id} is not the key in force for this log "
                                   f"({scan.key_id}); was a key rotation interrupted? see `redactd keys rotate`")
            opened = cls(directory, key, scan, lock_fd, segment_max_bytes, clock, witnesses, names)
        except BaseException:
            os.close(lock_fd)
            raise
        if scan.tear is not None:
            try:
                opened._record_tear(scan.tear)
            except BaseException:
                opened._release()
                raise
        log.info("custody_opened", entries=opened.size, key=key_id)
        return opened

    def close(self) -> None:
        """Write a final checkpoint and release the log; closing twice is harmless."""
        with self._mutex:
            if self._lock_fd is None:
                return
            try:
                if self._failed is None:
                    self._checkpoint_locked()
            finally:
                self._release()

    def _release(self) -> None:
        """Close the segment and drop the writer lock, writing nothing."""
        self._names.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def size(self) -> int:
        """Number of entries (== the next entry's seq == the Merkle tree size)."""
        return self._frontier.size

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def failed(self) -> str | None:
        """Why a write failed (the log then refuses every write until it is opened again), or None."""
        return self._failed

    def release(self) -> None:
        """Drop the writer lock without writing anything (not even a checkpoint): after a failed write."""
        with self._mutex:
            self._release()

    @property
    def unproven(self) -> int:
        """Entries after the newest checkpoint: what no signed tree head covers yet."""
        last = self._last_entry
        if last is None:
            return 0
        if last["event"] == Event.CHECKPOINT:
            return 0
        return self._frontier.size - self._last_checkpoint_size

    @property
    def undelivered(self) -> int:
        """Checkpoints not yet delivered to some witness (a failed delivery is retried at the next)."""
        return sum(len(v) for v in self._undelivered.values())

    # ------------------------------------------------------------------ writing

    def append(self, event: Event | str, *, job_id: str | None = None, raw_sha256: str | None = None,
               output_sha256: str | None = None, policy: dict[str, Any] | None = None,
               models: dict[str, str] | None = None, actor: str = "redactd",
               original_name: str | None = None, occurred_at: datetime | None = None,
               **details: Any) -> dict[str, Any]:
        """Record one event durably and return the signed entry.

        ``occurred_at`` is when the action happened (default: now); the entry's ``time`` is
        when it was appended.

        ``policy`` is ``{"id", "version", "hash"}`` (``policy_ref(policy)`` builds it), ``models``
        maps model names to SHA-256 digests. ``original_name`` goes to the name store, and the
        entry carries only a salted commitment to it; ``details`` must not repeat it. Detail values are JSON strings,
        integers, booleans, null, lists and objects (no floats: write "12.5").
        """
        try:
            kind = Event(event)
        except ValueError:
            raise CustodyError(f"unknown custody event {event!r}; known: "
                               f"{', '.join(e.value for e in Event)}") from None
        if kind in INTERNAL_EVENTS:
            raise CustodyError(f"custody event {kind.value!r} is written by the log itself "
                               "(checkpoint(), rotate_key(), or on open after a crash)")
        fields = check_fields(job_id=job_id, raw_sha256=raw_sha256, output_sha256=output_sha256,
                              original_name=original_name, policy=policy, models=models, actor=actor,
                              details=details)
        with self._mutex:
            self._check_writable()
            self._rotate_if_due()
            return self._write(kind, fields, occurred_at)

    def record(self, event: Event | str, fields: dict[str, Any], occurred_at: datetime | None = None
               ) -> dict[str, Any]:
        """``append`` for entries the writer must not refuse (the outbox's): when a rule refuses
        ``fields``, the entry is written in a safe form instead (``safe_fields``: the offending
        value withheld and the withholding said), so one bad value never stalls the entries after it."""
        entry_keys = ("job_id", "raw_sha256", "output_sha256", "policy", "models", "actor", "original_name")
        given = {k: fields[k] for k in entry_keys if k in fields}
        details = {k: v for k, v in fields.items() if k not in entry_keys}
        try:
            return self.append(event, occurred_at=occurred_at, **given, **details)
        except EntryRefused as exc:
            safe = safe_fields({**given, "details": details}, exc)
            log.warning("custody_entry_withheld", custody_event=str(event), field=exc.field,
                        job_id=safe["job_id"])
            kind = Event(event)
            with self._mutex:
                self._check_writable()
                self._rotate_if_due()
                return self._write(kind, safe, occurred_at)

    def checkpoint(self) -> dict[str, Any]:
        """Sign (tree size, root hash, time) as a ``checkpoint`` entry and copy it to checkpoint.json.

        The daemon calls this every ``custody.checkpoint_minutes`` and ``close`` calls it at
        shutdown. When the newest entry is already a checkpoint, that one is returned.
        """
        with self._mutex:
            self._check_writable()
            return self._checkpoint_locked()

    def rotate_key(self, new_key: Ed25519PrivateKey, actor: str = "redactd keys rotate") -> dict[str, Any]:
        """Announce ``new_key`` in an entry signed by the current key; sign with ``new_key`` from now on."""
        details = {"new_key": public_raw(new_key.public_key()).hex(),
                   "new_key_id": fingerprint(new_key.public_key())}
        with self._mutex:
            self._check_writable()
            entry = self._write(Event.KEY_ROTATED, self._internal_fields(actor, details))
            self._key, self._key_id = new_key, details["new_key_id"]
        log.info("custody_key_rotated", seq=entry["seq"], old_key=entry["key"], new_key=self._key_id)
        return entry

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _internal_fields(actor: str, details: dict[str, Any]) -> dict[str, Any]:
        return {"job_id": None, "raw_sha256": None, "output_sha256": None, "original_name": None,
                "policy": None, "models": None, "actor": actor, "details": details}

    def _check_writable(self) -> None:
        if self._lock_fd is None:
            raise CustodyError(f"{self.directory}: custody log is closed")
        if self._failed is not None:
            raise CustodyError(f"{self.directory}: custody log stopped after a failed write ({self._failed}); "
                               "restart redactd: the torn line will be recorded")

    def _checkpoint_locked(self) -> dict[str, Any]:
        entry = self._last_entry
        if entry is None or entry["event"] != Event.CHECKPOINT:
            details = {"tree_size": self._frontier.size, "root": self._frontier.root().hex()}
            entry = self._write(Event.CHECKPOINT, self._internal_fields("redactd", details))
            log.info("custody_checkpointed", seq=entry["seq"], tree_size=details["tree_size"])
        assert self._last_line is not None
        atomic_write(self.directory / CHECKPOINT_FILE, self._last_line + b"\n", 0o600)
        for waiting in self._undelivered.values():
            waiting[entry["seq"]] = self._last_line
        self._deliver()
        return entry

    def _deliver(self) -> None:
        """Deliver every checkpoint still owed to a witness; a failure is logged and retried later."""
        for witness, waiting in self._undelivered.items():
            for seq, line in sorted(waiting.items()):
                try:
                    deliver(witness, seq, line)
                except (OSError, CustodyError) as exc:
                    log.error("custody_witness_delivery_failed", witness=str(witness), seq=seq,
                              error=getattr(exc, "strerror", None) or str(exc))
                    break
                del waiting[seq]

    def _record_tear(self, tear: Tail) -> None:
        with self._mutex:
            if self._segment_torn or self._segment_entries:
                self._start_segment()
            entry = self._write(Event.TORN_TAIL, self._internal_fields("redactd", tear.record()))
        log.warning("custody_torn_tail_recorded", seq=entry["seq"], segment=tear.segment,
                    line=tear.number, length=len(tear.data))

    def _rotate_if_due(self) -> None:
        if not self._segment_entries:
            return
        if self._segment_size >= self._max_bytes or self._segment_date != self._now().date():
            self._checkpoint_locked()  # each segment ends with a signed checkpoint
            self._start_segment()

    def _start_segment(self) -> None:
        index = int(SEGMENT_RE.fullmatch(self._segment.name).group(1)) + 1 if self._segment else 1  # type: ignore[union-attr]
        if self._fd is not None:
            os.close(self._fd)
        path = self.directory / segment_name(index)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fsync_dir(self.directory)
        self._segment, self._segment_size, self._segment_entries = path, 0, 0
        self._segment_date, self._segment_torn = None, False
        log.info("custody_segment_started", segment=path.name, seq=self._frontier.size)

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def _write(self, kind: Event, fields: dict[str, Any], occurred_at: datetime | None = None) -> dict[str, Any]:
        if self._segment is None:
            self._start_segment()
        elif self._fd is None:
            self._fd = os.open(self._segment, os.O_WRONLY | os.O_APPEND)
        now = self._now()
        when = (occurred_at or now).astimezone(UTC)
        name = fields.get("original_name")
        salt = new_salt() if name else None
        signed = {k: v for k, v in fields.items() if k != "original_name"}
        entry = {"v": FORMAT_VERSION, "seq": self._frontier.size, "time": now.strftime(TIME_FORMAT), "event": kind.value,
                 **signed, "name_commit": commit(salt, name) if salt and name else None,
                 "prev": self._prev, "key": self._key_id, "occurred_at": when.strftime(TIME_FORMAT)}
        entry["sig"] = self._key.sign(signing_bytes(entry)).hex()
        line = canonical.dumps(entry)
        data = line + b"\n"
        if salt and name:
            self._names.write(entry["seq"], name, salt)  # first: an entry never commits to a name not on disk
        try:
            written = os.write(self._fd, data)  # type: ignore[arg-type]
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
            os.fdatasync(self._fd)  # type: ignore[arg-type]
        except OSError as exc:
            self._failed = str(exc)
            raise CustodyError(f"{self._segment}: custody entry {entry['seq']} not written: {exc}") from exc
        self._frontier.add(leaf_hash(line))
        self._prev, self._last_line, self._last_entry = line_hash(line), line, entry
        if kind == Event.CHECKPOINT:
            self._last_checkpoint_size = self._frontier.size
        self._segment_size += len(data)
        self._segment_entries += 1
        self._segment_date = self._segment_date or now.date()
        log.debug("custody_appended", seq=entry["seq"], custody_event=kind.value, job_id=entry["job_id"])
        return entry
