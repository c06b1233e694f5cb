"""Tests for latency_lab.device_info: literal /proc/cpuinfo texts, a fake sysfs tree in
tmp_path, and a fake NVML module (no driver or GPU needed)."""

import json
import os
import sys
import types

import pytest

from latency_lab import device_info
from latency_lab.device_info import (
    collect,
    cpu_info,
    describe_mismatch,
    fingerprint,
    gpu_info,
    gpu_temperatures,
    tensorflow_devices,
)
from latency_lab.errors import InputSpecError

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
cpu MHz\t\t: 2100.000
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
cpu MHz\t\t: 2200.000
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni

processor\t: 2
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
physical id\t: 0
core id\t\t: 1
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni

processor\t: 3
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
physical id\t: 1
core id\t\t: 0
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni
"""

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs sve
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs sve
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def make_sysfs(root, cur_khz="1800000", max_khz="3900000", governor="performance", caches=True):
    cpu0 = root / "devices" / "system" / "cpu" / "cpu0"
    freq = cpu0 / "cpufreq"
    freq.mkdir(parents=True)
    if cur_khz is not None:
        (freq / "scaling_cur_freq").write_text(cur_khz + "\n")
    if max_khz is not None:
        (freq / "cpuinfo_max_freq").write_text(max_khz + "\n")
    if governor is not None:
        (freq / "scaling_governor").write_text(governor + "\n")
    if caches:
        for i, (level, kind, size) in enumerate(
            [("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "2048K"), ("3", "Unified", "105M")]
        ):
            d = cpu0 / "cache" / f"index{i}"
            d.mkdir(parents=True)
            (d / "level").write_text(level + "\n")
            (d / "type").write_text(kind + "\n")
            (d / "size").write_text(size + "\n")
    return str(root)


def test_cpu_info_x86(tmp_path):
    info = cpu_info(X86_CPUINFO, sysfs_root=make_sysfs(tmp_path))
    assert info["model"] == "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz"
    assert info["vendor"] == "GenuineIntel"
    assert info["simd_flags"] == sorted(["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"])
    assert info["cores_physical"] == 3  # (0,0) twice (hyperthreads), (0,1), (1,0)
    assert info["cores_logical"] == os.cpu_count()
    assert info["frequency_mhz"] == {"current": 1800.0, "max": 3900.0}  # sysfs kHz -> MHz
    assert info["governor"] == "performance"
    assert info["cache_bytes"]["L1d"] == 48 * 1024
    assert info["cache_bytes"]["L1i"] == 32 * 1024
    assert info["cache_bytes"]["L2"] == 2048 * 1024
    assert info["cache_bytes"]["L3"] == 105 * 1024 * 1024
    json.dumps(info)


def test_cpu_info_aarch64_features(tmp_path):
    info = cpu_info(ARM_CPUINFO, sysfs_root=str(tmp_path / "nosys"))
    assert info["simd_flags"] == ["asimd", "sve"]  # 'asimddp' etc. must not count as extra flags
    assert info["vendor"] == "ARM"
    assert "0xd0c" in info["model"]
    assert info["cores_physical"] is None  # no 'core id' lines on ARM


def test_cpu_info_falls_back_to_cpuinfo_mhz_and_none(tmp_path):
    info = cpu_info(X86_CPUINFO, sysfs_root=str(tmp_path / "missing"))
    assert info["frequency_mhz"] == {"current": 2100.0, "max": None}
    assert info["governor"] is None
    assert info["cache_bytes"] == {"L1d": None, "L1i": None, "L2": None, "L3": None}


def test_cpu_info_partial_sysfs(tmp_path):
    root = make_sysfs(tmp_path, cur_khz=None, max_khz="garbage", governor=None, caches=False)
    info = cpu_info(X86_CPUINFO, sysfs_root=root)
    assert info["frequency_mhz"] == {"current": 2100.0, "max": None}
    assert info["governor"] is None


def test_cpu_info_empty_text_never_raises(tmp_path):
    info = cpu_info("", sysfs_root=str(tmp_path))
    assert isinstance(info["model"], str) and info["model"]
    assert info["vendor"] is None and info["simd_flags"] == [] and info["cores_physical"] is None


def test_cpu_info_reads_real_machine():
    info = cpu_info()  # /proc/cpuinfo may be absent (macOS): must still work
    assert isinstance(info["model"], str)
    json.dumps(info)


# --------------------------------------------------------------------------- NVML


class NVMLError(Exception):
    pass


class FakeNVML:
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0
    NVMLError = NVMLError

    def __init__(self, fail_init=False, failing=(), temps=(61, 45)):
        self.fail_init = fail_init
        self.failing = set(failing)
        self.temps = list(temps)
        self.init_calls = self.shutdown_calls = 0
        self.devices = [
            dict(name=b"Tesla T4", uuid="GPU-aaa", total=16 * 2**30, bus=256, sm_max=1590, mem_max=5001,
                 sm=585, mem=405, power_mw=70000),
            dict(name="NVIDIA H100 80GB HBM3", uuid="GPU-bbb", total=80 * 2**30, bus=5120, sm_max=1980,
                 mem_max=2619, sm=1755, mem=2619, power_mw=700000),
        ]

    def _maybe_fail(self, name):
        if name in self.failing:
            raise NVMLError(f"{name}: Not Supported")

    def nvmlInit(self):
        self.init_calls += 1
        if self.fail_init:
            raise NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        self.shutdown_calls += 1

    def nvmlSystemGetDriverVersion(self):
        return b"535.104.05"

    def nvmlSystemGetCudaDriverVersion(self):
        return 12020

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        self._maybe_fail("nvmlDeviceGetName")
        return self.devices[h]["name"]

    def nvmlDeviceGetUUID(self, h):
        return self.devices[h]["uuid"]

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(total=self.devices[h]["total"], free=1, used=0)

    def nvmlDeviceGetMemoryBusWidth(self, h):
        self._maybe_fail("nvmlDeviceGetMemoryBusWidth")
        return self.devices[h]["bus"]

    def nvmlDeviceGetMaxClockInfo(self, h, kind):
        return self.devices[h]["sm_max" if kind == self.NVML_CLOCK_SM else "mem_max"]

    def nvmlDeviceGetClockInfo(self, h, kind):
        self._maybe_fail("nvmlDeviceGetClockInfo")
        return self.devices[h]["sm" if kind == self.NVML_CLOCK_SM else "mem"]

    def nvmlDeviceGetPowerManagementLimit(self, h):
        self._maybe_fail("nvmlDeviceGetPowerManagementLimit")
        return self.devices[h]["power_mw"]

    def nvmlDeviceGetTemperature(self, h, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        self._maybe_fail("nvmlDeviceGetTemperature")
        return self.temps[h]

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h):
        return 4

    def nvmlDeviceGetCurrPcieLinkWidth(self, h):
        return 16


def test_gpu_info_values_and_units():
    nv = FakeNVML()
    gpus = gpu_info(nv)
    assert nv.init_calls == 1 and nv.shutdown_calls == 1
    assert [g["name"] for g in gpus] == ["Tesla T4", "NVIDIA H100 80GB HBM3"]  # bytes decoded
    t4 = gpus[0]
    assert t4["uuid"] == "GPU-aaa"
    assert t4["driver_version"] == "535.104.05"
    assert t4["cuda_driver_version"] == "12.2"
    assert t4["memory_total_bytes"] == 16 * 2**30
    assert t4["bus_width_bits"] == 256
    assert t4["clocks_mhz"] == {"sm_max": 1590, "mem_max": 5001, "sm_current": 585, "mem_current": 405}
    assert t4["power_limit_w"] == 70.0  # mW -> W
    assert gpus[1]["power_limit_w"] == 700.0
    assert t4["temperature_c"] == 61
    assert t4["pcie"]["gen_current"] == 4 and t4["pcie"]["width_current"] == 16
    assert t4["pcie"]["gen_max"] is None  # function absent from this NVML -> None
    assert t4["compute_capability"] is None
    json.dumps(gpus)


@pytest.mark.parametrize(
    "failing,field,check",
    [
        ("nvmlDeviceGetMemoryBusWidth", "bus_width_bits", lambda g: g["bus_width_bits"] is None),
        ("nvmlDeviceGetPowerManagementLimit", "power_limit_w", lambda g: g["power_limit_w"] is None),
        ("nvmlDeviceGetTemperature", "temperature_c", lambda g: g["temperature_c"] is None),
        ("nvmlDeviceGetClockInfo", "clocks_mhz",
         lambda g: g["clocks_mhz"]["sm_current"] is None and g["clocks_mhz"]["sm_max"] is not None),
        ("nvmlDeviceGetName", "name", lambda g: g["name"] is None),
    ],
)
def test_gpu_info_failing_field_is_none_and_device_kept(failing, field, check):
    nv = FakeNVML(failing=[failing])
    gpus = gpu_info(nv)
    assert len(gpus) == 2
    assert all(check(g) for g in gpus)
    assert gpus[0]["memory_total_bytes"] == 16 * 2**30  # other fields still filled
    assert nv.shutdown_calls == 1


def test_gpu_info_init_failure_returns_empty():
    nv = FakeNVML(fail_init=True)
    assert gpu_info(nv) == []
    assert gpu_temperatures(nv) == []


def test_gpu_info_without_pynvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert gpu_info() == []
    assert gpu_temperatures() == []


def test_unexpected_error_is_not_swallowed_but_shutdown_happens():
    nv = FakeNVML()

    def broken(h):
        raise KeyError("bug")

    nv.nvmlDeviceGetMemoryBusWidth = broken
    with pytest.raises(KeyError):
        gpu_info(nv)
    assert nv.shutdown_calls == 1


def test_gpu_temperatures():
    nv = FakeNVML(temps=(70, 50))
    assert gpu_temperatures(nv) == [70.0, 50.0]
    assert nv.shutdown_calls == 1
    nv = FakeNVML(failing=["nvmlDeviceGetTemperature"])
    assert gpu_temperatures(nv) == [None, None]


# ------------------------------------------------------------------ collect / fingerprint


def test_collect_cpu_and_gpu():
    info = collect("cpu")
    assert info["kind"] == "cpu" and info["gpus"] == []
    assert info["name"] == info["cpu"]["model"]
    assert info["fingerprint"] == fingerprint(info) and len(info["fingerprint"]) == 16
    json.dumps(info)

    ginfo = collect("gpu", nvml=FakeNVML())
    assert ginfo["name"] == "Tesla T4" and len(ginfo["gpus"]) == 2
    assert ginfo["fingerprint"] != info["fingerprint"]

    none = collect("gpu", nvml=FakeNVML(fail_init=True))
    assert none["gpus"] == [] and "GPU" in none["name"]


def test_collect_rejects_unknown_kind():
    with pytest.raises(InputSpecError, match="npu"):
        collect("npu")


def _info(model="Intel Xeon", mhz=2100.0, temp=60, governor="powersave", driver="535", flags=("avx2",)):
    return {
        "kind": "gpu",
        "cpu": {"model": model, "arch": "x86_64", "cores_logical": 8, "simd_flags": list(flags),
                "frequency_mhz": {"current": mhz, "max": 3900.0}, "governor": governor},
        "gpus": [{"name": "Tesla T4", "memory_total_bytes": 16 * 2**30, "temperature_c": temp,
                  "driver_version": driver, "clocks_mhz": {"sm_current": int(mhz)}}],
    }


def test_fingerprint_ignores_volatile_fields():
    base = fingerprint(_info())
    assert len(base) == 16 and int(base, 16) >= 0
    assert fingerprint(_info(mhz=800.0, temp=85, governor="performance", driver="550")) == base


def test_fingerprint_changes_with_identity():
    base = fingerprint(_info())
    assert fingerprint(_info(model="AMD EPYC 7B12")) != base
    assert fingerprint(_info(flags=("avx2", "avx512f"))) != base
    other_gpu = _info()
    other_gpu["gpus"][0]["name"] = "NVIDIA L4"
    assert fingerprint(other_gpu) != base
    cpu_kind = _info()
    cpu_kind["kind"] = "cpu"
    assert fingerprint(cpu_kind) != base


def test_fingerprint_of_real_cpu_is_stable_across_collects():
    assert collect("cpu")["fingerprint"] == collect("cpu")["fingerprint"]


def test_describe_mismatch_names_both_devices():
    msg = describe_mismatch("aaaa1111bbbb2222", "cccc3333dddd4444", "Intel Xeon", "AMD EPYC")
    for part in ("aaaa1111bbbb2222", "cccc3333dddd4444", "Intel Xeon", "AMD EPYC"):
        assert part in msg
    assert "may be off" in msg


def test_tensorflow_devices_does_not_import_tensorflow():
    # A fresh interpreter: other tests of the session have imported TensorFlow already.
    import subprocess

    code = ("import sys; from latency_lab.device_info import tensorflow_devices; "
            "assert tensorflow_devices() == []; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_tensorflow_devices_with_fake_module(monkeypatch):
    dev = types.SimpleNamespace(name="/physical_device:GPU:0", device_type="GPU")
    fake_tf = types.SimpleNamespace(
        config=types.SimpleNamespace(
            list_physical_devices=lambda: [dev],
            experimental=types.SimpleNamespace(
                get_device_details=lambda d: {"device_name": "Tesla T4", "compute_capability": (7, 5)}
            ),
        )
    )
    monkeypatch.setitem(sys.modules, "tensorflow", fake_tf)
    out = tensorflow_devices()
    assert out == [{"name": "/physical_device:GPU:0", "device_type": "GPU",
                    "details": {"device_name": "Tesla T4", "compute_capability": [7, 5]}}]


def test_module_does_not_import_tensorflow():
    assert not hasattr(device_info, "tf")
