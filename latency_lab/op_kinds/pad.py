"""Zero padding of a feature map (before a VALID-padded strided conv)."""

from __future__ import annotations

from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Dim, Config, OpKind, kernel_hw, kernel_padding,
                                       keras_layer, layer_hw, litert_kernel, register)

__all__ = ["Pad", "PAD_FUSING_CONSUMERS", "fused_into_consumer"]


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


# Kernels XNNPACK folds a zero spatial PAD into, when they read it with VALID padding.
PAD_FUSING_CONSUMERS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def fused_into_consumer(k) -> bool:
    """Whether XNNPACK folds this PAD into the conv that reads it (its subgraph
    fusion pass: a constant zero pad of height and width only, read by one
    [depthwise] 2D convolution that is not SAME-padded, becomes that conv's implicit
    padding): it then runs no kernel. A ZeroPadding2D before a strided VALID conv,
    as MobileNetV2, EfficientNet and ResNet write their downsampling, is such a pad.
    EPYC VM, profile fresh21: ResNet50 at 64 px ran its first segment (conv1_pad,
    the 7x7 conv, pool1_pad, max pool) in 0.099 ms inside the network against
    0.139 ms for its four kernels alone (`scripts/network_prefixes.py`)."""
    if len(k.consumers) != 1 or len(k.input_shapes[0]) != 4:
        return False
    op, options = k.consumers[0]
    pads = k.input_values[1] if len(k.input_values) > 1 else None
    spatial_only = pads is not None and len(pads) == 8 and not any(pads[:2] + pads[6:])
    return (spatial_only and op in PAD_FUSING_CONSUMERS
            and kernel_padding(options) == "VALID")


@litert_kernel("PAD")
def _litert_pad(k):
    if fused_into_consumer(k):
        return []
    x = k.input_shapes[0]
    h, w = kernel_hw(x)
    return [("pad", dict(h=h, w=w, c=x[-1]))]
