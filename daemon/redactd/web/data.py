"""What the console shows and does, through the same functions the CLI calls (no rule lives here).

Each method opens what it needs for one request and closes it, like a CLI command does, so the
console is safe beside a running daemon and sees every change at once. This is the one layer the
pages talk to: status from ``daemon.status_report``, jobs from ``JobStore``, decisions from
``review.ReviewDesk`` and ``jobops``, custody from ``custody.verify`` / ``custody.report`` /
``custody.proofs``, retention from ``retention.service`` and ``RetentionStore``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from redactd.config import DaemonConfig, check_config
from redactd.custody.names import Names, names_path
from redactd.daemon import status_report, store_path
from redactd.jobflow.jobstore import Job, JobState, JobStore, Transition
from redactd.jobflow.outbox import custody_lag, record_pending
from redactd.policy import PolicySet
from redactd.review import ReviewDesk, ReviewItem


@dataclass(frozen=True)
class Volume:
    """One filesystem and the configured folders on it."""

    device: int
    folders: list[tuple[str, Path]]
    total: int
    free: int

    @property
    def used_fraction(self) -> float:
        return 1 - self.free / self.total if self.total else 0.0


def volumes(cfg: DaemonConfig) -> list[Volume]:
    """Free space per volume holding a configured folder (folders not created yet are left out)."""
    named = [*((f"inbox {i.name}", i.path) for i in cfg.inboxes), ("raw store", cfg.raw_store),
             ("clean", cfg.clean_dir), ("review", cfg.review_dir), ("failed", cfg.failed_dir),
             ("state", cfg.state_dir), ("custody", cfg.custody.directory)]
    by_dev: dict[int, Volume] = {}
    for name, path in named:
        try:
            dev = path.stat().st_dev
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        if dev not in by_dev:
            by_dev[dev] = Volume(dev, [], usage.total, usage.free)
        by_dev[dev].folders.append((name, path))
    return list(by_dev.values())


def eta_seconds(progress: float | None, running_s: float | None) -> float | None:
    """Time left for a running job at its average pace so far (None until it has some progress)."""
    if not progress or running_s is None or progress <= 0 or progress >= 1:
        return None
    return running_s * (1 - progress) / progress


class Console:
    """One daemon configuration, as the console sees it."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.cfg, self.policies = check_config(config_path)

    @property
    def store_file(self) -> Path:
        return store_path(self.cfg)

    def has_store(self) -> bool:
        return self.store_file.exists()

    @contextmanager
    def store(self, readonly: bool = True) -> Iterator[JobStore]:
        s = JobStore.open(self.store_file, readonly=readonly)
        try:
            yield s
        finally:
            s.close()

    # ------------------------------------------------------------------ operator

    def overview(self) -> dict[str, Any]:
        from redactd.retention.store import RetentionStore

        report: dict[str, Any] = status_report(self.cfg) if self.has_store() else {
            "daemon_pid": None, "counts": {s.value: 0 for s in JobState}, "in_flight": [], "retrying": [],
            "recent_errors": [], "throughput": None}
        for j in report["in_flight"]:
            j["eta_s"] = eta_seconds(j["progress"], j["running_s"])
        custody = custody_lag(self.store_file)
        pending, oldest = custody["queued"], custody["oldest_age_s"]
        report["custody_lag"] = {"pending": pending, "oldest_s": oldest}
        report["volumes"] = volumes(self.cfg)
        report["last_retention"] = None
        if self.has_store():
            with RetentionStore.open(self.store_file) as rs:
                report["last_retention"] = rs.last_finished_run()
        return report

    def jobs(self, states: set[JobState] | None, inbox: str | None, name: str | None,
             limit: int) -> tuple[list[Job], dict[str, int]]:
        """Jobs newest first, filtered, with how many times each was run (``jobs list``'s TRIES)."""
        if not self.has_store():
            return [], {}
        with self.store() as s:
            found = s.jobs(states, limit=None if (inbox or name) else limit)
            if inbox:
                found = [j for j in found if j.inbox == inbox]
            if name:
                needle = name.lower()
                found = [j for j in found if needle in j.name.lower()]
            found = found[:limit]
            return found, s.tries([j.id for j in found])

    def job(self, job_id: str) -> tuple[Job, list[Transition], list[dict[str, Any]]]:
        with self.store() as s:
            job = s.get(job_id)
            history = s.history(job.id)
        return job, history, self.custody_history(job.id)

    def retry(self, job_id: str, actor: str) -> tuple[Job, str]:
        from redactd.jobops import retry_job

        with self.store(readonly=False) as s:
            job = retry_job(self.cfg, s, job_id, actor)
        return job, record_pending(self.cfg, self.store_file)

    def cancel(self, job_id: str, actor: str) -> tuple[Job, str]:
        from redactd.jobops import cancel_job

        with self.store(readonly=False) as s:
            job = cancel_job(self.cfg, s, job_id, actor)
        return job, record_pending(self.cfg, self.store_file)

    # ------------------------------------------------------------------ reviewer

    @contextmanager
    def desk(self, readonly: bool = True) -> Iterator[ReviewDesk]:
        with self.store(readonly=readonly) as s:
            yield ReviewDesk(self.cfg, self.policies, s)

    def review_items(self) -> list[ReviewItem]:
        if not self.has_store():
            return []
        with self.desk() as d:
            return d.items()

    def review_item(self, job_id: str) -> ReviewItem:
        with self.desk() as d:
            return d.item(job_id)

    def review_output(self, job_id: str) -> Path:
        """The redacted output waiting for a decision (not for a job held before blurring: none yet)."""
        from redactd.jobflow.jobstore import JobStoreError

        item = self.review_item(job_id)
        path = item.job.output_path
        if item.before_blur or path is None or not path.is_file():
            raise JobStoreError(f"job {item.job.id} has no rendered output to play")
        return path

    def contact_sheet_png(self, job_id: str, frames: int = 6) -> bytes:
        """The contact sheet ``redactd review show`` writes, as PNG bytes (never stored by the console)."""
        import cv2

        from redactd.errors import InputError
        from redactd.jobflow.jobstore import JobStoreError
        from redactd.validation.sheet import contact_sheet

        item = self.review_item(job_id)
        policy = self.policies.get_redaction(item.job.policy_id)
        if item.job.raw_path is None:
            raise JobStoreError(f"job {item.job.id} has no raw file on record: no contact sheet without it")
        output = item.job.output_path if not item.before_blur else None
        sheet = contact_sheet(item.job.raw_path, output, item.sidecar, policy, most=frames)
        ok, data = cv2.imencode(".png", sheet)
        if not ok:
            raise InputError("could not encode the contact sheet as PNG")
        return bytes(data.tobytes())

    def decide(self, job_id: str, actor: str, decision: str, reason: str = "", policy: str = "") -> tuple[Job, str]:
        """approve / reject / requeue: the same ``ReviewDesk`` call and custody entry as ``redactd review``."""
        with self.desk(readonly=False) as d:
            if decision == "approve":
                job = d.approve(job_id, actor)
            elif decision == "reject":
                job = d.reject(job_id, actor, reason)
            elif decision == "requeue":
                job = d.requeue(job_id, actor, policy)
            else:
                raise ValueError(f"unknown decision {decision!r}")
        return job, record_pending(self.cfg, self.store_file)

    def redaction_policies(self) -> list[str]:
        return sorted(self.policies.redaction)

    # ------------------------------------------------------------------ officer

    def _pubkey(self):  # type: ignore[no-untyped-def]
        from redactd.custody.keys import load_public_key, public_path

        return load_public_key(public_path(self.cfg.custody.signing_key))

    def verify(self):  # type: ignore[no-untyped-def]
        """``redactd custody verify`` with the config's public key: the same check, the same counts."""
        from redactd.custody.verify import verify_log

        return verify_log(self.cfg.custody.directory, self._pubkey())

    def report_html(self, start: date, end: date) -> str:
        """``redactd custody report``: only entries that verified count."""
        from redactd.custody import report
        from redactd.custody.segments import load_entries

        result = self.verify()
        entries = load_entries(self.cfg.custody.directory, strict=False)[: result.entries]
        return report.render(entries, result, start, end)

    def names(self) -> Names:
        """The custody name store: what pages read original file names from (``original_name``)."""
        return Names.load(names_path(self.cfg.custody.directory))

    def custody_history(self, what: str) -> list[dict[str, Any]]:
        """``redactd custody show``: entries about a SHA-256 or a job (any unique id prefix)."""
        from redactd.custody import report
        from redactd.custody.segments import load_entries
        from redactd.jobops import custody_subject

        if not self.cfg.custody.directory.is_dir():
            return []
        return report.history(load_entries(self.cfg.custody.directory), custody_subject(self.store_file, what))

    def bundle(self, sha256: str) -> tuple[dict[str, Any], int]:
        from redactd.custody.proofs import make_bundle

        return make_bundle(self.cfg.custody.directory, sha256.strip().lower())

    def retention_plan(self):  # type: ignore[no-untyped-def]
        from redactd.errors import RetentionError
        from redactd.retention.service import make_plan

        if not self.has_store():
            raise RetentionError("no job store yet (has the daemon ever run?): nothing to plan")

        return make_plan(self.cfg, self.policies, self.store_file, datetime.now(UTC))

    def set_hold(self, scope: str, value: str, reason: str, requested_by: str,
                 review_date: str = "") -> tuple[Any, str]:
        """``redactd hold add``: the same target checks, the same store call and custody entry."""
        from redactd.errors import RetentionError
        from redactd.holds import set_hold
        from redactd.retention.model import HoldScope

        try:
            kind = HoldScope(scope)
        except ValueError:
            raise RetentionError(f"unknown hold scope {scope!r}") from None
        review = None
        if review_date.strip():
            try:
                review = datetime.combine(date.fromisoformat(review_date.strip()), datetime.min.time(), UTC)
            except ValueError:
                raise RetentionError(f"review date: expected YYYY-MM-DD, got {review_date!r}") from None
        return set_hold(self.cfg, kind, value, reason, requested_by, review)

    def release_hold(self, hold_id: int, by: str) -> tuple[Any, str]:
        from redactd.holds import release_hold

        return release_hold(self.cfg, hold_id, by)

    def holds(self, include_released: bool = False) -> list[Any]:
        from redactd.retention.store import RetentionStore

        if not self.has_store():
            return []
        with RetentionStore.open(self.store_file) as rs:
            return rs.holds(include_released=include_released)


def reload_policies(console: Console) -> PolicySet:
    console.cfg, console.policies = check_config(console.config_path)
    return console.policies


def now_text() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
