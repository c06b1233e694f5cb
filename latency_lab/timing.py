"""The one measurement harness: every figure in latency-lab (microbenchmarks, lookup-table
samples, whole-model latency) is timed by `measure`, so they are all comparable.

The recipe: warm-up calls (JIT compilation, allocator and cache warm-up happen there),
then several repeats, each timing an inner loop calibrated to last at least
`min_time_s` (throughput-style figures, e.g. a training step) or a fixed number of calls
(`calls_per_repeat`; `TimingConfig.latency()` times single calls). Every measurement
keeps its raw repeats and reports the median and interquartile range (the typical time
on the host as loaded while we measured, and its spread) and the minimum (`min_ms`).

The minimum of single calls is the latency figure that profiles store, predictors fit
and `validate`, `measure` and `shrink` compare: the time of the work when nothing else
on the host interferes, a property of device and model. On a shared host interference
only ever adds time, in bursts shorter than a 50-100 ms window of calls, so medians and
even the fastest window follow the load of the moment while the fastest single call
over repeats spread across minutes does not (measured on a 2-vCPU cloud VM: two full
profiles back to back differ per sample by 8-10 % in their medians and 2-3 % in their
minima; a 0.4 ms network's fastest 0.1 s window wandered 0.43-0.53 ms over a minute,
its fastest single call 0.396-0.397 ms; scripts/profile_repeatability.py).

`unstable` flags a figure that did not reproduce: for latency timing, when no second
group of repeats (the other half of a run; another pass, when passes are pooled) came
within `spread_tolerance` of the fastest call; for calibrated loops, when
IQR / median does (then the whole repeat set is retried first).

Pure Python and numpy only: no TensorFlow import here, so timing can be used (and
tested) without any runtime installed.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np

from latency_lab.errors import InvalidArgumentError, MeasurementError, ProfileError

__all__ = ["TimingConfig", "Measurement", "measure", "measure_interleaved", "summarize",
           "pool_passes", "Pooled", "min_disagreement", "concat"]


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(
            f"TimingConfig.{name} must be an integer >= {minimum}, got {value!r} "
            f"({type(value).__name__}); pass a whole number."
        )
    if value < minimum:
        raise InvalidArgumentError(f"TimingConfig.{name} must be >= {minimum}, got {value}.")


def _check_positive_float(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgumentError(
            f"TimingConfig.{name} must be a positive finite number, got {value!r} "
            f"({type(value).__name__})."
        )
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"TimingConfig.{name} must be a positive finite number, got {value!r}.")


@dataclass(frozen=True)
class TimingConfig:
    """How hard to try for a stable figure.

    The defaults suit a shared 2-core machine: 50 ms per repeat is long enough to swamp
    timer resolution and scheduler ticks, 7 repeats give a meaningful IQR, and a 10 %
    spread is the point past which a figure is not worth putting into a latency model.
    """

    warmup_runs: int = 2
    min_time_s: float = 0.05
    repeats: int = 7
    max_inner_loops: int = 10_000
    spread_tolerance: float = 0.10
    max_retries: int = 2
    calls_per_repeat: int | None = None  # None: calibrated to min_time_s
    # Untimed calls before each interleaved repeat (measure_interleaved). One call is
    # not enough for an op whose weights live in L3: on the EPYC VM a 6 MB matvec timed
    # after one re-warm call ran at 0.15-0.16 ms, after four at 0.124 ms, back to back
    # 0.120 ms; compute-bound ops are the same either way.
    rewarm_calls: int = 1

    def __post_init__(self):
        _check_int("warmup_runs", self.warmup_runs, 0)
        _check_positive_float("min_time_s", self.min_time_s)
        _check_int("repeats", self.repeats, 3)  # an IQR over fewer than 3 values is meaningless
        _check_int("max_inner_loops", self.max_inner_loops, 1)
        _check_positive_float("spread_tolerance", self.spread_tolerance)
        _check_int("max_retries", self.max_retries, 0)
        if self.calls_per_repeat is not None:
            _check_int("calls_per_repeat", self.calls_per_repeat, 1)
        _check_int("rewarm_calls", self.rewarm_calls, 1)

    @classmethod
    def quick(cls) -> "TimingConfig":
        """Cheaper settings for large sweeps and smoke runs: coarser, still median/IQR."""
        return cls(warmup_runs=1, min_time_s=0.01, repeats=5, spread_tolerance=0.10, max_retries=1)

    @classmethod
    def latency(cls, repeats: int = 20, warmup_runs: int = 2,
                rewarm_calls: int = 3) -> "TimingConfig":
        """Latency timing: every repeat times one call, and the figure is the fastest
        (why: module docstring). The clock's cost (~0.1 us a read) is far below the
        runtime's own per-call cost. Interleaved, each timed call follows
        `rewarm_calls` untimed ones, so it sees the steady state of back-to-back calls
        (what a deployed model that runs repeatedly sees), not the caches left by the
        other functions."""
        return cls(warmup_runs=warmup_runs, repeats=repeats, max_retries=0, calls_per_repeat=1,
                   rewarm_calls=rewarm_calls)

    def get_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "TimingConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InvalidArgumentError(
                f"Unknown TimingConfig field(s) {unknown}; expected a subset of {sorted(known)}."
            )
        return cls(**config)


@dataclass
class Measurement:
    """The figure for one timed thing. Times are seconds per call; `raw_s` keeps every
    repeat of the kept attempt so profiles can store samples rather than only summaries."""

    median_s: float
    iqr_s: float
    raw_s: list[float] = field(default_factory=list)
    inner_loops: int = 1
    repeats: int = 0
    retries: int = 0
    unstable: bool = False

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3

    @property
    def min_s(self) -> float:
        """Fastest repeat: the latency figure (module docstring); the median without raw
        values."""
        return min(self.raw_s) if self.raw_s else self.median_s

    @property
    def min_ms(self) -> float:
        return self.min_s * 1e3

    @property
    def iqr_ms(self) -> float:
        return self.iqr_s * 1e3

    @property
    def raw_ms(self) -> list[float]:
        return [v * 1e3 for v in self.raw_s]

    @property
    def spread(self) -> float:
        """IQR / median: the relative noise of the figure (0 when the median is 0)."""
        return self.iqr_s / self.median_s if self.median_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "median_ms": float(self.median_ms),
            "iqr_ms": float(self.iqr_ms),
            "min_ms": float(self.min_ms),
            "raw_ms": [float(v) for v in self.raw_ms],
            "inner_loops": int(self.inner_loops),
            "repeats": int(self.repeats),
            "retries": int(self.retries),
            "unstable": bool(self.unstable),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Measurement":
        if not isinstance(d, dict):
            raise ProfileError(
                f"A stored measurement must be a JSON object with 'median_ms' and 'iqr_ms', "
                f"got {type(d).__name__}; re-run the measurement or fix the profile file."
            )
        missing = [k for k in ("median_ms", "iqr_ms") if k not in d]
        if missing:
            raise ProfileError(
                f"Stored measurement is missing {missing} (has {sorted(d)}); expected the keys "
                f"written by Measurement.to_dict(). Re-run the measurement or fix the profile file."
            )
        try:
            raw_ms = [float(v) for v in d.get("raw_ms", [])]
            return cls(
                median_s=float(d["median_ms"]) / 1e3,
                iqr_s=float(d["iqr_ms"]) / 1e3,
                raw_s=[v / 1e3 for v in raw_ms],
                inner_loops=int(d.get("inner_loops", 1)),
                repeats=int(d.get("repeats", len(raw_ms))),
                retries=int(d.get("retries", 0)),
                unstable=bool(d.get("unstable", False)),
            )
        except (TypeError, ValueError) as exc:
            raise ProfileError(
                f"Stored measurement has a non-numeric field ({exc}); expected numbers for "
                f"median_ms, iqr_ms, raw_ms, inner_loops, repeats, retries. Fix the profile file."
            ) from exc


def summarize(values: Iterable[float]) -> tuple[float, float]:
    """(median, IQR) of `values`: the robust centre and spread used for every figure."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise InvalidArgumentError("summarize() needs at least one value, got an empty sequence.")
    q25, q50, q75 = np.percentile(arr, [25, 50, 75])
    return float(q50), float(q75 - q25)


def min_disagreement(groups: Iterable[Sequence[float]]) -> float:
    """How far the second-fastest group's fastest value is from the fastest one's,
    relative: 0 when some other group of repeats (the other half of a run, another
    pass) reproduced the minimum; 0 with fewer than two non-empty groups."""
    lows = sorted(min(g) for g in groups if len(g))
    if len(lows) < 2 or lows[0] <= 0:
        return 0.0
    return (lows[1] - lows[0]) / lows[0]


def _halves(raw: Sequence[float]) -> list[Sequence[float]]:
    half = len(raw) // 2
    return [raw[:half], raw[half:]]


def _unstable(raw: Sequence[float], median: float, iqr: float, config: TimingConfig) -> bool:
    if config.calls_per_repeat is not None:  # latency timing: did the fastest reproduce?
        return min_disagreement(_halves(raw)) > config.spread_tolerance
    return iqr / median > config.spread_tolerance


def concat(parts: Sequence[Measurement], spread_tolerance: float = 0.10) -> Measurement:
    """One Measurement from several back-to-back measurements of the same function
    (raw values in order; unstable when the parts' fastest calls disagree)."""
    if not parts:
        raise InvalidArgumentError("concat() needs at least one measurement")
    raw = [v for m in parts for v in m.raw_s]
    median, iqr = summarize(raw)
    return Measurement(median_s=median, iqr_s=iqr, raw_s=raw, inner_loops=parts[0].inner_loops,
                       repeats=len(raw), retries=0,
                       unstable=min_disagreement([m.raw_s for m in parts]) > spread_tolerance)


class Pooled(NamedTuple):
    """One thing's figures over the repeats of several passes (units as given)."""

    median: float
    iqr: float
    min: float
    raw: tuple[float, ...]
    unstable: bool


def pool_passes(raw_by_pass: Iterable[Iterable[float]], spread_tolerance: float = 0.10,
                ) -> Pooled:
    """Median, IQR, minimum, pooled raw values and `unstable` of one thing timed in
    several passes taken minutes apart. The figures are over every pass's repeats, so a
    pass caught in one of a shared host's slow spells moves them less than one block of
    repeats would, and the minimum gets as many chances to catch a quiet moment as there
    are repeats; unstable when the passes' fastest values disagree by more than
    `spread_tolerance` (`min_disagreement`). Unit-free: seconds or ms."""
    groups = [tuple(float(v) for v in values) for values in raw_by_pass]
    raw = tuple(v for g in groups for v in g)
    median, iqr = summarize(raw)
    return Pooled(median, iqr, min(raw), raw, bool(min_disagreement(groups) > spread_tolerance))


_CLOCK_HINT = (
    "The clock's resolution is too coarse for this function; pass a finer clock "
    "(time.perf_counter), raise TimingConfig.max_inner_loops, or time a larger unit of work."
)


class _Runner:
    """Calls fn (and sync) with errors turned into MeasurementError naming the phase."""

    def __init__(self, fn, sync, clock):
        self.fn, self.sync, self.clock = fn, sync, clock

    def call(self, n: int, phase: str) -> None:
        fn = self.fn
        for i in range(n):
            try:
                fn()
            except Exception as exc:
                raise MeasurementError(
                    f"The function being timed raised {type(exc).__name__} on call {i + 1} of "
                    f"{n} during {phase}: {exc}. Fix the function (or its inputs) so that it "
                    f"runs on its own before timing it."
                ) from exc

    def do_sync(self, phase: str) -> None:
        if self.sync is None:
            return
        try:
            self.sync()
        except Exception as exc:
            raise MeasurementError(
                f"The sync function raised {type(exc).__name__} during {phase}: {exc}. It must "
                f"wait for queued device work and take no arguments."
            ) from exc

    def timed(self, n: int, phase: str) -> float:
        t0 = self.clock()
        self.call(n, phase)
        self.do_sync(phase)  # the device must be idle before we read the clock
        elapsed = self.clock() - t0
        if elapsed < 0:
            raise MeasurementError(
                f"The clock went backwards during {phase} ({elapsed!r} s for {n} calls); "
                f"expected a monotonic clock. Use time.perf_counter (the default)."
            )
        return elapsed


def _calibrate(runner: _Runner, config: TimingConfig) -> int:
    """Smallest inner-loop count whose timing reaches min_time_s (capped at max_inner_loops).

    Starts at 1 and jumps to the count the last timing predicts, so a slow function costs
    one or two calibration rounds rather than a long doubling ladder.
    """
    n = 1
    while True:
        elapsed = runner.timed(n, f"inner-loop calibration ({n} calls)")
        if elapsed >= config.min_time_s:
            return n
        if n >= config.max_inner_loops:
            if elapsed <= 0:
                raise MeasurementError(
                    f"The clock measured 0 s for {n} calls (TimingConfig.max_inner_loops); "
                    f"cannot time a function faster than the clock's resolution. {_CLOCK_HINT}"
                )
            return n  # fast function: accept the cap, repeats are still > 0 s
        if elapsed <= 0:
            target = n * 2  # below the clock's resolution: nothing to extrapolate from
        else:
            predicted = math.ceil(config.min_time_s * n / elapsed)
            # Cap the jump: a very short timing is dominated by clock granularity.
            target = max(n + 1, min(predicted, n * 100))
        n = min(target, config.max_inner_loops)


def _prepare(runner: _Runner, config: TimingConfig, inner_loops, where: str) -> int:
    """Warm-up, then the inner-loop count: calibrated, or the given one (checked)."""
    if config.warmup_runs:
        runner.call(config.warmup_runs, "warm-up")
        runner.do_sync("warm-up")
    if inner_loops is None:
        if config.calls_per_repeat is not None:
            return config.calls_per_repeat
        return _calibrate(runner, config)
    if isinstance(inner_loops, bool) or not isinstance(inner_loops, (int, np.integer)) \
            or inner_loops < 1:
        raise InvalidArgumentError(f"{where}(inner_loops=...) must be a whole number >= 1 or None, "
                         f"got {inner_loops!r}.")
    return int(inner_loops)


def _checked_summary(raw: list[float], n: int, config: TimingConfig) -> tuple[float, float]:
    """(median, IQR) of per-call times; an error when the clock did not advance."""
    median, iqr = summarize(raw)
    if median <= 0:
        raise MeasurementError(
            f"The median time per call was {median!r} s over {config.repeats} repeats of "
            f"{n} calls; the clock did not advance. {_CLOCK_HINT}"
        )
    return median, iqr


def measure(
    fn: Callable[[], object],
    config: TimingConfig | None = None,
    *,
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], object] | None = None,
    inner_loops: int | None = None,
) -> Measurement:
    """Time `fn()` (seconds per call) with warm-up, a calibrated inner loop and repeats.

    `sync` is called after each batch of calls and before reading the clock; pass the
    runtime's "wait for the device" function for asynchronous backends (GPU), or the
    figure would be the time to enqueue work, not to do it. `clock` is injectable so
    tests can drive the harness deterministically. `inner_loops` skips the inner-loop
    calibration (pass the count an earlier measurement of the same thing found).
    """
    config = config or TimingConfig()
    if not callable(fn):
        raise MeasurementError(
            f"measure() needs a callable taking no arguments, got {type(fn).__name__}; "
            f"wrap the work in a lambda or functools.partial."
        )
    runner = _Runner(fn, sync, clock)
    n = _prepare(runner, config, inner_loops, "measure")

    best: tuple[float, list[float], float, float] | None = None  # (spread, raw, median, iqr)
    attempts = 0
    for attempt in range(config.max_retries + 1):
        attempts = attempt + 1
        raw = [
            runner.timed(n, f"timed repeat {r + 1} of {config.repeats} (attempt {attempts})") / n
            for r in range(config.repeats)
        ]
        median, iqr = _checked_summary(raw, n, config)
        spread = iqr / median
        if best is None or spread < best[0]:
            best = (spread, raw, median, iqr)
        if not _unstable(raw, median, iqr, config):
            break

    spread, raw, median, iqr = best
    return Measurement(
        median_s=median,
        iqr_s=iqr,
        raw_s=[float(v) for v in raw],
        inner_loops=n,
        repeats=config.repeats,
        retries=attempts - 1,
        unstable=_unstable(raw, median, iqr, config),
    )


def measure_interleaved(
    fns: Sequence[Callable[[], object]],
    config: TimingConfig | None = None,
    *,
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], object] | None = None,
    inner_loops: Sequence[int | None] | None = None,
) -> list[Measurement]:
    """Time several functions with their repeats interleaved: after each one's warm-up
    and inner-loop calibration (as in `measure`), round r times every function once.

    Why: on a shared host the speed wanders by 10-15 % from one second to the next,
    while the repeats of one `measure` call sit inside a fraction of a second, so its
    median is the speed of that moment. Interleaved, one function's repeats are spread
    over the time all of them take, and its median averages over as many of the host's
    moments. Each timed repeat follows `config.rewarm_calls` untimed calls, so the
    function's data is as warm as in `measure` although other functions ran in
    between. No retries: the spread across the rounds is what `unstable` reports.
    """
    config = config or TimingConfig()
    fns = list(fns)
    for i, fn in enumerate(fns):
        if not callable(fn):
            raise MeasurementError(
                f"measure_interleaved() needs callables taking no arguments; item {i} is a "
                f"{type(fn).__name__}. Wrap the work in a lambda or functools.partial.")
    given = list(inner_loops) if inner_loops is not None else [None] * len(fns)
    if len(given) != len(fns):
        raise InvalidArgumentError(f"inner_loops has {len(given)} entries for {len(fns)} functions; "
                         "pass one count (or None) per function.")
    runners = [_Runner(fn, sync, clock) for fn in fns]
    counts = [_prepare(runner, config, n, "measure_interleaved")
              for runner, n in zip(runners, given)]
    raw: list[list[float]] = [[] for _ in fns]
    for r in range(config.repeats):
        for i, (runner, n) in enumerate(zip(runners, counts)):
            runner.call(config.rewarm_calls, f"re-warm before repeat {r + 1}")
            runner.do_sync(f"re-warm before repeat {r + 1}")
            raw[i].append(runner.timed(n, f"interleaved repeat {r + 1} of {config.repeats}") / n)
    out = []
    for values, n in zip(raw, counts):
        median, iqr = _checked_summary(values, n, config)
        out.append(Measurement(median_s=median, iqr_s=iqr, raw_s=[float(v) for v in values],
                               inner_loops=n, repeats=config.repeats, retries=0,
                               unstable=_unstable(values, median, iqr, config)))
    return out
