"""Regularizers on transformers: heads and MLP units are channel groups, costed by
FLOPs and latency, and `apply_structure` rebuilds the slim network exactly.

Runs under TensorFlow and (make test) again under JAX: the head vectors, costs and
regularization term are keras.ops."""

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from backend_helpers import gradients, no_gradient  # noqa: E402
from latency_lab.analyze import analyze_model  # noqa: E402
from latency_lab.errors import InvalidArgumentError  # noqa: E402
from regularizers import (  # noqa: E402
    FlopsRegularizer,
    GatedMultiHeadAttention,
    LatencyRegularizer,
    ModelSizeRegularizer,
    apply_structure,
    build_channel_graph,
    export_structure,
    insert_gates,
    load_structure,
)

L = keras.layers
PROFILE = "epyc_avx512_vm_2c_litert"  # profiled with batch matmul, softmax, layer norm


def vit(dim=24, heads=4, key_dim=6, value_dim=5, mlp=40, depth=2, image=12, patch=4):
    """A small pre-norm ViT (conv patch embedding, no class token, mean-pooled), with
    key_dim != value_dim."""
    x = keras.Input((image, image, 1))
    y = L.Conv2D(dim, patch, strides=patch, name="patch")(x)
    y = L.Reshape(((image // patch) ** 2, dim), name="tokens")(y)
    for i in range(depth):
        h = L.LayerNormalization(name=f"ln{i}a")(y)
        h = L.MultiHeadAttention(heads, key_dim, value_dim=value_dim, name=f"mha{i}")(h, h)
        y = L.Add(name=f"res{i}a")([y, h])
        h = L.LayerNormalization(name=f"ln{i}b")(y)
        h = L.Dense(mlp, activation="gelu", name=f"fc{i}a")(h)
        h = L.Dense(dim, name=f"fc{i}b")(h)
        y = L.Add(name=f"res{i}b")([y, h])
    y = L.LayerNormalization(name="ln_out")(y)
    y = L.GlobalAveragePooling1D(name="pool")(y)
    return keras.Model(x, L.Dense(10, name="logits")(y), name="tiny_vit")


def kill_heads(model, layer, heads):
    """Zero every weight of `heads` of attention `layer` (q, k, v columns and biases,
    output-projection rows)."""
    mha = model.get_layer(layer)
    for dense, axis in ((mha.query_dense, 1), (mha.key_dense, 1), (mha.value_dense, 1),
                        (mha.output_dense, 0)):
        k = np.array(keras.ops.convert_to_numpy(dense.kernel))
        index = [slice(None)] * k.ndim
        index[axis] = list(heads)
        k[tuple(index)] = 0
        dense.kernel.assign(k)
        if axis == 1:
            b = np.array(keras.ops.convert_to_numpy(dense.bias))
            b[list(heads)] = 0
            dense.bias.assign(b)


def kill_units(model, layer, units):
    dense = model.get_layer(layer)
    k = np.array(keras.ops.convert_to_numpy(dense.kernel))
    b = np.array(keras.ops.convert_to_numpy(dense.bias))
    k[:, list(units)] = 0
    b[list(units)] = 0
    dense.kernel.assign(k)
    dense.bias.assign(b)


def weight(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def test_vit_groups_heads_mlp_units_and_a_frozen_residual_stream():
    cg = build_channel_graph(vit())
    head_groups = [cg.groups[op.head_group] for op in cg.attention_ops]
    assert [(g.unit, g.size, g.frozen) for g in head_groups] == [("head", 4, False)] * 2
    assert [g.sources for g in head_groups] == [["mha0"], ["mha1"]]
    assert not cg.group_of("fc0a").frozen and cg.group_of("fc0a").size == 40
    stream = cg.group_of("patch")
    assert stream.frozen and stream is cg.group_of("fc1b")
    assert any("LayerNormalization 'ln0a'" in r for r in stream.frozen_reasons)
    assert "heads" in cg.summary()


def test_killing_a_head_removes_exactly_its_slices():
    model = vit()
    kill_heads(model, "mha1", [2])
    reg = FlopsRegularizer(model, algorithm="group_lasso")
    vectors = reg.get_group_importance()
    assert vectors["mha1"][2] == 0 and np.all(vectors["mha1"][[0, 1, 3]] > 0)
    structure = reg.get_alive_counts()
    assert structure["mha1"] == 3 and structure["mha0"] == 4
    np.testing.assert_array_equal(structure.kept["mha1"], [0, 1, 3])
    slim = apply_structure(model, structure)
    old, new = model.get_layer("mha1"), slim.get_layer("mha1")
    assert new.num_heads == 3 and new.key_dim == 6 and new.value_dim == 5
    keep = [0, 1, 3]
    for part in ("query_dense", "key_dense", "value_dense"):
        o, n = getattr(old, part), getattr(new, part)
        np.testing.assert_array_equal(weight(n.kernel), weight(o.kernel)[:, keep])
        np.testing.assert_array_equal(weight(n.bias), weight(o.bias)[keep])
    np.testing.assert_array_equal(weight(new.output_dense.kernel),
                                  weight(old.output_dense.kernel)[keep])
    np.testing.assert_array_equal(weight(new.output_dense.bias),
                                  weight(old.output_dense.bias))


def test_slim_vit_computes_the_masked_original_and_its_flops_are_the_cost(tmp_path):
    # key_dim == value_dim: Keras 3.15 under JAX fails a forward pass otherwise
    # (jax.nn.dot_product_attention checks value's head dim against the key's)
    model = vit(value_dim=6)
    kill_heads(model, "mha0", [0, 3])
    kill_heads(model, "mha1", [1])
    kill_units(model, "fc0a", range(0, 40, 3))
    kill_units(model, "fc1a", range(25))
    reg = FlopsRegularizer(model, algorithm="group_lasso")
    structure = reg.get_alive_counts()
    assert (structure["mha0"], structure["mha1"], structure["fc0a"], structure["fc1a"]) \
        == (2, 3, 26, 15)
    path = export_structure(structure, tmp_path)  # the file form keeps the heads too
    slim = apply_structure(model, load_structure(path))
    x = np.random.default_rng(0).normal(size=(4, 12, 12, 1)).astype("float32")
    diff = np.abs(np.asarray(model(x)) - np.asarray(slim(x))).max()
    assert diff < 1e-4
    # the regularizer's cost is the slim network's FLOPs, as analyze counts them
    rows = analyze_model(slim).layers
    counted = sum(r.cost.flops for r in rows
                  if r.type in ("Conv2D", "Dense", "MultiHeadAttention"))
    assert reg.get_cost() == pytest.approx(counted, rel=1e-9)
    assert FlopsRegularizer(slim, algorithm="group_lasso").get_cost() == pytest.approx(
        counted, rel=1e-9)
    assert ModelSizeRegularizer(model, algorithm="group_lasso").get_cost() == \
        pytest.approx(ModelSizeRegularizer(slim, algorithm="group_lasso").get_cost())


def test_attention_flops_at_alive_heads_by_hand():
    """One MHA over T tokens of width D, h alive heads of key_dim dk, value_dim dv:
    q, k projections 2 T D h dk each, v 2 T D h dv, Q.K^T 2 h T T dk, A.V 2 h T T dv,
    output 2 T h dv D, the scale (fused, on the scores) h T T, softmax 5 h T T."""
    t, d, dk, dv = 7, 12, 4, 3
    x = keras.Input((t, d))
    h = L.Dense(d, name="embed")(x)
    y = L.MultiHeadAttention(4, dk, value_dim=dv, name="mha")(h, h)
    model = keras.Model(x, L.Dense(2, name="out")(L.GlobalAveragePooling1D()(y)))
    kill_heads(model, "mha", [1])
    reg = FlopsRegularizer(model, algorithm="group_lasso", frozen_layers=["embed"])
    a = 3
    attention = (2 * 2 * t * d * a * dk + 2 * t * d * a * dv + 2 * a * t * t * dk
                 + 2 * a * t * t * dv + 2 * t * a * dv * d + a * t * t + 5 * a * t * t)
    assert reg.get_cost() == pytest.approx(2 * t * d * d + attention + 2 * d * 2)


def test_group_lasso_term_reaches_every_weight_of_a_head():
    model = vit(depth=1)
    reg = FlopsRegularizer(model, algorithm="group_lasso")
    mha = model.get_layer("mha0")
    variables = [mha.query_dense.kernel, mha.key_dense.kernel, mha.value_dense.kernel,
                 mha.output_dense.kernel, mha.output_dense.bias]
    value, grads = gradients(reg.get_regularization_term, variables)
    assert float(keras.ops.convert_to_numpy(value)) > 0
    assert all(not no_gradient(g) for g in grads[:4])
    assert no_gradient(grads[4])  # biases are not in the head norm


# its keras.ops math is the FLOP tests'; under JAX each LiteRT conversion is a
# TensorFlow subprocess (tests/test_regularizers_backends.py covers that path)
@pytest.mark.only_backend("tensorflow")
def test_latency_regularizer_costs_heads_from_the_runtime_kernels():
    model = vit(dim=32, heads=4, key_dim=8, value_dim=8, mlp=64, image=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = LatencyRegularizer(PROFILE, model=model, algorithm="group_lasso")
    from latency_lab.predict import predict_model

    full = reg.get_cost()
    assert full == pytest.approx(predict_model(model, PROFILE).latency_ms, rel=1e-9)
    curve = [op.payload for op in reg._ops if op.kind == "attention"][0]
    assert curve.heads == [1, 2, 3, 4]
    assert all(b > a for a, b in zip(curve.ms, curve.ms[1:]))  # more heads, more time
    kill_heads(model, "mha0", [1, 2])
    structure = reg.get_alive_counts()
    assert structure["mha0"] == 2
    slim = apply_structure(model, structure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slim_cost = LatencyRegularizer(PROFILE, model=slim, algorithm="group_lasso").get_cost()
    assert reg.get_cost() == pytest.approx(slim_cost, rel=1e-9) and slim_cost < full
    mha = model.get_layer("mha1")
    _, grads = gradients(reg.get_regularization_term, [mha.query_dense.kernel])
    assert not no_gradient(grads[0])


@pytest.mark.only_backend("tensorflow")
def test_latency_regularizer_refuses_an_attention_with_prunable_inputs():
    x = keras.Input((6, 8))
    h = L.Dense(16, name="proj")(x)  # no norm: its channels are prunable
    y = L.MultiHeadAttention(2, 4, name="mha")(h, h)
    model = keras.Model(x, L.Dense(2, name="out")(L.GlobalAveragePooling1D()(y)))
    with pytest.raises(InvalidArgumentError, match="'mha'.*heads only.*proj"):
        LatencyRegularizer(PROFILE, model=model, algorithm="group_lasso")
    # frozen, it is costed by its heads
    LatencyRegularizer(PROFILE, model=model, algorithm="group_lasso", frozen_layers=["proj"])


def hybrid():
    """conv + BN, tokens, LayerNorm, attention, Dense + BN: gamma has a vector for the
    Dense's channels and none for the heads."""
    x = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, padding="same", name="conv")(x)
    h = L.BatchNormalization(name="bn")(h)
    h = L.Reshape((64, 8), name="tokens")(h)
    h = L.LayerNormalization(name="ln")(h)
    h = L.MultiHeadAttention(2, 4, name="mha")(h, h)
    h = L.Dense(12, name="fc")(h)
    h = L.BatchNormalization(name="bn_fc")(h)
    return keras.Model(x, L.Dense(2, name="out")(L.GlobalAveragePooling1D()(h)))


def test_gamma_keeps_heads_whole_and_says_why():
    model = hybrid()
    with pytest.warns(UserWarning, match=r"heads of MultiHeadAttention layers \['mha'\].*group_lasso"):
        reg = FlopsRegularizer(model, algorithm="gamma")
    assert reg.regularized_layers == ["fc"] and reg.get_alive_counts()["mha"] == 2


@pytest.mark.backend_independent
def test_structure_head_counts_are_checked():
    model = vit(depth=1)
    with pytest.raises(InvalidArgumentError, match=r"'mha0'.*\[0, 4\].*4 heads"):
        apply_structure(model, {"mha0": 5})
    slim = apply_structure(model, {"mha0": 1}, copy_weights=False)
    assert slim.get_layer("mha0").num_heads == 1


def test_logistic_sigmoid_gates_heads_and_mlp_units():
    """insert_gates gates every attention's heads (a GatedMultiHeadAttention with the
    original's weights: all gates open, the same outputs) and the MLP units; closed
    gates are dead heads and units, and the slim model computes the gated one."""
    original = vit(value_dim=6)
    model = insert_gates(original, seed=0)
    x = np.random.default_rng(1).normal(size=(2, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(original(x)), atol=1e-5)
    mha = model.get_layer("mha0")
    assert isinstance(mha, GatedMultiHeadAttention) and mha.num_heads == 4
    clone = GatedMultiHeadAttention.from_config(mha.get_config())
    assert (clone.num_heads, clone.value_dim, clone.head_gate.init_logit) == (4, 6, 2.5)
    reg = FlopsRegularizer(model, algorithm="logistic_sigmoid")
    assert set(reg.regularized_layers) == {"mha0", "mha1", "fc0a", "fc1a"}
    logits = weight(mha.head_gate.logits)
    logits[[0, 2]] = -3.0
    mha.head_gate.logits.assign(logits)
    gate = model.get_layer("fc1a_gate")
    logits = weight(gate.logits)
    logits[:30] = -3.0
    gate.logits.assign(logits)
    structure = reg.get_alive_counts()
    assert (structure["mha0"], structure["mha1"], structure["fc1a"]) == (2, 4, 10)
    np.testing.assert_array_equal(structure.kept["mha0"], [1, 3])
    slim = apply_structure(model, structure)
    assert slim.get_layer("mha0").num_heads == 2
    diff = np.abs(np.asarray(model(x)) - np.asarray(slim(x))).max()
    assert diff < 1e-4


def test_frozen_attention_keeps_its_heads_and_use_gate_is_refused_by_name():
    cg = build_channel_graph(vit(depth=1), frozen_layers=["mha0"])
    heads = cg.groups[cg.op("mha0").head_group]
    assert heads.frozen and "frozen_layers" in heads.frozen_reasons
    x = keras.Input((6, 8))
    y = L.MultiHeadAttention(2, 4, use_gate=True, name="gated")(x, x)
    model = keras.Model(x, L.Dense(2, name="out")(y))
    with pytest.raises(InvalidArgumentError, match="'gated'.*use_gate"):
        build_channel_graph(model)
    assert build_channel_graph(model, frozen_layers=["gated"]).op("gated").kind == "frozen"


@pytest.mark.backend_independent
def test_align_rounds_channels_not_heads():
    model = vit(depth=1)
    slim = apply_structure(model, {"mha0": 3, "fc0a": 20}, copy_weights=False, align=8)
    assert slim.get_layer("mha0").num_heads == 3 and slim.get_layer("fc0a").units == 24


def test_training_the_gated_copy_trains_the_original_attention():
    from regularizers.gates import copy_back_attention

    original = vit(depth=1)
    gated = insert_gates(original)
    kernel = gated.get_layer("mha0").query_dense.kernel
    kernel.assign(np.ones(tuple(kernel.shape), "float32"))
    assert copy_back_attention(gated, original) == 1
    np.testing.assert_array_equal(weight(original.get_layer("mha0").query_dense.kernel), 1.0)


@pytest.mark.only_backend("tensorflow")
def test_latency_regularizer_costs_whole_heads_as_they_are():
    """Gamma keeps heads whole: the attention's kernels are a constant cost, no head
    curve is built, and the cost at full width is still `predict`'s."""
    from latency_lab.predict import predict_model

    model = hybrid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = LatencyRegularizer(PROFILE, model=model, algorithm="gamma")
    assert reg.regularized_layers == ["fc"]
    assert not [op for op in reg._ops if op.kind == "attention"]
    assert reg.get_cost() == pytest.approx(predict_model(model, PROFILE).latency_ms, rel=1e-9)


def test_a_text_encoder_groups_without_frozen_layers_and_slims_exactly():
    """An Embedding is a source of its table's columns: behind a LayerNorm they are the
    frozen residual stream, before a plain Dense they are prunable like a Dense's."""
    ids = keras.Input((10,), dtype="int32")
    e = L.Embedding(50, 16, name="embed")(ids)
    h = L.LayerNormalization(name="ln")(e)
    h = L.Add(name="res")([e, L.MultiHeadAttention(2, 8, name="mha")(h, h)])
    h = L.Dense(24, activation="gelu", name="fc")(h)
    text = keras.Model(ids, L.Dense(3, name="out")(L.GlobalAveragePooling1D()(h)))
    cg = build_channel_graph(text)
    assert cg.group_of("embed").frozen and not cg.group_of("fc").frozen
    kill_heads(text, "mha", [1])
    kill_units(text, "fc", range(8))
    reg = FlopsRegularizer(text, algorithm="group_lasso")
    structure = reg.get_alive_counts()
    assert (structure["embed"], structure["mha"], structure["fc"]) == (16, 1, 16)
    slim = apply_structure(text, structure)
    x = np.random.default_rng(2).integers(0, 50, size=(3, 10)).astype("int32")
    assert np.abs(np.asarray(text(x)) - np.asarray(slim(x))).max() < 1e-4

    ids = keras.Input((10,), dtype="int32")
    e = L.Embedding(50, 16, name="embed")(ids)
    bag = keras.Model(ids, L.Dense(3, name="out")(L.GlobalAveragePooling1D()(e)))
    table = weight(bag.get_layer("embed").embeddings)
    table[:, :6] = 0
    bag.get_layer("embed").embeddings.assign(table)
    structure = FlopsRegularizer(bag, algorithm="group_lasso").get_alive_counts()
    assert structure["embed"] == 10
    slim = apply_structure(bag, structure)
    assert slim.get_layer("embed").output_dim == 10
    assert np.abs(np.asarray(bag(x)) - np.asarray(slim(x))).max() < 1e-5
