"""Benchmark: do structures learned with LatencyRegularizer beat uniform width scaling
at equal measured latency, and does target mode land on the requested latency?

Task: scikit-learn's digits made harder (each digit at 16x16 pasted at a random place
on a 32x32 canvas with Gaussian noise, two placements per digit), because plain digits
are separated almost perfectly even by a quarter-width network. Model: the default
shrink CNN (`latency_lab.workflows.digits_cnn`). For every seed the model is pretrained
once; for every target (a fraction of the full model's predicted latency) `shrink`
learns a structure in target mode, snaps it to the target, and retrains the channels the
regularizer ranked highest from their pretrained weights (`--retrain-from learned`:
from the weights at the end of learning); the uniform baseline starts from the same
pretrained weights and gets as many epochs after pretraining. Both are snapped to the target with the measured correction (`shrink`
re-aims by measured / predicted when a snapped network misses the target by > 5%) and
measured with LiteRT (the profile's runtime and threads).

"Equal measured latency": besides the pair at each target, the uniform models of one
seed form an accuracy-vs-measured-latency curve; the learned model is compared with that
curve read (linearly interpolated) at the learned model's own measured latency.

    .venv/bin/python scripts/shrink_benchmark.py --profile device_profiles/epyc_vm_2c_litert.json \
        --retrain-epochs 8 --seeds 0,1,2
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


def interp_accuracy(points: list[tuple[float, float]], ms: float) -> float:
    """Accuracy of a (measured ms, accuracy) curve at ``ms`` (clamped at the ends)."""
    pts = sorted(points)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return float(np.interp(ms, xs, ys))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True, help="a measured profile of this machine")
    ap.add_argument("--targets", default="0.2,0.35,0.5",
                    help="targets as fractions of the full model's predicted latency")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--pretrain-epochs", type=int, default=8)
    ap.add_argument("--learn-epochs", type=int, default=8)
    ap.add_argument("--retrain-epochs", type=int, default=6)
    ap.add_argument("--retrain-from", default="pretrained", choices=["pretrained", "learned"])
    ap.add_argument("--plain-digits", action="store_true", help="the easy task instead")
    ap.add_argument("--out", default="out/shrink_benchmark")
    args = ap.parse_args(argv)

    import keras

    from latency_lab.predict import predict_model
    from latency_lab.profile import load_profile
    from latency_lab.workflows import digits_cnn, digits_task, shrink, train

    prof = load_profile(args.profile)
    fractions = [float(f) for f in args.targets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    rows = []
    t0 = time.time()
    for seed in seeds:
        task = digits_task(seed=seed) if args.plain_digits else \
            digits_task(seed=seed, digit_size=16, noise=0.5, copies=2)
        base = digits_cnn(task.input_shape, task.classes, seed=seed)
        train(base, task, args.pretrain_epochs, learning_rate=5e-3, seed=seed)
        weights = base.get_weights()
        full_ms = predict_model(base, prof).latency_ms
        for frac in fractions:
            model = keras.models.clone_model(base)
            model.set_weights(weights)
            target = frac * full_ms
            r = shrink(model, task, prof, target, pretrain_epochs=0,
                       learn_epochs=args.learn_epochs, retrain_epochs=args.retrain_epochs,
                       seed=seed, retrain_from=args.retrain_from,
                       out_dir=out / f"seed{seed}_target{frac:g}")
            row = {"seed": seed, "fraction": frac, "target_ms": target,
                   "full_accuracy": r.rows["full"].accuracy,
                   "full_measured_ms": r.rows["full"].measured_ms,
                   "learned_raw_ms": r.learned_raw_ms, "snap_factor": r.snap_factor,
                   "snap_goal_ms": r.snap_goal_ms}
            for name in ("learned", "uniform"):
                m = r.rows[name]
                row.update({f"{name}_accuracy": m.accuracy, f"{name}_predicted_ms": m.predicted_ms,
                            f"{name}_measured_ms": m.measured_ms,
                            f"{name}_structure": m.structure})
            rows.append(row)
            print(f"[{time.time() - t0:5.0f}s] seed {seed} target {frac:.2f} ({target:.4f} ms): "
                  f"learned {100 * row['learned_accuracy']:.1f}% @ {row['learned_measured_ms']:.4f} ms"
                  f" | uniform {100 * row['uniform_accuracy']:.1f}% @ "
                  f"{row['uniform_measured_ms']:.4f} ms | raw learned {r.learned_raw_ms:.4f} ms, "
                  f"snap x{r.snap_factor:.2f}", file=sys.stderr, flush=True)
    # uniform curve per seed, read at each learned model's measured latency
    for row in rows:
        curve = [(o["uniform_measured_ms"], o["uniform_accuracy"]) for o in rows
                 if o["seed"] == row["seed"]]
        row["uniform_accuracy_at_learned_ms"] = interp_accuracy(curve, row["learned_measured_ms"])

    print("| target (x full) | target ms | learned acc | uniform acc | uniform acc @ learned ms "
          "| learned measured ms (vs target) | uniform measured ms (vs target) | learned raw / target |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = []
    for frac in fractions:
        sel = [r for r in rows if r["fraction"] == frac]

        def mean(key):
            return float(np.mean([r[key] for r in sel]))

        err_l = [100 * (r["learned_measured_ms"] / r["target_ms"] - 1) for r in sel]
        err_u = [100 * (r["uniform_measured_ms"] / r["target_ms"] - 1) for r in sel]
        raw = [r["learned_raw_ms"] / r["target_ms"] for r in sel]
        s = {"fraction": frac, "target_ms": mean("target_ms"),
             "learned_accuracy": mean("learned_accuracy"),
             "uniform_accuracy": mean("uniform_accuracy"),
             "uniform_accuracy_at_learned_ms": mean("uniform_accuracy_at_learned_ms"),
             "learned_err_pct": err_l, "uniform_err_pct": err_u, "raw_over_target": raw}
        summary.append(s)
        print(f"| {frac:.2f} | {s['target_ms']:.4f} | {100 * s['learned_accuracy']:.1f}% | "
              f"{100 * s['uniform_accuracy']:.1f}% | {100 * s['uniform_accuracy_at_learned_ms']:.1f}% | "
              f"{np.mean([r['learned_measured_ms'] for r in sel]):.4f} "
              f"({', '.join(f'{e:+.1f}%' for e in err_l)}) | "
              f"{np.mean([r['uniform_measured_ms'] for r in sel]):.4f} "
              f"({', '.join(f'{e:+.1f}%' for e in err_u)}) | "
              f"{', '.join(f'{x:.2f}' for x in raw)} |")
    within = np.mean([abs(e) <= 10 for s in summary for e in s["learned_err_pct"]])
    print(f"\nlearned models within ±10% of the target as measured: {100 * within:.0f}% "
          f"({len(rows)} runs); seeds {seeds}; {time.time() - t0:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps({"rows": rows, "summary": summary,
                                                    "profile": args.profile}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
