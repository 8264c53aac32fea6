"""Scenes for validation tests and bench/validation.py: real faces on real photographs, redacted right or wrong.

Clips are composed with the visual tests' `synth` helpers (faces from scikit-image moving over a
background); here the background is one of scikit-image's face-free photographs and textures,
because those are what make Haar fire where no face is. An under-redacted output is made with the
real primary detector, told to forget every detection on one ground-truth face: one track is
then never obscured, exactly the leak validation must catch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skimage.data
import yaml

from redactd.policy import RedactionPolicy
from redactd.visual import redact_video
from redactd.visual.detect import CompositeDetector, Pending, build_detector
from tests.conftest import TEST_POLICIES
from tests.visual import synth  # the visual tests' clip builder, shared rather than copied

REPO = Path(__file__).resolve().parents[2]

#: scikit-image photographs and textures without human faces (a cat, coffee, a rocket, bricks…).
BACKGROUNDS = ("gradient", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "page", "coins")


def background(name: str, width: int, height: int) -> np.ndarray:
    """A full-frame BGR background: synth's gradient, or a scikit-image picture resized to fit."""
    if name == "gradient":
        return synth.background(width, height)
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Scene:
    clip: synth.Clip
    hidden: int | None  # index of the face the primary detector was told to miss


def make_scene(path: Path, bg: str, width: int = 320, height: int = 240, frames: int = 25,
               layout: int = 0) -> synth.Clip:
    """Two faces over ``bg``: the astronaut walking across, and a still face from LFW (face 1)."""
    if layout == 0:
        sprites = [synth.astronaut(min(width // 5, height // 4), width // 16, height // 12, vx=width / 110),
                   synth.lfw_face(3, width // 6, int(width * 0.68), height // 2)]
    else:
        sprites = [synth.astronaut(min(width // 6, height // 5), width // 2, height // 10, vy=height / 200),
                   synth.lfw_face(11, width // 7, width // 10, int(height * 0.55), vx=width / 300)]
    return synth.make_clip(path, width, height, frames, sprites, stills=[(background(bg, width, height), 0, 0)])


def covers(box: dict[str, Any], face: synth.GtBox) -> bool:
    """A sidecar ``box`` holds most of ground-truth ``face``: its centre and 80 % of its area."""
    fx0, fy0, fx1, fy1 = face
    ix = max(0.0, min(box["x1"], fx1) - max(box["x0"], fx0))
    iy = max(0.0, min(box["y1"], fy1) - max(box["y0"], fy0))
    return (box["x0"] <= (fx0 + fx1) / 2 <= box["x1"] and box["y0"] <= (fy0 + fy1) / 2 <= box["y1"]
            and ix * iy >= 0.8 * (fx1 - fx0) * (fy1 - fy0))


def face_tracks(detections: dict[str, Any], clip: synth.Clip) -> list[set[int]]:
    """For each of ``clip``'s faces, the tracks of a sidecar's ``detections`` that cover it; each
    face must be covered on every frame (asserted). One track a face: tracked without a break.

    Other tracks are not looked at: on these 320x240 scenes a ~40 px box at a mirrored corner of
    the picture, scoring ~0.13 against small_threshold 0.1, comes and goes with a pixel's rounding
    (an extra blur, not a leak)."""
    frames = detections["frames"]
    assert len(frames) == len(clip.faces)
    tracks = []
    for face in range(len(clip.faces[0])):
        covering = [[b["track"] for b in f["boxes"] if covers(b, clip.faces[f["i"]][face])] for f in frames]
        assert all(covering), face
        tracks.append({track for ids in covering for track in ids})
    return tracks


class ForgetfulDetector(CompositeDetector):
    """The real primary detectors, minus every box whose centre lies in one ground-truth face."""

    def __init__(self, inner: CompositeDetector, forget: Sequence[synth.GtBox]) -> None:
        super().__init__(inner.detectors)
        self.inner = inner
        self.forget = list(forget)
        self.calls = 0

    def close(self) -> None:
        super().close()
        self.inner.close()

    def submit(self, frame: np.ndarray, at: tuple[int, int] | None = None) -> Pending:
        x0, y0, x1, y1 = self.forget[min(self.calls, len(self.forget) - 1)]  # frames come in order
        self.calls += 1
        return Pending.resolved([b for b in super().submit(frame, at).result()
                                 if not (x0 <= (b.x0 + b.x1) / 2 <= x1 and y0 <= (b.y0 + b.y1) / 2 <= y1)])


#: Where a forgotten face is on a frame that does not show it: nowhere in the picture.
NOWHERE: synth.GtBox = (-10, -10, -9, -9)


def face_ids(clip: synth.Clip) -> list[list[int]]:
    """Per frame, which face each ground-truth box is (the box's index where the clip names none)."""
    return clip.face_ids if any(clip.face_ids) else [list(range(len(f))) for f in clip.faces]


def render(clip: synth.Clip, out: Path, policy: RedactionPolicy, hide_face: int | None = None) -> dict[str, Any]:
    """Redact ``clip`` into ``out`` with the real primary detector; returns the detections sidecar.

    ``hide_face``: the face (`face_ids`) the detector must miss in every frame that shows it (an
    under-redaction).
    """
    sidecar = out.with_suffix(".json")
    detector = build_detector(policy.detect)
    if hide_face is not None:
        detector = ForgetfulDetector(detector, [faces[ids.index(hide_face)] if hide_face in ids else NOWHERE
                                                for faces, ids in zip(clip.faces, face_ids(clip), strict=True)])
    try:
        redact_video(clip.path, out, policy, sidecar_path=sidecar, detector=detector)
    finally:
        detector.close()
    doc: dict[str, Any] = json.loads(sidecar.read_text())
    return doc


def faces_policy(**validation: Any) -> RedactionPolicy:
    """The shipped visual policy with text detection off (these scenes hold no text worth the time).

    ``validation`` overrides keys of its validation section (tests sample their 1 s clips densely).
    """
    data = yaml.safe_load((TEST_POLICIES / "visual-default.yaml").read_text())
    data["detect"]["text"]["enabled"] = False
    data["validation"].update(validation)
    return RedactionPolicy.model_validate(data)
