"""Every layer type of the convolutional keras.applications families has a cost
function: each family analyzes with no unknown layers and its params equal
count_params() exactly. Small inputs keep the suite fast; costs scale, coverage does
not change."""

import pytest

import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)

from latency_lab.analyze import analyze_model  # noqa: E402

FAMILIES = [
    ("MobileNet", {}), ("MobileNetV2", {}), ("MobileNetV3Small", {}), ("MobileNetV3Large", {}),
    ("ResNet50", {}), ("ResNet50V2", {}), ("EfficientNetB0", {}), ("EfficientNetV2B0", {}),
    ("DenseNet121", {}), ("NASNetMobile", {"input_shape": (224, 224, 3)}),
    ("InceptionV3", {"input_shape": (96, 96, 3)}),
    ("InceptionResNetV2", {"input_shape": (96, 96, 3)}), ("Xception", {"input_shape": (96, 96, 3)}),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_is_fully_costed(name, kwargs):
    kwargs = {"input_shape": (96, 96, 3), **kwargs}
    model = getattr(keras.applications, name)(weights=None, **kwargs)
    result = analyze_model(model)  # raises UnsupportedOpError on any unknown layer
    assert not result.unknown
    assert result.total.params == model.count_params()
    assert result.total.flops > 0
    keras.backend.clear_session()
