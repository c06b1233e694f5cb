"""latency-lab: measure a device, model its latency, and train networks against it.

Importing this package is cheap: nothing here imports TensorFlow. Modules that need it
(graph building from Keras, runtimes) import it when called.
"""

__version__ = "0.1.0"

from latency_lab.errors import (  # noqa: F401  (public API)
    InputSpecError,
    LatencyLabError,
    MeasurementError,
    ModelLoadError,
    ProfileError,
    UnsupportedModelError,
    UnknownOpWarning,
    UnsupportedOpError,
)

__all__ = ["__version__", "InputSpecError", "LatencyLabError", "MeasurementError",
           "ModelLoadError", "ProfileError", "UnsupportedModelError",
           "UnsupportedOpError", "UnknownOpWarning"]
