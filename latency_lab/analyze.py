"""Per-layer and total costs of a network (the `analyze` command)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

from latency_lab import costs
from latency_lab.costs import OpCost
from latency_lab.errors import UnknownOpWarning
from latency_lab.graph import Graph

__all__ = ["LayerCost", "Analysis", "analyze_graph", "analyze_model", "UnknownOpWarning"]





@dataclass
class LayerCost:
    name: str
    type: str
    cost: OpCost
    input_shapes: list[tuple]
    output_shape: tuple
    known: bool = True

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            **self.cost.to_dict(),
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shape": list(self.output_shape),
        }


@dataclass
class Analysis:
    model: str
    batch_size: int
    layers: list[LayerCost]
    unknown: list[str] = field(default_factory=list)

    @property
    def total(self) -> OpCost:
        total = costs.ZERO
        for layer in self.layers:
            total = total + layer.cost
        return total

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "model": self.model,
            "batch_size": self.batch_size,
            "layers": [layer.to_dict() for layer in self.layers],
            "total": self.total.to_dict(),
        }
        if self.unknown:
            out["unknown_layers"] = list(self.unknown)
        return out


def analyze_graph(graph: Graph, *, allow_unknown: bool = False) -> Analysis:
    """Cost every op; an op without a cost function is an error unless allow_unknown,
    in which case it counts as zero and is named in a warning and in `unknown`."""
    rows: list[LayerCost] = []
    unknown: list[str] = []
    for op in graph:
        known = costs.is_supported(op.type)
        if known:
            cost = costs.cost_of(op)
        elif allow_unknown:
            cost = costs.ZERO
            unknown.append(f"{op.name} ({op.type})")
        else:
            costs.rule(op.type, layer=op.name)  # raises UnsupportedOpError
            raise AssertionError("unreachable")
        rows.append(LayerCost(op.name, op.type, cost, list(op.input_shapes), op.output_shape, known))
    if unknown:
        warnings.warn(
            f"{len(unknown)} layer(s) have no cost function and were counted as zero: "
            + ", ".join(unknown),
            UnknownOpWarning,
            stacklevel=2,
        )
    return Analysis(graph.name, graph.batch_size, rows, unknown)


def analyze_model(model: Any, *, batch_size: int = 1,
                  input_shape: Sequence[int] | None = None,
                  allow_unknown: bool = False) -> Analysis:
    from latency_lab.keras_graph import from_keras

    graph = from_keras(model, batch_size=batch_size, input_shape=input_shape)
    return analyze_graph(graph, allow_unknown=allow_unknown)
