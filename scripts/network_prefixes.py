"""Benchmark: where inside a network does it run slower than its kernels timed alone?

A network measured whole and the sum of its kernels measured alone (`validate
--per-layer`) differ by 10-100%; this says where. It cuts each network after
single-tensor cuts (every later layer depends on the cut layer's output alone, and the
cut does not split a kernel LiteRT fuses: a conv from its BatchNormalization or
activation), times every prefix network and the kernels of the whole network alone in
ONE run (`validate(..., per_layer=True)`: the prefixes in interleaved passes, the
kernels with the profile's own harness right after), and prints per segment (between
two cuts) its time inside the network (the difference of two prefixes), the sum of its
kernels alone, their ratio, and the lookup predictor's in-network figure for those
kernels. What it showed first (EPYC VM, profile fresh21, 2026-12-02): the first stages
run 0.94-1.08x their kernels alone, the last ones, where weights dominate, 1.4-2.2x
(see `LookupTableModel._fit_in_network`).

    .venv/bin/python scripts/network_prefixes.py --profile P.json \\
        --model MobileNetV2:alpha=1.0:96 --model ResNet50::64 --cuts 8 --out prefixes.json

--model NAME[:ARG=V,ARG=V][:SIZE]: a keras.applications network (weights=None) at a
square SIZE input (default 96). Use development networks only (DESIGN.md: held-out
networks are never looked at this way).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a plain checkout
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A cut between a layer and one of these would split a kernel LiteRT fuses.
FUSED_INTO_PREVIOUS = ("BatchNormalization", "Activation", "ReLU")
# Cutting after these leaves a prefix whose last kernel is not the network's.
NO_CUT_AFTER = ("ZeroPadding2D", "Rescaling", "Normalization", "BatchNormalization")


def parse_model(spec: str):
    """NAME[:ARG=V,ARG=V][:SIZE] -> (label, keras model)."""
    from latency_lab.errors import InvalidArgumentError
    from latency_lab.models import load_application, parse_model_args

    parts = spec.split(":")
    if len(parts) > 3 or not parts[0]:
        raise InvalidArgumentError(f"--model {spec!r}: expected NAME[:ARG=V,ARG=V][:SIZE]")
    args = parse_model_args([a for a in (parts[1].split(",") if len(parts) > 1 else []) if a])
    size = int(parts[2]) if len(parts) > 2 and parts[2] else 96
    # the arguments are in the label: two alphas of one network are two networks
    named = "".join(f"-{k}{v}" for k, v in sorted(args.items()))
    return f"{parts[0]}{named}-{size}", load_application(parts[0], args, (size, size, 3))


def cut_calls(model) -> list:
    """The top-level calls after which the rest of `model` depends on that call's
    output alone (`FUSED_INTO_PREVIOUS`, `NO_CUT_AFTER` excepted), in order."""
    from latency_lab import keras_walker

    calls = list(keras_walker.calls(keras_walker.require_functional(model, "--model")))
    last_use: dict[int, int] = {}
    for i, call in enumerate(calls):
        for t in call.inputs:
            last_use[id(t)] = i
    produced_at = {id(t): i for i, call in enumerate(calls) for t in call.outputs}
    out = []
    for i, call in enumerate(calls[:-1]):
        live = {t for t, j in last_use.items() if j > i and produced_at.get(t, -1) <= i}
        if (live == {id(t) for t in call.outputs} and len(call.outputs) == 1
                and type(calls[i + 1].operation).__name__ not in FUSED_INTO_PREVIOUS
                and type(call.operation).__name__ not in NO_CUT_AFTER):
            out.append(call)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True, help="a measured profile of this machine")
    ap.add_argument("--model", action="append", required=True,
                    help="NAME[:ARG=V,ARG=V][:SIZE], repeatable")
    ap.add_argument("--cuts", type=int, default=8, help="prefixes per network (default 8)")
    ap.add_argument("--passes", type=int, default=6)
    ap.add_argument("--out", help="write the prefixes' results as JSON here")
    args = ap.parse_args(argv)

    import keras

    from latency_lab.profile import load_profile
    from latency_lab.runtimes import for_profile
    from latency_lab.validate import validate

    for_profile(load_profile(args.profile))  # pins TensorFlow's threads before models run
    models, order = [], {}
    for spec in args.model:
        label, model = parse_model(spec)
        cuts = cut_calls(model)
        step = max(1, len(cuts) // args.cuts)
        chosen = cuts[step - 1::step][:args.cuts]
        names = [layer.name for layer in model.layers]
        order[label] = {"layers": names, "cuts": [c.operation.name for c in chosen]}
        for c in chosen:
            models.append((f"{label}@{c.operation.name}",
                           keras.Model(model.inputs, c.outputs[0])))
        models.append((f"{label}@full", model))
    report = validate(models, args.profile, predictors=("lookup",), passes=args.passes,
                      per_layer=True)
    results = {r.name: r.to_dict() for r in report.results}
    for label, meta in order.items():
        print_segments(label, meta, results)
    if args.out:
        Path(args.out).write_text(json.dumps({"networks": order, "results": results}))
        print(f"wrote {args.out}")
    return 0


def print_segments(label: str, meta: dict, results: dict) -> None:
    """One line per segment: in the network, alone, their ratio, predicted."""
    pos = {name: i for i, name in enumerate(meta["layers"])}
    full = results[f"{label}@full"]
    per_kernel = full["per_kernel"]
    rows = per_kernel["kernels"]
    alone_total = per_kernel["kernels_measured_ms"] + per_kernel["per_invocation_ms"]
    print(f"== {label}: measured {full['measured_ms']:.3f} ms, kernels alone "
          f"{alone_total:.3f} ms ({full['measured_ms'] / alone_total:.3f}x), lookup "
          f"{full['predicted_ms']['lookup']:.3f} ms")
    print(f"   {'segment up to':32s} {'kernels':>7s} {'in net':>8s} {'alone':>8s} "
          f"{'ratio':>6s} {'lookup':>8s}")
    prev_ms, prev_at = 0.0, -1
    for cut in meta["cuts"] + [None]:
        at = pos[cut] if cut else len(meta["layers"])
        r = results[f"{label}@{cut}" if cut else f"{label}@full"]
        seg = [x for x in rows if prev_at < pos.get(x["layer"], -1) <= at]
        alone = sum(x["measured_ms"] or 0.0 for x in seg)
        lookup = sum(x["predicted_ms"]["lookup"] for x in seg)
        in_net = r["measured_ms"] - prev_ms
        ratio = f"{in_net / alone:6.2f}" if alone else "     -"
        print(f"   {cut or '(end)':32s} {len(seg):7d} {in_net:8.3f} {alone:8.3f} {ratio} "
              f"{lookup:8.3f}")
        prev_ms, prev_at = r["measured_ms"], at


if __name__ == "__main__":
    raise SystemExit(main())
