"""Benchmark: do two profiles taken back to back on this machine agree?

Runs `latency-lab profile` twice with the same plan (same seed) and reports, over the
samples both runs measured, the median and 90th percentile of the per-sample relative
difference |a - b| / mean(a, b), the ceilings of each run, and each run's wall time
(the issue's bar: a full profile in <= 10 minutes, and a median difference <= 5%).

    .venv/bin/python scripts/profile_repeatability.py            # full profiles
    .venv/bin/python scripts/profile_repeatability.py --quick    # quick profiles
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


def compare(a, b) -> dict:
    mb = {s.key: s.median_ms for s in b.samples}
    diffs = [abs(s.median_ms - mb[s.key]) / ((s.median_ms + mb[s.key]) / 2)
             for s in a.samples if s.key in mb]
    diffs = np.array(diffs)
    nets_b = {m["name"]: m["measured_ms"] for m in (b.calibration or {}).get("models", [])}
    nets = {m["name"]: round(100 * (nets_b[m["name"]] / m["measured_ms"] - 1), 1)
            for m in (a.calibration or {}).get("models", []) if m["name"] in nets_b}
    return {"common_samples": int(diffs.size),
            "median_rel_diff_pct": float(100 * np.median(diffs)),
            "p90_rel_diff_pct": float(100 * np.percentile(diffs, 90)),
            "share_within_5pct": float(np.mean(diffs <= 0.05)),
            "calibration_networks_b_vs_a_pct": nets}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-dir", default="out/repeatability")
    args = ap.parse_args(argv)

    from latency_lab.profile import DeviceProfile
    from latency_lab.profiler import ProfileRun, run_profile

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
