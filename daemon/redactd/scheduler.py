"""The daemon's timetable: retention, inbox rescans and custody checkpoints on one APScheduler.

Jobs live in memory and are rebuilt from the config at every start and every reload
(``replace_existing``): nothing about them is state. Retention is a reconciliation of what is
due now, not a set of per-file timers, so it runs once at start-up and then on its cron; a run
that cannot start on time (the process was suspended, or the previous run still going) is
logged, and the next run catches up anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from redactd import log
from redactd.config import DaemonConfig

RETENTION, RESCAN, CHECKPOINT = "retention", "inbox-rescan", "custody-checkpoint"
#: A run this late is still run (once: coalesced); later than this it is logged as missed.
MISFIRE_GRACE_SECONDS = 600


@dataclass(frozen=True)
class Timetable:
    """What the config says about timing; ``None`` leaves that job out."""

    retention_cron: str | None
    rescan_seconds: float | None
    checkpoint_minutes: float | None

    @classmethod
    def from_config(cls, cfg: DaemonConfig, custody: bool) -> Timetable:
        return cls(cfg.retention.schedule if cfg.retention else None, cfg.limits.rescan_seconds,
                   cfg.custody.checkpoint_minutes if custody else None)


@dataclass(frozen=True)
class Tasks:
    retention: Callable[[], Any]
    rescan: Callable[[], Any]
    checkpoint: Callable[[], Any]


class DaemonScheduler:
    """A BackgroundScheduler (its own threads) with the daemon's three jobs and loud listeners."""

    def __init__(self, tasks: Tasks, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.tasks, self.clock = tasks, clock
        self.log = log.get_logger()
        self.scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS})
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)

    def start(self, table: Timetable) -> None:
        """Start, and run retention and the first rescan now (catching up on any downtime)."""
        self.scheduler.start()
        self.configure(table, run_now=True)

    def configure(self, table: Timetable, run_now: bool = False) -> None:
        """(Re)build every job from ``table``; after a reload nothing runs early."""
        now = self.clock()
        first: dict[str, Any] = {"next_run_time": now} if run_now else {}
        if table.retention_cron is not None:
            self.scheduler.add_job(self.tasks.retention, CronTrigger.from_crontab(table.retention_cron), id=RETENTION,
                                   name="retention", replace_existing=True, **first)
        elif self.scheduler.get_job(RETENTION):
            self.scheduler.remove_job(RETENTION)
        if table.rescan_seconds is not None:
            self.scheduler.add_job(self.tasks.rescan, IntervalTrigger(seconds=table.rescan_seconds), id=RESCAN,
                                   name="inbox rescan", replace_existing=True, **first)
        if table.checkpoint_minutes is not None:
            self.scheduler.add_job(self.tasks.checkpoint, IntervalTrigger(minutes=table.checkpoint_minutes),
                                   id=CHECKPOINT, name="custody checkpoint", replace_existing=True)
        self.log.info("schedule_configured", jobs={j.id: str(j.trigger) for j in self.scheduler.get_jobs()})

    def shutdown(self) -> None:
        """Stop; a retention run in progress finishes first (it is bounded by max_deletions_per_run)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def _on_event(self, event: JobEvent) -> None:
        scheduled = getattr(event, "scheduled_run_time", None)
        when = scheduled.isoformat() if scheduled else None
        if event.code == EVENT_JOB_MISSED:
            self.log.warning("scheduled_run_missed", job=event.job_id, scheduled=when,
                             note="the next run catches up: it handles everything due by then")
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.log.warning("scheduled_run_skipped", job=event.job_id, scheduled=when,
                             note="the previous run is still going")
        else:
            exc = getattr(event, "exception", None)
            self.log.error("scheduled_job_failed", job=event.job_id, scheduled=when,
                           error=f"{type(exc).__name__}: {exc}" if exc else None)
