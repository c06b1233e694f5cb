"""One failure policy: a layer with no latency model is an error naming the layer under
every runtime; allow_unknown (--allow-unknown) is the one way past it, and then what was
left out is listed."""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

from latency_lab import cli, errors  # noqa: E402
from latency_lab.errors import UnknownOpWarning, UnsupportedOpError  # noqa: E402
from latency_lab.kernels import work_items  # noqa: E402
from latency_lab.predict import predict_model  # noqa: E402


@keras.saving.register_keras_serializable(package="policy_test")
class Wobble(keras.layers.Layer):
    """A layer no op kind and no cost function knows."""

    def call(self, x):
        return keras.ops.sin(x) * 2.0


def _model():
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    y = Wobble(name="wobble")(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    return keras.Model(x, keras.layers.Dense(2, name="head")(y), name="wobbly")


@pytest.mark.parametrize("runtime", ["keras", "spec"])
def test_unknown_layer_is_an_error_naming_it(runtime):
    with pytest.raises(UnsupportedOpError, match=r"layer 'wobble' \(Wobble\).*--allow-unknown"):
        work_items(_model(), runtime)


@pytest.mark.parametrize("runtime", ["keras", "spec"])
def test_allow_unknown_leaves_it_out_and_lists_it(runtime):
    with pytest.warns(UnknownOpWarning, match="wobble"):
        items = work_items(_model(), runtime, allow_unknown=True)
    assert items.skipped == ["layer 'wobble' (Wobble)"]
    assert "wobble" not in {i.layer for i in items}
    assert {"conv", "head"} <= {i.layer for i in items}


def test_a_known_network_skips_nothing():
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 3, name="c")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.ReLU(name="r")(y)
    model = keras.Model(x, keras.layers.GlobalAveragePooling2D(name="g")(y))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOpWarning)
        items = work_items(model, "keras")
    assert items.skipped == []
    assert [i.layer for i in items][0] == "c"


def test_unknown_litert_kernel_is_an_error_and_allow_unknown_lists_it(monkeypatch):
    from latency_lab import op_kinds

    # Pretend the SIN kernel that Wobble converts to had never been listed anywhere.
    assert "SIN" not in op_kinds.LITERT_KERNELS and "SIN" not in op_kinds.ROOFLINE_KERNELS
    with pytest.raises(UnsupportedOpError, match=r"LiteRT kernel SIN .*wobble"):
        work_items(_model(), "litert")
    with pytest.warns(UnknownOpWarning):
        items = work_items(_model(), "litert", allow_unknown=True)
    assert len(items.skipped) == 1 and items.skipped[0].startswith("LiteRT kernel SIN")


def test_predict_model_reports_what_it_skipped():
    with pytest.warns(UnknownOpWarning):
        res = predict_model(_model(), "xeon_vm_2c_keras", "roofline", allow_unknown=True)
    assert res.skipped == ["layer 'wobble' (Wobble)"]
    assert res.to_dict()["skipped"] == res.skipped
    with pytest.raises(UnsupportedOpError):
        predict_model(_model(), "xeon_vm_2c_keras", "roofline")


def test_cli_maps_the_error_to_exit_2_and_allow_unknown_to_a_listed_skip(tmp_path, capsys):
    path = tmp_path / "wobbly.keras"
    _model().save(path)
    assert cli.main(["predict", str(path), "--profile", "xeon_vm_2c_keras",
                     "--predictor", "roofline"]) == 2
    assert "wobble" in capsys.readouterr().err
    assert cli.main(["predict", str(path), "--profile", "xeon_vm_2c_keras",
                     "--predictor", "roofline", "--allow-unknown", "--json"]) == 0
    out = capsys.readouterr()
    assert "skipped 1 with no latency model: layer 'wobble' (Wobble)" in out.err


def test_every_package_error_derives_from_one_base():
    import importlib
    import pkgutil

    import latency_lab
    import regularizers

    classes = []
    for pkg in (latency_lab, regularizers):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            mod = importlib.import_module(info.name)
            classes += [v for v in vars(mod).values() if isinstance(v, type)
                        and issubclass(v, Exception) and not issubclass(v, Warning)
                        and v.__module__ == mod.__name__]
    assert errors.ProfileError in classes
    assert all(issubclass(c, errors.LatencyLabError) for c in classes), classes


def test_a_bad_argument_is_a_package_error_and_still_a_value_error():
    from latency_lab.timing import TimingConfig

    with pytest.raises(errors.InvalidArgumentError, match="repeats") as e:
        TimingConfig(repeats=0)
    assert isinstance(e.value, ValueError) and isinstance(e.value, errors.LatencyLabError)
