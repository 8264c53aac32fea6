"""What retention reasons about: the items it may delete, the holds that stop it, and its decisions."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path


class ItemKind(str, Enum):
    RAW = "raw"  # a job's raw footage: in the raw store, or in the failed queue after a failure
    REVIEW = "review"  # an output waiting for a human decision (review_dir/<job>/output.*)
    FAILED = "failed"  # a failed-queue folder's record (REASON.txt), or a file refused at admission
    CLEAN = "clean"  # a published output in clean storage (with its JSON sidecar)


class Action(str, Enum):
    KEEP = "keep"  # not due yet, never due, or not allowed to go
    DELETE = "delete"  # due now: apply deletes it
    HELD = "held"  # due or not, a legal hold blocks it
    DEFERRED = "deferred"  # due, but over this run's max_deletions_per_run: the next run takes it


@dataclass(frozen=True)
class RetentionItem:
    """One file retention may delete, with what its job recorded about it.

    ``sha256`` and ``size`` are the recorded identity apply checks the file against right before
    deleting it. Only redactd's own record files (``record``) may lack one: footage without a
    recorded SHA-256 is never deleted.
    ``companions`` go with the item (a sidecar, a reason file) and the ``folder`` is removed when
    it is left empty.
    """

    kind: ItemKind
    path: Path
    sha256: str | None
    size: int | None
    job_id: str
    inbox: str
    profile: str  # the redaction policy id the job ran under
    ext: str  # lower-case extension with the dot, "" when none
    state: str  # the job's state (published, review, failed, duplicate, ...)
    ingested_at: datetime | None
    finished_at: datetime | None  # when the job was published, sent to review or failed
    name: str = ""  # inbox-relative original name: for pattern holds only, never printed or logged
    record: bool = False  # redactd's own record file (a failed folder's REASON.txt), not footage
    companions: tuple[Path, ...] = ()
    folder: Path | None = None
    #: For raw footage of a published job: the clean copy (path, recorded SHA-256) that must still
    #: exist, unchanged, when the raw file is purged. None where no clean copy vouches for it.
    clean_copy: tuple[Path, str] | None = None

    @property
    def label(self) -> str:
        return f"{self.job_id}/{self.kind.value}"


class HoldScope(str, Enum):
    SHA256 = "sha256"
    JOB = "job"
    INBOX = "inbox"
    PATTERN = "pattern"  # glob over "<inbox>/<original name>"


@dataclass(frozen=True)
class Hold:
    """A legal hold: while it is active nothing it covers is deleted, whatever the rules say."""

    id: int
    scope: HoldScope
    value: str
    reason: str
    requested_by: str
    created_at: datetime
    review_date: datetime | None = None
    released_at: datetime | None = None
    released_by: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def covers(self, item: RetentionItem) -> bool:
        if self.scope is HoldScope.SHA256:
            return item.sha256 == self.value.lower()
        if self.scope is HoldScope.JOB:
            return item.job_id == self.value
        if self.scope is HoldScope.INBOX:
            return item.inbox == self.value
        return fnmatch.fnmatchcase(f"{item.inbox}/{item.name}", self.value)

    @property
    def description(self) -> str:
        return f"hold #{self.id} ({self.scope.value} {self.value})"


@dataclass(frozen=True)
class Decision:
    """What retention does with one item, and why, in words an officer can check."""

    item: RetentionItem
    action: Action
    reason: str
    rule: str | None = None  # the policy rule that matched, if any
    deadline: datetime | None = None  # when the item is (or was) due; None = never
    hold_id: int | None = None


@dataclass(frozen=True)
class Plan:
    """Every decision for one moment, under one policy version. Deletions come oldest due first."""

    now: datetime
    policy_id: str
    policy_version: int
    policy_hash: str
    dry_run: bool
    max_deletions: int
    decisions: tuple[Decision, ...] = field(default_factory=tuple)

    def with_action(self, action: Action) -> list[Decision]:
        return [d for d in self.decisions if d.action is action]

    @property
    def deletions(self) -> list[Decision]:
        return self.with_action(Action.DELETE)

    def counts(self) -> dict[str, int]:
        return {a.value: len(self.with_action(a)) for a in Action}
