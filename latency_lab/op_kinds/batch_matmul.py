"""Batched matrix products of two activations: attention's Q.K^T and A.V, a keras.ops
matmul of two tensors. (A product with a weight matrix is a Dense layer and runs as
LiteRT's FULLY_CONNECTED: `dense`.)

A sample is b products of an m x k by a k x n matrix. LiteRT's BATCH_MATMUL takes
either operand transposed (adj_x, adj_y: Keras' attention computes Q.K^T so); the
sample times the plain product of the same sizes, which the kernel packs the same way
for both layouts."""

from __future__ import annotations

import math

from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Dim, Config, OpKind, keras_layer, litert_kernel, Region,
                                       register)
from latency_lab.op_kinds.space import HEAD_DIM, HEADS, TOKENS

__all__ = ["BatchMatmul", "batch_matmul_config"]


@register
class BatchMatmul(OpKind):
    name = "batch_matmul"
    keys = ("b", "m", "k", "n")
    space = {"b": Dim(1, 32), "m": Dim(1, 1024), "k": Dim(1, 1024), "n": Dim(1, 1024)}
    # attention's two products: Q.K^T (head dim in, as many columns as rows out) and
    # A.V (as many columns in as rows, head dim out)
    regions = {"scores": Region({"b": HEADS, "m": TOKENS, "k": HEAD_DIM}, ties={"n": ("m",)}),
               "context": Region({"b": HEADS, "m": TOKENS, "n": HEAD_DIM}, ties={"k": ("m",)})}
    # k follows the operands' shared (input) dimension, n the output's last one.
    in_channel_keys = ()
    # XNNPACK's batch GEMM computes output columns in whole steps of two channel tiles
    # (32 on x86, `predictors.channel_tile_for`): on the EPYC VM a 12 x 37x32 by 32x37
    # product took 23.1 us, the 12 x 37x37 by 37x32 one of the same multiply-adds
    # 13.9 us; steps of one tile fitted worse (5-fold CV on 37 samples). n is counted
    # in whole steps, as a dense layer's cout is (`step_channels`), and the base is the
    # GEMM's cost (`base_terms`).
    step_channels = ("n", 2.0)
    # every transformer's attention runs two per layer, and no harvested family has one
    table_share = 3

    def to_ir(self, c: Config) -> Op:
        return Op("batch_matmul", "ops.Matmul", ["x", "y"],
                  [(c["b"], c["m"], c["k"]), (c["b"], c["k"], c["n"])],
                  [(c["b"], c["m"], c["n"])], {})

    def build(self, c: Config, rng):
        import keras

        return ([(c["b"], c["m"], c["k"]), (c["b"], c["k"], c["n"])],
                lambda x, y: keras.ops.matmul(x, y))

    def base_terms(self, c: Config) -> list[float]:
        """Each of the b products is a GEMM whose right operand is packed at run time
        (k x n), then computed in tiles (m x k x n multiply-adds, n in whole steps),
        its m x n result written; plus a fixed cost per call and per product. The
        lookup's Gaussian process over log sizes alone, on a fresh EPYC profile's 37
        samples (5-fold CV), was 26-100% RMSPE depending on its features and restarts;
        this base fitted alone, 14% leave-one-out (84% within +-10%); under the
        process, the 28 attention-region samples read 86% within +-10% (21% on the
        roofline base)."""
        b, m, k, n = c["b"], c["m"], c["k"], c["n"]
        return [1.0, float(b), float(b * k * n), float(b * m * k * n), float(b * m * n)]

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Attention's products at the sizes small transformers have: heads x
        (sequence x head dim) x sequence for Q.K^T, heads x (sequence x sequence) x
        head dim for A.V."""
        shapes = ((4, 64, 32), (8, 196, 64)) if quick else (
            (2, 16, 32), (4, 64, 32), (3, 197, 64), (8, 196, 64), (12, 128, 64), (4, 256, 48))
        out = []
        for heads, seq, dim in shapes:
            out.append(dict(b=heads, m=seq, k=dim, n=seq))  # Q.K^T
            out.append(dict(b=heads, m=seq, k=seq, n=dim))  # A.V
        return out


def batch_matmul_config(x_shape, y_shape, adj_x: bool = False, adj_y: bool = False) -> Config:
    """The sample of a product of tensors (..., m, k) and (..., k, n), either given
    transposed; leading dimensions broadcast and count as the batch."""
    m, k = (x_shape[-1], x_shape[-2]) if adj_x else (x_shape[-2], x_shape[-1])
    n = y_shape[-2] if adj_y else y_shape[-1]
    batch = max(math.prod(int(d) for d in x_shape[:-2]), math.prod(int(d) for d in y_shape[:-2]))
    return dict(b=int(batch), m=int(m), k=int(k), n=int(n))


@keras_layer("ops.Matmul")
def _keras_matmul(op: Op):
    x, y = op.input_shapes[0], op.input_shapes[1]
    if len(x) < 2 or len(y) < 2:  # a vector operand: a dense-like product, roofline
        return []
    return [("batch_matmul", batch_matmul_config(x, y))]


@litert_kernel("BATCH_MATMUL")
def _litert_batch_matmul(k):
    x, y = k.input_shapes[0], k.input_shapes[1]
    return [("batch_matmul", batch_matmul_config(x, y, bool(k.options.get("adjX", False)),
                                                 bool(k.options.get("adjY", False))))]
