"""What every zoo family shares: argument checks (bad input is an
InvalidArgumentError naming the argument, before Keras sees it), the randomized
draws of a sampler (per-stage channel scale, kernel size, input size) and the
conv-BN-activation unit most families are built from. Keras is imported inside the
functions, so importing a zoo module stays cheap."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from latency_lab.errors import InvalidArgumentError

__all__ = ["Family", "family_of", "sample_config", "build_network", "draw_set", "SCALE_RANGE", "check_int", "check_ints", "check_choices", "check_input_size",
           "stage_scales", "scaled_channels", "draw_kernels", "draw_input_size",
           "image_input", "conv_bn", "classifier_head"]

# nn-Meter's generators draw each stage's width as the paper's width times a factor in
# this range, so a held-out network is no paper network the profile could resemble.
SCALE_RANGE = (0.2, 1.8)


@dataclass(frozen=True)
class Family:
    """A builder (explicit widths, kernels, input size -> a built keras.Model with
    random weights) and the sampler that draws its keyword arguments from a
    random.Random."""

    builder: Callable[..., Any]
    sampler: Callable[[random.Random], dict]


def family_of(families: dict[str, Family], name: Any) -> Family:
    """The family `name` of a registry, or an InvalidArgumentError listing them."""
    try:
        return families[name]
    except (KeyError, TypeError):
        raise InvalidArgumentError(f"family must be one of {', '.join(families)}, "
                                   f"got {name!r}") from None


def sample_config(families: dict[str, Family], family: str, seed: int) -> dict:
    """The keyword arguments of one randomized `family` network. The generator is
    seeded with the family name and the seed, so a seed gives each family its own
    draw, and the same draw on every run and Python version."""
    fam = family_of(families, family)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"seed must be an integer, got {seed!r}")
    return fam.sampler(random.Random(f"{family}/{seed}"))


def build_network(families: dict[str, Family], family: str, config: dict):
    """The `family` network of `config` (from a sampler, or written by hand)."""
    if not isinstance(config, dict):
        raise InvalidArgumentError(f"config must be a dict of {family} keyword arguments, "
                                   f"got {config!r}")
    return family_of(families, family).builder(**config)


def draw_set(families: dict[str, Family], names, n_per_family: int,
             seed_of: Callable[[int], int], label: Callable[[str, int, dict], str]) -> list:
    """(label, family, factory) of `n_per_family` draws of each family of `names` (all
    of `families` when None), draw i with seed seed_of(i); factory() builds the model,
    so nothing is built until asked."""
    from functools import partial

    check_int("n_per_family", n_per_family)
    names = list(families) if names is None else list(names)
    for name in names:
        family_of(families, name)
    out = []
    for name in names:
        for i in range(n_per_family):
            s = seed_of(i)
            config = sample_config(families, name, s)
            out.append((label(name, s, config), name,
                        partial(build_network, families, name, config)))
    return out


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_ints(name: str, values: Any, length: int, minimum: int = 1) -> tuple[int, ...]:
    """A sequence of `length` integers >= minimum (one per stage, block or layer)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) \
            or len(values) != length:
        raise InvalidArgumentError(f"{name} must be a sequence of {length} integers, "
                                   f"got {values!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(values))


def check_choices(name: str, values: Any, length: int, allowed: Sequence) -> tuple:
    """A sequence of `length` values, each one of `allowed` (kernel sizes, op names)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) \
            or len(values) != length:
        raise InvalidArgumentError(f"{name} must be a sequence of {length} values from "
                                   f"{tuple(allowed)}, got {values!r}")
    for i, v in enumerate(values):
        if v not in allowed or isinstance(v, bool):
            raise InvalidArgumentError(f"{name}[{i}] must be one of {tuple(allowed)}, got {v!r}")
    return tuple(values)


def check_input_size(value: Any, minimum: int) -> int:
    """Square input side in pixels; `minimum` keeps every downsampling step >= 1 px."""
    return check_int("input_size", value, minimum)


def stage_scales(rng: random.Random, count: int) -> list[float]:
    """One width factor per stage, drawn from SCALE_RANGE (two decimals, so a config
    reads back as it was drawn)."""
    return [round(rng.uniform(*SCALE_RANGE), 2) for _ in range(count)]


def scaled_channels(base: int, scale: float, divisor: int = 8) -> int:
    """base * scale rounded (half up) to a multiple of `divisor` (vector-friendly, as
    MobileNet's alpha does), never below `divisor`."""
    return max(divisor, int(base * scale / divisor + 0.5) * divisor)


def draw_kernels(rng: random.Random, count: int, choices: Sequence[int]) -> list[int]:
    return [rng.choice(list(choices)) for _ in range(count)]


def draw_input_size(rng: random.Random, low: int, high: int, step: int = 8) -> int:
    """An input side in [low, high] on a `step`-pixel grid."""
    return rng.randrange(low, high + 1, step)


def image_input(input_size: int, channels: int = 3):
    import keras

    return keras.Input((input_size, input_size, channels), name="image")


def conv_bn(x, filters: int, kernel: int, stride: int = 1, activation: str | None = "relu",
            name: str | None = None):
    """Conv2D (no bias) -> BatchNormalization -> activation: the unit of most CNNs
    since 2015 (LiteRT folds the BN into the conv)."""
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      name=None if name is None else f"{name}_conv")(x)
    x = layers.BatchNormalization(name=None if name is None else f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, name=None if name is None else f"{name}_act")(x)
    return x


def classifier_head(x, num_classes: int, head_channels: int | None = None, dropout: float = 0.0):
    """Optional 1x1 conv to `head_channels`, global average pool, dense logits with
    softmax: the head of every modern family here."""
    from keras import layers

    if head_channels:
        x = conv_bn(x, head_channels, 1, name="head")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name="predictions")(x)
