"""latency_lab.runtimes: real (tiny) LiteRT and Keras measurements, the converted
kernels LiteRT really runs, and the registry's errors. No wall-clock assertions: only
that figures are positive and finite and that there is one per program."""

import json
import math
import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from latency_lab import op_kinds, runtimes
from latency_lab.errors import InputSpecError, MeasurementError
from latency_lab.runtimes import OpProgram
from latency_lab.timing import Measurement, TimingConfig

CONFIGS = [
    ("conv2d", dict(h=8, w=8, cin=8, cout=8, k=3, s=1)),
    ("depthwise", dict(h=8, w=8, c=8, k=3, s=1)),
    ("add", dict(h=8, w=8, c=8, broadcast=False)),
    ("dense", dict(rows=4, cin=8, cout=8)),
]

# Cheapest settings the harness accepts: these tests check plumbing, not speed.
FAST = TimingConfig(warmup_runs=1, min_time_s=0.002, repeats=3, max_retries=0)
ROOT = Path(__file__).resolve().parents[1]


def programs(configs=CONFIGS):
    rng = np.random.default_rng(0)
    out = []
    for op, cfg in configs:
        shapes, fn = op_kinds.get(op).build(cfg, rng)
        out.append(OpProgram(f"{op}|{sorted(cfg.items())}", shapes, fn))
    return out


def assert_good(m):
    assert isinstance(m, Measurement)
    assert math.isfinite(m.median_s) and m.median_s > 0
    assert math.isfinite(m.iqr_s) and m.iqr_s >= 0
    assert len(m.raw_s) == m.repeats >= 3
    assert all(math.isfinite(v) and v > 0 for v in m.raw_s)


# ------------------------------------------------------------------- litert


def test_litert_measures_each_program_once():
    rt = runtimes.get("litert", threads=1)
    progs = programs()
    seen = []
    results = rt.measure_ops(progs, FAST, lambda p, m: seen.append((p.key, m)))
    assert len(results) == len(progs)
    assert [k for k, _ in seen] == [p.key for p in progs]
    for m in results:
        assert_good(m)
    assert [m for _, m in seen] == results


def test_litert_converts_each_program_once_across_passes(monkeypatch):
    """A profile times each chunk of ops in several passes; the conversion (the slow
    part) is done once per program, also when it comes back in another chunk, and the
    measurements still come from a fresh interpreter each time."""
    from latency_lab.runtimes import litert

    calls = []
    real = litert.convert_program
    monkeypatch.setattr(litert, "convert_program",
                        lambda prog: calls.append(prog.key) or real(prog))
    rt = runtimes.get("litert", threads=1)
    progs = programs()
    first = rt.measure_ops(progs, FAST)
    second = rt.measure_ops(progs, FAST)
    assert calls == [p.key for p in progs]
    assert len(first) == len(second) == len(progs)
    for m in first + second:
        assert_good(m)
    rt.measure_ops(progs[:2], FAST)  # another chunk of the same programs
    assert len(calls) == len(progs)


def test_a_converted_program_takes_its_inputs_in_order():
    """Two inputs of one shape: the timed model must see them as the program declares
    them (a - 2b, not b - 2a)."""
    from latency_lab.convert import convert_program
    from latency_lab.runtimes.base import OpProgram
    from latency_lab.runtimes.litert import interpreter, program_call

    prog = OpProgram("sub", [(1, 4), (1, 4)], lambda a, b: a - 2.0 * b)
    it, call = program_call(interpreter(convert_program(prog), 1), prog, np.random.default_rng(0))
    a, b = prog.random_inputs(np.random.default_rng(0))
    call()
    (out,) = it.get_output_details()
    np.testing.assert_allclose(it.get_tensor(out["index"]), a - 2.0 * b, rtol=1e-6)


def _tiny_models(n=2):
    import keras

    out = []
    for i in range(n):
        x = keras.Input((8, 8, 3))
        y = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4 + 4 * i, 3)(x))
        out.append(keras.Model(x, y))
    return out


@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
@pytest.mark.parametrize("name", ["litert", "keras"])
def test_measure_models_times_each_model(name):
    models = _tiny_models()
    results = runtimes.get(name, threads=1).measure_models(models, FAST)
    assert len(results) == 2
    for m in results:
        assert_good(m)


def test_litert_times_models_and_op_programs_through_one_call_path(monkeypatch):
    """A network and the samples that predict it are timed alike (`raw_invoke`, no
    Python-side check per call), and the raw call really runs the model."""
    from latency_lab.runtimes import litert

    wrapped = []
    real = litert.raw_invoke

    def spy(it):
        wrapped.append(it)
        return real(it)

    monkeypatch.setattr(litert, "raw_invoke", spy)
    rt = runtimes.get("litert", threads=1)
    models = _tiny_models()
    rt.measure_model(models[0], FAST)
    rt.measure_models(models, FAST)
    rt.measure_ops(programs(CONFIGS[:1]), FAST)
    assert len(wrapped) == 4
    it = litert.interpreter(litert.convert_keras_model(models[0]), 1)
    it.allocate_tensors()
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    out = it.get_output_details()[0]["index"]
    call = litert.raw_invoke(it)
    it.set_tensor(out, np.zeros_like(it.get_tensor(out)))  # the call must write it again
    call()
    np.testing.assert_allclose(it.get_tensor(out), models[0](x).numpy(), rtol=1e-4, atol=1e-5)


def test_litert_quick_timing_config():
    rt = runtimes.get("litert", threads=1)
    (m,) = rt.measure_ops(programs(CONFIGS[2:3]), TimingConfig.quick())
    assert_good(m)


def test_litert_info_records_what_ran():
    info = runtimes.get("litert", threads=2).info()
    assert info["name"] == "litert" and info["threads"] == 2
    assert info["backend"] == "xnnpack" and info["device"] == "cpu"
    assert info["version"] and info["version"] != "unknown"


def _builtin_ops(model_bytes):
    """Op names of subgraph 0 as the converter wrote them.

    `Interpreter._get_ops_details()` lists the nodes of the primary subgraph. With the
    default op resolver, allocating tensors applies the XNNPACK delegate, which appends
    a DELEGATE node standing for the nodes it took over. Building the interpreter with
    `OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES` keeps the plain builtin kernels,
    so the list is exactly the model's op list (the fusion the converter did)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model_bytes,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return [d["op_name"] for d in it._get_ops_details()]


def test_conv_bias_relu_converts_to_one_fused_conv_kernel():
    from latency_lab.convert import convert_program

    (prog,) = programs(CONFIGS[:1])
    ops = _builtin_ops(convert_program(prog))
    # conv + bias add + relu: one CONV_2D with the bias as its third input and the
    # activation fused; no separate ADD or RELU kernel.
    assert ops == ["CONV_2D"]


def test_depthwise_bias_relu6_converts_to_one_fused_kernel():
    from latency_lab.convert import convert_program

    (prog,) = programs(CONFIGS[1:2])
    assert _builtin_ops(convert_program(prog)) == ["DEPTHWISE_CONV_2D"]


def test_transpose_conv_and_depth_multiplier_convert_to_one_kernel_each():
    from latency_lab.convert import convert_program

    (prog,) = programs([("transpose_conv", dict(h=4, w=4, cin=8, cout=4, k=2, s=2))])
    assert _builtin_ops(convert_program(prog)) == ["TRANSPOSE_CONV"]
    (prog,) = programs([("depthwise_multiplier", dict(h=4, w=4, c=3, dm=2, k=3, s=1))])
    assert _builtin_ops(convert_program(prog)) == ["DEPTHWISE_CONV_2D"]


def test_resize_converts_to_the_kernel_of_its_kind():
    from latency_lab.convert import convert_program

    for kind, kernel in (("nearest", "RESIZE_NEAREST_NEIGHBOR"), ("bilinear", "RESIZE_BILINEAR")):
        (prog,) = programs([("resize", dict(h=4, w=4, c=3, scale=2, kind=kind))])
        assert _builtin_ops(convert_program(prog)) == [kernel]


def test_each_activation_converts_to_the_kernel_the_mapping_times_with_it():
    """A standalone activation sample is one kernel, the one `ACTIVATION_KERNELS`
    maps back to it (swish, two kernels under LiteRT, is timed as those)."""
    from latency_lab.op_kinds.activation import ACTIVATION_KERNELS
    from latency_lab.convert import convert_program

    for kernel, fn in ACTIVATION_KERNELS.items():
        (prog,) = programs([("activation", dict(h=4, w=4, c=8, fn=fn))])
        assert _builtin_ops(convert_program(prog)) == [kernel], fn


def test_default_interpreter_shows_a_delegate_node():
    """Why `_builtin_ops` avoids the default resolver: after allocation XNNPACK adds a
    DELEGATE node, so the raw list is not the model's op list."""
    from ai_edge_litert.interpreter import Interpreter

    from latency_lab.convert import convert_program

    (prog,) = programs(CONFIGS[:1])
    it = Interpreter(model_content=convert_program(prog))
    it.allocate_tensors()
    names = [d["op_name"] for d in it._get_ops_details()]
    assert "CONV_2D" in names
    assert set(names) <= {"CONV_2D", "DELEGATE"}


def test_litert_gpu_is_refused():
    with pytest.raises(MeasurementError, match="CPU"):
        runtimes.get("litert", threads=1, device="gpu")


# -------------------------------------------------------------------- keras
# In a test process TensorFlow has usually run ops already, so the runtime cannot pin
# its thread pools and says so (RuntimeWarning); that is expected here.


@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
def test_keras_runtime_measures_an_op():
    rt = runtimes.get("keras", threads=1)
    info = rt.info()
    assert info["name"] == "keras" and info["backend"] == "tensorflow"
    (m,) = rt.measure_ops(programs(CONFIGS[2:3]), FAST)
    assert_good(m)


@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
def test_keras_runtime_measures_a_model():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    m = runtimes.get("keras", threads=1).measure_model(model, FAST)
    assert_good(m)


@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
def test_keras_runtime_compiles_each_program_and_model_once():
    """Profiles time everything in several passes; tracing and compiling again every
    pass would cost more than the timing."""
    import keras

    rt = runtimes.get("keras", threads=1)
    compiled = []
    real = rt._compile
    rt._compile = lambda fn, jit: compiled.append(fn) or real(fn, jit)
    progs = programs(CONFIGS[2:4])
    for _ in range(2):
        for m in rt.measure_ops(progs, FAST):
            assert_good(m)
    assert len(compiled) == 2
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    for _ in range(2):
        assert_good(rt.measure_model(model, FAST))
    assert len(compiled) == 3


# ------------------------------------------------- op weights as variables (keras)
# XLA constant-folds work on constants: a full keras profile grew past 20 GB folding an
# 11x11x575x634 conv kernel, and timed what no model runs (a model's weights are
# variables, inputs of the compiled computation). So the keras runtime compiles op
# programs with their weights as variables; LiteRT keeps them constants (the tests
# above: the converter still fuses bias and activation into the conv).

WEIGHTED = [("conv2d", dict(h=6, w=6, cin=8, cout=16, k=3, s=1)),
            ("dense", dict(rows=4, cin=8, cout=12))]
WEIGHT_SHAPES = [[(3, 3, 8, 16), (16,)], [(8, 12), (12,)]]


def test_weight_tensor_is_a_constant_by_default_and_the_programs_variable_in_its_context():
    import keras

    from latency_lab.op_kinds.base import WeightVariables, weight_tensor

    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    const = weight_tensor(w)
    assert not isinstance(const, keras.Variable)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(const), w)
    weights = WeightVariables("prog")
    with weights.creating():
        v = weight_tensor(w)
        assert isinstance(v, keras.Variable) and not v.trainable
        assert weight_tensor(w) is v  # one variable per array
    with weights.reading():  # tracing: the same variable, and no new ones
        assert weight_tensor(w) is v
        with pytest.raises(MeasurementError, match=r"'prog'.*shape \(3,\).*`build`"):
            weight_tensor(np.zeros(3, np.float32))
    assert weights.variables == [v]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), w)
    assert not isinstance(weight_tensor(w), keras.Variable)  # the context is over


@pytest.mark.only_backend("tensorflow")
@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
def test_keras_runtime_compiles_op_weights_as_variables_with_the_constants_values():
    import tensorflow as tf

    rt = runtimes.get("keras", threads=1)
    rng = np.random.default_rng(1)
    for prog, shapes in zip(programs(WEIGHTED), WEIGHT_SHAPES):
        compiled = rt._compiled_op(prog)
        concrete = compiled.get_concrete_function(
            *[tf.TensorSpec(s, tf.float32) for s in prog.input_shapes])
        consts = [tuple(op.outputs[0].shape) for op in concrete.graph.get_operations()
                  if op.type == "Const"]
        assert not set(consts) & set(shapes), (prog.key, consts)
        assert sorted(tuple(v.shape) for v in concrete.variables) == sorted(shapes)
        xs = [rng.standard_normal(s).astype(np.float32) for s in prog.input_shapes]
        want = np.asarray(prog.fn(*xs))  # eager, weights as constants
        with rt._device_scope():
            got = np.asarray(compiled(*[tf.constant(x) for x in xs]))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
def test_keras_runtime_makes_a_programs_variables_once_not_per_call_or_pass(monkeypatch):
    from latency_lab.op_kinds.base import WeightVariables

    seen = []
    real = WeightVariables.variable
    monkeypatch.setattr(WeightVariables, "variable",
                        lambda self, array: seen.append(real(self, array)) or seen[-1])
    rt = runtimes.get("keras", threads=1)
    progs = programs(WEIGHTED)
    for _ in range(2):
        for m in rt.measure_ops(progs, FAST):
            assert_good(m)
    assert len({id(v) for v in seen}) == sum(map(len, WEIGHT_SHAPES))
    assert len(seen) > sum(map(len, WEIGHT_SHAPES))  # the traces asked for them again


# Under another backend, in a child process: JAX embeds the arrays a jitted function
# closes over as HLO constants, so there the weights must be arguments.
_OTHER_BACKEND = textwrap.dedent("""
    import json, re
    import numpy as np
    import keras
    from latency_lab import op_kinds
    from latency_lab.runtimes import OpProgram
    from latency_lab.runtimes.keras_runtime import KerasRuntime
    from latency_lab.timing import TimingConfig

    cfg = dict(h=6, w=6, cin=4, cout=8, k=3, s=1)
    shapes, fn = op_kinds.get("conv2d").build(cfg, np.random.default_rng(0))
    prog = OpProgram("conv", shapes, fn)
    x = np.random.default_rng(1).standard_normal(shapes[0]).astype(np.float32)
    want = keras.ops.convert_to_numpy(fn(x))
    rt = KerasRuntime(threads=1)
    compiled = rt._compiled_op(prog)
    with rt._device_scope():
        got = keras.ops.convert_to_numpy(compiled(keras.ops.convert_to_tensor(x)))
    out = {"backend": keras.backend.backend(), "max_diff": float(np.max(np.abs(got - want)))}
    if out["backend"] == "jax":
        # the jitted function, with the weights' values bound first (if they are)
        jitted, bound = getattr(compiled, "func", compiled), getattr(compiled, "args", ())
        text = jitted.lower(*bound, x).as_text()
        main = next(l for l in text.splitlines() if "func.func public @main" in l)
        out["arguments"] = re.findall(r"tensor<([0-9x]+)xf32>", main.split("->")[0])
        out["constants"] = re.findall(r"constant dense<[^>]*> : tensor<([0-9x]+)xf32>", text)
    fast = TimingConfig(warmup_runs=1, min_time_s=0.002, repeats=3, max_retries=0)
    (m,) = rt.measure_ops([prog], fast)
    out["median_s"] = m.median_s
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_runtime_op_weights_under_jax_and_torch(backend):
    if find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", _OTHER_BACKEND], capture_output=True,
                          text=True, timeout=600, env=env, cwd=ROOT)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["backend"] == backend
    assert out["max_diff"] < 1e-5 and math.isfinite(out["median_s"]) and out["median_s"] > 0
    if backend == "jax":
        assert out["arguments"] == ["3x3x4x8", "8", "1x6x6x4"]  # kernel, bias, input
        assert out["constants"] == []


# A whole model under JAX, in a child process: jax.jit of `model(x)` would embed the
# weights as constants too, so its weights (trainable and not: BatchNorm's moving
# statistics) are arguments, as in Keras' own JAX trainer (`stateless_call`), bound once
# per measurement on the device the model runs on. The model is built on a second host
# device: its weights are moved to the timed one once, not by jax.jit on every call.
_JAX_MODEL = textwrap.dedent("""
    import json, re
    import numpy as np
    import jax, keras
    from latency_lab.runtimes.keras_runtime import KerasRuntime
    from latency_lab.timing import TimingConfig

    rng = np.random.default_rng(0)
    with keras.device("cpu:1"):
        inputs = keras.Input((6, 6, 3))
        y = keras.layers.Conv2D(8, 3)(inputs)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.GlobalAveragePooling2D()(y)
        model = keras.Model(inputs, keras.layers.Dense(5)(y))
        for v in model.weights:  # BN's statistics too, so that they count
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype(np.float32))
    x = rng.standard_normal((1, 6, 6, 3)).astype(np.float32)
    rt = KerasRuntime(threads=1)
    out = {"backend": keras.backend.backend()}

    def forward_output(compiled):
        with rt._device_scope():
            got = compiled(keras.ops.convert_to_tensor(x))
        return float(np.max(np.abs(keras.ops.convert_to_numpy(got)
                                   - keras.ops.convert_to_numpy(model(x, training=False)))))

    compiled, _ = rt._model_work(model)
    jitted, bound = getattr(compiled, "func", compiled), getattr(compiled, "args", ())
    text = jitted.lower(*bound, x).as_text()
    main = next(l for l in text.splitlines() if "func.func public @main" in l)
    out["arguments"] = re.findall(r"tensor<([0-9x]+)xf32>", main.split("->")[0])
    out["constants"] = re.findall(r"constant dense<[^>]*> : tensor<([0-9x]+)xf32>", text)
    cpu0, cpu1 = jax.devices("cpu")[:2]
    out["built_on_cpu1"] = all(v.value.devices() == {cpu1} for v in model.weights)
    out["bound_on_cpu0"] = all(a.devices() == {cpu0} for a in jax.tree_util.tree_leaves(bound))
    out["max_diff"] = forward_output(compiled)
    # new weights are read by the next measurement, without compiling again
    model.layers[-1].bias.assign(np.full(5, 3.0, np.float32))
    again, _ = rt._model_work(model)
    out["same_jitted"] = getattr(again, "func", again) is jitted
    out["max_diff_new_weights"] = forward_output(again)
    fast = TimingConfig(warmup_runs=1, min_time_s=0.002, repeats=3, max_retries=0)
    out["median_s"] = rt.measure_model(model, fast).median_s
    print("RESULT " + json.dumps(out))
""")


def test_keras_runtime_model_weights_are_arguments_under_jax():
    if find_spec("jax") is None:
        pytest.skip("jax is not installed")
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="", XLA_FLAGS=flags.strip())
    proc = subprocess.run([sys.executable, "-c", _JAX_MODEL], capture_output=True,
                          text=True, timeout=600, env=env, cwd=ROOT)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["backend"] == "jax"
    weights = ["3x3x3x8", "8", "8", "8", "8x5", "5",  # conv, BN gamma and beta, dense
               "8", "8"]  # BN moving mean and variance
    assert out["arguments"] == weights + ["1x6x6x3"], out
    assert not set(out["constants"]) & set(weights), out
    assert out["built_on_cpu1"] and out["bound_on_cpu0"], out
    assert out["max_diff"] < 1e-5 and out["max_diff_new_weights"] < 1e-5, out
    assert out["same_jitted"], out
    assert math.isfinite(out["median_s"]) and out["median_s"] > 0


# ------------------------------------------------------------------ registry


def test_unknown_runtime_names_the_known_ones():
    with pytest.raises(InputSpecError, match="unknown runtime 'tflite'.*keras.*litert"):
        runtimes.get("tflite")
    assert runtimes.available() == ["keras", "litert"]


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_bad_thread_counts(threads):
    with pytest.raises(InputSpecError, match="threads"):
        runtimes.get("litert", threads=threads)


def test_the_keras_runtime_keeps_a_bounded_number_of_compiled_ops(monkeypatch):
    """Each compiled op holds its weights; a full profile's ~960 grew a process past
    the machine's memory. The least recently used are dropped and recompiled."""
    from latency_lab.runtimes import keras_runtime
    from latency_lab.runtimes.base import OpProgram

    monkeypatch.setattr(keras_runtime, "COMPILED_OPS_KEPT", 2)
    rt = keras_runtime.KerasRuntime()
    compiled = []
    monkeypatch.setattr(rt, "_compile", lambda fn, jit: compiled.append(fn) or fn)
    progs = [OpProgram(f"op{i}", [(1, 2)], (lambda i: lambda x: x * i)(i)) for i in range(3)]
    for p in progs[:2] + progs[:1] + progs[2:] + progs[:1]:
        rt._compiled_op(p)
    assert list(rt._compiled_ops) == ["op2", "op0"]
    assert len(compiled) == 3  # op0 was kept as the most recently used


def test_a_runtime_that_cannot_run_at_the_profiles_thread_count_is_refused(monkeypatch):
    """TensorFlow's thread pools are fixed once it has run an op: a keras runtime
    asked for 1 thread in such a process runs on all cores. Measuring against a
    one-thread profile with it is refused, naming both counts and the fix."""
    from types import SimpleNamespace

    class TwoThreads:
        threads = 2

    monkeypatch.setattr(runtimes, "get", lambda name, **kw: TwoThreads())
    prof = SimpleNamespace(threads=1, runtime_name="keras", runtime={"device": "cpu"},
                           device_name="hand-made cpu")
    with pytest.raises(MeasurementError, match=r"1 thread\(s\).*runs with 2.*fresh process"):
        runtimes.for_profile(prof)
    TwoThreads.threads = 1
    assert runtimes.for_profile(prof).threads == 1


# ------------------------------------------------------------- planned programs


def _dense_output(planned):
    prog = planned.program()
    x = np.ones(prog.input_shapes[0], np.float32)
    return np.asarray(prog.fn(x))


def test_a_planned_program_is_plain_data_that_builds_the_same_weights_anywhere():
    """A conversion worker gets the pickled (op, config, seed) and must build the
    program the profile means: the same weights, whatever was built before."""
    import pickle

    from latency_lab.runtimes.base import PlannedProgram

    cfg = dict(rows=2, cin=3, cout=4)
    planned = PlannedProgram("dense|a", "dense", cfg, seed=5)
    copy = pickle.loads(pickle.dumps(planned))
    assert copy.key == "dense|a" and copy.config == cfg and copy.seed == 5
    PlannedProgram("dense|b", "dense", cfg, seed=5).program()  # another one in between
    np.testing.assert_array_equal(_dense_output(copy), _dense_output(planned))
    assert not np.allclose(_dense_output(PlannedProgram("dense|a", "dense", cfg, seed=6)),
                           _dense_output(planned))
    # built once, and a pickle never carries the built closure
    assert planned.program() is planned.program()
    assert "_built" not in pickle.loads(pickle.dumps(planned)).__getstate__()


def test_litert_converts_planned_programs_ahead_in_workers_and_times_them_unbuilt(monkeypatch):
    """`convert_ahead` converts in the pool's processes; timing those programs later
    neither converts nor builds them in this process (no weights drawn)."""
    from latency_lab.bench.plans import PlannedSample
    from latency_lab.convert.pool import ConversionPool
    from latency_lab.op_kinds.base import same_out
    from latency_lab.profiler import op_programs
    from latency_lab.runtimes import litert
    from latency_lab.runtimes.base import PlannedProgram

    planned = op_programs([PlannedSample(op, cfg, "table") for op, cfg in CONFIGS], seed=0)
    rt = runtimes.get("litert", threads=1)
    with ConversionPool(2) as pool:
        pool.map(same_out, [(1, 1), (1, 1)])  # workers running: worth it for 4 programs
        pending = rt.convert_ahead(planned, pool)
        pending.wait()
        assert pending.done()

    def refuse(*_):
        raise AssertionError("converted or built in the timing process")

    monkeypatch.setattr(litert, "convert_program", refuse)
    monkeypatch.setattr(PlannedProgram, "program", refuse)
    results = rt.measure_ops(op_programs(
        [PlannedSample(op, cfg, "table") for op, cfg in CONFIGS], seed=0), FAST)
    assert len(results) == len(CONFIGS)
    for m in results:
        assert_good(m)
