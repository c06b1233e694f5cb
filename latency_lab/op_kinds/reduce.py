"""Means over the last axis (`reduce_rows`: a LayerNormalization's mean and variance,
rows of tokens x their features), and the one mapping of LiteRT's MEAN kernel, which
sends each MEAN to the kind whose microbenchmark runs that reduction: over the last
axis to `reduce_rows`, over a feature map's spatial axes (GlobalAveragePooling2D)
or a sequence's steps (GlobalAveragePooling1D's axis 1 of (1, T, C)) to
`global_pool`. XNNPACK reduces a contiguous row and a strided column with different
loops, so the two are timed apart.

The axes a MEAN reduces are a constant input of the kernel (`Kernel.input_values`);
where they are not known they are inferred from the input and output shapes, and a
reduction whose axes neither says nor the shapes settle is an error naming the
kernel. LiteRT's SUM stays charged through the roofline (no Keras layer runs one)."""

from __future__ import annotations

import itertools
from typing import Any, Sequence

from latency_lab.errors import UnsupportedOpError
from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Config, Dim, keras_layer, litert_kernel, OpKind,
                                       prod, register, rows_and_channels)
from latency_lab.op_kinds.space import token_region

__all__ = ["ReduceRows", "mean_configs", "kernel_axes"]


@register
class ReduceRows(OpKind):
    """The mean of each of `rows` rows of `c` contiguous elements."""

    name = "reduce_rows"
    keys = ("rows", "c")
    streams = True
    in_channel_keys = ("c",)  # the reduced axis is the layer's input channels
    space = {"rows": Dim(1, 4096), "c": Dim(1, 4096)}
    regions = {"tokens": token_region()}  # a LayerNorm's mean over each token
    table_share = 1

    def to_ir(self, c: Config) -> Op:
        # A channels-first GlobalAveragePooling1D is this mean: over (1, rows, c) its
        # channels are the rows, and it averages each row's c steps.
        return Op("reduce_rows", "GlobalAveragePooling1D", ["x"], [(1, c["rows"], c["c"])],
                  [(1, c["rows"], 1)], {"channel_axis": 1})

    def build(self, c: Config, rng):
        import keras

        return ([(1, c["rows"], c["c"])],
                lambda x: keras.ops.mean(x, axis=-1, keepdims=True))

    def coverage_configs(self, quick: bool) -> list[Config]:
        """LayerNormalization's means over the tokens of small transformers: ViT-Ti
        and ViT-S (197 tokens of 192 and 384), BERT-tiny and BERT-mini (128 tokens of
        128 and 256)."""
        shapes = ((197, 192), (128, 256)) if quick else (
            (197, 192), (197, 384), (128, 128), (128, 256), (64, 64), (256, 768))
        return [dict(rows=r, c=c) for r, c in shapes]


def mean_configs(shape: Sequence[int], axes: Sequence[int], what: str) -> list[tuple[str, Config]]:
    """The sample of a mean over `axes` of a tensor of `shape`: `reduce_rows` over the
    last axis (or a trailing block of axes, contiguous in memory: one row), `global_pool`
    over the spatial axes of an NHWC map or axis 1 of a (1, T, C) sequence (or a
    leading block of axes). Axes of size 1 reduce nothing and are looked through (a
    mean over (1, 1, T, C)'s axes 1 and 2 is a sequence's). `what` names the kernel or
    layer in the error for any other reduction (a middle axis)."""
    shape = tuple(int(d) for d in shape)
    rank = len(shape)
    if rank == 0 or any(not -rank <= int(a) < rank for a in axes) or not axes:
        raise UnsupportedOpError(
            f"{what}: a mean over axes {tuple(axes)} of a tensor of shape {shape} has no "
            "axis to reduce within the tensor; give axes within its rank")
    red = sorted({int(a) % rank for a in axes})
    if red == [rank - 1]:
        rows, c = rows_and_channels(shape)
        return [("reduce_rows", dict(rows=rows, c=c))]
    if rank == 4 and red == [1, 2]:  # GlobalAveragePooling2D (kept as ever, 1x1 maps too)
        return [("global_pool", dict(h=shape[1], w=shape[2], c=shape[3]))]
    if rank == 3 and red == [1]:  # GlobalAveragePooling1D
        return [("global_pool", dict(h=shape[1], w=1, c=shape[2]))]
    # Look through axes of size 1.
    big = [i for i in range(rank) if shape[i] > 1]
    red_big = [i for i in red if shape[i] > 1]
    if not red_big:  # only size-1 axes reduced: a copy, one-element rows
        return [("reduce_rows", dict(rows=max(1, prod(shape)), c=1))]
    pos = [big.index(i) for i in red_big]
    if pos == list(range(len(big) - len(pos), len(big))):  # trailing block: rows
        cols = prod(shape[i] for i in red_big)
        return [("reduce_rows", dict(rows=max(1, prod(shape) // cols), c=cols))]
    if pos == list(range(len(pos))) and len(pos) < len(big):  # leading block: a pool
        rest = [shape[i] for i in big[len(pos):]]
        return [("global_pool", dict(h=prod(shape[i] for i in red_big), w=1, c=prod(rest)))]
    raise UnsupportedOpError(
        f"{what}: a mean over axes {tuple(red)} of a tensor of shape {shape} is neither "
        "over the last axis (reduce_rows) nor over the leading spatial or sequence axes "
        "(global_pool), the reductions that have a microbenchmark. Reduce the last axis "
        "or the spatial axes (transpose first), or add an op kind for this reduction in "
        "latency_lab/op_kinds/reduce.py.")


def kernel_axes(k: Any) -> tuple[int, ...] | None:
    """The axes a LiteRT reduction kernel reduces: its constant axis input
    (`Kernel.input_values`), else inferred from its shapes (None when they leave the
    reduction ambiguous, each consistent set of axes giving another sample)."""
    values = list(getattr(k, "input_values", None) or [])
    if len(values) > 1 and values[1] is not None:
        return tuple(values[1])
    x, out = tuple(k.input_shapes[0]), tuple(k.output_shapes[0])
    keep = k.options.get("keepDims")
    keep = len(out) == len(x) if keep is None else bool(keep)
    found: dict[str, tuple[int, ...]] = {}
    for n in range(1, len(x) + 1):
        for axes in itertools.combinations(range(len(x)), n):
            if keep:
                ok = len(out) == len(x) and all(
                    out[i] == (1 if i in axes else x[i]) for i in range(len(x)))
            else:
                ok = out == tuple(d for i, d in enumerate(x) if i not in axes)
            if not ok:
                continue
            try:
                cfgs = mean_configs(x, axes, "")
            except UnsupportedOpError:
                cfgs = [("?", {"axes": axes})]
            found.setdefault(repr(cfgs), axes)
    return next(iter(found.values())) if len(found) == 1 else None


@litert_kernel("MEAN")
def _litert_mean(k):
    what = f"LiteRT kernel MEAN (layer {k.layer!r}, {k.describe()})"
    axes = kernel_axes(k)
    if axes is None:
        raise UnsupportedOpError(
            f"{what}: its reduced axes are not in the model (no constant axis input) and "
            "its shapes fit several reductions; convert the model with constant axes "
            "(keras.ops.mean(x, axis=...) with a Python int or tuple)")
    return mean_configs(k.input_shapes[0], axes, what)


@keras_layer("ops.Mean")
def _keras_mean(op: Op):
    """keras.ops.mean(x, axis=...): the same reductions (all axes when axis is None)."""
    x = op.input_shapes[0]
    axis = op.attrs.get("axis")
    axes = tuple(range(len(x))) if axis is None else (
        tuple(axis) if isinstance(axis, (tuple, list)) else (int(axis),))
    return mean_configs(x, axes, f"layer {op.name!r} ({op.type})")
