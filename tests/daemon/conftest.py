"""Fixtures for the daemon tests: tiny real clips, a daemon config on temp dirs, the daemon as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from redactd import log
from redactd.custody.keys import init_key
from redactd.jobflow.jobstore import Job, JobState, JobStore
from tests.conftest import TEST_POLICIES

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHONPATH = os.pathsep.join([str(REPO / "daemon"), str(HERE)])


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    # A CLI test configures logging onto capsys's stream, which closes after it; start afresh.
    log.configure(level="warning", json=True)


def make_clip(path: Path, seconds: float = 1.0, size: str = "160x120", faststart: bool = True) -> Path:
    """A tiny real H.264 MP4. With ``faststart`` the index (moov) comes first, so bytes appended
    after it are a separate top-level box; without, it comes last, as a camera writes it."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", *(["-movflags", "+faststart"] if faststart else []), str(path)],
        check=True, timeout=60, capture_output=True,
    )
    return path


def variant(clip: bytes, n: int) -> bytes:
    """The clip plus a valid trailing MP4 ``free`` box holding ``n``: same video, different SHA-256."""
    payload = f"redactd-test-{n}".encode()
    return clip + struct.pack(">I", 8 + len(payload)) + b"free" + payload


@pytest.fixture(scope="session")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4").read_bytes()


@pytest.fixture(scope="session")
def camera_clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Index at the end: cut short (a copy interrupted), it has no index at all."""
    return make_clip(tmp_path_factory.mktemp("clip") / "camera.mp4", faststart=False).read_bytes()


def drop(inbox: Path, name: str | bytes, data: bytes) -> Path:
    """Write a file into the inbox the way a careful copier does: temp name, then rename."""
    final = Path(os.fsdecode(os.path.join(os.fsencode(inbox), os.fsencode(name))))
    tmp = inbox / f".{os.getpid()}-{time.monotonic_ns()}.part"
    tmp.write_bytes(data)
    os.rename(tmp, final)
    return final


class DaemonRun:
    """A daemon on temp directories, started as a real subprocess; helpers to wait on its job store."""

    def __init__(self, root: Path, settle: float = 1.0, workers: int = 2, naming: str = "job_id",
                 max_attempts: int = 3, backoff: float = 0.3, extra_limits: dict[str, Any] | None = None) -> None:
        self.root = root
        self.inbox = root / "inbox"
        self.var = root / "var"
        self.clean, self.review, self.failed = self.var / "clean", self.var / "review", self.var / "failed"
        self.raw, self.state = self.var / "raw", self.var / "state"
        self.policies = root / "policies"
        for d in (self.inbox, self.policies, self.clean):
            d.mkdir(parents=True, exist_ok=True)
        policy = yaml.safe_load((TEST_POLICIES / "metadata-only.yaml").read_text())
        (self.policies / "metadata-only.yaml").write_text(yaml.safe_dump(policy))
        # Remuxing one test clip gives the same output bytes whatever trailing box the input had,
        # so tests that drop many variants name outputs by job id instead of content hash.
        by_job = {**policy, "id": "metadata-only-by-job", "output": {**policy["output"], "naming": "job_id"}}
        (self.policies / "metadata-only-by-job.yaml").write_text(yaml.safe_dump(by_job))
        self.config = root / "redactd.yaml"
        self.settings = {
            "version": 1,
            "inboxes": [{"name": "default", "path": str(self.inbox),
                         "policy": "metadata-only-by-job" if naming == "job_id" else "metadata-only"}],
            "raw_store": str(self.raw), "clean_dir": str(self.clean), "review_dir": str(self.review),
            "failed_dir": str(self.failed), "state_dir": str(self.state), "policies_dir": str(self.policies),
            "custody": {"directory": str(self.state / "custody"), "signing_key": str(root / "custody.key")},
            "workers": workers,
            "limits": {"settle_seconds": settle, "rescan_seconds": 5, "max_attempts": max_attempts,
                       "retry_backoff_seconds": backoff, "max_file_size": "8 MiB", **(extra_limits or {})},
        }
        self.write_config()
        self.key = root / "custody.key"
        init_key(self.key)  # the daemon never runs without custody
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "daemon.log"
        self.env = {**os.environ, "PYTHONPATH": PYTHONPATH}

    def write_config(self) -> None:
        self.config.write_text(yaml.safe_dump(self.settings))

    def start(self, processor: str | None = None, env: dict[str, str] | None = None) -> DaemonRun:
        """``processor``: a test processor from ``processors.py`` instead of the real pipeline."""
        if processor is None:
            argv = [sys.executable, "-m", "redactd", "--config", str(self.config), "--log-json", "run"]
        else:
            argv = [sys.executable, str(HERE / "launch.py"), str(self.config), processor]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its whole life
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env={**self.env, **(env or {})},
                                     cwd=self.root)
        log.close()
        self.wait_for(lambda: (self.state / "jobs.sqlite3").exists() and "daemon_started" in self.log_text(),
                      timeout=30, what="daemon start")
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{") and f'"event": "{name}"' in line:
                out.append(json.loads(line))
        return out

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        return rc

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    # -------------------------------------------------------------- job store

    def jobs(self) -> list[Job]:
        try:
            store = JobStore.open(self.state / "jobs.sqlite3", readonly=True)
        except Exception:  # noqa: BLE001 - not created yet
            return []
        try:
            return store.jobs()
        except sqlite3.OperationalError:
            return []
        finally:
            store.close()

    def history(self, job_id: str) -> list[Any]:
        store = JobStore.open(self.state / "jobs.sqlite3", readonly=True)
        try:
            return store.history(job_id)
        finally:
            store.close()

    def in_state(self, *states: JobState) -> list[Job]:
        return [j for j in self.jobs() if j.state in states]

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = predicate()
            if value:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) waiting for {what}:\n"
                                     + self.log_text()[-4000:])
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{self.log_text()[-4000:]}")

    def wait_receipt(self, path: Path, status: str, timeout: float = 30) -> str:
        """The receipt at ``path`` once it says ``status``: it is rewritten just after its job's
        state is committed, so a job can read as finished a moment before its receipt says so."""
        return self.wait_for(lambda: path.is_file() and f"status:  {status}" in (text := path.read_text()) and text,
                             timeout, f"{path.name} saying {status}")

    def wait_finished(self, count: int, timeout: float) -> list[Job]:
        done = (JobState.PUBLISHED, JobState.REVIEW, JobState.FAILED, JobState.DUPLICATE)
        return self.wait_for(lambda: (jobs := self.in_state(*done)) and len(jobs) >= count and jobs,
                             timeout, f"{count} finished jobs")

    def wait_all_finished(self, count: int, stalled_after: float) -> list[Job]:
        """Wait for ``count`` finished jobs for as long as jobs keep finishing: fail only when none
        has finished for ``stalled_after`` seconds (a hang), never because a loaded machine is slow."""
        done = (JobState.PUBLISHED, JobState.REVIEW, JobState.FAILED, JobState.DUPLICATE)
        seen = -1
        while True:
            jobs = self.in_state(*done)
            if len(jobs) >= count:
                return jobs
            if len(jobs) != seen:
                seen, last_change = len(jobs), time.monotonic()
            elif time.monotonic() - last_change > stalled_after:
                raise AssertionError(f"no job finished for {stalled_after:g} s ({seen} of {count} finished):\n"
                                     + self.log_text()[-4000:])
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) with {seen} of {count} finished:\n"
                                     + self.log_text()[-4000:])
            time.sleep(0.2)


@pytest.fixture()
def daemon_run(tmp_path: Path) -> Iterator[Callable[..., DaemonRun]]:
    made: list[DaemonRun] = []

    def make(**kwargs: Any) -> DaemonRun:
        run = DaemonRun(tmp_path / f"d{len(made)}", **kwargs)
        made.append(run)
        return run

    yield make
    for run in made:
        if run.alive():
            assert run.proc is not None
            run.proc.kill()
            run.proc.wait(10)
