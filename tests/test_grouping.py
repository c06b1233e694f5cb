"""Channel groups on Keras functional graphs (regularizers.grouping)."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)
L = keras.layers

from regularizers.grouping import alive_count, build_channel_graph  # noqa: E402


def _groups_of(cg, *names):
    return [cg.op(n).out_group for n in names]


def test_chain_groups_and_frozen_input_output():
    x = keras.Input((5, 5, 3))
    h = L.Conv2D(8, 3, padding="same", name="conv1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(name="relu1")(h)
    h = L.Dropout(0.1, name="drop")(h)
    h = L.Conv2D(4, 1, name="conv2")(h)
    y = L.BatchNormalization(name="bn2")(h)
    cg = build_channel_graph(keras.Model(x, y))
    g1, g2 = _groups_of(cg, "conv1", "conv2")
    assert cg.op("bn1").out_segments == [(g1, 1)]
    assert cg.op("drop").out_segments == [(g1, 1)]
    assert cg.op("conv2").in_segments == [[(g1, 1)]]
    assert not cg.groups[g1].frozen and cg.groups[g1].size == 8
    assert cg.groups[g2].frozen and "model output" in cg.groups[g2].frozen_reasons
    (gin, _), = cg.op("conv1").in_segments[0]
    assert cg.groups[gin].frozen and cg.groups[gin].size == 3
    assert [o.name for o in cg.costed_ops] == ["conv1", "conv2"]


def test_add_ties_multiply_broadcast_ties():
    x = keras.Input((4, 4, 3))
    a = L.Conv2D(6, 1, name="a")(x)
    b = L.Conv2D(6, 1, name="b")(x)
    s = L.Add(name="add")([a, b])
    se = L.GlobalAveragePooling2D(keepdims=True, name="gap")(s)
    se = L.Conv2D(6, 1, name="se")(se)  # (1, 1, 6): broadcast squeeze-excite scale
    m = L.Multiply(name="mul")([s, se])
    y = L.Conv2D(2, 1, name="head")(m)
    cg = build_channel_graph(keras.Model(x, y))
    ga, gb, gse = _groups_of(cg, "a", "b", "se")
    assert ga == gb == gse
    assert sorted(cg.groups[ga].sources) == ["a", "b", "se"]
    assert cg.op("mul").out_segments == [(ga, 1)]


def test_concat_stacks_and_depthwise_passes_through():
    x = keras.Input((4, 4, 3))
    a = L.Conv2D(4, 1, name="a")(x)
    b = L.Conv2D(2, 1, name="b")(x)
    c = L.Concatenate(name="cat")([a, b])
    d = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(c)
    y = L.Conv2D(5, 1, name="head")(d)
    cg = build_channel_graph(keras.Model(x, y))
    ga, gb = _groups_of(cg, "a", "b")
    assert cg.op("cat").out_segments == [(ga, 1), (gb, 1)]
    assert cg.op("dw").out_segments == [(ga, 1), (gb, 1)] * 2
    assert alive_count(cg.op("dw").out_segments, {ga: 3, gb: 1}) == 8
    assert [o.kind for o in cg.costed_ops] == ["source", "source", "depthwise", "source"]


def test_flatten_multiplies_and_size1_reshape_passes():
    x = keras.Input((2, 3, 3))
    a = L.Conv2D(4, 1, name="a")(x)
    f = L.Flatten(name="flat")(a)
    y = L.Dense(5, name="fc")(f)
    cg = build_channel_graph(keras.Model(x, y))
    (ga,) = _groups_of(cg, "a")
    assert cg.op("fc").in_segments == [[(ga, 6)]]

    x = keras.Input((4, 4, 3))
    a = L.Conv2D(4, 1, name="a")(x)
    p = L.GlobalAveragePooling2D(name="gap")(a)
    r = L.Reshape((1, 1, 4), name="rs")(p)
    y = L.Conv2D(2, 1, name="head")(r)
    cg = build_channel_graph(keras.Model(x, y))
    (ga,) = _groups_of(cg, "a")
    assert cg.op("rs").out_segments == [(ga, 1)]
    assert cg.op("head").in_segments == [[(ga, 1)]]


def test_unsupported_layer_error_and_frozen_fix():
    x = keras.Input((4, 4, 3))
    a = L.Conv2D(4, 1, name="a")(x)
    p = L.Permute((3, 1, 2), name="perm")(a)  # channels to axis 1
    y = L.Conv2D(2, 1, name="head")(p)
    model = keras.Model(x, y)
    with pytest.raises(ValueError) as e:
        build_channel_graph(model)
    msg = str(e.value)
    assert "'perm'" in msg and "Permute" in msg and "frozen_layers" in msg
    assert "moves the channel axis" in msg
    assert "Conv2D" in msg  # lists supported types
    cg = build_channel_graph(model, frozen_layers=["perm"])
    (gp,) = cg.op("head").in_segments[0]
    assert cg.groups[gp[0]].frozen and gp[0] != cg.op("a").out_group
    assert not cg.groups[cg.op("a").out_group].frozen


def test_reshape_moving_channels_is_unsupported():
    x = keras.Input((4, 4, 3))
    a = L.Conv2D(4, 1, name="a")(x)
    r = L.Reshape((4, 16), name="rs")(a)
    y = L.Dense(2, name="head")(r)
    with pytest.raises(ValueError, match="'rs'.*Reshape"):
        build_channel_graph(keras.Model(x, y))


def test_input_boundary_and_frozen_layers():
    x = keras.Input((4, 4, 3))
    h = L.Conv2D(4, 1, name="c1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.Conv2D(4, 1, name="c2")(h)
    h = L.BatchNormalization(name="bn2")(h)
    h = L.Conv2D(4, 1, name="c3")(h)
    h = L.BatchNormalization(name="bn3")(h)
    y = L.Conv2D(2, 1, name="head")(h)
    model = keras.Model(x, y)
    cg = build_channel_graph(model, input_boundary=["bn1"], frozen_layers=["c3"])
    g1, g2, g3 = _groups_of(cg, "c1", "c2", "c3")
    assert cg.groups[g1].frozen_reasons == ["input_boundary"]
    assert not cg.groups[g2].frozen
    assert cg.groups[g3].frozen_reasons == ["frozen_layers"]
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        build_channel_graph(model, frozen_layers=["nope"])
    with pytest.raises(ValueError, match="input_boundary"):
        build_channel_graph(model, input_boundary=["nope"])


def test_concat_added_to_one_conv_ties_channel_by_channel():
    x = keras.Input((4, 4, 3))
    a = L.Conv2D(4, 1, name="a")(x)
    b = L.Conv2D(4, 1, name="b")(x)
    c = L.Conv2D(8, 1, name="c")(x)
    s = L.Add(name="add")([L.Concatenate(name="cat")([a, b]), c])
    y = L.Conv2D(2, 1, name="head")(s)
    cg = build_channel_graph(keras.Model(x, y))
    ga, gb, gc = _groups_of(cg, "a", "b", "c")
    assert ga == gb == gc and not cg.groups[ga].frozen and cg.groups[ga].size == 8
    assert cg.op("c").out_classes is None  # c's channel i is class i
    assert list(cg.op("b").out_classes) == [4, 5, 6, 7]


def test_spatial_transpose_passes():
    x = keras.Input((4, 4, 3))
    a = L.Conv2D(4, 1, name="a")(x)
    p = L.Permute((2, 1, 3), name="perm")(a)
    y = L.Conv2D(2, 1, name="head")(p)
    cg = build_channel_graph(keras.Model(x, y))
    assert cg.op("perm").kind == "pass_through"
    assert cg.op("head").in_segments == [[(cg.op("a").out_group, 1)]]
