"""Custody log figures: append throughput with per-entry fdatasync, and verification time.

    .venv/bin/python bench/custody.py [--appends 2000] [--verify-entries 100000] [--repeats 5] [--dir DIR]

Appends are measured with the checkpoint cadences side by side, in the same run: today's
(no checkpoint between appends: one every ``checkpoint_minutes``, 60 by default), one after
every burst of 3 entries (a job's ingested / processing_started / published, each burst
closed by a signed checkpoint, as the daemon now does), and the same with every checkpoint
also delivered to a witness directory. Rates count the caller's entries only.

Baselines measured in the same run: bare ``write`` + ``fdatasync`` of lines of the same size (the
floor that durability costs on this disk) and Ed25519 signing alone. Run it with ``--dir`` on the
filesystem that will hold the custody log: fsync cost is a property of the disk.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redactd import log
from redactd.custody import CustodyLog, Event, verify_log
from redactd.custody.keys import init_key, load_public_key, public_path

SHM = Path("/dev/shm")
POLICY = {"id": "visual-default", "version": 3, "hash": "7" * 64}
MODELS = {"centerface": "c" * 64, "ppocr-det": "d" * 64}


def append_published(custody: CustodyLog, i: int) -> dict[str, object]:
    return custody.append(Event.PUBLISHED, job_id=f"job-{i:08d}", raw_sha256=f"{i:064x}",
                          output_sha256=f"{i + 1:064x}", policy=POLICY, models=MODELS, faces=3, plates=1)


def median_rate(count: int, runs: list[float]) -> str:
    seconds = statistics.median(runs)
    return f"{count / seconds:9.0f} entries/s  (median of {len(runs)} runs, {seconds * 1000 / count:.3f} ms each)"


def one_append_run(directory: Path, key: Path, count: int, latencies: list[float], burst: int | None = None,
                   witness: Path | None = None) -> float:
    """Seconds for ``count`` appends; with ``burst``, a checkpoint after every ``burst`` of them."""
    if witness is not None:
        witness.mkdir()
    with CustodyLog.open(directory, key, witnesses=[witness] if witness else []) as custody:
        start = time.perf_counter()
        for i in range(count):
            t = time.perf_counter()
            append_published(custody, i)
            latencies.append(time.perf_counter() - t)
            if burst and (i + 1) % burst == 0:
                custody.checkpoint()
        return time.perf_counter() - start


def one_fsync_floor_run(path: Path, count: int, size: int) -> float:
    line = b"x" * (size - 1) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, line)
            os.fdatasync(fd)
        return time.perf_counter() - start
    finally:
        os.close(fd)


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--verify-entries", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path.cwd(), help="filesystem to measure appends on (default: .)")
    ap.add_argument("--verify-dir", type=Path, default=SHM if SHM.is_dir() else Path.cwd(),
                    help="where to build the large log (default: /dev/shm, so building it is quick; "
                    "verification reads it, its time does not depend on fsync)")
    args = ap.parse_args()
    log.configure(level="warning")
    with tempfile.TemporaryDirectory(prefix="custody-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        key = base / "custody.key"
        init_key(key)
        # Alternate the writer and the bare-fsync floor so both see the same disk weather.
        runs: list[float] = []
        floor: list[float] = []
        latencies: list[float] = []
        bursts: list[float] = []
        witnessed: list[float] = []
        for r in range(args.repeats):
            runs.append(one_append_run(base / f"append{r}", key, args.appends, latencies))
            bursts.append(one_append_run(base / f"burst{r}", key, args.appends, [], burst=3))
            witnessed.append(one_append_run(base / f"witnessed{r}", key, args.appends, [], burst=3,
                                            witness=base / f"witness{r}"))
            size = (base / f"append{r}" / "custody-000001.jsonl").stat().st_size // (args.appends + 1)
            floor.append(one_fsync_floor_run(base / f"floor{r}", args.appends, size))
        signer = Ed25519PrivateKey.generate()
        payload = b"x" * size
        signing = timed(lambda: [signer.sign(payload) for _ in range(args.appends)], args.repeats)
        latencies.sort()
        print(f"append ({args.appends} entries of ~{size} B, fdatasync each, on {args.dir}):")
        print(f"  today's cadence (no checkpoint between appends)  {median_rate(args.appends, runs)}")
        print(f"  checkpoint after every 3-entry burst             {median_rate(args.appends, bursts)}")
        print(f"  same, each checkpoint delivered to a witness     {median_rate(args.appends, witnessed)}")
        print(f"  ratio burst-checkpointed / today: {statistics.median(runs) / statistics.median(bursts):.2f}x, "
              f"with witness / today: {statistics.median(runs) / statistics.median(witnessed):.2f}x")
        print(f"    latency p50 {latencies[len(latencies) // 2] * 1000:.3f} ms, "
              f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.3f} ms")
        print(f"  baseline write+fdatasync {median_rate(args.appends, floor)}")
        print(f"  baseline Ed25519 sign    {median_rate(args.appends, signing)}")
        print(f"  ratio append / fsync floor: {statistics.median(floor) / statistics.median(runs):.2f}x", flush=True)

    with tempfile.TemporaryDirectory(prefix="custody-bench-", dir=args.verify_dir) as tmp:
        base = Path(tmp)
        init_key(key := base / "custody.key")
        n = args.verify_entries
        print(f"building a {n}-entry log in {args.verify_dir} ...", file=sys.stderr, flush=True)
        with CustodyLog.open(base / "big", key, segment_max_bytes=16 * 1024 * 1024) as custody:
            while custody.size < n - 1:  # close() adds the n-th entry, a final checkpoint
                append_published(custody, custody.size)
                if custody.size % 10_000 == 0:
                    custody.checkpoint()
        pub = load_public_key(public_path(key))
        results = []

        def verify() -> None:
            results.append(verify_log(base / "big", pub))

        verify_runs = timed(verify, max(3, args.repeats // 2))
        assert all(r.ok for r in results), results[-1].problem
        opens = timed(lambda: CustodyLog.open(base / "big", key).close(), 3)
        segments = results[-1].segments
        print(f"verify ({results[-1].entries} entries, {segments} segments, in {args.verify_dir}):")
        print(f"  verify_log             {statistics.median(verify_runs):7.2f} s  "
              f"({results[-1].entries / statistics.median(verify_runs):.0f} entries/s, median of {len(verify_runs)})")
        print(f"  writer open (rescan)   {statistics.median(opens):7.2f} s  (median of 3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
