"""Measuring named validation sets in the same passes and reporting each apart: the
shared body of `scripts/validate_benchmark.py` and `scripts/transformer_benchmark.py`
(DESIGN.md, Validation: a development and a held-out set, never pooled).

A set is [(label, family, factory)] (`latency_lab.zoo.heldout_set`,
`latency_lab.zoo.transformers.transformer_set`, ...); factories are called once the
profile has pinned the runtime's threads.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

__all__ = ["add_profile_arguments", "ensure_profile", "load_measurements", "measure_sets", "print_figures",
           "layer_type_shares"]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_profile_arguments(ap: Any, profile_out: str) -> None:
    """--profile, --profile-out and --quick-profile of a benchmark script (argparse)."""
    ap.add_argument("--profile", help="use this profile instead of profiling now")
    ap.add_argument("--profile-out", default=profile_out)
    ap.add_argument("--quick-profile", action="store_true")


def ensure_profile(profile: str | None, out: str, quick: bool) -> str:
    """`profile` when given, else a fresh full (or quick) profile of this machine
    written to `out`."""
    if profile is not None:
        return profile
    from latency_lab.profiler import ProfileRun, run_profile

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    run_profile(ProfileRun(out=Path(out), quick=quick, log=_log))
    _log(f"profiled in {time.time() - t0:.0f} s -> {out}")
    return out


def load_measurements(paths: Iterable[str]) -> dict[str, tuple[float, float]]:
    """{model: (measured_ms, iqr_ms)} from earlier runs' validation.json files (same
    machine), for iterating on predictors without measuring again."""
    measurements: dict[str, tuple[float, float]] = {}
    paths = list(paths)
    for path in paths:
        old = json.loads(Path(path).read_text())
        measurements.update({m["name"]: (m["measured_ms"], m["iqr_ms"]) for m in old["models"]})
    _log(f"REUSING measured latencies from {', '.join(paths)}")
    return measurements


def layer_type_shares(report: Any, types: Sequence[str], predictor: str = "lookup") -> list[dict]:
    """Per model: the `predictor`'s milliseconds in layers of `types` (e.g. the
    MultiHeadAttention layers) and their share of its whole prediction."""
    rows = []
    for r in report.results:
        layers = r.layers.get(predictor) or []
        part = sum(layer.latency_ms for layer in layers if layer.type in types)
        total = r.predicted_ms.get(predictor)
        rows.append({"name": r.name, "ms": part,
                     "share": part / total if total else None})
    return rows


def measure_sets(sets: dict[str, list], profile_path: str, *, passes: int, report_dir: str,
                 measurements: dict | None = None, per_layer: bool = False,
                 after_set: Callable[[str, Any], None] | None = None) -> dict[str, dict]:
    """Measure every set's networks in the same passes (`latency_lab.validate.validate`),
    then per set: the table and summary, the per-family and leave-one-family-out
    table, `after_set(name, report)` and the report files under report_dir/name.
    Returns {set: {predictor: summary}}."""
    from latency_lab.cli import render_family_breakdown, render_per_kernel, render_validation
    from latency_lab.profile import load_profile
    from latency_lab.runtimes import for_profile
    from latency_lab.validate import validate, write_report

    count = [0]

    def progress(r):
        count[0] += 1
        errs = "  ".join(f"{p} {r.error_pct(p):+6.1f}%" for p in r.predicted_ms)
        _log(f"[{count[0]:2d}] {r.name:40s} {r.measured_ms:8.3f} ms  {errs}")

    def measured(name, pass_index, m):
        _log(f"  pass {pass_index}: {name:40s} {m.min_ms:8.3f} ms (fastest repeat)")

    for_profile(load_profile(profile_path))  # pins TensorFlow's threads before models run
    models = [(name, make()) for members in sets.values() for name, _, make in members]
    report = validate(models, profile_path, on_model=progress, measurements=measurements,
                      passes=passes, on_measurement=measured, per_layer=per_layer)
    del models
    report.families = {name: family for members in sets.values() for name, family, _ in members}
    figures = {}
    for set_name, members in sets.items():
        part = report.subset(name for name, _, _ in members)
        _log(f"\n===== {set_name} set: {len(part.results)} models =====")
        render_validation(part)
        render_family_breakdown(part, f"{set_name} set")
        if per_layer:
            render_per_kernel(part)
        if after_set is not None:
            after_set(set_name, part)
        for p in write_report(part, Path(report_dir) / set_name):
            _log(f"wrote {p}")
        figures[set_name] = part.summary()
    return figures


def print_figures(figures: dict[str, dict]) -> None:
    """One line per set: each predictor's ±5%/±10% shares, RMSPE and Spearman."""
    for set_name, summary in figures.items():
        print(f"{set_name:11s} " + "   ".join(
            f"{p}: {100 * f['within_5pct']:.0f}% in ±5%, {100 * f['within_10pct']:.0f}% in ±10%, "
            f"RMSPE {f['rmspe_pct']:.1f}%, Spearman "
            + ("n/a" if f["spearman"] is None else f"{f['spearman']:.3f}")
            for p, f in summary.items()))
