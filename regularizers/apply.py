"""Rebuild a slim Keras model from a learned channel structure.

    structure = load_structure("learned_structure/structure_00010000.json")
    slim = apply_structure(model, structure, align=8)        # weights of kept channels
    factor, scaled, ms = fit_to_target(model, structure, "t4", target_ms=1.5,
                                       predictor="roofline")

A structure is ``{conv/dense layer name: alive output channels}`` (see
`regularizers.structure`). Channel groups come from `build_channel_graph`: every
conv/dense layer of the structure sets the width of its group (layers tied by an Add
must agree; in a group tied channel by channel, by a channel shuffle or a grouped
conv, each layer has its own count and the group keeps the best ranked classes that
give every layer at least its count), the other layers (BatchNormalization,
depthwise convs, activations, pooling, Add, Concatenate, Flatten, channel slices and
splits, a shuffle's Reshape and Permute, ...) follow their inputs (a slice's bounds,
a split's cuts, a reshape's shape and a grouped conv's filters rewritten to the kept
channels, `groups` kept). The new model is built by walking the functional graph and
re-creating every layer from its config (new layer instances on new tensors; nested
models are flattened into one functional model).

The surviving channels of each group are the ones the structure records (a
`Structure` from ``regularizer.get_alive_counts()`` or `load_structure`); for counts
alone they are the top-ranked by the group's one importance vector, the same combined
vector the regularizer's alive counts come from (`group_importance`: max |gamma| over
every BN on the group, max kernel norm over its sources, or 1 - prod(1 - p) over its
gates), unless ``importance`` is given. Every weight is sliced to them, so a network
whose removed channels are exactly zero at inference computes the same outputs after
slimming; except a pruned residual stream (``prune_residual_stream=True``), whose
norms average over the kept channels only, so the slim model approximates the masked
one (see `build_channel_graph`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from latency_lab.graph import UniqueNames
from latency_lab.keras_walker import (
    Call,
    pack_inputs,
    pack_outputs,
    producer_of,
    require_functional,
    walk,
)
from regularizers.algorithms import ALGORITHMS, group_importance, layers_by_op_name, top_channels
from regularizers.grouping import (ATTENTION_PROJECTIONS, ChannelGraph, ChannelOp,
                                   build_channel_graph, split_boundaries)
from regularizers.structure import Structure
from latency_lab.errors import InvalidArgumentError

__all__ = ["apply_structure", "scale_structure", "fit_to_target", "group_widths"]

_FILTER_TYPES = frozenset({
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "SeparableConv1D", "SeparableConv2D",
})
_TRANSPOSE_TYPES = frozenset({"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"})


# ------------------------------------------------------------------- name matching


def _source_index(cg: ChannelGraph) -> dict[str, list[ChannelOp]]:
    """Names a structure may use for a conv/dense (or attention) layer -> its ops (all
    calls)."""
    index: dict[str, list[ChannelOp]] = {}
    for op in cg.structure_ops:
        keys = {op.layer_name, op.layer_name.rsplit("/", 1)[-1]}
        for k in keys:
            index.setdefault(k, []).append(op)
    return index


def _valid_names_hint(cg: ChannelGraph, limit: int = 8) -> str:
    names = list(dict.fromkeys(op.layer_name for op in cg.structure_ops))
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return f"Valid conv/dense/attention layer names: {shown}{more}."


def _as_count(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not (
            isinstance(value, (int, np.integer))
            or (isinstance(value, (float, np.floating)) and float(value).is_integer())):
        raise InvalidArgumentError(
            f"{where}: the count of layer {name!r} must be an int, received {value!r}."
        )
    return int(value)


def _check_align(where: str, align: Any) -> int:
    if isinstance(align, bool) or not isinstance(align, (int, np.integer)) or align < 1:
        raise InvalidArgumentError(
            f"{where}: `align` must be an int >= 1 (round channel counts up to a multiple "
            f"of it), received {align!r}."
        )
    return int(align)


def _unit_align(group: Any, align: int) -> int:
    """`align` for a group of channels; 1 for a group of heads (a multiple of 8 heads
    would keep every head of an 8-head layer)."""
    return 1 if group.unit == "head" else align


def _align_up(count: int, align: int, cap: int | None = None) -> int:
    out = int(math.ceil(count / align) * align)
    return out if cap is None else min(out, cap)


def _resolve_groups(cg: ChannelGraph, structure: Mapping, where: str, *,
                    min_count: int = 1) -> tuple[dict[int, tuple[int, str]], dict[str, int]]:
    """Validate `structure`; return ({group id: (count, first layer)}, {name: group id}).

    Raises ValueError for unknown names, counts out of range and tied layers that
    disagree. Frozen groups are returned too (callers decide what to do with them).
    """
    if not isinstance(structure, Mapping):
        raise InvalidArgumentError(
            f"{where}: expected a structure mapping {{layer name: alive channel count}}, "
            f"received {type(structure).__name__}."
        )
    index = _source_index(cg)
    per_group: dict[int, tuple[int, str]] = {}
    group_of: dict[str, int] = {}
    for name, value in structure.items():
        if not isinstance(name, str) or name not in index:
            raise InvalidArgumentError(
                f"{where}: model {cg.graph.name!r} has no conv/dense layer named {name!r} "
                f"(structure entry {name!r}: {value!r}). {_valid_names_hint(cg)}"
            )
        count = _as_count(where, name, value)
        gids = {op.structure_group for op in index[name]}
        if len(gids) != 1 or None in gids:
            raise InvalidArgumentError(f"{where}: layer {name!r} has no single output channel group.")
        gid = gids.pop()
        size = index[name][0].structure_width
        if not min_count <= count <= size:
            unit = cg.groups[gid].unit
            raise InvalidArgumentError(
                f"{where}: structure entry {name!r}: {count} is out of range; expected an "
                f"int in [{min_count}, {size}] (layer {name!r} has {size} {unit}s)."
            )
        group_of[name] = gid
        if cg.has_classes(gid):  # its layers have their own widths
            continue
        if gid in per_group and per_group[gid][0] != count:
            other, other_count = per_group[gid][1], per_group[gid][0]
            raise InvalidArgumentError(
                f"{where}: layers {other!r} and {name!r} are tied (their channels are "
                f"combined element-wise, e.g. by an Add, so they form one group) but the "
                f"structure gives {other!r}: {other_count} and {name!r}: {count}. Give "
                f"tied layers the same count (group sources: {cg.groups[gid].sources})."
            )
        per_group.setdefault(gid, (count, name))
    return per_group, group_of


def group_widths(model_or_cg: Any, structure: Mapping, align: int = 1, *,
                 where: str = "group_widths",
                 prune_residual_stream: bool | None = None) -> dict[int, int]:
    """{group id: new width} of every group of the model's channel graph.

    A group with 0 alive channels keeps the minimum a layer needs (1, or `align`),
    with one warning naming its layers. `prune_residual_stream` as in
    `apply_structure` (used when a model, not a channel graph, is given)."""
    cg = _channel_graph(model_or_cg, structure, prune_residual_stream)
    widths, _ = _widths_and_groups(cg, structure, align, where)
    return widths


def _stream_option(structure: Any, prune_residual_stream: bool | None) -> bool:
    """The `prune_residual_stream` to group a model with: the caller's, else the
    structure's recorded one, else False."""
    if prune_residual_stream is None:
        return bool(getattr(structure, "prune_residual_stream", False))
    return prune_residual_stream


def _channel_graph(model_or_cg: Any, structure: Any,
                   prune_residual_stream: bool | None) -> ChannelGraph:
    if isinstance(model_or_cg, ChannelGraph):
        return model_or_cg
    return build_channel_graph(
        model_or_cg, prune_residual_stream=_stream_option(structure, prune_residual_stream))


def _widths_and_groups(cg: ChannelGraph, structure: Mapping, align: int,
                       where: str) -> tuple[dict[int, int], dict[str, int]]:
    align = _check_align(where, align)
    per_group, group_of = _resolve_groups(cg, structure, where, min_count=0)
    widths = {gid: g.size for gid, g in cg.groups.items()}
    for gid, counts in _class_requests(cg, structure, group_of).items():
        if not cg.groups[gid].frozen:  # channels ranked by index (no weights here)
            widths[gid] = len(_class_choice(cg, gid, counts, np.arange(cg.groups[gid].size),
                                            align=align))
    empty: list[str] = []
    for gid, (count, name) in per_group.items():
        g = cg.groups[gid]
        if g.frozen:
            if count != g.size:
                warnings.warn(
                    f"{where}: layer {name!r} keeps its full width {g.size} (structure "
                    f"says {count}): its channels are frozen "
                    f"({', '.join(sorted(set(g.frozen_reasons)))}).", stacklevel=3)
            continue
        if count == 0:
            empty.extend(cg.op(src).layer_name for src in g.sources)
        widths[gid] = _align_up(max(count, 1), _unit_align(g, align), g.size)
    if empty:
        warnings.warn(
            f"{where}: layers {sorted(set(empty))} have 0 alive channels; each keeps "
            f"{_align_up(1, align)} (the minimum a layer needs"
            f"{f', rounded up to align={align}' if align > 1 else ''}) so the network "
            "still connects. Lower the regularization strength if this is not intended.",
            stacklevel=3)
    return widths, group_of


# ------------------------------------------------------------------ channel choice


def _structure_kept(cg: ChannelGraph, structure: Mapping,
                    group_of: dict[str, int], where: str) -> dict[int, np.ndarray]:
    """{group id: kept channel indices} recorded in a `Structure` (tied layers must
    agree; indices must lie inside the group)."""
    recorded = getattr(structure, "kept", None) or {}
    out: dict[int, np.ndarray] = {}
    first: dict[int, str] = {}
    for name, idx in recorded.items():
        gid = group_of.get(name)
        if gid is None or cg.has_classes(gid):
            continue
        idx = np.sort(np.asarray(idx, dtype=np.int64))
        size = cg.groups[gid].size
        if idx.size and (idx[0] < 0 or idx[-1] >= size):
            raise InvalidArgumentError(
                f"{where}: the kept channels of layer {name!r} include index "
                f"{int(idx[-1] if idx[-1] >= size else idx[0])}, outside its {size} "
                "channels; was the structure learned on another model?")
        if gid in out and not np.array_equal(out[gid], idx):
            raise InvalidArgumentError(
                f"{where}: layers {first[gid]!r} and {name!r} are tied (one channel "
                "group) but the structure keeps different channels of them.")
        out.setdefault(gid, idx)
        first.setdefault(gid, name)
    return out


def _layer_classes(cg: ChannelGraph, name: str) -> np.ndarray:
    """The class of each output channel of conv/dense layer `name` (each head of an
    attention layer)."""
    op = _source_index(cg)[name][0]
    if op.structure_classes is not None:
        return op.structure_classes
    return np.arange(cg.groups[op.structure_group].size, dtype=np.int64)


def _class_requests(cg: ChannelGraph, structure: Mapping,
                    group_of: dict[str, int]) -> dict[int, dict[str, int]]:
    """{group id: {layer: count}} for groups whose layers have their own widths."""
    out: dict[int, dict[str, int]] = {}
    for name, gid in group_of.items():
        if cg.has_classes(gid):
            out.setdefault(gid, {})[name] = int(structure[name])
    return out


def _class_choice(cg: ChannelGraph, gid: int, counts: dict[str, int], order: np.ndarray,
                  *, least: int = 1, align: int = 1) -> np.ndarray:
    """Sorted classes: the shortest prefix of `order` (classes, best first) that gives
    every layer in `counts` at least its count (at least `least` classes, rounded up to
    a multiple of `align`)."""
    n = cg.groups[gid].size
    m = least
    for name, count in counts.items():
        hits = np.bincount(_layer_classes(cg, name), minlength=n)[order]
        m = max(m, int(np.searchsorted(np.cumsum(hits), count)) + (1 if count else 0))
    return np.sort(order[:_align_up(max(m, 1), align, n)]).astype(np.int64)


def _choose_classes(cg: ChannelGraph, gid: int, counts: dict[str, int], structure: Mapping,
                    scores: Any, align: int) -> np.ndarray:
    """Kept classes of a group whose layers have their own widths: the classes the
    structure records for its layers (tied layers must agree), else the best ranked
    classes that give every named layer its count (`_class_choice`)."""
    recorded = getattr(structure, "kept", None) or {}
    n = cg.groups[gid].size
    chosen: set[int] = set()
    mine = {name: np.asarray(idx, np.int64) for name, idx in recorded.items()
            if name in counts}
    for name, idx in mine.items():
        classes = _layer_classes(cg, name)
        if idx.size and idx.max() >= len(classes):
            raise InvalidArgumentError(
                f"apply_structure: the kept channels of layer {name!r} include index "
                f"{int(idx.max())}, outside its {len(classes)} channels; was the structure "
                "learned on another model?")
        chosen.update(classes[idx].tolist())
    for name, idx in mine.items():
        classes = _layer_classes(cg, name)
        if not np.array_equal(np.sort(idx), np.flatnonzero(np.isin(classes, list(chosen)))):
            raise InvalidArgumentError(
                f"apply_structure: layer {name!r} is tied channel by channel to other layers "
                f"of its group ({cg.groups[gid].sources}) but the structure keeps channels "
                "of it that do not match theirs.")
    s = None if scores is None else scores(gid)
    rank = -np.arange(n, dtype=np.float64) if s is None else np.array(s, dtype=np.float64)
    rank[list(chosen)] = np.inf
    order = np.argsort(-rank, kind="stable")
    if not any(counts.values()) and not chosen:
        names = [cg.op(src).layer_name for src in cg.groups[gid].sources]
        warnings.warn(
            f"apply_structure: layers {sorted(set(names))} have 0 alive channels; their "
            "group keeps its best ranked channel so the network still connects.",
            stacklevel=4)
    return _class_choice(cg, gid, counts, order, least=len(chosen), align=align)


def _given_importance(cg: ChannelGraph, importance: Mapping | None) -> dict[int, np.ndarray]:
    given: dict[int, list[np.ndarray]] = {}
    if importance is None:
        return {}
    if not isinstance(importance, Mapping):
        raise InvalidArgumentError(
            "apply_structure: `importance` must be None or a mapping {conv/dense layer "
            f"name: 1-D per-channel scores}}, received {type(importance).__name__}.")
    index = _source_index(cg)
    for name, scores in importance.items():
        if name not in index:
            raise InvalidArgumentError(
                f"apply_structure: `importance` names {name!r}, which is not a "
                f"conv/dense layer of model {cg.graph.name!r}. {_valid_names_hint(cg)}")
        gid = index[name][0].structure_group
        classes = _layer_classes(cg, name)
        arr = np.asarray(scores, dtype=np.float64)
        if arr.shape != classes.shape:
            raise InvalidArgumentError(
                f"apply_structure: importance of layer {name!r} has shape {arr.shape}; "
                f"expected ({len(classes)},), one score per output channel.")
        per_class = np.full(cg.groups[gid].size, -np.inf)
        np.maximum.at(per_class, classes, arr)  # tied channels: the best of them
        given.setdefault(gid, []).append(per_class)
    return {gid: np.max(np.stack(v), axis=0) for gid, v in given.items()}


def _choose_channels(model: Any, cg: ChannelGraph, widths: dict[int, int],
                     structure: Mapping, group_of: dict[str, int],
                     importance: Mapping | None, algorithm: str | None,
                     copy_weights: bool, align: int = 1) -> dict[int, np.ndarray]:
    """Kept channel indices of every group: the structure's recorded indices, topped up
    (``align``, a group with 0 alive channels) or, for counts alone, chosen by rank:
    `importance` when given, else the model's one importance vector per group
    (`regularizers.algorithms.group_importance`, the regularizer's own rule)."""
    recorded = _structure_kept(cg, structure, group_of, "apply_structure")
    given = _given_importance(cg, importance)
    if algorithm is None:
        algorithm = getattr(structure, "algorithm", None)
    l1 = float(getattr(structure, "l1_fraction", 0.0) or 0.0)
    computed: dict[int, np.ndarray] | None = None

    def scores(gid: int) -> np.ndarray | None:
        nonlocal computed
        if gid in given:
            return given[gid]
        if computed is None:
            computed = group_importance(cg, layers_by_op_name(model), algorithm,
                                        l1_fraction=l1)
        return computed.get(gid)

    kept: dict[int, np.ndarray] = {}
    requests = _class_requests(cg, structure, group_of)
    for gid, g in cg.groups.items():
        if cg.has_classes(gid) and not g.frozen:
            kept[gid] = _choose_classes(cg, gid, requests.get(gid, {}), structure,
                                        scores if copy_weights else None, align)
            continue
        k = widths[gid]
        if k >= g.size:
            kept[gid] = np.arange(g.size, dtype=np.int64)
            continue
        base = recorded.get(gid)
        if base is not None and len(base) == k:
            kept[gid] = base
            continue
        if not copy_weights and base is None:
            kept[gid] = np.arange(k, dtype=np.int64)
            continue
        s = scores(gid)
        if s is None:
            s = -np.arange(g.size, dtype=np.float64)  # nothing to rank by: first channels
        if base is None:
            kept[gid] = top_channels(s, k)
        elif len(base) > k:
            kept[gid] = np.sort(base[top_channels(s[base], k)])
        else:  # more than recorded: the recorded ones, then the best of the rest
            s = np.array(s, dtype=np.float64)
            s[base] = np.inf
            kept[gid] = top_channels(s, k)
    return kept


def _propagate(cg: ChannelGraph, group_kept: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """Kept channel indices (into the original channels) of every tensor ref.

    A tensor whose layout lists its channels in order keeps the channels whose class is
    kept; after Flatten or a depthwise ``depth_multiplier > 1`` (layouts that only count)
    the indices follow from the input's."""
    masks = {}
    for gid, g in cg.groups.items():
        masks[gid] = np.zeros(g.size, dtype=bool)
        masks[gid][group_kept[gid]] = True

    def from_layout(segments) -> np.ndarray:
        parts, offset = [], 0
        for seg in segments:
            classes = cg.segment_classes(seg)
            parts.append(np.flatnonzero(masks[seg[0]][classes]) + offset)
            offset += len(classes)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    kept: dict[str, np.ndarray] = {}
    for cop in cg.ops:
        op = cop.op
        ins = [kept[r] for r in op.inputs]
        if cop.kind == "frozen":  # an unsupported layer kept whole
            for k, s in zip(ins, op.input_shapes):
                if len(k) != _channels(s, op):
                    raise InvalidArgumentError(
                        f"apply_structure: layer {cop.layer_name!r} ({cop.type}) cannot "
                        "follow a change of its input channels; keep the layers feeding "
                        f"it at full width.{_stream_hint(cg, cop)}")
            out = np.arange(op.channels_out)
        elif cop.exact:
            out = from_layout(cop.out_segments)
        elif cop.kind == "depthwise":
            dm = int(op.attrs.get("depth_multiplier", 1))
            out = (ins[0][:, None] * dm + np.arange(dm)[None, :]).reshape(-1)
        elif cop.kind == "concat":
            parts, offset = [], 0
            for k, s in zip(ins, op.input_shapes):
                parts.append(k + offset)
                offset += _channels(s, op)
            out = np.concatenate(parts)
        elif cop.kind == "reshape":  # Flatten, or a size-1 reshape of a flattened tensor
            out = _flatten_kept(op, ins[0])
        else:  # pass-through, merge and size-1 reshapes of a counting layout
            out = ins[0]
        kept[op.name] = np.asarray(out, dtype=np.int64)
        for i in range(1, len(op.output_shapes)):
            if i - 1 < len(cop.extra_out_segments) and cop.kind == "split":
                kept[f"{op.name}:{i}"] = from_layout(cop.extra_out_segments[i - 1])
            elif cop.kind == "pass_through":  # a split along another axis
                kept[f"{op.name}:{i}"] = kept[op.name]
            else:
                kept[f"{op.name}:{i}"] = np.arange(_channels(op.output_shapes[i], op))
    return kept


def _stream_hint(cg: ChannelGraph, cop: ChannelOp) -> str:
    """What to do when a layer on a pruned residual stream cannot be sliced."""
    if not cg.prune_residual_stream:
        return ""
    return (f" The residual stream is pruned (prune_residual_stream=True): leave "
            f"prune_residual_stream off, or list {cop.layer_name!r} in the regularizer's "
            "frozen_layers so its channels stay whole.")


def _unit_indices(kept_classes: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """Indices of the units (channels, heads) whose class is kept."""
    if classes is None:
        return np.asarray(kept_classes, dtype=np.int64)
    return np.flatnonzero(np.isin(classes, kept_classes)).astype(np.int64)


def _flatten_kept(op: Any, kept_in: np.ndarray) -> np.ndarray:
    """Kept positions of a flattened tensor: every spatial position's kept channels."""
    shape = op.input_shapes[0]
    c = _channels(shape, op)
    rank = len(shape)
    axis = op.channel_axis % rank if rank >= 2 else 0
    positions = math.prod(int(d) for i, d in enumerate(shape) if i not in (0, axis))
    return (np.arange(positions)[:, None] * c + kept_in[None, :]).reshape(-1)


def _channels(shape: Sequence[int], op: Any) -> int:
    if len(shape) < 2:
        return 1
    return int(shape[op.channel_axis % len(shape)])


# ------------------------------------------------------------------------ rebuild


class _Rebuilder:
    """Walks the functional graph in the order of `latency_lab.keras_graph.from_keras`
    (the same `keras_walker.walk`, so op names match the channel graph) and calls new
    layers on new tensors."""

    def __init__(self, cg: ChannelGraph, kept: dict[str, np.ndarray],
                 heads: dict[str, np.ndarray]):
        self.cg = cg
        self.kept = kept
        self.heads = heads  # attention op -> its kept heads
        self.unique = UniqueNames()
        self.new_layer_of: dict[int, Any] = {}  # id(old layer) -> new layer
        self.copies: list[tuple[Any, Any, ChannelOp]] = []  # (old, new, first call)
        self.used_layer_names: set[str] = set()

    def visit(self, call: Call, values: list) -> list:
        """The new layer called on the new tensors `values` (a `walk` visitor)."""
        import keras

        operation = call.operation
        name = self.unique(call.scope + operation.name)
        cop = self.cg.op(name)
        new_layer = self.new_layer_of.get(id(operation))
        if new_layer is None:
            new_layer = self._new_layer(operation, cop, call.scope)
            self.new_layer_of[id(operation)] = new_layer
            if isinstance(operation, keras.layers.Layer):
                self.copies.append((operation, new_layer, cop))
        args, kwargs = call.fill_in(values)
        if cop.kind == "slice":  # x[..., a:b]: the bounds counted in kept channels
            args = (args[0], self._slice_key(cop), *args[2:])
        return keras.tree.flatten(new_layer(*args, **kwargs))

    def _before(self, cop: ChannelOp, position: int) -> int:
        """Kept input channels before `position` of the input's original channels."""
        return int(np.searchsorted(self.kept[cop.op.inputs[0]], position))

    def _slice_key(self, cop: ChannelOp) -> tuple:
        op = cop.op
        key = [slice(*b) for b in op.attrs["getitem"]]
        key[0] = slice(None)
        ch = op.channel_axis % len(op.input_shapes[0])
        start, stop, _ = op.attrs["getitem"][ch]
        key[ch] = slice(self._before(cop, start), self._before(cop, stop))
        return tuple(key)

    def _target_shape(self, cop: ChannelOp) -> tuple:
        """Output shape (no batch) of a Reshape at the kept channels: the channel axis,
        or the axis a split channel block loses channels along, shrinks."""
        op = cop.op
        shape = [int(d) for d in op.output_shape[1:]]
        n = len(self.kept[op.name])
        if cop.out_block is None:
            shape[op.channel_axis % len(op.output_shape) - 1] = n
            return tuple(shape)
        dims, axis = cop.out_block
        k = len(dims)
        others = math.prod(d for i, d in enumerate(dims) if i != axis)
        shape[len(shape) - k + axis] = n // others
        return tuple(shape)

    def _new_op(self, operation: Any, cop: ChannelOp) -> Any:
        """A keras.ops operation with its channel arguments at the kept channels (a
        split's cuts, a reshape's shape); others are stateless and called again."""
        op = cop.op
        if cop.type == "ops.Split" and cop.kind == "split":
            cuts = [self._before(cop, c) for c in split_boundaries(op)]
            return type(operation).from_config({**operation.get_config(),
                                                "indices_or_sections": cuts})
        if cop.type == "ops.Reshape" and cop.kind == "reshape":
            cfg = operation.get_config()
            cfg["newshape"] = (cfg["newshape"][0], *self._target_shape(cop))
            return type(operation).from_config(cfg)
        return operation

    def _new_layer(self, operation: Any, cop: ChannelOp, prefix: str) -> Any:
        import keras

        if not isinstance(operation, keras.layers.Layer):
            return self._new_op(operation, cop)
        op = cop.op
        out_n = len(self.kept[op.name])
        in_n = [len(self.kept[r]) for r in op.inputs]
        in_full = [_channels(s, op) for s in op.input_shapes]
        cfg = operation.get_config()
        t = cop.type
        if cop.kind == "source":
            groups = int(cfg.get("groups", 1) or 1)
            if groups > 1 and (out_n % groups or in_n[0] % groups):  # tied: never
                raise InvalidArgumentError(
                    f"apply_structure: layer {cop.layer_name!r} is a grouped convolution "
                    f"(groups={groups}) but keeps {in_n[0]} input and {out_n} output "
                    "channels, not the same count in every group.")
            if "filters" in cfg:
                cfg["filters"] = out_n
            elif "units" in cfg:
                cfg["units"] = out_n
            elif "output_dim" in cfg:  # Embedding
                cfg["output_dim"] = out_n
            else:
                raise InvalidArgumentError(
                    f"apply_structure: cannot set the width of layer {cop.layer_name!r} "
                    f"({t}): its config has neither `filters` nor `units`.")
        elif cop.kind == "attention":
            cfg["num_heads"] = len(self.heads[op.name])
            cfg["output_shape"] = _attention_output_shape(cop, cfg.get("output_shape"),
                                                          in_n[_role_index(op, "query")],
                                                          out_n)
        elif t == "Reshape" and cop.kind == "reshape":
            cfg["target_shape"] = self._target_shape(cop)
        if prefix:  # flattened nested model: avoid clashing layer names
            base = cfg.get("name", operation.name)
            if base in self.used_layer_names:
                cfg["name"] = prefix.replace("/", "_") + base
        self.used_layer_names.add(cfg.get("name", operation.name))
        return type(operation).from_config(cfg)


def _attention_output_shape(cop: ChannelOp, shape: Any, query: int, out_n: int) -> Any:
    """A rebuilt attention's `output_shape`: pinned to its output width when that no
    longer follows the query's (a pruned query, or a pruned residual stream)."""
    if out_n == cop.op.channels_out:  # output whole
        return cop.op.channels_out if shape is None and query != out_n else shape
    if shape is None or isinstance(shape, (int, np.integer)) or len(tuple(shape)) == 1:
        return out_n
    raise InvalidArgumentError(
        f"apply_structure: MultiHeadAttention {cop.layer_name!r} has output_shape="
        f"{tuple(shape)}, so its output channels cannot be sliced to the {out_n} kept "
        "channels of the residual stream. Leave prune_residual_stream off, or list "
        f"{cop.layer_name!r} in frozen_layers.")


def _slice_weight(value: np.ndarray, new_shape: tuple, var_name: str, cop: ChannelOp,
                  in_idx: np.ndarray, in_full: int, out_idx: np.ndarray,
                  out_full: int) -> np.ndarray:
    t = cop.type
    short = var_name.rsplit("/", 1)[-1]
    if cop.kind == "source" and short in ("kernel", "depthwise_kernel", "pointwise_kernel",
                                          "bias"):
        if short == "bias":
            return np.take(value, out_idx, axis=-1)
        if short == "depthwise_kernel":
            return np.take(value, in_idx, axis=-2)
        if short == "pointwise_kernel":
            dm = value.shape[-2] // max(in_full, 1)
            dw_idx = (in_idx[:, None] * dm + np.arange(dm)[None, :]).reshape(-1)
            return np.take(np.take(value, dw_idx, axis=-2), out_idx, axis=-1)
        if t in _TRANSPOSE_TYPES:
            return np.take(np.take(value, out_idx, axis=-2), in_idx, axis=-1)
        groups = int(cop.op.attrs.get("groups", 1) or 1)
        if groups > 1:  # kernel rows are one block's channels; every block keeps the same
            in_idx = in_idx[in_idx < in_full // groups]
        return np.take(np.take(value, in_idx, axis=-2), out_idx, axis=-1)
    if cop.kind == "depthwise" and short in ("kernel", "bias"):
        if short == "kernel":
            return np.take(value, in_idx, axis=-2)
        return np.take(value, out_idx, axis=-1)
    # Generic: slice every axis whose size changed, by the input or output channels.
    for axis, (old, new) in enumerate(zip(value.shape, new_shape)):
        if old == new:
            continue
        if old == out_full and new == len(out_idx):
            value = np.take(value, out_idx, axis=axis)
        elif old == in_full and new == len(in_idx):
            value = np.take(value, in_idx, axis=axis)
        else:
            raise InvalidArgumentError(
                f"apply_structure: cannot carry weight {var_name!r} of layer "
                f"{cop.layer_name!r} ({t}) from shape {tuple(value.shape)} to "
                f"{tuple(new_shape)}; pass copy_weights=False or keep the layer's inputs "
                "at full width.")
    return value


def _role_index(op: Any, role: str) -> int:
    """Position among an attention op's inputs of `role` (the key: the value's when
    no key is passed)."""
    roles = list(op.attrs.get("input_roles") or ())
    if role == "key" and role not in roles:
        role = "value"
    return roles.index(role)


def _copy_attention(old: Any, new: Any, cop: ChannelOp, kept: dict[str, np.ndarray],
                    heads: np.ndarray) -> None:
    """A MultiHeadAttention's kept heads: q, k, v kernels (in, heads, dim) at the kept
    heads and their inputs' kept channels, biases (heads, dim) at the kept heads, the
    output kernel (heads, dim, out) at the kept heads and output channels, the output
    bias at the kept output channels (all of them unless the residual stream is
    pruned)."""
    op = cop.op
    out_idx = kept[op.name]
    pairs = []
    for role, sub, axis in ATTENTION_PROJECTIONS:
        old_dense, new_dense = getattr(old, sub), getattr(new, sub)
        kernel = np.take(np.asarray(old_dense.kernel.numpy()), heads, axis=axis)
        bias = None if old_dense.bias is None else np.asarray(old_dense.bias.numpy())
        if role != "output":  # rows: the input's kept channels; the bias has heads
            kernel = np.take(kernel, kept[op.inputs[_role_index(op, role)]], axis=0)
            bias = None if bias is None else np.take(bias, heads, axis=0)
        elif len(out_idx) != op.channels_out:  # a pruned stream: the kept columns
            kernel = np.take(kernel, out_idx, axis=-1)
            bias = None if bias is None else np.take(bias, out_idx, axis=-1)
        pairs.append((new_dense.kernel, kernel))
        if bias is not None:
            pairs.append((new_dense.bias, bias))
    if getattr(old, "head_gate", None) is not None:  # a GatedMultiHeadAttention
        pairs.append((new.head_gate.logits,
                      np.take(np.asarray(old.head_gate.logits.numpy()), heads, axis=0)))
    for variable, value in pairs:
        if tuple(variable.shape) != value.shape:
            raise InvalidArgumentError(
                f"apply_structure: weight {variable.name!r} of layer {cop.layer_name!r} "
                f"sliced to shape {value.shape}, but the rebuilt layer expects "
                f"{tuple(variable.shape)}; pass copy_weights=False.")
        variable.assign(value)


def _copy_weights(rb: _Rebuilder, kept: dict[str, np.ndarray]) -> None:
    for old, new, cop in rb.copies:
        if cop.kind == "attention":
            _copy_attention(old, new, cop, kept, rb.heads[cop.op.name])
            continue
        old_vars, new_vars = list(old.weights), list(new.weights)
        if not old_vars:
            continue
        if len(old_vars) != len(new_vars):
            raise InvalidArgumentError(
                f"apply_structure: layer {cop.layer_name!r} has {len(old_vars)} weights "
                f"but its rebuilt copy has {len(new_vars)}; pass copy_weights=False.")
        op = cop.op
        if op.inputs:
            in_idx = kept[op.inputs[0]]
            in_full = _channels(op.input_shapes[0], op)
        else:
            in_idx, in_full = np.arange(0), 0
        out_idx, out_full = kept[op.name], op.channels_out
        for ov, nv in zip(old_vars, new_vars):
            value = np.asarray(ov.numpy())
            new_shape = tuple(int(d) for d in nv.shape)
            if value.shape != new_shape or len(out_idx) != out_full or len(in_idx) != in_full:
                if value.ndim:
                    try:
                        value = _slice_weight(value, new_shape, ov.name, cop, in_idx,
                                              in_full, out_idx, out_full)
                    except InvalidArgumentError as exc:
                        hint = _stream_hint(rb.cg, cop)
                        if not hint:
                            raise
                        raise InvalidArgumentError(f"{exc}{hint}") from None
            if value.shape != new_shape:
                raise InvalidArgumentError(
                    f"apply_structure: weight {ov.name!r} of layer {cop.layer_name!r} "
                    f"sliced to shape {value.shape}, but the rebuilt layer expects "
                    f"{new_shape}; pass copy_weights=False.")
            nv.assign(value)


def apply_structure(model: Any, structure: Mapping, copy_weights: bool = True,
                    align: int = 1, importance: Mapping | None = None,
                    algorithm: str | None = None,
                    prune_residual_stream: bool | None = None):
    """A new functional model with the channel counts of `structure`.

    Args:
        model: a built Keras Functional or Sequential model.
        structure: ``{conv/dense layer name: output channels}`` (e.g. from
            `load_structure` or ``regularizer.get_alive_counts()``, both a `Structure`
            that also records the kept channel indices: exactly those survive). Layers
            not named keep their full width; tied layers (combined by Add etc.) must
            agree. A count of 0 keeps 1 channel (or `align`), with a warning.
        copy_weights: carry the weights of the surviving channels; False: fresh
            initial weights (the first channels of each group survive unless the
            structure records indices).
        align: round every group's count up to a multiple of `align` (capped at the
            full width); the added channels are the best ranked of the rest. Heads
            are not rounded.
        importance: optional ``{conv/dense layer name: per-channel scores}``; the top
            channels of each group (max over its named layers) survive.
        algorithm: how to rank a group's channels when the structure gives counts
            alone and `importance` does not cover the group: "gamma",
            "group_lasso" or "logistic_sigmoid", the regularizer's own combined vector
            of the group computed from the model's weights
            (`regularizers.algorithms.group_importance`). Default: the structure's
            recorded algorithm, else per group the gates, |gamma| of the BNs on it, or
            the kernel norms, the first that covers it.
        prune_residual_stream: group the model with a prunable residual stream (see
            `build_channel_graph`), so the counts of the layers on it (the embedding,
            the MLP's output Dense) set the stream's width: every LayerNormalization /
            RMSNormalization on it is rebuilt over the kept channels (their gamma and
            beta), every MultiHeadAttention gets ``output_shape`` = the kept width and
            its output kernel's and bias's kept columns. The slim model then
            approximates the masked one (a norm's statistics are over the kept
            channels only): fine-tune it. Default: the structure's recorded flag (a
            regularizer's `Structure` carries it), else False.

    Returns:
        A new `keras.Model` (same layer names; nested models flattened). The model
        inputs and outputs (frozen groups) keep their widths.

    Raises:
        ValueError: unknown layer names, counts outside ``[0, full width]``, tied layers
            with different counts or kept channels, or a layer that cannot follow the
            change.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise InvalidArgumentError(
            f"apply_structure: expected a keras.Model, received {type(model).__name__}.")
    align = _check_align("apply_structure", align)
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise InvalidArgumentError(
            f"apply_structure: `algorithm` must be None or one of {list(ALGORITHMS)}, "
            f"received {algorithm!r}.")
    cg = _channel_graph(model, structure, prune_residual_stream)
    widths, group_of = _widths_and_groups(cg, structure, align, "apply_structure")
    group_kept = _choose_channels(model, cg, widths, structure, group_of, importance,
                                  algorithm, bool(copy_weights), align)
    kept = _propagate(cg, group_kept)
    heads = {cop.name: _unit_indices(group_kept[cop.head_group], cop.structure_classes)
             for cop in cg.attention_ops}

    function = require_functional(model, f"model {model.name!r}")
    rb = _Rebuilder(cg, kept, heads)
    new_inputs = []
    for x in function.inputs:
        layer = producer_of(x)
        name = layer.name if layer is not None else x.name
        rb.unique(name)
        rb.used_layer_names.add(name)
        new_inputs.append(keras.Input(batch_shape=tuple(x.shape), dtype=x.dtype, name=name))
    outputs = walk(function, new_inputs, rb.visit)
    slim = keras.Model(pack_inputs(function, new_inputs), pack_outputs(function, outputs),
                       name=model.name)
    if copy_weights:
        _copy_weights(rb, kept)
    return slim


# -------------------------------------------------------------- scaling / fitting


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def scale_structure(structure: Mapping, factor: float, model: Any = None,
                    align: int = 1,
                    prune_residual_stream: bool | None = None) -> dict[str, int]:
    """Every count times `factor` (rounded half up, at least 1, then rounded up to a
    multiple of `align`). With `model`: counts are capped at each layer's full width,
    frozen layers keep their full width, and tied layers stay equal (the largest);
    `prune_residual_stream` as in `apply_structure`. When it is on, the result is a
    `Structure` that records it (and the algorithm), so `apply_structure` slims the
    stream too."""
    align = _check_align("scale_structure", align)
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(factor)) or factor <= 0:
        raise InvalidArgumentError(
            f"scale_structure: `factor` must be a finite number > 0, received {factor!r}.")
    factor = float(factor)
    if model is None:
        if not isinstance(structure, Mapping):
            raise InvalidArgumentError(
                "scale_structure: expected a structure mapping {layer name: count}, "
                f"received {type(structure).__name__}.")
        out = {}
        for name, value in structure.items():
            count = _as_count("scale_structure", str(name), value)
            if count < 0:
                raise InvalidArgumentError(
                    f"scale_structure: the count of layer {name!r} must be >= 0, "
                    f"received {count}.")
            out[name] = _align_up(max(1, _round_half_up(count * factor)), align)
        return _carry_stream(out, structure, prune_residual_stream)
    cg = _channel_graph(model, structure, prune_residual_stream)
    _, group_of = _resolve_groups(cg, structure, "scale_structure", min_count=0)
    scaled: dict[str, int] = {}
    per_group: dict[int, int] = {}
    own: set[str] = set()  # layers of groups tied channel by channel: their own widths
    for name, value in structure.items():
        gid = group_of[name]
        g = cg.groups[gid]
        width = len(_layer_classes(cg, name))
        if g.frozen:
            scaled[name] = width
        else:  # heads are counted one by one (`align` is for channels)
            scaled[name] = _align_up(max(1, _round_half_up(int(value) * factor)),
                                     _unit_align(g, align), width)
        if cg.has_classes(gid):
            own.add(name)
        else:
            per_group[gid] = max(per_group.get(gid, 0), scaled[name])
    return _carry_stream({name: scaled[name] if name in own else per_group[group_of[name]]
                          for name in scaled}, structure, prune_residual_stream)


def _carry_stream(counts: dict[str, int], structure: Any,
                  prune_residual_stream: bool | None) -> dict[str, int]:
    """`counts`, as a `Structure` that records a pruned residual stream when one is."""
    if not _stream_option(structure, prune_residual_stream):
        return counts
    return Structure(counts, algorithm=getattr(structure, "algorithm", None),
                     l1_fraction=getattr(structure, "l1_fraction", 0.0),
                     prune_residual_stream=True)


def fit_to_target(model: Any, structure: Mapping, profile: Any, target_ms: float,
                  predictor: str | None = None, align: int = 1, tol: float = 0.01,
                  prune_residual_stream: bool | None = None,
                  memo: dict | None = None):
    """The largest uniform factor whose scaled structure is predicted to run within
    `target_ms`.

    Bisection over ``(0, max_factor]`` (``max_factor``: every layer at full width) on
    the predicted latency of ``apply_structure(model, scale_structure(...),
    copy_weights=False)``; stops when the bracket is narrower than ``tol * max_factor``.
    The bisection grid does not depend on the target, so a larger target never gives a
    smaller factor.

    Args:
        profile: a DeviceProfile, a profile path or a shipped profile name ("t4").
        predictor: "lookup", "roofline", ...; default "lookup" when the profile has
            lookup-table samples, else "roofline".
        prune_residual_stream: as in `apply_structure`.
        memo: a dict to keep predictions in, by scaled structure, across calls for the
            same model, structure, profile, predictor and align (each prediction
            converts the slim model). Re-aiming at a nearby target, as `shrink`'s snap
            rounds do, then walks mostly the same bisection steps without converting.

    Returns:
        ``(factor, scaled_structure, predicted_ms)``.

    Raises:
        ValueError: even the smallest structure (every scaled layer at 1 channel,
            rounded up to `align`) is predicted above `target_ms`.
    """
    from latency_lab.kernels import work_items
    from latency_lab.predictors import make_predictor, predict_items
    from latency_lab.profile import load_profile

    align = _check_align("fit_to_target", align)
    if isinstance(target_ms, bool) or not isinstance(target_ms, (int, float, np.integer,
                                                                 np.floating)) \
            or not math.isfinite(float(target_ms)) or target_ms <= 0:
        raise InvalidArgumentError(
            f"fit_to_target: `target_ms` must be a finite number > 0, received {target_ms!r}.")
    if not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise InvalidArgumentError(f"fit_to_target: `tol` must be in (0, 1), received {tol!r}.")
    stream = _stream_option(structure, prune_residual_stream)
    cg = build_channel_graph(model, prune_residual_stream=stream)
    _, group_of = _resolve_groups(cg, structure, "fit_to_target", min_count=0)
    ratios = [cg.groups[group_of[n]].size / int(c) for n, c in structure.items()
              if not cg.groups[group_of[n]].frozen and int(c) > 0]
    if not ratios:
        raise InvalidArgumentError(
            "fit_to_target: the structure names no prunable conv/dense layer with a count "
            "> 0, so no factor changes the model; give counts for layers that are not "
            f"model outputs. {_valid_names_hint(cg)}")
    max_factor = max(ratios)
    counts = [int(c) for n, c in structure.items() if not cg.groups[group_of[n]].frozen]
    min_factor = 0.49 / max(max(counts), 1)  # every scaled count rounds to 0 -> 1

    prof = load_profile(profile)
    if predictor is None:
        predictor = "lookup" if prof.samples else "roofline"
    est = make_predictor(predictor, prof)
    if memo is not None and not isinstance(memo, dict):
        raise InvalidArgumentError(
            f"fit_to_target: `memo` must be a dict (or None), received {type(memo).__name__}.")
    cache: dict[tuple, float] = {} if memo is None else memo

    def evaluate(f: float) -> tuple[dict, float]:
        scaled = scale_structure(structure, f, cg, align, prune_residual_stream=stream)
        key = tuple(sorted(scaled.items()))
        if key not in cache:
            slim = apply_structure(model, scaled, copy_weights=False, align=align,
                                   prune_residual_stream=stream)
            items = work_items(slim, prof.runtime_name)
            cache[key] = float(predict_items(items, est)[0])
        return scaled, cache[key]

    lo_struct, lo_ms = evaluate(min_factor)
    if lo_ms > target_ms:
        raise InvalidArgumentError(
            f"fit_to_target: target {target_ms:g} ms is unreachable: the smallest structure "
            f"(every scaled layer at {align if align > 1 else 1} channel(s)) is predicted at "
            f"{lo_ms:.6g} ms on {prof.device_name!r} ({predictor}). Raise target_ms to at "
            f"least {lo_ms:.6g}, or prune more layers (e.g. ones not in the structure).")
    hi_struct, hi_ms = evaluate(max_factor)
    if hi_ms <= target_ms:
        return max_factor, hi_struct, hi_ms
    lo, hi = min_factor, max_factor
    while hi - lo > tol * max_factor:
        mid = 0.5 * (lo + hi)
        s, ms = evaluate(mid)
        if ms <= target_ms:
            lo, lo_struct, lo_ms = mid, s, ms
        else:
            hi = mid
    return lo, lo_struct, lo_ms
