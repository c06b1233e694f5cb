"""Regular 2-D convolutions (and Conv1D, timed as the conv over a map one wide)."""

from __future__ import annotations

import math
from typing import Iterable

from latency_lab.graph import Op
from latency_lab.op_kinds.activation import fused_activation_configs
from latency_lab.op_kinds.base import (Dim, Config, OpKind, get, kernel_same_input, keras_layer,
                                       layer_same_input, litert_kernel, out_pixels,
                                       random_weights, Region, register, same_out, square,
                                       tile_features, weight_tensor)

__all__ = ["Conv2D", "conv2d_config", "in_map_taps", "small_map_configs",
           "SMALL_MAP_WEIGHT_BYTES", "SMALL_MAP_SIZES"]


@register
class Conv2D(OpKind):
    name = "conv2d"
    keys = ("h", "w", "cin", "cout", "k", "s")
    in_channel_keys = ("cin",)
    step_channels = ("cout", 1.0)  # the step itself: `channel_step`
    table_share = 18
    wide_tile_flag = True  # `predictors.featurize`
    narrow = True
    space = {"h": Dim(1, 320), "cin": Dim(1, 4096), "cout": Dim(1, 4096),
             "k": Dim(1, 11, log=False), "s": Dim(1, 4, log=False)}
    path_keys = ("k", "s")
    # a ViT's patch embedding: a conv as large as its stride (patches of 2-16 pixels)
    # over an image's few channels; and narrow convs of every small kernel, as a
    # NAS cell or a strongly slimmed network has them: the families' convs have 64
    # channels and more, and a fresh EPYC profile had 5 of its 245 conv samples at
    # 3x3 stride 1 under 64 output channels. Its lookup put single 3x3 and 5x5 convs
    # over 17-31 output channels (one 32-channel step) 13-23% under (op sweep seed 10).
    # And tiny maps of every kernel size with many channels, where a network fed a
    # small input ends: XLA's CPU conv takes a slow path when the kernel overhangs
    # its map, at a speed per in-map tap that depends on the map (EPYC VM, keras36:
    # 4x4 maps 3.7-3.8 GFLOP/s whatever the channels, 2x2 maps 0.6), and the
    # families' small maps (`small_map_configs`) are 1x1 and 3x3 kernels only: the
    # keras lookup put a VGG's 288 -> 288 5x5 over 4x4 at 23 ms, 2.7x its 8.6 ms.
    regions = {"patchify": Region({"h": Dim(32, 320), "cin": Dim(1, 4, log=False),
                                   "cout": Dim(16, 768), "k": Dim(2, 16, log=False)},
                                  ties={"s": ("k",)}),
               "narrow": Region({"h": Dim(4, 64), "cin": Dim(1, 64), "cout": Dim(1, 64),
                                 "k": Dim(1, 7, log=False), "s": Dim(1, 2, log=False)}),
               "tiny_maps": Region({"h": Dim(1, 8), "cin": Dim(16, 1024),
                                    "cout": Dim(16, 1024), "k": Dim(1, 11, log=False),
                                    "s": Dim(1, 2, log=False)})}

    def channel_step(self, config: Config, channel_tile: int) -> int:
        """XNNPACK runs a 1x1 conv as a GEMM, one channel tile (16 on x86) per step,
        and a larger kernel as an indirect GEMM whose microkernel is two tiles wide
        once there is more than one tile of outputs. On the EPYC VM (AVX-512, LiteRT
        2.3), 3x3 at 52x52 over c -> c channels: 56 and 64 took 1.67 and 1.90 ms, 72
        3.20 ms; 72, 80, 88 and 96 rose only with cin; at 56x56 64 -> 8 and -> 16 both
        0.53 ms, -> 24 and -> 32 1.06-1.10 ms, -> 40 and -> 48 2.19-2.21 ms; 5x5 and 3x3
        stride 2 the same; 1x1 at 28x28 from 128 rose in steps of 16. Half-tile steps
        (the previous rule) put a 3x3 72 -> 72 20% under. 5-fold CV on a fresh EPYC
        profile's 248 conv2d samples, half tile -> this: RMSPE 10.6 -> 10.1%, within
        +-10% 75 -> 85%, within +-5% 52 -> 61%; the 14 sweep points above -20..-1% ->
        -2..0%."""
        if config["k"] == 1 or config["cout"] <= channel_tile:
            return channel_tile
        return 2 * channel_tile

    def tiled_flops(self, config: Config, flops: float, row_tile: int | None = None) -> float:
        """The output pixels (the GEMM's rows) in whole row tiles: XNNPACK's (indirect)
        GEMM computes `row_tile` pixels a step (mr: 7 with AVX-512), a lone pixel with
        a kernel of its own. On the EPYC VM (LiteRT, 1 thread) 3x3 convs over c -> c
        channels took the same time per 7-pixel step from 2x2 to 14x14 maps (232
        channels 30.0-31.4 us, 664 channels 240-257 us): a 6x6 map (36 pixels, 6
        steps) costs as much as 42 pixels. The families' maps at 224 px (7, 14, 28,
        56, 112) are multiples of 7 and never showed it; without it a 664-channel 3x3
        over 6x6 was predicted -24%."""
        pixels = out_pixels(config)
        if not row_tile or pixels <= 1:
            return flops
        return flops * row_tile * math.ceil(pixels / row_tile) / pixels

    def unread_bytes(self, config: Config) -> float:
        """A kernel smaller than its stride (1x1 at stride 2, 3x3 at stride 4) reads
        only the rows and columns its windows cover: ho * k of h. A 1x1 stride-4 conv
        over 87x87x60 reads 6% of its input; counted whole, the memory-bound base put
        it at 3.8x its time."""
        k, s = config["k"], config["s"]
        h, w = config["h"], config["w"]
        rows = min(h, same_out(h, s) * k)
        cols = min(w, same_out(w, s) * k)
        return 4.0 * config["cin"] * (h * w - rows * cols)

    def to_ir(self, c: Config) -> Op:
        ho, wo = same_out(c["h"], c["s"]), same_out(c["w"], c["s"])
        return Op("conv2d", "Conv2D", ["x"], [(1, c["h"], c["w"], c["cin"])],
                  [(1, ho, wo, c["cout"])],
                  {"kernel_size": (c["k"], c["k"]), "strides": (c["s"], c["s"]),
                   "use_bias": True})

    def build(self, c: Config, rng):
        import keras

        kernel = random_weights(rng, c["k"], c["k"], c["cin"], c["cout"])
        bias = random_weights(rng, c["cout"])

        def fn(x):
            y = keras.ops.conv(x, weight_tensor(kernel), strides=c["s"], padding="same")
            return keras.ops.relu(y + weight_tensor(bias))

        return [(1, c["h"], c["w"], c["cin"])], fn

    def features(self, cfg: Config, categories, channel_tile):
        """A conv as the GEMM the runtime runs: output pixels x (cin * k * k) x cout,
        plus kernel size and stride. Its efficiency follows the GEMM's shape, which
        separate h, w, cin logs describe only in combination (5-fold CV on the EPYC
        profile: RMSPE 13.3 -> 11.2%). And whether the kernel is larger than its
        input map: XLA's CPU convs take another path there (EPYC VM, keras runtime,
        profile keras35: 3x3 over a 2x2 map, 512 -> 512 channels, 13.7 ms, 1.4
        GFLOP/s; over 4x4 0.48 ms, 200 GFLOP/s; every sample whose kernel overhangs
        its map ran at 0.5-13 GFLOP/s), which a smooth function of the map's size
        spread onto the 3x3 maps between them. On that path the time follows the
        taps that read the map (`in_map_taps`): 192 -> 64 over 4x4 took 1.29 ms at
        k = 5 and 1.79-1.96 ms at k = 7-11, where k*k grows 2-4.8x and the in-map taps
        1.3x. 5-fold CV (3 fold seeds) of keras36's 310 conv samples: RMSPE 35.3 ->
        29.0% (the 45 that overhang 88.9 -> 72.3%, the others 10.6 -> 9.6%); LiteRT
        (fresh24, 276) 11.3 -> 11.2%: XNNPACK computes every tap."""
        pixels = out_pixels(cfg)
        feats = [math.log(max(pixels, 1)), math.log(max(cfg["cin"] * cfg["k"] ** 2, 1)),
                 math.log(max(cfg["cout"], 1)), float(cfg["k"]), float(cfg["s"]),
                 float(cfg["k"] > min(cfg["h"], cfg["w"])), math.log(in_map_taps(cfg))]
        if channel_tile:
            feats += tile_features(cfg["cout"], channel_tile) + tile_features(cfg["cin"], channel_tile)
        return feats

    def regime(self, config: Config) -> str | None:
        """"overhang" where the kernel is larger than its input map. XLA's CPU conv
        takes a slow path there whose speed does not follow the channels (EPYC VM,
        keras runtime, 3x3 c -> c over 2x2 alone: 256 channels 1.40 ms, 512 12.77 ms,
        640 8.58 ms, 848 7.76 ms; over 4x4 0.21-1.20 ms, 88-172 GFLOP/s). Fitted in
        one regressor with the rest, those samples set length scales that made the
        keras lookup put 221 ordinary convs of six held-out networks (seed 22, timed
        alone) +32% over, time-weighted; fitted apart, +7%."""
        return "overhang" if config["k"] > min(config["h"], config["w"]) else None

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Regular convs with 5x5 and 7x7 kernels at strides 1 and 2: the application
        families have almost none (5x5 and 7x7 appear as depthwise convs and one ResNet
        stem), yet user networks and searched architectures use them."""
        sizes = ((28, 32),) if quick else ((56, 32), (28, 64), (14, 128))
        return [dict(h=h, w=h, cin=c, cout=c, k=k, s=s)
                for h, c in sizes for k in (5, 7) for s in (1, 2)]


def _in_map(n: int, k: int, s: int) -> float:
    """Mean number of a k-tap window's taps (along one side, "same" padding) that land
    inside an input of n pixels, over the output positions."""
    out = same_out(n, s)
    pad = max((out - 1) * s + k - n, 0) // 2
    return sum(min(n, i * s - pad + k) - max(0, i * s - pad) for i in range(out)) / out


def in_map_taps(cfg: Config) -> float:
    """The share of a conv's k x k taps that read its input map rather than padding,
    averaged over its outputs: 1 for a kernel well inside a large map, 16/121 for an
    11x11 over a 4x4 map."""
    k = cfg["k"]
    return _in_map(cfg["h"], k, cfg["s"]) * _in_map(cfg["w"], k, cfg["s"]) / (k * k)


def conv2d_config(h: int, w: int, cin: int, cout: int, kh: int, kw: int, s: int) -> Config:
    """The conv2d sample that times a kh x kw conv. The table's kernels are square, so
    a 1x7 or 7x1 (Inception) is timed as the square kernel of about as many taps,
    k = round(sqrt(kh * kw)), over the input channels that keep its multiply-adds:
    cin * kh * kw / k^2. On the EPYC VM (LiteRT, 1 thread), seven 1x3..7x1 convs
    measured alone were predicted -10..-1% off this way, +18..+30% off (and a 1x5
    -21%) as the k x k conv over all input channels."""
    k = max(1, int(round(math.sqrt(kh * kw))))
    if kh != kw:
        cin = max(1, int(round(cin * kh * kw / k ** 2)))
    return dict(h=h, w=w, cin=cin, cout=cout, k=k, s=s)


SMALL_MAP_WEIGHT_BYTES = 2**20  # past a core's L2: the weights come from L3 or DRAM
SMALL_MAP_SIZES = (1, 2, 4)  # output pixels per side


def small_map_configs(configs: Iterable[tuple[str, Config]]) -> list[tuple[str, Config]]:
    """The families' convs with at least SMALL_MAP_WEIGHT_BYTES of weights, at 1x1,
    2x2 and 4x4 outputs: where a network fed a small input ends, the time of such a
    conv is the fetch of its weights, a regime the families' own maps (5x5 and up)
    never reach. Random variants rarely land there (one in a 690-sample plan)."""
    kind = get("conv2d")  # the registered instance
    out = []
    for op, cfg in configs:
        if op != "conv2d" or kind.weight_bytes(cfg) < SMALL_MAP_WEIGHT_BYTES:
            continue
        for size in SMALL_MAP_SIZES:
            h = size * cfg["s"]
            out.append((op, dict(cfg, h=h, w=h)))
    return out


@keras_layer("Conv2D", "Conv1D")
def _keras_conv(op: Op):
    x = op.input_shapes[0]
    h, w = layer_same_input(op, square(op, "strides"))
    ks = tuple(op.attrs.get("kernel_size", (1,)))
    kh, kw = (ks[0], ks[-1]) if len(ks) > 1 else (ks[0], 1)
    cfg = conv2d_config(h, w, int(x[-1]) // int(op.attrs.get("groups", 1)),
                        int(op.output_shape[-1]), int(kh), int(kw), square(op, "strides"))
    return [("conv2d", cfg)] + fused_activation_configs(op)


@litert_kernel("CONV_2D")
def _litert_conv(k):
    s = int(k.options.get("strideH", 1))
    h, w = kernel_same_input(k, s)
    cout, kh, kw, cin = k.input_shapes[1]
    if h * w == 1 and kh * kw == 1:
        # A 1x1 conv on a 1x1 map (squeeze-excite, conv heads) is a matrix-vector
        # product, which XNNPACK runs with the fully-connected kernels: time it as the
        # dense op it is (the conv table has no 1x1 maps to interpolate from).
        return [("dense", dict(rows=1, cin=cin, cout=cout))]
    return [("conv2d", conv2d_config(h, w, cin, cout, kh, kw, s))]
