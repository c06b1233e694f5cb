"""Benchmark: does a short structure-learning run on scikit-learn's digits move the cost
down as the strength grows, for each algorithm?

A small CNN (three conv + BN + ReLU blocks and a dense head) is trained with
`loss = cross-entropy + strength * term / cost0` (the term normalized by the initial
cost, so one strength scale serves FLOPs and milliseconds alike) for each algorithm
(gamma, group_lasso, logistic_sigmoid with gates inserted) and strength. Reports the
FLOP cost and the predicted latency of the learned structure, alive channels and
validation accuracy.

    .venv/bin/python scripts/structure_learning_digits.py --profile out/demo_profile.json
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STRENGTHS = (0.0, 0.3, 1.0, 3.0)
ALGORITHMS = ("gamma", "group_lasso", "logistic_sigmoid")


def build(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    x = keras.Input((8, 8, 1))
    h = x
    for i, width in enumerate((32, 64, 64), start=1):
        h = L.Conv2D(width, 3, padding="same", name=f"conv{i}")(h)
        # momentum 0.9: a short run must still settle the moving statistics.
        h = L.BatchNormalization(momentum=0.9, name=f"bn{i}")(h)
        h = L.ReLU(name=f"relu{i}")(h)
        if i == 2:
            h = L.MaxPooling2D(name="pool")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    y = L.Dense(10, activation="softmax", name="logits")(h)
    return keras.Model(x, y, name="digits_cnn")


def run(algorithm: str, strength: float, profile: str, epochs: int, seed: int) -> dict:
    import keras
    import numpy as np

    from regularizers import FlopsRegularizer, LatencyRegularizer, insert_gates
    from latency_lab.workflows import digits_task

    task = digits_task(image_size=8, seed=seed)  # the 8x8 images as shipped
    xtr, xva, ytr, yva = task.x_train, task.x_val, task.y_train, task.y_val
    model = build(seed)
    if algorithm == "logistic_sigmoid":
        model = insert_gates(model, seed=seed)
    kwargs = {"algorithm": algorithm, "threshold": 1e-2 if algorithm == "gamma" else 5e-3}
    reg = LatencyRegularizer(profile, model=model, **kwargs)
    flops = FlopsRegularizer(model=model, **kwargs)
    cost0 = reg.get_cost()
    loss = reg.wrap_loss("sparse_categorical_crossentropy", strength / cost0)
    # Gate logits start at 2.5 and must travel below about -2.2 (probability 0.1) to
    # die; Adam moves a weight by about lr per step, so gates get a larger step.
    lr = 3e-2 if algorithm == "logistic_sigmoid" else 1e-2
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])
    model.fit(xtr, ytr, epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    acc = float(np.mean(np.argmax(model.predict(xva, verbose=0), axis=1) == yva))
    return {"algorithm": algorithm, "strength": strength, "val_accuracy": acc,
            "latency_ms": reg.get_cost(), "latency_ms_full": cost0,
            "flops": flops.get_cost(), "alive": reg.get_alive_counts()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="t4")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--algorithm", action="append", choices=ALGORITHMS,
                    help="run only these (repeatable; default all)")
    args = ap.parse_args(argv)
    rows = []
    for algo in args.algorithm or ALGORITHMS:
        for s in STRENGTHS:
            r = run(algo, s, args.profile, args.epochs, args.seed)
            rows.append(r)
            print(f"{algo:17s} strength {s:4.1f}: acc {r['val_accuracy']:.3f}  "
                  f"latency {r['latency_ms']:.4f} ms (full {r['latency_ms_full']:.4f})  "
                  f"FLOPs {r['flops']:.0f}  alive {r['alive']}", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
