"""Tests for latency_lab.timing, driven by a fake clock so nothing depends on wall time."""

import json
import math

import numpy as np
import pytest

from latency_lab.errors import MeasurementError
from latency_lab.timing import Measurement, TimingConfig, measure, measure_interleaved, summarize


class FakeClock:
    """A clock advanced only by the fake function: each call costs the next scripted
    duration (the last one repeats when the script runs out)."""

    def __init__(self, durations, start=100.0):
        self.t = start
        self.durations = list(durations)
        self.calls = 0

    def clock(self):
        return self.t

    def fn(self):
        d = self.durations[min(self.calls, len(self.durations) - 1)]
        self.calls += 1
        self.t += d


# Binary fractions keep every sum exact, so the expected numbers are exact too.
STEP = 1 / 64  # seconds per call


def test_calibration_reaches_min_time():
    fc = FakeClock([STEP])
    cfg = TimingConfig(warmup_runs=0, min_time_s=4 * STEP, repeats=3, max_retries=0)
    m = measure(fc.fn, cfg, clock=fc.clock)
    assert m.inner_loops == 4  # 1 call takes STEP; jump straight to ceil(4 STEP / STEP)
    assert m.inner_loops * m.median_s >= cfg.min_time_s
    assert m.median_s == STEP and m.iqr_s == 0.0
    assert m.raw_s == [STEP] * 3 and m.repeats == 3 and m.retries == 0 and not m.unstable


def test_given_inner_loops_skip_calibration():
    fc = FakeClock([STEP])
    cfg = TimingConfig(warmup_runs=1, min_time_s=4 * STEP, repeats=3, max_retries=0)
    m = measure(fc.fn, cfg, clock=fc.clock, inner_loops=6)
    assert m.inner_loops == 6 and m.median_s == STEP
    assert fc.calls == 1 + 3 * 6  # warm-up and the repeats, no calibration rounds
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="inner_loops"):
            measure(fc.fn, cfg, clock=fc.clock, inner_loops=bad)


def test_latency_timing_times_single_calls_and_keeps_the_fastest():
    """calls_per_repeat=1: no calibration, one call per repeat; a call slowed by the
    host (the third) moves the median's neighbours, never the minimum."""
    fc = FakeClock([STEP, STEP, 3 * STEP, STEP, 2 * STEP])
    cfg = TimingConfig.latency(repeats=5, warmup_runs=0)
    assert cfg.calls_per_repeat == 1 and cfg.max_retries == 0
    m = measure(fc.fn, cfg, clock=fc.clock)
    assert m.inner_loops == 1 and fc.calls == 5
    assert m.min_s == STEP and m.raw_s == [STEP, STEP, 3 * STEP, STEP, 2 * STEP]
    assert not m.unstable  # both halves of the repeats reach STEP
    # The fastest call did not reproduce: the second half never got below 2 STEP.
    fc = FakeClock([STEP, STEP, 2 * STEP, 2 * STEP])
    assert measure(fc.fn, TimingConfig.latency(repeats=4, warmup_runs=0), clock=fc.clock).unstable
    with pytest.raises(ValueError, match="calls_per_repeat"):
        TimingConfig(calls_per_repeat=0)
    assert TimingConfig.from_config(cfg.get_config()) == cfg


def test_pool_passes_takes_the_median_over_every_pass():
    from latency_lab.timing import pool_passes

    median, iqr, low, raw, unstable = pool_passes([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0],
                                                   [1.0, 1.0, 1.0]])
    assert median == 1.0 and raw == (1.0,) * 3 + (3.0,) * 3 + (1.0,) * 3
    assert iqr == 2.0 and not unstable  # a slow pass; two others agree on the fastest
    # Only one pass reached the fastest figure: it did not reproduce, and that is said.
    assert pool_passes([[1.0, 1.0], [3.0, 3.0], [2.0, 2.0]]).unstable
    pooled = pool_passes([[1.0, 1.02], [0.99, 1.01]])
    assert pooled.unstable is False and pooled.min == 0.99  # the fastest repeat of any pass
    assert pool_passes([[2.0, 5.0], [4.0]]).min == 2.0


def test_min_is_the_fastest_repeat_and_survives_to_dict():
    m = Measurement(median_s=2e-3, iqr_s=1e-4, raw_s=[2.1e-3, 1.8e-3, 2.0e-3])
    assert m.min_ms == pytest.approx(1.8)
    assert m.to_dict()["min_ms"] == pytest.approx(1.8)
    assert Measurement.from_dict(m.to_dict()).min_ms == pytest.approx(1.8)
    # Without raw values (a summary only) the figure falls back to the median.
    assert Measurement(median_s=2e-3, iqr_s=0.0).min_ms == pytest.approx(2.0)


class SharedClock:
    """One fake clock for several functions, each costing its own fixed time; records
    the order in which they run."""

    def __init__(self, costs):
        self.t, self.costs, self.log = 0.0, dict(costs), []

    def clock(self):
        return self.t

    def fn(self, name):
        def call():
            self.log.append(name)
            self.t += self.costs[name]
        return call


def test_interleaved_repeats_alternate_between_functions():
    sc = SharedClock({"a": STEP, "b": 2 * STEP})
    cfg = TimingConfig(warmup_runs=1, min_time_s=4 * STEP, repeats=3, max_retries=0)
    ma, mb = measure_interleaved([sc.fn("a"), sc.fn("b")], cfg, clock=sc.clock)
    assert ma.median_s == STEP and mb.median_s == 2 * STEP
    assert (ma.inner_loops, mb.inner_loops) == (4, 2)
    assert ma.raw_s == [STEP] * 3 and ma.repeats == 3 and not ma.unstable
    # After warm-up and calibration, each round runs a (one re-warm call + 4 timed),
    # then b (1 + 2), three times over.
    rounds = sc.log[-3 * (5 + 3):]
    assert rounds == (["a"] * 5 + ["b"] * 3) * 3


def test_interleaved_rewarm_calls_precede_each_timed_call():
    """latency() timing: each timed call follows `rewarm_calls` untimed calls of the same
    function, and only the timed call counts (a slower re-warm call changes nothing)."""
    calls = {"a": 0}
    t = [0.0]

    def fn():
        calls["a"] += 1
        # every fourth call from the first timed round on is the timed one: cost STEP;
        # the re-warm calls before it cost 5 * STEP
        t[0] += STEP if calls["a"] > 2 and (calls["a"] - 2) % 4 == 0 else 5 * STEP

    cfg = TimingConfig.latency(repeats=3, warmup_runs=2, rewarm_calls=3)
    (m,) = measure_interleaved([fn], cfg, clock=lambda: t[0])
    assert calls["a"] == 2 + 3 * (3 + 1)
    assert m.raw_s == [STEP] * 3
    assert TimingConfig.latency().rewarm_calls == 3 and TimingConfig().rewarm_calls == 1
    with pytest.raises(ValueError, match="rewarm_calls"):
        TimingConfig(rewarm_calls=0)


def test_interleaved_uses_given_inner_loops_and_checks_them():
    sc = SharedClock({"a": STEP, "b": STEP})
    cfg = TimingConfig(warmup_runs=0, min_time_s=4 * STEP, repeats=3, max_retries=0)
    ma, mb = measure_interleaved([sc.fn("a"), sc.fn("b")], cfg, clock=sc.clock,
                                 inner_loops=[7, None])
    assert (ma.inner_loops, mb.inner_loops) == (7, 4)
    with pytest.raises(ValueError, match="inner_loops"):
        measure_interleaved([sc.fn("a")], cfg, clock=sc.clock, inner_loops=[1, 2])
    with pytest.raises(ValueError, match="inner_loops"):
        measure_interleaved([sc.fn("a")], cfg, clock=sc.clock, inner_loops=[0])
    with pytest.raises(MeasurementError, match="item 1"):
        measure_interleaved([sc.fn("a"), 3], cfg, clock=sc.clock)


def test_interleaved_flags_a_function_whose_rounds_disagree():
    t = [0.0]
    costs = iter([STEP] * 3 + [STEP, STEP, 4 * STEP, 4 * STEP, 8 * STEP, 8 * STEP])

    def clock():
        return t[0]

    def fn():
        t[0] += next(costs, 8 * STEP)

    cfg = TimingConfig(warmup_runs=0, min_time_s=STEP, repeats=3, max_retries=0)
    (m,) = measure_interleaved([fn], cfg, clock=clock)
    assert m.unstable and m.retries == 0


def test_calibration_is_capped_by_max_inner_loops():
    fc = FakeClock([STEP])
    cfg = TimingConfig(warmup_runs=0, min_time_s=1000.0, repeats=3, max_inner_loops=8, max_retries=0)
    m = measure(fc.fn, cfg, clock=fc.clock)
    assert m.inner_loops == 8
    assert m.median_s == STEP


def test_calibration_doubles_through_zero_elapsed():
    # The first calls take no measurable time (clock resolution), later ones do.
    fc = FakeClock([0.0, 0.0, 0.0, STEP])
    cfg = TimingConfig(warmup_runs=0, min_time_s=STEP, repeats=3, max_retries=0)
    m = measure(fc.fn, cfg, clock=fc.clock)
    # n=1 (0 s) and n=2 (0 s) give nothing to extrapolate from, so n doubles to 4.
    assert m.inner_loops == 4
    assert m.median_s == STEP


def test_median_and_iqr_match_hand_computed_values():
    # warm-up 1 call, calibration: n=1 takes 4 STEP >= min_time -> n=1.
    per_repeat = [1, 2, 3, 4, 5, 6, 100]  # in STEP units; one outlier
    fc = FakeClock([4 * STEP, 4 * STEP] + [v * STEP for v in per_repeat])
    cfg = TimingConfig(warmup_runs=1, min_time_s=STEP, repeats=7, spread_tolerance=10.0, max_retries=0)
    m = measure(fc.fn, cfg, clock=fc.clock)
    assert m.inner_loops == 1
    assert m.raw_s == [v * STEP for v in per_repeat]
    # sorted values 1..6,100: median = 4; 25th pct at index 1.5 -> 2.5; 75th at 4.5 -> 5.5
    assert m.median_s == 4 * STEP
    assert m.iqr_s == 3 * STEP
    assert m.spread == pytest.approx(0.75)
    assert summarize(per_repeat) == (4.0, 3.0)
    assert m.median_ms == pytest.approx(4 * STEP * 1e3)
    assert m.raw_ms == pytest.approx([v * STEP * 1e3 for v in per_repeat])


def test_per_call_time_divides_by_inner_loops():
    fc = FakeClock([STEP])
    cfg = TimingConfig(warmup_runs=0, min_time_s=16 * STEP, repeats=3, max_retries=0)
    m = measure(fc.fn, cfg, clock=fc.clock)
    assert m.inner_loops == 16
    assert m.median_s == STEP


NOISY = [1, 1, 2, 4, 4, 4, 4]    # IQR 2.5, median 4 -> spread 0.625
QUIET = [4, 4, 4, 4, 4, 4, 4]


def _scripted(attempts):
    # no warm-up; calibration n=1 with a 4-STEP call; then the attempts' repeats
    return [4 * STEP] + [v * STEP for a in attempts for v in a]


def test_noisy_measurement_retries_and_flags_unstable():
    fc = FakeClock(_scripted([NOISY, NOISY, NOISY]))
    cfg = TimingConfig(warmup_runs=0, min_time_s=STEP, repeats=7, max_retries=2)
    m = measure(fc.fn, cfg, clock=fc.clock)
    assert m.retries == 2
    assert m.unstable is True
    assert m.spread == pytest.approx(2.5 / 4)


def test_noisy_then_quiet_retry_keeps_quiet_attempt():
    fc = FakeClock(_scripted([NOISY, QUIET]))
    cfg = TimingConfig(warmup_runs=0, min_time_s=STEP, repeats=7, max_retries=2)
    m = measure(fc.fn, cfg, clock=fc.clock)
    assert m.retries == 1
    assert m.unstable is False
    assert m.raw_s == [4 * STEP] * 7
    assert fc.calls == 1 + 14  # stopped after the quiet attempt


def test_keeps_lowest_spread_attempt():
    less_noisy = [2, 3, 4, 4, 4, 4, 4]  # IQR 1.5 / 4
    fc = FakeClock(_scripted([NOISY, less_noisy, NOISY]))
    cfg = TimingConfig(warmup_runs=0, min_time_s=STEP, repeats=7, max_retries=2)
    m = measure(fc.fn, cfg, clock=fc.clock)
    assert m.retries == 2 and m.unstable
    assert m.raw_s == [v * STEP for v in less_noisy]


def test_sync_called_after_warmup_each_calibration_step_and_each_repeat():
    fc = FakeClock([STEP])
    log = []
    cfg = TimingConfig(warmup_runs=3, min_time_s=4 * STEP, repeats=5, max_retries=0)
    m = measure(fc.fn, cfg, clock=fc.clock, sync=lambda: log.append(fc.calls))
    # 1 after warm-up, 2 calibration steps (n=1, n=4), then exactly one per repeat.
    assert len(log) == 1 + 2 + cfg.repeats
    assert m.inner_loops == 4
    repeat_syncs = log[3:]
    assert repeat_syncs == [3 + 1 + 4 + 4 * (r + 1) for r in range(cfg.repeats)]


def test_sync_time_is_inside_the_timed_region():
    fc = FakeClock([STEP])

    def sync():  # the device finishes queued work: time passes during sync
        fc.t += STEP

    cfg = TimingConfig(warmup_runs=0, min_time_s=2 * STEP, repeats=3, max_retries=0)
    m = measure(fc.fn, cfg, clock=fc.clock, sync=sync)
    # n=1 costs 2 STEP (call + sync) -> n=1 suffices; per call 2 STEP.
    assert m.inner_loops == 1 and m.median_s == 2 * STEP


@pytest.mark.parametrize("fail_at", [0, 2, 5])
def test_fn_raising_becomes_measurement_error(fail_at):
    state = {"n": 0}

    def fn():
        state["n"] += 1
        if state["n"] > fail_at:
            raise RuntimeError("boom")

    with pytest.raises(MeasurementError, match="RuntimeError") as info:
        measure(fn, TimingConfig.quick())
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "boom" in str(info.value)


def test_sync_raising_becomes_measurement_error():
    def sync():
        raise ValueError("no device")

    with pytest.raises(MeasurementError, match="sync") as info:
        measure(lambda: None, TimingConfig.quick(), sync=sync)
    assert isinstance(info.value.__cause__, ValueError)


def test_zero_elapsed_clock_raises_resolution_error():
    with pytest.raises(MeasurementError, match="resolution"):
        measure(lambda: None, TimingConfig(max_inner_loops=64), clock=lambda: 1.0)


def test_backwards_clock_raises():
    ticks = iter(range(1000, 0, -1))
    with pytest.raises(MeasurementError, match="backwards"):
        measure(lambda: None, TimingConfig.quick(), clock=lambda: float(next(ticks)))


def test_non_callable_rejected():
    with pytest.raises(MeasurementError, match="callable"):
        measure(42)


@pytest.mark.parametrize(
    "field,value",
    [
        ("repeats", 1), ("repeats", 2), ("repeats", 3.5), ("repeats", True),
        ("warmup_runs", -1), ("max_inner_loops", 0), ("max_retries", -1),
        ("min_time_s", 0.0), ("min_time_s", -0.1), ("min_time_s", float("nan")),
        ("min_time_s", float("inf")), ("min_time_s", "0.05"),
        ("spread_tolerance", 0), ("spread_tolerance", float("inf")),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"TimingConfig.{field}"):
        TimingConfig(**{field: value})


def test_config_defaults_quick_and_round_trip():
    cfg = TimingConfig()
    assert (cfg.warmup_runs, cfg.min_time_s, cfg.repeats) == (2, 0.05, 7)
    assert (cfg.max_inner_loops, cfg.spread_tolerance, cfg.max_retries) == (10_000, 0.10, 2)
    quick = TimingConfig.quick()
    assert quick.min_time_s < cfg.min_time_s and quick.repeats >= 3
    assert TimingConfig.from_config(quick.get_config()) == quick
    with pytest.raises(ValueError, match="bogus"):
        TimingConfig.from_config({"bogus": 1})


def test_measurement_dict_round_trip():
    m = Measurement(median_s=0.0015, iqr_s=0.0001, raw_s=[0.0014, 0.0015, 0.0016],
                    inner_loops=32, repeats=3, retries=1, unstable=True)
    d = m.to_dict()
    assert set(d) == {"median_ms", "iqr_ms", "min_ms", "raw_ms", "inner_loops", "repeats", "retries", "unstable"}
    assert d["median_ms"] == pytest.approx(1.5) and d["raw_ms"] == pytest.approx([1.4, 1.5, 1.6])
    back = Measurement.from_dict(json.loads(json.dumps(d)))
    assert back.median_s == pytest.approx(m.median_s) and back.iqr_s == pytest.approx(m.iqr_s)
    assert back.raw_s == pytest.approx(m.raw_s)
    assert (back.inner_loops, back.repeats, back.retries, back.unstable) == (32, 3, 1, True)


def test_measurement_to_dict_is_plain_python():
    fc = FakeClock([STEP])
    m = measure(fc.fn, TimingConfig(warmup_runs=0, min_time_s=STEP, repeats=3), clock=fc.clock)
    d = m.to_dict()
    assert all(type(v) is float for v in d["raw_ms"]) and type(d["median_ms"]) is float
    json.dumps(d)


def test_measurement_from_dict_errors_name_missing_key():
    from latency_lab.errors import ProfileError
    with pytest.raises(ProfileError, match="median_ms"):
        Measurement.from_dict({"iqr_ms": 1.0})
    with pytest.raises(ProfileError, match="non-numeric"):
        Measurement.from_dict({"median_ms": "fast", "iqr_ms": 1.0})


def test_spread_zero_median():
    assert Measurement(median_s=0.0, iqr_s=0.0).spread == 0.0


def test_summarize_empty_raises():
    with pytest.raises(ValueError):
        summarize([])
    assert summarize(np.array([2.0])) == (2.0, 0.0)


def test_real_clock_smoke():
    m = measure(lambda: sum(range(100)), TimingConfig.quick())
    assert m.median_s > 0 and math.isfinite(m.median_s)
    assert math.isfinite(m.iqr_s) and m.inner_loops >= 1 and len(m.raw_s) == m.repeats
