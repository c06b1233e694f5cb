"""Transformer op kinds (softmax, reduce_rows, unary, squared_difference, row_broadcast,
gather): every kernel LiteRT runs for a ViT block and a text encoder is timed by an op
kind, each new kind's microbenchmark converts to the kernel its mapping times, LiteRT's
MEAN goes to reduce_rows or global_pool by its axes, and a gather's int32 ids reach
both runtimes."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from latency_lab import op_kinds, runtimes  # noqa: E402
from latency_lab.errors import (InvalidArgumentError, MeasurementError,  # noqa: E402
                                UnsupportedOpError)
from latency_lab.graph import Op  # noqa: E402
from latency_lab.kernels import work_items  # noqa: E402
from latency_lab.kernels.litert import Kernel, litert_kernels  # noqa: E402
from latency_lab.op_kinds.base import IndexInput, input_dtype  # noqa: E402
from latency_lab.op_kinds.elementwise import binary_form  # noqa: E402
from latency_lab.op_kinds.reduce import kernel_axes, mean_configs  # noqa: E402
from latency_lab.runtimes import OpProgram  # noqa: E402
from latency_lab.timing import TimingConfig  # noqa: E402

L = keras.layers
NEW_KINDS = ("softmax", "reduce_rows", "unary", "squared_difference", "row_broadcast", "gather")
# Kernels of these models left to the roofline on purpose: none.
ROOFLINE_ON_PURPOSE: frozenset = frozenset()


def _vit_block(img=24, patch=6, d=48, heads=3, classes=7):
    x = keras.Input((img, img, 3))
    t = L.Conv2D(d, patch, strides=patch)(x)
    t = L.Reshape(((img // patch) ** 2, d))(t)
    h = L.LayerNormalization(epsilon=1e-6)(t)
    t = L.Add()([t, L.MultiHeadAttention(heads, d // heads)(h, h)])
    h = L.LayerNormalization(epsilon=1e-6)(t)
    h = L.Dense(2 * d, activation="gelu")(h)
    t = L.Add()([t, L.Dense(d)(h)])
    y = L.GlobalAveragePooling1D()(L.LayerNormalization()(t))
    return keras.Model(x, L.Softmax()(L.Dense(classes)(y)), name="vit_block")


def _text_encoder(seq=12, vocab=500, d=40, heads=2, classes=3):
    ids = keras.Input((seq,), dtype="int32")
    e = L.Embedding(vocab, d, name="tokens")(ids)
    h = L.LayerNormalization(name="norm")(e)
    t = L.Add()([e, L.MultiHeadAttention(heads, d // heads)(h, h)])
    y = L.GlobalAveragePooling1D()(t)
    return keras.Model(ids, L.Dense(classes, activation="softmax")(y), name="text_encoder")


@pytest.fixture(scope="module")
def kernels():
    return {name: litert_kernels(build())[0]
            for name, build in (("vit", _vit_block), ("text", _text_encoder))}


@pytest.mark.parametrize("name", ["vit", "text"])
def test_every_kernel_of_a_transformer_is_timed_by_an_op_kind(kernels, name):
    roofline = [k.describe() for k in kernels[name] if op_kinds.kernel_configs(k) is None
                and k.op not in ROOFLINE_ON_PURPOSE]
    assert roofline == []
    ops = {k.op for k in kernels[name]}
    assert {"SOFTMAX", "MEAN", "RSQRT", "SQUARED_DIFFERENCE", "BATCH_MATMUL"} <= ops
    timed = {kind for k in kernels[name] for kind, _ in op_kinds.kernel_configs(k)}
    assert {"softmax", "reduce_rows", "unary", "squared_difference", "row_broadcast",
            "global_pool"} <= timed
    if name == "text":
        assert "gather" in timed


def test_a_layer_norm_runs_as_these_kernels(kernels):
    """The text encoder's LayerNormalization over 12 tokens of 40 features, kernel by
    kernel."""
    ln = [(k.op, op_kinds.kernel_configs(k)) for k in kernels["text"]
          if k.layer == "norm"]
    rows = dict(rows=12, c=40)
    assert ln == [
        ("MEAN", [("reduce_rows", rows)]),
        ("NEG", [("unary", dict(rows=12, c=1, fn="neg"))]),
        ("SQUARED_DIFFERENCE", [("squared_difference", dict(rows, broadcast=True))]),
        ("MEAN", [("reduce_rows", rows)]),
        ("ADD", [("add_scalar", dict(h=1, w=12, c=1))]),
        ("RSQRT", [("unary", dict(rows=12, c=1, fn="rsqrt"))]),
        # 1/std (12, 1) times gamma (1, 40): an outer product, not a per-channel broadcast
        ("MUL", [("row_broadcast", dict(rows, fn="multiply", outer=True))]),
        ("MUL", [("row_broadcast", dict(rows, fn="multiply", outer=False))]),
        ("MUL", [("multiply", dict(h=1, w=12, c=40, broadcast=False))]),
        ("ADD", [("add", dict(h=1, w=12, c=40, broadcast=False))]),
    ]


def test_attention_softmax_pooling_and_embedding_configs(kernels):
    text = kernels["text"]
    by_op = {}
    for k in text:
        by_op.setdefault(k.op, []).append(op_kinds.kernel_configs(k))
    assert [("softmax", dict(rows=2 * 12, cols=12))] in by_op["SOFTMAX"]  # heads x queries
    assert [("softmax", dict(rows=1, cols=3))] in by_op["SOFTMAX"]  # the classifier's
    # GlobalAveragePooling1D: a mean over the 12 steps, not over the 40 features
    assert [("global_pool", dict(h=12, w=1, c=40))] in by_op["MEAN"]
    assert by_op["GATHER"] == [[("gather", dict(n=12, c=40, vocab=500))]]
    # Keras' lookup wraps negative ids (LESS, ADD, SELECT on int32): in the gather sample
    assert by_op["LESS"] == [[]] and by_op["SELECT"] == [[]] and [] in by_op["ADD"]
    # the GELU of the ViT's MLP: every token, not one row of features
    gelu = [op_kinds.kernel_configs(k) for k in kernels["vit"] if k.op == "GELU"]
    assert gelu == [[("activation", dict(h=1, w=16, c=96, fn="gelu"))]]


def test_litert_items_of_a_transformer_have_no_roofline_item():
    items = work_items(_text_encoder(seq=6, vocab=50, d=16), "litert")
    assert items and all(i.configs for i in items)


def test_predict_lists_the_parts_of_an_attention_layer(capsys, tmp_path):
    """`latency-lab predict` splits a MultiHeadAttention's row into its kernels: the q,
    k, v, output projections, the two batch matmuls, the softmax; they sum to it."""
    from latency_lab.cli import main

    path = tmp_path / "text.keras"
    _text_encoder(seq=6, vocab=50, d=16).save(path)
    assert main(["predict", str(path), "--profile", "epyc_avx512_vm_2c_litert",
                 "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    mha = next(layer for layer in layers if layer["type"] == "MultiHeadAttention")
    kernels = [p["kernel"] for p in mha["parts"]]
    assert kernels.count("FULLY_CONNECTED") == 4 and kernels.count("BATCH_MATMUL") == 2
    assert "SOFTMAX" in kernels and len(kernels) == mha["kernels"]
    assert sum(p["latency_ms"] for p in mha["parts"]) == pytest.approx(mha["latency_ms"])
    assert {p["op"] for p in mha["parts"]} >= {"dense", "batch_matmul", "softmax"}
    assert main(["predict", str(path), "--profile", "epyc_avx512_vm_2c_litert"]) == 0
    table = capsys.readouterr().out
    assert "SOFTMAX" in table and "batch_matmul" in table  # kernel, op kind


# ------------------------------------------- microbenchmarks convert to their kernel

MICRO = [
    ("softmax", dict(rows=24, cols=12), "SOFTMAX"),
    ("reduce_rows", dict(rows=12, c=40), "MEAN"),
    ("squared_difference", dict(rows=12, c=40, broadcast=True), "SQUARED_DIFFERENCE"),
    ("squared_difference", dict(rows=12, c=40, broadcast=False), "SQUARED_DIFFERENCE"),
    ("row_broadcast", dict(rows=12, c=40, fn="multiply", outer=True), "MUL"),
    ("row_broadcast", dict(rows=12, c=40, fn="multiply", outer=False), "MUL"),
    ("row_broadcast", dict(rows=12, c=12, fn="add", outer=True), "ADD"),
    ("row_broadcast", dict(rows=12, c=40, fn="add", outer=False), "ADD"),
    ("gather", dict(n=12, c=40, vocab=500), "GATHER"),
] + [("unary", dict(rows=12, c=5, fn=fn), op) for op, fn in
     (("RSQRT", "rsqrt"), ("SQRT", "sqrt"), ("NEG", "neg"), ("EXP", "exp"), ("ABS", "abs"),
      ("SQUARE", "square"))]


def _converted(op, cfg):
    shapes, fn = op_kinds.get(op).build(cfg, np.random.default_rng(0))
    inputs = [keras.Input(s[1:], batch_size=s[0], dtype=input_dtype(s)) for s in shapes]
    return litert_kernels(keras.Model(inputs, fn(*inputs)), batch_size=shapes[0][0])[0]


@pytest.mark.parametrize("op, cfg, kernel", MICRO, ids=[f"{o}-{k}" for o, _, k in MICRO])
def test_the_microbenchmark_runs_the_kernel_the_mapping_times(op, cfg, kernel):
    got = _converted(op, cfg)
    timed = [k for k in got if op_kinds.kernel_configs(k)]
    assert [k.op for k in timed] == [kernel]
    assert op_kinds.kernel_configs(timed[0]) == [(op, cfg)]
    # nothing else left to the roofline
    assert all(op_kinds.kernel_configs(k) is not None for k in got)


def test_every_new_kind_has_a_microbenchmark_checked_here():
    assert {op for op, _, _ in MICRO} == set(NEW_KINDS)
    assert {cfg["fn"] for op, cfg, _ in MICRO if op == "unary"} == set(
        op_kinds.get("unary").categories["fn"])


def test_the_gather_sample_runs_what_an_embedding_runs(kernels):
    """The microbenchmark is Keras' lookup: the same LESS, ADD, SELECT and GATHER as an
    Embedding layer, so the three index kernels are timed inside the gather sample."""
    micro = [(k.op, k.input_dtypes) for k in _converted("gather", dict(n=12, c=40, vocab=500))]
    layer = [(k.op, k.input_dtypes) for k in kernels["text"] if k.layer == "tokens"]
    assert micro == layer
    assert [op for op, _ in micro] == ["LESS", "ADD", "SELECT", "GATHER"]
    assert layer[-1][1] == ["float32", "int32"]  # a float table gathered by int32 ids


def test_a_float_select_stays_on_the_roofline_and_a_float_less_is_an_error():
    select = Kernel(0, "SELECT", [(1, 8), (1, 8), (1, 8)], [(1, 8)],
                    input_dtypes=["bool", "float32", "float32"], output_dtypes=["float32"])
    assert op_kinds.kernel_configs(select) is None
    less = Kernel(0, "LESS", [(1, 8), (1, 8)], [(1, 8)], layers=["mask"],
                  input_dtypes=["float32", "float32"], output_dtypes=["bool"])
    with pytest.raises(UnsupportedOpError, match=r"LESS.*'mask'.*float32.*ROOFLINE_KERNELS"):
        op_kinds.kernel_configs(less)
    # and a gather along a later axis (columns) is left to the roofline too
    cols = Kernel(0, "GATHER", [(4, 30), (1, 3)], [(4, 1, 3)], {"axis": 1, "batchDims": 0})
    assert op_kinds.kernel_configs(cols) is None


# ------------------------------------------------------------ MEAN: which reduction


def _mean_kernel(x, out, axes=None, keep=True):
    values = [None, tuple(axes)] if axes is not None else []
    return Kernel(0, "MEAN", [tuple(x), (len(axes or [0]),)], [tuple(out)], {"keepDims": keep},
                  layers=["m"], input_values=values)


def test_a_mean_over_the_last_axis_and_one_over_the_spatial_axes_are_different_kinds():
    last = op_kinds.kernel_configs(_mean_kernel((1, 16, 64), (1, 16, 1), [2]))
    spatial = op_kinds.kernel_configs(_mean_kernel((1, 7, 7, 64), (1, 64), [1, 2], keep=False))
    steps = op_kinds.kernel_configs(_mean_kernel((1, 16, 64), (1, 64), [1], keep=False))
    assert last == [("reduce_rows", dict(rows=16, c=64))]
    assert spatial == [("global_pool", dict(h=7, w=7, c=64))]
    assert steps == [("global_pool", dict(h=16, w=1, c=64))]
    # a 4-D map's last axis is a row reduction too; -1 names it as well
    assert op_kinds.kernel_configs(_mean_kernel((1, 7, 7, 64), (1, 7, 7, 1), [-1])) == [
        ("reduce_rows", dict(rows=49, c=64))]


def test_a_converted_mean_carries_its_axes_and_dispatches_on_them():
    x = keras.Input((6, 6, 10), batch_size=1)
    model = keras.Model(x, [keras.ops.mean(x, axis=-1, keepdims=True),
                            keras.ops.mean(x, axis=(1, 2))])
    means = [k for k in litert_kernels(model)[0] if k.op == "MEAN"]
    assert sorted(k.input_values[1] for k in means) == [(-1,), (1, 2)]
    assert sorted(op_kinds.kernel_configs(k)[0][0] for k in means) == [
        "global_pool", "reduce_rows"]


def test_mean_axes_are_inferred_from_shapes_when_the_kernel_does_not_carry_them():
    assert kernel_axes(_mean_kernel((1, 16, 64), (1, 16, 1))) in ((2,), (0, 2))
    assert op_kinds.kernel_configs(_mean_kernel((1, 16, 64), (1, 64), keep=False)) == [
        ("global_pool", dict(h=16, w=1, c=64))]
    # (1, 16, 16) -> (1, 16): over the steps or over the features? Not guessed.
    with pytest.raises(UnsupportedOpError, match=r"MEAN.*'m'.*several reductions"):
        op_kinds.kernel_configs(_mean_kernel((1, 16, 16), (1, 16), keep=False))


@pytest.mark.parametrize("x, axes", [((1, 8, 8, 16), (2,)), ((1, 4, 8, 16), (1, 3)),
                                     ((1, 6, 5, 4, 3), (2, 3))])
def test_a_mean_over_other_axes_is_an_error_naming_the_kernel(x, axes):
    """A middle axis (a column of strided rows with more rows around it)."""
    out = tuple(1 if i in axes else d for i, d in enumerate(x))
    with pytest.raises(UnsupportedOpError, match=r"MEAN \(layer 'm'.*axes.*reduce_rows"):
        op_kinds.kernel_configs(_mean_kernel(x, out, axes))


def test_mean_configs_look_through_axes_of_size_one():
    assert mean_configs((1, 1, 16, 64), (1, 2), "m") == [("global_pool", dict(h=1, w=16, c=64))]
    assert mean_configs((1, 1, 16, 64), (0, 2), "m") == [("global_pool", dict(h=16, w=1, c=64))]
    assert mean_configs((1, 16, 1), (2,), "m") == [("reduce_rows", dict(rows=16, c=1))]
    assert mean_configs((1, 4, 8, 16), (2, 3), "m") == [("reduce_rows", dict(rows=4, c=128))]
    assert mean_configs((1, 1, 1, 32), (1, 2), "m") == [("global_pool", dict(h=1, w=1, c=32))]
    # over a map's rows only: a pool of 8 steps of w x c = 128
    assert mean_configs((1, 8, 8, 16), (1,), "m") == [("global_pool", dict(h=8, w=1, c=128))]


# ------------------------------------------------------------ broadcasts and Keras side


@pytest.mark.parametrize("shapes, out, form", [
    (((1, 16, 1), (1, 1, 64)), (1, 16, 64), "outer"),
    (((1, 16, 1), (1, 16, 64)), (1, 16, 64), "rows"),
    (((1, 7, 7, 32), (1, 1, 1, 32)), (1, 7, 7, 32), "channel"),
    (((1, 16, 64), (64,)), (1, 16, 64), "channel"),
    (((1, 16, 64), (1, 16, 64)), (1, 16, 64), "same"),
    (((1, 16, 1), (1, 16, 1)), (1, 16, 1), "same"),
])
def test_binary_form(shapes, out, form):
    assert binary_form(shapes, out) == form


def test_keras_layers_map_to_the_new_kinds():
    softmax = Op("s", "Softmax", ["x"], [(1, 3, 16, 16)], [(1, 3, 16, 16)], {"axis": -1})
    assert op_kinds.layer_configs(softmax) == [("softmax", dict(rows=48, cols=16))]
    over_1 = Op("s", "ops.Softmax", ["x"], [(1, 16, 8)], [(1, 16, 8)], {"axis": 1})
    assert op_kinds.layer_configs(over_1) == [("softmax", dict(rows=8, cols=16))]
    act = Op("a", "Activation", ["x"], [(1, 10)], [(1, 10)], {"activation": "softmax"})
    assert op_kinds.layer_configs(act) == [("softmax", dict(rows=1, cols=10))]
    head = Op("d", "Dense", ["x"], [(1, 64)], [(1, 10)], {"activation": "softmax"})
    assert op_kinds.layer_configs(head)[1] == ("softmax", dict(rows=1, cols=10))
    mean = Op("m", "ops.Mean", ["x"], [(1, 16, 64)], [(1, 16)], {"axis": -1})
    assert op_kinds.layer_configs(mean) == [("reduce_rows", dict(rows=16, c=64))]
    gap = Op("g", "GlobalAveragePooling1D", ["x"], [(1, 16, 64)], [(1, 64)], {})
    assert op_kinds.layer_configs(gap) == [("global_pool", dict(h=16, w=1, c=64))]
    rsqrt = Op("r", "ops.Rsqrt", ["x"], [(1, 16, 1)], [(1, 16, 1)], {})
    assert op_kinds.layer_configs(rsqrt) == [("unary", dict(rows=16, c=1, fn="rsqrt"))]
    emb = Op("e", "Embedding", ["x"], [(1, 12)], [(1, 12, 40)], {"input_dim": 500})
    assert op_kinds.layer_configs(emb) == [("gather", dict(n=12, c=40, vocab=500))]
    with pytest.raises(UnsupportedOpError, match=r"'e' \(Embedding\).*input_dim"):
        op_kinds.layer_configs(Op("e", "Embedding", ["x"], [(1, 12)], [(1, 12, 40)], {}))
    scale = Op("m", "Multiply", ["a", "b"], [(1, 16, 1), (1, 16, 64)], [(1, 16, 64)], {})
    assert op_kinds.layer_configs(scale) == [
        ("row_broadcast", dict(rows=16, c=64, fn="multiply", outer=False))]


# ------------------------------------------------------------------ spaces and work


@pytest.mark.parametrize("name", NEW_KINDS)
def test_space_coverage_and_work_of_each_new_kind(name):
    kind = op_kinds.get(name)
    assert 1 <= kind.table_share <= 4
    rng = __import__("random").Random(0)
    cfgs = kind.space_configs(12, rng) + kind.coverage_configs(False)
    assert kind.coverage_configs(True) and len(kind.coverage_configs(True)) < len(
        kind.coverage_configs(False))
    for cfg in cfgs:
        kind.check(cfg)
        w = kind.work(cfg)
        assert w.bytes_total > 0
        assert w.bytes_total <= op_kinds.base.MAX_SAMPLE_BYTES
        assert len(kind.features(cfg, {k: list(v) for k, v in kind.categories.items()}, 8)) >= 2


def test_the_gather_table_is_cut_to_the_byte_cap_and_its_work_is_the_rows():
    kind = op_kinds.get("gather")
    cfg = kind.fit_work(dict(n=4096, c=4096, vocab=50000))
    assert cfg["n"] == cfg["c"] == 4096 and 4 * cfg["vocab"] * 4096 <= op_kinds.base.MAX_SAMPLE_BYTES
    w = kind.work(dict(n=12, c=40, vocab=500))
    assert w.flops == 0 and w.bytes_total == 2 * 4 * 12 * 40
    assert kind.weight_bytes(dict(n=12, c=40, vocab=500)) == 4 * 12 * 40


def test_reduce_rows_and_unary_scale_with_the_layers_channels():
    assert op_kinds.get("reduce_rows").scale(dict(rows=16, c=64), 0.5, 1.0) == dict(rows=16, c=32)
    assert op_kinds.get("softmax").scale(dict(rows=32, cols=16), 0.5, 0.5) == dict(rows=32, cols=16)


# --------------------------------------------------------- int32 ids on both runtimes

FAST = TimingConfig(warmup_runs=1, min_time_s=0.002, repeats=3, max_retries=0)
GATHER = dict(n=12, c=40, vocab=500)


def _gather_program():
    shapes, fn = op_kinds.get("gather").build(GATHER, np.random.default_rng(0))
    return OpProgram("gather|test", shapes, fn)


def test_a_program_draws_int32_ids_within_the_vocabulary():
    prog = _gather_program()
    assert prog.input_dtypes == ("int32",) and prog.input_ranges == ((0, 500),)
    (ids,) = prog.random_inputs(np.random.default_rng(0))
    assert ids.dtype == np.int32 and ids.shape == (1, 12)
    assert ids.min() >= 0 and ids.max() < 500 and len(set(ids.ravel())) > 1
    # a float program draws what it always did
    x = OpProgram("f", [(2, 3)], lambda x: x).random_inputs(np.random.default_rng(0))[0]
    assert np.array_equal(x, np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32))
    with pytest.raises(MeasurementError, match="2 input shapes but 1 input dtypes"):
        OpProgram("bad", [(1, 2), (1, 2)], lambda x, y: x, input_dtypes=("int32",))


def test_an_index_input_is_a_shape_that_survives_a_copy():
    import copy
    import pickle

    ids = IndexInput((1, 12), high=500)
    assert ids == (1, 12) and ids[1:] == (12,)
    with pytest.raises(InvalidArgumentError, match=r"\(1, 12\).*\[7, 7\).*high > low"):
        IndexInput((1, 12), high=7, low=7)
    for clone in (copy.deepcopy(ids), pickle.loads(pickle.dumps(ids))):
        assert clone == (1, 12) and (clone.dtype, clone.low, clone.high) == ("int32", 0, 500)


@pytest.mark.parametrize("runtime", ["litert", "keras"])
def test_a_gather_microbenchmark_runs_under_both_runtimes(runtime):
    rt = runtimes.get(runtime, threads=1)
    (m,) = rt.measure_ops([_gather_program()], FAST)
    assert m.median_s > 0 and len(m.raw_s) >= 3


def test_the_litert_program_takes_int32_ids():
    from latency_lab.convert import convert_program
    from latency_lab.runtimes.litert import interpreter

    it = interpreter(convert_program(_gather_program()), 1)
    (detail,) = it.get_input_details()
    assert detail["dtype"] == np.int32 and tuple(detail["shape"]) == (1, 12)


# ------------------------------------------------------------------ the table plan


def test_a_kind_variants_cannot_change_fills_its_share_from_its_space(monkeypatch):
    """The families' softmaxes are all a classifier's one row of 1000: no slimmed or
    resized variant changes that, so the rest of the softmax share is drawn from its
    space (not copies of the one configuration, dropped as duplicates)."""
    from latency_lab.bench import plans
    from latency_lab.profile import sample_key

    real = [("softmax", dict(rows=1, cols=1000))]
    real += [("conv2d", dict(h=14, w=14, cin=c, cout=c, k=3, s=1)) for c in (32, 64, 96)]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(real))
    plan = plans.table_plan(quick=False, seed=0, max_samples=700)
    shares = plans.table_shares()
    n = 700 * shares["softmax"] // sum(shares.values())
    coverage = {sample_key("softmax", c) for c in op_kinds.get("softmax").coverage_configs(False)}
    planned = {p.key for p in plan if p.op == "softmax"}
    assert sample_key("softmax", dict(rows=1, cols=1000)) in planned
    assert len(planned - coverage) >= n - 1 >= 8
    # every new kind gets samples of its own in a full plan, none of them families'
    for name in NEW_KINDS:
        assert sum(p.op == name for p in plan) >= 8, name


def test_softmax_samples_have_at_least_two_columns():
    """A softmax over one element is the constant 1 (Keras warns); the plan's samples
    never time one, whatever the space draw or a variant gives."""
    import random

    kind = op_kinds.get("softmax")
    assert kind.derive(dict(rows=2, cols=1))["cols"] == 2
    cfgs = [kind.derive(c) for c in kind.space_configs(64, random.Random(0))]
    assert min(c["cols"] for c in cfgs) >= 2
