"""`redactd status` and `redactd jobs list|show|retry` on a job store filled through its real API."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from redactd.cli import main
from redactd.jobflow.jobstore import JobState, JobStore

from .conftest import DaemonRun


@pytest.fixture()
def setup(tmp_path: Path):
    run = DaemonRun(tmp_path / "d")
    for d in (run.raw, run.failed, run.state):
        d.mkdir(parents=True, exist_ok=True)
    store = JobStore.open(run.state / "jobs.sqlite3")

    def admit(job_id: str, name: bytes, sha: str) -> Path:
        raw = run.raw / f"{job_id}.mp4"
        raw.write_bytes(sha.encode())
        store.begin_receiving(job_id, "default", name, 64, "metadata-only-by-job", 1, raw)
        store.finish_receiving(job_id, sha)
        return raw

    admit("job-published", b"a.mp4", "a" * 64)
    store.claim_next()
    store.plan_output("job-published", "job-published.mp4", "f" * 64)
    store.mark_published("job-published", run.clean / "job-published.mp4")
    raw = admit("job-failed", b"new\nline \xff.mp4", "b" * 64)
    store.claim_next()
    kept = run.failed / "job-failed" / "raw.mp4"
    kept.parent.mkdir()
    raw.rename(kept)
    (kept.parent / "REASON.txt").write_text("why")
    store.mark_failed("job-failed", "InputError: moov atom not found", kept, count_attempt=True)
    admit("job-running", b"c.mp4", "c" * 64)
    store.claim_next()
    store.set_running("job-running", worker_pid=4242, progress=0.4)
    store.record_rejection("job-refused", "default", b"passwd.mp4", 0, "metadata-only-by-job",
                           "it is a symbolic link", run.failed / "job-refused" / "original.mp4")
    yield run, store
    store.close()


def cli(run: DaemonRun, *args: str) -> int:
    return main(["--config", str(run.config), *args])


class TestStatusCommand:
    def test_shows_counts_jobs_in_flight_recent_errors_and_throughput(self, setup, capsys):
        run, _ = setup
        assert cli(run, "status") == 0
        out = capsys.readouterr().out
        assert "daemon: not running" in out
        assert "published 1" in out and "failed 2" in out and "processing 1" in out
        assert "job-running" in out and " 40%" in out and "pid 4242" in out
        assert "InputError: moov atom not found" in out and "it is a symbolic link" in out
        assert "throughput: 1 finished in the last hour" in out

    def test_json_output_is_machine_readable_and_config_may_follow_the_command(self, setup, capsys):
        run, _ = setup
        assert main(["status", "--json", "--config", str(run.config)]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["counts"]["failed"] == 2 and report["in_flight"][0]["worker_pid"] == 4242


class TestJobsCommand:
    def test_list_filters_by_state_and_prints_json_lines(self, setup, capsys):
        run, _ = setup
        cli(run, "jobs", "list", "--state", "failed", "--json")
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert sorted(r["id"] for r in rows) == ["job-failed", "job-refused"]
        assert next(r for r in rows if r["id"] == "job-failed")["original_name"] == "new\\nline \\xff.mp4"

    def test_show_prints_fields_and_history_with_the_name_escaped(self, setup, capsys):
        run, _ = setup
        assert cli(run, "jobs", "show", "job-f") == 0
        out = capsys.readouterr().out
        assert "new\\nline \\xff.mp4" in out and "processing -> failed" in out

    def test_retry_puts_the_raw_file_back_and_queues_the_job_again(self, setup, capsys):
        run, store = setup
        assert cli(run, "jobs", "retry", "job-failed") == 0
        job = store.get("job-failed")
        assert job.state is JobState.ADMITTED and job.attempts == 0
        assert job.raw_path == run.raw / "job-failed.mp4" and job.raw_path.read_bytes() == b"b" * 64
        assert not (run.failed / "job-failed").exists()
        assert [p.name for p in run.failed.glob("job-failed.before-retry-*/REASON.txt")] == ["REASON.txt"]

    def test_retry_explains_why_a_refused_or_published_job_cannot_be_retried(self, setup, capsys):
        run, _ = setup
        assert cli(run, "jobs", "retry", "job-refused") == 1
        assert "refused at admission" in capsys.readouterr().err
        assert cli(run, "jobs", "retry", "job-published") == 1
        assert "only failed or review jobs can be retried" in capsys.readouterr().err

    def test_cancel_takes_a_waiting_job_out_of_the_queue_and_retry_brings_it_back(self, setup, capsys):
        run, store = setup
        raw = run.raw / "job-waiting.mp4"
        raw.write_bytes(b"d" * 64)
        store.begin_receiving("job-waiting", "default", b"d.mp4", 64, "metadata-only-by-job", 1, raw)
        store.finish_receiving("job-waiting", "d" * 64)
        assert cli(run, "jobs", "cancel", "job-wa", "--by", "olga") == 0
        assert "cancelled by olga" in capsys.readouterr().out
        job = store.get("job-waiting")
        assert job.state is JobState.FAILED and job.last_error == "cancelled by olga before processing"
        assert job.raw_path == run.failed / "job-waiting" / "raw.mp4" and job.raw_path.read_bytes() == b"d" * 64
        assert "cancelled" in (run.failed / "job-waiting" / "REASON.txt").read_text()
        with sqlite3.connect(run.state / "jobs.sqlite3") as conn:
            (fields,) = conn.execute("SELECT fields FROM custody_outbox WHERE event = 'failed' AND fields LIKE "
                                     "'%job-waiting%'").fetchone()
        assert json.loads(fields)["actor"] == "olga"
        assert cli(run, "jobs", "retry", "job-waiting") == 0
        assert store.get("job-waiting").state is JobState.ADMITTED

    def test_cancel_refuses_a_job_a_worker_has_claimed(self, setup, capsys):
        run, store = setup
        assert cli(run, "jobs", "cancel", "job-running") == 1
        assert "only a job waiting in the queue (admitted) can be cancelled" in capsys.readouterr().err
        assert store.get("job-running").state is JobState.PROCESSING


class TestPipes:
    def test_status_into_a_reader_that_leaves_early_ends_without_a_traceback(self, setup):
        run, _ = setup
        proc = subprocess.Popen([sys.executable, "-m", "redactd", "--config", str(run.config), "status"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run.env)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # like `| head -0`: the reader is gone before anything is written
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 141
        assert "Traceback" not in err and "BrokenPipeError" not in err


ISO_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


class TestPapercuts:
    def test_recent_errors_are_newest_failure_first_whatever_the_order_of_arrival(self, setup, capsys):
        run, store = setup
        store.mark_failed("job-running", "StageError: encoder crashed", None)  # arrived before job-refused
        assert cli(run, "status", "--json") == 0
        report = json.loads(capsys.readouterr().out)
        assert [e["id"] for e in report["recent_errors"]] == ["job-running", "job-refused", "job-failed"]

    def test_json_times_are_iso_8601_utc_everywhere(self, setup, capsys):
        run, _ = setup
        cli(run, "status", "--json")
        report = json.loads(capsys.readouterr().out)
        assert all(re.match(ISO_UTC, e["at"]) for e in report["recent_errors"])
        cli(run, "jobs", "list", "--json")
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert all(re.match(ISO_UTC, r["created_at"]) for r in rows)
        cli(run, "jobs", "show", "job-published", "--json")
        doc = json.loads(capsys.readouterr().out)
        assert re.match(ISO_UTC, doc["finished_at"]) and all(re.match(ISO_UTC, t["at"]) for t in doc["history"])

    def test_tries_counts_every_run_and_sizes_read_as_people_read_them(self, setup, capsys):
        run, _ = setup
        cli(run, "jobs", "list", "--json")
        tries = {r["id"]: r["tries"] for r in map(json.loads, capsys.readouterr().out.splitlines())}
        assert tries == {"job-published": 1, "job-failed": 1, "job-running": 1, "job-refused": 0}
        cli(run, "jobs", "list")
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("job-published"))
        assert re.search(r"\s64 B\s+1\s", line)
        cli(run, "jobs", "show", "job-published")
        assert "64 B (64 bytes)" in capsys.readouterr().out
