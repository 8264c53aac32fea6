"""Admission into the raw store: today's rename against a new inode per file, on one large file, same run.

    .venv/bin/python bench/raw_admit.py [--size-mb 1024] [--repeats 3] [--dir DIR]

Each round writes a fresh file of random bytes into an inbox folder (not timed) and admits it:

- ``rename+hash``: what admission did before: rename into the raw store, then read it once for
  its SHA-256 (the contributor's inode, still writable through an open descriptor);
- ``new inode``: what ``admit.move_in`` does now: a reflink clone where the filesystem offers
  one, else a copy hashed as it is written, fsynced, then the inbox name unlinked;
- ``re-hash``: one extra SHA-256 read of the raw file, the price of the alternative (re-hash at
  job start and again before publishing costs two of these per job).

Prints the median seconds of each, MB/s, and the ratio against ``rename+hash``, plus whether the
filesystem under ``--dir`` cloned (reflink) or copied.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from redactd.admit import _FICLONE, move_in, sha256_of
from redactd.fsutil import fsync_dir


def write_random(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        fh.writelines(block[:8] + i.to_bytes(8, "little") + block[16:] for i in range(size >> 20))
        fh.flush()
        os.fsync(fh.fileno())


def rename_and_hash(src: Path, dst: Path) -> str:
    os.rename(src, dst)
    h = hashlib.sha256()
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o600)
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(dst.parent)
    fsync_dir(src.parent)
    return h.hexdigest()


def clones(directory: Path) -> bool:
    import fcntl

    a, b = directory / ".clone-a", directory / ".clone-b"
    a.write_bytes(b"x" * 4096)
    try:
        with open(a, "rb") as fa, open(b, "wb") as fb:
            fcntl.ioctl(fb.fileno(), _FICLONE, fa.fileno())
        return True
    except OSError:
        return False
    finally:
        a.unlink(missing_ok=True)
        b.unlink(missing_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to work (default: a temp dir in the repo's var/)")
    args = ap.parse_args()
    size = args.size_mb << 20
    base = Path(tempfile.mkdtemp(prefix="raw-admit-", dir=args.dir or Path(__file__).resolve().parents[1]))
    inbox, raw = base / "inbox", base / "raw"
    inbox.mkdir()
    raw.mkdir(mode=0o700)
    times: dict[str, list[float]] = {"rename+hash": [], "new inode": [], "re-hash": []}
    try:
        print(f"{args.size_mb} MiB file, {args.repeats} rounds, in {base} "
              f"(reflink: {'yes' if clones(base) else 'no, copies'})", flush=True)
        for r in range(args.repeats):
            for name in ("rename+hash", "new inode"):
                src, dst = inbox / f"f{r}-{name[:3]}.mp4", raw / f"r{r}-{name[:3]}.mp4"
                write_random(src, size)
                start = time.perf_counter()
                digest = rename_and_hash(src, dst) if name == "rename+hash" else move_in(src, dst, os.lstat(src))
                times[name].append(time.perf_counter() - start)
                if name == "new inode":
                    start = time.perf_counter()
                    assert sha256_of(dst) == digest
                    times["re-hash"].append(time.perf_counter() - start)
                dst.unlink()
            print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    base_median = statistics.median(times["rename+hash"])
    print(f"\n{'method':<14}{'median s':>10}{'MB/s':>10}{'x rename+hash':>15}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<14}{med:>10.2f}{size / 1e6 / med:>10.0f}{med / base_median:>15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
