"""Device profiles: the versioned JSON file that carries everything measured on (or
looked up for) one device, and the only thing that crosses from profiling to training.

Layout (version 2) is documented in README.md ("Device profiles"). Loading
validates every field and names the offending field path in the error; older versions
are upgraded through a registry of one-step upgrade functions (``_UPGRADES``), so a
future version 3 is one more entry there. Nothing in a profile is ever executed or
unpickled: predictors are refit from the stored samples (the optional ``fitted``
section holds plain numbers, fitted hyperparameters keyed by a digest of what shaped
them, that make the refit cheap).

This module imports only the standard library (no TensorFlow).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from latency_lab.errors import ProfileError

__all__ = ["SCHEMA", "CURRENT_VERSION", "SUPPORTED_VERSIONS", "DEVICE_KINDS",
           "RUNTIME_NAMES", "PROVENANCE_KINDS", "OP_CLASSES", "DeviceMismatchWarning",
           "utc_now", "Sample", "unstable_count", "network_latency_ms", "sample_key", "upgrade",
           "write_json_atomic", "DeviceProfile", "load_profile"]

SCHEMA = "latency-lab.device-profile"
CURRENT_VERSION = 2

DEVICE_KINDS = ("cpu", "gpu", "tpu")
RUNTIME_NAMES = ("litert", "keras", "spec")
PROVENANCE_KINDS = ("measured", "spec")
OP_CLASSES = ("dense", "depthwise", "elementwise")

_FIX_HINT = "fix the file, or re-create it with `latency-lab profile`"

# Top-level fields in the order `to_dict` writes them.
_TOP_LEVEL_FIELDS = (
    "schema", "version", "created_utc", "tool_version", "device", "runtime",
    "provenance", "roofline", "overhead", "samples", "calibration", "progress", "fitted",
)
# Read and dropped: an empty section every profile written before 0.2 carries (predictors
# are refit from the samples; nothing ever read it).
_LEGACY_FIELDS = ("predictor",)


class DeviceMismatchWarning(UserWarning):
    """The device in use is not the one the profile was measured on."""


# ---------------------------------------------------------------------------------
# Field checking. Every helper takes the field path ("roofline.memory_bytes_per_s",
# "samples[3].raw_ms[0]") and raises ProfileError naming the file and that path.
# ---------------------------------------------------------------------------------


class _Ctx:
    """Where the data came from, for error messages."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str, fix: str = _FIX_HINT) -> ProfileError:
        where = f"field '{path}'" if path else "the top level"
        return ProfileError(f"{self.source}: {where} {problem}; {fix}.")


def _type_name(value: Any) -> str:
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _get(ctx: _Ctx, obj: Mapping, key: str, path: str) -> Any:
    if key not in obj:
        full = f"{path}.{key}" if path else key
        raise ProfileError(
            f"{ctx.source}: missing required field '{full}'; add it "
            f"(see README.md, 'Device profiles') or {_FIX_HINT}.")
    return obj[key]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _no_extra(ctx: _Ctx, obj: Mapping, allowed: Iterable[str], path: str) -> None:
    allowed = tuple(allowed)
    extra = sorted(str(k) for k in obj if k not in allowed)
    if extra:
        shown = ", ".join(f"'{_join(path, k)}'" for k in extra)
        raise ProfileError(
            f"{ctx.source}: unknown field(s) {shown} (allowed here: {', '.join(allowed)}); "
            f"remove them or fix their spelling.")


def _dict(ctx: _Ctx, value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ctx.fail(path, f"must be a JSON object, got {_type_name(value)} {value!r:.60}")
    return value


def _list(ctx: _Ctx, value: Any, path: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise ctx.fail(path, f"must be a JSON list, got {_type_name(value)} {value!r:.60}")
    return list(value)


def _str(ctx: _Ctx, value: Any, path: str, *, choices: tuple | None = None,
         nullable: bool = False, nonempty: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        expected = "a string or null" if nullable else "a string"
        raise ctx.fail(path, f"must be {expected}, got {_type_name(value)} {value!r:.60}")
    if choices is not None and value not in choices:
        raise ctx.fail(path, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    if nonempty and not value.strip():
        raise ctx.fail(path, "must be a non-empty string")
    return value


def _num(ctx: _Ctx, value: Any, path: str, *, minimum: float = 0.0, strict: bool = False,
         nullable: bool = False) -> float | None:
    """A finite number >= minimum (> minimum when strict)."""
    if value is None and nullable:
        return None
    bound = f"{'>' if strict else '>='} {minimum:g}"
    ok = _is_number(value) and math.isfinite(value) and (
        value > minimum if strict else value >= minimum)
    if not ok:
        raise ctx.fail(path, f"must be a finite number {bound}"
                       f"{' or null' if nullable else ''}, got {value!r:.60}")
    return float(value)


def _int(ctx: _Ctx, value: Any, path: str, *, minimum: int = 0,
         nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        raise ctx.fail(path, f"must be an integer >= {minimum}"
                       f"{' or null' if nullable else ''}, got {value!r:.60}")
    return int(value)


def _bool(ctx: _Ctx, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ctx.fail(path, f"must be true or false, got {value!r:.60}")
    return value


def _json_value(ctx: _Ctx, value: Any, path: str) -> Any:
    """Free-form data (device.info, calibration): plain JSON values only,
    finite numbers, string keys. Returns a deep copy."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ctx.fail(path, f"has a non-string key {k!r}; JSON object keys are strings")
            out[k] = _json_value(ctx, v, _join(path, k))
        return out
    if isinstance(value, (list, tuple)):
        return [_json_value(ctx, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ctx.fail(path, f"must be a finite number, got {value!r}")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ctx.fail(path, f"must be plain JSON data, got {_type_name(value)}")


def _timestamp(ctx: _Ctx, value: Any, path: str) -> str:
    text = _str(ctx, value, path)
    try:
        _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ctx.fail(path, f"must be an ISO-8601 UTC time such as "
                       f"'2026-11-25T06:50:00Z', got {text!r}") from None
    return text


def utc_now() -> str:
    """Current UTC time in the profile's timestamp format."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------------

_SAMPLE_FIELDS = ("op", "config", "median_ms", "iqr_ms", "repeats", "raw_ms", "unstable")


def _parse_config(ctx: _Ctx, value: Any, path: str) -> dict:
    config = _dict(ctx, value, path)
    out = {}
    for k, v in config.items():
        if not isinstance(k, str):
            raise ctx.fail(path, f"has a non-string key {k!r}")
        p = _join(path, k)
        if isinstance(v, bool) or isinstance(v, str):
            out[k] = v
        elif _is_number(v):
            if not math.isfinite(v):
                raise ctx.fail(p, f"must be a finite number, a string or a boolean, got {v!r}")
            out[k] = v
        else:
            raise ctx.fail(p, f"must be a number, a string or a boolean, got "
                           f"{_type_name(v)} {v!r:.60}")
    return out


def unstable_count(samples: Iterable["Sample"]) -> int:
    """How many of `samples` are unstable (`Sample.unstable`: the timing's passes did
    not reproduce). The one count `show`, the roofline plot and the profile's
    calibration section report."""
    return sum(1 for s in samples if s.unstable)


@dataclass(frozen=True)
class Sample:
    """One lookup-table measurement: an op in one configuration.

    ``config`` maps parameter names to numbers/strings/booleans (e.g. ``{"h": 56,
    "w": 56, "c_in": 32, "c_out": 64, "k": 3, "stride": 1}``). Times are milliseconds.
    """

    op: str
    config: dict
    median_ms: float
    iqr_ms: float
    repeats: int
    raw_ms: tuple = field(default_factory=tuple)
    unstable: bool = False

    def __post_init__(self):
        _validate_sample_fields(self, _Ctx("<Sample>"), "sample")

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def key(self) -> str:
        """Stable identity of (op, config), independent of config key order."""
        return sample_key(self.op, self.config)

    @property
    def min_ms(self) -> float:
        """The latency figure predictors fit: the fastest of the raw repeats (why:
        `latency_lab.timing`); the median when no raw values were stored."""
        return min(self.raw_ms) if self.raw_ms else self.median_ms

    def to_dict(self) -> dict:
        return {
            "op": self.op,
            "config": dict(self.config),
            "median_ms": self.median_ms,
            "iqr_ms": self.iqr_ms,
            "repeats": self.repeats,
            "raw_ms": list(self.raw_ms),
            "unstable": self.unstable,
        }

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "<dict>", path: str = "sample") -> "Sample":
        return _parse_sample(_Ctx(source), data, path)


def network_latency_ms(entry: Mapping) -> float:
    """The latency figure of a calibration network entry: its fastest raw call (older
    profiles stored the median as measured_ms, with the raw calls beside it)."""
    raw = entry.get("raw_ms")
    return float(min(raw)) if raw else float(entry["measured_ms"])


def sample_key(op: str, config: Mapping) -> str:
    """The key `Sample.key` uses; lets a resumed run skip configs already measured."""
    return op + "|" + json.dumps(config, sort_keys=True, separators=(",", ":"))


def _validate_sample_fields(s: Sample, ctx: _Ctx, path: str) -> None:
    # Normalises in place (frozen dataclass, hence object.__setattr__).
    set_ = object.__setattr__
    set_(s, "op", _str(ctx, s.op, _join(path, "op")))
    set_(s, "config", _parse_config(ctx, s.config, _join(path, "config")))
    set_(s, "median_ms", _num(ctx, s.median_ms, _join(path, "median_ms"), strict=True))
    set_(s, "iqr_ms", _num(ctx, s.iqr_ms, _join(path, "iqr_ms")))
    set_(s, "repeats", _int(ctx, s.repeats, _join(path, "repeats"), minimum=1))
    raw = _list(ctx, s.raw_ms, _join(path, "raw_ms"))
    set_(s, "raw_ms", tuple(_num(ctx, v, f"{path}.raw_ms[{i}]", strict=True)
                            for i, v in enumerate(raw)))
    set_(s, "unstable", _bool(ctx, s.unstable, _join(path, "unstable")))


def _parse_sample(ctx: _Ctx, data: Any, path: str) -> Sample:
    data = _dict(ctx, data, path)
    _no_extra(ctx, data, _SAMPLE_FIELDS, path)
    values = {k: _get(ctx, data, k, path) for k in _SAMPLE_FIELDS if k != "unstable"}
    values["unstable"] = data.get("unstable", False)
    s = object.__new__(Sample)
    for k, v in values.items():
        object.__setattr__(s, k, v)
    _validate_sample_fields(s, ctx, path)
    return s


# ---------------------------------------------------------------------------------
# Version upgrades: {from_version: function(data, ctx) -> data of from_version + 1}
# ---------------------------------------------------------------------------------

_V1_FIELDS = ("schema", "version", "name", "kind", "peak_flops_per_s",
              "memory_bytes_per_s", "source")


def _spec_runtime() -> dict:
    return {"name": "spec", "version": None, "backend": None, "device": None,
            "threads": None, "dtype": "float32", "batch": 1}


def _upgrade_v1_to_v2(data: dict, ctx: _Ctx) -> dict:
    """Version 1: the roofline-only layout of MorphNet's hard-coded hardware table."""
    _no_extra(ctx, data, _V1_FIELDS, "")
    name = _str(ctx, _get(ctx, data, "name", ""), "name")
    kind = _str(ctx, _get(ctx, data, "kind", ""), "kind", choices=DEVICE_KINDS)
    peak = _num(ctx, _get(ctx, data, "peak_flops_per_s", ""), "peak_flops_per_s", strict=True)
    mem = _num(ctx, _get(ctx, data, "memory_bytes_per_s", ""), "memory_bytes_per_s",
               strict=True)
    citation = data.get("source")
    if citation is None:
        citation = f"unspecified (upgraded from version-1 profile {ctx.source})"
    citation = _str(ctx, citation, "source")
    return {
        "schema": SCHEMA,
        "version": 2,
        "created_utc": "1970-01-01T00:00:00Z",
        "tool_version": "unknown",
        "device": {"kind": kind, "name": name, "fingerprint": None, "info": {}},
        "runtime": _spec_runtime(),
        "provenance": {
            "kind": "spec",
            "sources": [
                {"quantity": "peak_flops_per_s", "value": peak, "unit": "FLOP/s",
                 "citation": citation},
                {"quantity": "memory_bytes_per_s", "value": mem, "unit": "B/s",
                 "citation": citation},
            ],
            "notes": ("Upgraded from a version-1 (roofline-only) profile: one peak for all "
                      "op classes, no overheads, no samples; creation time unknown."),
        },
        "roofline": {
            "compute_flops_per_s": {c: peak for c in OP_CLASSES},
            "memory_bytes_per_s": mem,
            "precision": "unspecified",
        },
        "overhead": {"per_op_ms": 0.0, "per_invocation_ms": 0.0},
        "samples": [],
    }


_UPGRADES: dict[int, Callable[[dict, _Ctx], dict]] = {
    1: _upgrade_v1_to_v2,
}

SUPPORTED_VERSIONS = tuple(sorted(set(_UPGRADES) | {CURRENT_VERSION}))


def _supported_text() -> str:
    return ", ".join(str(v) for v in SUPPORTED_VERSIONS)


def _check_header(ctx: _Ctx, data: Any) -> int:
    if not isinstance(data, dict):
        raise ProfileError(
            f"{ctx.source}: a device profile must be a JSON object at the top level, got "
            f"{_type_name(data)}; {_FIX_HINT}.")
    schema = _get(ctx, data, "schema", "")
    if schema != SCHEMA:
        raise ProfileError(
            f"{ctx.source}: field 'schema' is {schema!r:.60}, expected {SCHEMA!r}; this is not "
            f"a latency-lab device profile (pass a profile written by `latency-lab profile` "
            f"or a shipped profile name).")
    version = _get(ctx, data, "version", "")
    if not (isinstance(version, int) and not isinstance(version, bool)):
        raise ProfileError(
            f"{ctx.source}: field 'version' must be an integer (supported versions: "
            f"{_supported_text()}), got {version!r:.60}; {_FIX_HINT}.")
    if version > CURRENT_VERSION:
        raise ProfileError(
            f"{ctx.source}: profile version {version} is newer than this latency-lab "
            f"understands (supported versions: {_supported_text()}); upgrade latency-lab "
            f"(`pip install -U latency-lab`) to read it.")
    if version != CURRENT_VERSION and version not in _UPGRADES:
        raise ProfileError(
            f"{ctx.source}: unknown profile version {version} (supported versions: "
            f"{_supported_text()}); {_FIX_HINT}.")
    return version


def upgrade(data: dict, source: str = "<dict>") -> dict:
    """Return a copy of ``data`` upgraded to CURRENT_VERSION (not yet fully validated)."""
    ctx = _Ctx(str(source))
    version = _check_header(ctx, data)
    data = copy.deepcopy(data)
    while version != CURRENT_VERSION:
        data = _UPGRADES[version](data, ctx)
        new_version = data["version"]
        if new_version <= version:  # a broken registry entry; not user input
            raise RuntimeError(f"upgrade from version {version} did not advance the version")
        version = new_version
    return data


# ---------------------------------------------------------------------------------
# Version-2 validation (returns a normalised deep copy)
# ---------------------------------------------------------------------------------


def _v_device(ctx: _Ctx, value: Any) -> dict:
    p = "device"
    d = _dict(ctx, value, p)
    _no_extra(ctx, d, ("kind", "name", "fingerprint", "info"), p)
    return {
        "kind": _str(ctx, _get(ctx, d, "kind", p), "device.kind", choices=DEVICE_KINDS),
        "name": _str(ctx, _get(ctx, d, "name", p), "device.name"),
        "fingerprint": _str(ctx, _get(ctx, d, "fingerprint", p), "device.fingerprint",
                            nullable=True),
        "info": _json_value(ctx, _dict(ctx, _get(ctx, d, "info", p), "device.info"),
                            "device.info"),
    }


def _v_runtime(ctx: _Ctx, value: Any) -> dict:
    p = "runtime"
    d = _dict(ctx, value, p)
    keys = ("name", "version", "backend", "device", "threads", "dtype", "batch",
            "matmul_precision")
    _no_extra(ctx, d, keys, p)
    out = {
        "name": _str(ctx, _get(ctx, d, "name", p), "runtime.name", choices=RUNTIME_NAMES),
        "version": _str(ctx, _get(ctx, d, "version", p), "runtime.version", nullable=True),
        "backend": _str(ctx, _get(ctx, d, "backend", p), "runtime.backend", nullable=True),
        "device": _str(ctx, _get(ctx, d, "device", p), "runtime.device", nullable=True),
        "threads": _int(ctx, _get(ctx, d, "threads", p), "runtime.threads", minimum=1,
                        nullable=True),
        "dtype": _str(ctx, _get(ctx, d, "dtype", p), "runtime.dtype"),
        "batch": _int(ctx, _get(ctx, d, "batch", p), "runtime.batch", minimum=1),
    }
    if "matmul_precision" in d:  # optional: what float32 matmuls run as (keras on GPU)
        out["matmul_precision"] = _str(ctx, d["matmul_precision"], "runtime.matmul_precision",
                                       choices=("fp32", "tf32"))
    return out


_SOURCE_FIELDS = ("quantity", "value", "unit", "precision", "citation", "url")


def _v_provenance(ctx: _Ctx, value: Any) -> dict:
    p = "provenance"
    d = _dict(ctx, value, p)
    _no_extra(ctx, d, ("kind", "sources", "notes"), p)
    kind = _str(ctx, _get(ctx, d, "kind", p), "provenance.kind", choices=PROVENANCE_KINDS)
    sources = []
    for i, s in enumerate(_list(ctx, d.get("sources", []), "provenance.sources")):
        sp = f"provenance.sources[{i}]"
        s = _dict(ctx, s, sp)
        _no_extra(ctx, s, _SOURCE_FIELDS, sp)
        out = {"quantity": _str(ctx, _get(ctx, s, "quantity", sp), f"{sp}.quantity")}
        if "value" in s:
            out["value"] = _num(ctx, s["value"], f"{sp}.value", nullable=True)
        for opt in ("unit", "precision"):
            if opt in s:
                out[opt] = _str(ctx, s[opt], f"{sp}.{opt}")
        out["citation"] = _str(ctx, _get(ctx, s, "citation", sp), f"{sp}.citation")
        if "url" in s:
            out["url"] = _str(ctx, s["url"], f"{sp}.url", nullable=True)
        sources.append(out)
    if kind == "spec" and not sources:
        raise ctx.fail("provenance.sources",
                       "must list at least one source with a citation when provenance.kind "
                       "is 'spec'",
                       "cite the datasheet or paper each number comes from")
    out = {"kind": kind, "sources": sources}
    if "notes" in d:
        out["notes"] = _str(ctx, d["notes"], "provenance.notes", nonempty=False)
    return out


def _v_roofline(ctx: _Ctx, value: Any) -> dict:
    p = "roofline"
    d = _dict(ctx, value, p)
    _no_extra(ctx, d, ("compute_flops_per_s", "memory_bytes_per_s", "precision"), p)
    cp = "roofline.compute_flops_per_s"
    compute = _dict(ctx, _get(ctx, d, "compute_flops_per_s", p), cp)
    ceilings = {}
    for c in OP_CLASSES:
        ceilings[c] = _num(ctx, _get(ctx, compute, c, cp), f"{cp}.{c}", strict=True)
    for c, v in compute.items():  # extra op classes are allowed, checked the same way
        if c not in ceilings:
            ceilings[str(c)] = _num(ctx, v, f"{cp}.{c}", strict=True)
    return {
        "compute_flops_per_s": ceilings,
        "memory_bytes_per_s": _num(ctx, _get(ctx, d, "memory_bytes_per_s", p),
                                   "roofline.memory_bytes_per_s", strict=True),
        "precision": _str(ctx, _get(ctx, d, "precision", p), "roofline.precision"),
    }


def _v_overhead(ctx: _Ctx, value: Any) -> dict:
    p = "overhead"
    d = _dict(ctx, value, p)
    _no_extra(ctx, d, ("per_op_ms", "per_invocation_ms"), p)
    return {
        "per_op_ms": _num(ctx, _get(ctx, d, "per_op_ms", p), "overhead.per_op_ms"),
        "per_invocation_ms": _num(ctx, _get(ctx, d, "per_invocation_ms", p),
                                  "overhead.per_invocation_ms"),
    }


def _v_progress(ctx: _Ctx, value: Any) -> dict:
    p = "progress"
    d = _dict(ctx, value, p)
    _no_extra(ctx, d, ("complete", "planned", "done", "elapsed_s"), p)
    out = {
        "complete": _bool(ctx, _get(ctx, d, "complete", p), "progress.complete"),
        "planned": _int(ctx, _get(ctx, d, "planned", p), "progress.planned"),
        "done": _int(ctx, _get(ctx, d, "done", p), "progress.done"),
        "elapsed_s": _num(ctx, _get(ctx, d, "elapsed_s", p), "progress.elapsed_s"),
    }
    if out["done"] > out["planned"]:
        raise ctx.fail("progress.done", f"({out['done']}) must not exceed progress.planned "
                       f"({out['planned']})")
    return out


_HEX_DIGITS = frozenset("0123456789abcdef")


def _sha256_hex(ctx: _Ctx, value: Any, path: str) -> str:
    text = _str(ctx, value, path)
    if len(text) != 64 or not set(text) <= _HEX_DIGITS:
        raise ctx.fail(path, f"must be a SHA-256 digest (64 lowercase hex digits), got "
                       f"{text!r:.80}", "remove the 'fitted' section (it is derived; "
                       "`scripts/fit_profile.py` re-creates it)")
    return text


def _v_fitted(ctx: _Ctx, value: Any) -> dict:
    """The fitted lookup models (derived from the samples, stored for fast loads):

        "fitted": {"lookup": {"key": SHA-256 of what shapes the fit,
                              "fit_version": int, "scikit_learn": "1.9.1",
                              "models": {op: {"hyperparameters": [numbers > 0],
                                              "data_sha256": SHA-256}}}}

    Only plain numbers and strings; `LookupTableModel` checks the key and each model's
    data digest and refits whatever does not match."""
    p = "fitted"
    d = _dict(ctx, value, p)
    _no_extra(ctx, d, ("lookup",), p)
    out = {}
    if "lookup" in d:
        lp = "fitted.lookup"
        lk = _dict(ctx, d["lookup"], lp)
        _no_extra(ctx, lk, ("key", "fit_version", "scikit_learn", "models"), lp)
        models = {}
        mp = f"{lp}.models"
        for op, m in _dict(ctx, _get(ctx, lk, "models", lp), mp).items():
            opp = _join(mp, str(op))
            m = _dict(ctx, m, opp)
            _no_extra(ctx, m, ("hyperparameters", "data_sha256"), opp)
            hp = _list(ctx, _get(ctx, m, "hyperparameters", opp), f"{opp}.hyperparameters")
            if not hp:
                raise ctx.fail(f"{opp}.hyperparameters", "must list the kernel's "
                               "hyperparameters, got an empty list")
            models[str(op)] = {
                "hyperparameters": [_num(ctx, v, f"{opp}.hyperparameters[{i}]", strict=True)
                                    for i, v in enumerate(hp)],
                "data_sha256": _sha256_hex(ctx, _get(ctx, m, "data_sha256", opp),
                                           f"{opp}.data_sha256"),
            }
        out["lookup"] = {
            "key": _sha256_hex(ctx, _get(ctx, lk, "key", lp), f"{lp}.key"),
            "fit_version": _int(ctx, _get(ctx, lk, "fit_version", lp), f"{lp}.fit_version",
                                minimum=1),
            "scikit_learn": _str(ctx, _get(ctx, lk, "scikit_learn", lp), f"{lp}.scikit_learn"),
            "models": models,
        }
    return out


def _validate_v2(ctx: _Ctx, data: dict) -> dict:
    _no_extra(ctx, data, _TOP_LEVEL_FIELDS + _LEGACY_FIELDS, "")
    out = {
        "schema": SCHEMA,
        "version": CURRENT_VERSION,
        "created_utc": _timestamp(ctx, _get(ctx, data, "created_utc", ""), "created_utc"),
        "tool_version": _str(ctx, _get(ctx, data, "tool_version", ""), "tool_version"),
        "device": _v_device(ctx, _get(ctx, data, "device", "")),
        "runtime": _v_runtime(ctx, _get(ctx, data, "runtime", "")),
        "provenance": _v_provenance(ctx, _get(ctx, data, "provenance", "")),
        "roofline": _v_roofline(ctx, _get(ctx, data, "roofline", "")),
        "overhead": _v_overhead(ctx, _get(ctx, data, "overhead", "")),
    }
    samples = _list(ctx, _get(ctx, data, "samples", ""), "samples")
    out["samples"] = [_parse_sample(ctx, s, f"samples[{i}]").to_dict()
                      for i, s in enumerate(samples)]
    if data.get("predictor"):
        raise ProfileError(
            f"{ctx.source}: field 'predictor' holds settings, but no version of latency-lab "
            "reads them (predictors are refit from the samples at load time); remove the "
            "field, or re-create the profile with `latency-lab profile`")
    out["calibration"] = _json_value(
        ctx, _dict(ctx, data.get("calibration", {}), "calibration"), "calibration")
    if data.get("progress") is not None:
        out["progress"] = _v_progress(ctx, data["progress"])
    if data.get("fitted") is not None:
        out["fitted"] = _v_fitted(ctx, data["fitted"])
    return out


# ---------------------------------------------------------------------------------
# Atomic JSON writing and reading
# ---------------------------------------------------------------------------------


def write_json_atomic(path, data: dict, what: str = "the profile") -> None:
    """Write ``data`` as JSON to ``path`` atomically: a temporary file in the same
    directory, flushed and fsynced, then ``os.replace``. On any failure the temporary
    file is removed, an existing file at ``path`` is left untouched, and ProfileError
    names the path and the cause."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                   dir=directory)
    except OSError as e:
        raise ProfileError(
            f"{path}: cannot write {what}: {e.strerror or e} (directory "
            f"'{directory}'); create the directory, make it writable, or choose another "
            f"output path.") from e
    try:
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            mode = 0o644
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            json.dump(data, f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if not isinstance(e, Exception):  # KeyboardInterrupt etc.: clean up, re-raise
            raise
        if isinstance(e, OSError):
            cause = e.strerror or str(e)
            fix = "check free disk space and permissions, or choose another output path"
        elif isinstance(e, (TypeError, ValueError)):
            cause = f"data is not valid JSON ({e})"
            fix = f"this is a bug in the code that built {what}; please report it"
        else:
            cause = f"{type(e).__name__}: {e}"
            fix = "the previous file (if any) was left unchanged; try again"
        raise ProfileError(f"{path}: could not write {what}: {cause}; {fix}.") from e
    try:  # make the rename itself durable; not possible on every platform
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _read_json(path) -> Any:
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ProfileError(
            f"{path}: no such profile file; check the path, create one with "
            f"`latency-lab profile --out {path}`, or use a shipped profile name "
            f"(see `device_profiles.available()`).") from None
    except IsADirectoryError:
        raise ProfileError(f"{path}: is a directory, not a profile file; pass the path of "
                           f"the .json file.") from None
    except UnicodeDecodeError as e:
        raise ProfileError(f"{path}: is not UTF-8 text ({e.reason} at byte {e.start}); "
                           f"a profile is a JSON text file.") from None
    except OSError as e:
        raise ProfileError(f"{path}: cannot read the profile: {e.strerror or e}; check the "
                           f"file's permissions.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(
            f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}; fix the "
            f"file or re-create it with `latency-lab profile`.") from None
    except RecursionError:
        raise ProfileError(
            f"{path}: JSON nested too deeply to be a profile; re-create it with "
            f"`latency-lab profile`.") from None
    except ValueError as e:  # e.g. an integer past Python's digit limit
        raise ProfileError(f"{path}: unreadable JSON value ({e}); fix the file or "
                           f"re-create it with `latency-lab profile`.") from None


# ---------------------------------------------------------------------------------
# DeviceProfile
# ---------------------------------------------------------------------------------


class DeviceProfile:
    """A validated device profile (always at CURRENT_VERSION in memory).

    Treat it as immutable: `with_samples` and `replace` return new
    profiles; `save` writes atomically.
    """

    def __init__(self, data: dict, *, source: str = "<dict>"):
        self.source = str(source)
        ctx = _Ctx(self.source)
        try:
            upgraded = upgrade(data, self.source)
            self._data = _validate_v2(ctx, upgraded)
        except RecursionError:
            raise ProfileError(f"{self.source}: nested too deeply to be a profile; "
                               f"{_FIX_HINT}.") from None
        self._samples = tuple(Sample.from_dict(s, self.source, f"samples[{i}]")
                              for i, s in enumerate(self._data["samples"]))

    # -- construction / IO ---------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> "DeviceProfile":
        return cls(data, source=source)

    @classmethod
    def load(cls, path) -> "DeviceProfile":
        return cls(_read_json(path), source=os.fspath(path))

    @classmethod
    def create(cls, *, device: dict, runtime: dict, roofline: dict,
               provenance: dict | None = None, overhead: dict | None = None,
               samples: Iterable = (),
               calibration: dict | None = None, progress: dict | None = None,
               created_utc: str | None = None, source: str = "<new profile>",
               ) -> "DeviceProfile":
        """Build a new current-version profile, filling schema, version, creation time,
        tool version and the optional sections."""
        from latency_lab import __version__

        data = {
            "schema": SCHEMA,
            "version": CURRENT_VERSION,
            "created_utc": created_utc or utc_now(),
            "tool_version": __version__,
            "device": device,
            "runtime": runtime,
            "provenance": provenance if provenance is not None else {"kind": "measured",
                                                                     "sources": []},
            "roofline": roofline,
            "overhead": overhead if overhead is not None else {"per_op_ms": 0.0,
                                                               "per_invocation_ms": 0.0},
            "samples": [_sample_dict(s) for s in samples],
            "calibration": calibration or {},
        }
        if progress is not None:
            data["progress"] = progress
        return cls(data, source=source)

    def to_dict(self) -> dict:
        return copy.deepcopy(self._data)

    def save(self, path) -> Path:
        write_json_atomic(path, self._data)
        return Path(path)

    def replace(self, **sections: Any) -> "DeviceProfile":
        """A new profile with top-level sections replaced (validated), e.g.
        ``profile.replace(calibration={...}, progress=None)``; ``fitted=None`` drops
        the stored fitted models."""
        data = self.to_dict()
        for key, value in sections.items():
            if key not in _TOP_LEVEL_FIELDS or key in ("schema", "version"):
                raise ProfileError(
                    f"{self.source}: cannot replace field {key!r}; replaceable fields: "
                    f"{', '.join(k for k in _TOP_LEVEL_FIELDS if k not in ('schema', 'version'))}.")
            if key == "samples":
                value = [_sample_dict(s) for s in value]
            if value is None and key in ("progress", "fitted"):
                data.pop(key, None)
            else:
                data[key] = copy.deepcopy(value)
        return DeviceProfile(data, source=self.source)

    def with_samples(self, samples: Iterable, *, progress: dict | None = None
                     ) -> "DeviceProfile":
        """A new profile whose samples are exactly ``samples`` (Sample or dict)."""
        sections: dict[str, Any] = {"samples": list(samples)}
        if progress is not None:
            sections["progress"] = progress
        return self.replace(**sections)

    # -- properties ----------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return self._data["version"]

    @property
    def created_utc(self) -> str:
        return self._data["created_utc"]

    @property
    def tool_version(self) -> str:
        return self._data["tool_version"]

    @property
    def device(self) -> dict:
        return copy.deepcopy(self._data["device"])

    @property
    def device_kind(self) -> str:
        return self._data["device"]["kind"]

    @property
    def device_name(self) -> str:
        return self._data["device"]["name"]

    @property
    def fingerprint(self) -> str | None:
        return self._data["device"]["fingerprint"]

    @property
    def runtime(self) -> dict:
        return dict(self._data["runtime"])

    @property
    def runtime_name(self) -> str:
        return self._data["runtime"]["name"]

    @property
    def threads(self) -> int | None:
        return self._data["runtime"]["threads"]

    @property
    def provenance(self) -> dict:
        return copy.deepcopy(self._data["provenance"])

    @property
    def provenance_kind(self) -> str:
        return self._data["provenance"]["kind"]

    @property
    def roofline(self) -> dict:
        return copy.deepcopy(self._data["roofline"])

    @property
    def memory_bytes_per_s(self) -> float:
        return self._data["roofline"]["memory_bytes_per_s"]

    @property
    def per_op_overhead_ms(self) -> float:
        return self._data["overhead"]["per_op_ms"]

    @property
    def per_invocation_overhead_ms(self) -> float:
        return self._data["overhead"]["per_invocation_ms"]

    @property
    def samples(self) -> list[Sample]:
        return list(self._samples)

    @property
    def sample_keys(self) -> frozenset:
        return frozenset(s.key for s in self._samples)

    @property
    def calibration(self) -> dict:
        return copy.deepcopy(self._data["calibration"])

    @property
    def progress(self) -> dict | None:
        p = self._data.get("progress")
        return dict(p) if p is not None else None

    @property
    def fitted(self) -> dict:
        """Fitted predictor models stored beside the samples (derived data for fast
        loads, see `LookupTableModel.fitted_section`); {} when there are none."""
        return copy.deepcopy(self._data.get("fitted") or {})

    # -- queries -------------------------------------------------------------------

    def peak_flops_per_s(self, op_class: str) -> float:
        ceilings = self._data["roofline"]["compute_flops_per_s"]
        if op_class not in ceilings:
            raise ProfileError(
                f"{self.source}: no compute ceiling for op class {op_class!r}; this profile "
                f"has: {', '.join(ceilings)}. Use one of those (or re-profile to add it).")
        return ceilings[op_class]

    def samples_for(self, op: str) -> list[Sample]:
        return [s for s in self._samples if s.op == op]

    def check_device(self, fingerprint: str | None, name: str | None = None) -> bool:
        """True when the current device matches the profile (or either side is unknown).
        On a mismatch, warns DeviceMismatchWarning naming both devices and returns False."""
        mine = self.fingerprint
        if mine is None or fingerprint is None or fingerprint == mine:
            return True
        warnings.warn(DeviceMismatchWarning(
            f"{self.source}: profile was measured on device {self.device_name!r} "
            f"(fingerprint {mine}) but the current device is {name or 'unnamed'!r} "
            f"(fingerprint {fingerprint}); predictions may not fit this device. Re-run "
            f"`latency-lab profile` on this device or pass the matching profile."),
            stacklevel=2)
        return False

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for s in self._samples:
            counts[s.op] = counts.get(s.op, 0) + 1
        unstable = unstable_count(self._samples)
        d, r, prov = self._data["device"], self._data["runtime"], self._data["provenance"]
        out = {
            "source": self.source,
            "version": self.schema_version,
            "created_utc": self.created_utc,
            "device": {"kind": d["kind"], "name": d["name"], "fingerprint": d["fingerprint"]},
            "runtime": dict(r),
            "provenance": {"kind": prov["kind"], "sources": len(prov["sources"])},
            "ceilings": {
                "compute_flops_per_s": dict(self._data["roofline"]["compute_flops_per_s"]),
                "memory_bytes_per_s": self.memory_bytes_per_s,
                "precision": self._data["roofline"]["precision"],
            },
            "overhead": dict(self._data["overhead"]),
            "samples": {"total": len(self._samples), "unstable": unstable,
                        "per_op": dict(sorted(counts.items()))},
        }
        if "progress" in self._data:
            out["progress"] = dict(self._data["progress"])
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceProfile):
            return NotImplemented
        return self._data == other._data

    __hash__ = None  # mutable-looking content; compare with ==

    def __repr__(self) -> str:
        return (f"DeviceProfile(device={self.device_name!r}, kind={self.device_kind!r}, "
                f"runtime={self.runtime_name!r}, provenance={self.provenance_kind!r}, "
                f"samples={len(self._samples)}, source={self.source!r})")


def _sample_dict(s: Any) -> dict:
    return s.to_dict() if isinstance(s, Sample) else s


def load_profile(spec) -> DeviceProfile:
    """A DeviceProfile (returned as is), a path to a .json file, or the name of a shipped
    profile (see `device_profiles.available()`)."""
    if isinstance(spec, DeviceProfile):
        return spec
    if isinstance(spec, os.PathLike):
        return DeviceProfile.load(spec)
    if not isinstance(spec, str):
        raise ProfileError(
            f"cannot load a device profile from {type(spec).__name__} {spec!r:.60}; pass a "
            f"DeviceProfile, a path to a .json file, or a shipped profile name.")
    if spec.lower().endswith(".json") or os.path.exists(spec):
        return DeviceProfile.load(spec)
    import device_profiles

    if device_profiles.normalize_name(spec) in device_profiles.available():
        return DeviceProfile.load(device_profiles.path(spec))
    raise ProfileError(
        f"{spec!r} is neither a profile file nor a shipped profile name. Shipped profiles: "
        f"{', '.join(device_profiles.available())}. A path must end in .json or exist.")
