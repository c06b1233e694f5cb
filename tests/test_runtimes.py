"""latency_lab.runtimes: real (tiny) LiteRT and Keras measurements, the converted
kernels LiteRT really runs, and the registry's errors. No wall-clock assertions: only
that figures are positive and finite and that there is one per program."""

import math

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


def test_litert_converts_a_chunk_once_across_passes(monkeypatch):
    """A profile times each chunk of ops in several passes; the conversion (the slow
    part) is done once per chunk and the measurements still come from a fresh
    interpreter each time."""
    from latency_lab.runtimes import litert

    calls = []
    real = litert.convert_programs
    monkeypatch.setattr(litert, "convert_programs", lambda progs: calls.append(1) or real(progs))
    rt = runtimes.get("litert", threads=1)
    progs = programs()
    first = rt.measure_ops(progs, FAST)
    second = rt.measure_ops(progs, FAST)
    assert len(calls) == 1
    assert len(first) == len(second) == len(progs)
    for m in first + second:
        assert_good(m)
    rt.measure_ops(progs[:2], FAST)  # another chunk: converted on its own
    assert len(calls) == 2


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
    from latency_lab.convert import convert_programs

    (prog,) = programs(CONFIGS[:1])
    ops = _builtin_ops(convert_programs([prog]))
    # conv + bias add + relu: one CONV_2D with the bias as its third input and the
    # activation fused; no separate ADD or RELU kernel.
    assert ops == ["CONV_2D"]


def test_depthwise_bias_relu6_converts_to_one_fused_kernel():
    from latency_lab.convert import convert_programs

    (prog,) = programs(CONFIGS[1:2])
    assert _builtin_ops(convert_programs([prog])) == ["DEPTHWISE_CONV_2D"]


def test_transpose_conv_and_depth_multiplier_convert_to_one_kernel_each():
    from latency_lab.convert import convert_programs

    (prog,) = programs([("transpose_conv", dict(h=4, w=4, cin=8, cout=4, k=2, s=2))])
    assert _builtin_ops(convert_programs([prog])) == ["TRANSPOSE_CONV"]
    (prog,) = programs([("depthwise_multiplier", dict(h=4, w=4, c=3, dm=2, k=3, s=1))])
    assert _builtin_ops(convert_programs([prog])) == ["DEPTHWISE_CONV_2D"]


def test_resize_converts_to_the_kernel_of_its_kind():
    from latency_lab.convert import convert_programs

    for kind, kernel in (("nearest", "RESIZE_NEAREST_NEIGHBOR"), ("bilinear", "RESIZE_BILINEAR")):
        (prog,) = programs([("resize", dict(h=4, w=4, c=3, scale=2, kind=kind))])
        assert _builtin_ops(convert_programs([prog])) == [kernel]


def test_each_activation_converts_to_the_kernel_the_mapping_times_with_it():
    """A standalone activation sample is one kernel, the one `ACTIVATION_KERNELS`
    maps back to it (swish, two kernels under LiteRT, is timed as those)."""
    from latency_lab.op_kinds.activation import ACTIVATION_KERNELS
    from latency_lab.convert import convert_programs

    for kernel, fn in ACTIVATION_KERNELS.items():
        (prog,) = programs([("activation", dict(h=4, w=4, c=8, fn=fn))])
        assert _builtin_ops(convert_programs([prog])) == [kernel], fn


def test_default_interpreter_shows_a_delegate_node():
    """Why `_builtin_ops` avoids the default resolver: after allocation XNNPACK adds a
    DELEGATE node, so the raw list is not the model's op list."""
    from ai_edge_litert.interpreter import Interpreter

    from latency_lab.convert import convert_programs

    (prog,) = programs(CONFIGS[:1])
    it = Interpreter(model_content=convert_programs([prog]))
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
