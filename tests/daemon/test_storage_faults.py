"""Storage faults against the real daemon: full disks that heal by themselves, raw bytes no writer can change."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from redactd.jobflow.jobstore import JobState
from tests.conftest import tmpfs

from .conftest import DaemonRun, drop, variant

pytestmark = pytest.mark.timeout(240)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fill(volume: Path) -> Path:
    """Write a filler file until the volume has no byte left (ENOSPC), as another program would."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for block in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def status(run: DaemonRun) -> dict:
    out = subprocess.run([sys.executable, "-m", "redactd", "--config", str(run.config), "status", "--json"],
                         check=True, capture_output=True, text=True, timeout=60, env=run.env)
    return json.loads(out.stdout)


def status_text(run: DaemonRun) -> str:
    return subprocess.run([sys.executable, "-m", "redactd", "--config", str(run.config), "status"],
                          check=True, capture_output=True, text=True, timeout=60, env=run.env).stdout


def nothing_blamed(run: DaemonRun) -> None:
    """No job failed, no attempt was counted, no REASON.txt says anything about the files."""
    assert not run.in_state(JobState.FAILED)
    assert all(j.attempts == 0 for j in run.jobs())
    assert not run.failed.exists() or list(run.failed.iterdir()) == []


class TestFullDisks:
    def test_scratch_filling_up_under_a_running_job_makes_it_wait_and_it_publishes_when_space_returns(
            self, daemon_run, clip_bytes, tmp_path):
        gate = tmp_path / "gate"
        gate.mkdir()
        run = daemon_run(extra_limits={"min_free_space": "64 KiB"})
        with tmpfs(run.state / "scratch", "size=2m") as scratch:
            run.start(processor="gated", env={"REDACTD_TEST_GATE": str(gate)})
            drop(run.inbox, "clip.mp4", clip_bytes)
            run.wait_for(lambda: list(gate.glob("*.started")), timeout=30, what="the job to start")
            filler = fill(scratch)  # the disk fills while the job runs: the real remux hits ENOSPC
            (gate / "open").touch()
            run.wait_for(lambda: run.events("job_waiting_for_space"), timeout=60, what="the job to wait")
            (job,) = run.jobs()
            assert job.state in (JobState.ADMITTED, JobState.PROCESSING)
            assert "waiting for disk space" in (job.last_error or "")
            assert "damaged" not in (job.last_error or "")
            nothing_blamed(run)
            report = status(run)
            assert report["space_short"] == ["scratch"] and report["waiting_for_space"] == [job.id]
            assert "scratch is short" in status_text(run)
            # The requeued job comes due after its back-off; only then does the daemon look at the
            # volume and log it short. Free the space after that, so its return is seen too.
            run.wait_for(lambda: run.events("space_short"), timeout=60, what="the daemon to see scratch short")
            filler.unlink()  # space returns; nobody types a command
            (job,) = run.wait_finished(1, timeout=90)
            assert job.state is JobState.PUBLISHED and job.attempts == 0, job.last_error
            assert run.events("space_returned")
            assert status(run)["space_short"] == []
            nothing_blamed(run)
            assert run.stop() == 0

    def test_clean_storage_full_pauses_admission_says_so_and_every_file_publishes_once_when_freed(
            self, daemon_run, clip_bytes, tmp_path):
        gate = tmp_path / "gate"
        gate.mkdir()
        run = daemon_run(extra_limits={"min_free_space": "64 KiB"})
        with tmpfs(run.clean, "size=2m"):
            run.start(processor="gated", env={"REDACTD_TEST_GATE": str(gate)})
            drop(run.inbox, "first.mp4", variant(clip_bytes, 0))
            run.wait_for(lambda: list(gate.glob("*.started")), timeout=30, what="the first job to start")
            filler = fill(run.clean)
            for i in range(1, 4):
                drop(run.inbox, f"later-{i}.mp4", variant(clip_bytes, i))
            (gate / "open").touch()  # the first job's publish hits ENOSPC
            run.wait_for(lambda: run.events("job_waiting_for_space"), timeout=60, what="the publish to wait")
            run.wait_for(lambda: run.events("space_short"), timeout=30, what="the space check")
            report = status(run)
            assert "clean" in report["space_short"]
            assert "clean is short" in status_text(run)
            assert len(run.jobs()) == 1, "admission must pause while clean storage is short"
            assert len(list(run.inbox.iterdir())) == 3
            nothing_blamed(run)
            filler.unlink()
            jobs = run.wait_for(lambda: len(run.in_state(JobState.PUBLISHED)) == 4 and run.jobs(), timeout=120,
                                what="all four published")
            for job in jobs:
                assert [t.to_state for t in run.history(job.id)].count(JobState.PUBLISHED) == 1
                assert job.attempts == 0
            assert sorted(p.name for p in run.clean.iterdir()) == sorted(
                [f"{j.id}.mp4" for j in jobs] + [f"{j.id}.mp4.json" for j in jobs])
            assert list(run.inbox.iterdir()) == []
            nothing_blamed(run)
            assert run.stop() == 0


class TestRawBytesCannotChange:
    def test_a_writer_that_keeps_its_descriptor_and_rewrites_after_admission_changes_nothing_processed(
            self, daemon_run, clip_bytes, tmp_path):
        gate = tmp_path / "gate"
        gate.mkdir()
        run = daemon_run().start(processor="gated", env={"REDACTD_TEST_GATE": str(gate)})
        other = variant(clip_bytes, 99)
        with open(run.inbox / "clip.mp4", "wb") as writer:
            writer.write(clip_bytes)
            writer.flush()
            os.fsync(writer.fileno())
            run.wait_for(lambda: list(gate.glob("*.started")), timeout=30, what="the job to start")
            (job,) = run.jobs()
            assert job.raw_sha256 == sha(clip_bytes)
            writer.seek(0)  # the same descriptor, after admission: a new video over the old one
            writer.write(other)
            writer.flush()
            os.fsync(writer.fileno())
        assert job.raw_path is not None and job.raw_path.read_bytes() == clip_bytes
        assert os.stat(job.raw_path).st_mode & 0o777 == 0o600
        (gate / "open").touch()
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.PUBLISHED, job.last_error
        # What the job store (and so custody) recorded is what the pipeline read.
        assert job.raw_sha256 == sha(clip_bytes) and job.raw_path.read_bytes() == clip_bytes
        assert run.stop() == 0
