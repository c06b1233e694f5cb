"""Channel splits, shuffles and grouped convs (issue 18): grouped channel by channel,
costed as data movement, rebuilt with their arguments at the kept channels."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from latency_lab.analyze import analyze_model  # noqa: E402
from latency_lab.errors import InvalidArgumentError  # noqa: E402
from regularizers import Structure, apply_structure  # noqa: E402
from regularizers.grouping import alive_count, build_channel_graph  # noqa: E402

L = keras.layers
F32 = 4  # bytes


def shuffle_unit(split="slice"):
    """a (8) -> halves; b convolves the second; concat [first, b] -> shuffle -> head."""
    x = keras.Input((4, 4, 3))
    a = L.Conv2D(8, 1, use_bias=False, name="a")(x)
    if split == "slice":
        x1, x2 = a[..., :4], a[..., 4:]
    else:
        x1, x2 = keras.ops.split(a, 2, axis=-1)
    b = L.Conv2D(4, 1, use_bias=False, name="b")(x2)
    c = L.Concatenate(name="cat")([x1, b])
    r = L.Reshape((4, 4, 2, 4), name="r1")(c)
    p = L.Permute((1, 2, 4, 3), name="perm")(r)
    s = L.Reshape((4, 4, 8), name="r2")(p)
    return keras.Model(x, L.Conv2D(2, 1, use_bias=False, name="head")(s))


@pytest.mark.parametrize("split", ["slice", "split"])
def test_split_and_shuffle_are_analyzed_exactly(split):
    rows = {r.name: r for r in analyze_model(shuffle_unit(split)).layers}
    positions = 4 * 4
    assert rows["a"].cost.flops == 2 * positions * 3 * 8
    assert rows["b"].cost.flops == 2 * positions * 4 * 4
    assert rows["head"].cost.flops == 2 * positions * 8 * 2
    moved = [r for r in rows.values() if r.type in ("ops.GetItem", "ops.Split")]
    assert moved and all(r.cost.flops == 0 for r in moved)
    if split == "slice":  # each slice copies its half
        assert [r.cost.bytes_written for r in moved] == [positions * 4 * F32] * 2
    else:  # the split reads the tensor once and writes both halves
        assert moved[0].cost.bytes_read == moved[0].cost.bytes_written == positions * 8 * F32
    assert rows["r1"].cost.bytes_total == rows["r2"].cost.bytes_total == 0  # views
    assert rows["perm"].cost.flops == 0
    assert rows["perm"].cost.bytes_read == rows["perm"].cost.bytes_written == positions * 8 * F32


def test_shuffle_ties_channel_k_of_both_halves():
    cg = build_channel_graph(shuffle_unit())
    ga, gb = cg.op("a").out_group, cg.op("b").out_group
    assert ga == gb and cg.groups[ga].size == 8  # a: 8 classes; b tied to a's first half
    assert list(cg.op("b").out_classes) == [0, 1, 2, 3]
    (seg,) = cg.op("head").in_segments[0]
    assert list(seg.classes) == [0, 0, 1, 1, 2, 2, 3, 3]  # out[2k], out[2k + 1]: class k
    alive = np.array([1, 0, 1, 0, 1, 1, 1, 1], float)  # classes 1 and 3 dead
    assert alive_count([seg], {ga: 6}, {ga: alive}) == 4
    assert alive_count(cg.op("r1").out_segments, {ga: 6}, {ga: alive}) == 2  # (.., 2, 2)


@pytest.mark.parametrize("split", ["slice", "split"])
def test_pruned_shuffle_keeps_the_original_order(split):
    model = shuffle_unit(split)
    s = Structure({"a": 4, "b": 2}, kept={"a": [0, 2, 5, 6], "b": [0, 2]})
    slim = apply_structure(model, s)
    assert slim.get_layer("b").filters == 2
    assert slim.get_layer("r1").target_shape == (4, 4, 2, 2)
    # shuffle output: x1 k (2k) and b k (2k + 1) for k in {0, 2}
    np.testing.assert_array_equal(slim.get_layer("head").kernel.numpy(),
                                  model.get_layer("head").kernel.numpy()[:, :, [0, 1, 4, 5]])
    np.testing.assert_array_equal(slim.get_layer("b").kernel.numpy(),
                                  model.get_layer("b").kernel.numpy()[:, :, [1, 2]][..., [0, 2]])
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 3)).astype("float32")
    assert slim(x).shape == (1, 4, 4, 2)
    with pytest.raises(InvalidArgumentError, match="tied channel by channel"):
        apply_structure(model, Structure({"a": 4, "b": 2},
                                         kept={"a": [0, 2, 5, 6], "b": [0, 1]}))


def test_mixing_reshape_is_refused_by_name():
    x = keras.Input((4, 4, 8))
    a = L.Conv2D(8, 1, name="a")(x)
    r = keras.ops.reshape(a, (-1, 4, 8, 4))  # moves channels into the width
    y = L.Conv2D(2, 1, name="head")(r)
    with pytest.raises(InvalidArgumentError, match="'reshape.*ops.Reshape.*moves channels"):
        build_channel_graph(keras.Model(x, y))
    s = L.Reshape((4, 4, 2, 4), name="r1")(a)
    y = L.Conv3D(2, 1, name="head3")(s)  # a conv reading the split channel block
    with pytest.raises(InvalidArgumentError, match="'head3'.*split into several axes"):
        build_channel_graph(keras.Model(x, y))


def test_grouped_conv_ties_blocks_and_rebuilds_per_group():
    x = keras.Input((4, 4, 3))
    a = L.Conv2D(8, 1, use_bias=False, name="a")(x)
    g = L.Conv2D(6, 3, padding="same", groups=2, use_bias=False, name="g")(a)
    model = keras.Model(x, L.Conv2D(2, 1, name="head")(g))
    cg = build_channel_graph(model)
    assert cg.groups[cg.op("a").out_group].size == 4  # channel j of both input blocks
    assert list(cg.op("a").out_classes) == [0, 1, 2, 3, 0, 1, 2, 3]
    assert list(cg.op("g").out_classes) == [0, 1, 2, 0, 1, 2]
    s = Structure({"a": 4, "g": 2}, kept={"a": [1, 3, 5, 7], "g": [2, 5]})
    slim = apply_structure(model, s)
    sg = slim.get_layer("g")
    assert sg.groups == 2 and sg.filters == 2
    np.testing.assert_array_equal(sg.kernel.numpy(),
                                  model.get_layer("g").kernel.numpy()[:, :, [1, 3]][..., [2, 5]])
    flops = {r.name: r.cost.flops for r in analyze_model(slim).layers}
    assert flops["g"] == 2 * 16 * 9 * (4 / 2) * 2
