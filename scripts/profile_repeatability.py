"""Benchmark: do two profiles taken back to back on this machine agree?

Runs `latency-lab profile` twice with the same plan (same seed) and reports, over the
samples both runs measured, the median and 90th percentile of the per-sample relative
difference |a - b| / mean(a, b) of the latency figure predictors fit (`min_ms`, the
fastest repeat) and, beside it, of the median over repeats; by sample size too; the
ceilings of each run, and each run's wall time (the issue's bar: a full profile in
<= 10 minutes, and a median difference <= 5%).

    .venv/bin/python scripts/profile_repeatability.py            # full profiles
    .venv/bin/python scripts/profile_repeatability.py --quick    # quick profiles
    .venv/bin/python scripts/profile_repeatability.py --compare A.json B.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


SIZE_CLASSES_MS = ((0.0, 0.005), (0.005, 0.02), (0.02, 0.1), (0.1, 1.0), (1.0, float("inf")))


def _rel_diffs(a, b, figure: str) -> tuple[np.ndarray, np.ndarray]:
    """(|a - b| / mean, a's value) per sample both profiles hold, of one figure."""
    mb = {s.key: getattr(s, figure) for s in b.samples}
    pairs = [(getattr(s, figure), mb[s.key]) for s in a.samples if s.key in mb]
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    return np.abs(x - y) / ((x + y) / 2), x


def compare(a, b) -> dict:
    diffs, size = _rel_diffs(a, b, "min_ms")
    median_diffs, _ = _rel_diffs(a, b, "median_ms")
    by_size = {}
    for lo, hi in SIZE_CLASSES_MS:
        sel = (size >= lo) & (size < hi)
        if sel.any():
            by_size[f"{1e3 * lo:g}-{1e3 * hi:g} us"] = {
                "samples": int(sel.sum()), "median_rel_diff_pct": float(100 * np.median(diffs[sel]))}
    from latency_lab.profile import network_latency_ms

    nets_b = {m["name"]: network_latency_ms(m) for m in (b.calibration or {}).get("models", [])}
    nets = {m["name"]: round(100 * (nets_b[m["name"]] / network_latency_ms(m) - 1), 1)
            for m in (a.calibration or {}).get("models", []) if m["name"] in nets_b}
    return {"common_samples": int(diffs.size),
            "figure": "min_ms (fastest repeat: what predictors fit)",
            "median_rel_diff_pct": float(100 * np.median(diffs)),
            "p90_rel_diff_pct": float(100 * np.percentile(diffs, 90)),
            "share_within_5pct": float(np.mean(diffs <= 0.05)),
            "by_size": by_size,
            "median_figure": {"median_rel_diff_pct": float(100 * np.median(median_diffs)),
                              "p90_rel_diff_pct": float(100 * np.percentile(median_diffs, 90))},
            "calibration_networks_b_vs_a_pct": nets}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-dir", default="out/repeatability")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"),
                    help="compare two existing profiles instead of taking new ones")
    args = ap.parse_args(argv)

    from latency_lab.profile import DeviceProfile
    from latency_lab.profiler import ProfileRun, run_profile

    if args.compare:
        print(json.dumps(compare(*(DeviceProfile.load(p) for p in args.compare)), indent=2))
        return 0

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    profiles, walls = [], []
    for i in (1, 2):
        path = out / f"profile_{i}.json"
        t0 = time.time()
        run_profile(ProfileRun(out=path, quick=args.quick, log=lambda m: print(m, file=sys.stderr)))
        walls.append(time.time() - t0)
        profiles.append(DeviceProfile.load(path))
        print(f"profile {i}: {walls[-1]:.0f} s", file=sys.stderr)
    result = compare(*profiles)
    result["wall_s"] = [round(w, 1) for w in walls]
    result["ceilings"] = [p.roofline for p in profiles]
    result["samples"] = [len(p.samples) for p in profiles]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
