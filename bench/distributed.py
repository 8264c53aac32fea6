"""Executor `dramatiq` against `local`: throughput with 1 and 2 workers, and the broker's per-job cost.

    .venv/bin/python bench/distributed.py [--files 6] [--repeats 3] [--seconds 2] [--height 360]

Runs the real daemon (``redactd run``) and real ``redactd worker`` processes on this host with a
real Redis (Debian's redis-server, unix socket, append-only file fsynced on every write), on
temporary directories. Two loads, each dropped at once into the inbox, timed from the first drop
to the last publish, median of ``--repeats``:

* visual: ``--files`` clips of ``--seconds`` at ``--height``p with a moving face, policy
  visual-default (faces + text), to compare throughput: local with 1 and 2 job slots, and
  dramatiq with 1 and 2 workers (one job each);
* remux: 20 tiny clips, policy metadata-only, one job at a time, where the job itself takes
  well under a second: (dramatiq - local) / files is the broker round trip's cost per job.

On one 2-core host, two workers share the same two cores as two local job slots do: the figure
that matters here is the overhead, not a speed-up (that needs a second machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "daemon"), str(REPO)]

from redactd.custody.keys import init_key
from redactd.jobflow.jobstore import FINISHED, JobState, JobStore
from redactd.jobflow.signing import make_credentials

ENV = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}


def visual_clip(path: Path, seconds: float, height: int, n: int) -> bytes:
    from tests.visual.synth import astronaut, make_clip

    width = height * 16 // 9 // 2 * 2
    make_clip(path, width, height, int(seconds * 25), [astronaut(height // 5, 40 + n * 7, height // 4, vx=3)])
    return path.read_bytes()


def remux_clip(path: Path, n: int) -> bytes:
    # Same picture each time; the title differs, so every file has its own SHA-256 (no duplicates).
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=10", "-t", "1", "-c:v", "libx264", "-preset", "ultrafast",
                    "-metadata", f"title=bench {n}", "-movflags", "+faststart", str(path)],
                   check=True, timeout=60)
    return path.read_bytes()


class Redis:
    def __init__(self, root: Path) -> None:
        self.sock = root / "r.sock"
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server is missing: apt-get install redis-server")
        self.proc = subprocess.Popen([exe, "--port", "0", "--unixsocket", str(self.sock), "--unixsocketperm", "700",
                                      "--dir", str(root), "--appendonly", "yes", "--appendfsync", "always",
                                      "--save", "", "--logfile", str(root / "redis.log")])
        end = time.monotonic() + 30
        while not self.sock.exists() and time.monotonic() < end:
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def run_once(root: Path, policy: str, files: list[bytes], executor: str, slots: int, redis: Redis | None) -> float:
    """Seconds from the first drop to the last publish."""
    if root.exists():
        shutil.rmtree(root)
    inbox, var, pol = root / "inbox", root / "var", root / "policies"
    for d in (inbox, pol):
        d.mkdir(parents=True)
    doc = yaml.safe_load((REPO / "policies" / f"{policy}.yaml").read_text())
    doc["output"] = {**doc.get("output", {}), "naming": "job_id"}
    (pol / f"{policy}.yaml").write_text(yaml.safe_dump(doc))
    init_key(root / "custody.key")
    cfg: dict[str, Any] = {
        "version": 1, "inboxes": [{"name": "in", "path": str(inbox), "policy": doc["id"]}],
        "raw_store": str(var / "raw"), "clean_dir": str(var / "clean"), "review_dir": str(var / "review"),
        "failed_dir": str(var / "failed"), "state_dir": str(var / "state"), "policies_dir": str(pol),
        "custody": {"directory": str(var / "state" / "custody"), "signing_key": str(root / "custody.key")},
        "workers": slots, "limits": {"settle_seconds": 0.5, "max_file_size": "1 GiB"},
    }
    workers: list[subprocess.Popen[bytes]] = []
    if executor == "dramatiq":
        assert redis is not None
        creds = root / "creds"
        make_credentials(creds)
        broker = {"broker_url": f"unix://{redis.sock}", "credentials_file": str(creds)}
        cfg["executor"] = {"kind": "dramatiq", **broker, "scratch_dir": str(var / "scratch")}
        for i in range(slots):
            wcfg = root / f"worker{i}.yaml"
            wcfg.write_text(yaml.safe_dump({"version": 1, **broker}))
            log = open(root / f"worker{i}.log", "wb")  # noqa: SIM115 - the worker owns it
            workers.append(subprocess.Popen([sys.executable, "-m", "redactd", "--log-json", "worker", "--config",
                                             str(wcfg)], stdout=log, stderr=log, env=ENV))
            _wait_log(root / f"worker{i}.log", "worker_started")
    (root / "redactd.yaml").write_text(yaml.safe_dump(cfg))
    log = open(root / "daemon.log", "wb")  # noqa: SIM115
    daemon = subprocess.Popen([sys.executable, "-m", "redactd", "--log-json", "--config", str(root / "redactd.yaml"),
                               "run"], stdout=log, stderr=log, env=ENV)
    _wait_log(root / "daemon.log", "daemon_started")
    start = time.monotonic()
    for i, data in enumerate(files):
        tmp = inbox / f".{i}.part"
        tmp.write_bytes(data)
        os.rename(tmp, inbox / f"clip{i}.mp4")
    store_path = var / "state" / "jobs.sqlite3"
    while True:
        store = JobStore.open(store_path, readonly=True)
        try:
            jobs = store.jobs()
        finally:
            store.close()
        done = [j for j in jobs if j.state in FINISHED]
        if len(done) >= len(files):
            break
        time.sleep(0.1)
    seconds = time.monotonic() - start
    bad = [(j.state.value, j.last_error) for j in jobs if j.state not in (JobState.PUBLISHED, JobState.REVIEW)]
    for p in [daemon, *workers]:
        p.send_signal(signal.SIGTERM)
    for p in [daemon, *workers]:
        p.wait(60)
    if bad:
        raise SystemExit(f"{executor}/{slots}: jobs did not publish: {bad}")
    return seconds


def _wait_log(path: Path, event: str) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if path.exists() and f'"event": "{event}"' in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise SystemExit(f"{path}: no {event} within 60 s:\n{path.read_text(errors='replace')[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--remux-files", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rdb-", dir="/tmp"))
    try:
        redis = Redis(work)
        visual = [visual_clip(work / f"v{i}.mp4", args.seconds, args.height, i) for i in range(args.files)]
        remux = [remux_clip(work / f"r{i}.mp4", i) for i in range(args.remux_files)]
        cases = [("visual", "visual-default", visual, ex, slots) for ex in ("local", "dramatiq") for slots in (1, 2)]
        cases += [("remux", "metadata-only", remux, ex, 1) for ex in ("local", "dramatiq")]
        times: dict[tuple[str, str, int], list[float]] = {}
        for _ in range(args.repeats):  # round-robin, so drift on a shared machine hits every case alike
            for load, policy, files, ex, slots in cases:
                t = run_once(work / "run", policy, files, ex, slots, redis if ex == "dramatiq" else None)
                times.setdefault((load, ex, slots), []).append(t)
        redis.stop()
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med[("visual", "local", 1)]
        print(f"visual: {args.files} clips of {args.seconds:g} s at {args.height}p, policy visual-default; "
              f"median of {args.repeats}")
        print(f"{'executor':<10} {'slots/workers':>13} {'seconds':>8} {'files/min':>9} {'vs local x1':>11}")
        for ex in ("local", "dramatiq"):
            for slots in (1, 2):
                t = med[("visual", ex, slots)]
                print(f"{ex:<10} {slots:>13} {t:>8.2f} {60 * args.files / t:>9.1f} {base / t:>10.2f}x")
        lr, dr = med[("remux", "local", 1)], med[("remux", "dramatiq", 1)]
        n = args.remux_files
        print(f"\nremux: {n} tiny clips, policy metadata-only, one job at a time; median of {args.repeats}")
        print(f"local {lr:.2f} s ({1000 * lr / n:.0f} ms/job), dramatiq {dr:.2f} s ({1000 * dr / n:.0f} ms/job): "
              f"broker round trip {1000 * (dr - lr) / n:+.0f} ms per job")
        print(json.dumps({"median_s": {f"{k[0]}/{k[1]}/{k[2]}": round(v, 3) for k, v in med.items()}}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
