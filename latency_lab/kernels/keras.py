"""The kernels of the keras runtime (TensorFlow, XLA) and of datasheet profiles: the
Keras layers themselves, from the IR graph."""

from __future__ import annotations

import dataclasses
from typing import Any

from latency_lab import costs, op_kinds
from latency_lab.errors import UnsupportedOpError
from latency_lab.kernels.work import WorkItem, WorkItems, unknown

__all__ = ["keras_items", "spec_items", "loop_fusible", "loop_groups", "fuse_loops",
           "LOOP_FUSIBLE_LAYERS", "XLA_BACKENDS"]


def _graph(model: Any, batch_size: int, input_shape):
    from latency_lab.keras_graph import from_keras

    return from_keras(model, batch_size=batch_size, input_shape=input_shape)


def _roofline_item(op) -> WorkItem | None:
    c = costs.cost_of(op)
    if c.flops or c.bytes_total:
        return WorkItem(op.name, op.type, None, c.flops, c.bytes_total, costs.op_class(op.type),
                        op.type)
    return None


def _no_model(op, runtime: str) -> UnsupportedOpError:
    return UnsupportedOpError(
        f"layer {op.name!r} ({op.type}) has no latency model under the {runtime} runtime: "
        f"no op kind maps Keras layer type {op.type!r} and it has no cost function. "
        f"{costs.how_to_register(op.type)}, which the roofline charges it by; or add an "
        "op kind in latency_lab/op_kinds/; or pass --allow-unknown (allow_unknown=True) "
        "to leave it out.")


# Keras layers XLA lowers to loop-fusible HLO (elementwise ops, broadcasts, pads,
# slices, reshapes, transposes and small concatenations: XLA's CPU fusion pass,
# `xla/service/cpu/cpu_instruction_fusion.cc`). In a compiled model a connected run of
# them is one loop over the tensor, not one pass per layer.
LOOP_FUSIBLE_LAYERS = frozenset({
    "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU",
    "Add", "Multiply", "Subtract", "Maximum", "Minimum", "Average", "CustomScaleLayer",
    "Rescaling", "Normalization", "ZeroPadding2D", "Cropping2D", "Reshape", "Flatten",
    "Dropout", "Permute", "Concatenate", "ops.Add", "ops.Multiply", "ops.Subtract",
    "ops.Sigmoid", "ops.Silu", "ops.HardSilu", "ops.HardSigmoid", "ops.Relu",
    "ops.Relu6", "ops.Tanh", "ops.Gelu", "ops.Transpose", "ops.GetItem", "ops.Slice"})
# Keras backends the keras runtime compiles with XLA (`runtimes.keras_runtime`: jit);
# torch runs eagerly there, one kernel per layer.
XLA_BACKENDS = ("tensorflow", "jax")
# XLA materializes a concatenation of more inputs than this, or one along the minor
# (channel) axis of at least this many channels, rather than fusing it.
MAX_FUSED_CONCAT_INPUTS = 8
MIN_UNFUSED_MINOR_CONCAT = 128


def loop_fusible(op) -> bool:
    """Whether XLA can fuse the layer `op` into a loop with its elementwise neighbours
    (`LOOP_FUSIBLE_LAYERS`; a softmax is a reduction, a big channel concat is copied)."""
    if op.type not in LOOP_FUSIBLE_LAYERS:
        return False
    if op.type == "Activation" and costs.activation_name(op) == "softmax":
        return False
    if op.type == "Concatenate":
        rank = len(op.output_shape)
        axis = int(op.attrs.get("axis", -1)) % max(rank, 1)
        minor = axis == rank - 1 and int(op.output_shape[-1]) >= MIN_UNFUSED_MINOR_CONCAT
        return len(op.input_shapes) <= MAX_FUSED_CONCAT_INPUTS and not minor
    return True


def loop_groups(graph) -> dict[str, str]:
    """{layer name: the name of the first layer of its loop} for the loop-fusible
    layers of `graph` (a `graph.Graph`, ops in topological order): a producer joins its
    consumers' loop when every consumer is loop-fusible (one that feeds a conv or a
    dense layer is written out for it, and starts no loop with the others)."""
    fusible = {op.name for op in graph if loop_fusible(op)}
    consumers: dict[str, list[str]] = {}
    for op in graph:
        for ref in op.inputs:
            consumers.setdefault(graph.producer(ref).name, []).append(op.name)
    parent = {name: name for name in fusible}
    order = {op.name: i for i, op in enumerate(graph)}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for name in (op.name for op in graph if op.name in fusible):
        users = consumers.get(name, [])
        if users and all(u in fusible for u in users):
            for u in users:
                a, b = root(name), root(u)
                if a != b:
                    parent[max(a, b, key=order.__getitem__)] = min(a, b, key=order.__getitem__)
    return {name: root(name) for name in fusible}


def _loop_work(item: WorkItem) -> float:
    """How much a loop member moves and computes (bytes + 2 flops): the member that
    times the fused loop is the one with the most (an add of two tensors over a relu
    after it; a swish, whose sigmoid is compute, over the scale and shift before it)."""
    if not item.configs:
        return item.bytes + 2.0 * item.flops
    total = 0.0
    for op, cfg in item.configs:
        w = op_kinds.work(op, cfg)
        total += op_kinds.moved_bytes(op, cfg, w) + 2.0 * w.flops
    return total


def fuse_loops(items: WorkItems, groups: dict[str, str]) -> WorkItems:
    """The items with each fused loop (`loop_groups`) charged once, as its member with
    the most work (`_loop_work`): the loop reads its inputs and writes its output
    once, so its members' separate passes and samples' calls are not all paid. The
    kept item's `kernel` names the loop's layers."""
    members: dict[str, list[WorkItem]] = {}
    for item in items:
        if item.layer in groups:
            members.setdefault(groups[item.layer], []).append(item)
    keep = {id(max(group, key=_loop_work)): group for group in members.values()}
    out = WorkItems(skipped=items.skipped)
    for item in items:
        if item.layer not in groups:
            out.append(item)
        elif id(item) in keep:
            group = keep[id(item)]
            out.append(item if len(group) == 1 else dataclasses.replace(
                item, kernel="loop(" + ", ".join(i.layer for i in group) + ")"))
    return out


def keras_items(model: Any, *, batch_size: int = 1, input_shape=None,
                allow_unknown: bool = False, backend: str | None = None) -> WorkItems:
    """Each layer timed through its op kinds (`op_kinds.layer_configs`); a layer with
    none but a cost function is charged through the roofline; folded layers are free;
    any other layer is an error unless `allow_unknown`. Under a backend the keras
    runtime compiles with XLA (`XLA_BACKENDS`; None: TensorFlow, Keras' default),
    loop-fusible layers that XLA fuses into one loop are charged once (`fuse_loops`);
    an eager backend (torch) runs every layer on its own."""
    items = WorkItems()
    graph = _graph(model, batch_size, input_shape)
    for op in graph:
        cfgs = op_kinds.layer_configs(op)
        if cfgs:
            items.append(WorkItem(op.name, op.type, cfgs, kernel=op.type))
        elif op.type in op_kinds.FOLDED_LAYERS:
            continue
        elif costs.is_supported(op.type):
            item = _roofline_item(op)
            if item is not None:
                items.append(item)
        elif op.type not in op_kinds.KERAS_LAYERS:
            unknown(items, f"layer {op.name!r} ({op.type})", _no_model(op, "keras"),
                    allow_unknown)
    if backend is not None and backend not in XLA_BACKENDS:
        return items
    return fuse_loops(items, loop_groups(graph))


def spec_items(model: Any, *, batch_size: int = 1, input_shape=None,
               allow_unknown: bool = False, backend: str | None = None) -> WorkItems:
    """Datasheet roofline over the Keras layers, as MorphNet does."""
    items = WorkItems()
    for op in _graph(model, batch_size, input_shape):
        if not costs.is_supported(op.type):
            unknown(items, f"layer {op.name!r} ({op.type})", _no_model(op, "spec"),
                    allow_unknown)
            continue
        item = _roofline_item(op)
        if item is not None:
            items.append(item)
    return items
