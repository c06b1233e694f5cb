"""TensorFlow's converter in this process (the Keras backend is tensorflow): a whole
model, and single-op programs (the profile's microbenchmarks)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from typing import Any, Callable, Sequence

from latency_lab.errors import MeasurementError

__all__ = ["convert_in_tensorflow", "convert_programs"]


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


def convert_programs(programs: Sequence[Any]) -> bytes:
    """One LiteRT model with a signature per program (`s0`, `s1`, ...). programs:
    `runtimes.base.OpProgram` (key, input_shapes, fn and input_dtypes: float32 where
    a program has none)."""
    import tensorflow as tf

    module = tf.Module()
    signatures = {}
    for i, prog in enumerate(programs):
        specs = [tf.TensorSpec(tuple(s), tf.as_dtype(d))
                 for s, d in zip(prog.input_shapes, prog.input_dtypes)]

        def make(fn: Callable):
            def body(*xs):
                return {"y": fn(*xs)}

            return body

        signatures[f"s{i}"] = tf.function(make(prog.fn), autograph=False).get_concrete_function(*specs)
    with tempfile.TemporaryDirectory(prefix="latency-lab-") as tmp:
        try:
            with _quiet():
                tf.saved_model.save(module, tmp, signatures=signatures)
                converter = tf.lite.TFLiteConverter.from_saved_model(
                    tmp, signature_keys=list(signatures))
                return converter.convert()
        except Exception as exc:
            raise MeasurementError(
                f"TFLite conversion of ops {[p.key for p in programs][:3]}... failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
