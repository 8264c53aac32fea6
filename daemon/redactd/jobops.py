"""Operator actions on jobs, shared by ``redactd jobs`` and the web console: one implementation each."""

from __future__ import annotations

import os
import re
from pathlib import Path

from redactd.config import DaemonConfig
from redactd.jobflow.jobstore import Job, JobState, JobStore, JobStoreError
from redactd.jobflow.publish import Queues, safe_suffix
from redactd.receipts import write_receipt


def _first_line(text: str | None) -> str:
    return (text or "").splitlines()[0] if text else ""


def retry_job(cfg: DaemonConfig, store: JobStore, job_id: str, actor: str | None = None) -> Job:
    """Run a failed or review job again from its raw file (moved back to the raw store).

    Its ``retried`` custody entry is queued with the transition; the caller then runs
    ``outbox.record_pending`` (or leaves it to the running daemon).
    """
    queues = Queues(cfg.clean_dir, cfg.review_dir, cfg.failed_dir)
    job = store.get(job_id)
    if job.state is JobState.FAILED and job.raw_sha256 is None:
        raise JobStoreError(
            f"job {job.id} was refused at admission ({_first_line(job.last_error)}); nothing was "
            f"admitted to retry. The file is kept at {job.raw_path or '(left in the inbox)'}: fix the "
            "cause and copy it into the inbox again")
    if job.state not in (JobState.FAILED, JobState.REVIEW):
        raise JobStoreError(f"job {job.id} is {job.state.value}; only failed or review jobs can be retried")
    raw = job.raw_path
    if raw is None or not raw.is_file():
        raise JobStoreError(f"job {job.id}: its raw file is not at {raw}; restore it there first")
    home = cfg.raw_store / f"{job.id}{safe_suffix(raw.name)}"

    def move_back() -> None:
        if raw != home:
            os.rename(raw, home)
        root = cfg.failed_dir if job.state is JobState.FAILED else cfg.review_dir
        queues.set_aside(root, job.id)

    queued = store.retry(job.id, home, move_back, actor=actor)
    write_receipt(cfg, queued)
    return queued


def custody_subject(store_file: Path | None, what: str) -> str:
    """What a custody history is asked about: a SHA-256 as is, a job id or any unique prefix of one.

    The prefix is resolved through the job store (the same rule as every other job command); with
    no job store here (a copy of the log on an officer's machine) the text is taken as given.
    """
    text = what.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return text.lower()
    if store_file is None or not store_file.exists():
        return text
    store = JobStore.open(store_file, readonly=True)
    try:
        return store.get(text).id
    except JobStoreError as exc:
        if "ambiguous" in str(exc):
            raise
        return text
    finally:
        store.close()


def cancel_job(cfg: DaemonConfig, store: JobStore, job_id: str, actor: str) -> Job:
    """Take a job that waits in the queue out of it: failed, raw file beside a reason in the failed queue.

    ``jobs retry`` runs it later like any failed job. A running job is refused: stopping a worker
    half-way is the daemon's business (SIGTERM), not a queue edit.
    """
    from redactd.admit import move_aside

    queues = Queues(cfg.clean_dir, cfg.review_dir, cfg.failed_dir)
    job = store.get(job_id)
    if job.state is not JobState.ADMITTED:
        raise JobStoreError(f"job {job.id} is {job.state.value}; only a job waiting in the queue (admitted) "
                            "can be cancelled")
    cfg.failed_dir.mkdir(parents=True, exist_ok=True)  # the daemon makes it at start; it may not have yet
    folder = queues.folder(cfg.failed_dir, job.id)
    raw = job.raw_path
    target = folder / f"raw{safe_suffix(raw.name if raw else '')}"

    def move_raw() -> None:
        if raw is not None and os.path.lexists(raw) and raw != target and not move_aside(raw, target):
            raise JobStoreError(f"job {job.id}: could not move its raw file to {target}")

    kept = target if raw is not None and os.path.lexists(raw) else raw
    failed = store.cancel(job.id, actor, kept, move_raw)
    queues.write_reason(folder, failed, "an operator cancelled this job before it was processed",
                        failed.last_error or "cancelled", f"the raw file is kept here; `redactd jobs retry {job.id}` "
                        "queues it again")
    write_receipt(cfg, failed)
    return failed
