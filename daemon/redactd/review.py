"""Reviewer decisions on the review queue: approve (publish), reject (failed, raw kept), or re-queue.

Each decision is one job-store transition that names who made it; its ``review_approved`` /
``review_rejected`` custody entry goes through the custody outbox (``redactd.jobflow.outbox``), because
the daemon, not this command, usually holds the custody log.
Publishing reuses the daemon's own ``Queues.publish``, so an approved file reaches clean storage
exactly as an automatically published one does (sidecar first, atomic rename).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redactd import log
from redactd.admit import move_aside
from redactd.config import DaemonConfig
from redactd.errors import ConfigError
from redactd.fsutil import atomic_write, sha256_file
from redactd.jobflow.jobstore import Job, JobState, JobStore, JobStoreError
from redactd.jobflow.pipeline import BEFORE_BLUR
from redactd.jobflow.publish import APPROVED_BOXES_FILE, REASON_FILE, Queues, output_name, safe_suffix
from redactd.policy import PolicySet
from redactd.receipts import write_receipt

SIDECAR_FILE = "output.json"  # what Queues.to_review writes beside the output
SHEETS_DIR = "review-sheets"


def default_actor() -> str:
    """Who is deciding: the user behind sudo, else the login user."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


@dataclass(frozen=True)
class ReviewItem:
    """A job waiting in review, with what validation said about it."""

    job: Job
    sidecar: dict[str, Any]

    @property
    def leak_score(self) -> float | None:
        value = self.sidecar.get("validation", {}).get("leak_score")
        return float(value) if value is not None else None

    @property
    def before_blur(self) -> bool:
        return self.sidecar.get("stage") == BEFORE_BLUR


class ReviewDesk:
    """The review queue of one daemon configuration; safe to use while the daemon runs."""

    def __init__(self, cfg: DaemonConfig, policies: PolicySet, store: JobStore) -> None:
        self.cfg, self.policies, self.store = cfg, policies, store
        self.queues = Queues(cfg.clean_dir, cfg.review_dir, cfg.failed_dir)
        self.log = log.get_logger()

    def items(self) -> list[ReviewItem]:
        return [self.item(job.id) for job in self.store.jobs({JobState.REVIEW})]

    def item(self, job_id: str) -> ReviewItem:
        job = self.store.get(job_id)
        if job.state is not JobState.REVIEW:
            raise JobStoreError(f"job {job.id} is {job.state.value}, not in review")
        sidecar: dict[str, Any] = {}
        folder = self.queues.review_dir / job.id
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            sidecar = json.loads((folder / SIDECAR_FILE).read_bytes())
        return ReviewItem(job, sidecar)

    def sheet_dir(self) -> Path:
        return self.cfg.state_dir / SHEETS_DIR

    # ------------------------------------------------------------------ decisions

    def approve(self, job_id: str, actor: str) -> Job:
        """Publish the reviewed output exactly as validated (its SHA-256 is checked first).

        For a job held before blurring, approve its boxes instead: the job goes back to the queue
        and the daemon renders exactly those boxes (then validates the result as usual).
        """
        item = self.item(job_id)
        if item.before_blur:
            return self._approve_boxes(item, actor)
        job = item.job
        if job.output_path is None or job.output_sha256 is None:
            raise JobStoreError(f"job {job.id} has no recorded output to publish")
        policy = self.policies.get_redaction(job.policy_id)
        suffix = safe_suffix(job.output_path.name)
        name = output_name(policy.output.naming, job, job.output_sha256, suffix)
        target = self.queues.clean_dir / name
        if job.output_path.is_file():
            actual = sha256_file(job.output_path)
            if actual != job.output_sha256:
                raise JobStoreError(
                    f"job {job.id}: the output in review changed since it was validated (SHA-256 {actual}, "
                    f"recorded {job.output_sha256}); refusing to publish it. Reject it or retry the job")
            sidecar = {**item.sidecar, "output_name": name,
                       "review": {"approved_by": actor,
                                  "approved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  "was_held_for": _first_line(job.last_error)}}
            where = self.queues.publish(job.output_path, name, sidecar)
        elif target.is_file() and sha256_file(target) == job.output_sha256:
            where = target  # an earlier approve published it and stopped before recording it
        else:
            raise JobStoreError(f"job {job.id}: its output is missing from {job.output_path}")
        approved = self.store.approve_review(job.id, name, where, actor)
        write_receipt(self.cfg, approved)
        shutil.rmtree(self.queues.review_dir / job.id, ignore_errors=True)
        self.log.info("review_approved", job_id=job.id, actor=actor, output_sha256=job.output_sha256)
        return approved

    def _approve_boxes(self, item: ReviewItem, actor: str) -> Job:
        job = item.job
        if "detections" not in item.sidecar:
            raise JobStoreError(f"job {job.id}: its detections are missing from the review folder")
        folder = self.queues.review_dir / job.id
        approval = {"approved_by": actor, "approved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "detections": item.sidecar["detections"]}
        atomic_write(folder / APPROVED_BOXES_FILE, json.dumps(approval).encode(), 0o640)
        try:
            queued = self.store.approve_boxes(job.id, actor)
        except BaseException:
            (folder / APPROVED_BOXES_FILE).unlink(missing_ok=True)
            raise
        write_receipt(self.cfg, queued)
        if job.output_path is not None:  # the contact sheet: unobscured faces, no longer needed
            job.output_path.unlink(missing_ok=True)
        self.log.info("review_boxes_approved", job_id=job.id, actor=actor)
        return queued

    def reject(self, job_id: str, actor: str, reason: str) -> Job:
        """Fail the job: its raw file moves beside a reason file in the failed queue; the output is deleted."""
        job = self.item(job_id).job
        folder = self.queues.folder(self.queues.failed_dir, job.id)
        kept = job.raw_path
        target = folder / f"raw{safe_suffix(job.raw_path.name if job.raw_path else '')}"
        raw = job.raw_path

        def move_raw() -> None:
            if raw is not None and os.path.lexists(raw) and raw != target and not move_aside(raw, target):
                raise JobStoreError(f"job {job.id}: could not move its raw file to {target}")

        if raw is not None and os.path.lexists(raw):
            kept = target
        failed = self.store.reject_review(job.id, reason, kept, actor, move_raw)
        write_receipt(self.cfg, failed)
        self.queues.write_reason(folder, failed, "a reviewer rejected this output", f"rejected by {actor}: {reason}",
                                 "the raw file is kept here; fix the policy and copy it into an inbox again")
        # A rejected output is a known leak: no copy of it stays behind.
        shutil.rmtree(self.queues.review_dir / job.id, ignore_errors=True)
        self.log.info("review_rejected", job_id=job.id, actor=actor)
        return failed

    def requeue(self, job_id: str, actor: str, policy_id: str, reason: str | None = None) -> Job:
        """Reject the output and run the job again from its raw file under ``policy_id``; the
        reason goes into the job's history and the ``review_rejected`` custody entry."""
        try:
            self.policies.get_redaction(policy_id)
        except ConfigError as exc:
            raise ConfigError(f"--requeue-with: {exc}") from None
        job = self.item(job_id).job
        raw = job.raw_path
        if raw is None or not raw.is_file():
            raise JobStoreError(f"job {job.id}: its raw file is not at {raw}; restore it there first")
        home = self.cfg.raw_store / f"{job.id}{safe_suffix(raw.name)}"

        def move_back() -> None:
            if raw != home:
                os.rename(raw, home)

        queued = self.store.retry(job.id, home, move_back, policy_id=policy_id, actor=actor, reason=reason)
        write_receipt(self.cfg, queued)
        shutil.rmtree(self.queues.review_dir / job.id, ignore_errors=True)
        self.log.info("review_requeued", job_id=job.id, actor=actor, policy=policy_id)
        return queued


def _first_line(text: str | None) -> str:
    return (text or "").splitlines()[0] if text else ""


__all__ = ["REASON_FILE", "ReviewDesk", "ReviewItem", "default_actor"]
