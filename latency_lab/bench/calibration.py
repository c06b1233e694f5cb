"""Whole networks measured at the end of a profile, so predictors can learn what
isolated op timings miss inside a network (weights falling out of cache). Their input
sizes differ from the validation set in scripts/validate_benchmark.py on purpose.

Convolutional networks and transformers run differently inside a network (a DenseNet
16% slower than its kernels timed alone, ViTs and text encoders 1-15%, mean 4%), so
the full set has both: an in-network fit on CNNs alone charged transformers 5-9%.
The transformers are built here (`encoder`: post-norm, BERT-style blocks), not by
`zoo.transformers`, whose families are the transformer benchmark's development and
held-out sets; the text encoder's dense weights (43 MB) lie past a 32 MB L3."""

from __future__ import annotations

from typing import Iterable

__all__ = ["CALIBRATION_QUICK", "CALIBRATION_FULL", "calibration_labels",
           "calibration_models", "encoder"]

CALIBRATION_QUICK = (
    ("MobileNetV2", {"alpha": 0.75, "input_shape": (112, 112, 3)}, None),
    ("ResNet50", {"input_shape": (56, 56, 3)}, None),
    ("EfficientNetB0", {"input_shape": (80, 80, 3)}, None),
)
CALIBRATION_FULL = CALIBRATION_QUICK + (
    ("MobileNet", {"alpha": 0.25, "input_shape": (144, 144, 3)}, None),
    ("DenseNet121", {"input_shape": (56, 56, 3)}, None),
    ("MobileNetV2", {"alpha": 1.0, "input_shape": (112, 112, 3)}, 101),
    ("ResNet50", {"input_shape": (72, 72, 3)}, 102),
    ("encoder", {"image_size": 96, "patch_size": 8, "width": 192, "depth": 4,
                 "heads": 3}, None),
    ("encoder", {"seq_len": 48, "vocab_size": 8000, "width": 384, "depth": 6,
                 "heads": 6}, None),
)


def encoder(width: int, depth: int, heads: int, image_size: int | None = None,
            patch_size: int = 8, seq_len: int | None = None, vocab_size: int = 8000):
    """A post-norm transformer encoder over image patches (a strided Conv2D patch
    embedding) or token ids (an Embedding): `depth` blocks of LayerNorm(x + MHA(x))
    and LayerNorm(x + MLP(x)) with a GELU MLP of 4 x width, mean-pooled, a Dense
    head. A calibration network, not a benchmark family."""
    import keras
    from keras import layers

    if image_size is not None:
        inputs = keras.Input((image_size, image_size, 3))
        grid = image_size // patch_size
        x = layers.Conv2D(width, patch_size, strides=patch_size)(inputs)
        x = layers.Reshape((grid * grid, width))(x)
        classes = 1000
    else:
        inputs = keras.Input((seq_len,), dtype="int32")
        x = layers.Embedding(vocab_size, width)(inputs)
        classes = 2
    for _ in range(depth):
        h = layers.MultiHeadAttention(heads, width // heads)(x, x)
        x = layers.LayerNormalization()(layers.Add()([x, h]))
        h = layers.Dense(width)(layers.Dense(4 * width, activation="gelu")(x))
        x = layers.LayerNormalization()(layers.Add()([x, h]))
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(classes)(x), name="calibration_encoder")


def _calibration_label(name: str, kwargs: dict, seed: int | None) -> str:
    label = f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    return label if seed is None else f"{label} slim seed {seed}"


def calibration_labels(quick: bool) -> list[str]:
    return [_calibration_label(*entry) for entry in (CALIBRATION_QUICK if quick else CALIBRATION_FULL)]


def calibration_models(quick: bool, labels: Iterable[str] | None = None):
    """Yield (label, model) for the calibration set, or only the entries named in
    `labels` (the others are not built); the third field of an entry is a slimming
    seed (None: the plain network)."""
    from latency_lab.variants import application, random_slim

    wanted = None if labels is None else set(labels)
    for name, kwargs, seed in (CALIBRATION_QUICK if quick else CALIBRATION_FULL):
        if wanted is not None and _calibration_label(name, kwargs, seed) not in wanted:
            continue
        model = encoder(**kwargs) if name == "encoder" else application(name, **kwargs)
        if seed is not None:
            model = random_slim(model, seed)
        yield _calibration_label(name, kwargs, seed), model
