"""Keras -> LiteRT flatbuffers with TensorFlow's converter: a whole model (what the
kernel list of `kernels.litert` is read from, and what `runtimes.litert` times) and
single-op programs (the profile's microbenchmarks). Under another Keras backend (JAX,
PyTorch) TensorFlow converts the model in a child process (`convert.child`), giving
the same bytes."""

from __future__ import annotations

import weakref
from typing import Any

from latency_lab.convert.tf import convert_in_tensorflow, convert_program

__all__ = ["convert_keras_model", "convert_program"]

# Conversions by model object and batch size: predicting and measuring the same model
# (validate, calibration, LatencyRegularizer) converts it once. Latency depends on the
# architecture only, which a built Keras model cannot change.
_CONVERTED: "weakref.WeakKeyDictionary[Any, dict[int, bytes]]" = weakref.WeakKeyDictionary()


def convert_keras_model(model: Any, batch_size: int = 1) -> bytes:
    """Frozen-graph conversion of a Keras model at a fixed batch size (cached)."""
    try:
        cached = _CONVERTED.setdefault(model, {})
    except TypeError:  # not weak-referenceable: convert every time
        cached = {}
    if batch_size not in cached:
        import keras

        if keras.backend.backend() == "tensorflow":
            cached[batch_size] = convert_in_tensorflow(model, batch_size)
        else:
            from latency_lab.convert.child import convert_in_tensorflow_subprocess

            cached[batch_size] = convert_in_tensorflow_subprocess(model, batch_size)
    return cached[batch_size]
