"""Setting and releasing legal holds, shared by ``redactd hold`` and the console's retention page.

The hold itself and its custody entry are ``RetentionStore``'s (one transaction); this module
only turns what a person typed into a hold target and writes the queued entry when it may.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from redactd.config import DaemonConfig
from redactd.daemon import store_path
from redactd.errors import RetentionError
from redactd.jobflow.jobstore import JobStore
from redactd.jobflow.outbox import record_pending
from redactd.retention.model import Hold, HoldScope
from redactd.retention.store import RetentionStore

_SHA256 = re.compile(r"[0-9a-f]{64}")


def hold_target(cfg: DaemonConfig, scope: HoldScope, value: str) -> str:
    """The stored value of a hold on ``scope``: a checked SHA-256, a full job id, a known inbox, a glob."""
    if scope is HoldScope.SHA256:
        text = value.strip().lower()
        if not _SHA256.fullmatch(text):
            raise RetentionError(f"--sha256: expected 64 hex digits, got {value!r}")
        return text
    if scope is HoldScope.JOB:
        jobs = JobStore.open(store_path(cfg))
        try:
            return jobs.get(value.strip()).id
        finally:
            jobs.close()
    if scope is HoldScope.INBOX:
        names = [i.name for i in cfg.inboxes]
        if value not in names:
            raise RetentionError(f"--inbox: no inbox {value!r} in the config (known: {', '.join(names)})")
        return value
    if not value.strip():
        raise RetentionError("--pattern: an empty pattern covers nothing")
    return value


def flush_hold_events(cfg: DaemonConfig) -> str:
    """Write the queued custody entries now, or have the running daemon write them within seconds."""
    return record_pending(cfg, store_path(cfg))


def set_hold(cfg: DaemonConfig, scope: HoldScope, value: str, reason: str, requested_by: str,
             review_date: datetime | None = None) -> tuple[Hold, str]:
    with RetentionStore.open(store_path(cfg)) as store:
        hold = store.add_hold(scope, hold_target(cfg, scope, value), reason, requested_by, datetime.now(UTC),
                              review_date)
        return hold, flush_hold_events(cfg)


def release_hold(cfg: DaemonConfig, hold_id: int, released_by: str) -> tuple[Hold, str]:
    with RetentionStore.open(store_path(cfg)) as store:
        hold = store.release_hold(hold_id, released_by, datetime.now(UTC))
        return hold, flush_hold_events(cfg)
