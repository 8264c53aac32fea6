"""A fault campaign against the real daemon: kill -9 rounds, full disks, a burst, hostile names, retention.

    .venv/bin/python bench/fault_campaign.py [--kill-rounds 5] [--burst 60] [--only NAME ...]

The disk-full scenario needs root (it mounts tmpfs volumes to fill them). Each scenario drives real ``redactd run``
processes (the metadata-only policy, the real pipeline) on temporary directories and then counts,
for every file it put into an inbox:

- tried: files put into an inbox;
- survived: files that ended where they should (a good video published; bad input in the failed
  queue with its reason; raw footage retention was not allowed to purge still there);
- lost: bytes found nowhere any more (inbox, raw store, failed queue, clean storage);
- published twice: a job with two ``published`` transitions, or two clean outputs for one file;
- escaped: something in clean storage that must not be there (bad input published, a stray
  temp or unknown file), or a purge that left no copy at all.

The default run takes a few minutes on a 2-core machine; ``--kill-rounds`` and ``--burst`` scale it.
Prints one table; exits 1 when anything was lost, published twice or escaped.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.daemon.conftest import DaemonRun, drop, make_clip, variant

from redactd import log
from redactd.custody import CustodyLog
from redactd.jobflow.jobstore import Job, JobState
from redactd.retention.service import run_retention


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Tally:
    name: str
    tried: int = 0
    survived: int = 0
    lost: int = 0
    twice: int = 0
    escaped: int = 0
    seconds: float = 0.0
    notes: str = ""


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True, timeout=10)


def umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], check=False, timeout=10)


def fill(volume: Path) -> Path:
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for block in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def everywhere(run: DaemonRun) -> dict[str, int]:
    """SHA-256 of every file still holding footage bytes (inbox, raw store, failed queue), with counts."""
    found: dict[str, int] = {}
    for root in (run.inbox, run.raw, run.failed):
        if root.exists():
            for p in root.rglob("*"):
                if p.is_file() and not p.is_symlink() and p.name != "REASON.txt":
                    digest = sha(p.read_bytes())
                    found[digest] = found.get(digest, 0) + 1
    return found


def judge(tally: Tally, run: DaemonRun, good: dict[str, bytes], bad: dict[str, bytes]) -> None:
    """Count outcomes for files put in: ``good`` must publish once, ``bad`` must fail (kept or described)."""
    jobs = run.jobs()
    by_sha: dict[str, list[Job]] = {}
    for j in jobs:
        if j.raw_sha256:
            by_sha.setdefault(j.raw_sha256, []).append(j)
    held = everywhere(run)
    published_ids = set()
    for digest in good:
        tally.tried += 1
        mine = [j for j in by_sha.get(digest, []) if j.state is not JobState.DUPLICATE]
        pubs = [j for j in mine if j.state is JobState.PUBLISHED]
        for j in mine:
            if [t.to_state for t in run.history(j.id)].count(JobState.PUBLISHED) > 1:
                tally.twice += 1
        if len(pubs) > 1:
            tally.twice += 1
        if pubs and all(j.output_path and j.output_path.is_file() for j in pubs):
            tally.survived += 1
            published_ids.update(j.id for j in pubs)
        elif digest not in held:
            tally.lost += 1
    failed_names = {j.original_name for j in jobs if j.state is JobState.FAILED}
    for name, data in bad.items():
        tally.tried += 1
        if os.fsencode(name) in failed_names:
            tally.survived += 1
        elif data and sha(data) not in held:
            tally.lost += 1
    # Clean storage holds exactly one output and one sidecar per published job.
    expected = set()
    for j in jobs:
        if j.state is JobState.PUBLISHED and j.output_name:
            expected |= {j.output_name, j.output_name + ".json"}
    for p in run.clean.iterdir():
        if p.name != "filler" and p.name not in expected:
            tally.escaped += 1
    bad_shas = {sha(d) for d in bad.values() if d}
    tally.escaped += sum(1 for j in jobs if j.state is JobState.PUBLISHED and j.raw_sha256 in bad_shas)


# --------------------------------------------------------------------------- scenarios


def kill_rounds(root: Path, clip: bytes, rounds: int) -> Tally:
    t = Tally("kill -9 rounds")
    run = DaemonRun(root, settle=0.5, workers=2)
    rng = random.Random(15)
    good: dict[str, bytes] = {}
    n = 0
    for _ in range(rounds):
        run.start()
        for _ in range(3):
            data = variant(clip, n)
            good[sha(data)] = data
            drop(run.inbox, f"round-{n:03d}.mp4", data)
            n += 1
        time.sleep(rng.uniform(0.6, 2.5))  # lands in settling, admission, processing or publishing
        run.kill9()
    run.start()
    run.wait_for(lambda: len(run.in_state(JobState.PUBLISHED)) >= len(good), timeout=300, what="all published")
    run.stop()
    judge(t, run, good, {})
    t.notes = f"{rounds} kills, restart after each"
    return t


def disk_full(root: Path, clip: bytes) -> Tally:
    t = Tally("disk full (state dir with scratch, clean)")
    run = DaemonRun(root, settle=0.5, workers=2, extra_limits={"min_free_space": "64 KiB"})
    mounts = [run.state, run.clean]
    for m in mounts:
        mount_tmpfs(m, "4m")
    try:
        run.start()  # the job store is created first; then both volumes fill up
        good = {}
        for i in range(2):  # these two are admitted before the disks fill, then wait to be processed
            data = variant(clip, 1000 + i)
            good[sha(data)] = data
            drop(run.inbox, f"early-{i}.mp4", data)
        fillers = [fill(m) for m in mounts]
        for i in range(2, 6):
            data = variant(clip, 1000 + i)
            good[sha(data)] = data
            drop(run.inbox, f"full-{i}.mp4", data)
        time.sleep(4)
        waited = not run.in_state(JobState.PUBLISHED, JobState.FAILED)
        for f in fillers:
            f.unlink()
        run.wait_for(lambda: len(run.in_state(JobState.PUBLISHED)) >= len(good), timeout=180, what="all published")
        blamed = sum(1 for j in run.jobs() if j.state is JobState.FAILED or j.attempts)
        run.stop()
        judge(t, run, good, {})
        t.notes = f"waited while full: {'yes' if waited else 'NO'}; blamed on the file: {blamed}; no command typed"
        t.escaped += blamed
    finally:
        if run.alive():
            run.kill9()
        for m in mounts:
            umount(m)
    return t


def burst(root: Path, clip: bytes, count: int) -> Tally:
    t = Tally(f"burst of {count}")
    run = DaemonRun(root, settle=1.0, workers=2)
    good = {}
    for i in range(count):
        data = variant(clip, 5000 + i)
        good[sha(data)] = data
        (run.inbox / f"burst-{i:04d}.mp4").write_bytes(data)
    run.start()
    run.wait_for(lambda: len(run.in_state(JobState.PUBLISHED)) >= count, timeout=60 + count * 3, what="burst")
    run.stop()
    judge(t, run, good, {})
    return t


def hostile(root: Path, clip: bytes, tmp: Path) -> Tally:
    t = Tally("hostile names and inputs")
    run = DaemonRun(root, settle=0.5, workers=2)
    run.start()
    passwd = Path("/etc/passwd").read_bytes()
    outside = tmp / "outside.mp4"
    outside.write_bytes(variant(clip, 9000))
    bogus_mkv = b"\x1a\x45\xdf\xa3" + b"\x00\x00\x01\xb3" + os.urandom(4000)
    good = {sha(variant(clip, 9001 + i)): variant(clip, 9001 + i) for i in range(3)}
    for (digest, data), name in zip(good.items(), ["-rf --help.mp4", "ü n i c o d e ✓.mp4", "y" * 251 + ".mp4"],
                                    strict=True):
        drop(run.inbox, name, data)
    bad: dict[str, bytes] = {"new\nline.mp4": variant(clip, 9100), "text.mp4": b"meeting notes\n" * 30,
                             "empty.mp4": b"", "bogus-ebml.mkv": bogus_mkv,
                             "cut.mp4": clip[: len(clip) // 3]}
    for name, data in bad.items():
        drop(run.inbox, name, data)
    os.symlink("/etc/passwd", run.inbox / "passwd.mp4")
    os.link(outside, run.inbox / "linked.mp4")
    os.mkfifo(run.inbox / "pipe.mp4")
    bad |= {"passwd.mp4": b"", "linked.mp4": b"", "pipe.mp4": b""}
    run.wait_for(lambda: len([j for j in run.jobs() if j.state in (JobState.PUBLISHED, JobState.FAILED)])
                 >= len(good) + len(bad), timeout=180, what="every hostile input handled")
    live_links = [p for p in run.failed.rglob("*") if p.is_symlink()]
    run.stop()
    judge(t, run, good, bad)
    touched = int(Path("/etc/passwd").read_bytes() != passwd) + int(outside.read_bytes() != variant(clip, 9000))
    t.escaped += len(live_links) + touched
    t.notes = (f"live links in failed/: {len(live_links)}; /etc/passwd or the hard link's other name changed: "
               f"{touched}")
    return t


def retention(root: Path, clip: bytes) -> Tally:
    t = Tally("retention vs. missing clean copies")
    run = DaemonRun(root, settle=0.5, workers=2)
    shutil.copy(REPO / "policies" / "retention-default.yaml", run.policies)
    run.settings["retention"] = {"policy": "retention-default"}
    run.write_config()
    run.start()
    datas = [variant(clip, 7000 + i) for i in range(6)]
    for i, data in enumerate(datas):
        drop(run.inbox, f"keep-{i}.mp4", data)
    jobs = run.wait_for(lambda: len(run.in_state(JobState.PUBLISHED)) >= len(datas) and run.jobs(), timeout=120,
                        what="published")
    run.stop()
    removed = jobs[: len(jobs) // 2]  # someone empties part of clean storage
    for j in removed:
        assert j.output_path is not None
        j.output_path.unlink()
        Path(str(j.output_path) + ".json").unlink()
    from redactd.config import check_config

    cfg, policies = check_config(run.config)
    later = datetime.now(UTC) + timedelta(days=8)
    with CustodyLog.open(cfg.custody.directory, cfg.custody.signing_key) as custody:
        report = run_retention(cfg, policies, run.state / "jobs.sqlite3", custody, lambda: later, trigger="campaign")
    for j in jobs:
        t.tried += 1
        kept = j.raw_path is not None and j.raw_path.exists()
        clean = j.output_path is not None and j.output_path.exists()
        if not kept and not clean:
            t.lost += 1
        elif (j in removed and kept) or (j not in removed and not kept and clean):
            t.survived += 1
    t.notes = f"purged {report.count('purged')}, refused {report.count('refused')} (clean copy gone)"
    return t




def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kill-rounds", type=int, default=5)
    ap.add_argument("--burst", type=int, default=60)
    ap.add_argument("--only", nargs="*", choices=["kill", "full", "burst", "hostile", "retention"])
    args = ap.parse_args()
    log.configure(level="warning", json=False)
    if os.geteuid() != 0 and (not args.only or "full" in args.only):
        print("fault_campaign: the disk-full scenario needs root (it mounts tmpfs volumes to fill them); "
              "run as root or leave it out with --only", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="redactd-campaign-"))
    clip = make_clip(work / "clip.mp4").read_bytes()
    plan: dict[str, Callable[[], Tally]] = {
        "kill": lambda: kill_rounds(work / "kill", clip, args.kill_rounds),
        "full": lambda: disk_full(work / "full", clip),
        "burst": lambda: burst(work / "burst", clip, args.burst),
        "hostile": lambda: hostile(work / "hostile", clip, work),
        "retention": lambda: retention(work / "retention", clip),
    }
    results = []
    try:
        for name, fn in plan.items():
            if args.only and name not in args.only:
                continue
            start = time.monotonic()
            tally = fn()
            tally.seconds = time.monotonic() - start
            results.append(tally)
            print(f"{tally.name}: done in {tally.seconds:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| scenario | tried | survived | lost | published twice | escaped | s | notes |\n|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.name} | {r.tried} | {r.survived} | {r.lost} | {r.twice} | {r.escaped} | {r.seconds:.0f} | {r.notes} |")
    return 1 if any(r.lost or r.twice or r.escaped for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
