"""A daemon that was down across a deadline purges at start-up: the real `redactd run` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from redactd.custody import verify_log
from tests.retention.conftest import REPO, Layout


@pytest.mark.slow
class TestDaemonStartUp:
    def test_purges_what_fell_due_while_it_was_down_and_records_it(self, layout: Layout) -> None:
        layout.write_policy(raw_days=0.00002)  # 1.7 s after publishing
        job = layout.published(b"due during downtime")
        assert job.raw_path is not None and job.finished_at is not None
        time.sleep(max(0.0, job.finished_at + 2.0 - time.time()))  # the daemon is down across the deadline
        env = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "redactd", "--log-json", "--config", str(layout.config), "run"],
            cwd=layout.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while os.path.lexists(job.raw_path) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
        assert proc.returncode == 0, err
        assert not os.path.lexists(job.raw_path), err
        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        applied = next(e for e in lines if e["event"] == "retention_applied")
        assert (applied["trigger"], applied["purged"]) == ("daemon", 1)
        purged = next(e for e in lines if e["event"] == "raw_purged")
        assert purged["job_id"] == job.id and purged["sha256"] == job.raw_sha256
        result = verify_log(layout.cfg.custody.directory, layout.pubkey)
        assert result.ok, result.problem
        assert result.last_checkpoint is not None  # written at shutdown, over the purge entries
