"""LiteRT: convert with the TFLite converter, run in the ai-edge-litert interpreter
(XNNPACK delegate, `num_threads`).

Single-op programs are converted many at a time: each is a signature of one SavedModel,
so one conversion yields a model whose signatures run as separate subgraphs. That keeps
profiling in minutes (one conversion per op would dominate the run). Weights are graph
constants, so the converter folds and fuses exactly as it does for a real network.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from latency_lab.errors import MeasurementError
from latency_lab.runtimes import OpProgram
from latency_lab.timing import Measurement, TimingConfig, measure, measure_interleaved

OPS_PER_CONVERSION = 24


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


def litert_version() -> str:
    import ai_edge_litert

    return str(getattr(ai_edge_litert, "__version__", "unknown"))


def interpreter(model_bytes: bytes, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_bytes, num_threads=threads)


# Conversions by model object and batch size: predicting and measuring the same model
# (validate, calibration, LatencyRegularizer) converts it once. Latency depends on the
# architecture only, which a built Keras model cannot change.
_CONVERTED: "weakref.WeakKeyDictionary[Any, dict[int, bytes]]" = weakref.WeakKeyDictionary()


def convert_keras_model(model: Any, batch_size: int = 1) -> bytes:
    """Frozen-graph conversion of a Keras model at a fixed batch size (cached). Under
    another Keras backend (JAX, PyTorch) TensorFlow converts it in a child process
    (`litert_subprocess`), giving the same bytes."""
    try:
        cached = _CONVERTED.setdefault(model, {})
    except TypeError:  # not weak-referenceable: convert every time
        cached = {}
    if batch_size not in cached:
        import keras

        if keras.backend.backend() == "tensorflow":
            cached[batch_size] = _convert_keras_model(model, batch_size)
        else:
            from latency_lab.runtimes.litert_subprocess import convert_in_tensorflow_subprocess

            cached[batch_size] = convert_in_tensorflow_subprocess(model, batch_size)
    return cached[batch_size]


def _convert_keras_model(model: Any, batch_size: int) -> bytes:
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


def convert_programs(programs: Sequence[OpProgram]) -> bytes:
    """One LiteRT model with a signature per program (`s0`, `s1`, ...)."""
    import tensorflow as tf

    module = tf.Module()
    signatures = {}
    for i, prog in enumerate(programs):
        specs = [tf.TensorSpec(s, tf.float32) for s in prog.input_shapes]

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


class LiteRTRuntime:
    name = "litert"

    def __init__(self, threads: int = 1, device: str = "cpu"):
        if device != "cpu":
            raise MeasurementError(
                f"the litert runtime runs on the CPU (XNNPACK); got device {device!r}. "
                "Use --runtime keras --device gpu for a GPU."
            )
        self.threads = threads
        # Conversions of op chunks by their sample keys: a profile times every chunk in
        # several passes and converts it once (about 1.5 s per chunk of 24 ops here).
        # Kept on disk, not in memory: a full plan's models hold a few hundred MB of
        # weights (the memory-bandwidth samples alone are ~100 MB each).
        self._converted_ops: dict[tuple[str, ...], str] = {}
        self._cache_dir: tempfile.TemporaryDirectory | None = None
        self._inner_loops: dict[str, int] = {}  # found in the first pass, reused after

    def info(self) -> dict:
        return {"name": "litert", "version": litert_version(), "backend": "xnnpack",
                "device": "cpu", "threads": self.threads, "dtype": "float32", "batch": 1}

    # ---------------------------------------------------------------- models
    def _ready(self, model_bytes: bytes):
        it = interpreter(model_bytes, self.threads)
        it.allocate_tensors()
        rng = np.random.default_rng(0)
        for d in it.get_input_details():
            it.set_tensor(d["index"], rng.standard_normal(d["shape"]).astype(d["dtype"]))
        return it

    def measure_bytes(self, model_bytes: bytes, timing: TimingConfig | None = None) -> Measurement:
        return measure(self._ready(model_bytes).invoke, timing)

    def measure_model(self, model: Any, timing: TimingConfig | None = None) -> Measurement:
        return self.measure_bytes(convert_keras_model(model), timing)

    def measure_models(self, models: Sequence[Any], timing: TimingConfig | None = None,
                       ) -> list[Measurement]:
        """Several models with interleaved repeats (`measure_interleaved`), so models
        that are compared meet the same moments of a shared host."""
        interpreters = [self._ready(convert_keras_model(m)) for m in models]
        return measure_interleaved([it.invoke for it in interpreters], timing)

    # ------------------------------------------------------------------- ops
    def _chunk_bytes(self, keys: tuple[str, ...], chunk: list[OpProgram]) -> bytes:
        path = self._converted_ops.get(keys)
        if path is not None:
            with open(path, "rb") as f:
                return f.read()
        model_bytes = convert_programs(chunk)
        if self._cache_dir is None:
            self._cache_dir = tempfile.TemporaryDirectory(prefix="latency-lab-ops-")
        path = os.path.join(self._cache_dir.name, f"chunk{len(self._converted_ops)}.tflite")
        with open(path, "wb") as f:
            f.write(model_bytes)
        self._converted_ops[keys] = path
        return model_bytes

    def measure_ops(self, programs: Sequence[OpProgram], timing: TimingConfig | None = None,
                    on_result: Callable[[OpProgram, Measurement], None] | None = None,
                    ) -> list[Measurement]:
        results: list[Measurement] = []
        rng = np.random.default_rng(0)
        for start in range(0, len(programs), OPS_PER_CONVERSION):
            chunk = list(programs[start:start + OPS_PER_CONVERSION])
            keys = tuple(p.key for p in chunk)
            it = interpreter(self._chunk_bytes(keys, chunk), self.threads)
            calls = signature_calls(it, len(chunk), rng)
            # The chunk's ops are timed with interleaved repeats (see measure_interleaved).
            measured = measure_interleaved(
                calls, timing, inner_loops=[self._inner_loops.get(p.key) for p in chunk])
            for prog, m in zip(chunk, measured):
                self._inner_loops[prog.key] = m.inner_loops
                results.append(m)
                if on_result:
                    on_result(prog, m)
            del it, calls
        return results


def signature_calls(it, n: int, rng: np.random.Generator) -> list[Callable[[], None]]:
    """Ready-to-time invocations of signatures s0..s{n-1} of a `convert_programs` model:
    inputs allocated and set once, then the raw Invoke(subgraph), so no Python-side
    copies are timed."""
    wrapper = it._interpreter
    calls = []
    for i in range(n):
        runner = it.get_signature_runner(f"s{i}")
        details = runner.get_input_details()
        runner(**{name: rng.standard_normal(details[name]["shape"]).astype(np.float32)
                  for name in sorted(details, key=_arg_order)})
        calls.append(functools.partial(wrapper.Invoke, runner._subgraph_index))
    return calls


def _arg_order(name: str) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    return int(digits) if digits else 0

