"""A transformer's residual stream, prunable on request (`prune_residual_stream=True`):
off by default (its norms freeze it), on request one group tied across the embedding,
every Add, norm, attention output and MLP output, and `apply_structure` slims it.

Runs under TensorFlow and (make test) again under JAX, except the LiteRT-bound latency
check."""

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from latency_lab.analyze import analyze_model  # noqa: E402
from latency_lab.errors import InvalidArgumentError  # noqa: E402
from regularizers import (  # noqa: E402
    FlopsRegularizer,
    LatencyRegularizer,
    apply_structure,
    build_channel_graph,
    export_structure,
    load_structure,
    scale_structure,
)

L = keras.layers
PROFILE = "epyc_avx512_vm_2c_litert"  # profiled with batch matmul, softmax, layer norm
TOKENS, WIDTH, HEADS, KEY_DIM, MLP, CLASSES = 8, 16, 2, 8, 32, 3
DROPPED = [1, 5, 9, 14]  # stream channels the tests kill
KEPT = [c for c in range(WIDTH) if c not in DROPPED]


def encoder():
    """One pre-norm encoder block: embed, LN, attention, Add, LN, MLP, Add, LN, pool,
    head."""
    x = keras.Input((TOKENS, WIDTH))
    s = L.Dense(WIDTH, name="embed")(x)
    h = L.LayerNormalization(name="ln1")(s)
    h = L.MultiHeadAttention(HEADS, KEY_DIM, name="mha")(h, h)
    s = L.Add(name="res1")([s, h])
    h = L.LayerNormalization(name="ln2")(s)
    h = L.Dense(MLP, activation="gelu", name="fc1")(h)
    h = L.Dense(WIDTH, name="fc2")(h)
    s = L.Add(name="res2")([s, h])
    s = L.LayerNormalization(name="ln_out")(s)
    s = L.GlobalAveragePooling1D(name="pool")(s)
    return keras.Model(x, L.Dense(CLASSES, name="head")(s), name="encoder")


def weight(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def kill_stream(model, channels):
    """Zero the kernel columns of `channels` in every source of the stream (the embed
    and fc2 Dense, the attention's output projection), and give the norms distinct
    gammas and betas so that slicing them shows."""
    rng = np.random.default_rng(0)
    for name in ("embed", "fc2"):
        kernel = weight(model.get_layer(name).kernel)
        kernel[:, channels] = 0
        model.get_layer(name).kernel.assign(kernel)
    out = model.get_layer("mha").output_dense
    kernel = weight(out.kernel)
    kernel[..., channels] = 0
    out.kernel.assign(kernel)
    out.bias.assign(rng.normal(size=WIDTH).astype("float32"))
    for name in ("ln1", "ln2", "ln_out"):
        ln = model.get_layer(name)
        ln.gamma.assign(rng.uniform(0.5, 1.5, WIDTH).astype("float32"))
        ln.beta.assign(rng.normal(size=WIDTH).astype("float32"))


def describe(cg, gid):
    g = cg.groups[gid]
    return g.unit, g.size, g.frozen, g.sources


def test_stream_is_frozen_by_default_and_one_prunable_group_on_request():
    model = encoder()
    default = build_channel_graph(model)
    stream = default.group_of("embed")
    assert stream.frozen and stream is default.group_of("fc2") is default.group_of("mha")
    assert any("LayerNormalization 'ln1'" in r for r in stream.frozen_reasons)

    cg = build_channel_graph(model, prune_residual_stream=True)
    stream = cg.group_of("embed")
    assert (stream.unit, stream.size, stream.frozen) == ("channel", WIDTH, False)
    assert sorted(stream.sources) == ["embed", "fc2", "mha"]
    assert stream is cg.group_of("mha") is cg.group_of("fc2")
    for name in ("res1", "res2", "ln1", "ln2", "ln_out", "pool"):
        assert cg.op(name).out_group == stream.id, name
    assert cg.op("head").in_segments[0][0][0] == stream.id
    assert cg.group_of("head").frozen  # the logits stay whole
    # heads and MLP units: as before
    for c in (default, cg):
        assert describe(c, c.op("mha").head_group) == ("head", HEADS, False, ["mha"])
        assert describe(c, c.op("fc1").out_group) == ("channel", MLP, False, ["fc1"])
    assert cg.prune_residual_stream and not default.prune_residual_stream


def test_an_attention_output_no_structure_can_name_stays_frozen():
    x = keras.Input((TOKENS, WIDTH))
    h = L.MultiHeadAttention(HEADS, KEY_DIM, name="mha")(x, x)
    h = L.LayerNormalization(name="ln")(h)
    model = keras.Model(x, L.Dense(CLASSES, name="out")(L.GlobalAveragePooling1D()(h)))
    out = build_channel_graph(model, prune_residual_stream=True).group_of("mha")
    assert out.frozen and any("'mha' tied to no conv/dense" in r for r in out.frozen_reasons)


@pytest.mark.backend_independent
def test_the_option_is_checked_and_round_trips_through_the_config(tmp_path):
    model = encoder()
    with pytest.raises(InvalidArgumentError, match="`prune_residual_stream`.*True or False"):
        build_channel_graph(model, prune_residual_stream="yes")
    reg = FlopsRegularizer(model, algorithm="group_lasso", prune_residual_stream=True)
    config = reg.get_config()
    assert config["prune_residual_stream"] is True
    again = FlopsRegularizer.from_config(config, model=model)
    assert again.get_config() == config and not again.channel_graph.group_of("embed").frozen
    assert FlopsRegularizer(model, algorithm="group_lasso").get_config()[
        "prune_residual_stream"] is False
    path = export_structure(reg, tmp_path)
    assert load_structure(path).prune_residual_stream is True
    bad = tmp_path / "bad.json"
    bad.write_text(open(path).read().replace('"prune_residual_stream": true',
                                             '"prune_residual_stream": "yes"'))
    with pytest.raises(InvalidArgumentError, match="`prune_residual_stream` must be true"):
        load_structure(bad)


def test_apply_structure_slims_the_stream_and_keeps_the_kept_slices(tmp_path):
    model = encoder()
    kill_stream(model, DROPPED)
    reg = FlopsRegularizer(model, algorithm="group_lasso", prune_residual_stream=True)
    structure = reg.get_alive_counts()
    assert (structure["embed"], structure["fc2"], structure["fc1"], structure["mha"]) == \
        (12, 12, MLP, HEADS)
    np.testing.assert_array_equal(structure.kept["embed"], KEPT)
    assert structure.prune_residual_stream
    # the file keeps the flag, so the loaded structure slims the stream too
    slim = apply_structure(model, load_structure(export_structure(structure, tmp_path)))

    assert slim.get_layer("embed").units == 12 and slim.get_layer("fc2").units == 12
    assert weight(slim.get_layer("fc1").kernel).shape == (12, MLP)
    assert weight(slim.get_layer("head").kernel).shape == (12, CLASSES)
    np.testing.assert_array_equal(weight(slim.get_layer("head").kernel),
                                  weight(model.get_layer("head").kernel)[KEPT])
    for name in ("ln1", "ln2", "ln_out"):
        old, new = model.get_layer(name), slim.get_layer(name)
        np.testing.assert_array_equal(weight(new.gamma), weight(old.gamma)[KEPT])
        np.testing.assert_array_equal(weight(new.beta), weight(old.beta)[KEPT])
    old, new = model.get_layer("mha"), slim.get_layer("mha")
    assert new.num_heads == HEADS
    np.testing.assert_array_equal(weight(new.output_dense.kernel),
                                  weight(old.output_dense.kernel)[..., KEPT])
    np.testing.assert_array_equal(weight(new.output_dense.bias),
                                  weight(old.output_dense.bias)[KEPT])
    np.testing.assert_array_equal(weight(new.query_dense.kernel),
                                  weight(old.query_dense.kernel)[KEPT])
    x = np.random.default_rng(1).normal(size=(2, TOKENS, WIDTH)).astype("float32")
    y = np.asarray(slim(x))
    assert y.shape == (2, CLASSES) and np.all(np.isfinite(y))
    assert slim.get_layer("mha").output.shape[-1] == 12

    # a scaled structure keeps the flag
    half = scale_structure(structure, 0.5, model)
    assert (half["embed"], half["fc2"], half["mha"]) == (6, 6, 1) and half.prune_residual_stream
    assert apply_structure(model, half, copy_weights=False).get_layer("fc2").units == 6

    # off: the same counts cannot shrink the stream, which stays whole (and says so)
    with pytest.warns(UserWarning, match="full width 16.*frozen"):
        whole = apply_structure(model, structure, prune_residual_stream=False)
    assert whole.get_layer("embed").units == WIDTH


def test_flops_cost_at_the_slim_stream_is_the_slim_models_analyzed_flops():
    """T tokens, stream D = 12, h = 2 heads of dk = dv = 8, MLP 32: embed 2 T 16 D;
    q, k, v 3 * 2 T D h dk, Q.K^T and A.V 2 h T T dk each, the scale h T T, softmax
    5 h T T, output 2 T h dv D; fc1 and fc2 2 T D 32 each; head 2 D 3 (pooled)."""
    model = encoder()
    kill_stream(model, DROPPED)
    reg = FlopsRegularizer(model, algorithm="group_lasso", prune_residual_stream=True)
    slim = apply_structure(model, reg.get_alive_counts())
    t, d, h, dk = TOKENS, 12, HEADS, KEY_DIM
    by_hand = (2 * t * WIDTH * d + 3 * 2 * t * d * h * dk + 2 * 2 * h * t * t * dk
               + h * t * t + 5 * h * t * t + 2 * t * h * dk * d
               + 2 * 2 * t * d * MLP + 2 * d * CLASSES)
    rows = analyze_model(slim).layers
    counted = sum(r.cost.flops for r in rows if r.type in ("Dense", "MultiHeadAttention"))
    assert counted == by_hand
    assert reg.get_cost() == pytest.approx(counted, rel=1e-9)
    assert FlopsRegularizer(slim, algorithm="group_lasso",
                            prune_residual_stream=True).get_cost() == pytest.approx(counted,
                                                                                    rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = FlopsRegularizer(model, algorithm="group_lasso").get_cost()
    assert reg.get_cost() < frozen  # by default the stream counts in full


@pytest.mark.parametrize("prune", [False, True])
def test_heads_and_mlp_units_stay_exact_with_the_option_off_or_on(prune):
    """Off: apply_structure is as before (no output_shape pinned). On, with the stream
    kept whole: dead heads and MLP units still slim exactly."""
    model = encoder()
    mha = model.get_layer("mha")
    for dense, axis in ((mha.query_dense, 1), (mha.key_dense, 1), (mha.value_dense, 1),
                        (mha.output_dense, 0)):
        kernel = weight(dense.kernel)
        kernel[(slice(None),) * axis + (1,)] = 0
        dense.kernel.assign(kernel)
        if axis == 1:
            bias = weight(dense.bias)
            bias[1] = 0
            dense.bias.assign(bias)
    fc1 = model.get_layer("fc1")
    kernel, bias = weight(fc1.kernel), weight(fc1.bias)
    kernel[:, :8], bias[:8] = 0, 0
    fc1.kernel.assign(kernel)
    fc1.bias.assign(bias)
    reg = FlopsRegularizer(model, algorithm="group_lasso", prune_residual_stream=prune)
    structure = reg.get_alive_counts()
    assert (structure["embed"], structure["mha"], structure["fc1"]) == (WIDTH, 1, MLP - 8)
    slim = apply_structure(model, structure)
    assert slim.get_layer("mha").get_config()["output_shape"] is None
    x = np.random.default_rng(3).normal(size=(2, TOKENS, WIDTH)).astype("float32")
    assert np.abs(np.asarray(model(x)) - np.asarray(slim(x))).max() < 1e-4


# under JAX each LiteRT conversion is a TensorFlow subprocess; the refusal is the same
@pytest.mark.only_backend("tensorflow")
def test_latency_regularizer_refuses_a_pruned_stream_into_attention_by_name():
    with pytest.raises(InvalidArgumentError,
                       match="'mha'.*heads only.*embed.*prune_residual_stream off"):
        LatencyRegularizer(PROFILE, model=encoder(), algorithm="group_lasso",
                           prune_residual_stream=True)
