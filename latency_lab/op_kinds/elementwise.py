"""Binary elementwise ops: adds and multiplies of two tensors (same shape or a
per-channel broadcast) and of a tensor and a scalar constant."""

from __future__ import annotations

import math

import numpy as np

from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Config, Dim, OpKind, kernel_hw, keras_layer, layer_hw,
                                       litert_kernel, register)

__all__ = ["Add", "Multiply", "AddScalar", "MultiplyScalar"]


def _keras_binary(kind: str):
    import keras

    return keras.ops.add if kind == "add" else keras.ops.multiply


class _Binary(OpKind):
    keys = ("h", "w", "c", "broadcast")
    space = {"h": Dim(1, 320), "c": Dim(1, 4096), "broadcast": Dim(choices=(False, True))}

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
    space = {"h": Dim(1, 320), "c": Dim(1, 4096)}
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


@keras_layer("Add", "Multiply", "Subtract", "Maximum", "Minimum", "ops.Add", "ops.Multiply",
             "ops.Subtract", "CustomScaleLayer")
def _keras_binary_layer(op: Op):
    t = op.type
    oh, ow = layer_hw(op.output_shape)
    c = int(op.output_shape[-1])
    kind = "multiply" if "Multiply" in t else "add"
    broadcast = any(math.prod(s) != math.prod(op.output_shape) for s in op.input_shapes)
    n = max(len(op.input_shapes) - 1, 1) if not t.startswith("ops.") else 1
    return [(kind, dict(h=oh, w=ow, c=c, broadcast=broadcast))] * n


def _litert_binary(kind: str):
    def f(k):
        out = k.output_shapes[0]
        h, w = kernel_hw(out) if len(out) == 4 else (1, math.prod(out[:-1]) if len(out) > 1 else 1)
        c = out[-1] if out else 1
        tensors = [s for s in k.input_shapes if s and math.prod(s) > 1]
        if len(tensors) < 2:  # x * scalar: its own (constant-operand) kernel
            return [(f"{kind}_scalar", dict(h=h, w=w, c=c))]
        broadcast = any(math.prod(s) != math.prod(out) for s in tensors)
        return [(kind, dict(h=h, w=w, c=c, broadcast=broadcast))]

    return f


litert_kernel("ADD", "SUB")(_litert_binary("add"))
litert_kernel("MUL")(_litert_binary("multiply"))
