"""What a runtime is: the protocol every runtime implements and the single-op program
it times."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, Union

import numpy as np

from latency_lab.errors import MeasurementError
from latency_lab.op_kinds.base import input_dtype, input_range, random_input
from latency_lab.timing import Measurement, TimingConfig

__all__ = ["OpProgram", "PlannedProgram", "Program", "Runtime"]


@dataclass
class OpProgram:
    """A single-op program to time: input shapes and a keras.ops function, which turns
    its weight arrays into tensors with `op_kinds.base.weight_tensor` (constants, or
    variables where a runtime compiles it as a model's weights are). `key` identifies
    the program (a profile sample's key): a runtime may reuse work done for an earlier
    program with the same key, such as its conversion.

    Inputs are float32 standard normal unless said otherwise: `input_dtypes` gives each
    input's dtype and `input_ranges` the [low, high) an integer input's values are
    drawn from (a gather's indices: `op_kinds.base.IndexInput`). Left empty, both are
    read from the shapes, so `OpProgram(key, shapes, fn)` with the shapes an op kind's
    `build` returns is complete."""

    key: str
    input_shapes: list[tuple]
    fn: Callable
    input_dtypes: Sequence[str] = ()
    input_ranges: Sequence[tuple[int, int] | None] = ()

    def __post_init__(self) -> None:
        n = len(self.input_shapes)
        self.input_dtypes = tuple(self.input_dtypes) or tuple(
            input_dtype(s) for s in self.input_shapes)
        self.input_ranges = tuple(self.input_ranges) or tuple(
            input_range(s) for s in self.input_shapes)
        if len(self.input_dtypes) != n or len(self.input_ranges) != n:
            raise MeasurementError(
                f"op program {self.key!r} has {n} input shapes but {len(self.input_dtypes)} "
                f"input dtypes and {len(self.input_ranges)} input ranges; give one of each "
                "per input (or none: float32 inputs)")

    def random_inputs(self, rng: np.random.Generator) -> list[np.ndarray]:
        """One array per input, of its shape and dtype (`op_kinds.base.random_input`)."""
        return [random_input(s, rng, d, r) for s, d, r in
                zip(self.input_shapes, self.input_dtypes, self.input_ranges)]

    def program(self) -> "OpProgram":
        return self


class PlannedProgram:
    """An op kind's microbenchmark program for (op, config), built when first needed
    (`program()`): its random weights are drawn only by whoever converts or compiles
    it, not by every pass that times a conversion already made. It is plain data, so a
    conversion worker builds the same program (`convert.pool`): the weights come from
    a generator seeded by (seed, key), whatever order programs are built in."""

    def __init__(self, key: str, op: str, config: dict, seed: int = 0):
        self.key, self.op, self.config, self.seed = key, op, dict(config), int(seed)
        self._built: OpProgram | None = None

    def program(self) -> OpProgram:
        if self._built is None:
            from latency_lab import op_kinds

            rng = np.random.default_rng([self.seed, zlib.crc32(self.key.encode())])
            shapes, fn = op_kinds.get(self.op).build(self.config, rng)
            self._built = OpProgram(self.key, shapes, fn)
        return self._built

    def __getstate__(self) -> dict:  # the data, never the built closure
        return {"key": self.key, "op": self.op, "config": self.config, "seed": self.seed}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"PlannedProgram({self.key!r}, seed={self.seed})"


# What runtimes time: a program, or one planned and built on demand (`.program()`).
Program = Union[OpProgram, PlannedProgram]


class Runtime(Protocol):
    name: str
    threads: int

    def info(self) -> dict: ...

    def measure_model(self, model: Any, timing: TimingConfig | None = None) -> Measurement: ...

    def measure_models(self, models: Sequence[Any], timing: TimingConfig | None = None,
                       ) -> list[Measurement]: ...

    def measure_ops(self, programs: Sequence[Program], timing: TimingConfig | None = None,
                    on_result: Callable[[Program, Measurement], None] | None = None,
                    ) -> None: ...
