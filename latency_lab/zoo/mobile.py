"""Searched mobile networks of inverted-residual blocks (1x1 expand -> kxk depthwise
-> 1x1 project, residual add at stride 1 with equal widths):

* MnasNet-A1 (Tan et al. 2019): one kernel, expansion and width per stage, and
  squeeze-and-excite in the paper's three stages (40, 112 and 160 channels).
* ProxylessNAS, mobile space (Cai et al. 2019): kernel and expansion chosen per block,
  and blocks after a stage's first one may be skipped (the search's zero op), so
  stages differ in depth.

Kernels run 3-9: XNNPACK's depthwise kernels take other code paths past 3x3, which
only networks that have them can show."""

from __future__ import annotations

import random

from latency_lab.errors import InvalidArgumentError
from latency_lab.zoo.blocks import (check_choices, check_input_size, check_int, check_ints,
                                    classifier_head, conv_bn, draw_input_size, draw_kernels,
                                    image_input, scaled_channels, stage_scales)

__all__ = ["MOBILE_KERNELS", "MOBILE_EXPANSIONS", "MNASNET_WIDTHS", "PROXYLESS_WIDTHS",
           "inverted_residual", "mnasnet", "proxylessnas", "sample_mnasnet",
           "sample_proxylessnas"]

MOBILE_KERNELS = (3, 5, 7, 9)
MOBILE_EXPANSIONS = (3, 6)
# MnasNet-A1 after the stem and its first separable conv (16 channels).
MNASNET_WIDTHS = (24, 40, 80, 112, 160, 320)
_MNAS_REPEATS = (2, 3, 4, 2, 3, 1)
_MNAS_STRIDES = (2, 2, 2, 1, 2, 1)
_MNAS_SE = (False, True, False, True, True, False)
PROXYLESS_WIDTHS = (24, 40, 80, 96, 192, 320)
_PROXYLESS_MAX_DEPTH = (4, 4, 4, 4, 4, 1)
_PROXYLESS_STRIDES = (2, 2, 2, 1, 2, 1)


def _squeeze_excite(x, reduced: int, name: str):
    from keras import layers

    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    s = layers.Conv2D(reduced, 1, activation="relu", name=f"{name}_se_reduce")(s)
    s = layers.Conv2D(x.shape[-1], 1, activation="sigmoid", name=f"{name}_se_expand")(s)
    return layers.Multiply(name=f"{name}_se_scale")([x, s])


def inverted_residual(x, out_channels: int, kernel: int, stride: int, expansion: int,
                      se: bool, name: str):
    """MobileNetV2's block; `se` adds squeeze-and-excite (to a quarter of the block's
    input width) after the depthwise conv."""
    from keras import layers

    in_channels = x.shape[-1]
    y = x if expansion == 1 else conv_bn(x, in_channels * expansion, 1, name=f"{name}_expand")
    y = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                               name=f"{name}_dw")(y)
    y = layers.BatchNormalization(name=f"{name}_dw_bn")(y)
    y = layers.Activation("relu", name=f"{name}_dw_act")(y)
    if se:
        y = _squeeze_excite(y, max(1, in_channels // 4), name)
    y = conv_bn(y, out_channels, 1, activation=None, name=f"{name}_project")
    if stride == 1 and in_channels == out_channels:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def _check_widths(stem_channels, first_channels, head_channels, num_classes) -> None:
    check_int("stem_channels", stem_channels)
    check_int("first_channels", first_channels)
    check_int("head_channels", head_channels)
    check_int("num_classes", num_classes)


def _stem(input_size: int, stem_channels: int, first_channels: int):
    inputs = image_input(input_size)
    x = conv_bn(inputs, stem_channels, 3, 2, name="stem")
    return inputs, inverted_residual(x, first_channels, 3, 1, 1, False, "block0")


def mnasnet(stage_channels=MNASNET_WIDTHS, stage_kernels=(3, 5, 3, 3, 5, 3),
            stage_expansions=(6, 3, 6, 6, 6, 6), stem_channels: int = 32,
            first_channels: int = 16, head_channels: int = 1280, input_size: int = 224,
            num_classes: int = 1000):
    """Six stages of MBConv blocks (repeats 2, 3, 4, 2, 3, 1), stage i with
    `stage_channels[i]`, kernel `stage_kernels[i]` and expansion
    `stage_expansions[i]`; defaults are MnasNet-A1."""
    import keras

    widths = check_ints("stage_channels", stage_channels, 6)
    kernels = check_choices("stage_kernels", stage_kernels, 6, MOBILE_KERNELS)
    expansions = check_choices("stage_expansions", stage_expansions, 6, MOBILE_EXPANSIONS)
    _check_widths(stem_channels, first_channels, head_channels, num_classes)
    check_input_size(input_size, 32)
    inputs, x = _stem(input_size, stem_channels, first_channels)
    for s in range(6):
        for b in range(_MNAS_REPEATS[s]):
            x = inverted_residual(x, widths[s], kernels[s], _MNAS_STRIDES[s] if b == 0 else 1,
                                  expansions[s], _MNAS_SE[s], f"stage{s + 1}_block{b + 1}")
    return keras.Model(inputs, classifier_head(x, num_classes, head_channels), name="mnasnet")


def proxylessnas(stage_channels=PROXYLESS_WIDTHS, block_kernels=((3,) * 4,) * 5 + ((3,),),
                 block_expansions=((6,) * 4,) * 5 + ((6,),), stem_channels: int = 32,
                 first_channels: int = 16, head_channels: int = 1280, input_size: int = 224,
                 num_classes: int = 1000):
    """Six stages (strides 2, 2, 2, 1, 2, 1) of `stage_channels[i]`; stage i has one
    block per entry of block_kernels[i] (1-4; the last stage 1), each with its own
    kernel and expansion (block_expansions[i][j])."""
    import keras

    widths = check_ints("stage_channels", stage_channels, 6)
    if isinstance(block_kernels, (str, bytes)) or len(block_kernels) != 6 \
            or isinstance(block_expansions, (str, bytes)) or len(block_expansions) != 6:
        raise InvalidArgumentError("block_kernels and block_expansions must hold one sequence "
                                   f"per stage (6), got {block_kernels!r} and {block_expansions!r}")
    kernels, expansions = [], []
    for s in range(6):
        ks = block_kernels[s]
        depth = len(ks) if isinstance(ks, (list, tuple)) else 0
        if not 1 <= depth <= _PROXYLESS_MAX_DEPTH[s]:
            raise InvalidArgumentError(f"block_kernels[{s}] must list 1-{_PROXYLESS_MAX_DEPTH[s]} "
                                       f"kernels, one per block, got {ks!r}")
        kernels.append(check_choices(f"block_kernels[{s}]", ks, depth, MOBILE_KERNELS))
        expansions.append(check_choices(f"block_expansions[{s}]", block_expansions[s], depth,
                                        MOBILE_EXPANSIONS))
    _check_widths(stem_channels, first_channels, head_channels, num_classes)
    check_input_size(input_size, 32)
    inputs, x = _stem(input_size, stem_channels, first_channels)
    for s in range(6):
        for b, (k, e) in enumerate(zip(kernels[s], expansions[s])):
            x = inverted_residual(x, widths[s], k, _PROXYLESS_STRIDES[s] if b == 0 else 1, e,
                                  False, f"stage{s + 1}_block{b + 1}")
    return keras.Model(inputs, classifier_head(x, num_classes, head_channels),
                       name="proxylessnas")


def _mobile_common(rng: random.Random, widths) -> dict:
    scales = stage_scales(rng, 9)
    return {"stage_channels": [scaled_channels(w, s) for w, s in zip(widths, scales[2:8])],
            "stem_channels": scaled_channels(32, scales[0]),
            "first_channels": scaled_channels(16, scales[1]),
            "head_channels": scaled_channels(1280, scales[8])}


def sample_mnasnet(rng: random.Random) -> dict:
    """Stem, first block, head and each stage scaled by 0.2-1.8; kernel 3/5/7/9 and
    expansion 3/6 per stage; input 96-192 px."""
    cfg = _mobile_common(rng, MNASNET_WIDTHS)
    cfg.update(stage_kernels=draw_kernels(rng, 6, MOBILE_KERNELS),
               stage_expansions=[rng.choice(MOBILE_EXPANSIONS) for _ in range(6)],
               input_size=draw_input_size(rng, 96, 192))
    return cfg


def sample_proxylessnas(rng: random.Random) -> dict:
    """As mnasnet, with a depth of 2-4 blocks per stage (the last stage 1) and kernel
    3/5/7/9 and expansion 3/6 drawn per block."""
    cfg = _mobile_common(rng, PROXYLESS_WIDTHS)
    depths = [rng.randint(min(2, d), d) for d in _PROXYLESS_MAX_DEPTH]
    cfg.update(block_kernels=[draw_kernels(rng, d, MOBILE_KERNELS) for d in depths],
               block_expansions=[[rng.choice(MOBILE_EXPANSIONS) for _ in range(d)] for d in depths],
               input_size=draw_input_size(rng, 96, 192))
    return cfg
