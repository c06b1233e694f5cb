"""`latency-lab analyze`, run in-process through latency_lab.cli.main."""

import json
import os
import warnings

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)
layers = keras.layers

from latency_lab import costs  # noqa: E402
from latency_lab.analyze import UnknownOpWarning, analyze_model  # noqa: E402
from latency_lab.cli import main  # noqa: E402
from latency_lab.errors import UnsupportedModelError, UnsupportedOpError  # noqa: E402

LAYER_KEYS = {"name", "type", "flops", "params", "bytes_read", "bytes_written",
              "input_shapes", "output_shape"}
TOTAL_KEYS = {"flops", "params", "bytes_read", "bytes_written"}


@keras.saving.register_keras_serializable(package="latency_lab_tests")
class TimesTwo(layers.Layer):
    """A custom layer with no cost function."""

    def call(self, x):
        return x * 2.0


@keras.saving.register_keras_serializable(package="latency_lab_tests")
class SubclassedNet(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def tiny_model():
    inp = keras.Input((8, 8, 3), name="img")
    x = layers.Conv2D(4, 3, padding="same", name="conv1")(inp)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)
    x = layers.Conv2D(8, 1, name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(3, name="fc")(x)
    return keras.Model(inp, out, name="tiny")


def custom_layer_model():
    inp = keras.Input((4, 4, 2), name="in")
    x = layers.Conv2D(2, 1, name="conv")(inp)
    x = TimesTwo(name="times_two")(x)
    return keras.Model(inp, x, name="with_custom")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    tiny_model().save(path)
    return path


@pytest.fixture(scope="module")
def custom_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "custom.keras"
    custom_layer_model().save(path)
    return path


def run_json(capsys, *argv):
    rc = main(["analyze", *map(str, argv), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out  # exactly one JSON object
    return json.loads(lines[0]), err


def assert_bad_input(capsys, argv, *fragments):
    rc = main(["analyze", *map(str, argv)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert "error:" in err
    assert "Traceback" not in err and "Traceback" not in out
    text = " ".join(err.split())  # undo any line wrapping
    for fragment in fragments:
        assert fragment in text, text
    return text


# ---------------------------------------------------------------- JSON and table


def test_json_output(capsys, tiny_path):
    data, _ = run_json(capsys, tiny_path)
    assert data["model"] == str(tiny_path)
    assert data["batch_size"] == 1
    assert [row["name"] for row in data["layers"]] == [
        "img", "conv1", "bn", "relu", "dw", "conv2", "gap", "fc"]
    for row in data["layers"]:
        assert LAYER_KEYS <= set(row)
    assert set(data["total"]) == TOTAL_KEYS
    for key in TOTAL_KEYS:
        assert data["total"][key] == sum(row[key] for row in data["layers"])
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["conv1"]["type"] == "Conv2D"
    assert rows["conv1"]["input_shapes"] == [[1, 8, 8, 3]]
    assert rows["conv1"]["output_shape"] == [1, 8, 8, 4]
    assert rows["conv1"]["flops"] == 2 * 8 * 8 * 3 * 3 * 3 * 4
    assert rows["conv1"]["params"] == 3 * 3 * 3 * 4 + 4
    assert rows["conv1"]["bytes_read"] == (8 * 8 * 3 + 3 * 3 * 3 * 4 + 4) * 4
    assert rows["conv1"]["bytes_written"] == 8 * 8 * 4 * 4
    assert rows["dw"]["flops"] == 2 * 4 * 4 * 3 * 3 * 4
    assert rows["fc"]["flops"] == 2 * 8 * 3
    assert data["total"]["params"] == tiny_model().count_params()


def test_table_output(capsys, tiny_path):
    rc = main(["analyze", str(tiny_path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "total" in out
    assert "conv1" in out and "Conv2D" in out
    assert "{" not in out  # not JSON


def test_batch_size_multiplies_flops_not_params(capsys, tiny_path):
    one, _ = run_json(capsys, tiny_path)
    four, _ = run_json(capsys, tiny_path, "--batch-size", "4")
    assert four["batch_size"] == 4
    r1 = {row["name"]: row for row in one["layers"]}
    r4 = {row["name"]: row for row in four["layers"]}
    for name in ("conv1", "dw", "conv2"):
        assert r4[name]["flops"] == 4 * r1[name]["flops"]
        assert r4[name]["params"] == r1[name]["params"]
        assert r4[name]["output_shape"][0] == 4
    assert four["total"]["params"] == one["total"]["params"]


@pytest.mark.parametrize("value", ["0", "-2", "x"])
def test_bad_batch_size_is_an_argparse_error(capsys, tiny_path, value):
    with pytest.raises(SystemExit) as info:
        main(["analyze", str(tiny_path), f"--batch-size={value}"])
    assert info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


# ---------------------------------------------------------------- bad model files


def test_missing_file(capsys, tmp_path):
    path = tmp_path / "nope.keras"
    assert_bad_input(capsys, [path], "does not exist", str(path))


def test_directory(capsys, tmp_path):
    d = tmp_path / "saved_model.keras"
    d.mkdir()
    assert_bad_input(capsys, [d], "is a directory")


def test_wrong_suffix(capsys, tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("hello")
    assert_bad_input(capsys, [path], "'.txt'", ".keras")


def test_corrupt_keras_file(capsys, tmp_path):
    path = tmp_path / "corrupt.keras"
    path.write_bytes(b"\x00\x01garbage bytes, not a zip archive\xff" * 8)
    assert_bad_input(capsys, [path], "is not a zip archive", str(path))


def test_model_arg_with_a_file(capsys, tiny_path):
    assert_bad_input(capsys, [tiny_path, "--model-arg", "alpha=0.5"],
                     "--model-arg applies to keras.applications")


def test_saved_subclassed_model(capsys, tmp_path):
    model = SubclassedNet(name="subnet")
    model(keras.ops.zeros((1, 3)))
    path = tmp_path / "sub.keras"
    model.save(path)
    assert_bad_input(capsys, [path], "subclassed", "'subnet'")


def test_subclassed_model_api():
    model = SubclassedNet(name="subnet")
    model(keras.ops.zeros((1, 3)))
    with pytest.raises(UnsupportedModelError, match="subclassed"):
        analyze_model(model)


# ---------------------------------------------------------------- applications


def test_unknown_application_lists_available(capsys):
    assert_bad_input(capsys, ["keras.applications.NoSuchNet"],
                     "keras.applications.NoSuchNet", "MobileNetV2", "ResNet50")


def test_lowercase_application_is_refused(capsys):
    # A module attribute that is not a model builder.
    assert_bad_input(capsys, ["keras.applications.mobilenet_v2"], "unknown model")


def test_weights_imagenet_refused(capsys):
    assert_bad_input(capsys, ["keras.applications.MobileNetV2", "--model-arg",
                              "weights=imagenet"], "weights", "never downloads")


@pytest.mark.parametrize("item", ["alpha", "=0.5", "1x=2"])
def test_model_arg_without_name_value(capsys, item):
    assert_bad_input(capsys, ["keras.applications.MobileNetV2", f"--model-arg={item}"],
                     "malformed --model-arg", "NAME=VALUE")


def test_bad_application_argument(capsys):
    assert_bad_input(capsys, ["keras.applications.MobileNetV2", "--model-arg",
                              "no_such_kwarg=1"], "keras.applications.MobileNetV2(")


@pytest.mark.parametrize("value", ["abc", "0,3,3", "-1,2,3", "", ",", "1.5,2,3", "8,8,c"])
def test_malformed_input_shape(capsys, tiny_path, value):
    assert_bad_input(capsys, [tiny_path, f"--input-shape={value}"],
                     "malformed --input-shape", "224,224,3")


def test_input_shape_with_wrong_rank(capsys, tiny_path):
    assert_bad_input(capsys, [tiny_path, "--input-shape=8,8"], "--input-shape 8,8")


def test_mobilenetv2_alpha_035_params(capsys):
    data, _ = run_json(capsys, "keras.applications.MobileNetV2", "--model-arg",
                       "alpha=0.35", "--input-shape", "96,96,3")
    expected = keras.applications.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(96, 96, 3)
    ).count_params()
    assert data["model"] == "keras.applications.MobileNetV2"
    assert data["total"]["params"] == expected
    assert data["layers"][0]["output_shape"] == [1, 96, 96, 3]
    first_conv = next(row for row in data["layers"] if row["type"] == "Conv2D")
    # 96x96 stride-2 SAME -> 48x48; alpha 0.35 gives 16 stem filters (rounded to 8).
    assert first_conv["output_shape"] == [1, 48, 48, 16]
    assert first_conv["flops"] == 2 * 48 * 48 * 3 * 3 * 3 * 16


# ---------------------------------------------------------------- unknown layers


def test_unknown_layer_is_an_error_naming_it():
    with pytest.raises(UnsupportedOpError) as info:
        analyze_model(custom_layer_model())
    msg = str(info.value)
    assert "'times_two'" in msg and "'TimesTwo'" in msg
    assert "Supported types:" in msg and "Conv2D" in msg
    assert "--allow-unknown" in msg


def test_unknown_layer_allowed_counts_zero_with_warning():
    with pytest.warns(UnknownOpWarning, match=r"times_two \(TimesTwo\)"):
        analysis = analyze_model(custom_layer_model(), allow_unknown=True)
    rows = {row.name: row for row in analysis.layers}
    assert rows["times_two"].cost == costs.ZERO
    assert rows["times_two"].known is False
    assert analysis.unknown == ["times_two (TimesTwo)"]
    assert analysis.to_dict()["unknown_layers"] == ["times_two (TimesTwo)"]
    assert rows["conv"].cost.flops == 2 * 4 * 4 * 2 * 2


def test_known_layers_emit_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOpWarning)
        analysis = analyze_model(tiny_model(), allow_unknown=True)
    assert analysis.unknown == []
    assert "unknown_layers" not in analysis.to_dict()


def test_cli_unknown_layer_is_an_error(capsys, custom_path):
    assert_bad_input(capsys, [custom_path], "'times_two'", "TimesTwo", "--allow-unknown")


def test_cli_allow_unknown_warns_and_succeeds(capsys, custom_path):
    data, err = run_json(capsys, custom_path, "--allow-unknown")
    assert "warning:" in err
    assert "times_two" in " ".join(err.split())
    assert "error:" not in err
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["times_two"]["flops"] == 0
    assert data["unknown_layers"] == ["times_two (TimesTwo)"]


def test_cli_allow_unknown_table(capsys, custom_path):
    rc = main(["analyze", str(custom_path), "--allow-unknown"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "warning:" in err
    assert "(unknown)" in out and "total" in out
