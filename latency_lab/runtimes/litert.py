"""LiteRT: convert with the TFLite converter, run in the ai-edge-litert interpreter
(XNNPACK delegate, `num_threads`).

Single-op programs are converted many at a time: each is a signature of one SavedModel,
so one conversion yields a model whose signatures run as separate subgraphs. That keeps
profiling in minutes (one conversion per op would dominate the run). Weights are graph
constants, so the converter folds and fuses exactly as it does for a real network.
"""

from __future__ import annotations

import functools
import os
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

from latency_lab.convert import convert_keras_model, convert_programs
from latency_lab.errors import MeasurementError
from latency_lab.op_kinds.base import random_input
from latency_lab.runtimes.base import OpProgram
from latency_lab.timing import Measurement, TimingConfig, measure, measure_interleaved

__all__ = ["OPS_PER_CONVERSION", "litert_version", "interpreter", "LiteRTRuntime",
           "signature_calls", "convert_keras_model", "convert_programs"]

OPS_PER_CONVERSION = 24


def litert_version() -> str:
    import ai_edge_litert

    return str(getattr(ai_edge_litert, "__version__", "unknown"))


def interpreter(model_bytes: bytes, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_bytes, num_threads=threads)


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
            calls = signature_calls(it, chunk, rng)
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


def signature_calls(it, programs: "int | Sequence[OpProgram]",
                    rng: np.random.Generator) -> list[Callable[[], None]]:
    """Ready-to-time invocations of signatures s0..s{n-1} of a `convert_programs` model:
    inputs allocated and set once, then the raw Invoke(subgraph), so no Python-side
    copies are timed. `programs`: the converted programs, whose inputs are drawn as
    each says (`OpProgram.random_inputs`: float32, or integer indices in range), or
    their count n (every input float32 standard normal)."""
    wrapper = it._interpreter
    progs = None if isinstance(programs, int) else list(programs)
    n = programs if progs is None else len(progs)
    calls = []
    for i in range(n):
        runner = it.get_signature_runner(f"s{i}")
        details = runner.get_input_details()
        names = sorted(details, key=_arg_order)
        if progs is None:
            values = [random_input(details[name]["shape"], rng) for name in names]
        else:
            values = progs[i].random_inputs(rng)
            got = [tuple(int(d) for d in details[name]["shape"]) for name in names]
            if got != [v.shape for v in values]:
                raise MeasurementError(
                    f"op program {progs[i].key!r} declares inputs of shapes "
                    f"{[v.shape for v in values]} but its converted signature s{i} takes "
                    f"{got}; its function must use every input it declares, in order")
        runner(**dict(zip(names, values)))
        calls.append(functools.partial(wrapper.Invoke, runner._subgraph_index))
    return calls


def _arg_order(name: str) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    return int(digits) if digits else 0

