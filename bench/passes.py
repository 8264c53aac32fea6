"""One decoding pass (detect, track and encode together) against two (detect all, then decode again).

    PYTHONPATH=daemon .venv/bin/python bench/passes.py [--frames 75] [--repeats 3]

`redact_video` encodes each frame as soon as tracking can no longer change its boxes, so the file
is decoded once and encoding overlaps detection; a policy whose tracking window would hold more
than `MAX_HELD_BYTES` of frames runs as two passes. This runs both on the same clips in the same
process (models loaded once), round-robin: the bench scene at 720p (H.264, cheap to decode) and
upscaled to 4K HEVC (what phones record: expensive to decode, capped to 1080p by the policy).
Prints median wall and CPU seconds of each, and checks that both produce the same frames.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.visual.synth: the bench scene

from tests.visual import synth

from redactd import log
from redactd.policy import RedactionPolicy, resolve_policy
from redactd.visual import render
from redactd.visual.detect import CompositeDetector, build_detector

TIMEOUT_S = 600


def hevc_4k(src: Path, dst: Path) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-vf", "scale=3840:2160",
                    "-c:v", "libx265", "-preset", "fast", "-crf", "22", "-x265-params", "log-level=error",
                    "-tag:v", "hvc1", str(dst)], check=True, timeout=TIMEOUT_S, capture_output=True)
    return dst


def one_run(clip: Path, out: Path, policy: RedactionPolicy, detector: CompositeDetector, single: bool) -> tuple[float, float]:
    """Wall and CPU seconds (this process, all threads) of one redaction."""
    render.MAX_HELD_BYTES = 512 * 1024 * 1024 if single else 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    render.redact_video(clip, out, policy, detector=detector)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=75)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    log.configure(level="warning")
    policy = resolve_policy(str(REPO / "policies" / "visual-default.yaml"))
    assert isinstance(policy, RedactionPolicy)
    cap = render.MAX_HELD_BYTES
    detector = build_detector(policy.detect)
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            clips = {
                "720p H.264": synth.bench_scene(tmp / "720.mp4", 720, args.frames).path,
                "4K HEVC": hevc_4k(synth.bench_scene(tmp / "1080.mp4", 1080, args.frames).path, tmp / "4k.mp4"),
            }
            for name, clip in clips.items():
                times: dict[str, list[tuple[float, float]]] = {"one pass": [], "two passes": []}
                for _ in range(args.repeats):
                    for mode, runs in times.items():
                        runs.append(one_run(clip, tmp / f"{mode[:3]}.mp4", policy, detector, mode == "one pass"))
                same = all(np.array_equal(a, b) for a, b in zip(
                    synth.decode_gray(tmp / "one.mp4"), synth.decode_gray(tmp / "two.mp4"), strict=True))
                print(f"\n{name}, {args.frames} frames; median of {args.repeats} runs; same frames: {same}")
                walls = {m: statistics.median(w for w, _ in t) for m, t in times.items()}
                cpus = {m: statistics.median(c for _, c in t) for m, t in times.items()}
                for mode in times:
                    print(f"  {mode:10s} wall {walls[mode]:6.2f} s  cpu {cpus[mode]:6.2f} s")
                print(f"  one pass / two passes: {walls['one pass'] / walls['two passes']:.2f} wall, "
                      f"{cpus['one pass'] / cpus['two passes']:.2f} CPU")
    finally:
        render.MAX_HELD_BYTES = cap
        detector.close()


if __name__ == "__main__":
    main()
