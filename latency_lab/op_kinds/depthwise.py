"""Depthwise convolutions, with and without a depth multiplier, and the separable
convs made of one."""

from __future__ import annotations

import math

from latency_lab.graph import Op
from latency_lab.op_kinds.activation import fused_activation_configs
from latency_lab.op_kinds.base import (Dim, Config, OpKind, kernel_same_input, keras_layer,
                                       layer_same_input,
                                       layer_hw, litert_kernel, random_weights, register,
                                       same_out, square, weight_tensor)

__all__ = ["Depthwise", "DepthwiseMultiplier", "depthwise_config", "run_taps", "UNIPASS_TAPS"]


class _DepthwiseBase(OpKind):
    def _build(self, c: Config, rng, dm: int):
        import keras

        kernel = random_weights(rng, c["k"], c["k"], c["c"], dm)
        bias = random_weights(rng, c["c"] * dm)

        def fn(x):
            y = keras.ops.depthwise_conv(x, weight_tensor(kernel), strides=c["s"],
                                         padding="same")
            return keras.ops.relu6(y + weight_tensor(bias))

        return [(1, c["h"], c["w"], c["c"])], fn


# The taps of XNNPACK's f32 depthwise kernels that do a whole kernel in one pass (its
# dwconv config's primary tiles: the 3p, 4p, 9p and 25p microkernels, on x86 and Arm);
# a kernel of more taps runs the multipass ones.
UNIPASS_TAPS = (3, 4, 9, 25)
UNIPASS_MAX_TAPS = UNIPASS_TAPS[-1]


def run_taps(k: int) -> int:
    """Taps the runtime's kernel computes for a k x k depthwise conv: the smallest
    single-pass kernel that holds k * k (the rest are zero weights), or k * k past
    them. On the Xeon VM (Ice Lake, LiteRT 2.3) a 4x4 took what a 5x5 does (48x48x96:
    0.265 vs 0.266 ms; 14x14x256: 57 vs 58 us) and a 1x1 what 3 taps do; the
    lookup, counting 16 taps, put the 4x4s 20-28% under."""
    taps = k * k
    return next((t for t in UNIPASS_TAPS if t >= taps), taps)


@register
class Depthwise(_DepthwiseBase):
    name = "depthwise"
    keys = ("h", "w", "c", "k", "s")
    step_channels = ("c", 0.5)
    # XNNPACK's depthwise kernels run a partial SIMD step through a slower remainder
    # path (3x3 at 48x48 on the EPYC VM: 17 us over 8 channels, 25 us over 1-7, 34 us
    # over 9-15). 5-fold CV RMSPE on three EPYC profiles, real channel counts -> padded
    # base and features with the flag: 11.3/9.8/9.7 -> 11.2/7.0/7.0% (at <= 48 channels
    # 15.1/16.1/14.4 -> 11.1/10.9/10.9%); for conv2d and dense the flag was neutral.
    partial_step_flag = True
    # With the padded base and the flag, the log of the roofline base made it worse
    # (10.0/12.9/7.1 -> 10.7/15.1/7.5%).
    size_feature = False
    table_share = 10
    # Its multipass kernels (more taps than 25) run 10-50x below the 3x3 path per
    # multiply-add: at the shared cap an 11x11 sample took 74 ms a call, and capping
    # at 20 MFLOP takes about 40 s off a full profile's timing (Xeon VM).
    # The families' largest depthwise conv is 9.4 MFLOP, and a path's time per
    # multiply-add holds across sizes, so smaller samples tell it.
    max_sample_flops = 2e7
    narrow = True
    space = {"h": Dim(1, 320), "c": Dim(1, 4096), "k": Dim(1, 11, log=False),
             "s": Dim(1, 4, log=False)}
    path_keys = ("k", "s")

    def channel_step(self, config: Config, channel_tile: int) -> int:
        """Half a channel tile for XNNPACK's single-pass kernels (up to 25 taps: 3x3,
        4x4 and 5x5 run them); one channel for a larger kernel, which runs in several
        passes over the taps. On the EPYC VM (fresh profile) the table's 6x6-11x11
        samples at strides 1-2 over maps past a few pixels took 0.37-0.50 ns per
        multiply-add counted over their real channels, 1 to 1941 of them (one 160x160
        map 0.88), and down to 0.05 counted in half-tile steps (a 6x6 over one
        channel at 244x244: work it never does)."""
        if config["k"] ** 2 > UNIPASS_MAX_TAPS:
            return 1
        return super().channel_step(config, channel_tile)

    def tiled_flops(self, config: Config, flops: float, row_tile: int | None = None) -> float:
        """The taps padded to the single-pass kernel that runs them (`run_taps`)."""
        return flops * run_taps(config["k"]) / config["k"] ** 2  # pixel by pixel: no rows

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Channel staircases: 3x3 and 5x5 over every fourth channel count from 96 to
        132 (every eighth in a quick plan). The families' widths are nearly all
        multiples of 16: a fresh Xeon VM profile had two samples that leave 8 of a
        16-channel tile, and its lookup put 3x3s over 72-136 such channels 22-29%
        under (the masked remainder there costs two whole steps,
        `predictors.featurize`)."""
        maps = ((30, 3),) if quick else ((30, 3), (18, 5))
        step = 8 if quick else 4
        out = [dict(h=h, w=h, c=c, k=k, s=1) for h, k in maps for c in range(96, 133, step)]
        return out + self._kernel_sizes(quick)

    @staticmethod
    def _kernel_sizes(quick: bool) -> list[Config]:
        """3x3 to 9x9 at strides 1 and 2 over maps from a stem's to a last stage's,
        as searched networks (MnasNet, ProxylessNAS, FBNet) use them. The space's
        draws leave each large kernel a few samples (a fresh EPYC profile: 7x7 and
        9x9 at stride 1 two each), and the families have 3x3 and 5x5 only. Timed
        into a copy of that profile, with its own kernels re-timed in the same run:
        seed 21's 212 depthwise convs within +-10% 67 -> 74%, 60 random sweep
        points (dev seeds 501-502) 67 -> 73%."""
        maps = ((28, 144),) if quick else ((48, 32), (28, 144), (14, 384), (7, 960))
        return [dict(h=h, w=h, c=c, k=k, s=s) for k in (3, 5, 7, 9) for s in (1, 2)
                for h, c in maps]

    def window_bytes(self, config: Config) -> float:
        """XNNPACK's depthwise kernels compute one output pixel over all channels, a
        channel tile at a time, reading the k x k taps of the weights and of the input
        window; the next pixel reuses the weights and most of the window. While both fit
        the L1 they stay there. On the EPYC VM (32 KB L1d), 3x3 and 5x5 at 20x20 and
        40x40 ran at 0.043-0.047 ns per multiply-add up to 31 KB of taps (3x3 over 448
        channels, 5x5 over 160), 0.052-0.056 at 36 KB and 0.064-0.086 from 40 KB on
        (5x5 over 208-400 channels, 3x3 over 576-896), whatever the map size."""
        return 2.0 * 4.0 * config["k"] ** 2 * config["c"]

    def to_ir(self, c: Config) -> Op:
        ho, wo = same_out(c["h"], c["s"]), same_out(c["w"], c["s"])
        return Op("depthwise", "DepthwiseConv2D", ["x"], [(1, c["h"], c["w"], c["c"])],
                  [(1, ho, wo, c["c"])],
                  {"kernel_size": (c["k"], c["k"]), "strides": (c["s"], c["s"]),
                   "use_bias": True})

    def build(self, c: Config, rng):
        return self._build(c, rng, 1)


@register
class DepthwiseMultiplier(_DepthwiseBase):
    """A depthwise conv with a depth multiplier above 1 (MobileNet(depth_multiplier=2)):
    c input channels, c * dm outputs. Not the depthwise kernels' fast path: on the EPYC
    VM 3x3 at 24x24 over 24 channels with dm 2 took 78 us, over 48 channels with dm 1
    15 us."""

    name = "depthwise_multiplier"
    keys = ("h", "w", "c", "dm", "k", "s")
    space = {"h": Dim(1, 320), "c": Dim(1, 1024), "dm": Dim(choices=(2, 3, 4, 6, 8)),
             "k": Dim(1, 11, log=False), "s": Dim(1, 4, log=False)}

    def to_ir(self, c: Config) -> Op:
        ho, wo = same_out(c["h"], c["s"]), same_out(c["w"], c["s"])
        return Op("depthwise_multiplier", "DepthwiseConv2D", ["x"],
                  [(1, c["h"], c["w"], c["c"])], [(1, ho, wo, c["c"] * c["dm"])],
                  {"kernel_size": (c["k"], c["k"]), "strides": (c["s"], c["s"]),
                   "use_bias": True, "depth_multiplier": c["dm"]})

    def build(self, c: Config, rng):
        return self._build(c, rng, c["dm"])

    def coverage_configs(self, quick: bool) -> list[Config]:
        """The application families have none."""
        dms = (2,) if quick else (2, 4)
        maps = ((48, 16), (12, 64)) if quick else ((48, 16), (24, 32), (12, 64))
        return [dict(h=h, w=h, c=c, dm=dm, k=3, s=s)
                for dm in dms for h, c in maps for s in (1, 2)]


def depthwise_config(h: int, w: int, cin: int, dm: int, k: int, s: int) -> tuple[str, Config]:
    """A depth multiplier above 1 runs as a kernel of its own (`depthwise_multiplier`)."""
    if dm > 1:
        return ("depthwise_multiplier", dict(h=h, w=w, c=cin, dm=dm, k=k, s=s))
    return ("depthwise", dict(h=h, w=w, c=cin, k=k, s=s))


@keras_layer("DepthwiseConv2D", "DepthwiseConv1D")
def _keras_depthwise(op: Op):
    x = op.input_shapes[0]
    h, w = layer_same_input(op, square(op, "strides"))
    dw = depthwise_config(h, w, int(x[-1]), int(op.attrs.get("depth_multiplier", 1)),
                          square(op, "kernel_size"), square(op, "strides"))
    return [dw] + fused_activation_configs(op)


@keras_layer("SeparableConv2D", "SeparableConv1D")
def _keras_separable(op: Op):
    x = op.input_shapes[0]
    h, w = layer_same_input(op, square(op, "strides"))
    cin = int(x[-1])
    dm = int(op.attrs.get("depth_multiplier", 1))
    ho, wo = layer_hw(op.output_shape)
    return [depthwise_config(h, w, cin, dm, square(op, "kernel_size"), square(op, "strides")),
            ("conv2d", dict(h=ho, w=wo, cin=cin * dm, cout=int(op.output_shape[-1]), k=1, s=1))]


@litert_kernel("DEPTHWISE_CONV_2D")
def _litert_depthwise(k):
    s = int(k.options.get("strideH", 1))
    h, w = kernel_same_input(k, s)
    _, kh, kw, c = k.input_shapes[1]
    size = int(round(math.sqrt(kh * kw)))
    cin = k.input_shapes[0][-1]
    if c > cin:  # a depth multiplier: a kernel of its own (the options' field is deprecated)
        return [("depthwise_multiplier", dict(h=h, w=w, c=cin, dm=c // cin, k=size, s=s))]
    return [("depthwise", dict(h=h, w=w, c=c, k=size, s=s))]
