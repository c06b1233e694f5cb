"""Elementwise math of one tensor: rsqrt, sqrt, neg, exp, abs, square (a
LayerNormalization's 1 / sqrt(variance + eps) and -mean, RMS norms, hand-written
softmaxes). Each is a LiteRT kernel of its own, charged until now through the roofline
as elementwise work, one FLOP an element whatever the function (an exp is a polynomial
evaluation, a negation a sign flip), and the per-row tensors of a LayerNorm (tokens x
1) are small enough that a kernel's fixed cost is most of its time.

A sample is `fn` over `rows` x `c` elements (`c` the last axis, which follows the
layer's channels; a LayerNorm's per-row statistics have c = 1)."""

from __future__ import annotations


from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Config, Dim, keras_layer, litert_kernel, OpKind,
                                       register, rows_and_channels)
from latency_lab.op_kinds.space import token_region

__all__ = ["Unary", "UNARY_FUNCTIONS", "UNARY_KERNELS", "UNARY_KERAS_OPS", "unary_config"]

UNARY_FUNCTIONS = ("rsqrt", "sqrt", "neg", "exp", "abs", "square")
# The LiteRT kernel of each function, and the keras.ops call (IR type) that is it.
UNARY_KERNELS = {"RSQRT": "rsqrt", "SQRT": "sqrt", "NEG": "neg", "EXP": "exp", "ABS": "abs",
                 "SQUARE": "square"}
UNARY_KERAS_OPS = {"ops.Rsqrt": "rsqrt", "ops.Sqrt": "sqrt", "ops.Negative": "neg",
                   "ops.Exp": "exp", "ops.Absolute": "abs",
                   "ops.Square": "square"}


def _keras_fn(fn: str):
    import keras

    return {"rsqrt": keras.ops.rsqrt, "sqrt": keras.ops.sqrt, "neg": keras.ops.negative,
            "exp": keras.ops.exp, "abs": keras.ops.abs, "square": keras.ops.square}[fn]


@register
class Unary(OpKind):
    name = "unary"
    keys = ("rows", "c", "fn")
    streams = True
    space = {"rows": Dim(1, 65536), "c": Dim(1, 4096), "fn": Dim(choices=UNARY_FUNCTIONS)}
    regions = {"tokens": token_region(fn=Dim(choices=UNARY_FUNCTIONS))}
    categories = {"fn": UNARY_FUNCTIONS}
    table_share = 2

    def to_ir(self, c: Config) -> Op:
        # One pass over the tensor in the cost registry's terms (it has no unary math
        # types): a multiply by a constant reads and writes each element once, one
        # FLOP each.
        shape = (1, c["rows"], c["c"])
        return Op("unary", "ops.Multiply", ["x"], [shape], [shape], {"constant_operands": 1})

    def build(self, c: Config, rng):
        return [(1, c["rows"], c["c"])], _keras_fn(c["fn"])

    def coverage_configs(self, quick: bool) -> list[Config]:
        """A LayerNormalization's per-token statistics (rsqrt of the variance, the
        negated mean: tokens x 1) at ViT (197) and BERT (128) lengths, and each
        function over a token tensor of ViT-Ti's width."""
        out = [dict(rows=t, c=1, fn=fn) for t in ((197,) if quick else (197, 128, 1024))
               for fn in ("rsqrt", "neg")]
        if not quick:
            out += [dict(rows=197, c=192, fn=fn) for fn in UNARY_FUNCTIONS]
        return out


def unary_config(fn: str, shape) -> Config:
    """The sample of `fn` over a tensor of `shape` (rows = all but the last axis)."""
    rows, c = rows_and_channels(shape)
    return dict(rows=rows, c=c, fn=fn)


def _litert_unary(fn: str):
    def f(k):
        return [("unary", unary_config(fn, k.output_shapes[0]))]

    return f


for _op, _fn in UNARY_KERNELS.items():
    litert_kernel(_op)(_litert_unary(_fn))


@keras_layer(*UNARY_KERAS_OPS)
def _keras_unary(op: Op):
    return [("unary", unary_config(UNARY_KERAS_OPS[op.type], op.output_shape))]
