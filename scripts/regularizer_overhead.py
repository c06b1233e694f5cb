"""Benchmark: what does the regularization term add to a training step?

A MobileNetV2-sized model (alpha 1.0), plain training step vs the same step with
`strength * reg.get_regularization_term()` added, for FlopsRegularizer and
LatencyRegularizer. Steps are interleaved (plain, regularized, plain, ...) so machine
noise hits both alike; the figure is median(regularized) / median(plain) in one run.

    .venv/bin/python scripts/regularizer_overhead.py --profile out/demo_profile.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="t4", help="profile for LatencyRegularizer")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=96)
    args = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import keras

    from regularizers import FlopsRegularizer, LatencyRegularizer

    model = keras.applications.MobileNetV2(weights=None, input_shape=(args.size, args.size, 3),
                                           classes=10)
    opt = keras.optimizers.SGD(0.01)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((args.batch, args.size, args.size, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, args.batch))
    t0 = time.time()
    regs = {"flops": FlopsRegularizer(model=model),
            "latency": LatencyRegularizer(args.profile, model=model)}
    bind_s = time.time() - t0

    def make_step(reg):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
                if reg is not None:
                    loss = loss + 1e-9 * reg.get_regularization_term()
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        return step

    steps = {"plain": make_step(None), **{k: make_step(r) for k, r in regs.items()}}
    for fn in steps.values():  # trace and warm up
        fn(); fn()
    times = {k: [] for k in steps}
    for _ in range(args.steps):
        for k, fn in steps.items():
            t = time.perf_counter()
            fn().numpy()
            times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    out = {"model": f"MobileNetV2 alpha 1.0 {args.size}x{args.size}, batch {args.batch}",
           "steps": args.steps, "median_step_s": med,
           "ratio_vs_plain": {k: med[k] / med["plain"] for k in regs},
           "bind_s (both regularizers)": bind_s}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
