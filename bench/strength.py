"""How much identity a face recogniser still finds in faces redactd obscured, by face width and method.

    .venv-bench/bin/python bench/strength.py [--widths 24,32,48,64,96,160] [--methods blur,pixelate,fill]
                                             [--policy visual-default] [--obscure KEY=VALUE ...] [--chips DIR]

(`make bench-venv` builds .venv-bench; for this bench it adds dlib-bin, dlib's prebuilt wheel, and
face-recognition-models, whose sdist ships dlib's ResNet face recogniser and 5-point landmark
predictor, CC0. Neither is ever a redactd dependency.)

Faces: every real face photograph scikit-image ships: the astronaut, the cameraman, and the 100
faces of Labeled Faces in the Wild in `lfw_subset` (25×25 grey crops); 102 people. Each is
mirrored, scaled to each face width and pasted into 1920×1080 frames over real photographs, one
face per cell, and the clip goes through `redact_video` with the policy as shipped (tracking pad,
head cover, the obscurer on the YUV planes, x264 at the policy's CRF) for every method the policy
schema offers. Only detection is replaced: the detector stage returns each frame's true face boxes,
so what is measured is the obscuring, not detection recall. `none` is the same clip through the
same path with no box: the mirrored, rescaled, re-encoded face as it is.

The recogniser: dlib's face_recognition_model_v1 (a ResNet; 128-d descriptors; dlib documents
same person below a Euclidean distance of 0.6). Each face is cut out with margin and upscaled so
the face box is 120 px. Alignment comes from the *unredacted* picture (for an output, the same
place in the clip before redaction) and the same alignment cuts the 150 px chip from the output:
the best alignment an attacker could hope for, so the distances measure the obscuring alone. Where
dlib's own HOG face detector finds the face there, its 5 landmarks align dlib's face chip
(`get_face_chip`, padding 0.25); where it does not (the cameraman's three-quarter view, some tiny
LFW crops) the chip is a fixed crop centred on the face box with the same padding. The table's
`aligned` column counts the faces aligned by landmarks. The gallery is each person's original
photograph at its own resolution, unmirrored.

Prints per method and face width: the median distance between an output face and the same person's
original, the share under 0.6, rank-1 identification (nearest of the 102 gallery faces is the
right person; chance is 1 in 102) with the binomial chance of doing at least that well by guessing,
and the existing leak scorer's SSIM (median, and the share at or above `synth.LEAK_SSIM`). For
reference, the same figures for pairs of *different* people in the gallery (LFW's subset may hold
a person twice; it does not say). ``--obscure`` changes the policy's obscure section (checked by the
policy schema), e.g. ``--obscure cover=face --obscure blocks_across=8 --obscure min_block_px=4`` (the weakest a policy may ask for):
the weakest obscuring a policy may ask for.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "daemon"), str(REPO)]

import av
import cv2
import numpy as np
import skimage.data
import yaml
from recognise import SAME_PERSON, Recogniser
from tests.visual import heldout, synth

from redactd import log
from redactd.policy import Obscure, RedactionPolicy, resolve_policy
from redactd.visual.detect import Box, CompositeDetector, ModelInfo
from redactd.visual.render import redact_video

FRAME = (1920, 1080)
#: The cameraman's face in `skimage.data.camera()`: CenterFace's box on the full picture, rounded.
_CAMERAMAN_FACE = (202, 118, 258, 196)


# --------------------------------------------------------------------------- faces


def cameraman(face_width: int) -> synth.Sprite:
    """The cameraman's head scaled so that his face is ``face_width`` pixels wide."""
    x0, y0, x1, y1 = _CAMERAMAN_FACE
    w, h = x1 - x0, y1 - y0
    cx0, cy0, cx1, cy1 = max(0, x0 - w), max(0, y0 - h), x1 + w, y1 + h
    grey = skimage.data.camera()[cy0:cy1, cx0:cx1]
    k = face_width / w
    img = cv2.resize(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), None, fx=k, fy=k,
                     interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
    face = (round((x0 - cx0) * k), round((y0 - cy0) * k), round((x1 - cx0) * k), round((y1 - cy0) * k))
    return synth.Sprite(img, face, 0, 0)


def people() -> list[tuple[str, int]]:
    """(name, size) of every person, the size `sprite` takes for their own photograph as it is: the
    face's width for the astronaut and the cameraman, the 25 px crop for an LFW face."""
    lfw = len(skimage.data.lfw_subset()) // 2  # the first half are faces, the rest are not
    return [("astronaut", 85), ("cameraman", _CAMERAMAN_FACE[2] - _CAMERAMAN_FACE[0]),
            *((f"lfw{i:02d}", 25) for i in range(lfw))]


def sprite(name: str, face_width: int) -> synth.Sprite:
    """Person ``name`` with a face ``face_width`` px wide (the original photograph at its native width)."""
    if name == "astronaut":
        return synth.astronaut(face_width, 0, 0)
    if name == "cameraman":
        return cameraman(face_width)
    index = int(name.removeprefix("lfw"))
    # lfw_face's crop is all face with an eighth of margin: a 25 px crop is the photograph itself.
    if face_width == 25:
        return synth.lfw_face(index, 25, 0, 0)
    return heldout.lfw_of_width(index, face_width, 0, 0)


def fit(sp: synth.Sprite, cell: tuple[int, int, int, int]) -> synth.Sprite:
    """``sp`` with its face box centred in ``cell`` (x0, y0, x1, y1), its picture cut to the cell."""
    cx0, cy0, cx1, cy1 = cell
    f = sp.face
    x = (cx0 + cx1) // 2 - (f[0] + f[2]) // 2
    y = (cy0 + cy1) // 2 - (f[1] + f[3]) // 2
    h, w = sp.image.shape[:2]
    ix0, iy0 = max(0, cx0 - x), max(0, cy0 - y)
    ix1, iy1 = min(w, cx1 - x), min(h, cy1 - y)
    image = np.ascontiguousarray(sp.image[iy0:iy1, ix0:ix1])
    face = (f[0] - ix0, f[1] - iy0, f[2] - ix0, f[3] - iy0)
    return replace(sp, image=image, face=face, x=x + ix0, y=y + iy0)


@dataclass(frozen=True)
class Sheet:
    """A clip of faces at one width, one per cell, and who is in which frame and box."""

    clip: synth.Clip
    who: list[list[str]]  # per frame, the person in each ground-truth box (same order)


def sheet(path: Path, names: Sequence[str], face_width: int) -> Sheet:
    """Every person mirrored at ``face_width``, laid out in cells with room for the head cover."""
    faces = [heldout.mirrored(sprite(n, face_width)) for n in names]
    tallest = max(sp.face[3] - sp.face[1] for sp in faces)
    # The obscured head reaches ~0.34 face widths beside the box, ~0.64 heights above, ~0.22 below.
    cw, ch = 2 * face_width + 8, math.ceil(2.2 * tallest) + 8
    cols, rows = FRAME[0] // cw, FRAME[1] // ch
    # As many faces in every frame (the last may have fewer), in the same cells from the first
    # frame on: a cell's box then never reaches back into a frame before its first face.
    per_frame = -(-len(faces) // -(-len(faces) // (cols * rows)))
    sprites = []
    for k, sp in enumerate(faces):
        frame, cell = divmod(k, per_frame)
        r, c = divmod(cell, cols)
        placed = fit(sp, (c * cw, r * ch, (c + 1) * cw, (r + 1) * ch))
        sprites.append(replace(placed, visible=(frame, frame)))
    frames = -(-len(faces) // per_frame)
    bg = heldout.real_background(*FRAME)
    clip = synth.make_clip(path, *FRAME, frames, sprites, bg=bg)
    who = [[names[j] for j in ids] for ids in clip.face_ids]
    return Sheet(clip, who)


# --------------------------------------------------------------------------- redaction


class GivenBoxes:
    """The detection stage replaced by the clip's true face boxes, frame by frame in decode order."""

    info = ModelInfo("ground truth", "none", "0" * 64, "none")

    def __init__(self, faces: Sequence[Sequence[synth.GtBox]]) -> None:
        self.faces = faces
        self.frame = 0

    def detect(self, frame: np.ndarray) -> list[Box]:
        boxes = self.faces[self.frame]
        self.frame += 1
        return [Box(x0, y0, x1, y1, 1.0, "face") for x0, y0, x1, y1 in boxes]


def with_obscure(policy: RedactionPolicy, **changes: object) -> RedactionPolicy:
    """``policy`` with its obscure section changed, through the schema's own checks."""
    obscure = Obscure.model_validate({**policy.obscure.model_dump(), **changes})
    return policy.model_copy(update={"obscure": obscure})


def redact(src: Path, dst: Path, policy: RedactionPolicy, faces: Sequence[Sequence[synth.GtBox]]) -> None:
    """The daemon's render path on ``src`` with ``faces`` as what the detectors found."""
    sidecar = dst.with_suffix(".json")
    redact_video(src, dst, policy, sidecar_path=sidecar, detector=CompositeDetector([GivenBoxes(faces)]))
    # Each face must be obscured by its own box alone. Tracking holds a box for a few frames after
    # its cell's last face (an empty cell in the last frame: harmless); a held box over another
    # face would obscure it more than the policy does for one face, and flatter the figures.
    for frame in json.loads(sidecar.read_text())["frames"]:
        held = [b for b in frame["boxes"] if b["source"] == "filled"]
        if any(b["x0"] < x1 and x0 < b["x1"] and b["y0"] < y1 and y0 < b["y1"]
               for b in held for x0, y0, x1, y1 in faces[frame["i"]]):
            raise SystemExit(f"{dst.name}: frame {frame['i']}: a box held by tracking covers a face")


def decode_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


# --------------------------------------------------------------------------- scoring


def at_least_by_chance(hits: int, n: int, p: float) -> float:
    """P(X ≥ hits) for X ~ Binomial(n, p): how likely guessing does as well."""
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(hits, n + 1))


@dataclass(frozen=True)
class Row:
    method: str
    width: int
    median: float
    under: float
    hits: int
    n: int
    chance_p: float
    ssim: float
    leaked: float


def score(method: str, width: int, probes: np.ndarray, who: Sequence[str], gallery: np.ndarray,
          names: Sequence[str], ssim: Sequence[float]) -> Row:
    index = {n: i for i, n in enumerate(names)}
    truth = np.array([index[n] for n in who])
    dist = np.linalg.norm(probes[:, None, :] - gallery[None, :, :], axis=2)
    own = dist[np.arange(len(truth)), truth]
    hits = int((dist.argmin(axis=1) == truth).sum())
    return Row(method, width, float(np.median(own)), float((own < SAME_PERSON).mean()), hits, len(truth),
               at_least_by_chance(hits, len(truth), 1 / len(names)), statistics.median(ssim),
               float(np.mean([s >= synth.LEAK_SSIM for s in ssim])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="24,32,48,64,96,160")
    ap.add_argument("--methods", default="blur,pixelate,fill")
    ap.add_argument("--policy", default="visual-default", help="a shipped policy, policies/NAME.yaml")
    ap.add_argument("--obscure", action="append", default=[], metavar="KEY=VALUE",
                    help="change the policy's obscure section (blocks_across=12, cover=face...)")
    ap.add_argument("--chips", type=Path, help="write every face chip dlib saw here (PNG), to look at")
    args = ap.parse_args()
    log.configure(level="warning")
    started = time.perf_counter()
    policy = resolve_policy(str(REPO / "policies" / f"{args.policy}.yaml"))
    changes = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.obscure)}
    policy = with_obscure(policy, **changes)
    rec = Recogniser()
    roster = people()
    names = [n for n, _ in roster]

    def save(tag: str, chips: Sequence[np.ndarray], labels: Sequence[str]) -> None:
        if args.chips is None:
            return
        args.chips.mkdir(parents=True, exist_ok=True)
        for chip, label in zip(chips, labels, strict=True):
            cv2.imwrite(str(args.chips / f"{tag}_{label}.png"), cv2.cvtColor(chip, cv2.COLOR_RGB2BGR))

    # The gallery: each person's own photograph, unmirrored, at its native width.
    gallery_chips, gallery_shapes = [], []
    for name, native in roster:
        sp = sprite(name, native)
        rgb = cv2.cvtColor(sp.image, cv2.COLOR_BGR2RGB)
        gallery_shapes.append(rec.align(rgb, sp.face))
        gallery_chips.append(rec.chip(rgb, sp.face, gallery_shapes[-1]))
    save("gallery", gallery_chips, names)
    gallery = rec.embed(gallery_chips)
    gallery_aligned = sum(shape is not None for shape in gallery_shapes)
    pair = np.linalg.norm(gallery[:, None, :] - gallery[None, :, :], axis=2)[np.triu_indices(len(names), 1)]

    obscure = policy.obscure.model_dump(exclude={"fill_color"})
    print(f"policy {policy.id} v{policy.version}: obscure {obscure}, "
          f"tracking pad {policy.tracking.pad}, crf {policy.encode.crf}")
    print(f"{len(names)} people (astronaut, cameraman, {len(names) - 2} LFW faces); same person under "
          f"{SAME_PERSON}; rank-1 chance {100 / len(names):.1f} %; gallery aligned by landmarks "
          f"{gallery_aligned}/{len(names)}")
    apart = 100 * np.mean(pair < SAME_PERSON)
    print(f"reference, different people (gallery pairs, n={pair.size}): "
          f"median distance {np.median(pair):.3f}, under {SAME_PERSON}: {apart:.1f} %")
    print(f"\n{'method':9s} {'width':>5s} {'median d':>8s} {'d<0.6':>6s} {'rank-1':>12s} {'P(chance)':>9s} "
          f"{'SSIM med':>8s} {'SSIM leak':>9s} {'aligned':>7s}")
    methods = ["none", *args.methods.split(",")]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for width in (int(w) for w in args.widths.split(",")):
            sh = sheet(tmp / f"faces{width}.mp4", names, width)
            clip = sh.clip
            source = decode_rgb(clip.path)
            source_grey = synth.decode_gray(clip.path)
            who = [n for frame in sh.who for n in frame]
            boxes = [(f, b) for f, frame in enumerate(clip.faces) for b in frame]
            shapes = [rec.align(source[f], b) for f, b in boxes]
            aligned = sum(shape is not None for shape in shapes)
            for method in methods:
                out = tmp / f"{method}{width}.mp4"
                if method == "none":
                    redact(clip.path, out, policy, [[] for _ in clip.faces])
                else:
                    redact(clip.path, out, with_obscure(policy, method=method), clip.faces)
                frames = decode_rgb(out)
                chips = [rec.chip(frames[f], b, s) for (f, b), s in zip(boxes, shapes, strict=True)]
                save(f"{method}{width}", chips, who)
                _, _, ssim = synth.leaked_face_frames(source_grey, synth.decode_gray(out), clip.faces)
                row = score(method, width, rec.embed(chips), who, gallery, names, ssim)
                print(f"{row.method:9s} {row.width:5d} {row.median:8.3f} {100 * row.under:5.1f}% "
                      f"{row.hits:4d}/{row.n} {100 * row.hits / row.n:4.1f}% {row.chance_p:9.2g} "
                      f"{row.ssim:8.2f} {100 * row.leaked:8.1f}% {aligned:7d}", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
