"""Exact rebuilds: the slim model computes what the masked model computes.

For each network and algorithm the dead channels of every regularized vector (each BN's
gamma, each source kernel's columns, each gate's logits) are chosen independently, so a
channel of a group is dead only where every vector of its group says so. The *masked*
model is the original with the group-dead channels silenced:

gamma and beta of every BatchNormalization on those channels set to 0 (so each BN
outputs exactly 0 there), the source kernels' columns and biases set to 0 (a source
without a BN after it, e.g. a squeeze-excite reduce conv, then outputs 0 through its
ReLU), and every gate on them closed (logit -10). For logistic_sigmoid the gates alone
are not enough: `insert_gates` gates a conv's activation, and the BatchNormalization
after the following depthwise conv (or after a Concatenate) turns a closed gate's 0
into a constant (beta - gamma * mean / std) that still reaches the next conv; the slim
model has no such channel, so the masked model zeroes those BNs too.

Then ``apply_structure(model, reg.get_alive_counts())`` and ``apply_structure(model,
load_structure(path))`` in a fresh process must compute the masked model's outputs, and
the slim model's FLOPs must equal the regularizer's cost.
"""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

from latency_lab.analyze import analyze_model  # noqa: E402
from regularizers import (  # noqa: E402
    FlopsRegularizer,
    Structure,
    apply_structure,
    export_structure,
    insert_gates,
    load_structure,
)
from regularizers.grouping import DEPTHWISE_TYPES, SOURCE_TYPES  # noqa: E402

L = keras.layers
ALGORITHMS = ("gamma", "group_lasso", "logistic_sigmoid")
THRESHOLD = 1e-2
ALIVE_THRESHOLD = 0.1
TOLERANCE = 1e-4


# --------------------------------------------------------------------------- networks


def _conv_bn(x, filters, kernel, name, act="relu", strides=1, groups=1):
    h = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                 groups=groups, name=name)(x)
    h = L.BatchNormalization(name=f"{name}_bn")(h)
    if act == "relu6":
        return L.ReLU(6.0, name=f"{name}_relu")(h)
    if act:
        return L.Activation(act, name=f"{name}_act")(h)
    return h


def inverted_residual_net():
    """MobileNetV2-style: expand -> depthwise -> linear project, residual Add."""
    x = keras.Input((16, 16, 3))
    h = _conv_bn(x, 8, 3, "stem", "relu6", strides=2)
    for b in range(2):
        e = _conv_bn(h, 24, 1, f"b{b}_expand", "relu6")
        d = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"b{b}_dw")(e)
        d = L.BatchNormalization(name=f"b{b}_dw_bn")(d)
        d = L.ReLU(6.0, name=f"b{b}_dw_relu")(d)
        p = _conv_bn(d, 8, 1, f"b{b}_project", None)
        h = L.Add(name=f"b{b}_add")([h, p])
    h = _conv_bn(h, 16, 1, "head", "relu")
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(5, name="logits")(h), name="inverted_residual")


def concat_net():
    """Two branches concatenated, a BN on the concatenation (it covers both groups)."""
    x = keras.Input((16, 16, 3))
    a = _conv_bn(x, 6, 3, "br_a")
    b = _conv_bn(x, 4, 1, "br_b")
    b = _conv_bn(b, 5, 3, "br_b2")
    c = L.Concatenate(name="cat")([a, b])
    c = L.BatchNormalization(name="cat_bn")(c)
    c = L.ReLU(name="cat_relu")(c)
    h = _conv_bn(c, 8, 1, "mix")
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(4, name="logits")(h), name="concat")


def mnas_net():
    """MnasNet-style: inverted residual with squeeze-excite (the SE expand conv is tied
    to the block's channels by the Multiply)."""
    x = keras.Input((16, 16, 3))
    h = _conv_bn(x, 8, 3, "stem", "relu", strides=2)
    for b in range(2):
        e = _conv_bn(h, 16, 1, f"b{b}_expand")
        d = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"b{b}_dw")(e)
        d = L.BatchNormalization(name=f"b{b}_dw_bn")(d)
        d = L.Activation("relu", name=f"b{b}_dw_act")(d)
        s = L.GlobalAveragePooling2D(keepdims=True, name=f"b{b}_se_gap")(d)
        s = L.Conv2D(4, 1, activation="relu", name=f"b{b}_se_reduce")(s)
        s = L.Conv2D(16, 1, activation="sigmoid", name=f"b{b}_se_expand")(s)
        d = L.Multiply(name=f"b{b}_se_mul")([d, s])
        p = _conv_bn(d, 8, 1, f"b{b}_project", None)
        h = L.Add(name=f"b{b}_add")([h, p])
    h = _conv_bn(h, 16, 1, "head")
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(5, name="logits")(h), name="mnas")


def _shuffle(x, name, with_ops=False):
    """Channel shuffle of two halves: out[2k] = x[k], out[2k + 1] = x[c/2 + k]."""
    h, w, c = x.shape[1:]
    if with_ops:
        x = keras.ops.reshape(x, (-1, h, w, 2, c // 2))
        x = keras.ops.transpose(x, (0, 1, 2, 4, 3))
        return keras.ops.reshape(x, (-1, h, w, c))
    x = L.Reshape((h, w, 2, c // 2), name=f"{name}_split_c")(x)
    x = L.Permute((1, 2, 4, 3), name=f"{name}_swap")(x)
    return L.Reshape((h, w, c), name=f"{name}_merge_c")(x)


def _dw_bn(x, name, strides=1):
    d = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_dw")(x)
    return L.BatchNormalization(name=f"{name}_dw_bn")(d)


def shufflenet_v2():
    """ShuffleNetV2: two stages, each a stride-2 unit (both branches convolved) and a
    stride-1 unit (half the channels pass, half are convolved), joined by a channel
    shuffle. Stage 1 splits with ``x[..., :c]`` and shuffles with Reshape / Permute /
    Reshape; stage 2 splits with ``keras.ops.split`` and shuffles with keras.ops
    reshape / transpose."""
    x = keras.Input((16, 16, 3))
    h = _conv_bn(x, 8, 3, "stem", strides=2)
    for s, (out, blocks) in enumerate(((16, 2), (24, 2))):
        half = out // 2
        b1 = _conv_bn(_dw_bn(h, f"s{s}u0_b1", strides=2), half, 1, f"s{s}u0_b1_pw")
        b2 = _conv_bn(h, half, 1, f"s{s}u0_b2_in")
        b2 = _conv_bn(_dw_bn(b2, f"s{s}u0_b2", strides=2), half, 1, f"s{s}u0_b2_out")
        h = _shuffle(L.Concatenate(name=f"s{s}u0_cat")([b1, b2]), f"s{s}u0", s == 1)
        for u in range(1, blocks):
            if s == 0:
                x1, x2 = h[..., :half], h[..., half:]
            else:
                x1, x2 = keras.ops.split(h, 2, axis=-1)
            b = _conv_bn(x2, half, 1, f"s{s}u{u}_in")
            b = _conv_bn(_dw_bn(b, f"s{s}u{u}"), half, 1, f"s{s}u{u}_out")
            h = _shuffle(L.Concatenate(name=f"s{s}u{u}_cat")([x1, b]), f"s{s}u{u}", s == 1)
    h = _conv_bn(h, 16, 1, "head")
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(5, name="logits")(h), name="shufflenet_v2")


def regnet():
    """RegNet-style: 1x1 -> grouped 3x3 -> 1x1 bottlenecks with residual Adds, one with
    a stride-2 projection shortcut."""
    x = keras.Input((16, 16, 3))
    h = _conv_bn(x, 8, 3, "stem", strides=2)
    for b in range(2):
        e = _conv_bn(h, 16, 1, f"b{b}_a")
        e = _conv_bn(e, 16, 3, f"b{b}_b", groups=2)
        p = _conv_bn(e, 8, 1, f"b{b}_c", None)
        h = L.ReLU(name=f"b{b}_relu")(L.Add(name=f"b{b}_add")([h, p]))
    e = _conv_bn(h, 24, 1, "b2_a")
    e = _conv_bn(e, 24, 3, "b2_b", strides=2, groups=3)
    p = _conv_bn(e, 16, 1, "b2_c", None)
    short = _conv_bn(h, 16, 1, "b2_short", None, strides=2)
    h = L.ReLU(name="b2_relu")(L.Add(name="b2_add")([short, p]))
    h = _conv_bn(h, 16, 1, "head")
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(5, name="logits")(h), name="regnet")


def mobilenet_v2():
    return keras.applications.MobileNetV2(alpha=0.35, input_shape=(32, 32, 3),
                                          weights=None, classes=5)


NETWORKS = {
    "inverted_residual": (inverted_residual_net, (16, 16, 3)),
    "concat": (concat_net, (16, 16, 3)),
    "mnas_se": (mnas_net, (16, 16, 3)),
    "mobilenet_v2": (mobilenet_v2, (32, 32, 3)),
    "shufflenet_v2": (shufflenet_v2, (16, 16, 3)),
    "regnet": (regnet, (16, 16, 3)),
}


# ----------------------------------------------------- independent dead channels


def _dead_set(rng, n):
    """About half the channels, never all of them (a group keeps at least one)."""
    while True:
        dead = rng.random(n) < 0.5
        if not dead.all():
            return dead


def _randomize_bn(model, rng):
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.3, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.5, n).astype("float32"))
            layer.gamma.assign((rng.uniform(0.5, 1.5, n)
                                * rng.choice([-1, 1], n)).astype("float32"))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.2, layer.bias.shape).astype("float32"))


def _kill_independently(model, algorithm, rng):
    """Make each vector of `algorithm` dead on its own random channels."""
    for layer in model.layers:
        if algorithm == "gamma" and isinstance(layer, L.BatchNormalization):
            g = layer.gamma.numpy()
            g[_dead_set(rng, g.shape[0])] = 1e-3
            layer.gamma.assign(g)
        elif algorithm == "group_lasso" and type(layer).__name__ in SOURCE_TYPES \
                and layer.name != "logits" and layer.name != "predictions":
            k = layer.kernel.numpy()
            k[..., _dead_set(rng, k.shape[-1])] = 0.0
            layer.kernel.assign(k)
        elif algorithm == "logistic_sigmoid" and type(layer).__name__ == "ProbabilisticGate":
            n = layer.logits.shape[0]
            # alive: open (+2) or closed but alive (-1: p = 0.27 >= 0.1); dead: -4
            logits = rng.choice([2.0, -1.0], n)
            logits[_dead_set(rng, n)] = -4.0
            layer.logits.assign(logits.astype("float32"))


def prepare(network, algorithm, seed=0):
    build, shape = NETWORKS[network]
    keras.utils.set_random_seed(seed)
    model = build()
    rng = np.random.default_rng(seed)
    _randomize_bn(model, rng)
    if algorithm == "logistic_sigmoid":
        model = insert_gates(model, after=("activation", "linear"))
    _kill_independently(model, algorithm, rng)
    x = np.random.default_rng(seed + 1).normal(size=(2, *shape)).astype("float32")
    return model, x


# ------------------------------------------------------------------- the masked model


def _covering(cg, op_type):
    """{group id: [(op, offset, classes)]} for ops of `op_type` acting on a group's
    channels: the op's channels offset, offset + 1, ... carry those classes."""
    out = {}
    for cop in cg.ops:
        if cop.type != op_type:
            continue
        offset = 0
        for seg in cop.in_segments[0]:
            classes = cg.segment_classes(seg)
            if seg[1] == 1:
                out.setdefault(seg[0], []).append((cop, offset, classes))
            offset += len(classes) * seg[1]
    return out


def _source_classes(cg, src):
    return cg.segment_classes(cg.op(src).out_segments[0])


def group_dead(reg):
    """{group id: bool mask over its classes} of the classes every entry of every vector
    of the group calls dead, computed here from the weights (not by the regularizer).
    A class of a channel shuffle or grouped conv has several entries per vector."""
    cg, model = reg.channel_graph, reg.model
    dead = {}
    for gid, g in cg.groups.items():
        if g.frozen or not g.sources:
            continue
        pieces = []  # (dead per entry, class per entry)
        if reg.algorithm == "gamma":
            for cop, off, cls in _covering(cg, "BatchNormalization").get(gid, []):
                gamma = np.abs(model.get_layer(cop.layer_name).gamma.numpy())
                pieces.append((gamma[off:off + len(cls)] <= THRESHOLD, cls))
        elif reg.algorithm == "group_lasso":
            for src in g.sources:
                k = model.get_layer(src).kernel.numpy()
                norm = np.sqrt(np.mean(np.square(k.reshape(-1, k.shape[-1])), axis=0))
                pieces.append((norm <= THRESHOLD, _source_classes(cg, src)))
        else:  # alive when 1 - prod(1 - p) over the entries of a class >= alive_threshold
            keep = np.ones(g.size)
            covered = np.zeros(g.size, bool)
            for cop, off, cls in _covering(cg, "ProbabilisticGate").get(gid, []):
                logits = model.get_layer(cop.layer_name).logits.numpy().astype(np.float64)
                np.multiply.at(keep, cls, 1.0 / (1.0 + np.exp(logits[off:off + len(cls)])))
                covered[cls] = True
            if covered.all():
                dead[gid] = 1.0 - keep < ALIVE_THRESHOLD
            continue
        covered = np.zeros(g.size, bool)
        d = np.ones(g.size, bool)
        for entry_dead, cls in pieces:
            np.logical_and.at(d, cls, entry_dead)
            covered[cls] = True
        if pieces and covered.all():
            dead[gid] = d
    return dead


def mask_in_place(reg, dead):
    """Silence the group-dead classes everywhere they flow: gamma and beta of every BN
    on them, the sources' kernel columns and biases, every gate on them closed."""
    cg, model = reg.channel_graph, reg.model
    bns = _covering(cg, "BatchNormalization")
    gates = _covering(cg, "ProbabilisticGate")
    for gid, d in dead.items():
        if not d.any():
            continue
        for cop, off, cls in gates.get(gid, []):
            layer = model.get_layer(cop.layer_name)
            v = layer.logits.numpy()
            v[off + np.flatnonzero(d[cls])] = -10.0
            layer.logits.assign(v)
        for cop, off, cls in bns.get(gid, []):
            layer = model.get_layer(cop.layer_name)
            for var in (layer.gamma, layer.beta):
                v = var.numpy()
                v[off + np.flatnonzero(d[cls])] = 0.0
                var.assign(v)
        for src in cg.groups[gid].sources:
            layer = model.get_layer(src)
            idx = np.flatnonzero(d[_source_classes(cg, src)])
            for var in (layer.kernel, getattr(layer, "bias", None)):
                if var is None:
                    continue
                v = var.numpy()
                v[..., idx] = 0.0
                var.assign(v)


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def conv_flops(model):
    kinds = SOURCE_TYPES | DEPTHWISE_TYPES
    with warnings.catch_warnings():  # the cost registry has no ProbabilisticGate (free)
        warnings.simplefilter("ignore")
        rows = analyze_model(model, allow_unknown=True).layers
    return sum(row.cost.flops for row in rows if row.type in kinds)


# ------------------------------------------------------------------------- the cases

_CHILD = textwrap.dedent("""
    import json, os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import keras
    import regularizers.gates  # registers ProbabilisticGate for loading
    from regularizers import apply_structure, load_structure
    for case in json.loads(sys.argv[1]):
        model = keras.saving.load_model(os.path.join(case, "model.keras"), compile=False)
        slim = apply_structure(model, load_structure(os.path.join(case, "structure.json")))
        x = np.load(os.path.join(case, "x.npz"))["x"]
        y = keras.ops.convert_to_numpy(slim(x, training=False))
        np.savez(os.path.join(case, "child.npz"), y=y)
""")


def run_case(network, algorithm, directory, seed=0):
    """Everything the parent process checks for one case; writes the child's inputs."""
    model, x = prepare(network, algorithm, seed)
    reg = FlopsRegularizer(model=model, algorithm=algorithm, threshold=THRESHOLD,
                           alive_threshold=ALIVE_THRESHOLD)
    counts = reg.get_alive_counts()
    cost = reg.get_cost()
    slim = apply_structure(model, counts)
    # counts alone (a version-1 file): ranked by the same combined vector; gates and
    # |gamma| are what apply_structure infers, group_lasso must be named
    slim_counts = apply_structure(model, dict(counts),
                                  algorithm="group_lasso" if algorithm == "group_lasso"
                                  else None)
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, "model.keras"))
    export_structure(reg, directory)
    np.savez(os.path.join(directory, "x.npz"), x=x)
    dead = group_dead(reg)
    n_dead = int(sum(d.sum() for d in dead.values()))
    mask_in_place(reg, dead)
    masked = keras.ops.convert_to_numpy(model(x, training=False))
    return {
        "masked": masked,
        "slim_diff": rel_diff(slim(x, training=False), masked),
        "counts_diff": rel_diff(slim_counts(x, training=False), masked),
        "slim_flops": conv_flops(slim),
        "cost": cost,
        "dead": n_dead,
    }


FAST = ("inverted_residual", "concat", "mnas_se", "shufflenet_v2", "regnet")
CASES = [(n, a) for n in FAST for a in ALGORITHMS]
SLOW_CASES = [("mobilenet_v2", a) for a in ALGORITHMS]


def _run_all(cases, root):
    results, dirs = {}, []
    for network, algorithm in cases:
        d = str(root / f"{network}-{algorithm}")
        results[(network, algorithm)] = run_case(network, algorithm, d)
        dirs.append(d)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(dirs)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for (network, algorithm), d in zip(cases, dirs):
        child = np.load(os.path.join(d, "child.npz"))["y"]
        results[(network, algorithm)]["child_diff"] = rel_diff(
            child, results[(network, algorithm)]["masked"])
    return results


@pytest.fixture(scope="module")
def fast_results(tmp_path_factory):
    return _run_all(CASES, tmp_path_factory.mktemp("exact"))


@pytest.fixture(scope="module")
def slow_results(tmp_path_factory):
    return _run_all(SLOW_CASES, tmp_path_factory.mktemp("exact_mnv2"))


def _check(r):
    assert r["dead"] > 0  # the case removes something
    assert np.abs(r["masked"]).max() > 0
    assert r["slim_diff"] < TOLERANCE, r["slim_diff"]
    assert r["counts_diff"] < TOLERANCE, r["counts_diff"]
    assert r["child_diff"] < TOLERANCE, r["child_diff"]
    assert r["slim_flops"] == pytest.approx(r["cost"], rel=1e-12)


@pytest.mark.parametrize("network, algorithm", CASES)
def test_slim_computes_the_masked_model(fast_results, network, algorithm):
    _check(fast_results[(network, algorithm)])


@pytest.mark.slow
@pytest.mark.parametrize("network, algorithm", SLOW_CASES)
def test_mobilenet_v2_slim_computes_the_masked_model(slow_results, network, algorithm):
    _check(slow_results[(network, algorithm)])


# --------------------------------------------------------------- 0 alive, files, align


def test_zero_alive_group_keeps_minimum_with_warning():
    model, x = prepare("inverted_residual", "gamma", seed=2)
    for bn in ("b0_expand_bn", "b0_dw_bn"):  # every vector of b0_expand's group dead
        gamma = model.get_layer(bn).gamma
        gamma.assign(np.full(gamma.shape, 1e-3, "float32"))
    g = model.get_layer("b0_dw_bn").gamma.numpy()
    g[7] = 5e-3  # still dead, but the best ranked
    model.get_layer("b0_dw_bn").gamma.assign(g)
    reg = FlopsRegularizer(model=model, threshold=THRESHOLD)
    counts = reg.get_alive_counts()
    assert counts["b0_expand"] == 0 and list(counts.kept["b0_expand"]) == []
    with pytest.warns(UserWarning, match=r"\['b0_expand'\] have 0 alive channels.*keeps 1"):
        slim = apply_structure(model, counts)
    assert slim.get_layer("b0_expand").filters == 1
    np.testing.assert_array_equal(slim.get_layer("b0_dw").kernel.numpy(),
                                  model.get_layer("b0_dw").kernel.numpy()[:, :, [7]])
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(slim(x))))
    with pytest.warns(UserWarning, match=r"keeps 4 .*align=4"):
        slim4 = apply_structure(model, counts, align=4)
    assert slim4.get_layer("b0_expand").filters == 4
    assert slim4(x).shape == model(x).shape


def test_align_tops_up_recorded_channels_with_the_best_ranked():
    model, _ = prepare("inverted_residual", "gamma", seed=3)
    s = Structure({"head": 2}, kept={"head": [3, 11]}, algorithm="gamma")
    slim = apply_structure(model, s, align=4)
    gamma = np.abs(model.get_layer("head_bn").gamma.numpy()).astype(np.float64)
    gamma[[3, 11]] = np.inf
    keep = np.sort(np.argsort(-gamma, kind="stable")[:4])
    assert {3, 11} <= set(keep)
    np.testing.assert_array_equal(slim.get_layer("head").kernel.numpy(),
                                  model.get_layer("head").kernel.numpy()[..., keep])


@pytest.mark.backend_independent
def test_structure_file_records_kept_indices_and_reads_version_1(tmp_path):
    s = Structure({"a": 2, "b": 3}, kept={"a": [4, 1]}, algorithm="gamma")
    assert s == {"a": 2, "b": 3} and list(s.kept["a"]) == [1, 4]
    path = export_structure(s, tmp_path)
    data = json.loads(open(path).read())
    assert data["version"] == 2 and data["counts"] == {"a": 2, "b": 3}
    assert data["kept"] == {"a": [1, 4]} and data["algorithm"] == "gamma"
    back = load_structure(path)
    assert back == s and list(back.kept["a"]) == [1, 4] and back.algorithm == "gamma"
    old = tmp_path / "v1.json"
    old.write_text(json.dumps({"a": 2, "b": 0}))
    v1 = load_structure(old)
    assert v1 == {"a": 2, "b": 0} and v1.kept == {} and v1.algorithm is None
    for kept, match in (({"a": [1]}, "count 2 but 1 kept"), ({"a": [1, 1]}, "1 distinct"),
                        ({"a": [-1, 2]}, "non-negative ints"), ({"c": [0]}, "no count")):
        with pytest.raises(ValueError, match=match):
            Structure({"a": 2}, kept=kept)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**s.to_json(), "counts": {"a": 2}, "kept": kept}))
        with pytest.raises(ValueError, match=match):
            load_structure(bad)
    bad.write_text(json.dumps({**s.to_json(), "version": 9}))
    with pytest.raises(ValueError, match="version 9"):
        load_structure(bad)


def test_recorded_indices_are_checked_against_the_model():
    model, _ = prepare("inverted_residual", "gamma")
    with pytest.raises(ValueError, match="index 99, outside its 16 channels"):
        apply_structure(model, Structure({"head": 2}, kept={"head": [0, 99]}))
    with pytest.raises(ValueError, match="'stem' and 'b0_project' are tied.*different"):
        apply_structure(model, Structure({"stem": 2, "b0_project": 2},
                                         kept={"stem": [0, 1], "b0_project": [0, 2]}))
    with pytest.raises(ValueError, match="`algorithm`"):
        apply_structure(model, {"head": 2}, algorithm="l1")


if __name__ == "__main__":  # prints the table: python tests/test_structure_exact.py DIR
    import pathlib

    which = CASES + (SLOW_CASES if "--all" in sys.argv else [])
    out = _run_all(which, pathlib.Path(sys.argv[1]))
    for key, r in out.items():
        print(f"{key[0]:18s} {key[1]:17s} dead={r['dead']:3d} slim={r['slim_diff']:.3g} "
              f"counts={r['counts_diff']:.3g} child={r['child_diff']:.3g} flops={r['slim_flops']:.0f} cost={r['cost']:.0f}")


def test_a_structure_survives_dataclasses_asdict():
    """Result dataclasses holding a Structure are written with dataclasses.asdict, which
    rebuilds a dict subclass from (key, value) pairs."""
    import dataclasses

    from regularizers.structure import Structure

    @dataclasses.dataclass
    class Row:
        structure: dict

    s = Structure({"conv": 3}, kept={"conv": [0, 2, 5]})
    assert dataclasses.asdict(Row(s)) == {"structure": {"conv": 3}}
