"""Benchmark: how well does a fresh profile predict real networks on this machine?

Two sets, measured in the same passes and reported apart (DESIGN.md, Validation):

* development: keras.applications families at several widths and input sizes plus
  randomly channel-slimmed variants (what a channel regularizer produces). The
  profile's plans harvest their layer configurations from these same families, and
  predictors were tuned while looking at this set: its figure is a development figure.
* held-out: `latency_lab.zoo`, families no plan, feature or fit ever sees (ShuffleNet
  V2, SqueezeNet, VGG, AlexNet, GoogLeNet, MnasNet, ProxylessNAS, ResNet-18/34,
  NAS-Bench-201) at randomized widths, kernels and input sizes, drawn from
  --heldout-seed, which has no default. EACH HELD-OUT RUN MUST USE A SEED NEVER USED
  BEFORE, and add it to the list below with the date and the commit it judged. A seed
  once looked at is development.

  Held-out seeds used so far: 0-6 (earlier rounds, each looked at afterwards; 6 on
  2026-12-01 with profile fresh8 read 60% within ±5%, 85% within ±10%, and its
  networks were then timed kernel by kernel: that found the conv2d channel steps of
  `Conv2D.channel_step`); 7 (2026-12-01, commit 179f877, profile fresh9 of 86d0ce7's
  plan: lookup 70% within ±5%, 82% within ±10%, RMSPE 6.0%); 8 (2026-12-01 09:30,
  commit da1dd76, profile fresh11 of a8256c8's plan, shipped as
  epyc_avx512_vm_2c_litert: lookup 92% within ±5%, 100% within ±10%, RMSPE 3.3%,
  Spearman 0.998); 9 (2026-12-01 11:58, commit 1314c93, profile fresh12 of the
  same plan: 78% / 95%, RMSPE 4.2%, host drift -5.3%; looked at); 10 (2026-12-01
  12:36, commit a157166, profile fresh12: 75% / 98%, RMSPE 4.8%, Spearman 0.998,
  drift -6.0%); 11 (2026-12-01 15:22, commit edbc048, profile fresh13 of the same
  plan: 88% / 95%, RMSPE 3.5%, Spearman 0.999, drift -0.7%); 12 (2026-12-01 17:14,
  commit 4910b3c, on a new machine: a 2-vCPU Xeon VM, profile fresh14 of that plan:
  45% / 68%, RMSPE 8.1%, Spearman 0.997, drift -15%; looked at); 13 (2026-12-01
  18:12, commit c4fe1fc, profile fresh14: 40% / 70%, RMSPE 8.3%, Spearman 0.996,
  drift -12%); 14 (2026-12-01 21:31, commit 3d7d096, profile fresh16: 42% / 65%,
  RMSPE 10.9%, Spearman 0.992, drift -3.0%); 15 (2026-12-01 23:57, commit 3f228c3,
  profile fresh18: 30% / 68%, RMSPE 11.9%, Spearman 0.993, mean -7.2%, drift -2.0%,
  pass spread median 25%; looked at); 16 (2026-12-02 02:49, commit b76f96a, profile
  fresh20: 20% / 60%, RMSPE 11.9%, Spearman 0.998, mean -6.5%, drift -3.3%, pass
  spread median 8.0%); on an AMD EPYC VM (AVX-512): 17 (2026-12-02 05:13, commit ea7e1ba,
  profile fresh21: 62% / 82%, RMSPE 8.9%, Spearman 0.994, drift -7.1%; looked at, to
  choose between predictor variants); 18 (2026-12-02 06:19, measured against profile
  fresh22 of be97250, predicted with 42e8dcd: 48% / 85%, RMSPE 8.8%, Spearman 0.996,
  drift -7.5%); 19 (2026-12-02 09:08, commit f2b3aa1, profile fresh23 of that commit:
  65% / 92%, RMSPE 6.9%, Spearman 0.997, mean -3.2%, drift -3.4%; and with the keras
  runtime, 08:51, profile keras35 of 1ce5c70: 12% / 22%, RMSPE 44.8%, drift -11%; looked
  at); 20 (2026-12-02 10:53, commit 55e2c3f, profile fresh24 of that commit: 40% /
  78%, RMSPE 8.5%, Spearman 0.996, drift -0.9%; with the keras runtime, 11:12, profile
  keras36 of that commit: 25% / 32%, RMSPE 53.1%, drift +3.3%); 21 (2026-12-02 13:51,
  commit ef40d78, profile fresh25 of that commit: 38% / 70%, RMSPE 8.9%, Spearman
  0.993, mean -6.0%, drift -2.2%; with the keras runtime, 14:13, profile keras37 of
  that commit: 18% / 30%, RMSPE 40.9%, mean +24%, drift -1.0%); 22 (2026-12-02 15:59,
  commit 49b0329, profile fresh26 of that commit: 60% / 80%, RMSPE 7.6%, Spearman
  0.996, mean +2.1%, drift -6.8%; with the keras runtime, 16:19, profile keras38 of
  that commit: 12% / 25%, RMSPE 63.8%, mean +32%, drift -1.7%). Next: 23.

Each set gets the summary (within ±5%/±10%, RMSPE, Spearman), a per-family table and
a leave-one-family-out table. Profiles the machine from nothing unless --profile.

    .venv/bin/python scripts/validate_benchmark.py --heldout-seed N --report out/validation
    .venv/bin/python scripts/validate_benchmark.py --profile p.json --set development --quick-set
    .venv/bin/python scripts/validate_benchmark.py --profile p.json --set heldout \
        --heldout-seed N --heldout-per-family 1 --heldout-families squeezenet,nasbench201

The calibration networks inside the profile use other input sizes than the
development set, so no validation model is ever seen by the predictor.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

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
    from latency_lab.benchmark_sets import add_profile_arguments

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_profile_arguments(ap, "out/validation_profile.json")
    ap.add_argument("--set", choices=("development", "heldout", "both"), default="both",
                    help="which validation set(s) to measure (default both, in the same passes)")
    ap.add_argument("--quick-set", action="store_true", help="a 7+4 model development subset")
    ap.add_argument("--heldout-per-family", type=int, default=None,
                    help="held-out networks per family (default latency_lab.zoo.DEFAULT_PER_FAMILY)")
    ap.add_argument("--heldout-families", help="comma-separated zoo families (default all)")
    ap.add_argument("--heldout-seed", type=int, default=None,
                    help="the held-out draw (seeds SEED*1000+i): a seed no run has used "
                         "(see the module docstring)")
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
    if args.set in ("heldout", "both") and args.heldout_seed is None:
        ap.error("the held-out set needs --heldout-seed N, a seed no run has used "
                 "(the used ones are listed in this script's docstring)")
    if args.heldout_per_family is None:
        from latency_lab.zoo import DEFAULT_PER_FAMILY

        args.heldout_per_family = DEFAULT_PER_FAMILY

    from latency_lab.benchmark_sets import (ensure_profile, load_measurements, measure_sets,
                                            print_figures)

    profile_path = ensure_profile(args.profile, args.profile_out, args.quick_profile)
    t0 = time.time()
    measurements = load_measurements(args.reuse_measurements) if args.reuse_measurements else None
    sets = chosen_sets(args)
    figures = measure_sets(sets, profile_path, passes=args.passes, report_dir=args.report,
                           measurements=measurements)
    print_figures(figures)
    print(f"validated {sum(len(m) for m in sets.values())} models in {time.time() - t0:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
