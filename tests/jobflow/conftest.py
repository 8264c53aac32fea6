"""Fixtures for the distributed executor: a real Redis (Debian's redis-server) on a unix socket,
real `redactd worker` processes, and the daemon of tests/daemon configured to use them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from redactd.jobflow.signing import make_credentials
from tests.daemon.conftest import HERE as DAEMON_TESTS
from tests.daemon.conftest import REPO, DaemonRun, _logs_to_this_tests_stderr, clip_bytes, daemon_run  # noqa: F401 - fixtures

HERE = Path(__file__).resolve().parent
PYTHONPATH = os.pathsep.join([str(REPO / "daemon"), str(DAEMON_TESTS), str(HERE)])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, log: Callable[[], str] = str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log()[-3000:]}")


class RedisServer:
    """redis-server on a unix socket only (no TCP port), append-only file fsynced on every write."""

    def __init__(self, directory: Path, conf: str | None = None, user: str | None = None,
                 password: str | None = None) -> None:
        self.dir = directory
        self.sock = directory / "redis.sock"
        self.user, self.password = user, password
        self.url = f"unix://{user + '@' if user else ''}{self.sock}"
        self.conf = conf
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is missing: `make test` installs Debian's redis-server"
        argv = [exe]
        if self.conf is not None:
            (self.dir / "redis.conf").write_text(self.conf)
            argv.append(str(self.dir / "redis.conf"))
        # Command-line options override the file: a unix socket only, data in this test's directory.
        argv += ["--port", "0", "--bind", "127.0.0.1", "--unixsocket", str(self.sock), "--unixsocketperm", "700",
                 "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                 "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, 30, "redis-server to answer", self.log)
        return self

    def client(self) -> Any:
        import redis

        return redis.Redis(unix_socket_path=str(self.sock), socket_timeout=5, username=self.user,
                           password=self.password)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def log(self) -> str:
        p = self.dir / "redis.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


class WorkerRun:
    """A `redactd worker` subprocess; ``processor`` names a test processor, else the real pipeline."""

    def __init__(self, root: Path, name: str, settings: dict[str, Any]) -> None:
        self.root, self.name = root, name
        self.config = root / f"{name}.yaml"
        self.config.write_text(yaml.safe_dump(settings))
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, processor: str | None = None, env: dict[str, str] | None = None) -> WorkerRun:
        if processor is None:
            argv = [sys.executable, "-m", "redactd", "--log-json", "worker", "--config", str(self.config)]
        else:
            argv = [sys.executable, str(HERE / "launch_worker.py"), str(self.config), processor]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log,
                                         env={**os.environ, "PYTHONPATH": PYTHONPATH, **(env or {})})
        wait_until(lambda: self.events("worker_started") or self.proc.poll() is not None, 60,
                   f"worker {self.name} to start", self.log_text)
        assert self.proc.poll() is None, self.log_text()
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text().splitlines()
                if line.startswith("{") and f'"event": "{name}"' in line]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


class Cluster:
    """Redis, the shared key, a daemon using executor `dramatiq`, and workers started on demand."""

    def __init__(self, root: Path, redis: RedisServer) -> None:
        self.root = root
        self.redis = redis.start()
        self.creds = root / "broker.credentials"
        make_credentials(self.creds, redis.password)
        self.scratch = root / "shared-scratch"
        self.broker = {"broker_url": self.redis.url, "credentials_file": str(self.creds),
                       "heartbeat_timeout_seconds": 2}
        self.workers: list[WorkerRun] = []
        self.daemon: DaemonRun | None = None

    def make_daemon(self, **kwargs: Any) -> DaemonRun:
        run = DaemonRun(self.root / "daemon", **kwargs)
        run.settings["executor"] = {"kind": "dramatiq", **self.broker, "scratch_dir": str(self.scratch),
                                    "lost_after_seconds": 5}
        run.write_config()
        run.env["PYTHONPATH"] = PYTHONPATH
        self.daemon = run
        return run

    def worker(self, name: str, **settings: Any) -> WorkerRun:
        w = WorkerRun(self.root, name, {"version": 1, **self.broker, **settings})
        self.workers.append(w)
        return w

    def close(self) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(10)
        if self.daemon is not None and self.daemon.alive():
            assert self.daemon.proc is not None
            self.daemon.proc.kill()
            self.daemon.proc.wait(10)
        self.redis.stop()


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # A unix socket path must stay under 108 bytes: keep Redis in a short directory of its own.
    short = Path(tempfile.mkdtemp(prefix="rd-", dir="/tmp"))
    c = Cluster(tmp_path, RedisServer(short))
    try:
        yield c
    finally:
        c.close()
        shutil.rmtree(short, ignore_errors=True)


#: The password the hardened test Redis gets in place of the example's placeholder.
TEST_PASSWORD = "a-test-password-for-redactd-worker"


@pytest.fixture()
def hardened_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """The same, with Redis running the documented etc/redis-redactd.conf (ACL user, no default user)."""
    conf = (REPO / "etc" / "redis-redactd.conf").read_text().replace("CHANGE-ME-long-random-password", TEST_PASSWORD)
    short = Path(tempfile.mkdtemp(prefix="rd-", dir="/tmp"))
    c = Cluster(tmp_path, RedisServer(short, conf, user="redactd-worker", password=TEST_PASSWORD))
    try:
        yield c
    finally:
        c.close()
        shutil.rmtree(short, ignore_errors=True)
