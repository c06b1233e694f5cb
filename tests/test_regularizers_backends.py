"""The regularizers on every Keras backend: a short model.fit with each regularizer
lowers its cost; under JAX / PyTorch the LiteRT binding gives TensorFlow's kernel
list; data-parallel training under JAX (keras.distribution) without TensorFlow.

`make test` runs this file under TensorFlow and again with KERAS_BACKEND=jax."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
L = keras.layers

from latency_lab.errors import MeasurementError  # noqa: E402
from latency_lab.kernels import work_items  # noqa: E402
from latency_lab.convert.child import convert_in_tensorflow_subprocess  # noqa: E402
from test_latency_regularizer import _measured_profile  # noqa: E402  (a small LiteRT table)
from regularizers import (  # noqa: E402
    FlopsRegularizer,
    LatencyRegularizer,
    ModelSizeRegularizer,
    StrengthController,
    StructureLogger,
    insert_gates,
)

# One model builder for this process and a TensorFlow child, so both build the same
# architecture (explicit names: auto-names depend on what a process built before).
_BUILD = textwrap.dedent("""
    import keras
    from regularizers import insert_gates
    L = keras.layers

    def build():
        x = keras.Input((8, 8, 3))
        h = L.Conv2D(8, 3, padding="same", name="conv1")(x)
        h = L.BatchNormalization(name="bn1")(h)
        h = L.ReLU(name="relu1")(h)
        d = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
        d = L.BatchNormalization(name="bn_dw")(d)
        h = L.Add(name="add")([h, d])
        c = L.Conv2D(4, 1, name="side")(x)
        h = L.Concatenate(name="cat")([h, c])
        h = L.Conv2D(8, 3, strides=2, padding="same", name="conv2")(h)
        h = L.BatchNormalization(name="bn2")(h)
        h = L.ReLU(name="relu2")(h)
        h = L.GlobalAveragePooling2D(name="gap")(h)
        y = L.Dense(3, name="logits")(h)
        return insert_gates(keras.Model(x, y, name="mixed"), seed=1)
""")
_NS: dict = {}
exec(_BUILD, _NS)  # noqa: S102 - this file's own source text
build_mixed = _NS["build"]


def _small(name="small"):
    x = keras.Input((6, 6, 3))
    h = L.ReLU(name="relu1")(L.BatchNormalization(name="bn1")(L.Conv2D(8, 3, name="c1")(x)))
    h = L.ReLU(name="relu2")(L.BatchNormalization(name="bn2")(L.Conv2D(8, 1, name="c2")(h)))
    y = L.Dense(3, name="logits")(L.GlobalAveragePooling2D(name="gap")(h))
    return keras.Model(x, y, name=name)


def _data(n=16, shape=(6, 6, 3)):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, *shape)).astype("float32"),
            rng.integers(0, 3, size=(n,)).astype("int32"))


_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# ------------------------------------------------------ LiteRT binding off TensorFlow
@pytest.fixture(scope="module")
def mixed_bound():
    """The gated mixed model bound to a shipped LiteRT profile (one conversion for the
    module: under JAX / PyTorch it is a TensorFlow child process)."""
    keras.utils.set_random_seed(0)
    model = build_mixed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # `side` has no gate: kept whole
        reg = LatencyRegularizer(_measured_profile(), model=model, predictor="lookup",
                                 algorithm="logistic_sigmoid", target_ms=1e-4,
                                 target_rate=0.2)
    return model, reg


_TF_ITEMS = textwrap.dedent("""
    import dataclasses, json
    from latency_lab.kernels import work_items
    model = build()
    print("ITEMS" + json.dumps([dataclasses.asdict(i) for i in work_items(model, "litert")]))
""")


@pytest.mark.only_backend("jax", "torch")
def test_litert_kernels_are_tensorflows(mixed_bound):
    model, reg = mixed_bound
    here = json.loads(json.dumps([dataclasses.asdict(i) for i in work_items(model, "litert")]))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _BUILD + _TF_ITEMS], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("ITEMS"))
    tf_items = json.loads(line[len("ITEMS"):])
    assert here == tf_items
    kernels = {i["kernel"] for i in here}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "CONCATENATION"} <= kernels
    assert {"conv1", "dw", "side", "conv2", "logits"} <= {i["layer"] for i in here}
    # the regularizer was bound to these kernels (one costed op per kernel)
    assert len(reg._items) == len(here) == len(reg._ops)


# ------------------------------------------------- fit lowers the cost, every algorithm
@pytest.mark.parametrize("make, kwargs, optimizer", [
    (FlopsRegularizer, dict(algorithm="gamma", threshold=0.2), ("SGD", 0.04)),
    (ModelSizeRegularizer, dict(algorithm="group_lasso", threshold=0.05), ("Adam", 0.1)),
    (lambda model, **kw: LatencyRegularizer("t4", model=model, **kw),
     dict(algorithm="gamma", threshold=0.2), ("SGD", 0.04)),
], ids=["flops-gamma", "model_size-group_lasso", "latency_spec-gamma"])
def test_fit_lowers_the_cost(make, kwargs, optimizer):
    keras.utils.set_random_seed(0)
    model = _small()
    reg = make(model=model, **kwargs)
    before = reg.get_cost()
    full = reg.get_alive_counts()
    assert full == {"c1": 8, "c2": 8, "logits": 3}
    # strength 20 / cost: the term outweighs the data loss, so channels die within
    # the 16 steps (Adam would overshoot gammas past zero; SGD steps them down)
    name, rate = optimizer
    model.compile(optimizer=getattr(keras.optimizers, name)(rate),
                  loss=reg.wrap_loss(_CE, 20.0 / before))
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = reg.get_cost()
    alive = reg.get_alive_counts()
    assert after < before, (before, after, alive)
    assert all(alive[k] <= full[k] for k in full) and alive != full


@pytest.mark.only_backend("jax", "torch")  # TensorFlow: test_latency_regularizer's fit
def test_fit_target_mode_with_gates_on_a_litert_profile_lowers_latency(mixed_bound):
    """LatencyRegularizer bound through LiteRT (under JAX / PyTorch: converted by a
    TensorFlow child), logistic_sigmoid gates, target mode driven by StrengthController;
    StructureLogger exports while training."""
    model, reg = mixed_bound
    before = reg.get_cost()
    model.compile(optimizer=keras.optimizers.Adam(0.5), loss=reg.wrap_loss(_CE))
    s0 = float(keras.ops.convert_to_numpy(reg.strength_variable))
    ctl = StrengthController(reg, every_n_steps=1)
    x, y = _data(shape=(8, 8, 3))
    model.fit(x, y, batch_size=8, epochs=8, verbose=0, callbacks=[ctl])
    # far above the target: the strength grew at every update up to its bound (100x
    # its start), and the loss read it
    strengths = [h[2] for h in ctl.history]
    assert len(strengths) == 16 and s0 < strengths[0] < strengths[1]
    assert all(b >= a for a, b in zip(strengths, strengths[1:]))
    assert strengths[-1] == pytest.approx(100 * s0, rel=1e-5)
    assert reg.get_cost() < before, (before, reg.get_cost(), reg.get_alive_counts())


def test_structure_logger_under_fit_exports_what_the_regularizer_sees(tmp_path):
    model = _small()
    reg = FlopsRegularizer(model=model, threshold=0.2)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=reg.wrap_loss(_CE, 1e-3))
    logger = StructureLogger(reg, export_dir=tmp_path, every_n_steps=2)
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[logger])
    names = sorted(os.listdir(tmp_path))
    assert names == ["structure_00000002.json", "structure_00000004.json"]
    with open(tmp_path / names[-1]) as f:
        data = json.load(f)
    counts = reg.get_alive_counts()
    assert data["counts"] == counts
    assert data["kept"] == {n: [int(i) for i in k] for n, k in counts.kept.items()}
    # a second fit continues the optimizer's step numbering
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[logger])
    assert sorted(os.listdir(tmp_path))[-1] == "structure_00000006.json"



def test_conversion_refuses_a_lambda_layer_by_name():
    x = keras.Input((4, 4, 3))
    h = L.Lambda(lambda t: t * 2.0, name="doubler")(L.Conv2D(2, 1)(x))
    model = keras.Model(x, h)
    with pytest.raises(MeasurementError, match=r"Lambda layers \['doubler'\].*KERAS_BACKEND"):
        convert_in_tensorflow_subprocess(model)


def test_conversion_refuses_a_class_from_a_module_not_imported():
    class Scale(L.Layer):
        def call(self, x):
            return x * 2.0

    Scale.__module__ = "somewhere_never_imported"
    x = keras.Input((4, 4, 3))
    model = keras.Model(x, Scale(name="scale")(L.Conv2D(2, 1)(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(MeasurementError,
                           match="layer 'scale'.*'Scale'.*somewhere_never_imported"):
            convert_in_tensorflow_subprocess(model)


# ------------------------------------------------ JAX: data parallel, no TensorFlow
_JAX_DATA_PARALLEL = textwrap.dedent("""
    import sys
    # As if TensorFlow were not installed (a JAX-only install): everything below must
    # work without it. (With TensorFlow installed Keras itself imports it: Layer.get_config
    # checks for tf.TensorShape.)
    sys.modules["tensorflow"] = None
    import numpy as np
    import jax
    import keras
    import regularizers
    from regularizers import (FlopsRegularizer, LatencyRegularizer, StrengthController,
                              StructureLogger)
    assert keras.backend.backend() == "jax"
    L = keras.layers
    devices = jax.devices("cpu")
    assert len(devices) == 2, devices
    distribution = keras.distribution.DataParallel(devices=devices)
    with distribution.scope():
        x = keras.Input((6, 6, 3))
        h = L.ReLU()(L.BatchNormalization(name="bn1")(L.Conv2D(8, 3, name="c1")(x)))
        y = L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(h))
        model = keras.Model(x, y)
        kernel = model.get_layer("c1").kernel
        assert len(kernel.value.sharding.device_set) == 2  # replicated on both
        reg = FlopsRegularizer(model=model, threshold=0.2, target=1.0, target_rate=0.5)
        base = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        strength = 1e-4
        model.compile(optimizer="sgd", loss=reg.wrap_loss(base, strength))
        rng = np.random.default_rng(0)
        xs = rng.normal(size=(16, 6, 6, 3)).astype("float32")
        ys = rng.integers(0, 3, size=(16,)).astype("int32")
        reg.strength_variable.assign(0.0)
        loss0 = model.evaluate(xs, ys, batch_size=16, verbose=0)
        reg.strength_variable.assign(strength)
        loss1 = model.evaluate(xs, ys, batch_size=16, verbose=0)  # same compiled step
        term = float(reg.get_regularization_term())
        # the term counts once over the global batch (no per-replica scaling)
        assert abs((loss1 - loss0) - strength * term) <= 1e-3 * strength * term, (
            loss0, loss1, term)
        before = reg.get_cost()
        model.compile(optimizer=keras.optimizers.Adam(0.1),
                      loss=reg.wrap_loss(base, 20.0 / before))
        ctl = StrengthController(reg, every_n_steps=2)
        logger = StructureLogger(reg, export_dir=sys.argv[1], every_n_steps=4)
        model.fit(xs, ys, batch_size=8, epochs=6, verbose=0, callbacks=[ctl, logger])
        assert len(ctl.history) == 6 and len(logger.written) == 3
        after = reg.get_cost()
        assert after < before, (before, after)
        spec = LatencyRegularizer("t4", model=model, threshold=0.2)
        assert spec.get_cost() > 0
    try:
        StructureLogger(reg, log_dir=sys.argv[1])
        raise AssertionError("StructureLogger(log_dir=...) accepted a missing TensorFlow")
    except ValueError as e:
        assert "needs TensorFlow" in str(e) and "log_dir=None" in str(e), e
    print("DATA_PARALLEL_OK", before, after)
""")


@pytest.mark.only_backend("jax")
def test_jax_data_parallel_two_cpu_devices_without_tensorflow(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, "-c", _JAX_DATA_PARALLEL, str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0 and "DATA_PARALLEL_OK" in proc.stdout, proc.stderr[-3000:]
