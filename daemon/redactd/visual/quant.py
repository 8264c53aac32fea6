"""Quantise CenterFace to int8 in memory, from the shipped fp32 model and activation ranges shipped here.

Static quantisation (QDQ): weights int8 per output channel, activations uint8 with ranges measured
once (MinMax) on real photographs by ``bench/int8.py --write-ranges`` and kept beside this module,
so making it runs no calibration and gives the same model every time (~2 s of CPU; the detector
keeps it between jobs: `redactd.visual.modelcache`). Weights use 7 bits (``reduce_range``): this
CPU has AVX2 and no VNNI, where onnxruntime's u8×s8 products can saturate; with 8 bits recall
fell (other-faces at 720p: 42 of 60 found against fp32's 54), with 7 it held (57). The model's
opset is raised to 13 first: per-channel scales need it.

The stem stays fp32: MobileNetV2's first three convolutions (the 3x3 on the picture's 3 channels,
the 3x3 depthwise and the 1x1 down to 16 channels, all at half the input's resolution), and the
picture is quantised after them. Quantised, they lose dark faces: their activation ranges were
measured on well-lit photographs, and a dark face's activations there use a fraction of the range.
On drawn held-out faces in shade in a lit picture the full pass found 567 of 682 face-looks with
every layer int8, 598 with the stem fp32 and 610 fp32; on faces filmed dim 188, 225 and 233 of
323 (README "The stem stays fp32 again: dark faces"). It was quantised for a while (README "The
stem is quantised again") on a few face-frames of lit small faces at 1080p, a difference that
did not hold up over the same sets later (3 untouched against 4).
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import tempfile
from pathlib import Path

from redactd.errors import ConfigError

#: Activation ranges of CenterFace (after `optimise_for_runtime`), tensor name -> [lowest, highest].
RANGES_FILE = "centerface_int8_ranges.json"
OPSET = 13
#: Leading convolutions left fp32 (the stem; see above).
STEM_CONVS = 3


def load_ranges() -> dict[str, tuple[float, float]]:
    doc = json.loads(importlib.resources.files("redactd.visual").joinpath(RANGES_FILE).read_text())
    return {name: (float(lo), float(hi)) for name, (lo, hi) in doc["ranges"].items()}


def upgraded(model: bytes) -> bytes:
    """``model`` at opset 13 at least (per-channel quantisation needs DequantizeLinear's axis)."""
    import onnx
    from onnx import version_converter

    proto = onnx.load_from_string(model)
    opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset >= OPSET:
        return model
    return bytes(version_converter.convert_version(proto, OPSET).SerializeToString())


def stem_named(model: bytes) -> tuple[bytes, list[str]]:
    """``model`` with every node named (the exporter left them unnamed, and the quantiser excludes
    by name) and the names of its stem's convolutions, checked against MobileNetV2's shape."""
    import onnx

    proto = onnx.load_from_string(model)
    for i, node in enumerate(proto.graph.node):
        node.name = node.name or f"{node.op_type}_{i}"
    weights = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"][:STEM_CONVS]
    shapes = [weights.get(n.input[1], ()) for n in convs]
    # (out, in/group, kh, kw): the 3x3 on 3 channels, a depthwise 3x3, a 1x1 projection
    if not (len(shapes) == STEM_CONVS and shapes[0][1:] == (3, 3, 3) and shapes[1][1:] == (1, 3, 3)
            and shapes[2][2:] == (1, 1) and convs[0].input[0] == proto.graph.input[0].name):
        raise ConfigError(f"detect.faces.int8: CenterFace's first convolutions are not the stem expected ({shapes})")
    return proto.SerializeToString(), [n.name for n in convs]


class _QuantiserNotes(logging.Filter):
    """Drops the quantiser's advice (pre-process first, rank-1 weights kept per tensor) that it
    logs on the root logger at every load: it is about this fixed model, not the job."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "quantization" not in Path(record.pathname).parts


def quantise_centerface(model: bytes) -> bytes:
    """CenterFace ``model`` (fp32, as `optimise_for_runtime` left it) as int8 QDQ, in memory."""
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data
    except ImportError as exc:
        raise ConfigError(f"detect.faces.int8 needs onnxruntime's quantisation tools: {exc}") from exc
    import numpy as np

    ranges = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
        for name, (lo, hi) in load_ranges().items()
    })
    with tempfile.TemporaryDirectory(prefix="redactd-int8-") as tmp:
        src, dst, cache_file = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx", Path(tmp) / "ranges.json"
        named, stem = stem_named(upgraded(model))
        src.write_bytes(named)
        save_tensors_data(ranges, cache_file)
        quiet = _QuantiserNotes()
        logging.getLogger().addFilter(quiet)
        try:
            quantize_static(str(src), str(dst), None, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
                            calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache_file),
                            nodes_to_exclude=stem)
        except TypeError as exc:  # no calibration_cache_path: an onnxruntime older than this code knows
            raise ConfigError(f"detect.faces.int8 needs a newer onnxruntime (1.32 is known to work): {exc}") from exc
        finally:
            logging.getLogger().removeFilter(quiet)
        return dst.read_bytes()
