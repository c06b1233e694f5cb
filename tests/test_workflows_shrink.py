"""latency_lab.workflows (the shrink application): data loading (digits, .npz) with clear errors, the end-to-end run
on a tiny task (learned structure at the target, report files, a real LiteRT
measurement), and the `latency-lab shrink` command's bad-input cases."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from latency_lab.cli import main  # noqa: E402
from latency_lab.errors import LatencyLabError  # noqa: E402
from latency_lab.predict import predict_model  # noqa: E402
from latency_lab.workflows import (ModelRow, ShrinkConfig, ShrinkResult, digits_cnn,  # noqa: E402
                                   digits_task, digits_vit, full_structure, load_task,
                                   shrink, write_report)
from latency_lab.workflows import phases  # noqa: E402

PROFILE = "xeon_vm_2c_litert"  # a shipped measured LiteRT profile


def test_digits_task_shapes_and_split():
    t = digits_task(image_size=16, seed=0)
    assert t.input_shape == (16, 16, 1) and t.classes == 10
    assert len(t.x_train) + len(t.x_val) == 1797
    # nearest up-sampling: every 2x2 block is constant
    assert np.array_equal(t.x_train[:, ::2, ::2], t.x_train[:, 1::2, 1::2])
    hard = digits_task(image_size=32, digit_size=16, noise=0.5, copies=2, seed=0)
    assert hard.input_shape == (32, 32, 1) and len(hard.x_train) == 2 * len(t.x_train)
    assert hard.name == "digits32-shift16-noise0.5"
    with pytest.raises(ValueError, match="digit_size"):
        digits_task(image_size=16, digit_size=24)


def test_load_task_reads_npz_and_adds_channel_axis(tmp_path):
    p = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(p, x_train=rng.random((6, 8, 8)), y_train=np.arange(6) % 3,
             x_test=rng.random((3, 8, 8)), y_test=np.eye(3)[[0, 1, 2]])
    t = load_task(p)
    assert t.input_shape == (8, 8, 1) and t.classes == 3
    assert t.y_val.tolist() == [0, 1, 2]  # one-hot turned into indices
    assert t.x_train.dtype == np.float32


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((2, 4, 4, 1))}, "y_train"),
    ({"x_train": np.zeros((2, 4, 4, 1)), "y_train": np.zeros(2)}, "no validation split"),
    ({"x_train": np.zeros((2, 4)), "y_train": np.zeros(2), "x_val": np.zeros((2, 4)),
      "y_val": np.zeros(2)}, "x_train has shape"),
    ({"x_train": np.zeros((2, 4, 4, 1)), "y_train": np.zeros(3),
      "x_val": np.zeros((2, 4, 4, 1)), "y_val": np.zeros(2)}, "y_train has shape"),
    ({"x_train": np.zeros((2, 4, 4, 1)), "y_train": np.zeros(2),
      "x_val": np.zeros((2, 5, 5, 1)), "y_val": np.zeros(2)}, "differ in shape"),
    ({"x_train": np.full((2, 4, 4, 1), np.nan), "y_train": np.zeros(2),
      "x_val": np.zeros((2, 4, 4, 1)), "y_val": np.zeros(2)}, "NaN"),
    ({"x_train": np.zeros((2, 4, 4, 1)), "y_train": np.array([0.5, 1.0]),
      "x_val": np.zeros((2, 4, 4, 1)), "y_val": np.zeros(2)}, "class indices"),
])
def test_load_task_bad_files_name_the_array(tmp_path, arrays, message):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(LatencyLabError, match=message):
        load_task(p)


def test_load_task_missing_and_corrupt(tmp_path):
    with pytest.raises(LatencyLabError, match="does not exist"):
        load_task(tmp_path / "nope.npz")
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(LatencyLabError, match="not a readable .npz"):
        load_task(bad)


def test_full_structure_lists_every_conv_and_dense():
    m = digits_cnn((16, 16, 1), 10, widths=(4, 8))
    assert full_structure(m) == {"conv1": 4, "conv2": 8, "logits": 10}


def test_full_structure_of_a_vit_counts_heads_and_mlp_units():
    m = digits_vit((16, 16, 1), 10, width=16, heads=4, depth=1, mlp=24, patch=4)
    assert full_structure(m) == {"patch_embed": 16, "block0_fc1": 24, "block0_fc2": 16,
                                 "logits": 10, "block0_mha": 4}


def test_shrink_a_vit_prunes_heads_and_mlp_units(tmp_path):
    """The transformer run: group_lasso learns heads and MLP units for a latency target
    (the epyc_avx512 profile times batch matmul and softmax), the slim ViT is rebuilt,
    retrained, measured and saved; the residual stream keeps its width."""
    task = digits_task(image_size=16, seed=0)
    model = digits_vit(task.input_shape, task.classes, width=16, heads=4, depth=1, mlp=32)
    profile = "epyc_avx512_vm_2c_litert"
    full_ms = predict_model(model, profile).latency_ms
    # one snap round and one measuring pass: the test is about structure, not timing
    r = shrink(model, task, profile, 0.7 * full_ms, algorithm="group_lasso",
               pretrain_epochs=1, learn_epochs=1, retrain_epochs=1, out_dir=tmp_path,
               seed=0, baseline=True, snap_rounds=1, measure_passes=1)
    full = r.rows["full"].structure
    assert full["block0_mha"] == 4 and full["block0_fc1"] == 32
    for name in ("learned", "uniform"):
        s = r.rows[name].structure
        assert 1 <= s["block0_mha"] <= 4 and 1 <= s["block0_fc1"] <= 32
        assert s["patch_embed"] == s["block0_fc2"] == 16  # the residual stream
        assert r.rows[name].measured_ms > 0
    u = r.rows["uniform"].structure  # heads and MLP width scaled together
    assert abs(u["block0_mha"] / 4 - u["block0_fc1"] / 32) <= 0.25
    slim = keras.saving.load_model(tmp_path / "slim.keras")
    assert full_structure(slim) == r.rows["learned"].structure
    assert slim.get_layer("block0_mha").num_heads == r.rows["learned"].structure["block0_mha"]


def test_shrink_end_to_end_on_a_tiny_task(tmp_path):
    task = digits_task(image_size=16, seed=0)
    model = digits_cnn(task.input_shape, task.classes, widths=(8, 16, 16))
    full_ms = predict_model(model, PROFILE).latency_ms
    target = 0.6 * full_ms
    events, pretrained = [], []

    def on_event(name, info):
        events.append(name)
        if name == "baseline":  # right after pretraining, before learning
            pretrained.extend(w.copy() for w in model.get_weights())

    r = shrink(model, task, PROFILE, target, pretrain_epochs=1, learn_epochs=1,
               retrain_epochs=1, out_dir=tmp_path, seed=0, on_event=on_event)
    assert list(r.rows) == ["full", "learned", "uniform"]
    # retrain_from="pretrained" (default): the learning phase's weights were set aside
    assert r.retrain_from == "pretrained"
    for now, before in zip(model.get_weights(), pretrained, strict=True):
        np.testing.assert_array_equal(now, before)
    for name in ("learned", "uniform"):
        row = r.rows[name]
        # snapped to the (measured-corrected) goal: at or below it, and every layer
        # within its full width; the correction only re-aims by measured / predicted
        assert row.predicted_ms <= r.snap_goal_ms[name] * (1 + 1e-9)
        assert 0.2 * target < r.snap_goal_ms[name] < 5 * target
        assert all(1 <= row.structure[k] <= v for k, v in r.rows["full"].structure.items())
        assert row.measured_ms > 0 and np.isfinite(row.measured_ms)
        assert 0.0 <= row.accuracy <= 1.0
    assert r.rows["learned"].structure["logits"] == 10  # outputs never pruned
    assert r.rows["full"].predicted_ms == pytest.approx(full_ms)
    assert r.strength_history and all(s > 0 for _, _, s in r.strength_history)
    for phase in ("pretrain", "baseline", "learn", "snap", "retrain", "measure", "done"):
        assert phase in events
    for f in ("report.md", "result.json", "accuracy_vs_latency.png", "channels.png",
              "slim.keras"):
        assert (tmp_path / f).stat().st_size > 0, f
    assert list((tmp_path / "learned_structure").glob("structure_*.json"))
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["rows"]["learned"]["structure"] == r.rows["learned"].structure
    slim = keras.saving.load_model(tmp_path / "slim.keras")
    assert full_structure(slim) == r.rows["learned"].structure
    assert "| learned |" in (tmp_path / "report.md").read_text()


def test_shrink_with_logistic_sigmoid_learns_on_gates_and_exports_no_gate(tmp_path,
                                                                          monkeypatch):
    """The gates are trained (their logits move; the model's own layers are trained
    through them), the structure names the model's convs, and neither the slim model
    nor the saved slim.keras has a gate layer."""
    from regularizers.gates import ProbabilisticGate

    task = digits_task(image_size=16, seed=0)
    model = digits_cnn(task.input_shape, task.classes, widths=(8, 16, 16))
    target = 0.6 * predict_model(model, PROFILE).latency_ms
    gated = []
    real = phases.TRAINING_MODEL["logistic_sigmoid"]
    monkeypatch.setitem(phases.TRAINING_MODEL, "logistic_sigmoid",
                        lambda m, c: gated.append(real(m, c)) or gated[-1])
    r = shrink(model, task, PROFILE, target, algorithm="logistic_sigmoid",
               pretrain_epochs=1, learn_epochs=1, retrain_epochs=1, baseline=False,
               measure=False, out_dir=tmp_path, seed=0)
    assert r.algorithm == "logistic_sigmoid"
    gates = [l for l in gated[0].layers if isinstance(l, ProbabilisticGate)]
    assert {g.name for g in gates} >= {"relu1_gate", "relu2_gate", "relu3_gate"}
    assert any(np.any(np.asarray(g.logits) != 2.5) for g in gates)  # they learned
    assert set(r.learned_raw) == set(full_structure(model))
    assert not any(isinstance(l, ProbabilisticGate) for l in model.layers)
    slim = keras.saving.load_model(tmp_path / "slim.keras")
    assert not any(isinstance(l, ProbabilisticGate) for l in slim.layers)
    assert full_structure(slim) == r.rows["learned"].structure
    assert r.rows["learned"].predicted_ms <= r.snap_goal_ms["learned"] * (1 + 1e-9)
    from latency_lab.cli import build_parser

    args = build_parser().parse_args(["shrink", "--algorithm", "logistic_sigmoid"])
    assert args.algorithm == "logistic_sigmoid"


def test_a_measured_re_aim_below_the_smallest_structure_keeps_the_last_snap(monkeypatch):
    """Timing can say a snapped net is far slower than predicted (tiny nets: the
    runtime's fixed costs); re-aiming below the smallest structure must not throw the
    trained models away."""
    task = digits_task(image_size=16, seed=0)
    model = digits_cnn(task.input_shape, task.classes, widths=(8, 16, 16))
    full_ms = predict_model(model, PROFILE).latency_ms
    monkeypatch.setattr(phases, "probe_ms", lambda m, prof: 1e3 * full_ms)
    events = []
    r = shrink(model, task, PROFILE, 0.7 * full_ms, pretrain_epochs=1, learn_epochs=1,
               retrain_epochs=1, measure=True, seed=0,
               on_event=lambda name, info: events.append((name, info)))
    limits = [info for name, info in events if name == "snap_limit"]
    assert {info["model"] for info in limits} == {"uniform", "learned"}
    assert all("unreachable" in info["reason"] for info in limits)
    assert r.snap_goal_ms["learned"] == pytest.approx(0.7 * full_ms)  # the first snap kept
    assert r.rows["learned"].predicted_ms <= 0.7 * full_ms * (1 + 1e-9)


def test_the_snap_keeps_the_candidate_measured_closest_to_the_target(monkeypatch):
    """A re-aim can overshoot (whole channels, timing noise): every candidate is
    measured and the closest one wins, not the last one."""
    import itertools

    task = digits_task(image_size=16, seed=0)
    model = digits_cnn(task.input_shape, task.classes, widths=(8, 16, 16))
    target = 0.6 * predict_model(model, PROFILE).latency_ms
    misses = itertools.cycle([1.08, 0.7, 0.85])  # the first candidate is the closest
    probes = []
    monkeypatch.setattr(phases, "probe_ms",
                        lambda m, prof: probes.append(m) or next(misses) * target)
    r = shrink(model, task, PROFILE, target, pretrain_epochs=1, learn_epochs=1,
               retrain_epochs=1, measure=True, seed=0, snap_rounds=2, baseline=False)
    assert len(probes) == 3  # the first snap and two re-aims, each measured
    assert r.snap_goal_ms["learned"] == pytest.approx(target)  # the first goal kept
    assert r.rows["learned"].predicted_ms <= target * (1 + 1e-9)


def test_shrink_rejects_a_target_above_the_full_model():
    task = digits_task(image_size=8)
    model = digits_cnn(task.input_shape, task.classes, widths=(4,))
    with pytest.raises(ValueError, match="not below the full model"):
        shrink(model, task, PROFILE, 1e3, pretrain_epochs=0, measure=False)
    with pytest.raises(ValueError, match="algorithm.*logistic_sigmoid"):
        shrink(model, task, PROFILE, 1e-3, algorithm="l0")
    with pytest.raises(ValueError, match="retrain_from"):
        shrink(model, task, PROFILE, 1e-3, retrain_from="scratch")


@pytest.mark.parametrize("field, value", [
    ("algorithm", "l0"), ("retrain_from", "scratch"),
    ("pretrain_epochs", -1), ("learn_epochs", 1.5), ("retrain_epochs", True),
    ("snap_rounds", -2), ("seed", -1), ("batch_size", 0), ("align", 0),
    ("measure_passes", 0), ("learning_rate", 0.0), ("learning_rate", float("nan")),
    ("threshold", -1e-3), ("snap_tolerance", float("inf")), ("baseline", "yes"),
])
def test_shrink_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=f"`{field}`") as info:
        ShrinkConfig(**{field: value})
    assert repr(value) in str(info.value)


def test_shrink_config_defaults_are_shrinks_keyword_defaults():
    import inspect

    params = inspect.signature(shrink).parameters
    for name, value in ShrinkConfig().to_dict().items():
        assert params[name].default == value, name


def test_shrink_takes_a_config_or_keywords_not_both():
    task = digits_task(image_size=8)
    model = digits_cnn(task.input_shape, task.classes, widths=(4,))
    with pytest.raises(ValueError, match="either as `config` or as keywords.*learn_epochs"):
        shrink(model, task, PROFILE, 1e-3, config=ShrinkConfig(), learn_epochs=2)
    with pytest.raises(ValueError, match="must be a ShrinkConfig"):
        shrink(model, task, PROFILE, 1e-3, config={"learn_epochs": 2})
    with pytest.raises(ValueError, match="not below the full model"):  # config accepted
        shrink(model, task, PROFILE, 1e3, config=ShrinkConfig(pretrain_epochs=0))


def _result(uniform: bool = True) -> ShrinkResult:
    rows = {"full": ModelRow("full", {"conv1": 8, "logits": 10}, 0.9, 0.2, 0.25, 0.01, 900),
            "learned": ModelRow("learned", {"conv1": 4, "logits": 10}, 0.875, 0.1, 0.105,
                                0.01, 450)}
    if uniform:
        rows["uniform"] = ModelRow("uniform", {"conv1": 5, "logits": 10}, 0.8, 0.1)
    return ShrinkResult(target_ms=0.1, profile="p", runtime={"name": "litert", "threads": 1},
                        algorithm="gamma", rows=rows, learned_raw={"conv1": 3, "logits": 10},
                        learned_raw_ms=0.09, snap_factor=1.25,
                        snap_goal_ms={"learned": 0.1}, strength_history=[(1, 0.1, 1e-3)])


@pytest.mark.parametrize("uniform", [True, False])
def test_write_report_files_and_no_figure_left_open(tmp_path, uniform):
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    paths = write_report(_result(uniform), tmp_path)
    assert [p.name for p in paths] == ["result.json", "accuracy_vs_latency.png",
                                       "channels.png", "report.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert plt.get_fignums() == open_before  # figures are not registered with pyplot
    md = (tmp_path / "report.md").read_text()
    # hand-computed: 0.105 / 0.1 - 1 = +5.0 %, 87.5 % accuracy, channels raw 3 -> 4
    assert "| learned | 87.5% | 0.1000 | 0.1050 | +5.0% | 450 |" in md
    assert "| uniform | 80.0% | 0.1000 |  |  | 0 |" in md if uniform else "uniform" not in md
    assert ("| conv1 | 8 | 3 | 4 | 5 |" if uniform else "| conv1 | 8 | 3 | 4 |") in md
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["rows"]["learned"]["params"] == 450 and data["snap_factor"] == 1.25
    assert not list(tmp_path.glob(".*.tmp*"))  # atomic writes leave no temp file


@pytest.mark.parametrize("argv, message", [
    (["--model", "keras.applications.MobileNet"], "--model needs --data"),
    (["--target-fraction", "1.5"], "--target-fraction must be in"),
    (["--target-ms", "-1"], "--target-ms must be a positive"),
    (["--learn-epochs", "0"], "--learn-epochs must be >= 1"),
    (["--data", "/nonexistent/d.npz"], "does not exist"),
    (["--target-ms", "1000"], "not below the full model"),
    (["--network", "vit", "--model", "keras.applications.MobileNet", "--data", "d.npz"],
     "cannot go with --model"),
])
def test_shrink_cli_bad_input(capsys, tmp_path, argv, message):
    rc = main(["shrink", "--profile", PROFILE, "--pretrain-epochs", "0",
               "--out", str(tmp_path), *argv])
    assert rc == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_shrink_cli_model_and_data_shape_mismatch(capsys, tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x_train=np.zeros((4, 8, 8, 1)), y_train=np.zeros(4, int),
             x_val=np.zeros((2, 8, 8, 1)), y_val=np.zeros(2, int))
    m = digits_cnn((16, 16, 1), 10, widths=(4,))
    mp = tmp_path / "m.keras"
    m.save(mp)
    rc = main(["shrink", "--profile", PROFILE, "--model", str(mp), "--data", str(p),
               "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "inputs of shape (16, 16, 1)" in " ".join(capsys.readouterr().err.split())


def test_shrink_cli_on_a_user_model_and_npz(capsys, tmp_path):
    task = digits_task(image_size=16, seed=1)
    p = tmp_path / "d.npz"
    np.savez(p, x_train=task.x_train[:256], y_train=task.y_train[:256],
             x_val=task.x_val[:64], y_val=task.y_val[:64])
    mp = tmp_path / "user.keras"
    digits_cnn((16, 16, 1), 10, widths=(8, 16)).save(mp)
    out = tmp_path / "out"
    rc = main(["shrink", "--profile", PROFILE, "--model", str(mp), "--data", str(p),
               # a 4-7 us network: its kernels' fixed costs bound how far it can shrink
               "--target-fraction", "0.85", "--pretrain-epochs", "1", "--learn-epochs", "1",
               "--retrain-epochs", "1", "--no-baseline", "--align", "2", "--out", str(out),
               "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["rows"]) == ["full", "learned"]
    learned = data["rows"]["learned"]
    assert learned["predicted_ms"] <= data["snap_goal_ms"]["learned"] * (1 + 1e-9)
    assert learned["measured_ms"] > 0
    assert all(v % 2 == 0 for k, v in learned["structure"].items() if k != "logits")
    assert (out / "report.md").exists() and (out / "slim.keras").exists()
