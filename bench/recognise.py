"""dlib's face recogniser for the benches (`make bench-venv`; never a redactd dependency).

bench/strength.py asks it how much identity the obscuring leaves; bench/visual.py (`--identity`)
asks it whether the face-frames SSIM calls leaked still show the same person. dlib-bin runs it;
the weights (ResNet descriptor, 5-point landmarks, CC0) come from face-recognition-models' sdist.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

try:
    import dlib
except ImportError:  # the main venv: say where it is instead of a traceback
    raise SystemExit("dlib is not installed here: run `make bench-venv` and use .venv-bench/bin/python") from None

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.visual import synth

#: dlib's documented decision threshold: descriptors closer than this are the same person.
SAME_PERSON = 0.6
#: The face box is upscaled to this width before landmarks and chip (dlib's chip is 150 px with
#: padding 0.25 on each side: a face of about 100 px).
VIEW_PX = 120


class Recogniser:
    """dlib's 5-point landmarks and ResNet descriptor, from the files face-recognition-models ships."""

    def __init__(self) -> None:
        spec = find_spec("face_recognition_models")  # located, not imported: its __init__ needs pkg_resources
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("face-recognition-models is not installed: run `make bench-venv`")
        models = Path(next(iter(spec.submodule_search_locations))) / "models"
        self.landmarks = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.model = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self.detector = dlib.get_frontal_face_detector()  # in dlib itself, no weights file

    @staticmethod
    def view(rgb: np.ndarray, box: synth.GtBox) -> tuple[np.ndarray, dlib.rectangle]:
        """The face with a face width of margin around, scaled to a `VIEW_PX` face, and the square
        box (the face's width, centred on it: the shape of dlib's own detector boxes) inside it."""
        x0, y0, x1, y1 = box
        w = x1 - x0
        pad = cv2.copyMakeBorder(rgb, w, w, w, w, cv2.BORDER_REPLICATE)
        crop = pad[y0 : y1 + 2 * w, x0 : x1 + 2 * w]
        k = VIEW_PX / w
        big = cv2.resize(crop, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
        cx, cy = (w + w / 2) * k, (w + (y1 - y0) / 2) * k
        half = VIEW_PX / 2
        return big, dlib.rectangle(round(cx - half), round(cy - half), round(cx + half), round(cy + half))

    def align(self, rgb: np.ndarray, box: synth.GtBox) -> dlib.full_object_detection | None:
        """The 5 landmarks, when dlib's own (HOG) face detector finds this face in the view: its
        box is what the landmark model was trained on. None when it does not (a profile, a tiny
        LFW crop): the chip is then a fixed centred crop."""
        big, rect = self.view(rgb, box)
        found = [d for d in self.detector(big, 1) if overlap(d, rect) >= 0.3]
        if not found:
            return None
        return self.landmarks(big, max(found, key=lambda d: overlap(d, rect)))

    def chip(self, rgb: np.ndarray, box: synth.GtBox, shape: dlib.full_object_detection | None) -> np.ndarray:
        """dlib's 150 px face chip (padding 0.25), aligned on ``shape``, or the box's square with
        the same padding, centred, when there is none."""
        big, rect = self.view(rgb, box)
        if shape is not None:
            return np.asarray(dlib.get_face_chip(big, shape, size=150, padding=0.25))
        m = VIEW_PX // 4
        pad = cv2.copyMakeBorder(big, m, m, m, m, cv2.BORDER_REPLICATE)
        square = pad[rect.top() : rect.bottom() + 2 * m, rect.left() : rect.right() + 2 * m]
        return cv2.resize(square, (150, 150), interpolation=cv2.INTER_AREA)

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([np.asarray(d) for d in self.model.compute_face_descriptor(list(chips))])


def overlap(a: dlib.rectangle, b: dlib.rectangle) -> float:
    """Intersection over union of two dlib rectangles."""
    inter = a.intersect(b).area() if a.intersect(b).width() > 0 and a.intersect(b).height() > 0 else 0
    return inter / (a.area() + b.area() - inter)
