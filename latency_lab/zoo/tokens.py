"""The learned tokens of a transformer that Keras has no layer for: a class token and
a distillation token prepended to the sequence, and a learned positional embedding
added to it. Each is a small serializable layer plus its entry in the cost registry.
The cost rules are registered when this module is imported; the Keras classes and the
positional embedding's channel grouping (`regularizers.grouping.register_pass_through`)
on first use (`token_layers`, or a name imported from here), so the import stays free
of Keras. `latency-lab ... --import latency_lab.zoo.tokens` resolves the module's public
names, which registers them; in Python load with `custom_objects=custom_objects()`.

How they are costed (per alive channel A of the sequence, T tokens in, T' out):
- ClassToken / DistillationToken: the copy of a concatenation (no FLOPs): reads the
  T x A input and its `count` x A token weights, writes T' x A; params count x A.
  LiteRT runs it as one CONCATENATION (the token a constant at a fixed batch size).
- PositionEmbedding: an add of a T x A table (T x A FLOPs), reads the input and the
  table, writes the output; params T x A. LiteRT runs it as one ADD of a constant.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from latency_lab.costs import DATA, ELEMENTWISE, OpCost, register
from latency_lab.graph import Op, dtype_bytes, positions

__all__ = ["ClassToken", "DistillationToken", "PositionEmbedding", "LAYER_NAMES",
           "token_layers", "custom_objects", "token_cost", "position_embedding_cost"]

LAYER_NAMES = ("ClassToken", "DistillationToken", "PositionEmbedding")


@lru_cache(maxsize=None)
def token_layers() -> dict[str, type]:
    """{name: class} of the token layers, defined (and registered with Keras and, all
    three acting channel by channel, with the grouping) on first use."""
    import keras

    from regularizers.grouping import register_pass_through

    register_pass_through("PositionEmbedding", why="adds a learned per-position, per-channel table")
    register_pass_through("ClassToken", "DistillationToken",
                          why="prepends learned tokens of the same channels (one value per "
                              "channel and token): a concat along the tokens axis")

    @keras.saving.register_keras_serializable(package="latency_lab_zoo")
    class ClassToken(keras.layers.Layer):
        """Prepends `count` learned tokens to a (batch, tokens, channels) sequence
        (ViT's [CLS]); the output has tokens + count rows."""

        def __init__(self, count: int = 1, **kwargs):
            super().__init__(**kwargs)
            self.count = int(count)

        def build(self, input_shape):
            self.token = self.add_weight(shape=(1, self.count, int(input_shape[-1])),
                                         initializer="zeros", name="token")

        def call(self, x):
            batch = keras.ops.shape(x)[0]
            token = keras.ops.broadcast_to(keras.ops.cast(self.token, x.dtype),
                                           (batch, self.count, keras.ops.shape(x)[-1]))
            return keras.ops.concatenate([token, x], axis=1)

        def compute_output_shape(self, input_shape):
            rows = None if input_shape[1] is None else input_shape[1] + self.count
            return (input_shape[0], rows, input_shape[2])

        def get_config(self):
            return {**super().get_config(), "count": self.count}

    @keras.saving.register_keras_serializable(package="latency_lab_zoo")
    class DistillationToken(ClassToken):
        """DeiT's distillation token: a second learned token, prepended before the
        class token is (the sequence reads [CLS], [DIST], patches). A class of its own
        so that per-layer reports name it."""

    @keras.saving.register_keras_serializable(package="latency_lab_zoo")
    class PositionEmbedding(keras.layers.Layer):
        """Adds a learned (tokens, channels) table to a (batch, tokens, channels)
        sequence; a padding mask (Embedding(mask_zero=True)) passes through to the
        attention."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def build(self, input_shape):
            self.table = self.add_weight(shape=(1, int(input_shape[1]), int(input_shape[2])),
                                         initializer="zeros", name="table")

        def call(self, x):
            return x + keras.ops.cast(self.table, x.dtype)

        def compute_output_shape(self, input_shape):
            return input_shape

    return {"ClassToken": ClassToken, "DistillationToken": DistillationToken,
            "PositionEmbedding": PositionEmbedding}


def custom_objects() -> dict[str, type]:
    """For keras.saving.load_model(path, custom_objects=...) of a zoo transformer."""
    return {f"latency_lab_zoo>{name}": cls for name, cls in token_layers().items()}


def __getattr__(name: str) -> Any:
    if name in LAYER_NAMES:  # `from latency_lab.zoo.tokens import ClassToken`
        return token_layers()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _rows(shape) -> int:
    """Elements per channel (batch x tokens) of a channels-last shape."""
    return positions(tuple(shape), -1)


def _weight_bytes(op: Op) -> int:
    return dtype_bytes(op.attrs.get("weight_dtype", op.dtype))


@register("ClassToken", "DistillationToken", op_class=DATA)
def token_cost(op: Op, a_in, a_out):
    """The copy of a concatenation: no FLOPs; reads the input and the token weights,
    writes the longer sequence."""
    a = a_in[0]
    act = dtype_bytes(op.dtype)
    count = _rows(op.output_shape) - _rows(op.input_shapes[0])  # tokens x batch
    batch = int(op.output_shape[0])
    params = count // batch * a
    return OpCost(0, params, _rows(op.input_shapes[0]) * a * act + params * _weight_bytes(op),
                  _rows(op.output_shape) * a * act)


@register("PositionEmbedding", op_class=ELEMENTWISE)
def position_embedding_cost(op: Op, a_in, a_out):
    """One add per element; reads the input and the table, writes the output."""
    a = a_in[0]
    act = dtype_bytes(op.dtype)
    elems = _rows(op.input_shapes[0]) * a
    params = _rows(op.input_shapes[0]) // int(op.input_shapes[0][0]) * a
    return OpCost(elems, params, elems * act + params * _weight_bytes(op), elems * act)
