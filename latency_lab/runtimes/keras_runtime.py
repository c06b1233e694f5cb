"""Keras 3 runtime: a jit-compiled forward call on the active backend.

Written against `keras.ops` and a small per-backend table (compile, synchronize), so
the same code measures TensorFlow on a CPU here and JAX or PyTorch on a GPU machine
that has no TensorFlow. The clock is read only after the device has finished
(`sync`), otherwise a GPU would report launch time, not compute time.

An op program's weights are compiled as a model's are: variables, inputs of the
compiled computation (`op_kinds.base.WeightVariables`), never constants XLA could fold.
Under JAX, whose jit embeds closed-over arrays as constants, both take their weights'
values as arguments (a model through `stateless_call`, as Keras' JAX trainer runs it).
"""

from __future__ import annotations

import functools
import os
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from latency_lab.errors import InputSpecError, MeasurementError
from latency_lab.op_kinds.base import WeightVariables
from latency_lab.runtimes.base import OpProgram, Program
from latency_lab.timing import Measurement, TimingConfig, measure, measure_interleaved

__all__ = ["Backend", "BACKENDS", "DEVICES", "KerasRuntime", "COMPILED_OPS_KEPT"]

COMPILED_OPS_KEPT = 128


def _tf_compile(fn: Callable, jit: bool) -> Callable:
    import tensorflow as tf

    return tf.function(fn, jit_compile=jit)


def _tf_sync(out: Any) -> None:
    import tensorflow as tf

    sync = getattr(getattr(tf.test, "experimental", None), "sync_devices", None)
    if sync is not None:
        sync()
    else:  # pragma: no cover - older TF
        np.asarray(out)


def _jax_compile(fn: Callable, jit: bool) -> Callable:
    import jax

    return jax.jit(fn) if jit else fn


def _jax_place(arrays: Any, device: str) -> Any:
    import jax

    return jax.device_put(arrays, jax.devices(device)[0])  # no copy if already there


def _jax_sync(out: Any) -> None:
    import jax

    jax.block_until_ready(out)


def _jax_gpus() -> int:
    import jax

    try:
        return len(jax.devices("gpu"))
    except RuntimeError:  # jaxlib without CUDA, or no driver: "Unknown backend: 'gpu'"
        return 0


def _torch_compile(fn: Callable, jit: bool) -> Callable:
    import torch

    def run(*xs):
        with torch.no_grad():
            return fn(*xs)

    return run  # torch.compile needs a toolchain; eager is the honest default


def _torch_sync(out: Any) -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _tf_gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def _torch_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _tf_gpu_matmul() -> str:
    import tensorflow as tf

    return "tf32" if tf.config.experimental.tensor_float_32_execution_enabled() else "fp32"


def _jax_gpu_matmul() -> str:
    import jax

    precision = str(jax.config.jax_default_matmul_precision or "default").lower()
    return "fp32" if precision in ("highest", "float32") else "tf32"


def _torch_gpu_matmul() -> str:
    import torch

    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32"


@dataclass(frozen=True)
class Backend:
    """What the runtime needs from a Keras backend."""

    compile: Callable  # (fn, jit) -> compiled fn
    sync: Callable  # (last output) -> None, once the device is idle
    gpu_count: Callable[[], int]  # GPUs the backend can run on
    # What float32 matmuls/convs run as on a GPU by default: "tf32" where the backend
    # lets Ampere and newer GPUs use TensorFloat-32 (about 8x the FP32 rate on an
    # H100), else "fp32". Recorded in the profile, so its ceilings are read right.
    gpu_matmul: Callable[[], str]
    # The compiled function must take variables' values as arguments to keep them out
    # of the computation's constants: jax.jit embeds the arrays a function closes over
    # as constants (tf.function captures a variable as an input; eager torch has no
    # constants to fold).
    weights_as_arguments: bool = False
    # (arrays, "cpu" or "gpu") -> the arrays on that device: weights passed as arguments
    # are moved there once, not (as jax.jit moves an argument made on another device)
    # on every call. Used only where weights_as_arguments.
    place: Callable[[Any, str], Any] | None = None


BACKENDS: dict[str, Backend] = {
    "tensorflow": Backend(_tf_compile, _tf_sync, _tf_gpus, _tf_gpu_matmul),
    "jax": Backend(_jax_compile, _jax_sync, _jax_gpus, _jax_gpu_matmul,
                   weights_as_arguments=True, place=_jax_place),
    "torch": Backend(_torch_compile, _torch_sync, _torch_gpus, _torch_gpu_matmul),
}

DEVICES = ("cpu", "gpu")


def _set_tf_threads(threads: int) -> int:
    """Pin TensorFlow's thread pools; they can only be set before TF starts running
    ops, so a late call keeps what is there and says so."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        actual = tf.config.threading.get_intra_op_parallelism_threads()
        if actual != threads:
            warnings.warn(
                f"TensorFlow was already initialized with {actual or 'all'} intra-op "
                f"threads; could not pin {threads}. Start a fresh process to measure "
                "with a different thread count.",
                RuntimeWarning,
                stacklevel=3,
            )
        return actual or (os.cpu_count() or threads)  # 0 means TF uses every core
    return threads


class KerasRuntime:
    name = "keras"

    def __init__(self, threads: int = 1, device: str = "cpu", jit: bool = True):
        import keras

        self.backend = keras.backend.backend()
        if self.backend not in BACKENDS:
            raise MeasurementError(
                f"Keras backend {self.backend!r} is not supported for timing; use one of "
                f"{', '.join(BACKENDS)} (set KERAS_BACKEND)"
            )
        if device not in DEVICES:
            raise InputSpecError(
                f"the keras runtime runs on {' or '.join(DEVICES)}; got device {device!r}"
            )
        self.device = device
        self.jit = jit
        self.threads = _set_tf_threads(threads) if self.backend == "tensorflow" else threads
        backend = BACKENDS[self.backend]
        self._compile, self._sync = backend.compile, backend.sync
        self._gpu_matmul = backend.gpu_matmul
        self._weights_as_arguments = backend.weights_as_arguments
        self._place = backend.place or (lambda arrays, device: arrays)
        gpu_count = backend.gpu_count
        # Compiled functions by program key / model. A profile's passes run its ~960
        # op programs in the same order, so the op cache below (least recently used)
        # hits nothing across passes: each program is compiled once per pass (the
        # full keras profile took 9 min 43 s so). Bounding it by weight bytes instead,
        # so small programs stay compiled, waits on a measured profile's memory.
        # Compiled op programs by key, the least recently used dropped past
        # COMPILED_OPS_KEPT: each keeps its weights alive as variables (a copy of its
        # weight arrays on the device, 100+ MB for the largest samples), dropped with
        # it. A full profile times ~960 programs; all kept (their weights then graph
        # constants) grew a process to 24 GB and the OOM killer.
        self._compiled_ops: OrderedDict[str, Callable] = OrderedDict()
        self._compiled_models: "weakref.WeakKeyDictionary[Any, Callable]" = weakref.WeakKeyDictionary()
        # Checked here because the backends do not refuse: TensorFlow's soft placement
        # runs a "gpu:0" scope on the CPU without a word, so the profile would hold CPU
        # timings labelled gpu.
        if device == "gpu" and gpu_count() == 0:
            raise MeasurementError(
                f"device gpu: the Keras {self.backend} backend sees no GPU on this machine, "
                "so the timings would come from the CPU. Install a GPU build of "
                f"{self.backend} (or choose another backend with KERAS_BACKEND), or measure "
                "with --device cpu."
            )

    def info(self) -> dict:
        import keras

        return {"name": "keras", "version": keras.__version__, "backend": self.backend,
                "device": self.device, "threads": self.threads, "dtype": "float32", "batch": 1,
                "matmul_precision": self._gpu_matmul() if self.device == "gpu" else "fp32"}

    def _device_scope(self):
        import keras

        return keras.device(f"{self.device}:0")

    def _time_all(self, work: list[tuple[Callable, list]], timing: TimingConfig | None,
                  ) -> list[Measurement]:
        """Time (compiled function, numpy inputs) pairs, interleaved when several; the
        device is synchronized on the last output before every clock read."""
        import keras

        with self._device_scope():
            last: list[Any] = [None]

            def caller(compiled: Callable, inputs: list) -> Callable[[], None]:
                xs = [keras.ops.convert_to_tensor(x) for x in inputs]

                def call():
                    last[0] = compiled(*xs)

                return call

            calls = [caller(c, inputs) for c, inputs in work]
            sync = lambda: self._sync(last[0])  # noqa: E731
            if len(calls) == 1:
                return [measure(calls[0], timing, sync=sync)]
            return measure_interleaved(calls, timing, sync=sync)

    def _model_work(self, model: Any) -> tuple[Callable, list]:
        rng = np.random.default_rng(0)
        shapes = [(1, *x.shape[1:]) for x in model.inputs]
        if any(d is None for s in shapes for d in s):
            raise MeasurementError(
                f"model {model.name!r} has variable input size; rebuild it with a fixed shape"
            )
        inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        compiled = self._compiled_models.get(model)
        if compiled is None:
            compiled = self._compiled_models[model] = self._compile_model(model)
        if self._weights_as_arguments and self.jit:
            # The model's current weights (as a tf.function reads them), bound once per
            # measurement, not per call, on the device it runs on (a model built
            # elsewhere, e.g. on the GPU when timing the CPU, is not copied every call).
            compiled = functools.partial(compiled, *self._place(
                ([v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables]), self.device))
        return compiled, inputs

    def _compile_model(self, model: Any) -> Callable:
        """The model's forward call, compiled with its weights as inputs of the
        computation, as for op programs (`_compile_op`) and as Keras runs a model."""
        if not (self._weights_as_arguments and self.jit):
            # tf.function captures the variables as inputs; eager code folds nothing
            def forward(*xs):
                return model(list(xs) if len(xs) > 1 else xs[0], training=False)

            return self._compile(forward, self.jit)

        # jax.jit would embed the variables' arrays as constants (and XLA fold work on
        # them): their values are arguments instead, as in Keras' own JAX trainer.
        def forward_stateless(trainable, non_trainable, *xs):
            out, _ = model.stateless_call(trainable, non_trainable,
                                          list(xs) if len(xs) > 1 else xs[0], training=False)
            return out

        return self._compile(forward_stateless, self.jit)

    def measure_model(self, model: Any, timing: TimingConfig | None = None) -> Measurement:
        return self._time_all([self._model_work(model)], timing)[0]

    def measure_models(self, models: Sequence[Any], timing: TimingConfig | None = None,
                       ) -> list[Measurement]:
        """Several models with interleaved repeats (`measure_interleaved`)."""
        return self._time_all([self._model_work(m) for m in models], timing)

    def _compiled_op(self, prog: Program) -> Callable:
        ops = self._compiled_ops
        if prog.key in ops:
            ops.move_to_end(prog.key)
        else:
            ops[prog.key] = self._compile_op(prog.program())
            while len(ops) > COMPILED_OPS_KEPT:
                ops.popitem(last=False)
        return ops[prog.key]

    def _compile_op(self, prog: OpProgram) -> Callable:
        """`prog.fn` compiled with its weights as variables, as in a model (XLA would
        otherwise constant-fold work on them: > 20 GB for an 11x11x575x634 conv
        kernel, and a figure no model shows). The variables are made once, here, by a
        symbolic call (no computation), and live as long as the returned function."""
        import keras

        weights = WeightVariables(prog.key)
        with self._device_scope(), weights.creating():
            prog.fn(*[keras.KerasTensor(tuple(s), dtype=d)
                      for s, d in zip(prog.input_shapes, prog.input_dtypes)])
        variables = weights.variables
        if not variables:
            return self._compile(prog.fn, self.jit)
        fn = prog.fn
        if not (self._weights_as_arguments and self.jit):  # eager code folds nothing
            def run(*xs):
                with weights.reading():
                    return fn(*xs)

            return self._compile(run, self.jit)

        # jax.jit would embed the variables' arrays as constants: their values are
        # arguments instead, each variable read as its argument (a StatelessScope, as
        # Keras' own JAX trainer does).
        def run_stateless(values, *xs):
            with weights.reading(), keras.StatelessScope(
                    state_mapping=list(zip(variables, values))):
                return fn(*xs)

        compiled = self._compile(run_stateless, self.jit)
        return functools.partial(compiled, [v.value for v in variables])

    def measure_ops(self, programs: Sequence[Program], timing: TimingConfig | None = None,
                    on_result: Callable[[Program, Measurement], None] | None = None,
                    ) -> list[Measurement]:
        rng = np.random.default_rng(0)
        results = []
        for prog in programs:
            inputs = prog.program().random_inputs(rng)
            compiled = self._compiled_op(prog)
            (m,) = self._time_all([(compiled, inputs)], timing)
            results.append(m)
            if on_result:
                on_result(prog, m)
        return results
