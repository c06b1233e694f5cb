"""Every op kind's microbenchmark turns its weights into tensors through
`op_kinds.base.weight_tensor`: constants by default (what LiteRT converts), the
program's variables inside a `WeightVariables` context (how the keras runtime compiles
it, as a model's weights are). A weight turned into a constant any other way would be
folded by XLA under the keras runtime, so each registered kind's small config (the
SMALL table of test_bench, which covers every kind) is checked here."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from latency_lab import op_kinds  # noqa: E402
from latency_lab.op_kinds.base import WeightVariables, input_dtype, random_weights  # noqa: E402
from test_bench import SMALL  # noqa: E402  (one small config per registered kind)


class RecordingRng:
    """A numpy Generator that keeps every array it hands out: the weights a `build`
    draws (`random_weights`), whatever helper it draws them through."""

    def __init__(self, seed=0):
        self._rng = np.random.default_rng(seed)
        self.arrays = []

    def __getattr__(self, name):
        attr = getattr(self._rng, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            out = attr(*args, **kwargs)
            if isinstance(out, np.ndarray) and out.ndim >= 1:
                self.arrays.append(out)
            return out

        return call


def _built(build, cfg):
    rng = RecordingRng()
    shapes, fn = build(cfg, rng)
    return shapes, fn, sorted(a.shape for a in rng.arrays)


def _variable_shapes(shapes, fn):
    """Shapes of the variables a symbolic call of `fn` makes (as the keras runtime
    does before compiling)."""
    weights = WeightVariables("test")
    with weights.creating():
        fn(*[keras.KerasTensor(s, dtype=input_dtype(s)) for s in shapes])
    return weights, sorted(tuple(v.shape) for v in weights.variables)


def _graph_constants(shapes, fn, weights=None):
    """Shapes of the Const nodes of `fn` traced by TensorFlow, with its weights as
    constants or (given `weights`) as those variables."""
    import tensorflow as tf

    def traced(*xs):
        if weights is None:
            return fn(*xs)
        with weights.reading():
            return fn(*xs)

    graph = tf.function(traced, autograph=False).get_concrete_function(
        *[tf.TensorSpec(s, input_dtype(s)) for s in shapes]).graph
    return [tuple(op.outputs[0].shape) for op in graph.get_operations() if op.type == "Const"]


def weights_left_constant(build, cfg):
    """What of `build`'s weights would not be variables in the keras runtime: arrays
    drawn from the rng with no variable made for them, and graph constants of a
    weight's shape (or of 64 elements or more: no shape constant is that big)."""
    shapes, fn, drawn = _built(build, cfg)
    weights, made = _variable_shapes(shapes, fn)
    problems = []
    if made != drawn:
        problems.append(f"weights drawn {drawn}, variables made {made}")
    if keras.backend.backend() == "tensorflow":
        big = [s for s in _graph_constants(shapes, fn, weights)
               if s in drawn or int(np.prod(s)) >= 64]
        if big:
            problems.append(f"constants of weight size in the traced graph: {big}")
    return problems


@pytest.mark.parametrize("op", sorted(op_kinds.names()))
def test_every_kinds_weights_become_variables_in_the_keras_runtimes_context(op):
    assert op in SMALL, f"add a SMALL config for op kind {op!r} in tests/test_bench.py"
    assert weights_left_constant(op_kinds.get(op).build, SMALL[op]) == []


@pytest.mark.parametrize("op", ["conv2d", "depthwise", "depthwise_multiplier",
                                "transpose_conv", "dense", "weight_stream"])
def test_kinds_with_weights_have_them_and_compute_the_same_with_variables(op):
    """The kinds that have weights make them (so the check above is not vacuous), and
    the program computes the same with them as variables as with them as constants."""
    shapes, fn, drawn = _built(op_kinds.get(op).build, SMALL[op])
    assert drawn
    weights, made = _variable_shapes(shapes, fn)
    assert made == drawn
    xs = [np.random.default_rng(1).standard_normal(s).astype(np.float32) for s in shapes]
    want = keras.ops.convert_to_numpy(fn(*xs))
    with weights.reading():
        got = keras.ops.convert_to_numpy(fn(*xs))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.only_backend("tensorflow")
def test_by_default_weights_are_graph_constants_for_the_litert_conversion():
    """Outside the context the weights stay constants: what the TFLite converter
    folds and fuses (and what the check above would see if a kind bypassed it)."""
    shapes, fn, drawn = _built(op_kinds.get("conv2d").build, SMALL["conv2d"])
    assert set(drawn) <= set(_graph_constants(shapes, fn))


def _constant_conv(cfg, rng):
    """A conv program that turns its kernel into a constant itself."""
    kernel = random_weights(rng, cfg["k"], cfg["k"], cfg["cin"], cfg["cout"])

    def fn(x):
        return keras.ops.conv(x, keras.ops.convert_to_tensor(kernel), padding="same")

    return [(1, cfg["h"], cfg["w"], cfg["cin"])], fn


def test_the_check_finds_a_weight_that_bypasses_weight_tensor():
    problems = weights_left_constant(_constant_conv, SMALL["conv2d"])
    assert problems and "variables made []" in problems[0]
    if keras.backend.backend() == "tensorflow":
        assert any("(3, 3, 8, 16)" in p for p in problems)
