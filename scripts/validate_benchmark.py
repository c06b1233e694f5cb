"""Benchmark: how well does a fresh profile predict real networks on this machine?

Builds a validation set of keras.applications families at several widths and input
sizes plus randomly channel-slimmed variants (what a channel regularizer produces),
profiles the machine from nothing (unless --profile is given), then measures and
predicts every model with each predictor and prints the summary the field reports.

    .venv/bin/python scripts/validate_benchmark.py --report out/validation
    .venv/bin/python scripts/validate_benchmark.py --profile p.json --quick-set

The calibration networks inside the profile use other input sizes than this set, so
no validation model is ever seen by the predictor.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
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


def validation_set(quick: bool, seed: int):
    """Yield (label, model); validate keeps them all, to measure them in passes."""
    from latency_lab.variants import application, random_slim

    plain = [PLAIN[i] for i in QUICK_SET] if quick else PLAIN
    for name, kwargs in plain:
        yield label(name, kwargs), application(name, **kwargs)
    slim_idx = [i for i in SLIMMED if not quick or i in QUICK_SET]
    for j, i in enumerate(slim_idx):
        name, kwargs = PLAIN[i]
        s = seed * 1000 + j
        yield f"{label(name, kwargs)}-slim{s}", random_slim(application(name, **kwargs), s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", help="use this profile instead of profiling now")
    ap.add_argument("--profile-out", default="out/validation_profile.json")
    ap.add_argument("--quick-profile", action="store_true")
    ap.add_argument("--quick-set", action="store_true", help="a 7+4 model subset")
    ap.add_argument("--report", default="out/validation")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--passes", type=int, default=6,
                    help="measuring passes per model (more passes over more time meet the host's quiet "
                         "spells: one 3-pass run read the networks a median 4%% (up to 12%%) slower "
                         "than another)")
    ap.add_argument("--reuse-measurements", metavar="VALIDATION_JSON",
                    help="take measured latencies from an earlier run's validation.json "
                         "(same machine) instead of measuring; for iterating on predictors")
    args = ap.parse_args(argv)

    from latency_lab.cli import render_validation
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

        old = json.loads(Path(args.reuse_measurements).read_text())
        measurements = {m["name"]: (m["measured_ms"], m["iqr_ms"]) for m in old["models"]}
        print(f"REUSING measured latencies from {args.reuse_measurements}", file=sys.stderr)
    def measured(name, pass_index, m):
        print(f"  pass {pass_index}: {name:40s} {m.min_ms:8.3f} ms (fastest repeat)", file=sys.stderr, flush=True)

    report = validate(validation_set(args.quick_set, args.seed), profile_path, on_model=progress,
                      measurements=measurements, passes=args.passes, on_measurement=measured)
    render_validation(report)
    for p in write_report(report, args.report):
        print(f"wrote {p}", file=sys.stderr)
    print(f"validated {len(report.results)} models in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
