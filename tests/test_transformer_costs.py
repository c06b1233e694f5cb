"""Transformer layers in `analyze`: MultiHeadAttention and Embedding costs by hand, the
graph builder's reading of attention calls, the other layers a transformer uses on 3-D
tensors, and three small transformers against TensorFlow's profiler.

The profiler counts MatMul, BatchMatMul and Conv2D (the four projections of a Keras
MultiHeadAttention run as BatchMatMulV2) but registers no FLOPs for Einsum, which the
two attention products (Q.K^T, A.V) run as. Those are counted from the frozen graph
itself: each Einsum node's equation and static operand shapes give its multiply-adds
(the product of the sizes of all its labels), two FLOPs each. That count reads only
TensorFlow's graph, never our IR, so a wrong attention formula here fails the check.
"""

import json
import math
import os
import re

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)
L = keras.layers

from latency_lab import costs  # noqa: E402
from latency_lab.analyze import analyze_model  # noqa: E402
from latency_lab.cli import main  # noqa: E402
from latency_lab.costs import attention_parts, cost_of  # noqa: E402
from latency_lab.errors import InvalidArgumentError, UnsupportedModelError  # noqa: E402
from latency_lab.graph import Op  # noqa: E402
from latency_lab.keras_graph import from_keras  # noqa: E402
from cost_helpers import assert_cost, tf_float_ops_by_type  # noqa: E402

F32 = 4  # bytes per float32 element
BOOL = 1

# The MultiHeadAttention of the hand-computed tests: key_dim != value_dim, query and
# value of different widths and lengths.
TQ, TK, HEADS, DK, DV, DQ, DVAL = 7, 5, 3, 4, 6, 10, 9





def rows_by_name(model, **kwargs):
    return {row.name: row for row in analyze_model(model, **kwargs).layers}


def attention_model(*, mask=False, **layer_kwargs):
    q = keras.Input((TQ, DQ), name="q")
    v = keras.Input((TK, DVAL), name="v")
    inputs = [q, v]
    mha = L.MultiHeadAttention(HEADS, DK, value_dim=DV, name="mha", **layer_kwargs)
    if mask:
        m = keras.Input((TQ, TK), dtype="bool", name="m")
        inputs.append(m)
        y = mha(q, v, attention_mask=m)
    else:
        y = mha(q, v)
    return keras.Model(inputs, y, name="attention")


# -------------------------------------------------- MultiHeadAttention by hand

# Projections: 2 FLOPs per multiply-add, bias adds not counted (as Dense).
Q_PROJ = 2 * TQ * DQ * HEADS * DK       # 1680
K_PROJ = 2 * TK * DVAL * HEADS * DK     # 1080 (key omitted: the key is the value)
V_PROJ = 2 * TK * DVAL * HEADS * DV     # 1620
O_PROJ = 2 * TQ * HEADS * DV * DQ       # 2520 (output width = query width)
S = HEADS * TQ * TK                     # 105 attention-matrix elements
SCORES = 2 * S * DK                     # Q.K^T: 840
CONTEXT = 2 * S * DV                    # A.V: 1260
MATMUL_FLOPS = Q_PROJ + K_PROJ + V_PROJ + O_PROJ + SCORES + CONTEXT  # 9000
# Elementwise: the scale by 1/sqrt(key_dim) (Keras' fused dot_product_attention scales
# the scores), softmax at 5 FLOPs per element (TF's profiler counts the same).
ELEMENTWISE_FLOPS = S + 5 * S
PARAMS = ((DQ * HEADS * DK + HEADS * DK) + (DVAL * HEADS * DK + HEADS * DK)
          + (DVAL * HEADS * DV + HEADS * DV) + (HEADS * DV * DQ + DQ))  # 622


def test_attention_flops_and_params_by_hand():
    model = attention_model()
    row = rows_by_name(model)["mha"]
    assert MATMUL_FLOPS == 9000 and PARAMS == 622
    assert row.cost.flops == MATMUL_FLOPS + ELEMENTWISE_FLOPS
    assert row.cost.params == PARAMS == model.get_layer("mha").count_params()
    assert row.input_shapes == [(1, TQ, DQ), (1, TK, DVAL)]
    assert row.output_shape == (1, TQ, DQ)


def test_attention_parts_by_hand():
    graph = from_keras(attention_model())
    parts = attention_parts(graph.op("mha"))
    assert {k: v.flops for k, v in parts.items()} == {
        "query": Q_PROJ, "key": K_PROJ, "value": V_PROJ, "scale": S, "scores": SCORES,
        "softmax": 5 * S, "context": CONTEXT, "output": O_PROJ}
    assert sum(parts[k].flops for k in costs.ATTENTION_MATMUL_PARTS if k in parts) \
        == MATMUL_FLOPS
    assert sum(p.params for p in parts.values()) == PARAMS


def test_attention_bytes_by_hand():
    """Every kernel of the unfused sequence reads its inputs (and weights) and writes
    its output; the attention matrix is written by Q.K^T, read and written by the
    scale and the softmax, read by A.V."""
    row = rows_by_name(attention_model())["mha"]
    q_el, k_el, v_el, ctx_el = TQ * HEADS * DK, TK * HEADS * DK, TK * HEADS * DV, TQ * HEADS * DV
    p_q, p_k = DQ * HEADS * DK + HEADS * DK, DVAL * HEADS * DK + HEADS * DK
    p_v, p_o = DVAL * HEADS * DV + HEADS * DV, HEADS * DV * DQ + DQ
    read = ((TQ * DQ + p_q) + (TK * DVAL + p_k) + (TK * DVAL + p_v)  # projections
            + S                                                       # scale
            + (q_el + k_el)                                           # Q.K^T
            + S                                                       # softmax
            + (S + v_el)                                              # A.V
            + (ctx_el + p_o)) * F32                                   # output
    written = (q_el + k_el + v_el + S + S + S + ctx_el + TQ * DQ) * F32
    assert_cost(row.cost, MATMUL_FLOPS + ELEMENTWISE_FLOPS, PARAMS, read, written)


def test_attention_with_mask_by_hand():
    """A boolean attention_mask adds one select per attention-matrix element and its
    own read (one byte per element)."""
    model = attention_model(mask=True)
    rows = rows_by_name(model)
    plain = rows_by_name(attention_model())["mha"].cost
    row = rows["mha"]
    assert row.cost.flops == MATMUL_FLOPS + ELEMENTWISE_FLOPS + S
    assert row.cost.params == PARAMS == model.get_layer("mha").count_params()
    assert row.cost.bytes_read == plain.bytes_read + S * F32 + TQ * TK * BOOL
    assert row.cost.bytes_written == plain.bytes_written + S * F32
    assert row.input_shapes == [(1, TQ, DQ), (1, TK, DVAL), (1, TQ, TK)]


def test_attention_without_bias_and_with_output_shape():
    model = attention_model(use_bias=False, output_shape=(2, 4))
    row = rows_by_name(model)["mha"]
    params = DQ * HEADS * DK + DVAL * HEADS * DK + DVAL * HEADS * DV + HEADS * DV * 8
    assert row.cost.params == params == model.count_params()
    assert row.output_shape == (1, TQ, 2, 4)
    out_proj = 2 * TQ * HEADS * DV * 8
    assert row.cost.flops == MATMUL_FLOPS - O_PROJ + out_proj + ELEMENTWISE_FLOPS


def test_attention_explicit_path_scales_the_query():
    """With dropout (or returned scores) Keras computes attention itself and scales the
    projected query, not the scores; dropout is free at inference."""
    row = rows_by_name(attention_model(dropout=0.1))["mha"]
    assert row.cost.flops == MATMUL_FLOPS + TQ * HEADS * DK + 5 * S


def test_attention_returning_scores_has_two_outputs():
    q = keras.Input((TQ, DQ))
    out, scores = L.MultiHeadAttention(HEADS, DK, value_dim=DV, name="mha")(
        q, q, return_attention_scores=True)
    graph = from_keras(keras.Model(q, [out, scores]))
    op = graph.op("mha")
    assert op.output_shapes == [(1, TQ, DQ), (1, HEADS, TQ, TQ)]
    assert op.attrs["return_attention_scores"] is True
    s = HEADS * TQ * TQ
    matmul = (2 * TQ * DQ * HEADS * DK * 2 + 2 * TQ * DQ * HEADS * DV
              + 2 * s * (DK + DV) + 2 * TQ * HEADS * DV * DQ)
    assert cost_of(op).flops == matmul + TQ * HEADS * DK + 5 * s


def test_key_given_separately():
    q = keras.Input((TQ, DQ), name="q")
    v = keras.Input((TK, DVAL), name="v")
    k = keras.Input((TK, 11), name="k")
    mha = L.MultiHeadAttention(HEADS, DK, value_dim=DV, name="mha")
    model = keras.Model([q, v, k], mha(q, v, key=k))
    row = rows_by_name(model)["mha"]
    assert row.input_shapes == [(1, TQ, DQ), (1, TK, DVAL), (1, TK, 11)]
    assert row.cost.flops == MATMUL_FLOPS - K_PROJ + 2 * TK * 11 * HEADS * DK + ELEMENTWISE_FLOPS
    assert row.cost.params == model.count_params()


@pytest.mark.parametrize("call", [
    lambda mha, q, v, m: mha(q, v, attention_mask=m),
    lambda mha, q, v, m: mha(query=q, value=v, attention_mask=m),
    lambda mha, q, v, m: mha(attention_mask=m, value=v, query=q, key=v),
    lambda mha, q, v, m: mha(q, v, v, attention_mask=m),
])
def test_call_written_any_way_gives_the_same_inputs_and_cost(call):
    """Keras records keyword tensors sorted by keyword (key, query, value); the graph
    builder puts them in role order."""
    q = keras.Input((TQ, DQ), name="q")
    v = keras.Input((TK, DVAL), name="v")
    m = keras.Input((TQ, TK), dtype="bool", name="m")
    mha = L.MultiHeadAttention(HEADS, DK, value_dim=DV, name="mha")
    op = from_keras(keras.Model([q, v, m], call(mha, q, v, m))).op("mha")
    roles = op.attrs["input_roles"]
    assert dict(zip(roles, op.inputs)) == {"query": "q", "value": "v", "attention_mask": "m",
                                          **({"key": "v"} if "key" in roles else {})}
    assert roles[:2] == ("query", "value") and roles[-1] == "attention_mask"
    assert cost_of(op).flops == MATMUL_FLOPS + ELEMENTWISE_FLOPS + S


def test_self_attention_reads_its_input_for_each_projection():
    x = keras.Input((TQ, DQ), name="x")
    mha = L.MultiHeadAttention(HEADS, DK, value_dim=DV, name="mha")
    model = keras.Model(x, mha(x, x))
    op = from_keras(model).op("mha")
    assert op.inputs == ["x", "x"] and op.attrs["input_roles"] == ("query", "value")
    parts = attention_parts(op)
    assert parts["key"].bytes_read == (TQ * DQ + DQ * HEADS * DK + HEADS * DK) * F32
    assert cost_of(op).params == model.count_params()


def test_attention_over_two_axes_of_a_4d_tensor():
    """attention_axes default on (B, H, W, C): every position attends to every other
    (Tq = Tk = H * W)."""
    x = keras.Input((4, 5, 8), name="x")
    mha = L.MultiHeadAttention(2, 3, name="mha")
    model = keras.Model(x, mha(x, x))
    op = from_keras(model).op("mha")
    assert op.attrs["attention_axes"] == (1, 2)
    t = 4 * 5
    s = 2 * t * t
    matmul = 3 * 2 * t * 8 * 2 * 3 + 2 * s * 3 * 2 + 2 * t * 2 * 3 * 8
    # rank 4: Keras computes attention itself (not the fused kernel) and scales the query
    assert cost_of(op).flops == matmul + t * 2 * 3 + 5 * s
    assert cost_of(op).params == model.count_params()


def test_keras_mask_from_embedding_counts_mask_work():
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    e = L.Embedding(50, 8, mask_zero=True, name="emb")(tokens)
    model = keras.Model(tokens, L.MultiHeadAttention(2, 4, name="mha")(e, e))
    op = from_keras(model).op("mha")
    assert op.attrs["keras_masks"] == ("query", "value")
    parts = attention_parts(op)
    s, grid = 2 * 6 * 6, 6 * 6
    # one select per score, one AND merging the query and value masks per (Tq, Tk)
    assert parts["mask"].flops == s + grid
    assert parts["mask"].bytes_read == s * F32 + 2 * 6 * BOOL


def test_explicit_query_and_value_masks_are_inputs():
    """Both are inputs of the op; Keras 3 applies the value_mask and ignores the
    query_mask (it takes the query's mask from its Keras mask), so only the value mask
    is charged."""
    q = keras.Input((TQ, DQ), name="q")
    v = keras.Input((TK, DVAL), name="v")
    qm = keras.Input((TQ,), dtype="bool", name="qm")
    vm = keras.Input((TK,), dtype="bool", name="vm")
    mha = L.MultiHeadAttention(HEADS, DK, value_dim=DV, name="mha")
    model = keras.Model([q, v, qm, vm], mha(q, v, query_mask=qm, value_mask=vm))
    op = from_keras(model).op("mha")
    assert op.attrs["input_roles"] == ("query", "value", "query_mask", "value_mask")
    assert op.inputs == ["q", "v", "qm", "vm"]
    mask = attention_parts(op)["mask"]
    assert mask.flops == S  # one select per score
    assert mask.bytes_read == S * F32 + TK * BOOL
    rng = np.random.default_rng(0)
    x = [rng.random((1, TQ, DQ), dtype="float32"), rng.random((1, TK, DVAL), dtype="float32")]
    ones_q, ones_v = np.ones((1, TQ), bool), np.ones((1, TK), bool)
    part_q, part_v = ones_q.copy(), ones_v.copy()
    part_q[0, 3:] = False
    part_v[0, 2:] = False
    base = np.asarray(model([*x, ones_q, ones_v]))
    assert np.array_equal(np.asarray(model([*x, part_q, ones_v])), base), \
        "Keras now applies an explicit query_mask: charge it in costs.attention_parts"
    assert not np.allclose(np.asarray(model([*x, ones_q, part_v])), base)


def test_causal_mask_is_built_and_applied():
    x = keras.Input((TQ, DQ))
    y = L.MultiHeadAttention(HEADS, DK, name="mha")(x, x, use_causal_mask=True)
    op = from_keras(keras.Model(x, y)).op("mha")
    assert op.attrs["use_causal_mask"] is True
    s = HEADS * TQ * TQ
    assert attention_parts(op)["mask"].flops == s + TQ * TQ


def test_attention_alive_counts():
    """Alive query/value channels shrink the projections that read them; alive output
    channels the output projection."""
    op = from_keras(attention_model()).op("mha")
    full = cost_of(op)
    half = cost_of(op, [5, 9], 4)
    assert half.flops == full.flops - 2 * TQ * 5 * HEADS * DK - 2 * TQ * HEADS * DV * 6
    assert half.params == PARAMS - 5 * HEADS * DK - (HEADS * DV + 1) * 6


def test_attention_op_without_heads_names_the_layer():
    op = Op("attn", "MultiHeadAttention", ["a", "b"], [(1, 4, 8), (1, 4, 8)], [(1, 4, 8)],
            {"key_dim": 4})
    with pytest.raises(InvalidArgumentError, match=r"'attn'.*'num_heads'"):
        cost_of(op)


def test_attention_op_without_value_names_the_layer():
    op = Op("attn", "MultiHeadAttention", ["a"], [(1, 4, 8)], [(1, 4, 8)],
            {"num_heads": 2, "key_dim": 4})
    with pytest.raises(InvalidArgumentError, match=r"'attn'.*query and a value"):
        cost_of(op)


def test_constant_attention_mask_is_refused_by_name():
    q = keras.Input((TQ, DQ))
    mask = np.tril(np.ones((TQ, TQ), dtype=bool))[None]
    y = L.MultiHeadAttention(HEADS, DK, name="mha")(q, q, attention_mask=mask)
    with pytest.raises(UnsupportedModelError, match=r"'mha'.*'attention_mask'.*use_causal_mask"):
        from_keras(keras.Model(q, y))


# ------------------------------------------------------------------ Embedding


def test_embedding_by_hand():
    tokens = keras.Input((12,), dtype="int32", name="tokens")
    emb = L.Embedding(100, 16, name="emb")
    model = keras.Model(tokens, emb(tokens))
    row = rows_by_name(model, batch_size=2)["emb"]
    indices = 2 * 12
    assert row.type == "Embedding"
    assert_cost(row.cost, 0, 100 * 16, indices * 4 + indices * 16 * F32, indices * 16 * F32)
    assert row.cost.params == model.count_params()
    assert costs.op_class("Embedding") == costs.DATA


def test_embedding_int64_indices_and_mask_zero():
    tokens = keras.Input((12,), dtype="int64")
    model = keras.Model(tokens, L.Embedding(100, 16, mask_zero=True, name="emb")(tokens))
    row = rows_by_name(model)["emb"]
    assert_cost(row.cost, 12, 100 * 16, 12 * 8 + 12 * 16 * F32, 12 * 16 * F32 + 12 * BOOL)


def test_embedding_alive_output_channels():
    op = Op("emb", "Embedding", ["t"], [(1, 12)], [(1, 12, 16)], {"input_dim": 100})
    assert_cost(cost_of(op, None, 10), 0, 100 * 10, 12 * 4 + 12 * 10 * F32, 12 * 10 * F32)


def test_embedding_without_input_dim_names_the_layer():
    op = Op("emb", "Embedding", ["t"], [(1, 12)], [(1, 12, 16)], {})
    with pytest.raises(InvalidArgumentError, match=r"'emb'.*'input_dim'"):
        cost_of(op)


# ------------------------------------------ other layers of a transformer, on 3-D tensors


def test_layers_on_token_tensors_by_hand():
    """(B, T, C) tensors: every non-channel dim is a row."""
    B, T, C = 2, 9, 12
    x = keras.Input((T, C), name="x")
    d = L.Dense(20, name="dense")(x)
    g = L.Dense(20, activation="gelu", name="dense_gelu")(x)
    c = L.Conv1D(6, 3, padding="same", name="conv1d")(d)
    sm = L.Softmax(name="softmax")(c)
    ln = L.LayerNormalization(name="ln")(g)
    act = L.Activation(keras.activations.gelu, name="act_gelu")(ln)
    sw = L.Activation("swish", name="act_swish")(act)
    ag = keras.ops.gelu(sw, approximate=True)
    eg = keras.ops.gelu(ag, approximate=False)
    r = L.Reshape((T, 4, 5), name="reshape")(eg)
    p = L.Permute((2, 1, 3), name="permute")(r)
    f = L.Reshape((4 * T, 5), name="tokens")(p)
    pool = L.GlobalAveragePooling1D(name="gap")(f)
    pool2 = L.GlobalAveragePooling1D(name="gap_sm")(sm)
    model = keras.Model(x, [pool, pool2])
    rows = rows_by_name(model, batch_size=B)
    n = B * T
    assert_cost(rows["dense"].cost, 2 * n * C * 20, C * 20 + 20,
                (n * C + C * 20 + 20) * F32, n * 20 * F32)
    # a fused activation is not added (as TF's profiler counts MatMul)
    assert rows["dense_gelu"].cost == rows["dense"].cost
    assert rows["conv1d"].cost.flops == 2 * n * 3 * 20 * 6
    assert rows["conv1d"].cost.params == 3 * 20 * 6 + 6
    assert rows["softmax"].cost.flops == 5 * n * 6
    assert_cost(rows["ln"].cost, 8 * n * 20, 2 * 20, (n * 20 + 2 * 20) * F32, n * 20 * F32)
    assert rows["act_gelu"].cost.flops == 8 * n * 20           # exact: erf counted like tanh
    assert rows["act_swish"].cost.flops == 5 * n * 20          # sigmoid + multiply
    gelus = sorted(row.cost.flops for row in rows.values() if row.type == "ops.Gelu")
    assert gelus == [8 * n * 20, 12 * n * 20]             # exact, tanh approximation
    assert rows["reshape"].cost == costs.ZERO and rows["tokens"].cost == costs.ZERO
    assert_cost(rows["permute"].cost, 0, 0, n * 20 * F32, n * 20 * F32)
    assert_cost(rows["gap"].cost, n * 20 + B * 5, 0, n * 20 * F32, B * 5 * F32)
    assert sum(row.cost.params for row in rows.values()) == model.count_params()


def test_layer_norm_rms_scaling_has_gamma_only():
    x = keras.Input((5, 8))
    with pytest.warns(UserWarning, match="rms_scaling"):
        layer = L.LayerNormalization(rms_scaling=True, name="ln")
    model = keras.Model(x, layer(x))
    assert rows_by_name(model)["ln"].cost.params == 8 == model.count_params()


# --------------------------------------------------- three transformers vs TF's profiler


def encoder_block(x, dim, heads, mlp, name):
    h = L.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
    h = L.MultiHeadAttention(heads, dim // heads, name=f"{name}_mha")(h, h)
    x = L.Add(name=f"{name}_add1")([x, h])
    h = L.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
    h = L.Dense(mlp, activation="gelu", name=f"{name}_fc1")(h)
    h = L.Dense(dim, name=f"{name}_fc2")(h)
    return L.Add(name=f"{name}_add2")([x, h])


def vit(image=32, patch=8, dim=32, heads=4, mlp=64, depth=2, classes=10):
    """Patch embedding (a strided conv), tokens, a learned positional embedding (an
    Embedding over a positions input), pre-norm blocks, pooled head."""
    tokens = (image // patch) ** 2
    img = keras.Input((image, image, 3), name="image")
    pos = keras.Input((tokens,), dtype="int32", name="positions")
    x = L.Conv2D(dim, patch, strides=patch, name="patch_embed")(img)
    x = L.Reshape((tokens, dim), name="to_tokens")(x)
    x = L.Add(name="add_pos")([x, L.Embedding(tokens, dim, name="pos_embed")(pos)])
    for i in range(depth):
        x = encoder_block(x, dim, heads, mlp, f"block{i}")
    x = L.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model([img, pos], L.Dense(classes, name="head")(x), name="vit")


def text_encoder(vocab=100, seq=12, dim=32, heads=4, mlp=64, depth=2):
    tok = keras.Input((seq,), dtype="int32", name="tokens")
    x = L.Embedding(vocab, dim, name="tok_embed")(tok)
    for i in range(depth):
        x = encoder_block(x, dim, heads, mlp, f"block{i}")
    x = L.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(tok, L.Dense(2, name="head")(x), name="text_encoder")


def hybrid(image=32, dim=32):
    img = keras.Input((image, image, 3), name="image")
    x = img
    for i, filters in enumerate((16, dim)):
        x = L.Conv2D(filters, 3, strides=2, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    side = image // 4
    x = L.Reshape((side * side, dim), name="to_tokens")(x)
    x = encoder_block(x, dim, 4, 2 * dim, "block")
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(img, L.Dense(10, name="head")(x), name="hybrid")


MODELS = {"vit": vit, "text_encoder": text_encoder, "hybrid": hybrid}
OUR_MATMUL_TYPES = ("Dense", "Conv1D", "Conv2D")
TF_MATMUL_TYPES = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D")


def frozen_graph(model):
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = [tf.TensorSpec((1, *x.shape[1:]), x.dtype) for x in model.inputs]
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    return convert_variables_to_constants_v2(fn.get_concrete_function(*specs)).graph


def einsum_flops(graph):
    """2 * (product of the sizes of all labels) per two-operand Einsum node: the
    multiply-adds of a contraction, read from the frozen graph's equation and static
    shapes (the profiler registers none for Einsum)."""
    total = 0
    for op in graph.get_operations():
        if op.type != "Einsum":
            continue
        equation = op.get_attr("equation").decode()
        operands = equation.split("->")[0].split(",")
        assert len(operands) == 2 and "." not in equation, equation
        size = {}
        for labels, tensor in zip(operands, op.inputs):
            shape = tensor.shape.as_list()
            assert len(labels) == len(shape) and None not in shape, (equation, shape)
            for label, dim in zip(labels, shape):
                assert size.setdefault(label, dim) == dim, (equation, label)
        total += 2 * math.prod(size.values())
    return total


def analyze_matmul_flops(model):
    """Dense and conv layers, and each attention's projections and products."""
    analysis = analyze_model(model)
    total = sum(row.cost.flops for row in analysis.layers if row.type in OUR_MATMUL_TYPES)
    graph = from_keras(model)
    for op in graph:
        if op.type == "MultiHeadAttention":
            parts = attention_parts(op)
            total += sum(parts[k].flops for k in costs.ATTENTION_MATMUL_PARTS if k in parts)
    return analysis, total


@pytest.mark.parametrize("name", sorted(MODELS))
def test_transformer_matmul_flops_match_tensorflow(name):
    model = MODELS[name]()
    analysis, ours = analyze_matmul_flops(model)
    assert analysis.total.params == model.count_params()
    assert "MultiHeadAttention" in {row.type for row in analysis.layers}
    graph = frozen_graph(model)
    by_type = tf_float_ops_by_type(graph)
    einsums = einsum_flops(graph)
    assert einsums > 0  # the attention products run as Einsum nodes
    ref = sum(by_type[t] for t in TF_MATMUL_TYPES) + einsums
    assert abs(ours - ref) / ref <= 0.005, (name, ours, ref, einsums, dict(by_type))
    # The profiler's own Softmax count (5 per element) is what we charge.
    softmax = sum(attention_parts(op)["softmax"].flops for op in from_keras(model)
                  if op.type == "MultiHeadAttention")
    assert softmax == by_type["Softmax"]


def test_attention_at_another_sequence_length():
    """--input-shape recomputes the shapes; the attention keeps its roles."""
    model = text_encoder(seq=12)
    op = from_keras(model, input_shape=(20,)).op("block0_mha")
    assert op.input_shapes == [(1, 20, 32), (1, 20, 32)]
    assert op.attrs["input_roles"] == ("query", "value")
    s = 4 * 20 * 20
    assert cost_of(op).flops == 4 * 2 * 20 * 32 * 32 + 2 * s * 8 * 2 + s + 5 * s
    assert cost_of(op).params == model.get_layer("block0_mha").count_params()


def test_the_comparison_fails_on_a_wrong_attention_formula():
    """The check can fail: counting Q.K^T at one FLOP per multiply-add instead of two
    puts the ViT more than 0.5% off."""
    model = vit()
    graph = frozen_graph(model)
    by_type = tf_float_ops_by_type(graph)
    ref = sum(by_type[t] for t in TF_MATMUL_TYPES) + einsum_flops(graph)
    _, ours = analyze_matmul_flops(model)
    scores = sum(attention_parts(op)["scores"].flops for op in from_keras(model)
                 if op.type == "MultiHeadAttention")
    assert abs(ours - ref) / ref <= 0.005
    assert abs(ours - scores / 2 - ref) / ref > 0.005


# ------------------------------------------------------------------------ the CLI


def test_cli_analyze_prints_the_attention_row(capsys, tmp_path):
    path = tmp_path / "vit.keras"
    model = vit()
    model.save(path)
    rc = main(["analyze", str(path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = [line for line in out.splitlines() if re.search(r"\bblock0_mha\b", line)]
    # rich shortens long type names to the console's width (80 columns here)
    assert len(lines) == 1 and "MultiHead" in lines[0], out
    assert "169.98k" in lines[0]  # its FLOPs, which the JSON below checks exactly
    assert "pos_embed" in out and "Embedding" in out and "total" in out
    rc = main(["analyze", str(path), "--json"])
    data = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["block0_mha"]["type"] == "MultiHeadAttention"
    assert rows["block0_mha"]["params"] == model.get_layer("block0_mha").count_params()
    t, d, h = 16, 32, 4  # tokens, width, heads (head size 8)
    s = h * t * t
    assert rows["block0_mha"]["flops"] == 4 * 2 * t * d * d + 2 * 2 * s * 8 + s + 5 * s
    assert data["total"]["params"] == model.count_params()
