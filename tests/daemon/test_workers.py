"""Worker processes: results, error classes, crashes, timeouts and stops reach the daemon as Outcomes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from redactd.jobflow.pipeline import JobSpec
from redactd.jobflow.workers import ChildRunner, Ending, Outcome, WorkerPool
from redactd.policy import resolve_policy
from tests.conftest import TEST_POLICIES

from . import processors

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def policy():
    return resolve_policy("metadata-only", TEST_POLICIES)


def run(processor, tmp_path: Path, policy, timeout: float = 30, stop: threading.Event | None = None,
        progress: list[float] | None = None) -> tuple[Outcome, list[int]]:
    pids: list[int] = []
    outcome = ChildRunner(processor).run(
        JobSpec("job1", tmp_path / "raw.mp4", tmp_path, policy), "job1", 1, timeout,
        on_start=pids.append, on_progress=(progress if progress is not None else []).append,
        stop_now=stop or threading.Event())
    return outcome, pids


class TestChildRunner:
    def test_returns_the_result_from_a_separate_process_and_relays_progress(self, tmp_path, policy):
        progress: list[float] = []
        outcome, pids = run(processors.echo, tmp_path, policy, progress=progress)
        assert outcome.ending is Ending.RESULT and outcome.result["job_id"] == "job1"
        assert outcome.result["pid"] == pids[0] != os.getpid()
        assert progress == [0.5]

    def test_the_child_leaves_the_terminals_process_group_and_ignores_ctrl_c(self, tmp_path, policy):
        outcome, _ = run(processors.echo, tmp_path, policy)
        assert outcome.result["pgid"] == outcome.result["pid"] and outcome.result["sigint_ignored"] == 1

    def test_an_input_error_is_refused_and_an_os_error_is_worth_a_retry(self, tmp_path, policy):
        refused, _ = run(processors.refuse, tmp_path, policy)
        assert refused.ending is Ending.REFUSED and refused.message == "InputError: not a video: the file is text"
        transient, _ = run(processors.io_error, tmp_path, policy)
        assert transient.ending is Ending.ERROR and "Input/output error" in transient.message

    def test_a_full_disk_is_its_own_ending_even_wrapped_in_an_input_error(self, tmp_path, policy):
        full, _ = run(processors.disk_full, tmp_path, policy)
        assert full.ending is Ending.NO_SPACE and "No space left on device" in full.message

    def test_a_segfault_in_the_child_is_reported_not_suffered(self, tmp_path, policy):
        outcome, _ = run(processors.segfault, tmp_path, policy)
        assert outcome.ending is Ending.CRASHED and outcome.message == "the worker process died from SIGSEGV"

    def test_a_job_over_its_time_limit_is_killed(self, tmp_path, policy):
        started = time.monotonic()
        outcome, pids = run(processors.sleeper, tmp_path, policy, timeout=1.0)
        assert outcome.ending is Ending.TIMED_OUT and time.monotonic() - started < 10
        with pytest.raises(ProcessLookupError):
            os.kill(pids[0], 0)

    def test_stop_now_kills_the_child_and_says_the_job_was_stopped(self, tmp_path, policy):
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        outcome, pids = run(processors.sleeper, tmp_path, policy, stop=stop)
        assert outcome.ending is Ending.STOPPED
        with pytest.raises(ProcessLookupError):
            os.kill(pids[0], 0)


class TestWorkerPool:
    def test_runs_jobs_on_all_threads_survives_a_failing_one_and_drains(self):
        jobs = list(range(12))
        lock = threading.Lock()
        done: list[int] = []
        wake = threading.Condition()

        def take():
            with lock:
                return jobs.pop() if jobs else None

        def execute(job):
            if job == 5:
                raise RuntimeError("a bug while handling one job")
            time.sleep(0.01)
            with lock:
                done.append(job)

        pool = WorkerPool(3, take, execute, wake)
        pool.start()
        end = time.monotonic() + 10
        while len(done) < 11 and time.monotonic() < end:
            time.sleep(0.02)
        assert pool.alive()
        pool.draining.set()
        with wake:
            wake.notify_all()
        assert pool.join(timeout=5)
        assert sorted(done) == [j for j in range(12) if j != 5]
