"""Our FLOP counts against a real peer: TensorFlow's own profiler on the frozen graph.

For four keras.applications families the sum of Conv2D + DepthwiseConv2D + Dense FLOPs
must equal the profiler's Conv2D + DepthwiseConv2dNative + MatMul float operations
within 0.5%, and params must equal count_params() exactly.
"""


import pytest

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402  (a hard dependency: a missing install must fail, not skip)

from latency_lab.analyze import analyze_model  # noqa: E402
from cost_helpers import tf_float_ops_by_type  # noqa: E402

OUR_TYPES = ("Conv2D", "DepthwiseConv2D", "Dense")
TF_TYPES = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


def tf_profiler_flops(model, input_shape):
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((1, *input_shape), tf.float32))
    graph = convert_variables_to_constants_v2(concrete).graph
    return tf_float_ops_by_type(graph)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MobileNet", "MobileNetV2", "ResNet50", "EfficientNetB0"])
def test_flops_match_tensorflow_profiler(name):
    model = getattr(keras.applications, name)(weights=None)
    input_shape = tuple(model.inputs[0].shape[1:])
    ref = tf_profiler_flops(model, input_shape)
    ref_total = sum(ref[t] for t in TF_TYPES)
    analysis = analyze_model(model)
    ours = sum(layer.cost.flops for layer in analysis.layers if layer.type in OUR_TYPES)
    assert ref_total > 0
    assert abs(ours - ref_total) / ref_total <= 0.005, (name, ours, dict(ref))
    assert analysis.total.params == model.count_params()
