"""Put results where people look: clean storage (atomic, opaque names), review and failed queues."""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redactd.fsutil import atomic_output, atomic_write
from redactd.jobflow.jobstore import Job

REASON_FILE = "REASON.txt"
#: Boxes a reviewer approved for a job held before blurring (written by `redactd review approve`).
APPROVED_BOXES_FILE = "approved-boxes.json"
#: The temp names ``fsutil.atomic_output`` makes beside a target.
TEMP_PATTERN = ".redactd-*.tmp*"
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def safe_suffix(name: str | bytes) -> str:
    """The file's extension if it is short and plain (``.mp4``), else nothing: names are untrusted."""
    suffix = Path(os.fsdecode(name)).suffix
    return suffix.lower() if _SAFE_SUFFIX.match(suffix) else ""


def output_name(naming: str, job: Job, output_sha256: str, suffix: str) -> str:
    """The clean file's name. Opaque unless the policy opts into ``original`` (personal data)."""
    if naming == "sha256":
        return output_sha256 + suffix
    if naming == "job_id":
        return job.id + suffix
    stem = Path(os.fsdecode(job.original_name)).stem
    clean = re.sub(r"[^\w.-]+", "_", stem).lstrip(".-") or job.id
    # The whole id: its first characters are a timestamp, shared by files that arrive together,
    # so a shortened id let two same-named files published the same minute claim one name.
    return f"{clean[:150]}-{job.id}{suffix}"


def place_file(src: Path, dst: Path, mode: int) -> None:
    """Move ``src`` to ``dst`` atomically: temp name beside ``dst``, fsync, rename, fsync directory.

    A rename when both are on one filesystem, a copy otherwise; a half-written copy never shows
    under ``dst`` and its temp file is removed on failure (ENOSPC included).
    """
    with atomic_output(dst, mode) as tmp:
        try:
            os.rename(src, tmp)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)


def sweep_temps(directory: Path) -> int:
    """Remove our own half-written temp files left by a crash (only names ``fsutil`` creates)."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if fnmatch.fnmatchcase(entry.name, TEMP_PATTERN) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
    return removed


def _json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "-"


def reason_text(job: Job, verdict: str, reason: str, advice: str) -> str:
    """What an operator reads first when opening a review or failed folder."""
    return (
        f"redactd: {verdict}\n\n"
        f"job:        {job.id}\n"
        f"inbox:      {job.inbox}\n"
        f"file name:  {job.name}\n"
        f"received:   {_when(job.created_at)}\n"
        f"policy:     {job.policy_id}" + (f" v{job.policy_version}" if job.policy_version else "") + "\n"
        f"raw sha256: {job.raw_sha256 or '-'}\n"
        f"attempts:   {job.attempts}\n\n"
        f"reason:\n  {reason.replace(chr(10), chr(10) + '  ')}\n\n"
        f"what to do:\n  {advice}\n"
    )


@dataclass(frozen=True)
class Queues:
    """Where results go. One folder per job in the review and failed queues."""

    clean_dir: Path
    review_dir: Path
    failed_dir: Path

    def ensure(self) -> None:
        for d in (self.clean_dir, self.review_dir, self.failed_dir):
            d.mkdir(parents=True, exist_ok=True)
            sweep_temps(d)

    def publish(self, output: Path, name: str, sidecar: dict[str, Any]) -> Path:
        """Sidecar first, then the video: a reader that sees the video always finds its sidecar."""
        dst = self.clean_dir / name
        side = dst.with_name(name + ".json")
        atomic_write(side, _json(sidecar), 0o644)
        try:
            place_file(output, dst, 0o644)
        except BaseException:
            if not dst.exists():  # our own sidecar, for a video that did not arrive
                with contextlib.suppress(OSError):
                    side.unlink()
            raise
        return dst

    def folder(self, root: Path, job_id: str) -> Path:
        """The job's own folder in the review or failed queue (created, group-readable at most)."""
        folder = root / job_id
        folder.mkdir(mode=0o750, exist_ok=True)
        return folder

    def write_reason(self, folder: Path, job: Job, verdict: str, reason: str, advice: str) -> None:
        atomic_write(folder / REASON_FILE, reason_text(job, verdict, reason, advice).encode(), 0o640)

    def to_review(self, job: Job, output: Path, suffix: str, sidecar: dict[str, Any], reason: str) -> Path:
        folder = self.folder(self.review_dir, job.id)
        dst = folder / f"output{suffix}"
        atomic_write(folder / "output.json", _json(sidecar), 0o640)
        place_file(output, dst, 0o640)
        self.write_reason(folder, job, "this output needs a human decision before it may be used", reason,
                          "look at the output; keep it out of clean storage, or adjust the policy and run "
                          f"`redactd jobs retry {job.id}`")
        return dst

    def approved_boxes(self, job_id: str) -> Path | None:
        """The boxes a reviewer approved for this job before blurring, if there are any."""
        path = self.review_dir / job_id / APPROVED_BOXES_FILE
        return path if path.is_file() else None

    def set_aside(self, root: Path, job_id: str) -> Path | None:
        """Rename a job's queue folder out of the way before a retry (kept, never deleted)."""
        folder = root / job_id
        if not folder.exists():
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        dst = root / f"{job_id}.before-retry-{stamp}"
        os.rename(folder, dst)
        return dst
