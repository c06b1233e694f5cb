"""Softmax over the last axis: attention's scores (heads x queries rows of keys
columns) and a classifier's probabilities (one row of classes). LiteRT runs it as one
SOFTMAX kernel (XNNPACK: a max, an exp-and-sum and a scale pass per row), whose time
per element depends on the row length: until now it was charged through the roofline
as elementwise work.

A sample is `rows` rows of `cols` elements. Neither follows a layer's channels: an
attention's softmax runs over its sequence, a classifier's over its classes (never
pruned)."""

from __future__ import annotations

import math
from typing import Sequence

from latency_lab.errors import UnsupportedOpError
from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Config, Dim, OpKind, keras_layer, litert_kernel, Region,
                                       register)
from latency_lab.op_kinds.space import HEADS, TOKENS

__all__ = ["Softmax", "softmax_config", "softmax_configs"]


@register
class Softmax(OpKind):
    name = "softmax"
    keys = ("rows", "cols")
    streams = True
    # up to 16 heads x 4096 tokens of rows, 4096 keys (or classes) a row; shrunk to
    # the work caps
    space = {"rows": Dim(1, 65536), "cols": Dim(2, 4096)}
    # attention's scores: heads x queries rows of as many keys
    regions = {"attention": Region({"heads": HEADS, "cols": TOKENS},
                                   ties={"rows": ("heads", "cols")})}
    table_share = 2  # half of what families do not give goes to attention's region

    def derive(self, config: Config) -> Config:
        """At least two columns: a softmax over one element is the constant 1 (Keras
        warns, and no network times one)."""
        out = super().derive(config)
        out["cols"] = max(2, int(out["cols"]))
        return out

    def base_terms(self, c: Config) -> list[float]:
        """A fixed cost, one per row (its max and sum reduced, the scale set up) and
        one per element (read three times, exp once, written once). 5-fold CV on a
        fresh EPYC profile's 20 attention-region samples: RMSPE 17.1 -> 11.4%, within
        +-10% 45 -> 65% (roofline base -> this one)."""
        return [1.0, float(c["rows"]), float(c["rows"] * c["cols"])]

    def to_ir(self, c: Config) -> Op:
        shape = (1, c["rows"], c["cols"])
        return Op("softmax", "Softmax", ["x"], [shape], [shape], {"axis": -1})

    def build(self, c: Config, rng):
        import keras

        return ([(1, c["rows"], c["cols"])],
                lambda x: keras.ops.softmax(x, axis=-1))

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Attention scores (heads x tokens rows of tokens) of small transformers:
        ViT-Ti/S at 197 tokens (3 and 6 heads), BERT-tiny/mini at 128 tokens (2 and 4
        heads); and a 1000-class classifier's one row."""
        shapes = ((3, 197), (4, 128)) if quick else (
            (3, 197), (6, 197), (2, 128), (4, 128), (4, 64), (8, 256))
        out = [dict(rows=h * t, cols=t) for h, t in shapes]
        if not quick:
            out.append(dict(rows=1, cols=1000))
        return out


def softmax_config(shape: Sequence[int], axis: int | Sequence[int] = -1) -> Config:
    """The sample of a softmax over `axis` (one or several axes) of a tensor of
    `shape`: the axes' elements are a row, every other element a row's start."""
    rank = len(shape)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not rank or any(not -rank <= int(a) < rank for a in axes):
        raise UnsupportedOpError(
            f"softmax over axis {axis} of a tensor of shape {tuple(shape)}: the axis is "
            "outside the tensor; give an axis within its rank")
    cols = math.prod(int(shape[int(a) % rank]) for a in set(int(a) % rank for a in axes))
    rows = math.prod(int(d) for d in shape) // max(cols, 1)
    return dict(rows=max(1, rows), cols=max(1, cols))


def softmax_configs(shape: Sequence[int], axis: int | Sequence[int] = -1,
                    ) -> list[tuple[str, Config]]:
    """[("softmax", config)] of a softmax over `axis` of `shape`."""
    return [("softmax", softmax_config(shape, axis))]


@litert_kernel("SOFTMAX")
def _litert_softmax(k):
    """LiteRT's SOFTMAX normalizes the last axis (a softmax over another axis converts
    to transposes around it, timed as those)."""
    return softmax_configs(k.input_shapes[0], -1)


@keras_layer("Softmax", "ops.Softmax")
def _keras_softmax(op: Op):
    """A Softmax layer (its `axis`, default -1) or a keras.ops.softmax call. A softmax
    inside a MultiHeadAttention is part of that layer, not mapped here."""
    axis = op.attrs.get("axis", -1)
    if axis is None:
        axis = -1
    return softmax_configs(op.input_shapes[0], axis)
