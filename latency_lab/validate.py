"""Predicted vs measured latency on real networks (the `validate` command).

Each model is measured with the profile's runtime (same harness as profiling) and
predicted by every predictor from the same kernel list; the summary is what the field
reports: share within +/-5% and +/-10%, RMSPE and Spearman rank correlation. Measured
and predicted are the same figure: the fastest repeat over passes spread across the run
(the latency of the model on a quiet device; why in `latency_lab.timing`). The median
over those repeats is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from latency_lab import device_info
from latency_lab.errors import LatencyLabError, ProfileError
from latency_lab.kernels import profile_work_items, working_set_bytes
from latency_lab.predictors import PREDICTORS, LayerPrediction, make_predictor, predict_items
from latency_lab.profile import (DeviceProfile, load_profile, network_latency_ms, sample_key,
                                write_json_atomic)
from latency_lab.timing import TimingConfig, pool_passes

__all__ = ["DEFAULT_PREDICTORS", "REFERENCE_PREFIX", "ModelResult", "ValidationReport",
           "spearman", "summarize", "family_breakdown", "reference_networks", "host_drift",
           "check_runtime", "validate", "write_report", "scatter_figure", "worst_layers_markdown",
           "KernelRow", "KernelBreakdown", "kernel_breakdown", "per_kernel_markdown"]

DEFAULT_PREDICTORS = ("lookup", "roofline", "flops")


@dataclass
class ModelResult:
    name: str
    measured_ms: float  # the latency figure: fastest repeat over all passes
    iqr_ms: float
    predicted_ms: dict[str, float]
    layers: dict[str, list[LayerPrediction]] = field(default_factory=dict)
    pass_ms: list[float] = field(default_factory=list)  # fastest repeat of each pass
    median_ms: float | None = None  # median over all passes' repeats (typical, loaded host)
    skipped: list[str] = field(default_factory=list)  # no latency model (allow_unknown)
    kernels: "KernelBreakdown | None" = None  # per-kernel figures (validate per_layer=True)

    @property
    def pass_spread_pct(self) -> float | None:
        """(slowest - fastest pass) / measured: how much this machine's figure for the
        same model moved during the run; None with fewer than two passes."""
        if len(self.pass_ms) < 2:
            return None
        return 100.0 * (max(self.pass_ms) - min(self.pass_ms)) / self.measured_ms

    def error_pct(self, predictor: str) -> float:
        return 100.0 * (self.predicted_ms[predictor] - self.measured_ms) / self.measured_ms

    def to_dict(self) -> dict:
        return {"name": self.name, "measured_ms": self.measured_ms,
                "median_ms": self.median_ms, "iqr_ms": self.iqr_ms,
                "pass_ms": list(self.pass_ms), "predicted_ms": dict(self.predicted_ms),
                "error_pct": {p: self.error_pct(p) for p in self.predicted_ms},
                "skipped": list(self.skipped),
                **({"per_kernel": self.kernels.to_dict(self.measured_ms)}
                   if self.kernels is not None else {})}


@dataclass
class KernelRow:
    """One kernel of a network: each predictor's figure inside the network and the
    measurement of its configuration(s) alone, with the profile's harness, less the
    call a network pays once (as the predictors take it off: `kernel_breakdown`).
    measured_ms is None for a kernel charged by the roofline (no op-kind program)."""

    layer: str
    layer_type: str
    configs: list | None
    predicted_ms: dict[str, float]
    measured_ms: float | None

    @property
    def label(self) -> str:
        if not self.configs:
            return "(roofline)"
        return " + ".join(f"{op} {_short(cfg)}" for op, cfg in self.configs)

    def error_ms(self, predictor: str) -> float | None:
        if self.measured_ms is None:
            return None
        return self.predicted_ms[predictor] - self.measured_ms

    def to_dict(self) -> dict:
        return {"layer": self.layer, "type": self.layer_type,
                "configs": [[op, cfg] for op, cfg in self.configs] if self.configs else None,
                "predicted_ms": dict(self.predicted_ms), "measured_ms": self.measured_ms}


def _short(cfg: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in cfg.items())


@dataclass
class KernelBreakdown:
    """A network's kernels predicted and measured one by one (`kernel_breakdown`).
    per_invocation_ms: the overhead the network pays once, in neither side's kernel
    sums, so kernels_measured_ms + per_invocation_ms compares with the measured network."""

    rows: list[KernelRow]
    per_invocation_ms: float

    def predicted_ms(self, predictor: str) -> float:
        """Sum of the rows: the network's prediction less the per-invocation overhead."""
        return sum(r.predicted_ms[predictor] for r in self.rows)

    @property
    def measured_ms(self) -> float:
        """Sum of the kernels measured alone (roofline-charged ones have no figure)."""
        return sum(r.measured_ms for r in self.rows if r.measured_ms is not None)

    def per_layer(self) -> list[dict]:
        """The rows summed per Keras layer, in network order."""
        out: dict[str, dict] = {}
        for r in self.rows:
            row = out.setdefault(r.layer, {"layer": r.layer, "type": r.layer_type, "kernels": 0,
                                           "predicted_ms": dict.fromkeys(r.predicted_ms, 0.0),
                                           "measured_ms": None})
            row["kernels"] += 1
            for p, v in r.predicted_ms.items():
                row["predicted_ms"][p] += v
            if r.measured_ms is not None:
                row["measured_ms"] = (row["measured_ms"] or 0.0) + r.measured_ms
        return list(out.values())

    def worst(self, predictor: str, top: int = 10) -> list[KernelRow]:
        """Measured rows, largest absolute error first."""
        rows = [r for r in self.rows if r.measured_ms is not None]
        return sorted(rows, key=lambda r: -abs(r.error_ms(predictor)))[:top]

    def to_dict(self, network_measured_ms: float | None = None) -> dict:
        predictors = list(self.rows[0].predicted_ms) if self.rows else []
        out = {"per_invocation_ms": self.per_invocation_ms,
               "kernels_predicted_ms": {p: self.predicted_ms(p) for p in predictors},
               "kernels_measured_ms": self.measured_ms,
               "kernels": [r.to_dict() for r in self.rows], "layers": self.per_layer()}
        if network_measured_ms:
            out["kernels_vs_network_pct"] = 100.0 * (
                (self.measured_ms + self.per_invocation_ms) / network_measured_ms - 1.0)
        return out


def kernel_breakdown(items: Sequence, estimators: Mapping[str, Any],
                     measured: Mapping[str, Any], per_invocation_ms: float,
                     call_ms: Callable[[str], float] | None = None) -> KernelBreakdown:
    """Per-kernel rows of a network's kernels (`work_items`): each predictor's figure as
    `predict_items` charges it, and the kernel's configurations' samples in `measured`
    ({sample key: Sample}, timed alone) less one call each: `call_ms(op kind)` (the
    lookup table's `call_ms`, a kind's own call cost) or else the per-invocation
    overhead."""
    from latency_lab.profile import sample_key

    w_net = working_set_bytes(items)
    n_kernels = sum(1 for item in items if item.configs)
    rows = []
    for item in items:
        preds = {}
        for p, est in estimators.items():
            if item.configs is None:
                preds[p] = est.predict_work(item.flops, item.bytes, item.op_class)
            else:
                preds[p] = est.kernel_ms(item.configs, w_net, n_kernels)
        meas = None
        if item.configs:
            meas = sum(max(measured[sample_key(op, cfg)].min_ms
                           - (call_ms(op) if call_ms else per_invocation_ms), 0.0)
                       for op, cfg in item.configs)
        configs = [(op, dict(cfg)) for op, cfg in item.configs] if item.configs else None
        rows.append(KernelRow(item.layer, item.layer_type, configs, preds, meas))
    return KernelBreakdown(rows, per_invocation_ms)


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation, or None (JSON null) when it is undefined: fewer than
    three models, or all of one side equal."""
    from scipy.stats import spearmanr

    if len(a) < 3:
        return None
    rho = float(spearmanr(a, b).statistic)
    return None if np.isnan(rho) else rho


def summarize(results: Sequence[ModelResult], predictor: str) -> dict:
    pred = np.array([r.predicted_ms[predictor] for r in results])
    meas = np.array([r.measured_ms for r in results])
    rel = (pred - meas) / meas
    return {
        "models": len(results),
        "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
        "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
        "rmspe_pct": float(100 * np.sqrt(np.mean(rel ** 2))),
        "mean_error_pct": float(100 * np.mean(rel)),
        "max_abs_error_pct": float(100 * np.max(np.abs(rel))),
        "spearman": spearman(pred, meas),
    }


def family_breakdown(results: Sequence[ModelResult], families: Mapping[str, str],
                     predictors: Sequence[str]) -> dict[str, dict]:
    """Per family ({model name: family}): `alone`, each predictor's summary over the
    family's own models, and `without`, over every other family's models (leave one
    family out: how much the set's figure owes to that family; None when no other
    family is left). {family: {"models": n, "alone": {p: ...}, "without": {p: ...}}}."""
    out: dict[str, dict] = {}
    for fam in dict.fromkeys(families[r.name] for r in results):
        mine = [r for r in results if families[r.name] == fam]
        rest = [r for r in results if families[r.name] != fam]
        out[fam] = {"models": len(mine),
                    "alone": {p: summarize(mine, p) for p in predictors},
                    "without": {p: summarize(rest, p) if rest else None for p in predictors}}
    return out


REFERENCE_PREFIX = "reference: "  # names the reference networks in measure_in_passes


def reference_networks(prof: DeviceProfile, limit: int = 3) -> list[tuple[str, Any]]:
    """(label, model) of up to `limit` of the profile's calibration networks (the quick
    set, which every measured profile holds), built to be measured again beside the
    models being validated; [] for a profile without calibration networks."""
    from latency_lab.bench import calibration

    stored = {m["name"] for m in (prof.calibration or {}).get("models") or []}
    labels = [label for label in calibration.calibration_labels(quick=True) if label in stored]
    return list(calibration.calibration_models(quick=True, labels=labels[:limit]))


def host_drift(prof: DeviceProfile, measured_ms: dict[str, float]) -> dict:
    """How much slower ({label: measured_ms} now) the reference networks run than the
    profile recorded: {"reference": [{name, profile_ms, measured_ms, ratio}],
    "median_ratio"}. A shared host's speed wanders by 10-25% over tens of minutes
    (other tenants' memory traffic), and whole networks feel it more than the short
    op calls of a profile; a ratio well above 1 says the errors beside it hold that
    drift, not only the predictor's. It compares networks with networks: when the
    profile's own calibration networks met a busy spell too, it reads about 1 while
    the networks still run slower than the sum of the profile's quiet op calls (seen:
    -2% drift beside a -8% mean error, in an hour when every network ran 10-40%
    over its figure of a quiet hour)."""
    stored = {m["name"]: network_latency_ms(m) for m in (prof.calibration or {}).get("models") or []}
    rows = []
    for label, now in measured_ms.items():
        if label not in stored:
            raise ProfileError(
                f"reference network {label!r} is not among the calibration networks of "
                f"profile {prof.device_name!r} ({', '.join(sorted(stored)) or 'none'}); "
                "pass reference networks the profile measured, or reference=None")
        rows.append({"name": label, "profile_ms": stored[label], "measured_ms": now,
                     "ratio": now / stored[label]})
    ratios = [r["ratio"] for r in rows]
    return {"reference": rows, "median_ratio": float(np.median(ratios)) if ratios else None}


@dataclass
class ValidationReport:
    profile: str
    runtime: dict
    device: dict
    results: list[ModelResult]
    predictors: tuple[str, ...]
    drift: dict | None = None  # host_drift() of the run; None when not measured
    families: dict[str, str] = field(default_factory=dict)  # model name -> family; {}: ungrouped

    def summary(self) -> dict[str, dict]:
        return {p: summarize(self.results, p) for p in self.predictors}

    def subset(self, names: Iterable[str]) -> "ValidationReport":
        """The same run restricted to the models `names` (a development or a held-out
        set measured in the same passes as the other), in this report's order."""
        keep = set(names)
        missing = keep - {r.name for r in self.results}
        if missing:
            raise LatencyLabError(f"subset names models the report does not hold: "
                                  f"{', '.join(sorted(missing))}")
        return replace(self, results=[r for r in self.results if r.name in keep],
                       families={n: f for n, f in self.families.items() if n in keep})

    def family_breakdown(self) -> dict[str, dict]:
        """`family_breakdown` of the results; {} without families."""
        if not self.families:
            return {}
        unlabelled = [r.name for r in self.results if r.name not in self.families]
        if unlabelled:
            raise LatencyLabError(f"models without a family: {', '.join(unlabelled)}; "
                                  "families must name every model or none")
        return family_breakdown(self.results, self.families, self.predictors)

    def measurement_noise(self) -> dict:
        """The noise floor of the measured side: how far the passes over the same model
        spread (median and 90th percentile over models). No predictor can be judged
        more finely than this."""
        spreads = [r.pass_spread_pct for r in self.results if r.pass_spread_pct is not None]
        return {"passes": max((len(r.pass_ms) for r in self.results), default=0),
                "median_pass_spread_pct": float(np.median(spreads)) if spreads else None,
                "p90_pass_spread_pct": float(np.percentile(spreads, 90)) if spreads else None}

    def to_dict(self) -> dict:
        return {"profile": self.profile, "runtime": self.runtime, "device": self.device,
                "summary": self.summary(), "measurement": self.measurement_noise(),
                "host_drift": self.drift, "models": [r.to_dict() for r in self.results],
                "families": dict(self.families), "family_breakdown": self.family_breakdown()}


def check_runtime(profile: DeviceProfile) -> str:
    name = profile.runtime_name
    if name not in ("litert", "keras"):
        raise ProfileError(
            f"profile {profile.device_name!r} has runtime {name!r} (a datasheet profile); "
            "validation measures on this machine, so it needs a measured profile of this "
            "device: run `latency-lab profile --out my.json` first"
        )
    return name


def validate(models: Iterable[tuple[str, Any]], profile: Any,
             predictors: Sequence[str] = DEFAULT_PREDICTORS,
             timing: TimingConfig | None = None,
             on_model: Callable[[ModelResult], None] | None = None,
             measurements: dict[str, tuple[float, float]] | None = None,
             passes: int = 3, seed: int = 0,
             on_measurement: Callable[[str, int, Any], None] | None = None,
             reference: Sequence[tuple[str, Any]] | str | None = "calibration",
             allow_unknown: bool = False, per_layer: bool = False,
             on_kernels: Callable[[int], None] | None = None) -> ValidationReport:
    """Predict every model, then measure them all in `passes` passes (a new order each
    pass; see `runtimes.measure_in_passes`), so that each measured figure spans the
    whole run as the profile's samples do. `measurements` ({name: (measured_ms, iqr_ms)})
    replaces measuring with earlier figures of the same models on this machine, for
    iterating on predictors; a name missing from it is measured. `on_measurement(name,
    pass_index, measurement)` follows the measuring, `on_model(result)` the results.

    `reference`: networks measured in the same passes to report the host's drift since
    profiling (`host_drift`): "calibration" (default: `reference_networks`), (label,
    model) pairs naming calibration entries of the profile, or None. They are not
    among the results. A layer with no latency model is an error unless
    `allow_unknown` (then it is left out of the prediction and listed in the model's
    `skipped`).

    `per_layer`: also time every distinct kernel configuration of the models alone,
    with the profile's own harness (`profiler.measure_kernels`: its timing and
    passes), and give each result a `KernelBreakdown` (per kernel and per layer,
    predicted vs measured). `on_kernels(n)` is called before those n are timed."""
    from latency_lab.runtimes import for_profile as runtime_for_profile, measure_in_passes

    prof = load_profile(profile)
    runtime_name = check_runtime(prof)
    info = device_info.collect(prof.device_kind if prof.device_kind != "tpu" else "cpu")
    prof.check_device(info["fingerprint"], info["name"])
    for p in predictors:
        if p not in PREDICTORS:
            raise ProfileError(f"unknown predictor {p!r}; choose from {', '.join(PREDICTORS)}")
    estimators = {p: make_predictor(p, prof) for p in predictors}
    runtime = runtime_for_profile(prof)
    if timing is None:
        timing = TimingConfig.latency(repeats=40 if passes > 1 else 100)
    models = list(models)
    if not models:
        raise LatencyLabError("validate needs at least one model")
    predicted = {}
    for name, model in models:
        items = profile_work_items(model, prof, allow_unknown=allow_unknown)
        preds, layers = {}, {}
        for p, est in estimators.items():
            preds[p], layers[p] = predict_items(items, est)
        predicted[name] = (preds, layers, list(items.skipped), items)
    measurements = measurements or {}
    to_measure = [(n, m) for n, m in models if n not in measurements]
    if reference == "calibration":
        reference = reference_networks(prof) if to_measure else []
    elif isinstance(reference, str):
        raise LatencyLabError(f"reference must be 'calibration', (label, model) pairs or None, "
                              f"got {reference!r}")
    refs = [(REFERENCE_PREFIX + label, model) for label, model in (reference or [])]
    timed = measure_in_passes(runtime, to_measure + refs, timing, passes=passes, seed=seed,
                              on_measurement=on_measurement) if to_measure or refs else {}
    drift = None
    if refs:
        drift = host_drift(prof, {name[len(REFERENCE_PREFIX):]: pool_passes(
            [m.raw_ms for m in timed[name]], timing.spread_tolerance).min for name, _ in refs})
    kernel_samples: dict = {}
    if per_layer:
        from latency_lab.convert.pool import ConversionPool
        from latency_lab.profiler import measure_kernels, profile_timing

        kernels = [(op, cfg) for name, _ in models for item in predicted[name][3]
                   for op, cfg in item.configs or ()]
        kernel_timing, kernel_passes = profile_timing(prof)
        if on_kernels:
            on_kernels(len({sample_key(op, cfg) for op, cfg in kernels}))
        with ConversionPool() as pool:
            kernel_samples, _ = measure_kernels(runtime, kernels, kernel_timing,
                                                kernel_passes, seed=seed, pool=pool)
    results = []
    for name, _ in models:
        preds, layers, skipped, items = predicted[name]
        if name in measurements:
            measured_ms, iqr_ms = measurements[name]
            r = ModelResult(name, measured_ms, iqr_ms, preds, layers, skipped=skipped)
        else:
            pooled = pool_passes([m.raw_ms for m in timed[name]], timing.spread_tolerance)
            r = ModelResult(name, pooled.min, pooled.iqr, preds, layers,
                            pass_ms=[m.min_ms for m in timed[name]], median_ms=pooled.median,
                            skipped=skipped)
        if per_layer:
            lookup = estimators.get("lookup")
            r.kernels = kernel_breakdown(items, estimators, kernel_samples,
                                         prof.per_invocation_overhead_ms,
                                         getattr(lookup, "call_ms", None))
        results.append(r)
        if on_model:
            on_model(r)
    return ValidationReport(str(profile if isinstance(profile, str) else prof.device_name),
                            runtime.info(), {"name": info["name"], "fingerprint": info["fingerprint"]},
                            results, tuple(predictors), drift)


def write_report(report: ValidationReport, out_dir: str | Path, worst: int = 3) -> list[Path]:
    """validation.json (all figures), scatter.png, worst_layers.md (per-layer
    predictions of the worst models, largest first), and per_kernel.md when the
    report holds per-kernel measurements (validate per_layer=True)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LatencyLabError(f"cannot create report directory {str(out)!r}: {exc}") from exc
    paths = [out / "validation.json", out / "scatter.png", out / "worst_layers.md"]
    write_json_atomic(paths[0], report.to_dict(), "the validation report")
    from latency_lab.plots import save_figure

    save_figure(scatter_figure(report), paths[1])
    paths[2].write_text(worst_layers_markdown(report, worst))
    if any(r.kernels is not None for r in report.results):
        paths.append(out / "per_kernel.md")
        paths[3].write_text(per_kernel_markdown(report))
    return paths


def scatter_figure(report: ValidationReport):
    """Predicted against measured latency per predictor. A `matplotlib.figure.Figure`
    outside pyplot: nothing to close, no global backend switched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 6))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    meas = [r.measured_ms for r in report.results]
    lo, hi = min(meas) * 0.7, max(meas) * 1.4
    xs = np.geomspace(lo, hi, 50)
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="0.85", label="±10%")
    ax.plot(xs, xs, color="0.3", lw=1)
    summary = report.summary()
    markers = {"lookup": "o", "roofline": "s", "flops": "^"}
    for p in report.predictors:
        s = summary[p]
        ax.scatter(meas, [r.predicted_ms[p] for r in report.results], marker=markers.get(p, "x"),
                   s=28, alpha=0.8,
                   label=f"{p}: {100 * s['within_10pct']:.0f}% in ±10%, RMSPE {s['rmspe_pct']:.1f}%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"{report.device['name']} / {report.runtime['name']} "
                 f"{report.runtime.get('threads')} thread(s): {len(report.results)} models")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def worst_layers_markdown(report: ValidationReport, worst: int = 3, predictor: str | None = None,
                          top: int = 12) -> str:
    predictor = predictor or report.predictors[0]
    ranked = sorted(report.results, key=lambda r: -abs(r.error_pct(predictor)))[:worst]
    lines = [f"# Worst models for the {predictor} predictor", ""]
    for r in ranked:
        layers = sorted(r.layers.get(predictor, []), key=lambda l: -l.latency_ms)
        total = sum(l.latency_ms for l in layers) or 1.0
        lines += [f"## {r.name}: predicted {r.predicted_ms[predictor]:.3f} ms, measured "
                  f"{r.measured_ms:.3f} ms ({r.error_pct(predictor):+.1f}%)", "",
                  "| layer | type | predicted ms | share | bound |", "|---|---|---:|---:|---|"]
        for l in layers[:top]:
            lines.append(f"| {l.name} | {l.type} | {l.latency_ms:.4f} | "
                         f"{100 * l.latency_ms / total:.1f}% | {l.bound} |")
        lines.append("")
    return "\n".join(lines)



def per_kernel_markdown(report: ValidationReport, predictor: str | None = None,
                        top: int = 10) -> str:
    """Per network: predicted vs measured per Keras layer (its kernels timed alone),
    the worst kernels (largest absolute error first) and the kernels' sum against
    the measured network."""
    predictor = predictor or report.predictors[0]

    def ms(v):
        return "" if v is None else f"{v:.4f}"

    lines = [f"# Per-kernel validation ({predictor} predictor)", "",
             "Kernels timed alone with the profile's harness, less the per-invocation "
             "overhead a network pays once.", ""]
    for r in report.results:
        k = r.kernels
        if k is None:
            continue
        total = k.measured_ms + k.per_invocation_ms
        lines += [f"## {r.name}", "",
                  f"network: predicted {r.predicted_ms[predictor]:.4f} ms, measured "
                  f"{r.measured_ms:.4f} ms; kernels: predicted {k.predicted_ms(predictor):.4f} "
                  f"ms, measured alone {k.measured_ms:.4f} ms (+ {k.per_invocation_ms:.4f} ms "
                  f"invocation = {total:.4f} ms, {100 * (total / r.measured_ms - 1):+.1f}% "
                  "vs the network)", "",
                  "| layer | type | kernels | predicted ms | measured ms |",
                  "|---|---|---:|---:|---:|"]
        for row in k.per_layer():
            lines.append(f"| {row['layer']} | {row['type']} | {row['kernels']} | "
                         f"{row['predicted_ms'][predictor]:.4f} | {ms(row['measured_ms'])} |")
        lines += ["", "| worst kernels | layer | predicted ms | measured ms | error ms |",
                  "|---|---|---:|---:|---:|"]
        for row in k.worst(predictor, top):
            lines.append(f"| {row.label} | {row.layer} | {row.predicted_ms[predictor]:.4f} | "
                         f"{row.measured_ms:.4f} | {row.error_ms(predictor):+.4f} |")
        lines.append("")
    return "\n".join(lines)
