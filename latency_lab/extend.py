"""Extending a measured profile with the kernels a model needs and the table lacks
(`predict --measure-missing`, `profile --extend-for`): the kernels the lookup model
flags as outside its table are timed on this device with the profiler's own harness
(same runtime, threads, timing and passes as the profile's samples) and added as
samples. The profile file is rewritten atomically after every batch, so an interrupt
keeps what was measured, and a rerun measures only what is still missing."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from latency_lab import device_info
from latency_lab.errors import ProfileError, ProfileInterrupted, SlowFitWarning
from latency_lab.kernels import profile_work_items
from latency_lab.predictors import LookupTableModel, prediction_band, with_fitted_lookup
from latency_lab.profile import DeviceProfile, Sample, sample_key, unstable_count

__all__ = ["ExtendResult", "writable_profile_path", "kernels_to_measure", "extend_profile"]


@dataclass
class ExtendResult:
    """What `extend_profile` did: the samples it measured (new or completed), the
    kernels it found outside the table, and the profile as saved."""

    profile: DeviceProfile
    measured: list[Sample] = field(default_factory=list)
    outside: list[tuple[str, str, dict]] = field(default_factory=list)  # (model, op, config)
    refitted: bool = False  # the stored lookup fit was refreshed


def writable_profile_path(spec: Any, flag: str) -> Path:
    """The profile file `spec` names, checked to be one `flag` may write to: an
    existing .json file, writable, not a shipped profile name."""
    from latency_lab.profiler import check_out_path

    path = Path(spec)
    if not path.is_file():
        import device_profiles

        if device_profiles.normalize_name(str(spec)) in device_profiles.available():
            raise ProfileError(
                f"{flag} adds the samples it measures to the profile file, and {spec!r} is "
                "a shipped profile name; copy it (or measure your own with `latency-lab "
                "profile --out my.json`) and pass the path of that .json file.")
        raise ProfileError(f"{flag}: profile file {str(spec)!r} does not exist; pass the path "
                           "of a measured profile of this device (`latency-lab profile "
                           "--out my.json` makes one).")
    check_out_path(path, resume=True)
    return path


def _check_device(prof: DeviceProfile, runtime_info: dict) -> None:
    """Samples from another device or runtime would corrupt the profile: refused."""
    if prof.runtime_name not in ("litert", "keras"):
        raise ProfileError(f"{prof.source}: runtime {prof.runtime_name!r} is a datasheet "
                           "profile; only a measured profile of this device can be extended.")
    info = device_info.collect("gpu" if prof.device_kind == "gpu" else "cpu")
    if prof.fingerprint and info["fingerprint"] and prof.fingerprint != info["fingerprint"]:
        raise ProfileError(
            f"{prof.source}: profile was measured on {prof.device_name!r} (fingerprint "
            f"{prof.fingerprint}), this device is {info['name']!r} (fingerprint "
            f"{info['fingerprint']}); samples measured here would not belong to it. Run "
            "on that device, or profile this one with `latency-lab profile`.")
    for key in ("name", "threads", "backend", "device"):
        if prof.runtime.get(key) != runtime_info.get(key):
            raise ProfileError(
                f"{prof.source}: profile was measured with runtime {key}="
                f"{prof.runtime.get(key)!r}, the runtime here has {runtime_info.get(key)!r}; "
                "install the profile's runtime or profile this setup anew.")


def _lookup(prof: DeviceProfile) -> LookupTableModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowFitWarning)  # refreshed after measuring
        return LookupTableModel(prof).fit()


def kernels_to_measure(models: Iterable[tuple[str, Any]], prof: DeviceProfile, *,
                       allow_unknown: bool = False
                       ) -> tuple[list[tuple[str, dict]], list[tuple[str, str, dict]]]:
    """(distinct kernels to time, (model, op, config) of each outside the table) of
    `models`: the configurations the lookup model flags as outside its table."""
    est = _lookup(prof)
    todo: dict[str, tuple[str, dict]] = {}
    outside: list[tuple[str, str, dict]] = []
    for name, model in models:
        items = profile_work_items(model, prof, allow_unknown=allow_unknown)
        for _, check in prediction_band(items, est).outside:
            outside.append((name, check.op, check.config))
            todo.setdefault(sample_key(check.op, check.config), (check.op, check.config))
    return list(todo.values()), outside


def extend_profile(profile_path: Any, models: Iterable[tuple[str, Any]], *,
                   runtime: Any = None, allow_unknown: bool = False, refit: bool = True,
                   catch_signals: bool = True, seed: int = 0,
                   log: Callable[[str], None] = print) -> ExtendResult:
    """Time the kernels of `models` ((name, keras model) pairs) that lie outside the
    lookup table of the profile at `profile_path`, add them as samples and save.
    `runtime`: the profile's runtime (default: `runtimes.for_profile`). `refit`:
    refresh the stored lookup fit afterwards (a stored fit still valid is reused);
    without it the stored fit is stale and every load warns
    (SlowFitWarning). Raises ProfileInterrupted after saving when interrupted."""
    from latency_lab.convert.pool import ConversionPool
    from latency_lab.profiler import caught_signals, measure_kernels, profile_timing
    from latency_lab.runtimes import for_profile

    path = writable_profile_path(profile_path, "extending a profile")
    prof = DeviceProfile.load(path)
    if not prof.samples:
        raise ProfileError(f"{path}: the profile has no lookup-table samples to extend; "
                           "measure one with `latency-lab profile --out my.json`.")
    runtime = runtime if runtime is not None else for_profile(prof)
    _check_device(prof, runtime.info())
    timing, passes = profile_timing(prof)
    todo, outside = kernels_to_measure(models, prof, allow_unknown=allow_unknown)
    result = ExtendResult(prof, outside=outside)
    if not todo:
        log(f"{path}: every kernel lies inside the table; nothing to measure")
        return result
    log(f"{path}: timing {len(todo)} kernel configuration(s) outside the table, "
        f"{passes} pass(es) of {timing.repeats} repeats each ({prof.runtime_name}, "
        f"{runtime.threads} thread(s))")
    keys = [sample_key(op, cfg) for op, cfg in todo]
    base = {s.key: s for s in prof.samples}
    started = time.time()
    state = {"profile": prof}

    def save(samples: dict[str, Sample]) -> None:
        merged = dict(base)
        merged.update({k: samples[k] for k in keys if k in samples})
        p = state["profile"]
        calibration = dict(p.calibration or {})
        if "samples" in calibration:
            calibration["samples"] = len(merged)
            calibration["unstable_samples"] = unstable_count(merged.values())
        sections: dict[str, Any] = {"samples": list(merged.values()),
                                    "calibration": calibration}
        if p.progress is not None:
            progress = dict(p.progress)
            progress["done"] = len(merged)
            progress["planned"] = max(int(progress.get("planned") or 0), len(merged))
            progress["elapsed_s"] = round(float(progress.get("elapsed_s") or 0.0)
                                          + time.time() - started, 2)
            sections["progress"] = progress
        state["profile"] = prof.replace(**sections)
        state["profile"].save(path)

    stop: dict = {"signal": None}
    with caught_signals(stop, enabled=catch_signals), ConversionPool() as pool:
        samples, stopped = measure_kernels(
            runtime, todo, timing, passes, seed=seed, on_batch=save,
            stop_reason=lambda: "signal" if stop["signal"] is not None else None, pool=pool)
    result.measured = [samples[k] for k in keys if k in samples]
    if stopped:
        raise ProfileInterrupted(
            f"interrupted: {len(result.measured)} sample(s) measured and kept in {path}; "
            "run the same command again to finish (measured samples are not measured again)")
    result.profile = state["profile"]
    if refit:
        log("refreshing the stored lookup fit (kinds whose samples changed are "
            "fitted again)")
        result.profile = with_fitted_lookup(result.profile, reuse_current=True)
        result.profile.save(path)
        result.refitted = True
    return result
