"""TensorFlow's native start-up lines, hidden: in the command line's process (unless
--verbose) and in the worker processes it starts (`convert.pool`), which ask
`quieted()` whether their parent hid them."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

__all__ = ["quiet_native_logs", "quieted"]

_QUIETED = False


# TensorFlow's native libraries log a few lines while they load ("Could not find cuda
# drivers", oneDNN, CPU instructions). They come from absl before its logging is set
# up, so TF_CPP_MIN_LOG_LEVEL does not reach them: they are filtered from fd 2 while
# `tensorflow` is imported. On a host without a CUDA driver, the first look for devices
# logs "failed call to cuInit" at ERROR level, which TF_CPP_MIN_LOG_LEVEL=2 keeps: the
# import window therefore looks for GPUs too, and drops that one error (a CUDA line
# about cuInit or the driver). Lines of other kinds (errors, Python warnings) are kept.
_NATIVE_NOISE = re.compile(
    r"^(?:[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*"
    r"|E\d{4} [\d:.]+\s+\d+ cuda_\w+\.cc:\d+\] .*(?:cuInit|[Dd]river).*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate "
    r"compiler flags\.)$")


def _find_devices(tensorflow) -> None:
    """Look for GPUs now, inside the quiet import, rather than at the first op: that
    is when a host without a CUDA driver logs its cuInit error."""
    try:
        tensorflow.config.list_physical_devices("GPU")
    except Exception:  # noqa: BLE001 - a broken install fails later, with its message
        pass


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                self._loader.exec_module(module)
                _find_devices(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                kept = [line for line in sink.read().decode("utf-8", "replace").splitlines()
                        if not _NATIVE_NOISE.match(line)]
                if kept:
                    os.write(2, ("\n".join(kept) + "\n").encode())


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports `tensorflow` (once, whoever asks) through _QuietLoader."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_native_logs() -> None:
    """Hide TensorFlow's C++ logging (INFO and WARNING) and its start-up lines; call
    before TensorFlow is imported (afterwards only the environment variable is set)."""
    global _QUIETED
    _QUIETED = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(
            isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def quieted() -> bool:
    """Whether this process asked for TensorFlow's native lines to be hidden."""
    return _QUIETED
