"""GoogLeNet / Inception v1 (Szegedy et al. 2014), with BatchNormalization after each
conv as in later reimplementations: a 7x7 stride-2 stem, 1x1 and 3x3 convs, then nine
inception modules in three stages (2, 5, 2) with max pools between, global pool,
dense logits. A module runs four branches side by side (1x1; 1x1 -> kxk; 1x1 -> k'xk';
3x3 max pool -> 1x1) and concatenates them: wide, shallow parallelism."""

from __future__ import annotations

import random

from latency_lab.errors import InvalidArgumentError
from latency_lab.zoo.blocks import (check_choices, check_input_size, check_int, check_ints,
                                    conv_bn, draw_input_size, draw_kernels, image_input,
                                    scaled_channels, stage_scales)

__all__ = ["GOOGLENET_MODULES", "GOOGLENET_MID_KERNELS", "GOOGLENET_WIDE_KERNELS",
           "googlenet", "sample_googlenet", "inception"]

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of modules 3a-3b, 4a-4e, 5a-5b.
GOOGLENET_MODULES = (
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64),
    (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128),
    (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),
)
_STAGES = (2, 5, 2)
GOOGLENET_MID_KERNELS = (3, 5)  # the paper's 3x3 branch, per stage
GOOGLENET_WIDE_KERNELS = (3, 5, 7)  # the paper's 5x5 branch, per stage


def inception(x, widths, mid_kernel: int, wide_kernel: int, name: str):
    from keras import layers

    one, mid_reduce, mid, wide_reduce, wide, pool_proj = widths
    a = conv_bn(x, one, 1, name=f"{name}_1x1")
    b = conv_bn(conv_bn(x, mid_reduce, 1, name=f"{name}_mid_reduce"), mid, mid_kernel,
                name=f"{name}_mid")
    c = conv_bn(conv_bn(x, wide_reduce, 1, name=f"{name}_wide_reduce"), wide, wide_kernel,
                name=f"{name}_wide")
    d = layers.MaxPooling2D(3, 1, padding="same", name=f"{name}_pool")(x)
    d = conv_bn(d, pool_proj, 1, name=f"{name}_pool_proj")
    return layers.Concatenate(name=f"{name}_concat")([a, b, c, d])


def googlenet(module_channels=GOOGLENET_MODULES, stage_mid_kernels=(3, 3, 3),
              stage_wide_kernels=(5, 5, 5), stem_channels=(64, 64, 192),
              input_size: int = 224, num_classes: int = 1000):
    """`module_channels`: nine 6-tuples of branch widths (see GOOGLENET_MODULES);
    stage i's modules use stage_mid_kernels[i] and stage_wide_kernels[i];
    `stem_channels`: the 7x7, 1x1 and 3x3 stem convs."""
    import keras
    from keras import layers

    if isinstance(module_channels, (str, bytes)) or len(module_channels) != 9:
        raise InvalidArgumentError(f"module_channels must be nine 6-tuples of branch widths, "
                                   f"got {module_channels!r}")
    modules = [check_ints(f"module_channels[{i}]", m, 6) for i, m in enumerate(module_channels)]
    mids = check_choices("stage_mid_kernels", stage_mid_kernels, 3, GOOGLENET_MID_KERNELS)
    wides = check_choices("stage_wide_kernels", stage_wide_kernels, 3, GOOGLENET_WIDE_KERNELS)
    stem = check_ints("stem_channels", stem_channels, 3)
    check_int("num_classes", num_classes)
    check_input_size(input_size, 32)
    inputs = image_input(input_size)
    x = conv_bn(inputs, stem[0], 7, 2, name="stem1")
    x = layers.MaxPooling2D(3, 2, padding="same", name="stem1_pool")(x)
    x = conv_bn(x, stem[1], 1, name="stem2")
    x = conv_bn(x, stem[2], 3, name="stem3")
    x = layers.MaxPooling2D(3, 2, padding="same", name="stem3_pool")(x)
    m = 0
    for s, count in enumerate(_STAGES):
        for j in range(count):
            x = inception(x, modules[m], mids[s], wides[s], f"inception{s + 3}{'abcde'[j]}")
            m += 1
        if s < 2:
            x = layers.MaxPooling2D(3, 2, padding="same", name=f"stage{s + 3}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="googlenet")


def sample_googlenet(rng: random.Random) -> dict:
    """Stem and each stage's modules scaled by 0.2-1.8 (all branches of a stage by the
    same factor); mid kernel 3/5 and wide kernel 3/5/7 per stage; input 96-192 px."""
    scales = stage_scales(rng, 4)
    stage_of = [s for s, count in enumerate(_STAGES) for _ in range(count)]
    return {"module_channels": [[scaled_channels(c, scales[1 + s]) for c in widths]
                                for widths, s in zip(GOOGLENET_MODULES, stage_of)],
            "stage_mid_kernels": draw_kernels(rng, 3, GOOGLENET_MID_KERNELS),
            "stage_wide_kernels": draw_kernels(rng, 3, GOOGLENET_WIDE_KERNELS),
            "stem_channels": [scaled_channels(c, scales[0]) for c in (64, 64, 192)],
            "input_size": draw_input_size(rng, 96, 192)}
