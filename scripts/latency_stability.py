"""Benchmark: which latency figure of a whole network stays put on a shared host?

Times a few keras.applications networks (LiteRT, 1 thread) in rounds a few seconds
apart. In each round every network is called back to back for `--round-s` seconds and
each call is timed on its own; the script reports, per network, how far over the
rounds each figure wandered ((max - min) / min across rounds):

- fastest single call (the package's latency figure, `TimingConfig.latency()`);
- fastest 0.1 s window (mean over consecutive calls lasting >= 0.1 s: what a
  calibrated inner loop of `min_time_s=0.1` reports as its fastest repeat);
- median single call.

    .venv/bin/python scripts/latency_stability.py
    .venv/bin/python scripts/latency_stability.py --rounds 8 --round-s 1.0
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NETWORKS = (
    ("MobileNet", dict(alpha=0.25, input_shape=(128, 128, 3))),
    ("MobileNetV2", dict(alpha=1.0, input_shape=(112, 112, 3))),
    ("ResNet50", dict(input_shape=(56, 56, 3))),
)


def windows_ms(calls_ms: np.ndarray, window_ms: float) -> list[float]:
    """Mean call time of consecutive calls grouped into windows of >= window_ms."""
    out, total, count = [], 0.0, 0
    for t in calls_ms:
        total += t
        count += 1
        if total >= window_ms:
            out.append(total / count)
            total, count = 0.0, 0
    return out


def wander_pct(values: list[float]) -> float:
    return float(100 * (max(values) - min(values)) / min(values))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--round-s", type=float, default=1.0, help="seconds per network per round")
    ap.add_argument("--pause-s", type=float, default=3.0, help="pause between rounds")
    args = ap.parse_args(argv)

    from latency_lab.runtimes.litert import LiteRTRuntime, convert_keras_model
    from latency_lab.timing import TimingConfig, measure
    from latency_lab.variants import application

    runtime = LiteRTRuntime(threads=1)
    interpreters = {}
    for name, kwargs in NETWORKS:
        label = f"{name}{kwargs}"
        interpreters[label] = runtime.ready(convert_keras_model(application(name, **kwargs)))
    figures: dict[str, dict[str, list[float]]] = {
        label: {"fastest_call_ms": [], "fastest_window_ms": [], "median_call_ms": []}
        for label in interpreters}
    for _ in range(args.rounds):
        for label, (_, call) in interpreters.items():  # (interpreter kept alive, call)
            # As many single calls as fill --round-s, timed back to back by the
            # package's harness (TimingConfig.latency: one call per repeat, raw kept).
            one_call_s = measure(call, TimingConfig.latency(repeats=3)).min_s
            repeats = max(3, int(args.round_s / one_call_s))
            calls_ms = np.array(measure(call, TimingConfig.latency(repeats=repeats,
                                                                        warmup_runs=3)).raw_s) * 1e3
            f = figures[label]
            f["fastest_call_ms"].append(float(calls_ms.min()))
            f["fastest_window_ms"].append(min(windows_ms(calls_ms, 100.0) or [float("nan")]))
            f["median_call_ms"].append(float(np.median(calls_ms)))
        time.sleep(args.pause_s)
    result = {label: {name: {"per_round": [round(v, 4) for v in values],
                             "wander_pct": round(wander_pct(values), 1)}
                      for name, values in f.items()}
              for label, f in figures.items()}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
