"""LatencyRegularizer: the cost is the latency a device profile predicts.

At construction the model is bound once: the kernels the profile's runtime executes
(for LiteRT: the converted model's kernels, BN folded and activations fused) are
mapped to the Keras layers and channel groups they depend on, and for each kernel a
smooth surrogate of the profile's predictor over the alive fractions of its input and
output channels is fitted:

    t(fi, fo) ~ p0 + p1 * fi + p2 * fo + p3 * fi * fo      (least squares on a 4x4 grid)

The regularization term uses the surrogate's derivatives at the current alive counts
(DESIGN.md: dC/dA_in * R_in + dC/dA_out * R_out); `get_cost()` re-runs the real
predictor on the slimmed kernels, so at full width it equals `latency-lab predict`.

A MultiHeadAttention is costed by its alive heads: its kernels (projections, batch
matmuls, softmax, transposes, as the runtime runs them) are taken from the model
rebuilt with fewer heads in every attention layer whose heads are regularized
(`apply_structure` at one head and at head fractions 1/4, 1/2, 3/4; one conversion
each), and its latency is the piecewise-linear curve through those head counts: exact
at them, linear between. Its input and output channels must be frozen (a
transformer's residual stream is, unless ``prune_residual_stream=True``: then the
attention is refused by name). An attention layer whose heads are kept whole costs
its kernels as they are.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np
from keras import ops

from latency_lab.errors import InvalidArgumentError, ProfileError
from latency_lab.kernels import WorkItem, work_items, working_set_bytes
from latency_lab.predictors import make_predictor, predict_items
from latency_lab.profile import load_profile
from regularizers.base import NetworkRegularizer
from regularizers.grouping import ChannelOp

__all__ = ["LatencyRegularizer"]

_GRID = (0.25, 0.5, 0.75, 1.0)
# Head fractions an attention layer is rebuilt at (0: one head), besides its full count.
_HEAD_GRID = (0.0, 0.25, 0.5, 0.75)


def _at_least(x: Any, floor: float) -> Any:
    """max(x, floor) for a number or a backend tensor."""
    return max(x, floor) if isinstance(x, numbers.Real) else ops.maximum(x, floor)


@dataclasses.dataclass
class _AttentionCurve:
    """One attention layer's kernels at several head counts (ascending, the last the
    full count) and their latency in the full network's context."""

    layer: str
    heads: list[int]
    items: dict[int, list[WorkItem]]
    ms: list[float]

    def __post_init__(self) -> None:
        xs, ys = self.heads, self.ms
        self._slopes = [(ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) for i in range(len(xs) - 1)]

    def at(self, h: Any) -> Any:
        """Piecewise-linear latency at `h` alive heads (a number or a tensor): the
        first segment's line plus a hinge per inner head count; below one head (the
        grid's first count) the one-head latency, as `apply_structure` keeps one."""
        xs, ys, slopes = self.heads, self.ms, self._slopes
        if not slopes:
            return ys[0] + 0.0 * h
        h = _at_least(h, xs[0])
        out = ys[0] + slopes[0] * (h - xs[0])
        for i in range(1, len(slopes)):
            out = out + (slopes[i] - slopes[i - 1]) * _at_least(h - xs[i], 0.0)
        return out

    def bracket(self, h: float) -> tuple[int, int]:
        """The grid head counts around `h` (equal when `h` is one of them or outside)."""
        xs = self.heads
        if h <= xs[0]:
            return xs[0], xs[0]
        for lo, hi in zip(xs, xs[1:]):
            if h == hi:
                return hi, hi
            if lo <= h < hi:
                return (lo, lo) if h == lo else (lo, hi)
        return xs[-1], xs[-1]


@dataclasses.dataclass
class _Surrogate:
    item: WorkItem
    coef: np.ndarray  # p0, p1, p2, p3 in ms
    full_in: float
    full_out: float


class LatencyRegularizer(NetworkRegularizer):
    """Regularizer whose cost is predicted latency (ms per inference, batch 1).

    Args:
        profile: a DeviceProfile, a path to a profile JSON, or a shipped profile name.
        model: the Keras model to regularize (bound once at construction).
        predictor: "lookup" (measured profiles), "roofline" (any profile) or "flops".
        target_ms: target mode: the predicted latency (ms) training should settle at;
            the strength adapts by dual ascent (`NetworkRegularizer.update_strength`,
            driven by the `StrengthController` callback), so no strength sweep is needed.
        Other arguments as in `NetworkRegularizer`.
    """

    cost_name = "latency_ms"
    _target_arg = "target_ms"

    def __init__(self, profile: Any, model: Any = None, predictor: str | None = None,
                 target_ms: float | None = None, **kwargs: Any):
        self.profile = load_profile(profile)
        self.predictor_name = predictor or ("lookup" if self.profile.samples else "roofline")
        if self.predictor_name == "lookup" and not self.profile.samples:
            raise ProfileError(
                f"profile {self.profile.device_name!r} has no lookup-table samples; pass "
                "predictor='roofline' or use a measured profile"
            )
        self.predictor = make_predictor(self.predictor_name, self.profile)
        if model is None:
            raise InvalidArgumentError("LatencyRegularizer needs a model: pass model=<keras.Model>.")
        self._items = work_items(model, self.profile.runtime_name)
        self._network_bytes = working_set_bytes(self._items)
        self._kernels = sum(1 for i in self._items if i.configs)
        self._cost_cache: dict[tuple, float] = {}
        self._grid_cache: dict | None = None  # `_head_grid`'s conversions
        super().__init__(model=model, target=target_ms, **kwargs)

    # ------------------------------------------------------------------ hooks
    def costed_ops(self) -> list[ChannelOp]:
        by_layer: dict[str, ChannelOp] = {}
        for op in self.channel_graph.ops:
            by_layer.setdefault(op.layer_name, op)
            by_layer.setdefault(op.layer_name.rsplit("/", 1)[-1], op)
        out = []
        attention: dict[str, tuple[ChannelOp, list[WorkItem]]] = {}
        for i, item in enumerate(self._items):
            layer = by_layer.get(item.layer)
            if layer is None:  # a kernel we cannot tie to a layer: constant cost
                out.append(ChannelOp(f"kernel{i}:{item.kernel}", item.kernel, None, "frozen",
                                     [], [], True, item))
                continue
            if layer.kind == "attention" and layer.head_group in self._regularized:
                # all its kernels, costed by its heads
                attention.setdefault(layer.layer_name, (layer, []))[1].append(item)
                continue
            if layer.kind == "attention":  # heads kept whole: its kernels as they are
                self._check_attention_channels(layer)
                out.append(ChannelOp(f"{layer.name}#k{i}", item.kernel, None, "frozen",
                                     [], [], True, item))
                continue
            out.append(dataclasses.replace(layer, name=f"{layer.name}#k{i}", payload=item))
        missing = sorted({op.layer_name for op in self.channel_graph.attention_ops
                          if op.head_group in self._regularized} - set(attention))
        if missing:
            raise InvalidArgumentError(
                f"LatencyRegularizer: no kernel of the {self.profile.runtime_name} model is "
                f"attributed to the MultiHeadAttention layers {missing}, so their heads "
                "cannot be costed; keep them whole with frozen_layers=.")
        for name, (layer, items) in attention.items():
            out.append(dataclasses.replace(layer, name=f"{layer.name}#attention",
                                           payload=items))
        return out

    def prepare_op(self, op: ChannelOp) -> Any:
        if op.kind == "attention":
            return self._attention_curve(op)
        item: WorkItem = op.payload
        full_in = float(self._alive(op.in_segments[0], self._sizes)) if op.in_segments else 0.0
        full_out = float(self._alive(op.out_segments, self._sizes)) if op.out_segments else 0.0
        rows, ys = [], []
        grid_in = _GRID if full_in else (1.0,)
        grid_out = _GRID if full_out else (1.0,)
        for fi in grid_in:
            for fo in grid_out:
                ys.append(self._item_ms(item.scaled(fi, fo)))
                rows.append([1.0, fi, fo, fi * fo])
        coef, *_ = np.linalg.lstsq(np.array(rows), np.array(ys), rcond=None)
        return _Surrogate(item, coef, full_in, full_out)

    def _check_attention_channels(self, op: ChannelOp) -> None:
        """An attention layer's kernels are costed by its heads only: its input and
        output channels must not be regularized."""
        moving = [self.channel_graph.groups[seg[0]].sources
                  for segs in [*op.in_segments[:-1], op.out_segments] for seg in segs
                  if seg[0] in self._regularized]
        if moving:
            fix = ("Freeze them (frozen_layers=, or a LayerNormalization before the "
                   "attention, as a transformer's residual stream has).")
            if self.channel_graph.prune_residual_stream:
                fix = ("Leave prune_residual_stream off (the stream's norms then freeze "
                       "it), or freeze them with frozen_layers=.")
            raise InvalidArgumentError(
                f"LatencyRegularizer: MultiHeadAttention {op.layer_name!r} is costed by "
                "its heads only, but the channels of its inputs or output are "
                f"regularized (groups of {sorted({n for ns in moving for n in ns})}). "
                + fix)

    def _attention_curve(self, op: ChannelOp) -> _AttentionCurve:
        """The layer's latency at the head counts of `_head_grid` (see the module
        docstring)."""
        self._check_attention_channels(op)
        full = int(op.op.attrs["num_heads"])
        items = {**self._head_grid().get(op.layer_name, {}), full: list(op.payload)}
        heads = sorted(items)
        if full > 1 and len(heads) == 1:
            raise InvalidArgumentError(
                f"LatencyRegularizer: the {self.profile.runtime_name} model rebuilt with "
                f"fewer heads has no kernels attributed to MultiHeadAttention "
                f"{op.layer_name!r}, so its heads cannot be costed; keep it whole with "
                "frozen_layers=.")
        return _AttentionCurve(op.layer_name, heads, items,
                               [sum(self._item_ms(i) for i in items[h]) for h in heads])

    def _head_grid(self) -> dict[str, dict[int, list[WorkItem]]]:
        """{attention layer: {heads: its kernels}} below its full count: the model
        rebuilt with every attention layer whose heads are regularized at each
        `_HEAD_GRID` fraction of its heads (at least 1), converted once per distinct
        rebuild (cached: every attention layer reads the same conversions)."""
        if self._grid_cache is not None:
            return self._grid_cache
        from regularizers.apply import apply_structure

        layers = {op.layer_name: int(op.op.attrs["num_heads"])
                  for op in self.channel_graph.attention_ops
                  if op.head_group in self._regularized}
        names = {**{n.rsplit("/", 1)[-1]: n for n in layers}, **{n: n for n in layers}}
        out: dict[str, dict[int, list[WorkItem]]] = {}
        done: list[dict] = []
        stream = self.channel_graph.prune_residual_stream
        for f in _HEAD_GRID:
            counts = {n: max(1, int(round(f * h))) for n, h in layers.items()}
            if all(c == layers[n] for n, c in counts.items()) or counts in done:
                continue
            done.append(counts)
            found: dict[str, list[WorkItem]] = {}
            slim = apply_structure(self.model, counts, copy_weights=False,
                                   prune_residual_stream=stream)
            for item in work_items(slim, self.profile.runtime_name):
                if item.layer in names:  # kernels name a layer in full or by its own name
                    found.setdefault(names[item.layer], []).append(item)
            for n, its in found.items():
                if counts[n] < layers[n]:
                    out.setdefault(n, {}).setdefault(counts[n], its)
        self._grid_cache = out
        return out

    def _item_ms(self, item: WorkItem, touched_bytes: float | None = None,
                 kernels: int | None = None) -> float:
        """One kernel's latency in a network that touches `touched_bytes` per inference
        (`kernels.working_set_bytes`) in `kernels` kernels (default: the full model's)."""
        if item.configs is None:
            return self.predictor.predict_work(item.flops, item.bytes, item.op_class)
        return self.predictor.kernel_ms(
            item.configs, self._network_bytes if touched_bytes is None else touched_bytes,
            self._kernels if kernels is None else kernels)

    def _fractions(self, s: _Surrogate, alive_in: list, alive_out: Any):
        fi = alive_in[0] / s.full_in if s.full_in and alive_in else 1.0
        fo = alive_out / s.full_out if s.full_out else 1.0
        return fi, fo

    def op_cost(self, op: ChannelOp, alive_in: list, alive_out: Any) -> Any:
        if op.kind == "attention":
            return op.payload.at(alive_in[-1])
        s: _Surrogate = op.payload
        fi, fo = self._fractions(s, alive_in, alive_out)
        p0, p1, p2, p3 = (float(c) for c in s.coef)
        return p0 + p1 * fi + p2 * fo + p3 * fi * fo

    def op_cost_derivatives(self, op: ChannelOp, alive_in: list, alive_out: Any):
        if op.kind == "attention":  # C(h + 1) - C(h) on the head curve; 0 elsewhere
            return super().op_cost_derivatives(op, alive_in, alive_out)
        s: _Surrogate = op.payload
        fi, fo = self._fractions(s, alive_in, alive_out)
        _, p1, p2, p3 = (float(c) for c in s.coef)
        d_out = (p2 + p3 * fi) / s.full_out if s.full_out else 0.0 * fo
        d_in = [(p1 + p3 * fo) / s.full_in if (s.full_in and i == 0) else 0.0 * fi
                for i in range(len(alive_in))]
        if op.kind == "depthwise":
            return [d_out], d_out
        return d_in, d_out

    # ---------------------------------------------------------------- public API
    def get_cost(self) -> float:
        """Predicted latency (ms) of the network with dead channels removed, from the
        profile's predictor itself (not the surrogate)."""
        alive = self._alive_numbers()
        # which classes are alive matters, not only how many: a slice or shuffle
        # segment counts the alive classes it holds
        key = (tuple(sorted(alive.items())),
               tuple((g, m.tobytes()) for g, m in sorted(getattr(alive, "per_class", {}).items())))
        if key in self._cost_cache:  # alive counts change rarely; the predictor is slow
            return self._cost_cache[key]
        items, between = [], []
        for op in self._ops:
            a_in = [self._alive(seg, alive) for seg in op.in_segments]
            if op.kind == "attention":  # its kernels at the grid count at or below
                curve: _AttentionCurve = op.payload
                h = float(a_in[-1])
                lo, hi = curve.bracket(h)
                items.extend(curve.items[lo])
                if hi != lo:
                    between.append((curve.items[lo], curve.items[hi], (h - lo) / (hi - lo)))
                continue
            s: _Surrogate = op.payload
            fi, fo = self._fractions(s, a_in, self._alive(op.out_segments, alive))
            items.append(s.item.scaled(float(fi), float(fo)))
        total, _ = predict_items(items, self.predictor)
        if between:  # linear between grid head counts, in this network's context
            touched = working_set_bytes(items)
            kernels = sum(1 for i in items if i.configs)

            def ms(its):
                return sum(self._item_ms(i, touched, kernels) for i in its)

            total += sum(t * (ms(upper) - ms(lower)) for lower, upper, t in between)
        self._cost_cache[key] = float(total)
        return float(total)

    @property
    def target_ms(self) -> float | None:
        return self.target

    def get_config(self) -> dict:
        config = super().get_config()
        config["predictor"] = self.predictor_name
        return config

    @classmethod
    def from_config(cls, config: dict, model: Any = None, profile: Any = None, **kwargs):
        if profile is None:
            raise InvalidArgumentError(
                "LatencyRegularizer.from_config needs the profile: "
                "from_config(config, model=model, profile=profile)"
            )
        return cls(profile, model=model, **{**config, **kwargs})

