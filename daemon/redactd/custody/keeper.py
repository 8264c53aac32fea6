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
from typing import Any

from redactd.custody.log import CustodyLog
from redactd.errors import CustodyError
from redactd.fsutil import atomic_write
from redactd.log import get_logger
from redactd.outbox import flush_outbox

STATE_FILE = "custody-state.json"
#: A burst has ended when no entry came for this long: checkpoint then.
QUIET_SECONDS = 0.5
#: How often the main loop looks for entries other processes queued (besides their SIGUSR1).
POLL_SECONDS = 1.0

log = get_logger("redactd.custody")


class CustodyKeeper:
    """Outbox flushing, checkpoint cadence and the blocked state, for the log's one writer."""

    def __init__(self, custody: CustodyLog, store_file: Path, state_dir: Path, checkpoint_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.custody, self.store_file, self.state_dir = custody, store_file, state_dir
        self.checkpoint_seconds = checkpoint_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._first_unproven: float | None = None
        self._last_append = 0.0
        self._next_poll = 0.0
        self.blocked: str | None = None

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
            return entry

    def tick(self) -> None:
        """From the main loop: pick up other processes' entries; checkpoint a finished burst."""
        now = self._clock()
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
        state = {"blocked": self.blocked, "since": time.time(), "pid": os.getpid()}
        try:
            atomic_write(self.state_dir / STATE_FILE, json.dumps(state).encode(), 0o640)
        except OSError as exc:  # the state directory may be the very thing that is full
            log.error("custody_state_not_written", error=exc.strerror)


def read_state(state_dir: Path, daemon_pid: int | None) -> dict[str, Any]:
    """The running daemon's custody state (``{"blocked": reason or None, "since": ...}``)."""
    try:
        state = json.loads((state_dir / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return {"blocked": None, "since": None}
    if daemon_pid is None or state.get("pid") != daemon_pid:
        return {"blocked": None, "since": None}  # written by a daemon that is gone
    return {"blocked": state.get("blocked"), "since": state.get("since")}


def wake_writer(pid: int | None) -> bool:
    """Tell the process holding the custody log (the daemon) to append queued entries and sign a
    checkpoint now (SIGUSR1). False when it cannot be signalled; it then finds them within
    ``POLL_SECONDS`` by itself."""
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError:
        return False
    return True
