"""Decode and encode through PyAV in process versus raw frames piped to/from the ffmpeg CLI.

    PYTHONPATH=daemon .venv/bin/python bench/codec_path.py [--frames 150] [--repeats 3]

The visual pipeline needs every frame as planar YUV in Python (to obscure) and back into x264.
Prints the median frames per second of each path at 720p and 1080p, same clip, same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

import av
import numpy as np

TIMEOUT_S = 600


def make_clip(path: Path, size: str, frames: int) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=25", "-frames:v", str(frames), "-c:v", "libx264",
                    "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=TIMEOUT_S, capture_output=True)


def decode_pyav(path: Path) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray())  # yuv420p as one (h*3/2, w) array
    return out


def decode_pipe(path: Path, width: int, height: int) -> list[np.ndarray]:
    size = width * height * 3 // 2
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "rawvideo",
                             "-pix_fmt", "yuv420p", "-"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = []
    while chunk := proc.stdout.read(size):
        out.append(np.frombuffer(chunk, np.uint8).reshape(height * 3 // 2, width))
    proc.wait(timeout=TIMEOUT_S)
    return out


def encode_pyav(frames: list[np.ndarray], width: int, height: int, dst: Path) -> None:
    with av.open(str(dst), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.thread_type = "FRAME"
        s.options = {"crf": "20", "preset": "veryfast"}
        for i, arr in enumerate(frames):
            f = av.VideoFrame.from_ndarray(arr, format="yuv420p")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)


def encode_pipe(frames: list[np.ndarray], width: int, height: int, dst: Path) -> None:
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt",
                             "yuv420p", "-s", f"{width}x{height}", "-r", "25", "-i", "-", "-c:v", "libx264",
                             "-crf", "20", "-preset", "veryfast", str(dst)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for arr in frames:
        proc.stdin.write(arr.tobytes())
    proc.stdin.close()
    proc.wait(timeout=TIMEOUT_S)


def median_fps(fn, frames: int, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return frames / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((1280, 720), (1920, 1080)):
            clip = Path(tmp) / f"{height}.mp4"
            make_clip(clip, f"{width}x{height}", args.frames)
            frames = decode_pyav(clip)
            n = len(frames)
            w, h, a, b = width, height, Path(tmp) / "a.mp4", Path(tmp) / "b.mp4"
            rows = {
                "decode pyav": median_fps(partial(decode_pyav, clip), n, args.repeats),
                "decode pipe": median_fps(partial(decode_pipe, clip, w, h), n, args.repeats),
                "encode pyav": median_fps(partial(encode_pyav, frames, w, h, a), n, args.repeats),
                "encode pipe": median_fps(partial(encode_pipe, frames, w, h, b), n, args.repeats),
            }
            print(f"{width}x{height} ({n} frames, median of {args.repeats}):")
            for name, fps in rows.items():
                print(f"  {name:12s} {fps:7.1f} fps")
            print(f"  pyav/pipe: decode {rows['decode pyav'] / rows['decode pipe']:.2f}x, "
                  f"encode {rows['encode pyav'] / rows['encode pipe']:.2f}x")


if __name__ == "__main__":
    main()
