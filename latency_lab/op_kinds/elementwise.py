"""Binary elementwise ops: adds and multiplies of two tensors (same shape or a
per-channel broadcast), of a tensor and a scalar constant, and of a tensor and a
per-row column (a LayerNorm's statistics times its features: `row_broadcast`); and
the squared difference of a LayerNorm's variance (`squared_difference`).

Which kind times a LiteRT ADD, SUB or MUL follows from which operand broadcasts
along which axes (`binary_form`). A per-channel operand ((1, 1, C) against (1, T, C))
varies along the innermost axis like the other; a per-row column ((1, T, 1)) is
constant along it, alone against a full tensor or in an outer product with a row
((1, T, 1) x (1, 1, C)). XNNPACK's binary kernels specialize on the innermost axis (a
vector operand, or a scalar one reused across a row), so each form has its own
microbenchmark: the per-channel `broadcast` samples never ran a column. Integer
ADD/SUB/MUL (index arithmetic) are timed with the gather that consumes them
(`gather.index_arithmetic`)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Config, Dim, keras_layer, kernel_hw, layer_hw,
                                       litert_kernel, OpKind, register,
                                       rows_and_channels)
from latency_lab.op_kinds.gather import index_arithmetic
from latency_lab.op_kinds.space import token_region

__all__ = ["Add", "Multiply", "AddScalar", "MultiplyScalar", "RowBroadcast",
           "SquaredDifference", "binary_form"]


def _keras_binary(kind: str):
    import keras

    return keras.ops.add if kind == "add" else keras.ops.multiply


class _Binary(OpKind):
    keys = ("h", "w", "c", "broadcast")
    streams = True
    space = {"h": Dim(1, 320), "c": Dim(1, 4096), "broadcast": Dim(choices=(False, True))}
    regions = {"tokens": token_region("w", broadcast=Dim(choices=(False, True)))}

    def to_ir(self, c: Config) -> Op:
        shape = (1, c["h"], c["w"], c["c"])
        second = (1, 1, 1, c["c"]) if c.get("broadcast") else shape
        return Op(self.name, self.name.capitalize(), ["x", "y"], [shape, second], [shape], {})

    def build(self, c: Config, rng):
        f = _keras_binary(self.name)
        shape = (1, c["h"], c["w"], c["c"])
        second = (1, 1, 1, c["c"]) if c.get("broadcast") else shape
        return [shape, second], lambda x, y: f(x, y)


@register
class Add(_Binary):
    name = "add"
    table_share = 2

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Per-channel broadcast adds the families lack (their adds are residual): an
        input Normalization's (x - mean) over an image's 3 channels (EfficientNetV2
        preprocesses so), where XNNPACK's broadcast kernel is slowest (an add at 96x96x3:
        42 us, 1.5 ns an element, against 0.2 ns for a residual add on the EPYC VM; the
        table without these predicted 3 us), and broadcast adds at network widths."""
        widths = ((28, 32),) if quick else ((56, 24), (28, 40), (14, 112), (7, 320))
        return _image_broadcasts(quick) + [dict(h=h, w=h, c=c, broadcast=True)
                                           for h, c in widths]


@register
class Multiply(_Binary):
    name = "multiply"
    table_share = 3

    def coverage_configs(self, quick: bool) -> list[Config]:
        """An input Normalization's / std over an image's 3 channels (the families'
        broadcast multiplies are squeeze-excite gates over many channels)."""
        return _image_broadcasts(quick)


def _image_broadcasts(quick: bool) -> list[Config]:
    sides = (96,) if quick else (64, 96, 128, 160, 224)
    return [dict(h=s, w=s, c=3, broadcast=True) for s in sides]


class _Scalar(OpKind):
    """x + scalar, x * scalar (Rescaling, hard_sigmoid's "+ 3" and "/ 6"): XNNPACK runs
    them with its own constant-operand kernels, several times faster than a
    per-channel broadcast, which is slowest on the few channels where Rescaling sits
    (an image's 3)."""

    keys = ("h", "w", "c")
    streams = True
    space = {"h": Dim(1, 320), "c": Dim(1, 4096)}
    regions = {"tokens": token_region("w")}
    table_share = 2
    binary = ""

    def to_ir(self, c: Config) -> Op:
        shape = (1, c["h"], c["w"], c["c"])
        return Op(self.binary, f"ops.{self.binary.capitalize()}", ["x"], [shape], [shape],
                  {"constant_operands": 1})

    def build(self, c: Config, rng):
        f = _keras_binary(self.binary)
        constant = np.float32(0.5 + rng.random())
        return [(1, c["h"], c["w"], c["c"])], lambda x: f(x, constant)


@register
class AddScalar(_Scalar):
    name = "add_scalar"
    binary = "add"


@register
class MultiplyScalar(_Scalar):
    name = "multiply_scalar"
    binary = "multiply"


# ------------------------------------------------------- per-row broadcasts


@register
class RowBroadcast(OpKind):
    """`fn` (add or multiply) of a (rows, c) tensor and a (rows, 1) column, or, `outer`,
    of a (rows, 1) column and a (1, c) row (a LayerNorm's 1/std times its gamma): the
    scalar-operand kernel run once per row of c."""

    name = "row_broadcast"
    keys = ("rows", "c", "fn", "outer")
    streams = True
    space = {"rows": Dim(1, 4096), "c": Dim(1, 4096), "fn": Dim(choices=("add", "multiply")),
             "outer": Dim(choices=(False, True))}
    regions = {"tokens": token_region(fn=Dim(choices=("add", "multiply")),
                                      outer=Dim(choices=(False, True)))}
    categories = {"fn": ("add", "multiply")}
    table_share = 1

    def _shapes(self, c: Config) -> list[tuple]:
        column = (1, 1, c["rows"], 1)
        return [column, (1, 1, 1, c["c"]) if c["outer"] else (1, 1, c["rows"], c["c"])]

    def to_ir(self, c: Config) -> Op:
        out = (1, 1, c["rows"], c["c"])
        return Op(self.name, c["fn"].capitalize(), ["x", "y"], self._shapes(c), [out], {})

    def build(self, c: Config, rng):
        # The column goes first: Keras (TensorFlow backend) turns add(x, b) with a b
        # that squeezes to one axis of x's into a BiasAdd, which the converter fails
        # on for a (rows, 1) column; a 4-D column keeps the (1, c) row clear of it.
        f = _keras_binary(c["fn"])
        return self._shapes(c), lambda col, y: f(col, y)

    def coverage_configs(self, quick: bool) -> list[Config]:
        """A LayerNormalization's products over the tokens of ViT-Ti/S (197 x 192,
        384) and BERT-tiny/mini (128 x 128, 256): 1/std times gamma (outer) and a
        per-token factor times the features."""
        shapes = ((197, 192),) if quick else ((197, 192), (197, 384), (128, 128), (128, 256))
        return [dict(rows=r, c=c, fn="multiply", outer=outer) for r, c in shapes
                for outer in (True, False)]


@register
class SquaredDifference(OpKind):
    """(x - y)^2 of a (rows, c) tensor and a (rows, 1) column (`broadcast`: a
    LayerNorm's variance, each row against its mean) or a tensor of its shape."""

    name = "squared_difference"
    keys = ("rows", "c", "broadcast")
    streams = True
    space = {"rows": Dim(1, 4096), "c": Dim(1, 4096), "broadcast": Dim(choices=(False, True))}
    regions = {"tokens": token_region(broadcast=Dim(choices=(False, True)))}
    table_share = 1

    def _shapes(self, c: Config) -> list[tuple]:
        x = (1, c["rows"], c["c"])
        return [x, (1, c["rows"], 1) if c["broadcast"] else x]

    def to_ir(self, c: Config) -> Op:
        return Op(self.name, "ops.Subtract", ["x", "y"], self._shapes(c),
                  [(1, c["rows"], c["c"])], {})

    def build(self, c: Config, rng):
        import keras

        # The converter fuses the square of a difference into one SQUARED_DIFFERENCE.
        return self._shapes(c), lambda x, y: keras.ops.square(keras.ops.subtract(x, y))

    def coverage_configs(self, quick: bool) -> list[Config]:
        """A LayerNormalization's variance at ViT-Ti/S and BERT-tiny/mini sizes."""
        shapes = ((197, 192),) if quick else ((197, 192), (197, 384), (128, 128), (128, 256))
        return [dict(rows=r, c=c, broadcast=True) for r, c in shapes]


def binary_form(shapes: Sequence[Sequence[int]], out: Sequence[int]) -> str:
    """How the tensor operands of a binary op meet its output `out` (shapes aligned
    right, as they broadcast): "same"; "channel" (an operand broadcast along axes
    before the last, a per-channel vector); "rows" (an operand of one element per row,
    constant along the last axis, against a full tensor); "outer" (that column against
    an operand that broadcasts too)."""
    out = tuple(int(d) for d in out)
    rank = len(out)
    aligned = [(1,) * (rank - len(s)) + tuple(int(d) for d in s) for s in shapes]
    full = math.prod(out)
    if rank and out[-1] > 1:
        columns = [s for s in aligned if s[-1] == 1]
        if columns:
            others = [s for s in aligned if s[-1] != 1]
            return "outer" if any(math.prod(s) != full for s in others) else "rows"
    return "channel" if any(math.prod(s) != full for s in aligned) else "same"


@keras_layer("Add", "Multiply", "Subtract", "Maximum", "Minimum", "ops.Add", "ops.Multiply",
             "ops.Subtract", "CustomScaleLayer")
def _keras_binary_layer(op: Op):
    t = op.type
    oh, ow = layer_hw(op.output_shape)
    c = int(op.output_shape[-1])
    kind = "multiply" if "Multiply" in t else "add"
    form = binary_form(op.input_shapes, op.output_shape) if len(op.input_shapes) == 2 else "same"
    if form in ("rows", "outer"):
        rows, _ = rows_and_channels(op.output_shape)
        return [("row_broadcast", dict(rows=rows, c=c, fn=kind, outer=form == "outer"))]
    broadcast = any(math.prod(s) != math.prod(op.output_shape) for s in op.input_shapes)
    n = max(len(op.input_shapes) - 1, 1) if not t.startswith("ops.") else 1
    return [(kind, dict(h=oh, w=ow, c=c, broadcast=broadcast))] * n


@keras_layer("BatchNormalization")
def _keras_batch_norm(op: Op):
    """Inference BatchNormalization is a per-channel scale and shift: a loop over the
    tensor, timed as a channel-broadcast multiply. Only the keras runtime sees it (its
    weights are variables, so XLA cannot fold it into the conv before it, as the LiteRT
    converter does); fused into one loop with its elementwise neighbours there
    (`kernels.keras`)."""
    oh, ow = layer_hw(op.output_shape)
    return [("multiply", dict(h=oh, w=ow, c=int(op.output_shape[-1]), broadcast=True))]


def _litert_binary(kind: str):
    def f(k):
        if index_arithmetic(k):
            return []
        out = k.output_shapes[0]
        rows, c = rows_and_channels(out)
        h, w = kernel_hw(out) if len(out) == 4 else (1, rows)
        tensors = [s for s in k.input_shapes if s and math.prod(s) > 1]
        if len(tensors) < 2:  # x * scalar: its own (constant-operand) kernel
            return [(f"{kind}_scalar", dict(h=h, w=w, c=c))]
        form = binary_form(tensors, out)
        if form in ("rows", "outer"):
            return [("row_broadcast", dict(rows=rows, c=c, fn=kind,
                                           outer=form == "outer"))]
        broadcast = any(math.prod(s) != math.prod(out) for s in tensors)
        return [(kind, dict(h=h, w=w, c=c, broadcast=broadcast))]

    return f


litert_kernel("ADD", "SUB")(_litert_binary("add"))
litert_kernel("MUL")(_litert_binary("multiply"))


@litert_kernel("SQUARED_DIFFERENCE")
def _litert_squared_difference(k):
    out = k.output_shapes[0]
    rows, c = rows_and_channels(out)
    form = binary_form([s for s in k.input_shapes if s], out)
    return [("squared_difference", dict(rows=rows, c=c, broadcast=form != "same"))]
