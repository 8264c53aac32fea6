"""The second-opinion detectors that look at a redacted output: other model families than the primary's.

OpenCV's Haar cascades (frontal and profile) and HOG people detector ship inside OpenCV 4.x
itself, so they need no download and share nothing with CenterFace but the frame. CenterFace runs
again as a *stronger* pass: on a larger picture and at a lower threshold than the policy's primary
pass, so what the primary barely missed shows up here. User YOLO weights join when configured.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from redactd.errors import ConfigError, DetectError
from redactd.policy import Detection, FaceDetection, ValidationDetectors
from redactd.visual.detect import Box, CenterFaceDetector, CompositeDetector, ModelInfo, build_detector

#: Most frames a face detector is better at upscaled; beyond 2x it only invents faces in noise.
MAX_UPSCALE = 2.0


@dataclass(frozen=True)
class Finding:
    """One box a second-opinion detector saw in one output frame, and which family saw it."""

    frame: int
    box: Box
    detector: str
    family: str


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scaled(frame: np.ndarray, width: int, upscale: bool) -> tuple[np.ndarray, float]:
    """The frame resized to ``width`` (never up unless ``upscale``, and at most 2x), and the factor."""
    h, w = frame.shape[:2]
    k = width / w
    k = min(k, MAX_UPSCALE) if upscale else min(k, 1.0)
    if abs(k - 1.0) < 1e-3:
        return frame, 1.0
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    return cv2.resize(frame, (round(w * k), round(h * k)), interpolation=interp), k


def _unscale(boxes: Sequence[Box], k: float, label: str | None = None) -> list[Box]:
    return [Box(b.x0 / k, b.y0 / k, b.x1 / k, b.y1 / k, b.score, label or b.label) for b in boxes]


class HaarFaces:
    """OpenCV's frontal and profile face cascades; the profile one also on the mirrored frame.

    ``minNeighbors`` 5 rather than OpenCV's 3: on blurred outputs 3 let single stray windows through.
    Scale steps of 1.2 rather than 1.1 halve the cost (three passes at 640 px took 1.5 s on a
    loaded 2-core machine) and still found every unobscured test face (bench/validation.py).
    """

    SCALE_STEP = 1.2

    family = "haar"

    def __init__(self, input_width: int, min_size_px: int) -> None:
        root = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]  # not in OpenCV's stubs
        self.frontal_path = root / "haarcascade_frontalface_default.xml"
        self.profile_path = root / "haarcascade_profileface.xml"
        self.frontal = cv2.CascadeClassifier(str(self.frontal_path))
        self.profile = cv2.CascadeClassifier(str(self.profile_path))
        if self.frontal.empty() or self.profile.empty():
            raise ConfigError(f"OpenCV's Haar cascades are missing from {root}: reinstall opencv-python (<5)")
        self.input_width = input_width
        self.min_size_px = min_size_px
        self.infos = [
            ModelInfo("haar-frontal", self.frontal_path.name, _sha256(self.frontal_path), f"opencv-{cv2.__version__}"),
            ModelInfo("haar-profile", self.profile_path.name, _sha256(self.profile_path), f"opencv-{cv2.__version__}"),
        ]

    def detect(self, frame: np.ndarray) -> list[Box]:
        small, k = _scaled(frame, self.input_width, upscale=False)
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        side = max(12, int(self.min_size_px * k))
        found: list[Box] = []
        try:
            for x, y, w, h in self.frontal.detectMultiScale(grey, self.SCALE_STEP, 5, minSize=(side, side)):
                found.append(Box(x, y, x + w, y + h, 1.0, "face"))
            for x, y, w, h in self.profile.detectMultiScale(grey, self.SCALE_STEP, 5, minSize=(side, side)):
                found.append(Box(x, y, x + w, y + h, 1.0, "face"))
            width = grey.shape[1]
            for x, y, w, h in self.profile.detectMultiScale(cv2.flip(grey, 1), self.SCALE_STEP, 5, minSize=(side, side)):
                found.append(Box(width - x - w, y, width - x, y + h, 1.0, "face"))
        except cv2.error as exc:
            raise DetectError(f"Haar cascade failed: {exc}") from exc
        return _unscale([Box(float(b.x0), float(b.y0), float(b.x1), float(b.y1), b.score, b.label)
                         for b in found], k)


class HogPeople:
    """OpenCV's default HOG people detector (64x128 windows): full-body persons."""

    family = "hog"

    def __init__(self, input_width: int) -> None:
        self.hog = cv2.HOGDescriptor()
        coeffs = np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32)
        self.hog.setSVMDetector(coeffs)
        self.input_width = input_width
        self.infos = [ModelInfo("hog-people", "opencv-default-people-detector",
                                hashlib.sha256(coeffs.tobytes()).hexdigest(), f"opencv-{cv2.__version__}")]

    def detect(self, frame: np.ndarray) -> list[Box]:
        small, k = _scaled(frame, self.input_width, upscale=False)
        try:
            rects, weights = self.hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
        except cv2.error as exc:
            raise DetectError(f"HOG people detector failed: {exc}") from exc
        scores = np.asarray(weights).reshape(-1)
        return _unscale([Box(float(x), float(y), float(x + w), float(y + h), float(s), "person")
                         for (x, y, w, h), s in zip(rects, scores, strict=True) if s > 0.5], k)


class StrongCenterFace:
    """CenterFace on the frame upscaled towards ``input_width`` (at most 2x), at a low threshold."""

    family = "centerface"

    def __init__(self, input_width: int, threshold: float, threads: int | None = None) -> None:
        self.input_width = input_width
        cfg = FaceDetection.model_validate({"threshold": threshold, "input_width": input_width})
        self.model = CenterFaceDetector(cfg, threads)
        base = self.model.info
        self.infos = [ModelInfo("centerface-strong", base.file, base.sha256, base.runtime)]

    def detect(self, frame: np.ndarray) -> list[Box]:
        big, k = _scaled(frame, self.input_width, upscale=True)
        return _unscale(self.model.detect(big), k)


class YoloSecond:
    """The user's YOLO weights, reusing the primary's loaders (``.onnx`` or ``.pt``)."""

    family = "yolo"

    def __init__(self, detection: Detection) -> None:
        self.composite: CompositeDetector = build_detector(detection)
        self.infos = list(self.composite.infos)

    def detect(self, frame: np.ndarray) -> list[Box]:
        return self.composite.detect(frame)

    def close(self) -> None:
        self.composite.close()


SecondDetector = HaarFaces | HogPeople | StrongCenterFace | YoloSecond


def build_second_opinion(cfg: ValidationDetectors, min_size_px: int) -> list[SecondDetector]:
    """The detectors the policy's ``validation.detectors`` section asks for."""
    out: list[SecondDetector] = []
    if cfg.haar:
        out.append(HaarFaces(cfg.haar_input_width, min_size_px))
    if cfg.centerface:
        out.append(StrongCenterFace(cfg.centerface_input_width, cfg.centerface_threshold))
    if cfg.hog_people:
        out.append(HogPeople(cfg.haar_input_width))
    if cfg.yolo is not None:
        off = Detection.model_validate({"faces": {"enabled": False}, "text": {"enabled": False},
                                        "yolo": cfg.yolo.model_dump()})
        out.append(YoloSecond(off))
    if not out:
        raise ConfigError("validation is enabled but names no detector: enable haar, centerface, "
                          "hog_people or yolo, or set validation.enabled: false")
    return out
