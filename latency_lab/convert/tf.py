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
    """Frozen-graph conversion of a TensorFlow-backend Keras model at a fixed batch size:
    frozen once, then converted from that graph (`_graph_converter`), not frozen a
    second time by TF2's `from_concrete_functions`. The same kernels on the same shapes
    for the 8 planned families and the 9 calibration networks (MobileNet v1-v3, ResNet50,
    EfficientNetB0, DenseNet121, two transformer encoders), converted 2-4x faster."""
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
            return _graph_converter(tf, frozen).convert()
    except Exception as exc:
        raise MeasurementError(
            f"TFLite conversion of model {model.name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def convert_program(program: Any) -> bytes:
    """One single-op program (`runtimes.base.OpProgram`: key, input_shapes, fn,
    input_dtypes) as a LiteRT model of one subgraph, its inputs in the program's order.

    Traced once and converted from its graph as it is: a program's weights are
    constants of the graph already, so there is nothing to freeze. TF2's
    `from_concrete_functions` freezes anyway (it imports the graph into a new function:
    0.18 s of 0.32 s per program on the Xeon VM); the graph converter does not, and
    gives the same kernels (120 plan programs: the same ops on the same shapes and the
    same outputs, 0.23 s each). A program that captures tensors (a graph with inputs
    it does not declare) is frozen the TF2 way."""
    import tensorflow as tf

    specs = [tf.TensorSpec(tuple(s), tf.as_dtype(d))
             for s, d in zip(program.input_shapes, program.input_dtypes)]
    fn = tf.function(program.fn, autograph=False)
    try:
        with _quiet():
            concrete = fn.get_concrete_function(*specs)
            return _graph_converter(tf, concrete).convert()
    except Exception as exc:
        raise MeasurementError(
            f"TFLite conversion of op program {program.key!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _graph_converter(tf, concrete: Any) -> Any:
    """The converter of a traced program: its graph as it is when it captures nothing
    (`tf.compat.v1.lite.TFLiteConverter`, given the graph), else TF2's, which freezes."""
    if list(concrete.captured_inputs):
        return tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    return tf.compat.v1.lite.TFLiteConverter(concrete.graph.as_graph_def(), concrete.inputs,
                                             concrete.outputs)
