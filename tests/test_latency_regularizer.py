"""LatencyRegularizer: cost from a device profile, agreeing with `latency-lab predict`,
shrinking when channels die, and a term whose gradient reaches only the regularized
weights."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
L = keras.layers

from latency_lab import microbench  # noqa: E402
from latency_lab.predict import predict_model  # noqa: E402
from latency_lab.profile import DeviceProfile, Sample  # noqa: E402
from regularizers import LatencyRegularizer  # noqa: E402


def _model():
    x = keras.Input((8, 8, 3))
    h = L.Conv2D(16, 3, padding="same", name="conv1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(name="relu1")(h)
    h = L.Conv2D(32, 3, strides=2, padding="same", name="conv2")(h)
    h = L.BatchNormalization(name="bn2")(h)
    h = L.ReLU(name="relu2")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    y = L.Dense(10, name="logits")(h)
    return keras.Model(x, y, name="tiny")


def _fake_ms(op, cfg):
    """A made-up device: 10 GFLOP/s and 5 GB/s, plus 2 us per op."""
    w = microbench.work(op, cfg)
    return max(w.flops / 1e10, w.bytes_total / 5e9) * 1e3 + 0.002


def _measured_profile():
    """A litert profile with a small lookup table around the tiny model's kernels."""
    samples = []
    for cin in (3, 4, 8, 16):
        for cout in (4, 8, 16, 32):
            for h, s in ((8, 1), (8, 2)):
                cfg = dict(h=h, w=h, cin=cin, cout=cout, k=3, s=s)
                samples.append(("conv2d", cfg))
    for cin in (4, 8, 16, 32):
        samples.append(("dense", dict(rows=1, cin=cin, cout=10)))
        samples.append(("global_pool", dict(h=4, w=4, c=cin)))
    samples += [("add", dict(h=64, w=64, c=1024, broadcast=False)),
                ("depthwise", dict(h=8, w=8, c=8, k=3, s=1)),
                ("depthwise", dict(h=8, w=8, c=16, k=3, s=1))]
    objs = [Sample(op, cfg, _fake_ms(op, cfg), 0.0, 5, (_fake_ms(op, cfg),) * 5)
            for op, cfg in samples]
    return DeviceProfile.create(
        device={"kind": "cpu", "name": "fake cpu", "fingerprint": None, "info": {}},
        runtime={"name": "litert", "version": "test", "backend": "xnnpack", "device": "cpu",
                 "threads": 1, "dtype": "float32", "batch": 1},
        roofline=microbench.ceilings_from_samples(objs), samples=objs)


def test_spec_profile_cost_matches_predict_and_drops_with_dead_channels():
    model = _model()
    reg = LatencyRegularizer("t4", model=model)
    full = predict_model(model, "t4", "roofline").latency_ms
    assert reg.cost_name == "latency_ms"
    assert reg.get_cost() == pytest.approx(full, rel=1e-9)
    model.get_layer("bn1").gamma.assign(np.r_[np.ones(4), np.zeros(12)].astype("float32"))
    assert reg.get_alive_counts()["conv1"] == 4
    assert reg.get_cost() < full


def test_measured_profile_cost_matches_predict_at_full_width():
    model = _model()
    prof = _measured_profile()
    reg = LatencyRegularizer(prof, model=model, predictor="lookup")
    assert reg.get_cost() == pytest.approx(predict_model(model, prof, "lookup").latency_ms,
                                           rel=1e-9)
    before = reg.get_cost()
    model.get_layer("bn2").gamma.assign(np.r_[np.ones(8), np.zeros(24)].astype("float32"))
    assert reg.get_alive_counts()["conv2"] == 8
    assert reg.get_cost() < before


def test_term_gradient_reaches_only_gammas_and_is_positive():
    model = _model()
    reg = LatencyRegularizer(_measured_profile(), model=model)
    with tf.GradientTape() as tape:
        term = reg.get_regularization_term()
    grads = dict(zip([v.path for v in model.trainable_variables],
                     tape.gradient(term, model.trainable_variables)))
    assert float(term) > 0
    for path, g in grads.items():
        if path.endswith("gamma") and ("bn1" in path or "bn2" in path):
            assert g is not None and float(tf.reduce_sum(tf.abs(g))) > 0, path
        else:
            assert g is None or float(tf.reduce_sum(tf.abs(g))) == 0, path


def test_config_round_trip_needs_profile():
    model = _model()
    reg = LatencyRegularizer("t4", model=model, threshold=0.05)
    cfg = reg.get_config()
    assert cfg["threshold"] == 0.05 and cfg["predictor"] == "roofline"
    with pytest.raises(ValueError, match="profile"):
        LatencyRegularizer.from_config(cfg, model=model)
    again = LatencyRegularizer.from_config(cfg, model=model, profile="t4")
    assert again.get_cost() == pytest.approx(reg.get_cost())


def test_lookup_on_spec_profile_is_a_clear_error():
    from latency_lab.errors import ProfileError

    with pytest.raises(ProfileError, match="no lookup-table samples"):
        LatencyRegularizer("t4", model=_model(), predictor="lookup")
