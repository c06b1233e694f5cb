"""Benchmark: how well does a fresh profile predict real networks on this machine?

Two sets, measured in the same passes and reported apart (DESIGN.md, Validation):

* development: keras.applications families at several widths and input sizes plus
  randomly channel-slimmed variants (what a channel regularizer produces). The
  profile's plans harvest their layer configurations from these same families, and
  predictors were tuned while looking at this set: its figure is a development figure.
* held-out: `latency_lab.zoo`, families no plan, feature or fit ever sees (ShuffleNet
  V2, SqueezeNet, VGG, AlexNet, GoogLeNet, MnasNet, ProxylessNAS, ResNet-18/34,
  NAS-Bench-201) at randomized widths, kernels and input sizes, fixed seeds.

Each set gets the summary (within ±5%/±10%, RMSPE, Spearman), a per-family table and
a leave-one-family-out table. Profiles the machine from nothing unless --profile.

    .venv/bin/python scripts/validate_benchmark.py --report out/validation
    .venv/bin/python scripts/validate_benchmark.py --profile p.json --quick-set
    .venv/bin/python scripts/validate_benchmark.py --profile p.json --set heldout \
        --heldout-per-family 1 --heldout-families squeezenet,nasbench201

The calibration networks inside the profile use other input sizes than the
development set, so no validation model is ever seen by the predictor.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# (family, kwargs) of the plain networks; slimmed variants of the ones marked below.
PLAIN = [
    ("MobileNet", dict(alpha=0.25, input_shape=(128, 128, 3))),
    ("MobileNet", dict(alpha=0.5, input_shape=(160, 160, 3))),
    ("MobileNet", dict(alpha=0.75, input_shape=(128, 128, 3))),
    ("MobileNet", dict(alpha=1.0, input_shape=(96, 96, 3))),
    ("MobileNetV2", dict(alpha=0.35, input_shape=(96, 96, 3))),
    ("MobileNetV2", dict(alpha=0.5, input_shape=(128, 128, 3))),
    ("MobileNetV2", dict(alpha=1.0, input_shape=(96, 96, 3))),
    ("MobileNetV2", dict(alpha=1.0, input_shape=(160, 160, 3))),
    ("MobileNetV2", dict(alpha=1.4, input_shape=(128, 128, 3))),
    ("MobileNetV3Small", dict(input_shape=(96, 96, 3))),
    ("MobileNetV3Small", dict(alpha=0.75, input_shape=(160, 160, 3))),
    ("MobileNetV3Large", dict(input_shape=(96, 96, 3))),
    ("MobileNetV3Large", dict(alpha=0.75, input_shape=(128, 128, 3))),
    ("ResNet50", dict(input_shape=(64, 64, 3))),
    ("ResNet50", dict(input_shape=(96, 96, 3))),
    ("ResNet50V2", dict(input_shape=(64, 64, 3))),
    ("EfficientNetB0", dict(input_shape=(96, 96, 3))),
    ("EfficientNetB0", dict(input_shape=(128, 128, 3))),
    ("EfficientNetB1", dict(input_shape=(96, 96, 3))),
    ("EfficientNetV2B0", dict(input_shape=(96, 96, 3))),
    ("DenseNet121", dict(input_shape=(64, 64, 3))),
    ("DenseNet121", dict(input_shape=(96, 96, 3))),
]
SLIMMED = [0, 1, 5, 6, 7, 9, 11, 13, 14, 16, 17, 20]  # indices into PLAIN
QUICK_SET = [0, 4, 6, 9, 13, 16, 20]


def label(name: str, kwargs: dict) -> str:
    parts = [f"a{kwargs['alpha']}" if "alpha" in kwargs else ""]
    parts.append(str(kwargs["input_shape"][0]))
    return f"{name}-" + "-".join(p for p in parts if p)


def development_set(quick: bool, seed: int):
    """(label, family, factory) of the development set: keras.applications networks,
    then slimmed copies of some (family: the application's name)."""
    from latency_lab.variants import application

    plain = [PLAIN[i] for i in QUICK_SET] if quick else PLAIN
    out = [(label(name, kwargs), name, partial(application, name, **kwargs))
           for name, kwargs in plain]
    slim_idx = [i for i in SLIMMED if not quick or i in QUICK_SET]
    for j, i in enumerate(slim_idx):
        name, kwargs = PLAIN[i]
        s = seed * 1000 + j
        out.append((f"{label(name, kwargs)}-slim{s}", name, partial(slimmed, name, kwargs, s)))
    return out


def slimmed(name: str, kwargs: dict, seed: int):
    from latency_lab.variants import application, random_slim

    return random_slim(application(name, **kwargs), seed)


def chosen_sets(args) -> dict[str, list]:
    """{set name: [(label, family, factory)]} for --set."""
    sets = {}
    if args.set in ("development", "both"):
        sets["development"] = development_set(args.quick_set, args.seed)
    if args.set in ("heldout", "both"):
        from latency_lab.zoo import heldout_set

        families = args.heldout_families.split(",") if args.heldout_families else None
        sets["heldout"] = heldout_set(args.heldout_per_family, args.heldout_seed, families)
    return sets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", help="use this profile instead of profiling now")
    ap.add_argument("--profile-out", default="out/validation_profile.json")
    ap.add_argument("--quick-profile", action="store_true")
    ap.add_argument("--set", choices=("development", "heldout", "both"), default="both",
                    help="which validation set(s) to measure (default both, in the same passes)")
    ap.add_argument("--quick-set", action="store_true", help="a 7+4 model development subset")
    ap.add_argument("--heldout-per-family", type=int, default=None,
                    help="held-out networks per family (default latency_lab.zoo.DEFAULT_PER_FAMILY)")
    ap.add_argument("--heldout-families", help="comma-separated zoo families (default all)")
    ap.add_argument("--heldout-seed", type=int, default=0,
                    help="held-out draw (seeds SEED*1000+i); keep 0 for the reported figure")
    ap.add_argument("--report", default="out/validation")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--passes", type=int, default=6,
                    help="measuring passes per model (more passes over more time meet the host's quiet "
                         "spells: one 3-pass run read the networks a median 4%% (up to 12%%) slower "
                         "than another)")
    ap.add_argument("--reuse-measurements", metavar="VALIDATION_JSON", nargs="+",
                    help="take measured latencies from earlier runs' validation.json files "
                         "(same machine; one per set) instead of measuring; for iterating on "
                         "predictors")
    args = ap.parse_args(argv)
    if args.heldout_per_family is None:
        from latency_lab.zoo import DEFAULT_PER_FAMILY

        args.heldout_per_family = DEFAULT_PER_FAMILY

    from latency_lab.cli import render_family_breakdown, render_validation
    from latency_lab.validate import validate, write_report

    profile_path = args.profile
    if profile_path is None:
        from latency_lab.profiler import ProfileRun, run_profile

        Path(args.profile_out).parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        run_profile(ProfileRun(out=Path(args.profile_out), quick=args.quick_profile,
                               log=lambda m: print(m, file=sys.stderr)))
        print(f"profiled in {time.time() - t0:.0f} s -> {args.profile_out}", file=sys.stderr)
        profile_path = args.profile_out

    t0 = time.time()
    count = [0]

    def progress(r):
        count[0] += 1
        errs = "  ".join(f"{p} {r.error_pct(p):+6.1f}%" for p in r.predicted_ms)
        print(f"[{count[0]:2d}] {r.name:40s} {r.measured_ms:8.3f} ms  {errs}", file=sys.stderr)

    measurements = None
    if args.reuse_measurements:
        import json

        measurements = {}
        for path in args.reuse_measurements:
            old = json.loads(Path(path).read_text())
            measurements.update({m["name"]: (m["measured_ms"], m["iqr_ms"]) for m in old["models"]})
        print(f"REUSING measured latencies from {', '.join(args.reuse_measurements)}", file=sys.stderr)
    def measured(name, pass_index, m):
        print(f"  pass {pass_index}: {name:40s} {m.min_ms:8.3f} ms (fastest repeat)", file=sys.stderr, flush=True)

    from latency_lab.profile import load_profile
    from latency_lab.runtimes import for_profile

    for_profile(load_profile(profile_path))  # pins TensorFlow's threads before models run
    sets = chosen_sets(args)
    models = [(name, make()) for members in sets.values() for name, _, make in members]
    report = validate(models, profile_path, on_model=progress, measurements=measurements,
                      passes=args.passes, on_measurement=measured)
    del models
    report.families = {name: family for members in sets.values() for name, family, _ in members}
    figures = {}
    for set_name, members in sets.items():
        part = report.subset(name for name, _, _ in members)
        print(f"\n===== {set_name} set: {len(part.results)} models =====", file=sys.stderr)
        render_validation(part)
        render_family_breakdown(part, f"{set_name} set")
        for p in write_report(part, Path(args.report) / set_name):
            print(f"wrote {p}", file=sys.stderr)
        figures[set_name] = part.summary()
    for set_name, summary in figures.items():
        print(f"{set_name:11s} " + "   ".join(
            f"{p}: {100 * f['within_5pct']:.0f}% in ±5%, {100 * f['within_10pct']:.0f}% in ±10%, "
            f"RMSPE {f['rmspe_pct']:.1f}%, Spearman "
            + ("n/a" if f["spearman"] is None else f"{f['spearman']:.3f}")
            for p, f in summary.items()))
    print(f"validated {len(report.results)} models in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
