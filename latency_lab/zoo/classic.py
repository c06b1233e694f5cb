"""The pre-2015 plain stacks: VGG (Simonyan & Zisserman 2014) and AlexNet
(Krizhevsky et al. 2012). Both end in a Flatten and two wide Dense layers whose
weights (tens of MB at the widths drawn here) are far beyond the L3 cache: a network
whose latency is weight streaming, unlike anything in keras.applications' modern
families. Convolutions carry a bias and no BatchNormalization, as in the papers."""

from __future__ import annotations

import random

from latency_lab.errors import InvalidArgumentError
from latency_lab.zoo.blocks import (check_choices, check_input_size, check_int, check_ints,
                                    draw_input_size, draw_kernels, image_input,
                                    scaled_channels, stage_scales)

__all__ = ["VGG_DEPTHS", "VGG_KERNELS", "ALEXNET_CONV1_KERNELS", "ALEXNET_KERNELS",
           "vgg", "alexnet", "sample_vgg", "sample_alexnet"]

# Convs per stage of VGG-11, -13 and -16 (configurations A, B and D of the paper).
VGG_DEPTHS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3)}
VGG_KERNELS = (3, 5)
ALEXNET_CONV1_KERNELS = (7, 9, 11)
ALEXNET_KERNELS = (3, 5)
# Half the papers' widths: the 2-core CPU runs the drawn networks in about 1-100 ms.
_VGG_WIDTHS = (32, 64, 128, 256, 256)
_ALEXNET_WIDTHS = (32, 96, 192, 128, 128)
_HEAD_UNITS = 2048


def _dense_head(x, head_units, num_classes: int):
    from keras import layers

    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(head_units):
        x = layers.Dense(units, activation="relu", name=f"fc{i + 1}")(x)
        x = layers.Dropout(0.5, name=f"fc{i + 1}_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name="predictions")(x)


def vgg(stage_channels=(64, 128, 256, 512, 512), stage_depths=VGG_DEPTHS[16],
        stage_kernels=(3, 3, 3, 3, 3), head_units=(4096, 4096), input_size: int = 224,
        num_classes: int = 1000):
    """Five stages of `stage_depths[i]` same-padded convs (ReLU) with
    `stage_kernels[i]`, each closed by a 2x2 max pool; Flatten, two Dense layers of
    `head_units`, Dense logits."""
    import keras
    from keras import layers

    widths = check_ints("stage_channels", stage_channels, 5)
    depths = check_ints("stage_depths", stage_depths, 5)
    kernels = check_choices("stage_kernels", stage_kernels, 5, VGG_KERNELS)
    head = check_ints("head_units", head_units, 2)
    check_int("num_classes", num_classes)
    check_input_size(input_size, 32)
    inputs = image_input(input_size)
    x = inputs
    for s, (filters, depth, k) in enumerate(zip(widths, depths, kernels)):
        for c in range(depth):
            x = layers.Conv2D(filters, k, padding="same", activation="relu",
                              name=f"stage{s + 1}_conv{c + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"stage{s + 1}_pool")(x)
    return keras.Model(inputs, _dense_head(x, head, num_classes), name="vgg")


def alexnet(conv_channels=(64, 192, 384, 256, 256), conv_kernels=(11, 5, 3, 3, 3),
            head_units=(4096, 4096), input_size: int = 224, num_classes: int = 1000):
    """conv1 (stride 4) and conv2 each followed by a 3x3 stride-2 max pool, conv3-5,
    a last max pool; Flatten, two Dense layers of `head_units`, Dense logits."""
    import keras
    from keras import layers

    widths = check_ints("conv_channels", conv_channels, 5)
    kernels = check_choices("conv_kernels", conv_kernels, 5,
                            sorted(set(ALEXNET_CONV1_KERNELS + ALEXNET_KERNELS)))
    if kernels[0] not in ALEXNET_CONV1_KERNELS or any(k not in ALEXNET_KERNELS for k in kernels[1:]):
        raise InvalidArgumentError(f"conv_kernels must be conv1's kernel from {ALEXNET_CONV1_KERNELS} "
                                   f"then four from {ALEXNET_KERNELS}, got {conv_kernels!r}")
    head = check_ints("head_units", head_units, 2)
    check_int("num_classes", num_classes)
    check_input_size(input_size, 64)
    inputs = image_input(input_size)
    x = layers.Conv2D(widths[0], kernels[0], strides=4, padding="same",
                      activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(3, 2, name="pool1")(x)
    x = layers.Conv2D(widths[1], kernels[1], padding="same", activation="relu",
                      name="conv2")(x)
    x = layers.MaxPooling2D(3, 2, name="pool2")(x)
    for i in range(2, 5):
        x = layers.Conv2D(widths[i], kernels[i], padding="same", activation="relu",
                          name=f"conv{i + 1}")(x)
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool5")(x)
    return keras.Model(inputs, _dense_head(x, head, num_classes), name="alexnet")


def sample_vgg(rng: random.Random) -> dict:
    """VGG-11/13/16 depth; each stage's width (half the paper's) scaled by 0.2-1.8 and
    its kernel 3 or 5; head widths 2048 x 0.2-1.8; input 64-112 px."""
    scales = stage_scales(rng, 7)
    return {"stage_channels": [scaled_channels(w, s) for w, s in zip(_VGG_WIDTHS, scales)],
            "stage_depths": list(VGG_DEPTHS[rng.choice(sorted(VGG_DEPTHS))]),
            "stage_kernels": draw_kernels(rng, 5, VGG_KERNELS),
            "head_units": [scaled_channels(_HEAD_UNITS, s) for s in scales[5:]],
            "input_size": draw_input_size(rng, 64, 112)}


def sample_alexnet(rng: random.Random) -> dict:
    """Each conv's width (half the paper's) scaled by 0.2-1.8; conv1 kernel 7/9/11,
    the others 3 or 5; head widths 2048 x 0.2-1.8; input 64-112 px."""
    scales = stage_scales(rng, 7)
    return {"conv_channels": [scaled_channels(w, s) for w, s in zip(_ALEXNET_WIDTHS, scales)],
            "conv_kernels": [rng.choice(ALEXNET_CONV1_KERNELS)]
                            + draw_kernels(rng, 4, ALEXNET_KERNELS),
            "head_units": [scaled_channels(_HEAD_UNITS, s) for s in scales[5:]],
            "input_size": draw_input_size(rng, 64, 112)}
