"""The daemon's side of the custody log: append the outbox, checkpoint each burst, stop when blocked.

The daemon composes one ``CustodyKeeper`` around its ``CustodyLog``. Every thread that commits a
transition calls ``flush``; the main loop calls ``tick`` a few times a second. ``tick`` appends
what other processes queued (a CLI decision, a hold: they also wake the daemon with SIGUSR1, see
``wake_writer``) and signs a checkpoint as soon as a burst of entries ends, or at the latest
``checkpoint_seconds`` after the first entry no checkpoint covers: the log never has more than a
few seconds of entries a cut could remove unnoticed.

When the log cannot be written (a full disk, permissions, a failed write), ``blocked`` says why,
the daemon stops admitting and claiming jobs, and ``custody-state.json`` in the state directory
tells ``redactd status`` (a read-only process) the same. The entries stay queued in the outbox.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redactd.custody.keys import read_passphrase
from redactd.custody.log import CustodyLog
from redactd.custody.segments import read_segment, segment_paths
from redactd.errors import CustodyError, LogBusy
from redactd.fsutil import atomic_write
from redactd.jobflow.outbox import custody_lag, flush_outbox
from redactd.log import get_logger

if TYPE_CHECKING:
    from redactd.config import DaemonConfig

STATE_FILE = "custody-state.json"
#: A burst has ended when no entry came for this long: checkpoint then.
QUIET_SECONDS = 0.5
#: How often the main loop looks for entries other processes queued (besides their SIGUSR1).
POLL_SECONDS = 1.0

log = get_logger("redactd.custody")


class CustodyKeeper:
    """Outbox flushing, checkpoint cadence and the blocked state, for the log's one writer."""

    def __init__(self, custody: CustodyLog, store_file: Path, state_dir: Path, checkpoint_seconds: float,
                 reopen: Callable[[], CustodyLog] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.custody, self.store_file, self.state_dir = custody, store_file, state_dir
        # After a failed write the log refuses all writes until opened again (which records the
        # torn line): ``reopen`` does that, retried every few seconds while blocked.
        self._reopen = reopen
        self._next_reopen = 0.0
        self.checkpoint_seconds = checkpoint_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._first_unproven: float | None = None
        self._last_append = 0.0
        self._next_poll = 0.0
        self.blocked: str | None = None
        self._undelivered = 0  # checkpoints some witness has not received yet, as last written to the state file

    def start(self) -> None:
        """At start-up, once the state directory exists: say custody is writable (so far)."""
        self._write_state()

    # ------------------------------------------------------------------ what the daemon calls

    def flush(self) -> int:
        """Append every queued entry, in order; on failure, become blocked (and say why)."""
        with self._lock:
            try:
                written = flush_outbox(self.store_file, self.custody)
            except (CustodyError, OSError, sqlite3.Error) as exc:
                self._block(exc)
                return 0
            if written:
                now = self._clock()
                self._first_unproven = self._first_unproven if self._first_unproven is not None else now
                self._last_append = now
            self._unblock()
            return written

    def checkpoint(self) -> dict[str, Any] | None:
        """Flush, then sign a checkpoint over everything now (None when blocked)."""
        self.flush()
        with self._lock:
            if self.blocked is not None:
                return None
            try:
                entry = self.custody.checkpoint()
            except (CustodyError, OSError) as exc:
                self._block(exc)
                return None
            self._first_unproven = None
            if self.custody.undelivered != self._undelivered:
                self._undelivered = self.custody.undelivered
                self._write_state()
            return entry

    def tick(self) -> None:
        """From the main loop: pick up other processes' entries; checkpoint a finished burst."""
        now = self._clock()
        if self.blocked is not None and self.custody.failed is not None and self._reopen is not None:
            if now < self._next_reopen:
                return
            self._next_reopen = now + 5.0
            with self._lock:
                self.custody.release()
                try:
                    self.custody = self._reopen()
                except (CustodyError, OSError) as exc:
                    self._block(exc)
                    return
        if now >= self._next_poll:
            self._next_poll = now + POLL_SECONDS
            self.flush()
        if self._first_unproven is None and self.custody.unproven:
            self._first_unproven = now  # appended directly (policy_loaded, a retention run)
            self._last_append = now
        if self._first_unproven is None:
            return
        if now - self._last_append >= QUIET_SECONDS or now - self._first_unproven >= self.checkpoint_seconds:
            self.checkpoint()

    # ------------------------------------------------------------------ blocked state

    def _block(self, exc: BaseException) -> None:
        reason = f"custody log cannot be written: {getattr(exc, 'strerror', None) or exc}"
        if self.blocked != reason:
            self.blocked = reason
            log.critical("custody_blocked", reason=reason,
                         note="admitting and processing stop until the custody log can be written again")
            self._write_state()

    def _unblock(self) -> None:
        if self.blocked is not None:
            self.blocked = None
            log.warning("custody_unblocked", note="admitting and processing resume")
            self._write_state()

    def _write_state(self) -> None:
        state = {"blocked": self.blocked, "since": time.time(), "pid": os.getpid(),
                 "witness_undelivered": self._undelivered}
        try:
            atomic_write(self.state_dir / STATE_FILE, json.dumps(state).encode(), 0o640)
        except OSError as exc:  # the state directory may be the very thing that is full
            log.error("custody_state_not_written", error=exc.strerror)


def read_state(state_dir: Path, daemon_pid: int | None) -> dict[str, Any]:
    """The running daemon's custody state: ``{"blocked": reason or None, "since": ...,
    "witness_undelivered": checkpoints not yet delivered to every witness}``."""
    none = {"blocked": None, "since": None, "witness_undelivered": 0}
    try:
        state = json.loads((state_dir / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return none
    if daemon_pid is None or state.get("pid") != daemon_pid:
        return none  # written by a daemon that is gone
    return {"blocked": state.get("blocked"), "since": state.get("since"),
            "witness_undelivered": state.get("witness_undelivered", 0)}


def wake_writer(pid: int | None, daemon_pid: int | None) -> bool:
    """Tell the process holding the custody log, when it is the daemon, to append queued entries
    and sign a checkpoint now (SIGUSR1). False when it cannot be signalled; it then finds them
    within ``POLL_SECONDS`` by itself. Never signals any other holder (another command briefly
    holding the log): SIGUSR1 would kill it."""
    if pid is None or pid != daemon_pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError:
        return False
    return True


def daemon_pid(cfg: DaemonConfig) -> int | None:
    from redactd.daemon import DaemonLock

    return DaemonLock(cfg.state_dir).holder()


def _newest_entry(directory: Path) -> dict[str, Any] | None:
    for path in reversed(segment_paths(directory)):
        lines, _ = read_segment(path)
        if lines:
            entry: dict[str, Any] = json.loads(lines[-1].data)
            return entry
    return None


def sign_checkpoint(cfg: DaemonConfig, timeout: float = 30.0) -> tuple[dict[str, Any], str]:
    """``redactd custody checkpoint``: a signed checkpoint over everything recorded or queued now,
    delivered to the witnesses; and how it was made.

    The log has one writer: while the daemon holds it, this asks the daemon (SIGUSR1) and waits
    for its checkpoint; otherwise it opens the log, appends the outbox and signs here.
    """
    from redactd.daemon import store_path  # the composition root names the job store file

    c = cfg.custody
    store_file = store_path(cfg)
    try:
        custody = CustodyLog.open(c.directory, c.signing_key, read_passphrase(c.passphrase_file),
                                  segment_max_bytes=c.segment_max_bytes, witnesses=c.witnesses)
    except LogBusy as exc:
        if not wake_writer(exc.pid, daemon_pid(cfg)):
            raise CustodyError(f"the daemon (pid {exc.pid or '?'}) holds the custody log and cannot be "
                               "signalled from here: run this as the daemon's user or root") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = _newest_entry(c.directory)
            if entry is not None and entry["event"] == "checkpoint" and custody_lag(store_file)["queued"] == 0:
                return entry, f"signed by the running daemon, pid {exc.pid}"
            time.sleep(0.1)
        raise CustodyError(f"the daemon (pid {exc.pid}) signed no checkpoint within {timeout:g} s; "
                           "see `redactd status`") from None
    try:
        flush_outbox(store_file, custody)
        entry = custody.checkpoint()
    finally:
        custody.close()
    return entry, "no daemon running: signed here"
