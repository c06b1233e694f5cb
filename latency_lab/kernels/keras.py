"""The kernels of the keras runtime (TensorFlow, XLA) and of datasheet profiles: the
Keras layers themselves, from the IR graph."""

from __future__ import annotations

from typing import Any

from latency_lab import costs, op_kinds
from latency_lab.errors import UnsupportedOpError
from latency_lab.kernels.work import WorkItem, WorkItems, unknown

__all__ = ["keras_items", "spec_items"]


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


def keras_items(model: Any, *, batch_size: int = 1, input_shape=None,
                allow_unknown: bool = False) -> WorkItems:
    """Each layer timed through its op kinds (`op_kinds.layer_configs`); a layer with
    none but a cost function is charged through the roofline; folded layers are free;
    any other layer is an error unless `allow_unknown`."""
    items = WorkItems()
    for op in _graph(model, batch_size, input_shape):
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
    return items


def spec_items(model: Any, *, batch_size: int = 1, input_shape=None,
               allow_unknown: bool = False) -> WorkItems:
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
