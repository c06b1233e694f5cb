"""Learned-structure export: ``{conv/dense layer name: alive output channels}`` as JSON.

Files are written atomically (temporary file + rename, via
`latency_lab.profile.write_json_atomic`), so a reader never sees a half-written file
even if training is killed mid-write.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from latency_lab.errors import InvalidArgumentError, ProfileError
from latency_lab.profile import write_json_atomic

__all__ = ["export_structure", "load_structure", "structure_filename"]


def structure_filename(step: int | None) -> str:
    """``structure_{step:08d}.json``, or ``structure.json`` without a step."""
    return "structure.json" if step is None else f"structure_{int(step):08d}.json"


def _check_counts(counts: Mapping, where: str) -> dict[str, int]:
    if not isinstance(counts, Mapping):
        raise InvalidArgumentError(
            f"{where}: expected a mapping {{layer name: alive channel count}}, received "
            f"{type(counts).__name__}."
        )
    out: dict[str, int] = {}
    for name, value in counts.items():
        if not isinstance(name, str):
            raise InvalidArgumentError(f"{where}: layer names must be strings, received {name!r}.")
        if isinstance(value, bool) or not isinstance(value, int) and not (
                isinstance(value, float) and value.is_integer()):
            raise InvalidArgumentError(
                f"{where}: alive count of layer {name!r} must be a non-negative int, "
                f"received {value!r}."
            )
        if value < 0:
            raise InvalidArgumentError(
                f"{where}: alive count of layer {name!r} must be a non-negative int, "
                f"received {value!r}."
            )
        out[name] = int(value)
    return out


def export_structure(regularizer_or_alive_counts: Any, directory: str | os.PathLike =
                     "learned_structure", step: int | None = None) -> str:
    """Write the learned structure to ``directory/structure_{step:08d}.json`` (or
    ``structure.json`` when step is None) and return the path.

    Args:
        regularizer_or_alive_counts: a regularizer (its ``get_alive_counts()`` is
            written) or a ``{layer name: alive count}`` mapping.
        directory: created if missing.
        step: training step in the file name.
    """
    if hasattr(regularizer_or_alive_counts, "get_alive_counts"):
        counts = regularizer_or_alive_counts.get_alive_counts()
    else:
        counts = regularizer_or_alive_counts
    counts = _check_counts(counts, "export_structure")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise InvalidArgumentError(
            f"Invalid value for argument `step`: expected None or a non-negative int, "
            f"received {step!r}."
        )
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise InvalidArgumentError(
            f"export_structure: cannot create directory {directory!r}: "
            f"{e.strerror or e}; choose a writable `directory`."
        ) from e
    path = os.path.join(directory, structure_filename(step))
    try:
        write_json_atomic(path, counts, "the structure")
    except ProfileError as e:
        raise InvalidArgumentError(f"export_structure: cannot write {path!r}: {e}") from e
    return path


def load_structure(path: str | os.PathLike) -> dict[str, int]:
    """Read a structure file written by `export_structure`."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"structure file {path!r} does not exist; export one with "
            "regularizers.export_structure(regularizer, directory) or StructureLogger."
        ) from None
    except OSError as e:
        raise InvalidArgumentError(f"cannot read structure file {path!r}: {e.strerror or e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgumentError(
            f"structure file {path!r} is not valid JSON ({e.msg} at line {e.lineno}); "
            "expected {\"layer name\": alive channel count, ...}."
        ) from None
    return _check_counts(data, f"structure file {path!r}")
