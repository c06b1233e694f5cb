"""What a profile's samples say about the device: roofline ceilings per op class,
per-op and per-invocation overheads, and the weight-streaming bandwidth curve."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from latency_lab import costs, op_kinds
from latency_lab.errors import ProfileError

__all__ = ["ceilings_from_samples", "overhead_from_samples", "weight_bandwidth_curve",
           "profile_weight_curve",
           "bandwidth_at", "geometric_mean", "CacheCeiling", "cache_ceilings",
           "CACHE_LEVELS"]

# Data-cache levels read from a profile's device info (`cache_bytes`), innermost first;
# the instruction cache holds no working set.
CACHE_LEVELS = ("L1d", "L2", "L3")
# A level's plateau is drawn only if it beats every slower level (and DRAM) by this
# factor: closer than that, the curve cannot tell the two apart.
_DISTINCT_RATIO = 1.1
# Without cache sizes, a new plateau starts where the bandwidth falls below the best
# of the current one by this factor (a knee).
_KNEE_RATIO = 1.25


def weight_bandwidth_curve(samples: Sequence, per_invocation_ms: float = 0.0,
                           per_op_ms: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(working-set bytes, attained bytes/s) of the weight_stream samples, sorted by
    size; empty arrays when the profile has none.

    A sample is one call of n matrix-vector products, so its fixed cost (the
    profile's `per_invocation_ms` plus n * `per_op_ms`) is taken off before dividing;
    a sample whose streaming takes less than that cost is not a point (what is left
    is the call's noise: under the keras runtime a 0.1 ms call beside 5 us of
    reads read 1-9 GB/s at 0.25-2 MB, 50 GB/s at 16 MB). A cache level is never
    read slower than memory, so a point slower than every larger one is raised to
    the slowest of those: a point the host slowed does not make the cache look
    slower than DRAM. A dip between levels stays: on the EPYC VM (LiteRT, L2 1 MB)
    2 MB streamed at 69 GB/s and 4-16 MB at 104-114, and one-row dense layers of
    2-2.6 MB measured alone ran at 65-66 GB/s (raised to the best larger point,
    114 GB/s, two were predicted -30% and -53%)."""
    pts = []
    for s in samples:
        if s.op != "weight_stream":
            continue
        fixed_ms = per_invocation_ms + s.config["n"] * per_op_ms
        streaming_ms = s.min_ms - fixed_ms
        if streaming_ms > fixed_ms:
            pts.append((4.0 * s.config["n"] * s.config["c"] ** 2, streaming_ms))
    if not pts:
        return np.array([]), np.array([])
    pts.sort()
    size = np.array([p[0] for p in pts])
    bw = size / (np.array([p[1] for p in pts]) / 1e3)
    slowest_larger = np.append(np.minimum.accumulate(bw[::-1])[::-1][1:], 0.0)
    return size, np.maximum(bw, slowest_larger)


def profile_weight_curve(prof) -> tuple[np.ndarray, np.ndarray]:
    """`weight_bandwidth_curve` of a `DeviceProfile`'s samples, each less the call
    overheads that profile measured."""
    return weight_bandwidth_curve(prof.samples, prof.per_invocation_overhead_ms,
                                  prof.per_op_overhead_ms)


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



@dataclass(frozen=True)
class CacheCeiling:
    """Streaming bandwidth a working set of at most `max_working_set_bytes` attains:
    the best weight_stream figure between the level below (`min_working_set_bytes`,
    exclusive) and half this level's size (the other half holds activations and code,
    and no cache keeps a full working set). `level` is "L2" etc., or "cache" when the
    profile records no cache sizes and the plateau was found from a knee."""

    level: str
    bytes_per_s: float
    min_working_set_bytes: float
    max_working_set_bytes: float


def _by_cache_size(size: np.ndarray, bw: np.ndarray,
                   cache_bytes: Mapping[str, int]) -> list[CacheCeiling]:
    out, below = [], 0.0
    for level in CACHE_LEVELS:
        cap = cache_bytes.get(level)
        if not cap:
            continue
        inside = (size > below) & (size <= cap / 2)
        if inside.any():
            out.append(CacheCeiling(level, float(bw[inside].max()), below,
                                    float(size[inside].max())))
        below = float(cap)
    return out


def _by_knees(size: np.ndarray, bw: np.ndarray) -> list[CacheCeiling]:
    segments: list[list[int]] = []
    for i in range(size.size):
        if segments and bw[i] >= max(bw[j] for j in segments[-1]) / _KNEE_RATIO:
            segments[-1].append(i)
        else:
            segments.append([i])
    out, below = [], 0.0
    for seg in segments:
        if len(seg) >= 2:  # one point between two knees is a transition, not a plateau
            out.append(CacheCeiling("cache", float(bw[seg].max()), below,
                                    float(size[seg].max())))
        below = float(size[seg].max())
    return out


def cache_ceilings(curve: tuple[np.ndarray, np.ndarray], dram_bytes_per_s: float,
                   cache_bytes: Mapping | None = None) -> list[CacheCeiling]:
    """The cache bandwidth plateaus of a weight-streaming curve, fastest first, each
    faster than the next and than `dram_bytes_per_s` by at least 10%: they explain
    small ops attaining more than the DRAM roofline allows. With the device's cache
    sizes (`cache_bytes`, e.g. {"L1d": 32768, "L2": 524288}) a level is the working
    sets well inside it; without them, plateaus are found between knees of the curve.
    A level the curve has no point inside, or cannot tell from a slower one, is left
    out (the smallest working set measured is usually past L1)."""
    size, bw = (np.asarray(a, dtype=float) for a in curve)
    if size.size == 0:
        return []
    sizes = {k: v for k, v in (cache_bytes or {}).items()
             if k in CACHE_LEVELS and isinstance(v, (int, float))
             and not isinstance(v, bool) and v > 0}
    found = _by_cache_size(size, bw, sizes) if sizes else _by_knees(size, bw)
    kept, floor = [], float(dram_bytes_per_s)
    for c in reversed(found):  # outermost first: each must beat all slower ones
        if c.bytes_per_s > floor * _DISTINCT_RATIO:
            kept.append(c)
        floor = max(floor, c.bytes_per_s)
    return kept[::-1]
