"""The keras runtime's device argument: a GPU the backend cannot see is refused rather
than measured on the CPU (TensorFlow's soft placement would run a "gpu:0" scope there
without a word). The backend's GPU count is faked, so these pass with or without a GPU."""

import pytest

from latency_lab import runtimes
from latency_lab.errors import InputSpecError, MeasurementError
from latency_lab.runtimes import keras_runtime


def _fake_gpu_count(monkeypatch, n):
    import keras

    backend = keras.backend.backend()
    compile_, sync, _ = keras_runtime.BACKENDS[backend]
    monkeypatch.setitem(keras_runtime.BACKENDS, backend, (compile_, sync, lambda: n))
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
    compile_, sync, _ = keras_runtime.BACKENDS[backend]
    monkeypatch.setitem(keras_runtime.BACKENDS, backend, (compile_, sync, no_query))
    assert runtimes.get("keras", threads=1, device="cpu").info()["device"] == "cpu"


@pytest.mark.parametrize("device", ["tpu", "cuda", "GPU", None])
def test_unknown_device_names_the_choices(device):
    with pytest.raises(InputSpecError, match="cpu or gpu"):
        runtimes.get("keras", threads=1, device=device)
