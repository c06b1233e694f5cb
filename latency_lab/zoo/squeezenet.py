"""SqueezeNet 1.1 (Iandola et al. 2016): a stride-2 3x3 stem, eight fire modules in
four stages with max pools between, a 1x1 conv to the classes and a global average
pool (no dense layer). A fire module squeezes to few channels with a 1x1 conv, then
expands through a 1x1 and a kxk conv side by side and concatenates them: many small,
low-arithmetic-intensity convs."""

from __future__ import annotations

import random

from latency_lab.zoo.blocks import (check_choices, check_input_size, check_int, check_ints,
                                    draw_input_size, draw_kernels, image_input,
                                    scaled_channels, stage_scales)

__all__ = ["SQUEEZENET_KERNELS", "SQUEEZENET_SQUEEZE", "squeezenet", "sample_squeezenet", "fire"]

SQUEEZENET_KERNELS = (3, 5)  # the expand branch's kernel, per stage
SQUEEZENET_SQUEEZE = (16, 32, 48, 64)  # squeeze width per stage of v1.1; expand is 4x
_FIRES = (2, 2, 2, 2)


def fire(x, squeeze: int, expand: int, kernel: int, name: str):
    """1x1 squeeze, then 1x1 and kxk expands of `expand` channels each, concatenated."""
    from keras import layers

    x = layers.Conv2D(squeeze, 1, activation="relu", name=f"{name}_squeeze")(x)
    a = layers.Conv2D(expand, 1, activation="relu", name=f"{name}_expand1x1")(x)
    b = layers.Conv2D(expand, kernel, padding="same", activation="relu",
                      name=f"{name}_expand{kernel}x{kernel}")(x)
    return layers.Concatenate(name=f"{name}_concat")([a, b])


def squeezenet(squeeze_channels=SQUEEZENET_SQUEEZE, expand_channels=(64, 128, 192, 256),
               stage_kernels=(3, 3, 3, 3), stem_channels: int = 64, input_size: int = 224,
               num_classes: int = 1000):
    """Stem conv and max pool; stages of two fire modules (squeeze_channels[i],
    expand_channels[i], stage_kernels[i]) with a max pool after the first two stages;
    dropout, 1x1 conv to `num_classes`, global average pool, softmax."""
    import keras
    from keras import layers

    squeeze = check_ints("squeeze_channels", squeeze_channels, 4)
    expand = check_ints("expand_channels", expand_channels, 4)
    kernels = check_choices("stage_kernels", stage_kernels, 4, SQUEEZENET_KERNELS)
    check_int("stem_channels", stem_channels)
    check_int("num_classes", num_classes)
    check_input_size(input_size, 32)
    inputs = image_input(input_size)
    x = layers.Conv2D(stem_channels, 3, strides=2, activation="relu", name="stem_conv")(inputs)
    x = layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    n = 0
    for s in range(4):
        for _ in range(_FIRES[s]):
            n += 1
            x = fire(x, squeeze[s], expand[s], kernels[s], f"fire{n + 1}")
        if s < 2:
            x = layers.MaxPooling2D(3, 2, padding="same", name=f"stage{s + 1}_pool")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    x = layers.Conv2D(num_classes, 1, activation="relu", name="classifier_conv")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="squeezenet")


def sample_squeezenet(rng: random.Random) -> dict:
    """Stem and each stage scaled by 0.2-1.8 (squeeze and expand by the same factor);
    expand kernel 3 or 5 per stage; input 96-224 px."""
    scales = stage_scales(rng, 5)
    return {"squeeze_channels": [scaled_channels(c, s)
                                 for c, s in zip(SQUEEZENET_SQUEEZE, scales[1:])],
            "expand_channels": [scaled_channels(4 * c, s)
                                for c, s in zip(SQUEEZENET_SQUEEZE, scales[1:])],
            "stage_kernels": draw_kernels(rng, 4, SQUEEZENET_KERNELS),
            "stem_channels": scaled_channels(64, scales[0]),
            "input_size": draw_input_size(rng, 96, 224)}
