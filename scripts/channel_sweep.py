"""Benchmark: how a profile predicts kernels over a few channels, step by step.

Slimmed networks run convs over a handful of channels, mostly a partial SIMD step,
and XNNPACK times those apart (on the EPYC VM a 3x3 depthwise at 48x48 takes 17 us
over 8 channels, 25 us over 1-7 and 34 us over 9-15). This times one-op models over
a sweep of channel counts (3x3 depthwise at 48x48, a 3->c stem conv at 64x64 stride
2, a c->c 1x1 conv at 32x32) with the profiling harness, predicts each with the
profile's LookupTableModel, and prints measured, predicted and the error per config
plus the RMSPE per sweep.

    .venv/bin/python scripts/channel_sweep.py --profile device_profiles/epyc_vm_2c_litert.json
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SWEEPS = {
    "depthwise 3x3 48x48": ("depthwise", lambda c: dict(h=48, w=48, c=c, k=3, s=1),
                            list(range(1, 18)) + [20, 23, 24, 25, 31, 32, 33, 40]),
    "stem conv 3->c 64x64 s2": ("conv2d", lambda c: dict(h=64, w=64, cin=3, cout=c, k=3, s=2),
                                list(range(1, 18)) + [23, 24, 25, 32, 33]),
    "1x1 conv c->c 32x32": ("conv2d", lambda c: dict(h=32, w=32, cin=c, cout=c, k=1, s=1),
                            [4, 6, 7, 8, 9, 12, 15, 16, 17, 20, 24, 31, 32, 33]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True, help="a LiteRT profile (path or shipped name)")
    ap.add_argument("--passes", type=int, default=2, help="interleaved passes (fastest call kept)")
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()

    from latency_lab.bench.plans import PlannedSample
    from latency_lab.predictors import make_predictor
    from latency_lab.profile import load_profile
    from latency_lab.profiler import op_programs
    from latency_lab.runtimes import for_profile as runtime_for_profile
    from latency_lab.timing import TimingConfig

    profile = load_profile(args.profile)
    runtime = runtime_for_profile(profile)
    predictor = make_predictor("lookup", profile)
    cases = [(name, op, make(c)) for name, (op, make, counts) in SWEEPS.items() for c in counts]
    # Built as the profiler builds its samples, so the timings compare with a profile's.
    programs = op_programs([PlannedSample(op, cfg, "table") for _, op, cfg in cases], seed=0)
    timing = TimingConfig.latency(repeats=args.repeats)
    passes = [runtime.measure_ops(programs, timing) for _ in range(args.passes)]
    measured = np.array([min(p[i].min_ms for p in passes) for i in range(len(cases))])
    predicted = predictor.predict([(op, cfg) for _, op, cfg in cases])
    errors = predicted / measured - 1
    for name in SWEEPS:
        print(name)
        idx = [i for i, case in enumerate(cases) if case[0] == name]
        for i in idx:
            print(f"  {str(cases[i][2]):58s} measured {1e3 * measured[i]:7.1f} us  "
                  f"predicted {1e3 * predicted[i]:7.1f} us  {100 * errors[i]:+5.0f}%")
        print(f"  RMSPE {100 * np.sqrt(np.mean(errors[idx] ** 2)):.1f}%")


if __name__ == "__main__":
    main()
