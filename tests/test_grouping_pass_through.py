"""Per-channel layers pass through the channel grouping (issue 18); layers that mix
channels are refused by name. Table-driven over `keras.layers`."""

import inspect
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
L = keras.layers

from latency_lab import costs  # noqa: E402
from latency_lab.errors import InvalidArgumentError  # noqa: E402
from regularizers import grouping  # noqa: E402
from regularizers.apply import apply_structure  # noqa: E402
from regularizers.grouping import build_channel_graph  # noqa: E402

# (layer factory, spatial rank): one entry per pass-through Keras layer class.
PASS_THROUGH_CASES = {
    "BatchNormalization": (lambda: L.BatchNormalization(), 2),
    "Rescaling": (lambda: L.Rescaling(0.5, 1.0), 2),
    "Normalization": (lambda: L.Normalization(mean=0.5, variance=2.0), 2),
    "Activation": (lambda: L.Activation("swish"), 2),
    "ReLU": (lambda: L.ReLU(), 2),
    "LeakyReLU": (lambda: L.LeakyReLU(), 2),
    "ELU": (lambda: L.ELU(), 2),
    "PReLU": (lambda: L.PReLU(shared_axes=[1, 2]), 2),
    "Dropout": (lambda: L.Dropout(0.3), 2),
    "SpatialDropout1D": (lambda: L.SpatialDropout1D(0.3), 1),
    "SpatialDropout2D": (lambda: L.SpatialDropout2D(0.3), 2),
    "SpatialDropout3D": (lambda: L.SpatialDropout3D(0.3), 3),
    "GaussianNoise": (lambda: L.GaussianNoise(0.1), 2),
    "GaussianDropout": (lambda: L.GaussianDropout(0.1), 2),
    "AlphaDropout": (lambda: L.AlphaDropout(0.1), 2),
    "ActivityRegularization": (lambda: L.ActivityRegularization(l1=0.01), 2),
    "Identity": (lambda: L.Identity(), 2),
    "ZeroPadding1D": (lambda: L.ZeroPadding1D(1), 1),
    "ZeroPadding2D": (lambda: L.ZeroPadding2D(1), 2),
    "ZeroPadding3D": (lambda: L.ZeroPadding3D(1), 3),
    "Cropping1D": (lambda: L.Cropping1D(1), 1),
    "Cropping2D": (lambda: L.Cropping2D(1), 2),
    "Cropping3D": (lambda: L.Cropping3D(1), 3),
    "CenterCrop": (lambda: L.CenterCrop(4, 4), 2),
    "UpSampling1D": (lambda: L.UpSampling1D(2), 1),
    "UpSampling2D": (lambda: L.UpSampling2D(2, interpolation="bilinear"), 2),
    "UpSampling3D": (lambda: L.UpSampling3D(2), 3),
    "Resizing": (lambda: L.Resizing(9, 9), 2),
    "MaxPooling1D": (lambda: L.MaxPooling1D(2), 1),
    "MaxPooling2D": (lambda: L.MaxPooling2D(2), 2),
    "MaxPooling3D": (lambda: L.MaxPooling3D(2), 3),
    "AveragePooling1D": (lambda: L.AveragePooling1D(2), 1),
    "AveragePooling2D": (lambda: L.AveragePooling2D(2), 2),
    "AveragePooling3D": (lambda: L.AveragePooling3D(2), 3),
    "GlobalMaxPooling1D": (lambda: L.GlobalMaxPooling1D(keepdims=True), 1),
    "GlobalMaxPooling2D": (lambda: L.GlobalMaxPooling2D(keepdims=True), 2),
    "GlobalMaxPooling3D": (lambda: L.GlobalMaxPooling3D(keepdims=True), 3),
    "GlobalAveragePooling1D": (lambda: L.GlobalAveragePooling1D(keepdims=True), 1),
    "GlobalAveragePooling2D": (lambda: L.GlobalAveragePooling2D(keepdims=True), 2),
    "GlobalAveragePooling3D": (lambda: L.GlobalAveragePooling3D(keepdims=True), 3),
    "AdaptiveMaxPooling1D": (lambda: L.AdaptiveMaxPooling1D(3), 1),
    "AdaptiveMaxPooling2D": (lambda: L.AdaptiveMaxPooling2D(3), 2),
    "AdaptiveMaxPooling3D": (lambda: L.AdaptiveMaxPooling3D(2), 3),
    "AdaptiveAveragePooling1D": (lambda: L.AdaptiveAveragePooling1D(3), 1),
    "AdaptiveAveragePooling2D": (lambda: L.AdaptiveAveragePooling2D(3), 2),
    "AdaptiveAveragePooling3D": (lambda: L.AdaptiveAveragePooling3D(2), 3),
    "RandomFlip": (lambda: L.RandomFlip(), 2),
    "RandomRotation": (lambda: L.RandomRotation(0.1), 2),
    "RandomTranslation": (lambda: L.RandomTranslation(0.1, 0.1), 2),
    "RandomZoom": (lambda: L.RandomZoom(0.1), 2),
    "RandomCrop": (lambda: L.RandomCrop(4, 4), 2),
    "RandomPerspective": (lambda: L.RandomPerspective(), 2),
    "RandomElasticTransform": (lambda: L.RandomElasticTransform(), 2),
    "RandomGaussianBlur": (lambda: L.RandomGaussianBlur(), 2),
    "RandomBrightness": (lambda: L.RandomBrightness(0.1), 2),
    "RandomContrast": (lambda: L.RandomContrast(0.1), 2),
    "RandomErasing": (lambda: L.RandomErasing(), 2),
    "RandomInvert": (lambda: L.RandomInvert(), 2),
    "Solarization": (lambda: L.Solarization(0.1), 2),
}
# Pass-through types that are no Keras layer class with a test case here.
NOT_KERAS_CLASSES = {"ProbabilisticGate"}

CONV = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}
SPATIAL = {1: (8,), 2: (6, 6), 3: (4, 4, 4)}


def _model(factory, rank):
    x = keras.Input((*SPATIAL[rank], 3))
    h = CONV[rank](8, 1, name="c1")(x)
    h = factory()(h)
    y = CONV[rank](4, 1, name="c2")(h)
    return keras.Model(x, y)


def test_table_matches_registry():
    keras_types = set(grouping.BUILTIN_PASS_THROUGH_TYPES) - {
        t for t in grouping.BUILTIN_PASS_THROUGH_TYPES if t.startswith("ops.")}
    assert set(PASS_THROUGH_CASES) | NOT_KERAS_CLASSES == keras_types


def test_every_keras_layer_class_is_classified():
    """Every class `keras.layers` exports passes, is grouped another way, or is refused
    with a reason (no silent 'unknown' for a Keras layer)."""
    skip = {"InputSpec", "Layer", "InputLayer", "GRUCell", "LSTMCell", "SimpleRNNCell",
            "StackedRNNCells", "MaxNumBoundingBoxes", "CutMix", "MixUp"}
    names = {getattr(L, n).__name__ for n in dir(L) if inspect.isclass(getattr(L, n))}
    known = set(grouping.SUPPORTED_TYPES) | set(grouping.REFUSED_REASONS) | skip
    assert sorted(names - known) == []
    assert not set(grouping.PASS_THROUGH_REGISTRY) & set(grouping.REFUSED_REASONS)


@pytest.mark.parametrize("type_name", sorted(PASS_THROUGH_CASES))
def test_pass_through_ties_convs_and_rebuilds(type_name):
    factory, rank = PASS_THROUGH_CASES[type_name]
    model = _model(factory, rank)
    cg = build_channel_graph(model)
    (pt,) = [o for o in cg.ops if o.type == type_name]
    assert pt.kind == "pass_through"
    g1 = cg.op("c1").out_group
    assert pt.out_segments == [(g1, 1)]
    assert cg.op("c2").in_segments == [[(g1, 1)]]
    assert costs.is_supported(type_name)
    slim = apply_structure(model, {"c1": 3})
    assert slim.get_layer("c1").filters == 3
    x = np.random.default_rng(0).random((1, *SPATIAL[rank], 3)).astype("float32")
    out = np.asarray(slim(x, training=False))
    assert out.shape == tuple(np.asarray(model(x, training=False)).shape)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("type_name", sorted(PASS_THROUGH_CASES))
def test_pass_through_never_mixes_channels(type_name):
    """At inference, changing input channel 1 changes output channel 1 only."""
    factory, rank = PASS_THROUGH_CASES[type_name]
    layer = factory()
    rng = np.random.default_rng(1)
    x = rng.random((2, *SPATIAL[rank], 4)).astype("float32")
    x2 = x.copy()
    x2[..., 1] += rng.random(x.shape[:-1]).astype("float32") + 0.5
    a = np.asarray(layer(x, training=False))
    b = np.asarray(layer(x2, training=False))
    assert a.shape[-1] == 4
    np.testing.assert_allclose(np.delete(a, 1, -1), np.delete(b, 1, -1), rtol=1e-5, atol=1e-6)


def test_resizing_in_deeplab_head_rebuilds_with_weights():
    x = keras.Input((8, 8, 3))
    h = L.Conv2D(16, 3, padding="same", name="aspp")(x)
    h = L.BatchNormalization(name="aspp_bn")(h)
    h = L.ReLU(name="aspp_relu")(h)
    h = L.Resizing(16, 16, name="up")(h)
    y = L.Conv2D(5, 1, name="classes")(h)
    model = keras.Model(x, y)
    cg = build_channel_graph(model)
    g = cg.op("aspp").out_group
    assert cg.op("up").out_segments == [(g, 1)] and not cg.groups[g].frozen
    slim = apply_structure(model, {"aspp": 16})  # full width: same function
    xv = np.random.default_rng(2).random((1, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(slim(xv)), np.asarray(model(xv)), rtol=1e-5, atol=1e-5)
    small = apply_structure(model, {"aspp": 6})
    assert small.get_layer("up").get_config()["height"] == 16
    assert np.asarray(small(xv)).shape == (1, 16, 16, 5)
    assert costs.rule("Resizing").fn is costs.resize_cost


@pytest.mark.parametrize("factory, type_name, why", [
    (lambda: L.GroupNormalization(groups=2), "GroupNormalization", "groups of channels"),
    (lambda: L.RandomGrayscale(), "RandomGrayscale", "colour"),
    (lambda: L.Permute((3, 1, 2)), "Permute", "moves the channel axis"),
    (lambda: L.Softmax(), "Softmax", "softmax over the channel axis"),
    (lambda: L.Reshape((4, 2, 8)), "Reshape", "moves channels"),
])
def test_channel_mixing_layer_is_refused_by_name(factory, type_name, why):
    x = keras.Input((4, 4, 3))
    h = L.Conv2D(4, 1, name="a")(x)
    layer = factory()
    h = layer(h)
    y = L.Conv2D(2, 1, name="head")(h)
    model = keras.Model(x, y)
    with pytest.raises(InvalidArgumentError) as e:
        build_channel_graph(model)
    msg = str(e.value)
    assert repr(layer.name) in msg and type_name in msg and why in msg
    assert "frozen_layers" in msg
    cg = build_channel_graph(model, frozen_layers=[layer.name])
    assert cg.op(layer.name).kind == "frozen"


@pytest.mark.parametrize("factory", [L.LayerNormalization, L.UnitNormalization,
                                     L.RMSNormalization])
def test_norm_across_channels_keeps_them_whole(factory):
    """A norm over the channel axis (a transformer's residual stream) passes its input's
    channels through and freezes them, naming itself; the rest stays prunable."""
    x = keras.Input((4, 4, 3))
    h = L.Conv2D(4, 1, name="a")(x)
    n = factory(name="norm")(h)
    h = L.Conv2D(6, 1, name="b")(n)
    model = keras.Model(x, L.Conv2D(2, 1, name="head")(h))
    cg = build_channel_graph(model)
    frozen = cg.group_of("a")
    assert cg.op("norm").kind == "pass_through"
    assert cg.op("norm").out_segments == [(frozen.id, 1)]
    assert frozen.frozen and any("'norm'" in r for r in frozen.frozen_reasons)
    assert not cg.group_of("b").frozen


def test_norm_over_other_axes_acts_channel_by_channel():
    x = keras.Input((5, 3))
    h = L.Dense(4, name="a")(x)
    h = L.LayerNormalization(axis=1, name="norm")(h)
    model = keras.Model(x, L.Dense(2, name="head")(h))
    cg = build_channel_graph(model)
    assert not cg.group_of("a").frozen
    slim = apply_structure(model, {"a": 2})
    assert slim.get_layer("a").units == 2


def test_register_pass_through_bad_arguments():
    with pytest.raises(InvalidArgumentError):
        grouping.register_pass_through(why="x")
    with pytest.raises(InvalidArgumentError, match="op_types"):
        grouping.register_pass_through(3, why="x")
    with pytest.raises(InvalidArgumentError, match="why"):
        grouping.register_pass_through("MyLayer", why="")
    with pytest.raises(InvalidArgumentError, match="Conv2D"):
        grouping.register_pass_through("Conv2D", why="x")
    assert "MyLayer" not in grouping.PASS_THROUGH_REGISTRY


def test_softmax_over_another_axis_passes():
    x = keras.Input((4, 4, 3))
    h = L.Conv2D(4, 1, name="a")(x)
    h = L.Softmax(axis=1, name="sm")(h)
    h = keras.ops.softmax(h, axis=2)
    y = L.Conv2D(2, 1, name="head")(h)
    cg = build_channel_graph(keras.Model(x, y))
    g = cg.op("a").out_group
    assert cg.op("sm").kind == "pass_through"
    assert cg.op("head").in_segments == [[(g, 1)]] and not cg.groups[g].frozen
    (ops_sm,) = [o for o in cg.ops if o.type == "ops.Softmax"]
    assert ops_sm.kind == "pass_through"


def test_ops_softmax_over_channels_is_refused():
    x = keras.Input((4, 4, 3))
    h = L.Conv2D(4, 1, name="a")(x)
    y = L.Conv2D(2, 1, name="head")(keras.ops.softmax(h, axis=-1))
    with pytest.raises(InvalidArgumentError, match="ops.Softmax.*softmax over the channel"):
        build_channel_graph(keras.Model(x, y))
