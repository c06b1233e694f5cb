"""The keras runtime's kernels: XLA fuses runs of elementwise layers into one loop
(`latency_lab.kernels.keras`), and the lookup table takes each kind's own call cost
off its samples (`LookupTableModel.call_ms`)."""

from pathlib import Path

import keras
import pytest
from keras import layers as L

from latency_lab.kernels import work_items
from latency_lab.kernels.keras import loop_fusible, loop_groups
from latency_lab.keras_graph import from_keras

PROFILES = Path(__file__).resolve().parents[1] / "device_profiles"


def _items(model):
    return {item.layer: item for item in work_items(model, "keras")}


def _residual_block(c=32, h=8):
    x = keras.Input((h, h, c))
    y = L.Conv2D(c, 3, padding="same", use_bias=False, name="conv_a")(x)
    y = L.BatchNormalization(name="bn_a")(y)
    y = L.ReLU(name="relu_a")(y)
    y = L.Conv2D(c, 3, padding="same", use_bias=False, name="conv_b")(y)
    y = L.BatchNormalization(name="bn_b")(y)
    y = L.Add(name="add")([x, y])
    y = L.ReLU(name="relu_out")(y)
    return keras.Model(x, y)


def test_a_batch_norm_and_the_relu_after_it_are_one_loop_charged_once():
    items = _items(_residual_block())
    assert "bn_a" in items and "relu_a" not in items  # the scale-and-shift pass times it
    assert items["bn_a"].configs == [("multiply", dict(h=8, w=8, c=32, broadcast=True))]
    assert items["bn_a"].kernel == "loop(bn_a, relu_a)"
    # the residual add reads two tensors: it times the loop of bn_b, add and relu_out
    assert "add" in items and "bn_b" not in items and "relu_out" not in items
    assert items["add"].kernel == "loop(bn_b, add, relu_out)"
    assert [op for op, _ in items["conv_a"].configs] == ["conv2d"]


def test_a_tensor_a_conv_reads_is_written_out_and_starts_no_loop_with_its_other_readers():
    x = keras.Input((8, 8, 16))
    y = L.BatchNormalization(name="bn")(x)
    a = L.Conv2D(16, 1, name="conv")(y)
    b = L.Activation("swish", name="swish")(y)
    model = keras.Model(x, L.Add(name="add")([a, b]))
    groups = loop_groups(from_keras(model, batch_size=1))
    assert groups["bn"] == "bn" and groups["swish"] == groups["add"] != "bn"
    items = _items(model)
    # the swish (a sigmoid per element) outweighs the add it is fused with
    assert "bn" in items and "swish" in items and "add" not in items


def test_a_wide_channel_concat_is_copied_not_fused():
    graph = {}
    for c in (32, 128):
        x = keras.Input((4, 4, c))
        y = L.Concatenate(name="cat")([L.ReLU()(x), L.ReLU()(x)])
        graph[c] = [op for op in from_keras(keras.Model(x, y), batch_size=1) if op.name == "cat"][0]
    assert loop_fusible(graph[32]) and not loop_fusible(graph[128])


def test_litert_kernels_are_not_grouped_into_loops():
    assert not any(item.kernel.startswith("loop(") for item in work_items(_residual_block(), "litert"))


def test_each_kind_pays_its_own_call_cost_once_per_network():
    """The shipped keras profile: an add's program passes two tensors and costs more
    per call than the chain of one input that measured the per-invocation overhead;
    a tiny add inside a network is then charged what its sample spent beyond that
    call, not the argument marshalling a compiled model does once."""
    from latency_lab.predictors import LookupTableModel
    from latency_lab.profile import DeviceProfile

    model = LookupTableModel(DeviceProfile.load(PROFILES / "xeon_vm_2c_keras.json")).fit()
    assert model.call_ms("add") > model.per_invocation_ms_ * 1.05
    tiny = dict(h=1, w=1, c=8, broadcast=False)
    assert model.kernel_ms([("add", tiny)]) == pytest.approx(
        max(model._predict_one("add", tiny) - model.call_ms("add"), 0.0))
    assert model.kernel_ms([("add", tiny)]) < 0.25 * model.per_invocation_ms_


@pytest.mark.parametrize("layer", [L.Conv2D(8, 3, name="c"), L.DepthwiseConv2D(3, name="c")])
def test_a_valid_conv_after_a_pad_is_timed_as_the_same_conv_of_its_output(layer):
    """keras runtime: ResNet50V2's ZeroPadding2D + VALID 3x3 over a 4x4 map has a 2x2
    output; timed as the SAME conv of that output (input 2x2), not of the 4x4 map."""
    x = keras.Input((2, 2, 8))
    y = layer(L.ZeroPadding2D(1)(x))
    (cfg,) = [c for item in work_items(keras.Model(x, y), "keras") if item.layer == "c"
              for _, c in item.configs]
    assert (cfg["h"], cfg["w"]) == (2, 2)
    x = keras.Input((9, 9, 8))
    strided = type(layer).from_config({**layer.get_config(), "strides": 2, "name": "s"})
    (cfg,) = [c for item in work_items(keras.Model(x, strided(x)), "keras") if item.layer == "s"
              for _, c in item.configs]
    assert (cfg["h"], cfg["w"], cfg["s"]) == (8, 8, 2)  # 4x4 out, as SAME over 8x8


def test_only_backends_the_keras_runtime_compiles_with_xla_fuse_loops():
    """torch runs eagerly under the keras runtime: every layer is its own kernel."""
    for backend, fused in (("tensorflow", True), ("jax", True), (None, True), ("torch", False)):
        items = work_items(_residual_block(), "keras", backend=backend)
        assert any(i.kernel.startswith("loop(") for i in items) is fused, backend
    eager = {i.layer for i in work_items(_residual_block(), "keras", backend="torch")}
    assert {"bn_a", "relu_a", "bn_b", "add", "relu_out"} <= eager
