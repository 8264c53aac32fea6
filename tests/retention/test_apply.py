"""Applying plans against real files, the real job store and a real signed custody log."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from redactd.custody import CustodyLog, verify_log
from redactd.custody.segments import segment_paths
from redactd.retention import Action, HoldScope, ItemKind
from redactd.retention.apply import Applier, ApplyReport
from redactd.retention.service import make_plan, run_retention
from redactd.retention.store import RetentionStore
from tests.retention.conftest import FixedClock, Layout, later


def entries(layout: Layout) -> list[dict[str, Any]]:
    out = []
    for seg in segment_paths(layout.cfg.custody.directory):
        out += [json.loads(line) for line in seg.read_bytes().splitlines()]
    return out


def run(layout: Layout, clock: FixedClock, dry_run: bool = False) -> ApplyReport:
    cfg, policies = layout.load()
    with CustodyLog.open(cfg.custody.directory, cfg.custody.signing_key) as custody:
        return run_retention(cfg, policies, layout.store_file, custody, clock, dry_run=dry_run, trigger="test")


class TestPurge:
    def test_purges_a_due_raw_file_and_records_intent_then_purge_in_a_verifying_log(
            self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"footage one")
        clock.now = later(job, days=7)
        report = run(layout, clock)
        assert report.counts()["purged"] == 1
        assert job.raw_path is not None and not os.path.lexists(job.raw_path)
        assert job.output_path is not None and job.output_path.exists()  # clean outputs are kept forever
        events = [(e["event"], e["job_id"]) for e in entries(layout)]
        assert events.index(("purge_intended", job.id)) < events.index(("purged", job.id))
        purged = next(e for e in entries(layout) if e["event"] == "purged")
        assert purged["raw_sha256"] == job.raw_sha256
        assert purged["policy"]["id"] == "test-retention" and purged["policy"]["version"] == 1
        assert purged["details"]["method"] == "unlink" and purged["details"]["rule"] == "default"
        assert "filesystem" in purged["details"]
        result = verify_log(layout.cfg.custody.directory, layout.pubkey)
        assert result.ok, result.problem

    def test_a_purged_item_is_not_planned_again(self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"footage two")
        clock.now = later(job, days=8)
        run(layout, clock)
        cfg, policies = layout.load()
        p = make_plan(cfg, policies, layout.store_file, clock.now)
        assert [(d.item.kind.value, d.action) for d in p.decisions] == [("clean", Action.KEEP)]

    def test_keeps_everything_one_second_before_the_deadline(self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"footage three")
        clock.now = later(job, days=7) - timedelta(seconds=1)
        assert run(layout, clock).counts()["purged"] == 0
        assert job.raw_path is not None and job.raw_path.exists()

    def test_keeps_raw_of_a_failed_job_under_the_default_policy(self, layout: Layout, clock: FixedClock) -> None:
        job = layout.failed(b"never published")
        clock.now = later(job, days=3650)
        report = run(layout, clock)
        assert report.outcomes == ()
        assert job.raw_path is not None and job.raw_path.exists()
        reasons = {d.item.kind.value: d.reason for d in report.plan.decisions}
        assert "require_published_before_raw_purge" in reasons["raw"]

    def test_removes_a_review_folder_whole(self, layout: Layout, clock: FixedClock) -> None:
        job = layout.review(b"doubtful")
        folder = layout.cfg.review_dir / job.id
        assert sorted(p.name for p in folder.iterdir()) == ["REASON.txt", "output.json", "output.mp4"]
        clock.now = later(job, days=30)
        report = run(layout, clock)
        assert [(o.decision.item.kind.value, o.status) for o in report.outcomes] == [("review", "purged")]
        assert not folder.exists()
        assert job.raw_path is not None and job.raw_path.exists()  # raw of a job in review: never published

    def test_purges_failed_raw_then_its_reason_file_when_the_policy_discards_failures(
            self, layout: Layout, clock: FixedClock) -> None:
        layout.write_policy(require=False)
        job = layout.failed(b"undecodable")
        folder = layout.cfg.failed_dir / job.id
        clock.now = later(job, days=30)
        first = run(layout, clock)
        assert [(o.decision.item.kind.value, o.status) for o in first.outcomes] == [("raw", "purged")]
        assert sorted(p.name for p in folder.iterdir()) == ["REASON.txt"]
        second = run(layout, clock)
        assert [(o.decision.item.kind.value, o.status) for o in second.outcomes] == [("failed", "purged")]
        assert not folder.exists()
        record = [e for e in entries(layout) if e["event"] == "purged"][-1]
        assert len(record["details"]["record_sha256"]) == 64

    def test_a_duplicates_raw_follows_the_job_it_repeats(self, layout: Layout, clock: FixedClock) -> None:
        original = layout.published(b"same bytes")
        dup = layout.duplicate(b"same bytes")
        clock.now = later(original, days=7)
        report = run(layout, clock)
        assert {o.decision.item.job_id for o in report.outcomes if o.status == "purged"} == {original.id, dup.id}


class TestRefusals:
    def test_a_file_swapped_after_ingestion_is_not_deleted_and_the_mismatch_is_reported(
            self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"original footage")
        assert job.raw_path is not None
        job.raw_path.write_bytes(b"swapped footage!")  # same size, other bytes
        clock.now = later(job, days=7)
        with structlog.testing.capture_logs() as logs:
            report = run(layout, clock)
        assert [o.status for o in report.outcomes] == ["refused"]
        assert "content changed" in report.outcomes[0].detail
        assert job.raw_path.read_bytes() == b"swapped footage!"
        refused = [e for e in logs if e["event"] == "purge_refused"]
        assert refused and refused[0]["log_level"] == "error" and refused[0]["job_id"] == job.id
        custody = [e for e in entries(layout) if e["job_id"] == job.id and e["event"] == "failed"]
        assert "content changed" in custody[0]["details"]["purge_refused"]
        assert not [e for e in entries(layout) if e["event"] == "purged"]
        with RetentionStore.open(layout.store_file) as store:
            assert store.purged_paths() == set()

    def test_a_symlink_at_the_recorded_path_is_refused_and_not_followed(
            self, layout: Layout, clock: FixedClock, tmp_path: Path) -> None:
        job = layout.published(b"linked footage")
        assert job.raw_path is not None
        victim = tmp_path / "elsewhere.mp4"
        victim.write_bytes(b"linked footage")
        job.raw_path.unlink()
        job.raw_path.symlink_to(victim)
        clock.now = later(job, days=7)
        report = run(layout, clock)
        assert [o.status for o in report.outcomes] == ["refused"]
        assert "symbolic link" in report.outcomes[0].detail
        assert victim.read_bytes() == b"linked footage" and job.raw_path.is_symlink()

    def test_a_hard_linked_file_is_refused(self, layout: Layout, clock: FixedClock, tmp_path: Path) -> None:
        job = layout.published(b"hard linked")
        assert job.raw_path is not None
        os.link(job.raw_path, layout.root / "raw-copy")
        clock.now = later(job, days=7)
        report = run(layout, clock)
        assert "2 hard links" in report.outcomes[0].detail and job.raw_path.exists()


class TestHoldsAndDryRun:
    def test_a_hold_blocks_a_due_purge(self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"evidence")
        with RetentionStore.open(layout.store_file) as store:
            store.add_hold(HoldScope.JOB, job.id, "case 42", "legal:bob", clock.now)
        clock.now = later(job, days=70)
        report = run(layout, clock)
        assert report.outcomes == ()
        held = {d.item.kind.value: d.hold_id for d in report.plan.with_action(Action.HELD)}
        assert held == {"raw": 1, "clean": 1}  # a job hold covers the job's outputs too
        assert job.raw_path is not None and job.raw_path.exists()
        hold_set = [e for e in entries(layout) if e["event"] == "hold_set"]
        assert hold_set[0]["job_id"] == job.id and hold_set[0]["actor"] == "legal:bob"

    def test_a_hold_set_after_the_plan_still_stops_the_deletion(self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"late hold")
        clock.now = later(job, days=7)
        cfg, policies = layout.load()
        p = make_plan(cfg, policies, layout.store_file, clock.now)
        assert [d.item.job_id for d in p.deletions] == [job.id]
        with RetentionStore.open(layout.store_file) as store, \
                CustodyLog.open(cfg.custody.directory, cfg.custody.signing_key) as custody:
            store.add_hold(HoldScope.SHA256, job.raw_sha256 or "", "subpoena", "legal:eve", clock.now)
            report = Applier(custody, store, clock).apply(p)
        assert [o.status for o in report.outcomes] == ["held"]
        assert job.raw_path is not None and job.raw_path.exists()

    def test_dry_run_deletes_nothing_and_writes_no_purge_entries(self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"dry")
        clock.now = later(job, days=7)
        report = run(layout, clock, dry_run=True)
        assert [o.status for o in report.outcomes] == ["dry-run"]
        assert job.raw_path is not None and job.raw_path.exists()
        assert not [e for e in entries(layout) if e["event"].startswith("purge")]


class TestCapAndVersions:
    def test_the_per_run_cap_defers_the_rest_to_the_next_run(self, layout: Layout, clock: FixedClock) -> None:
        layout.write_policy(cap=2)
        jobs = [layout.published(f"clip {i}".encode()) for i in range(3)]
        clock.now = later(jobs[-1], days=7)
        first = run(layout, clock)
        assert (first.counts()["purged"], first.counts()["deferred"]) == (2, 1)
        assert sorted(o.decision.item.job_id for o in first.outcomes) == sorted(j.id for j in jobs[:2])
        second = run(layout, clock)
        assert [o.decision.item.job_id for o in second.outcomes] == [jobs[2].id]
        purged = [e for e in entries(layout) if e["event"] == "purged"]
        assert sorted(e["raw_sha256"] for e in purged) == sorted(j.raw_sha256 for j in jobs)
        assert verify_log(layout.cfg.custody.directory, layout.pubkey).ok

    def test_a_changed_policy_version_governs_the_next_run_and_is_recorded(
            self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"versioned")
        clock.now = later(job, days=3)
        assert run(layout, clock).counts()["purged"] == 0
        layout.write_policy(version=2, raw_days=2)
        report = run(layout, clock)
        assert report.plan.policy_version == 2 and report.counts()["purged"] == 1
        purged = [e for e in entries(layout) if e["event"] == "purged"]
        assert purged[0]["policy"]["version"] == 2


class TestRecovery:
    def test_completes_a_purge_interrupted_after_the_unlink(self, layout: Layout, clock: FixedClock) -> None:
        job = layout.published(b"interrupted")
        assert job.raw_path is not None and job.raw_sha256 is not None
        with RetentionStore.open(layout.store_file) as store:
            store.intend_purge(job.id, ItemKind.RAW,
                               job.raw_path, job.raw_sha256, job.size, "test-retention", 1, "0" * 64, "default",
                               clock.now)
        job.raw_path.unlink()  # the crash came after the unlink, before the purged entry
        report = run(layout, clock)
        assert report.recovered == 1
        purged = [e for e in entries(layout) if e["event"] == "purged"]
        assert purged[0]["details"]["recovered"] is True and purged[0]["raw_sha256"] == job.raw_sha256
        assert verify_log(layout.cfg.custody.directory, layout.pubkey).ok


class TestStopping:
    def test_a_stop_request_ends_the_run_between_two_deletions(self, layout: Layout, clock: FixedClock) -> None:
        jobs = [layout.published(f"stop {i}".encode()) for i in range(3)]
        clock.now = later(jobs[-1], days=7)
        cfg, policies = layout.load()
        p = make_plan(cfg, policies, layout.store_file, clock.now)
        answers = iter([False, True])  # asked before each deletion: go on once, then stop
        with RetentionStore.open(layout.store_file) as store, \
                CustodyLog.open(cfg.custody.directory, cfg.custody.signing_key) as custody:
            report = Applier(custody, store, clock).apply(p, stop=lambda: next(answers))
        assert [o.status for o in report.outcomes] == ["purged"]
        assert sum(1 for j in jobs if j.raw_path is not None and j.raw_path.exists()) == 2
