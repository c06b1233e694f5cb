"""Standalone activations, as LiteRT runs them (swish = LOGISTIC + MUL), and the
activation a conv or dense layer carries when the converter cannot fuse it."""

from __future__ import annotations


from latency_lab import costs
from latency_lab.graph import Op
from latency_lab.op_kinds.base import (Config, Dim, keras_layer, kernel_hw, layer_hw,
                                       litert_kernel, OpKind, register,
                                       rows_and_channels)
from latency_lab.op_kinds.softmax import softmax_configs
from latency_lab.op_kinds.space import token_region

__all__ = ["Activation", "ACTIVATIONS", "ACTIVATION_KERNELS", "FUSED_ACTIVATIONS",
           "fused_activation_configs", "activation_configs"]

# The last four no application family uses; user CNNs do, and an elementwise roofline
# at the table's median efficiency put them 2-3x off (EPYC VM: a LeakyReLU at 24x24x48
# measured 3.4 us, predicted 9.4 us).
ACTIVATIONS = ("relu", "relu6", "sigmoid", "swish", "hard_swish", "leaky_relu", "elu",
               "tanh", "gelu")
# LiteRT fuses these into the producing conv, add or mul kernel.
FUSED_ACTIVATIONS = {"relu", "relu6", "linear"}
# gelu_approximate (keras.ops.gelu's default, the tanh form) is timed by the exact
# gelu's samples, as before costs told the two apart: no sample of its own yet.
_ALIASES = {"silu": "swish", "hard_silu": "hard_swish", "hard_sigmoid": "hard_swish",
            "gelu_approximate": "gelu"}
# Standalone LiteRT activation kernels and the activation sample that times each.
ACTIVATION_KERNELS = {"LOGISTIC": "sigmoid", "HARD_SWISH": "hard_swish", "RELU": "relu",
                      "RELU6": "relu6", "LEAKY_RELU": "leaky_relu", "ELU": "elu",
                      "TANH": "tanh", "GELU": "gelu"}


@register
class Activation(OpKind):
    name = "activation"
    keys = ("h", "w", "c", "fn")
    streams = True
    space = {"h": Dim(1, 320), "c": Dim(1, 4096), "fn": Dim(choices=ACTIVATIONS)}
    regions = {"tokens": token_region("w", fn=Dim(choices=ACTIVATIONS))}
    categories = {"fn": ACTIVATIONS}
    table_share = 4

    def to_ir(self, c: Config) -> Op:
        shape = (1, c["h"], c["w"], c["c"])
        return Op("activation", "Activation", ["x"], [shape], [shape], {"activation": c["fn"]})

    def build(self, c: Config, rng):
        import keras

        f = {"relu": keras.ops.relu, "relu6": keras.ops.relu6, "sigmoid": keras.ops.sigmoid,
             "swish": keras.ops.silu, "hard_swish": keras.ops.hard_silu,
             "leaky_relu": keras.ops.leaky_relu, "elu": keras.ops.elu, "tanh": keras.ops.tanh,
             "gelu": lambda x: keras.ops.gelu(x, approximate=False)}[c["fn"]]  # Keras' default
        return [(1, c["h"], c["w"], c["c"])], f


def activation_configs(name: str, shape, *, standalone: bool = False
                       ) -> list[tuple[str, Config]]:
    """The activation `name` over a tensor of `shape`: [] when it has no sample, or
    when it is one LiteRT fuses into its producer (relu, relu6) unless `standalone`
    (an activation layer of its own under the keras runtime: XLA runs it as a loop,
    alone or with its elementwise neighbours, `kernels.keras`); a softmax (over the
    last axis) is timed by the softmax kind."""
    name = _ALIASES.get(name, name)
    if name == "softmax":
        return softmax_configs(shape, -1)
    if name not in ACTIVATIONS or (name in FUSED_ACTIVATIONS and not standalone):
        return []
    h, w = layer_hw(shape)
    return [("activation", dict(h=h, w=w, c=int(shape[-1]), fn=name))]


def fused_activation_configs(op: Op) -> list[tuple[str, Config]]:
    """The activation a conv or dense layer carries, when it cannot be fused."""
    name = op.attrs.get("activation") or "linear"
    if name in FUSED_ACTIVATIONS:
        return []
    return activation_configs(name, op.output_shape)


@keras_layer("Activation", "ReLU", "LeakyReLU", "ELU", "ops.Sigmoid", "ops.Silu",
             "ops.HardSilu", "ops.Tanh", "ops.Gelu")
def _keras_activation(op: Op):
    return activation_configs(costs.activation_name(op), op.output_shape, standalone=True)


def _kernel_activation(fn: str):
    def f(k):
        out = k.output_shapes[0]
        # NHWC, else every axis but the last as rows (a GELU over (1, T, C) tokens)
        rows, c = rows_and_channels(out)
        h, w = kernel_hw(out) if len(out) == 4 else (1, rows)
        return [("activation", dict(h=h, w=w, c=c, fn=fn))]

    return f


for _op, _fn in ACTIVATION_KERNELS.items():
    litert_kernel(_op)(_kernel_activation(_fn))
