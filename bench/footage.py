"""Over-redaction and speed on real footage, where no ground truth exists: what share of the picture gets obscured.

    PYTHONPATH=daemon .venv/bin/python bench/footage.py [VIDEO ...] [--policy NAME] [--no-deface]

Held-out clips are built from photographs; this runs on real video. With no VIDEO it takes the
real footage Debian's ``opencv-doc`` package ships (``apt-get install opencv-doc``; not installed
by ``make``): ``vtest.avi``, 795 frames of a CCTV-style camera over a campus square with people
walking (heads ~10-15 px, a sign, parked cars, grass). Per video and tool: frames per second and
CPU ms per frame (user + system of the process), the share of the picture obscured (16 px blocks
changed beyond codec noise, every 5th frame: `heldout.obscured_share`), and for redactd, from its
sidecar, the face and text tracks and how the text boxes sit: the share of frames with one, the
share of those frames' picture they cover, and the largest one. Text detection boxes what it takes
for print; on footage with little print, most of what it boxes is not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
from tests.visual import heldout, synth

from visual import gray_frames, run  # bench/visual.py

OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")


def text_cover(sidecar: dict, width: int, height: int) -> tuple[int, float, float]:
    """(frames with a text box, mean share of those frames' picture under text boxes, largest box's share)."""
    frames = 0
    shares: list[float] = []
    largest = 0.0
    scale = 4  # boxes laid on a quarter-size mask: their union, not their sum
    for frame in sidecar["frames"]:
        boxes = [b for b in frame["boxes"] if b["class"] == "text"]
        if not boxes:
            continue
        frames += 1
        mask = np.zeros((height // scale + 1, width // scale + 1), bool)
        for b in boxes:
            x0, y0 = max(0, int(b["x0"]) // scale), max(0, int(b["y0"]) // scale)
            x1, y1 = min(width, int(b["x1"]) + scale) // scale, min(height, int(b["y1"]) + scale) // scale
            mask[y0:y1, x0:x1] = True
            largest = max(largest, (min(width, b["x1"]) - max(0, b["x0"])) * (min(height, b["y1"]) - max(0, b["y0"]))
                          / (width * height))
        shares.append(float(mask.mean()))
    return frames, float(np.mean(shares)) if shares else 0.0, largest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", type=Path)
    ap.add_argument("--policy", default="visual-default", help="a shipped policy (policies/NAME.yaml)")
    ap.add_argument("--deface", default=shutil.which("deface") or str(Path(sys.executable).parent / "deface"))
    ap.add_argument("--no-deface", action="store_true")
    args = ap.parse_args()
    videos = args.videos or [OPENCV_DOC / "vtest.avi"]
    missing = [v for v in videos if not v.is_file()]
    if missing:
        hint = " (apt-get install opencv-doc)" if OPENCV_DOC / "vtest.avi" in missing else ""
        raise SystemExit(f"no such video: {', '.join(map(str, missing))}{hint}")
    print(f"{'video':16s} {'tool':9s} {'frames':>6s} {'fps':>6s} {'cpu ms/f':>8s} {'obscured':>8s} "
          f"{'faces':>5s} {'texts':>5s} {'text frames':>11s} {'text cover':>10s} {'largest':>7s}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for video in videos:
            original = synth.decode_gray(video)
            height, width = original[0].shape
            out, side = tmp / "redactd.mp4", tmp / "redactd.json"
            wall, cpu, _ = run([sys.executable, "-m", "redactd", "--log-level", "warning", "redact", str(video),
                                "-o", str(out), "--force", "--no-progress", "--sidecar", str(side),
                                "--policy", str(REPO / "policies" / f"{args.policy}.yaml")])
            sidecar = json.loads(side.read_text())
            share = heldout.obscured_share(original, gray_frames(out, width, height))
            frames, cover, largest = text_cover(sidecar, width, height)
            tracks = sidecar["counts"]["tracks"]
            n = len(original)
            print(f"{video.name[:16]:16s} {'redactd':9s} {n:6d} {n / wall:6.2f} {1000 * cpu / n:8.0f} {100 * share:7.2f}% "
                  f"{tracks.get('face', 0):5d} {tracks.get('text', 0):5d} {100 * frames / n:10.1f}% "
                  f"{100 * cover:9.1f}% {100 * largest:6.1f}%", flush=True)
            if not args.no_deface:
                out = tmp / "deface.mp4"
                wall, cpu, _ = run([args.deface, str(video), "-o", str(out), "--backend", "onnxrt"])
                share = heldout.obscured_share(original, gray_frames(out, width, height))
                print(f"{video.name[:16]:16s} {'deface':9s} {n:6d} {n / wall:6.2f} {1000 * cpu / n:8.0f} "
                      f"{100 * share:7.2f}%", flush=True)


if __name__ == "__main__":
    main()
