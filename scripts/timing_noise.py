"""Benchmark: where does run-to-run timing noise come from on this machine?

Measures the same table samples (a subset of the quick plan) in two passes inside one
process (shuffled order each pass), then once more in a fresh process, with the
package's latency timing (fastest of single calls), and reports the median per-sample
difference |a - b| / mean(a, b) within the process and across processes. Low within and high
across points at per-process state (memory layout, which CPU the thread lands on);
both high points at time-correlated interference from the rest of the host.

    .venv/bin/python scripts/timing_noise.py --samples 60
    .venv/bin/python scripts/timing_noise.py --samples 60 --cpu 0     # pinned
    .venv/bin/python scripts/timing_noise.py --samples 48 --interpreters

--interpreters asks whether the noise follows the interpreter instance (its memory
layout) or time: the same samples are timed in two interpreters built from the same
converted model, A then B then A again then B again, and the script reports the median
difference between the two timings of one interpreter (minutes apart) and between the
two interpreters (seconds apart).
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
    from latency_lab.bench import plans
    from latency_lab.profiler import op_programs
    from latency_lab.runtimes import get as get_runtime
    from latency_lab.timing import TimingConfig

    plan = plans.table_plan(quick=True, seed=seed)[:n]
    random.Random(order_seed).shuffle(plan)
    runtime = get_runtime("litert", threads=1)
    timing = TimingConfig.latency(repeats=30)
    out: dict[str, float] = {}
    runtime.measure_ops(op_programs(plan, seed), timing,
                        lambda prog, m: out.__setitem__(prog.key, m.min_ms))
    return out


def interpreter_passes(n: int, seed: int) -> dict:
    from latency_lab.bench import plans
    from latency_lab.profiler import op_programs
    from latency_lab.runtimes.litert import convert_program, interpreter, program_call
    from latency_lab.timing import TimingConfig, measure

    plan = plans.table_plan(quick=False, seed=seed)[:n]
    timing = TimingConfig.latency(repeats=20, warmup_runs=1)
    rng = np.random.default_rng(0)
    built = []  # per chunk: [(interpreter, [(key, invoke)]) for A, for B]
    for start in range(0, len(plan), 24):
        progs = op_programs(plan[start:start + 24], seed + start)
        models = [convert_program(p) for p in progs]
        pair = []
        for _ in range(2):
            ready = [program_call(interpreter(b, 1), p, rng) for p, b in zip(progs, models)]
            pair.append(([it for it, _ in ready], [(p.key, c) for p, (_, c) in zip(progs, ready)]))
        built.append(pair)

    def run(which: int) -> dict[str, float]:
        out = {}
        for pair in built:
            for key, call in pair[which][1]:
                out[key] = measure(call, timing).min_ms
        return out

    a1, b1, a2, b2 = run(0), run(1), run(0), run(1)
    return {"samples": len(a1),
            "same_interpreter_A1_vs_A2_pct": rel_diff(a1, a2),
            "same_interpreter_B1_vs_B2_pct": rel_diff(b1, b2),
            "other_interpreter_A1_vs_B1_pct": rel_diff(a1, b1),
            "other_interpreter_A2_vs_B2_pct": rel_diff(a2, b2)}


def rel_diff(a: dict, b: dict) -> float:
    d = [abs(a[k] - b[k]) / ((a[k] + b[k]) / 2) for k in a if k in b]
    return float(100 * np.median(d))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, help="pin this process (and the child) to one CPU")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--interpreters", action="store_true",
                    help="same interpreter vs another instance of the same model")
    args = ap.parse_args(argv)
    if args.interpreters:
        print(json.dumps(interpreter_passes(args.samples, args.seed), indent=2))
        return 0
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
