"""Contributor receipts: ``<inbox>/.redactd/<file>.txt`` says what became of a file copied into the inbox.

Optional per inbox (``receipts: true``). A receipt is rewritten at every state change of its job,
from the job store row alone, and names only the contributor's own file: never another
contributor's file (a duplicate says only that the same content arrived before), never a
reviewer or a path outside the inbox. The watcher ignores the ``.redactd`` folder (``admit.is_junk``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from redactd import log
from redactd.config import DaemonConfig
from redactd.fsutil import atomic_write
from redactd.jobflow.jobstore import Job, JobState

RECEIPTS_DIR = ".redactd"

_SAYS = {
    JobState.RECEIVING: "received", JobState.ADMITTED: "received: waiting to be processed",
    JobState.PROCESSING: "processing", JobState.PUBLISHED: "published",
    JobState.REVIEW: "held for review: a person checks the redacted copy before it is published",
    JobState.FAILED: "failed", JobState.DUPLICATE: "received: the same content arrived before, so it is not "
                                                   "processed again",
}


def receipt_path(inbox: Path, original_name: bytes) -> Path | None:
    """Where the receipt of ``original_name`` (its path inside the inbox) goes; None for an unsafe name."""
    rel = Path(os.fsdecode(original_name))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    return inbox / RECEIPTS_DIR / rel.parent / (rel.name + ".txt")


def _why(job: Job) -> str | None:
    if job.state is JobState.FAILED and job.last_error:
        first = job.last_error.splitlines()[0]
        if first.startswith("rejected in review by "):  # the reviewer's name is not the contributor's business
            return "rejected in review: " + first.split(": ", 1)[1] if ": " in first else "rejected in review"
        return first
    if job.state is JobState.ADMITTED and job.attempts and job.last_error:
        return "it will be tried again: " + job.last_error.splitlines()[0]
    return None


def render(job: Job) -> str:
    lines = [f"file:    {Path(job.name).name}", f"status:  {_SAYS[job.state]}"]
    why = _why(job)
    if why:
        lines.append(f"why:     {why}")
    lines.append(f"updated: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(job.updated_at))}")
    lines.append(f"ref:     {job.id}  (quote it when you ask the operator about this file)")
    return "\n".join(lines) + "\n"


def write_receipt(cfg: DaemonConfig, job: Job) -> Path | None:
    """Rewrite the job's receipt when its inbox keeps receipts; never fails the caller."""
    inbox = next((i for i in cfg.inboxes if i.name == job.inbox), None)
    if inbox is None or not inbox.receipts:
        return None
    path = receipt_path(inbox.path, job.original_name)
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        atomic_write(path, render(job).encode("utf-8", "backslashreplace"), 0o644)
    except OSError as exc:  # a receipt is a courtesy: it never stops a job or a decision
        log.get_logger().warning("receipt_not_written", job_id=job.id, error=exc.strerror)
        return None
    return path
