"""latency_lab.profiler (driven by a fake, deterministic runtime and a fake clock) and
the `profile` / `show` commands. No keras.applications model is built: the table plan
is replaced by a fixed list and the calibration networks by none."""

import json
import math
import os
import signal
import types

import pytest

from latency_lab import cli, op_kinds, profiler
from latency_lab.bench import calibration, ceilings, plans
from latency_lab.errors import ProfileError, ProfileInterrupted
from latency_lab.bench.plans import PlannedSample
from latency_lab.profile import DeviceProfile, unstable_count
from latency_lab.profiler import ProfileRun, run_profile
from latency_lab.timing import Measurement

CHUNK = 24  # samples per batch in run_profile


def fake_seconds(op, config):
    """The fake device: 100 GFLOP/s compute, 20 GB/s memory, 1 us per op, additive;
    a chain of n tiny ops takes 5 us + n * 1 us."""
    if op == "chain":
        return 5e-6 + config["n"] * 1e-6
    w = op_kinds.work(op, config)
    return w.flops / 1e11 + w.bytes_total / 2e10 + 1e-6


def parse_key(key):
    op, cfg = key.split("|", 1)
    return op, json.loads(cfg)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now


class FakeRuntime:
    """Measures programs by their key; counts calls; can advance a fake clock or
    raise KeyboardInterrupt on a chosen call."""

    name = "litert"

    def __init__(self, world, threads=1, device="cpu"):
        self.world = world
        self.threads = threads
        self.device = device

    def info(self):
        return {"name": "litert", "version": "9.9.9-fake", "backend": "xnnpack",
                "device": self.device, "threads": self.threads, "dtype": "float32",
                "batch": 1}

    def measure_ops(self, programs, timing=None, on_result=None):
        w = self.world
        w.calls += 1
        if w.interrupt_on_call == w.calls:
            raise KeyboardInterrupt
        results = []
        w.chunks.append([p.key for p in programs])
        n = timing.repeats if timing else 5
        for prog in programs:
            w.measured.append(prog.key)
            s = fake_seconds(*parse_key(prog.key)) * w.slowdown(w.calls)
            m = Measurement(median_s=s, iqr_s=0.01 * s, raw_s=[s] * n, repeats=n)
            results.append(m)
            if on_result:
                on_result(prog, m)
        w.clock.now += w.seconds_per_call
        if w.on_call:  # e.g. a signal arriving while this batch is measured
            w.on_call(w.calls)
        return results

    def measure_model(self, model, timing=None):  # calibration networks
        self.world.networks.append(model)
        n = timing.repeats if timing else 5
        return Measurement(median_s=1e-3, iqr_s=1e-5, raw_s=[1e-3 * len(self.world.networks)] * n,
                           repeats=n)

    def measure_models(self, models, timing=None):
        out = [self.measure_model(m, timing) for m in models]
        if self.world.on_networks:
            self.world.on_networks(len(self.world.networks))
        return out


def table_configs(n):
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(("conv2d", dict(h=8 + i, w=8 + i, cin=8, cout=8 + i, k=3, s=1)))
        elif kind == 1:
            out.append(("depthwise", dict(h=8 + i, w=8, c=8 + i, k=3, s=1 + i % 2)))
        elif kind == 2:
            out.append(("dense", dict(rows=1 + i, cin=16, cout=8 + i)))
        else:
            out.append(("add", dict(h=4 + i, w=4, c=8, broadcast=bool(i % 2))))
    return out


@pytest.fixture
def world(monkeypatch):
    """Fake runtime, fake clock, fixed table plan (40 samples: with the quick roofline
    plan, 51 samples = batches of 24, 24 and 3), no calibration networks."""
    w = types.SimpleNamespace(calls=0, measured=[], interrupt_on_call=None,
                              seconds_per_call=1.0, clock=Clock(), runtimes=[], chunks=[],
                              networks=[], slowdown=lambda call: 1.0, on_call=None,
                              on_networks=None)

    def get_runtime(name, threads=1, device="cpu"):
        rt = FakeRuntime(w, threads=threads, device=device)
        w.runtimes.append(rt)
        return rt

    def table_plan(quick, seed=0, max_samples=None, runtime="litert", pool=None):
        return [PlannedSample(op, cfg, "table") for op, cfg in table_configs(40)]

    monkeypatch.setattr(profiler, "get_runtime", get_runtime)
    monkeypatch.setattr(plans, "table_plan", table_plan)
    monkeypatch.setattr(calibration, "calibration_models", lambda quick: iter(()),
                        raising=False)
    monkeypatch.setattr(calibration, "calibration_labels", lambda quick: [])
    monkeypatch.setattr(profiler, "time", types.SimpleNamespace(time=w.clock.time))
    monkeypatch.setattr(cli, "time", types.SimpleNamespace(time=w.clock.time))
    # The lookup fit a complete run ends with (seconds each): one test checks it.
    monkeypatch.setattr(profiler, "with_fitted_lookup", lambda prof, pool=None: prof)
    w.n_planned = len(plans.roofline_plan(True)) + 40
    return w


def make_run(out, **kw):
    kw.setdefault("quick", True)
    kw.setdefault("adaptive_samples", 0)
    return ProfileRun(out=out, progress=False, log=lambda m: None, **kw)


# --------------------------------------------------------------- full runs


def test_complete_run_writes_a_valid_profile(tmp_path, world):
    out = tmp_path / "p.json"
    prof = run_profile(make_run(out))
    assert out.exists()
    loaded = DeviceProfile.load(out)
    assert loaded == prof
    assert prof.progress["complete"] is True
    assert prof.progress["done"] == prof.progress["planned"] == world.n_planned
    assert len(prof.samples) == world.n_planned == len(set(world.measured))
    assert world.calls == math.ceil(world.n_planned / CHUNK)
    assert prof.runtime["version"] == "9.9.9-fake" and prof.threads == 1
    assert prof.provenance_kind == "measured"
    # Ceilings and overheads are derived from the stored samples.
    assert prof.roofline == ceilings.ceilings_from_samples(prof.samples)
    o = ceilings.overhead_from_samples(prof.samples)
    assert prof.per_op_overhead_ms == pytest.approx(o["per_op_ms"])
    assert prof.per_invocation_overhead_ms == pytest.approx(o["per_invocation_ms"])
    # ... and they recover the fake device: 20 GB/s memory (the big add is memory
    # bound), compute below 100 GFLOP/s, chains give 1 us/op + 5 us/call.
    assert prof.memory_bytes_per_s < 2e10
    assert prof.memory_bytes_per_s == pytest.approx(2e10, rel=0.05)
    for cls in ("dense", "depthwise", "elementwise"):
        assert 0 < prof.peak_flops_per_s(cls) < 1e11
    assert prof.per_op_overhead_ms == pytest.approx(1e-3)
    assert prof.per_invocation_overhead_ms == pytest.approx(5e-3)
    for s in prof.samples:
        assert s.median_ms == pytest.approx(fake_seconds(s.op, s.config) * 1e3)
        n = profiler.sample_timing(make_run(out)).repeats  # one pass of latency timing
        assert s.repeats == n and len(s.raw_ms) == n and not s.unstable


@pytest.mark.parametrize("interval_s, saves", [(0.0, 5), (1e9, 3)])
def test_batches_are_saved_at_most_every_save_interval_and_the_end_always(
        tmp_path, world, monkeypatch, interval_s, saves):
    """Three batches: saved after each with no interval; with a long one, after the
    first (a valid profile on disk as soon as there can be one) and at the end; then
    once more with the lookup fit."""
    written = []
    real_save = DeviceProfile.save
    monkeypatch.setattr(DeviceProfile, "save",
                        lambda self, path: (written.append(len(self.samples)),
                                            real_save(self, path))[1])
    monkeypatch.setattr(profiler, "SAVE_INTERVAL_S", interval_s)
    out = tmp_path / "p.json"
    run_profile(make_run(out))
    assert len(written) == saves and written[0] == CHUNK
    assert written[-1] == world.n_planned == len(DeviceProfile.load(out).samples)


class _Pending:
    def __init__(self, events, keys, done_after):
        self.events, self.keys, self.polls, self.done_after = events, keys, 0, done_after

    def done(self):
        self.polls += 1
        return self.polls > self.done_after

    def wait(self):
        self.events.append(("wait", self.keys))


def _converting_runtime(world, events, done_after=0):
    class ConvertingRuntime(FakeRuntime):
        def convert_ahead(self, programs, pool):
            assert isinstance(pool, profiler.ConversionPool)
            keys = [p.key for p in programs]
            events.append(("convert", keys))
            return _Pending(events, keys, done_after)

        def measure_ops(self, programs, timing=None, on_result=None):
            events.append(("measure", [p.key for p in programs]))
            return super().measure_ops(programs, timing, on_result)

    return lambda name, threads=1, device="cpu": ConvertingRuntime(world, threads=threads,
                                                                    device=device)


def _assert_never_timed_while_converting(events):
    """Every program is converted before it is timed, and nothing is timed while any
    submitted conversion has not been waited for."""
    converted: set = set()
    outstanding: dict = {}
    for kind, keys in events:
        if kind == "convert":
            outstanding[tuple(keys)] = True
            converted.update(keys)
        elif kind == "wait":
            outstanding.pop(tuple(keys), None)
        elif kind == "measure":
            assert not outstanding, "timed while a wave was converting"
            assert set(keys) <= converted


def test_programs_are_converted_ahead_in_waves_and_never_while_timing(tmp_path, world,
                                                                     monkeypatch):
    """A runtime that converts gets each wave of WAVE_CHUNKS chunks to convert before
    it times any of them, and times nothing until the wave's conversions are done; the
    calibration networks are prepared meanwhile, once."""
    events = []
    monkeypatch.setattr(profiler, "get_runtime", _converting_runtime(world, events))
    monkeypatch.setattr(profiler, "WAVE_CHUNKS", 2)

    def prepare(self):
        events.append(("prepare", None))
        yield "net"

    monkeypatch.setattr(profiler._CalibrationNetworks, "prepare", prepare)
    run_profile(make_run(tmp_path / "p.json", passes=3))
    _assert_never_timed_while_converting(events)
    first_pass = [e for e in events if e[0] == "convert"][:2]
    assert [len(keys) for _, keys in first_pass] == [2 * CHUNK, world.n_planned - 2 * CHUNK]
    # prepared once, during the first wave, after it was submitted
    assert [i for i, e in enumerate(events) if e[0] == "prepare"] == [1]


def test_workers_are_kept_fed_while_the_calibration_networks_convert(tmp_path, world,
                                                                    monkeypatch):
    """Between the calibration networks' steps, further waves are submitted as earlier
    ones finish (WAVES_QUEUED kept queued), and all of them are waited for before the
    first timing."""
    events = []
    monkeypatch.setattr(profiler, "get_runtime", _converting_runtime(world, events, done_after=1))
    monkeypatch.setattr(profiler, "WAVE_CHUNKS", 1)
    monkeypatch.setattr(profiler, "WAVES_QUEUED", 1)
    n_chunks = math.ceil(world.n_planned / CHUNK)
    assert n_chunks >= 3, "the fake world needs three chunks for this test"

    def prepare(self):
        for label in ("a", "b", "c", "d", "e", "f"):
            events.append(("prepare", label))
            yield label

    monkeypatch.setattr(profiler._CalibrationNetworks, "prepare", prepare)
    run_profile(make_run(tmp_path / "p.json", passes=1))
    _assert_never_timed_while_converting(events)
    first_measure = next(i for i, e in enumerate(events) if e[0] == "measure")
    before = events[:first_measure]
    converts = [e for e in before if e[0] == "convert"]
    # a wave reads done from its second poll on: after the first two steps, each step
    # submits one more (6 steps: waves 1-5 besides the first)
    assert len(converts) == min(n_chunks, 6)
    assert [e[0] for e in before[:4]] == ["convert", "prepare", "prepare", "convert"]
    assert sum(e[0] == "wait" for e in before) == len(converts)


def test_run_records_threads_and_device_info(tmp_path, world):
    prof = run_profile(make_run(tmp_path / "p.json", threads=3))
    assert prof.threads == 3 and prof.runtime["backend"] == "xnnpack"
    assert prof.fingerprint and prof.device_kind == "cpu"
    assert prof.device["info"]["fingerprint"] == prof.fingerprint


# ------------------------------------------------------------------ passes


def test_every_pass_times_every_sample_in_a_new_chunk_order(tmp_path, world):
    prof = run_profile(make_run(tmp_path / "p.json", passes=3))
    n_chunks = math.ceil(world.n_planned / CHUNK)
    assert world.calls == 3 * n_chunks
    first, later = world.chunks[:n_chunks], world.chunks[n_chunks:]
    # Same chunks (a runtime may reuse its conversion of each), different order.
    assert sorted(map(tuple, later[:n_chunks])) == sorted(map(tuple, first))
    assert [tuple(c) for c in world.chunks[n_chunks:2 * n_chunks]] != [tuple(c) for c in first] or \
        [tuple(c) for c in world.chunks[2 * n_chunks:]] != [tuple(c) for c in first]
    for s in prof.samples:
        assert s.repeats == len(s.raw_ms) == 3 * profiler.sample_timing(make_run(tmp_path)).repeats
    assert prof.calibration["passes"] == 3
    assert prof.progress["complete"] is True


def test_a_slow_pass_does_not_move_the_figures(tmp_path, world):
    """Each sample's figures are over all passes' repeats: one pass measured during a
    slow spell (3x here) moves neither the median nor the fastest call, and the two
    other passes agree on the fastest, so the figure is not flagged; two slow passes
    leave the fastest call to one pass, which is flagged."""
    n_chunks = math.ceil(world.n_planned / CHUNK)
    world.slowdown = lambda call: 3.0 if n_chunks < call <= 2 * n_chunks else 1.0
    prof = run_profile(make_run(tmp_path / "p.json", passes=3))
    for s in prof.samples:
        assert s.median_ms == pytest.approx(fake_seconds(s.op, s.config) * 1e3)
        assert s.min_ms == pytest.approx(fake_seconds(s.op, s.config) * 1e3)
        assert s.iqr_ms > 0 and not s.unstable
    world.calls = 0
    world.slowdown = lambda call: 3.0 if call > n_chunks else 1.0
    prof = run_profile(make_run(tmp_path / "q.json", passes=3))
    assert all(s.unstable for s in prof.samples)


def test_budget_in_a_later_pass_then_resume_completes_the_passes(tmp_path, world):
    out = tmp_path / "p.json"
    n_chunks = math.ceil(world.n_planned / CHUNK)
    world.seconds_per_call = 10.0
    first = run_profile(make_run(out, passes=2, budget_s=10.0 * (n_chunks + 0.5)))
    assert first.progress["complete"] is False
    assert len(first.samples) == world.n_planned  # pass 1 is whole
    per_pass = profiler.sample_timing(make_run(out, passes=2)).repeats
    twice = {s.key for s in first.samples if len(s.raw_ms) == 2 * per_pass}
    assert 0 < len(twice) < world.n_planned
    world.measured.clear()
    second = run_profile(make_run(out, passes=2, resume=True))
    assert sorted(world.measured) == sorted(s.key for s in first.samples if s.key not in twice)
    assert second.progress["complete"] is True
    assert all(len(s.raw_ms) == 2 * per_pass for s in second.samples)


def test_calibration_networks_are_measured_once_per_pass(tmp_path, world, monkeypatch):
    from latency_lab import kernels

    monkeypatch.setattr(calibration, "calibration_labels", lambda quick: ["net-a", "net-b"])
    monkeypatch.setattr(calibration, "calibration_models",
                        lambda quick: iter([("net-a", "model-a"), ("net-b", "model-b")]))
    monkeypatch.setattr(kernels, "work_items", lambda model, runtime, **kw: [])
    prof = run_profile(make_run(tmp_path / "p.json", passes=3))
    assert world.networks == ["model-a", "model-b"] * 3
    models = {m["name"]: m for m in prof.calibration["models"]}
    assert sorted(models) == ["net-a", "net-b"]
    # net-a was timed at 1, 3, 5 ms (calls 1, 3, 5 of measure_model): the latency
    # figure is the fastest, 1 ms; the median over the passes 3 ms.
    per_pass = profiler.calibration_timing(make_run(tmp_path / "p.json", passes=3)).repeats
    assert len(models["net-a"]["raw_ms"]) == 3 * per_pass
    assert models["net-a"]["measured_ms"] == pytest.approx(1.0)
    assert models["net-a"]["median_ms"] == pytest.approx(3.0)
    assert models["net-b"]["measured_ms"] == pytest.approx(2.0)


def test_passes_must_be_positive(tmp_path, world):
    with pytest.raises(ProfileError, match="passes"):
        run_profile(make_run(tmp_path / "p.json", passes=0))


# ------------------------------------------------------------------ budget


def test_budget_exceeded_after_first_batch_keeps_samples(tmp_path, world):
    world.seconds_per_call = 100.0
    out = tmp_path / "p.json"
    prof = run_profile(make_run(out, budget_s=50))
    assert world.calls == 1
    assert prof.progress["complete"] is False
    assert prof.progress["done"] == len(prof.samples) == CHUNK
    assert prof.progress["planned"] == world.n_planned
    assert DeviceProfile.load(out) == prof


def test_a_complete_run_stores_the_fitted_lookup_models_and_a_partial_one_does_not(
        tmp_path, world, monkeypatch):
    from latency_lab.predictors import LookupTableModel, with_fitted_lookup

    monkeypatch.setattr(profiler, "with_fitted_lookup", with_fitted_lookup)
    prof = run_profile(make_run(tmp_path / "p.json"))
    assert prof.fitted["lookup"]["models"]
    assert DeviceProfile.load(tmp_path / "p.json") == prof
    assert set(LookupTableModel(prof).fit().gp_fits_.values()) == {"stored"}
    world.seconds_per_call = 100.0
    partial = run_profile(make_run(tmp_path / "q.json", budget_s=50))
    assert partial.progress["complete"] is False and partial.fitted == {}


def test_budget_spent_by_planning_measures_nothing_and_says_so(tmp_path, world,
                                                               monkeypatch):
    """--budget is wall time from the start: planning (building keras.applications
    models) that outlasts it leaves nothing measured, and the error says so."""
    plan = plans.table_plan

    def slow_plan(*a, **kw):
        world.clock.now += 1000.0
        return plan(*a, **kw)

    monkeypatch.setattr(plans, "table_plan", slow_plan)
    out = tmp_path / "p.json"
    with pytest.raises(ProfileError, match=r"--budget.*before the first batch.*nothing was "
                                           r"written"):
        run_profile(make_run(out, budget_s=50))
    assert world.calls == 0 and not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_budget_counts_from_the_start_of_the_command(tmp_path, world):
    """started_at (the CLI passes when the command started) starts the budget clock:
    40 s of start-up, 20 s a batch, a 50 s budget: one batch, not three."""
    world.seconds_per_call = 20.0
    out = tmp_path / "p.json"
    prof = run_profile(make_run(out, budget_s=50, started_at=world.clock.now - 40))
    assert world.calls == 1 and len(prof.samples) == CHUNK
    assert prof.progress["complete"] is False
    world.calls = 0
    prof = run_profile(make_run(tmp_path / "q.json", budget_s=50))
    assert world.calls == 3 and prof.progress["complete"] is True


def test_budget_not_reached_is_complete(tmp_path, world):
    prof = run_profile(make_run(tmp_path / "p.json", budget_s=1e6))
    assert prof.progress["complete"] is True


# ------------------------------------------------------------------ resume


def test_resume_measures_only_the_missing_samples(tmp_path, world):
    out = tmp_path / "p.json"
    world.seconds_per_call = 100.0
    first = run_profile(make_run(out, budget_s=50))
    first_keys = {s.key for s in first.samples}
    assert len(first_keys) == CHUNK

    world.seconds_per_call = 1.0
    world.measured.clear()
    calls_before = world.calls
    second = run_profile(make_run(out, resume=True))
    assert len(world.measured) == world.n_planned - CHUNK
    assert not set(world.measured) & first_keys
    assert world.calls - calls_before == math.ceil((world.n_planned - CHUNK) / CHUNK)
    assert second.progress["complete"] is True
    assert len(second.samples) == len(second.sample_keys) == world.n_planned
    # The calibration section counts the resumed profile's samples, not the first run's.
    assert second.calibration["samples"] == len(second.samples)
    assert second.calibration["unstable_samples"] == unstable_count(second.samples)
    # Its elapsed time goes on from the first run's (fake clock: 100 s a call there).
    assert first.progress["elapsed_s"] >= 100.0
    assert second.progress["elapsed_s"] == pytest.approx(
        first.progress["elapsed_s"] + world.calls - calls_before, abs=1.0)
    # The first run's samples are kept as they were.
    old = {s.key: s for s in first.samples}
    for s in second.samples:
        if s.key in old:
            assert s == old[s.key] and s.to_dict() == old[s.key].to_dict()


def test_resume_of_a_complete_profile_measures_nothing(tmp_path, world):
    out = tmp_path / "p.json"
    run_profile(make_run(out))
    world.measured.clear()
    prof = run_profile(make_run(out, resume=True))
    assert world.measured == []
    assert prof.progress["complete"] is True
    assert len(prof.samples) == world.n_planned


def test_resume_without_a_file_starts_fresh(tmp_path, world):
    prof = run_profile(make_run(tmp_path / "new.json", resume=True))
    assert len(prof.samples) == world.n_planned


def test_resume_with_other_threads_is_refused(tmp_path, world):
    out = tmp_path / "p.json"
    run_profile(make_run(out, threads=1))
    before = out.read_bytes()
    world.measured.clear()
    with pytest.raises(ProfileError, match=r"threads.*--threads"):
        run_profile(make_run(out, threads=2, resume=True))
    assert world.measured == []
    assert out.read_bytes() == before


def test_resume_on_another_device_is_refused(tmp_path, world):
    out = tmp_path / "p.json"
    prof = run_profile(make_run(out))
    data = prof.to_dict()
    data["device"]["fingerprint"] = "0123456789abcdef"
    DeviceProfile(data).save(out)
    with pytest.raises(ProfileError, match="another device"):
        run_profile(make_run(out, resume=True))


# --------------------------------------------------------------- interrupts


def test_ctrl_c_on_second_batch_keeps_the_first(tmp_path, world):
    world.interrupt_on_call = 2
    out = tmp_path / "p.json"
    with pytest.raises(KeyboardInterrupt):
        run_profile(make_run(out))
    prof = DeviceProfile.load(out)  # valid
    assert len(prof.samples) == CHUNK
    assert {s.key for s in prof.samples} == set(world.measured)
    assert prof.progress["complete"] is False
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no temporary files


def test_ctrl_c_then_resume_finishes(tmp_path, world):
    world.interrupt_on_call = 2
    out = tmp_path / "p.json"
    with pytest.raises(KeyboardInterrupt):
        run_profile(make_run(out))
    world.interrupt_on_call = None
    world.measured.clear()
    prof = run_profile(make_run(out, resume=True))
    assert len(world.measured) == world.n_planned - CHUNK
    assert prof.progress["complete"] is True


def send_sigint(*_):
    """What Ctrl-C does: SIGINT to this process (handled between bytecodes)."""
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_table_saves_the_batches_measured_then_resume_finishes(tmp_path, world,
                                                                         sig):
    world.on_call = lambda call: call == 2 and os.kill(os.getpid(), sig)
    out = tmp_path / "p.json"
    before = signal.getsignal(sig)
    with pytest.raises(ProfileInterrupted) as exc:
        run_profile(make_run(out))
    assert exc.value.exit_code == 130
    assert signal.getsignal(sig) is before  # handlers restored
    # The batch being measured when the signal came is finished and saved.
    prof = DeviceProfile.load(out)
    assert len(prof.samples) == 2 * CHUNK == len(world.measured)
    assert {s.key for s in prof.samples} == set(world.measured)
    assert prof.progress["complete"] is False
    msg = str(exc.value)
    assert f"{2 * CHUNK} samples kept in {out}" in msg and "--resume" in msg
    assert signal.Signals(sig).name in msg
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
    world.on_call = None
    world.measured.clear()
    prof = run_profile(make_run(out, resume=True))
    assert len(world.measured) == world.n_planned - 2 * CHUNK
    assert prof.progress["complete"] is True and len(prof.samples) == world.n_planned


def test_signal_while_planning_measures_nothing_and_writes_nothing(tmp_path, world,
                                                                  monkeypatch):
    plan = plans.table_plan

    def interrupted_plan(*a, **kw):
        send_sigint()
        return plan(*a, **kw)

    monkeypatch.setattr(plans, "table_plan", interrupted_plan)
    out = tmp_path / "p.json"
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(ProfileInterrupted, match="nothing was measured and no file was "
                                                 "written"):
        run_profile(make_run(out))
    assert world.calls == 0 and not out.exists() and list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is before


def test_signal_while_planning_a_resume_leaves_the_file_as_it_was(tmp_path, world,
                                                                  monkeypatch):
    out = tmp_path / "p.json"
    world.on_call = lambda call: call == 1 and send_sigint()
    with pytest.raises(ProfileInterrupted):
        run_profile(make_run(out))
    before = out.read_bytes()
    world.on_call = None
    plan = plans.table_plan
    monkeypatch.setattr(plans, "table_plan", lambda *a, **kw: (send_sigint(), plan(*a, **kw))[1])
    with pytest.raises(ProfileInterrupted, match=f"left as it was, {CHUNK} samples"):
        run_profile(make_run(out, resume=True))
    assert out.read_bytes() == before and world.calls == 1


def test_signal_during_calibration_keeps_it_and_resume_finishes(tmp_path, world,
                                                                monkeypatch):
    from latency_lab import kernels

    monkeypatch.setattr(calibration, "calibration_labels", lambda quick: ["net-a"])
    monkeypatch.setattr(calibration, "calibration_models",
                        lambda quick: iter([("net-a", "model-a")]))
    monkeypatch.setattr(kernels, "work_items", lambda model, runtime, **kw: [])
    world.on_networks = lambda n: n == 1 and send_sigint()
    out = tmp_path / "p.json"
    with pytest.raises(ProfileInterrupted, match=f"{world.n_planned} samples kept"):
        run_profile(make_run(out, passes=2))
    prof = DeviceProfile.load(out)
    per_pass = profiler.sample_timing(make_run(out, passes=2)).repeats
    assert all(len(s.raw_ms) == per_pass for s in prof.samples)  # pass 1 only
    assert [m["name"] for m in prof.calibration["models"]] == ["net-a"]  # measured, kept
    assert prof.progress["complete"] is False
    world.on_networks = None
    prof = run_profile(make_run(out, passes=2, resume=True))
    assert prof.progress["complete"] is True
    assert all(len(s.raw_ms) == 2 * per_pass for s in prof.samples)
    assert world.networks == ["model-a", "model-a"]


def test_a_second_signal_stops_at_once_keeping_saved_batches(tmp_path, world):
    def twice(call):
        if call == 2:
            send_sigint()
            send_sigint()

    world.on_call = twice
    out = tmp_path / "p.json"
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        run_profile(make_run(out))
    assert signal.getsignal(signal.SIGINT) is before
    # Saved on the way out: both batches measured.
    assert len(DeviceProfile.load(out).samples) == 2 * CHUNK


def test_signal_in_the_last_batch_still_completes(tmp_path, world):
    n_chunks = math.ceil(world.n_planned / CHUNK)
    world.on_call = lambda call: call == n_chunks and send_sigint()
    prof = run_profile(make_run(tmp_path / "p.json"))
    assert prof.progress["complete"] is True


# ------------------------------------------------------- existing output


def test_existing_out_is_refused_without_resume_or_overwrite(tmp_path, world):
    out = tmp_path / "p.json"
    run_profile(make_run(out))
    before = out.read_bytes()
    world.measured.clear()
    with pytest.raises(ProfileError, match=r"p.json: the file already exists; pass --resume"
                                           r".*--overwrite"):
        run_profile(make_run(out, overwrite=False))
    assert world.measured == [] and out.read_bytes() == before
    run_profile(make_run(out, overwrite=False, resume=True))  # continuing is fine
    assert world.measured == []
    run_profile(make_run(out, overwrite=True))  # and replacing, when asked
    assert len(world.measured) == world.n_planned


@pytest.mark.parametrize("flags", [dict(overwrite=True), dict(resume=True),
                                   dict(overwrite=False)])
def test_read_only_out_is_refused_even_with_overwrite(tmp_path, world, flags):
    out = tmp_path / "p.json"
    out.write_text("{}")
    out.chmod(0o444)
    with pytest.raises(ProfileError, match=r"p.json: the file exists and is read-only"):
        run_profile(make_run(out, **flags))
    assert out.read_text() == "{}" and world.calls == 0


# ------------------------------------------------------------- bad output


def test_unwritable_out_directory(tmp_path, world):
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    out = blocker / "p.json"
    with pytest.raises(ProfileError, match="p.json.*not a directory"):
        run_profile(make_run(out))
    assert world.calls == 0  # refused before measuring anything
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    assert blocker.read_text() == "not a directory"


def test_out_is_a_directory(tmp_path, world):
    with pytest.raises(ProfileError, match="is a directory"):
        run_profile(make_run(tmp_path))
    assert world.calls == 0 and list(tmp_path.iterdir()) == []


def test_missing_out_directory(tmp_path, world):
    out = tmp_path / "no" / "such" / "dir" / "p.json"
    with pytest.raises(ProfileError, match="p.json.*does not exist"):
        run_profile(make_run(out))
    assert world.calls == 0
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- CLI: show


@pytest.fixture
def measured_profile(tmp_path, world):
    out = tmp_path / "measured.json"
    run_profile(make_run(out))
    return out


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    got = capsys.readouterr()
    return code, got.out, got.err


def test_show_table_of_a_measured_profile(measured_profile, capsys):
    code, out, err = run_cli(["show", measured_profile], capsys)
    assert code == 0, err
    prof = DeviceProfile.load(measured_profile)
    assert prof.device_name[:20] in out
    for text in ("GB/s", "GFLOP/s", "FLOP/byte", "µs", "9.9.9-fake", "complete",
                 "conv2d", "depthwise", "chain", "samples per op"):
        assert text in out, text


def test_show_table_of_a_shipped_spec_profile(capsys):
    code, out, err = run_cli(["show", "t4"], capsys)
    assert code == 0, err
    assert "NVIDIA T4" in out and "GB/s" in out and "300.0 GB/s" in out
    assert "8,100.0 GFLOP/s" in out
    assert "27 FLOP/byte" in out  # ridge 8.1e12 / 3e11
    assert "datasheet" in out  # the citations
    assert "peak_flops_per_s" in out  # not swallowed as rich markup


def test_show_json(measured_profile, capsys):
    code, out, err = run_cli(["show", measured_profile, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    prof = DeviceProfile.load(measured_profile)
    expected = prof.summary()
    for key in expected:
        assert data[key] == expected[key]
    d = data["derived"]
    bw = prof.memory_bytes_per_s
    assert d["memory_gb_per_s"] == pytest.approx(bw / 1e9)
    for cls in ("dense", "depthwise", "elementwise"):
        assert d["ridge_flop_per_byte"][cls] == pytest.approx(prof.peak_flops_per_s(cls) / bw)
        assert d["ceilings_gflop_per_s"][cls] == pytest.approx(
            prof.peak_flops_per_s(cls) / 1e9)
    assert d["overhead_us"]["per_op"] == pytest.approx(prof.per_op_overhead_ms * 1e3)
    assert d["samples_per_op"]["conv2d"]["count"] == len(prof.samples_for("conv2d"))
    assert d["samples_per_op"]["conv2d"]["median_spread"] == pytest.approx(0.01)
    assert d["progress"]["state"] == "complete"


def test_show_json_of_spec_profile_lists_citations(capsys):
    code, out, _ = run_cli(["show", "T4", "--json"], capsys)
    assert code == 0
    d = json.loads(out)["derived"]
    assert d["citations"] and all(c["citation"] for c in d["citations"])
    assert d["samples_total"] == 0 and d["samples_per_op"] == {}


@pytest.mark.parametrize("which", ["measured", "t4"])
def test_show_plot_writes_a_png(tmp_path, measured_profile, capsys, which):
    png = tmp_path / "roof.png"
    spec = measured_profile if which == "measured" else "t4"
    code, _, err = run_cli(["show", spec, "--plot", png], capsys)
    assert code == 0, err
    data = png.read_bytes()
    assert len(data) > 10_000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_show_plot_to_unwritable_path(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, _, err = run_cli(["show", "t4", "--plot", blocker / "roof.png"], capsys)
    assert code == 2
    assert "error:" in err and "roof.png" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_show_plot_unknown_format(tmp_path, capsys):
    code, _, err = run_cli(["show", "t4", "--plot", tmp_path / "roof.xyz"], capsys)
    assert code == 2 and "error:" in err and ".png" in err
    assert list(tmp_path.iterdir()) == []


def test_show_unknown_profile_name(capsys):
    code, out, err = run_cli(["show", "no_such_gpu"], capsys)
    assert code == 2
    assert "error:" in err and "no_such_gpu" in err and "t4" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("text", ["{", "[1, 2", "", "{\"schema\": 1,}"])
def test_show_malformed_json_names_the_file(tmp_path, capsys, text):
    bad = tmp_path / "broken.json"
    bad.write_text(text)
    code, _, err = run_cli(["show", bad], capsys)
    assert code == 2
    assert "error:" in err and "broken.json" in err and "malformed JSON" in err


def test_show_invalid_profile_names_the_field(tmp_path, capsys):
    data = DeviceProfile.load(__import__("device_profiles").path("t4")).to_dict()
    data["roofline"]["memory_bytes_per_s"] = -1
    bad = tmp_path / "neg.json"
    bad.write_text(json.dumps(data))
    code, _, err = run_cli(["show", bad], capsys)
    assert code == 2 and "neg.json" in err and "memory_bytes_per_s" in err


# ------------------------------------------------------------- CLI: profile


@pytest.mark.parametrize("budget", ["0", "-1", "nan", "-inf"])
def test_profile_bad_budget(tmp_path, capsys, world, budget):
    out = tmp_path / "p.json"
    code, _, err = run_cli(["profile", "--out", out, f"--budget={budget}"], capsys)
    assert code == 2
    assert "error:" in err and "--budget" in err
    assert world.calls == 0 and not out.exists()


@pytest.mark.parametrize("args", [["--threads", "0"], ["--threads", "x"],
                                  ["--runtime", "tflite"], ["--device", "tpu"], []])
def test_profile_bad_arguments(tmp_path, capsys, world, args):
    argv = ["profile"] + (["--out", tmp_path / "p.json"] if args else []) + args
    with pytest.raises(SystemExit) as exc:
        cli.main([str(a) for a in argv])
    assert exc.value.code == 2
    assert world.calls == 0


def test_profile_command_end_to_end(tmp_path, capsys, world):
    out = tmp_path / "p.json"
    code, stdout, err = run_cli(["profile", "--out", out, "--quick"], capsys)
    assert code == 0, err
    assert DeviceProfile.load(out).progress["complete"] is True
    assert "GB/s" in stdout and "samples per op" in stdout  # the shared summary table


def test_plot_takes_names_literally(tmp_path):
    """Device names come from files: '$' must not start matplotlib mathtext, nor
    '[...]' rich markup in the table."""
    from latency_lab.plots import plot_roofline

    data = DeviceProfile.load(__import__("device_profiles").path("t4")).to_dict()
    data["device"]["name"] = "GPU $5 $x_{1 [bold]"
    out = plot_roofline(DeviceProfile(data), tmp_path / "r.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------- CLI: existing files, signals, threads


@pytest.fixture
def existing(tmp_path, world):
    out = tmp_path / "p.json"
    run_profile(make_run(out))
    world.measured.clear()
    world.calls = 0
    return out


def test_profile_refuses_an_existing_file(existing, capsys, world):
    before = existing.read_bytes()
    code, _, err = run_cli(["profile", "--out", existing, "--quick"], capsys)
    assert code == 2
    assert "error:" in err and "p.json" in err and "already exists" in err
    assert "--resume" in err and "--overwrite" in err
    assert world.calls == 0 and existing.read_bytes() == before


def test_profile_overwrite_and_resume_are_allowed(existing, capsys, world):
    code, _, err = run_cli(["profile", "--out", existing, "--quick", "--resume"], capsys)
    assert code == 0, err
    assert world.calls == 0  # complete already
    code, _, err = run_cli(["profile", "--out", existing, "--quick", "--overwrite"], capsys)
    assert code == 0, err
    assert len(world.measured) == world.n_planned


def test_profile_resume_and_overwrite_together_is_a_usage_error(existing, world):
    with pytest.raises(SystemExit) as exc:
        cli.main(["profile", "--out", str(existing), "--resume", "--overwrite"])
    assert exc.value.code == 2 and world.calls == 0


def test_profile_refuses_a_read_only_file_with_overwrite(existing, capsys, world):
    existing.chmod(0o444)
    before = existing.read_bytes()
    code, _, err = run_cli(["profile", "--out", existing, "--quick", "--overwrite"], capsys)
    assert code == 2 and "read-only" in err and "p.json" in err
    assert world.calls == 0 and existing.read_bytes() == before


def test_profile_ctrl_c_exits_130_with_a_true_message_then_resume(tmp_path, capsys, world):
    out = tmp_path / "p.json"
    world.on_call = lambda call: call == 1 and send_sigint()
    code, _, err = run_cli(["profile", "--out", out, "--quick", "--threads", "1"], capsys)
    assert code == 130
    flat = " ".join(err.split())
    assert f"{CHUNK} samples kept in" in flat and "p.json" in flat
    assert "latency-lab profile --resume --out" in flat and "--quick" in flat
    assert len(DeviceProfile.load(out).samples) == CHUNK
    world.on_call = None
    code, _, err = run_cli(["profile", "--out", out, "--quick", "--resume"], capsys)
    assert code == 0, err
    assert DeviceProfile.load(out).progress["complete"] is True


def test_profile_ctrl_c_while_planning_says_nothing_was_written(tmp_path, capsys, world,
                                                               monkeypatch):
    plan = plans.table_plan
    monkeypatch.setattr(plans, "table_plan", lambda *a, **kw: (send_sigint(), plan(*a, **kw))[1])
    out = tmp_path / "p.json"
    code, _, err = run_cli(["profile", "--out", out, "--quick"], capsys)
    assert code == 130
    assert "nothing was measured and no file was written" in " ".join(err.split())
    assert "samples kept" not in err and not out.exists()


def test_profile_budget_counts_from_the_start_of_the_command(tmp_path, capsys, world,
                                                            monkeypatch):
    """40 s of start-up and planning, 20 s a batch, a 50 s budget: one batch."""
    plan = plans.table_plan

    def slow_plan(*a, **kw):
        world.clock.now += 40.0
        return plan(*a, **kw)

    monkeypatch.setattr(plans, "table_plan", slow_plan)
    world.seconds_per_call = 20.0
    out = tmp_path / "p.json"
    code, _, err = run_cli(["profile", "--out", out, "--quick", f"--budget={50 / 60}"],
                           capsys)
    assert code == 0, err
    assert world.calls == 1 and len(DeviceProfile.load(out).samples) == CHUNK


@pytest.fixture
def two_cores(monkeypatch):
    from latency_lab import device_info

    monkeypatch.setattr(device_info, "usable_cores", lambda: 2)


def test_profile_more_threads_than_cores_is_a_warning(tmp_path, capsys, world, two_cores):
    out = tmp_path / "p.json"
    code, _, err = run_cli(["profile", "--out", out, "--quick", "--threads", "3"], capsys)
    assert code == 0, err
    flat = " ".join(err.split())
    assert "warning:" in flat and "--threads 3" in flat and "2 CPU core(s)" in flat
    assert DeviceProfile.load(out).threads == 3


@pytest.mark.parametrize("command", [["profile", "--out", "p.json"], ["measure", "m.keras"]])
def test_more_than_4x_threads_is_an_error(tmp_path, capsys, world, two_cores, command,
                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(command + ["--threads", "9"], capsys)
    assert code == 2
    flat = " ".join(err.split())
    assert "error:" in flat and "--threads 9" in flat and "4x the 2 CPU core(s)" in flat
    assert world.calls == 0 and list(tmp_path.iterdir()) == []


def test_measure_more_threads_than_cores_warns(tmp_path, capsys, two_cores):
    code, _, err = run_cli(["measure", tmp_path / "none.keras", "--threads", "4"], capsys)
    assert code == 2  # the model does not exist; the warning came first
    flat = " ".join(err.split())
    assert "warning:" in flat and "--threads 4" in flat and "none.keras" in flat


def test_the_progress_bar_ends_full_with_adaptive_samples(tmp_path, world, monkeypatch):
    """The bar's total is recounted once the adaptive samples are chosen, and counts
    each of them once: the run ends with completed == total."""
    import rich.progress

    bars = []

    class Recorded(rich.progress.Progress):
        def __exit__(self, *exc):
            bars.append([(t.completed, t.total) for t in self.tasks])
            return super().__exit__(*exc)

    monkeypatch.setattr(rich.progress, "Progress", Recorded)
    prof = run_profile(make_run(tmp_path / "p.json", passes=2, adaptive_samples=3))
    assert len(prof.samples) > world.n_planned  # adaptive samples were measured
    (completed, total), = bars[0]
    assert completed == total
