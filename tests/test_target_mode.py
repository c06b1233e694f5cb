"""Target mode: the strength is a variable that dual ascent moves towards the target,
the wrapped loss reads it at every step, and StrengthController drives it in fit()."""

import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from regularizers import FlopsRegularizer, LatencyRegularizer, StrengthController  # noqa: E402

L = keras.layers


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


@pytest.mark.parametrize("value", [-1.0, 0.0, float("nan"), float("inf"), "1"])
def test_invalid_target_ms_names_the_argument(value):
    with pytest.raises(ValueError, match="`target_ms`"):
        LatencyRegularizer("t4", model=_model(), target_ms=value)


@pytest.mark.parametrize("value", [0.0, -0.1, float("nan")])
def test_invalid_target_rate(value):
    with pytest.raises(ValueError, match="`target_rate`"):
        FlopsRegularizer(model=_model(), target=1.0, target_rate=value)


def test_latency_target_round_trips_through_config():
    model = _model()
    reg = LatencyRegularizer("t4", model=model, target_ms=0.01, target_rate=0.03)
    cfg = reg.get_config()
    assert cfg["target_ms"] == 0.01 and cfg["target_rate"] == 0.03 and "target" not in cfg
    again = LatencyRegularizer.from_config(cfg, model=model, profile="t4")
    assert again.target_ms == 0.01 and again.target_rate == 0.03


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
