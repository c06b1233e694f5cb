"""Extending a profile with the kernels a model needs (`latency_lab.extend`, `predict
--measure-missing`, `profile --extend-for`) and per-kernel validation (`validate
--per-layer`), on a hand-made profile with a fake runtime whose op timings are a known
function of the configuration: no timing, no device."""

import json
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from latency_lab import op_kinds, runtimes  # noqa: E402
from latency_lab.bench.ceilings import ceilings_from_samples  # noqa: E402
from latency_lab.cli import main  # noqa: E402
from latency_lab.errors import ProfileError  # noqa: E402
from latency_lab.extend import extend_profile  # noqa: E402
from latency_lab.kernels import work_items, working_set_bytes  # noqa: E402
from latency_lab.predictors import LookupTableModel  # noqa: E402
from latency_lab.profile import DeviceProfile, Sample, sample_key  # noqa: E402
from latency_lab.timing import Measurement  # noqa: E402
from latency_lab.validate import validate  # noqa: E402

L = keras.layers
RUNTIME = {"name": "litert", "version": "test", "backend": "xnnpack", "device": "cpu",
           "threads": 1, "dtype": "float32", "batch": 1}


def device_ms(op, cfg):
    """The made-up device: 20 GFLOP/s, 10 GB/s, 1 us per op; a 7x7 depthwise conv runs
    on a slow path, 9x what the roofline says."""
    w = op_kinds.work(op, cfg)
    ms = max(w.flops / 2e10, w.bytes_total / 1e10) * 1e3 + 0.001
    return ms * (9 if op == "depthwise" and cfg["k"] == 7 else 1)


def make_profile(path, extra=()):
    cfgs = [("conv2d", dict(h=h, w=h, cin=cin, cout=cout, k=3, s=1))
            for h in (8, 16) for cin in (8, 16, 32) for cout in (8, 16, 32)]
    cfgs += [("dense", dict(rows=1, cin=c, cout=10)) for c in (8, 16, 32, 64)]
    cfgs += [("depthwise", dict(h=h, w=h, c=c, k=3, s=1)) for h in (8, 16) for c in (8, 16, 32)]
    cfgs += [("add", dict(h=64, w=64, c=1024, broadcast=False))]
    samples = [Sample(op, cfg, device_ms(op, cfg), 0.0, 5, (device_ms(op, cfg),) * 5)
               for op, cfg in cfgs] + list(extra)
    prof = DeviceProfile.create(
        device={"kind": "cpu", "name": "hand-made cpu", "fingerprint": None, "info": {}},
        runtime=dict(RUNTIME), roofline=ceilings_from_samples(samples), samples=samples)
    prof.save(path)
    return path


class FakeRuntime:
    """Times op programs by their key (device_ms, every repeat the same); counts them."""

    name = "litert"
    threads = 1

    def __init__(self):
        self.measured = []

    def info(self):
        return dict(RUNTIME)

    def measure_ops(self, programs, timing=None, on_result=None):
        out = []
        for prog in programs:
            op, cfg = prog.key.split("|", 1)
            s = device_ms(op, json.loads(cfg)) / 1e3
            self.measured.append(prog.key)
            m = Measurement(median_s=s, iqr_s=0.0, raw_s=[s] * timing.repeats,
                            repeats=timing.repeats)
            out.append(m)
            if on_result:
                on_result(prog, m)
        return out

    def measure_models(self, models, timing=None):  # whole networks: 1 ms each
        return [Measurement(median_s=1e-3, iqr_s=0.0, raw_s=[1e-3] * timing.repeats,
                            repeats=timing.repeats) for _ in models]


def small_model():
    x = keras.Input((8, 8, 16))
    y = L.DepthwiseConv2D(7, padding="same", name="dw7")(x)
    y = L.Conv2D(16, 3, padding="same", name="conv")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    y = L.Dense(10, name="fc")(y)
    return keras.Model(x, y, name="small")


def kernel_predictions(path, model):
    est = LookupTableModel(DeviceProfile.load(path)).fit()
    items = work_items(model, "litert")
    w = working_set_bytes(items)
    return {sample_key(*i.configs[0]): est.kernel_ms(i.configs, w)
            for i in items if i.configs}


DW7 = sample_key("depthwise", dict(h=8, w=8, c=16, k=7, s=1))
GAP = sample_key("global_pool", dict(h=8, w=8, c=16))


def test_a_flagged_kernel_is_measured_added_and_only_its_prediction_changes(tmp_path):
    path = make_profile(tmp_path / "p.json")
    model = small_model()
    before = kernel_predictions(path, model)
    assert DW7 in before
    rt = FakeRuntime()
    res = extend_profile(path, [("small", model)], runtime=rt, log=lambda m: None)
    flagged = [DW7, GAP]  # a kernel path the table never saw, an op kind it lacks
    assert [s.key for s in res.measured] == flagged
    assert [sample_key(op, cfg) for _, op, cfg in res.outside] == flagged
    # the profile's harness: 3 passes of 20 repeats (its defaults), one chunk
    assert rt.measured == flagged * 3
    stored = {s.key: s for s in DeviceProfile.load(path).samples}
    assert len(stored[DW7].raw_ms) == 60
    assert stored[DW7].min_ms == pytest.approx(device_ms("depthwise", dict(h=8, w=8, c=16, k=7, s=1)))
    assert res.refitted and DeviceProfile.load(path).fitted["lookup"]["key"]
    after = kernel_predictions(path, model)
    assert after[DW7] == pytest.approx(stored[DW7].min_ms)  # now a table point
    assert after[DW7] > 3 * before[DW7]
    others = [k for k in before if k not in flagged]
    assert len(others) == 2 and all(after[k] == before[k] for k in others)

    # a second run finds nothing outside the table and measures nothing
    again = extend_profile(path, [("small", model)], runtime=rt, log=lambda m: None)
    assert again.measured == [] and again.outside == [] and rt.measured == flagged * 3


def test_measuring_stops_between_chunks_and_a_rerun_skips_what_was_kept():
    from latency_lab.profiler import CHUNK, measure_kernels
    from latency_lab.timing import TimingConfig

    kernels = [("dense", dict(rows=1, cin=8 + i, cout=10)) for i in range(CHUNK + 6)]
    rt, saved = FakeRuntime(), []
    timing = TimingConfig.latency(repeats=5)
    got, stopped = measure_kernels(rt, kernels, timing, 2, on_batch=lambda s: saved.append(dict(s)),
                                   stop_reason=lambda: "signal" if saved else None)
    assert stopped == "signal" and len(saved) == 1 and len(got) == CHUNK
    assert all(len(s.raw_ms) == 10 for s in got.values())  # whole samples: both passes
    rt2 = FakeRuntime()
    rest, stopped = measure_kernels(rt2, kernels, timing, 2, done=saved[0])
    assert stopped is None and len(rest) == CHUNK + 6 and len(rt2.measured) == 6 * 2


def test_extending_refuses_a_shipped_name_and_another_runtime(tmp_path):
    with pytest.raises(ProfileError, match="shipped profile name"):
        extend_profile("t4", [], runtime=FakeRuntime())
    with pytest.raises(ProfileError, match="does not exist"):
        extend_profile(tmp_path / "nope.json", [], runtime=FakeRuntime())
    path = make_profile(tmp_path / "p.json")
    rt = FakeRuntime()
    rt.info = lambda: dict(RUNTIME, threads=2)
    with pytest.raises(ProfileError, match="threads"):
        extend_profile(path, [("small", small_model())], runtime=rt, log=lambda m: None)


def test_validate_per_layer_rows_sum_to_the_kernel_totals(tmp_path, monkeypatch):
    path = make_profile(tmp_path / "p.json")
    rt = FakeRuntime()
    monkeypatch.setattr(runtimes, "for_profile", lambda prof: rt)
    model = small_model()
    report = validate([("small", model)], str(path), ("lookup", "roofline"),
                      measurements={"small": (1.0, 0.01)}, reference=None, per_layer=True)
    r = report.results[0]
    k = r.kernels
    assert k is not None and len(k.rows) == len(work_items(model, "litert"))
    for p in ("lookup", "roofline"):
        assert sum(row.predicted_ms[p] for row in k.rows) == k.predicted_ms(p)
        assert k.predicted_ms(p) + k.per_invocation_ms == pytest.approx(r.predicted_ms[p])
    measured = {key: device_ms(*[key.split("|")[0], json.loads(key.split("|", 1)[1])])
                for key in set(rt.measured)}
    assert k.measured_ms == pytest.approx(sum(
        sum(measured[sample_key(op, cfg)] for op, cfg in row.configs)
        for row in k.rows if row.configs))
    assert sum(l["measured_ms"] or 0.0 for l in k.per_layer()) == pytest.approx(k.measured_ms)
    worst = k.worst("lookup")
    assert worst[0].layer == "dw7"  # the slow path the table never saw
    errors = [abs(row.error_ms("lookup")) for row in worst]
    assert errors == sorted(errors, reverse=True)
    data = r.to_dict()["per_kernel"]
    assert data["kernels_measured_ms"] == k.measured_ms and len(data["kernels"]) == len(k.rows)
    assert "kernels_vs_network_pct" in data


@pytest.mark.parametrize("argv", [
    ["predict", "keras.applications.MobileNet", "--profile", "t4", "--measure-missing"],
    ["predict", "keras.applications.MobileNet", "--profile", "missing.json",
     "--measure-missing"],
    ["profile", "--out", "missing.json", "--extend-for", "keras.applications.MobileNet"],
    ["profile", "--out", "p.json", "--overwrite", "--extend-for", "m.keras"],
])
def test_cli_argument_errors_exit_2(tmp_path, monkeypatch, argv, capsys):
    monkeypatch.chdir(tmp_path)
    make_profile(tmp_path / "p.json")
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_extend_for_without_out_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--extend-for", "m.keras"])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err


def test_predict_measure_missing_prints_before_and_after(tmp_path, monkeypatch, capsys):
    path = make_profile(tmp_path / "p.json")
    small_model().save(tmp_path / "m.keras")
    rt = FakeRuntime()
    monkeypatch.setattr(runtimes, "for_profile", lambda prof: rt)
    argv = ["predict", str(tmp_path / "m.keras"), "--profile", str(path), "--measure-missing"]
    assert main(argv + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [o["op"] for o in data["before"]["outside_table"]] == ["depthwise", "global_pool"]
    assert data["outside_table"] == [] and data["latency_ms"] > data["before"]["latency_ms"]
    assert [m["op"] for m in data["measured_samples"]] == ["depthwise", "global_pool"]
    assert main(argv) == 0  # again: nothing left to measure
    out = capsys.readouterr().out
    assert "before:" in out and "after:" in out and len(rt.measured) == 2 * 3


def test_validate_per_layer_writes_the_kernel_tables(tmp_path, monkeypatch, capsys):
    path = make_profile(tmp_path / "p.json")
    small_model().save(tmp_path / "m.keras")
    monkeypatch.setattr(runtimes, "for_profile", lambda prof: FakeRuntime())
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps titles to the terminal's width
    assert main(["validate", str(tmp_path / "m.keras"), "--profile", str(path), "--passes", "1",
                 "--per-layer", "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "worst kernels" in out and "kernels measured alone sum to" in out
    data = json.loads((tmp_path / "r" / "validation.json").read_text())
    per_kernel = data["models"][0]["per_kernel"]
    assert [row["layer"] for row in per_kernel["layers"]] == ["dw7", "conv", "gap", "fc"]
    assert "| worst kernels |" in (tmp_path / "r" / "per_kernel.md").read_text()


def test_profile_extend_for_adds_the_kernels_of_several_models(tmp_path, monkeypatch):
    path = make_profile(tmp_path / "p.json")
    small_model().save(tmp_path / "m.keras")
    x = keras.Input((8, 8, 16))
    keras.Model(x, L.DepthwiseConv2D(5, padding="same")(x)).save(tmp_path / "n.keras")
    rt = FakeRuntime()
    monkeypatch.setattr(runtimes, "for_profile", lambda prof: rt)
    n_before = len(DeviceProfile.load(path).samples)
    assert main(["profile", "--out", str(path), "--extend-for", str(tmp_path / "m.keras"),
                 str(tmp_path / "n.keras")]) == 0
    keys = {s.key for s in DeviceProfile.load(path).samples}
    assert {DW7, GAP} <= keys and len(keys) > n_before + 1
    assert len(set(rt.measured)) == len(keys) - n_before
