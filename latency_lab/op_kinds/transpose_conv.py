"""Transposed convolutions: a decoder's upsampling conv (U-Net, FCN)."""

from __future__ import annotations

import math

from latency_lab.graph import Op
from latency_lab.op_kinds.activation import fused_activation_configs
from latency_lab.op_kinds.base import (Dim, Config, OpKind, kernel_hw, keras_layer, layer_hw,
                                       litert_kernel, random_weights, register, square,
                                       weight_tensor)

__all__ = ["TransposeConv"]


@register
class TransposeConv(OpKind):
    """h, w are its input's size, the output h * s by w * s. LiteRT runs it far slower
    than a conv of as many multiply-adds (EPYC VM: 2x2 stride 2 at 32x32, 32->16
    channels, 142 us against 50 us for the 1x1 conv that is the same GEMM), so it has a
    table of its own."""

    name = "transpose_conv"
    keys = ("h", "w", "cin", "cout", "k", "s")
    space = {"h": Dim(1, 160), "cin": Dim(1, 1024), "cout": Dim(1, 1024),
             "k": Dim(1, 7, log=False), "s": Dim(1, 4, log=False)}
    path_keys = ("k", "s")
    in_channel_keys = ("cin",)

    def to_ir(self, c: Config) -> Op:
        return Op("transpose_conv", "Conv2DTranspose", ["x"], [(1, c["h"], c["w"], c["cin"])],
                  [(1, c["h"] * c["s"], c["w"] * c["s"], c["cout"])],
                  {"kernel_size": (c["k"], c["k"]), "strides": (c["s"], c["s"]),
                   "use_bias": False})

    def build(self, c: Config, rng):
        """The TRANSPOSE_CONV kernel, without a bias: a layer's bias is the kernel's
        fourth input (an add per output, little beside the scatter), and a zero one is
        dropped."""
        import keras

        kernel = random_weights(rng, c["k"], c["k"], c["cout"], c["cin"])

        def fn(x):
            return keras.ops.conv_transpose(x, weight_tensor(kernel), strides=c["s"],
                                            padding="same")

        return [(1, c["h"], c["w"], c["cin"])], fn

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Transposed convs at decoder sizes: the application families have none.
        Kernel and stride as decoders use them (2x2 and 4x4 stride 2 upsample without
        overlap or with it, 3x3 stride 2 and 1), from a wide shallow map to a small
        deep one."""
        kernels = ((2, 2), (3, 2)) if quick else ((2, 2), (3, 2), (4, 2), (3, 1))
        maps = ((32, 32, 16), (8, 128, 64)) if quick else (
            (64, 16, 16), (32, 32, 16), (32, 64, 32), (16, 128, 64), (8, 256, 128))
        return [dict(h=h, w=h, cin=cin, cout=cout, k=k, s=s)
                for k, s in kernels for h, cin, cout in maps]


@keras_layer("Conv2DTranspose")
def _keras_transpose_conv(op: Op):
    x = op.input_shapes[0]
    h, w = layer_hw(x)
    return [("transpose_conv", dict(h=h, w=w, cin=int(x[-1]), cout=int(op.output_shape[-1]),
                                    k=square(op, "kernel_size"), s=square(op, "strides")))
            ] + fused_activation_configs(op)


@litert_kernel("TRANSPOSE_CONV")
def _litert_transpose_conv(k):
    """Inputs: the output shape, the weights (cout, kh, kw, cin), the map (and a bias).
    Timed over its input map, like the sample."""
    cout, kh, kw, cin = k.input_shapes[1]
    h, w = kernel_hw(k.input_shapes[2])
    s = int(k.options.get("strideH", 1))
    return [("transpose_conv", dict(h=h, w=w, cin=cin, cout=cout,
                                    k=int(round(math.sqrt(kh * kw))), s=s))]
