"""latency_lab.profile: validation, upgrade, atomic writes, device checks."""

import copy
import json
import math
import os
import warnings

import pytest

from latency_lab import profile as profile_mod
from latency_lab.errors import ProfileError
from latency_lab.profile import (
    CURRENT_VERSION,
    SCHEMA,
    DeviceMismatchWarning,
    DeviceProfile,
    Sample,
    load_profile,
    sample_key,
    upgrade,
    write_json_atomic,
)


def make_v2(**overrides):
    """A small, complete version-2 profile dict."""
    data = {
        "schema": SCHEMA,
        "version": 2,
        "created_utc": "2026-11-25T06:50:00Z",
        "tool_version": "0.1.0",
        "device": {"kind": "cpu", "name": "Test CPU", "fingerprint": "cpu-abc123",
                   "info": {"cores": 2, "flags": ["avx2", "fma"]}},
        "runtime": {"name": "litert", "version": "1.2.0", "backend": "xnnpack",
                    "device": "cpu", "threads": 1, "dtype": "float32", "batch": 1},
        "provenance": {"kind": "measured", "sources": []},
        "roofline": {"compute_flops_per_s": {"dense": 4.0e10, "depthwise": 1.0e10,
                                             "elementwise": 2.0e9},
                     "memory_bytes_per_s": 1.5e10, "precision": "fp32"},
        "overhead": {"per_op_ms": 0.002, "per_invocation_ms": 0.05},
        "samples": [
            {"op": "conv2d", "config": {"h": 56, "w": 56, "c_in": 32, "c_out": 64, "k": 3},
             "median_ms": 1.25, "iqr_ms": 0.01, "repeats": 5,
             "raw_ms": [1.24, 1.25, 1.25, 1.26, 1.27], "unstable": False},
            {"op": "depthwise_conv2d", "config": {"h": 28, "w": 28, "c": 64, "k": 3,
                                                 "same": True, "act": "relu"},
             "median_ms": 0.3, "iqr_ms": 0.05, "repeats": 3, "raw_ms": [0.3, 0.31, 0.28],
             "unstable": True},
        ],
        "calibration": {"scale": 1.1},
        "progress": {"complete": False, "planned": 10, "done": 2, "elapsed_s": 12.5},
    }
    data.update(overrides)
    return data


def make_v1(**overrides):
    data = {"schema": SCHEMA, "version": 1, "name": "NVIDIA T4", "kind": "gpu",
            "peak_flops_per_s": 8.1e12, "memory_bytes_per_s": 3.0e11,
            "source": "MorphNet resource_function.py"}
    data.update(overrides)
    return data


def _set(data, path, value):
    """Set (or delete, when value is _DELETE) a dotted path with [i] indices."""
    parts = []
    for part in path.split("."):
        if "[" in part:
            name, idx = part[:-1].split("[")
            parts += [name, int(idx)]
        else:
            parts.append(part)
    obj = data
    for p in parts[:-1]:
        obj = obj[p]
    if value is _DELETE:
        del obj[parts[-1]]
    else:
        obj[parts[-1]] = value


_DELETE = object()


# --- round trip ------------------------------------------------------------------


def test_round_trip_save_load(tmp_path):
    p = DeviceProfile(make_v2())
    out = tmp_path / "p.json"
    p.save(out)
    q = DeviceProfile.load(out)
    assert q.to_dict() == p.to_dict()
    assert q == p
    assert q.schema_version == CURRENT_VERSION
    assert q.device_kind == "cpu" and q.device_name == "Test CPU"
    assert q.fingerprint == "cpu-abc123"
    assert q.runtime_name == "litert" and q.threads == 1
    assert q.runtime["backend"] == "xnnpack"
    assert q.provenance_kind == "measured"
    assert q.peak_flops_per_s("depthwise") == 1.0e10
    assert q.memory_bytes_per_s == 1.5e10
    assert q.per_op_overhead_ms == 0.002 and q.per_invocation_overhead_ms == 0.05
    assert q.calibration == {"scale": 1.1}
    assert q.progress == {"complete": False, "planned": 10, "done": 2, "elapsed_s": 12.5}
    # Only the final file is left, no temporary files.
    assert [f.name for f in tmp_path.iterdir()] == ["p.json"]


def test_to_dict_is_a_copy():
    p = DeviceProfile(make_v2())
    d = p.to_dict()
    d["device"]["name"] = "changed"
    d["samples"].clear()
    assert p.device_name == "Test CPU" and len(p.samples) == 2
    src = make_v2()
    p2 = DeviceProfile(src)
    src["roofline"]["memory_bytes_per_s"] = 1.0
    assert p2.memory_bytes_per_s == 1.5e10


def test_optional_sections_default():
    data = make_v2()
    for key in ("calibration", "progress"):
        del data[key]
    p = DeviceProfile(data)
    assert p.calibration == {} and p.progress is None


def test_samples_round_trip(tmp_path):
    p = DeviceProfile(make_v2())
    s = p.samples_for("conv2d")
    assert len(s) == 1 and isinstance(s[0], Sample)
    assert s[0].raw_ms == (1.24, 1.25, 1.25, 1.26, 1.27)
    assert Sample.from_dict(s[0].to_dict()) == s[0]
    assert p.samples_for("dense") == []
    new = Sample("dense", {"rows": 1, "c_in": 128, "c_out": 10}, 0.05, 0.001, 7,
                 [0.05] * 7)
    p2 = p.with_samples(list(p.samples) + [new], progress={
        "complete": True, "planned": 3, "done": 3, "elapsed_s": 20.0})
    assert len(p.samples) == 2  # the original is unchanged
    p2.save(tmp_path / "p.json")
    q = DeviceProfile.load(tmp_path / "p.json")
    assert q.samples == p2.samples
    assert q.samples_for("dense") == [new]
    assert q.progress["complete"] is True
    assert sample_key("dense", {"c_out": 10, "c_in": 128, "rows": 1}) in q.sample_keys


def test_with_samples_replaces_all():
    p = DeviceProfile(make_v2())
    assert p.with_samples([]).samples == []


def test_sample_key_stable_under_config_order():
    a = Sample("conv2d", {"h": 8, "w": 8, "c_in": 3}, 1.0, 0.0, 1, [1.0])
    b = Sample("conv2d", {"c_in": 3, "w": 8, "h": 8}, 1.0, 0.0, 1, [1.0])
    c = Sample("conv2d", {"c_in": 4, "w": 8, "h": 8}, 1.0, 0.0, 1, [1.0])
    assert a.key == b.key != c.key
    assert a.key.startswith("conv2d|")
    assert hash(a) == hash(b)
    # Survives a JSON round trip.
    assert Sample.from_dict(json.loads(json.dumps(a.to_dict()))).key == a.key


@pytest.mark.parametrize("field, value", [
    ("median_ms", 0.0), ("median_ms", float("nan")), ("iqr_ms", -1.0), ("repeats", 0),
    ("raw_ms", [1.0, -1.0]), ("op", ""), ("unstable", "no"),
])
def test_sample_constructor_validates(field, value):
    kwargs = dict(op="conv2d", config={"h": 1}, median_ms=1.0, iqr_ms=0.0, repeats=1,
                  raw_ms=[1.0], unstable=False)
    kwargs[field] = value
    with pytest.raises(ProfileError, match=field):
        Sample(**kwargs)


def test_create_fills_header():
    p = DeviceProfile.create(
        device={"kind": "cpu", "name": "x", "fingerprint": None, "info": {}},
        runtime={"name": "keras", "version": "3.5", "backend": "jax", "device": "cpu",
                 "threads": 1, "dtype": "float32", "batch": 1},
        roofline={"compute_flops_per_s": {"dense": 1.0, "depthwise": 1.0,
                                          "elementwise": 1.0},
                  "memory_bytes_per_s": 1.0, "precision": "fp32"})
    d = p.to_dict()
    assert d["schema"] == SCHEMA and d["version"] == CURRENT_VERSION
    assert d["tool_version"] == "0.1.0" and d["created_utc"].endswith("Z")
    assert p.provenance_kind == "measured" and p.samples == []


def test_replace_validates():
    p = DeviceProfile(make_v2())
    q = p.replace(calibration={"scale": 2.0}, progress=None)
    assert q.calibration == {"scale": 2.0} and q.progress is None
    with pytest.raises(ProfileError, match="overhead.per_op_ms"):
        p.replace(overhead={"per_op_ms": -1.0, "per_invocation_ms": 0.0})
    with pytest.raises(ProfileError, match="cannot replace"):
        p.replace(version=3)


def test_peak_flops_unknown_class_lists_classes():
    p = DeviceProfile(make_v2())
    with pytest.raises(ProfileError) as e:
        p.peak_flops_per_s("pooling")
    msg = str(e.value)
    assert "pooling" in msg and "dense" in msg and "depthwise" in msg and "elementwise" in msg


def test_summary():
    s = DeviceProfile(make_v2()).summary()
    assert s["device"]["name"] == "Test CPU"
    assert s["samples"]["per_op"] == {"conv2d": 1, "depthwise_conv2d": 1}
    assert s["samples"]["total"] == 2 and s["samples"]["unstable"] == 1
    assert s["ceilings"]["memory_bytes_per_s"] == 1.5e10
    assert s["overhead"]["per_op_ms"] == 0.002
    assert s["provenance"]["kind"] == "measured"
    json.dumps(s)  # printable by `show --json`


# --- upgrade ---------------------------------------------------------------------


def test_v1_upgrades_to_v2(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(make_v1()))
    p = DeviceProfile.load(path)
    assert p.schema_version == 2
    assert p.device_kind == "gpu" and p.device_name == "NVIDIA T4"
    assert p.fingerprint is None
    for c in ("dense", "depthwise", "elementwise"):
        assert p.peak_flops_per_s(c) == 8.1e12
    assert p.memory_bytes_per_s == 3.0e11
    assert p.per_op_overhead_ms == 0.0 and p.per_invocation_overhead_ms == 0.0
    assert p.samples == []
    assert p.runtime_name == "spec" and p.runtime["batch"] == 1
    assert p.runtime["dtype"] == "float32" and p.threads is None
    prov = p.provenance
    assert prov["kind"] == "spec"
    assert {s["quantity"] for s in prov["sources"]} == {"peak_flops_per_s",
                                                         "memory_bytes_per_s"}
    assert all(s["citation"] == "MorphNet resource_function.py" for s in prov["sources"])
    # Saving writes the current version.
    p.save(tmp_path / "new.json")
    assert json.loads((tmp_path / "new.json").read_text())["version"] == 2


def test_v1_without_source_still_cited():
    data = make_v1()
    del data["source"]
    p = DeviceProfile(data, source="old.json")
    assert all(s["citation"] for s in p.provenance["sources"])


def test_upgrade_function_does_not_mutate_input():
    data = make_v1()
    before = copy.deepcopy(data)
    out = upgrade(data, "x.json")
    assert data == before and out["version"] == 2


def test_upgrades_are_a_registry():
    assert set(profile_mod._UPGRADES) == {1}
    assert all(callable(f) for f in profile_mod._UPGRADES.values())


@pytest.mark.parametrize("field, value", [
    ("peak_flops_per_s", -3.0), ("memory_bytes_per_s", float("inf")), ("kind", "fpga"),
    ("name", 7),
])
def test_v1_bad_fields(field, value):
    with pytest.raises(ProfileError, match=field):
        DeviceProfile(make_v1(**{field: value}), source="old.json")


def test_too_new_version():
    with pytest.raises(ProfileError) as e:
        DeviceProfile(make_v2(version=99), source="p.json")
    msg = str(e.value)
    assert "p.json" in msg and "99" in msg and "1, 2" in msg
    assert "upgrade latency-lab" in msg


@pytest.mark.parametrize("version", ["x", None, 2.0, True, 0, -1])
def test_bad_version(version):
    with pytest.raises(ProfileError, match="version") as e:
        DeviceProfile(make_v2(version=version), source="p.json")
    assert "supported versions: 1, 2" in str(e.value)


# --- bad input, generated --------------------------------------------------------

REQUIRED_PATHS = [
    "schema", "version", "created_utc", "tool_version",
    "device", "device.kind", "device.name", "device.fingerprint", "device.info",
    "runtime", "runtime.name", "runtime.version", "runtime.backend", "runtime.device",
    "runtime.threads", "runtime.dtype", "runtime.batch",
    "provenance", "provenance.kind",
    "roofline", "roofline.compute_flops_per_s", "roofline.compute_flops_per_s.dense",
    "roofline.compute_flops_per_s.depthwise", "roofline.compute_flops_per_s.elementwise",
    "roofline.memory_bytes_per_s", "roofline.precision",
    "overhead", "overhead.per_op_ms", "overhead.per_invocation_ms",
    "samples",
    "samples[0].op", "samples[0].config", "samples[0].median_ms", "samples[0].iqr_ms",
    "samples[0].repeats", "samples[0].raw_ms",
    "progress.complete", "progress.planned", "progress.done", "progress.elapsed_s",
]


@pytest.mark.parametrize("path", REQUIRED_PATHS)
def test_missing_required_field_is_named(path):
    data = make_v2()
    _set(data, path, _DELETE)
    with pytest.raises(ProfileError) as e:
        DeviceProfile(data, source="p.json")
    msg = str(e.value)
    assert msg.startswith("p.json: ")
    assert f"'{path}'" in msg


NUMERIC_PATHS = [
    # (path, strictly positive)
    ("roofline.compute_flops_per_s.dense", True),
    ("roofline.compute_flops_per_s.depthwise", True),
    ("roofline.compute_flops_per_s.elementwise", True),
    ("roofline.memory_bytes_per_s", True),
    ("overhead.per_op_ms", False),
    ("overhead.per_invocation_ms", False),
    ("samples[0].median_ms", True),
    ("samples[1].iqr_ms", False),
    ("samples[0].repeats", True),
    ("samples[0].raw_ms[2]", True),
    ("samples[0].config.h", None),  # any finite number is fine in a config
    ("runtime.threads", True),
    ("runtime.batch", True),
    ("progress.planned", False),
    ("progress.elapsed_s", False),
]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1, "str", None, [1.0]])
@pytest.mark.parametrize("path, positive", NUMERIC_PATHS)
def test_bad_numbers_name_the_path(path, positive, bad):
    if path == "runtime.threads" and bad is None:
        pytest.skip("threads may be null (unknown)")
    if path == "samples[0].config.h" and (bad == -1 or bad == "str"):
        pytest.skip("config values may be negative numbers or strings")
    data = make_v2()
    _set(data, path, bad)
    with pytest.raises(ProfileError) as e:
        DeviceProfile(data, source="p.json")
    msg = str(e.value)
    assert msg.startswith("p.json: ") and f"'{path}'" in msg


@pytest.mark.parametrize("path", [p for p, positive in NUMERIC_PATHS if positive])
def test_zero_rejected_where_positive_required(path):
    data = make_v2()
    _set(data, path, 0)
    with pytest.raises(ProfileError) as e:
        DeviceProfile(data, source="p.json")
    assert f"'{path}'" in str(e.value)


def test_error_message_shape():
    data = make_v2()
    data["roofline"]["memory_bytes_per_s"] = -3.0
    with pytest.raises(ProfileError) as e:
        DeviceProfile(data, source="p.json")
    assert str(e.value).startswith(
        "p.json: field 'roofline.memory_bytes_per_s' must be a finite number > 0, got -3.0")


@pytest.mark.parametrize("path, value", [
    ("device.kind", "fpga"), ("runtime.name", "onnx"), ("provenance.kind", "guess"),
    ("device.name", ""), ("device.fingerprint", 5), ("device.info", []),
    ("runtime.dtype", 32), ("roofline.precision", None), ("created_utc", "yesterday"),
    ("samples", {}), ("samples[0].unstable", "yes"), ("samples[0].config", [1]),
    ("samples[0].config.h", {"nested": 1}), ("progress.complete", 1),
    ("device.info.cores", float("nan")), ("calibration.scale", float("inf")),
    ("progress.done", 11),
])
def test_wrong_types_and_values_name_the_path(path, value):
    data = make_v2()
    _set(data, path, value)
    with pytest.raises(ProfileError) as e:
        DeviceProfile(data, source="p.json")
    assert f"'{path}'" in str(e.value)


@pytest.mark.parametrize("path", ["", "device", "runtime", "roofline", "overhead",
                                  "samples[0]", "progress", "provenance"])
def test_unknown_fields_rejected(path):
    data = make_v2()
    target = data
    if path:
        _set(data, path + ".typo_field", 1)
    else:
        target["typo_field"] = 1
    with pytest.raises(ProfileError, match="typo_field"):
        DeviceProfile(data, source="p.json")


def test_spec_provenance_requires_source():
    data = make_v2(provenance={"kind": "spec", "sources": []})
    with pytest.raises(ProfileError, match="provenance.sources"):
        DeviceProfile(data)
    data = make_v2(provenance={"kind": "spec", "sources": [{"quantity": "x"}]})
    with pytest.raises(ProfileError, match=r"provenance.sources\[0\].citation"):
        DeviceProfile(data)
    ok = make_v2(provenance={"kind": "spec", "notes": "n", "sources": [
        {"quantity": "peak_flops_per_s", "value": 1e12, "unit": "FLOP/s",
         "precision": "fp32", "citation": "datasheet", "url": None}]})
    assert DeviceProfile(ok).provenance_kind == "spec"


def test_measured_provenance_needs_no_sources():
    data = make_v2(provenance={"kind": "measured"})
    assert DeviceProfile(data).provenance["sources"] == []


@pytest.mark.parametrize("text, line", [
    ('{"schema": "latency-lab.device-profile",\n "version": 2,\n "device": }', 3),
    ('{"schema": "latency-lab.device-profile"', 1),
    ('', 1),
    ('{\n\n\n  "a": 1,,\n}', 4),
])
def test_malformed_json_reports_line(tmp_path, text, line):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ProfileError) as e:
        DeviceProfile.load(path)
    msg = str(e.value)
    assert str(path) in msg and "malformed JSON" in msg and f"line {line}" in msg
    assert "column" in msg


def test_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="no such profile file"):
        DeviceProfile.load(tmp_path / "nope.json")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ProfileError, match="directory"):
        DeviceProfile.load(tmp_path)


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProfileError, match="UTF-8"):
        DeviceProfile.load(path)


@pytest.mark.parametrize("schema", ["latency-lab.model", "", None, 3])
def test_wrong_schema(schema):
    with pytest.raises(ProfileError) as e:
        DeviceProfile(make_v2(schema=schema), source="p.json")
    assert "'schema'" in str(e.value) and SCHEMA in str(e.value)


@pytest.mark.parametrize("payload", [[], [make_v2()], "profile", 3, None])
def test_top_level_not_object(tmp_path, payload):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ProfileError, match="JSON object at the top level"):
        DeviceProfile.load(path)


# --- atomic writes ---------------------------------------------------------------


def _leftovers(directory):
    return sorted(f.name for f in directory.iterdir())


def test_write_into_missing_directory(tmp_path):
    target = tmp_path / "missing" / "p.json"
    with pytest.raises(ProfileError) as e:
        DeviceProfile(make_v2()).save(target)
    assert str(target) in str(e.value)
    assert not (tmp_path / "missing").exists()
    assert _leftovers(tmp_path) == []


def test_write_into_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")
        except OSError:
            pass
        else:  # running as root: permissions are not enforced
            probe.unlink()
            pytest.skip("chmod does not stop writes here (running as root)")
        target = ro / "p.json"
        with pytest.raises(ProfileError) as e:
            write_json_atomic(target, {"a": 1})
        assert str(target) in str(e.value) and "ermission" in str(e.value)
        assert _leftovers(ro) == []
    finally:
        ro.chmod(0o755)


def test_target_is_a_directory(tmp_path):
    """os.replace onto a directory fails after the temp file exists: it must go."""
    (tmp_path / "p.json").mkdir()
    with pytest.raises(ProfileError, match="p.json"):
        write_json_atomic(tmp_path / "p.json", {"a": 1})
    assert _leftovers(tmp_path) == ["p.json"]


def test_failed_serialization_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "p.json"
    good = DeviceProfile(make_v2())
    good.save(target)
    before = target.read_bytes()

    def boom(obj, fp, **kwargs):
        fp.write('{"schema": "latency-lab.device-profile", "vers')
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(profile_mod.json, "dump", boom)
    with pytest.raises(ProfileError) as e:
        DeviceProfile(make_v2(tool_version="9.9")).save(target)
    assert str(target) in str(e.value) and "disk on fire" in str(e.value)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == ["p.json"]
    assert DeviceProfile.load(target) == good


def test_non_json_data_is_rejected_without_partial_file(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(ProfileError, match="not valid JSON"):
        write_json_atomic(target, {"a": float("nan")})
    with pytest.raises(ProfileError, match="not valid JSON"):
        write_json_atomic(target, {"a": object()})
    assert _leftovers(tmp_path) == []


def test_write_preserves_existing_mode(tmp_path):
    target = tmp_path / "p.json"
    target.write_text("{}")
    target.chmod(0o640)
    write_json_atomic(target, {"a": 1})
    assert (os.stat(target).st_mode & 0o777) == 0o640
    assert json.loads(target.read_text()) == {"a": 1}


# --- device checks ---------------------------------------------------------------


def test_check_device_mismatch_warns_with_both():
    p = DeviceProfile(make_v2())
    with pytest.warns(DeviceMismatchWarning) as rec:
        assert p.check_device("cpu-zzz999", name="Other CPU") is False
    msg = str(rec[0].message)
    assert "cpu-abc123" in msg and "cpu-zzz999" in msg
    assert "Test CPU" in msg and "Other CPU" in msg


def test_check_device_match_and_unknown_do_not_warn():
    p = DeviceProfile(make_v2())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert p.check_device("cpu-abc123", name="Test CPU") is True
        assert p.check_device(None) is True
        data = make_v2()
        data["device"]["fingerprint"] = None
        assert DeviceProfile(data).check_device("cpu-zzz999") is True


# --- load_profile ----------------------------------------------------------------


def test_load_profile_accepts_profile_and_path(tmp_path):
    p = DeviceProfile(make_v2())
    assert load_profile(p) is p
    path = tmp_path / "mine.json"
    p.save(path)
    assert load_profile(path) == p
    assert load_profile(str(path)) == p


def test_load_profile_unknown_name():
    with pytest.raises(ProfileError) as e:
        load_profile("no_such_device")
    msg = str(e.value)
    assert "t4" in msg and "v100" in msg and ".json" in msg


def test_load_profile_missing_json_path(tmp_path):
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(str(tmp_path / "missing.json"))


def test_load_profile_wrong_type():
    with pytest.raises(ProfileError, match="cannot load"):
        load_profile(42)


def test_nan_literal_in_file_names_field(tmp_path):
    data = make_v2()
    text = json.dumps(data).replace('"median_ms": 1.25', '"median_ms": NaN')
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(ProfileError, match=r"'samples\[0\]\.median_ms'"):
        DeviceProfile.load(path)
    assert math.isnan(json.loads(text)["samples"][0]["median_ms"])


def test_the_legacy_predictor_section_is_dropped_when_empty_and_refused_when_not(tmp_path):
    """Every profile written before 0.2 carries an empty "predictor" section nothing
    read; it loads and is not written back. Settings in it would be lost: refused."""
    data = make_v2()
    data["predictor"] = {}
    p = DeviceProfile(data)
    assert "predictor" not in p.to_dict()
    data["predictor"] = {"kind": "lookup"}
    with pytest.raises(ProfileError, match="field 'predictor'.*no version of latency-lab reads"):
        DeviceProfile(data)


# ------------------------------------------------------ the fitted section (fast loads)

_DIGEST = "0123456789abcdef" * 4


def _fitted(**model):
    m = {"hyperparameters": [0.5, 2.0, 1e-4], "data_sha256": _DIGEST}
    m.update(model)
    return {"lookup": {"key": _DIGEST, "fit_version": 1, "scikit_learn": "1.9.1",
                       "models": {"conv2d": m}}}


def test_fitted_section_round_trips_and_is_optional(tmp_path):
    prof = DeviceProfile(make_v2(fitted=_fitted()))
    assert prof.fitted == _fitted()
    path = tmp_path / "p.json"
    prof.save(path)
    assert json.loads(path.read_text())["fitted"] == _fitted()
    assert DeviceProfile.load(path) == prof
    assert DeviceProfile(make_v2()).fitted == {}
    assert "fitted" not in prof.replace(fitted=None).to_dict()
    assert DeviceProfile(make_v2()).replace(fitted=_fitted()) == prof


@pytest.mark.parametrize("fitted, path", [
    ([], "fitted"),
    ({"lookups": {}}, "fitted.lookups"),
    ({"lookup": 3}, "fitted.lookup"),
    ({"lookup": {"key": _DIGEST, "fit_version": 1, "scikit_learn": "1.9.1"}},
     "fitted.lookup.models"),
    ({"lookup": dict(_fitted()["lookup"], key="abc")}, "fitted.lookup.key"),
    ({"lookup": dict(_fitted()["lookup"], key=_DIGEST.upper())}, "fitted.lookup.key"),
    ({"lookup": dict(_fitted()["lookup"], fit_version=0)}, "fitted.lookup.fit_version"),
    ({"lookup": dict(_fitted()["lookup"], scikit_learn=1.9)}, "fitted.lookup.scikit_learn"),
    ({"lookup": dict(_fitted()["lookup"], pickle="gASV")}, "fitted.lookup.pickle"),
    ({"lookup": dict(_fitted()["lookup"], models=[])}, "fitted.lookup.models"),
    (_fitted(hyperparameters=[]), "fitted.lookup.models.conv2d.hyperparameters"),
    (_fitted(hyperparameters="0.5"), "fitted.lookup.models.conv2d.hyperparameters"),
    (_fitted(hyperparameters=[0.5, -2.0]), "fitted.lookup.models.conv2d.hyperparameters[1]"),
    (_fitted(hyperparameters=[0.5, float("nan")]),
     "fitted.lookup.models.conv2d.hyperparameters[1]"),
    (_fitted(hyperparameters=[0.5, "2"]), "fitted.lookup.models.conv2d.hyperparameters[1]"),
    (_fitted(data_sha256=None), "fitted.lookup.models.conv2d.data_sha256"),
    (_fitted(extra=1), "fitted.lookup.models.conv2d.extra"),
])
def test_malformed_fitted_section_names_the_field(fitted, path):
    with pytest.raises(ProfileError) as e:
        DeviceProfile(make_v2(fitted=fitted), source="p.json")
    assert f"'{path}'" in str(e.value) and "p.json" in str(e.value)
