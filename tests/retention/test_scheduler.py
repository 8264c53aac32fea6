"""The daemon's APScheduler timetable: start-up runs, rebuilt jobs, missed runs logged."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from redactd.errors import ConfigError
from redactd.retention.service import log_missed_runs, missed_runs
from redactd.retention.store import RetentionStore
from redactd.scheduler import CHECKPOINT, RESCAN, RETENTION, DaemonScheduler, Tasks, Timetable
from tests.retention.conftest import Layout


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.seen = threading.Event()

    def task(self, name: str):  # type: ignore[no-untyped-def]
        def run() -> None:
            self.calls.append(name)
            self.seen.set()
        return run

    def tasks(self) -> Tasks:
        return Tasks(self.task("retention"), self.task("rescan"), self.task("checkpoint"))


TABLE = Timetable(retention_cron="17 * * * *", rescan_seconds=300, checkpoint_minutes=60)


class TestDaemonScheduler:
    def test_runs_retention_and_a_rescan_at_start_up(self) -> None:
        rec = Recorder()
        sched = DaemonScheduler(rec.tasks())
        sched.start(TABLE)
        try:
            for _ in range(50):
                if {"retention", "rescan"} <= set(rec.calls):
                    break
                rec.seen.wait(0.1)
                rec.seen.clear()
        finally:
            sched.shutdown()
        assert {"retention", "rescan"} <= set(rec.calls)
        assert "checkpoint" not in rec.calls  # the first checkpoint comes after an interval

    def test_rebuilding_from_config_replaces_jobs_instead_of_adding(self) -> None:
        sched = DaemonScheduler(Recorder().tasks())
        sched.start(TABLE)
        try:
            sched.configure(Timetable("0 3 * * *", 60, None))
            jobs = {j.id: j for j in sched.scheduler.get_jobs()}
            assert sorted(jobs) == sorted([RETENTION, RESCAN, CHECKPOINT])
            assert "hour='3'" in str(jobs[RETENTION].trigger)
            sched.configure(Timetable(None, 60, None))
            assert RETENTION not in {j.id for j in sched.scheduler.get_jobs()}
        finally:
            sched.shutdown()

    def test_logs_a_run_that_could_not_start_on_time(self) -> None:
        late = datetime.now().astimezone() - timedelta(hours=1)  # the clock seam: the run was due an hour ago
        # A yearly cron that last fired just before then: no later fire time can make the run on time.
        t = late - timedelta(minutes=1)
        table = Timetable(f"{t.minute} {t.hour} {t.day} {t.month} *", None, None)
        sched = DaemonScheduler(Recorder().tasks(), clock=lambda: late)
        with structlog.testing.capture_logs() as logs:
            sched.start(table)
            try:
                for _ in range(50):
                    if any(e["event"] == "scheduled_run_missed" for e in logs):
                        break
                    threading.Event().wait(0.1)
            finally:
                sched.shutdown()
        missed = [e for e in logs if e["event"] == "scheduled_run_missed"]
        assert {e["job"] for e in missed} == {RETENTION}
        assert all(e["log_level"] == "warning" for e in missed)


class TestMissedRuns:
    def test_counts_every_cron_time_that_fell_in_the_downtime(self) -> None:
        last = datetime(2026, 3, 1, 8, 20, tzinfo=UTC)
        now = datetime(2026, 3, 1, 13, 17, tzinfo=UTC)
        fired = missed_runs("17 * * * *", last, now, timezone=UTC)
        assert [t.hour for t in fired] == [9, 10, 11, 12]  # 13:17 is now: the start-up run is that one

    def test_nothing_is_missed_before_the_first_run(self) -> None:
        assert missed_runs("17 * * * *", None, datetime.now(UTC)) == []

    def test_start_up_logs_runs_missed_since_the_last_recorded_run(self, layout: Layout) -> None:
        then = datetime(2026, 3, 1, 8, 20, tzinfo=UTC)
        with RetentionStore.open(layout.store_file) as store:
            run_id = store.begin_run("daemon", "test-retention", 1, False, then)
            store.finish_run(run_id, then, {})
        with structlog.testing.capture_logs() as logs:
            count = log_missed_runs(layout.cfg, layout.store_file, then + timedelta(days=1))
        assert count == 24
        event = next(e for e in logs if e["event"] == "retention_runs_missed")
        assert event["count"] == 24 and event["log_level"] == "warning"


class TestScheduleConfig:
    def test_a_bad_cron_expression_is_a_config_error_naming_the_key(self, layout: Layout) -> None:
        text = layout.config.read_text().replace('schedule: "17 * * * *"', 'schedule: "61 * * * *"')
        layout.config.write_text(text)
        with pytest.raises(ConfigError, match="schedule"):
            layout.load()
