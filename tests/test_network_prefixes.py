"""scripts/network_prefixes.py: where a network may be cut into prefixes."""

import keras
from script_helpers import load_script

L = keras.layers


def _script():
    return load_script("network_prefixes")


def test_prefixes_are_cut_only_where_the_rest_reads_one_tensor_and_no_kernel_splits():
    """A residual block's inside is no cut (its input is still read by the add), nor
    is a conv before its BatchNormalization or activation (LiteRT fuses them)."""
    x = keras.Input((16, 16, 3))
    h = L.Conv2D(8, 3, padding="same", name="stem")(x)
    h = L.BatchNormalization(name="stem_bn")(h)
    h = L.ReLU(name="stem_relu")(h)
    r = L.Conv2D(8, 3, padding="same", name="res_conv")(h)
    r = L.ReLU(name="res_relu")(r)
    h = L.Add(name="res_add")([h, r])
    h = L.GlobalAveragePooling2D(name="gap")(h)
    net = keras.Model(x, L.Dense(4, name="head")(h))
    cuts = [c.operation.name for c in _script().cut_calls(net)]
    assert cuts == ["stem_relu", "res_add", "gap"]


def test_two_settings_of_one_network_get_two_labels():
    """Prefixes are measured in passes by name: MobileNetV2 at alpha 0.75 and 1.0 were
    both labelled MobileNetV2-112, and the run stopped on the repeated names."""
    mod = _script()
    a, _ = mod.parse_model("MobileNetV2:alpha=0.75:32")
    b, _ = mod.parse_model("MobileNetV2:alpha=1.0:32")
    c, _ = mod.parse_model("MobileNetV2::32")
    assert len({a, b, c}) == 3 and all(x.endswith("-32") for x in (a, b, c))
