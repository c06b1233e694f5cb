"""Latency predictors, scikit-learn style.

X is a sequence of kernels, each `(op, config)` as in a profile sample (op kind
name and its configuration); y is latency in ms. Predictors are refit from a profile's
stored samples at load time (never pickled):

- RooflineModel: max(FLOPs / peak of the op's class, bytes / bandwidth) + per-op
  overhead, from measured or datasheet ceilings.
- LookupTableModel: the measured table. A configuration in the table returns its
  latency figure (fastest call) exactly; anything else is the roofline time times a
  learned efficiency factor, interpolated by a Gaussian process over log-sizes of the
  configuration (so it is smooth between table points and falls back to the mean
  efficiency far from them). Out-of-range configurations are clamped to the table's
  range or refused, as chosen.
- FlopsBaseline: latency = c * FLOPs with one fitted constant; for comparison only.

Refitting the lookup table's Gaussian processes with hyperparameter optimization takes
tens of seconds on a full profile, so the fitted hyperparameters are stored beside the
samples (the profile's ``fitted`` section: plain numbers, `LookupTableModel.fitted_section`,
`with_fitted_lookup`) and a load refits with them held fixed, which reproduces the
optimized fit exactly; the section is used only while its key (a digest of the samples,
the roofline, the fit settings, LOOKUP_FIT_VERSION and the scikit-learn version) and
each op's training-data digest match, and ignored otherwise (the slow fit runs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from latency_lab import op_kinds
from latency_lab.bench.ceilings import bandwidth_at, profile_weight_curve
from latency_lab.errors import (InvalidArgumentError, ProfileError, SlowFitWarning,
                                UnsupportedOpError)
from latency_lab.kernels.work import WorkItem, working_set_bytes
from latency_lab.op_kinds.space import kernel_paths_along
from latency_lab.profile import DeviceProfile, load_profile, network_latency_ms, sample_key

__all__ = ["RooflineModel", "LookupTableModel", "FlopsBaseline", "PREDICTORS",
           "make_predictor", "predict_items", "LayerPrediction", "KernelPart", "samples_xy",
           "channel_tile_for", "row_tile_for", "l1d_bytes_for", "l1_spill", "padded_config",
           "featurize", "UnseenCategoryWarning",
           "rmspe", "LOOKUP_FIT_VERSION", "with_fitted_lookup", "optimized_hyperparameters",
           "KernelCheck",
           "OUTSIDE_LENGTH_SCALES", "OUTSIDE_LOG_STD", "path_of", "kernel_path_table",
           "PredictionBand", "prediction_band", "MIN_REGIME_SAMPLES", "regime_model_key"]

Kernel = tuple  # (op, config)


def _as_kernels(X: Iterable) -> list[tuple[str, dict]]:
    out = []
    for item in X:
        if hasattr(item, "op") and hasattr(item, "config"):
            out.append((item.op, dict(item.config)))
        else:
            op, cfg = item
            out.append((op, dict(cfg)))
    return out


def samples_xy(profile: DeviceProfile) -> tuple[list[tuple[str, dict]], np.ndarray]:
    """Table samples of a profile as (X, y_ms); overhead chains are excluded. A sample
    of an unknown op kind, or with a key missing or out of range, is a ProfileError
    naming the profile and the sample."""
    rows = [s for s in profile.samples if s.op not in op_kinds.AUXILIARY]
    for i, s in enumerate(rows):
        try:
            op_kinds.get(s.op).check(s.config)
        except ProfileError as exc:
            raise ProfileError(f"{profile.source}: table sample {i} ({s.op} {s.config}): "
                               f"{exc}") from None
    return [(s.op, dict(s.config)) for s in rows], np.array([s.min_ms for s in rows])


class _ProfilePredictor(RegressorMixin, BaseEstimator):
    def _profile(self) -> DeviceProfile:
        return load_profile(self.profile)

    def predict(self, X) -> np.ndarray:
        return np.array([self._predict_one(op, cfg) for op, cfg in _as_kernels(X)])

    def bound(self, op: str, config: dict) -> str:
        """'compute' or 'memory' (which roofline branch binds), or 'overhead' when the
        op is smaller than the fixed per-op cost."""
        w = op_kinds.work(op, config)
        return self.bound_of(w.flops, op_kinds.moved_bytes(op, config, w),
                             op_kinds.op_class(op, config))

    def bound_of(self, flops: float, nbytes: float, cls: str) -> str:
        compute_s = flops / self.peak_flops_per_s_.get(cls, self.peak_flops_per_s_["elementwise"]) if flops else 0.0
        memory_s = nbytes / self.memory_bytes_per_s_
        if max(compute_s, memory_s) * 1e3 < self.per_op_ms_:
            return "overhead"
        return "compute" if compute_s >= memory_s else "memory"

    def roofline_ms(self, flops: float, nbytes: float, cls: str) -> float:
        peak = self.peak_flops_per_s_.get(cls, self.peak_flops_per_s_["elementwise"])
        return max(flops / peak if flops else 0.0, nbytes / self.memory_bytes_per_s_) * 1e3 + self.per_op_ms_

    def predict_work(self, flops: float, nbytes: float, cls: str) -> float:
        """Latency of a kernel with no table of its own (roofline-charged)."""
        return self.roofline_ms(flops, nbytes, cls)

    def kernel_ms(self, configs: Sequence, network_bytes: float = 0.0,
                  network_kernels: int = 1) -> float:
        """Time of one kernel made of `configs` inside a network that touches
        `network_bytes` per inference (`kernels.working_set_bytes`) in
        `network_kernels` kernels (the roofline models ignore both). Each single-op
        sample includes one invocation overhead; the network pays it once, so it is
        taken off here."""
        preds = self.predict(configs)
        return max(0.0, float(sum(preds)) - self.per_invocation_ms_ * len(preds))

    def _fit_roofline(self, prof: DeviceProfile) -> None:
        roof = prof.roofline
        self.peak_flops_per_s_ = dict(roof["compute_flops_per_s"])
        self.memory_bytes_per_s_ = float(roof["memory_bytes_per_s"])
        self.per_op_ms_ = float(prof.per_op_overhead_ms)
        self.per_invocation_ms_ = float(prof.per_invocation_overhead_ms)


class RooflineModel(_ProfilePredictor):
    """max(compute, memory) + per-op overhead from the profile's ceilings."""

    def __init__(self, profile: Any = None):
        self.profile = profile

    def fit(self, X=None, y=None) -> "RooflineModel":
        self._fit_roofline(self._profile())
        return self

    def _predict_one(self, op: str, cfg: dict) -> float:
        w = op_kinds.work(op, cfg)
        return self.roofline_ms(w.flops, op_kinds.moved_bytes(op, cfg, w),
                                op_kinds.op_class(op, cfg))


class FlopsBaseline(_ProfilePredictor):
    """latency = c * FLOPs with c = sum(ms) / sum(FLOPs) over the samples (the
    FLOP-weighted fit, so large compute-bound ops, which dominate networks, set it);
    ops without FLOPs cost nothing."""

    def __init__(self, profile: Any = None):
        self.profile = profile

    def fit(self, X=None, y=None) -> "FlopsBaseline":
        prof = self._profile()
        self._fit_roofline(prof)
        if X is None:
            X, y = samples_xy(prof)
        kernels = _as_kernels(X)
        flops = np.array([op_kinds.work(op, cfg).flops for op, cfg in kernels])
        times = np.asarray(y, dtype=float)
        if not np.any(flops > 0):
            raise ProfileError("FlopsBaseline needs samples with FLOPs; the profile has none")
        self.ms_per_flop_ = float(times[flops > 0].sum() / flops[flops > 0].sum())
        return self

    def _predict_one(self, op: str, cfg: dict) -> float:
        return self.ms_per_flop_ * op_kinds.work(op, cfg).flops

    def predict_work(self, flops: float, nbytes: float, cls: str) -> float:
        return self.ms_per_flop_ * flops


# --------------------------------------------------------------- lookup table

def _cpu_info(profile: DeviceProfile) -> dict:
    """What the profile recorded of its CPU (`device_info`); empty for other devices."""
    if profile.device_kind != "cpu":
        return {}
    return ((profile.device.get("info") or {}).get("cpu") or {})


def _simd_flags(profile: DeviceProfile) -> set[str]:
    """The SIMD flags the profile recorded of its CPU; empty for other devices."""
    return set(_cpu_info(profile).get("simd_flags") or [])


def channel_tile_for(profile: DeviceProfile) -> int | None:
    """Output channels a CPU's f32 GEMM kernels produce per step (XNNPACK: 16 on x86,
    two AVX2 registers or one AVX-512; 8 with NEON, two registers), from the profile's
    recorded SIMD flags; None when unknown (a GPU, a datasheet profile)."""
    flags = _simd_flags(profile)
    if flags & {"avx512f", "avx2", "fma", "avx"}:
        return 16
    if flags & {"neon", "asimd"}:
        return 8
    return None


def row_tile_for(profile: DeviceProfile) -> int | None:
    """Rows a CPU's f32 GEMM kernels compute per step (XNNPACK's mr, `OpKind.step_rows`):
    7 with AVX-512 (its 7x16 kernel), 5 with AVX2/FMA3 or AVX (5x16), 6 on 64-bit
    Arm (6x8); None when unknown. A single row runs a kernel of its own (1x16).

    On the EPYC VM (AVX-512) the token-wise dense layers of ten transformers, timed
    alone, ran at 110-115 GFLOP/s counting rows rounded up to sevens, from 16 to 259
    rows (87-114 GFLOP/s counting the real rows: 16 rows cost as much as 21); a
    sweep of 189, 192-196 and 197-203 rows over the same weights took 486, 503-505
    and 521 us. Only under XNNPACK (LiteRT): the keras runtime's XLA convs and
    matmuls tile otherwise, and a 7-row step there put the keras held-out ResNets
    (seed 19, EPYC VM) 2-25% further from their measured times."""
    if (profile.runtime or {}).get("backend") != "xnnpack":
        return None
    flags = _simd_flags(profile)
    if "avx512f" in flags:
        return 7
    if flags & {"avx2", "fma", "avx"}:
        return 5
    if flags & {"asimd"}:
        return 6
    return None


def l1d_bytes_for(profile: DeviceProfile) -> int | None:
    """The size of one core's L1 data cache the profile recorded of its CPU; None when
    unknown (a GPU, a datasheet profile, a CPU whose caches were not readable)."""
    size = (_cpu_info(profile).get("cache_bytes") or {}).get("L1d")
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
        return None
    return int(size)


# The output channels a kernel computes a whole SIMD step of (`OpKind.channel_step`).
# The lookup table's roofline base counts them rounded up to whole steps (the runtime
# does a whole step's work for a partial one), so the regressor learns the efficiency
# of full steps, flat across a step, instead of bending log(c) into a staircase.
# 5-fold CV RMSPE on three EPYC profiles (rep10, rep9, rep8/2), base on real -> padded
# channels: depthwise 11.3/9.8/9.7 -> 11.0/9.2/9.5% (at <= 48 channels
# 15.1/16.1/14.4 -> 14.3/13.4/11.9%), dense 18.3/18.6/16.6 -> 17.6/18.4/14.9% (dense
# padded to half a tile: worse than unpadded on all three). conv2d: see
# `op_kinds.conv2d.Conv2D.channel_step`. Element-wise kernels run over the flattened
# tensor: no step.


def padded_config(op: str, cfg: dict, channel_tile: int | None,
                  row_tile: int | None = None) -> dict:
    """`cfg` with the output channels of a channel-tiled kernel rounded up to whole
    SIMD steps (`OpKind.step_channels`) and a GEMM's rows (`OpKind.step_rows`), more
    than one, to whole row tiles; unchanged without the tiles."""
    kind = op_kinds.get(op)
    out = cfg
    key = kind.step_channels[0] if kind.step_channels else None
    if channel_tile and key in cfg:
        size = kind.channel_step(cfg, channel_tile)
        out = dict(out, **{key: size * math.ceil(max(cfg[key], 1) / size)})
    rows = kind.step_rows
    if row_tile and rows in cfg and cfg[rows] > 1:
        out = dict(out, **{rows: row_tile * math.ceil(cfg[rows] / row_tile)})
    return out


# The lookup features of each kind (`OpKind.features`), with the two flags below.
# Partial SIMD step (`OpKind.partial_step_flag`, depthwise): see op_kinds.depthwise.
# Log of the roofline base (`OpKind.size_feature`): for most kinds it is the work's
# size in one number: a small kernel's fixed cost (setup, a partly used tile) weighs
# on its efficiency by how small the whole kernel is, which an RBF over separate log
# sizes fits only where samples are dense. 5-fold CV RMSPE on three EPYC profiles
# (rep11, rep10, rep9), without -> with: conv2d 10.4/9.5/9.2 -> 9.3/8.4/9.5% (samples
# under 20 us 14.7/12.6/11.4 -> 10.9/9.8/10.3%), activation 12.8/9.1/14.9 ->
# 8.7/8.4/9.0%, add 18.6/15.9/21.7 -> 14.6/10.6/19.4%, concat 22.4/12.3/15.6 ->
# 23.8/9.7/12.9%; dense, pool and the scalar ops about unchanged; depthwise worse.


def path_of(paths: Sequence[tuple], value) -> int:
    """Index of the kernel path `value` belongs to; a value no sample has goes with the
    nearest measured one (ties: the smaller), and `LookupTableModel` flags it."""
    for i, p in enumerate(paths):
        if value in p:
            return i
    flat = [(abs(v - value), v, i) for i, p in enumerate(paths) for v in p]
    return min(flat)[2]


def kernel_path_table(op: str, cfgs: Sequence[dict], log_eff: Sequence[float]) -> dict:
    """{path key: kernel paths (tuples of values)} of op kind `op` found in a table
    (`op_kinds.space.kernel_paths`): spines are the samples equal in every other key."""
    out = {}
    for key in op_kinds.get(op).path_keys:
        found = kernel_paths_along(key, cfgs, log_eff)
        if len(found) > 1:
            out[key] = found
    return out


def featurize(op: str, cfg: dict, categories: dict[str, list],
              channel_tile: int | None = None, base_ms: float | None = None,
              paths: dict | None = None, row_tile: int | None = None,
              l1d_bytes: int | None = None) -> list[float]:
    """The features of `cfg` with its stepped output channels rounded up to whole
    steps, like the base (`padded_config`): the time is flat across a step, and the
    regressor, given the raw count, carried the trend of bigger layers running more
    efficiently into the inside of a step (a stem conv over 1-8 output channels
    measured 9.5 us throughout and was predicted 7.4 down to 5.8 us). With
    `base_ms` (the roofline base, `LookupTableModel._roof`), its log is a feature too
    (`OpKind.size_feature`). With `paths` ({key: kernel paths}, `kernel_path_table`),
    the path of each path key's value, one-hot: a 6x6 depthwise conv runs another
    kernel than a 5x5 one (13x slower per multiply-add under LiteRT on the EPYC VM),
    which a smooth function of k cannot follow. With `l1d_bytes` (the CPU's L1 data
    cache), a kind with a per-pixel working set (`OpKind.window_bytes`) gets how far
    past the L1 it is (`l1_spill`)."""
    kind = op_kinds.get(op)
    padded = padded_config(op, cfg, channel_tile, row_tile)
    feats = kind.features(padded, categories, channel_tile)
    if channel_tile and kind.partial_step_flag:
        # a partial step, and a partial whole tile: AVX-512 depthwise kernels run 16
        # channels a step and the rest through a masked remainder, which costs half a
        # step on the EPYC VM and two steps on the Xeon VM (3x3 at 40x40 over 64, 72
        # and 80 channels: 43, 65 and 54 us); the regressor learns which from the table
        c = int(cfg[kind.step_channels[0]])
        feats.append(float(c % kind.channel_step(cfg, channel_tile) != 0))
        feats.append(float(c % channel_tile != 0))
    if channel_tile and kind.wide_tile_flag:
        # a GEMM stepping one tile runs whole pairs of tiles through a kernel twice as
        # wide: EPYC VM, LiteRT, a 27 x 3261 dense layer took 20 us to 16 outputs, 36
        # us to 20-28, 30 us to 32, 51 us to 40-48 and 55 us to 56-64 (one row 2x
        # apart); seed 21's 1x1 convs re-timed alone, 129 of other widths were
        # predicted -10% time-weighted (49% within +-10%), 38 in pairs +6% (74%); with
        # the flag -3% (74%) and +1% (100%). A step of two tiles (a conv's indirect
        # GEMM past one tile, `Conv2D.channel_step`) is always the wide kernel.
        c = int(cfg[kind.step_channels[0]])
        one_tile = kind.channel_step(cfg, channel_tile) == channel_tile
        feats.append(float(one_tile and c % (2 * channel_tile) == 0))
    if base_ms is not None and kind.size_feature:
        feats.append(math.log(max(base_ms, 1e-9)))
    for key, found in sorted((paths or {}).items()):  # the kernel path, one-hot
        at = path_of(found, cfg[key])
        feats.extend(1.0 if i == at else 0.0 for i in range(len(found)))
    window = kind.window_bytes(padded) if l1d_bytes else None
    if window is not None:
        feats.append(l1_spill(window, l1d_bytes))
    return feats


def l1_spill(window_bytes: float, l1d_bytes: int) -> float:
    """0 while a kernel's per-pixel working set fits the L1 data cache, 1 once it is a
    third of an octave past it (the rest is read from L2 for every pixel), a ramp in
    log size between: on the EPYC VM a depthwise conv's time per multiply-add rose
    by half from 32 to 40 KB of taps, and was flat on either side
    (`op_kinds.depthwise.Depthwise.window_bytes`). Without it the lookup's regressor,
    smooth in log channels, bent the step into a slope: 5x5 over 96-136 channels was
    predicted 10-17% slow, from samples with 200 channels and more."""
    past_octaves = math.log2(max(window_bytes, 1.0) / l1d_bytes)
    return min(1.0, max(0.0, 3.0 * past_octaves))


# The version of everything that shapes the lookup table's Gaussian processes besides
# the samples and the fit settings: `featurize` and the op kinds' `features` and flags,
# `padded_config`, the roofline base (`LookupTableModel._roof`), the kernel and its
# bounds (`LookupTableModel._gp`). Bump it when any of them changes: stored fits of
# another version are refit. (Each stored model also carries a digest of its training
# data, so a change that forgets the bump still refits instead of reusing stale
# hyperparameters.)
LOOKUP_FIT_VERSION = 19

# A sample within this many empty calls (the profile's per-invocation plus per-op
# overhead) is a kernel's fixed cost, and floors its kind (`LookupTableModel._floor_ms`).
# EPYC VM (fresh13): every kind's fastest sample is 0.55-1.5 us against 0.64 us a call.
FIXED_COST_CALLS = 2.0


def _data_digest(feats: np.ndarray, target: np.ndarray) -> str:
    """SHA-256 of a Gaussian process's training data (shapes and float64 bits)."""
    h = hashlib.sha256()
    for a in (feats, target):
        a = np.ascontiguousarray(a, dtype="<f8")
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _hyperparameter_values(kernel) -> list[float]:
    """The kernel's free hyperparameters as plain numbers (not log-transformed), in
    the order of `kernel.theta`."""
    params = kernel.get_params()
    out: list[float] = []
    for hp in kernel.hyperparameters:
        if not hp.fixed:
            out.extend(float(v) for v in np.atleast_1d(params[hp.name]))
    return out


def _with_hyperparameters(kernel, values: Sequence[float]):
    """A copy of `kernel` with its free hyperparameters set to `values` the way the
    `theta` setter sets them (arrays for vector-valued ones), so a kernel rebuilt from
    stored numbers is bit for bit the fitted one; None when the count differs."""
    from sklearn.base import clone

    params: dict[str, Any] = {}
    i = 0
    for hp in kernel.hyperparameters:
        if hp.fixed:
            continue
        n = hp.n_elements
        if n > 1:
            params[hp.name] = np.array(values[i:i + n], dtype=float)
        elif i < len(values):
            params[hp.name] = np.float64(values[i])
        i += n
    if i != len(values):
        return None
    out = clone(kernel)
    out.set_params(**params)
    return out


def _length_scales(kernel, n: int) -> np.ndarray:
    """The RBF length scales of a fitted `ConstantKernel * RBF + WhiteKernel`."""
    for part in (kernel.k1.k2, kernel.k1.k1, kernel.k2):
        if hasattr(part, "length_scale"):
            return np.broadcast_to(np.asarray(part.length_scale, dtype=float), (n,)).copy()
    return np.ones(n)


def _noise_log_std(gp, target: np.ndarray) -> float:
    """The fitted white noise as a standard deviation of log time (the GP fits
    targets normalized by their spread, `normalize_y`, so it is scaled back)."""
    level = getattr(gp.kernel_.k2, "noise_level", 0.0)
    spread = float(np.std(target)) or 1.0
    return float(math.sqrt(max(level, 0.0)) * spread)


def _others_share(kernels: int) -> float:
    """The share of a network's kernels that are not this one: what evicts it. A
    one-kernel network runs as its sample did (the single-op sweeps of
    scripts/op_sweep.py came out +5% with the slowdown applied to them)."""
    return 1.0 - 1.0 / max(int(kernels), 1)


# A regime (`OpKind.regime`) gets a regressor of its own from this many samples on;
# with fewer they stay in their kind's, whose features may still tell them apart.
MIN_REGIME_SAMPLES = 12


def regime_model_key(op: str, regime: str) -> str:
    """The name of the lookup's model of op kind `op`'s `regime`."""
    return f"{op}@{regime}"


def _regime_groups(kernels: list[tuple[str, dict]], by_op: dict[str, list[int]]
                   ) -> dict[str, tuple[str, list[int]]]:
    """{model name: (op kind, indices into `kernels`)}: each kind's samples, less
    those of a regime (`OpKind.regime`) with at least MIN_REGIME_SAMPLES of them,
    which form a model of their own (`regime_model_key`). One regressor over a path
    that runs 10-100x slower and erratically (XLA's convs whose kernel overhangs the
    map) takes length scales from it that fold the rest."""
    groups: dict[str, tuple[str, list[int]]] = {}
    for op, idx in by_op.items():
        kind = op_kinds.get(op)
        split: dict[str, list[int]] = {}
        for i in idx:
            regime = kind.regime(kernels[i][1])
            if regime is not None:
                split.setdefault(regime, []).append(i)
        apart = {r: members for r, members in split.items() if len(members) >= MIN_REGIME_SAMPLES}
        taken = {i for members in apart.values() for i in members}
        groups[op] = (op, [i for i in idx if i not in taken])
        for regime, members in sorted(apart.items()):
            groups[regime_model_key(op, regime)] = (op, members)
    return groups


def _in_network_charge(isolated: float, own_ms: float, excess: float, beyond: bool,
                       share: float) -> tuple[float, float]:
    """(a kernel's time inside a network before the stream share, the weight traffic
    that time leaves uncovered): its `isolated` time, but at least its weights floor,
    `own_ms` plus `excess` read at `share` of the curve's bandwidth while the network's
    working set lies `beyond` its weights (`LookupTableModel._fit_in_network`)."""
    floor = own_ms + excess / share if beyond else 0.0
    return max(isolated, floor), max(0.0, excess - max(0.0, floor - isolated))


def _in_network_terms(nets: list[tuple], times: np.ndarray, share: float
                      ) -> tuple[tuple[float, float], float]:
    """((stream, slowdown), the sum of squared relative errors left) fitted to
    calibration networks (`LookupTableModel._network_parts`) measured `times`, with
    the weights floor read at `share` of the curve's bandwidth."""
    from scipy.optimize import nnls

    rows, target = [], []
    for (fixed, others, kernels), t in zip(nets, times):
        base = uncovered = 0.0
        for isolated, own_ms, excess, beyond in kernels:
            charged, left = _in_network_charge(isolated, own_ms, excess, beyond, share)
            base += charged
            uncovered += left
        rows.append([uncovered / t, others / t])
        target.append((t - fixed - base) / t)
    rows, target = np.array(rows), np.array(target)
    coef, _ = nnls(rows, target)
    coef = np.minimum(coef, [MAX_IN_NETWORK_STREAM, MAX_IN_NETWORK_SLOWDOWN])
    return (float(coef[0]), float(coef[1])), float(np.sum((rows @ coef - target) ** 2))


# The in-network fit leaves out a calibration network whose roofline-charged items are
# predicted at more than this share of its measured time (`_fit_in_network`).
MAX_UNTIMED_SHARE = 0.5
# A kernel inside a network at most this much slower than alone: a fit beyond it says
# the calibration networks disagree with the table (another host, another load).
MAX_IN_NETWORK_SLOWDOWN = 0.5
# At most this many times the excess weight traffic (`_fit_in_network`): a GEMM over
# few rows streams its weights once per row tile, and inside a network more than the
# first pass can miss the cache; a fit past it is the table's error, not traffic.
MAX_IN_NETWORK_STREAM = 3.0
IN_NETWORK_BW_SHARES = tuple(round(1.0 - 0.05 * i, 2) for i in range(15))  # 1.0 .. 0.3
# `LookupTableModel._fit_base_terms`: small against a fit's squared relative errors
# (as one sample 1% off), large enough to break an exact tie
BASE_TIE_PENALTY = 1e-4


def _tile(name: str, value, auto: Callable[[DeviceProfile], int | None],
          prof: DeviceProfile) -> int | None:
    """A device setting of `LookupTableModel` (a tile, a cache size): "auto" (from the
    profile), a positive integer or None."""
    if value == "auto":
        return auto(prof)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidArgumentError(f"{name} must be 'auto', a positive integer or None, got {value!r}")
    return value


class UnseenCategoryWarning(UserWarning):
    """A configuration names a category (an activation fn, ...) the profile's table
    has no timings of; out_of_range='clamp' predicts it anyway, from the others."""


class LookupTableModel(_ProfilePredictor):
    """Measured op timings, exact at table points and interpolated between them.

    out_of_range: "clamp" (default) clamps each feature to the table's range, so the
    roofline scaling carries the prediction and the efficiency is the nearest edge's;
    "error" raises UnsupportedOpError naming the op and configuration, also for a
    category the table lacks (an activation fn no profiled network used), which
    "clamp" predicts with none of its one-hot features set, warning
    UnseenCategoryWarning.
    missing_op: what to do for an op kind with fewer than `min_samples` samples:
    "roofline" (default, uses the roofline with the table's median efficiency) or
    "error".
    channel_tile: "auto" (default: from the profile's SIMD flags, `channel_tile_for`),
    a number of channels, or None to regress on channel counts alone.
    row_tile: the same for a GEMM's rows ("auto": `row_tile_for`).
    l1d_bytes: the L1 data cache size for the L1 feature (`l1_spill`): "auto" (from the
    profile, `l1d_bytes_for`), a number of bytes, or None for no such feature.
    use_fitted: True (default) to take each op's kernel hyperparameters from the
    profile's ``fitted.lookup`` section when its key matches this fit (same samples,
    roofline, settings, LOOKUP_FIT_VERSION and scikit-learn version) and the op's
    training data matches its digest: the Gaussian process is then fitted with them
    held fixed (no optimization), which gives the same predictions in a fraction of
    the time. False always optimizes. After `fit`, `gp_fits_` says per op which way
    it went ("stored" or "optimized").
    cache_base: True (default) to read weights at the bandwidth of the cache level
    they fit in (the profile's weight_stream samples) in the roofline base the
    table's efficiencies are relative to (`_roof`); False for one memory ceiling.
    """

    def __init__(self, profile: Any = None, out_of_range: str = "clamp",
                 missing_op: str = "roofline", min_samples: int = 4, random_state: int = 0,
                 channel_tile: int | str | None = "auto", use_fitted: bool = True,
                 cache_base: bool = True, row_tile: int | str | None = "auto",
                 l1d_bytes: int | str | None = "auto"):
        self.profile = profile
        self.cache_base = cache_base
        self.out_of_range = out_of_range
        self.missing_op = missing_op
        self.min_samples = min_samples
        self.random_state = random_state
        self.channel_tile = channel_tile
        self.row_tile = row_tile
        self.l1d_bytes = l1d_bytes
        self.use_fitted = use_fitted

    def fit(self, X=None, y=None, *, pool=None) -> "LookupTableModel":
        """Fit from the profile's samples (or X, y). `pool` (a `convert.pool.
        ConversionPool`) optimizes the op kinds' Gaussian processes in its workers,
        the largest first, on one BLAS thread each (`optimized_hyperparameters`): the
        fit of a process held to one BLAS thread. On more threads the optimizer can
        stop elsewhere on a flat likelihood: profile fresh18's conv2d and depthwise
        hyperparameters differed, their predictions off the table by at most 3e-5
        (421 configurations); 10.4 s in two workers against 16.9 s here."""
        if self.out_of_range not in ("clamp", "error"):
            raise InvalidArgumentError(f"out_of_range must be 'clamp' or 'error', got {self.out_of_range!r}")
        if self.missing_op not in ("roofline", "error"):
            raise InvalidArgumentError(f"missing_op must be 'roofline' or 'error', got {self.missing_op!r}")
        prof = self._profile()
        self._fit_roofline(prof)
        self.weight_curve_ = profile_weight_curve(prof)
        self.channel_tile_ = _tile("channel_tile", self.channel_tile, channel_tile_for, prof)
        self.row_tile_ = _tile("row_tile", self.row_tile, row_tile_for, prof)
        self.l1d_bytes_ = _tile("l1d_bytes", self.l1d_bytes, l1d_bytes_for, prof)
        # the profile's own table under the default settings: what a stored fit
        # (`with_fitted_lookup`) covers, so refitting it is worth a warning
        storable = (X is None and self.use_fitted and self.min_samples == 4
                    and self.random_state == 0 and self.channel_tile == "auto"
                    and self.row_tile == "auto" and self.l1d_bytes == "auto")
        slow_warned = False
        if X is None:
            X, y = samples_xy(prof)
        kernels = _as_kernels(X)
        y = np.asarray(y, dtype=float)
        if not kernels:
            raise ProfileError(
                f"profile {prof.device_name!r} ({prof.provenance_kind}) has no lookup-table "
                "samples; LookupTableModel needs a measured profile (`latency-lab profile`). "
                "Use RooflineModel for datasheet profiles."
            )
        self.table_ = {sample_key(op, cfg): float(t) for (op, cfg), t in zip(kernels, y)}
        # Off-table predictions already made: the in-network fit and a regularizer's
        # grids ask for the same configurations again and again (one GP call each).
        self._predicted: dict[str, float] = {}
        self._warned: set = set()  # (op, unseen categories) already warned about
        self.fit_key_ = self._fit_key(kernels, y)
        stored = self._stored_models(prof)
        self.gp_fits_: dict[str, str] = {}
        self.models_: dict[str, dict] = {}
        by_op: dict[str, list[int]] = {}
        for i, (op, _) in enumerate(kernels):
            by_op.setdefault(op, []).append(i)
        log_eff_all, noise = [], []
        self.base_coefs_: dict[str, list[float]] = {}
        for op, idx in by_op.items():
            cfgs = [kernels[i][1] for i in idx]
            self._fit_base_terms(op, cfgs, y[idx])
            base = np.array([self._roof(op, c) for c in cfgs])
            log_eff_all.extend(np.log(y[idx] / base).tolist())
        todo: dict[str, tuple] = {}  # model -> what it is built from
        to_optimize: dict[str, tuple] = {}  # model -> (feats, target) of a fit with no stored one
        for key, (op, idx) in _regime_groups(kernels, by_op).items():
            cfgs = [kernels[i][1] for i in idx]
            base = np.array([self._roof(op, c) for c in cfgs])
            target = np.log(y[idx] / base)
            if len(idx) < self.min_samples:
                continue
            cats = {k: sorted({c[k] for c in cfgs}) for k in cfgs[0] if isinstance(cfgs[0][k], str)}
            paths = kernel_path_table(op, cfgs, target)
            feats = np.array([self._features(op, c, cats, b, paths) for c, b in zip(cfgs, base)])
            digest = _data_digest(feats, target)
            gp = self._stored_gp(prof, key, feats, target, digest, stored.get(key))
            self.gp_fits_[key] = "optimized" if gp is None else "stored"
            if gp is None and not slow_warned and storable:
                slow_warned = True
                self._warn_slow_fit(prof, bool(stored))
            if gp is None:
                to_optimize[key] = (feats, target)
            todo[key] = (idx, cfgs, cats, paths, feats, target, digest, gp)
        optimized = self._optimized_gps(to_optimize, pool)
        for key, (idx, cfgs, cats, paths, feats, target, digest, gp) in todo.items():
            gp = optimized.get(key, gp)
            self.models_[key] = {
                "gp": gp,
                "categories": cats,
                "paths": paths,
                "train_x": feats,
                "length_scales": _length_scales(gp.kernel_, feats.shape[1]),
                "low": feats.min(axis=0),
                "high": feats.max(axis=0),
                "keys": sorted(cfgs[0]),
                "data_sha256": digest,
                "fastest_ms": float(np.min(y[idx])),
            }
            noise.append(_noise_log_std(gp, target))
        self.median_log_efficiency_ = float(np.median(log_eff_all))
        # the table's own noise: the expected error even at a measured point
        self.exact_log_std_ = float(np.median(noise)) if noise else 0.0
        self._fit_in_network(prof)
        return self

    def _fit_in_network(self, prof: DeviceProfile) -> None:
        """Refit what isolated timings miss inside a network.

        An op is timed alone in the steady state of back-to-back calls (see
        `TimingConfig.latency`): its weights come from wherever a working set of their
        own size lives. Inside a network they were last touched one inference ago and
        come from where the network's whole working set lives (W_net: its weights and
        the activations it writes, `kernels.working_set_bytes`). bw() is the profile's
        weight-streaming curve. Per kernel, with W_k its weights:

            excess = W_k * max(0, 1 / bw(W_net) - 1 / bw(W_k))
            floor  = W_k / bw(W_k) + excess / share          (0 while W_net <= W_k)
            t = max(t_isolated * (1 + slowdown * (1 - 1/n)), floor)
                + stream * (excess the floor does not already charge)

        `floor`: a kernel cannot run faster than its weights arrive. `share` in (0, 1]
        is the part of the curve's bandwidth a network's kernels get on the traffic
        past their own level: the curve times one matrix streamed in a loop, a network
        reads packed weights kernel by kernel between its computations. `slowdown`
        charges what the other n - 1 kernels evict (code, TLB entries, packed
        weights); `stream` the excess a kernel whose compute covers its floor still
        pays. `share` is chosen from IN_NETWORK_BW_SHARES, stream (at most
        MAX_IN_NETWORK_STREAM) and slowdown (at most MAX_IN_NETWORK_SLOWDOWN) are
        fitted for each by least squares on relative error over the profile's
        calibration networks (measured whole, never part of a validation set) whose
        untimed items are under MAX_UNTIMED_SHARE of their time; the best fit wins,
        the largest share on a tie. Without calibration networks (at least 3) all are neutral.

        Why a share: development networks timed as prefixes (cut after layer L for
        several L) against their kernels timed alone, in one run (EPYC VM, profile
        fresh21, `scripts/network_prefixes.py`), ran 0.94-1.08x their kernels in the
        first stages and 1.4-2.2x in the last, where weights dominate: ResNet50's last
        segment read 43 MB of weights in 1.48 ms in the network (29 GB/s) and in 0.66
        ms alone, while the curve gives 45 GB/s from DRAM. Fitted with share fixed at
        1, stream sits at its bound (1.51 unbound, which moved transformers over).
        Same profile, stored measurements, share 1 -> fitted (0.5 there, with the
        zero pads XNNPACK folds into convs left free, `op_kinds.pad`): development
        CNNs 56/88% -> 59/94% within +-5/10% (RMSPE 6.1 -> 5.8%), transformers 46/83%
        -> 46/88% (7.7 -> 7.5%); held-out seed 17 (40 CNNs, looked at for this
        choice) 62/82% -> 60/85% (8.9 -> 8.8%), transformers seed 13 58/92% both
        (6.6 -> 6.4%). The floor alone (no stream) read 53/76% on the CNNs.
        Earlier (stops 30-31): fitted weights traffic took the EPYC development set
        from 56% to 94% within +-10%, the slowdown MobileNetV3Large from -11.6%.

        Why stream may pass 1: a conv over few output pixels streams its weights once
        per row tile, and inside a network more than the first pass can miss. Prefixes
        of ResNet50 at 96 px (kernels alone measured, profile fresh24) ran their conv4
        and conv5 blocks 0.29 ms over their kernels per 8.8 MB and 0.68 ms per 23 MB of
        weights, twice the excess at DRAM speed (least squares on 27 prefixes: stream
        1.97, slowdown 0.05, RMSPE 2.1%). Capped at 1, stream sat at the cap on every
        EPYC profile; capped at 3 it fits 1.5-2.0. Stored measurements re-predicted
        (fresh21-24, all looked at before): CNNs within +-10% 97/80/85/100/78% ->
        100/85/85/100/88% (development, seeds 17-20; RMSPE 4.8/8.4/8.4/4.8/8.5 ->
        4.2/6.9/7.7/3.9/7.2%), the ResNet-18/34 of seed 20 from -5..-21% to -19..+1%;
        transformers 88/92/62/83/92% -> 79/92/54/79/88% (they were 1-12% over already,
        and move 1-3% further).
        """
        self.in_network_stream_ = 0.0
        self.in_network_slowdown_ = 0.0
        self.in_network_bw_share_ = 1.0
        models = (prof.calibration or {}).get("models") or []
        nets = [self._network_parts([WorkItem.from_dict(d) for d in m["items"]])
                for m in models]
        times = [network_latency_ms(m) for m in models]
        # A network whose untimed work (roofline-charged items) alone is predicted at
        # more than MAX_UNTIMED_SHARE of its time says more about the roofline than
        # about its kernels: under the keras runtime the two calibration encoders'
        # attention and layer norms were charged 8.6 and 12.7 ms against 4.0 and 7.4
        # ms measured, and pinned the fit at its bounds (share 0.3, stream 0, slowdown
        # 0; profile keras36), which put a VGG's one-row dense layers at 3-6x their time.
        kept = [(n, t) for n, t in zip(nets, times) if n[0] <= MAX_UNTIMED_SHARE * t]
        if len(kept) < 3:
            return
        nets, times = [n for n, _ in kept], np.array([t for _, t in kept])
        best = None
        shares = IN_NETWORK_BW_SHARES if self.weight_curve_[0].size else (1.0,)
        for share in shares:
            coef, residual = _in_network_terms(nets, times, share)
            if best is None or residual < best[0] - 1e-12:
                best = (residual, share, coef)
        _, self.in_network_bw_share_, (self.in_network_stream_, self.in_network_slowdown_) = best

    def _network_parts(self, items: list[WorkItem]) -> tuple[float, float, list[tuple]]:
        """What the in-network fit needs of one calibration network, none of it
        depending on the fitted terms (each share is tried on the same parts): the
        time outside its timed kernels (roofline-charged items and the invocation),
        the others' share of its timed kernels' isolated sum (`_others_share`), and
        per kernel `_weight_parts` in the network's working set."""
        w_net = working_set_bytes(items)
        timed = [item for item in items if item.configs]
        fixed = self.per_invocation_ms_ + sum(
            self.predict_work(item.flops, item.bytes, item.op_class)
            for item in items if not item.configs)
        kernels = [self._weight_parts(op, cfg, w_net)
                   for item in timed for op, cfg in _as_kernels(item.configs)]
        others = sum(k[0] for k in kernels) * _others_share(len(timed))
        return fixed, others, kernels

    def _weight_parts(self, op: str, cfg: dict, network_bytes: float
                      ) -> tuple[float, float, float, bool]:
        """(isolated ms, its weights' read ms from a working set of their own size,
        the excess of reading them from the network's, whether the network's working
        set is larger than they are): the inputs of `_in_network_charge`."""
        wb = op_kinds.weight_bytes(op, cfg)
        return (self._isolated_ms(op, cfg), self._stream_ms(wb, wb),
                self._stream_excess_ms(wb, network_bytes), network_bytes > wb)

    def _features(self, op: str, cfg: dict, categories: dict, base_ms: float,
                  paths: dict) -> list[float]:
        return featurize(op, cfg, categories, self.channel_tile_, base_ms, paths,
                         self.row_tile_, self.l1d_bytes_)

    def _isolated_ms(self, op: str, cfg: dict) -> float:
        return max(float(self._predict_one(op, cfg)) - self.call_ms(op), 0.0)

    def call_ms(self, op: str) -> float:
        """The fixed cost of one call of `op`'s sample programs, which a network pays
        once for all its kernels: the profile's per-invocation overhead, or more where
        the kind's fastest sample is a call's fixed cost (`_floor_ms`). Programs pass
        different arguments: under the keras runtime each input or weight variable
        past the first adds 17-20 us to a 0.10 ms call (EPYC VM, profile keras34: the
        fastest relu 0.099 ms, add 0.123, conv 0.117, against 0.105 per invocation),
        and a compiled network, one call, does not pay that per layer. LiteRT's kinds
        sit within 0.1 us of its 0.6 us invocation, pads and gathers 0.3-0.5 us above."""
        m = self.models_.get(op)
        return max(self.per_invocation_ms_, self._floor_ms(m) if m is not None else 0.0)

    def _stream_ms(self, weight_bytes: float, working_set_bytes: float) -> float:
        """Time to stream `weight_bytes` at the bandwidth of a working set of
        `working_set_bytes` (0 without a weight-streaming curve)."""
        bw = bandwidth_at(self.weight_curve_, working_set_bytes)
        return weight_bytes / bw * 1e3 if bw else 0.0

    def _stream_excess_ms(self, weight_bytes: float, network_bytes: float) -> float:
        """Extra time to bring `weight_bytes` in from a network's working set rather
        than from a working set of their own size (isolated timing)."""
        return max(0.0, self._stream_ms(weight_bytes, network_bytes)
                   - self._stream_ms(weight_bytes, weight_bytes))

    def kernel_ms(self, configs: Sequence, network_bytes: float = 0.0,
                  network_kernels: int = 1) -> float:
        """One kernel (timed as `configs`) inside a network of `network_kernels`
        kernels that touches `network_bytes` per inference (`kernels.working_set_bytes`:
        weights and activations; see `_fit_in_network`): alone (the defaults) it is
        what its samples measured."""
        slowdown = 1.0 + self.in_network_slowdown_ * _others_share(network_kernels)
        total = 0.0
        for op, cfg in _as_kernels(configs):
            charged, uncovered = self._in_network_parts(op, cfg, network_bytes, slowdown)
            total += charged + self.in_network_stream_ * uncovered
        return total

    def _in_network_parts(self, op: str, cfg: dict, network_bytes: float,
                          slowdown: float) -> tuple[float, float]:
        """(the kernel's time inside a network before the fitted stream share, the
        extra weight traffic that time leaves uncovered). The time is its isolated
        prediction times `slowdown`, but at least its weights floor: their read time
        from a working set of their own size, plus the excess of reading them from the
        network's (`_stream_excess_ms`) at the fitted share of the curve's bandwidth
        (0 when the network's working set is no larger than its weights, and without
        a weight-streaming curve). The traffic is the excess less what the floor
        already charges."""
        isolated, own_ms, excess, beyond = self._weight_parts(op, cfg, network_bytes)
        return _in_network_charge(isolated * slowdown, own_ms, excess, beyond,
                                  self.in_network_bw_share_)

    @staticmethod
    def _kernel(feats: np.ndarray):
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        span = np.maximum(feats.max(axis=0) - feats.min(axis=0), 1.0)
        # Length scales of at least 0.3 in log-size units (a third more or fewer
        # channels): shorter ones let a table of ~50 samples fold between its points
        # (dense 1024->1000 was predicted at twice its measured neighbours, 0.32 ms vs
        # 0.15-0.16 ms, and MobileNetV3 heads with it: validation RMSPE 19.2% vs 8.1%).
        return (ConstantKernel(0.3, (1e-3, 10.0)) * RBF(span, (0.3, 1e3))
                + WhiteKernel(1e-3, (1e-6, 1e-1)))

    def _optimized_gps(self, data: dict[str, tuple], pool=None) -> dict:
        """{op: its Gaussian process, hyperparameters optimized} of `data` ({op: (feats,
        target)}): in `pool`'s workers when it has some and there are two or more,
        each returning its optimized hyperparameters, which are then held fixed here
        (as a stored fit is rebuilt)."""
        if pool is None or not pool.parallel or len(data) < 2:
            return {op: self._gp(f, t) for op, (f, t) in data.items()}
        largest_first = sorted(data, key=lambda op: -len(data[op][1]))
        futures = {op: pool.submit(optimized_hyperparameters, *data[op], self.random_state)
                   for op in largest_first}
        out = {}
        for op in largest_first:
            feats, target = data[op]
            kernel = _with_hyperparameters(self._kernel(feats), futures[op].result())
            out[op] = self._gp(feats, target, kernel=kernel)
        return out

    def _gp(self, feats: np.ndarray, target: np.ndarray, kernel=None):
        """A Gaussian process over `feats`: its kernel's hyperparameters optimized
        (the slow path), or, given a `kernel` with them set, held fixed."""
        from sklearn.gaussian_process import GaussianProcessRegressor

        if kernel is None:
            gp = GaussianProcessRegressor(kernel=self._kernel(feats), normalize_y=True,
                                          random_state=self.random_state,
                                          n_restarts_optimizer=1)
        else:
            gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, optimizer=None,
                                          random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on tiny tables
            gp.fit(feats, target)
        return gp

    # -- stored fits (the profile's `fitted.lookup` section) -------------------------

    def _fit_key(self, kernels: list, y: np.ndarray) -> str | None:
        """SHA-256 of everything that shapes the fit: the table (configurations and
        latency figures, in order), the roofline the efficiencies are relative to, the
        settings, LOOKUP_FIT_VERSION and the scikit-learn version. None when the fit
        cannot be reproduced from stored numbers (a RandomState object, non-JSON X)."""
        import sklearn

        rs = self.random_state
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, int)):
            return None
        payload = {
            "fit_version": LOOKUP_FIT_VERSION,
            "scikit_learn": sklearn.__version__,
            "settings": {"channel_tile": self.channel_tile_, "row_tile": self.row_tile_,
                         "l1d_bytes": self.l1d_bytes_,
                         "min_samples": self.min_samples,
                         "random_state": rs, "cache_base": self.cache_base},
            "roofline": {"compute_flops_per_s": self.peak_flops_per_s_,
                         "memory_bytes_per_s": self.memory_bytes_per_s_,
                         "per_op_ms": self.per_op_ms_},
            "table": [[op, cfg, float(t)] for (op, cfg), t in zip(kernels, y)],
        }
        try:
            text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            return None
        return hashlib.sha256(text.encode()).hexdigest()

    def _warn_slow_fit(self, prof: DeviceProfile, some_stored: bool) -> None:
        """One SlowFitWarning: the stored fit does not cover this fit, so it is
        optimized afresh (the slow path), and how to store it."""
        why = ("is stale for some op kinds (their samples changed)" if some_stored
               else "is stale (the samples, settings or scikit-learn version changed)"
               if prof.fitted.get("lookup") else "is missing")
        where = prof.source if prof.source.endswith(".json") else "PROFILE.json"
        warnings.warn(
            f"{prof.device_name}: the profile's stored lookup fit ('fitted' section) {why}; "
            "fitting the lookup table's Gaussian processes takes tens of seconds at every "
            f"load. Store the fit with `python scripts/fit_profile.py {where}`.",
            SlowFitWarning, stacklevel=3)

    def _stored_models(self, prof: DeviceProfile) -> dict:
        """The profile's stored models when they belong to this fit, else {}."""
        if not self.use_fitted or self.fit_key_ is None:
            return {}
        entry = prof.fitted.get("lookup")
        if not entry or entry["key"] != self.fit_key_:
            return {}
        return entry["models"]

    def _stored_gp(self, prof: DeviceProfile, op: str, feats: np.ndarray,
                   target: np.ndarray, digest: str, stored: dict | None):
        """The Gaussian process of `op` fitted with its stored hyperparameters, or None
        (nothing stored for it, or its training data is not what they were fitted on)."""
        if stored is None or stored["data_sha256"] != digest:
            return None
        kernel = self._kernel(feats)
        values = stored["hyperparameters"]
        path = f"fitted.lookup.models.{op}.hyperparameters"
        fixed = _with_hyperparameters(kernel, values)
        if fixed is None:
            raise ProfileError(
                f"{prof.source}: field '{path}' has {len(values)} values, but the {op!r} "
                f"kernel has {kernel.n_dims} hyperparameters; remove the 'fitted' section "
                "(it is derived from the samples) or re-create it with "
                "`scripts/fit_profile.py`.")
        log_values = np.log(np.asarray(values, dtype=float))
        low, high = kernel.bounds[:, 0], kernel.bounds[:, 1]
        outside = np.flatnonzero((log_values < low - 1e-9) | (log_values > high + 1e-9))
        if outside.size:
            i = int(outside[0])
            raise ProfileError(
                f"{prof.source}: field '{path}[{i}]' is {values[i]!r}, outside the "
                f"kernel's bounds [{math.exp(low[i]):g}, {math.exp(high[i]):g}]; remove "
                "the 'fitted' section (it is derived from the samples) or re-create it "
                "with `scripts/fit_profile.py`.")
        return self._gp(feats, target, kernel=fixed)

    def fitted_section(self) -> dict:
        """The profile's ``fitted.lookup`` section for this fit: per op kind, the
        kernel's fitted hyperparameters (plain numbers) and a digest of its training
        data, under the fit's key. `with_fitted_lookup` stores it."""
        import sklearn

        if not hasattr(self, "models_"):
            raise InvalidArgumentError("fit the LookupTableModel before fitted_section()")
        if self.fit_key_ is None:
            raise InvalidArgumentError(
                "this fit cannot be stored: random_state must be an integer or None and "
                "the table's configurations plain JSON values")
        return {
            "key": self.fit_key_,
            "fit_version": LOOKUP_FIT_VERSION,
            "scikit_learn": sklearn.__version__,
            "models": {op: {"hyperparameters": _hyperparameter_values(m["gp"].kernel_),
                            "data_sha256": m["data_sha256"]}
                       for op, m in sorted(self.models_.items())},
        }

    def predict_work(self, flops: float, nbytes: float, cls: str) -> float:
        return self.roofline_ms(flops, nbytes, cls) * math.exp(self.median_log_efficiency_)

    def _roof(self, op: str, cfg: dict) -> float:
        """The roofline time of the work the runtime does for `cfg`: whole SIMD steps
        of output channels (`padded_config`) and, on a CPU, whole kernel tiles of other
        dimensions (`OpKind.tiled_flops`: a depthwise conv's taps). With `cache_base`,
        its weights are read at the bandwidth of the cache level a working set of their
        size lives in (the profile's weight-streaming curve) and the rest at memory
        bandwidth: a one-row dense layer is that read, 90 GB/s from L2 and 30 GB/s
        past the L3 on the EPYC VM, which a single memory ceiling, and a regressor
        over a few hundred samples, could not follow (1x4096->1024 predicted +53%, 1x4096->4096
        -28%). Refitted offline on three fresh EPYC profiles against their own
        benchmark runs, the held-out networks (seeds 0-2, 40 each) read 85/82/90%
        within +-10% (80/85/90% with one ceiling) and 70/60/75% within +-5%
        (68/55/52%); a linear trend under the GP instead read 68/68/85% and 57/48/55%."""
        coefs = self.base_coefs_.get(op)
        if coefs:
            return float(np.dot(self._base_terms(op, cfg), coefs))
        cfg = padded_config(op, cfg, self.channel_tile_, self.row_tile_)
        w = op_kinds.work(op, cfg)
        flops = (op_kinds.get(op).tiled_flops(cfg, w.flops, self.row_tile_)
                 if self.channel_tile_ else w.flops)
        nbytes = op_kinds.moved_bytes(op, cfg, w)
        wb = op_kinds.weight_bytes(op, cfg) if self.cache_base else 0.0
        bw = bandwidth_at(self.weight_curve_, wb) if wb else None
        if bw:  # the weights' bytes as memory-bandwidth bytes of the same read time
            nbytes = max(nbytes - wb, 0.0) + wb * self.memory_bytes_per_s_ / bw
        return self.roofline_ms(flops, nbytes, op_kinds.op_class(op, cfg))

    def _base_terms(self, op: str, cfg: dict) -> list[float] | None:
        """`op`'s base terms (`OpKind.base_terms`) of `cfg` in whole SIMD steps, its
        weights term (`OpKind.weights_term`) and moved term (`OpKind.moved_term`) as
        the read time in ms of the bytes they count: at the weight-streaming curve's
        bandwidth for a working set of their size (with `cache_base`), else at memory
        bandwidth. Counted as elements, one coefficient would read a one-row dense's
        weights, or a concat's inputs, at one speed from L2 and from DRAM."""
        kind = op_kinds.get(op)
        padded = padded_config(op, cfg, self.channel_tile_, self.row_tile_)
        terms = kind.base_terms(padded)
        if terms is None or (kind.weights_term is None and kind.moved_term is None):
            return terms
        terms = list(terms)
        if kind.weights_term is not None:
            # packed: whole tiles of output channels
            terms[kind.weights_term] = self._read_ms(op_kinds.weight_bytes(op, padded))
        if kind.moved_term is not None:
            terms[kind.moved_term] = self._read_ms(terms[kind.moved_term])
        return terms

    def _read_ms(self, nbytes: float) -> float:
        """Time to read `nbytes` from where a working set of their size lives (the
        weight-streaming curve, with `cache_base`), else at memory bandwidth."""
        read_ms = self._stream_ms(nbytes, nbytes) if self.cache_base else 0.0
        if not read_ms and self.memory_bytes_per_s_:
            read_ms = nbytes / self.memory_bytes_per_s_ * 1e3
        return read_ms

    def _fit_base_terms(self, op: str, cfgs: list[dict], ms: np.ndarray) -> None:
        """The coefficients of `op`'s base terms (`OpKind.base_terms`), non-negative,
        by least squares on relative error over its samples; none (the roofline base)
        for a kind without terms, with fewer samples than terms, or whose fit gives a
        base of zero anywhere. Where the samples cannot tell a term from the weights
        term (`OpKind.weights_term`: a table of one-row dense layers, whose
        multiply-adds are their weights), a tiny penalty on the others hands the time
        to the weights, which know the cache levels."""
        from scipy.optimize import nnls

        terms = [self._base_terms(op, c) for c in cfgs]
        if terms[0] is None or len(cfgs) < max(self.min_samples, len(terms[0]) + 1):
            return
        x = np.array(terms, dtype=float) / ms[:, None]
        scale = np.linalg.norm(x, axis=0)
        scale[scale == 0] = 1.0
        xs, target = x / scale, np.ones(len(cfgs))
        keep = op_kinds.get(op).weights_term
        if keep is not None:
            penalty = np.sqrt(BASE_TIE_PENALTY) * np.eye(xs.shape[1])
            penalty = np.delete(penalty, keep, axis=0)
            xs = np.vstack([xs, penalty])
            target = np.concatenate([target, np.zeros(len(penalty))])
        coef, _ = nnls(xs, target)
        coef = coef / scale
        if np.all(x @ coef > 0):
            self.base_coefs_[op] = [float(v) for v in coef]

    def _predict_one(self, op: str, cfg: dict) -> float:
        key = sample_key(op, cfg)
        known = self.table_.get(key)
        if known is None:
            known = self._predicted.get(key)
        if known is None:
            known = self._predicted[key] = self._predict_off_table(op, cfg)
        return known

    def _predict_off_table(self, op: str, cfg: dict) -> float:
        op_kinds.get(op).check(cfg)
        base = self._roof(op, cfg)
        m = self._model_of(op, cfg)
        if m is None:
            if self.missing_op == "error":
                raise UnsupportedOpError(
                    f"the profile has no lookup table for op {op!r} (configuration {cfg}); "
                    "re-profile, or use missing_op='roofline'"
                )
            return base * math.exp(self.median_log_efficiency_)
        if sorted(cfg) != m["keys"]:
            raise UnsupportedOpError(
                f"op {op!r} configuration {cfg} has keys {sorted(cfg)}, the table has {m['keys']}"
            )
        unseen = {k: cfg[k] for k, seen in m["categories"].items() if cfg[k] not in seen}
        if unseen:
            # One-hot encoded as all zeros, which the range check below cannot see.
            what = (f"op {op!r} configuration {cfg}: {unseen} is not in the profile's table "
                    f"(it has {[f'{k}={v}' for k in unseen for v in m['categories'][k]]})")
            if self.out_of_range == "error":
                raise UnsupportedOpError(f"{what}; profile networks that use it or use "
                                         "out_of_range='clamp'")
            seen_key = (op, tuple(sorted(unseen.items())))
            if seen_key not in self._warned:  # once: a regularizer predicts a grid of configs
                self._warned.add(seen_key)
                warnings.warn(UnseenCategoryWarning(
                    f"{what}; predicted from the table's other values, with none of its "
                    "own timings: add a network that uses it to the profile's plan and "
                    "re-profile"), stacklevel=2)
        f = np.array(self._features(op, cfg, m["categories"], base, m["paths"]))
        if np.any(f < m["low"] - 1e-9) or np.any(f > m["high"] + 1e-9):
            if self.out_of_range == "error":
                raise UnsupportedOpError(
                    f"op {op!r} configuration {cfg} lies outside the profile's table range; "
                    "profile a wider range or use out_of_range='clamp'"
                )
            f = np.clip(f, m["low"], m["high"])
        return max(base * float(np.exp(m["gp"].predict(f[None, :])[0])), self._floor_ms(m))

    def _model_of(self, op: str, cfg: dict) -> dict | None:
        """The fitted model that predicts `cfg`: its regime's (`OpKind.regime`) where
        the table had enough samples there to fit one (`_regime_groups`), else the
        kind's."""
        regime = op_kinds.get(op).regime(cfg)
        m = self.models_.get(regime_model_key(op, regime)) if regime else None
        return m if m is not None else self.models_.get(op)

    def _floor_ms(self, m: dict) -> float:
        """No kernel is predicted faster than the fastest sample of its kind, where that
        sample is a call's fixed cost (at most FIXED_COST_CALLS empty calls): the
        regressor, working on efficiency over the roofline, extrapolates a microsecond
        kernel below every measurement. EPYC VM: a 1x1 conv 6x6x14->16 was predicted
        0.66 us, measured 0.82; the table's fastest conv (7x7x4->29) is 0.83. A kind
        whose fastest sample is real work floors nothing (an older plan's fastest
        transpose conv, 96 us, would have set every small one's time)."""
        fixed = FIXED_COST_CALLS * (self.per_invocation_ms_ + self.per_op_ms_)
        return m["fastest_ms"] if m["fastest_ms"] <= fixed else 0.0


    def check_kernel(self, op: str, cfg: dict) -> "KernelCheck":
        """How far `cfg` lies from the table and how far off its prediction is
        expected to be (see `KernelCheck`)."""
        if sample_key(op, cfg) in self.table_:
            return KernelCheck(op, dict(cfg), False, 0.0, self.exact_log_std_, "")
        m = self._model_of(op, cfg)
        if m is None:
            return KernelCheck(op, dict(cfg), True, math.inf, UNMODELLED_LOG_STD,
                               f"the profile has no samples of {op!r}")
        reasons = [f"{k}={cfg[k]!r} not in the table" for k, seen in m["categories"].items()
                   if cfg[k] not in seen]
        for key, found in m["paths"].items():
            if not any(cfg[key] in p for p in found):
                reasons.append(f"{key}={cfg[key]} not sampled (kernel path unknown)")
        base = self._roof(op, cfg)
        f = np.array(self._features(op, cfg, m["categories"], base, m["paths"]))
        scale = m["length_scales"]
        clipped = np.clip(f, m["low"], m["high"])
        # Past the range, a length scale over 1 (a feature the table barely varies,
        # e.g. k when every sample is 3x3) says nothing; count whole units there.
        beyond = np.abs(f - clipped) / np.minimum(scale, 1.0)
        if np.any(beyond > OUTSIDE_LENGTH_SCALES):
            reasons.append("outside the sampled range")
        distance = float(np.min(np.linalg.norm((m["train_x"] - f) / scale, axis=1)))
        if distance > OUTSIDE_LENGTH_SCALES:
            reasons.append(f"{distance:.1f} length scales from the nearest sample")
        _, std = m["gp"].predict(clipped[None, :], return_std=True)
        log_std = max(float(std[0]), self.exact_log_std_)
        if reasons:  # a GP's variance understates a miss where it never saw the trend
            log_std = max(log_std, OUTSIDE_LOG_STD)
        return KernelCheck(op, dict(cfg), bool(reasons), distance, log_std, "; ".join(reasons))


@dataclass
class KernelCheck:
    """Where a kernel's configuration lies with respect to the lookup table.

    outside: no measured sample covers it (a category or kernel path the table never
        timed, features beyond the sampled range, or more than OUTSIDE_LENGTH_SCALES
        of the fitted length scales from the nearest sample); `reason` says which.
    distance: to the nearest sample, in the op's fitted length scales.
    log_std: expected error, the standard deviation of log(measured / predicted): the
        Gaussian process's predictive one, at least the table's noise, and at least
        OUTSIDE_LOG_STD outside the table.
    """

    op: str
    config: dict
    outside: bool
    distance: float
    log_std: float
    reason: str

    def to_dict(self) -> dict:
        return {"op": self.op, "config": self.config, "outside": self.outside,
                "distance": self.distance if math.isfinite(self.distance) else None,
                "expected_error_pct": 100.0 * (math.exp(self.log_std) - 1.0),
                "reason": self.reason}


# A configuration more than this many fitted length scales from every sample (or past
# the sampled range by as much) is outside the table: the GP then reverts to its mean.
OUTSIDE_LENGTH_SCALES = 1.0
# The expected error of a kernel outside the table (log scale, ~50%): a 7x7 depthwise
# conv predicted from 3x3 and 5x5 samples was 5-9x off, a dense layer 2x.
OUTSIDE_LOG_STD = math.log(1.5)
# An op kind without samples, charged by the roofline at the median efficiency.
UNMODELLED_LOG_STD = math.log(2.0)


PREDICTORS: dict[str, type] = {
    "lookup": LookupTableModel,
    "roofline": RooflineModel,
    "flops": FlopsBaseline,
}


def optimized_hyperparameters(feats: np.ndarray, target: np.ndarray,
                              random_state: int | None) -> list[float]:
    """The hyperparameters `LookupTableModel` optimizes for one op kind's data, as
    plain numbers: module-level, so a worker process (`convert.pool`) runs it. On one
    BLAS thread: the workers run side by side, one per core, and BLAS threads that
    outnumber the cores spin against each other."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        gp = LookupTableModel(random_state=random_state)._gp(feats, target)
    return _hyperparameter_values(gp.kernel_)


def with_fitted_lookup(profile: Any, reuse_current: bool = False, pool=None) -> DeviceProfile:
    """`profile` with its ``fitted.lookup`` section derived afresh: the lookup table's
    Gaussian processes fitted with hyperparameter optimization (the slow path; a
    stored section is ignored) under the default settings, which every load uses.
    With `reuse_current`, a stored section that still applies is used rather than
    ignored (`LookupTableModel(use_fitted=True)`). `pool`: see `LookupTableModel.fit`.
    Save the result to make later loads fast. Raises ProfileError for a profile
    without lookup-table samples (a datasheet profile)."""
    prof = load_profile(profile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowFitWarning)  # this refreshes what it warns of
        est = LookupTableModel(prof, use_fitted=reuse_current).fit(pool=pool)
    fitted = prof.fitted
    fitted["lookup"] = est.fitted_section()
    return prof.replace(fitted=fitted)


def make_predictor(name: str, profile: Any, **kwargs: Any):
    """A fitted predictor `name` (`PREDICTORS`) of `profile` (a DeviceProfile, a path or
    a shipped name), with estimator settings `kwargs`. Fitted predictors are kept
    (`_FITTED`) and shared: one workflow asks for the same one many times (shrink's
    snap rounds, its uniform baseline, its regularizer: 7 lookup fits of 2 s each in
    one test run), and a fit depends only on the profile and the settings. A profile
    file is the same while its size and modification time are; a DeviceProfile is
    the same object. Treat the result as read-only (sklearn's `clone` gives one of
    your own)."""
    try:
        cls = PREDICTORS[name]
    except KeyError:
        raise ProfileError(f"unknown predictor {name!r}; choose one of {', '.join(PREDICTORS)}") from None
    try:
        key = (name, _profile_token(profile), tuple(sorted(kwargs.items())))
        hash(key)
    except (TypeError, OSError):
        key = None  # unhashable settings or an unreadable path: no sharing
    if key is not None and key in _FITTED:
        _FITTED.move_to_end(key)
        return _FITTED[key][1]
    prof = load_profile(profile)
    est = cls(profile=prof, **kwargs).fit()
    if key is not None:
        _FITTED[key] = (prof, est)  # the profile kept alive: its id stays its own
        while len(_FITTED) > _FITTED_MAX:
            _FITTED.popitem(last=False)
    return est


_FITTED: "OrderedDict[tuple, tuple]" = OrderedDict()
_FITTED_MAX = 8


def _profile_token(profile: Any) -> tuple:
    """What identifies `profile` for `make_predictor`'s sharing (see there)."""
    if isinstance(profile, DeviceProfile):
        return ("object", id(profile))
    if isinstance(profile, (str, os.PathLike)):
        path = os.fspath(profile)
        if not (path.lower().endswith(".json") or os.path.exists(path)):
            import device_profiles

            if device_profiles.normalize_name(path) not in device_profiles.available():
                raise TypeError(path)  # load_profile says what is wrong with it
            path = os.fspath(device_profiles.path(path))  # a shipped name
        st = os.stat(path)
        return ("file", os.path.realpath(path), st.st_mtime_ns, st.st_size)
    raise TypeError(type(profile).__name__)


@dataclass
class KernelPart:
    """One of a layer's kernels: the runtime's op (BATCH_MATMUL, SOFTMAX, ...), the
    op kind and configuration that time it (None: charged by the roofline), its ms."""

    kernel: str
    op: str | None
    config: dict | None
    latency_ms: float

    def label(self) -> str:
        if self.op is None:
            return f"{self.kernel} (roofline)"
        return f"{self.kernel} {self.op} " + " ".join(f"{k}={v}" for k, v in self.config.items())

    def to_dict(self) -> dict:
        return {"kernel": self.kernel, "op": self.op, "config": self.config,
                "latency_ms": self.latency_ms}


@dataclass
class LayerPrediction:
    name: str
    type: str
    latency_ms: float
    bound: str
    kernels: int = 1  # the runtime's kernels summed into this row
    # each kernel's share, in the runtime's order (a MultiHeadAttention: its projections,
    # transposes, batch matmuls, scale, softmax)
    parts: list[KernelPart] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "latency_ms": self.latency_ms,
                "bound": self.bound, "kernels": self.kernels,
                "parts": [p.to_dict() for p in self.parts]}


def predict_items(items: list[WorkItem], predictor: Any) -> tuple[float, list[LayerPrediction]]:
    """The network model: total ms of a network's kernels (each in the working set of
    everything the network touches, `working_set_bytes`) plus the runtime's
    per-invocation overhead, and per-layer predictions: one row per Keras layer the
    kernels came from, its kernels' latencies summed (`kernels` counts them)."""
    per_layer: dict[str, LayerPrediction] = {}
    total = predictor.per_invocation_ms_
    touched = working_set_bytes(items)
    kernels = sum(1 for item in items if item.configs)
    for item in items:
        if item.configs is None:
            ms = predictor.predict_work(item.flops, item.bytes, item.op_class)
            bound = predictor.bound_of(item.flops, item.bytes, item.op_class)
        else:
            ms = predictor.kernel_ms(item.configs, touched, kernels)
            op, cfg = item.configs[0]
            bound = predictor.bound(op, cfg)
        total += ms
        op, cfg = item.configs[0] if item.configs else (None, None)
        part = KernelPart(item.kernel or item.layer_type, op, cfg and dict(cfg), ms)
        if item.layer in per_layer:
            per_layer[item.layer].latency_ms += ms
            per_layer[item.layer].kernels += 1
            per_layer[item.layer].parts.append(part)
        else:
            per_layer[item.layer] = LayerPrediction(item.layer, item.layer_type, ms, bound,
                                                    parts=[part])
    return total, list(per_layer.values())


@dataclass
class PredictionBand:
    """A network prediction's expected error and the kernels outside the table.

    uncertainty_ms: one standard deviation of the network's predicted latency. The
    kernels of one op kind share their errors (one table, one fit: a kind predicted
    8% slow is slow everywhere), so their expected errors add; the kinds' totals add
    in quadrature. A kernel's expected error is `KernelCheck.log_std`.
    outside: (layer, KernelCheck) of every distinct kernel configuration outside the
    table, in network order.
    """

    uncertainty_ms: float
    outside: list[tuple[str, KernelCheck]]

    def to_dict(self) -> dict:
        return {"uncertainty_ms": self.uncertainty_ms,
                "outside": [dict(c.to_dict(), layer=layer) for layer, c in self.outside]}


def prediction_band(items: Sequence[WorkItem], predictor: Any) -> PredictionBand | None:
    """The `PredictionBand` of a network's kernels, or None for a predictor that
    cannot say (the roofline and FLOPs baselines)."""
    if not hasattr(predictor, "check_kernel"):
        return None
    by_kind: dict[str, float] = {}
    outside: list[tuple[str, KernelCheck]] = []
    kernels = sum(1 for item in items if item.configs)
    errors_ms: dict[str, float] = {}  # per distinct configuration: checked and predicted once
    for item in items:
        for op, cfg in _as_kernels(item.configs or ()):
            key = sample_key(op, cfg)
            if key not in errors_ms:
                c = predictor.check_kernel(op, cfg)
                if c.outside:
                    outside.append((item.layer, c))
                ms = predictor.kernel_ms([(op, cfg)], 0.0, kernels)
                errors_ms[key] = ms * (math.exp(c.log_std) - 1.0)
            by_kind[op] = by_kind.get(op, 0.0) + errors_ms[key]
    return PredictionBand(math.sqrt(sum(v * v for v in by_kind.values())), outside)


def rmspe(pred: Sequence[float], true: Sequence[float]) -> float:
    p, t = np.asarray(pred, float), np.asarray(true, float)
    return float(np.sqrt(np.mean(((p - t) / t) ** 2)))
