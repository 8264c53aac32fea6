"""Carry out a plan's deletions: durable intent, identity check, unlink, fsync, custody record.

For each deletion, in this order:

1. an ``intended`` row in the retention store, then a ``purge_intended`` custody entry, both
   durable before the file is touched;
2. the file is checked to still be the one recorded: ``lstat`` (a symbolic link is refused,
   never followed), for raw footage of a published job its clean copy still in clean storage with
   the recorded SHA-256, a regular file with one link (another hard link would keep the bytes
   reachable), the recorded size, and the SHA-256 of what an ``O_NOFOLLOW`` open reads, with
   the inode compared again just before the unlink. Any difference refuses the deletion loudly:
   an error log line and a custody ``failed`` entry with a ``purge_refused`` detail;
3. ``unlink`` (never follows links), companions (sidecar, reason file) likewise, the folder
   removed when left empty, and the directory fsynced so the deletion survives a power cut;
4. a ``purged`` custody entry with the SHA-256, policy id/version/hash and ``method: unlink``,
   then the row marked ``purged``.

"Purged" means exactly this: the file's directory entry on this host is gone and its blocks are
free for reuse. Filesystem snapshots (btrfs, ZFS), NAS replicas and backups are not touched and
may still hold copies; each ``purged`` entry names the filesystem type so an officer can tell.

A crash after 1 and before 4 is completed by the next run: an ``intended`` row whose file is
gone gets its ``purged`` entry (``recovered: true``); one whose file is still there is marked
``abandoned`` and the plan decides about the file again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from redactd import log
from redactd.fsutil import fsync_dir
from redactd.jobflow.outbox import CustodyWriter
from redactd.retention.model import Decision, ItemKind, Plan, RetentionItem
from redactd.retention.plan import fmt_time
from redactd.retention.snapshots import filesystem_of
from redactd.retention.store import RetentionStore

Clock = Callable[[], datetime]
METHOD = "unlink"
_CHUNK = 1 << 20


class IdentityMismatch(Exception):
    """The file at the recorded path is not the one recorded: it must not be deleted."""


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    status: str  # purged | refused | held (a hold set during the run) | dry-run
    detail: str = ""


@dataclass(frozen=True)
class ApplyReport:
    plan: Plan
    dry_run: bool
    outcomes: tuple[Outcome, ...]
    recovered: int = 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def counts(self) -> dict[str, int]:
        plan = self.plan.counts()
        return {"purged": self.count("purged"), "refused": self.count("refused"),
                "would_purge": self.count("dry-run"), "held": plan["held"] + self.count("held"), "deferred": plan["deferred"],
                "kept": plan["keep"], "recovered": self.recovered}


def _sha_fields(kind: ItemKind, sha256: str | None) -> dict[str, str | None]:
    """Raw footage goes in ``raw_sha256``; outputs made from it in ``output_sha256``."""
    if kind in (ItemKind.CLEAN, ItemKind.REVIEW):
        return {"output_sha256": sha256}
    return {"raw_sha256": sha256}


def _policy(plan: Plan) -> dict[str, Any]:
    return {"id": plan.policy_id, "version": plan.policy_version, "hash": plan.policy_hash}


def verify_identity(item: RetentionItem) -> tuple[int, int]:
    """(st_dev, st_ino) of the file at ``item.path`` if it is exactly the recorded file, else raise."""
    try:
        st = os.lstat(item.path)
    except FileNotFoundError:
        raise IdentityMismatch("the file is not at its recorded path (moved or deleted outside redactd)") from None
    if stat.S_ISLNK(st.st_mode):
        raise IdentityMismatch("the recorded path is now a symbolic link; links are never followed")
    if not stat.S_ISREG(st.st_mode):
        raise IdentityMismatch("the recorded path is no longer a regular file")
    if st.st_nlink != 1:
        raise IdentityMismatch(f"the file has {st.st_nlink} hard links: unlinking one would leave the bytes "
                               "reachable under another name")
    if item.size is not None and st.st_size != item.size:
        raise IdentityMismatch(f"size is {st.st_size} bytes, {item.size} were recorded")
    if item.sha256 is not None:
        fd = os.open(item.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                raise IdentityMismatch("the file was replaced while it was being checked")
            h = hashlib.sha256()
            while chunk := os.read(fd, _CHUNK):
                h.update(chunk)
        finally:
            os.close(fd)
        if h.hexdigest() != item.sha256:
            raise IdentityMismatch(f"content changed: SHA-256 is {h.hexdigest()}, {item.sha256} was recorded")
    return st.st_dev, st.st_ino


def _sha_nofollow(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def verify_clean_copy(item: RetentionItem) -> None:
    """Raw footage of a published job goes only while its clean copy is still there, unchanged.

    The job's history says a clean copy was published; only clean storage can say it still exists.
    """
    if item.kind is not ItemKind.RAW or item.clean_copy is None:
        return
    path, recorded = item.clean_copy
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise IdentityMismatch(f"its published clean copy {path.name} is no longer in clean storage: the raw "
                               "file is the only copy left") from None
    if not stat.S_ISREG(st.st_mode):
        raise IdentityMismatch(f"its published clean copy {path.name} is no longer a regular file")
    try:
        actual = _sha_nofollow(path)
    except OSError as exc:
        raise IdentityMismatch(f"its published clean copy {path.name} cannot be read ({exc.strerror})") from None
    if actual != recorded:
        raise IdentityMismatch(f"its published clean copy {path.name} changed: SHA-256 is {actual}, "
                               f"{recorded} was recorded")


def _unlink_checked(path: Path, identity: tuple[int, int]) -> None:
    st = os.lstat(path)
    if (st.st_dev, st.st_ino) != identity:
        raise IdentityMismatch("the file was replaced between the check and the deletion")
    os.unlink(path)


def _remove_companions(item: RetentionItem) -> list[str]:
    """Remove the sidecar / reason files and an emptied folder; what was left behind, in words."""
    left = []
    for companion in item.companions:
        try:
            st = os.lstat(companion)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            os.unlink(companion)
        else:
            left.append(f"{companion.name} is not a regular file and was left in place")
    fsync_dir(item.path.parent)
    if item.folder is not None and item.folder != item.path.parent:
        fsync_dir(item.folder)
    if item.folder is not None:
        try:
            os.rmdir(item.folder)
            fsync_dir(item.folder.parent)
        except FileNotFoundError:
            pass
        except OSError:
            left.append(f"{item.folder.name}/ still holds other files and was kept")
    return left


class Applier:
    """Applies plans against one custody log and one retention store, with an injected clock."""

    def __init__(self, custody: CustodyWriter, store: RetentionStore, clock: Clock, actor: str = "redactd") -> None:
        self.custody, self.store, self.clock, self.actor = custody, store, clock, actor
        self.log = log.get_logger()

    def recover(self) -> int:
        """Finish purges a crash interrupted; returns how many were completed."""
        done = 0
        for row in self.store.unfinished_purges():
            if os.path.lexists(row.path):
                self.store.finish_purge(row.id, "abandoned", self.clock(),
                                        "the run stopped before deleting; the next plan decides again")
                continue
            self.custody.append("purged", job_id=row.job_id, **_sha_fields(row.kind, row.sha256),
                                policy={"id": row.policy_id, "version": row.policy_version, "hash": row.policy_hash},
                                actor=self.actor, item=row.kind.value, rule=row.rule, method=METHOD,
                                recovered=True)
            self.store.finish_purge(row.id, "purged", self.clock(), "completed after an interrupted run")
            self.log.warning("purge_recovered", job_id=row.job_id, item=row.kind.value, sha256=row.sha256)
            done += 1
        return done

    def apply(self, plan: Plan, dry_run: bool = False, stop: Callable[[], bool] | None = None) -> ApplyReport:
        """Delete what ``plan`` says is due now. ``dry_run`` (or the policy's) deletes nothing.

        ``stop`` is asked between deletions (the daemon's shutdown): what is left waits for the next run.
        """
        dry = dry_run or plan.dry_run
        recovered = 0 if dry else self.recover()
        outcomes: list[Outcome] = []
        for decision in plan.deletions:
            if stop is not None and stop():
                self.log.info("retention_interrupted", left=len(plan.deletions) - len(outcomes),
                              note="the rest is due at the next run")
                break
            item = decision.item
            if dry:
                self.log.info("purge_planned", job_id=item.job_id, item=item.kind.value, sha256=item.sha256,
                              rule=decision.rule, deadline=fmt_time(decision.deadline), dry_run=True)
                outcomes.append(Outcome(decision, "dry-run", decision.reason))
                continue
            outcomes.append(self._purge(plan, decision))
        return ApplyReport(plan, dry, tuple(outcomes), recovered)

    def _purge(self, plan: Plan, decision: Decision) -> Outcome:
        item = decision.item
        # A hold set while this run was going (`redactd hold add` from another process) still wins.
        hold = next((h for h in self.store.holds() if h.covers(item)), None)
        if hold is not None:
            self.log.warning("purge_stopped_by_hold", job_id=item.job_id, item=item.kind.value, hold_id=hold.id)
            return Outcome(decision, "held", f"{hold.description} was set after the plan was made")
        sha = _sha_fields(item.kind, item.sha256)
        common = {"job_id": item.job_id, "policy": _policy(plan), "actor": self.actor, **sha}
        purge_id = self.store.intend_purge(item.job_id, item.kind, item.path, item.sha256, item.size, plan.policy_id,
                                           plan.policy_version, plan.policy_hash, decision.rule, self.clock())
        self.custody.append("purge_intended", **common, item=item.kind.value, rule=decision.rule,
                            deadline=fmt_time(decision.deadline), reason=decision.reason)
        try:
            verify_clean_copy(item)
            identity = verify_identity(item)
            recorded_sha = item.sha256 or _sha_of_record(item.path)
            _unlink_checked(item.path, identity)
        except IdentityMismatch as exc:
            return self._refused(purge_id, common, decision, str(exc))
        except OSError as exc:
            return self._refused(purge_id, common, decision, f"could not delete: {exc.strerror or exc}")
        left = _remove_companions(item)
        fs = filesystem_of(item.path.parent)
        extra: dict[str, Any] = {"left_behind": left} if left else {}
        if item.sha256 is None:
            extra["record_sha256"] = recorded_sha
        self.custody.append("purged", **common, item=item.kind.value, rule=decision.rule, method=METHOD,
                            size=item.size, filesystem=fs.fstype, snapshots_possible=fs.snapshots, **extra)
        self.store.finish_purge(purge_id, "purged", self.clock())
        event = "raw_purged" if item.kind is ItemKind.RAW else "item_purged"
        self.log.info(event, job_id=item.job_id, item=item.kind.value, sha256=item.sha256, rule=decision.rule,
                      policy_version=plan.policy_version)
        for note in left:
            self.log.warning("purge_left_files", job_id=item.job_id, item=item.kind.value, note=note)
        return Outcome(decision, "purged", decision.reason)

    def _refused(self, purge_id: int, common: dict[str, Any], decision: Decision, problem: str) -> Outcome:
        item = decision.item
        self.log.error("purge_refused", job_id=item.job_id, item=item.kind.value, sha256=item.sha256,
                       problem=problem)
        self.custody.append("failed", **common, item=item.kind.value, purge_refused=problem)
        self.store.finish_purge(purge_id, "refused", self.clock(), problem)
        return Outcome(decision, "refused", problem)


def _sha_of_record(path: Path) -> str:
    """SHA-256 of one of redactd's own record files (read without following links)."""
    with contextlib.closing(os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")) as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def apply(plan: Plan, custody: CustodyWriter, clock: Clock, store: RetentionStore, dry_run: bool = False) -> ApplyReport:
    """Delete what ``plan`` marks due; see the module docstring for the order of steps."""
    return Applier(custody, store, clock).apply(plan, dry_run)
