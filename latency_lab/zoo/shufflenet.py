"""ShuffleNet V2 (Ma et al. 2018): a stride-2 3x3 stem and max pool, three stages of
units, a 1x1 head conv, global pool, dense logits. A unit splits its channels in two
(keras.ops slicing), runs one half through 1x1 conv -> depthwise conv -> 1x1 conv,
concatenates it with the untouched half and shuffles the channels (Reshape -> Permute
-> Reshape); a downsampling unit feeds both branches the whole input at stride 2.
Slices, concatenations and transposes that cost memory traffic and no FLOPs are this
family's point: no keras.applications network has them."""

from __future__ import annotations

import random

from latency_lab.errors import InvalidArgumentError
from latency_lab.zoo.blocks import (check_choices, check_input_size, check_int, check_ints,
                                    classifier_head, conv_bn, draw_input_size, draw_kernels,
                                    image_input, scaled_channels, stage_scales)

__all__ = ["SHUFFLENET_KERNELS", "SHUFFLENET_WIDTHS", "shufflenet_v2", "sample_shufflenet_v2",
           "channel_shuffle"]

SHUFFLENET_KERNELS = (3, 5, 7)  # depthwise kernel per stage (ShuffleNet V2+ searches these)
SHUFFLENET_WIDTHS = (116, 232, 464)  # the 1.0x network's stage widths
_REPEATS = (4, 8, 4)


def channel_shuffle(x, groups: int, name: str):
    """(H, W, g*n) -> (H, W, g, n) -> (H, W, n, g) -> (H, W, g*n): channel i of group j
    moves next to channel i of the other groups."""
    from keras import layers

    h, w, c = x.shape[1:]
    x = layers.Reshape((h, w, groups, c // groups), name=f"{name}_split_groups")(x)
    x = layers.Permute((1, 2, 4, 3), name=f"{name}_transpose")(x)
    return layers.Reshape((h, w, c), name=f"{name}_merge_groups")(x)


def _branch(x, out_channels: int, kernel: int, stride: int, name: str):
    from keras import layers

    x = conv_bn(x, out_channels, 1, name=f"{name}_pw1")
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                               name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    return conv_bn(x, out_channels, 1, name=f"{name}_pw2")


def _unit(x, channels: int, kernel: int, stride: int, name: str):
    from keras import layers

    half = channels // 2
    if stride == 1:
        kept, right = x[..., :half], x[..., half:]
    else:
        kept = layers.DepthwiseConv2D(kernel, strides=2, padding="same", use_bias=False,
                                      name=f"{name}_short_dw")(x)
        kept = layers.BatchNormalization(name=f"{name}_short_dw_bn")(kept)
        kept = conv_bn(kept, half, 1, name=f"{name}_short_pw")
        right = x
    right = _branch(right, half, kernel, stride, name)
    x = layers.Concatenate(name=f"{name}_concat")([kept, right])
    return channel_shuffle(x, 2, name)


def shufflenet_v2(stage_channels=SHUFFLENET_WIDTHS, stage_repeats=_REPEATS,
                  stage_kernels=(3, 3, 3), stem_channels: int = 24, head_channels: int = 1024,
                  input_size: int = 224, num_classes: int = 1000):
    """Stage i: one downsampling unit, then stage_repeats[i] - 1 units, all with
    `stage_channels[i]` (even) channels and a depthwise kernel of `stage_kernels[i]`."""
    import keras
    from keras import layers

    widths = check_ints("stage_channels", stage_channels, 3, minimum=2)
    odd = [c for c in widths if c % 2]
    if odd:
        raise InvalidArgumentError(f"stage_channels must be even (a unit splits them in "
                                   f"two), got {list(stage_channels)!r}")
    repeats = check_ints("stage_repeats", stage_repeats, 3)
    kernels = check_choices("stage_kernels", stage_kernels, 3, SHUFFLENET_KERNELS)
    check_int("stem_channels", stem_channels)
    check_int("head_channels", head_channels)
    check_int("num_classes", num_classes)
    check_input_size(input_size, 32)
    inputs = image_input(input_size)
    x = conv_bn(inputs, stem_channels, 3, 2, name="stem")
    x = layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for s, (channels, repeat, k) in enumerate(zip(widths, repeats, kernels)):
        for u in range(repeat):
            x = _unit(x, channels, k, 2 if u == 0 else 1, f"stage{s + 2}_unit{u + 1}")
    return keras.Model(inputs, classifier_head(x, num_classes, head_channels),
                       name="shufflenet_v2")


def sample_shufflenet_v2(rng: random.Random) -> dict:
    """Stem, each stage and the head conv scaled by 0.2-1.8 (stages to multiples of 8,
    so both halves stay even); depthwise kernel 3/5/7 per stage; input 96-224 px."""
    scales = stage_scales(rng, 5)
    return {"stage_channels": [scaled_channels(w, s)
                               for w, s in zip(SHUFFLENET_WIDTHS, scales[1:4])],
            "stage_repeats": list(_REPEATS),
            "stage_kernels": draw_kernels(rng, 3, SHUFFLENET_KERNELS),
            "stem_channels": scaled_channels(24, scales[0]),
            "head_channels": scaled_channels(1024, scales[4]),
            "input_size": draw_input_size(rng, 96, 224)}
