"""ResNet-18 and ResNet-34 (He et al. 2016): a 7x7 stride-2 stem and max pool, four
stages of basic blocks (two 3x3 convs with a residual add; a 1x1 stride-2 projection
where the shape changes), global pool and a dense classifier. keras.applications ships
only the bottleneck ResNets (50 and up), which the profile's plans draw from; the
basic block's two full 3x3 convs per block are not in any plan."""

from __future__ import annotations

import random

from latency_lab.zoo.blocks import (check_input_size, check_int, check_ints, conv_bn,
                                    draw_input_size, image_input, scaled_channels,
                                    stage_scales)

__all__ = ["RESNET_WIDTHS", "resnet18", "resnet34", "sample_resnet18", "sample_resnet34"]

RESNET_WIDTHS = (64, 128, 256, 512)
_DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
_INPUT_PX = {"resnet18": (64, 160), "resnet34": (64, 128)}


def _basic_block(x, filters: int, stride: int, name: str):
    from keras import layers

    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, stride, activation=None, name=f"{name}_proj")
    y = conv_bn(x, filters, 3, stride, name=f"{name}_1")
    y = conv_bn(y, filters, 3, activation=None, name=f"{name}_2")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def _resnet(arch: str, stage_channels, stem_channels: int, input_size: int, num_classes: int):
    import keras
    from keras import layers

    widths = check_ints("stage_channels", stage_channels, 4)
    check_int("stem_channels", stem_channels)
    check_int("num_classes", num_classes)
    check_input_size(input_size, 32)
    inputs = image_input(input_size)
    x = conv_bn(inputs, stem_channels, 7, 2, name="stem")
    x = layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for s, (filters, depth) in enumerate(zip(widths, _DEPTHS[arch])):
        for b in range(depth):
            x = _basic_block(x, filters, 2 if b == 0 and s > 0 else 1, f"stage{s + 1}_block{b + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=arch)


def resnet18(stage_channels=RESNET_WIDTHS, stem_channels: int = 64, input_size: int = 224,
             num_classes: int = 1000):
    """ResNet-18: basic blocks (2, 2, 2, 2) of `stage_channels` filters."""
    return _resnet("resnet18", stage_channels, stem_channels, input_size, num_classes)


def resnet34(stage_channels=RESNET_WIDTHS, stem_channels: int = 64, input_size: int = 224,
             num_classes: int = 1000):
    """ResNet-34: basic blocks (3, 4, 6, 3) of `stage_channels` filters."""
    return _resnet("resnet34", stage_channels, stem_channels, input_size, num_classes)


def _sample(arch: str, rng: random.Random) -> dict:
    scales = stage_scales(rng, 5)
    return {"stage_channels": [scaled_channels(w, s) for w, s in zip(RESNET_WIDTHS, scales[1:])],
            "stem_channels": scaled_channels(64, scales[0]),
            "input_size": draw_input_size(rng, *_INPUT_PX[arch])}


def sample_resnet18(rng: random.Random) -> dict:
    """Stem and each stage scaled by 0.2-1.8; input 64-160 px (no kernel choice: the
    basic block is 3x3 by definition)."""
    return _sample("resnet18", rng)


def sample_resnet34(rng: random.Random) -> dict:
    """As resnet18, input 64-128 px (twice the blocks)."""
    return _sample("resnet34", rng)
