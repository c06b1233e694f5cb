"""Whole networks measured at the end of a profile, so predictors can learn what
isolated op timings miss inside a network (weights falling out of cache). Their input
sizes differ from the validation set in scripts/validate_benchmark.py on purpose."""

from __future__ import annotations

from typing import Iterable

__all__ = ["CALIBRATION_QUICK", "CALIBRATION_FULL", "calibration_labels",
           "calibration_models"]

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
)


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
        model = application(name, **kwargs)
        if seed is not None:
            model = random_slim(model, seed)
        yield _calibration_label(name, kwargs, seed), model
