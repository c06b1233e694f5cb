"""TensorFlow's converter in this process (the Keras backend is tensorflow): a whole
model, and single-op programs (the profile's microbenchmarks)."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from latency_lab.errors import MeasurementError

__all__ = ["convert_in_tensorflow", "convert_program"]


@contextlib.contextmanager
def _quiet():
    """The converter prints SavedModel details on stdout and deprecation chatter through
    absl; keep our output clean (errors still raise)."""
    from absl import logging as absl_logging

    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        absl_logging.set_verbosity(level)


def convert_in_tensorflow(model: Any, batch_size: int) -> bytes:
    """Frozen-graph conversion of a TensorFlow-backend Keras model at a fixed batch size."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = [tf.TensorSpec((batch_size, *x.shape[1:]), x.dtype) for x in model.inputs]
    if any(d is None for s in specs for d in s.shape):
        raise MeasurementError(
            f"model {model.name!r} has inputs of variable size {[tuple(x.shape) for x in model.inputs]}; "
            "rebuild it with a fixed input shape (or pass --input-shape) before converting"
        )
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False),
                     autograph=False)
    try:
        with _quiet():
            frozen = convert_variables_to_constants_v2(fn.get_concrete_function(*specs))
            converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
            return converter.convert()
    except Exception as exc:
        raise MeasurementError(
            f"TFLite conversion of model {model.name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def convert_program(program: Any) -> bytes:
    """One single-op program (`runtimes.base.OpProgram`: key, input_shapes, fn,
    input_dtypes) as a LiteRT model of one subgraph, its inputs in the program's order.

    Frozen from its concrete function, as a whole model is: no SavedModel is written
    and read back. On the full table plan that converts 24 programs in 11 s where one
    SavedModel with a signature per program took 19 s, and the ops time the same (24
    ops timed both ways in one interleaved run: geometric mean ratio 1.000)."""
    import tensorflow as tf

    specs = [tf.TensorSpec(tuple(s), tf.as_dtype(d))
             for s, d in zip(program.input_shapes, program.input_dtypes)]
    fn = tf.function(program.fn, autograph=False)
    try:
        with _quiet():
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [fn.get_concrete_function(*specs)])
            return converter.convert()
    except Exception as exc:
        raise MeasurementError(
            f"TFLite conversion of op program {program.key!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
