"""LiteRT conversion of a Keras model built under another Keras backend (JAX, PyTorch).

The TFLite converter needs TensorFlow tensors, so under a non-TensorFlow backend the
model's architecture (``keras.saving.serialize_keras_object``: its config, JSON) and
weights (``get_weights``, an ``.npz`` without pickles) go to a child Python started
with ``KERAS_BACKEND=tensorflow``. The child rebuilds the model with
``safe_mode=True`` and converts it with the same function a TensorFlow-backend process
uses (`convert.tf.convert_in_tensorflow`), so the bytes, and the kernels read from them in
this process, are those TensorFlow would give.

What the child runs: its own code and Keras', plus the modules that define the
model's custom layers and objects, and only modules this process has already imported
(a custom object's class must come from such a module; nothing is read from a
user-handed file). Lambda layers (a Python function that cannot be carried without
executing serialized bytecode) and classes defined in ``__main__`` are refused with an
error naming the layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from latency_lab.errors import MeasurementError

__all__ = ["convert_in_tensorflow_subprocess"]

_ERROR = "LATENCY_LAB_CONVERT_ERROR: "
_FIX = ("or build and convert the model under KERAS_BACKEND=tensorflow")
_TIMEOUT_S = 1800


def _custom_objects(config: Any, owner: str = "", found: list | None = None) -> list:
    """(module, class name, layer name) of every non-Keras object in a serialized
    config (layers, initializers, activations, ...)."""
    found = [] if found is None else found
    if isinstance(config, dict):
        name = config.get("config", {}).get("name") if isinstance(
            config.get("config"), dict) else None
        owner = name if isinstance(name, str) and "class_name" in config else owner
        module = config.get("module")
        if isinstance(module, str) and "class_name" in config \
                and module.split(".", 1)[0] != "keras":
            found.append((module, str(config["class_name"]), owner))
        for value in config.values():
            _custom_objects(value, owner, found)
    elif isinstance(config, (list, tuple)):
        for value in config:
            _custom_objects(value, owner, found)
    return found


def _lambda_layers(model: Any) -> list[str]:
    import keras

    names = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.Lambda):
            names.append(layer.name)
        names.extend(_lambda_layers(layer))
    return names


def _check_portable(model: Any, config: dict) -> list[str]:
    """The modules the child must import; a clear error for what cannot travel."""
    name = getattr(model, "name", "?")
    lambdas = _lambda_layers(model)
    if lambdas:
        raise MeasurementError(
            f"model {name!r} has Lambda layers {lambdas}: under the "
            f"{_backend()!r} backend the LiteRT conversion rebuilds the model in a "
            "TensorFlow process, and a Lambda's Python function cannot be carried there "
            "safely. Replace each by a Layer subclass defined in an importable module "
            f"(with keras.saving.register_keras_serializable), {_FIX}.")
    modules = []
    for module, cls, owner in _custom_objects(config):
        if module == "__main__" or module not in sys.modules:
            where = ("the running script (__main__)" if module == "__main__"
                     else f"module {module!r}, which this process has not imported")
            raise MeasurementError(
                f"layer {owner!r} of model {name!r} uses class {cls!r} from {where}: "
                f"under the {_backend()!r} backend the LiteRT conversion rebuilds the "
                "model in a TensorFlow process, which imports the modules that define "
                "custom objects. Define the class in an importable module (on "
                f"PYTHONPATH) and import it from there, {_FIX}.")
        if module not in modules:
            modules.append(module)
    return modules


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _child_env() -> dict:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "tensorflow"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["CUDA_VISIBLE_DEVICES"] = ""  # conversion runs on the CPU; leave accelerators be
    # The same code as this process: its import path first.
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def convert_in_tensorflow_subprocess(model: Any, batch_size: int = 1) -> bytes:
    """LiteRT flatbuffer of ``model`` converted by TensorFlow in a child process (the
    same bytes `litert.convert_keras_model` gives under the TensorFlow backend)."""
    import keras
    import numpy as np

    try:
        config = keras.saving.serialize_keras_object(model)
        text = json.dumps(config, default=_json_default)
    except Exception as exc:  # noqa: BLE001 - report which model and why
        raise MeasurementError(
            f"model {getattr(model, 'name', '?')!r} cannot be serialized for LiteRT "
            f"conversion under the {_backend()!r} backend ({type(exc).__name__}: {exc}); "
            f"give its custom layers get_config(), {_FIX}.") from exc
    modules = _check_portable(model, config)
    with tempfile.TemporaryDirectory(prefix="latency_lab_convert_") as tmp:
        with open(os.path.join(tmp, "request.json"), "w", encoding="utf-8") as f:
            json.dump({"model": text, "modules": modules, "batch_size": int(batch_size)}, f)
        weights = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
        np.savez(os.path.join(tmp, "weights.npz"), **weights)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", __name__, tmp], capture_output=True, text=True,
                env=_child_env(), timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise MeasurementError(
                f"LiteRT conversion of model {model.name!r} in a TensorFlow process did "
                f"not finish within {_TIMEOUT_S} s") from None
        out = os.path.join(tmp, "model.tflite")
        if proc.returncode != 0 or not os.path.exists(out):
            lines = [l for l in proc.stderr.splitlines() if l.startswith(_ERROR)]
            detail = lines[-1][len(_ERROR):] if lines else (
                f"exit status {proc.returncode}: " + proc.stderr.strip()[-2000:])
            raise MeasurementError(detail)
        with open(out, "rb") as f:
            return f.read()


def _json_default(value: Any):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _child(tmp: str) -> None:
    """In the child (KERAS_BACKEND=tensorflow): rebuild, convert, write model.tflite."""
    import importlib

    import keras
    import numpy as np

    from latency_lab.convert.tf import convert_in_tensorflow

    if keras.backend.backend() != "tensorflow":
        raise MeasurementError(
            f"the conversion process runs Keras on {keras.backend.backend()!r}, not "
            "tensorflow (is KERAS_BACKEND overridden in ~/.keras/keras.json?)")
    with open(os.path.join(tmp, "request.json"), encoding="utf-8") as f:
        request = json.load(f)
    for module in request["modules"]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - name the module and the fix
            raise MeasurementError(
                f"the TensorFlow conversion process cannot import module {module!r} "
                f"(which defines custom objects of the model): {type(exc).__name__}: "
                f"{exc}. Make it importable (on PYTHONPATH), {_FIX}.") from exc
    config = json.loads(request["model"])
    custom = {}
    for module, cls, _ in _custom_objects(config):
        obj = getattr(sys.modules[module], cls, None)
        if obj is not None:
            custom[cls] = obj
    try:
        model = keras.saving.deserialize_keras_object(config, custom_objects=custom,
                                                      safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - name the model and the fix
        raise MeasurementError(
            f"model {config.get('config', {}).get('name')!r} could not be rebuilt from "
            f"its config under TensorFlow ({type(exc).__name__}: {exc}); custom layers "
            f"need get_config() and an importable module, {_FIX}.") from exc
    with np.load(os.path.join(tmp, "weights.npz"), allow_pickle=False) as data:
        model.set_weights([data[f"w{i}"] for i in range(len(data.files))])
    data = convert_in_tensorflow(model, int(request["batch_size"]))
    with open(os.path.join(tmp, "model.tflite"), "wb") as f:
        f.write(data)


if __name__ == "__main__":
    try:
        _child(sys.argv[1])
    except Exception as exc:  # noqa: BLE001 - one line for the parent to raise
        message = str(exc) if isinstance(exc, MeasurementError) else \
            f"{type(exc).__name__}: {exc}"
        print(_ERROR + " ".join(message.split()), file=sys.stderr)
        sys.exit(2)
