"""Build retention items from the job store: raw footage, review and failed queue entries, clean outputs.

This is the impure half of planning: it reads job rows and checks which queue files exist. It
never hashes footage (apply does, right before deleting) and lists a file whose job recorded it
even when it has gone missing, so the plan and apply report that instead of forgetting it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from redactd.jobflow.jobstore import Job, JobState
from redactd.jobflow.publish import REASON_FILE, safe_suffix
from redactd.retention.model import ItemKind, RetentionItem
from redactd.retention.store import from_ts


def _item(job: Job, kind: ItemKind, path: Path, sha256: str | None, size: int | None, *,
          state: str | None = None, finished: float | None = None, record: bool = False,
          companions: tuple[Path, ...] = (), folder: Path | None = None,
          clean_copy: tuple[Path, str] | None = None) -> RetentionItem:
    return RetentionItem(
        kind=kind, path=path, sha256=sha256, size=size, job_id=job.id, inbox=job.inbox, profile=job.policy_id,
        ext=safe_suffix(path.name), state=state or job.state.value,
        ingested_at=from_ts(job.admitted_at or job.created_at),
        finished_at=from_ts(finished if finished is not None else job.finished_at),
        name=job.name, record=record, companions=companions, folder=folder, clean_copy=clean_copy,
    )


def clean_copy_of(job: Job | None) -> tuple[Path, str] | None:
    """The published output that vouches for a job's raw bytes: where it is and its recorded SHA-256."""
    if job is None or job.state is not JobState.PUBLISHED or job.output_path is None or not job.output_sha256:
        return None
    return job.output_path, job.output_sha256


def job_items(job: Job, original: Job | None, review_dir: Path, failed_dir: Path) -> list[RetentionItem]:
    """Everything retention may delete for one job (before removing what was already purged).

    A duplicate's raw file follows the job whose content it repeats (``original``): when that
    one published, a clean copy of these very bytes exists.
    """
    items: list[RetentionItem] = []
    rejected = job.state is JobState.FAILED and job.raw_sha256 is None
    if job.raw_path is not None:
        if rejected:
            # Refused at admission and kept in the failed queue: contributor bytes, never hashed.
            items.append(_item(job, ItemKind.FAILED, job.raw_path, None, job.size, folder=job.raw_path.parent))
        elif job.state is JobState.DUPLICATE and original is not None:
            items.append(_item(job, ItemKind.RAW, job.raw_path, job.raw_sha256, job.size,
                               state=original.state.value, finished=original.finished_at,
                               clean_copy=clean_copy_of(original)))
        else:
            items.append(_item(job, ItemKind.RAW, job.raw_path, job.raw_sha256, job.size,
                               clean_copy=clean_copy_of(job)))
    if job.state is JobState.PUBLISHED and job.output_path is not None:
        sidecar = job.output_path.with_name(job.output_path.name + ".json")
        items.append(_item(job, ItemKind.CLEAN, job.output_path, job.output_sha256, None, companions=(sidecar,)))
    if job.state is JobState.REVIEW and job.output_path is not None:
        folder = review_dir / job.id
        items.append(_item(job, ItemKind.REVIEW, job.output_path, job.output_sha256, None, folder=folder,
                           companions=(folder / "output.json", folder / REASON_FILE)))
    if job.state is JobState.FAILED:
        reason = failed_dir / job.id / REASON_FILE
        if os.path.lexists(reason):
            items.append(_item(job, ItemKind.FAILED, reason, None, None, record=True, folder=reason.parent))
    return items


def collect_items(jobs: Iterable[Job], purged: set[tuple[str, str, str]], review_dir: Path,
                  failed_dir: Path) -> list[RetentionItem]:
    """Items of every finished job, less those retention already purged."""
    by_id = {j.id: j for j in jobs}
    out = []
    for job in by_id.values():
        original = by_id.get(job.duplicate_of) if job.duplicate_of else None
        for item in job_items(job, original, review_dir, failed_dir):
            if (item.job_id, item.kind.value, str(item.path)) in purged:
                continue
            if item.clean_copy is not None:
                owner = original.id if original is not None and job.state is JobState.DUPLICATE else job.id
                if (owner, ItemKind.CLEAN.value, str(item.clean_copy[0])) in purged:
                    # The policy itself discarded the clean copy (clean_outputs): nothing left to check.
                    item = replace(item, clean_copy=None)
            out.append(item)
    return out
