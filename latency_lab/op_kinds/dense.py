"""Fully connected layers: rows x cin x cout, rows = every non-channel dimension."""

from __future__ import annotations

import math

from latency_lab.graph import Op
from latency_lab.op_kinds.activation import fused_activation_configs
from latency_lab.op_kinds.base import (Config, Dim, keras_layer, litert_kernel, OpKind,
                                       random_weights, Region, register, rows_and_channels,
                                       tile_features, weight_tensor)
from latency_lab.op_kinds.space import TOKEN_WIDTH, TOKENS

__all__ = ["Dense"]


@register
class Dense(OpKind):
    name = "dense"
    keys = ("rows", "cin", "cout")
    # up to a VGG head (25088 -> 4096, weights far past any L3), shrunk to the work caps
    space = {"rows": Dim(1, 512), "cin": Dim(1, 32768), "cout": Dim(1, 8192)}
    # a transformer's projections and MLPs: no harvested family has token-wise GEMMs
    regions = {"tokens": Region({"rows": TOKENS, "cin": TOKEN_WIDTH, "cout": TOKEN_WIDTH})}
    in_channel_keys = ("cin",)
    step_channels = ("cout", 1.0)
    step_rows = "rows"  # XNNPACK's GEMM tiles (mr; one row has a kernel of its own)
    # 8: a quarter of it goes to the token-wise region (was 6 before it had one)
    table_share = 8
    wide_tile_flag = True  # `predictors.featurize`
    weights_term = 2  # in `base_terms`

    def to_ir(self, c: Config) -> Op:
        return Op("dense", "Dense", ["x"], [(c["rows"], c["cin"])], [(c["rows"], c["cout"])],
                  {"use_bias": True})

    def build(self, c: Config, rng):
        import keras

        kernel, bias = random_weights(rng, c["cin"], c["cout"]), random_weights(rng, c["cout"])

        def fn(x):
            return keras.ops.matmul(x, weight_tensor(kernel)) + weight_tensor(bias)

        return [(c["rows"], c["cin"])], fn

    def base_terms(self, c: Config) -> list[float]:
        """A GEMM's cost: a fixed cost per call, its input read (rows x cin), its
        packed weights streamed (cin x cout; the lookup reads them at the weight-
        streaming curve's bandwidth, `weights_term`), the multiply-adds (rows x cin x
        cout, cout in whole steps) and its output written (rows x cout). On the
        roofline base the lookup put a transformer's token-wise layers high. Fresh
        EPYC profile (fresh9), roofline base -> these terms: the dense kernels of 12
        development transformers timed alone (94 kernels) +4.4% -> +2.2%
        time-weighted, 32 -> 40% within +-5%; the 24 development transformers on
        stored measurements 12/54% -> 25/71% within +-5/+-10%, the CNN sets the same
        or better. 5-fold CV on the profile's own 75 dense samples, mostly random
        shapes, got worse: RMSPE 13.0 -> 15.9%, within +-10% 72 -> 61%."""
        rows, cin, cout = c["rows"], c["cin"], c["cout"]
        return [1.0, float(rows * cin), float(cin * cout), float(rows * cin * cout),
                float(rows * cout)]

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Classifier heads: one row over weights from 1 MB to 64 MB, where a
        one-row dense is a stream of its weights from L2, L3 or DRAM. The space's
        Latin hypercube, shrunk to the work caps, gave one sample past 8 MB in a
        58-sample table, and the regressor missed the cache levels' steps by -28%
        to +53% on single layers. Past 64 MB (VGG's 25088 -> 4096 is 411 MB) the
        bandwidth is DRAM's, which the lookup's base reads from the weight-streaming
        curve; samples up to 190 MB made a profile 1044 s long (with other work on
        the machine) against 584 s. Plus a few GEMMs of many rows (token-wise
        projections and MLPs)."""
        weights_mb = (2, 32) if quick else (1, 4, 12, 24, 40, 64)
        out = []
        for mb in weights_mb:
            cout = 1000 if mb < 40 else 4000
            out.append(dict(rows=1, cin=max(1, int(mb * 2**20 / 4 / cout)), cout=cout))
        # token-wise layers (a transformer's projections and MLPs): GEMMs of many rows
        if not quick:
            out += [dict(rows=r, cin=ci, cout=co) for r in (16, 96)
                    for ci, co in ((512, 2048), (1536, 384))]
            out.append(dict(rows=256, cin=384, cout=1536))
        return out

    def features(self, cfg: Config, categories, channel_tile):
        """Rows, cin, cout and the weight bytes: a one-row dense streams its weights
        once, so its time follows where a matrix of that size lives in the cache
        hierarchy (5-fold CV on the EPYC profile: RMSPE 24.6 -> 16.8%)."""
        feats = [math.log(max(cfg[k], 1)) for k in ("rows", "cin", "cout")]
        feats.append(math.log(max(4.0 * cfg["cin"] * cfg["cout"], 1.0)))
        if channel_tile:
            feats.extend(tile_features(cfg["cout"], channel_tile))
        return feats


@keras_layer("Dense")
def _keras_dense(op: Op):
    x = op.input_shapes[0]
    rows, _ = rows_and_channels(x)
    return [("dense", dict(rows=rows, cin=int(x[-1]), cout=int(op.output_shape[-1])))] \
        + fused_activation_configs(op)


@litert_kernel("FULLY_CONNECTED")
def _litert_dense(k):
    x, wt = k.input_shapes[0], k.input_shapes[1]
    cout, cin = wt
    rows = math.prod(x) // cin
    return [("dense", dict(rows=rows, cin=cin, cout=cout))]
