"""`latency-lab profile`: run the microbenchmark plan on a runtime and write a device
profile. Saves atomically after every batch of samples, so an interrupted run (Ctrl-C,
--budget, a crash) keeps what it measured and `--resume` continues without
re-measuring anything."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from latency_lab import device_info, microbench
from latency_lab.errors import ProfileError
from latency_lab.profile import DeviceProfile, Sample
from latency_lab.runtimes import OpProgram, get as get_runtime
from latency_lab.timing import Measurement, TimingConfig


@dataclass
class ProfileRun:
    out: Path
    runtime: str = "litert"
    threads: int = 1
    device: str = "cpu"
    quick: bool = False
    budget_s: float | None = None
    resume: bool = False
    seed: int = 0
    timing: TimingConfig | None = None
    max_table_samples: int | None = None
    adaptive_samples: int | None = None
    log: Callable[[str], None] = print
    progress: bool = True
    measured: list[Sample] = field(default_factory=list)


def _timing(run: ProfileRun) -> TimingConfig:
    if run.timing is not None:
        return run.timing
    if run.quick:
        return TimingConfig(warmup_runs=1, min_time_s=0.01, repeats=5, max_retries=1)
    return TimingConfig(warmup_runs=2, min_time_s=0.02, repeats=7, max_retries=2)


def _existing(run: ProfileRun, runtime_info: dict, fingerprint: str) -> list[Sample]:
    if not run.resume:
        return []
    if not run.out.exists():
        run.log(f"--resume: {run.out} does not exist yet; starting a new profile")
        return []
    old = DeviceProfile.load(run.out)
    for key in ("name", "threads", "backend", "device"):
        if old.runtime.get(key) != runtime_info.get(key):
            raise ProfileError(
                f"--resume: {run.out} was measured with runtime {key}="
                f"{old.runtime.get(key)!r}, this run uses {runtime_info.get(key)!r}. Use the "
                "same --runtime/--threads/--device, or write to a new --out file."
            )
    if old.fingerprint and old.fingerprint != fingerprint:
        raise ProfileError(
            f"--resume: {run.out} was measured on another device (fingerprint "
            f"{old.fingerprint}, this one {fingerprint}); write to a new --out file"
        )
    return list(old.samples)


def _build(run: ProfileRun, info: dict, runtime_info: dict, samples: list[Sample],
           planned: int, started: float, complete: bool, extra: dict) -> DeviceProfile | None:
    try:
        roofline = microbench.ceilings_from_samples(samples)
    except ProfileError:
        return None  # the roofline phase has not finished: nothing useful to save yet
    return DeviceProfile.create(
        device={"kind": run.device if run.device != "cpu" else "cpu", "name": info["name"],
                "fingerprint": info["fingerprint"], "info": info},
        runtime=runtime_info,
        provenance={"kind": "measured", "sources": [],
                    "notes": f"latency-lab profile ({'quick' if run.quick else 'full'} plan, seed {run.seed})"},
        roofline=roofline,
        overhead=microbench.overhead_from_samples(samples),
        samples=samples,
        calibration=extra,
        progress={"complete": complete, "planned": max(planned, len(samples)),
                  "done": len(samples), "elapsed_s": round(time.time() - started, 2)},
    )


def _programs(plan: list[microbench.PlannedSample], seed: int) -> list[OpProgram]:
    rng = np.random.default_rng(seed)
    out = []
    for s in plan:
        shapes, fn = microbench.get_bench_op(s.op).build(s.config, rng)
        out.append(OpProgram(s.key, shapes, fn))
    return out


def run_profile(run: ProfileRun) -> DeviceProfile:
    started = time.time()
    kind = "gpu" if run.device == "gpu" else "cpu"
    info = device_info.collect(kind)
    runtime = get_runtime(run.runtime, threads=run.threads, device=run.device)
    runtime_info = runtime.info()
    done = _existing(run, runtime_info, info["fingerprint"])
    done_keys = {s.key for s in done}
    samples: list[Sample] = list(done)
    temps_before = device_info.gpu_temperatures() if kind == "gpu" else []

    run.log("planning samples from keras.applications layers ...")
    plan = microbench.roofline_plan(run.quick) + microbench.table_plan(
        run.quick, seed=run.seed, max_samples=run.max_table_samples)
    todo = [p for p in plan if p.key not in done_keys]
    n_adaptive = run.adaptive_samples if run.adaptive_samples is not None else (0 if run.quick else 120)
    planned = len(plan) + n_adaptive
    run.log(f"{len(plan)} samples planned (+{n_adaptive} adaptive), {len(done)} already "
            f"measured, runtime {runtime_info['name']} {runtime_info['version']} "
            f"with {runtime.threads} thread(s)")
    by_key = {p.key: p for p in plan}
    timing = _timing(run)
    state = {"complete": False}

    def extra() -> dict:
        unstable = sum(1 for s in samples if s.unstable)
        out = {"samples": len(samples), "unstable_samples": unstable,
               "timing": {"min_time_s": timing.min_time_s, "repeats": timing.repeats,
                          "spread_tolerance": timing.spread_tolerance}}
        if kind == "gpu":
            out["gpu_temperature_c"] = {"before": temps_before,
                                        "after": device_info.gpu_temperatures()}
        return out

    def save() -> None:
        prof = _build(run, info, runtime_info, samples, planned, started,
                      state["complete"], extra())
        if prof is not None:
            prof.save(run.out)

    def record(prog: OpProgram, m: Measurement) -> None:
        p = by_key[prog.key]
        samples.append(Sample(op=p.op, config=dict(p.config), median_ms=m.median_ms,
                              iqr_ms=m.iqr_ms, repeats=m.repeats, raw_ms=tuple(m.raw_ms),
                              unstable=m.unstable))
        bar.advance(task)

    def over_budget() -> bool:
        return run.budget_s is not None and time.time() - started > run.budget_s

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  disable=not run.progress, transient=False) as bar:
        task = bar.add_task("profiling", total=len(todo) + n_adaptive)
        try:
            chunk = 24
            for start in range(0, len(todo), chunk):
                if over_budget():
                    run.log("budget reached; saving what was measured (continue with --resume)")
                    break
                batch = todo[start:start + chunk]
                runtime.measure_ops(_programs(batch, run.seed + start), timing, record)
                save()
            else:
                if n_adaptive and not over_budget():
                    extra_plan = microbench.adaptive_plan(samples, n_adaptive, seed=run.seed)
                    extra_plan = [p for p in extra_plan if p.key not in {s.key for s in samples}]
                    by_key.update({p.key: p for p in extra_plan})
                    for start in range(0, len(extra_plan), chunk):
                        if over_budget():
                            break
                        batch = extra_plan[start:start + chunk]
                        runtime.measure_ops(_programs(batch, run.seed + 7919 + start), timing, record)
                        save()
                state["complete"] = not over_budget()
        except KeyboardInterrupt:
            save()
            run.log(f"interrupted: {len(samples)} samples kept in {run.out}; continue with --resume")
            raise
    save()
    prof = DeviceProfile.load(run.out)
    return prof
