"""FLOP and model-size regularizers: hand-computed costs and terms, gradients, training
integration (fit, custom loop, mixed precision, MirroredStrategy), structure export.

Backend-neutral except where marked: `make test` runs this file under TensorFlow and
again with KERAS_BACKEND=jax; the markers only_backend and backend_independent
(tests/conftest.py) say which tests run where."""

import json
import math
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)
from backend_helpers import dtype_name, gradients, no_gradient  # noqa: E402
from keras import ops  # noqa: E402
L = keras.layers

from regularizers import (  # noqa: E402
    FlopsRegularizer,
    ModelSizeRegularizer,
    NetworkRegularizer,
    StructureLogger,
    export_structure,
    load_structure,
)


def _set_gamma(model, name, values):
    model.get_layer(name).gamma.assign(np.asarray(values, dtype="float32"))


def _chain():
    """conv(3->8, k3, same) -> BN -> ReLU -> conv(8->4, k1) -> BN, 5x5 input."""
    x = keras.Input((5, 5, 3))
    h = L.Conv2D(8, 3, padding="same", name="conv1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(name="relu1")(h)
    h = L.Conv2D(4, 1, name="conv2")(h)
    y = L.BatchNormalization(name="bn2")(h)
    model = keras.Model(x, y, name="chain")
    _set_gamma(model, "bn1", [0, 0.5, 0, -2, 0.005, 1, 0, 0.3])
    return model


R1 = 0.5 + 2 + 0.005 + 1 + 0.3  # sum |gamma| of bn1 (all channels, dead ones too)


# ------------------------------------------------------------ hand-computed numbers
def test_chain_flops_cost_and_term():
    model = _chain()
    _set_gamma(model, "bn2", [0, 0, 0, 0])  # output layer: never pruned
    reg = FlopsRegularizer(model=model, threshold=1e-2)
    # alive(conv1) = |gamma| > 0.01: 0.5, 2, 1, 0.3 -> 4; conv2 is the output: 4.
    assert reg.get_alive_counts() == {"conv1": 4, "conv2": 4}
    # FLOPs = 2*25*9*3*A1 + 2*25*1*A1*4 at A1 = 4.
    assert reg.get_cost() == pytest.approx(2 * 25 * 9 * 3 * 4 + 2 * 25 * 4 * 4)
    # conv1: c=450, A_in=3 frozen: 450*3*R1. conv2: c=50, A_out=4 frozen: 50*4*R1.
    expected = 450 * 3 * R1 + 50 * 4 * R1
    term = reg.get_regularization_term()
    assert dtype_name(term) == "float32" and tuple(term.shape) == ()
    assert float(term) == pytest.approx(expected, rel=1e-6)
    assert reg.cost_name == "flops"


def test_chain_model_size_cost_and_term():
    reg = ModelSizeRegularizer(model=_chain())
    assert reg.cost_name == "model_size"
    # kernels only (no bias, no BN): 9*3*A1 + 1*A1*4
    assert reg.get_cost() == pytest.approx(27 * 4 + 4 * 4)
    assert float(reg.get_regularization_term()) == pytest.approx((27 + 4) * R1, rel=1e-6)


def test_threshold_changes_alive_count():
    reg = FlopsRegularizer(model=_chain(), threshold=0.4)
    assert reg.get_alive_counts()["conv1"] == 3  # 0.5, 2, 1


def test_residual_add_ties_two_convs():
    x = keras.Input((4, 4, 3))
    a = L.BatchNormalization(name="bn_a")(L.Conv2D(6, 1, name="conv_a")(x))
    b = L.BatchNormalization(name="bn_b")(L.Conv2D(6, 1, name="conv_b")(x))
    h = L.ReLU()(L.Add()([a, b]))
    y = L.Conv2D(2, 1, name="head")(h)
    model = keras.Model(x, y)
    _set_gamma(model, "bn_a", [0, 0, 1, 0, 0.5, 0])
    _set_gamma(model, "bn_b", [0, 0.2, 0, 0, 0, -0.3])
    reg = FlopsRegularizer(model=model)
    # group vector = max(|ga|, |gb|) = [0, .2, 1, 0, .5, .3]: 4 alive, R = 2.0
    assert reg.get_alive_counts() == {"conv_a": 4, "conv_b": 4, "head": 2}
    pos = 16
    assert reg.get_cost() == pytest.approx(2 * 2 * pos * 3 * 4 + 2 * pos * 4 * 2)
    r = 0.2 + 1 + 0.5 + 0.3
    expected = 2 * (2 * pos * 3 * r) + 2 * pos * 2 * r
    assert float(reg.get_regularization_term()) == pytest.approx(expected, rel=1e-6)


def test_concat_input_count_is_sum():
    x = keras.Input((4, 4, 3))
    a = L.BatchNormalization(name="bn_a")(L.Conv2D(4, 1, name="conv_a")(x))
    b = L.BatchNormalization(name="bn_b")(L.Conv2D(2, 1, name="conv_b")(x))
    y = L.Conv2D(5, 1, name="head")(L.Concatenate()([a, b]))
    model = keras.Model(x, y)
    _set_gamma(model, "bn_a", [1, 0, 1, 0])
    _set_gamma(model, "bn_b", [0.5, 0])
    reg = FlopsRegularizer(model=model)
    assert reg.get_alive_counts() == {"conv_a": 2, "conv_b": 1, "head": 5}
    # 96*A_a + 96*A_b + 2*16*(A_a + A_b)*5
    assert reg.get_cost() == pytest.approx(96 * 2 + 96 * 1 + 160 * 3)
    expected = 96 * 2.0 + 96 * 0.5 + 160 * (2.0 + 0.5)
    assert float(reg.get_regularization_term()) == pytest.approx(expected, rel=1e-6)


def _depthwise_model():
    x = keras.Input((4, 4, 3))
    h = L.Conv2D(4, 1, name="c1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU()(h)
    h = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = L.BatchNormalization(name="bn_dw")(h)
    y = L.Conv2D(2, 1, name="c2")(h)
    model = keras.Model(x, y)
    _set_gamma(model, "bn1", [1, 0, 0.5, 0])
    # The BN after the depthwise conv acts on the same group: vector = max of both.
    _set_gamma(model, "bn_dw", [0.25, 0, 0.5, 0])
    return model


def test_depthwise_passes_group_through():
    model = _depthwise_model()
    reg = FlopsRegularizer(model=model)
    assert reg.get_alive_counts() == {"c1": 2, "c2": 2}  # depthwise is no structure entry
    # c1 96*A, dw 2*16*9*A, c2 2*16*A*2 at A = 2
    assert reg.get_cost() == pytest.approx(96 * 2 + 288 * 2 + 64 * 2)
    r = 1.5
    # depthwise C = c*A -> c*(R_in + R_out)
    expected = 96 * r + 288 * (r + r) + 64 * r
    assert float(reg.get_regularization_term()) == pytest.approx(expected, rel=1e-6)
    size = ModelSizeRegularizer(model=model)
    assert size.get_cost() == pytest.approx(3 * 2 + 9 * 2 + 2 * 2)
    assert float(size.get_regularization_term()) == pytest.approx(
        3 * r + 9 * 2 * r + 2 * r, rel=1e-6)


def test_dense_after_flatten_uses_spatial_multiplier():
    x = keras.Input((2, 2, 3))
    h = L.BatchNormalization(name="bn1")(L.Conv2D(4, 1, name="c1")(x))
    y = L.Dense(5, name="fc")(L.Flatten()(h))
    model = keras.Model(x, y)
    _set_gamma(model, "bn1", [1, 0, 1, 1])
    reg = FlopsRegularizer(model=model)
    assert reg.get_alive_counts() == {"c1": 3, "fc": 5}
    # c1: 2*4*3*A = 24A; fc: 2*(4A)*5 = 40A; A = 3
    assert reg.get_cost() == pytest.approx(24 * 3 + 40 * 3)
    # c1: 8*A_in(3)*R; fc: 2*A_out(5)*(4R); R = 3
    assert float(reg.get_regularization_term()) == pytest.approx(8 * 3 * 3 + 2 * 5 * 12)


def test_dense_on_2d():
    x = keras.Input((6,))
    h = L.ReLU()(L.BatchNormalization(name="bn1")(L.Dense(4, name="d1")(x)))
    y = L.Dense(3, name="d2")(h)
    model = keras.Model(x, y)
    _set_gamma(model, "bn1", [1, 0, 0.2, 0])
    reg = FlopsRegularizer(model=model)
    assert reg.get_alive_counts() == {"d1": 2, "d2": 3}
    assert reg.get_cost() == pytest.approx(2 * 6 * 2 + 2 * 2 * 3)
    assert float(reg.get_regularization_term()) == pytest.approx(12 * 1.2 + 6 * 1.2, rel=1e-6)


def _three_convs():
    x = keras.Input((4, 4, 3))
    h = x
    for i in (1, 2, 3):
        h = L.BatchNormalization(name=f"bn{i}")(L.Conv2D(4, 1, name=f"c{i}")(h))
    y = L.Conv2D(2, 1, name="head")(h)
    model = keras.Model(x, y)
    for i in (1, 2, 3):
        _set_gamma(model, f"bn{i}", [0, 0, 0, 1])
    return model


def test_input_boundary_and_frozen_layers_honored():
    model = _three_convs()
    reg = FlopsRegularizer(model=model)
    assert reg.get_alive_counts() == {"c1": 1, "c2": 1, "c3": 1, "head": 2}
    reg = FlopsRegularizer(model=model, input_boundary=["bn1"], frozen_layers=["c3"])
    assert reg.get_alive_counts() == {"c1": 4, "c2": 1, "c3": 4, "head": 2}
    assert reg.regularized_layers == ["c2"]
    # only c2's group contributes: c2 (c=32, A_in=4) + c3 (c=32, A_out=4)
    assert float(reg.get_regularization_term()) == pytest.approx(32 * 4 * 1 + 32 * 4 * 1)


# ---------------------------------------------------------------- algorithm errors
@pytest.mark.backend_independent
def test_bn_without_scale_is_an_error():
    x = keras.Input((4, 4, 3))
    h = L.BatchNormalization(scale=False, name="bn_noscale")(L.Conv2D(4, 1, name="c1")(x))
    model = keras.Model(x, L.Conv2D(2, 1)(h))
    with pytest.raises(ValueError, match="bn_noscale.*scale=False"):
        FlopsRegularizer(model=model)


def test_convs_without_bn_warned_once_and_kept_whole():
    x = keras.Input((4, 4, 3))
    h = L.BatchNormalization(name="bn1")(L.Conv2D(4, 1, name="c1")(x))
    h = L.Conv2D(4, 1, name="nobn_a")(h)
    h = L.Conv2D(4, 1, name="nobn_b")(h)
    model = keras.Model(x, L.Conv2D(2, 1, name="head")(h))
    _set_gamma(model, "bn1", [0, 0, 0, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = FlopsRegularizer(model=model)
    msgs = [str(w.message) for w in caught if "BatchNormalization" in str(w.message)]
    assert len(msgs) == 1 and "nobn_a" in msgs[0] and "nobn_b" in msgs[0]
    assert reg.get_alive_counts() == {"c1": 1, "nobn_a": 4, "nobn_b": 4, "head": 2}


def test_squeeze_excite_and_bn_after_concat():
    x = keras.Input((4, 4, 3))
    main = L.ReLU()(L.BatchNormalization(name="bn_main")(L.Conv2D(6, 1, name="main")(x)))
    se = L.GlobalAveragePooling2D(keepdims=True)(main)
    se = L.Conv2D(2, 1, activation="relu", name="se_reduce")(se)
    se = L.Conv2D(6, 1, activation="sigmoid", name="se_expand")(se)
    h = L.Multiply()([main, se])
    other = L.Conv2D(2, 1, name="other")(x)  # no BN of its own...
    h = L.Concatenate()([h, other])
    h = L.BatchNormalization(name="bn_cat")(h)  # ...but a BN after the concat covers it
    y = L.Conv2D(3, 1, name="head")(h)
    model = keras.Model(x, y)
    _set_gamma(model, "bn_main", [1, 1, 1, 0, 0, 0])
    _set_gamma(model, "bn_cat", [0, 1, 0, 0, 0, 0, 0.5, 0])
    with pytest.warns(UserWarning, match="se_reduce") as caught:
        reg = FlopsRegularizer(model=model)
    assert not any("se_expand" in str(w.message) for w in caught)
    # main/se_expand group: max(bn_main, bn_cat[:6]) -> 3 alive; other: bn_cat[6:] -> 1
    assert reg.get_alive_counts() == {"main": 3, "se_reduce": 2, "se_expand": 3,
                                      "other": 1, "head": 3}


@pytest.mark.backend_independent
def test_nothing_regularizable_is_an_error():
    x = keras.Input((4, 4, 3))
    model = keras.Model(x, L.Conv2D(2, 1)(L.Conv2D(4, 1)(x)))
    with pytest.raises(ValueError, match="no conv/dense layer"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            FlopsRegularizer(model=model)


@pytest.mark.backend_independent
@pytest.mark.backend_independent
@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": -1}, "`threshold`: expected a non-negative float, received -1"),
    ({"threshold": float("nan")}, "`threshold`"),
    ({"threshold": "0.1"}, "`threshold`"),
    ({"algorithm": "l0"}, "`algorithm`: expected one of"),
    ({"l1_fraction": 1.5}, r"`l1_fraction`: expected a float in \[0, 1\]"),
    ({"l1_fraction": -0.1}, "`l1_fraction`"),
    ({"alive_threshold": 0.0}, "`alive_threshold`"),
    ({"alive_threshold": float("nan")}, "`alive_threshold`"),
    ({"frozen_layers": [3]}, "`frozen_layers`"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FlopsRegularizer(model=_chain(), **kwargs)


@pytest.mark.parametrize("strength", [-1.0, float("nan"), float("inf"), "1"])
def test_invalid_strength(strength):
    reg = FlopsRegularizer(model=_chain())
    with pytest.raises(ValueError, match="`strength`"):
        reg.wrap_loss("mse", strength)


@pytest.mark.backend_independent
def test_config_round_trip():
    model = _three_convs()
    reg = ModelSizeRegularizer(model=model, algorithm="group_lasso", threshold=0.05,
                               l1_fraction=0.25, input_boundary=["bn1"],
                               frozen_layers=["c3"])
    config = reg.get_config()
    json.dumps(config)  # plain data
    again = ModelSizeRegularizer.from_config(config, model=model)
    assert again.get_config() == config
    assert again.get_alive_counts() == reg.get_alive_counts()
    with pytest.raises(ValueError, match="model=model"):
        ModelSizeRegularizer.from_config(config)


# ------------------------------------------------------------------------ gradients
def _grads(reg, model):
    variables = model.trainable_variables
    _, grads = gradients(reg.get_regularization_term, variables)
    return {v.path: g for v, g in zip(variables, grads)}


def _nonzero(g):
    return g is not None and np.any(np.asarray(g) != 0)


def _is_zero(g):
    return g is None or not np.any(np.asarray(g) != 0)


def test_gamma_gradient_only_reaches_gammas():
    model = _chain()
    grads = _grads(FlopsRegularizer(model=model), model)
    assert _nonzero(grads["bn1/gamma"])
    others = [p for p in grads if p != "bn1/gamma"]
    assert others and all(no_gradient(grads[p]) for p in others), others


def test_group_lasso_value_and_gradient_only_reaches_source_kernels():
    model = _chain()
    kernel = model.get_layer("conv1").kernel
    w = np.zeros(kernel.shape, dtype="float32")
    w[..., 0] = 0.5  # channel 0: rms 0.5, mean|w| 0.5
    w[0, 0, 0, 1] = 2.7  # channel 1: 27 entries, one of 2.7
    kernel.assign(w)
    f = 0.25
    reg = ModelSizeRegularizer(model=model, algorithm="group_lasso", l1_fraction=f,
                               threshold=0.05)
    v1 = (1 - f) * math.sqrt(2.7 ** 2 / 27) + f * 2.7 / 27
    vec = ops.convert_to_numpy(reg.get_regularization_vectors()["conv1"])
    np.testing.assert_allclose(vec, [0.5, v1, 0, 0, 0, 0, 0, 0], rtol=1e-6)
    assert reg.get_alive_counts()["conv1"] == 2
    grads = _grads(reg, model)
    assert _nonzero(grads["conv1/kernel"])
    assert np.all(np.isfinite(grads["conv1/kernel"]))  # all-zero channels: finite
    assert all(no_gradient(grads[p]) for p in grads if p != "conv1/kernel")


def test_logistic_sigmoid_gradient_reaches_gate_logits_only():
    from regularizers import gates

    x = keras.Input((4, 4, 3))
    h = L.ReLU(name="r1")(L.BatchNormalization(name="bn1")(L.Conv2D(4, 1, name="c1")(x)))
    h = L.ReLU(name="r2")(L.Conv2D(4, 1, name="c2")(h))
    y = L.Conv2D(2, 1, name="head")(h)
    gated = gates.insert_gates(keras.Model(x, y))
    gate1 = gated.get_layer("r1_gate")
    gate1.logits.assign([3.0, -3.0, 0.0, -10.0])  # p: .95, .047, .5, 4.5e-5
    reg = FlopsRegularizer(model=gated, algorithm="logistic_sigmoid")
    assert reg.get_alive_counts() == {"c1": 2, "c2": 4, "head": 2}
    p = 1 / (1 + np.exp(-np.array([3.0, -3.0, 0.0, -10.0])))
    p2 = 1 / (1 + math.exp(-2.5))
    # c1: c=2*16*1=32, A_in 3: 32*3*R1; c2: 32*(A_in*R2 + A_out*R1); head: 32*2*R2
    r1, r2 = p.sum(), 4 * p2
    expected = 32 * 3 * r1 + 32 * (2 * r2 + 4 * r1) + 32 * 2 * r2
    assert float(reg.get_regularization_term()) == pytest.approx(expected, rel=1e-5)
    grads = _grads(reg, gated)
    gate_paths = {p for p in grads if p.endswith("logits")}
    assert len(gate_paths) == 2 and all(_nonzero(grads[p]) for p in gate_paths)
    assert all(no_gradient(grads[p]) for p in grads if p not in gate_paths)


@pytest.mark.backend_independent
def test_logistic_sigmoid_without_gates_is_an_error():
    with pytest.raises(ValueError, match="insert_gates"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            FlopsRegularizer(model=_chain(), algorithm="logistic_sigmoid")


# ---------------------------------------------------------------- training
def _classifier():
    x = keras.Input((6, 6, 3))
    h = L.ReLU()(L.BatchNormalization(name="bn1")(L.Conv2D(4, 3, name="c1")(x)))
    h = L.GlobalAveragePooling2D()(h)
    y = L.Dense(3, name="logits")(h)
    return keras.Model(x, y)


def _data(n=8):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 6, 6, 3)).astype("float32"),
            rng.integers(0, 3, size=(n,)).astype("int32"))


def test_fit_with_wrapped_loss_includes_term():
    model = _classifier()
    reg = FlopsRegularizer(model=model)
    x, y = _data()
    base = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss=reg.wrap_loss(base, 0.0))
    loss0 = model.evaluate(x, y, batch_size=8, verbose=0)
    strength = 1e-4
    model.compile(optimizer="sgd", loss=reg.wrap_loss(base, strength))
    loss1 = model.evaluate(x, y, batch_size=8, verbose=0)
    term = float(reg.get_regularization_term())
    assert term > 0
    assert loss1 - loss0 == pytest.approx(strength * term, rel=1e-4)
    history = model.fit(x, y, batch_size=4, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.only_backend("tensorflow")
def test_custom_loop_under_tf_function():
    import tensorflow as tf

    model = _classifier()
    reg = FlopsRegularizer(model=model, algorithm="group_lasso")
    opt = keras.optimizers.SGD(0.01)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = _data()
    kernel_before = model.get_layer("c1").kernel.numpy().copy()

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            term = reg.get_regularization_term()
            loss = loss_fn(yb, model(xb, training=True)) + 1e-4 * term
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss, term

    for _ in range(2):
        loss, term = step(x, y)
    assert np.isfinite(float(loss)) and float(term) > 0
    assert not np.allclose(model.get_layer("c1").kernel.numpy(), kernel_before)
    assert isinstance(reg.get_cost(), float)


def test_mixed_precision_term_stays_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _classifier()
        reg = FlopsRegularizer(model=model)
        term = reg.get_regularization_term()
        assert dtype_name(term) == "float32"
        model.compile(optimizer="sgd", loss=reg.wrap_loss(
            keras.losses.SparseCategoricalCrossentropy(from_logits=True), 1e-4))
        x, y = _data()
        history = model.fit(x, y, batch_size=4, epochs=1, steps_per_epoch=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


_MIRRORED_SCRIPT = textwrap.dedent("""
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from regularizers import FlopsRegularizer
    L = keras.layers
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        x = keras.Input((6, 6, 3))
        h = L.ReLU()(L.BatchNormalization(name="bn1")(L.Conv2D(4, 3, name="c1")(x)))
        y = L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(h))
        model = keras.Model(x, y)
        reg = FlopsRegularizer(model=model)
        base = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer="sgd", loss=reg.wrap_loss(base, 0.0))
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(8, 6, 6, 3)).astype("float32")
    ys = rng.integers(0, 3, size=(8,)).astype("int32")
    loss0 = model.evaluate(xs, ys, batch_size=8, verbose=0)
    with strategy.scope():
        model.compile(optimizer="sgd", loss=reg.wrap_loss(base, 1e-4))
    loss1 = model.evaluate(xs, ys, batch_size=8, verbose=0)
    term = float(reg.get_regularization_term())
    assert abs((loss1 - loss0) - 1e-4 * term) <= 1e-3 * 1e-4 * term, (loss0, loss1, term)
    model.fit(xs, ys, batch_size=8, epochs=1, steps_per_epoch=2, verbose=0)
    print("MIRRORED_OK", reg.get_alive_counts())
""")


@pytest.mark.only_backend("tensorflow")
def test_mirrored_strategy_two_logical_cpus():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    proc = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "MIRRORED_OK" in proc.stdout, proc.stderr[-3000:]


# -------------------------------------------------------------- structure export
@pytest.mark.backend_independent
def test_export_and_load_structure(tmp_path):
    reg = FlopsRegularizer(model=_chain())
    path = export_structure(reg, tmp_path / "learned_structure", step=42)
    assert path == str(tmp_path / "learned_structure" / "structure_00000042.json")
    assert load_structure(path) == {"conv1": 4, "conv2": 4} == reg.get_alive_counts()
    # atomic: no temporary files left behind
    assert os.listdir(tmp_path / "learned_structure") == ["structure_00000042.json"]
    path2 = export_structure({"a": 3}, tmp_path, step=None)
    assert os.path.basename(path2) == "structure.json"


@pytest.mark.backend_independent
def test_load_structure_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="export_structure"):
        load_structure(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_structure(bad)
    bad.write_text(json.dumps({"conv1": -2}))
    with pytest.raises(ValueError, match="conv1.*non-negative int"):
        load_structure(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="mapping"):
        load_structure(bad)
    with pytest.raises(ValueError, match="`step`"):
        export_structure({"a": 1}, tmp_path, step=-1)


def test_structure_logger_writes_files_and_summaries(tmp_path):
    model = _classifier()
    reg = FlopsRegularizer(model=model)
    model.compile(optimizer="sgd", loss=reg.wrap_loss(
        keras.losses.SparseCategoricalCrossentropy(from_logits=True), 1e-4))
    logger = StructureLogger(reg, log_dir=tmp_path / "logs",
                             export_dir=tmp_path / "structure", every_n_steps=2)
    x, y = _data()
    model.fit(x, y, batch_size=2, epochs=1, steps_per_epoch=3, verbose=0, callbacks=[logger])
    names = sorted(os.listdir(tmp_path / "structure"))
    assert names == ["structure_00000002.json", "structure_00000003.json"]
    assert load_structure(tmp_path / "structure" / names[-1]) == reg.get_alive_counts()
    import tensorflow as tf  # reads the event file (any backend: the logger writes it)

    events = [f for f in os.listdir(tmp_path / "logs") if f.startswith("events")]
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(
        str(tmp_path / "logs" / events[0])) for v in e.summary.value}
    assert {"regularizer/term", "regularizer/flops", "alive/c1", "alive/logits"} <= tags
    with pytest.raises(ValueError, match="every_n_steps"):
        StructureLogger(reg, every_n_steps=0)
    # Without an export_dir the structures go under log_dir, not the working directory.
    assert StructureLogger(reg, log_dir=tmp_path / "l2").export_dir == \
        os.path.join(tmp_path / "l2", "learned_structure")
    assert StructureLogger(reg).export_dir == "learned_structure"


@pytest.mark.backend_independent
def test_base_class_needs_op_cost():
    with pytest.raises(NotImplementedError):
        NetworkRegularizer(model=_chain()).get_cost()


class _AllOpsBytes(NetworkRegularizer):
    """What a latency regularizer does: cost every op (here: bytes moved)."""

    cost_name = "bytes"

    def costed_ops(self):
        return [op for op in self.channel_graph.ops if op.kind != "input"]

    def prepare_op(self, op):
        return f"prepared {op.name}"

    def op_cost(self, op, alive_in, alive_out):
        from latency_lab import costs
        assert op.payload == f"prepared {op.name}"
        return costs.cost_of(op.op, list(alive_in), alive_out).bytes_total


def test_subclass_hooks_cost_every_op():
    from latency_lab import costs

    x = keras.Input((4, 4, 3))
    a = L.BatchNormalization(name="bn_a")(L.Conv2D(4, 1, name="a")(x))
    b = L.BatchNormalization(name="bn_b")(L.Conv2D(4, 1, name="b")(x))
    h = L.MaxPooling2D()(L.ReLU()(L.Add()([a, b])))
    h = L.Concatenate()([h, L.MaxPooling2D()(x)])
    y = L.Dense(2, name="fc")(L.Flatten()(h))
    model = keras.Model(x, y)
    reg = _AllOpsBytes(model=model)
    full = sum(costs.cost_of(op).bytes_total for op in reg.graph.ops if op.type != "InputLayer")
    assert reg.get_cost() == pytest.approx(full)
    _set_gamma(model, "bn_a", [1, 0, 0, 0])
    _set_gamma(model, "bn_b", [0, 0, 0, 0])
    assert reg.get_alive_counts()["a"] == 1
    assert reg.get_cost() < full
    grads = _grads(reg, model)
    assert _nonzero(grads["bn_a/gamma"]) and no_gradient(grads["a/kernel"])


def test_saved_compiled_model_loads_with_base_loss(tmp_path):
    model = _classifier()
    reg = FlopsRegularizer(model=model)
    model.compile(optimizer="sgd", loss=reg.wrap_loss("mse", 1e-3))
    path = str(tmp_path / "m.keras")
    model.save(path)
    with pytest.warns(UserWarning, match="wrap_loss"):
        loaded = keras.saving.load_model(path)
    assert loaded.count_params() == model.count_params()
