"""Where CenterFace stops finding faces as the head tilts in the picture plane or turns away.

    PYTHONPATH=daemon .venv/bin/python bench/pose.py [--height 720] [--sizes 120,40]
                                                   [--angles 0,30,45,60,75,90] [--squeeze 1,0.8,0.65,0.5,0.4,0.3]
                                                   [--rotations 45,60] [--tilt-width 960] [--no-upright]

Real photographs scikit-image ships (the astronaut, four LFW faces, the cameraman's real
three-quarter head; each also mirrored) pasted over a real background, eight faces per frame, one
frame per case and size, run through the full-resolution face pass of the shipped default
(`CenterFaceDetector.detect`). A face counts as found when a box's centre lies inside its
ground-truth box (for a tilted face, the bounding box of its tilted face ellipse). Tilts run both
ways (+ is anticlockwise); a turn is a perspective warp that narrows one side of the picture to
``squeeze`` of its height (a stand-in for a turned head: the picture is flat). ``--rotations``
adds the same table for the full pass plus passes on the frame rotated by ±each angle.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.visual import heldout, synth

from redactd.policy import FaceDetection
from redactd.visual.detect import Box, CenterFaceDetector


def sources(face_width: int) -> list[tuple[str, synth.Sprite]]:
    """The faces of one frame: (family, sprite), each family twice (as shot, mirrored)."""
    out = []
    for name, sp in (("astronaut", synth.astronaut(face_width, 0, 0)),
                     ("lfw", heldout.lfw_of_width(40, face_width, 0, 0)),
                     ("lfw", heldout.lfw_of_width(63, face_width, 0, 0)),
                     ("cameraman", synth.cameraman(face_width, 0, 0))):
        out += [(name, sp), (name, heldout.mirrored(sp))]
    return out


def frame_with(sprites: list[synth.Sprite], width: int, height: int) -> tuple[np.ndarray, list[synth.GtBox]]:
    """The sprites on a 4×2 grid over a real background; their ground-truth face boxes."""
    frame = heldout.real_background(width, height).copy()
    boxes = []
    for n, sp in enumerate(sprites):
        cw, ch = width // 4, height // 2
        h, w = sp.image.shape[:2]
        x = (n % 4) * cw + (cw - w) // 2
        y = (n // 4) * ch + (ch - h) // 2
        boxes.append(synth.place(frame, sp, x, y))
    return frame, boxes


def found(boxes: list[Box], gt: synth.GtBox) -> bool:
    return bool(synth.centred_in(boxes, gt))


def table(title: str, columns: list[str], detect: Callable[[np.ndarray], list[Box]], sizes: list[int],
          transform: Callable[[synth.Sprite, str], synth.Sprite], height: int) -> None:
    width = height * 16 // 9
    print(f"\n{title}: faces found of 8 (astronaut, LFW x2, cameraman: each as shot and mirrored)")
    print("| face px | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for size in sizes:
        row = []
        for col in columns:
            picked = sources(size)
            frame, gt = frame_with([transform(sp, col) for _, sp in picked], width, height)
            boxes = detect(frame)
            hits = [found(boxes, g) for g in gt]
            missed = sorted({name for (name, _), hit in zip(picked, hits, strict=True) if not hit})
            row.append(f"{sum(hits)}" + (f" ({', '.join(missed)} missed)" if missed else ""))
        print(f"| {size} | " + " | ".join(row) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--sizes", default="120,40")
    ap.add_argument("--angles", default="0,30,45,60,75,90")
    ap.add_argument("--squeeze", default="1,0.8,0.65,0.5,0.4,0.3")
    ap.add_argument("--rotations", default="", help="also with extra passes on the frame rotated by ± these")
    ap.add_argument("--tilt-width", type=int, default=FaceDetection().tilt_input_width,
                    help="model input width for the rotated passes")
    ap.add_argument("--no-upright", action="store_true", help="skip the upright-only tables")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    angles = [float(a) for a in args.angles.split(",")]
    signed = [str(s * a) for a in angles for s in ((1,) if a == 0 else (1, -1))]
    squeeze = args.squeeze.split(",")
    det = CenterFaceDetector(FaceDetection(tilt_angles=()), threads=2)

    def tilt(sp: synth.Sprite, col: str) -> synth.Sprite:
        return heldout.rotated(sp, float(col))

    def turn(sp: synth.Sprite, col: str) -> synth.Sprite:
        return sp if float(col) >= 1 else heldout.turned(sp, float(col))

    if not args.no_upright:
        table(f"tilted in plane (degrees), {args.height}p, full pass", signed, det.detect, sizes, tilt, args.height)
        table(f"turned (perspective squeeze), {args.height}p, full pass", squeeze, det.detect, sizes, turn, args.height)
    if args.rotations:
        extra = tuple(float(a) for a in args.rotations.split(","))
        tilted = CenterFaceDetector(FaceDetection(tilt_angles=extra, tilt_input_width=args.tilt_width), threads=2)
        table(f"tilted, full pass + passes at ±{args.rotations} fed at {args.tilt_width} px", signed, tilted.detect,
              sizes, tilt, args.height)


if __name__ == "__main__":
    main()
