"""ProbabilisticGate (FiGS / LogisticSigmoid) and insert_gates (regularizers.gates)."""

import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)
import tensorflow as tf  # noqa: E402
layers = keras.layers

from latency_lab.keras_walker import producer_of  # noqa: E402
from regularizers.gates import ProbabilisticGate, gate_layers, insert_gates  # noqa: E402


def _built_gate(channels, rank=2, **kwargs):
    gate = ProbabilisticGate(**kwargs)
    gate.build((None,) * (rank - 1) + (channels,))
    return gate


# ----------------------------------------------------------------------------- the gate
def test_defaults_and_logits_initialised():
    gate = _built_gate(5)
    assert gate.logits.shape == (5,)
    assert gate.logits.path.endswith("logits")
    np.testing.assert_allclose(gate.logits.numpy(), 2.5)
    np.testing.assert_allclose(gate.probabilities().numpy(), 1 / (1 + math.exp(-2.5)), rtol=1e-6)
    assert gate.temperature == 0.5 and gate.alive_threshold == 0.1


def test_training_output_is_hard_masked_and_gradient_reaches_logits():
    gate = _built_gate(64, rank=4, init_logit=0.0, temperature=1.0, seed=3)
    x = tf.constant(np.random.default_rng(0).uniform(1.0, 2.0, (2, 3, 3, 64)), tf.float32)
    with tf.GradientTape() as tape:
        y = gate(x, training=True)
        loss = tf.reduce_sum(y)
    y = y.numpy()
    # Per channel: the whole (batch, h, w) slice is either x or exactly 0.
    on = np.all(y == x.numpy(), axis=(0, 1, 2))
    off = np.all(y == 0.0, axis=(0, 1, 2))
    assert np.all(on | off)
    assert on.any() and off.any()  # logits 0: both states occur among 64 channels
    grad = tape.gradient(loss, gate.logits)
    assert grad is not None
    grad = grad.numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    # d loss / d l_c = sum(x_c) * s_c (1 - s_c) / tau > 0 for every channel.
    assert np.all(grad > 0)


def test_inference_mask_is_logits_positive():
    gate = _built_gate(4)
    gate.logits.assign([1.0, -1.0, 0.0, 3.0])
    x = np.arange(1, 9, dtype="float32").reshape(2, 4)
    expected = x * np.array([1, 0, 0, 1], dtype="float32")
    np.testing.assert_array_equal(gate(x, training=False).numpy(), expected)
    np.testing.assert_array_equal(gate(x).numpy(), expected)  # training=None -> inference


def test_alive_count_uses_alive_threshold():
    gate = _built_gate(5, alive_threshold=0.3)
    # sigmoid: 0.047, 0.269, 0.310, 0.5, 0.953
    gate.logits.assign([-3.0, -1.0, -0.8, 0.0, 3.0])
    np.testing.assert_array_equal(gate.alive_mask().numpy(), [False, False, True, True, True])
    assert gate.alive_count() == 3
    assert isinstance(gate.alive_count(), int)
    gate.alive_threshold = 0.1
    assert gate.alive_count() == 4


def test_alive_before_build_raises():
    with pytest.raises(ValueError, match="call the layer"):
        ProbabilisticGate().alive_count()


def test_hard_mask_on_about_half_the_time_at_zero_logits():
    gate = _built_gate(2000, init_logit=0.0, temperature=1.0, seed=7)
    frac = float(np.mean(gate.sample_mask().numpy()))
    assert 0.3 < frac < 0.7
    # sigmoid(2.5) keep probability at the default init.
    gate.logits.assign(np.full(2000, 2.5, "float32"))
    frac = float(np.mean(gate.sample_mask().numpy()))
    assert 0.85 < frac < 0.98


def test_channels_first_axis():
    gate = ProbabilisticGate(axis=1)
    x = np.ones((2, 3, 4, 4), "float32")
    gate(x)
    assert gate.logits.shape == (3,)
    gate.logits.assign([1.0, -1.0, 1.0])
    y = gate(x, training=False).numpy()
    np.testing.assert_array_equal(y[:, 1], 0.0)
    np.testing.assert_array_equal(y[:, [0, 2]], 1.0)


def test_mixed_precision_keeps_float32_logits():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        gate = ProbabilisticGate(init_logit=0.0, temperature=1.0, seed=1)
        x = tf.ones((2, 8), tf.float32)
        for training in (True, False):
            y = gate(x, training=training)
            assert y.dtype == tf.float16
        assert gate.logits.dtype == "float32"
        assert gate.probabilities().dtype == tf.float32
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(gate(x, training=True), tf.float32))
        grad = tape.gradient(loss, gate.logits)
        assert grad.dtype == tf.float32 and np.any(grad.numpy() != 0)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_config_round_trip():
    gate = ProbabilisticGate(init_logit=1.0, temperature=0.25, alive_threshold=0.2, seed=4,
                             name="g")
    clone = ProbabilisticGate.from_config(gate.get_config())
    for key in ("init_logit", "temperature", "alive_threshold", "seed", "axis", "name"):
        assert getattr(clone, key) == getattr(gate, key)


def test_saved_model_round_trip(tmp_path):
    inp = keras.Input((6,))
    x = layers.Dense(5, activation="relu", name="d")(inp)
    x = ProbabilisticGate(seed=2, name="d_gate")(x)
    out = layers.Dense(2, name="head")(x)
    model = keras.Model(inp, out)
    model.get_layer("d_gate").logits.assign([1.0, -2.0, 0.5, -0.1, 3.0])
    data = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    path = tmp_path / "gated.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    gate = loaded.get_layer("d_gate")
    assert isinstance(gate, ProbabilisticGate)
    assert gate.temperature == 0.5 and gate.seed == 2
    np.testing.assert_array_equal(gate.logits.numpy(),
                                  np.float32([1.0, -2.0, 0.5, -0.1, 3.0]))
    np.testing.assert_array_equal(loaded(data, training=False).numpy(),
                                  model(data, training=False).numpy())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0.0}, "`temperature`: expected a positive float"),
        ({"temperature": -1.0}, "`temperature`: expected a positive float"),
        ({"temperature": float("nan")}, "`temperature`: expected a positive float"),
        ({"temperature": float("inf")}, "`temperature`: expected a positive float"),
        ({"temperature": "0.5"}, "`temperature`: expected a positive float"),
        ({"temperature": True}, "`temperature`: expected a positive float"),
        ({"alive_threshold": 0.0}, "`alive_threshold`"),
        ({"alive_threshold": 1.0}, "`alive_threshold`"),
        ({"alive_threshold": float("nan")}, "`alive_threshold`"),
        ({"init_logit": float("nan")}, "`init_logit`"),
        ({"init_logit": None}, "`init_logit`"),
        ({"seed": -1}, "`seed`"),
        ({"seed": 1.5}, "`seed`"),
        ({"axis": "last"}, "`axis`"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProbabilisticGate(**kwargs)


def test_invalid_argument_message_names_value():
    with pytest.raises(ValueError) as info:
        ProbabilisticGate(temperature=-2.0)
    assert "received temperature=-2.0" in str(info.value)


# ------------------------------------------------------------------------ insert_gates
def _residual_cnn():
    inp = keras.Input((8, 8, 3), name="img")
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    y = layers.Conv2D(4, 3, padding="same", name="conv2")(x)
    y = layers.BatchNormalization(name="bn2")(y)
    y = layers.Activation("relu", name="relu2")(y)
    z = layers.Add(name="add")([x, y])
    z = keras.ops.multiply(z, 0.5)  # a bare keras.ops node in the graph
    z = layers.Conv2D(6, 1, activation="relu", name="conv3")(z)  # fused activation
    g = layers.GlobalAveragePooling2D(name="gap")(z)
    h = layers.Dense(5, activation="relu", name="fc1")(g)
    out = layers.Dense(3, activation="softmax", name="head")(h)
    return keras.Model(inp, out, name="res")


def _variables_by_path(model):
    return {v.path: v for v in model.weights}


def test_insert_gates_residual_cnn():
    model = _residual_cnn()
    gated = insert_gates(model, seed=0)
    assert gated is not model
    names = [g.name for g in gate_layers(gated)]
    assert sorted(names) == ["conv3_gate", "fc1_gate", "relu1_gate", "relu2_gate"]
    assert "head_gate" not in names  # the output layer is never gated
    # Gates sit right after the activations.
    assert producer_of(gated.get_layer("relu1_gate").input) is model.get_layer("relu1")
    # Layers (hence variables) are shared, not copied.
    for layer in model.layers:
        assert gated.get_layer(layer.name) is layer
    assert model.get_layer("conv1").kernel is gated.get_layer("conv1").kernel
    # Gate channel counts follow the layers they gate.
    assert gated.get_layer("relu1_gate").logits.shape == (4,)
    assert gated.get_layer("conv3_gate").logits.shape == (6,)
    assert gated.get_layer("fc1_gate").logits.shape == (5,)

    data = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    expected = model(data, training=False).numpy()
    np.testing.assert_array_equal(gated(data, training=False).numpy(), expected)
    # All fc1 channels off: the head sees zeros, so softmax(zero bias) = 1/3 everywhere.
    gated.get_layer("fc1_gate").logits.assign(np.full(5, -1.0, "float32"))
    np.testing.assert_allclose(gated(data, training=False).numpy(), 1 / 3, rtol=1e-6)
    np.testing.assert_array_equal(model(data, training=False).numpy(), expected)


def test_insert_gates_exclude_and_linear_points():
    model = _residual_cnn()
    gated = insert_gates(model, exclude=("relu2", "fc1"))
    assert sorted(g.name for g in gate_layers(gated)) == ["conv3_gate", "relu1_gate"]
    # "linear" also gates conv/BN outputs with no activation after them.
    inp = keras.Input((4, 4, 2))
    a = layers.Conv2D(2, 1, name="c1")(inp)
    b = layers.BatchNormalization(name="b1")(a)
    s = layers.Add(name="add")([inp, b])
    out = layers.Conv2D(2, 1, name="c2")(s)
    lin = keras.Model(inp, out)
    assert gate_layers(insert_gates(lin)) == []
    assert [g.name for g in gate_layers(insert_gates(lin, after=("activation", "linear")))] \
        == ["b1_gate"]


def test_insert_gates_concatenate_multi_input_and_saving(tmp_path):
    a_in = keras.Input((6,), name="a")
    b_in = keras.Input((4,), name="b")
    a = layers.Dense(3, activation="tanh", name="da")(a_in)
    b = layers.Dense(2, name="db")(b_in)
    b = layers.ReLU(name="rb")(b)
    c = layers.Concatenate(name="cat")([a, b])
    out = layers.Dense(1, name="out")(c)
    model = keras.Model({"a": a_in, "b": b_in}, out)
    gated = insert_gates(model)
    assert sorted(g.name for g in gate_layers(gated)) == ["da_gate", "rb_gate"]
    data = {"a": np.ones((2, 6), "float32"), "b": np.ones((2, 4), "float32")}
    np.testing.assert_array_equal(gated(data).numpy(), model(data).numpy())
    path = tmp_path / "gated.keras"
    gated.save(path)
    loaded = keras.models.load_model(path)
    assert len(gate_layers(loaded)) == 2
    np.testing.assert_array_equal(loaded(data).numpy(), model(data).numpy())


def test_insert_gates_sequential():
    model = keras.Sequential(
        [
            keras.Input((5,)),
            layers.Dense(4, name="s1"),
            layers.BatchNormalization(name="sbn"),
            layers.ReLU(name="sr"),
            layers.Dense(2, name="sout"),
        ]
    )
    gated = insert_gates(model)
    assert [g.name for g in gate_layers(gated)] == ["sr_gate"]
    data = np.ones((3, 5), "float32")
    np.testing.assert_array_equal(gated(data).numpy(), model(data).numpy())


def test_insert_gates_rejects_subclassed_and_nested():
    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x):
            return self.d(x)

    with pytest.raises(ValueError, match="subclassed"):
        insert_gates(Tiny())

    inner = keras.Sequential([keras.Input((3,)), layers.Dense(3, activation="relu")],
                             name="inner")
    inp = keras.Input((3,))
    outer = keras.Model(inp, layers.Dense(1)(inner(inp)))
    with pytest.raises(ValueError, match="flatten"):
        insert_gates(outer)

    with pytest.raises(ValueError, match="build"):
        insert_gates(keras.Sequential([layers.Dense(2)]))
    with pytest.raises(ValueError, match="`after`"):
        insert_gates(outer, after=("conv",))
    with pytest.raises(ValueError, match="`temperature`"):
        insert_gates(outer, temperature=0)


def test_fresh_noise_each_training_call():
    gate = ProbabilisticGate(init_logit=0.0, seed=1)
    x = np.ones((1, 64), "float32")
    first, second = (gate(x, training=True).numpy() for _ in range(2))
    assert not np.array_equal(first, second)  # equal with probability 2**-64


def test_fit_trains_gate_logits_and_shared_original_weights():
    # Seeded: with logits at 0 a gate's channels are all sampled closed in a step with
    # probability 1/16, and then the gates upstream get no gradient; some global RNG
    # states (left by earlier tests) did that in both steps.
    keras.utils.set_random_seed(3)
    model = _residual_cnn()
    gated = insert_gates(model, seed=1, init_logit=0.0)
    gated.compile(optimizer=keras.optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    data = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    logits_before = [g.logits.numpy().copy() for g in gate_layers(gated)]
    kernel_before = model.get_layer("conv1").kernel.numpy().copy()
    gated.fit(data, np.array([0, 1, 2, 0]), epochs=4, batch_size=4, verbose=0)
    for before, gate in zip(logits_before, gate_layers(gated)):
        assert not np.allclose(before, gate.logits.numpy())
    assert not np.allclose(kernel_before, model.get_layer("conv1").kernel.numpy())


def test_mixed_precision_config_round_trip():
    gate = ProbabilisticGate(dtype="mixed_float16", temperature=0.3)
    clone = ProbabilisticGate.from_config(gate.get_config())
    assert clone.compute_dtype == "float16" and clone.variable_dtype == "float32"
    assert clone.temperature == 0.3
