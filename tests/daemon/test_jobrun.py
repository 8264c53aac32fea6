"""The job executor: outcomes become published, review, failed or requeued jobs; start-up recovery."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import structlog

from redactd.fsutil import sha256_file
from redactd.jobflow import jobrun
from redactd.jobflow.jobrun import JobExecutor, RunLimits
from redactd.jobflow.jobstore import Job, JobState, JobStore
from redactd.jobflow.publish import Queues
from redactd.jobflow.workers import ChildRunner
from redactd.policy import PolicySet
from tests.conftest import TEST_POLICIES, tmpfs

from . import processors
from .test_storage_faults import fill

REPO = Path(__file__).resolve().parents[2]


class Setup:
    def __init__(self, root: Path, processor, max_attempts: int = 2, state: Path | None = None) -> None:
        self.root = root
        self.store = JobStore.open((state or root) / "jobs.sqlite3")
        self.queues = Queues(root / "clean", root / "review", root / "failed")
        self.queues.ensure()
        (root / "raw").mkdir()
        policies = PolicySet.load_dir(TEST_POLICIES)
        self.executor = JobExecutor(lambda: self.store, ChildRunner(processor), self.queues, root / "scratch",
                                    lambda: policies, lambda: RunLimits(30, max_attempts, 0.0), threading.Event())

    def claimed(self, data: bytes, job_id: str = "job1") -> Job:
        raw = self.root / "raw" / f"{job_id}.mp4"
        raw.write_bytes(data)
        self.store.begin_receiving(job_id, "box", b"name.mp4", len(data), "metadata-only", 1, raw)
        self.store.finish_receiving(job_id, sha256_file(raw))
        job = self.store.claim_next()
        assert job is not None
        return job


class TestJobExecutor:
    def test_publishes_under_the_policys_opaque_name_with_a_sidecar_and_clears_scratch(self, tmp_path, clip_bytes):
        s = Setup(tmp_path, processors.passthrough)
        s.executor.execute(s.claimed(clip_bytes))
        job = s.store.get("job1")
        assert job.state is JobState.PUBLISHED and job.output_path == tmp_path / "clean" / f"{job.output_sha256}.mp4"
        sidecar = json.loads((tmp_path / "clean" / f"{job.output_sha256}.mp4.json").read_text())
        assert sidecar["job_id"] == "job1" and sidecar["output_sha256"] == job.output_sha256
        assert list((tmp_path / "scratch").iterdir()) == []
        assert job.raw_path is not None and job.raw_path.read_bytes() == clip_bytes  # raw never touched

    def test_a_review_verdict_goes_to_the_jobs_review_folder_not_clean_storage(self, tmp_path, clip_bytes):
        s = Setup(tmp_path, processors.doubtful)
        s.executor.execute(s.claimed(clip_bytes))
        job = s.store.get("job1")
        assert job.state is JobState.REVIEW and job.last_error == "second detector found 1 face"
        assert sorted(p.name for p in (tmp_path / "review" / "job1").iterdir()) == [
            "REASON.txt", "output.json", "output.mp4"]
        assert list((tmp_path / "clean").iterdir()) == []

    def test_refused_input_fails_at_once_and_the_raw_file_moves_beside_the_reason(self, tmp_path):
        s = Setup(tmp_path, processors.refuse, max_attempts=3)
        s.executor.execute(s.claimed(b"text"))
        job = s.store.get("job1")
        assert job.state is JobState.FAILED and job.attempts == 1
        assert job.raw_path == tmp_path / "failed" / "job1" / "raw.mp4" and job.raw_path.read_bytes() == b"text"
        assert "not a video: the file is text" in (tmp_path / "failed" / "job1" / "REASON.txt").read_text()

    def test_a_transient_error_is_retried_until_max_attempts_then_failed(self, tmp_path):
        s = Setup(tmp_path, processors.io_error, max_attempts=2)
        s.executor.execute(s.claimed(b"data"))
        job = s.store.get("job1")
        assert job.state is JobState.ADMITTED and job.attempts == 1 and "Input/output error" in (job.last_error or "")
        s.executor.execute(s.store.claim_next())
        job = s.store.get("job1")
        assert job.state is JobState.FAILED and job.attempts == 2
        assert "(gave up after 2 attempts)" in (job.last_error or "")

    def test_a_full_disk_however_wrapped_waits_without_an_attempt_or_a_reason_file(self, tmp_path):
        s = Setup(tmp_path, processors.disk_full, max_attempts=1)
        for attempt in range(3):
            s.executor.execute(s.claimed(b"data") if attempt == 0 else s.store.claim_next(now=2e9))
            job = s.store.get("job1")
            assert job.state is JobState.ADMITTED and job.attempts == 0
            assert (job.last_error or "").startswith("waiting for disk space")
        assert not (tmp_path / "failed" / "job1").exists()
        assert job.raw_path is not None and job.raw_path.read_bytes() == b"data"

    @pytest.mark.timeout(300)
    def test_a_full_state_volume_at_the_end_of_a_job_delays_its_record_and_loses_nothing(
            self, tmp_path, clip_bytes, monkeypatch):
        """The job store cannot be written when the job concludes: the executor waits, says so, and
        records the publish once space returns (it used to leave the job `processing` until the next start)."""
        gate = tmp_path / "gate"  # beside tmp_path / "raw"
        gate.mkdir()
        monkeypatch.setattr(jobrun, "STORE_FULL_RETRY_S", (0.2, 1.0))
        with tmpfs(tmp_path / "state", "size=4m") as state, structlog.testing.capture_logs() as logs:
            s = Setup(tmp_path, processors.gated_beside_raw, state=state)
            job = s.claimed(clip_bytes)
            worker = threading.Thread(target=s.executor.execute, args=(job,))
            worker.start()
            deadline = time.monotonic() + 120
            while not list(gate.glob("*.started")):
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
            filler = fill(state)
            (gate / "open").touch()
            while not any(e["event"] == "job_store_full" for e in logs):
                assert worker.is_alive() and time.monotonic() < deadline, "the executor never met the full store"
                time.sleep(0.05)
            assert s.store.get(job.id).state is JobState.PROCESSING
            filler.unlink()
            worker.join(timeout=120)
            assert not worker.is_alive()
            job = s.store.get(job.id)
            assert job.state is JobState.PUBLISHED and job.attempts == 0, job.last_error
            assert [t.to_state for t in s.store.history(job.id)].count(JobState.PUBLISHED) == 1
            s.store.close()
        assert job.output_path is not None and sha256_file(job.output_path) == job.output_sha256
        full = [e for e in logs if e["event"] == "job_store_full"]
        assert full[0]["job_id"] == job.id and "full" in full[0]["error"]

    def test_recovery_records_a_publish_that_completed_before_a_crash(self, tmp_path):
        s = Setup(tmp_path, processors.passthrough)
        job = s.claimed(b"data")
        (tmp_path / "clean" / "out.mp4").write_bytes(b"clean")
        s.store.plan_output(job.id, "out.mp4", sha256_file(tmp_path / "clean" / "out.mp4"))
        s.executor.recover()
        assert s.store.get(job.id).state is JobState.PUBLISHED
        assert [t.to_state for t in s.store.history(job.id)].count(JobState.PUBLISHED) == 1

    def test_recovery_runs_an_interrupted_job_again_without_counting_an_attempt(self, tmp_path):
        s = Setup(tmp_path, processors.passthrough)
        job = s.claimed(b"data")
        s.store.plan_output(job.id, "never-arrived.mp4", "0" * 64)  # crashed before the rename
        (tmp_path / "scratch" / job.id).mkdir(parents=True)
        s.executor.recover()
        again = s.store.get(job.id)
        assert again.state is JobState.ADMITTED and again.attempts == 0
        assert list((tmp_path / "scratch").iterdir()) == []

