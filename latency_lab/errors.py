"""Error types. Every user-facing failure is one of these, so the CLI can print the
message (which names the file, field, layer or op and says how to fix it) instead of a
traceback."""

__all__ = ["LatencyLabError", "ModelLoadError", "UnsupportedModelError", "UnsupportedOpError",
           "ProfileError", "ProfileInterrupted", "MeasurementError", "InputSpecError", "InvalidArgumentError",
           "UnknownOpWarning", "SlowFitWarning"]


class LatencyLabError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    #: what the CLI exits with after printing the message
    exit_code = 2


class ModelLoadError(LatencyLabError):
    """A model file or `keras.applications` name could not be turned into a model."""


class UnsupportedModelError(LatencyLabError):
    """The model is valid Keras but not something we can trace (e.g. subclassed)."""


class UnsupportedOpError(LatencyLabError):
    """An op/layer type has no registered cost function or predictor."""


class ProfileError(LatencyLabError):
    """A device profile is malformed, of an unknown version, or does not fit the use."""


class ProfileInterrupted(LatencyLabError):
    """Profiling stopped on SIGINT/SIGTERM. The message says what was kept and where
    (or that nothing was written); the CLI exits 130, as for an interrupted program."""

    exit_code = 130


class MeasurementError(LatencyLabError):
    """A runtime could not build or run something we asked it to time."""


class InputSpecError(LatencyLabError):
    """A command-line value (shape, option) is malformed."""


class InvalidArgumentError(LatencyLabError, ValueError):
    """An argument out of range or of the wrong kind. Also a ValueError, which is what
    Keras and scikit-learn raise for one (and what callers catch)."""


class UnknownOpWarning(UserWarning):
    """A layer or kernel with no cost function or latency model was skipped, because the
    caller allowed it (`allow_unknown=True`, `--allow-unknown`)."""


class SlowFitWarning(UserWarning):
    """A measured profile's stored lookup fit (its 'fitted' section) is missing or
    stale, so loading it refits the Gaussian processes with hyperparameter optimization
    (tens of seconds); `scripts/fit_profile.py PROFILE.json` stores the fit."""
