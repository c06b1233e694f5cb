"""The one Keras graph walker (latency_lab.keras_walker), and the Keras private
attributes it reads: a Keras upgrade that moves one fails here, by name, before the IR,
gate insertion or structure rebuild go quietly wrong."""

import os
import pathlib
import re

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)
L = keras.layers

from latency_lab.errors import UnsupportedModelError  # noqa: E402
from latency_lab.keras_walker import (  # noqa: E402
    activation_name,
    calls,
    check_input,
    functional_of,
    is_model,
    is_ops_operation,
    keras_mask_of,
    pack_inputs,
    pack_outputs,
    producer_of,
    require_functional,
    walk,
)

UPDATE = "update latency_lab/keras_walker.py"


def _name(operation):
    """A layer's name; a keras.ops operation's class in lower case (Keras numbers
    their names per session: multiply, multiply_1, ...)."""
    return type(operation).__name__.lower() if is_ops_operation(operation) else operation.name


def _model():
    """Two inputs, a layer shared by both, an Add, a keras.ops call with a constant, a
    nested model called twice, a call keyword (training=False), two outputs.

    Keras' depths (edges to the farthest output): gap 0, inner on sa 0 (an output),
    drop 1, inner on t 2, multiply 3, add 4, both shared calls 5 (a shared layer's
    calls share the deepest depth), inputs 6."""
    xi = keras.Input((4, 4, 3), name="inner_in")
    h = L.Dense(5, name="inner_dense")(xi)
    h = L.ReLU(name="inner_relu")(h)
    inner = keras.Model(xi, h, name="inner")

    a = keras.Input((4, 4, 2), name="a")
    b = keras.Input((4, 4, 2), name="b")
    shared = L.Conv2D(3, 1, name="shared")
    sa, sb = shared(a), shared(b)
    s = L.Add(name="add_l")([sa, sb])
    t = s * 2.0
    f = inner(t)
    d = L.Dropout(0.5, name="drop")(f, training=False)
    y = L.GlobalAveragePooling2D(name="gap")(d)
    f2 = inner(sa)
    model = keras.Model({"a": a, "b": b}, [y, f2], name="outer")
    return model, dict(a=a, b=b, sa=sa, sb=sb, s=s, t=t, f=f, d=d, y=y, f2=f2,
                       shared=shared, inner=inner)


# ------------------------------------------------------------------------ walking


def test_calls_are_the_top_level_calls_in_keras_order():
    model, t = _model()
    got = list(calls(model))
    # Deepest first; within a depth, Keras keeps the order in which its walk back from
    # the outputs [y, f2] first reached a node: f2's inner call (an output, depth 0)
    # before gap, sa's shared call before sb's (add lists [sa, sb]).
    assert [(_name(c.operation), c.scope) for c in got] == [
        ("shared", ""), ("shared", ""), ("add_l", ""), ("multiply", ""), ("inner", ""),
        ("drop", ""), ("inner", ""), ("gap", ""),
    ]
    shared_a, shared_b, add, mul, inner_t, drop, inner_sa, gap = got
    assert shared_a.operation is t["shared"] and shared_b.operation is t["shared"]
    assert shared_a.inputs == (t["a"],) and shared_a.outputs == (t["sa"],)
    assert shared_b.inputs == (t["b"],) and shared_b.outputs == (t["sb"],)
    assert add.inputs == (t["sa"], t["sb"]) and add.outputs == (t["s"],)
    assert add.args == ([t["sa"], t["sb"]],) and add.kwargs == {}
    # keras.ops: the constant stays beside the tensor, only the tensor is an input.
    assert mul.inputs == (t["s"],) and mul.args == (t["s"], 2.0)
    assert inner_t.operation is t["inner"] and inner_t.outputs == (t["f"],)
    assert inner_sa.operation is t["inner"] and inner_sa.inputs == (t["sa"],)
    assert drop.kwargs == {"training": False} and drop.inputs == (t["f"],)
    assert gap.outputs == (t["y"],)
    assert is_model(inner_t.operation) and not is_model(drop.operation)


def test_call_fill_in_puts_values_in_place_of_tensors():
    model, t = _model()
    by_name = {_name(c.operation): c for c in calls(model)}
    assert by_name["multiply"].fill_in(["X"]) == (("X", 2.0), {})
    assert by_name["drop"].fill_in(["D"]) == (("D",), {"training": False})
    assert by_name["add_l"].fill_in(["P", "Q"]) == ((["P", "Q"],), {})


def _attention_calls():
    q = keras.Input((5, 4), name="q")
    v = keras.Input((3, 6), name="v")
    by_keyword = L.MultiHeadAttention(2, 2, name="keyword")(value=v, query=q, key=v)
    positional = L.MultiHeadAttention(2, 2, name="positional")(q, q)
    model = keras.Model([q, v], [by_keyword, positional])
    return {c.operation.name: c for c in calls(model)}, q, v


def test_call_bound_arguments_names_tensors_by_parameter():
    by_kind, q, v = _attention_calls()
    keyword = by_kind["keyword"].bound_arguments()
    assert set(keyword) == {"query", "value", "key"}
    assert keyword["query"] is q and keyword["value"] is v and keyword["key"] is v
    positional = by_kind["positional"].bound_arguments()
    assert set(positional) == {"query", "value"}
    assert positional["query"] is q and positional["value"] is q


def test_call_input_index_finds_the_tensor_itself_once_per_use():
    by_kind, q, v = _attention_calls()
    keyword = by_kind["keyword"]
    # Keras records keyword tensors sorted by keyword: key, query, value.
    assert keyword.inputs == (v, q, v)
    assert keyword.input_index(q) == 1
    assert keyword.input_index(v) == 0 and keyword.input_index(v, exclude=[0]) == 2
    assert keyword.input_index(v, exclude=[0, 2]) is None
    assert keyword.input_index(keras.Input((5, 4))) is None  # an equal tensor is not it


def test_call_bound_arguments_that_do_not_fit_name_the_layer():
    by_kind, q, v = _attention_calls()
    call = by_kind["positional"]
    bad = type(call)(call.operation, call.inputs, call.outputs, call.args,
                     {"no_such_argument": 1}, "outer/")
    with pytest.raises(UnsupportedModelError, match=r"'outer/positional'.*signature"):
        bad.bound_arguments()


def test_walk_enters_nested_models_once_per_call():
    model, _ = _model()
    visited = []

    def visit(call, values):
        label = f"{call.scope}{_name(call.operation)}({','.join(values)})"
        visited.append(label)
        return [label]

    outs = walk(model, ["a", "b"], visit)  # model.inputs: a, b (the dict's keys, sorted)
    s = "add_l(shared(a),shared(b))"
    f = f"inner/inner_relu(inner/inner_dense(multiply({s})))"
    f2 = "inner/inner_relu(inner/inner_dense(shared(a)))"
    assert visited == [
        "shared(a)", "shared(b)", s, f"multiply({s})",
        f"inner/inner_dense(multiply({s}))", f,
        f"drop({f})",
        "inner/inner_dense(shared(a))", f2,
        f"gap(drop({f}))",
    ]
    assert outs == [f"gap(drop({f}))", f2]


def test_walk_rebuilds_a_model_that_computes_the_same():
    model, _ = _model()
    new_inputs = [keras.Input((4, 4, 2), name="a"), keras.Input((4, 4, 2), name="b")]

    def visit(call, values):
        args, kwargs = call.fill_in(values)
        return keras.tree.flatten(call.operation(*args, **kwargs))

    outs = walk(model, new_inputs, visit)
    copy = keras.Model(pack_inputs(model, new_inputs), pack_outputs(model, outs))
    rng = np.random.default_rng(0)
    feed = {"a": rng.normal(size=(2, 4, 4, 2)), "b": rng.normal(size=(2, 4, 4, 2))}
    for want, got in zip(model(feed), copy(feed)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)


def test_walk_names_a_subclassed_nested_model():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    x = keras.Input((3,))
    model = keras.Model(x, Sub()(x), name="holder")
    with pytest.raises(UnsupportedModelError, match=r"nested model 'sub'.*subclassed"):
        walk(model, ["x"], lambda call, values: ["?"])


def test_pack_follows_the_models_input_and_output_structure():
    model, _ = _model()
    assert pack_inputs(model, [1, 2]) == {"a": 1, "b": 2}
    assert pack_outputs(model, [1, 2]) == [1, 2]
    single = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    graph = functional_of(single)
    assert pack_inputs(graph, ["x"]) == "x" and pack_outputs(graph, ["y"]) == "y"


# ------------------------------------------------------------------ models, tensors


def test_functional_of_each_kind_of_model():
    model, _ = _model()
    assert functional_of(model) is model
    seq = keras.Sequential([keras.Input((3,)), L.Dense(2, name="d")])
    graph = functional_of(seq)
    assert [c.operation.name for c in calls(graph)] == ["d"]
    assert functional_of(keras.Sequential([L.Dense(2)])) is None  # not built

    class Sub(keras.Model):
        def call(self, x):
            return x

    assert functional_of(Sub()) is None
    assert functional_of(L.Dense(2)) is None


def test_require_functional_says_what_to_do():
    with pytest.raises(UnsupportedModelError, match=r"^model 'seq': Sequential model 'seq' "
                                                    r"is not built.*keras.Input"):
        require_functional(keras.Sequential([L.Dense(2)], name="seq"), "model 'seq'")

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(UnsupportedModelError, match=r"^here: model 'sub' \(Sub\) is a "
                                                    r"subclassed Keras model.*Functional API"):
        require_functional(Sub(name="sub"), "here")


def test_producer_of():
    model, t = _model()
    assert producer_of(t["sb"]) is t["shared"]
    assert producer_of(t["f2"]) is t["inner"]
    assert type(producer_of(t["a"])).__name__ == "InputLayer"
    assert producer_of(t["a"]).name == "a"
    assert producer_of(np.zeros(3)) is None
    assert producer_of(keras.KerasTensor((1, 3))) is None  # in no graph


def test_is_ops_operation():
    model, _ = _model()
    by_name = {_name(c.operation): c.operation for c in calls(model)}
    assert is_ops_operation(by_name["multiply"])
    assert not is_ops_operation(by_name["add_l"])  # layers.Add, not ops.Add
    assert not is_ops_operation(by_name["shared"])


def test_check_input_refuses_what_the_layer_call_refuses():
    dense = L.Dense(2)
    dense.build((None, 4))
    check_input(dense, keras.KerasTensor((1, 4)))
    with pytest.raises(ValueError, match="incompatible"):
        check_input(dense, keras.KerasTensor((1, 5)))
    check_input(object(), keras.KerasTensor((1, 5)))  # no input spec: accepts all


@pytest.mark.parametrize("value, name", [
    (None, None),
    ("relu", "relu"),
    ({"module": "builtins", "class_name": "function", "config": "p>act",
      "registered_name": "function"}, "p>act"),
    ({"module": "keras.layers", "class_name": "ReLU", "config": {"name": "re_lu_9"}},
     "re_lu_9"),
    ({"class_name": "Thing", "config": {}}, "Thing"),
    ({"config": None}, "custom"),
    (np.tanh, "tanh"),
])
def test_activation_name(value, name):
    assert activation_name(value) == name


def test_activation_name_of_a_layer_config():
    assert activation_name(L.Dense(2, activation="relu6").get_config()["activation"]) == "relu6"
    assert activation_name(keras.activations.serialize(L.Dense(2).activation)) == "linear"


# --------------------------------------- the Keras private attributes the walker reads


def _small():
    x = keras.Input((4,), name="x")
    dense = L.Dense(3, name="fc")
    y = dense(x) + 1.0
    return keras.Model({"x": x}, [y], name="small"), x, dense, y


def test_keras_tensor_keras_history():
    model, x, dense, y = _small()
    h = dense.output
    history = getattr(h, "_keras_history", None)
    assert isinstance(history, tuple) and len(history) == 3, \
        f"Keras moved KerasTensor._keras_history (got {history!r}); {UPDATE}"
    assert history[0] is dense, \
        f"Keras moved KerasTensor._keras_history[0] (the producing operation); {UPDATE}"


def test_functional_class():
    try:
        from keras.src.models.functional import Functional
    except ImportError as exc:  # pragma: no cover - only on a Keras upgrade
        pytest.fail(f"Keras moved keras.src.models.functional.Functional ({exc}); {UPDATE}")
    model, *_ = _small()
    assert isinstance(model, Functional), \
        f"Keras moved Functional: keras.Model(inputs, outputs) is not one; {UPDATE}"


def test_functional_nodes_by_depth():
    model, x, dense, y = _small()
    nodes_by_depth = getattr(model, "_nodes_by_depth", None)
    assert isinstance(nodes_by_depth, dict), \
        f"Keras moved Functional._nodes_by_depth (got {nodes_by_depth!r}); {UPDATE}"
    # x -> fc -> add: depths 2, 1, 0 (edges to the output).
    names = {d: [_name(n.operation) for n in nodes] for d, nodes in nodes_by_depth.items()}
    assert names == {0: ["add"], 1: ["fc"], 2: ["x"]}, \
        f"Keras changed Functional._nodes_by_depth (got {names}); {UPDATE}"


def test_node_attributes():
    model, x, dense, y = _small()
    (add,) = model._nodes_by_depth[0]
    (fc,) = model._nodes_by_depth[1]
    (inp,) = model._nodes_by_depth[2]
    for attr in ("operation", "is_input", "input_tensors", "outputs", "arguments"):
        assert hasattr(add, attr), f"Keras moved Node.{attr}; {UPDATE}"
    assert inp.is_input is True and fc.is_input is False, \
        f"Keras changed Node.is_input; {UPDATE}"
    assert list(fc.input_tensors) == [x] and list(fc.outputs) == [dense.output], \
        f"Keras changed Node.input_tensors / Node.outputs; {UPDATE}"
    arguments = add.arguments
    for attr in ("args", "kwargs", "fill_in"):
        assert hasattr(arguments, attr), f"Keras moved Node.arguments.{attr}; {UPDATE}"
    assert tuple(arguments.args) == (dense.output, 1.0) and dict(arguments.kwargs) == {}, \
        f"Keras changed Node.arguments.args / kwargs; {UPDATE}"
    assert arguments.fill_in({id(dense.output): "h"}) == (("h", 1.0), {}), \
        f"Keras changed Node.arguments.fill_in; {UPDATE}"


def test_sequential_functional():
    from keras.src.models.functional import Functional

    seq = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    graph = getattr(seq, "_functional", None)
    assert isinstance(graph, Functional), \
        f"Keras moved Sequential._functional (got {graph!r}); {UPDATE}"
    assert getattr(keras.Sequential([L.Dense(2)]), "_functional", "missing") is None, \
        f"Keras changed Sequential._functional of an unbuilt model; {UPDATE}"


def test_functional_inputs_and_outputs_struct():
    model, x, dense, y = _small()
    ins = getattr(model, "_inputs_struct", None)
    outs = getattr(model, "_outputs_struct", None)
    assert isinstance(ins, dict) and list(ins) == ["x"] and ins["x"] is x, \
        f"Keras moved Functional._inputs_struct (got {ins!r}); {UPDATE}"
    assert isinstance(outs, list) and len(outs) == 1 and outs[0] is y, \
        f"Keras moved Functional._outputs_struct (got {outs!r}); {UPDATE}"


def test_ops_operations_live_in_keras_src_ops():
    model, *_ = _small()
    op = model._nodes_by_depth[0][0].operation
    module = type(op).__module__
    assert module.startswith("keras.src.ops."), \
        f"Keras moved keras.ops operations to {module!r}; {UPDATE}"
    assert not type(model.get_layer("fc")).__module__.startswith("keras.src.ops."), \
        f"Keras moved layers under keras.src.ops; {UPDATE}"


def test_layer_assert_input_compatibility():
    dense = L.Dense(2)
    dense.build((None, 4))
    check = getattr(dense, "_assert_input_compatibility", None)
    assert callable(check), f"Keras moved Layer._assert_input_compatibility; {UPDATE}"
    with pytest.raises(ValueError):
        check(keras.KerasTensor((1, 5)))


def test_keras_mask_of_a_symbolic_tensor():
    tokens = keras.Input((6,), dtype="int32")
    masked = L.Embedding(10, 4, mask_zero=True)(tokens)
    plain = L.Embedding(10, 4)(tokens)
    mask = keras_mask_of(masked)
    assert mask is not None and tuple(mask.shape) == (None, 6), \
        f"Keras moved the Keras mask of a symbolic tensor (got {mask!r}); {UPDATE}"
    assert keras_mask_of(plain) is None and keras_mask_of(tokens) is None


# ------------------------------------------------------------ the one place rule

_PRIVATE_KERAS = re.compile(
    r"_keras_history|keras\.src|_nodes_by_depth|_inbound_nodes|_operations\b"
    r"|_inputs_struct|_outputs_struct|_assert_input_compatibility|\._functional\b")


def test_only_the_walker_reads_keras_internals():
    root = pathlib.Path(__file__).resolve().parents[1]
    hits = sorted(
        f"{path.relative_to(root)}:{i}"
        for package in ("latency_lab", "regularizers")
        for path in (root / package).rglob("*.py")
        if path.name != "keras_walker.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if _PRIVATE_KERAS.search(line)
    )
    assert hits == [], f"Keras internals read outside latency_lab/keras_walker.py: {hits}"
