"""Probabilistic channel gates (LogisticSigmoid / FiGS) and a graph rewriter that inserts them.

`ProbabilisticGate` follows "Fine-Grained Stochastic Architecture Search" (FiGS,
arXiv:2006.09581) and MorphNet's ``LogisticSigmoidGating``: every channel ``c`` has a
trainable log-odds ``l_c`` (initialised to 2.5, i.e. a 92% keep probability).

* Training: draw one logistic sample per channel, ``n = log(u) - log(1 - u)`` with
  ``u ~ U(eps, 1 - eps)``, form the relaxed mask ``s = sigmoid((l + n) / tau)`` and the hard
  mask ``h = 1[s > 0.5] = 1[l + n > 0]``. The forward pass uses ``h`` (straight-through
  estimator: ``mask = stop_gradient(h - s) + s``), so the output is exactly ``x`` or ``0``
  per channel while the gradient flows to ``l`` through ``s``. ``P(h_c = 1) = sigmoid(l_c)``.
* Inference: ``mask = 1[l > 0]`` (deterministic, no noise).
* A channel is *alive* when ``sigmoid(l) >= alive_threshold`` (default 0.1).

The noise is sampled per channel and shared across the batch (and the spatial axes), as
in MorphNet, so a sampled mask is an architecture, not a per-example dropout pattern.

Temperature: with the straight-through estimator the forward value does not depend on
``tau``; ``tau`` only scales the surrogate gradient ``s (1 - s) / tau``. MorphNet's
non-straight-through op defaults to ``tau = 0.001`` (where ``tau`` also shapes the forward
mask); for the straight-through form used here such a small value makes the gradient
vanish almost everywhere, so the default is ``tau = 0.5``, a moderately sharp relaxation.

`insert_gates(model)` returns a new functional model that reuses the original layers (same
weight variables) with a gate after the activation that follows each Conv/Dense layer.
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np
from keras import ops

from latency_lab.keras_walker import (
    activation_name,
    calls,
    functional_of,
    is_model,
    pack_inputs,
    pack_outputs,
    walk,
)
from latency_lab.errors import InvalidArgumentError
from regularizers.grouping import ATTENTION_PROJECTIONS

__all__ = ["ProbabilisticGate", "GatedMultiHeadAttention", "insert_gates", "gate_layers",
           "copy_back_attention"]

# Bounds for the uniform sample behind the logistic noise; keeps log(u) and log(1 - u)
# finite in float32 (|n| <= ~13.8).
_UNIFORM_EPS = 1e-6


# ------------------------------------------------------------------ argument validation
def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_positive_float(name, value):
    if not _is_real(value) or math.isnan(value) or math.isinf(value) or value <= 0:
        raise InvalidArgumentError(
            f"Invalid value for argument `{name}`: expected a positive float, "
            f"received {name}={value!r}."
        )
    return float(value)


def _check_probability(name, value):
    if not _is_real(value) or math.isnan(value) or not 0.0 < value < 1.0:
        raise InvalidArgumentError(
            f"Invalid value for argument `{name}`: expected a float strictly between "
            f"0 and 1, received {name}={value!r}."
        )
    return float(value)


def _check_finite_float(name, value):
    if not _is_real(value) or math.isnan(value) or math.isinf(value):
        raise InvalidArgumentError(
            f"Invalid value for argument `{name}`: expected a finite float, "
            f"received {name}={value!r}."
        )
    return float(value)


def _check_seed(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidArgumentError(
            "Invalid value for argument `seed`: expected None or a non-negative int, "
            f"received seed={value!r}."
        )
    return int(value)


def _check_axis(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(
            f"Invalid value for argument `axis`: expected an int, received axis={value!r}."
        )
    return int(value)


# ------------------------------------------------------------------------------ the gate
@keras.saving.register_keras_serializable(package="latency_lab")
class ProbabilisticGate(keras.layers.Layer):
    """Per-channel stochastic on/off gate with trainable log-odds (FiGS / LogisticSigmoid).

    Args:
        init_logit: initial log-odds of every channel (default 2.5, keep probability
            ``sigmoid(2.5) ~= 0.924``).
        temperature: ``tau > 0`` of the relaxed mask ``sigmoid((l + n) / tau)``; only
            scales the straight-through gradient (default 0.5, see module docstring).
        alive_threshold: a channel counts as alive when ``sigmoid(l) >= alive_threshold``;
            strictly between 0 and 1 (default 0.1).
        seed: optional int seed of the layer's `keras.random.SeedGenerator`.
        axis: channel axis of the input (default -1, channels last).
        **kwargs: base `keras.layers.Layer` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: tensor whose ``axis`` dimension is the channel count ``C``.
        training: Python bool; ``True`` samples a hard mask, otherwise ``1[l > 0]``.

    The ``logits`` weight (shape ``[C]``) is always float32 and is not autocast under a
    mixed-precision policy; the mask is cast to the input dtype before multiplying.
    """

    def __init__(
        self,
        init_logit=2.5,
        temperature=0.5,
        alive_threshold=0.1,
        seed=None,
        axis=-1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.init_logit = _check_finite_float("init_logit", init_logit)
        self.temperature = _check_positive_float("temperature", temperature)
        self.alive_threshold = _check_probability("alive_threshold", alive_threshold)
        self.seed = _check_seed(seed)
        self.axis = _check_axis(axis)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="gate_seed")
        self.supports_masking = True
        self.logits = None

    # --------------------------------------------------------------------------- build
    def build(self, input_shape):
        rank = len(input_shape)
        axis = self.axis if self.axis >= 0 else rank + self.axis
        if not 0 <= axis < rank:
            raise InvalidArgumentError(
                f"ProbabilisticGate '{self.name}': axis={self.axis} is out of range for an "
                f"input of shape {tuple(input_shape)}; pass the channel axis of the input."
            )
        channels = input_shape[axis]
        if channels is None:
            raise InvalidArgumentError(
                f"ProbabilisticGate '{self.name}': the channel dimension (axis={self.axis}) "
                f"of input shape {tuple(input_shape)} must be known to create the logits."
            )
        self._channel_axis = axis
        self._rank = rank
        self.logits = self.add_weight(
            name="logits",
            shape=(int(channels),),
            initializer=keras.initializers.Constant(self.init_logit),
            dtype="float32",
            trainable=True,
            autocast=False,
        )

    # ---------------------------------------------------------------------------- call
    def _broadcast(self, mask):
        if self._channel_axis == self._rank - 1:
            return mask  # [C] broadcasts against [..., C]
        shape = [1] * self._rank
        shape[self._channel_axis] = -1
        return ops.reshape(mask, shape)

    def sample_mask(self):
        """One straight-through training mask, float32 of shape ``[C]`` (values 0 or 1)."""
        self._require_built("sample_mask")
        logits = ops.convert_to_tensor(self.logits, dtype="float32")
        u = keras.random.uniform(
            ops.shape(logits),
            minval=_UNIFORM_EPS,
            maxval=1.0 - _UNIFORM_EPS,
            dtype="float32",
            seed=self.seed_generator,
        )
        noise = ops.log(u) - ops.log(1.0 - u)
        soft = ops.sigmoid((logits + noise) / self.temperature)
        hard = ops.cast(ops.greater(soft, 0.5), "float32")
        return ops.stop_gradient(hard - soft) + soft

    def inference_mask(self):
        """Deterministic inference mask ``1[logits > 0]``, float32 of shape ``[C]``."""
        self._require_built("inference_mask")
        return ops.cast(ops.greater(self.logits, 0.0), "float32")

    def call(self, inputs, training=None):
        mask = self.sample_mask() if training else self.inference_mask()
        mask = ops.cast(self._broadcast(mask), inputs.dtype)
        return inputs * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    # ------------------------------------------------------------------- inspection
    def _require_built(self, what):
        if self.logits is None:
            raise InvalidArgumentError(
                f"ProbabilisticGate '{self.name}' has no logits yet: call the layer on an "
                f"input (or build it) before using `{what}()`."
            )

    def probabilities(self):
        """Keep probabilities ``sigmoid(logits)``, float32 tensor of shape ``[C]``."""
        self._require_built("probabilities")
        return ops.sigmoid(ops.convert_to_tensor(self.logits, dtype="float32"))

    def alive_mask(self):
        """Boolean tensor ``[C]``: ``probabilities() >= alive_threshold``."""
        return ops.greater_equal(self.probabilities(), self.alive_threshold)

    def alive_count(self):
        """Number of alive channels as a Python int."""
        return int(np.sum(ops.convert_to_numpy(self.alive_mask())))

    # --------------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "init_logit": self.init_logit,
                "temperature": self.temperature,
                "alive_threshold": self.alive_threshold,
                "seed": self.seed,
                "axis": self.axis,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # The base implementation deserializes a dtype-policy dict before calling cls().
        return super().from_config(dict(config))


# ------------------------------------------------------------------- attention heads
@keras.saving.register_keras_serializable(package="latency_lab")
class GatedMultiHeadAttention(keras.layers.MultiHeadAttention):
    """A MultiHeadAttention whose heads are gated: a `ProbabilisticGate` over the heads
    axis (``head_gate``, one logit per head) multiplies each head's context A.V before
    the output projection, so a closed gate removes exactly that head's contribution
    (what `apply_structure` removes with its q, k, v columns and output rows). The
    LogisticSigmoid regularizer reads its probabilities as the head group's vector.

    Made by `insert_gates` from a MultiHeadAttention (its config and weights); the
    gate is applied in `_compute_attention`, the method Keras documents for
    subclasses to override. Gate arguments as `ProbabilisticGate`'s, the seed as
    ``gate_seed`` (``seed`` is the attention dropout's).
    """

    def __init__(self, num_heads, key_dim, init_logit=2.5, temperature=0.5,
                 alive_threshold=0.1, gate_seed=None, **kwargs):
        super().__init__(num_heads, key_dim, **kwargs)
        self.head_gate = ProbabilisticGate(init_logit=init_logit, temperature=temperature,
                                           alive_threshold=alive_threshold, seed=gate_seed,
                                           axis=-2, name="head_gate")

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        # the context is (batch, query positions..., heads, value_dim)
        self.head_gate.build((*query_shape[:-1], self.num_heads, self.value_dim))

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, **kwargs):
        context, scores = super()._compute_attention(
            query, key, value, attention_mask, training, return_attention_scores, **kwargs)
        return self.head_gate(context, training=training), scores

    def probabilities(self):
        """Keep probability of each head, float32 ``[num_heads]``."""
        return self.head_gate.probabilities()

    def get_config(self):
        gate = self.head_gate
        return {**super().get_config(), "init_logit": gate.init_logit,
                "temperature": gate.temperature, "alive_threshold": gate.alive_threshold,
                "gate_seed": gate.seed}


def _gated_attention(layer, name, seed, gate_kwargs):
    """A GatedMultiHeadAttention with `layer`'s config (built and given its weights by
    `_copy_attention_weights` once called)."""
    config = {**layer.get_config(), **gate_kwargs, "gate_seed": seed, "name": name}
    return GatedMultiHeadAttention.from_config(config)


def _copy_attention_weights(old, new):
    for _, part, _ in ATTENTION_PROJECTIONS:
        o, n = getattr(old, part), getattr(new, part)
        n.kernel.assign(o.kernel)
        if o.bias is not None:
            n.bias.assign(o.bias)


def copy_back_attention(gated_model, model) -> int:
    """Copy the weights of each GatedMultiHeadAttention of `gated_model` (made by
    `insert_gates`, which copies rather than shares attention weights) into the
    same-named MultiHeadAttention of `model`, so training the gated model trained
    `model` whole. Returns how many layers were copied."""
    copied = 0
    for layer in gated_model.layers:
        if isinstance(layer, GatedMultiHeadAttention):
            _copy_attention_weights(layer, model.get_layer(layer.name))
            copied += 1
    return copied


# ----------------------------------------------------------------------- insert_gates
_SOURCE_TYPES = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
# Layers allowed between a conv/dense and its activation (per-channel affine only).
_PASS_THROUGH_TYPES = (keras.layers.BatchNormalization,)
_ACTIVATION_LAYER_TYPES = (
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
)
# Activations that mix channels (or do nothing) are not gating points.
_NOT_ELEMENTWISE = ("linear", "softmax", "log_softmax")
_AFTER_CHOICES = ("activation", "linear")


def _is_nonlinear_activation(fn):
    """True for an element-wise non-linearity (a gating point), given a layer's
    `activation` callable; None and linear/softmax are not."""
    if fn is None:
        return False
    try:
        serialized = keras.activations.serialize(fn)
    except Exception:  # custom callables: treat as an element-wise non-linearity
        serialized = getattr(fn, "__name__", "custom")
    if isinstance(serialized, dict) and not isinstance(serialized.get("config"), str):
        return True  # an activation object (e.g. a layer passed as activation=)
    return activation_name(serialized) not in _NOT_ELEMENTWISE


def _is_activation_layer(op):
    if isinstance(op, _ACTIVATION_LAYER_TYPES):
        return True
    if isinstance(op, keras.layers.Activation):
        return _is_nonlinear_activation(op.activation)
    return False


def _channel_axis(layer):
    fmt = getattr(layer, "data_format", None)
    return 1 if fmt == "channels_first" else -1


def _graph_to_rewrite(model):
    """The functional graph of ``model``, or a ValueError for unsupported models."""
    graph = functional_of(model)
    if graph is not None:
        return graph
    if isinstance(model, keras.Sequential):
        raise InvalidArgumentError(
            f"insert_gates: Sequential model '{model.name}' has no graph yet; give it "
            "an input first (start it with `keras.Input(shape)` or call "
            "`model.build(input_shape)`)."
        )
    if isinstance(model, keras.Model):
        raise InvalidArgumentError(
            f"insert_gates: model '{model.name}' ({type(model).__name__}) is a subclassed "
            "model; its graph cannot be rewritten. Build it as a functional "
            "(`keras.Model(inputs, outputs)`) or Sequential model, or add "
            "ProbabilisticGate layers in its `call()` by hand."
        )
    raise InvalidArgumentError(
        "insert_gates: expected a functional or Sequential keras.Model, received "
        f"{type(model).__name__}."
    )


def _plan_gates(graph, after, exclude):
    """Map id(tensor) -> (name_hint, channel_axis) for every tensor to gate."""
    nodes = list(calls(graph))
    consumers = {}
    for node in nodes:
        for t in node.inputs:
            consumers.setdefault(id(t), []).append(node)
    output_ids = {id(t) for t in graph.outputs}

    plan = {}
    for node in nodes:
        op = node.operation
        if not isinstance(op, _SOURCE_TYPES) or len(node.outputs) != 1:
            continue
        if op.name in exclude:
            continue
        axis = _channel_axis(op)
        tensor = node.outputs[0]
        if _is_nonlinear_activation(getattr(op, "activation", None)):
            # Fused activation: gate the conv output itself unless an explicit
            # activation layer follows (then that activation is the gating point).
            users = consumers.get(id(tensor), [])
            if not (len(users) == 1 and _is_activation_layer(users[0].operation)
                    and id(tensor) not in output_ids):
                if "activation" in after and id(tensor) not in output_ids:
                    plan[id(tensor)] = (op.name, axis)
                continue
        last_name = op.name
        # Walk conv -> [BN ...] -> activation along single-consumer edges.
        while True:
            users = consumers.get(id(tensor), [])
            if id(tensor) in output_ids or len(users) != 1:
                nxt = None
            else:
                nxt = users[0]
            if nxt is not None and isinstance(nxt.operation, _PASS_THROUGH_TYPES) \
                    and len(nxt.outputs) == 1:
                tensor = nxt.outputs[0]
                last_name = nxt.operation.name
                continue
            if nxt is not None and _is_activation_layer(nxt.operation) \
                    and len(nxt.outputs) == 1:
                act_tensor = nxt.outputs[0]
                if ("activation" in after and id(act_tensor) not in output_ids
                        and nxt.operation.name not in exclude):
                    plan[id(act_tensor)] = (nxt.operation.name, axis)
                break
            # No activation follows (e.g. the last conv of a residual branch).
            if ("linear" in after and id(tensor) not in output_ids
                    and last_name not in exclude):
                plan[id(tensor)] = (last_name, axis)
            break
    return plan


def insert_gates(model, after=("activation",), exclude=(), heads=True, **gate_kwargs):
    """Return a new functional model with a `ProbabilisticGate` after each conv/dense block
    (and, with ``heads``, every MultiHeadAttention's heads gated).

    The graph of ``model`` (functional or Sequential) is walked node by node and every
    layer / `keras.ops` operation is called again on new symbolic tensors, so the new
    model **shares** the original layers and weight variables (training it trains them),
    except each MultiHeadAttention when ``heads``: it becomes a `GatedMultiHeadAttention`
    of the same name and config whose weights start as copies of the original's (a
    Keras layer's sublayers cannot be shared into another layer).

    Gating points, for every Dense, Conv{1,2,3}D, SeparableConv{1,2}D and
    Conv{1,2,3}DTranspose layer ``L`` (not DepthwiseConv: its channels follow its input):

    * ``"activation"`` in ``after`` (default): the activation that follows ``L``, possibly
      through BatchNormalization layers (``L -> BN -> ReLU``): an ``Activation`` layer with
      an element-wise non-linearity, ``ReLU``, ``LeakyReLU``, ``PReLU`` or ``ELU``. If no
      activation layer follows but ``L`` itself has a non-linear ``activation=``, the gate
      goes right after ``L``. The chain is followed only through tensors with a single
      consumer.
    * ``"linear"`` in ``after``: also gate ``L`` (or its trailing BN) when no activation
      follows, e.g. the last conv of a residual branch before an ``Add``.

    Known limitation: a gate here is not always where its channel last reaches a
    channel-mixing layer. After ``expand -> BN -> ReLU6 -> gate -> DepthwiseConv -> BN``
    (MobileNetV2), or a gated branch followed by ``Concatenate -> BN``, a closed gate's 0
    leaves that BN as ``beta - gamma * mean / std``, which still reaches the next conv,
    while the slim model has no such channel: gated and slim models then differ. The
    exact placement is the input of each channel-mixing consumer (conv/dense), after
    the per-channel chain (depthwise, BN, activation, padding, pooling) the group flows
    through; with several mixing consumers, one gate each (combined 1 - prod(1 - p)).

    Model outputs are never gated. ``exclude`` holds layer names; naming the conv/dense
    or its activation layer (or an attention layer) skips that gate. Gates are named
    ``f"{activation_layer_name}_gate"`` (or ``f"{layer_name}_gate"`` for a fused
    activation / "linear" point), with a numeric suffix if that name is taken.
    ``gate_kwargs`` go to every `ProbabilisticGate` (``init_logit``, ``temperature``,
    ``alive_threshold``, ``seed``; an int seed is offset per gate so gates draw
    independent noise).

    Raises:
        ValueError: for subclassed models, unbuilt Sequential models, nested models
            (flatten them first), unknown ``after`` values.
    """
    if isinstance(after, str):
        after = (after,)
    after = tuple(after)
    bad = [a for a in after if a not in _AFTER_CHOICES]
    if bad or not after:
        raise InvalidArgumentError(
            f"Invalid value for argument `after`: expected a non-empty subset of "
            f"{_AFTER_CHOICES}, received after={after!r}."
        )
    if isinstance(exclude, str):
        exclude = (exclude,)
    exclude = set(exclude)
    if "axis" in gate_kwargs:
        raise InvalidArgumentError(
            "insert_gates: do not pass `axis`; the channel axis of each gate is taken from "
            "the data_format of the layer it follows."
        )
    base_seed = gate_kwargs.pop("seed", None)
    # Validate the gate arguments once, up front, with the gate's own messages.
    ProbabilisticGate(seed=base_seed, **gate_kwargs)

    graph = _graph_to_rewrite(model)
    for op in graph.operations:
        if is_model(op):
            raise InvalidArgumentError(
                f"insert_gates: model '{model.name}' contains the nested model "
                f"'{op.name}'. Nested models are not supported; flatten it first (build "
                "one functional model by calling the inner model's layers directly on "
                "the outer tensors)."
            )

    plan = _plan_gates(graph, after, exclude)
    used_names = {op.name for op in graph.operations}
    gates_made = 0

    attention: dict[int, tuple] = {}  # id(original) -> (original, gated)

    def operation_for(op):
        """The layer to call: a gated copy of a MultiHeadAttention (one per layer)."""
        nonlocal gates_made
        if not (heads and type(op) is keras.layers.MultiHeadAttention
                and op.name not in exclude):
            return op
        if id(op) not in attention:
            seed = None if base_seed is None else base_seed + gates_made
            attention[id(op)] = (op, _gated_attention(op, op.name, seed, gate_kwargs))
            gates_made += 1
        return attention[id(op)][1]

    def visit(call, values):
        # Call each layer / keras.ops operation again on the new tensors, then gate.
        nonlocal gates_made
        args, kwargs = call.fill_in(values)
        outputs = keras.tree.flatten(operation_for(call.operation)(*args, **kwargs))
        for i, (old, new) in enumerate(zip(call.outputs, outputs)):
            if id(old) in plan:
                hint, axis = plan[id(old)]
                name = f"{hint}_gate"
                k = 1
                while name in used_names:
                    name = f"{hint}_gate_{k}"
                    k += 1
                used_names.add(name)
                seed = None if base_seed is None else base_seed + gates_made
                gate = ProbabilisticGate(name=name, axis=axis, seed=seed, **gate_kwargs)
                outputs[i] = gate(new)
                gates_made += 1
        return outputs

    inputs = list(graph.inputs)  # reuse the original Input tensors
    new_outputs = walk(graph, inputs, visit)
    for old, gated in attention.values():
        _copy_attention_weights(old, gated)
    return keras.Model(pack_inputs(graph, inputs), pack_outputs(graph, new_outputs),
                       name=f"{model.name}_gated")


def gate_layers(model):
    """All `ProbabilisticGate` layers of ``model`` (in graph order)."""
    return [layer for layer in model.layers if isinstance(layer, ProbabilisticGate)]
