"""Where things run. A runtime times whole Keras models and single ops with the one
harness in `latency_lab.timing`, and says what it is (name, version, threads) so every
figure is recorded with it.

Registry: `get("litert", threads=1)`, `available()`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from latency_lab.errors import InputSpecError, MeasurementError
from latency_lab.runtimes.base import OpProgram, Runtime
from latency_lab.timing import Measurement, TimingConfig

__all__ = ["OpProgram", "Runtime", "available", "get", "measure_in_passes", "for_profile"]


def _litert(**kw):
    from latency_lab.runtimes.litert import LiteRTRuntime

    return LiteRTRuntime(**kw)


def _keras(**kw):
    from latency_lab.runtimes.keras_runtime import KerasRuntime

    return KerasRuntime(**kw)


_REGISTRY: dict[str, Callable[..., Runtime]] = {"litert": _litert, "keras": _keras}


def available() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str, **kwargs: Any) -> Runtime:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise InputSpecError(
            f"unknown runtime {name!r}; choose one of {', '.join(available())}"
        ) from None
    threads = kwargs.get("threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputSpecError(f"threads must be a positive integer, got {threads!r}")
    return factory(**kwargs)


def measure_in_passes(runtime: Runtime, models: Sequence[tuple[str, Any]],
                      timing: TimingConfig | None = None, passes: int = 3, seed: int = 0,
                      on_measurement: Callable[[str, int, Measurement], None] | None = None,
                      min_pass_s: float = 1.0, clock: Callable[[], float] | None = None,
                      ) -> dict[str, list[Measurement]]:
    """Time each (name, model) once per pass, in a new order each pass: {name: one
    Measurement per pass}. Spreading a model's repeats over the whole run keeps a slow
    spell of a shared host (seconds to minutes) from deciding its figure; pool them
    with `timing.pool_passes`. Within a pass the models' repeats are interleaved
    (`Runtime.measure_models`), and a pass goes on (more rounds of the same
    measurement, fresh interpreters each) until it has lasted `min_pass_s`: three
    passes over a 0.2 ms network are otherwise over in a tenth of a second, inside
    one slow spell (seen: a trained network measured 20% off the figure its snap was
    aimed at). Each model is converted once (runtimes cache by model)."""
    import random
    import time

    from latency_lab.timing import concat

    clock = clock or time.perf_counter
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise InputSpecError(f"passes must be a positive integer, got {passes!r}")
    names = [name for name, _ in models]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputSpecError(f"model names must be unique to be measured in passes; repeated: {dup}")
    out: dict[str, list[Measurement]] = {name: [] for name in names}
    order = list(models)
    rng = random.Random(seed)
    for pass_index in range(1, passes + 1):
        if pass_index > 1:
            rng.shuffle(order)
        start = clock()
        rounds = [runtime.measure_models([model for _, model in order], timing)]
        while clock() - start < min_pass_s:
            rounds.append(runtime.measure_models([model for _, model in order], timing))
        tolerance = (timing or TimingConfig()).spread_tolerance
        measured = [concat([r[i] for r in rounds], tolerance) if len(rounds) > 1 else rounds[0][i]
                    for i in range(len(order))]
        for (name, _), m in zip(order, measured):
            out[name].append(m)
            if on_measurement:
                on_measurement(name, pass_index, m)
    return out


def for_profile(profile: Any) -> Runtime:
    """The runtime a measured profile was taken with (name, threads, device), so that
    what is measured against a profile runs as the profile's samples did. A runtime
    that cannot run at the profile's thread count is an error: TensorFlow's thread
    pools are fixed once it has run an op, and a validation run that built its models
    first measured the keras runtime on both cores against a one-thread profile
    (its calibration networks 41% faster than when profiled), labelled one thread."""
    threads = profile.threads or 1
    runtime = get(profile.runtime_name, threads=threads,
                  device=profile.runtime.get("device") or "cpu")
    if runtime.threads != threads:
        raise MeasurementError(
            f"profile {profile.device_name!r} was measured with {threads} thread(s), but "
            f"the {profile.runtime_name} runtime in this process runs with "
            f"{runtime.threads}: TensorFlow ran before its threads could be pinned. "
            "Get the runtime (latency_lab.runtimes.for_profile) before building or "
            "loading models, or measure in a fresh process.")
    return runtime
