"""Benchmark: where does run-to-run timing noise come from on this machine?

Measures the same table samples (a subset of the quick plan) in two passes inside one
process (shuffled order each pass), then once more in a fresh process, with the
profiler's full timing settings, and reports the median per-sample difference
|a - b| / mean(a, b) within the process and across processes. Low within and high
across points at per-process state (memory layout, which CPU the thread lands on);
both high points at time-correlated interference from the rest of the host.

    .venv/bin/python scripts/timing_noise.py --samples 60
    .venv/bin/python scripts/timing_noise.py --samples 60 --cpu 0     # pinned
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure_pass(n: int, seed: int, order_seed: int) -> dict[str, float]:
    from latency_lab import microbench
    from latency_lab.profiler import _programs
    from latency_lab.runtimes import get as get_runtime
    from latency_lab.timing import TimingConfig

    plan = microbench.table_plan(quick=True, seed=seed)[:n]
    random.Random(order_seed).shuffle(plan)
    runtime = get_runtime("litert", threads=1)
    timing = TimingConfig(warmup_runs=2, min_time_s=0.02, repeats=7, max_retries=2)
    out: dict[str, float] = {}
    runtime.measure_ops(_programs(plan, seed), timing,
                        lambda prog, m: out.__setitem__(prog.key, m.median_ms))
    return out


def rel_diff(a: dict, b: dict) -> float:
    d = [abs(a[k] - b[k]) / ((a[k] + b[k]) / 2) for k in a if k in b]
    return float(100 * np.median(d))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, help="pin this process (and the child) to one CPU")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.child:
        print(json.dumps(measure_pass(args.samples, args.seed, 3)))
        return 0
    a = measure_pass(args.samples, args.seed, 1)
    b = measure_pass(args.samples, args.seed, 2)
    cmd = [sys.executable, __file__, "--child", "--samples", str(args.samples),
           "--seed", str(args.seed)] + (["--cpu", str(args.cpu)] if args.cpu is not None else [])
    child = subprocess.run(cmd, capture_output=True, text=True, check=True)
    c = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps({"samples": len(a), "pinned_cpu": args.cpu,
                      "within_process_median_diff_pct": rel_diff(a, b),
                      "across_process_median_diff_pct": rel_diff(a, c),
                      "across_process_b_vs_c_pct": rel_diff(b, c)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
