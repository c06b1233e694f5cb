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
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from latency_lab.errors import InvalidArgumentError, ProfileError
from latency_lab.kernels import WorkItem, work_items
from latency_lab.predictors import make_predictor, predict_items
from latency_lab.profile import load_profile
from regularizers.base import NetworkRegularizer
from regularizers.grouping import ChannelOp

__all__ = ["LatencyRegularizer"]

_GRID = (0.25, 0.5, 0.75, 1.0)


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
        self._weight_bytes = sum(i.weight_bytes for i in self._items)
        self._kernels = sum(1 for i in self._items if i.configs)
        self._cost_cache: dict[tuple, float] = {}
        super().__init__(model=model, target=target_ms, **kwargs)

    # ------------------------------------------------------------------ hooks
    def costed_ops(self) -> list[ChannelOp]:
        by_layer: dict[str, ChannelOp] = {}
        for op in self.channel_graph.ops:
            by_layer.setdefault(op.layer_name, op)
            by_layer.setdefault(op.layer_name.rsplit("/", 1)[-1], op)
        out = []
        for i, item in enumerate(self._items):
            layer = by_layer.get(item.layer)
            if layer is None:  # a kernel we cannot tie to a layer: constant cost
                out.append(ChannelOp(f"kernel{i}:{item.kernel}", item.kernel, None, "frozen",
                                     [], [], True, item))
                continue
            out.append(dataclasses.replace(layer, name=f"{layer.name}#k{i}", payload=item))
        return out

    def prepare_op(self, op: ChannelOp) -> _Surrogate:
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

    def _item_ms(self, item: WorkItem) -> float:
        if item.configs is None:
            return self.predictor.predict_work(item.flops, item.bytes, item.op_class)
        return self.predictor.kernel_ms(item.configs, self._weight_bytes, self._kernels)

    def _fractions(self, s: _Surrogate, alive_in: list, alive_out: Any):
        fi = alive_in[0] / s.full_in if s.full_in and alive_in else 1.0
        fo = alive_out / s.full_out if s.full_out else 1.0
        return fi, fo

    def op_cost(self, op: ChannelOp, alive_in: list, alive_out: Any) -> Any:
        s: _Surrogate = op.payload
        fi, fo = self._fractions(s, alive_in, alive_out)
        p0, p1, p2, p3 = (float(c) for c in s.coef)
        return p0 + p1 * fi + p2 * fo + p3 * fi * fo

    def op_cost_derivatives(self, op: ChannelOp, alive_in: list, alive_out: Any):
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
        items = []
        for op in self._ops:
            s: _Surrogate = op.payload
            a_in = [self._alive(seg, alive) for seg in op.in_segments]
            fi, fo = self._fractions(s, a_in, self._alive(op.out_segments, alive))
            items.append(s.item.scaled(float(fi), float(fo)))
        total, _ = predict_items(items, self.predictor)
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

