"""device_profiles: the shipped spec profiles match scripts/make_spec_profiles.py."""

import json

import pytest

import device_profiles
from latency_lab.errors import ProfileError
from latency_lab.profile import OP_CLASSES, DeviceProfile, load_profile
from script_helpers import load_script


EXPECTED = ["a100", "h100", "k80", "l4", "p100", "p4", "t4", "tpu_v4", "tpu_v5e", "tpuv2",
            "v100", "v100_fp32"]


GEN = load_script("make_spec_profiles")


def test_available_lists_all_devices():
    names = device_profiles.available()
    assert names == sorted(names)
    assert set(EXPECTED) <= set(names)
    assert set(GEN.SPECS) <= set(names)


@pytest.mark.parametrize("name", EXPECTED)
def test_shipped_profile_loads_and_matches_table(name):
    p = load_profile(name)
    spec = GEN.SPECS[name]
    assert p.provenance_kind == "spec"
    assert p.runtime_name == "spec" and p.threads is None
    assert p.runtime["batch"] == 1 and p.runtime["dtype"] == "float32"
    assert p.device_kind == spec["kind"] and p.fingerprint is None
    for c in OP_CLASSES:
        assert p.peak_flops_per_s(c) == spec["peak_flops_per_s"]
    assert p.memory_bytes_per_s == spec["memory_bytes_per_s"]
    assert p.roofline["precision"] == spec["precision"]
    assert p.per_op_overhead_ms == 0.0 and p.per_invocation_overhead_ms == 0.0
    assert p.samples == []
    sources = p.provenance["sources"]
    assert sources and all(s["citation"].strip() for s in sources)
    assert all(s.get("url", "").startswith("http") for s in sources)
    quantities = [s["quantity"] for s in sources]
    assert quantities[:2] == ["peak_flops_per_s", "memory_bytes_per_s"]
    assert sources[0]["value"] == spec["peak_flops_per_s"]
    assert sources[1]["value"] == spec["memory_bytes_per_s"]
    assert "overhead" in p.provenance["notes"]


def test_shipped_files_are_up_to_date(tmp_path):
    """The JSON files are exactly what the generator produces from its table."""
    for name in GEN.SPECS:
        shipped = json.loads(device_profiles.path(name).read_text())
        assert shipped == GEN.build(name).to_dict(), name
    assert GEN.main(["--check"]) == 0


def test_generator_writes_to_out_dir(tmp_path):
    assert GEN.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(GEN.SPECS)
    assert DeviceProfile.load(tmp_path / "t4.json") == load_profile("t4")


def test_morphnet_numbers():
    """MorphNet's PEAK_COMPUTE (GFLOP/s) and MEMORY_BANDWIDTH (GB/s), unchanged."""
    table = {"k80": (8740, 480), "p4": (5500, 192), "t4": (8100, 300),
             "p100": (9300, 732), "v100": (125000, 900), "tpuv2": (22500, 300)}
    for name, (gflops, gbps) in table.items():
        p = load_profile(name)
        assert p.peak_flops_per_s("dense") == gflops * 1e9
        assert p.memory_bytes_per_s == gbps * 1e9
        assert "morph-net" in p.provenance["sources"][0]["url"]


def test_v100_precisions_are_explicit():
    assert "tensor" in load_profile("v100").roofline["precision"]
    fp32 = load_profile("v100_fp32")
    assert fp32.roofline["precision"] == "fp32"
    assert fp32.peak_flops_per_s("dense") == 15.7e12


@pytest.mark.parametrize("name", ["T4", "t4", "V100_FP32", "tpu-v4", "TPU_V5E", "t4.json"])
def test_shipped_names_are_case_insensitive(name):
    assert isinstance(DeviceProfile.load(device_profiles.path(name)), DeviceProfile)
    if not name.endswith(".json"):  # a name ending in .json is a path to load_profile
        assert load_profile(name) == DeviceProfile.load(device_profiles.path(name))


def test_unknown_name_lists_available():
    with pytest.raises(ProfileError) as e:
        device_profiles.path("z80")
    msg = str(e.value)
    assert "'z80'" in msg
    for name in EXPECTED:
        assert name in msg


def test_load_profile_by_name_path_and_object(tmp_path):
    by_name = load_profile("T4")
    by_path = load_profile(device_profiles.path("t4"))
    assert by_name == by_path
    assert load_profile(by_name) is by_name
    copy = tmp_path / "t4_copy.json"
    by_name.save(copy)
    assert load_profile(str(copy)) == by_name


MEASURED = [n for n in device_profiles.available() if n not in GEN.SPECS]


def test_a_measured_profile_of_this_kind_of_machine_is_shipped():
    assert "xeon_vm_2c_litert" in MEASURED


@pytest.mark.parametrize("name", MEASURED)
def test_shipped_measured_profiles_load_and_fit(name):
    from latency_lab.predictors import LookupTableModel

    p = load_profile(name)
    assert p.provenance_kind == "measured"
    assert p.runtime_name in ("litert", "keras") and p.threads == 1
    assert p.fingerprint and p.progress["complete"]
    assert len(p.samples) > 100
    model = LookupTableModel(p).fit()
    assert model.models_, "lookup tables fitted from the stored samples"


@pytest.mark.parametrize("name", MEASURED)
def test_shipped_measured_profiles_store_a_current_lookup_fit(name):
    """Loads of a shipped profile skip the slow hyperparameter search: its stored fit
    matches the samples and the lookup code (after changing either, run
    `scripts/fit_profile.py --shipped`). Only checkable with the scikit-learn version
    the fit was stored with; another version refits, correctly but slowly."""
    import sklearn

    from latency_lab.predictors import LookupTableModel

    p = load_profile(name)
    stored = p.fitted.get("lookup")
    assert stored, f"{name} has no fitted section; run scripts/fit_profile.py --shipped"
    if stored["scikit_learn"] != sklearn.__version__:
        pytest.skip(f"fit stored with scikit-learn {stored['scikit_learn']}, "
                    f"this is {sklearn.__version__}")
    fits = LookupTableModel(p).fit().gp_fits_
    assert set(fits.values()) == {"stored"}, (
        f"{name}: stored fit is stale for {[op for op, how in fits.items() if how != 'stored']}; "
        "run scripts/fit_profile.py --shipped")


@pytest.mark.parametrize("name", MEASURED)
def test_show_the_roofline_plot_and_the_calibration_section_count_unstable_alike(name):
    from latency_lab.plots import profile_figures, roofline_points, unstable_label
    from latency_lab.profile import unstable_count

    p = load_profile(name)
    n = unstable_count(p.samples)
    assert n == sum(1 for s in p.samples if s.unstable)
    assert p.summary()["samples"]["unstable"] == n  # `show --json`
    fig = profile_figures(p)  # `show`'s table
    assert fig["unstable_total"] == n
    assert sum(op["unstable"] for op in fig["samples_per_op"].values()) == n
    assert p.calibration["unstable_samples"] == n  # written by the profiler
    assert p.calibration["samples"] == len(p.samples)
    plotted = sum(1 for pt in roofline_points(p)[0] if pt.unstable)
    assert unstable_label(plotted, n).startswith(f"unstable ({n}")  # the plot's legend


def test_the_roofline_legend_says_how_many_unstable_samples_it_cannot_draw():
    from latency_lab.plots import unstable_label

    assert unstable_label(5, 5) == "unstable (5)"
    assert unstable_label(192, 212) == "unstable (212; 20 not plotted)"
