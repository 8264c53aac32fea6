"""Executor `dramatiq`: jobs run by `redactd worker` processes through a real Redis, the daemon the one writer."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from redactd.custody import verify_log
from redactd.custody.keys import load_public_key, public_path
from redactd.custody.segments import load_entries
from redactd.jobflow import broker as brokers
from redactd.jobflow.jobstore import JobState
from redactd.jobflow.signing import load_credentials, make_credentials, seal
from tests.conftest import TEST_POLICIES
from tests.daemon.conftest import drop, variant
from tests.daemon.processors import GATE_ENV
from tests.jobflow.conftest import HERE, PYTHONPATH, REPO, Cluster, wait_until

pytestmark = pytest.mark.slow


def published_once(run, jobs) -> None:  # type: ignore[no-untyped-def]
    """Every job published, each output in clean storage exactly once, nothing else there."""
    assert all(j.state is JobState.PUBLISHED for j in jobs), [(j.state, j.last_error) for j in jobs]
    names = sorted(p.name for p in run.clean.iterdir() if not p.name.endswith(".json"))
    assert names == sorted(j.output_name for j in jobs)
    def published_entries() -> Counter[str]:
        return Counter(e["job_id"] for e in load_entries(run.state / "custody") if e["event"] == "published")

    # A transition commits first and its custody entry is appended just after (the outbox): wait
    # for every job's entry, then check that none came twice.
    wait_until(lambda: all(published_entries()[j.id] for j in jobs), timeout=60,
               what="a custody entry for every publish")
    events = published_entries()
    assert all(events[j.id] == 1 for j in jobs), events


def inject_result(cluster: Cluster, key: bytes, body: dict) -> None:  # type: ignore[type-arg]
    """Put a message on the results queue as any client of the broker can."""
    from redactd.config import BrokerSettings
    from redactd.jobflow.signing import Credentials

    settings = BrokerSettings(broker_url=cluster.redis.url, credentials_file=cluster.creds)
    broker = brokers.connect(settings, Credentials(key))
    try:
        broker.enqueue(brokers.message(settings.results_queue, brokers.RESULT_ACTOR, seal(key, body)))
    finally:
        broker.close()


class TestTwoWorkers:
    def test_two_workers_process_a_batch_each_file_published_once_and_custody_verifies(self, cluster, clip_bytes):
        run = cluster.make_daemon(workers=4)
        # Worker b mounts the raw store and the scratch space elsewhere, as an NFS client would.
        mnt = cluster.root / "mnt"
        mnt.mkdir()
        run.raw.mkdir(parents=True, exist_ok=True)
        cluster.scratch.mkdir(parents=True, exist_ok=True)
        (mnt / "raw").symlink_to(run.raw)
        (mnt / "scratch").symlink_to(cluster.scratch)
        a = cluster.worker("a").start()
        b = cluster.worker("b", path_map=[{"daemon": str(run.raw), "worker": str(mnt / "raw")},
                                          {"daemon": str(cluster.scratch), "worker": str(mnt / "scratch")}]).start()
        run.start()
        for n in range(8):
            drop(run.inbox, f"clip {n}.mp4", variant(clip_bytes, n))
        jobs = run.wait_finished(8, timeout=240)
        published_once(run, jobs)
        answered = {w.name: len(w.events("job_answered")) for w in (a, b)}
        assert sum(answered.values()) == 8 and all(answered.values()), answered
        # Worker b saw only its own mount points.
        assert all(str(mnt) in e["raw"] for e in b.events("job_paths")), b.events("job_paths")
        assert run.stop() == 0
        result = verify_log(run.state / "custody", load_public_key(public_path(run.root / "custody.key")))
        assert result.ok, result.problem
        # Nothing of a job's scratch is left on the shared storage once it is published.
        assert list(cluster.scratch.iterdir()) == []


class TestWorkerDeath:
    def test_a_job_whose_worker_is_killed_mid_job_is_redone_by_the_other_and_published_once(
            self, cluster, clip_bytes, tmp_path):
        gate = tmp_path / "gate"
        gate.mkdir()
        run = cluster.make_daemon(workers=1)
        a = cluster.worker("a").start("gated", env={GATE_ENV: str(gate)})
        run.start()
        drop(run.inbox, "clip.mp4", clip_bytes)
        wait_until(lambda: list(gate.glob("*.started")), 120, "worker a to start the job", a.log_text)
        b = cluster.worker("b").start("gated", env={GATE_ENV: str(gate)})
        a.kill9()
        (gate / "open").touch()
        (job,) = run.wait_finished(1, timeout=180)
        published_once(run, [job])
        assert b.events("job_answered"), b.log_text()[-3000:]
        assert job.attempts == 0  # a worker's death is the broker's to handle: no attempt was spent


class TestHardenedRedis:
    def test_a_job_runs_through_the_documented_redis_conf_whose_user_cannot_wipe_the_queue(
            self, hardened_cluster, clip_bytes):
        import redis

        run = hardened_cluster.make_daemon(workers=1)
        hardened_cluster.worker("a").start()
        run.start()
        drop(run.inbox, "clip.mp4", clip_bytes)
        (job,) = run.wait_finished(1, timeout=180)
        published_once(run, [job])
        client = hardened_cluster.redis.client()
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.flushall()
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.config_get("dir")
        anonymous = redis.Redis(unix_socket_path=str(hardened_cluster.redis.sock), socket_timeout=5)
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()


class TestBrokerRestart:
    def test_a_job_enqueued_before_redis_restarts_is_processed_after(self, cluster, clip_bytes):
        run = cluster.make_daemon(workers=1)
        run.start()
        drop(run.inbox, "clip.mp4", clip_bytes)
        run.wait_for(lambda: run.events("job_dispatched"), 120, "the job to reach the broker")
        cluster.redis.stop()
        cluster.redis.start()
        cluster.worker("a").start()
        (job,) = run.wait_finished(1, timeout=180)
        published_once(run, [job])


class TestMessageTrust:
    def test_a_forged_result_and_a_late_one_from_an_older_attempt_are_ignored_and_logged(
            self, cluster, clip_bytes, tmp_path):
        gate = tmp_path / "gate"
        gate.mkdir()
        run = cluster.make_daemon(workers=1)
        cluster.worker("a").start("gated", env={GATE_ENV: str(gate)})
        run.start()
        drop(run.inbox, "clip.mp4", clip_bytes)
        sent = run.wait_for(lambda: run.events("job_dispatched"), 120, "the job to be dispatched")[0]
        wait_until(lambda: list(gate.glob("*.started")), 120, "the worker to start the job")
        # While the real job runs: a result claiming success, for the right dispatch, without the key.
        claim = {"v": 1, "kind": "result", "dispatch": sent["dispatch"], "job_id": sent["job_id"],
                 "attempt": sent["attempt"], "worker": "mallory:1",
                 "result": {"output": "../../evil.mp4", "output_sha256": "0" * 64, "sidecar": "{}",
                            "verdict": "publish", "reason": None}}
        inject_result(cluster, os.urandom(32), claim)
        run.wait_for(lambda: run.events("result_rejected"), 60, "the forged result to be rejected")
        assert run.in_state(JobState.PROCESSING), "a forged result ended the job"
        (gate / "open").touch()
        (job,) = run.wait_finished(1, timeout=120)
        published_once(run, [job])
        before = sorted(p.name for p in run.clean.iterdir())
        # The same claim, signed with the real key, after the attempt ended: stale.
        inject_result(cluster, load_credentials(cluster.creds).hmac_key, claim)
        run.wait_for(lambda: run.events("result_ignored"), 60, "the late result to be ignored")
        assert sorted(p.name for p in run.clean.iterdir()) == before
        assert [j.state for j in run.jobs()] == [JobState.PUBLISHED]


class TestLocalWithoutBroker:
    def test_the_local_executor_runs_with_no_broker_library_installed(self, daemon_run, clip_bytes):
        run = daemon_run()
        poisoned = str(HERE / "poisoned")
        run.env["PYTHONPATH"] = os.pathsep.join([poisoned, run.env["PYTHONPATH"]])
        run.start()
        drop(run.inbox, "clip.mp4", clip_bytes)
        (job,) = run.wait_finished(1, timeout=60)
        assert job.state is JobState.PUBLISHED, job.last_error

    def test_executor_dramatiq_without_the_extra_is_a_clear_config_error(self, daemon_run, tmp_path):
        run = daemon_run()
        make_credentials(tmp_path / "creds")
        run.settings["executor"] = {"kind": "dramatiq", "broker_url": "redis://127.0.0.1:1/0",
                                    "credentials_file": str(tmp_path / "creds"), "scratch_dir": str(tmp_path / "s")}
        run.write_config()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "poisoned"), PYTHONPATH])}
        done = subprocess.run([sys.executable, "-m", "redactd", "config", "check", "--config", str(run.config)], check=False,
                              capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
        assert done.returncode == 2, done.stderr
        assert "pip install 'redactd[distributed]'" in done.stderr
        assert "Traceback" not in done.stderr


class TestWorkerCommand:
    def test_a_worker_asked_for_cuda_where_onnxruntime_has_none_refuses_to_start(self, cluster):
        w = cluster.worker("gpu", device="cuda")
        done = subprocess.run([sys.executable, "-m", "redactd", "worker", "--config", str(w.config)], check=False,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": PYTHONPATH})
        assert done.returncode == 2, done.stderr
        assert "device 'cuda' was asked for" in done.stderr and "onnxruntime-gpu" in done.stderr

    def test_new_credentials_are_owner_only_and_never_replaced(self, tmp_path):
        path = tmp_path / "keys" / "broker.credentials"
        argv = [sys.executable, "-m", "redactd", "worker", "--new-credentials", str(path)]
        env = {**os.environ, "PYTHONPATH": PYTHONPATH}
        assert subprocess.run(argv, check=False, capture_output=True, timeout=60, env=env).returncode == 0
        assert path.stat().st_mode & 0o777 == 0o600
        key = load_credentials(path).hmac_key
        again = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, env=env)
        assert again.returncode == 2 and "refusing to replace" in again.stderr
        assert load_credentials(path).hmac_key == key

    def test_a_worker_runs_the_real_pipeline_on_a_visual_policy(self, cluster, tmp_path):
        """The worker runs the same run_job as the local executor: faces blurred, validated, verified."""
        from tests.visual.synth import astronaut, make_clip

        run = cluster.make_daemon(workers=1)
        policy = yaml.safe_load((TEST_POLICIES / "visual-default.yaml").read_text())
        (run.policies / "visual-default.yaml").write_text(yaml.safe_dump(policy))
        run.settings["inboxes"][0]["policy"] = policy["id"]
        run.settings["limits"]["max_file_size"] = "64 MiB"
        run.write_config()
        clip = make_clip(tmp_path / "face.mp4", 320, 240, 10, [astronaut(60, 120, 80, vx=2)]).path
        cluster.worker("a").start()
        run.start()
        drop(run.inbox, "face.mp4", clip.read_bytes())
        (job,) = run.wait_finished(1, timeout=600)
        assert job.state in (JobState.PUBLISHED, JobState.REVIEW), job.last_error
        assert run.events("job_started_remotely")
        sidecars = [yaml.safe_load(p.read_text()) for p in [*run.clean.glob("*.json"), *run.review.rglob("*.json")]]
        counts = [d["detections"]["counts"] for d in sidecars if isinstance(d, dict) and "detections" in d]
        assert counts and counts[0]["tracks"]["face"] >= 1, counts
