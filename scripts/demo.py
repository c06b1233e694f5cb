"""`make demo`: the main job on this machine, end to end in a few minutes.

1. analyze a shipped example network (exact FLOPs, params, bytes per layer);
2. profile this CPU with LiteRT (quick plan, one thread);
3. predict the example's latency from that profile and measure it for real;
4. shrink: learn a structure for half the latency of a small CNN on scikit-learn's
   digits with LatencyRegularizer in target mode, rebuild the slim model, retrain it,
   and predict and measure it beside a uniformly width-scaled baseline.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODEL = "keras.applications.MobileNetV2"
MODEL_ARGS = ["--model-arg", "alpha=0.35", "--input-shape", "96,96,3"]
OUT = Path("out")


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def main() -> int:
    from latency_lab.cli import main as cli

    OUT.mkdir(exist_ok=True)
    profile = str(OUT / "demo_profile.json")
    t0 = time.time()
    step(f"analyze {MODEL} (alpha 0.35, 96x96)")
    rc = cli(["analyze", MODEL, *MODEL_ARGS])
    step("profile this CPU (LiteRT, 1 thread, --quick)")
    rc = rc or cli(["profile", "--quick", "--overwrite", "--out", profile])  # a fresh one each run
    step("predict from the profile")
    rc = rc or cli(["predict", MODEL, *MODEL_ARGS, "--profile", profile])
    step("measure for real (same harness as profiling)")
    rc = rc or cli(["measure", MODEL, *MODEL_ARGS])
    step("shrink a digits CNN to half its predicted latency (short run)")
    rc = rc or cli(["shrink", "--profile", profile, "--target-fraction", "0.5",
                    "--pretrain-epochs", "3", "--learn-epochs", "4", "--retrain-epochs", "2",
                    "--out", str(OUT / "demo_shrink")])
    print(f"\ndemo finished in {time.time() - t0:.0f} s (exit {rc}); report: "
          f"{OUT / 'demo_shrink' / 'report.md'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
