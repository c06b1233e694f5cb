"""Behavior check for refactors: every network of the validation benchmark, predicted
with every predictor against the shipped profiles (LiteRT and keras runtimes, and a
datasheet profile), plus its `analyze` JSON, written to one JSON file; `--compare A B`
reports the largest relative difference between two snapshots.

    .venv/bin/python scripts/prediction_snapshot.py --out before.json
    ... change the code ...
    .venv/bin/python scripts/prediction_snapshot.py --out after.json
    .venv/bin/python scripts/prediction_snapshot.py --compare before.json after.json

Nothing is timed: predictions are a deterministic function of the profile and the
model, so any difference is a change of behavior.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

# (profile, predictors): a LiteRT profile, a keras-runtime profile, a datasheet one.
PROFILES = (("epyc_vm_2c_litert", ("lookup", "roofline", "flops")),
            ("xeon_vm_2c_keras", ("lookup", "roofline", "flops")),
            ("t4", ("roofline",)))


def snapshot(quick: bool) -> dict:
    import keras

    from latency_lab.analyze import analyze_model
    from latency_lab.kernels import work_items
    from latency_lab.predictors import make_predictor, predict_items
    from latency_lab.profile import load_profile
    from validate_benchmark import development_set

    profiles = {name: load_profile(name) for name, _ in PROFILES}
    fitted = {(name, p): make_predictor(p, profiles[name]) for name, preds in PROFILES
              for p in preds}
    out: dict = {"networks": {}}
    for label, _, make in development_set(quick, seed=0):
        model = make()
        entry = {"analyze": analyze_model(model).to_dict(), "predictions": {}}
        items = {}  # the kernels of one runtime, built once
        for (name, pred), est in fitted.items():
            runtime = profiles[name].runtime_name
            if runtime not in items:
                items[runtime] = work_items(model, runtime)
            total, layers = predict_items(items[runtime], est)
            entry["predictions"][f"{name}/{pred}"] = {
                "latency_ms": total, "layers": [[l.name, l.latency_ms] for l in layers]}
        out["networks"][label] = entry
        print(f"{label}: " + ", ".join(f"{k} {v['latency_ms']:.4f}"
                                        for k, v in entry["predictions"].items()), flush=True)
        del model
        keras.backend.clear_session()
    return out


def _walk(a, b, path, diffs):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                diffs.append((math.inf, f"{path}/{k}: present in one snapshot only"))
                continue
            _walk(a[k], b[k], f"{path}/{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append((math.inf, f"{path}: {len(a)} vs {len(b)} entries"))
            return
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{path}[{i}]", diffs)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool):
        rel = abs(a - b) / max(abs(a), abs(b), 1e-300)
        if rel > 0:
            diffs.append((rel, f"{path}: {a!r} vs {b!r}"))
    elif a != b:
        diffs.append((math.inf, f"{path}: {a!r} vs {b!r}"))


def compare(a_path: str, b_path: str, tolerance: float) -> int:
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    diffs: list = []
    _walk(a, b, "", diffs)
    diffs.sort(key=lambda d: -d[0])
    n = sum(len(e["predictions"]) for e in a["networks"].values())
    print(f"{len(a['networks'])} networks, {n} predictions compared")
    worst = diffs[0][0] if diffs else 0.0
    print(f"largest relative difference: {worst:.3g}")
    for rel, where in diffs[:15]:
        print(f"  {rel:.3g}  {where}")
    return 0 if worst < tolerance else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the snapshot here")
    ap.add_argument("--quick-set", action="store_true", help="the benchmark's 7+4 subset")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    ap.add_argument("--tolerance", type=float, default=1e-9)
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare, args.tolerance)
    if not args.out:
        ap.error("give --out SNAPSHOT.json or --compare BEFORE AFTER")
    data = snapshot(args.quick_set)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
