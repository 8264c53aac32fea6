"""Legal holds and purge records in the job store's SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from redactd.errors import RetentionError
from redactd.jobflow.jobstore import JobStore
from redactd.jobflow.outbox import opened
from redactd.retention import HoldScope
from redactd.retention.store import RetentionStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class TestHolds:
    def test_a_hold_survives_reopening_with_every_field(self, tmp_path: Path) -> None:
        path = tmp_path / "jobs.sqlite3"
        with RetentionStore.open(path) as store:
            store.add_hold(HoldScope.PATTERN, "dashcams/2026-03-*", "case 42", "legal:bob", T0,
                           review_date=T0 + timedelta(days=90))
        with RetentionStore.open(path) as store:
            (hold,) = store.holds()
        assert (hold.id, hold.scope, hold.value, hold.reason, hold.requested_by) == (
            1, HoldScope.PATTERN, "dashcams/2026-03-*", "case 42", "legal:bob")
        assert hold.created_at == T0 and hold.review_date == T0 + timedelta(days=90) and hold.active

    def test_shares_the_file_with_the_job_store(self, tmp_path: Path) -> None:
        path = tmp_path / "jobs.sqlite3"
        with RetentionStore.open(path) as store:
            store.add_hold(HoldScope.INBOX, "default", "audit", "dpo", T0)
        jobs = JobStore.open(path)
        try:
            assert jobs.counts()  # the job store's schema is created beside retention's tables
        finally:
            jobs.close()
        with RetentionStore.open(path) as store:
            assert len(store.holds()) == 1

    def test_release_keeps_the_hold_on_record(self, tmp_path: Path) -> None:
        with RetentionStore.open(tmp_path / "j.sqlite3") as store:
            hold = store.add_hold(HoldScope.JOB, "abc", "case", "legal", T0)
            store.release_hold(hold.id, "legal:bob", T0 + timedelta(days=1))
            assert store.holds() == []
            (released,) = store.holds(include_released=True)
            assert released.released_by == "legal:bob" and not released.active
            with pytest.raises(RetentionError, match="already released"):
                store.release_hold(hold.id, "legal:bob", T0)
            with pytest.raises(RetentionError, match="no hold #9"):
                store.release_hold(9, "x", T0)

    def test_refuses_a_hold_without_reason_or_requester(self, tmp_path: Path) -> None:
        with RetentionStore.open(tmp_path / "j.sqlite3") as store, pytest.raises(RetentionError, match="reason"):
            store.add_hold(HoldScope.JOB, "abc", " ", "legal", T0)

    def test_custody_outbox_lists_each_change_once_until_recorded(self, tmp_path: Path) -> None:
        path = tmp_path / "j.sqlite3"
        with RetentionStore.open(path) as store:
            hold = store.add_hold(HoldScope.JOB, "abc", "case", "legal", T0)
            store.release_hold(hold.id, "legal", T0 + timedelta(hours=1))
        with opened(path) as box:
            assert [e for _, e, _ in box.pending()] == ["hold_set", "hold_released"]
            written: list[tuple[str, dict[str, object]]] = []

            class Log:
                def record(self, event: str, fields: dict[str, object], occurred_at: object = None) -> None:
                    written.append((event, fields))

            assert box.flush(Log()) == 2
            assert box.pending() == []
            assert box.flush(Log()) == 0
        assert [(e, f["job_id"], f["actor"]) for e, f in written] == [("hold_set", "abc", "legal"),
                                                                      ("hold_released", "abc", "legal")]
