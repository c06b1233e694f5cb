"""`latency-lab profile`: run the microbenchmark plan on a runtime and write a device
profile. Saves atomically after every batch of samples, so an interrupted run (Ctrl-C,
--budget, a crash) keeps what it measured and `--resume` continues without
re-measuring anything."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from latency_lab import device_info
from latency_lab.bench import calibration, ceilings, plans
from latency_lab.convert.pool import ConversionPool
from latency_lab.errors import LatencyLabError, ProfileError, ProfileInterrupted
from latency_lab.predictors import samples_xy, with_fitted_lookup
from latency_lab.profile import DeviceProfile, Sample, sample_key, unstable_count
from latency_lab.runtimes import get as get_runtime
from latency_lab.runtimes.base import PlannedProgram, Program
from latency_lab.timing import Measurement, TimingConfig, pool_passes

__all__ = ["ProfileRun", "CHUNK", "run_profile", "sample_timing", "calibration_timing",
           "op_programs", "check_out_path", "resume_command", "caught_signals",
           "pooled_sample", "profile_timing", "measure_kernels"]


@dataclass
class ProfileRun:
    out: Path
    runtime: str = "litert"
    threads: int = 1
    device: str = "cpu"
    quick: bool = False
    budget_s: float | None = None
    resume: bool = False
    # False: an existing `out` is refused unless `resume` (what `latency-lab profile`
    # does without --overwrite). True keeps the library's old behaviour for scripts.
    overwrite: bool = True
    # When the budget clock starts (time.time()); None: when run_profile is called.
    # The CLI passes the start of the command, so --budget is wall time from there.
    started_at: float | None = None
    # Catch SIGINT/SIGTERM (main thread only): stop between batches, save, and raise
    # ProfileInterrupted instead of a KeyboardInterrupt that TensorFlow may swallow.
    catch_signals: bool = True
    seed: int = 0
    timing: TimingConfig | None = None
    max_table_samples: int | None = None
    adaptive_samples: int | None = None
    passes: int | None = None  # None: 3 for a full profile, 1 for --quick
    # Processes that convert programs (and build the planned families) before they are
    # timed, when the runtime converts (LiteRT); None: one per core (`convert.pool`).
    convert_workers: int | None = None
    log: Callable[[str], None] = print
    progress: bool = True
    measured: list[Sample] = field(default_factory=list)


def _passes(run: ProfileRun) -> int:
    if run.passes is not None:
        return run.passes
    return 1 if run.quick else 3


def sample_timing(run: ProfileRun) -> TimingConfig:
    """Timing of one pass over a sample. With several passes each pass is short and
    never retried: the later passes are the retries, taken minutes apart."""
    if run.timing is not None:
        return run.timing
    if run.quick:
        return TimingConfig.latency(repeats=30, warmup_runs=1)
    if _passes(run) > 1:
        return TimingConfig.latency(repeats=20, warmup_runs=1)
    return TimingConfig.latency(repeats=60)


def _passes_done(raw_ms, timing: TimingConfig) -> int:
    """Each pass adds `timing.repeats` raw values to a sample."""
    return len(raw_ms) // timing.repeats


def _by_pass(raw_ms, timing: TimingConfig) -> list:
    """A sample's stored raw values, split back into its passes."""
    n = timing.repeats
    return [raw_ms[i:i + n] for i in range(0, len(raw_ms), n)]


def _existing(run: ProfileRun, runtime_info: dict,
              fingerprint: str) -> tuple[list[Sample], dict, float]:
    """Samples, calibration and measuring seconds of the profile being resumed (empty
    when not resuming)."""
    if not run.resume:
        return [], {}, 0.0
    if not run.out.exists():
        run.log(f"--resume: {run.out} does not exist yet; starting a new profile")
        return [], {}, 0.0
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
    # The time already spent counts toward the resumed profile's elapsed_s.
    return (list(old.samples), dict(old.calibration or {}),
            float((old.progress or {}).get("elapsed_s") or 0.0))


def _build(run: ProfileRun, info: dict, runtime_info: dict, samples: list[Sample],
           planned: int, elapsed_s: float, complete: bool, extra: dict) -> DeviceProfile | None:
    try:
        roofline = ceilings.ceilings_from_samples(samples)
    except ProfileError:
        return None  # the roofline phase has not finished: nothing useful to save yet
    return DeviceProfile.create(
        device={"kind": run.device if run.device != "cpu" else "cpu", "name": info["name"],
                "fingerprint": info["fingerprint"], "info": info},
        runtime=runtime_info,
        provenance={"kind": "measured", "sources": [],
                    "notes": f"latency-lab profile ({'quick' if run.quick else 'full'} plan, seed {run.seed})"},
        roofline=roofline,
        overhead=ceilings.overhead_from_samples(samples),
        samples=samples,
        calibration=extra,
        progress={"complete": complete, "planned": max(planned, len(samples)),
                  "done": len(samples), "elapsed_s": round(elapsed_s, 2)},
    )


def op_programs(plan: list[plans.PlannedSample], seed: int) -> list[PlannedProgram]:
    """The microbenchmark program of each planned sample (its op kind's `build`, run
    when a runtime first needs the program; its weights are seeded by (seed, key))."""
    return [PlannedProgram(s.key, s.op, s.config, seed) for s in plan]


def calibration_timing(run: ProfileRun) -> TimingConfig:
    # Whole networks are cheap to call and their fastest call moves most with the
    # host's memory traffic (a tenth of a second per pass covers few quiet moments).
    if _passes(run) > 1:
        return TimingConfig.latency(repeats=50)
    return TimingConfig.latency(repeats=100, warmup_runs=3)


class _CalibrationNetworks:
    """The calibration networks, measured whole once per pass so predictors can learn
    what isolated op timings miss inside a network; their kernels are stored so
    predictors can be refit from the profile alone. Built (and converted) once."""

    def __init__(self, run: ProfileRun, runtime, runtime_name: str, entries: list[dict]):
        self.run, self.runtime, self.runtime_name = run, runtime, runtime_name
        self.timing = calibration_timing(run)
        self.entries = {e["name"]: e for e in entries}
        self._models: list | None = None
        self._items: dict[str, list] = {}

    def prepare(self) -> Iterator[str]:
        """Build the networks and read their kernels (converting them: the conversion
        is cached by model, so timing them later converts nothing), yielding each
        network's label when it is done. The profiler steps through it while its
        workers convert the first waves of programs, before any timing."""
        if not any(self.todo(i) for i in range(1, _passes(self.run) + 1)):
            return
        for label, model in self._networks():
            if label not in self.entries:
                self._kernels(label, model)
                yield label

    def _kernels(self, label: str, model) -> list:
        """The network's work items as stored in a profile, read once."""
        from latency_lab.kernels import work_items

        if label not in self._items:
            self._items[label] = [i.to_dict() for i in work_items(
                model, self.runtime_name, backend=getattr(self.runtime, "backend", None))]
        return self._items[label]

    def todo(self, pass_index: int) -> int:
        """How many networks still need measuring in pass `pass_index` (1-based)."""
        return sum(1 for label in calibration.calibration_labels(self.run.quick)
                   if self._passes(self.entries.get(label)) < pass_index)

    def _passes(self, entry: dict | None) -> int:
        if entry is None:
            return 0
        # Profiles from before multi-pass timing stored one measurement per network.
        return _passes_done(entry.get("raw_ms") or [entry["measured_ms"]] * self.timing.repeats,
                            self.timing)

    def _networks(self) -> list:
        """(label, model) of every calibration network, built once."""
        if self._models is None:
            self._models = list(calibration.calibration_models(self.run.quick))
        return self._models

    def measure_pass(self, pass_index: int, on_network: Callable[[], None]) -> None:
        todo = [(label, model) for label, model in self._networks()
                if self._passes(self.entries.get(label)) < pass_index]
        if not todo:
            return
        # Interleaved like everything else compared in a profile (measure_models).
        measured = self.runtime.measure_models([model for _, model in todo], self.timing)
        for (label, model), m in zip(todo, measured):
            old = self.entries.get(label)
            pooled = pool_passes(_by_pass(old.get("raw_ms", []) if old else [], self.timing)
                                 + [m.raw_ms], self.timing.spread_tolerance)
            items = old["items"] if old else self._kernels(label, model)
            # measured_ms is the latency figure (fastest repeat, see latency_lab.timing).
            self.entries[label] = {"name": label, "measured_ms": pooled.min,
                                   "median_ms": pooled.median, "iqr_ms": pooled.iqr,
                                   "raw_ms": list(pooled.raw), "items": items}
            on_network()

    def to_list(self) -> list[dict]:
        return list(self.entries.values())


def check_out_path(out, *, resume: bool = False, overwrite: bool = False) -> None:
    """Fail before measuring anything when `out` cannot be written or must not be.

    Refused: a directory, a missing or unwritable parent directory, an existing file
    unless `resume` (continue it) or `overwrite` (replace it) is given, and an existing
    read-only file in every case (the atomic save's `os.replace` needs only the
    directory's permission, so the file's own is checked here)."""
    out = Path(out)
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
    if not out.exists():
        return
    mode = out.stat().st_mode
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(out, os.W_OK):
        raise ProfileError(
            f"{out}: the file exists and is read-only; it is left as it is. Make it writable "
            f"(chmod u+w {out}) to {'continue' if resume else 'replace'} it, or choose "
            f"another --out path.")
    if not (resume or overwrite):
        raise ProfileError(
            f"{out}: the file already exists; pass --resume to continue that profile, "
            f"--overwrite to replace it, or choose another --out path.")


def resume_command(run: ProfileRun) -> str:
    """The command line that continues `run` (same runtime, threads, device, plan)."""
    parts = ["latency-lab profile --resume --out", str(run.out)]
    if run.quick:
        parts.append("--quick")
    if run.runtime != "litert":
        parts.append(f"--runtime {run.runtime}")
    if run.threads != 1:
        parts.append(f"--threads {run.threads}")
    if run.device != "cpu":
        parts.append(f"--device {run.device}")
    if run.seed:
        parts.append(f"--seed {run.seed}")
    return " ".join(parts)


@contextlib.contextmanager
def caught_signals(flag: dict, enabled: bool = True):
    """While active, SIGINT and SIGTERM set flag["signal"] (checked by the loop between
    batches) instead of raising; a second one raises KeyboardInterrupt at once. The
    previous handlers are restored on exit. Outside the main thread, a no-op."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if flag.get("signal") is not None:
            raise KeyboardInterrupt
        flag["signal"] = signum
        # Not the log callback: that may be a rich console in the middle of drawing.
        os.write(2, b"\ninterrupt received: stopping after the batch being measured and "
                    b"saving what was measured (interrupt again to stop at once)\n")

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not settable here
            pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


CHUNK = 24  # samples measured together (interleaved repeats); saved after each chunk
# A full profile saved after each of its 136 batches spent 69 s of 753 s writing
# (cProfile, 2-core EPYC VM); every 20 s it writes about 30 times.
SAVE_INTERVAL_S = 20.0


def _chunks(items: list, size: int = CHUNK) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


# Chunks whose programs are converted together (in the pool's workers), then timed:
# about 25 s of converting on 2 cores, so --budget and Ctrl-C are still heard often.
WAVE_CHUNKS = 10
# Waves kept queued in the workers while this process does its own work between
# timing (`while_converting`), so they never wait on it.
WAVES_QUEUED = 2


def _measure_in_batches(chunks, seed, runtime, timing, record, save, stop_reason,
                        pool: ConversionPool | None = None,
                        while_converting: Iterable | None = None) -> str | None:
    """Measure each chunk of samples, saving after each; the reason it stopped early
    ("signal", "budget") or None. `seed` fixes the programs' random weights. With a
    `pool` (and a runtime that converts), each wave of WAVE_CHUNKS chunks is converted
    in the pool's workers first, and timed only when every conversion submitted is
    done. `while_converting` is this process's own work meanwhile, as steps (an
    iterator): between steps, further waves are submitted, so the workers keep
    WAVES_QUEUED waves to convert until the work is done."""
    waves = [[op_programs(chunk, seed) for _, chunk in chunks[start:start + WAVE_CHUNKS]]
             for start in range(0, len(chunks), WAVE_CHUNKS)]
    converting = pool is not None and hasattr(runtime, "convert_ahead")
    submitted: list = []  # PendingConversions not waited for yet

    def submit(index: int) -> None:
        if index < len(waves):
            submitted.append(runtime.convert_ahead(
                [p for programs in waves[index] for p in programs], pool))

    next_wave = 0
    if converting and waves:
        reason = stop_reason()
        if reason:
            return reason
        submit(0)
        next_wave = 1
        for _ in while_converting or ():
            while next_wave < len(waves) and sum(not s.done() for s in submitted) < WAVES_QUEUED:
                submit(next_wave)
                next_wave += 1
    for index, wave in enumerate(waves):
        reason = stop_reason()
        if reason:
            return reason
        if converting:
            if index >= next_wave:
                submit(index)
                next_wave = index + 1
            for pending in submitted:
                pending.wait()
            submitted.clear()
        for programs in wave:
            reason = stop_reason()
            if reason:
                return reason
            runtime.measure_ops(programs, timing, record)
            save()
    return None


def pooled_sample(op: str, config: dict, old: Sample | None, m: Measurement,
                  timing: TimingConfig) -> Sample:
    """The sample of (op, config) after one more pass `m`, pooled with the passes
    already stored in `old` (None: the first pass)."""
    if old is None:
        median, iqr, raw, unstable = m.median_ms, m.iqr_ms, tuple(m.raw_ms), m.unstable
    else:
        pooled = pool_passes(_by_pass(old.raw_ms, timing) + [m.raw_ms],
                             timing.spread_tolerance)
        median, iqr, raw, unstable = pooled.median, pooled.iqr, pooled.raw, pooled.unstable
    return Sample(op=op, config=dict(config), median_ms=median, iqr_ms=iqr,
                  repeats=len(raw), raw_ms=raw, unstable=unstable)


def profile_timing(profile: DeviceProfile) -> tuple[TimingConfig, int]:
    """(timing of one pass, passes) the profile's samples were measured with, so that
    samples added later are figures of the same kind. A profile that did not record
    them gets what a full `latency-lab profile` run uses."""
    stored = (profile.calibration or {}).get("timing")
    passes = (profile.calibration or {}).get("passes")
    if not isinstance(passes, int) or isinstance(passes, bool) or passes < 1:
        passes = _passes(ProfileRun(out=Path(profile.source)))
    default = sample_timing(ProfileRun(out=Path(profile.source), passes=passes))
    if not isinstance(stored, dict):
        return default, passes
    known = {k: stored[k] for k in ("min_time_s", "repeats", "calls_per_repeat",
                                    "rewarm_calls", "spread_tolerance") if k in stored}
    try:
        return dataclasses.replace(default, **known), passes
    except LatencyLabError as exc:
        raise ProfileError(f"{profile.source}: field 'calibration.timing' is not a timing "
                           f"configuration ({exc}); remove it to use the defaults.") from None


def measure_kernels(runtime, kernels: list[tuple[str, dict]], timing: TimingConfig,
                    passes: int, *, done: dict[str, Sample] | None = None, seed: int = 0,
                    on_batch: Callable[[dict[str, Sample]], None] | None = None,
                    stop_reason: Callable[[], str | None] = lambda: None,
                    pool: ConversionPool | None = None,
                    ) -> tuple[dict[str, Sample], str | None]:
    """Time (op, config) kernels alone, as profile samples are timed: the op kind's
    microbenchmark program, in chunks, `passes` passes pooled into one sample. Each
    chunk gets all its passes before `on_batch(samples)` (save there: what it is given
    is always whole samples, so an interrupt keeps them and a rerun skips them).
    `done` ({key: Sample}) holds samples not to measure again. With a `pool`, programs
    are converted in its workers, WAVE_CHUNKS chunks at a time, before they are timed.
    Returns ({key: Sample} of every kernel measured, done ones included; why it
    stopped early or None)."""
    samples: dict[str, Sample] = dict(done or {})
    todo = [p for key, p in {sample_key(op, cfg): plans.PlannedSample(op, dict(cfg), "extend")
                             for op, cfg in kernels}.items() if key not in samples]
    by_key = {p.key: p for p in todo}

    def record(prog: Program, m: Measurement) -> None:
        p = by_key[prog.key]
        samples[prog.key] = pooled_sample(p.op, p.config, samples.get(prog.key), m, timing)

    chunks = _chunks(todo)
    for index, chunk in enumerate(chunks):
        reason = stop_reason()
        if reason:
            return samples, reason
        if index % WAVE_CHUNKS == 0 and pool is not None and hasattr(runtime, "convert_ahead"):
            runtime.convert_ahead([p for c in chunks[index:index + WAVE_CHUNKS]
                                   for p in op_programs(c, seed)], pool).wait()
        for _ in range(passes):  # the chunk's composition, and so its conversion, is kept
            _measure_in_batches([(index * CHUNK, chunk)], seed, runtime, timing, record,
                                lambda: None, lambda: None)
        if on_batch is not None:
            on_batch(samples)
    return samples, None


def run_profile(run: ProfileRun) -> DeviceProfile:
    """Measure the plan in `passes` passes. Every pass times every sample (and every
    calibration network) briefly, in a different chunk order, so a sample's figure is
    the median over repeats spread across the whole run: a shared host's slow spells,
    which last seconds to minutes, then move each figure little instead of ruining the
    samples that happened to be measured during them."""
    started = run.started_at if run.started_at is not None else time.time()
    run.out = Path(run.out)
    check_out_path(run.out, resume=run.resume, overwrite=run.overwrite)
    stop: dict = {"signal": None}
    with caught_signals(stop, enabled=run.catch_signals), \
            ConversionPool(run.convert_workers) as pool:
        return _run_profile(run, started, stop, pool)


def _run_profile(run: ProfileRun, started: float, stop: dict,
                 pool: ConversionPool) -> DeviceProfile:
    kind = "gpu" if run.device == "gpu" else "cpu"
    info = device_info.collect(kind)
    runtime = get_runtime(run.runtime, threads=run.threads, device=run.device)
    if not hasattr(runtime, "convert_ahead"):
        pool = None  # a runtime that compiles in-process (keras): nothing to convert ahead
    runtime_info = runtime.info()
    done, old_calibration, elapsed_before_s = _existing(run, runtime_info, info["fingerprint"])
    samples: dict[str, Sample] = {s.key: s for s in done}
    temps_before = device_info.gpu_temperatures() if kind == "gpu" else []
    timing = sample_timing(run)
    passes = _passes(run)
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise ProfileError(f"passes must be a positive integer, got {passes!r}")

    run.log("planning samples from keras.applications layers ...")
    plan = plans.roofline_plan(run.quick) + plans.table_plan(
        run.quick, seed=run.seed, max_samples=run.max_table_samples,
        runtime=runtime_info["name"], pool=pool)
    plan_keys = {p.key for p in plan}
    n_adaptive = run.adaptive_samples if run.adaptive_samples is not None else (0 if run.quick else 100)
    # On --resume, samples outside the plan are adaptive ones already measured.
    adaptive = [plans.PlannedSample(s.op, dict(s.config), "adaptive")
                for s in done if s.key not in plan_keys]
    n_adaptive_left = max(0, n_adaptive - len(adaptive))
    planned = len(plan) + n_adaptive
    run.log(f"{len(plan)} samples planned (+{n_adaptive} adaptive) x {passes} pass(es), "
            f"{len(done)} already measured, runtime {runtime_info['name']} "
            f"{runtime_info['version']} with {runtime.threads} thread(s)")
    by_key = {p.key: p for p in plan + adaptive}
    # "saved": a valid profile is on disk (needs the roofline phase, i.e. the first batch).
    state = {"complete": False, "saved": bool(done), "saved_at": -math.inf}
    calibration: dict = dict(old_calibration)
    networks = _CalibrationNetworks(run, runtime, runtime_info["name"],
                                    list(calibration.get("models") or []))

    def passes_of(key: str) -> int:
        return _passes_done(samples[key].raw_ms, timing) if key in samples else 0

    def extra() -> dict:
        out = {"passes": passes,
               "timing": {"min_time_s": timing.min_time_s, "repeats": timing.repeats,
                          "calls_per_repeat": timing.calls_per_repeat,
                          "rewarm_calls": timing.rewarm_calls,
                          "spread_tolerance": timing.spread_tolerance}}
        out.update(calibration)
        # counted now, after the resumed profile's section: its counts are stale
        out.update(samples=len(samples), unstable_samples=unstable_count(samples.values()))
        if networks.entries:
            out["models"] = networks.to_list()
        if kind == "gpu":
            out["gpu_temperature_c"] = {"before": temps_before,
                                        "after": device_info.gpu_temperatures()}
        return out

    def save(force: bool = False) -> None:
        """Write the profile (atomically); between batches at most every
        SAVE_INTERVAL_S, so an interrupt loses at most that much measuring."""
        if not force and time.time() - state["saved_at"] < SAVE_INTERVAL_S:
            return
        prof = _build(run, info, runtime_info, list(samples.values()), planned,
                      elapsed_before_s + time.time() - started, state["complete"], extra())
        if prof is not None:
            prof.save(run.out)
            state["saved"] = True
            state["saved_at"] = time.time()

    def record(prog: Program, m: Measurement) -> None:
        p = by_key[prog.key]
        samples[prog.key] = pooled_sample(p.op, p.config, samples.get(prog.key), m, timing)
        bar.advance(task)

    def stop_reason() -> str | None:
        """Why to stop before the next batch: "signal" (SIGINT/SIGTERM caught) or
        "budget" (--budget is wall time from the start of the command, the roofline
        batch included), else None."""
        if stop["signal"] is not None:
            return "signal"
        if run.budget_s is not None and time.time() - started > run.budget_s:
            return "budget"
        return None

    def pass_chunks(group: list, pass_index: int) -> list[tuple[int, list]]:
        """(offset, chunk) of `group` still lacking pass `pass_index`; the chunks of the
        first pass, in a new order each later pass."""
        out = []
        for index, chunk in enumerate(_chunks(group)):
            todo = [p for p in chunk if passes_of(p.key) < pass_index]
            if todo:
                out.append((index * CHUNK, todo))
        if pass_index > 1:
            np.random.default_rng(run.seed + pass_index).shuffle(out)
        return out

    def remaining() -> int:
        keys = [p.key for p in plan + adaptive]
        return (sum(max(0, passes - passes_of(k)) for k in keys)
                + n_adaptive_left * passes
                + sum(networks.todo(i) for i in range(1, passes + 1)))

    if stop["signal"] is not None:  # interrupted while starting up or planning
        raise ProfileInterrupted(_interrupted_message(run, stop, len(samples),
                                                      saved=bool(done), measured_now=0))

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    measured_before = len(samples)
    stopped: str | None = None
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  disable=not run.progress, transient=False) as bar:
        task = bar.add_task("profiling", total=remaining())
        try:
            for pass_index in range(1, passes + 1):
                bar.update(task, description=f"profiling (pass {pass_index}/{passes})")
                stopped = _measure_in_batches(
                    pass_chunks(plan, pass_index), run.seed, runtime, timing, record, save,
                    stop_reason, pool, networks.prepare() if pass_index == 1 else None)
                if not stopped and pass_index == 1 and n_adaptive_left > 0:
                    # where the kernel path changes first, then the worst-fitted
                    measured = list(samples.values())
                    extra_plan = plans.path_plan(measured, seed=run.seed)[:n_adaptive_left]
                    extra_plan += plans.adaptive_plan(
                        measured, n_adaptive_left - len(extra_plan), seed=run.seed)
                    extra_plan = [p for p in extra_plan if p.key not in samples]
                    by_key.update({p.key: p for p in extra_plan})
                    adaptive.extend(extra_plan)
                    n_adaptive_left = 0  # before the recount: they are in `adaptive` now
                    # Fewer candidates than asked for: the bar's total shrinks.
                    bar.update(task, total=bar.tasks[0].completed + remaining())
                stopped = stopped or _measure_in_batches(
                    pass_chunks(adaptive, pass_index), run.seed + 7919, runtime, timing,
                    record, save, stop_reason, pool)
                if not stopped and networks.todo(pass_index):
                    stopped = stop_reason()
                    if not stopped:
                        networks.measure_pass(pass_index, lambda: bar.advance(task))
                        save()
                if stopped:
                    break
            # A signal during the last batch still leaves the profile complete.
            state["complete"] = stopped is None
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread
            save(force=True)
            run.log("interrupted: " + _interrupted_message(
                run, stop, len(samples), saved=state["saved"],
                measured_now=len(samples) - measured_before))
            raise
    save(force=True)
    if stopped == "signal" and not state["complete"]:
        raise ProfileInterrupted(_interrupted_message(
            run, stop, len(samples), saved=state["saved"],
            measured_now=len(samples) - measured_before))
    if not state["saved"]:
        if stopped == "budget":
            raise ProfileError(
                f"{run.out}: the --budget of {run.budget_s / 60:g} min ran out "
                f"{time.time() - started:.0f} s after the command started, before the "
                f"first batch (the roofline phase every profile needs) was measured; "
                f"nothing was written. Give a larger --budget or leave it out.")
        raise ProfileError(
            f"{run.out}: nothing could be saved: the measured samples lack the roofline "
            f"phase (a large elementwise op and one op per compute class) that every "
            f"profile needs; run `latency-lab profile` again without --resume.")
    if stopped == "budget":
        run.log(f"budget reached: {len(samples)} samples kept in {run.out}; finish with "
                f"`{resume_command(run)}`")
    prof = DeviceProfile.load(run.out)
    if state["complete"] and samples_xy(prof)[0]:  # the lookup fit, stored for fast loads
        run.log("fitting the lookup models (stored in the profile: later loads skip the fit)")
        prof = with_fitted_lookup(prof, pool=pool)
        prof.save(run.out)
    return prof


def _interrupted_message(run: ProfileRun, stop: dict, kept: int, *, saved: bool,
                         measured_now: int) -> str:
    """What an interrupted run kept, true in each case: samples on disk, samples
    measured but not saveable yet, or nothing measured."""
    sig = stop.get("signal")
    name = signal.Signals(sig).name if sig is not None else "KeyboardInterrupt"
    if measured_now == 0 and kept == 0:
        return (f"{name} before any sample was measured: nothing was measured and no "
                f"file was written to {run.out}.")
    if measured_now == 0:
        return (f"{name} before any new sample was measured: {run.out} is left as it "
                f"was, {kept} samples; finish with `{resume_command(run)}`")
    if saved:
        return (f"{name}: {kept} samples kept in {run.out} ({measured_now} measured in "
                f"this run); finish with `{resume_command(run)}`")
    return (f"{name}: {measured_now} samples were measured, but a profile needs the "
            f"whole first batch (the roofline phase) before it can be saved; no file "
            f"was written to {run.out}. Run the command again.")
