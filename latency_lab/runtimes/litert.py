"""LiteRT: convert with the TFLite converter, run in the ai-edge-litert interpreter
(XNNPACK delegate, `num_threads`).

Each single-op program is converted on its own (`convert.convert_program`: frozen, as a
whole model is) and runs in an interpreter of its own; a chunk of them is timed with
interleaved repeats. Weights are graph constants, so the converter folds and fuses
exactly as it does for a real network.
"""

from __future__ import annotations

import functools
import os
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

from latency_lab.convert import convert_keras_model, convert_program
from latency_lab.convert.pool import ConversionPool
from latency_lab.errors import MeasurementError
from latency_lab.runtimes.base import OpProgram, PlannedProgram, Program
from latency_lab.timing import Measurement, TimingConfig, measure, measure_interleaved

__all__ = ["OPS_PER_CHUNK", "litert_version", "interpreter", "raw_invoke", "LiteRTRuntime",
           "PendingConversions", "program_call", "convert_keras_model", "convert_program",
           "convert_to_file"]

OPS_PER_CHUNK = 24  # programs whose interpreters are alive and timed together


def litert_version() -> str:
    import ai_edge_litert

    return str(getattr(ai_edge_litert, "__version__", "unknown"))


def interpreter(model_bytes: bytes, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_bytes, num_threads=threads)


class PendingConversions:
    """Conversions under way in a pool's workers: `done()` asks without blocking (to
    keep the workers fed while this process does other work), `wait()` stores each
    result in `store` as it arrives. Nothing may be timed until `wait()` returns: a
    conversion beside a timed kernel would bias it."""

    def __init__(self, pending: list[tuple[str, Any]], store: dict):
        self._pending, self._store = pending, store

    def done(self) -> bool:
        return all(future.done() for _, future in self._pending)

    def wait(self) -> None:
        for key, future in self._pending:
            self._store[key] = future.result()
        self._pending = []


class LiteRTRuntime:
    name = "litert"

    def __init__(self, threads: int = 1, device: str = "cpu"):
        if device != "cpu":
            raise MeasurementError(
                f"the litert runtime runs on the CPU (XNNPACK); got device {device!r}. "
                "Use --runtime keras --device gpu for a GPU."
            )
        self.threads = threads
        # Conversions of op programs by their sample keys: a profile times every program
        # in several passes and converts it once (about 0.35 s per op here). Kept on
        # disk, not in memory: a full plan's models hold a few hundred MB of weights
        # (the memory-bandwidth samples alone are ~100 MB each). Each is kept with its
        # program's inputs (no weights), so a later pass never rebuilds the program.
        self._converted_ops: dict[str, tuple[str, OpProgram]] = {}
        self._cache_dir: tempfile.TemporaryDirectory | None = None
        self._inner_loops: dict[str, int] = {}  # found in the first pass, reused after

    def info(self) -> dict:
        return {"name": "litert", "version": litert_version(), "backend": "xnnpack",
                "device": "cpu", "threads": self.threads, "dtype": "float32", "batch": 1}

    # ---------------------------------------------------------------- models
    def ready(self, model_bytes: bytes) -> tuple[Any, Callable[[], None]]:
        """(interpreter, its raw invocation) with random inputs set once: timed as op
        programs are (`raw_invoke`), so a network and the samples predicting it carry
        the same per-call cost. The interpreter must outlive the call."""
        it = interpreter(model_bytes, self.threads)
        it.allocate_tensors()
        rng = np.random.default_rng(0)
        return _armed(it, [rng.standard_normal(d["shape"]).astype(d["dtype"])
                           for d in it.get_input_details()])

    def measure_bytes(self, model_bytes: bytes, timing: TimingConfig | None = None) -> Measurement:
        it, call = self.ready(model_bytes)
        result = measure(call, timing)
        del call, it  # the raw call first: the interpreter frees its delegate when collected
        return result

    def measure_model(self, model: Any, timing: TimingConfig | None = None) -> Measurement:
        return self.measure_bytes(convert_keras_model(model), timing)

    def measure_models(self, models: Sequence[Any], timing: TimingConfig | None = None,
                       ) -> list[Measurement]:
        """Several models with interleaved repeats (`measure_interleaved`), so models
        that are compared meet the same moments of a shared host."""
        ready = [self.ready(convert_keras_model(m)) for m in models]
        result = measure_interleaved([call for _, call in ready], timing)
        del ready
        return result

    # ------------------------------------------------------------------- ops
    def _cache(self) -> str:
        if self._cache_dir is None:
            self._cache_dir = tempfile.TemporaryDirectory(prefix="latency-lab-ops-")
        return self._cache_dir.name

    def _converted(self, prog: Program) -> tuple[bytes, OpProgram]:
        """(LiteRT model bytes, the program's inputs) of `prog`, converted once."""
        if prog.key not in self._converted_ops:
            self._converted_ops[prog.key] = convert_to_file(prog, self._cache())
        path, inputs = self._converted_ops[prog.key]
        with open(path, "rb") as f:
            return f.read(), inputs

    def convert_ahead(self, programs: Sequence[Program], pool: ConversionPool
                      ) -> PendingConversions:
        """Start converting the `programs` not converted yet in `pool`'s workers (a
        `PlannedProgram` is built there; an `OpProgram`, a closure, is converted here
        later, when timed, as are programs too few to start the workers for). Call
        the result's `wait()` before timing anything."""
        todo = [p for p in {p.key: p for p in programs}.values()
                if p.key not in self._converted_ops and isinstance(p, PlannedProgram)]
        if not pool.worth_it(len(todo)):  # converted here, as each is timed
            return PendingConversions([], self._converted_ops)
        cache = self._cache()
        return PendingConversions([(p.key, pool.submit(convert_to_file, p, cache)) for p in todo],
                                  self._converted_ops)

    def measure_ops(self, programs: Sequence[Program], timing: TimingConfig | None = None,
                    on_result: Callable[[Program, Measurement], None] | None = None,
                    ) -> list[Measurement]:
        results: list[Measurement] = []
        rng = np.random.default_rng(0)
        for start in range(0, len(programs), OPS_PER_CHUNK):
            chunk = list(programs[start:start + OPS_PER_CHUNK])
            # A fresh interpreter per program and pass; its conversion is reused.
            ready = []
            for p in chunk:
                model_bytes, inputs = self._converted(p)
                ready.append(program_call(interpreter(model_bytes, self.threads), inputs, rng))
            # The chunk's ops are timed with interleaved repeats (see measure_interleaved).
            measured = measure_interleaved(
                [call for _, call in ready],
                timing, inner_loops=[self._inner_loops.get(p.key) for p in chunk])
            for prog, m in zip(chunk, measured):
                self._inner_loops[prog.key] = m.inner_loops
                results.append(m)
                if on_result:
                    on_result(prog, m)
            del ready
        return results


def convert_to_file(program: Program, directory: str) -> tuple[str, OpProgram]:
    """Convert `program` (`convert_program`) into a new file in `directory`: (its path,
    the program's inputs without its function). Module-level and given only data for
    a `PlannedProgram`, so a conversion worker (`convert.pool`) runs it."""
    prog = program.program()
    fd, path = tempfile.mkstemp(prefix="op", suffix=".tflite", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(convert_program(prog))
    return path, OpProgram(prog.key, list(prog.input_shapes), _inputs_only,
                           prog.input_dtypes, prog.input_ranges)


def _inputs_only(*_):
    raise MeasurementError("this op program keeps only its inputs (its conversion is done); "
                           "build the program again to trace it")


def program_call(it, program: OpProgram, rng: np.random.Generator):
    """(it, a ready-to-time invocation) of `program`'s `convert_program` model: inputs
    allocated and set once, then the raw Invoke of its subgraph, so no Python-side
    copies are timed. Inputs are drawn as the program says (`OpProgram.random_inputs`:
    float32, or integer indices in range)."""
    it.allocate_tensors()
    details = it.get_input_details()
    values = program.random_inputs(rng)
    got = [tuple(int(x) for x in d["shape"]) for d in details]
    if got != [v.shape for v in values]:
        raise MeasurementError(
            f"op program {program.key!r} declares inputs of shapes "
            f"{[v.shape for v in values]} but its converted model takes {got}; its "
            "function must use every input it declares, in order")
    return _armed(it, values)


def _armed(it, values: Sequence[np.ndarray]) -> tuple[Any, Callable[[], None]]:
    """(it, its raw call) with `values` set as its inputs, once: one invocation through
    the checked path first, so errors surface here and not mid-timing."""
    for d, value in zip(it.get_input_details(), values):
        it.set_tensor(d["index"], value)
    it.invoke()
    return it, raw_invoke(it)


def raw_invoke(it) -> Callable[[], None]:
    """The interpreter's C++ Invoke of its main subgraph, without the Python wrapper's
    per-call safety check (`Interpreter.invoke` counts references to its buffers: 0.16
    us a call on the EPYC VM, against 0.41 us for a whole one-kernel model). Every
    timing uses this one path; nothing here holds views of the interpreter's tensors,
    which is what the check guards against. Keep `it` alive while the call is used."""
    return functools.partial(it._interpreter.Invoke, 0)
