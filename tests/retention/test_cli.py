"""`redactd retention plan|apply` and `redactd hold add|release|list`, run through the real CLI entry point."""

from __future__ import annotations

import json

import pytest

from redactd.cli import main
from redactd.custody import CustodyLog
from redactd.custody.segments import segment_paths
from redactd.daemon import DaemonLock
from tests.retention.conftest import Layout, later


def custody_events(layout: Layout) -> list[str]:
    out = []
    for seg in segment_paths(layout.cfg.custody.directory):
        out += [json.loads(line)["event"] for line in seg.read_bytes().splitlines()]
    return out


class TestRetentionPlan:
    def test_prints_a_table_of_item_action_deadline_and_reason_at_a_given_date(
            self, layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
        job = layout.published(b"plan me")
        at = later(job, days=8).strftime("%Y-%m-%dT%H:%M:%S")
        assert main(["retention", "plan", "--config", str(layout.config), "--at", at]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"plan at {at.replace('T', ' ')}Z under test-retention v1")
        assert out[1].split() == ["ITEM", "ACTION", "DEADLINE", "(UTC)", "REASON"]
        row = next(line for line in out if line.startswith(f"{job.id}/raw"))
        assert row.split()[1] == "delete" and "due since" in row
        assert "clip.mp4" not in "\n".join(out)  # original names are personal data: never printed

    def test_json_lines_can_be_filtered_by_action(self, layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
        layout.published(b"json plan")
        assert main(["retention", "plan", "--config", str(layout.config), "--only", "keep", "--json"]) == 0
        docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert {d["item"] for d in docs} == {"raw", "clean"} and {d["action"] for d in docs} == {"keep"}

    def test_rejects_a_malformed_date(self, layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            main(["retention", "plan", "--config", str(layout.config), "--at", "next tuesday"])
        assert "YYYY-MM-DD" in capsys.readouterr().err


class TestRetentionApply:
    def test_dry_run_lists_due_items_and_deletes_nothing(self, layout: Layout,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
        layout.write_policy(raw_days=0)
        job = layout.published(b"dry cli")
        assert main(["retention", "apply", "--dry-run", "--config", str(layout.config)]) == 0
        out = capsys.readouterr().out
        assert "would-delete" in out and f"{job.id}/raw" in out
        assert job.raw_path is not None and job.raw_path.exists()

    def test_applies_with_custody_entries_when_the_daemon_is_stopped(
            self, layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
        layout.write_policy(raw_days=0)
        job = layout.published(b"apply cli")
        assert main(["retention", "apply", "--config", str(layout.config)]) == 0
        assert "deleted 1, refused 0" in capsys.readouterr().out
        assert job.raw_path is not None and not job.raw_path.exists()
        # the job's queued history is signed first, then the purge, intent before deed
        events = [e for e in custody_events(layout) if e != "checkpoint"]
        assert events == ["ingested", "processing_started", "published", "purge_intended", "purged"]

    def test_refuses_while_the_daemon_owns_the_custody_log(self, layout: Layout,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
        lock = DaemonLock(layout.cfg.state_dir)
        lock.acquire()
        try:
            assert main(["retention", "apply", "--config", str(layout.config)]) == 8
        finally:
            lock.release()
        assert "is running and is the custody log's one writer" in capsys.readouterr().err


class TestHoldCommands:
    def test_add_list_release_with_custody_entries(self, layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
        job = layout.published(b"held by cli")
        cfg = ["--config", str(layout.config)]
        assert main(["hold", "add", "--job", job.id[:10], "--reason", "case 42", "--requested-by", "legal:bob",
                     "--review-date", "2027-01-31", *cfg]) == 0
        out = capsys.readouterr().out
        assert f"#1  job {job.id}" in out and "review 2027-01-31" in out and "recorded in the custody log" in out
        assert main(["hold", "list", *cfg]) == 0
        assert capsys.readouterr().out.startswith("#1  job")
        assert main(["retention", "plan", "--only", "held", "--json", *cfg]) == 0
        assert {json.loads(line)["hold_id"] for line in capsys.readouterr().out.splitlines()} == {1}
        assert main(["hold", "release", "1", "--by", "legal:bob", *cfg]) == 0
        assert main(["hold", "list", *cfg]) == 0
        assert capsys.readouterr().out.endswith("no active holds\n")
        assert custody_events(layout).count("hold_set") == 1
        assert custody_events(layout).count("hold_released") == 1

    def test_a_hold_added_while_the_daemon_runs_is_recorded_by_it_later(
            self, layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
        lock = DaemonLock(layout.cfg.state_dir)
        lock.acquire()
        custody = CustodyLog.open(layout.cfg.custody.directory, layout.cfg.custody.signing_key)  # as the daemon
        try:
            assert main(["hold", "add", "--inbox", "dashcams", "--reason", "audit", "--requested-by", "dpo",
                         "--config", str(layout.config)]) == 0
        finally:
            custody.release()
            lock.release()
        assert "queued for the running daemon" in capsys.readouterr().out
        assert main(["retention", "apply", "--config", str(layout.config)]) == 0
        assert "hold_set" in custody_events(layout)

    @pytest.mark.parametrize(("args", "message"), [
        (["--sha256", "abc"], "64 hex digits"),
        (["--inbox", "nowhere"], "no inbox 'nowhere'"),
        (["--job", "ffffffff"], "no job"),
    ])
    def test_rejects_a_hold_on_something_that_cannot_exist(
            self, layout: Layout, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
        rc = main(["hold", "add", *args, "--reason", "r", "--requested-by", "x", "--config", str(layout.config)])
        assert rc != 0 and message in capsys.readouterr().err

    def test_release_of_an_unknown_hold_is_a_clear_error(self, layout: Layout,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["hold", "release", "7", "--config", str(layout.config)]) == 8
        assert "no hold #7" in capsys.readouterr().err
