"""Gathers of rows of a table: an Embedding's lookup of `n` token ids in a `vocab` x
`c` table of weights. LiteRT runs Keras' lookup (`keras.ops.take`, what Embedding
calls) as LESS, ADD and SELECT on the int32 ids (negative ids wrap around:
where(i < 0, i + vocab, i)) and a GATHER of the table's rows; the microbenchmark is
that same call, so its time includes the three small integer kernels, which map to
nothing of their own (`index_arithmetic`).

The microbenchmark's input is the ids (`IndexInput`: int32, uniform in [0, vocab)),
the table a weight (`weight_tensor`)."""

from __future__ import annotations

import math
from typing import Any

from latency_lab.errors import UnsupportedOpError
from latency_lab.graph import Op
from latency_lab.op_kinds.base import (MAX_SAMPLE_BYTES, Config, Dim,
                                       IndexInput, OpKind, keras_layer, litert_kernel,
                                       random_weights, register, weight_tensor)

__all__ = ["Gather", "INDEX_DTYPES", "index_arithmetic", "gather_config"]

INDEX_DTYPES = frozenset({"int32", "int64"})


@register
class Gather(OpKind):
    name = "gather"
    keys = ("n", "c", "vocab")
    # up to 4096 ids of 4096 features out of a 50k-token vocabulary (GPT-2's 50257),
    # the table shrunk to the byte cap
    space = {"n": Dim(1, 4096), "c": Dim(1, 4096), "vocab": Dim(8, 51200)}
    table_share = 1

    def to_ir(self, c: Config) -> Op:
        # A copy of n rows of c, each read and written once (the table's other rows are
        # not read): the cost registry's work of a basic slice with that output. The
        # ids are its input (the table is a weight, streamed n rows at a time:
        # `weight_bytes`).
        return Op("gather", "ops.GetItem", ["ids"], [(1, c["n"])], [(1, c["n"], c["c"])], {})

    def weight_bytes(self, config: Config) -> float:
        """The rows read (a gather streams n rows of the table, not the table)."""
        return 4.0 * config["n"] * config["c"]

    def fit_work(self, cfg: Config, max_flops: float | None = None,
                 max_bytes: float = MAX_SAMPLE_BYTES) -> Config:
        """As `OpKind.fit_work`, and the table cut to `max_bytes` of weights (fewer
        rows; 50k x 4096 float32 is 800 MB)."""
        cfg = super().fit_work(cfg, max_flops, max_bytes)
        cfg["vocab"] = max(1, min(cfg["vocab"], int(max_bytes // (4 * cfg["c"]))))
        return cfg

    def build(self, c: Config, rng):
        import keras

        table = random_weights(rng, c["vocab"], c["c"])

        def fn(ids):
            return keras.ops.take(weight_tensor(table), ids, axis=0)

        return [IndexInput((1, c["n"]), high=c["vocab"])], fn

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Token embeddings of small text encoders: BERT-tiny and BERT-mini (30522
        tokens of 128 and 256) at 128 and 512 tokens, and a 50k-token vocabulary."""
        shapes = ((128, 128, 30522),) if quick else (
            (128, 128, 30522), (128, 256, 30522), (512, 256, 30522), (16, 64, 1000),
            (1024, 512, 50257))
        return [self.fit_work(dict(n=n, c=d, vocab=v)) for n, d, v in shapes]


def gather_config(table_shape, ids_shape, axis: int = 0) -> Config | None:
    """The sample of a gather of `ids_shape` ids along `axis` of a table of
    `table_shape`: rows of everything after the axis; None when axes before it are not
    all 1 (a gather of columns, strided: no microbenchmark)."""
    table = [int(d) for d in table_shape]
    axis = int(axis) % max(len(table), 1)
    if not table or math.prod(table[:axis]) != 1:
        return None
    return dict(n=max(1, math.prod(int(d) for d in ids_shape)),
                c=max(1, math.prod(table[axis + 1:])), vocab=max(1, table[axis]))


def index_arithmetic(k: Any) -> bool:
    """True for a kernel on integer tensors only (booleans aside): Keras' lookup runs
    LESS, ADD and SELECT on the ids before its GATHER, and the gather sample times
    them with it. Any such kernel is charged nothing: integer ids and positions are a
    few elements beside the float work of a network."""
    dtypes = [d for d in (getattr(k, "input_dtypes", None) or []) if d != "bool"]
    return bool(dtypes) and all(d in INDEX_DTYPES for d in dtypes)


@litert_kernel("GATHER")
def _litert_gather(k):
    """A gather of rows (axis 0, or axes before it of size 1); another gather is left
    to the roofline (GATHER is in `op_kinds.ROOFLINE_KERNELS`)."""
    if int(k.options.get("batchDims", 0) or 0):
        return None
    cfg = gather_config(k.input_shapes[0], k.input_shapes[1], k.options.get("axis", 0) or 0)
    return None if cfg is None else [("gather", cfg)]


@litert_kernel("LESS", "SELECT", "SELECT_V2")
def _litert_index_ops(k):
    """Integer index arithmetic: timed in the gather sample (`index_arithmetic`); on
    float tensors (a mask's select) left to the roofline, or an error for a LESS."""
    return [] if index_arithmetic(k) else None


@keras_layer("Embedding")
def _keras_embedding(op: Op):
    vocab = op.attrs.get("input_dim")
    if vocab is None:
        raise UnsupportedOpError(
            f"layer {op.name!r} (Embedding) has no 'input_dim' attribute (its vocabulary "
            "size), which its gather sample needs; build the graph with "
            "latency_lab.keras_graph.from_keras, or give attrs['input_dim'].")
    return [("gather", gather_config((int(vocab), int(op.output_shape[-1])),
                                     op.input_shapes[0]))]
