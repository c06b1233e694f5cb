"""Learned-structure export: ``{conv/dense layer name: alive output channels}`` as JSON,
with the indices of the kept channels of every layer beside the counts.

A file (version 2)::

    {"format": "latency_lab.structure", "version": 2, "algorithm": "gamma",
     "l1_fraction": 0.0, "counts": {"conv1": 3, ...}, "kept": {"conv1": [0, 4, 5], ...}}

``kept`` names exactly the channels the regularizer counted alive (its one importance
vector per group), so `apply_structure` rebuilds the same network in any process. A
regularizer built with ``prune_residual_stream=True`` adds
``"prune_residual_stream": true``, so `apply_structure` groups the model the same way
(absent: false, as every earlier file).
Version 1 files (a bare ``{layer name: count}`` mapping) still load: `apply_structure`
then ranks each group's channels by the same combined vector from the model's weights.

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

__all__ = ["Structure", "export_structure", "load_structure", "structure_filename"]

FORMAT = "latency_lab.structure"
VERSION = 2


class Structure(dict):
    """``{conv/dense layer name: alive output channels}`` (a plain dict of counts, so it
    compares equal to one) that may also carry, per layer, the kept channel indices.

    Attributes:
        kept: ``{layer name: sorted int64 numpy array}``; layers absent here are ranked
            by importance when the structure is applied.
        algorithm: the regularizer algorithm whose vectors chose the channels (ranks
            channels beyond ``kept``, e.g. rounded up by ``align``), or None.
        l1_fraction: group_lasso's L1 share used with `algorithm`.
        prune_residual_stream: the counts were learned with the residual stream
            prunable (`build_channel_graph`); `apply_structure` then slims it too.
    """

    def __init__(self, counts: Mapping | None = None, kept: Mapping | None = None,
                 algorithm: str | None = None, l1_fraction: float = 0.0, *,
                 prune_residual_stream: bool = False):
        if counts is not None and not isinstance(counts, Mapping):
            try:  # (name, count) pairs, as dict() takes them (dataclasses.asdict does so)
                counts = dict(counts)
            except (TypeError, ValueError):
                pass  # _check_counts names what it got
        super().__init__(_check_counts({} if counts is None else counts, "Structure"))
        self.kept = _check_kept(kept or {}, self, "Structure")
        self.algorithm = algorithm
        self.l1_fraction = float(l1_fraction)
        if not isinstance(prune_residual_stream, bool):
            raise InvalidArgumentError(
                "Structure: `prune_residual_stream` must be True or False, received "
                f"{prune_residual_stream!r}.")
        self.prune_residual_stream = prune_residual_stream

    def __repr__(self) -> str:
        return f"Structure({dict.__repr__(self)}, kept for {len(self.kept)} layers)"

    def to_json(self) -> dict:
        out = {"format": FORMAT, "version": VERSION, "algorithm": self.algorithm,
               "l1_fraction": self.l1_fraction, "counts": dict(self),
               "kept": {n: [int(i) for i in idx] for n, idx in self.kept.items()}}
        if self.prune_residual_stream:  # absent: false (files of every earlier release)
            out["prune_residual_stream"] = True
        return out



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


def _check_kept(kept: Mapping, counts: Mapping, where: str) -> dict:
    import numpy as np

    if not isinstance(kept, Mapping):
        raise InvalidArgumentError(
            f"{where}: `kept` must be a mapping {{layer name: kept channel indices}}, "
            f"received {type(kept).__name__}.")
    out = {}
    for name, idx in kept.items():
        if name not in counts:
            raise InvalidArgumentError(
                f"{where}: kept channels are given for layer {name!r}, which has no count.")
        try:
            arr = np.asarray(list(idx))
        except TypeError:
            arr = np.asarray(None)
        if arr.ndim != 1 or (arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0)):
            raise InvalidArgumentError(
                f"{where}: kept channels of layer {name!r} must be a list of non-negative "
                f"ints, received {idx!r}.")
        arr = arr.astype(np.int64)
        if len(np.unique(arr)) != len(arr) or len(arr) != counts[name]:
            raise InvalidArgumentError(
                f"{where}: layer {name!r} has count {counts[name]} but {len(arr)} kept "
                f"channel indices ({len(np.unique(arr))} distinct); they must agree.")
        out[name] = np.sort(arr)
    return out


def export_structure(regularizer_or_alive_counts: Any, directory: str | os.PathLike =
                     "learned_structure", step: int | None = None) -> str:
    """Write the learned structure to ``directory/structure_{step:08d}.json`` (or
    ``structure.json`` when step is None) and return the path.

    Args:
        regularizer_or_alive_counts: a regularizer (its ``get_alive_counts()``, with
            the kept channel indices, is written), a `Structure`, or a
            ``{layer name: alive count}`` mapping (no indices).
        directory: created if missing.
        step: training step in the file name.
    """
    if hasattr(regularizer_or_alive_counts, "get_alive_counts"):
        counts = regularizer_or_alive_counts.get_alive_counts()
    else:
        counts = regularizer_or_alive_counts
    structure = counts if isinstance(counts, Structure) else Structure(
        _check_counts(counts, "export_structure"))
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
        write_json_atomic(path, structure.to_json(), "the structure")
    except ProfileError as e:
        raise InvalidArgumentError(f"export_structure: cannot write {path!r}: {e}") from e
    return path


def load_structure(path: str | os.PathLike) -> Structure:
    """Read a structure file written by `export_structure` (version 2, with the kept
    channel indices, or a version 1 ``{layer name: count}`` file)."""
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
    where = f"structure file {path!r}"
    if isinstance(data, dict) and data.get("format") == FORMAT:
        if data.get("version") != VERSION:
            raise InvalidArgumentError(
                f"{where}: version {data.get('version')!r} is not supported; this "
                f"latency_lab reads versions 1 and {VERSION}. Export it again.")
        algorithm = data.get("algorithm")
        l1 = data.get("l1_fraction", 0.0)
        if algorithm is not None and not isinstance(algorithm, str) or isinstance(l1, bool) \
                or not isinstance(l1, (int, float)) or not 0.0 <= l1 <= 1.0:
            raise InvalidArgumentError(
                f"{where}: `algorithm` must be a name or null and `l1_fraction` a number "
                f"in [0, 1], received {algorithm!r} and {l1!r}.")
        stream = data.get("prune_residual_stream", False)
        if not isinstance(stream, bool):
            raise InvalidArgumentError(
                f"{where}: `prune_residual_stream` must be true or false, received "
                f"{stream!r}.")
        counts = _check_counts(data.get("counts"), where)
        return Structure(counts, _check_kept(data.get("kept") or {}, counts, where),
                         algorithm, l1, prune_residual_stream=stream)
    return Structure(_check_counts(data, where))
