"""Turn a MODEL argument into a Keras model: a `.keras`/`.h5` path or
`keras.applications.NAME` (always `weights=None`: nothing is downloaded)."""

from __future__ import annotations

import ast
import importlib
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from latency_lab.errors import InputSpecError, InvalidArgumentError, ModelLoadError

__all__ = ["APPLICATIONS_PREFIX", "MODEL_SUFFIXES", "DEFAULT_IMAGE_SHAPE",
           "parse_input_shape", "parse_model_args", "application_names",
           "load_application", "import_modules", "load_model_file", "load"]

APPLICATIONS_PREFIX = "keras.applications."
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
DEFAULT_IMAGE_SHAPE = (224, 224, 3)


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """'224,224,3' -> (224, 224, 3)."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).replace("x", ",").split(",") if p.strip()]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise InputSpecError(
            f"malformed --input-shape {text!r}: expected positive integers without the "
            "batch dimension, e.g. --input-shape 224,224,3"
        )
    return dims


def parse_model_args(items: Sequence[str] | None) -> dict[str, Any]:
    """['alpha=0.5', 'include_top=False'] -> {'alpha': 0.5, 'include_top': False}."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputSpecError(
                f"malformed --model-arg {item!r}: expected NAME=VALUE, e.g. alpha=0.5"
            )
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()  # a bare word such as classifier_activation=softmax
        out[key] = value
    return out


def application_names() -> list[str]:
    import keras

    return sorted(
        n for n in dir(keras.applications)
        if n[:1].isupper() and callable(getattr(keras.applications, n))
    )


def load_application(name: str, model_args: dict | None = None,
                     input_shape: Sequence[int] | None = None):
    import keras

    args = dict(model_args or {})
    if args.get("weights") not in (None, "None"):
        raise InputSpecError(
            f"--model-arg weights={args['weights']!r}: latency-lab never downloads "
            "weights; latency does not depend on them. Drop the weights argument."
        )
    args["weights"] = None
    if input_shape is not None:
        args.setdefault("input_shape", tuple(input_shape))
    builder = getattr(keras.applications, name, None)
    if builder is None or not name[:1].isupper():
        raise ModelLoadError(
            f"unknown model keras.applications.{name}; available: "
            f"{', '.join(application_names())}"
        )
    try:
        model = builder(**args)
        if "input_shape" not in args and any(d is None for d in model.inputs[0].shape[1:]):
            # Some families (MobileNetV3) default to variable spatial size; analyze
            # them at the ImageNet size their documentation uses.
            args["input_shape"] = DEFAULT_IMAGE_SHAPE
            model = builder(**args)
        return model
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"keras.applications.{name}({_fmt(args)}) failed: {exc}") from exc


def _fmt(args: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def import_modules(names: Sequence[str]) -> list:
    """Import the user's modules (`--import MODULE`, dotted names on the import path)
    so the custom layers they register with `keras.saving.register_keras_serializable`
    load under Keras's safe mode, and the costs (`latency_lab.costs.register`) and
    grouping rules they register apply. This runs those modules' code, which the user
    named; a model file's own code is still never run.

    File paths are refused on purpose: a module run from a path under an invented name
    breaks its relative imports, is registered twice if imported again under its real
    name, and cannot be imported by the child process that converts a model under a
    non-TensorFlow backend (which imports custom layers' modules by name).

    Raises:
        InvalidArgumentError: a name that is not a dotted module name, or no module
            of that name is found.
        ModelLoadError: the module raised while being imported.
    """
    done = []
    for name in names:
        _check_module_name(name)
        try:
            module = importlib.import_module(name)
            # Its public names resolved: a module that defines its layers on first
            # access (PEP 562 `__getattr__`, to import without Keras) registers them now.
            for public in getattr(module, "__all__", ()):
                getattr(module, public)
            done.append(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                raise InvalidArgumentError(
                    f"--import {name}: no module named {exc.name!r} was found. Check the "
                    "module name, and that the folder holding it is on PYTHONPATH (e.g. "
                    f"PYTHONPATH=. for ./{name.replace('.', '/')}.py)") from exc
            raise ModelLoadError(_import_failure(name, exc)) from exc
        except Exception as exc:  # noqa: BLE001 - user code: name the module and the error
            raise ModelLoadError(_import_failure(name, exc)) from exc
    return done


def _check_module_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError(
            f"--import expects a Python module name such as my_layers or pkg.layers, "
            f"received {name!r}")
    if name.endswith(".py") or "/" in name or os.sep in name:
        stem = Path(name).stem
        folder = str(Path(name).parent) or "."
        raise InvalidArgumentError(
            f"--import takes a module name, not a file path ({name!r}): put the module's "
            f"folder on PYTHONPATH and name the module, e.g. PYTHONPATH={folder} "
            f"latency-lab ... --import {stem}")
    if not all(part.isidentifier() for part in name.split(".")):
        raise InvalidArgumentError(
            f"--import {name!r} is not a Python module name: expected dotted identifiers "
            "such as my_layers or pkg.layers (no relative imports)")


def _import_failure(name: str, exc: BaseException) -> str:
    """'module 'x' raised ValueError: ... (at file.py:3)': where in the user's code."""
    ours = (os.path.dirname(importlib.__file__), __file__)  # importlib's frames, and ours
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(("<frozen", *ours))]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return (f"--import {name}: importing module {name!r} raised {type(exc).__name__}: "
            f"{exc}{where}. Fix the module (run `python -c 'import {name}'` to see the "
            "whole traceback)")


_MISSING_OBJECT = re.compile(r"Could not locate (class|function) '([^']+)'")


def _unregistered_hint(message: str) -> str | None:
    """What to do when Keras could not find a custom class or function in a file: the
    name as Keras reports it, where it was saved from, and `--import MODULE`."""
    m = _MISSING_OBJECT.search(message)
    if m is None:
        return None
    kind, obj = m.groups()
    module = re.search(r"Full object config: \{'module': '([^']+)'", message)
    registered = re.search(r"'registered_name': '([^']*>" + re.escape(obj) + ")'", message)
    facts = []
    if registered:
        facts.append(f"registered as {registered.group(1)!r}")
    if module:
        facts.append(f"saved from module {module.group(1)!r}")
    text = f"uses custom {kind} {obj!r}" + (f" ({', '.join(facts)})" if facts else "")
    text += ", which no imported module has registered. "
    mod = module.group(1) if module else None
    if mod == "__main__":
        text += ("It was defined in a script: move it into a module, decorate it with "
                 "@keras.saving.register_keras_serializable(), and pass --import MODULE")
    elif mod is not None and mod in sys.modules:
        text += (f"Module {mod!r} is imported but does not register it: decorate it with "
                 "@keras.saving.register_keras_serializable()"
                 + (f" (package {registered.group(1).split('>')[0]!r})" if registered else "")
                 + " and pass --import with the module that defines it")
    else:
        hint = f" (here likely --import {mod})" if mod else ""
        text += (f"Pass --import MODULE{hint}, naming the module that defines it with "
                 "@keras.saving.register_keras_serializable(); its folder must be on "
                 "PYTHONPATH")
    return (text + ". That runs the module's code, which you name; the model file's "
            "own code is never run (Python: import the module before load_model_file).")


def load_model_file(path: str | os.PathLike, *, unsafe_deserialization: bool = False):
    """Load a .keras/.h5 file. Keras's safe mode stays on (a `Lambda` layer's
    bytecode is not run) unless `unsafe_deserialization`, which only a user who trusts
    the file should ask for; a refused Lambda says how."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(
            f"model file {str(p)!r} does not exist; give a .keras/.h5 path or "
            "keras.applications.NAME"
        )
    if p.is_dir():
        raise ModelLoadError(
            f"{str(p)!r} is a directory; latency-lab reads Keras 3 .keras or .h5 files "
            "(export a SavedModel's Keras model with model.save('m.keras'))"
        )
    if p.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelLoadError(
            f"model file {str(p)!r} has suffix {p.suffix!r}; expected one of "
            f"{', '.join(MODEL_SUFFIXES)}"
        )
    if not os.access(p, os.R_OK):
        raise ModelLoadError(f"model file {str(p)!r} is not readable (check permissions)")
    _check_container(p)
    import keras

    try:
        return keras.saving.load_model(str(p), compile=False,
                                       safe_mode=not unsafe_deserialization)
    except Exception as exc:  # keras raises many types for corrupt/custom files
        if "safe_mode" in str(exc) or "Lambda" in str(exc) and "unsafe" in str(exc).lower():
            raise ModelLoadError(
                f"model file {str(p)!r} has a Lambda layer, whose Python code Keras "
                "will not run from a file by default (it could run anything). If you "
                "trust the file, pass --unsafe-deserialization (Python: "
                "load_model_file(path, unsafe_deserialization=True))."
            ) from exc
        unregistered = _unregistered_hint(str(exc))
        if unregistered is not None:
            raise ModelLoadError(f"model file {str(p)!r} {unregistered}") from exc
        hint = ""
        if "custom" in str(exc).lower() or "Unknown" in str(exc):
            hint = (" The file uses custom layers: pass --import MODULE naming the module "
                    "that registers them (Python: import it first, or load the file with "
                    "custom_objects=... and pass the model object to the API).")
        raise ModelLoadError(
            f"could not load model file {str(p)!r}: {type(exc).__name__}: {exc}.{hint}"
        ) from exc


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _check_container(p: Path) -> None:
    """A .keras file is a zip archive, an .h5 file an HDF5 file: anything else is
    corrupt or truncated (Keras itself then says "File not found", which misleads)."""
    import zipfile

    if p.suffix.lower() == ".keras":
        ok = zipfile.is_zipfile(p)
    else:
        with open(p, "rb") as f:
            head = f.read(8)
        ok = head == _HDF5_SIGNATURE
    if not ok:
        kind = "zip archive" if p.suffix.lower() == ".keras" else "HDF5 file"
        raise ModelLoadError(
            f"model file {str(p)!r} is not a {kind} as a Keras {p.suffix} file must be: it "
            "is corrupt or truncated; save the model again with model.save(path)")


def load(spec: str, model_args: dict | None = None,
         input_shape: Sequence[int] | None = None, *, unsafe_deserialization: bool = False):
    """Load MODEL as given on the command line."""
    if spec.startswith(APPLICATIONS_PREFIX):
        return load_application(spec[len(APPLICATIONS_PREFIX):], model_args, input_shape)
    if model_args:
        raise InputSpecError(
            "--model-arg applies to keras.applications.NAME models, not to files"
        )
    return load_model_file(spec, unsafe_deserialization=unsafe_deserialization)
