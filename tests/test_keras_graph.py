"""Graph IR built from small real Keras models (latency_lab.keras_graph.from_keras)."""

import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)
layers = keras.layers

from latency_lab.analyze import analyze_model  # noqa: E402
from latency_lab.errors import InputSpecError, UnsupportedModelError  # noqa: E402
from latency_lab.keras_graph import from_keras  # noqa: E402


def residual_net():
    inp = keras.Input((8, 8, 3), name="img")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    y = layers.Conv2D(8, 3, padding="same", dilation_rate=2, name="conv2")(x)
    a = layers.Add(name="add")([x, y])
    c = layers.Concatenate(name="concat")([a, y])
    z = layers.Conv2D(8, 3, strides=2, padding="valid", groups=2, activation="relu",
                      name="conv3")(c)
    g = layers.GlobalAveragePooling2D(name="gap")(z)
    out = layers.Dense(4, name="fc")(g)
    return keras.Model(inp, out, name="resnet_tiny")


def sequential_net():
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.Conv2D(4, 3, name="c1"),
            layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw"),
            layers.MaxPooling2D(name="pool"),
            layers.Flatten(name="flat"),
            layers.Dropout(0.5, name="drop"),
            layers.Dense(2, activation="softmax", name="out"),
        ],
        name="seq",
    )


def nested_net():
    ii = keras.Input((8, 8, 4), name="inner_in")
    t = layers.Conv2D(4, 3, padding="same", name="conv")(ii)
    t = layers.BatchNormalization(name="bn")(t)
    inner = keras.Model(ii, t, name="inner")
    oi = keras.Input((8, 8, 4), name="x")
    h = layers.Conv2D(4, 1, name="conv")(oi)  # same name as the inner conv
    h = inner(h)
    h = layers.Add(name="add")([h, oi])
    h = layers.SeparableConv2D(6, 3, name="sep")(h)
    return keras.Model(oi, h, name="outer")


def shared_net():
    shared = layers.Dense(4, name="shared")
    inp = keras.Input((4,), name="in")
    return keras.Model(inp, shared(shared(inp)), name="shared_net")


def ops_net():
    inp = keras.Input((4, 4, 2), name="in")
    u = inp + 3.0
    v = u * inp
    return keras.Model(inp, v, name="ops_net")


def misc_net():
    inp = keras.Input((8, 8, 3), name="in")
    x = layers.Rescaling(1 / 255.0, offset=-0.5, name="rescale")(inp)
    x = layers.Normalization(name="norm")(x)
    x = layers.ZeroPadding2D(1, name="pad")(x)
    x = layers.Conv2D(4, 3, name="conv")(x)
    x = layers.LayerNormalization(name="ln")(x)
    x = layers.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = layers.Conv2DTranspose(2, 3, strides=2, padding="same", name="deconv")(x)
    x = layers.Dense(3, name="dense4d")(x)
    return keras.Model(inp, x, name="misc")


def fully_conv_net():
    inp = keras.Input((None, None, 3), name="in")
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(inp)
    x = layers.MaxPooling2D(name="pool")(x)
    return keras.Model(inp, x, name="fcn")


def by_name(graph):
    return {op.name: op for op in graph}


def assert_topological(graph):
    seen = set()
    for op in graph:
        for ref in op.inputs:
            assert ref.rsplit(":", 1)[0] in seen, f"{op.name} reads {ref} before it exists"
        seen.add(op.name)


# ---------------------------------------------------------------- functional model


def test_functional_model_names_types_and_order():
    g = from_keras(residual_net())
    assert g.name == "resnet_tiny"
    assert [op.name for op in g] == [
        "img", "conv1", "bn1", "relu1", "conv2", "add", "concat", "conv3", "gap", "fc",
    ]
    assert [op.type for op in g] == [
        "InputLayer", "Conv2D", "BatchNormalization", "ReLU", "Conv2D", "Add",
        "Concatenate", "Conv2D", "GlobalAveragePooling2D", "Dense",
    ]
    assert g.inputs == ["img"] and g.outputs == ["fc"]
    assert_topological(g)


def test_functional_model_edges():
    ops = by_name(from_keras(residual_net()))
    assert ops["img"].inputs == []
    assert ops["conv1"].inputs == ["img"]
    assert ops["bn1"].inputs == ["conv1"]
    assert ops["relu1"].inputs == ["bn1"]
    assert ops["conv2"].inputs == ["relu1"]
    assert ops["add"].inputs == ["relu1", "conv2"]
    assert ops["concat"].inputs == ["add", "conv2"]
    assert ops["conv3"].inputs == ["concat"]
    assert ops["gap"].inputs == ["conv3"]
    assert ops["fc"].inputs == ["gap"]
    g = from_keras(residual_net())
    assert [c.name for c in g.consumers("conv2")] == ["add", "concat"]
    assert g.producer("conv2").type == "Conv2D"


def test_functional_model_shapes_with_batch_size():
    g = from_keras(residual_net(), batch_size=2)
    assert g.batch_size == 2
    ops = by_name(g)
    assert ops["img"].output_shapes == [(2, 8, 8, 3)]
    assert ops["conv1"].input_shapes == [(2, 8, 8, 3)]
    assert ops["conv1"].output_shape == (2, 8, 8, 8)
    assert ops["add"].input_shapes == [(2, 8, 8, 8), (2, 8, 8, 8)]
    assert ops["concat"].output_shape == (2, 8, 8, 16)
    assert ops["conv3"].output_shape == (2, 3, 3, 8)  # (8 - 3) // 2 + 1 = 3, VALID
    assert ops["gap"].output_shape == (2, 8)
    assert ops["fc"].output_shape == (2, 4)
    assert ops["conv3"].channels_in == 16 and ops["conv3"].channels_out == 8
    # Default batch size is 1.
    assert by_name(from_keras(residual_net()))["fc"].output_shape == (1, 4)


def test_functional_model_attrs():
    ops = by_name(from_keras(residual_net()))
    c1, c2, c3 = ops["conv1"].attrs, ops["conv2"].attrs, ops["conv3"].attrs
    assert c1["kernel_size"] == (3, 3)
    assert c1["strides"] == (1, 1)
    assert c1["padding"] == "same"
    assert c1["dilation_rate"] == (1, 1)
    assert c1["groups"] == 1
    assert c1["use_bias"] is False
    assert c1["activation"] == "linear"
    assert c2["dilation_rate"] == (2, 2) and c2["use_bias"] is True
    assert c3["strides"] == (2, 2)
    assert c3["padding"] == "valid"
    assert c3["groups"] == 2
    assert c3["activation"] == "relu"
    assert ops["bn1"].attrs["scale"] is True and ops["bn1"].attrs["center"] is True
    assert ops["gap"].attrs["keepdims"] is False
    assert ops["fc"].attrs["units"] == 4
    # A list of tensors (merge layers) is not a constant operand.
    assert "constant_operands" not in ops["add"].attrs
    assert "constant_operands" not in ops["concat"].attrs
    for op in ops.values():
        assert op.dtype == "float32"


def test_functional_model_costs_by_hand():
    layers_ = {row.name: row for row in analyze_model(residual_net(), batch_size=2).layers}
    assert layers_["conv1"].cost.flops == 2 * 2 * 8 * 8 * 3 * 3 * 3 * 8
    assert layers_["conv3"].cost.flops == 2 * 2 * 3 * 3 * 3 * 3 * (16 // 2) * 8
    assert layers_["conv3"].cost.params == 3 * 3 * (16 // 2) * 8 + 8
    assert layers_["fc"].cost.flops == 2 * 2 * 8 * 4


# ---------------------------------------------------------------- sequential


def test_sequential_with_input():
    model = sequential_net()
    g = from_keras(model)
    names = [op.name for op in g]
    assert g.name == "seq"
    assert g.ops[0].type == "InputLayer"
    assert names[1:] == ["c1", "dw", "pool", "flat", "drop", "out"]
    ops = by_name(g)
    assert ops["c1"].inputs == [names[0]]
    assert ops["dw"].output_shape == (1, 4, 4, 8)
    assert ops["dw"].attrs["depth_multiplier"] == 2
    assert ops["pool"].output_shape == (1, 2, 2, 8)
    assert ops["pool"].attrs["pool_size"] == (2, 2)
    assert ops["flat"].output_shape == (1, 32)
    assert ops["out"].attrs["activation"] == "softmax"
    assert g.outputs == ["out"]
    assert_topological(g)


def test_unbuilt_sequential_needs_input_shape():
    model = keras.Sequential([layers.Conv2D(4, 3, name="c"), layers.Flatten(name="f"),
                              layers.Dense(2, name="d")], name="unbuilt")
    with pytest.raises(UnsupportedModelError, match="not built.*--input-shape"):
        from_keras(model)
    g = from_keras(model, input_shape=(8, 8, 3))
    ops = by_name(g)
    assert ops["c"].output_shape == (1, 6, 6, 4)
    assert ops["f"].output_shape == (1, 6 * 6 * 4)
    assert ops["d"].output_shape == (1, 2)


# ---------------------------------------------------------------- nested models


def test_nested_model_is_flattened_with_prefixed_names():
    g = from_keras(nested_net())
    names = [op.name for op in g]
    assert names == ["x", "conv", "inner/conv", "inner/bn", "add", "sep"]
    ops = by_name(g)
    # Edges cross the boundary both ways; the inner InputLayer is not an op.
    assert ops["inner/conv"].inputs == ["conv"]
    assert ops["inner/bn"].inputs == ["inner/conv"]
    assert ops["add"].inputs == ["inner/bn", "x"]
    assert ops["sep"].inputs == ["add"]
    assert ops["inner/conv"].type == "Conv2D"
    assert ops["inner/conv"].attrs["kernel_size"] == (3, 3)
    assert ops["inner/bn"].output_shape == (1, 8, 8, 4)
    assert ops["sep"].output_shape == (1, 6, 6, 6)
    assert_topological(g)


def test_nested_sequential_with_input_shape_override():
    inner = keras.Sequential([layers.Conv2D(4, 3, padding="same", name="c"),
                              layers.ReLU(name="r")], name="block")
    inp = keras.Input((None, None, 3), name="in")
    out = layers.GlobalMaxPooling2D(name="gmp")(inner(inp))
    model = keras.Model(inp, out, name="wrap")
    g = from_keras(model, input_shape=(16, 16, 3), batch_size=2)
    ops = by_name(g)
    assert [op.name for op in g] == ["in", "block/c", "block/r", "gmp"]
    assert ops["block/c"].inputs == ["in"]
    assert ops["block/c"].output_shape == (2, 16, 16, 4)
    assert ops["gmp"].inputs == ["block/r"]
    assert ops["gmp"].output_shape == (2, 4)


def test_shared_layer_called_twice_gets_unique_name():
    g = from_keras(shared_net())
    assert [op.name for op in g] == ["in", "shared", "shared#1"]
    ops = by_name(g)
    assert ops["shared"].inputs == ["in"]
    assert ops["shared#1"].inputs == ["shared"]
    assert ops["shared#1"].type == "Dense"
    assert ops["shared#1"].attrs["shared_from"] == "shared"
    assert "shared_from" not in ops["shared"].attrs
    rows = {r.name: r.cost for r in analyze_model(shared_net()).layers}
    params = 4 * 4 + 4
    assert rows["shared"].params == params
    assert rows["shared#1"].params == 0  # the weights belong to the first call
    assert rows["shared#1"].flops == rows["shared"].flops == 2 * 4 * 4
    assert rows["shared#1"].bytes_read == (4 + params) * 4  # but are read again


# ---------------------------------------------------------------- keras.ops


def test_keras_ops_arithmetic():
    g = from_keras(ops_net())
    ops = list(g)
    assert [op.type for op in ops] == ["InputLayer", "ops.Add", "ops.Multiply"]
    add, mul = ops[1], ops[2]
    assert add.inputs == ["in"]
    assert add.attrs["constant_operands"] == 1
    assert mul.inputs == [add.name, "in"]
    assert "constant_operands" not in mul.attrs
    rows = {r.type: r for r in analyze_model(ops_net()).layers}
    assert rows["ops.Add"].cost.flops == 4 * 4 * 2
    assert rows["ops.Multiply"].cost.flops == 4 * 4 * 2


# ---------------------------------------------------------------- input shapes


def test_input_shape_override_for_fully_convolutional_model():
    g = from_keras(fully_conv_net(), input_shape=(16, 16, 3))
    ops = by_name(g)
    assert ops["in"].output_shapes == [(1, 16, 16, 3)]
    assert ops["conv"].input_shapes == [(1, 16, 16, 3)]
    assert ops["conv"].output_shape == (1, 8, 8, 4)
    assert ops["pool"].output_shape == (1, 4, 4, 4)
    rows = {r.name: r for r in analyze_model(fully_conv_net(), input_shape=(16, 16, 3)).layers}
    assert rows["conv"].cost.flops == 2 * 8 * 8 * 3 * 3 * 3 * 4


def test_variable_input_size_without_override_is_an_error():
    with pytest.raises(InputSpecError, match="--input-shape"):
        from_keras(fully_conv_net())


def test_input_shape_with_wrong_rank_is_an_error():
    with pytest.raises(InputSpecError, match="2 dims"):
        from_keras(fully_conv_net(), input_shape=(16, 16))


def test_input_shape_the_model_cannot_take_is_an_error():
    inp = keras.Input((8, 8, 3), name="in")
    x = layers.Flatten(name="f")(inp)
    x = layers.Dense(2, name="d")(x)
    with pytest.raises(InputSpecError, match="16, 16, 3"):
        from_keras(keras.Model(inp, x), input_shape=(16, 16, 3))


@pytest.mark.parametrize("batch_size", [0, -1])
def test_bad_batch_size(batch_size):
    with pytest.raises(InputSpecError, match="batch size"):
        from_keras(residual_net(), batch_size=batch_size)


# ---------------------------------------------------------------- unsupported


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def test_subclassed_model_is_refused():
    model = Subclassed(name="mine")
    model(keras.ops.zeros((1, 3)))
    with pytest.raises(UnsupportedModelError, match="subclassed") as info:
        from_keras(model)
    assert "'mine'" in str(info.value)


def test_subclassed_model_nested_in_functional_is_refused():
    inp = keras.Input((3,), name="in")
    out = Subclassed(name="sub")(inp)
    with pytest.raises(UnsupportedModelError, match="subclassed"):
        from_keras(keras.Model(inp, out))


def test_not_a_model_is_refused():
    with pytest.raises(UnsupportedModelError, match="keras.Model"):
        from_keras(layers.Dense(2))


# ---------------------------------------------------------------- params, dtypes


@pytest.mark.parametrize(
    "build",
    [residual_net, sequential_net, nested_net, shared_net, ops_net, misc_net],
    ids=lambda f: f.__name__,
)
def test_params_equal_count_params(build):
    model = build()
    analysis = analyze_model(model)
    assert sum(row.cost.params for row in analysis.layers) == model.count_params()
    assert analysis.total.params == model.count_params()


def test_normalization_with_constant_stats_params():
    inp = keras.Input((4, 4, 3))
    out = layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 1.0, 1.0], name="n")(inp)
    model = keras.Model(inp, out)
    assert model.count_params() == 0
    assert analyze_model(model).total.params == 0


def test_mixed_precision_dtypes():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inp = keras.Input((8, 8, 3), name="in")
        out = layers.Conv2D(4, 1, name="conv")(inp)
        model = keras.Model(inp, out)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    conv = by_name(from_keras(model))["conv"]
    assert conv.dtype == "float16"
    assert conv.attrs["weight_dtype"] == "float32"
    cost = {r.name: r for r in analyze_model(model).layers}["conv"].cost
    params = 1 * 1 * 3 * 4 + 4
    assert cost.bytes_read == 8 * 8 * 3 * 2 + params * 4
    assert cost.bytes_written == 8 * 8 * 4 * 2


def test_graph_to_dict_roundtrips_through_json():
    import json

    d = json.loads(json.dumps(from_keras(residual_net()).to_dict()))
    assert d["name"] == "resnet_tiny"
    assert [op["name"] for op in d["ops"]][:2] == ["img", "conv1"]
    assert d["ops"][1]["output_shapes"] == [[1, 8, 8, 8]]


# ---------------------------------------------------------------- import cost


def test_import_does_not_import_tensorflow():
    code = (
        "import latency_lab, latency_lab.costs, latency_lab.graph, sys; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "assert 'keras' not in sys.modules, 'keras imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
