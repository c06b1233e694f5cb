"""Whole-network latency: the kernels a runtime runs, each predicted, summed, plus the
runtime's per-invocation overhead; per-layer figures for reading."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from latency_lab import costs, litert_graph, mapping, microbench
from latency_lab.errors import ProfileError
from latency_lab.profile import DeviceProfile, load_profile


@dataclass
class WorkItem:
    """One kernel: timed through `configs` (microbenchmark samples) or, when None,
    through the roofline with `flops`/`bytes` of class `op_class`."""

    layer: str
    layer_type: str
    configs: list | None
    flops: float = 0.0
    bytes: float = 0.0
    op_class: str = costs.ELEMENTWISE
    kernel: str = ""

    @property
    def weight_bytes(self) -> float:
        if not self.configs:
            return 0.0
        return float(sum(microbench.weight_bytes(op, cfg) for op, cfg in self.configs))

    def to_dict(self) -> dict:
        """JSON form stored in a profile's calibration section."""
        if self.configs is not None:
            return {"configs": [[op, cfg] for op, cfg in self.configs]}
        return {"flops": self.flops, "bytes": self.bytes, "op_class": self.op_class}

    @classmethod
    def from_dict(cls, d: dict) -> "WorkItem":
        if "configs" in d:
            return cls("", "", [(op, dict(cfg)) for op, cfg in d["configs"]])
        return cls("", "", None, float(d["flops"]), float(d["bytes"]), str(d["op_class"]))


@dataclass
class LayerPrediction:
    name: str
    type: str
    latency_ms: float
    bound: str

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "latency_ms": self.latency_ms,
                "bound": self.bound}


@dataclass
class NetworkPrediction:
    model: str
    profile: str
    predictor: str
    latency_ms: float
    layers: list[LayerPrediction] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"model": self.model, "profile": self.profile, "predictor": self.predictor,
                "latency_ms": self.latency_ms, "layers": [l.to_dict() for l in self.layers]}


def _layer_types(model: Any) -> dict[str, str]:
    return {layer.name: type(layer).__name__ for layer in litert_graph._all_layers(model)}


def work_items(model: Any, runtime: str, *, batch_size: int = 1,
               input_shape=None) -> list[WorkItem]:
    """The kernels to predict, in the form `runtime` (a profile's runtime name:
    litert, keras or spec) executes them."""
    if runtime == "litert":
        kernels, _ = litert_graph.litert_kernels(model, batch_size=batch_size)
        types = _layer_types(model)
        items = []
        for k in kernels:
            cfgs = litert_graph.bench_configs(k)
            if cfgs == []:
                continue
            name = k.layer
            ltype = types.get(name, k.op)
            if cfgs is None:
                flops, nbytes = litert_graph.roofline_work(k)
                items.append(WorkItem(name, ltype, None, flops, nbytes, costs.ELEMENTWISE, k.op))
            else:
                items.append(WorkItem(name, ltype, cfgs, kernel=k.op))
        return items
    from latency_lab.keras_graph import from_keras

    graph = from_keras(model, batch_size=batch_size, input_shape=input_shape)
    items = []
    for op in graph:
        if runtime == "spec":  # datasheet roofline over the Keras layers, as MorphNet does
            c = costs.cost_of(op)
            if c.flops or c.bytes_total:
                items.append(WorkItem(op.name, op.type, None, c.flops, c.bytes_total,
                                      costs.op_class(op.type), op.type))
            continue
        cfgs = mapping.bench_configs_for_op(op)
        if cfgs:
            items.append(WorkItem(op.name, op.type, cfgs, kernel=op.type))
        elif op.type not in mapping.FOLDED and costs.is_supported(op.type):
            c = costs.cost_of(op)
            if c.flops or c.bytes_total:
                items.append(WorkItem(op.name, op.type, None, c.flops, c.bytes_total,
                                      costs.op_class(op.type), op.type))
    return items


def predict_items(items: list[WorkItem], predictor: Any) -> tuple[float, list[LayerPrediction]]:
    """Total ms (with per-invocation overhead) and per-layer predictions."""
    per_layer: dict[str, LayerPrediction] = {}
    total = predictor.per_invocation_ms_
    network_weight_bytes = sum(item.weight_bytes for item in items)
    for item in items:
        if item.configs is None:
            ms = predictor.predict_work(item.flops, item.bytes, item.op_class)
            bound = predictor._bound_of(item.flops, item.bytes, item.op_class)
        else:
            ms = predictor.kernel_ms(item.configs, network_weight_bytes)
            op, cfg = item.configs[0]
            bound = predictor.bound(op, cfg)
        total += ms
        if item.layer in per_layer:
            per_layer[item.layer].latency_ms += ms
        else:
            per_layer[item.layer] = LayerPrediction(item.layer, item.layer_type, ms, bound)
    return total, list(per_layer.values())


def predict_model(model: Any, profile: Any, predictor: str = "lookup", *,
                  batch_size: int = 1, model_name: str | None = None) -> NetworkPrediction:
    from latency_lab.predictors import make_predictor

    prof = load_profile(profile)
    if predictor == "lookup" and not prof.samples:
        raise ProfileError(
            f"profile {prof.device_name!r} is a {prof.provenance_kind} profile without "
            "lookup-table samples; use --predictor roofline, or measure one with "
            "`latency-lab profile`"
        )
    est = make_predictor(predictor, prof)
    items = work_items(model, prof.runtime_name, batch_size=batch_size)
    total, layers = predict_items(items, est)
    return NetworkPrediction(model_name or model.name, prof.device_name, predictor, total, layers)
