"""Zero padding of a feature map (before a VALID-padded strided conv)."""

from __future__ import annotations

from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Dim, Config, OpKind, kernel_hw, keras_layer, layer_hw,
                                       litert_kernel, register)

__all__ = ["Pad"]


@register
class Pad(OpKind):
    name = "pad"
    keys = ("h", "w", "c")
    streams = True
    space = {"h": Dim(1, 320), "c": Dim(1, 4096)}
    table_share = 2

    def to_ir(self, c: Config) -> Op:
        return Op("pad", "ZeroPadding2D", ["x"], [(1, c["h"], c["w"], c["c"])],
                  [(1, c["h"] + 1, c["w"] + 1, c["c"])], {})

    def build(self, c: Config, rng):
        import keras

        return [(1, c["h"], c["w"], c["c"])], lambda x: keras.ops.pad(
            x, ((0, 0), (0, 1), (0, 1), (0, 0)))


@keras_layer("ZeroPadding2D")
def _keras_pad(op: Op):
    x = op.input_shapes[0]
    h, w = layer_hw(x)
    return [("pad", dict(h=h, w=w, c=int(x[-1])))]


@litert_kernel("PAD")
def _litert_pad(k):
    x = k.input_shapes[0]
    h, w = kernel_hw(x)
    return [("pad", dict(h=h, w=w, c=x[-1]))]
