"""Synthetic test clips built from real photographs scikit-image ships, with ground-truth face boxes.

Also the leak scorer shared by the tests and bench/visual.py: a face counts as leaked in a frame
when its crop in the output is still structurally similar to the same crop in the input.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import skimage.data
from skimage.metrics import structural_similarity

GtBox = tuple[int, int, int, int]

#: The astronaut photograph cropped to her head, and her face inside that crop (measured by hand
#: on the image: brow-line hair to chin, ear to ear).
_ASTRONAUT_CROP = (slice(20, 240), slice(130, 330))
_ASTRONAUT_FACE: GtBox = (54, 46, 139, 161)
#: The cameraman (scikit-image's ``camera``, CC0, Lav Varshney): a real head turned about 70°
#: to its left, looking through a camera. Cropped to his head and shoulders; inside the crop his
#: face (ear to nose tip, brow to chin) and his whole head (back of the hair to the fringe, crown
#: to chin), measured by hand on the image.
_CAMERAMAN_CROP = (slice(40, 240), slice(130, 330))
_CAMERAMAN_FACE: GtBox = (50, 60, 132, 155)
_CAMERAMAN_HEAD: GtBox = (28, 22, 140, 157)

#: Calibrated on a 640x360 clip with faces of 30-100 px: the same faces re-encoded without
#: redaction (x264 crf 20) scored 0.985-0.99, redacted ones at most 0.41; the threshold sits
#: between with margin on both sides (checked again by test_render.py TestLeakScorer).
LEAK_SSIM = 0.55
#: Share of a still's visible ink left unchanged from which a text-frame counts as leaked.
LEAK_INK = 0.10


@dataclass(frozen=True)
class Sprite:
    """A face image moving in a straight line; ``face`` is the face box inside ``image``."""

    image: np.ndarray
    face: GtBox
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    wobble: float = 0.0  # amplitude (px) of a sideways zig-zag on top of the straight line
    visible: tuple[int, int] | None = None  # first and last frame it is in the picture
    mask: np.ndarray | None = None  # which pixels of ``image`` are the picture (a rotated one has corners)

    def at(self, i: int) -> tuple[int, int]:
        # Period of 6 frames: motion that interpolation between detections cannot predict.
        zig = self.wobble * math.sin(2 * math.pi * i / 6)
        return round(self.x + self.vx * i + zig), round(self.y + self.vy * i - zig)

    def shown(self, i: int) -> bool:
        return self.visible is None or self.visible[0] <= i <= self.visible[1]


@lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    rgb = skimage.data.astronaut()[_ASTRONAUT_CROP]
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)


@lru_cache(maxsize=1)
def _lfw() -> np.ndarray:
    # The first 100 of lfw_subset are faces (25×25 grey crops of Labeled Faces in the Wild).
    return (skimage.data.lfw_subset()[:100] * 255).astype(np.uint8)


def astronaut(face_width: int, x: float, y: float, vx: float = 0.0, vy: float = 0.0, **kw: Any) -> Sprite:
    """The astronaut's head scaled so that her face is ``face_width`` pixels wide."""
    img = _astronaut()
    k = face_width / (_ASTRONAUT_FACE[2] - _ASTRONAUT_FACE[0])
    scaled = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    face = tuple(round(v * k) for v in _ASTRONAUT_FACE)
    return Sprite(scaled, face, x, y, vx, vy, **kw)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def _cameraman() -> np.ndarray:
    grey = skimage.data.camera()[_CAMERAMAN_CROP]
    return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2BGR)


def cameraman(face_width: int, x: float, y: float, vx: float = 0.0, vy: float = 0.0, **kw: Any) -> Sprite:
    """The cameraman's turned head scaled so that his face (ear to nose) is ``face_width`` pixels wide."""
    k = face_width / (_CAMERAMAN_FACE[2] - _CAMERAMAN_FACE[0])
    scaled = cv2.resize(_cameraman(), None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
    face = tuple(round(v * k) for v in _CAMERAMAN_FACE)
    return Sprite(scaled, face, x, y, vx, vy, **kw)  # type: ignore[arg-type]


def cameraman_head(face_width: int) -> GtBox:
    """The cameraman's whole head inside `cameraman`'s picture at that ``face_width``."""
    k = face_width / (_CAMERAMAN_FACE[2] - _CAMERAMAN_FACE[0])
    return tuple(round(v * k) for v in _CAMERAMAN_HEAD)  # type: ignore[return-value]


def lfw_face(index: int, size: int, x: float, y: float, vx: float = 0.0, vy: float = 0.0, **kw: Any) -> Sprite:
    """Face ``index`` of Labeled Faces in the Wild, ``size`` px square (the crop is all face)."""
    grey = cv2.resize(_lfw()[index], (size, size), interpolation=cv2.INTER_CUBIC)
    inset = size // 8  # the crop's outer eighth is background and hair
    face = (inset, inset, size - inset, size - inset)
    return Sprite(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), face, x, y, vx, vy, **kw)


def background(width: int, height: int) -> np.ndarray:
    """A smooth colour gradient with a few flat shapes: something to check is left untouched."""
    gx = np.linspace(60, 160, width, dtype=np.float32)[None, :]
    gy = np.linspace(40, 140, height, dtype=np.float32)[:, None]
    bg = np.stack([gx + 0 * gy, (gx + gy) / 2, gy + 0 * gx], axis=-1).astype(np.uint8)
    cv2.rectangle(bg, (width // 10, height // 2), (width // 4, height - height // 8), (30, 60, 150), -1)
    cv2.circle(bg, (width * 3 // 4, height // 4), height // 10, (160, 200, 60), -1)
    return bg


def plate(text: str = "KX 427 PB", scale: float = 1.2) -> np.ndarray:
    """A white licence-plate-like rectangle with dark characters."""
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    img = np.full((th + 24, tw + 24, 3), 235, np.uint8)
    cv2.rectangle(img, (1, 1), (img.shape[1] - 2, img.shape[0] - 2), (20, 20, 20), 2)
    cv2.putText(img, text, (12, th + 12), cv2.FONT_HERSHEY_SIMPLEX, scale, (15, 15, 15), 2, cv2.LINE_AA)
    return img


def document(width: int = 220, height: int = 160) -> np.ndarray:
    """A document-like page: a title and lines of small printed text."""
    img = np.full((height, width, 3), 245, np.uint8)
    cv2.putText(img, "INVOICE 2231", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (10, 10, 10), 2, cv2.LINE_AA)
    lines = ["Name: J. Doe", "Street 14, Town", "Acct 5521 8890", "Total 412.50 EUR"]
    for j, line in enumerate(lines):
        cv2.putText(img, line, (10, 55 + 26 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (30, 30, 30), 1, cv2.LINE_AA)
    return img


@dataclass(frozen=True)
class Clip:
    path: Path
    width: int
    height: int
    fps: int
    frames: int
    faces: list[list[GtBox]]  # per frame, ground-truth face boxes (clipped to the frame)
    stills: list[GtBox] = field(default_factory=list)  # static text objects (plates, pages)
    still_images: list[np.ndarray] = field(default_factory=list)  # their pictures (BGR), same order
    face_ids: list[list[int]] = field(default_factory=list)  # per frame, which sprite each face box is
    # The grey levels the picture spans: less than 255 for a clip filmed in dim light, whose
    # faces the held-out scorer then compares on that range (`heldout.score`).
    data_range: float = 255.0


def paste(frame: np.ndarray, img: np.ndarray, x: int, y: int, mask: np.ndarray | None = None) -> None:
    """``img`` into ``frame`` at (x, y), clipped to the frame (a picture may hang over its edge)."""
    h, w = img.shape[:2]
    fx0, fy0 = max(0, x), max(0, y)
    fx1, fy1 = min(frame.shape[1], x + w), min(frame.shape[0], y + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    part = img[fy0 - y : fy1 - y, fx0 - x : fx1 - x]
    if mask is None:
        frame[fy0:fy1, fx0:fx1] = part
    else:
        keep = mask[fy0 - y : fy1 - y, fx0 - x : fx1 - x]
        frame[fy0:fy1, fx0:fx1][keep] = part[keep]


def place(frame: np.ndarray, sp: Sprite, x: int, y: int) -> GtBox:
    """``sp`` pasted into ``frame`` at (x, y) with its mask; its face's ground-truth box there."""
    paste(frame, sp.image, x, y, sp.mask)
    return (x + sp.face[0], y + sp.face[1], x + sp.face[2], y + sp.face[3])


def centred_in(boxes: Iterable[Any], gt: GtBox) -> list[Any]:
    """The ``boxes`` (anything with x0, y0, x1, y1) whose centre lies inside ``gt``: how the
    benches and tests count a face as found."""
    x0, y0, x1, y1 = gt
    return [b for b in boxes if x0 <= (b.x0 + b.x1) / 2 <= x1 and y0 <= (b.y0 + b.y1) / 2 <= y1]


def make_clip(
    path: Path,
    width: int,
    height: int,
    frames: int,
    sprites: Sequence[Sprite],
    fps: int = 25,
    stills: Sequence[tuple[np.ndarray, int, int]] = (),
    audio_hz: float | None = None,
    pix_fmt: str = "yuv420p",
    crf: int = 12,
    bg: np.ndarray | None = None,
    film: Callable[[int, np.ndarray], np.ndarray] | None = None,
) -> Clip:
    """Encode a clip (H.264 in MP4, high quality) and return it with its ground truth.

    ``film(i, picture)``, when given, is what a camera does to frame ``i`` before it is encoded
    (dim light, sensor noise, a lens out of focus): the ground truth is the same.

    A face box is clipped to the frame; one with nothing left inside it, or with more than half of
    it hidden behind a picture pasted later in the same frame, is not in that frame's ground truth
    (drawn held-out sets let pictures cross: a face under another photograph cannot leak); one
    partly hidden is cut down to the rectangle around its part that shows (`_unhidden`).
    """
    bg = background(width, height) if bg is None else bg
    gt: list[list[GtBox]] = []
    face_ids: list[list[int]] = []
    still_boxes = []
    for img, x, y in stills:
        still_boxes.append((x, y, x + img.shape[1], y + img.shape[0]))

    def picture(i: int) -> np.ndarray:
        frame = bg.copy()
        for img, x, y in stills:
            paste(frame, img, x, y)
        boxes = []
        ids = []
        # Which sprite each pixel shows (-1: the background), to drop faces hidden by later ones.
        owner = np.full((height, width), -1, dtype=np.int32)
        for j, sp in enumerate(sprites):
            if not sp.shown(i):
                continue
            x, y = sp.at(i)
            paste(frame, sp.image, x, y, sp.mask)
            paste(owner, np.full(sp.image.shape[:2], j, dtype=np.int32), x, y, sp.mask)
            f = sp.face
            box = (max(0, x + f[0]), max(0, y + f[1]), min(width, x + f[2]), min(height, y + f[3]))
            if box[2] > box[0] and box[3] > box[1]:
                boxes.append(box)
                ids.append(j)
        shown = [float(np.mean(owner[y0:y1, x0:x1] == j)) >= 0.5 for (x0, y0, x1, y1), j in zip(boxes, ids, strict=True)]
        gt.append([_unhidden(b, owner, j) for b, j, keep in zip(boxes, ids, shown, strict=True) if keep])
        face_ids.append([j for j, keep in zip(ids, shown, strict=True) if keep])
        return frame if film is None else film(i, frame)

    write_h264(path, (picture(i) for i in range(frames)), width, height, fps, crf, pix_fmt, audio_hz, frames)
    return Clip(path, width, height, fps, frames, gt, still_boxes, [img for img, _, _ in stills], face_ids)


def _unhidden(box: GtBox, owner: np.ndarray, j: int) -> GtBox:
    """``box`` (sprite ``j``'s face) cut down to the rectangle around what no later picture hides:
    a face whose right third lies under a later photograph is scored on its left two thirds, not
    on the photograph (which no tool should obscure, and which kept such a frame "partly covered")."""
    x0, y0, x1, y1 = box
    visible = owner[y0:y1, x0:x1] <= j
    cols, rows = np.flatnonzero(visible.any(axis=0)), np.flatnonzero(visible.any(axis=1))
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def write_h264(path: Path, pictures: Iterable[np.ndarray], width: int, height: int, fps: int = 25, crf: int = 12,
               pix_fmt: str = "yuv420p", audio_hz: float | None = None, frames: int = 0) -> None:
    """Encode BGR ``pictures`` as H.264 in MP4 (with a tone of ``audio_hz`` for ``frames`` frames' time)."""
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
    vs.options = {"crf": str(crf), "preset": "ultrafast"}
    audio = _tone_stream(out) if audio_hz is not None else None
    for i, frame in enumerate(pictures):
        vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
        vf.pts = i
        for packet in vs.encode(vf.reformat(format=pix_fmt)):
            out.mux(packet)
    for packet in vs.encode(None):
        out.mux(packet)
    if audio is not None and audio_hz is not None:
        write_tone(out, audio, audio_hz, frames / fps)
    out.close()


def stored_sideways(upright: Path, path: Path) -> Path:
    """What a phone writes for an upright clip: landscape coded frames plus "turn 90°" in the
    display matrix. FFmpeg 5.1 writes the matrix from the 'rotate' tag on a stream copy only."""
    turned = path.with_name(path.stem + "-coded.mp4")
    ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i"]
    subprocess.run([*ffmpeg, str(upright), "-vf", "transpose=clock", "-c:v", "libx264", "-crf", "12",
                    "-preset", "ultrafast", str(turned)], check=True, timeout=120)
    subprocess.run([*ffmpeg, str(turned), "-c", "copy", "-metadata:s:v", "rotate=90", str(path)],
                   check=True, timeout=120)
    return path


def camera_clip(path: Path, scene: np.ndarray, faces: Sequence[GtBox], poses: Sequence[np.ndarray], width: int,
                height: int, fps: int = 25, crf: int = 18, walkers: Sequence[Sprite] = ()) -> Clip:
    """A camera moving over a still ``scene`` (BGR, with ``faces`` in it, in scene pixels): frame
    ``i`` is the scene under ``poses[i]`` (a 2×3 affine matrix from scene to frame pixels),
    resampled bilinearly as a real camera's subpixel motion is. ``walkers`` move in the scene
    while the camera moves (each pasted at its ``at(i)`` in scene pixels; their face ids follow
    the still faces'). Each face's ground truth is the bounding box of its box's corners moved,
    clipped to the frame."""
    gt: list[list[GtBox]] = []
    ids: list[list[int]] = []
    for i, pose in enumerate(poses):
        boxes, which = [], []
        placed = [*faces, *((x + sp.face[0], y + sp.face[1], x + sp.face[2], y + sp.face[3])
                            for sp in walkers for x, y in [sp.at(i)])]
        for j, (x0, y0, x1, y1) in enumerate(placed):
            # Rounded first: a quarter turn's cos(90°) of 6e-17 must not floor 126 to 125.
            corners = np.round(np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], np.float64) @ pose.T, 6)
            bx0, by0 = max(0, math.floor(corners[:, 0].min())), max(0, math.floor(corners[:, 1].min()))
            bx1, by1 = min(width, math.ceil(corners[:, 0].max())), min(height, math.ceil(corners[:, 1].max()))
            if bx1 > bx0 and by1 > by0:
                boxes.append((bx0, by0, bx1, by1))
                which.append(j)
        gt.append(boxes)
        ids.append(which)

    def picture(i: int, pose: np.ndarray) -> np.ndarray:
        seen = scene
        if walkers:
            seen = scene.copy()
            for sp in walkers:
                paste(seen, sp.image, *sp.at(i), sp.mask)
        return cv2.warpAffine(seen, pose, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    write_h264(path, (picture(i, pose) for i, pose in enumerate(poses)), width, height, fps, crf)
    return Clip(path, width, height, fps, len(poses), gt, face_ids=ids)


def bench_scene(path: Path, height: int, frames: int, fps: int = 25) -> Clip:
    """The clip bench/visual.py scores tools on (16:9 at ``height``); tests reuse its hard cases."""
    width = height * 16 // 9
    k = height / 720
    sprites = [
        astronaut(int(36 * k), 40 * k, 80 * k, 6 * k, 0),
        astronaut(int(120 * k), 500 * k, 200 * k, -4 * k, 0),
        lfw_face(5, int(48 * k), 900 * k, 500 * k, -5 * k, -1 * k),
        lfw_face(9, int(40 * k), 1100 * k, 100 * k, -3 * k, 2 * k),
        # Starts against the big astronaut picture: the hard case.
        lfw_face(0, int(44 * k), 790 * k, 300 * k, 3 * k, 0),
        # Zig-zags 12 px either way every 3 frames: interpolation between detections cannot follow.
        # (Kept clear of the other pictures: a face hidden behind another picture is not a leak.)
        astronaut(int(60 * k), 300 * k, 540 * k, 2 * k, 0, wobble=12 * k),
        # In the picture for 5 frames only, popping in and out.
        lfw_face(14, int(56 * k), 1000 * k, 330 * k, 0, 0, visible=(31, 35)),
        # A small real face (36 px at 720p): CenterFace alone finds it in 0/15 frames at a 768 px
        # input and 9/15 at 960, so it keeps the bench from flattering a smaller input width.
        lfw_face(21, int(36 * k), 620 * k, 40 * k, 2 * k, 1 * k),
        # One frame only, and an odd one: what detecting on every 2nd frame cannot see by design.
        lfw_face(30, int(56 * k), 1120 * k, 420 * k, 0, 0, visible=(61, 61)),
    ]
    stills = [(plate(scale=1.5 * k), int(800 * k), int(600 * k)),
              (document(int(220 * k), int(160 * k)), int(60 * k), int(420 * k))]
    return make_clip(path, width, height, frames, sprites, fps=fps, stills=stills, crf=18)


def _tone_stream(out: av.container.OutputContainer, rate: int = 48000) -> av.audio.stream.AudioStream:
    stream = out.add_stream("aac", rate=rate)
    stream.layout = "mono"
    return stream


def write_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, hz: float,
               seconds: float, rate: int = 48000) -> None:
    """A sine tone (a stand-in for a voice) into an AAC stream made by `_tone_stream`."""
    t = np.arange(int(rate * seconds)) / rate
    signal = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None]
    for k in range(0, signal.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(signal[:, k : k + 1024]), format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = k
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def decode_gray(path: Path) -> list[np.ndarray]:
    """Every frame of a file as 8-bit luma."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


def similarity(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM of two same-size grey crops (window shrunk for tiny crops), on a picture spanning
    ``data_range`` grey levels: SSIM's stabilising constants scale with the range, so a dim face
    blurred beyond recognition still reads as "the same" when scored against 255."""
    side = min(a.shape[0], a.shape[1])
    win = max(3, min(7, side if side % 2 else side - 1))
    return float(structural_similarity(a, b, win_size=win, data_range=data_range))


def leaked_face_frames(
    original: Sequence[np.ndarray], redacted: Sequence[np.ndarray], faces: Sequence[Sequence[GtBox]]
) -> tuple[int, int, list[float]]:
    """(leaked, total) ground-truth face-frames, and every score: the scorer for tests and bench."""
    leaked = total = 0
    scores = []
    for orig, out, boxes in zip(original, redacted, faces, strict=False):
        for x0, y0, x1, y1 in boxes:
            x0, y0 = max(0, x0), max(0, y0)
            x1, y1 = min(orig.shape[1], x1), min(orig.shape[0], y1)
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            s = similarity(orig[y0:y1, x0:x1], out[y0:y1, x0:x1])
            scores.append(s)
            total += 1
            leaked += s >= LEAK_SSIM
    return leaked, total, scores


def leaked_text_frames(
    original: Sequence[np.ndarray], redacted: Sequence[np.ndarray], clip: Clip
) -> tuple[int, int, list[float]]:
    """(leaked, total) text-frames of the clip's stills (plates, pages), and every score.

    The score is the share of the print's visible ink left as it was: ink pixels of the still
    that no moving picture covers in the original frame (a plate's border is not print), unchanged
    (within codec noise) in the output. In the bench clips obscured print scores 0.00, untouched
    print 1.00; a still-frame leaks from `LEAK_INK`, which one legible line of the five-line page
    passes (0.15-0.16); a single word may not.
    """
    leaked = total = 0
    scores = []
    for (x0, y0, x1, y1), img in zip(clip.stills, clip.still_images, strict=True):
        ink = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.int16)
        for orig, out in zip(original, redacted, strict=False):
            before = orig[y0:y1, x0:x1].astype(np.int16)
            visible = (ink < 100) & (np.abs(before - ink) < 30)
            visible[:4], visible[-4:], visible[:, :4], visible[:, -4:] = False, False, False, False  # a plate's border
            if visible.sum() < 20:
                continue
            kept = float((np.abs(out[y0:y1, x0:x1].astype(np.int16) - before)[visible] < 40).mean())
            scores.append(kept)
            total += 1
            leaked += kept >= LEAK_INK
    return leaked, total, scores
