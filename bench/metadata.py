"""Throughput of `clean_metadata` next to plain `ffmpeg -c copy` on the same file, same run.

    .venv/bin/python bench/metadata.py [--seconds 30] [--repeats 5] [--size 1920x1080]

Prints the median MB/s of each and their ratio (target: cleaner >= 0.8x of plain remux), for the
remux alone and for remux + the fail-closed verification the cleaner always runs.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redactd import log
from redactd.metadata import clean_metadata


def make_clip(path: Path, seconds: int, size: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=48000",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18",
                    "-c:a", "aac", "-metadata", "title=bench", str(path)], check=True)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", default="1920x1080")
    args = ap.parse_args()
    log.configure(level="warning")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "in.mp4"
        print(f"making a {args.seconds} s {args.size} H.264+AAC clip ...", file=sys.stderr)
        make_clip(src, args.seconds, args.size)
        mb = src.stat().st_size / 1e6
        plain, clean_only, clean_verified = [], [], []
        plain_argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-map", "0", "-c", "copy"]
        for i in range(args.repeats):
            plain.append(timed(functools.partial(subprocess.run, [*plain_argv, str(work / f"plain{i}.mp4")],
                                                 check=True)))
            clean_only.append(timed(functools.partial(clean_metadata, src, work / f"c{i}.mp4", keep_audio=True,
                                                      verify=False)))
            clean_verified.append(timed(functools.partial(clean_metadata, src, work / f"v{i}.mp4", keep_audio=True)))
            for p in work.glob("[pcv]*.mp4"):
                p.unlink()
        med = {name: statistics.median(v) for name, v in
               (("plain", plain), ("clean", clean_only), ("verified", clean_verified))}
        print(f"file: {mb:.1f} MB, {args.seconds} s {args.size}; median of {args.repeats} runs")
        print(f"{'':28}{'seconds':>9}{'MB/s':>9}{'x plain':>9}")
        for label, key in (("ffmpeg -c copy", "plain"), ("clean_metadata (remux)", "clean"),
                           ("clean_metadata + verify", "verified")):
            print(f"{label:28}{med[key]:9.3f}{mb / med[key]:9.1f}{med['plain'] / med[key]:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
