"""Channel concatenation, timed as pairwise copies: a k-way concat is k-1 concats of
growing width."""

from __future__ import annotations

from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Dim, Config, OpKind, kernel_hw, keras_layer, layer_hw,
                                       litert_kernel, register)

__all__ = ["Concat", "pairwise_concat"]


@register
class Concat(OpKind):
    name = "concat"
    keys = ("h", "w", "c1", "c2")
    streams = True
    space = {"h": Dim(1, 320), "c1": Dim(1, 2048), "c2": Dim(1, 2048)}
    table_share = 2
    moved_term = 2  # in `base_terms`

    def to_ir(self, c: Config) -> Op:
        a, b = (1, c["h"], c["w"], c["c1"]), (1, c["h"], c["w"], c["c2"])
        return Op("concat", "Concatenate", ["x", "y"], [a, b],
                  [(1, c["h"], c["w"], c["c1"] + c["c2"])], {"axis": -1})

    def base_terms(self, c: Config) -> list[float]:
        """A copy of two runs per pixel: a fixed cost per call, one per run, and the
        bytes it moves (read at the bandwidth of the cache level they fit in,
        `moved_term`). On the roofline base, keyed on c1 and c2, a table of
        DenseNet's splits (500 + 32 channels) put ShuffleNet's halves (100 + 100 at
        27x27) at 5x their time alone (Xeon VM)."""
        return [1.0, 2.0 * c["h"] * c["w"], float(self.work(c).bytes_total)]

    def build(self, c: Config, rng):
        import keras

        a, b = (1, c["h"], c["w"], c["c1"]), (1, c["h"], c["w"], c["c2"])
        return [a, b], lambda x, y: keras.ops.concatenate([x, y], axis=-1)


def pairwise_concat(h: int, w: int, chans) -> list[tuple[str, Config]]:
    """A concat of `chans` channels as pairwise copies of growing width."""
    first, out = chans[0], []
    for c in chans[1:]:
        out.append(("concat", dict(h=h, w=w, c1=first, c2=c)))
        first += c
    return out


@keras_layer("Concatenate")
def _keras_concat(op: Op):
    oh, ow = layer_hw(op.output_shape)
    return pairwise_concat(oh, ow, [int(s[-1]) for s in op.input_shapes])


@litert_kernel("CONCATENATION")
def _litert_concat(k):
    h, w = kernel_hw(k.output_shapes[0])
    return pairwise_concat(h, w, [s[-1] for s in k.input_shapes])
