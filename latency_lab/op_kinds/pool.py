"""Window pooling (max, average) and global average pooling. LiteRT runs a global
average pool as a MEAN kernel, mapped with the other means in `op_kinds.reduce`."""

from __future__ import annotations

import math

from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Dim, Config, OpKind, kernel_same_input,
                                       keras_layer, layer_hw, litert_kernel, out_pixels,
                                       Region, register, same_out, square)

__all__ = ["Pool", "GlobalPool"]


@register
class Pool(OpKind):
    name = "pool"
    keys = ("h", "w", "c", "k", "s", "kind")
    space = {"h": Dim(1, 320), "c": Dim(1, 4096), "k": Dim(2, 9, log=False), "s": Dim(1, 4, log=False),
             "kind": Dim(choices=("max", "avg"))}
    path_keys = ("k", "s")
    categories = {"kind": ("max", "avg")}
    # Pools inside cells and inception branches: small windows at stride 1-2 over the
    # few channels of a branch. The application families pool once per stage (a 3x3
    # stride-2 stem, DenseNet's 2x2 transitions); a fresh EPYC profile had one 3x3
    # stride-1 pool under 128 channels among 45, and 5-fold CV on its pools read
    # RMSPE 34% (regions="branches" and a share of 4 instead of 2: more samples where
    # NAS cells and GoogLeNet-style networks put theirs).
    regions = {"branches": Region({"h": Dim(4, 64), "c": Dim(4, 512), "k": Dim(2, 5, log=False),
                                   "s": Dim(1, 2, log=False),
                                   "kind": Dim(choices=("max", "avg"))})}
    table_share = 4
    moved_term = 3  # in `base_terms`

    def coverage_configs(self, quick: bool) -> list[Config]:
        """The windows networks use most (2x2 stride 2, 3x3 strides 1 and 2), max and
        average, over maps from a stem's to a last stage's. The space's and the
        branch region's draws spread 59 samples over 32 window, stride and kind
        combinations (fresh EPYC profile: no 3x3 stride-1 average pool, three max),
        and its lookup put held-out networks' pools +20% over, time-weighted (131
        pools of seed 21's CNNs timed alone; NAS-Bench-201's 3x3 average pools over
        16 channels +66 to +120%)."""
        maps = ((56, 32), (14, 256)) if quick else ((112, 16), (56, 48), (28, 120),
                                                   (14, 320), (7, 768))
        return [dict(h=h, w=h, c=c, k=k, s=s, kind=kind) for kind in ("max", "avg")
                for k, s in ((2, 2), (3, 1), (3, 2)) for h, c in maps]

    def base_terms(self, c: Config) -> list[float]:
        """A fixed cost per call, one per output pixel (XNNPACK gathers each output
        pixel's window through an indirection buffer of k*k row pointers), the window
        reads (output pixels x k*k x channels) and the bytes moved (read at the
        bandwidth of the cache level they fit in, `moved_term`). On the roofline
        base, which scales with channels, a NAS-Bench-201 cell's 3x3 average pool over
        32x32x8 was predicted 2.7 us against 6.6 us alone (EPYC VM, LiteRT): at 8
        channels the per-pixel cost is most of the time."""
        pixels = out_pixels(c)
        return [1.0, float(pixels), float(pixels * c["k"] ** 2 * c["c"]),
                float(self.work(c).bytes_total)]

    def to_ir(self, c: Config) -> Op:
        ho, wo = same_out(c["h"], c["s"]), same_out(c["w"], c["s"])
        t = "MaxPooling2D" if c["kind"] == "max" else "AveragePooling2D"
        return Op("pool", t, ["x"], [(1, c["h"], c["w"], c["c"])], [(1, ho, wo, c["c"])],
                  {"pool_size": (c["k"], c["k"]), "strides": (c["s"], c["s"])})

    def build(self, c: Config, rng):
        import keras

        f = keras.ops.max_pool if c["kind"] == "max" else keras.ops.average_pool

        def fn(x):
            return f(x, c["k"], strides=c["s"], padding="same")

        return [(1, c["h"], c["w"], c["c"])], fn


@register
class GlobalPool(OpKind):
    name = "global_pool"
    keys = ("h", "w", "c")
    streams = True
    space = {"h": Dim(1, 320), "c": Dim(1, 4096)}
    table_share = 2

    def to_ir(self, c: Config) -> Op:
        return Op("global_pool", "GlobalAveragePooling2D", ["x"], [(1, c["h"], c["w"], c["c"])],
                  [(1, c["c"])], {})

    def build(self, c: Config, rng):
        import keras

        def fn(x):
            return keras.ops.mean(x, axis=(1, 2))

        return [(1, c["h"], c["w"], c["c"])], fn


@keras_layer("MaxPooling2D", "AveragePooling2D")
def _keras_pool(op: Op):
    x = op.input_shapes[0]
    h, w = layer_hw(x)
    kind = "max" if op.type.startswith("Max") else "avg"
    return [("pool", dict(h=h, w=w, c=int(x[-1]), k=square(op, "pool_size"),
                          s=square(op, "strides"), kind=kind))]


@keras_layer("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D")
def _keras_global_pool(op: Op):
    """A map's h x w, or a sequence's T steps as h = T, w = 1 (LiteRT's MEAN over
    axis 1 of (1, T, C): `op_kinds.reduce`)."""
    x = op.input_shapes[0]
    h, w = layer_hw(x)
    return [("global_pool", dict(h=h, w=w, c=int(x[-1])))]


def _litert_pool(kind: str):
    def f(k):
        s = int(k.options.get("strideH", 1))
        h, w = kernel_same_input(k, s)
        size = int(round(math.sqrt(k.options.get("filterHeight", 1)
                                   * k.options.get("filterWidth", 1))))
        return [("pool", dict(h=h, w=w, c=k.input_shapes[0][-1], k=size, s=s, kind=kind))]

    return f


litert_kernel("MAX_POOL_2D")(_litert_pool("max"))
litert_kernel("AVERAGE_POOL_2D")(_litert_pool("avg"))
