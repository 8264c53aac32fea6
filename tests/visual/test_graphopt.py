"""Tests for redactd.visual.graphopt: each rewrite is exact, and the shipped text model keeps its outputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from redactd.visual.detect import PPOCR_DET_SHA256, TextDetector, packaged_model
from redactd.visual.graphopt import simplify
from tests.visual import synth

RNG = np.random.default_rng(7)


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def _const(name: str, value: np.ndarray | float) -> onnx.NodeProto:
    arr = np.asarray(value, np.float32)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name))


def _model(nodes: list[onnx.NodeProto], channels: int = 4) -> bytes:
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]).SerializeToString()


def _conv(name: str, inp: str, out: str, cin: int, cout: int, k: int, pad: int, group: int = 1) -> list[onnx.NodeProto]:
    w = RNG.normal(size=(cout, cin // group, k, k)).astype(np.float32)
    b = RNG.normal(size=(cout,)).astype(np.float32)
    return [_const(f"{name}_w", w), _const(f"{name}_b", b),
            helper.make_node("Conv", [inp, f"{name}_w", f"{name}_b"], [out], pads=[pad] * 4, group=group)]


def _check(model: bytes, channels: int = 4) -> tuple[bytes, object]:
    x = RNG.normal(size=(1, channels, 12, 12)).astype(np.float32) * 3
    new, counts = simplify(model)
    np.testing.assert_allclose(_run(new, x), _run(model, x), rtol=1e-5, atol=1e-4)
    return new, counts


def _ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node if n.op_type != "Constant"]


def test_conv_then_scalar_affine_folds_into_the_conv() -> None:
    nodes = _conv("c", "x", "h", 4, 6, 3, 1) + [
        _const("a", 1.7), _const("b", -0.4),
        helper.make_node("Mul", ["a", "h"], ["m"]),  # constant first, as paddle2onnx writes it
        helper.make_node("Add", ["m", "b"], ["y"]),
    ]
    new, counts = _check(_model(nodes))
    assert counts.conv_affine == 1
    assert _ops(new) == ["Conv"]


def test_affine_then_unpadded_conv_folds_but_padded_conv_is_left_alone() -> None:
    def chain(k: int, pad: int) -> bytes:
        return _model([
            _const("a", 0.6), _const("b", 0.25),
            helper.make_node("Mul", ["x", "a"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["s"]),
            *_conv("c", "s", "y", 4, 5, k, pad),
        ])

    new, counts = _check(chain(1, 0))
    assert (counts.affine_conv, _ops(new)) == (1, ["Conv"])
    # With zero padding the border would see b*W where the original sees 0: not an identity.
    new, counts = _check(chain(3, 1))
    assert counts.affine_conv == 0 and counts.skipped == {"affine_conv_padded": 1}
    assert _ops(new) == ["Mul", "Add", "Conv"]


def test_depthwise_prefold_uses_each_filter_sum() -> None:
    nodes = [_const("a", 1.3), _const("b", -2.0),
             helper.make_node("Mul", ["x", "a"], ["m"]), helper.make_node("Add", ["m", "b"], ["s"]),
             *_conv("c", "s", "y", 4, 4, 1, 0, group=4)]
    _, counts = _check(_model(nodes))
    assert counts.affine_conv == 1


def test_hardswish_chain_becomes_hardsigmoid_times_x() -> None:
    nodes = [_const("three", 3.0), _const("zero", 0.0), _const("six", 6.0), _const("six2", 6.0),
             helper.make_node("Add", ["x", "three"], ["p"]),
             helper.make_node("Clip", ["p", "zero", "six"], ["c"]),
             helper.make_node("Mul", ["x", "c"], ["m"]),
             helper.make_node("Div", ["m", "six2"], ["y"])]
    new, counts = _check(_model(nodes))
    assert counts.hardswish == 1
    assert _ops(new) == ["HardSigmoid", "Mul"]


def test_values_used_twice_are_not_folded() -> None:
    # The conv output also feeds the graph output's other branch: folding would change it.
    nodes = _conv("c", "x", "h", 4, 4, 1, 0) + [
        _const("a", 2.0), helper.make_node("Mul", ["h", "a"], ["m"]), helper.make_node("Add", ["m", "h"], ["y"])
    ]
    new, counts = _check(_model(nodes))
    assert counts.conv_affine == 0 and _ops(new) == ["Conv", "Mul", "Add"]
    # A hardswish whose inner Clip is also used elsewhere stays as it is.
    nodes = [_const("three", 3.0), _const("zero", 0.0), _const("six", 6.0), _const("six2", 6.0),
             helper.make_node("Add", ["x", "three"], ["p"]),
             helper.make_node("Clip", ["p", "zero", "six"], ["c"]),
             helper.make_node("Mul", ["x", "c"], ["m"]),
             helper.make_node("Div", ["m", "six2"], ["d"]),
             helper.make_node("Add", ["d", "c"], ["y"])]
    _, counts = _check(_model(nodes))
    assert counts.hardswish == 0


@pytest.fixture(scope="module")
def ppocr() -> bytes:
    return packaged_model("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx", PPOCR_DET_SHA256)[1]


def test_shipped_text_model_rewrites_are_the_expected_ones(ppocr: bytes) -> None:
    new, counts = simplify(ppocr)
    # Pinned model, pinned result: a change here means the rewrites or the model changed.
    assert (counts.hardswish, counts.conv_affine, counts.affine_conv) == (24, 28, 10)
    ops = _ops(new)
    assert "Clip" not in ops and "Div" not in ops
    assert ops.count("Conv") == _ops(ppocr).count("Conv")


@pytest.mark.parametrize("scene", ["plate_and_document", "astronaut"])
def test_shipped_text_model_gives_the_same_map_on_real_frames(ppocr: bytes, scene: str) -> None:
    frame = synth.background(640, 352)
    if scene == "plate_and_document":
        synth.paste(frame, synth.plate(scale=1.5), 60, 40)
        synth.paste(frame, synth.document(220, 160), 360, 150)
    else:
        sprite = synth.astronaut(60, 200, 40)
        synth.paste(frame, sprite.image, 200, 40)
    blob = ((frame.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
    before = _run(ppocr, np.ascontiguousarray(blob))
    after = _run(simplify(ppocr)[0], np.ascontiguousarray(blob))
    assert float(np.abs(after - before).max()) < 1e-4
    # The binarised map (what becomes boxes) is the same wherever the value is not on the threshold.
    clear = np.abs(before - TextDetector.BINARY_THRESHOLD) > 1e-4
    assert np.array_equal((after > TextDetector.BINARY_THRESHOLD)[clear], (before > TextDetector.BINARY_THRESHOLD)[clear])
    if scene == "plate_and_document":
        assert (before > TextDetector.BINARY_THRESHOLD).sum() > 500  # the scene really has text in it
