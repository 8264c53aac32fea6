"""The watch-folder daemon end to end: admission latency, throughput, and peak memory.

    .venv/bin/python bench/daemon.py [--files 1000] [--latency-files 20] [--workers 2] [--settle 1]

Runs the real daemon (``redactd run``) on temporary directories with the metadata-only profile.
Admission latency: files dropped one at a time into an idle daemon, from the rename that
completes each file to its job starting (the settle window is the floor of this figure).
Throughput: ``--files`` small clips dropped at once, from the first drop to the last publish.
Memory: the peak summed RSS and PSS of the daemon and all its descendants (forkserver, workers,
the tools they run), sampled every 0.1 s, and the daemon process alone. Summed RSS counts pages
shared after fork once per process; PSS shares them out, so it is the closer figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from redactd.jobflow.jobstore import FINISHED, JobState, JobStore

REPO = Path(__file__).resolve().parent.parent


def make_clip(path: Path) -> bytes:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=10", "-t", "1", "-c:v", "libx264", "-preset", "ultrafast",
                    "-movflags", "+faststart", str(path)], check=True, timeout=60)
    return path.read_bytes()


def variant(clip: bytes, n: int) -> bytes:
    """Same video, different SHA-256: a valid trailing MP4 ``free`` box holding ``n``."""
    payload = f"bench-{n}".encode()
    return clip + struct.pack(">I", 8 + len(payload)) + b"free" + payload


def _kib(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid: int) -> int:
    return _kib(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    """Proportional set size: pages shared after fork count once across the processes, not per process."""
    return _kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class MemorySampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_total, self.peak_pss, self.peak_daemon = pid, 0, 0, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_daemon = max(self.peak_daemon, rss_kib(self.pid))
            tree = descendants(self.pid)
            self.peak_total = max(self.peak_total, sum(rss_kib(p) for p in tree))
            self.peak_pss = max(self.peak_pss, sum(pss_kib(p) for p in tree))
            time.sleep(0.1)


def setup(root: Path, workers: int, settle: float) -> Path:
    for d in ("inbox", "policies"):
        (root / d).mkdir(parents=True)
    policy = yaml.safe_load((REPO / "policies" / "metadata-only.yaml").read_text())
    # Every variant remuxes to the same bytes, so name outputs by job id rather than content.
    policy["output"]["naming"] = "job_id"
    (root / "policies" / "metadata-only.yaml").write_text(yaml.safe_dump(policy))
    config = root / "redactd.yaml"
    var = root / "var"
    config.write_text(yaml.safe_dump({
        "version": 1,
        "inboxes": [{"name": "bench", "path": str(root / "inbox"), "policy": "metadata-only"}],
        "raw_store": str(var / "raw"), "clean_dir": str(var / "clean"), "review_dir": str(var / "review"),
        "failed_dir": str(var / "failed"), "state_dir": str(var / "state"),
        "policies_dir": str(root / "policies"),
        "custody": {"directory": str(var / "custody"), "signing_key": str(root / "custody.key")},
        "workers": workers,
        "limits": {"settle_seconds": settle, "rescan_seconds": 300},
    }))
    return config


def jobs(db: Path) -> list:  # type: ignore[type-arg]
    store = JobStore.open(db, readonly=True)
    try:
        return store.jobs()
    finally:
        store.close()


def wait_finished(db: Path, count: int, timeout: float) -> list:  # type: ignore[type-arg]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = [j for j in jobs(db) if j.state in FINISHED]
        if len(done) >= count:
            return done
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {count} finished jobs")


def drop(inbox: Path, name: str, data: bytes) -> float:
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(data)
    os.rename(tmp, inbox / name)
    return time.time()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--latency-files", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--settle", type=float, default=1.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="redactd-bench-") as tmp:
        root = Path(tmp)
        clip = make_clip(root / "clip.mp4")
        config = setup(root, args.workers, args.settle)
        inbox, db = root / "inbox", root / "var" / "state" / "jobs.sqlite3"
        env = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}
        log = open(root / "daemon.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "redactd", "--config", str(config), "--log-level",
                                 "warning", "run"], stdout=log, stderr=log, env=env)
        sampler = MemorySampler(proc.pid)
        sampler.start()
        try:
            while True:  # the store exists and has its schema: the daemon is up
                try:
                    jobs(db)
                    break
                except Exception:  # noqa: BLE001
                    time.sleep(0.1)
            # 1. latency: one file at a time into an idle daemon
            completed: dict[str, float] = {}
            for i in range(args.latency_files):
                name = f"latency-{i:03d}.mp4"
                completed[name] = drop(inbox, name, variant(clip, i))
                wait_finished(db, i + 1, timeout=60)
            by_name = {j.original_name.decode(): j for j in jobs(db)}
            admit = [by_name[n].admitted_at - t for n, t in completed.items()]
            start = [by_name[n].started_at - t for n, t in completed.items()]
            run_s = [by_name[n].finished_at - by_name[n].started_at for n in completed]

            # 2. throughput: a burst
            base = len(completed)
            first = time.time()
            for i in range(args.files):
                drop(inbox, f"burst-{i:04d}.mp4", variant(clip, 100_000 + i))
            dropped = time.time() - first
            done = wait_finished(db, base + args.files, timeout=args.files * 5 + 60)
            burst = [j for j in done if j.original_name.startswith(b"burst-")]
            last = max(j.finished_at for j in burst)
            states = {s.value: sum(1 for j in burst if j.state is s) for s in JobState if any(j.state is s for j in burst)}
        finally:
            proc.terminate()
            proc.wait(60)
            sampler.stop.set()
            sampler.join()
            log.close()

        wall = last - first
        print(f"redactd daemon bench: {args.workers} worker(s), settle {args.settle} s, "
              f"{os.cpu_count()} CPU(s), clip {len(clip)} bytes (160x120, 1 s, H.264)")
        print(f"admission latency, {len(admit)} files one at a time (complete -> ...):")
        print(f"  admitted     median {statistics.median(admit):.3f} s   p95 {pct(admit, 0.95):.3f} s")
        print(f"  job started  median {statistics.median(start):.3f} s   p95 {pct(start, 0.95):.3f} s")
        print(f"  job run time median {statistics.median(run_s):.3f} s (metadata-only, in its worker process)")
        print(f"throughput, {args.files} files dropped at once (dropping took {dropped:.1f} s):")
        print(f"  first drop -> last finished {wall:.1f} s = {args.files / wall:.2f} files/s; states {states}")
        print(f"peak memory, daemon + forkserver + workers: RSS summed {sampler.peak_total / 1024:.1f} MiB, "
              f"PSS summed {sampler.peak_pss / 1024:.1f} MiB; daemon alone RSS {sampler.peak_daemon / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
