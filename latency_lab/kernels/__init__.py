"""A model -> the kernels a runtime really runs, as work items for the predictors.

One builder per runtime name a profile can carry (`RUNTIMES`): `litert` (the converted
model's operator list, `kernels.litert`), `keras` (the Keras layers, `kernels.keras`)
and `spec` (a datasheet roofline over the Keras layers)."""

from __future__ import annotations

from typing import Any, Callable

from latency_lab.errors import ProfileError
from latency_lab.kernels.keras import keras_items, spec_items
from latency_lab.kernels.litert import litert_items
from latency_lab.kernels.work import WorkItem, WorkItems, working_set_bytes

__all__ = ["WorkItem", "WorkItems", "RUNTIMES", "work_items", "profile_work_items",
           "working_set_bytes"]

RUNTIMES: dict[str, Callable[..., WorkItems]] = {
    "litert": litert_items,
    "keras": keras_items,
    "spec": spec_items,
}


def work_items(model: Any, runtime: str, *, batch_size: int = 1, input_shape=None,
               allow_unknown: bool = False, backend: str | None = None) -> WorkItems:
    """The kernels to predict, in the form `runtime` (a profile's runtime name:
    litert, keras or spec) executes them; `backend` is the profile's Keras backend
    (`runtime["backend"]`), which decides whether the keras runtime's layers run as
    XLA's fused loops (the other runtimes ignore it). A layer or kernel with no
    latency model is an UnsupportedOpError naming it, under every runtime; with
    `allow_unknown` it is left out, warned about (UnknownOpWarning) and listed in the
    result's `skipped`."""
    try:
        build = RUNTIMES[runtime]
    except KeyError:
        raise ProfileError(f"no kernel model for runtime {runtime!r}; known: "
                           f"{', '.join(sorted(RUNTIMES))}") from None
    return build(model, batch_size=batch_size, input_shape=input_shape,
                 allow_unknown=allow_unknown, backend=backend)


def profile_work_items(model: Any, prof: Any, *, batch_size: int = 1,
                       allow_unknown: bool = False) -> WorkItems:
    """`work_items` of `model` as the runtime a `DeviceProfile` measured runs it (its
    runtime name and Keras backend)."""
    return work_items(model, prof.runtime_name, batch_size=batch_size,
                      allow_unknown=allow_unknown, backend=prof.runtime.get("backend"))
