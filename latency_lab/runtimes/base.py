"""What a runtime is: the protocol every runtime implements and the single-op program
it times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from latency_lab.timing import Measurement, TimingConfig

__all__ = ["OpProgram", "Runtime"]


@dataclass
class OpProgram:
    """A single-op program to time: input shapes and a keras.ops function, which turns
    its weight arrays into tensors with `op_kinds.base.weight_tensor` (constants, or
    variables where a runtime compiles it as a model's weights are). `key` identifies
    the program (a profile sample's key): a runtime may reuse work done for an earlier
    program with the same key, such as its conversion."""

    key: str
    input_shapes: list[tuple]
    fn: Callable


class Runtime(Protocol):
    name: str
    threads: int

    def info(self) -> dict: ...

    def measure_model(self, model: Any, timing: TimingConfig | None = None) -> Measurement: ...

    def measure_models(self, models: Sequence[Any], timing: TimingConfig | None = None,
                       ) -> list[Measurement]: ...

    def measure_ops(self, programs: Sequence[OpProgram], timing: TimingConfig | None = None,
                    on_result: Callable[[OpProgram, Measurement], None] | None = None,
                    ) -> None: ...
