"""What device a figure was measured on.

A latency profile is only valid for the device it was measured on, so every profile
records the CPU (model, SIMD flags, cores, frequency, governor, caches) and GPUs (via
NVML: name, memory, bus width, clocks, power limit, temperature), plus a `fingerprint`
over the fields that identify the hardware. Fields that drift between runs on the same
machine (clock frequency, temperature, governor, driver) are recorded for diagnosis but
kept out of the fingerprint, so re-profiling a warm machine does not look like a new one.

Everything here degrades to None/[] instead of raising: a missing /proc or sysfs file,
no NVIDIA driver, or no pynvml must never stop a measurement. TensorFlow is not
imported at module level (and only on request in `tensorflow_devices`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys

from latency_lab.errors import InputSpecError

__all__ = [
    "cpu_info",
    "gpu_info",
    "gpu_temperatures",
    "tensorflow_devices",
    "collect",
    "fingerprint",
    "describe_mismatch",
    "usable_cores",
    "check_threads",
]

#: SIMD features that matter for NN kernels (XNNPACK/oneDNN pick code paths on these).
SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
    "amx_tile", "amx_bf16", "neon", "asimd", "sve",
)

DEVICE_KINDS = ("cpu", "gpu", "tpu")

# /proc/cpuinfo "CPU implementer" codes on ARM (no "model name" line there).
_ARM_IMPLEMENTERS = {
    "0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu", "0x48": "HiSilicon",
    "0x4e": "NVIDIA", "0x50": "APM", "0x51": "Qualcomm", "0x53": "Samsung", "0x61": "Apple",
    "0x6d": "Microsoft", "0xc0": "Ampere",
}


# ----------------------------------------------------------------------------- CPU

def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per blank-line separated block (processor entries)."""
    blocks, current = [], {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def _first(blocks: list[dict[str, str]], *keys: str) -> str | None:
    for key in keys:
        for block in blocks:
            if block.get(key):
                return block[key]
    return None


def _float_or_none(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _parse_size_bytes(text: str | None) -> int | None:
    """sysfs cache size ("32K", "1M", "1024") -> bytes."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not m:
        return None
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()]
    return int(m.group(1)) * scale


def _khz_file_to_mhz(path: str) -> float | None:
    khz = _float_or_none(_read_text(path))
    return khz / 1000.0 if khz is not None else None


def _cache_sizes(sysfs_root: str) -> dict[str, int | None]:
    caches: dict[str, int | None] = {"L1d": None, "L1i": None, "L2": None, "L3": None}
    base = os.path.join(sysfs_root, "devices", "system", "cpu", "cpu0", "cache")
    try:
        entries = sorted(e for e in os.listdir(base) if e.startswith("index"))
    except OSError:
        return caches
    for entry in entries:
        d = os.path.join(base, entry)
        level, kind = _read_text(os.path.join(d, "level")), _read_text(os.path.join(d, "type"))
        size = _parse_size_bytes(_read_text(os.path.join(d, "size")))
        if level == "1" and kind == "Data":
            key = "L1d"
        elif level == "1" and kind == "Instruction":
            key = "L1i"
        elif level in ("2", "3", "4"):
            key = f"L{level}"
        else:
            continue
        caches[key] = size
    return caches


def cpu_info(cpuinfo_text: str | None = None, sysfs_root: str = "/sys") -> dict:
    """CPU identity and the state that affects its speed (frequency, governor).

    `cpuinfo_text` defaults to /proc/cpuinfo; `sysfs_root` is a parameter so tests can
    point it at a fake tree. Unreadable fields are None, never an exception.
    """
    if cpuinfo_text is None:
        cpuinfo_text = _read_text("/proc/cpuinfo") or ""
    blocks = _parse_cpuinfo(cpuinfo_text)

    vendor = _first(blocks, "vendor_id")
    implementer = _first(blocks, "CPU implementer")
    if vendor is None and implementer is not None:
        vendor = _ARM_IMPLEMENTERS.get(implementer.lower(), f"implementer {implementer}")

    model = _first(blocks, "model name", "Model", "Hardware", "cpu model", "Processor", "cpu")
    if model is None and implementer is not None:
        part = _first(blocks, "CPU part")
        model = f"{vendor} CPU part {part}" if part else f"{vendor} CPU"
    if model is None:
        model = platform.processor() or platform.machine() or "unknown CPU"

    flag_text = _first(blocks, "flags", "Features") or ""
    present = set(flag_text.lower().split())
    simd_flags = sorted(f for f in SIMD_FLAGS if f in present)

    pairs = {
        (b.get("physical id", "0"), b["core id"]) for b in blocks if "core id" in b
    }
    cores_physical = len(pairs) if pairs else None

    cpufreq = os.path.join(sysfs_root, "devices", "system", "cpu", "cpu0", "cpufreq")
    current = _khz_file_to_mhz(os.path.join(cpufreq, "scaling_cur_freq"))
    if current is None:
        current = _float_or_none(_first(blocks, "cpu MHz"))
    maximum = _khz_file_to_mhz(os.path.join(cpufreq, "cpuinfo_max_freq"))
    if maximum is None:
        maximum = _khz_file_to_mhz(os.path.join(cpufreq, "scaling_max_freq"))

    try:
        cores_available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores_available = None

    return {
        "model": model,
        "vendor": vendor,
        "arch": platform.machine() or None,
        "cores_logical": os.cpu_count(),
        "cores_available": cores_available,  # what this process may use (taskset/cgroup)
        "cores_physical": cores_physical,
        "simd_flags": simd_flags,
        "frequency_mhz": {"current": current, "max": maximum},
        "governor": _read_text(os.path.join(cpufreq, "scaling_governor")),
        "cache_bytes": _cache_sizes(sysfs_root),
    }


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which taskset and cgroup
    cpusets narrow), else os.cpu_count(), else 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(threads: int, option: str = "--threads") -> str | None:
    """A warning when `threads` exceeds the usable cores (the threads then time-share
    cores and every figure measures that contention); InputSpecError beyond 4x."""
    cores = usable_cores()
    if threads > 4 * cores:
        raise InputSpecError(
            f"{option} {threads} is more than 4x the {cores} CPU core(s) this process may "
            f"use; the threads would time-share the cores and every figure would measure "
            f"the contention. Pass {option} {cores} or fewer.")
    if threads > cores:
        return (f"{option} {threads} is more than the {cores} CPU core(s) this process may "
                f"use: threads will share cores and latencies will be slower than with "
                f"{option} {cores}. A profile records the usable cores in "
                f"device.info.cpu.cores_available.")
    return None


# ----------------------------------------------------------------------------- GPU

def _load_nvml(nvml):
    if nvml is not None:
        return nvml
    try:
        import pynvml  # provided by nvidia-ml-py
    except ImportError:
        return None
    return pynvml


def _text(value):
    if isinstance(value, bytes):  # old pynvml versions return bytes
        return value.decode("utf-8", errors="replace")
    return value


class _NvmlSession:
    """nvmlInit ... nvmlShutdown; `ok` is False when there is no usable driver."""

    def __init__(self, nvml):
        self.nvml = nvml
        self.ok = False

    def __enter__(self):
        if self.nvml is None:
            return self
        try:
            self.nvml.nvmlInit()
            self.ok = True
        except Exception:  # no driver / library: no NVIDIA GPU visible, not an error
            self.ok = False
        return self

    def __exit__(self, *exc):
        if self.ok:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
        return False

    def query(self, name: str, *args):
        """Call nvml.<name>(*args); None if the function is missing or raises NVMLError."""
        fn = getattr(self.nvml, name, None)
        if fn is None:
            return None
        errors = getattr(self.nvml, "NVMLError", None)
        try:
            return _text(fn(*args))
        except Exception as exc:
            if errors is not None and isinstance(exc, errors):
                return None
            raise

    def device_count(self) -> int:
        count = self.query("nvmlDeviceGetCount")
        return int(count) if count else 0


def _cuda_version_string(value) -> str | None:
    """NVML reports the CUDA driver version as an int, e.g. 12040 -> "12.4"."""
    if value is None:
        return None
    try:
        v = int(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v // 1000}.{(v % 1000) // 10}"


def _gpu_record(s: _NvmlSession, index: int, driver, cuda) -> dict:
    nv = s.nvml
    handle = s.query("nvmlDeviceGetHandleByIndex", index)
    rec: dict = {"index": index}
    if handle is None:
        rec.update(name=None, uuid=None, driver_version=driver, cuda_driver_version=cuda)
        return rec

    def q(name, *args):
        return s.query(name, handle, *args)

    memory = q("nvmlDeviceGetMemoryInfo")
    power_mw = q("nvmlDeviceGetPowerManagementLimit")
    capability = q("nvmlDeviceGetCudaComputeCapability")
    clock_sm = getattr(nv, "NVML_CLOCK_SM", 1)
    clock_mem = getattr(nv, "NVML_CLOCK_MEM", 2)
    temp_sensor = getattr(nv, "NVML_TEMPERATURE_GPU", 0)
    rec.update(
        name=q("nvmlDeviceGetName"),
        uuid=q("nvmlDeviceGetUUID"),
        driver_version=driver,
        cuda_driver_version=cuda,
        compute_capability=(
            f"{capability[0]}.{capability[1]}" if isinstance(capability, (tuple, list)) else None
        ),
        memory_total_bytes=int(memory.total) if getattr(memory, "total", None) is not None else None,
        bus_width_bits=q("nvmlDeviceGetMemoryBusWidth"),
        clocks_mhz={
            "sm_max": q("nvmlDeviceGetMaxClockInfo", clock_sm),
            "mem_max": q("nvmlDeviceGetMaxClockInfo", clock_mem),
            "sm_current": q("nvmlDeviceGetClockInfo", clock_sm),
            "mem_current": q("nvmlDeviceGetClockInfo", clock_mem),
        },
        power_limit_w=power_mw / 1000.0 if power_mw is not None else None,  # NVML gives mW
        temperature_c=q("nvmlDeviceGetTemperature", temp_sensor),
        pcie={
            "gen_current": q("nvmlDeviceGetCurrPcieLinkGeneration"),
            "width_current": q("nvmlDeviceGetCurrPcieLinkWidth"),
            "gen_max": q("nvmlDeviceGetMaxPcieLinkGeneration"),
            "width_max": q("nvmlDeviceGetMaxPcieLinkWidth"),
        },
    )
    return rec


def gpu_info(nvml=None) -> list[dict]:
    """One dict per NVIDIA GPU visible to NVML; [] when pynvml or the driver is absent.

    `nvml` lets tests inject a fake module with pynvml's function names. A field whose
    query raises NVMLError (unsupported on this GPU/driver) is None; the device is kept.
    """
    with _NvmlSession(_load_nvml(nvml)) as s:
        if not s.ok:
            return []
        driver = s.query("nvmlSystemGetDriverVersion")
        cuda = _cuda_version_string(s.query("nvmlSystemGetCudaDriverVersion"))
        return [_gpu_record(s, i, driver, cuda) for i in range(s.device_count())]


def gpu_temperatures(nvml=None) -> list[float | None]:
    """Current GPU temperatures (deg C), cheap enough to read before and after a run to
    spot thermal throttling. [] when NVML is unavailable."""
    with _NvmlSession(_load_nvml(nvml)) as s:
        if not s.ok:
            return []
        sensor = getattr(s.nvml, "NVML_TEMPERATURE_GPU", 0)
        temps = []
        for i in range(s.device_count()):
            handle = s.query("nvmlDeviceGetHandleByIndex", i)
            t = s.query("nvmlDeviceGetTemperature", handle, sensor) if handle is not None else None
            temps.append(float(t) if t is not None else None)
        return temps


# ----------------------------------------------------------------------- TensorFlow

def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def tensorflow_devices(import_if_needed: bool = False) -> list[dict]:
    """Physical devices as TensorFlow sees them (CPU/GPU/TPU with details).

    Importing TensorFlow takes seconds and grabs GPU memory, so by default this only
    reports when TensorFlow is already imported; pass import_if_needed=True to import it.
    """
    if "tensorflow" not in sys.modules and not import_if_needed:
        return []
    try:
        import tensorflow as tf
    except Exception:
        return []
    try:
        devices = tf.config.list_physical_devices()
    except Exception:
        return []
    out = []
    for d in devices:
        try:
            details = tf.config.experimental.get_device_details(d)
        except Exception:
            details = {}
        out.append({"name": d.name, "device_type": d.device_type, "details": _json_safe(details)})
    return out


# --------------------------------------------------------------------------- summary

def collect(kind: str = "cpu", nvml=None) -> dict:
    """Everything we record about the device a profile is measured on."""
    if kind not in DEVICE_KINDS:
        raise InputSpecError(
            f"Unknown device kind {kind!r}; expected one of {list(DEVICE_KINDS)}. "
            f"Pass --device cpu, gpu or tpu."
        )
    cpu = cpu_info()
    gpus = gpu_info(nvml) if kind == "gpu" else []
    if kind == "gpu":
        name = next((g["name"] for g in gpus if g.get("name")), None) or "unknown GPU (not visible to NVML)"
    elif kind == "tpu":
        tpus = [d for d in tensorflow_devices() if d.get("device_type") == "TPU"]
        name = tpus[0]["name"] if tpus else "TPU"
    else:
        name = cpu["model"]
    info = {
        "kind": kind,
        "name": name,
        "cpu": cpu,
        "gpus": gpus,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    info["fingerprint"] = fingerprint(info)
    return info


def fingerprint(info: dict) -> str:
    """16 hex digits identifying the hardware in `info` (as returned by `collect`).

    Only identity fields go in (kind, CPU model/arch/logical cores/SIMD flags, GPU names
    and memory sizes); frequency, temperature, governor and driver change between runs on
    the same device and would make every profile look foreign.
    """
    cpu = info.get("cpu") or {}
    identity = {
        "kind": info.get("kind"),
        "cpu_model": cpu.get("model"),
        "arch": cpu.get("arch"),
        "cores_logical": cpu.get("cores_logical"),
        "simd_flags": sorted(cpu.get("simd_flags") or []),
        "gpus": [
            [g.get("name"), g.get("memory_total_bytes")] for g in (info.get("gpus") or [])
        ],
    }
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def describe_mismatch(expected_fp: str, actual_fp: str, expected_name: str, actual_name: str) -> str:
    """Warning text for using a profile on a device other than the one it was measured on."""
    return (
        f"Device mismatch: the profile was measured on {expected_name!r} (fingerprint "
        f"{expected_fp}) but this machine is {actual_name!r} (fingerprint {actual_fp}); "
        f"predicted latencies may be off. Run `latency-lab profile` on this device for an "
        f"accurate profile, or ignore this warning if the two devices are equivalent."
    )
