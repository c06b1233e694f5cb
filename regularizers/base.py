"""NetworkRegularizer: the cost-weighted channel regularizer (MorphNet style) and the
FLOP and model-size regularizers built on it.

For every costed op with cost C(A_in, A_out) (A = alive channel counts) the
regularization term is

    dC/dA_in * R_in + dC/dA_out * R_out        (at the current alive counts)

where R is the sum of the group regularization vectors over the op's input / output
channel segments (multipliers scale). For a bilinear cost C = c * A_in * A_out this is
c * (A_in * R_out + A_out * R_in). Depthwise convs (output channels = input channels,
C = c * A) get c * (R_in + R_out), following DESIGN.md / MorphNet. Alive counts carry no
gradient; R does. Frozen groups count in full and have R = 0.

Written with `keras.ops` and `keras.Variable`: the term is a tensor of the Keras backend
in use (TensorFlow, JAX or PyTorch), differentiable with its autodiff, so it works in
``model.fit`` and in custom loops (GradientTape, jax.grad over a StatelessScope, torch
autograd) alike. TensorFlow is imported only under the TensorFlow backend.

Everything about the graph (groups, which weights feed which group, the per-op channel
segments) is computed once in ``__init__``; a training step only evaluates the group
vectors, their alive counts and sums, and a fixed list of per-op products.

Extending (e.g. a latency regularizer):
    * ``costed_ops()``: the ops that have a cost (default: conv/dense/depthwise and
      attention, whose last alive-input count is its alive heads; return
      ``self.channel_graph.ops`` minus inputs to cost every kernel).
    * ``prepare_op(op) -> payload``: called once per costed op in ``__init__``; the
      result is stored in ``op.payload`` (e.g. a fitted per-op latency surrogate).
      Set the attributes it needs *before* calling ``super().__init__``.
    * ``op_cost(op, alive_in, alive_out)``: the cost of one op; ``alive_in`` is a list
      (one count per input tensor), ``alive_out`` the output count. Values are Python
      numbers or float tensors of the Keras backend (float64 where the backend has it;
      JAX without x64: float32); use only arithmetic (or keras.ops) on them.
    * ``op_cost_derivatives(op, alive_in, alive_out) -> (list d_in, d_out)``: default
      is the exact forward difference C(a + 1) - C(a) in each argument (exact for the
      bilinear FLOP / size costs); override with analytic derivatives of a smooth
      surrogate.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Iterable, Sequence

import keras
from keras import ops

import numpy as np

from latency_lab import costs
from regularizers.algorithms import ALGORITHMS, GroupAlgorithm, layers_by_op_name, make_algorithm
from regularizers.grouping import (
    take_sum,
    ChannelGraph,
    ChannelOp,
    Segment,
    alive_count,
    build_channel_graph,
)
from regularizers.structure import Structure
from latency_lab.errors import InvalidArgumentError

__all__ = ["NetworkRegularizer", "FlopsRegularizer", "ModelSizeRegularizer",
           "RegularizedLoss", "check_strength"]


# ------------------------------------------------------------------- validation


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_float(name: str, value: Any, *, lo: float | None = 0.0, hi: float | None = None,
                 expected: str = "a non-negative float") -> float:
    if not _is_real(value) or math.isnan(value) or math.isinf(value) \
            or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidArgumentError(
            f"Invalid value for argument `{name}`: expected {expected}, "
            f"received {value!r}."
        )
    return float(value)


def check_strength(strength: Any) -> float:
    return _check_float("strength", strength)


def _check_names(name: str, value: Any, allow_none: bool) -> tuple[str, ...] | None:
    if value is None:
        if allow_none:
            return None
        return ()
    if isinstance(value, str):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise InvalidArgumentError(
            f"Invalid value for argument `{name}`: expected a list of layer names, "
            f"received {value!r}."
        ) from None
    bad = [v for v in items if not isinstance(v, str)]
    if bad:
        raise InvalidArgumentError(
            f"Invalid value for argument `{name}`: expected a list of layer names (str), "
            f"received {value!r}."
        )
    return items


# ------------------------------------------------------------------ the regularizer


class NetworkRegularizer:
    """Base class of the FLOP, model-size (and latency) regularizers.

    Args:
        model: a built Keras Functional or Sequential model (nested models are
            flattened; subclassed models cannot be traced).
        algorithm: "gamma" (|gamma| of the BatchNormalization after each conv),
            "group_lasso" (kernel norms) or "logistic_sigmoid" (ProbabilisticGate
            probabilities; insert gates first with `regularizers.insert_gates`).
        threshold: a channel is alive when its vector value > threshold (gamma and
            group_lasso).
        l1_fraction: group_lasso mix f in (1 - f) * L2 + f * L1, in [0, 1].
        alive_threshold: logistic_sigmoid: alive when probability >= this, in (0, 1).
        input_boundary: layer names; they and everything upstream are never regularized.
        frozen_layers: layer names kept at full width (see `build_channel_graph`).
        input_shape: input size without batch, for models with variable input sizes.
        prune_residual_stream: regularize a transformer's residual stream width as one
            group (off by default: the slim model then only approximates the masked
            one; see `build_channel_graph`). The structures it exports record it, so
            `apply_structure` slims the stream too.
        target: target mode: the cost (in this regularizer's units) training should
            settle at. The strength becomes a variable (`strength_variable`) that
            `update_strength()` (or the `StrengthController` callback) adapts by dual
            ascent; see `update_strength`.
        target_rate: dual-ascent step size per update, > 0 (target mode only).

    Costs are per example (batch 1).
    """

    cost_name = "cost"
    _target_arg = "target"  # the argument name users pass the target as

    def __init__(
        self,
        model: Any,
        algorithm: str = "gamma",
        threshold: float = 1e-2,
        l1_fraction: float = 0.0,
        alive_threshold: float = 0.1,
        input_boundary: Sequence[str] | None = None,
        frozen_layers: Iterable[str] = (),
        input_shape: Sequence[int] | None = None,
        target: float | None = None,
        target_rate: float = 0.02,
        prune_residual_stream: bool = False,
    ):
        if algorithm not in ALGORITHMS:
            raise InvalidArgumentError(
                f"Invalid value for argument `algorithm`: expected one of "
                f"{list(ALGORITHMS)}, received {algorithm!r}."
            )
        self.algorithm = algorithm
        self.threshold = _check_float("threshold", threshold)
        self.l1_fraction = _check_float("l1_fraction", l1_fraction, hi=1.0,
                                        expected="a float in [0, 1]")
        self.alive_threshold = _check_float("alive_threshold", alive_threshold,
                                            expected="a float strictly between 0 and 1",
                                            hi=1.0)
        if not 0.0 < self.alive_threshold < 1.0:
            raise InvalidArgumentError(
                "Invalid value for argument `alive_threshold`: expected a float strictly "
                f"between 0 and 1, received {alive_threshold!r}."
            )
        self.input_boundary = _check_names("input_boundary", input_boundary, True)
        self.frozen_layers = _check_names("frozen_layers", frozen_layers, False)
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.target = None if target is None else _check_float(
            self._target_arg, target, lo=None, expected="a finite number > 0")
        if self.target is not None and self.target <= 0:
            raise InvalidArgumentError(
                f"Invalid value for argument `{self._target_arg}`: expected a finite number "
                f"> 0, received {target!r}.")
        self.target_rate = _check_float("target_rate", target_rate, lo=None,
                                        expected="a finite number > 0")
        if self.target_rate <= 0:
            raise InvalidArgumentError(
                "Invalid value for argument `target_rate`: expected a finite number > 0, "
                f"received {target_rate!r}.")
        self.strength_variable = None  # created by wrap_loss / init_strength in target mode
        if model is None:
            raise InvalidArgumentError(
                f"{type(self).__name__} needs a model: pass model=<keras.Model>."
            )
        self.model = model

        self.channel_graph: ChannelGraph = build_channel_graph(
            model, input_boundary=self.input_boundary, frozen_layers=self.frozen_layers,
            input_shape=self.input_shape, prune_residual_stream=prune_residual_stream)
        self.prune_residual_stream = bool(prune_residual_stream)
        self.graph = self.channel_graph.graph
        self._algo: GroupAlgorithm = make_algorithm(
            algorithm, self.channel_graph, layers_by_op_name(model),
            threshold=self.threshold, l1_fraction=self.l1_fraction,
            alive_threshold=self.alive_threshold)
        self._regularized = set(self._algo.regularized_groups)
        self._sizes = {gid: g.size for gid, g in self.channel_graph.groups.items()}

        ops = []
        for op in self.costed_ops():
            op = dataclasses.replace(op)
            op.payload = self.prepare_op(op)
            ops.append(op)
        self._ops: list[ChannelOp] = ops
        # Conv/dense and attention layers reported in the structure (one per Keras layer).
        self._structure_ops: dict[str, int] = {}
        self._structure_classes: dict[str, np.ndarray | None] = {}
        for op in self.channel_graph.structure_ops:  # a MultiHeadAttention: its heads
            self._structure_ops.setdefault(op.layer_name, op.structure_group)
            self._structure_classes.setdefault(op.layer_name, op.structure_classes)

    # ------------------------------------------------------------------ hooks
    def costed_ops(self) -> list[ChannelOp]:
        """Ops that carry a cost. Default: conv, dense and depthwise layers."""
        return self.channel_graph.costed_ops

    def prepare_op(self, op: ChannelOp) -> Any:
        """Per-op precomputation, once, stored in ``op.payload``. Default: None."""
        return None

    def op_cost(self, op: ChannelOp, alive_in: list, alive_out: Any) -> Any:
        """Cost of one op at the given alive counts (numbers or float64 tensors)."""
        raise NotImplementedError(f"{type(self).__name__} must implement op_cost")

    def op_cost_derivatives(self, op: ChannelOp, alive_in: list, alive_out: Any):
        """(list of dC/dA_in per input, dC/dA_out) at the given alive counts.

        Default: forward differences C(a + 1) - C(a), exact for costs linear in each
        count. Depthwise ops (C = c * A, one group in and out) return d_in = [c] and
        d_out = c, so the term is c * (R_in + R_out) as in MorphNet."""
        base = self.op_cost(op, alive_in, alive_out)
        d_out = self.op_cost(op, alive_in, alive_out + 1) - base
        if op.kind == "depthwise":
            return [d_out], d_out
        d_in = []
        for i in range(len(alive_in)):
            bumped = list(alive_in)
            bumped[i] = bumped[i] + 1
            d_in.append(self.op_cost(op, bumped, alive_out) - base)
        return d_in, d_out

    # ------------------------------------------------------------ per-step state
    def _group_state(self):
        """(alive counts by group, R by group) for this step; each carries its per-class
        values (0/1 alive masks, the vectors) in ``per_class`` for segments that hold
        some of a group's classes."""
        vectors = self._algo.group_vectors()
        alive = _PerGroup(self._sizes)
        reg = _PerGroup()
        dtype = _count_dtype()
        for gid, v in vectors.items():
            mask = ops.stop_gradient(ops.cast(self._algo.alive_mask(v), dtype))
            alive[gid] = ops.sum(mask)
            alive.per_class[gid] = mask
            reg[gid] = ops.sum(v)
            reg.per_class[gid] = v
        return alive, reg

    def _alive_numbers(self) -> dict[int, float]:
        """Alive counts by group as Python floats (eager: not inside a traced step)."""
        alive, _ = self._group_state()
        out = _PerGroup({gid: float(ops.convert_to_numpy(a)) for gid, a in alive.items()})
        out.per_class = {gid: np.asarray(ops.convert_to_numpy(m), np.float64)
                         for gid, m in alive.per_class.items()}
        return out

    @staticmethod
    def _reg_sum(segments: Sequence[Segment], reg: dict) -> Any:
        total = None
        per_class = getattr(reg, "per_class", {})
        for seg in segments:
            gid, mult = seg[0], seg[1]
            r = reg.get(gid)
            if r is None:
                continue
            if getattr(seg, "classes", None) is not None:
                r = take_sum(per_class[gid], seg.classes)
            r = r if mult == 1 else float(mult) * r
            total = r if total is None else total + r
        return total

    @staticmethod
    def _alive(segments: Sequence[Segment], alive: dict) -> Any:
        return alive_count(segments, alive, getattr(alive, "per_class", None))

    def _compute(self, want_term: bool, want_cost: bool):
        alive, reg = self._group_state()
        term = ops.zeros((), "float32")
        cost: Any = ops.zeros((), _count_dtype())
        for op in self._ops:
            a_in = [self._alive(seg, alive) for seg in op.in_segments]
            a_out = self._alive(op.out_segments, alive)
            if want_cost:
                cost = cost + ops.cast(self.op_cost(op, a_in, a_out), _count_dtype())
            if not want_term:
                continue
            r_in = [self._reg_sum(seg, reg) for seg in op.in_segments]
            r_out = self._reg_sum(op.out_segments, reg)
            if r_out is None and all(r is None for r in r_in):
                continue
            d_in, d_out = self.op_cost_derivatives(op, a_in, a_out)
            for d, r in zip(d_in, r_in):
                if r is not None:
                    term = term + _constant_f32(d) * r
            if r_out is not None:
                term = term + _constant_f32(d_out) * r_out
        return term, cost, alive

    # ---------------------------------------------------------------- public API
    def get_regularization_term(self):
        """Scalar float32 tensor of the Keras backend: sum over costed ops of dC/dA * R
        (differentiable in the regularized weights only). Works eagerly and inside a
        traced step (tf.function, jax.jit, torch)."""
        return self._compute(True, False)[0]

    def get_cost_tensor(self):
        """The cost with dead channels removed, as a tensor (traceable; float64, or
        float32 under JAX without x64)."""
        return self._compute(False, True)[1]

    def get_cost(self) -> float:
        """The cost with dead channels removed (per example), as a Python float
        (computed in float64 on every backend)."""
        alive = self._alive_numbers()
        cost = 0.0
        for op in self._ops:
            a_in = [self._alive(seg, alive) for seg in op.in_segments]
            cost += float(self.op_cost(op, a_in, self._alive(op.out_segments, alive)))
        return cost

    def get_alive_counts(self) -> Structure:
        """{conv/dense layer name: alive output channels, MultiHeadAttention layer
        name: alive heads} (frozen and unregularized layers in full), as a `Structure`:
        a dict of the counts that also carries the
        kept (alive) channel indices of every layer, so ``apply_structure(model,
        reg.get_alive_counts())`` and an exported file keep exactly these channels."""
        vectors = self._algo.group_vectors()
        alive_idx = self._algo.alive_indices(vectors)
        counts, kept = {}, {}
        for name, gid in self._structure_ops.items():
            classes = self._structure_classes[name]
            idx = alive_idx.get(gid)
            if idx is None:  # kept whole
                idx = np.arange(self._sizes[gid] if classes is None else len(classes),
                                dtype=np.int64)
            elif classes is not None:  # the layer's channels whose class is alive
                idx = np.flatnonzero(np.isin(classes, idx)).astype(np.int64)
            counts[name], kept[name] = len(idx), idx
        return Structure(counts, kept, self.algorithm, self.l1_fraction,
                         prune_residual_stream=self.prune_residual_stream)

    def get_group_importance(self) -> dict[str, np.ndarray]:
        """{conv/dense layer name: its group's importance vector} (float64 numpy) for
        regularized layers: the combined vector (max of |gamma| or kernel norms, or
        1 - prod(1 - p) of gate probabilities over every vector of the group) that
        decides the alive counts, read at the layer's output channels (channels tied
        one by one, e.g. by a shuffle, share their class's value); tied layers share
        one vector. Pass it to
        ``apply_structure(..., importance=...)`` to rank channels for other counts."""
        vectors = self._algo.group_importance()
        return {name: _per_channel(vectors[gid], self._structure_classes[name])
                for name, gid in self._structure_ops.items() if gid in vectors}

    def get_regularization_vectors(self) -> dict[str, Any]:
        """{conv/dense layer name: its group's vector} for regularized layers."""
        vectors = self._algo.group_vectors()
        return {name: _per_channel(vectors[gid], self._structure_classes[name])
                for name, gid in self._structure_ops.items() if gid in vectors}

    @property
    def regularized_layers(self) -> list[str]:
        return [n for n, gid in self._structure_ops.items() if gid in self._regularized]

    def wrap_loss(self, loss: Any, strength: float | None = None, name: str | None = None):
        """A Keras loss for ``model.compile(loss=...)`` that adds
        ``strength * get_regularization_term()`` to ``loss`` (a loss name, function or
        `keras.losses.Loss`). See `RegularizedLoss`.

        In target mode `strength` is the starting value of `strength_variable`
        (default ``1 / cost at full width``, which makes the term dimensionless) and the
        loss reads the variable, so `StrengthController` can change it between steps."""
        if self.target is not None:
            self.init_strength(strength)
            strength = float(ops.convert_to_numpy(self.strength_variable))
        elif strength is None:
            raise InvalidArgumentError(
                "Invalid value for argument `strength`: expected a non-negative float "
                "(only target mode, `target=...`, chooses it itself), received None.")
        return RegularizedLoss(loss, self, strength, name=name)

    # ------------------------------------------------------------------ target mode
    def init_strength(self, strength: float | None = None):
        """Create (or reset) `strength_variable` for target mode and return it.

        Default start: ``1 / get_cost()`` at the current widths, so the term is the
        cost-weighted regularization vector sum relative to the whole network."""
        if self.target is None:
            raise InvalidArgumentError(
                f"{type(self).__name__} is not in target mode: pass "
                f"`{self._target_arg}=...` to use a strength variable.")
        if strength is None:
            cost = self.get_cost()
            strength = 1.0 / cost if cost > 0 else 1.0
        strength = check_strength(strength)
        if self.strength_variable is None:
            self.strength_variable = keras.Variable(strength, trainable=False,
                                                    dtype="float32",
                                                    name="regularizer_strength")
            self._strength_bounds = (strength * 1e-2, strength * 1e2)
        else:
            self.strength_variable.assign(strength)
        return self.strength_variable

    def update_strength(self, target: float | None = None, cost: float | None = None) -> float:
        """One dual-ascent step towards the target; returns the new strength.

        ``log(strength) += target_rate * (cost / target - 1)``, where cost is
        `get_cost()` (dead channels removed). Above the target the strength grows, below
        it shrinks, so the learned cost settles at the target without a strength sweep;
        the multiplicative form covers strengths that differ by orders of magnitude
        between models and cost units. The strength stays within 1e-2..1e2 times its
        start: a far larger one makes every channel's penalty outweigh its use, so all
        die at once. ``target`` overrides the regularizer's own for this step (the
        `StrengthController` anneals it from the full cost down to the target, so the
        cost, which lags the strength by the time weights take to shrink, can follow
        without wind-up). ``cost`` passes a `get_cost()` the caller already has. Call it
        after every training step in a custom loop."""
        if self.strength_variable is None:
            self.init_strength()
        goal = self.target if target is None else float(target)
        cost = self.get_cost() if cost is None else float(cost)
        lo, hi = self._strength_bounds
        value = float(ops.convert_to_numpy(self.strength_variable))
        step = self.target_rate * (cost / goal - 1.0)
        value *= math.exp(min(max(step, -1.0), 1.0))  # at most a factor e per update
        value = min(max(value, lo), hi)
        self.strength_variable.assign(value)
        return value

    # --------------------------------------------------------------------- config
    def get_config(self) -> dict:
        """Hyperparameters only (the model is not serialized): rebuild with
        ``cls.from_config(config, model=model)``."""
        return {
            "algorithm": self.algorithm,
            "threshold": self.threshold,
            "l1_fraction": self.l1_fraction,
            "alive_threshold": self.alive_threshold,
            "input_boundary": None if self.input_boundary is None else list(self.input_boundary),
            "frozen_layers": list(self.frozen_layers),
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            self._target_arg: self.target,
            "target_rate": self.target_rate,
            "prune_residual_stream": self.prune_residual_stream,
        }

    @classmethod
    def from_config(cls, config: dict, model: Any = None, **kwargs):
        if model is None:
            raise InvalidArgumentError(
                f"{cls.__name__}.from_config needs the model the regularizer is bound "
                f"to: call {cls.__name__}.from_config(config, model=model)."
            )
        return cls(model=model, **{**dict(config), **kwargs})

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={self.graph.name!r}, "
                f"algorithm={self.algorithm!r}, threshold={self.threshold})")


class _PerGroup(dict):
    """{group id: value} with ``per_class``: {group id: per-class vector}."""

    def __init__(self, *args):
        super().__init__(*args)
        self.per_class: dict[int, Any] = {}


def _per_channel(vector: Any, classes: np.ndarray | None) -> Any:
    """A group's per-class vector read at a layer's channels."""
    if classes is None:
        return vector
    if isinstance(vector, np.ndarray):
        return vector[classes]
    return ops.take(vector, classes, axis=0)


def _count_dtype() -> str:
    """float64 for alive counts and costs (cost differences of large layers need it),
    except under JAX without x64, which has no float64 (the counts stay exact in float32;
    a cost difference then carries float32 rounding, harmless in a regularization
    weight)."""
    if keras.backend.backend() == "jax":
        import jax

        if not jax.config.read("jax_enable_x64"):
            return "float32"
    return "float64"


def _constant_f32(value):
    """A cost derivative as a float32 weight that carries no gradient."""
    if isinstance(value, numbers.Real):
        return float(value)
    return ops.cast(ops.stop_gradient(value), "float32")


class FlopsRegularizer(NetworkRegularizer):
    """FLOPs of conv, dense, depthwise and MultiHeadAttention layers (2 per
    multiply-add, per example; attention as `latency_lab.costs.attention_parts` counts
    it, at the alive heads), from `latency_lab.costs`. Biases, BN and standalone
    element-wise ops are not counted."""

    cost_name = "flops"

    def op_cost(self, op, alive_in, alive_out):
        return costs.cost_of(op.op, list(alive_in), alive_out).flops


class ModelSizeRegularizer(NetworkRegularizer):
    """Kernel weights of conv, dense and depthwise layers (kh * kw * A_in * A_out);
    biases and BN parameters are not counted."""

    cost_name = "model_size"

    def prepare_op(self, op):
        # Same op without bias: `params` of the cost registry is then kernel weights only.
        return dataclasses.replace(op.op, attrs={**op.op.attrs, "use_bias": False})

    def op_cost(self, op, alive_in, alive_out):
        return costs.cost_of(op.payload, list(alive_in), alive_out).params


# ------------------------------------------------------------------ fit integration


def _scale_for_replicas(value):
    """Divide by the replicas of a tf.distribute strategy (each replica's gradient is
    summed, so the term then counts once, as Keras does for its own losses). Other
    backends compute one loss over the global batch (JAX: keras.distribution runs a
    single SPMD program), so there is nothing to scale; TensorFlow is not imported."""
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    n = tf.distribute.get_strategy().num_replicas_in_sync
    return value * (1.0 / n) if n > 1 else value


def _read_strength(variable, term):
    """The strength variable's value for a loss computed together with ``term``.

    TensorFlow (tf.function) and PyTorch read a variable when the step runs. A jitted
    JAX step would bake in the value it had when traced, since the variable is not part
    of the model state Keras passes into the step; there the value is fetched from the
    host at every step (`jax.pure_callback`), so a `StrengthController` or
    `update_strength` between steps takes effect without recompiling."""
    if keras.backend.backend() == "jax":
        import jax
        import numpy as np

        if isinstance(term, jax.core.Tracer):
            return jax.pure_callback(
                lambda: np.asarray(ops.convert_to_numpy(variable), np.float32),
                jax.ShapeDtypeStruct((), np.float32))
    return ops.cast(variable, "float32")


@keras.saving.register_keras_serializable(package="latency_lab")
class _FunctionLoss(keras.losses.Loss):
    """A per-example loss function as a Keras Loss (mean over the batch)."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "fn": keras.losses.serialize(self.fn)}

    @classmethod
    def from_config(cls, config):
        return cls(keras.losses.deserialize(config["fn"]))


@keras.saving.register_keras_serializable(package="latency_lab")
class RegularizedLoss(keras.losses.Loss):
    """``loss(y_true, y_pred) + strength * regularizer.get_regularization_term()``.

    Use with plain ``model.compile(loss=reg.wrap_loss("mse", 1e-8))`` and ``fit``.
    The term is added once per batch (not per example, not weighted by sample_weight)
    and divided by the number of replicas under tf.distribute, as Keras does for its
    own losses, so the gradient summed over replicas counts it once (under JAX's
    keras.distribution the loss is global: no scaling). With several model
    outputs wrap only one output's loss. ``strength`` is read when the train function
    is traced: to change it, compile again; in target mode the regularizer's
    `strength_variable` is read at every step instead. Not restorable from a saved model's compile
    config (the regularizer is bound to a live model): loading a saved compiled model
    restores only the base loss, with a warning; wrap it again before training.
    """

    def __init__(self, loss, regularizer, strength, name=None):
        strength = check_strength(strength)
        base = keras.losses.get(loss)
        if base is None:
            raise InvalidArgumentError(
                "Invalid value for argument `loss`: expected a loss name, function or "
                f"keras.losses.Loss, received {loss!r}."
            )
        if not isinstance(base, keras.losses.Loss):
            base = _FunctionLoss(base)
        super().__init__(name=name or f"{base.name}_plus_{regularizer.cost_name}")
        self.base_loss = base
        self.regularizer = regularizer
        self.strength = strength

    def __call__(self, y_true, y_pred, sample_weight=None):
        value = self.base_loss(y_true, y_pred, sample_weight)
        variable = getattr(self.regularizer, "strength_variable", None)
        if variable is None and self.strength == 0.0:
            return value
        term = self.regularizer.get_regularization_term()
        strength = (self.strength if variable is None
                    else _read_strength(variable, term))
        extra = _scale_for_replicas(strength * term)
        return value + ops.cast(extra, keras.backend.standardize_dtype(value.dtype))

    def call(self, y_true, y_pred):  # __call__ is overridden; kept for the Loss API
        return self.base_loss.call(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "strength": self.strength,
                "loss": keras.losses.serialize(self.base_loss)}

    @classmethod
    def from_config(cls, config):
        import warnings

        warnings.warn(
            f"loss {config.get('name')!r} was a regularizer-wrapped loss; it is restored "
            "as its base loss only (the regularizer is bound to a live model). Compile "
            "again with reg.wrap_loss(...) to keep regularizing.", stacklevel=2)
        return keras.losses.deserialize(config["loss"])
