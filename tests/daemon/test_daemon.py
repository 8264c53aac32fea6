"""The real daemon as a subprocess on temp directories: watch, admit, process, publish, recover."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redactd.jobflow.jobstore import JobState

from .conftest import DaemonRun, drop, variant

pytestmark = pytest.mark.timeout(180)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def published_once(run: DaemonRun, count: int) -> None:
    """Every job published, each exactly once, and clean storage holds exactly those outputs."""
    jobs = run.jobs()
    assert len(jobs) == count
    assert {j.state for j in jobs} == {JobState.PUBLISHED}
    for job in jobs:
        assert [t.to_state for t in run.history(job.id)].count(JobState.PUBLISHED) == 1
    names = sorted(p.name for p in run.clean.iterdir())
    assert names == sorted([f"{j.id}.mp4" for j in jobs] + [f"{j.id}.mp4.json" for j in jobs])


def start_gated_job(daemon_run, clip_bytes: bytes, gate: Path) -> tuple[DaemonRun, int]:
    """A daemon whose one job waits at ``gate`` until ``gate/open`` exists; returns the worker's pid."""
    gate.mkdir()
    run = daemon_run().start(processor="gated", env={"REDACTD_TEST_GATE": str(gate)})
    drop(run.inbox, "clip.mp4", clip_bytes)
    started = run.wait_for(lambda: list(gate.glob("*.started")), timeout=30, what="the job to start")
    return run, int(started[0].name.split(".")[1])


class TestPublishing:
    def test_publishes_a_dropped_clip_under_its_content_hash_with_a_sidecar(self, daemon_run, clip_bytes):
        run = daemon_run(naming="sha256").start()
        drop(run.inbox, "holiday-at-grandmas.mp4", clip_bytes)
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.PUBLISHED, job.last_error
        out = run.clean / f"{job.output_sha256}.mp4"
        assert sha(out.read_bytes()) == job.output_sha256
        sidecar = json.loads((run.clean / f"{out.name}.json").read_text())
        assert sidecar["job_id"] == job.id and sidecar["policy"]["id"] == "metadata-only"
        assert "grandma" not in json.dumps(sidecar) + " ".join(os.listdir(run.clean))
        assert job.original_name == b"holiday-at-grandmas.mp4" and job.raw_sha256 == sha(clip_bytes)
        assert stat.S_IMODE(os.stat(job.raw_path).st_mode) == 0o600
        assert list(run.inbox.iterdir()) == []
        assert run.stop() == 0

    def test_content_already_known_is_recorded_as_a_duplicate_and_not_processed_again(self, daemon_run, clip_bytes):
        run = daemon_run().start()
        drop(run.inbox, "first.mp4", clip_bytes)
        (first,) = run.wait_finished(1, timeout=60)
        drop(run.inbox, "second copy.mp4", clip_bytes)
        jobs = run.wait_finished(2, timeout=60)
        dup = next(j for j in jobs if j.id != first.id)
        assert dup.state is JobState.DUPLICATE and dup.duplicate_of == first.id
        assert dup.raw_path is not None and dup.raw_path.is_file()  # kept, for retention to decide
        assert len(list(run.clean.glob("*.mp4"))) == 1

    def test_files_that_arrived_while_the_daemon_was_down_are_found_at_start_up(self, daemon_run, clip_bytes):
        run = daemon_run()
        (run.inbox / "sub").mkdir()
        for i, name in enumerate(["a.mp4", "sub/b.mp4", "c.MOV"]):
            (run.inbox / name).write_bytes(variant(clip_bytes, i))
        run.start()
        run.wait_finished(3, timeout=60)
        published_once(run, 3)
        assert sorted(j.original_name for j in run.jobs()) == [b"a.mp4", b"c.MOV", b"sub/b.mp4"]


class TestAdmission:
    def test_a_file_written_under_a_temp_name_then_renamed_is_admitted_once(self, daemon_run, clip_bytes):
        run = daemon_run().start()
        temps = {".clip-a.mp4.AbC123": "a.mp4", "clip-b.mp4.part": "b.mp4", "~syncthing~clip-c.mp4.tmp": "c.mp4"}
        for i, tmp_name in enumerate(temps):
            (run.inbox / tmp_name).write_bytes(variant(clip_bytes, i))
        (run.inbox / ".DS_Store").write_bytes(b"junk")
        (run.inbox / "Thumbs.db").write_bytes(b"junk")
        time.sleep(2.0)  # twice the settle window: a temp name is never taken, however still it is
        assert run.jobs() == []
        for tmp_name, final in temps.items():
            os.rename(run.inbox / tmp_name, run.inbox / final)
        run.wait_finished(3, timeout=60)
        time.sleep(1.5)  # a rescan or late event must not admit anything a second time
        published_once(run, 3)
        assert sorted(j.original_name for j in run.jobs()) == [b"a.mp4", b"b.mp4", b"c.mp4"]
        assert sorted(p.name for p in run.inbox.iterdir()) == [".DS_Store", "Thumbs.db"]

    @pytest.mark.slow
    def test_a_file_written_in_chunks_over_20_s_is_not_admitted_before_its_last_byte(self, daemon_run, clip_bytes):
        run = daemon_run(settle=3.0).start()
        target = run.inbox / "slow-copy.mp4"
        chunks = 21
        step = -(-len(clip_bytes) // chunks)
        # Like Windows Explorer over SMB: the final size is set first, so only mtime shows progress.
        with open(target, "wb") as fh:
            fh.truncate(len(clip_bytes))
        with open(target, "r+b") as fh:
            for i in range(chunks):
                fh.seek(i * step)
                fh.write(clip_bytes[i * step:(i + 1) * step])
                fh.flush()
                last_write = time.time()
                assert run.jobs() == [], f"admitted after chunk {i} of {chunks}"
                assert target.exists()
                if i < chunks - 1:
                    time.sleep(1.0)
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.PUBLISHED, job.last_error
        assert job.admitted_at is not None and job.admitted_at >= last_write + 2.5
        assert job.raw_sha256 == sha(clip_bytes)

    @pytest.mark.slow
    # It takes ~70 s on a quiet 2-core machine and over 15 min on a heavily loaded one: it fails on a
    # stall (no job finished for 180 s), and the timeout is only a backstop for a hang in the test.
    @pytest.mark.timeout(3600)
    def test_a_burst_of_200_files_is_published_each_exactly_once(self, daemon_run, clip_bytes):
        # The real metadata-only pipeline on every file (about 0.3 s of CPU each).
        run = daemon_run().start()
        inputs = {sha(variant(clip_bytes, i)): variant(clip_bytes, i) for i in range(200)}
        for i, data in enumerate(inputs.values()):
            (run.inbox / f"burst-{i:03d}.mp4").write_bytes(data)
        run.wait_all_finished(200, stalled_after=180)
        published_once(run, 200)
        assert {j.raw_sha256 for j in run.jobs()} == set(inputs)
        assert run.stop() == 0


class TestCrashRecovery:
    @pytest.mark.slow
    def test_kill_9_during_processing_then_restart_publishes_every_file_exactly_once(self, daemon_run, clip_bytes):
        run = daemon_run().start()
        count = 14
        for i in range(count):
            (run.inbox / f"clip-{i:02d}.mp4").write_bytes(variant(clip_bytes, i))
        run.wait_for(lambda: len(run.in_state(JobState.PUBLISHED)) >= 2 and run.in_state(JobState.PROCESSING),
                     timeout=90, what="a job in processing after two published")
        run.kill9()
        assert run.in_state(JobState.PROCESSING), "the kill must land while a job is processing"
        run.start()
        run.wait_for(lambda: len(run.in_state(JobState.PUBLISHED)) == count, timeout=120, what="all published")
        published_once(run, count)
        assert {j.raw_sha256 for j in run.jobs()} == {sha(variant(clip_bytes, i)) for i in range(count)}
        assert not [p for p in run.clean.iterdir() if p.name.startswith(".")]
        assert run.events("job_resumed")

    def test_a_worker_killed_mid_job_is_retried_and_published(self, daemon_run, clip_bytes, tmp_path):
        gate = tmp_path / "gate"
        run, worker_pid = start_gated_job(daemon_run, clip_bytes, gate)
        assert run.wait_for(lambda: run.in_state(JobState.PROCESSING), 10, "processing")[0].worker_pid == worker_pid
        os.kill(worker_pid, signal.SIGKILL)
        run.wait_for(lambda: run.in_state(JobState.ADMITTED), timeout=30, what="the job to be requeued")
        (gate / "open").touch()
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.PUBLISHED and job.attempts == 1
        assert any("SIGKILL" in (t.detail or "") for t in run.history(job.id))
        assert run.alive()

    def test_a_file_that_keeps_crashing_its_worker_goes_to_failed_and_the_daemon_keeps_running(
            self, daemon_run, clip_bytes):
        run = daemon_run(max_attempts=2).start(processor="segfault")
        drop(run.inbox, "cursed.mp4", clip_bytes)
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.FAILED and job.attempts == 2
        assert "SIGSEGV" in (job.last_error or "") and "gave up after 2 attempts" in (job.last_error or "")
        kept = run.failed / job.id / "raw.mp4"
        assert kept.read_bytes() == clip_bytes and job.raw_path == kept
        assert "SIGSEGV" in (run.failed / job.id / "REASON.txt").read_text()
        assert run.alive()


class TestHostileInput:
    def test_each_hostile_input_ends_in_failed_with_a_clear_reason_and_the_daemon_keeps_running(
            self, daemon_run, clip_bytes, camera_clip_bytes, tmp_path):
        run = daemon_run().start()
        cut = camera_clip_bytes[: len(camera_clip_bytes) // 2]  # an interrupted copy: no index yet
        outside = tmp_path / "outside.mp4"
        outside.write_bytes(clip_bytes)
        passwd_before = Path("/etc/passwd").read_bytes()
        long_name = "x" * 251 + ".mp4"
        cases = {
            "newline": ("new\nline.mp4", clip_bytes, "control characters"),
            "bad utf-8": (b"bad-\xff\xfe.mp4", clip_bytes, "not valid UTF-8"),
            "255 bytes": (long_name, cut, "InputError"),
            "leading dash": ("-rf.mp4", b"not a video at all\n" * 10, "InputError"),
            "truncated": ("truncated.mp4", cut[:-1000], "InputError"),
            "text as mp4": ("notes.mp4", b"meeting notes\n" * 20, "InputError"),
            "empty": ("empty.mp4", b"", "empty"),
        }
        for name, data, _ in cases.values():
            drop(run.inbox, name, data)
        os.symlink("/etc/passwd", run.inbox / "passwd.mp4")
        os.link(outside, run.inbox / "linked.mp4")
        os.mkfifo(run.inbox / "pipe.mp4")
        with open(run.inbox / "huge.mp4", "wb") as fh:
            fh.truncate(9 * 1024 * 1024)  # over the test config's 8 MiB limit
        expected = {os.fsencode(n): why for n, _, why in cases.values()}
        expected |= {b"passwd.mp4": "symbolic link", b"linked.mp4": "hard-linked", b"pipe.mp4": "FIFO",
                     b"huge.mp4": "over the configured limit"}
        jobs = run.wait_finished(len(expected), timeout=90)
        for job in jobs:
            assert job.state is JobState.FAILED, job.name
            assert expected[job.original_name] in (job.last_error or ""), (job.name, job.last_error)
            reason = (run.failed / job.id / "REASON.txt").read_text()
            assert expected[job.original_name] in reason and job.name in reason
        assert Path("/etc/passwd").read_bytes() == passwd_before
        assert outside.read_bytes() == clip_bytes  # the other name of the hard link is untouched
        assert list(run.raw.iterdir()) == []  # only failed jobs: their raw files moved to failed/
        assert list(run.inbox.iterdir()) == []
        drop(run.inbox, "fine.mp4", clip_bytes)
        run.wait_for(lambda: run.in_state(JobState.PUBLISHED), timeout=60, what="a good file after hostile ones")
        assert run.stop() == 0

    def test_a_good_video_with_a_leading_dash_or_a_255_byte_name_is_published(self, daemon_run, clip_bytes):
        run = daemon_run().start()
        names = ["-rf --help.mp4", "y" * 251 + ".mp4"]
        for i, name in enumerate(names):
            drop(run.inbox, name, variant(clip_bytes, i))
        run.wait_finished(2, timeout=60)
        published_once(run, 2)


class TestLifecycle:
    def test_first_sigterm_finishes_the_running_job_then_exits(self, daemon_run, clip_bytes, tmp_path):
        gate = tmp_path / "gate"
        run, _ = start_gated_job(daemon_run, clip_bytes, gate)
        assert run.proc is not None
        run.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert run.alive(), "the daemon must wait for its running job"
        (gate / "open").touch()
        assert run.proc.wait(30) == 0
        assert [j.state for j in run.jobs()] == [JobState.PUBLISHED]

    def test_second_sigterm_stops_now_and_the_job_resumes_at_the_next_start(self, daemon_run, clip_bytes, tmp_path):
        gate = tmp_path / "gate"
        run, worker_pid = start_gated_job(daemon_run, clip_bytes, gate)
        assert run.proc is not None
        run.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(20) == 0
        assert [j.state for j in run.jobs()] == [JobState.PROCESSING]
        time.sleep(0.2)
        with pytest.raises(ProcessLookupError):
            os.kill(worker_pid, 0)
        (gate / "open").touch()
        run.start(processor="gated", env={"REDACTD_TEST_GATE": str(gate)})
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.PUBLISHED and job.attempts == 0

    def test_sighup_reloads_the_config_and_a_broken_one_is_refused(self, daemon_run, clip_bytes, tmp_path):
        run = daemon_run().start()
        second = tmp_path / "second-inbox"
        second.mkdir()
        run.settings["inboxes"].append({"name": "second", "path": str(second), "policy": "metadata-only"})
        run.write_config()
        assert run.proc is not None
        run.proc.send_signal(signal.SIGHUP)
        run.wait_for(lambda: run.events("config_reloaded"), timeout=10, what="the reload")
        drop(second, "clip.mp4", clip_bytes)
        (job,) = run.wait_finished(1, timeout=60)
        assert job.inbox == "second" and job.policy_id == "metadata-only" and job.state is JobState.PUBLISHED
        run.config.write_text("version: 1\ninboxes: []\n")
        run.proc.send_signal(signal.SIGHUP)
        run.wait_for(lambda: run.events("config_reload_failed"), timeout=10, what="the refused reload")
        drop(run.inbox, "again.mp4", variant(clip_bytes, 7))
        run.wait_finished(2, timeout=60)
        assert run.alive()

    def test_tells_systemd_ready_status_and_watchdog_on_notify_socket(self, daemon_run, tmp_path):
        address = str(tmp_path / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(address)
        sock.settimeout(10)
        try:
            run = daemon_run().start(env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
            messages: list[str] = []
            end = time.monotonic() + 10
            while time.monotonic() < end and messages.count("WATCHDOG=1") < 3:
                messages.append(sock.recv(4096).decode())
            run.stop()
            with pytest.raises(TimeoutError):
                sock.settimeout(0.2)
                while True:
                    messages.append(sock.recv(4096).decode())
        finally:
            sock.close()
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=0 running, 0 waiting" in ready and f"MAINPID={run.proc.pid}" in ready
        assert messages.count("WATCHDOG=1") >= 3
        assert any("STOPPING=1" in m for m in messages)

    def test_a_second_daemon_on_the_same_state_directory_refuses_to_start(self, daemon_run):
        run = daemon_run().start()
        other = subprocess.run([sys.executable, "-m", "redactd", "run", "--config", str(run.config)],
                               check=False, capture_output=True, text=True, timeout=60, env=run.env)
        assert other.returncode == 1
        assert f"another redactd is already running on {run.state} (pid {run.proc.pid})" in other.stderr
