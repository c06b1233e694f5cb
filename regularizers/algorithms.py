"""Per-group regularization vectors and alive masks (Gamma, GroupLasso, LogisticSigmoid).

An algorithm is bound once to a `ChannelGraph` and the model's layers. It decides which
groups it can regularize (a conv without a BatchNormalization after it cannot be
gamma-regularized, a conv without a gate cannot be gate-regularized: those groups are
kept whole, listed in one warning) and, per training step, returns one float32 vector
per regularized group (differentiable in the weights it reads) plus the alive mask.

Combining several sources of one group (tied by Add/Multiply/...):
    gamma, group_lasso: element-wise max of the sources' vectors;
    logistic_sigmoid:   1 - prod(1 - p) over the group's gates.
A group whose channels are tied one by one (a channel shuffle, a grouped conv, a slice)
is indexed by class: each part of a vector says which class each of its entries is, and
a class combines every entry that maps to it (a gather, then the same reduction). Such
a group is regularized only when its vectors cover every class.
Alive: vector > threshold (gamma, group_lasso); vector >= alive_threshold (gates).

Written with `keras.ops`, so the vectors are tensors of the Keras backend in use
(TensorFlow, JAX or PyTorch) and differentiable with its autodiff.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from keras import ops

from regularizers.grouping import ATTENTION_PROJECTIONS, ChannelGraph, ChannelOp
from latency_lab.errors import InvalidArgumentError

ALGORITHMS = ("gamma", "group_lasso", "logistic_sigmoid")

__all__ = ["ALGORITHMS", "GroupAlgorithm", "GammaAlgorithm", "GroupLassoAlgorithm",
           "LogisticSigmoidAlgorithm", "make_algorithm", "layers_by_op_name",
           "group_importance", "top_channels"]


def layers_by_op_name(model: Any) -> dict[str, Any]:
    """Keras layers keyed by graph-IR name (nested models: ``outer/inner``)."""
    import keras

    found: dict[str, Any] = {}

    def walk(m: Any, prefix: str) -> None:
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer, f"{prefix}{layer.name}/")
            else:
                found[f"{prefix}{layer.name}"] = layer

    walk(model, "")
    return found


def _f32(x):
    return ops.cast(ops.convert_to_tensor(x), "float32")


class GroupAlgorithm:
    """Base: binds to a channel graph; subclasses fill ``self._plans`` in ``_plan()``."""

    name = "base"

    def __init__(self, cgraph: ChannelGraph, layers: dict[str, Any], *,
                 threshold: float = 1e-2, l1_fraction: float = 0.0,
                 alive_threshold: float = 0.1):
        self.cgraph = cgraph
        self.layers = layers
        self.threshold = float(threshold)
        self.l1_fraction = float(l1_fraction)
        self.alive_threshold = float(alive_threshold)
        self._plans: dict[int, list] = {}
        self.unregularized: dict[int, list[str]] = {}  # group -> sources without a vector
        self._plan()
        self._index_classes()
        heads = {gid for gid in self.unregularized if cgraph.groups[gid].unit == "head"}
        channels = [n for gid, ns in self.unregularized.items() if gid not in heads for n in ns]
        if channels:
            warnings.warn(self._unregularized_message(sorted(set(channels))), stacklevel=4)
        if heads:
            names = sorted({cgraph.op(n).layer_name for gid in heads
                            for n in self.unregularized[gid]})
            warnings.warn(f"{self.name}: the heads of MultiHeadAttention layers {names} "
                          f"are kept whole: {self._heads_reason()}.", stacklevel=4)
        if not self._plans:
            raise InvalidArgumentError(self._nothing_message())

    # ------------------------------------------------------------------ subclass API
    def _plan(self) -> None:
        raise NotImplementedError

    def source_vector(self, part: Any):
        """float32 vector of one planned part (a BN, a kernel, a gate slice)."""
        raise NotImplementedError

    def combine(self, vectors: list):
        if len(vectors) == 1:
            return vectors[0]
        return self.reduce(ops.stack(vectors))

    def reduce(self, stacked):
        """Combine the rows of `stacked` (entries of one class); 0 is neutral."""
        return ops.max(stacked, axis=0)

    def alive_mask(self, vector):
        return ops.greater(vector, self.threshold)

    def _unregularized_message(self, names: list[str]) -> str:
        return f"{self.name}: layers {names} cannot be regularized; kept whole."

    def _heads_reason(self) -> str:
        return ("this algorithm has no vector for attention heads; use "
                "algorithm='group_lasso' (the norm of each head's q, k, v and output "
                "weights)")

    def _nothing_message(self) -> str:
        return (f"algorithm {self.name!r}: no channel group of model "
                f"{self.cgraph.graph.name!r} can be regularized.")

    # -------------------------------------------------------------------- per step
    @property
    def regularized_groups(self) -> list[int]:
        return list(self._plans)

    def group_vectors(self) -> dict[int, Any]:
        """{group id: float32 vector of the group's size} for regularized groups.

        The one importance vector per group: it decides which channels are alive
        (`alive_mask`), which the structure export records and which `apply_structure`
        keeps (`group_importance` evaluates this same method)."""
        out = {}
        for gid, parts in self._plans.items():
            vectors = [self.source_vector(p) for p in parts]
            index = self._class_index.get(gid)
            if index is None:
                out[gid] = self.combine(vectors)
            else:  # the entries of each class, padded with a neutral 0, then reduced
                flat = ops.concatenate([*vectors, ops.zeros((1,), "float32")], axis=0)
                out[gid] = self.reduce(ops.take(flat, index, axis=0))
        return out

    def _index_classes(self) -> None:
        """For groups with parts that map entries to classes: the (depth, classes)
        positions of each class's entries in the concatenated parts; a group with a
        class no vector covers is kept whole instead."""
        self._class_index: dict[int, np.ndarray] = {}
        for gid, parts in list(self._plans.items()):
            if all(p[-1] is None for p in parts):
                continue
            n = self.cgraph.groups[gid].size
            members: list[list[int]] = [[] for _ in range(n)]
            offset = 0
            for p in parts:
                classes = np.arange(n) if p[-1] is None else p[-1]
                for i, c in enumerate(classes.tolist()):
                    members[c].append(offset + i)
                offset += len(classes)
            if not all(members):
                del self._plans[gid]
                self.unregularized[gid] = list(self.cgraph.groups[gid].sources)
                continue
            index = np.full((max(map(len, members)), n), offset, dtype=np.int64)
            for c, m in enumerate(members):
                index[:len(m), c] = m
            self._class_index[gid] = index

    def group_importance(self) -> dict[int, np.ndarray]:
        """`group_vectors` as float64 numpy arrays (eager, outside a traced step)."""
        return {gid: np.asarray(ops.convert_to_numpy(v), dtype=np.float64)
                for gid, v in self.group_vectors().items()}

    def alive_indices(self, vectors: dict[int, Any] | None = None) -> dict[int, np.ndarray]:
        """{group id: sorted indices of the alive channels} of the regularized groups."""
        vectors = self.group_vectors() if vectors is None else vectors
        return {gid: np.flatnonzero(ops.convert_to_numpy(self.alive_mask(v))).astype(np.int64)
                for gid, v in vectors.items()}

    # -------------------------------------------------------------------- helpers
    def _prunable_groups(self):
        for gid, g in self.cgraph.groups.items():
            if not g.frozen and g.sources:
                yield gid, g

    def _layer(self, op_name: str):
        try:
            return self.layers[op_name.split("#", 1)[0]]
        except KeyError:
            raise InvalidArgumentError(
                f"layer {op_name!r} of the graph was not found among the model's layers"
            ) from None


class GammaAlgorithm(GroupAlgorithm):
    """|gamma| of the BatchNormalization layers acting on a group's channels.

    A BN covers a group when the group's channels reach the BN input through
    channel-preserving layers only (the BN right after the conv; also a BN after a
    Concatenate, an Add or a depthwise conv, as in DenseNet, pre-activation ResNets
    and MobileNets). The group's vector is the max over the covering BNs (a channel is
    dead only when every BN reading it has a small gamma). Groups no BN covers
    (squeeze-excite reduce convs, heads, ...) are kept whole.
    """

    name = "gamma"

    def _plan(self) -> None:
        prunable = dict(self._prunable_groups())
        parts: dict[int, list] = {}
        for cop in self.cgraph.ops:
            if cop.type != "BatchNormalization" or not self._on_channel_axis(cop):
                continue
            offset = 0
            for seg in cop.in_segments[0]:
                gid, mult = seg
                size = seg.width(self.cgraph.groups[gid].size) * mult
                if mult == 1 and gid in prunable:
                    layer = self._layer(cop.name)
                    if not getattr(layer, "scale", True) or getattr(layer, "gamma", None) is None:
                        raise InvalidArgumentError(
                            f"BatchNormalization layer {layer.name!r} (on the channels of "
                            f"{prunable[gid].sources}) has scale=False, so it has no gamma "
                            "for the 'gamma' algorithm. Build it with scale=True, add it "
                            "(or the convs before it) to frozen_layers, or use "
                            "algorithm='group_lasso'."
                        )
                    parts.setdefault(gid, []).append((layer, offset, size, seg.classes))
                offset += size
        for gid, g in prunable.items():
            if gid in parts:
                self._plans[gid] = parts[gid]
            else:
                self.unregularized[gid] = list(g.sources)

    @staticmethod
    def _on_channel_axis(cop: ChannelOp) -> bool:
        op = cop.op
        rank = len(op.input_shapes[0])
        axis = op.attrs.get("axis", -1)
        if isinstance(axis, tuple):
            if len(axis) != 1:
                return False
            axis = axis[0]
        return int(axis) % rank == op.channel_axis % rank

    def source_vector(self, part):
        bn, offset, size, _ = part
        g = ops.abs(_f32(bn.gamma))
        if offset == 0 and size == int(g.shape[0]):
            return g
        return g[offset:offset + size]

    def _unregularized_message(self, names):
        return (
            f"Gamma regularizer: conv/dense layers {names} have no BatchNormalization "
            "on their output channels (e.g. squeeze-excite convs, heads), so their "
            "output channels are kept whole (not regularized). "
            "Use algorithm='group_lasso' to regularize them, or ignore this if intended."
        )

    def _nothing_message(self):
        return (
            f"Gamma regularizer: no conv/dense layer of model {self.cgraph.graph.name!r} "
            "can be regularized: no BatchNormalization (scale=True) acts on the output "
            "channels of a conv/dense "
            "(scale=True) outside the frozen layers. Use algorithm='group_lasso', or add "
            "BatchNormalization after the convolutions."
        )


# Output-channel axis of the kernel that defines a source's output channels.
_KERNEL_ATTR = {
    "Embedding": ("embeddings", -1),
    "SeparableConv1D": ("pointwise_kernel", -1),
    "SeparableConv2D": ("pointwise_kernel", -1),
    "Conv1DTranspose": ("kernel", -2),
    "Conv2DTranspose": ("kernel", -2),
    "Conv3DTranspose": ("kernel", -2),
}


class GroupLassoAlgorithm(GroupAlgorithm):
    """Per output channel (1 - f) * sqrt(mean(w^2)) + f * mean(|w|) of the kernel; per
    head of a MultiHeadAttention the same over the head's q, k, v and output weights;
    per channel of a pruned residual stream, a MultiHeadAttention's output projection
    column is one of the stream's kernels."""

    name = "group_lasso"

    def _plan(self) -> None:
        seen_layers: set[int] = set()
        for gid, g in self._prunable_groups():
            parts = []
            for src in g.sources:
                cop = self.cgraph.op(src)
                layer = self._layer(src)
                if id(layer) in seen_layers and cop.op.attrs.get("shared_from"):
                    continue  # a shared layer's later call: same kernel
                seen_layers.add(id(layer))
                if g.unit == "head":
                    parts.append((_head_kernels(layer), None, None))
                    continue
                if cop.kind == "attention":  # on a pruned stream: output projection columns
                    parts.append((layer.output_dense.kernel, -1, cop.out_classes))
                    continue
                attr, axis = _KERNEL_ATTR.get(cop.type, ("kernel", -1))
                kernel = getattr(layer, attr, None)
                if kernel is None:
                    raise InvalidArgumentError(f"layer {layer.name!r} ({cop.type}) has no {attr!r} weight")
                parts.append((kernel, axis, cop.out_classes))
            if parts:
                self._plans[gid] = parts

    def source_vector(self, part):
        kernels, axis, _ = part
        if axis is not None:
            kernels = [(kernels, axis)]
        # Sums over every weight of each output channel (head: its q, k, v columns and
        # its output-projection rows), then the means over their count.
        square = absolute = 0.0
        count = 0
        for kernel, axis in kernels:
            w = _f32(kernel)
            rank = len(w.shape)
            axis = axis % rank
            reduce_axes = tuple(i for i in range(rank) if i != axis)
            square = square + ops.sum(ops.square(w), axis=reduce_axes)
            absolute = absolute + ops.sum(ops.abs(w), axis=reduce_axes)
            count += int(np.prod(w.shape)) // int(w.shape[axis])
        f = self.l1_fraction
        out = 0.0
        if f < 1.0:
            ms = square / count
            positive = ops.greater(ms, 0.0)
            # sqrt with a finite gradient at an all-zero channel.
            l2 = ops.where(positive, ops.sqrt(ops.where(positive, ms, ops.ones_like(ms))),
                           ops.zeros_like(ms))
            out = (1.0 - f) * l2
        if f > 0.0:
            out = out + f * (absolute / count)
        return out


def _head_kernels(layer: Any) -> list[tuple[Any, int]]:
    """(kernel, head axis) of a MultiHeadAttention's projections."""
    return [(getattr(layer, sub).kernel, axis) for _, sub, axis in ATTENTION_PROJECTIONS]


class LogisticSigmoidAlgorithm(GroupAlgorithm):
    """Gate probabilities sigmoid(logits) of the ProbabilisticGate layers on a group (of
    a GatedMultiHeadAttention's head gate on its heads)."""

    name = "logistic_sigmoid"

    def _plan(self) -> None:
        gates: dict[int, list] = {}
        for cop in self.cgraph.ops:
            if cop.type != "ProbabilisticGate":
                continue
            layer = self._layer(cop.name)
            offset = 0
            for seg in cop.in_segments[0]:
                gid, mult = seg
                size = seg.width(self.cgraph.groups[gid].size) * mult
                if mult == 1:
                    gates.setdefault(gid, []).append((layer, offset, size, seg.classes))
                offset += size
        for gid, g in self._prunable_groups():
            if g.unit == "head":  # a GatedMultiHeadAttention's own gate
                gates.setdefault(gid, []).extend(
                    (layer, 0, g.size, None) for layer in {
                        id(lay): lay for lay in map(self._layer, g.sources)
                        if hasattr(lay, "head_gate")}.values())
            if gates.get(gid):
                self._plans[gid] = gates[gid]
            else:
                self.unregularized[gid] = list(g.sources)

    def _heads_reason(self):
        return ("they are not gated; insert_gates(model) replaces each MultiHeadAttention "
                "with a GatedMultiHeadAttention (heads=True, the default)")

    def source_vector(self, part):
        layer, offset, size, _ = part
        p = _f32(layer.probabilities())
        if offset == 0 and size == int(p.shape[0]):
            return p
        return p[offset:offset + size]

    def reduce(self, stacked):
        return 1.0 - ops.prod(1.0 - stacked, axis=0)

    def alive_mask(self, vector):
        return ops.greater_equal(vector, self.alive_threshold)

    def _unregularized_message(self, names):
        return (
            f"LogisticSigmoid regularizer: conv/dense layers {names} have no "
            "ProbabilisticGate on their output channels, so those channels are kept whole "
            "(not regularized). Add gates with regularizers.insert_gates(model, "
            "after=('activation', 'linear')), or ignore this if intended."
        )

    def _nothing_message(self):
        return (
            f"LogisticSigmoid regularizer: model {self.cgraph.graph.name!r} has no "
            "ProbabilisticGate on a prunable conv/dense output. Insert gates first: "
            "model = regularizers.insert_gates(model)."
        )


_BY_NAME = {
    "gamma": GammaAlgorithm,
    "group_lasso": GroupLassoAlgorithm,
    "logistic_sigmoid": LogisticSigmoidAlgorithm,
}


def make_algorithm(name: str, cgraph: ChannelGraph, layers: dict[str, Any],
                   **kwargs) -> GroupAlgorithm:
    try:
        cls = _BY_NAME[name]
    except KeyError:
        raise InvalidArgumentError(
            f"Invalid value for argument `algorithm`: expected one of {list(ALGORITHMS)}, "
            f"received {name!r}."
        ) from None
    return cls(cgraph, layers, **kwargs)



# Order in which `group_importance(algorithm=None)` looks for a group's vector.
_INFERENCE_ORDER = ("logistic_sigmoid", "gamma", "group_lasso")


def group_importance(cgraph: ChannelGraph, layers: dict[str, Any],
                     algorithm: str | None = None, *,
                     l1_fraction: float = 0.0) -> dict[int, np.ndarray]:
    """{group id: float64 importance vector} computed from the model's current weights by
    the same algorithm objects (and so the same combination rule) a regularizer uses.

    Args:
        cgraph, layers: the channel graph and `layers_by_op_name(model)`.
        algorithm: one of `ALGORITHMS`, or None: per group, the gates when
            ProbabilisticGate layers cover it, else |gamma| when a BatchNormalization
            covers it, else the kernel norms (group_lasso), which cover every group with
            a source.
        l1_fraction: group_lasso's L1 share.

    Groups the algorithm cannot regularize (and frozen groups) are absent.
    """
    names = _INFERENCE_ORDER if algorithm is None else (algorithm,)
    out: dict[int, np.ndarray] = {}
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "cannot be regularized": the next one may
            try:
                algo = make_algorithm(name, cgraph, layers, l1_fraction=l1_fraction)
            except InvalidArgumentError:
                if algorithm is not None:
                    raise
                continue
        for gid, vector in algo.group_importance().items():
            out.setdefault(gid, vector)
    return out


def top_channels(scores: Any, k: int) -> np.ndarray:
    """Sorted indices of the `k` highest scores (ties: the lower index first)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return np.sort(order[:int(k)]).astype(np.int64)
