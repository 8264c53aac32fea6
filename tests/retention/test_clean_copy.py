"""Retention purges raw footage only while its published clean copy still exists with the recorded SHA-256."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from redactd.cli import main
from redactd.config import load_config
from redactd.custody import CustodyLog, verify_log
from redactd.daemon import status_report
from redactd.retention.apply import ApplyReport
from redactd.retention.service import run_retention
from tests.retention.conftest import FixedClock, Layout, later
from tests.retention.test_apply import entries


def run(layout: Layout, clock: FixedClock) -> ApplyReport:
    cfg, policies = layout.load()
    with CustodyLog.open(cfg.custody.directory, cfg.custody.signing_key) as custody:
        return run_retention(cfg, policies, layout.store_file, custody, clock, trigger="test")


class TestCleanCopyRecheck:
    def test_raw_is_kept_when_its_clean_copy_and_sidecar_were_deleted_from_clean_storage(
            self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"the only copy soon")
        assert job.output_path is not None and job.raw_path is not None
        job.output_path.unlink()
        Path(str(job.output_path) + ".json").unlink()
        clock.now = later(job, days=8)
        report = run(layout, clock)
        assert [(o.decision.item.kind.value, o.status) for o in report.outcomes] == [("raw", "refused")]
        assert "no longer in clean storage" in report.outcomes[0].detail
        assert job.raw_path.read_bytes() == b"the only copy soon"
        refusal = [e for e in entries(layout) if e["event"] == "failed" and e["job_id"] == job.id]
        assert "the raw file is the only copy left" in refusal[0]["details"]["purge_refused"]
        assert not [e for e in entries(layout) if e["event"] == "purged"]
        assert verify_log(layout.cfg.custody.directory, layout.pubkey).ok

    def test_raw_is_kept_when_its_clean_copy_no_longer_matches_the_recorded_sha256(
            self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"footage with a clean copy")
        assert job.output_path is not None and job.raw_path is not None
        job.output_path.write_bytes(b"something else entirely")
        clock.now = later(job, days=8)
        report = run(layout, clock)
        assert [o.status for o in report.outcomes] == ["refused"]
        assert f"{job.output_sha256} was recorded" in report.outcomes[0].detail
        assert job.raw_path.exists()

    def test_status_shows_the_refusal_until_a_later_run_purges_the_item(
            self, layout: Layout, clock: FixedClock, capsys: pytest.CaptureFixture[str]) -> None:
        job = layout.published(b"restored later")
        assert job.output_path is not None and job.raw_path is not None
        saved = job.output_path.read_bytes()
        job.output_path.unlink()
        clock.now = later(job, days=8)
        run(layout, clock)
        cfg = load_config(layout.config)
        refused = status_report(cfg)["purge_refused"]
        assert [(r["job_id"], r["item"]) for r in refused] == [(job.id, "raw")]
        assert "no longer in clean storage" in refused[0]["reason"]
        assert main(["status", "--config", str(layout.config)]) == 0
        text = capsys.readouterr().out
        assert "purges refused" in text and job.id in text and "no longer in clean storage" in text
        job.output_path.write_bytes(saved)  # the operator restores the clean copy from backup
        clock.advance(timedelta(hours=1))
        assert [o.status for o in run(layout, clock).outcomes] == ["purged"]
        assert not os.path.lexists(job.raw_path)
        assert status_report(cfg)["purge_refused"] == []

    def test_a_duplicates_raw_is_kept_when_the_clean_copy_of_the_job_it_repeats_is_gone(
            self, layout: Layout, clock: FixedClock) -> None:
        original = layout.published(b"same bytes twice")
        dup = layout.duplicate(b"same bytes twice")
        assert original.output_path is not None
        original.output_path.unlink()
        clock.now = later(original, days=8)
        report = run(layout, clock)
        assert {(o.decision.item.job_id, o.status) for o in report.outcomes} == {
            (original.id, "refused"), (dup.id, "refused")}

    def test_a_failed_jobs_raw_needs_no_clean_copy_where_the_policy_discards_failures(
            self, layout: Layout, clock: FixedClock) -> None:
        layout.write_policy(require=False)
        job = layout.failed(b"undecodable footage")
        clock.now = later(job, days=30)
        assert [o.status for o in run(layout, clock).outcomes] == ["purged"]
