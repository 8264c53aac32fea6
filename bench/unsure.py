"""How many candidates the unsure look (``tilt_unsure``) needs: small tilted faces found per look.

    PYTHONPATH=daemon .venv/bin/python bench/unsure.py [--height 720] [--trials 50] [--seed 1]
                                                     [--tilt 25,50] [--widths 24,26,28,30,32] [--ks 0,4,8,12,16,24,32]

Each trial is one frame: three of scikit-image's real photographs side by side (drawn from
fourteen), and five of Labeled Faces in the Wild's real faces (drawn from the 100, each mirrored
or not) ``--widths`` px wide, tilted in the picture plane by ``--tilt`` degrees (either way),
pasted at places drawn so that no two touch. The frame goes through the shipped default's full
pass as the detector runs it (mirror pad, half look) once in colour and once in grey (the looks
the full passes alternate). Per face and look: whether the full pass found it; else where it
ranks among the unsure look's candidates (`CenterFaceDetector._unsure_candidates`: the pass's
surest small misses) and whether the look around that candidate (`_unsure_look`, turned ±45
degrees) finds it. A face counts as found when a box's centre lies inside its ground truth (the
bounding box of the tilted face's ellipse). Printed: the share of face-looks found with the
first K candidates looked at, for each K in ``--ks``. Every look is run once, so the K columns
come from the same frames and each includes the one before it.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.visual import heldout, synth

from redactd.policy import resolve_policy
from redactd.visual.detect import CenterFaceDetector

#: Face-free photographs scikit-image ships (colour and grey), backgrounds for the faces.
PHOTOS = ("rocket", "coffee", "chelsea", "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
          "coins", "page", "moon", "retina", "clock", "cell")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def frame_of_faces(rng: random.Random, width: int, height: int, widths: list[int], tilt: tuple[float, float]
                   ) -> tuple[np.ndarray, list[synth.GtBox]]:
    """One trial's frame and its five faces' ground-truth boxes."""
    frame = heldout.real_background(width, height, rng.sample(PHOTOS, 3))
    taken: list[synth.GtBox] = []
    gts = []
    for _ in range(5):
        sp = heldout.lfw_of_width(rng.randrange(100), rng.choice(widths), 0, 0)
        if rng.random() < 0.5:
            sp = heldout.mirrored(sp)
        sp = heldout.rotated(sp, rng.uniform(*tilt) * rng.choice((-1, 1)))
        h, w = sp.image.shape[:2]
        for _ in range(100):  # a place where it touches none placed before (20 px apart)
            x, y = rng.randrange(8, width - w - 8), rng.randrange(8, height - h - 8)
            near = (x - 20, y - 20, x + w + 20, y + h + 20)
            if not any(near[0] < t[2] and t[0] < near[2] and near[1] < t[3] and t[1] < near[3] for t in taken):
                break
        taken.append(near)
        gts.append(synth.place(frame, sp, x, y))
    return frame, gts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tilt", default="25,50", help="degrees, least and most (either way)")
    ap.add_argument("--widths", type=_ints, default=[24, 26, 28, 30, 32], help="face widths, px")
    ap.add_argument("--ks", type=_ints, default=[0, 4, 8, 12, 16, 24, 32], help="candidates looked at")
    args = ap.parse_args()
    lo, hi = (float(v) for v in args.tilt.split(","))
    cfg = resolve_policy("visual-default", REPO / "policies").detect.faces
    det = CenterFaceDetector(cfg.model_copy(update={"tilt_unsure": max(1, cfg.tilt_unsure)}), threads=1)
    rng = random.Random(args.seed)
    width, height = args.height * 16 // 9, args.height
    # Per face-look: found by the full pass (rank -1), else the candidate rank whose look found it
    # (None: no candidate on it, or its look did not find it).
    ranks: list[int | None] = []
    candidates: list[int] = []
    for trial in range(args.trials):
        frame, gts = frame_of_faces(rng, width, height, args.widths, (lo, hi))
        for grey in (False, True):
            det._look.grey = grey  # the model is shown the frame in grey (`_in_grey`)
            found, unsure = det._whole(frame)
            cands = det._unsure_candidates(frame, unsure, found)
            candidates.append(len(cands))
            for gt in gts:
                if synth.centred_in(found, gt):
                    ranks.append(-1)
                    continue
                rank = next((i for i, b in enumerate(cands) if synth.centred_in([b], gt)), None)
                hit = rank is not None and bool(synth.centred_in(det._unsure_look(frame, cands[rank]), gt))
                ranks.append(rank if hit else None)
        print(f"trial {trial + 1}/{args.trials}", file=sys.stderr, flush=True)
    n = len(ranks)
    print(f"{width}x{height}, {args.trials} frames, {n} face-looks (faces {args.widths} px, tilted {lo:g}-{hi:g} "
          f"degrees, colour and grey); candidates per look: median {int(np.median(candidates))}, "
          f"most {max(candidates)}; policy tilt_unsure: {cfg.tilt_unsure}")
    print("| candidates looked at | " + " | ".join(str(k) for k in args.ks) + " |")
    print("|---|" + "---|" * len(args.ks))
    print("| face-looks found | " + " | ".join(
        f"{sum(r is not None and r < k for r in ranks) / n:.1%}" for k in args.ks) + " |")


if __name__ == "__main__":
    main()
