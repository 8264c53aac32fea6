"""Held-out cases drawn at random from a seed: fresh faces, sizes, motions and backgrounds.

The fixed cases in `tests.visual.heldout` are the ones every change was tested on; a threshold or
crop margin can end up fitted to them. These are built the same way (real photographs, real
faces, the same scorer) with everything drawn from ``numpy.random.default_rng(seed)``: which LFW
faces (never those the fixed cases use), their widths, speeds, directions, mirroring, in-plane
tilt, perspective turn, the edges they leave through, the photographs behind them, and (the
"dim" kind) how badly the camera filmed them: light, focus, sensor noise and compression, or
("shade") how dark each face lies in a lit scene. A new seed
is a new held-out set; the same seed always builds the same clips, so two versions can be compared.

    PYTHONPATH=daemon .venv/bin/python bench/visual.py --heldout all --seed 7 --no-deface --policy visual-fast
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from tests.visual import synth
from tests.visual.heldout import Case, lfw_of_width, mirrored, real_background, rotated, turned

#: LFW faces the fixed cases show; drawn sets take the other ones.
FIXED_LFW = frozenset({40, 44, 52, 57, 63, 68, 71, 77, 81, 85, 90, 96, 99})
#: LFW's faces are 25 px thumbnails (a face about 19 px wide): scaled up further than this they
#: are blurred blobs no detector, and few people, would call a face. Wider faces are the astronaut.
LFW_MAX_WIDTH = 40
#: Photographs without faces or print to draw backgrounds from.
BACKGROUNDS = ("rocket", "coffee", "chelsea", "brick", "grass", "gravel")


def _faces(rng: np.random.Generator, n: int) -> list[int]:
    pool = [i for i in range(100) if i not in FIXED_LFW]
    return [int(i) for i in rng.choice(pool, size=n, replace=False)]


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    names = tuple(str(n) for n in rng.choice(BACKGROUNDS, size=3, replace=False))
    return real_background(width, height, names)


def _face(rng: np.random.Generator, index: int, width_px: int, x: float, y: float, vx: float, vy: float
          ) -> synth.Sprite:
    """An LFW face, or one time in four (always above `LFW_MAX_WIDTH`) the astronaut; mirrored half the time."""
    astronaut = rng.random() < 0.25 or width_px > LFW_MAX_WIDTH
    sp = synth.astronaut(width_px, x, y, vx, vy) if astronaut else lfw_of_width(index, width_px, x, y, vx, vy)
    return mirrored(sp) if rng.random() < 0.5 else sp


def _small(seed: int, path: Path, height: int, frames: int) -> synth.Clip:
    """Six faces of 24-44 px (at any frame size) anywhere, each at its own speed
    (0.5-16 px a frame) and direction, some tilted up to 20 degrees."""
    rng = np.random.default_rng([seed, 1])
    width = height * 16 // 9
    sprites = _small_faces(rng, width, height)
    return synth.make_clip(path, width, height, frames, sprites, bg=_background(rng, width, height), crf=18)


def _small_faces(rng: np.random.Generator, width: int, height: int) -> list[synth.Sprite]:
    """The six faces of "small" (and "dim"), drawn from ``rng``."""
    k = height / 720
    sprites = []
    for index in _faces(rng, 6):
        fw = int(rng.uniform(24, 44))  # at every size: small faces are the hard case
        speed, angle = rng.uniform(0.5, 16) * k, rng.uniform(0, 2 * math.pi)
        sp = _face(rng, index, fw, rng.uniform(0.02, 0.9) * width, rng.uniform(0.02, 0.85) * height,
                   speed * math.cos(angle), speed * math.sin(angle))
        if rng.random() < 0.4:
            sp = rotated(sp, float(rng.uniform(-20, 20)))
        sprites.append(sp)
    return sprites


def _edges(seed: int, path: Path, height: int, frames: int) -> synth.Clip:
    """Four faces of 30-200 px (at 720p) leaving through edges drawn at random (right, left,
    bottom, top), each starting whole against its edge and leaving within the clip."""
    rng = np.random.default_rng([seed, 2])
    width = height * 16 // 9
    k = height / 720
    sprites = []
    for index in _faces(rng, 4):
        sp = _face(rng, index, int(rng.uniform(30, 200) * k), 0, 0, 0, 0)
        h, w = sp.image.shape[:2]
        leave = float(rng.uniform(0.6, 1.0)) * frames  # frames it takes to leave
        edge = rng.choice(["right", "left", "bottom", "top"])
        along_x, along_y = rng.uniform(0.05, 0.95) * (width - w), rng.uniform(0.05, 0.95) * (height - h)
        if edge == "right":
            sp = replace(sp, x=width - w, y=along_y, vx=w * 1.05 / leave)
        elif edge == "left":
            sp = replace(sp, x=0.0, y=along_y, vx=-w * 1.05 / leave)
        elif edge == "bottom":
            sp = replace(sp, x=along_x, y=height - h, vy=h * 1.05 / leave)
        else:
            sp = replace(sp, x=along_x, y=0.0, vy=-h * 1.05 / leave)
        sprites.append(sp)
    return synth.make_clip(path, width, height, frames, sprites, bg=_background(rng, width, height), crf=18)


def _mixed(seed: int, path: Path, height: int, frames: int) -> synth.Clip:
    """Five faces of 30-150 px (at 720p), each tilted 10-50 degrees either way or turned by a
    perspective warp (squeeze 0.5-0.8), moving slowly."""
    rng = np.random.default_rng([seed, 3])
    width = height * 16 // 9
    k = height / 720
    sprites = []
    for n, index in enumerate(_faces(rng, 5)):
        sp = _face(rng, index, int(rng.uniform(30, 150) * k), (0.03 + 0.19 * n) * width,
                   rng.uniform(0.05, 0.6) * height, rng.uniform(-3, 3) * k, rng.uniform(-1.5, 1.5) * k)
        if rng.random() < 0.5:
            sp = rotated(sp, float(rng.choice([-1, 1]) * rng.uniform(10, 50)))
        else:
            sp = turned(sp, float(rng.uniform(0.5, 0.8)))
        sprites.append(sp)
    return synth.make_clip(path, width, height, frames, sprites, bg=_background(rng, width, height), crf=18)


def _dim(seed: int, path: Path, height: int, frames: int) -> synth.Clip:
    """Six faces of 24-44 px as in "small", filmed as a phone films a stage or a room at night:
    the picture dimmed to 25-50 % with its blacks lifted, a lens slightly out of focus (blur σ up
    to 1.2 px at 720p), fresh sensor noise on every frame (σ 2-6 grey levels) and compressed hard
    (CRF 26-32, a phone's or a stream's rate, against the other cases' 18)."""
    rng = np.random.default_rng([seed, 4])
    width = height * 16 // 9
    sprites = _small_faces(rng, width, height)
    gain, lift = float(rng.uniform(0.25, 0.5)), float(rng.uniform(4, 12))
    focus, noise = float(rng.uniform(0, 1.2)) * height / 720, float(rng.uniform(2, 6))
    crf = int(rng.integers(26, 33))

    def film(i: int, picture: np.ndarray) -> np.ndarray:
        out = picture.astype(np.float32)
        if focus > 0.1:
            out = cv2.GaussianBlur(out, (0, 0), focus)
        grain = np.random.default_rng([seed, 4, i]).normal(0.0, noise, out.shape).astype(np.float32)
        return np.clip(out * gain + lift + grain, 0, 255).astype(np.uint8)

    clip = synth.make_clip(path, width, height, frames, sprites, bg=_background(rng, width, height), crf=crf,
                           film=film)
    # Scored on the range the dimmed picture spans, as a face recogniser normalises contrast:
    # against 255, a dim face pixelated beyond recognition read as "partly covered" or worse.
    return replace(clip, data_range=255 * gain)


def _shade(seed: int, path: Path, height: int, frames: int) -> synth.Clip:
    """Six faces of 24-44 px as in "small", in shade in a lit scene (under a brim, in a doorway,
    against a window): each face's own picture darkened to 25-50 % with its blacks lifted, while
    the photographs around it keep their light; light sensor noise (σ 2-5) and CRF 23."""
    rng = np.random.default_rng([seed, 5])
    width = height * 16 // 9
    gain, lift = float(rng.uniform(0.25, 0.5)), float(rng.uniform(4, 12))
    sprites = [replace(sp, image=np.clip(sp.image.astype(np.float32) * gain + lift, 0, 255).astype(np.uint8))
               for sp in _small_faces(rng, width, height)]
    noise = float(rng.uniform(2, 5))

    def film(i: int, picture: np.ndarray) -> np.ndarray:
        grain = np.random.default_rng([seed, 5, i]).normal(0.0, noise, picture.shape).astype(np.float32)
        return np.clip(picture.astype(np.float32) + grain, 0, 255).astype(np.uint8)

    clip = synth.make_clip(path, width, height, frames, sprites, bg=_background(rng, width, height), crf=23,
                           film=film)
    # Faces are scored on the range their shaded picture spans, as "dim" ones are.
    return replace(clip, data_range=255 * gain)


def cases(seed: int) -> tuple[Case, ...]:
    """The drawn cases of ``seed``: small faces, edge exits, tilted and turned faces, small faces
    filmed in dim light, small faces in shade in a lit scene."""
    return (
        Case(f"drawn{seed}-small", partial(_small, seed)),
        Case(f"drawn{seed}-edges", partial(_edges, seed)),
        Case(f"drawn{seed}-mixed", partial(_mixed, seed)),
        Case(f"drawn{seed}-dim", partial(_dim, seed)),
        Case(f"drawn{seed}-shade", partial(_shade, seed)),
    )
