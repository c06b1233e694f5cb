"""Samples that characterize the device rather than fill the lookup table: chains of
tiny ops (per-op and per-invocation overheads) and weight streaming (the bandwidth of
each memory level for weights)."""

from __future__ import annotations

from latency_lab.graph import Op
from latency_lab.op_kinds.base import Config, OpKind, random_weights, register, weight_tensor

__all__ = ["Chain", "WeightStream"]


@register
class Chain(OpKind):
    """`n` dependent tiny adds: time = per_invocation + n * per_op."""

    name = "chain"
    keys = ("n", "size")
    auxiliary = True

    def to_ir(self, c: Config) -> Op:
        shape = (1, c["size"])
        return Op("chain", "Add", ["x", "y"], [shape, shape], [shape], {})

    def build(self, c: Config, rng):
        import keras

        def fn(x):
            y = x
            for i in range(int(c["n"])):
                y = keras.ops.add(y, x) if i % 2 == 0 else keras.ops.multiply(y, x)
            return y

        return [(1, c["size"])], fn


@register
class WeightStream(OpKind):
    """`n` matrix-vector products with distinct c x c weights: time is the time to
    stream n*c*c*4 bytes of weights, from whichever memory level holds that many."""

    name = "weight_stream"
    keys = ("n", "c")
    auxiliary = True

    def to_ir(self, c: Config) -> Op:
        # The cost of one layer of the chain; the chain's bytes are n times its weights.
        return Op("weight_stream", "Dense", ["x"], [(1, c["c"])], [(1, c["c"])],
                  {"use_bias": False})

    def build(self, c: Config, rng):
        import keras

        mats = [random_weights(rng, c["c"], c["c"]) for _ in range(int(c["n"]))]

        def fn(x):
            y = x
            for m in mats:
                y = keras.ops.matmul(y, weight_tensor(m))
            return y

        return [(1, c["c"])], fn
