"""Whole-network latency of a model against a profile: the kernels its runtime runs
(`kernels.work_items`), each predicted and summed with the runtime's per-invocation
overhead (`predictors.predict_items`); per-layer figures for reading."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from latency_lab.errors import ProfileError
from latency_lab.kernels import profile_work_items
from latency_lab.predictors import (LayerPrediction, PredictionBand, make_predictor,
                                    prediction_band, predict_items)
from latency_lab.profile import load_profile

__all__ = ["NetworkPrediction", "predict_model"]


@dataclass
class NetworkPrediction:
    model: str
    profile: str
    predictor: str
    latency_ms: float
    layers: list[LayerPrediction] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no latency model (allow_unknown)
    runtime: str = ""  # the profile's runtime, whose kernels are predicted
    kernels: int = 0  # kernels the runtime runs; `layers` sums them per Keras layer
    band: PredictionBand | None = None  # expected error, kernels outside the table

    def rows_note(self) -> str:
        """What the rows are: '64 layers (the kernels LiteRT runs, 71, summed per
        Keras layer; ...)'."""
        n = f"{len(self.layers)} layers"
        if self.runtime == "litert":
            return (f"{n} (the kernels LiteRT runs, {self.kernels}, summed per Keras layer "
                    "they came from; folded BatchNormalization and fused activations run "
                    "no kernel and cost nothing)")
        if self.runtime == "keras":
            return f"{n} (the ops Keras runs, {self.kernels}, summed per Keras layer)"
        return f"{n} (a datasheet roofline of {self.kernels} ops, summed per Keras layer)"

    def to_dict(self) -> dict:
        return {"model": self.model, "profile": self.profile, "predictor": self.predictor,
                "latency_ms": self.latency_ms, "runtime": self.runtime,
                "kernels": self.kernels, "layers": [l.to_dict() for l in self.layers],
                "skipped": list(self.skipped),
                "uncertainty_ms": self.band.uncertainty_ms if self.band else None,
                "outside_table": self.band.to_dict()["outside"] if self.band else []}


def predict_model(model: Any, profile: Any, predictor: str = "lookup", *,
                  batch_size: int = 1, model_name: str | None = None,
                  allow_unknown: bool = False) -> NetworkPrediction:
    """Predicted latency of `model`; a layer with no latency model is an error unless
    `allow_unknown` (then it is left out and listed in `skipped`)."""
    prof = load_profile(profile)
    if predictor == "lookup" and not prof.samples:
        raise ProfileError(
            f"profile {prof.device_name!r} is a {prof.provenance_kind} profile without "
            "lookup-table samples; use --predictor roofline, or measure one with "
            "`latency-lab profile`"
        )
    est = make_predictor(predictor, prof)
    items = profile_work_items(model, prof, batch_size=batch_size,
                               allow_unknown=allow_unknown)
    total, layers = predict_items(items, est)
    return NetworkPrediction(model_name or model.name, prof.device_name, predictor, total, layers,
                             list(items.skipped), runtime=prof.runtime_name,
                             kernels=len(items), band=prediction_band(items, est))
