"""Layout ops that move data without arithmetic: transposes (a channel shuffle, an
attention head split) and slices (a channel split, a crop), and the splits made of
slices. Charged until now as elementwise roofline work, yet their speed depends on how
much of each copy is contiguous: under LiteRT on the EPYC VM a ShuffleNet channel
shuffle moves elements one by one (inner run of 1), a head split whole rows of 64.

Each is described by the shapes alone (the LiteRT kernel keeps its permutation in a
constant tensor; the shapes say which blocks moved), so the same mapping serves the
LiteRT kernels and the Keras layers."""

from __future__ import annotations

from typing import Sequence

from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Config, Dim, OpKind, keras_layer, litert_kernel, prod,
                                       Region, register)
from latency_lab.op_kinds.space import HEAD_DIM, HEADS, TOKENS

__all__ = ["Transpose", "Slice", "transpose_config", "slice_configs"]


@register
class Transpose(OpKind):
    """A swap of two adjacent axis blocks: `rows` outer elements left in place, then
    blocks of sizes `a` and `b` exchanged, each moving runs of `inner` contiguous
    elements. A channel shuffle of g groups is rows=h*w, a=g, b=c/g, inner=1."""

    name = "transpose"
    keys = ("rows", "a", "b", "inner")
    streams = True
    space = {"rows": Dim(1, 4096), "a": Dim(1, 512), "b": Dim(1, 512), "inner": Dim(1, 256)}
    # attention's (tokens, heads, head dim) <-> (heads, tokens, head dim)
    regions = {"split_heads": Region({"a": TOKENS, "b": HEADS, "inner": HEAD_DIM},
                                     ties={"rows": ()}),
               "merge_heads": Region({"a": HEADS, "b": TOKENS, "inner": HEAD_DIM},
                                     ties={"rows": ()})}
    # 3: at 1 the full table had 8 transposes, half of them from the space's far
    # corners (up to 24 ms), and attention's head splits (1-6 us) came out 2-9x
    # predicted (the transposes of ten transformers, timed alone: 0.29 ms, predicted
    # 1.37 ms)
    table_share = 3

    def to_ir(self, c: Config) -> Op:
        x = (c["rows"], c["a"], c["b"], c["inner"])
        return Op("transpose", "Permute", ["x"], [x],
                  [(c["rows"], c["b"], c["a"], c["inner"])], {"dims": (2, 1, 3)})

    def build(self, c: Config, rng):
        import keras

        return ([(c["rows"], c["a"], c["b"], c["inner"])],
                lambda x: keras.ops.transpose(x, (0, 2, 1, 3)))

    def base_terms(self, c: Config) -> list[float]:
        """A copy: a fixed cost per call, each element moved, and each run of `inner`
        contiguous elements (a run is one strided read; a run of one is an
        element-wise gather)."""
        runs = c["rows"] * c["a"] * c["b"]
        return [1.0, float(runs * c["inner"]), float(runs)]


@register
class Slice(OpKind):
    """A copy of `cout` of the `cin` elements of the last axis, for `rows` rows (a
    channel split's half, a crop when cin == cout)."""

    name = "slice"
    keys = ("rows", "cin", "cout")
    streams = True
    in_channel_keys = ("cin",)
    space = {"rows": Dim(1, 65536), "cin": Dim(1, 4096), "cout": Dim(1, 4096)}
    table_share = 1

    def derive(self, config: Config) -> Config:
        out = dict(config)
        out["cout"] = min(out["cout"], out["cin"])
        return out

    def to_ir(self, c: Config) -> Op:
        return Op("slice", "ops.GetItem", ["x"], [(1, c["rows"], c["cin"])],
                  [(1, c["rows"], c["cout"])], {})

    def build(self, c: Config, rng):
        import keras

        return ([(1, c["rows"], c["cin"])],
                lambda x: keras.ops.slice(x, (0, 0, 0), (1, c["rows"], c["cout"])))


def transpose_config(in_shape: Sequence[int], out_shape: Sequence[int]) -> Config:
    """The `transpose` sample of a permutation seen only through its shapes: the axes
    before the first and after the last changed one stay (rows, inner); the changed
    middle is a swap of two blocks where its output is the input's blocks exchanged.
    A middle that is no block swap (a 3-way rotation) or shapes that do not change
    (a square transpose) are timed as a swap of the middle's halves, the same bytes
    in runs of the same length."""
    s, o = [int(d) for d in in_shape], [int(d) for d in out_shape]
    if len(s) != len(o):
        return dict(rows=1, a=max(1, prod(s[:-1])), b=max(1, s[-1] if s else 1), inner=1)
    diff = [i for i in range(len(s)) if s[i] != o[i]]
    if diff:
        i, k = diff[0], diff[-1] + 1
    else:  # same shapes: assume the last two axes of size > 1 swapped
        big = [j for j, d in enumerate(s) if d > 1]
        i, k = (big[-2], big[-1] + 1) if len(big) >= 2 else (0, len(s))
    mid, out_mid = s[i:k], o[i:k]
    a = b = None
    for j in range(1, len(mid)):
        if out_mid == mid[j:] + mid[:j]:
            a, b = prod(mid[:j]), prod(mid[j:])
            break
    if a is None:
        half = max(1, len(mid) // 2)
        a, b = prod(mid[:half]), prod(mid[half:])
    return dict(rows=max(1, prod(s[:i])), a=max(1, a), b=max(1, b),
                inner=max(1, prod(s[k:])))


def slice_configs(in_shape: Sequence[int], out_shapes: Sequence[Sequence[int]]) -> list:
    """One `slice` sample per output (a split is a slice per piece)."""
    cin = int(in_shape[-1]) if len(in_shape) else 1
    out = []
    for shape in out_shapes:
        cout = int(shape[-1]) if len(shape) else 1
        rows = max(1, prod(shape) // max(cout, 1))
        out.append(("slice", dict(rows=rows, cin=max(cin, 1), cout=max(1, min(cout, cin)))))
    return out


@litert_kernel("TRANSPOSE")
def _litert_transpose(k):
    return [("transpose", transpose_config(k.input_shapes[0], k.output_shapes[0]))]


@litert_kernel("STRIDED_SLICE", "SLICE")
def _litert_slice(k):
    return slice_configs(k.input_shapes[0], k.output_shapes[:1])


@litert_kernel("SPLIT", "SPLIT_V")
def _litert_split(k):
    data = max(k.input_shapes, key=prod)  # SPLIT: (axis, x); SPLIT_V: (x, sizes, axis)
    return slice_configs(data, k.output_shapes)


@keras_layer("Permute", "ops.Transpose")
def _keras_transpose(op: Op):
    return [("transpose", transpose_config(op.input_shapes[0], op.output_shape))]


@keras_layer("ops.GetItem", "ops.Slice")
def _keras_slice(op: Op):
    return slice_configs(op.input_shapes[0], [op.output_shape])


@keras_layer("ops.Split")
def _keras_split(op: Op):
    return slice_configs(op.input_shapes[0], op.output_shapes)
