"""LatencyRegularizer: cost from a device profile, agreeing with `latency-lab predict`,
shrinking when channels die, and a term whose gradient reaches only the regularized
weights."""

import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)
from backend_helpers import gradients, no_gradient  # noqa: E402
L = keras.layers

from latency_lab import op_kinds  # noqa: E402
from latency_lab.bench.ceilings import ceilings_from_samples  # noqa: E402
from latency_lab.predict import predict_model  # noqa: E402
from latency_lab.profile import DeviceProfile, Sample  # noqa: E402
from regularizers import FlopsRegularizer, LatencyRegularizer, StrengthController  # noqa: E402


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
    w = op_kinds.work(op, cfg)
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
        roofline=ceilings_from_samples(objs), samples=objs)


def test_spec_profile_cost_matches_predict_and_drops_with_dead_channels():
    model = _model()
    reg = LatencyRegularizer("t4", model=model)
    full = predict_model(model, "t4", "roofline").latency_ms
    assert reg.cost_name == "latency_ms"
    assert reg.get_cost() == pytest.approx(full, rel=1e-9)
    model.get_layer("bn1").gamma.assign(np.r_[np.ones(4), np.zeros(12)].astype("float32"))
    assert reg.get_alive_counts()["conv1"] == 4
    assert reg.get_cost() < full


@pytest.fixture(scope="module")
def measured():
    """One model for the LiteRT-profile tests (its conversion is cached per model; under
    JAX / PyTorch it runs in a TensorFlow child process), gammas reset for each use."""
    model, prof = _model(), _measured_profile()

    def fresh():
        for name in ("bn1", "bn2"):
            gamma = model.get_layer(name).gamma
            gamma.assign(np.ones(gamma.shape, "float32"))
        return model, prof

    return fresh


# Under JAX / PyTorch the LiteRT binding is TensorFlow's (test_regularizers_backends
# checks the kernel list and trains through it); a conversion child per model is too
# slow for the jax pass.
@pytest.mark.only_backend("tensorflow")
def test_measured_profile_cost_matches_predict_at_full_width(measured):
    model, prof = measured()
    reg = LatencyRegularizer(prof, model=model, predictor="lookup")
    assert reg.get_cost() == pytest.approx(predict_model(model, prof, "lookup").latency_ms,
                                           rel=1e-9)
    before = reg.get_cost()
    model.get_layer("bn2").gamma.assign(np.r_[np.ones(8), np.zeros(24)].astype("float32"))
    assert reg.get_alive_counts()["conv2"] == 8
    assert reg.get_cost() < before


# Under JAX / PyTorch the LiteRT binding is TensorFlow's (test_regularizers_backends
# checks the kernel list and trains through it); a conversion child per model is too
# slow for the jax pass.
@pytest.mark.only_backend("tensorflow")
def test_term_gradient_reaches_only_gammas_and_is_positive(measured):
    model, prof = measured()
    reg = LatencyRegularizer(prof, model=model)
    term, grads = gradients(reg.get_regularization_term, model.trainable_variables)
    grads = dict(zip([v.path for v in model.trainable_variables], grads))
    assert float(term) > 0
    for path, g in grads.items():
        if path.endswith("gamma") and ("bn1" in path or "bn2" in path):
            assert g is not None and float(np.sum(np.abs(g))) > 0, path
        else:
            assert g is None or float(np.sum(np.abs(g))) == 0, path


@pytest.mark.backend_independent
def test_config_round_trip_needs_profile():
    model = _model()
    reg = LatencyRegularizer("t4", model=model, threshold=0.05)
    cfg = reg.get_config()
    assert cfg["threshold"] == 0.05 and cfg["predictor"] == "roofline"
    with pytest.raises(ValueError, match="profile"):
        LatencyRegularizer.from_config(cfg, model=model)
    again = LatencyRegularizer.from_config(cfg, model=model, profile="t4")
    assert again.get_cost() == pytest.approx(reg.get_cost())


@pytest.mark.backend_independent
def test_lookup_on_spec_profile_is_a_clear_error():
    from latency_lab.errors import ProfileError

    with pytest.raises(ProfileError, match="no lookup-table samples"):
        LatencyRegularizer("t4", model=_model(), predictor="lookup")


# ---------------------------------------------------------------- target mode
# The strength becomes a variable that dual ascent moves towards the target (the
# mechanics live in NetworkRegularizer, so FlopsRegularizer exercises them too); the
# wrapped loss reads it at every step and StrengthController drives it in fit().


def test_strength_starts_at_inverse_cost_and_follows_the_sign_of_the_gap():
    model = _model()
    full = FlopsRegularizer(model=model).get_cost()
    reg = FlopsRegularizer(model=model, target=0.5 * full, target_rate=0.1)
    reg.wrap_loss("mse")
    s0 = float(reg.strength_variable.numpy())
    assert s0 == pytest.approx(1.0 / full, rel=1e-6)
    # cost = 2 x target: log strength grows by rate * (2 - 1)
    assert reg.update_strength() == pytest.approx(s0 * math.exp(0.1), rel=1e-5)
    # an explicit goal above the cost makes it shrink: rate * (full / (4 full) - 1)
    s1 = float(reg.strength_variable.numpy())
    assert reg.update_strength(target=4 * full) == pytest.approx(s1 * math.exp(-0.075), rel=1e-5)


def test_strength_is_bounded():
    model = _model()
    full = FlopsRegularizer(model=model).get_cost()
    reg = FlopsRegularizer(model=model, target=1e-6 * full, target_rate=5.0)
    reg.wrap_loss("mse", strength=1.0)
    for _ in range(10):
        value = reg.update_strength()
    assert value == pytest.approx(100.0)


def test_wrapped_loss_reads_the_variable_without_recompiling():
    model = _model()
    reg = FlopsRegularizer(model=model, target=1.0)
    loss = reg.wrap_loss("mse", strength=1e-6)
    y = np.zeros((2, 10), "float32")
    x = np.ones((2, 8, 8, 3), "float32")
    pred = model(x)
    term = float(reg.get_regularization_term())
    base = float(keras.losses.MeanSquaredError()(y, pred))
    assert float(loss(y, pred)) == pytest.approx(base + 1e-6 * term, rel=1e-4)
    reg.strength_variable.assign(2e-6)
    assert float(loss(y, pred)) == pytest.approx(base + 2e-6 * term, rel=1e-4)


@pytest.mark.backend_independent
@pytest.mark.backend_independent
@pytest.mark.parametrize("value", [-1.0, 0.0, float("nan"), float("inf"), "1"])
def test_invalid_target_ms_names_the_argument(value):
    with pytest.raises(ValueError, match="`target_ms`"):
        LatencyRegularizer("t4", model=_model(), target_ms=value)


@pytest.mark.parametrize("value", [0.0, -0.1, float("nan")])
def test_invalid_target_rate(value):
    with pytest.raises(ValueError, match="`target_rate`"):
        FlopsRegularizer(model=_model(), target=1.0, target_rate=value)


@pytest.mark.backend_independent
def test_latency_target_round_trips_through_config():
    model = _model()
    reg = LatencyRegularizer("t4", model=model, target_ms=0.01, target_rate=0.03)
    cfg = reg.get_config()
    assert cfg["target_ms"] == 0.01 and cfg["target_rate"] == 0.03 and "target" not in cfg
    again = LatencyRegularizer.from_config(cfg, model=model, profile="t4")
    assert again.target_ms == 0.01 and again.target_rate == 0.03


@pytest.mark.backend_independent
def test_without_target_strength_is_required_and_no_variable():
    reg = FlopsRegularizer(model=_model())
    with pytest.raises(ValueError, match="`strength`"):
        reg.wrap_loss("mse")
    with pytest.raises(ValueError, match="target mode"):
        reg.init_strength()
    with pytest.raises(ValueError, match="target mode"):
        StrengthController(reg)


def test_controller_anneals_the_goal():
    model = _model()
    reg = LatencyRegularizer("t4", model=model, target_ms=1e-4)
    reg.wrap_loss("mse")
    ctl = StrengthController(reg, anneal_steps=10)
    ctl.on_train_begin()
    start = reg.get_cost()
    assert ctl.goal(0) == pytest.approx(start)
    assert ctl.goal(5) == pytest.approx(0.5 * (start + 1e-4))
    assert ctl.goal(10) == ctl.goal(50) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="anneal_steps"):
        StrengthController(reg, anneal_steps=-1)


def test_fit_with_controller_moves_strength_and_needs_compiled_loss():
    model = _model()
    reg = LatencyRegularizer("t4", model=model, target_ms=1e-5, target_rate=0.1)
    ctl = StrengthController(reg, every_n_steps=2)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
    y = np.zeros((16, 10), "float32")
    with pytest.raises(ValueError, match="wrap_loss"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[ctl])
    model.compile(optimizer="sgd", loss=reg.wrap_loss("mse"))
    s0 = float(reg.strength_variable.numpy())
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[ctl])
    assert [h[0] for h in ctl.history] == [2, 4]
    # the cost is far above the 10 ns target: the strength went up at every update
    assert ctl.history[0][2] > s0 and ctl.history[1][2] > ctl.history[0][2]
    assert float(reg.strength_variable.numpy()) == pytest.approx(ctl.history[-1][2])


@pytest.mark.backend_independent
def test_a_kernel_scales_its_input_channels_with_the_input_and_the_rest_with_the_output():
    for op in ("conv2d", "transpose_conv"):
        cfg = dict(h=8, w=8, cin=40, cout=20, k=3, s=2)
        assert op_kinds.get(op).scale(cfg, 0.5, 0.25) == dict(cfg, cin=20, cout=5)
    dense = dict(rows=49, cin=64, cout=10)
    assert op_kinds.get("dense").scale(dense, 0.5, 0.3) == dict(rows=49, cin=32, cout=3)
    # A depthwise conv's channels are its output's (and its input's: one group).
    assert op_kinds.get("depthwise").scale(dict(h=8, w=8, c=40, k=3, s=1), 0.5, 0.25)["c"] == 10
    # A concat's inputs are its output's channel segments; nothing scales below 1.
    assert op_kinds.get("concat").scale(dict(h=4, w=4, c1=3, c2=8), 0.5, 0.1) == \
        dict(h=4, w=4, c1=1, c2=1)
