"""Sampling plans: which op-kind configurations a profile times.

The roofline plan times large regular ops (the device's ceilings), chains of tiny ops
(overheads) and weight streaming (the memory hierarchy). The table plan draws
configurations from the layers of keras.applications families, because that is where
real (and slimmed) networks live, adds channel-slimmed, resized and narrowed variants
so the regularizer's outputs are covered, and each op kind's own coverage
configurations (`OpKind.coverage_configs`), and a ladder of sizes for kernels that
stream their tensors (`ladder_configs`). The adaptive plan adds samples around the
configurations a held-out fit predicts worst.
"""

from __future__ import annotations

import functools
import json
import math
import random
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from latency_lab import op_kinds
from latency_lab.op_kinds.activation import ACTIVATION_KERNELS, ACTIVATIONS
from latency_lab.op_kinds.base import CHANNEL_KEYS, Config
from latency_lab.op_kinds.conv2d import small_map_configs
from latency_lab.profile import sample_key

__all__ = ["PlannedSample", "roofline_plan", "table_plan", "adaptive_plan",
           "application_layer_configs", "family_configs", "category_configs", "coverage_configs",
           "loo_relative_errors", "QUICK_FAMILIES", "FULL_FAMILIES", "CHAIN_LENGTHS",
           "WEIGHT_STREAM_QUICK", "WEIGHT_STREAM_FULL", "NARROW_MAX_CHANNELS",
           "CATEGORY_SAMPLES", "table_shares", "ladder_configs", "LADDER_BYTES", "SPACE_SHARE", "SPINE_SHARE", "path_plan", "path_boundaries",
           "PATH_SAMPLES", "HARVESTED_FAMILIES", "family_label", "harvest_versions",
           "shipped_family_configs"]


@dataclass(frozen=True)
class PlannedSample:
    op: str
    config: Config
    phase: str  # "roofline", "table" or "adaptive"

    @property
    def key(self) -> str:
        return sample_key(self.op, self.config)


CHAIN_LENGTHS = (1, 9, 17, 33)


def roofline_plan(quick: bool) -> list[PlannedSample]:
    """Large, regular ops that reach the device's ceilings, plus tiny-op chains for
    overheads. Memory bandwidth uses an add whose working set (3 x 16 MiB) is past any
    last-level cache of a CPU we expect."""
    items: list[tuple[str, Config]] = [
        ("conv2d", dict(h=28, w=28, cin=256, cout=256, k=1, s=1)),
        ("conv2d", dict(h=56, w=56, cin=64, cout=64, k=3, s=1)),
        ("dense", dict(rows=64, cin=1024, cout=1024)),
        ("depthwise", dict(h=112, w=112, c=64, k=3, s=1)),
        ("depthwise", dict(h=28, w=28, c=512, k=3, s=1)),
        ("add", dict(h=56, w=56, c=64, broadcast=False)),
        ("add", dict(h=1024, w=1024, c=4, broadcast=False)),
    ]
    if not quick:
        items += [
            ("conv2d", dict(h=14, w=14, cin=512, cout=512, k=3, s=1)),
            ("depthwise", dict(h=56, w=56, c=256, k=5, s=1)),
            ("multiply", dict(h=28, w=28, c=256, broadcast=False)),
            ("add", dict(h=2048, w=1024, c=4, broadcast=False)),
        ]
    items += [("chain", dict(n=n, size=8)) for n in CHAIN_LENGTHS]
    items += [("weight_stream", cfg) for cfg in WEIGHT_STREAM_QUICK]
    if not quick:
        items += [("weight_stream", cfg) for cfg in WEIGHT_STREAM_FULL]
    return [PlannedSample(op, cfg, "roofline") for op, cfg in items]


# Working sets of weights from L2-resident to far past the last-level cache: 0.25 MiB
# to 128 MiB (c=256: 0.25 MiB per matrix, c=512: 1 MiB, c=1024: 4 MiB).
WEIGHT_STREAM_QUICK = (dict(n=1, c=256), dict(n=2, c=512), dict(n=2, c=1024),
                       dict(n=8, c=1024), dict(n=32, c=1024))
WEIGHT_STREAM_FULL = (dict(n=2, c=256), dict(n=1, c=512), dict(n=4, c=512),
                      dict(n=4, c=1024), dict(n=4, c=2048), dict(n=6, c=2048),
                      dict(n=16, c=1024), dict(n=24, c=1024), dict(n=8, c=2048))


def family_configs(name: str, kwargs: dict, runtime: str = "litert"
                   ) -> list[tuple[str, Config]]:
    """(bench op, config) of every kernel `runtime` runs for one keras.applications build
    (`keras.applications.<name>(weights=None, **kwargs)`), deduplicated, in kernel order:
    the same kernel list predictions use (for LiteRT, the converted model's kernels, so
    swish is timed as LOGISTIC + MUL as it really runs)."""
    import keras

    from latency_lab.kernels import work_items

    seen: dict[str, tuple[str, Config]] = {}
    model = getattr(keras.applications, name)(weights=None, **kwargs)
    for item in work_items(model, runtime):
        for bop, cfg in item.configs or ():
            seen.setdefault(sample_key(bop, cfg), (bop, cfg))
    del model
    keras.backend.clear_session()
    return list(seen.values())


# The harvest of QUICK_FAMILIES and FULL_FAMILIES for LiteRT, made by
# `scripts/harvest_families.py` with the TensorFlow and Keras versions it names. A
# harvest is fixed by those versions (the models are built without weights and the
# converter is deterministic), so a profile made with them reads it instead of
# building and converting eight networks (about 30 s on the 2-core Xeon VM); with any
# other version the families are harvested live, as always.
HARVESTED_FAMILIES = Path(__file__).with_name("harvested_families.json")


def family_label(name: str, kwargs: dict) -> str:
    """A family build's key in HARVESTED_FAMILIES: `name(json of kwargs)`."""
    return f"{name}({json.dumps(kwargs, sort_keys=True)})"


def harvest_versions() -> dict[str, str | None]:
    """The installed versions a harvest depends on (read without importing them; None
    for a distribution not installed under that name, e.g. tensorflow-cpu, which no
    shipped harvest matches)."""
    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {pkg: version(pkg) for pkg in ("tensorflow", "keras")}


@functools.lru_cache(maxsize=1)
def _shipped() -> dict:
    try:
        return json.loads(HARVESTED_FAMILIES.read_text())
    except (OSError, ValueError):  # absent or unreadable: harvest live
        return {}


def shipped_family_configs(name: str, kwargs: dict, runtime: str = "litert"
                           ) -> list[tuple[str, Config]] | None:
    """`family_configs(name, kwargs, runtime)` as shipped in HARVESTED_FAMILIES, or None
    when it holds no harvest of that family for this runtime and these versions."""
    data = _shipped()
    if data.get("runtime") != runtime or data.get("versions") != harvest_versions():
        return None
    configs = (data.get("families") or {}).get(family_label(name, kwargs))
    return None if configs is None else [(op, dict(cfg)) for op, cfg in configs]


def application_layer_configs(families: Iterable[tuple[str, dict]],
                              runtime: str = "litert", pool=None) -> list[tuple[str, Config]]:
    """`family_configs` of every family, deduplicated across them: the shipped harvest
    where it is current (`shipped_family_configs`), else built and converted here or,
    with a `convert.pool.ConversionPool`, in its workers (the same configs, in the same
    order)."""
    families = [(name, dict(kwargs)) for name, kwargs in families]
    per_family = [shipped_family_configs(name, kwargs, runtime) for name, kwargs in families]
    jobs = [(name, kwargs, runtime) for (name, kwargs), got in zip(families, per_family)
            if got is None]
    live = iter(pool.map(family_configs, jobs) if pool is not None
                else [family_configs(*job) for job in jobs])
    seen: dict[str, tuple[str, Config]] = {}
    for configs in per_family:
        for bop, cfg in (configs if configs is not None else next(live)):
            seen.setdefault(sample_key(bop, cfg), (bop, cfg))
    return list(seen.values())


QUICK_FAMILIES = (
    ("MobileNetV2", {"alpha": 0.5, "input_shape": (128, 128, 3)}),
    ("ResNet50", {"input_shape": (64, 64, 3)}),
    ("MobileNetV3Small", {"input_shape": (128, 128, 3)}),  # hard-swish, squeeze-excite
    ("EfficientNetB0", {"input_shape": (64, 64, 3)}),  # swish (sigmoid + mul)
)
FULL_FAMILIES = (
    ("MobileNet", {"alpha": 0.5, "input_shape": (160, 160, 3)}),
    ("MobileNetV2", {"alpha": 1.0, "input_shape": (224, 224, 3)}),
    ("MobileNetV2", {"alpha": 0.35, "input_shape": (96, 96, 3)}),
    ("MobileNetV3Small", {"input_shape": (224, 224, 3)}),
    ("MobileNetV3Large", {"alpha": 0.75, "input_shape": (160, 160, 3)}),
    ("ResNet50", {"input_shape": (160, 160, 3)}),
    ("EfficientNetB0", {"input_shape": (224, 224, 3)}),
    ("DenseNet121", {"input_shape": (96, 96, 3)}),
)



def _slim(cfg: Config, rng: random.Random) -> Config:
    """A channel-slimmed variant, as the regularizer will produce."""
    out = dict(cfg)
    for key in CHANNEL_KEYS:
        if key in out and out[key] > 4:
            out[key] = max(1, int(round(out[key] * rng.uniform(0.2, 1.0))))
    return out


_MIN_DISTINCT = 8  # configurations per op kind a table needs to be more than a point


def _resize(cfg: Config, rng: random.Random) -> Config:
    """The same op at another input size (h and w scaled together)."""
    out = dict(cfg)
    scale = rng.uniform(0.25, 1.5)
    for key in ("h", "w"):
        if key in out:
            out[key] = max(1, int(round(out[key] * scale)))
    return out


NARROW_MAX_CHANNELS = 48  # a few SIMD tiles: where a partial tile is most of the work


def _narrow(cfg: Config, rng: random.Random) -> Config:
    """The layer cut to a handful of channels (1..NARROW_MAX_CHANNELS, mostly not a
    multiple of 8), as a strongly slimmed network has them. XNNPACK runs a partial
    SIMD tile through a slower remainder path: on the EPYC VM a 3x3 depthwise at
    48x48 takes 17 us over 8 channels, 25 us over 1-7 and 34 us over 9-15, and
    slimming by a random fraction of a real layer's width rarely lands there."""
    out = dict(cfg)
    for key in CHANNEL_KEYS:
        if key in out and out[key] > 4:  # 3 image channels stay 3
            out[key] = rng.randint(1, min(out[key], NARROW_MAX_CHANNELS))
    return out


def _variant(op: str, cfg: Config, rng: random.Random) -> Config:
    """A planned variant of a real layer: channel-slimmed (what the regularizer
    produces), at another input size, or both, in equal shares; convs also cut to a
    few channels (`_narrow`) in an equal share. The families are built at one input
    size each, so without resizing a table has no big-weight conv at the 2x2 and 4x4
    maps of a network fed 64 pixels: ResNet50 at 64 had its 512-channel 3x3 on 2x2
    predicted 73% slower than its one-op measurement (0.44 vs 0.25 ms)."""
    if "h" not in cfg:
        return _slim(cfg, rng)
    mode = rng.randrange(4 if op_kinds.get(op).narrow else 3)
    if mode == 0:
        return _slim(cfg, rng)
    if mode == 1:
        return _resize(cfg, rng)
    if mode == 2:
        return _slim(_resize(cfg, rng), rng)
    return _narrow(cfg, rng)


# Each op kind's share of the table budget (`OpKind.table_share`) follows where
# network latency goes and where the regressor still learns from more samples. Learning curves on an EPYC profile
# (held-out RMSPE at 40/60/80/100% of the samples, rep7 profile 2): conv2d
# 14.0/11.2/12.0/8.6%, depthwise 22.7/18.8/12.7/12.2%, dense 44.6/20.0/21.0/16.9%,
# but activation 7.0/2.9/3.7/2.0% and multiply 9.0/7.6/6.2/5.1%: elementwise tables
# are learnt from a few dozen samples, convs are not, and convs are 55-95% of a
# CNN's time.


def table_shares() -> dict[str, int]:
    """{op kind: share of the table budget} (`OpKind.table_share`)."""
    return {k.name: k.table_share for k in op_kinds.table_kinds()}


def table_plan(quick: bool, seed: int = 0, max_samples: int | None = None,
               runtime: str = "litert", pool=None) -> list[PlannedSample]:
    """Lookup-table samples: real layer configs and variants of them (`_variant`),
    subsampled per op by `table_shares()` so every op kind is represented. `pool`: a
    `ConversionPool` the families are harvested in (`application_layer_configs`)."""
    families = QUICK_FAMILIES if quick else FULL_FAMILIES
    rng = random.Random(seed)
    configs = application_layer_configs(families, runtime, pool=pool)
    per_op: dict[str, list[Config]] = {}
    for op, cfg in configs:
        per_op.setdefault(op, []).append(cfg)
    # 575: 620 with the regions took 614 s of measuring on the 2-core EPYC VM (1044
    # samples with coverage and adaptive ones), past the 10 minutes a full profile gets
    budget = max_samples or (200 if quick else 575)
    weights = table_shares()
    spaced = {k.name for k in op_kinds.table_kinds() if k.space}
    total_w = sum(weights[o] for o in set(per_op) | spaced if o in weights) or 1
    planned: dict[str, PlannedSample] = {}  # by sample key, the first of duplicates

    def add(op: str, cfg: Config) -> None:
        p = PlannedSample(op, cfg, "table")
        planned.setdefault(p.key, p)

    for op in sorted(set(per_op) | spaced):
        cfgs = per_op.get(op, [])
        rng.shuffle(cfgs)
        n = max(4, budget * weights.get(op, 1) // total_w)
        kind = op_kinds.get(op)
        # A kind no family uses is sampled from its space and its regions alone. One
        # whose families' configurations no variant changes (no channel or spatial key:
        # a classifier's softmax) takes them as they are and the rest of its share from
        # its space and regions. The others take one in SPACE_SHARE from each.
        varies = bool(kind.channel_keys) or "h" in kind.keys
        harvested = min(len(cfgs), (n + 1) // 2) if cfgs and not varies else 0
        if cfgs and varies:
            n_space = n // SPACE_SHARE if kind.space else 0
            per_region = n // SPACE_SHARE if kind.regions else 0
            n_region = per_region * len(kind.regions)
            n_left = n - n_space - per_region  # the other regions' draws come on top
        else:
            rest = n - harvested if kind.space or kind.regions else 0
            n_region = rest // 2 if kind.regions else 0
            n_space = rest - n_region if kind.space else 0
            n_left = n - n_space - n_region
        from_space = _runnable(op, kind.space_configs(n_space, rng)
                               + kind.region_configs(n_region, rng), runtime)
        n_real = min(len(cfgs), (n_left + 1) // 2 if varies else n_left)
        chosen = cfgs[:n_real]
        if cfgs:
            chosen += [_variant(op, rng.choice(cfgs), rng) for _ in range(n_left - n_real)]
        chosen += from_space
        spines = 3 if not quick and kind.table_share >= SPINE_SHARE else 1
        chosen += kind.spine_configs(_spine_bases(op, cfgs or from_space, spines))
        if not cfgs:
            cfgs = from_space
        # Ops the families use at few channel counts (a Rescaling on 3 image channels)
        # slim into duplicates; other input sizes keep their table from being a point.
        distinct = {sample_key(op, c) for c in chosen}
        for _ in range(4 * n):
            if len(distinct) >= min(n, _MIN_DISTINCT):
                break
            cfg = _resize(rng.choice(cfgs), rng)
            distinct.add(sample_key(op, cfg))
            chosen.append(cfg)
        for cfg in chosen:
            add(op, kind.derive(cfg))  # variants scale keys apart (a slice's cout past its cin)
    extras = coverage_configs(quick) + small_map_configs(configs) + category_configs(configs, runtime)
    for op, cfg in extras:
        add(op, cfg)
    for op, cfg in ladder_configs([(p.op, p.config) for p in planned.values()], quick):
        add(op, cfg)
    plan = list(planned.values())
    # Measured in a shuffled order: on a shared machine the noise comes in spells of
    # seconds to minutes, and measuring one op kind after another turned each spell
    # into a bias of a whole op kind; shuffled, it is per-sample noise the table's
    # regressor averages out. A --budget cut also leaves every op kind some samples.
    rng.shuffle(plan)
    return plan


# Kinds with at least this table share (the convs) sweep their path keys on three
# spines in a full plan, the others on one: with three everywhere pools and transposed
# convs took 150 of a full plan's samples and the convs' tables thinned (single-op
# sweeps within +-10%: 68% -> 49%).
SPINE_SHARE = 10

# One in SPACE_SHARE of an op kind's table samples is drawn from its whole
# configuration space (`OpKind.space_configs`), whatever the families use.
SPACE_SHARE = 4


def _spine_bases(op: str, cfgs: Sequence[Config], n: int) -> list[Config]:
    """`n` of the families' configurations of `op`, spread by work (quartiles): the
    bases its path keys are swept on."""
    ranked = sorted(cfgs, key=lambda c: (op_kinds.work(op, c).flops, sorted(c.items())))
    if not ranked:
        return []
    return [ranked[int((i + 1) * len(ranked) / (n + 1))] for i in range(n)]


def _activations_run(runtime: str) -> set[str]:
    """The activations `runtime` runs as one kernel (under LiteRT swish is a LOGISTIC
    and a MUL, timed as those)."""
    return set(ACTIVATION_KERNELS.values()) if runtime == "litert" else set(ACTIVATIONS)


def _runnable(op: str, cfgs: list[Config], runtime: str) -> list[Config]:
    """Drop configurations `runtime` never runs as one kernel of `op`."""
    if op != "activation":
        return cfgs
    runs = _activations_run(runtime)
    return [c for c in cfgs if c["fn"] in runs]


CATEGORY_SAMPLES = 6  # per missing value


def category_configs(configs: Iterable[tuple[str, Config]],
                     runtime: str = "litert") -> list[tuple[str, Config]]:
    """For each value in CATEGORIES that none of `configs` (the families' layers) has,
    CATEGORY_SAMPLES of the op's configurations with that value swapped in, spread from
    the smallest to the largest. Under LiteRT only the activations it runs as one
    kernel (swish is a LOGISTIC and a MUL, timed as those)."""
    runs = _activations_run(runtime)
    by_op: dict[str, list[Config]] = {}
    for op, cfg in configs:
        by_op.setdefault(op, []).append(cfg)
    out = []
    for op, keys in ((k.name, k.categories) for k in op_kinds.kinds() if k.categories):
        cfgs = sorted(by_op.get(op, []), key=lambda c: (op_kinds.work(op, c).bytes_total, sorted(c.items())))
        for key, values in keys.items():
            present = {c[key] for c in cfgs}
            for value in values:
                if value in present or not cfgs or (op == "activation" and value not in runs):
                    continue
                n = min(CATEGORY_SAMPLES, len(cfgs))
                picks = [cfgs[round(i * (len(cfgs) - 1) / max(n - 1, 1))] for i in range(n)]
                out.extend((op, dict(c, **{key: value})) for c in picks)
    return out



def _features(op: str, config: Config) -> list[float]:
    w = op_kinds.work(op, config)
    return [1.0, math.log(w.flops + 1.0), math.log(w.bytes_total + 1.0)]


def loo_relative_errors(op: str, samples: Sequence) -> list[tuple[float, object]]:
    """Leave-one-out relative error of a log-linear fit of time on (FLOPs, bytes): a
    cheap stand-in for "how well do neighbours explain this sample"."""
    rows = [s for s in samples if s.op == op]
    if len(rows) < 6:
        return [(1.0, s) for s in rows]
    x = np.array([_features(op, s.config) for s in rows])
    y = np.log(np.array([s.min_ms for s in rows]))
    out = []
    for i in range(len(rows)):
        mask = np.arange(len(rows)) != i
        coef, *_ = np.linalg.lstsq(x[mask], y[mask], rcond=None)
        # in log space, clipped: a left-out sample far outside the others (a space
        # corner) overflowed exp() and warned mid-profile; its error stays the worst
        log_ratio = float(np.clip(x[i] @ coef - y[i], -50.0, 50.0))
        out.append((abs(math.expm1(log_ratio)), rows[i]))
    return out


# A nominal roofline for finding kernel-path jumps before the table is fitted: along
# a spine only the ratios between neighbouring values matter.
_NOMINAL_FLOPS_PER_S = 1e11
_NOMINAL_BYTES_PER_S = 2e10
PATH_SAMPLES = 4  # per value on either side of a kernel-path boundary


def _log_efficiency(op: str, config: Config, ms: float) -> float:
    w = op_kinds.work(op, config)
    roof_s = max(w.flops / _NOMINAL_FLOPS_PER_S, w.bytes_total / _NOMINAL_BYTES_PER_S, 1e-9)
    return math.log(ms * 1e-3 / roof_s)


def path_boundaries(samples: Sequence) -> dict[tuple[str, str], list[tuple]]:
    """{(op, path key): kernel paths} found in measured `samples` (objects with op,
    config and min_ms), for the op kinds and keys where the time per unit of work
    jumps between neighbouring values (`op_kinds.space.kernel_paths`)."""
    from latency_lab.op_kinds.space import kernel_paths_along

    out = {}
    for kind in op_kinds.table_kinds():
        rows = [s for s in samples if s.op == kind.name]
        effs = [_log_efficiency(kind.name, s.config, s.min_ms) for s in rows]
        for key in kind.path_keys:
            found = kernel_paths_along(key, [s.config for s in rows], effs)
            if len(found) > 1:
                out[(kind.name, key)] = found
    return out


def path_plan(samples: Sequence, seed: int = 0,
              per_value: int = PATH_SAMPLES) -> list[PlannedSample]:
    """Dense samples where the runtime changes kernel path: for each boundary found
    in `samples` (`path_boundaries`), `per_value` configurations from the op kind's
    space with the key at each value on either side of it."""
    rng = random.Random(seed + 2)
    seen = {s.key for s in samples}
    plan: list[PlannedSample] = []
    for (op, key), found in sorted(path_boundaries(samples).items()):
        kind = op_kinds.get(op)
        edges = sorted({v for a, b in zip(found, found[1:]) for v in (a[-1], b[0])})
        for v in edges:
            for cfg in kind.space_configs(per_value, rng):
                cfg = kind.fit_work(kind.derive(dict(cfg, **{key: v})))
                p = PlannedSample(op, cfg, "adaptive")
                if p.key not in seen:
                    seen.add(p.key)
                    plan.append(p)
    return plan


def _perturb(cfg: Config, rng: random.Random) -> Config:
    out = dict(cfg)
    for key in ("cin", "cout", "c", "c1", "c2", "rows"):
        if key in out:
            out[key] = max(1, int(round(out[key] * rng.uniform(0.6, 1.4))))
    return out


def adaptive_plan(samples: Sequence, n: int, seed: int = 0,
                  threshold: float = 0.10) -> list[PlannedSample]:
    """Extra samples around the configurations a held-out fit predicts worst (relative
    error above `threshold`), worst first, `n` in total."""
    rng = random.Random(seed + 1)
    worst: list[tuple[float, object]] = []
    for op in sorted({s.op for s in samples if s.op in op_kinds.names() and s.op not in op_kinds.AUXILIARY}):
        worst += [(e, s) for e, s in loo_relative_errors(op, samples) if e > threshold]
    worst.sort(key=lambda t: -t[0])
    plan: list[PlannedSample] = []
    seen = {s.key for s in samples}
    i = 0
    while worst and len(plan) < n and i < 20 * n:
        _, s = worst[i % len(worst)]
        cfg = op_kinds.get(s.op).derive(_perturb(s.config, rng))
        p = PlannedSample(s.op, cfg, "adaptive")
        if p.key not in seen:
            seen.add(p.key)
            plan.append(p)
        i += 1
    return plan


# Whole networks measured at the end of a profile so predictors can learn what isolated


# The rungs of bytes moved (read + written) a streaming kind's table has a sample near
# (`OpKind.streams`): 64 KB to 64 MB in steps of 4x, from inside a core's L2 to past a
# server's L3, where the kernel's time per byte changes. The table lacked them: on the
# Xeon VM the 15 concat samples of a full plan moved up to 0.55 MB and then 77 MB, and a
# SqueezeNet's 47x47 concat of 1.7 MB measured 3.4x the 0.022 ms predicted. A quick plan
# takes every other rung.
LADDER_BYTES = tuple(2.0 ** e for e in range(16, 27, 2))


def ladder_configs(planned: Sequence[tuple[str, Config]], quick: bool = False
                   ) -> list[tuple[str, Config]]:
    """For each streaming op kind, a configuration at each rung of `LADDER_BYTES` that
    no planned one moves within 2x of: the planned configuration nearest in bytes,
    scaled to the rung (`OpKind.scaled_to_bytes`), so it keeps a planned kernel path."""
    rungs = LADDER_BYTES[::2] if quick else LADDER_BYTES
    out = []
    for kind in op_kinds.table_kinds():
        if not kind.streams:
            continue
        cfgs = [cfg for op, cfg in planned if op == kind.name]
        if not cfgs:
            continue
        moved = [math.log2(max(kind.work(c).bytes_total, 1.0)) for c in cfgs]
        for rung in rungs:
            at = math.log2(rung)
            if any(abs(m - at) <= 1 for m in moved):
                continue
            nearest = min(range(len(cfgs)), key=lambda i: abs(moved[i] - at))
            cfg = kind.scaled_to_bytes(cfgs[nearest], rung)
            out.append((kind.name, cfg))
            moved.append(math.log2(max(kind.work(cfg).bytes_total, 1.0)))
    return out


def coverage_configs(quick: bool) -> list[tuple[str, Config]]:
    """Every op kind's own coverage configurations (`OpKind.coverage_configs`): what
    the application families lack (5x5 and 7x7 regular convs, transposed convs,
    resizes, depth multipliers, broadcasts over an image's channels)."""
    return [(k.name, cfg) for k in op_kinds.table_kinds() for cfg in k.coverage_configs(quick)]
