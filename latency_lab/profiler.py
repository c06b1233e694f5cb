"""`latency-lab profile`: run the microbenchmark plan on a runtime and write a device
profile. Saves atomically after every batch of samples, so an interrupted run (Ctrl-C,
--budget, a crash) keeps what it measured and `--resume` continues without
re-measuring anything."""

from __future__ import annotations

import os
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


def _existing(run: ProfileRun, runtime_info: dict, fingerprint: str) -> tuple[list[Sample], dict]:
    """Samples and calibration of the profile being resumed (empty when not resuming)."""
    if not run.resume:
        return [], {}
    if not run.out.exists():
        run.log(f"--resume: {run.out} does not exist yet; starting a new profile")
        return [], {}
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
    return list(old.samples), dict(old.calibration or {})


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


def _calibrate(run: ProfileRun, runtime, runtime_name: str, bar) -> list[dict]:
    """Measure the calibration networks whole; store their kernels so predictors can
    be refit from the profile alone."""
    from latency_lab.predict import work_items

    out = []
    task = bar.add_task("calibration networks", total=len(
        microbench.CALIBRATION_QUICK if run.quick else microbench.CALIBRATION_FULL))
    timing = TimingConfig(warmup_runs=3, min_time_s=0.05, repeats=7, max_retries=2)
    for label, model in microbench.calibration_models(run.quick):
        items = work_items(model, runtime_name)
        m = runtime.measure_model(model, timing)
        out.append({"name": label, "measured_ms": m.median_ms, "iqr_ms": m.iqr_ms,
                    "items": [i.to_dict() for i in items]})
        bar.advance(task)
    return out


def _check_out_writable(out: Path) -> None:
    """Fail before measuring anything when --out cannot be written (otherwise the first
    save fails only after the first batch has been measured)."""
    directory = out.resolve().parent
    if out.is_dir():
        raise ProfileError(f"{out}: is a directory; pass the path of a .json file to write.")
    if not directory.is_dir():
        raise ProfileError(
            f"{out}: directory '{directory}' does not exist (or is not a directory); "
            f"create it or choose another --out path.")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ProfileError(
            f"{out}: directory '{directory}' is not writable; make it writable or choose "
            f"another --out path.")


def _measure_in_batches(plan, seed, runtime, timing, record, save, over_budget, log) -> bool:
    """Measure `plan` in batches, saving after each; False if the budget stopped it."""
    chunk = 24
    for start in range(0, len(plan), chunk):
        if over_budget():
            log("budget reached; saving what was measured (continue with --resume)")
            return False
        runtime.measure_ops(_programs(plan[start:start + chunk], seed + start), timing, record)
        save()
    return True


def run_profile(run: ProfileRun) -> DeviceProfile:
    started = time.time()
    run.out = Path(run.out)
    _check_out_writable(run.out)
    kind = "gpu" if run.device == "gpu" else "cpu"
    info = device_info.collect(kind)
    runtime = get_runtime(run.runtime, threads=run.threads, device=run.device)
    runtime_info = runtime.info()
    done, old_calibration = _existing(run, runtime_info, info["fingerprint"])
    done_keys = {s.key for s in done}
    samples: list[Sample] = list(done)
    temps_before = device_info.gpu_temperatures() if kind == "gpu" else []

    run.log("planning samples from keras.applications layers ...")
    plan = microbench.roofline_plan(run.quick) + microbench.table_plan(
        run.quick, seed=run.seed, max_samples=run.max_table_samples,
        runtime=runtime_info["name"])
    todo = [p for p in plan if p.key not in done_keys]
    n_adaptive = run.adaptive_samples if run.adaptive_samples is not None else (0 if run.quick else 100)
    plan_keys = {p.key for p in plan}
    # On --resume, samples outside the plan are adaptive ones already measured.
    n_adaptive_left = max(0, n_adaptive - sum(1 for s in done if s.key not in plan_keys))
    planned = len(plan) + n_adaptive
    run.log(f"{len(plan)} samples planned (+{n_adaptive} adaptive), {len(done)} already "
            f"measured, runtime {runtime_info['name']} {runtime_info['version']} "
            f"with {runtime.threads} thread(s)")
    by_key = {p.key: p for p in plan}
    timing = _timing(run)
    # "saved": a valid profile is on disk (needs the roofline phase, i.e. the first batch).
    state = {"complete": False, "saved": bool(done)}
    calibration: dict = dict(old_calibration)

    def extra() -> dict:
        unstable = sum(1 for s in samples if s.unstable)
        out = {"samples": len(samples), "unstable_samples": unstable,
               "timing": {"min_time_s": timing.min_time_s, "repeats": timing.repeats,
                          "spread_tolerance": timing.spread_tolerance}}
        out.update(calibration)
        if kind == "gpu":
            out["gpu_temperature_c"] = {"before": temps_before,
                                        "after": device_info.gpu_temperatures()}
        return out

    def save() -> None:
        prof = _build(run, info, runtime_info, samples, planned, started,
                      state["complete"], extra())
        if prof is not None:
            prof.save(run.out)
            state["saved"] = True

    def record(prog: OpProgram, m: Measurement) -> None:
        p = by_key[prog.key]
        samples.append(Sample(op=p.op, config=dict(p.config), median_ms=m.median_ms,
                              iqr_ms=m.iqr_ms, repeats=m.repeats, raw_ms=tuple(m.raw_ms),
                              unstable=m.unstable))
        bar.advance(task)

    def over_budget() -> bool:
        # The budget applies once a valid profile is on disk, so the first batch (the
        # roofline phase every profile needs) always runs, even when planning alone
        # took longer than the budget.
        return (run.budget_s is not None and state["saved"]
                and time.time() - started > run.budget_s)

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  disable=not run.progress, transient=False) as bar:
        task = bar.add_task("profiling", total=len(todo) + n_adaptive_left)
        try:
            finished = _measure_in_batches(todo, run.seed, runtime, timing, record, save,
                                           over_budget, run.log)
            if finished and n_adaptive_left > 0:
                extra_plan = microbench.adaptive_plan(samples, n_adaptive_left, seed=run.seed)
                extra_plan = [p for p in extra_plan if p.key not in {s.key for s in samples}]
                by_key.update({p.key: p for p in extra_plan})
                finished = _measure_in_batches(extra_plan, run.seed + 7919, runtime, timing,
                                               record, save, over_budget, run.log)
            if finished and not calibration.get("models"):
                if over_budget():
                    finished = False
                else:
                    calibration["models"] = _calibrate(run, runtime, runtime_info["name"], bar)
            state["complete"] = finished
        except KeyboardInterrupt:
            save()
            run.log(f"interrupted: {len(samples)} samples kept in {run.out}; continue with --resume")
            raise
    save()
    if not state["saved"]:
        raise ProfileError(
            f"{run.out}: nothing could be saved: the measured samples lack the roofline "
            f"phase (a large elementwise op and one op per compute class) that every "
            f"profile needs; run `latency-lab profile` again without --resume.")
    prof = DeviceProfile.load(run.out)
    return prof
