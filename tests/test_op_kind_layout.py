"""Layout op kinds (transpose, slice): what a permutation or a slice is seen as from
its shapes, the Keras and LiteRT mappings of a channel split and a channel shuffle,
and that each microbenchmark converts to the kernel the mapping sends to it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from latency_lab import op_kinds  # noqa: E402
from latency_lab.kernels import work_items  # noqa: E402
from latency_lab.kernels.litert import litert_kernels  # noqa: E402
from latency_lab.op_kinds.layout import slice_configs, transpose_config  # noqa: E402

L = keras.layers


@pytest.mark.parametrize("shapes, expected", [
    # a ShuffleNet channel shuffle: (h, w, 2, c/2) -> (h, w, c/2, 2)
    (((1, 28, 28, 2, 58), (1, 28, 28, 58, 2)), dict(rows=784, a=2, b=58, inner=1)),
    # an attention head split: (seq, heads, dim) -> (heads, seq, dim)
    (((1, 197, 12, 64), (1, 12, 197, 64)), dict(rows=1, a=197, b=12, inner=64)),
    # NHWC -> NCHW: (h, w) swapped with c
    (((1, 7, 7, 32), (1, 32, 7, 7)), dict(rows=1, a=49, b=32, inner=1)),
    # shapes that do not change: the last two axes over 1 assumed swapped
    (((1, 8, 8), (1, 8, 8)), dict(rows=1, a=8, b=8, inner=1)),
])
def test_transpose_config_from_shapes(shapes, expected):
    assert transpose_config(*shapes) == expected
    w = op_kinds.work("transpose", expected)
    assert w.flops == 0 and w.bytes_total == 2 * 4 * np.prod(shapes[0])


def test_a_split_is_a_slice_per_piece():
    assert slice_configs((1, 14, 14, 96), [(1, 14, 14, 48), (1, 14, 14, 48)]) == [
        ("slice", dict(rows=196, cin=96, cout=48))] * 2
    assert op_kinds.work("slice", dict(rows=196, cin=96, cout=48)).bytes_total == 2 * 4 * 196 * 48


def _shuffle_unit(c=32, h=8):
    x = keras.Input((h, h, c))
    a, b = x[..., : c // 2], x[..., c // 2:]
    b = L.Conv2D(c // 2, 1, activation="relu")(b)
    y = L.Concatenate()([a, b])
    y = L.Reshape((h, h, 2, c // 2))(y)
    y = L.Permute((1, 2, 4, 3))(y)
    y = L.Reshape((h, h, c))(y)
    return keras.Model(x, y)


def test_a_channel_split_and_shuffle_are_timed_as_slices_and_a_transpose():
    items = work_items(_shuffle_unit(), "litert")
    ops = [op for item in items for op, _ in item.configs or ()]
    assert "transpose" in ops and ops.count("slice") >= 1
    shuffles = [c for item in items for op, c in item.configs or () if op == "transpose"]
    assert shuffles == [dict(rows=64, a=2, b=16, inner=1)]


def test_under_xla_the_shuffle_is_one_loop_with_the_concat_and_the_slice_it_reads():
    """The keras runtime: the slice the conv reads is written out for it; the other
    slice, the concat, both reshapes and the transpose are one XLA loop, charged once
    as its member with the most work (the concat: it reads both halves)."""
    items = work_items(_shuffle_unit(), "keras")
    loops = [item for item in items if item.kernel.startswith("loop(")]
    assert len(loops) == 1
    members = loops[0].kernel[len("loop("):-1].split(", ")
    assert [op for op, _ in loops[0].configs] == ["concat"]
    # the reshapes are views, with no item of their own
    assert len(members) == 3 and any("permute" in m for m in members)
    ops = [op for item in items for op, _ in item.configs or ()]
    assert ops.count("slice") == 1 and "transpose" not in ops and "conv2d" in ops


@pytest.mark.parametrize("op, kernels", [("transpose", {"TRANSPOSE"}),
                                         ("slice", {"STRIDED_SLICE", "SLICE"})])
def test_the_microbenchmark_runs_the_kernel_the_mapping_times(op, kernels):
    cfg = dict(rows=64, a=2, b=16, inner=1) if op == "transpose" else dict(rows=64, cin=32, cout=16)
    shapes, fn = op_kinds.get(op).build(cfg, np.random.default_rng(0))
    inputs = [keras.Input(s[1:], batch_size=s[0]) for s in shapes]
    got, _ = litert_kernels(keras.Model(inputs, fn(*inputs)), batch_size=shapes[0][0])
    timed = [k for k in got if op_kinds.kernel_configs(k)]
    assert len(timed) == 1 and timed[0].op in kernels
    assert op_kinds.kernel_configs(timed[0]) == [(op, cfg)]


# ------------------------------------------------- Lambda layers and keras.ops calls


def _lambda_file(tmp_path):
    x = keras.Input((8, 8, 16))
    y = L.Lambda(lambda t: t[..., :8])(x)
    y = L.Conv2D(4, 1)(y)
    path = tmp_path / "lam.keras"
    keras.Model(x, y).save(path)
    return path


def test_a_lambda_file_needs_unsafe_deserialization_and_says_so(tmp_path):
    from latency_lab.errors import ModelLoadError
    from latency_lab.models import load_model_file

    path = _lambda_file(tmp_path)
    with pytest.raises(ModelLoadError, match="--unsafe-deserialization"):
        load_model_file(path)
    model = load_model_file(path, unsafe_deserialization=True)
    # LiteRT costs what the Lambda converts to: a slice
    ops = [op for item in work_items(model, "litert") for op, _ in item.configs or ()]
    assert ops[0] == "slice"


def test_analyze_names_a_lambda_and_costs_the_keras_ops_form_exactly(tmp_path):
    from latency_lab.analyze import analyze_model
    from latency_lab.errors import UnsupportedOpError
    from latency_lab.models import load_model_file

    with pytest.raises(UnsupportedOpError, match="of type 'Lambda'.*keras.ops"):
        analyze_model(load_model_file(_lambda_file(tmp_path), unsafe_deserialization=True))
    report = analyze_model(_shuffle_unit(c=32, h=8))
    by_type = {}
    for r in report.layers:
        by_type.setdefault(r.type, []).append(r.cost)
    halves = by_type["ops.GetItem"]
    assert len(halves) == 2 and all(c.flops == 0 for c in halves)
    assert all(c.bytes_total == 2 * 4 * 8 * 8 * 16 for c in halves)  # read and write a half
    (shuffle,) = by_type["Permute"]
    assert shuffle.flops == 0 and shuffle.bytes_total == 2 * 4 * 8 * 8 * 32
