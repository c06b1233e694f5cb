"""Upsampling by a whole factor (UpSampling2D, a decoder's or FPN's resize)."""

from __future__ import annotations

import math

from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Dim, Config, OpKind, kernel_hw, keras_layer, layer_hw,
                                       litert_kernel, register, square)

__all__ = ["Resize", "RESIZE_KINDS"]

RESIZE_KINDS = ("nearest", "bilinear")


@register
class Resize(OpKind):
    """h, w, c of the input. LiteRT's nearest resize is no plain copy (EPYC VM, 64x64x32
    doubled: nearest 271 us, bilinear 177 us; the elementwise roofline said 200 us for
    both)."""

    name = "resize"
    keys = ("h", "w", "c", "scale", "kind")
    streams = True
    space = {"h": Dim(1, 160), "c": Dim(1, 1024), "scale": Dim(choices=(2, 3, 4)),
             "kind": Dim(choices=RESIZE_KINDS)}

    def to_ir(self, c: Config) -> Op:
        return Op("resize", "UpSampling2D", ["x"], [(1, c["h"], c["w"], c["c"])],
                  [(1, c["h"] * c["scale"], c["w"] * c["scale"], c["c"])],
                  {"size": (c["scale"], c["scale"]), "interpolation": c["kind"]})

    def build(self, c: Config, rng):
        import keras

        size = (c["h"] * c["scale"], c["w"] * c["scale"])
        return [(1, c["h"], c["w"], c["c"])], lambda x: keras.ops.image.resize(
            x, size, interpolation=c["kind"])

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Upsampling at decoder sizes, both kinds: the application families have none."""
        scales = (2,) if quick else (2, 4)
        maps = ((32, 32), (16, 128)) if quick else ((64, 16), (32, 64), (16, 128), (8, 256))
        return [dict(h=h, w=h, c=c, scale=f, kind=kind)
                for kind in RESIZE_KINDS for f in scales for h, c in maps]


@keras_layer("UpSampling2D")
def _keras_resize(op: Op):
    x = op.input_shapes[0]
    h, w = layer_hw(x)
    kind = "nearest" if op.attrs.get("interpolation", "nearest") == "nearest" else "bilinear"
    return [("resize", dict(h=h, w=w, c=int(x[-1]), scale=square(op, "size"), kind=kind))]


def _litert_resize(kind: str):
    def f(k):
        x = k.input_shapes[0]
        (h, w), (ho, wo) = kernel_hw(x), kernel_hw(k.output_shapes[0])
        scale = max(1, int(round(math.sqrt(ho * wo / max(h * w, 1)))))
        return [("resize", dict(h=h, w=w, c=x[-1], scale=scale, kind=kind))]

    return f


litert_kernel("RESIZE_NEAREST_NEIGHBOR")(_litert_resize("nearest"))
litert_kernel("RESIZE_BILINEAR")(_litert_resize("bilinear"))
