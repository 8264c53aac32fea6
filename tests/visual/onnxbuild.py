"""Build tiny ONNX models byte by byte (protobuf wire format), for tests that need a YOLO-shaped model.

The `onnx` package is not installed; the handful of message fields used here are stable parts of
onnx.proto.
"""

from __future__ import annotations

import numpy as np


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _str(number: int, text: str) -> bytes:
    return _len(number, text.encode())


def tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto: dims=1, data_type=2 (1 float32, 7 int64), name=8, raw_data=9."""
    dtype = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}[array.dtype]
    dims = b"".join(_int(1, d) for d in array.shape)
    return dims + _int(2, dtype) + _str(8, name) + _len(9, np.ascontiguousarray(array).tobytes())


def _attr_ints(name: str, values: list[int]) -> bytes:
    # AttributeProto: name=1, ints=8, type=20 (INTS = 7)
    return _str(1, name) + b"".join(_int(8, v) for v in values) + _int(20, 7)


def node(op: str, inputs: list[str], outputs: list[str], **ints: list[int]) -> bytes:
    """NodeProto: input=1, output=2, op_type=4, attribute=5."""
    body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs) + _str(4, op)
    return body + b"".join(_len(5, _attr_ints(k, v)) for k, v in ints.items())


def value_info(name: str, shape: list[int]) -> bytes:
    """ValueInfoProto name=1, type=2 → TypeProto.tensor_type=1 → elem_type=1 (float), shape=2."""
    dims = b"".join(_len(1, _int(1, d)) for d in shape)
    return _str(1, name) + _len(2, _len(1, _int(1, 1) + _len(2, dims)))


def model(nodes: list[bytes], inputs: list[bytes], outputs: list[bytes], weights: list[bytes]) -> bytes:
    """ModelProto: ir_version=1 (8), graph=7, opset_import=8 (version=2: 17)."""
    graph = (
        b"".join(_len(1, n) for n in nodes)
        + _str(2, "g")
        + b"".join(_len(5, w) for w in weights)
        + b"".join(_len(11, i) for i in inputs)
        + b"".join(_len(12, o) for o in outputs)
    )
    return _int(1, 8) + _len(7, graph) + _len(8, _int(2, 17))


def tiny_yolo(size: int = 64, cell: int = 8) -> bytes:
    """A YOLO-layout model: 1×3×size×size in, 1×(4+2)×N out, N = (size/cell)².

    Each ``cell``-pixel cell is one candidate box (centred on the cell, cell-sized). Class 0's
    score is the cell's mean red minus blue; class 1's is blue minus red: a red square is found
    as class 0. Fixed weights, but a real model on onnxruntime, decoded by the real code.
    """
    n = (size // cell) ** 2
    g = size // cell
    ys, xs = np.mgrid[0:g, 0:g]
    pos = np.zeros((1, 6, g, g), np.float32)
    pos[0, 0] = (xs + 0.5) * cell
    pos[0, 1] = (ys + 0.5) * cell
    pos[0, 2] = cell
    pos[0, 3] = cell
    w = np.zeros((6, 3, 1, 1), np.float32)
    w[4, 0], w[4, 2] = 1.0, -1.0  # red - blue (input is RGB)
    w[5, 0], w[5, 2] = -1.0, 1.0
    nodes = [
        node("AveragePool", ["images"], ["pooled"], kernel_shape=[cell, cell], strides=[cell, cell]),
        node("Conv", ["pooled", "w"], ["scores"]),
        node("Add", ["scores", "pos"], ["grid"]),
        node("Reshape", ["grid", "shape"], ["output0"]),
    ]
    weights = [tensor("w", w), tensor("pos", pos), tensor("shape", np.array([1, 6, n], np.int64))]
    return model(nodes, [value_info("images", [1, 3, size, size])], [value_info("output0", [1, 6, n])], weights)
