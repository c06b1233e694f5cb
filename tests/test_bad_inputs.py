"""Bad files a user may hand the CLI or the API: each a clear error naming the file
(and the field), never a traceback."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from latency_lab.errors import LatencyLabError, ModelLoadError, ProfileError  # noqa: E402
from latency_lab.models import load_model_file  # noqa: E402
from latency_lab.profile import DeviceProfile, load_profile  # noqa: E402


def test_a_profile_nested_too_deeply_is_a_profile_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ProfileError, match="deep.json: JSON nested too deeply"):
        DeviceProfile.load(path)


def test_a_huge_integer_in_a_profile_is_a_profile_error(tmp_path):
    text = json.dumps(load_profile("t4").to_dict())
    assert '"version": 2' in text
    path = tmp_path / "big.json"
    path.write_text(text.replace('"version": 2', '"version": ' + "9" * 5000, 1))
    with pytest.raises(ProfileError, match="big.json: unreadable JSON value"):
        DeviceProfile.load(path)


def test_a_sample_with_a_negative_size_is_refused_naming_the_key():
    from latency_lab.predictors import LookupTableModel

    prof = load_profile("epyc_vm_2c_litert")
    sample = next(s for s in prof.samples if s.op == "conv2d")
    bad = dict(sample.to_dict(), config=dict(sample.config, cin=-256))
    broken = prof.replace(samples=[bad] + [s for s in prof.samples if s.key != sample.key])
    with pytest.raises(ProfileError, match=r"table sample 0 \(conv2d .*'cin' must be a whole "
                                           r"number >= 1, got -256"):
        LookupTableModel(broken).fit()


@pytest.mark.parametrize("suffix,content", [(".keras", b"not a zip at all"),
                                            (".h5", b"\x00" * 64)])
def test_a_corrupt_model_file_says_it_is_corrupt(tmp_path, suffix, content):
    path = tmp_path / f"m{suffix}"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_model_file(path)


def test_an_npz_with_an_object_array_is_refused_without_unpickling(tmp_path):
    from latency_lab.workflows import load_task

    path = tmp_path / "d.npz"
    obj = np.empty(4, dtype=object)
    np.savez(path, x_train=obj, y_train=np.arange(4), x_val=obj, y_val=np.arange(4))
    with pytest.raises(LatencyLabError, match="cannot be read without unpickling"):
        load_task(path)
