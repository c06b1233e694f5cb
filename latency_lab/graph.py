"""Framework-neutral network graph.

Everything downstream (costs, predictors, regularizers) reads this IR rather than Keras
objects, so the same cost functions serve a Keras model, a LiteRT op list and a
hand-built test graph. Shapes always include the batch dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator
from latency_lab.errors import InvalidArgumentError

__all__ = ["DTYPE_BYTES", "dtype_bytes", "Shape", "UniqueNames", "Op", "channels",
           "positions", "Graph", "ATTENTION_ROLES", "ATTENTION_MASK_ROLES"]

DTYPE_BYTES = {
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "bool": 1,
}


def dtype_bytes(dtype: str) -> int:
    """Bytes per element; unknown dtypes are an error rather than a silent guess."""
    try:
        return DTYPE_BYTES[str(dtype)]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown dtype {dtype!r}; expected one of {sorted(DTYPE_BYTES)}"
        ) from None


Shape = tuple  # tuple[int, ...], batch first

# The inputs an attention op (MultiHeadAttention) can take, in the order its Op lists
# them; attrs["input_roles"] names the ones it has (query and value always).
ATTENTION_ROLES = ("query", "value", "key", "attention_mask", "query_mask", "value_mask",
                   "key_mask")
ATTENTION_MASK_ROLES = ("attention_mask", "query_mask", "value_mask", "key_mask")


class UniqueNames:
    """Hands out op names, suffixing `#1`, `#2`, ... for later calls of a shared layer."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __call__(self, name: str) -> str:
        candidate, i = name, 0
        while candidate in self.names:
            i += 1
            candidate = f"{name}#{i}"
        self.names.add(candidate)
        return candidate


@dataclass
class Op:
    """One node: a Keras layer call (or a keras.ops call, typed `ops.<Name>`).

    `inputs` name the producing ops (`"name"` or `"name:i"` for output i of a
    multi-output op). `attrs` holds what the cost of the op depends on, in plain
    Python types: kernel_size, strides, padding, dilation_rate, groups,
    depth_multiplier, activation, use_bias, channel_axis, ...
    """

    name: str
    type: str
    inputs: list[str]
    input_shapes: list[Shape]
    output_shapes: list[Shape]
    attrs: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"

    @property
    def output_shape(self) -> Shape:
        return self.output_shapes[0]

    @property
    def channel_axis(self) -> int:
        return int(self.attrs.get("channel_axis", -1))

    @property
    def channels_in(self) -> int | None:
        """Channel count of the first input (None for source ops)."""
        if not self.input_shapes:
            return None
        return channels(self.input_shapes[0], self.channel_axis)

    @property
    def channels_out(self) -> int:
        return channels(self.output_shape, self.channel_axis)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "inputs": list(self.inputs),
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "attrs": dict(self.attrs),
            "dtype": self.dtype,
        }


def channels(shape: Shape, channel_axis: int = -1) -> int:
    """Channel count of a shape (last axis for channels_last)."""
    if len(shape) < 2:
        return 1
    return int(shape[channel_axis])


def positions(shape: Shape, channel_axis: int = -1) -> int:
    """Number of channel vectors: product of all dims but the channel axis (batch
    included). For a Dense layer on a 4-D tensor this is batch*H*W rows."""
    if len(shape) < 2:
        return int(shape[0]) if shape else 1
    axis = channel_axis % len(shape)
    return int(math.prod(int(d) for i, d in enumerate(shape) if i != axis))


@dataclass
class Graph:
    """Ops in topological order plus the names of input and output ops."""

    name: str
    ops: list[Op]
    inputs: list[str]
    outputs: list[str]
    batch_size: int = 1

    def __post_init__(self) -> None:
        self._by_name = {op.name: op for op in self.ops}
        if len(self._by_name) != len(self.ops):
            seen: set[str] = set()
            dup = next(op.name for op in self.ops if op.name in seen or seen.add(op.name))
            raise InvalidArgumentError(f"graph {self.name!r} has two ops named {dup!r}")

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def op(self, name: str) -> Op:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"graph {self.name!r} has no op named {name!r}") from None

    def producer(self, ref: str) -> Op:
        """The op behind an input reference `name` or `name:i`."""
        return self.op(ref.rsplit(":", 1)[0] if ref not in self._by_name else ref)

    def consumers(self, name: str) -> list[Op]:
        return [
            op
            for op in self.ops
            if any(ref == name or ref.startswith(name + ":") for ref in op.inputs)
        ]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "batch_size": self.batch_size,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "ops": [op.to_dict() for op in self.ops],
        }
