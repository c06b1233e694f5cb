"""The keras runtime's device argument: a GPU the backend cannot see is refused rather
than measured on the CPU (TensorFlow's soft placement would run a "gpu:0" scope there
without a word). The backend's GPU count is faked, so these pass with or without a GPU."""

import dataclasses

import pytest

from latency_lab import runtimes
from latency_lab.errors import InputSpecError, MeasurementError
from latency_lab.runtimes import keras_runtime


def _fake_gpu_count(monkeypatch, n):
    import keras

    backend = keras.backend.backend()
    monkeypatch.setitem(keras_runtime.BACKENDS, backend, dataclasses.replace(
        keras_runtime.BACKENDS[backend], gpu_count=lambda: n))
    return backend


@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
def test_gpu_the_backend_cannot_see_is_refused(monkeypatch):
    backend = _fake_gpu_count(monkeypatch, 0)
    with pytest.raises(MeasurementError, match=f"{backend} backend sees no GPU.*--device cpu"):
        runtimes.get("keras", threads=1, device="gpu")


@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
def test_gpu_the_backend_sees_is_accepted(monkeypatch):
    _fake_gpu_count(monkeypatch, 1)
    rt = runtimes.get("keras", threads=1, device="gpu")
    assert rt.info()["device"] == "gpu"


@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
def test_cpu_does_not_ask_for_a_gpu(monkeypatch):
    def no_query():
        raise AssertionError("the GPU count must not be queried for device cpu")

    import keras

    backend = keras.backend.backend()
    monkeypatch.setitem(keras_runtime.BACKENDS, backend, dataclasses.replace(
        keras_runtime.BACKENDS[backend], gpu_count=no_query))
    info = runtimes.get("keras", threads=1, device="cpu").info()
    assert info["device"] == "cpu" and info["matmul_precision"] == "fp32"


@pytest.mark.filterwarnings("ignore:TensorFlow was already initialized:RuntimeWarning")
@pytest.mark.parametrize("precision", ["tf32", "fp32"])
def test_gpu_profile_records_what_float32_matmuls_run_as(monkeypatch, precision):
    """On Ampere and newer GPUs the backends run float32 matmuls as TensorFloat-32 by
    default (the H100 check: 416 vs 51.5 TFLOP/s for a 4096^2 matmul under JAX); a
    profile labelled float32 must say which."""
    import keras

    backend = _fake_gpu_count(monkeypatch, 1)
    monkeypatch.setitem(keras_runtime.BACKENDS, backend, dataclasses.replace(
        keras_runtime.BACKENDS[backend], gpu_matmul=lambda: precision))
    info = runtimes.get("keras", threads=1, device="gpu").info()
    assert info["matmul_precision"] == precision
    # the profile schema keeps it
    from latency_lab.profile import load_profile

    assert load_profile("t4").replace(runtime=info).runtime["matmul_precision"] == precision


def test_the_real_backend_reports_a_known_precision():
    import keras

    assert keras_runtime.BACKENDS[keras.backend.backend()].gpu_matmul() in ("tf32", "fp32")


@pytest.mark.parametrize("device", ["tpu", "cuda", "GPU", None])
def test_unknown_device_names_the_choices(device):
    with pytest.raises(InputSpecError, match="cpu or gpu"):
        runtimes.get("keras", threads=1, device=device)
