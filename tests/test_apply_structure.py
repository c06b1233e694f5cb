"""Rebuilding slim models from a learned structure (regularizers.apply)."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)
L = keras.layers

from regularizers import apply_structure, fit_to_target, scale_structure  # noqa: E402


# --------------------------------------------------------------------------- models


def residual_model():
    x = keras.Input((8, 8, 3), name="inp")
    a = L.Conv2D(8, 3, padding="same", name="conv_a")(x)
    a = L.BatchNormalization(name="bn_a")(a)
    a = L.ReLU(name="relu_a")(a)
    b = L.Conv2D(8, 3, padding="same", name="conv_b")(a)
    b = L.BatchNormalization(name="bn_b")(b)
    b = L.ReLU(name="relu_b")(b)
    s = L.Add(name="add")([a, b])
    c = L.Conv2D(6, 1, name="conv_c")(s)
    c = L.BatchNormalization(name="bn_c")(c)
    c = L.ReLU(name="relu_c")(c)
    g = L.GlobalAveragePooling2D(name="gap")(c)
    y = L.Dense(3, name="head")(g)
    return keras.Model(x, y, name="residual")


def concat_model():
    x = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", name="br_a")(x)
    b = L.Conv2D(6, 1, name="br_b")(x)
    c = L.Concatenate(name="cat")([a, b])
    y = L.Conv2D(5, 1, name="mix")(c)
    return keras.Model(x, y, name="concat")


def depthwise_model():
    x = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, padding="same", name="conv1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(name="relu1")(h)
    h = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = L.BatchNormalization(name="bn_dw")(h)
    h = L.ReLU(name="relu_dw")(h)
    y = L.Conv2D(4, 1, name="conv2")(h)
    return keras.Model(x, y, name="depthwise")


def flatten_dense_model():
    x = keras.Input((4, 4, 2))
    h = L.Conv2D(6, 3, padding="same", name="conv")(x)
    h = L.Flatten(name="flat")(h)
    h = L.Dense(10, activation="relu", name="fc")(h)
    y = L.Dense(3, name="head")(h)
    return keras.Model(x, y, name="flat_dense")


def gap_dense_model():
    x = keras.Input((4, 4, 2))
    h = L.Conv2D(6, 3, padding="same", name="conv")(x)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    h = L.Dense(10, activation="relu", name="fc")(h)
    y = L.Dense(3, name="head")(h)
    return keras.Model(x, y, name="gap_dense")


def _randomize(model, seed=0):
    """Random weights everywhere, positive BN variances (so BN is not the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for v in layer.weights:
            shape = tuple(v.shape)
            if v.name == "moving_variance":
                v.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
            else:
                v.assign(rng.normal(0, 0.5, shape).astype("float32"))
    return model


def _kill(model, bn_names, dead):
    """Zero gamma and beta of channels `dead` of the named BN layers: those channels
    output exactly 0 after BN + ReLU."""
    for n in bn_names:
        bn = model.get_layer(n)
        for var in (bn.gamma, bn.beta):
            w = np.array(var.numpy())
            w[list(dead)] = 0.0
            var.assign(w)


def _width(model, name):
    layer = model.get_layer(name)
    cfg = layer.get_config()
    return cfg.get("filters", cfg.get("units"))


def _x(shape, seed=1):
    return np.random.default_rng(seed).normal(size=(2, *shape)).astype("float32")


# -------------------------------------------------------------------------- rebuild


def test_residual_widths_shapes_and_tied_weights():
    m = _randomize(residual_model())
    slim = apply_structure(m, {"conv_a": 5, "conv_b": 5, "conv_c": 3})
    assert _width(slim, "conv_a") == _width(slim, "conv_b") == 5
    assert _width(slim, "conv_c") == 3 and _width(slim, "head") == 3
    assert slim.output_shape == m.output_shape
    assert slim.get_layer("bn_a").gamma.shape == (5,)
    # Surviving channels: top-5 of max(|gamma_a|, |gamma_b|), ascending.
    g = np.maximum(np.abs(m.get_layer("bn_a").gamma.numpy()),
                   np.abs(m.get_layer("bn_b").gamma.numpy()))
    keep = np.sort(np.argsort(-g, kind="stable")[:5])
    np.testing.assert_array_equal(slim.get_layer("conv_a").kernel.numpy(),
                                  m.get_layer("conv_a").kernel.numpy()[..., keep])
    np.testing.assert_array_equal(slim.get_layer("conv_b").kernel.numpy(),
                                  m.get_layer("conv_b").kernel.numpy()[:, :, keep][..., keep])
    for w in ("gamma", "beta", "moving_mean", "moving_variance"):
        np.testing.assert_array_equal(getattr(slim.get_layer("bn_b"), w).numpy(),
                                      getattr(m.get_layer("bn_b"), w).numpy()[keep])
    keep_c = np.sort(np.argsort(-np.abs(m.get_layer("bn_c").gamma.numpy()),
                                kind="stable")[:3])
    np.testing.assert_array_equal(slim.get_layer("conv_c").kernel.numpy(),
                                  m.get_layer("conv_c").kernel.numpy()[:, :, keep][..., keep_c])
    np.testing.assert_array_equal(slim.get_layer("head").kernel.numpy(),
                                  m.get_layer("head").kernel.numpy()[keep_c])
    np.testing.assert_array_equal(slim.get_layer("head").bias.numpy(),
                                  m.get_layer("head").bias.numpy())
    # A missing layer keeps full width.
    half = apply_structure(m, {"conv_c": 2})
    assert _width(half, "conv_a") == 8 and _width(half, "conv_c") == 2


def test_residual_zero_channels_same_outputs():
    m = _randomize(residual_model(), seed=3)
    _kill(m, ["bn_a", "bn_b"], [1, 4, 6])
    _kill(m, ["bn_c"], [0, 5])
    slim = apply_structure(m, {"conv_a": 5, "conv_b": 5, "conv_c": 4})
    x = _x((8, 8, 3))
    np.testing.assert_allclose(slim(x, training=False), m(x, training=False), atol=1e-5)


def test_depthwise_zero_channels_same_outputs_and_slices():
    m = _randomize(depthwise_model(), seed=4)
    dead = [0, 3, 7]
    _kill(m, ["bn1", "bn_dw"], dead)
    slim = apply_structure(m, {"conv1": 5})
    keep = np.array([1, 2, 4, 5, 6])
    assert _width(slim, "conv1") == 5 and slim.output_shape == m.output_shape
    np.testing.assert_array_equal(slim.get_layer("dw").kernel.numpy(),
                                  m.get_layer("dw").kernel.numpy()[:, :, keep])
    np.testing.assert_array_equal(slim.get_layer("dw").bias.numpy(),
                                  m.get_layer("dw").bias.numpy()[keep])
    np.testing.assert_array_equal(slim.get_layer("conv2").kernel.numpy(),
                                  m.get_layer("conv2").kernel.numpy()[:, :, keep])
    x = _x((8, 8, 3))
    np.testing.assert_allclose(slim(x, training=False), m(x, training=False), atol=1e-5)


def test_depth_multiplier_slices_interleaved_channels():
    x = keras.Input((6, 6, 2))
    h = L.Conv2D(4, 1, name="c1")(x)
    h = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(h)
    y = L.Conv2D(3, 1, name="c2")(h)
    m = _randomize(keras.Model(x, y))
    keep = np.array([0, 2])
    slim = apply_structure(m, {"c1": 2}, importance={"c1": [5.0, 0.1, 4.0, 0.2]})
    ch = (keep[:, None] * 2 + np.arange(2)).reshape(-1)  # Keras order: k * dm + q
    np.testing.assert_array_equal(slim.get_layer("dw").bias.numpy(),
                                  m.get_layer("dw").bias.numpy()[ch])
    np.testing.assert_array_equal(slim.get_layer("c2").kernel.numpy(),
                                  m.get_layer("c2").kernel.numpy()[:, :, ch])
    # Dead c1 channels (zero kernel and bias) and zero depthwise bias: same outputs.
    c1 = m.get_layer("c1")
    k, b = c1.kernel.numpy(), c1.bias.numpy()
    k[..., [1, 3]] = 0
    b[[1, 3]] = 0
    c1.kernel.assign(k)
    c1.bias.assign(b)
    m.get_layer("dw").bias.assign(np.zeros(8, "float32"))
    slim = apply_structure(m, {"c1": 2})  # default score: kernel L2 norm
    xs = _x((6, 6, 2))
    np.testing.assert_allclose(slim(xs), m(xs), atol=1e-5)


def test_concat_offsets_input_slices():
    m = _randomize(concat_model())
    imp_a = [0.1, 3.0, 0.2, 2.0]  # keep 1, 3
    imp_b = [1, 6, 5, 4, 3, 2]  # keep 1, 2, 3
    slim = apply_structure(m, {"br_a": 2, "br_b": 3}, importance={"br_a": imp_a, "br_b": imp_b})
    assert _width(slim, "br_a") == 2 and _width(slim, "br_b") == 3
    assert slim.output_shape == (None, 8, 8, 5)
    rows = np.array([1, 3, 4 + 1, 4 + 2, 4 + 3])
    np.testing.assert_array_equal(slim.get_layer("mix").kernel.numpy(),
                                  m.get_layer("mix").kernel.numpy()[:, :, rows])
    np.testing.assert_array_equal(slim.get_layer("br_b").bias.numpy(),
                                  m.get_layer("br_b").bias.numpy()[[1, 2, 3]])
    # Zeroed removed channels: identical outputs.
    for name, dead in (("br_a", [0, 2]), ("br_b", [0, 4, 5])):
        layer = m.get_layer(name)
        k, b = layer.kernel.numpy(), layer.bias.numpy()
        k[..., dead] = 0
        b[dead] = 0
        layer.kernel.assign(k)
        layer.bias.assign(b)
    slim = apply_structure(m, {"br_a": 2, "br_b": 3})
    x = _x((8, 8, 3))
    np.testing.assert_allclose(slim(x), m(x), atol=1e-5)


def test_flatten_dense_expands_channel_indices():
    m = _randomize(flatten_dense_model())
    imp = [0, 5, 1, 4, 3, 0.5]  # keep 1, 3, 4
    slim = apply_structure(m, {"conv": 3, "fc": 7}, importance={"conv": imp})
    keep = np.array([1, 3, 4])
    rows = (np.arange(16)[:, None] * 6 + keep).reshape(-1)  # channels_last flatten
    keep_fc = np.sort(np.argsort(-np.linalg.norm(m.get_layer("fc").kernel.numpy(), axis=0),
                                 kind="stable")[:7])
    assert _width(slim, "fc") == 7 and slim.output_shape == (None, 3)
    np.testing.assert_array_equal(slim.get_layer("fc").kernel.numpy(),
                                  m.get_layer("fc").kernel.numpy()[rows][:, keep_fc])
    np.testing.assert_array_equal(slim.get_layer("head").kernel.numpy(),
                                  m.get_layer("head").kernel.numpy()[keep_fc])
    # Removed conv channels zeroed, removed fc units with zero outgoing weights.
    conv = m.get_layer("conv")
    k, b = conv.kernel.numpy(), conv.bias.numpy()
    k[..., [0, 2, 5]] = 0
    b[[0, 2, 5]] = 0
    conv.kernel.assign(k)
    conv.bias.assign(b)
    slim = apply_structure(m, {"conv": 3}, importance={"conv": imp})
    x = _x((4, 4, 2))
    np.testing.assert_allclose(slim(x), m(x), atol=1e-5)


def test_gap_dense_and_copy_weights_false():
    m = _randomize(gap_dense_model())
    slim = apply_structure(m, {"conv": 4, "fc": 5}, copy_weights=False)
    assert _width(slim, "conv") == 4 and _width(slim, "fc") == 5
    assert slim.get_layer("fc").kernel.shape == (4, 5)
    assert slim.get_layer("head").kernel.shape == (5, 3)
    slim = apply_structure(m, {"conv": 4}, importance={"conv": [6, 5, 4, 3, 2, 1]})
    np.testing.assert_array_equal(slim.get_layer("fc").kernel.numpy(),
                                  m.get_layer("fc").kernel.numpy()[:4])
    assert slim(_x((4, 4, 2))).shape == (2, 3)


def test_align_rounds_up_and_caps():
    m = residual_model()
    slim = apply_structure(m, {"conv_a": 3, "conv_b": 3, "conv_c": 5}, align=4,
                           copy_weights=False)
    assert _width(slim, "conv_a") == 4 and _width(slim, "conv_c") == 6  # 8 capped at 6


def test_output_layer_keeps_full_width_with_warning():
    m = gap_dense_model()
    with pytest.warns(UserWarning, match="head"):
        slim = apply_structure(m, {"head": 1}, copy_weights=False)
    assert _width(slim, "head") == 3


@pytest.mark.parametrize("structure, match", [
    ({"conv_a": 5, "conv_b": 6}, r"'conv_a' and 'conv_b'.*'conv_a': 5.*'conv_b': 6"),
    ({"nope": 3}, r"no conv/dense layer named 'nope'.*'conv_a'"),
    ({"bn_a": 3}, r"no conv/dense layer named 'bn_a'"),
    ({"conv_c": -1}, r"'conv_c': -1 is out of range.*\[0, 6\]"),
    ({"conv_c": 7}, r"'conv_c': 7 is out of range.*\[0, 6\]"),
    ({"conv_c": 2.5}, r"must be an int"),
    (["conv_c"], r"expected a structure mapping"),
])
def test_bad_structures(structure, match):
    with pytest.raises(ValueError, match=match):
        apply_structure(residual_model(), structure)


def test_bad_align_and_importance():
    m = residual_model()
    with pytest.raises(ValueError, match="align"):
        apply_structure(m, {}, align=0)
    with pytest.raises(ValueError, match=r"shape \(3,\); expected \(6,\)"):
        apply_structure(m, {"conv_c": 2}, importance={"conv_c": [1, 2, 3]})


# ---------------------------------------------------------------- scale and fit


def test_scale_structure():
    assert scale_structure({"a": 10, "b": 3}, 0.5) == {"a": 5, "b": 2}  # 1.5 rounds up
    assert scale_structure({"a": 10, "b": 1}, 0.01) == {"a": 1, "b": 1}
    assert scale_structure({"a": 10}, 0.5, align=4) == {"a": 8}
    m = residual_model()
    s = scale_structure({"conv_a": 4, "conv_b": 4, "conv_c": 3, "head": 3}, 3.0, model=m)
    assert s == {"conv_a": 8, "conv_b": 8, "conv_c": 6, "head": 3}  # capped; head frozen
    with pytest.raises(ValueError, match="factor"):
        scale_structure({"a": 1}, 0)
    with pytest.raises(ValueError, match="'conv_a' and 'conv_b'"):
        scale_structure({"conv_a": 4, "conv_b": 5}, 1.0, model=m)


def test_fit_to_target_monotone_and_unreachable():
    from latency_lab.predict import predict_model

    m = residual_model()
    structure = {"conv_a": 4, "conv_b": 4, "conv_c": 3}
    f_full, s_full, ms_full = fit_to_target(m, structure, "t4", 1e6, predictor="roofline")
    assert f_full == pytest.approx(2.0) and s_full == {"conv_a": 8, "conv_b": 8, "conv_c": 6}
    small = scale_structure(structure, 1e-3, model=m)
    ms_small = predict_model(apply_structure(m, small, copy_weights=False), "t4",
                             "roofline").latency_ms
    assert ms_small < ms_full
    results = []
    for frac in (0.3, 0.7):
        target = ms_small + frac * (ms_full - ms_small)
        factor, scaled, ms = fit_to_target(m, structure, "t4", target, predictor="roofline",
                                           tol=0.05)
        assert 0 < factor <= 2.0 and ms <= target
        got = predict_model(apply_structure(m, scaled, copy_weights=False), "t4",
                            "roofline").latency_ms
        assert got == pytest.approx(ms) and got <= target
        results.append((factor, ms))
    assert results[1][0] > results[0][0] and results[1][1] >= results[0][1]
    with pytest.raises(ValueError, match=r"target 1e-09 ms is unreachable.*smallest"):
        fit_to_target(m, structure, "t4", 1e-9, predictor="roofline")


def test_fit_to_target_with_a_memo_predicts_each_structure_once(monkeypatch):
    """Re-aiming at a nearby target with the same memo walks the shared bisection
    steps without predicting (converting) again, and finds what a fresh call finds."""
    import latency_lab.kernels as kernels

    m = residual_model()
    structure = {"conv_a": 4, "conv_b": 4, "conv_c": 3}
    full_ms = fit_to_target(m, structure, "t4", 1e6, predictor="roofline")[2]
    calls = []
    real = kernels.work_items
    monkeypatch.setattr(kernels, "work_items", lambda *a, **k: calls.append(1) or real(*a, **k))
    memo: dict = {}
    first = fit_to_target(m, structure, "t4", 0.6 * full_ms, predictor="roofline", memo=memo)
    n_first = len(calls)
    assert n_first == len(memo) > 2
    again = fit_to_target(m, structure, "t4", 0.6 * full_ms, predictor="roofline", memo=memo)
    assert again == first and len(calls) == n_first  # nothing predicted twice
    near = fit_to_target(m, structure, "t4", 0.62 * full_ms, predictor="roofline", memo=memo)
    assert len(calls) - n_first < n_first
    assert near == fit_to_target(m, structure, "t4", 0.62 * full_ms, predictor="roofline")
    with pytest.raises(ValueError, match="`memo` must be a dict"):
        fit_to_target(m, structure, "t4", 1.0, predictor="roofline", memo=[])


def test_gate_logits_and_squeeze_excite_follow_group():
    from regularizers.gates import ProbabilisticGate

    x = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, padding="same", name="c1")(x)
    h = ProbabilisticGate(name="gate")(h)
    se = L.GlobalAveragePooling2D(keepdims=True, name="gap")(h)
    se = L.Conv2D(8, 1, activation="sigmoid", name="se")(se)  # tied to c1 by Multiply
    h = L.Multiply(name="mul")([h, se])
    y = L.Conv2D(2, 1, name="out")(h)
    m = _randomize(keras.Model(x, y))
    logits = m.get_layer("gate").logits.numpy()
    logits[[0, 5]] = -1.0  # closed gates: those channels are 0 at inference
    logits[[1, 2, 3, 4, 6, 7]] = 1.0
    m.get_layer("gate").logits.assign(logits)
    imp = np.where(logits > 0, 1.0, 0.0)
    with pytest.raises(ValueError, match="'c1' and 'se'"):
        apply_structure(m, {"c1": 6, "se": 7})
    slim = apply_structure(m, {"c1": 6, "se": 6}, importance={"c1": imp})
    keep = np.array([1, 2, 3, 4, 6, 7])
    np.testing.assert_array_equal(slim.get_layer("gate").logits.numpy(), logits[keep])
    np.testing.assert_array_equal(slim.get_layer("se").kernel.numpy(),
                                  m.get_layer("se").kernel.numpy()[:, :, keep][..., keep])
    xs = _x((8, 8, 3))
    np.testing.assert_allclose(slim(xs), m(xs), atol=1e-5)
