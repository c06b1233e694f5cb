"""What a profile's samples say about the device: roofline ceilings per op class,
per-op and per-invocation overheads, and the weight-streaming bandwidth curve."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from latency_lab import costs, op_kinds
from latency_lab.errors import ProfileError

__all__ = ["ceilings_from_samples", "overhead_from_samples", "weight_bandwidth_curve",
           "bandwidth_at", "geometric_mean"]


def weight_bandwidth_curve(samples: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(working-set bytes, attained bytes/s) of the weight_stream samples, sorted by
    size; empty arrays when the profile has none."""
    pts = sorted((4.0 * s.config["n"] * s.config["c"] ** 2, s.min_ms) for s in samples
                 if s.op == "weight_stream")
    if not pts:
        return np.array([]), np.array([])
    size = np.array([p[0] for p in pts])
    bw = size / (np.array([p[1] for p in pts]) / 1e3)
    return size, bw


def bandwidth_at(curve: tuple[np.ndarray, np.ndarray], nbytes: float) -> float | None:
    """Weight-streaming bandwidth for a working set of `nbytes`, interpolated in log
    space and held constant beyond the measured range; None without a curve."""
    size, bw = curve
    if size.size == 0:
        return None
    return float(np.exp(np.interp(math.log(max(nbytes, 1.0)), np.log(size), np.log(bw))))


def ceilings_from_samples(samples: Sequence) -> dict:
    """Roofline ceilings (best observed throughput per class) and memory bandwidth
    (best bytes/s of elementwise ops whose working set exceeds 32 MiB)."""
    best = {costs.DENSE: 0.0, costs.DEPTHWISE: 0.0, costs.ELEMENTWISE: 0.0}
    bandwidth = 0.0
    for s in samples:
        if s.op in op_kinds.AUXILIARY or s.op not in op_kinds.names():
            continue
        w = op_kinds.work(s.op, s.config)
        seconds = s.min_ms / 1e3
        cls = op_kinds.op_class(s.op, s.config)
        if cls in best and w.flops > 0:
            best[cls] = max(best[cls], w.flops / seconds)
        if cls == costs.ELEMENTWISE and w.bytes_total >= 32 * 2**20:
            bandwidth = max(bandwidth, w.bytes_total / seconds)
    if bandwidth == 0.0:
        raise ProfileError(
            "no large elementwise sample to derive memory bandwidth from; the roofline "
            "phase must run first (re-run `latency-lab profile` without --resume)"
        )
    missing = [k for k, v in best.items() if v <= 0]
    if missing:
        raise ProfileError(f"no samples to derive the {missing} ceiling(s) from")
    return {"compute_flops_per_s": best, "memory_bytes_per_s": bandwidth,
            "precision": "fp32"}


def overhead_from_samples(samples: Sequence) -> dict:
    """Least-squares line through the chain timings: slope = per op, intercept = per
    invocation (clamped at zero: a negative intercept is noise)."""
    pts = sorted((int(s.config["n"]), s.min_ms) for s in samples if s.op == "chain")
    if len(pts) < 2:
        return {"per_op_ms": 0.0, "per_invocation_ms": 0.0}
    n = np.array([p[0] for p in pts], dtype=float)
    t = np.array([p[1] for p in pts], dtype=float)
    slope, intercept = np.polyfit(n, t, 1)
    return {"per_op_ms": float(max(slope, 0.0)), "per_invocation_ms": float(max(intercept, 0.0))}


def geometric_mean(values: Iterable[float]) -> float:
    vals = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")

